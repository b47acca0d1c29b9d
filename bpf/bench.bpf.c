// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench.bpf.c - programs for `make bench`, never attached to an interface.
 *
 * BPF_PROG_TEST_RUN with repeat > 1 runs a program on the frame the previous
 * iteration left behind.  bench_harness puts the original frame back before
 * every iteration (undoing a grown head, rewriting the bytes), optionally
 * stamps an iteration number into the source port and address so that
 * every iteration is a new flow, then tail-calls the program under test.
 * Its own cost is measured by tail-calling bench_tx and subtracted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BENCH_FRAME_MAX 256

struct bench_frame {
    __u32 len;
    __u32 sport_off;            /* where to stamp the iteration; 0 = don't */
    __u32 saddr_off;
    __u32 pad;
    __u8 data[BENCH_FRAME_MAX];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct bench_frame);
} bench_frames SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} bench_target SEC(".maps");

__u32 bench_iter = 0;

SEC("xdp")
int bench_tx(struct xdp_md *ctx)
{
    return XDP_TX;
}

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp")
int bench_harness(struct xdp_md *ctx)
{
    __u32 zero = 0, len, cur;
    struct bench_frame *f = bpf_map_lookup_elem(&bench_frames, &zero);

    if (!f)
        return XDP_ABORTED;
    len = f->len;
    if (len == 0 || len > BENCH_FRAME_MAX)
        return XDP_ABORTED;
    cur = ctx->data_end - ctx->data;
    if (cur > len && bpf_xdp_adjust_head(ctx, (int)(cur - len)))
        return XDP_ABORTED;
    if (bpf_xdp_store_bytes(ctx, 0, f->data, len & (BENCH_FRAME_MAX - 1) ?: BENCH_FRAME_MAX))
        return XDP_ABORTED;
    if (f->sport_off) {
        __u32 it = bench_iter++;
        __u16 port = bpf_htons((__u16)it | 1024);
        __u16 host = bpf_htons((__u16)(it >> 16));

        bpf_xdp_store_bytes(ctx, f->sport_off & 0x1ff, &port, sizeof(port));
        bpf_xdp_store_bytes(ctx, f->saddr_off & 0x1ff, &host, sizeof(host));
    }
    bpf_tail_call(ctx, &bench_target, 0);
    return XDP_ABORTED;
}
