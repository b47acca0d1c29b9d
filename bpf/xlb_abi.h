/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_abi.h - the one contract between the XDP programs and userspace.
 *
 * Every key and value stored in a BPF map is defined here, with fixed-width
 * types, explicit padding and the byte order in the field name (`_be` means
 * network byte order).  It is included by the bpf/ programs (after vmlinux.h) and
 * by loader/, xlbctl and the tests (after <linux/types.h>).
 *
 * When this file changes, also change:
 *   - bpf/xlb_maps.h        (a new map: its definition)
 *   - loader/xlb_loader.h   (struct xlb_maps: one fd per map; the typed calls)
 *   - loader/xlb_loader.c   (map_names/map_slot/fill_maps_from_skel, sizes, the
 *                            typed add/remove/update calls, xlb_active_scan,
 *                            the checks of a real per forwarding method)
 *   - xlbctl/xlbctl.c       (status output: service and real flags, reason names)
 *   - loader/xlb_names.c    (xlb_reason_name: one string per enum xlb_reason,
 *                            xlb_event_name: one per enum xlb_event)
 *   - tests/bpf/            (fixtures that read counters, flow entries, flags)
 *   - docs/design.md        (packet path, selection tables, real states,
 *                            forwarding methods, the layout version)
 *   - bench/bench_bpf.c     (a new forwarding method: its cases)
 *   - agent/                (the control plane reads and writes these structs)
 * Changing a struct layout is an incompatible change for pinned maps: bump
 * XLB_ABI_VERSION; the loader compares it with xlb_meta in the pinned maps
 * and refuses to reuse maps of another layout.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define XLB_ABI_VERSION 7

/* Sizes.  Each may be overridden at build time (-DXLB_MAX_SERVICES=...). */
#ifndef XLB_MAX_SERVICES
#define XLB_MAX_SERVICES 1024
#endif
#ifndef XLB_MAX_REALS
#define XLB_MAX_REALS 8192          /* (service, real) pairs */
#endif
#ifndef XLB_MAX_VIPS
#define XLB_MAX_VIPS 16384          /* (address, port, protocol) entries */
#endif
#ifndef XLB_CONN_TABLE_DEFAULT
#define XLB_CONN_TABLE_DEFAULT 1000000
#endif
#ifndef XLB_RING_DEFAULT
#define XLB_RING_DEFAULT 65537      /* Maglev table size, a prime */
#endif
#ifndef XLB_RING_MAX
#define XLB_RING_MAX 1048573        /* largest selection table (a prime: the largest
                                     * Maglev table) */
#endif
#ifndef XLB_MAX_DECAP_ADDRS
#define XLB_MAX_DECAP_ADDRS 256
#endif
#ifndef XLB_GUE_PORT_DEFAULT
#define XLB_GUE_PORT_DEFAULT 6080
#endif
#ifndef XLB_PERSIST_TABLE_DEFAULT
#define XLB_PERSIST_TABLE_DEFAULT 262144    /* xlb_persist entries (LRU) */
#endif
#ifndef XLB_MAX_ACL
#define XLB_MAX_ACL 65536           /* prefixes per family, all lists together */
#endif
#ifndef XLB_UDP_IDLE_DEFAULT_S
#define XLB_UDP_IDLE_DEFAULT_S 30
#endif

#define XLB_FAMILY_V4 4
#define XLB_FAMILY_V6 6

/* An address of either family.  IPv4 lives in addr_be[0], the rest is 0. */
struct xlb_addr {
    __be32 addr_be[4];
};

/* xlb_vips: (VIP, port, protocol) -> service.  port_be == 0 is the
 * wildcard entry that matches every port of that address and protocol. */
struct xlb_vip_key {
    struct xlb_addr addr;
    __be16 port_be;
    __u8 proto;                 /* IPPROTO_TCP or IPPROTO_UDP */
    __u8 family;                /* XLB_FAMILY_V4 / XLB_FAMILY_V6 */
};

struct xlb_vip_value {
    __u32 vs_id;
};

/* xlb_vip_addrs: every VIP address, for ICMP echo; value counts services. */
struct xlb_vip_addr_key {
    struct xlb_addr addr;
    __u8 family;
    __u8 pad[3];
};

enum xlb_fwd_method {
    XLB_FWD_IPIP = 1,           /* IPIP, 6in6 or 4in6 by the families */
    XLB_FWD_GUE = 2,            /* IP in UDP (GUE variant 1) */
    XLB_FWD_DSR = 3,            /* L2 direct routing: only the MACs change; the
                                 * real is on a connected network, same family */
    XLB_FWD_NAT = 4,            /* DNAT VIP:port -> real:port, SNAT of the replies
                                 * (xlb_nat_rev); same family */
};

/*
 * xlb_service.flags.  The table kind says how a new flow indexes the
 * service's selection table (see xlb_sel below):
 *   neither flag    the 5-tuple flow hash (Maglev: maglev, wlc ... schedulers)
 *   XLB_VS_F_SEQ    a per-CPU counter (xlb_rr[vs_id]): the table is a weighted
 *                   sequence, walked in order (rr, wrr and the like)
 *   XLB_VS_F_SRC_HASH  a hash of the source address only, so that every port and
 *                   protocol of one client lands on one real (sh, persistence)
 * SEQ and SRC_HASH exclude each other.  In every kind the flow keeps its
 * 5-tuple hash for the encapsulation entropy.
 */
#define XLB_VS_F_ACTIVE   (1u << 0)   /* slot in use */
#define XLB_VS_F_SEQ      (1u << 1)
#define XLB_VS_F_SRC_HASH (1u << 2)

#define XLB_NAME_LEN 48

/* xlb_services[vs_id].  The data plane reads flags and method; the rest
 * describes the service for the control plane and `bpftool map dump`. */
struct xlb_service {
    __u32 flags;                /* XLB_VS_F_* */
    __u8 method;                /* enum xlb_fwd_method */
    __u8 family;                /* of the VIP */
    __u8 proto;                 /* IPPROTO_TCP / IPPROTO_UDP */
    __u8 sel_slot;              /* which of its two xlb_sel tables is live */
    __u32 ring_size;            /* size of the Maglev table xlb_service_rebuild()
                                 * builds (prime); installed tables may differ */
    __be16 port_be;             /* first port; all ports are in xlb_vips */
    __u8 acl_flags;             /* XLB_ACL_F_*: which of its ACL lists are not empty */
    __u8 pad2;
    struct xlb_addr vip;
    char name[XLB_NAME_LEN];    /* NUL-terminated */
    /* Source-IP persistence (see xlb_persist below); timeout 0 = off. */
    __u32 persist_timeout_s;
    __u32 persist_group;        /* key of its entries: shared by services that
                                 * follow one another (port following) */
    struct xlb_addr persist_mask; /* netmask applied to the client address, of
                                 * the VIP's family (the loader computes it) */
    __u8 persist_plen4;         /* the prefix lengths behind the mask (display) */
    __u8 persist_plen6;
    __u8 pad3[6];
};

/* xlb_service.acl_flags: a list is looked up only when its bit is set. */
#define XLB_ACL_F_ALLOW4 (1u << 0)
#define XLB_ACL_F_DENY4  (1u << 1)
#define XLB_ACL_F_ALLOW6 (1u << 2)
#define XLB_ACL_F_DENY6  (1u << 3)

/* Persistence groups: 1..XLB_PERSIST_GROUP_MAX are chosen by the control
 * plane for services that share entries; a service on its own uses
 * XLB_PERSIST_GROUP_OWN | vs_id. */
#define XLB_PERSIST_GROUP_MAX 0x7fffffffu
#define XLB_PERSIST_GROUP_OWN 0x80000000u
#define XLB_PERSIST_TIMEOUT_MIN 60u
#define XLB_PERSIST_TIMEOUT_MAX 604800u   /* 7 days */

/*
 * xlb_real.flags.  ACTIVE: the slot is in use.  DRAIN, HALT and DOWN record
 * the state the control plane gave the real (no new flows; existing flows
 * continue or not as the control plane decides).  Keeping a real out of new
 * flows is done by leaving it out of the selection table; the data plane
 * reads these three only to ignore a persistence entry naming the real
 * (as it does with RESCHED).  They are also for bpftool dumps, xlbctl and
 * an agent adopting the maps after a restart.  RESCHED: an established flow
 * on this real is not honoured, its packet takes the new-flow path and the
 * flow is placed again (its entry overwritten).
 */
#define XLB_REAL_F_ACTIVE  (1u << 0)
#define XLB_REAL_F_DRAIN   (1u << 1)
#define XLB_REAL_F_HALT    (1u << 2)
#define XLB_REAL_F_DOWN    (1u << 3)
#define XLB_REAL_F_RESCHED (1u << 4)
#define XLB_REAL_F_OPER    (1u << 5)   /* DRAIN/HALT came from the operator, not the config */
#define XLB_REAL_F_NAT     (1u << 6)   /* real of a nat service: its address is in
                                        * xlb_nat_srcs (set by the loader at add) */
#define XLB_REAL_F_FULL    (1u << 7)   /* up, but takes no new flows for now (weight 0,
                                        * or at max_conns): persistence entries naming
                                        * it are ignored too */

/* xlb_reals[real_id]: one entry per (service, real server) pair. */
struct xlb_real {
    struct xlb_addr addr;
    __u32 vs_id;                /* the service this entry belongs to */
    __u8 family;
    __u8 pad;
    __u16 flags;                /* XLB_REAL_F_* */
    __u32 weight;               /* control plane: share in the selection table */
    __u32 gen;                  /* bumped each time the slot is given to a real */
    char name[XLB_NAME_LEN];    /* control plane: NUL-terminated */
    __be16 port_be;             /* nat: the real's port; 0 = the client's
                                 * destination port.  Always 0 for other methods */
    __u8 pad2[2];
};

/* xlb_conns: the connection table (LRU hash, per-CPU LRU lists). */
struct xlb_flow_key {
    struct xlb_addr src;
    struct xlb_addr dst;
    __be16 sport_be;
    __be16 dport_be;
    __u8 proto;
    __u8 family;
    __u8 pad[2];
};

/*
 * xlb_flow_value.flags.  CLOSED: a TCP segment with FIN or RST came from the
 * client.  The flow still goes to its real (the close handshake must get
 * through), is no longer counted as active (xlb_active_scan), and a SYN
 * without ACK on it starts a new connection: scheduled afresh.
 */
#define XLB_FLOW_F_CLOSED (1u << 0)

struct xlb_flow_value {
    __u32 real_id;
    __u32 vs_id;
    __u64 last_seen_ns;         /* jiffies * ns per jiffy (see xlb_dp_clock_ns()),
                                 * refreshed at most once a second */
    __u32 hash;                 /* 5-tuple flow hash, kept for the encapsulation
                                 * entropy */
    __u32 real_gen;             /* xlb_real.gen when the flow was placed: a slot
                                 * given to another real no longer matches */
    __u32 flags;                /* XLB_FLOW_F_*; written only when a bit changes */
    __u32 pad;
};

/*
 * xlb_real_idx: (service, real address) -> real id, kept by the loader for
 * every real in use.  Resolves a persistence entry, which names a real by
 * its address, in the service a new flow is for (port following: the
 * services of one group have reals of their own ids).
 */
struct xlb_real_idx_key {
    struct xlb_addr addr;
    __u32 vs_id;
    __u8 family;
    __u8 pad[3];
};

/*
 * xlb_persist: source-IP persistence (LRU hash).  Key: the client address
 * masked by the service's netmask and the service's persistence group.
 * Value: the real server's identity (family and address) and when a
 * connection last used the entry; real_id/real_gen/vs_id remember the real
 * slot of the service that wrote it, so that this service finds it without
 * the xlb_real_idx lookup.  An entry is honoured while now - last_ns is at
 * most the service's timeout and the real (resolved in the flow's service)
 * is active and neither DRAIN, HALT, DOWN nor RESCHED.
 */
struct xlb_persist_key {
    struct xlb_addr src;        /* client address & netmask */
    __u32 group;                /* xlb_service.persist_group */
    __u8 family;
    __u8 pad[3];
};

struct xlb_persist_value {
    struct xlb_addr real;       /* the real server's address */
    __u64 last_ns;              /* data-plane clock of the last new connection,
                                 * refreshed at most once a second */
    __u32 vs_id;                /* the service that placed it */
    __u32 real_id;              /* its real slot there ... */
    __u32 real_gen;             /* ... and that slot's generation */
    __u8 family;                /* of the real */
    __u8 pad[3];
};

/*
 * xlb_acl4 / xlb_acl6: the prefix lists (LPM tries).  The first 32 bits of
 * the key's data are the list's scope, always part of the prefix, so one
 * trie holds every list: prefixlen = 32 + the address prefix length.
 * A service's allow and deny lists are XLB_ACL_SCOPE_ALLOW/DENY(vs_id),
 * the node's global deny list XLB_ACL_SCOPE_GLOBAL.  Deny wins; an empty
 * allow list allows everything; xlb_service.acl_flags and
 * xlb_settings.global_deny say which lists are not empty.  Value: the
 * address prefix length (informational).
 */
struct xlb_acl4_key {
    __u32 prefixlen;
    __u32 scope;
    __be32 addr_be;
};

struct xlb_acl6_key {
    __u32 prefixlen;
    __u32 scope;
    __be32 addr_be[4];
};

#define XLB_ACL_SCOPE_ALLOW(vs_id) ((vs_id) * 2)
#define XLB_ACL_SCOPE_DENY(vs_id)  ((vs_id) * 2 + 1)
#define XLB_ACL_SCOPE_GLOBAL       0xffffffffu

/*
 * xlb_settings[0]: node settings the data plane reads at run time, written
 * by the loader (at load from struct xlb_load_opts, later by
 * xlb_config_set and the ACL calls).
 */
struct xlb_settings {
    __u32 flood_threshold;      /* new flows per second and CPU above which
                                 * flows are no longer recorded; 0 = off */
    __u32 udp_idle_s;           /* a UDP flow idle longer is placed again */
    __u64 udp_idle_ns;          /* the same in the clock's unit (data plane) */
    __u32 global_deny;          /* XLB_ACL_F_DENY4 / DENY6: the global deny
                                 * list has prefixes of that family */
    __u32 nat_srcs;             /* entries in xlb_nat_srcs: 0 = no nat real, the
                                 * reply check is skipped */
};

/*
 * xlb_flood[0], per CPU: the one-second window of the flood detector.
 * Every packet that misses the connection table and is placed as a new
 * flow counts; above xlb_settings.flood_threshold in one window no flow is
 * recorded (xlb_events[XLB_EV_FLOOD_NO_INSERT]) and packets are placed by
 * hash alone, so every packet of an unrecorded flow finds the same real.
 */
struct xlb_flood {
    __u64 window_ns;            /* start of the current window */
    __u64 new_flows;            /* placed in it */
};

/*
 * xlb_events[event], per CPU: things that happen to packets that also get
 * a verdict (counted in xlb_reasons).  Append only.  Names in
 * loader/xlb_names.c.
 */
enum xlb_event {
    XLB_EV_FLOOD_NO_INSERT = 0, /* flow placed but not recorded: flood mode */
    XLB_EV_PERSIST_HIT,         /* new flow placed by a persistence entry */
    XLB_EV_UDP_IDLE,            /* UDP flow idle past the timeout: placed again */
    XLB_EV_ICMP_TOO_BIG,        /* frag-needed / packet-too-big sent to a flow's real */
    XLB_EV_ICMP_LOW_MTU,        /* ... advertising an MTU below 576 (v4) / 1280 (v6) */
    XLB_EV_FRAGMENT,            /* IP fragment placed by the address hash */
    XLB_EV_NAT_REPLY,           /* reply of a nat real translated back (SNAT) */
    XLB_EV_MAX,
};

/*
 * xlb_frag_vips: (VIP, protocol) -> the service that takes the fragments
 * sent to it (key: struct xlb_vip_key with port_be 0).  A fragment after
 * the first carries no ports, so every fragment of a datagram is matched
 * by address and protocol alone: the loader names the service of the
 * lowest port on that address and protocol (0, the wildcard, first).
 */

/*
 * xlb_vip_filter: a bitmap of VIP addresses and of the addresses of nat
 * reals (bit xlb_vip_filter_bit(addr)), so that traffic to other
 * destinations leaves after one inlined array read, and only sources that
 * may be nat reals are looked up as replies.  A set bit only means "maybe";
 * the hash maps decide.
 */
#define XLB_VIP_FILTER_WORDS 1024   /* 65536 bits */

/*
 * xlb_nh_cache[real_id], per CPU: the next hop towards a real, learnt from
 * bpf_fib_lookup() and trusted for XLB_NH_CACHE_NS.  Userspace may clear it
 * (all zero) to force a new lookup.
 */
struct xlb_nh {
    __u8 dmac[6];
    __u8 smac[6];
    __u32 ifindex;              /* egress */
    __u32 in_ifindex;           /* the ingress the lookup was made for */
    __u32 mtu;                  /* route MTU, 0 = not known */
    struct xlb_addr src;        /* source chosen by the FIB (no tunnel source set) */
    __u32 pad;
    __u64 expires_ns;
};

/* xlb_meta[0]: written by the loader; a pinned set of maps with another
 * abi_version is refused rather than misread. */
struct xlb_meta {
    __u32 abi_version;          /* XLB_ABI_VERSION */
    __u32 pad;
};

/*
 * xlb_sel: per-service selection tables, an array of maps with two slots per
 * service, XLB_SEL_KEY(vs_id, slot); xlb_service.sel_slot names the live one.
 * Each inner map is an ARRAY of __u32 of at least M + 1 entries: entry 0
 * holds M (the table size, 1..XLB_RING_MAX: a prime for Maglev tables, any
 * length for sequences), entries 1..M hold real ids.  A new flow takes entry
 * (x % M) + 1, x being the flow hash, the source hash or the service's
 * per-CPU counter (see XLB_VS_F_*).
 *
 * A new table is written into the idle slot, then sel_slot is flipped with
 * one update of the service: a packet sees the old table or the new one,
 * never a mix.  Writing into the idle slot's existing inner map (when it is
 * large enough) and flipping an array value avoids replacing an entry of the
 * map-in-map, which waits for an RCU grace period (milliseconds): a state
 * change reaches the data plane in microseconds.  The table of a service
 * without a usable real is M = 1 holding XLB_SEL_EMPTY: new flows are dropped
 * (drop_no_real).
 */
#define XLB_SEL_KEY(vs_id, slot) ((vs_id) * 2 + ((slot) & 1))
#define XLB_SEL_SIZE_IDX 0
#define XLB_SEL_EMPTY 0xffffffffu   /* slot with no real */

/*
 * xlb_rr[vs_id], per CPU: the sequence position of XLB_VS_F_SEQ services, a
 * __u32 that counts the new flows this CPU placed.  Each CPU walks the whole
 * sequence from its own position; the loader zeroes it when the service is
 * added.
 */

/* Per-CPU counters, summed by userspace.  xlb_vs_stats count every packet
 * addressed to the service (dropped ones too; the reason is in xlb_reasons),
 * xlb_real_stats what was sent to the real. */
struct xlb_counters {
    __u64 packets;
    __u64 bytes;
    __u64 new_flows;
};

/*
 * xlb_reasons[reason]: what happened to every packet the balancer saw.
 * Append only: the values are an ABI.  Names in loader/xlb_names.c.
 */
enum xlb_reason {
    XLB_R_TX = 0,               /* forwarded out of the receiving interface */
    XLB_R_REDIRECT,             /* forwarded out of another interface */
    XLB_R_PASS_NOT_IP,          /* not IPv4/IPv6: to the stack untouched */
    XLB_R_PASS_NOT_VIP,         /* IP, but no service matches */
    XLB_R_PASS_MALFORMED,       /* IP header unreadable: the stack drops it */
    XLB_R_PASS_NO_NEIGH,        /* next hop not resolved: stack forwards it */
    XLB_R_PASS_FRAGMENT,        /* fragment to a VIP address without a service
                                 * of its protocol */
    XLB_R_ICMP_ECHO_REPLY,      /* echo request to a VIP, answered */
    XLB_R_DROP_MALFORMED,       /* truncated or inconsistent headers */
    XLB_R_DROP_NO_REAL,         /* service has no usable real server */
    XLB_R_DROP_ENCAP,           /* headroom or adjust failure */
    XLB_R_DROP_FIB,             /* no route to the real server */
    XLB_R_DROP_TOO_BIG,         /* encapsulated packet exceeds the MTU */
    XLB_R_DECAP,                /* decap program: tunnel header removed */
    XLB_R_DECAP_PASS,           /* decap program: not for us, untouched */
    XLB_R_DROP_FWD_DISABLED,    /* IP forwarding is off on the interface */
    XLB_R_DROP_ACL_DENY,        /* source in the service's deny list */
    XLB_R_DROP_ACL_NOT_ALLOWED, /* source not in the service's allow list */
    XLB_R_DROP_GLOBAL_DENY,     /* source in the node's deny list (to a VIP) */
    XLB_R_PASS_ICMP_NO_FLOW,    /* ICMP error to a VIP about no known flow */
    XLB_R_DROP_DSR_GATEWAY,     /* dsr: the FIB reaches the real through a gateway */
    XLB_R_DROP_NO_NEIGH,        /* dsr: the real's MAC is not resolved */
    XLB_R_PASS_NAT_NO_ENTRY,    /* from a nat real, no reverse entry: to the stack */
    XLB_R_PASS_NAT_UNTRANSLATED,/* fragment or ICMP error of a nat service: to the
                                 * stack, not translated */
    XLB_R_PASS_NAT_FRAG_NO_ENTRY,/* later IPv4 fragment from a nat real whose first
                                 * fragment was not seen (xlb_nat_frags): to the
                                 * stack, not translated */
    XLB_R_MAX,
};

struct xlb_reason_counter {
    __u64 packets;
    __u64 bytes;
};

/*
 * xlb_nat_rev: the reverse entries of nat flows (LRU hash, per-CPU LRU
 * lists, as many entries as xlb_conns unless the loader is told otherwise).
 * Key: the reply's 5-tuple as it leaves the real, a struct xlb_flow_key with
 * src = real address, sport = real port, dst = client address, dport =
 * client port.  Written with the flow's xlb_conns entry (new flow) and again
 * whenever that entry's last_seen is refreshed (so an evicted entry comes
 * back within a second); a reply refreshes its last_seen too.  Value: what
 * the reply's source becomes.
 */
struct xlb_nat_rev_value {
    struct xlb_addr vip;        /* the VIP the client addressed */
    __be16 vip_port_be;         /* ... and its port */
    __u8 family;
    __u8 pad;
    __u32 vs_id;
    __u32 real_id;
    __u32 pad2;
    __u64 last_seen_ns;         /* data-plane clock, refreshed at most once a second */
};

/*
 * xlb_nat_srcs: (address, family) of every real of a nat service -> the
 * number of such reals (key: struct xlb_vip_addr_key).  Only packets from
 * these addresses are looked up in xlb_nat_rev; xlb_settings.nat_srcs
 * counts the entries so that a node without nat pays nothing.
 */

/* xlb_decap_addrs: outer destinations the decap program accepts. */
struct xlb_decap_key {
    struct xlb_addr addr;
    __u8 family;
    __u8 pad[3];
};

/*
 * xlb_l7_reals: the state of every real of a layer-7 service, written by the
 * agent (which health-checks them and takes operator commands) and read by
 * xlb-proxy, which has no health checks of its own.  No BPF program uses it:
 * the agent creates it (BPF_MAP_TYPE_HASH, XLB_MAX_L7_REALS entries) and pins
 * it as XLB_L7_PIN in the bpffs directory; the proxy opens the pin read-only
 * and polls it.  A real without an entry is unknown to the agent (not yet
 * converged, or no agent): the proxy treats it as up with its configured
 * weight.
 */
#define XLB_L7_PIN "xlb_l7_reals"
#ifndef XLB_MAX_L7_REALS
#define XLB_MAX_L7_REALS 8192
#endif

struct xlb_l7_key {
    char vs[XLB_NAME_LEN];      /* service name, NUL-padded */
    char sub[XLB_NAME_LEN];     /* sub-service name; all zero for the service's own reals */
    struct xlb_addr addr;       /* the real's address (v4: first 4 bytes, rest zero) */
    __u8 family;                /* XLB_FAMILY_V4 / V6 */
    __u8 pad;
    __u16 port;                 /* host order; the configured port, 0 = the service port */
};

enum xlb_l7_state { XLB_L7_UP = 0, XLB_L7_DOWN = 1, XLB_L7_DRAIN = 2, XLB_L7_HALT = 3 };

struct xlb_l7_val {
    __u32 state;                /* enum xlb_l7_state: halt > down > drain > up */
    __u32 weight;               /* in force (operator or config); 0 = no new clients */
    __u64 changed_ms;           /* wall clock (ms since the epoch) of the last state change */
    __u32 check_us;             /* duration of the last health check, 0 = none */
    __u32 gen;                  /* bumped by the agent on every write of this entry */
};

/*
 * xlb_nat_frags: the translation of the later fragments of a nat reply
 * (LRU hash, XLB_NAT_FRAG_TABLE entries, one LRU list).  Only the first
 * fragment of a datagram carries the ports that find the flow's reverse
 * entry; when it passes, the datagram's identity (source = real, destination
 * = client, IP identification, protocol) is recorded with what the source
 * becomes, so that the later fragments get it too.  IPv4 only for now (id_be
 * holds the 16-bit identification); family is XLB_FAMILY_V4.
 */
#ifndef XLB_NAT_FRAG_TABLE
#define XLB_NAT_FRAG_TABLE 16384
#endif

struct xlb_nat_frag_key {
    struct xlb_addr src;        /* the real */
    struct xlb_addr dst;        /* the client */
    __be32 id_be;               /* IP identification */
    __u8 proto;
    __u8 family;
    __u8 pad[2];
};

struct xlb_nat_frag_value {
    struct xlb_addr vip;        /* the source the fragments leave with */
    __be16 vip_port_be;         /* the VIP port (informational: later
                                 * fragments carry no ports) */
    __u8 pad[2];
    __u32 pad2;
    __u64 last_seen_ns;         /* data-plane clock of the first fragment */
};

/*
 * xlb_l7_cmds: operator commands for xlb-proxy that are not configuration:
 * flush a layer-7 service's cache, or purge one URL from it.  The agent
 * creates it (BPF_MAP_TYPE_LRU_HASH, XLB_MAX_L7_CMDS entries), pins it as
 * XLB_L7_CMD_PIN next to xlb_l7_reals and writes an entry per command,
 * bumping gen each time the same command is given again; the proxy polls it
 * and runs every entry whose gen it has not run yet.  No BPF program uses it.
 */
#define XLB_L7_CMD_PIN "xlb_l7_cmds"
#ifndef XLB_MAX_L7_CMDS
#define XLB_MAX_L7_CMDS 1024
#endif
#define XLB_L7_URL_LEN 464

struct xlb_l7_cmd_key {
    char vs[XLB_NAME_LEN];      /* service name, NUL-padded */
    char url[XLB_L7_URL_LEN];   /* all zero: flush the whole cache; else the URL to
                                 * purge, NUL-padded: "/path?query" (every host) or
                                 * "http://host/path?query" / "https://..." */
};

struct xlb_l7_cmd_val {
    __u64 gen;                  /* 1, 2, ...: bumped by the agent for a repeated command */
    __u64 time_ms;              /* wall clock of the last request */
};

#endif /* XLB_ABI_H */
