// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb.bpf.c - the layer-4 balancer.
 *
 * For every frame: parse; drop sources in the node's deny list when the
 * destination is a VIP; answer ICMP echo to a VIP and send "fragmentation
 * needed" / "packet too big" to the real of the flow it is about; send
 * fragments to a real chosen by their addresses alone; find the flow in the
 * connection table, or else look up the virtual service by (address, port,
 * protocol), then by (address, any port, protocol), apply the service's
 * allow and deny lists (to every packet of the service), take the real of
 * the client's persistence entry or pick one from the service's selection
 * table (indexed by the 5-tuple hash, the source hash or a per-CPU sequence
 * counter, as the service says) and remember it, unless this CPU places
 * more new flows per second than the flood threshold; then forward it as
 * the service's method says: encapsulated towards the real (ipip, gue),
 * with only the MACs rewritten (dsr), or with destination address and
 * port translated to the real's (nat, which also records the reverse
 * entry of the flow), out through the next hop the FIB names (cached per
 * real and CPU for a second).  A TCP/UDP packet from a real of a nat
 * service is a reply: its source is translated back to the VIP through
 * the flow's reverse entry and it is sent towards the client (no entry:
 * to the stack).  For nat services, IPv4 fragments are translated both
 * ways (a reply's later fragments by what its first fragment recorded in
 * xlb_nat_frags) and "fragmentation needed" / "packet too big" about a
 * recorded flow reaches its real with the outer destination and the quoted
 * source translated (an ICMP error from a nat real about a client's packet
 * gets the VIP back likewise).  An established flow is
 * placed again when its real is gone or marked RESCHED, when a SYN reopens
 * a flow that was closed, or when a UDP flow was idle past the timeout.
 * Destinations that cannot be VIPs leave after one read of a bitmap.
 * Anything that is not service traffic leaves unmodified with XDP_PASS.
 * Every verdict is counted in xlb_reasons.
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
#include "nat.h"

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

static __always_inline void event(__u32 ev)
{
    __u64 *c = bpf_map_lookup_elem(&xlb_events, &ev);

    if (c)
        (*c)++;
}

/* Nanoseconds from the jiffies counter: one inlined load instead of a clock
 * helper call per packet.  Resolution 1/HZ, origin shortly before boot. */
const volatile __u64 cfg_ns_per_jiffy = 4000000;   /* set by the loader from CONFIG_HZ */

static __always_inline __u64 coarse_now_ns(void)
{
    return bpf_jiffies64() * cfg_ns_per_jiffy;
}

/* One inlined array read: is this address possibly a VIP (as a
 * destination) or a nat real (as a source)? */
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

static __always_inline struct xlb_vip_value *vip_lookup(const struct xlb_flow_key *fk)
{
    struct xlb_vip_key k = {
        .port_be = fk->dport_be,
        .proto = fk->proto,
        .family = fk->family,
    };
    struct xlb_vip_value *v;

    k.addr = fk->dst;
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
 * services (advanced by one) unless by_hash, the source-address hash for
 * XLB_VS_F_SRC_HASH, else the flow hash.  by_hash: the packet's flow is
 * not recorded (flood mode, fragments, ICMP errors), so a sequence would
 * send its packets to different reals; the flow hash keeps them together.
 * XLB_SEL_EMPTY when there is none.
 */
static __always_inline __u32 select_real(const struct xlb_service *vs, __u32 vs_id,
                                         const struct xlb_addr *src, __u32 hash, int by_hash)
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
    if (vs->flags & XLB_VS_F_SRC_HASH) {
        x = xlb_src_hash(src);
    } else if ((vs->flags & XLB_VS_F_SEQ) && !by_hash) {
        pos = bpf_map_lookup_elem(&xlb_rr, &vs_id);
        if (!pos)
            return XLB_SEL_EMPTY;
        x = (*pos)++;           /* per CPU: no other writer */
    }
    idx = x % *m + 1;
    rid = bpf_map_lookup_elem(tbl, &idx);
    return rid ? *rid : XLB_SEL_EMPTY;
}

/* Is src in the list `scope` of the ACL trie of its family? */
static __always_inline int acl_match(__u32 scope, const struct xlb_addr *src, __u8 family)
{
    if (family == XLB_FAMILY_V4) {
        struct xlb_acl4_key k = { .prefixlen = 64, .scope = scope, .addr_be = src->addr_be[0] };

        return bpf_map_lookup_elem(&xlb_acl4, &k) != NULL;
    } else {
        struct xlb_acl6_key k = { .prefixlen = 160, .scope = scope };

        __builtin_memcpy(k.addr_be, src->addr_be, 16);
        return bpf_map_lookup_elem(&xlb_acl6, &k) != NULL;
    }
}

/* The service's verdict on a source: 0 (let through) or the drop reason.
 * Deny wins; an empty allow list allows every source. */
static __always_inline __u32 acl_check(const struct xlb_service *vs, __u32 vs_id,
                                       const struct xlb_pkt *p)
{
    __u8 f = vs->acl_flags, v4 = p->key.family == XLB_FAMILY_V4;

    if (!f)
        return 0;
    if ((f & (v4 ? XLB_ACL_F_DENY4 : XLB_ACL_F_DENY6)) &&
        acl_match(XLB_ACL_SCOPE_DENY(vs_id), &p->key.src, p->key.family))
        return XLB_R_DROP_ACL_DENY;
    if ((f & (v4 ? XLB_ACL_F_ALLOW4 : XLB_ACL_F_ALLOW6)) &&
        !acl_match(XLB_ACL_SCOPE_ALLOW(vs_id), &p->key.src, p->key.family))
        return XLB_R_DROP_ACL_NOT_ALLOWED;
    return 0;
}

/* One more new flow on this CPU: is the flood threshold exceeded in the
 * current one-second window? */
static __always_inline int flood_mode(const struct xlb_settings *cfg, __u64 now)
{
    __u32 zero = 0;
    struct xlb_flood *f;

    if (!cfg || !cfg->flood_threshold)
        return 0;
    f = bpf_map_lookup_elem(&xlb_flood, &zero);
    if (!f)
        return 0;
    if ((__s64)(now - f->window_ns) >= 1000000000LL) {
        f->window_ns = now;
        f->new_flows = 0;
    }
    return ++f->new_flows > cfg->flood_threshold;
}

static __always_inline void persist_key(struct xlb_persist_key *pk, const struct xlb_service *vs,
                                        const struct xlb_pkt *p)
{
    pk->src.addr_be[0] = p->key.src.addr_be[0] & vs->persist_mask.addr_be[0];
    pk->src.addr_be[1] = p->key.src.addr_be[1] & vs->persist_mask.addr_be[1];
    pk->src.addr_be[2] = p->key.src.addr_be[2] & vs->persist_mask.addr_be[2];
    pk->src.addr_be[3] = p->key.src.addr_be[3] & vs->persist_mask.addr_be[3];
    pk->group = vs->persist_group;
    pk->family = p->key.family;
}

#define XLB_REAL_F_NO_PERSIST (XLB_REAL_F_DRAIN | XLB_REAL_F_HALT | XLB_REAL_F_DOWN | \
                               XLB_REAL_F_RESCHED | XLB_REAL_F_FULL)

/*
 * The real of service vs_id a fresh persistence entry names: its own slot
 * when the entry was written by this service and the slot still holds that
 * real, else the service's real of that address (another service of the
 * group wrote it, or the real was removed and added again).  NULL when the
 * service has no such real or it takes no new flows (DRAIN, HALT, DOWN,
 * RESCHED).
 */
static __always_inline struct xlb_real *persist_real(const struct xlb_persist_value *pe,
                                                     __u32 vs_id, __u32 *real_id)
{
    struct xlb_real *r = NULL;
    __u32 id = pe->real_id, *idp;

    if (pe->vs_id == vs_id) {
        r = usable_real(id, vs_id);
        if (r && r->gen != pe->real_gen)
            r = NULL;
    }
    if (!r) {
        struct xlb_real_idx_key k = { .addr = pe->real, .vs_id = vs_id, .family = pe->family };

        idp = bpf_map_lookup_elem(&xlb_real_idx, &k);
        if (!idp)
            return NULL;
        id = *idp;
        r = usable_real(id, vs_id);
    }
    if (!r || (r->flags & XLB_REAL_F_NO_PERSIST))
        return NULL;
    *real_id = id;
    return r;
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

/* nh_refresh(): a dsr real that the FIB reaches through a gateway. */
#define XLB_FIB_VIA_GATEWAY 100

/* Does the FIB's answer name a next hop other than the destination asked
 * for (a gateway, of either family)? */
static __always_inline int fib_via_gateway(const struct bpf_fib_lookup *fib,
                                           const struct encap_plan *e)
{
    if (e->family == XLB_FAMILY_V4)
        return fib->family != AF_INET_ || fib->ipv4_dst != e->dst.addr_be[0];
    return fib->family != AF_INET6_ || fib->ipv6_dst[0] != e->dst.addr_be[0] ||
           fib->ipv6_dst[1] != e->dst.addr_be[1] || fib->ipv6_dst[2] != e->dst.addr_be[2] ||
           fib->ipv6_dst[3] != e->dst.addr_be[3];
}

/*
 * Learn the next hop towards e->dst into nh: MACs, egress interface, source
 * (when encapsulating without a configured tunnel source) and the route
 * MTU, which a second lookup with an oversized length reveals.  Returns the
 * BPF_FIB_LKUP_RET_* of the lookup for this packet, or XLB_FIB_VIA_GATEWAY
 * for a dsr real that is not on a connected network; only a success is
 * cached.
 */
static __always_inline int nh_refresh(struct xdp_md *ctx, const struct encap_plan *e,
                                      struct xlb_nh *nh, __u32 outer_len, __u64 now,
                                      __u8 method)
{
    struct bpf_fib_lookup fib = {};
    int l2 = method == XLB_FWD_DSR || method == XLB_FWD_NAT;
    __u32 flags = l2 || tunnel_source_configured(e->family) ? 0 : BPF_FIB_LOOKUP_SRC;
    int rc;

    fib_request(&fib, e, ctx->ingress_ifindex, outer_len);
    rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), flags);
    /* The FIB names the gateway in the destination it hands back. */
    if (method == XLB_FWD_DSR &&
        (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) &&
        fib_via_gateway(&fib, e))
        return XLB_FIB_VIA_GATEWAY;
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

/* Forward the frame to r as the service's method says (encapsulated,
 * MACs only, or translated) and hand it to the next hop.  The real's
 * counters count what leaves towards it, not what is dropped on the way. */
static __always_inline int forward(struct xdp_md *ctx, struct xlb_pkt *p,
                                   const struct xlb_service *vs,
                                   const struct xlb_real *r, __u32 real_id, __u32 hash,
                                   __u64 now, __u32 bytes, int new_flow)
{
    struct encap_plan e = {};
    struct xlb_nh *nh;
    __u32 outer_len;
    __u8 method = vs->method;
    int rc = BPF_FIB_LKUP_RET_SUCCESS;

    e.family = r->family;
    e.dst = r->addr;
    if (method == XLB_FWD_DSR || method == XLB_FWD_NAT) {
        /* The packet itself goes to the real: no header is added. */
        if (r->family != p->key.family)
            return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes); /* refused by the loader */
        e.src = p->key.src;
        e.inner_nh = p->key.proto;
    } else {
        e.gue = method == XLB_FWD_GUE;
        if (p->key.family == XLB_FAMILY_V4)
            e.inner_nh = NEXTHDR_IPIP_;
        else if (r->family == XLB_FAMILY_V6)
            e.inner_nh = NEXTHDR_IPV6_;
        else
            return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes); /* IPv6 in IPv4: refused by the loader */
        e.hdr_len = (e.family == XLB_FAMILY_V4 ? sizeof(struct iphdr) :
                                                 sizeof(struct ipv6hdr)) +
                    (e.gue ? sizeof(struct udphdr) : 0);
        encap_source(&e, hash);
    }
    outer_len = p->ip_len + e.hdr_len;

    nh = bpf_map_lookup_elem(&xlb_nh_cache, &real_id);
    if (!nh)
        return verdict(XDP_DROP, XLB_R_DROP_FIB, bytes);
    if (nh->expires_ns <= now || nh->in_ifindex != ctx->ingress_ifindex)
        rc = nh_refresh(ctx, &e, nh, outer_len, now, method);
    else if (nh->mtu && outer_len > nh->mtu)
        rc = BPF_FIB_LKUP_RET_FRAG_NEEDED;
    if (rc == XLB_FIB_VIA_GATEWAY)
        return verdict(XDP_DROP, XLB_R_DROP_DSR_GATEWAY, bytes);
    if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
        return verdict(XDP_DROP, XLB_R_DROP_TOO_BIG, bytes);
    if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
        return verdict(XDP_DROP, XLB_R_DROP_FWD_DISABLED, bytes);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
        return verdict(XDP_DROP, XLB_R_DROP_FIB, bytes);
    if (method == XLB_FWD_DSR) {
        /* The stack cannot forward a frame addressed to the VIP. */
        if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
            return verdict(XDP_DROP, XLB_R_DROP_NO_NEIGH, bytes);
    } else if (method == XLB_FWD_NAT) {
        if (nat_dnat(ctx, p, r))
            return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
    } else {
        if (!tunnel_source_configured(e.family))
            e.src = nh->src;
        if (encap_push(ctx, p, &e, hash))
            return verdict(XDP_DROP, XLB_R_DROP_ENCAP, bytes);
    }
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

/*
 * A fragment of service traffic: every fragment of a datagram (the first
 * one too) is matched by address and protocol (xlb_frag_vips) and placed
 * by the hash of its addresses and protocol (the ports are not in later
 * fragments; p->key has them 0), so all of them reach one real, which
 * reassembles.  No flow is recorded.
 */
struct placed {
    struct xlb_service *vs;
    struct xlb_real *r;
    __u32 vs_id, real_id, hash;
    __u32 recorded;             /* the real of a connection-table entry */
};

/* Place the fragment p into *pl; returns -1 (forward it), or the verdict
 * of a packet that is not forwarded (counted).  (One call of forward() in
 * the program keeps the verifier's work small.) */
static __always_inline int fragment(struct xlb_pkt *p, struct placed *pl, __u32 bytes)
{
    struct xlb_vip_key k = { .proto = p->key.proto, .family = p->key.family };
    struct xlb_vip_value *v;
    struct xlb_service *vs;
    __u32 vs_id, why;

    k.addr = p->key.dst;
    v = bpf_map_lookup_elem(&xlb_frag_vips, &k);
    if (!v)
        return verdict(XDP_PASS, vip_address(p) ? XLB_R_PASS_FRAGMENT : XLB_R_PASS_NOT_VIP,
                       bytes);
    vs_id = v->vs_id;
    vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
    if (!vs || !(vs->flags & XLB_VS_F_ACTIVE))
        return verdict(XDP_PASS, XLB_R_PASS_FRAGMENT, bytes);
    why = acl_check(vs, vs_id, p);
    if (why) {
        count(&xlb_vs_stats, vs_id, bytes, 0);
        return verdict(XDP_DROP, why, bytes);
    }
    pl->vs = vs;
    pl->vs_id = vs_id;
    pl->hash = xlb_flow_hash(&p->key);
    pl->real_id = select_real(vs, vs_id, &p->key.src, pl->hash, 1);
    pl->r = usable_real(pl->real_id, vs_id);
    if (!pl->r) {
        count(&xlb_vs_stats, vs_id, bytes, 0);
        return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes);
    }
    event(XLB_EV_FRAGMENT);
    return -1;
}

/*
 * "Fragmentation needed" / "packet too big" about the flow *fk: to the real
 * that owns the flow, encapsulated like the flow's own packets (with its
 * hash, so it takes the flow's path and receive queue there).  A flow not
 * in the table (flood mode, expired) goes where its hash points, as an
 * unrecorded flow would.
 */
static __always_inline int icmp_too_big(const struct xlb_pkt *p, const struct xlb_flow_key *fk,
                                        __u32 mtu, struct placed *pl, __u32 bytes)
{
    struct xlb_flow_value *flow = bpf_map_lookup_elem(&xlb_conns, fk);
    struct xlb_service *vs = NULL;
    struct xlb_vip_value *vip;
    struct xlb_real *r = NULL;
    __u32 vs_id = 0, real_id = 0, hash = 0;

    if (mtu < (p->key.family == XLB_FAMILY_V4 ? XLB_MIN_MTU4 : XLB_MIN_MTU6))
        event(XLB_EV_ICMP_LOW_MTU);
    if (flow) {
        vs_id = flow->vs_id;
        real_id = flow->real_id;
        hash = flow->hash;
        vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
        if (vs && (vs->flags & XLB_VS_F_ACTIVE))
            r = flow_real(flow);
        pl->recorded = r != NULL;
    }
    if (!r) {
        vip = vip_lookup(fk);
        if (!vip)
            return verdict(XDP_PASS, XLB_R_PASS_ICMP_NO_FLOW, bytes);
        vs_id = vip->vs_id;
        vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
        if (!vs || !(vs->flags & XLB_VS_F_ACTIVE))
            return verdict(XDP_PASS, XLB_R_PASS_ICMP_NO_FLOW, bytes);
        hash = xlb_flow_hash(fk);
        real_id = select_real(vs, vs_id, &fk->src, hash, 1);
        r = usable_real(real_id, vs_id);
        if (!r)
            return verdict(XDP_PASS, XLB_R_PASS_ICMP_NO_FLOW, bytes);
    }
    event(XLB_EV_ICMP_TOO_BIG);
    pl->vs = vs;
    pl->r = r;
    pl->vs_id = vs_id;
    pl->real_id = real_id;
    pl->hash = hash;
    return -1;
}

/*
 * A fragment or ICMP error of a nat service, placed in *pl.  It goes on to
 * be translated (-1) when it is an IPv4 fragment or an ICMP error about a
 * flow in the connection table; a first fragment, which has the ports,
 * records its flow as a new flow would when the table has none (not in
 * flood mode; *new_flow), and the reverse entry for the real it goes to, so
 * that the replies are translated.  Else the verdict: IPv6 fragments and
 * errors about unrecorded flows pass untranslated (pass_nat_untranslated);
 * a first fragment without its whole transport header is dropped.
 */
static __always_inline int nat_placed(void *data, void *data_end, struct xlb_pkt *p,
                                      const struct placed *pl, const struct xlb_settings *cfg,
                                      __u64 now, __u32 bytes, int *new_flow)
{
    if (p->fragment ? p->key.family != XLB_FAMILY_V4 : !pl->recorded) {
        count(&xlb_vs_stats, pl->vs_id, bytes, 0);
        return verdict(XDP_PASS, XLB_R_PASS_NAT_UNTRANSLATED, bytes);
    }
    if (p->fragment != XLB_FRAG_FIRST)
        return -1;
    if (frag_ports(data, data_end, p, &p->key.sport_be, &p->key.dport_be)) {
        count(&xlb_vs_stats, pl->vs_id, bytes, 0);
        return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
    }
    if (!bpf_map_lookup_elem(&xlb_conns, &p->key)) {
        if (flood_mode(cfg, now)) {
            event(XLB_EV_FLOOD_NO_INSERT);
        } else {
            struct xlb_flow_value nf = {
                .real_id = pl->real_id, .vs_id = pl->vs_id, .last_seen_ns = now,
                .hash = pl->hash, .real_gen = pl->r->gen,
            };

            bpf_map_update_elem(&xlb_conns, &p->key, &nf, BPF_NOEXIST);
        }
        *new_flow = 1;
    }
    nat_rev_put(p, pl->r, pl->vs_id, pl->real_id, now);
    return -1;
}

/*
 * A TCP/UDP/ICMP packet whose source is a real of a nat service: with a reverse
 * entry it is that flow's reply, its source becomes the VIP and port the
 * client addressed and it goes towards the client through the FIB's next
 * hop; without one it goes to the stack untouched (pass_nat_no_entry),
 * unless it is addressed to a possible VIP (the real is a client then).
 * IPv4 fragments are translated too (nat_reply_frag()): the first one by
 * the reverse entry, the later ones by what the first one recorded; a later
 * fragment seen before its first one goes to the stack untouched
 * (pass_nat_frag_no_entry).  An ICMP error the real sends about a
 * client's packet of a flow (quoting client -> real:port) is translated
 * back too (outer source, quoted destination: the VIP and its port).
 * Returns -1 for a packet from any other source or to a VIP (not a reply),
 * for IPv6 fragments and for ICMP that is not such an error, else the
 * verdict.
 */
static __always_inline int nat_reply(struct xdp_md *ctx, struct xlb_pkt *p, __u32 bytes)
{
    struct xlb_vip_addr_key sk = { .family = p->key.family };
    struct bpf_fib_lookup fib = {};
    struct xlb_nat_rev_value *rev;
    union nat_key k;            /* the flow of a fragment or an ICMP error */
    struct xlb_addr vip;
    __be16 vport;
    __u64 now;
    int rc;

    sk.addr = p->key.src;
    if (!bpf_map_lookup_elem(&xlb_nat_srcs, &sk))
        return -1;
    now = coarse_now_ns();
    if (p->fragment) {
        rc = nat_reply_frag((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, &vip,
                            &vport, now, &k);
        if (rc == NAT_FRAG_OTHER)
            return -1;
        if (rc) {
            /* A real may also be a client of a VIP. */
            if (vip_filter_hit(&p->key.dst))
                return -1;
            return verdict(XDP_PASS, rc == NAT_FRAG_NO_RECORD ? XLB_R_PASS_NAT_FRAG_NO_ENTRY :
                                                                XLB_R_PASS_NAT_NO_ENTRY, bytes);
        }
    } else if (p->key.proto == IPPROTO_ICMP || p->key.proto == IPPROTO_ICMPV6_) {
        /* An error about a client's packet to this real: the reverse entry
         * of the quoted flow, whose real must be the sender. */
        if (icmp_error_flow((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, &k.flow) ||
            k.flow.src.addr_be[0] != p->key.src.addr_be[0] ||
            k.flow.src.addr_be[1] != p->key.src.addr_be[1] ||
            k.flow.src.addr_be[2] != p->key.src.addr_be[2] ||
            k.flow.src.addr_be[3] != p->key.src.addr_be[3])
            return -1;
        rev = bpf_map_lookup_elem(&xlb_nat_rev, &k.flow);
        if (!rev)
            return -1;
        vip = rev->vip;
        vport = rev->vip_port_be;
    } else {
        rev = bpf_map_lookup_elem(&xlb_nat_rev, &p->key);
        if (!rev) {
            /* A real may also be a client of a VIP. */
            if (vip_filter_hit(&p->key.dst))
                return -1;
            return verdict(XDP_PASS, XLB_R_PASS_NAT_NO_ENTRY, bytes);
        }
        if (now - rev->last_seen_ns > XLB_CONN_TOUCH_NS)
            rev->last_seen_ns = now;
        vip = rev->vip;
        vport = rev->vip_port_be;
    }

    fib.ifindex = ctx->ingress_ifindex;
    fib.tot_len = p->ip_len;
    fib.l4_protocol = p->key.proto;
    fib.sport = vport;
    fib.dport = p->key.dport_be;
    if (p->key.family == XLB_FAMILY_V4) {
        fib.family = AF_INET_;
        fib.ipv4_src = vip.addr_be[0];
        fib.ipv4_dst = p->key.dst.addr_be[0];
    } else {
        fib.family = AF_INET6_;
        __builtin_memcpy(fib.ipv6_src, &vip, 16);
        __builtin_memcpy(fib.ipv6_dst, &p->key.dst, 16);
    }
    rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
    if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
        return verdict(XDP_DROP, XLB_R_DROP_TOO_BIG, bytes);
    if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
        return verdict(XDP_DROP, XLB_R_DROP_FWD_DISABLED, bytes);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
        return verdict(XDP_DROP, XLB_R_DROP_FIB, bytes);
    if (nat_snat(ctx, p, &vip, vport))
        return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
    event(XLB_EV_NAT_REPLY);
    if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
        /* The stack resolves the client's next hop and forwards it. */
        return verdict(XDP_PASS, XLB_R_PASS_NO_NEIGH, bytes);
    {
        void *data = (void *)(long)ctx->data;
        void *data_end = (void *)(long)ctx->data_end;
        struct ethhdr *eth = data;

        if ((void *)(eth + 1) > data_end)
            return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
        __builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN_);
        __builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN_);
    }
    if (fib.ifindex == ctx->ingress_ifindex)
        return verdict(XDP_TX, XLB_R_TX, bytes);
    return verdict(bpf_redirect(fib.ifindex, 0), XLB_R_REDIRECT, bytes);
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
    struct xlb_settings *cfg;
    struct xlb_persist_key pk = {};
    struct xlb_real *r = NULL;
    __u32 vs_id, real_id, hash, closed = 0, why, zero = 0;
    __u64 now;
    int rc, new_flow = 0, flood;

    rc = xlb_parse(data, data_end, &p);
    if (rc == PARSE_NOT_IP)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_IP, bytes);
    if (rc == PARSE_BAD_L3)
        return verdict(XDP_PASS, XLB_R_PASS_MALFORMED, bytes);
    cfg = bpf_map_lookup_elem(&xlb_settings, &zero);
    /* Replies of nat reals come back through the balancer. */
    if (cfg && cfg->nat_srcs && rc == PARSE_OK &&
        (p.key.proto == IPPROTO_TCP || p.key.proto == IPPROTO_UDP ||
         p.key.proto == IPPROTO_ICMP || p.key.proto == IPPROTO_ICMPV6_) &&
        vip_filter_hit(&p.key.src)) {
        int v = nat_reply(ctx, &p, bytes);

        if (v >= 0)
            return v;
    }
    if (!vip_filter_hit(&p.key.dst))
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    /* The node's deny list covers every packet to a VIP address. */
    if (cfg && (cfg->global_deny & (p.key.family == XLB_FAMILY_V4 ? XLB_ACL_F_DENY4 :
                                                                   XLB_ACL_F_DENY6)) &&
        acl_match(XLB_ACL_SCOPE_GLOBAL, &p.key.src, p.key.family) && vip_address(&p))
        return verdict(XDP_DROP, XLB_R_DROP_GLOBAL_DENY, bytes);
    if (rc == PARSE_BAD_L4) {
        if (vip_address(&p))
            return verdict(XDP_DROP, XLB_R_DROP_MALFORMED, bytes);
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    }
    now = coarse_now_ns();
    if (p.fragment || p.key.proto == IPPROTO_ICMP || p.key.proto == IPPROTO_ICMPV6_) {
        struct placed pl = {};

        if (p.fragment) {
            rc = fragment(&p, &pl, bytes);
        } else {
            struct xlb_flow_key fk;
            __u32 mtu;

            if ((p.icmp_type == ICMP_ECHO_ || p.icmp_type == ICMPV6_ECHO_REQUEST_) &&
                vip_address(&p) && icmp_echo_reply(ctx, &p) == XDP_TX)
                return verdict(XDP_TX, XLB_R_ICMP_ECHO_REPLY, bytes);
            if (icmp_too_big_flow(data, data_end, &p, &fk, &mtu))
                return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
            rc = icmp_too_big(&p, &fk, mtu, &pl, bytes);
        }
        if (rc >= 0)
            return rc;
        if (pl.vs->method == XLB_FWD_NAT) {
            rc = nat_placed(data, data_end, &p, &pl, cfg, now, bytes, &new_flow);
            if (rc >= 0)
                return rc;
        }
        vs = pl.vs;
        r = pl.r;
        vs_id = pl.vs_id;
        real_id = pl.real_id;
        hash = pl.hash;
        goto send;
    }
    if (p.key.proto != IPPROTO_TCP && p.key.proto != IPPROTO_UDP)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);

    /* Established flow: the connection table names service and real.  It
     * is honoured while that real is in its service, is not marked
     * RESCHED, the packet does not open a new connection on a closed
     * flow and a UDP flow was not idle past the timeout; else the packet
     * is placed like a new flow, over the entry. */
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
        if (r && p.key.proto == IPPROTO_UDP && cfg && cfg->udp_idle_ns &&
            (__s64)(now - flow->last_seen_ns) > (__s64)cfg->udp_idle_ns) {
            event(XLB_EV_UDP_IDLE);
            r = NULL;
        }
        if (r && !(r->flags & XLB_REAL_F_RESCHED)) {
            hash = flow->hash;
            why = acl_check(vs, vs_id, &p);
            if (why) {
                count(&xlb_vs_stats, vs_id, bytes, 0);
                return verdict(XDP_DROP, why, bytes);
            }
            /* Written only on a change: the hot path stays a read. */
            if (!closed && tcp_closing(&p))
                flow->flags |= XLB_FLOW_F_CLOSED;
            if (now - flow->last_seen_ns > XLB_CONN_TOUCH_NS) {
                flow->last_seen_ns = now;
                if (vs->method == XLB_FWD_NAT)
                    nat_rev_put(&p, r, vs_id, real_id, now);
            }
            goto send;
        }
        r = NULL;
    }

    vip = vip_lookup(&p.key);
    if (!vip)
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    vs_id = vip->vs_id;
    vs = bpf_map_lookup_elem(&xlb_services, &vs_id);
    if (!vs || !(vs->flags & XLB_VS_F_ACTIVE))
        return verdict(XDP_PASS, XLB_R_PASS_NOT_VIP, bytes);
    why = acl_check(vs, vs_id, &p);
    if (why) {
        count(&xlb_vs_stats, vs_id, bytes, 0);
        return verdict(XDP_DROP, why, bytes);
    }
    hash = xlb_flow_hash(&p.key);
    flood = flood_mode(cfg, now);
    /* Persistence first: a fresh entry of the client's network whose real
     * still takes new flows in this service. */
    r = NULL;
    if (vs->persist_timeout_s) {
        struct xlb_persist_value *pe;

        persist_key(&pk, vs, &p);
        pe = bpf_map_lookup_elem(&xlb_persist, &pk);
        if (pe && (__s64)(now - pe->last_ns) <= (__s64)vs->persist_timeout_s * 1000000000LL)
            r = persist_real(pe, vs_id, &real_id);
        if (r) {
            event(XLB_EV_PERSIST_HIT);
            /* The timer restarts with every new connection. */
            if (now - pe->last_ns > XLB_CONN_TOUCH_NS)
                pe->last_ns = now;
            goto place;
        }
    }
    real_id = select_real(vs, vs_id, &p.key.src, hash, flood);
    r = usable_real(real_id, vs_id);
    if (r && vs->persist_timeout_s && !flood) {
        struct xlb_persist_value nv = {
            .real = r->addr, .last_ns = now, .vs_id = vs_id, .real_id = real_id,
            .real_gen = r->gen, .family = r->family,
        };

        bpf_map_update_elem(&xlb_persist, &pk, &nv, BPF_ANY);
    }
place:
    if (!r) {
        count(&xlb_vs_stats, vs_id, bytes, 0);
        return verdict(XDP_DROP, XLB_R_DROP_NO_REAL, bytes);
    }
    if (flood) {
        event(XLB_EV_FLOOD_NO_INSERT);
    } else {
        struct xlb_flow_value nf = {
            .real_id = real_id, .vs_id = vs_id, .last_seen_ns = now, .hash = hash,
            .real_gen = r->gen, .flags = tcp_closing(&p) ? XLB_FLOW_F_CLOSED : closed,
        };

        bpf_map_update_elem(&xlb_conns, &p.key, &nf, BPF_ANY);
    }
    /* Also in flood mode: without it the flow's replies are not translated. */
    if (vs->method == XLB_FWD_NAT)
        nat_rev_put(&p, r, vs_id, real_id, now);
    new_flow = 1;
send:
    /* The service's counters count every packet addressed to it. */
    count(&xlb_vs_stats, vs_id, bytes, new_flow);
    return forward(ctx, &p, vs, r, real_id, hash, now, bytes, new_flow);
}
