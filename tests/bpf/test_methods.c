/*
 * The dsr and nat forwarding methods, frame by frame.
 *
 * dsr: only the MACs change (the next hop's, i.e. the real's, and the
 * egress interface's); the tags and the IP packet stay byte for byte.  A
 * real the FIB reaches through a gateway is dropped and counted, and the
 * loader refuses to add one.
 *
 * nat: the client's packet leaves with the real's address and port, the
 * real's reply with the VIP's again; the expected frames are built from
 * scratch by pkt_build() with the translated fields (so every checksum in
 * them is computed afresh, not taken from the output), and the checksums of
 * the output are verified on their own too.  One arm (the real behind the
 * receiving interface: XDP_TX) and two arms (the real behind xlbtveth2:
 * redirect both ways).
 *
 * Clients are on xlbtveth0's network (198.18.0.20, fd00::20): the reply
 * path needs a next hop towards them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#include <criterion/criterion.h>

#include "harness.h"

#define CLIENT4 "198.18.0.20"
#define CLIENT6 "fd00::20"
#define VIP4 "198.18.100.1"
#define VIP6 "fd00:100::1"
#define REAL4 "198.18.0.31"
#define REAL6 "fd00::31"
#define REAL4B "198.18.0.32"
#define REAL6B "fd00::32"
#define FARM4 "198.18.2.50"         /* behind xlbtveth2 */
#define FARM6 "fd00:2::50"
#define RING 13

#define F_SYN 0x02
#define F_ACK 0x10

static uint8_t in[XT_FRAME_MAX], exp_[XT_FRAME_MAX];
static struct xt_out out;

static bool is_v6(const char *a)
{
    return strchr(a, ':') != NULL;
}

/* A text address into the address bytes of a pkt_spec. */
static void put_addr(uint8_t *to, const char *text)
{
    struct xlb_addr a;

    xt_addr(text, &a);
    memcpy(to, a.addr_be, 16);
}

static void run_cmd(const char *cmd)
{
    int rc = system(cmd);

    cr_assert_eq(rc, 0, "'%s' failed (status %d)", cmd, rc);
}

/* A TCP (or UDP) packet src:sport -> dst:dport from the client's MAC to
 * xlbtveth0, with fields that must survive: TOS, TTL, id, DF. */
static struct pkt_spec pkt(const char *src, const char *dst, uint8_t proto, uint16_t sport,
                           uint16_t dport, uint8_t flags)
{
    struct pkt_spec s = xt_spec(src, dst, proto, sport, dport, 64);

    s.tcp_flags = proto == IPPROTO_TCP ? flags : 0;
    s.tcp_seq = 123456;
    s.tcp_ack = flags & F_ACK ? 654321 : 0;
    s.tos = 0x28;
    s.ttl = 57;
    if (!is_v6(src)) {
        s.frag_off = PKT_DF;
        s.ip_id = 0x1234;
    }
    return s;
}

static uint64_t event_count(struct xt_lb *lb, uint32_t ev)
{
    uint64_t n;

    cr_assert_eq(xlb_event_read(lb->m->events, ev, &n), 0);
    return n;
}

/*
 * Run the frame of s as received on ifindex; the verdict must be `verdict`
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
                     xlb_reason_name(r), (unsigned long long)(after[r].packets -
                                                              before[r].packets),
                     xlb_reason_name(reason));
    return ilen;
}

static size_t run(struct xt_lb *lb, const char *what, const struct pkt_spec *s, int verdict,
                  uint32_t reason)
{
    return run_on(lb, what, xt_if0, s, verdict, reason);
}

/* The output is the frame of exp_spec, byte for byte, and its IPv4 header
 * and transport checksums are right. */
static void expect_frame(const char *what, size_t ilen, const struct pkt_spec *exp_spec)
{
    struct pkt_view v;
    size_t elen = xt_build(exp_spec, exp_);

    xt_assert_frame(what, in, ilen, exp_, elen, out.data, out.len);
    cr_assert_eq(pkt_parse(out.data, out.len, &v), 0, "%s: output not parsable", what);
    if (v.family == AF_INET)
        cr_assert(pkt_ipv4_hdr_csum_ok(out.data + v.l3_off), "%s: IPv4 header checksum", what);
    cr_assert(pkt_l4_csum_ok(v.family, out.data + v.l3_off, out.len - v.l3_off),
              "%s: transport checksum", what);
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

/* xlb_real_add_spec must fail with -err and a message containing `has`. */
static void add_real_fails(struct xt_lb *lb, uint32_t vs, const char *addr, uint16_t port,
                           int err, const char *has)
{
    struct xlb_real_spec rs = { .port = port, .weight = 1 };
    struct xlb_err e = { "" };
    int rc;

    rs.family = (uint8_t)xt_addr(addr, &rs.addr);
    rc = xlb_real_add_spec(lb->m, vs, &rs, NULL, &e);
    cr_assert_eq(rc, -err, "adding real %s: %d (%s), expected %d", addr, rc, e.msg, -err);
    cr_assert(strstr(e.msg, addr) && strstr(e.msg, has), "adding real %s: message '%s' "
              "lacks the address or '%s'", addr, e.msg, has);
}

/* A service with one real (port for nat) and a table naming it. */
static uint32_t one_real(struct xt_lb *lb, const char *name, const char *vip, uint16_t vport,
                         uint8_t proto, uint8_t method, const char *real, uint16_t rport,
                         uint32_t *real_id)
{
    uint32_t vs = xt_service(lb, name, vip, vport, proto, method, RING);
    uint32_t id = add_real(lb, vs, real, rport);

    xt_table_all(lb, vs, id, RING);
    if (real_id)
        *real_id = id;
    return vs;
}

/* ---- dsr ---- */

TestSuite(dsr, .init = xt_env_setup);

/* Frames of s, with 0, 1 and 2 tags, leave with only the MACs changed. */
static void dsr_frames(struct xt_lb *lb, const char *what, struct pkt_spec s, const char *real,
                       int verdict)
{
    const uint8_t *src_mac = verdict == XDP_TX ? xt_mac_if0 : xt_mac_if2;
    uint32_t reason = verdict == XDP_TX ? XLB_R_TX : XLB_R_REDIRECT;
    char w[128];

    for (int tags = 0; tags <= 2; tags++) {
        struct pkt_spec x = s;
        size_t ilen;

        x.n_vlan = tags;
        if (tags == 1) {
            x.vlan[0] = (struct pkt_vlan){ 0x8100, 0x2064 };
        } else if (tags == 2) {
            x.vlan[0] = (struct pkt_vlan){ 0x88a8, 0xa00a };     /* 802.1ad outer */
            x.vlan[1] = (struct pkt_vlan){ 0x8100, 0x0fff };     /* 802.1Q inner */
        }
        x.sport = (uint16_t)(s.sport + tags);
        snprintf(w, sizeof(w), "%s, %d tag(s)", what, tags);
        ilen = run(lb, w, &x, verdict, reason);
        macs(&x, real, src_mac);
        expect_frame(w, ilen, &x);
        /* Everything after the MACs is the input's. */
        cr_assert_eq(out.len, ilen, "%s: length changed", w);
        cr_assert_eq(memcmp(out.data + 12, in + 12, ilen - 12), 0, "%s: more than the MACs "
                     "changed", w);
    }
}

static void dsr_case(const char *vip, const char *client, const char *real, int verdict)
{
    struct xt_lb lb;
    uint32_t rid;

    xt_lb_open(&lb, NULL);
    one_real(&lb, "tcp", vip, 80, IPPROTO_TCP, XLB_FWD_DSR, real, 0, &rid);
    one_real(&lb, "udp", vip, 53, IPPROTO_UDP, XLB_FWD_DSR, real, 0, NULL);
    dsr_frames(&lb, "dsr tcp", pkt(client, vip, IPPROTO_TCP, 40000, 80, F_SYN), real, verdict);
    dsr_frames(&lb, "dsr tcp established", pkt(client, vip, IPPROTO_TCP, 40000, 80, F_ACK),
               real, verdict);
    dsr_frames(&lb, "dsr udp", pkt(client, vip, IPPROTO_UDP, 40000, 53, 0), real, verdict);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 6, "real counters: %llu packets",
                 (unsigned long long)xt_real_stats(&lb, rid).packets);
    cr_assert_eq(xt_real_stats(&lb, rid).new_flows, 3);
    xt_lb_close(&lb);
}

Test(dsr, ipv4_macs_only_tags_kept)
{
    dsr_case(VIP4, "198.18.1.1", REAL4, XDP_TX);
}

Test(dsr, ipv6_macs_only_tags_kept)
{
    dsr_case(VIP6, "fd00:1::1", REAL6, XDP_TX);
}

Test(dsr, other_interface_redirect)
{
    dsr_case(VIP4, "198.18.1.1", FARM4, XDP_REDIRECT);
}

Test(dsr, ipv6_other_interface_redirect)
{
    dsr_case(VIP6, "fd00:1::1", FARM6, XDP_REDIRECT);
}

/*
 * A real on a connected network without a resolved neighbour is dropped
 * (drop_no_neigh: the stack could not forward a frame addressed to the
 * VIP); once its network is reached through a gateway, drop_dsr_gateway.
 */
static void gateway_case(const char *vip, const char *client, const char *net,
                         const char *real, const char *gw)
{
    struct pkt_spec s = pkt(client, vip, IPPROTO_TCP, 40000, 80, F_SYN);
    struct xt_lb lb;
    char cmd[256];
    uint32_t vs, rid;

    snprintf(cmd, sizeof(cmd), "ip route add %s dev %s", net, XT_IF0);
    run_cmd(cmd);
    xt_lb_open(&lb, NULL);
    vs = one_real(&lb, "web", vip, 80, IPPROTO_TCP, XLB_FWD_DSR, real, 0, &rid);
    run(&lb, "on link, no neighbour", &s, XDP_DROP, XLB_R_DROP_NO_NEIGH);
    snprintf(cmd, sizeof(cmd), "ip route replace %s via %s dev %s", net, gw, XT_IF0);
    run_cmd(cmd);
    run(&lb, "behind a gateway", &s, XDP_DROP, XLB_R_DROP_DSR_GATEWAY);
    s.sport++;
    s.tcp_flags = F_ACK;
    run(&lb, "behind a gateway, again", &s, XDP_DROP, XLB_R_DROP_DSR_GATEWAY);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 0, "dropped packets counted for the real");
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 3);
    /* ... and the loader refuses such a real now. */
    xt_real_del(&lb, vs, real);
    add_real_fails(&lb, vs, real, 0, EHOSTUNREACH, gw);
    xt_lb_close(&lb);
}

Test(dsr, ipv4_real_behind_gateway_dropped)
{
    gateway_case(VIP4, "198.18.1.1", "198.18.3.0/24", "198.18.3.5", "198.18.0.40");
}

Test(dsr, ipv6_real_behind_gateway_dropped)
{
    gateway_case(VIP6, "fd00:1::1", "fd00:3::/64", "fd00:3::5", "fd00::40");
}

Test(dsr, loader_refuses_unsuitable_reals)
{
    struct xt_lb lb;
    uint32_t v4, v6, tun;

    run_cmd("ip route add 198.18.4.0/24 via 198.18.0.40");
    xt_lb_open(&lb, NULL);
    v4 = xt_service(&lb, "d4", VIP4, 80, IPPROTO_TCP, XLB_FWD_DSR, RING);
    v6 = xt_service(&lb, "d6", VIP6, 80, IPPROTO_TCP, XLB_FWD_DSR, RING);
    tun = xt_service(&lb, "t4", VIP4, 81, IPPROTO_TCP, XLB_FWD_IPIP, RING);
    add_real_fails(&lb, v4, "198.18.4.7", 0, EHOSTUNREACH, "directly connected");
    add_real_fails(&lb, v4, "203.0.113.5", 0, ENETUNREACH, "directly connected");
    add_real_fails(&lb, v4, "198.18.0.1", 0, EADDRINUSE, "address of this host");
    add_real_fails(&lb, v4, REAL6, 0, EINVAL, "family");
    add_real_fails(&lb, v6, REAL4, 0, EINVAL, "family");
    add_real_fails(&lb, v4, REAL4, 8080, EINVAL, "nat");
    add_real_fails(&lb, tun, REAL4, 8080, EINVAL, "nat");
    /* What is suitable goes in, on either interface. */
    add_real(&lb, v4, REAL4, 0);
    add_real(&lb, v4, FARM4, 0);
    add_real(&lb, v6, REAL6, 0);
    add_real(&lb, tun, "198.18.4.7", 0);
    xt_lb_close(&lb);
}

/* An ICMPv4 "fragmentation needed" from a router to the VIP, quoting what
 * the balancer's side sent: VIP:80 -> client:40000 (IP header and 8 bytes
 * of TCP, into quote). */
static struct pkt_spec frag_needed(const char *vip, const char *client, uint8_t *quote)
{
    struct pkt_spec q = pkt(vip, client, IPPROTO_TCP, 80, 40000, F_ACK), ic;
    uint8_t qframe[XT_FRAME_MAX];
    struct pkt_view v;
    size_t n;

    q.payload_len = 1400;
    n = xt_build(&q, qframe);
    cr_assert_eq(pkt_parse(qframe, n, &v), 0);
    memcpy(quote, qframe + v.l3_off, v.l3_len + 8);
    ic = xt_spec("198.18.0.40", vip, IPPROTO_ICMP, 0, 1300, v.l3_len + 8);
    ic.icmp_type = 3;
    ic.icmp_code = 4;
    ic.payload = quote;
    return ic;
}

/* It goes to the flow's real like the flow's packets: only the MACs change. */
Test(dsr, frag_needed_to_the_flows_real)
{
    struct pkt_spec s = pkt("198.18.1.1", VIP4, IPPROTO_TCP, 40000, 80, F_SYN), ic;
    uint8_t quote[128];
    struct xt_lb lb;
    uint32_t vs, a, b;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    vs = one_real(&lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_DSR, REAL4, 0, &a);
    b = add_real(&lb, vs, REAL4B, 0);
    run(&lb, "syn", &s, XDP_TX, XLB_R_TX);
    xt_table_all(&lb, vs, b, RING);
    ic = frag_needed(VIP4, "198.18.1.1", quote);
    ilen = run(&lb, "frag needed", &ic, XDP_TX, XLB_R_TX);
    macs(&ic, REAL4, xt_mac_if0);
    expect_frame("frag needed", ilen, &ic);
    cr_assert_eq(event_count(&lb, XLB_EV_ICMP_TOO_BIG), 1);
    xt_lb_close(&lb);
}

/* The service's access lists and persistence apply to dsr and nat alike. */
static void policy_case(uint8_t method)
{
    struct xlb_persist_spec ps = { .timeout_s = 300, .netmask4 = 32, .netmask6 = 128 };
    struct xlb_prefix deny = { .family = XLB_FAMILY_V4, .plen = 32 };
    struct xlb_err e = { "" };
    struct pkt_spec s;
    struct xt_lb lb;
    uint32_t vs, a, b;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    vs = one_real(&lb, "web", VIP4, 80, IPPROTO_TCP, method, REAL4, 0, &a);
    b = add_real(&lb, vs, REAL4B, 0);
    xt_addr("198.18.0.21", &deny.addr);
    cr_assert_eq(xlb_acl_set(lb.m, vs, NULL, 0, &deny, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_persist_set(lb.m, vs, &ps, &e), 0, "%s", e.msg);

    s = pkt("198.18.0.21", VIP4, IPPROTO_TCP, 40000, 80, F_SYN);
    run(&lb, "denied source", &s, XDP_DROP, XLB_R_DROP_ACL_DENY);
    /* The first connection lands on a (the table names only a) ... */
    s = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40000, 80, F_SYN);
    ilen = run(&lb, "first connection", &s, XDP_TX, XLB_R_TX);
    if (method == XLB_FWD_NAT)
        put_addr(s.dst, REAL4);
    macs(&s, REAL4, xt_mac_if0);
    expect_frame("first connection", ilen, &s);
    /* ... and so does the next one, though the table now names b. */
    xt_table_all(&lb, vs, b, RING);
    s = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40001, 80, F_SYN);
    ilen = run(&lb, "persistent connection", &s, XDP_TX, XLB_R_TX);
    if (method == XLB_FWD_NAT)
        put_addr(s.dst, REAL4);
    macs(&s, REAL4, xt_mac_if0);
    expect_frame("persistent connection", ilen, &s);
    cr_assert_eq(event_count(&lb, XLB_EV_PERSIST_HIT), 1);
    cr_assert_eq(xt_real_stats(&lb, a).new_flows, 2);
    /* A deny prefix added now cuts the established flow too. */
    xt_addr(CLIENT4, &deny.addr);
    cr_assert_eq(xlb_acl_set(lb.m, vs, NULL, 0, &deny, 1, &e), 0, "%s", e.msg);
    s = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40001, 80, F_ACK);
    run(&lb, "established, now denied", &s, XDP_DROP, XLB_R_DROP_ACL_DENY);
    xt_lb_close(&lb);
}

Test(dsr, acl_and_persistence_apply)
{
    policy_case(XLB_FWD_DSR);
}

/* ---- nat ---- */

TestSuite(nat, .init = xt_env_setup);

static struct xlb_flow_key rev_key(const char *real, uint16_t rport, const char *client,
                                   uint16_t cport, uint8_t proto)
{
    struct xlb_flow_key k;

    memset(&k, 0, sizeof(k));
    k.family = (uint8_t)xt_addr(real, &k.src);
    xt_addr(client, &k.dst);
    k.sport_be = htons(rport);
    k.dport_be = htons(cport);
    k.proto = proto;
    return k;
}

static bool rev_get(struct xt_lb *lb, const struct xlb_flow_key *k, struct xlb_nat_rev_value *v)
{
    return bpf_map_lookup_elem(lb->m->nat_rev, k, v) == 0;
}

/*
 * A connection client:40000 -> vip:vport through a nat service to
 * real:rport (rport 0: vport is kept): the client's SYN, the reverse entry,
 * the real's SYN-ACK back, an ACK; a reply that matches no entry; a packet
 * of another host.  real_if is the interface (0 or 2) behind which the real
 * is: 0 is one arm (XDP_TX both ways), 2 two arms (redirects, the reply
 * arriving on xlbtveth2).
 */
static void nat_case(const char *vip, const char *client, const char *real, uint8_t proto,
                     uint16_t vport, uint16_t rport, int real_if)
{
    const uint8_t *real_side_mac = real_if == 2 ? xt_mac_if2 : xt_mac_if0;
    int real_ifindex = real_if == 2 ? xt_if2 : xt_if0;
    int fwd_verdict = real_if == 2 ? XDP_REDIRECT : XDP_TX;
    uint32_t fwd_reason = real_if == 2 ? XLB_R_REDIRECT : XLB_R_TX;
    uint16_t to_port = rport ? rport : vport;
    struct xlb_nat_rev_value rv;
    struct xlb_flow_key rk;
    struct xlb_addr va;
    struct pkt_spec s, r;
    struct xt_lb lb;
    uint32_t vs, rid;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    vs = one_real(&lb, "web", vip, vport, proto, XLB_FWD_NAT, real, rport, &rid);

    /* DNAT: destination address and port become the real's. */
    s = pkt(client, vip, proto, 40000, vport, F_SYN);
    ilen = run(&lb, "client's first packet", &s, fwd_verdict, fwd_reason);
    put_addr(s.dst, real);
    s.dport = to_port;
    macs(&s, real, real_side_mac);
    expect_frame("client's first packet", ilen, &s);

    /* The reverse entry, keyed by the reply's 5-tuple. */
    rk = rev_key(real, to_port, client, 40000, proto);
    cr_assert(rev_get(&lb, &rk, &rv), "no reverse entry for the flow");
    xt_addr(vip, &va);
    cr_assert_eq(memcmp(&rv.vip, &va, sizeof(va)), 0, "reverse entry: wrong VIP");
    cr_assert_eq(ntohs(rv.vip_port_be), vport, "reverse entry: VIP port %u", ntohs(rv.vip_port_be));
    cr_assert_eq(rv.vs_id, vs);
    cr_assert_eq(rv.real_id, rid);
    cr_assert_eq(rv.family, is_v6(vip) ? XLB_FAMILY_V6 : XLB_FAMILY_V4);
    cr_assert_neq(rv.last_seen_ns, 0);

    /* SNAT: the reply's source becomes the VIP again, towards the client. */
    r = pkt(real, client, proto, to_port, 40000, F_SYN | F_ACK);
    xt_real_mac(real, r.eth_src);
    memcpy(r.eth_dst, real_side_mac, 6);
    ilen = run_on(&lb, "real's reply", real_ifindex, &r, fwd_verdict, fwd_reason);
    put_addr(r.src, vip);
    r.sport = vport;
    macs(&r, client, xt_mac_if0);
    expect_frame("real's reply", ilen, &r);
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 1);

    /* The client's next packet: established, translated alike. */
    s = pkt(client, vip, proto, 40000, vport, F_ACK);
    ilen = run(&lb, "client's second packet", &s, fwd_verdict, fwd_reason);
    put_addr(s.dst, real);
    s.dport = to_port;
    macs(&s, real, real_side_mac);
    expect_frame("client's second packet", ilen, &s);
    cr_assert_eq(xt_real_stats(&lb, rid).packets, 2);
    cr_assert_eq(xt_real_stats(&lb, rid).new_flows, 1);

    /* A packet of the real that belongs to no flow goes to the stack as it is. */
    r = pkt(real, client, proto, to_port, 40001, F_ACK);
    ilen = run_on(&lb, "reply without entry", real_ifindex, &r, XDP_PASS,
                  XLB_R_PASS_NAT_NO_ENTRY);
    xt_assert_frame("reply without entry", in, ilen, in, ilen, out.data, out.len);
    /* Other hosts are not looked up. */
    r = pkt(is_v6(real) ? "fd00::33" : "198.18.0.33", client, proto, to_port, 40000, F_ACK);
    run_on(&lb, "another host", real_ifindex, &r, XDP_PASS, XLB_R_PASS_NOT_VIP);
    cr_assert_eq(event_count(&lb, XLB_EV_NAT_REPLY), 1);
    xt_lb_close(&lb);
}

Test(nat, ipv4_one_arm_port_translation)
{
    nat_case(VIP4, CLIENT4, REAL4, IPPROTO_TCP, 80, 8080, 0);
}

Test(nat, ipv6_one_arm_port_translation)
{
    nat_case(VIP6, CLIENT6, REAL6, IPPROTO_TCP, 80, 8080, 0);
}

Test(nat, ipv4_two_arms)
{
    nat_case(VIP4, CLIENT4, FARM4, IPPROTO_TCP, 443, 8443, 2);
}

Test(nat, ipv6_two_arms)
{
    nat_case(VIP6, CLIENT6, FARM6, IPPROTO_TCP, 443, 0, 2);
}

Test(nat, udp_same_port)
{
    nat_case(VIP4, CLIENT4, REAL4, IPPROTO_UDP, 53, 0, 0);
    nat_case(VIP6, CLIENT6, FARM6, IPPROTO_UDP, 53, 5353, 2);
}

/* UDP over IPv4 without a checksum keeps none, both ways. */
Test(nat, udp4_without_checksum)
{
    struct pkt_spec s = pkt(CLIENT4, VIP4, IPPROTO_UDP, 40000, 53, 0), r;
    struct pkt_view v;
    struct xt_lb lb;
    size_t ilen;

    xt_lb_open(&lb, NULL);
    one_real(&lb, "dns", VIP4, 53, IPPROTO_UDP, XLB_FWD_NAT, REAL4, 5353, NULL);
    ilen = xt_build(&s, in);
    cr_assert_eq(pkt_parse(in, ilen, &v), 0);
    in[v.l4_off + 6] = in[v.l4_off + 7] = 0;
    cr_assert_eq(xt_run(lb.prog, xt_if0, in, ilen, &out), 0);
    cr_assert_eq(out.verdict, XDP_TX, "verdict %s", xt_verdict_name(out.verdict));
    put_addr(s.dst, REAL4);
    s.dport = 5353;
    macs(&s, REAL4, xt_mac_if0);
    xt_build(&s, exp_);
    exp_[v.l4_off + 6] = exp_[v.l4_off + 7] = 0;
    xt_assert_frame("udp4 without checksum", in, ilen, exp_, ilen, out.data, out.len);
    cr_assert(pkt_ipv4_hdr_csum_ok(out.data + v.l3_off), "IPv4 header checksum");

    r = pkt(REAL4, CLIENT4, IPPROTO_UDP, 5353, 40000, 0);
    xt_real_mac(REAL4, r.eth_src);
    ilen = xt_build(&r, in);
    in[v.l4_off + 6] = in[v.l4_off + 7] = 0;
    cr_assert_eq(xt_run(lb.prog, xt_if0, in, ilen, &out), 0);
    cr_assert_eq(out.verdict, XDP_TX, "reply verdict %s", xt_verdict_name(out.verdict));
    put_addr(r.src, VIP4);
    r.sport = 53;
    macs(&r, CLIENT4, xt_mac_if0);
    xt_build(&r, exp_);
    exp_[v.l4_off + 6] = exp_[v.l4_off + 7] = 0;
    xt_assert_frame("udp4 reply without checksum", in, ilen, exp_, ilen, out.data, out.len);
    xt_lb_close(&lb);
}

/*
 * The reverse entry is written with the flow entry and again whenever the
 * flow entry's last_seen is refreshed (at most once a second): a lost one
 * comes back with the client's next packet after that.
 */
Test(nat, reverse_entry_refreshed_with_the_flow)
{
    struct pkt_spec s = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40000, 80, F_SYN), r;
    struct xlb_flow_key rk = rev_key(REAL4, 8080, CLIENT4, 40000, IPPROTO_TCP);
    struct xlb_flow_key fk = xt_flow_key(&s);
    struct xlb_flow_value fv;
    struct xlb_nat_rev_value rv;
    struct xt_lb lb;

    xt_lb_open(&lb, NULL);
    one_real(&lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_NAT, REAL4, 8080, NULL);
    run(&lb, "syn", &s, XDP_TX, XLB_R_TX);
    cr_assert(rev_get(&lb, &rk, &rv));
    cr_assert_eq(bpf_map_delete_elem(lb.m->nat_rev, &rk), 0);

    /* A fresh flow entry: the reverse entry is not rewritten per packet. */
    s.tcp_flags = F_ACK;
    run(&lb, "ack, flow fresh", &s, XDP_TX, XLB_R_TX);
    cr_assert(!rev_get(&lb, &rk, &rv), "reverse entry rewritten on every packet");
    r = pkt(REAL4, CLIENT4, IPPROTO_TCP, 8080, 40000, F_ACK);
    run(&lb, "reply, entry lost", &r, XDP_PASS, XLB_R_PASS_NAT_NO_ENTRY);

    /* The flow entry's refresh brings it back. */
    cr_assert_eq(bpf_map_lookup_elem(lb.m->conns, &fk, &fv), 0);
    fv.last_seen_ns -= 3000000000ull;
    cr_assert_eq(bpf_map_update_elem(lb.m->conns, &fk, &fv, BPF_EXIST), 0);
    run(&lb, "ack, flow refreshed", &s, XDP_TX, XLB_R_TX);
    cr_assert(rev_get(&lb, &rk, &rv), "reverse entry not written with the refresh");
    cr_assert_eq(bpf_map_lookup_elem(lb.m->conns, &fk, &fv), 0);
    cr_assert_eq(rv.last_seen_ns, fv.last_seen_ns, "entries refreshed at different times");
    run(&lb, "reply, entry back", &r, XDP_TX, XLB_R_TX);
    xt_lb_close(&lb);
}

/*
 * An ICMP "fragmentation needed" about a nat flow and the first fragment of
 * a nat service's datagram are translated and go to the real (the details:
 * test_nat_icmp.c).
 */
Test(nat, icmp_errors_and_fragments_translated)
{
    struct pkt_spec s = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40000, 80, F_SYN), ic, f;
    uint8_t quote[128];
    struct xt_lb lb;
    uint32_t vs;
    size_t n;

    xt_lb_open(&lb, NULL);
    vs = one_real(&lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_NAT, REAL4, 8080, NULL);
    run(&lb, "syn", &s, XDP_TX, XLB_R_TX);

    /* A router quotes what the balancer sent: VIP:80 -> client:40000. */
    ic = frag_needed(VIP4, CLIENT4, quote);
    n = run(&lb, "frag needed", &ic, XDP_TX, XLB_R_TX);
    {
        struct xlb_addr ra;
        struct pkt_view v;

        xt_addr(REAL4, &ra);
        cr_assert_eq(out.len, n);
        cr_assert_eq(pkt_parse(out.data, out.len, &v), 0);
        cr_assert_eq(memcmp(out.data + v.l3_off + 16, ra.addr_be, 4), 0, "outer destination");
        cr_assert_eq(memcmp(out.data + v.l4_off + 8 + 12, ra.addr_be, 4), 0, "quoted source");
        cr_assert_eq(out.data[v.l4_off + 28] << 8 | out.data[v.l4_off + 29], 8080,
                     "quoted source port");
        cr_assert(pkt_ipv4_hdr_csum_ok(out.data + v.l3_off), "outer IPv4 checksum");
        cr_assert(pkt_ipv4_hdr_csum_ok(out.data + v.l4_off + 8), "quoted IPv4 checksum");
        cr_assert(pkt_l4_csum_ok(v.family, out.data + v.l3_off, out.len - v.l3_off),
                  "ICMP checksum");
    }

    f = pkt(CLIENT4, VIP4, IPPROTO_TCP, 40000, 80, F_ACK);
    f.frag_off = PKT_MF;
    f.ip_id = 77;
    n = run(&lb, "first fragment", &f, XDP_TX, XLB_R_TX);
    put_addr(f.dst, REAL4);
    f.dport = 8080;
    macs(&f, REAL4, xt_mac_if0);
    expect_frame("first fragment", n, &f);
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 3);
    xt_lb_close(&lb);
}

Test(nat, acl_and_persistence_apply)
{
    policy_case(XLB_FWD_NAT);
}

static uint32_t settings_nat_srcs(struct xt_lb *lb)
{
    struct xlb_settings c;
    uint32_t zero = 0;

    cr_assert_eq(bpf_map_lookup_elem(lb->m->settings, &zero, &c), 0);
    return c.nat_srcs;
}

static uint32_t nat_src_refs(struct xt_lb *lb, const char *addr)
{
    struct xlb_vip_addr_key k;
    uint32_t n = 0;

    memset(&k, 0, sizeof(k));
    k.family = (uint8_t)xt_addr(addr, &k.addr);
    if (bpf_map_lookup_elem(lb->m->nat_srcs, &k, &n))
        return 0;
    return n;
}

/*
 * xlb_nat_srcs counts the nat reals of each address; xlb_settings.nat_srcs
 * the addresses.  Removing reals and services takes them away, and then
 * the real's packets are no longer looked at.
 */
Test(nat, reply_sources_follow_the_reals)
{
    struct pkt_spec r = pkt(REAL4, CLIENT4, IPPROTO_TCP, 8080, 40000, F_ACK);
    struct xlb_real re;
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t a, c, rid;

    xt_lb_open(&lb, NULL);
    cr_assert_eq(settings_nat_srcs(&lb), 0);
    a = one_real(&lb, "a", VIP4, 80, IPPROTO_TCP, XLB_FWD_NAT, REAL4, 8080, &rid);
    one_real(&lb, "b", VIP4, 81, IPPROTO_TCP, XLB_FWD_NAT, REAL4, 0, NULL);
    c = one_real(&lb, "c", VIP6, 80, IPPROTO_TCP, XLB_FWD_NAT, REAL6, 0, NULL);
    one_real(&lb, "d", VIP4, 82, IPPROTO_TCP, XLB_FWD_IPIP, REAL4B, 0, NULL);
    cr_assert_eq(nat_src_refs(&lb, REAL4), 2);
    cr_assert_eq(nat_src_refs(&lb, REAL6), 1);
    cr_assert_eq(nat_src_refs(&lb, REAL4B), 0, "a real of an ipip service is a nat source");
    cr_assert_eq(settings_nat_srcs(&lb), 2);
    cr_assert_eq(xlb_real_get(lb.m, rid, &re), 0);
    cr_assert_eq(re.flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_NAT);
    cr_assert_eq(ntohs(re.port_be), 8080);

    /* The port can be changed; other methods take none. */
    cr_assert_eq(xlb_real_set_port(lb.m, rid, 9090, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_real_get(lb.m, rid, &re), 0);
    cr_assert_eq(ntohs(re.port_be), 9090);

    run(&lb, "reply, two services", &r, XDP_PASS, XLB_R_PASS_NAT_NO_ENTRY);
    /* A real may be a client of a VIP itself. */
    {
        struct pkt_spec c2 = pkt(REAL4, VIP4, IPPROTO_TCP, 41000, 80, F_SYN);

        run(&lb, "a real as a client", &c2, XDP_TX, XLB_R_TX);
    }
    xt_real_del(&lb, a, REAL4);
    cr_assert_eq(nat_src_refs(&lb, REAL4), 1);
    cr_assert_eq(settings_nat_srcs(&lb), 2);
    cr_assert_eq(xlb_service_del(lb.m, "b", &e), 0, "%s", e.msg);
    cr_assert_eq(nat_src_refs(&lb, REAL4), 0);
    cr_assert_eq(settings_nat_srcs(&lb), 1);
    run(&lb, "reply, no nat real left there", &r, XDP_PASS, XLB_R_PASS_NOT_VIP);
    xt_real_del(&lb, c, REAL6);
    cr_assert_eq(settings_nat_srcs(&lb), 0);
    xt_lb_close(&lb);
}

Test(nat, loader_checks)
{
    struct xlb_service_spec sp = { .name = "bad", .port = 80, .proto = IPPROTO_TCP,
                                   .method = 9 };
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t v4, tun, rid;

    xt_lb_open(&lb, NULL);
    sp.family = (uint8_t)xt_addr(VIP4, &sp.vip);
    cr_assert_eq(xlb_service_add(lb.m, &sp, NULL, &e), -EINVAL);
    cr_assert(strstr(e.msg, "nat"), "message: %s", e.msg);
    v4 = xt_service(&lb, "n4", VIP4, 80, IPPROTO_TCP, XLB_FWD_NAT, RING);
    tun = xt_service(&lb, "t4", VIP4, 81, IPPROTO_TCP, XLB_FWD_GUE, RING);
    add_real_fails(&lb, v4, REAL6, 8080, EINVAL, "family");
    /* Behind a gateway is fine for nat. */
    run_cmd("ip route add 198.18.4.0/24 via 198.18.0.40");
    add_real(&lb, v4, "198.18.4.7", 8080);
    rid = xt_real(&lb, tun, REAL4, 1);
    cr_assert_eq(xlb_real_set_port(lb.m, rid, 8080, &e), -EINVAL);
    cr_assert_eq(xlb_real_set_port(lb.m, rid, 0, &e), 0);
    xt_lb_close(&lb);
}
