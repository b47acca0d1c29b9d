// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Health-check core: lifecycle, timing, rise/fall and statistics.
 *
 * Timing.  One uv_timer_t per check serves two purposes: while the check is
 * idle it counts down to the next probe, while a probe runs it is the
 * probe's timeout.  Probes are due at T0, T0 + interval, T0 + 2 interval...
 * (T0 the first one); when a probe ends the timer is set for the next due
 * time, so probes keep their cadence and never overlap, and a probe that
 * outlasts the interval (timeout > interval) is followed at once by the
 * next one.  The first probe starts after a
 * random delay in [0, interval) so that checks created together spread
 * over one interval instead of firing in bursts.
 *
 * Rise/fall.  A passing probe resets the failure streak and a failing one
 * the success streak; the decision flips to up after `rise` consecutive
 * passes while down, and to down after `fall` consecutive failures while
 * up.  The callback runs after every probe, with changed = true exactly on
 * the probe that flipped the decision.
 *
 * Freeing.  xlb_check_free() aborts a running probe (closing its handle),
 * closes the timer and releases the memory when the last close callback
 * has run, so it is safe from the check's own callback and at any point of
 * a probe.  Nothing is freed synchronously, so code that called the user's
 * callback may still look at the check afterwards (it checks c->freeing).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "check_int.h"

static const struct xlb_check_kind *kind_of(enum xlb_cfg_hc_type t)
{
    switch (t) {
    case XLB_HC_NONE: return &xlb__kind_none;
    case XLB_HC_ICMP: return &xlb__kind_icmp;
    case XLB_HC_TCP: return &xlb__kind_tcp;
    case XLB_HC_HTTP: return &xlb__kind_http;
    case XLB_HC_HTTPS: return &xlb__kind_https;
    case XLB_HC_FTP: return &xlb__kind_ftp;
    case XLB_HC_SMTP: return &xlb__kind_smtp;
    case XLB_HC_POP3: return &xlb__kind_pop3;
    case XLB_HC_IMAP: return &xlb__kind_imap;
    case XLB_HC_NNTP: return &xlb__kind_nntp;
    case XLB_HC_TELNET: return &xlb__kind_telnet;
    case XLB_HC_DNS: return &xlb__kind_dns;
    case XLB_HC_GENERIC: return &xlb__kind_generic;
    }
    return NULL;
}

/* xorshift64*, seeded per thread from the kernel: only used to spread
 * start times and to pick DNS ids and ICMP identifiers. */
uint32_t xlb__rand32(void)
{
    static __thread uint64_t s;

    if (!s) {
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
            s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&s;
        if (!s)
            s = 0x9e3779b97f4a7c15ull;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (uint32_t)((s * 0x2545f4914f6cdd1dull) >> 32);
}

/* Every read callback consumes its data before returning, and all checks
 * of a loop run on one thread, so one buffer per thread serves them all. */
void xlb__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static __thread char rbuf[XLB_CHECK_READ_MAX];

    (void)h;
    (void)suggested;
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

/* Whether pat occurs in h (memmem without _GNU_SOURCE). */
static bool contains(const uint8_t *h, size_t hn, const uint8_t *pat, size_t pn)
{
    const uint8_t *p = h, *end = h + hn;

    while (pn && (size_t)(end - p) >= pn) {
        p = memchr(p, pat[0], (size_t)(end - p) - pn + 1);
        if (!p)
            return false;
        if (!memcmp(p, pat, pn))
            return true;
        p++;
    }
    return pn == 0;
}

void xlb__matcher_init(struct xlb_matcher *m, const uint8_t *pat, size_t len)
{
    m->pat = pat;
    m->len = len > XLB_CFG_STR_MAX ? XLB_CFG_STR_MAX : len;
    m->tail_len = 0;
    m->found = m->len == 0;
}

void xlb__matcher_feed(struct xlb_matcher *m, const uint8_t *p, size_t n)
{
    size_t keep = m->len - 1;   /* len >= 1 once found is false */

    if (m->found || n == 0)
        return;
    if (m->tail_len) {
        /* A match that straddles the boundary starts in the tail. */
        uint8_t tmp[2 * XLB_CFG_STR_MAX];
        size_t k = n < keep ? n : keep;

        memcpy(tmp, m->tail, m->tail_len);
        memcpy(tmp + m->tail_len, p, k);
        if (contains(tmp, m->tail_len + k, m->pat, m->len)) {
            m->found = true;
            return;
        }
    }
    if (contains(p, n, m->pat, m->len)) {
        m->found = true;
        return;
    }
    if (n >= keep) {
        memcpy(m->tail, p + n - keep, keep);
        m->tail_len = keep;
    } else {
        size_t old = m->tail_len < keep - n ? m->tail_len : keep - n;

        memmove(m->tail, m->tail + m->tail_len - old, old);
        memcpy(m->tail + old, p, n);
        m->tail_len = old + n;
    }
}

void xlb__printable(char *out, size_t len, const uint8_t *p, size_t n)
{
    size_t o = 0;

    if (!len)
        return;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        if (p[i] == '\r' || p[i] == '\n')
            break;
        out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
    }
    out[o] = '\0';
}

void xlb__sockaddr(uint8_t family, const struct xlb_addr *a, uint16_t port,
                   struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == XLB_FAMILY_V4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, &a->addr_be[0], 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, a->addr_be, 16);
    }
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Zero fields take the documented defaults, so a hand-filled spec works. */
static void apply_defaults(struct xlb_cfg_hc *s)
{
    if (!s->interval_ms)
        s->interval_ms = 5000;
    if (!s->timeout_ms)
        s->timeout_ms = 3000;
    if (!s->rise)
        s->rise = 2;
    if (!s->fall)
        s->fall = 3;
    if (!s->method[0])
        strcpy(s->method, "HEAD");
    if (!s->path[0])
        strcpy(s->path, "/");
    if (!s->dns_name[0])
        strcpy(s->dns_name, "localhost.");
    if (!s->expect_within)
        s->expect_within = 1024;
    if (s->n_status <= 0 || s->n_status > XLB_CFG_MAX_STATUS) {
        static const struct xlb_cfg_status_range def[] = {
            { 200, 299 }, { 301, 301 }, { 302, 302 }, { 401, 401 },
        };

        memcpy(s->status, def, sizeof(def));
        s->n_status = (int)(sizeof(def) / sizeof(def[0]));
    }
    s->method[sizeof(s->method) - 1] = '\0';
    s->path[sizeof(s->path) - 1] = '\0';
    s->host[sizeof(s->host) - 1] = '\0';
    s->expect_body[sizeof(s->expect_body) - 1] = '\0';
    s->tls_ca[sizeof(s->tls_ca) - 1] = '\0';
    s->dns_name[sizeof(s->dns_name) - 1] = '\0';
    if (s->send_len > sizeof(s->send))
        s->send_len = sizeof(s->send);
    if (s->expect_len > sizeof(s->expect))
        s->expect_len = sizeof(s->expect);
}

struct xlb_check *xlb_check_new(uv_loop_t *loop, const struct xlb_cfg_hc *spec, uint8_t family,
                                const struct xlb_addr *addr, uint16_t port, bool initially_up,
                                xlb_check_cb cb, void *arg)
{
    const struct xlb_check_kind *kind;
    struct xlb_check *c;
    int err;

    if (!loop || !spec || !addr || (family != XLB_FAMILY_V4 && family != XLB_FAMILY_V6)) {
        errno = EINVAL;
        return NULL;
    }
    kind = kind_of(spec->type);
    if (!kind) {
        errno = EINVAL;
        return NULL;
    }
    if (kind->uses_port && !port) {
        if (!kind->default_port) {
            errno = EINVAL;
            return NULL;
        }
        port = kind->default_port;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->spec = *spec;
    apply_defaults(&c->spec);
    c->kind = kind;
    c->family = family;
    c->addr = *addr;
    c->port = kind->uses_port ? port : 0;
    xlb__sockaddr(family, addr, c->port, &c->target.ss);
    xlb_addr_str(addr, family, c->addr_text, sizeof(c->addr_text));
    c->cb = cb;
    c->arg = arg;
    c->st.up = initially_up;
    c->st.last = XLB_CHECK_PASS;
    c->phase = "probe";
    err = kind->init ? kind->init(c) : 0;
    if (err) {
        if (kind->fini)
            kind->fini(c);
        free(c);
        errno = -err;
        return NULL;
    }
    err = uv_timer_init(loop, &c->timer);
    if (err) {
        if (kind->fini)
            kind->fini(c);
        free(c);
        errno = -err;
        return NULL;
    }
    c->timer.data = c;
    return c;
}

static void on_tick(uv_timer_t *t);
static void on_timeout(uv_timer_t *t);

/* Begin a probe now, or as soon as the previous probe's handle is closed. */
static void probe_begin(struct xlb_check *c)
{
    if (c->pending > 0) {
        c->start_pending = true;
        return;
    }
    c->running = true;
    c->start_ns = uv_hrtime();
    c->phase = "probe";
    uv_timer_start(&c->timer, on_timeout, c->spec.timeout_ms, 0);
    c->kind->start(c);
}

static void on_tick(uv_timer_t *t)
{
    struct xlb_check *c = t->data;

    if (!c->freeing && !c->running)
        probe_begin(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct xlb_check *c = t->data;

    if (c->running)
        xlb__probe_done(c, XLB_CHECK_FAIL_TIMEOUT, "timeout after %u ms (%s)",
                        c->spec.timeout_ms, c->phase);
}

int xlb_check_start(struct xlb_check *c, bool first_now)
{
    uint64_t delay;

    if (!c || c->freeing)
        return -EINVAL;
    if (c->started)
        return -EALREADY;
    delay = first_now ? 0 : xlb__rand32() % c->spec.interval_ms;
    c->started = true;
    c->due_ms = uv_now(c->loop) + delay;
    return uv_timer_start(&c->timer, on_tick, delay, 0);
}

void xlb__probe_done(struct xlb_check *c, enum xlb_check_result r, const char *fmt, ...)
{
    struct xlb_check_stats *st = &c->st;
    bool changed = false;
    va_list ap;

    if (!c->running)
        return;
    c->running = false;
    uv_timer_stop(&c->timer);
    c->kind->abort(c);

    st->last = r;
    st->last_time_ms = wall_ms();
    st->last_latency_ms = (double)(uv_hrtime() - c->start_ns) / 1e6;
    va_start(ap, fmt);
    vsnprintf(st->last_detail, sizeof(st->last_detail), fmt, ap);
    va_end(ap);
    st->probes++;
    if (r == XLB_CHECK_PASS) {
        st->ok_streak++;
        st->fail_streak = 0;
        if (!st->up && st->ok_streak >= c->spec.rise) {
            st->up = true;
            changed = true;
        }
    } else {
        st->failures++;
        st->fail_streak++;
        st->ok_streak = 0;
        if (st->up && st->fail_streak >= c->spec.fall) {
            st->up = false;
            changed = true;
        }
    }

    if (!c->freeing) {
        /* Due times advance by whole intervals from the first one, so a
         * late loop does not make the cadence drift; a probe that is
         * already overdue runs at once (and only once). */
        uint64_t now = uv_now(c->loop);

        c->due_ms += c->spec.interval_ms;
        if (c->due_ms < now)
            c->due_ms = now;
        uv_timer_start(&c->timer, on_tick, c->due_ms - now, 0);
    }
    if (c->cb)
        c->cb(c, r, changed, c->arg);
}

/* The probe's socket is closed: free a freed check, or start the probe
 * that became due meanwhile. */
static void on_io_closed(uv_handle_t *h)
{
    struct xlb_check *c = h->data;

    c->pending--;
    if (c->freeing) {
        if (!c->pending)
            free(c);
        return;
    }
    if (c->start_pending && !c->pending) {
        c->start_pending = false;
        probe_begin(c);
    }
}

void xlb__io_close(struct xlb_check *c, bool reset)
{
    if (!c->io_open)
        return;
    c->io_open = false;
    c->io.h.data = c;
    c->pending++;
    /* A reset leaves no TIME_WAIT behind, which matters with thousands
     * of checks on one host; it fails when a shutdown is pending. */
    if (!reset || uv_tcp_close_reset(&c->io.tcp, on_io_closed) != 0)
        uv_close(&c->io.h, on_io_closed);
}

/* The timer closes last of all, from xlb_check_free(). */
static void on_timer_closed(uv_handle_t *h)
{
    struct xlb_check *c = h->data;

    if (!--c->pending)
        free(c);
}

void xlb_check_free(struct xlb_check *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = true;
    c->start_pending = false;
    if (c->running) {
        c->running = false;
        c->kind->abort(c);
    }
    if (c->kind->fini)
        c->kind->fini(c);
    uv_timer_stop(&c->timer);
    c->pending++;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void xlb_check_set_arg(struct xlb_check *c, void *arg)
{
    c->arg = arg;
}

const struct xlb_check_stats *xlb_check_stats(const struct xlb_check *c)
{
    return &c->st;
}

const char *xlb_check_result_name(enum xlb_check_result r)
{
    switch (r) {
    case XLB_CHECK_PASS: return "pass";
    case XLB_CHECK_FAIL_CONNECT: return "connect";
    case XLB_CHECK_FAIL_TIMEOUT: return "timeout";
    case XLB_CHECK_FAIL_RESPONSE: return "response";
    case XLB_CHECK_FAIL_TLS: return "tls";
    case XLB_CHECK_FAIL_INTERNAL: return "internal";
    }
    return "?";
}

/* none: no traffic, every probe passes. */
static void none_start(struct xlb_check *c)
{
    xlb__probe_done(c, XLB_CHECK_PASS, "no check");
}

static void none_abort(struct xlb_check *c)
{
    (void)c;
}

const struct xlb_check_kind xlb__kind_none = {
    .name = "none",
    .start = none_start,
    .abort = none_abort,
};
