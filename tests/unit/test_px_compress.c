// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb-proxy's response compression (proxy/compress.c): Accept-Encoding
 * negotiation, the eligibility rules, the rewritten response fields, the
 * streaming encoders and the whole-buffer path (decoded back with zlib,
 * the brotli decoder and zstd and compared byte for byte), flushes, the
 * memory a stream holds while 100 MiB go through it, and chunk framing.
 *
 * Heads are real ones parsed with xlb_http1.c.  Random sizes come from a
 * fixed-seed generator, so a failure repeats.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <criterion/criterion.h>
#include <zlib.h>
#include <zstd.h>

#include "compress.h"

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in lo..hi. */
static size_t rng_range(size_t lo, size_t hi)
{
    return lo + (size_t)(rng() % (hi - lo + 1));
}

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static const char *const words[] = {
    "the", "<div class=\"item\">", "</div>\n", "<a href=\"/products/", "\">", "</a>",
    "price", "lorem", "ipsum", "dolor", "sit", "amet", "<span>", "</span>", "quick",
    "brown", "fox", "jumps", "over", "lazy", "dog", "{\"id\": ", ", \"name\": \"", "\"}",
};

/* HTML-like text, n bytes. */
static void gen_text(uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        const char *w = words[rng() % (sizeof(words) / sizeof(words[0]))];
        size_t l = strlen(w);

        if (l > n - i)
            l = n - i;
        memcpy(p + i, w, l);
        i += l;
        if (i < n)
            p[i++] = (rng() & 7) ? ' ' : (uint8_t)('0' + rng() % 10);
    }
}

static void gen_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 32);
}

/* Text, random bytes and runs of one byte, in random pieces. */
static void gen_mixed(uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t l = rng_range(1, 200000);

        if (l > n - i)
            l = n - i;
        switch (rng() % 3) {
        case 0:
            gen_text(p + i, l);
            break;
        case 1:
            gen_random(p + i, l);
            break;
        default:
            memset(p + i, (int)(rng() & 0xff), l);
            break;
        }
        i += l;
    }
}

/* ---- decoders ------------------------------------------------------------ */

/* Decode a whole compressed body; it must be exactly one complete stream. */
static void decode(enum px_enc enc, const uint8_t *in, size_t len, struct bytes *out)
{
    uint8_t buf[65536];

    if (enc == PX_ENC_GZIP) {
        z_stream z = { 0 };
        int r;

        cr_assert_eq(inflateInit2(&z, 31), Z_OK);   /* gzip only */
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        do {
            z.next_out = buf;
            z.avail_out = sizeof(buf);
            r = inflate(&z, Z_NO_FLUSH);
            cr_assert(r == Z_OK || r == Z_STREAM_END, "inflate: %d", r);
            bytes_add(out, buf, sizeof(buf) - z.avail_out);
        } while (r != Z_STREAM_END);
        cr_assert_eq(z.avail_in, 0, "bytes after the gzip member");
        inflateEnd(&z);
    } else if (enc == PX_ENC_BR) {
        BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        BrotliDecoderResult r;
        size_t ai = len;
        const uint8_t *ni = in;

        cr_assert_not_null(d);
        do {
            size_t ao = sizeof(buf);
            uint8_t *no = buf;

            r = BrotliDecoderDecompressStream(d, &ai, &ni, &ao, &no, NULL);
            cr_assert(r != BROTLI_DECODER_RESULT_ERROR, "brotli: %s",
                      BrotliDecoderErrorString(BrotliDecoderGetErrorCode(d)));
            cr_assert(r != BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT, "brotli stream truncated");
            bytes_add(out, buf, sizeof(buf) - ao);
        } while (r != BROTLI_DECODER_RESULT_SUCCESS);
        cr_assert_eq(ai, 0, "bytes after the brotli stream");
        BrotliDecoderDestroyInstance(d);
    } else {
        ZSTD_DStream *d = ZSTD_createDStream();
        ZSTD_inBuffer ib = { in, len, 0 };
        size_t r;

        cr_assert_not_null(d);
        do {
            ZSTD_outBuffer ob = { buf, sizeof(buf), 0 };

            r = ZSTD_decompressStream(d, &ob, &ib);
            cr_assert(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
            bytes_add(out, buf, ob.pos);
            cr_assert(r == 0 || ib.pos < ib.size || ob.pos == ob.size, "zstd frame truncated");
        } while (r != 0);
        cr_assert_eq(ib.pos, ib.size, "bytes after the zstd frame");
        ZSTD_freeDStream(d);
    }
}

static const enum px_enc all_enc[] = { PX_ENC_GZIP, PX_ENC_BR, PX_ENC_ZSTD };

/* ---- Accept-Encoding ----------------------------------------------------- */

struct ae_case {
    const char *v;              /* NULL: no field */
    enum px_enc want;
};

static const struct ae_case ae_cases[] = {
    { NULL, PX_ENC_IDENTITY },
    { "", PX_ENC_IDENTITY },
    { "   ", PX_ENC_IDENTITY },
    { "gzip", PX_ENC_GZIP },
    { "br", PX_ENC_BR },
    { "zstd", PX_ENC_ZSTD },
    { "gzip, deflate, br", PX_ENC_BR },
    { "gzip, deflate, br, zstd", PX_ENC_BR },
    { "gzip, zstd", PX_ENC_ZSTD },
    { "GZIP", PX_ENC_GZIP },
    { "Br", PX_ENC_BR },
    { "ZStd;Q=0.7, gzip;q=0.6", PX_ENC_ZSTD },
    { "gzip;q=0.5, br;q=0.4", PX_ENC_GZIP },
    { "br;q=0", PX_ENC_IDENTITY },
    { "gzip;q=0, *;q=0.5", PX_ENC_BR },
    { "*;q=0.5, br;q=0", PX_ENC_ZSTD },
    { "*", PX_ENC_BR },
    { "*;q=0", PX_ENC_IDENTITY },
    { "identity;q=0", PX_ENC_IDENTITY },
    { "identity;q=0, gzip;q=0", PX_ENC_IDENTITY },
    { "identity", PX_ENC_IDENTITY },
    { "gzip;q=0.5, identity", PX_ENC_IDENTITY },
    { "gzip;q=0.5, identity;q=0.5", PX_ENC_GZIP },
    { "br;q=0.5, identity;q=0.6, gzip;q=0.6", PX_ENC_GZIP },
    { "*, identity;q=0", PX_ENC_BR },
    { "gzip;q=0.3, *;q=0.2", PX_ENC_GZIP },
    { "gzip;q=0.2, *;q=0.3", PX_ENC_BR },
    { "gzip;q=0.3, *;q=0.4, identity", PX_ENC_IDENTITY },
    { "x-gzip", PX_ENC_GZIP },
    { "X-GZIP;q=0.9, br;q=0.8", PX_ENC_GZIP },
    { "  gzip  ;  q=0.8 ,br;q=0.9  ", PX_ENC_BR },
    { "\tgzip\t", PX_ENC_GZIP },
    { ",,, gzip ,,", PX_ENC_GZIP },
    { "gzip;q=1.0", PX_ENC_GZIP },
    { "gzip;q=1.000", PX_ENC_GZIP },
    { "gzip;q=0.001", PX_ENC_GZIP },
    { "br;q=1.", PX_ENC_BR },
    { "br;q=0.", PX_ENC_IDENTITY },
    { "gzip;q=1.001", PX_ENC_IDENTITY },
    { "gzip;q=2", PX_ENC_IDENTITY },
    { "gzip;q=-1", PX_ENC_IDENTITY },
    { "gzip;q=0.1234", PX_ENC_IDENTITY },
    { "gzip;q=0.5.5", PX_ENC_IDENTITY },
    { "gzip;q=abc", PX_ENC_IDENTITY },
    { "gzip;q=", PX_ENC_IDENTITY },
    { "gzip;q=\"0.5\"", PX_ENC_IDENTITY },
    { "gzip;q = 0.5", PX_ENC_IDENTITY },
    { "gzip;q=0.5;q=0.9", PX_ENC_IDENTITY },
    { "gzip;q=abc, br;q=0.1", PX_ENC_BR },
    { "gzip junk", PX_ENC_IDENTITY },
    { "gzip junk, zstd;q=0.2", PX_ENC_ZSTD },
    { "gzip; q=0.5", PX_ENC_GZIP },
    { "gzip;", PX_ENC_GZIP },
    { "br;q=0.9;foo=bar, gzip", PX_ENC_GZIP },
    { "br;foo=\"a,b;q=0\";q=0.5, gzip;q=0.4", PX_ENC_BR },
    { "gzip, gzip;q=0", PX_ENC_IDENTITY },
    { "gzip, x-gzip;q=0", PX_ENC_IDENTITY },
    { "br;q=0.1, br;q=0.9, gzip;q=0.5", PX_ENC_GZIP },
    { "deflate, compress", PX_ENC_IDENTITY },
    { "deflate;q=1, gzip;q=0.1", PX_ENC_GZIP },
    { "gzipx, xbr, zstd2", PX_ENC_IDENTITY },
};

Test(px_compress_ae, table)
{
    for (size_t i = 0; i < sizeof(ae_cases) / sizeof(ae_cases[0]); i++) {
        const struct ae_case *c = &ae_cases[i];
        enum px_enc got = px_enc_choose(c->v, c->v ? strlen(c->v) : 0, c->v != NULL);

        cr_expect_eq(got, c->want, "Accept-Encoding \"%s\": got %s, want %s",
                     c->v ? c->v : "(absent)", px_enc_name(got), px_enc_name(c->want));
    }
}

Test(px_compress_ae, length_bounds_the_value)
{
    /* Only the first 4 bytes count: "gzip". */
    cr_expect_eq(px_enc_choose("gzip;q=0", 4, true), PX_ENC_GZIP);
    cr_expect_eq(px_enc_choose("br, gzip", 2, true), PX_ENC_BR);
    cr_expect_eq(px_enc_choose(NULL, 0, true), PX_ENC_IDENTITY);
    cr_expect_eq(px_enc_choose("gzip", 4, false), PX_ENC_IDENTITY);
}

/* ---- heads --------------------------------------------------------------- */

struct msg {
    char buf[4096];
    struct xlb_h1_field fields[64];
    struct xlb_h1_parser p;
};

/* Parse a head from text; it must be a valid one. */
static const struct xlb_h1_head *parse(struct msg *m, enum xlb_h1_kind kind, const char *text,
                                       bool head_request)
{
    size_t n = strlen(text);

    cr_assert_lt(n, sizeof(m->buf));
    memcpy(m->buf, text, n);
    xlb_h1_init(&m->p, kind, NULL, m->fields, 64);
    if (kind == XLB_H1_RESPONSE)
        xlb_h1_set_head_request(&m->p, head_request);
    cr_assert_eq(xlb_h1_head(&m->p, m->buf, n), XLB_H1_OK, "head not parsed: %s\n%s",
                 xlb_h1_error_name(m->p.error), text);
    return &m->p.head;
}

static char types[3][64] = { "text/*", "application/json", "application/javascript" };

static struct xlb_cfg_compression default_cfg(void)
{
    struct xlb_cfg_compression c = { .enabled = true, .min_size = 1024, .level = 6,
                                     .n_types = 3, .types = types };
    return c;
}

#define GET "GET /p HTTP/1.1\r\nHost: a\r\n"
#define OK_HTML "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"

struct elig_case {
    const char *name, *req, *resp;
    bool want;
};

static const struct elig_case elig_cases[] = {
    { "base", GET "\r\n", OK_HTML "Content-Length: 2000\r\n\r\n", true },
    { "HEAD", "HEAD /p HTTP/1.1\r\nHost: a\r\n\r\n", OK_HTML "Content-Length: 2000\r\n\r\n", false },
    { "Range", GET "Range: bytes=0-10\r\n\r\n", OK_HTML "Content-Length: 2000\r\n\r\n", false },
    { "HTTP/1.0 request", "GET /p HTTP/1.0\r\n\r\n", OK_HTML "Content-Length: 2000\r\n\r\n", false },
    { "201", GET "\r\n", "HTTP/1.1 201 Created\r\nContent-Type: text/html\r\nContent-Length: 2000\r\n\r\n",
      true },
    { "299", GET "\r\n", "HTTP/1.1 299 X\r\nContent-Type: text/html\r\nContent-Length: 2000\r\n\r\n",
      true },
    { "206", GET "\r\n",
      "HTTP/1.1 206 Partial\r\nContent-Type: text/html\r\nContent-Range: bytes 0-1999/5000\r\n"
      "Content-Length: 2000\r\n\r\n", false },
    { "204", GET "\r\n", "HTTP/1.1 204 No Content\r\nContent-Type: text/html\r\n\r\n", false },
    { "304", GET "\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\n\r\n", false },
    { "404", GET "\r\n", "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 2000\r\n\r\n",
      false },
    { "302", GET "\r\n", "HTTP/1.1 302 Found\r\nContent-Type: text/html\r\nContent-Length: 2000\r\n\r\n",
      false },
    { "Content-Encoding gzip", GET "\r\n",
      OK_HTML "Content-Encoding: gzip\r\nContent-Length: 2000\r\n\r\n", false },
    { "Content-Encoding identity", GET "\r\n",
      OK_HTML "Content-Encoding: identity\r\nContent-Length: 2000\r\n\r\n", true },
    { "Content-Encoding identity, br", GET "\r\n",
      OK_HTML "Content-Encoding: identity, br\r\nContent-Length: 2000\r\n\r\n", false },
    { "Content-Encoding twice", GET "\r\n",
      OK_HTML "Content-Encoding: identity\r\nContent-Encoding: zstd\r\nContent-Length: 2000\r\n\r\n",
      false },
    { "no-transform in a list", GET "\r\n",
      OK_HTML "Cache-Control: public, No-Transform, max-age=60\r\nContent-Length: 2000\r\n\r\n", false },
    { "no-transform in a second field", GET "\r\n",
      OK_HTML "Cache-Control: public\r\nCache-Control: no-transform\r\nContent-Length: 2000\r\n\r\n",
      false },
    { "no-transform in the request", GET "Cache-Control: no-transform\r\n\r\n",
      OK_HTML "Content-Length: 2000\r\n\r\n", false },
    { "other Cache-Control", GET "\r\n",
      OK_HTML "Cache-Control: no-cache, max-age=60\r\nContent-Length: 2000\r\n\r\n", true },
    { "text/plain with charset", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2000\r\n\r\n",
      true },
    { "type case", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: TEXT/HTML\r\nContent-Length: 2000\r\n\r\n", true },
    { "OWS before ;", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/css ;charset=x\r\nContent-Length: 2000\r\n\r\n", true },
    { "json with parameter", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: Application/JSON;charset=utf-8\r\nContent-Length: 2000\r\n\r\n",
      true },
    { "application/javascript", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\nContent-Length: 2000\r\n\r\n", true },
    { "json prefix only", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: application/jsonx\r\nContent-Length: 2000\r\n\r\n", false },
    { "image/png", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 2000\r\n\r\n", false },
    { "textx/html (not text/*)", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: textx/html\r\nContent-Length: 2000\r\n\r\n", false },
    { "text/ without subtype", GET "\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/\r\nContent-Length: 2000\r\n\r\n", false },
    { "no Content-Type", GET "\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", false },
    { "two Content-Type", GET "\r\n",
      OK_HTML "Content-Type: text/plain\r\nContent-Length: 2000\r\n\r\n", false },
    { "below min_size", GET "\r\n", OK_HTML "Content-Length: 1023\r\n\r\n", false },
    { "at min_size", GET "\r\n", OK_HTML "Content-Length: 1024\r\n\r\n", true },
    { "chunked (unknown length)", GET "\r\n", OK_HTML "Transfer-Encoding: chunked\r\n\r\n", true },
    { "until close (unknown length)", GET "\r\n", OK_HTML "Connection: close\r\n\r\n", true },
};

Test(px_compress_eligible, table)
{
    struct xlb_cfg_compression cfg = default_cfg();

    for (size_t i = 0; i < sizeof(elig_cases) / sizeof(elig_cases[0]); i++) {
        const struct elig_case *c = &elig_cases[i];
        struct msg rq, rs;
        const struct xlb_h1_head *req = parse(&rq, XLB_H1_REQUEST, c->req, false);
        const struct xlb_h1_head *resp = parse(&rs, XLB_H1_RESPONSE, c->resp, false);

        cr_expect_eq(px_compress_eligible(&cfg, rq.buf, req, rs.buf, resp), c->want, "%s: want %d",
                     c->name, c->want);
    }
}

Test(px_compress_eligible, config_and_no_body)
{
    struct xlb_cfg_compression cfg = default_cfg();
    char any[1][64] = { "*/*" };
    struct msg rq, rs, rh, rz;
    const struct xlb_h1_head *req = parse(&rq, XLB_H1_REQUEST, GET "\r\n", false);
    const struct xlb_h1_head *resp = parse(&rs, XLB_H1_RESPONSE,
                                           "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\n"
                                           "Content-Length: 5000\r\n\r\n", false);
    /* A response to HEAD as the parser gives it: no body. */
    const struct xlb_h1_head *hresp = parse(&rh, XLB_H1_RESPONSE,
                                            OK_HTML "Content-Length: 5000\r\n\r\n", true);
    const struct xlb_h1_head *zresp = parse(&rz, XLB_H1_RESPONSE,
                                            OK_HTML "Content-Length: 0\r\n\r\n", false);

    cr_expect_not(px_compress_eligible(&cfg, rq.buf, req, rs.buf, resp), "svg is not configured");
    cfg.types = any;
    cfg.n_types = 1;
    cr_expect(px_compress_eligible(&cfg, rq.buf, req, rs.buf, resp), "*/* takes everything");
    cfg.enabled = false;
    cr_expect_not(px_compress_eligible(&cfg, rq.buf, req, rs.buf, resp), "disabled");
    cr_expect_not(px_compress_eligible(NULL, rq.buf, req, rs.buf, resp));
    cfg = default_cfg();
    cfg.n_types = 0;
    cr_expect_not(px_compress_eligible(&cfg, rq.buf, req, rs.buf, hresp), "no types");
    cfg = default_cfg();
    cr_expect_eq(hresp->framing, XLB_H1_BODY_NONE);
    cr_expect_not(px_compress_eligible(&cfg, rq.buf, req, rh.buf, hresp), "no body");
    cfg.min_size = 0;
    cr_expect_not(px_compress_eligible(&cfg, rq.buf, req, rz.buf, zresp), "empty body");
}

/* ---- the response fields ------------------------------------------------- */

static void expect_fields(const char *resp_text, enum px_enc enc, px_field_skip_fn skip,
                          const char *want)
{
    struct msg rs;
    const struct xlb_h1_head *h = parse(&rs, XLB_H1_RESPONSE, resp_text, false);
    struct xlb_buf out = { 0 };

    cr_assert_eq(px_compress_fields(&out, rs.buf, h, enc, skip, NULL), 0);
    cr_expect_str_eq(out.data ? out.data : "", want, "for\n%s", resp_text);
    xlb_buf_free(&out);
}

Test(px_compress_fields, drops_framing_and_keeps_order)
{
    expect_fields("HTTP/1.1 200 OK\r\nDate: Mon\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n"
                  "Accept-Ranges: bytes\r\nETag: \"abc\"\r\nX-A: 1\r\nContent-MD5: Q2hlY2s=\r\n"
                  "X-B: 2\r\n\r\n",
                  PX_ENC_GZIP, NULL,
                  "Date: Mon\r\nContent-Type: text/html\r\nETag: W/\"abc\"\r\nX-A: 1\r\nX-B: 2\r\n"
                  "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    expect_fields("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n"
                  "content-encoding: identity\r\nX-A: 1\r\n\r\n",
                  PX_ENC_BR, NULL,
                  "Content-Type: text/html\r\nX-A: 1\r\nContent-Encoding: br\r\n"
                  "Vary: Accept-Encoding\r\n");
    expect_fields("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nRepr-Digest: sha-256=:x:\r\n"
                  "Content-Digest: sha-256=:y:\r\nContent-Length: 10\r\n\r\n",
                  PX_ENC_ZSTD, NULL,
                  "Content-Type: text/html\r\nContent-Encoding: zstd\r\nVary: Accept-Encoding\r\n");
}

Test(px_compress_fields, etag)
{
    expect_fields("HTTP/1.1 200 OK\r\nETag: W/\"weak\"\r\n\r\n", PX_ENC_GZIP, NULL,
                  "ETag: W/\"weak\"\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    expect_fields("HTTP/1.1 200 OK\r\netag: \"\"\r\n\r\n", PX_ENC_GZIP, NULL,
                  "etag: W/\"\"\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
}

Test(px_compress_fields, vary)
{
    /* Extended in place, only the first one. */
    expect_fields("HTTP/1.1 200 OK\r\nVary: Cookie\r\nX-A: 1\r\nVary: User-Agent\r\n\r\n",
                  PX_ENC_GZIP, NULL,
                  "Vary: Cookie, Accept-Encoding\r\nX-A: 1\r\nVary: User-Agent\r\n"
                  "Content-Encoding: gzip\r\n");
    /* Already there (any case, any field): unchanged. */
    expect_fields("HTTP/1.1 200 OK\r\nVary: Cookie\r\nVary: cookie2, accept-encoding\r\n\r\n",
                  PX_ENC_GZIP, NULL,
                  "Vary: Cookie\r\nVary: cookie2, accept-encoding\r\nContent-Encoding: gzip\r\n");
    expect_fields("HTTP/1.1 200 OK\r\nVary: *\r\n\r\n", PX_ENC_BR, NULL,
                  "Vary: *\r\nContent-Encoding: br\r\n");
    expect_fields("HTTP/1.1 200 OK\r\nVary: \r\n\r\n", PX_ENC_BR, NULL,
                  "Vary: Accept-Encoding\r\nContent-Encoding: br\r\n");
    /* A token that only contains the name is not it. */
    expect_fields("HTTP/1.1 200 OK\r\nVary: X-Accept-Encoding\r\n\r\n", PX_ENC_BR, NULL,
                  "Vary: X-Accept-Encoding, Accept-Encoding\r\nContent-Encoding: br\r\n");
}

static bool skip_conn(const char *buf, const struct xlb_h1_head *h, const struct xlb_h1_field *f,
                      void *arg)
{
    (void)h;
    (void)arg;
    return xlb_h1_str_eq(buf, f->name, "connection") || xlb_h1_str_eq(buf, f->name, "keep-alive") ||
           xlb_h1_str_eq(buf, f->name, "vary");
}

Test(px_compress_fields, skip_and_errors)
{
    struct msg rs;
    const struct xlb_h1_head *h;
    struct xlb_buf out = { 0 };

    /* Skipped fields are gone, and a skipped Vary does not count. */
    expect_fields("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                  "Vary: *\r\nX-A: 1\r\n\r\n",
                  PX_ENC_ZSTD, skip_conn,
                  "X-A: 1\r\nContent-Encoding: zstd\r\nVary: Accept-Encoding\r\n");
    h = parse(&rs, XLB_H1_RESPONSE, "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", false);
    cr_expect_eq(px_compress_fields(&out, rs.buf, h, PX_ENC_IDENTITY, NULL, NULL), -EINVAL);
    cr_expect_eq(px_compress_fields(&out, rs.buf, h, (enum px_enc)7, NULL, NULL), -EINVAL);
    cr_expect_eq(out.len, 0);
    xlb_buf_free(&out);
}

/* ---- round trips --------------------------------------------------------- */

/* Compress in[0..len) with random input pieces (1..70000 bytes) and random
 * output room (often tiny), into out. */
static void stream_compress(enum px_enc enc, int level, const uint8_t *in, size_t len,
                            struct bytes *out)
{
    struct px_enc_stream *s = px_enc_new(enc, level);
    static char room[70000];
    size_t off = 0;
    int idle = 0;

    cr_assert_not_null(s, "px_enc_new(%s, %d)", px_enc_name(enc), level);
    for (;;) {
        size_t end = off + rng_range(1, 70000);
        bool finish;

        if (end > len)
            end = len;
        finish = end == len;
        for (;;) {
            size_t cap = (rng() & 3) ? rng_range(1, sizeof(room)) : rng_range(1, 16);
            size_t used, n;
            int r = px_enc_run(s, (const char *)in + off, end - off, &used, room, cap, &n, finish);

            cr_assert_geq(r, 0, "px_enc_run: %d", r);
            cr_assert_leq(used, end - off);
            cr_assert_leq(n, cap);
            bytes_add(out, room, n);
            off += used;
            idle = used || n ? 0 : idle + 1;
            cr_assert_lt(idle, 1000, "no progress");
            if (r == PX_ENC_END) {
                cr_assert(finish, "ended before finish");
                cr_assert_eq(off, len);
                goto done;
            }
            if (!finish && off == end)
                break;
        }
    }
done:
    {
        size_t used = 1, n = 1;

        /* A finished stream stays finished and writes nothing. */
        cr_assert_eq(px_enc_run(s, NULL, 0, &used, room, sizeof(room), &n, true), PX_ENC_END);
        cr_assert_eq(used + n, 0);
    }
    px_enc_free(s);
}

static void round_trip(const uint8_t *body, size_t len, int level)
{
    for (size_t e = 0; e < 3; e++) {
        struct bytes c = { 0 }, d = { 0 };

        stream_compress(all_enc[e], level, body, len, &c);
        decode(all_enc[e], c.p, c.len, &d);
        cr_assert_eq(d.len, len, "%s level %d: %zu bytes decoded, %zu in", px_enc_name(all_enc[e]),
                     level, d.len, len);
        cr_assert(len == 0 || !memcmp(d.p, body, len), "%s level %d: bytes differ",
                  px_enc_name(all_enc[e]), level);
        bytes_free(&c);
        bytes_free(&d);
    }
}

Test(px_compress_stream, small_bodies)
{
    uint8_t b[1024];

    rng_seed(1);
    gen_text(b, sizeof(b));
    for (int level = 1; level <= 9; level++) {
        round_trip(b, 0, level);
        round_trip(b, 1, level);
        round_trip(b, sizeof(b), level);
    }
}

Test(px_compress_stream, text_100k)
{
    size_t n = 100 * 1024;
    uint8_t *b = malloc(n);

    rng_seed(2);
    gen_text(b, n);
    round_trip(b, n, 1);
    round_trip(b, n, 6);
    round_trip(b, n, 9);
    free(b);
}

Test(px_compress_stream, random_1m)
{
    size_t n = 1 << 20;
    uint8_t *b = malloc(n);

    rng_seed(3);
    gen_random(b, n);
    round_trip(b, n, 6);
    free(b);
}

Test(px_compress_stream, mixed_10m, .timeout = 60)
{
    size_t n = 10 << 20;
    uint8_t *b = malloc(n);

    rng_seed(4);
    gen_mixed(b, n);
    round_trip(b, n, 1);
    round_trip(b, n, 6);
    free(b);
}

/* A flush makes everything given so far decodable before the stream ends. */
Test(px_compress_stream, flush)
{
    static const char part1[] = "<html><body>first part, sent before the real pauses</body>";
    static const char part2[] = "second part";
    char room[7];

    for (size_t e = 0; e < 3; e++) {
        struct px_enc_stream *s = px_enc_new(all_enc[e], 6);
        struct bytes c = { 0 }, d = { 0 };
        size_t used, n, prefix;
        int r;

        cr_assert_not_null(s);
        /* Tiny output room: the gzip header alone does not fit. */
        for (size_t u = 0, k = 0; u < sizeof(part1) - 1; k++) {
            cr_assert_eq(px_enc_run(s, part1 + u, sizeof(part1) - 1 - u, &used, room, sizeof(room),
                                    &n, false), PX_ENC_AGAIN);
            cr_assert_lt(k, 100, "no progress");
            u += used;
            bytes_add(&c, room, n);
        }
        do {
            r = px_enc_flush(s, room, sizeof(room), &n);
            cr_assert_geq(r, 0);
            bytes_add(&c, room, n);
        } while (r != PX_ENC_END);
        prefix = c.len;
        /* What is out decodes to all of part 1. */
        if (all_enc[e] == PX_ENC_GZIP) {
            z_stream z = { 0 };
            uint8_t buf[256];

            cr_assert_eq(inflateInit2(&z, 31), Z_OK);
            z.next_in = c.p;
            z.avail_in = (uInt)c.len;
            z.next_out = buf;
            z.avail_out = sizeof(buf);
            cr_assert_eq(inflate(&z, Z_SYNC_FLUSH), Z_OK);
            cr_assert_eq(sizeof(buf) - z.avail_out, sizeof(part1) - 1);
            cr_assert(!memcmp(buf, part1, sizeof(part1) - 1));
            inflateEnd(&z);
        } else if (all_enc[e] == PX_ENC_BR) {
            BrotliDecoderState *bd = BrotliDecoderCreateInstance(NULL, NULL, NULL);
            uint8_t buf[256], *no = buf;
            const uint8_t *ni = c.p;
            size_t ai = c.len, ao = sizeof(buf);

            cr_assert_eq(BrotliDecoderDecompressStream(bd, &ai, &ni, &ao, &no, NULL),
                         BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT);
            cr_assert_eq(sizeof(buf) - ao, sizeof(part1) - 1);
            cr_assert(!memcmp(buf, part1, sizeof(part1) - 1));
            BrotliDecoderDestroyInstance(bd);
        } else {
            ZSTD_DStream *zd = ZSTD_createDStream();
            uint8_t buf[256];
            ZSTD_inBuffer ib = { c.p, c.len, 0 };
            ZSTD_outBuffer ob = { buf, sizeof(buf), 0 };

            cr_assert(!ZSTD_isError(ZSTD_decompressStream(zd, &ob, &ib)));
            cr_assert_eq(ob.pos, sizeof(part1) - 1);
            cr_assert(!memcmp(buf, part1, sizeof(part1) - 1));
            ZSTD_freeDStream(zd);
        }
        /* A second flush without new input adds nothing of substance. */
        cr_assert_eq(px_enc_flush(s, room, sizeof(room), &n), PX_ENC_END);
        bytes_add(&c, room, n);
        used = 0;
        do {
            size_t u;

            r = px_enc_run(s, part2 + used, sizeof(part2) - 1 - used, &u, room, sizeof(room), &n,
                           true);
            cr_assert_geq(r, 0);
            used += u;
            bytes_add(&c, room, n);
        } while (r != PX_ENC_END);
        cr_assert_gt(c.len, prefix);
        decode(all_enc[e], c.p, c.len, &d);
        cr_assert_eq(d.len, sizeof(part1) + sizeof(part2) - 2);
        cr_assert(!memcmp(d.p, part1, sizeof(part1) - 1));
        cr_assert(!memcmp(d.p + sizeof(part1) - 1, part2, sizeof(part2) - 1));
        bytes_free(&c);
        bytes_free(&d);
        px_enc_free(s);
    }
}

Test(px_compress_stream, bad_arguments)
{
    size_t used, n;
    char room[16];

    errno = 0;
    cr_expect_null(px_enc_new(PX_ENC_IDENTITY, 6));
    cr_expect_eq(errno, EINVAL);
    cr_expect_null(px_enc_new((enum px_enc)9, 6));
    cr_expect_eq(px_enc_run(NULL, "a", 1, &used, room, sizeof(room), &n, false), -EINVAL);
    cr_expect_eq(px_enc_flush(NULL, room, sizeof(room), &n), -EINVAL);
    px_enc_free(NULL);
    /* Levels out of range are clamped, not refused. */
    for (size_t e = 0; e < 3; e++) {
        struct px_enc_stream *s0 = px_enc_new(all_enc[e], 0), *s99 = px_enc_new(all_enc[e], 99);

        cr_expect_not_null(s0);
        cr_expect_not_null(s99);
        px_enc_free(s0);
        px_enc_free(s99);
    }
    cr_expect_str_eq(px_enc_name(PX_ENC_GZIP), "gzip");
    cr_expect_str_eq(px_enc_name(PX_ENC_BR), "br");
    cr_expect_str_eq(px_enc_name(PX_ENC_ZSTD), "zstd");
    cr_expect_str_eq(px_enc_name(PX_ENC_IDENTITY), "identity");
}

/* ---- whole buffers ------------------------------------------------------- */

Test(px_compress_oneshot, matches_streaming)
{
    static const size_t sizes[] = { 0, 1, 1024, 100 * 1024, PX_ENC_ONESHOT_MAX };
    uint8_t *b = malloc(PX_ENC_ONESHOT_MAX);

    rng_seed(5);
    gen_text(b, PX_ENC_ONESHOT_MAX / 2);
    gen_random(b + PX_ENC_ONESHOT_MAX / 2, PX_ENC_ONESHOT_MAX / 2);
    for (size_t e = 0; e < 3; e++)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            for (int level = 1; level <= 9; level += 4) {
                size_t len = sizes[i], bound = px_enc_bound(all_enc[e], len), n;
                char *out = malloc(bound);
                struct bytes d = { 0 }, c = { 0 }, d2 = { 0 };

                cr_assert_geq(bound, len);
                cr_assert_eq(px_enc_oneshot(all_enc[e], level, (const char *)b, len, out, bound, &n),
                             0, "%s %zu", px_enc_name(all_enc[e]), len);
                cr_assert_leq(n, bound);
                decode(all_enc[e], (const uint8_t *)out, n, &d);
                cr_assert_eq(d.len, len);
                cr_assert(len == 0 || !memcmp(d.p, b, len), "%s oneshot %zu differs",
                          px_enc_name(all_enc[e]), len);
                stream_compress(all_enc[e], level, b, len, &c);
                decode(all_enc[e], c.p, c.len, &d2);
                cr_assert_eq(d2.len, len);
                cr_assert(len == 0 || !memcmp(d2.p, b, len));
                bytes_free(&d);
                bytes_free(&c);
                bytes_free(&d2);
                free(out);
            }
    free(b);
    px_enc_thread_cleanup();
}

Test(px_compress_oneshot, short_output)
{
    uint8_t b[4096];
    char out[16];
    size_t n;

    rng_seed(6);
    gen_random(b, sizeof(b));
    for (size_t e = 0; e < 3; e++)
        cr_expect_eq(px_enc_oneshot(all_enc[e], 6, (const char *)b, sizeof(b), out, sizeof(out), &n),
                     -ENOSPC, "%s", px_enc_name(all_enc[e]));
    cr_expect_eq(px_enc_oneshot(PX_ENC_IDENTITY, 6, (const char *)b, 1, out, sizeof(out), &n),
                 -EINVAL);
    cr_expect_eq(px_enc_bound(PX_ENC_IDENTITY, 10), 0);
    px_enc_thread_cleanup();
    px_enc_thread_cleanup();    /* twice is fine */
}

/* ---- memory -------------------------------------------------------------- */

#define BLOCK 65536

/* Block i of the 100 MiB body: an 8 KiB slice of a 1 MiB pool of text
 * (at an offset moving by a prime) repeated with one byte changed each
 * time, like a page made of a template, and a random block now and then.
 * Long matches keep the codecs fast, so 100 MiB stay within seconds; the
 * memory the streams hold does not depend on the content. */
#define POOL (1 << 20)
#define PIECE 8192
static uint8_t *pool;

static void gen_block(uint64_t i, uint8_t *p)
{
    uint64_t save = rng_state;

    if (!pool) {
        pool = malloc(POOL);
        cr_assert_not_null(pool);
        rng_seed(999);
        gen_text(pool, POOL);
    }
    if (i % 16 == 5) {
        rng_seed(1000 + i);
        gen_random(p, BLOCK);
    } else {
        const uint8_t *src = pool + (i * 100003) % (POOL - PIECE);

        for (size_t k = 0; k < BLOCK; k += PIECE) {
            memcpy(p + k, src, PIECE);
            p[k + (i * 31 + k) % PIECE] = (uint8_t)(k / PIECE + i);
        }
    }
    rng_state = save;
}

/* Stream 100 MiB through one encoder, decode on the fly and compare; the
 * codec's memory must stay under bound all along. */
static void stream_100m(enum px_enc enc, int level, size_t bound)
{
    const uint64_t blocks = 100 * 1024 * 1024 / BLOCK;
    struct px_enc_stream *s = px_enc_new(enc, level);
    static uint8_t in[BLOCK], exp[BLOCK], room[BLOCK], dec[BLOCK];
    uint64_t dpos = 0, exp_block = UINT64_MAX;
    z_stream z = { 0 };
    BrotliDecoderState *bd = NULL;
    ZSTD_DStream *zd = NULL;
    size_t peak;
    bool ended = false;

    cr_assert_not_null(s);
    if (enc == PX_ENC_GZIP)
        cr_assert_eq(inflateInit2(&z, 31), Z_OK);
    else if (enc == PX_ENC_BR)
        cr_assert_not_null(bd = BrotliDecoderCreateInstance(NULL, NULL, NULL));
    else
        cr_assert_not_null(zd = ZSTD_createDStream());
    for (uint64_t b = 0; b < blocks && !ended; b++) {
        size_t off = 0;
        bool finish = b + 1 == blocks;

        gen_block(b, in);
        for (;;) {
            size_t used, n, ci = 0;
            int r = px_enc_run(s, (const char *)in + off, BLOCK - off, &used, (char *)room,
                               sizeof(room), &n, finish);

            cr_assert_geq(r, 0);
            off += used;
            /* Decode what came out. */
            /* Until the input is used up and the decoder had room left
             * (so holds nothing back). */
            for (size_t got = 0; ci < n || got == sizeof(dec);) {
                size_t ci0 = ci;

                if (enc == PX_ENC_GZIP) {
                    z.next_in = room + ci;
                    z.avail_in = (uInt)(n - ci);
                    z.next_out = dec;
                    z.avail_out = sizeof(dec);
                    int zr = inflate(&z, Z_NO_FLUSH);

                    cr_assert(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
                    ci = n - z.avail_in;
                    got = sizeof(dec) - z.avail_out;
                } else if (enc == PX_ENC_BR) {
                    size_t ai = n - ci, ao = sizeof(dec);
                    const uint8_t *ni = room + ci;
                    uint8_t *no = dec;

                    cr_assert_neq(BrotliDecoderDecompressStream(bd, &ai, &ni, &ao, &no, NULL),
                                  BROTLI_DECODER_RESULT_ERROR);
                    ci = n - ai;
                    got = sizeof(dec) - ao;
                } else {
                    ZSTD_inBuffer ib = { room + ci, n - ci, 0 };
                    ZSTD_outBuffer ob = { dec, sizeof(dec), 0 };

                    cr_assert(!ZSTD_isError(ZSTD_decompressStream(zd, &ob, &ib)));
                    ci += ib.pos;
                    got = ob.pos;
                }
                for (size_t k = 0; k < got;) {
                    uint64_t blk = (dpos + k) / BLOCK;
                    size_t at = (size_t)((dpos + k) % BLOCK), run = BLOCK - at;

                    if (run > got - k)
                        run = got - k;
                    if (blk != exp_block) {
                        cr_assert_lt(blk, blocks, "decoded past the end");
                        gen_block(blk, exp);
                        exp_block = blk;
                    }
                    cr_assert(!memcmp(dec + k, exp + at, run), "%s: differs at %llu",
                              px_enc_name(enc), (unsigned long long)(dpos + k));
                    k += run;
                }
                dpos += got;
                cr_assert(ci > ci0 || got > 0 || ci0 == n, "decoder stuck");
            }
            if (r == PX_ENC_END) {
                ended = true;
                break;
            }
            if (!finish && off == BLOCK)
                break;
        }
        px_enc_mem(s, &peak);
        cr_assert_leq(peak, bound, "%s level %d: %zu bytes after block %llu", px_enc_name(enc),
                      level, peak, (unsigned long long)b);
    }
    cr_assert(ended);
    cr_assert_eq(dpos, blocks * BLOCK, "%s: %llu bytes decoded", px_enc_name(enc),
                 (unsigned long long)dpos);
    cr_assert_leq(px_enc_mem(s, NULL), bound);
    cr_log_info("%s level %d: peak %zu bytes per stream", px_enc_name(enc), level, peak);
    if (enc == PX_ENC_GZIP)
        inflateEnd(&z);
    BrotliDecoderDestroyInstance(bd);
    ZSTD_freeDStream(zd);
    px_enc_free(s);
    free(pool);
    pool = NULL;
}

Test(px_compress_memory, gzip_100m, .timeout = 30)
{
    stream_100m(PX_ENC_GZIP, 6, 300 * 1024);
}

Test(px_compress_memory, br_100m, .timeout = 30)
{
    stream_100m(PX_ENC_BR, 6, 2 * 1024 * 1024);
}

Test(px_compress_memory, zstd_100m, .timeout = 30)
{
    stream_100m(PX_ENC_ZSTD, 6, 768 * 1024);
}

/* Level 1 streams are no bigger than level 6 ones. */
Test(px_compress_memory, level1)
{
    static const size_t bound[] = { 300 * 1024, 1024 * 1024, 640 * 1024 };
    size_t n = 1 << 20;
    uint8_t *b = malloc(n);

    rng_seed(7);
    gen_text(b, n);
    for (size_t e = 0; e < 3; e++) {
        struct px_enc_stream *s = px_enc_new(all_enc[e], 1);
        static char room[65536];
        size_t off = 0, used, out, peak;
        int r;

        do {
            r = px_enc_run(s, (const char *)b + off, n - off, &used, room, sizeof(room), &out, true);
            cr_assert_geq(r, 0);
            off += used;
        } while (r != PX_ENC_END);
        px_enc_mem(s, &peak);
        cr_expect_leq(peak, bound[e], "%s level 1: %zu", px_enc_name(all_enc[e]), peak);
        cr_expect_gt(peak, 0);
        px_enc_free(s);
    }
    free(b);
}

/* ---- chunk framing ------------------------------------------------------- */

Test(px_compress_chunk, header)
{
    char b[PX_CHUNK_HEADER_MAX];

    cr_expect_eq(px_chunk_header(b, 1), 3);
    cr_expect_str_eq(b, "1\r\n");
    cr_expect_eq(px_chunk_header(b, 0xabc), 5);
    cr_expect_str_eq(b, "abc\r\n");
    cr_expect_eq(px_chunk_header(b, 65536), 7);
    cr_expect_str_eq(b, "10000\r\n");
    cr_expect_eq(px_chunk_header(b, SIZE_MAX), 18);
    cr_expect_str_eq(b, "ffffffffffffffff\r\n");
    cr_expect_eq(strlen(PX_CHUNK_LAST), PX_CHUNK_LAST_LEN);
    cr_expect_str_eq(PX_CHUNK_LAST, "0\r\n\r\n");
    cr_expect_eq(strlen(PX_CHUNK_END), PX_CHUNK_END_LEN);
}

/* A compressed body framed with the helpers parses back through the
 * proxy's own chunked decoder. */
Test(px_compress_chunk, framed_body_parses)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    uint8_t body[5000];
    struct bytes wire = { 0 }, c = { 0 }, payload = { 0 }, d = { 0 };
    struct px_enc_stream *s = px_enc_new(PX_ENC_GZIP, 6);
    struct xlb_h1_field f[8];
    struct xlb_h1_parser p;
    char room[700], hb[PX_CHUNK_HEADER_MAX];
    size_t off = 0, used, n, pos;
    int r;

    rng_seed(8);
    gen_text(body, sizeof(body));
    bytes_add(&wire, head, sizeof(head) - 1);
    do {
        r = px_enc_run(s, (const char *)body + off, sizeof(body) - off, &used, room, sizeof(room),
                       &n, true);
        cr_assert_geq(r, 0);
        off += used;
        if (n) {
            bytes_add(&wire, hb, px_chunk_header(hb, n));
            bytes_add(&wire, room, n);
            bytes_add(&wire, PX_CHUNK_END, PX_CHUNK_END_LEN);
            bytes_add(&c, room, n);
        }
    } while (r != PX_ENC_END);
    bytes_add(&wire, PX_CHUNK_LAST, PX_CHUNK_LAST_LEN);
    px_enc_free(s);

    xlb_h1_init(&p, XLB_H1_RESPONSE, NULL, f, 8);
    cr_assert_eq(xlb_h1_head(&p, (const char *)wire.p, wire.len), XLB_H1_OK);
    pos = p.head.head_len;
    for (;;) {
        size_t consumed, dl;
        const char *data;

        r = xlb_h1_body(&p, (const char *)wire.p + pos, wire.len - pos, &consumed, &data, &dl);
        cr_assert_geq(r, 0);
        bytes_add(&payload, data, dl);
        pos += consumed;
        if (r == XLB_H1_OK)
            break;
        cr_assert_lt(pos, wire.len);
    }
    cr_assert_eq(pos, wire.len);
    cr_assert_eq(payload.len, c.len);
    decode(PX_ENC_GZIP, payload.p, payload.len, &d);
    cr_assert_eq(d.len, sizeof(body));
    cr_assert(!memcmp(d.p, body, sizeof(body)));
    bytes_free(&wire);
    bytes_free(&c);
    bytes_free(&payload);
    bytes_free(&d);
}
