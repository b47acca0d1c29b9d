/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * metrics.c - the proxy's Prometheus metrics (docs/metrics.md), written from
 * the counters the workers keep in atomics.  Labels as the agent's: vs (the
 * service, "SERVICE/SUB" for a sub-service's reals), rs, reason.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"
#include "cache.h"
#include "tls.h"

const double px_hist_bounds[PX_HIST_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

static void pool_vs(const struct px_pool *p, char *buf, size_t len)
{
    if (p->name[0])
        snprintf(buf, len, "%s/%s", p->svc->name, p->name);
    else
        snprintf(buf, len, "%s", p->svc->name);
}

typedef uint64_t (*real_val)(struct px_real *r, int arg);

static uint64_t rv_requests(struct px_real *r, int a) { (void)a; return atomic_load(&r->requests); }
static uint64_t rv_class(struct px_real *r, int a) { return atomic_load(&r->status_class[a]); }
static uint64_t rv_errors(struct px_real *r, int a) { (void)a; return atomic_load(&r->upstream_errors); }
static uint64_t rv_active(struct px_real *r, int a) { (void)a; return atomic_load(&r->active); }
static uint64_t rv_weight(struct px_real *r, int a) { (void)a; return atomic_load(&r->weight); }
static uint64_t rv_in(struct px_real *r, int a) { (void)a; return atomic_load(&r->bytes_in); }
static uint64_t rv_out(struct px_real *r, int a) { (void)a; return atomic_load(&r->bytes_out); }

/* One sample per real of the model, with an optional extra label. */
static int per_real(const struct px_model *m, struct xlb_buf *b, const char *name,
                    const char *xlabel, const char *xval, real_val f, int arg)
{
    int i, j, k, rc = 0;

    for (i = 0; i < m->n_services && !rc; i++)
        for (j = 0; j < m->services[i].n_pools && !rc; j++) {
            struct px_pool *p = &m->services[i].pools[j];
            char vs[2 * XLB_NAME_LEN + 2];

            pool_vs(p, vs, sizeof(vs));
            for (k = 0; k < p->n_reals && !rc; k++) {
                const char *labels[] = { "vs", vs, "rs", p->reals[k].name, xlabel, xval, NULL };

                if (!xlabel)
                    labels[4] = NULL;
                rc = xlb_prom_sample_u64(b, name, labels, f(&p->reals[k], arg));
            }
        }
    return rc;
}

int px_metrics_write(const struct px_model *m, struct px_worker *ws, int n_workers,
                     struct xlb_buf *b)
{
    static const char *const classes[] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };
    static const char *const states[] = { "up", "down", "drain", "halt" };
    uint64_t active = 0, total = 0;
    int i, j, rc = 0;

    for (i = 0; i < n_workers; i++) {
        active += atomic_load(&ws[i].conns_active);
        total += atomic_load(&ws[i].conns_total);
    }
    rc |= xlb_prom_family(b, "xlb_proxy_connections_active", "gauge",
                          "Client connections open now, all workers.");
    rc |= xlb_prom_sample_u64(b, "xlb_proxy_connections_active", NULL, active);
    rc |= xlb_prom_family(b, "xlb_proxy_connections_total", "counter",
                          "Client connections accepted.");
    rc |= xlb_prom_sample_u64(b, "xlb_proxy_connections_total", NULL, total);
    rc |= xlb_prom_family(b, "xlb_proxy_workers", "gauge", "Worker threads.");
    rc |= xlb_prom_sample_u64(b, "xlb_proxy_workers", NULL, (uint64_t)n_workers);

    rc |= xlb_prom_family(b, "xlb_proxy_requests_total", "counter",
                          "Requests finished (answered, failed or cut), by service.");
    for (i = 0; i < m->n_services; i++) {
        const char *l[] = { "vs", m->services[i].name, NULL };

        rc |= xlb_prom_sample_u64(b, "xlb_proxy_requests_total", l,
                                  atomic_load(&m->services[i].stats->requests));
    }
    rc |= xlb_prom_family(b, "xlb_proxy_errors_total", "counter",
                          "Requests the proxy answered itself or cut, by reason.");
    for (i = 0; i < m->n_services; i++) {
        struct px_svc_stats *s = m->services[i].stats;
        struct { const char *reason; uint64_t v; } e[] = {
            { "bad_request", atomic_load(&s->bad_requests) },
            { "no_route", atomic_load(&s->no_route) },
            { "no_real", atomic_load(&s->no_real) },
            { "timeout", atomic_load(&s->timeouts) },
            { "upstream", atomic_load(&s->upstream_errors) },
            { "unsupported", atomic_load(&s->unsupported) },
        };

        for (j = 0; j < (int)(sizeof(e) / sizeof(e[0])); j++) {
            const char *l[] = { "vs", m->services[i].name, "reason", e[j].reason, NULL };

            rc |= xlb_prom_sample_u64(b, "xlb_proxy_errors_total", l, e[j].v);
        }
    }
    rc |= xlb_prom_family(b, "xlb_proxy_own_responses_total", "counter",
                          "Answers the proxy gave itself (errors it found), by status class.");
    for (i = 0; i < m->n_services; i++) {
        const char *l4[] = { "vs", m->services[i].name, "class", "4xx", NULL };
        const char *l5[] = { "vs", m->services[i].name, "class", "5xx", NULL };

        rc |= xlb_prom_sample_u64(b, "xlb_proxy_own_responses_total", l4,
                                  atomic_load(&m->services[i].stats->errors_4xx));
        rc |= xlb_prom_sample_u64(b, "xlb_proxy_own_responses_total", l5,
                                  atomic_load(&m->services[i].stats->errors_5xx));
    }
    rc |= xlb_prom_family(b, "xlb_proxy_retries_total", "counter",
                          "Requests sent again to another real after a connection failure.");
    for (i = 0; i < m->n_services; i++) {
        const char *l[] = { "vs", m->services[i].name, NULL };

        rc |= xlb_prom_sample_u64(b, "xlb_proxy_retries_total", l,
                                  atomic_load(&m->services[i].stats->retries));
    }
    rc |= xlb_prom_family(b, "xlb_proxy_request_duration_seconds", "histogram",
                          "From a request's first byte to the end of its response.");
    for (i = 0; i < m->n_services; i++) {
        struct px_svc_stats *s = m->services[i].stats;
        const char *l[] = { "vs", m->services[i].name, NULL };
        struct xlb_prom_hist h;

        xlb_prom_hist_init(&h, px_hist_bounds, PX_HIST_N);
        for (j = 0; j <= PX_HIST_N; j++) {
            h.counts[j] = atomic_load(&s->hist[j]);
            h.count += h.counts[j];
        }
        h.sum = (double)atomic_load(&s->hist_sum_us) / 1e6;
        rc |= xlb_prom_hist_write(b, "xlb_proxy_request_duration_seconds", l, &h);
    }

    rc |= xlb_prom_family(b, "xlb_proxy_tls_handshakes_total", "counter",
                          "TLS handshakes with clients by result: ok (resumed ones included), "
                          "and failures by reason.");
    for (i = 0; i < m->n_services; i++) {
        struct px_tls_stats ts;
        const char *res[] = { "ok", "plaintext", "version", "cipher", "other" };
        uint64_t v[5];

        if (!m->services[i].tls)
            continue;
        px_tls_srv_stats(m->services[i].tls, &ts);
        v[0] = ts.ok, v[1] = ts.fail_plaintext, v[2] = ts.fail_version, v[3] = ts.fail_cipher;
        v[4] = ts.fail_other;
        for (j = 0; j < 5; j++) {
            const char *l[] = { "vs", m->services[i].name, "result", res[j], NULL };

            rc |= xlb_prom_sample_u64(b, "xlb_proxy_tls_handshakes_total", l, v[j]);
        }
    }
    for (j = 0; j < 2; j++) {
        static const char *const fam[][2] = {
            { "xlb_proxy_tls_resumed_total",
              "TLS handshakes that resumed a session (ticket or cache)." },
            { "xlb_proxy_tls_sni_misses_total",
              "Client hellos whose server name matched no certificate (the first one was "
              "used)." },
        };

        rc |= xlb_prom_family(b, fam[j][0], "counter", fam[j][1]);
        for (i = 0; i < m->n_services; i++) {
            struct px_tls_stats ts;
            const char *l[] = { "vs", m->services[i].name, NULL };

            if (!m->services[i].tls)
                continue;
            px_tls_srv_stats(m->services[i].tls, &ts);
            rc |= xlb_prom_sample_u64(b, fam[j][0], l, j ? ts.sni_miss : ts.resumed);
        }
    }
    rc |= xlb_prom_family(b, "xlb_proxy_cache_lookups_total", "counter",
                          "Cache lookups by result: hit, miss, bypass (not cacheable), refresh "
                          "(the client asked for a fresh copy).");
    for (i = 0; i < m->n_services; i++) {
        struct px_cache_stats cs;
        const char *res[] = { "hit", "miss", "bypass", "refresh" };
        uint64_t v[4];

        if (!m->services[i].cache)
            continue;
        px_cache_get_stats(m->services[i].cache, &cs);
        v[0] = cs.hits, v[1] = cs.misses, v[2] = cs.bypasses, v[3] = cs.refreshes;
        for (j = 0; j < 4; j++) {
            const char *l[] = { "vs", m->services[i].name, "result", res[j], NULL };

            rc |= xlb_prom_sample_u64(b, "xlb_proxy_cache_lookups_total", l, v[j]);
        }
    }
    {
        static const char *const names[][2] = {
            { "xlb_proxy_cache_stores_total", "Responses stored." },
            { "xlb_proxy_cache_evictions_total", "Objects removed to stay under max_size." },
            { "xlb_proxy_cache_purged_total", "Objects removed by flush, purge or an unsafe "
                                              "method's invalidation." },
            { "xlb_proxy_cache_objects", "Objects stored now." },
            { "xlb_proxy_cache_bytes", "Bytes stored now (heads, bodies, keys)." },
        };
        int k;

        for (k = 0; k < 5; k++) {
            rc |= xlb_prom_family(b, names[k][0], k < 3 ? "counter" : "gauge", names[k][1]);
            for (i = 0; i < m->n_services; i++) {
                struct px_cache_stats cs;
                const char *l[] = { "vs", m->services[i].name, NULL };
                uint64_t v;

                if (!m->services[i].cache)
                    continue;
                px_cache_get_stats(m->services[i].cache, &cs);
                v = k == 0 ? cs.stores : k == 1 ? cs.evictions : k == 2 ? cs.purged :
                    k == 3 ? cs.objects : cs.bytes;
                rc |= xlb_prom_sample_u64(b, names[k][0], l, v);
            }
        }
    }
    rc |= xlb_prom_family(b, "xlb_proxy_real_responses_total", "counter",
                          "Responses relayed from a real, by status class (none: no response).");
    for (j = 0; j < 6; j++)
        rc |= per_real(m, b, "xlb_proxy_real_responses_total", "class", classes[j], rv_class, j);
    rc |= xlb_prom_family(b, "xlb_proxy_real_requests_total", "counter",
                          "Requests sent to a real.");
    rc |= per_real(m, b, "xlb_proxy_real_requests_total", NULL, NULL, rv_requests, 0);
    rc |= xlb_prom_family(b, "xlb_proxy_real_upstream_errors_total", "counter",
                          "Connection failures to a real (connect errors and timeouts, "
                          "closes before a response, invalid responses).");
    rc |= per_real(m, b, "xlb_proxy_real_upstream_errors_total", NULL, NULL, rv_errors, 0);
    rc |= xlb_prom_family(b, "xlb_proxy_real_active_requests", "gauge",
                          "Requests in flight to a real.");
    rc |= per_real(m, b, "xlb_proxy_real_active_requests", NULL, NULL, rv_active, 0);
    rc |= xlb_prom_family(b, "xlb_proxy_real_bytes_total", "counter",
                          "Bytes relayed: in = request bytes to the real, out = response bytes "
                          "to the client.");
    rc |= per_real(m, b, "xlb_proxy_real_bytes_total", "direction", "in", rv_in, 0);
    rc |= per_real(m, b, "xlb_proxy_real_bytes_total", "direction", "out", rv_out, 0);
    rc |= xlb_prom_family(b, "xlb_proxy_real_weight", "gauge",
                          "The weight in force, as the agent gives it.");
    rc |= per_real(m, b, "xlb_proxy_real_weight", NULL, NULL, rv_weight, 0);
    rc |= xlb_prom_family(b, "xlb_proxy_real_state", "gauge",
                          "1 for the state the proxy sees the real in (from the agent).");
    for (i = 0; i < m->n_reals; i++) {
        struct px_real *r = m->reals[i];
        char vs[2 * XLB_NAME_LEN + 2];
        uint32_t st = atomic_load(&r->state);

        pool_vs(r->pool, vs, sizeof(vs));
        for (j = 0; j < 4; j++) {
            const char *l[] = { "vs", vs, "rs", r->name, "state", states[j], NULL };

            rc |= xlb_prom_sample_u64(b, "xlb_proxy_real_state", l, st == (uint32_t)j);
        }
    }
    rc |= xlb_prom_family(b, "xlb_proxy_real_failed", "gauge",
                          "1 while a real is kept out after connection failures "
                          "(passive check).");
    for (i = 0; i < m->n_reals; i++) {
        struct px_real *r = m->reals[i];
        char vs[2 * XLB_NAME_LEN + 2];
        const char *l[] = { "vs", vs, "rs", r->name, NULL };

        pool_vs(r->pool, vs, sizeof(vs));
        rc |= xlb_prom_sample_u64(b, "xlb_proxy_real_failed", l,
                                  atomic_load(&r->failed_until_ms) > px_now_ms());
    }
    return rc ? -ENOMEM : 0;
}
