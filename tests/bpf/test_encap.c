/*
 * Encapsulation towards the real server, field by field: IPIP, 6in6, 4in6
 * and GUE over IPv4 and IPv6.  Each test compares the whole output with a
 * frame built by pkt_build() and then checks every outer field on its own
 * from the raw bytes, so that a mistake shared by the builder and the
 * program still shows.  The entropy tests send many flows to one real and
 * look at the fields taken from the flow hash.
 */
#include <stddef.h>
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
#define REAL4 "198.18.0.31"
#define REAL6 "fd00::31"
#define RING 13

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* A balancer with one service on vip:port/proto and one real. */
static void one_service(struct xt_lb *lb, const char *vip, uint16_t port, uint8_t proto,
                        uint8_t method, const char *real)
{
    uint32_t vs;

    xt_lb_open(lb, NULL);
    vs = xt_service(lb, "svc", vip, port, proto, method, RING);
    xt_table_all(lb, vs, xt_real(lb, vs, real, 1), RING);
}

/*
 * Run the frame of s and check the output against the expected frame and
 * then field by field: L2 (MACs of the next hop, tags, ethertype), the
 * outer header, the GUE header and the inner packet.
 */
static void check_encap(const char *what, struct xt_lb *lb, const struct pkt_spec *s,
                        const char *real, bool gue)
{
    static uint8_t in[XT_FRAME_MAX], exp[XT_FRAME_MAX];
    static struct xt_out out;
    struct xt_entropy ent;
    struct pkt_view iv;
    struct xlb_addr ra;
    uint8_t mac[6];
    size_t ilen, elen, inner_len, hlen, off;
    const uint8_t *inner, *o;
    bool v6 = xt_addr(real, &ra) == XLB_FAMILY_V6, inner4 = s->family == AF_INET;
    uint8_t tos;

    ilen = xt_build(s, in);
    cr_assert_eq(pkt_parse(in, ilen, &iv), 0);
    inner = in + iv.l3_off;
    inner_len = iv.l3_len + iv.l4_len;
    tos = inner4 ? inner[1] : (uint8_t)((inner[0] & 0x0f) << 4 | inner[1] >> 4);

    xt_run_ok(what, lb->prog, in, ilen, &out);
    cr_assert_eq(out.verdict, XDP_TX, "%s: verdict %s", what, xt_verdict_name(out.verdict));
    xt_real_mac(real, mac);
    elen = xt_expect_encap(in, ilen, out.data, out.len, real, gue, mac, xt_mac_if0, exp, &ent);
    xt_assert_frame(what, in, ilen, exp, elen, out.data, out.len);
    xt_assert_entropy_fields(what, v6, gue, &ent);

    /* L2: next hop's MAC, ours, the tags as they came, then the outer family. */
    hlen = (v6 ? 40 : 20) + (gue ? 8 : 0);
    cr_assert_eq(out.len, ilen + hlen, "%s: output is %zu bytes, expected %zu", what, out.len,
                 ilen + hlen);
    cr_assert_eq(memcmp(out.data, mac, 6), 0, "%s: destination MAC is not the real's", what);
    cr_assert_eq(memcmp(out.data + 6, xt_mac_if0, 6), 0, "%s: source MAC is not %s's", what,
                 XT_IF0);
    off = 12;
    for (int i = 0; i < s->n_vlan; i++, off += 4) {
        cr_assert_eq(rd16(out.data + off), s->vlan[i].tpid, "%s: tag %d TPID", what, i);
        cr_assert_eq(rd16(out.data + off + 2), s->vlan[i].tci, "%s: tag %d TCI", what, i);
    }
    cr_assert_eq(rd16(out.data + off), v6 ? 0x86dd : 0x0800, "%s: ethertype", what);
    o = out.data + off + 2;

    if (v6) {
        cr_assert_eq(o[0] >> 4, 6, "%s: outer version", what);
        cr_assert_eq((uint8_t)((o[0] & 0x0f) << 4 | o[1] >> 4), tos,
                     "%s: outer traffic class is not the inner TOS 0x%02x", what, tos);
        cr_assert_eq(rd16(o + 4), hlen - 40 + inner_len, "%s: payload length", what);
        cr_assert_eq(o[6], gue ? IPPROTO_UDP : inner4 ? IPPROTO_IPIP : IPPROTO_IPV6,
                     "%s: next header %u", what, o[6]);
        cr_assert_eq(o[7], 64, "%s: hop limit %u", what, o[7]);
        cr_assert_eq(memcmp(o + 24, ra.addr_be, 16), 0, "%s: outer destination", what);
        if (gue)
            cr_assert(pkt_l4_csum_ok(AF_INET6, o, 40 + 8 + inner_len),
                      "%s: UDP checksum over IPv6 is wrong", what);
        o += 40;
    } else {
        bool df = inner4 && (rd16(inner + 6) & PKT_DF);

        cr_assert_eq(o[0], 0x45, "%s: outer version/IHL 0x%02x", what, o[0]);
        cr_assert_eq(o[1], tos, "%s: outer TOS 0x%02x, inner 0x%02x", what, o[1], tos);
        cr_assert_eq(rd16(o + 2), hlen + inner_len, "%s: outer total length", what);
        if (df)
            cr_assert_eq(rd16(o + 4), 0, "%s: outer id with DF", what);
        /* without DF the id varies: encap::ipip_outer_identification */
        cr_assert_eq(rd16(o + 6), df ? PKT_DF : 0, "%s: outer DF/offset 0x%04x (inner DF %d)",
                     what, rd16(o + 6), df);
        cr_assert_eq(o[8], 64, "%s: TTL %u", what, o[8]);
        cr_assert_eq(o[9], gue ? IPPROTO_UDP : IPPROTO_IPIP, "%s: protocol %u", what, o[9]);
        cr_assert(pkt_ipv4_hdr_csum_ok(o), "%s: outer header checksum is wrong", what);
        cr_assert_eq(memcmp(o + 16, ra.addr_be, 4), 0, "%s: outer destination", what);
        o += 20;
    }
    if (gue) {
        uint16_t sport = rd16(o);

        cr_assert(sport >= XT_SPORT_MIN, "%s: GUE source port %u", what, sport);
        cr_assert_eq(rd16(o + 2), XT_GUE_PORT, "%s: GUE destination port", what);
        cr_assert_eq(rd16(o + 4), 8 + inner_len, "%s: UDP length", what);
        if (!v6)
            cr_assert_eq(rd16(o + 6), 0, "%s: UDP checksum over IPv4 is not 0", what);
        o += 8;
    }
    cr_assert_eq(memcmp(o, inner, inner_len), 0, "%s: the inner packet changed", what);
}

static struct pkt_spec spec4(uint8_t proto, uint16_t dport)
{
    struct pkt_spec s = xt_spec(CLIENT4, VIP4, proto, 43210, dport, 100);

    s.tos = 0xb9;               /* DSCP 46 and ECN ECT(1) */
    s.frag_off = PKT_DF;
    s.ip_id = 0xbeef;
    s.ttl = 17;
    return s;
}

static struct pkt_spec spec6(uint8_t proto, uint16_t dport)
{
    struct pkt_spec s = xt_spec(CLIENT6, VIP6, proto, 43210, dport, 100);

    s.tos = 0x72;
    s.ttl = 17;
    return s;
}

TestSuite(encap, .init = xt_env_setup);

Test(encap, ipip)
{
    struct xt_lb lb;
    struct pkt_spec s = spec4(IPPROTO_TCP, 80);

    one_service(&lb, VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, REAL4);
    check_encap("ipip", &lb, &s, REAL4, false);
    s.frag_off = 0;
    s.tos = 0;
    s.sport++;
    check_encap("ipip without DF, TOS 0", &lb, &s, REAL4, false);
    s.n_vlan = 2;
    s.vlan[0] = (struct pkt_vlan){ 0x88a8, 0xe123 };
    s.vlan[1] = (struct pkt_vlan){ 0x8100, 0x1fff };
    check_encap("ipip, QinQ", &lb, &s, REAL4, false);
    xt_lb_close(&lb);
}

Test(encap, ip6ip6)
{
    struct xt_lb lb;
    struct pkt_spec s = spec6(IPPROTO_TCP, 80);

    one_service(&lb, VIP6, 80, IPPROTO_TCP, XLB_FWD_IPIP, REAL6);
    check_encap("6in6", &lb, &s, REAL6, false);
    s.n_vlan = 1;
    s.vlan[0] = (struct pkt_vlan){ 0x8100, 0x0123 };
    check_encap("6in6, 802.1Q", &lb, &s, REAL6, false);
    xt_lb_close(&lb);
}

Test(encap, ip4in6)
{
    struct xt_lb lb;
    struct pkt_spec s = spec4(IPPROTO_TCP, 80);

    one_service(&lb, VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, REAL6);
    check_encap("4in6", &lb, &s, REAL6, false);
    s.ip_opts_len = 24;
    s.sport++;
    check_encap("4in6 with IPv4 options", &lb, &s, REAL6, false);
    xt_lb_close(&lb);
}

Test(encap, gue4)
{
    struct xt_lb lb;
    struct pkt_spec s = spec4(IPPROTO_UDP, 53);

    one_service(&lb, VIP4, 53, IPPROTO_UDP, XLB_FWD_GUE, REAL4);
    check_encap("gue4", &lb, &s, REAL4, true);
    s.frag_off = 0;
    s.sport++;
    check_encap("gue4 without DF", &lb, &s, REAL4, true);
    xt_lb_close(&lb);
}

Test(encap, gue6)
{
    struct xt_lb lb;
    struct pkt_spec s = spec6(IPPROTO_UDP, 53);

    one_service(&lb, VIP6, 53, IPPROTO_UDP, XLB_FWD_GUE, REAL6);
    check_encap("gue6", &lb, &s, REAL6, true);
    /* Lengths enter the checksum as the high byte of a 32-bit word: every
     * value of the low byte of the UDP and inner lengths, odd and even. */
    for (size_t n = 0; n < 300; n++) {
        char what[64];

        snprintf(what, sizeof(what), "gue6, payload of %zu bytes", n);
        s.payload_len = n;
        s.sport = (uint16_t)(1000 + n);
        check_encap(what, &lb, &s, REAL6, true);
    }
    xt_lb_close(&lb);
}

Test(encap, gue6_tcp)
{
    struct xt_lb lb;
    struct pkt_spec s = spec6(IPPROTO_TCP, 443);

    one_service(&lb, VIP6, 443, IPPROTO_TCP, XLB_FWD_GUE, REAL6);
    for (uint16_t i = 0; i < 64; i++) {
        char what[64];

        snprintf(what, sizeof(what), "gue6 carrying TCP, flow %u", i);
        s.sport = (uint16_t)(20000 + i * 613);
        s.tcp_seq = 0x01000193u * i;
        s.payload_len = 1 + i * 3;
        check_encap(what, &lb, &s, REAL6, true);
    }
    xt_lb_close(&lb);
}

Test(encap, gue6_inner4)
{
    struct xt_lb lb;
    struct pkt_spec s = spec4(IPPROTO_UDP, 53);

    one_service(&lb, VIP4, 53, IPPROTO_UDP, XLB_FWD_GUE, REAL6);
    for (uint16_t i = 0; i < 300; i++) {
        char what[64];

        snprintf(what, sizeof(what), "gue6 carrying IPv4 UDP, flow %u", i);
        s.sport = (uint16_t)(20000 + i * 613);
        s.payload_len = i;
        s.ip_opts_len = (uint8_t)(i % 3 * 4);
        check_encap(what, &lb, &s, REAL6, true);
    }
    s.proto = IPPROTO_TCP;
    xt_lb_close(&lb);
    one_service(&lb, VIP4, 80, IPPROTO_TCP, XLB_FWD_GUE, REAL6);
    s.dport = 80;
    check_encap("gue6 carrying IPv4 TCP", &lb, &s, REAL6, true);
    xt_lb_close(&lb);
}

/* ---- entropy ---- */

#define FLOWS 200
#define MIN_DISTINCT 50

struct flow_fields {
    uint8_t src[16];
    uint16_t sport;
    uint32_t label;
};

static size_t count_distinct(const void *items, size_t n, size_t size, size_t off, size_t len)
{
    size_t distinct = 0;

    for (size_t i = 0; i < n; i++) {
        const uint8_t *a = (const uint8_t *)items + i * size + off;
        size_t j;

        for (j = 0; j < i; j++)
            if (!memcmp(a, (const uint8_t *)items + j * size + off, len))
                break;
        distinct += j == i;
    }
    return distinct;
}

/*
 * FLOWS flows (client source ports) to one real, each sent twice, the
 * second round after all the others: the flow-hash fields must be the same
 * both times and take at least MIN_DISTINCT values across the flows.
 */
static void entropy(const char *what, const char *client, const char *vip, uint8_t proto,
                    uint8_t method, const char *real, bool check_src)
{
    static struct flow_fields f[FLOWS];
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct xlb_addr ra;
    bool v6 = xt_addr(real, &ra) == XLB_FAMILY_V6, gue = method == XLB_FWD_GUE;
    struct xt_lb lb;
    size_t n;

    one_service(&lb, vip, 80, proto, method, real);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < FLOWS; i++) {
            struct pkt_spec s = xt_spec(client, vip, proto, (uint16_t)(1024 + i * 97), 80, 20);
            struct xt_entropy e;

            n = xt_build(&s, in);
            xt_run_ok(what, lb.prog, in, n, &out);
            cr_assert_eq(out.verdict, XDP_TX, "%s: flow %d: verdict %s", what, i,
                         xt_verdict_name(out.verdict));
            e = xt_entropy_of(what, out.data, out.len, gue);
            xt_assert_entropy_fields(what, v6, gue, &e);
            if (round == 0) {
                memcpy(f[i].src, e.src, 16);
                f[i].sport = e.sport;
                f[i].label = e.flow_label;
                continue;
            }
            cr_assert_eq(memcmp(f[i].src, e.src, 16), 0,
                         "%s: flow %d changed its outer source", what, i);
            cr_assert_eq(f[i].sport, e.sport, "%s: flow %d changed its GUE port", what, i);
            cr_assert_eq(f[i].label, e.flow_label, "%s: flow %d changed its flow label",
                         what, i);
        }
    }
    if (check_src) {
        n = count_distinct(f, FLOWS, sizeof(f[0]), offsetof(struct flow_fields, src), 16);
        cr_assert_geq(n, MIN_DISTINCT, "%s: %d flows used only %zu outer source addresses",
                      what, FLOWS, n);
    }
    if (gue) {
        n = count_distinct(f, FLOWS, sizeof(f[0]), offsetof(struct flow_fields, sport), 2);
        cr_assert_geq(n, MIN_DISTINCT, "%s: %d flows used only %zu GUE source ports", what,
                      FLOWS, n);
    }
    if (v6) {
        n = count_distinct(f, FLOWS, sizeof(f[0]), offsetof(struct flow_fields, label), 4);
        cr_assert_geq(n, MIN_DISTINCT, "%s: %d flows used only %zu flow labels", what, FLOWS,
                      n);
    }
    xt_lb_close(&lb);
}

TestSuite(entropy, .init = xt_env_setup);

Test(entropy, ipip_source)
{
    entropy("ipip", CLIENT4, VIP4, IPPROTO_TCP, XLB_FWD_IPIP, REAL4, true);
}

Test(entropy, gue4_source_and_port)
{
    entropy("gue4", CLIENT4, VIP4, IPPROTO_UDP, XLB_FWD_GUE, REAL4, true);
}

Test(entropy, ip6ip6_label)
{
    entropy("6in6 flow label", CLIENT6, VIP6, IPPROTO_TCP, XLB_FWD_IPIP, REAL6, false);
}

Test(entropy, ip6ip6_source)
{
    entropy("6in6 source", CLIENT6, VIP6, IPPROTO_TCP, XLB_FWD_IPIP, REAL6, true);
}

Test(entropy, gue6_port_and_label)
{
    entropy("gue6", CLIENT6, VIP6, IPPROTO_UDP, XLB_FWD_GUE, REAL6, false);
}

Test(entropy, ip4in6_source)
{
    entropy("4in6 source", CLIENT4, VIP4, IPPROTO_TCP, XLB_FWD_IPIP, REAL6, true);
}

/* A /120 tunnel prefix leaves 8 host bits to the flow hash. */
Test(entropy, ip6ip6_source_short_host_part)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    static uint8_t src[FLOWS][16];
    struct xlb_load_opts o = xt_lb_default_opts();
    struct xt_lb lb;
    uint32_t vs;
    size_t n;

    o.tunnel_src6_plen = 120;
    xt_lb_open(&lb, &o);
    vs = xt_service(&lb, "svc", VIP6, 80, IPPROTO_TCP, XLB_FWD_IPIP, RING);
    xt_table_all(&lb, vs, xt_real(&lb, vs, REAL6, 1), RING);
    for (int i = 0; i < FLOWS; i++) {
        struct pkt_spec s = xt_spec(CLIENT6, VIP6, IPPROTO_TCP, (uint16_t)(1024 + i), 80, 0);
        struct xt_entropy e;

        n = xt_build(&s, in);
        xt_run_ok("6in6 /120", lb.prog, in, n, &out);
        e = xt_entropy_of("6in6 /120", out.data, out.len, false);
        cr_assert_eq(memcmp(e.src, o.tunnel_src6.addr_be, 15), 0,
                     "6in6 /120: outer source outside the prefix");
        cr_assert(e.src[15] != 0 && e.src[15] != 0xff, "6in6 /120: host part %u", e.src[15]);
        memcpy(src[i], e.src, 16);
    }
    n = count_distinct(src, FLOWS, 16, 0, 16);
    cr_assert_geq(n, MIN_DISTINCT, "6in6 /120: %d flows used only %zu outer sources", FLOWS, n);
    xt_lb_close(&lb);
}

/*
 * The outer IPv4 identification: 0 with DF set (never fragmented on the
 * way); varying from packet to packet without DF, so that fragments of
 * different packets are never reassembled together (RFC 6864).
 */
Test(encap, ipip_outer_identification)
{
    static uint8_t in[XT_FRAME_MAX];
    static struct xt_out out;
    struct pkt_spec s = xt_spec(CLIENT4, VIP4, IPPROTO_TCP, 4000, 80, 20);
    uint16_t ids[32];
    struct pkt_view v;
    size_t len, distinct = 0;
    struct xt_lb lb;

    one_service(&lb, VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, REAL4);
    s.frag_off = PKT_DF;
    len = xt_build(&s, in);
    xt_run_ok("DF set", lb.prog, in, len, &out);
    cr_assert_eq(pkt_parse(out.data, out.len, &v), 0);
    cr_assert_eq(rd16(out.data + v.l3_off + 4), 0, "outer id with DF");
    cr_assert_eq(rd16(out.data + v.l3_off + 6), PKT_DF, "outer DF copied");

    s.frag_off = 0;
    len = xt_build(&s, in);
    for (size_t i = 0; i < 32; i++) {
        xt_run_ok("DF clear", lb.prog, in, len, &out);
        cr_assert_eq(pkt_parse(out.data, out.len, &v), 0);
        cr_assert_eq(rd16(out.data + v.l3_off + 6), 0, "outer DF clear");
        ids[i] = rd16(out.data + v.l3_off + 4);
        distinct++;
        for (size_t j = 0; j < i; j++)
            if (ids[j] == ids[i]) {
                distinct--;
                break;
            }
    }
    cr_assert_geq(distinct, 24, "only %zu distinct outer ids in 32 packets", distinct);
    xt_lb_close(&lb);
}
