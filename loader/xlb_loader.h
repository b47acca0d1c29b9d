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
    struct xlb_addr tunnel_src4;
    uint8_t tunnel_src4_plen;   /* host bits below plen vary per flow */
    struct xlb_addr tunnel_src6;
    uint8_t tunnel_src6_plen;
    uint16_t gue_port;          /* 0 = XLB_GUE_PORT_DEFAULT */
};

/* File descriptors of the balancer's maps (see xlb_abi.h). */
struct xlb_maps {
    int vips, vip_addrs, services, reals, conns, sel, vs_stats, real_stats, reasons,
        vip_filter, nh_cache, meta;
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

/* ---- typed control operations ---- */

struct xlb_service_spec {
    const char *name;
    uint8_t family;
    struct xlb_addr vip;
    uint16_t port;              /* host order; 0 = every port */
    uint8_t proto;              /* IPPROTO_TCP / IPPROTO_UDP */
    uint8_t method;             /* enum xlb_fwd_method */
    uint32_t ring_size;         /* prime; 0 = XLB_RING_DEFAULT */
};

int xlb_service_add(const struct xlb_maps *m, const struct xlb_service_spec *s, uint32_t *vs_id,
                    struct xlb_err *e);
int xlb_service_del(const struct xlb_maps *m, const char *name, struct xlb_err *e);
int xlb_service_find(const struct xlb_maps *m, const char *name, uint32_t *vs_id,
                     struct xlb_service *out);

int xlb_real_add(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, uint32_t weight, const char *name,
                 uint32_t *real_id, struct xlb_err *e);
int xlb_real_del(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, struct xlb_err *e);
int xlb_real_find(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                  const struct xlb_addr *addr, uint32_t *real_id);

/* Install table[0..size-1] (real ids) as the service's selection table in
 * one step.  size must be prime. */
int xlb_sel_install(const struct xlb_maps *m, uint32_t vs_id, const uint32_t *table,
                    uint32_t size, struct xlb_err *e);
/* Rebuild the service's Maglev table from its active reals and weights. */
int xlb_service_rebuild(const struct xlb_maps *m, uint32_t vs_id, struct xlb_err *e);

/* ---- counters (summed over CPUs) ---- */
int xlb_counters_read(int map_fd, uint32_t id, struct xlb_counters *sum);
int xlb_reason_read(int map_fd, uint32_t reason, struct xlb_reason_counter *sum);
int xlb_counters_clear(int map_fd, uint32_t id);
const char *xlb_reason_name(uint32_t reason);

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
