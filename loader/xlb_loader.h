/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * libxlb loader: the lifecycle of the XDP objects and typed access to their
 * maps.
 *
 *   xlb_dp_open()      open the balancer skeleton, apply settings, size and
 *                      pin maps (reusing pinned ones: state survives restarts)
 *   xlb_dp_attach()    load (if needed) and attach through libxdp
 *   xlb_dp_load()      load without attaching (tests, benchmarks)
 *   xlb_maps_open_pinned()  control access to a running data plane
 *
 * Every function returns 0 or a negative errno and, given a struct xlb_err,
 * explains the failure and its fix.
 */
#ifndef XLB_LOADER_H
#define XLB_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/types.h>

#include "xlb_abi.h"
#include "xlb_err.h"

#define XLB_BPFFS_DEFAULT "/sys/fs/bpf/xlb"

enum xlb_mode {
    XLB_MODE_AUTO = 0,          /* native, else generic with a warning */
    XLB_MODE_NATIVE,
    XLB_MODE_GENERIC,
};

struct xlb_load_opts {
    const char *bpffs;          /* pin directory; NULL = XLB_BPFFS_DEFAULT */
    bool no_pin;                /* private maps (tests, benchmarks) */
    uint32_t conn_table_size;   /* 0 = keep the pinned size, else the default */
    uint32_t nat_table_size;    /* reverse entries of nat flows (xlb_nat_rev);
                                 * 0 = keep the pinned size, else as many as
                                 * the connection table */
    struct xlb_addr tunnel_src4;
    uint8_t tunnel_src4_plen;   /* host bits below plen vary per flow */
    struct xlb_addr tunnel_src6;
    uint8_t tunnel_src6_plen;
    uint16_t gue_port;          /* 0 = XLB_GUE_PORT_DEFAULT */
    /* Node settings kept in xlb_settings (see struct xlb_dp_config); 0 keeps
     * the pinned value (fresh maps: flood mode off, UDP idle timeout
     * XLB_UDP_IDLE_DEFAULT_S).  xlb_config_set changes them at run time,
     * including back to 0 (off). */
    uint32_t flood_threshold;   /* new flows per second and CPU */
    uint32_t udp_idle_timeout_s;  /* 1..XLB_UDP_IDLE_MAX_S */
};

#define XLB_UDP_IDLE_MAX_S 86400u

/* File descriptors of the balancer's maps (see xlb_abi.h). */
struct xlb_maps {
    int vips, vip_addrs, services, reals, conns, sel, vs_stats, real_stats, reasons,
        vip_filter, nh_cache, rr, meta, real_idx, persist, acl4, acl6, settings, flood, events,
        frag_vips, nat_rev, nat_srcs, nat_frags;
};

struct xlb_dp;

int xlb_dp_open(const struct xlb_load_opts *o, struct xlb_dp **out, struct xlb_err *e);
int xlb_dp_load(struct xlb_dp *dp, struct xlb_err *e);
int xlb_dp_attach(struct xlb_dp *dp, const char *ifname, enum xlb_mode mode,
                  struct xlb_err *e);
int xlb_dp_prog_fd(const struct xlb_dp *dp);
const struct xlb_maps *xlb_dp_maps(const struct xlb_dp *dp);
/* Closing never detaches and never unpins: forwarding continues. */
void xlb_dp_close(struct xlb_dp *dp);

/* Detach the balancer from ifname.  With unpin, and no other interface
 * still attached, the pinned maps are removed too. */
int xlb_detach(const char *bpffs, const char *ifname, bool unpin, struct xlb_err *e);

/* Names of the interfaces (of this network namespace) the balancer is
 * attached to, with their modes.  Returns the count, or a negative errno. */
struct xlb_iface {
    char name[32];
    char mode[24];              /* native, generic, multiprog-native ... */
};
int xlb_attached_ifaces(struct xlb_iface *out, int max);

int xlb_maps_open_pinned(const char *bpffs, struct xlb_maps *m, struct xlb_err *e);
void xlb_maps_close(struct xlb_maps *m);

int xlb_parse_mode(const char *s, enum xlb_mode *mode);

/* The data plane's clock unit: nanoseconds per jiffy (1e9 / CONFIG_HZ). */
uint64_t xlb_ns_per_jiffy(void);

/*
 * The data plane's clock now, in the unit of xlb_flow_value.last_seen_ns
 * (bpf_jiffies64() * ns per jiffy), computed in userspace: the first call
 * relates the kernel's jiffies (/proc/timer_list, root only) to
 * CLOCK_MONOTONIC, later calls add CLOCK_MONOTONIC's progress.  Within a
 * jiffy or two of the data plane's own reading.  Without /proc/timer_list
 * the boot-time origin of jiffies is assumed, which may be off by the
 * fraction of a second the kernel ran before its tick started.
 * Thread-safe.
 */
uint64_t xlb_dp_clock_ns(void);

/* ---- typed control operations ---- */

struct xlb_service_spec {
    const char *name;
    uint8_t family;
    struct xlb_addr vip;
    uint16_t port;              /* host order; 0 = every port */
    uint8_t proto;              /* IPPROTO_TCP / IPPROTO_UDP */
    uint8_t method;             /* enum xlb_fwd_method: ipip, gue, dsr or nat */
    uint32_t ring_size;         /* Maglev size for xlb_service_rebuild, prime;
                                 * 0 = XLB_RING_DEFAULT */
    uint32_t flags;             /* XLB_VS_F_SEQ or XLB_VS_F_SRC_HASH (or 0); ACTIVE
                                 * is implied */
};

/* Add a service with its first (port, protocol) and the "no usable real"
 * table (size 1, XLB_SEL_EMPTY): it drops new flows until a table is
 * installed.  Its sequence position starts at 0 on every CPU. */
int xlb_service_add(const struct xlb_maps *m, const struct xlb_service_spec *s, uint32_t *vs_id,
                    struct xlb_err *e);
int xlb_service_del(const struct xlb_maps *m, const char *name, struct xlb_err *e);
int xlb_service_find(const struct xlb_maps *m, const char *name, uint32_t *vs_id,
                     struct xlb_service *out);
/* Set, then clear, table-kind flags of service vs_id: only XLB_VS_F_SEQ and
 * XLB_VS_F_SRC_HASH, and never both in the result.  New flows index the
 * installed table the new way at once: install the matching table next. */
int xlb_service_set_flags(const struct xlb_maps *m, uint32_t vs_id, uint32_t set,
                          uint32_t clear, struct xlb_err *e);

/* Another (port, protocol) on the service's address (port 0: every port).
 * -EEXIST, naming the owning service, when the entry is taken. */
int xlb_vip_add(const struct xlb_maps *m, uint32_t vs_id, uint16_t port, uint8_t proto,
                struct xlb_err *e);
/* Remove one (port, protocol) of the service (-ENOENT if it has not that
 * one).  When it was the one xlb_service names, another remaining entry
 * takes its place there. */
int xlb_vip_del(const struct xlb_maps *m, uint32_t vs_id, uint16_t port, uint8_t proto,
                struct xlb_err *e);
/* The service's (address, port, protocol) entries, up to max of them into
 * out (may be NULL with max 0).  Returns how many there are (may exceed
 * max) or a negative errno. */
int xlb_vip_list(const struct xlb_maps *m, uint32_t vs_id, struct xlb_vip_key *out, int max);

/*
 * A real server of a service.  What the service's forwarding method
 * requires of it is checked when it is added:
 *   ipip, gue  either family, except an IPv4 real for an IPv6 VIP (IPv6 is
 *              not carried inside IPv4); port 0
 *   dsr        the VIP's family; port 0; on a directly connected network of
 *              this host (the route to it, as `ip route get` finds it in
 *              the caller's network namespace, has no gateway), else
 *              -EHOSTUNREACH (-ENETUNREACH: no route, -EADDRINUSE: one of
 *              this host's addresses) naming the real and the fix
 *   nat        the VIP's family; port 0 (the client's destination port is
 *              kept) or the port the real listens on (80 -> 8080)
 */
struct xlb_real_spec {
    uint8_t family;             /* XLB_FAMILY_V4 / XLB_FAMILY_V6 */
    struct xlb_addr addr;
    uint16_t port;              /* host order; nat only, 0 = the client's port */
    uint32_t weight;
    const char *name;           /* NULL: the address */
};

/* Add a real to service vs_id; its id into *real_id (may be NULL). */
int xlb_real_add_spec(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_real_spec *rs,
                      uint32_t *real_id, struct xlb_err *e);
/* xlb_real_add_spec with port 0. */
int xlb_real_add(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, uint32_t weight, const char *name,
                 uint32_t *real_id, struct xlb_err *e);
/*
 * Change the port of nat real real_id (0: the client's destination port).
 * Every packet of the real's flows goes to the new port at once, those of
 * established connections too (their reverse entries follow within a
 * second); to move only new connections, remove the real and add it again.
 */
int xlb_real_set_port(const struct xlb_maps *m, uint32_t real_id, uint16_t port,
                      struct xlb_err *e);
/* Remove a real: first from the selection table (if it is in it: a
 * sequence loses its entries, a hash table gives each of its entries the
 * real of the next entry, so that no other flow moves), then its slot. */
/*
 * Bulk changes: one read of every real slot, then finds and adds that work
 * on it instead of scanning the map per call (the agent adds thousands of
 * reals at a start).  xlb_real_add_snap keeps the snapshot current; other
 * writers make it stale.
 */
struct xlb_reals_snap {
    struct xlb_real r[XLB_MAX_REALS];
    uint32_t next_free;         /* no free slot below this one */
};
int xlb_reals_snap_read(const struct xlb_maps *m, struct xlb_reals_snap *snap, struct xlb_err *e);
int xlb_reals_snap_find(const struct xlb_reals_snap *snap, uint32_t vs_id, uint8_t family,
                        const struct xlb_addr *addr, uint32_t *real_id);
int xlb_real_add_snap(const struct xlb_maps *m, struct xlb_reals_snap *snap, uint32_t vs_id,
                      uint8_t family, const struct xlb_addr *addr, uint32_t weight,
                      const char *name, uint32_t *real_id, struct xlb_err *e);
/* The same with a port and the checks of xlb_real_add_spec. */
int xlb_real_add_snap_spec(const struct xlb_maps *m, struct xlb_reals_snap *snap,
                           uint32_t vs_id, const struct xlb_real_spec *rs, uint32_t *real_id,
                           struct xlb_err *e);
int xlb_real_del(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, struct xlb_err *e);
int xlb_real_find(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                  const struct xlb_addr *addr, uint32_t *real_id);
/* Set, then clear, state flags of a real in use (XLB_REAL_F_DRAIN, HALT,
 * DOWN, RESCHED; ACTIVE is not changed here) and, when weight is not NULL,
 * its weight.  The selection table is not touched. */
int xlb_real_update(const struct xlb_maps *m, uint32_t real_id, uint32_t flags_set,
                    uint32_t flags_clear, const uint32_t *weight, struct xlb_err *e);
/* The entry of a real in use; -ENOENT for a free slot or an id out of range. */
int xlb_real_get(const struct xlb_maps *m, uint32_t real_id, struct xlb_real *out);

/*
 * Count, per real id, the flows of the connection table that are active:
 * they still belong to that real (the flow's vs_id and real_gen match the
 * real's current entry, which is in use), are not XLB_FLOW_F_CLOSED, and
 * were seen within idle_tcp_ns (TCP) or idle_udp_ns (UDP) of
 * xlb_dp_clock_ns().  last_seen is refreshed once a second, so timeouts
 * below a second or two count too few.  active[] has XLB_MAX_REALS entries
 * and is zeroed first.  Walks the table in batches (one entry at a time
 * where the kernel has no batch lookup); flows that come and go meanwhile
 * may or may not be counted.  Returns the number of entries walked or a
 * negative errno.
 */
int xlb_active_scan(const struct xlb_maps *m, uint64_t idle_tcp_ns, uint64_t idle_udp_ns,
                    uint32_t *active, struct xlb_err *e);

/* Install table[0..size-1] (real ids, or XLB_SEL_EMPTY) as the service's
 * selection table in one step.  size is 1..XLB_RING_MAX; Maglev tables are
 * prime, sequences any length; table NULL: size empty slots. */
/* The live selection table of the service: an fd to close, or -errno. */
int xlb_sel_live_fd(const struct xlb_maps *m, uint32_t vs_id);
int xlb_sel_install(const struct xlb_maps *m, uint32_t vs_id, const uint32_t *table,
                    uint32_t size, struct xlb_err *e);
/* Rebuild the service's table as Maglev (ring_size entries) from its reals
 * in use that are not DRAIN, HALT or DOWN, by weight; with none of positive
 * weight, the "no usable real" table. */
int xlb_service_rebuild(const struct xlb_maps *m, uint32_t vs_id, struct xlb_err *e);

/* ---- source-IP persistence ---- */

struct xlb_persist_spec {
    uint32_t timeout_s;         /* XLB_PERSIST_TIMEOUT_MIN..MAX (1 minute to 7
                                 * days) after the last new connection; 0 = off */
    uint8_t netmask4;           /* prefix length applied to IPv4 clients, 0..32
                                 * (32: each address on its own) */
    uint8_t netmask6;           /* the same for IPv6 clients, 0..128 */
    uint32_t group;             /* 0: the service's own entries; 1..
                                 * XLB_PERSIST_GROUP_MAX: entries shared with
                                 * every service of that group (port following:
                                 * give the services of one address one group) */
};

/*
 * Set the persistence of service vs_id (timeout 0 turns it off).  New
 * flows look up the client's entry first; entries of another netmask or
 * group are no longer found and age out of the LRU table.  The netmask of
 * the VIP's family is the one used.
 */
int xlb_persist_set(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_persist_spec *p,
                    struct xlb_err *e);
/* The service's persistence settings (timeout 0: off); -ENOENT without the
 * service.  A group of 0 is reported for a service on its own. */
int xlb_persist_get(const struct xlb_maps *m, uint32_t vs_id, struct xlb_persist_spec *out);

/* ---- access lists ---- */

/* One prefix: family XLB_FAMILY_V4 (plen 0..32) or XLB_FAMILY_V6 (0..128).
 * Host bits below plen are ignored. */
struct xlb_prefix {
    uint8_t family;
    uint8_t plen;
    struct xlb_addr addr;
};

/*
 * Replace the allow and the deny list of service vs_id (either may be
 * empty: n 0, pointer may be NULL).  Deny wins; an empty allow list allows
 * every source; both families may be in one list.  Every packet of the
 * service is checked, established flows too.  The change is hitless:
 * new prefixes are added before the lists are switched on, stale ones are
 * removed last, so during the call a source may match the old or the new
 * lists.
 */
int xlb_acl_set(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_prefix *allow,
                size_t n_allow, const struct xlb_prefix *deny, size_t n_deny, struct xlb_err *e);
/* Replace the node's deny list: every packet to a VIP address from one of
 * these sources is dropped (drop_global_deny), whatever the service. */
int xlb_global_deny_set(const struct xlb_maps *m, const struct xlb_prefix *deny, size_t n,
                        struct xlb_err *e);

/* ---- node settings ---- */

struct xlb_dp_config {
    uint32_t flood_threshold;   /* new flows per second and CPU above which flows
                                 * are forwarded by hash without being recorded
                                 * (xlb_events flood_no_insert); 0 = off */
    uint32_t udp_idle_timeout_s; /* a UDP flow idle longer is placed again;
                                 * 1..XLB_UDP_IDLE_MAX_S, 0 = XLB_UDP_IDLE_DEFAULT_S */
};

int xlb_config_get(const struct xlb_maps *m, struct xlb_dp_config *out);
/* Takes effect at once on every CPU. */
int xlb_config_set(const struct xlb_maps *m, const struct xlb_dp_config *c, struct xlb_err *e);

/*
 * How this host reaches addr (RTM_GETROUTE, what `ip route get` asks, in
 * the caller's network namespace): 0 when on a directly connected network
 * (a unicast route without gateway), -EHOSTUNREACH through a gateway,
 * -EADDRINUSE for an address of this host, -ENETUNREACH or another -errno
 * without a usable route.  A short description ("directly connected on
 * eth0", "its route goes via 198.18.0.254 dev eth0") goes into how.
 */
int xlb_route_onlink(uint8_t family, const struct xlb_addr *addr, char *how, size_t how_len);

/* ---- counters (summed over CPUs) ---- */
int xlb_counters_read(int map_fd, uint32_t id, struct xlb_counters *sum);
int xlb_reason_read(int map_fd, uint32_t reason, struct xlb_reason_counter *sum);
int xlb_counters_clear(int map_fd, uint32_t id);
const char *xlb_reason_name(uint32_t reason);
/* xlb_events[event] summed over CPUs (enum xlb_event). */
int xlb_event_read(int map_fd, uint32_t event, uint64_t *sum);
const char *xlb_event_name(uint32_t event);

/* ---- the decap program, for real servers ---- */
struct xlb_decap_opts {
    const char *bpffs;          /* NULL = XLB_BPFFS_DEFAULT */
    bool no_pin;
    uint16_t gue_port;          /* 0 = default */
    int n_addrs;
    const struct xlb_decap_key *addrs;
};
struct xlb_decap;
int xlb_decap_open(const struct xlb_decap_opts *o, struct xlb_decap **out, struct xlb_err *e);
int xlb_decap_load(struct xlb_decap *d, struct xlb_err *e);
int xlb_decap_attach(struct xlb_decap *d, const char *ifname, enum xlb_mode mode,
                     struct xlb_err *e);
int xlb_decap_prog_fd(const struct xlb_decap *d);
int xlb_decap_reasons_fd(const struct xlb_decap *d);
void xlb_decap_close(struct xlb_decap *d);
int xlb_decap_detach(const char *bpffs, const char *ifname, struct xlb_err *e);

#endif
