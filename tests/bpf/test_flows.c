/*
 * Flows through table changes, the exact counters after a known sequence of
 * frames, and the share of each real over many flows.
 */
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>

#include <criterion/criterion.h>

#include "harness.h"

#define CLIENT4 "198.18.1.1"
#define CLIENT6 "fd00:1::1"
#define VIP4 "198.18.100.1"
#define VIP6 "fd00:100::1"

#define TCP_SYN 0x02
#define TCP_ACK 0x10

/* The real an encapsulated frame goes to: its outer destination. */
static void outer_dst(const char *what, const struct xt_out *o, struct xlb_addr *a)
{
    struct pkt_view v;

    cr_assert(o->verdict == XDP_TX, "%s: verdict %s", what, xt_verdict_name(o->verdict));
    cr_assert_eq(pkt_parse(o->data, o->len, &v), 0, "%s: output not parsable", what);
    memset(a, 0, sizeof(*a));
    if (v.family == AF_INET)
        memcpy(a->addr_be, o->data + v.l3_off + 16, 4);
    else
        memcpy(a->addr_be, o->data + v.l3_off + 24, 16);
}

static bool addr_is(const struct xlb_addr *a, const char *text)
{
    struct xlb_addr b;

    xt_addr(text, &b);
    return !memcmp(a, &b, sizeof(b));
}

static const char *addr_name(const struct xlb_addr *a, const char *const *reals, int n)
{
    for (int i = 0; i < n; i++)
        if (addr_is(a, reals[i]))
            return reals[i];
    return "(not a real of the service)";
}

static bool is_one_of(const char *name, const char *const *reals, int n)
{
    for (int i = 0; i < n; i++)
        if (name == reals[i])
            return true;
    return false;
}

/* Send one TCP segment of the flow client:sport -> vip:80; returns its real. */
static const char *send_tcp(struct xt_lb *lb, const char *what, const char *client,
                            const char *vip, uint16_t sport, uint8_t flags,
                            const char *const *reals, int n)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct pkt_spec s = xt_spec(client, vip, IPPROTO_TCP, sport, 80, flags == TCP_SYN ? 0 : 64);
    struct xlb_addr dst;
    size_t len;

    s.tcp_flags = flags;
    len = xt_build(&s, in);
    xt_run_ok(what, lb->prog, in, len, &out);
    outer_dst(what, &out, &dst);
    return addr_name(&dst, reals, n);
}

/*
 * A flow keeps its real while the selection table changes under it (more
 * reals and a Maglev rebuild; a hand-made table naming another real), and
 * moves to a live real once its own is removed.
 */
static void stays_on_real(const char *client, const char *vip, const char *const *reals)
{
    struct xt_lb lb;
    const char *first, *now, *other = NULL;
    uint32_t vs, ids[5];

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", vip, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    for (int i = 0; i < 2; i++)
        ids[i] = xt_real(&lb, vs, reals[i], 1);
    xt_rebuild(&lb, vs);

    first = send_tcp(&lb, "SYN", client, vip, 33333, TCP_SYN, reals, 5);
    cr_assert(is_one_of(first, reals, 2), "SYN went to %s", first);

    for (int i = 2; i < 5; i++)
        ids[i] = xt_real(&lb, vs, reals[i], 1);
    xt_rebuild(&lb, vs);
    now = send_tcp(&lb, "ACK after a rebuild with 5 reals", client, vip, 33333, TCP_ACK,
                   reals, 5);
    cr_assert_str_eq(now, first, "the flow moved from %s to %s when reals were added", first,
                     now);

    for (int i = 0; i < 5 && !other; i++)
        if (reals[i] != first)
            other = reals[i];
    for (int i = 0; i < 5; i++)
        if (reals[i] == other)
            xt_table_all(&lb, vs, ids[i], 65537);
    now = send_tcp(&lb, "new flow after the table names one real", client, vip, 44444, TCP_SYN,
                   reals, 5);
    cr_assert_str_eq(now, other, "a new flow went to %s, the table names only %s", now, other);
    now = send_tcp(&lb, "ACK after the table names another real", client, vip, 33333, TCP_ACK,
                   reals, 5);
    cr_assert_str_eq(now, first, "the flow moved from %s to %s when the table changed", first,
                     now);

    xt_real_del(&lb, vs, first);
    xt_rebuild(&lb, vs);
    now = send_tcp(&lb, "ACK after its real was removed", client, vip, 33333, TCP_ACK, reals,
                   5);
    cr_assert(strcmp(now, first) != 0, "the flow still goes to %s, which was removed", first);
    cr_assert(is_one_of(now, reals, 5), "the flow went to %s", now);
    first = now;
    now = send_tcp(&lb, "next ACK", client, vip, 33333, TCP_ACK, reals, 5);
    cr_assert_str_eq(now, first, "the flow moved again, from %s to %s", first, now);
    xt_lb_close(&lb);
}

TestSuite(flows, .init = xt_env_setup);

Test(flows, stay_on_their_real_v4)
{
    static const char *const reals[] = {
        "198.18.0.41", "198.18.0.42", "198.18.0.43", "198.18.0.44", "198.18.0.45",
    };

    stays_on_real(CLIENT4, VIP4, reals);
}

Test(flows, stay_on_their_real_v6)
{
    static const char *const reals[] = {
        "fd00::31", "fd00::32", "fd00::33", "fd00::34", "fd00::35",
    };

    stays_on_real(CLIENT6, VIP6, reals);
}

/* With the only real gone the flow has nowhere to go: dropped, no real. */
Test(flows, last_real_removed)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct pkt_spec s = xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 5555, 80, 10);
    struct xlb_reason_counter r[XLB_R_MAX];
    struct xt_lb lb;
    size_t len = xt_build(&s, in);
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    xt_real(&lb, vs, "198.18.0.41", 1);
    xt_rebuild(&lb, vs);
    xt_run_ok("before", lb.prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_TX);
    xt_real_del(&lb, vs, "198.18.0.41");
    xt_rebuild(&lb, vs);
    xt_run_ok("after", lb.prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_DROP, "verdict %s with no real left",
                 xt_verdict_name(out.verdict));
    xt_reasons(lb.m->reasons, r);
    cr_assert_eq(r[XLB_R_DROP_NO_REAL].packets, 1);
    cr_assert_eq(r[XLB_R_TX].packets, 1);
    xt_lb_close(&lb);
}

/*
 * Ids are reused: a service deleted and a new one added take the same
 * service and real slots.  Flows recorded for the old service must not be
 * sent to the new one's real.
 */
Test(flows, deleted_service_flows_do_not_reach_a_new_service)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct pkt_spec s = xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 5555, 80, 10);
    struct xlb_reason_counter r[XLB_R_MAX];
    struct xlb_err err;
    struct xt_lb lb;
    size_t len = xt_build(&s, in);
    uint32_t a, b, ra, rb;

    xt_lb_open(&lb, NULL);
    a = xt_service(&lb, "a", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    ra = xt_real(&lb, a, "198.18.0.41", 1);
    xt_rebuild(&lb, a);
    xt_run_ok("service a", lb.prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_TX);

    cr_assert_eq(xlb_service_del(lb.m, "a", &err), 0, "%s", err.msg);
    b = xt_service(&lb, "b", VIP4, 443, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    rb = xt_real(&lb, b, "198.18.0.42", 1);
    xt_rebuild(&lb, b);
    cr_assert(a == b && ra == rb, "the test needs reused ids (service %u/%u, real %u/%u)",
              a, b, ra, rb);

    xt_run_ok("old flow after the change", lb.prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_PASS, "the old flow went %s, not to the stack",
                 xt_verdict_name(out.verdict));
    cr_assert_eq(out.len, len);
    cr_assert_eq(memcmp(out.data, in, len), 0, "the passed frame was changed");
    xt_reasons(lb.m->reasons, r);
    cr_assert_eq(r[XLB_R_PASS_NOT_VIP].packets, 1);
    xt_lb_close(&lb);
}

/* ---- counters ---- */

TestSuite(counters, .init = xt_env_setup);

struct step {
    const char *what;
    struct pkt_spec s;
    size_t len;
    int verdict;
    uint32_t reason;
};

static void run_step(struct xt_lb *lb, struct step *st)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;

    st->len = xt_build(&st->s, in);
    xt_run_ok(st->what, lb->prog, in, st->len, &out);
    cr_assert_eq(out.verdict, st->verdict, "%s: verdict %s, expected %s", st->what,
                 xt_verdict_name(out.verdict), xt_verdict_name(st->verdict));
}

static void assert_counters(const char *what, struct xlb_counters c, uint64_t packets,
                            uint64_t bytes, uint64_t new_flows)
{
    cr_assert(c.packets == packets && c.bytes == bytes && c.new_flows == new_flows,
              "%s: %llu packets, %llu bytes, %llu new flows; expected %llu, %llu, %llu", what,
              (unsigned long long)c.packets, (unsigned long long)c.bytes,
              (unsigned long long)c.new_flows, (unsigned long long)packets,
              (unsigned long long)bytes, (unsigned long long)new_flows);
}

/*
 * A known sequence: three flows, one of which sends three segments, a table
 * change between them, a service without reals, and one frame for each
 * way of not being service traffic.  Every counter is then exact.
 */
Test(counters, exact_after_a_known_sequence)
{
    struct xt_lb lb;
    struct xlb_reason_counter rs[XLB_R_MAX];
    uint64_t want_p[XLB_R_MAX] = { 0 }, want_b[XLB_R_MAX] = { 0 };
    uint32_t vs, vs_empty, a, b;
    struct step st[] = {
        { "flow 1 SYN", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1001, 80, 0), 0, XDP_TX, XLB_R_TX },
        { "flow 1 data", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1001, 80, 100), 0, XDP_TX,
          XLB_R_TX },
        { "flow 2 SYN", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1002, 80, 0), 0, XDP_TX, XLB_R_TX },
        /* table now names real b */
        { "flow 3 SYN", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1003, 80, 7), 0, XDP_TX, XLB_R_TX },
        { "flow 1 more data", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1001, 80, 200), 0, XDP_TX,
          XLB_R_TX },
        { "service without reals", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1004, 81, 0), 0,
          XDP_DROP, XLB_R_DROP_NO_REAL },
        { "other address", xt_spec(CLIENT4, "198.18.100.99", IPPROTO_TCP, 1005, 80, 0), 0,
          XDP_PASS, XLB_R_PASS_NOT_VIP },
        { "other port", xt_spec(CLIENT4, VIP4, IPPROTO_UDP, 1006, 82, 3), 0, XDP_PASS,
          XLB_R_PASS_NOT_VIP },
        /* a fragment: to the real of the table (b), no flow recorded */
        { "fragment", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1007, 80, 16), 0, XDP_TX,
          XLB_R_TX },
        { "echo request", xt_spec(CLIENT4, VIP4, IPPROTO_ICMP, 1, 2, 32), 0, XDP_TX,
          XLB_R_ICMP_ECHO_REPLY },
        { "malformed", xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 1008, 80, 0), 0, XDP_PASS,
          XLB_R_PASS_MALFORMED },
    };

    st[8].s.frag_off = PKT_MF;
    st[9].s.icmp_type = 8;
    st[10].s.ip_opts_len = 4;   /* made malformed below: IHL 4 */

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    vs_empty = xt_service(&lb, "empty", VIP4, 81, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, "198.18.0.41", 1);
    b = xt_real(&lb, vs, "198.18.0.42", 1);
    xt_table_all(&lb, vs, a, 13);

    for (size_t i = 0; i < XT_ARRAY_SIZE(st); i++) {
        if (i == 3)
            xt_table_all(&lb, vs, b, 13);
        if (i == 10) {
            static uint8_t in[XT_FRAME_MAX];
            static struct xt_out out;

            st[i].len = xt_build(&st[i].s, in);
            in[14] = 0x44;
            xt_run_ok(st[i].what, lb.prog, in, st[i].len, &out);
            cr_assert_eq(out.verdict, st[i].verdict);
        } else {
            run_step(&lb, &st[i]);
        }
        want_p[st[i].reason]++;
        want_b[st[i].reason] += st[i].len;
    }

    assert_counters("service", xt_vs_stats(&lb, vs), 6,
                    st[0].len + st[1].len + st[2].len + st[3].len + st[4].len + st[8].len, 3);
    assert_counters("real a", xt_real_stats(&lb, a), 4,
                    st[0].len + st[1].len + st[2].len + st[4].len, 2);
    assert_counters("real b", xt_real_stats(&lb, b), 2, st[3].len + st[8].len, 1);
    assert_counters("service without reals", xt_vs_stats(&lb, vs_empty), 1, st[5].len, 0);
    xt_reasons(lb.m->reasons, rs);
    for (uint32_t r = 0; r < XLB_R_MAX; r++)
        cr_assert(rs[r].packets == want_p[r] && rs[r].bytes == want_b[r],
                  "reason %s: %llu packets, %llu bytes; expected %llu, %llu",
                  xlb_reason_name(r), (unsigned long long)rs[r].packets,
                  (unsigned long long)rs[r].bytes, (unsigned long long)want_p[r],
                  (unsigned long long)want_b[r]);
    xt_lb_close(&lb);
}

/* A new real starts from zero even when its slot held another real. */
Test(counters, start_at_zero_for_a_new_real)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct pkt_spec s = xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 999, 80, 0);
    struct xt_lb lb;
    uint32_t vs, a, b;
    size_t len = xt_build(&s, in);

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, "198.18.0.41", 1);
    xt_table_all(&lb, vs, a, 13);
    xt_run_ok("first", lb.prog, in, len, &out);
    assert_counters("real a", xt_real_stats(&lb, a), 1, len, 1);
    xt_real_del(&lb, vs, "198.18.0.41");
    b = xt_real(&lb, vs, "198.18.0.42", 1);
    assert_counters("real b, new", xt_real_stats(&lb, b), 0, 0, 0);
    xt_lb_close(&lb);
}

/* ---- distribution ---- */

#define DIST_FLOWS 3000

/*
 * Three reals of weights 1, 2 and 3 and DIST_FLOWS distinct flows: each real
 * gets its share of the flows within 15%.  (Maglev's own properties are
 * tested on the table builder; this checks that the data plane follows the
 * table.)
 */
static void distribution(const char *client_fmt, const char *vip, const char *const *reals)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    static const uint32_t weight[3] = { 1, 2, 3 };
    unsigned got[3] = { 0 };
    struct xt_lb lb;
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", vip, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    for (int i = 0; i < 3; i++)
        xt_real(&lb, vs, reals[i], weight[i]);
    xt_rebuild(&lb, vs);
    for (int f = 0; f < DIST_FLOWS; f++) {
        char client[64];
        struct pkt_spec s;
        struct xlb_addr dst;
        size_t len;
        int k;

        snprintf(client, sizeof(client), client_fmt, f / 250 + 1);
        s = xt_spec(client, vip, IPPROTO_TCP, (uint16_t)(1024 + f % 250 * 211), 80, 0);
        len = xt_build(&s, in);
        xt_run_ok("distribution", lb.prog, in, len, &out);
        outer_dst("distribution", &out, &dst);
        for (k = 0; k < 3 && !addr_is(&dst, reals[k]); k++)
            ;
        cr_assert_lt(k, 3, "flow %d went to an address that is not a real", f);
        got[k]++;
    }
    for (int i = 0; i < 3; i++) {
        double want = DIST_FLOWS * weight[i] / 6.0;

        cr_assert(got[i] > want * 0.85 && got[i] < want * 1.15,
                  "real %s (weight %u) got %u of %d flows, expected about %.0f "
                  "(all: %u %u %u)", reals[i], weight[i], got[i], DIST_FLOWS, want, got[0],
                  got[1], got[2]);
    }
    xt_lb_close(&lb);
}

TestSuite(distribution, .init = xt_env_setup);

Test(distribution, weights_v4)
{
    static const char *const reals[] = { "198.18.0.51", "198.18.0.52", "198.18.0.53" };

    distribution("198.18.1.%d", VIP4, reals);
}

Test(distribution, weights_v6)
{
    static const char *const reals[] = { "fd00::3a", "fd00::3b", "fd00::3c" };

    distribution("fd00:1::%x", VIP6, reals);
}
