/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb-proxy - the layer-7 reverse proxy of xlb (docs/proxy.md).
 *
 *   xlb-proxy --config FILE [--workers N] [--log-level LEVEL]   run
 *   xlb-proxy --check FILE                                       validate
 *
 * Serves the `layer: 7` services of the config.  Real-server states and
 * weights come from xlb-agent's pinned xlb_l7_reals map.  SIGTERM/SIGINT
 * stop it; SIGUSR1 reopens the access log.  Exit status: 0 stopped by a
 * signal or a valid --check, 1 failure (the message says why), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"
#include "xlb_err.h"
#include "xlb_httpd.h"

struct px_settings px_set = { .access_fd = -1 };

static const char usage_text[] =
"usage: xlb-proxy --config FILE [--workers N] [--log-level err|warning|info|debug]\n"
"       xlb-proxy --check FILE\n"
"\n"
"  --config FILE   the node's YAML config; serves its layer: 7 services\n"
"  --check FILE    validate FILE and exit (0 valid, 1 not)\n"
"  --workers N     worker threads (default: proxy.workers, else one per core)\n"
"  --log-level L   err, warning, info (default) or debug\n";

struct px_main {
    uv_loop_t *loop;
    struct xlb_config *cfg;
    struct px_model model;
    struct px_worker *workers;
    int n_workers;
    struct px_state *state;
    struct xlb_httpd *metrics;
    uv_signal_t sig_term, sig_int, sig_usr1, sig_hup;
};

static void metrics_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg)
{
    struct px_main *pm = arg;

    if (strcmp(req->path, "/metrics")) {
        resp->status = 404;
        xlb_buf_printf(&resp->body, "not found; the proxy's metrics are at /metrics\n");
        return;
    }
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET, HEAD\r\n");
        return;
    }
    snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; version=0.0.4");
    if (px_metrics_write(&pm->model, pm->workers, pm->n_workers, &resp->body)) {
        xlb_buf_reset(&resp->body);
        resp->status = 500;
        xlb_buf_printf(&resp->body, "out of memory\n");
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct px_main *pm = s->data;

    px_log(PX_INFO, "%s: stopping", strsignal(signum));
    px_workers_stop(pm->workers, pm->n_workers);
    pm->workers = NULL;
    pm->n_workers = 0;
    px_state_stop(pm->state);
    pm->state = NULL;
    xlb_httpd_stop(pm->metrics);
    pm->metrics = NULL;
    uv_signal_stop(&pm->sig_term);
    uv_signal_stop(&pm->sig_int);
    uv_signal_stop(&pm->sig_usr1);
    uv_signal_stop(&pm->sig_hup);
    uv_close((uv_handle_t *)&pm->sig_hup, NULL);
    uv_close((uv_handle_t *)&pm->sig_term, NULL);
    uv_close((uv_handle_t *)&pm->sig_int, NULL);
    uv_close((uv_handle_t *)&pm->sig_usr1, NULL);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    px_log(PX_WARN, "SIGHUP: xlb-proxy does not reload its config; restart it to apply a new "
           "one (real states and weights follow the agent without a restart)");
}

static void on_usr1(uv_signal_t *s, int signum)
{
    struct px_main *pm = s->data;
    char err[512];

    (void)signum;
    if (px_access_open(pm->cfg->proxy.access_log, err, sizeof(err)))
        px_log(PX_ERR, "%s", err);
    else
        px_log(PX_INFO, "access log reopened");
}

static int count_services(const struct xlb_config *c)
{
    int i, n = 0;

    for (i = 0; i < c->n_services; i++)
        n += c->services[i].layer == 7;
    return n;
}

static int count_ports(const struct xlb_config *c)
{
    int i, n = 0;

    for (i = 0; i < c->n_services; i++)
        if (c->services[i].layer == 7)
            n += c->services[i].n_ports;
    return n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", required_argument, NULL, 'k' },
        { "workers", required_argument, NULL, 'w' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cfg_path = NULL, *check_path = NULL;
    struct px_main pm = { 0 };
    char err[1024];
    long workers = -1;
    int c, rc, lvl;

    while ((c = getopt_long(argc, argv, "c:k:w:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case 'k':
            check_path = optarg;
            break;
        case 'w': {
            char *end;

            workers = strtol(optarg, &end, 10);
            if (*end || workers < 1 || workers > PX_MAX_WORKERS) {
                fprintf(stderr, "xlb-proxy: --workers must be 1..%d\n", PX_MAX_WORKERS);
                return 2;
            }
            break;
        }
        case 'l':
            if ((lvl = xlb_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "xlb-proxy: --log-level must be err, warning, info or debug\n");
                return 2;
            }
            px_log_level = lvl;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc || (!cfg_path && !check_path) || (cfg_path && check_path)) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (check_path) {
        if (xlb_config_load(check_path, &pm.cfg, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("%s: valid, %d layer-7 service(s) on %d port(s)\n", check_path,
               count_services(pm.cfg), count_ports(pm.cfg));
        xlb_config_free(pm.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (xlb_config_load(cfg_path, &pm.cfg, err, sizeof(err))) {
        px_log(PX_ERR, "%s", err);
        return 1;
    }
    px_set.cfg = &pm.cfg->proxy;
    xlb_h1_limits_default(&px_set.limits);
    px_set.limits.max_start_line = pm.cfg->proxy.max_request_line;
    px_set.limits.max_head = pm.cfg->proxy.max_header_size;
    px_set.limits.max_headers = pm.cfg->proxy.max_header_count;
    px_set.limits.max_body = pm.cfg->proxy.max_body_size;
    if (px_access_open(pm.cfg->proxy.access_log, err, sizeof(err))) {
        px_log(PX_ERR, "%s", err);
        rc = 1;
        goto out_cfg;
    }
    if (px_model_build(&pm.model, pm.cfg, err, sizeof(err))) {
        px_log(PX_ERR, "%s", err);
        rc = 1;
        goto out_cfg;
    }
    if (!pm.model.n_services)
        px_log(PX_WARN, "%s has no layer-7 services: nothing to serve but metrics", cfg_path);
    pm.n_workers = workers > 0 ? (int)workers :
                   pm.cfg->proxy.workers ? (int)pm.cfg->proxy.workers :
                   (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (pm.n_workers < 1)
        pm.n_workers = 1;
    pm.loop = uv_default_loop();
    /* States before the first connection: workers read them at once. */
    pm.state = px_state_start(pm.loop, &pm.model, pm.cfg->node.bpffs, 250);
    if (!pm.state) {
        px_log(PX_ERR, "out of memory");
        rc = 1;
        goto out_model;
    }
    if (pm.cfg->proxy.metrics.set) {
        pm.metrics = xlb_httpd_start(pm.loop, &pm.cfg->proxy.metrics, metrics_handler, &pm, err,
                                     sizeof(err));
        if (!pm.metrics) {
            px_log(PX_ERR, "metrics: %s; set proxy.metrics.listen to a free address", err);
            rc = 1;
            goto out_state;
        }
    }
    if ((rc = px_workers_start(&pm.model, pm.n_workers, &pm.workers, err, sizeof(err)))) {
        px_log(PX_ERR, "%s", err);
        pm.n_workers = 0;
        rc = 1;
        goto out_metrics;
    }
    uv_signal_init(pm.loop, &pm.sig_term);
    uv_signal_init(pm.loop, &pm.sig_int);
    uv_signal_init(pm.loop, &pm.sig_usr1);
    uv_signal_init(pm.loop, &pm.sig_hup);
    pm.sig_term.data = pm.sig_int.data = pm.sig_usr1.data = pm.sig_hup.data = &pm;
    uv_signal_start(&pm.sig_hup, on_hup, SIGHUP);
    uv_signal_start(&pm.sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&pm.sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&pm.sig_usr1, on_usr1, SIGUSR1);
    if (pm.metrics)
        px_log(PX_INFO, "serving %d layer-7 service(s) on %d port(s) with %d workers; metrics on "
               "port %u", pm.model.n_services, count_ports(pm.cfg), pm.n_workers,
               xlb_httpd_port(pm.metrics));
    else
        px_log(PX_INFO, "serving %d layer-7 service(s) on %d port(s) with %d workers; metrics off",
               pm.model.n_services, count_ports(pm.cfg), pm.n_workers);
    uv_run(pm.loop, UV_RUN_DEFAULT);
    rc = 0;
    goto out_model;
out_metrics:
    xlb_httpd_stop(pm.metrics);
out_state:
    px_state_stop(pm.state);
    uv_run(pm.loop, UV_RUN_NOWAIT);
out_model:
    uv_walk(pm.loop, close_walk, NULL);
    uv_run(pm.loop, UV_RUN_DEFAULT);
    uv_loop_close(pm.loop);
    px_model_free(&pm.model);
out_cfg:
    xlb_config_free(pm.cfg);
    return rc;
}
