// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Health checks (agent/check*.c) against real servers on loopback.
 *
 * The servers are threads with plain blocking sockets, each driven by a
 * script per accepted connection (what to wait for, what to answer, or to
 * hold the connection silently), so that every check type is seen passing,
 * answered wrongly, timing out and refused.  A probe that times out is one
 * whose server says nothing: for tcp connect a listener whose accept queue
 * is full (Linux drops the SYN, connect hangs), for the stream protocols a
 * server that accepts and stays silent, for dns a socket that reads and
 * never answers.  "Refused" is a socket bound to a port without listening
 * (the kernel resets the SYN; for UDP, a socket connected elsewhere, so
 * the datagram gets a port unreachable) - the port stays reserved.
 *
 * ICMP: the kernel answers every echo to 127.0.0.0/8 and ::1 itself, so no
 * loopback address stays silent or answers wrongly.  Passing is tested
 * against the kernel's replies; the other outcomes run in a thread that
 * enters a private network namespace (unshare(CLONE_NEWNET) affects only
 * the calling thread; the namespace disappears with it), turns off the
 * kernel's echo replies there and answers with a raw-socket responder:
 * correct replies, a changed payload, destination unreachable, silence,
 * and replies that arrive too late.  The host's own namespace is never
 * changed.
 *
 * Every test counts callbacks and ends with uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <criterion/criterion.h>

#include "check.h"
#include "xlb_addr.h"

#define MAXP 64

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static struct xlb_addr loopback(uint8_t family)
{
    struct xlb_addr a;

    memset(&a, 0, sizeof(a));
    if (family == XLB_FAMILY_V4)
        inet_pton(AF_INET, "127.0.0.1", &a.addr_be[0]);
    else
        inet_pton(AF_INET6, "::1", a.addr_be);
    return a;
}

static struct xlb_cfg_hc mkspec(enum xlb_cfg_hc_type t)
{
    struct xlb_cfg_hc s;

    memset(&s, 0, sizeof(s));
    s.type = t;
    s.interval_ms = 20;
    s.timeout_ms = 500;
    s.rise = 1;
    s.fall = 1;
    return s;
}

static socklen_t sa_make(uint8_t family, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == XLB_FAMILY_V4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = in6addr_loopback;
    return sizeof(*in6);
}

static uint16_t sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof(ss);

    getsockname(fd, (struct sockaddr *)&ss, &l);
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A socket bound to a fresh loopback port (0 = let the kernel choose). */
static int bound_socket(uint8_t family, int type)
{
    struct sockaddr_storage ss;
    socklen_t l = sa_make(family, 0, &ss);
    int fd = socket(family == XLB_FAMILY_V4 ? AF_INET : AF_INET6, type | SOCK_CLOEXEC, 0);
    int one = 1;

    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, l), 0, "bind: %s", strerror(errno));
    return fd;
}

/* A port that refuses: TCP bound but not listening, UDP bound and connected
 * to another port (so the kernel has no socket for our datagrams). */
struct refuser {
    int fd;
    uint16_t port;
};

static struct refuser refuser_open(uint8_t family, int type)
{
    struct refuser r;

    r.fd = bound_socket(family, type);
    r.port = sock_port(r.fd);
    if (type == SOCK_DGRAM) {
        struct sockaddr_storage ss;
        socklen_t l = sa_make(family, 9, &ss);

        cr_assert_eq(connect(r.fd, (struct sockaddr *)&ss, l), 0);
    }
    return r;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* running one check for a number of probes                            */

struct run {
    struct xlb_check *c;
    uv_loop_t *loop;
    uv_timer_t wd;
    int want, n;
    bool freed, watchdog;
    uint64_t t0;
    enum xlb_check_result res[MAXP];
    bool changed[MAXP];
    struct xlb_check_stats st[MAXP];
    uint64_t t[MAXP];           /* loop time of each callback since start, ms */
};

static void run_cb(struct xlb_check *c, enum xlb_check_result r, bool changed, void *arg)
{
    struct run *R = arg;

    if (R->n < MAXP) {
        R->res[R->n] = r;
        R->changed[R->n] = changed;
        R->st[R->n] = *xlb_check_stats(c);
        R->t[R->n] = uv_now(R->loop) - R->t0;
    }
    R->n++;
    if (R->n == R->want) {
        xlb_check_free(c);      /* from inside the callback, on purpose */
        R->freed = true;
    }
}

static void run_watchdog(uv_timer_t *t)
{
    struct run *R = t->data;

    R->watchdog = true;
    if (!R->freed) {
        xlb_check_free(R->c);
        R->freed = true;
    }
}

/* Run spec against the loopback address of family until want callbacks;
 * returns NULL or what went wrong (no Criterion asserts: also used from
 * threads). */
static const char *run_check_q(struct run *R, const struct xlb_cfg_hc *spec, uint8_t family,
                               uint16_t port, int want, bool initially_up)
{
    struct xlb_addr a = loopback(family);
    uv_loop_t loop;

    memset(R, 0, sizeof(*R));
    R->want = want;
    if (uv_loop_init(&loop))
        return "uv_loop_init";
    R->loop = &loop;
    R->c = xlb_check_new(&loop, spec, family, &a, port, initially_up, run_cb, R);
    if (!R->c)
        return "xlb_check_new failed";
    uv_timer_init(&loop, &R->wd);
    R->wd.data = R;
    uv_timer_start(&R->wd, run_watchdog, 8000, 0);
    uv_unref((uv_handle_t *)&R->wd);
    R->t0 = uv_now(&loop);
    if (xlb_check_start(R->c, true))
        return "xlb_check_start failed";
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&R->wd, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop))
        return "uv_loop_close: a handle leaked";
    if (R->watchdog)
        return "watchdog: the probes did not complete";
    if (R->n != want)
        return "wrong number of callbacks";
    return NULL;
}

static void run_check(struct run *R, const struct xlb_cfg_hc *spec, uint8_t family,
                      uint16_t port, int want, bool initially_up)
{
    const char *err = run_check_q(R, spec, family, port, want, initially_up);

    cr_assert_null(err, "%s (callbacks %d of %d)", err, R->n, want);
}

/* Every probe of R had result r, and the last detail contains text. */
static void expect_all(const struct run *R, enum xlb_check_result r, const char *text)
{
    for (int i = 0; i < R->n && i < MAXP; i++)
        cr_assert_eq(R->res[i], r, "probe %d: %s (%s), wanted %s", i + 1,
                     xlb_check_result_name(R->res[i]), R->st[i].last_detail,
                     xlb_check_result_name(r));
    if (text)
        cr_assert(strstr(R->st[R->n - 1].last_detail, text), "detail \"%s\" lacks \"%s\"",
                  R->st[R->n - 1].last_detail, text);
}

/* ------------------------------------------------------------------ */
/* scripted TCP/TLS/UDP servers on threads                             */

struct script {
    const char *wait;           /* read until this text came (NULL: answer at once) */
    const void *out;            /* bytes to send */
    size_t out_len;             /* 0: strlen(out) */
    int split_ms;               /* > 0: send the first byte(s), pause, then the rest */
    size_t split_at;            /* where to split (0: half) */
    bool hold;                  /* accept and stay silent until the server stops */
    bool reset;                 /* accept and reset at once */
    bool close_now;             /* accept and close at once */
    bool capture;               /* after sending, read what the client says until EOF */
};

enum dns_mode { DNS_GOOD, DNS_NXDOMAIN, DNS_NOQR, DNS_WRONGID, DNS_SILENT };

struct srv {
    uint8_t family;
    int type;
    int lfd;
    uint16_t port;
    int stop[2];
    pthread_t th;
    const struct script *sc;
    int nsc;
    bool cycle;                 /* scripts repeat; else the last one repeats */
    bool accept_close;          /* just accept and close (scale test) */
    SSL_CTX *tls;
    const enum dns_mode *dns;
    int ndns;
    atomic_int nconn;
    int held[1024];
    int nheld;
    int max_live;
    char got[8192];             /* what the client sent on the last connection */
    size_t got_len;
    char sni[256];
    bool sni_seen;
};

static const struct script *pick(struct srv *s, int k)
{
    if (k < s->nsc)
        return &s->sc[k];
    return &s->sc[s->cycle ? k % s->nsc : s->nsc - 1];
}

/* Held connections the client has closed are dropped; returns how many
 * are still open. */
static int prune_held(struct srv *s)
{
    int live = 0;

    for (int i = 0; i < s->nheld; i++) {
        struct pollfd p = { s->held[i], POLLIN, 0 };
        char b;

        if (poll(&p, 1, 0) == 1 &&
            ((p.revents & (POLLHUP | POLLERR)) ||
             recv(s->held[i], &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)) {
            close(s->held[i]);
            continue;
        }
        s->held[live++] = s->held[i];
    }
    s->nheld = live;
    return live;
}

static ssize_t sio_read(SSL *ssl, int fd, void *b, size_t n)
{
    if (ssl) {
        int r = SSL_read(ssl, b, (int)n);

        return r > 0 ? r : -1;
    }
    return recv(fd, b, n, 0);
}

static void sio_write(SSL *ssl, int fd, const void *b, size_t n)
{
    if (!n)
        return;
    if (ssl)
        SSL_write(ssl, b, (int)n);
    else if (send(fd, b, n, MSG_NOSIGNAL) < 0)
        return;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void serve_stream(struct srv *s, int fd, int k)
{
    const struct script *sc = pick(s, k);
    size_t len = sc->out ? (sc->out_len ? sc->out_len : strlen(sc->out)) : 0;
    SSL *ssl = NULL;
    char buf[4096];
    ssize_t n;

    if (sc->hold && s->nheld < (int)(sizeof(s->held) / sizeof(s->held[0]))) {
        s->held[s->nheld++] = fd;
        return;
    }
    if (sc->close_now) {
        close(fd);
        return;
    }
    if (sc->reset) {
        struct linger lg = { 1, 0 };

        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        return;
    }
    set_timeouts(fd, 1000);
    s->got_len = 0;
    s->got[0] = '\0';
    if (s->tls) {
        const char *name;

        ssl = SSL_new(s->tls);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto out;
        name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        s->sni_seen = name != NULL;
        snprintf(s->sni, sizeof(s->sni), "%s", name ? name : "");
    }
    while (sc->wait && !strstr(s->got, sc->wait)) {
        n = sio_read(ssl, fd, s->got + s->got_len, sizeof(s->got) - 1 - s->got_len);
        if (n <= 0)
            break;
        s->got_len += (size_t)n;
        s->got[s->got_len] = '\0';
    }
    if (sc->split_ms && len > 1) {
        size_t at = sc->split_at ? sc->split_at : len / 2;

        sio_write(ssl, fd, sc->out, at);
        sleep_ms(sc->split_ms);
        sio_write(ssl, fd, (const char *)sc->out + at, len - at);
    } else {
        sio_write(ssl, fd, sc->out, len);
    }
    if (sc->capture) {
        set_timeouts(fd, 500);
        while (s->got_len < sizeof(s->got) - 1 &&
               (n = sio_read(ssl, fd, s->got + s->got_len, sizeof(s->got) - 1 - s->got_len)) > 0)
            s->got_len += (size_t)n;
        s->got[s->got_len] = '\0';
    }
    if (ssl)
        SSL_shutdown(ssl);
    /* FIN, then wait for the client to close: it sees the end of data. */
    shutdown(fd, SHUT_WR);
    set_timeouts(fd, 500);
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
out:
    SSL_free(ssl);
    close(fd);
}

static void serve_dns(struct srv *s)
{
    uint8_t q[512], r[600];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(s->lfd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
    int k, mode;
    size_t qend, rl;

    if (n < 12)
        return;
    k = atomic_fetch_add(&s->nconn, 1);
    mode = s->dns[k < s->ndns ? k : s->ndns - 1];
    memcpy(s->got, q, (size_t)n);
    s->got_len = (size_t)n;
    if (mode == DNS_SILENT)
        return;
    /* header + question as asked, then one A record 127.0.0.1 */
    for (qend = 12; qend < (size_t)n && q[qend]; qend += q[qend] + 1u)
        ;
    qend += 5;
    if (qend > (size_t)n)
        return;
    memcpy(r, q, qend);
    r[2] = (uint8_t)(0x80 | (q[2] & 0x01));     /* QR, RD copied */
    r[3] = 0x80;                                /* RA, rcode 0 */
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
    rl = qend;
    if (mode == DNS_GOOD || mode == DNS_WRONGID || mode == DNS_NOQR) {
        static const uint8_t ans[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1 };

        memcpy(r + rl, ans, sizeof(ans));
        rl += sizeof(ans);
        r[7] = 1;
    }
    if (mode == DNS_NXDOMAIN)
        r[3] |= 3;
    if (mode == DNS_NOQR)
        r[2] &= 0x7f;
    if (mode == DNS_WRONGID)
        r[1] ^= 0x5a;
    sendto(s->lfd, r, rl, 0, (struct sockaddr *)&from, fl);
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;

    for (;;) {
        struct pollfd p[2] = { { s->lfd, POLLIN, 0 }, { s->stop[0], POLLIN, 0 } };

        if (poll(p, 2, -1) < 0)
            continue;
        /* what is queued is served before stopping */
        if (!(p[0].revents & POLLIN)) {
            if (p[1].revents)
                break;
            continue;
        }
        if (s->type == SOCK_DGRAM) {
            serve_dns(s);
            continue;
        }
        int fd = accept(s->lfd, NULL, NULL);

        if (fd < 0)
            continue;
        if (s->accept_close) {
            atomic_fetch_add(&s->nconn, 1);
            close(fd);
            continue;
        }
        int live = prune_held(s) + 1;

        if (live > s->max_live)
            s->max_live = live;
        serve_stream(s, fd, atomic_fetch_add(&s->nconn, 1));
    }
    for (int i = 0; i < s->nheld; i++)
        close(s->held[i]);
    return NULL;
}

static void srv_start(struct srv *s, uint8_t family, int type, int backlog)
{
    s->family = family;
    s->type = type;
    s->lfd = bound_socket(family, type);
    s->port = sock_port(s->lfd);
    if (type == SOCK_STREAM)
        cr_assert_eq(listen(s->lfd, backlog), 0);
    cr_assert_eq(pipe(s->stop), 0);
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static struct srv *tcp_server(uint8_t family, const struct script *sc, int nsc)
{
    struct srv *s = calloc(1, sizeof(*s));

    cr_assert(s);
    s->sc = sc;
    s->nsc = nsc;
    srv_start(s, family, SOCK_STREAM, 64);
    return s;
}

static void srv_stop(struct srv *s)
{
    cr_assert_eq(write(s->stop[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
}

static void srv_free(struct srv *s)
{
    if (s->tls)
        SSL_CTX_free(s->tls);
    free(s);
}

/* ------------------------------------------------------------------ */
/* a self-signed certificate, written to a temporary directory         */

struct cert {
    char dir[64];
    char pem[128];
    EVP_PKEY *key;
    X509 *x509;
};

/* The certificate of the running test, removed by the suite's fini also
 * when an assertion ended the test early. */
static struct cert *live_cert;

static void cert_make(struct cert *ct)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509_NAME *name;
    FILE *f;

    ct->key = EVP_EC_gen("P-256");
    cr_assert(ct->key);
    ct->x509 = X509_new();
    X509_set_version(ct->x509, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(ct->x509), 1);
    X509_gmtime_adj(X509_getm_notBefore(ct->x509), -3600);
    X509_gmtime_adj(X509_getm_notAfter(ct->x509), 86400);
    X509_set_pubkey(ct->x509, ct->key);
    name = X509_get_subject_name(ct->x509);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"check.test", -1,
                               -1, 0);
    X509_set_issuer_name(ct->x509, name);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ct->x509, ct->x509, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                              "DNS:check.test,IP:127.0.0.1,IP:::1");
    cr_assert(ext);
    X509_add_ext(ct->x509, ext, -1);
    X509_EXTENSION_free(ext);
    cr_assert(X509_sign(ct->x509, ct->key, EVP_sha256()) > 0);

    snprintf(ct->dir, sizeof(ct->dir), "/tmp/xlbt-check-XXXXXX");
    cr_assert(mkdtemp(ct->dir));
    snprintf(ct->pem, sizeof(ct->pem), "%s/cert.pem", ct->dir);
    f = fopen(ct->pem, "w");
    cr_assert(f);
    PEM_write_X509(f, ct->x509);
    fclose(f);
    live_cert = ct;
}

static void cert_free(struct cert *ct)
{
    unlink(ct->pem);
    rmdir(ct->dir);
    X509_free(ct->x509);
    EVP_PKEY_free(ct->key);
    live_cert = NULL;
}

static void cert_cleanup(void)
{
    if (live_cert) {
        unlink(live_cert->pem);
        rmdir(live_cert->dir);
        live_cert = NULL;
    }
}

static struct srv *tls_server(uint8_t family, const struct cert *ct, const struct script *sc,
                              int nsc)
{
    struct srv *s = calloc(1, sizeof(*s));

    cr_assert(s);
    s->sc = sc;
    s->nsc = nsc;
    s->tls = SSL_CTX_new(TLS_server_method());
    cr_assert(s->tls);
    cr_assert_eq(SSL_CTX_use_certificate(s->tls, ct->x509), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey(s->tls, ct->key), 1);
    srv_start(s, family, SOCK_STREAM, 64);
    return s;
}

static struct srv *dns_server(uint8_t family, const enum dns_mode *modes, int n)
{
    struct srv *s = calloc(1, sizeof(*s));

    cr_assert(s);
    s->dns = modes;
    s->ndns = n;
    srv_start(s, family, SOCK_DGRAM, 0);
    return s;
}

/* Run one spec against a fresh TCP server playing the script. */
static void run_scripted(struct run *R, struct xlb_cfg_hc *spec, uint8_t family,
                         const struct script *sc, int nsc, int want, struct srv **keep)
{
    struct srv *s = tcp_server(family, sc, nsc);

    run_check(R, spec, family, s->port, want, true);
    srv_stop(s);
    if (keep)
        *keep = s;
    else
        srv_free(s);
}

/* A listener whose accept queue is full: one connection sits in it
 * (backlog 0 admits one), the next SYN is dropped and connect hangs. */
struct fullq {
    int lfd, filler;
    uint16_t port;
};

static struct fullq fullq_open(uint8_t family)
{
    struct fullq q;
    struct sockaddr_storage ss;
    socklen_t l;

    q.lfd = bound_socket(family, SOCK_STREAM);
    q.port = sock_port(q.lfd);
    cr_assert_eq(listen(q.lfd, 0), 0);
    l = sa_make(family, q.port, &ss);
    q.filler = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(q.filler, (struct sockaddr *)&ss, l), 0);
    sleep_ms(20);               /* let the handshake's last ACK queue it */
    return q;
}

static void fullq_close(struct fullq *q)
{
    close(q->filler);
    close(q->lfd);
}

static void ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ------------------------------------------------------------------ */
/* ICMP: a responder in a private network namespace                    */

enum icmp_mode { IC_GOOD, IC_BADPAYLOAD, IC_UNREACH, IC_SILENT, IC_LATE, IC_OTHERSRC };

struct responder {
    enum icmp_mode mode;
    int late_ms;
    int fd4, fd6, fd4other, stop[2];     /* fd4other: bound to 127.0.0.9 */
    pthread_t th;
    atomic_int requests;
};

static uint16_t icsum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void respond4(struct responder *r, const uint8_t *pkt, size_t n,
                     const struct sockaddr_in *from)
{
    size_t ihl = (size_t)(pkt[0] & 15) * 4, il;
    const uint8_t *ic = pkt + ihl;
    uint8_t out[700];
    size_t ol;
    uint16_t sum;

    if (n < ihl + 8 || ic[0] != ICMP_ECHO)
        return;
    il = n - ihl;
    atomic_fetch_add(&r->requests, 1);
    if (r->mode == IC_SILENT || il > 600)
        return;
    if (r->mode == IC_UNREACH) {
        memset(out, 0, 8);
        out[0] = ICMP_DEST_UNREACH;
        out[1] = ICMP_HOST_UNREACH;
        memcpy(out + 8, pkt, ihl + 8);  /* the IP header and 64 bits of the echo */
        ol = 8 + ihl + 8;
    } else {
        memcpy(out, ic, il);
        out[0] = ICMP_ECHOREPLY;
        if (r->mode == IC_BADPAYLOAD)
            out[il - 1] ^= 0xff;
        ol = il;
    }
    out[2] = out[3] = 0;
    sum = icsum(out, ol);
    out[2] = (uint8_t)(sum >> 8);
    out[3] = (uint8_t)sum;
    if (r->mode == IC_LATE)
        sleep_ms(r->late_ms);
    sendto(r->mode == IC_OTHERSRC ? r->fd4other : r->fd4, out, ol, 0,
           (const struct sockaddr *)from, sizeof(*from));
}

static void respond6(struct responder *r, const uint8_t *ic, size_t il,
                     const struct sockaddr_in6 *from)
{
    uint8_t out[700];
    size_t ol;

    if (il < 8 || ic[0] != ICMP6_ECHO_REQUEST)
        return;
    atomic_fetch_add(&r->requests, 1);
    if (r->mode == IC_SILENT || il > 600)
        return;
    if (r->mode == IC_UNREACH) {
        memset(out, 0, 48);
        out[0] = ICMP6_DST_UNREACH;
        out[1] = ICMP6_DST_UNREACH_ADDR;
        out[8] = 0x60;                          /* the quoted IPv6 header */
        out[12] = (uint8_t)(il >> 8);
        out[13] = (uint8_t)il;
        out[14] = IPPROTO_ICMPV6;
        out[15] = 64;
        memcpy(out + 16, &from->sin6_addr, 16);
        memcpy(out + 32, &in6addr_loopback, 16);
        memcpy(out + 48, ic, il);
        ol = 48 + il;
    } else {
        memcpy(out, ic, il);
        out[0] = ICMP6_ECHO_REPLY;
        if (r->mode == IC_BADPAYLOAD)
            out[il - 1] ^= 0xff;
        ol = il;
    }
    out[2] = out[3] = 0;                        /* the kernel sums ICMPv6 */
    if (r->mode == IC_LATE)
        sleep_ms(r->late_ms);
    sendto(r->fd6, out, ol, 0, (const struct sockaddr *)from, sizeof(*from));
}

static void *responder_main(void *arg)
{
    struct responder *r = arg;
    uint8_t buf[2048];

    for (;;) {
        struct pollfd p[3] = { { r->fd4, POLLIN, 0 }, { r->fd6, POLLIN, 0 },
                               { r->stop[0], POLLIN, 0 } };
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n;

        if (poll(p, 3, -1) < 0)
            continue;
        if (p[2].revents)
            break;
        if (p[0].revents & POLLIN) {
            n = recvfrom(r->fd4, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
            if (n > 0)
                respond4(r, buf, (size_t)n, (struct sockaddr_in *)&from);
        }
        fl = sizeof(from);
        if (p[1].revents & POLLIN) {
            n = recvfrom(r->fd6, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
            if (n > 0)
                respond6(r, buf, (size_t)n, (struct sockaddr_in6 *)&from);
        }
    }
    return NULL;
}

static const char *responder_start(struct responder *r)
{
    r->fd4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    r->fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    r->fd4other = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (r->fd4 < 0 || r->fd6 < 0 || r->fd4other < 0 || pipe(r->stop))
        return "responder sockets";
    struct sockaddr_in other = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000009) };

    if (bind(r->fd4other, (struct sockaddr *)&other, sizeof(other)))
        return "bind 127.0.0.9";
    if (pthread_create(&r->th, NULL, responder_main, r))
        return "responder thread";
    return NULL;
}

static void responder_stop(struct responder *r)
{
    if (write(r->stop[1], "x", 1) != 1)
        return;
    pthread_join(r->th, NULL);
    close(r->stop[0]);
    close(r->stop[1]);
    close(r->fd4);
    close(r->fd6);
    close(r->fd4other);
}

static const char *write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return path;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? NULL : path;
}

/* Move the calling thread into a new network namespace with lo up and the
 * kernel's own echo replies off. */
static const char *netns_enter(void)
{
    struct ifreq ifr;
    const char *err;
    int s;

    if (syscall(SYS_unshare, CLONE_NEWNET))
        return "unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN)";
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
        return "SIOCGIFFLAGS lo";
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr))
        return "SIOCSIFFLAGS lo";
    close(s);
    err = write_file("/proc/sys/net/ipv4/icmp_echo_ignore_all", "1");
    if (!err)
        err = write_file("/proc/sys/net/ipv6/icmp/echo_ignore_all", "1");
    return err;
}

struct nscase {
    uint8_t family;
    enum icmp_mode mode;
    int late_ms;
    struct xlb_cfg_hc spec;
    int want;
    const char *(*body)(struct nscase *k);     /* default: run_check_q */
    struct run R;
    const char *err;
    int requests;
};

static const char *nscase_run(struct nscase *k)
{
    return run_check_q(&k->R, &k->spec, k->family, 0, k->want, true);
}

static void *nscase_main(void *arg)
{
    struct nscase *k = arg;
    struct responder r = { .mode = k->mode, .late_ms = k->late_ms };

    k->err = netns_enter();
    if (k->err)
        return NULL;
    k->err = responder_start(&r);
    if (k->err)
        return NULL;
    k->err = (k->body ? k->body : nscase_run)(k);
    responder_stop(&r);
    k->requests = atomic_load(&r.requests);
    return NULL;
}

static void run_in_netns(struct nscase *k)
{
    pthread_t th;

    cr_assert_eq(pthread_create(&th, NULL, nscase_main, k), 0);
    pthread_join(th, NULL);
    cr_assert_null(k->err, "%s (callbacks %d of %d)", k->err, k->R.n, k->want);
}

/* A check freed while its probe is in flight: no callback, no leak. */
struct fif {
    int cbs;
    struct xlb_check *c;
};

static void fif_cb(struct xlb_check *c, enum xlb_check_result r, bool changed, void *arg)
{
    (void)c;
    (void)r;
    (void)changed;
    ((struct fif *)arg)->cbs++;
}

static void fif_timer(uv_timer_t *t)
{
    struct fif *f = t->data;

    xlb_check_free(f->c);
    f->c = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static const char *free_in_flight_q(const struct xlb_cfg_hc *spec, uint8_t family, uint16_t port,
                                    int delay_ms, int *cbs)
{
    struct xlb_addr a = loopback(family);
    struct fif f = { 0, NULL };
    uv_loop_t loop;
    uv_timer_t t;

    uv_loop_init(&loop);
    f.c = xlb_check_new(&loop, spec, family, &a, port, true, fif_cb, &f);
    if (!f.c)
        return "xlb_check_new failed";
    if (xlb_check_start(f.c, true))
        return "xlb_check_start failed";
    uv_timer_init(&loop, &t);
    t.data = &f;
    uv_timer_start(&t, fif_timer, (uint64_t)delay_ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    *cbs = f.cbs;
    return uv_loop_close(&loop) ? "uv_loop_close: a handle leaked" : NULL;
}

static void free_in_flight(const struct xlb_cfg_hc *spec, uint8_t family, uint16_t port)
{
    int cbs = -1;
    const char *err = free_in_flight_q(spec, family, port, 30, &cbs);

    cr_assert_null(err, "%s", err);
    cr_assert_eq(cbs, 0, "a freed check called back %d times", cbs);
}

static const char *tname(enum xlb_cfg_hc_type t)
{
    static const char *n[] = { "none", "icmp", "tcp", "http", "https", "ftp", "smtp", "pop3",
                               "imap", "nntp", "telnet", "dns", "generic" };

    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

static const uint8_t families[] = { XLB_FAMILY_V4, XLB_FAMILY_V6 };
#define FAM_NAME(f) ((f) == XLB_FAMILY_V4 ? "v4" : "v6")

/* ================================================================== */
/* tcp                                                                 */

TestSuite(check_tcp, .init = ignore_sigpipe);

Test(check_tcp, pass_v4_v6)
{
    static const struct script sc[] = { { .out = "" } };

    for (int i = 0; i < 2; i++) {
        struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
        struct run R;
        struct srv *s;

        run_scripted(&R, &sp, families[i], sc, 1, 3, &s);
        expect_all(&R, XLB_CHECK_PASS, "connected");
        cr_assert_eq(atomic_load(&s->nconn), 3, "%s: %d connections", FAM_NAME(families[i]),
                     atomic_load(&s->nconn));
        for (int k = 0; k < 3; k++) {
            cr_assert(R.st[k].up && !R.changed[k]);
            cr_assert(R.st[k].last_latency_ms > 0 && R.st[k].last_latency_ms < 500);
        }
        srv_free(s);
    }
}

/* A tcp check has no answer to judge: a server that accepts and hangs up
 * at once is still up, since the connection was established. */
Test(check_tcp, accept_then_close_still_passes)
{
    static const struct script sc[] = { { .close_now = true } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_PASS, "connected");
}

Test(check_tcp, refused_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct refuser rf = refuser_open(families[i], SOCK_STREAM);
        struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
        struct run R;

        run_check(&R, &sp, families[i], rf.port, 2, true);
        expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused");
        close(rf.fd);
    }
}

Test(check_tcp, timeout_accept_queue_full_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct fullq q = fullq_open(families[i]);
        struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
        struct run R;

        sp.timeout_ms = 60;
        run_check(&R, &sp, families[i], q.port, 2, true);
        expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 60 ms (connect)");
        for (int k = 0; k < 2; k++)
            cr_assert(R.st[k].last_latency_ms >= 59, "latency %f", R.st[k].last_latency_ms);
        fullq_close(&q);
    }
}

/* ================================================================== */
/* banner protocols                                                    */

struct bcase {
    enum xlb_cfg_hc_type type;
    const char *good, *bad, *goodbye, *bad_detail;
};

static const struct bcase bcases[] = {
    { XLB_HC_FTP, "220 ftp.test ready\r\n", "421 too many users\r\n", "QUIT\r\n",
      "unexpected greeting \"421 too many users\"" },
    { XLB_HC_SMTP, "220-mail.test ESMTP\r\n220 ready\r\n", "554 no service\r\n", "QUIT\r\n",
      "unexpected greeting \"554 no service\"" },
    { XLB_HC_POP3, "+OK POP3 ready\r\n", "-ERR busy\r\n", "QUIT\r\n",
      "unexpected greeting \"-ERR busy\"" },
    { XLB_HC_IMAP, "* OK IMAP4rev1 ready\r\n", "* BYE shutting down\r\n", "a1 LOGOUT\r\n",
      "unexpected greeting \"* BYE shutting down\"" },
    { XLB_HC_NNTP, "201 news.test ready, no posting\r\n", "502 access denied\r\n", "QUIT\r\n",
      "unexpected greeting \"502 access denied\"" },
    { XLB_HC_TELNET, "\xff\xfd\x18\xff\xfb\x01", "login: ", NULL,
      "first byte 0x6c, not IAC (0xff)" },
};

/* pass (and the goodbye reaches the server), wrong greeting, silence,
 * refused - for one banner protocol. */
static void banner_case(const struct bcase *b)
{
    const char *name = tname(b->type);
    struct xlb_cfg_hc sp = mkspec(b->type);
    struct script good[] = { { .out = b->good, .capture = b->goodbye != NULL } };
    struct script bad[] = { { .out = b->bad } };
    static const struct script silent[] = { { .hold = true } };
    struct refuser rf;
    struct run R;
    struct srv *s;

    run_scripted(&R, &sp, XLB_FAMILY_V4, good, 1, 2, &s);
    expect_all(&R, XLB_CHECK_PASS, NULL);
    if (b->goodbye)
        cr_assert_str_eq(s->got, b->goodbye, "%s: the server got \"%s\"", name, s->got);
    srv_free(s);

    run_scripted(&R, &sp, XLB_FAMILY_V6, bad, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, b->bad_detail);

    sp.timeout_ms = 60;
    run_scripted(&R, &sp, XLB_FAMILY_V4, silent, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "(greeting)");

    rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    run_check(&R, &sp, XLB_FAMILY_V4, rf.port, 2, true);
    expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused");
    close(rf.fd);
}

TestSuite(check_banner, .init = ignore_sigpipe);

Test(check_banner, ftp) { banner_case(&bcases[0]); }
Test(check_banner, smtp) { banner_case(&bcases[1]); }
Test(check_banner, pop3) { banner_case(&bcases[2]); }
Test(check_banner, imap) { banner_case(&bcases[3]); }
Test(check_banner, nntp) { banner_case(&bcases[4]); }
Test(check_banner, telnet) { banner_case(&bcases[5]); }

/* The decision waits for enough bytes: "22" then "0 ready" is a greeting;
 * "200 " passes nntp as "201 " does; "2200" is no FTP greeting; a server
 * that closes at once fails. */
Test(check_banner, partial_and_edge_greetings)
{
    static const struct script split[] = { { .out = "220 ready\r\n", .split_ms = 30,
                                             .split_at = 2 } };
    static const struct script nntp200[] = { { .out = "200 posting ok\r\n" } };
    static const struct script ftp2200[] = { { .out = "2200 odd\r\n" } };
    static const struct script bare[] = { { .out = "220\r\n" } };
    static const struct script closes[] = { { .out = "" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_SMTP);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, split, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "220 ready");
    cr_assert(R.st[0].last_latency_ms >= 25, "decided before the rest of the greeting");

    sp = mkspec(XLB_HC_NNTP);
    run_scripted(&R, &sp, XLB_FAMILY_V4, nntp200, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "200 posting ok");

    sp = mkspec(XLB_HC_FTP);
    run_scripted(&R, &sp, XLB_FAMILY_V4, ftp2200, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "unexpected greeting \"2200 odd\"");
    run_scripted(&R, &sp, XLB_FAMILY_V4, bare, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "220");
    run_scripted(&R, &sp, XLB_FAMILY_V4, closes, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "closed before the greeting");
}

/* ================================================================== */
/* generic                                                             */

TestSuite(check_generic, .init = ignore_sigpipe);

static struct xlb_cfg_hc generic_spec(const char *send, const void *expect, size_t elen,
                                      uint32_t within)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_GENERIC);

    sp.send_len = strlen(send);
    memcpy(sp.send, send, sp.send_len);
    sp.expect_len = elen;
    memcpy(sp.expect, expect, elen);
    sp.expect_within = within;
    return sp;
}

Test(check_generic, pass_after_send)
{
    static const struct script sc[] = { { .wait = "PING\r\n", .out = "+PONG\r\n" } };
    struct xlb_cfg_hc sp = generic_spec("PING\r\n", "PONG", 4, 1024);
    struct run R;
    struct srv *s;

    for (int i = 0; i < 2; i++) {
        run_scripted(&R, &sp, families[i], sc, 1, 2, &s);
        expect_all(&R, XLB_CHECK_PASS, "pattern found");
        cr_assert_str_eq(s->got, "PING\r\n");
        srv_free(s);
    }
}

/* Nothing sent: the server speaks first.  A binary pattern with a NUL,
 * split over two writes right inside the pattern. */
Test(check_generic, server_first_binary_split)
{
    static const char reply[] = "SSH-2.0-x\0\x01\x02 tail";
    static const struct script sc[] = { { .out = reply, .out_len = sizeof(reply) - 1,
                                          .split_ms = 20, .split_at = 10 } };
    struct xlb_cfg_hc sp = generic_spec("", "x\0\x01\x02", 4, 1024);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_PASS, "pattern found");
}

Test(check_generic, pattern_beyond_expect_within)
{
    static const struct script sc[] = { { .wait = "Q", .out = "xxxxxxxxxxPONG\r\n" } };
    struct xlb_cfg_hc sp = generic_spec("Q", "PONG", 4, 12);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "pattern not in the first 12 bytes");
    /* 14 bytes are enough */
    sp.expect_within = 14;
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "pattern found");
}

Test(check_generic, wrong_answer_timeout_refused)
{
    static const struct script wrong[] = { { .wait = "PING", .out = "-ERR\r\n" } };
    static const struct script silent[] = { { .hold = true } };
    struct xlb_cfg_hc sp = generic_spec("PING\r\n", "PONG", 4, 1024);
    struct refuser rf;
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V6, wrong, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "closed after 6 bytes without the pattern");

    sp.timeout_ms = 60;
    run_scripted(&R, &sp, XLB_FAMILY_V4, silent, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "(pattern)");

    rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    run_check(&R, &sp, XLB_FAMILY_V4, rf.port, 2, true);
    expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused");
    close(rf.fd);
}

/* Nothing expected: the probe passes once the bytes are sent. */
Test(check_generic, empty_expect_passes_on_connect)
{
    static const struct script sc[] = { { .wait = "HELLO", .capture = true } };
    struct xlb_cfg_hc sp = generic_spec("HELLO", "", 0, 1024);
    struct run R;
    struct srv *s;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 1, &s);
    expect_all(&R, XLB_CHECK_PASS, "nothing expected");
    cr_assert_str_eq(s->got, "HELLO");
    srv_free(s);
}

/* ================================================================== */
/* http                                                                */

TestSuite(check_http, .init = ignore_sigpipe);

#define OK_EMPTY "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

Test(check_http, head_default_request)
{
    /* a HEAD response announces a length but has no body */
    static const struct script sc[] = { { .wait = "\r\n\r\n",
                                          .out = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    char host[64];
    struct run R;
    struct srv *s;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 2, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", s->port);
    cr_assert(!strncmp(s->got, "HEAD / HTTP/1.1\r\n", 17), "request: %s", s->got);
    cr_assert(strstr(s->got, host), "request: %s", s->got);
    cr_assert(strstr(s->got, "\r\nConnection: close\r\n"), "request: %s", s->got);
    srv_free(s);

    /* IPv6: the address in brackets */
    run_scripted(&R, &sp, XLB_FAMILY_V6, sc, 1, 1, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    snprintf(host, sizeof(host), "\r\nHost: [::1]:%u\r\n", s->port);
    cr_assert(strstr(s->got, host), "request: %s", s->got);
    srv_free(s);
}

Test(check_http, get_http10_host_path)
{
    static const struct script sc[] = { { .wait = "\r\n\r\n", .out = OK_EMPTY } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;
    struct srv *s;

    strcpy(sp.method, "GET");
    strcpy(sp.path, "/health?full=1");
    strcpy(sp.host, "www.example.test");
    sp.http10 = true;
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 1, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    cr_assert(!strncmp(s->got, "GET /health?full=1 HTTP/1.0\r\n", 29), "request: %s", s->got);
    cr_assert(strstr(s->got, "\r\nHost: www.example.test\r\n"), "request: %s", s->got);
    srv_free(s);
}

#define RESP(code) { .wait = "\r\n\r\n", .out = "HTTP/1.1 " code "\r\nContent-Length: 0\r\n\r\n" }

/* The default set: 200-299, 301, 302, 401. */
Test(check_http, default_status_set)
{
    static const struct script sc[] = {
        RESP("200 OK"), RESP("204 No Content"), RESP("299 X"), RESP("301 Moved"),
        RESP("302 Found"), RESP("401 Unauthorized"), RESP("300 Multiple"), RESP("304 NM"),
        RESP("404 Not Found"), RESP("503 Unavailable"),
    };
    static const enum xlb_check_result want[] = {
        XLB_CHECK_PASS, XLB_CHECK_PASS, XLB_CHECK_PASS, XLB_CHECK_PASS, XLB_CHECK_PASS,
        XLB_CHECK_PASS, XLB_CHECK_FAIL_RESPONSE, XLB_CHECK_FAIL_RESPONSE,
        XLB_CHECK_FAIL_RESPONSE, XLB_CHECK_FAIL_RESPONSE,
    };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 10, 10, NULL);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(R.res[i], want[i], "probe %d: %s", i + 1, R.st[i].last_detail);
    cr_assert_str_eq(R.st[9].last_detail, "status 503");
}

Test(check_http, configured_status_set)
{
    static const struct script sc[] = { RESP("503 Unavailable"), RESP("200 OK"),
                                        RESP("418 Teapot") };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;

    sp.n_status = 2;
    sp.status[0] = (struct xlb_cfg_status_range){ 503, 503 };
    sp.status[1] = (struct xlb_cfg_status_range){ 410, 420 };
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 3, 3, NULL);
    cr_assert_eq(R.res[0], XLB_CHECK_PASS);
    cr_assert_eq(R.res[1], XLB_CHECK_FAIL_RESPONSE);
    cr_assert_str_eq(R.st[1].last_detail, "status 200");
    cr_assert_eq(R.res[2], XLB_CHECK_PASS);
}

static struct xlb_cfg_hc get_expect(const char *text)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);

    strcpy(sp.method, "GET");
    strcpy(sp.expect_body, text);
    return sp;
}

/* Content-Length, chunked with the text split over two chunks (and a
 * chunk extension and trailer), until close, and a 100 Continue first. */
Test(check_http, expect_body_framings)
{
    static const struct script sc[] = {
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nstatus=healthy" },
        { .wait = "\r\n\r\n",
          .out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "a;ext=1\r\nstatus=hea\r\n4\r\nlthy\r\n0\r\nX-T: 1\r\n\r\n",
          .split_ms = 20, .split_at = 60 },
        { .wait = "\r\n\r\n", .out = "HTTP/1.0 200 OK\r\n\r\nall is healthy, closing" },
        { .wait = "\r\n\r\n",
          .out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy" },
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nunhealthy?!" },
    };
    struct xlb_cfg_hc sp = get_expect("healthy");
    struct run R;
    struct srv *s;

    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 4, 4, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200, body text found");
    cr_assert(!strncmp(s->got, "GET / HTTP/1.1\r\n", 16), "request: %s", s->got);
    srv_free(s);

    strcpy(sp.expect_body, "status=healthy");
    run_scripted(&R, &sp, XLB_FAMILY_V4, &sc[1], 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "body text found");
    run_scripted(&R, &sp, XLB_FAMILY_V4, &sc[4], 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "status 200, body text not found");

    /* without expect_body a body delimited by the close is read to its end */
    static const struct script until_close[] = {
        { .wait = "\r\n\r\n", .out = "HTTP/1.0 200 OK\r\n\r\nbody", .split_ms = 30 } };
    sp = mkspec(XLB_HC_HTTP);
    strcpy(sp.method, "GET");
    run_scripted(&R, &sp, XLB_FAMILY_V4, until_close, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    cr_assert(R.st[0].last_latency_ms >= 25, "passed before the end of the body");
}

/* expect_body needs a body: with HEAD it never matches. */
Test(check_http, expect_body_with_head_never_matches)
{
    static const struct script sc[] = { { .wait = "\r\n\r\n",
                                          .out = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;

    strcpy(sp.expect_body, "healthy");
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "a HEAD response has no body");
}

/* Responses are read up to 64 KiB: text past it is not seen, text before
 * it is, and an endless body without expect_body still passes. */
Test(check_http, read_bounded_to_64k)
{
    static char far[100200], near[100200], endless[100200];
    const size_t body = 100000;
    struct script sc[3];
    struct xlb_cfg_hc sp = get_expect("MARKER");
    struct run R;
    int h;

    h = snprintf(far, sizeof(far), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body);
    memset(far + h, 'a', body);
    memcpy(far + h + 70000, "MARKER", 6);
    memcpy(near, far, (size_t)h + body);
    memset(near + h + 70000, 'a', 6);
    memcpy(near + h + 30000, "MARKER", 6);
    h = snprintf(endless, sizeof(endless), "HTTP/1.0 200 OK\r\n\r\n");
    memset(endless + h, 'b', body);
    memset(sc, 0, sizeof(sc));
    for (int i = 0; i < 3; i++)
        sc[i].wait = "\r\n\r\n";
    sc[0].out = far;
    sc[0].out_len = strlen(far);
    sc[1].out = near;
    sc[1].out_len = strlen(near);
    sc[2].out = endless;
    sc[2].out_len = strlen(endless);

    run_scripted(&R, &sp, XLB_FAMILY_V4, &sc[0], 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "body text not found");
    run_scripted(&R, &sp, XLB_FAMILY_V4, &sc[1], 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "body text found");
    sp = mkspec(XLB_HC_HTTP);
    strcpy(sp.method, "GET");
    run_scripted(&R, &sp, XLB_FAMILY_V4, &sc[2], 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
}

Test(check_http, malformed_and_truncated)
{
    static const struct script sc[] = {
        { .wait = "\r\n\r\n", .out = "SSH-2.0-not-http\r\n\r\n" },
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort" },
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n" },
        { .wait = "\r\n\r\n", .out = "" },
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" },
    };
    static const char *detail[] = { "malformed response", "closed before the response was complete",
                                    "malformed response", "closed without a response",
                                    "malformed response" };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;

    strcpy(sp.method, "GET");
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 5, 5, NULL);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(R.res[i], XLB_CHECK_FAIL_RESPONSE, "probe %d: %s", i + 1,
                     R.st[i].last_detail);
        cr_assert_str_eq(R.st[i].last_detail, detail[i]);
    }
}

Test(check_http, wrong_timeout_refused)
{
    static const struct script bad[] = { RESP("503 Service Unavailable") };
    static const struct script silent[] = { { .hold = true } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct refuser rf;
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V6, bad, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "status 503");

    sp.timeout_ms = 60;
    run_scripted(&R, &sp, XLB_FAMILY_V4, silent, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 60 ms (response)");

    rf = refuser_open(XLB_FAMILY_V6, SOCK_STREAM);
    run_check(&R, &sp, XLB_FAMILY_V6, rf.port, 2, true);
    expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused");
    close(rf.fd);
}

/* ================================================================== */
/* https                                                               */

TestSuite(check_https, .init = ignore_sigpipe, .fini = cert_cleanup);

static void run_tls(struct run *R, struct xlb_cfg_hc *sp, uint8_t family, const struct cert *ct,
                    const struct script *sc, int nsc, int want, struct srv **keep)
{
    struct srv *s = tls_server(family, ct, sc, nsc);

    run_check(R, sp, family, s->port, want, true);
    srv_stop(s);
    if (keep)
        *keep = s;
    else
        srv_free(s);
}

Test(check_https, pass_sni_host_v4_v6)
{
    static const struct script sc[] = { { .wait = "\r\n\r\n", .out = OK_EMPTY } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTPS);
    struct cert ct;
    struct run R;
    struct srv *s;
    char host[64];

    cert_make(&ct);
    strcpy(sp.host, "check.test");
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 2, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    cr_assert(s->sni_seen);
    cr_assert_str_eq(s->sni, "check.test");
    cr_assert(!strncmp(s->got, "HEAD / HTTP/1.1\r\nHost: check.test\r\n", 35), "request: %s",
              s->got);
    srv_free(s);

    /* without a host: no SNI (never an address), Host is the address */
    sp.host[0] = '\0';
    run_tls(&R, &sp, XLB_FAMILY_V6, &ct, sc, 1, 1, &s);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    cr_assert(!s->sni_seen, "SNI \"%s\" sent for an address", s->sni);
    snprintf(host, sizeof(host), "\r\nHost: [::1]:%u\r\n", s->port);
    cr_assert(strstr(s->got, host), "request: %s", s->got);
    srv_free(s);
    cert_free(&ct);
}

Test(check_https, get_expect_body_chunked)
{
    static const struct script sc[] = {
        { .wait = "\r\n\r\n",
          .out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nall o\r\n2\r\nk!\r\n0\r\n\r\n" },
    };
    struct xlb_cfg_hc sp = get_expect("all ok!");
    struct cert ct;
    struct run R;

    sp.type = XLB_HC_HTTPS;
    cert_make(&ct);
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_PASS, "body text found");
    cert_free(&ct);
}

Test(check_https, wrong_timeout_refused)
{
    static const struct script bad[] = { RESP("500 Internal Server Error") };
    static const struct script silent[] = { { .hold = true } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTPS);
    struct refuser rf;
    struct cert ct;
    struct run R;

    cert_make(&ct);
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, bad, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "status 500");

    sp.timeout_ms = 60;
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, silent, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 60 ms (TLS handshake)");

    rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    run_check(&R, &sp, XLB_FAMILY_V4, rf.port, 2, true);
    expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused");
    close(rf.fd);
    cert_free(&ct);
}

/* A server that answers in plain HTTP, and one that closes during the
 * handshake. */
Test(check_https, handshake_failures)
{
    static const struct script plain[] = { { .out = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" } };
    static const struct script closes[] = { { .wait = "\x16", .out = "" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTPS);
    struct run R;

    run_scripted(&R, &sp, XLB_FAMILY_V4, plain, 1, 2, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TLS, "TLS handshake: ");
    run_scripted(&R, &sp, XLB_FAMILY_V4, closes, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TLS, "closed during the TLS handshake");
}

Test(check_https, verify_certificate)
{
    static const struct script sc[] = { { .wait = "\r\n\r\n", .out = OK_EMPTY } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTPS);
    struct cert ct;
    struct run R;

    cert_make(&ct);
    sp.tls_verify = true;
    snprintf(sp.tls_ca, sizeof(sp.tls_ca), "%s", ct.pem);
    /* by name (SAN DNS:check.test) and by address (SAN IP:127.0.0.1) */
    strcpy(sp.host, "check.test");
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    sp.host[0] = '\0';
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_PASS, "status 200");
    /* a name the certificate does not carry */
    strcpy(sp.host, "other.test");
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TLS, "certificate: hostname mismatch");
    /* the system's CAs do not know the self-signed certificate */
    strcpy(sp.host, "check.test");
    sp.tls_ca[0] = '\0';
    run_tls(&R, &sp, XLB_FAMILY_V4, &ct, sc, 1, 1, NULL);
    expect_all(&R, XLB_CHECK_FAIL_TLS, "certificate: self-signed certificate");
    cert_free(&ct);
}

/* ================================================================== */
/* dns                                                                 */

TestSuite(check_dns);

Test(check_dns, pass_query_v4_v6)
{
    static const enum dns_mode modes[] = { DNS_GOOD };
    static const uint8_t qname[] = "\x03www\x07" "example\x04test";

    for (int i = 0; i < 2; i++) {
        struct srv *s = dns_server(families[i], modes, 1);
        struct xlb_cfg_hc sp = mkspec(XLB_HC_DNS);
        struct run R;

        strcpy(sp.dns_name, i ? "www.example.test" : "www.example.test.");
        run_check(&R, &sp, families[i], s->port, 3, true);
        srv_stop(s);
        expect_all(&R, XLB_CHECK_PASS, "NOERROR, 1 answers");
        cr_assert_eq(atomic_load(&s->nconn), 3);
        /* RD set, one question: www.example.test A IN */
        cr_assert_eq(s->got_len, 12 + sizeof(qname) + 4);
        cr_assert_eq(s->got[2] & 0x81, 0x01);
        cr_assert_eq(s->got[5], 1);
        cr_assert_eq(memcmp(s->got + 12, qname, sizeof(qname)), 0);
        cr_assert_eq(memcmp(s->got + 12 + sizeof(qname), "\0\1\0\1", 4), 0);
        srv_free(s);
    }
}

Test(check_dns, wrong_answers)
{
    static const enum dns_mode modes[] = { DNS_NXDOMAIN, DNS_NOQR };
    struct srv *s = dns_server(XLB_FAMILY_V4, modes, 2);
    struct xlb_cfg_hc sp = mkspec(XLB_HC_DNS);
    struct run R;

    run_check(&R, &sp, XLB_FAMILY_V4, s->port, 2, true);
    srv_stop(s);
    srv_free(s);
    expect_all(&R, XLB_CHECK_FAIL_RESPONSE, "not a reply (QR 0)");
    cr_assert_str_eq(R.st[0].last_detail, "NXDOMAIN (3)");
}

/* A reply with another id is not ours (it is ignored: the probe times
 * out), as is silence. */
Test(check_dns, timeout_wrong_id_and_silence)
{
    static const enum dns_mode modes[] = { DNS_WRONGID, DNS_SILENT };
    struct srv *s = dns_server(XLB_FAMILY_V6, modes, 2);
    struct xlb_cfg_hc sp = mkspec(XLB_HC_DNS);
    struct run R;

    sp.timeout_ms = 60;
    run_check(&R, &sp, XLB_FAMILY_V6, s->port, 2, true);
    srv_stop(s);
    cr_assert_eq(atomic_load(&s->nconn), 2);
    srv_free(s);
    expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 60 ms (reply)");
}

Test(check_dns, refused_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct refuser rf = refuser_open(families[i], SOCK_DGRAM);
        struct xlb_cfg_hc sp = mkspec(XLB_HC_DNS);
        struct run R;

        run_check(&R, &sp, families[i], rf.port, 2, true);
        expect_all(&R, XLB_CHECK_FAIL_CONNECT, "connection refused (port unreachable)");
        close(rf.fd);
    }
}

Test(check_dns, bad_names_rejected)
{
    static const char *bad[] = { "a..b", "-x-.", ".lead" };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_DNS);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    uv_loop_t loop;

    uv_loop_init(&loop);
    memset(sp.dns_name, 'a', 64);       /* a 64-byte label */
    sp.dns_name[64] = '\0';
    errno = 0;
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 53, true, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    for (int i = 0; i < 3; i++) {
        strcpy(sp.dns_name, bad[i]);
        struct xlb_check *c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 53, true, NULL, NULL);

        /* "-x-." is a legal wire name; the other two have empty labels */
        if (i == 1) {
            cr_assert(c);
            xlb_check_free(c);
        } else {
            cr_assert_null(c, "%s accepted", bad[i]);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ================================================================== */
/* icmp                                                                */

TestSuite(check_icmp);

/* The kernel answers on loopback, v4 and v6. */
Test(check_icmp, kernel_replies_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct xlb_cfg_hc sp = mkspec(XLB_HC_ICMP);
        struct run R;

        run_check(&R, &sp, families[i], 0, 3, false);
        expect_all(&R, XLB_CHECK_PASS, "echo reply");
        /* initially down, rise 1: up from the first pass on */
        cr_assert(R.changed[0] && !R.changed[1] && !R.changed[2]);
        cr_assert(R.st[0].up && R.st[1].up && R.st[2].up);
    }
}

/* Several checks of one loop share the raw socket; each gets its own
 * replies (127.0.0.2 and .3 answer from their own address). */
struct count {
    int n, bad;
};

static void count_cb(struct xlb_check *c, enum xlb_check_result r, bool changed, void *arg)
{
    struct count *k = arg;

    (void)changed;
    if (r != XLB_CHECK_PASS)
        k->bad++;
    if (++k->n == 4)
        xlb_check_free(c);
}

Test(check_icmp, shared_socket_many_targets)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_ICMP);
    struct count cnt[3];
    uv_loop_t loop;

    memset(cnt, 0, sizeof(cnt));
    uv_loop_init(&loop);
    for (int i = 0; i < 3; i++) {
        struct xlb_check *c;
        struct xlb_addr a;
        char text[32];
        uint8_t fam;

        snprintf(text, sizeof(text), "127.0.0.%d", i + 1);
        cr_assert_eq(xlb_addr_parse(text, &a, &fam, NULL), 0);
        c = xlb_check_new(&loop, &sp, fam, &a, 0, true, count_cb, &cnt[i]);
        cr_assert(c);
        cr_assert_eq(xlb_check_start(c, true), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cnt[i].n, 4);
        cr_assert_eq(cnt[i].bad, 0, "target %d: %d failures", i + 1, cnt[i].bad);
    }
}

static struct nscase icmp_case(uint8_t family, enum icmp_mode mode, int want)
{
    struct nscase k;

    memset(&k, 0, sizeof(k));
    k.family = family;
    k.mode = mode;
    k.want = want;
    k.spec = mkspec(XLB_HC_ICMP);
    k.spec.interval_ms = 30;
    k.spec.timeout_ms = 200;
    return k;
}

/* In a namespace where only the responder answers: it proves the echo is
 * matched by identifier, sequence and payload, not just any reply. */
Test(check_icmp, responder_pass_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct nscase k = icmp_case(families[i], IC_GOOD, 3);

        run_in_netns(&k);
        expect_all(&k.R, XLB_CHECK_PASS, "echo reply");
        cr_assert_eq(k.requests, 3, "%s: %d echo requests", FAM_NAME(k.family), k.requests);
    }
}

Test(check_icmp, wrong_payload_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct nscase k = icmp_case(families[i], IC_BADPAYLOAD, 2);

        run_in_netns(&k);
        expect_all(&k.R, XLB_CHECK_FAIL_RESPONSE, "echo reply with a different payload");
    }
}

Test(check_icmp, unreachable_v4_v6)
{
    struct nscase k4 = icmp_case(XLB_FAMILY_V4, IC_UNREACH, 2);
    struct nscase k6 = icmp_case(XLB_FAMILY_V6, IC_UNREACH, 2);

    run_in_netns(&k4);
    expect_all(&k4.R, XLB_CHECK_FAIL_CONNECT, "destination unreachable (type 3, code 1) from 127.0.0.1");
    run_in_netns(&k6);
    expect_all(&k6.R, XLB_CHECK_FAIL_CONNECT, "destination unreachable (type 1, code 3) from ::1");
}

Test(check_icmp, silence_times_out_v4_v6)
{
    for (int i = 0; i < 2; i++) {
        struct nscase k = icmp_case(families[i], IC_SILENT, 2);

        k.spec.timeout_ms = 50;
        run_in_netns(&k);
        expect_all(&k.R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 50 ms (echo reply)");
        cr_assert_eq(k.requests, 2);
    }
}

/* Every reply comes 60 ms after its request, after the 40 ms timeout and
 * during the next probe: an answer to an earlier sequence never counts. */
Test(check_icmp, late_replies_are_ignored)
{
    for (int i = 0; i < 2; i++) {
        struct nscase k = icmp_case(families[i], IC_LATE, 4);

        k.late_ms = 60;
        k.spec.interval_ms = 50;
        k.spec.timeout_ms = 40;
        run_in_netns(&k);
        expect_all(&k.R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 40 ms");
    }
}

/* A correct reply from another address (127.0.0.9) is not the target's. */
Test(check_icmp, reply_from_another_address_is_ignored)
{
    struct nscase k = icmp_case(XLB_FAMILY_V4, IC_OTHERSRC, 2);

    k.spec.timeout_ms = 50;
    run_in_netns(&k);
    expect_all(&k.R, XLB_CHECK_FAIL_TIMEOUT, "timeout after 50 ms (echo reply)");
    cr_assert_eq(k.requests, 2);
}

static const char *icmp_free_body(struct nscase *k)
{
    int cbs = -1;
    const char *err = free_in_flight_q(&k->spec, k->family, 0, 30, &cbs);

    if (!err && cbs != 0)
        err = "a freed icmp check called back";
    return err;
}

Test(check_icmp, free_in_flight)
{
    struct nscase k = icmp_case(XLB_FAMILY_V6, IC_SILENT, 0);

    k.spec.timeout_ms = 1000;
    k.body = icmp_free_body;
    run_in_netns(&k);
    cr_assert_eq(k.requests, 1);
}

/* ================================================================== */
/* none                                                                */

TestSuite(check_none);

Test(check_none, always_up_no_traffic)
{
    struct refuser rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    struct xlb_cfg_hc sp = mkspec(XLB_HC_NONE);
    struct run R;

    sp.rise = 2;
    /* the port would refuse: nothing is sent, the check is up */
    run_check(&R, &sp, XLB_FAMILY_V4, rf.port, 3, false);
    expect_all(&R, XLB_CHECK_PASS, "no check");
    cr_assert(!R.changed[0] && R.changed[1] && !R.changed[2]);
    cr_assert(!R.st[0].up && R.st[1].up && R.st[2].up);
    close(rf.fd);
}

/* ================================================================== */
/* core: rise/fall, timing, freeing, statistics, API                   */

TestSuite(check_core, .init = ignore_sigpipe);

/*
 * rise 2, fall 3, initially up; the server answers per probe:
 *   probe  1  2  3  4  5  6  7  8  9 10 11 12
 *   status ok -- -- ok -- -- -- ok -- ok ok ok
 * Two failures (2, 3) are not enough; 5-7 are: down at probe 7.  One pass
 * (8) is not enough to rise; 10-11 are: up at probe 11.
 */
Test(check_core, rise_fall_exact_probes)
{
    static const struct script sc[] = {
        RESP("200 OK"), RESP("503 X"), RESP("503 X"), RESP("200 OK"), RESP("503 X"),
        RESP("503 X"), RESP("503 X"), RESP("200 OK"), RESP("503 X"), RESP("200 OK"),
        RESP("200 OK"), RESP("200 OK"),
    };
    static const bool up[] = { 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1 };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
    struct run R;

    sp.rise = 2;
    sp.fall = 3;
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 12, 12, NULL);
    for (int i = 0; i < 12; i++) {
        bool pass = strstr(sc[i].out, " 200 ") != NULL;

        cr_assert_eq(R.res[i] == XLB_CHECK_PASS, pass, "probe %d", i + 1);
        cr_assert_eq(R.st[i].up, up[i], "probe %d: up %d", i + 1, R.st[i].up);
        cr_assert_eq(R.changed[i], i == 6 || i == 10, "probe %d: changed %d", i + 1,
                     R.changed[i]);
        cr_assert_eq(R.st[i].probes, (uint64_t)i + 1);
    }
    cr_assert_eq(R.st[6].fail_streak, 3);
    cr_assert_eq(R.st[10].ok_streak, 2);
    cr_assert_eq(R.st[11].failures, 6);
}

/* Initially down: the first change needs `rise` passes too. */
Test(check_core, initially_down_rises_after_rise_passes)
{
    static const struct script sc[] = { { .out = "" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct run R;

    sp.rise = 3;
    {
        struct srv *s = tcp_server(XLB_FAMILY_V4, sc, 1);

        run_check(&R, &sp, XLB_FAMILY_V4, s->port, 4, false);
        srv_stop(s);
        srv_free(s);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(R.res[i], XLB_CHECK_PASS);
        cr_assert_eq(R.changed[i], i == 2, "probe %d", i + 1);
        cr_assert_eq(R.st[i].up, i >= 2);
    }
}

Test(check_core, statistics)
{
    struct refuser rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct timespec ts;
    uint64_t before, after;
    struct run R;

    sp.fall = 2;
    clock_gettime(CLOCK_REALTIME, &ts);
    before = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    run_check(&R, &sp, XLB_FAMILY_V4, rf.port, 3, true);
    clock_gettime(CLOCK_REALTIME, &ts);
    after = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < 3; i++) {
        const struct xlb_check_stats *st = &R.st[i];

        cr_assert_eq(st->last, XLB_CHECK_FAIL_CONNECT);
        cr_assert_str_eq(st->last_detail, "connection refused");
        cr_assert(st->last_time_ms >= before && st->last_time_ms <= after);
        cr_assert(i == 0 || st->last_time_ms >= R.st[i - 1].last_time_ms);
        cr_assert(st->last_latency_ms >= 0 && st->last_latency_ms < 100);
        cr_assert_eq(st->probes, (uint64_t)i + 1);
        cr_assert_eq(st->failures, (uint64_t)i + 1);
        cr_assert_eq(st->fail_streak, (uint32_t)i + 1);
        cr_assert_eq(st->ok_streak, 0);
        cr_assert_eq(st->up, i == 0);
        cr_assert_eq(R.changed[i], i == 1);
    }
    close(rf.fd);
}

/* Probes keep the interval's cadence: six probes 40 ms apart span five
 * intervals, however late single timers fire. */
Test(check_core, interval_cadence)
{
    static const struct script sc[] = { { .out = "" } };
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct run R;

    sp.interval_ms = 40;
    run_scripted(&R, &sp, XLB_FAMILY_V4, sc, 1, 6, NULL);
    expect_all(&R, XLB_CHECK_PASS, NULL);
    cr_assert(R.t[5] - R.t[0] >= 195 && R.t[5] - R.t[0] <= 400, "six probes in %llu ms",
              (unsigned long long)(R.t[5] - R.t[0]));
}

/* Never two probes of one check at once: with timeout == interval, and
 * with timeout > interval (probes then run back to back), the server never
 * sees a second connection while the previous one is open. */
Test(check_core, never_two_probes_at_once)
{
    static const struct script silent[] = { { .hold = true } };
    static const uint32_t timeouts[] = { 30, 50 };
    static const uint32_t intervals[] = { 30, 20 };

    for (int i = 0; i < 2; i++) {
        struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTP);
        struct run R;
        struct srv *s;

        sp.timeout_ms = timeouts[i];
        sp.interval_ms = intervals[i];
        run_scripted(&R, &sp, XLB_FAMILY_V4, silent, 1, 5, &s);
        expect_all(&R, XLB_CHECK_FAIL_TIMEOUT, NULL);
        cr_assert_eq(atomic_load(&s->nconn), 5);
        cr_assert_eq(s->max_live, 1, "%d connections open at once", s->max_live);
        for (int k = 1; k < 5; k++)
            cr_assert(R.t[k] - R.t[k - 1] >= timeouts[i] - 1, "probes %d and %d overlap", k,
                      k + 1);
        srv_free(s);
    }
}

/* The first probe starts at a random point of the first interval. */
struct jit {
    uint64_t t0;
    uv_loop_t *loop;
    uint64_t first[50];
    int n;
};

static void jit_cb(struct xlb_check *c, enum xlb_check_result r, bool changed, void *arg)
{
    struct jit *j = (struct jit *)((uintptr_t *)arg)[0];
    int idx = (int)((uintptr_t *)arg)[1];

    (void)r;
    (void)changed;
    j->first[idx] = uv_now(j->loop) - j->t0;
    j->n++;
    xlb_check_free(c);
}

Test(check_core, start_jitter)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_NONE);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    uintptr_t args[50][2];
    uint64_t lo = UINT64_MAX, hi = 0;
    struct jit j;
    uv_loop_t loop;

    memset(&j, 0, sizeof(j));
    sp.interval_ms = 200;
    uv_loop_init(&loop);
    j.loop = &loop;
    j.t0 = uv_now(&loop);
    for (int i = 0; i < 50; i++) {
        struct xlb_check *c;

        args[i][0] = (uintptr_t)&j;
        args[i][1] = (uintptr_t)i;
        c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 0, true, jit_cb, args[i]);
        cr_assert(c);
        cr_assert_eq(xlb_check_start(c, false), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(j.n, 50);
    for (int i = 0; i < 50; i++) {
        lo = j.first[i] < lo ? j.first[i] : lo;
        hi = j.first[i] > hi ? j.first[i] : hi;
    }
    /* 50 uniform starts in [0, 200): inside (with slack for a loaded
     * host), and not bunched */
    cr_assert(hi < 300, "a first probe at %llu ms", (unsigned long long)hi);
    cr_assert(hi - lo >= 100, "first probes within %llu ms of each other",
              (unsigned long long)(hi - lo));
}

/* Freed with a probe in flight, for each kind of resource a probe holds:
 * a pending connect, a connection waiting for the answer, a TLS session
 * in its handshake, a UDP socket.  (icmp: check_icmp.free_in_flight.) */
Test(check_core, free_in_flight)
{
    static const struct script silent[] = { { .hold = true } };
    struct fullq q = fullq_open(XLB_FAMILY_V4);
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    static const enum dns_mode dmodes[] = { DNS_SILENT };
    struct srv *s;

    sp.timeout_ms = 1000;
    free_in_flight(&sp, XLB_FAMILY_V4, q.port);
    fullq_close(&q);

    s = tcp_server(XLB_FAMILY_V4, silent, 1);
    sp.type = XLB_HC_HTTP;
    free_in_flight(&sp, XLB_FAMILY_V4, s->port);
    sp.type = XLB_HC_HTTPS;
    free_in_flight(&sp, XLB_FAMILY_V4, s->port);
    sp.type = XLB_HC_SMTP;
    free_in_flight(&sp, XLB_FAMILY_V4, s->port);
    srv_stop(s);
    cr_assert_eq(atomic_load(&s->nconn), 3);
    srv_free(s);

    s = dns_server(XLB_FAMILY_V4, dmodes, 1);
    sp.type = XLB_HC_DNS;
    free_in_flight(&sp, XLB_FAMILY_V4, s->port);
    srv_stop(s);
    cr_assert_eq(atomic_load(&s->nconn), 1);
    srv_free(s);
}

/* Freed before it ever started, and after start before the first probe. */
Test(check_core, free_before_probing)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_HTTPS);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    struct fif f = { 0, NULL };
    struct xlb_check *c;
    uv_loop_t loop;

    sp.interval_ms = 10000;
    uv_loop_init(&loop);
    c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 443, true, fif_cb, &f);
    cr_assert(c);
    xlb_check_free(c);
    c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 443, true, fif_cb, &f);
    cr_assert(c);
    cr_assert_eq(xlb_check_start(c, false), 0);
    xlb_check_free(c);
    xlb_check_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(f.cbs, 0);
}

/* A reload hands a running check to a new owner: later callbacks get the
 * new argument. */
Test(check_core, set_arg_moves_the_callback_argument)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_NONE);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    struct count before = { 0, 0 }, after = { 0, 0 };
    struct xlb_check *c;
    uv_loop_t loop;

    uv_loop_init(&loop);
    c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 0, true, count_cb, &before);
    cr_assert(c);
    xlb_check_set_arg(c, &after);
    cr_assert_eq(xlb_check_start(c, true), 0);
    uv_run(&loop, UV_RUN_DEFAULT);      /* count_cb frees it after 4 */
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(before.n, 0);
    cr_assert_eq(after.n, 4);
}

Test(check_core, api_errors_and_names)
{
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    struct xlb_check *c;
    uv_loop_t loop;

    uv_loop_init(&loop);
    errno = 0;
    cr_assert_null(xlb_check_new(NULL, &sp, XLB_FAMILY_V4, &a, 80, true, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(xlb_check_new(&loop, NULL, XLB_FAMILY_V4, &a, 80, true, NULL, NULL));
    cr_assert_null(xlb_check_new(&loop, &sp, 5, &a, 80, true, NULL, NULL));
    /* tcp and generic have no default port */
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 0, true, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    sp.type = (enum xlb_cfg_hc_type)99;
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 80, true, NULL, NULL));
    sp = mkspec(XLB_HC_HTTP);
    strcpy(sp.method, "POST");
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 80, true, NULL, NULL));
    strcpy(sp.method, "get");   /* case does not matter */
    strcpy(sp.path, "/a b");    /* a space would split the request line */
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 80, true, NULL, NULL));
    sp = mkspec(XLB_HC_HTTPS);
    sp.tls_verify = true;
    strcpy(sp.tls_ca, "/nonexistent/ca.pem");
    errno = 0;
    cr_assert_null(xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 443, true, NULL, NULL));
    cr_assert_eq(errno, ENOENT);

    /* port 0 takes the kind's well-known port; start twice fails */
    sp = mkspec(XLB_HC_HTTP);
    strcpy(sp.method, "get");
    c = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, 0, true, NULL, NULL);
    cr_assert(c);
    cr_assert(xlb_check_stats(c)->up);
    cr_assert_eq(xlb_check_start(c, false), 0);
    cr_assert_eq(xlb_check_start(c, false), -EALREADY);
    xlb_check_free(c);
    cr_assert_eq(xlb_check_start(NULL, false), -EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);

    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_PASS), "pass");
    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_FAIL_CONNECT), "connect");
    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_FAIL_TIMEOUT), "timeout");
    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_FAIL_RESPONSE), "response");
    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_FAIL_TLS), "tls");
    cr_assert_str_eq(xlb_check_result_name(XLB_CHECK_FAIL_INTERNAL), "internal");
}

/* ================================================================== */
/* xlb_http_fetch                                                      */

TestSuite(check_fetch, .init = ignore_sigpipe);

struct fres {
    int calls, status;
    bool body_null;
    size_t len;
    char body[8192];
};

static void fetch_cb(int status, const char *body, size_t len, void *arg)
{
    struct fres *F = arg;

    F->calls++;
    F->status = status;
    F->body_null = body == NULL;
    F->len = len;
    if (body && len < sizeof(F->body)) {
        memcpy(F->body, body, len);
        F->body[len] = '\0';
        cr_assert_eq(body[len], '\0', "the body is NUL-terminated");
    }
}

static void do_fetch(struct fres *F, uint8_t family, uint16_t port, const char *host,
                     const char *path, uint32_t tmo)
{
    struct xlb_addr a = loopback(family);
    uv_loop_t loop;

    memset(F, 0, sizeof(*F));
    uv_loop_init(&loop);
    cr_assert_eq(xlb_http_fetch(&loop, family, &a, port, host, path, tmo, fetch_cb, F), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(F->calls, 1);
}

Test(check_fetch, bodies)
{
    static char big[12000];
    struct script sc[] = {
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nload 42\n" },
        { .wait = "\r\n\r\n",
          .out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n17\r\n1\r\n%\r\n0\r\n\r\n" },
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope" },
        { .wait = "\r\n\r\n", .out = big },
    };
    struct fres F;
    struct srv *s;
    char host[64];
    int h = snprintf(big, sizeof(big), "HTTP/1.0 200 OK\r\n\r\n");

    memset(big + h, 'x', 10000);
    s = tcp_server(XLB_FAMILY_V4, sc, 4);
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 1000);
    cr_assert_eq(F.status, 200);
    cr_assert_str_eq(F.body, "load 42\n");
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 1000);
    cr_assert_eq(F.status, 200);
    cr_assert_str_eq(F.body, "17%");
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 1000);
    cr_assert_eq(F.status, 404);
    cr_assert_str_eq(F.body, "nope");
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 1000);
    cr_assert_eq(F.status, 200);
    cr_assert_eq(F.len, 4096, "read %zu bytes of body", F.len);
    srv_stop(s);
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", s->port);
    cr_assert(!strncmp(s->got, "GET /load HTTP/1.1\r\n", 20), "request: %s", s->got);
    cr_assert(strstr(s->got, host), "request: %s", s->got);
    cr_assert(strstr(s->got, "\r\nConnection: close\r\n"), "request: %s", s->got);
    srv_free(s);
}

Test(check_fetch, v6_host)
{
    static const struct script sc[] = {
        { .wait = "\r\n\r\n", .out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n50" } };
    struct srv *s = tcp_server(XLB_FAMILY_V6, sc, 1);
    struct fres F;

    do_fetch(&F, XLB_FAMILY_V6, s->port, "lb.test", "/x", 1000);
    srv_stop(s);
    cr_assert_eq(F.status, 200);
    cr_assert_str_eq(F.body, "50");
    cr_assert(strstr(s->got, "\r\nHost: lb.test\r\n"), "request: %s", s->got);
    srv_free(s);
}

Test(check_fetch, failures_call_back_once)
{
    static const struct script silent[] = { { .hold = true } };
    static const struct script junk[] = { { .wait = "\r\n\r\n", .out = "junk\r\n\r\n" } };
    struct refuser rf = refuser_open(XLB_FAMILY_V4, SOCK_STREAM);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    struct fres F;
    struct srv *s;
    uv_loop_t loop;
    double t0;

    do_fetch(&F, XLB_FAMILY_V4, rf.port, NULL, "/load", 1000);
    cr_assert_eq(F.status, -ECONNREFUSED);
    cr_assert(F.body_null);
    close(rf.fd);

    s = tcp_server(XLB_FAMILY_V4, silent, 1);
    t0 = now_ms();
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 80);
    cr_assert_eq(F.status, -ETIMEDOUT);
    cr_assert(F.body_null);
    cr_assert(now_ms() - t0 >= 75 && now_ms() - t0 < 1000);
    srv_stop(s);
    srv_free(s);

    s = tcp_server(XLB_FAMILY_V4, junk, 1);
    do_fetch(&F, XLB_FAMILY_V4, s->port, NULL, "/load", 1000);
    cr_assert_eq(F.status, -EPROTO);
    srv_stop(s);
    srv_free(s);

    /* synchronous failures: no callback */
    memset(&F, 0, sizeof(F));
    uv_loop_init(&loop);
    cr_assert_eq(xlb_http_fetch(&loop, XLB_FAMILY_V4, &a, 80, NULL, "load", 100, fetch_cb, &F),
                 -EINVAL);
    cr_assert_eq(xlb_http_fetch(&loop, XLB_FAMILY_V4, &a, 0, NULL, "/load", 100, fetch_cb, &F),
                 -EINVAL);
    cr_assert_eq(xlb_http_fetch(&loop, 7, &a, 80, NULL, "/load", 100, fetch_cb, &F), -EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(F.calls, 0);
}

/* ================================================================== */
/* scale                                                               */

TestSuite(check_scale);

#define SCALE_N 2000
#define SCALE_PROBES 10

struct scale {
    int calls[SCALE_N];
    int fails[SCALE_N];
    int idx[SCALE_N];
    struct xlb_check *c[SCALE_N];
    int done;
    bool watchdog;
};

static struct scale *g_scale;

static void scale_cb(struct xlb_check *c, enum xlb_check_result r, bool changed, void *arg)
{
    int i = *(int *)arg;

    (void)changed;
    if (r != XLB_CHECK_PASS)
        g_scale->fails[i]++;
    if (++g_scale->calls[i] == SCALE_PROBES) {
        xlb_check_free(c);
        g_scale->c[i] = NULL;
        g_scale->done++;
    }
}

static void scale_watchdog(uv_timer_t *t)
{
    g_scale->watchdog = true;
    for (int i = 0; i < SCALE_N; i++)
        xlb_check_free(g_scale->c[i]);
    uv_close((uv_handle_t *)t, NULL);
}

/*
 * 2000 tcp checks at a 100 ms interval against one listener, on one
 * thread, each running ten probes (about 1 s): every one of the 20000
 * probes completes and passes, within a bound.  The timeout is the default
 * 3 s so that a SYN the listener drops under load (retransmitted after
 * 1 s) still completes; the run is bounded by a 10 s watchdog.
 */
Test(check_scale, tcp_2000_checks)
{
    struct srv *s = calloc(1, sizeof(*s));
    struct xlb_cfg_hc sp = mkspec(XLB_HC_TCP);
    struct xlb_addr a = loopback(XLB_FAMILY_V4);
    long total = 0;
    uv_loop_t loop;
    uv_timer_t wd;
    double t0, el;

    cr_assert(s);
    g_scale = calloc(1, sizeof(*g_scale));
    cr_assert(g_scale);
    s->accept_close = true;
    srv_start(s, XLB_FAMILY_V4, SOCK_STREAM, 4096);
    sp.interval_ms = 100;
    sp.timeout_ms = 3000;
    uv_loop_init(&loop);
    for (int i = 0; i < SCALE_N; i++) {
        g_scale->idx[i] = i;
        g_scale->c[i] = xlb_check_new(&loop, &sp, XLB_FAMILY_V4, &a, s->port, true, scale_cb,
                                      &g_scale->idx[i]);
        cr_assert(g_scale->c[i]);
        cr_assert_eq(xlb_check_start(g_scale->c[i], false), 0);
    }
    uv_timer_init(&loop, &wd);
    uv_timer_start(&wd, scale_watchdog, 10000, 0);
    uv_unref((uv_handle_t *)&wd);
    t0 = now_ms();
    uv_run(&loop, UV_RUN_DEFAULT);
    el = now_ms() - t0;
    if (!uv_is_closing((uv_handle_t *)&wd))
        uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    srv_stop(s);
    cr_assert(!g_scale->watchdog, "only %d of %d checks completed in 10 s", g_scale->done,
              SCALE_N);
    cr_assert_eq(g_scale->done, SCALE_N);
    for (int i = 0; i < SCALE_N; i++) {
        cr_assert_eq(g_scale->calls[i], SCALE_PROBES, "check %d: %d probes", i,
                     g_scale->calls[i]);
        cr_assert_eq(g_scale->fails[i], 0, "check %d: %d failures", i, g_scale->fails[i]);
        total += g_scale->calls[i];
    }
    /* nine intervals after a start within the first: at least 0.9 s */
    cr_assert(el >= 900, "ten probes at 100 ms took %.0f ms", el);
    cr_assert_eq(atomic_load(&s->nconn), total, "%d connections for %ld probes",
                 atomic_load(&s->nconn), total);
    srv_free(s);
    free(g_scale);
}
