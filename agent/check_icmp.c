// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ICMP echo checks over raw sockets (IPv4 ICMP, IPv6 ICMPv6).
 *
 * All icmp checks of one loop and family share one raw socket, watched
 * with a uv_poll_t: a raw socket sees every ICMP message the host
 * receives, so one per check would multiply that work.  Each check owns
 * an identifier of the socket (id_base + its slot index, so a reply finds
 * its check in O(1)); every probe takes the next sequence number.  A reply
 * counts when identifier, sequence, source address and payload match the
 * running probe; anything else (other pingers, late replies to an earlier
 * probe) is ignored.  An ICMP error (destination unreachable, time
 * exceeded, parameter problem) that quotes the probe's echo request fails
 * the probe with FAIL_CONNECT.
 *
 * Raw sockets need CAP_NET_RAW: without it xlb_check_new() fails with
 * EPERM.  One socket holds at most 65536 identifiers (ENOSPC beyond).
 */
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/icmp.h>

#include "check_int.h"

#define ECHO_PAYLOAD 16
#define ECHO_LEN (8 + ECHO_PAYLOAD)
#define MAX_SLOTS 65536u

struct xlb_icmp_sock {
    struct xlb_icmp_sock *next;
    uv_loop_t *loop;
    int af;
    int fd;
    bool closing;
    uv_poll_t poll;
    uint16_t id_base;
    uint32_t nslots, used, hint;
    struct xlb_check **slots;
    uint8_t cookie[8];
};

static pthread_mutex_t socks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xlb_icmp_sock *socks;

static void on_readable(uv_poll_t *p, int status, int events);

static int sock_open(struct xlb_icmp_sock *s)
{
    int one_mb = 1 << 20, err;

    s->fd = socket(s->af, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   s->af == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
    if (s->fd < 0)
        return -errno;
    /* Only the messages a probe can be answered with reach us. */
    if (s->af == AF_INET) {
        struct icmp_filter f = {
            .data = ~((1u << ICMP_ECHOREPLY) | (1u << ICMP_DEST_UNREACH) |
                      (1u << ICMP_TIME_EXCEEDED) | (1u << ICMP_PARAMETERPROB)),
        };

        err = setsockopt(s->fd, SOL_RAW, ICMP_FILTER, &f, sizeof(f));
    } else {
        struct icmp6_filter f;

        ICMP6_FILTER_SETBLOCKALL(&f);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
        ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
        ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
        ICMP6_FILTER_SETPASS(ICMP6_PARAM_PROB, &f);
        err = setsockopt(s->fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
    }
    if (err < 0) {
        err = -errno;
        close(s->fd);
        return err;
    }
    /* Thousands of probes may be answered in one loop iteration. */
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &one_mb, sizeof(one_mb));
    setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &one_mb, sizeof(one_mb));
    err = uv_poll_init_socket(s->loop, &s->poll, s->fd);
    if (err) {
        close(s->fd);
        return err;
    }
    s->poll.data = s;
    err = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (err) {
        /* the handle exists now: it has to be closed through the loop */
        s->closing = true;
        return err;
    }
    return 0;
}

static void sock_closed(uv_handle_t *h)
{
    struct xlb_icmp_sock *s = h->data;

    close(s->fd);
    free(s->slots);
    free(s);
}

/* Find or create the socket of loop and family and give c an identifier. */
static int sock_attach(struct xlb_check *c)
{
    int af = c->family == XLB_FAMILY_V4 ? AF_INET : AF_INET6;
    struct xlb_icmp_sock *s;
    uint32_t i;
    int err = 0;

    pthread_mutex_lock(&socks_lock);
    for (s = socks; s; s = s->next)
        if (s->loop == c->loop && s->af == af && !s->closing)
            break;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            err = -ENOMEM;
            goto out;
        }
        s->loop = c->loop;
        s->af = af;
        s->id_base = (uint16_t)xlb__rand32();
        for (i = 0; i < sizeof(s->cookie); i++)
            s->cookie[i] = (uint8_t)xlb__rand32();
        err = sock_open(s);
        if (err) {
            if (s->closing)
                uv_close((uv_handle_t *)&s->poll, sock_closed);
            else
                free(s);
            goto out;
        }
        s->next = socks;
        socks = s;
    }
    if (s->used == s->nslots) {
        uint32_t n = s->nslots ? s->nslots * 2 : 64;
        struct xlb_check **ns;

        if (s->nslots >= MAX_SLOTS) {
            err = -ENOSPC;
            goto out_unused;
        }
        ns = realloc(s->slots, n * sizeof(*ns));
        if (!ns) {
            err = -ENOMEM;
            goto out_unused;
        }
        memset(ns + s->nslots, 0, (n - s->nslots) * sizeof(*ns));
        s->hint = s->nslots;
        s->slots = ns;
        s->nslots = n;
    }
    for (i = s->hint; s->slots[i]; i = (i + 1) % s->nslots)
        ;
    s->slots[i] = c;
    s->used++;
    s->hint = (i + 1) % s->nslots;
    c->isock = s;
    c->icmp_id = (uint16_t)(s->id_base + i);
    goto out;

out_unused:
    if (!s->used) {
        struct xlb_icmp_sock **pp;

        for (pp = &socks; *pp != s; pp = &(*pp)->next)
            ;
        *pp = s->next;
        s->closing = true;
        uv_close((uv_handle_t *)&s->poll, sock_closed);
    }
out:
    pthread_mutex_unlock(&socks_lock);
    return err;
}

static void sock_detach(struct xlb_check *c)
{
    struct xlb_icmp_sock *s = c->isock, **pp;

    if (!s)
        return;
    pthread_mutex_lock(&socks_lock);
    s->slots[(uint16_t)(c->icmp_id - s->id_base)] = NULL;
    c->isock = NULL;
    if (!--s->used) {
        for (pp = &socks; *pp != s; pp = &(*pp)->next)
            ;
        *pp = s->next;
        s->closing = true;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, sock_closed);
    }
    pthread_mutex_unlock(&socks_lock);
}

static uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* The payload says which socket, identifier and sequence it belongs to. */
static void payload(const struct xlb_check *c, uint16_t seq, uint8_t *out)
{
    memcpy(out, c->isock->cookie, 8);
    out[8] = (uint8_t)(c->icmp_id >> 8);
    out[9] = (uint8_t)c->icmp_id;
    out[10] = (uint8_t)(seq >> 8);
    out[11] = (uint8_t)seq;
    memcpy(out + 12, "xlbc", 4);
}

static void icmp_start(struct xlb_check *c)
{
    uint8_t pkt[ECHO_LEN];
    uint16_t seq = (uint16_t)(c->p.icmp.seq + 1), sum;
    socklen_t alen = c->family == XLB_FAMILY_V4 ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6);

    c->p.icmp.seq = seq;
    memset(pkt, 0, sizeof(pkt));
    pkt[0] = c->family == XLB_FAMILY_V4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    pkt[4] = (uint8_t)(c->icmp_id >> 8);
    pkt[5] = (uint8_t)c->icmp_id;
    pkt[6] = (uint8_t)(seq >> 8);
    pkt[7] = (uint8_t)seq;
    payload(c, seq, pkt + 8);
    if (c->family == XLB_FAMILY_V4) {   /* the kernel sums ICMPv6 itself */
        sum = csum(pkt, sizeof(pkt));
        pkt[2] = (uint8_t)(sum >> 8);
        pkt[3] = (uint8_t)sum;
    }
    c->phase = "echo reply";
    c->p.icmp.waiting = true;
    if (sendto(c->isock->fd, pkt, sizeof(pkt), 0, &c->target.sa, alen) < 0) {
        int err = errno;

        if (err == ENETUNREACH || err == EHOSTUNREACH || err == EACCES || err == EPERM ||
            err == EADDRNOTAVAIL || err == EINVAL)
            xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "send: %s", strerror(err));
        else
            xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "send: %s", strerror(err));
    }
}

static void icmp_abort(struct xlb_check *c)
{
    c->p.icmp.waiting = false;
}

static struct xlb_check *running_probe(struct xlb_icmp_sock *s, const uint8_t *echo)
{
    uint16_t id = (uint16_t)(echo[4] << 8 | echo[5]), seq = (uint16_t)(echo[6] << 8 | echo[7]);
    uint32_t idx = (uint16_t)(id - s->id_base);
    struct xlb_check *c = idx < s->nslots ? s->slots[idx] : NULL;

    if (!c || !c->running || !c->p.icmp.waiting || c->p.icmp.seq != seq)
        return NULL;
    return c;
}

static bool is_target(const struct xlb_check *c, const void *addr)
{
    return !memcmp(addr, c->addr.addr_be, c->family == XLB_FAMILY_V4 ? 4 : 16);
}

static void echo_reply(struct xlb_icmp_sock *s, const uint8_t *ic, size_t len, const void *src)
{
    struct xlb_check *c = running_probe(s, ic);
    uint8_t want[ECHO_PAYLOAD];

    if (!c || !is_target(c, src))
        return;
    payload(c, c->p.icmp.seq, want);
    if (len == ECHO_LEN && !memcmp(ic + 8, want, sizeof(want)))
        xlb__probe_done(c, XLB_CHECK_PASS, "echo reply");
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "echo reply with a different payload");
}

/* An error that quotes one of our echo requests to the check's target. */
static void echo_error(struct xlb_icmp_sock *s, const uint8_t *quoted_echo, const void *dst,
                       const char *what, int type, int code, const void *from)
{
    struct xlb_check *c = running_probe(s, quoted_echo);
    char text[XLB_ADDR_STRLEN];

    if (!c || !is_target(c, dst))
        return;
    inet_ntop(s->af, from, text, sizeof(text));
    xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s (type %d, code %d) from %s", what, type, code,
                    text);
}

static void handle_v4(struct xlb_icmp_sock *s, const uint8_t *p, size_t n,
                      const struct sockaddr_in *from)
{
    size_t ihl, iihl;
    const uint8_t *ic, *in;
    const char *what;

    if (n < 20 || (p[0] >> 4) != 4)
        return;
    ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || n < ihl + 8)
        return;
    ic = p + ihl;
    n -= ihl;
    switch (ic[0]) {
    case ICMP_ECHOREPLY:
        echo_reply(s, ic, n, &from->sin_addr);
        return;
    case ICMP_DEST_UNREACH: what = "destination unreachable"; break;
    case ICMP_TIME_EXCEEDED: what = "time exceeded"; break;
    case ICMP_PARAMETERPROB: what = "parameter problem"; break;
    default: return;
    }
    in = ic + 8;
    if (n < 8 + 20 || (in[0] >> 4) != 4)
        return;
    iihl = (size_t)(in[0] & 0x0f) * 4;
    if (iihl < 20 || n < 8 + iihl + 8 || in[9] != IPPROTO_ICMP || in[iihl] != ICMP_ECHO)
        return;
    echo_error(s, in + iihl, in + 16, what, ic[0], ic[1], &from->sin_addr);
}

static void handle_v6(struct xlb_icmp_sock *s, const uint8_t *ic, size_t n,
                      const struct sockaddr_in6 *from)
{
    const uint8_t *in;
    const char *what;

    if (n < 8)
        return;
    switch (ic[0]) {
    case ICMP6_ECHO_REPLY:
        echo_reply(s, ic, n, &from->sin6_addr);
        return;
    case ICMP6_DST_UNREACH: what = "destination unreachable"; break;
    case ICMP6_TIME_EXCEEDED: what = "time exceeded"; break;
    case ICMP6_PARAM_PROB: what = "parameter problem"; break;
    default: return;
    }
    /* the quoted IPv6 header, then (without extension headers) the echo */
    in = ic + 8;
    if (n < 8 + 40 + 8 || (in[0] >> 4) != 6 || in[6] != IPPROTO_ICMPV6 ||
        in[40] != ICMP6_ECHO_REQUEST)
        return;
    echo_error(s, in + 40, in + 24, what, ic[0], ic[1], &from->sin6_addr);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct xlb_icmp_sock *s = h->data;
    uint8_t buf[1500];

    (void)events;
    if (status < 0)
        return;
    /* Bounded per wakeup; the poll is level-triggered and comes back. */
    for (int i = 0; i < 256 && !s->closing; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

        if (n < 0)
            break;
        if (s->af == AF_INET && from.ss_family == AF_INET)
            handle_v4(s, buf, (size_t)n, (const struct sockaddr_in *)&from);
        else if (s->af == AF_INET6 && from.ss_family == AF_INET6)
            handle_v6(s, buf, (size_t)n, (const struct sockaddr_in6 *)&from);
    }
}

static int icmp_init(struct xlb_check *c)
{
    return sock_attach(c);
}

const struct xlb_check_kind xlb__kind_icmp = {
    .name = "icmp",
    .init = icmp_init,
    .fini = sock_detach,
    .start = icmp_start,
    .abort = icmp_abort,
};
