// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_wrt.c - weighted response time: a sequence table whose weights are
 * inversely proportional to each real's mean health-check response time,
 * times its configured weight, recomputed by the agent every ~15 s:
 *     w_i = W_i * 100 * rt_min / rt_i,
 * rt_min the fastest eligible real's time, so the fastest real of weight W
 * gets W * 100 (at most XLB_SCHED_WEIGHT_MAX) and every eligible real at
 * least 1.  A real without a measurement (rt_ms <= 0 or not finite) counts
 * as the median of the known ones: a real just added is neither preferred
 * nor shunned.  With no measurement at all the configured weights apply
 * (wrr).
 */
#include "xlb_sched.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static bool wrt_known(const struct xlb_sched_in *in)
{
    return isfinite(in->rt_ms) && in->rt_ms > 0;
}

static int wrt_cmp(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;

    return a < b ? -1 : a > b;
}

/* out[i] as above; 0 for ineligible reals.  Returns 0, -EINVAL or -ENOMEM. */
static int wrt_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                       uint32_t *out)
{
    double *rt, median, fastest;
    size_t known = 0;

    (void)ctx;
    if (n && (!in || !out))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        known += xlb_sched_eligible(&in[i]) && wrt_known(&in[i]);
    if (!known) {
        for (size_t i = 0; i < n; i++)
            out[i] = xlb_sched_eligible(&in[i]) ? in[i].weight : 0;
        return 0;
    }
    rt = malloc(known * sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    known = 0;
    for (size_t i = 0; i < n; i++)
        if (xlb_sched_eligible(&in[i]) && wrt_known(&in[i]))
            rt[known++] = in[i].rt_ms;
    qsort(rt, known, sizeof(*rt), wrt_cmp);
    median = known % 2 ? rt[known / 2] : (rt[known / 2 - 1] + rt[known / 2]) / 2;
    fastest = rt[0];    /* unknown reals count as the median, never faster */
    free(rt);

    for (size_t i = 0; i < n; i++) {
        double t, w;

        if (!xlb_sched_eligible(&in[i])) {
            out[i] = 0;
            continue;
        }
        t = wrt_known(&in[i]) ? in[i].rt_ms : median;
        w = round((double)in[i].weight * 100.0 * fastest / t);
        out[i] = w < 1 ? 1 : (uint32_t)w;
    }
    return 0;
}

const struct xlb_sched xlb_sched_wrt = {
    .name = "wrt",
    .id = XLB_SCHED_WRT,
    .kind = XLB_TABLE_SEQ,
    .weights = wrt_weights,
    .dynamic = false,
};
