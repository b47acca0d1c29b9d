// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlbctl's commands that talk to a running xlb-agent over its JSON API:
 * list, drain, halt, enable, weight, cache, reload, config.
 *
 * The agent is found at --api HOST:PORT (or $XLB_API, default
 * 127.0.0.1:9121), or at node.api.listen of --config FILE; the bearer token
 * is read from --token-file (or $XLB_TOKEN_FILE, or node.api.token_file of
 * --config, default /etc/xlb/api.token).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "xlb_addr.h"
#include "xlb_config.h"
#include "xlb_httpd.h"
#include "xlbctl.h"

struct api_args {
    char host[64];
    uint16_t port;
    char token_file[XLB_CFG_PATH_MAX];
    char token[256];
    int json;
    const char *pos[4];
    int npos;
};

static int die(const struct api_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(const struct api_args *a, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (a->json) {
        json_t *j = json_pack("{s:s}", "error", msg);

        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    }
    fprintf(stderr, "xlbctl: %s\n", msg);
    return 1;
}

static int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    char *end;
    long p;

    if (*s == '[') {
        const char *rb = strchr(s, ']');

        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= hostlen)
            return -EINVAL;
        memcpy(host, s + 1, rb - s - 1);
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= hostlen)
            return -EINVAL;
        memcpy(host, s, colon - s);
        host[colon - s] = '\0';
    }
    p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return -EINVAL;
    *port = (uint16_t)p;
    return 0;
}

static int read_token(struct api_args *a)
{
    FILE *f = fopen(a->token_file, "r");
    size_t n;

    if (!f)
        return die(a, "cannot read the API token from %s: %s (give --token-file FILE, the "
                   "agent's node.api.token_file)", a->token_file, strerror(errno));
    n = fread(a->token, 1, sizeof(a->token) - 1, f);
    fclose(f);
    a->token[n] = '\0';
    while (n && (a->token[n - 1] == '\n' || a->token[n - 1] == '\r' || a->token[n - 1] == ' '))
        a->token[--n] = '\0';
    return 0;
}

static int parse(int argc, char **argv, struct api_args *a)
{
    static const struct option opts[] = {
        { "api", required_argument, NULL, 'a' },
        { "token-file", required_argument, NULL, 't' },
        { "config", required_argument, NULL, 'c' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    const char *api = getenv("XLB_API"), *tf = getenv("XLB_TOKEN_FILE"), *cfgp = NULL;
    int c;

    memset(a, 0, sizeof(*a));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 't': tf = optarg; break;
        case 'c': cfgp = optarg; break;
        case 'j': a->json = 1; break;
        default: return -1;
        }
    }
    for (; optind < argc; optind++) {
        if (a->npos == 4)
            return -1;
        a->pos[a->npos++] = argv[optind];
    }
    snprintf(a->host, sizeof(a->host), "127.0.0.1");
    a->port = 9121;
    snprintf(a->token_file, sizeof(a->token_file), "/etc/xlb/api.token");
    if (cfgp) {
        struct xlb_config *cfg = NULL;
        char err[1024];

        if (xlb_config_load(cfgp, &cfg, err, sizeof(err)))
            return die(a, "%s", err);
        if (!cfg->node.api.set) {
            xlb_config_free(cfg);
            return die(a, "%s has no node.api: the agent serves no API", cfgp);
        }
        xlb_addr_str(&cfg->node.api.addr, cfg->node.api.family, a->host, sizeof(a->host));
        a->port = cfg->node.api.port;
        snprintf(a->token_file, sizeof(a->token_file), "%s", cfg->node.api_token_file);
        xlb_config_free(cfg);
    }
    if (api && parse_hostport(api, a->host, sizeof(a->host), &a->port))
        return die(a, "--api takes HOST:PORT or [V6]:PORT, not '%s'", api);
    if (tf)
        snprintf(a->token_file, sizeof(a->token_file), "%s", tf);
    return 0;
}

/* One API call; returns the parsed JSON body (status in *status) or NULL
 * after printing why. */
static json_t *call(struct api_args *a, const char *method, const char *path, const char *body,
                    int *status)
{
    char err[512], *resp = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *j;
    int rc;

    if (read_token(a))
        return NULL;
    rc = xlb_http_request(a->host, a->port, method, path, a->token, body,
                          body ? strlen(body) : 0, 10000, &resp, &len, err, sizeof(err));
    if (rc < 0) {
        die(a, "%s", err);
        return NULL;
    }
    *status = rc;
    j = json_loadb(resp ? resp : "", len, 0, &je);
    if (!j)
        die(a, "the agent at %s:%u answered %d with a body that is not JSON: %.200s", a->host,
            a->port, rc, resp ? resp : "");
    free(resp);
    return j;
}

static int print_or_fail(struct api_args *a, json_t *j, int status, const char *ok_fmt)
{
    int rc = 0;

    if (status >= 300) {
        const char *e = json_string_value(json_object_get(j, "error"));

        rc = die(a, "%s", e ? e : "the agent refused the request");
    } else if (a->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        putchar('\n');
    } else if (ok_fmt) {
        printf("%s\n", ok_fmt);
    }
    json_decref(j);
    return rc;
}

/* A string member, "" when absent: the agent's answer is trusted to have
 * the fields, not to crash us when it does not. */
static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static void list_table(json_t *root)
{
    json_t *services = json_object_get(root, "services"), *s, *r;
    size_t i, k;

    if (!services) {            /* one service */
        json_t *one = json_array();

        json_array_append(one, root);
        services = one;
        root = NULL;
    }
    printf("%-5s %-28s %-10s %-7s %-8s %s\n", "Prot", "LocalAddress:Ports", "Scheduler",
           "Forward", "Table", "Service");
    printf("  -> %-32s %-6s %6s %6s %10s %10s  %s\n", "RemoteAddress", "State", "Weight",
           "Eff", "ActiveConn", "NewFlows", "Check");
    json_array_foreach(services, i, s) {
        char ports[128] = "", where[192];
        json_t *p;
        size_t pi;
        int used = 0;

        json_array_foreach(json_object_get(s, "ports"), pi, p) {
            if (used < (int)sizeof(ports) - 8)
                used += snprintf(ports + used, sizeof(ports) - used, "%s%lld", pi ? "," : "",
                                 (long long)json_integer_value(p));
        }
        snprintf(where, sizeof(where), "%s:%s", str(s, "address"),
                 ports);
        printf("%-5s %-28s %-10s %-7s %-8s %s\n",
               str(s, "protocol"), where,
               str(s, "scheduler"),
               str(s, "forwarding"),
               str(s, "table"),
               str(s, "name"));
        json_array_foreach(json_object_get(s, "reals"), k, r) {
            json_t *c = json_object_get(r, "counters"), *ck = json_object_get(r, "check");
            char who[96], chk[160];

            snprintf(who, sizeof(who), "%s (%s)", str(r, "address"),
                     str(r, "name"));
            snprintf(chk, sizeof(chk), "%s %s %.1fms", str(ck, "type"),
                     json_is_true(json_object_get(ck, "up")) ? "up" : "down",
                     json_real_value(json_object_get(ck, "latency_ms")));
            printf("  -> %-32s %-6s %6lld %6lld %10lld %10lld  %s\n", who,
                   str(r, "state"),
                   (long long)json_integer_value(json_object_get(r, "weight")),
                   (long long)json_integer_value(json_object_get(r, "effective_weight")),
                   (long long)json_integer_value(json_object_get(c, "active_flows")),
                   (long long)json_integer_value(json_object_get(c, "new_flows")), chk);
        }
    }
    if (!root)
        json_decref(services);
}

static void urlenc(const char *s, char *out, size_t n)
{
    size_t k = 0;

    for (; *s && k + 4 < n; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '.' || *s == '-' || *s == '_')
            out[k++] = *s;
        else
            k += snprintf(out + k, n - k, "%%%02X", (unsigned char)*s);
    }
    out[k] = '\0';
}

bool xlbctl_is_api_command(const char *cmd)
{
    static const char *const cmds[] = { "list", "drain", "halt", "enable", "weight", "cache",
                                        "reload", "config", NULL };

    for (int i = 0; cmds[i]; i++)
        if (!strcmp(cmd, cmds[i]))
            return true;
    return false;
}

int xlbctl_api_main(const char *cmd, int argc, char **argv)
{
    struct api_args a;
    char path[512], s1[160], s2[160], msg[256];
    int status = 0;
    json_t *j;

    int rc = parse(argc, argv, &a);

    if (rc < 0)
        xlbctl_usage_exit("%s: unknown option or too many arguments", cmd);
    if (rc)
        return 1;
    if (!strcmp(cmd, "list")) {
        if (a.npos > 1)
            xlbctl_usage_exit("list takes at most one SERVICE");
        if (a.npos) {
            urlenc(a.pos[0], s1, sizeof(s1));
            snprintf(path, sizeof(path), "/api/v1/services/%s", s1);
        } else {
            snprintf(path, sizeof(path), "/api/v1/services");
        }
        if (!(j = call(&a, "GET", path, NULL, &status)))
            return 1;
        if (status < 300 && !a.json) {
            list_table(j);
            json_decref(j);
            return 0;
        }
        return print_or_fail(&a, j, status, NULL);
    }
    if (!strcmp(cmd, "drain") || !strcmp(cmd, "halt") || !strcmp(cmd, "enable") ||
        !strcmp(cmd, "weight")) {
        bool w = !strcmp(cmd, "weight");
        char body[64];

        if (a.npos != (w ? 3 : 2))
            xlbctl_usage_exit(w ? "weight SERVICE REAL N" : "%s SERVICE REAL", cmd);
        if (w) {
            char *end;
            long v = strtol(a.pos[2], &end, 10);

            if (*end || end == a.pos[2] || v < 0 || v > 65535)
                xlbctl_usage_exit("weight must be a number from 0 to 65535, not '%s'", a.pos[2]);
            snprintf(body, sizeof(body), "{\"weight\": %ld}", v);
        }
        urlenc(a.pos[0], s1, sizeof(s1));
        urlenc(a.pos[1], s2, sizeof(s2));
        snprintf(path, sizeof(path), "/api/v1/services/%s/reals/%s/%s", s1, s2, cmd);
        if (!(j = call(&a, "POST", path, w ? body : "", &status)))
            return 1;
        snprintf(msg, sizeof(msg), "service %s real %s: state %s, weight %lld", a.pos[0],
                 a.pos[1], status < 300 ? str(j, "state") : "",
                 (long long)json_integer_value(json_object_get(j, "weight")));
        return print_or_fail(&a, j, status, msg);
    }
    if (!strcmp(cmd, "cache")) {
        bool purge = a.npos && !strcmp(a.pos[0], "purge");
        char *body = NULL;

        if (!a.npos || (!purge && strcmp(a.pos[0], "flush")))
            xlbctl_usage_exit("cache flush SERVICE | cache purge SERVICE URL");
        if (a.npos != (purge ? 3 : 2))
            xlbctl_usage_exit(purge ? "cache purge SERVICE URL" : "cache flush SERVICE");
        if (purge) {
            json_t *b = json_pack("{s:s}", "url", a.pos[2]);

            body = b ? json_dumps(b, JSON_COMPACT) : NULL;
            json_decref(b);
            if (!body)
                return die(&a, "the URL is not valid UTF-8: percent-encode it");
        }
        urlenc(a.pos[1], s1, sizeof(s1));
        snprintf(path, sizeof(path), "/api/v1/services/%s/cache/%s", s1, a.pos[0]);
        j = call(&a, "POST", path, purge ? body : "", &status);
        free(body);
        if (!j)
            return 1;
        if (purge)
            snprintf(msg, sizeof(msg), "service %s: cache purge of %.160s sent (gen %lld)",
                     a.pos[1], a.pos[2], (long long)json_integer_value(json_object_get(j, "gen")));
        else
            snprintf(msg, sizeof(msg), "service %s: cache flush sent (gen %lld)", a.pos[1],
                     (long long)json_integer_value(json_object_get(j, "gen")));
        return print_or_fail(&a, j, status, msg);
    }
    if (!strcmp(cmd, "reload")) {
        if (a.npos)
            xlbctl_usage_exit("reload takes no argument");
        if (!(j = call(&a, "POST", "/api/v1/reload", "", &status)))
            return 1;
        snprintf(msg, sizeof(msg), "reloaded: %lld layer-4 services",
                 (long long)json_integer_value(json_object_get(j, "services")));
        return print_or_fail(&a, j, status, msg);
    }
    /* config */
    if (a.npos)
        xlbctl_usage_exit("config takes no argument");
    if (!(j = call(&a, "GET", "/api/v1/config", NULL, &status)))
        return 1;
    if (status < 300 && !a.json) {
        const char *y = json_string_value(json_object_get(j, "yaml"));

        fputs(y ? y : "", stdout);
        json_decref(j);
        return 0;
    }
    return print_or_fail(&a, j, status, NULL);
}
