/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the balancer program.  Key/value layouts live in xlb_abi.h; the
 * loader sizes xlb_conns and xlb_nat_rev before load and pins every map. */
#ifndef XLB_MAPS_H
#define XLB_MAPS_H

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_VIPS);
    __type(key, struct xlb_vip_key);
    __type(value, struct xlb_vip_value);
} xlb_vips SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_VIPS);
    __type(key, struct xlb_vip_addr_key);
    __type(value, __u32);
} xlb_vip_addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, XLB_MAX_SERVICES);
    __type(key, __u32);
    __type(value, struct xlb_service);
} xlb_services SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, XLB_MAX_REALS);
    __type(key, __u32);
    __type(value, struct xlb_real);
} xlb_reals SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, XLB_CONN_TABLE_DEFAULT);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __type(key, struct xlb_flow_key);
    __type(value, struct xlb_flow_value);
} xlb_conns SEC(".maps");

/* Template for the per-service selection tables; BPF_F_INNER_MAP lets each
 * service have its own table size. */
struct xlb_sel_table {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, XLB_RING_DEFAULT + 1);
    __uint(map_flags, BPF_F_INNER_MAP);
    __type(key, __u32);
    __type(value, __u32);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2 * XLB_MAX_SERVICES);
    __type(key, __u32);
    __array(values, struct xlb_sel_table);
} xlb_sel SEC(".maps");

/* Sequence positions of XLB_VS_F_SEQ services, per CPU. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_MAX_SERVICES);
    __type(key, __u32);
    __type(value, __u32);
} xlb_rr SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xlb_meta);
} xlb_meta SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, XLB_VIP_FILTER_WORDS);
    __type(key, __u32);
    __type(value, __u64);
} xlb_vip_filter SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_MAX_REALS);
    __type(key, __u32);
    __type(value, struct xlb_nh);
} xlb_nh_cache SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_MAX_SERVICES);
    __type(key, __u32);
    __type(value, struct xlb_counters);
} xlb_vs_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_MAX_REALS);
    __type(key, __u32);
    __type(value, struct xlb_counters);
} xlb_real_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_R_MAX);
    __type(key, __u32);
    __type(value, struct xlb_reason_counter);
} xlb_reasons SEC(".maps");

/* (service, real address) -> real id, for persistence entries. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_REALS);
    __type(key, struct xlb_real_idx_key);
    __type(value, __u32);
} xlb_real_idx SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, XLB_PERSIST_TABLE_DEFAULT);
    __type(key, struct xlb_persist_key);
    __type(value, struct xlb_persist_value);
} xlb_persist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, XLB_MAX_ACL);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct xlb_acl4_key);
    __type(value, __u32);
} xlb_acl4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, XLB_MAX_ACL);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct xlb_acl6_key);
    __type(value, __u32);
} xlb_acl6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xlb_settings);
} xlb_settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xlb_flood);
} xlb_flood SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XLB_EV_MAX);
    __type(key, __u32);
    __type(value, __u64);
} xlb_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_VIPS);
    __type(key, struct xlb_vip_key);
    __type(value, struct xlb_vip_value);
} xlb_frag_vips SEC(".maps");

/* Reverse entries of nat flows; the loader sizes it before load. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, XLB_CONN_TABLE_DEFAULT);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __type(key, struct xlb_flow_key);
    __type(value, struct xlb_nat_rev_value);
} xlb_nat_rev SEC(".maps");

/* Addresses of the reals of nat services -> how many reals have them. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XLB_MAX_REALS);
    __type(key, struct xlb_vip_addr_key);
    __type(value, __u32);
} xlb_nat_srcs SEC(".maps");

/* Translations of the later fragments of nat replies (one LRU list: the
 * fragments of a datagram may arrive on different CPUs). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, XLB_NAT_FRAG_TABLE);
    __type(key, struct xlb_nat_frag_key);
    __type(value, struct xlb_nat_frag_value);
} xlb_nat_frags SEC(".maps");

#endif
