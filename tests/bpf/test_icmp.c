/*
 * ICMP echo: requests to a VIP are answered by the balancer itself, other
 * echo traffic goes to the stack untouched.
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

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void open_with_vips(struct xt_lb *lb)
{
    xt_lb_open(lb, NULL);
    xt_service(lb, "v4", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_service(lb, "v6", VIP6, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
}

/*
 * Send an echo request client -> dst and check the reply: XDP_TX, the
 * expected frame byte for byte, and then each property on its own (MACs and
 * addresses swapped, reply type, valid checksums, identifier, sequence and
 * data kept, TTL / hop limit 64).
 */
static void echo(struct xt_lb *lb, const char *what, const char *client, const char *dst,
                 uint16_t id, uint16_t seq, size_t plen, uint8_t ttl)
{
    static uint8_t in[XT_FRAME_MAX], exp[XT_FRAME_MAX];
    static struct xt_out out;
    bool v6 = strchr(dst, ':') != NULL;
    struct pkt_spec s = xt_spec(client, dst, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, id, seq, plen);
    struct pkt_spec r;
    struct pkt_view iv, ov;
    size_t ilen, elen;
    const uint8_t *ip, *ic;

    s.icmp_type = v6 ? 128 : 8;
    s.ttl = ttl;
    s.frag_off = v6 ? 0 : PKT_DF;
    s.ip_id = (uint16_t)(id ^ seq);
    ilen = xt_build(&s, in);
    xt_run_ok(what, lb->prog, in, ilen, &out);
    cr_assert_eq(out.verdict, XDP_TX, "%s: verdict %s", what, xt_verdict_name(out.verdict));

    r = s;
    memcpy(r.eth_dst, s.eth_src, 6);
    memcpy(r.eth_src, s.eth_dst, 6);
    memcpy(r.src, s.dst, 16);
    memcpy(r.dst, s.src, 16);
    r.icmp_type = v6 ? 129 : 0;
    r.ttl = 64;
    elen = xt_build(&r, exp);
    xt_assert_frame(what, in, ilen, exp, elen, out.data, out.len);

    cr_assert_eq(pkt_parse(in, ilen, &iv), 0);
    cr_assert_eq(pkt_parse(out.data, out.len, &ov), 0, "%s: reply not parsable", what);
    cr_assert_eq(memcmp(out.data, in + 6, 6), 0, "%s: destination MAC not swapped", what);
    cr_assert_eq(memcmp(out.data + 6, in, 6), 0, "%s: source MAC not swapped", what);
    ip = out.data + ov.l3_off;
    ic = out.data + ov.l4_off;
    if (v6) {
        cr_assert_eq(memcmp(ip + 8, in + iv.l3_off + 24, 16), 0, "%s: source not swapped", what);
        cr_assert_eq(memcmp(ip + 24, in + iv.l3_off + 8, 16), 0, "%s: dest not swapped", what);
        cr_assert_eq(ip[7], 64, "%s: hop limit %u", what, ip[7]);
        cr_assert_eq(ic[0], 129, "%s: type %u", what, ic[0]);
    } else {
        cr_assert_eq(memcmp(ip + 12, in + iv.l3_off + 16, 4), 0, "%s: source not swapped", what);
        cr_assert_eq(memcmp(ip + 16, in + iv.l3_off + 12, 4), 0, "%s: dest not swapped", what);
        cr_assert_eq(ip[8], 64, "%s: TTL %u", what, ip[8]);
        cr_assert(pkt_ipv4_hdr_csum_ok(ip), "%s: IPv4 header checksum is wrong", what);
        cr_assert_eq(ic[0], 0, "%s: type %u", what, ic[0]);
    }
    cr_assert_eq(ic[1], 0, "%s: code %u", what, ic[1]);
    cr_assert(pkt_l4_csum_ok(ov.family, ip, ov.l3_len + ov.l4_len),
              "%s: ICMP checksum 0x%04x is wrong", what, rd16(ic + 2));
    cr_assert_eq(rd16(ic + 4), id, "%s: identifier", what);
    cr_assert_eq(rd16(ic + 6), seq, "%s: sequence", what);
    cr_assert_eq(ov.l4_len, iv.l4_len, "%s: length changed", what);
    cr_assert_eq(memcmp(ic + 8, in + iv.l4_off + 8, iv.l4_len - 8), 0, "%s: data changed",
                 what);
}

TestSuite(icmp, .init = xt_env_setup);

Test(icmp, echo_reply_v4)
{
    struct xt_lb lb;
    struct xlb_reason_counter r[XLB_R_MAX];

    open_with_vips(&lb);
    echo(&lb, "echo v4", CLIENT4, VIP4, 0x1234, 7, 56, 50);
    xt_reasons(lb.m->reasons, r);
    cr_assert_eq(r[XLB_R_ICMP_ECHO_REPLY].packets, 1);
    xt_lb_close(&lb);
}

Test(icmp, echo_reply_v6)
{
    struct xt_lb lb;
    struct xlb_reason_counter r[XLB_R_MAX];

    open_with_vips(&lb);
    echo(&lb, "echo v6", CLIENT6, VIP6, 0x4321, 9, 56, 50);
    xt_reasons(lb.m->reasons, r);
    cr_assert_eq(r[XLB_R_ICMP_ECHO_REPLY].packets, 1);
    xt_lb_close(&lb);
}

/* Identifiers, sequences, sizes and TTLs that make the incremental
 * checksum update carry in every way. */
Test(icmp, echo_reply_checksums)
{
    struct xt_lb lb;

    open_with_vips(&lb);
    for (unsigned i = 0; i < 256; i++) {
        uint16_t id = (uint16_t)(i * 0x0101 + 0x00ff * (i & 1));
        uint16_t seq = (uint16_t)(0xffff - i * 257);
        char what[64];

        snprintf(what, sizeof(what), "echo v4 #%u", i);
        echo(&lb, what, CLIENT4, VIP4, id, seq, i % 64, (uint8_t)(i | 1));
        snprintf(what, sizeof(what), "echo v6 #%u", i);
        echo(&lb, what, CLIENT6, VIP6, id, seq, i % 64, (uint8_t)(i | 1));
    }
    xt_lb_close(&lb);
}

static void not_answered(struct xt_lb *lb, const char *what, const char *client,
                         const char *dst, uint8_t type)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    bool v6 = strchr(dst, ':') != NULL;
    struct pkt_spec s = xt_spec(client, dst, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 1, 2, 24);
    size_t len;

    s.icmp_type = type;
    len = xt_build(&s, in);
    xt_run_ok(what, lb->prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_PASS, "%s: verdict %s", what, xt_verdict_name(out.verdict));
    xt_assert_frame(what, in, len, in, len, out.data, out.len);
}

Test(icmp, other_echo_traffic_passes_unchanged)
{
    struct xt_lb lb;
    struct xlb_reason_counter r[XLB_R_MAX];

    open_with_vips(&lb);
    not_answered(&lb, "echo request to a non-VIP v4", CLIENT4, "198.18.100.2", 8);
    not_answered(&lb, "echo request to a non-VIP v6", CLIENT6, "fd00:100::2", 128);
    not_answered(&lb, "echo reply to a VIP v4", CLIENT4, VIP4, 0);
    not_answered(&lb, "echo reply to a VIP v6", CLIENT6, VIP6, 129);
    not_answered(&lb, "echo request to the VIP of the other family", CLIENT6,
                 "::ffff:198.18.100.1", 128);
    xt_reasons(lb.m->reasons, r);
    cr_assert_eq(r[XLB_R_PASS_NOT_VIP].packets, 5);
    cr_assert_eq(r[XLB_R_ICMP_ECHO_REPLY].packets, 0);
    xt_lb_close(&lb);
}

/* A VIP answers only while it has a service. */
Test(icmp, echo_stops_with_the_last_service)
{
    struct xt_lb lb;
    struct xlb_err e = { "" };

    open_with_vips(&lb);
    echo(&lb, "echo with the service", CLIENT4, VIP4, 1, 1, 8, 64);
    cr_assert_eq(xlb_service_del(lb.m, "v4", &e), 0, "xlb_service_del: %s", e.msg);
    not_answered(&lb, "echo after the service is gone", CLIENT4, VIP4, 8);
    xt_lb_close(&lb);
}
