/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing with a cursor.  Each helper checks that the header it reads
 * lies inside [data, data_end), advances the cursor and returns the next
 * protocol, or a negative value when the packet is truncated or malformed.
 */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

struct hdr_cursor {
    void *pos;
};

/* What the balancer learns from one frame. */
struct xlb_pkt {
    __u32 l3_off;               /* offset of the IP header from data */
    __u32 l4_off;               /* offset of the transport header */
    __u32 ip_len;               /* IP datagram length (header + payload) */
    __u16 l2_proto;             /* ethertype after the VLAN tags, host order */
    __u8 n_vlan;
    __u8 tos;                   /* IPv4 TOS / IPv6 traffic class */
    __u8 fragment;              /* IPv4 or IPv6 fragment: XLB_FRAG_FIRST (offset
                                 * 0, has the transport header) or XLB_FRAG_LATER */
    __u8 df;                    /* IPv4 don't-fragment bit */
    __u8 icmp_type;
    __u8 tcp_flags;             /* byte 13 of the TCP header (XLB_TCP_*), 0 otherwise */
    struct xlb_flow_key key;    /* addresses, ports, protocol, family */
};

/* xlb_pkt.fragment: 0 = not a fragment. */
#define XLB_FRAG_FIRST 1
#define XLB_FRAG_LATER 2

enum {
    PARSE_OK = 0,
    PARSE_NOT_IP = -1,          /* not IP, or L2 too short to tell */
    PARSE_BAD_L3 = -2,          /* IP header truncated or inconsistent */
    PARSE_BAD_L4 = -3,          /* addresses known, transport header bad */
};

/* Ethernet plus up to XLB_VLAN_MAX_DEPTH 802.1Q/802.1ad tags.
 * Returns the inner ethertype in host order, or -1. */
static __always_inline int parse_eth(struct hdr_cursor *c, void *data_end, __u8 *n_vlan)
{
    struct ethhdr *eth = c->pos;
    __u16 proto;

    if ((void *)(eth + 1) > data_end)
        return -1;
    c->pos = eth + 1;
    proto = bpf_ntohs(eth->h_proto);
    *n_vlan = 0;
#pragma unroll
    for (int i = 0; i < XLB_VLAN_MAX_DEPTH; i++) {
        struct vlan_hdr *vh = c->pos;

        if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_)
            break;
        if ((void *)(vh + 1) > data_end)
            return -1;
        proto = bpf_ntohs(vh->h_vlan_encapsulated_proto);
        c->pos = vh + 1;
        (*n_vlan)++;
    }
    return proto;
}

static __always_inline int parse_ipv4(struct hdr_cursor *c, void *data, void *data_end,
                                      struct xlb_pkt *p)
{
    struct iphdr *ip = c->pos;
    __u32 hlen, tot;
    __u16 frag;

    if ((void *)(ip + 1) > data_end)
        return PARSE_BAD_L3;
    if (ip->version != 4 || ip->ihl < 5)
        return PARSE_BAD_L3;
    hlen = ip->ihl * 4;
    if (c->pos + hlen > data_end)
        return PARSE_BAD_L3;
    tot = bpf_ntohs(ip->tot_len);
    if (tot < hlen || c->pos + tot > data_end)
        return PARSE_BAD_L3;
    p->l3_off = c->pos - data;
    p->ip_len = tot;
    p->tos = ip->tos;
    frag = bpf_ntohs(ip->frag_off);
    /* 0, XLB_FRAG_FIRST (MF, offset 0) or XLB_FRAG_LATER (offset != 0), without branches. */
    p->fragment = ((frag & (IP_MF_ | IP_OFFSET_)) != 0) + ((frag & IP_OFFSET_) != 0);
    p->df = (frag & IP_DF_) != 0;
    p->key.family = XLB_FAMILY_V4;
    p->key.proto = ip->protocol;
    p->key.src.addr_be[0] = ip->saddr;
    p->key.dst.addr_be[0] = ip->daddr;
    c->pos += hlen;
    return ip->protocol;
}

static __always_inline int parse_ipv6(struct hdr_cursor *c, void *data, void *data_end,
                                      struct xlb_pkt *p)
{
    struct ipv6hdr *ip6 = c->pos;
    __u32 plen;
    __u8 nh;

    if ((void *)(ip6 + 1) > data_end)
        return PARSE_BAD_L3;
    if (ip6->version != 6)
        return PARSE_BAD_L3;
    plen = bpf_ntohs(ip6->payload_len);
    if ((void *)(ip6 + 1) + plen > data_end)
        return PARSE_BAD_L3;
    p->l3_off = c->pos - data;
    p->ip_len = plen + sizeof(*ip6);
    p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
    p->key.family = XLB_FAMILY_V6;
    __builtin_memcpy(&p->key.src, &ip6->saddr, 16);
    __builtin_memcpy(&p->key.dst, &ip6->daddr, 16);
    nh = ip6->nexthdr;
    c->pos = ip6 + 1;
#pragma unroll
    for (int i = 0; i < XLB_IPV6_EXT_MAX; i++) {
        struct ipv6_opt_hdr *eh = c->pos;

        if (nh != NEXTHDR_HOP_ && nh != NEXTHDR_ROUTING_ && nh != NEXTHDR_DEST_ &&
            nh != NEXTHDR_FRAGMENT_)
            break;
        if ((void *)(eh + 1) > data_end)
            return PARSE_BAD_L3;
        if (nh == NEXTHDR_FRAGMENT_) {
            struct frag_hdr *fh = c->pos;

            if ((void *)(fh + 1) > data_end)
                return PARSE_BAD_L3;
            p->fragment = (fh->frag_off & bpf_htons(0xfff8)) ? XLB_FRAG_LATER : XLB_FRAG_FIRST;
            nh = fh->nexthdr;
            c->pos = fh + 1;
        } else {
            nh = eh->nexthdr;
            c->pos += (eh->hdrlen + 1) * 8;
        }
    }
    if (c->pos > (void *)(ip6 + 1) + plen)
        return PARSE_BAD_L3;
    p->key.proto = nh;
    return nh;
}

/* Transport header: ports (and TCP flags) for TCP/UDP, type for ICMP.  The
 * whole fixed header must be present (a TCP header of doff * 4 bytes). */
static __always_inline int parse_l4(struct hdr_cursor *c, void *data, void *data_end,
                                    struct xlb_pkt *p)
{
    void *l3_end = data + p->l3_off + p->ip_len;

    p->l4_off = c->pos - data;
    if (p->l4_off > XLB_L4_OFF_MAX)
        return PARSE_BAD_L4;
    if (p->key.proto == IPPROTO_TCP) {
        struct tcphdr *th = c->pos;

        if ((void *)(th + 1) > data_end || (void *)(th + 1) > l3_end || th->doff < 5)
            return PARSE_BAD_L4;
        if (c->pos + th->doff * 4 > l3_end)
            return PARSE_BAD_L4;
        p->key.sport_be = th->source;
        p->key.dport_be = th->dest;
        p->tcp_flags = ((__u8 *)th)[13];
    } else if (p->key.proto == IPPROTO_UDP) {
        struct udphdr *uh = c->pos;

        if ((void *)(uh + 1) > data_end || (void *)(uh + 1) > l3_end)
            return PARSE_BAD_L4;
        p->key.sport_be = uh->source;
        p->key.dport_be = uh->dest;
    } else if (p->key.proto == IPPROTO_ICMP || p->key.proto == IPPROTO_ICMPV6_) {
        struct icmphdr *ih = c->pos;

        if ((void *)(ih + 1) > data_end || (void *)(ih + 1) > l3_end)
            return PARSE_BAD_L4;
        p->icmp_type = ih->type;
    }
    return PARSE_OK;
}

/* Parse a whole frame into *p.  Returns PARSE_OK or a PARSE_* error. */
static __always_inline int xlb_parse(void *data, void *data_end, struct xlb_pkt *p)
{
    struct hdr_cursor c = { .pos = data };
    int proto, rc;

    proto = parse_eth(&c, data_end, &p->n_vlan);
    if (proto < 0)
        return PARSE_NOT_IP;
    p->l2_proto = proto;
    if (proto == ETH_P_IP_)
        rc = parse_ipv4(&c, data, data_end, p);
    else if (proto == ETH_P_IPV6_)
        rc = parse_ipv6(&c, data, data_end, p);
    else
        return PARSE_NOT_IP;
    if (rc < 0)
        return rc;
    if (p->fragment) {
        /* Where a first fragment's transport header begins (not read here). */
        p->l4_off = c.pos - data;
        return PARSE_OK;
    }
    return parse_l4(&c, data, data_end, p);
}

#endif
