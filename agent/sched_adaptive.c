// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_adaptive.c - adaptive: weights follow the load each real reports
 * (0..100, 100 = saturated; -1 = could not be read), refetched by the agent
 * every adaptive interval.  A sequence table with
 *     w_i = W_i * (100 - load_i)
 * for every eligible real, W_i its configured weight, so a real's share of
 * new flows is proportional to its spare capacity.  Special cases:
 *   - while every eligible real reports 0 or cannot be read there is
 *     nothing to go by: plain round robin, weight 1 each;
 *   - a real that cannot be read while others can counts as their average
 *     load: it keeps a share like theirs rather than being starved or
 *     flooded for a failed fetch;
 *   - a saturated real (100) gets nothing while some other real has
 *     capacity; when every real is saturated they share by configured
 *     weight, since the flows have to go somewhere;
 *   - a real below 100 keeps at least weight 1.
 * Loads above 100 count as 100, values below -1 as unreadable.  The
 * largest weight is 65535 * 100 = XLB_SCHED_WEIGHT_MAX.
 */
#include "xlb_sched.h"

#include <errno.h>
#include <math.h>

static int ad_load(const struct xlb_sched_in *in)
{
    if (in->load < 0)
        return -1;
    return in->load > 100 ? 100 : in->load;
}

/* out[i] = W_i * (100 - load_i) with the rules above; 0 for ineligible reals. */
static int adaptive_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in,
                            size_t n, uint32_t *out)
{
    double sum = 0, avg;
    size_t readable = 0;
    bool any_load = false, capacity = false;

    (void)ctx;
    if (n && (!in || !out))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int l = ad_load(&in[i]);

        if (!xlb_sched_eligible(&in[i]) || l < 0)
            continue;
        readable++;
        sum += l;
        any_load |= l > 0;
    }
    if (!any_load) {
        for (size_t i = 0; i < n; i++)
            out[i] = xlb_sched_eligible(&in[i]) ? 1 : 0;
        return 0;
    }
    avg = sum / (double)readable;
    for (size_t i = 0; i < n; i++) {
        int l = ad_load(&in[i]);

        if (xlb_sched_eligible(&in[i]) && (l < 0 ? avg : l) < 100)
            capacity = true;
    }
    for (size_t i = 0; i < n; i++) {
        int l = ad_load(&in[i]);
        double load = l < 0 ? avg : l, w;

        if (!xlb_sched_eligible(&in[i])) {
            out[i] = 0;
            continue;
        }
        if (!capacity) {
            out[i] = in[i].weight;
            continue;
        }
        w = round((double)in[i].weight * (100.0 - load));
        out[i] = load >= 100 ? 0 : w < 1 ? 1 : (uint32_t)w;
    }
    return 0;
}

const struct xlb_sched xlb_sched_adaptive = {
    .name = "adaptive",
    .id = XLB_SCHED_ADAPTIVE,
    .kind = XLB_TABLE_SEQ,
    .weights = adaptive_weights,
    .dynamic = false,
};
