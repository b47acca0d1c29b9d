// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Lifecycle of the real-server decap program (bpf/decap.bpf.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xlb_attach.h"
#include "xlb_loader.h"
#include "decap.skel.h"

#define DECAP_PROG "xlb_decap"

struct xlb_decap {
    struct decap_bpf *skel;
    char bpffs[256];
    bool fresh_pins;            /* no pinned maps existed: this load creates them */
    struct xlb_decap_key *addrs;
    int n_addrs;
};

int xlb_decap_open(const struct xlb_decap_opts *o, struct xlb_decap **out, struct xlb_err *e)
{
    const char *bpffs = o->bpffs ? o->bpffs : XLB_BPFFS_DEFAULT;
    struct xlb_decap *d;
    int err;

    err = xlb_check_env(bpffs, !o->no_pin, e);
    if (err)
        return err;
    if (o->n_addrs <= 0 || o->n_addrs > XLB_MAX_DECAP_ADDRS)
        return xlb_errf(e, EINVAL, "the decap program needs 1 to %d tunnel endpoint addresses "
                        "(--addr)", XLB_MAX_DECAP_ADDRS);
    d = calloc(1, sizeof(*d));
    if (!d)
        return xlb_errf(e, ENOMEM, "out of memory");
    d->addrs = calloc(o->n_addrs, sizeof(*d->addrs));
    d->skel = decap_bpf__open();
    if (!d->addrs || !d->skel) {
        err = xlb_errf(e, errno ? errno : ENOMEM, "cannot open the decap object");
        goto fail;
    }
    memcpy(d->addrs, o->addrs, o->n_addrs * sizeof(*d->addrs));
    d->n_addrs = o->n_addrs;
    d->skel->rodata->cfg_gue_port = o->gue_port ? o->gue_port : XLB_GUE_PORT_DEFAULT;
    if (!o->no_pin) {
        uint32_t max;

        snprintf(d->bpffs, sizeof(d->bpffs), "%s", bpffs);
        d->fresh_pins = xlb_pinned_max_entries(bpffs, "xlb_decap_addrs", &max) != 0;
        err = xlb_pin_maps(d->skel->obj, bpffs, e);
        if (err)
            goto fail;
    }
    *out = d;
    return 0;
fail:
    xlb_decap_close(d);
    return err;
}

int xlb_decap_load(struct xlb_decap *d, struct xlb_err *e)
{
    struct xlb_decap_key k, next, *prev = NULL;
    __u32 one = 1;
    int err = decap_bpf__load(d->skel);
    int fd;

    if (err)
        return xlb_load_error(err, "the decap program", e);
    /* A reused pinned map may hold endpoints of an earlier attach: the new
     * set replaces them, it does not add to them. */
    fd = bpf_map__fd(d->skel->maps.xlb_decap_addrs);
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        int keep = 0;

        for (int i = 0; i < d->n_addrs; i++)
            keep |= !memcmp(&next, &d->addrs[i], sizeof(next));
        if (!keep && bpf_map_delete_elem(fd, &next) == 0) {
            prev = NULL;        /* deletion invalidates the cursor */
            continue;
        }
        k = next;
        prev = &k;
    }
    for (int i = 0; i < d->n_addrs; i++)
        if (bpf_map__update_elem(d->skel->maps.xlb_decap_addrs, &d->addrs[i],
                                 sizeof(d->addrs[i]), &one, sizeof(one), BPF_ANY))
            return xlb_errf(e, errno, "cannot add a tunnel endpoint: %s", strerror(errno));
    return 0;
}

int xlb_decap_attach(struct xlb_decap *d, const char *ifname, enum xlb_mode mode,
                     struct xlb_err *e)
{
    int err;

    if (!if_nametoindex(ifname))
        return xlb_errf(e, ENODEV, "no interface named %s in this network namespace "
                        "(see 'ip link')", ifname);
    if (bpf_program__fd(d->skel->progs.xlb_decap) < 0) {
        err = xlb_decap_load(d, e);
        if (err)
            return err;
    }
    err = xlb_attach_prog(d->skel->obj, DECAP_PROG, ifname, mode, e);
    if (err && d->fresh_pins) {
        bpf_object__unpin_maps(d->skel->obj, NULL);
        rmdir(d->bpffs);
    }
    return err;
}

int xlb_decap_prog_fd(const struct xlb_decap *d)
{
    return bpf_program__fd(d->skel->progs.xlb_decap);
}

int xlb_decap_reasons_fd(const struct xlb_decap *d)
{
    return bpf_map__fd(d->skel->maps.xlb_decap_reasons);
}

void xlb_decap_close(struct xlb_decap *d)
{
    if (!d)
        return;
    decap_bpf__destroy(d->skel);
    free(d->addrs);
    free(d);
}

int xlb_decap_detach(const char *bpffs, const char *ifname, struct xlb_err *e)
{
    struct xlb_iface ifs[1];
    char path[512];
    int err;

    if (!bpffs)
        bpffs = XLB_BPFFS_DEFAULT;
    err = xlb_detach_prog(ifname, DECAP_PROG, e);
    if (err)
        return err;
    if (xlb_ifaces_running(DECAP_PROG, ifs, 1) > 0)
        return 0;
    snprintf(path, sizeof(path), "%s/xlb_decap_addrs", bpffs);
    unlink(path);
    snprintf(path, sizeof(path), "%s/xlb_decap_reasons", bpffs);
    unlink(path);
    rmdir(bpffs);
    return 0;
}
