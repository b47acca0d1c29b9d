// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cache.c - the shared HTTP cache of a layer-7 service (see cache.h for the
 * rules).
 *
 * Layout.  One mutex guards a chained hash table (keyed by URL only, so
 * every variant of a URL sits in one bucket, newest first) and one LRU list
 * over all objects.  An object is a single allocation holding its key,
 * variant, Vary values, both heads (200 and 304 forms) and, when the
 * Content-Length was known, its body; a body of unknown length grows in a
 * buffer of its own while it is filled.  The table owns one reference;
 * every hit takes another, so the lock only covers the lookup walk and the
 * LRU move, and objects taken out of the table (eviction, purge) are
 * released after the lock is dropped, which also keeps free() out of it.
 *
 * A fill builds its object outside the lock, and takes it only to insert.
 * The cache's epoch counts flushes, purges and invalidations: a fill that
 * began before one of them is dropped, since its response may be what the
 * purge meant to remove.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cache.h"
#include "px.h"

#define MAX_VARY 16             /* Vary field names; more: not stored */
#define VARY_ABSENT UINT32_MAX  /* the request had no such field */
#define DELTA_MAX 2147483648LL  /* RFC 9111 1.2.2: delta-seconds cap */
#define DEFAULT_MAX_SIZE (64ull << 20)
#define DEFAULT_MAX_OBJECT (1ull << 20)
#define GROW_FIRST 4096

struct vary_ent {
    uint32_t name_off, name_len;    /* lowercased, NUL-terminated in the blob */
    uint32_t val_off, val_len;      /* VARY_ABSENT: field absent */
};

struct px_cache_fill {
    struct px_cache *c;
    uint64_t epoch;
    size_t cap;                 /* of a separately allocated body */
    uint64_t expect;            /* Content-Length, UINT64_MAX when unknown */
    int err;
};

struct px_cache_obj {
    _Atomic uint32_t refs;
    /* Table links, under the cache lock. */
    struct px_cache_obj *hnext, **hpprev;
    struct px_cache_obj *lprev, *lnext;
    struct px_cache_obj *dead;  /* a list of removed objects to release */
    uint64_t hash;
    uint64_t tick;              /* the cache's tick when last put at the LRU head */
    size_t size;                /* bytes accounted */
    /* Immutable once stored. */
    uint64_t stored_ms;         /* now_ms when the response arrived */
    uint64_t initial_age_ms;    /* corrected initial age */
    uint64_t lifetime_ms;       /* freshness lifetime */
    int64_t validator_s;        /* Last-Modified, else Date, else arrival (wall s) */
    int status;
    uint32_t host_len, target_len;  /* key: host '\0' target '\0' at blob */
    uint32_t variant_off;
    uint32_t n_vary, vary_off;  /* struct vary_ent[n_vary] */
    uint32_t etag_off, etag_len;    /* opaque-tag with quotes; len 0: none */
    uint32_t head_off, head_len;    /* status line + fields, CRLF each */
    uint32_t h304_off, h304_len;    /* 304 status line + kept fields */
    char *body;
    size_t body_len;
    bool body_owned;            /* body is a malloc of its own */
    struct px_cache_fill fill;
    _Alignas(8) char blob[];
};

struct px_cache {
    struct xlb_cfg_cache cfg;
    pthread_mutex_t lock;
    struct px_cache_obj **buckets;
    size_t mask;                /* buckets - 1 */
    size_t n;                   /* objects in the table */
    uint64_t bytes;
    struct px_cache_obj lru;    /* sentinel: lnext is the most recently used */
    uint64_t tick;              /* LRU head insertions so far */
    _Atomic uint64_t epoch;
    _Atomic int64_t wall_off_ms;
    uint64_t key[2];            /* SipHash key */
    _Atomic uint64_t hits, misses, bypasses, refreshes, stores, uncacheable, drops, evictions,
        expired, purged, replaced, objects, nbytes;
};

#define CNT(c, f) atomic_fetch_add_explicit(&(c)->f, 1, memory_order_relaxed)

/* ---- small text helpers ------------------------------------------------- */

static inline char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
}

static inline bool ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Whether a[0..n) equals b[0..n) with ASCII case ignored. */
static bool ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

/* Whether s[0..n) is the C string t, ASCII case ignored. */
static bool tok_is(const char *s, size_t n, const char *t)
{
    return strlen(t) == n && ieq(s, t, n);
}

static inline const char *fval(const char *buf, const struct xlb_h1_head *h, int i, size_t *n)
{
    *n = h->fields[i].value.len;
    return buf + h->fields[i].value.off;
}

/* Methods are case-sensitive (RFC 9110 9.1). */
static bool method_is(const char *buf, const struct xlb_h1_head *h, const char *m)
{
    return h->method.len == strlen(m) && memcmp(buf + h->method.off, m, h->method.len) == 0;
}

static bool has_field(const char *buf, const struct xlb_h1_head *h, const char *name)
{
    return xlb_h1_find(h, buf, name, 0) >= 0;
}

/* delta-seconds (RFC 9111 1.2.2) from s[0..n): the value capped at
 * DELTA_MAX, or -1 when it is not 1*DIGIT. */
static int64_t delta_seconds(const char *s, size_t n)
{
    int64_t v = 0;

    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v < DELTA_MAX)
            v = v * 10 + (s[i] - '0');
    }
    return v > DELTA_MAX ? DELTA_MAX : v;
}

/* ---- HTTP dates (RFC 9110 5.6.7) ---------------------------------------- */

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char wdays[] = "SunMonTueWedThuFriSat";

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t)doe - 719468;
}

static bool num(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int month_of(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(s, months + 3 * i, 3) == 0)
            return i + 1;
    return 0;
}

/* "HH:MM:SS" at s into seconds of the day. */
static bool clock_of(const char *s, int *secs)
{
    int h, m, x;

    if (s[2] != ':' || s[5] != ':' || !num(s, 2, &h) || !num(s + 3, 2, &m) ||
        !num(s + 6, 2, &x) || h > 23 || m > 59 || x > 60)
        return false;
    *secs = h * 3600 + m * 60 + (x == 60 ? 59 : x);
    return true;
}

/*
 * Parse an HTTP-date in any of its three forms (IMF-fixdate, RFC 850,
 * asctime) into seconds since the epoch.  false when s[0..n) is none.
 */
static bool http_date(const char *s, size_t n, int64_t *t)
{
    size_t i = 0;
    int d, y, mon, secs;

    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
        i++;
    if (i < 3 || i >= n)
        return false;
    if (s[i] == ',') {
        const char *p = s + i + 2;
        size_t left = n - i - 2;
        if (n < i + 2 || s[i + 1] != ' ')
            return false;
        if (left == 24 && p[2] == ' ') {            /* 06 Nov 1994 08:49:37 GMT */
            if (!num(p, 2, &d) || !(mon = month_of(p + 3)) || p[6] != ' ' ||
                !num(p + 7, 4, &y) || p[11] != ' ' || !clock_of(p + 12, &secs) ||
                memcmp(p + 20, " GMT", 4) != 0)
                return false;
        } else if (left == 22 && p[2] == '-') {     /* 06-Nov-94 08:49:37 GMT */
            if (!num(p, 2, &d) || !(mon = month_of(p + 3)) || p[6] != '-' ||
                !num(p + 7, 2, &y) || p[9] != ' ' || !clock_of(p + 10, &secs) ||
                memcmp(p + 18, " GMT", 4) != 0)
                return false;
            y += y < 70 ? 2000 : 1900;
        } else {
            return false;
        }
    } else if (i == 3 && s[3] == ' ' && n == 24) { /* Sun Nov  6 08:49:37 1994 */
        const char *p = s + 4;
        if (!(mon = month_of(p)) || p[3] != ' ' || p[6] != ' ' || !clock_of(p + 7, &secs) ||
            p[15] != ' ' || !num(p + 16, 4, &y))
            return false;
        if (p[4] == ' ' ? !num(p + 5, 1, &d) : !num(p + 4, 2, &d))
            return false;
    } else {
        return false;
    }
    if (d < 1 || d > 31)
        return false;
    *t = days_from_civil(y, (unsigned)mon, (unsigned)d) * 86400 + secs;
    return true;
}

/* The IMF-fixdate of t into out (29 characters and the NUL). */
static void fmt_date(int64_t t, char out[64])
{
    int64_t z = (t >= 0 ? t : t - 86399) / 86400, secs = t - z * 86400;
    int wd = (int)(((z % 7) + 11) % 7);
    int64_t era, y;
    unsigned doe, yoe, doy, mp, d, m;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    snprintf(out, 64, "%.3s, %02u %.3s %04d %02d:%02d:%02d GMT", wdays + 3 * wd, d,
             months + 3 * (m - 1), (int)(y % 10000), (int)(secs / 3600), (int)(secs / 60 % 60),
             (int)(secs % 60));
}

/* The first field name's value as an HTTP-date; false when absent or invalid. */
static bool date_field(const char *buf, const struct xlb_h1_head *h, const char *name, int64_t *t)
{
    int i = xlb_h1_find(h, buf, name, 0);
    size_t n;
    const char *v;

    if (i < 0)
        return false;
    v = fval(buf, h, i, &n);
    return http_date(v, n, t);
}

/* ---- Cache-Control ------------------------------------------------------ */

struct cc {
    bool present;
    bool no_store, no_cache, priv, pub, must_revalidate;
    int64_t max_age, s_maxage, min_fresh;   /* -1: absent */
};

static void cc_apply(struct cc *cc, const char *nm, size_t nl, const char *v, size_t vl, bool hv)
{
    int64_t *slot = NULL;

    if (tok_is(nm, nl, "no-store"))
        cc->no_store = true;
    else if (tok_is(nm, nl, "no-cache"))
        cc->no_cache = true;
    else if (tok_is(nm, nl, "private"))
        cc->priv = true;
    else if (tok_is(nm, nl, "public"))
        cc->pub = true;
    else if (tok_is(nm, nl, "must-revalidate"))
        cc->must_revalidate = true;
    else if (tok_is(nm, nl, "max-age"))
        slot = &cc->max_age;
    else if (tok_is(nm, nl, "s-maxage"))
        slot = &cc->s_maxage;
    else if (tok_is(nm, nl, "min-fresh"))
        slot = &cc->min_fresh;
    if (slot && *slot < 0) {
        /* The first occurrence counts; an invalid value means stale (0). */
        int64_t x = hv ? delta_seconds(v, vl) : -1;
        *slot = x < 0 ? 0 : x;
    }
}

static void cc_init(struct cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->min_fresh = -1;
}

/*
 * The directives of one Cache-Control field value v[0..n): token [ "="
 * ( token / quoted-string ) ], comma-separated; commas inside a quoted
 * string do not split.  Unknown directives are ignored.
 */
static void cc_field(struct cc *cc, const char *v, size_t n)
{
    size_t i = 0;

    cc->present = true;
    while (i < n) {
        size_t ns, ne, vs = 0, ve = 0;
        bool hv = false;
        while (i < n && (ows(v[i]) || v[i] == ','))
            i++;
        ns = i;
        while (i < n && v[i] != '=' && v[i] != ',' && !ows(v[i]))
            i++;
        ne = i;
        if (i < n && v[i] == '=') {
            hv = true;
            i++;
            if (i < n && v[i] == '"') {
                vs = ++i;
                while (i < n && v[i] != '"')
                    i += v[i] == '\\' ? 2 : 1;
                ve = i < n ? i : n;
                i++;
            } else {
                vs = i;
                while (i < n && v[i] != ',' && !ows(v[i]))
                    i++;
                ve = i;
            }
        }
        while (i < n && v[i] != ',')
            i++;
        if (ne > ns)
            cc_apply(cc, v + ns, ne - ns, v + vs, ve - vs, hv);
    }
}

/* Every Cache-Control directive of h (all its Cache-Control fields). */
static void cc_parse(const char *buf, const struct xlb_h1_head *h, struct cc *cc)
{
    cc_init(cc);
    for (int f = xlb_h1_find(h, buf, "cache-control", 0); f >= 0;
         f = xlb_h1_find(h, buf, "cache-control", (uint32_t)f + 1)) {
        size_t n;
        const char *v = fval(buf, h, f, &n);
        cc_field(cc, v, n);
    }
}

/*
 * One pass over a request's fields for px_cache_lookup: its Cache-Control
 * into cc, Pragma: no-cache into *pragma_nc.  Returns true when a field
 * makes the request one the cache cannot answer (Authorization, If-Match,
 * If-Unmodified-Since).
 */
static bool req_scan(const char *buf, const struct xlb_h1_head *h, struct cc *cc, bool *pragma_nc)
{
    cc_init(cc);
    *pragma_nc = false;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        struct xlb_h1_str nm = h->fields[i].name;
        const char *v = buf + h->fields[i].value.off;
        size_t n = h->fields[i].value.len;
        switch (nm.len) {
        case 13:
            if (xlb_h1_str_eq(buf, nm, "authorization"))
                return true;
            if (xlb_h1_str_eq(buf, nm, "cache-control"))
                cc_field(cc, v, n);
            break;
        case 8:
            if (xlb_h1_str_eq(buf, nm, "if-match"))
                return true;
            break;
        case 19:
            if (xlb_h1_str_eq(buf, nm, "if-unmodified-since"))
                return true;
            break;
        case 6:
            if (xlb_h1_str_eq(buf, nm, "pragma") && xlb_h1_list_has(v, n, "no-cache"))
                *pragma_nc = true;
            break;
        default:
            break;
        }
    }
    return false;
}

/* ---- keys --------------------------------------------------------------- */

struct url {
    const char *host;
    size_t host_len;
    const char *target;         /* path [ "?" query ] */
    size_t target_len;
    bool query;
};

/*
 * The cache URL of req: origin-form (host from Host; "" for an HTTP/1.0
 * request without one) or absolute http/https form (host from the
 * authority).  -EINVAL for any other target (or userinfo in the authority).
 */
static int req_url(const char *buf, const struct xlb_h1_head *req, struct url *u)
{
    const char *t = buf + req->target.off;
    size_t n = req->target.len, skip = 0;

    if (n && t[0] == '/') {
        u->target = t;
        u->target_len = n;
        if (req->host_field >= 0) {
            u->host = fval(buf, req, req->host_field, &u->host_len);
        } else {
            u->host = "";
            u->host_len = 0;
        }
    } else {
        if (n >= 7 && ieq(t, "http://", 7))
            skip = 7;
        else if (n >= 8 && ieq(t, "https://", 8))
            skip = 8;
        else
            return -EINVAL;
        size_t a = skip;
        while (a < n && t[a] != '/' && t[a] != '?') {
            if (t[a] == '@')
                return -EINVAL;
            a++;
        }
        u->host = t + skip;
        u->host_len = a - skip;
        if (a == n) {
            u->target = "/";
            u->target_len = 1;
        } else if (t[a] == '/') {
            u->target = t + a;
            u->target_len = n - a;
        } else {
            return -EINVAL;
        }
    }
    u->query = memchr(u->target, '?', u->target_len) != NULL;
    return 0;
}

/* SipHash-1-3 over the lowercased host, a 0 byte and the target. */
struct sip {
    uint64_t v0, v1, v2, v3, m, total;
    unsigned ml;
};

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(s)                                                                            \
    do {                                                                                       \
        (s)->v0 += (s)->v1; (s)->v1 = ROTL((s)->v1, 13); (s)->v1 ^= (s)->v0;                  \
        (s)->v0 = ROTL((s)->v0, 32); (s)->v2 += (s)->v3; (s)->v3 = ROTL((s)->v3, 16);         \
        (s)->v3 ^= (s)->v2; (s)->v0 += (s)->v3; (s)->v3 = ROTL((s)->v3, 21);                  \
        (s)->v3 ^= (s)->v0; (s)->v2 += (s)->v1; (s)->v1 = ROTL((s)->v1, 17);                  \
        (s)->v1 ^= (s)->v2; (s)->v2 = ROTL((s)->v2, 32);                                      \
    } while (0)

static void sip_init(struct sip *s, const uint64_t k[2])
{
    s->v0 = k[0] ^ 0x736f6d6570736575ull;
    s->v1 = k[1] ^ 0x646f72616e646f6dull;
    s->v2 = k[0] ^ 0x6c7967656e657261ull;
    s->v3 = k[1] ^ 0x7465646279746573ull;
    s->m = s->total = 0;
    s->ml = 0;
}

static inline void sip_byte(struct sip *s, uint8_t b)
{
    s->m |= (uint64_t)b << (8 * s->ml);
    s->total++;
    if (++s->ml == 8) {
        s->v3 ^= s->m;
        SIPROUND(s);
        s->v0 ^= s->m;
        s->m = 0;
        s->ml = 0;
    }
}

/* n bytes of p; whole words at a time once the pending word is empty. */
static void sip_bytes(struct sip *s, const char *p, size_t n)
{
    while (n && s->ml) {
        sip_byte(s, (uint8_t)*p++);
        n--;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t m;
        memcpy(&m, p, 8);
        m = le64toh(m);
        s->v3 ^= m;
        SIPROUND(s);
        s->v0 ^= m;
        s->total += 8;
    }
    while (n--)
        sip_byte(s, (uint8_t)*p++);
}

static uint64_t sip_final(struct sip *s)
{
    uint64_t b = s->m | (s->total << 56);

    s->v3 ^= b;
    SIPROUND(s);
    s->v0 ^= b;
    s->v2 ^= 0xff;
    SIPROUND(s);
    SIPROUND(s);
    SIPROUND(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static uint64_t url_hash(const struct px_cache *c, const char *host, size_t hl, const char *t,
                         size_t tl)
{
    struct sip s;

    sip_init(&s, c->key);
    for (size_t i = 0; i < hl; i++)
        sip_byte(&s, (uint8_t)lower(host[i]));
    sip_byte(&s, 0);
    sip_bytes(&s, t, tl);
    return sip_final(&s);
}

static bool obj_url_eq(const struct px_cache_obj *o, uint64_t h, const char *host, size_t hl,
                       const char *t, size_t tl)
{
    return o->hash == h && o->host_len == hl && o->target_len == tl &&
           ieq(o->blob, host, hl) && memcmp(o->blob + hl + 1, t, tl) == 0;
}

/* Whether the request's values of field name equal the stored ones (all its
 * fields joined with ", "). */
static bool vary_value_eq(const char *sv, uint32_t sl, const char *buf,
                          const struct xlb_h1_head *h, const char *name)
{
    size_t pos = 0;
    bool any = false;

    for (int f = xlb_h1_find(h, buf, name, 0); f >= 0;
         f = xlb_h1_find(h, buf, name, (uint32_t)f + 1)) {
        size_t n;
        const char *v = fval(buf, h, f, &n);
        if (sl == VARY_ABSENT)
            return false;
        if (any) {
            if (sl - pos < 2 || memcmp(sv + pos, ", ", 2) != 0)
                return false;
            pos += 2;
        }
        if (sl - pos < n || memcmp(sv + pos, v, n) != 0)
            return false;
        pos += n;
        any = true;
    }
    return any ? pos == sl : sl == VARY_ABSENT;
}

static bool obj_matches(const struct px_cache_obj *o, const char *variant, const char *buf,
                        const struct xlb_h1_head *req)
{
    const struct vary_ent *ve = (const struct vary_ent *)(o->blob + o->vary_off);

    if (strcmp(o->blob + o->variant_off, variant) != 0)
        return false;
    for (uint32_t i = 0; i < o->n_vary; i++)
        if (!vary_value_eq(o->blob + ve[i].val_off, ve[i].val_len, buf, req,
                           o->blob + ve[i].name_off))
            return false;
    return true;
}

/* Whether a and b have the same variant and the same Vary names and values. */
static bool same_variant(const struct px_cache_obj *a, const struct px_cache_obj *b)
{
    const struct vary_ent *va = (const struct vary_ent *)(a->blob + a->vary_off);
    const struct vary_ent *vb = (const struct vary_ent *)(b->blob + b->vary_off);

    if (strcmp(a->blob + a->variant_off, b->blob + b->variant_off) != 0 || a->n_vary != b->n_vary)
        return false;
    for (uint32_t i = 0; i < a->n_vary; i++) {
        if (va[i].name_len != vb[i].name_len || va[i].val_len != vb[i].val_len ||
            memcmp(a->blob + va[i].name_off, b->blob + vb[i].name_off, va[i].name_len) != 0 ||
            (va[i].val_len != VARY_ABSENT &&
             memcmp(a->blob + va[i].val_off, b->blob + vb[i].val_off, va[i].val_len) != 0))
            return false;
    }
    return true;
}

/* ---- objects and the table ---------------------------------------------- */

static void obj_free(struct px_cache_obj *o)
{
    if (o->body_owned)
        free(o->body);
    free(o);
}

void px_cache_release(struct px_cache_obj *o)
{
    if (o && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        obj_free(o);
}

static void lru_unlink(struct px_cache_obj *o)
{
    o->lprev->lnext = o->lnext;
    o->lnext->lprev = o->lprev;
}

static void lru_push(struct px_cache *c, struct px_cache_obj *o)
{
    o->tick = ++c->tick;
    o->lnext = c->lru.lnext;
    o->lprev = &c->lru;
    c->lru.lnext->lprev = o;
    c->lru.lnext = o;
}

/* Take o out of the table (lock held) onto *dead, to be released after the
 * lock is dropped. */
static void unlink_obj(struct px_cache *c, struct px_cache_obj *o, struct px_cache_obj **dead)
{
    *o->hpprev = o->hnext;
    if (o->hnext)
        o->hnext->hpprev = o->hpprev;
    lru_unlink(o);
    c->n--;
    c->bytes -= o->size;
    atomic_fetch_sub_explicit(&c->objects, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->nbytes, o->size, memory_order_relaxed);
    o->dead = *dead;
    *dead = o;
}

static void release_dead(struct px_cache_obj *dead)
{
    while (dead) {
        struct px_cache_obj *next = dead->dead;
        px_cache_release(dead);
        dead = next;
    }
}

static void bucket_push(struct px_cache_obj **b, struct px_cache_obj *o)
{
    o->hnext = *b;
    if (*b)
        (*b)->hpprev = &o->hnext;
    *b = o;
    o->hpprev = b;
}

/* Double the table when it is crowded (lock held).  On allocation failure
 * the old table stays: chains get longer, nothing breaks. */
static void maybe_grow(struct px_cache *c)
{
    size_t nb = (c->mask + 1) * 2;
    struct px_cache_obj **b;

    if (c->n <= (c->mask + 1) * 2 || nb > (1u << 24))
        return;
    b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        struct px_cache_obj *o = c->buckets[i], *next;
        /* Reverse order per bucket would put older variants first; walk to
         * the tail and push backwards to keep newest-first order. */
        struct px_cache_obj *stack = NULL;
        for (; o; o = next) {
            next = o->hnext;
            o->hnext = stack;
            stack = o;
        }
        for (o = stack; o; o = next) {
            next = o->hnext;
            bucket_push(&b[o->hash & (nb - 1)], o);
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->mask = nb - 1;
}

/* ---- the cache ---------------------------------------------------------- */

static int64_t wall_minus_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)px_now_ms();
}

struct px_cache *px_cache_new(const struct xlb_cfg_cache *cfg)
{
    struct px_cache *c = calloc(1, sizeof(*c));
    size_t nb = 64;
    int err;

    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (!c->cfg.max_size)
        c->cfg.max_size = DEFAULT_MAX_SIZE;
    if (!c->cfg.max_object)
        c->cfg.max_object = DEFAULT_MAX_OBJECT;
    while (nb < (1u << 20) && nb * 8192 < c->cfg.max_size)
        nb *= 2;
    c->buckets = calloc(nb, sizeof(*c->buckets));
    if (!c->buckets) {
        err = ENOMEM;
        goto fail;
    }
    c->mask = nb - 1;
    c->lru.lnext = c->lru.lprev = &c->lru;
    if (getrandom(c->key, sizeof(c->key), 0) != sizeof(c->key)) {
        /* Not secret then, still spread. */
        c->key[0] = (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
        c->key[1] = (uint64_t)px_now_ms() * 0xff51afd7ed558ccdull;
    }
    atomic_store(&c->wall_off_ms, wall_minus_mono_ms());
    if ((err = pthread_mutex_init(&c->lock, NULL)))
        goto fail;
    return c;
fail:
    free(c->buckets);
    free(c);
    errno = err;
    return NULL;
}

void px_cache_free(struct px_cache *c)
{
    if (!c)
        return;
    px_cache_flush(c);
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}

void px_cache_set_wall_offset(struct px_cache *c, int64_t wall_minus_now_ms)
{
    atomic_store(&c->wall_off_ms, wall_minus_now_ms);
}

static int64_t wall_s(const struct px_cache *c, uint64_t now_ms)
{
    int64_t ms = (int64_t)now_ms + atomic_load_explicit(&c->wall_off_ms, memory_order_relaxed);

    return ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
}

/* The request's conditions for being looked up or stored: 0 with *u set,
 * or -EINVAL when the request is not cacheable at all. */
static int req_cacheable(const struct px_cache *c, const char *buf, const struct xlb_h1_head *req,
                         const char *variant, struct url *u)
{
    if (!c->cfg.enabled || strlen(variant) > PX_CACHE_MAX_VARIANT_LEN ||
        req_url(buf, req, u) < 0 || (u->query && !c->cfg.cache_query))
        return -EINVAL;
    return 0;
}

int px_cache_lookup(struct px_cache *c, const char *req_buf, const struct xlb_h1_head *req,
                    const char *variant, uint64_t now_ms, struct px_cache_obj **hit)
{
    struct px_cache_obj *o, *dead = NULL;
    struct url u;
    struct cc cc;
    bool pragma_nc;
    uint64_t h;
    int rc = PX_CACHE_MISS;

    *hit = NULL;
    if (!variant)
        variant = "";
    if ((!method_is(req_buf, req, "GET") && !method_is(req_buf, req, "HEAD")) ||
        req_cacheable(c, req_buf, req, variant, &u) < 0 ||
        req_scan(req_buf, req, &cc, &pragma_nc)) {
        CNT(c, bypasses);
        return PX_CACHE_BYPASS;
    }
    if (cc.no_cache || pragma_nc) {
        CNT(c, refreshes);
        return PX_CACHE_REFRESH;
    }
    h = url_hash(c, u.host, u.host_len, u.target, u.target_len);
    pthread_mutex_lock(&c->lock);
    for (o = c->buckets[h & c->mask]; o; o = o->hnext)
        if (obj_url_eq(o, h, u.host, u.host_len, u.target, u.target_len) &&
            obj_matches(o, variant, req_buf, req))
            break;
    if (o) {
        uint64_t age = o->initial_age_ms + (now_ms > o->stored_ms ? now_ms - o->stored_ms : 0);
        if (age >= o->lifetime_ms) {
            unlink_obj(c, o, &dead);
            CNT(c, expired);
        } else if ((cc.max_age >= 0 && age / 1000 > (uint64_t)cc.max_age) ||
                   (cc.min_fresh >= 0 && o->lifetime_ms - age < (uint64_t)cc.min_fresh * 1000)) {
            rc = PX_CACHE_REFRESH;
        } else {
            atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
            /* At most tick - o->tick objects are ahead of o: one already in
             * the most recent quarter stays where it is, which keeps hot
             * objects from rewriting the list on every hit. */
            if (c->tick - o->tick > c->n / 4) {
                lru_unlink(o);
                lru_push(c, o);
            }
            *hit = o;
            rc = PX_CACHE_HIT;
        }
    }
    pthread_mutex_unlock(&c->lock);
    release_dead(dead);
    if (rc == PX_CACHE_HIT)
        CNT(c, hits);
    else if (rc == PX_CACHE_REFRESH)
        CNT(c, refreshes);
    else
        CNT(c, misses);
    return rc;
}

/* ---- conditional requests ----------------------------------------------- */

/* The opaque-tag (quotes included) of an entity-tag at v[*i..n), W/ skipped;
 * advances *i past it.  false when there is none there. */
static bool etag_at(const char *v, size_t n, size_t *i, size_t *s, size_t *len)
{
    size_t k = *i;

    if (n - k >= 2 && v[k] == 'W' && v[k + 1] == '/')
        k += 2;
    if (k >= n || v[k] != '"')
        return false;
    *s = k++;
    while (k < n && v[k] != '"')
        k++;
    if (k >= n)
        return false;
    *len = k + 1 - *s;
    *i = k + 1;
    return true;
}

bool px_cache_not_modified(const struct px_cache_obj *o, const char *req_buf,
                           const struct xlb_h1_head *req)
{
    int f = xlb_h1_find(req, req_buf, "if-none-match", 0);
    int64_t ims;

    if (f >= 0) {
        for (; f >= 0; f = xlb_h1_find(req, req_buf, "if-none-match", (uint32_t)f + 1)) {
            size_t n, i = 0, s, len;
            const char *v = fval(req_buf, req, f, &n);
            while (i < n) {
                while (i < n && (ows(v[i]) || v[i] == ','))
                    i++;
                if (i >= n)
                    break;
                if (v[i] == '*')
                    return true;
                if (etag_at(v, n, &i, &s, &len)) {
                    if (o->etag_len && len == o->etag_len &&
                        memcmp(v + s, o->blob + o->etag_off, len) == 0)
                        return true;
                } else {
                    while (i < n && v[i] != ',')
                        i++;
                }
            }
        }
        return false;
    }
    f = xlb_h1_find(req, req_buf, "if-modified-since", 0);
    if (f < 0 || xlb_h1_find(req, req_buf, "if-modified-since", (uint32_t)f + 1) >= 0)
        return false;           /* absent, or more than one: invalid, ignored */
    if (!date_field(req_buf, req, "if-modified-since", &ims))
        return false;
    return o->validator_s <= ims;
}

/* ---- serving ------------------------------------------------------------ */

/* v in decimal, ending at end + 20; returns where it starts. */
static char *u64_dec(uint64_t v, char end[21])
{
    char *p = end + 20;

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

int px_cache_write_head(const struct px_cache_obj *o, uint64_t now_ms, struct xlb_buf *out,
                        bool not_modified)
{
    uint64_t age = (o->initial_age_ms + (now_ms > o->stored_ms ? now_ms - o->stored_ms : 0)) / 1000;
    const char *h = o->blob + (not_modified ? o->h304_off : o->head_off);
    size_t hl = not_modified ? o->h304_len : o->head_len;
    char a[21], l[21], *ad = u64_dec(age, a), *ld = u64_dec(o->body_len, l);
    size_t an = (size_t)(a + 20 - ad), ln = (size_t)(l + 20 - ld);
    bool with_len = !not_modified && o->status != 204;
    char *p;
    int err;

    if ((err = xlb_buf_reserve(out, hl + 7 + an + 2 + (with_len ? 16 + ln + 2 : 0) + 2)))
        return err;
    p = out->data + out->len;
    memcpy(p, h, hl);
    p += hl;
    memcpy(p, "Age: ", 5);
    memcpy(p + 5, ad, an);
    memcpy(p + 5 + an, "\r\n", 2);
    p += 7 + an;
    if (with_len) {
        memcpy(p, "Content-Length: ", 16);
        memcpy(p + 16, ld, ln);
        memcpy(p + 16 + ln, "\r\n", 2);
        p += 18 + ln;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

void px_cache_body(const struct px_cache_obj *o, const char **ptr, size_t *len)
{
    *ptr = o->body;
    *len = o->body_len;
}

int px_cache_status(const struct px_cache_obj *o)
{
    return o->status;
}

/* ---- storing ------------------------------------------------------------ */

static bool status_cacheable(int s)
{
    switch (s) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

/* Fields never stored: hop-by-hop ones, and those written per hit. */
static bool field_dropped(const char *buf, const struct xlb_h1_head *resp, uint32_t i)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "age", "content-length",
    };
    struct xlb_h1_str nm = resp->fields[i].name;
    char tok[64];

    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (xlb_h1_str_eq(buf, nm, names[k]))
            return true;
    if (nm.len >= sizeof(tok))
        return false;
    memcpy(tok, buf + nm.off, nm.len);
    tok[nm.len] = '\0';
    for (int f = xlb_h1_find(resp, buf, "connection", 0); f >= 0;
         f = xlb_h1_find(resp, buf, "connection", (uint32_t)f + 1)) {
        size_t n;
        const char *v = fval(buf, resp, f, &n);
        if (xlb_h1_list_has(v, n, tok))
            return true;
    }
    return false;
}

static bool field_kept_304(const char *buf, struct xlb_h1_str nm)
{
    static const char *const names[] = {
        "cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary",
    };

    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (xlb_h1_str_eq(buf, nm, names[k]))
            return true;
    return false;
}

/* A writer that counts (p NULL) or copies. */
struct wr {
    char *p;
    size_t n;
};

static void put(struct wr *w, const void *s, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void put_lower(struct wr *w, const char *s, size_t n)
{
    if (w->p)
        for (size_t i = 0; i < n; i++)
            w->p[w->n + i] = lower(s[i]);
    w->n += n;
}

static void put_field(struct wr *w, const char *buf, const struct xlb_h1_field *f)
{
    put(w, buf + f->name.off, f->name.len);
    put(w, ": ", 2);
    put(w, buf + f->value.off, f->value.len);
    put(w, "\r\n", 2);
}

/* What fill_begin found out, to lay the object out with. */
struct plan {
    struct url u;
    const char *variant;
    int n_vary;
    struct xlb_h1_str vary[MAX_VARY];   /* names, in the response buffer */
    char date[64];              /* a Date to add; "" when the response has one */
    int etag_field;             /* -1: none */
    size_t etag_s, etag_len;    /* in that field's value */
    uint64_t body_in_blob;      /* Content-Length stored inline, or 0 */
};

/*
 * Lay the object's blob out (w->p NULL: only measure).  Offsets are set in
 * o when copying.  The same plan gives the same size both times.
 */
static void layout(struct wr *w, struct px_cache_obj *o, const struct plan *pl,
                   const char *req_buf, const struct xlb_h1_head *req, const char *resp_buf,
                   const struct xlb_h1_head *resp)
{
    struct vary_ent ve[MAX_VARY];
    char sl[48];
    int sn;
    size_t at;

    put_lower(w, pl->u.host, pl->u.host_len);
    put(w, "", 1);
    put(w, pl->u.target, pl->u.target_len);
    put(w, "", 1);
    at = w->n;
    put(w, pl->variant, strlen(pl->variant) + 1);
    if (w->p)
        o->variant_off = (uint32_t)at;
    /* Vary: the entries (aligned), then names and values. */
    w->n = (w->n + 7) & ~(size_t)7;
    size_t vary_at = w->n;
    w->n += sizeof(struct vary_ent) * (size_t)pl->n_vary;
    for (int i = 0; i < pl->n_vary; i++) {
        ve[i].name_off = (uint32_t)w->n;
        ve[i].name_len = pl->vary[i].len;
        put_lower(w, resp_buf + pl->vary[i].off, pl->vary[i].len);
        put(w, "", 1);
        ve[i].val_off = (uint32_t)w->n;
        ve[i].val_len = VARY_ABSENT;
        size_t start = w->n;
        bool any = false;
        char name[64];
        memcpy(name, resp_buf + pl->vary[i].off, pl->vary[i].len);
        name[pl->vary[i].len] = '\0';
        for (int f = xlb_h1_find(req, req_buf, name, 0); f >= 0;
             f = xlb_h1_find(req, req_buf, name, (uint32_t)f + 1)) {
            size_t n;
            const char *v = fval(req_buf, req, f, &n);
            if (any)
                put(w, ", ", 2);
            put(w, v, n);
            any = true;
        }
        if (any)
            ve[i].val_len = (uint32_t)(w->n - start);
    }
    if (w->p) {
        o->n_vary = (uint32_t)pl->n_vary;
        o->vary_off = (uint32_t)vary_at;
        memcpy(w->p + vary_at, ve, sizeof(struct vary_ent) * (size_t)pl->n_vary);
    }
    /* The 200 head. */
    at = w->n;
    sn = snprintf(sl, sizeof(sl), "HTTP/1.1 %03d ", resp->status);
    put(w, sl, (size_t)sn);
    put(w, resp_buf + resp->reason.off, resp->reason.len);
    put(w, "\r\n", 2);
    for (uint32_t i = 0; i < resp->n_fields; i++)
        if (!field_dropped(resp_buf, resp, i))
            put_field(w, resp_buf, &resp->fields[i]);
    if (pl->date[0]) {
        put(w, "Date: ", 6);
        put(w, pl->date, strlen(pl->date));
        put(w, "\r\n", 2);
    }
    if (w->p) {
        o->head_off = (uint32_t)at;
        o->head_len = (uint32_t)(w->n - at);
    }
    /* The 304 head. */
    at = w->n;
    put(w, "HTTP/1.1 304 Not Modified\r\n", 27);
    for (uint32_t i = 0; i < resp->n_fields; i++)
        if (field_kept_304(resp_buf, resp->fields[i].name) && !field_dropped(resp_buf, resp, i))
            put_field(w, resp_buf, &resp->fields[i]);
    if (pl->date[0]) {
        put(w, "Date: ", 6);
        put(w, pl->date, strlen(pl->date));
        put(w, "\r\n", 2);
    }
    if (w->p) {
        o->h304_off = (uint32_t)at;
        o->h304_len = (uint32_t)(w->n - at);
    }
    at = w->n;
    if (pl->etag_field >= 0) {
        size_t n;
        const char *v = fval(resp_buf, resp, pl->etag_field, &n);
        put(w, v + pl->etag_s, pl->etag_len);
        if (w->p) {
            o->etag_off = (uint32_t)at;
            o->etag_len = (uint32_t)pl->etag_len;
        }
    }
    /* The body, when its length is known. */
    w->n = (w->n + 7) & ~(size_t)7;
    if (w->p && pl->body_in_blob)
        o->body = w->p + w->n;
    w->n += pl->body_in_blob;
}

struct px_cache_fill *px_cache_fill_begin(struct px_cache *c, const char *req_buf,
                                          const struct xlb_h1_head *req, const char *variant,
                                          const char *resp_buf, const struct xlb_h1_head *resp,
                                          uint64_t now_ms)
{
    struct plan pl;
    struct cc rcc, qcc;
    int64_t now_s = wall_s(c, now_ms), date_s, exp_s, lifetime, age = 0, apparent = 0;
    bool has_date;
    struct px_cache_obj *o;
    struct wr w = { 0 };
    int f;

    if (!variant)
        variant = "";
    memset(&pl, 0, sizeof(pl));
    pl.variant = variant;
    pl.etag_field = -1;
    if (!method_is(req_buf, req, "GET") ||
        req_cacheable(c, req_buf, req, variant, &pl.u) < 0 || !status_cacheable(resp->status) ||
        resp->framing == XLB_H1_BODY_EOF ||
        (resp->framing == XLB_H1_BODY_LENGTH && resp->content_length > c->cfg.max_object) ||
        has_field(resp_buf, resp, "set-cookie"))
        goto refuse;
    cc_parse(req_buf, req, &qcc);
    cc_parse(resp_buf, resp, &rcc);
    if (qcc.no_store || rcc.no_store || rcc.no_cache || rcc.priv)
        goto refuse;
    if (has_field(req_buf, req, "authorization") &&
        !(rcc.pub || rcc.s_maxage >= 0 || rcc.must_revalidate))
        goto refuse;
    for (f = xlb_h1_find(resp, resp_buf, "vary", 0); f >= 0;
         f = xlb_h1_find(resp, resp_buf, "vary", (uint32_t)f + 1)) {
        size_t n, i = 0;
        const char *v = fval(resp_buf, resp, f, &n);
        while (i < n) {
            size_t s, e;
            while (i < n && (ows(v[i]) || v[i] == ','))
                i++;
            s = i;
            while (i < n && v[i] != ',' && !ows(v[i]))
                i++;
            e = i;
            while (i < n && v[i] != ',')
                i++;
            if (e == s)
                continue;
            if ((e - s == 1 && v[s] == '*') || pl.n_vary == MAX_VARY || e - s >= 64)
                goto refuse;
            pl.vary[pl.n_vary].off = (uint32_t)(v + s - resp_buf);
            pl.vary[pl.n_vary].len = (uint32_t)(e - s);
            pl.n_vary++;
        }
    }
    /* Freshness lifetime (4.2.1) and the corrected initial age (4.2.3). */
    has_date = date_field(resp_buf, resp, "date", &date_s);
    if (rcc.s_maxage >= 0) {
        lifetime = rcc.s_maxage;
    } else if (rcc.max_age >= 0) {
        lifetime = rcc.max_age;
    } else if (has_field(resp_buf, resp, "expires")) {
        if (!date_field(resp_buf, resp, "expires", &exp_s))
            goto refuse;        /* invalid: already expired */
        lifetime = exp_s - (has_date ? date_s : now_s);
    } else {
        goto refuse;            /* no heuristic freshness */
    }
    if ((f = xlb_h1_find(resp, resp_buf, "age", 0)) >= 0) {
        size_t n;
        const char *v = fval(resp_buf, resp, f, &n);
        age = delta_seconds(v, n);
        if (age < 0)
            age = 0;
    }
    if (has_date && now_s > date_s)
        apparent = now_s - date_s;
    if (apparent > age)
        age = apparent;
    if (lifetime <= age)
        goto refuse;
    if (!has_date)
        fmt_date(now_s, pl.date);
    if ((f = xlb_h1_find(resp, resp_buf, "etag", 0)) >= 0) {
        size_t n, i = 0;
        const char *v = fval(resp_buf, resp, f, &n);
        if (etag_at(v, n, &i, &pl.etag_s, &pl.etag_len) && i == n)
            pl.etag_field = f;
    }
    if (resp->framing == XLB_H1_BODY_LENGTH)
        pl.body_in_blob = resp->content_length;

    layout(&w, NULL, &pl, req_buf, req, resp_buf, resp);
    if (w.n > UINT32_MAX)
        goto refuse;
    o = malloc(sizeof(*o) + w.n);
    if (!o) {
        CNT(c, uncacheable);
        return NULL;
    }
    memset(o, 0, sizeof(*o));
    w.p = o->blob;
    w.n = 0;
    layout(&w, o, &pl, req_buf, req, resp_buf, resp);
    atomic_init(&o->refs, 1);
    o->hash = url_hash(c, pl.u.host, pl.u.host_len, pl.u.target, pl.u.target_len);
    o->host_len = (uint32_t)pl.u.host_len;
    o->target_len = (uint32_t)pl.u.target_len;
    o->status = resp->status;
    o->stored_ms = now_ms;
    o->initial_age_ms = (uint64_t)age * 1000;
    o->lifetime_ms = (uint64_t)lifetime * 1000;
    if (!date_field(resp_buf, resp, "last-modified", &o->validator_s))
        o->validator_s = has_date ? date_s : now_s;
    o->size = sizeof(*o) + w.n;
    o->fill.c = c;
    o->fill.epoch = atomic_load_explicit(&c->epoch, memory_order_acquire);
    o->fill.expect = resp->framing == XLB_H1_BODY_LENGTH ? resp->content_length
                     : resp->framing == XLB_H1_BODY_NONE ? 0 : UINT64_MAX;
    return &o->fill;
refuse:
    CNT(c, uncacheable);
    return NULL;
}

static struct px_cache_obj *fill_obj(struct px_cache_fill *f)
{
    return (struct px_cache_obj *)((char *)f - offsetof(struct px_cache_obj, fill));
}

int px_cache_fill_add(struct px_cache_fill *f, const char *p, size_t n)
{
    struct px_cache_obj *o;
    uint64_t max;

    if (!f)
        return -EINVAL;
    if (f->err)
        return f->err;
    o = fill_obj(f);
    max = f->c->cfg.max_object < f->expect ? f->c->cfg.max_object : f->expect;
    if (n > max - o->body_len) {
        f->err = -EFBIG;
        return f->err;
    }
    if (f->expect == UINT64_MAX && o->body_len + n > f->cap) {
        size_t cap = f->cap ? f->cap : GROW_FIRST;
        char *b;
        while (cap < o->body_len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        b = realloc(o->body, cap);
        if (!b) {
            f->err = -ENOMEM;
            return f->err;
        }
        o->body = b;
        o->body_owned = true;
        f->cap = cap;
    }
    if (n)
        memcpy(o->body + o->body_len, p, n);
    o->body_len += n;
    return 0;
}

void px_cache_fill_end(struct px_cache_fill *f, bool complete)
{
    struct px_cache_obj *o, *x, *next, *dead = NULL, *oldest = NULL;
    struct px_cache *c;
    unsigned same_url = 0;

    if (!f)
        return;
    o = fill_obj(f);
    c = f->c;
    if (!complete || f->err || (f->expect != UINT64_MAX && o->body_len != f->expect))
        goto drop;
    if (o->body_owned && f->cap > o->body_len + GROW_FIRST) {
        char *b = realloc(o->body, o->body_len ? o->body_len : 1);
        if (b) {
            o->body = b;
            f->cap = o->body_len;
        }
    }
    if (o->body_owned)
        o->size += f->cap;
    if (o->size > c->cfg.max_size)
        goto drop;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->epoch, memory_order_relaxed) != f->epoch) {
        pthread_mutex_unlock(&c->lock);
        goto drop;
    }
    for (x = c->buckets[o->hash & c->mask]; x; x = next) {
        next = x->hnext;
        if (!obj_url_eq(x, o->hash, o->blob, o->host_len, o->blob + o->host_len + 1,
                        o->target_len))
            continue;
        if (same_variant(x, o)) {
            unlink_obj(c, x, &dead);
            atomic_fetch_add_explicit(&c->replaced, 1, memory_order_relaxed);
        } else {
            same_url++;
            oldest = x;
        }
    }
    if (same_url >= PX_CACHE_MAX_VARIANTS && oldest) {
        unlink_obj(c, oldest, &dead);
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    }
    bucket_push(&c->buckets[o->hash & c->mask], o);
    lru_push(c, o);
    c->n++;
    c->bytes += o->size;
    atomic_fetch_add_explicit(&c->objects, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->nbytes, o->size, memory_order_relaxed);
    while (c->bytes > c->cfg.max_size && c->lru.lprev != o) {
        unlink_obj(c, c->lru.lprev, &dead);
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
    }
    maybe_grow(c);
    pthread_mutex_unlock(&c->lock);
    release_dead(dead);
    CNT(c, stores);
    return;
drop:
    CNT(c, drops);
    px_cache_release(o);
}

/* ---- invalidation ------------------------------------------------------- */

/* Remove every object of one URL; returns how many. */
static size_t purge_url(struct px_cache *c, const char *host, size_t hl, const char *t,
                        size_t tl)
{
    uint64_t h = url_hash(c, host, hl, t, tl);
    struct px_cache_obj *o, *next, *dead = NULL;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    atomic_fetch_add_explicit(&c->epoch, 1, memory_order_release);
    for (o = c->buckets[h & c->mask]; o; o = next) {
        next = o->hnext;
        if (obj_url_eq(o, h, host, hl, t, tl)) {
            unlink_obj(c, o, &dead);
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    release_dead(dead);
    atomic_fetch_add_explicit(&c->purged, n, memory_order_relaxed);
    return n;
}

size_t px_cache_flush(struct px_cache *c)
{
    struct px_cache_obj *dead = NULL;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    atomic_fetch_add_explicit(&c->epoch, 1, memory_order_release);
    while (c->lru.lnext != &c->lru) {
        unlink_obj(c, c->lru.lnext, &dead);
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    release_dead(dead);
    atomic_fetch_add_explicit(&c->purged, n, memory_order_relaxed);
    return n;
}

/* Every object whose target is t, whatever its host (a walk of all). */
static size_t purge_target(struct px_cache *c, const char *t, size_t tl)
{
    struct px_cache_obj *o, *next, *dead = NULL;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    atomic_fetch_add_explicit(&c->epoch, 1, memory_order_release);
    for (o = c->lru.lnext; o != &c->lru; o = next) {
        next = o->lnext;
        if (o->target_len == tl && !memcmp(o->blob + o->host_len + 1, t, tl)) {
            unlink_obj(c, o, &dead);
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    release_dead(dead);
    atomic_fetch_add_explicit(&c->purged, n, memory_order_relaxed);
    return n;
}

size_t px_cache_purge(struct px_cache *c, const char *host, const char *path_and_query)
{
    if (!host)
        return purge_target(c, path_and_query, strlen(path_and_query));
    return purge_url(c, host, strlen(host), path_and_query, strlen(path_and_query));
}

size_t px_cache_invalidate_uri(struct px_cache *c, const char *req_buf,
                               const struct xlb_h1_head *req)
{
    struct url u;

    if (req_url(req_buf, req, &u) < 0)
        return 0;
    return purge_url(c, u.host, u.host_len, u.target, u.target_len);
}

void px_cache_get_stats(const struct px_cache *c, struct px_cache_stats *st)
{
#define LD(f) atomic_load_explicit(&((struct px_cache *)c)->f, memory_order_relaxed)
    st->hits = LD(hits);
    st->misses = LD(misses);
    st->bypasses = LD(bypasses);
    st->refreshes = LD(refreshes);
    st->stores = LD(stores);
    st->uncacheable = LD(uncacheable);
    st->drops = LD(drops);
    st->evictions = LD(evictions);
    st->expired = LD(expired);
    st->purged = LD(purged);
    st->replaced = LD(replaced);
    st->objects = LD(objects);
    st->bytes = LD(nbytes);
#undef LD
}
