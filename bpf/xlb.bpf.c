// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb.bpf.c - the layer-4 balancer.
 *
 * For every frame: parse; answer ICMP echo to a VIP; find the flow in the
 * connection table, or else look up the virtual service by (address, port,
 * protocol), then by (address, any port, protocol), pick a real server from
 * the service's selection table (indexed by the 5-tuple hash, the source
 * hash or a per-CPU sequence counter, as the service says) and remember it;
 * then encapsulate towards the real and send the frame out through the next
 * hop the FIB names (cached per real and CPU for a second).  An established
 * flow is placed again when its real is gone or marked RESCHED, or when a
 * SYN reopens a flow that was closed.  Destinations that cannot be VIPs
 * leave after one read of a bitmap.  Anything that is not service traffic
 * leaves unmodified with XDP_PASS.  Every verdict is counted in xlb_reasons.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xlb_abi.h"
#include "xlb_consts.h"
#include "xlb_hash.h"
#include "xlb_maps.h"
#include "csum.h"
#include "parse.h"
#include "icmp.h"
#include "encap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int verdict(int action, __u32 reason, __u32 bytes)
{
    struct xlb_reason_counter *c = bpf_map_lookup_elem(&xlb_reasons, &reason);

    if (c) {
        c->packets++;
        c->bytes += bytes;
    }
    return action;
}

static __always_inline void count(void *map, __u32 id, __u32 bytes, int new_flow)
{
    struct xlb_counters *c = bpf_map_lookup_elem(map, &id);

    if (c) {
        c->packets++;
        c->bytes += bytes;
        c->new_flows += new_flow;
    }
}

/* Nanoseconds from the jiffies counter: one inlined load instead of a clock
 * helper call per packet.  Resolution 1/HZ, origin shortly before boot. */
const volatile __u64 cfg_ns_per_jiffy = 4000000;   /* set by the loader from CONFIG_HZ */

static __always_inline __u64 coarse_now_ns(void)
{
    return bpf_jiffies64() * cfg_ns_per_jiffy;
}

/* One inlined array read: is this destination possibly a VIP? */
static __always_inline int vip_filter_hit(const struct xlb_addr *a)
{
    __u32 bit = xlb_vip_filter_bit(a);
    __u32 word = bit >> 6;
    __u64 *m = bpf_map_lookup_elem(&xlb_vip_filter, &word);

    return m && ((*m >> (bit & 63)) & 1);
}

static __always_inline int vip_address(const struct xlb_pkt *p)
{
    struct xlb_vip_addr_key k = { .family = p->key.family };

    k.addr = p->key.dst;
    return bpf_map_lookup_elem(&xlb_vip_addrs, &k) != NULL;
}

static __always_inline struct xlb_vip_value *vip_lookup(const struct xlb_pkt *p)
{
    struct xlb_vip_key k = {
        .port_be = p->key.dport_be,
        .proto = p->key.proto,
        .family = p->key.family,
    };
    struct xlb_vip_value *v;

    k.addr = p->key.dst;
    v = bpf_map_lookup_elem(&xlb_vips, &k);
    if (v)
        return v;
    k.port_be = 0;
    return bpf_map_lookup_elem(&xlb_vips, &k);
}

static __always_inline struct xlb_real *usable_real(__u32 real_id, __u32 vs_id)
{
    struct xlb_real *r = bpf_map_lookup_elem(&xlb_reals, &real_id);

    if (!r || !(r->flags & XLB_REAL_F_ACTIVE) || r->vs_id != vs_id)
        return NULL;
    return r;
}

/* The real a recorded flow was placed on, if that very real is still in
 * the service: ids are reused, generations are not. */
static __always_inline struct xlb_real *flow_real(const struct xlb_flow_value *f)
{
    struct xlb_real *r = usable_real(f->real_id, f->vs_id);

    return r && r->gen == f->real_gen ? r : NULL;
}

/*
 * Pick a real for a new flow from the service's selection table: entry
 * (x % M) + 1, where x is this CPU's sequence position for XLB_VS_F_SEQ
 * services (advanced by one), the source-address hash for
 * XLB_VS_F_SRC_HASH, else the flow hash.  XLB_SEL_EMPTY when there is none.
 */
static __always_inline __u32 select_real(const struct xlb_service *vs, __u32 vs_id,
                                         const struct xlb_pkt *p, __u32 hash)
{
    __u32 idx = XLB_SEL_SIZE_IDX, x = hash, key = XLB_SEL_KEY(vs_id, vs->sel_slot);
    __u32 *m, *rid, *pos;
    void *tbl;

    tbl = bpf_map_lookup_elem(&xlb_sel, &key);
    if (!tbl)
        return XLB_SEL_EMPTY;
    m = bpf_map_lookup_elem(tbl, &idx);
    if (!m || *m == 0)
        return XLB_SEL_EMPTY;
    if (vs->flags & XLB_VS_F_SEQ) {
        pos = bpf_map_lookup_elem(&xlb_rr, &vs_id);
        if (!pos)
            return XLB_SEL_EMPTY;
        x = (*pos)++;           /* per CPU: no other writer */
    } else if (vs->flags & XLB_VS_F_SRC_HASH) {
        x = xlb_src_hash(&p->key.src);
    }
    idx = x % *m + 1;
    rid = bpf_map_lookup_elem(tbl, &idx);
    return rid ? *rid : XLB_SEL_EMPTY;
}

static __always_inline int tcp_closing(const struct xlb_pkt *p)
{
    return p->key.proto == IPPROTO_TCP && (p->tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST));
}

/* A connection attempt: SYN without ACK. */
static __always_inline int tcp_opening(const struct xlb_pkt *p)
{
    return p->key.proto == IPPROTO_TCP &&
           (p->tcp_flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == XLB_TCP_SYN;
}

static __always_inline void fib_request(struct bpf_fib_lookup *fib, const struct encap_plan *e,
                                        __u32 ifindex, __u32 tot_len)
{
    fib->ifindex = ifindex;
    fib->tot_len = tot_len;
    fib->l4_protocol = e->gue ? IPPROTO_UDP : e->inner_nh;
    if (e->family == XLB_FAMILY_V4) {
        fib->family = AF_INET_;
        fib->ipv4_src = e->src.addr_be[0];
        fib->ipv4_dst = e->dst.addr_be[0];
    } else {
        fib->family = AF_INET6_;
        __builtin_memcpy(fib->ipv6_src, &e->src, 16);
        __builtin_memcpy(fib->ipv6_dst, &e->dst, 16);
    }
}

/*
 * Learn the next hop towards e->dst into nh: MACs, egress interface, source
 * (when no tunnel source is configured) and the route MTU, which a second
 * lookup with an oversized length reveals.  Returns the BPF_FIB_LKUP_RET_*
 * of the lookup for this packet; only a success is cached.
 */
static __always_inline int nh_refresh(struct xdp_md *ctx, const struct encap_plan *e,
                                      struct xlb_nh *nh, __u32 outer_len, __u64 now)
{
    struct bpf_fib_lookup fib = {};
    __u32 flags = tunnel_source_configured(e->family) ? 0 : BPF_FIB_LOOKUP_SRC;
    int rc;

    fib_request(&fib, e, ctx->ingress_ifindex, outer_len);
    rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), flags);
    if (flags) {
        if (e->family == XLB_FAMILY_V4)
            nh->src.addr_be[0] = fib.ipv4_src;
        else
            __builtin_memcpy(&nh->src, fib.ipv6_src, 16);
    }
    if (rc != BPF_FIB_LKUP_RET_SUCCESS)
        return rc;
    __builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN_);
    __builtin_memcpy(nh->smac, fib.smac, ETH_ALEN_);
    nh->ifindex = fib.ifindex;
    nh->in_ifindex = ctx->ingress_ifindex;

    __builtin_memset(&fib, 0, sizeof(fib));
    fib_request(&fib, e, ctx->ingress_ifindex, 0xffff);
    nh->mtu = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH) ==
              BPF_FIB_LKUP_RET_FRAG_NEEDED ? fib.mtu_result : 0;
    nh->expires_ns = now + XLB_NH_CACHE_NS;
    return rc;
}

/* Encapsulate towards r and hand the frame to the next hop.  The real's
 * counters count what leaves towards it, not what is dropped on the way. */
static __always_inline int forward(struct xdp_md *ctx, struct xlb_pkt *p,
                                   const struct xlb_service *vs,
                                   const struct xlb_real *r, __u32 real_id, __u32 hash,
                                   __u64 now, __u32 bytes, int new_flow)
{
    struct encap_plan e = {};
    struct xlb_nh *nh;
    __u32 outer_len;
    int rc = BPF_FIB_LKUP_RET_SUCCESS;

    e.family = r->family;
    e.gue = vs->method == XLB_FWD_GUE;
    e.dst = r->addr;
    if (p->key.family == XLB_FAMILY_V4)
        e.inner_nh = NEXTHDR_IPIP_;
    else if (r->family == XLB_FAMILY_V6)
        e.inner_nh = NEXTHDR_IPV6_;
    else
        return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes); /* IPv6 in IPv4: refused by the loader */
    e.hdr_len = (e.family == XLB_FAMILY_V4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) +
                (e.gue ? sizeof(struct udphdr) : 0);
    encap_source(&e, hash);
    outer_len = p->ip_len + e.hdr_len;

    nh = bpf_map_lookup_elem(&xlb_nh_cache, &real_id);
    if (!nh)
        return verdict(XDP_DROP, XLB_R_DROP_FIB, bytes);
    if (nh->expires_ns <= now || nh->in_ifindex != ctx->ingress_ifindex)
        rc = nh_refresh(ctx, &e, nh, outer_len, now);
    else if (nh->mtu && outer_len > nh->mtu)
        rc = BPF_FIB_LKUP_RET_FRAG_NEEDED;
    if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
        return verdict(XDP_DROP, XLB_R_DROP_TOO_BIG, bytes);
    if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
        return verdict(XDP_DROP, XLB_R_DROP_FWD_DISABLED, bytes);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
        return verdict(XDP_DROP, XLB_R_DROP_FIB, bytes);
    if (!tunnel_source_configured(e.family))
        e.src = nh->src;

    if (encap_push(ctx, p, &e, hash))
        return verdict(XDP_DROP, XLB_R_DROP_ENCAP, bytes);
    count(&xlb_real_stats, real_id, bytes, new_flow);
    if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
        /* The stack resolves the neighbour and forwards this frame. */
        return verdict(XDP_PASS, XLB_R_PASS_NO_NEIGH, bytes);

    {
        void *data = (void *)(long)ctx->data;
        void *data_end = (void *)(long)ctx->data_end;
        struct ethhdr *eth = data;

        if ((void *)(eth + 1) > data_end)
            return verdict(XDP_DROP, XLB_R_DROP_ENCAP, bytes);
        __builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN_);
        __builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN_);
    }
    if (nh->ifindex == ctx->ingress_ifindex)
        return verdict(XDP_TX, XLB_R_TX, bytes);
    return verdict(bpf_redirect(nh->ifindex, 0), XLB_R_REDIRECT, bytes);
}

SEC("xdp")
int xlb_balancer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 bytes = data_end - data;
    struct xlb_pkt p = {};
    struct xlb_vip_value *vip;
    struct xlb_service *vs = NULL;
    struct xlb_flow_value *flow;
    struct xlb_real *r = NULL;
    __u32 vs_id, real_id, hash, closed = 0;
    __u64 now;
    int rc, new_flow = 0;

    rc = xlb_parse(data, data_end, &p);
    if (rc == PARSE_NOT_IP)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_IP, bytes);
    if (rc == PARSE_BAD_L3)
        return verdict(XDP_PASS, XLB_R_PASS_MALFORMED, bytes);
    if (!vip_filter_hit(&p.key.dst))
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    if (rc == PARSE_BAD_L4) {
        if (vip_address(&p))
            return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    }
    if (p.fragment)
        return verdict(XDP_PASS, vip_address(&p) ? XLB_R_PASS_FRAGMENT : XLB_R_PASS_NOT_VIP,
                       bytes);
    if (p.key.proto == IPPROTO_ICMP || p.key.proto == IPPROTO_ICMPV6_) {
        if ((p.icmp_type == ICMP_ECHO_ || p.icmp_type == ICMPV6_ECHO_REQUEST_) &&
            vip_address(&p) && icmp_echo_reply(ctx, &p) == XDP_TX)
            return verdict(XDP_TX, XLB_R_ICMP_ECHO_REPLY, bytes);
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    }
    if (p.key.proto != IPPROTO_TCP && p.key.proto != IPPROTO_UDP)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);

    now = coarse_now_ns();
    /* Established flow: the connection table names service and real.  It
     * is honoured while that real is in its service, is not marked
     * RESCHED, and the packet does not open a new connection on a closed
     * flow; else the packet is placed like a new flow, over the entry. */
    flow = bpf_map_lookup_elem(&xlb_conns, &p.key);
    if (flow) {
        vs_id = flow->vs_id;
        real_id = flow->real_id;
        vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
        if (vs && (vs->flags & XLB_VS_F_ACTIVE))
            r = flow_real(flow);
        if (flow->flags & XLB_FLOW_F_CLOSED) {
            if (tcp_opening(&p))
                r = NULL;
            else
                closed = XLB_FLOW_F_CLOSED;     /* kept if the flow is placed again */
        }
        if (r && !(r->flags & XLB_REAL_F_RESCHED)) {
            hash = flow->hash;
            /* Written only on a change: the hot path stays a read. */
            if (!closed && tcp_closing(&p))
                flow->flags |= XLB_FLOW_F_CLOSED;
            if (now - flow->last_seen_ns > XLB_CONN_TOUCH_NS)
                flow->last_seen_ns = now;
            goto send;
        }
    }

    vip = vip_lookup(&p);
    if (!vip)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    vs_id = vip->vs_id;
    vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
    if (!vs || !(vs->flags & XLB_VS_F_ACTIVE))
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    hash = xlb_flow_hash(&p.key);
    real_id = select_real(vs, vs_id, &p, hash);
    r = usable_real(real_id, vs_id);
    if (!r) {
        count(&xlb_vs_stats, vs_id, bytes, 0);
        return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes);
    }
    {
        struct xlb_flow_value nf = {
            .real_id = real_id, .vs_id = vs_id, .last_seen_ns = now, .hash = hash,
            .real_gen = r->gen, .flags = tcp_closing(&p) ? XLB_FLOW_F_CLOSED : closed,
        };

        bpf_map_update_elem(&xlb_conns, &p.key, &nf, BPF_ANY);
    }
    new_flow = 1;
send:
    /* The service's counters count every packet addressed to it. */
    count(&xlb_vs_stats, vs_id, bytes, new_flow);
    return forward(ctx, &p, vs, r, real_id, hash, now, bytes, new_flow);
}
