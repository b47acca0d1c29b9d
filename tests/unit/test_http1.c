// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP/1.x parser (common/xlb_http1.h): a table of valid and invalid
 * requests and responses with their fields, framing, payload and error;
 * the smuggling vectors; keep-alive rules; pipelining.  Then the same table
 * fed at every split point (head in a growing buffer, body in two pieces
 * and one byte at a time), which must give the one-shot result, and once
 * more with each message ending at a PROT_NONE page so that any read past
 * the end crashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "xlb_http1.h"

#define MAXF 128
#define REQ 0
#define RESP 1
#define RESP_HEAD 2             /* a response to HEAD */

/* Everything a parse produced, for comparisons. */
struct out {
    int rc;                     /* head */
    enum xlb_h1_error err;
    int status;
    struct xlb_h1_head h;
    struct xlb_h1_field f[MAXF];
    int body_rc;                /* valid when rc == XLB_H1_OK */
    enum xlb_h1_error body_err;
    int body_status;
    char payload[4096];
    size_t plen;
    size_t consumed;            /* body bytes consumed, framing included */
};

static void start(struct xlb_h1_parser *p, struct out *o, int kind, const struct xlb_h1_limits *lim)
{
    memset(o, 0, sizeof(*o));
    xlb_h1_init(p, kind == REQ ? XLB_H1_REQUEST : XLB_H1_RESPONSE, lim, o->f, MAXF);
    if (kind == RESP_HEAD)
        xlb_h1_set_head_request(p, true);
}

static void save_head(const struct xlb_h1_parser *p, struct out *o, int rc)
{
    o->rc = rc;
    o->err = p->error;
    o->status = rc == XLB_H1_ERR ? p->status : 0;
    o->h = p->head;
}

/*
 * Feed the body stream in[0..n) as consecutive pieces of size step (the
 * last one shorter; step 0 = one piece), calling xlb_h1_body() until each
 * piece is used up or the body ends.  Payload and counts go to o.
 */
static void feed_body(struct xlb_h1_parser *p, struct out *o, const char *in, size_t n, size_t step,
                      size_t first)
{
    size_t off = 0;
    int rc = XLB_H1_MORE;

    o->plen = 0;
    o->consumed = 0;
    while (rc == XLB_H1_MORE) {
        size_t piece = first ? first : (step ? step : n - off);
        size_t used = 0;
        first = 0;
        if (piece > n - off)
            piece = n - off;
        do {
            size_t c = 0, dl = 0;
            const char *d = NULL;
            rc = xlb_h1_body(p, in + off + used, piece - used, &c, &d, &dl);
            cr_assert(c <= piece - used);
            if (rc == XLB_H1_ERR)
                break;
            if (dl) {
                cr_assert(d >= in + off + used && d + dl <= in + off + used + c);
                cr_assert(o->plen + dl <= sizeof(o->payload));
                memcpy(o->payload + o->plen, d, dl);
                o->plen += dl;
            }
            used += c;
            if (rc == XLB_H1_MORE && c == 0)
                cr_assert(piece - used == 0, "no progress with input left");
        } while (rc == XLB_H1_MORE && used < piece);
        off += used;
        o->consumed = off;
        if (off == n)
            break;
    }
    o->body_rc = rc;
    o->body_err = rc == XLB_H1_ERR ? p->error : XLB_H1_E_NONE;
    o->body_status = rc == XLB_H1_ERR ? p->status : 0;
}

/* Parse msg[0..n) at once: head, then the body from the rest. */
static void parse_once(struct out *o, int kind, const struct xlb_h1_limits *lim, const char *msg,
                       size_t n)
{
    struct xlb_h1_parser p;

    start(&p, o, kind, lim);
    save_head(&p, o, xlb_h1_head(&p, msg, n));
    if (o->rc == XLB_H1_OK)
        feed_body(&p, o, msg + o->h.head_len, n - o->h.head_len, 0, 0);
}

static void same_str(struct xlb_h1_str a, struct xlb_h1_str b, const char *what)
{
    cr_assert(a.off == b.off && a.len == b.len, "%s differs", what);
}

/* Assert a and b describe the same outcome (what says which run). */
static void same(const struct out *a, const struct out *b, const char *what)
{
    cr_assert_eq(a->rc, b->rc, "%s: head rc %d vs %d", what, a->rc, b->rc);
    cr_assert_eq(a->err, b->err, "%s: error %s vs %s", what, xlb_h1_error_name(a->err),
                 xlb_h1_error_name(b->err));
    cr_assert_eq(a->status, b->status, "%s: status", what);
    if (a->rc != XLB_H1_OK)
        return;
    same_str(a->h.method, b->h.method, what);
    same_str(a->h.target, b->h.target, what);
    same_str(a->h.reason, b->h.reason, what);
    cr_assert(a->h.status == b->h.status && a->h.version_minor == b->h.version_minor, "%s", what);
    cr_assert(a->h.n_fields == b->h.n_fields && a->h.head_len == b->h.head_len, "%s", what);
    cr_assert(a->h.framing == b->h.framing && a->h.content_length == b->h.content_length, "%s", what);
    cr_assert(a->h.keep_alive == b->h.keep_alive && a->h.upgrade == b->h.upgrade, "%s", what);
    cr_assert(a->h.expect_continue == b->h.expect_continue, "%s", what);
    cr_assert(a->h.host_field == b->h.host_field, "%s", what);
    cr_assert(a->h.connection_field == b->h.connection_field, "%s", what);
    for (uint32_t i = 0; i < a->h.n_fields; i++) {
        same_str(a->f[i].name, b->f[i].name, what);
        same_str(a->f[i].value, b->f[i].value, what);
    }
    cr_assert_eq(a->body_rc, b->body_rc, "%s: body rc %d vs %d", what, a->body_rc, b->body_rc);
    cr_assert_eq(a->body_err, b->body_err, "%s: body error %s vs %s", what,
                 xlb_h1_error_name(a->body_err), xlb_h1_error_name(b->body_err));
    cr_assert_eq(a->body_status, b->body_status, "%s", what);
    cr_assert(a->plen == b->plen && memcmp(a->payload, b->payload, a->plen) == 0,
              "%s: payload differs", what);
    if (a->body_rc != XLB_H1_ERR)
        cr_assert_eq(a->consumed, b->consumed, "%s: consumed %zu vs %zu", what, a->consumed,
                     b->consumed);
}

/* ---- the table ---- */

static const struct xlb_h1_limits small = {
    .max_start_line = 20, .max_head = 100, .max_headers = 3, .max_body = 10,
};

struct tcase {
    const char *name;
    int kind;
    const struct xlb_h1_limits *lim;
    const char *msg;
    size_t len;
    int rc;                     /* head outcome */
    enum xlb_h1_error err;      /* head error, or with rc OK the body error */
    int status;
    enum xlb_h1_framing framing;
    int body_rc;
    const char *payload;        /* expected payload when the body ends well */
    size_t body_len;            /* expected consumed body bytes (body_rc OK) */
};

#define M(s) .msg = (s), .len = sizeof(s) - 1
#define HERR(e, st) .rc = XLB_H1_ERR, .err = XLB_H1_E_##e, .status = (st)
#define BODY(fr, brc, pl, bl) .framing = XLB_H1_BODY_##fr, .body_rc = XLB_H1_##brc, .payload = (pl), \
                               .body_len = (bl)
#define BERR(e, st) .framing = XLB_H1_BODY_CHUNKED, .body_rc = XLB_H1_ERR, .err = XLB_H1_E_##e, \
                    .status = (st)
#define RQ "GET / HTTP/1.1\r\nHost: a\r\n"
#define PC "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define RS "HTTP/1.1 200 OK\r\n"
#define NEXT "GET /next HTTP/1.1\r\nHost: b\r\n\r\n"

static const struct tcase cases[] = {
    /* valid requests */
    { "get", REQ, M(RQ "\r\n"), BODY(NONE, OK, "", 0) },
    { "get_pipelined", REQ, M(RQ "\r\n" NEXT), BODY(NONE, OK, "", 0) },
    { "leading_crlf", REQ, M("\r\n\r\n" RQ "\r\n"), BODY(NONE, OK, "", 0) },
    { "http10_no_host", REQ, M("GET /x?y=1 HTTP/1.0\r\n\r\n"), BODY(NONE, OK, "", 0) },
    { "options_star", REQ, M("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), BODY(NONE, OK, "", 0) },
    { "post_cl", REQ, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" NEXT),
      BODY(LENGTH, OK, "hello", 5) },
    { "post_cl0", REQ, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" NEXT),
      BODY(LENGTH, OK, "", 0) },
    { "post_cl_incomplete", REQ, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nhello"),
      BODY(LENGTH, MORE, "hello", 5) },
    { "cl_ows", REQ, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 3 \t\r\n\r\nabc"),
      BODY(LENGTH, OK, "abc", 3) },
    { "chunked", REQ, M(PC "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" NEXT),
      BODY(CHUNKED, OK, "hello world", 26) },
    { "chunked_hex_case", REQ, M(PC "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "0123456789abcdefghij", 35) },
    { "chunked_multi_digit", REQ, M(PC "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "abcdefghijklmnopqrstuvwxyz", 37) },
    { "chunked_15_digits", REQ, M(PC "000000000000003\r\nabc\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "abc", 27) },
    { "chunked_ext", REQ,
      M(PC "3;a\r\nabc\r\n3 ; b = c\r\ndef\r\n1;x=\"q\\\"u ote\";y=z\r\ng\r\n"
           "1\t;k\t=\t\"\"\r\nh\r\n0;last\r\n\r\n"),
      BODY(CHUNKED, OK, "abcdefgh", 73) },
    { "chunked_trailers", REQ, M(PC "2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-B:\r\n\r\n" NEXT),
      BODY(CHUNKED, OK, "hi", 28) },
    { "chunked_incomplete", REQ, M(PC "5\r\nhel"), BODY(CHUNKED, MORE, "hel", 6) },
    { "te_chunked_case", REQ, M("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "", 5) },
    { "obs_text_value", REQ, M("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\tx\r\n\r\n"),
      BODY(NONE, OK, "", 0) },
    { "value_long_tab_utf8", REQ, M(RQ "X: 0123456789\tabcdef\xe2\x82\xac" "0123456789 ABCDEFGH  \r\n\r\n"),
      BODY(NONE, OK, "", 0) },
    { "target_long", REQ, M("GET /0123456789abcdef/0123456789abcdef?x=%41&y=~ HTTP/1.1\r\nHost: a\r\n\r\n"),
      BODY(NONE, OK, "", 0) },
    { "head_incomplete", REQ, M("GET / HTTP/1.1\r\nHost: a\r\n"), .rc = XLB_H1_MORE },
    { "limits_ok", REQ, &small, M("GET /123456 HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
      BODY(NONE, OK, "", 0) }, /* start line of exactly 20 */
    /* invalid requests */
    { "bare_lf_line", REQ, M("GET / HTTP/1.1\nHost: a\r\n\r\n"), HERR(BARE_LF, 400) },
    { "bare_lf_field", REQ, M(RQ "X: y\n\r\n"), HERR(BARE_LF, 400) },
    { "bare_lf_end", REQ, M(RQ "\n"), HERR(BARE_LF, 400) },
    { "bare_lf_leading", REQ, M("\n" RQ "\r\n"), HERR(BARE_LF, 400) },
    { "bare_cr_field", REQ, M(RQ "X: a\rb\r\n\r\n"), HERR(BARE_LF, 400) },
    { "bare_cr_line", REQ, M("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(BARE_LF, 400) },
    { "cr_cr_lf", REQ, M(RQ "X: a\r\r\n\r\n"), HERR(BARE_LF, 400) },
    { "ctl_method", REQ, M("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(CTL, 400) },
    { "ctl_target", REQ, M("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(CTL, 400) },
    { "ctl_version", REQ, M("GET / HTTP/1.1\x7f\r\nHost: a\r\n\r\n"), HERR(CTL, 400) },
    { "ctl_name", REQ, M(RQ "X\x01Y: a\r\n\r\n"), HERR(CTL, 400) },
    { "method_quote", REQ, M("\"GET\" / HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(METHOD, 400) },
    { "method_empty", REQ, M(" / HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(METHOD, 400) },
    { "method_only", REQ, M("GET\r\nHost: a\r\n\r\n"), HERR(METHOD, 400) },
    { "target_empty", REQ, M("GET  HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(TARGET, 400) },
    { "target_double_sp", REQ, M("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(TARGET, 400) },
    { "target_obs_text", REQ, M("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(TARGET, 400) },
    { "version_12", REQ, M("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HERR(VERSION, 505) },
    { "version_20", REQ, M("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HERR(VERSION, 505) },
    { "version_2", REQ, M("GET / HTTP/2\r\n\r\n"), HERR(VERSION, 505) },
    { "version_09", REQ, M("GET /\r\n"), HERR(VERSION, 505) },
    { "version_lower", REQ, M("GET / http/1.1\r\nHost: a\r\n\r\n"), HERR(VERSION, 400) },
    { "version_trailing_sp", REQ, M("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), HERR(VERSION, 400) },
    { "version_extra", REQ, M("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n"), HERR(VERSION, 400) },
    { "line_too_long", REQ, &small, M("GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n"),
      HERR(LINE_TOO_LONG, 414) },
    { "line_too_long_open", REQ, &small, M("GET /12345678901234567890"),
      HERR(LINE_TOO_LONG, 414) },
    { "line_too_long_default", REQ,
      M("GET /" "0123456789012345678901234567890123456789012345678901234567890123456789"),
      .rc = XLB_H1_MORE },
    { "head_too_large", REQ, &small,
      M("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789\r\n\r\n"),
      HERR(HEAD_TOO_LARGE, 431) },
    { "head_too_large_crlf", REQ, &small,
      M("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), HERR(HEAD_TOO_LARGE, 431) },
    { "too_many_headers", REQ, &small, M("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
      HERR(TOO_MANY_HEADERS, 431) },
    { "obs_fold", REQ, M(RQ "X: a\r\n b\r\n\r\n"), HERR(OBS_FOLD, 400) },
    { "obs_fold_tab", REQ, M(RQ "X: a\r\n\tb\r\n\r\n"), HERR(OBS_FOLD, 400) },
    { "ws_first_field", REQ, M("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HERR(OBS_FOLD, 400) },
    { "space_before_colon", REQ, M("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "tab_before_colon", REQ, M(RQ "Content-Length\t: 5\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "name_empty", REQ, M(RQ ": a\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "name_paren", REQ, M(RQ "X(y): a\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "name_no_colon", REQ, M(RQ "Xy\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "name_utf8", REQ, M(RQ "X\xc3\xa9: a\r\n\r\n"), HERR(FIELD_NAME, 400) },
    { "value_nul", REQ, M(RQ "X: a\0b\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "value_ctl_late", REQ, M(RQ "X: 0123456789abcdef\x01gh\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "value_us_late", REQ, M(RQ "X: 0123456789abcdef\x1f\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "value_del_late", REQ, M(RQ "X: 0123456789abcdefghijklm\x7f\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "target_del_late", REQ, M("GET /0123456789abcdef\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(CTL, 400) },
    { "target_utf8_late", REQ, M("GET /0123456789abcdef\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
      HERR(TARGET, 400) },
    { "target_tab_late", REQ, M("GET /0123456789abcdef\tx HTTP/1.1\r\nHost: a\r\n\r\n"), HERR(CTL, 400) },
    { "value_del", REQ, M(RQ "X: a\x7f\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "value_ctl", REQ, M(RQ "X: \x1b[0m\r\n\r\n"), HERR(FIELD_VALUE, 400) },
    { "cl_twice_same", REQ, M(RQ "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
      HERR(CONTENT_LENGTH, 400) },
    { "cl_twice_diff", REQ, M(RQ "Content-Length: 5\r\ncontent-length: 6\r\n\r\nhello"),
      HERR(CONTENT_LENGTH, 400) },
    { "cl_list", REQ, M(RQ "Content-Length: 5, 5\r\n\r\nhello"), HERR(CONTENT_LENGTH, 400) },
    { "cl_plus", REQ, M(RQ "Content-Length: +5\r\n\r\nhello"), HERR(CONTENT_LENGTH, 400) },
    { "cl_minus", REQ, M(RQ "Content-Length: -5\r\n\r\nhello"), HERR(CONTENT_LENGTH, 400) },
    { "cl_inner_space", REQ, M(RQ "Content-Length: 1 0\r\n\r\nhello"), HERR(CONTENT_LENGTH, 400) },
    { "cl_hex", REQ, M(RQ "Content-Length: 0x5\r\n\r\nhello"), HERR(CONTENT_LENGTH, 400) },
    { "cl_empty", REQ, M(RQ "Content-Length:\r\n\r\n"), HERR(CONTENT_LENGTH, 400) },
    { "cl_overflow", REQ, M(RQ "Content-Length: 18446744073709551616\r\n\r\n"),
      HERR(CONTENT_LENGTH, 400) },
    { "cl_then_te", REQ, M(RQ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
      HERR(CL_AND_TE, 400) },
    { "te_then_cl", REQ, M(RQ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
      HERR(CL_AND_TE, 400) },
    { "te_chunked_twice_list", REQ, M(RQ "Transfer-Encoding: chunked, chunked\r\n\r\n"),
      HERR(TE, 400) },
    { "te_chunked_twice_fields", REQ,
      M(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), HERR(TE, 400) },
    { "te_gzip", REQ, M(RQ "Transfer-Encoding: gzip\r\n\r\n"), HERR(TE, 501) },
    { "te_gzip_chunked", REQ, M(RQ "Transfer-Encoding: gzip, chunked\r\n\r\n"), HERR(TE, 501) },
    { "te_chunked_gzip", REQ, M(RQ "Transfer-Encoding: chunked, gzip\r\n\r\n"), HERR(TE, 400) },
    { "te_chunked_param", REQ, M(RQ "Transfer-Encoding: chunked;q=1\r\n\r\n"), HERR(TE, 501) },
    { "te_http10", REQ, M("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      HERR(TE, 400) },
    { "te_empty", REQ, M(RQ "Transfer-Encoding: , \r\n\r\n"), HERR(TE, 400) },
    { "no_host", REQ, M("GET / HTTP/1.1\r\nX: y\r\n\r\n"), HERR(HOST, 400) },
    { "two_hosts", REQ, M(RQ "host: b\r\n\r\n"), HERR(HOST, 400) },
    { "two_hosts_10", REQ, M("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), HERR(HOST, 400) },
    { "cl_over_max_body", REQ, &small, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"),
      HERR(BODY_TOO_LARGE, 413) },
    { "cl_at_max_body", REQ, &small, M("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"),
      BODY(LENGTH, OK, "0123456789", 10) },
    /* chunked body errors */
    { "chunk_over_max_body", REQ, &small,
      M("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"),
      BERR(BODY_TOO_LARGE, 413) },
    { "chunk_empty_size", REQ, M(PC "\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_not_hex", REQ, M(PC "g\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_minus", REQ, M(PC "-5\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_0x", REQ, M(PC "0x5\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_overflow", REQ, M(PC "ffffffffffffffffff\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_16_digits", REQ, M(PC "0000000000000001\r\nx\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_size_bare_lf", REQ, M(PC "5\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_size_bare_cr", REQ, M(PC "5\rhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_size_trailing_ws", REQ, M(PC "5 \r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_size_leading_ws", REQ, M(PC " 5\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_empty_name", REQ, M(PC "5;\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_empty_value", REQ, M(PC "5;a=\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_open_quote", REQ, M(PC "5;a=\"x\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_two_names", REQ, M(PC "5;a b\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_two_values", REQ, M(PC "5;a=b c\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_after_quote", REQ, M(PC "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_ws_end", REQ, M(PC "5;a \r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_ctl", REQ, M(PC "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_ext_bad_char", REQ, M(PC "5;a@b\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_SIZE, 400) },
    { "chunk_no_crlf", REQ, M(PC "5\r\nhelloX\r\n0\r\n\r\n"), BERR(CHUNK_DATA, 400) },
    { "chunk_cr_only", REQ, M(PC "5\r\nhello\rX0\r\n\r\n"), BERR(CHUNK_DATA, 400) },
    { "chunk_lf_only", REQ, M(PC "5\r\nhello\n0\r\n\r\n"), BERR(CHUNK_DATA, 400) },
    { "chunk_too_long", REQ, M(PC "6\r\nhello\r\n0\r\n\r\n"), BERR(CHUNK_DATA, 400) },
    { "trailer_space_colon", REQ, M(PC "0\r\nX : y\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_obs_fold", REQ, M(PC "0\r\nX: y\r\n z\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_nul", REQ, M(PC "0\r\nX: a\0\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_bare_lf", REQ, M(PC "0\r\nX: a\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_cr_cr", REQ, M(PC "0\r\nX: a\r\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_no_colon", REQ, M(PC "0\r\nXy\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_empty_name", REQ, M(PC "0\r\n: a\r\n\r\n"), BERR(TRAILER, 400) },
    { "trailer_end_bare_cr", REQ, M(PC "0\r\n\rX"), BERR(TRAILER, 400) },
    { "trailer_end_bare_lf", REQ, M(PC "0\r\n\n"), BERR(TRAILER, 400) },
    /* responses */
    { "resp_cl", RESP, M(RS "Content-Length: 3\r\n\r\nabcHTTP/1.1"), BODY(LENGTH, OK, "abc", 3) },
    { "resp_chunked", RESP, M(RS "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "abc", 13) },
    { "resp_gzip_chunked", RESP, M(RS "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      BODY(CHUNKED, OK, "", 5) },
    { "resp_te_gzip_eof", RESP, M(RS "Transfer-Encoding: gzip\r\n\r\nabc"), BODY(EOF, MORE, "abc", 3) },
    { "resp_eof", RESP, M(RS "\r\nabc"), BODY(EOF, MORE, "abc", 3) },
    { "resp_head_cl", RESP_HEAD, M(RS "Content-Length: 3\r\n\r\n"), BODY(NONE, OK, "", 0) },
    { "resp_head_chunked", RESP_HEAD, M(RS "Transfer-Encoding: chunked\r\n\r\n"), BODY(NONE, OK, "", 0) },
    { "resp_100", RESP, M("HTTP/1.1 100 Continue\r\n\r\n" RS), BODY(NONE, OK, "", 0) },
    { "resp_101", RESP, M("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
      BODY(NONE, OK, "", 0) },
    { "resp_204", RESP, M("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), BODY(NONE, OK, "", 0) },
    { "resp_304", RESP, M("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
      BODY(NONE, OK, "", 0) },
    { "resp_no_reason", RESP, M("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), BODY(LENGTH, OK, "", 0) },
    { "resp_empty_reason", RESP, M("HTTP/1.0 404 \r\nContent-Length: 0\r\n\r\n"), BODY(LENGTH, OK, "", 0) },
    { "resp_999", RESP, M("HTTP/1.1 999 Odd\tone\xc3\xa9\r\nContent-Length: 0\r\n\r\n"),
      BODY(LENGTH, OK, "", 0) },
    { "resp_over_max_body", RESP, &small, M(RS "\r\n0123456789x"), .framing = XLB_H1_BODY_EOF,
      .body_rc = XLB_H1_ERR, .err = XLB_H1_E_BODY_TOO_LARGE, .status = 502 },
    { "resp_at_max_body", RESP, &small, M(RS "\r\n0123456789"), BODY(EOF, MORE, "0123456789", 10) },
    { "resp_status_short", RESP, M("HTTP/1.1 20 OK\r\n\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_status_long", RESP, M("HTTP/1.1 2000 OK\r\n\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_status_low", RESP, M("HTTP/1.1 099 OK\r\n\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_status_alpha", RESP, M("HTTP/1.1 2x0 OK\r\n\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_status_none", RESP, M("HTTP/1.1\r\n\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_leading_crlf", RESP, M("\r\n" RS "\r\n"), HERR(STATUS_LINE, 502) },
    { "resp_version_2", RESP, M("HTTP/2 200 OK\r\n\r\n"), HERR(VERSION, 502) },
    { "resp_version_garbage", RESP, M("HTTX/1.1 200 OK\r\n\r\n"), HERR(VERSION, 502) },
    { "resp_reason_ctl", RESP, M("HTTP/1.1 200 O\x01K\r\n\r\n"), HERR(CTL, 502) },
    { "resp_reason_cr", RESP, M("HTTP/1.1 200 O\rK\r\n\r\n"), HERR(BARE_LF, 502) },
    { "resp_bare_lf", RESP, M("HTTP/1.1 200 OK\n\n"), HERR(BARE_LF, 502) },
    { "resp_cl_te", RESP, M(RS "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
      HERR(CL_AND_TE, 502) },
    { "resp_cl_twice", RESP, M(RS "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
      HERR(CONTENT_LENGTH, 502) },
    { "resp_te_chunked_twice", RESP, M(RS "Transfer-Encoding: chunked, chunked\r\n\r\n"), HERR(TE, 502) },
    { "resp_te_chunked_not_last", RESP, M(RS "Transfer-Encoding: chunked, gzip\r\n\r\n"), HERR(TE, 502) },
    { "resp_obs_fold", RESP, M(RS "X: a\r\n b\r\n\r\n"), HERR(OBS_FOLD, 502) },
    { "resp_too_long", RESP, &small, M("HTTP/1.1 200 OKOKOKOKOKOK\r\n\r\n"), HERR(LINE_TOO_LONG, 502) },
    { "resp_head_too_large", RESP, &small,
      M(RS "X: 01234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"),
      HERR(HEAD_TOO_LARGE, 502) },
    { "resp_chunk_bad", RESP, M(RS "Transfer-Encoding: chunked\r\n\r\nz\r\n"), BERR(CHUNK_SIZE, 502) },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* Check the one-shot outcome of c against its expectations. */
static void check_case(const struct tcase *c, const struct out *o)
{
    cr_assert_eq(o->rc, c->rc, "%s: head rc %d (%s), want %d", c->name, o->rc,
                 xlb_h1_error_name(o->err), c->rc);
    if (c->rc == XLB_H1_ERR) {
        cr_assert_eq(o->err, c->err, "%s: error %s, want %s", c->name, xlb_h1_error_name(o->err),
                     xlb_h1_error_name(c->err));
        cr_assert_eq(o->status, c->status, "%s: status %d, want %d", c->name, o->status, c->status);
        return;
    }
    if (c->rc != XLB_H1_OK)
        return;
    cr_assert_eq(o->h.framing, c->framing, "%s: framing %d, want %d", c->name, o->h.framing,
                 c->framing);
    cr_assert_eq(o->body_rc, c->body_rc, "%s: body rc %d (%s), want %d", c->name, o->body_rc,
                 xlb_h1_error_name(o->body_err), c->body_rc);
    if (c->body_rc == XLB_H1_ERR) {
        cr_assert_eq(o->body_err, c->err, "%s: body error %s, want %s", c->name,
                     xlb_h1_error_name(o->body_err), xlb_h1_error_name(c->err));
        cr_assert_eq(o->body_status, c->status, "%s: status %d", c->name, o->body_status);
        return;
    }
    cr_assert(o->plen == strlen(c->payload) && memcmp(o->payload, c->payload, o->plen) == 0,
              "%s: payload '%.*s'", c->name, (int)o->plen, o->payload);
    cr_assert_eq(o->consumed, c->body_len, "%s: consumed %zu, want %zu", c->name, o->consumed,
                 c->body_len);
}

Test(http1_table, every_case)
{
    static struct out o;

    for (size_t i = 0; i < N_CASES; i++) {
        parse_once(&o, cases[i].kind, cases[i].lim, cases[i].msg, cases[i].len);
        check_case(&cases[i], &o);
    }
}

Test(http1_table, every_error_triggered)
{
    static struct out o;
    bool seen[XLB_H1_E_STATE + 1] = { 0 };
    struct xlb_h1_parser p;
    struct xlb_h1_field f[4];
    size_t c, dl;
    const char *d;

    for (size_t i = 0; i < N_CASES; i++) {
        parse_once(&o, cases[i].kind, cases[i].lim, cases[i].msg, cases[i].len);
        seen[o.rc == XLB_H1_ERR ? o.err : o.body_err] = true;
    }
    /* A body before its head is a caller's bug. */
    xlb_h1_init(&p, XLB_H1_REQUEST, NULL, f, 4);
    cr_assert_eq(xlb_h1_body(&p, "x", 1, &c, &d, &dl), XLB_H1_ERR);
    cr_assert_eq(p.error, XLB_H1_E_STATE);
    seen[p.error] = true;
    for (int e = XLB_H1_E_BARE_LF; e <= XLB_H1_E_STATE; e++)
        cr_assert(seen[e], "no case gives %s", xlb_h1_error_name(e));
}

/* ---- fields, keep-alive and flags ---- */

static void parse_req(struct xlb_h1_parser *p, struct xlb_h1_field *f, const char *msg)
{
    xlb_h1_init(p, XLB_H1_REQUEST, NULL, f, MAXF);
    cr_assert_eq(xlb_h1_head(p, msg, strlen(msg)), XLB_H1_OK, "%s: %s", msg,
                 xlb_h1_error_name(p->error));
}

static bool str_is(const char *buf, struct xlb_h1_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(buf + s.off, want, s.len) == 0;
}

Test(http1_req, browser_get_fields)
{
    static const char msg[] =
        "\r\nGET /index.html?q=1 HTTP/1.1\r\n"
        "Host:   www.example.com \t\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        "Accept:text/html\r\n"
        "X-Empty:\r\n"
        "X-Blank:   \r\n"
        "\r\nNEXT";
    struct xlb_h1_field f[MAXF];
    struct xlb_h1_parser p;

    parse_req(&p, f, msg);
    cr_assert(str_is(msg, p.head.method, "GET"));
    cr_assert(str_is(msg, p.head.target, "/index.html?q=1"));
    cr_assert_eq(p.head.version_minor, 1);
    cr_assert_eq(p.head.n_fields, 5);
    cr_assert_eq(p.head.fields, f);
    cr_assert(str_is(msg, f[0].name, "Host") && str_is(msg, f[0].value, "www.example.com"));
    cr_assert(str_is(msg, f[1].value, "Mozilla/5.0 (X11; Linux x86_64)"));
    cr_assert(str_is(msg, f[2].name, "Accept") && str_is(msg, f[2].value, "text/html"));
    cr_assert(str_is(msg, f[3].name, "X-Empty") && f[3].value.len == 0);
    cr_assert(str_is(msg, f[4].name, "X-Blank") && f[4].value.len == 0);
    cr_assert_eq(p.head.host_field, 0);
    cr_assert_eq(p.head.connection_field, -1);
    cr_assert_eq(p.head.head_len, sizeof(msg) - 1 - 4);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_NONE);
    cr_assert(p.head.keep_alive && !p.head.upgrade && !p.head.expect_continue);
    cr_assert_eq(xlb_h1_find(&p.head, msg, "accept", 0), 2);
    cr_assert_eq(xlb_h1_find(&p.head, msg, "HOST", 1), -1);
    cr_assert_eq(xlb_h1_find(&p.head, msg, "Hos", 0), -1);
    /* Once complete, the head is not parsed again. */
    cr_assert_eq(xlb_h1_head(&p, msg, sizeof(msg) - 1), XLB_H1_OK);
    cr_assert_eq(p.head.n_fields, 5);
}

Test(http1_req, keep_alive_rules)
{
    static const struct {
        const char *msg;
        bool ka;
    } t[] = {
        { "GET / HTTP/1.0\r\n\r\n", false },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
        { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true },
        { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
        { "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE ,bar\r\n\r\n", false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n", false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true },
        { "GET / HTTP/1.1\r\nHost: a\r\nX-Connection: close\r\n\r\n", true },
    };
    struct xlb_h1_field f[MAXF];
    struct xlb_h1_parser p;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        parse_req(&p, f, t[i].msg);
        cr_assert_eq(p.head.keep_alive, t[i].ka, "%s", t[i].msg);
        /* the first Connection field, when there is one */
        cr_assert_eq(p.head.connection_field, xlb_h1_find(&p.head, t[i].msg, "connection", 0),
                     "%s", t[i].msg);
    }
}

Test(http1_req, expect_and_upgrade)
{
    struct xlb_h1_field f[MAXF];
    struct xlb_h1_parser p;

    parse_req(&p, f, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    cr_assert(p.head.expect_continue);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_LENGTH);
    cr_assert_eq(p.head.content_length, 1);
    parse_req(&p, f, "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    cr_assert(!p.head.expect_continue);
    parse_req(&p, f, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    cr_assert(p.head.upgrade);
    parse_req(&p, f, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    cr_assert(!p.head.upgrade);
    parse_req(&p, f, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
    cr_assert(!p.head.upgrade);
}

Test(http1_resp, framing_and_fields)
{
    static const char msg[] = "HTTP/1.0 503 Service Unavailable\r\nConnection: keep-alive\r\n"
                              "Content-Length: 12\r\n\r\n";
    struct xlb_h1_field f[MAXF];
    struct xlb_h1_parser p;

    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, f, MAXF);
    cr_assert_eq(xlb_h1_head(&p, msg, sizeof(msg) - 1), XLB_H1_OK);
    cr_assert_eq(p.head.status, 503);
    cr_assert(str_is(msg, p.head.reason, "Service Unavailable"));
    cr_assert_eq(p.head.version_minor, 0);
    cr_assert(p.head.keep_alive);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_LENGTH);
    cr_assert_eq(p.head.content_length, 12);
    cr_assert_eq(p.head.host_field, -1);

    /* Close-delimited responses never keep the connection. */
    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, f, MAXF);
    cr_assert_eq(xlb_h1_head(&p, "HTTP/1.1 200 OK\r\n\r\n", 19), XLB_H1_OK);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_EOF);
    cr_assert(!p.head.keep_alive);
    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, f, MAXF);
    cr_assert_eq(xlb_h1_head(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: br\r\n\r\n", 42), XLB_H1_OK);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_EOF);
    cr_assert(!p.head.keep_alive);
    /* 304 with a Content-Length has no body, and keeps the connection. */
    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, f, MAXF);
    cr_assert_eq(xlb_h1_head(&p, "HTTP/1.1 304 NM\r\nContent-Length: 9\r\n\r\n", 38), XLB_H1_OK);
    cr_assert_eq(p.head.framing, XLB_H1_BODY_NONE);
    cr_assert(p.head.keep_alive);
    cr_assert_eq(p.head.content_length, 0);
}

/* Pipelined requests: each body ends exactly where the next message starts. */
Test(http1_body, pipelined)
{
    static const char stream[] =
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2;x=y\r\nde\r\n1\r\nf\r\n0\r\nT: 1\r\n\r\n"
        "\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n"
        "GET /d HTTP/1.0\r\n\r\n";
    static const char *targets[] = { "/a", "/b", "/c", "/d" };
    static const char *payloads[] = { "abc", "def", "", "" };
    struct xlb_h1_field f[MAXF];
    struct xlb_h1_parser p;
    size_t off = 0, n = sizeof(stream) - 1;
    char copy[sizeof(stream)];

    memcpy(copy, stream, sizeof(stream));
    for (int m = 0; m < 4; m++) {
        struct out o;
        const char *msg = stream + off;
        xlb_h1_init(&p, XLB_H1_REQUEST, NULL, f, MAXF);
        cr_assert_eq(xlb_h1_head(&p, msg, n - off), XLB_H1_OK);
        cr_assert(str_is(msg, p.head.target, targets[m]));
        memset(&o, 0, sizeof(o));
        feed_body(&p, &o, msg + p.head.head_len, n - off - p.head.head_len, 0, 0);
        cr_assert_eq(o.body_rc, XLB_H1_OK);
        cr_assert(o.plen == strlen(payloads[m]) && memcmp(o.payload, payloads[m], o.plen) == 0);
        off += p.head.head_len + o.consumed;
    }
    cr_assert_eq(off, n);
    cr_assert(memcmp(copy, stream, sizeof(stream)) == 0);
}

/* Payload runs point into the input, one run per call, exact counts. */
Test(http1_body, runs_and_counts)
{
    static const char body[] = "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nGET";
    static const char msg[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct xlb_h1_field f[8];
    struct xlb_h1_parser p;
    size_t c, dl;
    const char *d;

    xlb_h1_init(&p, XLB_H1_REQUEST, NULL, f, 8);
    cr_assert_eq(xlb_h1_head(&p, msg, sizeof(msg) - 1), XLB_H1_OK);
    cr_assert_eq(xlb_h1_body(&p, body, sizeof(body) - 1, &c, &d, &dl), XLB_H1_MORE);
    cr_assert(c == 7 && d == body + 3 && dl == 4);
    cr_assert_eq(xlb_h1_body(&p, body + 7, sizeof(body) - 8, &c, &d, &dl), XLB_H1_MORE);
    cr_assert(c == 10 && d == body + 12 && dl == 5);
    cr_assert_eq(xlb_h1_body(&p, body + 17, sizeof(body) - 18, &c, &d, &dl), XLB_H1_OK);
    cr_assert(c == 7 && dl == 0);
    cr_assert_eq(xlb_h1_body(&p, body + 24, 3, &c, &d, &dl), XLB_H1_OK);
    cr_assert_eq(c, 0);
    /* An empty input makes no progress and is not an error. */
    xlb_h1_init(&p, XLB_H1_REQUEST, NULL, f, 8);
    cr_assert_eq(xlb_h1_head(&p, msg, sizeof(msg) - 1), XLB_H1_OK);
    cr_assert_eq(xlb_h1_body(&p, NULL, 0, &c, &d, &dl), XLB_H1_MORE);
    cr_assert(c == 0 && dl == 0);
}

Test(http1_body, max_body_chunked_and_eof)
{
    struct xlb_h1_limits lim;
    struct xlb_h1_field f[8];
    struct xlb_h1_parser p;
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct out o;

    xlb_h1_limits_default(&lim);
    cr_assert(lim.max_start_line == 8192 && lim.max_head == 32768 && lim.max_headers == 100 &&
              lim.max_body == 0);
    lim.max_body = 8;
    xlb_h1_init(&p, XLB_H1_REQUEST, &lim, f, 8);
    cr_assert_eq(xlb_h1_head(&p, head, sizeof(head) - 1), XLB_H1_OK);
    memset(&o, 0, sizeof(o));
    feed_body(&p, &o, "4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", 24, 0, 0);
    cr_assert_eq(o.body_rc, XLB_H1_OK);     /* exactly max_body */
    xlb_h1_init(&p, XLB_H1_REQUEST, &lim, f, 8);
    cr_assert_eq(xlb_h1_head(&p, head, sizeof(head) - 1), XLB_H1_OK);
    feed_body(&p, &o, "4\r\nabcd\r\n5\r\nefghi\r\n0\r\n\r\n", 25, 0, 0);
    cr_assert_eq(o.body_rc, XLB_H1_ERR);
    cr_assert(p.error == XLB_H1_E_BODY_TOO_LARGE && p.status == 413);
    cr_assert(o.plen == 4);                 /* refused before the chunk is passed on */
    cr_assert_eq(xlb_h1_head(&p, head, sizeof(head) - 1), XLB_H1_ERR);
    /* Without a limit, a 15-digit chunk size is fine. */
    xlb_h1_init(&p, XLB_H1_REQUEST, NULL, f, 8);
    cr_assert_eq(xlb_h1_head(&p, head, sizeof(head) - 1), XLB_H1_OK);
    feed_body(&p, &o, "fffffffffffffff\r\nab", 19, 0, 0);
    cr_assert(o.body_rc == XLB_H1_MORE && o.plen == 2 && o.consumed == 19);
    /* max_headers above the array is lowered to it. */
    lim.max_headers = 1000;
    xlb_h1_init(&p, XLB_H1_REQUEST, &lim, f, 2);
    cr_assert_eq(xlb_h1_head(&p, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", 40), XLB_H1_ERR);
    cr_assert(p.error == XLB_H1_E_TOO_MANY_HEADERS && p.status == 431);
}

Test(http1_misc, helpers)
{
    static const char buf[] = "xConnectiony";

    cr_assert(xlb_h1_list_has("close", 5, "close"));
    cr_assert(xlb_h1_list_has(" a ,\tClose\t, b", 14, "close"));
    cr_assert(xlb_h1_list_has("a,,b", 4, "b"));
    cr_assert(!xlb_h1_list_has("closed, xclose", 14, "close"));
    cr_assert(!xlb_h1_list_has("close", 4, "close"));
    cr_assert(!xlb_h1_list_has("", 0, "close"));
    cr_assert(xlb_h1_str_eq(buf, (struct xlb_h1_str){ 1, 10 }, "CONNECTION"));
    cr_assert(!xlb_h1_str_eq(buf, (struct xlb_h1_str){ 1, 10 }, "Connectio"));
    cr_assert(!xlb_h1_str_eq(buf, (struct xlb_h1_str){ 1, 9 }, "Connection"));
    cr_assert(xlb_h1_str_eq(buf, (struct xlb_h1_str){ 0, 0 }, ""));
    cr_assert_str_eq(xlb_h1_error_name(XLB_H1_E_NONE), "none");
    cr_assert_str_eq(xlb_h1_error_name((enum xlb_h1_error)999), "unknown");
    for (int e = XLB_H1_E_NONE; e <= XLB_H1_E_STATE; e++)
        cr_assert_str_neq(xlb_h1_error_name(e), "unknown");
}

/* ---- splits ---- */

/* Parse the head of c in a growing buffer: first k bytes, then all.  Each
 * call sees an exact-size heap copy, so ASan catches a read past it. */
static void parse_split(struct out *o, const struct tcase *c, size_t k, size_t body_step,
                        size_t body_first)
{
    struct xlb_h1_parser p;
    char *a = malloc(k ? k : 1), *b = malloc(c->len);
    int rc;

    cr_assert(a && b);
    memcpy(a, c->msg, k);
    memcpy(b, c->msg, c->len);
    start(&p, o, c->kind, c->lim);
    rc = xlb_h1_head(&p, a, k);
    if (rc == XLB_H1_MORE)
        rc = xlb_h1_head(&p, b, c->len);
    save_head(&p, o, rc);
    if (rc == XLB_H1_OK)
        feed_body(&p, o, b + o->h.head_len, c->len - o->h.head_len, body_step, body_first);
    free(a);
    free(b);
}

Test(http1_split, every_boundary)
{
    static struct out one, o;
    char what[128];

    for (size_t i = 0; i < N_CASES; i++) {
        const struct tcase *c = &cases[i];
        size_t body;

        parse_once(&one, c->kind, c->lim, c->msg, c->len);
        for (size_t k = 0; k <= c->len; k++) {
            snprintf(what, sizeof(what), "%s head split %zu", c->name, k);
            parse_split(&o, c, k, 0, 0);
            same(&one, &o, what);
        }
        if (one.rc != XLB_H1_OK)
            continue;
        body = c->len - one.h.head_len;
        for (size_t k = 1; k < body; k++) {
            snprintf(what, sizeof(what), "%s body split %zu", c->name, k);
            parse_split(&o, c, c->len, 0, k);
            same(&one, &o, what);
        }
        snprintf(what, sizeof(what), "%s body bytewise", c->name);
        parse_split(&o, c, c->len, 1, 0);
        same(&one, &o, what);
    }
}

/* Head bytes arriving one at a time in a growing buffer. */
Test(http1_split, head_bytewise)
{
    static struct out one, o;
    struct xlb_h1_parser p;

    for (size_t i = 0; i < N_CASES; i++) {
        const struct tcase *c = &cases[i];
        int rc = XLB_H1_MORE;

        parse_once(&one, c->kind, c->lim, c->msg, c->len);
        start(&p, &o, c->kind, c->lim);
        for (size_t k = 0; k <= c->len && rc == XLB_H1_MORE; k++)
            rc = xlb_h1_head(&p, c->msg, k);
        save_head(&p, &o, rc);
        if (rc == XLB_H1_OK)
            feed_body(&p, &o, c->msg + o.h.head_len, c->len - o.h.head_len, 0, 0);
        same(&one, &o, c->name);
    }
}

/* ---- guard page ---- */

Test(http1_guard, end_at_prot_none)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *edge;
    static struct out one, o;
    struct xlb_h1_parser p;

    cr_assert(map != MAP_FAILED);
    cr_assert_eq(mprotect(map + pg, pg, PROT_NONE), 0);
    edge = map + pg;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct tcase *c = &cases[i];
        int rc = XLB_H1_MORE;
        char *m;

        cr_assert((long)c->len <= pg);
        parse_once(&one, c->kind, c->lim, c->msg, c->len);
        /* the head, every prefix of it ending at the guard */
        start(&p, &o, c->kind, c->lim);
        for (size_t k = 0; k <= c->len && rc == XLB_H1_MORE; k++) {
            memcpy(edge - k, c->msg, k);
            rc = xlb_h1_head(&p, edge - k, k);
        }
        save_head(&p, &o, rc);
        /* the body at once, ending at the guard */
        m = edge - c->len;
        memcpy(m, c->msg, c->len);
        if (rc == XLB_H1_OK)
            feed_body(&p, &o, m + o.h.head_len, c->len - o.h.head_len, 0, 0);
        same(&one, &o, c->name);
        /* the body one byte at a time, each at the last byte of the page */
        if (one.rc == XLB_H1_OK) {
            size_t n = c->len - one.h.head_len;
            start(&p, &o, c->kind, c->lim);
            cr_assert_eq(xlb_h1_head(&p, m, c->len), XLB_H1_OK);
            o.rc = XLB_H1_OK;
            o.h = p.head;
            o.plen = o.consumed = 0;
            o.body_rc = XLB_H1_MORE;
            for (size_t k = 0; k < n && o.body_rc == XLB_H1_MORE; k++) {
                size_t cns = 0, dl = 0;
                const char *d;
                edge[-1] = c->msg[one.h.head_len + k];
                o.body_rc = xlb_h1_body(&p, edge - 1, 1, &cns, &d, &dl);
                if (dl)
                    o.payload[o.plen++] = *d;
                o.consumed += cns;
            }
            if (!n)
                o.body_rc = xlb_h1_body(&p, edge, 0, &o.consumed, &(const char *){ NULL },
                                        &(size_t){ 0 });
            o.body_err = o.body_rc == XLB_H1_ERR ? p.error : XLB_H1_E_NONE;
            o.body_status = o.body_rc == XLB_H1_ERR ? p.status : 0;
            same(&one, &o, c->name);
        }
    }
    munmap(map, 2 * pg);
}
