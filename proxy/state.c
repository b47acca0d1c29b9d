/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * state.c - the state and weight of every real, from the agent's pinned
 * xlb_l7_reals map (bpf/xlb_abi.h), polled on the main loop.
 *
 * Without the pin (no agent on this node yet) every real is taken as up
 * with its configured weight (halted when `enabled: false`), and the pin is
 * looked for again at every poll, so an agent started later takes over.  A
 * real the map has no entry for is treated the same way.  Pools whose reals
 * changed are refreshed (px_lb_refresh) within the poll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "proxy.h"

/* A command of xlb_l7_cmds already run: its key and the value it had. */
struct px_cmd_seen {
    struct xlb_l7_cmd_key key;
    struct xlb_l7_cmd_val val;
    bool live;                  /* still in the map at the last poll */
};

struct px_state {
    uv_timer_t timer;
    struct px_model *m;
    char pin[XLB_CFG_PATH_MAX + 32];
    char cmd_pin[XLB_CFG_PATH_MAX + 32];
    int fd, cmd_fd;
    bool warned;
    bool cmds_primed;           /* the commands present at start were recorded, not run */
    bool *dirty;                /* per pool, flattened */
    struct px_cmd_seen *seen;   /* [XLB_MAX_L7_CMDS] */
    int n_seen;
};

static void key_of(const struct px_real *r, struct xlb_l7_key *k)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->vs, sizeof(k->vs), "%s", r->pool->svc->name);
    memcpy(k->sub, r->pool->name, strnlen(r->pool->name, sizeof(k->sub) - 1));
    memcpy(&k->addr, &r->cfg->addr, sizeof(k->addr));
    k->family = r->cfg->family;
    k->port = r->cfg->port;
}

static bool set_real(struct px_real *r, uint32_t state, uint32_t weight)
{
    bool changed = atomic_load(&r->state) != state || atomic_load(&r->weight) != weight;

    if (changed) {
        static const char *const names[] = { "up", "down", "drain", "halt" };

        px_log(PX_INFO, "real %s of %s%s%s: %s, weight %u", r->name, r->pool->svc->name,
               r->pool->name[0] ? "/" : "", r->pool->name, names[state & 3], weight);
        atomic_store(&r->state, state);
        atomic_store(&r->weight, weight);
    }
    return changed;
}

void px_state_poll(struct px_state *st)
{
    struct px_model *m = st->m;
    int i, j, k, p = 0;

    if (st->fd < 0) {
        st->fd = bpf_obj_get(st->pin);
        if (st->fd < 0 && !st->warned) {
            px_log(PX_WARN, "no agent state at %s (%s): every real is taken as up with its "
                   "configured weight until xlb-agent runs", st->pin, strerror(errno));
            st->warned = true;
        } else if (st->fd >= 0) {
            px_log(PX_INFO, "reading real states from %s", st->pin);
            st->warned = false;
        }
    }
    for (i = 0; i < m->n_services; i++) {
        struct px_service *s = &m->services[i];

        for (j = 0; j < s->n_pools; j++, p++) {
            struct px_pool *pool = &s->pools[j];
            bool changed = st->dirty[p];

            for (k = 0; k < pool->n_reals; k++) {
                struct px_real *r = &pool->reals[k];
                struct xlb_l7_key key;
                struct xlb_l7_val val;

                key_of(r, &key);
                if (st->fd >= 0 && !bpf_map_lookup_elem(st->fd, &key, &val)) {
                    changed |= set_real(r, val.state > XLB_L7_HALT ? XLB_L7_DOWN : val.state,
                                        val.weight);
                } else {
                    if (st->fd >= 0 && errno != ENOENT) {
                        /* The map went away or is not ours: look for the pin again. */
                        px_log(PX_WARN, "%s: %s; looking for the agent's map again", st->pin,
                               strerror(errno));
                        close(st->fd);
                        st->fd = -1;
                    }
                    changed |= set_real(r, r->cfg->enabled ? XLB_L7_UP : XLB_L7_HALT,
                                        r->cfg->weight);
                }
            }
            if (changed)
                px_lb_refresh(pool);
            st->dirty[p] = false;
        }
    }
}

static struct px_cmd_seen *seen_find(struct px_state *st, const struct xlb_l7_cmd_key *k)
{
    int i;

    for (i = 0; i < st->n_seen; i++)
        if (!memcmp(&st->seen[i].key, k, sizeof(*k)))
            return &st->seen[i];
    return NULL;
}

static void run_command(struct px_state *st, const struct xlb_l7_cmd_key *k)
{
    char vs[XLB_NAME_LEN + 1], url[XLB_L7_URL_LEN + 1];
    int i;

    memcpy(vs, k->vs, XLB_NAME_LEN);
    vs[XLB_NAME_LEN] = '\0';
    memcpy(url, k->url, XLB_L7_URL_LEN);
    url[XLB_L7_URL_LEN] = '\0';
    for (i = 0; i < st->m->n_services; i++)
        if (!strcmp(st->m->services[i].name, vs)) {
            px_service_command(&st->m->services[i], url);
            return;
        }
    px_log(PX_WARN, "cache command for unknown service %s ignored (the proxy's config may be "
           "older than the agent's)", vs);
}

/*
 * Operator commands (cache flush and purge) from the agent.  A key whose
 * value changed since the last poll is a new command (the map is an LRU:
 * a command evicted and given again starts at gen 1, so any change counts).
 * The commands present when the proxy starts concern caches it does not
 * have: they are only recorded.
 */
static void poll_commands(struct px_state *st)
{
    struct xlb_l7_cmd_key key, next;
    struct xlb_l7_cmd_val val;
    int i, n = 0;

    if (st->cmd_fd < 0) {
        st->cmd_fd = bpf_obj_get(st->cmd_pin);
        if (st->cmd_fd < 0) {
            st->cmds_primed = true;     /* a map created later holds only new commands */
            return;
        }
    }
    for (i = 0; i < st->n_seen; i++)
        st->seen[i].live = false;
    while (n++ < 2 * XLB_MAX_L7_CMDS &&
           !bpf_map_get_next_key(st->cmd_fd, n == 1 ? NULL : &key, &next)) {
        struct px_cmd_seen *s;

        key = next;
        if (bpf_map_lookup_elem(st->cmd_fd, &key, &val))
            continue;
        s = seen_find(st, &key);
        if (s && !memcmp(&s->val, &val, sizeof(val))) {
            s->live = true;
            continue;
        }
        if (!s) {
            /* Forget entries the map no longer has to make room. */
            if (st->n_seen == XLB_MAX_L7_CMDS) {
                int j, w = 0;

                for (j = 0; j < st->n_seen; j++)
                    if (st->seen[j].live)
                        st->seen[w++] = st->seen[j];
                st->n_seen = w;
                if (w == XLB_MAX_L7_CMDS)
                    continue;
            }
            s = &st->seen[st->n_seen++];
            s->key = key;
        }
        s->val = val;
        s->live = true;
        if (st->cmds_primed)
            run_command(st, &key);
    }
    st->cmds_primed = true;
}

static void on_timer(uv_timer_t *t)
{
    px_state_poll(t->data);
    poll_commands(t->data);
}

struct px_state *px_state_start(uv_loop_t *loop, struct px_model *m, const char *bpffs,
                                uint32_t interval_ms)
{
    struct px_state *st = calloc(1, sizeof(*st));
    int n = 0, i;

    if (!st)
        return NULL;
    for (i = 0; i < m->n_services; i++)
        n += m->services[i].n_pools;
    st->dirty = calloc((size_t)(n ? n : 1), sizeof(*st->dirty));
    if (!st->dirty) {
        free(st);
        return NULL;
    }
    for (i = 0; i < n; i++)
        st->dirty[i] = true;
    st->seen = calloc(XLB_MAX_L7_CMDS, sizeof(*st->seen));
    if (!st->seen) {
        free(st->dirty);
        free(st);
        return NULL;
    }
    st->m = m;
    st->fd = st->cmd_fd = -1;
    snprintf(st->pin, sizeof(st->pin), "%s/%s", bpffs, XLB_L7_PIN);
    snprintf(st->cmd_pin, sizeof(st->cmd_pin), "%s/%s", bpffs, XLB_L7_CMD_PIN);
    px_state_poll(st);
    poll_commands(st);
    uv_timer_init(loop, &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_timer, interval_ms, interval_ms);
    return st;
}

static void on_closed(uv_handle_t *h)
{
    struct px_state *st = h->data;

    free(st->dirty);
    free(st->seen);
    free(st);
}

void px_state_stop(struct px_state *st)
{
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    if (st->cmd_fd >= 0)
        close(st->cmd_fd);
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, on_closed);
}
