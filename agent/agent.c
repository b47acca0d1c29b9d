// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent.c - from config and health to data-plane state.
 *
 * Convergence.  The pinned maps are the state of record for forwarding; the
 * agent's own records are rebuilt from the config and matched against them
 * by name (services) and by family + address (reals).  A matching entry is
 * adopted as it is - its slot, its generation and therefore its established
 * flows stay - and only what differs is written: weights, flags, the VIP
 * entries of the service's ports, its selection table.  Entries the config
 * no longer has are removed after a table without them is live.  The same
 * routine serves the first start, a restart over running maps and every
 * reload, so a reload that leaves a service unchanged leaves its flows
 * untouched.
 *
 * State of a real.  Usable = no operator drain/halt, its service's check up,
 * its address's ICMP check (if any service checks it by ICMP) up, and below
 * max_conns at the last count.  Only usable reals get a share of the
 * selection table; drained ones keep their flows; halted or down ones lose
 * them too when the service has drop_on_failure (XLB_REAL_F_RESCHED).  The
 * state markers are written into xlb_reals.flags so that an agent started
 * over running maps adopts them.
 *
 * Layer 7.  xlb-proxy balances layer-7 services and checks nothing: each
 * pool of a layer-7 service (its own reals, each sub-service's reals) is a
 * record like a layer-4 service, with the same checks, rise/fall, shared
 * ICMP checks and operator commands, but without a data-plane slot.  Where
 * a layer-4 decision writes flags and a table, a layer-7 one writes the
 * real's entry of the pinned xlb_l7_reals hash (state, weight in force,
 * time of the last change, generation), in the same loop iteration.  The
 * map is created and pinned at start when missing and reused after a
 * restart; a converge writes every entry and deletes those of reals the
 * config no longer has.  An agent started over an existing map adopts what
 * its entries say: a real "down" stays down until its check passes, a
 * "drain", or a "halt" of a real the config enables, came from the operator.
 * Next to it the agent keeps xlb_l7_cmds, created and reused the same way:
 * the operator's cache flush and purge commands, one entry per (service,
 * URL) whose generation grows with each repetition (agent_cache_command).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "agent.h"
#include "xlb_addr.h"

#define ACTIVE_IDLE_TCP_NS (900ull * 1000000000ull)
#define ACTIVE_IDLE_UDP_NS (30ull * 1000000000ull)
#define WRT_INTERVAL_MS 15000
#define ADAPTIVE_TICK_MS 500

int agent_log_level = LOG_INFO_;

void agent_log(int level, const char *fmt, ...)
{
    static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice",
                                         "info", "debug" };
    va_list ap;

    if (level > agent_log_level)
        return;
    fprintf(stderr, "<%d>xlb-agent: %s: ", level, names[level & 7]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int errs(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errs(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -code;
}

/* ---- states ---- */

static bool real_down(const struct agent_real *r)
{
    return !r->check_up || (r->icmp && !r->icmp->up);
}

enum agent_state agent_real_state(const struct agent_real *r)
{
    if (r->admin == ADMIN_HALT)
        return RS_HALT;
    if (real_down(r))
        return RS_DOWN;
    if (r->admin == ADMIN_DRAIN)
        return RS_DRAIN;
    return RS_UP;
}

const char *agent_state_name(enum agent_state s)
{
    static const char *const n[] = { "up", "down", "drain", "halt" };

    return s <= RS_HALT ? n[s] : "?";
}

bool agent_real_usable(const struct agent_real *r)
{
    if (agent_real_state(r) != RS_UP || r->weight == 0)
        return false;
    return !r->cfg.max_conns || r->active < r->cfg.max_conns;
}

static uint32_t wanted_flags(const struct agent_real *r)
{
    uint32_t f = XLB_REAL_F_ACTIVE;
    bool down = real_down(r);

    if (r->admin == ADMIN_DRAIN)
        f |= XLB_REAL_F_DRAIN;
    if (r->admin == ADMIN_HALT)
        f |= XLB_REAL_F_HALT;
    if (r->admin != ADMIN_NONE && r->admin_by_operator)
        f |= XLB_REAL_F_OPER;
    if (down)
        f |= XLB_REAL_F_DOWN;
    if (r->svc->cfg->drop_on_failure && (down || r->admin == ADMIN_HALT))
        f |= XLB_REAL_F_RESCHED;
    if (agent_real_state(r) == RS_UP && !agent_real_usable(r))
        f |= XLB_REAL_F_FULL;   /* weight 0 or at max_conns: not even for persistence */
    return f;
}

/* ---- selection tables ---- */

struct real_identity {          /* as the loader's Maglev rebuild identifies reals */
    __u8 family;
    __u8 pad[3];
    struct xlb_addr addr;
};

static int install_table(struct agent_service *s, char *err, size_t errlen)
{
    struct agent *a = s->agent;
    size_t n = s->n_reals, cap;
    struct xlb_sched_in *in = calloc(n ? n : 1, sizeof(*in));
    struct real_identity *ids = calloc(n ? n : 1, sizeof(*ids));
    uint32_t *w = calloc(n ? n : 1, sizeof(*w));
    uint32_t *vals = calloc(n ? n : 1, sizeof(*vals));
    uint32_t *table = NULL, len = 0;
    struct xlb_sched_ctx ctx = { .now_ms = wall_ms(), .expected_new = s->expected_new };
    struct xlb_err e;
    int rc;

    cap = s->cfg->ring_size > XLB_SEQ_MAX_LEN ? s->cfg->ring_size : XLB_SEQ_MAX_LEN;
    table = malloc(cap * sizeof(*table));
    if (!in || !ids || !w || !vals || !table) {
        rc = errs(err, errlen, ENOMEM, "out of memory building the table of %s", s->cfg->name);
        goto out;
    }
    if (!ctx.expected_new)
        ctx.expected_new = 1;
    for (size_t i = 0; i < n; i++) {
        struct agent_real *r = s->reals[i];
        bool usable = agent_real_usable(r), up = agent_real_state(r) == RS_UP;

        /* Slow start begins when a real comes up, not when it merely
         * drops below max_conns again. */
        if (up && !r->was_up)
            r->usable_since_ms = ctx.now_ms;
        r->was_up = up;
        ids[i].family = r->cfg.family;
        ids[i].addr = r->cfg.addr;
        in[i].id = &ids[i];
        in[i].id_len = sizeof(ids[i]);
        in[i].weight = r->weight;
        in[i].usable = usable;
        in[i].active = r->active;
        in[i].load = r->load;
        in[i].rt_ms = r->rt_ms;
        in[i].ramp = xlb_sched_ramp(ctx.now_ms, r->usable_since_ms, s->cfg->slow_start_ms);
        vals[i] = r->real_id;
    }
    rc = s->sched->weights(&ctx, in, n, w);
    if (rc) {
        errs(err, errlen, -rc, "scheduler %s of service %s failed: %s", s->sched->name,
             s->cfg->name, strerror(-rc));
        goto out;
    }
    rc = xlb_sched_build(s->sched->kind, in, w, vals, n, s->cfg->ring_size, XLB_SEQ_MAX_LEN,
                         table, &len);
    if (rc) {
        errs(err, errlen, -rc, "cannot build the table of service %s: %s", s->cfg->name,
             strerror(-rc));
        goto out;
    }
    rc = xlb_sel_install(&a->maps, s->vs_id, table, len, &e);
    if (rc) {
        errs(err, errlen, -rc, "%s", e.msg);
        goto out;
    }
    s->table_len = len;
    s->tables_built++;
    for (size_t i = 0; i < n; i++)
        s->reals[i]->eff_weight = w[i];
out:
    free(in);
    free(ids);
    free(w);
    free(vals);
    free(table);
    return rc;
}

/* Write real r's flags as f (ACTIVE implied) and its weight. */
static int write_flags(struct agent *a, struct agent_real *r, uint32_t f, char *err,
                       size_t errlen)
{
    const uint32_t all = XLB_REAL_F_DRAIN | XLB_REAL_F_HALT | XLB_REAL_F_DOWN |
                         XLB_REAL_F_RESCHED | XLB_REAL_F_OPER | XLB_REAL_F_FULL;
    struct xlb_err e;
    int rc;

    f |= XLB_REAL_F_ACTIVE;
    if (f == r->dp_flags && r->weight == r->dp_weight)
        return 0;
    rc = xlb_real_update(&a->maps, r->real_id, f & all, all & ~f, &r->weight, &e);
    if (rc)
        return errs(err, errlen, -rc, "%s", e.msg);
    r->dp_flags = f;
    r->dp_weight = r->weight;
    return 0;
}

/* ---- layer 7: xlb_l7_reals ---- */

void agent_l7_key(const struct agent_real *r, struct xlb_l7_key *k)
{
    const struct agent_service *s = r->svc;

    memset(k, 0, sizeof(*k));
    strncpy(k->vs, s->cfg->name, sizeof(k->vs));
    if (s->sub)
        strncpy(k->sub, s->sub->name, sizeof(k->sub));
    k->addr = r->cfg.addr;
    k->family = r->cfg.family;
    k->port = r->cfg.port;
}

static uint32_t l7_state(enum agent_state st)
{
    switch (st) {
    case RS_HALT:
        return XLB_L7_HALT;
    case RS_DOWN:
        return XLB_L7_DOWN;
    case RS_DRAIN:
        return XLB_L7_DRAIN;
    default:
        return XLB_L7_UP;
    }
}

/*
 * Write r's entry as r is now.  The time of the last change moves only when
 * the state differs from the one last written (or nothing was written yet);
 * the generation grows with every write.  effective_weight of a layer-7
 * real is what the proxy may give it: its weight when up, else 0.
 */
static int l7_write(struct agent *a, struct agent_real *r, char *err, size_t errlen)
{
    const struct xlb_check *c = r->check ? r->check : r->icmp ? r->icmp->check : NULL;
    struct xlb_l7_key k;
    struct xlb_l7_val v = { 0 };

    if (a->l7_fd < 0)
        return errs(err, errlen, EBADF, "the %s map is not open", XLB_L7_PIN);
    agent_l7_key(r, &k);
    v.state = l7_state(agent_real_state(r));
    v.weight = r->weight;
    if (!r->l7_written || r->l7_state != v.state || !r->state_change_ms)
        r->state_change_ms = wall_ms();
    v.changed_ms = r->state_change_ms;
    if (c && xlb_check_stats(c)->probes) {
        double us = xlb_check_stats(c)->last_latency_ms * 1000.0;

        v.check_us = us < 1 ? 1 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
    v.gen = r->l7_gen + 1;
    if (bpf_map_update_elem(a->l7_fd, &k, &v, BPF_ANY)) {
        int e = errno;

        a->l7_write_errors++;
        return errs(err, errlen, e, "service %s real %s: cannot write its %s entry: %s",
                    r->svc->name, r->cfg.name, XLB_L7_PIN, strerror(e));
    }
    r->l7_written = true;
    r->l7_state = v.state;
    r->l7_gen = v.gen;
    r->eff_weight = agent_real_usable(r) ? r->weight : 0;
    return 0;
}

/* Take what the map says of r (a record without a predecessor): the last
 * generation and change time, and with adopt_state its state (see the top
 * of this file). */
static void l7_adopt(struct agent *a, struct agent_real *r, bool adopt_state)
{
    struct xlb_l7_key k;
    struct xlb_l7_val v;

    agent_l7_key(r, &k);
    if (a->l7_fd < 0 || bpf_map_lookup_elem(a->l7_fd, &k, &v))
        return;
    r->l7_written = true;
    r->l7_state = v.state;
    r->l7_gen = v.gen;
    r->state_change_ms = v.changed_ms;
    if (!adopt_state)
        return;
    if (v.state == XLB_L7_DOWN)
        r->check_up = false;
    else if (r->cfg.enabled && (v.state == XLB_L7_DRAIN || v.state == XLB_L7_HALT)) {
        r->admin = v.state == XLB_L7_DRAIN ? ADMIN_DRAIN : ADMIN_HALT;
        r->admin_by_operator = true;
    }
}

static int l7_key_cmp(const void *x, const void *y)
{
    return memcmp(x, y, sizeof(struct xlb_l7_key));
}

/* Delete the entries of reals that no layer-7 pool of ns has. */
static void l7_prune(struct agent *a, struct agent_service **ns, int n)
{
    struct xlb_l7_key *want = NULL, *gone = NULL, cur, next;
    size_t nw = 0, ng = 0;
    void *prev = NULL;

    if (a->l7_fd < 0)
        return;
    for (int i = 0; i < n; i++)
        if (ns[i]->l7)
            nw += ns[i]->n_reals;
    want = calloc(nw ? nw : 1, sizeof(*want));
    gone = calloc(XLB_MAX_L7_REALS, sizeof(*gone));
    if (!want || !gone) {
        agent_log(LOG_WARN_, "out of memory: stale %s entries stay", XLB_L7_PIN);
        goto out;
    }
    nw = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; ns[i]->l7 && j < ns[i]->n_reals; j++)
            agent_l7_key(ns[i]->reals[j], &want[nw++]);
    qsort(want, nw, sizeof(*want), l7_key_cmp);
    while (ng < XLB_MAX_L7_REALS && bpf_map_get_next_key(a->l7_fd, prev, &next) == 0) {
        if (!bsearch(&next, want, nw, sizeof(*want), l7_key_cmp))
            gone[ng++] = next;
        cur = next;
        prev = &cur;
    }
    for (size_t i = 0; i < ng; i++) {
        char abuf[XLB_ADDR_STRLEN];

        bpf_map_delete_elem(a->l7_fd, &gone[i]);
        agent_log(LOG_INFO_, "layer-7 service %.*s%s%.*s real %s port %u: not in the config: "
                  "its %s entry is removed", XLB_NAME_LEN, gone[i].vs, gone[i].sub[0] ? "/" : "",
                  XLB_NAME_LEN, gone[i].sub,
                  xlb_addr_str(&gone[i].addr, gone[i].family, abuf, sizeof(abuf)),
                  gone[i].port, XLB_L7_PIN);
    }
out:
    free(want);
    free(gone);
}

/*
 * Open the map pinned as bpffs/pin when it has this type and layout, else
 * create and pin a new one (a pin of another layout, e.g. from another
 * version, is replaced with a log line).  Returns an fd, *map_id set, or
 * -errno with err set.
 */
static int pinned_map_open(const char *bpffs, const char *pin, enum bpf_map_type type,
                           const char *type_name, size_t key_size, size_t value_size,
                           uint32_t max_entries, uint32_t *map_id, char *err, size_t errlen)
{
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    char path[XLB_CFG_PATH_MAX + 64];
    LIBBPF_OPTS(bpf_map_create_opts, opts);
    int fd, e;

    snprintf(path, sizeof(path), "%s/%s", bpffs, pin);
    fd = bpf_obj_get(path);
    if (fd >= 0) {
        memset(&info, 0, sizeof(info));
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == type &&
            info.key_size == key_size && info.value_size == value_size &&
            info.max_entries == max_entries) {
            *map_id = info.id;
            return fd;
        }
        agent_log(LOG_WARN_, "%s is not %s of %zu-byte keys and %zu-byte values with %u "
                  "entries (another version?): replacing it", path, type_name, key_size,
                  value_size, max_entries);
        close(fd);
        if (unlink(path) && errno != ENOENT)
            return errs(err, errlen, errno, "cannot remove %s: %s", path, strerror(errno));
    } else if (errno != ENOENT) {
        return errs(err, errlen, errno, "cannot open %s: %s", path, strerror(errno));
    }
    fd = bpf_map_create(type, pin, key_size, value_size, max_entries, &opts);
    if (fd < 0)
        return errs(err, errlen, errno, "cannot create the %s map: %s", pin, strerror(errno));
    if (bpf_obj_pin(fd, path)) {
        e = errno;
        close(fd);
        return errs(err, errlen, e, "cannot pin the %s map at %s: %s", pin, path, strerror(e));
    }
    memset(&info, 0, sizeof(info));
    len = sizeof(info);
    *map_id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
    agent_log(LOG_INFO_, "created %s (map id %u) for xlb-proxy", path, *map_id);
    return fd;
}

int agent_l7_map_open(const char *bpffs, uint32_t *map_id, char *err, size_t errlen)
{
    return pinned_map_open(bpffs, XLB_L7_PIN, BPF_MAP_TYPE_HASH, "a hash",
                           sizeof(struct xlb_l7_key), sizeof(struct xlb_l7_val),
                           XLB_MAX_L7_REALS, map_id, err, errlen);
}

int agent_l7_cmd_map_open(const char *bpffs, uint32_t *map_id, char *err, size_t errlen)
{
    return pinned_map_open(bpffs, XLB_L7_CMD_PIN, BPF_MAP_TYPE_LRU_HASH, "an LRU hash",
                           sizeof(struct xlb_l7_cmd_key), sizeof(struct xlb_l7_cmd_val),
                           XLB_MAX_L7_CMDS, map_id, err, errlen);
}

/*
 * The generation continues from what the map holds, not from a count of
 * the agent's own, so that it keeps growing across agent restarts and the
 * proxy never mistakes a new command for one it has run.  An entry the LRU
 * evicted starts again at 1; the proxy treats a gen it has not seen for a
 * key as new.
 */
int agent_cache_command(struct agent *a, const struct xlb_cfg_service *cfg, const char *url,
                        uint64_t *gen, char *err, size_t errlen)
{
    struct xlb_l7_cmd_key k;
    struct xlb_l7_cmd_val v;
    size_t ul = url ? strlen(url) : 0;

    if (a->l7_cmd_fd < 0)
        return errs(err, errlen, EBADF, "the %s map is not open", XLB_L7_CMD_PIN);
    if (ul >= sizeof(k.url))
        return errs(err, errlen, ENAMETOOLONG, "the URL is longer than %zu bytes",
                    sizeof(k.url) - 1);
    memset(&k, 0, sizeof(k));
    strncpy(k.vs, cfg->name, sizeof(k.vs));
    memcpy(k.url, url ? url : "", ul);
    if (bpf_map_lookup_elem(a->l7_cmd_fd, &k, &v))
        v.gen = 0;
    v.gen++;
    v.time_ms = wall_ms();
    if (bpf_map_update_elem(a->l7_cmd_fd, &k, &v, BPF_ANY)) {
        int e = errno;

        return errs(err, errlen, e, "service %s: cannot write the %s entry: %s", cfg->name,
                    XLB_L7_CMD_PIN, strerror(e));
    }
    *gen = v.gen;
    return 0;
}

/*
 * Order of the writes: markers a real loses (RESCHED above all) go before the
 * table, so that flows the new table places on a recovered real are not
 * rescheduled again; markers it gains go after it, so that flows rescheduled
 * away from a real are rescheduled by a table without it.  A failure leaves
 * the service dirty: the rebalance tick tries again.
 */
int agent_apply_service(struct agent_service *s, char *err, size_t errlen)
{
    struct agent *a = s->agent;
    int rc = 0;

    s->dirty = true;
    if (s->l7) {
        for (int i = 0; i < s->n_reals && !rc; i++)
            rc = l7_write(a, s->reals[i], err, errlen);
        if (!rc)
            s->dirty = false;
        return rc;
    }
    for (int i = 0; i < s->n_reals && !rc; i++)
        rc = write_flags(a, s->reals[i], s->reals[i]->dp_flags & wanted_flags(s->reals[i]),
                         err, errlen);
    if (!rc)
        rc = install_table(s, err, errlen);
    for (int i = 0; i < s->n_reals && !rc; i++)
        rc = write_flags(a, s->reals[i], wanted_flags(s->reals[i]), err, errlen);
    if (!rc)
        s->dirty = false;
    return rc;
}

static void apply_logged(struct agent_service *s, const char *why)
{
    char err[512];

    if (agent_apply_service(s, err, sizeof(err)))
        agent_log(LOG_ERR_, "service %s: %s: %s", s->name, why, err);
}

/* A real's state may have changed: write it, remember when and how long
 * the data plane took to follow. */
static void state_changed(struct agent_real *r, enum agent_state before, const char *why)
{
    double t0 = mono_us();
    enum agent_state now = agent_real_state(r);

    apply_logged(r->svc, why);
    r->last_apply_us = mono_us() - t0;
    if (now != before) {
        if (!r->svc->l7)        /* l7_write() took the time */
            r->state_change_ms = wall_ms();
        agent_log(LOG_INFO_, "service %s real %s: %s -> %s (%s; data plane updated in %.0f us)",
                  r->svc->name, r->cfg.name, agent_state_name(before),
                  agent_state_name(now), why, r->last_apply_us);
    }
}

int agent_set_admin(struct agent_real *r, enum agent_admin admin, char *err, size_t errlen)
{
    enum agent_state before = agent_real_state(r);
    static const char *const what[] = { "enable", "drain", "halt" };
    int rc;

    enum agent_admin was = r->admin;
    bool was_oper = r->admin_by_operator;

    r->admin = admin;
    r->admin_by_operator = true;
    rc = agent_apply_service(r->svc, err, errlen);
    if (rc) {
        r->admin = was;
        r->admin_by_operator = was_oper;
        agent_apply_service(r->svc, NULL, 0);
        return rc;
    }
    if (agent_real_state(r) != before) {
        if (!r->svc->l7)
            r->state_change_ms = wall_ms();
        agent_log(LOG_INFO_, "service %s real %s: %s -> %s (operator: %s)", r->svc->name,
                  r->cfg.name, agent_state_name(before), agent_state_name(agent_real_state(r)),
                  what[admin]);
    }
    return 0;
}

int agent_set_weight(struct agent_real *r, uint32_t weight, char *err, size_t errlen)
{
    uint32_t was = r->weight;
    bool was_set = r->weight_set;
    int rc;

    if (weight > 65535)
        return errs(err, errlen, EINVAL, "weight %u of real %s is out of range: use 0 to 65535",
                    weight, r->cfg.name);
    r->weight = weight;
    r->weight_set = weight != r->cfg.weight;
    rc = agent_apply_service(r->svc, err, errlen);
    if (rc) {
        r->weight = was;
        r->weight_set = was_set;
        agent_apply_service(r->svc, NULL, 0);
        return rc;
    }
    agent_log(LOG_INFO_, "service %s real %s: weight %u (operator)", r->svc->name,
              r->cfg.name, weight);
    return 0;
}

/* ---- checks ---- */

static void real_check_cb(struct xlb_check *c, enum xlb_check_result res, bool changed, void *arg)
{
    struct agent_real *r = arg;
    const struct xlb_check_stats *st = xlb_check_stats(c);
    enum agent_state before = agent_real_state(r);

    xlb_prom_hist_observe(&r->hist, st->last_latency_ms / 1000.0);
    if (res == XLB_CHECK_PASS)
        r->rt_ms = r->rt_ms > 0 ? 0.7 * r->rt_ms + 0.3 * st->last_latency_ms
                                : st->last_latency_ms;
    if (!changed) {
        char err[512];

        /* Layer 7: keep check_us fresh for the proxy. */
        if (r->svc->l7 && l7_write(r->svc->agent, r, err, sizeof(err))) {
            r->svc->dirty = true;
            agent_log(LOG_ERR_, "%s", err);
        }
        return;
    }
    r->check_up = st->up;
    state_changed(r, before, st->up ? "health check passed" : st->last_detail[0] ?
                  st->last_detail : xlb_check_result_name(res));
}

static void icmp_check_cb(struct xlb_check *c, enum xlb_check_result res, bool changed, void *arg)
{
    struct agent_icmp *ic = arg;
    struct agent *a = ic->agent;
    const struct xlb_check_stats *st = xlb_check_stats(c);

    (void)res;
    for (int i = 0; i < a->n_services; i++)
        for (int j = 0; j < a->services[i]->n_reals; j++) {
            struct agent_real *r = a->services[i]->reals[j];

            if (r->icmp == ic && r->svc->hc->type == XLB_HC_ICMP)
                xlb_prom_hist_observe(&r->hist, st->last_latency_ms / 1000.0);
        }
    if (!changed)
        return;
    /* Layer 3: every service with this address as a real follows. */
    for (int i = 0; i < a->n_services; i++) {
        struct agent_service *s = a->services[i];
        enum agent_state before[s->n_reals ? s->n_reals : 1];
        bool touched = false;

        ic->up = !st->up;
        for (int j = 0; j < s->n_reals; j++) {
            before[j] = agent_real_state(s->reals[j]);
            touched |= s->reals[j]->icmp == ic;
        }
        ic->up = st->up;
        if (!touched)
            continue;
        for (int j = 0; j < s->n_reals; j++)
            if (s->reals[j]->icmp == ic)
                state_changed(s->reals[j], before[j], st->up ? "icmp check passed" :
                              "icmp check failed (layer 3: every service)");
    }
}

static uint16_t check_port(const struct agent_service *s, const struct agent_real *r)
{
    if (s->hc->port)
        return s->hc->port;
    if (r->cfg.port)
        return r->cfg.port;
    return s->cfg->n_ports ? s->cfg->ports[0] : 0;
}

static void icmp_start(struct agent *a, struct agent_icmp *ic, const struct xlb_cfg_hc *spec)
{
    int rc = -ENOMEM;

    ic->spec = *spec;
    ic->check = xlb_check_new(a->loop, spec, ic->family, &ic->addr, 0, ic->up, icmp_check_cb, ic);
    if (!ic->check || (rc = xlb_check_start(ic->check, false))) {
        char buf[XLB_ADDR_STRLEN];

        agent_log(LOG_ERR_, "cannot start the icmp check of %s: %s",
                  xlb_addr_str(&ic->addr, ic->family, buf, sizeof(buf)),
                  strerror(ic->check ? -rc : errno));
    }
}

/* The ICMP check of an address, created or restarted when its settings
 * changed.  initially_up: the decision before its first probe. */
static struct agent_icmp *icmp_get(struct agent *a, const struct xlb_cfg_hc *spec, uint8_t family,
                                   const struct xlb_addr *addr, bool initially_up)
{
    struct agent_icmp *ic, **grown;

    for (int i = 0; i < a->n_icmp; i++) {
        ic = a->icmp[i];
        if (ic->family != family || memcmp(&ic->addr, addr, sizeof(*addr)))
            continue;
        if (!ic->used && memcmp(&ic->spec, spec, sizeof(*spec))) {
            xlb_check_free(ic->check);
            icmp_start(a, ic, spec);
        }
        ic->used = true;
        return ic;
    }
    ic = calloc(1, sizeof(*ic));
    grown = realloc(a->icmp, (a->n_icmp + 1) * sizeof(*grown));
    if (!ic || !grown) {
        free(ic);
        if (grown)
            a->icmp = grown;
        return NULL;
    }
    a->icmp = grown;
    ic->family = family;
    ic->addr = *addr;
    ic->agent = a;
    ic->up = initially_up;
    ic->used = true;
    icmp_start(a, ic, spec);
    a->icmp[a->n_icmp++] = ic;
    return ic;
}

static int real_start_check(struct agent_service *s, struct agent_real *r)
{
    if (s->hc->type == XLB_HC_NONE || s->hc->type == XLB_HC_ICMP)
        return 0;
    r->hc_used = *s->hc;
    r->hc_port = check_port(s, r);
    r->check = xlb_check_new(s->agent->loop, s->hc, r->cfg.family, &r->cfg.addr,
                             r->hc_port, r->check_up, real_check_cb, r);
    if (!r->check)
        return -errno;
    return xlb_check_start(r->check, false);
}

/* ---- adaptive: load files ---- */

static void real_free(struct agent_real *r);

static void load_fetched(int status, const char *body, size_t len, void *arg)
{
    struct agent_real *r = arg;
    int load = -1;

    r->fetching = false;
    if (!r->svc) {              /* removed while the fetch ran */
        free(r);
        return;
    }
    if (status == 200 && body) {
        char buf[16];
        size_t k = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
        char *end;
        long v;

        memcpy(buf, body, k);
        buf[k] = '\0';
        v = strtol(buf, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n' || *end == '\t')
            end++;
        if (end != buf && *end == '\0' && v >= 0 && v <= 100)
            load = (int)v;
    }
    if (load != r->load) {
        r->load = load;
        apply_logged(r->svc, "adaptive load changed");
    }
}

static void adaptive_tick(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t now = uv_now(a->loop);

    for (int i = 0; i < a->n_services; i++) {
        struct agent_service *s = a->services[i];

        if (s->l7 || s->cfg->scheduler != XLB_SCHED_ADAPTIVE)
            continue;           /* layer 7: the proxy's business */
        for (int j = 0; j < s->n_reals; j++) {
            struct agent_real *r = s->reals[j];

            if (r->fetching || now < r->next_fetch_ms)
                continue;
            r->next_fetch_ms = now + s->cfg->adaptive_interval_ms;
            if (xlb_http_fetch(a->loop, r->cfg.family, &r->cfg.addr, s->cfg->adaptive_port,
                               NULL, s->cfg->adaptive_path, s->cfg->hc.timeout_ms,
                               load_fetched, r) == 0)
                r->fetching = true;
        }
    }
}

/* ---- rebalancing ---- */

static void rebalance_tick(uv_timer_t *t)
{
    agent_rebalance(t->data);
}

void agent_rebalance(struct agent *a)
{
    struct xlb_err e;
    int rc;

    rc = xlb_active_scan(&a->maps, ACTIVE_IDLE_TCP_NS, ACTIVE_IDLE_UDP_NS, a->active_buf, &e);
    if (rc < 0) {
        agent_log(LOG_WARN_, "cannot count active flows: %s", e.msg);
        return;
    }
    a->scan_ms = wall_ms();
    for (int i = 0; i < a->n_services; i++) {
        struct agent_service *s = a->services[i];
        struct xlb_counters c;
        bool limits = false, ramping = false;

        if (s->l7) {
            if (s->dirty)
                apply_logged(s, "retrying a failed update");
            continue;
        }
        for (int j = 0; j < s->n_reals; j++) {
            struct agent_real *r = s->reals[j];
            bool was = agent_real_usable(r);

            r->active = a->active_buf[r->real_id];
            limits |= r->cfg.max_conns && agent_real_usable(r) != was;
            ramping |= s->cfg->slow_start_ms &&
                       a->scan_ms - r->usable_since_ms < s->cfg->slow_start_ms + 1000;
        }
        if (xlb_counters_read(a->maps.vs_stats, s->vs_id, &c) == 0) {
            uint64_t d = c.new_flows - s->prev_new_flows;

            s->prev_new_flows = c.new_flows;
            s->expected_new = d > UINT32_MAX ? UINT32_MAX : (uint32_t)(d ? d : 1);
        }
        if (s->sched->dynamic || limits || ramping || s->dirty)
            apply_logged(s, s->dirty ? "retrying a failed update" : "rebalance");
    }
}

static void wrt_tick(uv_timer_t *t)
{
    struct agent *a = t->data;

    for (int i = 0; i < a->n_services; i++)
        if (!a->services[i]->l7 && a->services[i]->cfg->scheduler == XLB_SCHED_WRT)
            apply_logged(a->services[i], "response times");
}

/* ---- data plane objects of one service ---- */

static uint8_t fwd_method(enum xlb_cfg_fwd f)
{
    switch (f) {
    case XLB_CFG_FWD_GUE:
        return XLB_FWD_GUE;
    case XLB_CFG_FWD_DSR:
        return XLB_FWD_DSR;
    case XLB_CFG_FWD_NAT:
        return XLB_FWD_NAT;
    default:
        return XLB_FWD_IPIP;
    }
}

static uint32_t table_flags(const struct xlb_sched *s)
{
    if (s->kind == XLB_TABLE_SEQ)
        return XLB_VS_F_SEQ;
    if (s->kind == XLB_TABLE_HASH_SRC)
        return XLB_VS_F_SRC_HASH;
    return 0;
}

static uint8_t first_proto(const struct xlb_cfg_service *c)
{
    return (c->protocols & XLB_CFG_PROTO_TCP) ? IPPROTO_TCP : IPPROTO_UDP;
}

/* Make the VIP entries of vs_id exactly ports x protocols. */
static int sync_vips(struct agent *a, const struct xlb_cfg_service *c, uint32_t vs_id,
                     char *err, size_t errlen)
{
    static const uint8_t protos[2] = { IPPROTO_TCP, IPPROTO_UDP };
    struct xlb_vip_key *have = NULL;
    struct xlb_err e;
    int n, rc = 0;

    n = xlb_vip_list(&a->maps, vs_id, NULL, 0);
    if (n < 0)
        return errs(err, errlen, -n, "cannot list the VIP entries of %s", c->name);
    have = calloc(n ? n : 1, sizeof(*have));
    if (!have)
        return errs(err, errlen, ENOMEM, "out of memory");
    n = xlb_vip_list(&a->maps, vs_id, have, n);
    for (int pi = 0; pi < 2; pi++) {
        if (!(c->protocols & (1u << pi)))
            continue;
        for (int i = 0; i < c->n_ports; i++) {
            bool found = false;

            for (int k = 0; k < n && !found; k++)
                found = have[k].proto == protos[pi] && ntohs(have[k].port_be) == c->ports[i];
            if (!found && (rc = xlb_vip_add(&a->maps, vs_id, c->ports[i], protos[pi], &e))) {
                errs(err, errlen, -rc, "%s", e.msg);
                goto out;
            }
        }
    }
    for (int k = 0; k < n; k++) {
        int pi = have[k].proto == IPPROTO_TCP ? 0 : 1;
        bool want = false;

        if (c->protocols & (1u << pi))
            for (int i = 0; i < c->n_ports && !want; i++)
                want = ntohs(have[k].port_be) == c->ports[i];
        if (!want)
            xlb_vip_del(&a->maps, vs_id, ntohs(have[k].port_be), have[k].proto, NULL);
    }
out:
    free(have);
    return rc;
}

static int prefixes(const struct xlb_cfg_prefix *in, int n, struct xlb_prefix **out)
{
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        (*out)[i].family = in[i].family;
        (*out)[i].plen = in[i].plen;
        (*out)[i].addr = in[i].addr;
    }
    return 0;
}

/* Persistence group of a service that shares its table with the other
 * services of its address: the same number for the same address. */
static uint32_t address_group(uint8_t family, const struct xlb_addr *a)
{
    uint32_t h = 2166136261u ^ family;
    const uint8_t *p = (const uint8_t *)a;

    for (size_t i = 0; i < sizeof(*a); i++)
        h = (h ^ p[i]) * 16777619u;
    return (h % (XLB_PERSIST_GROUP_MAX - 1)) + 1;
}

/* Persistence and access lists of the service. */
static int dp_policy(struct agent *a, const struct agent_service *s, char *err, size_t errlen)
{
    const struct xlb_cfg_service *c = s->cfg;
    struct xlb_persist_spec ps = { 0 };
    struct xlb_prefix *allow = NULL, *deny = NULL;
    struct xlb_err e;
    int rc;

    if (c->persistence.type == XLB_PERSIST_SOURCE_IP) {
        ps.timeout_s = c->persistence.timeout_ms / 1000;
        ps.netmask4 = c->persistence.netmask4;
        ps.netmask6 = c->persistence.netmask6;
        ps.group = c->persistence.share_by_address ? address_group(c->family, &c->addr) : 0;
    }
    rc = xlb_persist_set(&a->maps, s->vs_id, &ps, &e);
    if (rc)
        return errs(err, errlen, -rc, "service %s: %s", c->name, e.msg);
    if (prefixes(c->acl.allow, c->acl.n_allow, &allow) ||
        prefixes(c->acl.deny, c->acl.n_deny, &deny)) {
        free(allow);
        free(deny);
        return errs(err, errlen, ENOMEM, "out of memory");
    }
    rc = xlb_acl_set(&a->maps, s->vs_id, allow, c->acl.n_allow, deny, c->acl.n_deny, &e);
    free(allow);
    free(deny);
    if (rc)
        return errs(err, errlen, -rc, "service %s: %s", c->name, e.msg);
    return 0;
}

/* The node-wide deny list and the data-plane settings of the node. */
static int dp_node(struct agent *a, const struct xlb_config *cfg, char *err, size_t errlen)
{
    struct xlb_dp_config dc = { .flood_threshold = cfg->node.flood_threshold,
                                .udp_idle_timeout_s = cfg->node.udp_idle_ms / 1000 };
    struct xlb_prefix *deny = NULL;
    struct xlb_err e;
    int rc;

    if (prefixes(cfg->node.deny.deny, cfg->node.deny.n_deny, &deny))
        return errs(err, errlen, ENOMEM, "out of memory");
    rc = xlb_global_deny_set(&a->maps, deny, cfg->node.deny.n_deny, &e);
    free(deny);
    if (!rc)
        rc = xlb_config_set(&a->maps, &dc, &e);
    return rc ? errs(err, errlen, -rc, "node: %s", e.msg) : 0;
}

/* Find or create the service in the maps; adopt it when it matches. */
static int dp_service(struct agent *a, struct agent_service *s, char *err, size_t errlen)
{
    const struct xlb_cfg_service *c = s->cfg;
    struct xlb_service cur;
    struct xlb_err e;
    uint32_t id, fl = table_flags(s->sched);
    int rc;

    if (xlb_service_find(&a->maps, c->name, &id, &cur) == 0) {
        if (cur.family == c->family && !memcmp(&cur.vip, &c->addr, sizeof(c->addr)) &&
            cur.method == fwd_method(c->forwarding) && cur.ring_size == c->ring_size) {
            s->vs_id = id;
            if ((cur.flags & (XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH)) != fl) {
                rc = xlb_service_set_flags(&a->maps, id, fl,
                                           (XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH) & ~fl, &e);
                if (rc)
                    return errs(err, errlen, -rc, "%s", e.msg);
            }
            return sync_vips(a, c, id, err, errlen);
        }
        agent_log(LOG_INFO_, "service %s: address, method or table size changed: recreating it",
                  c->name);
        xlb_service_del(&a->maps, c->name, NULL);
        rc = xlb_reals_snap_read(&a->maps, a->snap, &e);    /* its reals are gone */
        if (rc)
            return errs(err, errlen, -rc, "%s", e.msg);
    }
    {
        struct xlb_service_spec sp = {
            .name = c->name, .family = c->family, .vip = c->addr, .port = c->ports[0],
            .proto = first_proto(c), .method = fwd_method(c->forwarding),
            .ring_size = c->ring_size, .flags = fl,
        };

        rc = xlb_service_add(&a->maps, &sp, &s->vs_id, &e);
        if (rc)
            return errs(err, errlen, -rc, "%s", e.msg);
    }
    return sync_vips(a, c, s->vs_id, err, errlen);
}

static int dp_real(struct agent *a, struct agent_service *s, struct agent_real *r, bool adopt_state,
                   char *err, size_t errlen)
{
    struct xlb_real cur;
    struct xlb_err e;
    uint32_t id;
    int rc;

    if (xlb_reals_snap_find(a->snap, s->vs_id, r->cfg.family, &r->cfg.addr, &id) == 0) {
        cur = a->snap->r[id];
        r->real_id = id;
        r->dp_flags = cur.flags;
        r->dp_weight = cur.weight;
        if (adopt_state) {
            /* An operator's drain or halt survives the restart; one that
             * came from `enabled: false` follows the config as it is now. */
            if (cur.flags & XLB_REAL_F_OPER) {
                r->admin = (cur.flags & XLB_REAL_F_HALT) ? ADMIN_HALT :
                           (cur.flags & XLB_REAL_F_DRAIN) ? ADMIN_DRAIN : ADMIN_NONE;
                r->admin_by_operator = true;
            }
            r->check_up = !(cur.flags & XLB_REAL_F_DOWN);
        }
        /* nat: a changed port of a kept real applies to its flows too. */
        if (s->cfg->forwarding == XLB_CFG_FWD_NAT && ntohs(cur.port_be) != r->cfg.port &&
            (rc = xlb_real_set_port(&a->maps, id, r->cfg.port, &e)))
            return errs(err, errlen, -rc, "service %s, real %s: %s", s->cfg->name, r->cfg.name,
                        e.msg);
        r->in_dp = true;
        return 0;
    }
    {
        struct xlb_real_spec rs = {
            .family = r->cfg.family, .addr = r->cfg.addr, .weight = r->weight,
            .name = r->cfg.name,
            .port = s->cfg->forwarding == XLB_CFG_FWD_NAT ? r->cfg.port : 0,
        };

        rc = xlb_real_add_snap_spec(&a->maps, a->snap, s->vs_id, &rs, &r->real_id, &e);
    }
    if (rc)
        return errs(err, errlen, -rc, "service %s, real %s: %s", s->cfg->name, r->cfg.name,
                    e.msg);
    r->dp_flags = XLB_REAL_F_ACTIVE;
    r->dp_weight = r->weight;
    r->in_dp = true;
    return 0;
}

/* Remove the reals of vs_id that the service no longer has. */
static void dp_prune_reals(struct agent *a, struct agent_service *s)
{
    uint32_t zero = 0;

    for (uint32_t id = 0; id < XLB_MAX_REALS; id++) {
        struct xlb_real cur = a->snap->r[id];
        bool keep = false;

        if (!(cur.flags & XLB_REAL_F_ACTIVE) || cur.vs_id != s->vs_id)
            continue;
        for (int i = 0; i < s->n_reals && !keep; i++)
            keep = s->reals[i]->real_id == id;
        if (keep)
            continue;
        /* Weight 0 first: the delete then leaves our table alone. */
        xlb_real_update(&a->maps, id, 0, 0, &zero, NULL);
        xlb_real_del(&a->maps, s->vs_id, cur.family, &cur.addr, NULL);
    }
}

/* ---- records ---- */

static void real_free(struct agent_real *r)
{
    if (!r)
        return;
    xlb_check_free(r->check);
    r->check = NULL;
    if (r->fetching) {
        r->svc = NULL;          /* load_fetched() frees it */
        return;
    }
    free(r);
}

static void service_free(struct agent_service *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_reals; i++)
        real_free(s->reals[i]);
    free(s->reals);
    free(s);
}

static const double check_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1, 2.5, 5, 10 };

static struct agent_real *real_by_addr(struct agent_service *old, const struct xlb_cfg_real *c)
{
    if (!old)
        return NULL;
    for (int i = 0; i < old->n_reals; i++) {
        struct agent_real *r = old->reals[i];

        if (r && r->cfg.family == c->family && !memcmp(&r->cfg.addr, &c->addr, sizeof(c->addr)))
            return r;
    }
    return NULL;
}

static const struct xlb_cfg_service *cfg_l4_service(const struct xlb_config *cfg,
                                                    const char *name)
{
    for (int i = 0; i < cfg->n_services; i++)
        if (cfg->services[i].layer == 4 && !strncmp(cfg->services[i].name, name, XLB_NAME_LEN))
            return &cfg->services[i];
    return NULL;
}

/*
 * Before anything is claimed, give up what cfg no longer has: services it
 * does not name, services whose address, method or table size change (they
 * are recreated), and VIP entries of kept services that cfg does not list.
 * So a port or an address may move from one service to another, or a
 * service be renamed, in one reload.
 */
static void release_unwanted(struct agent *a, const struct xlb_config *cfg)
{
    for (uint32_t id = 0; id < XLB_MAX_SERVICES; id++) {
        struct xlb_service cur;
        const struct xlb_cfg_service *c;
        struct xlb_vip_key have[256];
        char name[XLB_NAME_LEN + 1];
        int nv;

        if (bpf_map_lookup_elem(a->maps.services, &id, &cur) || !(cur.flags & XLB_VS_F_ACTIVE))
            continue;
        snprintf(name, sizeof(name), "%.*s", XLB_NAME_LEN, cur.name);
        c = cfg_l4_service(cfg, name);
        if (!c || cur.family != c->family || memcmp(&cur.vip, &c->addr, sizeof(c->addr)) ||
            cur.method != fwd_method(c->forwarding) || cur.ring_size != c->ring_size) {
            agent_log(LOG_INFO_, "service %s: %s", name, c ? "address, method or table size "
                      "changed: recreating it" : "not in the config: removed");
            xlb_service_del(&a->maps, name, NULL);
            continue;
        }
        do {
            nv = xlb_vip_list(&a->maps, id, have, 256);
            for (int k = 0; k < nv && k < 256; k++) {
                bool want = false;
                uint32_t bit = have[k].proto == IPPROTO_TCP ? XLB_CFG_PROTO_TCP
                                                            : XLB_CFG_PROTO_UDP;

                if (c->protocols & bit)
                    for (int i = 0; i < c->n_ports && !want; i++)
                        want = ntohs(have[k].port_be) == c->ports[i];
                if (!want && xlb_vip_del(&a->maps, id, ntohs(have[k].port_be), have[k].proto,
                                         NULL) == 0) {
                    nv = -1;    /* the list changed: read it again */
                    break;
                }
            }
        } while (nv < 0);
    }
}

/* A new record of real c of s, carrying o's runtime state when o (the
 * record of the same real before a reload) is given. */
static struct agent_real *real_new(struct agent_service *s, const struct xlb_cfg_real *c,
                                   struct agent_real *o, bool adopt)
{
    struct agent_real *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->cfg = *c;
    r->svc = s;
    r->load = -1;
    r->check_up = true;
    r->weight = c->weight;
    r->admin = c->enabled ? ADMIN_NONE : ADMIN_HALT;
    xlb_prom_hist_init(&r->hist, check_buckets, sizeof(check_buckets) / sizeof(check_buckets[0]));
    if (o) {
        /* Unchanged real: runtime state stays, unless the config
         * changed what the operator had overridden. */
        if (o->cfg.enabled == c->enabled) {
            r->admin = o->admin;
            r->admin_by_operator = o->admin_by_operator;
        }
        if (o->weight_set && o->cfg.weight == c->weight) {
            r->weight = o->weight;
            r->weight_set = true;
        }
        r->check_up = o->check_up;
        r->active = o->active;
        r->load = o->load;
        r->rt_ms = o->rt_ms;
        r->hist = o->hist;
        r->usable_since_ms = o->usable_since_ms;
        r->was_up = o->was_up;
        r->state_change_ms = o->state_change_ms;
        r->next_fetch_ms = o->next_fetch_ms;
        r->l7_written = o->l7_written;
        r->l7_state = o->l7_state;
        r->l7_gen = o->l7_gen;
        r->prev = o;
    } else {
        r->usable_since_ms = adopt ? 0 : wall_ms();
        r->was_up = true;
    }
    return r;
}

/* The old record of a layer-7 real: same address and port. */
static struct agent_real *l7_real_by_key(struct agent_service *old, const struct xlb_cfg_real *c)
{
    for (int i = 0; old && i < old->n_reals; i++) {
        struct agent_real *r = old->reals[i];

        if (r->cfg.family == c->family && !memcmp(&r->cfg.addr, &c->addr, sizeof(c->addr)) &&
            r->cfg.port == c->port)
            return r;
    }
    return NULL;
}

/* The record of one pool of layer-7 service c: its own reals (sub NULL) or
 * those of sub-service sub. */
static int l7_pool(struct agent *a, struct xlb_cfg_service *c, const struct xlb_cfg_sub *sub,
                   bool adopt, struct agent_service **out, char *err, size_t errlen)
{
    struct agent_service *s = calloc(1, sizeof(*s)), *old;
    int nr = sub ? sub->n_reals : c->n_reals;
    const struct xlb_cfg_real *reals = sub ? sub->reals : c->reals;

    if (!s || !(s->reals = calloc(nr ? nr : 1, sizeof(*s->reals)))) {
        free(s);
        return errs(err, errlen, ENOMEM, "out of memory");
    }
    *out = s;
    s->cfg = c;
    s->agent = a;
    s->l7 = true;
    s->sub = sub;
    if (sub)
        snprintf(s->name, sizeof(s->name), "%s/%s", c->name, sub->name);
    else
        snprintf(s->name, sizeof(s->name), "%s", c->name);
    s->hc = sub ? &sub->hc : &c->hc;
    s->scheduler = sub ? sub->scheduler : c->scheduler;
    s->persistence = sub ? &sub->persistence : &c->persistence;
    s->sched = xlb_sched_get(s->scheduler);
    s->expected_new = 1;
    old = agent_find_service(a, s->name);
    if (old && !old->l7)
        old = NULL;
    for (int j = 0; j < nr; j++) {
        struct agent_real *o = l7_real_by_key(old, &reals[j]);
        struct agent_real *r = real_new(s, &reals[j], o, adopt);

        if (!r)
            return errs(err, errlen, ENOMEM, "out of memory");
        s->reals[s->n_reals++] = r;
        if (!o)
            l7_adopt(a, r, adopt);
    }
    return 0;
}

/*
 * Converge to cfg.  Old records (NULL at the first start) carry runtime
 * state: operator state, check decisions, running checks.  adopt: take the
 * state markers of reals found in the maps (first start over running maps).
 * On failure nothing of the old records is lost: the caller keeps them.
 */
static int converge(struct agent *a, struct xlb_config *cfg, bool adopt, char *err, size_t errlen)
{
    struct xlb_err e;
    struct agent_service **ns = NULL;
    int n = 0, npools = 0, rc = 0;

    for (int i = 0; i < cfg->n_services; i++)
        npools += cfg->services[i].layer == 7 ? 1 + cfg->services[i].n_subs : 1;
    ns = calloc(npools ? npools : 1, sizeof(*ns));
    if (!ns)
        return errs(err, errlen, ENOMEM, "out of memory");
    release_unwanted(a, cfg);
    rc = dp_node(a, cfg, err, errlen);
    if (rc) {
        free(ns);
        return rc;
    }
    rc = xlb_reals_snap_read(&a->maps, a->snap, &e);
    if (rc) {
        free(ns);
        return errs(err, errlen, -rc, "%s", e.msg);
    }
    for (int i = 0; i < cfg->n_services; i++) {
        struct xlb_cfg_service *c = &cfg->services[i];
        struct agent_service *old = agent_find_service(a, c->name), *s;

        if (c->layer != 4)
            continue;           /* below */
        s = calloc(1, sizeof(*s));
        if (!s || !(s->reals = calloc(c->n_reals ? c->n_reals : 1, sizeof(*s->reals)))) {
            free(s);
            rc = errs(err, errlen, ENOMEM, "out of memory");
            goto fail;
        }
        ns[n++] = s;
        s->cfg = c;
        s->agent = a;
        snprintf(s->name, sizeof(s->name), "%s", c->name);
        s->hc = &c->hc;
        s->scheduler = c->scheduler;
        s->persistence = &c->persistence;
        s->sched = xlb_sched_get(c->scheduler);
        s->expected_new = old ? old->expected_new : 1;
        rc = dp_service(a, s, err, errlen);
        if (!rc)
            rc = dp_policy(a, s, err, errlen);
        if (rc)
            goto fail;
        {
            struct xlb_counters cnt;

            if (xlb_counters_read(a->maps.vs_stats, s->vs_id, &cnt) == 0)
                s->prev_new_flows = cnt.new_flows;
        }
        for (int j = 0; j < c->n_reals; j++) {
            struct agent_real *o = old && !old->l7 && old->vs_id == s->vs_id ?
                                   real_by_addr(old, &c->reals[j]) : NULL;
            struct agent_real *r = real_new(s, &c->reals[j], o, adopt);

            if (!r) {
                rc = errs(err, errlen, ENOMEM, "out of memory");
                goto fail;
            }
            s->reals[s->n_reals++] = r;
            rc = dp_real(a, s, r, adopt && !o, err, errlen);
            if (rc)
                goto fail;
        }
    }
    for (int i = 0; i < cfg->n_services; i++) {
        struct xlb_cfg_service *c = &cfg->services[i];

        for (int k = -1; c->layer == 7 && k < c->n_subs; k++) {
            rc = l7_pool(a, c, k < 0 ? NULL : &c->subs[k], adopt, &ns[n], err, errlen);
            if (ns[n])
                n++;
            if (rc)
                goto fail;
        }
    }

    /* ICMP checks: mark, bind, then drop the unused ones. */
    for (int i = 0; i < a->n_icmp; i++)
        a->icmp[i]->used = false;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ns[i]->n_reals; j++) {
            struct agent_real *r = ns[i]->reals[j];

            r->icmp = NULL;
            for (int k = 0; k < n; k++)
                if (ns[k]->hc->type == XLB_HC_ICMP && real_by_addr(ns[k], &r->cfg) != NULL) {
                    /* Up, unless this real was adopted down by an ICMP check. */
                    r->icmp = icmp_get(a, ns[k]->hc, r->cfg.family, &r->cfg.addr,
                                       ns[i]->hc->type != XLB_HC_ICMP || r->check_up);
                    break;
                }
            /* Without a check of its own the service's decision is "up";
             * an adopted "down" lives on in the ICMP check's start. */
            if (ns[i]->hc->type == XLB_HC_NONE || ns[i]->hc->type == XLB_HC_ICMP)
                r->check_up = true;
        }

    /* Tables and flags, then prune. */
    for (int i = 0; i < n; i++) {
        rc = agent_apply_service(ns[i], err, errlen);
        if (rc)
            goto fail;
        if (!ns[i]->l7)
            dp_prune_reals(a, ns[i]);
    }
    l7_prune(a, ns, n);

    /* Checks: a running check that checks the same thing moves to the new
     * record; the others start afresh. */
    for (int i = 0; i < n; i++) {
        struct agent_service *s = ns[i];

        for (int j = 0; j < s->n_reals; j++) {
            struct agent_real *r = s->reals[j], *o = r->prev;

            r->prev = NULL;
            if (o && o->check && !memcmp(&o->hc_used, s->hc, sizeof(*s->hc)) &&
                o->hc_port == check_port(s, r)) {
                r->check = o->check;
                r->hc_used = o->hc_used;
                r->hc_port = o->hc_port;
                o->check = NULL;
                xlb_check_set_arg(r->check, r);
                continue;
            }
            if ((rc = real_start_check(s, r)))
                agent_log(LOG_ERR_, "service %s real %s: cannot start the health check: %s",
                          s->name, r->cfg.name, strerror(-rc));
        }
    }

    for (int i = 0; i < a->n_services; i++)
        service_free(a->services[i]);
    free(a->services);
    a->services = ns;
    a->n_services = n;
    for (int i = 0; i < a->n_icmp; i++)
        if (!a->icmp[i]->used) {
            xlb_check_free(a->icmp[i]->check);
            free(a->icmp[i]);
            a->icmp[i--] = a->icmp[--a->n_icmp];
        }
    return 0;
fail:
    for (int i = 0; i < n; i++)
        service_free(ns[i]);
    free(ns);
    return rc;
}

struct agent_service *agent_find_service(struct agent *a, const char *name)
{
    for (int i = 0; i < a->n_services; i++)
        if (!strcmp(a->services[i]->name, name))
            return a->services[i];
    return NULL;
}

struct agent_real *agent_find_real(struct agent_service *s, const char *key)
{
    struct xlb_addr addr;
    uint8_t fam;
    bool is_addr = xlb_addr_parse(key, &addr, &fam, NULL) == 0;

    for (int i = 0; i < s->n_reals; i++) {
        struct agent_real *r = s->reals[i];

        if (!strcmp(r->cfg.name, key) ||
            (is_addr && r->cfg.family == fam && !memcmp(&r->cfg.addr, &addr, sizeof(addr))))
            return r;
    }
    return NULL;
}

/* ---- validation beyond the reader ---- */

/* ---- start, reload, stop ---- */

static int count_l7(const struct agent *a)
{
    int n = 0;

    for (int i = 0; i < a->n_services; i++)
        n += a->services[i]->l7;
    return n;
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f)
        return -errno;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *g = realloc(buf, cap = (cap ? cap * 2 : 8192));

            if (!g) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = g;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);

        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static int load_config(const char *path, struct xlb_config **cfg, char **text, size_t *len,
                       char *err, size_t errlen)
{
    int rc = read_file(path, text, len);

    if (rc)
        return errs(err, errlen, -rc, "%s: cannot read the config: %s", path, strerror(-rc));
    rc = xlb_config_parse(path, *text, *len, cfg, err, errlen);
    if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

/* The API token: read it, or create one the first time. */
static int read_token(struct agent *a, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);

    if (rc == -ENOENT) {
        unsigned char raw[24];
        int fd, ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

        if (ufd < 0 || read(ufd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
            if (ufd >= 0)
                close(ufd);
            return errs(err, errlen, EIO, "cannot read /dev/urandom for an API token");
        }
        close(ufd);
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(a->token + 2 * i, 3, "%02x", raw[i]);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, a->token, strlen(a->token)) < 0 || write(fd, "\n", 1) < 0) {
            rc = errno;
            if (fd >= 0)
                close(fd);
            return errs(err, errlen, rc, "api.token_file %s does not exist and cannot be "
                        "created: %s (create the directory, or point token_file elsewhere)",
                        path, strerror(rc));
        }
        close(fd);
        agent_log(LOG_WARN_, "api.token_file %s did not exist: created it with a new random "
                  "token (mode 0600)", path);
        return 0;
    }
    if (rc)
        return errs(err, errlen, -rc, "api.token_file %s: cannot read it: %s", path,
                    strerror(-rc));
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    if (len < 16 || len >= sizeof(a->token)) {
        free(text);
        return errs(err, errlen, EINVAL, "api.token_file %s: the token must be 16 to %zu "
                    "characters on one line", path, sizeof(a->token) - 1);
    }
    memcpy(a->token, text, len + 1);
    free(text);
    return 0;
}

static int open_dataplane(struct agent *a, char *err, size_t errlen)
{
    const struct xlb_cfg_node *nd = &a->cfg->node;
    struct xlb_load_opts o = {
        .bpffs = nd->bpffs, .conn_table_size = nd->conn_table_size,
        .tunnel_src4 = nd->tunnel_src4, .tunnel_src4_plen = nd->tunnel_src4_plen,
        .tunnel_src6 = nd->tunnel_src6, .tunnel_src6_plen = nd->tunnel_src6_plen,
        .gue_port = nd->gue_port,
    };
    struct xlb_err e;
    int rc;

    rc = xlb_dp_open(&o, &a->dp, &e);
    if (rc)
        return errs(err, errlen, -rc, "%s", e.msg);
    if (nd->n_ifaces == 0)
        rc = xlb_dp_load(a->dp, &e);
    for (int i = 0; i < nd->n_ifaces && !rc; i++) {
        rc = xlb_dp_attach(a->dp, nd->ifaces[i], nd->xdp_mode, &e);
        if (!rc)
            agent_log(LOG_INFO_, "balancer attached to %s", nd->ifaces[i]);
    }
    if (rc) {
        xlb_dp_close(a->dp);
        a->dp = NULL;
        return errs(err, errlen, -rc, "%s", e.msg);
    }
    a->maps = *xlb_dp_maps(a->dp);
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct agent *a = h->data;
    char err[1024];

    if (signum == SIGHUP) {
        agent_log(LOG_INFO_, "SIGHUP: reloading %s", a->cfg_path);
        agent_reload(a, err, sizeof(err));
        return;
    }
    agent_log(LOG_INFO_, "signal %d: stopping (the data plane keeps forwarding)", signum);
    agent_stop(a);
}

static int start_listeners(struct agent *a, char *err, size_t errlen)
{
    const struct xlb_cfg_node *nd = &a->cfg->node;

    if (nd->metrics.set) {
        a->metrics_srv = xlb_httpd_start(a->loop, &nd->metrics, agent_metrics_handler, a, err,
                                         errlen);
        if (!a->metrics_srv)
            return -errno;
    }
    if (nd->api.set) {
        int rc = read_token(a, nd->api_token_file, err, errlen);

        if (rc)
            return rc;
        a->api_srv = xlb_httpd_start(a->loop, &nd->api, agent_api_handler, a, err, errlen);
        if (!a->api_srv)
            return -errno;
    }
    return 0;
}

int agent_start(struct agent *a, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen)
{
    int rc;

    memset(a, 0, sizeof(*a));
    a->l7_fd = a->l7_cmd_fd = -1;
    a->loop = loop;
    snprintf(a->cfg_path, sizeof(a->cfg_path), "%s", cfg_path);
    a->active_buf = calloc(XLB_MAX_REALS, sizeof(*a->active_buf));
    a->snap = malloc(sizeof(*a->snap));
    if (!a->active_buf || !a->snap)
        return errs(err, errlen, ENOMEM, "out of memory");
    rc = load_config(cfg_path, &a->cfg, &a->cfg_text, &a->cfg_len, err, errlen);
    if (rc)
        goto fail;
    rc = open_dataplane(a, err, errlen);
    if (rc)
        goto fail;
    rc = a->l7_fd = agent_l7_map_open(a->cfg->node.bpffs, &a->l7_map_id, err, errlen);
    if (rc < 0)
        goto fail;
    rc = a->l7_cmd_fd = agent_l7_cmd_map_open(a->cfg->node.bpffs, &a->l7_cmd_map_id, err,
                                              errlen);
    if (rc < 0)
        goto fail;
    rc = converge(a, a->cfg, true, err, errlen);
    if (rc)
        goto fail;
    a->last_reload_ok = true;
    a->last_reload_time = wall_ms() / 1000.0;
    rc = start_listeners(a, err, errlen);
    if (rc)
        goto fail;

    uv_signal_init(loop, &a->sig_hup);
    uv_signal_init(loop, &a->sig_term);
    uv_signal_init(loop, &a->sig_int);
    a->sig_hup.data = a->sig_term.data = a->sig_int.data = a;
    uv_signal_start(&a->sig_hup, on_signal, SIGHUP);
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    uv_timer_init(loop, &a->rebalance);
    uv_timer_init(loop, &a->wrt);
    uv_timer_init(loop, &a->adaptive);
    a->rebalance.data = a->wrt.data = a->adaptive.data = a;
    uv_timer_start(&a->rebalance, rebalance_tick, a->cfg->node.rebalance_ms,
                   a->cfg->node.rebalance_ms);
    uv_timer_start(&a->wrt, wrt_tick, WRT_INTERVAL_MS, WRT_INTERVAL_MS);
    uv_timer_start(&a->adaptive, adaptive_tick, 0, ADAPTIVE_TICK_MS);
    agent_log(LOG_INFO_, "running %d layer-4 services and %d layer-7 pools from %s",
              a->n_services - count_l7(a), count_l7(a), cfg_path);
    return 0;
fail:
    agent_log(LOG_ERR_, "%s", err);
    agent_stop(a);
    return rc;
}

int agent_reload(struct agent *a, char *err, size_t errlen)
{
    struct xlb_config *cfg = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = load_config(a->cfg_path, &cfg, &text, &len, err, errlen);
    if (!rc) {
        const struct xlb_cfg_node *o = &a->cfg->node, *n = &cfg->node;

        if (strcmp(o->bpffs, n->bpffs) || o->conn_table_size != n->conn_table_size ||
            o->n_ifaces != n->n_ifaces || memcmp(o->ifaces, n->ifaces, sizeof(o->ifaces)) ||
            memcmp(&o->metrics, &n->metrics, sizeof(o->metrics)) ||
            memcmp(&o->api, &n->api, sizeof(o->api)) || o->gue_port != n->gue_port ||
            memcmp(&o->tunnel_src4, &n->tunnel_src4, sizeof(o->tunnel_src4)) ||
            memcmp(&o->tunnel_src6, &n->tunnel_src6, sizeof(o->tunnel_src6)))
            agent_log(LOG_WARN_, "reload: node settings changed; they take effect when "
                      "xlb-agent restarts (services are reloaded now)");
        rc = converge(a, cfg, false, err, errlen);
        if (rc) {
            /* Writing the new state failed half-way: go back to the old. */
            char why[512];
            size_t k = strlen(err);

            if (converge(a, a->cfg, false, why, sizeof(why)))
                snprintf(err + k, errlen - k, "; restoring the previous config failed too: %s",
                         why);
            else
                snprintf(err + k, errlen - k, "; the previous config was restored");
        }
    }
    a->last_reload_time = wall_ms() / 1000.0;
    if (rc) {
        a->reloads_failed++;
        a->last_reload_ok = false;
        snprintf(a->last_reload_error, sizeof(a->last_reload_error), "%s", err);
        agent_log(LOG_ERR_, "reload rejected, the running config stays in force: %s", err);
        xlb_config_free(cfg);
        free(text);
        return rc;
    }
    xlb_config_free(a->cfg);
    free(a->cfg_text);
    a->cfg = cfg;
    a->cfg_text = text;
    a->cfg_len = len;
    a->reloads_ok++;
    a->last_reload_ok = true;
    a->last_reload_error[0] = '\0';
    if (uv_is_active((uv_handle_t *)&a->rebalance))
        uv_timer_set_repeat(&a->rebalance, cfg->node.rebalance_ms);
    agent_log(LOG_INFO_, "reloaded %s: %d layer-4 services and %d layer-7 pools", a->cfg_path,
              a->n_services - count_l7(a), count_l7(a));
    return 0;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

void agent_stop(struct agent *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    xlb_httpd_stop(a->metrics_srv);
    xlb_httpd_stop(a->api_srv);
    a->metrics_srv = a->api_srv = NULL;
    close_handle((uv_handle_t *)&a->sig_hup);
    close_handle((uv_handle_t *)&a->sig_term);
    close_handle((uv_handle_t *)&a->sig_int);
    close_handle((uv_handle_t *)&a->rebalance);
    close_handle((uv_handle_t *)&a->wrt);
    close_handle((uv_handle_t *)&a->adaptive);
    for (int i = 0; i < a->n_services; i++)
        service_free(a->services[i]);
    free(a->services);
    a->services = NULL;
    a->n_services = 0;
    for (int i = 0; i < a->n_icmp; i++) {
        xlb_check_free(a->icmp[i]->check);
        free(a->icmp[i]);
    }
    free(a->icmp);
    a->icmp = NULL;
    a->n_icmp = 0;
    xlb_dp_close(a->dp);
    a->dp = NULL;
    if (a->l7_fd >= 0)
        close(a->l7_fd);
    a->l7_fd = -1;
    if (a->l7_cmd_fd >= 0)
        close(a->l7_cmd_fd);
    a->l7_cmd_fd = -1;
    xlb_config_free(a->cfg);
    a->cfg = NULL;
    free(a->cfg_text);
    a->cfg_text = NULL;
    free(a->active_buf);
    a->active_buf = NULL;
    free(a->snap);
    a->snap = NULL;
}
