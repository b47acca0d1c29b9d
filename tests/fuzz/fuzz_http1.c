// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for common/xlb_http1.c.
 *
 * The first input byte is the mode, the rest is the message:
 *   bits 0-1  0, 3: request; 1: response; 2: response to HEAD
 *   bit  2    small limits (start line 64, head 256, 8 fields, body 64)
 *   bits 3-7  where the head is split (k = bits * (len + 1) / 32) and the
 *             piece size of the second body decoding (bits % 8 + 1)
 * The head is parsed one-shot and in two calls (k bytes, then all) and both
 * outcomes must agree; the body is decoded at once and in small pieces and
 * payload, outcome and byte counts must agree.  Every input buffer is an
 * exact-size heap copy, so a read past its end is an ASan report.  Any
 * disagreement or broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xlb_http1.h"

#define MAXF 64

struct res {
    int rc;
    enum xlb_h1_error err;
    int status;
    struct xlb_h1_head h;
    struct xlb_h1_field f[MAXF];
    int body_rc;
    enum xlb_h1_error body_err;
    int body_status;
    size_t consumed;
    size_t plen;
};

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void prepare(struct xlb_h1_parser *p, struct res *r, uint8_t mode)
{
    static const struct xlb_h1_limits small = {
        .max_start_line = 64, .max_head = 256, .max_headers = 8, .max_body = 64,
    };

    memset(r, 0, sizeof(*r));
    xlb_h1_init(p, (mode & 3) == 1 || (mode & 3) == 2 ? XLB_H1_RESPONSE : XLB_H1_REQUEST,
                mode & 4 ? &small : NULL, r->f, MAXF);
    if ((mode & 3) == 2)
        xlb_h1_set_head_request(p, true);
}

static void save(const struct xlb_h1_parser *p, struct res *r, int rc, size_t len)
{
    CHECK(rc == XLB_H1_OK || rc == XLB_H1_MORE || rc == XLB_H1_ERR);
    r->rc = rc;
    r->err = p->error;
    r->status = rc == XLB_H1_ERR ? p->status : 0;
    CHECK((rc == XLB_H1_ERR) == (r->err != XLB_H1_E_NONE));
    r->h = p->head;
    if (rc != XLB_H1_OK)
        return;
    CHECK(r->h.head_len <= len);
    CHECK(r->h.n_fields <= MAXF);
    for (uint32_t i = 0; i < r->h.n_fields; i++) {
        CHECK(r->f[i].name.len > 0);
        CHECK(r->f[i].name.off + r->f[i].name.len <= r->h.head_len);
        CHECK(r->f[i].value.off + r->f[i].value.len <= r->h.head_len);
    }
}

/* Decode body[0..n) in pieces of step bytes (0: one piece); the payload is
 * appended to out. */
static void decode(struct xlb_h1_parser *p, struct res *r, const uint8_t *src, size_t n,
                   size_t step, char *out)
{
    size_t off = 0;
    int rc = XLB_H1_MORE;

    while (rc == XLB_H1_MORE && off < n) {
        size_t piece = step && step < n - off ? step : n - off, used = 0;
        char *in = malloc(piece);

        CHECK(in);
        memcpy(in, src + off, piece);
        while (rc == XLB_H1_MORE && used < piece) {
            size_t c = 0, dl = 0;
            const char *d = NULL;
            rc = xlb_h1_body(p, in + used, piece - used, &c, &d, &dl);
            CHECK(rc == XLB_H1_OK || rc == XLB_H1_MORE || rc == XLB_H1_ERR);
            if (rc == XLB_H1_ERR)
                break;
            CHECK(c <= piece - used);
            CHECK(rc != XLB_H1_MORE || c > 0);
            if (dl) {
                CHECK(d >= in + used && d + dl <= in + used + c);
                memcpy(out + r->plen, d, dl);
                r->plen += dl;
            }
            used += c;
        }
        free(in);
        off += used;
    }
    if (n == 0) {
        size_t c, dl;
        const char *d;
        rc = xlb_h1_body(p, NULL, 0, &c, &d, &dl);
        CHECK(rc == XLB_H1_ERR || c == 0);
    }
    r->consumed = off;
    r->body_rc = rc;
    r->body_err = rc == XLB_H1_ERR ? p->error : XLB_H1_E_NONE;
    r->body_status = rc == XLB_H1_ERR ? p->status : 0;
}

static int same_str(struct xlb_h1_str a, struct xlb_h1_str b)
{
    return a.off == b.off && a.len == b.len;
}

static void same_head(const struct res *a, const struct res *b)
{
    CHECK(a->rc == b->rc && a->err == b->err && a->status == b->status);
    if (a->rc != XLB_H1_OK)
        return;
    CHECK(same_str(a->h.method, b->h.method) && same_str(a->h.target, b->h.target));
    CHECK(same_str(a->h.reason, b->h.reason) && a->h.status == b->h.status);
    CHECK(a->h.version_minor == b->h.version_minor && a->h.n_fields == b->h.n_fields);
    CHECK(a->h.head_len == b->h.head_len && a->h.framing == b->h.framing);
    CHECK(a->h.content_length == b->h.content_length && a->h.keep_alive == b->h.keep_alive);
    CHECK(a->h.expect_continue == b->h.expect_continue && a->h.upgrade == b->h.upgrade);
    CHECK(a->h.host_field == b->h.host_field);
    for (uint32_t i = 0; i < a->h.n_fields; i++)
        CHECK(same_str(a->f[i].name, b->f[i].name) && same_str(a->f[i].value, b->f[i].value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct res one, two;
    struct xlb_h1_parser p1, p2;
    uint8_t mode;
    size_t len, k, body;
    char *buf, *part, *out1, *out2;
    int rc;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    len = size - 1;
    k = (size_t)(mode >> 3) * (len + 1) / 32;

    buf = malloc(len ? len : 1);
    part = malloc(k ? k : 1);
    CHECK(buf && part);
    memcpy(buf, data, len);
    memcpy(part, data, k);

    prepare(&p1, &one, mode);
    save(&p1, &one, xlb_h1_head(&p1, buf, len), len);

    prepare(&p2, &two, mode);
    rc = xlb_h1_head(&p2, part, k);
    if (rc == XLB_H1_MORE)
        rc = xlb_h1_head(&p2, buf, len);
    save(&p2, &two, rc, len);
    same_head(&one, &two);

    if (one.rc == XLB_H1_OK) {
        body = len - one.h.head_len;
        out1 = malloc(body + 1);
        out2 = malloc(body + 1);
        CHECK(out1 && out2);
        decode(&p1, &one, data + one.h.head_len, body, 0, out1);
        decode(&p2, &two, data + one.h.head_len, body, (mode >> 3) % 8 + 1, out2);
        CHECK(one.body_rc == two.body_rc && one.body_err == two.body_err);
        CHECK(one.body_status == two.body_status);
        CHECK(one.plen == two.plen && memcmp(out1, out2, one.plen) == 0);
        if (one.body_rc != XLB_H1_ERR)
            CHECK(one.consumed == two.consumed);
        if (one.body_rc == XLB_H1_MORE && one.h.framing != XLB_H1_BODY_EOF)
            CHECK(one.consumed == body);
        if (one.h.framing == XLB_H1_BODY_LENGTH && one.body_rc == XLB_H1_OK)
            CHECK(one.consumed == one.h.content_length && one.plen == one.consumed);
        if (one.h.framing == XLB_H1_BODY_NONE)
            CHECK(one.body_rc == XLB_H1_OK && one.consumed == 0);
        free(out1);
        free(out2);
    }
    free(buf);
    free(part);
    return 0;
}
