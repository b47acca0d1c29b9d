// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Prometheus text exposition format 0.0.4 (see xlb_prom.h).
 *
 * Every writer checks its names first and, on any error, puts the buffer
 * back as it was, so a caller that skips a failed family still produces a
 * valid exposition.  Floating-point values are printed in the shortest form
 * that reads back to the same double; integral values below 2^53 therefore
 * come out as plain integers, and u64 samples are always exact.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlb_prom.h"

static bool name_ok(const char *s, bool colon_ok)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char ch = *s;

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || (colon_ok && ch == ':')))
            return false;
    }
    return true;
}

bool xlb_prom_metric_name_ok(const char *name)
{
    return name_ok(name, true);
}

bool xlb_prom_label_name_ok(const char *name)
{
    return name_ok(name, false) && strncmp(name, "__", 2) != 0;
}

const char *xlb_prom_fmt_double(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    } else {
        /* The shortest of 15..17 significant digits that round-trips. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, len, "%.*g", prec, v);
            if (prec == 17 || strtod(buf, NULL) == v)
                break;
        }
    }
    return buf;
}

/* Text with backslash and newline escaped, and the quote too when quote. */
static int add_escaped(struct xlb_buf *b, const char *s, bool quote)
{
    const char *run = s;
    int err = 0;

    for (; *s && !err; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
                          (quote && *s == '"') ? "\\\"" : NULL;

        if (!esc)
            continue;
        err = xlb_buf_add(b, run, (size_t)(s - run));
        if (!err)
            err = xlb_buf_add(b, esc, 2);
        run = s + 1;
    }
    if (!err)
        err = xlb_buf_add(b, run, strlen(run));
    return err;
}

/* Put the buffer back to len after a failed write. */
static int undo(struct xlb_buf *b, size_t len, int err)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
    return err;
}

int xlb_prom_family(struct xlb_buf *b, const char *name, const char *type, const char *help)
{
    size_t len0 = b->len;
    int err = 0;

    if (!xlb_prom_metric_name_ok(name) || !type ||
        (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
         strcmp(type, "summary") && strcmp(type, "untyped")))
        return -EINVAL;
    if (help && *help) {
        err = xlb_buf_printf(b, "# HELP %s ", name);
        if (!err)
            err = add_escaped(b, help, false);
        if (!err)
            err = xlb_buf_add(b, "\n", 1);
    }
    if (!err)
        err = xlb_buf_printf(b, "# TYPE %s %s\n", name, type);
    return err ? undo(b, len0, err) : 0;
}

/*
 * name{k="v",...,extra_k="extra_v"} value-text: the label list, then one
 * more label when extra_name is set (le for buckets).
 */
static int sample_text(struct xlb_buf *b, const char *name, const char *suffix,
                       const char *const *labels, const char *extra_name,
                       const char *extra_value, const char *value)
{
    size_t len0 = b->len;
    bool any = false;
    int err;

    if (!xlb_prom_metric_name_ok(name))
        return -EINVAL;
    err = xlb_buf_printf(b, "%s%s", name, suffix);
    for (int i = 0; !err && labels && labels[i]; i += 2) {
        if (!xlb_prom_label_name_ok(labels[i]) || !labels[i + 1] ||
            (extra_name && !strcmp(labels[i], extra_name))) {
            err = -EINVAL;
            break;
        }
        err = xlb_buf_printf(b, "%s%s=\"", any ? "," : "{", labels[i]);
        if (!err)
            err = add_escaped(b, labels[i + 1], true);
        if (!err)
            err = xlb_buf_add(b, "\"", 1);
        any = true;
    }
    if (!err && extra_name) {
        err = xlb_buf_printf(b, "%s%s=\"", any ? "," : "{", extra_name);
        if (!err)
            err = add_escaped(b, extra_value, true);
        if (!err)
            err = xlb_buf_add(b, "\"", 1);
        any = true;
    }
    if (!err && any)
        err = xlb_buf_add(b, "}", 1);
    if (!err)
        err = xlb_buf_printf(b, " %s\n", value);
    return err ? undo(b, len0, err) : 0;
}

int xlb_prom_sample(struct xlb_buf *b, const char *name, const char *const *labels, double v)
{
    char num[40];

    return sample_text(b, name, "", labels, NULL, NULL, xlb_prom_fmt_double(v, num, sizeof(num)));
}

int xlb_prom_sample_u64(struct xlb_buf *b, const char *name, const char *const *labels,
                        uint64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    return sample_text(b, name, "", labels, NULL, NULL, num);
}

void xlb_prom_hist_init(struct xlb_prom_hist *h, const double *bounds, int n)
{
    memset(h, 0, sizeof(*h));
    if (n < 0)
        n = 0;
    if (n > XLB_PROM_MAX_BUCKETS)
        n = XLB_PROM_MAX_BUCKETS;
    h->n = n;
    if (n)
        memcpy(h->bounds, bounds, (size_t)n * sizeof(*bounds));
}

void xlb_prom_hist_observe(struct xlb_prom_hist *h, double v)
{
    int i = 0;

    /* Bucket i counts bounds[i-1] < v <= bounds[i]; NaN lands in +Inf. */
    while (i < h->n && !(v <= h->bounds[i]))
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

int xlb_prom_hist_write(struct xlb_buf *b, const char *name, const char *const *labels,
                        const struct xlb_prom_hist *h)
{
    char le[40], num[40];
    size_t len0 = b->len;
    uint64_t cum = 0;
    int err = 0;

    if (h->n < 0 || h->n > XLB_PROM_MAX_BUCKETS)
        return -EINVAL;
    for (int i = 0; i < h->n; i++)
        if (!isfinite(h->bounds[i]) || (i && !(h->bounds[i] > h->bounds[i - 1])))
            return -EINVAL;
    for (int i = 0; !err && i <= h->n; i++) {
        cum += h->counts[i];
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        if (i < h->n)
            xlb_prom_fmt_double(h->bounds[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        err = sample_text(b, name, "_bucket", labels, "le", le, num);
    }
    if (!err)
        err = sample_text(b, name, "_sum", labels, NULL, NULL,
                          xlb_prom_fmt_double(h->sum, num, sizeof(num)));
    if (!err) {
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        err = sample_text(b, name, "_count", labels, NULL, NULL, num);
    }
    return err ? undo(b, len0, err) : 0;
}
