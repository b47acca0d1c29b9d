// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb_httpd - the control-plane HTTP/1.1 server (see xlb_httpd.h).
 *
 * Each connection owns one input buffer.  Received bytes are appended to it
 * and parsed in place: the parser remembers how far it has looked, so a
 * request that arrives one byte per read costs no rescanning, and names and
 * values are NUL-terminated where they lie (the ':' and the CR become NULs)
 * and kept as offsets, since the buffer may move when it grows.  Once the
 * head and Content-Length bytes of body are in, the handler runs, the
 * response is appended to an output buffer and the request's bytes are
 * removed; what follows is the next pipelined request.
 *
 * Output uses two buffers: one being written by the single uv_write in
 * flight and one collecting responses meanwhile, swapped when the write
 * ends.  Responses therefore leave in request order.  While more than
 * OUT_SOFT_MAX bytes wait, no further request is handled and the socket is
 * not read: a client that pipelines without reading cannot grow our memory.
 *
 * One timer per connection serves four purposes, one at a time:
 *   REQ    a request has started (or the connection is new): it must be
 *          complete within request_ms of its first byte, else 408;
 *   IDLE   between keep-alive requests: closed after idle_ms;
 *   DRAIN  closing: the last response must be written within idle_ms;
 *   LINGER after our FIN: what the client still sends is read and dropped
 *          until its EOF or LINGER_MS, so that closing a socket with unread
 *          data does not reset the connection before the client has read
 *          our last response (a 413 sent while a body is still arriving).
 *
 * Closing frees nothing at once: the connection's two handles close through
 * libuv, and the memory goes in the last close callback; the server itself
 * is freed when the listener and every connection are gone.  So a handler
 * may call xlb_httpd_stop(); the code after it only checks flags.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xlb_addr.h"
#include "xlb_httpd.h"

#define HEAD_MAX XLB_HTTPD_HEAD_MAX
#define BODY_MAX XLB_HTTPD_BODY_MAX
#define MAX_CONNS XLB_HTTPD_MAX_CONNS
#define MAX_HEADERS 64
#define READ_CHUNK 16384
#define OUT_SOFT_MAX (1u << 20)
#define TRIM_CAP (256u * 1024)
#define LINGER_MS 2000u
#define DISCARD_LEN 65536

enum conn_state { C_OPEN, C_CLOSING, C_CLOSED };
enum timer_kind { T_NONE, T_REQ, T_IDLE, T_DRAIN, T_LINGER };

struct hdr {
    size_t name, value;         /* offsets of NUL-terminated strings in in */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct xlb_httpd *srv;
    struct conn *prev, *next;
    int handles;                /* handles not yet closed */
    enum conn_state state;
    enum timer_kind timer_kind;
    bool reading, writing, peer_eof, shut;
    bool close_after;           /* after the pending output: FIN, then close */
    uint64_t served;            /* requests answered */

    struct xlb_buf in, out, pend, body;

    /* The request being parsed, at in.data[0]. */
    size_t line;                /* start of the line not yet complete */
    size_t scan;                /* bytes from line on known to hold no LF */
    size_t head_len;            /* 0 until the blank line is seen */
    bool got_request_line;
    bool http11, keep_alive, is_head;
    size_t method, path, query; /* offsets; query == SIZE_MAX: none */
    size_t content_length;
    int nhdr;
    struct hdr hdr[MAX_HEADERS];
};

struct xlb_httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open, stopping;
    xlb_http_handler handler;
    void *arg;
    uint16_t port;
    uint32_t request_ms, idle_ms;
    struct conn *conns;
    int nconns;
    struct xlb_httpd_stats stats;
    char discard[DISCARD_LEN];  /* sink for bytes read while closing */
};

static void conn_process(struct conn *c);

/* ---- small helpers ---------------------------------------------------- */

const char *xlb_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
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
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* RFC 9110 tchar: the characters of a token (methods, header names). */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A header value byte: visible ASCII, obs-text, space or tab. */
static bool is_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static const char *in_str(const struct conn *c, size_t off)
{
    return c->in.data + off;
}

/* Does the comma-separated list v contain the token tok (any case)? */
static bool list_has(const char *v, const char *tok)
{
    size_t n = strlen(tok);

    while (*v) {
        const char *e;
        size_t len;

        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        e = v;
        while (*e && *e != ',')
            e++;
        len = (size_t)(e - v);
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (len == n && !strncasecmp(v, tok, n))
            return true;
        v = e;
    }
    return false;
}

/* ---- closing ---------------------------------------------------------- */

static void srv_maybe_free(struct xlb_httpd *s)
{
    if (s->stopping && !s->listener_open && s->nconns == 0)
        free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct xlb_httpd *s = c->srv;

    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    xlb_buf_free(&c->in);
    xlb_buf_free(&c->out);
    xlb_buf_free(&c->pend);
    xlb_buf_free(&c->body);
    free(c);
    srv_maybe_free(s);
}

/* Close at once; pending writes are cancelled.  Idempotent. */
static void conn_close(struct conn *c)
{
    if (c->state == C_CLOSED)
        return;
    c->state = C_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void timer_cb(uv_timer_t *t);

static void timer_set(struct conn *c, enum timer_kind kind, uint64_t ms)
{
    c->timer_kind = kind;
    uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void read_on(struct conn *c)
{
    if (c->reading || c->peer_eof || c->state == C_CLOSED)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
        c->reading = true;
    else
        conn_close(c);
}

static void read_off(struct conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Stop taking requests: what is queued is written, then FIN and linger.
 * Input still arriving is read and dropped. */
static void conn_finish(struct conn *c)
{
    if (c->state != C_OPEN)
        return;
    c->state = C_CLOSING;
    c->close_after = true;
    xlb_buf_reset(&c->in);
    timer_set(c, T_DRAIN, c->srv->idle_ms);
    read_on(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    if (c->state == C_CLOSED)
        return;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    timer_set(c, T_LINGER, c->srv->request_ms < LINGER_MS ? c->srv->request_ms : LINGER_MS);
}

/* ---- output ----------------------------------------------------------- */

static void write_cb(uv_write_t *req, int status);

/* Once all is written and nothing is pending, give back buffers a large
 * request or response grew, so that 64 idle connections do not keep
 * megabytes each. */
static void conn_trim(struct conn *c)
{
    struct xlb_buf *bufs[] = { &c->in, &c->out, &c->pend, &c->body };

    if (c->writing || c->in.len || c->pend.len)
        return;
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (bufs[i]->cap > TRIM_CAP)
            xlb_buf_free(bufs[i]);
}

/* Start writing what is pending, unless a write is in flight; once a
 * closing connection has nothing left to write, send FIN. */
static void conn_flush(struct conn *c)
{
    struct xlb_buf t;
    uv_buf_t b;

    if (c->state == C_CLOSED || c->writing)
        return;
    if (c->pend.len == 0) {
        if (c->close_after && !c->shut) {
            c->shut = true;
            c->sreq.data = c;
            if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
                conn_close(c);
        }
        return;
    }
    t = c->out;
    c->out = c->pend;
    c->pend = t;
    xlb_buf_reset(&c->pend);
    b = uv_buf_init(c->out.data, (unsigned int)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
        conn_close(c);
        return;
    }
    c->writing = true;
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    c->writing = false;
    if (c->state == C_CLOSED)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    xlb_buf_reset(&c->out);
    conn_trim(c);
    if (c->state == C_OPEN)
        conn_process(c);        /* requests held back while output was full */
    else
        conn_flush(c);
}

/* Queue a response generated here (parse errors, timeouts) and close. */
static void conn_error(struct conn *c, int status, const char *why)
{
    struct xlb_httpd *s = c->srv;
    size_t blen = strlen(why) + 1;

    if (c->state != C_OPEN)
        return;
    s->stats.errors++;
    if (xlb_buf_printf(&c->pend, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                       status, xlb_http_reason(status), blen) < 0 ||
        (!c->is_head && xlb_buf_printf(&c->pend, "%s\n", why) < 0)) {
        conn_close(c);
        return;
    }
    conn_finish(c);
    conn_flush(c);
}

/* ---- request parsing -------------------------------------------------- */

static void req_reset(struct conn *c)
{
    c->line = c->scan = 0;
    c->head_len = 0;
    c->got_request_line = false;
    c->http11 = c->keep_alive = c->is_head = false;
    c->method = c->path = 0;
    c->query = SIZE_MAX;
    c->content_length = 0;
    c->nhdr = 0;
}

/*
 * "METHOD SP request-target SP HTTP/1.x" in [s, e).  Returns 0 or the
 * status to answer with.  The method and the target's path and query are
 * NUL-terminated in place.
 */
static int parse_request_line(struct conn *c, size_t s, size_t e)
{
    char *d = c->in.data;
    size_t i = s, t0, t1;

    while (i < e && is_tchar((unsigned char)d[i]))
        i++;
    if (i == s || i >= e || d[i] != ' ')
        return 400;
    c->method = s;
    d[i++] = '\0';
    t0 = i;
    while (i < e && (unsigned char)d[i] > 0x20 && (unsigned char)d[i] < 0x7f && d[i] != '#')
        i++;
    if (i == t0 || i >= e || d[i] != ' ')
        return 400;
    t1 = i;
    d[i++] = '\0';
    /* What remains must be exactly the version. */
    if (e - i != 8 || memcmp(d + i, "HTTP/", 5) || d[i + 6] != '.' ||
        d[i + 5] < '0' || d[i + 5] > '9' || d[i + 7] < '0' || d[i + 7] > '9')
        return 400;
    if (d[i + 5] != '1')
        return 505;
    c->http11 = d[i + 7] != '0';
    c->is_head = !strcmp(d + s, "HEAD");

    /* Origin form "/path?query", "*" for OPTIONS, or absolute form
     * "http://authority/path?query" of which the authority is ignored. */
    if (d[t0] == '*') {
        if (t1 - t0 != 1 || strcmp(d + s, "OPTIONS"))
            return 400;
    } else if (d[t0] != '/') {
        char *sep = strstr(d + t0, "://");
        char *slash;

        if (!sep || strncasecmp(d + t0, "http", 4) ||
            !(sep == d + t0 + 4 || (sep == d + t0 + 5 && (d[t0 + 4] | 0x20) == 's')))
            return 400;
        slash = strchr(sep + 3, '/');
        if (!slash || memchr(sep + 3, '?', (size_t)(slash - sep - 3)))
            return 400;
        t0 = (size_t)(slash - d);
    }
    c->path = t0;
    for (i = t0; i < t1; i++) {
        if (d[i] == '?') {
            d[i] = '\0';
            c->query = i + 1;
            break;
        }
    }
    c->got_request_line = true;
    return 0;
}

/* "name: value" in [s, e); 0 or the status to answer with. */
static int parse_header_line(struct conn *c, size_t s, size_t e)
{
    char *d = c->in.data;
    size_t i = s, v0, v1;

    while (i < e && is_tchar((unsigned char)d[i]))
        i++;
    /* No space before the colon, no folded continuation lines. */
    if (i == s || i >= e || d[i] != ':')
        return 400;
    if (c->nhdr == MAX_HEADERS)
        return 431;
    d[i++] = '\0';
    while (i < e && (d[i] == ' ' || d[i] == '\t'))
        i++;
    v0 = i;
    for (; i < e; i++)
        if (!is_value_char((unsigned char)d[i]))
            return 400;
    v1 = e;
    while (v1 > v0 && (d[v1 - 1] == ' ' || d[v1 - 1] == '\t'))
        v1--;
    d[v1] = '\0';               /* a trailing blank or the CR */
    c->hdr[c->nhdr].name = s;
    c->hdr[c->nhdr].value = v0;
    c->nhdr++;
    return 0;
}

/* The headers that shape the message: framing, persistence, Host, Expect.
 * 0, or the status to answer with. */
static int check_headers(struct conn *c, bool *send_continue)
{
    int n_cl = 0, n_host = 0;
    bool conn_close_tok = false, conn_keep = false;

    *send_continue = false;
    for (int i = 0; i < c->nhdr; i++) {
        const char *n = in_str(c, c->hdr[i].name), *v = in_str(c, c->hdr[i].value);

        if (!strcasecmp(n, "transfer-encoding")) {
            return 501;
        } else if (!strcasecmp(n, "content-length")) {
            size_t len = 0;

            if (++n_cl > 1 || !*v)
                return 400;
            for (const char *p = v; *p; p++) {
                if (*p < '0' || *p > '9')
                    return 400;
                if (len <= BODY_MAX)
                    len = len * 10 + (size_t)(*p - '0');
            }
            c->content_length = len;
        } else if (!strcasecmp(n, "host")) {
            n_host++;
        } else if (!strcasecmp(n, "connection")) {
            conn_close_tok |= list_has(v, "close");
            conn_keep |= list_has(v, "keep-alive");
        } else if (!strcasecmp(n, "expect")) {
            if (strcasecmp(v, "100-continue"))
                return 417;
            *send_continue = c->http11;
        }
    }
    if (n_host > 1 || (c->http11 && n_host == 0))
        return 400;
    if (c->content_length > BODY_MAX)
        return 413;
    c->keep_alive = !conn_close_tok && (c->http11 || conn_keep);
    return 0;
}

static const char *why_for(int status, bool in_request_line)
{
    switch (status) {
    case 413: return "request body larger than 1 MiB";
    case 414: return "request line longer than 8 KiB";
    case 431: return "request headers larger than 8 KiB or more than 64 fields";
    case 417: return "only \"Expect: 100-continue\" is supported";
    case 501: return "Transfer-Encoding in requests is not supported; send Content-Length";
    case 505: return "only HTTP/1.0 and HTTP/1.1 are supported";
    default: return in_request_line ? "malformed request line" : "malformed request header";
    }
}

/*
 * Look at the bytes not examined yet.  Returns 1 when the head is complete
 * (head_len set), 0 when more bytes are needed, or the HTTP status of the
 * error.
 */
static int parse_head(struct conn *c)
{
    char *d = c->in.data;

    for (;;) {
        size_t from = c->scan > c->line ? c->scan : c->line, s, e;
        char *nl = from < c->in.len ? memchr(d + from, '\n', c->in.len - from) : NULL;
        int rc;

        if (!nl) {
            if (c->in.len > HEAD_MAX)
                return c->got_request_line ? 431 : 414;
            c->scan = c->in.len;
            return 0;
        }
        e = (size_t)(nl - d);
        s = c->line;
        if (e + 1 > HEAD_MAX)
            return c->got_request_line ? 431 : 414;
        if (e == s || d[e - 1] != '\r')
            return 400;         /* a bare LF */
        c->line = e + 1;
        e--;                    /* [s, e) without the CR */
        if (!c->got_request_line) {
            if (e == s)
                continue;       /* empty lines before a request are ignored */
            if ((rc = parse_request_line(c, s, e)))
                return rc;
            continue;
        }
        if (e == s) {
            c->head_len = c->line;
            return 1;
        }
        if ((rc = parse_header_line(c, s, e)))
            return rc;
    }
}

/* ---- dispatch --------------------------------------------------------- */

static const char *req_header(const struct xlb_http_req *r, const char *name)
{
    const struct conn *c = r->priv;

    for (int i = 0; i < c->nhdr; i++)
        if (!strcasecmp(in_str(c, c->hdr[i].name), name))
            return in_str(c, c->hdr[i].value);
    return NULL;
}

/* A response the handler built must be well-formed HTTP. */
static bool resp_valid(const struct xlb_http_resp *r, size_t *ct_len, size_t *xh_len)
{
    const char *x = r->extra_headers;
    size_t n;

    if (r->status < 200 || r->status > 999)
        return false;
    *ct_len = strnlen(r->content_type, sizeof(r->content_type));
    if (*ct_len == sizeof(r->content_type) || strpbrk(r->content_type, "\r\n"))
        return false;
    n = strnlen(x, sizeof(r->extra_headers));
    if (n == sizeof(r->extra_headers))
        return false;
    /* CRLF-terminated lines, none of them empty (that would end the head). */
    for (size_t i = 0, line = 0; i < n; i++) {
        if (x[i] == '\n')
            return false;
        if (x[i] != '\r')
            continue;
        if (i + 1 >= n || x[i + 1] != '\n' || i == line)
            return false;
        line = ++i + 1;
    }
    *xh_len = n;
    return true;
}

/* Run the handler on the complete request at in.data[0] and queue the
 * response.  Returns false when the connection went away meanwhile. */
static bool dispatch(struct conn *c)
{
    struct xlb_httpd *s = c->srv;
    size_t total = c->head_len + c->content_length, ct_len = 0, xh_len = 0;
    struct xlb_http_req req = {
        .method = in_str(c, c->method),
        .path = in_str(c, c->path),
        .query = c->query == SIZE_MAX ? "" : in_str(c, c->query),
        .body = in_str(c, c->head_len),
        .body_len = c->content_length,
        .header = req_header,
        .priv = c,
    };
    struct xlb_http_resp resp = { .status = 200 };
    char saved = c->in.data[total];
    bool body_ok, closing = !c->keep_alive;
    const char *ct;
    int rc;

    /* The body is followed by a NUL for the handler's convenience; the
     * byte there (the next request's first, or the buffer's NUL) comes back
     * afterwards. */
    c->in.data[total] = '\0';
    xlb_buf_reset(&c->body);
    resp.body = c->body;
    s->stats.requests++;
    s->handler(&req, &resp, s->arg);
    /* Whatever buffer the handler left in resp.body (grown, or one of its
     * own after freeing ours) is ours now. */
    c->body = resp.body;
    if (c->state == C_CLOSED)
        return false;
    c->in.data[total] = saved;
    c->served++;

    if (!resp_valid(&resp, &ct_len, &xh_len)) {
        resp.status = 500;
        snprintf(resp.content_type, sizeof(resp.content_type), "text/plain; charset=utf-8");
        resp.extra_headers[0] = '\0';
        xh_len = 0;
        xlb_buf_reset(&c->body);
        xlb_buf_printf(&c->body, "the handler of %s %s produced an invalid response\n",
                       req.method, req.path);
    }
    ct = ct_len ? resp.content_type : "text/plain; charset=utf-8";
    body_ok = resp.status != 204 && resp.status != 304;

    rc = xlb_buf_printf(&c->pend, "HTTP/1.1 %d %s\r\n", resp.status, xlb_http_reason(resp.status));
    if (!rc && body_ok)
        rc = xlb_buf_printf(&c->pend, "Content-Type: %s\r\nContent-Length: %zu\r\n", ct,
                            c->body.len);
    if (!rc && (closing || !c->http11))
        rc = xlb_buf_printf(&c->pend, "Connection: %s\r\n",
                            closing ? "close" : "keep-alive");
    if (!rc && xh_len) {
        rc = xlb_buf_add(&c->pend, resp.extra_headers, xh_len);
        if (!rc && (xh_len < 2 || resp.extra_headers[xh_len - 1] != '\n'))
            rc = xlb_buf_add(&c->pend, "\r\n", 2);
    }
    if (!rc)
        rc = xlb_buf_add(&c->pend, "\r\n", 2);
    if (!rc && body_ok && !c->is_head)
        rc = xlb_buf_add(&c->pend, c->body.data, c->body.len);
    if (rc) {
        conn_close(c);
        return false;
    }

    /* Drop the request; what follows it is the next one. */
    memmove(c->in.data, c->in.data + total, c->in.len - total);
    c->in.len -= total;
    c->in.data[c->in.len] = '\0';
    req_reset(c);
    c->timer_kind = T_NONE;     /* the next request gets its own clock */
    if (closing)
        conn_finish(c);
    return true;
}

/* Handle every complete request in the input, then arrange timer, reads
 * and writes for what remains.  After the client's EOF, the requests it
 * completed are still answered; then the connection closes. */
static void conn_process(struct conn *c)
{
    struct xlb_httpd *s = c->srv;
    bool need_input = false;

    while (c->state == C_OPEN && c->pend.len < OUT_SOFT_MAX) {
        bool cont = false;
        int rc;

        if (!c->head_len) {
            rc = parse_head(c);
            if (rc == 0) {
                need_input = true;
                break;
            }
            if (rc > 1) {
                conn_error(c, rc, why_for(rc, !c->got_request_line));
                return;
            }
            if ((rc = check_headers(c, &cont))) {
                conn_error(c, rc, why_for(rc, false));
                return;
            }
            if (cont && !c->peer_eof && c->in.len < c->head_len + c->content_length &&
                xlb_buf_printf(&c->pend, "HTTP/1.1 100 Continue\r\n\r\n") < 0) {
                conn_close(c);
                return;
            }
        }
        if (c->in.len < c->head_len + c->content_length) {
            need_input = true;
            break;
        }
        if (!dispatch(c))
            return;
    }
    if (c->state == C_OPEN && c->peer_eof && need_input) {
        /* Nothing more will come; a partial request can never complete. */
        if (!c->writing && !c->pend.len) {
            conn_close(c);
            return;
        }
        conn_finish(c);
    }
    conn_flush(c);
    if (c->state == C_OPEN) {
        enum timer_kind want = (c->in.len || !c->served) ? T_REQ : T_IDLE;

        if (c->timer_kind != want)
            timer_set(c, want, want == T_REQ ? s->request_ms : s->idle_ms);
        if (c->pend.len >= OUT_SOFT_MAX)
            read_off(c);
        else
            read_on(c);
    }
}

/* ---- libuv callbacks -------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)hint;
    if (c->state != C_OPEN) {
        *buf = uv_buf_init(c->srv->discard, sizeof(c->srv->discard));
        return;
    }
    if (xlb_buf_reserve(&c->in, READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0);    /* read_cb gets UV_ENOBUFS */
        return;
    }
    /* Keep the last byte for the NUL. */
    *buf = uv_buf_init(c->in.data + c->in.len, (unsigned int)(c->in.cap - c->in.len - 1));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    (void)buf;
    if (c->state == C_CLOSED || nread == 0)
        return;
    if (nread < 0) {
        c->reading = false;
        if (nread != UV_EOF) {
            conn_close(c);
            return;
        }
        c->peer_eof = true;
        if (c->state == C_OPEN) {
            conn_process(c);    /* answers what is complete, then closes */
        } else if (c->shut) {
            conn_close(c);      /* lingering: the client is done */
        }
        /* else shutdown_cb closes once the last response is out. */
        return;
    }
    if (c->state != C_OPEN)
        return;                 /* closing: dropped */
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
    conn_process(c);
}

static void timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct xlb_httpd *s = c->srv;

    if (c->state == C_CLOSED)
        return;
    if (c->timer_kind != T_LINGER)
        s->stats.timeouts++;
    if (c->timer_kind == T_REQ && c->in.len) {
        conn_error(c, 408, "the request did not arrive in time");
        return;
    }
    conn_close(c);
}

static void reject_close_cb(uv_handle_t *h)
{
    free(h);
}

static void accept_cb(uv_stream_t *ls, int status)
{
    struct xlb_httpd *s = ls->data;
    struct conn *c;

    if (status < 0 || s->stopping)
        return;
    if (s->nconns >= MAX_CONNS) {
        /* Take it off the backlog and close it, else libuv stops
         * accepting altogether. */
        uv_tcp_t *t = malloc(sizeof(*t));

        if (t && uv_tcp_init(s->loop, t) == 0) {
            uv_accept(ls, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, reject_close_cb);
        } else {
            free(t);
        }
        s->stats.rejected++;
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    if (uv_tcp_init(s->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->srv = s;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    req_reset(c);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    s->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    conn_process(c);            /* starts the request timer and reading */
}

/* ---- public ----------------------------------------------------------- */

static void listener_close_cb(uv_handle_t *h)
{
    struct xlb_httpd *s = h->data;

    s->listener_open = false;
    srv_maybe_free(s);
}

struct xlb_httpd *xlb_httpd_start(uv_loop_t *loop, const struct xlb_cfg_listen *l,
                                  xlb_http_handler h, void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t slen;
    char abuf[XLB_ADDR_STRLEN], where[XLB_ADDR_STRLEN + 16];
    struct xlb_httpd *s = NULL;
    int fd = -1, one = 1, e;

    if (err && errlen)
        err[0] = '\0';
    if (!loop || !l || !h || (l->family != XLB_FAMILY_V4 && l->family != XLB_FAMILY_V6)) {
        if (err)
            snprintf(err, errlen, "cannot start the HTTP server: no listen address given");
        errno = EINVAL;
        return NULL;
    }
    xlb_addr_str(&l->addr, l->family, abuf, sizeof(abuf));
    snprintf(where, sizeof(where), l->family == XLB_FAMILY_V6 ? "[%s]:%u" : "%s:%u", abuf,
             l->port);
    if (l->family == XLB_FAMILY_V4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(l->port);
        memcpy(&sin->sin_addr, &l->addr.addr_be[0], 4);
        slen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(l->port);
        memcpy(&sin6->sin6_addr, l->addr.addr_be, 16);
        slen = sizeof(*sin6);
    }

    /* The socket is made and bound here, before libuv sees it, so that a
     * failure leaves no handle behind that the loop would have to close. */
    s = calloc(1, sizeof(*s));
    if (!s) {
        e = ENOMEM;
        goto fail;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 128) < 0) {
        e = errno;
        goto fail;
    }
    slen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0) {
        e = errno;
        goto fail;
    }
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    s->loop = loop;
    s->handler = h;
    s->arg = arg;
    s->request_ms = XLB_HTTPD_REQUEST_MS;
    s->idle_ms = XLB_HTTPD_IDLE_MS;
    if ((e = -uv_tcp_init(loop, &s->listener)))
        goto fail;
    s->listener.data = s;
    s->listener_open = true;
    if ((e = -uv_tcp_open(&s->listener, fd)) == 0) {
        fd = -1;                /* the handle owns it */
        e = -uv_listen((uv_stream_t *)&s->listener, 128, accept_cb);
    }
    if (e) {
        /* Rare: the handle exists and must close through the loop. */
        if (err)
            snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(e));
        if (fd >= 0)
            close(fd);
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, listener_close_cb);
        errno = e;
        return NULL;
    }
    return s;

fail:
    if (err)
        snprintf(err, errlen, "cannot listen on %s: %s%s", where, strerror(e),
                 e == EADDRINUSE ? " (another process has it; change the listen port)" :
                 e == EADDRNOTAVAIL ? " (no interface of this host has that address)" : "");
    if (fd >= 0)
        close(fd);
    free(s);
    errno = e;
    return NULL;
}

void xlb_httpd_stop(struct xlb_httpd *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, listener_close_cb);
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
}

uint16_t xlb_httpd_port(const struct xlb_httpd *s)
{
    return s ? s->port : 0;
}

void xlb_httpd_set_timeouts(struct xlb_httpd *s, uint32_t request_ms, uint32_t idle_ms)
{
    if (!s)
        return;
    if (request_ms)
        s->request_ms = request_ms;
    if (idle_ms)
        s->idle_ms = idle_ms;
}

void xlb_httpd_get_stats(const struct xlb_httpd *s, struct xlb_httpd_stats *st)
{
    if (s)
        *st = s->stats;
    else
        memset(st, 0, sizeof(*st));
}
