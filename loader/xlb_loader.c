// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The balancer's object lifecycle and typed map operations.
 *
 * All state lives in pinned maps: services, reals (with their weights and
 * names), selection tables and counters.  A restarted control plane opens
 * them again and continues; nothing is kept only in a process.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
/* Layouts the ABI version 7 describes (explicit padding, no holes). */
_Static_assert(sizeof(struct xlb_flow_key) == 40, "xlb_flow_key layout");
_Static_assert(sizeof(struct xlb_flow_value) == 32, "xlb_flow_value layout");
_Static_assert(sizeof(struct xlb_real) == 84, "xlb_real layout");
_Static_assert(sizeof(struct xlb_nat_rev_value) == 40, "xlb_nat_rev_value layout");
_Static_assert(sizeof(struct xlb_settings) == 24, "xlb_settings layout");
_Static_assert(sizeof(struct xlb_nat_frag_key) == 40, "xlb_nat_frag_key layout");
_Static_assert(sizeof(struct xlb_nat_frag_value) == 32, "xlb_nat_frag_value layout");

#define XLB_STR_(x) #x
#define XLB_STR(x) XLB_STR_(x)

struct xlb_dp {
    struct xlb_bpf *skel;
    struct xlb_maps maps;
    char bpffs[256];
    bool no_pin;
    bool fresh_pins;            /* no pinned maps existed: this load creates them */
    uint32_t flood_threshold;   /* from xlb_load_opts, written at load */
    uint32_t udp_idle_s;
};

static const char *const map_names[] = {
    "xlb_vips", "xlb_vip_addrs", "xlb_services", "xlb_reals", "xlb_conns",
    "xlb_sel", "xlb_vs_stats", "xlb_real_stats", "xlb_reasons", "xlb_vip_filter",
    "xlb_nh_cache", "xlb_rr", "xlb_meta", "xlb_real_idx", "xlb_persist", "xlb_acl4",
    "xlb_acl6", "xlb_settings", "xlb_flood", "xlb_events", "xlb_frag_vips", "xlb_nat_rev",
    "xlb_nat_srcs", "xlb_nat_frags",
};

static int *map_slot(struct xlb_maps *m, size_t i)
{
    int *slots[] = { &m->vips, &m->vip_addrs, &m->services, &m->reals, &m->conns,
                     &m->sel, &m->vs_stats, &m->real_stats, &m->reasons, &m->vip_filter,
                     &m->nh_cache, &m->rr, &m->meta, &m->real_idx, &m->persist, &m->acl4,
                     &m->acl6, &m->settings, &m->flood, &m->events, &m->frag_vips,
                     &m->nat_rev, &m->nat_srcs, &m->nat_frags };
    _Static_assert(sizeof(slots) / sizeof(slots[0]) == sizeof(map_names) / sizeof(map_names[0]),
                   "one slot per map name");

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
    dp->maps.rr = bpf_map__fd(s->maps.xlb_rr);
    dp->maps.meta = bpf_map__fd(s->maps.xlb_meta);
    dp->maps.real_idx = bpf_map__fd(s->maps.xlb_real_idx);
    dp->maps.persist = bpf_map__fd(s->maps.xlb_persist);
    dp->maps.acl4 = bpf_map__fd(s->maps.xlb_acl4);
    dp->maps.acl6 = bpf_map__fd(s->maps.xlb_acl6);
    dp->maps.settings = bpf_map__fd(s->maps.xlb_settings);
    dp->maps.flood = bpf_map__fd(s->maps.xlb_flood);
    dp->maps.events = bpf_map__fd(s->maps.xlb_events);
    dp->maps.frag_vips = bpf_map__fd(s->maps.xlb_frag_vips);
    dp->maps.nat_rev = bpf_map__fd(s->maps.xlb_nat_rev);
    dp->maps.nat_srcs = bpf_map__fd(s->maps.xlb_nat_srcs);
    dp->maps.nat_frags = bpf_map__fd(s->maps.xlb_nat_frags);
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

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * jiffies and CLOCK_MONOTONIC at one moment, from /proc/timer_list: its
 * header says "now at N nsecs" (ktime_get(), i.e. CLOCK_MONOTONIC) and the
 * first CPU's tick section "jiffies: J" microseconds later.  Returns 0 or
 * -errno.
 */
static int timer_list_sample(uint64_t *jiffies, uint64_t *mono)
{
    unsigned long long v;
    char line[256];
    bool have_now = false;
    uint64_t before = mono_ns();
    FILE *f = fopen("/proc/timer_list", "re");
    int err = -ENOENT;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (!have_now && sscanf(line, "now at %llu nsecs", &v) == 1) {
            *mono = v;
            have_now = true;
        } else if (sscanf(line, "jiffies: %llu", &v) == 1) {
            *jiffies = v;
            if (!have_now)      /* not seen: the middle of the read */
                *mono = before + (mono_ns() - before) / 2;
            err = 0;
            break;
        }
    }
    fclose(f);
    return err;
}

uint64_t xlb_dp_clock_ns(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static bool calibrated;
    static int64_t offset;      /* data-plane clock minus CLOCK_MONOTONIC */
    uint64_t npj = xlb_ns_per_jiffy();

    pthread_mutex_lock(&lock);
    if (!calibrated) {
        uint64_t j, mono;

        if (timer_list_sample(&j, &mono) == 0) {
            offset = (int64_t)(j * npj - mono);
        } else {
            /* jiffies_64 starts at INITIAL_JIFFIES (-300 s, as 32 bits) when
             * the monotonic clock starts at 0. */
            uint64_t hz = 1000000000ull / npj;

            offset = (int64_t)((uint64_t)(uint32_t)(-300 * (int64_t)hz) * npj);
        }
        calibrated = true;
    }
    pthread_mutex_unlock(&lock);
    return mono_ns() + (uint64_t)offset;
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
    uint32_t conn_size = o->conn_table_size, nat_size = o->nat_table_size, pinned;
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
    if (o->udp_idle_timeout_s > XLB_UDP_IDLE_MAX_S) {
        err = xlb_errf(e, EINVAL, "the UDP idle timeout of %u s is longer than the %u s "
                       "allowed", o->udp_idle_timeout_s, XLB_UDP_IDLE_MAX_S);
        goto fail;
    }
    dp->flood_threshold = o->flood_threshold;
    dp->udp_idle_s = o->udp_idle_timeout_s;

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
    /* The reverse entries of nat flows, likewise. */
    if (!o->no_pin && xlb_pinned_max_entries(bpffs, "xlb_nat_rev", &pinned) == 0) {
        if (nat_size && nat_size != pinned) {
            err = xlb_errf(e, EEXIST, "the pinned nat reverse table in %s has %u entries, not "
                           "%u: keep the size, or 'xlbctl unload' (which drops the flows) and "
                           "load again", bpffs, pinned, nat_size);
            goto fail;
        }
        nat_size = pinned;
    }
    if (!nat_size)
        nat_size = conn_size;
    bpf_map__set_max_entries(dp->skel->maps.xlb_nat_rev, nat_size);
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
    /* Settings the options name replace the pinned ones; the others stay
     * (fresh maps: defaults). */
    {
        struct xlb_dp_config c;

        err = xlb_config_get(&dp->maps, &c);
        if (err)
            return xlb_errf(e, -err, "cannot read xlb_settings: %s", strerror(-err));
        if (dp->flood_threshold)
            c.flood_threshold = dp->flood_threshold;
        if (dp->udp_idle_s)
            c.udp_idle_timeout_s = dp->udp_idle_s;
        err = xlb_config_set(&dp->maps, &c, e);
        if (err)
            return err;
    }
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
    /* A set of another layout may lack maps of this one: say so, rather
     * than that nothing is pinned. */
    if (check_pinned_abi(bpffs, e))
        return -EPROTO;
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
 * bitmap from the remaining VIP addresses and nat real addresses, setting
 * new bits before clearing old ones so that no VIP is ever filtered out. */
static int filter_rebuild(const struct xlb_maps *m)
{
    static __u64 want[XLB_VIP_FILTER_WORDS];
    const int maps[2] = { m->vip_addrs, m->nat_srcs };
    struct xlb_vip_addr_key k, *prev;

    memset(want, 0, sizeof(want));
    for (int i = 0; i < 2; i++) {
        prev = NULL;
        while (bpf_map_get_next_key(maps[i], prev, &k) == 0) {
            __u32 bit = xlb_vip_filter_bit(&k.addr);

            want[bit / 64] |= 1ULL << (bit % 64);
            prev = &k;
        }
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

/*
 * Point xlb_frag_vips at the service that takes the fragments sent to
 * (family, addr, proto): the one of the lowest port there (0, the wildcard,
 * first), the same on every node with the same configuration; no entry when
 * no service is left on it.  Called after every change of xlb_vips.
 */
static int frag_vip_sync(const struct xlb_maps *m, uint8_t family, const struct xlb_addr *addr,
                         uint8_t proto)
{
    struct xlb_vip_key k, next, fk = { .addr = *addr, .proto = proto, .family = family };
    struct xlb_vip_value v, best = { 0 };
    void *prev = NULL;
    int best_port = -1;

    while (bpf_map_get_next_key(m->vips, prev, &next) == 0) {
        if (next.family == family && next.proto == proto && addr_eq(&next.addr, addr) &&
            bpf_map_lookup_elem(m->vips, &next, &v) == 0 &&
            (best_port < 0 || ntohs(next.port_be) < best_port)) {
            best_port = ntohs(next.port_be);
            best = v;
        }
        k = next;
        prev = &k;
    }
    if (best_port < 0)
        return bpf_map_delete_elem(m->frag_vips, &fk) && errno != ENOENT ? -errno : 0;
    return bpf_map_update_elem(m->frag_vips, &fk, &best, BPF_ANY) ? -errno : 0;
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

/* The name of service id, for messages ("id N" when unreadable). */
static const char *service_name(const struct xlb_maps *m, uint32_t id, char *buf, size_t len)
{
    struct xlb_service s;

    if (bpf_map_lookup_elem(m->services, &id, &s) == 0 && (s.flags & XLB_VS_F_ACTIVE))
        snprintf(buf, len, "%s", s.name);
    else
        snprintf(buf, len, "id %u", id);
    return buf;
}

static int table_flags_ok(uint32_t flags)
{
    return !(flags & ~(XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH)) &&
           (flags & (XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH)) != (XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH);
}

/* The "no usable real" table: one slot, XLB_SEL_EMPTY. */
static int sel_install_empty(const struct xlb_maps *m, uint32_t vs_id, struct xlb_err *e)
{
    uint32_t empty = XLB_SEL_EMPTY;

    return xlb_sel_install(m, vs_id, &empty, 1, e);
}

int xlb_service_add(const struct xlb_maps *m, const struct xlb_service_spec *sp, uint32_t *vs_id,
                    struct xlb_err *e)
{
    struct xlb_vip_key vk = { .addr = sp->vip, .port_be = htons(sp->port), .proto = sp->proto,
                              .family = sp->family };
    struct xlb_vip_value vv, old;
    struct xlb_service s = {}, cur;
    uint32_t id, ring = sp->ring_size ? sp->ring_size : XLB_RING_DEFAULT;
    uint32_t flags = sp->flags & ~XLB_VS_F_ACTIVE;
    char owner[XLB_NAME_LEN + 16];
    int err;

    if (!name_ok(sp->name))
        return xlb_errf(e, EINVAL, "service name '%s' is not valid: use 1 to %d letters, "
                        "digits, '.', '_' or '-'", sp->name ? sp->name : "", XLB_NAME_LEN - 1);
    if (sp->method != XLB_FWD_IPIP && sp->method != XLB_FWD_GUE &&
        sp->method != XLB_FWD_DSR && sp->method != XLB_FWD_NAT)
        return xlb_errf(e, EINVAL, "service %s: forwarding method must be ipip, gue, dsr or "
                        "nat, not %u", sp->name, sp->method);
    if (sp->proto != IPPROTO_TCP && sp->proto != IPPROTO_UDP)
        return xlb_errf(e, EINVAL, "service %s: protocol must be tcp or udp", sp->name);
    if (!xlb_is_prime(ring) || ring > XLB_RING_MAX)
        return xlb_errf(e, EINVAL, "service %s: ring size %u must be a prime no larger than %u "
                        "(65537 is the default)", sp->name, ring, XLB_RING_MAX);
    if (!table_flags_ok(flags))
        return xlb_errf(e, EINVAL, "service %s: flags 0x%x are not valid: a service takes "
                        "XLB_VS_F_SEQ or XLB_VS_F_SRC_HASH or neither", sp->name, sp->flags);
    if (xlb_service_find(m, sp->name, NULL, NULL) == 0)
        return xlb_errf(e, EEXIST, "service %s exists already", sp->name);
    if (bpf_map_lookup_elem(m->vips, &vk, &old) == 0)
        return xlb_errf(e, EEXIST, "service %s: that address, port and protocol already belong "
                        "to another service (%s)", sp->name,
                        service_name(m, old.vs_id, owner, sizeof(owner)));

    for (id = 0; id < XLB_MAX_SERVICES; id++) {
        if (bpf_map_lookup_elem(m->services, &id, &cur))
            return xlb_errf(e, errno, "cannot read xlb_services: %s", strerror(errno));
        if (!(cur.flags & XLB_VS_F_ACTIVE))
            break;
    }
    if (id == XLB_MAX_SERVICES)
        return xlb_errf(e, ENOSPC, "all %d service slots are used", XLB_MAX_SERVICES);

    s.flags = XLB_VS_F_ACTIVE | flags;
    s.method = sp->method;
    s.family = sp->family;
    s.proto = sp->proto;
    s.ring_size = ring;
    s.port_be = htons(sp->port);
    s.vip = sp->vip;
    snprintf(s.name, sizeof(s.name), "%s", sp->name);

    xlb_counters_clear(m->vs_stats, id);
    percpu_clear(m->rr, id, sizeof(__u32));
    /* A table first, so the service never runs without one. */
    err = sel_install_empty(m, id, e);
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
    if (!err)
        err = frag_vip_sync(m, sp->family, &sp->vip, sp->proto);
    if (err) {
        xlb_service_del(m, sp->name, NULL);
        return xlb_errf(e, -err, "cannot register the VIP of service %s: %s", sp->name,
                        strerror(-err));
    }
    if (vs_id)
        *vs_id = id;
    return 0;
}

/* The service vs_id when it is in use, else an error in e. */
static int service_get(const struct xlb_maps *m, uint32_t vs_id, struct xlb_service *s,
                       struct xlb_err *e)
{
    if (vs_id >= XLB_MAX_SERVICES || bpf_map_lookup_elem(m->services, &vs_id, s) ||
        !(s->flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u (see 'xlbctl status')", vs_id);
    return 0;
}

int xlb_service_set_flags(const struct xlb_maps *m, uint32_t vs_id, uint32_t set,
                          uint32_t clear, struct xlb_err *e)
{
    const uint32_t kinds = XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH;
    struct xlb_service s;
    uint32_t flags;
    int err;

    if ((set | clear) & ~kinds)
        return xlb_errf(e, EINVAL, "service id %u: only the table-kind flags (sequence, "
                        "source hash) can be changed, not 0x%x", vs_id, (set | clear) & ~kinds);
    err = service_get(m, vs_id, &s, e);
    if (err)
        return err;
    flags = (s.flags | set) & ~clear;
    if (!table_flags_ok(flags & kinds))
        return xlb_errf(e, EINVAL, "service %s: a table is either a sequence or indexed by "
                        "the source hash, not both", s.name);
    if (flags == s.flags)
        return 0;
    s.flags = flags;
    if (bpf_map_update_elem(m->services, &vs_id, &s, BPF_EXIST))
        return xlb_errf(e, errno, "cannot write service %s: %s", s.name, strerror(errno));
    return 0;
}

int xlb_vip_add(const struct xlb_maps *m, uint32_t vs_id, uint16_t port, uint8_t proto,
                struct xlb_err *e)
{
    struct xlb_vip_value v = { .vs_id = vs_id }, old;
    struct xlb_vip_key k;
    struct xlb_service s;
    char owner[XLB_NAME_LEN + 16], abuf[XLB_ADDR_STRLEN];
    int err;

    err = service_get(m, vs_id, &s, e);
    if (err)
        return err;
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        return xlb_errf(e, EINVAL, "service %s: protocol must be tcp or udp, not %u", s.name,
                        proto);
    k = (struct xlb_vip_key){ .addr = s.vip, .port_be = htons(port), .proto = proto,
                              .family = s.family };
    xlb_addr_str(&s.vip, s.family, abuf, sizeof(abuf));
    if (bpf_map_lookup_elem(m->vips, &k, &old) == 0)
        return xlb_errf(e, EEXIST, "service %s: %s port %u/%s already belongs to service %s",
                        s.name, abuf, port, xlb_proto_str(proto),
                        service_name(m, old.vs_id, owner, sizeof(owner)));
    if (bpf_map_update_elem(m->vips, &k, &v, BPF_NOEXIST)) {
        err = errno;
        return xlb_errf(e, err, "service %s: cannot add %s port %u/%s: %s%s", s.name, abuf,
                        port, xlb_proto_str(proto), strerror(err),
                        err == E2BIG ? " (all " XLB_STR(XLB_MAX_VIPS) " VIP entries are in use)"
                                     : "");
    }
    err = vip_addr_ref(m, s.family, &s.vip, +1);
    if (!err)
        err = frag_vip_sync(m, s.family, &s.vip, proto);
    if (err) {
        bpf_map_delete_elem(m->vips, &k);
        frag_vip_sync(m, s.family, &s.vip, proto);
        return xlb_errf(e, -err, "service %s: cannot register %s: %s", s.name, abuf,
                        strerror(-err));
    }
    return 0;
}

int xlb_vip_list(const struct xlb_maps *m, uint32_t vs_id, struct xlb_vip_key *out, int max)
{
    struct xlb_vip_key k, next;
    struct xlb_vip_value v;
    void *prev = NULL;
    int n = 0;

    while (bpf_map_get_next_key(m->vips, prev, &next) == 0) {
        if (bpf_map_lookup_elem(m->vips, &next, &v) == 0 && v.vs_id == vs_id) {
            if (n < max)
                out[n] = next;
            n++;
        }
        k = next;
        prev = &k;
    }
    return errno == ENOENT ? n : -errno;
}

int xlb_vip_del(const struct xlb_maps *m, uint32_t vs_id, uint16_t port, uint8_t proto,
                struct xlb_err *e)
{
    struct xlb_vip_key k, rest;
    struct xlb_vip_value v;
    struct xlb_service s;
    char abuf[XLB_ADDR_STRLEN];
    int err;

    err = service_get(m, vs_id, &s, e);
    if (err)
        return err;
    k = (struct xlb_vip_key){ .addr = s.vip, .port_be = htons(port), .proto = proto,
                              .family = s.family };
    xlb_addr_str(&s.vip, s.family, abuf, sizeof(abuf));
    if (bpf_map_lookup_elem(m->vips, &k, &v) || v.vs_id != vs_id)
        return xlb_errf(e, ENOENT, "service %s has no %s port %u/%s", s.name, abuf, port,
                        xlb_proto_str(proto));
    if (bpf_map_delete_elem(m->vips, &k))
        return xlb_errf(e, errno, "service %s: cannot remove %s port %u/%s: %s", s.name, abuf,
                        port, xlb_proto_str(proto), strerror(errno));
    err = vip_addr_ref(m, s.family, &s.vip, -1);
    if (!err)
        err = frag_vip_sync(m, s.family, &s.vip, proto);
    if (err)
        return xlb_errf(e, -err, "service %s: cannot update the VIP address filter: %s",
                        s.name, strerror(-err));
    /* xlb_service names one of the entries (status shows it). */
    if (s.port_be == k.port_be && s.proto == proto && xlb_vip_list(m, vs_id, &rest, 1) > 0) {
        s.port_be = rest.port_be;
        s.proto = rest.proto;
        bpf_map_update_elem(m->services, &vs_id, &s, BPF_EXIST);
    }
    return 0;
}

static struct xlb_real_idx_key real_idx_key(const struct xlb_real *r)
{
    struct xlb_real_idx_key k;

    memset(&k, 0, sizeof(k));
    k.addr = r->addr;
    k.vs_id = r->vs_id;
    k.family = r->family;
    return k;
}

/* The method names of error messages. */
static const char *method_str(uint8_t m)
{
    switch (m) {
    case XLB_FWD_IPIP:
        return "ipip";
    case XLB_FWD_GUE:
        return "gue";
    case XLB_FWD_DSR:
        return "dsr";
    case XLB_FWD_NAT:
        return "nat";
    default:
        return "?";
    }
}

/*
 * Count a nat real's address in xlb_nat_srcs (delta +1 or -1), keeping
 * xlb_settings.nat_srcs equal to the number of addresses there: the first
 * real of an address is counted before the data plane looks for its
 * replies, the address goes when its last real does.
 */
static int nat_src_ref(const struct xlb_maps *m, uint8_t family, const struct xlb_addr *a,
                       int delta)
{
    struct xlb_vip_addr_key k = { .addr = *a, .family = family };
    struct xlb_settings c;
    __u32 n = 0, zero = 0;
    int had, err;

    had = bpf_map_lookup_elem(m->nat_srcs, &k, &n) == 0;
    if (!had)
        n = 0;
    if (delta > 0)
        n++;
    else if (n > 0)
        n--;
    if (n == 0) {
        if (had && bpf_map_delete_elem(m->nat_srcs, &k) && errno != ENOENT)
            return -errno;
    } else if (bpf_map_update_elem(m->nat_srcs, &k, &n, BPF_ANY)) {
        return -errno;
    }
    if (had == (n > 0))
        return 0;
    /* The address filter lets its packets through to the reply check. */
    err = n > 0 ? filter_set(m, a) : filter_rebuild(m);
    if (err)
        return err;
    if (bpf_map_lookup_elem(m->settings, &zero, &c))
        return -errno;
    if (n > 0)
        c.nat_srcs++;
    else if (c.nat_srcs > 0)
        c.nat_srcs--;
    return bpf_map_update_elem(m->settings, &zero, &c, BPF_ANY) ? -errno : 0;
}

/* Take a real slot out of service, keeping its generation. */
static int real_slot_clear(const struct xlb_maps *m, uint32_t id)
{
    struct xlb_real_idx_key k;
    struct xlb_real r;
    __u32 cur;

    if (bpf_map_lookup_elem(m->reals, &id, &r))
        return -errno;
    k = real_idx_key(&r);
    if (bpf_map_lookup_elem(m->real_idx, &k, &cur) == 0 && cur == id)
        bpf_map_delete_elem(m->real_idx, &k);
    if ((r.flags & XLB_REAL_F_ACTIVE) && (r.flags & XLB_REAL_F_NAT))
        nat_src_ref(m, r.family, &r.addr, -1);
    memset(&r, 0, offsetof(struct xlb_real, gen));
    memset(r.name, 0, sizeof(r.name));
    r.port_be = 0;
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
            frag_vip_sync(m, next.family, &next.addr, next.proto);
            prev = NULL;        /* restart: deletion invalidates the cursor */
            continue;
        }
        k = next;
        prev = &k;
    }
    xlb_acl_set(m, id, NULL, 0, NULL, 0, NULL);     /* its lists, unused from now on */
    bpf_map_update_elem(m->services, &id, &zero, BPF_ANY);
    bpf_map_delete_elem(m->sel, &(uint32_t){ XLB_SEL_KEY(id, 0) });
    bpf_map_delete_elem(m->sel, &(uint32_t){ XLB_SEL_KEY(id, 1) });
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

int xlb_reals_snap_read(const struct xlb_maps *m, struct xlb_reals_snap *snap, struct xlb_err *e)
{
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    static uint32_t keys[XLB_MAX_REALS];
    uint32_t count = XLB_MAX_REALS, out_tok;

    if (bpf_map_lookup_batch(m->reals, NULL, &out_tok, keys, snap->r, &count, &bo) ||
        count != XLB_MAX_REALS) {
        /* No batch lookup here: one entry at a time. */
        for (uint32_t id = 0; id < XLB_MAX_REALS; id++)
            if (bpf_map_lookup_elem(m->reals, &id, &snap->r[id]))
                return xlb_errf(e, errno, "cannot read xlb_reals: %s", strerror(errno));
    }
    snap->next_free = 0;
    return 0;
}

int xlb_reals_snap_find(const struct xlb_reals_snap *snap, uint32_t vs_id, uint8_t family,
                        const struct xlb_addr *addr, uint32_t *real_id)
{
    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        const struct xlb_real *r = &snap->r[id];

        if ((r->flags & XLB_REAL_F_ACTIVE) && r->vs_id == vs_id && r->family == family &&
            addr_eq(&r->addr, addr)) {
            *real_id = id;
            return 0;
        }
    }
    return -ENOENT;
}

/* The checks of a new real rs of service s (read by the caller), as its
 * forwarding method requires (see struct xlb_real_spec). */
static int real_add_check(const struct xlb_service *s, const struct xlb_real_spec *rs,
                          const char *abuf, struct xlb_err *e)
{
    bool l2 = s->method == XLB_FWD_DSR || s->method == XLB_FWD_NAT;
    char how[128];
    int err;

    if (rs->family != XLB_FAMILY_V4 && rs->family != XLB_FAMILY_V6)
        return xlb_errf(e, EINVAL, "real %s: family must be IPv4 or IPv6", abuf);
    if (l2 && rs->family != s->family)
        return xlb_errf(e, EINVAL, "service %s (%s) has an IPv%d VIP; real %s is IPv%d, and "
                        "%s does not change the address family: give the real an IPv%d "
                        "address", s->name, method_str(s->method), s->family, abuf,
                        rs->family, method_str(s->method), s->family);
    if (!l2 && s->family == XLB_FAMILY_V6 && rs->family == XLB_FAMILY_V4)
        return xlb_errf(e, EINVAL, "service %s has an IPv6 VIP; real %s is IPv4, and IPv6 "
                        "cannot be carried inside IPv4 here: give the real an IPv6 address",
                        s->name, abuf);
    if (rs->port && s->method != XLB_FWD_NAT)
        return xlb_errf(e, EINVAL, "real %s of service %s: a port (%u) needs the nat method; "
                        "%s forwards to the port the client addressed: leave the port out",
                        abuf, s->name, rs->port, method_str(s->method));
    if (rs->name && !name_ok(rs->name))
        return xlb_errf(e, EINVAL, "real name '%s' is not valid: use 1 to %d letters, "
                        "digits, '.', '_' or '-'", rs->name, XLB_NAME_LEN - 1);
    if (s->method == XLB_FWD_DSR) {
        err = xlb_route_onlink(rs->family, &rs->addr, how, sizeof(how));
        if (err)
            return xlb_errf(e, -err, "real %s of service %s cannot be reached by dsr: %s. "
                            "dsr rewrites only the MAC address, so the real must be on a "
                            "network directly connected to this balancer (same L2 segment, "
                            "no router between): give it an address on such a network, or "
                            "use ipip, gue or nat for this service", abuf, s->name,
                            how[0] ? how : strerror(-err));
    }
    return 0;
}

/* Give free slot id, whose former occupant had generation prev_gen, to the
 * new real rs of service s (id vs_id). */
static int real_write_slot(const struct xlb_maps *m, uint32_t id, uint32_t prev_gen,
                           uint32_t vs_id, const struct xlb_service *s,
                           const struct xlb_real_spec *rs, const char *abuf,
                           struct xlb_real *out, struct xlb_err *e)
{
    struct xlb_real r = {};
    int err;

    r.addr = rs->addr;
    r.vs_id = vs_id;
    r.family = rs->family;
    r.flags = XLB_REAL_F_ACTIVE;
    r.weight = rs->weight;
    r.gen = prev_gen + 1;       /* flows placed on the slot's former real don't match */
    r.port_be = htons(rs->port);
    snprintf(r.name, sizeof(r.name), "%s", rs->name ? rs->name : abuf);
    if (s->method == XLB_FWD_NAT) {
        /* Its replies are looked for from before it can get a flow. */
        r.flags |= XLB_REAL_F_NAT;
        err = nat_src_ref(m, r.family, &r.addr, +1);
        if (err)
            return xlb_errf(e, -err, "cannot register nat real %s: %s", abuf, strerror(-err));
    }
    xlb_counters_clear(m->real_stats, id);
    percpu_clear(m->nh_cache, id, sizeof(struct xlb_nh));  /* the id may have named another real */
    if (bpf_map_update_elem(m->reals, &id, &r, BPF_ANY)) {
        err = errno;
        if (r.flags & XLB_REAL_F_NAT)
            nat_src_ref(m, r.family, &r.addr, -1);
        return xlb_errf(e, err, "cannot write real %s: %s", abuf, strerror(err));
    }
    {
        struct xlb_real_idx_key k = real_idx_key(&r);

        if (bpf_map_update_elem(m->real_idx, &k, &id, BPF_ANY)) {
            int err = errno;

            real_slot_clear(m, id);
            return xlb_errf(e, err, "cannot index real %s of service %u: %s", abuf, vs_id,
                            strerror(err));
        }
    }
    if (out)
        *out = r;
    return 0;
}

int xlb_real_add(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, uint32_t weight, const char *name,
                 uint32_t *real_id, struct xlb_err *e)
{
    struct xlb_real_spec rs = { .family = family, .addr = *addr, .weight = weight,
                                .name = name };

    return xlb_real_add_spec(m, vs_id, &rs, real_id, e);
}

int xlb_real_add_spec(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_real_spec *rs,
                      uint32_t *real_id, struct xlb_err *e)
{
    struct xlb_service s;
    struct xlb_real cur;
    uint32_t id;
    char abuf[XLB_ADDR_STRLEN];
    int err;

    if (bpf_map_lookup_elem(m->services, &vs_id, &s) || !(s.flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u", vs_id);
    xlb_addr_str(&rs->addr, rs->family, abuf, sizeof(abuf));
    err = real_add_check(&s, rs, abuf, e);
    if (err)
        return err;
    if (xlb_real_find(m, vs_id, rs->family, &rs->addr, &id) == 0)
        return xlb_errf(e, EEXIST, "real %s is already in service %s", abuf, s.name);
    for (id = 0; id < XLB_MAX_REALS; id++) {
        if (bpf_map_lookup_elem(m->reals, &id, &cur))
            return xlb_errf(e, errno, "cannot read xlb_reals: %s", strerror(errno));
        if (!(cur.flags & XLB_REAL_F_ACTIVE))
            break;
    }
    if (id == XLB_MAX_REALS)
        return xlb_errf(e, ENOSPC, "all %d real-server slots are used: cannot add real %s "
                        "to service %s", XLB_MAX_REALS, abuf, s.name);
    err = real_write_slot(m, id, cur.gen, vs_id, &s, rs, abuf, NULL, e);
    if (!err && real_id)
        *real_id = id;
    return err;
}

int xlb_real_add_snap(const struct xlb_maps *m, struct xlb_reals_snap *snap, uint32_t vs_id,
                      uint8_t family, const struct xlb_addr *addr, uint32_t weight,
                      const char *name, uint32_t *real_id, struct xlb_err *e)
{
    struct xlb_real_spec rs = { .family = family, .addr = *addr, .weight = weight,
                                .name = name };

    return xlb_real_add_snap_spec(m, snap, vs_id, &rs, real_id, e);
}

int xlb_real_add_snap_spec(const struct xlb_maps *m, struct xlb_reals_snap *snap,
                           uint32_t vs_id, const struct xlb_real_spec *rs, uint32_t *real_id,
                           struct xlb_err *e)
{
    struct xlb_service s;
    uint32_t id;
    char abuf[XLB_ADDR_STRLEN];
    int err;

    if (bpf_map_lookup_elem(m->services, &vs_id, &s) || !(s.flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u", vs_id);
    xlb_addr_str(&rs->addr, rs->family, abuf, sizeof(abuf));
    err = real_add_check(&s, rs, abuf, e);
    if (err)
        return err;
    if (xlb_reals_snap_find(snap, vs_id, rs->family, &rs->addr, &id) == 0)
        return xlb_errf(e, EEXIST, "real %s is already in service %s", abuf, s.name);
    for (id = snap->next_free; id < XLB_MAX_REALS; id++)
        if (!(snap->r[id].flags & XLB_REAL_F_ACTIVE))
            break;
    if (id == XLB_MAX_REALS)
        return xlb_errf(e, ENOSPC, "all %d real-server slots are used: cannot add real %s "
                        "to service %s", XLB_MAX_REALS, abuf, s.name);
    err = real_write_slot(m, id, snap->r[id].gen, vs_id, &s, rs, abuf, &snap->r[id], e);
    if (err)
        return err;
    snap->next_free = id + 1;
    if (real_id)
        *real_id = id;
    return 0;
}

/*
 * The service's current selection table into a new array *table of *size
 * entries (free() it).  Returns 0, or -errno (-ENOENT: no table).
 */
static int sel_read(const struct xlb_maps *m, uint32_t vs_id, uint32_t **table, uint32_t *size)
{
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    uint32_t zero = XLB_SEL_SIZE_IDX, n, *keys = NULL, *vals = NULL, count, out_tok;
    int fd = xlb_sel_live_fd(m, vs_id), err = 0;

    if (fd < 0)
        return fd;
    if (bpf_map_lookup_elem(fd, &zero, &n)) {
        err = -errno;
        goto out;
    }
    if (n == 0 || n > XLB_RING_MAX) {
        err = -EINVAL;
        goto out;
    }
    count = n + 1;
    keys = malloc(sizeof(*keys) * count);
    vals = malloc(sizeof(*vals) * count);
    if (!keys || !vals) {
        err = -ENOMEM;
        goto out;
    }
    if (bpf_map_lookup_batch(fd, NULL, &out_tok, keys, vals, &count, &bo) && errno != ENOENT) {
        /* No batch lookup on this kernel: one entry at a time. */
        for (uint32_t i = 0; i <= n; i++) {
            keys[i] = i;
            if (bpf_map_lookup_elem(fd, &i, &vals[i])) {
                err = -errno;
                goto out;
            }
        }
        count = n + 1;
    }
    if (count != n + 1 || keys[0] != 0) {
        err = -EIO;
        goto out;
    }
    memmove(vals, vals + 1, sizeof(*vals) * n);
    *table = vals;
    *size = n;
    vals = NULL;
out:
    free(keys);
    free(vals);
    close(fd);
    return err;
}

/*
 * Take real_id out of t[0..*n-1] in place.  A sequence drops its entries
 * and keeps the order of the others; a hash table gives each of its
 * entries the value of the next entry (cyclically) that is not real_id,
 * so that every other entry keeps its real.  Nothing left: the "no usable
 * real" table.  Returns whether real_id was in the table.
 */
static bool sel_without(uint32_t *t, uint32_t *n, uint32_t real_id, bool seq)
{
    uint32_t size = *n, j = 0, k;
    bool found = false;

    for (uint32_t i = 0; i < size; i++)
        found |= t[i] == real_id;
    if (!found)
        return false;
    if (seq) {
        for (uint32_t i = 0; i < size; i++)
            if (t[i] != real_id)
                t[j++] = t[i];
        size = j;
    } else {
        while (j < size && t[j] == real_id)
            j++;
        if (j < size) {
            uint32_t next = t[j];

            /* Walk backwards from j: each entry of real_id takes the
             * nearest value after it. */
            for (k = 1; k < size; k++) {
                uint32_t i = (j + size - k) % size;

                if (t[i] == real_id)
                    t[i] = next;
                else
                    next = t[i];
            }
        } else {
            size = 0;
        }
    }
    if (size == 0) {
        t[0] = XLB_SEL_EMPTY;
        size = 1;
    }
    *n = size;
    return true;
}

int xlb_real_del(const struct xlb_maps *m, uint32_t vs_id, uint8_t family,
                 const struct xlb_addr *addr, struct xlb_err *e)
{
    struct xlb_service s;
    uint32_t id, *table = NULL, size = 0;
    int err;

    if (xlb_real_find(m, vs_id, family, addr, &id))
        return xlb_errf(e, ENOENT, "no such real in service %u", vs_id);
    err = service_get(m, vs_id, &s, e);
    if (err)
        return err;
    /* First a table without it, so that no new flow is sent to a slot that
     * is about to be empty; then the real itself. */
    err = sel_read(m, vs_id, &table, &size);
    if (err && err != -ENOENT)
        return xlb_errf(e, -err, "service %s: cannot read its selection table: %s", s.name,
                        strerror(-err));
    if (!err && sel_without(table, &size, id, s.flags & XLB_VS_F_SEQ))
        err = xlb_sel_install(m, vs_id, table, size, e);
    else
        err = 0;
    free(table);
    if (err)
        return err;
    err = real_slot_clear(m, id);
    if (err)
        return xlb_errf(e, -err, "cannot remove real %u: %s", id, strerror(-err));
    return 0;
}

#define REAL_STATE_FLAGS (XLB_REAL_F_DRAIN | XLB_REAL_F_HALT | XLB_REAL_F_DOWN | \
                          XLB_REAL_F_RESCHED | XLB_REAL_F_OPER | XLB_REAL_F_FULL)

int xlb_real_get(const struct xlb_maps *m, uint32_t real_id, struct xlb_real *out)
{
    if (real_id >= XLB_MAX_REALS)
        return -ENOENT;
    if (bpf_map_lookup_elem(m->reals, &real_id, out))
        return -errno;
    return out->flags & XLB_REAL_F_ACTIVE ? 0 : -ENOENT;
}

int xlb_real_update(const struct xlb_maps *m, uint32_t real_id, uint32_t flags_set,
                    uint32_t flags_clear, const uint32_t *weight, struct xlb_err *e)
{
    struct xlb_real r;
    int err;

    if ((flags_set | flags_clear) & ~REAL_STATE_FLAGS)
        return xlb_errf(e, EINVAL, "real %u: only the state flags (drain, halt, down, "
                        "resched) can be changed, not 0x%x", real_id,
                        (flags_set | flags_clear) & ~REAL_STATE_FLAGS);
    err = xlb_real_get(m, real_id, &r);
    if (err)
        return xlb_errf(e, -err, "no real with id %u (see 'xlbctl status')", real_id);
    r.flags = (uint16_t)((r.flags | flags_set) & ~flags_clear);
    if (weight)
        r.weight = *weight;
    if (bpf_map_update_elem(m->reals, &real_id, &r, BPF_EXIST))
        return xlb_errf(e, errno, "cannot write real %s: %s", r.name, strerror(errno));
    return 0;
}

int xlb_real_set_port(const struct xlb_maps *m, uint32_t real_id, uint16_t port,
                      struct xlb_err *e)
{
    struct xlb_real r;
    int err;

    err = xlb_real_get(m, real_id, &r);
    if (err)
        return xlb_errf(e, -err, "no real with id %u (see 'xlbctl status')", real_id);
    if (port && !(r.flags & XLB_REAL_F_NAT))
        return xlb_errf(e, EINVAL, "real %s: a port (%u) needs a service with the nat method",
                        r.name, port);
    r.port_be = htons(port);
    if (bpf_map_update_elem(m->reals, &real_id, &r, BPF_EXIST))
        return xlb_errf(e, errno, "cannot write real %s: %s", r.name, strerror(errno));
    return 0;
}

int xlb_sel_live_fd(const struct xlb_maps *m, uint32_t vs_id)
{
    struct xlb_service s;
    uint32_t key, inner_id;
    int fd;

    if (bpf_map_lookup_elem(m->services, &vs_id, &s))
        return -errno;
    key = XLB_SEL_KEY(vs_id, (s.flags & XLB_VS_F_ACTIVE) ? s.sel_slot : 0);
    if (bpf_map_lookup_elem(m->sel, &key, &inner_id))
        return -errno;
    fd = bpf_map_get_fd_by_id(inner_id);
    return fd < 0 ? -errno : fd;
}

/* Capacity of a new inner map for a table of size entries: room to grow,
 * so that later tables of the service fit into it. */
static uint32_t sel_capacity(uint32_t size)
{
    uint32_t c = 64;

    while (c < size + 1 && c < XLB_RING_MAX + 1)
        c *= 2;
    return c < size + 1 ? size + 1 : c > XLB_RING_MAX + 1 ? XLB_RING_MAX + 1 : c;
}

/*
 * Write the table into the service's idle slot, reusing the inner map there
 * when it is large enough (no map-in-map update, no RCU wait), then make it
 * live by flipping xlb_service.sel_slot.  A service that is not active yet
 * (being added) gets its table in slot 0 and nothing is flipped.
 */
int xlb_sel_install(const struct xlb_maps *m, uint32_t vs_id, const uint32_t *table,
                    uint32_t size, struct xlb_err *e)
{
    LIBBPF_OPTS(bpf_map_create_opts, co, .map_flags = BPF_F_INNER_MAP);
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    struct bpf_map_info info = {};
    __u32 info_len = sizeof(info);
    struct xlb_service s = {};
    uint32_t *keys = NULL, *vals = NULL, count = size, key, inner_id, sz = size;
    bool active, fresh = false;
    int fd = -1, err = 0;

    if (size == 0 || size > XLB_RING_MAX)
        return xlb_errf(e, EINVAL, "selection table size %u is not in 1..%u", size,
                        XLB_RING_MAX);
    if (vs_id >= XLB_MAX_SERVICES)
        return xlb_errf(e, EINVAL, "no service with id %u", vs_id);
    bpf_map_lookup_elem(m->services, &vs_id, &s);
    active = s.flags & XLB_VS_F_ACTIVE;
    key = XLB_SEL_KEY(vs_id, active ? !s.sel_slot : 0);

    if (bpf_map_lookup_elem(m->sel, &key, &inner_id) == 0 &&
        (fd = bpf_map_get_fd_by_id(inner_id)) >= 0 &&
        (bpf_obj_get_info_by_fd(fd, &info, &info_len) || info.max_entries < size + 1)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_sel_tbl", sizeof(__u32), sizeof(__u32),
                            sel_capacity(size), &co);
        if (fd < 0)
            return xlb_errf(e, errno, "cannot create a selection table of %u entries: %s",
                            size, strerror(errno));
        fresh = true;
    }
    keys = malloc(size * sizeof(*keys));
    vals = malloc(size * sizeof(*vals));
    if (!keys || !vals) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < size; i++) {
        keys[i] = i + 1;
        vals[i] = table ? table[i] : XLB_SEL_EMPTY;
    }
    /* Entries first, the size last: even a reader of the idle table sees
     * a size whose entries are written. */
    if (bpf_map_update_batch(fd, keys, vals, &count, &bo) ||
        bpf_map_update_elem(fd, &(uint32_t){ XLB_SEL_SIZE_IDX }, &sz, BPF_ANY)) {
        err = xlb_errf(e, errno, "cannot fill the selection table: %s", strerror(errno));
        goto out;
    }
    if (fresh && bpf_map_update_elem(m->sel, &key, &fd, BPF_ANY)) {
        err = xlb_errf(e, errno, "cannot install the selection table of service %u: %s", vs_id,
                       strerror(errno));
        goto out;
    }
    /* The one step that makes the new table live. */
    if (active) {
        s.sel_slot = !s.sel_slot;
        if (bpf_map_update_elem(m->services, &vs_id, &s, BPF_EXIST))
            err = xlb_errf(e, errno, "cannot switch the selection table of service %u: %s",
                           vs_id, strerror(errno));
    }
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
    uint32_t *table = NULL;
    size_t n = 0;
    int err;

    err = service_get(m, vs_id, &s, e);
    if (err)
        return err;
    b = calloc(XLB_MAX_REALS, sizeof(*b));
    reals = calloc(XLB_MAX_REALS, sizeof(*reals));
    ids = calloc(XLB_MAX_REALS, sizeof(*ids));
    if (!b || !reals || !ids) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        struct xlb_real *r = &reals[n];

        if (bpf_map_lookup_elem(m->reals, &id, r) || !(r->flags & XLB_REAL_F_ACTIVE) ||
            r->vs_id != vs_id || !r->weight ||
            (r->flags & (XLB_REAL_F_DRAIN | XLB_REAL_F_HALT | XLB_REAL_F_DOWN)))
            continue;
        ids[n].family = r->family;
        ids[n].addr = r->addr;
        b[n].id = &ids[n];
        b[n].id_len = sizeof(ids[n]);
        b[n].weight = r->weight;
        b[n].value = id;
        n++;
    }
    if (n == 0) {
        err = sel_install_empty(m, vs_id, e);
        goto out;
    }
    table = malloc(sizeof(*table) * s.ring_size);
    if (!table) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
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

/* ---- active connections ---- */

#define SCAN_BATCH 1024         /* connection-table entries per system call */

/* What a flow is checked against: the current entry of each real. */
struct real_tag {
    uint32_t vs_id, gen;
    bool in_use;
};

static int real_tags(const struct xlb_maps *m, struct real_tag *tags)
{
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    struct xlb_real *r = malloc(sizeof(*r) * XLB_MAX_REALS);
    uint32_t *keys = malloc(sizeof(*keys) * XLB_MAX_REALS), count = XLB_MAX_REALS, tok;
    int err = 0;

    if (!r || !keys) {
        err = -ENOMEM;
        goto out;
    }
    if (bpf_map_lookup_batch(m->reals, NULL, &tok, keys, r, &count, &bo) && errno != ENOENT) {
        for (uint32_t i = 0; i < XLB_MAX_REALS; i++) {
            keys[i] = i;
            if (bpf_map_lookup_elem(m->reals, &i, &r[i])) {
                err = -errno;
                goto out;
            }
        }
        count = XLB_MAX_REALS;
    }
    memset(tags, 0, sizeof(*tags) * XLB_MAX_REALS);
    for (uint32_t i = 0; i < count; i++) {
        if (keys[i] >= XLB_MAX_REALS)
            continue;
        tags[keys[i]] = (struct real_tag){ .vs_id = r[i].vs_id, .gen = r[i].gen,
                                           .in_use = r[i].flags & XLB_REAL_F_ACTIVE };
    }
out:
    free(r);
    free(keys);
    return err;
}

struct scan {
    const struct real_tag *tags;
    uint64_t now, idle_tcp, idle_udp;
    uint32_t *active;
};

static void scan_one(const struct scan *sc, const struct xlb_flow_key *k,
                     const struct xlb_flow_value *v)
{
    const struct real_tag *t;
    uint64_t idle;

    if (k->proto == IPPROTO_TCP)
        idle = sc->idle_tcp;
    else if (k->proto == IPPROTO_UDP)
        idle = sc->idle_udp;
    else
        return;
    if (v->real_id >= XLB_MAX_REALS || (v->flags & XLB_FLOW_F_CLOSED))
        return;
    t = &sc->tags[v->real_id];
    if (!t->in_use || t->vs_id != v->vs_id || t->gen != v->real_gen)
        return;
    /* A flow touched after the clock was read is fresh. */
    if (v->last_seen_ns < sc->now && sc->now - v->last_seen_ns > idle)
        return;
    sc->active[v->real_id]++;
}

/* The whole table in batches.  Returns entries walked, -errno, or
 * -EOPNOTSUPP when batches cannot be used here (the caller starts again
 * one entry at a time). */
static int scan_batched(int fd, const struct scan *sc)
{
    LIBBPF_OPTS(bpf_map_batch_opts, bo);
    struct xlb_flow_key *keys = malloc(sizeof(*keys) * SCAN_BATCH);
    struct xlb_flow_value *vals = malloc(sizeof(*vals) * SCAN_BATCH);
    uint32_t in_tok = 0, out_tok = 0, count;
    bool first = true, done = false;
    int walked = 0, err = 0;

    if (!keys || !vals) {
        err = -ENOMEM;
        goto out;
    }
    while (!done) {
        count = SCAN_BATCH;
        if (bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, keys, vals, &count,
                                 &bo)) {
            if (errno != ENOENT) {
                /* ENOSPC: a hash bucket holds more than a batch. */
                err = errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP ||
                      errno == ENOSPC ? -EOPNOTSUPP : -errno;
                goto out;
            }
            done = true;        /* count holds the last entries */
        } else if (count == 0) {
            break;
        }
        for (uint32_t i = 0; i < count; i++)
            scan_one(sc, &keys[i], &vals[i]);
        walked += (int)count;
        in_tok = out_tok;
        first = false;
    }
out:
    free(keys);
    free(vals);
    return err ? err : walked;
}

/* The same one entry at a time. */
static int scan_by_key(int fd, const struct scan *sc)
{
    struct xlb_flow_key k, next;
    struct xlb_flow_value v;
    void *prev = NULL;
    int walked = 0;

    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (bpf_map_lookup_elem(fd, &next, &v) == 0) {
            scan_one(sc, &next, &v);
            walked++;
        }
        k = next;
        prev = &k;
    }
    return errno == ENOENT ? walked : -errno;
}

int xlb_active_scan(const struct xlb_maps *m, uint64_t idle_tcp_ns, uint64_t idle_udp_ns,
                    uint32_t *active, struct xlb_err *e)
{
    struct real_tag *tags = malloc(sizeof(*tags) * XLB_MAX_REALS);
    struct scan sc = { .tags = tags, .idle_tcp = idle_tcp_ns, .idle_udp = idle_udp_ns,
                       .active = active };
    int n;

    memset(active, 0, sizeof(*active) * XLB_MAX_REALS);
    if (!tags)
        return xlb_errf(e, ENOMEM, "out of memory");
    n = real_tags(m, tags);
    if (n) {
        free(tags);
        return xlb_errf(e, -n, "cannot read xlb_reals: %s", strerror(-n));
    }
    sc.now = xlb_dp_clock_ns();
    n = scan_batched(m->conns, &sc);
    if (n == -EOPNOTSUPP) {
        memset(active, 0, sizeof(*active) * XLB_MAX_REALS);
        n = scan_by_key(m->conns, &sc);
    }
    free(tags);
    if (n < 0)
        return xlb_errf(e, -n, "cannot read the connection table xlb_conns: %s", strerror(-n));
    return n;
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

int xlb_event_read(int map_fd, uint32_t event, uint64_t *sum)
{
    __u64 v;
    int err = percpu_sum(map_fd, event, &v, 1);

    *sum = v;
    return err;
}
