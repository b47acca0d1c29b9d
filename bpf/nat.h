/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port translation for nat services: the destination of a
 * client's packet becomes the real's (DNAT), the source of the real's reply
 * becomes the VIP again (SNAT).  Checksums are updated incrementally
 * (RFC 1624): the IPv4 header checksum for the address, the TCP/UDP
 * checksum for the address (its pseudo header) and the port.  Nothing else
 * of the packet changes; the TTL / hop limit is not decremented (as IPVS
 * does not in its NAT mode).
 */
#ifndef XLB_NAT_H
#define XLB_NAT_H

/*
 * Rewrite the destination (dst != 0) or the source address and port of the
 * TCP or UDP packet p to addr and port_be.  A later fragment (no transport
 * header) gets only the address; a first fragment gets the port too and its
 * transport checksum updated, which covers the whole datagram.  A UDP
 * datagram over IPv4 without a checksum keeps none; a UDP checksum that
 * comes out 0 is sent as 0xffff.  Returns 0, or -1 when a header is not
 * inside the frame (the caller drops the frame).
 */
static __always_inline int nat_rewrite(struct xdp_md *ctx, const struct xlb_pkt *p, int dst,
                                       const struct xlb_addr *addr, __be16 port_be)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __be16 *port_p, *check_p;
    __u64 diff = 0;
    __u16 check;

    if (p->key.family == XLB_FAMILY_V4) {
        struct iphdr *ip = data + (p->l3_off & XLB_L4_OFF_MAX);
        __be32 *a;

        if ((void *)(ip + 1) > data_end)
            return -1;
        a = dst ? &ip->daddr : &ip->saddr;
        diff = csum_diff32(0, *a, addr->addr_be[0]);
        *a = addr->addr_be[0];
        ip->check = csum_apply(ip->check, diff);
    } else {
        struct ipv6hdr *ip6 = data + (p->l3_off & XLB_L4_OFF_MAX);
        __be32 *a;

        if ((void *)(ip6 + 1) > data_end)
            return -1;
        a = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            diff = csum_diff32(diff, a[i], addr->addr_be[i]);
            a[i] = addr->addr_be[i];
        }
    }
    if (p->fragment == XLB_FRAG_LATER)
        return 0;
    if (p->key.proto == IPPROTO_TCP) {
        struct tcphdr *th = data + (p->l4_off & XLB_L4_OFF_MAX);

        if ((void *)(th + 1) > data_end)
            return -1;
        port_p = dst ? &th->dest : &th->source;
        check_p = &th->check;
    } else {
        struct udphdr *uh = data + (p->l4_off & XLB_L4_OFF_MAX);

        if ((void *)(uh + 1) > data_end)
            return -1;
        port_p = dst ? &uh->dest : &uh->source;
        check_p = &uh->check;
    }
    diff = csum_diff16(diff, *port_p, port_be);
    *port_p = port_be;
    if (p->key.proto == IPPROTO_UDP && p->key.family == XLB_FAMILY_V4 && *check_p == 0)
        return 0;
    check = csum_apply(*check_p, diff);
    if (p->key.proto == IPPROTO_UDP && check == 0)
        check = 0xffff;
    *check_p = check;
    return 0;
}

/* The reverse entry of the nat flow p placed on real r (port translated as
 * the real says), created or refreshed. */
static __always_inline void nat_rev_put(const struct xlb_pkt *p, const struct xlb_real *r,
                                        __u32 vs_id, __u32 real_id, __u64 now)
{
    struct xlb_flow_key k = {
        .sport_be = r->port_be ? r->port_be : p->key.dport_be,
        .dport_be = p->key.sport_be,
        .proto = p->key.proto,
        .family = p->key.family,
    };
    struct xlb_nat_rev_value v = {
        .vip_port_be = p->key.dport_be,
        .family = p->key.family,
        .vs_id = vs_id,
        .real_id = real_id,
        .last_seen_ns = now,
    };

    k.src = r->addr;
    k.dst = p->key.src;
    v.vip = p->key.dst;
    bpf_map_update_elem(&xlb_nat_rev, &k, &v, BPF_ANY);
}

/*
 * Translate in place the ICMP error p about a nat flow, as if its quoted
 * packet had gone the translated way.  dst != 0: a "fragmentation needed" /
 * "packet too big" from the client's side (quoting VIP:vport -> client) for
 * the real at addr, port_be (0 = unchanged): the outer destination and the
 * quoted source address and port become the real's.  dst == 0: an error a
 * real sent about a client's packet (quoting client -> real:rport): the
 * outer source and the quoted destination address and port become the VIP
 * addr and port_be.  Updated incrementally: the outer IPv4 header checksum,
 * the quoted IPv4 header checksum, the quoted TCP/UDP checksum when it lies
 * inside the quote (a UDP one always does, a TCP one only in quotes of 18
 * bytes or more; a quoted UDP over IPv4 checksum of 0 stays 0), and the ICMP
 * checksum over all of these (ICMPv6: with its pseudo header's changed
 * address).  The quote was checked by icmp_quoted_flow().  Returns 0, or -1
 * when a header is not inside the frame (the caller drops it).
 */
static __always_inline int nat_icmp_rewrite(struct xdp_md *ctx, const struct xlb_pkt *p, int dst,
                                            const struct xlb_addr *addr, __be16 port_be)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    void *ip_end = data + ((p->l3_off + p->ip_len) & 0xffff);
    __u8 *ic = data + (p->l4_off & XLB_L4_OFF_MAX);
    __u64 adiff = 0, idiff = 0;     /* quoted address; ICMP message */
    __be16 *ports, *port_p, *check_p, old;
    __u16 check;
    __u8 proto;
    void *l4;

    if ((void *)(ic + 8) > data_end)
        return -1;
    if (p->key.family == XLB_FAMILY_V4) {
        struct iphdr *ip = data + (p->l3_off & XLB_L4_OFF_MAX);
        struct iphdr *q = (void *)(ic + 8);
        __be32 *a, *qa;
        __u64 odiff;

        if ((void *)(ip + 1) > data_end || (void *)(q + 1) > data_end)
            return -1;
        a = dst ? &ip->daddr : &ip->saddr;
        qa = dst ? &q->saddr : &q->daddr;
        odiff = csum_diff32(0, *a, addr->addr_be[0]);
        *a = addr->addr_be[0];
        ip->check = csum_apply(ip->check, odiff);
        adiff = csum_diff32(0, *qa, addr->addr_be[0]);
        *qa = addr->addr_be[0];
        old = q->check;
        q->check = csum_apply(old, adiff);
        idiff = csum_diff16(adiff, old, q->check);
        proto = q->protocol;
        l4 = (void *)q + ((q->ihl & 0xf) << 2);
    } else {
        struct ipv6hdr *ip6 = data + (p->l3_off & XLB_L4_OFF_MAX);
        struct ipv6hdr *q6 = (void *)(ic + 8);
        __be32 *a, *qa;

        if ((void *)(ip6 + 1) > data_end || (void *)(q6 + 1) > data_end)
            return -1;
        a = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
        qa = dst ? q6->saddr.in6_u.u6_addr32 : q6->daddr.in6_u.u6_addr32;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            /* The outer addresses are in the ICMPv6 pseudo header. */
            idiff = csum_diff32(idiff, a[i], addr->addr_be[i]);
            a[i] = addr->addr_be[i];
            adiff = csum_diff32(adiff, qa[i], addr->addr_be[i]);
            qa[i] = addr->addr_be[i];
        }
        idiff += adiff;
        proto = q6->nexthdr;
        l4 = q6 + 1;
    }
    ports = l4;
    if ((void *)(ports + 2) > data_end)
        return -1;
    port_p = dst ? &ports[0] : &ports[1];
    if (port_be) {
        adiff = csum_diff16(adiff, *port_p, port_be);
        idiff = csum_diff16(idiff, *port_p, port_be);
        *port_p = port_be;
    }
    check_p = l4 + (proto == IPPROTO_TCP ? 16 : 6);
    if ((void *)(check_p + 1) <= data_end && (void *)(check_p + 1) <= ip_end &&
        !(proto == IPPROTO_UDP && p->key.family == XLB_FAMILY_V4 && *check_p == 0)) {
        old = *check_p;
        check = csum_apply(old, adiff);
        if (proto == IPPROTO_UDP && check == 0)
            check = 0xffff;
        *check_p = check;
        idiff = csum_diff16(idiff, old, check);
    }
    {
        struct icmphdr *ih = (void *)ic;

        if ((void *)(ih + 1) > data_end)
            return -1;
        ih->checksum = csum_apply(ih->checksum, idiff);
    }
    return 0;
}

/* The destination translation of a client-side packet p (TCP, UDP, a
 * fragment of either, or an ICMP error about the flow) for the nat real r. */
static __always_inline int nat_dnat(struct xdp_md *ctx, const struct xlb_pkt *p,
                                    const struct xlb_real *r)
{
    if (!p->fragment && (p->key.proto == IPPROTO_ICMP || p->key.proto == IPPROTO_ICMPV6_))
        return nat_icmp_rewrite(ctx, p, 1, &r->addr, r->port_be);
    return nat_rewrite(ctx, p, 1, &r->addr, r->port_be ? r->port_be : p->key.dport_be);
}

/* The source translation of a nat real's packet p (TCP, UDP, a fragment of
 * either, or an ICMP error about a client's packet) to the VIP vip:vport. */
static __always_inline int nat_snat(struct xdp_md *ctx, const struct xlb_pkt *p,
                                    const struct xlb_addr *vip, __be16 vport)
{
    if (!p->fragment && (p->key.proto == IPPROTO_ICMP || p->key.proto == IPPROTO_ICMPV6_))
        return nat_icmp_rewrite(ctx, p, 0, vip, vport);
    return nat_rewrite(ctx, p, 0, vip, vport);
}

/*
 * The ports of the first IPv4 fragment p of a TCP or UDP datagram into
 * *sport / *dport.  The whole fixed transport header (with its checksum)
 * must be in the fragment.  Returns 0, or -1.
 */
static __always_inline int frag_ports(void *data, void *data_end, const struct xlb_pkt *p,
                                      __be16 *sport, __be16 *dport)
{
    __u32 need = p->key.proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
    __be16 *ports = data + (p->l4_off & XLB_L4_OFF_MAX);

    if (p->l4_off > XLB_L4_OFF_MAX || p->l4_off + need > p->l3_off + p->ip_len)
        return -1;
    if ((void *)(ports + 2) > data_end ||
        (p->key.proto == IPPROTO_TCP && (void *)ports + sizeof(struct tcphdr) > data_end))
        return -1;
    *sport = ports[0];
    *dport = ports[1];
    return 0;
}

/* nat_reply_frag() results besides 0. */
#define NAT_FRAG_NO_REV    1    /* a first fragment of no known flow */
#define NAT_FRAG_NO_RECORD 2    /* a later fragment whose first one was not seen */
#define NAT_FRAG_OTHER     3    /* IPv6, not TCP/UDP, or a first fragment cut short */

/* Scratch room for the key of a nat reply's flow or of its datagram (one
 * at a time: the program's stack is small). */
union nat_key {
    struct xlb_flow_key flow;
    struct xlb_nat_frag_key frag;
};

/*
 * What the source of the fragment p of a nat real's reply becomes: *vip
 * and *vport.  A first fragment finds the flow's reverse entry by its ports
 * (refreshing it) and records the translation for the datagram's later
 * fragments in xlb_nat_frags; a later fragment finds that record.  k is
 * scratch room.  Returns 0 or NAT_FRAG_*.
 */
static __always_inline int nat_reply_frag(void *data, void *data_end, const struct xlb_pkt *p,
                                          struct xlb_addr *vip, __be16 *vport, __u64 now,
                                          union nat_key *k)
{
    struct iphdr *ip = data + (p->l3_off & XLB_L4_OFF_MAX);
    struct xlb_nat_frag_value fv = {};
    struct xlb_nat_frag_value *f;
    struct xlb_nat_rev_value *rev;

    if (p->key.family != XLB_FAMILY_V4 ||
        (p->key.proto != IPPROTO_TCP && p->key.proto != IPPROTO_UDP) ||
        (void *)(ip + 1) > data_end)
        return NAT_FRAG_OTHER;
    if (p->fragment == XLB_FRAG_FIRST) {
        k->flow = p->key;
        if (frag_ports(data, data_end, p, &k->flow.sport_be, &k->flow.dport_be))
            return NAT_FRAG_OTHER;
        rev = bpf_map_lookup_elem(&xlb_nat_rev, &k->flow);
        if (!rev)
            return NAT_FRAG_NO_REV;
        if (now - rev->last_seen_ns > XLB_CONN_TOUCH_NS)
            rev->last_seen_ns = now;
        fv.vip = rev->vip;
        fv.vip_port_be = rev->vip_port_be;
        fv.last_seen_ns = now;
    }
    __builtin_memset(k, 0, sizeof(*k));
    k->frag.src = p->key.src;
    k->frag.dst = p->key.dst;
    k->frag.id_be = ip->id;
    k->frag.proto = p->key.proto;
    k->frag.family = p->key.family;
    if (p->fragment == XLB_FRAG_FIRST) {
        bpf_map_update_elem(&xlb_nat_frags, &k->frag, &fv, BPF_ANY);
    } else {
        f = bpf_map_lookup_elem(&xlb_nat_frags, &k->frag);
        if (!f)
            return NAT_FRAG_NO_RECORD;
        fv.vip = f->vip;
        fv.vip_port_be = f->vip_port_be;
    }
    *vip = fv.vip;
    *vport = fv.vip_port_be;
    return 0;
}

#endif
