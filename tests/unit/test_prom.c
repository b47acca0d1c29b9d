// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Prometheus text writer: exact text for families, samples, escaping,
 * numbers and histograms; errors leave the buffer as it was; and a sample
 * exposition of several families must pass `promtool check metrics`
 * (parser and linter).  promtool is a test dependency: when it is missing
 * the test fails and says so.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "xlb_prom.h"

static const char *text(const struct xlb_buf *b)
{
    return b->data ? b->data : "";
}

Test(prom, buf_basics)
{
    struct xlb_buf b = { 0 };

    cr_assert_eq(xlb_buf_add(&b, "ab", 2), 0);
    cr_assert_eq(xlb_buf_printf(&b, "%d-%s", 42, "x"), 0);
    cr_assert_str_eq(b.data, "ab42-x");
    cr_assert_eq(b.len, 6);
    /* Growth through printf past the first reservation. */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(xlb_buf_printf(&b, "%0100d", i), 0);
    cr_assert_eq(b.len, 6 + 100 * 100);
    cr_assert_eq(strlen(b.data), b.len);
    xlb_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    xlb_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.cap, 0);
    xlb_buf_free(NULL);
}

Test(prom, family_lines)
{
    struct xlb_buf b = { 0 };

    cr_assert_eq(xlb_prom_family(&b, "xlb_packets_total", "counter", "Packets seen."), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_up", "gauge", "Line one\nback\\slash \"quoted\""), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_x", "histogram", NULL), 0);
    cr_assert_eq(xlb_prom_family(&b, "ns:xlb_y", "untyped", ""), 0);
    cr_assert_str_eq(text(&b),
                     "# HELP xlb_packets_total Packets seen.\n"
                     "# TYPE xlb_packets_total counter\n"
                     "# HELP xlb_up Line one\\nback\\\\slash \"quoted\"\n"
                     "# TYPE xlb_up gauge\n"
                     "# TYPE xlb_x histogram\n"
                     "# TYPE ns:xlb_y untyped\n");
    xlb_buf_free(&b);
}

Test(prom, bad_names_leave_the_buffer_alone)
{
    static const char *const bad_label[] = { "vs", "a", "0bad", "b", NULL };
    static const char *const reserved[] = { "__name__", "x", NULL };
    static const char *const no_value[] = { "vs", NULL, NULL };
    static const char *const le[] = { "le", "1", NULL };
    struct xlb_prom_hist h;
    struct xlb_buf b = { 0 };
    const double bad_bounds[] = { 1, 1 };

    cr_assert_eq(xlb_prom_family(&b, "ok", "gauge", "fine"), 0);
    size_t len = b.len;
    char *copy = strdup(b.data);

    cr_expect_eq(xlb_prom_family(&b, "9lives", "gauge", "x"), -EINVAL);
    cr_expect_eq(xlb_prom_family(&b, "a-b", "gauge", "x"), -EINVAL);
    cr_expect_eq(xlb_prom_family(&b, "", "gauge", "x"), -EINVAL);
    cr_expect_eq(xlb_prom_family(&b, "a", "countr", "x"), -EINVAL);
    cr_expect_eq(xlb_prom_family(&b, "a", NULL, "x"), -EINVAL);
    cr_expect_eq(xlb_prom_sample(&b, "a b", NULL, 1), -EINVAL);
    cr_expect_eq(xlb_prom_sample(&b, "m", bad_label, 1), -EINVAL);
    cr_expect_eq(xlb_prom_sample(&b, "m", reserved, 1), -EINVAL);
    cr_expect_eq(xlb_prom_sample_u64(&b, "m", no_value, 1), -EINVAL);
    xlb_prom_hist_init(&h, NULL, 0);
    cr_expect_eq(xlb_prom_hist_write(&b, "h", le, &h), -EINVAL);
    cr_expect_eq(xlb_prom_hist_write(&b, "h", bad_label, &h), -EINVAL);
    xlb_prom_hist_init(&h, bad_bounds, 2);
    cr_expect_eq(xlb_prom_hist_write(&b, "h", NULL, &h), -EINVAL, "bounds not ascending");
    h.n = 1;
    h.bounds[0] = INFINITY;
    cr_expect_eq(xlb_prom_hist_write(&b, "h", NULL, &h), -EINVAL, "+Inf is implied, not a bound");
    cr_expect_eq(b.len, len);
    cr_expect_str_eq(b.data, copy);
    cr_expect(xlb_prom_metric_name_ok("a:b_c9"));
    cr_expect_not(xlb_prom_label_name_ok("a:b"));
    cr_expect(xlb_prom_label_name_ok("_x"));
    free(copy);
    xlb_buf_free(&b);
}

Test(prom, samples_and_label_escaping)
{
    static const char *const labels[] = { "vs", "web", "rs", "198.18.0.10:80", NULL };
    static const char *const nasty[] = { "v", "a\"b\\c\nd", "empty", "", NULL };
    static const char *const none[] = { NULL };
    struct xlb_buf b = { 0 };

    cr_assert_eq(xlb_prom_sample(&b, "xlb_up", NULL, 1), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_up", none, 0), 0);
    cr_assert_eq(xlb_prom_sample_u64(&b, "xlb_bytes_total", labels, 1234567), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_weird", nasty, -1.5), 0);
    cr_assert_str_eq(text(&b),
                     "xlb_up 1\n"
                     "xlb_up 0\n"
                     "xlb_bytes_total{vs=\"web\",rs=\"198.18.0.10:80\"} 1234567\n"
                     "xlb_weird{v=\"a\\\"b\\\\c\\nd\",empty=\"\"} -1.5\n");
    xlb_buf_free(&b);
}

static void expect_num(double v, const char *want)
{
    char buf[40];

    cr_expect_str_eq(xlb_prom_fmt_double(v, buf, sizeof(buf)), want, "value %.17g", v);
}

Test(prom, numbers)
{
    struct xlb_buf b = { 0 };
    char buf[40];

    expect_num(0, "0");
    expect_num(-0.0, "-0");
    expect_num(1, "1");
    expect_num(42, "42");
    expect_num(-7, "-7");
    expect_num(0.1, "0.1");
    expect_num(2.5e-3, "0.0025");
    expect_num(123456789.125, "123456789.125");
    expect_num(9007199254740992.0, "9007199254740992");     /* 2^53 */
    expect_num(1e300, "1e+300");
    expect_num(1.0 / 3.0, "0.3333333333333333");
    expect_num(0.1 + 0.2, "0.30000000000000004");     /* needs all 17 digits */
    expect_num(NAN, "NaN");
    expect_num(INFINITY, "+Inf");
    expect_num(-INFINITY, "-Inf");
    /* Whatever comes out reads back to the same double. */
    {
        const double vals[] = { DBL_MIN, DBL_MAX, 0.3, 1e-7, 4.35, 2.0 / 3.0, 5e-324 };

        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
            cr_expect_eq(strtod(xlb_prom_fmt_double(vals[i], buf, sizeof(buf)), NULL), vals[i],
                         "%s", buf);
    }
    cr_assert_eq(xlb_prom_sample_u64(&b, "a", NULL, UINT64_MAX), 0);
    cr_assert_eq(xlb_prom_sample_u64(&b, "b", NULL, (1ull << 53) + 1), 0);
    cr_assert_eq(xlb_prom_sample(&b, "c", NULL, NAN), 0);
    cr_assert_eq(xlb_prom_sample(&b, "d", NULL, -INFINITY), 0);
    cr_assert_str_eq(text(&b), "a 18446744073709551615\nb 9007199254740993\nc NaN\nd -Inf\n");
    xlb_buf_free(&b);
}

Test(prom, histogram_text)
{
    static const double bounds[] = { 0.005, 0.01, 0.1, 1, 2.5 };
    static const char *const labels[] = { "vs", "web \"main\"", NULL };
    static const double obs[] = { 0.001, 0.005, 0.0050001, 0.05, 0.1, 0.7, 1, 3, 100 };
    struct xlb_prom_hist h;
    struct xlb_buf b = { 0 };

    xlb_prom_hist_init(&h, bounds, 5);
    cr_assert_eq(h.n, 5);
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        xlb_prom_hist_observe(&h, obs[i]);
    /* A value equal to a bound belongs to that bound's bucket. */
    cr_expect_eq(h.counts[0], 2);
    cr_expect_eq(h.counts[1], 1);
    cr_expect_eq(h.counts[2], 2);
    cr_expect_eq(h.counts[3], 2);
    cr_expect_eq(h.counts[4], 0);
    cr_expect_eq(h.counts[5], 2);
    cr_expect_eq(h.count, 9);
    h.sum = 104.5;              /* a round sum keeps the expected text readable */

    cr_assert_eq(xlb_prom_hist_write(&b, "xlb_check_duration_seconds", labels, &h), 0);
    cr_assert_str_eq(text(&b),
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"0.005\"} 2\n"
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"0.01\"} 3\n"
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"0.1\"} 5\n"
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"1\"} 7\n"
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"2.5\"} 7\n"
        "xlb_check_duration_seconds_bucket{vs=\"web \\\"main\\\"\",le=\"+Inf\"} 9\n"
        "xlb_check_duration_seconds_sum{vs=\"web \\\"main\\\"\"} 104.5\n"
        "xlb_check_duration_seconds_count{vs=\"web \\\"main\\\"\"} 9\n");
    xlb_buf_free(&b);

    /* Without labels and without bounds: only +Inf.  NaN lands there. */
    xlb_prom_hist_init(&h, NULL, 0);
    xlb_prom_hist_observe(&h, 2);
    xlb_prom_hist_observe(&h, NAN);
    cr_assert_eq(xlb_prom_hist_write(&b, "h", NULL, &h), 0);
    cr_assert_str_eq(text(&b), "h_bucket{le=\"+Inf\"} 2\nh_sum NaN\nh_count 2\n");
    xlb_buf_free(&b);

    /* More bounds than fit are cut to the maximum. */
    {
        double many[XLB_PROM_MAX_BUCKETS + 4];

        for (int i = 0; i < XLB_PROM_MAX_BUCKETS + 4; i++)
            many[i] = i + 1;
        xlb_prom_hist_init(&h, many, XLB_PROM_MAX_BUCKETS + 4);
        cr_expect_eq(h.n, XLB_PROM_MAX_BUCKETS);
        xlb_prom_hist_observe(&h, 1000);
        cr_expect_eq(h.counts[XLB_PROM_MAX_BUCKETS], 1);
    }
}

/* Feed text to `promtool check metrics`; its exit status, its output in out. */
static int promtool_check(const char *text, char *out, size_t outlen)
{
    char path[] = "/tmp/xlb-prom-XXXXXX", cmd[128];
    FILE *p, *f;
    size_t n;
    int fd, st;

    fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "promtool check metrics >%s 2>&1", path);
    p = popen(cmd, "w");
    cr_assert(p, "popen: %s", strerror(errno));
    fputs(text, p);
    st = pclose(p);
    f = fopen(path, "r");
    n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
    cr_assert(WIFEXITED(st), "promtool did not exit normally");
    cr_assert_neq(WEXITSTATUS(st), 127, "promtool is not installed (package prometheus); "
                  "this test needs it");
    return WEXITSTATUS(st);
}

Test(prom, exposition_passes_promtool)
{
    static const double bounds[] = { 0.001, 0.01, 0.1, 1 };
    static const char *const web[] = { "vs", "web", "code", "200", NULL };
    static const char *const web5[] = { "vs", "web", "code", "503", NULL };
    static const char *const rs1[] = { "vs", "web", "rs", "198.18.0.10:80", NULL };
    static const char *const rs2[] = { "vs", "say \"hi\"\\now\nnext", "rs", "[fd00::1]:80", NULL };
    static const char *const hl[] = { "vs", "web", NULL };
    struct xlb_prom_hist h;
    struct xlb_buf b = { 0 };
    char out[4096];
    int rc;

    cr_assert_eq(xlb_prom_family(&b, "xlb_requests_total", "counter",
                                 "Requests answered, by service and status code."), 0);
    cr_assert_eq(xlb_prom_sample_u64(&b, "xlb_requests_total", web, 18446744073709551615ull), 0);
    cr_assert_eq(xlb_prom_sample_u64(&b, "xlb_requests_total", web5, 0), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_real_up", "gauge",
                                 "Whether a real server passes its health check (1) or not (0).\n"
                                 "Second line with a \\ backslash."), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_real_up", rs1, 1), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_real_up", rs2, 0), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_real_weight_ratio", "gauge", "Odd values."), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_real_weight_ratio", rs1, NAN), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_real_weight_ratio", rs2, INFINITY), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_check_duration_seconds", "histogram",
                                 "Health check round trip time."), 0);
    xlb_prom_hist_init(&h, bounds, 4);
    for (int i = 0; i < 50; i++)
        xlb_prom_hist_observe(&h, i * 0.0031);
    cr_assert_eq(xlb_prom_hist_write(&b, "xlb_check_duration_seconds", hl, &h), 0);
    cr_assert_eq(xlb_prom_family(&b, "xlb_start_time_seconds", "gauge", "Start time."), 0);
    cr_assert_eq(xlb_prom_sample(&b, "xlb_start_time_seconds", NULL, 1733000000.25), 0);

    rc = promtool_check(text(&b), out, sizeof(out));
    cr_expect_eq(rc, 0, "promtool check metrics failed (%d):\n%s\n--- input ---\n%s", rc, out,
                 text(&b));
    cr_expect_str_eq(out, "", "promtool said: %s", out);
    xlb_buf_free(&b);
}

Test(prom, promtool_harness_detects_problems)
{
    char out[4096];

    /* The checker is only worth something if it can fail: a broken line and
     * a lint problem (a counter without _total) are both reported. */
    cr_expect_neq(promtool_check("xlb_bad{a=\"1} 1\n", out, sizeof(out)), 0);
    cr_expect_neq(promtool_check("# HELP xlb_c c\n# TYPE xlb_c counter\nxlb_c 1\n", out,
                                 sizeof(out)), 0);
    cr_expect(strstr(out, "_total"), "promtool said: %s", out);
}
