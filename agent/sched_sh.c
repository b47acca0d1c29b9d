// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_sh.c - source hashing: a Maglev table over the configured weights,
 * indexed by a hash of the source address alone, so every flow of one
 * client goes to the same real while the set of reals stays the same, and
 * a change of the set moves few clients.
 */
#include "xlb_sched.h"


const struct xlb_sched xlb_sched_sh = {
    .name = "sh",
    .id = XLB_SCHED_SH,
    .kind = XLB_TABLE_HASH_SRC,
    .weights = xlb_sched_configured_weights,
    .dynamic = false,
};
