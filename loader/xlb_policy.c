// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-service policies and node settings of the balancer: source-IP
 * persistence, access lists, the flood threshold and the UDP idle timeout.
 *
 * Access lists live in two LPM tries (one per family) shared by every list:
 * the first 32 bits of a key are the list's scope (see xlb_abi.h), so a
 * lookup of (scope, address) finds the longest prefix of that one list.
 * Lists are replaced as a whole, in an order that never lets a packet see
 * a half-written list as "empty": new prefixes go in first, then the
 * "list not empty" bits of the service (or of the node) are set or cleared,
 * then the prefixes that are no longer wanted are removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "xlb_loader.h"

static int service_read(const struct xlb_maps *m, uint32_t vs_id, struct xlb_service *s,
                        struct xlb_err *e)
{
    if (vs_id >= XLB_MAX_SERVICES || bpf_map_lookup_elem(m->services, &vs_id, s) ||
        !(s->flags & XLB_VS_F_ACTIVE))
        return xlb_errf(e, ENOENT, "no service with id %u (see 'xlbctl status')", vs_id);
    return 0;
}

/* The netmask of plen bits (0..32 per word, 0..128 in all) into m. */
static void mask_of(uint8_t family, uint8_t plen, struct xlb_addr *m)
{
    int words = family == XLB_FAMILY_V4 ? 1 : 4;

    memset(m, 0, sizeof(*m));
    for (int i = 0; i < words; i++) {
        int bits = (int)plen - 32 * i;

        if (bits >= 32)
            m->addr_be[i] = 0xffffffffu;
        else if (bits > 0)
            m->addr_be[i] = htonl(~0u << (32 - bits));
    }
}

/* ---- persistence ---- */

int xlb_persist_set(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_persist_spec *p,
                    struct xlb_err *e)
{
    struct xlb_service s;
    int err;

    err = service_read(m, vs_id, &s, e);
    if (err)
        return err;
    if (p->timeout_s && (p->timeout_s < XLB_PERSIST_TIMEOUT_MIN ||
                         p->timeout_s > XLB_PERSIST_TIMEOUT_MAX))
        return xlb_errf(e, EINVAL, "service %s: a persistence timeout of %u s is not in %u s "
                        "(1 minute) to %u s (7 days); 0 turns persistence off", s.name,
                        p->timeout_s, XLB_PERSIST_TIMEOUT_MIN, XLB_PERSIST_TIMEOUT_MAX);
    if (p->netmask4 > 32 || p->netmask6 > 128)
        return xlb_errf(e, EINVAL, "service %s: persistence netmask /%u (IPv4) or /%u (IPv6) "
                        "is too long: at most /32 and /128", s.name, p->netmask4, p->netmask6);
    if (p->group > XLB_PERSIST_GROUP_MAX)
        return xlb_errf(e, EINVAL, "service %s: persistence group %u is not in 1..%u "
                        "(0: the service's own entries)", s.name, p->group,
                        XLB_PERSIST_GROUP_MAX);
    s.persist_timeout_s = p->timeout_s;
    s.persist_group = p->group ? p->group : XLB_PERSIST_GROUP_OWN | vs_id;
    s.persist_plen4 = p->netmask4;
    s.persist_plen6 = p->netmask6;
    mask_of(s.family, s.family == XLB_FAMILY_V4 ? p->netmask4 : p->netmask6, &s.persist_mask);
    if (bpf_map_update_elem(m->services, &vs_id, &s, BPF_EXIST))
        return xlb_errf(e, errno, "cannot write service %s: %s", s.name, strerror(errno));
    return 0;
}

int xlb_persist_get(const struct xlb_maps *m, uint32_t vs_id, struct xlb_persist_spec *out)
{
    struct xlb_service s;

    if (service_read(m, vs_id, &s, NULL))
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    out->timeout_s = s.persist_timeout_s;
    out->netmask4 = s.persist_plen4;
    out->netmask6 = s.persist_plen6;
    out->group = s.persist_group & XLB_PERSIST_GROUP_OWN ? 0 : s.persist_group;
    return 0;
}

/* ---- access lists ---- */

/* A trie key of either family, compared as bytes. */
struct acl_key {
    uint8_t family;
    union {
        struct xlb_acl4_key k4;
        struct xlb_acl6_key k6;
    } u;
};

static void acl_key_of(const struct xlb_prefix *p, uint32_t scope, struct acl_key *k)
{
    struct xlb_addr mask;

    memset(k, 0, sizeof(*k));
    k->family = p->family;
    mask_of(p->family, p->plen, &mask);
    if (p->family == XLB_FAMILY_V4) {
        k->u.k4.prefixlen = 32 + p->plen;
        k->u.k4.scope = scope;
        k->u.k4.addr_be = p->addr.addr_be[0] & mask.addr_be[0];
    } else {
        k->u.k6.prefixlen = 32 + p->plen;
        k->u.k6.scope = scope;
        for (int i = 0; i < 4; i++)
            k->u.k6.addr_be[i] = p->addr.addr_be[i] & mask.addr_be[i];
    }
}

static int acl_key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct acl_key));
}

static int acl_fd(const struct xlb_maps *m, uint8_t family)
{
    return family == XLB_FAMILY_V4 ? m->acl4 : m->acl6;
}

static int prefixes_ok(const struct xlb_prefix *p, size_t n, const char *what,
                       struct xlb_err *e)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].family != XLB_FAMILY_V4 && p[i].family != XLB_FAMILY_V6)
            return xlb_errf(e, EINVAL, "%s: prefix %zu has family %u, neither IPv4 nor IPv6",
                            what, i + 1, p[i].family);
        if (p[i].plen > (p[i].family == XLB_FAMILY_V4 ? 32 : 128))
            return xlb_errf(e, EINVAL, "%s: prefix %zu is /%u, longer than an %s address",
                            what, i + 1, p[i].plen, p[i].family == XLB_FAMILY_V4 ? "IPv4" :
                            "IPv6");
    }
    return 0;
}

/* One list to be: its scope, its keys sorted, and the families it holds
 * (XLB_ACL_F_* bits given for IPv4 and IPv6). */
struct acl_list {
    uint32_t scope;
    struct acl_key *keys;
    size_t n;
    uint8_t bit4, bit6, flags;
};

static int acl_list_build(struct acl_list *l, uint32_t scope, const struct xlb_prefix *p,
                          size_t n, uint8_t bit4, uint8_t bit6)
{
    memset(l, 0, sizeof(*l));
    l->scope = scope;
    l->bit4 = bit4;
    l->bit6 = bit6;
    if (n == 0)
        return 0;
    l->keys = calloc(n, sizeof(*l->keys));
    if (!l->keys)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        acl_key_of(&p[i], scope, &l->keys[i]);
        l->flags |= p[i].family == XLB_FAMILY_V4 ? bit4 : bit6;
    }
    qsort(l->keys, n, sizeof(*l->keys), acl_key_cmp);
    l->n = n;
    return 0;
}

static int acl_list_add(const struct xlb_maps *m, const struct acl_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct acl_key *k = &l->keys[i];
        __u32 plen = (k->family == XLB_FAMILY_V4 ? k->u.k4.prefixlen : k->u.k6.prefixlen) - 32;

        if (bpf_map_update_elem(acl_fd(m, k->family), &k->u, &plen, BPF_ANY))
            return -errno;
    }
    return 0;
}

/* Remove every prefix of the lists' scopes that none of them holds. */
static int acl_prune(const struct xlb_maps *m, const struct acl_list *lists, int n_lists)
{
    static const uint8_t fams[2] = { XLB_FAMILY_V4, XLB_FAMILY_V6 };
    struct acl_key cur, next, *stale = NULL;
    size_t n_stale = 0, cap = 0;
    int err = 0;

    for (int f = 0; f < 2; f++) {
        int fd = acl_fd(m, fams[f]);
        void *prev = NULL;

        memset(&cur, 0, sizeof(cur));
        memset(&next, 0, sizeof(next));
        cur.family = next.family = fams[f];
        while (bpf_map_get_next_key(fd, prev, &next.u) == 0) {
            uint32_t scope = fams[f] == XLB_FAMILY_V4 ? next.u.k4.scope : next.u.k6.scope;

            for (int i = 0; i < n_lists; i++) {
                if (scope != lists[i].scope ||
                    (lists[i].n &&
                     bsearch(&next, lists[i].keys, lists[i].n, sizeof(next), acl_key_cmp)))
                    continue;
                if (n_stale == cap) {
                    struct acl_key *t = realloc(stale, (cap = cap ? 2 * cap : 64) *
                                                sizeof(*t));

                    if (!t) {
                        err = -ENOMEM;
                        goto out;
                    }
                    stale = t;
                }
                stale[n_stale++] = next;
            }
            cur.u = next.u;
            prev = &cur.u;
        }
    }
    for (size_t i = 0; i < n_stale; i++)
        if (bpf_map_delete_elem(acl_fd(m, stale[i].family), &stale[i].u) && errno != ENOENT)
            err = -errno;
out:
    free(stale);
    return err;
}

int xlb_acl_set(const struct xlb_maps *m, uint32_t vs_id, const struct xlb_prefix *allow,
                size_t n_allow, const struct xlb_prefix *deny, size_t n_deny, struct xlb_err *e)
{
    struct acl_list l[2];
    struct xlb_service s;
    char what[XLB_NAME_LEN + 32];
    int err;

    err = service_read(m, vs_id, &s, e);
    if (err)
        return err;
    snprintf(what, sizeof(what), "service %s, allow list", s.name);
    err = prefixes_ok(allow, n_allow, what, e);
    if (err)
        return err;
    snprintf(what, sizeof(what), "service %s, deny list", s.name);
    err = prefixes_ok(deny, n_deny, what, e);
    if (err)
        return err;
    if (acl_list_build(&l[0], XLB_ACL_SCOPE_ALLOW(vs_id), allow, n_allow, XLB_ACL_F_ALLOW4,
                       XLB_ACL_F_ALLOW6) ||
        acl_list_build(&l[1], XLB_ACL_SCOPE_DENY(vs_id), deny, n_deny, XLB_ACL_F_DENY4,
                       XLB_ACL_F_DENY6)) {
        err = xlb_errf(e, ENOMEM, "out of memory");
        goto out;
    }
    err = acl_list_add(m, &l[0]);
    if (!err)
        err = acl_list_add(m, &l[1]);
    if (err) {
        err = xlb_errf(e, -err, "service %s: cannot add to its access lists: %s%s", s.name,
                       strerror(-err), err == -ENOSPC || err == -E2BIG ?
                       " (the lists of all services and the node hold at most "
                       "65536 prefixes per family together)" : "");
        goto out;
    }
    s.acl_flags = l[0].flags | l[1].flags;
    if (bpf_map_update_elem(m->services, &vs_id, &s, BPF_EXIST)) {
        err = xlb_errf(e, errno, "cannot write service %s: %s", s.name, strerror(errno));
        goto out;
    }
    err = acl_prune(m, l, 2);
    if (err)
        err = xlb_errf(e, -err, "service %s: cannot remove old prefixes from its access "
                       "lists: %s", s.name, strerror(-err));
out:
    free(l[0].keys);
    free(l[1].keys);
    return err;
}

int xlb_global_deny_set(const struct xlb_maps *m, const struct xlb_prefix *deny, size_t n,
                        struct xlb_err *e)
{
    struct xlb_settings c;
    struct acl_list l;
    __u32 zero = 0;
    int err;

    err = prefixes_ok(deny, n, "global deny list", e);
    if (err)
        return err;
    if (acl_list_build(&l, XLB_ACL_SCOPE_GLOBAL, deny, n, XLB_ACL_F_DENY4, XLB_ACL_F_DENY6))
        return xlb_errf(e, ENOMEM, "out of memory");
    err = acl_list_add(m, &l);
    if (err) {
        err = xlb_errf(e, -err, "cannot add to the global deny list: %s", strerror(-err));
        goto out;
    }
    if (bpf_map_lookup_elem(m->settings, &zero, &c)) {
        err = xlb_errf(e, errno, "cannot read xlb_settings: %s", strerror(errno));
        goto out;
    }
    c.global_deny = l.flags;
    if (bpf_map_update_elem(m->settings, &zero, &c, BPF_ANY)) {
        err = xlb_errf(e, errno, "cannot write xlb_settings: %s", strerror(errno));
        goto out;
    }
    err = acl_prune(m, &l, 1);
    if (err)
        err = xlb_errf(e, -err, "cannot remove old prefixes from the global deny list: %s",
                       strerror(-err));
out:
    free(l.keys);
    return err;
}

/* ---- node settings ---- */

int xlb_config_get(const struct xlb_maps *m, struct xlb_dp_config *out)
{
    struct xlb_settings c;
    __u32 zero = 0;

    if (bpf_map_lookup_elem(m->settings, &zero, &c))
        return -errno;
    memset(out, 0, sizeof(*out));
    out->flood_threshold = c.flood_threshold;
    out->udp_idle_timeout_s = c.udp_idle_s;
    return 0;
}

int xlb_config_set(const struct xlb_maps *m, const struct xlb_dp_config *in, struct xlb_err *e)
{
    struct xlb_settings c;
    __u32 zero = 0, udp = in->udp_idle_timeout_s ? in->udp_idle_timeout_s :
                                                   XLB_UDP_IDLE_DEFAULT_S;

    if (udp > XLB_UDP_IDLE_MAX_S)
        return xlb_errf(e, EINVAL, "the UDP idle timeout of %u s is longer than the %u s "
                        "allowed", udp, XLB_UDP_IDLE_MAX_S);
    if (bpf_map_lookup_elem(m->settings, &zero, &c))
        return xlb_errf(e, errno, "cannot read xlb_settings: %s", strerror(errno));
    c.flood_threshold = in->flood_threshold;
    c.udp_idle_s = udp;
    c.udp_idle_ns = (uint64_t)udp * 1000000000ull;
    if (bpf_map_update_elem(m->settings, &zero, &c, BPF_ANY))
        return xlb_errf(e, errno, "cannot write xlb_settings: %s", strerror(errno));
    return 0;
}
