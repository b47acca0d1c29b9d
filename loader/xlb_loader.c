// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The balancer's object lifecycle and typed map operations.
 *
 * All state lives in pinned maps: services, reals (with their weights and
 * names), selection tables and counters.  A restarted control plane opens
 * them again and continues; nothing is kept only in a process.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/utsname.h>
#include <netinet/in.h>
#include <zlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xlb_attach.h"
#include "xlb_loader.h"
#include "maglev.h"
#include "xlb_addr.h"
#include "xlb_hash.h"
#include "xlb.skel.h"

#define PROG_NAME "xlb_balancer"

struct xlb_dp {
    struct xlb_bpf *skel;
    struct xlb_maps maps;
    char bpffs[256];
    bool no_pin;
    bool fresh_pins;            /* no pinned maps existed: this load creates them */
};

static const char *const map_names[] = {
    "xlb_vips", "xlb_vip_addrs", "xlb_services", "xlb_reals", "xlb_conns",
    "xlb_sel", "xlb_vs_stats", "xlb_real_stats", "xlb_reasons", "xlb_vip_filter",
    "xlb_nh_cache", "xlb_meta",
};

static int *map_slot(struct xlb_maps *m, size_t i)
{
    int *slots[] = { &m->vips, &m->vip_addrs, &m->services, &m->reals, &m->conns,
                     &m->sel, &m->vs_stats, &m->real_stats, &m->reasons, &m->vip_filter,
                     &m->nh_cache, &m->meta };
    return slots[i];
}

#define N_MAPS (sizeof(map_names) / sizeof(map_names[0]))

static void fill_maps_from_skel(struct xlb_dp *dp)
{
    struct xlb_bpf *s = dp->skel;

    dp->maps.vips = bpf_map__fd(s->maps.xlb_vips);
    dp->maps.vip_addrs = bpf_map__fd(s->maps.xlb_vip_addrs);
    dp->maps.services = bpf_map__fd(s->maps.xlb_services);
    dp->maps.reals = bpf_map__fd(s->maps.xlb_reals);
    dp->maps.conns = bpf_map__fd(s->maps.xlb_conns);
    dp->maps.sel = bpf_map__fd(s->maps.xlb_sel);
    dp->maps.vs_stats = bpf_map__fd(s->maps.xlb_vs_stats);
    dp->maps.real_stats = bpf_map__fd(s->maps.xlb_real_stats);
    dp->maps.reasons = bpf_map__fd(s->maps.xlb_reasons);
    dp->maps.vip_filter = bpf_map__fd(s->maps.xlb_vip_filter);
    dp->maps.nh_cache = bpf_map__fd(s->maps.xlb_nh_cache);
    dp->maps.meta = bpf_map__fd(s->maps.xlb_meta);
}

/* CONFIG_HZ of the running kernel from its config, or 0. */
static unsigned kernel_hz(void)
{
    char line[256], path[300];
    struct utsname u;
    unsigned hz = 0;
    gzFile gz;

    gz = gzopen("/proc/config.gz", "r");
    if (!gz && uname(&u) == 0) {
        snprintf(path, sizeof(path), "/boot/config-%s", u.release);
        gz = gzopen(path, "r");     /* reads plain files too */
    }
    if (!gz)
        return 0;
    while (gzgets(gz, line, sizeof(line)))
        if (sscanf(line, "CONFIG_HZ=%u", &hz) == 1)
            break;
    gzclose(gz);
    return hz;
}

uint64_t xlb_ns_per_jiffy(void)
{
    static unsigned hz;

    if (!hz) {
        hz = kernel_hz();
        if (!hz) {
            fprintf(stderr, "xlb: warning: CONFIG_HZ not found in /proc/config.gz or "
                    "/boot/config-*; assuming 250 (only timer granularity depends on it)\n");
            hz = 250;
        }
    }
    return 1000000000ull / hz;
}

/* Pinned maps of another layout must not be reused: compare the version
 * the loader that created them recorded. */
static int check_pinned_abi(const char *bpffs, struct xlb_err *e)
{
    struct xlb_meta meta = {};
    __u32 zero = 0;
    char path[512];
    int fd, err = 0;

    snprintf(path, sizeof(path), "%s/xlb_meta", bpffs);
    fd = bpf_obj_get(path);
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s/xlb_conns", bpffs);
        if (access(path, F_OK) != 0)
            return 0;           /* nothing pinned yet */
    } else if (bpf_map_lookup_elem(fd, &zero, &meta) == 0 &&
               (meta.abi_version == XLB_ABI_VERSION || meta.abi_version == 0)) {
        close(fd);
        return 0;
    }
    if (fd >= 0)
        close(fd);
    err = xlb_errf(e, EPROTO, "the maps pinned in %s were made by an xlb with another map "
                   "layout (version %u, this is %u): 'xlbctl unload' removes them (and the "
                   "flows they hold), then load again", bpffs, meta.abi_version,
                   XLB_ABI_VERSION);
    return err;
}

static uint32_t host_bits(uint8_t plen, uint8_t full, uint32_t max_bits)
{
    uint32_t bits = full - plen;

    return bits > max_bits ? max_bits : bits;
}

int xlb_dp_open(const struct xlb_load_opts *o, struct xlb_dp **out, struct xlb_err *e)
{
    const char *bpffs = o->bpffs ? o->bpffs : XLB_BPFFS_DEFAULT;
    uint32_t conn_size = o->conn_table_size, pinned;
    struct xlb_dp *dp;
    int err;

    err = xlb_check_env(bpffs, !o->no_pin, e);
    if (err)
        return err;
    dp = calloc(1, sizeof(*dp));
    if (!dp)
        return xlb_errf(e, ENOMEM, "out of memory");
    snprintf(dp->bpffs, sizeof(dp->bpffs), "%s", bpffs);
    dp->no_pin = o->no_pin;
    dp->maps.vips = -1;

    dp->skel = xlb_bpf__open();
    if (!dp->skel) {
        err = xlb_errf(e, errno, "cannot open the balancer object: %s", strerror(errno));
        goto fail;
    }
    dp->skel->rodata->cfg_tunnel_src4 = ntohl(o->tunnel_src4.addr_be[0]);
    if (o->tunnel_src4.addr_be[0])
        dp->skel->rodata->cfg_tunnel_src4_bits = host_bits(o->tunnel_src4_plen ?
                                                           o->tunnel_src4_plen : 32, 32, 16);
    memcpy((void *)dp->skel->rodata->cfg_tunnel_src6, o->tunnel_src6.addr_be, 16);
    if (o->tunnel_src6.addr_be[0] | o->tunnel_src6.addr_be[1] | o->tunnel_src6.addr_be[2] |
        o->tunnel_src6.addr_be[3])
        dp->skel->rodata->cfg_tunnel_src6_bits = host_bits(o->tunnel_src6_plen ?
                                                           o->tunnel_src6_plen : 128, 128, 32);
    dp->skel->rodata->cfg_gue_port = o->gue_port ? o->gue_port : XLB_GUE_PORT_DEFAULT;
    dp->skel->rodata->cfg_ns_per_jiffy = xlb_ns_per_jiffy();

    if (!o->no_pin) {
        err = check_pinned_abi(bpffs, e);
        if (err)
            goto fail;
    }
    /* The connection table keeps the size it was pinned with unless the
     * caller asks for another, which needs an unload first. */
    if (!o->no_pin && xlb_pinned_max_entries(bpffs, "xlb_conns", &pinned) == 0) {
        if (conn_size && conn_size != pinned) {
            err = xlb_errf(e, EEXIST, "the pinned connection table in %s has %u entries, not "
                           "%u: keep the size, or 'xlbctl unload' (which drops the flows) and "
                           "load again", bpffs, pinned, conn_size);
            goto fail;
        }
        conn_size = pinned;
    } else {
        dp->fresh_pins = !o->no_pin;
    }
    if (!conn_size)
        conn_size = XLB_CONN_TABLE_DEFAULT;
    bpf_map__set_max_entries(dp->skel->maps.xlb_conns, conn_size);
    if (!o->no_pin) {
        err = xlb_pin_maps(dp->skel->obj, bpffs, e);
        if (err)
            goto fail;
    }
    *out = dp;
    return 0;
fail:
    xlb_dp_close(dp);
    return err;
}

int xlb_dp_load(struct xlb_dp *dp, struct xlb_err *e)
{
    struct xlb_meta meta = { .abi_version = XLB_ABI_VERSION };
    __u32 zero = 0;
    int err = xlb_bpf__load(dp->skel);

    if (err)
        return xlb_load_error(err, "the balancer program", e);
    fill_maps_from_skel(dp);
    if (bpf_map_update_elem(dp->maps.meta, &zero, &meta, BPF_ANY))
        return xlb_errf(e, errno, "cannot write xlb_meta: %s", strerror(errno));
    return 0;
}

/* bpf_fib_lookup() refuses to route for an interface without forwarding:
 * say so at load time rather than leave it to a drop counter. */
static void warn_forwarding(const char *ifname)
{
    static const char *const fam[] = { "ipv4", "ipv6" };
    char path[128];

    for (int i = 0; i < 2; i++) {
        FILE *f;
        int on = 1;

        snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/forwarding", fam[i], ifname);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fscanf(f, "%d", &on) != 1)
            on = 1;
        fclose(f);
        if (!on)
            fprintf(stderr, "xlb: warning: %s forwarding is off on %s: service traffic is "
                    "dropped (drop_fwd_disabled) until 'sysctl -w net.%s.conf.%s.forwarding=1'"
                    "\n", fam[i], ifname, fam[i], ifname);
    }
}

int xlb_dp_attach(struct xlb_dp *dp, const char *ifname, enum xlb_mode mode, struct xlb_err *e)
{
    int err;

    /* Load here rather than in libxdp so that a failure is reported with
     * its cause; libxdp still chooses dispatcher or direct attachment. */
    if (!if_nametoindex(ifname))
        return xlb_errf(e, ENODEV, "no interface named %s in this network namespace "
                        "(see 'ip link')", ifname);
    if (bpf_program__fd(dp->skel->progs.xlb_balancer) < 0) {
        err = xlb_dp_load(dp, e);
        if (err)
            return err;
    }
    err = xlb_attach_prog(dp->skel->obj, PROG_NAME, ifname, mode, e);
    if (!err) {
        warn_forwarding(ifname);
        return 0;
    }
    /* Leave nothing behind that this failed load created; maps that were
     * pinned before hold live state and stay. */
    if (dp->fresh_pins) {
        bpf_object__unpin_maps(dp->skel->obj, NULL);
        rmdir(dp->bpffs);
    }
    return err;
}

int xlb_dp_prog_fd(const struct xlb_dp *dp)
{
    return bpf_program__fd(dp->skel->progs.xlb_balancer);
}

const struct xlb_maps *xlb_dp_maps(const struct xlb_dp *dp)
{
    return &dp->maps;
}

void xlb_dp_close(struct xlb_dp *dp)
{
    if (!dp)
        return;
    xlb_bpf__destroy(dp->skel);  /* closes fds; pins and attachments stay */
    free(dp);
}

int xlb_maps_open_pinned(const char *bpffs, struct xlb_maps *m, struct xlb_err *e)
{
    char path[512];

    xlb_libs_init();
    if (!bpffs)
        bpffs = XLB_BPFFS_DEFAULT;
    for (size_t i = 0; i < N_MAPS; i++)
        *map_slot(m, i) = -1;
    for (size_t i = 0; i < N_MAPS; i++) {
        snprintf(path, sizeof(path), "%s/%s", bpffs, map_names[i]);
        *map_slot(m, i) = bpf_obj_get(path);
        if (*map_slot(m, i) < 0 && errno == ENOENT && i > 0 && !strcmp(map_names[i], "xlb_meta"))
            errno = EPROTO;     /* the other maps exist: an older layout */
        if (*map_slot(m, i) < 0) {
            int err = errno;

            xlb_maps_close(m);
            if (err == ENOENT)
                return xlb_errf(e, err, "no xlb data plane pinned at %s: run 'xlbctl load "
                                "--iface IF' first (or pass the right --bpffs)", bpffs);
            if (err == EPROTO)
                return check_pinned_abi(bpffs, e);
            return xlb_errf(e, err, "cannot open %s: %s%s", path, strerror(err),
                            err == EPERM || err == EACCES ? " (run as root)" : "");
        }
    }
    return check_pinned_abi(bpffs, e) ? (xlb_maps_close(m), -EPROTO) : 0;
}

void xlb_maps_close(struct xlb_maps *m)
{
    for (size_t i = 0; i < N_MAPS; i++) {
        int *fd = map_slot(m, i);

        if (*fd >= 0)
            close(*fd);
        *fd = -1;
    }
}

int xlb_detach(const char *bpffs, const char *ifname, bool unpin, struct xlb_err *e)
{
    struct xlb_iface ifs[1];
    char path[512];
    int err;

    if (!bpffs)
        bpffs = XLB_BPFFS_DEFAULT;
    err = xlb_detach_prog(ifname, PROG_NAME, e);
    /* An interface that is gone runs nothing: go on and unpin. */
    if (err && err != -ENODEV)
        return err;
    if (!unpin || xlb_ifaces_running(PROG_NAME, ifs, 1) > 0)
        return err;
    for (size_t i = 0; i < N_MAPS; i++) {
        snprintf(path, sizeof(path), "%s/%s", bpffs, map_names[i]);
        unlink(path);
    }
    rmdir(bpffs);
    return 0;
}

int xlb_attached_ifaces(struct xlb_iface *out, int max)
{
    return xlb_ifaces_running(PROG_NAME, out, max);
}

/* ---- typed operations ---- */

/* Names appear in metrics labels, JSON and file names: letters, digits,
 * '.', '_' and '-' only. */
static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n >= XLB_NAME_LEN)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
           == n;
}

static int addr_eq(const struct xlb_addr *a, const struct xlb_addr *b)
{
    return !memcmp(a, b, sizeof(*a));
}

int xlb_service_find(const struct xlb_maps *m, const char *name, uint32_t *vs_id,
                     struct xlb_service *out)
{
    struct xlb_service s;

    for (uint32_t id = 0; id < XLB_MAX_SERVICES; id++) {
        if (bpf_map_lookup_elem(m->services, &id, &s))
            return -errno;
        if ((s.flags & XLB_VS_F_ACTIVE) && !strncmp(s.name, name, sizeof(s.name))) {
            if (vs_id)
                *vs_id = id;
            if (out)
                *out = s;
            return 0;
        }
    }
    return -ENOENT;
}

static int filter_set(const struct xlb_maps *m, const struct xlb_addr *a)
{
    __u32 bit = xlb_vip_filter_bit(a), word = bit / 64;
    __u64 v = 0;

    bpf_map_lookup_elem(m->vip_filter, &word, &v);
    v |= 1ULL << (bit % 64);
    return bpf_map_update_elem(m->vip_filter, &word, &v, BPF_ANY) ? -errno : 0;
}

/* Bits cannot be cleared one by one (addresses share them): rebuild the
 * bitmap from the remaining VIP addresses, setting new bits before
 * clearing old ones so that no VIP is ever filtered out. */
static int filter_rebuild(const struct xlb_maps *m)
{
    static __u64 want[XLB_VIP_FILTER_WORDS];
    struct xlb_vip_addr_key k, *prev = NULL;

    memset(want, 0, sizeof(want));
    while (bpf_map_get_next_key(m->vip_addrs, prev, &k) == 0) {
        __u32 bit = xlb_vip_filter_bit(&k.addr);

        want[bit / 64] |= 1ULL << (bit % 64);
        prev = &k;
    }
    for (__u32 w = 0; w < XLB_VIP_FILTER_WORDS; w++) {
        __u64 cur = 0;

        bpf_map_lookup_elem(m->vip_filter, &w, &cur);
        if (cur != want[w] && bpf_map_update_elem(m->vip_filter, &w, &want[w], BPF_ANY))
            return -errno;
    }
    return 0;
}

static int vip_addr_ref(const struct xlb_maps *m, uint8_t family, const struct xlb_addr *a,
                        int delta)
{
    struct xlb_vip_addr_key k = { .addr = *a, .family = family };
    __u32 n = 0;

    bpf_map_lookup_elem(m->vip_addrs, &k, &n);
    n += delta;
    if ((int)n <= 0) {
        if (bpf_map_delete_elem(m->vip_addrs, &k) && errno != ENOENT)
            return -errno;
        return filter_rebuild(m);
    }
    if (bpf_map_update_elem(m->vip_addrs, &k, &n, BPF_ANY))
        return -errno;
    return filter_set(m, a);
}

/* Zero entry id of a per-CPU map whose values are value_size bytes. */
static int percpu_clear(int map_fd, uint32_t id, size_t value_size)
{
    int ncpu = libbpf_num_possible_cpus();
    void *zero;
    int err = 0;

    if (ncpu <= 0)
        return ncpu ? ncpu : -EINVAL;
    zero = calloc(ncpu, (value_size + 7) & ~(size_t)7);
    if (!zero)
        return -ENOMEM;
    if (bpf_map_update_elem(map_fd, &id, zero, BPF_ANY))
        err = -errno;
    free(zero);
    return err;
}

int xlb_counters_clear(int map_fd, uint32_t id)
{
    return percpu_clear(map_fd, id, sizeof(struct xlb_counters));
}

int xlb_service_add(const struct xlb_maps *m, const struct xlb_service_spec *sp, uint32_t *vs_id,
                    struct xlb_err *e)
{
    struct xlb_vip_key vk = { .addr = sp->vip, .port_be = htons(sp->port), .proto = sp->proto,
                              .family = sp->family };
    struct xlb_vip_value vv, old;
    struct xlb_service s = {}, cur;
    uint32_t id, ring = sp->ring_size ? sp->ring_size : XLB_RING_DEFAULT;
    int err;

    if (!name_ok(sp->name))
        return xlb_errf(e, EINVAL, "service name '%s' is not valid: use 1 to %d letters, "
                        "digits, '.', '_' or '-'", sp->name ? sp->name : "", XLB_NAME_LEN - 1);
    if (sp->method != XLB_FWD_IPIP && sp->method != XLB_FWD_GUE)
        return xlb_errf(e, EINVAL, "service %s: forwarding method must be ipip or gue",
                        sp->name);
    if (sp->proto != IPPROTO_TCP && sp->proto != IPPROTO_UDP)
        return xlb_errf(e, EINVAL, "service %s: protocol must be tcp or udp", sp->name);
    if (!xlb_is_prime(ring) || ring > XLB_RING_MAX)
        return xlb_errf(e, EINVAL, "service %s: ring size %u must be a prime no larger than %u "
                        "(65537 is the default)", sp->name, ring, XLB_RING_MAX);
    if (xlb_service_find(m, sp->name, NULL, NULL) == 0)
        return xlb_errf(e, EEXIST, "service %s exists already", sp->name);
    if (bpf_map_lookup_elem(m->vips, &vk, &old) == 0)
        return xlb_errf(e, EEXIST, "service %s: that address, port and protocol already belong "
                        "to another service (id %u)", sp->name, old.vs_id);

    for (id = 0; id < XLB_MAX_SERVICES; id++) {
        if (bpf_map_lookup_elem(m->services, &id, &cur))
            return xlb_errf(e, errno, "cannot read xlb_services: %s", strerror(errno));
        if (!(cur.flags & XLB_VS_F_ACTIVE))
            break;
    }
    if (id == XLB_MAX_SERVICES)
        return xlb_errf(e, ENOSPC, "all %d service slots are used", XLB_MAX_SERVICES);

    s.flags = XLB_VS_F_ACTIVE;
    s.method = sp->method;
    s.family = sp->family;
    s.proto = sp->proto;
    s.ring_size = ring;
    s.port_be = htons(sp->port);
    s.vip = sp->vip;
    snprintf(s.name, sizeof(s.name), "%s", sp->name);

    xlb_counters_clear(m->vs_stats, id);
    /* An empty table first, so the service never runs without one. */
    err = xlb_sel_install(m, id, NULL, ring, e);
    if (err)
        return err;
    if (bpf_map_update_elem(m->services, &id, &s, BPF_ANY))
        return xlb_errf(e, errno, "cannot write service %s: %s", sp->name, strerror(errno));
    vv.vs_id = id;
    if (bpf_map_update_elem(m->vips, &vk, &vv, BPF_NOEXIST)) {
        err = errno;
        memset(&s, 0, sizeof(s));
        bpf_map_update_elem(m->services, &id, &s, BPF_ANY);
        return xlb_errf(e, err, "cannot add the VIP of service %s: %s", sp->name,
                        strerror(err));
    }
    err = vip_addr_ref(m, sp->family, &sp->vip, +1);
    if (err) {
        xlb_service_del(m, sp->name, NULL);
        return xlb_errf(e, -err, "cannot register the VIP of service %s: %s", sp->name,
                        strerror(-err));
    }
    if (vs_id)
        *vs_id = id;
    return 0;
}

/* Take a real slot out of service, keeping its generation. */
static int real_slot_clear(const struct xlb_maps *m, uint32_t id)
{
    struct xlb_real r;

    if (bpf_map_lookup_elem(m->reals, &id, &r))
        return -errno;
    memset(&r, 0, offsetof(struct xlb_real, gen));
    memset(r.name, 0, sizeof(r.name));
    return bpf_map_update_elem(m->reals, &id, &r, BPF_ANY) ? -errno : 0;
}

int xlb_service_del(const struct xlb_maps *m, const char *name, struct xlb_err *e)
{
    struct xlb_vip_key k, next;
    struct xlb_vip_value v;
    struct xlb_service s, zero = {};
    struct xlb_real r;
    uint32_t id;
    void *prev = NULL;

    if (xlb_service_find(m, name, &id, &s))
        return xlb_errf(e, ENOENT, "no service named %s (see 'xlbctl status')", name);
    /* Stop matching packets first, then take the rest down. */
    while (bpf_map_get_next_key(m->vips, prev, &next) == 0) {
        if (bpf_map_lookup_elem(m->vips, &next, &v) == 0 && v.vs_id == id) {
            bpf_map_delete_elem(m->vips, &next);
            vip_addr_ref(m, next.family, &next.addr, -1);
            prev = NULL;        /* restart: deletion invalidates the cursor */
            continue;
        }
        k = next;
        prev = &k;
    }
    bpf_map_update_elem(m->services, &id, &zero, BPF_ANY);
    bpf_map_delete_elem(m->sel, &id);
    for (uint32_t rid = 0; rid < XLB_MAX_REALS; rid++)
        if (bpf_map_lookup_elem(m->reals, &rid, &r) == 0 && (r.flags & XLB_REAL_F_ACTIVE) &&
            r.vs_id == id)
            real_slot_clear(m, rid);
    return 0;
}

int xlb_real_find(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                  const struct xlb_addr *addr, uint32_t *real_id)
{
    struct xlb_real r;

    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        if (bpf_map_lookup_elem(m->reals, &id, &r))
            return -errno;
        if ((r.flags & XLB_REAL_F_ACTIVE) && r.vs_id == vs_id && r.family == family &&
            addr_eq(&r.addr, addr)) {
            *real_id = id;
            return 0;
        }
    }
    return -ENOENT;
}

int xlb_real_add(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, uint32_t weight, const char *name,
                 uint32_t *real_id, struct xlb_err *e)
{
    struct xlb_service s;
    struct xlb_real r = {}, cur;
    uint32_t id;
    char abuf[XLB_ADDR_STRLEN];

    if (bpf_map_lookup_elem(m->services, &vs_id, &s) || !(s.flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u", vs_id);
    xlb_addr_str(addr, family, abuf, sizeof(abuf));
    if (s.family == XLB_FAMILY_V6 && family == XLB_FAMILY_V4)
        return xlb_errf(e, EINVAL, "service %s has an IPv6 VIP; real %s is IPv4, and IPv6 "
                        "cannot be carried inside IPv4 here: give the real an IPv6 address",
                        s.name, abuf);
    if (xlb_real_find(m, vs_id, family, addr, &id) == 0)
        return xlb_errf(e, EEXIST, "real %s is already in service %s", abuf, s.name);
    if (name && !name_ok(name))
        return xlb_errf(e, EINVAL, "real name '%s' is not valid: use 1 to %d letters, "
                        "digits, '.', '_' or '-'", name, XLB_NAME_LEN - 1);
    for (id = 0; id < XLB_MAX_REALS; id++) {
        if (bpf_map_lookup_elem(m->reals, &id, &cur))
            return xlb_errf(e, errno, "cannot read xlb_reals: %s", strerror(errno));
        if (!(cur.flags & XLB_REAL_F_ACTIVE))
            break;
    }
    if (id == XLB_MAX_REALS)
        return xlb_errf(e, ENOSPC, "all %d real-server slots are used", XLB_MAX_REALS);
    r.addr = *addr;
    r.vs_id = vs_id;
    r.family = family;
    r.flags = XLB_REAL_F_ACTIVE;
    r.weight = weight;
    r.gen = cur.gen + 1;        /* flows placed on the slot's former real don't match */
    snprintf(r.name, sizeof(r.name), "%s", name ? name : abuf);
    xlb_counters_clear(m->real_stats, id);
    percpu_clear(m->nh_cache, id, sizeof(struct xlb_nh));  /* the id may have named another real */
    if (bpf_map_update_elem(m->reals, &id, &r, BPF_ANY))
        return xlb_errf(e, errno, "cannot write real %s: %s", abuf, strerror(errno));
    if (real_id)
        *real_id = id;
    return 0;
}

int xlb_real_del(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, struct xlb_err *e)
{
    struct xlb_real r;
    uint32_t id;
    int err;

    if (xlb_real_find(m, vs_id, family, addr, &id))
        return xlb_errf(e, ENOENT, "no such real in service %u", vs_id);
    /* First a table without it, so that no new flow is sent to a slot that
     * is about to be empty; then the real itself. */
    if (bpf_map_lookup_elem(m->reals, &id, &r) == 0 && r.weight) {
        r.weight = 0;
        if (bpf_map_update_elem(m->reals, &id, &r, BPF_ANY) == 0) {
            err = xlb_service_rebuild(m, vs_id, e);
            if (err)
                return err;
        }
    }
    err = real_slot_clear(m, id);
    if (err)
        return xlb_errf(e, -err, "cannot remove real %u: %s", id, strerror(-err));
    return 0;
}

int xlb_sel_install(const struct xlb_maps *m, uint32_t vs_id, const uint32_t *table,
                    uint32_t size, struct xlb_err *e)
{
    LIBBPF_OPTS(bpf_map_create_opts, co, .map_flags = BPF_F_INNER_MAP);
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    uint32_t *keys = NULL, *vals = NULL, count = size + 1;
    int fd, err = 0;

    if (!xlb_is_prime(size))
        return xlb_errf(e, EINVAL, "selection table size %u is not prime", size);
    fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_sel_tbl", sizeof(__u32), sizeof(__u32), count,
                        &co);
    if (fd < 0)
        return xlb_errf(e, errno, "cannot create a selection table of %u entries: %s", size,
                        strerror(errno));
    keys = malloc(count * sizeof(*keys));
    vals = malloc(count * sizeof(*vals));
    if (!keys || !vals) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) {
        keys[i] = i;
        vals[i] = i == XLB_SEL_SIZE_IDX ? size : (table ? table[i - 1] : XLB_SEL_EMPTY);
    }
    if (bpf_map_update_batch(fd, keys, vals, &count, &bo)) {
        err = xlb_errf(e, errno, "cannot fill the selection table: %s", strerror(errno));
        goto out;
    }
    /* The one step that makes the new table live. */
    if (bpf_map_update_elem(m->sel, &vs_id, &fd, BPF_ANY))
        err = xlb_errf(e, errno, "cannot install the selection table of service %u: %s", vs_id,
                       strerror(errno));
out:
    free(keys);
    free(vals);
    close(fd);
    return err;
}

int xlb_service_rebuild(const struct xlb_maps *m, uint32_t vs_id, struct xlb_err *e)
{
    struct xlb_maglev_backend *b;
    struct xlb_service s;
    struct xlb_real *reals;
    struct real_identity {      /* family and address: the same on every node */
        __u8 family;
        __u8 pad[3];
        struct xlb_addr addr;
    } *ids;
    uint32_t *table;
    size_t n = 0;
    int err;

    if (bpf_map_lookup_elem(m->services, &vs_id, &s) || !(s.flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u", vs_id);
    b = calloc(XLB_MAX_REALS, sizeof(*b));
    reals = calloc(XLB_MAX_REALS, sizeof(*reals));
    ids = calloc(XLB_MAX_REALS, sizeof(*ids));
    table = malloc(sizeof(*table) * s.ring_size);
    if (!b || !reals || !ids || !table) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        struct xlb_real *r = &reals[n];

        if (bpf_map_lookup_elem(m->reals, &id, r) || !(r->flags & XLB_REAL_F_ACTIVE) ||
            r->vs_id != vs_id)
            continue;
        ids[n].family = r->family;
        ids[n].addr = r->addr;
        b[n].id = &ids[n];
        b[n].id_len = sizeof(ids[n]);
        b[n].weight = r->weight;
        b[n].value = id;
        n++;
    }
    err = xlb_maglev_build(b, n, table, s.ring_size);
    if (err) {
        err = xlb_errf(e, -err, "cannot build the Maglev table of service %s: %s", s.name,
                       strerror(-err));
        goto out;
    }
    err = xlb_sel_install(m, vs_id, table, s.ring_size, e);
out:
    free(b);
    free(reals);
    free(ids);
    free(table);
    return err;
}

/* ---- counters ---- */

/* Sum entry id of a per-CPU map whose value is n_words __u64 counters. */
static int percpu_sum(int map_fd, uint32_t id, __u64 *sum, size_t n_words)
{
    int ncpu = libbpf_num_possible_cpus();
    __u64 *v;

    memset(sum, 0, n_words * sizeof(*sum));
    if (ncpu <= 0)
        return ncpu ? ncpu : -EINVAL;
    v = calloc((size_t)ncpu * n_words, sizeof(*v));
    if (!v)
        return -ENOMEM;
    if (bpf_map_lookup_elem(map_fd, &id, v)) {
        free(v);
        return -errno;
    }
    for (int cpu = 0; cpu < ncpu; cpu++)
        for (size_t w = 0; w < n_words; w++)
            sum[w] += v[cpu * n_words + w];
    free(v);
    return 0;
}

_Static_assert(sizeof(struct xlb_counters) % 8 == 0 &&
               sizeof(struct xlb_reason_counter) % 8 == 0, "counters are __u64 words");

int xlb_counters_read(int map_fd, uint32_t id, struct xlb_counters *sum)
{
    return percpu_sum(map_fd, id, (__u64 *)sum, sizeof(*sum) / 8);
}

int xlb_reason_read(int map_fd, uint32_t reason, struct xlb_reason_counter *sum)
{
    return percpu_sum(map_fd, reason, (__u64 *)sum, sizeof(*sum) / 8);
}
