/*
 * Self-tests of the packet library the BPF tests rely on. If pkt_build() got a
 * checksum or a length wrong, every BPF test comparing against its frames
 * would agree with it, so the builder is checked here against frames written
 * out by hand, against its own parser over every combination of options,
 * and against tcpdump's checksum verdicts.
 */
#include "pkt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_ether.h>

#include <criterion/criterion.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define assert_frame_eq(exp, elen, act, alen)                                \
    do {                                                                     \
        char diff_[8192];                                                    \
        cr_assert((elen) == (alen) && !memcmp((exp), (act), (elen)),         \
                  "frames differ:\n%s",                                      \
                  pkt_hexdiff((exp), (elen), (act), (alen), diff_,           \
                              sizeof(diff_)));                               \
    } while (0)

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

#define MAC_CLIENT { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 }
#define MAC_LB     { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 }
#define V4_CLIENT  { 198, 18, 0, 1 }
#define V4_VIP     { 198, 18, 10, 10 }
#define V6_CLIENT  { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01 }
#define V6_VIP     { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 }

static struct pkt_spec spec_for(int family, uint8_t proto)
{
    struct pkt_spec s = {
        .eth_src = MAC_CLIENT,
        .eth_dst = MAC_LB,
        .proto = proto,
    };

    if (family == AF_INET)
        cr_assert_eq(pkt_addr(&s, "198.18.0.1", "198.18.10.10"), 0);
    else
        cr_assert_eq(pkt_addr(&s, "fd00::1", "fd00::10"), 0);
    return s;
}

/* Build s into a heap buffer of exactly the frame's size, so that ASan
 * catches any read past the end by the code under test. */
static uint8_t *build_alloc(const struct pkt_spec *s, size_t *len)
{
    size_t n = pkt_len(s);
    uint8_t *buf;

    cr_assert_neq(n, 0, "pkt_len() rejected a valid spec");
    buf = malloc(n);
    cr_assert_not_null(buf);
    cr_assert_eq(pkt_build(s, buf, n), n);
    *len = n;
    return buf;
}

static const uint8_t *ip_of(const uint8_t *frame, const struct pkt_view *v)
{
    return frame + v->l3_off;
}

static size_t ip_len_of(const struct pkt_view *v)
{
    return v->l3_len + v->l4_len;
}

/* ---------------------------------------------------------------------- */
/* pkt_csum                                                               */

Test(csum, rfc1071_example)
{
    /* RFC 1071 section 3: these words sum to 0xddf2 (with end-around carry). */
    static const uint8_t data[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

    cr_assert_eq(pkt_csum(data, sizeof(data), 0), 0x220d);
    /* The same sum split in two: 0x0001 + 0xf203 = 0xf204 carried in. */
    cr_assert_eq(pkt_csum(data + 4, 4, 0xf204), 0x220d);
}

Test(csum, odd_length_pads_low_byte)
{
    static const uint8_t data[] = { 0x01, 0x02, 0x03 };

    /* 0x0102 + 0x0300 = 0x0402 */
    cr_assert_eq(pkt_csum(data, sizeof(data), 0), 0xfbfd);
    cr_assert_eq(pkt_csum(data + 2, 1, 0), 0xfcff);
    cr_assert_eq(pkt_csum(data, 0, 0), 0xffff);
}

Test(csum, carries_fold)
{
    static const uint8_t ones[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t data[] = { 0x80, 0x00, 0x80, 0x00 };

    /* 3 * 0xffff = 0x2fffd -> 0xffff; its complement is 0. */
    cr_assert_eq(pkt_csum(ones, sizeof(ones), 0), 0);
    /* 0x8000 + 0x8000 = 0x10000 -> 0x0001 */
    cr_assert_eq(pkt_csum(data, sizeof(data), 0), 0xfffe);
    /* A large initial value folds as well: 0xffffffff -> 0xffff. */
    cr_assert_eq(pkt_csum(data, 0, 0xffffffffu), 0);
}

Test(csum, stored_checksum_verifies_to_zero)
{
    uint8_t data[] = { 0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0xab, 0xcd };
    uint16_t c = pkt_csum(data, sizeof(data), 0);

    wr16(data + 6, c);
    cr_assert_eq(pkt_csum(data, sizeof(data), 0), 0);
}

/* ---------------------------------------------------------------------- */
/* Known-good frames                                                      */

/*
 * Written out field by field from the header layouts. The checksums were
 * worked out independently of pkt_csum() and are the ones tcpdump -vvv
 * reports as correct. For ref_v4_udp, as a worked example:
 *   IPv4 header words 4500 001f 0001 0000 4011 0000 c612 0001 c612 0a0a
 *     sum 0x21b60 -> 0x1b62, complement 0xe49d
 *   UDP pseudo header c612 0001 c612 0a0a 0011 000b, header 9c41 104c 000b
 *     0000, data 6162 6300 (odd byte padded)
 *     sum 0x30745 -> 0x0748, complement 0xf8b7
 */

/* 198.18.0.1:40000 -> 198.18.10.10:80 SYN, seq 1, IP id 1 */
static const uint8_t ref_v4_tcp[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00,
    /* IPv4 */
    0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0xe4, 0x9f,
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x0a, 0x0a,
    /* TCP */
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xff, 0xff, 0x7d, 0x21, 0x00, 0x00,
};

/* 198.18.0.1:40001 -> 198.18.10.10:4172 "abc" */
static const uint8_t ref_v4_udp[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00,
    0x45, 0x00, 0x00, 0x1f, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0xe4, 0x9d,
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x0a, 0x0a,
    /* UDP */
    0x9c, 0x41, 0x10, 0x4c, 0x00, 0x0b, 0xf8, 0xb7,
    0x61, 0x62, 0x63,
};

/* 198.18.0.1 -> 198.18.10.10 echo request id 0x1234 seq 1 "ping" */
static const uint8_t ref_v4_icmp[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00,
    0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0xe4, 0xac,
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x0a, 0x0a,
    /* ICMP */
    0x08, 0x00, 0x06, 0xfa, 0x12, 0x34, 0x00, 0x01,
    0x70, 0x69, 0x6e, 0x67,
};

/* [fd00::1]:80 -> [fd00::10]:40000 SYN+ACK, seq 0x01020304, ack 2 */
static const uint8_t ref_v6_tcp[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x86, 0xdd,
    /* IPv6 */
    0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x40,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    /* TCP */
    0x00, 0x50, 0x9c, 0x40, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x02,
    0x50, 0x12, 0xff, 0xff, 0x15, 0x28, 0x00, 0x00,
};

/* [fd00::1]:40001 -> [fd00::10]:4172 "abc" */
static const uint8_t ref_v6_udp[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x86, 0xdd,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x11, 0x40,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    0x9c, 0x41, 0x10, 0x4c, 0x00, 0x0b, 0x94, 0xd5,
    0x61, 0x62, 0x63,
};

/* fd00::1 -> fd00::10 echo request id 0x1234 seq 1 "ping" */
static const uint8_t ref_v6_icmp6[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x86, 0xdd,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    0x80, 0x00, 0x94, 0xa0, 0x12, 0x34, 0x00, 0x01,
    0x70, 0x69, 0x6e, 0x67,
};

struct ref_case {
    const char *name;
    struct pkt_spec spec;
    const uint8_t *frame;
    size_t len;
    size_t csum_off;        /* of the L4 checksum in the frame */
    uint16_t csum;
};

static const struct ref_case refs[] = {
    {
        .name = "v4 tcp",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET,
                  .src = V4_CLIENT, .dst = V4_VIP, .proto = IPPROTO_TCP,
                  .sport = 40000, .dport = 80, .tcp_flags = 0x02,
                  .tcp_seq = 1, .ip_id = 1 },
        .frame = ref_v4_tcp, .len = sizeof(ref_v4_tcp),
        .csum_off = 14 + 20 + 16, .csum = 0x7d21,
    },
    {
        .name = "v4 udp",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET,
                  .src = V4_CLIENT, .dst = V4_VIP, .proto = IPPROTO_UDP,
                  .sport = 40001, .dport = 4172, .ip_id = 1,
                  .payload = (const uint8_t *)"abc", .payload_len = 3 },
        .frame = ref_v4_udp, .len = sizeof(ref_v4_udp),
        .csum_off = 14 + 20 + 6, .csum = 0xf8b7,
    },
    {
        .name = "v4 icmp",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET,
                  .src = V4_CLIENT, .dst = V4_VIP, .proto = IPPROTO_ICMP,
                  .icmp_type = 8, .sport = 0x1234, .dport = 1, .ip_id = 1,
                  .payload = (const uint8_t *)"ping", .payload_len = 4 },
        .frame = ref_v4_icmp, .len = sizeof(ref_v4_icmp),
        .csum_off = 14 + 20 + 2, .csum = 0x06fa,
    },
    {
        .name = "v6 tcp",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET6,
                  .src = V6_CLIENT, .dst = V6_VIP, .proto = IPPROTO_TCP,
                  .sport = 80, .dport = 40000, .tcp_flags = 0x12,
                  .tcp_seq = 0x01020304, .tcp_ack = 2 },
        .frame = ref_v6_tcp, .len = sizeof(ref_v6_tcp),
        .csum_off = 14 + 40 + 16, .csum = 0x1528,
    },
    {
        .name = "v6 udp",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET6,
                  .src = V6_CLIENT, .dst = V6_VIP, .proto = IPPROTO_UDP,
                  .sport = 40001, .dport = 4172,
                  .payload = (const uint8_t *)"abc", .payload_len = 3 },
        .frame = ref_v6_udp, .len = sizeof(ref_v6_udp),
        .csum_off = 14 + 40 + 6, .csum = 0x94d5,
    },
    {
        .name = "v6 icmpv6",
        .spec = { .eth_src = MAC_CLIENT, .eth_dst = MAC_LB, .family = AF_INET6,
                  .src = V6_CLIENT, .dst = V6_VIP, .proto = IPPROTO_ICMPV6,
                  .icmp_type = 128, .sport = 0x1234, .dport = 1,
                  .payload = (const uint8_t *)"ping", .payload_len = 4 },
        .frame = ref_v6_icmp6, .len = sizeof(ref_v6_icmp6),
        .csum_off = 14 + 40 + 2, .csum = 0x94a0,
    },
};

Test(reference, builder_matches_hand_built_frames)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(refs); i++) {
        const struct ref_case *r = &refs[i];
        uint8_t out[256];
        size_t n = pkt_build(&r->spec, out, sizeof(out));

        cr_assert_eq(rd16(r->frame + r->csum_off), r->csum, "%s: table", r->name);
        assert_frame_eq(r->frame, r->len, out, n);
    }
}

Test(reference, checkers_accept_hand_built_frames)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(refs); i++) {
        const struct ref_case *r = &refs[i];
        int family = r->spec.family;
        const uint8_t *ip = r->frame + ETH_HLEN;

        if (family == AF_INET)
            cr_assert(pkt_ipv4_hdr_csum_ok(ip), "%s", r->name);
        cr_assert_eq(pkt_l4_csum_ok(family, ip, r->len - ETH_HLEN), 1,
                     "%s", r->name);
    }
}

Test(reference, checkers_reject_any_corrupted_byte)
{
    size_t i, j;

    for (i = 0; i < ARRAY_SIZE(refs); i++) {
        const struct ref_case *r = &refs[i];
        int family = r->spec.family;
        size_t ip_hl = family == AF_INET ? 20 : 40;
        uint8_t f[256];

        /* Every byte from the L4 header on, and the addresses that feed the
         * pseudo header (ICMPv4 has none). */
        for (j = ETH_HLEN; j < r->len; j++) {
            int in_l4 = j >= ETH_HLEN + ip_hl;
            int in_addr = family == AF_INET ? j >= ETH_HLEN + 12 && j < ETH_HLEN + 20
                                            : j >= ETH_HLEN + 8 && j < ETH_HLEN + 40;

            memcpy(f, r->frame, r->len);
            f[j] ^= 0x01;
            if (in_l4 || (in_addr && r->spec.proto != IPPROTO_ICMP))
                cr_assert_eq(pkt_l4_csum_ok(family, f + ETH_HLEN, r->len - ETH_HLEN), 0,
                             "%s: byte %zu flipped", r->name, j);
            if (family == AF_INET && !in_l4)
                cr_assert_eq(pkt_ipv4_hdr_csum_ok(f + ETH_HLEN), 0,
                             "%s: byte %zu flipped", r->name, j);
        }
    }
}

Test(reference, ipv4_header_textbook_example)
{
    /* The usual worked example of the IPv4 header checksum: 0xb861. */
    static const uint8_t hdr[] = {
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
        0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    };
    static uint8_t payload[0x73 - 20 - 8];
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    uint8_t out[256];
    size_t n;

    cr_assert_eq(pkt_addr(&s, "192.168.0.1", "192.168.0.199"), 0);
    s.frag_off = PKT_DF;
    s.payload = payload;
    s.payload_len = sizeof(payload);
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 0x73);
    assert_frame_eq(hdr, sizeof(hdr), out + ETH_HLEN, sizeof(hdr));
    cr_assert(pkt_ipv4_hdr_csum_ok(hdr));
}

/* ---------------------------------------------------------------------- */
/* pkt_build layout                                                       */

Test(build, vlan_tags)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    struct pkt_view v;
    uint8_t out[128];
    size_t n;

    s.n_vlan = 2;
    s.vlan[0] = (struct pkt_vlan){ .tpid = ETH_P_8021AD, .tci = 0x0064 };
    s.vlan[1] = (struct pkt_vlan){ .tpid = ETH_P_8021Q, .tci = 0xa0c8 };
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, 14 + 8 + 20 + 8);
    static const uint8_t two_tags[] = {
        0x88, 0xa8, 0x00, 0x64,     /* S-tag, VID 100 */
        0x81, 0x00, 0xa0, 0xc8,     /* C-tag, PCP 5, VID 200 */
        0x08, 0x00,
    };
    assert_frame_eq(two_tags, sizeof(two_tags), out + 12, sizeof(two_tags));
    cr_assert_eq(out[22], 0x45);
    cr_assert_eq(pkt_parse(out, n, &v), 0);
    cr_assert_eq(v.l3_off, 22);
    cr_assert(pkt_ipv4_hdr_csum_ok(out + 22));
    cr_assert(pkt_l4_csum_ok(AF_INET, out + 22, n - 22));

    s.n_vlan = 1;
    s.vlan[0] = (struct pkt_vlan){ .tpid = ETH_P_8021Q, .tci = 0xf00a };
    s.family = AF_INET6;
    cr_assert_eq(pkt_addr(&s, "fd00::1", "fd00::10"), 0);
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, 14 + 4 + 40 + 8);
    static const uint8_t one_tag[] = { 0x81, 0x00, 0xf0, 0x0a, 0x86, 0xdd };
    assert_frame_eq(one_tag, sizeof(one_tag), out + 12, sizeof(one_tag));
    cr_assert_eq(out[18] >> 4, 6);
}

Test(build, ipv4_options_lengthen_ihl)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_TCP);
    uint8_t out[256];
    unsigned int opts, i;
    size_t n;

    for (opts = 0; opts <= 40; opts += 4) {
        const uint8_t *ip = out + ETH_HLEN;

        s.ip_opts_len = (uint8_t)opts;
        n = pkt_build(&s, out, sizeof(out));
        cr_assert_eq(n, ETH_HLEN + 20 + opts + 20, "opts %u", opts);
        cr_assert_eq(ip[0], 0x40 | (5 + opts / 4), "opts %u", opts);
        cr_assert_eq(rd16(ip + 2), 20 + opts + 20, "opts %u", opts);
        for (i = 0; i < opts; i++)
            cr_assert_eq(ip[20 + i], i + 1 == opts ? 0 : 1, "opts %u byte %u", opts, i);
        /* The TCP header starts right after the options. */
        cr_assert_eq(ip[20 + opts + 12], 0x50, "opts %u", opts);
        cr_assert(pkt_ipv4_hdr_csum_ok(ip), "opts %u", opts);
        cr_assert(pkt_l4_csum_ok(AF_INET, ip, n - ETH_HLEN), "opts %u", opts);
    }

    for (opts = 1; opts < 48; opts++) {
        if (opts % 4 == 0 && opts <= 40)
            continue;
        s.ip_opts_len = (uint8_t)opts;
        cr_assert_eq(pkt_len(&s), 0, "opts %u", opts);
        cr_assert_eq(pkt_build(&s, out, sizeof(out)), 0, "opts %u", opts);
    }
}

Test(build, ipv4_fragments)
{
    static const uint8_t data[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    uint8_t out[128];
    size_t n;

    s.payload = data;
    s.payload_len = sizeof(data);
    s.ip_id = 0xbeef;

    /* First fragment: flags field as given, UDP header present. */
    s.frag_off = PKT_MF;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 20 + 8 + sizeof(data));
    cr_assert_eq(rd16(out + ETH_HLEN + 4), 0xbeef);
    cr_assert_eq(rd16(out + ETH_HLEN + 6), 0x2000);
    cr_assert_eq(rd16(out + ETH_HLEN + 20 + 4), 8 + sizeof(data));
    cr_assert(pkt_l4_csum_ok(AF_INET, out + ETH_HLEN, n - ETH_HLEN));

    /* Later fragment: no L4 header, data right after the IP header. */
    s.frag_off = 185;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 20 + sizeof(data));
    cr_assert_eq(rd16(out + ETH_HLEN + 6), 185);
    cr_assert_eq(rd16(out + ETH_HLEN + 2), 20 + sizeof(data));
    cr_assert_eq(memcmp(out + ETH_HLEN + 20, data, sizeof(data)), 0);
    cr_assert(pkt_ipv4_hdr_csum_ok(out + ETH_HLEN));
    cr_assert_eq(pkt_l4_csum_ok(AF_INET, out + ETH_HLEN, n - ETH_HLEN), 0);
}

Test(build, ipv6_fragment_header)
{
    static const uint8_t data[] = { 0xaa, 0xbb, 0xcc, 0xdd };
    struct pkt_spec s = spec_for(AF_INET6, IPPROTO_TCP);
    struct pkt_view v;
    uint8_t out[256];
    const uint8_t *ip = out + ETH_HLEN, *fh = ip + 40;
    size_t n;

    s.payload = data;
    s.payload_len = sizeof(data);
    s.ip_id = 0x1234;

    /* First fragment: Fragment header, then the TCP header. */
    s.frag_off = PKT_MF;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 40 + 8 + 20 + sizeof(data));
    cr_assert_eq(ip[6], IPPROTO_FRAGMENT);
    cr_assert_eq(rd16(ip + 4), 8 + 20 + sizeof(data));
    static const uint8_t first[] = {
        IPPROTO_TCP, 0x00, 0x00, 0x01, 0x00, 0x00, 0x12, 0x34,
    };
    assert_frame_eq(first, sizeof(first), fh, sizeof(first));
    cr_assert_eq(fh[8 + 12], 0x50);
    cr_assert(pkt_l4_csum_ok(AF_INET6, ip, n - ETH_HLEN));
    cr_assert_eq(pkt_parse(out, n, &v), 0);
    cr_assert_eq(v.l3_len, 48);
    cr_assert_eq(v.proto, IPPROTO_TCP);
    cr_assert_eq(v.v6_frag, 1);
    cr_assert_eq(v.frag_off, PKT_MF);

    /* Middle fragment at offset 16 * 8 = 128 bytes: data only. */
    s.frag_off = PKT_MF | 16;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 40 + 8 + sizeof(data));
    static const uint8_t middle[] = {
        IPPROTO_TCP, 0x00, 0x00, 0x81, 0x00, 0x00, 0x12, 0x34,
        0xaa, 0xbb, 0xcc, 0xdd,
    };
    assert_frame_eq(middle, sizeof(middle), fh, n - ETH_HLEN - 40);
    cr_assert_eq(pkt_l4_csum_ok(AF_INET6, ip, n - ETH_HLEN), 0);
    cr_assert_eq(pkt_parse(out, n, &v), 0);
    cr_assert_eq(v.frag_off, PKT_MF | 16);
    cr_assert_eq(v.l4_off, ETH_HLEN + 48);
    cr_assert_eq(v.l4_len, sizeof(data));

    /* Last fragment: M clear. */
    s.frag_off = 16;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(rd16(fh + 2), 0x0080);

    /* Atomic fragment: offset 0, M 0, the TCP header is there. */
    s.frag_off = PKT_DF;
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(n, ETH_HLEN + 40 + 8 + 20 + sizeof(data));
    cr_assert_eq(rd16(fh + 2), 0);
    cr_assert(pkt_l4_csum_ok(AF_INET6, ip, n - ETH_HLEN));
    cr_assert_eq(pkt_parse(out, n, &v), 0);
    cr_assert_eq(v.v6_frag, 1);
    cr_assert_eq(v.frag_off, 0);
}

Test(build, tos_ttl_and_traffic_class)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    uint8_t out[128];

    s.tos = 0xb8;
    cr_assert_neq(pkt_build(&s, out, sizeof(out)), 0);
    cr_assert_eq(out[ETH_HLEN + 1], 0xb8);
    cr_assert_eq(out[ETH_HLEN + 8], 64, "TTL 0 means 64");
    s.ttl = 1;
    cr_assert_neq(pkt_build(&s, out, sizeof(out)), 0);
    cr_assert_eq(out[ETH_HLEN + 8], 1);

    s = spec_for(AF_INET6, IPPROTO_UDP);
    s.tos = 0xb8;
    cr_assert_neq(pkt_build(&s, out, sizeof(out)), 0);
    static const uint8_t v6_first4[] = { 0x6b, 0x80, 0x00, 0x00 };
    assert_frame_eq(v6_first4, 4, out + ETH_HLEN, 4);
    cr_assert_eq(out[ETH_HLEN + 7], 64);
}

Test(build, icmp_body_fields)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_ICMP);
    uint8_t out[128];
    const uint8_t *l4;
    size_t n;

    /* Fragmentation needed, next-hop MTU 1400. */
    s.icmp_type = 3;
    s.icmp_code = 4;
    s.dport = 1400;
    n = pkt_build(&s, out, sizeof(out));
    l4 = out + ETH_HLEN + 20;
    cr_assert_eq(l4[0], 3);
    cr_assert_eq(l4[1], 4);
    cr_assert_eq(rd32(l4 + 4), 1400);
    cr_assert(pkt_l4_csum_ok(AF_INET, out + ETH_HLEN, n - ETH_HLEN));

    /* Packet too big, MTU 0x00012345 across both halves. */
    s = spec_for(AF_INET6, IPPROTO_ICMPV6);
    s.icmp_type = 2;
    s.sport = 0x0001;
    s.dport = 0x2345;
    n = pkt_build(&s, out, sizeof(out));
    l4 = out + ETH_HLEN + 40;
    cr_assert_eq(l4[0], 2);
    cr_assert_eq(rd32(l4 + 4), 0x00012345);
    cr_assert(pkt_l4_csum_ok(AF_INET6, out + ETH_HLEN, n - ETH_HLEN));
}

Test(build, ipip_encapsulation)
{
    struct pkt_spec inner = spec_for(AF_INET, IPPROTO_TCP);
    struct pkt_spec outer = spec_for(AF_INET, IPPROTO_IPIP);
    struct pkt_view v;
    uint8_t in[128], out[256];
    size_t in_len, n;

    inner.sport = 40000;
    inner.dport = 443;
    inner.tcp_flags = 0x02;
    in_len = pkt_build(&inner, in, sizeof(in));
    cr_assert_eq(pkt_addr(&outer, "198.18.0.254", "198.18.20.11"), 0);
    outer.payload = in + ETH_HLEN;
    outer.payload_len = in_len - ETH_HLEN;
    n = pkt_build(&outer, out, sizeof(out));
    cr_assert_eq(n, in_len + 20);

    cr_assert_eq(pkt_parse(out, n, &v), 0);
    cr_assert_eq(v.proto, IPPROTO_IPIP);
    cr_assert_eq(v.l4_off, ETH_HLEN + 20);
    cr_assert_eq(v.l4_len, in_len - ETH_HLEN);
    assert_frame_eq(in + ETH_HLEN, in_len - ETH_HLEN, out + v.l4_off, v.l4_len);
    cr_assert(pkt_ipv4_hdr_csum_ok(out + ETH_HLEN));
    cr_assert(pkt_ipv4_hdr_csum_ok(out + v.l4_off));
    cr_assert(pkt_l4_csum_ok(AF_INET, out + v.l4_off, v.l4_len));
    /* Nothing to check at the outer level: IPIP has no checksum. */
    cr_assert_eq(pkt_l4_csum_ok(AF_INET, out + ETH_HLEN, n - ETH_HLEN), 0);
}

Test(build, udp_checksum_zero_rules)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    uint8_t payload[2] = { 0, 0 };
    uint8_t out[128];
    uint8_t *ip = out + ETH_HLEN, *csum = ip + 20 + 6;
    size_t n;

    /* Choose the payload word so that the computed checksum is zero: with
     * payload 0 the checksum is c = ~S, and adding the word c makes the
     * sum S + ~S = 0xffff, whose complement is 0. */
    s.payload = payload;
    s.payload_len = sizeof(payload);
    cr_assert_neq(pkt_build(&s, out, sizeof(out)), 0);
    wr16(payload, rd16(csum));
    n = pkt_build(&s, out, sizeof(out));
    cr_assert_eq(rd16(csum), 0xffff, "a computed 0 is sent as 0xffff");
    cr_assert(pkt_l4_csum_ok(AF_INET, ip, n - ETH_HLEN));

    /* Over IPv4 a zero checksum means "none" and passes. */
    wr16(csum, 0);
    cr_assert(pkt_l4_csum_ok(AF_INET, ip, n - ETH_HLEN));

    /* Over IPv6 the checksum is mandatory. */
    s = spec_for(AF_INET6, IPPROTO_UDP);
    n = pkt_build(&s, out, sizeof(out));
    cr_assert(pkt_l4_csum_ok(AF_INET6, ip, n - ETH_HLEN));
    wr16(ip + 40 + 6, 0);
    cr_assert_eq(pkt_l4_csum_ok(AF_INET6, ip, n - ETH_HLEN), 0);
}

Test(build, capacity_too_small_leaves_output_alone)
{
    static const uint8_t data[13] = { 0 };
    struct pkt_spec s = spec_for(AF_INET6, IPPROTO_TCP);
    uint8_t out[256];
    size_t len, cap, i;

    s.n_vlan = 1;
    s.vlan[0].tpid = ETH_P_8021Q;
    s.payload = data;
    s.payload_len = sizeof(data);
    len = pkt_len(&s);
    cr_assert_eq(len, 14 + 4 + 40 + 20 + sizeof(data));
    for (cap = 0; cap < len; cap++) {
        memset(out, 0xee, sizeof(out));
        cr_assert_eq(pkt_build(&s, out, cap), 0, "cap %zu", cap);
        for (i = 0; i < sizeof(out); i++)
            cr_assert_eq(out[i], 0xee, "cap %zu wrote byte %zu", cap, i);
    }
    cr_assert_eq(pkt_build(&s, out, len), len);
    cr_assert_eq(out[len], 0xee);
}

Test(build, invalid_specs)
{
    struct pkt_spec ok = spec_for(AF_INET, IPPROTO_UDP), s;
    uint8_t *big = calloc(1, 70000);
    size_t max_v4 = 65535 - 20 - 8, max_v6 = 65535 - 8;

    cr_assert_not_null(big);
    cr_assert_neq(pkt_len(&ok), 0);

    s = ok; s.n_vlan = 3;
    cr_assert_eq(pkt_len(&s), 0);
    s = ok; s.n_vlan = -1;
    cr_assert_eq(pkt_len(&s), 0);
    s = ok; s.family = AF_UNIX;
    cr_assert_eq(pkt_len(&s), 0);
    s = ok; s.payload_len = 1;
    cr_assert_eq(pkt_len(&s), 0, "NULL payload with a length");

    s = ok; s.payload = big; s.payload_len = max_v4;
    cr_assert_eq(pkt_len(&s), 14 + 65535);
    s.payload_len = max_v4 + 1;
    cr_assert_eq(pkt_len(&s), 0, "IPv4 total length overflows");

    s = spec_for(AF_INET6, IPPROTO_UDP);
    s.payload = big;
    s.payload_len = max_v6;
    cr_assert_eq(pkt_len(&s), 14 + 40 + 65535);
    s.payload_len = max_v6 + 1;
    cr_assert_eq(pkt_len(&s), 0, "IPv6 payload length overflows");
    s.payload_len = 4;
    s.ip_opts_len = 4;
    cr_assert_eq(pkt_len(&s), 0, "IPv4 options on IPv6");
    free(big);
}

Test(build, hdr_max_bounds_headers)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_TCP);

    s.n_vlan = 2;
    s.ip_opts_len = 40;
    cr_assert_eq(pkt_len(&s), PKT_HDR_MAX);

    s = spec_for(AF_INET6, IPPROTO_TCP);
    s.n_vlan = 2;
    s.frag_off = PKT_MF;
    cr_assert_leq(pkt_len(&s), PKT_HDR_MAX);
}

/* ---------------------------------------------------------------------- */
/* pkt_parse                                                              */

static const uint16_t frag_cases[] = { 0, PKT_DF, PKT_MF, PKT_MF | 3, 3 };
static const size_t payload_cases[] = { 0, 1, 2, 7, 100 };
static const uint8_t opts_cases[] = { 0, 4, 40 };
static uint8_t pattern[100];

static uint8_t icmp_for(int family)
{
    return family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
}

/*
 * Every combination of family, protocol (TCP, UDP, ICMP of the family, and
 * GRE standing for any protocol without a header of ours), tag count,
 * IPv4 options, fragment kind and payload length. Returns the count.
 */
static size_t all_specs(struct pkt_spec *out, size_t max)
{
    static const int families[] = { AF_INET, AF_INET6 };
    size_t n = 0, fi, pi, vi, oi, fr, pl, i;

    for (i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + 3);

    for (fi = 0; fi < ARRAY_SIZE(families); fi++) {
        int family = families[fi];
        const uint8_t protos[] = {
            IPPROTO_TCP, IPPROTO_UDP, icmp_for(family), IPPROTO_GRE,
        };
        size_t n_opts = family == AF_INET ? ARRAY_SIZE(opts_cases) : 1;

        for (pi = 0; pi < ARRAY_SIZE(protos); pi++)
        for (vi = 0; vi <= 2; vi++)
        for (oi = 0; oi < n_opts; oi++)
        for (fr = 0; fr < ARRAY_SIZE(frag_cases); fr++)
        for (pl = 0; pl < ARRAY_SIZE(payload_cases); pl++) {
            struct pkt_spec s = spec_for(family, protos[pi]);

            cr_assert_lt(n, max);
            s.n_vlan = (int)vi;
            s.vlan[0] = (struct pkt_vlan){ ETH_P_8021AD, (uint16_t)(0x0100 + n % 4000) };
            s.vlan[1] = (struct pkt_vlan){ ETH_P_8021Q, (uint16_t)(0xe000 + n % 4000) };
            s.ip_opts_len = opts_cases[oi];
            s.frag_off = frag_cases[fr];
            s.ip_id = (uint16_t)(0x4000 + n);
            s.sport = (uint16_t)(40000 + n % 1000);
            s.dport = 4172;
            s.icmp_type = family == AF_INET ? 8 : 128;
            s.tcp_flags = 0x18;
            s.tcp_seq = 0x10000000u + (uint32_t)n;
            s.tcp_ack = 0x20000000u + (uint32_t)n;
            s.tos = (uint8_t)(n * 4);
            s.payload = pattern;
            s.payload_len = payload_cases[pl];
            out[n++] = s;
        }
    }
    return n;
}

#define MAX_SPECS 2048

static size_t expect_l4_hdr(const struct pkt_spec *s)
{
    if (s->frag_off & PKT_OFFMASK)
        return 0;
    switch (s->proto) {
    case IPPROTO_TCP:
        return 20;
    case IPPROTO_UDP:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
        return 8;
    default:
        return 0;
    }
}

static void check_view(const struct pkt_spec *s, const uint8_t *f,
                       const struct pkt_view *v, size_t idx)
{
    size_t l3_off = ETH_HLEN + 4 * (size_t)s->n_vlan;
    size_t l3_len = s->family == AF_INET ? 20u + s->ip_opts_len
                                         : 40u + (s->frag_off ? 8u : 0u);
    size_t l4_hdr = expect_l4_hdr(s);
    const uint8_t *l4 = f + v->l4_off;
    int i;

    cr_assert_eq(v->n_vlan, s->n_vlan, "spec %zu", idx);
    for (i = 0; i < s->n_vlan; i++) {
        cr_assert_eq(v->vlan[i].tpid, s->vlan[i].tpid, "spec %zu tag %d", idx, i);
        cr_assert_eq(v->vlan[i].tci, s->vlan[i].tci, "spec %zu tag %d", idx, i);
    }
    cr_assert_eq(v->ethertype, s->family == AF_INET ? ETH_P_IP : ETH_P_IPV6,
                 "spec %zu", idx);
    cr_assert_eq(v->l3_off, l3_off, "spec %zu", idx);
    cr_assert_eq(v->family, s->family, "spec %zu", idx);
    cr_assert_eq(v->l3_len, l3_len, "spec %zu", idx);
    cr_assert_eq(v->proto, s->proto, "spec %zu", idx);
    if (s->family == AF_INET) {
        cr_assert_eq(v->frag_off, s->frag_off, "spec %zu", idx);
        cr_assert_eq(v->v6_frag, 0, "spec %zu", idx);
    } else {
        cr_assert_eq(v->frag_off, s->frag_off & (PKT_OFFMASK | PKT_MF), "spec %zu", idx);
        cr_assert_eq(v->v6_frag, s->frag_off != 0, "spec %zu", idx);
    }
    cr_assert_eq(v->l4_off, l3_off + l3_len, "spec %zu", idx);
    cr_assert_eq(v->l4_len, l4_hdr + s->payload_len, "spec %zu", idx);

    if (l4_hdr) {
        cr_assert_eq(rd16(l4), s->proto == IPPROTO_TCP || s->proto == IPPROTO_UDP
                                   ? s->sport : (uint16_t)(s->icmp_type << 8 | s->icmp_code),
                     "spec %zu", idx);
        if (s->proto == IPPROTO_TCP || s->proto == IPPROTO_UDP) {
            cr_assert_eq(rd16(l4 + 2), s->dport, "spec %zu", idx);
        } else {
            cr_assert_eq(rd16(l4 + 4), s->sport, "spec %zu", idx);
            cr_assert_eq(rd16(l4 + 6), s->dport, "spec %zu", idx);
        }
        if (s->proto == IPPROTO_TCP) {
            cr_assert_eq(rd32(l4 + 4), s->tcp_seq, "spec %zu", idx);
            cr_assert_eq(rd32(l4 + 8), s->tcp_ack, "spec %zu", idx);
            cr_assert_eq(l4[13], s->tcp_flags, "spec %zu", idx);
        }
        if (s->proto == IPPROTO_UDP)
            cr_assert_eq(rd16(l4 + 4), l4_hdr + s->payload_len, "spec %zu", idx);
    }
    if (s->payload_len)
        cr_assert_eq(memcmp(l4 + l4_hdr, s->payload, s->payload_len), 0, "spec %zu", idx);
}

Test(parse, round_trips_every_combination)
{
    struct pkt_spec *specs = calloc(MAX_SPECS, sizeof(*specs));
    size_t n, i;

    cr_assert_not_null(specs);
    n = all_specs(specs, MAX_SPECS);
    /* v4: 4 protocols * 3 tag counts * 3 option lengths * 5 fragment kinds
     * * 5 payload lengths; v6 the same without options. */
    cr_assert_eq(n, 900 + 300);

    for (i = 0; i < n; i++) {
        const struct pkt_spec *s = &specs[i];
        struct pkt_view v, vp;
        size_t len, l4_hdr = expect_l4_hdr(s);
        uint8_t *f = build_alloc(s, &len), *padded;
        int has_csum = l4_hdr && s->proto != IPPROTO_GRE;

        cr_assert_eq(pkt_parse(f, len, &v), 0, "spec %zu", i);
        check_view(s, f, &v, i);
        cr_assert_eq(v.l3_off + ip_len_of(&v), len, "spec %zu", i);
        if (s->family == AF_INET)
            cr_assert(pkt_ipv4_hdr_csum_ok(ip_of(f, &v)), "spec %zu", i);
        cr_assert_eq(pkt_l4_csum_ok(s->family, ip_of(f, &v), len - v.l3_off),
                     has_csum, "spec %zu", i);

        /* Ethernet padding after the datagram changes nothing. */
        padded = calloc(1, len + 18);
        cr_assert_not_null(padded);
        memcpy(padded, f, len);
        cr_assert_eq(pkt_parse(padded, len + 18, &vp), 0, "spec %zu", i);
        cr_assert_eq(memcmp(&v, &vp, sizeof(v)), 0, "spec %zu", i);
        cr_assert_eq(pkt_l4_csum_ok(s->family, ip_of(padded, &vp), len + 18 - vp.l3_off),
                     has_csum, "spec %zu", i);
        free(padded);
        free(f);
    }
    free(specs);
}

Test(parse, rejects_every_truncation)
{
    struct pkt_spec *specs = calloc(MAX_SPECS, sizeof(*specs));
    size_t n, i, cut;

    cr_assert_not_null(specs);
    n = all_specs(specs, MAX_SPECS);
    for (i = 0; i < n; i++) {
        struct pkt_view full, v;
        size_t len;
        uint8_t *f = build_alloc(&specs[i], &len);

        cr_assert_eq(pkt_parse(f, len, &full), 0, "spec %zu", i);
        for (cut = 0; cut < len; cut++) {
            /* An exact-size copy: reading past cut is a heap overflow. */
            uint8_t *t = malloc(cut ? cut : 1);

            cr_assert_not_null(t);
            memcpy(t, f, cut);
            cr_assert_eq(pkt_parse(t, cut, &v), -EINVAL, "spec %zu cut %zu", i, cut);
            if (cut > full.l3_off)
                cr_assert_eq(pkt_l4_csum_ok(specs[i].family, t + full.l3_off, cut - full.l3_off),
                             0, "spec %zu cut %zu", i, cut);
            free(t);
        }
        free(f);
    }
    free(specs);
}

Test(parse, rejects_malformed)
{
    struct pkt_spec s = spec_for(AF_INET, IPPROTO_UDP);
    struct pkt_view v;
    uint8_t f[256], t[256];
    size_t n;

    n = pkt_build(&s, f, sizeof(f));
    cr_assert_eq(pkt_parse(f, n, &v), 0);

    memcpy(t, f, n);
    wr16(t + 12, ETH_P_ARP);
    cr_assert_eq(pkt_parse(t, n, &v), -EINVAL, "not IP");

    memcpy(t, f, n);
    t[ETH_HLEN] = 0x44;
    cr_assert_eq(pkt_parse(t, n, &v), -EINVAL, "IHL 4");
    cr_assert_eq(pkt_ipv4_hdr_csum_ok(t + ETH_HLEN), 0, "IHL 4");

    memcpy(t, f, n);
    t[ETH_HLEN] = 0x65;
    cr_assert_eq(pkt_parse(t, n, &v), -EINVAL, "version 6 behind 0x0800");

    memcpy(t, f, n);
    wr16(t + ETH_HLEN + 2, 19);
    cr_assert_eq(pkt_parse(t, n, &v), -EINVAL, "total length below IHL");

    /* Three tags. */
    s.n_vlan = 2;
    s.vlan[0].tpid = ETH_P_8021AD;
    s.vlan[1].tpid = ETH_P_8021Q;
    n = pkt_build(&s, f, sizeof(f));
    memcpy(t, f, 12);
    wr16(t + 12, ETH_P_8021Q);
    wr16(t + 14, 7);
    memcpy(t + 16, f + 12, n - 12);
    cr_assert_eq(pkt_parse(f, n, &v), 0);
    cr_assert_eq(pkt_parse(t, n + 4, &v), -EINVAL, "three tags");
}

/* An IPv6 frame whose payload is a chain of extension headers (each 8 bytes,
 * next-header first) ending in the TCP segment of a plain IPv6 TCP frame; the
 * TCP checksum does not cover extension headers, so it stays valid. */
static size_t v6_with_ext(const uint8_t *chain, size_t n_ext, uint8_t *out, size_t cap)
{
    struct pkt_spec tcp = spec_for(AF_INET6, IPPROTO_TCP), s;
    uint8_t seg[128], payload[256];
    size_t seg_len, i;

    tcp.sport = 1234;
    tcp.dport = 80;
    seg_len = pkt_build(&tcp, seg, sizeof(seg)) - ETH_HLEN - 40;
    cr_assert_leq(n_ext * 8 + seg_len, sizeof(payload));
    /* A zero second byte makes every kind 8 bytes long: options and
     * routing (0 + 1) * 8, AH (0 + 2) * 4; it is reserved in a Fragment
     * header, whose zero offset field makes it an atomic fragment. */
    for (i = 0; i < n_ext; i++) {
        memset(payload + 8 * i, 0, 8);
        payload[8 * i] = i + 1 < n_ext ? chain[i + 1] : IPPROTO_TCP;
    }
    memcpy(payload + n_ext * 8, seg + ETH_HLEN + 40, seg_len);
    s = spec_for(AF_INET6, chain[0]);
    s.payload = payload;
    s.payload_len = n_ext * 8 + seg_len;
    return pkt_build(&s, out, cap);
}

Test(parse, ipv6_extension_headers)
{
    static const uint8_t chain[] = {
        IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH,
    };
    static const uint8_t too_long[9] = {
        IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
        IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
    };
    static const uint8_t two_frags[] = { IPPROTO_FRAGMENT, IPPROTO_FRAGMENT };
    struct pkt_view v;
    uint8_t f[512];
    size_t n;

    n = v6_with_ext(chain, ARRAY_SIZE(chain), f, sizeof(f));
    cr_assert_eq(pkt_parse(f, n, &v), 0);
    cr_assert_eq(v.l3_len, 40 + 8 * ARRAY_SIZE(chain));
    cr_assert_eq(v.proto, IPPROTO_TCP);
    cr_assert_eq(v.v6_frag, 1);
    cr_assert_eq(v.frag_off, 0);
    cr_assert_eq(v.l4_len, 20);
    cr_assert_eq(rd16(f + v.l4_off), 1234);
    cr_assert(pkt_l4_csum_ok(AF_INET6, f + ETH_HLEN, n - ETH_HLEN));

    n = v6_with_ext(too_long, 8, f, sizeof(f));
    cr_assert_eq(pkt_parse(f, n, &v), 0, "eight extension headers are fine");
    cr_assert_eq(v.l3_len, 40 + 64);
    n = v6_with_ext(too_long, 9, f, sizeof(f));
    cr_assert_eq(pkt_parse(f, n, &v), -EINVAL, "nine are too many");
    cr_assert_eq(pkt_l4_csum_ok(AF_INET6, f + ETH_HLEN, n - ETH_HLEN), 0);

    n = v6_with_ext(two_frags, 2, f, sizeof(f));
    cr_assert_eq(pkt_parse(f, n, &v), -EINVAL, "two Fragment headers");
}

/* ---------------------------------------------------------------------- */
/* pkt_pcap_write                                                         */

struct tmpdir {
    char path[64];
};

static void tmpdir_make(struct tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/pkt_test.XXXXXX");
    cr_assert_not_null(mkdtemp(d->path));
}

static void tmpdir_file(const struct tmpdir *d, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", d->path, name);
}

static void tmpdir_remove(const struct tmpdir *d, const char *file)
{
    char p[128];

    tmpdir_file(d, file, p, sizeof(p));
    unlink(p);
    rmdir(d->path);
}

static int run(const char *fmt, const char *arg)
{
    char cmd[512];
    int st;

    snprintf(cmd, sizeof(cmd), fmt, arg);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(pcap, header_and_records)
{
    const uint8_t *frames[] = { ref_v4_tcp, ref_v6_udp, ref_v4_icmp };
    const size_t lens[] = { sizeof(ref_v4_tcp), sizeof(ref_v6_udp), sizeof(ref_v4_icmp) };
    struct tmpdir d;
    char path[128];
    uint8_t file[1024];
    size_t flen, off, i, expect = 24;
    uint32_t w;
    uint16_t h;
    FILE *fp;

    tmpdir_make(&d);
    tmpdir_file(&d, "out.pcap", path, sizeof(path));
    cr_assert_eq(pkt_pcap_write(path, frames, lens, ARRAY_SIZE(frames)), 0);

    fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    flen = fread(file, 1, sizeof(file), fp);
    fclose(fp);
    for (i = 0; i < ARRAY_SIZE(lens); i++)
        expect += 16 + lens[i];
    cr_assert_eq(flen, expect);

    memcpy(&w, file, 4);
    cr_assert_eq(w, 0xa1b2c3d4);
    memcpy(&h, file + 4, 2);
    cr_assert_eq(h, 2);
    memcpy(&h, file + 6, 2);
    cr_assert_eq(h, 4);
    memcpy(&w, file + 16, 4);
    cr_assert_geq(w, 65535, "snaplen");
    memcpy(&w, file + 20, 4);
    cr_assert_eq(w, 1, "LINKTYPE_ETHERNET");

    off = 24;
    for (i = 0; i < ARRAY_SIZE(frames); i++) {
        uint32_t rec[4];

        memcpy(rec, file + off, sizeof(rec));
        cr_assert_eq(rec[0], 0, "record %zu ts_sec", i);
        cr_assert_eq(rec[1], i, "record %zu ts_usec", i);
        cr_assert_eq(rec[2], lens[i], "record %zu incl_len", i);
        cr_assert_eq(rec[3], lens[i], "record %zu orig_len", i);
        off += 16;
        assert_frame_eq(frames[i], lens[i], file + off, (size_t)rec[2]);
        off += rec[2];
    }
    cr_assert_eq(off, flen);

    cr_assert_eq(run("tcpdump -nn -r %s >/dev/null 2>&1", path), 0);
    tmpdir_remove(&d, "out.pcap");
}

Test(pcap, tcpdump_rejects_garbage)
{
    /* Shows that a zero exit from tcpdump above means something. */
    struct tmpdir d;
    char path[128];
    FILE *fp;

    tmpdir_make(&d);
    tmpdir_file(&d, "bad.pcap", path, sizeof(path));
    fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    fputs("this is not a capture file\n", fp);
    fclose(fp);
    cr_assert_neq(run("tcpdump -nn -r %s >/dev/null 2>&1", path), 0);
    tmpdir_remove(&d, "bad.pcap");
}

/*
 * tcpdump verifies checksums by itself with -vvv: every frame of every
 * combination must come out without its "incorrect", "bad ... cksum" or
 * "wrong icmp cksum" remarks.
 */
Test(pcap, tcpdump_agrees_on_checksums)
{
    struct pkt_spec *specs = calloc(MAX_SPECS, sizeof(*specs));
    const uint8_t **frames = calloc(MAX_SPECS, sizeof(*frames));
    size_t *lens = calloc(MAX_SPECS, sizeof(*lens));
    size_t n, i, m = 0, lines = 0, verified = 0, expect_verified = 0;
    struct tmpdir d;
    char path[128], cmd[256], line[1024];
    FILE *p;

    cr_assert(specs && frames && lens);
    n = all_specs(specs, MAX_SPECS);
    for (i = 0; i < n; i++) {
        if (specs[i].proto == IPPROTO_GRE)
            continue;       /* its payload would be dissected as GRE */
        frames[m] = build_alloc(&specs[i], &lens[m]);
        m++;
        /* tcpdump states a verdict for TCP, UDP and ICMPv6 outside of
         * fragments (an IPv6 atomic fragment counts as one). */
        if (specs[i].proto != IPPROTO_ICMP &&
            (specs[i].frag_off == 0 ||
             (specs[i].family == AF_INET && specs[i].frag_off == PKT_DF)))
            expect_verified++;
    }
    tmpdir_make(&d);
    tmpdir_file(&d, "all.pcap", path, sizeof(path));
    cr_assert_eq(pkt_pcap_write(path, frames, lens, m), 0);

    snprintf(cmd, sizeof(cmd), "tcpdump -vvv -nn -r %s 2>/dev/null", path);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    while (fgets(line, sizeof(line), p)) {
        lines++;
        cr_assert_null(strstr(line, "incorrect"), "%s", line);
        cr_assert_null(strstr(line, "bad "), "%s", line);
        cr_assert_null(strstr(line, "wrong"), "%s", line);
        if (strstr(line, "(correct)") || strstr(line, "sum ok"))
            verified++;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_geq(lines, m);
    cr_assert_eq(verified, expect_verified);

    for (i = 0; i < m; i++)
        free((void *)frames[i]);
    free(lens);
    free(frames);
    free(specs);
    tmpdir_remove(&d, "all.pcap");
}

Test(pcap, errors)
{
    const uint8_t *frames[] = { NULL };
    const size_t lens[] = { 10 };
    struct tmpdir d;
    char path[128];
    struct stat st;

    tmpdir_make(&d);
    tmpdir_file(&d, "x.pcap", path, sizeof(path));
    cr_assert_eq(pkt_pcap_write(path, frames, lens, 1), -EINVAL);
    cr_assert_eq(stat(path, &st), -1, "no file left behind");
    cr_assert_eq(pkt_pcap_write("/nonexistent-dir/x.pcap", frames, lens, 0), -ENOENT);

    cr_assert_eq(pkt_pcap_write(path, frames, lens, 0), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 24, "header only");
    tmpdir_remove(&d, "x.pcap");
}

/* ---------------------------------------------------------------------- */
/* pkt_hexdiff                                                            */

Test(hexdiff, identical)
{
    char buf[256];

    cr_assert_str_eq(pkt_hexdiff(ref_v4_tcp, sizeof(ref_v4_tcp), ref_v4_tcp,
                                 sizeof(ref_v4_tcp), buf, sizeof(buf)),
                     "identical, 54 bytes\n");
}

Test(hexdiff, one_byte)
{
    uint8_t exp[20], act[20];
    char buf[1024];
    int i;

    for (i = 0; i < 20; i++)
        exp[i] = act[i] = (uint8_t)i;
    act[0x11] = 0xff;
    cr_assert_str_eq(pkt_hexdiff(exp, 20, act, 20, buf, sizeof(buf)),
        "expected 20 bytes, actual 20 bytes; 1 byte differs, first at 0x0011\n"
        "  0000 00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n"
        "- 0010 10 11 12 13\n"
        "+ 0010 10 ff 12 13\n"
        "          ^^\n");
}

Test(hexdiff, length_mismatch)
{
    static const uint8_t exp[] = { 0xde, 0xad, 0xbe, 0xef };
    static const uint8_t act[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01 };
    char buf[1024];

    cr_assert_str_eq(pkt_hexdiff(exp, sizeof(exp), act, sizeof(act), buf, sizeof(buf)),
        "expected 4 bytes, actual 6 bytes; 2 bytes differ, first at 0x0004\n"
        "- 0000 de ad be ef .. ..\n"
        "+ 0000 de ad be ef 00 01\n"
        "                   ^^ ^^\n");
    cr_assert_str_eq(pkt_hexdiff(act, sizeof(act), NULL, 0, buf, sizeof(buf)),
        "expected 6 bytes, actual 0 bytes; 6 bytes differ, first at 0x0000\n"
        "- 0000 de ad be ef 00 01\n"
        "+ 0000 .. .. .. .. .. ..\n"
        "       ^^ ^^ ^^ ^^ ^^ ^^\n");
}

Test(hexdiff, truncates_within_buffer)
{
    uint8_t act[sizeof(ref_v6_tcp)];
    char buf[64];
    size_t sz;

    memcpy(act, ref_v6_tcp, sizeof(act));
    act[sizeof(act) - 1] ^= 0xff;
    for (sz = 1; sz <= 40; sz++) {
        memset(buf, '#', sizeof(buf));
        pkt_hexdiff(ref_v6_tcp, sizeof(ref_v6_tcp), act, sizeof(act), buf, sz);
        cr_assert_eq(strlen(buf), sz - 1, "size %zu", sz);
        cr_assert_eq(buf[sz], '#', "size %zu wrote past the end", sz);
        if (sz > 4)
            cr_assert_str_eq(buf + sz - 5, "...\n", "size %zu", sz);
    }
    cr_assert_eq(pkt_hexdiff(ref_v6_tcp, 1, act, 1, buf, 0), buf);
}

/* ---------------------------------------------------------------------- */
/* pkt_addr                                                               */

Test(addr, parses_both_families)
{
    static const uint8_t v4_src[16] = { 198, 18, 0, 1 };
    static const uint8_t v6_dst[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };
    struct pkt_spec s, before;

    memset(&s, 0xee, sizeof(s));
    cr_assert_eq(pkt_addr(&s, "198.18.0.1", "198.18.10.10"), 0);
    cr_assert_eq(s.family, AF_INET);
    cr_assert_eq(memcmp(s.src, v4_src, 16), 0, "the unused 12 bytes are zeroed");

    cr_assert_eq(pkt_addr(&s, "fd00::1", "fd00::10"), 0);
    cr_assert_eq(s.family, AF_INET6);
    cr_assert_eq(memcmp(s.dst, v6_dst, 16), 0);

    before = s;
    cr_assert_eq(pkt_addr(&s, "198.18.0.1", "fd00::10"), -EINVAL);
    cr_assert_eq(pkt_addr(&s, "fd00::1", "198.18.0.1"), -EINVAL);
    cr_assert_eq(pkt_addr(&s, "198.18.0.256", "198.18.0.1"), -EINVAL);
    cr_assert_eq(pkt_addr(&s, "", "fd00::1"), -EINVAL);
    cr_assert_eq(memcmp(&s, &before, sizeof(s)), 0, "unchanged on error");
}
