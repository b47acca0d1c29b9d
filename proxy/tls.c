// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tls.c - the proxy's TLS layer on OpenSSL 3 (tls.h has the I/O contract).
 *
 * Each connection's SSL object talks to one half of a BIO pair; the other
 * half is ours.  The pair's two rings are the only buffers: ciphertext from
 * the socket is written into our half (px_tls_in, or straight from the
 * socket with px_tls_in_buf/commit), and the ciphertext SSL produced is
 * handed out in place with BIO_nread0 and consumed with BIO_nread only once
 * the socket took it, so the pointer given by px_tls_out() stays valid
 * while a write is in flight and nothing is allocated or moved per call.
 *
 * px_tls_write() encrypts only what fits in the output ring (one record per
 * SSL_write, room checked first), so SSL_write normally never meets a full
 * ring; if it still does, SSL holds a partly written record and the same
 * bytes are offered to SSL_write again on the next call (SSL requires it).
 *
 * A service's certificates each get an SSL_CTX with identical settings;
 * the SNI callback moves a handshake to the certificate's SSL_CTX.  The
 * session cache and the ticket callback are the first SSL_CTX's (OpenSSL
 * keeps the SSL_CTX a connection was created with as its session context),
 * so one cache and one key set serve every certificate.
 *
 * Ticket keys: a 16-byte name, an AES-256-CBC key and an HMAC-SHA256 key,
 * generated here.  New tickets use the current key; tickets of the previous
 * key are accepted and renewed.  Keys rotate when px_tls_srv_rotate_keys()
 * is called or, lazily in the ticket callback, when the current key is a
 * period old (two periods: both keys are too old and are replaced).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy.h"
#include "tls.h"

/* TLS 1.2 suites: forward secrecy and AEAD only.  TLS 1.3 keeps OpenSSL's
 * default suites (all AEAD). */
#define PX_TLS12_CIPHERS                                                                 \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                         \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define PX_TLS_GROUPS "X25519:P-256:P-384"
/* Bytes a record adds to its plaintext: header 5, explicit nonce (TLS 1.2
 * GCM) 8, tag 16, inner content type (TLS 1.3) 1; rounded up. */
#define PX_TLS_REC_OVERHEAD 64
#define PX_TLS_REC_MAX 16384
/* A write does not cut records smaller than this while more is offered. */
#define PX_TLS_REC_MIN 4096
#define PX_TLS_CACHE_SIZE 20480

static const unsigned char alpn_http11[] = "\x08http/1.1";

struct px_tls_ctr {
    _Atomic uint64_t ok, resumed, fail_plaintext, fail_version, fail_cipher, fail_verify,
        fail_other, sni_miss, sni_none;
};

struct px_tls_key {
    bool valid;
    uint8_t name[16];
    uint8_t aes[32];
    uint8_t hmac[32];
};

struct px_tls_cert {
    SSL_CTX *ctx;
    int n_names;
    char **names;               /* lowercase; "*.x.y" for wildcards */
};

struct px_tls_srv {
    char name[XLB_NAME_LEN];
    int n_certs;
    struct px_tls_cert *certs;
    pthread_mutex_t key_lock;   /* cur, prev, cur_since_ms */
    struct px_tls_key cur, prev;
    uint64_t cur_since_ms;
    struct px_tls_ctr ctr;
};

struct px_tls_cli {
    SSL_CTX *ctx;
    bool verify;
    struct px_tls_ctr ctr;
};

struct px_tls {
    SSL *ssl;
    BIO *ebio;                  /* our half of the pair */
    BIO *ibio;                  /* SSL's half (owned by ssl) */
    struct px_tls_ctr *ctr;
    bool server;
    bool hs_done;
    bool seen_input;
    bool closed;                /* close_notify received */
    bool shut, shut_pending;
    bool counted;               /* handshake outcome counted */
    int fail;                   /* sticky PX_TLS_* code, 0 = none */
    size_t wretry;              /* SSL_write to repeat with this length */
    char *in_p;                 /* from px_tls_in_buf */
    size_t in_room;
    char alpn[16];
    char err[192];
};

/* ---- errors ------------------------------------------------------------- */

/* The first error of OpenSSL's queue as text ("" when empty), then an empty
 * queue: errors are per thread and must not leak into the next connection. */
static void ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        snprintf(buf, len, "OpenSSL error %#lx", e);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

static void ctr_add(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Which fail_* counter an OpenSSL reason falls in. */
static _Atomic uint64_t *fail_ctr(struct px_tls_ctr *c, unsigned long e, long verify)
{
    if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
        switch (ERR_GET_REASON(e)) {
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_VERSION_TOO_HIGH:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
            return &c->fail_version;
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_KEY_SHARE:
        case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        case SSL_R_NO_CIPHERS_AVAILABLE:
            return &c->fail_cipher;
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            return &c->fail_verify;
        default:
            break;
        }
    }
    if (verify != X509_V_OK)
        return &c->fail_verify;
    return &c->fail_other;
}

/* A fatal SSL_get_error() result e: record why, count a failed handshake
 * once, make the failure sticky.  Returns PX_TLS_ERROR. */
static int ssl_fail(struct px_tls *t, int e)
{
    unsigned long first = ERR_peek_error();
    long verify = t->server ? X509_V_OK : SSL_get_verify_result(t->ssl);
    size_t n;

    if (e == SSL_ERROR_SYSCALL && !first)
        snprintf(t->err, sizeof(t->err), "unexpected end of the TLS stream");
    else
        ossl_reason(t->err, sizeof(t->err));
    if (verify != X509_V_OK) {
        n = strlen(t->err);
        snprintf(t->err + n, sizeof(t->err) - n, ": %s", X509_verify_cert_error_string(verify));
    }
    if (!t->hs_done && !t->counted) {
        t->counted = true;
        ctr_add(fail_ctr(t->ctr, first, verify));
    }
    t->fail = PX_TLS_ERROR;
    return PX_TLS_ERROR;
}

/* Empty the thread's error queue before an SSL call on the data path (so
 * that SSL_get_error() speaks of that call only): looking is cheaper than
 * clearing its slots every time. */
static inline void err_reset(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* After every SSL call: notice the end of the handshake once. */
static void check_done(struct px_tls *t)
{
    const unsigned char *p;
    unsigned int len;

    if (t->hs_done || !SSL_is_init_finished(t->ssl))
        return;
    t->hs_done = true;
    t->counted = true;
    ctr_add(&t->ctr->ok);
    if (SSL_session_reused(t->ssl))
        ctr_add(&t->ctr->resumed);
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (len && len < sizeof(t->alpn)) {
        memcpy(t->alpn, p, len);
        t->alpn[len] = 0;
    }
}

/* ---- server: SNI, ALPN, tickets ------------------------------------------ */

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* The certificate for SNI name: an exact DNS name first, then a wildcard
 * "*.rest" for a name of one more label.  -1: none. */
static int pick_cert(const struct px_tls_srv *s, const char *name)
{
    char buf[256];
    size_t len = strlen(name);
    const char *dot;
    int i, j;

    if (!len || len >= sizeof(buf))
        return -1;
    memcpy(buf, name, len + 1);
    if (buf[len - 1] == '.')
        buf[--len] = 0;
    lower(buf);
    for (i = 0; i < s->n_certs; i++)
        for (j = 0; j < s->certs[i].n_names; j++)
            if (!strcmp(s->certs[i].names[j], buf))
                return i;
    dot = strchr(buf, '.');
    if (!dot || dot == buf)
        return -1;
    for (i = 0; i < s->n_certs; i++)
        for (j = 0; j < s->certs[i].n_names; j++) {
            const char *n = s->certs[i].names[j];

            if (n[0] == '*' && n[1] == '.' && !strcmp(n + 1, dot))
                return i;
        }
    return -1;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    struct px_tls_srv *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    int i;

    (void)alert;
    if (!name) {
        ctr_add(&s->ctr.sni_none);
        return SSL_TLSEXT_ERR_NOACK;
    }
    i = pick_cert(s, name);
    if (i < 0) {
        ctr_add(&s->ctr.sni_miss);
        i = 0;
    }
    if (SSL_get_SSL_CTX(ssl) != s->certs[i].ctx)
        SSL_set_SSL_CTX(ssl, s->certs[i].ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: "http/1.1" when the client offers it, else no ALPN at all (a client
 * offering only h2 still gets HTTP/1.1 without the extension). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A fresh key into k; false (k untouched) if the RNG failed. */
static bool key_gen(struct px_tls_key *k)
{
    struct px_tls_key n = { .valid = true };

    if (RAND_bytes(n.name, sizeof(n.name)) != 1 || RAND_bytes(n.aes, sizeof(n.aes)) != 1 ||
        RAND_bytes(n.hmac, sizeof(n.hmac)) != 1) {
        ERR_clear_error();
        return false;
    }
    *k = n;
    OPENSSL_cleanse(&n, sizeof(n));
    return true;
}

/* With key_lock held. */
static void rotate_locked(struct px_tls_srv *s, uint64_t now, bool keep_prev)
{
    struct px_tls_key k;

    if (!key_gen(&k)) {
        px_log(PX_ERR, "service %s: no random bytes for a new TLS ticket key; keeping the old one",
               s->name);
        return;
    }
    if (keep_prev)
        s->prev = s->cur;
    else
        OPENSSL_cleanse(&s->prev, sizeof(s->prev));
    s->cur = k;
    s->cur_since_ms = now;
    OPENSSL_cleanse(&k, sizeof(k));
}

static void rotate_if_due(struct px_tls_srv *s)
{
    uint64_t now = px_now_ms(), age = now - s->cur_since_ms;

    if (age >= 2ull * PX_TLS_TICKET_PERIOD_MS)
        rotate_locked(s, now, false);
    else if (age >= PX_TLS_TICKET_PERIOD_MS)
        rotate_locked(s, now, true);
}

void px_tls_srv_rotate_keys(struct px_tls_srv *s)
{
    pthread_mutex_lock(&s->key_lock);
    rotate_locked(s, px_now_ms(), true);
    pthread_mutex_unlock(&s->key_lock);
}

/* OpenSSL's ticket callback: enc 1 = set up a new ticket's keys, 0 = find
 * the key of key_name.  Returns 1 (ok), 2 (ok, issue a new ticket: it was
 * the previous key), 0 (unknown key: full handshake), -1 (error). */
static int ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct px_tls_srv *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct px_tls_key k = { .valid = false };
    OSSL_PARAM params[3];
    int rc = 1;

    pthread_mutex_lock(&s->key_lock);
    rotate_if_due(s);
    if (enc) {
        k = s->cur;
    } else if (!memcmp(key_name, s->cur.name, sizeof(k.name))) {
        k = s->cur;
    } else if (s->prev.valid && !memcmp(key_name, s->prev.name, sizeof(k.name))) {
        k = s->prev;
        rc = 2;
    }
    pthread_mutex_unlock(&s->key_lock);
    if (!k.valid)
        return 0;
    if (enc) {
        if (RAND_bytes(iv, 16) != 1)
            goto fail;
        memcpy(key_name, k.name, sizeof(k.name));
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            goto fail;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        goto fail;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        goto fail;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
fail:
    OPENSSL_cleanse(&k, sizeof(k));
    return -1;
}

/* ---- server: certificates ------------------------------------------------- */

/* The names a client may reach cert by: DNS SANs, else the CN. */
static int cert_names(struct px_tls_cert *c)
{
    X509 *x = SSL_CTX_get0_certificate(c->ctx);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int i, n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    unsigned char *cn = NULL;
    int rc = -ENOMEM;

    c->names = calloc((size_t)n + 1, sizeof(char *));
    if (!c->names)
        goto out;
    for (i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        int len;

        if (g->type != GEN_DNS)
            continue;
        d = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || len > 253 || memchr(d, 0, (size_t)len))
            continue;
        if (!(c->names[c->n_names] = strndup((const char *)d, (size_t)len)))
            goto out;
        lower(c->names[c->n_names++]);
    }
    if (!c->n_names) {
        X509_NAME *subj = X509_get_subject_name(x);
        int k = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        int len = -1;

        if (k >= 0)
            len = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, k)));
        if (len > 0 && len <= 253 && !memchr(cn, 0, (size_t)len)) {
            if (!(c->names[0] = strdup((const char *)cn)))
                goto out;
            lower(c->names[c->n_names++]);
        }
    }
    rc = 0;
out:
    OPENSSL_free(cn);
    GENERAL_NAMES_free(gens);
    return rc;
}

/* An SSL_CTX with the service's settings, no certificate yet. */
static SSL_CTX *srv_ctx(struct px_tls_srv *s, int min_version, const unsigned char *sid,
                        char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[128];

    if (!ctx)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
        SSL_CTX_set_cipher_list(ctx, PX_TLS12_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, PX_TLS_GROUPS) != 1 ||
        SSL_CTX_set_session_id_context(ctx, sid, SSL_MAX_SID_CTX_LENGTH) != 1)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, PX_TLS_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, PX_TLS_TICKET_PERIOD_MS / 1000);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_app_data(ctx, s);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return ctx;
fail:
    ossl_reason(why, sizeof(why));
    snprintf(err, errlen, "service %s: TLS setup failed: %s", s->name, why);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Certificate, intermediates and key of one PEM file into ctx. */
static int load_file(SSL_CTX *ctx, const char *svc, const char *path, char *err, size_t errlen)
{
    char why[128];

    if (access(path, R_OK) < 0) {
        int rc = -errno;

        snprintf(err, errlen, "service %s: TLS certificate %s: %s", svc, path, strerror(errno));
        return rc;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
        ossl_reason(why, sizeof(why));
        snprintf(err, errlen, "service %s: TLS certificate %s: no usable PEM certificate (%s)",
                 svc, path, why);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
        ossl_reason(why, sizeof(why));
        snprintf(err, errlen, "service %s: TLS certificate %s: no usable private key in the file "
                 "(%s); put the key in the same PEM file as the certificate", svc, path, why);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ossl_reason(why, sizeof(why));
        snprintf(err, errlen, "service %s: TLS certificate %s: the private key does not match "
                 "the certificate (%s)", svc, path, why);
        return -EINVAL;
    }
    return 0;
}

/* A self-signed EC P-256 certificate for name (CN and DNS SAN), one year. */
static int self_signed(SSL_CTX *ctx, const char *name, char *err, size_t errlen)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
    X509_NAME *subj;
    char why[128];
    int rc = -ENOMEM;

    if (!pk || !x || !serial || !gens || !g || !dns)
        goto fail;
    if (!ASN1_STRING_set(dns, name, -1))
        goto fail;
    GENERAL_NAME_set0_value(g, GEN_DNS, dns);
    dns = NULL;
    if (!sk_GENERAL_NAME_push(gens, g))
        goto fail;
    g = NULL;
    subj = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) ||
        X509_set_pubkey(x, pk) != 1 ||
        X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, subj) != 1 ||
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509_sign(x, pk, EVP_sha256()) <= 0 ||
        SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, pk) != 1)
        goto fail;
    rc = 0;
    goto out;
fail:
    ossl_reason(why, sizeof(why));
    snprintf(err, errlen, "service %s: cannot generate a self-signed TLS certificate: %s", name,
             why);
out:
    ASN1_IA5STRING_free(dns);
    GENERAL_NAME_free(g);
    GENERAL_NAMES_free(gens);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}

int px_tls_srv_new(const struct xlb_cfg_tls *cfg, const char *svc_name, struct px_tls_srv **out,
                   char *err, size_t errlen)
{
    struct px_tls_srv *s;
    unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
    char label[XLB_NAME_LEN + 16];
    int min, i, n, rc = -ENOMEM;

    *out = NULL;
    if (!cfg->min_version[0] || !strcmp(cfg->min_version, "1.2")) {
        min = TLS1_2_VERSION;
    } else if (!strcmp(cfg->min_version, "1.3")) {
        min = TLS1_3_VERSION;
    } else {
        snprintf(err, errlen, "service %s: tls.min_version \"%s\": use \"1.2\" or \"1.3\"",
                 svc_name, cfg->min_version);
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        goto nomem;
    snprintf(s->name, sizeof(s->name), "%s", svc_name);
    pthread_mutex_init(&s->key_lock, NULL);
    n = cfg->n_certs > 0 ? cfg->n_certs : 1;
    s->certs = calloc((size_t)n, sizeof(*s->certs));
    if (!s->certs)
        goto nomem;
    /* One session-ID context per service: sessions never cross services. */
    snprintf(label, sizeof(label), "xlb-proxy %s", s->name);
    if (EVP_Digest(label, strlen(label), sid, NULL, EVP_sha256(), NULL) != 1)
        goto nomem;
    for (i = 0; i < n; i++) {
        struct px_tls_cert *c = &s->certs[i];

        if (!(c->ctx = srv_ctx(s, min, sid, err, errlen))) {
            rc = -ENOMEM;
            goto fail;
        }
        s->n_certs = i + 1;
        if (cfg->n_certs > 0)
            rc = load_file(c->ctx, s->name, cfg->certs[i], err, errlen);
        else
            rc = self_signed(c->ctx, s->name, err, errlen);
        if (rc < 0)
            goto fail;
        if ((rc = cert_names(c)) < 0)
            goto nomem;
    }
    if (!key_gen(&s->cur)) {
        snprintf(err, errlen, "service %s: no random bytes for TLS ticket keys", s->name);
        rc = -EIO;
        goto fail;
    }
    s->cur_since_ms = px_now_ms();
    if (cfg->n_certs <= 0)
        px_log(PX_WARN, "service %s: tls has no certificates: serving a generated self-signed "
               "certificate for \"%s\"; clients will not trust it - set tls.certificates",
               s->name, s->name);
    *out = s;
    return 0;
nomem:
    rc = -ENOMEM;
    snprintf(err, errlen, "service %s: out of memory setting up TLS", svc_name);
fail:
    px_tls_srv_free(s);
    return rc;
}

void px_tls_srv_free(struct px_tls_srv *s)
{
    int i, j;

    if (!s)
        return;
    for (i = 0; i < s->n_certs; i++) {
        SSL_CTX_free(s->certs[i].ctx);
        for (j = 0; j < s->certs[i].n_names; j++)
            free(s->certs[i].names[j]);
        free(s->certs[i].names);
    }
    free(s->certs);
    OPENSSL_cleanse(&s->cur, sizeof(s->cur));
    OPENSSL_cleanse(&s->prev, sizeof(s->prev));
    pthread_mutex_destroy(&s->key_lock);
    free(s);
}

static void stats_copy(const struct px_tls_ctr *c, struct px_tls_stats *o)
{
#define LD(f) o->f = atomic_load_explicit(&c->f, memory_order_relaxed)
    LD(ok);
    LD(resumed);
    LD(fail_plaintext);
    LD(fail_version);
    LD(fail_cipher);
    LD(fail_verify);
    LD(fail_other);
    LD(sni_miss);
    LD(sni_none);
#undef LD
}

void px_tls_srv_stats(const struct px_tls_srv *s, struct px_tls_stats *out)
{
    stats_copy(&s->ctr, out);
}

int px_tls_srv_n_certs(const struct px_tls_srv *s)
{
    return s->n_certs;
}

const char *px_tls_srv_cert_name(const struct px_tls_srv *s, int i, int j)
{
    if (i < 0 || i >= s->n_certs || j < 0 || j >= s->certs[i].n_names)
        return NULL;
    return s->certs[i].names[j];
}

/* ---- client -------------------------------------------------------------- */

int px_tls_cli_new(const char *ca_file, struct px_tls_cli **out, char *err, size_t errlen)
{
    struct px_tls_cli *c = calloc(1, sizeof(*c));
    char why[128];
    int rc = -ENOMEM;

    *out = NULL;
    if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method())))
        goto fail;
    if (SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(c->ctx, alpn_http11, sizeof(alpn_http11) - 1) != 0)
        goto fail;
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ca_file && ca_file[0]) {
        if (access(ca_file, R_OK) < 0) {
            rc = -errno;
            snprintf(err, errlen, "TLS CA file %s: %s", ca_file, strerror(errno));
            goto out;
        }
        if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
            ossl_reason(why, sizeof(why));
            snprintf(err, errlen, "TLS CA file %s: no usable PEM certificate (%s)", ca_file, why);
            rc = -EINVAL;
            goto out;
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        c->verify = true;
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }
    *out = c;
    return 0;
fail:
    ossl_reason(why, sizeof(why));
    snprintf(err, errlen, "TLS client setup failed: %s", why);
out:
    px_tls_cli_free(c);
    return rc;
}

void px_tls_cli_free(struct px_tls_cli *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

void px_tls_cli_stats(const struct px_tls_cli *c, struct px_tls_stats *out)
{
    stats_copy(&c->ctr, out);
}

/* ---- connections --------------------------------------------------------- */

static int tls_new(SSL_CTX *ctx, struct px_tls_ctr *ctr, bool server, struct px_tls **out)
{
    struct px_tls *t = calloc(1, sizeof(*t));

    *out = NULL;
    if (!t)
        return -ENOMEM;
    t->ctr = ctr;
    t->server = server;
    if (!(t->ssl = SSL_new(ctx)) ||
        BIO_new_bio_pair(&t->ibio, PX_TLS_OUT_SIZE, &t->ebio, PX_TLS_IN_SIZE) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        return -ENOMEM;
    }
    SSL_set_bio(t->ssl, t->ibio, t->ibio);
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    *out = t;
    return 0;
}

int px_tls_accept(struct px_tls_srv *s, struct px_tls **out)
{
    return tls_new(s->certs[0].ctx, &s->ctr, true, out);
}

int px_tls_connect(struct px_tls_cli *c, const char *name, struct px_tls **out)
{
    struct px_tls *t;
    unsigned char a[16];
    bool ip;
    int rc = tls_new(c->ctx, &c->ctr, false, &t);

    if (rc < 0)
        return rc;
    if (name && name[0]) {
        ip = inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
        if (!ip && SSL_set_tlsext_host_name(t->ssl, name) != 1)
            goto bad;
        if (c->verify) {
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) != 1
                   : SSL_set1_host(t->ssl, name) != 1)
                goto bad;
        }
    }
    *out = t;
    return 0;
bad:
    ERR_clear_error();
    px_tls_free(t);
    return -EINVAL;
}

/* A connection that ends without close_notify after a good handshake (the
 * usual end of an HTTP connection) keeps its session resumable: OpenSSL
 * would otherwise drop it from the cache when freed.  A fatal error already
 * dropped it. */
void px_tls_free(struct px_tls *t)
{
    if (!t)
        return;
    if (t->hs_done && !t->fail)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl);
    BIO_free(t->ebio);
    free(t);
}

char *px_tls_in_buf(struct px_tls *t, size_t *room)
{
    char *p;
    int n;

    t->in_p = NULL;
    t->in_room = 0;
    *room = 0;
    if (t->fail)
        return NULL;
    n = BIO_nwrite0(t->ebio, &p);
    if (n <= 0)
        return NULL;
    t->in_p = p;
    t->in_room = *room = (size_t)n;
    return p;
}

int px_tls_in_commit(struct px_tls *t, size_t n)
{
    char *p;

    if (t->fail)
        return t->fail;
    if (n > t->in_room || (n && !t->in_p))
        return -EINVAL;
    if (!n)
        return 0;
    if (t->server && !t->seen_input) {
        unsigned char b = (unsigned char)t->in_p[0];

        t->seen_input = true;
        if (b != 0x16) {
            snprintf(t->err, sizeof(t->err), "not TLS: the first byte is 0x%02x, not a "
                     "handshake record%s", b,
                     px_tls_looks_like_http(t->in_p, n) ? " (plain HTTP)" : "");
            t->counted = true;
            ctr_add(&t->ctr->fail_plaintext);
            t->fail = PX_TLS_PLAINTEXT;
            t->in_p = NULL;
            return t->fail;
        }
    }
    t->seen_input = true;
    BIO_nwrite(t->ebio, &p, (int)n);
    t->in_p = NULL;
    t->in_room = 0;
    return 0;
}

ssize_t px_tls_in(struct px_tls *t, const char *cipher, size_t len)
{
    size_t done = 0, room, n;
    char *p;
    int rc;

    if (t->fail)
        return t->fail;
    while (done < len && (p = px_tls_in_buf(t, &room))) {
        n = len - done < room ? len - done : room;
        memcpy(p, cipher + done, n);
        if ((rc = px_tls_in_commit(t, n)) < 0)
            return rc;
        done += n;
    }
    return (ssize_t)done;
}

int px_tls_handshake(struct px_tls *t)
{
    int r, e;

    if (t->fail)
        return t->fail;
    if (t->hs_done)
        return 1;
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    check_done(t);
    if (r == 1)
        return 1;
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return ssl_fail(t, e);
}

bool px_tls_handshake_done(const struct px_tls *t)
{
    return t->hs_done;
}

ssize_t px_tls_read(struct px_tls *t, char *buf, size_t len)
{
    size_t got = 0, want;
    int n, e;

    if (t->fail)
        return t->fail;
    if (t->closed)
        return PX_TLS_CLOSED;
    if (!len)
        return 0;
    while (got < len) {
        want = len - got > INT_MAX ? INT_MAX : len - got;
        err_reset();
        n = SSL_read(t->ssl, buf + got, (int)want);
        check_done(t);
        if (n > 0) {
            got += (size_t)n;
            /* Nothing decrypted nor received left: the next SSL_read
             * would only say so. */
            if (!SSL_pending(t->ssl) && !BIO_ctrl_pending(t->ibio))
                break;
            continue;
        }
        e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            t->closed = true;
        } else {
            ssl_fail(t, e);
        }
        /* The data before the end first; the end on the next call. */
        if (got)
            break;
        return t->fail ? t->fail : PX_TLS_CLOSED;
    }
    return (ssize_t)got;
}

ssize_t px_tls_write(struct px_tls *t, const char *buf, size_t len)
{
    size_t done = 0, room, chunk;
    int n, e, r;

    if (t->fail)
        return t->fail;
    if (t->shut)
        return -EPIPE;
    if (!t->hs_done && (r = px_tls_handshake(t)) <= 0)
        return r;
    while (done < len) {
        if (t->wretry) {
            if (len < t->wretry)
                return -EINVAL;
            chunk = t->wretry;
        } else {
            room = BIO_ctrl_get_write_guarantee(t->ibio);
            if (room <= PX_TLS_REC_OVERHEAD)
                break;
            chunk = len - done;
            if (chunk > PX_TLS_REC_MAX)
                chunk = PX_TLS_REC_MAX;
            if (chunk > room - PX_TLS_REC_OVERHEAD) {
                chunk = room - PX_TLS_REC_OVERHEAD;
                if (chunk < PX_TLS_REC_MIN)
                    break;
            }
        }
        err_reset();
        n = SSL_write(t->ssl, buf + done, (int)chunk);
        if (n > 0) {
            t->wretry = 0;
            done += (size_t)n;
            continue;
        }
        e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            t->wretry = chunk;
            break;
        }
        r = ssl_fail(t, e);
        return done ? (ssize_t)done : r;
    }
    return (ssize_t)done;
}

bool px_tls_readable(struct px_tls *t)
{
    /* The end and a failure count too: px_tls_read() reports them. */
    return t->fail || t->closed || SSL_pending(t->ssl) || BIO_ctrl_pending(t->ibio);
}

ssize_t px_tls_write_gather(struct px_tls *t, const char *const *bufs, const size_t *lens, int n)
{
    static __thread char rec[PX_TLS_REC_MAX];
    size_t total = 0;
    int i, r, e;

    if (t->fail || t->shut || !t->hs_done || t->wretry)
        return 0;
    for (i = 0; i < n; i++)
        total += lens[i];
    /* 128: a record's overhead with any cipher (CBC with SHA-384: 85) */
    if (!total || total > sizeof(rec) || BIO_ctrl_get_write_guarantee(t->ibio) < total + 128)
        return 0;
    total = 0;
    for (i = 0; i < n; i++) {
        memcpy(rec + total, bufs[i], lens[i]);
        total += lens[i];
    }
    err_reset();
    r = SSL_write(t->ssl, rec, (int)total);
    if (r > 0)
        return r;
    /* With the room checked above and renegotiation off, a record that
     * is not taken whole means the session is broken. */
    e = SSL_get_error(t->ssl, r);
    return ssl_fail(t, e);
}

size_t px_tls_out(struct px_tls *t, const char **p)
{
    char *q;
    int n = BIO_nread0(t->ebio, &q);

    if (n <= 0) {
        *p = NULL;
        return 0;
    }
    *p = q;
    return (size_t)n;
}

static void do_shutdown(struct px_tls *t)
{
    int r, e;

    ERR_clear_error();
    r = SSL_shutdown(t->ssl);
    t->shut_pending = false;
    if (r < 0) {
        e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            t->shut_pending = true;
    }
    ERR_clear_error();
}

void px_tls_out_done(struct px_tls *t, size_t n)
{
    char *q;
    int m;

    while (n) {
        m = BIO_nread(t->ebio, &q, n > INT_MAX ? INT_MAX : (int)n);
        if (m <= 0)
            break;
        n -= (size_t)m;
    }
    if (t->shut_pending && !t->fail)
        do_shutdown(t);
}

int px_tls_shutdown(struct px_tls *t)
{
    if (t->shut)
        return 0;
    t->shut = true;
    /* No close_notify after a fatal alert, nor in the middle of a handshake. */
    if (t->fail || !t->hs_done)
        return 0;
    do_shutdown(t);
    return 0;
}

const char *px_tls_version(const struct px_tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *px_tls_cipher(const struct px_tls *t)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);

    return c ? SSL_CIPHER_get_name(c) : "";
}

bool px_tls_resumed(const struct px_tls *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

const char *px_tls_sni(const struct px_tls *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *px_tls_alpn(const struct px_tls *t)
{
    return t->alpn;
}

const char *px_tls_error(const struct px_tls *t)
{
    return t->err;
}

bool px_tls_looks_like_http(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && i < 16; i++) {
        if (p[i] == ' ')
            return i > 0;
        if (p[i] < 'A' || p[i] > 'Z')
            return false;
    }
    return n > 0 && i == n;
}
