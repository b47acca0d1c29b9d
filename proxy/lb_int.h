/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_int.h - private state of the proxy's load balancer, shared by lb.c
 * (init, refresh, schedulers, px_lb_pick), route.c (content switching) and
 * persist.c (persistence records, cookies, hashing).  Not for other users.
 *
 * Concurrency.  Worker threads call px_lb_route/pick/learn at any time; the
 * main thread calls px_lb_refresh.  Selection tables (the wrr sequence, the
 * Maglev tables) are allocated once at init at their largest size and are
 * rewritten in place by refresh with relaxed atomic stores.  Every value
 * ever stored is a real index of the pool (or XLB_MAGLEV_EMPTY), and every
 * pick checks the real it reads with px_real_usable() or its persistence
 * equivalent, so a reader that sees a table half old and half new still
 * picks a valid, usable real: nothing is freed while workers run, no lock is
 * taken on the pick path for tables.  The persistence tables (source-ip,
 * server-cookie) are striped-mutex hash tables; a lock is held only for the
 * scan of one 8-way bucket.
 */
#ifndef XLB_PX_LB_INT_H
#define XLB_PX_LB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "px.h"

struct pcre2_real_code_8;

/* ---- persistence records (persist.c) -------------------------------- */

#define PX_PT_WAYS 8
#define PX_PT_ENTRIES 65536u    /* records per table */
#define PX_PT_LOCKS 256u

struct px_pt_ent {
    uint8_t key[16];
    uint64_t last_ms;           /* last use; expired when now - last_ms >= timeout */
    uint32_t real;              /* index in the pool */
    uint8_t used;
};

/* A bounded table key -> real with idle timeout, 8-way set associative:
 * a full bucket evicts its least recently used record. */
struct px_ptable {
    uint32_t mask;              /* buckets - 1, buckets a power of two */
    uint32_t timeout_ms;
    uint64_t k0, k1;            /* SipHash key of the bucket index */
    pthread_mutex_t locks[PX_PT_LOCKS];
    struct px_pt_ent *ents;     /* (mask + 1) * PX_PT_WAYS */
};

/* SHA-256 state, for HMAC-SHA256 of active cookies and real ids. */
struct px_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    uint32_t n;
};

/* ---- a pool's lb state ------------------------------------------------ */

struct px_lb_pool {
    /* route.c */
    struct pcre2_real_code_8 *re;       /* path_regex, NULL without one */
    bool match_all;                     /* no condition set */

    /* Schedulers. */
    enum xlb_cfg_sched sched;           /* adaptive and wrt mapped to wrr */
    _Atomic uint64_t pos;               /* rr/wrr position, lc/wlc scan start */
    uint32_t seq_cap;
    _Atomic uint32_t seq_len;           /* 0: no usable real at the last refresh */
    _Atomic uint32_t *seq;              /* rr/wrr sequence of real indexes */
    uint32_t ring;                      /* Maglev table size, prime */
    _Atomic uint32_t *smag;             /* sh/maglev: over usable reals */
    _Atomic uint32_t *pmag;             /* hash persistence: over up or drained reals */
    uint32_t *scratch;                  /* refresh's Maglev build buffer */

    /* What the last refresh saw (main thread only, under refresh_lock). */
    pthread_mutex_t refresh_lock;
    bool built;
    uint32_t *seen_state, *seen_weight;

    /* Persistence. */
    enum xlb_cfg_persist ptype;
    bool fallback_src;
    uint32_t timeout_ms;
    uint8_t netmask4, netmask6;
    char name[XLB_CFG_STR_MAX];         /* cookie / item / header name */
    size_t name_len;
    struct px_ptable *src;              /* source-ip records (type or fallback) */
    struct px_ptable *srv;              /* server-cookie: value -> real */
    /* active-cookie: HMAC states after the key block and the
     * "service \0 pool \0" prefix (inner), after the key block (outer). */
    struct px_sha256 mac_in, mac_out;
    char cookie_attrs[96];              /* "; Secure; HttpOnly; SameSite=Lax" */
};

/* A 64-bit finalizer (bijective), for probes derived from a hash. */
static inline uint64_t px_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* lb.c */
bool px_lb_excluded(const uint64_t *exclude, uint32_t i);
/* May a persisted client stay on r?  Up or drained (any weight), not
 * passively failed, not excluded. */
bool px_lb_keep_ok(const struct px_real *r, const uint64_t *exclude, uint64_t now_ms);
/* The pool's scheduler alone; NULL when no real is usable. */
struct px_real *px_lb_schedule(struct px_pool *pool, const struct px_reqview *rv,
                               const uint64_t *exclude);

/* route.c */
int px_route_init(struct px_pool *pool, char *err, size_t errlen);
void px_route_free(struct px_pool *pool);
/* The first field named name (case-insensitive) from index from, -1 = none. */
int px_field_find(const struct xlb_h1_head *h, const char *buf, const char *name, size_t nlen,
                  uint32_t from);

/* persist.c */
int px_persist_init(struct px_pool *pool, const uint8_t key[32]);
void px_persist_free(struct px_pool *pool);
void px_persist_pick(struct px_pool *pool, const struct px_reqview *rv, const uint64_t *exclude,
                     struct px_choice *out);
void px_persist_learn(struct px_pool *pool, struct px_real *r, const char *buf,
                      const struct xlb_h1_head *resp, uint64_t now_ms);
/* 64-bit hash of the client address (and port with with_port), the same on
 * every node. */
uint64_t px_hash_client(const struct sockaddr_storage *ss, bool with_port);
/* The SHA-256 block function: PX_SHA_AUTO (the CPU's SHA instructions when
 * it has them, the default), PX_SHA_PORTABLE (plain C) or PX_SHA_CPU
 * (-ENOTSUP without them).  For tests and benchmarks. */
enum { PX_SHA_AUTO, PX_SHA_PORTABLE, PX_SHA_CPU };
int px_sha256_select(int impl);

void px_hmac_sha256(const uint8_t key[32], const void *const *parts, const size_t *lens, int n,
                    uint8_t out[32]);

#endif
