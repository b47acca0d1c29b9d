// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Stream checks: the TCP layer shared by every kind that talks over a
 * connection, and the kinds tcp (connect only), the banner protocols ftp,
 * smtp, pop3, imap, nntp, telnet, and generic (bytes out, pattern back).
 *
 * A probe's connection is c->io.tcp.  It is closed with a reset (no
 * TIME_WAIT left on the checker), except after a polite goodbye ("QUIT")
 * that must still reach the server, which closes normally.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"

/* Network-side failures are FAIL_CONNECT, anything else is local. */
static void fail_uv(struct xlb_check *c, int err, const char *what)
{
    switch (err) {
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_ETIMEDOUT:
    case UV_EPIPE:
    case UV_EACCES:
    case UV_EPERM:
    case UV_EADDRNOTAVAIL:
        xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
        break;
    default:
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "%s: %s", what, uv_strerror(err));
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct xlb_check *c = s->data;

    if (!c->running)
        return;
    if (nread > 0)
        c->sops->data(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (nread == UV_EOF)
        c->sops->eof(c);
    else if (nread < 0)
        fail_uv(c, (int)nread, "read");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct xlb_check *c = req->data;

    /* A probe that ended closes the handle, which cancels the connect
     * before the close callback runs: the check is still allocated. */
    if (status == UV_ECANCELED || !c->running)
        return;
    if (status < 0) {
        fail_uv(c, status, "connect");
        return;
    }
    c->phase = "response";
    c->sops->connected(c);
    if (c->running && c->io_open) {
        int err = uv_read_start((uv_stream_t *)&c->io.tcp, xlb__alloc_cb, on_read);

        if (err)
            fail_uv(c, err, "read");
    }
}

void xlb__stream_start(struct xlb_check *c, const struct xlb_stream_ops *ops)
{
    int err;

    c->sops = ops;
    c->graceful = false;
    err = uv_tcp_init_ex(c->loop, &c->io.tcp, c->target.sa.sa_family);
    if (err) {
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "socket: %s", uv_strerror(err));
        return;
    }
    c->io_open = true;
    c->io.h.data = c;
    c->conn.data = c;
    uv_tcp_nodelay(&c->io.tcp, 1);
    c->phase = "connect";
    err = uv_tcp_connect(&c->conn, &c->io.tcp, &c->target.sa, on_connect);
    if (err)
        fail_uv(c, err, "connect");
}

struct wreq {
    uv_write_t req;
    struct xlb_check *c;
    char data[];
};

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct xlb_check *c = w->c;

    /* Cancelled writes come back before the handle's close callback. */
    if (status < 0 && status != UV_ECANCELED && c->running)
        fail_uv(c, status, "write");
    free(w);
}

int xlb__stream_send(struct xlb_check *c, const void *p, size_t n)
{
    uv_buf_t b;
    struct wreq *w;
    uv_os_fd_t fd;
    ssize_t r = 0;
    int err;

    if (!n)
        return 0;
    /* A fresh connection's send buffer takes a request at once; only a
     * remainder needs a copy that lives until the write completes.  The
     * direct send() carries MSG_NOSIGNAL: a peer that already reset the
     * connection must not raise SIGPIPE in the agent. */
    if (!uv_stream_get_write_queue_size((uv_stream_t *)&c->io.tcp)) {
        err = uv_fileno(&c->io.h, &fd);
        if (err)
            return err;
        r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r == (ssize_t)n)
            return 0;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        if (r < 0)
            r = 0;
    }
    w = malloc(sizeof(*w) + n - (size_t)r);
    if (!w)
        return -ENOMEM;
    w->c = c;
    memcpy(w->data, (const char *)p + r, n - (size_t)r);
    b = uv_buf_init(w->data, (unsigned int)(n - (size_t)r));
    err = uv_write(&w->req, (uv_stream_t *)&c->io.tcp, &b, 1, on_write);
    if (err)
        free(w);
    return err;
}

void xlb__stream_abort(struct xlb_check *c)
{
    xlb__io_close(c, !c->graceful);
}

/* ---- tcp: the connection is the answer ---- */

static void tcp_connected(struct xlb_check *c)
{
    xlb__probe_done(c, XLB_CHECK_PASS, "connected");
}

static void no_data(struct xlb_check *c, const uint8_t *p, size_t n)
{
    (void)c;
    (void)p;
    (void)n;
}

static void no_eof(struct xlb_check *c)
{
    (void)c;
}

static const struct xlb_stream_ops tcp_ops = { tcp_connected, no_data, no_eof };

static void tcp_start(struct xlb_check *c)
{
    xlb__stream_start(c, &tcp_ops);
}

const struct xlb_check_kind xlb__kind_tcp = {
    .name = "tcp",
    .uses_port = true,
    .start = tcp_start,
    .abort = xlb__stream_abort,
};

/* ---- banner protocols: the server speaks first ---- */

/*
 * A greeting passes when it starts with one of the prefixes, followed (for
 * the numeric ones) by a separator: "220 " and "220-" are both an FTP/SMTP
 * greeting, "2200" is not.  The probe decides as soon as enough bytes are
 * there, so a greeting line without its CRLF is still understood.
 */
struct banner {
    const char *prefix[2];
    bool numeric;               /* a status code: a separator must follow */
    const char *goodbye;        /* sent after a good greeting, or NULL */
};

static const struct banner b_ftp = { { "220", NULL }, true, "QUIT\r\n" };
static const struct banner b_smtp = { { "220", NULL }, true, "QUIT\r\n" };
static const struct banner b_pop3 = { { "+OK", NULL }, false, "QUIT\r\n" };
static const struct banner b_imap = { { "* OK", NULL }, false, "a1 LOGOUT\r\n" };
static const struct banner b_nntp = { { "200", "201" }, true, "QUIT\r\n" };
static const struct banner b_telnet = { { "\xff", NULL }, false, NULL };

static const struct banner *banner_of(const struct xlb_check *c)
{
    switch (c->spec.type) {
    case XLB_HC_FTP: return &b_ftp;
    case XLB_HC_SMTP: return &b_smtp;
    case XLB_HC_POP3: return &b_pop3;
    case XLB_HC_IMAP: return &b_imap;
    case XLB_HC_NNTP: return &b_nntp;
    default: return &b_telnet;
    }
}

/* 1: the greeting matches, 0: more bytes needed, -1: it does not match. */
static int banner_match(const struct banner *b, const char *s, size_t n)
{
    int verdict = -1;

    for (int i = 0; i < 2 && b->prefix[i]; i++) {
        const char *pre = b->prefix[i];
        size_t pl = strlen(pre), k = n < pl ? n : pl;

        if (memcmp(s, pre, k))
            continue;
        if (n < pl + (b->numeric ? 1 : 0)) {
            verdict = 0;
            continue;
        }
        if (!b->numeric || strchr(" -\r\n", s[pl]))
            return 1;
    }
    return verdict;
}

static void banner_fail(struct xlb_check *c)
{
    char text[64];

    if (c->spec.type == XLB_HC_TELNET) {
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "first byte 0x%02x, not IAC (0xff)",
                        (uint8_t)c->p.banner.line[0]);
        return;
    }
    xlb__printable(text, sizeof(text), (const uint8_t *)c->p.banner.line, c->p.banner.len);
    xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "unexpected greeting \"%s\"", text);
}

static void banner_data(struct xlb_check *c, const uint8_t *p, size_t n)
{
    const struct banner *b = banner_of(c);
    size_t room = sizeof(c->p.banner.line) - 1 - c->p.banner.len;
    char text[64];
    int m, err;

    if (n > room)
        n = room;
    memcpy(c->p.banner.line + c->p.banner.len, p, n);
    c->p.banner.len += n;
    m = banner_match(b, c->p.banner.line, c->p.banner.len);
    if (m == 0)
        return;
    if (m < 0) {
        banner_fail(c);
        return;
    }
    if (b->goodbye) {
        err = xlb__stream_send(c, b->goodbye, strlen(b->goodbye));
        if (err) {
            xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
            return;
        }
        c->graceful = true;
    }
    if (c->spec.type == XLB_HC_TELNET) {
        xlb__probe_done(c, XLB_CHECK_PASS, "telnet IAC");
        return;
    }
    xlb__printable(text, sizeof(text), (const uint8_t *)c->p.banner.line, c->p.banner.len);
    xlb__probe_done(c, XLB_CHECK_PASS, "%s", text);
}

static void banner_eof(struct xlb_check *c)
{
    if (c->p.banner.len)
        banner_fail(c);
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "closed before the greeting");
}

static void banner_connected(struct xlb_check *c)
{
    c->phase = "greeting";
}

static const struct xlb_stream_ops banner_ops = { banner_connected, banner_data, banner_eof };

static void banner_start(struct xlb_check *c)
{
    c->p.banner.len = 0;
    xlb__stream_start(c, &banner_ops);
}

#define BANNER_KIND(sym, nm, port)                                                            \
    const struct xlb_check_kind sym = {                                                       \
        .name = nm, .default_port = port, .uses_port = true,                                  \
        .start = banner_start, .abort = xlb__stream_abort,                                    \
    }

BANNER_KIND(xlb__kind_ftp, "ftp", 21);
BANNER_KIND(xlb__kind_smtp, "smtp", 25);
BANNER_KIND(xlb__kind_pop3, "pop3", 110);
BANNER_KIND(xlb__kind_imap, "imap", 143);
BANNER_KIND(xlb__kind_nntp, "nntp", 119);
BANNER_KIND(xlb__kind_telnet, "telnet", 23);

/* ---- generic: send bytes, expect a pattern within the first N bytes ---- */

static void gen_connected(struct xlb_check *c)
{
    int err = xlb__stream_send(c, c->spec.send, c->spec.send_len);

    if (err) {
        xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
        return;
    }
    if (c->p.gen.m.found) {
        xlb__probe_done(c, XLB_CHECK_PASS, "connected, nothing expected");
        return;
    }
    c->phase = "pattern";
}

static void gen_data(struct xlb_check *c, const uint8_t *p, size_t n)
{
    size_t left = c->spec.expect_within - c->p.gen.seen;

    if (n > left)
        n = left;
    xlb__matcher_feed(&c->p.gen.m, p, n);
    c->p.gen.seen += n;
    if (c->p.gen.m.found)
        xlb__probe_done(c, XLB_CHECK_PASS, "pattern found");
    else if (c->p.gen.seen >= c->spec.expect_within)
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "pattern not in the first %u bytes",
                        c->spec.expect_within);
}

static void gen_eof(struct xlb_check *c)
{
    xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "closed after %zu bytes without the pattern",
                    c->p.gen.seen);
}

static const struct xlb_stream_ops gen_ops = { gen_connected, gen_data, gen_eof };

static void gen_start(struct xlb_check *c)
{
    c->p.gen.seen = 0;
    xlb__matcher_init(&c->p.gen.m, c->spec.expect, c->spec.expect_len);
    xlb__stream_start(c, &gen_ops);
}

const struct xlb_check_kind xlb__kind_generic = {
    .name = "generic",
    .uses_port = true,
    .start = gen_start,
    .abort = xlb__stream_abort,
};
