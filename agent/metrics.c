// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * metrics.c - GET /metrics: the agent's state and the data plane's counters
 * in the Prometheus text format 0.0.4.  Counters are read from the per-CPU
 * maps at scrape time; active flows are those of the last rebalance scan.
 * Layer-7 pools (vs="SERVICE" or "SERVICE/SUB") have the agent's own
 * gauges (state, weights, checks) but no data-plane counters: xlb-proxy
 * exports those.  Every metric is listed with its meaning in
 * docs/metrics.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

#define FAM(b, name, type, help) \
    do { if (xlb_prom_family(b, name, type, help)) return -ENOMEM; } while (0)
#define U64(b, name, labels, v) \
    do { if (xlb_prom_sample_u64(b, name, labels, v)) return -ENOMEM; } while (0)

static int service_counters(struct agent *a, struct xlb_buf *b)
{
    static const struct { const char *name, *help; int field; } m[] = {
        { "xlb_service_packets_total", "Packets addressed to the service.", 0 },
        { "xlb_service_bytes_total", "Bytes addressed to the service.", 1 },
        { "xlb_service_new_flows_total", "New flows scheduled by the service.", 2 },
    };

    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        FAM(b, m[k].name, "counter", m[k].help);
        for (int i = 0; i < a->n_services; i++) {
            struct agent_service *s = a->services[i];
            const char *l[] = { "vs", s->name, NULL };
            struct xlb_counters c = {};
            __u64 v[3];

            if (s->l7)
                continue;
            xlb_counters_read(a->maps.vs_stats, s->vs_id, &c);
            v[0] = c.packets, v[1] = c.bytes, v[2] = c.new_flows;
            U64(b, m[k].name, l, v[m[k].field]);
        }
    }
    FAM(b, "xlb_service_active_flows", "gauge",
        "Active flows of the service at the last connection-table scan.");
    for (int i = 0; i < a->n_services; i++) {
        struct agent_service *s = a->services[i];
        const char *l[] = { "vs", s->name, NULL };
        uint64_t sum = 0;

        if (s->l7)
            continue;
        for (int j = 0; j < s->n_reals; j++)
            sum += s->reals[j]->active;
        U64(b, "xlb_service_active_flows", l, sum);
    }
    FAM(b, "xlb_service_usable_reals", "gauge",
        "Real servers of the service that receive new flows.");
    for (int i = 0; i < a->n_services; i++) {
        struct agent_service *s = a->services[i];
        const char *l[] = { "vs", s->name, NULL };
        uint64_t n = 0;

        for (int j = 0; j < s->n_reals; j++)
            n += s->reals[j]->eff_weight > 0;
        U64(b, "xlb_service_usable_reals", l, n);
    }
    return 0;
}

static int real_counters(struct agent *a, struct xlb_buf *b)
{
    static const struct { const char *name, *help; int field; } m[] = {
        { "xlb_real_packets_total", "Packets sent to the real server.", 0 },
        { "xlb_real_bytes_total", "Bytes sent to the real server.", 1 },
        { "xlb_real_new_flows_total", "New flows placed on the real server.", 2 },
    };

    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        FAM(b, m[k].name, "counter", m[k].help);
        for (int i = 0; i < a->n_services; i++)
            for (int j = 0; !a->services[i]->l7 && j < a->services[i]->n_reals; j++) {
                struct agent_real *r = a->services[i]->reals[j];
                const char *l[] = { "vs", a->services[i]->name, "rs", r->cfg.name, NULL };
                struct xlb_counters c = {};
                __u64 v[3];

                xlb_counters_read(a->maps.real_stats, r->real_id, &c);
                v[0] = c.packets, v[1] = c.bytes, v[2] = c.new_flows;
                U64(b, m[k].name, l, v[m[k].field]);
            }
    }
    return 0;
}

static uint64_t g_active(const struct agent_real *r) { return r->active; }
static uint64_t g_weight(const struct agent_real *r) { return r->weight; }
static uint64_t g_eff(const struct agent_real *r) { return r->eff_weight; }
static uint64_t g_check(const struct agent_real *r)
{
    return r->check_up && (!r->icmp || r->icmp->up);
}

/* One gauge family with a sample per (service, real); without l7, only
 * for layer-4 services. */
static int real_gauge(struct agent *a, struct xlb_buf *b, const char *name, const char *help,
                      uint64_t (*get)(const struct agent_real *), bool l7)
{
    FAM(b, name, "gauge", help);
    for (int i = 0; i < a->n_services; i++)
        for (int j = 0; (l7 || !a->services[i]->l7) && j < a->services[i]->n_reals; j++) {
            struct agent_real *r = a->services[i]->reals[j];
            const char *l[] = { "vs", a->services[i]->name, "rs", r->cfg.name, NULL };

            U64(b, name, l, get(r));
        }
    return 0;
}

static int real_gauges(struct agent *a, struct xlb_buf *b)
{
    int rc;

    if ((rc = real_gauge(a, b, "xlb_real_active_flows",
                         "Active flows on the real server at the last connection-table scan.",
                         g_active, false)))
        return rc;
    FAM(b, "xlb_real_state", "gauge",
        "State of the real server: 1 for its current state, 0 for the others.");
    for (int i = 0; i < a->n_services; i++)
        for (int j = 0; j < a->services[i]->n_reals; j++) {
            struct agent_real *r = a->services[i]->reals[j];
            enum agent_state st = agent_real_state(r);

            for (int k = RS_UP; k <= RS_HALT; k++) {
                const char *l[] = { "vs", a->services[i]->name, "rs", r->cfg.name,
                                    "state", agent_state_name(k), NULL };

                U64(b, "xlb_real_state", l, st == (enum agent_state)k);
            }
        }
    if ((rc = real_gauge(a, b, "xlb_real_weight",
                         "Weight of the real server (configured or set by the operator).",
                         g_weight, true)) ||
        (rc = real_gauge(a, b, "xlb_real_effective_weight",
                         "Share the scheduler gave the real server in the selection table.",
                         g_eff, true)) ||
        (rc = real_gauge(a, b, "xlb_real_check_up",
                         "Health-check decision for the real server: 1 up, 0 down.", g_check,
                         true)))
        return rc;
    FAM(b, "xlb_real_check_duration_seconds", "histogram",
        "Duration of the real server's health-check probes.");
    for (int i = 0; i < a->n_services; i++)
        for (int j = 0; j < a->services[i]->n_reals; j++) {
            struct agent_real *r = a->services[i]->reals[j];
            const char *l[] = { "vs", a->services[i]->name, "rs", r->cfg.name, NULL };

            if (xlb_prom_hist_write(b, "xlb_real_check_duration_seconds", l, &r->hist))
                return -ENOMEM;
        }
    return 0;
}

static int reasons(struct agent *a, struct xlb_buf *b)
{
    FAM(b, "xlb_packets_total", "counter",
        "Packets seen by the balancer, by what happened to them.");
    for (uint32_t k = 0; k < XLB_R_MAX; k++) {
        struct xlb_reason_counter c = {};
        const char *l[] = { "reason", xlb_reason_name(k), NULL };

        if (k == XLB_R_DECAP || k == XLB_R_DECAP_PASS)
            continue;           /* the decap program's, on real servers */
        xlb_reason_read(a->maps.reasons, k, &c);
        U64(b, "xlb_packets_total", l, c.packets);
    }
    FAM(b, "xlb_drops_total", "counter", "Packets dropped by the balancer, by reason.");
    for (uint32_t k = 0; k < XLB_R_MAX; k++) {
        struct xlb_reason_counter c = {};
        const char *name = xlb_reason_name(k);
        const char *l[] = { "reason", name, NULL };

        if (strncmp(name, "drop_", 5))
            continue;
        xlb_reason_read(a->maps.reasons, k, &c);
        U64(b, "xlb_drops_total", l, c.packets);
    }
    return 0;
}

static int reloads(struct agent *a, struct xlb_buf *b)
{
    const char *ok[] = { "result", "success", NULL }, *bad[] = { "result", "failure", NULL };

    FAM(b, "xlb_config_reloads_total", "counter", "Configuration reloads, by result.");
    U64(b, "xlb_config_reloads_total", ok, a->reloads_ok);
    U64(b, "xlb_config_reloads_total", bad, a->reloads_failed);
    FAM(b, "xlb_config_last_reload_successful", "gauge",
        "Whether the last configuration load or reload succeeded.");
    U64(b, "xlb_config_last_reload_successful", NULL, a->last_reload_ok);
    FAM(b, "xlb_config_last_reload_timestamp_seconds", "gauge",
        "When the configuration was last loaded or a reload was tried.");
    if (xlb_prom_sample(b, "xlb_config_last_reload_timestamp_seconds", NULL,
                        a->last_reload_time))
        return -ENOMEM;
    FAM(b, "xlb_l7_map_write_errors_total", "counter",
        "Failed writes of layer-7 real states into the xlb_l7_reals map.");
    U64(b, "xlb_l7_map_write_errors_total", NULL, a->l7_write_errors);
    return 0;
}

int agent_metrics_write(struct agent *a, struct xlb_buf *b)
{
    int rc;

    if ((rc = service_counters(a, b)) || (rc = real_counters(a, b)) ||
        (rc = real_gauges(a, b)) || (rc = reasons(a, b)) || (rc = reloads(a, b)))
        return rc;
    return 0;
}

void agent_metrics_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg)
{
    struct agent *a = arg;

    if (strcmp(req->path, "/metrics")) {
        resp->status = 404;
        xlb_buf_printf(&resp->body, "not found: the metrics are at /metrics\n");
        return;
    }
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET, HEAD\r\n");
        return;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof(resp->content_type),
             "text/plain; version=0.0.4; charset=utf-8");
    if (agent_metrics_write(a, &resp->body)) {
        resp->status = 500;
        resp->body.len = 0;
        xlb_buf_printf(&resp->body, "out of memory\n");
    }
}
