// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Object lifecycle shared by the balancer and the decap program: checks of
 * the environment, pinning, and attachment through libxdp.
 *
 * libxdp prefers its multi-program dispatcher, which needs freplace
 * (BPF_PROG_TYPE_EXT) programs.  Where the kernel refuses those, libxdp
 * attaches the one program directly; both paths go through the same call
 * here.  An interface that already runs the same program directly (a
 * restart or an upgrade) gets the new one by an atomic replace
 * (XDP_FLAGS_REPLACE), so not a packet is missed.
 */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "xlb_attach.h"

static char last_libxdp_msg[256];

static int libxdp_print(enum libxdp_print_level level, const char *fmt, va_list args)
{
    char line[256];

    vsnprintf(line, sizeof(line), fmt, args);
    line[strcspn(line, "\n")] = '\0';
    if (level <= LIBXDP_WARN)
        snprintf(last_libxdp_msg, sizeof(last_libxdp_msg), "%s", line);
    if (getenv("XLB_DEBUG"))
        fprintf(stderr, "%s\n", line);
    return 0;
}

/* libbpf and libxdp explain failures we report ourselves with the cause and
 * the fix (and libxdp warns on every attach where its dispatcher cannot
 * load), so their messages are shown only with XLB_DEBUG set. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    (void)level;
    if (!getenv("XLB_DEBUG"))
        return 0;
    return vfprintf(stderr, fmt, args);
}

void xlb_libs_init(void)
{
    static int done;

    if (done)
        return;
    done = 1;
    libxdp_set_print(libxdp_print);
    libbpf_set_print(libbpf_print);
}

/* True when this process does not share PID 1's mount namespace. */
static bool private_mount_ns(void)
{
    struct stat self, init;

    return stat("/proc/self/ns/mnt", &self) == 0 && stat("/proc/1/ns/mnt", &init) == 0 &&
           self.st_ino != init.st_ino;
}

int xlb_check_env(const char *bpffs, bool need_pin, struct xlb_err *e)
{
    struct statfs st;
    char parent[256];
    char *slash;

    xlb_libs_init();
    if (geteuid() != 0)
        return xlb_errf(e, EPERM, "loading BPF programs needs root (or CAP_BPF, CAP_NET_ADMIN "
                        "and CAP_PERFMON): run xlbctl as root");
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
        return xlb_errf(e, ENOENT, "this kernel exposes no BTF at /sys/kernel/btf/vmlinux: "
                        "xlb needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    if (!need_pin)
        return 0;
    snprintf(parent, sizeof(parent), "%s", bpffs);
    slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    /* Like bpftool: the standard location is mounted on demand. */
    if (!strcmp(parent, "/sys/fs/bpf") && statfs(parent, &st) == 0 &&
        st.f_type != BPF_FS_MAGIC && mount("bpf", parent, "bpf", 0, "mode=0700") == 0) {
        fprintf(stderr, "xlb: mounted a BPF filesystem on %s\n", parent);
        if (private_mount_ns())
            fprintf(stderr, "xlb: warning: this process has a mount namespace of its own "
                    "(ip netns exec?): the pins vanish when it exits; enter network "
                    "namespaces with 'nsenter --net=/run/netns/NAME' instead\n");
    }
    if (statfs(parent, &st) != 0 || st.f_type != BPF_FS_MAGIC)
        return xlb_errf(e, ENOENT, "%s is not on a BPF filesystem: choose a directory under "
                        "a bpffs mount with --bpffs (the usual one is /sys/fs/bpf; mount it "
                        "with 'mount -t bpf bpf /sys/fs/bpf')", bpffs);
    if (mkdir(bpffs, 0700) != 0 && errno != EEXIST)
        return xlb_errf(e, errno, "cannot create pin directory %s: %s", bpffs, strerror(errno));
    return 0;
}

int xlb_pin_maps(struct bpf_object *obj, const char *bpffs, struct xlb_err *e)
{
    struct bpf_map *map;
    char path[512];

    bpf_object__for_each_map(map, obj) {
        const char *name = bpf_map__name(map);

        if (bpf_map__is_internal(map))  /* .rodata, .bss: per program instance */
            continue;
        snprintf(path, sizeof(path), "%s/%s", bpffs, name);
        if (bpf_map__set_pin_path(map, path))
            return xlb_errf(e, EINVAL, "cannot set pin path %s", path);
    }
    return 0;
}

int xlb_pinned_max_entries(const char *bpffs, const char *name, uint32_t *max)
{
    struct bpf_map_info info = {};
    __u32 len = sizeof(info);
    char path[512];
    int fd, err;

    snprintf(path, sizeof(path), "%s/%s", bpffs, name);
    fd = bpf_obj_get(path);
    if (fd < 0)
        return -errno;
    err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err)
        return -errno;
    *max = info.max_entries;
    return 0;
}

int xlb_load_error(int err, const char *what, struct xlb_err *e)
{
    if (err == -EPERM)
        return xlb_errf(e, -err, "the kernel refused to load %s (EPERM): run as root, and check "
                        "that kernel.unprivileged_bpf_disabled or a lockdown does not forbid BPF",
                        what);
    if (err == -EINVAL)
        return xlb_errf(e, -err, "the kernel refused %s (EINVAL): pinned maps of an older "
                        "layout may be in the way: 'xlbctl unload' removes them "
                        "(XLB_DEBUG=1 shows the verifier log)", what);
    if (err == -EACCES)
        return xlb_errf(e, -err, "the verifier rejected %s: this kernel is older or stricter "
                        "than the one xlb was built for (XLB_DEBUG=1 prints the verifier log)",
                        what);
    return xlb_errf(e, -err, "cannot load %s: %s (XLB_DEBUG=1 shows details)", what,
                    strerror(-err));
}

/* The program called `name` among those mp runs (directly or through the
 * dispatcher), or NULL. */
static struct xdp_program *find_attached(struct xdp_multiprog *mp, const char *name)
{
    struct xdp_program *p;

    if (!mp)
        return NULL;
    if (xdp_multiprog__is_legacy(mp)) {
        p = xdp_multiprog__main_prog(mp);
        return p && !strcmp(xdp_program__name(p), name) ? p : NULL;
    }
    for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
        if (!strcmp(xdp_program__name(p), name))
            return p;
    return NULL;
}

static struct xdp_multiprog *multiprog_of(int ifindex)
{
    struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);

    if (libxdp_get_error(mp))
        return NULL;
    return mp;
}

int xlb_attach_prog(struct bpf_object *obj, const char *prog_name, const char *ifname,
                    enum xlb_mode mode, struct xlb_err *e)
{
    struct bpf_program *bprog = bpf_object__find_program_by_name(obj, prog_name);
    struct xdp_multiprog *mp;
    struct xdp_program *old, *xprog;
    int ifindex, err, fd;

    ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return xlb_errf(e, ENODEV, "no interface named %s in this network namespace "
                        "(see 'ip link')", ifname);
    if (!bprog)
        return xlb_errf(e, ENOENT, "program %s missing from the object", prog_name);

    mp = multiprog_of(ifindex);
    old = find_attached(mp, prog_name);
    if (old && xdp_multiprog__is_legacy(mp)) {
        /* Restart or upgrade: swap the program in one step. */
        enum xdp_attach_mode am = xdp_multiprog__attach_mode(mp);
        LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = xdp_program__fd(old));

        if ((mode == XLB_MODE_GENERIC && am != XDP_MODE_SKB) ||
            (mode == XLB_MODE_NATIVE && am != XDP_MODE_NATIVE)) {
            xdp_multiprog__close(mp);
            return xlb_errf(e, EEXIST, "%s runs %s in %s mode; changing the mode needs "
                            "'xlbctl unload --iface %s --keep-maps' first", ifname, prog_name,
                            am == XDP_MODE_SKB ? "generic" : "native", ifname);
        }
        fd = bpf_program__fd(bprog);
        if (fd < 0) {
            xdp_multiprog__close(mp);
            return xlb_errf(e, EINVAL, "internal: program not loaded before replace");
        }
        err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_REPLACE |
                             (am == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE),
                             &ao);
        xdp_multiprog__close(mp);
        if (err)
            return xlb_errf(e, -err, "cannot replace the program on %s: %s", ifname,
                            strerror(-err));
        return 0;
    }
    if (old) {
        xdp_multiprog__close(mp);
        return xlb_errf(e, EEXIST, "%s already runs %s through the libxdp dispatcher: "
                        "'xlbctl unload --iface %s' first", ifname, prog_name, ifname);
    }
    xdp_multiprog__close(mp);

    fd = bpf_program__fd(bprog);
    if (fd >= 0)
        xprog = xdp_program__from_fd(fd);
    else {
        DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .obj = obj, .prog_name = prog_name);
        xprog = xdp_program__create(&xo);
    }
    err = libxdp_get_error(xprog);
    if (err)
        return xlb_errf(e, -err, "libxdp cannot use program %s: %s", prog_name, strerror(-err));

    last_libxdp_msg[0] = '\0';
    if (mode == XLB_MODE_AUTO) {
        err = xdp_program__attach(xprog, ifindex, XDP_MODE_NATIVE, 0);
        if (err && err != -EPERM && err != -EEXIST && err != -EBUSY) {
            fprintf(stderr, "xlb: warning: native XDP failed on %s (%s); using generic "
                    "mode, which is much slower\n", ifname, strerror(-err));
            err = xdp_program__attach(xprog, ifindex, XDP_MODE_SKB, 0);
        }
    } else {
        err = xdp_program__attach(xprog, ifindex,
                                  mode == XLB_MODE_GENERIC ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
    }
    xdp_program__close(xprog);
    if (!err)
        return 0;
    if (err == -EEXIST || err == -EBUSY)
        return xlb_errf(e, -err, "another XDP program is in the way on %s and it cannot be "
                        "combined with xlb (%s); see 'xdp-loader status %s' or 'ip link show "
                        "%s', and remove it", ifname, last_libxdp_msg[0] ? last_libxdp_msg :
                        strerror(-err), ifname, ifname);
    if (err == -EOPNOTSUPP)
        return xlb_errf(e, -err, "%s does not support native XDP: use --mode generic or auto",
                        ifname);
    return xlb_errf(e, -err, "cannot attach %s to %s: %s%s%s", prog_name, ifname,
                    strerror(-err), last_libxdp_msg[0] ? ": " : "", last_libxdp_msg);
}

int xlb_detach_prog(const char *ifname, const char *prog_name, struct xlb_err *e)
{
    struct xdp_multiprog *mp;
    struct xdp_program *p;
    int ifindex, err;

    xlb_libs_init();
    ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return xlb_errf(e, ENODEV, "no interface named %s in this network namespace", ifname);
    mp = multiprog_of(ifindex);
    p = find_attached(mp, prog_name);
    if (!p) {
        xdp_multiprog__close(mp);
        return xlb_errf(e, ENOENT, "%s does not run %s: nothing to unload", ifname, prog_name);
    }
    if (xdp_multiprog__is_legacy(mp))
        err = xdp_multiprog__detach(mp);
    else
        err = xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(mp), 0);
    xdp_multiprog__close(mp);
    if (err)
        return xlb_errf(e, -err, "cannot detach %s from %s: %s", prog_name, ifname,
                        strerror(-err));
    return 0;
}

int xlb_ifaces_running(const char *prog_name, struct xlb_iface *out, int max)
{
    struct if_nameindex *ifs, *i;
    int n = 0;

    xlb_libs_init();
    ifs = if_nameindex();
    if (!ifs)
        return -errno;
    for (i = ifs; i->if_index; i++) {
        struct xdp_multiprog *mp = multiprog_of(i->if_index);
        enum xdp_attach_mode am;

        if (!find_attached(mp, prog_name)) {
            xdp_multiprog__close(mp);
            continue;
        }
        am = xdp_multiprog__attach_mode(mp);
        if (n < max) {
            snprintf(out[n].name, sizeof(out[n].name), "%s", i->if_name);
            snprintf(out[n].mode, sizeof(out[n].mode), "%s%s",
                     xdp_multiprog__is_legacy(mp) ? "" : "multiprog-",
                     am == XDP_MODE_SKB ? "generic" : am == XDP_MODE_HW ? "hw" : "native");
        }
        n++;
        xdp_multiprog__close(mp);
    }
    if_freenameindex(ifs);
    return n;
}

int xlb_parse_mode(const char *s, enum xlb_mode *mode)
{
    if (!strcmp(s, "auto"))
        *mode = XLB_MODE_AUTO;
    else if (!strcmp(s, "native"))
        *mode = XLB_MODE_NATIVE;
    else if (!strcmp(s, "generic"))
        *mode = XLB_MODE_GENERIC;
    else
        return -EINVAL;
    return 0;
}
