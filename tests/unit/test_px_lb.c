// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb-proxy's load balancer (proxy/lb.c, route.c, persist.c): content
 * switching, every scheduler, the usable-real filter, every persistence
 * type with its timeouts, replacements and fallback, active cookie
 * integrity, and picks from several threads while states change.
 *
 * Services are built by hand: configuration structs filled in code, the
 * model arrays (px_service, px_pool, px_real) as px_model_build would make
 * them, and request heads split into fields by a small local reader.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lb_int.h"
#include "px.h"

#define MAXR 8
#define MAXP 6

/* ---- building services --------------------------------------------------- */

struct tsvc {
    struct xlb_cfg_service cfg;
    struct xlb_cfg_sub subs[MAXP];
    struct xlb_cfg_real creals[MAXP][MAXR];
    struct px_service svc;
    struct px_pool pools[MAXP];
    struct px_real reals[MAXP][MAXR];
};

static const uint8_t key_a[32] = "node key A......................";
static const uint8_t key_b[32] = "node key B......................";

/* Pool p of t with n reals r0..r(n-1) of the given weights (NULL: 100). */
static void add_pool(struct tsvc *t, const char *name, enum xlb_cfg_sched s,
                     enum xlb_cfg_persist pt, int n, const uint32_t *w)
{
    int p = t->svc.n_pools++;
    struct xlb_cfg_sub *sub = &t->subs[p];
    struct px_pool *pool = &t->pools[p];

    snprintf(sub->name, sizeof(sub->name), "%s", name);
    sub->scheduler = s;
    sub->persistence.type = pt;
    sub->persistence.timeout_ms = 300000;
    sub->persistence.netmask4 = 32;
    sub->persistence.netmask6 = 128;
    sub->persistence.cookie_secure = true;
    sub->persistence.cookie_httponly = true;
    snprintf(sub->persistence.cookie_samesite, sizeof(sub->persistence.cookie_samesite), "Lax");
    sub->n_reals = n;
    sub->reals = t->creals[p];
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    pool->svc = &t->svc;
    pool->match = &sub->match;
    pool->scheduler = s;
    pool->persist = &sub->persistence;
    pool->n_reals = n;
    pool->reals = t->reals[p];
    for (int i = 0; i < n; i++) {
        struct xlb_cfg_real *c = &t->creals[p][i];
        struct px_real *r = &t->reals[p][i];

        snprintf(c->name, sizeof(c->name), "%s-r%d", name, i);
        c->family = XLB_FAMILY_V4;
        c->addr.addr_be[0] = htonl(0xc6120100u + (uint32_t)i);
        c->port = 8080;
        c->weight = w ? w[i] : 100;
        c->enabled = true;
        r->cfg = c;
        snprintf(r->name, sizeof(r->name), "%s", c->name);
        r->pool = pool;
        r->index = (uint32_t)i;
        r->port = 8080;
        atomic_store(&r->state, XLB_L7_UP);
        atomic_store(&r->weight, c->weight);
    }
}

static struct tsvc *svc_new(const char *name)
{
    struct tsvc *t = calloc(1, sizeof(*t));

    cr_assert(t);
    snprintf(t->cfg.name, sizeof(t->cfg.name), "%s", name);
    t->cfg.layer = 7;
    t->cfg.ring_size = 65537;
    t->cfg.subs = t->subs;
    snprintf(t->svc.name, sizeof(t->svc.name), "%s", name);
    t->svc.cfg = &t->cfg;
    t->svc.pools = t->pools;
    return t;
}

static void svc_init(struct tsvc *t, const uint8_t *key)
{
    char err[256] = "";
    int rc;

    t->cfg.n_subs = t->svc.n_pools;
    rc = px_lb_init(&t->svc, key, err, sizeof(err));
    cr_assert_eq(rc, 0, "px_lb_init: %d %s", rc, err);
}

static void svc_free(struct tsvc *t)
{
    px_lb_free(&t->svc);
    free(t);
}

/* One pool, one service: the common case. */
static struct tsvc *one(enum xlb_cfg_sched s, enum xlb_cfg_persist pt, int n, const uint32_t *w)
{
    struct tsvc *t = svc_new("web");

    add_pool(t, "p", s, pt, n, w);
    return t;
}

/* ---- requests -------------------------------------------------------------- */

struct req {
    char buf[4096];
    struct xlb_h1_field f[32];
    struct xlb_h1_head h;
    struct sockaddr_storage ss;
    struct px_reqview rv;
};

static struct xlb_h1_str slice(const char *buf, const char *p, size_t n)
{
    return (struct xlb_h1_str){ .off = (uint32_t)(p - buf), .len = (uint32_t)n };
}

/* A request head from "METHOD TARGET" and "Name: value\n" lines, from
 * client ip:port at now. */
static void req_set(struct req *q, const char *line, const char *fields, const char *ip,
                    uint16_t port)
{
    const char *sp, *p;
    size_t n;

    memset(q, 0, sizeof(*q));
    n = (size_t)snprintf(q->buf, sizeof(q->buf), "%s HTTP/1.1\r\n", line);
    sp = strchr(q->buf, ' ');
    q->h.method = slice(q->buf, q->buf, (size_t)(sp - q->buf));
    q->h.target = slice(q->buf, sp + 1, strlen(line) - (size_t)(sp + 1 - q->buf));
    q->h.version_minor = 1;
    q->h.fields = q->f;
    q->h.host_field = -1;
    for (p = fields ? fields : ""; *p;) {
        const char *nl = strchr(p, '\n'), *colon = strchr(p, ':'), *v;
        struct xlb_h1_field *f = &q->f[q->h.n_fields];
        char *dst = q->buf + n;

        cr_assert(nl && colon && colon < nl && q->h.n_fields < 32);
        memcpy(dst, p, (size_t)(nl - p));
        memcpy(dst + (nl - p), "\r\n", 2);
        f->name = slice(q->buf, dst, (size_t)(colon - p));
        for (v = colon + 1; *v == ' '; v++)
            ;
        f->value = slice(q->buf, dst + (v - p), (size_t)(nl - v));
        if ((colon - p) == 4 && !strncasecmp(p, "host", 4))
            q->h.host_field = (int)q->h.n_fields;
        q->h.n_fields++;
        n += (size_t)(nl - p) + 2;
        p = nl + 1;
    }
    memcpy(q->buf + n, "\r\n", 2);
    q->h.head_len = (uint32_t)n + 2;
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&q->ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&q->ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    q->rv = (struct px_reqview){ .buf = q->buf, .head = &q->h, .client = &q->ss,
                                 .now_ms = px_now_ms() };
}

/* pick for q (now taken again) and return the chosen real's index, -1 for none */
static int pick(struct px_pool *pool, struct req *q, struct px_choice *c)
{
    struct px_choice tmp;

    if (!c)
        c = &tmp;
    q->rv.now_ms = px_now_ms();
    px_lb_pick(pool, &q->rv, NULL, c);
    return c->real ? (int)c->real->index : -1;
}

static int pick_simple(struct px_pool *pool, const char *ip)
{
    struct req q;

    req_set(&q, "GET /", "Host: a\n", ip, 40000);
    return pick(pool, &q, NULL);
}

/* The "NAME=VALUE" part of a Set-Cookie string, as a Cookie field line. */
static void cookie_field(const struct px_choice *c, char *out, size_t len)
{
    const char *semi = strchr(c->cookie, ';');

    cr_assert(semi);
    snprintf(out, len, "Cookie: other=1; %.*s\n", (int)(semi - c->cookie), c->cookie);
}

static void set_state(struct px_pool *pool, int i, uint32_t st)
{
    atomic_store(&pool->reals[i].state, st);
}

/* ---- content switching ---------------------------------------------------------- */

TestSuite(px_lb_route);

static int route(struct tsvc *t, const char *line, const char *fields)
{
    struct req q;
    struct px_pool *p;

    req_set(&q, line, fields, "192.0.2.1", 1000);
    p = px_lb_route(&t->svc, &q.rv);
    return p ? (int)(p - t->pools) : -1;
}

Test(px_lb_route, conditions_and_first_match)
{
    struct tsvc *t = svc_new("web");

    add_pool(t, "api", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[0].match.path_prefix, XLB_CFG_STR_MAX, "/api/");
    snprintf(t->subs[0].match.method, 16, "POST");
    add_pool(t, "img", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[1].match.path_regex, XLB_CFG_STR_MAX, "\\.(png|jpe?g)$");
    add_pool(t, "admin", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[2].match.host, XLB_CFG_STR_MAX, "Admin.Example.org");
    add_pool(t, "beta", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[3].match.header_name, XLB_CFG_STR_MAX, "X-Beta");
    snprintf(t->subs[3].match.header_value, XLB_CFG_STR_MAX, "On");
    add_pool(t, "any-api", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[4].match.path_prefix, XLB_CFG_STR_MAX, "/api");
    svc_init(t, key_a);

    cr_expect_eq(route(t, "POST /api/v1?x=1", "Host: h\n"), 0);
    cr_expect_eq(route(t, "GET /api/v1", "Host: h\n"), 4, "method must match exactly");
    cr_expect_eq(route(t, "post /api/v1", "Host: h\n"), 4, "method is case-sensitive");
    cr_expect_eq(route(t, "POST /ap", "Host: h\n"), -1);
    cr_expect_eq(route(t, "POST /x?/api/", "Host: h\n"), -1, "prefix is on the path only");
    cr_expect_eq(route(t, "POST http://h/api/v1", "Host: h\n"), 0, "absolute form");
    /* regex on the path, not the query */
    cr_expect_eq(route(t, "GET /a/b.jpeg", "Host: h\n"), 1);
    cr_expect_eq(route(t, "GET /a/b.png?v=2", "Host: h\n"), 1);
    cr_expect_eq(route(t, "GET /a?b.png", "Host: h\n"), -1);
    /* host: case-insensitive, port ignored */
    cr_expect_eq(route(t, "GET /", "Host: admin.example.ORG:8443\n"), 2);
    cr_expect_eq(route(t, "GET /", "Host: admin.example.org.evil\n"), -1);
    /* first match wins: an image on the admin host goes to img */
    cr_expect_eq(route(t, "GET /logo.png", "Host: admin.example.org\n"), 1);
    /* header: case-insensitive name, exact value, first field */
    cr_expect_eq(route(t, "GET /", "Host: h\nx-beta: On\n"), 3);
    cr_expect_eq(route(t, "GET /", "Host: h\nX-Beta: on\n"), -1);
    cr_expect_eq(route(t, "GET /", "Host: h\nX-Beta: no\nX-Beta: On\n"), -1);
    svc_free(t);
}

Test(px_lb_route, catch_all_presence_and_v6_host)
{
    struct tsvc *t = svc_new("web");

    add_pool(t, "hdr", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[0].match.header_name, XLB_CFG_STR_MAX, "X-Canary");
    add_pool(t, "v6", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[1].match.host, XLB_CFG_STR_MAX, "[fd00::1]");
    add_pool(t, "rest", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    svc_init(t, key_a);
    cr_expect_eq(route(t, "GET /", "Host: h\nX-Canary: \n"), 0, "empty value: presence");
    cr_expect_eq(route(t, "GET /", "Host: [fd00::1]:80\n"), 1);
    cr_expect_eq(route(t, "GET /", "Host: h\n"), 2, "an empty match takes everything");
    svc_free(t);

    /* A pool without match (NULL) also takes everything. */
    t = one(XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    t->pools[0].match = NULL;
    svc_init(t, key_a);
    cr_expect_eq(route(t, "DELETE /anything", "Host: h\n"), 0);
    svc_free(t);
}

Test(px_lb_route, bad_regex)
{
    struct tsvc *t = svc_new("shop");
    char err[256] = "";

    add_pool(t, "ok", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    add_pool(t, "cart", XLB_SCHED_WRR, XLB_PERSIST_NONE, 1, NULL);
    snprintf(t->subs[1].match.path_regex, XLB_CFG_STR_MAX, "^/cart/(\\d+");
    cr_assert_eq(px_lb_init(&t->svc, key_a, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "service shop sub-service cart: path_regex: missing closing "
                          "parenthesis at offset 11");
    cr_expect_null(t->pools[0].lb, "a failed init leaves nothing behind");
    px_lb_free(&t->svc);
    free(t);
}

/* ---- schedulers ------------------------------------------------------------------- */

TestSuite(px_lb_sched);

static void count_picks(struct px_pool *pool, int n, int *cnt)
{
    char ip[32];

    for (int i = 0; i < n; i++) {
        int r;

        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        r = pick_simple(pool, ip);
        cr_assert(r >= 0 && r < pool->n_reals, "pick %d gave %d", i, r);
        cnt[r]++;
    }
}

Test(px_lb_sched, wrr_exact_cycle)
{
    uint32_t w[] = { 500, 300, 200 };
    struct tsvc *t = one(XLB_SCHED_WRR, XLB_PERSIST_NONE, 3, w);
    int cnt[3] = { 0 };

    svc_init(t, key_a);
    /* the cycle is 5 + 3 + 2 after dividing by the gcd: every window of 10 */
    for (int c = 0; c < 7; c++) {
        memset(cnt, 0, sizeof(cnt));
        count_picks(&t->pools[0], 10, cnt);
        cr_expect(cnt[0] == 5 && cnt[1] == 3 && cnt[2] == 2, "cycle %d: %d %d %d", c, cnt[0],
                  cnt[1], cnt[2]);
    }
    /* a weight change applies at refresh */
    atomic_store(&t->reals[0][2].weight, 700);
    px_lb_refresh(&t->pools[0]);
    memset(cnt, 0, sizeof(cnt));
    count_picks(&t->pools[0], 1500 * 3, cnt);
    cr_expect(cnt[0] == 1500 && cnt[1] == 900 && cnt[2] == 2100, "%d %d %d", cnt[0], cnt[1],
              cnt[2]);
    svc_free(t);
}

Test(px_lb_sched, wrr_odd_weights_and_rr)
{
    uint32_t w[] = { 7, 1, 13, 2 };
    struct tsvc *t = one(XLB_SCHED_WRR, XLB_PERSIST_NONE, 4, w);
    int cnt[4] = { 0 };

    svc_init(t, key_a);
    count_picks(&t->pools[0], 23 * 10, cnt);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(cnt[i], (int)w[i] * 10);
    svc_free(t);

    t = one(XLB_SCHED_RR, XLB_PERSIST_NONE, 4, w);
    svc_init(t, key_a);
    memset(cnt, 0, sizeof(cnt));
    count_picks(&t->pools[0], 400, cnt);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(cnt[i], 100, "rr ignores weights: %d", cnt[i]);
    svc_free(t);
}

Test(px_lb_sched, lc_and_wlc_follow_active)
{
    uint32_t w[] = { 100, 100, 100 };
    struct tsvc *t = one(XLB_SCHED_LC, XLB_PERSIST_NONE, 3, w);
    struct px_pool *p = &t->pools[0];
    int cnt[3] = { 0 };

    svc_init(t, key_a);
    atomic_store(&t->reals[0][0].active, 5);
    atomic_store(&t->reals[0][1].active, 1);
    atomic_store(&t->reals[0][2].active, 3);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(pick_simple(p, "10.0.0.1"), 1);
    /* requests that stay in flight: the counts level out */
    for (int i = 0; i < 300; i++)
        atomic_fetch_add(&t->reals[0][pick_simple(p, "10.0.0.1")].active, 1);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(atomic_load(&t->reals[0][i].active), 103);
    /* all idle: they take turns */
    for (int i = 0; i < 3; i++)
        atomic_store(&t->reals[0][i].active, 0);
    count_picks(p, 300, cnt);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(cnt[i], 100, "ties must rotate: %d", cnt[i]);
    svc_free(t);

    uint32_t w2[] = { 100, 300, 200 };
    t = one(XLB_SCHED_WLC, XLB_PERSIST_NONE, 3, w2);
    p = &t->pools[0];
    svc_init(t, key_a);
    atomic_store(&t->reals[0][0].active, 2);    /* 0.02 */
    atomic_store(&t->reals[0][1].active, 3);    /* 0.01 */
    atomic_store(&t->reals[0][2].active, 4);    /* 0.02 */
    cr_expect_eq(pick_simple(p, "10.0.0.1"), 1);
    for (int i = 0; i < 600; i++)
        atomic_fetch_add(&t->reals[0][pick_simple(p, "10.0.0.1")].active, 1);
    /* 609 in flight split 1:3:2 within one request */
    cr_expect(abs((int)atomic_load(&t->reals[0][0].active) - 102) <= 1);
    cr_expect(abs((int)atomic_load(&t->reals[0][1].active) - 304) <= 1);
    cr_expect(abs((int)atomic_load(&t->reals[0][2].active) - 203) <= 1);
    svc_free(t);
}

Test(px_lb_sched, fixed)
{
    uint32_t w[] = { 50, 200, 200, 10 };
    struct tsvc *t = one(XLB_SCHED_FIXED, XLB_PERSIST_NONE, 4, w);
    struct px_pool *p = &t->pools[0];

    svc_init(t, key_a);
    for (int i = 0; i < 20; i++)
        cr_expect_eq(pick_simple(p, "10.0.0.1"), 1, "highest weight, first in order");
    set_state(p, 1, XLB_L7_DOWN);
    cr_expect_eq(pick_simple(p, "10.0.0.1"), 2);
    set_state(p, 2, XLB_L7_HALT);
    cr_expect_eq(pick_simple(p, "10.0.0.1"), 0);
    set_state(p, 1, XLB_L7_UP);
    cr_expect_eq(pick_simple(p, "10.0.0.1"), 1);
    svc_free(t);
}

Test(px_lb_sched, sh_and_maglev)
{
    uint32_t w[] = { 100, 100, 200 };
    struct tsvc *t = one(XLB_SCHED_SH, XLB_PERSIST_NONE, 3, w);
    struct px_pool *p = &t->pools[0];
    int before[400], cnt[3] = { 0 }, others = 0;
    char ip[32];

    svc_init(t, key_a);
    for (int i = 0; i < 400; i++) {
        snprintf(ip, sizeof(ip), "172.16.%d.%d", i / 200, i % 200 + 1);
        before[i] = pick_simple(p, ip);
        cnt[before[i]]++;
        cr_expect_eq(pick_simple(p, ip), before[i], "same address, same real");
    }
    cr_expect(cnt[0] > 60 && cnt[1] > 60 && cnt[2] > 140, "%d %d %d", cnt[0], cnt[1], cnt[2]);
    /* one real down: its clients move, and (Maglev being near-minimal)
     * hardly any other */
    set_state(p, 0, XLB_L7_DOWN);
    px_lb_refresh(p);
    for (int i = 0; i < 400; i++) {
        int r;

        snprintf(ip, sizeof(ip), "172.16.%d.%d", i / 200, i % 200 + 1);
        r = pick_simple(p, ip);
        cr_expect_neq(r, 0);
        others += before[i] != 0 && r != before[i];
    }
    cr_expect_leq(others * 20, 400 - cnt[0], "%d of %d others moved", others, 400 - cnt[0]);
    svc_free(t);

    /* maglev: the port counts too */
    t = one(XLB_SCHED_MAGLEV, XLB_PERSIST_NONE, 3, w);
    p = &t->pools[0];
    svc_init(t, key_a);
    memset(cnt, 0, sizeof(cnt));
    for (int port = 1000; port < 1300; port++) {
        struct req q;

        req_set(&q, "GET /", "Host: a\n", "172.16.0.1", (uint16_t)port);
        cnt[pick(p, &q, NULL)]++;
    }
    cr_expect(cnt[0] > 40 && cnt[1] > 40 && cnt[2] > 100, "%d %d %d", cnt[0], cnt[1], cnt[2]);
    svc_free(t);
}

/* No new client goes to a real that is down, halted, drained, of weight 0
 * or passively failed, refreshed or not, nor to an excluded one. */
Test(px_lb_sched, usable_filter)
{
    static const enum xlb_cfg_sched all[] = { XLB_SCHED_RR, XLB_SCHED_WRR, XLB_SCHED_LC,
                                              XLB_SCHED_WLC, XLB_SCHED_FIXED, XLB_SCHED_SH,
                                              XLB_SCHED_MAGLEV, XLB_SCHED_ADAPTIVE };
    uint32_t w[] = { 100, 100, 100, 100, 100, 100, 100 };

    for (size_t s = 0; s < sizeof(all) / sizeof(all[0]); s++) {
        for (int refresh = 0; refresh < 2; refresh++) {
            struct tsvc *t = one(all[s], XLB_PERSIST_NONE, 7, w);
            struct px_pool *p = &t->pools[0];
            uint64_t excl[1] = { 1u << 6 };
            int cnt[7] = { 0 };
            char ip[32];

            svc_init(t, key_a);
            set_state(p, 0, XLB_L7_DOWN);
            set_state(p, 1, XLB_L7_HALT);
            set_state(p, 2, XLB_L7_DRAIN);
            atomic_store(&t->reals[0][3].weight, 0);
            atomic_store(&t->reals[0][4].failed_until_ms, px_now_ms() + 60000);
            if (refresh)
                px_lb_refresh(p);
            for (int i = 0; i < 700; i++) {
                struct req q;
                struct px_choice c;

                snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 250, i % 250);
                req_set(&q, "GET /", "Host: a\n", ip, (uint16_t)(1000 + i));
                px_lb_pick(p, &q.rv, excl, &c);
                cr_assert(c.real, "sched %d: no real", all[s]);
                cnt[c.real->index]++;
            }
            cr_expect_eq(cnt[5], 700, "sched %d refresh %d: %d %d %d %d %d %d %d", all[s],
                         refresh, cnt[0], cnt[1], cnt[2], cnt[3], cnt[4], cnt[5], cnt[6]);
            /* the failure ends: the real comes back */
            atomic_store(&t->reals[0][4].failed_until_ms, px_now_ms() - 1);
            excl[0] = 1u << 5;
            cr_expect_eq(pick_simple(p, "10.9.9.9") >= 0, true);
            {
                struct req q;
                struct px_choice c;

                req_set(&q, "GET /", "Host: a\n", "10.9.9.9", 1);
                px_lb_pick(p, &q.rv, excl, &c);
                cr_expect(c.real && c.real->index != 5);
                /* everything excluded or unusable: no real */
                excl[0] = 0x7f;
                px_lb_pick(p, &q.rv, excl, &c);
                cr_expect_null(c.real);
            }
            svc_free(t);
        }
    }
}

/* ---- persistence --------------------------------------------------------------------- */

TestSuite(px_lb_persist);

/* A client's request for each type: the key differs by client number k. */
static void client_req(struct req *q, enum xlb_cfg_persist pt, int k, const char *cookie)
{
    char line[128], fields[512], ip[32];

    snprintf(line, sizeof(line), "GET /page?id=%d&item=%d", k % 3, k);
    snprintf(ip, sizeof(ip), "10.2.%d.%d", k / 200, k % 200 + 1);
    switch (pt) {
    case XLB_PERSIST_HASH_COOKIES:
        snprintf(fields, sizeof(fields), "Host: a\nCookie: s=%d; t=x\n", k);
        break;
    case XLB_PERSIST_SUPER_HTTP:
        snprintf(fields, sizeof(fields), "Host: a\nUser-Agent: ua/%d\nAuthorization: b\n", k);
        break;
    case XLB_PERSIST_URL_HASH:
        snprintf(line, sizeof(line), "GET /u/%d", k);
        snprintf(fields, sizeof(fields), "Host: a\n");
        break;
    case XLB_PERSIST_HOST:
        snprintf(fields, sizeof(fields), "Host: H%d.example:80\n", k);
        break;
    case XLB_PERSIST_HEADER:
        snprintf(fields, sizeof(fields), "Host: a\nX-User: u%d\n", k);
        break;
    default:
        snprintf(fields, sizeof(fields), "Host: a\n%s", cookie ? cookie : "");
        break;
    }
    if (pt != XLB_PERSIST_SOURCE_IP && pt != XLB_PERSIST_ACTIVE_COOKIE &&
        pt != XLB_PERSIST_SERVER_COOKIE)
        snprintf(ip, sizeof(ip), "10.3.0.%d", k % 2 + 1);     /* not the key */
    req_set(q, line, fields, ip, (uint16_t)(2000 + k));
}

/* A response of real r setting cookie SID=v (the request reader makes the
 * fields; only they matter). */
static void learn(struct px_pool *p, int r, const char *v)
{
    struct req q;
    char f[256];

    snprintf(f, sizeof(f), "Set-Cookie: other=1; Path=/\nSet-Cookie: SID=%s; Path=/; HttpOnly\n",
             v);
    req_set(&q, "GET /", f, "10.0.0.1", 1);
    px_lb_learn(p, &p->reals[r], q.buf, &q.h, px_now_ms());
}

/* For every type: one client stays on one real across 50 picks (between
 * other clients' picks), and 200 clients spread over all reals. */
Test(px_lb_persist, every_type_sticks_and_spreads)
{
    static const enum xlb_cfg_persist all[] = {
        XLB_PERSIST_SOURCE_IP, XLB_PERSIST_ACTIVE_COOKIE, XLB_PERSIST_SERVER_COOKIE,
        XLB_PERSIST_HASH_COOKIES, XLB_PERSIST_SUPER_HTTP, XLB_PERSIST_URL_HASH,
        XLB_PERSIST_HOST, XLB_PERSIST_QUERY_ITEM, XLB_PERSIST_HEADER,
    };

    for (size_t ti = 0; ti < sizeof(all) / sizeof(all[0]); ti++) {
        enum xlb_cfg_persist pt = all[ti];
        struct tsvc *t = one(XLB_SCHED_WRR, pt, 3, NULL);
        struct px_pool *p = &t->pools[0];
        static char cookies[200][200];
        int real_of[200], cnt[3] = { 0 };

        if (pt == XLB_PERSIST_SERVER_COOKIE)
            snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "SID");
        if (pt == XLB_PERSIST_QUERY_ITEM)
            snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "item");
        if (pt == XLB_PERSIST_HEADER)
            snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "x-user");
        svc_init(t, key_a);
        /* first visits */
        for (int k = 0; k < 200; k++) {
            struct req q;
            struct px_choice c;

            client_req(&q, pt, k, NULL);
            real_of[k] = pick(p, &q, &c);
            cr_assert(real_of[k] >= 0);
            cnt[real_of[k]]++;
            cookies[k][0] = '\0';
            if (pt == XLB_PERSIST_ACTIVE_COOKIE) {
                cr_assert(c.set_cookie);
                cookie_field(&c, cookies[k], sizeof(cookies[k]));
            } else if (pt == XLB_PERSIST_SERVER_COOKIE) {
                char v[32];

                snprintf(v, sizeof(v), "sess%d", k);
                learn(p, real_of[k], v);
                snprintf(cookies[k], sizeof(cookies[k]), "Cookie: SID=sess%d\n", k);
            }
        }
        for (int i = 0; i < 3; i++)
            cr_expect_geq(cnt[i], 30, "type %s: real %d has %d of 200",
                          xlb_cfg_persist_name(pt), i, cnt[i]);
        /* returning visits, client 7 fifty times between the others */
        for (int n = 0; n < 50; n++) {
            for (int k = n * 4; k < n * 4 + 4; k++) {
                struct req q;
                struct px_choice c;

                client_req(&q, pt, k, cookies[k]);
                cr_expect_eq(pick(p, &q, &c), real_of[k], "type %s client %d",
                             xlb_cfg_persist_name(pt), k);
                cr_expect(c.persisted);
                cr_expect(!c.set_cookie);
            }
            {
                struct req q;

                client_req(&q, pt, 7, cookies[7]);
                cr_expect_eq(pick(p, &q, NULL), real_of[7], "type %s", xlb_cfg_persist_name(pt));
            }
        }
        svc_free(t);
    }
}

/* The HMAC-SHA256 of cookies and ids: RFC 4231 case 1, then OpenSSL's
 * answer for every length across the block boundaries, with the portable
 * block function and with the CPU's SHA instructions (when it has them). */
static void hmac_sha256_check(void);

Test(px_lb_persist, hmac_sha256)
{
    cr_assert_eq(px_sha256_select(PX_SHA_PORTABLE), 0);
    hmac_sha256_check();
    if (px_sha256_select(PX_SHA_CPU) == 0)
        hmac_sha256_check();
    else
        cr_log_warn("this CPU has no SHA instructions: only the portable SHA-256 was tested");
    cr_assert_eq(px_sha256_select(PX_SHA_AUTO), 0);
    cr_expect_eq(px_sha256_select(99), -EINVAL);
}

static void hmac_sha256_check(void)
{
    static const uint8_t want1[32] = {
        0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
        0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7,
    };
    uint8_t key[32] = { 0 }, msg[300], mac[32], ref[32];
    const void *parts[3];
    size_t lens[3];
    unsigned rl;

    memset(key, 0x0b, 20);
    parts[0] = "Hi There";
    lens[0] = 8;
    px_hmac_sha256(key, parts, lens, 1, mac);
    cr_expect_arr_eq(mac, want1, 32);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    for (size_t n = 0; n <= sizeof(msg); n++) {
        /* in three parts of uneven sizes */
        parts[0] = msg;
        lens[0] = n / 3;
        parts[1] = msg + n / 3;
        lens[1] = n / 2 - n / 3;
        parts[2] = msg + n / 2;
        lens[2] = n - n / 2;
        px_hmac_sha256(key_a, parts, lens, 3, mac);
        cr_assert(HMAC(EVP_sha256(), key_a, 32, msg, n, ref, &rl));
        cr_assert_arr_eq(mac, ref, 32, "length %zu", n);
    }
}

Test(px_lb_persist, active_cookie_integrity)
{
    struct tsvc *t = one(XLB_SCHED_WRR, XLB_PERSIST_ACTIVE_COOKIE, 3, NULL);
    struct tsvc *o = one(XLB_SCHED_WRR, XLB_PERSIST_ACTIVE_COOKIE, 3, NULL);
    struct px_pool *p = &t->pools[0];
    struct px_choice c, c2;
    char field[256], bad[256], *v;
    struct req q;
    int r;

    svc_init(t, key_a);
    svc_init(o, key_b);
    cr_expect(memcmp(t->reals[0][0].id, o->reals[0][0].id, 8), "ids depend on the key");
    cr_expect(memcmp(t->reals[0][0].id, t->reals[0][1].id, 8));
    req_set(&q, "GET /", "Host: a\n", "10.0.0.1", 1);
    r = pick(p, &q, &c);
    cr_assert(r >= 0 && c.set_cookie && !c.persisted);
    /* XLBID=<43 chars>; Path=/; Max-Age=300; Secure; HttpOnly; SameSite=Lax */
    cr_expect_eq(strncmp(c.cookie, "XLBID=", 6), 0, "%s", c.cookie);
    cr_expect_eq(strcspn(c.cookie + 6, ";"), 43u);
    cr_expect_str_eq(c.cookie + 49, "; Path=/; Max-Age=300; Secure; HttpOnly; SameSite=Lax");
    cr_expect_null(strstr(c.cookie, "198.18"));
    {
        /* the value is id || expiry || mac as documented, checked with OpenSSL */
        static const char al[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint8_t raw[33], msg[128], ref[32];
        uint32_t acc = 0;
        int bits = 0, o = 0, m;
        unsigned rl;

        for (int i = 0; i < 43; i++) {
            acc = acc << 6 | (uint32_t)(strchr(al, c.cookie[6 + i]) - al);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                raw[o++] = (uint8_t)(acc >> bits);
            }
        }
        cr_assert_eq(o, 32);
        m = snprintf((char *)msg, sizeof(msg), "real%cweb%cp%cp-r%d", 0, 0, 0, r);
        HMAC(EVP_sha256(), key_a, 32, msg, (size_t)m, ref, &rl);
        cr_expect_arr_eq(raw, ref, 8, "id");
        cr_expect_arr_eq(raw, t->reals[0][r].id, 8);
        memcpy(msg, "web\0p\0", 6);
        memcpy(msg + 6, raw, 16);
        HMAC(EVP_sha256(), key_a, 32, msg, 22, ref, &rl);
        cr_expect_arr_eq(raw + 16, ref, 16, "mac");
        {
            uint64_t exp = 0;

            for (int i = 8; i < 16; i++)
                exp = exp << 8 | raw[i];
            cr_expect(llabs((long long)exp - (long long)time(NULL) - 300) <= 2, "expiry");
        }
    }
    cookie_field(&c, field, sizeof(field));

    /* roundtrip */
    req_set(&q, "GET /", field, "10.0.0.99", 5);
    cr_expect_eq(pick(p, &q, &c2), r);
    cr_expect(c2.persisted && !c2.set_cookie);

    /* every single changed character makes it absent */
    v = strstr(field, "XLBID=") + 6;
    for (int i = 0; i < 43; i++) {
        snprintf(bad, sizeof(bad), "%s", field);
        bad[(v - field) + i] = bad[(v - field) + i] == 'A' ? 'B' : 'A';
        req_set(&q, "GET /", bad, "10.0.0.1", 1);
        pick(p, &q, &c2);
        cr_expect(!c2.persisted && c2.set_cookie, "byte %d", i);
    }
    /* truncated, padded, garbage */
    snprintf(bad, sizeof(bad), "Cookie: XLBID=%.42s\n", v);
    req_set(&q, "GET /", bad, "10.0.0.1", 1);
    pick(p, &q, &c2);
    cr_expect(!c2.persisted && c2.set_cookie);
    req_set(&q, "GET /", "Cookie: XLBID=\n", "10.0.0.1", 1);
    pick(p, &q, &c2);
    cr_expect(!c2.persisted && c2.set_cookie);

    /* another node's key */
    req_set(&q, "GET /", field, "10.0.0.1", 1);
    pick(&o->pools[0], &q, &c2);
    cr_expect(!c2.persisted && c2.set_cookie);

    /* below half of its lifetime: kept and re-issued */
    atomic_store(&px_now_offset_ms, 200000);
    req_set(&q, "GET /", field, "10.0.0.1", 1);
    cr_expect_eq(pick(p, &q, &c2), r);
    cr_expect(c2.persisted && c2.set_cookie);
    /* expired */
    atomic_store(&px_now_offset_ms, 301000);
    req_set(&q, "GET /", field, "10.0.0.1", 1);
    pick(p, &q, &c2);
    cr_expect(!c2.persisted && c2.set_cookie);
    atomic_store(&px_now_offset_ms, 0);
    svc_free(t);
    svc_free(o);
}

Test(px_lb_persist, replaced_when_down_kept_when_drained)
{
    static const enum xlb_cfg_persist all[] = { XLB_PERSIST_ACTIVE_COOKIE,
                                                XLB_PERSIST_SOURCE_IP,
                                                XLB_PERSIST_SERVER_COOKIE,
                                                XLB_PERSIST_HEADER };

    for (size_t ti = 0; ti < sizeof(all) / sizeof(all[0]); ti++) {
        enum xlb_cfg_persist pt = all[ti];
        struct tsvc *t = one(XLB_SCHED_WRR, pt, 3, NULL);
        struct px_pool *p = &t->pools[0];
        char field[256] = "";
        struct px_choice c;
        struct req q;
        int r, r2;

        snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "%s",
                 pt == XLB_PERSIST_SERVER_COOKIE ? "SID" : pt == XLB_PERSIST_HEADER ? "x-user" : "");
        svc_init(t, key_a);
        client_req(&q, pt, 5, NULL);
        r = pick(p, &q, &c);
        if (pt == XLB_PERSIST_ACTIVE_COOKIE) {
            cookie_field(&c, field, sizeof(field));
        } else if (pt == XLB_PERSIST_SERVER_COOKIE) {
            learn(p, r, "abc");
            snprintf(field, sizeof(field), "Cookie: SID=abc\n");
        }
        /* drained, weight 0: kept */
        set_state(p, r, XLB_L7_DRAIN);
        atomic_store(&t->reals[0][r].weight, 0);
        px_lb_refresh(p);
        for (int i = 0; i < 10; i++) {
            client_req(&q, pt, 5, field);
            cr_expect_eq(pick(p, &q, &c), r, "%s: drained keeps", xlb_cfg_persist_name(pt));
            cr_expect(c.persisted && !c.set_cookie);
        }
        /* but no new client goes there (hashes may: they keep the table) */
        for (int k = 100; k < 130 && pt != XLB_PERSIST_HEADER; k++) {
            client_req(&q, pt, k, NULL);
            cr_expect_neq(pick(p, &q, NULL), r);
        }
        /* passively failed, then down: replaced, and the replacement sticks */
        set_state(p, r, XLB_L7_UP);
        atomic_store(&t->reals[0][r].weight, 100);
        px_lb_refresh(p);
        atomic_store(&t->reals[0][r].failed_until_ms, px_now_ms() + 60000);
        client_req(&q, pt, 5, field);
        r2 = pick(p, &q, &c);
        cr_expect(r2 >= 0 && r2 != r, "%s: failed replaced", xlb_cfg_persist_name(pt));
        atomic_store(&t->reals[0][r].failed_until_ms, 0);
        set_state(p, r, XLB_L7_DOWN);
        px_lb_refresh(p);
        client_req(&q, pt, 5, field);
        r2 = pick(p, &q, &c);
        cr_expect(r2 >= 0 && r2 != r, "%s: down replaced", xlb_cfg_persist_name(pt));
        if (pt == XLB_PERSIST_ACTIVE_COOKIE) {
            cr_expect(c.set_cookie, "cookie rewritten");
            cookie_field(&c, field, sizeof(field));
        }
        for (int i = 0; i < 10; i++) {
            client_req(&q, pt, 5, field);
            cr_expect_eq(pick(p, &q, &c), r2, "%s: replacement sticks", xlb_cfg_persist_name(pt));
            cr_expect(!c.set_cookie);
        }
        svc_free(t);
    }
}

Test(px_lb_persist, hash_moves_only_the_down_reals_clients)
{
    struct tsvc *t = one(XLB_SCHED_WRR, XLB_PERSIST_URL_HASH, 4, NULL);
    struct px_pool *p = &t->pools[0];
    int before[300], lost = 0, others = 0;

    svc_init(t, key_a);
    for (int k = 0; k < 300; k++) {
        struct req q;

        client_req(&q, XLB_PERSIST_URL_HASH, k, NULL);
        before[k] = pick(p, &q, NULL);
    }
    set_state(p, 2, XLB_L7_DRAIN);
    px_lb_refresh(p);
    for (int k = 0; k < 300; k++) {
        struct req q;

        client_req(&q, XLB_PERSIST_URL_HASH, k, NULL);
        cr_expect_eq(pick(p, &q, NULL), before[k], "drain moves nobody");
    }
    set_state(p, 2, XLB_L7_DOWN);
    px_lb_refresh(p);
    for (int k = 0; k < 300; k++) {
        struct req q;
        int r;

        client_req(&q, XLB_PERSIST_URL_HASH, k, NULL);
        r = pick(p, &q, NULL);
        cr_expect_neq(r, 2);
        if (before[k] == 2)
            lost++;
        else
            others += r != before[k];
    }
    cr_expect_gt(lost, 30);
    cr_expect_leq(others * 20, 300 - lost, "%d others moved", others);
    svc_free(t);
}

Test(px_lb_persist, server_cookie_learn)
{
    struct tsvc *t = one(XLB_SCHED_RR, XLB_PERSIST_SERVER_COOKIE, 3, NULL);
    struct px_pool *p = &t->pools[0];
    struct px_choice c;
    struct req q;

    snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "JSESSIONID");
    svc_init(t, key_a);
    learn(p, 2, "zzz");         /* another name: ignored */
    {
        char f[128];

        snprintf(f, sizeof(f), "Set-Cookie: JSESSIONID=node2x; Path=/\n");
        req_set(&q, "GET /", f, "10.0.0.1", 1);
        px_lb_learn(p, &p->reals[2], q.buf, &q.h, px_now_ms());
        snprintf(f, sizeof(f), "Set-Cookie: JSESSIONID=node0x\n");
        req_set(&q, "GET /", f, "10.0.0.1", 1);
        px_lb_learn(p, &p->reals[0], q.buf, &q.h, px_now_ms());
    }
    for (int i = 0; i < 20; i++) {
        req_set(&q, "GET /", "Cookie: a=b; JSESSIONID=node2x\n", "10.0.0.1", (uint16_t)i);
        cr_expect_eq(pick(p, &q, &c), 2);
        cr_expect(c.persisted);
        req_set(&q, "GET /", "Cookie: JSESSIONID=node0x\n", "10.0.0.1", (uint16_t)i);
        cr_expect_eq(pick(p, &q, &c), 0);
    }
    /* unknown value: the scheduler */
    req_set(&q, "GET /", "Cookie: JSESSIONID=nobody\n", "10.0.0.1", 1);
    pick(p, &q, &c);
    cr_expect(!c.persisted);
    /* the record expires timeout after its last use */
    atomic_store(&px_now_offset_ms, 299000);
    req_set(&q, "GET /", "Cookie: JSESSIONID=node2x\n", "10.0.0.1", 1);
    cr_expect_eq(pick(p, &q, &c), 2);
    atomic_store(&px_now_offset_ms, 299000 + 301000);
    pick(p, &q, &c);
    cr_expect(!c.persisted);
    atomic_store(&px_now_offset_ms, 0);
    svc_free(t);
}

Test(px_lb_persist, source_ip_netmask_and_timeout)
{
    struct tsvc *t = one(XLB_SCHED_RR, XLB_PERSIST_SOURCE_IP, 4, NULL);
    struct px_pool *p = &t->pools[0];
    struct px_choice c;
    struct req q;
    int a, b, same = 0;

    t->subs[0].persistence.netmask4 = 24;
    t->subs[0].persistence.netmask6 = 64;
    svc_init(t, key_a);
    for (int n = 0; n < 16; n++) {
        char ip1[32], ip2[32];

        snprintf(ip1, sizeof(ip1), "10.5.%d.1", n);
        snprintf(ip2, sizeof(ip2), "10.5.%d.200", n);
        a = pick_simple(p, ip1);
        b = pick_simple(p, ip2);
        cr_expect_eq(a, b, "one /24, one real");
    }
    /* /24 groups are spread by rr: 16 groups over 4 reals */
    for (int n = 0; n < 16; n += 4) {
        char ip[32];

        snprintf(ip, sizeof(ip), "10.5.%d.9", n);
        same += pick_simple(p, ip) == pick_simple(p, "10.5.1.9");
    }
    cr_expect_lt(same, 4);
    /* IPv6 /64, and IPv4-mapped addresses are IPv4 */
    cr_expect_eq(pick_simple(p, "fd00:1:2:3::1"), pick_simple(p, "fd00:1:2:3:ffff::9"));
    cr_expect_eq(pick_simple(p, "::ffff:10.5.3.7"), pick_simple(p, "10.5.3.1"));

    /* timeout restarts on each use, ends timeout after the last one */
    req_set(&q, "GET /", "Host: a\n", "10.6.0.1", 1);
    a = pick(p, &q, &c);
    cr_expect(!c.persisted);
    for (int i = 1; i <= 3; i++) {
        atomic_store(&px_now_offset_ms, 250000 * i);
        cr_expect_eq(pick(p, &q, &c), a);
        cr_expect(c.persisted, "use %d", i);
    }
    atomic_store(&px_now_offset_ms, 750000 + 300000);
    pick(p, &q, &c);
    cr_expect(!c.persisted, "expired");
    atomic_store(&px_now_offset_ms, 0);
    svc_free(t);
}

Test(px_lb_persist, fallback_source_ip)
{
    static const enum xlb_cfg_persist all[] = { XLB_PERSIST_ACTIVE_COOKIE,
                                                XLB_PERSIST_HEADER, XLB_PERSIST_QUERY_ITEM,
                                                XLB_PERSIST_SERVER_COOKIE };

    for (size_t ti = 0; ti < sizeof(all) / sizeof(all[0]); ti++) {
        struct tsvc *t = one(XLB_SCHED_RR, all[ti], 3, NULL);
        struct px_pool *p = &t->pools[0];
        struct px_choice c;
        struct req q;
        int r;

        snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "%s",
                 all[ti] == XLB_PERSIST_ACTIVE_COOKIE ? "" : "k");
        t->subs[0].persistence.fallback = XLB_PERSIST_SOURCE_IP;
        svc_init(t, key_a);
        req_set(&q, "GET /x", "Host: a\n", "10.7.0.1", 1);
        r = pick(p, &q, &c);
        cr_expect(!c.persisted);
        for (int i = 0; i < 10; i++) {
            req_set(&q, "GET /x", "Host: a\n", "10.7.0.2", 1);
            pick(p, &q, NULL);      /* another client moves rr on */
            req_set(&q, "GET /x", "Host: a\n", "10.7.0.1", (uint16_t)(2 + i));
            cr_expect_eq(pick(p, &q, &c), r, "%s", xlb_cfg_persist_name(all[ti]));
            cr_expect(c.persisted);
            if (all[ti] == XLB_PERSIST_ACTIVE_COOKIE)
                cr_expect(c.set_cookie, "the client gets a cookie for that real");
        }
        svc_free(t);
    }

    /* without fallback, no record: rr moves the client */
    struct tsvc *t = one(XLB_SCHED_RR, XLB_PERSIST_HEADER, 3, NULL);
    int seen[3] = { 0 };

    snprintf(t->subs[0].persistence.name, XLB_CFG_STR_MAX, "k");
    svc_init(t, key_a);
    for (int i = 0; i < 6; i++)
        seen[pick_simple(&t->pools[0], "10.7.0.1")]++;
    cr_expect(seen[0] == 2 && seen[1] == 2 && seen[2] == 2);
    svc_free(t);
}

/* ---- threads ----------------------------------------------------------------------------- */

TestSuite(px_lb_threads, .timeout = 60);

static _Atomic int pickers_done;

struct thr {
    struct tsvc *t;
    int id;
    long bad, none;
};

static void *picker(void *arg)
{
    struct thr *a = arg;
    struct req q;
    char ip[32], f[160];

    for (int i = 0; i < 100000; i++) {
        int pi = i % a->t->svc.n_pools;
        struct px_pool *p = &a->t->pools[pi];
        struct px_choice c;

        snprintf(ip, sizeof(ip), "10.%d.%d.%d", a->id, i >> 8 & 255, i & 255);
        snprintf(f, sizeof(f), "Host: h%d\nCookie: SID=s%d\n", i & 1023, i & 255);
        req_set(&q, "GET /x", f, ip, (uint16_t)i);
        px_lb_pick(p, &q.rv, NULL, &c);
        if (!c.real)
            a->none++;
        else if (c.real->pool != p || c.real->index >= (uint32_t)p->n_reals)
            a->bad++;
        else if (i % 64 == 0)
            px_lb_learn(p, c.real, q.buf, &q.h, q.rv.now_ms);
    }
    atomic_fetch_add(&pickers_done, 1);
    return NULL;
}

Test(px_lb_threads, picks_during_refreshes)
{
    struct tsvc *t = svc_new("mt");
    static const enum xlb_cfg_sched s[] = { XLB_SCHED_WRR, XLB_SCHED_SH, XLB_SCHED_WLC,
                                            XLB_SCHED_RR, XLB_SCHED_MAGLEV, XLB_SCHED_WRR };
    static const enum xlb_cfg_persist pt[] = { XLB_PERSIST_NONE, XLB_PERSIST_SOURCE_IP,
                                               XLB_PERSIST_ACTIVE_COOKIE,
                                               XLB_PERSIST_SERVER_COOKIE, XLB_PERSIST_HOST,
                                               XLB_PERSIST_HASH_COOKIES };
    struct thr a[4];
    pthread_t th[4];

    t->cfg.ring_size = 1021;    /* quick rebuilds, many of them */

    for (int i = 0; i < 6; i++) {
        char n[8];

        snprintf(n, sizeof(n), "p%d", i);
        add_pool(t, n, s[i], pt[i], 5, NULL);
        snprintf(t->subs[i].persistence.name, XLB_CFG_STR_MAX, "SID");
    }
    svc_init(t, key_a);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr){ .t = t, .id = i };
        cr_assert_eq(pthread_create(&th[i], NULL, picker, &a[i]), 0);
    }
    /* real 0 always up; the others flap, weights change */
    for (int round = 0; round < 1000000 && atomic_load(&pickers_done) < 4; round++) {
        for (int p = 0; p < 6; p++) {
            for (int r = 1; r < 5; r++) {
                set_state(&t->pools[p], r, (uint32_t)((round + r + p) % 4));
                atomic_store(&t->reals[p][r].weight, (uint32_t)((round * 7 + r) % 5) * 50);
            }
            px_lb_refresh(&t->pools[p]);
        }
        struct timespec ts = { 0, 200000 };

        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(a[i].bad, 0);
        cr_expect_eq(a[i].none, 0, "real 0 is always up");
    }
    svc_free(t);
}
