// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_wrr.c - weighted round robin: a sequence table over the configured
 * weights of the usable reals.
 */
#include "xlb_sched.h"


const struct xlb_sched xlb_sched_wrr = {
    .name = "wrr",
    .id = XLB_SCHED_WRR,
    .kind = XLB_TABLE_SEQ,
    .weights = xlb_sched_configured_weights,
    .dynamic = false,
};
