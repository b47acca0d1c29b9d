/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_httpd.h - a small HTTP/1.1 server on a libuv loop, for the agent's
 * /metrics, JSON API and status page (control traffic, not the L7 proxy).
 *
 * Requests are parsed incrementally and strictly (request line, headers,
 * Content-Length body; no chunked request bodies: 411/501), with limits:
 * 8 KiB of request line + headers, 1 MiB body, 64 connections, 10 s to
 * receive a request, 30 s idle keep-alive.  A malformed request is answered
 * with 400 and the connection closed.  The handler runs synchronously on the
 * loop and fills a response; keep-alive and HTTP/1.0 are handled here.
 *
 * Other answers the server gives by itself, each followed by closing the
 * connection: 408 (request not complete in time), 413 (body over the limit),
 * 414 / 431 (request line / headers over the limit, or more than 64 header
 * fields), 417 (an Expect other than 100-continue), 501 (Transfer-Encoding
 * in a request), 505 (a major version other than 1).  An HTTP/1.1 request
 * without exactly one Host header is malformed.  Responses always carry
 * Content-Length (except 204 and 304) and "Connection: close" when the
 * server closes after them.
 */
#ifndef XLB_HTTPD_H
#define XLB_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "xlb_config.h"

#define XLB_HTTPD_HEAD_MAX 8192          /* request line + headers, bytes */
#define XLB_HTTPD_BODY_MAX (1u << 20)     /* request body, bytes */
#define XLB_HTTPD_MAX_CONNS 64            /* more are accepted and closed */
#define XLB_HTTPD_REQUEST_MS 10000u       /* from a request's first byte to its last */
#define XLB_HTTPD_IDLE_MS 30000u          /* keep-alive idle; also to write a response */

/* Every pointer is valid only during the handler call. */
struct xlb_http_req {
    const char *method;         /* NUL-terminated */
    const char *path;           /* without the query */
    const char *query;          /* after '?', "" when none */
    const char *body;           /* body_len bytes, then a NUL not counted */
    size_t body_len;
    /* Header lookup, case-insensitive; NULL when absent.  Values have their
     * surrounding blanks removed; of repeated fields the first is returned. */
    const char *(*header)(const struct xlb_http_req *r, const char *name);
    void *priv;                 /* the server's, for header() */
};

/* A growable byte buffer; zero-initialised is empty.  Once it holds
 * anything, data[len] is a NUL (not counted in len), so text is a C string. */
struct xlb_buf {
    char *data;
    size_t len, cap;
};
/* Append; on allocation failure the buffer keeps what it had and the
 * call returns -ENOMEM. */
int xlb_buf_add(struct xlb_buf *b, const void *p, size_t n);
int xlb_buf_printf(struct xlb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make room for n more bytes (and the NUL) without changing len: 0 or
 * -ENOMEM. */
int xlb_buf_reserve(struct xlb_buf *b, size_t n);
/* Empty it, keeping the memory for reuse. */
void xlb_buf_reset(struct xlb_buf *b);
/* Release the memory and leave it empty; NULL is fine. */
void xlb_buf_free(struct xlb_buf *b);

/*
 * What the handler fills in.  It arrives with status 200, the default
 * content type (empty means the default), no extra headers and an empty
 * body to append to; the server frees the body (a handler may also free it
 * and put a buffer of its own there, which the server then takes over).
 * A status outside 200..999, or extra headers that are not whole lines
 * ending in CRLF, turn the response into a 500.  HEAD gets the headers of
 * the body the handler built, without it.
 */
struct xlb_http_resp {
    int status;
    char content_type[64];      /* default "text/plain; charset=utf-8" */
    char extra_headers[256];    /* "Name: value\r\n" lines, e.g. WWW-Authenticate */
    struct xlb_buf body;
};

typedef void (*xlb_http_handler)(const struct xlb_http_req *req, struct xlb_http_resp *resp,
                                 void *arg);

struct xlb_httpd;
/* Listen on l (address and port); returns NULL and sets errno, with a
 * sentence in err naming the address. */
struct xlb_httpd *xlb_httpd_start(uv_loop_t *loop, const struct xlb_cfg_listen *l,
                                  xlb_http_handler h, void *arg, char *err, size_t errlen);
/* Close the listener and every connection (asynchronously); NULL is fine. */
void xlb_httpd_stop(struct xlb_httpd *s);
/* The port actually bound (for listen port 0 in tests). */
uint16_t xlb_httpd_port(const struct xlb_httpd *s);
/* Change the time limits (milliseconds; 0 keeps that limit as it is), for
 * connections' next timer start.  Defaults XLB_HTTPD_REQUEST_MS and
 * XLB_HTTPD_IDLE_MS. */
void xlb_httpd_set_timeouts(struct xlb_httpd *s, uint32_t request_ms, uint32_t idle_ms);

struct xlb_httpd_stats {
    uint64_t accepted;          /* connections taken */
    uint64_t rejected;          /* connections closed at once: over the limit */
    uint64_t requests;          /* handler calls */
    uint64_t errors;            /* answers by the server itself: 4xx/5xx, then close */
    uint64_t timeouts;          /* connections timed out (any of the limits) */
};
void xlb_httpd_get_stats(const struct xlb_httpd *s, struct xlb_httpd_stats *st);
/* The reason phrase of a status code ("Not Found"); "Unknown" if none. */
const char *xlb_http_reason(int status);

/*
 * A blocking client for xlbctl and tests: one request, the whole response.
 * Returns the HTTP status (>0) with the body in *body (to free), or a
 * negative errno with a sentence in err.
 *
 * host is an IPv4 or IPv6 literal (brackets allowed) or "localhost";
 * timeout_ms bounds the whole exchange (<= 0: 10 s).  bearer, when not NULL,
 * is sent as "Authorization: Bearer ..."; a body is sent with
 * Content-Type: application/json.  The response body may be framed by
 * Content-Length, chunked or the end of the connection, and may be at most
 * 16 MiB; *resp_body gets one more byte, a NUL.  resp_body and resp_len may
 * be NULL.  Errors: -ECONNREFUSED and others from connect, -ETIMEDOUT,
 * -EPROTO (not HTTP), -EFBIG, -EINVAL (bad arguments), -ENOMEM.
 */
int xlb_http_request(const char *host, uint16_t port, const char *method, const char *path,
                     const char *bearer, const char *body, size_t body_len, int timeout_ms,
                     char **resp_body, size_t *resp_len, char *err, size_t errlen);

#endif
