// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench_bpf - ns/packet of the balancer through BPF_PROG_TEST_RUN.
 *
 * Runs in a private network namespace (nothing is left behind) with one veth
 * and permanent neighbour entries for 100 real servers, so the FIB lookup
 * succeeds as it would on a real LB.  Cases:
 *   trivial XDP_TX, trivial XDP_PASS          (baselines, run directly)
 *   non-VIP traffic                           (balancer run directly: it
 *                                              does not modify the frame)
 *   new flow (SYN, a new 5-tuple each time)   (through bench_harness)
 *   established flow (ACK of one flow)        (through bench_harness)
 * each for an ipip, a dsr and a nat service (100 reals each), plus the
 * reply of a nat real (SNAT, a FIB lookup towards the client per packet)
 * and non-VIP traffic again once nat reals exist (their reply check).
 * The harness restores the frame before each iteration and tail-calls the
 * balancer; its own cost is harness+bench_tx minus bench_tx, subtracted.
 * Each figure is the median of RUNS runs of REPEAT iterations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xlb_addr.h"
#include "xlb_loader.h"
#include "pkt.h"
#include "bench.skel.h"

#define RUNS 5
#define N_REALS 100

static unsigned repeat = 1000000;
static int ifindex;
static struct xlb_dp *the_dp;

/* On a wrong verdict, show where the balancer's packets went. */
static void dump_reasons(void)
{
    struct xlb_reason_counter c;

    if (!the_dp)
        return;
    for (uint32_t r = 0; r < XLB_R_MAX; r++)
        if (xlb_reason_read(xlb_dp_maps(the_dp)->reasons, r, &c) == 0 && c.packets)
            fprintf(stderr, "  %-18s %llu\n", xlb_reason_name(r), (unsigned long long)c.packets);
}

struct bench_frame_v {
    __u32 len, sport_off, saddr_off, pad;
    __u8 data[256];
};

static int sh(const char *cmd)
{
    int rc = system(cmd);

    if (rc != 0)
        fprintf(stderr, "bench: '%s' failed\n", cmd);
    return rc;
}

static int setup_netns(void)
{
    char cmd[256];

    if (unshare(CLONE_NEWNET)) {
        perror("bench: unshare(CLONE_NEWNET) (run as root)");
        return -1;
    }
    if (sh("ip link add xlbtb0 type veth peer name xlbtb1") ||
        sh("ip link set xlbtb0 address 02:00:00:00:00:01") ||
        sh("ip link set xlbtb0 up && ip link set xlbtb1 up && ip link set lo up") ||
        sh("ip addr add 198.18.0.1/16 dev xlbtb0") ||
        sh("sysctl -q -w net.ipv4.conf.all.forwarding=1 net.ipv4.conf.xlbtb0.forwarding=1"))
        return -1;
    for (int i = 0; i < N_REALS; i++) {
        snprintf(cmd, sizeof(cmd), "ip neigh add 198.18.1.%d lladdr 02:00:00:00:01:%02x "
                 "dev xlbtb0 nud permanent", 10 + i, i);
        if (sh(cmd))
            return -1;
    }
    /* the client of the nat reply case */
    if (sh("ip neigh add 198.18.5.2 lladdr 02:00:00:00:00:99 dev xlbtb0 nud permanent"))
        return -1;
    ifindex = if_nametoindex("xlbtb0");
    return ifindex ? 0 : -1;
}

static int cmp_u64(const void *a, const void *b)
{
    __u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

    return x < y ? -1 : x > y;
}

/* Median ns per iteration over RUNS runs. */
static double measure(int prog_fd, const void *frame, size_t len, __u32 want)
{
    __u64 t[RUNS];
    __u8 out[512];
    struct xdp_md ctx = { .data_end = len, .ingress_ifindex = ifindex };

    for (int r = 0; r < RUNS; r++) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len,
                    .data_out = out, .data_size_out = sizeof(out), .ctx_in = &ctx,
                    .ctx_size_in = sizeof(ctx), .repeat = repeat);
        if (bpf_prog_test_run_opts(prog_fd, &o)) {
            fprintf(stderr, "bench: test run failed: %s\n", strerror(errno));
            exit(1);
        }
        if (o.retval != want) {
            fprintf(stderr, "bench: verdict %u, expected %u\n", o.retval, want);
            dump_reasons();
            exit(1);
        }
        t[r] = o.duration;
    }
    qsort(t, RUNS, sizeof(t[0]), cmp_u64);
    return (double)t[RUNS / 2];
}

/* A service of method on vip:80 over the N_REALS reals (nat: port 8080),
 * with its Maglev table. */
static int add_service(struct xlb_dp *dp, const char *name, const char *vip, uint8_t method,
                       struct xlb_err *e)
{
    struct xlb_service_spec sp = { .name = name, .port = 80, .proto = IPPROTO_TCP,
                                   .method = method };
    uint32_t vs_id;
    uint8_t fam;

    xlb_addr_parse(vip, &sp.vip, &sp.family, NULL);
    if (xlb_service_add(xlb_dp_maps(dp), &sp, &vs_id, e))
        return -1;
    for (int i = 0; i < N_REALS; i++) {
        struct xlb_real_spec rs = { .weight = 100, .port = method == XLB_FWD_NAT ? 8080 : 0 };
        char txt[32];

        snprintf(txt, sizeof(txt), "198.18.1.%d", 10 + i);
        xlb_addr_parse(txt, &rs.addr, &fam, NULL);
        rs.family = fam;
        if (xlb_real_add_spec(xlb_dp_maps(dp), vs_id, &rs, NULL, e))
            return -1;
    }
    return xlb_service_rebuild(xlb_dp_maps(dp), vs_id, e) ? -1 : 0;
}

/* ns/packet of the balancer on frame f through the harness (stamp: a new
 * flow every iteration), its own cost (harness_cost) taken off. */
static double via_harness(struct bench_bpf *bs, int target_fd, const uint8_t *f, size_t len,
                          bool stamp, double harness_cost, __u32 want)
{
    struct bench_frame_v fv = { .len = len };
    __u32 zero = 0;

    memcpy(fv.data, f, len);
    if (stamp) {
        fv.sport_off = 34;
        fv.saddr_off = 14 + 12 + 2;
    }
    bpf_map__update_elem(bs->maps.bench_frames, &zero, 4, &fv, sizeof(fv), BPF_ANY);
    bpf_map__update_elem(bs->maps.bench_target, &zero, 4, &target_fd, 4, BPF_ANY);
    return measure(bpf_program__fd(bs->progs.bench_harness), f, len, want) - harness_cost;
}

static size_t build(struct pkt_spec *s, const char *src, const char *dst, uint16_t sport,
                    uint16_t dport, uint8_t flags, uint8_t *out)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->eth_dst, "\x02\x00\x00\x00\x00\x01", 6);
    memcpy(s->eth_src, "\x02\x00\x00\x00\x00\x99", 6);
    pkt_addr(s, src, dst);
    s->proto = IPPROTO_TCP;
    s->sport = sport;
    s->dport = dport;
    s->tcp_flags = flags;
    s->frag_off = PKT_DF;       /* as TCP stacks send with path MTU discovery */
    return pkt_build(s, out, 256);
}

int main(int argc, char **argv)
{
    struct xlb_load_opts lo = { .no_pin = true };  /* the default table size */
    struct xlb_service_spec sp = { .name = "bench", .port = 80, .proto = IPPROTO_TCP,
                                   .method = XLB_FWD_IPIP };
    struct bench_frame_v fv = {};
    struct bench_bpf *bs;
    struct xlb_dp *dp;
    struct xlb_err e;
    struct pkt_spec s;
    uint8_t syn[256], ack[256], other[256];
    size_t syn_len, ack_len, other_len;
    double tx, pass, harness_tx, harness_stamp, h_syn, h_ack, nonvip, cost_syn, cost_ack;
    __u32 zero = 0, vs_id, fd;
    uint8_t fam, plen;

    if (argc > 1)
        repeat = strtoul(argv[1], NULL, 10);
    if (setup_netns())
        return 1;
    xlb_addr_parse("198.18.0.0/24", &lo.tunnel_src4, &fam, &plen);
    lo.tunnel_src4_plen = plen;
    if (xlb_dp_open(&lo, &dp, &e) || xlb_dp_load(dp, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    the_dp = dp;
    xlb_addr_parse("198.18.10.10", &sp.vip, &sp.family, NULL);
    if (xlb_service_add(xlb_dp_maps(dp), &sp, &vs_id, &e))
        goto err;
    for (int i = 0; i < N_REALS; i++) {
        struct xlb_addr a;
        char txt[32];

        snprintf(txt, sizeof(txt), "198.18.1.%d", 10 + i);
        xlb_addr_parse(txt, &a, &fam, NULL);
        if (xlb_real_add(xlb_dp_maps(dp), vs_id, fam, &a, 100, NULL, NULL, &e))
            goto err;
    }
    if (xlb_service_rebuild(xlb_dp_maps(dp), vs_id, &e))
        goto err;

    bs = bench_bpf__open_and_load();
    if (!bs) {
        fprintf(stderr, "bench: cannot load bench programs: %s\n", strerror(errno));
        return 1;
    }
    syn_len = build(&s, "198.18.5.1", "198.18.10.10", 40000, 80, 0x02, syn);
    ack_len = build(&s, "198.18.5.2", "198.18.10.10", 40001, 80, 0x10, ack);
    other_len = build(&s, "198.18.5.3", "198.18.0.1", 40002, 22, 0x10, other);

    tx = measure(bpf_program__fd(bs->progs.bench_tx), ack, ack_len, XDP_TX);
    pass = measure(bpf_program__fd(bs->progs.bench_pass), ack, ack_len, XDP_PASS);
    nonvip = measure(xlb_dp_prog_fd(dp), other, other_len, XDP_PASS);

    /* harness + trivial: the harness's own cost */
    fd = bpf_program__fd(bs->progs.bench_tx);
    bpf_map__update_elem(bs->maps.bench_target, &zero, 4, &fd, 4, BPF_ANY);
    fv.len = ack_len;
    memcpy(fv.data, ack, ack_len);
    bpf_map__update_elem(bs->maps.bench_frames, &zero, 4, &fv, sizeof(fv), BPF_ANY);
    harness_tx = measure(bpf_program__fd(bs->progs.bench_harness), ack, ack_len, XDP_TX);

    fd = xlb_dp_prog_fd(dp);
    bpf_map__update_elem(bs->maps.bench_target, &zero, 4, &fd, 4, BPF_ANY);
    /* established: the first iteration creates the flow */
    h_ack = measure(bpf_program__fd(bs->progs.bench_harness), ack, ack_len, XDP_TX);

    /* new flows: source port and the low 16 bits of the source address
     * change every iteration (Ethernet 14 + IPv4 20 = TCP at 34); the
     * harness costs more in this mode, so measure it again */
    fv.len = syn_len;
    memcpy(fv.data, syn, syn_len);
    fv.sport_off = 34;
    fv.saddr_off = 14 + 12 + 2;
    bpf_map__update_elem(bs->maps.bench_frames, &zero, 4, &fv, sizeof(fv), BPF_ANY);
    h_syn = measure(bpf_program__fd(bs->progs.bench_harness), syn, syn_len, XDP_TX);
    fd = bpf_program__fd(bs->progs.bench_tx);
    bpf_map__update_elem(bs->maps.bench_target, &zero, 4, &fd, 4, BPF_ANY);
    harness_stamp = measure(bpf_program__fd(bs->progs.bench_harness), syn, syn_len, XDP_TX);

    cost_syn = h_syn - harness_stamp + tx;
    cost_ack = h_ack - harness_tx + tx;

    /* dsr and nat: the same cases, and the reply of a nat real */
    if (add_service(dp, "bench-dsr", "198.18.10.11", XLB_FWD_DSR, &e) ||
        add_service(dp, "bench-nat", "198.18.10.12", XLB_FWD_NAT, &e))
        goto err;
    {
        uint8_t dsyn[256], dack[256], nsyn[256], nack[256], reply[256];
        size_t dsyn_len, dack_len, nsyn_len, nack_len, reply_len;
        double d_syn, d_ack, n_syn, n_ack, n_reply, nonvip_nat, ostamp = harness_stamp - tx,
               oplain = harness_tx - tx;
        int lb = xlb_dp_prog_fd(dp);
        struct xlb_flow_key fk = { .sport_be = htons(40011), .dport_be = htons(80),
                                   .proto = IPPROTO_TCP, .family = XLB_FAMILY_V4 };
        struct xlb_flow_value flow;
        struct xlb_real r;
        char raddr[XLB_ADDR_STRLEN];

        dsyn_len = build(&s, "198.18.5.1", "198.18.10.11", 40000, 80, 0x02, dsyn);
        dack_len = build(&s, "198.18.5.2", "198.18.10.11", 40010, 80, 0x10, dack);
        nsyn_len = build(&s, "198.18.5.1", "198.18.10.12", 40000, 80, 0x02, nsyn);
        nack_len = build(&s, "198.18.5.2", "198.18.10.12", 40011, 80, 0x10, nack);
        d_ack = via_harness(bs, lb, dack, dack_len, false, oplain, XDP_TX);
        n_ack = via_harness(bs, lb, nack, nack_len, false, oplain, XDP_TX);
        /* the real of that nat flow answers it */
        xlb_addr_parse("198.18.5.2", &fk.src, &fam, NULL);
        xlb_addr_parse("198.18.10.12", &fk.dst, &fam, NULL);
        if (bpf_map_lookup_elem(xlb_dp_maps(dp)->conns, &fk, &flow) ||
            xlb_real_get(xlb_dp_maps(dp), flow.real_id, &r)) {
            fprintf(stderr, "bench: the nat flow was not recorded\n");
            return 1;
        }
        xlb_addr_str(&r.addr, r.family, raddr, sizeof(raddr));
        reply_len = build(&s, raddr, "198.18.5.2", 8080, 40011, 0x10, reply);
        n_reply = via_harness(bs, lb, reply, reply_len, false, oplain, XDP_TX);
        d_syn = via_harness(bs, lb, dsyn, dsyn_len, true, ostamp, XDP_TX);
        n_syn = via_harness(bs, lb, nsyn, nsyn_len, true, ostamp, XDP_TX);
        nonvip_nat = measure(lb, other, other_len, XDP_PASS);

        printf("xdp bench: %u iterations x %d runs (median), 100 reals, Maglev M=65537, "
               "connection table %d entries\n", repeat, RUNS, XLB_CONN_TABLE_DEFAULT);
        printf("  %-34s %8.1f ns/pkt\n", "trivial XDP_TX", tx);
        printf("  %-34s %8.1f ns/pkt\n", "trivial XDP_PASS", pass);
        printf("  %-34s %8.1f / %.1f ns/pkt\n", "harness overhead (subtracted)", harness_tx - tx,
               harness_stamp - tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX   (target <= 9x)\n",
               "(a) new flow: SYN to VIP, ipip", cost_syn, cost_syn / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX   (target <= 4x)\n",
               "(b) established flow: ACK, ipip", cost_ack, cost_ack / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_PASS (target <= 2x)\n",
               "(c) non-VIP traffic", nonvip, nonvip / pass);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX\n", "new flow, dsr", d_syn + tx,
               (d_syn + tx) / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX\n", "established flow, dsr", d_ack + tx,
               (d_ack + tx) / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX\n", "new flow, nat", n_syn + tx,
               (n_syn + tx) / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX\n", "established flow, nat", n_ack + tx,
               (n_ack + tx) / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_TX\n", "nat reply (SNAT)", n_reply + tx,
               (n_reply + tx) / tx);
        printf("  %-34s %8.1f ns/pkt  %5.2fx XDP_PASS\n", "non-VIP traffic, nat reals exist",
               nonvip_nat, nonvip_nat / pass);
    }
    bench_bpf__destroy(bs);
    xlb_dp_close(dp);
    return 0;
err:
    fprintf(stderr, "bench: %s\n", e.msg);
    return 1;
}
