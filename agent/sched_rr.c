// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_rr.c - round robin: every eligible real (usable, configured weight
 * above 0) gets weight 1, so a sequence table visits them in turn.  A
 * configured weight of 0 still means "no new flows", as for every scheduler.
 */
#include "xlb_sched.h"

#include <errno.h>

/* out[i] = 1 for every eligible real, 0 for the others. */
static int rr_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                      uint32_t *out)
{
    (void)ctx;
    if (n && (!in || !out))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = xlb_sched_eligible(&in[i]) ? 1 : 0;
    return 0;
}

const struct xlb_sched xlb_sched_rr = {
    .name = "rr",
    .id = XLB_SCHED_RR,
    .kind = XLB_TABLE_SEQ,
    .weights = rr_weights,
    .dynamic = false,
};
