// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * api.c - the agent's JSON API (docs/api.md).
 *
 *   GET  /api/v1/services                         every layer-4 service and layer-7
 *                                                 pool, and their reals
 *   GET  /api/v1/services/NAME                    one service
 *   POST /api/v1/services/NAME/reals/REAL/drain   no new flows, existing ones continue
 *   POST /api/v1/services/NAME/reals/REAL/halt    disabled
 *   POST /api/v1/services/NAME/reals/REAL/enable  back to the checks' decision
 *   POST /api/v1/services/NAME/reals/REAL/weight  body {"weight": N}
 *   POST /api/v1/services/NAME/cache/flush        xlb-proxy drops NAME's cached responses
 *   POST /api/v1/services/NAME/cache/purge        body {"url": "..."}: of one URL only
 *   POST /api/v1/reload                           read the config file again
 *   GET  /api/v1/config                           the config in force and the last reload
 *
 * Every request needs "Authorization: Bearer TOKEN" with the token of
 * node.api.token_file; otherwise 401.  Errors are {"error": "sentence"}.
 * REAL is a real's name or address.  NAME is a layer-4 service, or a
 * layer-7 pool: "SERVICE" (the service's own reals) or "SERVICE/SUB" (a
 * sub-service's), the slash sent as %2F or as a path separator.  The cache
 * commands take a layer-7 service with cache.enabled (the cache is per
 * service, not per pool) and go to xlb-proxy through the xlb_l7_cmds map.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <netinet/in.h>

#include "agent.h"
#include "xlb_addr.h"

static void reply(struct xlb_http_resp *resp, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

    if (!s) {                   /* out of memory, or text that is not UTF-8 */
        status = 500;
        s = strdup("{\"error\": \"the answer could not be encoded as JSON\"}");
    }
    resp->status = status;
    snprintf(resp->content_type, sizeof(resp->content_type), "application/json");
    if (s) {
        xlb_buf_add(&resp->body, s, strlen(s));
        xlb_buf_add(&resp->body, "\n", 1);
        free(s);
    }
    json_decref(j);
}

static void reply_error(struct xlb_http_resp *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct xlb_http_resp *resp, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Names from the request may be anything: keep the text printable. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    reply(resp, status, json_pack("{s:s}", "error", msg));
}

static json_t *counters_json(int fd, uint32_t id, uint64_t active)
{
    struct xlb_counters c = {};

    xlb_counters_read(fd, id, &c);
    return json_pack("{s:I,s:I,s:I,s:I}", "packets", (json_int_t)c.packets, "bytes",
                     (json_int_t)c.bytes, "new_flows", (json_int_t)c.new_flows,
                     "active_flows", (json_int_t)active);
}

static json_t *check_json(const struct agent_real *r)
{
    const struct xlb_cfg_hc *hc = r->svc->hc;
    const struct xlb_check *c = r->check ? r->check : r->icmp ? r->icmp->check : NULL;
    json_t *j = json_pack("{s:s,s:b}", "type", xlb_cfg_hc_name(hc->type), "up",
                          r->check_up && (!r->icmp || r->icmp->up));

    if (c) {
        const struct xlb_check_stats *st = xlb_check_stats(c);

        json_object_set_new(j, "last_result", json_string(st->probes ?
                            xlb_check_result_name(st->last) : "none yet"));
        json_object_set_new(j, "last_detail", json_string(st->last_detail));
        json_object_set_new(j, "last_time", json_real(st->last_time_ms / 1000.0));
        json_object_set_new(j, "latency_ms", json_real(st->last_latency_ms));
        json_object_set_new(j, "probes", json_integer((json_int_t)st->probes));
        json_object_set_new(j, "failures", json_integer((json_int_t)st->failures));
    }
    if (r->icmp && r->check)
        json_object_set_new(j, "icmp_up", json_boolean(r->icmp->up));
    return j;
}

static json_t *real_json(struct agent *a, const struct agent_real *r)
{
    char abuf[XLB_ADDR_STRLEN];
    static const char *const admin[] = { "none", "drain", "halt" };

    if (r->svc->l7)             /* no data-plane slot, no counters: the proxy has them */
        return json_pack("{s:s,s:s,s:i,s:i,s:b,s:i,s:s,s:s,s:b,s:i,s:b,s:o,s:f,s:f,s:I}",
                         "name", r->cfg.name,
                         "address", xlb_addr_str(&r->cfg.addr, r->cfg.family, abuf,
                                                 sizeof(abuf)),
                         "port", r->cfg.port,
                         "weight", (int)r->weight,
                         "weight_set_by_operator", r->weight_set,
                         "effective_weight", (int)r->eff_weight,
                         "state", agent_state_name(agent_real_state(r)),
                         "admin", admin[r->admin],
                         "usable", agent_real_usable(r),
                         "max_conns", (int)r->cfg.max_conns,
                         "tls", r->cfg.tls,
                         "check", check_json(r),
                         "state_changed_at", r->state_change_ms / 1000.0,
                         "last_apply_us", r->last_apply_us,
                         "l7_gen", (json_int_t)r->l7_gen);
    return json_pack("{s:s,s:s,s:i,s:i,s:b,s:i,s:s,s:s,s:b,s:i,s:I,s:o,s:o,s:f,s:f}",
                     "name", r->cfg.name,
                     "address", xlb_addr_str(&r->cfg.addr, r->cfg.family, abuf, sizeof(abuf)),
                     "port", r->cfg.port,
                     "weight", (int)r->weight,
                     "weight_set_by_operator", r->weight_set,
                     "effective_weight", (int)r->eff_weight,
                     "state", agent_state_name(agent_real_state(r)),
                     "admin", admin[r->admin],
                     "usable", agent_real_usable(r),
                     "max_conns", (int)r->cfg.max_conns,
                     "real_id", (json_int_t)r->real_id,
                     "counters", counters_json(a->maps.real_stats, r->real_id, r->active),
                     "check", check_json(r),
                     "state_changed_at", r->state_change_ms / 1000.0,
                     "last_apply_us", r->last_apply_us);
}

static json_t *service_json(struct agent *a, const struct agent_service *s)
{
    const struct xlb_cfg_service *c = s->cfg;
    char abuf[XLB_ADDR_STRLEN];
    json_t *ports = json_array(), *reals = json_array(), *j;
    uint64_t active = 0;
    const char *proto = c->protocols == (XLB_CFG_PROTO_TCP | XLB_CFG_PROTO_UDP) ? "tcp+udp" :
                        c->protocols == XLB_CFG_PROTO_UDP ? "udp" : "tcp";

    for (int i = 0; i < c->n_ports; i++)
        json_array_append_new(ports, json_integer(c->ports[i]));
    for (int i = 0; i < s->n_reals; i++) {
        json_array_append_new(reals, real_json(a, s->reals[i]));
        active += s->reals[i]->active;
    }
    if (s->l7)
        return json_pack("{s:s,s:i,s:s,s:o,s:s,s:s,s:o,s:s,s:s,s:b,s:o}",
                         "name", s->name,
                         "layer", 7,
                         "service", c->name,
                         "sub_service", s->sub ? json_string(s->sub->name) : json_null(),
                         "address", xlb_addr_str(&c->addr, c->family, abuf, sizeof(abuf)),
                         "protocol", proto,
                         "ports", ports,
                         "scheduler", xlb_cfg_sched_name(s->scheduler),
                         "persistence", xlb_cfg_persist_name(s->persistence->type),
                         "tls", c->tls.enabled,
                         "reals", reals);
    j = json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:o,s:o}",
                  "name", c->name,
                  "address", xlb_addr_str(&c->addr, c->family, abuf, sizeof(abuf)),
                  "ports", ports,
                  "protocol", proto,
                  "forwarding", xlb_cfg_fwd_name(c->forwarding),
                  "scheduler", xlb_cfg_sched_name(c->scheduler),
                  "table", s->sched->kind == XLB_TABLE_SEQ ? "sequence" :
                           s->sched->kind == XLB_TABLE_HASH_SRC ? "source-hash" : "maglev",
                  "drop_on_failure", c->drop_on_failure,
                  "vs_id", (json_int_t)s->vs_id,
                  "table_size", (json_int_t)s->table_len,
                  "counters", counters_json(a->maps.vs_stats, s->vs_id, active),
                  "reals", reals);
    return j;
}

static bool authorized(struct agent *a, const struct xlb_http_req *req)
{
    const char *h = req->header(req, "Authorization");
    size_t n = strlen(a->token);
    unsigned diff = 0;

    if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != n || n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)h[7 + i] ^ (unsigned char)a->token[i];
    return diff == 0;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Percent-decode one path segment [s, s+len) into out; false when bad. */
static bool segment(const char *s, size_t len, char *out, size_t outlen)
{
    size_t k = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (k + 1 >= outlen || c == 0)
            return false;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return k > 0;
}

/* Split path after prefix into at most max segments. */
static int split(const char *path, char seg[][128], int max)
{
    int n = 0;

    while (*path == '/')
        path++;
    while (*path && n < max) {
        const char *e = strchr(path, '/');
        size_t len = e ? (size_t)(e - path) : strlen(path);

        if (!segment(path, len, seg[n], sizeof(seg[n])))
            return -1;
        n++;
        path += len;
        while (*path == '/')
            path++;
    }
    return *path ? -1 : n;
}

static void real_action(struct agent *a, const struct xlb_http_req *req,
                        struct xlb_http_resp *resp, struct agent_service *s, const char *rname,
                        const char *action)
{
    struct agent_real *r = agent_find_real(s, rname);
    char err[512];
    int rc;

    if (!r) {
        reply_error(resp, 404, "service %s has no real named or addressed %s (see 'xlbctl "
                    "list %s')", s->name, rname, s->name);
        return;
    }
    if (!strcmp(action, "drain"))
        rc = agent_set_admin(r, ADMIN_DRAIN, err, sizeof(err));
    else if (!strcmp(action, "halt"))
        rc = agent_set_admin(r, ADMIN_HALT, err, sizeof(err));
    else if (!strcmp(action, "enable"))
        rc = agent_set_admin(r, ADMIN_NONE, err, sizeof(err));
    else if (!strcmp(action, "weight")) {
        json_error_t je;
        json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &je);
        json_t *w = body ? json_object_get(body, "weight") : NULL;

        if (!w || !json_is_integer(w) || json_integer_value(w) < 0 ||
            json_integer_value(w) > 65535) {
            json_decref(body);
            reply_error(resp, 400, "the body must be {\"weight\": N} with N from 0 to 65535");
            return;
        }
        rc = agent_set_weight(r, (uint32_t)json_integer_value(w), err, sizeof(err));
        json_decref(body);
    } else {
        reply_error(resp, 404, "unknown action %s: use drain, halt, enable or weight", action);
        return;
    }
    if (rc) {
        reply_error(resp, 500, "%s", err);
        return;
    }
    reply(resp, 200, real_json(a, r));
}

/*
 * Check a URL to purge (NUL-terminated, len bytes): "/path?query" or
 * "http://HOST/path?query" / "https://...", 1..XLB_L7_URL_LEN-1 bytes of
 * printable ASCII.  Returns true, or false with the rule broken in why.
 */
static bool purge_url_ok(const char *u, size_t len, char *why, size_t whylen)
{
    const char *p = NULL;

    if (len < 1 || len > XLB_L7_URL_LEN - 1) {
        snprintf(why, whylen, "the URL must be 1 to %d bytes long, not %zu", XLB_L7_URL_LEN - 1,
                 len);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];

        if (c <= 0x20 || c >= 0x7f) {
            snprintf(why, whylen, "the URL must not contain spaces, control characters or "
                     "non-ASCII bytes (byte %zu is 0x%02x): percent-encode them", i + 1, c);
            return false;
        }
    }
    if (u[0] == '/')
        return true;
    if (!strncmp(u, "http://", 7))
        p = u + 7;
    else if (!strncmp(u, "https://", 8))
        p = u + 8;
    if (p) {
        const char *h = p;

        while (*p && (isalnum((unsigned char)*p) || strchr("-.:[]_", *p)))
            p++;
        if (p > h && *p == '/')
            return true;
    }
    snprintf(why, whylen, "the URL must start with \"/\" (the path under every host) or be "
             "\"http://HOST/PATH\" or \"https://HOST/PATH\" (a host, optionally with :PORT, "
             "then a path starting with \"/\"), not '%.*s'", len > 80 ? 80 : (int)len, u);
    return false;
}

/*
 * POST /api/v1/services/NAME/cache/ACTION: name is a service of the config,
 * never a "SERVICE/SUB" pool.  404 for an unknown name or action, 409 for a
 * service without a cache, 400 for a bad body, 500 when the map write fails.
 */
static void cache_action(struct agent *a, const struct xlb_http_req *req,
                         struct xlb_http_resp *resp, const char *name, const char *action)
{
    bool purge = !strcmp(action, "purge");
    const struct xlb_cfg_service *c = NULL;
    const char *slash = strchr(name, '/'), *url = NULL;
    json_t *body = NULL;
    uint64_t gen = 0;
    char err[512];
    int i;

    if (!purge && strcmp(action, "flush")) {
        reply_error(resp, 404, "unknown cache command %s: use flush or purge", action);
        return;
    }
    if (slash) {
        reply_error(resp, 404, "%s is a sub-service pool: the cache is per service; use "
                    "%.*s", name, (int)(slash - name), name);
        return;
    }
    for (i = 0; i < a->cfg->n_services && !c; i++)
        if (!strcmp(a->cfg->services[i].name, name))
            c = &a->cfg->services[i];
    i--;
    if (!c) {
        reply_error(resp, 404, "no layer-7 service named %s (see 'xlbctl list')", name);
        return;
    }
    if (c->layer != 7) {
        reply_error(resp, 409, "service %s is a layer-4 service and has no cache: only "
                    "layer-7 services (layer: 7 in services[%d]) cache responses", name, i);
        return;
    }
    if (!c->cache.enabled) {
        reply_error(resp, 409, "service %s has no cache: set cache.enabled: true in "
                    "services[%d] of %s and reload", name, i, a->cfg_path);
        return;
    }
    if (purge) {
        json_error_t je;
        json_t *u;
        char why[400];

        body = json_loadb(req->body ? req->body : "", req->body_len, 0, &je);
        u = body ? json_object_get(body, "url") : NULL;
        if (!u || !json_is_string(u)) {
            json_decref(body);
            reply_error(resp, 400, "the body must be {\"url\": \"URL\"}: the URL to purge, "
                        "\"/path?query\" (under every host) or \"http://HOST/path?query\"");
            return;
        }
        url = json_string_value(u);
        if (strlen(url) != json_string_length(u)) {
            json_decref(body);
            reply_error(resp, 400, "the URL must not contain NUL characters");
            return;
        }
        if (!purge_url_ok(url, json_string_length(u), why, sizeof(why))) {
            json_decref(body);
            reply_error(resp, 400, "%s", why);
            return;
        }
    }
    if (agent_cache_command(a, c, url, &gen, err, sizeof(err))) {
        json_decref(body);
        agent_log(LOG_ERR_, "cache %s of service %s failed: %s", action, name, err);
        reply_error(resp, 500, "%s", err);
        return;
    }
    if (purge)
        agent_log(LOG_INFO_, "cache purge of service %s, URL %s (gen %llu): xlb-proxy applies "
                  "it at its next state poll", name, url, (unsigned long long)gen);
    else
        agent_log(LOG_INFO_, "cache flush of service %s (gen %llu): xlb-proxy applies it at "
                  "its next state poll", name, (unsigned long long)gen);
    reply(resp, 200, json_pack("{s:b,s:s,s:s,s:o,s:I}", "ok", 1, "service", c->name,
                               "command", action, "url", url ? json_string(url) : json_null(),
                               "gen", (json_int_t)gen));
    json_decref(body);
}

void agent_api_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg)
{
    struct agent *a = arg;
    char seg[6][128];
    bool get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    int n;

    if (agent_status_handler(req, resp))
        return;
    if (strncmp(req->path, "/api/v1/", 8) && strcmp(req->path, "/api/v1")) {
        reply_error(resp, 404, "not found: the API is under /api/v1/");
        return;
    }
    if (!authorized(a, req)) {
        snprintf(resp->extra_headers, sizeof(resp->extra_headers),
                 "WWW-Authenticate: Bearer realm=\"xlb\"\r\n");
        reply_error(resp, 401, "a valid 'Authorization: Bearer TOKEN' header is required; the "
                    "token is in node.api.token_file (%s)", a->cfg->node.api_token_file);
        return;
    }
    n = split(req->path + 7, seg, 6);
    if (n < 1) {
        reply_error(resp, 404, "not found");
        return;
    }
    if (!strcmp(seg[0], "reload") && n == 1) {
        char err[1024];

        if (!post) {
            reply_error(resp, 405, "use POST to reload");
            return;
        }
        if (agent_reload(a, err, sizeof(err))) {
            reply_error(resp, 422, "reload rejected, the running config stays in force: %s",
                        err);
            return;
        }
        int l7 = 0;

        for (int i = 0; i < a->n_services; i++)
            l7 += a->services[i]->l7;
        reply(resp, 200, json_pack("{s:b,s:i,s:i}", "ok", 1, "services", a->n_services - l7,
                                   "l7_pools", l7));
        return;
    }
    if (!strcmp(seg[0], "config") && n == 1 && get) {
        reply(resp, 200, json_pack("{s:s,s:s%,s:{s:b,s:f,s:s,s:I,s:I}}", "path", a->cfg_path,
                                   "yaml", a->cfg_text ? a->cfg_text : "", a->cfg_len,
                                   "last_reload", "ok", a->last_reload_ok, "time",
                                   a->last_reload_time, "error", a->last_reload_error,
                                   "succeeded", (json_int_t)a->reloads_ok, "failed",
                                   (json_int_t)a->reloads_failed));
        return;
    }
    if (!strcmp(seg[0], "services")) {
        struct agent_service *s = NULL;

        if (n == 1 && get) {
            json_t *list = json_array();

            for (int i = 0; i < a->n_services; i++)
                json_array_append_new(list, service_json(a, a->services[i]));
            reply(resp, 200, json_pack("{s:o}", "services", list));
            return;
        }
        /* "SERVICE/SUB" may come as two segments: join them when the
         * rest of the path only makes sense that way. */
        if ((n == 3 || n == 6) && strlen(seg[1]) + strlen(seg[2]) + 2 <= sizeof(seg[1]) &&
            (n == 3 || !strcmp(seg[3], "reals"))) {
            size_t k = strlen(seg[1]);

            seg[1][k] = '/';
            memcpy(seg[1] + k + 1, seg[2], strlen(seg[2]) + 1);
            for (int i = 2; i + 1 < n; i++)
                memcpy(seg[i], seg[i + 1], sizeof(seg[i]));
            n--;
        }
        if ((n == 4 && !strcmp(seg[2], "cache")) || (n == 5 && !strcmp(seg[3], "cache"))) {
            if (!post) {
                reply_error(resp, 405, "use POST for cache/%s", seg[n - 1]);
                return;
            }
            if (n == 5) {       /* SERVICE/SUB sent with a literal slash */
                reply_error(resp, 404, "%s/%s is a sub-service pool: the cache is per "
                            "service; use %s", seg[1], seg[2], seg[1]);
                return;
            }
            cache_action(a, req, resp, seg[1], seg[n - 1]);
            return;
        }
        if (n >= 2 && !(s = agent_find_service(a, seg[1]))) {
            reply_error(resp, 404, "no service or layer-7 pool named %s (see 'xlbctl list')",
                        seg[1]);
            return;
        }
        if (n == 2 && get) {
            reply(resp, 200, service_json(a, s));
            return;
        }
        if (n == 5 && !strcmp(seg[2], "reals")) {
            if (!post) {
                reply_error(resp, 405, "use POST for %s", seg[4]);
                return;
            }
            real_action(a, req, resp, s, seg[3], seg[4]);
            return;
        }
    }
    reply_error(resp, 404, "no such API path %s %s (see docs/api.md)", req->method, req->path);
}
