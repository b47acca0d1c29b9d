// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_wlc.c - weighted least connections, approximated by a table, and
 * the water-fill that lc (sched_lc.c) shares.
 *
 * The data plane cannot compare active counts per packet, so the agent
 * rebuilds a sequence table every rebalance interval from the counts it
 * reads, a_i, and the number E of new flows it expects before the next
 * rebalance (ctx->expected_new, at least 1).  An ideal least-connection
 * picker would hand each of those E flows to the real with the lowest
 * a_i / W_i: it raises the lowest reals to a common level L, then raises
 * them all together.  The table does the same in one go: with
 *     f(L) = sum_i max(0, L * W_i - a_i),
 * nondecreasing in L, find the L with f(L) = E and give real i the weight
 * x_i = max(0, L * W_i - a_i).  Reals already above the level get nothing
 * until the others catch up; the rest end the interval at a_i / W_i = L.
 * L is found by bisection (f is piecewise linear), and the x_i are turned
 * into integers by largest remainder: they sum to exactly E (or
 * XLB_SCHED_WEIGHT_MAX, scaling down, when E is larger), each within one of
 * its exact value, so at least one real gets a flow.  lc is the same with
 * W_i = 1 for every eligible real.
 *
 * Error bound.  Say all eligible reals are at or below the level (after
 * convergence they are: E spread over the reals lifts L above every count
 * as long as E / sum(W) exceeds the spread).  The interval brings A new
 * flows instead of E, and d_i of real i's connections end.  A sequence
 * table sends real i A * x_i / E + delta_i of them, |delta_i| < 2 for each
 * CPU's counter (sched.c), and x_i was rounded by rho_i, |rho_i| < 1.  So
 * at the next rebalance
 *     a_i' / W_i = L + (rho_i + x_i (A - E) / E + delta_i - d_i) / W_i
 * and the spread max - min of a_i' / W_i over the reals is at most
 *     max_i d_i / W_i - min_i d_i / W_i
 *         + 2 max_i (1 + x_i |A - E| / E + 2 C) / W_i        (C CPUs).
 * The first term is the departures the table could not react to (an ideal
 * picker absorbs them with its next arrivals), the second the error of the
 * arrival estimate, rounding and the table walk.  Nothing accumulates: each
 * rebalance levels the counts again, so the spread stays at that bound
 * rather than growing.  tests/unit/test_sched.c checks it interval by
 * interval against a simulated population.
 *
 * Slow start.  A real in slow start (0 < ramp < 1) enters the fill with
 * W_i * ramp, so its target count is ramp times that of its peers, and its
 * x_i is also capped at ramp * E * W_i / sum(W): its share of the new flows
 * is at most ramp times its fair share.  Without the cap an empty real would
 * take every new flow of the first intervals (its deficit is the whole
 * level), which is the overload slow start exists to prevent.  When every
 * eligible real is capped (all in slow start), they share in proportion to
 * their caps.  Connections that outlive slow_start leave the real below the
 * level when its ramp reaches 1; least connection then fills it up, as it
 * does for any real below the others.
 */
#include "xlb_sched.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct wf_real {
    double w;           /* weight in the fill: W_i * ramp */
    double cap;         /* most flows it may get (INFINITY: no slow start) */
    double x;           /* its flows at the level found */
    double frac;        /* fractional part of the scaled x */
    uint32_t idx;
};

static int wf_by_frac(const void *pa, const void *pb)
{
    const struct wf_real *a = pa, *b = pb;

    if (a->frac != b->frac)
        return a->frac > b->frac ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* min(cap, max(0, level * w - a)) for real r */
static double wf_fill(const struct wf_real *r, const struct xlb_sched_in *in, double level)
{
    double x = level * r->w - (double)in[r->idx].active;

    if (x < 0)
        return 0;
    return x < r->cap ? x : r->cap;
}

int xlb_sched_waterfill(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                        bool unit_weights, uint32_t *out)
{
    double e, wsum = 0, xsum = 0, lo = 0, hi = 0, scale;
    uint64_t total, given = 0, left;
    struct wf_real *r;
    size_t m = 0;
    bool uncapped = false;

    if (!ctx || (n && (!in || !out)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        out[i] = 0;
        if (xlb_sched_eligible(&in[i])) {
            m++;
            wsum += unit_weights ? 1.0 : (double)in[i].weight;
        }
    }
    if (!m)
        return 0;
    r = calloc(m, sizeof(*r));
    if (!r)
        return -ENOMEM;

    e = ctx->expected_new ? (double)ctx->expected_new : 1.0;
    m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!xlb_sched_eligible(&in[i]))
            continue;
        double ramp = in[i].ramp > 0 && in[i].ramp <= 1 ? in[i].ramp : 1.0;
        double wfull = unit_weights ? 1.0 : (double)in[i].weight;
        struct wf_real *ri = &r[m++];

        ri->idx = (uint32_t)i;
        ri->w = wfull * ramp;
        if (ramp < 1) {
            ri->cap = ramp * e * wfull / wsum;
        } else {
            /* At this level the real alone takes e flows: f(hi) >= e. */
            double l = ((double)in[i].active + e) / ri->w;

            ri->cap = INFINITY;
            if (!uncapped || l < hi)
                hi = l;
            uncapped = true;
        }
        ri->x = ri->cap;    /* the fill at an infinite level */
    }
    if (uncapped) {
        /* f(lo) < e <= f(hi) (f(0) = 0); halve until the doubles meet. */
        for (int it = 0; it < 2000; it++) {
            double mid = lo + (hi - lo) / 2, f = 0;

            if (mid <= lo || mid >= hi)
                break;
            for (size_t j = 0; j < m; j++)
                f += wf_fill(&r[j], in, mid);
            if (f >= e)
                hi = mid;
            else
                lo = mid;
        }
        for (size_t j = 0; j < m; j++)
            r[j].x = wf_fill(&r[j], in, hi);
    }
    for (size_t j = 0; j < m; j++)
        xsum += r[j].x;

    /* Largest remainder: integers summing to total, each within one of
     * x_i * total / xsum.  xsum >= e > 0 with an uncapped real, and every
     * cap is positive otherwise. */
    total = ctx->expected_new ? ctx->expected_new : 1;
    if (total > XLB_SCHED_WEIGHT_MAX)
        total = XLB_SCHED_WEIGHT_MAX;
    scale = (double)total / xsum;
    for (size_t j = 0; j < m; j++) {
        double v = r[j].x * scale, fl = floor(v);

        out[r[j].idx] = (uint32_t)fl;
        r[j].frac = v - fl;
        given += (uint64_t)fl;
    }
    left = given < total ? total - given : 0;
    qsort(r, m, sizeof(*r), wf_by_frac);
    for (size_t j = 0; left; j = (j + 1) % m, left--)
        out[r[j].idx]++;
    free(r);
    return 0;
}

/* wlc: the water-fill over the configured weights. */
static int wlc_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                       uint32_t *out)
{
    return xlb_sched_waterfill(ctx, in, n, false, out);
}

const struct xlb_sched xlb_sched_wlc = {
    .name = "wlc",
    .id = XLB_SCHED_WLC,
    .kind = XLB_TABLE_SEQ,
    .weights = wlc_weights,
    .dynamic = true,
};
