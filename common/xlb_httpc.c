// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb_http_request - a blocking one-shot HTTP/1.1 client for xlbctl and the
 * tests (see xlb_httpd.h).  One non-blocking socket driven by poll() against
 * a single deadline, so a stuck server costs at most timeout_ms in total.
 * The request says "Connection: close"; the response is read until its
 * framing says it is complete (Content-Length, chunked) or the server
 * closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xlb_httpd.h"

#define RESP_BODY_MAX (16u << 20)
#define RESP_HEAD_MAX 65536
#define DEFAULT_TIMEOUT_MS 10000

enum body_mode { B_NONE, B_LENGTH, B_CHUNKED, B_EOF };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

struct client {
    int fd;
    int64_t deadline;           /* CLOCK_MONOTONIC, ms */
    int timeout_ms;
    char where[64];             /* "127.0.0.1:9121", "[::1]:9121" */
    char *err;
    size_t errlen;

    struct xlb_buf in;          /* received, from pos on not yet consumed */
    size_t pos;
    struct xlb_buf body;
    int status;
    enum body_mode mode;
    size_t length;              /* B_LENGTH: bytes; B_CHUNKED: left in the chunk */
    enum chunk_state ch;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct client *c, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Leave a sentence in the caller's buffer and return -e. */
static int fail(struct client *c, int e, const char *fmt, ...)
{
    va_list ap;

    if (c->err && c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -e;
}

/* Wait for events on the socket until the deadline: 0, or -ETIMEDOUT /
 * -errno. */
static int wait_fd(struct client *c, short events)
{
    struct pollfd p = { .fd = c->fd, .events = events };

    for (;;) {
        int64_t left = c->deadline - now_ms();
        int n;

        if (left <= 0)
            return -ETIMEDOUT;
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

/* Visible ASCII only: nothing that could end a line or a field early. */
static bool is_visible(const char *s, bool space_ok)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x21 || ch > 0x7e)
            if (!(space_ok && ch == ' '))
                return false;
    }
    return true;
}

static int do_connect(struct client *c, const struct sockaddr *sa, socklen_t len)
{
    int e = 0, rc;
    socklen_t elen = sizeof(e);

    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, errno, "cannot connect to %s: %s", c->where, strerror(errno));
    if (connect(c->fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            e = errno;
        else if ((rc = wait_fd(c, POLLOUT)) < 0)
            e = -rc;
        else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
            e = errno;
    }
    if (e == ETIMEDOUT)
        return fail(c, e, "cannot connect to %s: no answer within %d ms", c->where,
                    c->timeout_ms);
    if (e == ECONNREFUSED)
        return fail(c, e, "cannot connect to %s: %s; is xlb-agent running and listening there?",
                    c->where, strerror(e));
    if (e)
        return fail(c, e, "cannot connect to %s: %s", c->where, strerror(e));
    return 0;
}

static int send_all(struct client *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        int rc;

        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(c, errno, "cannot send the request to %s: %s", c->where, strerror(errno));
        if ((rc = wait_fd(c, POLLOUT)) < 0)
            return fail(c, -rc, "cannot send the request to %s: %s", c->where,
                        rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
    }
    return 0;
}

static int bad_response(struct client *c, const char *what)
{
    return fail(c, EPROTO, "%s sent a malformed HTTP response (%s)", c->where, what);
}

static int body_add(struct client *c, const char *p, size_t n)
{
    if (c->body.len + n > RESP_BODY_MAX)
        return fail(c, EFBIG, "the response from %s is larger than 16 MiB", c->where);
    if (xlb_buf_add(&c->body, p, n) < 0)
        return fail(c, ENOMEM, "out of memory reading the response from %s", c->where);
    return 0;
}

/* The next line at in[pos..]: its length without CRLF (or bare LF, which
 * servers in the wild send), or -1 when incomplete. */
static ssize_t next_line(struct client *c, size_t *adv)
{
    char *s = c->in.data + c->pos;
    char *nl = memchr(s, '\n', c->in.len - c->pos);
    size_t n;

    if (!nl)
        return -1;
    n = (size_t)(nl - s);
    *adv = n + 1;
    if (n && s[n - 1] == '\r')
        n--;
    return (ssize_t)n;
}

/* The length of the head at in[pos..] up to and with its empty line, or 0
 * when it is not all in. */
static size_t head_length(const struct client *c)
{
    const char *s = c->in.data + c->pos, *end = c->in.data + c->in.len, *p = s;

    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (!nl)
            return 0;
        if (p != s && (nl == p || (nl == p + 1 && *p == '\r')))
            return (size_t)(nl + 1 - s);
        p = nl + 1;
    }
}

/* Parse the status line and headers if they are all in; 1 when done, 0
 * when more is needed, or a negative errno. */
static int parse_head(struct client *c, const char *method)
{
    for (;;) {
        char *s = c->in.data + c->pos, *line, *v;
        size_t adv, hlen = head_length(c);
        bool chunked = false, have_len = false;
        ssize_t n;

        if (!hlen) {
            if (c->in.len - c->pos > RESP_HEAD_MAX)
                return bad_response(c, "headers larger than 64 KiB");
            return 0;
        }
        if (memchr(s, '\0', hlen))
            return bad_response(c, "NUL byte in the headers");

        n = next_line(c, &adv);
        line = s;
        if (n < 12 || memcmp(line, "HTTP/1.", 7) || line[7] < '0' || line[7] > '9' ||
            line[8] != ' ' || line[9] < '1' || line[9] > '9' || line[10] < '0' ||
            line[10] > '9' || line[11] < '0' || line[11] > '9' || (n > 12 && line[12] != ' '))
            return bad_response(c, "no HTTP/1.x status line");
        c->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        c->pos += adv;

        c->mode = B_EOF;
        while ((n = next_line(c, &adv)) > 0) {
            line = c->in.data + c->pos;
            line[n] = '\0';
            c->pos += adv;
            v = strchr(line, ':');
            if (!v)
                return bad_response(c, "a header line without a colon");
            *v++ = '\0';
            v += strspn(v, " \t");
            if (!strcasecmp(line, "content-length")) {
                char *e;
                unsigned long long len;

                errno = 0;
                len = strtoull(v, &e, 10);
                e += strspn(e, " \t");
                if (*v < '0' || *v > '9' || *e || errno)
                    return bad_response(c, "a bad Content-Length");
                if (len > RESP_BODY_MAX)
                    return fail(c, EFBIG, "the response from %s is larger than 16 MiB",
                                c->where);
                if (have_len && len != c->length)
                    return bad_response(c, "conflicting Content-Length headers");
                have_len = true;
                c->length = (size_t)len;
            } else if (!strcasecmp(line, "transfer-encoding")) {
                size_t l = strlen(v);

                while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
                    l--;
                /* chunked must be the last coding; others are not undone. */
                chunked = l >= 7 && !strncasecmp(v + l - 7, "chunked", 7);
            }
        }
        c->pos += adv;          /* the empty line */
        if (c->status >= 100 && c->status < 200) {
            if (c->status == 101)
                return bad_response(c, "an unrequested protocol switch");
            continue;           /* 100 Continue and friends: the real one follows */
        }
        if (!strcmp(method, "HEAD") || c->status == 204 || c->status == 304)
            c->mode = B_NONE;
        else if (chunked)
            c->mode = B_CHUNKED;
        else if (have_len)
            c->mode = B_LENGTH;
        c->ch = CH_SIZE;
        return 1;
    }
}

/* Consume body bytes from in[pos..]; 1 when the body is complete, 0 when
 * more is needed, or a negative errno. */
static int parse_body(struct client *c)
{
    size_t avail, n, adv;
    ssize_t l;
    int rc;

    switch (c->mode) {
    case B_NONE:
        return 1;
    case B_EOF:
    case B_LENGTH:
        avail = c->in.len - c->pos;
        n = avail;
        if (c->mode == B_LENGTH && n > c->length - c->body.len)
            n = c->length - c->body.len;
        if ((rc = body_add(c, c->in.data + c->pos, n)))
            return rc;
        c->pos += n;
        return c->mode == B_LENGTH && c->body.len == c->length;
    case B_CHUNKED:
        break;
    }
    for (;;) {
        switch (c->ch) {
        case CH_SIZE: {
            char *s = c->in.data + c->pos;
            size_t size = 0;
            int digits = 0;

            if ((l = next_line(c, &adv)) < 0)
                return c->in.len - c->pos > 4096 ? bad_response(c, "a chunk size line too long")
                                                 : 0;
            for (; digits < l; digits++) {
                int ch = s[digits], d;

                if (ch >= '0' && ch <= '9')
                    d = ch - '0';
                else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
                    d = (ch | 0x20) - 'a' + 10;
                else
                    break;
                if (size > RESP_BODY_MAX)
                    return fail(c, EFBIG, "the response from %s is larger than 16 MiB",
                                c->where);
                size = size * 16 + (size_t)d;
            }
            if (!digits || (digits < l && s[digits] != ';' && s[digits] != ' ' &&
                            s[digits] != '\t'))
                return bad_response(c, "a bad chunk size");
            if (size > RESP_BODY_MAX - c->body.len)
                return fail(c, EFBIG, "the response from %s is larger than 16 MiB", c->where);
            c->pos += adv;
            c->length = size;
            c->ch = size ? CH_DATA : CH_TRAILER;
            break;
        }
        case CH_DATA:
            avail = c->in.len - c->pos;
            if (!avail)
                return 0;
            n = avail < c->length ? avail : c->length;
            if ((rc = body_add(c, c->in.data + c->pos, n)))
                return rc;
            c->pos += n;
            c->length -= n;
            if (!c->length)
                c->ch = CH_DATA_END;
            break;
        case CH_DATA_END:
            if ((l = next_line(c, &adv)) < 0)
                return c->in.len - c->pos >= 2 ? bad_response(c, "a chunk not followed by CRLF")
                                               : 0;
            if (l != 0)
                return bad_response(c, "a chunk longer than its size");
            c->pos += adv;
            c->ch = CH_SIZE;
            break;
        case CH_TRAILER:
            if ((l = next_line(c, &adv)) < 0)
                return c->in.len - c->pos > RESP_HEAD_MAX ? bad_response(c, "trailers too long")
                                                          : 0;
            c->pos += adv;
            if (l == 0) {
                c->ch = CH_DONE;
                return 1;
            }
            break;
        case CH_DONE:
            return 1;
        }
    }
}

static int read_response(struct client *c, const char *method)
{
    bool head_done = false;

    for (;;) {
        ssize_t r;
        int rc;

        /* Drop consumed bytes before reading more. */
        if (c->pos) {
            memmove(c->in.data, c->in.data + c->pos, c->in.len - c->pos);
            c->in.len -= c->pos;
            c->in.data[c->in.len] = '\0';
            c->pos = 0;
        }
        if (xlb_buf_reserve(&c->in, 65536) < 0)
            return fail(c, ENOMEM, "out of memory reading the response from %s", c->where);
        r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return fail(c, errno, "error reading the response from %s: %s", c->where,
                            strerror(errno));
            if ((rc = wait_fd(c, POLLIN)) == -ETIMEDOUT)
                return fail(c, ETIMEDOUT, "no %s from %s within %d ms",
                            head_done ? "complete response" : "answer", c->where,
                            c->timeout_ms);
            if (rc < 0)
                return fail(c, -rc, "error waiting for %s: %s", c->where, strerror(-rc));
            continue;
        }
        c->in.len += (size_t)r;
        c->in.data[c->in.len] = '\0';
        if (!head_done) {
            if ((rc = parse_head(c, method)) < 0)
                return rc;
            if (rc == 0) {
                if (r == 0)
                    return c->in.len ? bad_response(c, "the connection closed within the headers")
                                     : fail(c, ECONNRESET,
                                            "%s closed the connection without answering",
                                            c->where);
                continue;
            }
            head_done = true;
        }
        if ((rc = parse_body(c)) < 0)
            return rc;
        if (rc == 1)
            return 0;
        if (r == 0) {
            if (c->mode == B_EOF)
                return 0;
            return fail(c, EPROTO, "%s closed the connection in the middle of the response",
                        c->where);
        }
    }
}

int xlb_http_request(const char *host, uint16_t port, const char *method, const char *path,
                     const char *bearer, const char *body, size_t body_len, int timeout_ms,
                     char **resp_body, size_t *resp_len, char *err, size_t errlen)
{
    struct client c = { .fd = -1, .err = err, .errlen = errlen };
    struct sockaddr_storage ss = { 0 };
    struct xlb_buf req = { 0 };
    char hbuf[INET6_ADDRSTRLEN + 2];
    const char *h = host;
    socklen_t slen;
    size_t hl;
    bool v6;
    int rc, send_rc;

    if (resp_body)
        *resp_body = NULL;
    if (resp_len)
        *resp_len = 0;
    if (err && errlen)
        err[0] = '\0';
    c.timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    snprintf(c.where, sizeof(c.where), "%s:%u", host ? host : "?", port);
    if (!host || !method || !path || (body_len && !body))
        return fail(&c, EINVAL, "an HTTP request needs a host, a method and a path");
    if (!is_token(method))
        return fail(&c, EINVAL, "\"%s\" is not an HTTP method", method);
    if ((path[0] != '/' && strcmp(path, "*")) || !is_visible(path, false))
        return fail(&c, EINVAL, "\"%s\" is not a valid request path (it must start with '/' "
                    "and hold no spaces or control characters)", path);
    if (bearer && (!*bearer || !is_visible(bearer, false)))
        return fail(&c, EINVAL, "the bearer token is empty or holds spaces or control "
                    "characters");

    /* The address: a literal, with or without IPv6 brackets. */
    hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']' && hl - 2 < sizeof(hbuf)) {
        memcpy(hbuf, h + 1, hl - 2);
        hbuf[hl - 2] = '\0';
        h = hbuf;
    } else if (!strcasecmp(h, "localhost")) {
        h = "127.0.0.1";
    }
    if (inet_pton(AF_INET, h, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        slen = sizeof(*sin);
        v6 = false;
    } else if (inet_pton(AF_INET6, h, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        slen = sizeof(*sin6);
        v6 = true;
    } else {
        return fail(&c, EINVAL, "\"%s\" is not an IPv4 or IPv6 address", host);
    }
    snprintf(c.where, sizeof(c.where), v6 ? "[%s]:%u" : "%s:%u", h, port);
    if (port == 0)
        return fail(&c, EINVAL, "cannot connect to %s: port 0", c.where);

    rc = xlb_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xlbctl\r\n"
                        "Accept: */*\r\nConnection: close\r\n", method, path, c.where);
    if (!rc && bearer)
        rc = xlb_buf_printf(&req, "Authorization: Bearer %s\r\n", bearer);
    if (!rc && body_len)
        rc = xlb_buf_printf(&req, "Content-Type: application/json\r\n");
    if (!rc && (body_len || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
                !strcmp(method, "PATCH")))
        rc = xlb_buf_printf(&req, "Content-Length: %zu\r\n", body_len);
    if (!rc)
        rc = xlb_buf_add(&req, "\r\n", 2);
    if (!rc && body_len)
        rc = xlb_buf_add(&req, body, body_len);
    if (rc) {
        rc = fail(&c, ENOMEM, "out of memory building the request to %s", c.where);
        goto out;
    }

    c.deadline = now_ms() + c.timeout_ms;
    if ((rc = do_connect(&c, (struct sockaddr *)&ss, slen)))
        goto out;
    /* A server may answer and close before taking a whole body (413):
     * its answer is worth more than the send error. */
    send_rc = send_all(&c, req.data, req.len);
    if (send_rc && send_rc != -EPIPE && send_rc != -ECONNRESET) {
        rc = send_rc;
        goto out;
    }
    if ((rc = read_response(&c, method))) {
        if (send_rc)
            rc = fail(&c, -send_rc, "cannot send the request to %s: %s", c.where,
                      strerror(-send_rc));
        goto out;
    }
    if (err && errlen)
        err[0] = '\0';

    /* Hand the body over, always NUL-terminated. */
    if (!c.body.data && xlb_buf_reserve(&c.body, 0) < 0) {
        rc = fail(&c, ENOMEM, "out of memory reading the response from %s", c.where);
        goto out;
    }
    c.body.data[c.body.len] = '\0';
    if (resp_len)
        *resp_len = c.body.len;
    if (resp_body) {
        *resp_body = c.body.data;
        c.body.data = NULL;
    }
    rc = c.status;

out:
    if (c.fd >= 0)
        close(c.fd);
    xlb_buf_free(&req);
    xlb_buf_free(&c.in);
    xlb_buf_free(&c.body);
    return rc;
}
