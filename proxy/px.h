/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * px.h - xlb-proxy's model of the layer-7 services it serves, shared by its
 * worker threads, and the load-balancing calls on it (lb.c: content
 * switching, schedulers, persistence).
 *
 * The model is built once per config (px_model_build) and is read by every
 * worker.  What changes at run time lives in atomics inside it: each real's
 * state and weight (polled from the agent's xlb_l7_reals map by the main
 * thread), its active-request count and its passive-failure mark (set by
 * workers).  Persistence tables and selection tables are the lb's and are
 * safe to use from several threads at once.
 */
#ifndef XLB_PX_H
#define XLB_PX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "xlb_config.h"
#include "xlb_http1.h"

struct px_lb_pool;              /* lb.c's private state of a pool */
struct px_svc_stats;            /* proxy.h: the I/O core's counters of a service */
struct px_cache;                /* cache.h */
struct px_tls_srv;              /* tls.h */
struct px_tls_cli;

/* What a worker needs to send a request to a real. */
struct px_real {
    const struct xlb_cfg_real *cfg;
    char name[XLB_NAME_LEN];
    struct sockaddr_storage sa; /* address and port to connect to */
    socklen_t salen;
    uint16_t port;              /* the port in sa, host order */
    uint32_t index;             /* in its pool */
    uint32_t gindex;            /* among all reals of the model (the I/O core's) */
    struct px_pool *pool;
    uint8_t id[8];              /* opaque, stable id of (service, pool, real name):
                                 * what an active cookie names */
    /* Run time, shared by all threads. */
    _Atomic uint32_t state;     /* enum xlb_l7_state; from the agent, XLB_L7_UP without one */
    _Atomic uint32_t weight;    /* in force: from the agent, else the configured one */
    _Atomic uint32_t active;    /* requests in flight to it, all workers */
    _Atomic uint64_t failed_until_ms;   /* passive failure: not chosen before this
                                         * (px_now_ms clock); 0 = none */
    _Atomic uint32_t conn_errors;       /* consecutive connection failures */
    /* Counters for metrics (all workers). */
    _Atomic uint64_t requests, upstream_errors, bytes_in, bytes_out;
    _Atomic uint64_t status_class[6];   /* [1..5] = 1xx..5xx, [0] = no response */
};

/* A pool: the reals one scheduler and one persistence setting choose among.
 * A service without sub_services has one pool (named "" ) made of its own
 * reals; with sub_services, one pool per sub-service, in match order. */
struct px_pool {
    char name[XLB_NAME_LEN];    /* sub-service name, "" for the service's own */
    struct px_service *svc;
    const struct xlb_cfg_match *match;  /* NULL: matches everything */
    enum xlb_cfg_sched scheduler;
    const struct xlb_cfg_persistence *persist;
    int n_reals;
    struct px_real *reals;
    struct px_lb_pool *lb;      /* lb.c */
};

struct px_service {
    const struct xlb_cfg_service *cfg;
    char name[XLB_NAME_LEN];
    int n_pools;
    struct px_pool *pools;
    struct px_svc_stats *stats; /* the I/O core's */
    struct px_cache *cache;     /* NULL: no cache */
    struct px_tls_srv *tls;     /* NULL: plain HTTP */
    struct px_tls_cli *tls_cli; /* reals with tls: true (re-encryption); else NULL */
};

struct px_model {
    const struct xlb_config *cfg;
    int n_services;
    struct px_service *services;
    uint8_t cookie_key[32];     /* HMAC key of active cookies (the node key) */
    int n_reals;                /* all reals of all pools (the I/O core's) */
    struct px_real **reals;     /* [n_reals], by px_real.gindex */
};

/* Monotonic milliseconds; the one clock of the proxy's timers and tables.
 * Tests may move it: px_now_offset_ms is added to CLOCK_MONOTONIC. */
uint64_t px_now_ms(void);
extern _Atomic int64_t px_now_offset_ms;

/* ---- lb.c ------------------------------------------------------------ */

/* What lb needs to know about a request.  Pointers are valid for the call. */
struct px_reqview {
    const char *buf;                    /* the request head buffer */
    const struct xlb_h1_head *head;     /* its parsed head */
    const struct sockaddr_storage *client;
    uint64_t now_ms;                    /* px_now_ms() */
};

/* The outcome of px_lb_pick(). */
struct px_choice {
    struct px_real *real;       /* NULL: no usable real (answer 503) */
    bool persisted;             /* chosen by a persistence record, cookie or hash */
    /* When set_cookie is true, the response to the client must carry
     * "Set-Cookie: <cookie>" (active-cookie: a new or re-issued cookie). */
    bool set_cookie;
    char cookie[512];
};

/*
 * Prepare the lb state of every pool of svc: compile the match rules (PCRE2
 * for path_regex), build selection tables from the reals' current weights.
 * key is the node's 32-byte cookie key (also used to derive px_real.id).
 * Returns 0, or -errno with a sentence naming the service/sub-service in err.
 */
int px_lb_init(struct px_service *svc, const uint8_t key[32], char *err, size_t errlen);
void px_lb_free(struct px_service *svc);

/* Content switching: the first pool whose match rules all hold for the
 * request (path prefix, path regex, host, header value, method), or NULL
 * when none does (answer 404). */
struct px_pool *px_lb_route(struct px_service *svc, const struct px_reqview *rv);

/*
 * Choose a real of pool for the request: persistence first (a persisted real
 * that is down, halted or passively failed is replaced by a new choice and,
 * for active-cookie, the cookie rewritten; a drained one keeps its clients),
 * then the pool's scheduler among reals that are up with weight > 0 and not
 * passively failed.  Reals whose index bit is set in exclude (a bit array
 * of n_reals bits, NULL = none) are not chosen: they failed for this
 * request already.  Fills out; out->real NULL means no usable real.
 * Thread-safe.
 */
void px_lb_pick(struct px_pool *pool, const struct px_reqview *rv, const uint64_t *exclude,
                struct px_choice *out);

/* A response head from real r arrived for a request of pool: server-cookie
 * persistence learns the real's Set-Cookie for its cookie name here.  buf and
 * resp are the response head.  Thread-safe. */
void px_lb_learn(struct px_pool *pool, struct px_real *r, const char *buf,
                 const struct xlb_h1_head *resp, uint64_t now_ms);

/* Weights or states of pool's reals changed: rebuild what depends on them.
 * Called by the main thread after a state poll; thread-safe with pick. */
void px_lb_refresh(struct px_pool *pool);

/* Whether r may take a new client now (up, weight > 0, not passively
 * failed at now_ms). */
bool px_real_usable(const struct px_real *r, uint64_t now_ms);

#endif
