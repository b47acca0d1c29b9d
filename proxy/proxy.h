/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * proxy.h - xlb-proxy's process: the model of px.h plus worker threads, each
 * with its own libuv loop, SO_REUSEPORT listeners and upstream connection
 * pools, and the main thread's agent-state poller, metrics and signals.
 *
 * A request's life (conn.c): read the head into the connection's buffer,
 * parse it (xlb_http1), route it to a pool and pick a real (lb.c), take an
 * idle upstream connection to that real or open one, write the rewritten
 * head, stream the body in both directions (each direction has one buffer;
 * reading stops while a write is pending, so a slow peer back-pressures the
 * other side instead of filling memory), and either keep both connections
 * for the next request or close them.
 */
#ifndef XLB_PROXY_H
#define XLB_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "compress.h"
#include "px.h"
#include "xlb_prom.h"

#define PX_BUF_SIZE (64 * 1024)     /* per direction and connection */
#define PX_MAX_WORKERS 256

/* Latency histogram bounds, seconds. */
#define PX_HIST_N 12
extern const double px_hist_bounds[PX_HIST_N];

/* Per-service counters, all workers (atomics). */
struct px_svc_stats {
    _Atomic uint64_t requests, errors_4xx, errors_5xx, no_route, no_real, bad_requests;
    _Atomic uint64_t unsupported;       /* protocol upgrades refused */
    _Atomic uint64_t retries, timeouts, upstream_errors;
    _Atomic uint64_t hist[PX_HIST_N + 1];   /* request duration, not cumulative */
    _Atomic uint64_t hist_sum_us;
};

struct px_worker;

/* One listening socket of one worker. */
struct px_listener {
    uv_tcp_t tcp;
    struct px_worker *w;
    struct px_service *svc;
    struct px_svc_stats *stats;
    uint16_t port;
    bool tls;                   /* clients speak TLS on it */
    bool redirect;              /* redirect_http: answers with a redirect to https */
};

/* An idle or busy upstream connection. */
/* Ciphertext writing of one TLS connection (to a client or a real): the
 * plaintext of a send not yet encrypted and the socket write in flight.
 * When a write completes and gone() is false, end() gets a failure
 * (status < 0) or, when a send was waiting, its completion (status 0). */
struct px_tlsw {
    uv_stream_t *s;
    struct px_tls **tls;        /* the owner's pointer */
    uv_write_t req;
    bool writing;
    size_t wlen;
    uv_buf_t tp[2];
    unsigned int tpn, tpi;
    bool (*gone)(struct px_tlsw *w);
    void (*end)(struct px_tlsw *w, int status, bool waiting);
};

struct px_up {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t idle_timer;
    struct px_worker *w;
    struct px_real *real;
    struct px_conn *conn;       /* the client connection it serves; NULL when idle */
    struct px_up *next_idle;    /* in the worker's idle list of the real */
    bool connected, idle, closing, reused, wpending;
    bool reading;               /* uv_read_start is in force */
    /* TLS to the real (tls: true) */
    struct px_tls *tls;
    struct px_tlsw tw;
    int handles;
    uint32_t requests;          /* served on this connection */
    uint64_t idle_since;        /* loop ms it went idle last */
    char buf[PX_BUF_SIZE];      /* response bytes */
    size_t len;
};

/* Buffers of a worker for compressing a response body whole (its bytes and
 * the compressed output), taken for one response: PX_BLOCKS_MAX of
 * PX_BLOCK_SIZE at most, allocated when first needed, kept until the
 * worker stops.  Without a free one, a response is compressed streaming. */
#define PX_BLOCK_SIZE   (PX_ENC_ONESHOT_MAX + 4096)     /* the largest px_enc_bound() */
#define PX_BLOCKS_MAX   64
struct px_block {
    struct px_block *next;
    char data[PX_BLOCK_SIZE];
};

/* Per worker and real: the idle upstream connections. */
struct px_idle_list {
    struct px_up *head;
    uint32_t n;
};

struct px_worker {
    int index;
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct px_model *model;
    int n_listeners;
    struct px_listener *listeners;
    int n_reals;                /* all reals of the model, in model order */
    struct px_idle_list *idle;  /* [n_reals] */
    uint32_t max_pool_reals;    /* the largest pool: size of exclude bitmaps */
    struct px_conn *conns;      /* open client connections */
    struct px_block *blocks;    /* free PX_BLOCK_SIZE buffers (whole-body compression) */
    uint32_t n_blocks;          /* allocated, free or in use; at most PX_BLOCKS_MAX */
    _Atomic uint64_t conns_active, conns_total;
    int failed;                 /* start error (-errno) */
    char err[256];
};

struct px_settings {
    const struct xlb_cfg_proxy *cfg;
    struct xlb_h1_limits limits;
    int access_fd;              /* -1: off */
};
extern struct px_settings px_set;

/* model.c */
int px_model_build(struct px_model *m, const struct xlb_config *cfg, char *err, size_t errlen);
void px_model_free(struct px_model *m);
/* Read the node key from path, or create it (32 random bytes, mode 0600). */
int px_cookie_key(const char *path, uint8_t key[32], char *err, size_t errlen);

/* state.c: the agent's xlb_l7_reals, polled by the main loop. */
struct px_state;
struct px_state *px_state_start(uv_loop_t *loop, struct px_model *m, const char *bpffs,
                                uint32_t interval_ms);
void px_state_poll(struct px_state *st);    /* one poll now (tests, start-up) */
void px_state_stop(struct px_state *st);

/* An operator command from the agent for service s: url "" flushes its
 * cache, else purges that URL ("/path?query" under every host, or
 * "http[s]://host/path?query"). */
void px_service_command(struct px_service *s, const char *url);

/* worker.c */
int px_workers_start(struct px_model *m, int n, struct px_worker **out, char *err, size_t errlen);
void px_workers_stop(struct px_worker *ws, int n);

/* conn.c: a new client connection accepted on l. */
void px_conn_accept(struct px_listener *l);
/* Close every client connection, and every idle upstream connection, of w
 * (at stop). */
void px_conn_close_all(struct px_worker *w);
void px_pool_close_all(struct px_worker *w);
/* Free w's blocks (at stop, after every connection is gone). */
void px_blocks_free(struct px_worker *w);

/* metrics.c */
int px_metrics_write(const struct px_model *m, struct px_worker *ws, int n_workers,
                     struct xlb_buf *b);

/* log.c: syslog-style level words on stderr; access log lines. */
void px_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int px_log_level;
#define PX_ERR 3
#define PX_WARN 4
#define PX_INFO 6
#define PX_DEBUG 7
/* Open (or reopen, on SIGUSR1) the access log named by the config. */
int px_access_open(const char *dest, char *err, size_t errlen);
void px_access_write(const char *line, size_t len);

#endif
