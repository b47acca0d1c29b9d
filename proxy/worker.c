/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * worker.c - worker threads.  Each has its own libuv loop and its own
 * listening socket per (service, port), bound with SO_REUSEPORT so that the
 * kernel spreads new connections over the workers; a connection stays on
 * the worker that accepted it.  Listeners bind with IP_FREEBIND, so the
 * proxy may start before the service address is on an interface.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy.h"
#include "xlb_addr.h"
#include "compress.h"

static void on_connection(uv_stream_t *s, int status)
{
    struct px_listener *l = s->data;

    if (status < 0) {
        px_log(PX_WARN, "%s: accept on port %u: %s", l->svc->name, l->port, uv_strerror(status));
        return;
    }
    px_conn_accept(l);
}

static int listen_one(struct px_worker *w, struct px_listener *l, char *err, size_t errlen)
{
    const struct xlb_cfg_service *c = l->svc->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    char ip[INET6_ADDRSTRLEN];
    int fd, one = 1, rc;

    memset(&ss, 0, sizeof(ss));
    if (c->family == XLB_FAMILY_V4) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;

        s->sin_family = AF_INET;
        s->sin_port = htons(l->port);
        memcpy(&s->sin_addr, &c->addr, 4);
        len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

        s->sin6_family = AF_INET6;
        s->sin6_port = htons(l->port);
        memcpy(&s->sin6_addr, &c->addr, 16);
        len = sizeof(*s);
    }
    xlb_addr_str(&c->addr, c->family, ip, sizeof(ip));
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto sys;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        setsockopt(fd, c->family == XLB_FAMILY_V4 ? IPPROTO_IP : IPPROTO_IPV6,
                   c->family == XLB_FAMILY_V4 ? IP_FREEBIND : IPV6_FREEBIND, &one, sizeof(one)))
        goto sys;
    if (c->family == XLB_FAMILY_V6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
        goto sys;
    if (bind(fd, (struct sockaddr *)&ss, len))
        goto sys;
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    if ((rc = uv_tcp_open(&l->tcp, fd)) || (rc = uv_listen((uv_stream_t *)&l->tcp, 1024,
                                                            on_connection))) {
        snprintf(err, errlen, "service %s: listen on %s%s%s:%u: %s", l->svc->name,
                 c->family == XLB_FAMILY_V6 ? "[" : "", ip, c->family == XLB_FAMILY_V6 ? "]" : "",
                 l->port, uv_strerror(rc));
        return rc;
    }
    return 0;
sys:
    rc = -errno;
    snprintf(err, errlen, "service %s: listen on %s%s%s:%u: %s%s", l->svc->name,
             c->family == XLB_FAMILY_V6 ? "[" : "", ip, c->family == XLB_FAMILY_V6 ? "]" : "",
             l->port, strerror(errno),
             errno == EADDRINUSE ? " (another program has that port without SO_REUSEPORT)" : "");
    if (fd >= 0)
        close(fd);
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct px_worker *w = a->data;

    int i;

    /* Connections in flight are cut: the stop is the operator's. */
    px_conn_close_all(w);
    px_pool_close_all(w);
    for (i = 0; i < w->n_listeners; i++)
        uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
    uv_close((uv_handle_t *)&w->stop, NULL);
}

static void *worker_main(void *arg)
{
    struct px_worker *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    px_enc_thread_cleanup();
    return NULL;
}

static int worker_init(struct px_worker *w, struct px_model *m, char *err, size_t errlen)
{
    int i, j, n = 0, rc;

    w->model = m;
    w->n_reals = m->n_reals;
    w->idle = calloc((size_t)(m->n_reals ? m->n_reals : 1), sizeof(*w->idle));
    for (i = 0; i < m->n_services; i++)
        n += m->services[i].cfg->n_ports + m->services[i].cfg->tls.redirect_http;
    w->listeners = calloc((size_t)(n ? n : 1), sizeof(*w->listeners));
    if (!w->idle || !w->listeners) {
        snprintf(err, errlen, "out of memory starting worker %d", w->index);
        return -ENOMEM;
    }
    w->max_pool_reals = 1;
    for (i = 0; i < m->n_services; i++)
        for (j = 0; j < m->services[i].n_pools; j++)
            if ((uint32_t)m->services[i].pools[j].n_reals > w->max_pool_reals)
                w->max_pool_reals = (uint32_t)m->services[i].pools[j].n_reals;
    if ((rc = uv_loop_init(&w->loop))) {
        snprintf(err, errlen, "worker %d: %s", w->index, uv_strerror(rc));
        return rc;
    }
    uv_async_init(&w->loop, &w->stop, on_stop);
    w->stop.data = w;
    for (i = 0; i < m->n_services; i++) {
        struct px_service *s = &m->services[i];

        for (j = 0; j < s->cfg->n_ports; j++) {
            struct px_listener *l = &w->listeners[w->n_listeners];

            l->w = w;
            l->svc = s;
            l->stats = s->stats;
            l->port = s->cfg->ports[j];
            l->tls = s->tls != NULL;
            if ((rc = listen_one(w, l, err, errlen)))
                return rc;
            w->n_listeners++;
        }
        if (s->cfg->tls.redirect_http) {
            struct px_listener *l = &w->listeners[w->n_listeners];

            l->w = w;
            l->svc = s;
            l->stats = s->stats;
            l->port = 80;
            l->redirect = true;
            if ((rc = listen_one(w, l, err, errlen)))
                return rc;
            w->n_listeners++;
        }
    }
    return 0;
}

static void worker_destroy(struct px_worker *w)
{
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    px_blocks_free(w);
    free(w->idle);
    free(w->listeners);
}

int px_workers_start(struct px_model *m, int n, struct px_worker **out, char *err, size_t errlen)
{
    struct px_worker *ws = calloc((size_t)n, sizeof(*ws));
    int i, rc = 0, started = 0;

    *out = NULL;
    if (!ws) {
        snprintf(err, errlen, "out of memory starting %d workers", n);
        return -ENOMEM;
    }
    for (i = 0; i < n && !rc; i++) {
        ws[i].index = i;
        rc = worker_init(&ws[i], m, err, errlen);
        started = i + 1;
    }
    if (rc) {
        for (i = 0; i < started; i++)
            worker_destroy(&ws[i]);
        free(ws);
        return rc;
    }
    for (i = 0; i < n; i++) {
        if ((rc = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]))) {
            snprintf(err, errlen, "worker %d: pthread_create: %s", i, strerror(rc));
            /* Stop the ones running; they own their loops. */
            px_workers_stop(ws, i);
            return -rc;
        }
    }
    *out = ws;
    return 0;
}

void px_workers_stop(struct px_worker *ws, int n)
{
    int i;

    if (!ws)
        return;
    for (i = 0; i < n; i++)
        uv_async_send(&ws[i].stop);
    for (i = 0; i < n; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_destroy(&ws[i]);
    }
    free(ws);
}
