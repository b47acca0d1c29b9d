/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conn.c - one client connection of a worker, and the upstream connections
 * it uses, as a state machine on the worker's loop.
 *
 * Buffers.  The client side has one buffer (cbuf): a request head is
 * accumulated and parsed in it, then request body bytes are read into it
 * and written to the upstream.  The upstream side has one buffer (up->buf)
 * for the response head and then response body bytes.  While a write from a
 * buffer is pending, nothing is read into that buffer: a slow reader on one
 * side stops reading on the other, and the proxy holds at most one buffer
 * per direction whatever the body size.
 *
 * Upstream connections are kept per worker and real (idle list, LIFO, at
 * most proxy.upstream.max_idle, closed after upstream_idle or when the real
 * closes them).
 *
 * Failures before any response byte: a connect error or timeout is retried
 * on another real for every method (nothing was sent); a connection that
 * closes or resets after the request was sent is retried only for an
 * idempotent request without a body (GET, HEAD, PUT, DELETE, OPTIONS,
 * TRACE).  Each failed real counts a passive failure; proxy.upstream
 * .fail_after consecutive ones keep it out of new choices for fail_time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy.h"
#include "xlb_addr.h"
#include "cache.h"
#include "compress.h"
#include "tls.h"

enum phase {
    PH_HEAD,        /* reading a request head (or idle between requests) */
    PH_CONNECT,     /* connecting to the real */
    PH_EXCHANGE,    /* request sent (body may still stream), response expected */
    PH_ERROR,       /* writing an answer of our own, then closing */
};

struct px_conn {
    uv_tcp_t tcp;
    struct px_conn *next, *prev;    /* in the worker's list */
    uv_timer_t timer;
    uv_write_t cw;              /* a write to the client */
    uv_shutdown_t sreq;
    struct px_worker *w;
    struct px_listener *l;
    struct px_service *svc;
    uint64_t deadline;          /* loop ms of the timeout in force; UINT64_MAX: none */
    uint64_t timer_due;         /* loop ms the uv timer is set for */
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    int handles;                /* open handles; freed at 0 */
    bool closing;

    enum phase phase;
    /* request */
    struct xlb_h1_parser req;
    struct xlb_h1_field *fields;
    char *cbuf;
    size_t ccap, clen;
    size_t next_off;            /* cbuf[next_off..clen): bytes of the next request */
    bool req_body_done;
    bool client_reading;
    bool cwrite_pending;
    bool client_eof;
    struct px_pool *pool;
    struct px_choice choice;
    struct px_real *real;       /* counted in real->active */
    struct px_up *up;
    uint64_t *exclude;          /* bits: reals of pool that failed for this request */
    int attempts;
    bool sent_any;              /* request bytes reached an upstream */
    bool idempotent, has_body, is_head;
    bool logged;                /* this request is in the access log and the counters */
    const char *rbuf;           /* the request head: cbuf, or hcopy while cbuf takes the body */
    char *hcopy;
    /* compression */
    enum px_enc enc;            /* what the client accepts best; IDENTITY = none */
    struct px_enc_stream *comp; /* streaming this response */
    bool comp_end;              /* the last chunk is out (or queued) */
    bool await_whole;           /* reading the rest of a body to compress whole */
    struct px_block *whole;     /* the body gathered, when up->buf is too small */
    size_t whole_len;
    struct px_block *zout;      /* the whole body compressed (else in zbuf) */
    bool head_queued;           /* out_c not written yet (goes with the first chunk) */
    const char *zin;            /* payload waiting for the encoder, in up->buf */
    size_t zin_len;
    char *zbuf;                 /* encoder output with room for the chunk framing */
    size_t zcap;
    /* cache */
    int cache_rc;
    struct px_cache_obj *hit;   /* being served */
    struct px_cache_fill *fill; /* being stored */
    struct xlb_h1_field *cfields;   /* to parse the head given to the cache */
    /* TLS with the client */
    struct px_tls *tls;
    struct px_tlsw tw;          /* its ciphertext writing */
    uv_write_cb tcb;            /* completion of a send that waited */
    char method[16];            /* for the access log (cbuf is reused for the body) */
    char target[256];
    /* response */
    struct xlb_h1_parser resp;
    struct xlb_h1_field *rfields;
    bool resp_head_done, resp_body_done, resp_started;
    bool dechunk;               /* chunked response to an HTTP/1.0 client */
    bool close_after;
    struct xlb_buf out_c, out_u;    /* heads being written */
    /* accounting */
    uint64_t t_start, t_connect, t_header;  /* ms, px_now_ms */
    uint64_t bytes_in, bytes_out;
    int status;
    int retries;
    uint64_t requests;
};

static void conn_close(struct px_conn *c);
static void start_request(struct px_conn *c);
static void up_start(struct px_conn *c);
static void up_release(struct px_conn *c, bool reuse);
static void resp_continue(struct px_conn *c);
static void req_continue(struct px_conn *c);
static void fail_upstream(struct px_conn *c, bool connect_phase, int status);
static void send_error(struct px_conn *c, int status);


/* ---- small helpers ------------------------------------------------------- */

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static bool lower_eq(const char *buf, struct xlb_h1_str s, const char *text)
{
    return xlb_h1_str_eq(buf, s, text);
}

/* s of buf as a C string in out[size], cut to fit. */
static void copy_str(char *out, size_t size, const char *buf, struct xlb_h1_str s)
{
    size_t n = s.len < size - 1 ? s.len : size - 1;

    memcpy(out, buf + s.off, n);
    out[n] = '\0';
}

static size_t ip_text(const struct sockaddr_storage *ss, char *buf, size_t len, uint16_t *port)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &s->sin6_addr, buf, (socklen_t)len);
        *port = ntohs(s->sin6_port);
    } else {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &s->sin_addr, buf, (socklen_t)len);
        *port = ntohs(s->sin_port);
    }
    return strlen(buf);
}

/* Whether the client is in proxy.trusted_proxies. */
static bool client_trusted(const struct px_conn *c)
{
    const struct xlb_cfg_acl *t = &px_set.cfg->trusted;
    uint8_t a[16];
    uint8_t fam;
    int i;

    if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&c->peer;

        memcpy(a, &s->sin6_addr, 16);
        fam = XLB_FAMILY_V6;
        /* v4-mapped clients of a dual-stack listener compare as v4 */
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            memmove(a, a + 12, 4);
            fam = XLB_FAMILY_V4;
        }
    } else {
        memcpy(a, &((const struct sockaddr_in *)&c->peer)->sin_addr, 4);
        fam = XLB_FAMILY_V4;
    }
    for (i = 0; i < t->n_allow; i++) {
        const struct xlb_cfg_prefix *p = &t->allow[i];
        const uint8_t *pa = (const uint8_t *)&p->addr;
        int full = p->plen / 8, rem = p->plen % 8;

        if (p->family != fam)
            continue;
        if (memcmp(a, pa, (size_t)full))
            continue;
        if (rem && ((a[full] ^ pa[full]) & (uint8_t)(0xff << (8 - rem))))
            continue;
        return true;
    }
    return false;
}

/* Methods that do not invalidate cached responses (RFC 9111 4.4). */
static bool method_safe(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") ||
           !strcmp(m, "TRACE");
}

static bool method_idempotent(const char *buf, struct xlb_h1_str m)
{
    static const char *const ok[] = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE" };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (m.len == strlen(ok[i]) && !memcmp(buf + m.off, ok[i], m.len))
            return true;
    return false;
}

/* Fields that concern one connection only (RFC 9110 section 7.6.1), and the
 * ones named in Connection. */
static bool hop_by_hop(const char *buf, const struct xlb_h1_head *h, const struct xlb_h1_field *f)
{
    const char *hop = NULL, *hop2 = NULL;
    int k;

    switch (f->name.len) {      /* the fixed hop-by-hop fields */
    case 2: hop = "te"; break;
    case 7: hop = "upgrade"; break;
    case 10: hop = "connection"; hop2 = "keep-alive"; break;
    case 16: hop = "proxy-connection"; break;
    case 18: hop = "proxy-authenticate"; break;
    case 19: hop = "proxy-authorization"; break;
    }
    if ((hop && lower_eq(buf, f->name, hop)) || (hop2 && lower_eq(buf, f->name, hop2)))
        return true;
    if (h->connection_field < 0)
        return false;
    /* the fields the Connection fields name */
    for (k = xlb_h1_find(h, buf, "connection", (uint32_t)h->connection_field); k >= 0;
         k = xlb_h1_find(h, buf, "connection", (uint32_t)k + 1)) {
        char name[256];

        if (f->name.len >= sizeof(name))
            continue;
        memcpy(name, buf + f->name.off, f->name.len);
        name[f->name.len] = '\0';
        if (xlb_h1_list_has(buf + h->fields[k].value.off, h->fields[k].value.len, name))
            return true;
    }
    return false;
}

/* Append the field lines [from, to) of head h in buf as received. */
static void add_field_lines(struct xlb_buf *o, const char *buf, const struct xlb_h1_head *h,
                            uint32_t from, uint32_t to)
{
    uint32_t start, end;

    if (from >= to)
        return;
    start = h->fields[from].name.off;
    end = to < h->n_fields ? h->fields[to].name.off : h->head_len - 2;
    xlb_buf_add(o, buf + start, end - start);
}

/*
 * Append the fields of head h in buf that skip() does not drop, as
 * received: the parser allows neither obs-fold nor bare LF, so they are
 * contiguous "name:OWS value OWS CRLF" lines, and each run of kept fields
 * is one copy.
 */
static void add_fields(struct xlb_buf *o, const char *buf, const struct xlb_h1_head *h,
                       px_field_skip_fn skip, void *arg)
{
    uint32_t i, run = 0;

    for (i = 0; i < h->n_fields; i++)
        if (skip(buf, h, &h->fields[i], arg)) {
            add_field_lines(o, buf, h, run, i);
            run = i + 1;
        }
    add_field_lines(o, buf, h, run, h->n_fields);
}

/* Request fields not forwarded: hop-by-hop ones, and with arg (the
 * service's forwarded_headers) the forwarding fields the proxy replaces. */
static bool skip_req_field(const char *buf, const struct xlb_h1_head *h,
                           const struct xlb_h1_field *f, void *arg)
{
    return hop_by_hop(buf, h, f) ||
           (arg && (lower_eq(buf, f->name, "x-forwarded-for") ||
                    lower_eq(buf, f->name, "x-forwarded-proto") ||
                    lower_eq(buf, f->name, "forwarded")));
}

/* Response fields not forwarded: hop-by-hop ones, and with arg (the body
 * is de-chunked for an HTTP/1.0 client) Transfer-Encoding. */
static bool skip_resp_field(const char *buf, const struct xlb_h1_head *h,
                            const struct xlb_h1_field *f, void *arg)
{
    return hop_by_hop(buf, h, f) || (arg && lower_eq(buf, f->name, "transfer-encoding"));
}

static void timer_arm(struct px_conn *c, uint32_t ms);
static void timer_disarm(struct px_conn *c);

/* ---- handles and lifetime ---------------------------------------------- */

static void conn_free(struct px_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->w->conns == c)
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&c->w->conns_active, 1);
    xlb_buf_free(&c->out_c);
    xlb_buf_free(&c->out_u);
    px_tls_free(c->tls);
    free(c->hcopy);
    free(c->zbuf);
    free(c->cfields);
    free(c->cbuf);
    free(c->fields);
    free(c->rfields);
    free(c->exclude);
    free(c);
}

/* Reading from an upstream connection, tracked so that a start or stop
 * that changes nothing costs nothing. */
static void up_read_stop(struct px_up *u)
{
    if (u->reading) {
        u->reading = false;
        uv_read_stop((uv_stream_t *)&u->tcp);
    }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct px_conn *c = h->data;

    if (--c->handles == 0)
        conn_free(c);
}

static void real_put(struct px_conn *c)
{
    if (c->real) {
        atomic_fetch_sub(&c->real->active, 1);
        c->real = NULL;
    }
}

static void log_request(struct px_conn *c);

/* A free block of w, or a new one while there are fewer than
 * PX_BLOCKS_MAX; NULL when there is none. */
static struct px_block *block_get(struct px_worker *w)
{
    struct px_block *b = w->blocks;

    if (b) {
        w->blocks = b->next;
        return b;
    }
    if (w->n_blocks >= PX_BLOCKS_MAX || !(b = malloc(sizeof(*b))))
        return NULL;
    w->n_blocks++;
    return b;
}

static void block_put(struct px_worker *w, struct px_block **bp)
{
    if (*bp) {
        (*bp)->next = w->blocks;
        w->blocks = *bp;
        *bp = NULL;
    }
}

void px_blocks_free(struct px_worker *w)
{
    while (w->blocks) {
        struct px_block *b = w->blocks;

        w->blocks = b->next;
        free(b);
        w->n_blocks--;
    }
}

/* Drop what a request holds of the cache, the encoder and the worker's
 * blocks; complete: the response went out whole (a fill is stored then). */
static void request_done(struct px_conn *c, bool complete)
{
    block_put(c->w, &c->whole);
    block_put(c->w, &c->zout);
    if (c->fill) {
        px_cache_fill_end(c->fill, complete);
        c->fill = NULL;
    }
    if (c->hit) {
        px_cache_release(c->hit);
        c->hit = NULL;
    }
    if (c->comp) {
        px_enc_free(c->comp);
        c->comp = NULL;
    }
}

static void conn_close(struct px_conn *c)
{
    if (c->closing)
        return;
    /* A request cut short (client gone, truncated body, timeout) is logged
     * too, with the status sent (0: none). */
    if (c->phase != PH_HEAD || c->clen)
        log_request(c);
    request_done(c, false);
    c->closing = true;
    if (c->up)
        up_release(c, false);
    real_put(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

/* ---- writes ----------------------------------------------------------- */

/*
 * Write bufs to s: as much as the socket takes now, the rest queued.
 * Returns 1 when everything went out at once, 0 when a write is pending (cb
 * runs when it is done, *pending true until then), <0 on error.
 */
static int send_bufs(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned int n,
                     uv_write_cb cb, bool *pending)
{
    unsigned int i = 0;
    size_t done;
    int r;

    while (n && !bufs[n - 1].len)
        n--;
    if (!n)
        return 1;
    r = uv_try_write(s, bufs, n);
    if (r == UV_EAGAIN || r == UV_ENOSYS)
        r = 0;
    if (r < 0)
        return r;
    done = (size_t)r;
    while (i < n && done >= bufs[i].len) {
        done -= bufs[i].len;
        i++;
    }
    if (i == n)
        return 1;
    bufs[i].base += done;
    bufs[i].len -= done;
    r = uv_write(req, s, bufs + i, n - i, cb);
    if (r < 0)
        return r;
    *pending = true;
    return 0;
}

/* ---- TLS writing, either side ---------------------------------------- */

/*
 * Encrypt the plaintext waiting in w->tp[] as far as the output ring takes
 * it and write the ciphertext.  Returns 1 when every plaintext byte is
 * encrypted (ciphertext may still be in flight: it is ordered behind), 0
 * when some wait (for the ring to drain, or for the handshake), <0 on
 * error.
 */
static void on_tlsw_written(uv_write_t *req, int status);

static int tlsw_pump(struct px_tlsw *w)
{
    struct px_tls *t = *w->tls;

    for (;;) {
        const char *p;
        uv_buf_t ob;
        size_t len;
        int r;

        while (w->tpi < w->tpn) {
            uv_buf_t *b = &w->tp[w->tpi];
            ssize_t n;

            if (!b->len) {
                w->tpi++;
                continue;
            }
            n = px_tls_write(t, b->base, b->len);
            if (n < 0)
                return (int)n;
            if (n == 0)
                break;
            b->base += n;
            b->len -= (size_t)n;
        }
        if (w->writing)
            return w->tpi < w->tpn ? 0 : 1;
        len = px_tls_out(t, &p);
        if (!len)
            return w->tpi < w->tpn && px_tls_handshake_done(t) ? -EIO : w->tpi < w->tpn ? 0 : 1;
        ob = uv_buf_init((char *)p, (unsigned int)len);
        r = uv_try_write(w->s, &ob, 1);
        if (r == UV_EAGAIN)
            r = 0;
        if (r < 0)
            return r;
        if ((size_t)r < len) {
            /* px_tls_out_done() only when the write completed: p stays put. */
            px_tls_out_done(t, (size_t)r);
            len = px_tls_out(t, &p);
            ob = uv_buf_init((char *)p, (unsigned int)len);
            w->wlen = len;
            w->req.data = w;
            if ((r = uv_write(&w->req, w->s, &ob, 1, on_tlsw_written)) < 0)
                return r;
            w->writing = true;
            continue;
        }
        px_tls_out_done(t, len);
    }
}

static void on_tlsw_written(uv_write_t *req, int status)
{
    struct px_tlsw *w = req->data;
    bool waiting = w->tpi < w->tpn;
    int rc = status;

    w->writing = false;
    if (w->gone(w))
        return;
    if (rc >= 0) {
        px_tls_out_done(*w->tls, w->wlen);
        rc = tlsw_pump(w);
    }
    if (rc < 0 || (rc == 1 && waiting)) {
        if (waiting)
            w->tpn = w->tpi = 0;
        w->end(w, rc < 0 ? rc : 0, waiting);
    }
}

/* Send bufs[0..nb) (at most 2) over w: 1 when all is encrypted, 0 when
 * some waits (w->end(w, 0, true) comes when it is done), <0 on error. */
static int tlsw_send(struct px_tlsw *w, uv_buf_t *bufs, unsigned int nb)
{
    unsigned int i;
    int rc;

    for (i = 0; i < nb && i < 2; i++)
        w->tp[i] = bufs[i];
    w->tpn = nb < 2 ? nb : 2;
    w->tpi = 0;
    if (w->tpn == 2 && !w->writing && px_tls_handshake_done(*w->tls)) {
        /* A head and a small body: one record. */
        const char *p[2] = { w->tp[0].base, w->tp[1].base };
        size_t l[2] = { w->tp[0].len, w->tp[1].len };
        ssize_t n = px_tls_write_gather(*w->tls, p, l, 2);

        if (n < 0)
            return (int)n;
        if (n > 0)
            w->tp[0].len = w->tp[1].len = 0;
    }
    rc = tlsw_pump(w);
    if (rc == 1)
        w->tpn = w->tpi = 0;
    return rc;
}

static void tlsw_init(struct px_tlsw *w, uv_stream_t *s, struct px_tls **tls,
                      bool (*gone)(struct px_tlsw *), void (*end)(struct px_tlsw *, int, bool))
{
    w->s = s;
    w->tls = tls;
    w->gone = gone;
    w->end = end;
}

static bool up_tls_gone(struct px_tlsw *w);
static void up_tls_end(struct px_tlsw *w, int status, bool waiting);

/* ---- the client's transport: plain, or TLS ----------------------------- */

static bool cl_tls_gone(struct px_tlsw *w)
{
    return container_of(w, struct px_conn, tw)->closing;
}

static void cl_tls_end(struct px_tlsw *w, int status, bool waiting)
{
    struct px_conn *c = container_of(w, struct px_conn, tw);

    (void)waiting;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->cw.data = c;
    c->tcb(&c->cw, 0);
}

/* Send output of the TLS layer that no plaintext caused (handshake,
 * tickets, alerts).  <0 on error. */
static int tls_flush(struct px_conn *c)
{
    int rc = tlsw_pump(&c->tw);

    return rc < 0 ? rc : 0;
}

/* Write bufs to the client; returns like send_bufs (1 done, 0 pending with
 * cb to come, <0 error).  cb gets &c->cw. */
static int cl_send(struct px_conn *c, uv_buf_t *bufs, unsigned int nb, uv_write_cb cb)
{
    int rc;

    c->cw.data = c;
    if (!c->tls)
        return send_bufs((uv_stream_t *)&c->tcp, &c->cw, bufs, nb, cb, &c->cwrite_pending);
    c->tcb = cb;
    rc = tlsw_send(&c->tw, bufs, nb);
    if (rc == 0)
        c->cwrite_pending = true;
    return rc;
}

/* ---- answers of our own -------------------------------------------------- */

/*
 * After an answer of our own the client may still be sending (the rest of
 * a refused request): closing with unread bytes would reset the connection
 * and could destroy the answer before the client reads it.  So the write
 * side is shut down and the input read and dropped until the client closes,
 * 1 MiB was dropped, or 2 s passed.
 */
static void on_linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct px_conn *c = h->data;

    (void)hint;
    *b = uv_buf_init(c->cbuf, (unsigned int)c->ccap);
}

static void on_linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct px_conn *c = s->data;

    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->clen += (size_t)n;
    if (c->clen > (1u << 20))
        conn_close(c);
}

static void on_error_shutdown(uv_shutdown_t *req, int status)
{
    struct px_conn *c = req->data;

    if (status < 0 || c->closing || c->client_eof) {
        conn_close(c);
        return;
    }
    c->clen = 0;
    c->client_reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_linger_alloc, on_linger_read);
    timer_arm(c, 2000);
}

static void on_error_written(uv_write_t *req, int status)
{
    struct px_conn *c = req->data;

    c->cwrite_pending = false;
    if (c->tls && !c->closing && status >= 0 && px_tls_handshake_done(c->tls)) {
        px_tls_shutdown(c->tls);
        tls_flush(c);
    }
    if (status < 0 || c->closing || c->client_eof ||
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_error_shutdown))
        conn_close(c);
    else
        c->sreq.data = c;
}

static void log_request(struct px_conn *c);

static void send_error(struct px_conn *c, int status)
{
    const char *reason = xlb_http_reason(status);
    uv_buf_t b;
    int rc;

    if (c->closing)
        return;
    if (c->up)
        up_release(c, false);
    real_put(c);
    c->status = status;
    c->phase = PH_ERROR;
    if (c->client_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->client_reading = false;
    }
    if (status >= 500)
        atomic_fetch_add(&c->svc->stats->errors_5xx, 1);
    else
        atomic_fetch_add(&c->svc->stats->errors_4xx, 1);
    log_request(c);
    if (c->resp_started || c->cwrite_pending) {
        /* Part of a response went out already: all we can do is close. */
        conn_close(c);
        return;
    }
    xlb_buf_reset(&c->out_c);
    xlb_buf_printf(&c->out_c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, reason,
                   strlen(reason) + 5);
    if (!c->is_head)
        xlb_buf_printf(&c->out_c, "%d %s\n", status, reason);
    if (!c->out_c.data) {
        conn_close(c);
        return;
    }
    b = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
    c->cw.data = c;
    rc = cl_send(c, &b, 1, on_error_written);
    if (rc < 0)
        conn_close(c);
    else if (rc == 1)
        on_error_written(&c->cw, 0);
    else
        timer_arm(c, 5000);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timeout(struct px_conn *c)
{
    switch (c->phase) {
    case PH_HEAD:
        if (c->clen == 0 && !c->cwrite_pending) {
            conn_close(c);      /* idle keep-alive connection */
        } else {
            atomic_fetch_add(&c->svc->stats->timeouts, 1);
            send_error(c, 408);
        }
        return;
    case PH_CONNECT:
        atomic_fetch_add(&c->svc->stats->timeouts, 1);
        fail_upstream(c, true, 504);
        return;
    case PH_EXCHANGE:
        atomic_fetch_add(&c->svc->stats->timeouts, 1);
        if (c->client_reading && !c->req_body_done && !c->resp_started) {
            /* The client stopped sending its body. */
            c->close_after = true;
            send_error(c, 408);
        } else if (!c->resp_started && !c->cwrite_pending && !c->resp_head_done) {
            px_log(PX_INFO, "%s: no response from real %s within %u ms", c->svc->name,
                   c->up && c->up->real ? c->up->real->name : "?", px_set.cfg->response_ms);
            send_error(c, 504);
        } else {
            conn_close(c);
        }
        return;
    case PH_ERROR:
        conn_close(c);
        return;
    }
}

/*
 * The connection's timer is lazy: timer_arm and timer_disarm only move the
 * deadline.  The uv timer is set again only when the new deadline comes
 * before the time it is set for; when it fires early it sets itself for
 * the rest.  A request re-arms the timer several times, and each uv restart
 * is a removal and an insertion in the loop's timer heap.
 */
static void on_timer(uv_timer_t *t)
{
    struct px_conn *c = t->data;
    uint64_t now = uv_now(t->loop);

    if (c->deadline == UINT64_MAX)
        return;
    if (now < c->deadline) {
        c->timer_due = c->deadline;
        uv_timer_start(t, on_timer, c->deadline - now, 0);
        return;
    }
    c->deadline = UINT64_MAX;
    on_timeout(c);
}

static void timer_arm(struct px_conn *c, uint32_t ms)
{
    uint64_t due = uv_now(&c->w->loop) + ms;

    c->deadline = due;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= due)
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void timer_disarm(struct px_conn *c)
{
    c->deadline = UINT64_MAX;
}

/* ---- access log and counters --------------------------------------------- */

static void log_request(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    char line[2048], target[512];

    if (c->logged)
        return;
    c->logged = true;
    struct timespec ts;
    struct tm tm;
    uint64_t now = px_now_ms(), total = now - c->t_start;
    size_t i, j = 0;
    int n, b;

    (void)h;
    atomic_fetch_add(&c->svc->stats->requests, 1);
    for (b = 0; b < PX_HIST_N && (double)total / 1000.0 > px_hist_bounds[b]; b++)
        ;
    atomic_fetch_add(&c->svc->stats->hist[b], 1);
    atomic_fetch_add(&c->svc->stats->hist_sum_us, total * 1000);
    if (c->real || c->choice.real) {
        struct px_real *r = c->choice.real;
        int cls = c->status / 100;

        if (r) {
            atomic_fetch_add(&r->requests, 1);
            atomic_fetch_add(&r->status_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
            atomic_fetch_add(&r->bytes_in, c->bytes_in);
            atomic_fetch_add(&r->bytes_out, c->bytes_out);
        }
    }
    if (px_set.access_fd < 0)
        return;
    if (c->target[0]) {
        for (i = 0; c->target[i] && j < sizeof(target) - 4; i++) {
            char ch = c->target[i];

            if (ch == '"' || ch == '\\') {
                target[j++] = '\\';
            }
            target[j++] = ch;
        }
    } else {
        target[j++] = '-';
    }
    target[j] = '\0';
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ client=%s%s%s:%u vs=%s pool=%s real=%s "
                 "\"%s %s HTTP/1.%d\" status=%d bytes_in=%llu bytes_out=%llu "
                 "connect_ms=%lld header_ms=%lld total_ms=%llu retries=%d\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, c->peer.ss_family == AF_INET6 ? "[" : "", c->peer_ip,
                 c->peer.ss_family == AF_INET6 ? "]" : "", c->peer_port, c->svc->name,
                 c->pool && c->pool->name[0] ? c->pool->name : "-",
                 c->hit ? "(cache)" : c->choice.real ? c->choice.real->name : "-",
                 c->method[0] ? c->method : "-", target, h->version_minor, c->status, (unsigned long long)c->bytes_in,
                 (unsigned long long)c->bytes_out,
                 c->t_connect ? (long long)(c->t_connect - c->t_start) : -1LL,
                 c->t_header ? (long long)(c->t_header - c->t_start) : -1LL,
                 (unsigned long long)total, c->retries);
    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1, line[n - 1] = '\n';
    px_access_write(line, (size_t)n);
}

/* ---- the request ----------------------------------------------------- */

static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct px_conn *c = h->data;
    size_t room = 0;
    char *p;

    (void)hint;
    if (c->tls) {
        p = px_tls_in_buf(c->tls, &room);
        *b = uv_buf_init(p, (unsigned int)room);
        return;
    }
    *b = uv_buf_init(c->cbuf + c->clen, (unsigned int)(c->ccap - c->clen));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void tls_read_pump(struct px_conn *c);

static void client_read_start(struct px_conn *c)
{
    if (!c->client_reading && !c->closing && !c->client_eof) {
        c->client_reading = true;
        uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
        /* Plaintext the TLS layer holds already is not announced by the socket. */
        if (c->tls && px_tls_handshake_done(c->tls))
            tls_read_pump(c);
    }
}

static void client_read_stop(struct px_conn *c)
{
    if (c->client_reading) {
        c->client_reading = false;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* A new request on the connection: parse what cbuf holds, else read. */
static void next_request(struct px_conn *c)
{
    size_t left = c->clen - c->next_off;

    if (c->next_off)
        memmove(c->cbuf, c->cbuf + c->next_off, left);
    c->clen = left;
    c->next_off = 0;
    xlb_h1_init(&c->req, XLB_H1_REQUEST, &px_set.limits, c->fields, px_set.limits.max_headers);
    memset(&c->choice, 0, sizeof(c->choice));
    c->method[0] = c->target[0] = '\0';
    c->is_head = c->logged = false;
    c->rbuf = c->cbuf;
    c->enc = PX_ENC_IDENTITY;
    c->comp_end = c->head_queued = c->await_whole = false;
    c->zin = NULL;
    c->zin_len = 0;
    c->cache_rc = -1;
    c->pool = NULL;
    c->phase = PH_HEAD;
    c->req_body_done = c->resp_head_done = c->resp_body_done = c->resp_started = false;
    c->dechunk = c->close_after = c->sent_any = false;
    c->attempts = c->retries = 0;
    c->bytes_in = c->bytes_out = 0;
    c->status = 0;
    c->t_start = px_now_ms();
    c->t_connect = c->t_header = 0;
    if (c->clen) {
        int rc = xlb_h1_head(&c->req, c->cbuf, c->clen);

        if (rc == XLB_H1_OK) {
            start_request(c);
            return;
        }
        if (rc == XLB_H1_ERR) {
            atomic_fetch_add(&c->svc->stats->bad_requests, 1);
            send_error(c, c->req.status);
            return;
        }
    }
    if (c->client_eof) {
        /* the rest of a pipelined request will not come */
        if (c->clen) {
            atomic_fetch_add(&c->svc->stats->bad_requests, 1);
            c->status = 400;
            log_request(c);
        }
        conn_close(c);
        return;
    }
    timer_arm(c, c->clen ? px_set.cfg->client_header_ms : px_set.cfg->keepalive_ms);
    client_read_start(c);
}

/* Append the forwarding fields for this client. */
static void add_forwarded(struct px_conn *c, struct xlb_buf *o, bool trusted)
{
    const struct xlb_h1_head *h = &c->req.head;
    const char *buf = c->cbuf;
    bool v6 = c->peer.ss_family == AF_INET6;
    const char *proto = c->l->tls ? "https" : "http";
    int k, first;

    xlb_buf_add(o, "X-Forwarded-For: ", 17);
    first = 1;
    for (k = trusted ? xlb_h1_find(h, buf, "x-forwarded-for", 0) : -1; k >= 0;
         k = xlb_h1_find(h, buf, "x-forwarded-for", (uint32_t)k + 1)) {
        if (!h->fields[k].value.len)
            continue;
        xlb_buf_add(o, buf + h->fields[k].value.off, h->fields[k].value.len);
        xlb_buf_add(o, ", ", 2);
        first = 0;
    }
    (void)first;
    xlb_buf_printf(o, "%s\r\n", c->peer_ip);
    k = trusted ? xlb_h1_find(h, buf, "x-forwarded-proto", 0) : -1;
    if (k >= 0)
        xlb_buf_printf(o, "X-Forwarded-Proto: %.*s\r\n", (int)h->fields[k].value.len,
                       buf + h->fields[k].value.off);
    else
        xlb_buf_printf(o, "X-Forwarded-Proto: %s\r\n", proto);
    xlb_buf_add(o, "Forwarded: ", 11);
    for (k = trusted ? xlb_h1_find(h, buf, "forwarded", 0) : -1; k >= 0;
         k = xlb_h1_find(h, buf, "forwarded", (uint32_t)k + 1)) {
        if (!h->fields[k].value.len)
            continue;
        xlb_buf_add(o, buf + h->fields[k].value.off, h->fields[k].value.len);
        xlb_buf_add(o, ", ", 2);
    }
    xlb_buf_printf(o, v6 ? "for=\"[%s]\";proto=%s\r\n" : "for=%s;proto=%s\r\n", c->peer_ip,
                   proto);
}

/* The request head as the real gets it, in out_u. */
static int build_request_head(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    const char *buf = c->cbuf;
    struct xlb_buf *o = &c->out_u;
    bool fwd = c->svc->cfg->forwarded_headers, trusted = fwd && client_trusted(c);

    xlb_buf_reset(o);
    xlb_buf_add(o, buf + h->method.off, h->method.len);
    xlb_buf_add(o, " ", 1);
    xlb_buf_add(o, buf + h->target.off, h->target.len);
    xlb_buf_add(o, " HTTP/1.1\r\n", 11);
    add_fields(o, buf, h, skip_req_field, fwd ? c : NULL);
    if (h->host_field < 0) {
        /* An HTTP/1.0 request without Host: name the address it came to. */
        char ip[INET6_ADDRSTRLEN];

        xlb_addr_str(&c->svc->cfg->addr, c->svc->cfg->family, ip, sizeof(ip));
        xlb_buf_printf(o, c->svc->cfg->family == XLB_FAMILY_V6 ? "Host: [%s]:%u\r\n" :
                       "Host: %s:%u\r\n", ip, c->l->port);
    }
    if (fwd)
        add_forwarded(c, o, trusted);
    return xlb_buf_add(o, "\r\n", 2);
}

static void on_client_written(uv_write_t *req, int status);

/*
 * The plain-HTTP listener of a TLS service (redirect_http): 301 for GET and
 * HEAD, 308 for the rest (which keeps the method), to the same host, path
 * and query over https.
 */
static void send_redirect(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    const char *tgt = c->cbuf + h->target.off;
    size_t tlen = h->target.len;
    char host[300];
    uv_buf_t b;
    int status = c->is_head || !strcmp(c->method, "GET") ? 301 : 308, rc;

    if (h->host_field >= 0 && h->fields[h->host_field].value.len &&
        h->fields[h->host_field].value.len < sizeof(host)) {
        const struct xlb_h1_str *v = &h->fields[h->host_field].value;
        size_t n = v->len;

        memcpy(host, c->cbuf + v->off, n);
        host[n] = '\0';
        if (n > 3 && !strcmp(host + n - 3, ":80"))
            host[n - 3] = '\0';
    } else {
        char ip[INET6_ADDRSTRLEN];

        xlb_addr_str(&c->svc->cfg->addr, c->svc->cfg->family, ip, sizeof(ip));
        snprintf(host, sizeof(host), c->svc->cfg->family == XLB_FAMILY_V6 ? "[%s]" : "%s", ip);
    }
    if (tlen && tgt[0] != '/') {
        /* absolute form: keep only the path and query */
        const char *p = memchr(tgt, '/', tlen);

        p = p && p + 1 < tgt + tlen && p[1] == '/' ? memchr(p + 2, '/', (size_t)(tgt + tlen - p - 2)) : p;
        tlen = p ? (size_t)(tgt + tlen - p) : 0;
        tgt = p ? p : "/";
    }
    if (!tlen) {
        tgt = "/";
        tlen = 1;
    }
    c->status = status;
    c->close_after = !h->keep_alive || c->has_body;
    c->resp_started = c->resp_head_done = c->resp_body_done = true;
    c->req_body_done = !c->has_body;
    c->phase = PH_EXCHANGE;
    xlb_buf_reset(&c->out_c);
    /* The service's first port, unless it is https's own. */
    if (c->svc->cfg->ports[0] != 443) {
        char *colon = strrchr(host, ':');

        if (colon && !strchr(colon, ']'))
            *colon = '\0';
        snprintf(host + strlen(host), sizeof(host) - strlen(host), ":%u", c->svc->cfg->ports[0]);
    }
    xlb_buf_printf(&c->out_c, "HTTP/1.1 %d %s\r\nLocation: https://%s%.*s\r\n"
                   "Content-Length: 0\r\n%s\r\n", status, xlb_http_reason(status), host,
                   (int)tlen, tgt, c->close_after ? "Connection: close\r\n" : "");
    if (!c->out_c.data) {
        conn_close(c);
        return;
    }
    c->bytes_out = c->out_c.len;
    b = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
    rc = cl_send(c, &b, 1, on_client_written);
    if (rc < 0)
        conn_close(c);
    else if (rc == 1)
        resp_continue(c);
}

/* Answer from the cache: the stored head (or a 304) and body. */
static void serve_hit(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    bool nm = px_cache_not_modified(c->hit, c->rbuf, h);
    uv_buf_t bufs[2];
    unsigned int nb = 1;
    const char *body = NULL;
    size_t blen = 0;
    int rc;

    xlb_buf_reset(&c->out_c);
    if (px_cache_write_head(c->hit, px_now_ms(), &c->out_c, nm)) {
        send_error(c, 503);
        return;
    }
    c->out_c.len -= 2;
    c->close_after = !h->keep_alive;
    if (c->close_after)
        xlb_buf_add(&c->out_c, "Connection: close\r\n", 19);
    else if (h->version_minor == 0)
        xlb_buf_add(&c->out_c, "Connection: keep-alive\r\n", 24);
    if (xlb_buf_add(&c->out_c, "\r\n", 2)) {
        send_error(c, 503);
        return;
    }
    c->status = nm ? 304 : px_cache_status(c->hit);
    c->t_header = px_now_ms();
    c->resp_started = c->resp_head_done = c->resp_body_done = true;
    bufs[0] = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
    if (!nm && !c->is_head) {
        px_cache_body(c->hit, &body, &blen);
        bufs[nb++] = uv_buf_init((char *)body, (unsigned int)blen);
    }
    c->bytes_out = c->out_c.len + blen;
    c->phase = PH_EXCHANGE;
    c->cw.data = c;
    rc = cl_send(c, bufs, nb, on_client_written);
    if (rc < 0)
        conn_close(c);
    else if (rc == 1)
        resp_continue(c);
    else
        timer_arm(c, px_set.cfg->client_body_ms);
}

static void start_request(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    struct px_reqview rv;

    timer_disarm(c);
    c->next_off = h->head_len;
    c->idempotent = method_idempotent(c->cbuf, h->method);
    c->has_body = h->framing == XLB_H1_BODY_CHUNKED ||
                  (h->framing == XLB_H1_BODY_LENGTH && h->content_length > 0);
    /* A body is read under the exchange's control.  Without one, reading
     * goes on: pipelined requests collect behind this one in cbuf (reading
     * stops when it is full), and the socket's epoll registration is not
     * changed twice per request. */
    if (c->has_body || c->clen >= c->ccap)
        client_read_stop(c);
    c->req_body_done = !c->has_body;
    c->requests++;
    c->is_head = h->method.len == 4 && !memcmp(c->cbuf + h->method.off, "HEAD", 4);
    copy_str(c->method, sizeof(c->method), c->cbuf, h->method);
    copy_str(c->target, sizeof(c->target), c->cbuf, h->target);
    if (c->l->redirect) {
        send_redirect(c);
        return;
    }
    if (h->upgrade) {
        /* Protocol switches (WebSocket) are not proxied. */
        atomic_fetch_add(&c->svc->stats->unsupported, 1);
        send_error(c, 501);
        return;
    }
    if (c->has_body && (c->svc->cache || c->svc->cfg->compression.enabled)) {
        /* cbuf will take the body: keep the head for the response's decisions. */
        if (!c->hcopy)
            c->hcopy = malloc(c->ccap);
        if (!c->hcopy) {
            send_error(c, 503);
            return;
        }
        memcpy(c->hcopy, c->cbuf, h->head_len);
        c->rbuf = c->hcopy;
    }
    if (c->svc->cfg->compression.enabled) {
        int k = xlb_h1_find(h, c->cbuf, "accept-encoding", 0);

        c->enc = k < 0 ? px_enc_choose(NULL, 0, false) :
                 px_enc_choose(c->cbuf + h->fields[k].value.off, h->fields[k].value.len, true);
    }
    if (c->svc->cache) {
        c->cache_rc = px_cache_lookup(c->svc->cache, c->rbuf, h,
                                      c->enc != PX_ENC_IDENTITY ? px_enc_name(c->enc) : "",
                                      px_now_ms(), &c->hit);
        if (c->cache_rc == PX_CACHE_HIT) {
            serve_hit(c);
            return;
        }
    }
    rv.buf = c->cbuf;
    rv.head = h;
    rv.client = &c->peer;
    rv.now_ms = px_now_ms();
    c->pool = px_lb_route(c->svc, &rv);
    if (!c->pool) {
        atomic_fetch_add(&c->svc->stats->no_route, 1);
        send_error(c, 404);
        return;
    }
    memset(c->exclude, 0, ((c->w->max_pool_reals + 63) / 64) * sizeof(uint64_t));
    if (build_request_head(c) < 0) {
        send_error(c, 500);
        return;
    }
    up_start(c);
}

/* Pick a real (again, after a failure) and get a connection to it. */
static void up_connected(struct px_conn *c);
static void on_up_connect(uv_connect_t *req, int status);
static void on_up_handle_closed(uv_handle_t *h);

static struct px_up *idle_pop(struct px_worker *w, struct px_real *r)
{
    struct px_idle_list *l = &w->idle[r->gindex];
    struct px_up *u = l->head;

    if (!u)
        return NULL;
    l->head = u->next_idle;
    l->n--;
    u->next_idle = NULL;
    u->idle = false;
    /* Reading goes on (on_up_read serves both states) and the idle timer
     * is left to find the connection busy when it fires. */
    return u;
}

static void up_start(struct px_conn *c)
{
    struct px_reqview rv;
    struct px_up *u;
    int rc;

    for (;;) {
        rv.buf = c->cbuf;
        rv.head = &c->req.head;
        rv.client = &c->peer;
        rv.now_ms = px_now_ms();
        px_lb_pick(c->pool, &rv, c->exclude, &c->choice);
        if (!c->choice.real) {
            atomic_fetch_add(&c->svc->stats->no_real, 1);
            send_error(c, c->attempts ? 502 : 503);
            return;
        }
        /* max_conns: requests in flight to the real, all workers. */
        if (c->choice.real->cfg->max_conns &&
            atomic_fetch_add(&c->choice.real->active, 1) >= c->choice.real->cfg->max_conns) {
            atomic_fetch_sub(&c->choice.real->active, 1);
            c->exclude[c->choice.real->index / 64] |= 1ull << (c->choice.real->index % 64);
            continue;
        }
        if (!c->choice.real->cfg->max_conns)
            atomic_fetch_add(&c->choice.real->active, 1);
        break;
    }
    c->real = c->choice.real;
    c->attempts++;
    u = idle_pop(c->w, c->real);
    if (u) {
        u->conn = c;
        u->reused = true;
        c->up = u;
        c->t_connect = px_now_ms();
        up_connected(c);
        return;
    }
    u = calloc(1, sizeof(*u));
    if (!u) {
        send_error(c, 503);
        return;
    }
    u->w = c->w;
    u->real = c->real;
    u->conn = c;
    uv_tcp_init(&c->w->loop, &u->tcp);
    uv_timer_init(&c->w->loop, &u->idle_timer);
    u->tcp.data = u->idle_timer.data = u;
    u->handles = 2;
    tlsw_init(&u->tw, (uv_stream_t *)&u->tcp, &u->tls, up_tls_gone, up_tls_end);
    uv_tcp_nodelay(&u->tcp, 1);
    c->up = u;
    c->phase = PH_CONNECT;
    {
        struct sockaddr_storage sa = c->real->sa;

        if (!c->real->port) {
            if (sa.ss_family == AF_INET)
                ((struct sockaddr_in *)&sa)->sin_port = htons(c->l->port);
            else
                ((struct sockaddr_in6 *)&sa)->sin6_port = htons(c->l->port);
        }
        u->creq.data = u;
        rc = uv_tcp_connect(&u->creq, &u->tcp, (struct sockaddr *)&sa, on_up_connect);
    }
    if (rc < 0) {
        px_log(PX_INFO, "%s: connect to real %s: %s", c->svc->name, c->real->name,
               uv_strerror(rc));
        fail_upstream(c, true, 502);
        return;
    }
    timer_arm(c, px_set.cfg->connect_ms);
}

/* Mark a real's connection failure (passive check). */
static void passive_fail(struct px_conn *c, struct px_real *r, const char *what)
{
    uint32_t n = atomic_fetch_add(&r->conn_errors, 1) + 1;

    atomic_fetch_add(&r->upstream_errors, 1);
    atomic_fetch_add(&c->svc->stats->upstream_errors, 1);
    if (n >= px_set.cfg->fail_after) {
        uint64_t until = px_now_ms() + px_set.cfg->fail_ms;

        if (atomic_exchange(&r->failed_until_ms, until) < px_now_ms())
            px_log(PX_WARN, "real %s of %s%s%s failed (%s, %u in a row): no new requests for "
                   "%u ms", r->name, r->pool->svc->name, r->pool->name[0] ? "/" : "",
                   r->pool->name, what, n, px_set.cfg->fail_ms);
    }
}

/*
 * The upstream connection failed before any response byte.  Retry on
 * another real when that is safe, else answer status.
 */
static void fail_upstream(struct px_conn *c, bool connect_phase, int status)
{
    struct px_real *r = c->real;
    bool retry;

    if (r) {
        passive_fail(c, r, connect_phase ? "connect" : "connection closed before a response");
        c->exclude[r->index / 64] |= 1ull << (r->index % 64);
    }
    if (c->up)
        up_release(c, false);
    real_put(c);
    retry = !c->resp_started && c->attempts <= (int)px_set.cfg->retries &&
            (connect_phase || !c->sent_any || (c->idempotent && !c->has_body));
    if (!retry) {
        send_error(c, status);
        return;
    }
    c->retries++;
    atomic_fetch_add(&c->svc->stats->retries, 1);
    c->sent_any = false;
    up_start(c);
}

static void up_tls_handshake(struct px_conn *c);
static void up_read_start(struct px_conn *c);

static void on_up_connect(uv_connect_t *req, int status)
{
    struct px_up *u = req->data;
    struct px_conn *c = u->conn;

    if (!c) {
        /* The client went away while connecting. */
        return;
    }
    if (status < 0) {
        px_log(PX_INFO, "%s: connect to real %s: %s", c->svc->name, u->real->name,
               uv_strerror(status));
        fail_upstream(c, true, 502);
        return;
    }
    u->connected = true;
    c->t_connect = px_now_ms();
    if (u->real->cfg->tls) {
        up_tls_handshake(c);
        return;
    }
    atomic_store(&u->real->conn_errors, 0);
    up_connected(c);
}

/*
 * Re-encryption: a TLS connection to the real before the request.  The
 * name sent as SNI and verified (with tls.ca_file) is the request's host,
 * else the real's address.
 */
static void up_tls_handshake(struct px_conn *c)
{
    struct px_up *u = c->up;
    const struct xlb_h1_head *h = &c->req.head;
    char name[256] = "";
    int rc;

    if (h->host_field >= 0 && h->fields[h->host_field].value.len < sizeof(name)) {
        const struct xlb_h1_str *v = &h->fields[h->host_field].value;
        char *colon;

        memcpy(name, c->rbuf + v->off, v->len);
        name[v->len] = '\0';
        colon = strrchr(name, ':');
        if (name[0] == '[') {
            char *end = strchr(name, ']');

            if (end) {
                *end = '\0';
                memmove(name, name + 1, strlen(name));
            }
        } else if (colon) {
            *colon = '\0';
        }
    }
    if (!name[0]) {
        uint16_t port;

        ip_text(&u->real->sa, name, sizeof(name), &port);
    }
    if (px_tls_connect(c->svc->tls_cli, name, &u->tls) ||
        (rc = px_tls_handshake(u->tls)) < 0 || tlsw_pump(&u->tw) < 0) {
        px_log(PX_INFO, "%s: TLS to real %s: cannot start the handshake", c->svc->name,
               u->real->name);
        fail_upstream(c, true, 502);
        return;
    }
    up_read_start(c);
    timer_arm(c, px_set.cfg->connect_ms);
}

static void on_up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct px_up *u = h->data;
    size_t room = 0;
    char *p;

    (void)hint;
    if (u->tls) {
        p = px_tls_in_buf(u->tls, &room);
        *b = uv_buf_init(p, (unsigned int)room);
        return;
    }
    *b = uv_buf_init(u->buf + u->len, (unsigned int)(sizeof(u->buf) - u->len));
}

static void on_up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void idle_remove(struct px_up *u);
static void up_close(struct px_up *u);
static void on_up_written(uv_write_t *req, int status);

/* ---- the upstream transport: plain, or TLS (re-encryption) --------------- */

static bool up_tls_gone(struct px_tlsw *w)
{
    struct px_up *u = container_of(w, struct px_up, tw);

    return u->closing || uv_is_closing((uv_handle_t *)&u->tcp);
}

static void up_tls_end(struct px_tlsw *w, int status, bool waiting)
{
    struct px_up *u = container_of(w, struct px_up, tw);

    if (status < 0)
        u->closing = true;
    if (waiting)
        on_up_written(&u->wreq, status);
}

/* Write bufs to the real; returns like send_bufs (on_up_written comes when
 * a pending write is done). */
static int up_send(struct px_up *u, uv_buf_t *bufs, unsigned int nb)
{
    int rc;

    u->wreq.data = u;
    if (!u->tls)
        return send_bufs((uv_stream_t *)&u->tcp, &u->wreq, bufs, nb, on_up_written,
                         &u->wpending);
    rc = tlsw_send(&u->tw, bufs, nb);
    if (rc == 0)
        u->wpending = true;
    return rc;
}

/* Forward request body bytes cbuf[off..off+len) as far as they belong to
 * the body; the rest stays as the next request.  Returns like send_bufs. */
static int forward_req_body(struct px_conn *c, size_t off, size_t len, uv_buf_t *bufs,
                            unsigned int *nb)
{
    size_t used = 0;

    while (used < len && !c->req_body_done) {
        size_t consumed = 0, dlen = 0;
        const char *data = NULL;
        int rc = xlb_h1_body(&c->req, c->cbuf + off + used, len - used, &consumed, &data,
                             &dlen);

        if (rc == XLB_H1_ERR)
            return -EPROTO;
        used += consumed;
        if (rc == XLB_H1_OK)
            c->req_body_done = true;
        if (!consumed && rc != XLB_H1_OK)
            break;
    }
    if (used) {
        bufs[(*nb)++] = uv_buf_init(c->cbuf + off, (unsigned int)used);
        c->bytes_in += used;
    }
    c->next_off = off + used;
    return 0;
}

static void up_tls_read_pump(struct px_up *u);

static void up_read_on(struct px_up *u)
{
    if (!u->reading) {
        u->reading = true;
        uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read);
    }
}

static void up_read_start(struct px_conn *c)
{
    if (c->up->reading)
        return;
    up_read_on(c->up);
    /* Plaintext the TLS layer holds already is not announced by the socket. */
    if (c->up->tls && px_tls_handshake_done(c->up->tls))
        up_tls_read_pump(c->up);
}

static void up_connected(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->req.head;
    uv_buf_t bufs[2];
    unsigned int nb = 0;
    int rc;

    c->phase = PH_EXCHANGE;
    xlb_h1_init(&c->resp, XLB_H1_RESPONSE, NULL, c->rfields, 200);
    xlb_h1_set_head_request(&c->resp, c->is_head);
    c->up->len = 0;
    bufs[nb++] = uv_buf_init(c->out_u.data, (unsigned int)c->out_u.len);
    if (c->has_body && forward_req_body(c, h->head_len, c->clen - h->head_len, bufs, &nb)) {
        c->close_after = true;
        send_error(c, c->req.status >= 400 ? c->req.status : 400);
        return;
    }
    if (!c->has_body)
        c->next_off = h->head_len;
    c->sent_any = true;
    rc = up_send(c->up, bufs, nb);
    if (rc < 0) {
        fail_upstream(c, false, 502);
        return;
    }
    up_read_start(c);
    timer_arm(c, px_set.cfg->response_ms);
    if (rc == 1)
        req_continue(c);
}

/* After request bytes went out: read more of the body from the client. */
static void req_continue(struct px_conn *c)
{
    if (c->closing || c->req_body_done)
        return;
    if (c->client_eof) {
        /* The client half-closed before the end of its body: it will
         * not come, and the real must see the request broken. */
        conn_close(c);
        return;
    }
    /* Everything read was forwarded: read the next part into cbuf from 0. */
    c->clen = 0;
    c->next_off = 0;
    client_read_start(c);
    timer_arm(c, px_set.cfg->client_body_ms);
}

static void on_up_written(uv_write_t *req, int status)
{
    struct px_up *u = req->data;
    struct px_conn *c = u->conn;

    u->wpending = false;
    if (!c || c->closing)
        return;
    if (status < 0) {
        if (!c->resp_started)
            fail_upstream(c, false, 502);
        else
            conn_close(c);
        return;
    }
    req_continue(c);
    if (c->req_body_done && c->resp_body_done && !c->cwrite_pending)
        resp_continue(c);
}

/* Body bytes from the client (phase exchange). */
static void client_body_read(struct px_conn *c, size_t n)
{
    uv_buf_t bufs[1];
    unsigned int nb = 0;
    int rc;

    c->clen += n;
    client_read_stop(c);
    if (forward_req_body(c, 0, c->clen, bufs, &nb)) {
        c->close_after = true;
        send_error(c, c->req.status >= 400 ? c->req.status : 400);
        return;
    }
    rc = up_send(c->up, bufs, nb);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    timer_arm(c, px_set.cfg->response_ms);
    if (rc == 1) {
        req_continue(c);
        if (c->req_body_done && c->resp_body_done && !c->cwrite_pending)
            resp_continue(c);
    }
}

static void client_data(struct px_conn *c, ssize_t n);

static void tls_failed(struct px_conn *c, int rc)
{
    if (rc == PX_TLS_PLAINTEXT) {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 42\r\nConnection: close\r\n\r\n"
                                  "This port speaks HTTPS: use an https URL.\n";
        uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);

        px_log(PX_INFO, "%s: client %s sent plain HTTP to a TLS port", c->svc->name,
               c->peer_ip);
        /* Answer in plain text, then close as after any answer of ours. */
        px_tls_free(c->tls);
        c->tls = NULL;
        client_read_stop(c);
        c->clen = 0;
        c->phase = PH_ERROR;
        c->status = 400;
        c->logged = true;
        c->cw.data = c;
        rc = send_bufs((uv_stream_t *)&c->tcp, &c->cw, &b, 1, on_error_written,
                       &c->cwrite_pending);
        if (rc == 1)
            on_error_written(&c->cw, 0);
        else if (rc == 0)
            timer_arm(c, 5000);
        else
            conn_close(c);
        return;
    } else if (rc != PX_TLS_CLOSED) {
        px_log(PX_INFO, "%s: client %s: TLS: %s", c->svc->name, c->peer_ip,
               px_tls_error(c->tls));
        tls_flush(c);   /* the alert, if it fits */
    }
    if (c->phase == PH_HEAD)
        c->clen = 0;    /* no request yet: nothing to log */
    conn_close(c);
}

/* Decrypt what the TLS layer holds into cbuf while the state machine reads. */
static void tls_read_pump(struct px_conn *c)
{
    int rc;

    if (!px_tls_handshake_done(c->tls)) {
        rc = px_tls_handshake(c->tls);
        if (tls_flush(c) < 0 && rc >= 0)
            rc = PX_TLS_ERROR;
        if (rc < 0) {
            tls_failed(c, rc);
            return;
        }
        if (rc == 0)
            return;
    }
    while (c->client_reading && !c->closing && c->clen < c->ccap) {
        ssize_t n = px_tls_read(c->tls, c->cbuf + c->clen, c->ccap - c->clen);

        if (n == 0)
            break;
        if (n == PX_TLS_CLOSED) {
            client_data(c, UV_EOF);
            return;
        }
        if (n < 0) {
            tls_failed(c, (int)n);
            return;
        }
        client_data(c, n);
        if (!c->closing && !px_tls_readable(c->tls))
            break;
    }
    if (!c->closing && tls_flush(c) < 0)
        conn_close(c);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct px_conn *c = s->data;
    int rc;

    (void)b;
    if (n == UV_ENOBUFS) {
        /* cbuf or the TLS input ring is full: wait until it is taken. */
        client_read_stop(c);
        return;
    }
    if (!c->tls || n <= 0) {
        client_data(c, n);
        return;
    }
    if ((rc = px_tls_in_commit(c->tls, (size_t)n)) < 0) {
        tls_failed(c, rc);
        return;
    }
    tls_read_pump(c);
}

/* n plaintext bytes arrived at cbuf + clen (or n < 0: the end). */
static void client_data(struct px_conn *c, ssize_t n)
{
    int rc;

    if (n == 0)
        return;
    if (n < 0) {
        c->client_eof = true;
        client_read_stop(c);
        if (c->phase == PH_HEAD && c->clen == 0) {
            conn_close(c);
        } else if (c->phase == PH_HEAD) {
            atomic_fetch_add(&c->svc->stats->bad_requests, 1);
            c->status = 400;
            log_request(c);
            conn_close(c);  /* a partial request, then the end: nobody to answer */
        } else if ((c->phase == PH_CONNECT || c->phase == PH_EXCHANGE) && c->req_body_done) {
            /* A half-close after a whole request: it is answered, then
             * the connection closes (finish_request). */
        } else {
            conn_close(c);  /* the client left during the exchange */
        }
        return;
    }
    if (c->phase == PH_EXCHANGE && !c->req_body_done) {
        client_body_read(c, (size_t)n);
        return;
    }
    if (c->phase != PH_HEAD) {
        /* Pipelined bytes behind a request being answered: kept in cbuf
         * for next_request; a full cbuf stops reading. */
        c->clen += (size_t)n;
        if (c->clen >= c->ccap)
            client_read_stop(c);
        return;
    }
    if (c->clen == 0) {
        /* client_header runs from the first byte to the end of the head. */
        c->t_start = px_now_ms();
        timer_arm(c, px_set.cfg->client_header_ms);
    }
    c->clen += (size_t)n;
    rc = xlb_h1_head(&c->req, c->cbuf, c->clen);
    if (rc == XLB_H1_OK) {
        start_request(c);
    } else if (rc == XLB_H1_ERR) {
        atomic_fetch_add(&c->svc->stats->bad_requests, 1);
        px_log(PX_DEBUG, "%s: client %s: bad request: %s", c->svc->name, c->peer_ip,
               xlb_h1_error_name(c->req.error));
        send_error(c, c->req.status);
    } else {
        if (c->clen >= c->ccap)
            send_error(c, 431);
    }
}

/* ---- the response -------------------------------------------------------- */

static bool skip_hop(const char *buf, const struct xlb_h1_head *h, const struct xlb_h1_field *f,
                     void *arg)
{
    (void)arg;
    return hop_by_hop(buf, h, f);
}

/* Give the response head as sent (without the per-client lines) to the
 * cache: out_c[0..len) holds the status line and fields. */
static void cache_begin(struct px_conn *c, size_t len)
{
    struct xlb_buf tmp = { 0 };
    struct xlb_h1_parser p;

    if (!c->cfields)
        c->cfields = calloc(200, sizeof(*c->cfields));
    if (!c->cfields || xlb_buf_add(&tmp, c->out_c.data, len) || xlb_buf_add(&tmp, "\r\n", 2))
        goto out;
    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, c->cfields, 200);
    if (xlb_h1_head(&p, tmp.data, tmp.len) == XLB_H1_OK)
        c->fill = px_cache_fill_begin(c->svc->cache, c->rbuf, &c->req.head,
                                      c->enc != PX_ENC_IDENTITY ? px_enc_name(c->enc) : "",
                                      tmp.data, &p.head, px_now_ms());
out:
    xlb_buf_free(&tmp);
}

/*
 * The response head for the client, in out_c.  enc: the body is compressed
 * (streamed chunked, or oneshot_len > 0: whole, with that Content-Length).
 */
static int build_response_head(struct px_conn *c, enum px_enc enc, size_t oneshot_len)
{
    const struct xlb_h1_head *h = &c->resp.head;
    const char *buf = c->up->buf;
    struct xlb_buf *o = &c->out_c;
    bool v10 = c->req.head.version_minor == 0;
    char st[16] = "HTTP/1.1 ";

    xlb_buf_reset(o);
    /* status is 100..999 */
    st[9] = (char)('0' + h->status / 100);
    st[10] = (char)('0' + h->status / 10 % 10);
    st[11] = (char)('0' + h->status % 10);
    st[12] = ' ';
    xlb_buf_add(o, st, 13);
    xlb_buf_add(o, buf + h->reason.off, h->reason.len);
    xlb_buf_add(o, "\r\n", 2);
    if (enc != PX_ENC_IDENTITY) {
        if (px_compress_fields(o, buf, h, enc, skip_hop, NULL))
            return -ENOMEM;
        if (oneshot_len)
            xlb_buf_printf(o, "Content-Length: %zu\r\n", oneshot_len);
        else
            xlb_buf_add(o, "Transfer-Encoding: chunked\r\n", 28);
    } else {
        add_fields(o, buf, h, skip_resp_field, c->dechunk ? c : NULL);
    }
    if (!o->data)
        return -ENOMEM;
    if (c->svc->cache && h->status >= 200 && c->cache_rc >= 0 && !c->is_head)
        cache_begin(c, o->len);
    if (c->choice.set_cookie && h->status >= 200) {
        xlb_buf_add(o, "Set-Cookie: ", 12);
        xlb_buf_add(o, c->choice.cookie, strlen(c->choice.cookie));
        xlb_buf_add(o, "\r\n", 2);
    }
    if (h->status >= 200) {
        if (c->close_after)
            xlb_buf_add(o, "Connection: close\r\n", 19);
        else if (v10)
            xlb_buf_add(o, "Connection: keep-alive\r\n", 24);
    }
    return xlb_buf_add(o, "\r\n", 2);
}

/*
 * Feed response body bytes up->buf[off..off+len) to the parser.  What goes
 * to the client is made one run up->buf[off..off+*out): the bytes as they
 * are, or for a de-chunked response the payload moved together in place
 * (payload never runs ahead of the bytes it came from).  Returns 0 or
 * -EPROTO.
 */
static int forward_resp_body(struct px_conn *c, size_t off, size_t len, size_t *out)
{
    char *base = c->up->buf + off;
    size_t used = 0, w = 0;

    while (used < len && !c->resp_body_done) {
        size_t consumed = 0, dlen = 0;
        const char *data = NULL;
        int rc = xlb_h1_body(&c->resp, base + used, len - used, &consumed, &data, &dlen);

        if (rc == XLB_H1_ERR)
            return -EPROTO;
        if (c->fill && dlen && !c->comp)
            px_cache_fill_add(c->fill, data, dlen);
        if (c->dechunk || c->comp) {
            if (dlen)
                memmove(base + w, data, dlen);
            w += dlen;
        } else {
            w += consumed;
        }
        used += consumed;
        if (rc == XLB_H1_OK)
            c->resp_body_done = true;
        if (!consumed && rc != XLB_H1_OK)
            break;
    }
    if (used < len && c->resp_body_done)
        c->up->closing = true;  /* bytes after the response: not a connection to reuse */
    *out = w;
    return 0;
}

/* A whole exchange is over: count, log, keep or close the connections. */
static void finish_request(struct px_conn *c)
{
    struct px_up *u = c->up;
    bool reuse = u && c->resp.head.keep_alive && c->resp.head.framing != XLB_H1_BODY_EOF &&
                 !u->closing && c->req_body_done;

    timer_disarm(c);
    log_request(c);
    request_done(c, true);
    if (u)
        up_release(c, reuse);
    real_put(c);
    if (c->close_after || (c->client_eof && c->next_off >= c->clen)) {
        conn_close(c);
        return;
    }
    next_request(c);
}

/* After response bytes went out to the client: read more or finish. */
static void comp_pump(struct px_conn *c);

static void resp_continue(struct px_conn *c)
{
    if (c->closing || c->cwrite_pending)
        return;
    if (c->comp && !c->comp_end) {
        comp_pump(c);
        return;
    }
    if (c->resp_body_done) {
        if (c->req_body_done && !(c->up && c->up->wpending))
            finish_request(c);
        else if (!c->req_body_done) {
            /* The real answered before the whole body: do not reuse either side. */
            c->close_after = true;
            if (c->up)
                c->up->closing = true;
            finish_request(c);
        }
        return;
    }
    c->up->len = 0;
    up_read_start(c);
    timer_arm(c, px_set.cfg->response_ms);
}

static void on_client_written(uv_write_t *req, int status)
{
    struct px_conn *c = req->data;

    c->cwrite_pending = false;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    resp_continue(c);
}

static void write_to_client(struct px_conn *c, uv_buf_t *bufs, unsigned int nb)
{
    int rc;

    c->cw.data = c;
    rc = cl_send(c, bufs, nb, on_client_written);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    if (rc == 1) {
        resp_continue(c);
    } else {
        /* The write holds up->buf: nothing more is read into it until it is done. */
        up_read_stop(c->up);
        timer_arm(c, px_set.cfg->client_body_ms);   /* now the client must make progress */
    }
}

/*
 * Compress what waits in zin and write it as chunks (the head first when
 * it is still queued); with the body complete, finish the stream and send
 * the last chunk.  Reading from the real resumes only when zin is used up,
 * since zin points into up->buf.  Runs again from each write completion.
 */
static void comp_pump(struct px_conn *c)
{
    for (;;) {
        size_t used = 0, zl = 0, hl, off;
        char hdr[PX_CHUNK_HEADER_MAX];
        uv_buf_t bufs[2];
        unsigned int nb = 0;
        int rc;

        if (c->closing || c->cwrite_pending)
            return;
        if (c->comp_end) {
            resp_continue(c);
            return;
        }
        if (!c->zin_len && !c->resp_body_done && !c->head_queued) {
            c->up->len = 0;
            up_read_start(c);
            timer_arm(c, px_set.cfg->response_ms);
            return;
        }
        rc = px_enc_run(c->comp, c->zin, c->zin_len, &used,
                        c->zbuf + PX_CHUNK_HEADER_MAX,
                        c->zcap - PX_CHUNK_HEADER_MAX - PX_CHUNK_END_LEN - PX_CHUNK_LAST_LEN, &zl,
                        c->resp_body_done);
        if (rc < 0) {
            px_log(PX_WARN, "%s: %s encoder failed: response cut", c->svc->name,
                   px_enc_name(c->enc));
            conn_close(c);
            return;
        }
        c->zin += used;
        c->zin_len -= used;
        if (rc == PX_ENC_END)
            c->comp_end = true;
        if (c->head_queued) {
            bufs[nb++] = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
            c->bytes_out += c->out_c.len;
            c->head_queued = false;
        }
        off = PX_CHUNK_HEADER_MAX;
        if (zl) {
            if (c->fill)
                px_cache_fill_add(c->fill, c->zbuf + off, zl);
            hl = px_chunk_header(hdr, zl);
            off -= hl;
            memcpy(c->zbuf + off, hdr, hl);
            memcpy(c->zbuf + PX_CHUNK_HEADER_MAX + zl, PX_CHUNK_END, PX_CHUNK_END_LEN);
            zl += hl + PX_CHUNK_END_LEN;
        }
        if (c->comp_end) {
            memcpy(c->zbuf + off + zl, PX_CHUNK_LAST, PX_CHUNK_LAST_LEN);
            zl += PX_CHUNK_LAST_LEN;
        }
        if (zl)
            bufs[nb++] = uv_buf_init(c->zbuf + off, (unsigned int)zl);
        if (!nb)
            continue;
        c->bytes_out += zl;
        c->cw.data = c;
        rc = cl_send(c, bufs, nb, on_client_written);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        if (rc == 0) {
            timer_arm(c, px_set.cfg->client_body_ms);
            return;
        }
    }
}

static int zbuf_room(struct px_conn *c, size_t need)
{
    char *n;

    if (c->zcap >= need)
        return 0;
    n = realloc(c->zbuf, need);
    if (!n)
        return -ENOMEM;
    c->zbuf = n;
    c->zcap = need;
    return 0;
}

/* The whole body of a response to compress is in c->whole, else in
 * up->buf after its head.  The output goes to a block, else to zbuf. */
static void send_whole_compressed(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->resp.head;
    size_t len = (size_t)h->content_length, zl = 0, bound = px_enc_bound(c->enc, len), cap;
    size_t have = c->whole ? c->whole_len : c->up->len - h->head_len;
    const char *in = c->whole ? c->whole->data : c->up->buf + h->head_len;
    char *out;
    uv_buf_t bufs[2];

    if (bound <= PX_BLOCK_SIZE && (c->zout = block_get(c->w))) {
        out = c->zout->data;
        cap = PX_BLOCK_SIZE;
    } else {
        out = zbuf_room(c, bound) ? NULL : c->zbuf;
        cap = c->zcap;
    }
    if (!out || px_enc_oneshot(c->enc, c->svc->cfg->compression.level, in, len, out, cap, &zl)) {
        px_log(PX_WARN, "%s: %s compression failed: response cut", c->svc->name,
               px_enc_name(c->enc));
        conn_close(c);
        return;
    }
    if (have > len)
        c->up->closing = true;  /* bytes after the response: not a connection to reuse */
    c->resp_body_done = true;
    if (build_response_head(c, c->enc, zl ? zl : 1) < 0) {
        conn_close(c);
        return;
    }
    if (c->fill)
        px_cache_fill_add(c->fill, out, zl);
    c->resp_started = true;
    bufs[0] = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
    bufs[1] = uv_buf_init(out, (unsigned int)zl);
    c->bytes_out += c->out_c.len + zl;
    write_to_client(c, bufs, 2);
}

/* The response head is complete in up->buf. */
static void response_head(struct px_conn *c)
{
    const struct xlb_h1_head *h = &c->resp.head;
    uv_buf_t bufs[2];
    size_t out = 0;

    if (h->status == 101) {
        /* Upgrade was not offered: a real that switches anyway is broken. */
        c->up->closing = true;
        send_error(c, 502);
        return;
    }
    if (h->status < 200) {
        /* 1xx: pass it on and wait for the final response. */
        size_t rest = c->up->len - h->head_len;

        if (build_response_head(c, PX_ENC_IDENTITY, 0) < 0) {
            conn_close(c);
            return;
        }
        if (c->cwrite_pending) {
            conn_close(c);
            return;
        }
        /* Written synchronously or dropped: interim answers are advisory. */
        bufs[0] = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
        if (c->tls ? cl_send(c, bufs, 1, on_client_written) != 1 :
            uv_try_write((uv_stream_t *)&c->tcp, bufs, 1) != (int)c->out_c.len) {
            conn_close(c);
            return;
        }
        memmove(c->up->buf, c->up->buf + h->head_len, rest);
        c->up->len = rest;
        xlb_h1_init(&c->resp, XLB_H1_RESPONSE, NULL, c->rfields, 200);
        xlb_h1_set_head_request(&c->resp, c->is_head);
        if (rest) {
            int rc = xlb_h1_head(&c->resp, c->up->buf, c->up->len);

            if (rc == XLB_H1_OK) {
                response_head(c);
                return;
            }
            if (rc == XLB_H1_ERR) {
                c->up->closing = true;
                send_error(c, 502);
            }
        }
        return;
    }
    c->t_header = px_now_ms();
    c->resp_head_done = true;
    atomic_store(&c->up->real->conn_errors, 0);
    c->status = h->status;
    px_lb_learn(c->pool, c->up->real, c->up->buf, h, c->t_header);
    c->dechunk = c->req.head.version_minor == 0 && h->framing == XLB_H1_BODY_CHUNKED;
    c->close_after = !c->req.head.keep_alive || h->framing == XLB_H1_BODY_EOF || c->dechunk ||
                     !c->req_body_done;
    if (c->svc->cache && c->cache_rc >= 0 && h->status >= 200 && h->status < 400 &&
        !method_safe(c->method))
        px_cache_invalidate_uri(c->svc->cache, c->rbuf, &c->req.head);
    if (c->enc != PX_ENC_IDENTITY &&
        px_compress_eligible(&c->svc->cfg->compression, c->rbuf, &c->req.head, c->up->buf, h)) {
        const struct xlb_cfg_compression *cc = &c->svc->cfg->compression;
        size_t have = c->up->len - h->head_len;

        if (h->framing == XLB_H1_BODY_LENGTH && h->content_length <= PX_ENC_ONESHOT_MAX &&
            (h->head_len + h->content_length <= sizeof(c->up->buf) ||
             (c->whole = block_get(c->w)))) {
            /* A body of known, bounded size is compressed whole, with a
             * length: in up->buf when it fits, else gathered in a block
             * (up->buf keeps the head, body bytes are read after it). */
            if (c->whole) {
                c->whole_len = have < h->content_length ? have : (size_t)h->content_length;
                memcpy(c->whole->data, c->up->buf + h->head_len, c->whole_len);
                if (have > c->whole_len)
                    c->up->closing = true;  /* bytes after the response */
                c->up->len = h->head_len;
                have = c->whole_len;
            }
            if (have < h->content_length) {
                c->await_whole = true;
                return;     /* up_data gathers the rest */
            }
            send_whole_compressed(c);
            return;
        }
        if (!zbuf_room(c, PX_BUF_SIZE + 1024) && (c->comp = px_enc_new(c->enc, cc->level))) {
            if (build_response_head(c, c->enc, 0) < 0 ||
                forward_resp_body(c, h->head_len, c->up->len - h->head_len, &out)) {
                c->up->closing = true;
                conn_close(c);
                return;
            }
            c->resp_started = true;
            c->head_queued = true;
            c->zin = c->up->buf + h->head_len;
            c->zin_len = out;
            up_read_stop(c->up);
            comp_pump(c);
            return;
        }
        px_log(PX_WARN, "%s: no memory for a %s encoder: response sent as it is", c->svc->name,
               px_enc_name(c->enc));
    }
    c->enc = c->fill ? c->enc : PX_ENC_IDENTITY;
    if (build_response_head(c, PX_ENC_IDENTITY, 0) < 0) {
        conn_close(c);
        return;
    }
    c->resp_started = true;
    bufs[0] = uv_buf_init(c->out_c.data, (unsigned int)c->out_c.len);
    if (h->framing == XLB_H1_BODY_NONE)
        c->resp_body_done = true;
    else if (forward_resp_body(c, h->head_len, c->up->len - h->head_len, &out)) {
        c->up->closing = true;
        conn_close(c);
        return;
    }
    bufs[1] = uv_buf_init(c->up->buf + h->head_len, (unsigned int)out);
    c->bytes_out += c->out_c.len + out;
    write_to_client(c, bufs, 2);
}

static void up_data(struct px_up *u, ssize_t n);

/* Decrypt what the TLS layer holds into up->buf while the state machine reads. */
static void up_tls_read_pump(struct px_up *u)
{
    struct px_conn *c = u->conn;
    int rc;

    if (!c)
        return;
    if (!px_tls_handshake_done(u->tls)) {
        rc = px_tls_handshake(u->tls);
        if (tlsw_pump(&u->tw) < 0 && rc >= 0)
            rc = PX_TLS_ERROR;
        if (rc < 0) {
            px_log(PX_INFO, "%s: TLS to real %s: %s", c->svc->name, u->real->name,
                   px_tls_error(u->tls));
            u->closing = true;
            fail_upstream(c, true, 502);
            return;
        }
        if (rc == 0)
            return;
        atomic_store(&u->real->conn_errors, 0);
        up_connected(c);
        return;
    }
    while (u->conn && u->reading && !u->closing && u->len < sizeof(u->buf)) {
        ssize_t n = px_tls_read(u->tls, u->buf + u->len, sizeof(u->buf) - u->len);

        if (n == 0)
            break;
        if (n < 0) {
            up_data(u, n == PX_TLS_CLOSED ? UV_EOF : UV_EPROTO);
            return;
        }
        up_data(u, n);
    }
    if (u->conn && !u->closing && tlsw_pump(&u->tw) < 0)
        u->closing = true;
}

static void on_up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct px_up *u = s->data;
    int rc;

    (void)b;
    if (u->idle) {
        /* Data or the end on an idle connection: it cannot be used again. */
        if (n != 0) {
            idle_remove(u);
            up_close(u);
        }
        return;
    }
    if (!u->tls || n <= 0) {
        if (u->tls && n == UV_ENOBUFS)
            return;     /* the input ring is full: what it holds is read first */
        up_data(u, n);
        return;
    }
    if ((rc = px_tls_in_commit(u->tls, (size_t)n)) < 0) {
        up_data(u, UV_EPROTO);
        return;
    }
    up_tls_read_pump(u);
}

/* n response bytes arrived at up->buf + up->len (n < 0: the end). */
static void up_data(struct px_up *u, ssize_t n)
{
    struct px_conn *c = u->conn;
    uv_buf_t buf;
    size_t out = 0;
    int rc;

    if (!c || n == 0)
        return;
    if (n < 0) {
        up_read_stop(u);
        u->closing = true;
        if (!c->resp_head_done && u->len == 0) {
            px_log(PX_INFO, "%s: real %s closed the connection before a response (%s)",
                   c->svc->name, u->real->name, n == UV_EOF ? "end of stream" : uv_strerror((int)n));
            /* A kept-alive connection the real closed meanwhile is no sign of failure. */
            if (u->reused && c->idempotent && !c->has_body) {
                up_release(c, false);
                real_put(c);
                c->attempts--;
                up_start(c);
                return;
            }
            fail_upstream(c, false, 502);
        } else if (c->resp_head_done && c->resp.head.framing == XLB_H1_BODY_EOF) {
            c->resp_body_done = true;
            resp_continue(c);
        } else if (!c->resp_head_done) {
            c->status = 502;
            send_error(c, 502);
        } else {
            conn_close(c);  /* truncated body: the client must see it broken */
        }
        return;
    }
    timer_arm(c, px_set.cfg->response_ms);
    if (!c->resp_head_done) {
        u->len += (size_t)n;
        rc = xlb_h1_head(&c->resp, u->buf, u->len);
        if (rc == XLB_H1_OK) {
            response_head(c);
        } else if (rc == XLB_H1_ERR) {
            px_log(PX_INFO, "%s: real %s: invalid response: %s", c->svc->name, u->real->name,
                   xlb_h1_error_name(c->resp.error));
            u->closing = true;
            passive_fail(c, u->real, "invalid response");
            send_error(c, 502);
        } else if (u->len >= sizeof(u->buf)) {
            u->closing = true;
            send_error(c, 502);
        }
        return;
    }
    if (c->await_whole) {
        size_t want = (size_t)c->resp.head.content_length;

        if (c->whole) {
            size_t take = (size_t)n < want - c->whole_len ? (size_t)n : want - c->whole_len;

            memcpy(c->whole->data + c->whole_len, u->buf + u->len, take);
            c->whole_len += take;
            if ((size_t)n > take)
                u->closing = true;      /* bytes after the response */
            if (c->whole_len < want)
                return;
        } else {
            u->len += (size_t)n;
            if (u->len - c->resp.head.head_len < want)
                return;
        }
        c->await_whole = false;
        send_whole_compressed(c);
        return;
    }
    if (forward_resp_body(c, u->len, (size_t)n, &out)) {
        u->closing = true;
        conn_close(c);
        return;
    }
    if (c->comp) {
        up_read_stop(u);
        c->zin = u->buf + u->len;
        c->zin_len = out;
        comp_pump(c);
        return;
    }
    buf = uv_buf_init(u->buf + u->len, (unsigned int)out);
    c->bytes_out += out;
    write_to_client(c, &buf, 1);
}

/* ---- upstream pool ---------------------------------------------------- */

static void up_close(struct px_up *u)
{
    u->closing = true;
    if (uv_is_closing((uv_handle_t *)&u->tcp))
        return;
    uv_timer_stop(&u->idle_timer);
    uv_close((uv_handle_t *)&u->idle_timer, on_up_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, on_up_handle_closed);
}

static void on_up_handle_closed(uv_handle_t *h)
{
    struct px_up *u = h->data;

    if (--u->handles == 0) {
        px_tls_free(u->tls);
        free(u);
    }
}

static void idle_remove(struct px_up *u)
{
    struct px_idle_list *l = &u->w->idle[u->real->gindex];
    struct px_up **pp;

    for (pp = &l->head; *pp; pp = &(*pp)->next_idle)
        if (*pp == u) {
            *pp = u->next_idle;
            l->n--;
            break;
        }
    u->idle = false;
}

/* The idle timer runs from a connection's first idle period; it closes the
 * connection when it has been idle for upstream_idle, sets itself for the
 * rest when it went idle again since, and stops when it is busy (the next
 * up_release starts it). */
static void on_idle_timeout(uv_timer_t *t)
{
    struct px_up *u = t->data;
    uint64_t now = uv_now(t->loop), end = u->idle_since + px_set.cfg->upstream_idle_ms;

    if (!u->idle)
        return;
    if (now < end) {
        uv_timer_start(&u->idle_timer, on_idle_timeout, end - now, 0);
        return;
    }
    idle_remove(u);
    up_close(u);
}

static void up_release(struct px_conn *c, bool reuse)
{
    struct px_up *u = c->up;
    struct px_idle_list *l;

    c->up = NULL;
    if (!u)
        return;
    u->conn = NULL;
    if (!u->connected || !reuse || u->closing || u->wpending) {
        up_close(u);
        return;
    }
    l = &u->w->idle[u->real->gindex];
    if (l->n >= px_set.cfg->pool_max_idle) {
        up_close(u);
        return;
    }
    u->requests++;
    u->len = 0;
    u->idle = true;
    u->next_idle = l->head;
    l->head = u;
    l->n++;
    up_read_on(u);      /* to see the real close it */
    u->idle_since = uv_now(&u->w->loop);
    if (!uv_is_active((uv_handle_t *)&u->idle_timer))
        uv_timer_start(&u->idle_timer, on_idle_timeout, px_set.cfg->upstream_idle_ms, 0);
}

void px_conn_close_all(struct px_worker *w)
{
    struct px_conn *c;

    for (c = w->conns; c; c = c->next)
        conn_close(c);
}

void px_pool_close_all(struct px_worker *w)
{
    int i;

    for (i = 0; i < w->n_reals; i++) {
        struct px_idle_list *l = &w->idle[i];

        while (l->head) {
            struct px_up *u = l->head;

            l->head = u->next_idle;
            l->n--;
            u->idle = false;
            up_close(u);
        }
    }
}

/* ---- accept ----------------------------------------------------------- */

static void on_tmp_closed(uv_handle_t *h)
{
    free(h);
}

void px_conn_accept(struct px_listener *l)
{
    struct px_worker *w = l->w;
    struct px_conn *c;
    int len;

    c = calloc(1, sizeof(*c));
    if (c) {
        c->ccap = px_set.limits.max_head + 1 > PX_BUF_SIZE ? px_set.limits.max_head + 1 :
                  PX_BUF_SIZE;
        c->cbuf = malloc(c->ccap);
        c->fields = calloc(px_set.limits.max_headers, sizeof(*c->fields));
        c->rfields = calloc(200, sizeof(*c->rfields));
        c->exclude = calloc((w->max_pool_reals + 63) / 64, sizeof(uint64_t));
    }
    if (!c || !c->cbuf || !c->fields || !c->rfields || !c->exclude) {
        uv_tcp_t *tmp = malloc(sizeof(*tmp));

        if (c) {
            free(c->cbuf);
            free(c->fields);
            free(c->rfields);
            free(c->exclude);
            free(c);
        }
        /* Take the connection off the queue and drop it. */
        px_log(PX_WARN, "%s: out of memory: connection dropped", l->svc->name);
        if (tmp) {
            uv_tcp_init(&w->loop, tmp);
            uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, on_tmp_closed);
        }
        return;
    }
    c->w = w;
    c->l = l;
    c->svc = l->svc;
    uv_tcp_init(&w->loop, &c->tcp);
    tlsw_init(&c->tw, (uv_stream_t *)&c->tcp, &c->tls, cl_tls_gone, cl_tls_end);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->deadline = UINT64_MAX;
    c->handles = 2;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add(&w->conns_active, 1);
    atomic_fetch_add(&w->conns_total, 1);
    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    len = sizeof(c->peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
    ip_text(&c->peer, c->peer_ip, sizeof(c->peer_ip), &c->peer_port);
    if (l->tls && px_tls_accept(c->svc->tls, &c->tls)) {
        conn_close(c);
        return;
    }
    next_request(c);
    if (c->tls)
        timer_arm(c, px_set.cfg->client_header_ms);    /* the handshake is part of the head */
}
