// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_maglev.c - consistent hashing of the whole 5-tuple: a weighted
 * Maglev table (common/maglev.c) over the configured weights.  Every node
 * with the same reals builds the same table, so a flow that moves to
 * another balancer (ECMP change) still reaches its real, and a change of
 * the set of reals moves few flows.
 */
#include "xlb_sched.h"


const struct xlb_sched xlb_sched_maglev = {
    .name = "maglev",
    .id = XLB_SCHED_MAGLEV,
    .kind = XLB_TABLE_HASH,
    .weights = xlb_sched_configured_weights,
    .dynamic = false,
};
