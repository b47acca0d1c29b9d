/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP handled in XDP: echo requests to a VIP are answered on the spot, so a
 * VIP answers ping even though no host owns it; "fragmentation needed" and
 * "packet too big" about a service flow are matched to that flow, and so
 * are the errors a nat real sends about a client's packet. */
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

#define ICMP_DEST_UNREACH_ 3
#define ICMP_FRAG_NEEDED_ 4
#define ICMPV6_PKT_TOOBIG_ 2
#define XLB_MIN_MTU4 576
#define XLB_MIN_MTU6 1280

/*
 * The flow of the packet quoted by the ICMP error at ic (family: of the
 * outer header), with addresses and ports swapped into *fk: the quoted
 * packet went the other way.  It must be IPv4 (any options, not a later
 * fragment) or IPv6 without extension headers, carrying TCP or UDP, with
 * the ports inside the frame.  Returns 0, or -1.
 */
static __always_inline int icmp_quoted_flow(__u8 *ic, void *data_end, __u8 family,
                                            struct xlb_flow_key *fk)
{
    __be16 *ports;
    __u8 proto;

    __builtin_memset(fk, 0, sizeof(*fk));
    if (family == XLB_FAMILY_V4) {
        struct iphdr *ip = (void *)(ic + 8);

        if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 ||
            (bpf_ntohs(ip->frag_off) & IP_OFFSET_))
            return -1;
        ports = (void *)ip + ip->ihl * 4;
        if ((void *)(ports + 2) > data_end)
            return -1;
        proto = ip->protocol;
        fk->src.addr_be[0] = ip->daddr;
        fk->dst.addr_be[0] = ip->saddr;
    } else {
        struct ipv6hdr *ip6 = (void *)(ic + 8);

        if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
            return -1;
        ports = (void *)(ip6 + 1);
        if ((void *)(ports + 2) > data_end)
            return -1;
        proto = ip6->nexthdr;
        __builtin_memcpy(&fk->src, &ip6->daddr, 16);
        __builtin_memcpy(&fk->dst, &ip6->saddr, 16);
    }
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        return -1;
    fk->sport_be = ports[1];
    fk->dport_be = ports[0];
    fk->proto = proto;
    fk->family = family;
    return 0;
}

/*
 * The flow an ICMPv4 "fragmentation needed" / ICMPv6 "packet too big"
 * message described by p is about.  The embedded packet is one a real sent
 * from the VIP to the client (return traffic does not pass the balancer, a
 * router on the way back reports to the VIP), so addresses and ports are
 * swapped into *fk, the client -> VIP key of the connection table (see
 * icmp_quoted_flow() for what the quote must be).  The advertised MTU goes
 * to *mtu.  Returns 0, or -1 when the message is none of these.
 */
static __always_inline int icmp_too_big_flow(void *data, void *data_end,
                                             const struct xlb_pkt *p, struct xlb_flow_key *fk,
                                             __u32 *mtu)
{
    __u8 *ic = data + (p->l4_off & XLB_L4_OFF_MAX);

    if ((void *)(ic + 8) > data_end)
        return -1;
    if (p->key.family == XLB_FAMILY_V4) {
        if (ic[0] != ICMP_DEST_UNREACH_ || ic[1] != ICMP_FRAG_NEEDED_)
            return -1;
        *mtu = (__u32)ic[6] << 8 | ic[7];
    } else {
        if (ic[0] != ICMPV6_PKT_TOOBIG_ || ic[1] != 0)
            return -1;
        *mtu = (__u32)ic[4] << 24 | (__u32)ic[5] << 16 | (__u32)ic[6] << 8 | ic[7];
    }
    return icmp_quoted_flow(ic, data_end, p->key.family, fk);
}

#define ICMP_TIME_EXCEEDED_ 11
#define ICMP_PARAMETERPROB_ 12
#define ICMPV6_DEST_UNREACH_ 1
#define ICMPV6_PARAMPROB_ 4

/*
 * The flow of the packet quoted by the ICMP error p (ICMPv4 destination
 * unreachable, time exceeded, parameter problem; ICMPv6 the same and packet
 * too big), swapped into *fk as icmp_quoted_flow() says.  Returns 0, or -1
 * when p is no such message.
 */
static __always_inline int icmp_error_flow(void *data, void *data_end, const struct xlb_pkt *p,
                                           struct xlb_flow_key *fk)
{
    __u8 *ic = data + (p->l4_off & XLB_L4_OFF_MAX);

    if ((void *)(ic + 8) > data_end)
        return -1;
    if (p->key.family == XLB_FAMILY_V4) {
        if (p->key.proto != IPPROTO_ICMP ||
            (ic[0] != ICMP_DEST_UNREACH_ && ic[0] != ICMP_TIME_EXCEEDED_ &&
             ic[0] != ICMP_PARAMETERPROB_))
            return -1;
    } else if (p->key.proto != IPPROTO_ICMPV6_ || ic[0] < ICMPV6_DEST_UNREACH_ ||
               ic[0] > ICMPV6_PARAMPROB_) {
        return -1;
    }
    return icmp_quoted_flow(ic, data_end, p->key.family, fk);
}

#endif
