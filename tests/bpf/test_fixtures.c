/*
 * The fixture table through the balancer: every row once whole, and once
 * cut at every length.
 */
#include <errno.h>
#include <string.h>

#include <linux/bpf.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "fixtures.h"

/*
 * Criterion runs each parameter in a fresh process of this executable,
 * where the table's pointers would not hold: the parameter is the row's
 * index, in Criterion's shared memory.
 */
static void free_rows(struct criterion_test_params *p)
{
    cr_free(p->params);
}

static struct criterion_test_params all_rows(void)
{
    size_t *rows = cr_malloc(xt_n_fixtures * sizeof(*rows));

    for (size_t i = 0; i < xt_n_fixtures; i++)
        rows[i] = i;
    return cr_make_param_array(size_t, rows, xt_n_fixtures, free_rows);
}

ParameterizedTestParameters(fixtures, forward)
{
    return all_rows();
}

/* Verdict, output bytes, reason counters and, for encapsulated frames,
 * checksums and flow-hash fields. */
ParameterizedTest(size_t *row, fixtures, forward, .init = xt_env_setup)
{
    const struct xt_fixture *f = &xt_fixtures[*row];
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct xt_lb lb;
    size_t ilen;

    xt_world_setup(&lb);
    xt_fixture_check(&lb, f, in, &ilen, &out);
    xt_lb_close(&lb);
}

/* Where the IP datagram of a frame ends, or len when it is not IP. */
static size_t datagram_end(const uint8_t *frame, size_t len)
{
    struct pkt_view v;

    if (pkt_parse(frame, len, &v))
        return len;
    return v.l3_off + v.l3_len + v.l4_len;
}

/* Offset of the IP header the way the balancer finds it: after the
 * Ethernet header and at most two 802.1Q/802.1ad tags; 0 when the frame
 * carries no IPv4/IPv6 there. */
static size_t ip_offset(const uint8_t *frame, size_t len)
{
    size_t off = 12;
    unsigned type = 0;

    for (int tags = 0; off + 2 <= len; tags++) {
        type = (unsigned)(frame[off] << 8 | frame[off + 1]);
        off += 2;
        if ((type != 0x8100 && type != 0x88a8) || tags == 2)
            break;
        off += 2;
    }
    return type == 0x0800 || type == 0x86dd ? off : 0;
}

/*
 * Every prefix of the row's frame that cuts its IP datagram short: never
 * forwarded, never rewritten when passed, and counted as not-IP while the
 * L2 header is incomplete, as malformed once the IP header has begun.
 * BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
 */
static void truncations(struct xt_lb *lb, const struct xt_fixture *f)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct xlb_reason_counter before[XLB_R_MAX], after[XLB_R_MAX];
    uint64_t want_pkts[XLB_R_MAX] = { 0 }, want_bytes[XLB_R_MAX] = { 0 };
    size_t len = xt_fixture_build(f, in);
    size_t end = datagram_end(in, len), l3 = ip_offset(in, len);

    xt_reasons(lb->m->reasons, before);
    for (size_t cut = 1; cut < end; cut++) {
        int err = xt_run(lb->prog, xt_if0, in, cut, &out);
        uint32_t why;

        if (cut < 14) {
            cr_assert_eq(err, -EINVAL, "%s cut to %zu bytes: BPF_PROG_TEST_RUN gave %s",
                         f->desc, cut, strerror(-err));
            continue;
        }
        cr_assert_eq(err, 0, "%s cut to %zu bytes: %s", f->desc, cut, strerror(-err));
        cr_assert(out.verdict == XDP_PASS || out.verdict == XDP_DROP,
                  "%s cut to %zu bytes: verdict %s", f->desc, cut,
                  xt_verdict_name(out.verdict));
        if (out.verdict == XDP_PASS)
            cr_assert(out.len == cut && !memcmp(out.data, in, cut),
                      "%s cut to %zu bytes: passed, but rewritten", f->desc, cut);
        why = l3 && cut >= l3 ? XLB_R_PASS_MALFORMED : XLB_R_PASS_NOT_IP;
        want_pkts[why]++;
        want_bytes[why] += cut;
    }
    xt_reasons(lb->m->reasons, after);
    for (uint32_t r = 0; r < XLB_R_MAX; r++)
        cr_assert(after[r].packets - before[r].packets == want_pkts[r] &&
                  after[r].bytes - before[r].bytes == want_bytes[r],
                  "%s truncated: reason %s counted %llu packets / %llu bytes, expected "
                  "%llu / %llu", f->desc, xlb_reason_name(r),
                  (unsigned long long)(after[r].packets - before[r].packets),
                  (unsigned long long)(after[r].bytes - before[r].bytes),
                  (unsigned long long)want_pkts[r], (unsigned long long)want_bytes[r]);
}

/* Every row of the table, cut at every length. */
Test(fixtures, truncated, .init = xt_env_setup)
{
    struct xt_lb lb;

    xt_world_setup(&lb);
    for (size_t i = 0; i < xt_n_fixtures; i++)
        truncations(&lb, &xt_fixtures[i]);
    xt_lb_close(&lb);
}
