// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_lc.c - least connections: the water-fill of sched_wlc.c with every
 * eligible real weighted 1, so the new flows of the next interval go to the
 * reals with the fewest active connections until the counts are level.
 */
#include "xlb_sched.h"

/* out[i] = the new flows real i should get before the next rebalance. */
static int lc_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                      uint32_t *out)
{
    return xlb_sched_waterfill(ctx, in, n, true, out);
}

const struct xlb_sched xlb_sched_lc = {
    .name = "lc",
    .id = XLB_SCHED_LC,
    .kind = XLB_TABLE_SEQ,
    .weights = lc_weights,
    .dynamic = true,
};
