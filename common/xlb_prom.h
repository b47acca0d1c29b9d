/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_prom.h - Prometheus text exposition format 0.0.4.
 *
 * Each metric family is written once with its # HELP and # TYPE lines, then
 * its samples; label values are escaped (backslash, quote, newline).
 * Histograms keep cumulative buckets with fixed upper bounds.
 */
#ifndef XLB_PROM_H
#define XLB_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xlb_httpd.h"

/*
 * Every writer returns 0, or -EINVAL (a name that is not a valid metric or
 * label name, an unknown type, a NULL label value) or -ENOMEM; on error
 * the buffer is left exactly as it was.
 */

/* "# HELP name help\n# TYPE name type\n"; type is counter, gauge, histogram
 * (or summary, untyped).  help has backslash and newline escaped; the HELP
 * line is left out when help is NULL or "". */
int xlb_prom_family(struct xlb_buf *b, const char *name, const char *type, const char *help);
/* One sample: name{k1="v1",k2="v2"} value.  labels is a NULL-terminated
 * list of alternating names and values (may be NULL for none).  Label names
 * match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__".  Values are
 * printed in the shortest form that reads back exactly (integers below 2^53
 * as integers), +Inf, -Inf, NaN. */
int xlb_prom_sample(struct xlb_buf *b, const char *name, const char *const *labels, double v);
int xlb_prom_sample_u64(struct xlb_buf *b, const char *name, const char *const *labels,
                        uint64_t v);
/* The text of a sample value as the writers print it; returns buf (40
 * bytes are always enough). */
const char *xlb_prom_fmt_double(double v, char *buf, size_t len);
/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool xlb_prom_metric_name_ok(const char *name);
/* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" */
bool xlb_prom_label_name_ok(const char *name);

#define XLB_PROM_MAX_BUCKETS 16
struct xlb_prom_hist {
    int n;                      /* bounds in use */
    double bounds[XLB_PROM_MAX_BUCKETS];        /* ascending upper bounds, +Inf implied */
    uint64_t counts[XLB_PROM_MAX_BUCKETS + 1];  /* not cumulative; counts[n] is +Inf */
    double sum;
    uint64_t count;
};
/* Empty histogram with n bounds (clamped to 0..XLB_PROM_MAX_BUCKETS);
 * bounds must be finite and strictly ascending, else writing fails. */
void xlb_prom_hist_init(struct xlb_prom_hist *h, const double *bounds, int n);
/* Count v into the first bucket whose bound is >= v (NaN: the +Inf one). */
void xlb_prom_hist_observe(struct xlb_prom_hist *h, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum, name_count.  The
 * +Inf bucket and _count are the total of counts[] (so histograms summed
 * bucket by bucket stay consistent); a label named "le" is -EINVAL.  The
 * family line (type histogram) is the caller's, as for other metrics. */
int xlb_prom_hist_write(struct xlb_buf *b, const char *name, const char *const *labels,
                        const struct xlb_prom_hist *h);

#endif
