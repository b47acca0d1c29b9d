// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlbt-backend: an HTTP/1.1 origin server for the proxy's end-to-end tests.
 *
 *   xlbt-backend --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...]
 *                [--ready-file PATH] [--max-conns N] [--log]
 *
 * ADDR is IPv4 or [IPv6] (IPv6 sockets are IPv6-only). Port 0 picks a free
 * port. Once every listener is up, the bound "ADDR:PORT" lines (one per
 * --listen, in order) are written to PATH atomically (PATH.tmp.PID, then
 * rename), so a test waits for the file to appear and reads its ports.
 *
 * One thread per connection, at most --max-conns (default 256) at a time;
 * connections beyond that are accepted and closed at once. Keep-alive is the
 * default for HTTP/1.1 and needs "Connection: keep-alive" on HTTP/1.0.
 * Pipelined requests are answered in order. Request bodies (Content-Length or
 * chunked, decoded) are read before the answer; "Expect: 100-continue" on an
 * HTTP/1.1 request with a body is answered with "100 Continue" first. A
 * request head is at most 64 KiB (431 otherwise); a malformed request gets a
 * 400 and the connection is closed.
 *
 * Every response carries X-Backend: NAME, X-Conn: N (serial number of the TCP
 * connection on this backend, from 1, never reset) and X-Req: M (serial of the
 * request on its connection, from 1), and Content-Length unless it is chunked
 * (204 and 304 carry neither). Responses are HTTP/1.1.
 *
 * Routes (any method; the path is the target up to '?'):
 *   /                    (any other path) 200, "NAME METHOD TARGET\n"
 *   /headers             the request head exactly as received (request line,
 *                        fields and the empty line that ends them)
 *   /count               number of requests received so far, "N\n", not
 *                        counting /count, /stats and /reset
 *   /stats               {"requests":N,"connections":N,"active":N}\n
 *   /reset               zeroes the requests and connections counters, "ok\n"
 *   /echo                reads the body, answers {"length":N,"fnv1a64":"hex"}\n
 *                        (FNV-1a 64 of the received bytes, 16 hex digits)
 *   /close               closes the connection (FIN) without answering
 *   /rst                 resets the connection (RST) without answering
 *   /close-after-headers a status line and headers announcing
 *                        Content-Length: 100, then close without a body
 *   /hang                never answers; returns when the client closes
 * Query parameters (percent-decoded; '+' is not a space), combinable:
 *   status=N             answer with status N (200..599; 204/304 have no body)
 *   size=N               body of N bytes: byte i is '\n' if i % 64 == 63,
 *                        else 'a' + i % 26 (replaces the body of / and
 *                        /headers; streamed, never held in memory)
 *   chunked=1            send the body chunked, chunk k (from 0) of
 *                        1 + (k * 7919) % 16384 bytes (HTTP/1.0: plain)
 *   delay_ms=N           wait N ms before the response head
 *   body_delay_ms=N      wait N ms between the head and the body
 *   setcookie=NAME=VAL   adds "Set-Cookie: NAME=VAL; Path=/" (repeatable)
 *   h=Name:Value         adds the header "Name: Value" (repeatable; an h= with
 *                        Content-Type replaces the default Content-Type)
 *   close=1              answer with "Connection: close" and close
 * HEAD gets the headers a GET would get, without the body.
 *
 * --log prints one line per request on stderr. SIGTERM or SIGINT close every
 * listener and connection and end the server with status 0 (1 on a runtime
 * error, 2 on bad usage).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "xlbt_tool.h"

#define MAX_LISTEN 32
#define MAX_NAME 255
#define HEAD_MAX 65536                /* request head limit, and the read buffer */
#define EXTRA_MAX 16384               /* headers added by h= and setcookie= */
#define RESP_HEAD_MAX (EXTRA_MAX + 1024)
#define MAX_BODY_SIZE (1ULL << 50)    /* largest size= */
#define MAX_DELAY_MS 3600000u
#define CLOSE_DRAIN_MS 1000           /* wait for the peer's FIN after ours */
#define CLOSE_DRAIN_BYTES (1u << 20)
#define EXIT_WAIT_MS 5000             /* connections to end at exit */
#define THREAD_STACK (256 * 1024)
#define CHUNK_MAX 16384
/* The size= pattern repeats every lcm(26, 64) = 832 bytes. */
#define PATTERN_PERIOD 832
#define PATTERN_LEN (PATTERN_PERIOD * 100)
#define PIECE_MAX 65536               /* largest send() of a plain body */

enum end_mode { END_CLOSE, END_GRACEFUL, END_RESET };

struct conn {
    int fd;
    unsigned long long serial;
    unsigned long long nreq;
    struct conn *prev, *next;       /* registry, under reg_lock */
    size_t rpos, rend;              /* unread input is buf[rpos, rend) */
    size_t head_len;
    char buf[HEAD_MAX];
    char head[HEAD_MAX];            /* the current request head, as received */
    char scratch[HEAD_MAX];         /* percent-decoded query values */
    char extra[EXTRA_MAX];          /* added response header lines */
};

struct request {
    const char *method, *target, *path, *query;
    int method_len, target_len, path_len, query_len;
    int minor;                      /* HTTP/1.minor */
    bool has_cl, chunked;
    uint64_t cl;
    bool conn_close, conn_keepalive, expect100;
};

struct params {
    int status;
    bool has_size, chunked, close;
    uint64_t size;
    unsigned delay_ms, body_delay_ms;
    size_t extra_len;
    bool own_ctype;
};

enum body_kind { BODY_NONE, BODY_BUF, BODY_PATTERN };

struct body {
    enum body_kind kind;
    const char *data;               /* BODY_BUF */
    uint64_t len;
    const char *ctype;
};

static const char *name;
static size_t name_len;
static bool log_requests;
static unsigned max_conns = 256;
static char pattern[PATTERN_LEN];
static int stop_pipe[2] = { -1, -1 };
static atomic_bool stopping;
static atomic_ullong n_requests, n_connections;
static unsigned long long conn_serial, n_rejected;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static struct conn *conns;
static unsigned n_active;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xlbt-backend --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...]\n"
            "                    [--ready-file PATH] [--max-conns N] [--log]\n"
            "  HTTP/1.1 test origin. ADDR is IPv4 or [IPv6]; port 0 picks a free port and\n"
            "  the bound ADDR:PORT lines are written to PATH once all listeners are up.\n"
            "  Routes: / /headers /count /stats /reset /echo /close /rst\n"
            "          /close-after-headers /hang\n"
            "  Query:  status= size= chunked=1 delay_ms= body_delay_ms= setcookie=N=V\n"
            "          h=Name:Value close=1\n"
            "  Ends on SIGTERM/SIGINT with status 0.\n");
}

/* Milliseconds of CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms milliseconds. Returns 0, or -ECANCELED when the server is stopping. */
static int sleep_ms(unsigned ms)
{
    int64_t end = now_ms() + ms;

    for (;;) {
        struct pollfd p = { .fd = stop_pipe[0], .events = POLLIN };
        int64_t left = end - now_ms();
        int n;

        if (atomic_load(&stopping))
            return -ECANCELED;
        if (left <= 0)
            return 0;
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return -ECANCELED;
    }
}

/* Send every byte of iov[0..cnt) on a blocking socket (iov is consumed). Returns 0 or -errno. */
static int send_iov(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        size_t left;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Send len bytes from p. Returns 0 or -errno. */
static int send_all(int fd, const void *p, size_t len)
{
    struct iovec iov = { .iov_base = (void *)p, .iov_len = len };

    return send_iov(fd, &iov, 1);
}

/*
 * Read more input into c->buf, compacting it first. Returns 1 when bytes were
 * added, 0 at end of stream, -ENOBUFS when the buffer is full of unread
 * input, or another negative errno.
 */
static int conn_fill(struct conn *c)
{
    ssize_t n;

    if (c->rpos == c->rend) {
        c->rpos = c->rend = 0;
    } else if (c->rend == sizeof(c->buf) && c->rpos > 0) {
        memmove(c->buf, c->buf + c->rpos, c->rend - c->rpos);
        c->rend -= c->rpos;
        c->rpos = 0;
    }
    if (c->rend == sizeof(c->buf))
        return -ENOBUFS;
    do
        n = recv(c->fd, c->buf + c->rend, sizeof(c->buf) - c->rend, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    c->rend += (size_t)n;
    return 1;
}

/*
 * Read one line (up to '\n') of the input. On success returns 1 with *line
 * and *len (without CR LF) pointing into c->buf, valid until the next read.
 * Returns 0 at end of stream, -ENOBUFS for a line longer than the buffer.
 */
static int conn_getline(struct conn *c, const char **line, size_t *len)
{
    size_t scanned = 0;

    for (;;) {
        char *s = c->buf + c->rpos;
        char *nl = memchr(s + scanned, '\n', c->rend - c->rpos - scanned);
        int rc;

        if (nl) {
            size_t l = (size_t)(nl - s);

            c->rpos += l + 1;
            if (l > 0 && s[l - 1] == '\r')
                l--;
            *line = s;
            *len = l;
            return 1;
        }
        scanned = c->rend - c->rpos;
        rc = conn_fill(c);
        if (rc <= 0)
            return rc;
    }
}

/* FNV-1a 64 state of the bytes of an /echo body. */
struct fnv {
    uint64_t h, len;
};

/* Hash n more bytes from p into f. */
static void fnv_update(struct fnv *f, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        f->h ^= (unsigned char)p[i];
        f->h *= 0x100000001b3ULL;
    }
    f->len += n;
}

/* Consume n body bytes of the input, hashing them into f if not NULL. Returns 0 or negative. */
static int consume(struct conn *c, uint64_t n, struct fnv *f)
{
    while (n > 0) {
        size_t take;

        if (c->rpos == c->rend) {
            int rc = conn_fill(c);

            if (rc <= 0)
                return rc < 0 ? rc : -EPIPE;
        }
        take = c->rend - c->rpos;
        if (take > n)
            take = (size_t)n;
        if (f)
            fnv_update(f, c->buf + c->rpos, take);
        c->rpos += take;
        n -= take;
    }
    return 0;
}

/* Value of the hex digit ch, or -1. */
static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Map a conn_getline result inside a body: 1 stays, end of stream and errors become negative. */
static int body_line(int rc)
{
    if (rc == 0)
        return -EPIPE;
    if (rc == -ENOBUFS)
        return -EBADMSG;
    return rc;
}

/*
 * Read a chunked body up to and including its trailer section, hashing the
 * decoded bytes into f if not NULL. Returns 0, -EBADMSG for a malformed
 * body, or another negative errno when the stream broke.
 */
static int consume_chunked(struct conn *c, struct fnv *f)
{
    const char *line;
    size_t len;
    int rc;

    for (;;) {
        size_t i = 0, digits = 0;
        uint64_t size = 0;
        int d;

        rc = body_line(conn_getline(c, &line, &len));
        if (rc < 0)
            return rc;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        for (; i < len && (d = hexval(line[i])) >= 0; i++, digits++) {
            if (size >> 56)
                return -EBADMSG;
            size = size * 16 + (uint64_t)d;
        }
        /* Chunk extensions after ';' (or whitespace) are ignored. */
        if (digits == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
            return -EBADMSG;
        if (size == 0)
            break;
        rc = consume(c, size, f);
        if (rc < 0)
            return rc;
        rc = body_line(conn_getline(c, &line, &len));
        if (rc < 0)
            return rc;
        if (len != 0)
            return -EBADMSG;
    }
    /* Trailer fields, ignored, up to the empty line. */
    do {
        rc = body_line(conn_getline(c, &line, &len));
        if (rc < 0)
            return rc;
    } while (len != 0);
    return 0;
}

/*
 * Read the next request head into c->head (empty lines before it skipped).
 * Returns 1 on success, 0 when the client closed between requests,
 * -E2BIG when the head exceeds HEAD_MAX, or another negative errno.
 */
static int read_head(struct conn *c)
{
    size_t scan = 0;

    for (;;) {
        while (c->rpos < c->rend && (c->buf[c->rpos] == '\r' || c->buf[c->rpos] == '\n'))
            c->rpos++;

        const char *s = c->buf + c->rpos;
        size_t avail = c->rend - c->rpos;

        for (size_t i = scan; i < avail; i++) {
            size_t end = 0;

            if (s[i] != '\n')
                continue;
            if (i + 1 < avail && s[i + 1] == '\n')
                end = i + 2;
            else if (i + 2 < avail && s[i + 1] == '\r' && s[i + 2] == '\n')
                end = i + 3;
            if (end) {
                memcpy(c->head, s, end);
                c->head_len = end;
                c->rpos += end;
                return 1;
            }
        }
        scan = avail >= 2 ? avail - 2 : 0;
        if (avail >= HEAD_MAX)
            return -E2BIG;
        /* conn_fill may move the unread bytes to the start; scan is relative. */
        int rc = conn_fill(c);

        if (rc == 0)
            return avail == 0 ? 0 : -EPIPE;
        if (rc < 0)
            return rc == -ENOBUFS ? -E2BIG : rc;
    }
}

/* Case-insensitive comparison of p[0..n) with the NUL-terminated s. */
static bool eq_ci(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

/* Whether the comma-separated list v[0..n) holds the token tok (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0;

    while (i < n) {
        size_t start, end;

        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start && eq_ci(v + start, end - start, tok))
            return true;
    }
    return false;
}

/* The last token of the comma-separated list v[0..n) is "chunked". */
static bool last_is_chunked(const char *v, size_t n)
{
    size_t end = n, start;

    while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    start = end;
    while (start > 0 && v[start - 1] != ',' && v[start - 1] != ' ' && v[start - 1] != '\t')
        start--;
    return eq_ci(v + start, end - start, "chunked");
}

/* Parse c->head into r (pointers into c->head). Returns 0 or -EBADMSG. */
static int parse_head(struct conn *c, struct request *r)
{
    const char *p = c->head, *end = c->head + c->head_len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le, *sp1, *sp2;
    bool has_te = false, te_chunked = false;

    memset(r, 0, sizeof(*r));
    le = nl;
    if (le > p && le[-1] == '\r')
        le--;
    sp1 = memchr(p, ' ', (size_t)(le - p));
    if (!sp1 || sp1 == p)
        return -EBADMSG;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return -EBADMSG;
    if (le - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) || sp2[8] < '0' || sp2[8] > '9')
        return -EBADMSG;
    for (const char *q = p; q < sp1; q++)
        if (*q <= ' ' || *q >= 127)
            return -EBADMSG;
    r->method = p;
    r->method_len = (int)(sp1 - p);
    r->target = sp1 + 1;
    r->target_len = (int)(sp2 - sp1 - 1);
    r->minor = sp2[8] - '0';

    /* Origin form, or the path of an absolute form. */
    const char *t = r->target, *tend = sp2;

    if (tend - t > 7 && (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0)) {
        const char *slash = memchr(t + 7, '/', (size_t)(tend - t - 7));
        const char *qm = memchr(t + 7, '?', (size_t)(tend - t - 7));

        if (qm && (!slash || qm < slash))
            slash = qm;
        t = slash ? slash : tend;
    }
    const char *qm = memchr(t, '?', (size_t)(tend - t));

    r->path = t;
    r->path_len = (int)((qm ? qm : tend) - t);
    if (qm) {
        r->query = qm + 1;
        r->query_len = (int)(tend - qm - 1);
    }

    for (p = nl + 1; p < end;) {
        const char *colon, *v, *ve;

        nl = memchr(p, '\n', (size_t)(end - p));
        le = nl;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break;
        if (*p == ' ' || *p == '\t')
            return -EBADMSG;
        colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return -EBADMSG;
        for (const char *q = p; q < colon; q++)
            if (*q <= ' ' || *q >= 127)
                return -EBADMSG;
        v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;

        size_t nlen = (size_t)(colon - p), vlen = (size_t)(ve - v);

        if (eq_ci(p, nlen, "content-length")) {
            uint64_t n = 0;

            if (vlen == 0 || vlen > 18)
                return -EBADMSG;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -EBADMSG;
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (r->has_cl && r->cl != n)
                return -EBADMSG;
            r->has_cl = true;
            r->cl = n;
        } else if (eq_ci(p, nlen, "transfer-encoding")) {
            has_te = true;
            te_chunked = last_is_chunked(v, vlen);
        } else if (eq_ci(p, nlen, "connection")) {
            if (has_token(v, vlen, "close"))
                r->conn_close = true;
            if (has_token(v, vlen, "keep-alive"))
                r->conn_keepalive = true;
        } else if (eq_ci(p, nlen, "expect")) {
            if (eq_ci(v, vlen, "100-continue"))
                r->expect100 = true;
        }
        p = nl + 1;
    }
    if (has_te) {
        /* A request whose length cannot be known is rejected. */
        if (!te_chunked)
            return -EBADMSG;
        r->chunked = true;
        /* Both framings: chunked wins, and the connection closes after the answer (RFC 9112 6.3). */
        if (r->has_cl)
            r->conn_close = true;
        r->has_cl = false;
    }
    return 0;
}

/* Percent-decode s[0..n) into out (at least n + 1 bytes), NUL-terminated; returns the length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

/* Parse a decimal in [min, max]. Returns 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Whether s has no CR, LF or NUL (the decoded length is n). */
static bool header_safe(const char *s, size_t n)
{
    return strlen(s) == n && !strpbrk(s, "\r\n");
}

/* Append one "Name: Value\r\n" line to c->extra. Returns 0 or -ENOSPC. */
static int add_extra(struct conn *c, struct params *p, const char *fmt, const char *a, const char *b)
{
    int n = snprintf(c->extra + p->extra_len, sizeof(c->extra) - p->extra_len, fmt, a, b);

    if (n < 0 || (size_t)n >= sizeof(c->extra) - p->extra_len)
        return -ENOSPC;
    p->extra_len += (size_t)n;
    return 0;
}

/* Parse the query parameters of r into p. Returns 0 or -EINVAL (answer 400). */
static int parse_params(struct conn *c, const struct request *r, struct params *p)
{
    const char *q = r->query, *end = r->query + r->query_len;

    memset(p, 0, sizeof(*p));
    p->status = 200;
    if (!q)
        return 0;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        char key[32];
        char *val = c->scratch;
        size_t vlen;
        uint64_t n;

        if ((size_t)(ke - q) >= sizeof(key)) {
            q = pe + 1;
            continue;
        }
        pct_decode(q, (size_t)(ke - q), key);
        vlen = eq ? pct_decode(eq + 1, (size_t)(pe - eq - 1), val) : pct_decode("", 0, val);
        q = pe + 1;

        if (!strcmp(key, "status")) {
            if (parse_u64(val, 200, 599, &n))
                return -EINVAL;
            p->status = (int)n;
        } else if (!strcmp(key, "size")) {
            if (parse_u64(val, 0, MAX_BODY_SIZE, &p->size))
                return -EINVAL;
            p->has_size = true;
        } else if (!strcmp(key, "chunked")) {
            p->chunked = strcmp(val, "0") != 0;
        } else if (!strcmp(key, "close")) {
            p->close = strcmp(val, "0") != 0;
        } else if (!strcmp(key, "delay_ms")) {
            if (parse_u64(val, 0, MAX_DELAY_MS, &n))
                return -EINVAL;
            p->delay_ms = (unsigned)n;
        } else if (!strcmp(key, "body_delay_ms")) {
            if (parse_u64(val, 0, MAX_DELAY_MS, &n))
                return -EINVAL;
            p->body_delay_ms = (unsigned)n;
        } else if (!strcmp(key, "setcookie")) {
            if (!header_safe(val, vlen) || !strchr(val, '=') || val[0] == '=')
                return -EINVAL;
            if (add_extra(c, p, "Set-Cookie: %s%s; Path=/\r\n", val, ""))
                return -EINVAL;
        } else if (!strcmp(key, "h")) {
            char *colon = strchr(val, ':');
            const char *v;

            if (!header_safe(val, vlen) || !colon || colon == val)
                return -EINVAL;
            *colon = '\0';
            for (const char *s = val; *s; s++)
                if (*s <= ' ' || *s >= 127)
                    return -EINVAL;
            v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (!strcasecmp(val, "content-type"))
                p->own_ctype = true;
            if (add_extra(c, p, "%s: %s\r\n", val, v))
                return -EINVAL;
        }
    }
    return 0;
}

/* Reason phrase of status; a generic one for unlisted codes. */
static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* Size of chunk k of a chunked body: varies over 1..CHUNK_MAX. */
static size_t chunk_size(uint64_t k)
{
    return 1 + (size_t)((k * 7919) % CHUNK_MAX);
}

/* Pointer to body bytes at offset off, with at most *len of them available. */
static const char *body_at(const struct body *b, uint64_t off, size_t *len)
{
    if (b->kind == BODY_BUF) {
        *len = (size_t)(b->len - off);
        return b->data + off;
    }
    size_t p = (size_t)(off % PATTERN_PERIOD);

    *len = PATTERN_LEN - p;
    return pattern + p;
}

/*
 * Stream body b on the connection, chunked or plain, with blocking sends so
 * that a slow reader holds the thread back. Returns 0 or -errno.
 */
static int send_body(struct conn *c, const struct body *b, bool chunked)
{
    uint64_t off = 0, k = 0;

    while (off < b->len) {
        size_t avail, want;
        const char *data = body_at(b, off, &avail);
        int rc;

        if (atomic_load(&stopping))
            return -ECANCELED;
        want = chunked ? chunk_size(k++) : PIECE_MAX;
        if (want > avail)
            want = avail;
        if (want > b->len - off)
            want = (size_t)(b->len - off);
        if (chunked) {
            char line[24];
            int n = snprintf(line, sizeof(line), "%zx\r\n", want);
            struct iovec iov[3] = {
                { .iov_base = line, .iov_len = (size_t)n },
                { .iov_base = (void *)data, .iov_len = want },
                { .iov_base = "\r\n", .iov_len = 2 },
            };

            rc = send_iov(c->fd, iov, 3);
        } else {
            rc = send_all(c->fd, data, want);
        }
        if (rc < 0)
            return rc;
        off += want;
    }
    if (chunked)
        return send_all(c->fd, "0\r\n\r\n", 5);
    return 0;
}

/*
 * Send the response head for status and body b (Content-Length, or chunked),
 * with the extra header lines in c->extra[0..extra_len). For HEAD, or
 * statuses without a body, only the head is sent. Returns 0 or -errno.
 */
static int send_response(struct conn *c, const struct request *r, const struct params *p,
                         int status, const struct body *b, bool keep, bool send_body_too)
{
    char head[RESP_HEAD_MAX];
    bool no_body = status == 204 || status == 304;
    bool chunked = p->chunked && r->minor >= 1 && !no_body;
    bool is_head = eq_ci(r->method, (size_t)r->method_len, "HEAD");
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nX-Backend: %s\r\nX-Conn: %llu\r\nX-Req: %llu\r\n",
                 status, reason(status), name, c->serial, c->nreq);
    if (!no_body) {
        if (chunked)
            n += snprintf(head + n, sizeof(head) - (size_t)n, "Transfer-Encoding: chunked\r\n");
        else
            n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %" PRIu64 "\r\n",
                          b->len);
        if (!p->own_ctype && b->ctype)
            n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", b->ctype);
    }
    if (!keep)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
    else if (r->minor == 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: keep-alive\r\n");
    memcpy(head + n, c->extra, p->extra_len);
    n += (int)p->extra_len;
    memcpy(head + n, "\r\n", 2);
    n += 2;

    if (no_body || is_head || !send_body_too || (b->len == 0 && !chunked))
        return send_all(c->fd, head, (size_t)n);
    if (b->kind == BODY_BUF && !chunked && p->body_delay_ms == 0) {
        struct iovec iov[2] = {
            { .iov_base = head, .iov_len = (size_t)n },
            { .iov_base = (void *)b->data, .iov_len = (size_t)b->len },
        };

        return send_iov(c->fd, iov, 2);
    }
    int rc = send_all(c->fd, head, (size_t)n);

    if (rc < 0)
        return rc;
    if (p->body_delay_ms && sleep_ms(p->body_delay_ms) < 0)
        return -ECANCELED;
    return send_body(c, b, chunked);
}

/* Answer an unparsable request with status and no extras; the connection then closes. */
static void send_error(struct conn *c, int status, const char *msg)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nX-Backend: %s\r\nX-Conn: %llu\r\nX-Req: %llu\r\n"
                     "Content-Length: %zu\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n%s",
                     status, reason(status), name, c->serial, c->nreq, strlen(msg), msg);

    if (n > 0 && (size_t)n < sizeof(buf))
        send_all(c->fd, buf, (size_t)n);
    if (log_requests)
        fprintf(stderr, "xlbt-backend: %s conn=%llu req=%llu -> %d (%.*s)\n", name, c->serial,
                c->nreq, status, (int)strcspn(msg, "\n"), msg);
}

/* With --log, print one line for request r: its status, or what happened when what is not NULL. */
static void log_request(const struct conn *c, const struct request *r, const char *what, int status)
{
    if (!log_requests)
        return;
    if (!what)
        fprintf(stderr, "xlbt-backend: %s conn=%llu req=%llu %.*s %.*s -> %d\n", name, c->serial,
                c->nreq, r->method_len, r->method, r->target_len, r->target, status);
    else
        fprintf(stderr, "xlbt-backend: %s conn=%llu req=%llu %.*s %.*s -> %s\n", name, c->serial,
                c->nreq, r->method_len, r->method, r->target_len, r->target, what);
}

/* Whether the request's path is exactly s. */
static bool path_is(const struct request *r, const char *s)
{
    return (size_t)r->path_len == strlen(s) && memcmp(r->path, s, (size_t)r->path_len) == 0;
}

/* Block until the client closes (or the server stops), discarding its input. */
static void hang(struct conn *c)
{
    for (;;) {
        struct pollfd pf[2] = {
            { .fd = c->fd, .events = POLLIN },
            { .fd = stop_pipe[0], .events = POLLIN },
        };

        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (pf[1].revents)
            return;
        c->rpos = c->rend = 0;
        if (conn_fill(c) <= 0)
            return;
    }
}

/*
 * Serve one request whose head is in c->head. Returns 1 to go on with the
 * next request of the connection, or 0 with *mode telling how to close.
 */
static int serve_request(struct conn *c, enum end_mode *mode)
{
    struct request r;
    struct params p;
    struct body b = { .kind = BODY_BUF, .ctype = "text/plain" };
    char small[256];
    struct fnv f = { .h = 0xcbf29ce484222325ULL };
    bool counted, keep, is_echo;
    int status, rc;

    *mode = END_GRACEFUL;
    if (parse_head(c, &r) < 0) {
        send_error(c, 400, "bad request\n");
        return 0;
    }
    if (parse_params(c, &r, &p) < 0) {
        send_error(c, 400, "bad query parameter\n");
        return 0;
    }
    counted = !path_is(&r, "/count") && !path_is(&r, "/stats") && !path_is(&r, "/reset");
    if (counted)
        atomic_fetch_add(&n_requests, 1);

    if (path_is(&r, "/close")) {
        log_request(c, &r, "close", 0);
        return 0;
    }
    if (path_is(&r, "/rst")) {
        log_request(c, &r, "reset", 0);
        *mode = END_RESET;
        return 0;
    }
    if (path_is(&r, "/hang")) {
        log_request(c, &r, "hang", 0);
        hang(c);
        *mode = END_CLOSE;
        return 0;
    }

    /* The request body: hashed for /echo, discarded otherwise. */
    is_echo = path_is(&r, "/echo");
    if ((r.has_cl && r.cl > 0) || r.chunked) {
        if (r.expect100 && r.minor >= 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

            if (send_all(c->fd, cont, sizeof(cont) - 1) < 0) {
                *mode = END_CLOSE;
                return 0;
            }
        }
        rc = r.chunked ? consume_chunked(c, is_echo ? &f : NULL)
                       : consume(c, r.cl, is_echo ? &f : NULL);
        if (rc == -EBADMSG) {
            send_error(c, 400, "bad chunked body\n");
            return 0;
        }
        if (rc < 0) {
            *mode = END_CLOSE;
            return 0;
        }
    }

    keep = !r.conn_close && !p.close && (r.minor >= 1 || r.conn_keepalive);
    status = p.status;
    if (is_echo) {
        b.len = (uint64_t)snprintf(small, sizeof(small), "{\"length\":%" PRIu64 ",\"fnv1a64\":\"%016" PRIx64 "\"}\n",
                                   f.len, f.h);
        b.data = small;
        b.ctype = "application/json";
    } else if (path_is(&r, "/count")) {
        b.len = (uint64_t)snprintf(small, sizeof(small), "%llu\n", atomic_load(&n_requests));
        b.data = small;
    } else if (path_is(&r, "/stats")) {
        unsigned active;

        pthread_mutex_lock(&reg_lock);
        active = n_active;
        pthread_mutex_unlock(&reg_lock);
        b.len = (uint64_t)snprintf(small, sizeof(small),
                                   "{\"requests\":%llu,\"connections\":%llu,\"active\":%u}\n",
                                   atomic_load(&n_requests), atomic_load(&n_connections), active);
        b.data = small;
        b.ctype = "application/json";
    } else if (path_is(&r, "/reset")) {
        atomic_store(&n_requests, 0);
        atomic_store(&n_connections, 0);
        b.data = "ok\n";
        b.len = 3;
    } else if (p.has_size) {
        b.kind = BODY_PATTERN;
        b.len = p.size;
        b.ctype = "application/octet-stream";
    } else if (path_is(&r, "/headers")) {
        b.data = c->head;
        b.len = c->head_len;
    } else {
        int n = snprintf(small, sizeof(small), "%s %.*s ", name, r.method_len, r.method);

        /* The target may be long: send it from the head, after the prefix. */
        if (n < 0 || (size_t)n + (size_t)r.target_len + 1 > sizeof(small)) {
            b.data = c->scratch;
            n = snprintf(c->scratch, sizeof(c->scratch), "%s %.*s %.*s\n", name, r.method_len,
                         r.method, r.target_len, r.target);
            b.len = n > 0 && (size_t)n < sizeof(c->scratch) ? (uint64_t)n : sizeof(c->scratch) - 1;
        } else {
            memcpy(small + n, r.target, (size_t)r.target_len);
            small[n + r.target_len] = '\n';
            b.data = small;
            b.len = (uint64_t)n + (uint64_t)r.target_len + 1;
        }
    }

    if (p.delay_ms && sleep_ms(p.delay_ms) < 0) {
        *mode = END_CLOSE;
        return 0;
    }
    if (path_is(&r, "/close-after-headers")) {
        struct body hb = { .kind = BODY_BUF, .len = 100, .ctype = "text/plain" };
        struct params hp = p;

        hp.chunked = false;
        send_response(c, &r, &hp, status, &hb, true, false);
        log_request(c, &r, "close after headers", 0);
        return 0;
    }
    rc = send_response(c, &r, &p, status, &b, keep, true);
    log_request(c, &r, NULL, status);
    if (rc < 0) {
        *mode = END_CLOSE;
        return 0;
    }
    return keep ? 1 : 0;
}

/* Send our FIN, then wait a little for the peer's so that close() does not reset unread data. */
static void close_gracefully(struct conn *c)
{
    int64_t end = now_ms() + CLOSE_DRAIN_MS;
    size_t drained = 0;

    shutdown(c->fd, SHUT_WR);
    while (drained < CLOSE_DRAIN_BYTES) {
        struct pollfd pf[2] = {
            { .fd = c->fd, .events = POLLIN },
            { .fd = stop_pipe[0], .events = POLLIN },
        };
        int64_t left = end - now_ms();
        ssize_t n;

        if (left <= 0 || poll(pf, 2, (int)left) <= 0 || pf[1].revents)
            return;
        n = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
            return;
        if (n > 0)
            drained += (size_t)n;
    }
}

/* Thread body of one connection: serve requests until one side closes. */
static void *conn_main(void *arg)
{
    struct conn *c = arg;
    enum end_mode mode = END_CLOSE;
    int one = 1;

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (!atomic_load(&stopping)) {
        int rc = read_head(c);

        if (rc == 0 || (rc < 0 && rc != -E2BIG)) {
            mode = END_CLOSE;
            break;
        }
        c->nreq++;
        if (rc == -E2BIG) {
            send_error(c, 431, "request head too large\n");
            mode = END_GRACEFUL;
            break;
        }
        if (serve_request(c, &mode) == 0)
            break;
    }
    if (mode == END_RESET) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    } else if (mode == END_GRACEFUL && !atomic_load(&stopping)) {
        close_gracefully(c);
    }

    pthread_mutex_lock(&reg_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n_active--;
    pthread_cond_signal(&reg_cond);
    pthread_mutex_unlock(&reg_lock);
    close(c->fd);
    free(c);
    return NULL;
}

/* Start a thread for the accepted socket fd (closed on failure). */
static void start_conn(int fd)
{
    pthread_attr_t attr;
    pthread_t tid;
    struct conn *c;
    int rc;

    pthread_mutex_lock(&reg_lock);
    if (n_active >= max_conns) {
        pthread_mutex_unlock(&reg_lock);
        n_rejected++;
        close(fd);
        return;
    }
    c = malloc(sizeof(*c));
    if (!c) {
        pthread_mutex_unlock(&reg_lock);
        close(fd);
        return;
    }
    c->fd = fd;
    c->serial = ++conn_serial;
    c->nreq = 0;
    c->rpos = c->rend = 0;
    c->prev = NULL;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    n_active++;
    atomic_fetch_add(&n_connections, 1);
    pthread_mutex_unlock(&reg_lock);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    rc = pthread_create(&tid, &attr, conn_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "xlbt-backend: pthread_create: %s\n", strerror(rc));
        pthread_mutex_lock(&reg_lock);
        conns = c->next;
        if (conns)
            conns->prev = NULL;
        n_active--;
        pthread_mutex_unlock(&reg_lock);
        close(fd);
        free(c);
    }
}

/* xlbt_parse_hostport, also accepting port 0. Returns 0 or -EINVAL. */
static int parse_listen(const char *arg, struct sockaddr_storage *ss, socklen_t *sslen)
{
    const char *colon = strrchr(arg, ':');
    char tmp[INET6_ADDRSTRLEN + 8];
    size_t hlen;
    int rc;

    if (!colon || strcmp(colon + 1, "0") != 0)
        return xlbt_parse_hostport(arg, ss, sslen);
    hlen = (size_t)(colon - arg);
    if (hlen + 3 > sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, arg, hlen);
    memcpy(tmp + hlen, ":1", 3);
    rc = xlbt_parse_hostport(tmp, ss, sslen);
    if (rc < 0)
        return rc;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = 0;
    return 0;
}

/* Open a listening socket on ss. Returns the fd, or -1 with a message printed. */
static int open_listener(const struct sockaddr_storage *ss, socklen_t sslen, const char *what)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        fprintf(stderr, "xlbt-backend: socket for %s: %s\n", what, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (ss->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0)
        goto fail;
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "xlbt-backend: %s: %s\n", what, strerror(errno));
    close(fd);
    return -1;
}

/* Format the bound address of fd as "A.B.C.D:PORT" or "[V6]:PORT". Returns 0 or -errno. */
static int bound_addr(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, ntohs(sin->sin_port));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
    return 0;
}

/* Write the bound addresses of the listeners to path, atomically. Returns 0 or -errno. */
static int write_ready(const char *path, const int *fds, int n)
{
    char tmp[4096];
    FILE *f;
    int err = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    for (int i = 0; i < n; i++) {
        char addr[INET6_ADDRSTRLEN + 16];

        err = bound_addr(fds[i], addr, sizeof(addr));
        if (err < 0)
            break;
        fprintf(f, "%s\n", addr);
    }
    if (fflush(f) != 0 && !err)
        err = -errno;
    if (fclose(f) != 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err)
        unlink(tmp);
    return err;
}

/* Raise the soft descriptor limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Accept what is pending on listener fd, with a reserved fd for EMFILE. */
static void on_listen(int fd, int *reserve_fd)
{
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && *reserve_fd >= 0) {
                close(*reserve_fd);
                cfd = accept(fd, NULL, NULL);
                if (cfd >= 0)
                    close(cfd);
                *reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                n_rejected++;
                continue;
            }
            return;
        }
        start_conn(cfd);
    }
}

/* Stop every connection thread and wait (bounded) for them to end. */
static void stop_conns(void)
{
    struct timespec ts;

    atomic_store(&stopping, true);
    close(stop_pipe[1]);
    stop_pipe[1] = -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += EXIT_WAIT_MS / 1000;
    pthread_mutex_lock(&reg_lock);
    for (struct conn *c = conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (n_active > 0)
        if (pthread_cond_timedwait(&reg_cond, &reg_lock, &ts) == ETIMEDOUT)
            break;
    if (n_active > 0)
        fprintf(stderr, "xlbt-backend: %s: %u connections did not end\n", name, n_active);
    pthread_mutex_unlock(&reg_lock);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, 'n' },
        { "listen", required_argument, NULL, 'l' },
        { "ready-file", required_argument, NULL, 'r' },
        { "max-conns", required_argument, NULL, 'm' },
        { "log", no_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *listen_arg[MAX_LISTEN];
    struct sockaddr_storage listen_ss[MAX_LISTEN];
    socklen_t listen_len[MAX_LISTEN];
    int listen_fd[MAX_LISTEN];
    struct pollfd pfd[MAX_LISTEN + 1];
    const char *ready_file = NULL;
    int n_listen = 0, reserve_fd, sfd, c;
    uint64_t v;
    sigset_t mask;

    while ((c = getopt_long(argc, argv, "n:l:r:m:Lh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'l':
            if (n_listen == MAX_LISTEN) {
                fprintf(stderr, "xlbt-backend: at most %d --listen\n", MAX_LISTEN);
                return 2;
            }
            if (parse_listen(optarg, &listen_ss[n_listen], &listen_len[n_listen]) < 0) {
                fprintf(stderr, "xlbt-backend: bad --listen '%s' (want ADDR:PORT or [ADDR6]:PORT)\n",
                        optarg);
                return 2;
            }
            listen_arg[n_listen++] = optarg;
            break;
        case 'r':
            ready_file = optarg;
            break;
        case 'm':
            if (parse_u64(optarg, 1, 65536, &v) < 0) {
                fprintf(stderr, "xlbt-backend: bad --max-conns '%s' (1..65536)\n", optarg);
                return 2;
            }
            max_conns = (unsigned)v;
            break;
        case 'L':
            log_requests = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !name || n_listen == 0) {
        usage(stderr);
        return 2;
    }
    name_len = strlen(name);
    if (name_len == 0 || name_len > MAX_NAME) {
        fprintf(stderr, "xlbt-backend: --name must be 1..%d characters\n", MAX_NAME);
        return 2;
    }
    for (size_t i = 0; i < name_len; i++) {
        if ((unsigned char)name[i] < ' ' || name[i] == 127) {
            fprintf(stderr, "xlbt-backend: --name must not hold control characters\n");
            return 2;
        }
    }
    for (size_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);

    /* Threads inherit the mask: only the signalfd sees SIGTERM/SIGINT. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        perror("xlbt-backend: sigprocmask");
        return 1;
    }
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || pipe2(stop_pipe, O_CLOEXEC) < 0) {
        perror("xlbt-backend: signalfd/pipe");
        return 1;
    }
    raise_nofile();
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    pfd[0].fd = sfd;
    pfd[0].events = POLLIN;
    for (int i = 0; i < n_listen; i++) {
        char what[128], addr[INET6_ADDRSTRLEN + 16];

        snprintf(what, sizeof(what), "listen %s", listen_arg[i]);
        listen_fd[i] = open_listener(&listen_ss[i], listen_len[i], what);
        if (listen_fd[i] < 0)
            return 1;
        pfd[i + 1].fd = listen_fd[i];
        pfd[i + 1].events = POLLIN;
        if (bound_addr(listen_fd[i], addr, sizeof(addr)) == 0)
            fprintf(stderr, "xlbt-backend: %s listening on %s\n", name, addr);
    }
    if (ready_file) {
        int rc = write_ready(ready_file, listen_fd, n_listen);

        if (rc < 0) {
            fprintf(stderr, "xlbt-backend: ready file %s: %s\n", ready_file, strerror(-rc));
            return 1;
        }
    }

    for (bool running = true; running;) {
        int n = poll(pfd, (nfds_t)n_listen + 1, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("xlbt-backend: poll");
            return 1;
        }
        if (pfd[0].revents)
            running = false;
        for (int i = 0; running && i < n_listen; i++)
            if (pfd[i + 1].revents)
                on_listen(listen_fd[i], &reserve_fd);
    }

    for (int i = 0; i < n_listen; i++)
        close(listen_fd[i]);
    stop_conns();
    fprintf(stderr, "xlbt-backend: %s: %llu connections, %llu rejected\n", name, conn_serial,
            n_rejected);
    close(stop_pipe[0]);
    close(sfd);
    if (reserve_fd >= 0)
        close(reserve_fd);
    return 0;
}
