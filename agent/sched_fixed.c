// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_fixed.c - fixed (active/standby): every new flow goes to one real,
 * the eligible real with the highest configured weight, the first in input
 * order on a tie.  When it becomes unusable the next one in that order takes
 * over, and it takes the traffic back once usable again.  Established flows
 * stay where they are either way (the connection table keeps them).
 */
#include "xlb_sched.h"

#include <errno.h>

/* out[] = 1 for the chosen real, 0 for all others (all 0 if none is eligible). */
static int fixed_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in,
                         size_t n, uint32_t *out)
{
    size_t best = n;

    (void)ctx;
    if (n && (!in || !out))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        out[i] = 0;
        if (xlb_sched_eligible(&in[i]) && (best == n || in[i].weight > in[best].weight))
            best = i;
    }
    if (best < n)
        out[best] = 1;
    return 0;
}

const struct xlb_sched xlb_sched_fixed = {
    .name = "fixed",
    .id = XLB_SCHED_FIXED,
    .kind = XLB_TABLE_SEQ,
    .weights = fixed_weights,
    .dynamic = false,
};
