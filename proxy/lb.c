// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lb.c - the proxy's per-pool load balancing: set-up, selection tables,
 * schedulers and px_lb_pick (persistence is persist.c's, content switching
 * route.c's; lb_int.h explains how threads share the tables).
 *
 * Schedulers choose among usable reals (px_real_usable: up, weight > 0, not
 * passively failed) that the request did not exclude:
 *   rr, wrr  a sequence built at refresh and walked by one atomic counter.
 *            wrr puts real i w_i times in a cycle of sum(w) entries (weights
 *            divided by their gcd), at times (2k + 1) / (2 w_i), so the
 *            proportions over a cycle are exact and the entries of a real
 *            are spread out.  A cycle longer than the table (seq_cap, 4096
 *            entries per real, at most 65536) is scaled down to fit, which
 *            rounds the proportions.  rr is wrr with every weight 1.
 *            adaptive and wrt are not layer 7 schedulers; seen here, wrr.
 *   lc, wlc  the fewest requests in flight (px_real.active); wlc the lowest
 *            active / weight.  Ties go to the first real found from a
 *            rotating start, so idle reals take turns.
 *   fixed    the usable real with the highest weight, the first in config
 *            order among equals.
 *   sh       a weighted Maglev table over the usable reals, indexed by a
 *            hash of the client address; maglev the same with the client
 *            address and port.
 * Reals that became unusable since the last refresh are skipped at pick
 * time: the sequence walks on; a hash probes a few more table entries
 * derived from the hash, then scans the reals from a hashed start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_int.h"
#include "maglev.h"

#define SEQ_PER_REAL 4096u
#define SEQ_MAX 65536u
#define SEQ_SCAN 64u            /* sequence entries tried before a linear scan */
#define HASH_PROBES 8

/* Whether r may take a new client at now_ms (px.h). */
bool px_real_usable(const struct px_real *r, uint64_t now_ms)
{
    return atomic_load_explicit(&r->state, memory_order_relaxed) == XLB_L7_UP &&
           atomic_load_explicit(&r->weight, memory_order_relaxed) > 0 &&
           atomic_load_explicit(&r->failed_until_ms, memory_order_relaxed) <= now_ms;
}

bool px_lb_excluded(const uint64_t *exclude, uint32_t i)
{
    return exclude && (exclude[i / 64] >> (i % 64) & 1);
}

bool px_lb_keep_ok(const struct px_real *r, const uint64_t *exclude, uint64_t now_ms)
{
    uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);

    return (st == XLB_L7_UP || st == XLB_L7_DRAIN) &&
           atomic_load_explicit(&r->failed_until_ms, memory_order_relaxed) <= now_ms &&
           !px_lb_excluded(exclude, r->index);
}

static bool can_take(const struct px_pool *pool, uint32_t i, const uint64_t *exclude,
                     uint64_t now_ms)
{
    return i < (uint32_t)pool->n_reals && px_real_usable(&pool->reals[i], now_ms) &&
           !px_lb_excluded(exclude, i);
}

/* The first usable real from index start on, wrapping; NULL when none. */
static struct px_real *scan_from(struct px_pool *pool, uint64_t start, const uint64_t *exclude,
                                 uint64_t now_ms)
{
    uint32_t n = (uint32_t)pool->n_reals;

    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = (uint32_t)((start + j) % n);

        if (can_take(pool, i, exclude, now_ms))
            return &pool->reals[i];
    }
    return NULL;
}

static struct px_real *pick_seq(struct px_pool *pool, const uint64_t *exclude, uint64_t now_ms)
{
    struct px_lb_pool *lb = pool->lb;
    uint32_t len = atomic_load_explicit(&lb->seq_len, memory_order_relaxed);
    uint64_t c = atomic_fetch_add_explicit(&lb->pos, 1, memory_order_relaxed);

    if (len) {
        uint32_t tries = len < SEQ_SCAN ? len : SEQ_SCAN;

        for (uint32_t j = 0; j < tries; j++) {
            uint32_t i = atomic_load_explicit(&lb->seq[(c + j) % len], memory_order_relaxed);

            if (can_take(pool, i, exclude, now_ms))
                return &pool->reals[i];
        }
    }
    return scan_from(pool, c, exclude, now_ms);
}

/* lc (weighted false) and wlc. */
static struct px_real *pick_lc(struct px_pool *pool, bool weighted, const uint64_t *exclude,
                               uint64_t now_ms)
{
    uint32_t n = (uint32_t)pool->n_reals;
    uint64_t start = atomic_fetch_add_explicit(&pool->lb->pos, 1, memory_order_relaxed);
    struct px_real *best = NULL;
    uint64_t ba = 0, bw = 1;

    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = (uint32_t)((start + j) % n);
        struct px_real *r = &pool->reals[i];
        uint64_t a, w;

        if (!can_take(pool, i, exclude, now_ms))
            continue;
        a = atomic_load_explicit(&r->active, memory_order_relaxed);
        w = weighted ? atomic_load_explicit(&r->weight, memory_order_relaxed) : 1;
        if (!w)
            continue;
        /* a / w < ba / bw */
        if (!best || a * bw < ba * w) {
            best = r;
            ba = a;
            bw = w;
        }
    }
    return best;
}

static struct px_real *pick_fixed(struct px_pool *pool, const uint64_t *exclude, uint64_t now_ms)
{
    struct px_real *best = NULL;
    uint32_t bw = 0;

    for (uint32_t i = 0; i < (uint32_t)pool->n_reals; i++) {
        uint32_t w = atomic_load_explicit(&pool->reals[i].weight, memory_order_relaxed);

        if (can_take(pool, i, exclude, now_ms) && (!best || w > bw)) {
            best = &pool->reals[i];
            bw = w;
        }
    }
    return best;
}

static struct px_real *pick_hash(struct px_pool *pool, uint64_t h, const uint64_t *exclude,
                                 uint64_t now_ms)
{
    struct px_lb_pool *lb = pool->lb;
    uint64_t x = h;

    for (int k = 0; k <= HASH_PROBES; k++) {
        uint32_t i = atomic_load_explicit(&lb->smag[x % lb->ring], memory_order_relaxed);

        if (can_take(pool, i, exclude, now_ms))
            return &pool->reals[i];
        x = px_mix64(h + (uint64_t)k + 1);
    }
    return scan_from(pool, h, exclude, now_ms);
}

struct px_real *px_lb_schedule(struct px_pool *pool, const struct px_reqview *rv,
                               const uint64_t *exclude)
{
    uint64_t now = rv->now_ms;

    switch (pool->lb->sched) {
    case XLB_SCHED_LC:
        return pick_lc(pool, false, exclude, now);
    case XLB_SCHED_WLC:
        return pick_lc(pool, true, exclude, now);
    case XLB_SCHED_FIXED:
        return pick_fixed(pool, exclude, now);
    case XLB_SCHED_SH:
        return pick_hash(pool, px_hash_client(rv->client, false), exclude, now);
    case XLB_SCHED_MAGLEV:
        return pick_hash(pool, px_hash_client(rv->client, true), exclude, now);
    default:
        return pick_seq(pool, exclude, now);
    }
}

/* px.h: persistence first, then the scheduler. */
void px_lb_pick(struct px_pool *pool, const struct px_reqview *rv, const uint64_t *exclude,
                struct px_choice *out)
{
    out->real = NULL;
    out->persisted = false;
    out->set_cookie = false;
    out->cookie[0] = '\0';
    if (!pool->lb || !pool->n_reals)
        return;
    if (pool->lb->ptype == XLB_PERSIST_NONE) {
        out->real = px_lb_schedule(pool, rv, exclude);
        return;
    }
    px_persist_pick(pool, rv, exclude, out);
}

/* px.h: server-cookie learning. */
void px_lb_learn(struct px_pool *pool, struct px_real *r, const char *buf,
                 const struct xlb_h1_head *resp, uint64_t now_ms)
{
    if (pool->lb && pool->lb->ptype == XLB_PERSIST_SERVER_COOKIE && r && r->pool == pool)
        px_persist_learn(pool, r, buf, resp, now_ms);
}

/* ---- tables ----------------------------------------------------------- */

static uint32_t gcd32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

/* Sequence event of real i: its k-th entry at time (2k + 1) / (2 w). */
struct seq_ev {
    uint32_t i, k, w;
};

static bool ev_before(const struct seq_ev *a, const struct seq_ev *b)
{
    uint64_t x = (2ull * a->k + 1) * b->w, y = (2ull * b->k + 1) * a->w;

    return x < y || (x == y && a->i < b->i);
}

static void heap_down(struct seq_ev *h, uint32_t n, uint32_t j)
{
    for (;;) {
        uint32_t l = 2 * j + 1, m = j;
        struct seq_ev t;

        if (l < n && ev_before(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && ev_before(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == j)
            return;
        t = h[j];
        h[j] = h[m];
        h[m] = t;
        j = m;
    }
}

/* Rebuild the rr/wrr sequence from w[] (0 = not in it).  -ENOMEM leaves the
 * old sequence in force. */
static int build_seq(struct px_pool *pool, const uint32_t *w)
{
    struct px_lb_pool *lb = pool->lb;
    uint32_t n = (uint32_t)pool->n_reals, g = 0, cnt = 0, len = 0;
    uint64_t sum = 0;
    struct seq_ev *heap;

    for (uint32_t i = 0; i < n; i++)
        if (w[i]) {
            g = gcd32(g, w[i]);
            cnt++;
        }
    if (!cnt) {
        atomic_store_explicit(&lb->seq_len, 0, memory_order_relaxed);
        return 0;
    }
    heap = calloc(cnt, sizeof(*heap));
    if (!heap)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        sum += w[i] / g;
    cnt = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t wi;

        if (!w[i])
            continue;
        wi = w[i] / g;
        if (sum > lb->seq_cap) {
            /* room for one entry per real on top of the scaled shares */
            wi = wi * (lb->seq_cap - n) / sum;
            if (!wi)
                wi = 1;
        }
        heap[cnt++] = (struct seq_ev){ .i = i, .k = 0, .w = (uint32_t)wi };
    }
    for (uint32_t j = cnt / 2; j-- > 0;)
        heap_down(heap, cnt, j);
    while (cnt) {
        atomic_store_explicit(&lb->seq[len++], heap[0].i, memory_order_relaxed);
        if (++heap[0].k == heap[0].w)
            heap[0] = heap[--cnt];
        heap_down(heap, cnt, 0);
    }
    free(heap);
    atomic_store_explicit(&lb->seq_len, len, memory_order_relaxed);
    return 0;
}

/* Rebuild a Maglev table from w[] (0 = not in it).  Identities are the real
 * names, so nodes with the same config build the same table. */
static int build_maglev(struct px_pool *pool, const uint32_t *w, _Atomic uint32_t *tab)
{
    struct px_lb_pool *lb = pool->lb;
    uint32_t n = (uint32_t)pool->n_reals;
    struct xlb_maglev_backend *b = calloc(n, sizeof(*b));
    int rc;

    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        b[i] = (struct xlb_maglev_backend){ .id = pool->reals[i].name,
                                            .id_len = strnlen(pool->reals[i].name, XLB_NAME_LEN),
                                            .weight = w[i], .value = i };
    rc = xlb_maglev_build(b, n, lb->scratch, lb->ring);
    free(b);
    if (rc)
        return rc;
    for (uint32_t e = 0; e < lb->ring; e++)
        atomic_store_explicit(&tab[e], lb->scratch[e], memory_order_relaxed);
    return 0;
}

/* px.h: rebuild what depends on the reals' states and weights, when they
 * changed since the last refresh. */
void px_lb_refresh(struct px_pool *pool)
{
    struct px_lb_pool *lb = pool->lb;
    uint32_t n = (uint32_t)pool->n_reals;
    uint32_t *uw, *pw;
    bool changed;

    if (!lb || !n)
        return;
    uw = calloc(2 * (size_t)n, sizeof(*uw));
    if (!uw)
        return;         /* the tables in force stay; the next refresh retries */
    pw = uw + n;
    pthread_mutex_lock(&lb->refresh_lock);
    changed = !lb->built;
    for (uint32_t i = 0; i < n; i++) {
        struct px_real *r = &pool->reals[i];
        uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
        uint32_t w = atomic_load_explicit(&r->weight, memory_order_relaxed);

        if (st != lb->seen_state[i] || w != lb->seen_weight[i])
            changed = true;
        lb->seen_state[i] = st;
        lb->seen_weight[i] = w;
        uw[i] = st == XLB_L7_UP ? w : 0;
        /* Hash persistence keeps drained and zero-weight reals in the
         * table, with their configured weight, so their clients stay. */
        if (st == XLB_L7_UP || st == XLB_L7_DRAIN)
            pw[i] = w ? w : (r->cfg && r->cfg->weight ? r->cfg->weight : 1);
        if (lb->sched == XLB_SCHED_RR && uw[i])
            uw[i] = 1;
    }
    if (changed) {
        int rc = 0;

        if (lb->seq)
            rc |= build_seq(pool, uw);
        if (lb->smag)
            rc |= build_maglev(pool, uw, lb->smag);
        if (lb->pmag)
            rc |= build_maglev(pool, pw, lb->pmag);
        /* A failed build retries at the next refresh. */
        lb->built = rc == 0;
    }
    pthread_mutex_unlock(&lb->refresh_lock);
    free(uw);
}

/* ---- set-up ------------------------------------------------------------ */

static bool hash_persist(enum xlb_cfg_persist t)
{
    return t == XLB_PERSIST_HASH_COOKIES || t == XLB_PERSIST_SUPER_HTTP ||
           t == XLB_PERSIST_URL_HASH || t == XLB_PERSIST_HOST || t == XLB_PERSIST_QUERY_ITEM ||
           t == XLB_PERSIST_HEADER;
}

static void pool_free(struct px_pool *pool)
{
    struct px_lb_pool *lb = pool->lb;

    if (!lb)
        return;
    px_route_free(pool);
    px_persist_free(pool);
    pthread_mutex_destroy(&lb->refresh_lock);
    free(lb->seq);
    free(lb->smag);
    free(lb->pmag);
    free(lb->scratch);
    free(lb->seen_state);
    free(lb->seen_weight);
    free(lb);
    pool->lb = NULL;
}

static int pool_init(struct px_pool *pool, const uint8_t key[32], char *err, size_t errlen)
{
    const struct xlb_cfg_service *scfg = pool->svc->cfg;
    uint32_t n = (uint32_t)pool->n_reals;
    struct px_lb_pool *lb;
    enum xlb_cfg_persist pt;
    int rc;

    if (pool->n_reals < 0 || n > SEQ_MAX - 1) {
        snprintf(err, errlen, "service %s sub-service %s: %d reals; allowed: up to %u",
                 pool->svc->name, pool->name, pool->n_reals, SEQ_MAX - 1);
        return -E2BIG;
    }
    lb = calloc(1, sizeof(*lb));
    if (!lb)
        goto nomem;
    pool->lb = lb;
    pthread_mutex_init(&lb->refresh_lock, NULL);
    lb->sched = pool->scheduler;
    if (lb->sched == XLB_SCHED_ADAPTIVE || lb->sched == XLB_SCHED_WRT || lb->sched == 0)
        lb->sched = XLB_SCHED_WRR;
    pt = pool->persist ? pool->persist->type : XLB_PERSIST_NONE;
    lb->ring = scfg && scfg->ring_size && xlb_is_prime(scfg->ring_size) ? scfg->ring_size
                                                                         : XLB_RING_DEFAULT;
    if (n) {
        lb->seen_state = calloc(n, sizeof(*lb->seen_state));
        lb->seen_weight = calloc(n, sizeof(*lb->seen_weight));
        if (!lb->seen_state || !lb->seen_weight)
            goto nomem;
    }
    if (n && (lb->sched == XLB_SCHED_RR || lb->sched == XLB_SCHED_WRR)) {
        lb->seq_cap = n * SEQ_PER_REAL < SEQ_MAX ? n * SEQ_PER_REAL : SEQ_MAX;
        lb->seq = calloc(lb->seq_cap, sizeof(*lb->seq));
        if (!lb->seq)
            goto nomem;
    }
    if (n && (lb->sched == XLB_SCHED_SH || lb->sched == XLB_SCHED_MAGLEV)) {
        lb->smag = calloc(lb->ring, sizeof(*lb->smag));
        if (!lb->smag)
            goto nomem;
    }
    if (n && hash_persist(pt)) {
        lb->pmag = calloc(lb->ring, sizeof(*lb->pmag));
        if (!lb->pmag)
            goto nomem;
    }
    if (lb->smag || lb->pmag) {
        lb->scratch = calloc(lb->ring, sizeof(*lb->scratch));
        if (!lb->scratch)
            goto nomem;
    }
    rc = px_route_init(pool, err, errlen);
    if (rc)
        return rc;
    if (px_persist_init(pool, key))
        goto nomem;
    for (uint32_t i = 0; i < n; i++)
        pool->reals[i].index = i;
    px_lb_refresh(pool);
    return 0;
nomem:
    snprintf(err, errlen, "service %s sub-service %s: out of memory", pool->svc->name,
             pool->name);
    return -ENOMEM;
}

/* px.h: set up every pool of svc; on error nothing is left allocated. */
int px_lb_init(struct px_service *svc, const uint8_t key[32], char *err, size_t errlen)
{
    for (int p = 0; p < svc->n_pools; p++) {
        int rc;

        svc->pools[p].svc = svc;
        rc = pool_init(&svc->pools[p], key, err, errlen);
        if (rc) {
            px_lb_free(svc);
            return rc;
        }
    }
    return 0;
}

/* px.h: free what px_lb_init allocated (also after a failed init). */
void px_lb_free(struct px_service *svc)
{
    for (int p = 0; p < svc->n_pools; p++)
        pool_free(&svc->pools[p]);
}
