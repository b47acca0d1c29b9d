/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP handled in XDP: echo requests to a VIP are answered on the spot, so a
 * VIP answers ping even though no host owns it. */
#ifndef XLB_ICMP_H
#define XLB_ICMP_H

static __always_inline void swap_macs(struct ethhdr *eth)
{
    __u8 tmp[ETH_ALEN_];

    __builtin_memcpy(tmp, eth->h_source, ETH_ALEN_);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN_);
    __builtin_memcpy(eth->h_dest, tmp, ETH_ALEN_);
}

/* Turn the echo request described by p into its reply in place.  Returns
 * XDP_TX, or -1 when the frame is not an echo request it can answer. */
static __always_inline int icmp_echo_reply(struct xdp_md *ctx, struct xlb_pkt *p)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct icmphdr *ic;
    __u16 old, new;

    if ((void *)(eth + 1) > data_end)
        return -1;
    ic = data + (p->l4_off & XLB_L4_OFF_MAX);
    if ((void *)(ic + 1) > data_end)
        return -1;

    if (p->key.family == XLB_FAMILY_V4) {
        struct iphdr *ip = data + (p->l3_off & XLB_L4_OFF_MAX);
        __be32 a;

        if ((void *)(ip + 1) > data_end || ic->type != ICMP_ECHO_)
            return -1;
        a = ip->saddr;
        ip->saddr = ip->daddr;
        ip->daddr = a;
        /* Words are read with memcpy: a __u16 load after a __u8 store
         * through the struct may be reordered under strict aliasing. */
        __builtin_memcpy(&old, &ip->ttl, 2);
        ip->ttl = XLB_TUNNEL_TTL;
        __builtin_memcpy(&new, &ip->ttl, 2);
        ip->check = csum_replace16(ip->check, old, new);
        __builtin_memcpy(&old, ic, 2);
        ic->type = ICMP_ECHOREPLY_;
    } else {
        struct ipv6hdr *ip6 = data + (p->l3_off & XLB_L4_OFF_MAX);
        struct in6_addr a;

        if ((void *)(ip6 + 1) > data_end || ic->type != ICMPV6_ECHO_REQUEST_)
            return -1;
        a = ip6->saddr;
        ip6->saddr = ip6->daddr;
        ip6->daddr = a;
        ip6->hop_limit = XLB_TUNNEL_TTL;
        __builtin_memcpy(&old, ic, 2);
        ic->type = ICMPV6_ECHO_REPLY_;
    }
    __builtin_memcpy(&new, ic, 2);
    ic->checksum = csum_replace16(ic->checksum, old, new);
    swap_macs(eth);
    return XDP_TX;
}

#endif
