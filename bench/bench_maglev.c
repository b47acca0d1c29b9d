// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench_maglev - time to build a Maglev table of 1000 reals at the default
 * size (65537 entries), with equal weights and with two mixes of weights.
 * Each figure is the median and the minimum of REPEAT builds after one
 * warm-up build. The agent rebuilds a table whenever a real's weight or
 * health changes, so this is the control plane's reaction time per service.
 *
 * Usage: bench_maglev [REPEAT]   (default 50)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maglev.h"

#define N_REALS 1000
#define M XLB_MAGLEV_DEFAULT_M

struct mix {
    const char *name;       /* "" for equal weights */
    uint32_t (*weight)(size_t i);
};

static uint32_t w_equal(size_t i)
{
    (void)i;
    return 1;
}

static uint32_t w_1to5(size_t i)
{
    return (uint32_t)(i % 5) + 1;
}

static uint32_t w_tiers(size_t i)
{
    static const uint32_t tiers[] = { 100, 50, 10 };

    return tiers[i % 3];
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Builds REPEAT times; fills *median and *min in microseconds. */
static int run(const struct xlb_maglev_backend *b, size_t n, uint32_t *table, unsigned repeat,
               double *median, double *min)
{
    double *t = malloc(repeat * sizeof(*t));
    int err;

    if (!t)
        return -ENOMEM;
    err = xlb_maglev_build(b, n, table, M);  /* warm-up: page faults, caches */
    for (unsigned r = 0; !err && r < repeat; r++) {
        double t0 = now_us();

        err = xlb_maglev_build(b, n, table, M);
        t[r] = now_us() - t0;
    }
    if (!err) {
        qsort(t, repeat, sizeof(*t), cmp_double);
        *median = repeat % 2 ? t[repeat / 2] : (t[repeat / 2 - 1] + t[repeat / 2]) / 2;
        *min = t[0];
    }
    free(t);
    return err;
}

int main(int argc, char **argv)
{
    static const struct mix mixes[] = {
        { "", w_equal },
        { " weights 1..5", w_1to5 },
        { " weights 100/50/10", w_tiers },
    };
    static uint8_t ids[N_REALS][16];
    static struct xlb_maglev_backend b[N_REALS];
    unsigned repeat = 50;
    uint32_t *table;

    if (argc > 1) {
        char *end;
        unsigned long v = strtoul(argv[1], &end, 10);

        if (*end || !v || v > 1000000) {
            fprintf(stderr, "usage: %s [REPEAT]  (1 to 1000000, default 50)\n", argv[0]);
            return 2;
        }
        repeat = (unsigned)v;
    }
    table = malloc(M * sizeof(*table));
    if (!table) {
        fprintf(stderr, "bench_maglev: out of memory\n");
        return 1;
    }
    /* Identities as the loader passes them: the 16 address bytes of
     * 198.18.x.y (IPv4 in the first word, the rest 0). */
    for (size_t i = 0; i < N_REALS; i++) {
        ids[i][0] = 198;
        ids[i][1] = 18;
        ids[i][2] = (uint8_t)(i >> 8);
        ids[i][3] = (uint8_t)i;
    }
    for (size_t k = 0; k < sizeof(mixes) / sizeof(mixes[0]); k++) {
        double median = 0, min = 0;
        int err;

        for (size_t i = 0; i < N_REALS; i++)
            b[i] = (struct xlb_maglev_backend){ .id = ids[i], .id_len = sizeof(ids[i]),
                                                .weight = mixes[k].weight(i),
                                                .value = (uint32_t)i };
        err = run(b, N_REALS, table, repeat, &median, &min);
        if (err) {
            fprintf(stderr, "bench_maglev: build failed: %s\n", strerror(-err));
            free(table);
            return 1;
        }
        printf("maglev build %d reals m=%u%s: median %.0f us, min %.0f us\n", N_REALS, M,
               mixes[k].name, median, min);
    }
    free(table);
    return 0;
}
