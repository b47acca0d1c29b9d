// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * route.c - content switching: the first pool of a service whose match
 * conditions all hold for a request.
 *
 * Conditions (struct xlb_cfg_match, every non-empty one must hold):
 *   path_prefix  the path (target up to '?', origin-form or the path of an
 *                absolute-form target) starts with it, bytes compared as is;
 *   path_regex   PCRE2 pattern, unanchored, matched against the same path;
 *   host         equals the Host field case-insensitively, a ":port" suffix
 *                of the field ignored (also after an IPv6 "[...]" literal);
 *   header       the first field named header_name exists and, when
 *                header_value is not empty, its value equals it exactly;
 *   method       equals the method exactly.
 * Patterns are compiled once (with JIT where available); a compiled pattern
 * is read-only and shared by all threads, and each thread matches with its
 * own match data, created on first use and freed when the thread exits.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lb_int.h"

static pthread_key_t md_key;
static bool md_key_ok;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *tl_md;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    /* Without a key (the process is out of them) match data still works;
     * it is then not freed at thread exit. */
    md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

/* This thread's match data (one ovector pair: only "does it match" is
 * asked), NULL when out of memory. */
static pcre2_match_data *thread_md(void)
{
    if (!tl_md) {
        tl_md = pcre2_match_data_create(1, NULL);
        if (tl_md && md_key_ok)
            pthread_setspecific(md_key, tl_md);
    }
    return tl_md;
}

static bool match_empty(const struct xlb_cfg_match *m)
{
    return !m->path_prefix[0] && !m->path_regex[0] && !m->host[0] && !m->header_name[0] &&
           !m->method[0];
}

/* Compile pool's path_regex.  Returns 0 or -EINVAL/-ENOMEM with err set to
 * "service S sub-service P: path_regex: MESSAGE at offset N". */
int px_route_init(struct px_pool *pool, char *err, size_t errlen)
{
    struct px_lb_pool *lb = pool->lb;
    const struct xlb_cfg_match *m = pool->match;
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    int ec;

    pthread_once(&md_once, md_key_init);
    lb->match_all = !m || match_empty(m);
    if (!m || !m->path_regex[0])
        return 0;
    lb->re = (struct pcre2_real_code_8 *)pcre2_compile((PCRE2_SPTR)m->path_regex,
                                                         PCRE2_ZERO_TERMINATED, 0, &ec, &off,
                                                         NULL);
    if (!lb->re) {
        if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", ec);
        snprintf(err, errlen, "service %s sub-service %s: path_regex: %s at offset %zu",
                 pool->svc->name, pool->name[0] ? pool->name : "(own reals)", (char *)msg,
                 (size_t)off);
        return ec == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL;
    }
    /* JIT is only faster; without it (not built in, no executable memory)
     * the interpreter gives the same answers. */
    (void)pcre2_jit_compile((pcre2_code *)lb->re, PCRE2_JIT_COMPLETE);
    return 0;
}

void px_route_free(struct px_pool *pool)
{
    if (pool->lb && pool->lb->re) {
        pcre2_code_free((pcre2_code *)pool->lb->re);
        pool->lb->re = NULL;
    }
}

/* Index of the first field named name[0..nlen) (case-insensitive) at or
 * after from, -1 when none. */
int px_field_find(const struct xlb_h1_head *h, const char *buf, const char *name, size_t nlen,
                  uint32_t from)
{
    for (uint32_t i = from; i < h->n_fields; i++) {
        const struct xlb_h1_field *f = &h->fields[i];

        if (f->name.len == nlen && !strncasecmp(buf + f->name.off, name, nlen))
            return (int)i;
    }
    return -1;
}

/* The path of the request target: up to '?' (or '#'); for an absolute-form
 * target "scheme://authority/path?q" the part from the first '/' after the
 * authority ("" when there is none). */
static void target_path(const char *buf, const struct xlb_h1_head *h, const char **p, size_t *len)
{
    const char *t = buf + h->target.off, *end = t + h->target.len, *q;

    if (h->target.len && t[0] != '/') {
        const char *s = memchr(t, ':', (size_t)(end - t));

        if (s && end - s >= 3 && s[1] == '/' && s[2] == '/') {
            s += 3;
            while (s < end && *s != '/' && *s != '?' && *s != '#')
                s++;
            t = s;
        }
    }
    for (q = t; q < end && *q != '?' && *q != '#'; q++)
        ;
    *p = t;
    *len = (size_t)(q - t);
}

/* The Host field's value without a ":port" suffix. */
static bool host_of(const char *buf, const struct xlb_h1_head *h, const char **p, size_t *len)
{
    int i = h->host_field;
    const char *v, *e;

    if (i < 0 || (uint32_t)i >= h->n_fields)
        i = px_field_find(h, buf, "host", 4, 0);
    if (i < 0)
        return false;
    v = buf + h->fields[i].value.off;
    e = v + h->fields[i].value.len;
    if (v < e && *v == '[') {
        const char *rb = memchr(v, ']', (size_t)(e - v));

        if (rb)
            e = rb + 1;
    } else {
        const char *c = memchr(v, ':', (size_t)(e - v));

        if (c)
            e = c;
    }
    *p = v;
    *len = (size_t)(e - v);
    return true;
}

static bool pool_matches(const struct px_pool *pool, const struct px_reqview *rv,
                         const char *path, size_t plen)
{
    const struct xlb_cfg_match *m = pool->match;
    const struct xlb_h1_head *h = rv->head;
    const char *buf = rv->buf;

    if (pool->lb->match_all)
        return true;
    if (m->method[0]) {
        size_t n = strlen(m->method);

        if (h->method.len != n || memcmp(buf + h->method.off, m->method, n))
            return false;
    }
    if (m->path_prefix[0]) {
        size_t n = strlen(m->path_prefix);

        if (plen < n || memcmp(path, m->path_prefix, n))
            return false;
    }
    if (m->host[0]) {
        const char *hv;
        size_t hl, n = strlen(m->host);

        if (!host_of(buf, h, &hv, &hl) || hl != n || strncasecmp(hv, m->host, n))
            return false;
    }
    if (m->header_name[0]) {
        int i = px_field_find(h, buf, m->header_name, strlen(m->header_name), 0);

        if (i < 0)
            return false;
        if (m->header_value[0]) {
            size_t n = strlen(m->header_value);
            const struct xlb_h1_field *f = &h->fields[i];

            if (f->value.len != n || memcmp(buf + f->value.off, m->header_value, n))
                return false;
        }
    }
    if (pool->lb->re) {
        pcre2_match_data *md = thread_md();

        if (!md)
            return false;
        if (pcre2_match((const pcre2_code *)pool->lb->re, (PCRE2_SPTR)path, plen, 0, 0, md,
                        NULL) < 0)
            return false;
    }
    return true;
}

/* px.h: the first pool whose conditions all hold, NULL when none does. */
struct px_pool *px_lb_route(struct px_service *svc, const struct px_reqview *rv)
{
    const char *path;
    size_t plen;

    target_path(rv->buf, rv->head, &path, &plen);
    for (int i = 0; i < svc->n_pools; i++)
        if (svc->pools[i].lb && pool_matches(&svc->pools[i], rv, path, plen))
            return &svc->pools[i];
    return NULL;
}
