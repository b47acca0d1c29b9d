/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * model.c - the proxy's model of its layer-7 services, built from the
 * config: one px_service per layer-7 service, one pool per sub-service (and
 * one for the service's own reals), one px_real per configured real.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include "proxy.h"
#include "xlb_addr.h"
#include "cache.h"
#include "tls.h"

static void real_sockaddr(struct px_real *r)
{
    const struct xlb_cfg_real *c = r->cfg;

    memset(&r->sa, 0, sizeof(r->sa));
    r->port = c->port;
    if (c->family == XLB_FAMILY_V4) {
        struct sockaddr_in *s = (struct sockaddr_in *)&r->sa;

        s->sin_family = AF_INET;
        s->sin_port = htons(c->port);
        memcpy(&s->sin_addr, &c->addr, 4);
        r->salen = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&r->sa;

        s->sin6_family = AF_INET6;
        s->sin6_port = htons(c->port);
        memcpy(&s->sin6_addr, &c->addr, 16);
        r->salen = sizeof(*s);
    }
}

static int pool_init(struct px_pool *p, struct px_service *svc, const char *name,
                     const struct xlb_cfg_match *match, enum xlb_cfg_sched sched,
                     const struct xlb_cfg_persistence *persist, const struct xlb_cfg_real *reals,
                     int n_reals)
{
    int i;


    snprintf(p->name, sizeof(p->name), "%s", name);
    p->svc = svc;
    p->match = match;
    p->scheduler = sched;
    p->persist = persist;
    p->n_reals = n_reals;
    p->reals = calloc(n_reals > 0 ? (size_t)n_reals : 1, sizeof(*p->reals));
    if (!p->reals)
        return -ENOMEM;
    for (i = 0; i < n_reals; i++) {
        struct px_real *r = &p->reals[i];

        r->cfg = &reals[i];
        snprintf(r->name, sizeof(r->name), "%s", reals[i].name);
        r->index = (uint32_t)i;
        r->pool = p;
        real_sockaddr(r);
        atomic_init(&r->state, reals[i].enabled ? XLB_L7_UP : XLB_L7_HALT);
        atomic_init(&r->weight, reals[i].weight);
    }
    return 0;
}

/* Whether a real of the service or of one of its sub-services has tls: true. */
static bool service_has_tls_real(const struct xlb_cfg_service *c)
{
    int i, j;

    for (i = 0; i < c->n_reals; i++)
        if (c->reals[i].tls)
            return true;
    for (i = 0; i < c->n_subs; i++)
        for (j = 0; j < c->subs[i].n_reals; j++)
            if (c->subs[i].reals[j].tls)
                return true;
    return false;
}

static int service_init(struct px_service *s, const struct xlb_cfg_service *c, char *err,
                        size_t errlen)
{
    int n = c->n_subs ? c->n_subs + (c->n_reals > 0) : 1, i, rc;

    s->cfg = c;
    snprintf(s->name, sizeof(s->name), "%s", c->name);
    s->pools = calloc((size_t)n, sizeof(*s->pools));
    s->stats = calloc(1, sizeof(*s->stats));
    if (!s->pools || !s->stats)
        return -ENOMEM;
    if (c->cache.enabled && !(s->cache = px_cache_new(&c->cache)))
        return -ENOMEM;
    if (c->tls.enabled && (rc = px_tls_srv_new(&c->tls, c->name, &s->tls, err, errlen)))
        return rc;
    if (service_has_tls_real(c) &&
        (rc = px_tls_cli_new(c->tls.ca_file, &s->tls_cli, err, errlen)))
        return rc;
    s->n_pools = n;
    if (!c->n_subs)
        return pool_init(&s->pools[0], s, "", NULL, c->scheduler, &c->persistence, c->reals,
                         c->n_reals);
    for (i = 0; i < c->n_subs; i++) {
        const struct xlb_cfg_sub *sb = &c->subs[i];

        if ((rc = pool_init(&s->pools[i], s, sb->name, &sb->match, sb->scheduler,
                            &sb->persistence, sb->reals, sb->n_reals)))
            return rc;
    }
    /* The service's own reals, after its sub-services: what nothing else matched. */
    if (c->n_reals)
        return pool_init(&s->pools[c->n_subs], s, "", NULL, c->scheduler, &c->persistence,
                         c->reals, c->n_reals);
    return 0;
}

int px_model_build(struct px_model *m, const struct xlb_config *cfg, char *err, size_t errlen)
{
    int i, j, k, n = 0, rc;

    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    for (i = 0; i < cfg->n_services; i++)
        n += cfg->services[i].layer == 7;
    m->services = calloc((size_t)(n ? n : 1), sizeof(*m->services));
    if (!m->services)
        goto oom;
    if ((rc = px_cookie_key(cfg->proxy.cookie_key_file, m->cookie_key, err, errlen)))
        goto fail;
    for (i = 0; i < cfg->n_services; i++) {
        if (cfg->services[i].layer != 7)
            continue;
        err[0] = '\0';
        if ((rc = service_init(&m->services[m->n_services++], &cfg->services[i], err, errlen))) {
            if (!err[0])
                goto oom;
            goto fail;
        }
    }
    for (i = 0; i < m->n_services; i++)
        for (j = 0; j < m->services[i].n_pools; j++)
            m->n_reals += m->services[i].pools[j].n_reals;
    m->reals = calloc((size_t)(m->n_reals ? m->n_reals : 1), sizeof(*m->reals));
    if (!m->reals)
        goto oom;
    n = 0;
    for (i = 0; i < m->n_services; i++)
        for (j = 0; j < m->services[i].n_pools; j++)
            for (k = 0; k < m->services[i].pools[j].n_reals; k++) {
                struct px_real *r = &m->services[i].pools[j].reals[k];

                r->gindex = (uint32_t)n;
                m->reals[n++] = r;
            }
    for (i = 0; i < m->n_services; i++)
        if ((rc = px_lb_init(&m->services[i], m->cookie_key, err, errlen)))
            goto fail;
    return 0;
oom:
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory building the layer-7 services");
fail:
    px_model_free(m);
    return rc;
}

void px_model_free(struct px_model *m)
{
    int i, j;

    for (i = 0; m->services && i < m->n_services; i++) {
        struct px_service *s = &m->services[i];

        if (s->pools)
            px_lb_free(s);
        for (j = 0; s->pools && j < s->n_pools; j++)
            free(s->pools[j].reals);
        free(s->pools);
        free(s->stats);
        px_cache_free(s->cache);
        px_tls_srv_free(s->tls);
        px_tls_cli_free(s->tls_cli);
    }
    free(m->services);
    free(m->reals);
    memset(m, 0, sizeof(*m));
}

/*
 * The node key: the file's bytes hashed to 32 (any length from 16 bytes
 * on), so that every proxy of a cluster given the same file signs the same
 * cookies.  A missing file is created with 32 random bytes, mode 0600.
 */
int px_cookie_key(const char *path, uint8_t key[32], char *err, size_t errlen)
{
    uint8_t buf[4096];
    ssize_t n;
    unsigned int outlen = 32;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (getrandom(buf, 32, 0) != 32) {
            rc = -errno;
            snprintf(err, errlen, "cookie key: getrandom: %s", strerror(errno));
            return rc;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "cookie key %s is missing and cannot be created: %s; create "
                     "it (head -c 32 /dev/urandom > %s; chmod 600 %s) or set "
                     "proxy.cookie_key_file", path, strerror(errno), path, path);
            return rc;
        }
        if (write(fd, buf, 32) != 32) {
            rc = -errno;
            close(fd);
            unlink(path);
            snprintf(err, errlen, "cookie key %s: write: %s", path, strerror(-rc));
            return rc;
        }
        close(fd);
        px_log(PX_WARN, "created a new cookie key in %s: give every proxy of this cluster the "
               "same file, or active cookies will not be recognised across them", path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cookie key %s: %s; set proxy.cookie_key_file to a readable "
                 "file", path, strerror(errno));
        return rc;
    }
    n = read(fd, buf, sizeof(buf));
    rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc || n < 16) {
        snprintf(err, errlen, "cookie key %s: %s; allowed: a file of 16 to 4096 bytes "
                 "(head -c 32 /dev/urandom > %s)", path, rc ? strerror(-rc) : "too short", path);
        return rc ? rc : -EINVAL;
    }
    if (!EVP_Digest(buf, (size_t)n, key, &outlen, EVP_sha256(), NULL)) {
        snprintf(err, errlen, "cookie key %s: SHA-256 failed", path);
        return -EIO;
    }
    memset(buf, 0, sizeof(buf));
    return 0;
}

void px_service_command(struct px_service *s, const char *url)
{
    char host[XLB_L7_URL_LEN];
    const char *p = url, *slash;
    size_t n;

    if (!s->cache) {
        px_log(PX_WARN, "cache %s for %s%s%s ignored: the service has no cache in this proxy's "
               "config", url[0] ? "purge" : "flush", s->name, url[0] ? " " : "", url);
        return;
    }
    if (!url[0]) {
        n = px_cache_flush(s->cache);
        px_log(PX_INFO, "cache of %s flushed: %zu objects removed", s->name, n);
        return;
    }
    if (!strncmp(p, "http://", 7))
        p += 7;
    else if (!strncmp(p, "https://", 8))
        p += 8;
    if (p == url) {
        n = px_cache_purge(s->cache, NULL, url);
        px_log(PX_INFO, "cache of %s: %s purged under every host: %zu objects removed", s->name,
               url, n);
        return;
    }
    slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) >= sizeof(host)) {
        px_log(PX_WARN, "cache purge for %s: %s is not a URL; ignored", s->name, url);
        return;
    }
    memcpy(host, p, (size_t)(slash - p));
    host[slash - p] = '\0';
    n = px_cache_purge(s->cache, host, slash);
    px_log(PX_INFO, "cache of %s: %s purged: %zu objects removed", s->name, url, n);
}
