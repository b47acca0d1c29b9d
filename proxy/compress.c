// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * compress.c - response compression for xlb-proxy (see compress.h).
 *
 * Memory.  Every allocation a codec makes for a stream goes through the
 * stream's own allocator, which counts it; px_enc_mem() reports the count.
 * The streams are bounded by their parameters, not by the body:
 *   gzip   zlib deflate, windowBits 31 (32 KiB window, gzip wrapper),
 *          memLevel 8: window 64 KiB + prev/head 128 KiB + pending 64 KiB,
 *          the same at every level.
 *   br     quality = level (4 uses 5), lgwin PX_BR_LGWIN (16).  With
 *          lgwin <= 16 the qualities 5..9 use brotli's "forgetful chain"
 *          hashers; the peak is then about 1.9 MiB at quality 6, most of
 *          it the meta-block builder's.  lgwin 18 would select the H5/H6
 *          hashers: 4.6 MiB at quality 6, 38 MiB at 9.
 *   zstd   the level's parameters for an unknown size, then windowLog
 *          capped to PX_ZSTD_WINDOWLOG, hashLog and chainLog capped to
 *          windowLog - 1 (the tables are 4 bytes per entry and dominate
 *          otherwise: level 6 would take 2 MiB + 1 MiB).  The stream
 *          buffers are a window plus a block in, a block out.
 * The test suite measures them (tests/unit/test_px_compress.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <brotli/encode.h>
#include <libdeflate.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY    /* ZSTD_createCCtx_advanced, ZSTD_getCParams */
#include <zstd.h>
#include <zstd_errors.h>

#include "compress.h"

/* ---- small text helpers -------------------------------------------------- */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Whether s[0..n) equals text, ASCII case ignored. */
static bool ieq(const char *s, size_t n, const char *text)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!text[i] || lower((unsigned char)s[i]) != lower((unsigned char)text[i]))
            return false;
    return text[i] == '\0';
}

/* Next element of the comma-separated list v[0..len) from *pos: its start
 * and length with OWS trimmed (empty elements skipped); false at the end.
 * Commas inside quoted strings do not split. */
static bool list_next(const char *v, size_t len, size_t *pos, size_t *start, size_t *n)
{
    size_t i = *pos;

    for (;;) {
        size_t s, e;
        bool q = false;

        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i >= len) {
            *pos = i;
            return false;
        }
        s = i;
        for (; i < len; i++) {
            if (q && v[i] == '\\' && i + 1 < len)
                i++;
            else if (v[i] == '"')
                q = !q;
            else if (!q && v[i] == ',')
                break;
        }
        e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e > s) {
            *start = s;
            *n = e - s;
            *pos = i;
            return true;
        }
    }
}

const char *px_enc_name(enum px_enc enc)
{
    switch (enc) {
    case PX_ENC_GZIP:
        return "gzip";
    case PX_ENC_BR:
        return "br";
    case PX_ENC_ZSTD:
        return "zstd";
    default:
        return "identity";
    }
}

/* ---- negotiation --------------------------------------------------------- */

/* Indices of what Accept-Encoding may name. */
enum { AE_GZIP, AE_BR, AE_ZSTD, AE_IDENTITY, AE_STAR, AE_OTHER, AE_N };

/* A qvalue (RFC 9110 section 12.4.2) as thousandths; -1 when malformed. */
static int parse_qvalue(const char *s, size_t n)
{
    int q, i, scale = 100;

    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    q = (s[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (s[1] != '.' || n > 5)
        return -1;
    for (i = 2; i < (int)n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* The weight of one element e[0..n) (already trimmed) and what it names. */
static int parse_element(const char *e, size_t n, int *kind)
{
    size_t i = 0, t;
    int q = 1000;
    bool seen_q = false;

    while (i < n && is_tchar((unsigned char)e[i]))
        i++;
    t = i;
    if (ieq(e, t, "gzip") || ieq(e, t, "x-gzip"))
        *kind = AE_GZIP;
    else if (ieq(e, t, "br"))
        *kind = AE_BR;
    else if (ieq(e, t, "zstd"))
        *kind = AE_ZSTD;
    else if (ieq(e, t, "identity"))
        *kind = AE_IDENTITY;
    else if (t == 1 && e[0] == '*')
        *kind = AE_STAR;
    else
        *kind = AE_OTHER;
    if (t == 0)
        return 0;
    for (;;) {
        size_t ns, nn, vs;

        while (i < n && is_ows(e[i]))
            i++;
        if (i == n)
            return q;
        if (e[i] != ';')
            return 0;               /* junk after the coding or a parameter */
        i++;
        while (i < n && is_ows(e[i]))
            i++;
        if (i == n || e[i] == ';')
            continue;               /* empty parameter */
        ns = i;
        while (i < n && is_tchar((unsigned char)e[i]))
            i++;
        nn = i - ns;
        if (nn == 0 || i == n || e[i] != '=')
            return 0;
        i++;
        vs = i;
        if (i < n && e[i] == '"') {
            for (i++; i < n && e[i] != '"'; i++)
                if (e[i] == '\\')
                    i++;
            if (i >= n)
                return 0;           /* unterminated quoted string */
            i++;
            if (ieq(e + ns, nn, "q"))
                return 0;           /* a quoted q value is no qvalue */
            continue;
        }
        while (i < n && is_tchar((unsigned char)e[i]))
            i++;
        if (i == vs)
            return 0;
        if (ieq(e + ns, nn, "q")) {
            int v = parse_qvalue(e + vs, i - vs);

            if (v < 0 || seen_q)
                return 0;
            seen_q = true;
            q = v;
        }
    }
}

enum px_enc px_enc_choose(const char *v, size_t len, bool present)
{
    /* Server preference, best first. */
    static const int pref[] = { AE_BR, AE_ZSTD, AE_GZIP };
    static const enum px_enc pref_enc[] = { PX_ENC_BR, PX_ENC_ZSTD, PX_ENC_GZIP };
    int q[AE_N];
    bool seen[AE_N] = { false };
    size_t pos = 0, s, n, i;
    int best = -1, best_q = 0, id_q;

    if (!present || !v)
        return PX_ENC_IDENTITY;
    while (list_next(v, len, &pos, &s, &n)) {
        int kind, w = parse_element(v + s, n, &kind);

        if (!seen[kind] || w < q[kind])
            q[kind] = w;
        seen[kind] = true;
    }
    for (i = 0; i < sizeof(pref) / sizeof(pref[0]); i++) {
        int k = pref[i], w = seen[k] ? q[k] : seen[AE_STAR] ? q[AE_STAR] : 0;

        if (w > best_q) {
            best_q = w;
            best = (int)i;
        }
    }
    if (best < 0)
        return PX_ENC_IDENTITY;
    id_q = seen[AE_IDENTITY] ? q[AE_IDENTITY] : seen[AE_STAR] ? q[AE_STAR] : 0;
    if (id_q > best_q)
        return PX_ENC_IDENTITY;
    return pref_enc[best];
}

/* ---- eligibility --------------------------------------------------------- */

static const struct xlb_h1_str *field_value(const struct xlb_h1_head *h, int k)
{
    return &h->fields[k].value;
}

/* Whether any field named name has the list token tok. */
static bool any_list_has(const struct xlb_h1_head *h, const char *buf, const char *name,
                         const char *tok)
{
    int k;

    for (k = xlb_h1_find(h, buf, name, 0); k >= 0; k = xlb_h1_find(h, buf, name, (uint32_t)k + 1)) {
        const struct xlb_h1_str *v = field_value(h, k);

        if (xlb_h1_list_has(buf + v->off, v->len, tok))
            return true;
    }
    return false;
}

/* Whether the media type t[0..n) matches the configured pattern p. */
static bool type_match(const char *t, size_t n, const char *p)
{
    const char *slash = strchr(p, '/');
    const char *ts = memchr(t, '/', n);
    size_t pl = strlen(p);

    if (!slash || !ts || ts == t || ts + 1 == t + n)
        return false;
    if (strcmp(p, "*/*") == 0)
        return true;
    if (strcmp(slash, "/*") == 0)
        return (size_t)(ts - t) == (size_t)(slash - p) && !strncasecmp(t, p, (size_t)(slash - p));
    return n == pl && !strncasecmp(t, p, n);
}

bool px_compress_eligible(const struct xlb_cfg_compression *cfg, const char *req_buf,
                          const struct xlb_h1_head *req, const char *resp_buf,
                          const struct xlb_h1_head *resp)
{
    const struct xlb_h1_str *v;
    size_t pos, s, n;
    int k, i;

    if (!cfg || !cfg->enabled || !req || !resp)
        return false;
    if (req->version_minor < 1 || xlb_h1_str_eq(req_buf, req->method, "HEAD") ||
        xlb_h1_str_eq(req_buf, req->method, "CONNECT"))
        return false;
    if (xlb_h1_find(req, req_buf, "range", 0) >= 0)
        return false;
    if (any_list_has(req, req_buf, "cache-control", "no-transform") ||
        any_list_has(resp, resp_buf, "cache-control", "no-transform"))
        return false;
    if (resp->status < 200 || resp->status > 299 || resp->status == 204 || resp->status == 206)
        return false;
    if (resp->framing == XLB_H1_BODY_NONE)
        return false;
    if (resp->framing == XLB_H1_BODY_LENGTH &&
        (resp->content_length == 0 || resp->content_length < cfg->min_size))
        return false;
    for (k = xlb_h1_find(resp, resp_buf, "content-encoding", 0); k >= 0;
         k = xlb_h1_find(resp, resp_buf, "content-encoding", (uint32_t)k + 1)) {
        v = field_value(resp, k);
        pos = 0;
        while (list_next(resp_buf + v->off, v->len, &pos, &s, &n))
            if (!ieq(resp_buf + v->off + s, n, "identity"))
                return false;
    }
    k = xlb_h1_find(resp, resp_buf, "content-type", 0);
    if (k < 0 || xlb_h1_find(resp, resp_buf, "content-type", (uint32_t)k + 1) >= 0)
        return false;
    v = field_value(resp, k);
    {
        const char *t = resp_buf + v->off;
        const char *semi = memchr(t, ';', v->len);

        n = semi ? (size_t)(semi - t) : v->len;
        while (n && is_ows(t[n - 1]))
            n--;
        for (i = 0; i < cfg->n_types; i++)
            if (type_match(t, n, cfg->types[i]))
                return true;
    }
    return false;
}

/* ---- the response head --------------------------------------------------- */

static int add_field(struct xlb_buf *out, const char *buf, const struct xlb_h1_field *f)
{
    int rc = xlb_buf_add(out, buf + f->name.off, f->name.len);

    if (!rc)
        rc = xlb_buf_add(out, ": ", 2);
    if (!rc)
        rc = xlb_buf_add(out, buf + f->value.off, f->value.len);
    if (!rc)
        rc = xlb_buf_add(out, "\r\n", 2);
    return rc;
}

/* Fields that describe the body as the real sent it. */
static bool dropped(const char *buf, const struct xlb_h1_field *f)
{
    static const char *const names[] = { "content-length", "transfer-encoding", "content-encoding",
                                         "accept-ranges", "content-md5", "digest",
                                         "content-digest", "repr-digest" };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (xlb_h1_str_eq(buf, f->name, names[i]))
            return true;
    return false;
}

int px_compress_fields(struct xlb_buf *out, const char *resp_buf, const struct xlb_h1_head *resp,
                       enum px_enc enc, px_field_skip_fn skip, void *arg)
{
    bool vary_seen = false, vary_ok = false, vary_done = false;
    uint32_t i;
    int rc = 0;

    if (enc <= PX_ENC_IDENTITY || enc > PX_ENC_ZSTD)
        return -EINVAL;
    for (i = 0; i < resp->n_fields; i++) {
        const struct xlb_h1_field *f = &resp->fields[i];

        if (skip && skip(resp_buf, resp, f, arg))
            continue;
        if (xlb_h1_str_eq(resp_buf, f->name, "vary")) {
            vary_seen = true;
            if (xlb_h1_list_has(resp_buf + f->value.off, f->value.len, "*") ||
                xlb_h1_list_has(resp_buf + f->value.off, f->value.len, "accept-encoding"))
                vary_ok = true;
        }
    }
    for (i = 0; i < resp->n_fields && !rc; i++) {
        const struct xlb_h1_field *f = &resp->fields[i];
        const char *val = resp_buf + f->value.off;

        if ((skip && skip(resp_buf, resp, f, arg)) || dropped(resp_buf, f))
            continue;
        if (xlb_h1_str_eq(resp_buf, f->name, "etag") && f->value.len && val[0] == '"') {
            rc = xlb_buf_add(out, resp_buf + f->name.off, f->name.len);
            if (!rc)
                rc = xlb_buf_printf(out, ": W/%.*s\r\n", (int)f->value.len, val);
        } else if (!vary_ok && !vary_done && xlb_h1_str_eq(resp_buf, f->name, "vary")) {
            vary_done = true;
            rc = xlb_buf_add(out, resp_buf + f->name.off, f->name.len);
            if (!rc)
                rc = f->value.len ? xlb_buf_printf(out, ": %.*s, Accept-Encoding\r\n",
                                                   (int)f->value.len, val)
                                  : xlb_buf_add(out, ": Accept-Encoding\r\n", 19);
        } else {
            rc = add_field(out, resp_buf, f);
        }
    }
    if (!rc)
        rc = xlb_buf_printf(out, "Content-Encoding: %s\r\n", px_enc_name(enc));
    if (!rc && !vary_seen)
        rc = xlb_buf_add(out, "Vary: Accept-Encoding\r\n", 23);
    return rc;
}

/* ---- streams ------------------------------------------------------------- */

/* Every codec allocation carries this header so that frees can be counted. */
struct mem_hdr {
    size_t size;
    size_t pad;                 /* keeps the payload 16-byte aligned */
};

struct px_enc_stream {
    enum px_enc enc;
    bool finished, failed;
    size_t mem, peak;
    union {
        z_stream z;
        BrotliEncoderState *br;
        ZSTD_CCtx *zs;
    } u;
};

static void *mem_alloc(struct px_enc_stream *s, size_t size)
{
    struct mem_hdr *h;

    if (size > SIZE_MAX - sizeof(*h))
        return NULL;
    h = malloc(sizeof(*h) + size);
    if (!h)
        return NULL;
    h->size = size;
    s->mem += size;
    if (s->mem > s->peak)
        s->peak = s->mem;
    return h + 1;
}

static void mem_free(struct px_enc_stream *s, void *p)
{
    struct mem_hdr *h;

    if (!p)
        return;
    h = (struct mem_hdr *)p - 1;
    s->mem -= h->size;
    free(h);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    if (size && items > SIZE_MAX / size)
        return NULL;
    return mem_alloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    mem_free(opaque, p);
}

static void *br_alloc(void *opaque, size_t size)
{
    return mem_alloc(opaque, size);
}

static void br_free(void *opaque, void *p)
{
    mem_free(opaque, p);
}

static void *zs_alloc(void *opaque, size_t size)
{
    return mem_alloc(opaque, size);
}

static void zs_free(void *opaque, void *p)
{
    mem_free(opaque, p);
}

static int clamp_level(int level)
{
    return level < 1 ? 1 : level > 9 ? 9 : level;
}

/* Brotli quality of a level: the level, but 4 uses 5 (quality 4's hasher
 * takes about 5 MiB, quality 5's under 2 MiB, and 5 compresses better). */
static uint32_t br_quality(int level)
{
    return level == 4 ? 5 : (uint32_t)level;
}

/* zstd parameters of a stream at level: the level's own, with the window
 * and the tables bounded (see the top of the file). */
static ZSTD_compressionParameters zstd_params(int level)
{
    ZSTD_compressionParameters p = ZSTD_getCParams(level, ZSTD_CONTENTSIZE_UNKNOWN, 0);

    if (p.windowLog > PX_ZSTD_WINDOWLOG)
        p.windowLog = PX_ZSTD_WINDOWLOG;
    if (p.hashLog > p.windowLog - 1)
        p.hashLog = p.windowLog - 1;
    if (p.chainLog > p.windowLog - 1)
        p.chainLog = p.windowLog - 1;
    return p;
}

static int zstd_setup(ZSTD_CCtx *c, int level, bool bounded)
{
    size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);

    if (!ZSTD_isError(r) && bounded) {
        ZSTD_compressionParameters p = zstd_params(level);

        r = ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, (int)p.windowLog);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, (int)p.hashLog);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, (int)p.chainLog);
    }
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    return ZSTD_isError(r) ? -EIO : 0;
}

struct px_enc_stream *px_enc_new(enum px_enc enc, int level)
{
    struct px_enc_stream *s;

    if (enc <= PX_ENC_IDENTITY || enc > PX_ENC_ZSTD) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->enc = enc;
    s->mem = s->peak = sizeof(*s);
    level = clamp_level(level);
    switch (enc) {
    case PX_ENC_GZIP:
        s->u.z.zalloc = z_alloc;
        s->u.z.zfree = z_free;
        s->u.z.opaque = s;
        if (deflateInit2(&s->u.z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            goto fail;
        break;
    case PX_ENC_BR:
        s->u.br = BrotliEncoderCreateInstance(br_alloc, br_free, s);
        if (!s->u.br)
            goto fail;
        if (!BrotliEncoderSetParameter(s->u.br, BROTLI_PARAM_QUALITY, br_quality(level)) ||
            !BrotliEncoderSetParameter(s->u.br, BROTLI_PARAM_LGWIN, PX_BR_LGWIN)) {
            BrotliEncoderDestroyInstance(s->u.br);
            goto fail;
        }
        break;
    default: {
        ZSTD_customMem cm = { zs_alloc, zs_free, s };

        s->u.zs = ZSTD_createCCtx_advanced(cm);
        if (!s->u.zs)
            goto fail;
        if (zstd_setup(s->u.zs, level, true) < 0) {
            ZSTD_freeCCtx(s->u.zs);
            goto fail;
        }
        break;
    }
    }
    return s;

fail:
    free(s);
    errno = ENOMEM;
    return NULL;
}

/* One deflate() call on at most UINT_MAX bytes each way. */
static int run_gzip(struct px_enc_stream *s, const char *in, size_t in_len, size_t *in_used,
                    char *out, size_t out_cap, size_t *out_len, int flush)
{
    z_stream *z = &s->u.z;
    uInt ai = in_len > UINT_MAX ? UINT_MAX : (uInt)in_len;
    uInt ao = out_cap > UINT_MAX ? UINT_MAX : (uInt)out_cap;
    int r;

    /* Z_FINISH with part of the input only would end the stream early. */
    if (flush == Z_FINISH && ai < in_len)
        flush = Z_NO_FLUSH;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = ai;
    z->next_out = (Bytef *)out;
    z->avail_out = ao;
    r = deflate(z, flush);
    *in_used = ai - z->avail_in;
    *out_len = ao - z->avail_out;
    if (r == Z_STREAM_END)
        return PX_ENC_END;
    if (r == Z_OK || r == Z_BUF_ERROR) {
        /* A sync flush is complete when deflate left room in out. */
        if (flush == Z_SYNC_FLUSH && z->avail_out > 0)
            return PX_ENC_END;
        return PX_ENC_AGAIN;
    }
    return -EIO;
}

int px_enc_run(struct px_enc_stream *s, const char *in, size_t in_len, size_t *in_used, char *out,
               size_t out_cap, size_t *out_len, bool finish)
{
    *in_used = 0;
    *out_len = 0;
    if (!s)
        return -EINVAL;
    if (s->failed)
        return -EIO;
    if (s->finished)
        return PX_ENC_END;
    switch (s->enc) {
    case PX_ENC_GZIP: {
        int r = run_gzip(s, in, in_len, in_used, out, out_cap, out_len,
                         finish ? Z_FINISH : Z_NO_FLUSH);

        if (r == PX_ENC_END && !finish)
            r = PX_ENC_AGAIN;
        if (r < 0)
            s->failed = true;
        else if (r == PX_ENC_END)
            s->finished = true;
        return r;
    }
    case PX_ENC_BR: {
        size_t ai = in_len, ao = out_cap;
        const uint8_t *ni = (const uint8_t *)in;
        uint8_t *no = (uint8_t *)out;

        if (!BrotliEncoderCompressStream(s->u.br,
                                         finish ? BROTLI_OPERATION_FINISH
                                                : BROTLI_OPERATION_PROCESS,
                                         &ai, &ni, &ao, &no, NULL)) {
            s->failed = true;
            return -EIO;
        }
        *in_used = in_len - ai;
        *out_len = out_cap - ao;
        if (finish && BrotliEncoderIsFinished(s->u.br)) {
            s->finished = true;
            return PX_ENC_END;
        }
        return PX_ENC_AGAIN;
    }
    default: {
        ZSTD_inBuffer ib = { in, in_len, 0 };
        ZSTD_outBuffer ob = { out, out_cap, 0 };
        size_t r = ZSTD_compressStream2(s->u.zs, &ob, &ib, finish ? ZSTD_e_end : ZSTD_e_continue);

        *in_used = ib.pos;
        *out_len = ob.pos;
        if (ZSTD_isError(r)) {
            s->failed = true;
            return -EIO;
        }
        if (finish && r == 0) {
            s->finished = true;
            return PX_ENC_END;
        }
        return PX_ENC_AGAIN;
    }
    }
}

int px_enc_flush(struct px_enc_stream *s, char *out, size_t out_cap, size_t *out_len)
{
    size_t used;

    *out_len = 0;
    if (!s)
        return -EINVAL;
    if (s->failed)
        return -EIO;
    if (s->finished)
        return PX_ENC_END;
    switch (s->enc) {
    case PX_ENC_GZIP: {
        int r = run_gzip(s, NULL, 0, &used, out, out_cap, out_len, Z_SYNC_FLUSH);

        if (r < 0)
            s->failed = true;
        return r;
    }
    case PX_ENC_BR: {
        size_t ai = 0, ao = out_cap;
        const uint8_t *ni = NULL;
        uint8_t *no = (uint8_t *)out;

        if (!BrotliEncoderCompressStream(s->u.br, BROTLI_OPERATION_FLUSH, &ai, &ni, &ao, &no,
                                         NULL)) {
            s->failed = true;
            return -EIO;
        }
        *out_len = out_cap - ao;
        return BrotliEncoderHasMoreOutput(s->u.br) ? PX_ENC_AGAIN : PX_ENC_END;
    }
    default: {
        ZSTD_inBuffer ib = { NULL, 0, 0 };
        ZSTD_outBuffer ob = { out, out_cap, 0 };
        size_t r = ZSTD_compressStream2(s->u.zs, &ob, &ib, ZSTD_e_flush);

        *out_len = ob.pos;
        if (ZSTD_isError(r)) {
            s->failed = true;
            return -EIO;
        }
        return r == 0 ? PX_ENC_END : PX_ENC_AGAIN;
    }
    }
}

size_t px_enc_mem(const struct px_enc_stream *s, size_t *peak)
{
    if (peak)
        *peak = s ? s->peak : 0;
    return s ? s->mem : 0;
}

void px_enc_free(struct px_enc_stream *s)
{
    if (!s)
        return;
    switch (s->enc) {
    case PX_ENC_GZIP:
        deflateEnd(&s->u.z);
        break;
    case PX_ENC_BR:
        BrotliEncoderDestroyInstance(s->u.br);
        break;
    default:
        ZSTD_freeCCtx(s->u.zs);
        break;
    }
    free(s);
}

/* ---- whole buffers ------------------------------------------------------- */

/* This thread's oneshot compressors: libdeflate's per level, one zstd
 * context (its parameters are set per call). */
static __thread struct libdeflate_compressor *tl_deflate[10];
static __thread ZSTD_CCtx *tl_zstd;

size_t px_enc_bound(enum px_enc enc, size_t len)
{
    switch (enc) {
    case PX_ENC_GZIP:
        return libdeflate_gzip_compress_bound(NULL, len);
    case PX_ENC_BR:
        return BrotliEncoderMaxCompressedSize(len);
    case PX_ENC_ZSTD:
        return ZSTD_compressBound(len);
    default:
        return 0;
    }
}

int px_enc_oneshot(enum px_enc enc, int level, const char *in, size_t len, char *out, size_t cap,
                   size_t *out_len)
{
    *out_len = 0;
    level = clamp_level(level);
    switch (enc) {
    case PX_ENC_GZIP: {
        size_t n;

        if (!tl_deflate[level]) {
            tl_deflate[level] = libdeflate_alloc_compressor(level);
            if (!tl_deflate[level])
                return -ENOMEM;
        }
        n = libdeflate_gzip_compress(tl_deflate[level], in, len, out, cap);
        if (!n)
            return -ENOSPC;
        *out_len = n;
        return 0;
    }
    case PX_ENC_BR: {
        size_t n = cap;

        /* BrotliEncoderCompress fails both on a short output and on
         * allocation failure; a full bound tells them apart. */
        if (!BrotliEncoderCompress((int)br_quality(level), PX_BR_LGWIN, BROTLI_MODE_GENERIC, len,
                                   (const uint8_t *)in, &n, (uint8_t *)out))
            return cap < BrotliEncoderMaxCompressedSize(len) ? -ENOSPC : -ENOMEM;
        *out_len = n;
        return 0;
    }
    case PX_ENC_ZSTD: {
        size_t n;

        if (!tl_zstd) {
            tl_zstd = ZSTD_createCCtx();
            if (!tl_zstd)
                return -ENOMEM;
        }
        ZSTD_CCtx_reset(tl_zstd, ZSTD_reset_session_and_parameters);
        if (zstd_setup(tl_zstd, level, true) < 0)
            return -EIO;
        n = ZSTD_compress2(tl_zstd, out, cap, in, len);
        if (ZSTD_isError(n))
            return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? -ENOSPC
                 : ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
        *out_len = n;
        return 0;
    }
    default:
        return -EINVAL;
    }
}

void px_enc_thread_cleanup(void)
{
    size_t i;

    for (i = 0; i < sizeof(tl_deflate) / sizeof(tl_deflate[0]); i++) {
        if (tl_deflate[i])
            libdeflate_free_compressor(tl_deflate[i]);
        tl_deflate[i] = NULL;
    }
    ZSTD_freeCCtx(tl_zstd);
    tl_zstd = NULL;
}

/* ---- chunked framing ----------------------------------------------------- */

size_t px_chunk_header(char *buf, size_t len)
{
    int n = snprintf(buf, PX_CHUNK_HEADER_MAX, "%zx\r\n", len);

    return n < 0 ? 0 : (size_t)n;
}
