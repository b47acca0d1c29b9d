/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_sched.h - the agent's schedulers: one file each (sched_rr.c, sched_wrr.c,
 * sched_lc.c, sched_wlc.c, sched_adaptive.c, sched_fixed.c, sched_wrt.c,
 * sched_sh.c, sched_maglev.c), one interface.
 *
 * The data plane knows two kinds of selection table (bpf/xlb_abi.h):
 *   - hash tables (Maglev), indexed by a flow hash: the 5-tuple, or the
 *     source address alone for `sh`;
 *   - sequence tables, indexed by a per-CPU counter: a weighted, interleaved
 *     sequence of reals, so that consecutive new flows visit the reals in
 *     proportion to their weights.
 * A scheduler turns what the agent knows of each real (configured weight,
 * usability, active connections, reported load, check response time, slow
 * start) into one effective weight per real and says which kind of table
 * carries them.  xlb_sched_build() then builds the table.  Schedulers are
 * pure: no I/O, time passed in, so tests drive them on a simulated
 * population.
 */
#ifndef XLB_XLB_SCHED_H
#define XLB_XLB_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "xlb_config.h"

enum xlb_table_kind {
    XLB_TABLE_HASH = 1,         /* Maglev over the 5-tuple hash */
    XLB_TABLE_HASH_SRC,         /* Maglev over the source-address hash */
    XLB_TABLE_SEQ,              /* weighted sequence, per-CPU counter */
};

/* What the agent knows of one real of a service. */
struct xlb_sched_in {
    const void *id;             /* stable identity (family + address) for Maglev */
    size_t id_len;
    uint32_t weight;            /* configured (or operator-set) weight, 0..65535 */
    bool usable;                /* up, not drained, not halted, below max_conns */
    uint32_t active;            /* active connections counted in the data plane */
    int load;                   /* adaptive: 0..100 from the real, -1 = unreadable */
    double rt_ms;               /* wrt: mean check response time, <= 0 = unknown */
    double ramp;                /* slow start: 0 < ramp <= 1 share of the full weight
                                 * (lc/wlc; any other value counts as 1) */
};

struct xlb_sched_ctx {
    uint64_t now_ms;
    uint32_t expected_new;      /* lc/wlc: new flows expected before the next rebalance */
};

struct xlb_sched {
    const char *name;           /* as in the config */
    enum xlb_cfg_sched id;
    enum xlb_table_kind kind;
    /* Effective weight of each of the n reals into out[] (0 = no new flows).
     * Unusable reals must get 0.  Returns 0 or a negative errno. */
    int (*weights)(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                   uint32_t *out);
    /* Whether the result depends on active counts (rebuilt every rebalance). */
    bool dynamic;
};

extern const struct xlb_sched xlb_sched_rr, xlb_sched_wrr, xlb_sched_lc, xlb_sched_wlc,
    xlb_sched_adaptive, xlb_sched_fixed, xlb_sched_wrt, xlb_sched_sh, xlb_sched_maglev;

/* The scheduler of a config name; NULL with errno = ENOENT for an unknown id. */
const struct xlb_sched *xlb_sched_get(enum xlb_cfg_sched id);

/* The weights of wrr, sh and maglev: the configured weight of every usable
 * real, 0 for the others. */
int xlb_sched_configured_weights(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in,
                                 size_t n, uint32_t *out);

/*
 * Build the selection table for the effective weights w[0..n-1]; values[i]
 * is what the table holds for real i (its data-plane real id).
 *   hash kinds: a Maglev table of ring_size (prime) entries into table[].
 *   sequence kind: an interleaved weighted sequence (smooth weighted round
 *     robin) of sum(w)/gcd(w) entries, at most max_len (shares scaled down
 *     proportionally when longer), into table[].
 * No usable weight: *len = 1 and table[0] = XLB_SEL_EMPTY.
 * table must hold max(ring_size, max_len) entries.  ring_size 0 means
 * XLB_RING_DEFAULT, max_len 0 means XLB_SEQ_MAX_LEN.  Returns 0, -EINVAL
 * (bad kind, no table, ring_size not prime, maglev input errors), -E2BIG
 * (more reals with a positive weight than max_len) or -ENOMEM.
 */
int xlb_sched_build(enum xlb_table_kind kind, const struct xlb_sched_in *in, const uint32_t *w,
                    const uint32_t *values, size_t n, uint32_t ring_size, uint32_t max_len,
                    uint32_t *table, uint32_t *len);

#define XLB_SEQ_MAX_LEN 65536

/*
 * Effective weights are integers in 0..XLB_SCHED_WEIGHT_MAX (65535 * 100):
 * configured weights as they are (rr: 1), adaptive W * (100 - load), wrt
 * W * 100 * fastest / own response time, lc/wlc new flows of the interval
 * (scaled down to this bound when expected_new exceeds it).  Only ratios
 * matter; docs/schedulers.md has the details.
 */
#define XLB_SCHED_WEIGHT_MAX 6553500u

/* Share of the full weight a real gets when its slow start begins. */
#define XLB_SCHED_RAMP_START 0.1

/*
 * Slow-start share at now_ms of a real usable since since_ms: grows
 * linearly from XLB_SCHED_RAMP_START to 1 over slow_start_ms, 1 afterwards
 * and when slow_start_ms is 0; XLB_SCHED_RAMP_START when now_ms < since_ms.
 */
double xlb_sched_ramp(uint64_t now_ms, uint64_t since_ms, uint32_t slow_start_ms);

/* Helpers shared by the scheduler files. */

/* May the real get new flows at all: usable with a configured weight > 0. */
bool xlb_sched_eligible(const struct xlb_sched_in *in);

/*
 * The lc/wlc water-fill (sched_wlc.c explains it): out[i] is the number of
 * the ctx->expected_new (at least 1) new flows real i should get so that
 * active / weight evens out; unit_weights gives every eligible real weight 1
 * (lc).  Sum of out[] = min(expected_new, XLB_SCHED_WEIGHT_MAX) when some
 * real is eligible, else every out[i] is 0.  Returns 0, -EINVAL or -ENOMEM.
 */
int xlb_sched_waterfill(const struct xlb_sched_ctx *ctx, const struct xlb_sched_in *in, size_t n,
                        bool unit_weights, uint32_t *out);

#endif
