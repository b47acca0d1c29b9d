// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * DNS check: one A query for spec.dns_name over UDP, recursion desired.
 * The query is encoded once at xlb_check_new(); every probe takes a fresh
 * random id.  The socket is connected to the server, so the kernel drops
 * datagrams from anyone else and an ICMP port unreachable comes back as
 * "connection refused".  A datagram with another id is ignored (it may be
 * a late reply to an earlier probe); one with our id must have QR set and
 * rcode NOERROR to pass.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"

#define DNS_HDR 12

/* Encode name ("a.example." or "a.example") as labels; returns the length
 * written or -EINVAL. */
static int encode_name(const char *name, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const char *s = name;

    if (!strcmp(name, "."))
        name = s = "";
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);

        if (l == 0 || l > 63 || o + 1 + l + 1 > cap)
            return -EINVAL;
        out[o++] = (uint8_t)l;
        memcpy(out + o, s, l);
        o += l;
        s += l;
        if (*s == '.')
            s++;
    }
    out[o++] = 0;
    return o > 255 ? -EINVAL : (int)o;
}

static int dns_init(struct xlb_check *c)
{
    uint8_t q[DNS_HDR + 256 + 4];
    int n = encode_name(c->spec.dns_name, q + DNS_HDR, 256);

    if (n < 0)
        return n;
    memset(q, 0, DNS_HDR);
    q[2] = 0x01;                /* RD */
    q[5] = 1;                   /* QDCOUNT */
    q[DNS_HDR + n + 0] = 0;
    q[DNS_HDR + n + 1] = 1;     /* QTYPE A */
    q[DNS_HDR + n + 2] = 0;
    q[DNS_HDR + n + 3] = 1;     /* QCLASS IN */
    c->request_len = DNS_HDR + (size_t)n + 4;
    c->request = malloc(c->request_len);
    if (!c->request)
        return -ENOMEM;
    memcpy(c->request, q, c->request_len);
    return 0;
}

static void dns_fini(struct xlb_check *c)
{
    free(c->request);
    c->request = NULL;
}

static const char *rcode_name(int rc)
{
    static const char *names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
                                   "REFUSED" };

    return rc >= 0 && rc < 6 ? names[rc] : "rcode";
}

static void dns_fail_uv(struct xlb_check *c, int err)
{
    if (err == UV_ECONNREFUSED)
        xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "connection refused (port unreachable)");
    else if (err == UV_ENETUNREACH || err == UV_EHOSTUNREACH || err == UV_EACCES ||
             err == UV_EPERM || err == UV_EADDRNOTAVAIL)
        xlb__probe_done(c, XLB_CHECK_FAIL_CONNECT, "%s", uv_strerror(err));
    else
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "udp: %s", uv_strerror(err));
}

static void dns_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags)
{
    struct xlb_check *c = h->data;
    const uint8_t *p = (const uint8_t *)buf->base;
    int rcode;

    (void)from;
    (void)flags;
    if (!c->running)
        return;
    if (nread < 0) {
        dns_fail_uv(c, (int)nread);
        return;
    }
    if (nread < DNS_HDR || ((p[0] << 8) | p[1]) != c->p.dns.id)
        return;                 /* not an answer to this probe */
    if (!(p[2] & 0x80)) {
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "message with our id is not a reply (QR 0)");
        return;
    }
    rcode = p[3] & 0x0f;
    if (rcode)
        xlb__probe_done(c, XLB_CHECK_FAIL_RESPONSE, "%s (%d)", rcode_name(rcode), rcode);
    else
        xlb__probe_done(c, XLB_CHECK_PASS, "NOERROR, %u answers", (unsigned)((p[6] << 8) | p[7]));
}

static void dns_sent(uv_udp_send_t *req, int status)
{
    struct xlb_check *c = req->data;

    if (status < 0 && status != UV_ECANCELED && c->running)
        dns_fail_uv(c, status);
}

static void dns_start(struct xlb_check *c)
{
    uv_buf_t b;
    int err;

    err = uv_udp_init_ex(c->loop, &c->io.udp, c->target.sa.sa_family);
    if (err) {
        xlb__probe_done(c, XLB_CHECK_FAIL_INTERNAL, "socket: %s", uv_strerror(err));
        return;
    }
    c->io_open = true;
    c->io.h.data = c;
    c->usend.data = c;
    c->phase = "reply";
    err = uv_udp_connect(&c->io.udp, &c->target.sa);
    if (!err)
        err = uv_udp_recv_start(&c->io.udp, xlb__alloc_cb, dns_recv);
    if (err) {
        dns_fail_uv(c, err);
        return;
    }
    c->p.dns.id = (uint16_t)xlb__rand32();
    c->request[0] = (char)(c->p.dns.id >> 8);
    c->request[1] = (char)(c->p.dns.id & 0xff);
    b = uv_buf_init(c->request, (unsigned int)c->request_len);
    /* The query lives in the check, so it outlasts the send. */
    err = uv_udp_send(&c->usend, &c->io.udp, &b, 1, NULL, dns_sent);
    if (err)
        dns_fail_uv(c, err);
}

static void dns_abort(struct xlb_check *c)
{
    xlb__io_close(c, false);
}

const struct xlb_check_kind xlb__kind_dns = {
    .name = "dns",
    .default_port = 53,
    .uses_port = true,
    .init = dns_init,
    .fini = dns_fini,
    .start = dns_start,
    .abort = dns_abort,
};
