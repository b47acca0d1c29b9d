// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The schedulers (agent/sched*.c) measured on simulated populations.
 *
 * A simulated data plane takes the table a scheduler's weights produce and
 * sends new flows through it the way bpf/xlb.bpf.c does: hash tables are
 * indexed by the data plane's own flow hash (xlb_flow_hash, or xlb_src_hash
 * for `sh`) of random 5-tuples modulo the table size; sequence tables are
 * walked by one counter per simulated CPU (two CPUs, each new flow on a
 * random one, counters starting anywhere).  Every share is compared with the
 * scheduler's definition within a stated tolerance:
 *   - sequence tables: every window of a CPU's walk holds real i within 2 of
 *     its exact share (the builder property checked in sched_seq), so over
 *     N flows on 2 CPUs a real gets within 4 flows of N * w_i / sum(w);
 *   - hash tables: random keys make each real's count binomial; with 100k
 *     flows one standard deviation of a share is at most 0.0016, so shares
 *     are checked within 0.01 (over 6 deviations; the table itself is within
 *     one entry in 65537 of exact).
 * lc and wlc run over simulated time (Poisson arrivals, exponential
 * connection lives, a rebalance every second) against the error bound
 * derived in agent/sched_wlc.c, and next to an ideal picker that sees every
 * count at every arrival.  Everything is seeded: runs are reproducible.
 */
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "xlb_sched.h"
#include "maglev.h"
#include "xlb_abi.h"
#include "xlb_hash.h"

#define NCPU 2
#define NFLOWS 100000
#define MAXR 64
#define ID_LEN 17
#define VAL0 1000u              /* value (data-plane real id) of real 0 */
#define SEQ_SLACK (2.0 * NCPU)  /* flows a real may be off on a sequence table */
#define HASH_TOL 0.01           /* share tolerance on hash tables */

/* ---- random numbers (splitmix64) ---- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s)     /* (0, 1] */
{
    return ((double)(rnd(s) >> 11) + 1.0) / 9007199254740992.0;
}

static double rnd_exp(uint64_t *s, double mean)
{
    return -mean * log(rnd_unit(s));
}

/* ---- a population of reals and its table ---- */

static uint32_t table[XLB_RING_DEFAULT];    /* >= XLB_SEQ_MAX_LEN */

struct pop {
    size_t n;
    uint8_t ids[MAXR][ID_LEN];
    struct xlb_sched_in in[MAXR];
    uint32_t values[MAXR];
    uint32_t w[MAXR];           /* the scheduler's effective weights */
    enum xlb_table_kind kind;
    uint32_t len;
};

/* Reals 198.18.0.i, all usable, nothing measured yet. */
static void pop_init(struct pop *p, size_t n, const uint32_t *weights)
{
    cr_assert_leq(n, MAXR);
    memset(p, 0, sizeof(*p));
    p->n = n;
    for (size_t i = 0; i < n; i++) {
        p->ids[i][0] = 4;
        p->ids[i][1] = 198;
        p->ids[i][2] = 18;
        p->ids[i][3] = 0;
        p->ids[i][4] = (uint8_t)i;
        p->in[i] = (struct xlb_sched_in){ .id = p->ids[i], .id_len = ID_LEN,
                                          .weight = weights[i], .usable = true,
                                          .load = -1, .rt_ms = 0, .ramp = 1 };
        p->values[i] = VAL0 + (uint32_t)i;
    }
}

static void pop_build(struct pop *p, const struct xlb_sched *s, const struct xlb_sched_ctx *ctx)
{
    int err = s->weights(ctx, p->in, p->n, p->w);

    cr_assert_eq(err, 0, "%s weights: %d", s->name, err);
    for (size_t i = 0; i < p->n; i++)
        if (!p->in[i].usable)
            cr_assert_eq(p->w[i], 0, "%s gives unusable real %zu weight %u", s->name, i,
                         p->w[i]);
    p->kind = s->kind;
    err = xlb_sched_build(s->kind, p->in, p->w, p->values, p->n, XLB_RING_DEFAULT,
                          XLB_SEQ_MAX_LEN, table, &p->len);
    cr_assert_eq(err, 0, "%s build: %d", s->name, err);
}

/* Real index of a table value, -1 for an empty slot. */
static int real_of(uint32_t v)
{
    if (v == XLB_SEL_EMPTY)
        return -1;
    cr_assert(v >= VAL0 && v < VAL0 + MAXR, "table holds %#x", v);
    return (int)(v - VAL0);
}

/* ---- the simulated data plane ---- */

struct dp {
    uint64_t rng;
    uint64_t ctr[NCPU];         /* per-CPU sequence counters */
};

static void dp_init(struct dp *d, uint64_t seed)
{
    d->rng = seed;
    for (int c = 0; c < NCPU; c++)
        d->ctr[c] = rnd(&d->rng) >> 40;
}

static void random_flow(struct dp *d, struct xlb_flow_key *k)
{
    uint64_t r = rnd(&d->rng);

    memset(k, 0, sizeof(*k));
    /* source in 198.18.0.0/15, to 198.19.255.1:80 over TCP */
    k->src.addr_be[0] = htobe32(0xc6120000u | (uint32_t)(r & 0x1ffff));
    k->dst.addr_be[0] = htobe32(0xc613ff01u);
    k->sport_be = htobe16((uint16_t)(1024 + ((r >> 20) % 64512)));
    k->dport_be = htobe16(80);
    k->proto = 6;
    k->family = 4;
}

/* Real for the new flow k (hash kinds) or for the next flow on a CPU (seq). */
static int dp_pick_key(const struct pop *p, const struct xlb_flow_key *k)
{
    uint32_t h = p->kind == XLB_TABLE_HASH_SRC ? xlb_src_hash(&k->src) : xlb_flow_hash(k);

    return real_of(table[h % p->len]);
}

static int dp_pick_seq(const struct pop *p, struct dp *d, unsigned cpu)
{
    return real_of(table[d->ctr[cpu]++ % p->len]);
}

static int dp_new_flow(const struct pop *p, struct dp *d)
{
    struct xlb_flow_key k;

    if (p->kind == XLB_TABLE_SEQ)
        return dp_pick_seq(p, d, (unsigned)(rnd(&d->rng) % NCPU));
    random_flow(d, &k);
    return dp_pick_key(p, &k);
}

/* nflows new flows; counts[i] per real, *empty those finding no real. */
static void run_flows(const struct pop *p, uint64_t seed, size_t nflows, uint64_t *counts,
                      uint64_t *empty)
{
    struct dp d;

    dp_init(&d, seed);
    memset(counts, 0, p->n * sizeof(*counts));
    *empty = 0;
    for (size_t f = 0; f < nflows; f++) {
        int r = dp_new_flow(p, &d);

        if (r < 0)
            (*empty)++;
        else
            counts[r]++;
    }
}

/* Every real's count against its expected share share[i] / sum(share):
 * within SEQ_SLACK flows on sequence tables, HASH_TOL of the share on hash
 * tables.  A share of 0 must get no flow at all. */
static void assert_shares(const struct pop *p, const char *what, const double *share,
                          const uint64_t *counts, uint64_t total)
{
    double sum = 0;

    for (size_t i = 0; i < p->n; i++)
        sum += share[i];
    for (size_t i = 0; i < p->n; i++) {
        double want = (double)total * share[i] / sum, got = (double)counts[i];

        if (share[i] == 0) {
            cr_assert_eq(counts[i], 0, "%s: real %zu should get nothing, got %lu", what, i,
                         (unsigned long)counts[i]);
        } else if (p->kind == XLB_TABLE_SEQ) {
            cr_assert(fabs(got - want) < SEQ_SLACK, "%s: real %zu got %.0f flows, want %.1f",
                      what, i, got, want);
        } else {
            cr_assert(fabs(got - want) / (double)total < HASH_TOL,
                      "%s: real %zu got share %.4f, want %.4f", what, i, got / (double)total,
                      want / (double)total);
        }
    }
}

/* Build with s and check the shares of NFLOWS flows against share[]. */
static void check_sched(struct pop *p, const struct xlb_sched *s, const char *what,
                        const double *share, uint64_t seed)
{
    struct xlb_sched_ctx ctx = { .now_ms = 1000, .expected_new = 1000 };
    uint64_t counts[MAXR], empty;

    pop_build(p, s, &ctx);
    run_flows(p, seed, NFLOWS, counts, &empty);
    cr_assert_eq(empty, 0, "%s: %lu flows found no real", what, (unsigned long)empty);
    assert_shares(p, what, share, counts, NFLOWS);
}

/* ---- registry ---- */

Test(sched_registry, every_scheduler)
{
    static const struct {
        enum xlb_cfg_sched id;
        const char *name;
        enum xlb_table_kind kind;
        bool dynamic;
    } want[] = {
        { XLB_SCHED_RR, "rr", XLB_TABLE_SEQ, false },
        { XLB_SCHED_WRR, "wrr", XLB_TABLE_SEQ, false },
        { XLB_SCHED_LC, "lc", XLB_TABLE_SEQ, true },
        { XLB_SCHED_WLC, "wlc", XLB_TABLE_SEQ, true },
        { XLB_SCHED_ADAPTIVE, "adaptive", XLB_TABLE_SEQ, false },
        { XLB_SCHED_FIXED, "fixed", XLB_TABLE_SEQ, false },
        { XLB_SCHED_WRT, "wrt", XLB_TABLE_SEQ, false },
        { XLB_SCHED_SH, "sh", XLB_TABLE_HASH_SRC, false },
        { XLB_SCHED_MAGLEV, "maglev", XLB_TABLE_HASH, false },
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct xlb_sched *s = xlb_sched_get(want[i].id);

        cr_assert(s, "no scheduler for id %d", want[i].id);
        cr_expect_eq(s->id, want[i].id);
        cr_expect_str_eq(s->name, want[i].name);
        cr_expect_eq(s->kind, want[i].kind, "%s kind", want[i].name);
        cr_expect_eq(s->dynamic, want[i].dynamic, "%s dynamic", want[i].name);
        cr_expect(s->weights != NULL);
    }
    errno = 0;
    cr_expect_null(xlb_sched_get(0));
    cr_expect_eq(errno, ENOENT);
    errno = 0;
    cr_expect_null(xlb_sched_get((enum xlb_cfg_sched)(XLB_SCHED_MAGLEV + 1)));
    cr_expect_eq(errno, ENOENT);
}

Test(sched_registry, bad_arguments)
{
    const enum xlb_cfg_sched ids[] = { XLB_SCHED_RR, XLB_SCHED_WRR, XLB_SCHED_LC,
                                       XLB_SCHED_WLC, XLB_SCHED_ADAPTIVE, XLB_SCHED_FIXED,
                                       XLB_SCHED_WRT, XLB_SCHED_SH, XLB_SCHED_MAGLEV };
    struct xlb_sched_ctx ctx = { .expected_new = 10 };
    struct xlb_sched_in in = { .weight = 1, .usable = true, .ramp = 1 };
    uint32_t out = 7;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const struct xlb_sched *s = xlb_sched_get(ids[i]);

        cr_expect_eq(s->weights(&ctx, NULL, 1, &out), -EINVAL, "%s", s->name);
        cr_expect_eq(s->weights(&ctx, &in, 1, NULL), -EINVAL, "%s", s->name);
        cr_expect_eq(s->weights(&ctx, NULL, 0, NULL), 0, "%s with no real", s->name);
    }
    cr_expect_eq(xlb_sched_lc.weights(NULL, &in, 1, &out), -EINVAL);
}

/* ---- slow-start ramp ---- */

Test(sched_ramp, linear_from_a_tenth)
{
    double prev = 0;

    cr_expect_eq(xlb_sched_ramp(5000, 1000, 0), 1.0);
    cr_expect_eq(xlb_sched_ramp(1000, 1000, 10000), XLB_SCHED_RAMP_START);
    cr_expect_eq(xlb_sched_ramp(500, 1000, 10000), XLB_SCHED_RAMP_START);
    cr_expect(fabs(xlb_sched_ramp(6000, 1000, 10000) - 0.55) < 1e-12);
    cr_expect_eq(xlb_sched_ramp(11000, 1000, 10000), 1.0);
    cr_expect_eq(xlb_sched_ramp(UINT64_MAX, 1000, 10000), 1.0);
    for (uint64_t t = 1000; t <= 12000; t += 250) {
        double r = xlb_sched_ramp(t, 1000, 10000);

        cr_expect(r > 0 && r <= 1 && r >= prev, "ramp %f at %lu after %f", r,
                  (unsigned long)t, prev);
        prev = r;
    }
}

/* ---- the sequence builder ---- */

/* Plain smooth weighted round robin, one running value per real. */
static uint32_t ref_swrr(const uint32_t *w, const uint32_t *values, size_t n, uint32_t *out)
{
    int64_t cur[MAXR] = { 0 }, sum = 0;
    uint64_t g = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t a = g, b = w[i];

        while (b) {
            uint64_t t = a % b;

            a = b;
            b = t;
        }
        g = a;
    }
    if (!g) {
        out[0] = XLB_SEL_EMPTY;
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        sum += w[i] / g;
    for (int64_t t = 0; t < sum; t++) {
        size_t best = n;

        for (size_t i = 0; i < n; i++) {
            if (!w[i])
                continue;
            cur[i] += w[i] / g;
            if (best == n || cur[i] > cur[best])
                best = i;
        }
        cur[best] -= sum;
        out[t] = values[best];
    }
    return (uint32_t)sum;
}

/*
 * The builder's smoothness promise on t[0..len-1]: for every real, every
 * window of consecutive entries (cyclic) holds it within 2 of
 * window * count / len times.  With D(j) = picks in t[0..j-1] - j*count/len
 * (periodic), the largest window error is max D - min D; checked in
 * integers (times len).  Also the longest cyclic run r of a real with
 * count < len: r - r * count / len < 2.
 */
static void assert_smooth(const uint32_t *t, uint32_t len, const uint32_t *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t count = 0, d = 0, dmax = 0, dmin = 0;
        uint32_t run = 0, maxrun = 0, first_run = 0;
        bool wrapped = false;

        for (uint32_t j = 0; j < len; j++)
            count += t[j] == values[i];
        if (!count)
            continue;
        for (uint32_t j = 0; j < len; j++) {
            d += (t[j] == values[i]) * (int64_t)len - count;
            if (d > dmax)
                dmax = d;
            if (d < dmin)
                dmin = d;
            if (t[j] == values[i]) {
                run++;
            } else {
                if (!wrapped)
                    first_run = run;
                wrapped = true;
                if (run > maxrun)
                    maxrun = run;
                run = 0;
            }
        }
        cr_assert_eq(d, 0);
        if (count == len)
            continue;
        run += first_run;       /* the run across the wrap */
        if (run > maxrun)
            maxrun = run;
        cr_assert_lt(dmax - dmin, 2 * (int64_t)len,
                     "real %zu (%ld of %u entries): a window is %.3f entries off", i,
                     (long)count, len, (double)(dmax - dmin) / len);
        cr_assert_lt((double)maxrun * (double)(len - count), 2.0 * len,
                     "real %zu (%ld of %u entries) runs %u times in a row", i, (long)count, len,
                     maxrun);
    }
}

static void assert_same_as_reference(const uint32_t *w, size_t n)
{
    static uint32_t ref[XLB_SEQ_MAX_LEN];
    uint32_t values[MAXR], len = 0, rlen;
    int err;

    for (size_t i = 0; i < n; i++)
        values[i] = VAL0 + (uint32_t)i;
    err = xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, n, 0, 0, table, &len);
    cr_assert_eq(err, 0);
    rlen = ref_swrr(w, values, n, ref);
    cr_assert_eq(len, rlen, "length %u, want %u", len, rlen);
    cr_assert(!memcmp(table, ref, len * sizeof(*table)), "the sequence differs from plain SWRR");
    if (table[0] != XLB_SEL_EMPTY)
        assert_smooth(table, len, values, n);
}

Test(sched_seq, gcd_and_counts)
{
    const uint32_t w[] = { 3, 6, 0, 9 };
    const uint32_t values[] = { 10, 11, 12, 13 };
    uint32_t len = 0, count[4] = { 0 };

    cr_assert_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 4, 0, 0, table, &len), 0);
    cr_assert_eq(len, 6);
    for (uint32_t j = 0; j < len; j++) {
        cr_assert(table[j] >= 10 && table[j] <= 13);
        count[table[j] - 10]++;
    }
    cr_expect_eq(count[0], 1);
    cr_expect_eq(count[1], 2);
    cr_expect_eq(count[2], 0);
    cr_expect_eq(count[3], 3);
    /* 3 : 2 : 1 interleaved, worked out by hand: running values
     * (1,2,3) -> 13, (2,4,0) -> 11, (3,0,3) -> 10 (tie: lower index),
     * (-2,2,6) -> 13, (-1,4,3) -> 11, (0,0,6) -> 13 */
    const uint32_t want[] = { 13, 11, 10, 13, 11, 13 };

    for (uint32_t j = 0; j < len; j++)
        cr_expect_eq(table[j], want[j], "entry %u: %u, want %u", j, table[j], want[j]);
}

Test(sched_seq, empty)
{
    const uint32_t zero[] = { 0, 0, 0 }, values[] = { 1, 2, 3 };
    uint32_t len = 0;

    table[0] = 5;
    cr_assert_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, NULL, NULL, 0, 0, 0, table, &len), 0);
    cr_expect_eq(len, 1);
    cr_expect_eq(table[0], XLB_SEL_EMPTY);
    table[0] = 5;
    len = 0;
    cr_assert_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, zero, values, 3, 0, 0, table, &len), 0);
    cr_expect_eq(len, 1);
    cr_expect_eq(table[0], XLB_SEL_EMPTY);
    table[0] = 5;
    len = 0;
    cr_assert_eq(xlb_sched_build(XLB_TABLE_HASH, NULL, zero, values, 3, 0, 0, table, &len), 0);
    cr_expect_eq(len, 1);
    cr_expect_eq(table[0], XLB_SEL_EMPTY);
}

/* Every weight set of 1..4 reals with weights 0..12: the same table as
 * plain SWRR (the builder's per-class shortcut changes nothing), exact
 * counts, and the window bound. */
Test(sched_seq, exhaustive_small_sets)
{
    uint32_t w[4];

    for (size_t n = 1; n <= 4; n++) {
        size_t combos = 1;

        for (size_t i = 0; i < n; i++)
            combos *= 13;
        for (size_t c = 0; c < combos; c++) {
            size_t x = c;

            for (size_t i = 0; i < n; i++, x /= 13)
                w[i] = (uint32_t)(x % 13);
            assert_same_as_reference(w, n);
        }
    }
}

/* Random sets: many reals, large and repeated weights. */
Test(sched_seq, random_sets)
{
    uint64_t s = 42;
    uint32_t w[MAXR];

    for (int trial = 0; trial < 300; trial++) {
        size_t n = 1 + rnd(&s) % MAXR;
        uint32_t maxw = (uint32_t)(1 + rnd(&s) % (trial % 3 ? 40 : 1000));
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++) {
            w[i] = (uint32_t)(rnd(&s) % (maxw + 1));
            if (trial % 5 == 0)
                w[i] = i ? maxw : maxw + 1;     /* near the worst known case */
            sum += w[i];
        }
        if (sum > XLB_SEQ_MAX_LEN)
            continue;
        assert_same_as_reference(w, n);
    }
}

Test(sched_seq, equal_weights_alternate)
{
    const uint32_t w[] = { 7, 7, 7, 7, 7 };
    const uint32_t values[] = { 1, 2, 3, 4, 5 };
    uint32_t len = 0;

    cr_assert_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 5, 0, 0, table, &len), 0);
    cr_assert_eq(len, 5);
    for (uint32_t j = 0; j < len; j++)
        cr_expect_eq(table[j], values[j]);
}

static void build_counts(const uint32_t *w, size_t n, uint32_t max_len, uint32_t *len,
                         uint32_t *count)
{
    uint32_t values[MAXR];

    for (size_t i = 0; i < n; i++)
        values[i] = VAL0 + (uint32_t)i;
    cr_assert_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, n, 0, max_len, table, len), 0);
    cr_assert_leq(*len, max_len ? max_len : XLB_SEQ_MAX_LEN);
    memset(count, 0, n * sizeof(*count));
    for (uint32_t j = 0; j < *len; j++)
        count[real_of(table[j])]++;
    assert_smooth(table, *len, values, n);
}

Test(sched_seq, scaled_when_too_long)
{
    uint32_t len, count[MAXR];

    /* 90001 entries do not fit: the 1 keeps one entry, 2 : 1 share the rest */
    build_counts((const uint32_t[]){ 60000, 30000, 1 }, 3, 0, &len, count);
    cr_expect_eq(len, XLB_SEQ_MAX_LEN);
    cr_expect_eq(count[0], 43690);
    cr_expect_eq(count[1], 21845);
    cr_expect_eq(count[2], 1);

    /* 152 into 10: the two 1s keep one each, 100 : 50 share 8 -> 5.33, 2.67 */
    build_counts((const uint32_t[]){ 100, 50, 1, 1 }, 4, 10, &len, count);
    cr_expect_eq(len, 10);
    cr_expect_eq(count[0], 5);
    cr_expect_eq(count[1], 3);
    cr_expect_eq(count[2], 1);
    cr_expect_eq(count[3], 1);

    /* scaled to 32768 : 32768, then reduced by the gcd again */
    build_counts((const uint32_t[]){ 100001, 100000 }, 2, 0, &len, count);
    cr_expect_eq(len, 2);

    /* exactly max_len entries: no scaling */
    build_counts((const uint32_t[]){ 3, 4, 3 }, 3, 10, &len, count);
    cr_expect_eq(len, 10);
    cr_expect_eq(count[1], 4);
}

/* Random oversize sets: every positive weight keeps an entry, the table
 * fits, and each count is within 1 + (reals held at one entry) of its
 * proportional share of the table (sched.c's scaling, worked out). */
Test(sched_seq, scaled_random)
{
    uint64_t s = 7;
    uint32_t w[MAXR], count[MAXR], len;

    for (int trial = 0; trial < 100; trial++) {
        size_t n = 2 + rnd(&s) % (MAXR - 1);
        uint32_t max_len = (uint32_t)(n + rnd(&s) % 5000);
        uint64_t sum = 0;
        size_t held = 0;

        for (size_t i = 0; i < n; i++) {
            w[i] = (uint32_t)(rnd(&s) % 4 ? rnd(&s) % 1000000 : rnd(&s) % 3);
            sum += w[i];
        }
        if (sum <= max_len)
            continue;
        build_counts(w, n, max_len, &len, count);
        for (size_t i = 0; i < n; i++) {
            if (w[i])
                cr_assert_geq(count[i], 1, "real %zu of weight %u lost its entries", i, w[i]);
            else
                cr_assert_eq(count[i], 0);
            held += w[i] && count[i] == 1;
        }
        for (size_t i = 0; i < n; i++) {
            double want = (double)w[i] * len / (double)sum;

            cr_assert(fabs(count[i] - want) <= 1.0 + (double)held + 1e-9,
                      "real %zu: %u of %u entries, share %.2f", i, count[i], len, want);
        }
    }
}

Test(sched_seq, errors)
{
    const uint32_t w[] = { 1, 1, 1 }, values[] = { 1, 2, XLB_SEL_EMPTY };
    uint8_t ids[3][ID_LEN] = { { 4, 1 }, { 4, 2 }, { 4, 3 } };
    struct xlb_sched_in in[3];
    uint32_t len;

    for (int i = 0; i < 3; i++)
        in[i] = (struct xlb_sched_in){ .id = ids[i], .id_len = ID_LEN, .weight = 1 };
    cr_expect_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 2, 0, 1, table, &len), -E2BIG);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 3, 0, 0, table, &len), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 2, 0, 0, NULL, &len), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, w, values, 2, 0, 0, table, NULL), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_SEQ, NULL, NULL, values, 2, 0, 0, table, &len),
                 -EINVAL);
    cr_expect_eq(xlb_sched_build(0, NULL, w, values, 2, 0, 0, table, &len), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_HASH, in, w, values, 2, 100, 0, table, &len), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_HASH, NULL, w, values, 2, 0, 0, table, &len), -EINVAL);
    cr_expect_eq(xlb_sched_build(XLB_TABLE_HASH, in, w, values, 3, 0, 0, table, &len), -EINVAL);
}

/* Hash tables: Maglev over the ids, every real within one entry of its
 * share, values as given; ring_size 0 is the default size. */
Test(sched_seq, hash_tables)
{
    const uint32_t w[] = { 1, 2, 0, 3 };
    const uint32_t ring[] = { 0, 251, 131071 };
    struct pop p;

    pop_init(&p, 4, w);
    for (size_t r = 0; r < sizeof(ring) / sizeof(ring[0]); r++) {
        static uint32_t big[131071];
        uint32_t m = ring[r] ? ring[r] : XLB_RING_DEFAULT, len = 0, count[4] = { 0 };

        cr_assert_eq(xlb_sched_build(XLB_TABLE_HASH, p.in, w, p.values, 4, ring[r], 0, big, &len),
                     0);
        cr_assert_eq(len, m);
        for (uint32_t e = 0; e < len; e++)
            count[real_of(big[e])]++;
        for (size_t i = 0; i < 4; i++) {
            double share = (double)m * w[i] / 6.0;

            cr_expect(fabs(count[i] - share) < 1.0, "ring %u real %zu: %u entries, share %.2f",
                      m, i, count[i], share);
        }
    }
}

/* ---- static schedulers: shares of 100k new flows ---- */

Test(sched_dist, rr_equal_shares)
{
    struct pop p;

    pop_init(&p, 6, (const uint32_t[]){ 1, 5, 100, 0, 7, 3 });
    p.in[4].usable = false;
    check_sched(&p, &xlb_sched_rr, "rr", (const double[]){ 1, 1, 1, 0, 0, 1 }, 1);
}

Test(sched_dist, wrr_follows_weights)
{
    struct pop p;

    pop_init(&p, 5, (const uint32_t[]){ 1, 2, 3, 10, 5 });
    p.in[4].usable = false;
    check_sched(&p, &xlb_sched_wrr, "wrr", (const double[]){ 1, 2, 3, 10, 0 }, 2);
    p.in[4].usable = true;
    p.in[0].usable = false;
    check_sched(&p, &xlb_sched_wrr, "wrr, real 0 down", (const double[]){ 0, 2, 3, 10, 5 }, 3);
}

Test(sched_dist, fixed_top_real_and_failover)
{
    struct pop p;
    uint64_t counts[MAXR], empty;

    pop_init(&p, 4, (const uint32_t[]){ 5, 10, 10, 3 });
    check_sched(&p, &xlb_sched_fixed, "fixed", (const double[]){ 0, 1, 0, 0 }, 4);
    p.in[1].usable = false;
    check_sched(&p, &xlb_sched_fixed, "fixed, top down", (const double[]){ 0, 0, 1, 0 }, 5);
    p.in[2].usable = false;
    check_sched(&p, &xlb_sched_fixed, "fixed, two down", (const double[]){ 1, 0, 0, 0 }, 6);
    p.in[1].usable = true;
    check_sched(&p, &xlb_sched_fixed, "fixed, top back", (const double[]){ 0, 1, 0, 0 }, 7);
    for (size_t i = 0; i < p.n; i++)
        p.in[i].usable = false;
    pop_build(&p, &xlb_sched_fixed, NULL);
    run_flows(&p, 8, 1000, counts, &empty);
    cr_expect_eq(empty, 1000, "no usable real: every flow finds an empty table");
}

/* Fraction of nkeys random keys (flows, or sources for sh) whose real
 * changes between the table in old[] and the current one, among keys whose
 * old real still has a weight; every key must find a real with a weight.
 * Reals are named by value: p->values[i] must be VAL0 + i. */
static double moved_fraction(const struct pop *p, const uint32_t *old, uint32_t old_len,
                             uint64_t seed, size_t nkeys)
{
    for (size_t i = 0; i < p->n; i++)
        cr_assert_eq(p->values[i], VAL0 + i);

    struct dp d;
    size_t kept = 0, moved = 0;

    dp_init(&d, seed);
    for (size_t f = 0; f < nkeys; f++) {
        struct xlb_flow_key k;
        uint32_t h;
        int before, after;

        random_flow(&d, &k);
        h = p->kind == XLB_TABLE_HASH_SRC ? xlb_src_hash(&k.src) : xlb_flow_hash(&k);
        before = real_of(old[h % old_len]);
        after = dp_pick_key(p, &k);
        cr_assert(after >= 0 && p->w[after] > 0);
        if (p->w[before] == 0)
            continue;
        kept++;
        moved += before != after;
    }
    cr_assert(kept > 0);
    return (double)moved / (double)kept;
}

Test(sched_dist, sh_source_stickiness_and_shares)
{
    static uint32_t old[XLB_RING_DEFAULT];
    struct pop p;
    struct dp d;
    double moved;
    uint32_t old_len;

    pop_init(&p, 5, (const uint32_t[]){ 1, 2, 3, 4, 5 });
    p.in[4].usable = false;
    check_sched(&p, &xlb_sched_sh, "sh", (const double[]){ 1, 2, 3, 4, 0 }, 9);

    /* one client, every port and protocol: one real */
    dp_init(&d, 10);
    for (int c = 0; c < 1000; c++) {
        struct xlb_flow_key k;
        int first;

        random_flow(&d, &k);
        first = dp_pick_key(&p, &k);
        for (int f = 0; f < 20; f++) {
            k.sport_be = htobe16((uint16_t)(1024 + rnd(&d.rng) % 60000));
            k.dport_be = htobe16((uint16_t)(rnd(&d.rng) % 65536));
            k.proto = f % 2 ? 17 : 6;
            cr_assert_eq(dp_pick_key(&p, &k), first, "client %d moved between its flows", c);
        }
    }

    /* Real 2 goes down: its clients move, the others' (nearly all) stay,
     * within the Maglev builder's 1.2/N (common/maglev.h). */
    memcpy(old, table, p.len * sizeof(*table));
    old_len = p.len;
    p.in[2].usable = false;
    pop_build(&p, &xlb_sched_sh, NULL);
    moved = moved_fraction(&p, old, old_len, 11, 20000);
    cr_log_info("sh: %.4f of the clients of surviving reals moved", moved);
    cr_expect_leq(moved, 1.2 / 4, "%.4f of the clients of surviving reals moved", moved);
}

Test(sched_dist, maglev_shares_and_flow_stickiness)
{
    static uint32_t old[XLB_RING_DEFAULT];
    struct pop p, q;
    uint32_t old_len;
    double moved;

    pop_init(&p, 6, (const uint32_t[]){ 10, 20, 30, 40, 50, 60 });
    p.in[5].usable = false;
    check_sched(&p, &xlb_sched_maglev, "maglev", (const double[]){ 1, 2, 3, 4, 5, 0 }, 12);
    memcpy(old, table, p.len * sizeof(*table));
    old_len = p.len;

    /* the same reals in another order: the same table */
    pop_init(&q, 6, (const uint32_t[]){ 0, 0, 0, 0, 0, 0 });
    for (size_t i = 0; i < 6; i++) {
        size_t j = 5 - i;

        memcpy(q.ids[i], p.ids[j], ID_LEN);
        q.in[i] = p.in[j];
        q.in[i].id = q.ids[i];
        q.values[i] = p.values[j];
    }
    pop_build(&q, &xlb_sched_maglev, NULL);
    cr_expect_eq(q.len, old_len);
    cr_expect(!memcmp(table, old, old_len * sizeof(*table)), "input order changed the table");

    /* real 1 goes down: only a small part of the other flows move */
    p.in[1].usable = false;
    pop_build(&p, &xlb_sched_maglev, NULL);
    moved = moved_fraction(&p, old, old_len, 14, 20000);
    cr_log_info("maglev: %.4f of the flows of surviving reals moved", moved);
    cr_expect_leq(moved, 1.2 / 5, "%.4f of the flows of surviving reals moved", moved);
}

Test(sched_dist, adaptive_follows_spare_capacity)
{
    struct pop p;

    pop_init(&p, 5, (const uint32_t[]){ 1, 1, 2, 1, 1 });
    p.in[0].load = 0;
    p.in[1].load = 50;
    p.in[2].load = 75;
    p.in[3].load = 100;     /* saturated: nothing while others have room */
    p.in[4].load = 20;
    p.in[4].usable = false;
    check_sched(&p, &xlb_sched_adaptive, "adaptive", (const double[]){ 100, 50, 50, 0, 0 }, 15);

    /* nothing reported: plain round robin, configured weights aside */
    pop_init(&p, 3, (const uint32_t[]){ 1, 5, 9 });
    for (int i = 0; i < 3; i++)
        p.in[i].load = 0;
    check_sched(&p, &xlb_sched_adaptive, "adaptive, all 0", (const double[]){ 1, 1, 1 }, 16);
    for (int i = 0; i < 3; i++)
        p.in[i].load = -1;
    check_sched(&p, &xlb_sched_adaptive, "adaptive, unreadable", (const double[]){ 1, 1, 1 },
                17);
    p.in[0].load = 0;
    check_sched(&p, &xlb_sched_adaptive, "adaptive, 0 and unreadable",
                (const double[]){ 1, 1, 1 }, 18);

    /* an unreadable real among readable ones counts as their average (40) */
    pop_init(&p, 3, (const uint32_t[]){ 1, 1, 1 });
    p.in[0].load = 20;
    p.in[1].load = 60;
    p.in[2].load = -1;
    check_sched(&p, &xlb_sched_adaptive, "adaptive, average", (const double[]){ 80, 40, 60 },
                19);

    /* everyone saturated (the unreadable one by the average): configured weights */
    pop_init(&p, 3, (const uint32_t[]){ 1, 3, 2 });
    p.in[0].load = 100;
    p.in[1].load = 100;
    p.in[2].load = -1;
    check_sched(&p, &xlb_sched_adaptive, "adaptive, saturated", (const double[]){ 1, 3, 2 }, 20);
}

Test(sched_dist, wrt_faster_gets_more)
{
    struct pop p;
    uint64_t counts[MAXR], empty;
    struct xlb_sched_ctx ctx = { 0 };

    pop_init(&p, 4, (const uint32_t[]){ 1, 1, 1, 1 });
    p.in[0].rt_ms = 1;
    p.in[1].rt_ms = 2;
    p.in[2].rt_ms = 4;
    p.in[3].rt_ms = 0.1;    /* fastest, but down: no flows, not the reference */
    p.in[3].usable = false;
    check_sched(&p, &xlb_sched_wrt, "wrt", (const double[]){ 4, 2, 1, 0 }, 21);

    /* 3 ms vs 7 ms: weights 100 and 43, within 0.005 of 7 : 3 */
    pop_init(&p, 2, (const uint32_t[]){ 1, 1 });
    p.in[0].rt_ms = 3;
    p.in[1].rt_ms = 7;
    pop_build(&p, &xlb_sched_wrt, &ctx);
    run_flows(&p, 22, NFLOWS, counts, &empty);
    cr_expect(fabs((double)counts[0] / NFLOWS - 0.7) < 0.005, "share %.4f, want 0.7",
              (double)counts[0] / NFLOWS);

    /* configured weights multiply: weight 2 at 2 ms = weight 1 at 1 ms */
    p.in[0].weight = 2;
    p.in[0].rt_ms = 2;
    p.in[1].rt_ms = 1;
    check_sched(&p, &xlb_sched_wrt, "wrt, weighted", (const double[]){ 1, 1 }, 23);

    /* unknown: the median of the known (1, 2, 3 ms) */
    pop_init(&p, 4, (const uint32_t[]){ 1, 1, 1, 1 });
    p.in[0].rt_ms = 1;
    p.in[1].rt_ms = 3;
    p.in[2].rt_ms = 0;
    p.in[3].rt_ms = 2;
    pop_build(&p, &xlb_sched_wrt, &ctx);
    cr_expect_eq(p.w[0], 100);
    cr_expect_eq(p.w[1], 33);
    cr_expect_eq(p.w[2], 50);
    cr_expect_eq(p.w[3], 50);

    /* nothing known: weighted round robin */
    pop_init(&p, 3, (const uint32_t[]){ 1, 2, 3 });
    p.in[1].rt_ms = NAN;
    check_sched(&p, &xlb_sched_wrt, "wrt, unknown", (const double[]){ 1, 2, 3 }, 24);
}

/* ---- lc / wlc: the water-fill ---- */

/* The discrete least-connection property of out[]: a real got its last
 * flow only if, before it, it was not above any other real's final level
 * (one flow of rounding each way). */
static void assert_level(const struct xlb_sched_in *in, size_t n, const uint32_t *out, bool lc)
{
    for (size_t i = 0; i < n; i++) {
        double wi = lc ? 1 : in[i].weight;

        if (!out[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            double wj = lc ? 1 : in[j].weight;

            if (!xlb_sched_eligible(&in[j]))
                continue;
            cr_assert((in[i].active + out[i] - 1.0) / wi <
                          (in[j].active + out[j] + 1.0) / wj + 1e-9,
                      "real %zu (%u active, weight %.0f) got %u while real %zu (%u, %.0f) got %u",
                      i, in[i].active, wi, out[i], j, in[j].active, wj, out[j]);
        }
    }
}

Test(sched_lc, waterfill_random)
{
    uint64_t s = 99;

    for (int trial = 0; trial < 2000; trial++) {
        struct xlb_sched_in in[MAXR];
        uint32_t out[MAXR];
        size_t n = 1 + rnd(&s) % 20;
        bool lc = trial % 2;
        struct xlb_sched_ctx ctx = { .expected_new = (uint32_t)(rnd(&s) % 20000) };
        uint64_t sum = 0;
        bool any = false;

        for (size_t i = 0; i < n; i++) {
            in[i] = (struct xlb_sched_in){
                .weight = (uint32_t)(rnd(&s) % 100),
                .usable = rnd(&s) % 8 != 0,
                .active = (uint32_t)(rnd(&s) % 4 ? rnd(&s) % 10000 : rnd(&s) % 100),
                .ramp = 1,
            };
            any |= xlb_sched_eligible(&in[i]);
        }
        cr_assert_eq((lc ? xlb_sched_lc : xlb_sched_wlc).weights(&ctx, in, n, out), 0);
        for (size_t i = 0; i < n; i++) {
            if (!xlb_sched_eligible(&in[i]))
                cr_assert_eq(out[i], 0);
            sum += out[i];
        }
        cr_assert_eq(sum, any ? (ctx.expected_new ? ctx.expected_new : 1) : 0);
        assert_level(in, n, out, lc);
    }
}

Test(sched_lc, waterfill_cases)
{
    struct xlb_sched_in in[4];
    struct xlb_sched_ctx ctx = { .expected_new = 0 };
    uint32_t out[4], ref[4];

    for (int i = 0; i < 4; i++)
        in[i] = (struct xlb_sched_in){ .weight = (uint32_t)(1 + 99 * (i == 1)), .usable = true,
                                       .active = 100, .ramp = 1 };
    in[2].active = 40;
    /* expected_new 0 counts as 1: the one flow goes to the emptiest real */
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect(out[0] == 0 && out[1] == 0 && out[2] == 1 && out[3] == 0);

    /* lc ignores configured weights: 60 flows level real 2 up to 100 */
    ctx.expected_new = 60;
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect(out[0] == 0 && out[1] == 0 && out[2] == 60 && out[3] == 0);
    /* then the level rises evenly */
    ctx.expected_new = 460;
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect(out[0] == 100 && out[1] == 100 && out[2] == 160 && out[3] == 100);

    /* an unusable real with few connections gets nothing */
    in[2].usable = false;
    cr_assert_eq(xlb_sched_wlc.weights(&ctx, in, 4, out), 0);
    cr_expect_eq(out[2], 0);
    cr_expect_eq(out[0] + out[1] + out[3], 460);
    in[2].usable = true;

    /* a ramp outside (0, 1] means no slow start */
    cr_assert_eq(xlb_sched_wlc.weights(&ctx, in, 4, ref), 0);
    for (int k = 0; k < 3; k++) {
        in[3].ramp = k == 0 ? 0 : k == 1 ? NAN : 2;
        cr_assert_eq(xlb_sched_wlc.weights(&ctx, in, 4, out), 0);
        cr_expect(!memcmp(out, ref, sizeof(out)), "ramp %f", in[3].ramp);
    }
    in[3].ramp = 1;

    /* more flows than XLB_SCHED_WEIGHT_MAX: scaled to it */
    ctx.expected_new = 4000000000u;
    cr_assert_eq(xlb_sched_wlc.weights(&ctx, in, 4, out), 0);
    cr_expect_eq((uint64_t)out[0] + out[1] + out[2] + out[3], XLB_SCHED_WEIGHT_MAX);
    cr_expect(fabs(out[1] / (double)out[0] - 100.0) < 0.01);
}

Test(sched_lc, slow_start_caps_the_share)
{
    struct xlb_sched_in in[4];
    struct xlb_sched_ctx ctx = { .expected_new = 100 };
    uint32_t out[4];

    for (int i = 0; i < 4; i++)
        in[i] = (struct xlb_sched_in){ .weight = 1, .usable = true, .active = 1000, .ramp = 1 };
    in[3].active = 0;
    in[3].ramp = 0.1;
    /* without the cap the empty real would take all 100; with it 0.1 * 100 / 4 */
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect(out[3] == 2 || out[3] == 3, "ramping real got %u", out[3]);
    cr_expect_eq(out[0] + out[1] + out[2] + out[3], 100);

    /* its target is ramp times the others' level: at ramp 0.5 with 600
     * connections against 1000 each, 400 new flows leave it above half the
     * level (1133 / 2), so it gets none */
    ctx.expected_new = 400;
    in[3].active = 600;
    in[3].ramp = 0.5;
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect_eq(out[3], 0, "ramping real above its target got %u", out[3]);
    in[3].ramp = 1;
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    cr_expect_eq(out[3], 400, "a real far below the level got %u of 400", out[3]);

    /* everyone in slow start: shares follow the caps */
    ctx.expected_new = 100;
    for (int i = 0; i < 4; i++)
        in[i].ramp = 0.5;
    cr_assert_eq(xlb_sched_lc.weights(&ctx, in, 4, out), 0);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(out[i], 25);
}

/* ---- lc / wlc over simulated time ---- */

#define SIM_MAXK 64
#define SIM_MAXR 8

struct sim {
    size_t n;
    uint32_t weight[SIM_MAXR];
    uint32_t init[SIM_MAXR];    /* connections at t = 0 */
    bool lc;
    double rate;                /* new flows per second */
    double life;                /* mean connection life, s */
    double interval;            /* rebalance, s */
    int k;                      /* intervals simulated */
    int join_k;                 /* the last real is usable from interval join_k */
    uint32_t slow_start_ms;
    uint64_t seed;
};

struct sim_flow {
    double t, life;
    uint8_t cpu;
};

struct sim_out {
    uint32_t act[SIM_MAXK + 1][SIM_MAXR];   /* active at each rebalance */
    uint32_t w[SIM_MAXK][SIM_MAXR];         /* weights of each interval */
    uint32_t got[SIM_MAXK][SIM_MAXR];       /* new flows of each interval */
    uint32_t dep[SIM_MAXK][SIM_MAXR];       /* connections ended in each interval */
    uint32_t e[SIM_MAXK], a[SIM_MAXK];      /* expected and actual new flows */
};

static struct sim_flow *sim_flows(const struct sim *sm, size_t *count)
{
    uint64_t s = sm->seed;
    size_t cap = (size_t)(sm->rate * sm->interval * sm->k * 1.2) + 1000, n = 0;
    struct sim_flow *f = malloc(cap * sizeof(*f));
    double t = 0;

    cr_assert(f);
    for (;;) {
        t += rnd_exp(&s, 1.0 / sm->rate);
        if (t >= sm->interval * sm->k)
            break;
        cr_assert_lt(n, cap);
        f[n].t = t;
        f[n].life = rnd_exp(&s, sm->life);
        f[n].cpu = (uint8_t)(rnd(&s) % NCPU);
        n++;
    }
    *count = n;
    return f;
}

static int sim_bucket(const struct sim *sm, double end)
{
    double b = floor(end / sm->interval);

    return b < sm->k ? (int)b : -1;
}

static bool sim_usable(const struct sim *sm, size_t i, int k)
{
    return !(sm->join_k > 0 && i == sm->n - 1 && k < sm->join_k);
}

/* The agent and the data plane: a table per interval from the counts. */
static void sim_table(const struct sim *sm, const struct sim_flow *f, size_t nf,
                      struct sim_out *o)
{
    const struct xlb_sched *s = sm->lc ? &xlb_sched_lc : &xlb_sched_wlc;
    uint64_t rs = sm->seed ^ 0x5eed;
    struct pop p;
    struct dp d;
    size_t next = 0;

    memset(o, 0, sizeof(*o));
    pop_init(&p, sm->n, sm->weight);
    dp_init(&d, sm->seed + 1);
    for (size_t i = 0; i < sm->n; i++) {
        o->act[0][i] = sm->init[i];
        for (uint32_t c = 0; c < sm->init[i]; c++) {
            int b = sim_bucket(sm, rnd_exp(&rs, sm->life));

            if (b >= 0)
                o->dep[b][i]++;
        }
    }
    for (int k = 0; k < sm->k; k++) {
        uint64_t now_ms = (uint64_t)llround(k * sm->interval * 1000);
        struct xlb_sched_ctx ctx = { .now_ms = now_ms };
        double end = (k + 1) * sm->interval;

        ctx.expected_new = k ? o->a[k - 1] : (uint32_t)llround(sm->rate * sm->interval);
        if (!ctx.expected_new)
            ctx.expected_new = 1;
        o->e[k] = ctx.expected_new;
        for (size_t i = 0; i < sm->n; i++) {
            p.in[i].active = o->act[k][i];
            p.in[i].usable = sim_usable(sm, i, k);
            p.in[i].ramp = 1;
            if (sm->join_k > 0 && i == sm->n - 1)
                p.in[i].ramp = xlb_sched_ramp(now_ms,
                                              (uint64_t)llround(sm->join_k * sm->interval * 1000),
                                              sm->slow_start_ms);
        }
        pop_build(&p, s, &ctx);
        for (; next < nf && f[next].t < end; next++) {
            int r = dp_pick_seq(&p, &d, f[next].cpu), b;

            cr_assert(r >= 0 && p.in[r].usable, "flow sent to %d", r);
            o->got[k][r]++;
            o->a[k]++;
            b = sim_bucket(sm, f[next].t + f[next].life);
            if (b >= 0)
                o->dep[b][r]++;
        }
        for (size_t i = 0; i < sm->n; i++) {
            o->w[k][i] = p.w[i];
            o->act[k + 1][i] = o->act[k][i] + o->got[k][i] - o->dep[k][i];
        }
    }
}

/* A binary min-heap of connection ends, for the ideal picker. */
struct ends {
    size_t n, cap;
    struct end { double t; uint32_t real; } *h;
};

static void ends_push(struct ends *e, double t, uint32_t real)
{
    size_t i;

    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 1024;
        e->h = realloc(e->h, e->cap * sizeof(*e->h));
        cr_assert(e->h);
    }
    i = e->n++;
    while (i && e->h[(i - 1) / 2].t > t) {
        e->h[i] = e->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->h[i] = (struct end){ t, real };
}

static struct end ends_pop(struct ends *e)
{
    struct end top = e->h[0], last = e->h[--e->n];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= e->n)
            break;
        if (c + 1 < e->n && e->h[c + 1].t < e->h[c].t)
            c++;
        if (e->h[c].t >= last.t)
            break;
        e->h[i] = e->h[c];
        i = c;
    }
    if (e->n)
        e->h[i] = last;
    return top;
}

/* The ideal picker: every new flow to the lowest active / weight (first on
 * a tie), counts exact at every arrival.  act[k] as sim_out's. */
static void sim_ideal(const struct sim *sm, const struct sim_flow *f, size_t nf,
                      uint32_t act[][SIM_MAXR])
{
    uint64_t rs = sm->seed ^ 0x5eed;
    struct ends e = { 0 };
    uint32_t cur[SIM_MAXR];
    size_t next = 0;

    for (size_t i = 0; i < sm->n; i++) {
        cur[i] = sm->init[i];
        for (uint32_t c = 0; c < sm->init[i]; c++)
            ends_push(&e, rnd_exp(&rs, sm->life), (uint32_t)i);
    }
    for (int k = 0; k <= sm->k; k++) {
        double at = k * sm->interval;

        for (; next < nf && f[next].t < at; next++) {
            size_t best = SIZE_MAX;

            while (e.n && e.h[0].t <= f[next].t)
                cur[ends_pop(&e).real]--;
            for (size_t i = 0; i < sm->n; i++) {
                double wi = sm->lc ? 1 : sm->weight[i];

                if (!sim_usable(sm, i, (int)(f[next].t / sm->interval)))
                    continue;
                if (best == SIZE_MAX ||
                    cur[i] / wi < cur[best] / (sm->lc ? 1.0 : sm->weight[best]))
                    best = i;
            }
            cur[best]++;
            ends_push(&e, f[next].t + f[next].life, (uint32_t)best);
        }
        while (e.n && e.h[0].t <= at)
            cur[ends_pop(&e).real]--;
        memcpy(act[k], cur, sizeof(cur));
    }
    free(e.h);
}

static double sim_w(const struct sim *sm, size_t i)
{
    return sm->lc ? 1.0 : sm->weight[i];
}

/* max - min of act / W over the reals */
static double spread(const struct sim *sm, const uint32_t *act)
{
    double lo = INFINITY, hi = -INFINITY;

    for (size_t i = 0; i < sm->n; i++) {
        double v = act[i] / sim_w(sm, i);

        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    return hi - lo;
}

/*
 * The bound of agent/sched_wlc.c for the interval k, from what happened in
 * it: the spread at the next rebalance is at most
 *     max d_i / W_i - min d_i / W_i + 2 max_i (1 + x_i |A - E| / E + 2 C) / W_i.
 */
static double sim_bound(const struct sim *sm, const struct sim_out *o, int k)
{
    double dlo = INFINITY, dhi = -INFINITY, err = 0;
    double miss = fabs((double)o->a[k] - o->e[k]) / o->e[k];

    for (size_t i = 0; i < sm->n; i++) {
        double wi = sim_w(sm, i), d = o->dep[k][i] / wi;
        double ei = (1.0 + o->w[k][i] * miss + 2.0 * NCPU) / wi;

        dlo = d < dlo ? d : dlo;
        dhi = d > dhi ? d : dhi;
        err = ei > err ? ei : err;
    }
    return dhi - dlo + 2 * err;
}

static void sim_compare(const struct sim *sm, const char *what)
{
    static struct sim_out o;
    static uint32_t ideal[SIM_MAXK + 1][SIM_MAXR];
    struct sim_flow *f;
    size_t nf;
    int conv = -1, ideal_conv = -1, settled;
    double sum_spread = 0, sum_ideal = 0, sum_bound = 0, mean_a[SIM_MAXR] = { 0 };
    double mean_i[SIM_MAXR] = { 0 }, total = 0;

    f = sim_flows(sm, &nf);
    sim_table(sm, f, nf, &o);
    sim_ideal(sm, f, nf, ideal);
    free(f);

    for (int k = 0; k <= sm->k; k++) {
        uint32_t sa = 0, si = 0;

        for (size_t i = 0; i < sm->n; i++) {
            sa += o.act[k][i];
            si += ideal[k][i];
        }
        /* the same connections live in both: only their placement differs */
        cr_assert_eq(sa, si, "%s: %u vs %u connections at %d", what, sa, si, k);
        if (ideal_conv < 0 && spread(sm, ideal[k]) <= 2)
            ideal_conv = k;
    }
    /* converged: every real below the level, so every real gets flows */
    for (int k = 0; k < sm->k && conv < 0; k++) {
        bool all = true;

        for (size_t i = 0; i < sm->n; i++)
            all &= o.w[k][i] > 0;
        if (all)
            conv = k;
    }
    cr_log_info("%s: converged at interval %d, the ideal picker at %d", what, conv, ideal_conv);
    cr_assert(ideal_conv > 0 && conv >= 0, "%s did not converge", what);
    cr_assert_leq(conv, ideal_conv + 1, "%s: converged at %d, the ideal picker at %d", what, conv,
                  ideal_conv);

    for (int k = conv; k < sm->k; k++) {
        double b = sim_bound(sm, &o, k), sp = spread(sm, o.act[k + 1]);

        for (size_t i = 0; i < sm->n; i++)
            cr_assert_gt(o.w[k][i], 0, "%s: real %zu above the level again at %d", what, i, k);
        cr_assert_leq(sp, b, "%s: spread %.1f after interval %d, bound %.1f", what, sp, k, b);
    }
    settled = conv + 3;
    cr_assert_lt(settled, sm->k - 10);
    for (int k = settled; k <= sm->k; k++) {
        sum_spread += spread(sm, o.act[k]);
        sum_ideal += spread(sm, ideal[k]);
        if (k < sm->k)
            sum_bound += sim_bound(sm, &o, k);
        for (size_t i = 0; i < sm->n; i++) {
            mean_a[i] += o.act[k][i] / sim_w(sm, i);
            mean_i[i] += ideal[k][i] / sim_w(sm, i);
            total += o.act[k][i];
        }
    }
    cr_log_info("%s: mean spread of active/weight %.1f (bound %.1f), ideal picker %.1f, "
                "%.0f active per interval", what, sum_spread / (sm->k + 1 - settled),
                sum_bound / (sm->k - settled), sum_ideal / (sm->k + 1 - settled),
                total / (sm->k + 1 - settled));
    /* over time both pickers give every real the same active / weight:
     * within 1 % of the ideal's average */
    for (size_t i = 0; i < sm->n; i++)
        cr_expect(fabs(mean_a[i] / mean_i[i] - 1) < 0.01,
                  "%s: real %zu averages %.1f active per weight, ideal %.1f", what, i,
                  mean_a[i] / (sm->k + 1 - settled), mean_i[i] / (sm->k + 1 - settled));
}

Test(sched_lc, converges_from_skew_lc)
{
    struct sim sm = { .n = 4, .weight = { 1, 1, 1, 1 }, .init = { 12000, 1000, 1000, 1000 },
                      .lc = true, .rate = 2000, .life = 10, .interval = 1, .k = 60,
                      .seed = 1234 };

    sim_compare(&sm, "lc");
}

Test(sched_lc, converges_from_skew_wlc)
{
    struct sim sm = { .n = 4, .weight = { 1, 2, 3, 4 }, .init = { 8000, 500, 500, 500 },
                      .lc = false, .rate = 2000, .life = 10, .interval = 1, .k = 60,
                      .seed = 4321 };

    sim_compare(&sm, "wlc");
}

/*
 * Slow start: three lc reals in steady state, a fourth joins at 10 s with
 * a 20 s slow start.  Its weight is capped at ramp * E / 4, and as its
 * connections live far shorter than the slow start (2 s vs 20 s), it stays
 * below its target count, so the cap is what it gets: its share of each
 * interval's new flows is ramp / 4 to within one flow of rounding (1 / E)
 * and 2 flows per CPU of table walk (4 / A).  The ramp rises 0.9 / 20 / 4
 * per interval, more than those two slacks, so the share rises every
 * interval.  Once slow start is over and the connections of the ramp have
 * turned over (3 mean lives), it averages the full 1/4.
 */
Test(sched_lc, slow_start_ramps_the_share)
{
    static struct sim_out o;
    struct sim sm = { .n = 4, .weight = { 1, 1, 1, 1 }, .init = { 1333, 1333, 1334, 0 },
                      .lc = true, .rate = 2000, .life = 2, .interval = 1, .k = 50,
                      .join_k = 10, .slow_start_ms = 20000, .seed = 777 };
    struct sim_flow *f;
    size_t nf;
    double prev = 0, sum = 0;
    int full_k = 10 + 20, settled = full_k + 6, nsettled = 0;

    f = sim_flows(&sm, &nf);
    sim_table(&sm, f, nf, &o);
    free(f);
    for (int k = 0; k < sm.k; k++) {
        double share = (double)o.got[k][3] / o.a[k];
        double ramp = xlb_sched_ramp((uint64_t)k * 1000, 10000, 20000);
        double slack = 1.0 / o.e[k] + 2.0 * NCPU / o.a[k];

        if (k < sm.join_k) {
            cr_assert_eq(o.got[k][3], 0, "unusable real got flows at %d", k);
            continue;
        }
        if (k < full_k) {
            cr_assert(fabs(share - ramp / 4) <= slack, "share %.4f at %d, ramp / 4 = %.4f",
                      share, k, ramp / 4);
            cr_assert_gt(share, prev, "share fell from %.4f to %.4f at %d", prev, share, k);
            prev = share;
        }
        if (k >= settled) {
            cr_assert(fabs(share - 0.25) < 0.06, "share %.4f at %d", share, k);
            sum += share;
            nsettled++;
        }
    }
    cr_log_info("slow start: share %.4f at the end of the ramp, %.4f on average after",
                prev, sum / nsettled);
    cr_assert(fabs(sum / nsettled - 0.25) < 0.01, "average share %.4f after slow start",
              sum / nsettled);
}
