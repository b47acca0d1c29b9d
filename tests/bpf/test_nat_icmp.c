/*
 * nat: ICMP errors about a flow and IPv4 fragments, translated.
 *
 * An ICMPv4 "fragmentation needed" / ICMPv6 "packet too big" that a router
 * on the client's side sends to the VIP quotes the reply as the client saw
 * it (VIP:vport -> client:cport).  For a flow in the connection table it
 * reaches the flow's real as if the real had sent the quoted packet itself:
 * outer destination and quoted source address and port are the real's.
 * Fragments of a nat service are placed by their addresses, every one
 * translated; a reply's later fragments get the translation its first
 * fragment recorded.
 *
 * Every expected frame is built from scratch by pkt_build() with the
 * translated fields: the quoted packet is built as the real would have sent
 * it (its IPv4 header and TCP/UDP checksums computed afresh) and quoted into
 * an ICMP message whose checksum and outer IPv4 header checksum are computed
 * afresh too, so the output must match byte for byte.
 */
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "xlb_hash.h"

#define CLIENT4 "198.18.0.20"
#define CLIENT6 "fd00::20"
#define ROUTER4 "198.18.0.40"
#define ROUTER6 "fd00::40"
#define VIP4 "198.18.100.1"
#define VIP6 "fd00:100::1"
#define REAL4 "198.18.0.31"
#define REAL4B "198.18.0.32"
#define REAL6 "fd00::31"
#define FARM4 "198.18.2.50"         /* behind xlbtveth2 */
#define RING 13
#define CPORT 40000

#define F_SYN 0x02
#define F_ACK 0x10

static uint8_t in[XT_FRAME_MAX], exp_[XT_FRAME_MAX];
static struct xt_out out;

static bool is_v6(const char *a)
{
    return strchr(a, ':') != NULL;
}

static void put_addr(uint8_t *to, const char *text)
{
    struct xlb_addr a;

    xt_addr(text, &a);
    memcpy(to, a.addr_be, 16);
}

static uint64_t event_count(struct xt_lb *lb, uint32_t ev)
{
    uint64_t n;

    cr_assert_eq(xlb_event_read(lb->m->events, ev, &n), 0);
    return n;
}

/* A TCP/UDP packet with fields that must survive. */
static struct pkt_spec pkt(const char *src, const char *dst, uint8_t proto, uint16_t sport,
                           uint16_t dport, uint8_t flags, size_t plen)
{
    struct pkt_spec s = xt_spec(src, dst, proto, sport, dport, plen);

    s.tcp_flags = proto == IPPROTO_TCP ? flags : 0;
    s.tcp_seq = 0x01020304;
    s.tcp_ack = flags & F_ACK ? 0x0a0b0c0d : 0;
    s.tos = 0x28;
    s.ttl = 57;
    if (!is_v6(src)) {
        s.frag_off = PKT_DF;
        s.ip_id = 0x1234;
    }
    return s;
}

/*
 * Run the frame of s as received on ifindex: the verdict must be `verdict`
 * and exactly one packet must be counted, in `reason`.  The input stays in
 * in[], its length is returned, the output is in out.
 */
static size_t run_on(struct xt_lb *lb, const char *what, int ifindex, const struct pkt_spec *s,
                     int verdict, uint32_t reason)
{
    struct xlb_reason_counter before[XLB_R_MAX], after[XLB_R_MAX];
    size_t ilen = xt_build(s, in);
    int err;

    xt_reasons(lb->m->reasons, before);
    err = xt_run(lb->prog, ifindex, in, ilen, &out);
    cr_assert_eq(err, 0, "%s: BPF_PROG_TEST_RUN failed: %s", what, strerror(-err));
    xt_reasons(lb->m->reasons, after);
    cr_assert_eq(out.verdict, verdict, "%s: verdict %s, expected %s", what,
                 xt_verdict_name(out.verdict), xt_verdict_name(verdict));
    for (uint32_t r = 0; r < XLB_R_MAX; r++)
        cr_assert_eq(after[r].packets - before[r].packets, r == reason ? 1u : 0u,
                     "%s: reason %s counted %llu packets (expected reason %s)", what,
                     xlb_reason_name(r),
                     (unsigned long long)(after[r].packets - before[r].packets),
                     xlb_reason_name(reason));
    return ilen;
}

static size_t run(struct xt_lb *lb, const char *what, const struct pkt_spec *s, int verdict,
                  uint32_t reason)
{
    return run_on(lb, what, xt_if0, s, verdict, reason);
}

/* The output is exp_spec's frame byte for byte. */
static void expect_frame(const char *what, size_t ilen, const struct pkt_spec *exp_spec)
{
    size_t elen = xt_build(exp_spec, exp_);

    xt_assert_frame(what, in, ilen, exp_, elen, out.data, out.len);
}

/* The output is the input, untouched. */
static void expect_unchanged(const char *what, size_t ilen)
{
    xt_assert_frame(what, in, ilen, in, ilen, out.data, out.len);
}

static void macs(struct pkt_spec *s, const char *next_hop, const uint8_t src_mac[6])
{
    xt_real_mac(next_hop, s->eth_dst);
    memcpy(s->eth_src, src_mac, 6);
}

static uint32_t add_real(struct xt_lb *lb, uint32_t vs, const char *addr, uint16_t port)
{
    struct xlb_real_spec rs = { .port = port, .weight = 1 };
    struct xlb_err e = { "" };
    uint32_t id;

    rs.family = (uint8_t)xt_addr(addr, &rs.addr);
    cr_assert_eq(xlb_real_add_spec(lb->m, vs, &rs, &id, &e), 0, "xlb_real_add_spec %s: %s",
                 addr, e.msg);
    return id;
}

static uint32_t nat_service(struct xt_lb *lb, const char *vip, uint16_t vport, uint8_t proto,
                            const char *real, uint16_t rport, uint32_t *real_id)
{
    char name[64];
    uint32_t vs;
    uint32_t id;

    snprintf(name, sizeof(name), "nat%d-%u-%u", is_v6(vip) ? 6 : 4, proto, vport);
    vs = xt_service(lb, name, vip, vport, proto, XLB_FWD_NAT, RING);
    id = add_real(lb, vs, real, rport);

    xt_table_all(lb, vs, id, RING);
    if (real_id)
        *real_id = id;
    return vs;
}

/* ---- ICMP errors ---- */

/*
 * An ICMP "fragmentation needed" (v4, code 4, next-hop MTU mtu) or "packet
 * too big" (v6) from router to dst quoting the first quote_l4 transport
 * bytes of the packet q (its whole IP header first) into quote.
 */
static struct pkt_spec too_big(const char *router, const char *dst, const struct pkt_spec *q,
                               size_t quote_l4, uint32_t mtu, uint8_t *quote)
{
    uint8_t qframe[XT_FRAME_MAX];
    struct pkt_view v;
    struct pkt_spec ic;
    size_t n = xt_build(q, qframe);
    bool v6 = is_v6(router);

    cr_assert_eq(pkt_parse(qframe, n, &v), 0);
    cr_assert_leq(v.l3_off + v.l3_len + quote_l4, n);
    memcpy(quote, qframe + v.l3_off, v.l3_len + quote_l4);
    ic = xt_spec(router, dst, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, (uint16_t)(mtu >> 16),
                 (uint16_t)mtu, v.l3_len + quote_l4);
    if (!v6)
        ic.sport = 0;
    ic.icmp_type = v6 ? 2 : 3;
    ic.icmp_code = v6 ? 0 : 4;
    ic.payload = quote;
    ic.ttl = 250;
    if (!v6)
        ic.ip_id = 0xbeef;
    return ic;
}

struct icmp_case {
    const char *vip, *client, *router, *real;
    uint8_t proto;
    uint16_t vport, rport;      /* rport 0: the real takes vport */
    size_t quote_l4;            /* transport bytes quoted */
    uint32_t mtu;
    int real_if;                /* 0: one arm (XDP_TX), 2: behind xlbtveth2 */
    bool zero_udp_csum;         /* the quoted UDP over IPv4 has no checksum */
};

/*
 * The client's first packet makes the flow; the router's error about the
 * flow's reply reaches the real translated; one about another client port
 * (no flow) is passed untouched.
 */
static void icmp_case(const struct icmp_case *c)
{
    const uint8_t *real_side_mac = c->real_if == 2 ? xt_mac_if2 : xt_mac_if0;
    int fwd_verdict = c->real_if == 2 ? XDP_REDIRECT : XDP_TX;
    uint32_t fwd_reason = c->real_if == 2 ? XLB_R_REDIRECT : XLB_R_TX;
    uint16_t to_port = c->rport ? c->rport : c->vport;
    bool v6 = is_v6(c->vip);
    uint32_t low = v6 ? 1280 : 576;
    uint8_t quote[256], equote[256];
    struct pkt_spec s, q, eq, ic, eic;
    struct xt_lb lb;
    uint32_t vs, rid;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    vs = nat_service(&lb, c->vip, c->vport, c->proto, c->real, c->rport, &rid);
    s = pkt(c->client, c->vip, c->proto, CPORT, c->vport, F_SYN, 64);
    run(&lb, "client's first packet", &s, fwd_verdict, fwd_reason);

    /* The reply as the client saw it, and as the real sent it. */
    q = pkt(c->vip, c->client, c->proto, c->vport, CPORT, F_SYN | F_ACK, 1400);
    eq = q;
    put_addr(eq.src, c->real);
    eq.sport = to_port;
    ic = too_big(c->router, c->vip, &q, c->quote_l4, c->mtu, quote);
    eic = too_big(c->router, c->real, &eq, c->quote_l4, c->mtu, equote);
    if (c->zero_udp_csum) {
        size_t ipl = quote[0] & 0x0f;

        quote[ipl * 4 + 6] = quote[ipl * 4 + 7] = 0;
        equote[ipl * 4 + 6] = equote[ipl * 4 + 7] = 0;
    }
    macs(&eic, c->real, real_side_mac);
    ilen = run(&lb, "too big", &ic, fwd_verdict, fwd_reason);
    expect_frame("too big", ilen, &eic);
    /* The properties on their own, too. */
    {
        struct pkt_view v;
        const uint8_t *qip;

        cr_assert_eq(pkt_parse(out.data, out.len, &v), 0);
        if (!v6)
            cr_assert(pkt_ipv4_hdr_csum_ok(out.data + v.l3_off), "outer IPv4 checksum");
        cr_assert(pkt_l4_csum_ok(v.family, out.data + v.l3_off, out.len - v.l3_off),
                  "ICMP checksum");
        qip = out.data + v.l4_off + 8;
        if (!v6)
            cr_assert(pkt_ipv4_hdr_csum_ok(qip), "quoted IPv4 header checksum");
    }
    cr_assert_eq(event_count(&lb, XLB_EV_ICMP_TOO_BIG), 1);
    cr_assert_eq(event_count(&lb, XLB_EV_ICMP_LOW_MTU), c->mtu < low ? 1u : 0u);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 2);
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 2);

    /* About a flow that does not exist: passed untranslated, as before. */
    q.dport = CPORT + 1;
    ic = too_big(c->router, c->vip, &q, c->quote_l4, c->mtu, quote);
    ilen = run(&lb, "too big, no flow", &ic, XDP_PASS, XLB_R_PASS_NAT_UNTRANSLATED);
    expect_unchanged("too big, no flow", ilen);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 2);
    xt_lb_close(&lb);
}

TestSuite(nat_icmp, .init = xt_env_setup);

/* TCP: 8 quoted bytes hold the ports, not the checksum. */
Test(nat_icmp, frag_needed_v4_tcp_short_quote)
{
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_TCP, 80, 8080, 8,
                                   1300, 0, false });
}

/* A longer quote holds the TCP checksum: it is updated too. */
Test(nat_icmp, frag_needed_v4_tcp_long_quote_low_mtu)
{
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_TCP, 80, 8080, 28,
                                   500, 0, false });
}

/* UDP: the checksum is in the 8 bytes; the real's port may be the VIP's. */
Test(nat_icmp, frag_needed_v4_udp)
{
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_UDP, 53, 5353, 8,
                                   1400, 0, false });
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_UDP, 53, 0, 8,
                                   1400, 0, false });
}

/* A quoted UDP over IPv4 without a checksum keeps none. */
Test(nat_icmp, frag_needed_v4_udp_without_checksum)
{
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_UDP, 53, 5353, 8,
                                   1400, 0, true });
}

/* Two arms: to the farm side by redirect, as the flow's packets. */
Test(nat_icmp, frag_needed_v4_two_arms)
{
    icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, FARM4, IPPROTO_TCP, 443, 8443, 20,
                                   1300, 2, false });
}

Test(nat_icmp, packet_too_big_v6_tcp)
{
    icmp_case(&(struct icmp_case){ VIP6, CLIENT6, ROUTER6, REAL6, IPPROTO_TCP, 80, 8080, 8,
                                   1280, 0, false });
    icmp_case(&(struct icmp_case){ VIP6, CLIENT6, ROUTER6, REAL6, IPPROTO_TCP, 80, 8080, 40,
                                   1200, 0, false });
}

Test(nat_icmp, packet_too_big_v6_udp)
{
    icmp_case(&(struct icmp_case){ VIP6, CLIENT6, ROUTER6, REAL6, IPPROTO_UDP, 53, 5353, 8,
                                   1400, 0, false });
}

/* Checksums that make the incremental updates carry in many ways. */
Test(nat_icmp, checksum_carries)
{
    static const uint16_t ports[] = { 1, 0x00ff, 0x7fff, 0xfffe, 0xffff, 0x8000, 0x0100 };

    for (size_t i = 0; i < XT_ARRAY_SIZE(ports); i++) {
        icmp_case(&(struct icmp_case){ VIP4, CLIENT4, ROUTER4, REAL4, IPPROTO_UDP, 53,
                                       ports[i], 8, 1400, 0, false });
        icmp_case(&(struct icmp_case){ VIP6, CLIENT6, ROUTER6, REAL6, IPPROTO_TCP,
                                       ports[(i + 3) % XT_ARRAY_SIZE(ports)], ports[i], 20,
                                       1300, 0, false });
    }
}

/* About a VIP port without a service: passed (pass_icmp_no_flow). */
Test(nat_icmp, unknown_service_passed)
{
    struct pkt_spec q = pkt(VIP4, CLIENT4, IPPROTO_TCP, 81, CPORT, F_ACK, 100), ic;
    uint8_t quote[128];
    struct xt_lb lb;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    nat_service(&lb, VIP4, 80, IPPROTO_TCP, REAL4, 8080, NULL);
    ic = too_big(ROUTER4, VIP4, &q, 8, 1300, quote);
    ilen = run(&lb, "too big, no service", &ic, XDP_PASS, XLB_R_PASS_ICMP_NO_FLOW);
    expect_unchanged("too big, no service", ilen);
    xt_lb_close(&lb);
}

/*
 * An ICMP error a real sends about a client's packet (quoting client:cport
 * -> real:rport) leaves towards the client with the VIP as outer source
 * and quoted destination address and port, checksums updated.
 */
static void real_error_case(const char *vip, const char *client, const char *real,
                            uint8_t proto, uint16_t vport, uint16_t rport, size_t quote_l4,
                            int real_if)
{
    const uint8_t *real_side_mac = real_if == 2 ? xt_mac_if2 : xt_mac_if0;
    int real_ifindex = real_if == 2 ? xt_if2 : xt_if0;
    int fwd_verdict = real_if == 2 ? XDP_REDIRECT : XDP_TX;
    uint32_t fwd_reason = real_if == 2 ? XLB_R_REDIRECT : XLB_R_TX;
    bool v6 = is_v6(vip);
    uint8_t quote[256], equote[256];
    struct pkt_spec s, q, eq, ic, eic;
    struct xt_lb lb;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    nat_service(&lb, vip, vport, proto, real, rport, NULL);
    s = pkt(client, vip, proto, CPORT, vport, F_SYN, 32);
    run(&lb, "client's first packet", &s, fwd_verdict, fwd_reason);

    /* What the real received, and what the client sent. */
    q = pkt(client, real, proto, CPORT, rport ? rport : vport, F_SYN, 32);
    eq = q;
    put_addr(eq.dst, vip);
    eq.dport = vport;
    ic = too_big(real, client, &q, quote_l4, 0, quote);
    eic = too_big(vip, client, &eq, quote_l4, 0, equote);
    /* Port unreachable / administratively prohibited. */
    ic.icmp_type = eic.icmp_type = v6 ? 1 : 3;
    ic.icmp_code = eic.icmp_code = v6 ? 4 : 3;
    ic.ttl = eic.ttl = 64;
    xt_real_mac(real, ic.eth_src);
    memcpy(ic.eth_dst, real_side_mac, 6);
    macs(&eic, client, xt_mac_if0);
    ilen = run_on(&lb, "real's error", real_ifindex, &ic, fwd_verdict, fwd_reason);
    expect_frame("real's error", ilen, &eic);
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 1);

    /* About a packet of no flow, or quoting another destination: untouched. */
    q.sport = CPORT + 1;
    ic = too_big(real, client, &q, quote_l4, 0, quote);
    ic.icmp_type = v6 ? 1 : 3;
    ic.icmp_code = v6 ? 4 : 3;
    ic.ttl = 64;
    ilen = run_on(&lb, "real's error, no flow", real_ifindex, &ic, XDP_PASS,
                  XLB_R_PASS_NOT_VIP);
    expect_unchanged("real's error, no flow", ilen);
    q.sport = CPORT;
    put_addr(q.dst, v6 ? "fd00::33" : "198.18.0.33");
    ic = too_big(real, client, &q, quote_l4, 0, quote);
    ic.icmp_type = v6 ? 1 : 3;
    ic.icmp_code = v6 ? 4 : 3;
    ilen = run_on(&lb, "error about another host", real_ifindex, &ic, XDP_PASS,
                  XLB_R_PASS_NOT_VIP);
    expect_unchanged("error about another host", ilen);
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 1);
    xt_lb_close(&lb);
}

Test(nat_icmp, real_error_v4_udp)
{
    real_error_case(VIP4, CLIENT4, REAL4, IPPROTO_UDP, 53, 5353, 40, 0);
    real_error_case(VIP4, CLIENT4, FARM4, IPPROTO_UDP, 53, 0, 8, 2);
}

Test(nat_icmp, real_error_v4_tcp)
{
    real_error_case(VIP4, CLIENT4, REAL4, IPPROTO_TCP, 80, 8080, 52, 0);
}

Test(nat_icmp, real_error_v6)
{
    real_error_case(VIP6, CLIENT6, REAL6, IPPROTO_UDP, 53, 5353, 40, 0);
    real_error_case(VIP6, CLIENT6, REAL6, IPPROTO_TCP, 80, 8080, 8, 0);
}

/* ---- fragments ---- */

/* The fragment of a UDP datagram: first (with the UDP header) or later at
 * offset (8-byte units). */
static struct pkt_spec frag(const char *src, const char *dst, uint16_t sport, uint16_t dport,
                            uint16_t id, uint16_t offset, bool more, size_t plen)
{
    struct pkt_spec s = pkt(src, dst, IPPROTO_UDP, sport, dport, 0, plen);

    s.ip_id = id;
    s.frag_off = (uint16_t)(offset | (more ? PKT_MF : 0));
    return s;
}

/* The real the address-only hash of a fragment picks from table t. */
static uint32_t hash_real(const char *src, const char *dst, const uint32_t *t, uint32_t m)
{
    struct xlb_flow_key k;

    memset(&k, 0, sizeof(k));
    k.family = (uint8_t)xt_addr(src, &k.src);
    xt_addr(dst, &k.dst);
    k.proto = IPPROTO_UDP;
    return t[xlb_flow_hash(&k) % m];
}

TestSuite(nat_frag, .init = xt_env_setup);

/*
 * Both fragments of a client's datagram reach the real the address hash
 * picks (of two), with the real's address; the first one the real's port
 * and the checksum updated.  The first one records the flow (later
 * unfragmented packets follow it) and the reverse entry.
 */
Test(nat_frag, inbound_fragments_to_one_real)
{
    struct xlb_nat_rev_value rv;
    struct xlb_flow_key rk;
    struct pkt_spec s;
    struct xt_lb lb;
    uint32_t vs, a, b, t[RING], rid;
    const char *real;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "dns", VIP4, 53, IPPROTO_UDP, XLB_FWD_NAT, RING);
    a = add_real(&lb, vs, REAL4, 5353);
    b = add_real(&lb, vs, REAL4B, 5353);
    for (int i = 0; i < RING; i++)
        t[i] = i & 1 ? b : a;
    xt_table(&lb, vs, t, RING);
    rid = hash_real(CLIENT4, VIP4, t, RING);
    real = rid == a ? REAL4 : REAL4B;

    s = frag(CLIENT4, VIP4, CPORT, 53, 0x4242, 0, true, 64);
    ilen = run(&lb, "first fragment", &s, XDP_TX, XLB_R_TX);
    put_addr(s.dst, real);
    s.dport = 5353;
    macs(&s, real, xt_mac_if0);
    expect_frame("first fragment", ilen, &s);
    cr_assert(pkt_ipv4_hdr_csum_ok(out.data + 14), "first fragment: IPv4 checksum");

    s = frag(CLIENT4, VIP4, 0, 0, 0x4242, 9, false, 40);
    ilen = run(&lb, "later fragment", &s, XDP_TX, XLB_R_TX);
    put_addr(s.dst, real);
    macs(&s, real, xt_mac_if0);
    expect_frame("later fragment", ilen, &s);
    cr_assert(pkt_ipv4_hdr_csum_ok(out.data + 14), "later fragment: IPv4 checksum");
    cr_assert_eq(event_count(&lb, XLB_EV_FRAGMENT), 2);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 2);
    cr_assert_eq(xt_real_stats(&lb, rid).new_flows, 1);

    /* The flow and its reverse entry, as a new flow's. */
    memset(&rk, 0, sizeof(rk));
    rk.family = XLB_FAMILY_V4;
    xt_addr(real, &rk.src);
    xt_addr(CLIENT4, &rk.dst);
    rk.sport_be = htons(5353);
    rk.dport_be = htons(CPORT);
    rk.proto = IPPROTO_UDP;
    cr_assert_eq(bpf_map_lookup_elem(lb.m->nat_rev, &rk, &rv), 0, "no reverse entry");
    cr_assert_eq(ntohs(rv.vip_port_be), 53);
    cr_assert_eq(rv.real_id, rid);
    {
        struct pkt_spec u = pkt(CLIENT4, VIP4, IPPROTO_UDP, CPORT, 53, 0, 64);
        struct xlb_flow_value fv;

        cr_assert(xt_flow_get(&lb, &u, &fv), "no flow entry");
        cr_assert_eq(fv.real_id, rid);
        /* An unfragmented datagram of the flow follows it, whatever the table says. */
        xt_table_all(&lb, vs, rid == a ? b : a, RING);
        ilen = run(&lb, "unfragmented", &u, XDP_TX, XLB_R_TX);
        put_addr(u.dst, real);
        u.dport = 5353;
        macs(&u, real, xt_mac_if0);
        expect_frame("unfragmented", ilen, &u);
    }
    xt_lb_close(&lb);
}

/* A first fragment cut short of its transport header is dropped; IPv6
 * fragments still pass untranslated. */
Test(nat_frag, unsupported_fragments)
{
    struct pkt_spec s;
    struct xt_lb lb;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    nat_service(&lb, VIP4, 80, IPPROTO_TCP, REAL4, 8080, NULL);
    nat_service(&lb, VIP6, 53, IPPROTO_UDP, REAL6, 5353, NULL);
    s = pkt(CLIENT4, VIP4, IPPROTO_TCP, CPORT, 80, F_ACK, 0);
    s.proto = 250;          /* an IP header and 8 bytes, protocol patched below */
    s.payload_len = 8;
    s.payload = xt_payload();
    s.frag_off = PKT_MF;
    ilen = xt_build(&s, in);
    in[14 + 9] = IPPROTO_TCP;
    in[14 + 10] = in[14 + 11] = 0;
    {
        uint16_t ck = pkt_csum(in + 14, 20, 0);

        in[14 + 10] = (uint8_t)(ck >> 8);
        in[14 + 11] = (uint8_t)ck;
    }
    {
        struct xlb_reason_counter r[XLB_R_MAX];

        xt_run_ok("tiny first fragment", lb.prog, in, ilen, &out);
        cr_assert_eq(out.verdict, XDP_DROP, "tiny first fragment: %s",
                     xt_verdict_name(out.verdict));
        xt_reasons(lb.m->reasons, r);
        cr_assert_eq(r[XLB_R_DROP_MALFORMED].packets, 1);
    }
    s = frag(CLIENT6, VIP6, CPORT, 53, 0x4242, 0, true, 64);
    ilen = run(&lb, "IPv6 fragment", &s, XDP_PASS, XLB_R_PASS_NAT_UNTRANSLATED);
    expect_unchanged("IPv6 fragment", ilen);
    xt_lb_close(&lb);
}

static bool frag_rec_get(struct xt_lb *lb, const char *real, const char *client, uint16_t id,
                         struct xlb_nat_frag_value *v)
{
    struct xlb_nat_frag_key k;

    memset(&k, 0, sizeof(k));
    k.family = (uint8_t)xt_addr(real, &k.src);
    xt_addr(client, &k.dst);
    k.id_be = htons(id);
    k.proto = IPPROTO_UDP;
    return bpf_map_lookup_elem(lb->m->nat_frags, &k, v) == 0;
}

/*
 * The real's reply in two fragments: the first one is translated by the
 * flow's reverse entry and records the datagram, the later one takes the
 * record.  A later fragment of another datagram (no first fragment seen)
 * passes untouched and is counted.
 */
static void reply_case(const char *real, int real_if)
{
    const uint8_t *real_side_mac = real_if == 2 ? xt_mac_if2 : xt_mac_if0;
    int real_ifindex = real_if == 2 ? xt_if2 : xt_if0;
    int fwd_verdict = real_if == 2 ? XDP_REDIRECT : XDP_TX;
    uint32_t fwd_reason = real_if == 2 ? XLB_R_REDIRECT : XLB_R_TX;
    struct xlb_nat_frag_value fv;
    struct xlb_addr va;
    struct pkt_spec s, r;
    struct xt_lb lb;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    nat_service(&lb, VIP4, 53, IPPROTO_UDP, real, 5353, NULL);
    s = pkt(CLIENT4, VIP4, IPPROTO_UDP, CPORT, 53, 0, 32);
    run(&lb, "query", &s, fwd_verdict, fwd_reason);

    r = frag(real, CLIENT4, 5353, CPORT, 0x0777, 0, true, 1200);
    xt_real_mac(real, r.eth_src);
    memcpy(r.eth_dst, real_side_mac, 6);
    ilen = run_on(&lb, "first reply fragment", real_ifindex, &r, fwd_verdict, fwd_reason);
    put_addr(r.src, VIP4);
    r.sport = 53;
    macs(&r, CLIENT4, xt_mac_if0);
    expect_frame("first reply fragment", ilen, &r);
    cr_assert(frag_rec_get(&lb, real, CLIENT4, 0x0777, &fv), "no fragment record");
    xt_addr(VIP4, &va);
    cr_assert_eq(memcmp(&fv.vip, &va, sizeof(va)), 0, "record: wrong VIP");
    cr_assert_eq(ntohs(fv.vip_port_be), 53);

    r = frag(real, CLIENT4, 0, 0, 0x0777, 151, false, 300);
    xt_real_mac(real, r.eth_src);
    memcpy(r.eth_dst, real_side_mac, 6);
    ilen = run_on(&lb, "later reply fragment", real_ifindex, &r, fwd_verdict, fwd_reason);
    put_addr(r.src, VIP4);
    macs(&r, CLIENT4, xt_mac_if0);
    expect_frame("later reply fragment", ilen, &r);
    cr_assert(pkt_ipv4_hdr_csum_ok(out.data + 14), "later reply fragment: IPv4 checksum");
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 2);

    /* Before its first fragment (or of another datagram): untouched. */
    r = frag(real, CLIENT4, 0, 0, 0x0778, 151, false, 300);
    xt_real_mac(real, r.eth_src);
    memcpy(r.eth_dst, real_side_mac, 6);
    ilen = run_on(&lb, "early later fragment", real_ifindex, &r, XDP_PASS,
                  XLB_R_PASS_NAT_FRAG_NO_ENTRY);
    expect_unchanged("early later fragment", ilen);
    /* A first fragment of no flow: pass_nat_no_entry, as unfragmented. */
    r = frag(real, CLIENT4, 5353, CPORT + 1, 0x0779, 0, true, 100);
    xt_real_mac(real, r.eth_src);
    memcpy(r.eth_dst, real_side_mac, 6);
    ilen = run_on(&lb, "first fragment, no flow", real_ifindex, &r, XDP_PASS,
                  XLB_R_PASS_NAT_NO_ENTRY);
    expect_unchanged("first fragment, no flow", ilen);
    cr_assert(!frag_rec_get(&lb, real, CLIENT4, 0x0779, &fv), "record of no flow");
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 2);
    xt_lb_close(&lb);
}

Test(nat_frag, reply_fragments_one_arm)
{
    reply_case(REAL4, 0);
}

Test(nat_frag, reply_fragments_two_arms)
{
    reply_case(FARM4, 2);
}
