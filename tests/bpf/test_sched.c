/*
 * What the control plane's schedulers and real-server states rely on in
 * the data plane: sequence tables walked by a per-CPU counter, tables
 * indexed by the source address, the "no usable real" table, reals marked
 * RESCHED or DRAIN, flows closed by FIN or RST and reopened by a SYN, the
 * active-connection scan and its clock, and services on several ports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "xlb_hash.h"

#define CLIENT4 "198.18.1.1"
#define VIP4 "198.18.100.1"
#define VIP4_B "198.18.100.2"

#define RA "198.18.0.41"
#define RB "198.18.0.42"
#define RC "198.18.0.43"
#define RD "198.18.0.44"

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static const char *const reals3[] = { RA, RB, RC };

/* Index in reals[] of the real out went to (the outer destination); fails
 * the test unless out is an encapsulated frame sent to one of them. */
static int real_of(const char *what, const struct xt_out *out, const char *const *reals, int n)
{
    struct pkt_view v;
    struct xlb_addr dst, a;

    cr_assert_eq(out->verdict, XDP_TX, "%s: verdict %s", what, xt_verdict_name(out->verdict));
    cr_assert_eq(pkt_parse(out->data, out->len, &v), 0, "%s: output not parsable", what);
    cr_assert_eq(v.family, AF_INET, "%s: the output is not IPv4", what);
    memset(&dst, 0, sizeof(dst));
    memcpy(dst.addr_be, out->data + v.l3_off + 16, 4);
    for (int i = 0; i < n; i++) {
        xt_addr(reals[i], &a);
        if (!memcmp(&a, &dst, sizeof(a)))
            return i;
    }
    cr_assert_fail("%s: sent to %s, which is none of the reals", what,
                   inet_ntoa((struct in_addr){ dst.addr_be[0] }));
    return -1;
}

/* Run one frame of s; returns the verdict, the output in *out. */
static int send_spec(struct xt_lb *lb, const char *what, const struct pkt_spec *s,
                     struct xt_out *out)
{
    static uint8_t in[XT_FRAME_MAX];
    size_t len = xt_build(s, in);

    xt_run_ok(what, lb->prog, in, len, out);
    return out->verdict;
}

static struct pkt_spec tcp_spec(const char *client, const char *vip, uint16_t sport,
                                uint16_t dport, uint8_t flags)
{
    struct pkt_spec s = xt_spec(client, vip, IPPROTO_TCP, sport, dport,
                                flags & (F_SYN | F_RST | F_FIN) ? 0 : 32);

    s.tcp_flags = flags;
    return s;
}

/* One TCP segment client:sport -> vip:80; returns the index of its real. */
static int send_tcp(struct xt_lb *lb, const char *what, uint16_t sport, uint8_t flags,
                    const char *const *reals, int n)
{
    static struct xt_out out;
    struct pkt_spec s = tcp_spec(CLIENT4, VIP4, sport, 80, flags);

    send_spec(lb, what, &s, &out);
    return real_of(what, &out, reals, n);
}

static struct xlb_flow_value flow_of(struct xt_lb *lb, uint16_t sport)
{
    struct pkt_spec s = tcp_spec(CLIENT4, VIP4, sport, 80, F_ACK);
    struct xlb_flow_value v;

    cr_assert(xt_flow_get(lb, &s, &v), "no connection-table entry for port %u", sport);
    return v;
}

static struct xlb_real real_entry(struct xt_lb *lb, uint32_t id)
{
    struct xlb_real r;

    cr_assert_eq(xlb_real_get(lb->m, id, &r), 0, "xlb_real_get %u", id);
    return r;
}

static void real_flags(struct xt_lb *lb, uint32_t id, uint32_t set, uint32_t clear)
{
    struct xlb_err e = { "" };

    cr_assert_eq(xlb_real_update(lb->m, id, set, clear, NULL, &e), 0, "xlb_real_update: %s",
                 e.msg);
}

/* xlb_rr[vs] of every possible CPU into pos[] (room for 256). */
static int rr_positions(struct xt_lb *lb, uint32_t vs, uint32_t *pos)
{
    int ncpu = libbpf_num_possible_cpus();
    uint64_t v[256];            /* per-CPU values are 8-byte aligned */

    cr_assert(ncpu > 0 && ncpu <= 256, "%d possible CPUs", ncpu);
    cr_assert_eq(bpf_map_lookup_elem(lb->m->rr, &vs, v), 0);
    for (int c = 0; c < ncpu; c++)
        pos[c] = (uint32_t)v[c];
    return ncpu;
}

/* ---- sequence tables ---- */

TestSuite(sel_seq, .init = xt_env_setup);

/*
 * A sequence table is walked in order by new flows, one step each, on each
 * CPU from its own position; established flows do not move the position;
 * a new table (of any length) is walked from where the position is.
 */
Test(sel_seq, walks_the_table_in_order_per_cpu)
{
    enum { N = 23 };
    struct xt_lb lb;
    uint32_t vs, id[3], table[5], pos[256], got[3] = { 0 }, want[3] = { 0 };
    const int seq[5] = { 0, 1, 0, 2, 0 };   /* A B A C A */
    int cpus[2], ncpus = xt_allowed_cpus(cpus, 2), ncpu;
    struct xlb_counters c;

    xt_pin_cpu(cpus[0]);
    xt_lb_open(&lb, NULL);
    vs = xt_service_f(&lb, "seq", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13, XLB_VS_F_SEQ);
    for (int i = 0; i < 3; i++)
        id[i] = xt_real(&lb, vs, reals3[i], 1);
    for (int i = 0; i < 5; i++)
        table[i] = id[seq[i]];
    xt_table(&lb, vs, table, 5);

    for (int i = 0; i < N; i++) {
        char what[64];
        int r;

        snprintf(what, sizeof(what), "new flow %d", i);
        r = send_tcp(&lb, what, (uint16_t)(10000 + i), F_SYN, reals3, 3);
        cr_assert_eq(r, seq[i % 5], "new flow %d went to %s, the sequence says %s", i,
                     reals3[r], reals3[seq[i % 5]]);
        got[r]++;
        want[seq[i % 5]]++;
    }
    for (int i = 0; i < 3; i++) {
        c = xt_real_stats(&lb, id[i]);
        cr_assert(got[i] == want[i] && c.new_flows == want[i],
                  "real %s: %u flows seen, %llu counted, the sequence gives %u", reals3[i],
                  got[i], (unsigned long long)c.new_flows, want[i]);
    }
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, N);

    /* Established flows keep their real and leave the position alone. */
    cr_assert_eq(send_tcp(&lb, "flow 0 again", 10000, F_ACK, reals3, 3), seq[0]);
    cr_assert_eq(send_tcp(&lb, "flow 1 again", 10001, F_ACK, reals3, 3), seq[1]);
    ncpu = rr_positions(&lb, vs, pos);
    for (int cpu = 0; cpu < ncpu; cpu++)
        cr_assert_eq(pos[cpu], cpu == cpus[0] ? (uint32_t)N : 0,
                     "CPU %d is at position %u of the sequence", cpu, pos[cpu]);
    cr_assert_eq(send_tcp(&lb, "new flow N", 10000 + N, F_SYN, reals3, 3), seq[N % 5]);

    /* Another CPU walks the sequence from its own start. */
    if (ncpus > 1) {
        xt_pin_cpu(cpus[1]);
        cr_assert_eq(send_tcp(&lb, "first flow on CPU 2", 20000, F_SYN, reals3, 3), seq[0]);
        cr_assert_eq(send_tcp(&lb, "second flow on CPU 2", 20001, F_SYN, reals3, 3), seq[1]);
        rr_positions(&lb, vs, pos);
        cr_assert_eq(pos[cpus[1]], 2);
        cr_assert_eq(pos[cpus[0]], N + 1);
        xt_pin_cpu(cpus[0]);
    }

    /* A new sequence of two (not a prime): C B, from position N + 1. */
    table[0] = id[2];
    table[1] = id[1];
    xt_table(&lb, vs, table, 2);
    for (int i = 0; i < 4; i++) {
        int want_r = (N + 1 + i) % 2 ? 1 : 2;

        cr_assert_eq(send_tcp(&lb, "new sequence", (uint16_t)(30000 + i), F_SYN, reals3, 3),
                     want_r, "flow %d on the new sequence", i);
    }
    xt_lb_close(&lb);
}

/* Over whole turns of a weighted sequence each real gets exactly the
 * number of entries it has. */
Test(sel_seq, shares_are_exact_over_full_turns)
{
    enum { LEN = 6, TURNS = 5 };
    const int seq[LEN] = { 0, 1, 0, 2, 1, 0 };  /* weights 3 2 1 */
    struct xt_lb lb;
    uint32_t vs, id[3], table[LEN], got[3] = { 0 };
    int cpu;

    xt_allowed_cpus(&cpu, 1);
    xt_pin_cpu(cpu);
    xt_lb_open(&lb, NULL);
    vs = xt_service_f(&lb, "wrr", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0, XLB_VS_F_SEQ);
    for (int i = 0; i < 3; i++)
        id[i] = xt_real(&lb, vs, reals3[i], 1);
    for (int i = 0; i < LEN; i++)
        table[i] = id[seq[i]];
    xt_table(&lb, vs, table, LEN);
    for (int i = 0; i < LEN * TURNS; i++)
        got[send_tcp(&lb, "flow", (uint16_t)(1024 + i), F_SYN, reals3, 3)]++;
    cr_assert(got[0] == 3 * TURNS && got[1] == 2 * TURNS && got[2] == TURNS,
              "shares %u %u %u over %d turns, expected %d %d %d", got[0], got[1], got[2], TURNS,
              3 * TURNS, 2 * TURNS, TURNS);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(xt_real_stats(&lb, id[i]).new_flows, got[i]);
    xt_lb_close(&lb);
}

/* ---- source-hash tables ---- */

TestSuite(sel_src_hash, .init = xt_env_setup);

/*
 * A source-hash service sends every flow of a client, whatever its ports
 * and protocol, to the entry the client's address hashes to, and spreads
 * clients; each flow still has its own 5-tuple hash (stored in the flow
 * and carried in the GUE source port).  A plain service over the same
 * table spreads one client's flows by their 5-tuple.
 */
Test(sel_src_hash, one_client_one_real)
{
    enum { M = 7, CLIENTS = 40 };
    static struct xt_out out;
    const int tbl[M] = { 0, 1, 2, 0, 1, 2, 0 };
    struct xt_lb lb;
    struct xlb_err e = { "" };
    struct xlb_addr client;
    uint32_t sh, plain, id[3], table[M], used[3] = { 0 };
    uint16_t sports[10];
    unsigned plain_reals = 0;
    int want, r;

    xt_lb_open(&lb, NULL);
    sh = xt_service_f(&lb, "sh", VIP4, 80, IPPROTO_TCP, XLB_FWD_GUE, 0, XLB_VS_F_SRC_HASH);
    cr_assert_eq(xlb_vip_add(lb.m, sh, 53, IPPROTO_UDP, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_vip_add(lb.m, sh, 443, IPPROTO_TCP, &e), 0, "%s", e.msg);
    plain = xt_service(&lb, "plain", VIP4_B, 80, IPPROTO_TCP, XLB_FWD_GUE, 0);
    for (int i = 0; i < 3; i++)
        id[i] = xt_real(&lb, sh, reals3[i], 1);
    for (int i = 0; i < M; i++)
        table[i] = id[tbl[i]];
    xt_table(&lb, sh, table, M);

    xt_addr(CLIENT4, &client);
    want = tbl[xlb_src_hash(&client) % M];
    for (int i = 0; i < 16; i++) {
        struct pkt_spec s;
        struct xlb_flow_value v;
        struct xlb_flow_key k;
        struct xt_entropy ent;
        char what[80];

        if (i < 10)
            s = tcp_spec(CLIENT4, VIP4, (uint16_t)(1000 + 37 * i), 80, F_SYN);
        else if (i < 15)
            s = xt_spec(CLIENT4, VIP4, IPPROTO_UDP, (uint16_t)(2000 + i), 53, 20);
        else
            s = tcp_spec(CLIENT4, VIP4, 3000, 443, F_SYN);
        snprintf(what, sizeof(what), "%s flow %d of one client", i < 10 || i == 15 ? "tcp" :
                 "udp", i);
        send_spec(&lb, what, &s, &out);
        r = real_of(what, &out, reals3, 3);
        cr_assert_eq(r, want, "%s went to %s, its source hashes to %s", what, reals3[r],
                     reals3[want]);
        cr_assert(xt_flow_get(&lb, &s, &v), "%s: no flow entry", what);
        k = xt_flow_key(&s);
        cr_assert_eq(v.hash, xlb_flow_hash(&k), "%s: the flow keeps hash 0x%08x, not its "
                     "5-tuple hash", what, v.hash);
        ent = xt_entropy_of(what, out.data, out.len, true);
        cr_assert_eq(ent.sport, XT_SPORT_MIN + (xlb_flow_hash(&k) & 0x3fff),
                     "%s: GUE source port %u does not come from the 5-tuple hash", what,
                     ent.sport);
        if (i < 10)
            sports[i] = s.sport;
    }

    /* Other clients spread over the reals as their addresses hash. */
    for (int c = 0; c < CLIENTS; c++) {
        struct pkt_spec s;
        char src[32];

        snprintf(src, sizeof(src), "198.18.1.%d", 10 + c);
        xt_addr(src, &client);
        s = tcp_spec(src, VIP4, 5555, 80, F_SYN);
        send_spec(&lb, src, &s, &out);
        r = real_of(src, &out, reals3, 3);
        cr_assert_eq(r, tbl[xlb_src_hash(&client) % M], "client %s went to %s", src,
                     reals3[r]);
        used[r]++;
    }
    cr_assert(used[0] && used[1] && used[2], "%d clients used reals %u %u %u: not spread",
              CLIENTS, used[0], used[1], used[2]);

    /* The plain service over the same table: the 5-tuple decides. */
    for (int i = 0; i < 3; i++)
        id[i] = xt_real(&lb, plain, reals3[i], 1);
    for (int i = 0; i < M; i++)
        table[i] = id[tbl[i]];
    xt_table(&lb, plain, table, M);
    for (int i = 0; i < 10; i++) {
        struct pkt_spec s = tcp_spec(CLIENT4, VIP4_B, sports[i], 80, F_SYN);
        struct xlb_flow_key k = xt_flow_key(&s);

        send_spec(&lb, "plain", &s, &out);
        r = real_of("plain", &out, reals3, 3);
        cr_assert_eq(r, tbl[xlb_flow_hash(&k) % M], "plain flow %d went to %s", i, reals3[r]);
        plain_reals |= 1u << r;
    }
    cr_assert_neq(plain_reals & (plain_reals - 1), 0,
                  "ten flows of one client to the plain service all went to one real");
    xt_lb_close(&lb);
}

/* The table kind can change on a running service. */
Test(sel_src_hash, service_flags)
{
    struct xlb_service_spec bad = { .name = "both", .port = 80, .proto = IPPROTO_TCP,
                                    .method = XLB_FWD_IPIP,
                                    .flags = XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH };
    struct xlb_err e = { "" };
    struct xlb_service s;
    struct xt_lb lb;
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    xt_addr(VIP4_B, &bad.vip);
    bad.family = XLB_FAMILY_V4;
    cr_assert_eq(xlb_service_add(lb.m, &bad, NULL, &e), -EINVAL);
    cr_assert(strstr(e.msg, "both"), "message: %s", e.msg);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs, XLB_VS_F_SEQ, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_service_find(lb.m, "svc", NULL, &s), 0);
    cr_assert_eq(s.flags, XLB_VS_F_ACTIVE | XLB_VS_F_SEQ);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs, XLB_VS_F_SRC_HASH, 0, &e), -EINVAL);
    cr_assert(strstr(e.msg, "svc"), "message: %s", e.msg);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs, XLB_VS_F_SRC_HASH, XLB_VS_F_SEQ, &e), 0, "%s",
                 e.msg);
    cr_assert_eq(xlb_service_find(lb.m, "svc", NULL, &s), 0);
    cr_assert_eq(s.flags, XLB_VS_F_ACTIVE | XLB_VS_F_SRC_HASH);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs, 0, XLB_VS_F_ACTIVE, &e), -EINVAL);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs + 1, XLB_VS_F_SEQ, 0, &e), -ENOENT);
    cr_assert_eq(xlb_service_set_flags(lb.m, XLB_MAX_SERVICES, XLB_VS_F_SEQ, 0, &e), -ENOENT);
    cr_assert_eq(xlb_service_set_flags(lb.m, vs, 0, XLB_VS_F_SRC_HASH, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_service_find(lb.m, "svc", NULL, &s), 0);
    cr_assert_eq(s.flags, XLB_VS_F_ACTIVE);
    xt_lb_close(&lb);
}

/* ---- tables without a usable real ---- */

TestSuite(sel_empty, .init = xt_env_setup);

/* The one-slot empty table drops new flows as drop_no_real, in every table
 * kind; a new service starts with it. */
Test(sel_empty, one_empty_slot_drops)
{
    static const uint32_t flags[3] = { 0, XLB_VS_F_SEQ, XLB_VS_F_SRC_HASH };
    static struct xt_out out;
    const uint32_t empty = XLB_SEL_EMPTY;
    struct xlb_reason_counter rs[XLB_R_MAX];
    struct xt_lb lb;
    uint32_t vs[3], t[16];
    struct xlb_counters c;

    xt_lb_open(&lb, NULL);
    for (int i = 0; i < 3; i++) {
        struct pkt_spec s = tcp_spec(CLIENT4, VIP4, 4000, (uint16_t)(80 + i), F_SYN);
        char name[16];

        snprintf(name, sizeof(name), "svc%d", i);
        vs[i] = xt_service_f(&lb, name, VIP4, (uint16_t)(80 + i), IPPROTO_TCP, XLB_FWD_IPIP, 0,
                             flags[i]);
        cr_assert_eq(xt_table_read(&lb, vs[i], t, 16, NULL), 1, "a new service's table size");
        cr_assert_eq(t[0], XLB_SEL_EMPTY, "a new service's table");
        xt_real(&lb, vs[i], RA, 1);

        cr_assert_eq(send_spec(&lb, "new service", &s, &out), XDP_DROP,
                     "service %d before any table: %s", i, xt_verdict_name(out.verdict));
        xt_rebuild(&lb, vs[i]);
        s.sport = 4001;
        send_spec(&lb, "after a rebuild", &s, &out);
        cr_assert_eq(real_of("after a rebuild", &out, reals3, 3), 0);
        xt_table(&lb, vs[i], &empty, 1);
        s.sport = 4002;
        cr_assert_eq(send_spec(&lb, "empty table", &s, &out), XDP_DROP,
                     "service %d with the empty table: %s", i, xt_verdict_name(out.verdict));
        c = xt_vs_stats(&lb, vs[i]);
        cr_assert(c.packets == 3 && c.new_flows == 1, "service %d: %llu packets, %llu new "
                  "flows", i, (unsigned long long)c.packets, (unsigned long long)c.new_flows);
    }
    xt_reasons(lb.m->reasons, rs);
    cr_assert_eq(rs[XLB_R_DROP_NO_REAL].packets, 6);
    cr_assert_eq(rs[XLB_R_TX].packets, 3);
    xt_lb_close(&lb);
}

/* Any size from 1 to XLB_RING_MAX is a table; 0 and more are not. */
Test(sel_empty, table_sizes)
{
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t vs, t[6] = { 0 };

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 0);
    cr_assert_eq(xlb_sel_install(lb.m, vs, t, 6, &e), 0, "size 6: %s", e.msg);
    cr_assert_eq(xlb_sel_install(lb.m, vs, t, 0, &e), -EINVAL);
    cr_assert(strstr(e.msg, "size 0"), "message: %s", e.msg);
    cr_assert_eq(xlb_sel_install(lb.m, vs, NULL, XLB_RING_MAX + 1, &e), -EINVAL);
    cr_assert_eq(xlb_sel_install(lb.m, vs, NULL, XLB_RING_MAX, &e), 0, "largest: %s", e.msg);
    xt_lb_close(&lb);
}

/* ---- real-server states ---- */

TestSuite(real_state, .init = xt_env_setup);

/*
 * An established flow stays on its real when the table no longer names it;
 * with RESCHED set on the real its next packet is placed from the table,
 * over the old entry, and counted as a new flow; then it stays there.
 */
Test(real_state, resched_moves_established_flows)
{
    struct xt_lb lb;
    struct xlb_flow_value v;
    uint32_t vs, a, b;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    xt_table_all(&lb, vs, a, 13);
    cr_assert_eq(send_tcp(&lb, "SYN", 7000, F_SYN, reals3, 3), 0);
    xt_table_all(&lb, vs, b, 13);
    cr_assert_eq(send_tcp(&lb, "ACK, table names B", 7000, F_ACK, reals3, 3), 0,
                 "without RESCHED the flow must stay on A");
    cr_assert_eq(flow_of(&lb, 7000).real_id, a);

    real_flags(&lb, a, XLB_REAL_F_RESCHED, 0);
    cr_assert_eq(real_entry(&lb, a).flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_RESCHED);
    cr_assert_eq(send_tcp(&lb, "ACK, A marked RESCHED", 7000, F_ACK, reals3, 3), 1,
                 "with RESCHED on A the flow must move to B");
    v = flow_of(&lb, 7000);
    cr_assert(v.real_id == b && v.real_gen == real_entry(&lb, b).gen && v.vs_id == vs,
              "the entry names real %u gen %u, not B", v.real_id, v.real_gen);
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, 2);
    cr_assert_eq(xt_real_stats(&lb, b).new_flows, 1);

    real_flags(&lb, a, 0, XLB_REAL_F_RESCHED);
    cr_assert_eq(real_entry(&lb, a).flags, XLB_REAL_F_ACTIVE);
    xt_table_all(&lb, vs, a, 13);
    cr_assert_eq(send_tcp(&lb, "next ACK", 7000, F_ACK, reals3, 3), 1, "the flow moved again");
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, 2);
    cr_assert_eq(xt_real_stats(&lb, a).packets, 2);
    xt_lb_close(&lb);
}

/*
 * DRAIN, HALT and DOWN are markers: a drained real out of the table keeps
 * its established flows.  The Maglev rebuild leaves marked reals out.
 */
Test(real_state, drained_real_keeps_its_flows)
{
    static struct xt_out out;
    struct pkt_spec s = tcp_spec(CLIENT4, VIP4, 7300, 80, F_SYN);
    struct xt_lb lb;
    uint32_t vs, a, b, c;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    c = xt_real(&lb, vs, RC, 1);
    xt_table_all(&lb, vs, a, 13);
    cr_assert_eq(send_tcp(&lb, "SYN", 7100, F_SYN, reals3, 3), 0);

    real_flags(&lb, a, XLB_REAL_F_DRAIN, 0);
    xt_table_all(&lb, vs, b, 13);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(send_tcp(&lb, "ACK on the drained real", 7100, F_ACK, reals3, 3), 0);
    cr_assert_eq(send_tcp(&lb, "new flow", 7101, F_SYN, reals3, 3), 1);
    cr_assert_eq(xt_real_stats(&lb, a).packets, 4);

    real_flags(&lb, c, XLB_REAL_F_HALT, 0);
    xt_rebuild(&lb, vs);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(send_tcp(&lb, "new flow after a rebuild", (uint16_t)(7200 + i), F_SYN,
                              reals3, 3), 1, "new flow %d went to a marked real", i);
    real_flags(&lb, b, XLB_REAL_F_DOWN, 0);
    xt_rebuild(&lb, vs);
    cr_assert_eq(send_spec(&lb, "every real marked", &s, &out), XDP_DROP);
    cr_assert_eq(send_tcp(&lb, "drained flow after all that", 7100, F_ACK, reals3, 3), 0);
    xt_lb_close(&lb);
}

/* xlb_real_update changes state flags and the weight, nothing else. */
Test(real_state, update_and_get)
{
    struct xlb_err e = { "" };
    struct xlb_real before, r;
    struct xt_lb lb;
    uint32_t vs, a, w = 9;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, RA, 3);
    before = real_entry(&lb, a);
    cr_assert_eq(xlb_real_update(lb.m, a, XLB_REAL_F_DRAIN | XLB_REAL_F_DOWN, 0, &w, &e), 0,
                 "%s", e.msg);
    r = real_entry(&lb, a);
    cr_assert_eq(r.flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_DRAIN | XLB_REAL_F_DOWN);
    cr_assert_eq(r.weight, 9);
    r.flags = before.flags;
    r.weight = before.weight;
    cr_assert_eq(memcmp(&r, &before, sizeof(r)), 0, "other fields of the real changed");
    cr_assert_eq(xlb_real_update(lb.m, a, XLB_REAL_F_HALT, XLB_REAL_F_DRAIN | XLB_REAL_F_DOWN,
                                 NULL, &e), 0, "%s", e.msg);
    r = real_entry(&lb, a);
    cr_assert(r.flags == (XLB_REAL_F_ACTIVE | XLB_REAL_F_HALT) && r.weight == 9);

    cr_assert_eq(xlb_real_update(lb.m, a, 0, XLB_REAL_F_ACTIVE, NULL, &e), -EINVAL);
    cr_assert_eq(xlb_real_update(lb.m, a, 1u << 9, 0, NULL, &e), -EINVAL);
    cr_assert_eq(xlb_real_update(lb.m, a + 1, XLB_REAL_F_DRAIN, 0, NULL, &e), -ENOENT);
    cr_assert(strstr(e.msg, "no real"), "message: %s", e.msg);
    cr_assert_eq(xlb_real_get(lb.m, a + 1, &r), -ENOENT);
    cr_assert_eq(xlb_real_get(lb.m, XLB_MAX_REALS, &r), -ENOENT);
    xt_lb_close(&lb);
}

/* Removing a real takes it out of the installed table first: a sequence
 * loses its entries, a hash table passes them to the next entry's real. */
Test(real_state, removal_edits_the_table)
{
    static const struct {
        uint32_t flags;
        int n, in[6], out_n, out[6];        /* 0 A, 1 B, 2 C, -1 empty */
    } cases[] = {
        { XLB_VS_F_SEQ, 4, { 0, 1, 0, 2 }, 2, { 1, 2 } },
        { 0, 6, { 0, 1, 2, 0, 0, 1 }, 6, { 1, 1, 2, 1, 1, 1 } },
        { 0, 4, { 0, 1, 2, 0 }, 4, { 1, 1, 2, 1 } },
        { XLB_VS_F_SRC_HASH, 3, { 0, 0, 0 }, 1, { -1 } },
        { XLB_VS_F_SEQ, 2, { 0, 0 }, 1, { -1 } },
    };
    struct xt_lb lb;

    xt_lb_open(&lb, NULL);
    for (size_t c = 0; c < XT_ARRAY_SIZE(cases); c++) {
        uint32_t vs, id[3], t[8], n, map_id, map_id2;
        char name[16];

        snprintf(name, sizeof(name), "svc%zu", c);
        vs = xt_service_f(&lb, name, VIP4, (uint16_t)(100 + c), IPPROTO_TCP, XLB_FWD_IPIP, 0,
                          cases[c].flags);
        for (int i = 0; i < 3; i++)
            id[i] = xt_real(&lb, vs, reals3[i], 1);
        for (int i = 0; i < cases[c].n; i++)
            t[i] = id[cases[c].in[i]];
        xt_table(&lb, vs, t, (uint32_t)cases[c].n);
        xt_real_del(&lb, vs, RA);
        n = xt_table_read(&lb, vs, t, 8, &map_id);
        cr_assert_eq(n, (uint32_t)cases[c].out_n, "case %zu: %u entries", c, n);
        for (int i = 0; i < cases[c].out_n; i++)
            cr_assert_eq(t[i], cases[c].out[i] < 0 ? XLB_SEL_EMPTY : id[cases[c].out[i]],
                         "case %zu: entry %d is %u", c, i, t[i]);
        /* A real the table does not name leaves the table as it is. */
        if (cases[c].out[0] >= 0) {
            xt_real(&lb, vs, RD, 1);
            xt_real_del(&lb, vs, RD);
            xt_table_read(&lb, vs, t, 8, &map_id2);
            cr_assert_eq(map_id2, map_id, "case %zu: the table was replaced", c);
        }
    }
    xt_lb_close(&lb);
}

/* ---- closed flows ---- */

TestSuite(flow_closed, .init = xt_env_setup);

/*
 * FIN or RST from the client marks the flow CLOSED, data segments do not;
 * the flow keeps going to its real.  UDP flows are never closed.
 */
Test(flow_closed, by_fin_and_rst_only)
{
    static const struct {
        uint16_t sport;
        uint8_t flags[4];
        int n;
        bool closed;
    } flows[] = {
        { 8000, { F_SYN, F_ACK, F_PSH | F_ACK, F_ACK }, 4, false },
        { 8001, { F_SYN, F_ACK, F_FIN | F_ACK, F_ACK }, 4, true },
        { 8002, { F_SYN, F_ACK, F_RST }, 3, true },
        { 8003, { F_SYN, F_RST | F_ACK }, 2, true },
        { 8004, { F_FIN | F_ACK, F_ACK }, 2, true },   /* first seen closing */
        { 8005, { F_SYN | F_ACK, F_PSH | F_ACK | 0x20 | 0x08 }, 2, false },
    };
    static struct xt_out out;
    struct xt_lb lb;
    uint32_t vs, a, b;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 53, IPPROTO_UDP, NULL), 0);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    xt_table_all(&lb, vs, a, 13);
    for (size_t f = 0; f < XT_ARRAY_SIZE(flows); f++) {
        for (int i = 0; i < flows[f].n; i++) {
            char what[64];

            snprintf(what, sizeof(what), "flow %u segment %d", flows[f].sport, i);
            cr_assert_eq(send_tcp(&lb, what, flows[f].sport, flows[f].flags[i], reals3, 3), 0);
            if (i == 0)
                xt_table_all(&lb, vs, b, 13);   /* later segments must not be placed again */
        }
        xt_table_all(&lb, vs, a, 13);
        cr_assert_eq(flow_of(&lb, flows[f].sport).flags,
                     flows[f].closed ? XLB_FLOW_F_CLOSED : 0u, "flow %u", flows[f].sport);
        cr_assert_eq(flow_of(&lb, flows[f].sport).real_id, a);
    }
    for (int i = 0; i < 3; i++) {
        struct pkt_spec s = xt_spec(CLIENT4, VIP4, IPPROTO_UDP, 8100, 53, 1 + i);
        struct xlb_flow_value v;

        send_spec(&lb, "udp", &s, &out);
        real_of("udp", &out, reals3, 3);
        cr_assert(xt_flow_get(&lb, &s, &v) && v.flags == 0, "a UDP flow is marked 0x%x",
                  v.flags);
    }
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, XT_ARRAY_SIZE(flows) + 1);
    xt_lb_close(&lb);
}

/*
 * A SYN (without ACK) on a closed flow is a new connection: placed from the
 * table and counted as a new flow, with a fresh entry.  Other segments of a
 * closed flow keep its real; a SYN on an open flow is a retransmission.
 */
Test(flow_closed, syn_reopens)
{
    struct xt_lb lb;
    struct xlb_flow_value v;
    uint32_t vs, a, b;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    xt_table_all(&lb, vs, a, 13);
    cr_assert_eq(send_tcp(&lb, "SYN", 9000, F_SYN, reals3, 3), 0);
    xt_table_all(&lb, vs, b, 13);
    cr_assert_eq(send_tcp(&lb, "SYN retransmitted", 9000, F_SYN, reals3, 3), 0);
    cr_assert_eq(send_tcp(&lb, "FIN", 9000, F_FIN | F_ACK, reals3, 3), 0);
    cr_assert_eq(send_tcp(&lb, "last ACK", 9000, F_ACK, reals3, 3), 0);
    cr_assert_eq(send_tcp(&lb, "SYN|ACK is no new connection", 9000, F_SYN | F_ACK, reals3, 3),
                 0);
    cr_assert_eq(flow_of(&lb, 9000).flags, XLB_FLOW_F_CLOSED);
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, 1);

    cr_assert_eq(send_tcp(&lb, "SYN on the closed flow", 9000, F_SYN, reals3, 3), 1,
                 "a new connection on the 5-tuple must be placed from the table");
    v = flow_of(&lb, 9000);
    cr_assert(v.real_id == b && v.flags == 0, "entry: real %u flags 0x%x", v.real_id, v.flags);
    cr_assert_eq(xt_vs_stats(&lb, vs).new_flows, 2);
    cr_assert_eq(xt_real_stats(&lb, b).new_flows, 1);
    xt_table_all(&lb, vs, a, 13);
    cr_assert_eq(send_tcp(&lb, "ACK of the new connection", 9000, F_ACK, reals3, 3), 1);

    /* A closed flow whose real is marked RESCHED stays closed when moved. */
    cr_assert_eq(send_tcp(&lb, "FIN again", 9000, F_FIN | F_ACK, reals3, 3), 1);
    real_flags(&lb, b, XLB_REAL_F_RESCHED, 0);
    cr_assert_eq(send_tcp(&lb, "ACK after RESCHED", 9000, F_ACK, reals3, 3), 0);
    v = flow_of(&lb, 9000);
    cr_assert(v.real_id == a && v.flags == XLB_FLOW_F_CLOSED, "entry: real %u flags 0x%x",
              v.real_id, v.flags);
    xt_lb_close(&lb);
}

/* ---- active connections ---- */

TestSuite(active_scan, .init = xt_env_setup);

#define S(x) ((uint64_t)(x) * 1000000000ull)

static void set_last_seen(struct xt_lb *lb, const struct pkt_spec *s, uint64_t t)
{
    struct xlb_flow_key k = xt_flow_key(s);
    struct xlb_flow_value v;

    cr_assert_eq(bpf_map_lookup_elem(lb->m->conns, &k, &v), 0);
    v.last_seen_ns = t;
    cr_assert_eq(bpf_map_update_elem(lb->m->conns, &k, &v, BPF_EXIST), 0);
}

/*
 * Flows placed by packets, then: one closed, one on a removed real (whose
 * slot a new real took), TCP and UDP flows idle for 40 s (active for TCP
 * with a 60 s timeout, not for UDP with 30 s) and a TCP flow idle for 100 s.
 */
Test(active_scan, counts_exactly)
{
    static struct xt_out out;
    static const char *const reals4[] = { RA, RB, RC, RD };
    uint32_t *active = calloc(XLB_MAX_REALS, sizeof(*active));
    struct xlb_err e = { "" };
    struct xt_lb lb;
    struct pkt_spec s;
    uint32_t vs, a, b, c, d;
    uint64_t now;
    int n;

    cr_assert_not_null(active);
    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 53, IPPROTO_UDP, &e), 0, "%s", e.msg);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    c = xt_real(&lb, vs, RC, 1);

    xt_table_all(&lb, vs, a, 13);
    send_tcp(&lb, "f1", 1, F_SYN, reals4, 4);
    send_tcp(&lb, "f2", 2, F_SYN, reals4, 4);
    send_tcp(&lb, "f2 data", 2, F_ACK, reals4, 4);
    send_tcp(&lb, "f3", 3, F_SYN, reals4, 4);
    send_tcp(&lb, "f3 closes", 3, F_FIN | F_ACK, reals4, 4);

    xt_table_all(&lb, vs, b, 13);
    s = xt_spec(CLIENT4, VIP4, IPPROTO_UDP, 11, 53, 8);
    send_spec(&lb, "u1", &s, &out);
    s.sport = 12;
    send_spec(&lb, "u2, made idle for 40 s", &s, &out);
    send_tcp(&lb, "f4, made idle for 100 s", 4, F_SYN, reals4, 4);
    send_tcp(&lb, "f5, made idle for 40 s", 5, F_SYN, reals4, 4);

    xt_table_all(&lb, vs, c, 13);
    send_tcp(&lb, "f6, its real removed", 6, F_SYN, reals4, 4);
    xt_real_del(&lb, vs, RC);
    d = xt_real(&lb, vs, RD, 1);
    cr_assert_eq(d, c, "the test needs the removed real's slot reused");

    now = xlb_dp_clock_ns();
    set_last_seen(&lb, &s, now - S(40));
    s = tcp_spec(CLIENT4, VIP4, 4, 80, F_ACK);
    set_last_seen(&lb, &s, now - S(100));
    s.sport = 5;
    set_last_seen(&lb, &s, now - S(40));

    n = xlb_active_scan(lb.m, S(60), S(30), active, &e);
    cr_assert_eq(n, 8, "walked %d entries (%s)", n, e.msg);
    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        uint32_t want = id == a ? 2 : id == b ? 2 : 0;

        cr_assert_eq(active[id], want, "real %u: %u active, expected %u", id, active[id], want);
    }
    /* Longer timeouts take the idle ones in; the closed and the stale never. */
    n = xlb_active_scan(lb.m, S(1000), S(1000), active, &e);
    cr_assert_eq(n, 8);
    cr_assert(active[a] == 2 && active[b] == 4 && active[d] == 0, "active %u %u %u", active[a],
              active[b], active[d]);
    free(active);
    xt_lb_close(&lb);
}

/* Many entries: the walk goes through several batches and counts each
 * entry once. */
Test(active_scan, many_flows)
{
    enum { FLOWS = 5000 };
    uint32_t *active = calloc(XLB_MAX_REALS, sizeof(*active));
    struct xlb_err e = { "" };
    struct xt_lb lb;
    uint32_t vs, a, b;
    uint64_t now = xlb_dp_clock_ns();
    struct xlb_flow_key k;
    int n;

    cr_assert_not_null(active);
    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    a = xt_real(&lb, vs, RA, 1);
    b = xt_real(&lb, vs, RB, 1);
    for (int i = 0; i < FLOWS; i++) {
        struct pkt_spec s = tcp_spec(CLIENT4, VIP4, (uint16_t)(1 + i), 80, F_ACK);
        struct xlb_flow_value v = {
            .real_id = i % 5 ? a : b, .vs_id = vs, .last_seen_ns = now,
            .real_gen = real_entry(&lb, i % 5 ? a : b).gen,
        };

        k = xt_flow_key(&s);
        cr_assert_eq(bpf_map_update_elem(lb.m->conns, &k, &v, BPF_NOEXIST), 0, "flow %d: %s",
                     i, strerror(errno));
    }
    n = xlb_active_scan(lb.m, S(60), S(60), active, &e);
    cr_assert_eq(n, FLOWS, "walked %d (%s)", n, e.msg);
    cr_assert(active[a] == FLOWS / 5 * 4 && active[b] == FLOWS / 5, "active %u %u", active[a],
              active[b]);
    free(active);
    xt_lb_close(&lb);
}

/* xlb_dp_clock_ns() reads what the data plane writes into last_seen. */
Test(active_scan, clock_matches_the_data_plane)
{
    uint64_t npj = xlb_ns_per_jiffy(), before, after, seen;
    struct xt_lb lb;
    uint32_t vs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "svc", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs, xt_real(&lb, vs, RA, 1), 13);
    for (int i = 0; i < 5; i++) {
        before = xlb_dp_clock_ns();
        send_tcp(&lb, "SYN", (uint16_t)(100 + i), F_SYN, reals3, 3);
        after = xlb_dp_clock_ns();
        seen = flow_of(&lb, (uint16_t)(100 + i)).last_seen_ns;
        cr_assert(seen + 3 * npj >= before && seen <= after + 3 * npj,
                  "the data plane stamped %llu, userspace read %llu..%llu (%lld ms apart)",
                  (unsigned long long)seen, (unsigned long long)before,
                  (unsigned long long)after, ((long long)seen - (long long)before) / 1000000);
        usleep(3000);
    }
    xt_lb_close(&lb);
}

/* ---- services on several ports ---- */

TestSuite(vip_ports, .init = xt_env_setup);

static bool has_vip(const struct xlb_vip_key *k, int n, uint16_t port, uint8_t proto)
{
    for (int i = 0; i < n; i++)
        if (k[i].port_be == htons(port) && k[i].proto == proto)
            return true;
    return false;
}

/*
 * A service takes more (port, protocol) pairs on its address; a pair of
 * another service is refused with its owner's name; removed pairs stop
 * matching; the address stays known while any pair uses it.
 */
Test(vip_ports, add_list_del)
{
    static struct xt_out out;
    struct xlb_vip_key keys[8];
    struct xlb_vip_addr_key ak = { .family = XLB_FAMILY_V4 };
    struct xlb_err e = { "" };
    struct xlb_service sv;
    struct pkt_spec s;
    struct xt_lb lb;
    uint32_t vs, other, refs;

    xt_lb_open(&lb, NULL);
    vs = xt_service(&lb, "web", VIP4, 80, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    other = xt_service(&lb, "alt", VIP4, 8080, IPPROTO_TCP, XLB_FWD_IPIP, 13);
    xt_table_all(&lb, vs, xt_real(&lb, vs, RA, 1), 13);
    xt_table_all(&lb, other, xt_real(&lb, other, RB, 1), 13);

    cr_assert_eq(xlb_vip_add(lb.m, vs, 443, IPPROTO_TCP, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 53, IPPROTO_UDP, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 8080, IPPROTO_TCP, &e), -EEXIST);
    cr_assert(strstr(e.msg, "alt") && strstr(e.msg, "8080"), "message: %s", e.msg);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 443, IPPROTO_TCP, &e), -EEXIST);
    cr_assert(strstr(e.msg, "belongs to service web"), "message: %s", e.msg);
    cr_assert_eq(xlb_vip_add(lb.m, vs, 1, IPPROTO_ICMP, &e), -EINVAL);
    cr_assert_eq(xlb_vip_add(lb.m, 77, 1, IPPROTO_TCP, &e), -ENOENT);

    cr_assert_eq(xlb_vip_list(lb.m, vs, keys, 8), 3);
    cr_assert(has_vip(keys, 3, 80, IPPROTO_TCP) && has_vip(keys, 3, 443, IPPROTO_TCP) &&
              has_vip(keys, 3, 53, IPPROTO_UDP), "the list misses a pair");
    cr_assert_eq(xlb_vip_list(lb.m, vs, keys, 1), 3, "the count exceeds max");
    cr_assert_eq(xlb_vip_list(lb.m, other, NULL, 0), 1);
    cr_assert_eq(xlb_vip_list(lb.m, 77, NULL, 0), 0);
    xt_addr(VIP4, &ak.addr);
    cr_assert_eq(bpf_map_lookup_elem(lb.m->vip_addrs, &ak, &refs), 0);
    cr_assert_eq(refs, 4);

    s = tcp_spec(CLIENT4, VIP4, 1111, 443, F_SYN);
    send_spec(&lb, "tcp 443", &s, &out);
    cr_assert_eq(real_of("tcp 443", &out, reals3, 3), 0);
    s = xt_spec(CLIENT4, VIP4, IPPROTO_UDP, 1112, 53, 10);
    send_spec(&lb, "udp 53", &s, &out);
    cr_assert_eq(real_of("udp 53", &out, reals3, 3), 0);
    s = tcp_spec(CLIENT4, VIP4, 1113, 444, F_SYN);
    cr_assert_eq(send_spec(&lb, "tcp 444", &s, &out), XDP_PASS);

    cr_assert_eq(xlb_vip_del(lb.m, vs, 443, IPPROTO_TCP, &e), 0, "%s", e.msg);
    s = tcp_spec(CLIENT4, VIP4, 1114, 443, F_SYN);
    cr_assert_eq(send_spec(&lb, "tcp 443 removed", &s, &out), XDP_PASS);
    cr_assert_eq(xlb_vip_del(lb.m, vs, 443, IPPROTO_TCP, &e), -ENOENT);
    cr_assert(strstr(e.msg, "web") && strstr(e.msg, "443"), "message: %s", e.msg);
    cr_assert_eq(xlb_vip_del(lb.m, vs, 8080, IPPROTO_TCP, &e), -ENOENT, "another's pair");
    s = tcp_spec(CLIENT4, VIP4, 1115, 8080, F_SYN);
    send_spec(&lb, "tcp 8080 still alt's", &s, &out);
    cr_assert_eq(real_of("tcp 8080", &out, reals3, 3), 1);

    /* The first pair goes: the service entry names one that is left. */
    cr_assert_eq(xlb_vip_del(lb.m, vs, 80, IPPROTO_TCP, &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_service_find(lb.m, "web", NULL, &sv), 0);
    cr_assert(sv.port_be == htons(53) && sv.proto == IPPROTO_UDP, "service names %u/%u",
              ntohs(sv.port_be), sv.proto);
    cr_assert_eq(bpf_map_lookup_elem(lb.m->vip_addrs, &ak, &refs), 0);
    cr_assert_eq(refs, 2);

    cr_assert_eq(xlb_service_del(lb.m, "web", &e), 0, "%s", e.msg);
    cr_assert_eq(xlb_vip_list(lb.m, vs, NULL, 0), 0);
    cr_assert_eq(bpf_map_lookup_elem(lb.m->vip_addrs, &ak, &refs), 0);
    cr_assert_eq(refs, 1);
    cr_assert_eq(xlb_service_del(lb.m, "alt", &e), 0, "%s", e.msg);
    cr_assert_neq(bpf_map_lookup_elem(lb.m->vip_addrs, &ak, &refs), 0,
                  "the address is still registered");
    xt_lb_close(&lb);
}
