/*
 * Policies of the data plane: access lists (per service and the node's
 * deny list), source-IP persistence (netmask, expiry, timer restart, real
 * states, port following), flood mode, the UDP idle timeout, ICMP
 * "fragmentation needed" / "packet too big" sent to the real of the flow,
 * and fragments placed by their addresses.  Time is moved by writing old
 * timestamps into the entries, as the data plane's clock would have left
 * them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "xlb_addr.h"
#include "xlb_hash.h"

#define VIP4 "198.18.100.1"
#define VIP6 "fd00:100::1"
#define RA "198.18.0.41"
#define RB "198.18.0.42"
#define RC "198.18.0.43"
#define R6A "fd00::31"
#define R6B "fd00::32"

#define F_SYN 0x02
#define F_ACK 0x10
#define NS 1000000000ull

static uint8_t in[XT_FRAME_MAX];
static struct xt_out out;

/* Run one frame of s; returns the verdict. */
static int run(struct xt_lb *lb, const char *what, const struct pkt_spec *s)
{
    size_t len = xt_build(s, in);

    xt_run_ok(what, lb->prog, in, len, &out);
    return out.verdict;
}

/* The outer destination of the last output, as text ("" if not encapsulated). */
static const char *dest(void)
{
    static char buf[64];
    struct pkt_view v;

    buf[0] = 0;
    if ((out.verdict != XDP_TX && out.verdict != XDP_REDIRECT) ||
        pkt_parse(out.data, out.len, &v))
        return buf;
    if (v.family == AF_INET)
        inet_ntop(AF_INET, out.data + v.l3_off + 16, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, out.data + v.l3_off + 24, buf, sizeof(buf));
    return buf;
}

static struct pkt_spec tcp(const char *src, const char *dst, uint16_t sport, uint16_t dport,
                           uint8_t flags)
{
    struct pkt_spec s = xt_spec(src, dst, IPPROTO_TCP, sport, dport, flags == F_SYN ? 0 : 20);

    s.tcp_flags = flags;
    return s;
}

/* Send a TCP segment; fail unless it is forwarded; returns its real. */
static const char *send_to(struct xt_lb *lb, const char *what, const char *src, const char *dst,
                           uint16_t sport, uint16_t dport, uint8_t flags)
{
    struct pkt_spec s = tcp(src, dst, sport, dport, flags);
    int v = run(lb, what, &s);

    cr_assert_eq(v, XDP_TX, "%s: verdict %s", what, xt_verdict_name(v));
    return dest();
}

static uint64_t reason(struct xt_lb *lb, uint32_t r)
{
    struct xlb_reason_counter c;

    cr_assert_eq(xlb_reason_read(lb->m->reasons, r, &c), 0);
    return c.packets;
}

static uint64_t ev(struct xt_lb *lb, uint32_t e)
{
    uint64_t v;

    cr_assert_eq(xlb_event_read(lb->m->events, e, &v), 0);
    return v;
}

static struct xlb_prefix pfx(const char *text)
{
    struct xlb_prefix p;

    memset(&p, 0, sizeof(p));
    cr_assert_eq(xlb_addr_parse(text, &p.addr, &p.family, &p.plen), 0, "bad prefix %s", text);
    return p;
}

static void acl(struct xt_lb *lb, uint32_t vs, const char *const *allow, int na,
                const char *const *deny, int nd)
{
    struct xlb_prefix a[8], d[8];
    struct xlb_err e = { "" };

    for (int i = 0; i < na; i++)
        a[i] = pfx(allow[i]);
    for (int i = 0; i < nd; i++)
        d[i] = pfx(deny[i]);
    cr_assert_eq(xlb_acl_set(lb->m, vs, a, (size_t)na, d, (size_t)nd, &e), 0,
                 "xlb_acl_set: %s", e.msg);
}

static int trie_entries(int fd, size_t key_size)
{
    uint8_t k[64], next[64];
    void *prev = NULL;
    int n = 0;

    while (bpf_map_get_next_key(fd, prev, next) == 0) {
        memcpy(k, next, key_size);
        prev = k;
        n++;
    }
    return n;
}

/* ---- access lists ---- */

TestSuite(acl, .init = xt_env_setup);

static void acl_case(const char *vip, const char *real, const char *deny_p, const char *deny_c,
                     const char *allow_p, const char *allowed_c, const char *other_c)
{
    const char *const deny[] = { deny_p }, *const allow[] = { allow_p };
    struct xt_lb lb;
    uint32_t vs;
    struct pkt_spec s;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", vip, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs, xt_real(&lb, vs, real, 1), 13);

    /* No lists: everybody. */
    cr_assert_str_eq(send_to(&lb, "no lists", deny_c, vip, 1000, 80, F_SYN), real);
    /* Deny list: the established flow of a denied source is dropped too. */
    acl(&lb, vs, NULL, 0, deny, 1);
    s = tcp(deny_c, vip, 1000, 80, F_ACK);
    cr_assert_eq(run(&lb, "denied, established", &s), XDP_DROP);
    s = tcp(deny_c, vip, 1001, 80, F_SYN);
    cr_assert_eq(run(&lb, "denied, new", &s), XDP_DROP);
    cr_assert_eq(reason(&lb, XLB_R_DROP_ACL_DENY), 2);
    cr_assert_str_eq(send_to(&lb, "not denied", other_c, vip, 1002, 80, F_SYN), real);
    /* Allow list plus the deny list inside it: deny wins. */
    acl(&lb, vs, allow, 1, deny, 1);
    s = tcp(deny_c, vip, 1003, 80, F_SYN);
    cr_assert_eq(run(&lb, "allowed and denied", &s), XDP_DROP);
    cr_assert_eq(reason(&lb, XLB_R_DROP_ACL_DENY), 3);
    cr_assert_str_eq(send_to(&lb, "allowed", allowed_c, vip, 1004, 80, F_SYN), real);
    s = tcp(other_c, vip, 1002, 80, F_ACK);
    cr_assert_eq(run(&lb, "not allowed, established", &s), XDP_DROP);
    cr_assert_eq(reason(&lb, XLB_R_DROP_ACL_NOT_ALLOWED), 1);
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 7, "every packet to the service is counted");
    /* Cleared: everybody again, and nothing left in the tries. */
    acl(&lb, vs, NULL, 0, NULL, 0);
    cr_assert_str_eq(send_to(&lb, "cleared", deny_c, vip, 1000, 80, F_ACK), real);
    cr_assert_str_eq(send_to(&lb, "cleared", other_c, vip, 1002, 80, F_ACK), real);
    cr_assert_eq(trie_entries(lb.m->acl4, sizeof(struct xlb_acl4_key)) +
                 trie_entries(lb.m->acl6, sizeof(struct xlb_acl6_key)), 0);
    xt_lb_close(&lb);
}

Test(acl, allow_and_deny_v4)
{
    acl_case(VIP4, RA, "198.18.1.0/24", "198.18.1.9", "198.18.0.0/16", "198.18.3.3",
             "198.19.1.1");
}

Test(acl, allow_and_deny_v6)
{
    acl_case(VIP6, R6A, "fd00:1::/64", "fd00:1::9", "fd00::/16", "fd00:3::3", "fd01::1");
}

/* Replacing a list keeps what both lists hold and drops the rest. */
Test(acl, replace_all)
{
    const char *const d1[] = { "198.18.1.0/24", "198.18.2.0/24" };
    const char *const d2[] = { "198.18.2.7/24", "fd00:9::/32" };    /* host bits ignored */
    struct xt_lb lb;
    struct pkt_spec s;
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs, xt_real(&lb, vs, RA, 1), 13);
    acl(&lb, vs, NULL, 0, d1, 2);
    acl(&lb, vs, NULL, 0, d2, 2);
    cr_assert_eq(trie_entries(lb.m->acl4, sizeof(struct xlb_acl4_key)), 1);
    cr_assert_eq(trie_entries(lb.m->acl6, sizeof(struct xlb_acl6_key)), 1);
    cr_assert_str_eq(send_to(&lb, "no longer denied", "198.18.1.1", VIP4, 1, 80, F_SYN), RA);
    s = tcp("198.18.2.200", VIP4, 2, 80, F_SYN);
    cr_assert_eq(run(&lb, "still denied", &s), XDP_DROP);
    xt_lb_close(&lb);
}

Test(acl, bad_prefixes_are_refused)
{
    struct xlb_prefix p = pfx("198.18.0.0/16");
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    p.plen = 33;
    cr_assert_eq(xlb_acl_set(lb.m, vs, &p, 1, NULL, 0, &e), -EINVAL);
    cr_assert(strstr(e.msg, "svc") && strstr(e.msg, "/33"), "message: %s", e.msg);
    cr_assert_eq(xlb_acl_set(lb.m, 77, NULL, 0, NULL, 0, &e), -ENOENT);
    xt_lb_close(&lb);
}

/* The node's deny list: every packet to a VIP address, echo included;
 * other destinations are not the balancer's business. */
Test(acl, global_deny)
{
    struct xlb_prefix d[2] = { pfx("198.18.5.0/24"), pfx("fd00:5::/48") };
    struct xlb_err e = { "" };
    struct xt_lb lb;
    struct pkt_spec s;
    uint32_t vs4, vs6;

    xt_lb_open(&lb, NULL);
    vs4 = xt_service(&lb, "v4", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs4, xt_real(&lb, vs4, RA, 1), 13);
    vs6 = xt_service(&lb, "v6", VIP6, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs6, xt_real(&lb, vs6, R6A, 1), 13);
    cr_assert_str_eq(send_to(&lb, "before", "198.18.5.5", VIP4, 1, 80, F_SYN), RA);
    cr_assert_eq(xlb_global_deny_set(lb.m, d, 2, &e), 0, "%s", e.msg);

    s = tcp("198.18.5.5", VIP4, 1, 80, F_ACK);
    cr_assert_eq(run(&lb, "v4 established", &s), XDP_DROP);
    s = tcp("fd00:5::5", VIP6, 1, 80, F_SYN);
    cr_assert_eq(run(&lb, "v6 new", &s), XDP_DROP);
    s = xt_spec("198.18.5.5", VIP4, IPPROTO_ICMP, 1, 1, 8);
    s.icmp_type = 8;
    cr_assert_eq(run(&lb, "v4 echo", &s), XDP_DROP);
    s = tcp("198.18.5.5", VIP4, 1, 81, F_SYN);
    cr_assert_eq(run(&lb, "v4 to a VIP port without a service", &s), XDP_DROP);
    cr_assert_eq(reason(&lb, XLB_R_DROP_GLOBAL_DENY), 4);
    s = tcp("198.18.5.5", "198.18.100.99", 1, 80, F_SYN);
    cr_assert_eq(run(&lb, "to another address", &s), XDP_PASS);
    cr_assert_str_eq(send_to(&lb, "other v4 source", "198.18.6.5", VIP4, 1, 80, F_SYN), RA);
    cr_assert_str_eq(send_to(&lb, "other v6 source", "fd00:6::5", VIP6, 1, 80, F_SYN), R6A);

    cr_assert_eq(xlb_global_deny_set(lb.m, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_str_eq(send_to(&lb, "list emptied", "198.18.5.5", VIP4, 1, 80, F_ACK), RA);
    cr_assert_eq(reason(&lb, XLB_R_DROP_GLOBAL_DENY), 4);
    cr_assert_eq(trie_entries(lb.m->acl4, sizeof(struct xlb_acl4_key)), 0);
    xt_lb_close(&lb);
}

/* ---- persistence ---- */

TestSuite(persist, .init = xt_env_setup);

static void persist(struct xt_lb *lb, uint32_t vs, uint32_t timeout, uint8_t m4, uint8_t m6,
                    uint32_t group)
{
    struct xlb_persist_spec p = { .timeout_s = timeout, .netmask4 = m4, .netmask6 = m6,
                                  .group = group };
    struct xlb_err e = { "" };

    cr_assert_eq(xlb_persist_set(lb->m, vs, &p, &e), 0, "xlb_persist_set: %s", e.msg);
}

static struct xlb_persist_key pkey(uint32_t group, const char *masked_src)
{
    struct xlb_persist_key k;

    memset(&k, 0, sizeof(k));
    k.family = (uint8_t)xt_addr(masked_src, &k.src);
    k.group = group;
    return k;
}

/* Service "web" on VIP4:80 with reals A and B, the table naming only A. */
static uint32_t web(struct xt_lb *lb, uint32_t *a, uint32_t *b)
{
    uint32_t vs = xt_service(lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);

    *a = xt_real(lb, vs, RA, 1);
    *b = xt_real(lb, vs, RB, 1);
    xt_table_all(lb, vs, *a, 13);
    return vs;
}

/* A client's next connections return to its real while the table names
 * another; clients of one /24 share the entry; other clients do not. */
Test(persist, hit_and_netmask)
{
    struct xt_lb lb;
    struct xlb_persist_spec got;
    uint32_t vs, a, b;

    xt_lb_open(&lb, NULL);
    vs = web(&lb, &a, &b);
    persist(&lb, vs, 600, 24, 64, 0);
    cr_assert_eq(xlb_persist_get(lb.m, vs, &got), 0);
    cr_assert(got.timeout_s == 600 && got.netmask4 == 24 && got.netmask6 == 64 && !got.group);
    cr_assert_str_eq(send_to(&lb, "first", "198.18.1.1", VIP4, 1000, 80, F_SYN), RA);
    xt_table_all(&lb, vs, b, 13);
    cr_assert_str_eq(send_to(&lb, "same client", "198.18.1.1", VIP4, 1001, 80, F_SYN), RA);
    cr_assert_str_eq(send_to(&lb, "same /24", "198.18.1.77", VIP4, 1002, 80, F_SYN), RA);
    cr_assert_str_eq(send_to(&lb, "other /24", "198.18.3.1", VIP4, 1003, 80, F_SYN), RB);
    cr_assert_eq(ev(&lb, XLB_EV_PERSIST_HIT), 2);
    /* Off: the table decides. */
    persist(&lb, vs, 0, 24, 64, 0);
    cr_assert_str_eq(send_to(&lb, "persistence off", "198.18.1.1", VIP4, 1004, 80, F_SYN), RB);
    xt_lb_close(&lb);
}

/* An entry older than the timeout is ignored and replaced; a new
 * connection within it restarts the timer. */
Test(persist, expiry_and_timer_restart)
{
    struct xlb_persist_key k = pkey(XLB_PERSIST_GROUP_OWN, "198.18.1.0");
    struct xlb_persist_value v;
    struct xt_lb lb;
    uint32_t vs, a, b;
    uint64_t now, old;

    xt_lb_open(&lb, NULL);
    vs = web(&lb, &a, &b);
    k.group |= vs;
    persist(&lb, vs, 60, 24, 64, 0);
    cr_assert_str_eq(send_to(&lb, "first", "198.18.1.1", VIP4, 1000, 80, F_SYN), RA);
    xt_table_all(&lb, vs, b, 13);

    /* 50 s old: fresh; the new connection restarts the timer. */
    cr_assert_eq(bpf_map_lookup_elem(lb.m->persist, &k, &v), 0, "no entry for the client");
    cr_assert_eq(v.real_id, a);
    now = xlb_dp_clock_ns();
    old = v.last_ns = now - 50 * NS;
    cr_assert_eq(bpf_map_update_elem(lb.m->persist, &k, &v, BPF_EXIST), 0);
    cr_assert_str_eq(send_to(&lb, "50 s later", "198.18.1.1", VIP4, 1001, 80, F_SYN), RA);
    cr_assert_eq(bpf_map_lookup_elem(lb.m->persist, &k, &v), 0);
    cr_assert_gt(v.last_ns, old + 45 * NS, "the timer did not restart (%llu s old)",
                 (unsigned long long)((now - v.last_ns) / NS));

    /* 61 s old: expired; the table's real, recorded in the entry. */
    v.last_ns = xlb_dp_clock_ns() - 61 * NS;
    cr_assert_eq(bpf_map_update_elem(lb.m->persist, &k, &v, BPF_EXIST), 0);
    cr_assert_str_eq(send_to(&lb, "61 s later", "198.18.1.1", VIP4, 1002, 80, F_SYN), RB);
    cr_assert_eq(bpf_map_lookup_elem(lb.m->persist, &k, &v), 0);
    cr_assert_eq(v.real_id, b);
    cr_assert_str_eq(send_to(&lb, "then", "198.18.1.1", VIP4, 1003, 80, F_SYN), RB);
    /* Established flows are the connection table's: not affected. */
    cr_assert_str_eq(send_to(&lb, "old flow", "198.18.1.1", VIP4, 1000, 80, F_ACK), RA);
    xt_lb_close(&lb);
}

/* An entry naming a real that is drained, halted or down is ignored. */
Test(persist, ignored_when_the_real_takes_no_new_flows)
{
    static const uint32_t flags[] = { XLB_REAL_F_DRAIN, XLB_REAL_F_HALT, XLB_REAL_F_DOWN };

    for (size_t i = 0; i < XT_ARRAY_SIZE(flags); i++) {
        struct xlb_err e = { "" };
        struct xt_lb lb;
        uint32_t vs, a, b;

        xt_lb_open(&lb, NULL);
        vs = web(&lb, &a, &b);
        persist(&lb, vs, 600, 32, 128, 0);
        cr_assert_str_eq(send_to(&lb, "first", "198.18.1.1", VIP4, 1000, 80, F_SYN), RA);
        xt_table_all(&lb, vs, b, 13);
        cr_assert_eq(xlb_real_update(lb.m, a, flags[i], 0, NULL, &e), 0, "%s", e.msg);
        cr_assert_str_eq(send_to(&lb, "real marked", "198.18.1.1", VIP4, 1001, 80, F_SYN), RB,
                         "flag 0x%x", flags[i]);
        cr_assert_str_eq(send_to(&lb, "flow stays", "198.18.1.1", VIP4, 1000, 80, F_ACK), RA);
        xt_lb_close(&lb);
    }
}

/* A real removed and added again (another slot, another generation) is
 * still the client's real: entries name reals by address. */
Test(persist, real_added_again)
{
    struct xt_lb lb;
    uint32_t vs, a, b, a2;

    xt_lb_open(&lb, NULL);
    vs = web(&lb, &a, &b);
    persist(&lb, vs, 600, 32, 128, 0);
    cr_assert_str_eq(send_to(&lb, "first", "198.18.1.1", VIP4, 1000, 80, F_SYN), RA);
    xt_table_all(&lb, vs, b, 13);
    xt_real_del(&lb, vs, RA);
    cr_assert_str_eq(send_to(&lb, "real gone", "198.18.1.2", VIP4, 1000, 80, F_SYN), RB);
    xt_real(&lb, vs, RC, 1);
    a2 = xt_real(&lb, vs, RA, 1);
    cr_assert_neq(a2, a, "the test needs another slot");
    /* The entry of 198.18.1.1 still names RA (nobody overwrote it). */
    cr_assert_str_eq(send_to(&lb, "real back", "198.18.1.1", VIP4, 1001, 80, F_SYN), RA);
    xt_lb_close(&lb);
}

/* Port following: services of one address in one group share entries, each
 * resolving the real's address to its own real; a service of its own
 * group does not follow. */
Test(persist, port_following)
{
    struct xt_lb lb;
    uint32_t http, https, other, ids[2];

    xt_lb_open(&lb, NULL);
    http = xt_service(&lb, "http", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    https = xt_service(&lb, "https", VIP4, 443, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    other = xt_service(&lb, "other", VIP4, 8080, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, http, xt_real(&lb, http, RA, 1), 13);
    ids[0] = xt_real(&lb, https, RB, 1);
    ids[1] = xt_real(&lb, https, RA, 1);
    xt_table_all(&lb, https, ids[0], 13);
    xt_table_all(&lb, other, xt_real(&lb, other, RB, 1), 13);
    xt_real(&lb, other, RA, 1);
    persist(&lb, http, 600, 32, 128, 7);
    persist(&lb, https, 600, 32, 128, 7);
    persist(&lb, other, 600, 32, 128, 0);

    cr_assert_str_eq(send_to(&lb, "http", "198.18.1.1", VIP4, 1000, 80, F_SYN), RA);
    cr_assert_str_eq(send_to(&lb, "https follows", "198.18.1.1", VIP4, 1001, 443, F_SYN), RA);
    cr_assert_str_eq(send_to(&lb, "other group", "198.18.1.1", VIP4, 1002, 8080, F_SYN), RB);
    cr_assert_str_eq(send_to(&lb, "https, other client", "198.18.1.2", VIP4, 1003, 443, F_SYN),
                     RB);
    /* And back: the https client's real is followed by http, which has no
     * RB: the table decides there. */
    cr_assert_str_eq(send_to(&lb, "http, no such real", "198.18.1.2", VIP4, 1004, 80, F_SYN),
                     RA);
    xt_lb_close(&lb);
}

Test(persist, bad_settings_are_refused)
{
    struct xlb_persist_spec p = { .timeout_s = 59, .netmask4 = 32, .netmask6 = 128 };
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t vs, a, b;

    xt_lb_open(&lb, NULL);
    vs = web(&lb, &a, &b);
    cr_assert_eq(xlb_persist_set(lb.m, vs, &p, &e), -EINVAL);
    cr_assert(strstr(e.msg, "web") && strstr(e.msg, "59"), "message: %s", e.msg);
    p.timeout_s = 604801;
    cr_assert_eq(xlb_persist_set(lb.m, vs, &p, &e), -EINVAL);
    p.timeout_s = 604800;
    p.netmask4 = 33;
    cr_assert_eq(xlb_persist_set(lb.m, vs, &p, &e), -EINVAL);
    p.netmask4 = 32;
    p.group = XLB_PERSIST_GROUP_MAX + 1;
    cr_assert_eq(xlb_persist_set(lb.m, vs, &p, &e), -EINVAL);
    p.group = 0;
    cr_assert_eq(xlb_persist_set(lb.m, vs, &p, &e), 0, "%s", e.msg);
    xt_lb_close(&lb);
}

/* ---- flood mode ---- */

TestSuite(flood, .init = xt_env_setup);

/* Start this CPU's (every CPU's) one-second window now with n flows. */
static void flood_window(struct xt_lb *lb, uint64_t start, uint64_t n)
{
    int ncpu = libbpf_num_possible_cpus();
    struct xlb_flood *w = calloc((size_t)ncpu, sizeof(*w));
    uint32_t zero = 0;

    cr_assert_not_null(w);
    for (int c = 0; c < ncpu; c++)
        w[c] = (struct xlb_flood){ .window_ns = start, .new_flows = n };
    cr_assert_eq(bpf_map_update_elem(lb->m->flood, &zero, w, BPF_ANY), 0);
    free(w);
}

static bool has_flow(struct xt_lb *lb, const struct pkt_spec *s)
{
    struct xlb_flow_value v;

    return xt_flow_get(lb, s, &v);
}

/*
 * Above the threshold in a window, new flows are not recorded, still
 * forwarded and counted; a sequence service places them by the flow hash,
 * so every packet of such a flow meets the same real.  A new window
 * records flows again.
 */
Test(flood, no_insert_above_the_threshold)
{
    static const char *const reals[3] = { RA, RB, RC };
    struct xlb_dp_config c = { .flood_threshold = 3 };
    struct xlb_err e = { "" };
    struct xt_lb lb;
    struct pkt_spec s;
    uint32_t vs, ids[3], t[3];
    int cpus[1];

    xt_allowed_cpus(cpus, 1);
    xt_pin_cpu(cpus[0]);
    xt_lb_open(&lb, NULL);
    vs = xt_service_f(&lb, "seq", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13, XLB_VS_F_SEQ);
    for (int i = 0; i < 3; i++)
        t[i] = ids[i] = xt_real(&lb, vs, reals[i], 1);
    xt_table(&lb, vs, t, 3);
    cr_assert_eq(xlb_config_set(lb.m, &c, &e), 0, "%s", e.msg);
    flood_window(&lb, xlb_dp_clock_ns(), 0);

    for (int i = 0; i < 3; i++) {
        s = tcp("198.18.1.1", VIP4, (uint16_t)(2000 + i), 80, F_SYN);
        cr_assert_eq(run(&lb, "below", &s), XDP_TX);
        cr_assert(has_flow(&lb, &s), "flow %d below the threshold not recorded", i);
    }
    for (int i = 3; i < 6; i++) {
        struct xlb_flow_key k;
        const char *want;
        char first[64];

        s = tcp("198.18.1.1", VIP4, (uint16_t)(2000 + i), 80, F_SYN);
        cr_assert_eq(run(&lb, "above", &s), XDP_TX);
        snprintf(first, sizeof(first), "%s", dest());
        cr_assert(!has_flow(&lb, &s), "flow %d above the threshold recorded", i);
        k = xt_flow_key(&s);
        want = reals[xlb_flow_hash(&k) % 3];
        cr_assert_str_eq(first, want, "flow %d: not placed by its hash", i);
        s.tcp_flags = F_ACK;
        cr_assert_eq(run(&lb, "above, next packet", &s), XDP_TX);
        cr_assert_str_eq(dest(), first, "flow %d moved between its packets", i);
    }
    cr_assert_eq(ev(&lb, XLB_EV_FLOOD_NO_INSERT), 6);
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 9);

    /* The window is over: recorded again.  Off: recorded whatever the rate. */
    flood_window(&lb, xlb_dp_clock_ns() - 2 * NS, 100);
    s = tcp("198.18.1.1", VIP4, 3000, 80, F_SYN);
    cr_assert_eq(run(&lb, "new window", &s), XDP_TX);
    cr_assert(has_flow(&lb, &s), "not recorded in a new window");
    c.flood_threshold = 0;
    cr_assert_eq(xlb_config_set(lb.m, &c, &e), 0, "%s", e.msg);
    flood_window(&lb, xlb_dp_clock_ns(), 1000);
    s = tcp("198.18.1.1", VIP4, 3001, 80, F_SYN);
    cr_assert_eq(run(&lb, "off", &s), XDP_TX);
    cr_assert(has_flow(&lb, &s), "not recorded with flood mode off");
    cr_assert_eq(ev(&lb, XLB_EV_FLOOD_NO_INSERT), 6);
    xt_lb_close(&lb);
}

/* Settings from the load options, kept by xlb_config_get. */
Test(flood, settings_at_load)
{
    struct xlb_load_opts o = xt_lb_default_opts();
    struct xlb_dp_config c;
    struct xt_lb lb;

    o.flood_threshold = 5000;
    o.udp_idle_timeout_s = 45;
    xt_lb_open(&lb, &o);
    cr_assert_eq(xlb_config_get(lb.m, &c), 0);
    cr_assert(c.flood_threshold == 5000 && c.udp_idle_timeout_s == 45, "%u %u",
              c.flood_threshold, c.udp_idle_timeout_s);
    xt_lb_close(&lb);
    xt_lb_open(&lb, NULL);
    cr_assert_eq(xlb_config_get(lb.m, &c), 0);
    cr_assert(c.flood_threshold == 0 && c.udp_idle_timeout_s == XLB_UDP_IDLE_DEFAULT_S);
    xt_lb_close(&lb);
}

/* ---- UDP idle timeout ---- */

TestSuite(udp_idle, .init = xt_env_setup);

static void age_flow(struct xt_lb *lb, const struct pkt_spec *s, uint64_t age_ns)
{
    struct xlb_flow_key k = xt_flow_key(s);
    struct xlb_flow_value v;

    cr_assert_eq(bpf_map_lookup_elem(lb->m->conns, &k, &v), 0, "no flow to age");
    v.last_seen_ns = xlb_dp_clock_ns() - age_ns;
    cr_assert_eq(bpf_map_update_elem(lb->m->conns, &k, &v, BPF_EXIST), 0);
}

Test(udp_idle, expired_flows_are_placed_again)
{
    struct xlb_dp_config c = { .udp_idle_timeout_s = 10 };
    struct xlb_err e = { "" };
    struct pkt_spec u = xt_spec("198.18.1.1", VIP4, IPPROTO_UDP, 5000, 53, 20);
    struct pkt_spec t = tcp("198.18.1.1", VIP4, 5000, 80, F_SYN);
    struct xt_lb lb;
    uint32_t us, ts, ua, ub, ta, tb;

    xt_lb_open(&lb, NULL);
    us = xt_service(&lb, "dns", VIP4, 53, IPPROTO_UDP, XLB_FWD_IPIP, 13);
    ts = xt_service(&lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    ua = xt_real(&lb, us, RA, 1);
    ub = xt_real(&lb, us, RB, 1);
    ta = xt_real(&lb, ts, RA, 1);
    tb = xt_real(&lb, ts, RB, 1);
    xt_table_all(&lb, us, ua, 13);
    xt_table_all(&lb, ts, ta, 13);
    cr_assert_eq(run(&lb, "udp", &u), XDP_TX);
    cr_assert_eq(run(&lb, "tcp", &t), XDP_TX);
    xt_table_all(&lb, us, ub, 13);
    xt_table_all(&lb, ts, tb, 13);

    age_flow(&lb, &u, 29 * NS);
    cr_assert_eq(run(&lb, "udp, 29 s idle", &u), XDP_TX);
    cr_assert_str_eq(dest(), RA, "a UDP flow idle 29 s (default 30) was placed again");
    age_flow(&lb, &u, 31 * NS);
    cr_assert_eq(run(&lb, "udp, 31 s idle", &u), XDP_TX);
    cr_assert_str_eq(dest(), RB, "a UDP flow idle 31 s stayed");
    cr_assert_eq(ev(&lb, XLB_EV_UDP_IDLE), 1);
    cr_assert_eq(xt_vs_stats(&lb, us).new_flows, 2);

    age_flow(&lb, &t, 3600 * NS);
    t.tcp_flags = F_ACK;
    cr_assert_eq(run(&lb, "tcp, an hour idle", &t), XDP_TX);
    cr_assert_str_eq(dest(), RA, "a TCP flow was placed again");

    /* Another timeout at run time. */
    cr_assert_eq(xlb_config_set(lb.m, &c, &e), 0, "%s", e.msg);
    xt_table_all(&lb, us, ua, 13);
    age_flow(&lb, &u, 9 * NS);
    cr_assert_eq(run(&lb, "udp, 9 s idle", &u), XDP_TX);
    cr_assert_str_eq(dest(), RB);
    age_flow(&lb, &u, 11 * NS);
    cr_assert_eq(run(&lb, "udp, 11 s idle", &u), XDP_TX);
    cr_assert_str_eq(dest(), RA);
    c.udp_idle_timeout_s = XLB_UDP_IDLE_MAX_S + 1;
    cr_assert_eq(xlb_config_set(lb.m, &c, &e), -EINVAL);
    xt_lb_close(&lb);
}

/* ---- ICMP too big ---- */

TestSuite(icmp_too_big, .init = xt_env_setup);

/*
 * An ICMP error from `router` to the VIP about a packet the real sent from
 * vip:vport to client:cport, as the router quotes it: the IP header and
 * the first 8 bytes of TCP.  mtu goes into the v4 next-hop MTU field or
 * the v6 MTU field.
 */
static struct pkt_spec too_big(const char *router, const char *vip, uint16_t vport,
                               const char *client, uint16_t cport, uint32_t mtu,
                               uint8_t *quote)
{
    uint8_t frame[XT_FRAME_MAX];
    struct pkt_spec q = tcp(vip, client, vport, cport, F_ACK), s;
    struct pkt_view v;
    size_t n;
    bool v6 = strchr(vip, ':') != NULL;

    q.frag_off = v6 ? 0 : PKT_DF;
    q.payload_len = 1400;
    n = xt_build(&q, frame);
    cr_assert_eq(pkt_parse(frame, n, &v), 0);
    memcpy(quote, frame + v.l3_off, v.l3_len + 8);
    s = xt_spec(router, vip, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, (uint16_t)(mtu >> 16),
                (uint16_t)mtu, v.l3_len + 8);
    s.icmp_type = v6 ? 2 : 3;
    s.icmp_code = v6 ? 0 : 4;
    s.payload = quote;
    return s;
}

static void check_encap_to(const char *what, const char *real, bool gue, size_t ilen)
{
    static uint8_t exp[XT_FRAME_MAX];
    struct xt_entropy ent;
    uint8_t dmac[6];
    size_t elen;

    cr_assert_eq(out.verdict, XDP_TX, "%s: verdict %s", what, xt_verdict_name(out.verdict));
    xt_real_mac(real, dmac);
    elen = xt_expect_encap(in, ilen, out.data, out.len, real, gue, dmac, xt_mac_if0, exp, &ent);
    xt_assert_frame(what, in, ilen, exp, elen, out.data, out.len);
}

static void too_big_case(const char *vip, const char *client, const char *router,
                         const char *ra, const char *rb, uint8_t method, uint32_t mtu_ok,
                         uint32_t mtu_low)
{
    static uint8_t quote[128];
    struct pkt_spec s;
    struct xt_lb lb;
    uint32_t vs, a, b;
    size_t len;
    bool gue = method == XLB_FWD_GUE;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "web", vip, 80, IPPROTO_TCP, method, 13);
    a = xt_real(&lb, vs, ra, 1);
    b = xt_real(&lb, vs, rb, 1);
    xt_table_all(&lb, vs, a, 13);
    s = tcp(client, vip, 40000, 80, F_SYN);
    cr_assert_eq(run(&lb, "the flow", &s), XDP_TX);
    xt_table_all(&lb, vs, b, 13);

    s = too_big(router, vip, 80, client, 40000, mtu_ok, quote);
    len = xt_build(&s, in);
    xt_run_ok("too big", lb.prog, in, len, &out);
    check_encap_to("too big, to the flow's real", ra, gue, len);
    if (gue && strchr(ra, ':')) {
        struct pkt_view v;

        cr_assert_eq(pkt_parse(out.data, out.len, &v), 0);
        cr_assert(pkt_l4_csum_ok(AF_INET6, out.data + v.l3_off, v.l3_len + v.l4_len),
                  "outer UDP checksum over IPv6 is wrong");
    }
    cr_assert_eq(ev(&lb, XLB_EV_ICMP_TOO_BIG), 1);
    cr_assert_eq(ev(&lb, XLB_EV_ICMP_LOW_MTU), 0);

    s = too_big(router, vip, 80, client, 40000, mtu_low, quote);
    len = xt_build(&s, in);
    xt_run_ok("too big, low MTU", lb.prog, in, len, &out);
    check_encap_to("too big, low MTU", ra, gue, len);
    cr_assert_eq(ev(&lb, XLB_EV_ICMP_LOW_MTU), 1);

    /* No flow recorded: where its hash points (the table names b only). */
    s = too_big(router, vip, 80, client, 40001, mtu_ok, quote);
    len = xt_build(&s, in);
    xt_run_ok("too big, unknown flow", lb.prog, in, len, &out);
    check_encap_to("too big, unknown flow", rb, gue, len);
    /* Not about a service: to the stack. */
    s = too_big(router, vip, 81, client, 40000, mtu_ok, quote);
    len = xt_build(&s, in);
    xt_run_ok("too big, no service", lb.prog, in, len, &out);
    cr_assert_eq(out.verdict, XDP_PASS);
    xt_assert_frame("too big, no service", in, len, in, len, out.data, out.len);
    cr_assert_eq(reason(&lb, XLB_R_PASS_ICMP_NO_FLOW), 1);
    cr_assert_eq(ev(&lb, XLB_EV_ICMP_TOO_BIG), 3);
    xt_lb_close(&lb);
}

Test(icmp_too_big, frag_needed_v4_ipip)
{
    too_big_case(VIP4, "198.18.1.1", "198.18.9.1", RA, RB, XLB_FWD_IPIP, 1400, 500);
}

Test(icmp_too_big, frag_needed_v4_gue_over_v6)
{
    too_big_case(VIP4, "198.18.1.1", "198.18.9.1", R6A, R6B, XLB_FWD_GUE, 576, 575);
}

Test(icmp_too_big, packet_too_big_v6_gue)
{
    too_big_case(VIP6, "fd00:1::1", "fd00:9::1", R6A, R6B, XLB_FWD_GUE, 1280, 1279);
}

Test(icmp_too_big, packet_too_big_v6_ipip)
{
    too_big_case(VIP6, "fd00:1::1", "fd00:9::1", R6A, R6B, XLB_FWD_IPIP, 1400, 1000);
}

/* ---- fragments ---- */

TestSuite(fragments, .init = xt_env_setup);

/* The fragments of one datagram: first (with the UDP header), middle, last. */
static void send_datagram(struct xt_lb *lb, const char *client, const char *vip,
                          uint16_t ip_id, char reals[3][64])
{
    static const uint16_t offs[3] = { PKT_MF, PKT_MF | 10, 20 };

    for (int i = 0; i < 3; i++) {
        struct pkt_spec s = xt_spec(client, vip, IPPROTO_UDP, 7000, 53, 80);

        s.ip_id = ip_id;
        s.frag_off = offs[i];
        cr_assert_eq(run(lb, "fragment", &s), XDP_TX, "fragment %d: %s", i,
                     xt_verdict_name(out.verdict));
        snprintf(reals[i], 64, "%s", dest());
    }
}

static void fragments_case(const char *vip, const char *fmt, const char *const *reals)
{
    struct xt_lb lb;
    uint32_t vs, t[13];
    bool seen[5] = { false };
    int distinct = 0;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "dns", vip, 53, IPPROTO_UDP, XLB_FWD_IPIP, 13);
    for (int i = 0; i < 5; i++)
        xt_real(&lb, vs, reals[i], 1);
    xt_rebuild(&lb, vs);
    cr_assert_eq(xt_table_read(&lb, vs, t, 13, NULL), 13);
    for (int c = 1; c <= 24; c++) {
        char client[64], got[3][64];
        struct pkt_spec s;
        struct xlb_flow_key k;
        struct xlb_real r;
        char want[64];

        snprintf(client, sizeof(client), fmt, c);
        send_datagram(&lb, client, vip, (uint16_t)(100 + c), got);
        cr_assert(!strcmp(got[0], got[1]) && !strcmp(got[1], got[2]),
                  "client %s: fragments to %s, %s, %s", client, got[0], got[1], got[2]);
        /* the real the address hash names */
        s = xt_spec(client, vip, IPPROTO_UDP, 0, 0, 0);
        k = xt_flow_key(&s);
        cr_assert_eq(xlb_real_get(lb.m, t[xlb_flow_hash(&k) % 13], &r), 0);
        inet_ntop(r.family == XLB_FAMILY_V4 ? AF_INET : AF_INET6, r.addr.addr_be, want,
                  sizeof(want));
        cr_assert_str_eq(got[0], want, "client %s", client);
        s = xt_spec(client, vip, IPPROTO_UDP, 7000, 53, 0);
        cr_assert(!has_flow(&lb, &s), "a fragment was recorded as a flow");
        for (int i = 0; i < 5; i++)
            if (!strcmp(got[0], reals[i]) && !seen[i]) {
                seen[i] = true;
                distinct++;
            }
    }
    cr_assert_geq(distinct, 2, "24 clients all went to one real");
    cr_assert_eq(ev(&lb, XLB_EV_FRAGMENT), 72);
    cr_assert_eq(xt_vs_stats(&lb, vs).packets, 72);
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, 0);
    xt_lb_close(&lb);
}

Test(fragments, one_datagram_one_real_v4)
{
    static const char *const reals[] = { RA, RB, RC, "198.18.0.44", "198.18.0.45" };

    fragments_case(VIP4, "198.18.1.%d", reals);
}

Test(fragments, one_datagram_one_real_v6)
{
    static const char *const reals[] = { "fd00::31", "fd00::32", "fd00::33", "fd00::34",
                                         "fd00::35" };

    fragments_case(VIP6, "fd00:1::%x", reals);
}

/* Several services on one address and protocol: fragments go to the one of
 * the lowest port, whatever port the first fragment names; when it goes,
 * to the next one. */
Test(fragments, service_of_the_lowest_port)
{
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t low, high;
    struct pkt_spec s;

    xt_lb_open(&lb, NULL);
    high = xt_service(&lb, "high", VIP4, 5353, IPPROTO_UDP, XLB_FWD_IPIP, 13);
    low = xt_service(&lb, "low", VIP4, 53, IPPROTO_UDP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, high, xt_real(&lb, high, RB, 1), 13);
    xt_table_all(&lb, low, xt_real(&lb, low, RA, 1), 13);
    s = xt_spec("198.18.1.1", VIP4, IPPROTO_UDP, 7000, 5353, 40);
    s.frag_off = PKT_MF;
    cr_assert_eq(run(&lb, "first fragment to 5353", &s), XDP_TX);
    cr_assert_str_eq(dest(), RA);
    cr_assert_eq(xlb_service_del(lb.m, "low", &e), 0, "%s", e.msg);
    cr_assert_eq(run(&lb, "after the low port's service is gone", &s), XDP_TX);
    cr_assert_str_eq(dest(), RB);
    cr_assert_eq(xlb_service_del(lb.m, "high", &e), 0, "%s", e.msg);
    xt_service(&lb, "tcp", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    cr_assert_eq(run(&lb, "no UDP service left", &s), XDP_PASS);
    cr_assert_eq(reason(&lb, XLB_R_PASS_FRAGMENT), 1);
    xt_lb_close(&lb);
}
