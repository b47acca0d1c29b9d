/* The packet fixture table and the services it is written against; see fixtures.h. */
#include "fixtures.h"

#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>

#include <criterion/criterion.h>

/* ---- the world: services, each with one real server ---- */

#define C4 "198.18.1.1"             /* the client */
#define C6 "fd00:1::1"

#define VIP4_1 "198.18.100.1"
#define VIP4_2 "198.18.100.2"
#define VIP4_3 "198.18.100.3"
#define VIP4_4 "198.18.100.4"
#define VIP4_5 "198.18.100.5"
#define VIP4_6 "198.18.100.6"
#define VIP4_7 "198.18.100.7"
#define VIP4_8 "198.18.100.8"
#define VIP6_1 "fd00:100::1"
#define VIP6_2 "fd00:100::2"
#define VIP6_3 "fd00:100::3"
#define VIP6_4 "fd00:100::4"
#define VIP6_5 "fd00:100::5"
#define VIP6_6 "fd00:100::6"
#define OTHER4 "198.18.100.99"
#define OTHER6 "fd00:100::99"

#define R4_IPIP    "198.18.0.21"
#define R4_GUE     "198.18.0.22"
#define R4_GUE_T   "198.18.0.23"
#define R4_U_IPIP  "198.18.0.24"
#define R4_ANY     "198.18.0.25"
#define R6_IPIP    "fd00::21"
#define R6_GUE     "fd00::22"
#define R6_4IN6    "fd00::23"
#define R6_GUE4    "fd00::24"
#define R6_GUE_T   "fd00::25"
#define R6_U_IPIP  "fd00::26"
#define R6_ANY     "fd00::27"
#define R4_REDIR   "198.18.2.50"
#define R6_REDIR   "fd00:2::50"
#define R4_NONEIGH "198.18.0.99"
#define R6_NONEIGH "fd00::99"
#define R4_NOROUTE "203.0.113.9"

#define WORLD_RING 13

static const struct world_svc {
    const char *name, *vip;
    uint16_t port;
    uint8_t proto, method;
    const char *real;           /* NULL: a service without reals */
} world[] = {
    { "t4",       VIP4_1, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R4_IPIP },
    { "u4",       VIP4_1, 53,   IPPROTO_UDP, XLB_FWD_GUE,  R4_GUE },
    { "t6",       VIP6_1, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R6_IPIP },
    { "u6",       VIP6_1, 53,   IPPROTO_UDP, XLB_FWD_GUE,  R6_GUE },
    { "t4in6",    VIP4_2, 443,  IPPROTO_TCP, XLB_FWD_IPIP, R6_4IN6 },
    { "u4gue6",   VIP4_2, 443,  IPPROTO_UDP, XLB_FWD_GUE,  R6_GUE4 },
    { "t6gue",    VIP6_2, 8080, IPPROTO_TCP, XLB_FWD_GUE,  R6_GUE_T },
    { "t4gue",    VIP4_3, 80,   IPPROTO_TCP, XLB_FWD_GUE,  R4_GUE_T },
    { "u4ipip",   VIP4_3, 53,   IPPROTO_UDP, XLB_FWD_IPIP, R4_U_IPIP },
    { "u6ipip",   VIP6_3, 53,   IPPROTO_UDP, XLB_FWD_IPIP, R6_U_IPIP },
    { "t4any",    VIP4_4, 0,    IPPROTO_TCP, XLB_FWD_IPIP, R4_ANY },
    { "u6any",    VIP6_4, 0,    IPPROTO_UDP, XLB_FWD_GUE,  R6_ANY },
    { "redir4",   VIP4_5, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R4_REDIR },
    { "redir6",   VIP6_5, 80,   IPPROTO_TCP, XLB_FWD_GUE,  R6_REDIR },
    { "noneigh4", VIP4_6, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R4_NONEIGH },
    { "noneigh6", VIP6_6, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R6_NONEIGH },
    { "noroute",  VIP4_7, 80,   IPPROTO_TCP, XLB_FWD_IPIP, R4_NOROUTE },
    { "noreal",   VIP4_8, 80,   IPPROTO_TCP, XLB_FWD_IPIP, NULL },
};

const char *const xt_world_reals[] = {
    R4_IPIP, R4_GUE, R4_GUE_T, R4_U_IPIP, R4_ANY, R6_IPIP, R6_GUE, R6_4IN6, R6_GUE4,
    R6_GUE_T, R6_U_IPIP, R6_ANY, R4_REDIR, R6_REDIR, R4_NONEIGH, R6_NONEIGH,
};
const int xt_n_world_reals = XT_ARRAY_SIZE(xt_world_reals);

void xt_world_setup(struct xt_lb *lb)
{
    xt_lb_open(lb, NULL);
    for (size_t i = 0; i < XT_ARRAY_SIZE(world); i++) {
        const struct world_svc *w = &world[i];
        uint32_t vs = xt_service(lb, w->name, w->vip, w->port, w->proto, w->method,
                                 WORLD_RING);

        if (w->real)
            xt_table_all(lb, vs, xt_real(lb, vs, w->real, 1), WORLD_RING);
    }
}

/* ---- frames pkt_build() cannot describe ---- */

static size_t l3_off(const struct xt_fixture *f)
{
    return 14 + 4 * (size_t)f->n_vlan;
}

static size_t build_spec(const struct xt_fixture *f, uint8_t *buf)
{
    struct pkt_spec s = xt_fixture_spec(f);

    return xt_build(&s, buf);
}

static size_t put_arp(uint8_t *p)
{
    static const uint8_t arp[28] = {
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,       /* Ethernet/IPv4 request */
        0x02, 0x00, 0x00, 0x00, 0x00, 0xc1, 198, 18, 1, 1,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 100, 1,
    };

    memcpy(p, arp, sizeof(arp));
    return sizeof(arp);
}

static size_t build_arp(const struct xt_fixture *f, uint8_t *buf)
{
    (void)f;
    memset(buf, 0xff, 6);
    memcpy(buf + 6, xt_mac_client, 6);
    buf[12] = 0x08;
    buf[13] = 0x06;
    return 14 + put_arp(buf + 14);
}

static size_t build_vlan_arp(const struct xt_fixture *f, uint8_t *buf)
{
    (void)f;
    memset(buf, 0xff, 6);
    memcpy(buf + 6, xt_mac_client, 6);
    buf[12] = 0x81;
    buf[13] = 0x00;
    buf[14] = 0x00;
    buf[15] = 0x64;
    buf[16] = 0x08;
    buf[17] = 0x06;
    return 18 + put_arp(buf + 18);
}

static size_t build_lldp(const struct xt_fixture *f, uint8_t *buf)
{
    static const uint8_t dst[6] = { 0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e };

    (void)f;
    memcpy(buf, dst, 6);
    memcpy(buf + 6, xt_mac_client, 6);
    buf[12] = 0x88;
    buf[13] = 0xcc;
    memcpy(buf + 14, xt_payload(), 46);
    return 60;
}

/* A third tag in front of the two of the spec: deeper than the parser goes. */
static size_t build_3tags(const struct xt_fixture *f, uint8_t *buf)
{
    size_t n = build_spec(f, buf);

    memmove(buf + 16, buf + 12, n - 12);
    buf[12] = 0x81;
    buf[13] = 0x00;
    buf[14] = 0x00;
    buf[15] = 0x05;
    return n + 4;
}

static size_t build_bad_version(const struct xt_fixture *f, uint8_t *buf)
{
    size_t n = build_spec(f, buf);

    buf[l3_off(f)] = 0x55;
    return n;
}

static size_t build_ihl4(const struct xt_fixture *f, uint8_t *buf)
{
    size_t n = build_spec(f, buf);

    buf[l3_off(f)] = 0x44;
    return n;
}

/* The IP length field claims 4 bytes more than the frame holds. */
static size_t build_len_long(const struct xt_fixture *f, uint8_t *buf)
{
    size_t n = build_spec(f, buf);
    uint8_t *len = buf + l3_off(f) + (strchr(f->dst, ':') ? 4 : 2);
    unsigned v = (unsigned)(len[0] << 8 | len[1]) + 4;

    len[0] = (uint8_t)(v >> 8);
    len[1] = (uint8_t)v;
    return n;
}

static size_t build_doff4(const struct xt_fixture *f, uint8_t *buf)
{
    size_t n = build_spec(f, buf);

    buf[l3_off(f) + 20 + f->ip_opts_len + 12] = 0x40;
    return n;
}

/* The TCP segment of the spec behind a Destination Options header (PadN). */
static size_t build_v6_dstopts(const struct xt_fixture *f, uint8_t *buf)
{
    static const uint8_t opts[8] = { IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0 };
    uint8_t plain[XT_FRAME_MAX], payload[XT_FRAME_MAX];
    struct pkt_spec s = xt_fixture_spec(f);
    struct pkt_view v;
    size_t n = xt_build(&s, plain);

    cr_assert_eq(pkt_parse(plain, n, &v), 0);
    memcpy(payload, opts, sizeof(opts));
    memcpy(payload + sizeof(opts), plain + v.l4_off, v.l4_len);
    s.proto = IPPROTO_DSTOPTS;
    s.payload = payload;
    s.payload_len = sizeof(opts) + v.l4_len;
    return xt_build(&s, buf);
}

/* ---- the table ---- */

#define TAGS1 .n_vlan = 1, .vlan = { { 0x8100, 0x0064 } }
#define TAGS2 .n_vlan = 2, .vlan = { { 0x88a8, 0x00c8 }, { 0x8100, 0xa064 } }

#define TCP4F(d, p, len, frag) .src = C4, .dst = d, .proto = IPPROTO_TCP, .sport = 40000, \
    .dport = p, .tcp_flags = 0x02, .tos = 0x28, .ip_id = 0x1234, .frag_off = frag, \
    .payload_len = len
#define UDP4F(d, p, len, frag) .src = C4, .dst = d, .proto = IPPROTO_UDP, .sport = 40001, \
    .dport = p, .tos = 0x4b, .ip_id = 0x4321, .frag_off = frag, .payload_len = len
#define TCP6F(d, p, len, frag) .src = C6, .dst = d, .proto = IPPROTO_TCP, .sport = 40002, \
    .dport = p, .tcp_flags = 0x02, .tos = 0xb8, .ip_id = 0x5678, .frag_off = frag, \
    .payload_len = len
#define UDP6F(d, p, len, frag) .src = C6, .dst = d, .proto = IPPROTO_UDP, .sport = 40003, \
    .dport = p, .tos = 0x5d, .ip_id = 0x9abc, .frag_off = frag, .payload_len = len
/* TCP over IPv4 with DF set, UDP over IPv4 without: DF copying both ways. */
#define TCP4(d, p) TCP4F(d, p, 40, PKT_DF)
#define UDP4(d, p) UDP4F(d, p, 60, 0)
#define TCP6(d, p) TCP6F(d, p, 40, 0)
#define UDP6(d, p) UDP6F(d, p, 60, 0)
#define ICMP4(d, t) .src = C4, .dst = d, .proto = IPPROTO_ICMP, .icmp_type = t, \
    .sport = 0x4242, .dport = 7, .ttl = 50, .tos = 0x10, .ip_id = 0x0777, .frag_off = PKT_DF, \
    .payload_len = 56
#define ICMP6(d, t) .src = C6, .dst = d, .proto = IPPROTO_ICMPV6, .icmp_type = t, \
    .sport = 0x4243, .dport = 9, .ttl = 50, .payload_len = 56

#define TX(r)       .verdict = XDP_TX, .reason = XLB_R_TX, .expect = xt_exp_encap, .real = r
#define TX_GUE(r)   TX(r), .gue = true
#define REDIR(r)    .verdict = XDP_REDIRECT, .reason = XLB_R_REDIRECT, .expect = xt_exp_encap, \
    .real = r, .egress = 2
#define NO_NEIGH(r) .verdict = XDP_PASS, .reason = XLB_R_PASS_NO_NEIGH, .expect = xt_exp_encap, \
    .real = r, .egress = -1
#define PASS(why)   .verdict = XDP_PASS, .reason = XLB_R_PASS_##why
#define DROP(why)   .verdict = XDP_DROP, .reason = XLB_R_DROP_##why
#define ECHO        .verdict = XDP_TX, .reason = XLB_R_ICMP_ECHO_REPLY, .expect = xt_exp_echo

struct xt_fixture xt_fixtures[] = {
    /* Service traffic of every family, protocol and method, 0, 1, 2 tags. */
    { "tcp4 to VIP: IPIP", TCP4(VIP4_1, 80), TX(R4_IPIP) },
    { "tcp4 to VIP, 802.1Q: IPIP", TCP4(VIP4_1, 80), TAGS1, TX(R4_IPIP) },
    { "tcp4 to VIP, QinQ: IPIP", TCP4(VIP4_1, 80), TAGS2, TX(R4_IPIP) },
    { "udp4 to VIP: GUE over IPv4", UDP4(VIP4_1, 53), TX_GUE(R4_GUE) },
    { "udp4 to VIP, 802.1Q: GUE over IPv4", UDP4(VIP4_1, 53), TAGS1, TX_GUE(R4_GUE) },
    { "udp4 to VIP, QinQ: GUE over IPv4", UDP4(VIP4_1, 53), TAGS2, TX_GUE(R4_GUE) },
    { "tcp6 to VIP: 6in6", TCP6(VIP6_1, 80), TX(R6_IPIP) },
    { "tcp6 to VIP, 802.1Q: 6in6", TCP6(VIP6_1, 80), TAGS1, TX(R6_IPIP) },
    { "tcp6 to VIP, QinQ: 6in6", TCP6(VIP6_1, 80), TAGS2, TX(R6_IPIP) },
    { "udp6 to VIP: GUE over IPv6", UDP6(VIP6_1, 53), TX_GUE(R6_GUE) },
    { "udp6 to VIP, 802.1Q: GUE over IPv6", UDP6(VIP6_1, 53), TAGS1, TX_GUE(R6_GUE) },
    { "udp6 to VIP, QinQ: GUE over IPv6", UDP6(VIP6_1, 53), TAGS2, TX_GUE(R6_GUE) },
    { "tcp4 to VIP: 4in6", TCP4(VIP4_2, 443), TX(R6_4IN6) },
    { "tcp4 to VIP, 802.1Q: 4in6", TCP4(VIP4_2, 443), TAGS1, TX(R6_4IN6) },
    { "tcp4 to VIP, QinQ: 4in6", TCP4(VIP4_2, 443), TAGS2, TX(R6_4IN6) },
    { "udp4 to VIP: GUE over IPv6", UDP4(VIP4_2, 443), TX_GUE(R6_GUE4) },
    { "udp4 to VIP, 802.1Q: GUE over IPv6", UDP4(VIP4_2, 443), TAGS1, TX_GUE(R6_GUE4) },
    { "udp4 to VIP, QinQ: GUE over IPv6", UDP4(VIP4_2, 443), TAGS2, TX_GUE(R6_GUE4) },
    { "tcp6 to VIP: GUE over IPv6", TCP6(VIP6_2, 8080), TX_GUE(R6_GUE_T) },
    { "tcp6 to VIP, QinQ: GUE over IPv6", TCP6(VIP6_2, 8080), TAGS2, TX_GUE(R6_GUE_T) },
    { "tcp4 to VIP: GUE over IPv4", TCP4(VIP4_3, 80), TX_GUE(R4_GUE_T) },
    { "tcp4 to VIP, 802.1Q: GUE over IPv4", TCP4(VIP4_3, 80), TAGS1, TX_GUE(R4_GUE_T) },
    { "udp4 to VIP: IPIP", UDP4(VIP4_3, 53), TX(R4_U_IPIP) },
    { "udp6 to VIP, 802.1Q: 6in6", UDP6(VIP6_3, 53), TAGS1, TX(R6_U_IPIP) },

    /* IPv4 options and IPv6 extension headers travel inside, untouched. */
    { "tcp4 with 40 option bytes: IPIP", TCP4(VIP4_1, 80), .ip_opts_len = 40, TX(R4_IPIP) },
    { "tcp4 with 40 option bytes, QinQ: IPIP", TCP4(VIP4_1, 80), .ip_opts_len = 40, TAGS2,
      TX(R4_IPIP) },
    { "tcp4 with 12 option bytes: 4in6", TCP4(VIP4_2, 443), .ip_opts_len = 12, TX(R6_4IN6) },
    { "udp4 with 8 option bytes: GUE over IPv4", UDP4(VIP4_1, 53), .ip_opts_len = 8,
      TX_GUE(R4_GUE) },
    { "udp4 with 4 option bytes: GUE over IPv6", UDP4(VIP4_2, 443), .ip_opts_len = 4,
      TX_GUE(R6_GUE4) },
    { "tcp6 with a destination options header: 6in6", TCP6(VIP6_1, 80),
      .build = build_v6_dstopts, TX(R6_IPIP) },
    { "tcp6 with a destination options header: GUE over IPv6", TCP6(VIP6_2, 8080),
      .build = build_v6_dstopts, TX_GUE(R6_GUE_T) },

    /* Port-wildcard services. */
    { "tcp4 to a port-wildcard VIP: IPIP", TCP4(VIP4_4, 12345), TX(R4_ANY) },
    { "udp6 to a port-wildcard VIP: GUE over IPv6", UDP6(VIP6_4, 5353), TX_GUE(R6_ANY) },

    /* Sizes: empty, padded, up to the MTU and past it. */
    { "tcp4 SYN without payload, padded to 60 bytes: IPIP", TCP4F(VIP4_1, 80, 0, PKT_DF),
      .pad_to = 60, TX(R4_IPIP) },
    { "udp6 empty datagram: GUE over IPv6", UDP6F(VIP6_1, 53, 0, 0), TX_GUE(R6_GUE) },
    { "tcp4 of 1480 bytes: 1500 after IPIP", TCP4F(VIP4_1, 80, 1440, PKT_DF), TX(R4_IPIP) },
    { "tcp4 of 1481 bytes: too big after IPIP", TCP4F(VIP4_1, 80, 1441, PKT_DF),
      DROP(TOO_BIG) },
    { "udp4 of 1480 bytes: too big after GUE", UDP4F(VIP4_1, 53, 1452, 0), DROP(TOO_BIG) },
    { "tcp6 of 1460 bytes: 1500 after 6in6", TCP6F(VIP6_1, 80, 1400, 0), TX(R6_IPIP) },
    { "tcp6 of 1461 bytes: too big after 6in6", TCP6F(VIP6_1, 80, 1401, 0), DROP(TOO_BIG) },

    /* The next hop decides the verdict. */
    { "tcp4, real behind xlbtveth2: redirect", TCP4(VIP4_5, 80), REDIR(R4_REDIR) },
    { "tcp6, real behind xlbtveth2: GUE, redirect", TCP6(VIP6_5, 80), REDIR(R6_REDIR),
      .gue = true },
    { "tcp4, real without neighbour: to the stack encapsulated", TCP4(VIP4_6, 80),
      NO_NEIGH(R4_NONEIGH) },
    { "tcp6, real without neighbour: to the stack encapsulated", TCP6(VIP6_6, 80),
      NO_NEIGH(R6_NONEIGH) },
    { "tcp4, real without route: dropped", TCP4(VIP4_7, 80), DROP(FIB) },
    { "tcp4 to a service without reals: dropped", TCP4(VIP4_8, 80), DROP(NO_REAL) },

    /* Not service traffic: to the stack, untouched. */
    { "tcp4 to another address", TCP4(OTHER4, 80), PASS(NOT_VIP) },
    { "tcp4 to a VIP, other port", TCP4(VIP4_1, 81), PASS(NOT_VIP) },
    { "tcp4 to a VIP, other port, QinQ", TCP4(VIP4_1, 81), TAGS2, PASS(NOT_VIP) },
    { "udp4 to a VIP, other port", UDP4(VIP4_1, 54), PASS(NOT_VIP) },
    { "udp4 to a TCP-only port-wildcard VIP", UDP4(VIP4_4, 53), PASS(NOT_VIP) },
    { "tcp6 to another address", TCP6(OTHER6, 80), PASS(NOT_VIP) },
    { "tcp6 to a VIP, other port", TCP6(VIP6_1, 81), PASS(NOT_VIP) },
    { "udp6 to a TCP-only VIP address", UDP6(VIP6_2, 8080), PASS(NOT_VIP) },
    { "gre to a VIP", .src = C4, .dst = VIP4_1, .proto = IPPROTO_GRE, .payload_len = 24,
      PASS(NOT_VIP) },
    { "sctp6 to a VIP", .src = C6, .dst = VIP6_1, .proto = IPPROTO_SCTP, .payload_len = 32,
      PASS(NOT_VIP) },
    { "arp request for a VIP", .build = build_arp, PASS(NOT_IP) },
    { "arp request in an 802.1Q tag", .build = build_vlan_arp, PASS(NOT_IP) },
    { "lldp", .build = build_lldp, PASS(NOT_IP) },
    { "tcp4 to a VIP behind three tags", TCP4(VIP4_1, 80), TAGS2, .build = build_3tags,
      PASS(NOT_IP) },
    { "icmp4 destination unreachable to a VIP", ICMP4(VIP4_1, 3), .icmp_code = 1,
      PASS(NOT_VIP) },
    { "icmp4 echo reply to a VIP", ICMP4(VIP4_1, 0), PASS(NOT_VIP) },
    { "icmp4 echo request to another address", ICMP4(OTHER4, 8), PASS(NOT_VIP) },
    { "icmp6 echo request to another address", ICMP6(OTHER6, 128), PASS(NOT_VIP) },
    { "icmp6 echo reply to a VIP", ICMP6(VIP6_1, 129), PASS(NOT_VIP) },
    { "icmp6 destination unreachable to a VIP", ICMP6(VIP6_1, 1), .icmp_code = 4,
      PASS(NOT_VIP) },
    { "icmp6 neighbour solicitation for a VIP", ICMP6(VIP6_1, 135), PASS(NOT_VIP) },

    /* Broken headers. */
    { "ipv4 version 5", TCP4(VIP4_1, 80), .build = build_bad_version, PASS(MALFORMED) },
    { "ipv4 IHL 4", TCP4(VIP4_1, 80), .build = build_ihl4, PASS(MALFORMED) },
    { "ipv4 total length past the frame", TCP4(VIP4_1, 80), .build = build_len_long,
      PASS(MALFORMED) },
    { "ipv6 payload length past the frame", TCP6(VIP6_1, 80), .build = build_len_long,
      PASS(MALFORMED) },
    { "tcp4 to a VIP with data offset 4: dropped", TCP4(VIP4_1, 80), .build = build_doff4,
      DROP(MALFORMED) },
    { "tcp4 to another address with data offset 4", TCP4(OTHER4, 80), .build = build_doff4,
      PASS(NOT_VIP) },

    /* Fragments go to the real of the address and protocol's service
     * (placed by the address hash; the one real here), which reassembles. */
    { "tcp4 first fragment to a VIP: IPIP", TCP4F(VIP4_1, 80, 40, PKT_MF), TX(R4_IPIP) },
    { "tcp4 last fragment to a VIP: IPIP", TCP4F(VIP4_1, 80, 40, 185), TX(R4_IPIP) },
    { "udp4 middle fragment to a VIP, 802.1Q: GUE over IPv4",
      UDP4F(VIP4_1, 53, 40, PKT_MF | 100), TAGS1, TX_GUE(R4_GUE) },
    { "tcp4 first fragment with options to a VIP: IPIP", TCP4F(VIP4_1, 80, 40, PKT_MF),
      .ip_opts_len = 20, TX(R4_IPIP) },
    { "udp6 first fragment to a VIP: GUE over IPv6", UDP6F(VIP6_1, 53, 40, PKT_MF),
      TX_GUE(R6_GUE) },
    { "tcp6 last fragment to a VIP, QinQ: 6in6", TCP6F(VIP6_1, 80, 40, 200), TAGS2,
      TX(R6_IPIP) },
    { "tcp6 atomic fragment to a VIP: 6in6", TCP6F(VIP6_1, 80, 40, PKT_DF), TX(R6_IPIP) },
    { "tcp4 fragment to a port-wildcard VIP: IPIP", TCP4F(VIP4_4, 1234, 40, PKT_MF),
      TX(R4_ANY) },
    { "udp4 fragment to a VIP without a UDP service", UDP4F(VIP4_4, 53, 40, PKT_MF),
      PASS(FRAGMENT) },
    { "tcp4 fragment to another address", TCP4F(OTHER4, 80, 40, PKT_MF), PASS(NOT_VIP) },

    /* Echo requests to a VIP are answered here. */
    { "icmp4 echo request to a VIP", ICMP4(VIP4_1, 8), ECHO },
    { "icmp4 echo request to a VIP, 802.1Q", ICMP4(VIP4_1, 8), TAGS1, ECHO },
    { "icmp4 echo request to a VIP, QinQ, IP options", ICMP4(VIP4_1, 8), TAGS2,
      .ip_opts_len = 8, ECHO },
    { "icmp4 echo request to a VIP of a service without reals", ICMP4(VIP4_8, 8), ECHO },
    { "icmp6 echo request to a VIP", ICMP6(VIP6_1, 128), ECHO },
    { "icmp6 echo request to a VIP, QinQ", ICMP6(VIP6_1, 128), TAGS2, ECHO },
};
const size_t xt_n_fixtures = XT_ARRAY_SIZE(xt_fixtures);

/* ---- building and checking ---- */

struct pkt_spec xt_fixture_spec(const struct xt_fixture *f)
{
    struct pkt_spec s = xt_spec(f->src, f->dst, f->proto, f->sport, f->dport, f->payload_len);

    s.tcp_flags = f->tcp_flags;
    s.icmp_type = f->icmp_type;
    s.icmp_code = f->icmp_code;
    s.tos = f->tos;
    s.ttl = f->ttl;
    s.ip_opts_len = f->ip_opts_len;
    s.ip_id = f->ip_id;
    s.frag_off = f->frag_off;
    s.n_vlan = f->n_vlan;
    memcpy(s.vlan, f->vlan, sizeof(s.vlan));
    return s;
}

static size_t pad(const struct xt_fixture *f, uint8_t *buf, size_t n)
{
    if (f->pad_to > n) {
        memset(buf + n, 0, f->pad_to - n);
        n = f->pad_to;
    }
    return n;
}

size_t xt_fixture_build(const struct xt_fixture *f, uint8_t *buf)
{
    return pad(f, buf, f->build ? f->build(f, buf) : build_spec(f, buf));
}

size_t xt_exp_encap(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                    const struct xt_out *out, uint8_t *exp)
{
    struct xt_entropy e;
    uint8_t dmac[6], smac[6];
    size_t n;

    if (f->egress < 0) {
        memcpy(dmac, in, 6);
        memcpy(smac, in + 6, 6);
    } else {
        xt_real_mac(f->real, dmac);
        memcpy(smac, f->egress == 2 ? xt_mac_if2 : xt_mac_if0, 6);
    }
    n = xt_expect_encap(in, ilen, out->data, out->len, f->real, f->gue, dmac, smac, exp, &e);
    if (f->gue && f->frag_off & (PKT_MF | 0x1fff) && strchr(f->real, ':')) {
        struct pkt_view v;

        /* GUE over IPv6 of a fragment: the outer UDP checksum is 0 (the
         * fragment's own sum is not known without reading it all). */
        cr_assert_eq(pkt_parse(exp, n, &v), 0);
        exp[v.l4_off + 6] = 0;
        exp[v.l4_off + 7] = 0;
    }
    return n;
}

size_t xt_exp_echo(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                   const struct xt_out *out, uint8_t *exp)
{
    struct pkt_spec s = xt_fixture_spec(f);
    uint8_t tmp[16];

    (void)in;
    (void)ilen;
    (void)out;
    memcpy(s.eth_src, xt_mac_if0, 6);
    memcpy(s.eth_dst, xt_mac_client, 6);
    memcpy(tmp, s.src, 16);
    memcpy(s.src, s.dst, 16);
    memcpy(s.dst, tmp, 16);
    s.icmp_type = s.family == AF_INET ? 0 : 129;
    s.ttl = 64;
    return pad(f, exp, xt_build(&s, exp));
}

/* Checks of an encapsulated output that do not rely on the expected frame. */
static void check_encap(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                        const struct xt_out *out)
{
    struct pkt_view iv, ov;
    struct xt_entropy e;
    struct xlb_addr ra;
    bool v6 = xt_addr(f->real, &ra) == XLB_FAMILY_V6;
    const uint8_t *oh;
    size_t inner_off, inner_len;

    cr_assert_eq(pkt_parse(in, ilen, &iv), 0);
    cr_assert_eq(pkt_parse(out->data, out->len, &ov), 0, "%s: output not parsable", f->desc);
    oh = out->data + ov.l3_off;
    e = xt_entropy_of(f->desc, out->data, out->len, f->gue);
    xt_assert_entropy_fields(f->desc, v6, f->gue, &e);
    cr_assert_eq(memcmp(oh + (v6 ? 24 : 16), ra.addr_be, v6 ? 16 : 4), 0,
                 "%s: outer destination is not the real %s", f->desc, f->real);
    if (v6) {
        cr_assert_eq(oh[7], 64, "%s: outer hop limit %u", f->desc, oh[7]);
        if (f->gue && !(f->frag_off & (PKT_MF | 0x1fff)))
            cr_assert(pkt_l4_csum_ok(AF_INET6, oh, ov.l3_len + ov.l4_len),
                      "%s: outer UDP checksum over IPv6 is wrong", f->desc);
    } else {
        cr_assert_eq(oh[8], 64, "%s: outer TTL %u", f->desc, oh[8]);
        cr_assert(pkt_ipv4_hdr_csum_ok(oh), "%s: outer IPv4 header checksum is wrong",
                  f->desc);
    }
    inner_off = ov.l3_off + ov.l3_len + (f->gue ? 8 : 0);
    inner_len = iv.l3_len + iv.l4_len;
    cr_assert(out->len >= inner_off + inner_len &&
              !memcmp(out->data + inner_off, in + iv.l3_off, inner_len),
              "%s: the inner packet is not the input's IP packet", f->desc);
}

void xt_fixture_check(struct xt_lb *lb, const struct xt_fixture *f, uint8_t *in, size_t *ilen,
                      struct xt_out *out)
{
    struct xlb_reason_counter before[XLB_R_MAX], after[XLB_R_MAX];
    uint8_t exp[XT_FRAME_MAX];
    size_t elen;

    *ilen = xt_fixture_build(f, in);
    xt_reasons(lb->m->reasons, before);
    xt_run_ok(f->desc, lb->prog, in, *ilen, out);
    cr_assert_eq(out->verdict, f->verdict, "%s: verdict %s, expected %s", f->desc,
                 xt_verdict_name(out->verdict), xt_verdict_name(f->verdict));
    if (f->expect) {
        elen = f->expect(f, in, *ilen, out, exp);
    } else {
        memcpy(exp, in, *ilen);
        elen = *ilen;
    }
    xt_assert_frame(f->desc, in, *ilen, exp, elen, out->data, out->len);

    xt_reasons(lb->m->reasons, after);
    for (uint32_t r = 0; r < XLB_R_MAX; r++) {
        uint64_t np = after[r].packets - before[r].packets;
        uint64_t nb = after[r].bytes - before[r].bytes;

        cr_assert(np == (r == f->reason) && nb == (r == f->reason ? *ilen : 0),
                  "%s: reason %s counted %llu packets, %llu bytes; expected %d, %zu", f->desc,
                  xlb_reason_name(r), (unsigned long long)np, (unsigned long long)nb,
                  r == f->reason, r == f->reason ? *ilen : 0);
    }

    if (f->expect == xt_exp_encap) {
        check_encap(f, in, *ilen, out);
    } else if (f->expect == xt_exp_echo) {
        struct pkt_view v;

        cr_assert_eq(pkt_parse(out->data, out->len, &v), 0);
        cr_assert(pkt_l4_csum_ok(v.family, out->data + v.l3_off, v.l3_len + v.l4_len),
                  "%s: ICMP checksum of the reply is wrong", f->desc);
        if (v.family == AF_INET)
            cr_assert(pkt_ipv4_hdr_csum_ok(out->data + v.l3_off),
                      "%s: IPv4 header checksum of the reply is wrong", f->desc);
    }
}
