/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * check_int.h - internals shared by the health-check files.
 *
 * check.c owns the lifecycle of a struct xlb_check: its timer (one
 * uv_timer_t that is the interval timer while idle and the probe's timeout
 * while a probe runs), rise/fall counting, statistics and the callback.
 * Each kind supplies a struct xlb_check_kind: init/fini at xlb_check_new()
 * and xlb_check_free(), start to begin one probe, abort to release what a
 * probe holds.  A probe ends exactly once, through xlb__probe_done(), which
 * calls abort, records the result, re-arms the timer and then calls the
 * user's callback (last, so that the callback may free the check).
 *
 * Handles a probe opens live in the check itself (c->io); closing them is
 * asynchronous, so c->pending counts handles whose close callback has not
 * run yet.  The check's memory is released when xlb_check_free() was called
 * and pending drops to zero; a probe due while the previous one's handle is
 * still closing starts from that close callback.
 *
 * check_tcp.c: the stream layer (connect, read, write) and the kinds tcp,
 * ftp, smtp, pop3, imap, nntp, telnet and generic.  check_http.c: http,
 * https and xlb_http_fetch().  check_dns.c: dns.  check_icmp.c: icmp.
 */
#ifndef XLB_CHECK_INT_H
#define XLB_CHECK_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "check.h"
#include "xlb_addr.h"

/* Responses of stream checks are read up to this many bytes. */
#define XLB_CHECK_READ_MAX (64 * 1024)

struct xlb_check;
struct xlb_icmp_sock;

struct xlb_check_kind {
    const char *name;
    uint16_t default_port;      /* used when the port argument is 0; 0 = port required */
    bool uses_port;             /* false: the port is ignored (icmp, none) */
    /* At xlb_check_new(): validate the spec, precompute what every probe
     * sends, take shared resources.  Returns 0 or a negative errno. */
    int (*init)(struct xlb_check *c);
    /* At xlb_check_free() (after abort), and when init failed half-way. */
    void (*fini)(struct xlb_check *c);
    /* Begin one probe; may end it at once through xlb__probe_done(). */
    void (*start)(struct xlb_check *c);
    /* Release the probe's resources (close c->io, free TLS state, forget
     * the ICMP sequence).  Must be idempotent. */
    void (*abort)(struct xlb_check *c);
};

/* Stream kinds hook into the stream layer of check_tcp.c with these. */
struct xlb_stream_ops {
    void (*connected)(struct xlb_check *c);
    void (*data)(struct xlb_check *c, const uint8_t *p, size_t n);
    void (*eof)(struct xlb_check *c);
};

/* Finds a byte pattern in a stream delivered in pieces, with a window of
 * the last len - 1 bytes so a match may straddle two pieces. */
struct xlb_matcher {
    const uint8_t *pat;
    size_t len;                 /* at most XLB_CFG_STR_MAX */
    size_t tail_len;
    bool found;
    uint8_t tail[XLB_CFG_STR_MAX];
};

/* Incremental HTTP/1.x response reader (status line, headers, then a body
 * framed by Content-Length, chunked encoding or the end of the connection). */
enum xlb_http_phase {
    XLB_HTTP_STATUS, XLB_HTTP_HEADERS, XLB_HTTP_BODY_LEN, XLB_HTTP_CHUNK_SIZE,
    XLB_HTTP_CHUNK_DATA, XLB_HTTP_CHUNK_END, XLB_HTTP_TRAILERS, XLB_HTTP_BODY_CLOSE,
    XLB_HTTP_DONE,
};

struct xlb_http_resp {
    enum xlb_http_phase phase;
    bool head;                  /* the request was HEAD: no body follows */
    bool chunked, have_len;
    bool interim;               /* reading a 1xx response, which a final one follows */
    int status;                 /* 0 until the final status line was read */
    uint64_t remaining;         /* of Content-Length or of the current chunk */
    size_t line_len;
    bool line_long;             /* the current line did not fit: its tail is dropped */
    char line[512];
};

struct xlb_check {
    uv_loop_t *loop;
    struct xlb_cfg_hc spec;     /* copied, zero fields replaced by defaults */
    const struct xlb_check_kind *kind;
    uint8_t family;
    struct xlb_addr addr;
    uint16_t port;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } target;
    char addr_text[XLB_ADDR_STRLEN];
    xlb_check_cb cb;
    void *arg;
    struct xlb_check_stats st;

    uv_timer_t timer;
    bool started, freeing, running, start_pending;
    unsigned pending;           /* handles whose close callback is due */
    uint64_t due_ms;            /* loop time the current/next probe was due */
    uint64_t start_ns;          /* uv_hrtime() at the start of the probe */
    const char *phase;          /* what the probe waits for, for a timeout's detail */

    /* The probe's socket handle (stream and dns kinds). */
    union {
        uv_handle_t h;
        uv_tcp_t tcp;
        uv_udp_t udp;
    } io;
    bool io_open;
    bool graceful;              /* close with FIN (bytes still to deliver), not RST */
    uv_connect_t conn;
    uv_udp_send_t usend;
    const struct xlb_stream_ops *sops;

    /* Per-kind state, valid while a probe runs unless noted. */
    union {
        struct {                /* banner kinds */
            size_t len;
            char line[128];
        } banner;
        struct {                /* generic */
            size_t seen;
            struct xlb_matcher m;
        } gen;
        struct {                /* http, https */
            struct xlb_http_resp resp;
            struct xlb_matcher m;
            size_t nread;       /* response bytes read, bounded by XLB_CHECK_READ_MAX */
            void *ssl;          /* SSL *, https only */
            bool hs_done;
        } http;
        struct {                /* dns */
            uint16_t id;
        } dns;
        struct {                /* icmp */
            uint16_t seq;
            bool waiting;
        } icmp;
    } p;

    /* Per-kind state for the check's lifetime (from init to fini). */
    char *request;              /* http: the request bytes; dns: the query */
    size_t request_len;
    void *ssl_ctx;              /* https: SSL_CTX * */
    char tls_name[XLB_CFG_STR_MAX];     /* https: SNI / verified name, "" = none */
    bool tls_name_is_ip;
    struct xlb_icmp_sock *isock;        /* icmp: the loop's shared socket */
    uint16_t icmp_id;
};

/* check.c */
void xlb__probe_done(struct xlb_check *c, enum xlb_check_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Close c->io if open (with a TCP reset when reset is true). */
void xlb__io_close(struct xlb_check *c, bool reset);
uint32_t xlb__rand32(void);
/* A thread-local buffer for reads; valid until the next read callback. */
void xlb__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void xlb__matcher_init(struct xlb_matcher *m, const uint8_t *pat, size_t len);
void xlb__matcher_feed(struct xlb_matcher *m, const uint8_t *p, size_t n);
/* Copy n bytes of p into out (size len) as printable text for a detail. */
void xlb__printable(char *out, size_t len, const uint8_t *p, size_t n);
void xlb__sockaddr(uint8_t family, const struct xlb_addr *a, uint16_t port,
                   struct sockaddr_storage *ss);

/* check_tcp.c: the stream layer. */
void xlb__stream_start(struct xlb_check *c, const struct xlb_stream_ops *ops);
/* Send bytes on the probe's connection (copied if they cannot be written at
 * once).  Returns 0 or a negative errno (the caller ends the probe). */
int xlb__stream_send(struct xlb_check *c, const void *p, size_t n);
void xlb__stream_abort(struct xlb_check *c);

/* check_http.c: the response reader, shared with xlb_http_fetch(). */
enum { XLB_HTTP_MORE = 0, XLB_HTTP_COMPLETE = 1 };
typedef bool (*xlb_http_body_fn)(void *ctx, const uint8_t *p, size_t n);
void xlb__http_resp_init(struct xlb_http_resp *r, bool head);
/* Consume n bytes; body bytes go to body (which returns false to stop the
 * reader early: XLB_HTTP_COMPLETE is returned then).  Returns XLB_HTTP_MORE,
 * XLB_HTTP_COMPLETE, or -EPROTO on a malformed response. */
int xlb__http_resp_feed(struct xlb_http_resp *r, const uint8_t *p, size_t n, xlb_http_body_fn body,
                        void *ctx);
/* The connection ended: XLB_HTTP_COMPLETE when the response is complete
 * (a body delimited by the close), else -EPROTO. */
int xlb__http_resp_eof(struct xlb_http_resp *r);

/* The kinds. */
extern const struct xlb_check_kind xlb__kind_none, xlb__kind_tcp, xlb__kind_ftp, xlb__kind_smtp,
    xlb__kind_pop3, xlb__kind_imap, xlb__kind_nntp, xlb__kind_telnet, xlb__kind_generic,
    xlb__kind_http, xlb__kind_https, xlb__kind_dns, xlb__kind_icmp;

#endif
