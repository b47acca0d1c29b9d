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
 *   - loader/xlb_loader.c   (map names, sizes, the typed add/remove calls)
 *   - xlbctl/xlbctl.c       (status output, reason names)
 *   - loader/xlb_names.c    (xlb_reason_name: one string per enum xlb_reason)
 *   - tests/bpf/            (fixtures that read counters)
 * Changing a struct layout is an incompatible change for pinned maps: bump
 * XLB_ABI_VERSION; the loader compares it with xlb_meta in the pinned maps
 * and refuses to reuse maps of another layout.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define XLB_ABI_VERSION 2

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
#define XLB_RING_MAX 1048573        /* largest prime a table may have */
#endif
#ifndef XLB_MAX_DECAP_ADDRS
#define XLB_MAX_DECAP_ADDRS 256
#endif
#ifndef XLB_GUE_PORT_DEFAULT
#define XLB_GUE_PORT_DEFAULT 6080
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
};

#define XLB_VS_F_ACTIVE   (1u << 0)

#define XLB_NAME_LEN 48

/* xlb_services[vs_id].  The data plane reads flags and method; the rest
 * describes the service for the control plane and `bpftool map dump`. */
struct xlb_service {
    __u32 flags;                /* XLB_VS_F_* */
    __u8 method;                /* enum xlb_fwd_method */
    __u8 family;                /* of the VIP */
    __u8 proto;                 /* IPPROTO_TCP / IPPROTO_UDP */
    __u8 pad;
    __u32 ring_size;            /* selection table size (prime) */
    __be16 port_be;             /* first port; all ports are in xlb_vips */
    __u8 pad2[2];
    struct xlb_addr vip;
    char name[XLB_NAME_LEN];    /* NUL-terminated */
};

#define XLB_REAL_F_ACTIVE (1u << 0)

/* xlb_reals[real_id]: one entry per (service, real server) pair. */
struct xlb_real {
    struct xlb_addr addr;
    __u32 vs_id;                /* the service this entry belongs to */
    __u8 family;
    __u8 flags;                 /* XLB_REAL_F_* */
    __u8 pad[2];
    __u32 weight;               /* control plane: share in the selection table */
    __u32 gen;                  /* bumped each time the slot is given to a real */
    char name[XLB_NAME_LEN];    /* control plane: NUL-terminated */
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

struct xlb_flow_value {
    __u32 real_id;
    __u32 vs_id;
    __u64 last_seen_ns;         /* jiffies * ns per jiffy (see xlb_ns_per_jiffy()),
                                 * refreshed at most once a second */
    __u32 hash;                 /* flow hash, kept for the encapsulation entropy */
    __u32 real_gen;             /* xlb_real.gen when the flow was placed: a slot
                                 * given to another real no longer matches */
};

/*
 * xlb_vip_filter: a bitmap of VIP addresses (bit xlb_vip_filter_bit(addr)),
 * so that traffic to other addresses leaves after one inlined array read.
 * A set bit only means "maybe a VIP"; the hash maps decide.
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
 * xlb_sel: per-service selection tables, an array of maps indexed by vs_id.
 * Each inner map is an ARRAY of __u32 of M + 1 entries: entry 0 holds M (the
 * table size, a prime), entries 1..M hold real ids.  A new table is built in
 * a fresh inner map and installed by one update of the outer slot, so a
 * packet sees either the old table or the new one, never a mix.
 */
#define XLB_SEL_SIZE_IDX 0
#define XLB_SEL_EMPTY 0xffffffffu   /* slot with no real */

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
    XLB_R_PASS_FRAGMENT,        /* fragment of service traffic */
    XLB_R_ICMP_ECHO_REPLY,      /* echo request to a VIP, answered */
    XLB_R_DROP_MALFORMED,       /* truncated or inconsistent headers */
    XLB_R_DROP_NO_REAL,         /* service has no usable real server */
    XLB_R_DROP_ENCAP,           /* headroom or adjust failure */
    XLB_R_DROP_FIB,             /* no route to the real server */
    XLB_R_DROP_TOO_BIG,         /* encapsulated packet exceeds the MTU */
    XLB_R_DECAP,                /* decap program: tunnel header removed */
    XLB_R_DECAP_PASS,           /* decap program: not for us, untouched */
    XLB_R_DROP_FWD_DISABLED,    /* IP forwarding is off on the interface */
    XLB_R_MAX,
};

struct xlb_reason_counter {
    __u64 packets;
    __u64 bytes;
};

/* xlb_decap_addrs: outer destinations the decap program accepts. */
struct xlb_decap_key {
    struct xlb_addr addr;
    __u8 family;
    __u8 pad[3];
};

#endif /* XLB_ABI_H */
