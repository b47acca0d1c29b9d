// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb-proxy's TLS layer (proxy/tls.c), in memory: a px_tls server talks to
 * a plain OpenSSL client on memory BIOs (to force versions, ciphers, SNI,
 * ALPN and sessions) or to a px_tls client, bytes pumped by hand.
 *
 * Every test makes its own certificates in a temporary directory: a root
 * CA, an intermediate CA, leaf A (signed by the intermediate, the chain in
 * its file; DNS a.example.test, alt.example.test, IP 127.0.0.1), leaf B
 * (signed by the root; DNS b.example.test, *.wild.test) and leaf C (CN
 * cn-only.test, no SAN).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy.h"
#include "tls.h"

/* log.c needs the process settings that main.c defines; weak, so that a
 * test of the I/O core may define them for real. */
__attribute__((weak)) struct px_settings px_set = { .access_fd = -1 };

/* ---- certificates ------------------------------------------------------ */

static char dir[64];
static char path_a[128], path_b[128], path_c[128], path_ca[128], path_nokey[128],
    path_junk[128];

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *val)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, val);

    cr_assert(e, "extension %s", val);
    cr_assert(X509_add_ext(x, e, -1));
    X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer/ikey (NULL: self-signed). */
static X509 *mkcert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
                    EVP_PKEY *ikey, bool ca)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509V3_CTX v3;

    cr_assert(x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ca)
        add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (san)
        add_ext(x, &v3, NID_subject_alt_name, san);
    cr_assert(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
    return x;
}

/* A PEM file of certificate x, then key (NULL: none), then chain (NULL: none). */
static void write_pem(const char *path, X509 *x, EVP_PKEY *key, X509 *chain)
{
    FILE *f = fopen(path, "w");

    cr_assert(f, "%s", path);
    cr_assert(PEM_write_X509(f, x));
    if (key)
        cr_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
    if (chain)
        cr_assert(PEM_write_X509(f, chain));
    fclose(f);
}

static void certs_init(void)
{
    EVP_PKEY *kr = EVP_EC_gen("P-256"), *ki = EVP_EC_gen("P-256"), *ka = EVP_EC_gen("P-256"),
             *kb = EVP_EC_gen("P-256"), *kc = EVP_EC_gen("P-256");
    X509 *root, *inter, *a, *b, *c;
    FILE *f;

    cr_assert(kr && ki && ka && kb && kc);
    strcpy(dir, "/tmp/px_tls_XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path_a, sizeof(path_a), "%s/a.pem", dir);
    snprintf(path_b, sizeof(path_b), "%s/b.pem", dir);
    snprintf(path_c, sizeof(path_c), "%s/c.pem", dir);
    snprintf(path_ca, sizeof(path_ca), "%s/ca.pem", dir);
    snprintf(path_nokey, sizeof(path_nokey), "%s/nokey.pem", dir);
    snprintf(path_junk, sizeof(path_junk), "%s/junk.pem", dir);
    root = mkcert("Test Root CA", NULL, kr, NULL, NULL, true);
    inter = mkcert("Test Intermediate CA", NULL, ki, root, kr, true);
    a = mkcert("a.example.test", "DNS:a.example.test,DNS:alt.example.test,IP:127.0.0.1", ka,
               inter, ki, false);
    b = mkcert("b.example.test", "DNS:b.example.test,DNS:*.wild.test", kb, root, kr, false);
    c = mkcert("cn-only.test", NULL, kc, root, kr, false);
    write_pem(path_a, a, ka, inter);
    write_pem(path_b, b, kb, NULL);
    write_pem(path_c, c, kc, NULL);
    write_pem(path_ca, root, NULL, NULL);
    write_pem(path_nokey, b, NULL, NULL);
    f = fopen(path_junk, "w");
    cr_assert(f);
    fputs("not a certificate\n", f);
    fclose(f);
    X509_free(root);
    X509_free(inter);
    X509_free(a);
    X509_free(b);
    X509_free(c);
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    EVP_PKEY_free(kc);
}

static void certs_fini(void)
{
    const char *p[] = { path_a, path_b, path_c, path_ca, path_nokey, path_junk };

    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        unlink(p[i]);
    rmdir(dir);
}

/* A px_tls_srv of the given certificate files (n 0: self-signed). */
static char cfg_paths[4][XLB_CFG_PATH_MAX];

static int srv_new_rc(const char *minv, const char *name, int n, const char *const *paths,
                      struct px_tls_srv **s, char *err, size_t errlen)
{
    struct xlb_cfg_tls cfg = { .enabled = true, .n_certs = n, .certs = cfg_paths };

    for (int i = 0; i < n; i++)
        snprintf(cfg_paths[i], sizeof(cfg_paths[i]), "%s", paths[i]);
    snprintf(cfg.min_version, sizeof(cfg.min_version), "%s", minv);
    return px_tls_srv_new(&cfg, name, s, err, errlen);
}

static struct px_tls_srv *srv_abc(const char *minv)
{
    const char *paths[] = { path_a, path_b, path_c };
    struct px_tls_srv *s;
    char err[256] = "";

    cr_assert_eq(srv_new_rc(minv, "web", 3, paths, &s, err, sizeof(err)), 0, "%s", err);
    return s;
}

/* ---- a plain OpenSSL client on memory BIOs ------------------------------ */

struct rc_opt {
    int minv, maxv;             /* 0: library defaults */
    const char *sni;
    const char *alpn;           /* wire format, NULL: none */
    SSL_SESSION *sess;
    uint64_t opts;
    const char *ciphers;        /* TLS 1.2 list, NULL: default */
    const char *suites;         /* TLS 1.3 list, NULL: default */
    bool verify;                /* against ca.pem */
};

struct rc {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb;
};

static bool rc_new(struct rc *c, const struct rc_opt *o)
{
    memset(c, 0, sizeof(*c));
    if (!(c->ctx = SSL_CTX_new(TLS_client_method())))
        return false;
    if (o->minv)
        SSL_CTX_set_min_proto_version(c->ctx, o->minv);
    if (o->maxv)
        SSL_CTX_set_max_proto_version(c->ctx, o->maxv);
    if (o->ciphers && SSL_CTX_set_cipher_list(c->ctx, o->ciphers) != 1)
        return false;
    if (o->suites && SSL_CTX_set_ciphersuites(c->ctx, o->suites) != 1)
        return false;
    SSL_CTX_set_options(c->ctx, o->opts);
    if (o->verify) {
        if (SSL_CTX_load_verify_locations(c->ctx, path_ca, NULL) != 1)
            return false;
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    c->ssl = SSL_new(c->ctx);
    c->rb = BIO_new(BIO_s_mem());
    c->wb = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rb || !c->wb)
        return false;
    SSL_set_bio(c->ssl, c->rb, c->wb);
    SSL_set_connect_state(c->ssl);
    if (o->sni)
        SSL_set_tlsext_host_name(c->ssl, o->sni);
    if (o->alpn)
        SSL_set_alpn_protos(c->ssl, (const unsigned char *)o->alpn, (unsigned)strlen(o->alpn));
    if (o->sess)
        SSL_set_session(c->ssl, o->sess);
    return true;
}

static void rc_free(struct rc *c)
{
    /* Ended without close_notify, still resumable (as browsers do). */
    if (c->ssl && SSL_is_init_finished(c->ssl))
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    ERR_clear_error();
}

/* Client bytes to the server, as much as it takes.  <0: its error. */
static int c2s(struct rc *c, struct px_tls *s)
{
    char *p, scratch[4096];
    long n;
    ssize_t a;

    while ((n = BIO_get_mem_data(c->wb, &p)) > 0) {
        a = px_tls_in(s, p, (size_t)n);
        if (a < 0) {
            (void)BIO_reset(c->wb);
            return (int)a;
        }
        if (!a)
            return 0;
        for (ssize_t done = 0; done < a;)
            done += BIO_read(c->wb, scratch,
                             (int)(a - done < (ssize_t)sizeof(scratch) ? a - done : (ssize_t)sizeof(scratch)));
    }
    return 0;
}

static void s2c(struct px_tls *s, struct rc *c)
{
    const char *p;
    size_t n;

    while ((n = px_tls_out(s, &p)) > 0) {
        BIO_write(c->rb, p, (int)n);
        px_tls_out_done(s, n);
    }
}

/* Handshake s with c.  Returns the server's px_tls_handshake() result (1
 * done); *cli_ok says whether the client finished. */
static int hs_raw(struct px_tls *s, struct rc *c, bool *cli_ok)
{
    bool cfail = false;
    int sr = 0, cr = 0;

    for (int i = 0; i < 50; i++) {
        cr = SSL_do_handshake(c->ssl);
        if (cr <= 0) {
            int e = SSL_get_error(c->ssl, cr);

            cfail = e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
        }
        sr = c2s(c, s);
        if (sr >= 0)
            sr = px_tls_handshake(s);
        s2c(s, c);
        if (sr < 0 || (sr == 1 && cr == 1) || cfail)
            break;
    }
    if (cli_ok)
        *cli_ok = cr == 1;
    return sr;
}

/* "ping" to the server, "pong!" back; also lets the client take tickets. */
static bool roundtrip(struct px_tls *s, struct rc *c)
{
    char b[64];
    ssize_t n;

    if (SSL_write(c->ssl, "ping", 4) != 4 || c2s(c, s) < 0)
        return false;
    n = px_tls_read(s, b, sizeof(b));
    if (n != 4 || memcmp(b, "ping", 4))
        return false;
    if (px_tls_write(s, "pong!", 5) != 5)
        return false;
    s2c(s, c);
    n = SSL_read(c->ssl, b, sizeof(b));
    return n == 5 && !memcmp(b, "pong!", 5);
}

/* One whole connection: handshake, round trip.  Returns 1 on success with
 * *sess (if asked) the client's session and *resumed whether the server
 * resumed; else the server's result (<= 0). */
static int conn_raw(struct px_tls_srv *srv, const struct rc_opt *o, SSL_SESSION **sess,
                    bool *resumed)
{
    struct px_tls *s;
    struct rc c;
    bool cok = false;
    int r;

    if (px_tls_accept(srv, &s) < 0)
        return -ENOMEM;
    if (!rc_new(&c, o)) {
        px_tls_free(s);
        rc_free(&c);
        return -EINVAL;
    }
    r = hs_raw(s, &c, &cok);
    if (r == 1 && (!cok || !roundtrip(s, &c)))
        r = -EIO;
    if (r == 1) {
        if (resumed)
            *resumed = px_tls_resumed(s);
        if (sess)
            *sess = SSL_get1_session(c.ssl);
    }
    px_tls_free(s);
    rc_free(&c);
    return r;
}

static char *peer_cn(struct rc *c, char *buf, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);

    cr_assert(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
    X509_free(x);
    return buf;
}

static struct px_tls_stats stats(struct px_tls_srv *s)
{
    struct px_tls_stats st;

    px_tls_srv_stats(s, &st);
    return st;
}

/* ---- px_tls to px_tls ---------------------------------------------------- */

static unsigned seed = 12345;

/* Move from's output into to, in pieces of 1..maxchunk bytes (0: whole).
 * Stops when to takes no more.  Returns bytes moved or to's error. */
static ssize_t xfer(struct px_tls *from, struct px_tls *to, size_t maxchunk)
{
    const char *p;
    size_t n, k, moved = 0;
    ssize_t a;

    while ((n = px_tls_out(from, &p)) > 0) {
        k = maxchunk ? 1 + (size_t)rand_r(&seed) % maxchunk : n;
        if (k > n)
            k = n;
        a = px_tls_in(to, p, k);
        if (a < 0)
            return a;
        if (!a)
            break;
        px_tls_out_done(from, (size_t)a);
        moved += (size_t)a;
    }
    return (ssize_t)moved;
}

/* Handshake client c with server s; returns 1 or the first failure seen
 * (*who: 'c' or 's'). */
static int hs_px(struct px_tls *c, struct px_tls *s, char *who)
{
    int rc, rs;

    for (int i = 0; i < 50; i++) {
        rc = px_tls_handshake(c);
        xfer(c, s, 0);
        rs = px_tls_handshake(s);
        xfer(s, c, 0);
        if (rc < 0 || rs < 0) {
            *who = rc < 0 ? 'c' : 's';
            return rc < 0 ? rc : rs;
        }
        if (rc == 1 && rs == 1)
            return 1;
    }
    *who = '?';
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

TestSuite(px_tls_hs, .init = certs_init, .fini = certs_fini, .timeout = 20);

Test(px_tls_hs, tls13_data_chain_alpn)
{
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o = { .sni = "a.example.test", .alpn = "\x02h2\x08http/1.1", .verify = true };
    struct px_tls *s;
    struct rc c;
    const unsigned char *ap;
    unsigned alen;
    bool cok;
    char cn[128];

    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_not(px_tls_handshake_done(s));
    cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s", px_tls_error(s));
    cr_assert(cok);
    cr_assert(px_tls_handshake_done(s));
    /* The client knows only the root: the intermediate came from a.pem. */
    cr_assert_eq(SSL_get_verify_result(c.ssl), X509_V_OK);
    cr_assert_str_eq(peer_cn(&c, cn, sizeof(cn)), "a.example.test");
    cr_assert_str_eq(px_tls_version(s), "TLSv1.3");
    cr_assert_str_eq(px_tls_sni(s), "a.example.test");
    cr_assert_str_eq(px_tls_alpn(s), "http/1.1");
    SSL_get0_alpn_selected(c.ssl, &ap, &alen);
    cr_assert(alen == 8 && !memcmp(ap, "http/1.1", 8));
    cr_assert_not(px_tls_resumed(s));
    cr_assert(roundtrip(s, &c));
    cr_assert(roundtrip(s, &c));
    {
        /* Gathered pieces go out as one record: 5 bytes of header, the
         * content type and a 16-byte tag around the 11 bytes. */
        const char *parts[2] = { "head\r\n", "body" };
        size_t lens[2] = { 6, 5 }, n;
        const char *p;
        char b[64];

        cr_assert_eq(px_tls_write_gather(s, parts, lens, 2), 11);
        n = px_tls_out(s, &p);
        cr_assert_eq(n, 11 + 5 + 1 + 16, "one record: %zu bytes", n);
        s2c(s, &c);
        cr_assert_eq(SSL_read(c.ssl, b, sizeof(b)), 11);
        cr_assert_arr_eq(b, "head\r\nbody", 11);
        /* Too large for one record: nothing taken. */
        static char big[20000];
        const char *bp[2] = { "h", big };
        size_t bl[2] = { 1, sizeof(big) };

        cr_assert_eq(px_tls_write_gather(s, bp, bl, 2), 0);
        cr_assert_eq(px_tls_out(s, &p), 0u);
        cr_assert_not(px_tls_readable(s));
    }
    cr_assert_eq(stats(srv).ok, 1);
    cr_assert_eq(stats(srv).resumed, 0);
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
}

Test(px_tls_hs, tls12_data_cipher)
{
    struct px_tls_srv *srv = srv_abc("1.2");
    struct rc_opt o = { .maxv = TLS1_2_VERSION, .sni = "b.example.test" };
    struct px_tls *s;
    struct rc c;
    bool cok;

    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s", px_tls_error(s));
    cr_assert_str_eq(px_tls_version(s), "TLSv1.2");
    cr_assert(strstr(px_tls_cipher(s), "ECDHE-ECDSA-"), "%s", px_tls_cipher(s));
    cr_assert(strstr(px_tls_cipher(s), "GCM") || strstr(px_tls_cipher(s), "CHACHA20"));
    cr_assert_str_eq(px_tls_alpn(s), "");     /* the client offered none */
    cr_assert(roundtrip(s, &c));
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
}

/* The server's order wins over the client's. */
Test(px_tls_hs, server_cipher_preference)
{
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o12 = { .maxv = TLS1_2_VERSION,
                          .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256" },
                  o13 = { .suites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384" };
    const struct rc_opt *os[] = { &o12, &o13 };
    const char *want[] = { "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_256_GCM_SHA384" };

    for (int i = 0; i < 2; i++) {
        struct px_tls *s;
        struct rc c;
        bool cok;

        cr_assert_eq(px_tls_accept(srv, &s), 0);
        cr_assert(rc_new(&c, os[i]));
        cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s", px_tls_error(s));
        cr_assert_str_eq(px_tls_cipher(s), want[i]);
        px_tls_free(s);
        rc_free(&c);
    }
    px_tls_srv_free(srv);
}

Test(px_tls_hs, alpn_h2_only_gets_none)
{
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o = { .sni = "a.example.test", .alpn = "\x02h2" };
    struct px_tls *s;
    struct rc c;
    const unsigned char *ap;
    unsigned alen = 1;
    bool cok;

    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s", px_tls_error(s));
    cr_assert_str_eq(px_tls_alpn(s), "");
    SSL_get0_alpn_selected(c.ssl, &ap, &alen);
    cr_assert_eq(alen, 0);
    cr_assert(roundtrip(s, &c));
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
}

/* SNI name -> expected CN (NULL SNI: none sent), miss and none counts. */
Test(px_tls_hs, sni_selects_certificate)
{
    static const struct { const char *sni, *cn; } cases[] = {
        { "a.example.test", "a.example.test" },
        { "alt.example.test", "a.example.test" },
        { "b.example.test", "b.example.test" },
        { "B.Example.TEST.", "b.example.test" },
        { "x.wild.test", "b.example.test" },
        { "a.b.wild.test", "a.example.test" },     /* one label only: miss */
        { "wild.test", "a.example.test" },         /* miss */
        { "cn-only.test", "cn-only.test" },        /* CN when no SAN */
        { "unknown.test", "a.example.test" },      /* miss */
        { NULL, "a.example.test" },
    };
    struct px_tls_srv *srv = srv_abc("");
    char cn[128];

    cr_assert_eq(px_tls_srv_n_certs(srv), 3);
    cr_assert_str_eq(px_tls_srv_cert_name(srv, 1, 1), "*.wild.test");
    cr_assert_str_eq(px_tls_srv_cert_name(srv, 2, 0), "cn-only.test");
    cr_assert_null(px_tls_srv_cert_name(srv, 2, 1));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int v = 0; v < 2; v++) {
            struct rc_opt o = { .sni = cases[i].sni, .maxv = v ? TLS1_2_VERSION : 0 };
            struct px_tls *s;
            struct rc c;
            bool cok;

            cr_assert_eq(px_tls_accept(srv, &s), 0);
            cr_assert(rc_new(&c, &o));
            cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s: %s", cases[i].sni, px_tls_error(s));
            cr_assert_str_eq(peer_cn(&c, cn, sizeof(cn)), cases[i].cn, "sni %s v%d",
                             cases[i].sni, v);
            if (cases[i].sni)
                cr_assert_str_eq(px_tls_sni(s), cases[i].sni);
            else
                cr_assert_null(px_tls_sni(s));
            cr_assert(roundtrip(s, &c));
            px_tls_free(s);
            rc_free(&c);
        }
    }
    cr_assert_eq(stats(srv).sni_miss, 3 * 2);
    cr_assert_eq(stats(srv).sni_none, 1 * 2);
    cr_assert_eq(stats(srv).ok, 2 * sizeof(cases) / sizeof(cases[0]));
    px_tls_srv_free(srv);
}

Test(px_tls_hs, self_signed_when_no_certificates)
{
    const char *none[] = { NULL };
    struct px_tls_srv *srv;
    struct rc_opt o = { .sni = "whatever.test" };
    struct px_tls *s;
    struct rc c;
    char err[256] = "", cn[128];
    bool cok;
    X509 *x;

    cr_assert_eq(srv_new_rc("", "selfsvc", 0, none, &srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(px_tls_srv_n_certs(srv), 1);
    cr_assert_str_eq(px_tls_srv_cert_name(srv, 0, 0), "selfsvc");
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_eq(hs_raw(s, &c, &cok), 1, "%s", px_tls_error(s));
    cr_assert_str_eq(peer_cn(&c, cn, sizeof(cn)), "selfsvc");
    x = SSL_get1_peer_certificate(c.ssl);
    cr_assert_eq(X509_check_host(x, "selfsvc", 0, 0, NULL), 1);
    cr_assert_eq(X509_check_issued(x, x), X509_V_OK);
    cr_assert_eq(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
    cr_assert_gt(X509_cmp_time(X509_get0_notAfter(x), NULL), 0);
    {
        time_t later = time(NULL) + 364 * 86400, too_late = time(NULL) + 367 * 86400;

        cr_assert_gt(X509_cmp_time(X509_get0_notAfter(x), &later), 0);
        cr_assert_lt(X509_cmp_time(X509_get0_notAfter(x), &too_late), 0);
    }
    X509_free(x);
    cr_assert(roundtrip(s, &c));
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
}

Test(px_tls_hs, config_errors)
{
    struct px_tls_srv *srv = (void *)1;
    char err[256] = "";
    const char *missing[] = { "/nonexistent/x.pem" }, *nokey[] = { path_nokey },
               *junk[] = { path_junk }, *ok[] = { path_a };

    cr_assert_eq(srv_new_rc("", "web", 1, missing, &srv, err, sizeof(err)), -ENOENT);
    cr_assert_null(srv);
    cr_assert(strstr(err, "/nonexistent/x.pem") && strstr(err, "web"), "%s", err);
    cr_assert_eq(srv_new_rc("", "web", 1, nokey, &srv, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "private key"), "%s", err);
    cr_assert_eq(srv_new_rc("", "web", 1, junk, &srv, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "junk.pem"), "%s", err);
    cr_assert_eq(srv_new_rc("1.1", "web", 1, ok, &srv, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "min_version"), "%s", err);
    px_tls_srv_free(NULL);
}

TestSuite(px_tls_refuse, .init = certs_init, .fini = certs_fini, .timeout = 20);

Test(px_tls_refuse, tls11_client)
{
    struct px_tls_srv *srv = srv_abc("");
    /* TLS 1.1 needs security level 0 in OpenSSL 3 even to be offered. */
    struct rc_opt o = { .minv = TLS1_1_VERSION, .maxv = TLS1_1_VERSION,
                        .ciphers = "DEFAULT@SECLEVEL=0", .sni = "a.example.test" };
    struct px_tls *s;
    struct rc c;
    bool cok;
    char b[16];

    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_eq(hs_raw(s, &c, &cok), PX_TLS_ERROR);
    cr_assert_not(cok);
    cr_assert(px_tls_error(s)[0]);
    cr_assert_eq(px_tls_read(s, b, sizeof(b)), PX_TLS_ERROR);  /* sticky */
    cr_assert_eq(px_tls_write(s, "x", 1), PX_TLS_ERROR);
    cr_assert_eq(stats(srv).fail_version, 1, "%s", px_tls_error(s));
    cr_assert_eq(stats(srv).ok, 0);
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
}

Test(px_tls_refuse, min13_refuses_tls12_client)
{
    struct px_tls_srv *srv = srv_abc("1.3");
    struct rc_opt o12 = { .maxv = TLS1_2_VERSION }, o13 = { 0 };

    cr_assert_eq(conn_raw(srv, &o12, NULL, NULL), PX_TLS_ERROR);
    cr_assert_eq(stats(srv).fail_version, 1);
    cr_assert_eq(conn_raw(srv, &o13, NULL, NULL), 1);
    cr_assert_eq(stats(srv).ok, 1);
    px_tls_srv_free(srv);
}

Test(px_tls_refuse, no_shared_cipher)
{
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o = { .maxv = TLS1_2_VERSION, .ciphers = "AES128-SHA:AES256-GCM-SHA384" };

    cr_assert_eq(conn_raw(srv, &o, NULL, NULL), PX_TLS_ERROR);
    cr_assert_eq(stats(srv).fail_cipher, 1);
    px_tls_srv_free(srv);
}

Test(px_tls_refuse, plaintext_http)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct px_tls_srv *srv = srv_abc("");
    struct px_tls *s;
    char b[64];

    cr_assert(px_tls_looks_like_http(req, sizeof(req) - 1));
    cr_assert(px_tls_looks_like_http("POS", 3));
    cr_assert(px_tls_looks_like_http("OPTIONS * HTTP/1.1", 18));
    cr_assert_not(px_tls_looks_like_http("\x16\x03\x01", 3));
    cr_assert_not(px_tls_looks_like_http(" GET", 4));
    cr_assert_not(px_tls_looks_like_http("get / HTTP/1.1", 14));
    cr_assert_not(px_tls_looks_like_http("", 0));
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert_eq(px_tls_in(s, req, sizeof(req) - 1), PX_TLS_PLAINTEXT);
    cr_assert_eq(px_tls_read(s, b, sizeof(b)), PX_TLS_PLAINTEXT);
    cr_assert_eq(px_tls_handshake(s), PX_TLS_PLAINTEXT);
    cr_assert(strstr(px_tls_error(s), "plain HTTP"), "%s", px_tls_error(s));
    px_tls_free(s);
    /* The same through the zero-copy input. */
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    {
        size_t room;
        char *p = px_tls_in_buf(s, &room);

        cr_assert(p && room >= 4);
        memcpy(p, "PUT ", 4);
        cr_assert_eq(px_tls_in_commit(s, 4), PX_TLS_PLAINTEXT);
    }
    px_tls_free(s);
    cr_assert_eq(stats(srv).fail_plaintext, 2);
    px_tls_srv_free(srv);
}

Test(px_tls_refuse, garbage)
{
    struct px_tls_srv *srv = srv_abc("");
    char buf[3000], out[256];
    unsigned plain = 0, fail = 0;

    srand(7);
    for (int i = 0; i < 400; i++) {
        struct px_tls *s;
        size_t n = 1 + (size_t)rand() % sizeof(buf);
        ssize_t r;

        for (size_t j = 0; j < n; j++)
            buf[j] = (char)rand();
        if (i & 1) {
            buf[0] = 0x16;     /* looks like a handshake record */
            if (n > 2 && (i & 2)) {
                buf[1] = 3;
                buf[2] = 1;
            }
        } else if (buf[0] == 0x16) {
            buf[0] = 0x17;
        }
        cr_assert_eq(px_tls_accept(srv, &s), 0);
        r = px_tls_in(s, buf, n);
        if (!(i & 1)) {
            cr_assert_eq(r, PX_TLS_PLAINTEXT);
            plain++;
        } else {
            cr_assert_geq(r, 0);
            r = px_tls_read(s, out, sizeof(out));
            cr_assert(r == 0 || r == PX_TLS_ERROR, "%zd", r);
            cr_assert_not(px_tls_handshake_done(s));
            fail += r < 0;
        }
        px_tls_free(s);
    }
    cr_assert_eq(stats(srv).fail_plaintext, plain);
    cr_assert_eq(stats(srv).fail_other + stats(srv).fail_version + stats(srv).fail_cipher, fail);
    cr_assert_gt(fail, 100);
    cr_assert_eq(stats(srv).ok, 0);
    px_tls_srv_free(srv);
}

TestSuite(px_tls_resume, .init = certs_init, .fini = certs_fini, .timeout = 20);

/* A first connection, then one with its session: resumed? */
static void resume_case(struct px_tls_srv *srv, struct rc_opt o, bool want)
{
    SSL_SESSION *sess = NULL;
    bool resumed = true;

    cr_assert_eq(conn_raw(srv, &o, &sess, &resumed), 1);
    cr_assert_not(resumed);
    cr_assert(sess);
    o.sess = sess;
    cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
    cr_assert_eq(resumed, want, "maxv %x opts %#lx", o.maxv, (unsigned long)o.opts);
    SSL_SESSION_free(sess);
}

Test(px_tls_resume, tickets_13_12_and_cache_12)
{
    struct px_tls_srv *srv = srv_abc("");

    resume_case(srv, (struct rc_opt){ .sni = "a.example.test" }, true);
    resume_case(srv, (struct rc_opt){ .sni = "b.example.test", .maxv = TLS1_2_VERSION }, true);
    /* No ticket: the server's session cache. */
    resume_case(srv, (struct rc_opt){ .sni = "a.example.test", .maxv = TLS1_2_VERSION,
                                      .opts = SSL_OP_NO_TICKET }, true);
    cr_assert_eq(stats(srv).ok, 6);
    cr_assert_eq(stats(srv).resumed, 3);
    px_tls_srv_free(srv);
}

Test(px_tls_resume, sessions_do_not_cross_services)
{
    struct px_tls_srv *s1 = srv_abc(""), *s2 = srv_abc("");
    SSL_SESSION *sess = NULL;
    bool resumed = true;

    for (int v = 0; v < 2; v++) {
        struct rc_opt o = { .maxv = v ? TLS1_2_VERSION : 0,
                            .opts = v ? SSL_OP_NO_TICKET : 0 };

        cr_assert_eq(conn_raw(s1, &o, &sess, &resumed), 1);
        o.sess = sess;
        cr_assert_eq(conn_raw(s2, &o, NULL, &resumed), 1);
        cr_assert_not(resumed);
        SSL_SESSION_free(sess);
    }
    px_tls_srv_free(s1);
    px_tls_srv_free(s2);
}

/* A ticket of the previous key resumes; one two rotations old does not. */
Test(px_tls_resume, ticket_key_rotation)
{
    struct px_tls_srv *srv = srv_abc("");

    for (int v = 0; v < 2; v++) {
        struct rc_opt o = { .sni = "a.example.test", .maxv = v ? TLS1_2_VERSION : 0 };
        SSL_SESSION *sess = NULL;
        bool resumed = false;

        cr_assert_eq(conn_raw(srv, &o, &sess, &resumed), 1);
        o.sess = sess;
        cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
        cr_assert(resumed);
        px_tls_srv_rotate_keys(srv);
        cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
        cr_assert(resumed, "previous key, v%d", v);
        px_tls_srv_rotate_keys(srv);
        cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
        cr_assert_not(resumed, "two rotations old, v%d", v);
        SSL_SESSION_free(sess);
    }
    px_tls_srv_free(srv);
}

/* The same by the clock alone (px_now_ms), without explicit rotations. */
Test(px_tls_resume, ticket_keys_rotate_with_time)
{
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o = { .sni = "a.example.test" };
    SSL_SESSION *sess = NULL;
    bool resumed = false;

    cr_assert_eq(conn_raw(srv, &o, &sess, &resumed), 1);
    o.sess = sess;
    px_now_offset_ms += PX_TLS_TICKET_PERIOD_MS - 1000;
    cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
    cr_assert(resumed);
    px_now_offset_ms += 2000;     /* one period: the key is the previous one now */
    cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
    cr_assert(resumed);
    px_now_offset_ms += PX_TLS_TICKET_PERIOD_MS;    /* two: gone */
    cr_assert_eq(conn_raw(srv, &o, NULL, &resumed), 1);
    cr_assert_not(resumed);
    SSL_SESSION_free(sess);
    px_tls_srv_free(srv);
}

struct thr {
    struct px_tls_srv *srv;
    int ok, resumed;
    _Atomic bool *stop;
};

static void *hs_thread(void *arg)
{
    struct thr *t = arg;
    SSL_SESSION *sess = NULL;
    bool resumed;

    for (int i = 0; i < 40; i++) {
        struct rc_opt o = { .maxv = (i & 2) ? TLS1_2_VERSION : 0, .sess = (i & 1) ? sess : NULL };
        SSL_SESSION *n = NULL;

        if (conn_raw(t->srv, &o, (i & 1) ? NULL : &n, &resumed) == 1) {
            t->ok++;
            t->resumed += resumed;
        }
        if (n) {
            SSL_SESSION_free(sess);
            sess = n;
        }
    }
    SSL_SESSION_free(sess);
    return NULL;
}

static void *rotate_thread(void *arg)
{
    struct thr *t = arg;

    while (!*t->stop) {
        px_tls_srv_rotate_keys(t->srv);
        usleep(200);
    }
    return NULL;
}

Test(px_tls_resume, threads_share_a_service)
{
    struct px_tls_srv *srv = srv_abc("");
    _Atomic bool stop = false;
    struct thr th[4], rt = { .srv = srv, .stop = &stop };
    pthread_t tid[4], rtid;
    int ok = 0, resumed = 0;

    for (int i = 0; i < 4; i++) {
        th[i] = (struct thr){ .srv = srv };
        cr_assert_eq(pthread_create(&tid[i], NULL, hs_thread, &th[i]), 0);
    }
    cr_assert_eq(pthread_create(&rtid, NULL, rotate_thread, &rt), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        ok += th[i].ok;
        resumed += th[i].resumed;
    }
    stop = true;
    pthread_join(rtid, NULL);
    cr_assert_eq(ok, 4 * 40);
    cr_assert_eq(stats(srv).ok, 4 * 40);
    cr_assert_eq(stats(srv).resumed, (uint64_t)resumed);
    cr_assert_gt(resumed, 0);
    px_tls_srv_free(srv);
}

TestSuite(px_tls_cli, .init = certs_init, .fini = certs_fini, .timeout = 20);

/* A px_tls client for name against the a/b/c service: 1 or the failure. */
static int cli_case(const char *ca, const char *name, char *who, char *err, size_t errlen,
                    char *sni_seen, size_t snilen)
{
    struct px_tls_srv *srv = srv_abc("");
    struct px_tls_cli *cli;
    struct px_tls *c, *s;
    char e[256] = "";
    int r;

    cr_assert_eq(px_tls_cli_new(ca, &cli, e, sizeof(e)), 0, "%s", e);
    cr_assert_eq(px_tls_connect(cli, name, &c), 0);
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    r = hs_px(c, s, who);
    snprintf(err, errlen, "%s", *who == 'c' ? px_tls_error(c) : px_tls_error(s));
    if (sni_seen)
        snprintf(sni_seen, snilen, "%s", px_tls_sni(s) ? px_tls_sni(s) : "(none)");
    if (r == 1) {
        char b[16];

        cr_assert_str_eq(px_tls_alpn(c), "http/1.1");
        cr_assert_str_eq(px_tls_alpn(s), "http/1.1");
        cr_assert_eq(px_tls_write(c, "GET /", 5), 5);
        cr_assert_geq(xfer(c, s, 0), 0);
        cr_assert_eq(px_tls_read(s, b, sizeof(b)), 5);
        cr_assert_eq(px_tls_shutdown(c), 0);
        cr_assert_eq(px_tls_write(c, "x", 1), -EPIPE);
        cr_assert_geq(xfer(c, s, 0), 0);
        cr_assert_eq(px_tls_read(s, b, sizeof(b)), PX_TLS_CLOSED);
        cr_assert_eq(px_tls_read(s, b, sizeof(b)), PX_TLS_CLOSED);
    } else {
        struct px_tls_stats st;

        px_tls_cli_stats(cli, &st);
        cr_assert_eq(st.fail_verify, *who == 'c');
    }
    px_tls_free(c);
    px_tls_free(s);
    px_tls_cli_free(cli);
    px_tls_srv_free(srv);
    return r;
}

Test(px_tls_cli, verify_names)
{
    char who = 0, err[256], sni[256];

    cr_assert_eq(cli_case(path_ca, "a.example.test", &who, err, sizeof(err), sni, sizeof(sni)),
                 1, "%c %s", who, err);
    cr_assert_str_eq(sni, "a.example.test");
    cr_assert_eq(cli_case(path_ca, "x.wild.test", &who, err, sizeof(err), NULL, 0), 1, "%s", err);
    cr_assert_eq(cli_case(path_ca, "127.0.0.1", &who, err, sizeof(err), sni, sizeof(sni)), 1,
                 "%s", err);
    cr_assert_str_eq(sni, "(none)");   /* no SNI for an IP literal */
    cr_assert_eq(cli_case(path_ca, "wrong.example.test", &who, err, sizeof(err), NULL, 0),
                 PX_TLS_ERROR);
    cr_assert_eq(who, 'c');
    cr_assert(strstr(err, "verify"), "%s", err);
    cr_assert_eq(cli_case(path_ca, "127.0.0.2", &who, err, sizeof(err), NULL, 0), PX_TLS_ERROR);
    cr_assert_eq(who, 'c');
}

Test(px_tls_cli, unverified)
{
    char who = 0, err[256], sni[256];

    cr_assert_eq(cli_case("", "wrong.example.test", &who, err, sizeof(err), sni, sizeof(sni)),
                 1, "%s", err);
    cr_assert_str_eq(sni, "wrong.example.test");
    cr_assert_eq(cli_case("", NULL, &who, err, sizeof(err), sni, sizeof(sni)), 1, "%s", err);
    cr_assert_str_eq(sni, "(none)");
}

Test(px_tls_cli, bad_ca_file)
{
    struct px_tls_cli *cli = (void *)1;
    char err[256] = "";

    cr_assert_eq(px_tls_cli_new("/nonexistent/ca.pem", &cli, err, sizeof(err)), -ENOENT);
    cr_assert_null(cli);
    cr_assert(strstr(err, "/nonexistent/ca.pem"), "%s", err);
    cr_assert_eq(px_tls_cli_new(path_junk, &cli, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "junk.pem"), "%s", err);
}

TestSuite(px_tls_io, .init = certs_init, .fini = certs_fini, .timeout = 20);

static void fill(char *p, size_t n, uint32_t x)
{
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)x;
    }
}

/* 4 MiB each way at once, ciphertext moved in 1..1500-byte pieces,
 * plaintext offered and read in random sizes. */
static void bulk(const char *minv)
{
    const size_t total = 4u << 20;
    struct px_tls_srv *srv = srv_abc(minv);
    struct px_tls_cli *cli;
    struct px_tls *c, *s;
    char *up = malloc(total), *down = malloc(total), *got_up = malloc(total),
         *got_down = malloc(total);
    size_t up_sent = 0, down_sent = 0, up_got = 0, down_got = 0;
    char err[256], who;
    long rounds = 0;

    cr_assert(up && down && got_up && got_down);
    fill(up, total, 1);
    fill(down, total, 2);
    cr_assert_eq(px_tls_cli_new("", &cli, err, sizeof(err)), 0);
    cr_assert_eq(px_tls_connect(cli, "a.example.test", &c), 0);
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert_eq(hs_px(c, s, &who), 1);
    while (up_got < total || down_got < total) {
        ssize_t n;
        size_t k;

        cr_assert_lt(++rounds, 2000000, "stuck: up %zu down %zu", up_got, down_got);
        if (up_sent < total) {
            k = 1 + (size_t)rand_r(&seed) % 70000;
            if (k > total - up_sent)
                k = total - up_sent;
            n = px_tls_write(c, up + up_sent, k);
            cr_assert_geq(n, 0);
            up_sent += (size_t)n;
        }
        if (down_sent < total) {
            k = 1 + (size_t)rand_r(&seed) % 70000;
            if (k > total - down_sent)
                k = total - down_sent;
            n = px_tls_write(s, down + down_sent, k);
            cr_assert_geq(n, 0);
            down_sent += (size_t)n;
        }
        cr_assert_geq(xfer(c, s, 1500), 0);
        cr_assert_geq(xfer(s, c, 1500), 0);
        k = 1 + (size_t)rand_r(&seed) % 20000;
        if (k > total - up_got)
            k = total - up_got;
        if (k) {
            n = px_tls_read(s, got_up + up_got, k);
            cr_assert_geq(n, 0, "%s", px_tls_error(s));
            up_got += (size_t)n;
        }
        k = 1 + (size_t)rand_r(&seed) % 20000;
        if (k > total - down_got)
            k = total - down_got;
        if (k) {
            n = px_tls_read(c, got_down + down_got, k);
            cr_assert_geq(n, 0, "%s", px_tls_error(c));
            down_got += (size_t)n;
        }
    }
    cr_assert_eq(memcmp(up, got_up, total), 0);
    cr_assert_eq(memcmp(down, got_down, total), 0);
    /* Server closes: the client reads the end after all data. */
    cr_assert_eq(px_tls_shutdown(s), 0);
    cr_assert_geq(xfer(s, c, 700), 0);
    {
        char b[8];

        cr_assert_eq(px_tls_read(c, b, sizeof(b)), PX_TLS_CLOSED);
    }
    px_tls_free(c);
    px_tls_free(s);
    px_tls_cli_free(cli);
    px_tls_srv_free(srv);
    free(up);
    free(down);
    free(got_up);
    free(got_down);
}

Test(px_tls_io, bulk_4mib_each_way_small_pieces)
{
    bulk("");
}

/* The same over TLS 1.2 records, with a raw client (one way each, since the
 * raw client's memory BIOs grow freely). */
Test(px_tls_io, bulk_tls12_raw_client)
{
    const size_t total = 4u << 20;
    struct px_tls_srv *srv = srv_abc("");
    struct rc_opt o = { .maxv = TLS1_2_VERSION };
    struct px_tls *s;
    struct rc c;
    char *down = malloc(total), *got = malloc(total), *up = malloc(total), *sgot = malloc(total);
    size_t sent = 0, recvd = 0, usent = 0, ugot = 0;
    bool cok;
    long rounds = 0;

    cr_assert(down && got && up && sgot);
    fill(down, total, 3);
    fill(up, total, 4);
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert(rc_new(&c, &o));
    cr_assert_eq(hs_raw(s, &c, &cok), 1);
    cr_assert_str_eq(px_tls_version(s), "TLSv1.2");
    while (recvd < total || ugot < total) {
        ssize_t n;
        int m;

        cr_assert_lt(++rounds, 2000000);
        if (sent < total) {
            n = px_tls_write(s, down + sent, total - sent);
            cr_assert_geq(n, 0);
            sent += (size_t)n;
        }
        if (usent < total) {
            size_t k = 1 + (size_t)rand_r(&seed) % 1500;

            if (k > total - usent)
                k = total - usent;
            cr_assert_eq(SSL_write(c.ssl, up + usent, (int)k), (int)k);
            usent += k;
        }
        s2c(s, &c);
        cr_assert_geq(c2s(&c, s), 0);
        while ((m = SSL_read(c.ssl, got + recvd, (int)(total - recvd > 16384 ? 16384
                                                                            : total - recvd))) > 0)
            recvd += (size_t)m;
        while (ugot < total && (n = px_tls_read(s, sgot + ugot, total - ugot)) > 0)
            ugot += (size_t)n;
        cr_assert_geq(n, 0);
    }
    cr_assert_eq(memcmp(down, got, total), 0);
    cr_assert_eq(memcmp(up, sgot, total), 0);
    /* Client's close_notify: the server reads the clean end. */
    SSL_shutdown(c.ssl);
    cr_assert_geq(c2s(&c, s), 0);
    {
        char b[8];

        cr_assert_eq(px_tls_read(s, b, sizeof(b)), PX_TLS_CLOSED);
    }
    px_tls_free(s);
    rc_free(&c);
    px_tls_srv_free(srv);
    free(down);
    free(got);
    free(up);
    free(sgot);
}

/* Output is held in place until out_done, and writes stop when it is full. */
Test(px_tls_io, output_backpressure_and_pointer_stability)
{
    struct px_tls_srv *srv = srv_abc("");
    struct px_tls_cli *cli;
    struct px_tls *c, *s;
    static char big[256 * 1024], copy[PX_TLS_OUT_SIZE], rd[256 * 1024];
    const char *p, *p2;
    size_t n, n2, total = 0, rtotal = 0;
    ssize_t w;
    char err[256], who;

    fill(big, sizeof(big), 5);
    cr_assert_eq(px_tls_cli_new("", &cli, err, sizeof(err)), 0);
    cr_assert_eq(px_tls_connect(cli, "a.example.test", &c), 0);
    cr_assert_eq(px_tls_write(c, "early", 5), 0);   /* handshake not done */
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert_eq(hs_px(c, s, &who), 1);
    w = px_tls_write(s, big, sizeof(big));
    cr_assert_gt(w, 0);
    cr_assert_lt((size_t)w, sizeof(big));           /* the ring is full */
    cr_assert_eq(px_tls_write(s, big + w, sizeof(big) - (size_t)w), 0);
    total = (size_t)w;
    n = px_tls_out(s, &p);
    cr_assert_gt(n, 0);
    memcpy(copy, p, n);
    /* A write in flight: more output is not produced over it. */
    px_tls_out_done(s, 0);
    cr_assert_eq(px_tls_write(s, big + total, sizeof(big) - total), 0);
    n2 = px_tls_out(s, &p2);
    cr_assert_eq(p2, p);
    cr_assert_eq(n2, n);
    cr_assert_eq(memcmp(copy, p, n), 0);
    /* Half of it sent: room again, the first half's bytes unchanged until then. */
    cr_assert_gt(px_tls_in(c, p, n / 2), 0);
    px_tls_out_done(s, n / 2);
    while (total < sizeof(big) || rtotal < sizeof(big)) {
        ssize_t r;

        w = px_tls_write(s, big + total, sizeof(big) - total);
        cr_assert_geq(w, 0);
        total += (size_t)w;
        cr_assert_geq(xfer(s, c, 0), 0);
        while ((r = px_tls_read(c, rd + rtotal, sizeof(rd) - rtotal)) > 0)
            rtotal += (size_t)r;
        cr_assert_geq(r, 0);
    }
    cr_assert_eq(memcmp(big, rd, sizeof(big)), 0);
    px_tls_free(c);
    px_tls_free(s);
    px_tls_cli_free(cli);
    px_tls_srv_free(srv);
}

/* Input: the ring fills, px_tls_in takes part, the rest after reads. */
Test(px_tls_io, input_ring_full)
{
    struct px_tls_srv *srv = srv_abc("");
    struct px_tls_cli *cli;
    struct px_tls *c, *s;
    static char big[200 * 1024], rd[200 * 1024];
    const char *p;
    size_t n, total = 0, fed = 0, rtotal = 0, room;
    ssize_t w;
    char err[256], who, *q;

    fill(big, sizeof(big), 6);
    cr_assert_eq(px_tls_cli_new("", &cli, err, sizeof(err)), 0);
    cr_assert_eq(px_tls_connect(cli, NULL, &c), 0);
    cr_assert_eq(px_tls_accept(srv, &s), 0);
    cr_assert_eq(hs_px(c, s, &who), 1);
    /* Fill the server's input without reading. */
    for (;;) {
        w = px_tls_write(c, big + total, sizeof(big) - total);
        cr_assert_geq(w, 0);
        total += (size_t)w;
        n = px_tls_out(c, &p);
        if (!n)
            break;
        w = px_tls_in(s, p, n);
        cr_assert_geq(w, 0);
        px_tls_out_done(c, (size_t)w);
        fed += (size_t)w;
        if ((size_t)w < n)
            break;
    }
    cr_assert_gt(fed, PX_TLS_IN_SIZE / 2);
    q = px_tls_in_buf(s, &room);
    cr_assert_eq(room, 0);
    cr_assert_null(q);
    /* Drain with zero-copy input from now on. */
    while (rtotal < sizeof(big)) {
        ssize_t r;

        while ((r = px_tls_read(s, rd + rtotal, 1000)) > 0)
            rtotal += (size_t)r;
        cr_assert_geq(r, 0);
        w = px_tls_write(c, big + total, sizeof(big) - total);
        cr_assert_geq(w, 0);
        total += (size_t)w;
        while ((n = px_tls_out(c, &p)) > 0 && (q = px_tls_in_buf(s, &room))) {
            if (n > room)
                n = room;
            memcpy(q, p, n);
            cr_assert_eq(px_tls_in_commit(s, n), 0);
            px_tls_out_done(c, n);
        }
    }
    cr_assert_eq(memcmp(big, rd, sizeof(big)), 0);
    cr_assert_eq(px_tls_in_commit(s, 1), -EINVAL);  /* no px_tls_in_buf before */
    px_tls_free(c);
    px_tls_free(s);
    px_tls_cli_free(cli);
    px_tls_srv_free(srv);
}
