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
 * TCP or UDP packet p (not a fragment) to addr and port_be.  A UDP datagram
 * over IPv4 without a checksum keeps none; a UDP checksum that comes out 0
 * is sent as 0xffff.  Returns 0, or -1 when a header is not inside the
 * frame (the caller drops the frame).
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

#endif
