/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internal to the loader: lifecycle steps shared by the balancer and the
 * decap program. */
#ifndef XLB_ATTACH_H
#define XLB_ATTACH_H

#include <bpf/libbpf.h>
#include "xlb_loader.h"

void xlb_libs_init(void);
int xlb_check_env(const char *bpffs, bool need_pin, struct xlb_err *e);
int xlb_pin_maps(struct bpf_object *obj, const char *bpffs, struct xlb_err *e);
int xlb_pinned_max_entries(const char *bpffs, const char *name, uint32_t *max);
int xlb_load_error(int err, const char *what, struct xlb_err *e);
int xlb_attach_prog(struct bpf_object *obj, const char *prog_name, const char *ifname,
                    enum xlb_mode mode, struct xlb_err *e);
int xlb_detach_prog(const char *ifname, const char *prog_name, struct xlb_err *e);
int xlb_ifaces_running(const char *prog_name, struct xlb_iface *out, int max);

#endif
