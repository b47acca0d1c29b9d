// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The agent's convergence, against real pinned maps: a config round-trips
 * to the maps (services, VIP entries of every port and protocol, reals with
 * weights and state flags, the table kind of each scheduler, the table
 * contents), a reload changes only what changed (real slots and generations
 * of unchanged reals stay), a second agent adopts the state of the first
 * (drain marker, slots), and the metrics of a running agent pass promtool.
 * The agent runs with no interface (load without attach) and its own pin
 * directory, removed afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "agent.h"
#include "harness.h"
#include "xlb_addr.h"

static char dir[128], bpffs[128], cfgpath[192];

static void write_cfg(const char *services)
{
    FILE *f = fopen(cfgpath, "w");

    cr_assert(f);
    fprintf(f, "node:\n  interfaces: []\n  bpffs: %s\n  conn_table_size: 4096\n"
            "  metrics: {enabled: false}\n  api: {enabled: false}\n"
            "  rebalance_interval: 100ms\nservices:\n%s", bpffs, services);
    fclose(f);
}

static void setup(void)
{
    xt_env_setup();
    snprintf(dir, sizeof(dir), "/tmp/xlbt-agent-%d", getpid());
    snprintf(bpffs, sizeof(bpffs), "/sys/fs/bpf/xlbt-agent-%d", getpid());
    snprintf(cfgpath, sizeof(cfgpath), "%s/xlb.yaml", dir);
    cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %s", dir, strerror(errno));
}

static void teardown(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, bpffs);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(agent_maps, .init = setup, .fini = teardown);

static const char svc_v1[] =
"  - name: web\n"
"    address: 198.18.10.10\n"
"    ports: [80, 443, \"8000-8002\"]\n"
"    protocol: tcp+udp\n"
"    forwarding: ipip\n"
"    scheduler: wrr\n"
"    health_check: {type: none}\n"
"    reals:\n"
"      - {name: a, address: 198.18.0.16, weight: 3}\n"
"      - {name: b, address: 198.18.0.17, weight: 1}\n"
"      - {name: c, address: 198.18.0.18, weight: 0}\n"
"  - name: hash\n"
"    address: fd00:10::10\n"
"    ports: [53]\n"
"    protocol: udp\n"
"    forwarding: gue\n"
"    scheduler: sh\n"
"    health_check: {type: none}\n"
"    reals:\n"
"      - {name: x, address: \"fd00::10\", weight: 100}\n"
"      - {name: y, address: \"fd00::11\", weight: 100, enabled: false}\n";

/* Count the VIP entries of vs_id and check one of them. */
static int vips_of(struct agent *a, uint32_t vs_id, uint16_t port, uint8_t proto, bool *found)
{
    struct xlb_vip_key k[64];
    int n = xlb_vip_list(&a->maps, vs_id, k, 64);

    *found = false;
    for (int i = 0; i < n && i < 64; i++)
        *found |= ntohs(k[i].port_be) == port && k[i].proto == proto;
    return n;
}

/* The selection table of vs_id: its size and how often each real id occurs. */
static uint32_t table_of(struct agent *a, uint32_t vs_id, uint32_t *count, uint32_t nids)
{
    uint32_t size = 0, idx = 0, v;
    int fd = xlb_sel_live_fd(&a->maps, vs_id);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bpf_map_lookup_elem(fd, &idx, &size), 0);
    memset(count, 0, nids * sizeof(*count));
    for (idx = 1; idx <= size; idx++) {
        cr_assert_eq(bpf_map_lookup_elem(fd, &idx, &v), 0);
        if (v < nids)
            count[v]++;
    }
    close(fd);
    return size;
}

static void start(struct agent *a, uv_loop_t *loop)
{
    char err[1024];

    cr_assert_eq(uv_loop_init(loop), 0);
    cr_assert_eq(agent_start(a, loop, cfgpath, err, sizeof(err)), 0, "agent_start: %s", err);
}

static void stop(struct agent *a, uv_loop_t *loop)
{
    agent_stop(a);
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0, "a handle was left open");
}

Test(agent_maps, config_round_trips_to_the_maps)
{
    struct agent a;
    uv_loop_t loop;
    struct agent_service *web, *hash;
    struct xlb_service s;
    struct xlb_real r;
    uint32_t count[XLB_MAX_REALS], size;
    bool found;

    write_cfg(svc_v1);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    hash = agent_find_service(&a, "hash");
    cr_assert(web && hash);

    cr_assert_eq(bpf_map_lookup_elem(a.maps.services, &web->vs_id, &s), 0);
    cr_assert_str_eq(s.name, "web");
    cr_assert_eq(s.method, XLB_FWD_IPIP);
    cr_assert(s.flags & XLB_VS_F_SEQ, "wrr is a sequence table");
    cr_assert_eq(vips_of(&a, web->vs_id, 8001, IPPROTO_UDP, &found), 5 * 2);
    cr_assert(found, "8001/udp is a VIP entry of web");
    cr_assert_eq(bpf_map_lookup_elem(a.maps.services, &hash->vs_id, &s), 0);
    cr_assert_eq(s.method, XLB_FWD_GUE);
    cr_assert(s.flags & XLB_VS_F_SRC_HASH, "sh hashes the source address");
    cr_assert_not(s.flags & XLB_VS_F_SEQ);
    cr_assert_eq(vips_of(&a, hash->vs_id, 53, IPPROTO_UDP, &found), 1);
    cr_assert(found);

    /* Reals with their weights; the weight-0 real has no share. */
    for (int i = 0; i < 3; i++) {
        static const uint32_t w[] = { 3, 1, 0 };

        cr_assert_eq(xlb_real_get(&a.maps, web->reals[i]->real_id, &r), 0);
        cr_assert_eq(r.weight, w[i], "real %d weight %u", i, r.weight);
        cr_assert_eq(r.vs_id, web->vs_id);
    }
    size = table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(size, 4, "3:1 reduces to a sequence of 4, not %u", size);
    cr_assert_eq(count[web->reals[0]->real_id], 3);
    cr_assert_eq(count[web->reals[1]->real_id], 1);
    cr_assert_eq(count[web->reals[2]->real_id], 0);

    /* enabled: false starts halted, marked in the slot, out of the table. */
    cr_assert_eq(agent_real_state(hash->reals[1]), RS_HALT);
    cr_assert_eq(xlb_real_get(&a.maps, hash->reals[1]->real_id, &r), 0);
    cr_assert(r.flags & XLB_REAL_F_HALT);
    size = table_of(&a, hash->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(size, XLB_RING_DEFAULT);
    cr_assert_eq(count[hash->reals[0]->real_id], XLB_RING_DEFAULT);
    stop(&a, &loop);
}

Test(agent_maps, reload_changes_only_what_changed)
{
    static const char svc_v2[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80, 443]\n"
    "    protocol: tcp\n"
    "    forwarding: ipip\n"
    "    scheduler: maglev\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16, weight: 3}\n"
    "      - {name: d, address: 198.18.0.19, weight: 1}\n";
    struct agent a;
    uv_loop_t loop;
    struct agent_service *web;
    struct xlb_real before, before_b, after;
    struct xlb_service s;
    uint32_t vs_id, id_a, id_b, count[XLB_MAX_REALS];
    char err[1024];
    bool found;

    write_cfg(svc_v1);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    vs_id = web->vs_id;
    id_a = web->reals[0]->real_id;
    id_b = web->reals[1]->real_id;
    cr_assert_eq(xlb_real_get(&a.maps, id_a, &before), 0);
    cr_assert_eq(xlb_real_get(&a.maps, id_b, &before_b), 0);

    /* A broken file is refused and nothing changes. */
    write_cfg("  - name: web\n    adress: 198.18.10.10\n");
    cr_assert_neq(agent_reload(&a, err, sizeof(err)), 0);
    cr_assert(strstr(err, "xlb.yaml:10:5:"), "error names the position: %s", err);
    cr_assert_eq(a.reloads_failed, 1);
    cr_assert(agent_find_service(&a, "hash"), "the running config stays");

    write_cfg(svc_v2);
    cr_assert_eq(agent_reload(&a, err, sizeof(err)), 0, "reload: %s", err);
    web = agent_find_service(&a, "web");
    cr_assert_eq(web->vs_id, vs_id, "web keeps its slot");
    cr_assert_null(agent_find_service(&a, "hash"), "hash was removed");
    cr_assert_eq(web->reals[0]->real_id, id_a, "real a keeps its slot");
    cr_assert_eq(xlb_real_get(&a.maps, id_a, &after), 0);
    cr_assert_eq(after.gen, before.gen, "and its generation: its flows stay");
    cr_assert(xlb_real_get(&a.maps, id_b, &after) == -ENOENT || after.vs_id != vs_id ||
              after.gen != before_b.gen, "b is gone");
    cr_assert_eq(bpf_map_lookup_elem(a.maps.services, &vs_id, &s), 0);
    cr_assert_not(s.flags & (XLB_VS_F_SEQ | XLB_VS_F_SRC_HASH), "maglev: 5-tuple hash");
    cr_assert_eq(vips_of(&a, vs_id, 443, IPPROTO_TCP, &found), 2);
    cr_assert(found);
    vips_of(&a, vs_id, 80, IPPROTO_UDP, &found);
    cr_assert_not(found, "80/udp was removed");
    cr_assert_eq(table_of(&a, vs_id, count, XLB_MAX_REALS), XLB_RING_DEFAULT);
    cr_assert_eq(count[web->reals[0]->real_id] + count[web->reals[1]->real_id],
                 XLB_RING_DEFAULT);
    cr_assert(count[web->reals[0]->real_id] > 2 * count[web->reals[1]->real_id]);
    cr_assert_eq(a.reloads_ok, 1);
    stop(&a, &loop);
}

Test(agent_maps, restart_adopts_state)
{
    struct agent a;
    uv_loop_t loop;
    struct agent_service *web;
    uint32_t id, vs_id, count[XLB_MAX_REALS];
    char err[512];

    write_cfg(svc_v1);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    vs_id = web->vs_id;
    id = web->reals[0]->real_id;
    cr_assert_eq(agent_set_admin(web->reals[0], ADMIN_DRAIN, err, sizeof(err)), 0, "%s", err);
    table_of(&a, vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[id], 0, "a drained real has no share");
    stop(&a, &loop);

    start(&a, &loop);
    web = agent_find_service(&a, "web");
    cr_assert_eq(web->vs_id, vs_id);
    cr_assert_eq(web->reals[0]->real_id, id);
    cr_assert_eq(agent_real_state(web->reals[0]), RS_DRAIN, "drain survives a restart");
    cr_assert_eq(agent_set_admin(web->reals[0], ADMIN_NONE, err, sizeof(err)), 0, "%s", err);
    table_of(&a, vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[id], 3);
    stop(&a, &loop);
}

Test(agent_maps, metrics_pass_promtool)
{
    struct agent a;
    uv_loop_t loop;
    struct xlb_buf b = {};
    FILE *p;
    int rc;

    write_cfg(svc_v1);
    start(&a, &loop);
    cr_assert_eq(agent_metrics_write(&a, &b), 0);
    cr_assert(b.len > 0);
    cr_assert(memmem(b.data, b.len, "xlb_real_state{vs=\"hash\",rs=\"y\",state=\"halt\"} 1\n",
                     strlen("xlb_real_state{vs=\"hash\",rs=\"y\",state=\"halt\"} 1\n")),
              "one-hot state of y");
    p = popen("promtool check metrics", "w");
    cr_assert(p, "promtool (Debian package prometheus) is needed");
    fwrite(b.data, 1, b.len, p);
    rc = pclose(p);
    cr_assert_eq(rc, 0, "promtool check metrics failed (exit %d) on:\n%.*s", rc, (int)b.len,
                 b.data);
    xlb_buf_free(&b);
    stop(&a, &loop);
}

/* Place n established flows on real_id, as the data plane would. */
static void place_flows(struct agent *a, uint32_t vs_id, uint32_t real_id, int n)
{
    struct xlb_real r;

    cr_assert_eq(xlb_real_get(&a->maps, real_id, &r), 0);
    for (int i = 0; i < n; i++) {
        struct xlb_flow_key k = { .sport_be = htons(40000 + i), .dport_be = htons(80),
                                  .proto = IPPROTO_TCP, .family = XLB_FAMILY_V4 };
        struct xlb_flow_value v = { .real_id = real_id, .vs_id = vs_id, .real_gen = r.gen,
                                    .last_seen_ns = xlb_dp_clock_ns() };

        k.src.addr_be[0] = htonl(0xc6120002);   /* 198.18.0.2 */
        k.dst.addr_be[0] = htonl(0xc6120a0a);   /* 198.18.10.10 */
        cr_assert_eq(bpf_map_update_elem(a->maps.conns, &k, &v, BPF_ANY), 0);
    }
}

Test(agent_maps, max_conns_takes_a_full_real_out_of_the_table)
{
    static const char svc[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    scheduler: wlc\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16, weight: 1, max_conns: 5}\n"
    "      - {name: b, address: 198.18.0.17, weight: 1}\n";
    struct agent a;
    uv_loop_t loop;
    struct agent_service *web;
    uint32_t count[XLB_MAX_REALS];

    write_cfg(svc);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    agent_rebalance(&a);
    table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    cr_assert_gt(count[web->reals[0]->real_id], 0, "a has room");

    place_flows(&a, web->vs_id, web->reals[0]->real_id, 5);
    agent_rebalance(&a);
    cr_assert_eq(web->reals[0]->active, 5, "5 active flows counted, not %u",
                 web->reals[0]->active);
    cr_assert_not(agent_real_usable(web->reals[0]));
    table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[web->reals[0]->real_id], 0, "a at max_conns takes no new flows");
    cr_assert_gt(count[web->reals[1]->real_id], 0);
    cr_assert_eq(agent_real_state(web->reals[0]), RS_UP, "a full real is still up");
    {
        struct xlb_real r;

        cr_assert_eq(xlb_real_get(&a.maps, web->reals[0]->real_id, &r), 0);
        cr_assert(r.flags & XLB_REAL_F_FULL, "marked full: persistence skips it too");
        cr_assert_eq(xlb_real_get(&a.maps, web->reals[1]->real_id, &r), 0);
        cr_assert_not(r.flags & XLB_REAL_F_FULL);
    }
    stop(&a, &loop);
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Stop the loop once both reals of the service (t->data) have a load. */
static void stop_when_loads_read(uv_timer_t *t)
{
    struct agent_service *s = t->data;

    if (s->reals[0]->load >= 0 && s->reals[1]->load >= 0)
        uv_stop(t->loop);
}

/* 198.18.0.16 has a neighbour entry but no host: echo requests go
 * unanswered.  One service checks it by ICMP; the other service, which has
 * no check of its own, loses the real too (layer 3). */
Test(agent_maps, icmp_failure_takes_the_address_out_of_every_service)
{
    static const char svc[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: icmp, interval: 100ms, timeout: 50ms, rise: 1, fall: 1}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16}\n"
    "      - {name: b, address: 198.18.0.1}\n"
    "  - name: mail\n"
    "    address: 198.18.10.11\n"
    "    ports: [25]\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16}\n"
    "      - {name: c, address: 198.18.0.17}\n";
    struct agent a;
    uv_loop_t loop;
    uv_timer_t t;
    struct agent_service *web, *mail;
    uint32_t count[XLB_MAX_REALS];

    write_cfg(svc);
    start(&a, &loop);
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, stop_loop, 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    web = agent_find_service(&a, "web");
    mail = agent_find_service(&a, "mail");
    cr_assert_eq(agent_real_state(web->reals[0]), RS_DOWN, "no echo reply: a is down");
    cr_assert_eq(agent_real_state(web->reals[1]), RS_UP, "198.18.0.1 (this host) answers");
    cr_assert_eq(agent_real_state(mail->reals[0]), RS_DOWN, "a is down in mail too");
    cr_assert_eq(agent_real_state(mail->reals[1]), RS_UP, "c is not checked by icmp");
    table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[web->reals[0]->real_id], 0);
    table_of(&a, mail->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[mail->reals[0]->real_id], 0);
    cr_assert_gt(count[mail->reals[1]->real_id], 0);
    stop(&a, &loop);
}

Test(agent_maps, halt_reschedules_flows_only_with_drop_on_failure)
{
    static const char svc[] =
    "  - name: keep\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16}\n"
    "  - name: move\n"
    "    address: 198.18.10.11\n"
    "    ports: [80]\n"
    "    drop_on_failure: true\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16}\n";
    struct agent a;
    uv_loop_t loop;
    struct agent_real *k, *m;
    struct xlb_real r;
    char err[512];

    write_cfg(svc);
    start(&a, &loop);
    k = agent_find_service(&a, "keep")->reals[0];
    m = agent_find_service(&a, "move")->reals[0];
    cr_assert_eq(agent_set_admin(k, ADMIN_HALT, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(agent_set_admin(m, ADMIN_HALT, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(xlb_real_get(&a.maps, k->real_id, &r), 0);
    cr_assert_eq(r.flags & (XLB_REAL_F_HALT | XLB_REAL_F_RESCHED), XLB_REAL_F_HALT);
    cr_assert_eq(xlb_real_get(&a.maps, m->real_id, &r), 0);
    cr_assert_eq(r.flags & (XLB_REAL_F_HALT | XLB_REAL_F_RESCHED),
                 XLB_REAL_F_HALT | XLB_REAL_F_RESCHED);
    cr_assert_eq(agent_set_admin(m, ADMIN_DRAIN, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(xlb_real_get(&a.maps, m->real_id, &r), 0);
    cr_assert_eq(r.flags & (XLB_REAL_F_DRAIN | XLB_REAL_F_HALT | XLB_REAL_F_RESCHED),
                 XLB_REAL_F_DRAIN, "a drain never moves flows");
    stop(&a, &loop);
}

/* A tiny HTTP server on 127.0.0.1 and 127.0.0.2 that answers every request
 * with the load of that address. */
struct load_srv {
    int fd[2];
    const char *load[2];
    volatile int stop;
    pthread_t th;
};

static void *load_serve(void *arg)
{
    struct load_srv *s = arg;

    while (!s->stop) {
        struct pollfd p[2] = { { s->fd[0], POLLIN, 0 }, { s->fd[1], POLLIN, 0 } };

        if (poll(p, 2, 50) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char buf[2048], resp[256];
            int c;

            if (!(p[i].revents & POLLIN) || (c = accept(s->fd[i], NULL, NULL)) < 0)
                continue;
            if (read(c, buf, sizeof(buf)) > 0) {
                int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                                 "Connection: close\r\n\r\n%s", strlen(s->load[i]), s->load[i]);

                if (write(c, resp, n) != n)
                    break;
            }
            close(c);
        }
    }
    return NULL;
}

Test(agent_maps, adaptive_weights_follow_the_loads_reals_report)
{
    static const char svc[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    scheduler: adaptive\n"
    "    adaptive: {path: /load, port: 18080, interval: 1s}\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 127.0.0.1}\n"
    "      - {name: b, address: 127.0.0.2}\n";
    struct load_srv ls = { .load = { "25\n", "75\n" } };
    struct agent a;
    uv_loop_t loop;
    uv_timer_t t, deadline;
    struct agent_service *web;
    uint32_t count[XLB_MAX_REALS], ca, cb;

    cr_assert_eq(system("ip link set lo up"), 0);
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(18080),
                                   .sin_addr.s_addr = htonl(0x7f000001 + i) };

        ls.fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(ls.fd[i], 0);
        setsockopt(ls.fd[i], SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
        cr_assert_eq(bind(ls.fd[i], (struct sockaddr *)&sin, sizeof(sin)), 0, "bind: %s",
                     strerror(errno));
        cr_assert_eq(listen(ls.fd[i], 16), 0);
    }
    cr_assert_eq(pthread_create(&ls.th, NULL, load_serve, &ls), 0);

    write_cfg(svc);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    cr_assert_eq(count[web->reals[0]->real_id], count[web->reals[1]->real_id],
                 "no load read yet: plain round robin");
    /* Until both loads are read (the first fetch follows the start), at
     * most 5 s: a slow (sanitizer) build may take longer than the interval. */
    uv_timer_init(&loop, &t);
    t.data = web;
    uv_timer_start(&t, stop_when_loads_read, 50, 50);
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, stop_loop, 5000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    ls.stop = 1;
    pthread_join(ls.th, NULL);
    close(ls.fd[0]);
    close(ls.fd[1]);

    cr_assert_eq(web->reals[0]->load, 25, "load of a: %d", web->reals[0]->load);
    cr_assert_eq(web->reals[1]->load, 75, "load of b: %d", web->reals[1]->load);
    table_of(&a, web->vs_id, count, XLB_MAX_REALS);
    ca = count[web->reals[0]->real_id];
    cb = count[web->reals[1]->real_id];
    cr_assert_eq(ca, 3 * cb, "shares follow 100 - load (75:25): %u:%u", ca, cb);
    stop(&a, &loop);
}

/* A port moves to a service listed before its old owner, and a service is
 * renamed, in one reload. */
Test(agent_maps, reload_moves_a_port_and_renames_a_service)
{
    static const char v1[] =
    "  - name: a\n"
    "    address: 198.18.10.10\n"
    "    ports: [80, 443]\n"
    "    health_check: {type: none}\n"
    "    reals: [{name: r1, address: 198.18.0.16}]\n"
    "  - name: b\n"
    "    address: 198.18.10.11\n"
    "    ports: [25]\n"
    "    health_check: {type: none}\n"
    "    reals: [{name: r2, address: 198.18.0.17}]\n";
    static const char v2[] =
    "  - name: tls\n"
    "    address: 198.18.10.10\n"
    "    ports: [443]\n"
    "    health_check: {type: none}\n"
    "    reals: [{name: r3, address: 198.18.0.18}]\n"
    "  - name: a\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: none}\n"
    "    reals: [{name: r1, address: 198.18.0.16}]\n"
    "  - name: b-renamed\n"
    "    address: 198.18.10.11\n"
    "    ports: [25]\n"
    "    health_check: {type: none}\n"
    "    reals: [{name: r2, address: 198.18.0.17}]\n";
    struct agent a;
    uv_loop_t loop;
    struct xlb_vip_key k = { .port_be = htons(443), .proto = IPPROTO_TCP,
                             .family = XLB_FAMILY_V4 };
    struct xlb_vip_value v;
    uint32_t id_a;
    char err[1024];

    write_cfg(v1);
    start(&a, &loop);
    id_a = agent_find_service(&a, "a")->vs_id;
    write_cfg(v2);
    cr_assert_eq(agent_reload(&a, err, sizeof(err)), 0, "reload: %s", err);
    cr_assert_eq(agent_find_service(&a, "a")->vs_id, id_a, "a keeps its slot");
    k.addr.addr_be[0] = htonl(0xc6120a0a);
    cr_assert_eq(bpf_map_lookup_elem(a.maps.vips, &k, &v), 0);
    cr_assert_eq(v.vs_id, agent_find_service(&a, "tls")->vs_id, "443 belongs to tls now");
    cr_assert(agent_find_service(&a, "b-renamed"));
    cr_assert_eq(xlb_service_find(&a.maps, "b", NULL, NULL), -ENOENT, "b is gone");
    stop(&a, &loop);
}

/* A halt from `enabled: false` follows the file across a restart; an
 * operator's halt survives it. */
Test(agent_maps, restart_tells_config_halt_from_operator_halt)
{
    static const char v1[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16, enabled: false}\n"
    "      - {name: b, address: 198.18.0.17}\n";
    static const char v2[] =
    "  - name: web\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: none}\n"
    "    reals:\n"
    "      - {name: a, address: 198.18.0.16}\n"
    "      - {name: b, address: 198.18.0.17}\n";
    struct agent a;
    uv_loop_t loop;
    struct agent_service *web;
    char err[512];

    write_cfg(v1);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    cr_assert_eq(agent_real_state(web->reals[0]), RS_HALT);
    cr_assert_eq(agent_set_admin(web->reals[1], ADMIN_HALT, err, sizeof(err)), 0, "%s", err);
    stop(&a, &loop);

    write_cfg(v2);
    start(&a, &loop);
    web = agent_find_service(&a, "web");
    cr_assert_eq(agent_real_state(web->reals[0]), RS_UP, "the file enables a now");
    cr_assert_eq(agent_real_state(web->reals[1]), RS_HALT, "the operator's halt stays");
    stop(&a, &loop);
}

Test(agent_maps, persistence_acls_and_node_settings_reach_the_maps)
{
    static const char svc[] =
    "  - name: http\n"
    "    address: 198.18.10.10\n"
    "    ports: [80]\n"
    "    health_check: {type: none}\n"
    "    persistence: {type: source-ip, timeout: 10m, netmask: 24, share_by_address: true}\n"
    "    acl: {allow: [\"198.18.0.0/16\"], deny: [\"198.18.66.0/24\"]}\n"
    "    reals: [{name: a, address: 198.18.0.16}]\n"
    "  - name: https\n"
    "    address: 198.18.10.10\n"
    "    ports: [443]\n"
    "    health_check: {type: none}\n"
    "    persistence: {type: source-ip, timeout: 10m, netmask: 24, share_by_address: true}\n"
    "    reals: [{name: a, address: 198.18.0.16}]\n";
    struct agent a;
    uv_loop_t loop;
    struct xlb_persist_spec p1, p2;
    struct xlb_dp_config dc;
    struct xlb_service s;
    struct agent_service *http, *https;
    FILE *f;

    write_cfg(svc);
    /* Node settings go in the node block: rewrite it with them. */
    f = fopen(cfgpath, "w");
    cr_assert(f);
    fprintf(f, "node:\n  interfaces: []\n  bpffs: %s\n  conn_table_size: 4096\n"
            "  metrics: {enabled: false}\n  api: {enabled: false}\n"
            "  flood_threshold: 12345\n  udp_idle_timeout: 45s\n"
            "  deny: [\"198.19.0.0/16\"]\nservices:\n%s", bpffs, svc);
    fclose(f);
    start(&a, &loop);
    http = agent_find_service(&a, "http");
    https = agent_find_service(&a, "https");
    cr_assert_eq(xlb_persist_get(&a.maps, http->vs_id, &p1), 0);
    cr_assert_eq(xlb_persist_get(&a.maps, https->vs_id, &p2), 0);
    cr_assert_eq(p1.timeout_s, 600);
    cr_assert_eq(p1.netmask4, 24);
    cr_assert_neq(p1.group, 0, "share_by_address gives a group");
    cr_assert_eq(p1.group, p2.group, "one group for the services of one address");
    cr_assert_eq(bpf_map_lookup_elem(a.maps.services, &http->vs_id, &s), 0);
    cr_assert_eq(s.acl_flags & (XLB_ACL_F_ALLOW4 | XLB_ACL_F_DENY4),
                 XLB_ACL_F_ALLOW4 | XLB_ACL_F_DENY4);
    cr_assert_eq(bpf_map_lookup_elem(a.maps.services, &https->vs_id, &s), 0);
    cr_assert_eq(s.acl_flags, 0, "https has no lists");
    cr_assert_eq(xlb_config_get(&a.maps, &dc), 0);
    cr_assert_eq(dc.flood_threshold, 12345);
    cr_assert_eq(dc.udp_idle_timeout_s, 45);
    stop(&a, &loop);
}
