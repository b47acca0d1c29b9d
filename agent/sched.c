// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched.c - scheduler registry, slow-start ramp and the table builder.
 *
 * Sequence tables
 * ===============
 *
 * A sequence table is walked by a per-CPU counter, so consecutive new flows
 * on one CPU take consecutive entries.  It must give every real its share of
 * entries and spread those entries evenly: a table holding all of a real's
 * entries in one block would send it a burst of new flows.  The entries come
 * from smooth weighted round robin: every step adds w_i to a running value
 * c_i of each real, picks the real with the largest c_i (the lowest index on
 * a tie) and subtracts the total S from the pick.  After t steps
 * c_i = t * w_i - S * picks_i(t), so c_i / S is how far real i is ahead of
 * or behind its exact share; the c_i sum to 0 and after S steps every c_i is
 * 0 again, real i having appeared exactly w_i times.  A pick only happens at
 * the largest c_i, which is positive, so c_i > -S.  The variation of c_i
 * over a period stays below 2 S: in ANY window of consecutive entries,
 * cyclic ones included, real i appears within 2 of window * w_i / S times.
 * We know no short proof of that; tests/unit/test_sched.c checks it for
 * every weight set of up to 4 reals with weights up to 12 and for random
 * ones.  The worst case we found, k - 1 equal weights and one heavier by
 * one, comes to 2 - 2 / k.
 *
 * The weights are divided by their gcd first, so the table is as short as
 * the ratios allow.  A table longer than max_len is scaled down: every real
 * whose proportional share is below one entry keeps one entry, the others
 * share the rest by largest remainder (each within one entry of its exact
 * share), and the gcd is taken again.
 *
 * Reals with equal weights are picked in index order within their class
 * (their c_i differ only by how often each was picked), so a step compares
 * one candidate per distinct weight rather than every real.  Distinct
 * positive weights summing to at most S number below sqrt(2 S), which
 * bounds a build of the longest table at about 65536 * 362 comparisons
 * (some 50 ms); a table of a few hundred entries over ten reals takes
 * microseconds.
 */
#include "xlb_sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "maglev.h"
#include "xlb_abi.h"

static const struct xlb_sched *const sched_by_id[] = {
    [XLB_SCHED_RR] = &xlb_sched_rr,
    [XLB_SCHED_WRR] = &xlb_sched_wrr,
    [XLB_SCHED_LC] = &xlb_sched_lc,
    [XLB_SCHED_WLC] = &xlb_sched_wlc,
    [XLB_SCHED_ADAPTIVE] = &xlb_sched_adaptive,
    [XLB_SCHED_FIXED] = &xlb_sched_fixed,
    [XLB_SCHED_WRT] = &xlb_sched_wrt,
    [XLB_SCHED_SH] = &xlb_sched_sh,
    [XLB_SCHED_MAGLEV] = &xlb_sched_maglev,
};

const struct xlb_sched *xlb_sched_get(enum xlb_cfg_sched id)
{
    size_t i = (size_t)id;

    if (i >= sizeof(sched_by_id) / sizeof(sched_by_id[0]) || !sched_by_id[i]) {
        errno = ENOENT;
        return NULL;
    }
    return sched_by_id[i];
}

double xlb_sched_ramp(uint64_t now_ms, uint64_t since_ms, uint32_t slow_start_ms)
{
    if (!slow_start_ms)
        return 1.0;
    if (now_ms <= since_ms)
        return XLB_SCHED_RAMP_START;
    if (now_ms - since_ms >= slow_start_ms)
        return 1.0;
    return XLB_SCHED_RAMP_START +
           (1.0 - XLB_SCHED_RAMP_START) * (double)(now_ms - since_ms) / slow_start_ms;
}

bool xlb_sched_eligible(const struct xlb_sched_in *in)
{
    return in->usable && in->weight > 0;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

/* One real with a positive weight in a sequence build. */
struct seq_real {
    uint64_t v;         /* weight, reduced and scaled */
    uint64_t rem;       /* scaling: remainder of the proportional share */
    uint32_t idx;       /* index into the caller's arrays */
    bool fixed;         /* scaling: held at one entry */
};

/* Reals of one weight class, picked in index order. */
struct seq_class {
    int64_t cur;        /* running value of the class's next candidate */
    int64_t v;
    uint32_t idx;       /* the candidate: caller's index of r[first + pos] */
    uint32_t pos;
    uint32_t first;     /* members are r[first .. first + m - 1] */
    uint32_t m;
};

static int seq_by_rem(const void *pa, const void *pb)
{
    const struct seq_real *a = pa, *b = pb;

    if (a->rem != b->rem)
        return a->rem > b->rem ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int seq_by_weight(const void *pa, const void *pb)
{
    const struct seq_real *a = pa, *b = pb;

    if (a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int seq_by_idx(const void *pa, const void *pb)
{
    const struct seq_real *a = pa, *b = pb;

    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Divide the weights of r[0..k-1] by their gcd; returns their new sum. */
static uint64_t seq_reduce(struct seq_real *r, size_t k)
{
    uint64_t g = 0, sum = 0;

    for (size_t i = 0; i < k; i++)
        g = gcd64(g, r[i].v);
    for (size_t i = 0; i < k; i++) {
        r[i].v /= g;
        sum += r[i].v;
    }
    return sum;
}

/*
 * Scale the k weights of r[] (sum > max_len >= k) to sum exactly max_len,
 * every weight >= 1: reals whose share is below one entry are held at one,
 * repeatedly, then the rest share what is left by largest remainder.
 * Reorders r[].
 */
static void seq_scale(struct seq_real *r, size_t k, uint64_t max_len)
{
    uint64_t budget, free_sum, given = 0;
    size_t nfixed = 0, nfree = 0, extra;
    bool changed;

    do {
        changed = false;
        budget = max_len - nfixed;
        free_sum = 0;
        for (size_t i = 0; i < k; i++)
            if (!r[i].fixed)
                free_sum += r[i].v;
        for (size_t i = 0; i < k; i++) {
            /* v < 2^32 and budget <= 2^32: the product fits */
            if (!r[i].fixed && r[i].v * budget < free_sum) {
                r[i].fixed = true;
                nfixed++;
                changed = true;
            }
        }
    } while (changed && nfixed < k);

    budget = max_len - nfixed;
    free_sum = 0;
    for (size_t i = 0; i < k; i++)
        if (!r[i].fixed)
            free_sum += r[i].v;
    for (size_t i = 0; i < k; i++) {
        if (r[i].fixed) {
            r[i].v = 1;
            r[i].rem = 0;
            continue;
        }
        uint64_t share = r[i].v * budget;

        r[i].v = share / free_sum;
        r[i].rem = share % free_sum;
        given += r[i].v;
        nfree++;
    }
    if (!nfree)
        return;
    /* Fixed reals have rem 0 and sort after every free one with rem > 0;
     * fewer than nfree entries are left, so only free reals get one. */
    extra = (size_t)(budget - given);
    qsort(r, k, sizeof(*r), seq_by_rem);
    for (size_t i = 0; i < extra; i++)
        r[i].v++;
}

/* Smooth weighted round robin over r[0..k-1] (sum total) into table[]. */
static int seq_fill(struct seq_real *r, size_t k, uint64_t total, const uint32_t *values,
                    uint32_t *table)
{
    struct seq_class *cls;
    size_t ncls = 0;

    qsort(r, k, sizeof(*r), seq_by_weight);
    for (size_t i = 0; i < k; i++)
        if (!i || r[i].v != r[i - 1].v)
            ncls++;
    cls = calloc(ncls, sizeof(*cls));
    if (!cls)
        return -ENOMEM;
    ncls = 0;
    for (size_t i = 0; i < k; i++) {
        if (!i || r[i].v != r[i - 1].v) {
            cls[ncls].v = (int64_t)r[i].v;
            cls[ncls].first = (uint32_t)i;
            cls[ncls].idx = r[i].idx;
            ncls++;
        }
        cls[ncls - 1].m++;
    }
    for (uint64_t t = 0; t < total; t++) {
        struct seq_class *best = &cls[0];

        cls[0].cur += cls[0].v;
        for (size_t c = 1; c < ncls; c++) {
            struct seq_class *cl = &cls[c];

            cl->cur += cl->v;
            if (cl->cur > best->cur || (cl->cur == best->cur && cl->idx < best->idx))
                best = cl;
        }
        table[t] = values[best->idx];
        /* The next member has the same value, unless the class went round. */
        if (++best->pos == best->m) {
            best->pos = 0;
            best->cur -= (int64_t)total;
        }
        best->idx = r[best->first + best->pos].idx;
    }
    free(cls);
    return 0;
}

static int build_seq(const uint32_t *w, const uint32_t *values, size_t n, size_t k,
                     uint32_t max_len, uint32_t *table, uint32_t *len)
{
    struct seq_real *r;
    uint64_t total;
    int err;

    if (k > max_len)
        return -E2BIG;
    r = calloc(k, sizeof(*r));
    if (!r)
        return -ENOMEM;
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w[i])
            continue;
        if (values[i] == XLB_SEL_EMPTY) {
            err = -EINVAL;
            goto out;
        }
        r[k].v = w[i];
        r[k].idx = (uint32_t)i;
        k++;
    }
    total = seq_reduce(r, k);
    if (total > max_len) {
        seq_scale(r, k, max_len);
        qsort(r, k, sizeof(*r), seq_by_idx);
        total = seq_reduce(r, k);
    }
    err = seq_fill(r, k, total, values, table);
    if (!err)
        *len = (uint32_t)total;
out:
    free(r);
    return err;
}

static int build_hash(const struct xlb_sched_in *in, const uint32_t *w, const uint32_t *values,
                      size_t n, size_t k, uint32_t ring_size, uint32_t *table, uint32_t *len)
{
    struct xlb_maglev_backend *b;
    int err;

    if (!in || !xlb_is_prime(ring_size))
        return -EINVAL;
    b = calloc(k, sizeof(*b));
    if (!b)
        return -ENOMEM;
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w[i])
            continue;
        b[k].id = in[i].id;
        b[k].id_len = in[i].id_len;
        b[k].weight = w[i];
        b[k].value = values[i];
        k++;
    }
    err = xlb_maglev_build(b, k, table, ring_size);
    if (!err)
        *len = ring_size;
    free(b);
    return err;
}

int xlb_sched_build(enum xlb_table_kind kind, const struct xlb_sched_in *in, const uint32_t *w,
                    const uint32_t *values, size_t n, uint32_t ring_size, uint32_t max_len,
                    uint32_t *table, uint32_t *len)
{
    size_t k = 0;

    if (!table || !len || (n && (!w || !values)))
        return -EINVAL;
    if (kind != XLB_TABLE_HASH && kind != XLB_TABLE_HASH_SRC && kind != XLB_TABLE_SEQ)
        return -EINVAL;
    if (!ring_size)
        ring_size = XLB_RING_DEFAULT;
    if (!max_len)
        max_len = XLB_SEQ_MAX_LEN;
    for (size_t i = 0; i < n; i++)
        k += w[i] > 0;
    if (!k) {
        if (kind != XLB_TABLE_SEQ && !xlb_is_prime(ring_size))
            return -EINVAL;
        table[0] = XLB_SEL_EMPTY;
        *len = 1;
        return 0;
    }
    if (kind == XLB_TABLE_SEQ)
        return build_seq(w, values, n, k, max_len, table, len);
    return build_hash(in, w, values, n, k, ring_size, table, len);
}

int xlb_sched_configured_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in,
                                 size_t n, uint32_t *out)
{
    (void)ctx;
    if (n && (!in || !out))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i].usable ? in[i].weight : 0;
    return 0;
}
