// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The control-plane HTTP server and the blocking client.
 *
 * Server tests run the server on 127.0.0.1 port 0 (or ::1) on a fresh loop
 * in the test's thread while a client thread speaks raw HTTP over blocking
 * sockets.  The client thread records its first failed check (it must not
 * assert itself: Criterion's asserts belong to the test's thread) and then
 * wakes the loop through a uv_async_t, whose callback stops the server.  The
 * test then asserts the client's verdict, what the handler saw, the server's
 * counters, and that uv_loop_close() returns 0, i.e. no handle was leaked.
 * A watchdog timer stops everything if a test hangs.
 *
 * Client tests run xlb_http_request() against the server, against a port
 * with nothing listening, against a peer that never answers, and against a
 * canned-response peer for framings the server does not produce (chunked,
 * to-EOF, 100 Continue first) and for broken responses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "xlb_httpd.h"

#define WATCHDOG_MS 8000
#define RBUF 65536

/* ---- test context ----------------------------------------------------- */

struct tctx {
    uv_loop_t loop;
    struct xlb_httpd *srv;
    uv_async_t done;
    uv_timer_t watchdog;
    pthread_t th;
    uint16_t port;
    bool v6;
    uint32_t req_ms, idle_ms;
    void (*client)(struct tctx *t);
    bool signalled;
    bool watchdog_fired;
    struct xlb_httpd_stats stats;

    /* Seen by the handler (loop thread; read after the join). */
    int calls;
    char method[16], path[256], query[256], host[128], xtest[128], auth[128];
    char body[64];
    size_t body_len;
    bool body_nul;

    /* The client thread's verdict. */
    char fail[512];
};

static void tfail(struct tctx *t, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tfail(struct tctx *t, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->fail[0])
        return;
    n = snprintf(t->fail, sizeof(t->fail), "line %d: ", line);
    va_start(ap, fmt);
    vsnprintf(t->fail + n, sizeof(t->fail) - (size_t)n, fmt, ap);
    va_end(ap);
}

#define TCHECK(t, cond, ...)                        \
    do {                                            \
        if (!(cond)) {                              \
            tfail((t), __LINE__, __VA_ARGS__);      \
            return;                                 \
        }                                           \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- handler ---------------------------------------------------------- */

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "(none)");
}

static void handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg)
{
    struct tctx *t = arg;
    const char *ct;

    t->calls++;
    copy(t->method, sizeof(t->method), req->method);
    copy(t->path, sizeof(t->path), req->path);
    copy(t->query, sizeof(t->query), req->query);
    copy(t->host, sizeof(t->host), req->header(req, "host"));
    copy(t->xtest, sizeof(t->xtest), req->header(req, "X-TEST"));
    copy(t->auth, sizeof(t->auth), req->header(req, "Authorization"));
    t->body_len = req->body_len;
    memcpy(t->body, req->body, req->body_len < sizeof(t->body) ? req->body_len : sizeof(t->body));
    t->body_nul = req->body[req->body_len] == '\0';

    if (!strcmp(req->path, "/hello")) {
        xlb_buf_printf(&resp->body, "hello\n");
    } else if (!strcmp(req->path, "/echo")) {
        ct = req->header(req, "content-type");
        if (ct)
            snprintf(resp->content_type, sizeof(resp->content_type), "%s", ct);
        xlb_buf_add(&resp->body, req->body, req->body_len);
    } else if (!strncmp(req->path, "/p/", 3)) {
        xlb_buf_printf(&resp->body, "%s %s", req->method, req->path);
    } else if (!strcmp(req->path, "/big")) {
        /* /big?SIZE,LETTER */
        size_t n = strtoul(req->query, NULL, 10);
        const char *comma = strchr(req->query, ',');

        if (xlb_buf_reserve(&resp->body, n) == 0) {
            memset(resp->body.data, comma ? comma[1] : 'x', n);
            resp->body.len = n;
            resp->body.data[n] = '\0';
        }
    } else if (!strcmp(req->path, "/nocontent")) {
        resp->status = 204;
    } else if (!strcmp(req->path, "/extra")) {
        resp->status = 401;
        snprintf(resp->extra_headers, sizeof(resp->extra_headers),
                 "WWW-Authenticate: Bearer realm=\"xlb\"\r\nX-Two: 2");
        xlb_buf_printf(&resp->body, "no\n");
    } else if (!strcmp(req->path, "/badstatus")) {
        resp->status = 99;
    } else if (!strcmp(req->path, "/badheader")) {
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "X-A: 1\nX-B: 2\r\n");
    } else if (!strcmp(req->path, "/ownbuf")) {
        struct xlb_buf b = { 0 };

        xlb_buf_printf(&b, "own buffer");
        xlb_buf_free(&resp->body);
        resp->body = b;
    } else if (!strcmp(req->path, "/stop")) {
        xlb_httpd_stop(t->srv);
        t->srv = NULL;
    } else {
        resp->status = 404;
        xlb_buf_printf(&resp->body, "no such page\n");
    }
}

/* ---- running a server test -------------------------------------------- */

static void stop_all(struct tctx *t)
{
    if (t->srv) {
        xlb_httpd_get_stats(t->srv, &t->stats);
        xlb_httpd_stop(t->srv);
        t->srv = NULL;
    }
}

static void done_cb(uv_async_t *a)
{
    struct tctx *t = a->data;

    stop_all(t);
    uv_close((uv_handle_t *)&t->done, NULL);
    uv_close((uv_handle_t *)&t->watchdog, NULL);
}

static void watchdog_cb(uv_timer_t *tm)
{
    struct tctx *t = tm->data;

    t->watchdog_fired = true;
    stop_all(t);
}

static void signal_done(struct tctx *t)
{
    if (!t->signalled) {
        t->signalled = true;
        uv_async_send(&t->done);
    }
}

static void *thread_main(void *arg)
{
    struct tctx *t = arg;

    t->client(t);
    signal_done(t);
    return NULL;
}

static void run(struct tctx *t, void (*client)(struct tctx *t))
{
    struct xlb_cfg_listen l = { .set = true, .family = XLB_FAMILY_V4 };
    char err[256];

    if (t->v6) {
        l.family = XLB_FAMILY_V6;
        inet_pton(AF_INET6, "::1", l.addr.addr_be);
    } else {
        l.addr.addr_be[0] = htonl(INADDR_LOOPBACK);
    }
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    t->srv = xlb_httpd_start(&t->loop, &l, handler, t, err, sizeof(err));
    cr_assert(t->srv, "start: %s", err);
    t->port = xlb_httpd_port(t->srv);
    cr_assert_neq(t->port, 0);
    xlb_httpd_set_timeouts(t->srv, t->req_ms, t->idle_ms);
    t->client = client;
    t->done.data = t->watchdog.data = t;
    cr_assert_eq(uv_async_init(&t->loop, &t->done, done_cb), 0);
    cr_assert_eq(uv_timer_init(&t->loop, &t->watchdog), 0);
    uv_timer_start(&t->watchdog, watchdog_cb, WATCHDOG_MS, 0);
    cr_assert_eq(pthread_create(&t->th, NULL, thread_main, t), 0);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    pthread_join(t->th, NULL);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "a handle is still open after the server stopped");
    cr_assert_not(t->watchdog_fired, "the test hung (watchdog)");
    cr_assert_eq(t->fail[0], '\0', "client: %s", t->fail);
}

/* ---- raw client side (client thread) ---------------------------------- */

struct rconn {
    int fd;
    char buf[RBUF];
    size_t len;
};

static int tcp_connect(uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 3 };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_n(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_s(int fd, const char *s)
{
    return send_n(fd, s, strlen(s));
}

/* Read until the peer closes: 1 on EOF or reset, 0 on timeout. */
static int read_eof(struct rconn *c)
{
    for (;;) {
        ssize_t r;

        if (c->len == sizeof(c->buf) - 1)
            c->len = 0;         /* keep reading; the content is not needed */
        r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        if (r < 0)
            return 0;
        c->len += (size_t)r;
    }
    c->buf[c->len] = '\0';
    return 1;
}

/*
 * Take one response off the connection into out (NUL-terminated): the head
 * and Content-Length bytes of body (none when no_body).  Returns its
 * length, or -1 when the connection ended or timed out first.
 */
static ssize_t next_response(struct rconn *c, char *out, size_t cap, bool no_body)
{
    for (;;) {
        char *end;

        c->buf[c->len] = '\0';
        end = strstr(c->buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - c->buf) + 4, clen = 0, total;
            char *cl = strstr(c->buf, "\r\nContent-Length: ");

            if (cl && cl < end && !no_body)
                clen = strtoul(cl + 18, NULL, 10);
            total = head + clen;
            if (c->len >= total) {
                if (total >= cap)
                    return -1;
                memcpy(out, c->buf, total);
                out[total] = '\0';
                memmove(c->buf, c->buf + total, c->len - total);
                c->len -= total;
                return (ssize_t)total;
            }
        }
        if (c->len == sizeof(c->buf) - 1)
            return -1;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);

        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

static int status_of(const char *resp)
{
    int st = -1;

    if (sscanf(resp, "HTTP/1.1 %d ", &st) != 1)
        return -1;
    return st;
}

static struct rconn *rc_open(uint16_t port)
{
    struct rconn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->fd = tcp_connect(port);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void rc_close(struct rconn *c)
{
    if (c) {
        close(c->fd);
        free(c);
    }
}

/* One whole exchange: send n bytes of req (n == 0: a C string) on a new
 * connection and read to EOF; out gets what came back, NUL-terminated. */
static bool exchange_n(struct tctx *t, const char *req, size_t n, char *out, size_t cap,
                       size_t *outlen)
{
    struct rconn *c = rc_open(t->port);
    bool ok;
    size_t len;

    if (!c)
        return false;
    ok = send_n(c->fd, req, n ? n : strlen(req)) && read_eof(c);
    len = c->len < cap - 1 ? c->len : cap - 1;
    memcpy(out, c->buf, len);
    out[len] = '\0';
    if (outlen)
        *outlen = len;
    rc_close(c);
    return ok;
}

static bool exchange(struct tctx *t, const char *req, size_t n, char *out, size_t cap)
{
    return exchange_n(t, req, n, out, cap, NULL);
}

/* ---- server: basic requests ------------------------------------------- */

static void c_get(struct tctx *t)
{
    static const char req[] = "GET /hello?x=1&y=%20 HTTP/1.1\r\nHost: test\r\n"
                              "Connection: close\r\n\r\n";
    char out[RBUF];

    TCHECK(t, exchange(t, req, sizeof(req) - 1, out, sizeof(out)), "no EOF after the response");
    TCHECK(t, !strcmp(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           "Content-Length: 6\r\nConnection: close\r\n\r\nhello\n"),
           "response: [%s]", out);
}

Test(httpd, get_exact_response)
{
    struct tctx t = { 0 };

    run(&t, c_get);
    cr_expect_eq(t.calls, 1);
    cr_expect_str_eq(t.method, "GET");
    cr_expect_str_eq(t.path, "/hello");
    cr_expect_str_eq(t.query, "x=1&y=%20");
    cr_expect_str_eq(t.host, "test");
    cr_expect_eq(t.body_len, 0);
    cr_expect(t.body_nul);
    cr_expect_eq(t.stats.accepted, 1);
    cr_expect_eq(t.stats.requests, 1);
    cr_expect_eq(t.stats.errors, 0);
}

static void c_head(struct tctx *t)
{
    static const char req[] = "HEAD /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    char out[RBUF];

    TCHECK(t, exchange(t, req, sizeof(req) - 1, out, sizeof(out)), "no EOF");
    TCHECK(t, !strcmp(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           "Content-Length: 6\r\nConnection: close\r\n\r\n"),
           "response: [%s]", out);
}

Test(httpd, head_has_headers_without_body)
{
    struct tctx t = { 0 };

    run(&t, c_head);
    cr_expect_eq(t.calls, 1);
    cr_expect_str_eq(t.method, "HEAD");
}

static void c_post(struct tctx *t)
{
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                              "x-test: \t spaced  value \t\r\nContent-Length: 8\r\n"
                              "Connection: close\r\n\r\n{\"a\":\0001}";
    static const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 8\r\nConnection: close\r\n\r\n{\"a\":\0001}";
    char out[RBUF];
    size_t len;

    TCHECK(t, exchange_n(t, req, sizeof(req) - 1, out, sizeof(out), &len), "no EOF");
    TCHECK(t, len == sizeof(want) - 1 && !memcmp(out, want, len), "response: [%s]", out);
}

Test(httpd, post_body_reaches_handler)
{
    struct tctx t = { 0 };

    run(&t, c_post);
    cr_expect_eq(t.calls, 1);
    cr_expect_str_eq(t.method, "POST");
    cr_expect_eq(t.body_len, 8);
    cr_expect_eq(memcmp(t.body, "{\"a\":\0001}", 8), 0);
    cr_expect(t.body_nul, "the body is followed by a NUL");
    cr_expect_str_eq(t.xtest, "spaced  value", "OWS trimmed, inner blanks kept");
}

static void c_response_kinds(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /extra HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /badstatus HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /badheader HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /ownbuf HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /nothing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
           "send");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no 204");
    TCHECK(t, !strcmp(out, "HTTP/1.1 204 No Content\r\n\r\n"), "204: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no 401");
    TCHECK(t, !strcmp(out, "HTTP/1.1 401 Unauthorized\r\n"
                           "Content-Type: text/plain; charset=utf-8\r\n"
                           "Content-Length: 3\r\nWWW-Authenticate: Bearer realm=\"xlb\"\r\n"
                           "X-Two: 2\r\n\r\nno\n"), "401: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no answer to status 99");
    TCHECK(t, status_of(out) == 500 && strstr(out, "invalid response"), "status 99: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no answer to a bare LF header");
    TCHECK(t, status_of(out) == 500 && !strstr(out, "X-A"), "bare LF header: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no answer to /ownbuf");
    TCHECK(t, strstr(out, "Content-Length: 10\r\n") && strstr(out, "\r\n\r\nown buffer"),
           "own buffer: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no 404");
    TCHECK(t, status_of(out) == 404 && strstr(out, "Connection: close\r\n"), "404: [%s]", out);
    TCHECK(t, read_eof(c) && c->len == 0, "no EOF after Connection: close");
    rc_close(c);
}

Test(httpd, response_shapes_and_handler_mistakes)
{
    struct tctx t = { 0 };

    run(&t, c_response_kinds);
    cr_expect_eq(t.calls, 6);
    cr_expect_eq(t.stats.accepted, 1);
}

/* ---- server: persistence ---------------------------------------------- */

static void c_keepalive(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /p/one HTTP/1.1\r\nHost: h\r\n\r\n"), "send 1");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no first response");
    TCHECK(t, status_of(out) == 200 && !strstr(out, "Connection:") &&
              strstr(out, "\r\n\r\nGET /p/one"), "first: [%s]", out);
    TCHECK(t, send_s(c->fd, "GET /p/two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
           "send 2");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no second response");
    TCHECK(t, strstr(out, "Connection: close\r\n") && strstr(out, "\r\n\r\nGET /p/two"),
           "second: [%s]", out);
    TCHECK(t, read_eof(c) && c->len == 0, "no EOF after the second response");
    rc_close(c);
}

Test(httpd, keepalive_reuses_the_connection)
{
    struct tctx t = { 0 };

    run(&t, c_keepalive);
    cr_expect_eq(t.calls, 2);
    cr_expect_eq(t.stats.accepted, 1, "both requests on one connection");
    cr_expect_eq(t.stats.requests, 2);
}

static void c_pipeline(struct tctx *t)
{
    static const char reqs[] = "GET /p/a HTTP/1.1\r\nHost: h\r\n\r\n"
                               "POST /p/b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                               "\r\n"   /* a stray CRLF between requests is ignored */
                               "HEAD /p/c HTTP/1.1\r\nHost: h\r\n\r\n"
                               "GET /p/d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                               "GET /p/never HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    TCHECK(t, send_n(c->fd, reqs, sizeof(reqs) - 1), "send");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no response 1");
    TCHECK(t, strstr(out, "\r\n\r\nGET /p/a"), "1: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no response 2");
    TCHECK(t, strstr(out, "\r\n\r\nPOST /p/b"), "2: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), true) > 0, "no response 3");
    TCHECK(t, strstr(out, "Content-Length: 9\r\n") && !strstr(out, "/p/c"), "3: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no response 4");
    TCHECK(t, strstr(out, "\r\n\r\nGET /p/d") && strstr(out, "Connection: close"),
           "4: [%s]", out);
    TCHECK(t, read_eof(c) && c->len == 0, "bytes after the last response: [%s]", c->buf);
    rc_close(c);
}

Test(httpd, pipelined_requests_answered_in_order)
{
    struct tctx t = { 0 };

    run(&t, c_pipeline);
    cr_expect_eq(t.calls, 4, "nothing after Connection: close is handled");
    cr_expect_str_eq(t.path, "/p/d");
}

/* Read one response whose body may be large: its status, Content-Length
 * and the first body byte; the body is read and dropped.  false when the
 * connection ends first. */
static bool big_response(struct rconn *c, int *status, size_t *clen, char *first)
{
    char *end, *cl;
    size_t head, left;

    for (;;) {
        c->buf[c->len] = '\0';
        if ((end = strstr(c->buf, "\r\n\r\n")))
            break;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);

        if (r <= 0)
            return false;
        c->len += (size_t)r;
    }
    head = (size_t)(end - c->buf) + 4;
    *status = status_of(c->buf);
    cl = strstr(c->buf, "\r\nContent-Length: ");
    *clen = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
    *first = '\0';
    left = *clen;
    for (;;) {
        size_t take = c->len < left ? c->len : left;

        if (take && left == *clen)
            *first = c->buf[0];
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
        left -= take;
        if (!left)
            return true;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);

        if (r <= 0)
            return false;
        c->len += (size_t)r;
    }
}

static void c_pipeline_unread(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    struct xlb_buf reqs = { 0 };
    const int n = 8;

    TCHECK(t, c, "connect");
    /* The first two in one write, the others one by one while the server is
     * still writing: they arrive while output is waiting. */
    for (int i = 0; i < n; i++) {
        xlb_buf_printf(&reqs, "GET /big?1048576,%c HTTP/1.1\r\nHost: h\r\n%s\r\n", 'a' + i,
                       i == n - 1 ? "Connection: close\r\n" : "");
        if (i == 0)
            continue;
        TCHECK(t, send_n(c->fd, reqs.data, reqs.len), "send %d", i);
        xlb_buf_reset(&reqs);
        usleep(20000);
    }
    xlb_buf_free(&reqs);
    usleep(100000);             /* let the server fill the socket and hold back */
    for (int i = 0; i < n; i++) {
        int st;
        size_t clen;
        char first;

        TCHECK(t, big_response(c, &st, &clen, &first), "response %d missing", i);
        TCHECK(t, st == 200 && clen == 1048576 && first == 'a' + i,
               "response %d: status %d, %zu bytes, first '%c'", i, st, clen, first);
    }
    TCHECK(t, read_eof(c) && c->len == 0, "bytes after the last response");
    rc_close(c);
}

Test(httpd, pipelining_without_reading_holds_back)
{
    struct tctx t = { 0 };

    run(&t, c_pipeline_unread);
    cr_expect_eq(t.calls, 8);
}

static void c_half_close(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    int st;
    size_t clen;
    char first;

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /big?6000000,q HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /big?10,r HTTP/1.1\r\nHost: h\r\n\r\n"), "send");
    shutdown(c->fd, SHUT_WR);   /* the client is done sending, still reading */
    TCHECK(t, big_response(c, &st, &clen, &first), "first response missing");
    TCHECK(t, st == 200 && clen == 6000000 && first == 'q', "first: %d %zu %c", st, clen, first);
    TCHECK(t, big_response(c, &st, &clen, &first), "second response missing");
    TCHECK(t, st == 200 && clen == 10 && first == 'r', "second: %d %zu %c", st, clen, first);
    TCHECK(t, read_eof(c) && c->len == 0, "no EOF after the answers");
    rc_close(c);
}

Test(httpd, half_closed_client_gets_its_answers)
{
    struct tctx t = { 0 };

    run(&t, c_half_close);
    cr_expect_eq(t.calls, 2);
}

static void c_absolute_form(struct tctx *t)
{
    char out[RBUF];

    TCHECK(t, exchange(t, "GET http://example.net:81/p/abs?q=1 HTTP/1.1\r\nHost: example.net:81\r\n"
                          "Connection: close\r\n\r\n", 0, out, sizeof(out)), "no EOF");
    TCHECK(t, status_of(out) == 200 && strstr(out, "\r\n\r\nGET /p/abs"), "[%s]", out);
    TCHECK(t, exchange(t, "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0, out,
                       sizeof(out)), "no EOF");
    TCHECK(t, status_of(out) == 404, "OPTIONS *: [%s]", out);
}

Test(httpd, absolute_form_and_asterisk_targets)
{
    struct tctx t = { 0 };

    run(&t, c_absolute_form);
    cr_expect_eq(t.calls, 2);
    cr_expect_str_eq(t.path, "*");
    cr_expect_str_eq(t.method, "OPTIONS");
}

static void c_http10(struct tctx *t)
{
    struct rconn *c;
    char out[RBUF];

    /* Without keep-alive: closed after the response. */
    TCHECK(t, exchange(t, "GET /hello HTTP/1.0\r\n\r\n", 0, out, sizeof(out)), "no EOF (1.0)");
    TCHECK(t, status_of(out) == 200 && strstr(out, "Connection: close\r\n") &&
              strstr(out, "\r\n\r\nhello\n"), "1.0: [%s]", out);

    /* With keep-alive: kept, and says so. */
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /p/x HTTP/1.0\r\nConnection: TE,  Keep-Alive\r\n\r\n"), "send");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no keep-alive response");
    TCHECK(t, strstr(out, "Connection: keep-alive\r\n"), "1.0 keep-alive: [%s]", out);
    TCHECK(t, send_s(c->fd, "GET /p/y HTTP/1.0\r\n\r\n"), "send 2");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no second response");
    TCHECK(t, strstr(out, "Connection: close\r\n") && strstr(out, "GET /p/y"), "2: [%s]", out);
    TCHECK(t, read_eof(c), "no EOF");
    rc_close(c);

    /* A later 1.x minor version is treated as 1.1. */
    TCHECK(t, exchange(t, "GET /hello HTTP/1.7\r\nHost: h\r\nConnection: close\r\n\r\n", 0, out,
                       sizeof(out)), "no EOF (1.7)");
    TCHECK(t, status_of(out) == 200, "1.7: [%s]", out);
}

Test(httpd, http10_and_keepalive_header)
{
    struct tctx t = { 0 };

    run(&t, c_http10);
    cr_expect_eq(t.calls, 4);
    cr_expect_eq(t.stats.accepted, 3);
}

static void c_continue(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                            "Content-Length: 4\r\nConnection: close\r\n\r\n"), "send head");
    TCHECK(t, next_response(c, out, sizeof(out), true) > 0, "no 100 Continue");
    TCHECK(t, !strcmp(out, "HTTP/1.1 100 Continue\r\n\r\n"), "interim: [%s]", out);
    TCHECK(t, send_s(c->fd, "ping"), "send body");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no final response");
    TCHECK(t, status_of(out) == 200 && strstr(out, "\r\n\r\nping"), "final: [%s]", out);
    rc_close(c);
}

Test(httpd, expect_100_continue)
{
    struct tctx t = { 0 };

    run(&t, c_continue);
    cr_expect_eq(t.calls, 1);
}

/* ---- server: malformed requests --------------------------------------- */

struct bad_case {
    const char *name;
    const char *req;
    int status;
};

static const struct bad_case bad_cases[] = {
    { "bare LF after the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400 },
    { "bare LF after a header", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400 },
    { "bare LF ending the head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400 },
    { "bare CR inside a line", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400 },
    { "Content-Length with a letter", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12a\r\n\r\n",
      400 },
    { "negative Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400 },
    { "Content-Length with a sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
      400 },
    { "Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400 },
    { "empty Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400 },
    { "duplicate Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
      "content-length: 3\r\n\r\nabc", 400 },
    { "Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n", 501 },
    { "Transfer-Encoding with Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3"
      "\r\nTransfer-Encoding: identity\r\n\r\nabc", 501 },
    { "invalid method token", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "tab for space", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "no version", "GET /\r\nHost: h\r\n\r\n", 400 },
    { "bad version text", "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400 },
    { "bad version digits", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400 },
    { "version with trailing text", "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", 400 },
    { "lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
    { "HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505 },
    { "target not a path", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "absolute form without a path", "GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "other scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "missing Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400 },
    { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
    { "space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400 },
    { "header without colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400 },
    { "empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400 },
    { "non-token header name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", 400 },
    { "folded header", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400 },
    { "control byte in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f" "b\r\n\r\n", 400 },
    { "NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400 },
    { "unknown expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417 },
    { "body over 1 MiB", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n", 413 },
    { "huge Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
      "99999999999999999999999999999\r\n\r\n", 413 },
};

/* The NUL case needs its length: every case is sent up to its last CRLF
 * pair plus any body, so lengths are computed from the literal table. */
static size_t case_len(const struct bad_case *bc)
{
    if (strstr(bc->name, "NUL"))
        return strlen(bc->req) + 1 + strlen(bc->req + strlen(bc->req) + 1);
    return strlen(bc->req);
}

static void c_bad(struct tctx *t)
{
    char out[RBUF];

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        char want[32];

        TCHECK(t, exchange(t, bc->req, case_len(bc), out, sizeof(out)), "%s: no EOF", bc->name);
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", bc->status);
        TCHECK(t, !strncmp(out, want, strlen(want)), "%s: want %d, got [%s]", bc->name,
               bc->status, out);
        TCHECK(t, strstr(out, "\r\nConnection: close\r\n"), "%s: no Connection: close [%s]",
               bc->name, out);
    }
}

Test(httpd, malformed_requests_rejected_and_closed)
{
    struct tctx t = { 0 };

    run(&t, c_bad);
    cr_expect_eq(t.calls, 0, "the handler never sees a bad request");
    cr_expect_eq(t.stats.errors, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

static void c_limits(struct tctx *t)
{
    struct xlb_buf b = { 0 };
    struct rconn *c;
    char out[RBUF];
    char *big;

    /* Headers over 8 KiB: 431. */
    xlb_buf_printf(&b, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    for (int i = 0; i < 9000; i++)
        xlb_buf_add(&b, "a", 1);
    xlb_buf_printf(&b, "\r\n\r\n");
    TCHECK(t, exchange(t, b.data, b.len, out, sizeof(out)), "431: no EOF");
    TCHECK(t, status_of(out) == 431, "big header: [%s]", out);

    /* Exactly 8 KiB of head is fine. */
    xlb_buf_reset(&b);
    xlb_buf_printf(&b, "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Fill: ");
    while (b.len < 8192 - 4)
        xlb_buf_add(&b, "b", 1);
    xlb_buf_printf(&b, "\r\n\r\n");
    TCHECK(t, b.len == 8192, "head of %zu bytes", b.len);
    TCHECK(t, exchange(t, b.data, b.len, out, sizeof(out)), "8 KiB head: no EOF");
    TCHECK(t, status_of(out) == 200, "8 KiB head: [%s]", out);

    /* More than 64 header fields: 431. */
    xlb_buf_reset(&b);
    xlb_buf_printf(&b, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 70; i++)
        xlb_buf_printf(&b, "X-%d: v\r\n", i);
    xlb_buf_printf(&b, "\r\n");
    TCHECK(t, exchange(t, b.data, b.len, out, sizeof(out)), "many fields: no EOF");
    TCHECK(t, status_of(out) == 431, "many fields: [%s]", out);

    /* A request line over 8 KiB: 414. */
    xlb_buf_reset(&b);
    xlb_buf_printf(&b, "GET /");
    for (int i = 0; i < 9000; i++)
        xlb_buf_add(&b, "p", 1);
    xlb_buf_printf(&b, " HTTP/1.1\r\nHost: h\r\n\r\n");
    TCHECK(t, exchange(t, b.data, b.len, out, sizeof(out)), "414: no EOF");
    TCHECK(t, status_of(out) == 414, "long target: [%s]", out);

    /* A body over the limit with the body arriving: 413, read after the
     * client has sent 256 KiB of it (the server drops what still comes). */
    big = calloc(1, 256 * 1024);
    TCHECK(t, big, "calloc");
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n"),
           "send head");
    TCHECK(t, send_n(c->fd, big, 256 * 1024), "send body part");
    free(big);
    TCHECK(t, read_eof(c), "413: no EOF");
    TCHECK(t, status_of(c->buf) == 413 && strstr(c->buf, "Connection: close"), "413: [%s]",
           c->buf);
    rc_close(c);

    /* The same when the rest of the body comes after the server has
     * answered and sent its FIN: it must read and drop it, not reset the
     * connection under the answer. */
    big = calloc(1, 64 * 1024);
    TCHECK(t, big, "calloc");
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n"),
           "send head");
    usleep(100000);
    send_n(c->fd, big, 64 * 1024);
    usleep(50000);
    send_n(c->fd, big, 64 * 1024);
    free(big);
    TCHECK(t, read_eof(c), "late body: no EOF");
    TCHECK(t, status_of(c->buf) == 413, "late body: [%s]", c->buf);
    rc_close(c);

    /* Exactly 1 MiB of body is accepted and echoed, on a kept connection
     * with a request pipelined behind it: that one waits while the big
     * answer is being written, then gets its turn. */
    big = malloc(1u << 20);
    TCHECK(t, big, "malloc");
    memset(big, 'z', 1u << 20);
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n"),
           "send head");
    TCHECK(t, send_n(c->fd, big, 1u << 20), "send 1 MiB");
    free(big);
    TCHECK(t, send_s(c->fd, "GET /p/after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
           "send the next request");
    {
        static const char head1[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                    "Content-Length: 1048576\r\n\r\n";
        static const char resp2[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                    "Content-Length: 12\r\nConnection: close\r\n\r\nGET /p/after";
        size_t total = 0, want = sizeof(head1) - 1 + (1u << 20) + sizeof(resp2) - 1;
        char first[sizeof(head1)] = "", last[sizeof(resp2)] = "";

        for (;;) {
            ssize_t r = recv(c->fd, c->buf, sizeof(c->buf), 0);
            size_t keep;

            if (r <= 0)
                break;
            for (ssize_t i = 0; i < r; i++, total++)
                if (total < sizeof(head1) - 1)
                    first[total] = c->buf[i];
            /* The last bytes seen, as a sliding window. */
            keep = (size_t)r < sizeof(resp2) - 1 ? (size_t)r : sizeof(resp2) - 1;
            memmove(last, last + keep, sizeof(resp2) - 1 - keep);
            memcpy(last + sizeof(resp2) - 1 - keep, c->buf + r - (ssize_t)keep, keep);
        }
        TCHECK(t, !strcmp(first, head1), "1 MiB echo head: [%s]", first);
        TCHECK(t, total == want, "%zu bytes, want %zu", total, want);
        TCHECK(t, !strcmp(last, resp2), "the pipelined answer: [%s]", last);
    }
    rc_close(c);
    xlb_buf_free(&b);
}

Test(httpd, size_limits)
{
    struct tctx t = { 0 };

    run(&t, c_limits);
    cr_expect_eq(t.calls, 3);
    cr_expect_eq(t.stats.errors, 5);
}

static void c_good_then_bad(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /p/ok HTTP/1.1\r\nHost: h\r\n\r\nGET /p/bad HTTP/1.1\n\n"),
           "send");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no first response");
    TCHECK(t, status_of(out) == 200, "first: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no second response");
    TCHECK(t, status_of(out) == 400, "second: [%s]", out);
    TCHECK(t, read_eof(c), "no EOF");
    rc_close(c);
}

Test(httpd, error_after_a_good_request_on_one_connection)
{
    struct tctx t = { 0 };

    run(&t, c_good_then_bad);
    cr_expect_eq(t.calls, 1);
    cr_expect_eq(t.stats.errors, 1);
}

/* ---- server: incremental parsing -------------------------------------- */

static void c_bytewise(struct tctx *t)
{
    static const char req[] = "\r\nPOST /echo?q=1 HTTP/1.1\r\nHost: bytes\r\nX-Test: split\r\n"
                              "Content-Length: 11\r\n\r\nhello world"
                              "GET /p/after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    struct rconn *c = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, c, "connect");
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        TCHECK(t, send_n(c->fd, req + i, 1), "send byte %zu", i);
        usleep(1000);
    }
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no first response");
    TCHECK(t, status_of(out) == 200 && strstr(out, "Content-Length: 11\r\n") &&
              strstr(out, "\r\n\r\nhello world"), "first: [%s]", out);
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no second response");
    TCHECK(t, strstr(out, "\r\n\r\nGET /p/after"), "second: [%s]", out);
    TCHECK(t, read_eof(c), "no EOF");
    rc_close(c);
}

Test(httpd, request_split_byte_by_byte, .timeout = 15)
{
    struct tctx t = { 0 };

    run(&t, c_bytewise);
    cr_expect_eq(t.calls, 2);
    cr_expect_eq(t.stats.accepted, 1);
}

/* ---- server: timeouts ------------------------------------------------- */

static void c_request_timeout(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    long t0 = now_ms(), dt;

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n"), "send");
    TCHECK(t, read_eof(c), "no EOF");
    dt = now_ms() - t0;
    TCHECK(t, status_of(c->buf) == 408 && strstr(c->buf, "Connection: close"), "[%s]", c->buf);
    TCHECK(t, dt >= 120 && dt < 1300, "408 after %ld ms (limit 150 ms)", dt);
    rc_close(c);

    /* A slow sender does not extend its time: one byte per 40 ms. */
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    t0 = now_ms();
    {
        static const char req[] = "GET /hello HTTP/1.1\r\nHost: h\r\nX-Slow: yes\r\n\r\n";
        size_t i;

        for (i = 0; i < sizeof(req) - 1; i++) {
            struct pollfd p = { .fd = c->fd, .events = POLLIN };

            if (!send_n(c->fd, req + i, 1))
                break;
            usleep(40000);
            if (poll(&p, 1, 0) == 1 || now_ms() - t0 > 1500)
                break;      /* the answer is there */
        }
        dt = now_ms() - t0;
        TCHECK(t, i < sizeof(req) - 1, "the whole slow request was accepted");
        TCHECK(t, dt < 800, "408 only after %ld ms of a slow request (limit 150 ms)", dt);
    }
    read_eof(c);
    TCHECK(t, status_of(c->buf) == 408, "slow sender: [%s]", c->buf);
    rc_close(c);

    /* A connection that sends nothing is closed after the request time too,
     * silently. */
    c = rc_open(t->port);
    TCHECK(t, c, "connect");
    t0 = now_ms();
    TCHECK(t, read_eof(c) && c->len == 0, "silent connection: [%s]", c->buf);
    dt = now_ms() - t0;
    TCHECK(t, dt >= 120 && dt < 1300, "closed after %ld ms", dt);
    rc_close(c);
}

Test(httpd, request_timeout_answers_408)
{
    struct tctx t = { .req_ms = 150, .idle_ms = 1500 };

    run(&t, c_request_timeout);
    cr_expect_eq(t.calls, 0);
    cr_expect_eq(t.stats.timeouts, 3);
}

static void c_idle_timeout(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);
    char out[RBUF];
    long t0, dt;

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"), "send");
    TCHECK(t, next_response(c, out, sizeof(out), false) > 0, "no response");
    t0 = now_ms();
    TCHECK(t, read_eof(c), "no EOF on an idle connection");
    dt = now_ms() - t0;
    TCHECK(t, c->len == 0, "bytes on idle close: [%s]", c->buf);
    TCHECK(t, dt >= 100 && dt < 1200, "idle close after %ld ms (idle 150, request 1500)", dt);
    rc_close(c);
}

Test(httpd, idle_keepalive_timeout_closes)
{
    struct tctx t = { .req_ms = 1500, .idle_ms = 150 };

    run(&t, c_idle_timeout);
    cr_expect_eq(t.calls, 1);
    cr_expect_eq(t.stats.timeouts, 1);
}

/* ---- server: lifecycle ------------------------------------------------ */

static void c_stop_with_open_connections(struct tctx *t)
{
    struct rconn *a = rc_open(t->port), *b = rc_open(t->port);
    char out[RBUF];

    TCHECK(t, a && b, "connect");
    TCHECK(t, send_s(a->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"), "send a");
    TCHECK(t, next_response(a, out, sizeof(out), false) > 0, "no response on a");
    TCHECK(t, send_s(b->fd, "GET /hello HTTP/1.1\r\nHo"), "send b");
    usleep(50000);
    signal_done(t);             /* the server stops with both open */
    TCHECK(t, read_eof(a), "a not closed by stop");
    TCHECK(t, read_eof(b), "b not closed by stop");
    rc_close(a);
    rc_close(b);
}

Test(httpd, stop_closes_open_connections)
{
    struct tctx t = { 0 };

    run(&t, c_stop_with_open_connections);
    cr_expect_eq(t.stats.accepted, 2);
}

static void c_stop_from_handler(struct tctx *t)
{
    struct rconn *c = rc_open(t->port);

    TCHECK(t, c, "connect");
    TCHECK(t, send_s(c->fd, "GET /stop HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /p/x HTTP/1.1\r\nHost: h\r\n\r\n"),
           "send");
    TCHECK(t, read_eof(c), "no close after stop");
    TCHECK(t, c->len == 0, "answered after stop: [%s]", c->buf);
    rc_close(c);
    TCHECK(t, tcp_connect(t->port) < 0, "still listening after stop");
}

Test(httpd, stop_from_within_the_handler)
{
    struct tctx t = { 0 };

    run(&t, c_stop_from_handler);
    cr_expect_eq(t.calls, 1);
}

static void c_conn_limit(struct tctx *t)
{
    struct rconn *c[XLB_HTTPD_MAX_CONNS] = { 0 }, *extra;
    char out[RBUF];
    int i;

    for (i = 0; i < XLB_HTTPD_MAX_CONNS; i++) {
        c[i] = rc_open(t->port);
        if (!c[i] || !send_s(c[i]->fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n") ||
            next_response(c[i], out, sizeof(out), false) <= 0)
            break;
    }
    if (i == XLB_HTTPD_MAX_CONNS) {
        extra = rc_open(t->port);
        if (!extra)
            tfail(t, __LINE__, "connect 65");
        else if (!read_eof(extra) || extra->len)
            tfail(t, __LINE__, "connection 65 not closed at once: [%s]", extra->buf);
        rc_close(extra);
    } else {
        tfail(t, __LINE__, "connection %d failed", i);
    }
    for (i = 0; i < XLB_HTTPD_MAX_CONNS; i++)
        rc_close(c[i]);
}

Test(httpd, connection_limit)
{
    struct tctx t = { 0 };

    run(&t, c_conn_limit);
    cr_expect_eq(t.stats.accepted, XLB_HTTPD_MAX_CONNS);
    cr_expect_eq(t.stats.rejected, 1);
}

static bool nonlocal_bind(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
    int v = 0;

    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v != 0;
}

Test(httpd, start_failures_name_the_address)
{
    struct xlb_cfg_listen l = { .set = true, .family = XLB_FAMILY_V4 };
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    char err[256], want[64];
    uv_loop_t loop;
    int fd;

    cr_assert_eq(uv_loop_init(&loop), 0);
    /* A port somebody else listens on. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    l.addr.addr_be[0] = htonl(INADDR_LOOPBACK);
    l.port = ntohs(a.sin_port);
    errno = 0;
    cr_expect_null(xlb_httpd_start(&loop, &l, handler, NULL, err, sizeof(err)));
    cr_expect_eq(errno, EADDRINUSE);
    snprintf(want, sizeof(want), "127.0.0.1:%u", l.port);
    cr_expect(strstr(err, want) && strstr(err, "in use"), "err: %s", err);
    close(fd);

    /* An address this host does not have (unless the host allows binding
     * foreign addresses, when there is nothing to see). */
    inet_pton(AF_INET, "198.18.255.254", l.addr.addr_be);
    l.port = 0;
    if (!nonlocal_bind()) {
        cr_expect_null(xlb_httpd_start(&loop, &l, handler, NULL, err, sizeof(err)));
        cr_expect_eq(errno, EADDRNOTAVAIL);
        cr_expect(strstr(err, "198.18.255.254:0"), "err: %s", err);
    }

    /* No address at all. */
    l.family = 0;
    cr_expect_null(xlb_httpd_start(&loop, &l, handler, NULL, err, sizeof(err)));
    cr_expect_eq(errno, EINVAL);

    uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&loop), 0, "a failed start left a handle");
    xlb_httpd_stop(NULL);
    cr_expect_eq(xlb_httpd_port(NULL), 0);
}

/* ---- client against the server ---------------------------------------- */

struct creq {
    int rc;
    char *body;
    size_t len;
    char err[256];
};

static void c_client(struct tctx *t)
{
    struct creq r = { 0 };
    char *b = NULL;
    size_t len = 0;
    const char *host = t->v6 ? "::1" : "127.0.0.1";
    int rc;

    rc = xlb_http_request(host, t->port, "GET", "/hello", NULL, NULL, 0, 2000, &b, &len, r.err,
                          sizeof(r.err));
    TCHECK(t, rc == 200, "GET: %d %s", rc, r.err);
    TCHECK(t, len == 6 && !strcmp(b, "hello\n") && b[len] == '\0', "GET body [%s]", b);
    free(b);

    rc = xlb_http_request(t->v6 ? "[::1]" : host, t->port, "POST", "/echo", "s3cr3t", "{\"k\":1}",
                          7, 2000, &b, &len, r.err, sizeof(r.err));
    TCHECK(t, rc == 200, "POST: %d %s", rc, r.err);
    TCHECK(t, len == 7 && !memcmp(b, "{\"k\":1}", 7), "POST body [%s]", b);
    free(b);

    rc = xlb_http_request(host, t->port, "HEAD", "/hello", NULL, NULL, 0, 2000, &b, &len, r.err,
                          sizeof(r.err));
    TCHECK(t, rc == 200 && len == 0 && b && b[0] == '\0', "HEAD: %d len %zu", rc, len);
    free(b);

    rc = xlb_http_request(host, t->port, "GET", "/missing", NULL, NULL, 0, 2000, NULL, NULL,
                          r.err, sizeof(r.err));
    TCHECK(t, rc == 404, "404: %d %s", rc, r.err);

    rc = xlb_http_request(host, t->port, "GET", "/nocontent", NULL, NULL, 0, 2000, &b, &len,
                          r.err, sizeof(r.err));
    TCHECK(t, rc == 204 && len == 0, "204: %d", rc);
    free(b);

    /* A body over the server's limit: its 413 comes back as a status. */
    {
        size_t n = 2u << 20;
        char *big = calloc(1, n);

        TCHECK(t, big, "calloc");
        rc = xlb_http_request(host, t->port, "POST", "/echo", NULL, big, n, 3000, &b, &len,
                              r.err, sizeof(r.err));
        free(big);
        TCHECK(t, rc == 413, "2 MiB POST: %d %s", rc, r.err);
        TCHECK(t, strstr(b, "larger than 1 MiB"), "413 body: [%s]", b);
        TCHECK(t, r.err[0] == '\0', "err left set: %s", r.err);
        free(b);
    }
}

Test(httpc, against_the_server)
{
    struct tctx t = { 0 };

    run(&t, c_client);
    cr_expect_eq(t.calls, 5);
    cr_expect_eq(t.stats.accepted, 6);
    cr_expect_eq(t.stats.errors, 1);
}

static void c_client_post_seen(struct tctx *t)
{
    char err[256];
    int rc = xlb_http_request("127.0.0.1", t->port, "POST", "/echo", "tok-1", "x", 1, 2000, NULL,
                              NULL, err, sizeof(err));

    TCHECK(t, rc == 200, "POST: %d %s", rc, err);
}

Test(httpc, sends_host_bearer_and_length)
{
    struct tctx t = { 0 };
    char want[64];

    run(&t, c_client_post_seen);
    snprintf(want, sizeof(want), "127.0.0.1:%u", t.port);
    cr_expect_str_eq(t.host, want);
    cr_expect_str_eq(t.auth, "Bearer tok-1");
    cr_expect_eq(t.body_len, 1);
    cr_expect_eq(t.body[0], 'x');
}

Test(httpc, over_ipv6)
{
    struct tctx t = { .v6 = true };

    run(&t, c_client);
    cr_expect_eq(t.calls, 5);
}

/* ---- client against no server, a mute one, and canned answers --------- */

/* A loopback port with nothing listening: bound, so nobody else takes it. */
static int reserve_port(uint16_t *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *port = ntohs(a.sin_port);
    return fd;
}

Test(httpc, dead_port_error_names_host_and_port)
{
    char err[256], want[64], *b = (char *)1;
    uint16_t port;
    int fd = reserve_port(&port), rc;

    rc = xlb_http_request("127.0.0.1", port, "GET", "/metrics", NULL, NULL, 0, 1000, &b, NULL, err,
                          sizeof(err));
    close(fd);
    cr_expect_eq(rc, -ECONNREFUSED);
    cr_expect_null(b);
    snprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%u: Connection refused", port);
    cr_expect(strstr(err, want) && strstr(err, "xlb-agent"), "err: %s", err);
}

Test(httpc, mute_server_times_out)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    char err[256], want[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc;
    long t0;

    /* Listening but never accepting: the kernel completes the handshake. */
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    t0 = now_ms();
    rc = xlb_http_request("127.0.0.1", ntohs(a.sin_port), "GET", "/", NULL, NULL, 0, 200, NULL,
                          NULL, err, sizeof(err));
    t0 = now_ms() - t0;
    close(fd);
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect(t0 >= 150 && t0 < 1500, "took %ld ms", t0);
    snprintf(want, sizeof(want), "127.0.0.1:%u within 200 ms", ntohs(a.sin_port));
    cr_expect(strstr(err, want), "err: %s", err);
}

Test(httpc, rejects_bad_arguments)
{
    char err[256];

    cr_expect_eq(xlb_http_request("example.com", 80, "GET", "/", NULL, NULL, 0, 100, NULL, NULL,
                                  err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "example.com"), "err: %s", err);
    cr_expect_eq(xlb_http_request("127.0.0.1", 80, "G T", "/", NULL, NULL, 0, 100, NULL, NULL,
                                  err, sizeof(err)), -EINVAL);
    cr_expect_eq(xlb_http_request("127.0.0.1", 80, "GET", "no-slash", NULL, NULL, 0, 100, NULL,
                                  NULL, err, sizeof(err)), -EINVAL);
    cr_expect_eq(xlb_http_request("127.0.0.1", 80, "GET", "/a b", NULL, NULL, 0, 100, NULL, NULL,
                                  err, sizeof(err)), -EINVAL);
    cr_expect_eq(xlb_http_request("127.0.0.1", 80, "GET", "/", "tok\r\nX: y", NULL, 0, 100, NULL,
                                  NULL, err, sizeof(err)), -EINVAL);
    cr_expect_eq(xlb_http_request("127.0.0.1", 0, "GET", "/", NULL, NULL, 0, 100, NULL, NULL,
                                  err, sizeof(err)), -EINVAL);
}

struct canned {
    int lfd;
    uint16_t port;
    const char *reply;
    size_t reply_len;
    bool wait_close;            /* keep the connection open until the client closes */
    char request[4096];
};

static void *canned_main(void *arg)
{
    struct canned *k = arg;
    struct timeval tv = { .tv_sec = 3 };
    size_t n = 0;
    int fd = accept(k->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n < sizeof(k->request) - 1) {
        ssize_t r = recv(fd, k->request + n, sizeof(k->request) - 1 - n, 0);

        if (r <= 0)
            break;
        n += (size_t)r;
        k->request[n] = '\0';
        if (strstr(k->request, "\r\n\r\n"))
            break;
    }
    send_n(fd, k->reply, k->reply_len);
    if (k->wait_close) {
        char tmp[64];

        while (recv(fd, tmp, sizeof(tmp), 0) > 0)
            ;
    }
    close(fd);
    return NULL;
}

/* Serve one canned reply and return what the client made of it. */
static int canned_request(struct canned *k, const char *method, const char *bearer, char **body,
                          size_t *len, char *err, size_t errlen)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    pthread_t th;
    int rc;

    k->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(k->lfd >= 0);
    cr_assert_eq(bind(k->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(k->lfd, 4), 0);
    getsockname(k->lfd, (struct sockaddr *)&a, &alen);
    k->port = ntohs(a.sin_port);
    if (!k->reply_len)
        k->reply_len = strlen(k->reply);
    cr_assert_eq(pthread_create(&th, NULL, canned_main, k), 0);
    rc = xlb_http_request("127.0.0.1", k->port, method, "/x", bearer, NULL, 0, 2000, body, len,
                          err, errlen);
    pthread_join(th, NULL);
    close(k->lfd);
    return rc;
}

Test(httpc, exact_request_bytes)
{
    struct canned k = { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" };
    char err[256], want[512];
    int rc = canned_request(&k, "GET", "t0k", NULL, NULL, err, sizeof(err));

    cr_expect_eq(rc, 200, "%s", err);
    snprintf(want, sizeof(want), "GET /x HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: xlbctl\r\n"
             "Accept: */*\r\nConnection: close\r\nAuthorization: Bearer t0k\r\n\r\n", k.port);
    cr_expect_str_eq(k.request, want);
}

Test(httpc, chunked_response)
{
    struct canned k = {
        .reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6;name=value\r\n world\r\nA\r\n 012345678\r\n0\r\n"
                 "X-Trailer: 1\r\n\r\n",
        .wait_close = true,     /* complete by its framing, not by EOF */
    };
    char err[256], *b = NULL;
    size_t len = 0;
    int rc = canned_request(&k, "GET", NULL, &b, &len, err, sizeof(err));

    cr_expect_eq(rc, 200, "%s", err);
    cr_expect_eq(len, 21);
    cr_expect_str_eq(b, "hello world 012345678");
    free(b);
}

Test(httpc, body_until_eof_and_interim_response)
{
    struct canned k = { .reply = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil eof" };
    struct canned k2 = { .reply = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                                  "Content-Length: 2\r\n\r\nok", .wait_close = true };
    char err[256], *b = NULL;
    size_t len = 0;
    int rc = canned_request(&k, "GET", NULL, &b, &len, err, sizeof(err));

    cr_expect_eq(rc, 200, "%s", err);
    cr_expect_str_eq(b, "until eof");
    cr_expect_eq(len, 9);
    free(b);
    b = NULL;
    rc = canned_request(&k2, "GET", NULL, &b, &len, err, sizeof(err));
    cr_expect_eq(rc, 201, "%s", err);
    cr_expect_str_eq(b, "ok");
    free(b);
}

Test(httpc, broken_responses)
{
    static const struct {
        const char *reply;
        int rc;
        const char *msg;
    } cases[] = {
        { "SSH-2.0-OpenSSH_9.2\r\n\r\n", -EPROTO, "malformed HTTP response" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", -EPROTO, "middle of the response" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 20000000\r\n\r\n", -EFBIG, "larger than 16 MiB" },
        { "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", -EPROTO, "Content-Length" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO, "chunk size" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", -EPROTO, "chunk" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2000000\r\n", -EFBIG, "16 MiB" },
        { "HTTP/1.1 200 OK\r\nContent-Le", -EPROTO, "within the headers" },
        { "", -ECONNRESET, "without answering" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct canned k = { .reply = cases[i].reply, .reply_len = strlen(cases[i].reply) };
        char err[256] = "", *b = (char *)1;
        int rc;

        rc = canned_request(&k, "GET", NULL, &b, NULL, err, sizeof(err));
        cr_expect_eq(rc, cases[i].rc, "case %zu: %d (%s)", i, rc, err);
        cr_expect(strstr(err, cases[i].msg), "case %zu: err: %s", i, err);
        cr_expect(strstr(err, "127.0.0.1:"), "case %zu: no address in: %s", i, err);
        cr_expect_null(b, "case %zu", i);
    }
}
