// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlbctl - the operator's command line for the xlb data plane.
 *
 * Exit status: 0 success, 1 the operation failed (the message says why and
 * how to fix it), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "xlb_addr.h"
#include "xlb_loader.h"
#include "xlbctl.h"

static const char usage_text[] =
"usage: xlbctl COMMAND [OPTIONS]\n"
"\n"
"Data plane:\n"
"  load    --iface IF [--mode native|generic|auto] [--conn-table-size N]\n"
"          [--tunnel-src4 ADDR[/PLEN]] [--tunnel-src6 ADDR[/PLEN]] [--gue-port N]\n"
"  unload  --iface IF [--keep-maps]\n"
"  status  [--json]\n"
"\n"
"Services (low level; the agent normally does this from its config):\n"
"  service add NAME --vip ADDR --port PORT --proto tcp|udp --method ipip|gue|dsr|nat\n"
"              [--ring-size PRIME]\n"
"  service del NAME\n"
"  real add SERVICE ADDR [--weight W] [--name NAME]\n"
"  real del SERVICE ADDR\n"
"\n"
"Through a running xlb-agent (its JSON API):\n"
"  list    [SERVICE]           services and reals: state, weights, flows, checks\n"
"  drain   SERVICE REAL        no new flows; established flows continue\n"
"  halt    SERVICE REAL        disabled (with drop_on_failure its flows move)\n"
"  enable  SERVICE REAL        back to what the health checks decide\n"
"  weight  SERVICE REAL N      set the weight (0..65535) until the config changes it\n"
"  cache flush SERVICE         xlb-proxy drops every cached response of SERVICE\n"
"  cache purge SERVICE URL     ... of URL only (\"/path?query\" under every host, or\n"
"                              \"http[s]://HOST/path?query\"), every variant of it\n"
"  reload                      read the config file again (rejected if invalid)\n"
"  config                      print the config in force\n"
"  These take --api HOST:PORT (default 127.0.0.1:9121, or $XLB_API),\n"
"  --token-file FILE (default /etc/xlb/api.token, or $XLB_TOKEN_FILE), or\n"
"  --config FILE to take both from the agent's config.  REAL is a name or address.\n"
"\n"
"Real-server side:\n"
"  decap attach --iface IF --addr ADDR [--addr ADDR ...] [--gue-port N] [--mode M]\n"
"  decap detach --iface IF\n"
"\n"
"Every command takes --bpffs DIR (default " XLB_BPFFS_DEFAULT ").\n"
"Tunnel sources: the outer source address of encapsulated packets; with /PLEN\n"
"the bits below PLEN vary per flow (at most 16 for IPv4, 32 for IPv6) so that\n"
"real servers spread flows over their receive queues.\n";

static void usage_exit(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_exit(const char *fmt, ...)
{
    va_list ap;

    if (fmt) {
        fputs("xlbctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\n\n", stderr);
    }
    fputs(usage_text, stderr);
    exit(2);
}

void xlbctl_usage_exit(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    usage_exit("%s", msg);
}

static int g_json;              /* --json: results and errors as JSON on stdout */

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    putchar('\n');
    json_decref(j);
}

static int fail(const struct xlb_err *e)
{
    if (g_json)
        print_json(json_pack("{s:s}", "error", e->msg));
    fprintf(stderr, "xlbctl: %s\n", e->msg);
    return 1;
}

/* The success line of a command that changes something. */
static int done(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int done(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (g_json)
        print_json(json_pack("{s:b,s:s}", "ok", 1, "message", msg));
    else
        printf("%s\n", msg);
    return 0;
}

static long parse_num(const char *what, const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
        usage_exit("%s must be a number from %ld to %ld, not '%s'", what, min, max, s);
    return v;
}

enum {
    OPT_IFACE = 1, OPT_MODE, OPT_BPFFS, OPT_CONN, OPT_SRC4, OPT_SRC6, OPT_GUE, OPT_JSON,
    OPT_VIP, OPT_PORT, OPT_PROTO, OPT_METHOD, OPT_RING, OPT_WEIGHT, OPT_NAME, OPT_ADDR,
    OPT_KEEP,
};

static const struct option long_opts[] = {
    { "iface", required_argument, NULL, OPT_IFACE },
    { "mode", required_argument, NULL, OPT_MODE },
    { "bpffs", required_argument, NULL, OPT_BPFFS },
    { "conn-table-size", required_argument, NULL, OPT_CONN },
    { "tunnel-src4", required_argument, NULL, OPT_SRC4 },
    { "tunnel-src6", required_argument, NULL, OPT_SRC6 },
    { "gue-port", required_argument, NULL, OPT_GUE },
    { "json", no_argument, NULL, OPT_JSON },
    { "vip", required_argument, NULL, OPT_VIP },
    { "port", required_argument, NULL, OPT_PORT },
    { "proto", required_argument, NULL, OPT_PROTO },
    { "method", required_argument, NULL, OPT_METHOD },
    { "ring-size", required_argument, NULL, OPT_RING },
    { "weight", required_argument, NULL, OPT_WEIGHT },
    { "name", required_argument, NULL, OPT_NAME },
    { "addr", required_argument, NULL, OPT_ADDR },
    { "keep-maps", no_argument, NULL, OPT_KEEP },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Everything any command may take; each command checks what it needs. */
struct args {
    const char *iface, *bpffs, *src4, *src6, *vip, *proto, *method, *name;
    const char *pos[3];
    int npos;
    enum xlb_mode mode;
    long conn, gue, port, ring, weight;
    int json, keep;
    const char *addrs[XLB_MAX_DECAP_ADDRS];
    int naddrs;
    unsigned seen;              /* bit per OPT_* given */
};

static void parse_args(int argc, char **argv, struct args *a)
{
    int c;

    memset(a, 0, sizeof(*a));
    a->port = -1;
    a->weight = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c > 0 && c < 32)
            a->seen |= 1u << c;
        switch (c) {
        case OPT_IFACE: a->iface = optarg; break;
        case OPT_MODE:
            if (xlb_parse_mode(optarg, &a->mode))
                usage_exit("--mode must be native, generic or auto, not '%s'", optarg);
            break;
        case OPT_BPFFS: a->bpffs = optarg; break;
        case OPT_CONN: a->conn = parse_num("--conn-table-size", optarg, 1024, 100000000); break;
        case OPT_SRC4: a->src4 = optarg; break;
        case OPT_SRC6: a->src6 = optarg; break;
        case OPT_GUE: a->gue = parse_num("--gue-port", optarg, 1, 65535); break;
        case OPT_JSON: a->json = g_json = 1; break;
        case OPT_VIP: a->vip = optarg; break;
        case OPT_PORT: a->port = parse_num("--port", optarg, 0, 65535); break;
        case OPT_PROTO: a->proto = optarg; break;
        case OPT_METHOD: a->method = optarg; break;
        case OPT_RING: a->ring = parse_num("--ring-size", optarg, 2, XLB_RING_MAX); break;
        case OPT_WEIGHT: a->weight = parse_num("--weight", optarg, 0, 65535); break;
        case OPT_NAME: a->name = optarg; break;
        case OPT_ADDR:
            if (a->naddrs == XLB_MAX_DECAP_ADDRS)
                usage_exit("at most %d --addr", XLB_MAX_DECAP_ADDRS);
            a->addrs[a->naddrs++] = optarg;
            break;
        case OPT_KEEP: a->keep = 1; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        default: usage_exit(NULL);
        }
    }
    for (; optind < argc; optind++) {
        if (a->npos == 3)
            usage_exit("unexpected argument '%s'", argv[optind]);
        a->pos[a->npos++] = argv[optind];
    }
}

static void only(const struct args *a, const char *cmd, unsigned allowed)
{
    unsigned extra = a->seen & ~(allowed | 1u << OPT_BPFFS | 1u << OPT_JSON);

    for (int i = 0; extra && long_opts[i].name; i++)
        if (extra & (1u << long_opts[i].val))
            usage_exit("%s does not take --%s", cmd, long_opts[i].name);
}

#define O(x) (1u << OPT_##x)

static void parse_src(const char *opt, const char *s, uint8_t want, struct xlb_addr *a,
                      uint8_t *plen)
{
    uint8_t fam;

    if (xlb_addr_parse(s, a, &fam, plen) || fam != want)
        usage_exit("%s takes an IPv%d address with an optional /prefix, not '%s'", opt, want,
                   s);
}

static int cmd_load(struct args *a)
{
    struct xlb_load_opts o = { .bpffs = a->bpffs, .conn_table_size = a->conn,
                               .gue_port = a->gue };
    struct xlb_dp *dp;
    struct xlb_err e;
    int err;

    only(a, "load", O(IFACE) | O(MODE) | O(CONN) | O(SRC4) | O(SRC6) | O(GUE));
    if (!a->iface)
        usage_exit("load needs --iface IF");
    if (a->src4)
        parse_src("--tunnel-src4", a->src4, XLB_FAMILY_V4, &o.tunnel_src4, &o.tunnel_src4_plen);
    if (a->src6)
        parse_src("--tunnel-src6", a->src6, XLB_FAMILY_V6, &o.tunnel_src6, &o.tunnel_src6_plen);
    if (a->src4 && o.tunnel_src4_plen < 16)
        usage_exit("--tunnel-src4: at most 16 bits may vary (prefix /16 or longer)");
    if (a->src6 && o.tunnel_src6_plen < 96)
        usage_exit("--tunnel-src6: at most 32 bits may vary (prefix /96 or longer)");
    err = xlb_dp_open(&o, &dp, &e);
    if (err)
        return fail(&e);
    err = xlb_dp_attach(dp, a->iface, a->mode, &e);
    xlb_dp_close(dp);
    if (err)
        return fail(&e);
    return done("xlb attached to %s; maps pinned in %s", a->iface,
                a->bpffs ? a->bpffs : XLB_BPFFS_DEFAULT);
}

static int cmd_unload(struct args *a)
{
    struct xlb_err e;

    only(a, "unload", O(IFACE) | O(KEEP));
    if (!a->iface)
        usage_exit("unload needs --iface IF");
    if (xlb_detach(a->bpffs, a->iface, !a->keep, &e))
        return fail(&e);
    return done("xlb detached from %s", a->iface);
}

/* Open the pinned maps.  Commands that change them hold an exclusive lock
 * on the pin directory until exit, so that two writers never pick the same
 * free slot. */
static int open_maps(struct args *a, struct xlb_maps *m, bool write)
{
    const char *dir = a->bpffs ? a->bpffs : XLB_BPFFS_DEFAULT;
    struct xlb_err e;
    int fd;

    if (xlb_maps_open_pinned(a->bpffs, m, &e))
        return fail(&e);
    if (!write)
        return 0;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        fprintf(stderr, "xlbctl: cannot lock %s: %s\n", dir, strerror(errno));
        xlb_maps_close(m);
        return 1;
    }
    return 0;                   /* the lock goes with the process */
}

static int cmd_service(struct args *a)
{
    struct xlb_maps m;
    struct xlb_err e;
    int rc = 0;

    if (a->npos < 2)
        usage_exit("service add|del NAME");
    if (!strcmp(a->pos[0], "add")) {
        struct xlb_service_spec sp = { .name = a->pos[1], .ring_size = a->ring };
        int proto;

        only(a, "service add", O(VIP) | O(PORT) | O(PROTO) | O(METHOD) | O(RING));
        if (!a->vip || a->port < 0 || !a->proto || !a->method)
            usage_exit("service add needs --vip, --port, --proto and --method");
        if (xlb_addr_parse(a->vip, &sp.vip, &sp.family, NULL))
            usage_exit("--vip takes an IPv4 or IPv6 address, not '%s'", a->vip);
        proto = xlb_proto_parse(a->proto);
        if (proto < 0)
            usage_exit("--proto must be tcp or udp, not '%s'", a->proto);
        sp.proto = proto;
        sp.port = a->port;
        if (!strcmp(a->method, "ipip"))
            sp.method = XLB_FWD_IPIP;
        else if (!strcmp(a->method, "gue"))
            sp.method = XLB_FWD_GUE;
        else if (!strcmp(a->method, "dsr"))
            sp.method = XLB_FWD_DSR;
        else if (!strcmp(a->method, "nat"))
            sp.method = XLB_FWD_NAT;
        else
            usage_exit("--method must be ipip, gue, dsr or nat, not '%s'", a->method);
        if (open_maps(a, &m, true))
            return 1;
        if (xlb_service_add(&m, &sp, NULL, &e))
            rc = fail(&e);
        else
            done("service %s added", sp.name);
    } else if (!strcmp(a->pos[0], "del")) {
        only(a, "service del", 0);
        if (open_maps(a, &m, true))
            return 1;
        if (xlb_service_del(&m, a->pos[1], &e))
            rc = fail(&e);
        else
            done("service %s removed", a->pos[1]);
    } else {
        usage_exit("unknown service command '%s'", a->pos[0]);
    }
    xlb_maps_close(&m);
    return rc;
}

static int cmd_real(struct args *a)
{
    struct xlb_addr addr;
    struct xlb_maps m;
    struct xlb_err e;
    uint32_t vs_id;
    uint8_t fam;
    int rc = 0, add;

    if (a->npos < 3)
        usage_exit("real add|del SERVICE ADDR");
    add = !strcmp(a->pos[0], "add");
    if (!add && strcmp(a->pos[0], "del"))
        usage_exit("unknown real command '%s'", a->pos[0]);
    only(a, add ? "real add" : "real del", add ? O(WEIGHT) | O(NAME) : 0);
    if (xlb_addr_parse(a->pos[2], &addr, &fam, NULL))
        usage_exit("'%s' is not an IPv4 or IPv6 address", a->pos[2]);
    if (open_maps(a, &m, true))
        return 1;
    if (xlb_service_find(&m, a->pos[1], &vs_id, NULL)) {
        xlb_errf(&e, ENOENT, "no service named %s (see 'xlbctl status')", a->pos[1]);
        rc = fail(&e);
    } else if (add ? xlb_real_add(&m, vs_id, fam, &addr, a->weight, a->name, NULL, &e)
                   : xlb_real_del(&m, vs_id, fam, &addr, &e)) {
        rc = fail(&e);
    } else if (xlb_service_rebuild(&m, vs_id, &e)) {
        rc = fail(&e);
    } else {
        done("real %s %s service %s", a->pos[2], add ? "added to" : "removed from", a->pos[1]);
    }
    xlb_maps_close(&m);
    return rc;
}

static const char *method_name(uint8_t m)
{
    return m == XLB_FWD_IPIP ? "ipip" : m == XLB_FWD_GUE ? "gue" : m == XLB_FWD_DSR ? "dsr" :
           m == XLB_FWD_NAT ? "nat" : "?";
}

/* How new flows index the service's table (XLB_VS_F_*). */
static const char *table_kind(uint32_t flags)
{
    return flags & XLB_VS_F_SEQ ? "seq" : flags & XLB_VS_F_SRC_HASH ? "src_hash" : "hash";
}

/* The state markers of a real (XLB_REAL_F_*), e.g. ["drain"]. */
static json_t *real_flags_json(uint32_t flags)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        { XLB_REAL_F_DRAIN, "drain" }, { XLB_REAL_F_HALT, "halt" },
        { XLB_REAL_F_DOWN, "down" }, { XLB_REAL_F_RESCHED, "resched" },
    };
    json_t *a = json_array();

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (flags & names[i].bit)
            json_array_append_new(a, json_string(names[i].name));
    return a;
}

static json_t *counters_json(json_t *o, const struct xlb_counters *c)
{
    json_object_set_new(o, "packets", json_integer(c->packets));
    json_object_set_new(o, "bytes", json_integer(c->bytes));
    json_object_set_new(o, "new_flows", json_integer(c->new_flows));
    return o;
}

/* Build the whole status as JSON; the table output is rendered from it. */
static json_t *status_json(const struct xlb_maps *m)
{
    json_t *root = json_object(), *ifs = json_array(), *svcs = json_array(),
           *reasons = json_object();
    struct xlb_iface ilist[64];
    char buf[XLB_ADDR_STRLEN];
    int n = xlb_attached_ifaces(ilist, 64);

    for (int i = 0; i < n && i < 64; i++)
        json_array_append_new(ifs, json_pack("{s:s, s:s}", "name", ilist[i].name,
                                             "mode", ilist[i].mode));
    for (uint32_t id = 0; id < XLB_MAX_SERVICES; id++) {
        struct xlb_service s;
        struct xlb_counters c;
        json_t *so, *reals = json_array();

        if (bpf_map_lookup_elem(m->services, &id, &s) || !(s.flags & XLB_VS_F_ACTIVE)) {
            json_decref(reals);
            continue;
        }
        xlb_counters_read(m->vs_stats, id, &c);
        so = json_pack("{s:s, s:i, s:s, s:i, s:s, s:s, s:i}", "name", s.name, "id", (int)id,
                       "vip", xlb_addr_str(&s.vip, s.family, buf, sizeof(buf)),
                       "port", (int)ntohs(s.port_be), "proto", xlb_proto_str(s.proto),
                       "method", method_name(s.method), "ring_size", (int)s.ring_size);
        json_object_set_new(so, "table", json_string(table_kind(s.flags)));
        counters_json(so, &c);
        for (uint32_t rid = 0; rid < XLB_MAX_REALS; rid++) {
            struct xlb_real r;
            json_t *ro;

            if (bpf_map_lookup_elem(m->reals, &rid, &r) || !(r.flags & XLB_REAL_F_ACTIVE) ||
                r.vs_id != id)
                continue;
            xlb_counters_read(m->real_stats, rid, &c);
            ro = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o}", "name", r.name,
                           "address", xlb_addr_str(&r.addr, r.family, buf, sizeof(buf)),
                           "port", (int)ntohs(r.port_be), "id", (int)rid,
                           "weight", (int)r.weight, "flags", real_flags_json(r.flags));
            json_array_append_new(reals, counters_json(ro, &c));
        }
        json_object_set_new(so, "reals", reals);
        json_array_append_new(svcs, so);
    }
    for (uint32_t r = 0; r < XLB_R_MAX; r++) {
        struct xlb_reason_counter rc;

        if (xlb_reason_read(m->reasons, r, &rc) == 0)
            json_object_set_new(reasons, xlb_reason_name(r), json_integer(rc.packets));
    }
    json_object_set_new(root, "interfaces", ifs);
    json_object_set_new(root, "services", svcs);
    json_object_set_new(root, "reasons", reasons);
    return root;
}

static void status_table(json_t *st)
{
    json_t *v, *s, *r;
    const char *k;
    size_t i, j;

    printf("Interfaces:");
    json_array_foreach(json_object_get(st, "interfaces"), i, v)
        printf(" %s (%s)", json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "mode")));
    if (json_array_size(json_object_get(st, "interfaces")) == 0)
        printf(" none");
    printf("\n\n%-4s %-40s %-6s %6s %12s %14s %10s  %s\n", "Prot",
           "LocalAddress:Port / RemoteAddress", "Method", "Weight", "Packets", "Bytes",
           "NewFlows", "Name");
    json_array_foreach(json_object_get(st, "services"), i, s) {
        char ap[80];
        const char *vip = json_string_value(json_object_get(s, "vip"));

        snprintf(ap, sizeof(ap), strchr(vip, ':') ? "[%s]:%lld" : "%s:%lld", vip,
                 json_integer_value(json_object_get(s, "port")));
        printf("%-4s %-40s %-6s %6s %12lld %14lld %10lld  %s\n",
               json_string_value(json_object_get(s, "proto")), ap,
               json_string_value(json_object_get(s, "method")), "",
               json_integer_value(json_object_get(s, "packets")),
               json_integer_value(json_object_get(s, "bytes")),
               json_integer_value(json_object_get(s, "new_flows")),
               json_string_value(json_object_get(s, "name")));
        json_array_foreach(json_object_get(s, "reals"), j, r) {
            const char *ra = json_string_value(json_object_get(r, "address"));
            long long rport = json_integer_value(json_object_get(r, "port"));
            char rap[80];
            json_t *f;
            size_t k;

            /* A nat real's port; the others take the client's. */
            if (rport)
                snprintf(rap, sizeof(rap), strchr(ra, ':') ? "[%s]:%lld" : "%s:%lld", ra,
                         rport);
            else
                snprintf(rap, sizeof(rap), "%s", ra);
            printf("  -> %-40s %-4s %6lld %12lld %14lld %10lld  %s", rap, "",
                   json_integer_value(json_object_get(r, "weight")),
                   json_integer_value(json_object_get(r, "packets")),
                   json_integer_value(json_object_get(r, "bytes")),
                   json_integer_value(json_object_get(r, "new_flows")),
                   json_string_value(json_object_get(r, "name")));
            json_array_foreach(json_object_get(r, "flags"), k, f)
                printf(" [%s]", json_string_value(f));
            putchar('\n');
        }
    }
    printf("\nPackets by verdict:\n");
    i = 0;
    json_object_foreach(json_object_get(st, "reasons"), k, v)
        if (json_integer_value(v) && ++i)
            printf("  %-18s %lld\n", k, json_integer_value(v));
    if (!i)
        printf("  none yet\n");
}

static int cmd_status(struct args *a)
{
    struct xlb_maps m;
    json_t *st;

    only(a, "status", O(JSON));
    if (open_maps(a, &m, false))
        return 1;
    st = status_json(&m);
    xlb_maps_close(&m);
    if (a->json) {
        json_dumpf(st, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        status_table(st);
    }
    json_decref(st);
    return 0;
}

static int cmd_decap(struct args *a)
{
    struct xlb_err e;

    if (a->npos < 1)
        usage_exit("decap attach|detach --iface IF");
    if (!a->iface)
        usage_exit("decap %s needs --iface IF", a->pos[0]);
    if (!strcmp(a->pos[0], "attach")) {
        struct xlb_decap_key keys[XLB_MAX_DECAP_ADDRS] = {};
        struct xlb_decap_opts o = { .bpffs = a->bpffs, .gue_port = a->gue,
                                    .n_addrs = a->naddrs, .addrs = keys };
        struct xlb_decap *d = NULL;
        int err;

        only(a, "decap attach", O(IFACE) | O(ADDR) | O(GUE) | O(MODE));
        if (!a->naddrs)
            usage_exit("decap attach needs at least one --addr (this host's tunnel endpoint)");
        for (int i = 0; i < a->naddrs; i++)
            if (xlb_addr_parse(a->addrs[i], &keys[i].addr, &keys[i].family, NULL))
                usage_exit("--addr takes an IPv4 or IPv6 address, not '%s'", a->addrs[i]);
        err = xlb_decap_open(&o, &d, &e);
        if (!err)
            err = xlb_decap_attach(d, a->iface, a->mode, &e);
        xlb_decap_close(d);
        if (err)
            return fail(&e);
        return done("decap attached to %s", a->iface);
    }
    if (!strcmp(a->pos[0], "detach")) {
        only(a, "decap detach", O(IFACE));
        if (xlb_decap_detach(a->bpffs, a->iface, &e))
            return fail(&e);
        return done("decap detached from %s", a->iface);
    }
    usage_exit("unknown decap command '%s'", a->pos[0]);
}

int main(int argc, char **argv)
{
    struct args a;
    const char *cmd;

    if (argc < 2)
        usage_exit(NULL);
    cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (xlbctl_is_api_command(cmd))
        return xlbctl_api_main(cmd, argc - 1, argv + 1);
    parse_args(argc - 1, argv + 1, &a);
    if (!strcmp(cmd, "load"))
        return cmd_load(&a);
    if (!strcmp(cmd, "unload"))
        return cmd_unload(&a);
    if (!strcmp(cmd, "status"))
        return cmd_status(&a);
    if (!strcmp(cmd, "service"))
        return cmd_service(&a);
    if (!strcmp(cmd, "real"))
        return cmd_real(&a);
    if (!strcmp(cmd, "decap"))
        return cmd_decap(&a);
    usage_exit("unknown command '%s'", cmd);
}
