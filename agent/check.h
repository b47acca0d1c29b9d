/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * check.h - asynchronous health checks on a libuv loop.
 *
 * One struct xlb_check is one probe target: a check spec (from the config),
 * an address and a port.  xlb_check_start() arms a repeating timer; every
 * interval one probe runs (never two at once for one check), bounded by the
 * spec's timeout, and its outcome goes through rise/fall counting.  The
 * callback fires after every probe with the probe's result; `changed` says
 * the rise/fall decision flipped the check's state (up <-> down).  Thousands
 * of checks share one thread: every probe is non-blocking I/O on the loop
 * (TCP/UDP/raw ICMP sockets through uv_tcp/uv_udp/uv_poll, TLS through
 * OpenSSL memory BIOs), nothing waits.
 *
 * Check types (enum xlb_cfg_hc_type): icmp (echo over a raw socket, v4 and
 * v6), tcp (connect), http/https (request, status set, optional body text),
 * ftp/smtp (220 greeting then QUIT), pop3 (+OK), imap (* OK), nntp (200 or
 * 201), telnet (first byte 0xff), dns (A query over UDP, rcode NOERROR),
 * generic (bytes sent, byte pattern expected within N bytes), none (always
 * up, no traffic).
 */
#ifndef XLB_CHECK_H
#define XLB_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "xlb_config.h"

enum xlb_check_result {
    XLB_CHECK_PASS = 0,
    XLB_CHECK_FAIL_CONNECT,     /* refused, unreachable, reset */
    XLB_CHECK_FAIL_TIMEOUT,     /* no (complete) answer within timeout */
    XLB_CHECK_FAIL_RESPONSE,    /* answered, but not what was expected */
    XLB_CHECK_FAIL_TLS,         /* handshake or certificate failure */
    XLB_CHECK_FAIL_INTERNAL,    /* a local error (socket(), memory) */
};

struct xlb_check;
typedef void (*xlb_check_cb)(struct xlb_check *c, enum xlb_check_result r, bool changed,
                             void *arg);

struct xlb_check_stats {
    bool up;                    /* current rise/fall decision */
    enum xlb_check_result last; /* result of the last completed probe */
    uint64_t last_time_ms;      /* wall clock (ms since the epoch) when it completed */
    double last_latency_ms;     /* duration of the last probe */
    char last_detail[128];      /* e.g. "status 503", "connection refused" */
    uint32_t ok_streak, fail_streak;
    uint64_t probes, failures;
};

/*
 * Create a check of spec (copied) against family/addr/port.  initially_up
 * is the decision before the first probe; the first change needs `fall`
 * failures (or `rise` passes) as any later one.  Returns NULL and sets errno.
 */
struct xlb_check *xlb_check_new(uv_loop_t *loop, const struct xlb_cfg_hc *spec, uint8_t family,
                                const struct xlb_addr *addr, uint16_t port, bool initially_up,
                                xlb_check_cb cb, void *arg);
/* Start probing: the first probe runs after a random delay within one
 * interval (so thousands of checks do not fire together), unless
 * first_now.  Returns 0 or a negative errno (the callback is then never
 * called). */
int xlb_check_start(struct xlb_check *c, bool first_now);
/* Stop and free; safe from within the check's own callback and with NULL.
 * Handles close asynchronously: run the loop until it has no handles. */
void xlb_check_free(struct xlb_check *c);
const struct xlb_check_stats *xlb_check_stats(const struct xlb_check *c);
/* A new callback argument: a reload hands a running check to the record
 * that replaces its owner. */
void xlb_check_set_arg(struct xlb_check *c, void *arg);
const char *xlb_check_result_name(enum xlb_check_result r);

/*
 * One HTTP GET of path from addr:port, body handed to cb (NULL on failure):
 * used by the adaptive scheduler to read each real's load file.  Reads at
 * most 4 KiB of body.  The callback is called exactly once, unless the call
 * fails synchronously (negative errno returned).
 */
typedef void (*xlb_fetch_cb)(int status, const char *body, size_t len, void *arg);
int xlb_http_fetch(uv_loop_t *loop, uint8_t family, const struct xlb_addr *addr, uint16_t port,
                   const char *host, const char *path, uint32_t timeout_ms, xlb_fetch_cb cb,
                   void *arg);

#endif
