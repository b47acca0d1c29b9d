// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * HTTP and HTTPS checks, and xlb_http_fetch().
 *
 * A check sends one request (HEAD by default, or GET; HTTP/1.1 or 1.0,
 * always with Host and "Connection: close") and reads the response with an
 * incremental reader: status line, headers, then a body delimited by
 * Content-Length, chunked encoding or the end of the connection, at most
 * XLB_CHECK_READ_MAX bytes in all.  It fails as soon as the status is
 * outside the configured set, and with expect_body it passes as soon as
 * the text is seen in the body (a match may straddle reads or chunks).  A
 * HEAD response has no body, so expect_body with HEAD never matches.
 *
 * HTTPS runs OpenSSL over two memory BIOs: bytes read from the socket are
 * written into the read BIO, and whatever OpenSSL wants to send is drained
 * from the write BIO onto the socket, so TLS never blocks and never owns a
 * file descriptor.  Checks without certificate verification share one
 * client SSL_CTX; a check with tls_verify has its own (its CA file).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check_int.h"

/* ---- the response reader ---- */

void xlb__http_resp_init(struct xlb_http_resp *r, bool head)
{
    memset(r, 0, sizeof(*r));
    r->phase = XLB_HTTP_STATUS;
    r->head = head;
}

/* Gather one line; returns true when r->line holds a complete one (CRLF
 * stripped, NUL-terminated).  *used is what was consumed of p. */
static bool line_push(struct xlb_http_resp *r, const uint8_t *p, size_t n, size_t *used)
{
    const uint8_t *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) + 1 : n;
    size_t copy = nl ? take - 1 : take;
    size_t room = sizeof(r->line) - 1 - r->line_len;

    if (copy > room) {
        copy = room;
        r->line_long = true;
    }
    memcpy(r->line + r->line_len, p, copy);
    r->line_len += copy;
    *used = take;
    if (!nl)
        return false;
    if (r->line_len && r->line[r->line_len - 1] == '\r' && !r->line_long)
        r->line_len--;
    r->line[r->line_len] = '\0';
    return true;
}

static int parse_status(struct xlb_http_resp *r)
{
    const char *s = r->line;
    int code;

    if (strncmp(s, "HTTP/", 5) || !isdigit((unsigned char)s[5]) || s[6] != '.' ||
        !isdigit((unsigned char)s[7]) || s[8] != ' ')
        return -EPROTO;
    if (!isdigit((unsigned char)s[9]) || !isdigit((unsigned char)s[10]) ||
        !isdigit((unsigned char)s[11]) || (s[12] && s[12] != ' '))
        return -EPROTO;
    code = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (code < 100)
        return -EPROTO;
    r->interim = code < 200;
    if (!r->interim)
        r->status = code;
    r->chunked = r->have_len = false;
    r->phase = XLB_HTTP_HEADERS;
    return 0;
}

static int parse_header(struct xlb_http_resp *r)
{
    char *colon = strchr(r->line, ':'), *v;

    if (r->line[0] == ' ' || r->line[0] == '\t')
        return 0;               /* obsolete line folding: nothing we read */
    if (!colon)
        return -EPROTO;
    *colon = '\0';
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcasecmp(r->line, "content-length")) {
        char *end;
        unsigned long long len;

        if (!isdigit((unsigned char)*v))
            return -EPROTO;
        errno = 0;
        len = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (errno || *end)
            return -EPROTO;
        if (r->have_len && r->remaining != len)
            return -EPROTO;
        r->have_len = true;
        r->remaining = len;
    } else if (!strcasecmp(r->line, "transfer-encoding")) {
        size_t l = strlen(v);

        while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
            l--;
        /* chunked is the last coding when present */
        r->chunked = l >= 7 && !strncasecmp(v + l - 7, "chunked", 7);
    }
    return 0;
}

static int end_of_headers(struct xlb_http_resp *r)
{
    if (r->interim) {
        r->phase = XLB_HTTP_STATUS;
        return 0;
    }
    if (r->head || r->status == 204 || r->status == 304)
        r->phase = XLB_HTTP_DONE;
    else if (r->chunked)
        r->phase = XLB_HTTP_CHUNK_SIZE;
    else if (r->have_len)
        r->phase = r->remaining ? XLB_HTTP_BODY_LEN : XLB_HTTP_DONE;
    else
        r->phase = XLB_HTTP_BODY_CLOSE;
    return 0;
}

static int parse_chunk_size(struct xlb_http_resp *r)
{
    const char *s = r->line;
    uint64_t v = 0;
    int digits = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    for (; isxdigit((unsigned char)*s); s++, digits++) {
        if (v >> 56)
            return -EPROTO;
        v = v * 16 + (uint64_t)(isdigit((unsigned char)*s) ? *s - '0'
                                                           : tolower((unsigned char)*s) - 'a' + 10);
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (!digits || (*s && *s != ';'))
        return -EPROTO;
    r->remaining = v;
    r->phase = v ? XLB_HTTP_CHUNK_DATA : XLB_HTTP_TRAILERS;
    return 0;
}

static int handle_line(struct xlb_http_resp *r)
{
    bool empty = r->line_len == 0;
    int err = 0;

    switch (r->phase) {
    case XLB_HTTP_STATUS:
        if (!empty)             /* tolerate stray CRLFs before the status */
            err = parse_status(r);
        break;
    case XLB_HTTP_HEADERS:
        err = empty ? end_of_headers(r) : parse_header(r);
        break;
    case XLB_HTTP_CHUNK_SIZE:
        err = parse_chunk_size(r);
        break;
    case XLB_HTTP_CHUNK_END:
        if (!empty)
            err = -EPROTO;
        r->phase = XLB_HTTP_CHUNK_SIZE;
        break;
    case XLB_HTTP_TRAILERS:
        if (empty)
            r->phase = XLB_HTTP_DONE;
        break;
    default:
        break;
    }
    r->line_len = 0;
    r->line_long = false;
    return err;
}

int xlb__http_resp_feed(struct xlb_http_resp *r, const uint8_t *p, size_t n, xlb_http_body_fn body,
                        void *ctx)
{
    while (n && r->phase != XLB_HTTP_DONE) {
        size_t used;
        bool more = true;

        switch (r->phase) {
        case XLB_HTTP_BODY_LEN:
        case XLB_HTTP_CHUNK_DATA:
            used = n < r->remaining ? n : (size_t)r->remaining;
            more = body(ctx, p, used);
            r->remaining -= used;
            if (!r->remaining)
                r->phase = r->phase == XLB_HTTP_BODY_LEN ? XLB_HTTP_DONE : XLB_HTTP_CHUNK_END;
            break;
        case XLB_HTTP_BODY_CLOSE:
            used = n;
            more = body(ctx, p, used);
            break;
        default:
            if (line_push(r, p, n, &used)) {
                int err = handle_line(r);

                if (err)
                    return err;
            }
            break;
        }
        p += used;
        n -= used;
        if (!more)
            return XLB_HTTP_COMPLETE;
    }
    return r->phase == XLB_HTTP_DONE ? XLB_HTTP_COMPLETE : XLB_HTTP_MORE;
}

int xlb__http_resp_eof(struct xlb_http_resp *r)
{
    if (r->phase == XLB_HTTP_BODY_CLOSE)
        r->phase = XLB_HTTP_DONE;
    return r->phase == XLB_HTTP_DONE ? XLB_HTTP_COMPLETE : -EPROTO;
}

/* ---- TLS contexts ---- */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *shared_ctx;
static unsigned shared_refs;

static SSL_CTX *shared_get(void)
{
    SSL_CTX *ctx;

    pthread_mutex_lock(&shared_lock);
    if (!shared_ctx) {
        shared_ctx = SSL_CTX_new(TLS_client_method());
        if (shared_ctx)
            SSL_CTX_set_verify(shared_ctx, SSL_VERIFY_NONE, NULL);
    }
    ctx = shared_ctx;
    if (ctx)
        shared_refs++;
    pthread_mutex_unlock(&shared_lock);
    return ctx;
}

static void shared_put(void)
{
    pthread_mutex_lock(&shared_lock);
    if (shared_refs && !--shared_refs) {
        SSL_CTX_free(shared_ctx);
        shared_ctx = NULL;
    }
    pthread_mutex_unlock(&shared_lock);
}

static int verify_ctx(struct xlb_check *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *ca = c->spec.tls_ca;
    struct stat sb;
    int ok;

    if (!ctx)
        return -ENOMEM;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca[0]) {
        if (stat(ca, &sb) < 0) {
            int err = -errno;

            SSL_CTX_free(ctx);
            return err;
        }
        ok = S_ISDIR(sb.st_mode) ? SSL_CTX_load_verify_locations(ctx, NULL, ca)
                                 : SSL_CTX_load_verify_locations(ctx, ca, NULL);
    } else {
        ok = SSL_CTX_set_default_verify_paths(ctx);
    }
    ERR_clear_error();
    if (ok != 1) {
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    c->ssl_ctx = ctx;
    return 0;
}

/* ---- the checks ---- */

static bool token_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static int http_init(struct xlb_check *c)
{
    struct xlb_cfg_hc *s = &c->spec;
    bool tls = s->type == XLB_HC_HTTPS;
    uint16_t defport = tls ? 443 : 80;
    char host[XLB_CFG_STR_MAX + 16];
    int n;

    for (char *m = s->method; *m; m++)
        *m = (char)toupper((unsigned char)*m);
    if (strcmp(s->method, "HEAD") && strcmp(s->method, "GET"))
        return -EINVAL;
    if (!token_ok(s->path) || !token_ok(s->host))
        return -EINVAL;
    if (s->host[0])
        snprintf(host, sizeof(host), "%s", s->host);
    else if (c->family == XLB_FAMILY_V6)
        snprintf(host, sizeof(host), c->port == defport ? "[%s]" : "[%s]:%u", c->addr_text,
                 c->port);
    else
        snprintf(host, sizeof(host), c->port == defport ? "%s" : "%s:%u", c->addr_text, c->port);
#define CHECK_REQUEST "%s %s HTTP/1.%c\r\nHost: %s\r\nUser-Agent: xlb-check\r\n" \
                      "Accept: */*\r\nConnection: close\r\n\r\n"
    n = snprintf(NULL, 0, CHECK_REQUEST, s->method, s->path, s->http10 ? '0' : '1', host);
    c->request = malloc((size_t)n + 1);
    if (!c->request)
        return -ENOMEM;
    snprintf(c->request, (size_t)n + 1, CHECK_REQUEST, s->method, s->path, s->http10 ? '0' : '1',
             host);
#undef CHECK_REQUEST
    c->request_len = (size_t)n;
    if (!tls)
        return 0;

    /* The TLS name: the configured host without a port, else the address.
     * SNI carries host names only, never an address. */
    if (s->host[0]) {
        struct in6_addr tmp;
        char *colon;

        snprintf(c->tls_name, sizeof(c->tls_name), "%s", s->host);
        if (c->tls_name[0] == '[') {
            char *end = strchr(c->tls_name, ']');

            if (end)
                *end = '\0';
            memmove(c->tls_name, c->tls_name + 1, strlen(c->tls_name));
        } else if ((colon = strchr(c->tls_name, ':')) && !strchr(colon + 1, ':')) {
            *colon = '\0';
        }
        c->tls_name_is_ip = inet_pton(AF_INET, c->tls_name, &tmp) == 1 ||
                            inet_pton(AF_INET6, c->tls_name, &tmp) == 1;
    } else {
        snprintf(c->tls_name, sizeof(c->tls_name), "%s", c->addr_text);
        c->tls_name_is_ip = true;
    }
    if (s->tls_verify)
        return verify_ctx(c);
    c->ssl_ctx = shared_get();
    return c->ssl_ctx ? 0 : -ENOMEM;
}

static void http_fini(struct xlb_check *c)
{
    free(c->request);
    c->request = NULL;
    if (c->ssl_ctx) {
        if (c->spec.tls_verify)
            SSL_CTX_free(c->ssl_ctx);
        else
            shared_put();
        c->ssl_ctx = NULL;
    }
}

static bool status_ok(const struct xlb_check *c, int status)
{
    for (int i = 0; i < c->spec.n_status; i++)
        if (status >= c->spec.status[i].lo && status <= c->spec.status[i].hi)
            return true;
    return false;
}

static bool body_match(void *ctx, const uint8_t *p, size_t n)
{
    struct xlb_check *c = ctx;

    xlb__matcher_feed(&c->p.http.m, p, n);
    /* stop reading once the expected text is there */
    return !(c->spec.expect_body[0] && c->p.http.m.found);
}

/* The response is complete, or as complete as it will be read. */
static void http_finish(struct xlb_check *c)
{
    int status = c->p.http.resp.status;

    if (!status) {
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "no status line in the first %u bytes",
                        XLB_CHECK_READ_MAX);
        return;
    }
    if (!c->spec.expect_body[0]) {
        xlb__probe_done(c, XLB_CHECK_PASS, "status %d", status);
        return;
    }
    if (c->p.http.m.found)
        xlb__probe_done(c, XLB_CHECK_PASS, "status %d, body text found", status);
    else if (c->p.http.resp.head)
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE,
                        "status %d, body text not found (a HEAD response has no body)", status);
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "status %d, body text not found", status);
}

static void http_feed(struct xlb_check *c, const uint8_t *p, size_t n)
{
    size_t left = XLB_CHECK_READ_MAX - c->p.http.nread;
    int r;

    if (n > left)
        n = left;
    c->p.http.nread += n;
    r = xlb__http_resp_feed(&c->p.http.resp, p, n, body_match, c);
    if (r < 0) {
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "malformed response");
        return;
    }
    if (c->p.http.resp.status && !status_ok(c, c->p.http.resp.status)) {
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "status %d", c->p.http.resp.status);
        return;
    }
    if (r == XLB_HTTP_COMPLETE || c->p.http.nread >= XLB_CHECK_READ_MAX)
        http_finish(c);
}

static void http_eof(struct xlb_check *c)
{
    if (xlb__http_resp_eof(&c->p.http.resp) == XLB_HTTP_COMPLETE)
        http_finish(c);
    else if (!c->p.http.nread)
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "closed without a response");
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "closed before the response was complete");
}

static void send_request(struct xlb_check *c)
{
    int err = xlb__stream_send(c, c->request, c->request_len);

    if (err)
        xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
}

static void http_connected(struct xlb_check *c)
{
    send_request(c);
}

static void http_data(struct xlb_check *c, const uint8_t *p, size_t n)
{
    http_feed(c, p, n);
}

static const struct xlb_stream_ops http_ops = { http_connected, http_data, http_eof };

/* Fresh per-probe state for http and https. */
static void http_reset(struct xlb_check *c)
{
    memset(&c->p.http, 0, sizeof(c->p.http));
    xlb__http_resp_init(&c->p.http.resp, !strcmp(c->spec.method, "HEAD"));
    xlb__matcher_init(&c->p.http.m, (const uint8_t *)c->spec.expect_body,
                      strlen(c->spec.expect_body));
}

static void http_start(struct xlb_check *c)
{
    http_reset(c);
    xlb__stream_start(c, &http_ops);
}

static void http_abort(struct xlb_check *c)
{
    if (c->p.http.ssl) {
        SSL_free(c->p.http.ssl);
        c->p.http.ssl = NULL;
    }
    xlb__stream_abort(c);
}

const struct xlb_check_kind xlb__kind_http = {
    .name = "http",
    .default_port = 80,
    .uses_port = true,
    .init = http_init,
    .fini = http_fini,
    .start = http_start,
    .abort = http_abort,
};

/* ---- https: the same over TLS ---- */

static void tls_fail(struct xlb_check *c, const char *when)
{
    SSL *ssl = c->p.http.ssl;
    long v = c->spec.tls_verify ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    if (v != X509_V_OK)
        xlb__probe_done(c, XLB_CHECK_FAIL_TLS, "certificate: %s", X509_verify_cert_error_string(v));
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_TLS, "%s: %s", when, why ? why : "failed");
}

/* Move what OpenSSL wrote into the write BIO onto the socket. */
static int tls_flush(struct xlb_check *c)
{
    BIO *wb = SSL_get_wbio(c->p.http.ssl);
    char buf[4096];
    int n, err;

    while ((n = BIO_read(wb, buf, sizeof(buf))) > 0) {
        err = xlb__stream_send(c, buf, (size_t)n);
        if (err) {
            xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
            return err;
        }
    }
    return 0;
}

/* Drive the handshake and then the reading, after new bytes came in. */
static void tls_pump(struct xlb_check *c)
{
    static __thread uint8_t plain[16384];
    SSL *ssl = c->p.http.ssl;
    int r, e;

    if (!c->p.http.hs_done) {
        ERR_clear_error();
        r = SSL_do_handshake(ssl);
        if (r != 1) {
            e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                tls_flush(c);
            else
                tls_fail(c, "TLS handshake");
            return;
        }
        c->p.http.hs_done = true;
        c->phase = "response";
        /* A memory BIO takes the whole request. */
        if (SSL_write(ssl, c->request, (int)c->request_len) != (int)c->request_len) {
            tls_fail(c, "TLS write");
            return;
        }
    }
    if (tls_flush(c))
        return;
    for (;;) {
        ERR_clear_error();
        r = SSL_read(ssl, plain, sizeof(plain));
        if (r > 0) {
            http_feed(c, plain, (size_t)r);
            if (!c->running)
                return;
            continue;
        }
        e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            http_eof(c);
            return;
        }
        tls_fail(c, "TLS read");
        return;
    }
    tls_flush(c);
}

static void tls_connected(struct xlb_check *c)
{
    SSL *ssl = SSL_new(c->ssl_ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());

    if (!ssl || !rb || !wb) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "TLS: out of memory");
        return;
    }
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    c->p.http.ssl = ssl;
    if (c->tls_name[0] && !c->tls_name_is_ip)
        SSL_set_tlsext_host_name(ssl, c->tls_name);
    if (c->spec.tls_verify) {
        if (c->tls_name_is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->tls_name);
        else
            SSL_set1_host(ssl, c->tls_name);
    }
    c->phase = "TLS handshake";
    tls_pump(c);
}

static void tls_data(struct xlb_check *c, const uint8_t *p, size_t n)
{
    if (BIO_write(SSL_get_rbio(c->p.http.ssl), p, (int)n) != (int)n) {
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "TLS: out of memory");
        return;
    }
    tls_pump(c);
}

static void tls_eof(struct xlb_check *c)
{
    if (!c->p.http.hs_done)
        xlb__probe_done(c, XLB_CHECK_FAIL_TLS, "closed during the TLS handshake");
    else
        http_eof(c);            /* many servers close without close_notify */
}

static const struct xlb_stream_ops https_ops = { tls_connected, tls_data, tls_eof };

static void https_start(struct xlb_check *c)
{
    http_reset(c);
    xlb__stream_start(c, &https_ops);
}

const struct xlb_check_kind xlb__kind_https = {
    .name = "https",
    .default_port = 443,
    .uses_port = true,
    .init = http_init,
    .fini = http_fini,
    .start = https_start,
    .abort = http_abort,
};

/* ---- xlb_http_fetch ---- */

#define FETCH_BODY_MAX 4096

struct fetch {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t conn;
    uv_write_t wreq;
    int pending;
    bool done;
    xlb_fetch_cb cb;
    void *arg;
    struct xlb_http_resp resp;
    size_t nread, body_len;
    char body[FETCH_BODY_MAX + 1];
    size_t req_len;
    char req[];
};

static void fetch_closed(uv_handle_t *h)
{
    struct fetch *f = h->data;

    if (!--f->pending)
        free(f);
}

/* Deliver the outcome (once) and release everything. */
static void fetch_end(struct fetch *f, int status, bool with_body)
{
    if (f->done)
        return;
    f->done = true;
    uv_timer_stop(&f->timer);
    f->body[f->body_len] = '\0';
    f->cb(status, with_body ? f->body : NULL, with_body ? f->body_len : 0, f->arg);
    if (uv_tcp_close_reset(&f->tcp, fetch_closed) != 0)
        uv_close((uv_handle_t *)&f->tcp, fetch_closed);
    uv_close((uv_handle_t *)&f->timer, fetch_closed);
}

static bool fetch_body(void *ctx, const uint8_t *p, size_t n)
{
    struct fetch *f = ctx;
    size_t room = FETCH_BODY_MAX - f->body_len;

    if (n > room)
        n = room;
    memcpy(f->body + f->body_len, p, n);
    f->body_len += n;
    return f->body_len < FETCH_BODY_MAX;
}

static void fetch_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fetch *f = s->data;
    size_t n, left;
    int r;

    if (f->done)
        return;
    if (nread == UV_EOF) {
        if (xlb__http_resp_eof(&f->resp) == XLB_HTTP_COMPLETE)
            fetch_end(f, f->resp.status, true);
        else
            fetch_end(f, -EPROTO, false);
        return;
    }
    if (nread < 0) {
        fetch_end(f, (int)nread, false);
        return;
    }
    n = (size_t)nread;
    left = XLB_CHECK_READ_MAX - f->nread;
    if (n > left)
        n = left;
    f->nread += n;
    r = xlb__http_resp_feed(&f->resp, (const uint8_t *)buf->base, n, fetch_body, f);
    if (r < 0)
        fetch_end(f, -EPROTO, false);
    else if (r == XLB_HTTP_COMPLETE)
        fetch_end(f, f->resp.status, true);
    else if (f->nread >= XLB_CHECK_READ_MAX)
        fetch_end(f, f->resp.status ? f->resp.status : -EMSGSIZE, f->resp.status != 0);
}

static void fetch_written(uv_write_t *req, int status)
{
    struct fetch *f = req->data;

    if (status < 0 && status != UV_ECANCELED)
        fetch_end(f, status, false);
}

static void fetch_connected(uv_connect_t *req, int status)
{
    struct fetch *f = req->data;
    uv_buf_t b;
    int err;

    if (f->done)
        return;
    if (status < 0) {
        fetch_end(f, status, false);
        return;
    }
    b = uv_buf_init(f->req, (unsigned int)f->req_len);
    f->wreq.data = f;
    err = uv_write(&f->wreq, (uv_stream_t *)&f->tcp, &b, 1, fetch_written);
    if (!err)
        err = uv_read_start((uv_stream_t *)&f->tcp, xlb__alloc_cb, fetch_read);
    if (err)
        fetch_end(f, err, false);
}

static void fetch_timeout(uv_timer_t *t)
{
    fetch_end(t->data, -ETIMEDOUT, false);
}

int xlb_http_fetch(uv_loop_t *loop, uint8_t family, const struct xlb_addr *addr, uint16_t port,
                   const char *host, const char *path, uint32_t timeout_ms, xlb_fetch_cb cb,
                   void *arg)
{
    char text[XLB_ADDR_STRLEN], hbuf[XLB_CFG_STR_MAX + 64];
    struct sockaddr_storage ss;
    struct fetch *f;
    int n, err;

    if (!loop || !addr || !path || path[0] != '/' || !cb || !port || !token_ok(path) ||
        (family != XLB_FAMILY_V4 && family != XLB_FAMILY_V6) || (host && !token_ok(host)))
        return -EINVAL;
    if (host && host[0]) {
        snprintf(hbuf, sizeof(hbuf), "%s", host);
    } else {
        xlb_addr_str(addr, family, text, sizeof(text));
        snprintf(hbuf, sizeof(hbuf), family == XLB_FAMILY_V6 ? "[%s]" : "%s", text);
        if (port != 80)
            snprintf(hbuf + strlen(hbuf), sizeof(hbuf) - strlen(hbuf), ":%u", port);
    }
#define FETCH_REQUEST "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xlb-agent\r\n" \
                      "Accept: */*\r\nConnection: close\r\n\r\n"
    n = snprintf(NULL, 0, FETCH_REQUEST, path, hbuf);
    f = calloc(1, sizeof(*f) + (size_t)n + 1);
    if (!f)
        return -ENOMEM;
    snprintf(f->req, (size_t)n + 1, FETCH_REQUEST, path, hbuf);
#undef FETCH_REQUEST
    f->req_len = (size_t)n;
    f->cb = cb;
    f->arg = arg;
    xlb__http_resp_init(&f->resp, false);
    xlb__sockaddr(family, addr, port, &ss);

    err = uv_tcp_init_ex(loop, &f->tcp, ss.ss_family);
    if (err) {
        free(f);
        return err;
    }
    err = uv_timer_init(loop, &f->timer);
    if (err) {
        f->tcp.data = f;
        f->pending = 1;
        uv_close((uv_handle_t *)&f->tcp, fetch_closed);
        return err;
    }
    f->tcp.data = f->timer.data = f->conn.data = f;
    f->pending = 2;
    uv_tcp_nodelay(&f->tcp, 1);
    err = uv_tcp_connect(&f->conn, &f->tcp, (const struct sockaddr *)&ss, fetch_connected);
    if (!err)
        err = uv_timer_start(&f->timer, fetch_timeout, timeout_ms ? timeout_ms : 3000, 0);
    if (err) {
        f->done = true;         /* the callback is never called */
        uv_close((uv_handle_t *)&f->tcp, fetch_closed);
        uv_close((uv_handle_t *)&f->timer, fetch_closed);
        return err;
    }
    return 0;
}
