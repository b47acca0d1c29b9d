// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * decap.bpf.c - runs on a real server.  Removes the outer header of IPIP,
 * IPv6-in-IPv6, IPv4-in-IPv6 and GUE (variant 1) packets whose outer
 * destination is one of this host's tunnel endpoints (xlb_decap_addrs), and
 * passes the inner packet to the stack, where the VIP sits on lo.  Hosts need
 * no ipip/ip6_tunnel/fou modules.  Everything else passes untouched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xlb_abi.h"
#include "xlb_consts.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u16 cfg_gue_port = XLB_GUE_PORT_DEFAULT;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_DECAP_ADDRS);
    __type(key, struct xlb_decap_key);
    __type(value, __u32);
} xlb_decap_addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_R_MAX);
    __type(key, __u32);
    __type(value, struct xlb_reason_counter);
} xlb_decap_reasons SEC(".maps");

static __always_inline int verdict(int action, __u32 reason, __u32 bytes)
{
    struct xlb_reason_counter *c = bpf_map_lookup_elem(&xlb_decap_reasons, &reason);

    if (c) {
        c->packets++;
        c->bytes += bytes;
    }
    return action;
}

SEC("xdp")
int xlb_decap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 bytes = data_end - data;
    struct xlb_decap_key k = {};
    struct ethhdr *eth, eth_copy;
    struct hdr_cursor c = { .pos = data };
    struct xlb_pkt p = {};
    __u32 strip, l2_len;
    __u8 inner;
    int proto;

    proto = parse_eth(&c, data_end, &p.n_vlan);
    if (proto == ETH_P_IP_)
        proto = parse_ipv4(&c, data, data_end, &p);
    else if (proto == ETH_P_IPV6_)
        proto = parse_ipv6(&c, data, data_end, &p);
    else
        return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
    if (proto < 0 || p.fragment)
        return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);

    if (proto == IPPROTO_UDP) {
        struct udphdr *uh = c.pos;
        __u8 *first;

        if ((void *)(uh + 1) > data_end || uh->dest != bpf_htons(cfg_gue_port))
            return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
        first = (void *)(uh + 1);
        if ((void *)(first + 1) > data_end)
            return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
        /* GUE variant 1: the IP version nibble is the only header */
        if ((*first >> 4) == 4)
            inner = NEXTHDR_IPIP_;
        else if ((*first >> 4) == 6)
            inner = NEXTHDR_IPV6_;
        else
            return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
        c.pos = uh + 1;
    } else if (proto == NEXTHDR_IPIP_ || proto == NEXTHDR_IPV6_) {
        inner = proto;
    } else {
        return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
    }

    k.family = p.key.family;
    k.addr = p.key.dst;
    if (!bpf_map_lookup_elem(&xlb_decap_addrs, &k))
        return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);

    /* Tags are not kept: the inner packet goes up the stack of this host. */
    l2_len = sizeof(struct ethhdr);
    strip = (c.pos - data) - l2_len;
    eth = data;
    if ((void *)(eth + 1) > data_end)
        return verdict(XDP_PASS, XLB_R_DECAP_PASS, bytes);
    eth_copy = *eth;
    eth_copy.h_proto = bpf_htons(inner == NEXTHDR_IPIP_ ? ETH_P_IP_ : ETH_P_IPV6_);
    if (bpf_xdp_adjust_head(ctx, (int)strip))
        return verdict(XDP_DROP, XLB_R_DROP_ENCAP, bytes);
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > data_end)
        return verdict(XDP_DROP, XLB_R_DROP_ENCAP, bytes);
    *eth = eth_copy;
    return verdict(XDP_PASS, XLB_R_DECAP, bytes);
}
