/*
 * The decap program of the real servers: tunnel frames to one of its
 * endpoints lose their outer headers (and their tags) and go to the stack as
 * Ethernet + the inner packet; everything else passes untouched.  The round
 * trip feeds the balancer's own output of every fixture row to it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>

#include <criterion/criterion.h>

#include "fixtures.h"

#define EP4 "198.18.0.31"           /* the decap program's endpoints */
#define EP6 "fd00::31"
#define NOT_EP4 "198.18.0.32"
#define NOT_EP6 "fd00::32"
#define TUN4 "198.19.0.7"           /* outer sources */
#define TUN6 "fd00:ff::7"

static const char *const endpoints[] = { EP4, EP6 };

/* The inner packet of the tests: TCP or UDP from a client to a VIP. */
static size_t inner_packet(int family, uint8_t proto, uint8_t *pkt)
{
    static uint8_t frame[XT_FRAME_MAX];
    struct pkt_spec s = family == AF_INET ?
        xt_spec("198.18.1.1", "198.18.100.1", proto, 40000, 80, 77) :
        xt_spec("fd00:1::1", "fd00:100::1", proto, 40000, 80, 77);
    struct pkt_view v;
    size_t n;

    s.tos = 0x28;
    n = xt_build(&s, frame);
    cr_assert_eq(pkt_parse(frame, n, &v), 0);
    memcpy(pkt, frame + v.l3_off, n - v.l3_off);
    return n - v.l3_off;
}

struct tunnel {
    const char *src, *dst;          /* outer addresses */
    bool gue;
    uint16_t gue_port;              /* 0: XT_GUE_PORT */
    uint8_t proto;                  /* IP-in-IP: next protocol; 0 = from the inner family */
    int n_vlan;
    struct pkt_vlan vlan[2];
    uint8_t ip_opts_len;
    uint16_t frag_off;
};

/* A tunnel frame carrying inner[0..len) as the balancer would send it. */
static size_t tunnel_frame(const struct tunnel *t, const uint8_t *inner, size_t len,
                           uint8_t *out)
{
    struct pkt_spec s = { .payload = inner, .payload_len = len, .ttl = 64 };
    bool inner4 = inner[0] >> 4 == 4;
    size_t n;

    xt_real_mac(strchr(t->dst, ':') ? "fd00::31" : "198.18.0.31", s.eth_dst);
    memcpy(s.eth_src, xt_mac_if0, 6);
    cr_assert_eq(pkt_addr(&s, t->src, t->dst), 0);
    s.n_vlan = t->n_vlan;
    memcpy(s.vlan, t->vlan, sizeof(s.vlan));
    s.ip_opts_len = t->ip_opts_len;
    s.frag_off = t->frag_off;
    if (t->gue) {
        s.proto = IPPROTO_UDP;
        s.sport = 50000;
        s.dport = t->gue_port ? t->gue_port : XT_GUE_PORT;
    } else {
        s.proto = t->proto ? t->proto : inner4 ? IPPROTO_IPIP : IPPROTO_IPV6;
    }
    n = pkt_build(&s, out, XT_FRAME_MAX);
    cr_assert_neq(n, 0);
    return n;
}

/* What decap makes of a frame: its MACs, the inner family's ethertype, the
 * inner packet and whatever followed it. */
static size_t decapped(const uint8_t *frame, const uint8_t *inner, size_t len, uint8_t *exp)
{
    memcpy(exp, frame, 12);
    exp[12] = inner[0] >> 4 == 4 ? 0x08 : 0x86;
    exp[13] = inner[0] >> 4 == 4 ? 0x00 : 0xdd;
    memcpy(exp + 14, inner, len);
    return 14 + len;
}

static void reason_counts(struct xt_decap *dc, uint64_t *decap, uint64_t *pass)
{
    struct xlb_reason_counter r[XLB_R_MAX];
    uint64_t others = 0;

    xt_reasons(dc->reasons, r);
    for (uint32_t i = 0; i < XLB_R_MAX; i++)
        if (i != XLB_R_DECAP && i != XLB_R_DECAP_PASS)
            others += r[i].packets;
    cr_assert_eq(others, 0, "decap counted packets under balancer reasons");
    *decap = r[XLB_R_DECAP].packets;
    *pass = r[XLB_R_DECAP_PASS].packets;
}

/* Decapsulate t carrying an inner packet of (family, proto) and compare. */
static void check_decap(struct xt_decap *dc, const char *what, const struct tunnel *t,
                        int family, uint8_t proto)
{
    static uint8_t inner[XT_FRAME_MAX], in[XT_FRAME_MAX], exp[XT_FRAME_MAX];
    static struct xt_out out;
    size_t ilen = inner_packet(family, proto, inner), len, elen;
    uint64_t d0, p0, d1, p1;

    len = tunnel_frame(t, inner, ilen, in);
    reason_counts(dc, &d0, &p0);
    cr_assert_eq(xt_run(dc->prog, xt_if0, in, len, &out), 0, "%s: run failed", what);
    cr_assert_eq(out.verdict, XDP_PASS, "%s: verdict %s", what, xt_verdict_name(out.verdict));
    elen = decapped(in, inner, ilen, exp);
    xt_assert_frame(what, in, len, exp, elen, out.data, out.len);
    reason_counts(dc, &d1, &p1);
    cr_assert(d1 - d0 == 1 && p1 == p0, "%s: counted %llu decap, %llu pass", what,
              (unsigned long long)(d1 - d0), (unsigned long long)(p1 - p0));
}

/* The frame must pass unchanged and count as not ours. */
static void check_untouched(struct xt_decap *dc, const char *what, const uint8_t *in,
                            size_t len)
{
    static struct xt_out out;
    uint64_t d0, p0, d1, p1;

    reason_counts(dc, &d0, &p0);
    cr_assert_eq(xt_run(dc->prog, xt_if0, in, len, &out), 0, "%s: run failed", what);
    cr_assert_eq(out.verdict, XDP_PASS, "%s: verdict %s", what, xt_verdict_name(out.verdict));
    xt_assert_frame(what, in, len, in, len, out.data, out.len);
    reason_counts(dc, &d1, &p1);
    cr_assert(d1 == d0 && p1 - p0 == 1, "%s: counted %llu decap, %llu pass", what,
              (unsigned long long)(d1 - d0), (unsigned long long)(p1 - p0));
}

static void check_tunnel_untouched(struct xt_decap *dc, const char *what,
                                   const struct tunnel *t, int family)
{
    static uint8_t inner[XT_FRAME_MAX], in[XT_FRAME_MAX];
    size_t ilen = inner_packet(family, IPPROTO_TCP, inner);

    check_untouched(dc, what, in, tunnel_frame(t, inner, ilen, in));
}

TestSuite(decap, .init = xt_env_setup);

Test(decap, ipip)
{
    struct xt_decap dc;

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "ipip tcp", &(struct tunnel){ .src = TUN4, .dst = EP4 }, AF_INET,
                IPPROTO_TCP);
    check_decap(&dc, "ipip udp", &(struct tunnel){ .src = TUN4, .dst = EP4 }, AF_INET,
                IPPROTO_UDP);
    xt_decap_close(&dc);
}

Test(decap, ip6ip6)
{
    struct xt_decap dc;

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "6in6", &(struct tunnel){ .src = TUN6, .dst = EP6 }, AF_INET6,
                IPPROTO_TCP);
    xt_decap_close(&dc);
}

Test(decap, ip4in6)
{
    struct xt_decap dc;

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "4in6", &(struct tunnel){ .src = TUN6, .dst = EP6 }, AF_INET,
                IPPROTO_TCP);
    xt_decap_close(&dc);
}

Test(decap, ip6in4)
{
    struct xt_decap dc;

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "6in4", &(struct tunnel){ .src = TUN4, .dst = EP4 }, AF_INET6,
                IPPROTO_TCP);
    xt_decap_close(&dc);
}

Test(decap, gue4)
{
    struct xt_decap dc;
    struct tunnel t = { .src = TUN4, .dst = EP4, .gue = true };

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "gue4 carrying udp4", &t, AF_INET, IPPROTO_UDP);
    check_decap(&dc, "gue4 carrying tcp4", &t, AF_INET, IPPROTO_TCP);
    check_decap(&dc, "gue4 carrying tcp6", &t, AF_INET6, IPPROTO_TCP);
    xt_decap_close(&dc);
}

Test(decap, gue6)
{
    struct xt_decap dc;
    struct tunnel t = { .src = TUN6, .dst = EP6, .gue = true };

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "gue6 carrying udp6", &t, AF_INET6, IPPROTO_UDP);
    check_decap(&dc, "gue6 carrying tcp6", &t, AF_INET6, IPPROTO_TCP);
    check_decap(&dc, "gue6 carrying udp4", &t, AF_INET, IPPROTO_UDP);
    xt_decap_close(&dc);
}

/* Outer IPv4 options and tags go with the outer header. */
Test(decap, outer_options_and_tags)
{
    struct xt_decap dc;
    struct tunnel t = { .src = TUN4, .dst = EP4, .ip_opts_len = 16 };

    xt_decap_open(&dc, endpoints, 2);
    check_decap(&dc, "ipip with outer options", &t, AF_INET, IPPROTO_TCP);
    t.ip_opts_len = 0;
    t.n_vlan = 2;
    t.vlan[0] = (struct pkt_vlan){ 0x88a8, 0x0064 };
    t.vlan[1] = (struct pkt_vlan){ 0x8100, 0x00c8 };
    check_decap(&dc, "ipip in QinQ", &t, AF_INET, IPPROTO_TCP);
    t = (struct tunnel){ .src = TUN6, .dst = EP6, .gue = true, .n_vlan = 1,
                         .vlan = { { 0x8100, 0x0005 } } };
    check_decap(&dc, "gue6 in 802.1Q", &t, AF_INET6, IPPROTO_UDP);
    xt_decap_close(&dc);
}

Test(decap, not_for_us_passes_untouched)
{
    static uint8_t in[XT_FRAME_MAX];
    struct xt_decap dc;
    struct pkt_spec s;
    size_t len;

    xt_decap_open(&dc, endpoints, 2);
    check_tunnel_untouched(&dc, "ipip to another address",
                           &(struct tunnel){ .src = TUN4, .dst = NOT_EP4 }, AF_INET);
    check_tunnel_untouched(&dc, "6in6 to another address",
                           &(struct tunnel){ .src = TUN6, .dst = NOT_EP6 }, AF_INET6);
    check_tunnel_untouched(&dc, "gue4 to another address",
                           &(struct tunnel){ .src = TUN4, .dst = NOT_EP4, .gue = true },
                           AF_INET);
    check_tunnel_untouched(&dc, "gue6 to another address",
                           &(struct tunnel){ .src = TUN6, .dst = NOT_EP6, .gue = true },
                           AF_INET6);
    check_tunnel_untouched(&dc, "udp to the endpoint, other port",
                           &(struct tunnel){ .src = TUN4, .dst = EP4, .gue = true,
                                             .gue_port = 6081 }, AF_INET);
    check_tunnel_untouched(&dc, "gre to the endpoint",
                           &(struct tunnel){ .src = TUN4, .dst = EP4, .proto = IPPROTO_GRE },
                           AF_INET);
    check_tunnel_untouched(&dc, "ipip fragment to the endpoint",
                           &(struct tunnel){ .src = TUN4, .dst = EP4, .frag_off = PKT_MF },
                           AF_INET);
    check_tunnel_untouched(&dc, "6in6 fragment to the endpoint",
                           &(struct tunnel){ .src = TUN6, .dst = EP6, .frag_off = PKT_MF },
                           AF_INET6);

    s = xt_spec(TUN4, EP4, IPPROTO_TCP, 1234, 80, 20);
    len = xt_build(&s, in);
    check_untouched(&dc, "tcp to the endpoint", in, len);
    s = xt_spec(TUN6, EP6, IPPROTO_UDP, 1234, 53, 20);
    len = xt_build(&s, in);
    check_untouched(&dc, "udp6 to the endpoint", in, len);
    /* GUE port, but neither IPv4 nor IPv6 behind the UDP header */
    s = xt_spec(TUN4, EP4, IPPROTO_UDP, 50000, XT_GUE_PORT, 20);
    len = xt_build(&s, in);
    in[len - 20] = 0x05;
    check_untouched(&dc, "gue4 with a GUE control header", in, len);
    s = xt_spec(TUN6, EP6, IPPROTO_UDP, 50000, XT_GUE_PORT, 0);
    len = xt_build(&s, in);
    check_untouched(&dc, "gue6 without payload", in, len);
    xt_decap_close(&dc);
}

/* Every prefix of every tunnel frame: untouched, never a crash. */
Test(decap, truncated)
{
    static uint8_t inner[XT_FRAME_MAX], in[XT_FRAME_MAX];
    static struct xt_out out;
    const struct tunnel ts[] = {
        { .src = TUN4, .dst = EP4 },
        { .src = TUN6, .dst = EP6 },
        { .src = TUN4, .dst = EP4, .gue = true },
        { .src = TUN6, .dst = EP6, .gue = true, .n_vlan = 2,
          .vlan = { { 0x88a8, 1 }, { 0x8100, 2 } } },
        { .src = TUN4, .dst = EP4, .ip_opts_len = 8, .n_vlan = 1, .vlan = { { 0x8100, 3 } } },
    };
    struct xt_decap dc;
    uint64_t d0, p0, d1, p1, runs = 0;

    xt_decap_open(&dc, endpoints, 2);
    reason_counts(&dc, &d0, &p0);
    for (size_t i = 0; i < XT_ARRAY_SIZE(ts); i++) {
        for (int fam = 0; fam < 2; fam++) {
            size_t ilen = inner_packet(fam ? AF_INET6 : AF_INET, IPPROTO_TCP, inner);
            size_t len = tunnel_frame(&ts[i], inner, ilen, in);

            for (size_t cut = 1; cut < len; cut++) {
                int err = xt_run(dc.prog, xt_if0, in, cut, &out);

                if (cut < 14) {
                    cr_assert_eq(err, -EINVAL, "tunnel %zu cut to %zu: %s", i, cut,
                                 strerror(-err));
                    continue;
                }
                cr_assert_eq(err, 0, "tunnel %zu cut to %zu: %s", i, cut, strerror(-err));
                cr_assert(out.verdict == XDP_PASS && out.len == cut &&
                          !memcmp(out.data, in, cut),
                          "tunnel %zu cut to %zu of %zu bytes: %s, %zu bytes out", i, cut, len,
                          xt_verdict_name(out.verdict), out.len);
                runs++;
            }
        }
    }
    reason_counts(&dc, &d1, &p1);
    cr_assert(d1 == d0 && p1 - p0 == runs, "truncated: %llu decap, %llu pass of %llu runs",
              (unsigned long long)(d1 - d0), (unsigned long long)(p1 - p0),
              (unsigned long long)runs);
    xt_decap_close(&dc);
}

/*
 * The round trip: each fixture row through the balancer (with all of the
 * row's checks), then its output through decap on the real server.  What
 * was encapsulated comes back as the row's IP packet behind the MACs of the
 * balancer's output; everything else passes decap untouched.
 */
Test(decap, balancer_output_round_trip)
{
    static uint8_t in[XT_FRAME_MAX], exp[XT_FRAME_MAX];
    static struct xt_out out, back;
    struct xt_decap dc;
    struct xt_lb lb;
    size_t ilen, elen;
    int decapped_rows = 0;

    xt_world_setup(&lb);
    xt_decap_open(&dc, xt_world_reals, xt_n_world_reals);
    for (size_t i = 0; i < xt_n_fixtures; i++) {
        const struct xt_fixture *f = &xt_fixtures[i];
        struct pkt_view v;
        char what[160];

        snprintf(what, sizeof(what), "%s, decapsulated", f->desc);
        xt_fixture_check(&lb, f, in, &ilen, &out);
        if (f->expect != xt_exp_encap) {
            check_untouched(&dc, what, in, ilen);
            continue;
        }
        cr_assert_eq(xt_run(dc.prog, xt_if0, out.data, out.len, &back), 0);
        cr_assert_eq(back.verdict, XDP_PASS, "%s: verdict %s", what,
                     xt_verdict_name(back.verdict));
        cr_assert_eq(pkt_parse(in, ilen, &v), 0);
        elen = decapped(out.data, in + v.l3_off, ilen - v.l3_off, exp);
        xt_assert_frame(what, out.data, out.len, exp, elen, back.data, back.len);
        decapped_rows++;
    }
    cr_assert_gt(decapped_rows, 30, "only %d rows were encapsulated", decapped_rows);
    xt_decap_close(&dc);
    xt_lb_close(&lb);
}
