/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Encapsulation towards a real server: IPv4-in-IPv4, IPv6-in-IPv6,
 * IPv4-in-IPv6, and GUE (variant 1: the inner IP packet directly after a UDP
 * header) over IPv4 or IPv6.
 *
 * The frame's L2 header (Ethernet plus its VLAN tags) is kept in front; the
 * outer IP header goes between it and the inner packet, which is not touched.
 * Entropy for the real server's RSS/ECMP comes from the flow hash: the host
 * bits of the tunnel source prefix, the GUE source port and the IPv6 flow
 * label all vary per flow and stay fixed within one.
 */
#ifndef XLB_ENCAP_H
#define XLB_ENCAP_H

/* Tunnel settings, written by the loader before load. */
const volatile __u32 cfg_tunnel_src4 = 0;          /* host order; 0 = ask the FIB */
const volatile __u32 cfg_tunnel_src4_bits = 0;     /* host bits varied per flow, 0..16 */
const volatile __be32 cfg_tunnel_src6[4] = {};     /* all zero = ask the FIB */
const volatile __u32 cfg_tunnel_src6_bits = 0;     /* low bits varied per flow, 0..32 */
const volatile __u16 cfg_gue_port = XLB_GUE_PORT_DEFAULT;

struct encap_plan {
    struct xlb_addr src;
    struct xlb_addr dst;
    __u8 family;                /* outer family */
    __u8 gue;
    __u8 inner_nh;              /* protocol number of the payload */
    __u8 pad;
    __u32 hdr_len;              /* bytes inserted after the L2 header */
};

/* Replace the low `bits` bits of a host-order address with hash bits, never
 * producing the all-zeros or all-ones host part. */
static __always_inline __u32 vary_host_bits(__u32 base, __u32 bits, __u32 hash)
{
    __u32 mask, host;

    if (bits == 0 || bits > 32)
        return base;
    mask = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    host = hash & mask;
    if (bits >= 2) {
        if (host == 0)
            host = 1;
        else if (host == mask)
            host = mask - 1;
    }
    return (base & ~mask) | host;
}

static __always_inline void encap_source(struct encap_plan *e, __u32 hash)
{
    if (e->family == XLB_FAMILY_V4) {
        e->src.addr_be[0] = bpf_htonl(vary_host_bits(cfg_tunnel_src4, cfg_tunnel_src4_bits,
                                                     hash));
        return;
    }
    e->src.addr_be[0] = cfg_tunnel_src6[0];
    e->src.addr_be[1] = cfg_tunnel_src6[1];
    e->src.addr_be[2] = cfg_tunnel_src6[2];
    e->src.addr_be[3] = bpf_htonl(vary_host_bits(bpf_ntohl(cfg_tunnel_src6[3]),
                                                 cfg_tunnel_src6_bits, hash));
}

static __always_inline int tunnel_source_configured(int family)
{
    if (family == XLB_FAMILY_V4)
        return cfg_tunnel_src4 != 0;
    return (cfg_tunnel_src6[0] | cfg_tunnel_src6[1] | cfg_tunnel_src6[2] |
            cfg_tunnel_src6[3]) != 0;
}

/*
 * Outer UDP checksum over IPv6 for GUE, without reading the payload: the
 * inner TCP/UDP checksum is valid, so the one's-complement sum of the inner
 * transport segment equals the complement of the inner pseudo-header sum
 * (local checksum offload, as the kernel's checksum-offloads document
 * describes).  An inner IPv4 header sums to 0xffff, i.e. adds nothing;
 * an inner IPv6 header, extension headers included, is summed here.  An inner
 * ICMPv4 message has no pseudo header: it sums to 0xffff on its own, i.e.
 * adds nothing either.  Returns 0 when the inner packet carries no checksum
 * to build on: UDP over IPv4 with checksum 0, and fragments (the inner
 * checksum covers the whole datagram, not this fragment).
 */
static __always_inline __u16 gue6_udp_csum(const struct encap_plan *e, const struct xlb_pkt *p,
                                           const struct udphdr *uh, const void *inner,
                                           const void *data_end)
{
    __u32 l4_len = p->ip_len - (p->l4_off - p->l3_off);
    __u64 sum = 0, inner_pseudo = 0;
    __u16 l4sum;

    if (p->fragment)
        return 0;
    /* outer pseudo header + UDP header (check field is 0) */
    sum = csum_add_addr(sum, &e->src, XLB_FAMILY_V6);
    sum = csum_add_addr(sum, &e->dst, XLB_FAMILY_V6);
    sum += (__u64)bpf_htonl(bpf_ntohs(uh->len)) + bpf_htonl(IPPROTO_UDP);
    sum += (__u32)uh->source + uh->dest + uh->len;

    /* inner pseudo header */
    inner_pseudo = csum_add_addr(inner_pseudo, &p->key.src, p->key.family);
    inner_pseudo = csum_add_addr(inner_pseudo, &p->key.dst, p->key.family);
    inner_pseudo += (__u64)bpf_htonl(l4_len) + bpf_htonl(p->key.proto);
    l4sum = ~csum_fold16(inner_pseudo);
    if (p->key.proto != IPPROTO_ICMP)
        sum += l4sum;

    if (p->key.family == XLB_FAMILY_V6) {
        /* the fixed header and any extension headers before the segment */
        __u32 words = ((p->l4_off - p->l3_off) & XLB_L4_OFF_MAX) / 4;
        const __u32 *q = inner;

        for (__u32 i = 0; i < (XLB_L4_OFF_MAX + 1) / 4; i++) {
            if (i >= words)
                break;
            /* keep the bounds check in the form the verifier tracks */
            asm volatile("" : "+r"(q));
            if ((const void *)(q + 1) > data_end)
                return 0;
            sum += *q++;
        }
    } else if (p->key.proto == IPPROTO_UDP) {
        const struct udphdr *iu = inner + ((p->l4_off - p->l3_off) & XLB_L4_OFF_MAX);

        if ((const void *)(iu + 1) > data_end || iu->check == 0)
            return 0;
    }
    l4sum = ~csum_fold16(sum);
    return l4sum ? l4sum : 0xffff; /* 0 would mean "no checksum" */
}

/*
 * Insert the outer headers described by e in front of the inner packet.
 * The L2 header (with its VLAN tags) is moved to the new front.  Returns 0,
 * or -1 when the frame cannot be grown (the caller drops it).
 */
static __always_inline int encap_push(struct xdp_md *ctx, struct xlb_pkt *p,
                                      const struct encap_plan *e, __u32 hash)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr eth_copy;
    struct vlan_hdr tags[XLB_VLAN_MAX_DEPTH] = {};
    struct ethhdr *eth = data;
    __u32 n_vlan = p->n_vlan;
    void *outer, *inner;

    if ((void *)(eth + 1) > data_end)
        return -1;
    eth_copy = *eth;
    if (n_vlan > XLB_VLAN_MAX_DEPTH)
        return -1;
#pragma unroll
    for (int i = 0; i < XLB_VLAN_MAX_DEPTH; i++) {
        struct vlan_hdr *vh = (void *)(eth + 1) + i * sizeof(*vh);

        if (i >= n_vlan)
            break;
        if ((void *)(vh + 1) > data_end)
            return -1;
        tags[i] = *vh;
    }

    if (bpf_xdp_adjust_head(ctx, -(int)e->hdr_len))
        return -1;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > data_end)
        return -1;
    *eth = eth_copy;
    {
        __be16 outer_proto = bpf_htons(e->family == XLB_FAMILY_V4 ? ETH_P_IP_ : ETH_P_IPV6_);

        if (n_vlan == 0) {
            eth->h_proto = outer_proto;
        } else {
#pragma unroll
            for (int i = 0; i < XLB_VLAN_MAX_DEPTH; i++) {
                struct vlan_hdr *vh = (void *)(eth + 1) + i * sizeof(*vh);

                if (i >= n_vlan)
                    break;
                if ((void *)(vh + 1) > data_end)
                    return -1;
                *vh = tags[i];
                if (i == n_vlan - 1)
                    vh->h_vlan_encapsulated_proto = outer_proto;
            }
        }
    }

    outer = (void *)(eth + 1) + n_vlan * sizeof(struct vlan_hdr);
    inner = outer + e->hdr_len;
    if (e->family == XLB_FAMILY_V4) {
        struct iphdr *oh = outer;

        if ((void *)(oh + 1) > data_end)
            return -1;
        oh->version = 4;
        oh->ihl = 5;
        oh->tos = p->tos;
        oh->tot_len = bpf_htons(p->ip_len + e->hdr_len);
        /* With DF clear the outer packet may be fragmented on the way, so
         * it needs an identification that varies (RFC 6864). */
        oh->frag_off = p->df ? bpf_htons(IP_DF_) : 0;
        oh->id = p->df ? 0 : (__u16)bpf_get_prandom_u32();
        oh->ttl = XLB_TUNNEL_TTL;
        oh->protocol = e->gue ? IPPROTO_UDP : e->inner_nh;
        oh->check = 0;
        oh->saddr = e->src.addr_be[0];
        oh->daddr = e->dst.addr_be[0];
        oh->check = csum_ipv4_hdr(oh);
        if (e->gue) {
            struct udphdr *uh = (void *)(oh + 1);

            if ((void *)(uh + 1) > data_end)
                return -1;
            uh->source = bpf_htons(XLB_GUE_SPORT_BASE + (hash & 0x3fff));
            uh->dest = bpf_htons(cfg_gue_port);
            uh->len = bpf_htons(p->ip_len + sizeof(*uh));
            uh->check = 0;          /* allowed over IPv4 (RFC 768) */
        }
    } else {
        struct ipv6hdr *oh6 = outer;

        if ((void *)(oh6 + 1) > data_end)
            return -1;
        *(__be32 *)oh6 = bpf_htonl((6u << 28) | ((__u32)p->tos << 20) | (hash & 0xfffff));
        oh6->payload_len = bpf_htons(p->ip_len + (e->gue ? sizeof(struct udphdr) : 0));
        oh6->nexthdr = e->gue ? IPPROTO_UDP : e->inner_nh;
        oh6->hop_limit = XLB_TUNNEL_TTL;
        __builtin_memcpy(&oh6->saddr, &e->src, 16);
        __builtin_memcpy(&oh6->daddr, &e->dst, 16);
        if (e->gue) {
            struct udphdr *uh = (void *)(oh6 + 1);

            if ((void *)(uh + 1) > data_end)
                return -1;
            uh->source = bpf_htons(XLB_GUE_SPORT_BASE + (hash & 0x3fff));
            uh->dest = bpf_htons(cfg_gue_port);
            uh->len = bpf_htons(p->ip_len + sizeof(*uh));
            uh->check = 0;
            uh->check = gue6_udp_csum(e, p, uh, inner, data_end);
        }
    }
    return 0;
}

#endif
