// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb-proxy's HTTP cache (proxy/cache.c): what is stored and what is not
 * (methods, statuses, freshness sources, directives, Authorization, Vary,
 * size limits), lookups (HIT / MISS / BYPASS / REFRESH, HEAD from GET,
 * variants, queries), conditional requests and 304 heads, Age, LRU
 * eviction under max_size, references that outlive eviction and flush,
 * purge / flush / unsafe-method invalidation, and threads sharing a cache.
 *
 * Heads are literal HTTP text (written with \n, sent as CRLF) parsed by the
 * real parser; time is passed in: T0 on the now_ms clock is DATE0 on the
 * wall clock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "px.h"

#define T0 1000000ull
#define DATE0 "Sun, 06 Nov 1994 08:49:37 GMT"
#define DATE0_S 784111777ll
#define MAXF 64

struct msg {
    struct xlb_h1_parser p;
    struct xlb_h1_field f[MAXF];
    char buf[4096];
    size_t len;
};

/* Parse text (\n line ends become CRLF; a final empty line is added). */
static const struct xlb_h1_head *parse(struct msg *m, enum xlb_h1_kind kind, const char *text,
                                       bool head_req)
{
    m->len = 0;
    for (const char *s = text; *s; s++) {
        if (*s == '\n')
            m->buf[m->len++] = '\r';
        m->buf[m->len++] = *s;
    }
    memcpy(m->buf + m->len, "\r\n", 2);
    m->len += 2;
    cr_assert_lt(m->len, sizeof(m->buf));
    xlb_h1_init(&m->p, kind, NULL, m->f, MAXF);
    if (head_req)
        xlb_h1_set_head_request(&m->p, true);
    int rc = xlb_h1_head(&m->p, m->buf, m->len);
    cr_assert_eq(rc, XLB_H1_OK, "parse failed (%s): %s", xlb_h1_error_name(m->p.error), text);
    return &m->p.head;
}

static struct px_cache *mk(uint64_t max_size, uint64_t max_object, bool query)
{
    struct xlb_cfg_cache cfg = {
        .enabled = true, .max_size = max_size, .max_object = max_object, .cache_query = query,
    };
    struct px_cache *c = px_cache_new(&cfg);

    cr_assert_not_null(c);
    px_cache_set_wall_offset(c, DATE0_S * 1000 - (int64_t)T0);
    return c;
}

/* Begin a fill; NULL when not storable. */
static struct px_cache_fill *begin(struct px_cache *c, const char *req, const char *variant,
                                   const char *resp, uint64_t now)
{
    struct msg q, r;
    const struct xlb_h1_head *qh = parse(&q, XLB_H1_REQUEST, req, false);
    const struct xlb_h1_head *rh = parse(&r, XLB_H1_RESPONSE, resp, false);

    return px_cache_fill_begin(c, q.buf, qh, variant, r.buf, rh, now);
}

/* Store resp (with body) for req; whether it was accepted and committed. */
static bool store(struct px_cache *c, const char *req, const char *variant, const char *resp,
                  const char *body, uint64_t now)
{
    struct px_cache_stats a, b;
    struct px_cache_fill *f = begin(c, req, variant, resp, now);

    if (!f)
        return false;
    px_cache_get_stats(c, &a);
    if (body && *body)
        cr_assert_eq(px_cache_fill_add(f, body, strlen(body)), 0);
    px_cache_fill_end(f, true);
    px_cache_get_stats(c, &b);
    return b.stores == a.stores + 1;
}

static int lookup(struct px_cache *c, const char *req, const char *variant, uint64_t now,
                  struct px_cache_obj **o)
{
    struct msg q;
    const struct xlb_h1_head *qh = parse(&q, XLB_H1_REQUEST, req, false);

    return px_cache_lookup(c, q.buf, qh, variant, now, o);
}

/* Lookup that must hit; returns the object (release it). */
static struct px_cache_obj *hit(struct px_cache *c, const char *req, const char *variant,
                                uint64_t now)
{
    struct px_cache_obj *o = NULL;
    int rc = lookup(c, req, variant, now, &o);

    cr_assert_eq(rc, PX_CACHE_HIT, "expected HIT, got %d for %s", rc, req);
    cr_assert_not_null(o);
    return o;
}

static int rc_of(struct px_cache *c, const char *req, const char *variant, uint64_t now)
{
    struct px_cache_obj *o = NULL;
    int rc = lookup(c, req, variant, now, &o);

    if (rc == PX_CACHE_HIT) {
        cr_assert_not_null(o);
        px_cache_release(o);
    } else {
        cr_assert_null(o);
    }
    return rc;
}

static bool body_is(const struct px_cache_obj *o, const char *want)
{
    const char *p;
    size_t n;

    px_cache_body(o, &p, &n);
    return n == strlen(want) && (n == 0 || memcmp(p, want, n) == 0);
}

/* The head written for o at now (static buffer). */
static const char *head_at(const struct px_cache_obj *o, uint64_t now, bool nm)
{
    static char text[4096];
    struct xlb_buf b = { 0 };

    cr_assert_eq(px_cache_write_head(o, now, &b, nm), 0);
    cr_assert_lt(b.len, sizeof(text));
    memcpy(text, b.data, b.len);
    text[b.len] = '\0';
    xlb_buf_free(&b);
    return text;
}

static bool not_modified(const struct px_cache_obj *o, const char *req)
{
    struct msg q;
    const struct xlb_h1_head *qh = parse(&q, XLB_H1_REQUEST, req, false);

    return px_cache_not_modified(o, q.buf, qh);
}

static struct px_cache_stats stats(struct px_cache *c)
{
    struct px_cache_stats s;

    px_cache_get_stats(c, &s);
    return s;
}

#define GET_A "GET /a HTTP/1.1\nHost: www.example.com\n"
#define OK60 "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=60\nContent-Length: 5\n"

/* ---- storing and hitting ------------------------------------------------ */

Test(px_cache_store, store_and_hit)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert(store(c, GET_A, "", OK60 "Content-Type: text/plain\n", "hello", T0));
    o = hit(c, GET_A, "", T0 + 1000);
    cr_assert(body_is(o, "hello"));
    cr_assert_eq(px_cache_status(o), 200);
    cr_assert_str_eq(head_at(o, T0 + 1000, false),
                     "HTTP/1.1 200 OK\r\nDate: " DATE0 "\r\nCache-Control: max-age=60\r\n"
                     "Content-Type: text/plain\r\nAge: 1\r\nContent-Length: 5\r\n\r\n");
    px_cache_release(o);
    /* Host is case-insensitive, the path is not. */
    px_cache_release(hit(c, "GET /a HTTP/1.1\nHost: WWW.Example.COM\n", "", T0));
    cr_assert_eq(rc_of(c, "GET /A HTTP/1.1\nHost: www.example.com\n", "", T0), PX_CACHE_MISS);
    /* The port is part of the key. */
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com:8080\n", "", T0),
                 PX_CACHE_MISS);
    /* The absolute form names the same resource. */
    px_cache_release(hit(c, "GET http://www.example.com/a HTTP/1.1\nHost: x\n", "", T0));
    struct px_cache_stats s = stats(c);
    cr_assert_eq(s.hits, 3);
    cr_assert_eq(s.misses, 3);
    cr_assert_eq(s.stores, 1);
    cr_assert_eq(s.objects, 1);
    cr_assert_gt(s.bytes, 5);
    px_cache_free(c);
}

Test(px_cache_store, hop_by_hop_removed_and_date_added)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;
    struct px_cache_fill *f;

    f = begin(c, GET_A, "",
              "HTTP/1.1 200 OK\nCache-Control: max-age=60\nConnection: keep-alive, X-Hop\n"
              "Keep-Alive: timeout=5\nX-Hop: 1\nX-End: 2\nTransfer-Encoding: chunked\n"
              "Proxy-Connection: x\nTrailer: X-T\nUpgrade: foo\nAge: 0\n", T0);
    cr_assert_not_null(f);
    cr_assert_eq(px_cache_fill_add(f, "abc", 3), 0);
    cr_assert_eq(px_cache_fill_add(f, "de", 2), 0);
    px_cache_fill_end(f, true);
    o = hit(c, GET_A, "", T0);
    cr_assert(body_is(o, "abcde"));
    cr_assert_str_eq(head_at(o, T0, false),
                     "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-End: 2\r\n"
                     "Date: " DATE0 "\r\nAge: 0\r\nContent-Length: 5\r\n\r\n");
    px_cache_release(o);
    px_cache_free(c);
}

Test(px_cache_store, head_served_from_get_entry)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;
    struct msg q, r;

    /* A response to HEAD is not stored. */
    const struct xlb_h1_head *qh = parse(&q, XLB_H1_REQUEST,
                                         "HEAD /a HTTP/1.1\nHost: www.example.com\n", false);
    const struct xlb_h1_head *rh = parse(&r, XLB_H1_RESPONSE, OK60, true);
    cr_assert_null(px_cache_fill_begin(c, q.buf, qh, "", r.buf, rh, T0));
    cr_assert_eq(rc_of(c, "HEAD /a HTTP/1.1\nHost: www.example.com\n", "", T0), PX_CACHE_MISS);
    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    o = hit(c, "HEAD /a HTTP/1.1\nHost: www.example.com\n", "", T0);
    cr_assert_not_null(strstr(head_at(o, T0, false), "Content-Length: 5\r\n"));
    px_cache_release(o);
    px_cache_free(c);
}

Test(px_cache_store, only_get_and_head)
{
    static const char *const reqs[] = {
        "POST /a HTTP/1.1\nHost: www.example.com\nContent-Length: 0\n",
        "PUT /a HTTP/1.1\nHost: www.example.com\nContent-Length: 0\n",
        "DELETE /a HTTP/1.1\nHost: www.example.com\n",
        "OPTIONS /a HTTP/1.1\nHost: www.example.com\n",
        "get /a HTTP/1.1\nHost: www.example.com\n",
        "OPTIONS * HTTP/1.1\nHost: www.example.com\n",
    };
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        cr_assert_eq(rc_of(c, reqs[i], "", T0), PX_CACHE_BYPASS, "%s", reqs[i]);
        cr_assert_null(begin(c, reqs[i], "", OK60, T0), "%s", reqs[i]);
    }
    cr_assert_eq(stats(c).bypasses, 6);
    cr_assert_eq(stats(c).objects, 1);
    px_cache_free(c);
}

Test(px_cache_store, cacheable_statuses)
{
    static const int yes[] = { 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 };
    static const int no[] = { 201, 202, 206, 302, 303, 307, 400, 403, 500, 502, 503 };
    struct px_cache *c = mk(0, 0, false);
    char req[128], resp[256];

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(req, sizeof(req), "GET /s%d HTTP/1.1\nHost: h\n", yes[i]);
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 %d X\nDate: " DATE0 "\nCache-Control: max-age=60\n%s",
                 yes[i], yes[i] == 204 ? "" : "Content-Length: 2\n");
        cr_assert(store(c, req, "", resp, yes[i] == 204 ? "" : "xy", T0), "%d", yes[i]);
        struct px_cache_obj *o = hit(c, req, "", T0);
        cr_assert_eq(px_cache_status(o), yes[i]);
        if (yes[i] == 204)
            cr_assert_null(strstr(head_at(o, T0, false), "Content-Length"));
        px_cache_release(o);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        snprintf(req, sizeof(req), "GET /n%d HTTP/1.1\nHost: h\n", no[i]);
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 %d X\nDate: " DATE0 "\nCache-Control: max-age=60, public\n"
                 "Content-Length: 2\n%s", no[i],
                 no[i] == 206 ? "Content-Range: bytes 0-1/9\n" : "");
        cr_assert_null(begin(c, req, "", resp, T0), "%d", no[i]);
    }
    cr_assert_eq(stats(c).objects, sizeof(yes) / sizeof(yes[0]));
    px_cache_free(c);
}

/* ---- freshness ---------------------------------------------------------- */

Test(px_cache_fresh, s_maxage_over_max_age_over_expires)
{
    struct px_cache *c = mk(0, 0, false);

    /* s-maxage=10 wins over max-age=100 and Expires. */
    cr_assert(store(c, "GET /1 HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=100, s-maxage=10\n"
                    "Expires: Sun, 06 Nov 1994 09:49:37 GMT\nContent-Length: 1\n", "x", T0));
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0 + 9999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0 + 10000), PX_CACHE_MISS);
    /* max-age=20 wins over Expires (Date + 1 h). */
    cr_assert(store(c, "GET /2 HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=20\n"
                    "Expires: Sun, 06 Nov 1994 09:49:37 GMT\nContent-Length: 1\n", "x", T0));
    cr_assert_eq(rc_of(c, "GET /2 HTTP/1.1\nHost: h\n", "", T0 + 19999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /2 HTTP/1.1\nHost: h\n", "", T0 + 20000), PX_CACHE_MISS);
    /* Expires - Date = 30 s (obsolete date forms accepted). */
    cr_assert(store(c, "GET /3 HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nDate: Sunday, 06-Nov-94 08:49:37 GMT\n"
                    "Expires: Sun Nov  6 08:50:07 1994\nContent-Length: 1\n", "x", T0));
    cr_assert_eq(rc_of(c, "GET /3 HTTP/1.1\nHost: h\n", "", T0 + 29999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /3 HTTP/1.1\nHost: h\n", "", T0 + 30000), PX_CACHE_MISS);
    /* Without Date: Expires - the time received (DATE0 at T0 + 5 s). */
    cr_assert(store(c, "GET /4 HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nExpires: Sun, 06 Nov 1994 08:50:07 GMT\nContent-Length: 1\n",
                    "x", T0 + 5000));
    cr_assert_eq(rc_of(c, "GET /4 HTTP/1.1\nHost: h\n", "", T0 + 29999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /4 HTTP/1.1\nHost: h\n", "", T0 + 30000), PX_CACHE_MISS);
    /* An invalid or past Expires is stale at once: not stored. */
    cr_assert_null(begin(c, "GET /5 HTTP/1.1\nHost: h\n", "",
                         "HTTP/1.1 200 OK\nDate: " DATE0 "\nExpires: 0\nContent-Length: 1\n", T0));
    cr_assert_null(begin(c, "GET /5 HTTP/1.1\nHost: h\n", "",
                         "HTTP/1.1 200 OK\nDate: " DATE0 "\nExpires: " DATE0 "\nContent-Length: 1\n",
                         T0));
    /* max-age=0, or an invalid max-age: stale. */
    cr_assert_null(begin(c, "GET /6 HTTP/1.1\nHost: h\n", "",
                         "HTTP/1.1 200 OK\nCache-Control: max-age=0\nContent-Length: 1\n", T0));
    cr_assert_null(begin(c, "GET /6 HTTP/1.1\nHost: h\n", "",
                         "HTTP/1.1 200 OK\nCache-Control: max-age=abc\nContent-Length: 1\n", T0));
    cr_assert_eq(stats(c).expired, 4);
    cr_assert_eq(stats(c).objects, 0);
    px_cache_free(c);
}

Test(px_cache_fresh, expiry_at_the_boundary)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, GET_A, "",
                    "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=5\nContent-Length: 1\n",
                    "x", T0));
    cr_assert_eq(rc_of(c, GET_A, "", T0 + 4999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, GET_A, "", T0 + 5000), PX_CACHE_MISS);
    /* The stale object was removed. */
    cr_assert_eq(stats(c).objects, 0);
    cr_assert_eq(stats(c).bytes, 0);
    cr_assert_eq(stats(c).expired, 1);
    cr_assert_eq(rc_of(c, GET_A, "", T0 + 1000), PX_CACHE_MISS);
    px_cache_free(c);
}

Test(px_cache_fresh, no_explicit_freshness_not_stored)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert_null(begin(c, GET_A, "",
                         "HTTP/1.1 200 OK\nDate: " DATE0 "\nLast-Modified: Sat, 01 Jan 1994 00:00:00 GMT\n"
                         "Content-Length: 1\n", T0));
    cr_assert_null(begin(c, GET_A, "",
                         "HTTP/1.1 200 OK\nCache-Control: public\nContent-Length: 1\n",
                         T0));
    cr_assert_eq(stats(c).uncacheable, 2);
    px_cache_free(c);
}

/* ---- what is never stored ----------------------------------------------- */

Test(px_cache_rules, directives_and_set_cookie)
{
    static const char *const resps[] = {
        "HTTP/1.1 200 OK\nCache-Control: max-age=60, no-store\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: private, max-age=60\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: max-age=60\nCache-Control: private=\"X-A, X-B\"\n"
        "Content-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: no-cache, max-age=60\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: no-cache=\"Set-Cookie\", max-age=60\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: max-age=60\nSet-Cookie: a=b\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: max-age=60\nVary: *\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: max-age=60\nVary: Accept, *\nContent-Length: 1\n",
        "HTTP/1.1 200 OK\nCache-Control: max-age=60\nConnection: close\n",     /* EOF body */
    };
    struct px_cache *c = mk(0, 0, false);

    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++)
        cr_assert_null(begin(c, GET_A, "", resps[i], T0), "%s", resps[i]);
    /* A quoted comma does not end the directive: max-age after it counts. */
    cr_assert(store(c, GET_A, "",
                    "HTTP/1.1 200 OK\nCache-Control: ext=\"a, no-store\", max-age=60\n"
                    "Content-Length: 1\n", "x", T0));
    /* A request with no-store: its response is not stored. */
    cr_assert_null(begin(c, "GET /b HTTP/1.1\nHost: www.example.com\nCache-Control: no-store\n", "",
                         OK60, T0));
    px_cache_free(c);
}

Test(px_cache_rules, authorization)
{
    struct px_cache *c = mk(0, 0, false);
    const char *req = "GET /a HTTP/1.1\nHost: www.example.com\nAuthorization: Basic eDp5\n";

    cr_assert_null(begin(c, req, "", OK60, T0));
    cr_assert_eq(rc_of(c, req, "", T0), PX_CACHE_BYPASS);
    cr_assert(store(c, req, "",
                    "HTTP/1.1 200 OK\nCache-Control: public, max-age=60\nContent-Length: 1\n", "1", T0));
    cr_assert(store(c, "GET /b HTTP/1.1\nHost: www.example.com\nAuthorization: Basic eDp5\n", "",
                    "HTTP/1.1 200 OK\nCache-Control: s-maxage=60\nContent-Length: 1\n", "2", T0));
    cr_assert(store(c, "GET /c HTTP/1.1\nHost: www.example.com\nAuthorization: Basic eDp5\n", "",
                    "HTTP/1.1 200 OK\nCache-Control: max-age=60, must-revalidate\nContent-Length: 1\n",
                    "3", T0));
    /* Served to requests without credentials. */
    struct px_cache_obj *o = hit(c, GET_A, "", T0);
    cr_assert(body_is(o, "1"));
    px_cache_release(o);
    cr_assert_eq(stats(c).objects, 3);
    px_cache_free(c);
}

/* ---- variants ----------------------------------------------------------- */

Test(px_cache_vary, accept_language_variants)
{
    struct px_cache *c = mk(0, 0, false);
    const char *en = "GET /a HTTP/1.1\nHost: www.example.com\nAccept-Language: en\n";
    const char *de = "GET /a HTTP/1.1\nHost: www.example.com\nAccept-Language: de\n";
    const char *resp = OK60 "Vary: Accept-Language\n";
    struct px_cache_obj *o;

    cr_assert(store(c, en, "", resp, "hello", T0));
    cr_assert_eq(rc_of(c, de, "", T0), PX_CACHE_MISS);
    cr_assert(store(c, de, "", resp, "hallo", T0));
    cr_assert_eq(stats(c).objects, 2);
    o = hit(c, en, "", T0);
    cr_assert(body_is(o, "hello"));
    px_cache_release(o);
    o = hit(c, de, "", T0);
    cr_assert(body_is(o, "hallo"));
    px_cache_release(o);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nAccept-Language: fr\n", "", T0),
                 PX_CACHE_MISS);
    /* Absent matches only absent. */
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert(store(c, GET_A, "", resp, "nolng", T0));
    o = hit(c, GET_A, "", T0);
    cr_assert(body_is(o, "nolng"));
    px_cache_release(o);
    /* Repeated fields are joined. */
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nAccept-Language: en\n"
                       "Accept-Language: de\n", "", T0), PX_CACHE_MISS);
    cr_assert_eq(stats(c).objects, 3);
    px_cache_free(c);
}

Test(px_cache_vary, several_fields)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, "GET /a HTTP/1.1\nHost: h\nX-A: 1\nX-B: 2\n", "",
                    OK60 "Vary: x-a\nVary: X-B\n", "hello", T0));
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: h\nX-B: 2\nX-A: 1\n", "", T0), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: h\nX-A: 1\nX-B: 3\n", "", T0), PX_CACHE_MISS);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: h\nX-A: 1\n", "", T0), PX_CACHE_MISS);
    px_cache_free(c);
}

Test(px_cache_vary, variant_argument)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "gzip", OK60 "Content-Encoding: gzip\n", "GZIPD", T0));
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert_eq(rc_of(c, GET_A, NULL, T0), PX_CACHE_MISS);
    cr_assert(store(c, GET_A, NULL, OK60, "plain", T0));
    o = hit(c, GET_A, "gzip", T0);
    cr_assert(body_is(o, "GZIPD"));
    cr_assert_not_null(strstr(head_at(o, T0, false), "Content-Encoding: gzip\r\n"));
    px_cache_release(o);
    o = hit(c, GET_A, "", T0);
    cr_assert(body_is(o, "plain"));
    px_cache_release(o);
    cr_assert_eq(rc_of(c, GET_A, "br", T0), PX_CACHE_MISS);
    cr_assert_eq(stats(c).objects, 2);
    px_cache_free(c);
}

Test(px_cache_vary, variants_per_key_bounded)
{
    struct px_cache *c = mk(0, 0, false);
    char req[128];

    for (int i = 0; i < PX_CACHE_MAX_VARIANTS + 5; i++) {
        snprintf(req, sizeof(req), "GET /a HTTP/1.1\nHost: h\nX-V: %d\n", i);
        cr_assert(store(c, req, "", OK60 "Vary: X-V\n", "hello", T0));
    }
    cr_assert_eq(stats(c).objects, PX_CACHE_MAX_VARIANTS);
    /* The newest stay. */
    cr_assert_eq(rc_of(c, req, "", T0), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: h\nX-V: 0\n", "", T0), PX_CACHE_MISS);
    px_cache_free(c);
}

/* ---- refresh ------------------------------------------------------------ */

Test(px_cache_refresh, no_cache_and_pragma_replace)
{
    struct px_cache *c = mk(0, 0, false);
    const char *nc = "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: no-cache\n";
    const char *pr = "GET /a HTTP/1.1\nHost: www.example.com\nPragma: no-cache\n";
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    cr_assert_eq(rc_of(c, nc, "", T0), PX_CACHE_REFRESH);
    cr_assert_eq(rc_of(c, pr, "", T0), PX_CACHE_REFRESH);
    cr_assert(store(c, nc, "", OK60, "new_1", T0 + 1000));
    cr_assert_eq(stats(c).objects, 1);
    cr_assert_eq(stats(c).replaced, 1);
    o = hit(c, GET_A, "", T0 + 1000);
    cr_assert(body_is(o, "new_1"));
    px_cache_release(o);
    cr_assert(store(c, pr, "", OK60, "new_2", T0 + 2000));
    o = hit(c, GET_A, "", T0 + 2000);
    cr_assert(body_is(o, "new_2"));
    px_cache_release(o);
    cr_assert_eq(stats(c).objects, 1);
    cr_assert_eq(stats(c).refreshes, 2);
    px_cache_free(c);
}

Test(px_cache_refresh, request_max_age_and_min_fresh)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: max-age=0\n", "",
                       T0 + 500), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: max-age=0\n", "",
                       T0 + 1000), PX_CACHE_REFRESH);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: max-age=10\n", "",
                       T0 + 10999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: min-fresh=50\n",
                       "", T0 + 10000), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: www.example.com\nCache-Control: min-fresh=50\n",
                       "", T0 + 10001), PX_CACHE_REFRESH);
    px_cache_free(c);
}

/* ---- conditional requests ----------------------------------------------- */

#define RESP_V "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=60\nETag: \"v1\"\n" \
               "Last-Modified: Sat, 05 Nov 1994 08:00:00 GMT\nContent-Type: text/html\n" \
               "Vary: Accept-Language\nExpires: Sun, 06 Nov 1994 09:49:37 GMT\n" \
               "Content-Location: /a.html\nX-Other: 1\nContent-Length: 5\n"

Test(px_cache_cond, if_none_match)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", RESP_V, "hello", T0));
    o = hit(c, GET_A, "", T0);
    cr_assert(not_modified(o, GET_A "If-None-Match: \"v1\"\n"));
    cr_assert(not_modified(o, GET_A "If-None-Match: W/\"v1\"\n"));
    cr_assert(not_modified(o, GET_A "If-None-Match: \"x\", W/\"y\" , \"v1\"\n"));
    cr_assert(not_modified(o, GET_A "If-None-Match: \"x\"\nIf-None-Match: \"v1\"\n"));
    cr_assert(not_modified(o, GET_A "If-None-Match: *\n"));
    cr_assert_not(not_modified(o, GET_A "If-None-Match: \"v2\"\n"));
    cr_assert_not(not_modified(o, GET_A "If-None-Match: \"v1 \"\n"));
    cr_assert_not(not_modified(o, GET_A "If-None-Match: v1\n"));
    cr_assert_not(not_modified(o, GET_A));
    px_cache_release(o);
    /* A weak stored tag matches by weak comparison too. */
    cr_assert(store(c, "GET /w HTTP/1.1\nHost: h\n", "", OK60 "ETag: W/\"w\"\n", "hello", T0));
    o = hit(c, "GET /w HTTP/1.1\nHost: h\n", "", T0);
    cr_assert(not_modified(o, "GET /w HTTP/1.1\nHost: h\nIf-None-Match: \"w\"\n"));
    cr_assert(not_modified(o, "GET /w HTTP/1.1\nHost: h\nIf-None-Match: W/\"w\"\n"));
    px_cache_release(o);
    /* Without a stored ETag only "*" matches. */
    cr_assert(store(c, "GET /n HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    o = hit(c, "GET /n HTTP/1.1\nHost: h\n", "", T0);
    cr_assert_not(not_modified(o, "GET /n HTTP/1.1\nHost: h\nIf-None-Match: \"\"\n"));
    cr_assert(not_modified(o, "GET /n HTTP/1.1\nHost: h\nIf-None-Match: *\n"));
    px_cache_release(o);
    px_cache_free(c);
}

Test(px_cache_cond, if_modified_since)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", RESP_V, "hello", T0));
    o = hit(c, GET_A, "", T0);
    cr_assert(not_modified(o, GET_A "If-Modified-Since: Sat, 05 Nov 1994 08:00:00 GMT\n"));
    cr_assert(not_modified(o, GET_A "If-Modified-Since: Sat, 05 Nov 1994 09:00:00 GMT\n"));
    cr_assert(not_modified(o, GET_A "If-Modified-Since: Saturday, 05-Nov-94 08:00:00 GMT\n"));
    cr_assert_not(not_modified(o, GET_A "If-Modified-Since: Sat, 05 Nov 1994 07:59:59 GMT\n"));
    cr_assert_not(not_modified(o, GET_A "If-Modified-Since: yesterday\n"));
    px_cache_release(o);
    /* Without Last-Modified: the stored Date. */
    cr_assert(store(c, "GET /d HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    o = hit(c, "GET /d HTTP/1.1\nHost: h\n", "", T0);
    cr_assert(not_modified(o, "GET /d HTTP/1.1\nHost: h\nIf-Modified-Since: " DATE0 "\n"));
    cr_assert_not(not_modified(o, "GET /d HTTP/1.1\nHost: h\n"
                               "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\n"));
    px_cache_release(o);
    px_cache_free(c);
}

Test(px_cache_cond, inm_takes_precedence)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", RESP_V, "hello", T0));
    o = hit(c, GET_A, "", T0);
    cr_assert_not(not_modified(o, GET_A "If-None-Match: \"v2\"\n"
                               "If-Modified-Since: Sat, 05 Nov 1994 09:00:00 GMT\n"));
    cr_assert(not_modified(o, GET_A "If-None-Match: \"v1\"\n"
                           "If-Modified-Since: Sat, 01 Jan 1994 00:00:00 GMT\n"));
    px_cache_release(o);
    px_cache_free(c);
}

Test(px_cache_cond, head_304)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", RESP_V, "hello", T0));
    o = hit(c, GET_A, "", T0 + 3000);
    cr_assert_str_eq(head_at(o, T0 + 3000, true),
                     "HTTP/1.1 304 Not Modified\r\nDate: " DATE0 "\r\nCache-Control: max-age=60\r\n"
                     "ETag: \"v1\"\r\nLast-Modified: Sat, 05 Nov 1994 08:00:00 GMT\r\n"
                     "Vary: Accept-Language\r\nExpires: Sun, 06 Nov 1994 09:49:37 GMT\r\n"
                     "Content-Location: /a.html\r\nAge: 3\r\n\r\n");
    const char *h = head_at(o, T0 + 3000, false);
    cr_assert_not_null(strstr(h, "\r\nContent-Type: text/html\r\n"));
    cr_assert_not_null(strstr(h, "\r\nX-Other: 1\r\n"));
    cr_assert_not_null(strstr(h, "Content-Length: 5\r\n\r\n"));
    px_cache_release(o);
    px_cache_free(c);
}

/* ---- Age ---------------------------------------------------------------- */

Test(px_cache_age, resident_received_and_apparent)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_obj *o;

    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    o = hit(c, GET_A, "", T0 + 7500);
    cr_assert_not_null(strstr(head_at(o, T0 + 7500, false), "\r\nAge: 7\r\n"));
    cr_assert_not_null(strstr(head_at(o, T0 + 59999, false), "\r\nAge: 59\r\n"));
    px_cache_release(o);
    /* A received Age counts, and the lifetime runs from it. */
    cr_assert(store(c, "GET /b HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nDate: " DATE0 "\nAge: 100\nCache-Control: max-age=300\n"
                    "Content-Length: 1\n", "x", T0));
    o = hit(c, "GET /b HTTP/1.1\nHost: h\n", "", T0);
    cr_assert_not_null(strstr(head_at(o, T0, false), "\r\nAge: 100\r\n"));
    cr_assert_not_null(strstr(head_at(o, T0 + 10000, false), "\r\nAge: 110\r\n"));
    cr_assert_eq(strstr(head_at(o, T0, false), "Age:"), strstr(head_at(o, T0, false),
                                                               "\r\nAge:") + 2);
    px_cache_release(o);
    cr_assert_eq(rc_of(c, "GET /b HTTP/1.1\nHost: h\n", "", T0 + 199999), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /b HTTP/1.1\nHost: h\n", "", T0 + 200000), PX_CACHE_MISS);
    /* Apparent age: Date 20 s before the time received. */
    cr_assert(store(c, "GET /c HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nDate: Sun, 06 Nov 1994 08:49:17 GMT\nAge: 5\n"
                    "Cache-Control: max-age=30\nContent-Length: 1\n", "x", T0));
    o = hit(c, "GET /c HTTP/1.1\nHost: h\n", "", T0);
    cr_assert_not_null(strstr(head_at(o, T0 + 1000, false), "\r\nAge: 21\r\n"));
    px_cache_release(o);
    cr_assert_eq(rc_of(c, "GET /c HTTP/1.1\nHost: h\n", "", T0 + 10000), PX_CACHE_MISS);
    /* Already older than its lifetime: not stored. */
    cr_assert_null(begin(c, "GET /d HTTP/1.1\nHost: h\n", "",
                         "HTTP/1.1 200 OK\nAge: 100\nCache-Control: max-age=60\nContent-Length: 1\n",
                         T0));
    px_cache_free(c);
}

/* ---- queries ------------------------------------------------------------ */

Test(px_cache_query, bypassed_by_default)
{
    struct px_cache *c = mk(0, 0, false);
    const char *q = "GET /a?x=1 HTTP/1.1\nHost: www.example.com\n";

    cr_assert_eq(rc_of(c, q, "", T0), PX_CACHE_BYPASS);
    cr_assert_null(begin(c, q, "", OK60, T0));
    px_cache_free(c);
}

Test(px_cache_query, cached_with_cache_query)
{
    struct px_cache *c = mk(0, 0, true);
    struct px_cache_obj *o;

    cr_assert(store(c, "GET /a?x=1 HTTP/1.1\nHost: h\n", "", OK60, "one__", T0));
    cr_assert(store(c, "GET /a?x=2 HTTP/1.1\nHost: h\n", "", OK60, "two__", T0));
    o = hit(c, "GET /a?x=1 HTTP/1.1\nHost: h\n", "", T0);
    cr_assert(body_is(o, "one__"));
    px_cache_release(o);
    o = hit(c, "GET /a?x=2 HTTP/1.1\nHost: h\n", "", T0);
    cr_assert(body_is(o, "two__"));
    px_cache_release(o);
    cr_assert_eq(rc_of(c, "GET /a HTTP/1.1\nHost: h\n", "", T0), PX_CACHE_MISS);
    cr_assert_eq(px_cache_purge(c, "h", "/a?x=1"), 1);
    cr_assert_eq(rc_of(c, "GET /a?x=1 HTTP/1.1\nHost: h\n", "", T0), PX_CACHE_MISS);
    px_cache_free(c);
}

/* ---- sizes -------------------------------------------------------------- */

Test(px_cache_size, max_object)
{
    struct px_cache *c = mk(0, 8, false);
    struct px_cache_fill *f;

    /* Known length over the limit: refused at once. */
    cr_assert_null(begin(c, GET_A, "",
                         "HTTP/1.1 200 OK\nCache-Control: max-age=60\nContent-Length: 9\n", T0));
    /* Exactly the limit is fine. */
    cr_assert(store(c, "GET /8 HTTP/1.1\nHost: h\n", "",
                    "HTTP/1.1 200 OK\nCache-Control: max-age=60\nContent-Length: 8\n", "12345678", T0));
    /* Unknown length: dropped when it goes over. */
    f = begin(c, GET_A, "",
              "HTTP/1.1 200 OK\nCache-Control: max-age=60\nTransfer-Encoding: chunked\n",
              T0);
    cr_assert_not_null(f);
    cr_assert_eq(px_cache_fill_add(f, "12345", 5), 0);
    cr_assert_eq(px_cache_fill_add(f, "6789", 4), -EFBIG);
    cr_assert_eq(px_cache_fill_add(f, "1", 1), -EFBIG);
    px_cache_fill_end(f, true);
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    /* More than the Content-Length said, fewer, or incomplete: dropped. */
    f = begin(c, GET_A, "", "HTTP/1.1 200 OK\nCache-Control: max-age=60\nContent-Length: 3\n", T0);
    cr_assert_eq(px_cache_fill_add(f, "1234", 4), -EFBIG);
    px_cache_fill_end(f, true);
    f = begin(c, GET_A, "", "HTTP/1.1 200 OK\nCache-Control: max-age=60\nContent-Length: 3\n", T0);
    cr_assert_eq(px_cache_fill_add(f, "12", 2), 0);
    px_cache_fill_end(f, true);
    f = begin(c, GET_A, "",
              "HTTP/1.1 200 OK\nCache-Control: max-age=60\nTransfer-Encoding: chunked\n",
              T0);
    cr_assert_eq(px_cache_fill_add(f, "12", 2), 0);
    px_cache_fill_end(f, false);
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert_eq(stats(c).drops, 4);
    cr_assert_eq(stats(c).objects, 1);
    px_cache_fill_end(NULL, true);
    cr_assert_eq(px_cache_fill_add(NULL, "x", 1), -EINVAL);
    px_cache_free(c);
}

/* Size of one object of the LRU test, measured. */
static uint64_t one_size(void)
{
    struct px_cache *c = mk(0, 0, false);
    uint64_t n;

    cr_assert(store(c, "GET /0 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    n = stats(c).bytes;
    px_cache_free(c);
    return n;
}

Test(px_cache_size, lru_eviction)
{
    uint64_t one = one_size();
    struct px_cache *c = mk(3 * one + one / 2, 0, false);

    cr_assert(store(c, "GET /1 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    cr_assert(store(c, "GET /2 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0 + 1));
    cr_assert(store(c, "GET /3 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0 + 2));
    cr_assert_eq(stats(c).objects, 3);
    /* /1 is used again, so /2 is now the least recently used. */
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0 + 3), PX_CACHE_HIT);
    cr_assert(store(c, "GET /4 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0 + 4));
    cr_assert_eq(stats(c).objects, 3);
    cr_assert_eq(stats(c).evictions, 1);
    cr_assert_leq(stats(c).bytes, 3 * one + one / 2);
    cr_assert_eq(rc_of(c, "GET /2 HTTP/1.1\nHost: h\n", "", T0 + 5), PX_CACHE_MISS);
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0 + 5), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /3 HTTP/1.1\nHost: h\n", "", T0 + 5), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /4 HTTP/1.1\nHost: h\n", "", T0 + 5), PX_CACHE_HIT);
    /* Next out: /1 (hit before /3 and /4). */
    cr_assert(store(c, "GET /5 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0 + 6));
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0 + 7), PX_CACHE_MISS);
    /* An object larger than max_size is not stored. */
    struct px_cache *s = mk(64, 0, false);
    cr_assert_not(store(s, GET_A, "", OK60, "hello", T0));
    cr_assert_eq(stats(s).drops, 1);
    px_cache_free(s);
    px_cache_free(c);
}

Test(px_cache_size, reference_outlives_eviction_and_flush)
{
    uint64_t one = one_size();
    struct px_cache *c = mk(one + one / 2, 0, false);
    struct px_cache_obj *a, *b;

    cr_assert(store(c, "GET /1 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    a = hit(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0);
    cr_assert(store(c, "GET /2 HTTP/1.1\nHost: h\n", "", OK60, "world", T0));
    cr_assert_eq(stats(c).evictions, 1);
    b = hit(c, "GET /2 HTTP/1.1\nHost: h\n", "", T0);
    cr_assert_eq(px_cache_flush(c), 1);
    cr_assert_eq(stats(c).objects, 0);
    cr_assert_eq(stats(c).bytes, 0);
    /* Both still readable (ASan would see a use after free). */
    cr_assert(body_is(a, "hello"));
    cr_assert(body_is(b, "world"));
    cr_assert_not_null(strstr(head_at(a, T0, false), "Content-Length: 5"));
    px_cache_free(c);
    cr_assert(body_is(b, "world"));
    px_cache_release(a);
    px_cache_release(b);
    px_cache_release(NULL);
}

/* ---- invalidation ------------------------------------------------------- */

Test(px_cache_inval, purge_all_variants_of_one_url)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, "GET /x HTTP/1.1\nHost: h\nAccept-Language: en\n", "",
                    OK60 "Vary: Accept-Language\n",
                    "hello", T0));
    cr_assert(store(c, "GET /x HTTP/1.1\nHost: h\nAccept-Language: de\n", "",
                    OK60 "Vary: Accept-Language\n",
                    "hello", T0));
    cr_assert(store(c, "GET /x HTTP/1.1\nHost: h\n", "gzip", OK60, "hello", T0));
    cr_assert(store(c, "GET /y HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    cr_assert(store(c, "GET /x HTTP/1.1\nHost: other\n", "", OK60, "hello", T0));
    cr_assert_eq(px_cache_purge(c, "H", "/x"), 3);
    cr_assert_eq(px_cache_purge(c, "h", "/x"), 0);
    cr_assert_eq(stats(c).objects, 2);
    cr_assert_eq(stats(c).purged, 3);
    cr_assert_eq(rc_of(c, "GET /y HTTP/1.1\nHost: h\n", "", T0), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /x HTTP/1.1\nHost: other\n", "", T0), PX_CACHE_HIT);
    cr_assert_eq(rc_of(c, "GET /x HTTP/1.1\nHost: h\n", "gzip", T0), PX_CACHE_MISS);
    px_cache_free(c);
}

Test(px_cache_inval, flush)
{
    struct px_cache *c = mk(0, 0, false);

    cr_assert(store(c, "GET /1 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    cr_assert(store(c, "GET /2 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    cr_assert(store(c, "GET /3 HTTP/1.1\nHost: i\n", "", OK60, "hello", T0));
    cr_assert_eq(px_cache_flush(c), 3);
    cr_assert_eq(px_cache_flush(c), 0);
    cr_assert_eq(stats(c).objects, 0);
    cr_assert_eq(stats(c).bytes, 0);
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0), PX_CACHE_MISS);
    /* Still usable. */
    cr_assert(store(c, "GET /1 HTTP/1.1\nHost: h\n", "", OK60, "hello", T0));
    cr_assert_eq(rc_of(c, "GET /1 HTTP/1.1\nHost: h\n", "", T0), PX_CACHE_HIT);
    px_cache_free(c);
}

Test(px_cache_inval, unsafe_method)
{
    struct px_cache *c = mk(0, 0, false);
    struct msg q;
    const struct xlb_h1_head *h;

    cr_assert(store(c, GET_A, "", OK60, "hello", T0));
    cr_assert(store(c, GET_A, "gzip", OK60, "hello", T0));
    cr_assert(store(c, "GET /b HTTP/1.1\nHost: www.example.com\n", "", OK60, "hello", T0));
    h = parse(&q, XLB_H1_REQUEST, "POST /a HTTP/1.1\nHost: www.example.com\nContent-Length: 0\n",
              false);
    cr_assert_eq(px_cache_invalidate_uri(c, q.buf, h), 2);
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert_eq(rc_of(c, "GET /b HTTP/1.1\nHost: www.example.com\n", "", T0), PX_CACHE_HIT);
    h = parse(&q, XLB_H1_REQUEST,
              "DELETE http://WWW.example.com/b HTTP/1.1\nHost: www.example.com\n",
              false);
    cr_assert_eq(px_cache_invalidate_uri(c, q.buf, h), 1);
    cr_assert_eq(stats(c).objects, 0);
    px_cache_free(c);
}

Test(px_cache_inval, fill_overtaken_by_purge)
{
    struct px_cache *c = mk(0, 0, false);
    struct px_cache_fill *f = begin(c, GET_A, "", OK60, T0);

    cr_assert_not_null(f);
    cr_assert_eq(px_cache_fill_add(f, "hello", 5), 0);
    px_cache_purge(c, "www.example.com", "/a");
    px_cache_fill_end(f, true);
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_MISS);
    cr_assert_eq(stats(c).drops, 1);
    px_cache_free(c);
}

Test(px_cache_inval, disabled_cache)
{
    struct xlb_cfg_cache cfg = { .enabled = false };
    struct px_cache *c = px_cache_new(&cfg);

    cr_assert_not_null(c);
    cr_assert_eq(rc_of(c, GET_A, "", T0), PX_CACHE_BYPASS);
    cr_assert_null(begin(c, GET_A, "", OK60, T0));
    px_cache_free(c);
    px_cache_free(NULL);
}

/* ---- threads ------------------------------------------------------------ */

#define NURL 48
#define NTHR 4

struct worker {
    struct px_cache *c;
    unsigned seed;
    uint64_t lookups, bad;
    uint64_t stop_ms;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct msg q, r;
    char req[128], resp[256], body[512];
    struct xlb_buf out = { 0 };

    while (px_now_ms() < w->stop_ms) {
        for (int k = 0; k < 64; k++) {
            int u = (int)(rand_r(&w->seed) % NURL), op = (int)(rand_r(&w->seed) % 100);
            const char *variant = (rand_r(&w->seed) & 1) ? "gzip" : "";
            size_t blen = 16 + (size_t)u * 8;
            snprintf(req, sizeof(req), "GET /u%d HTTP/1.1\nHost: h\nAccept-Language: l%d\n", u,
                     u % 3);
            const struct xlb_h1_head *qh = parse(&q, XLB_H1_REQUEST, req, false);
            if (op < 70) {
                struct px_cache_obj *o = NULL;
                int rc = px_cache_lookup(w->c, q.buf, qh, variant, T0, &o);
                w->lookups++;
                if (rc == PX_CACHE_HIT) {
                    const char *p;
                    size_t n;
                    px_cache_body(o, &p, &n);
                    char last = variant[0] ? 'Z' : 'z';
                    if (n != blen || p[0] != (char)('A' + u % 26) || p[n - 1] != last)
                        w->bad++;
                    xlb_buf_reset(&out);
                    if (px_cache_write_head(o, T0, &out, false) || !strstr(out.data, "Age: 0\r\n"))
                        w->bad++;
                    px_cache_release(o);
                } else if (o || rc != PX_CACHE_MISS) {
                    w->bad++;
                }
            } else if (op < 97) {
                snprintf(resp, sizeof(resp),
                         "HTTP/1.1 200 OK\nDate: " DATE0 "\nCache-Control: max-age=600\n"
                         "Vary: Accept-Language\nContent-Length: %zu\n", blen);
                const struct xlb_h1_head *rh = parse(&r, XLB_H1_RESPONSE, resp, false);
                struct px_cache_fill *f = px_cache_fill_begin(w->c, q.buf, qh, variant, r.buf, rh,
                                                              T0);
                if (!f) {
                    w->bad++;
                    continue;
                }
                memset(body, 'A' + u % 26, blen);
                body[blen - 1] = variant[0] ? 'Z' : 'z';
                if (px_cache_fill_add(f, body, blen / 2) ||
                    px_cache_fill_add(f, body + blen / 2, blen - blen / 2))
                    w->bad++;
                px_cache_fill_end(f, true);
            } else if (op < 99) {
                snprintf(req, sizeof(req), "/u%d", u);
                px_cache_purge(w->c, "h", req);
            } else if (rand_r(&w->seed) % 20 == 0) {
                px_cache_flush(w->c);
            }
        }
    }
    xlb_buf_free(&out);
    return NULL;
}

Test(px_cache_threads, lookups_fills_purges, .timeout = 30)
{
    uint64_t one = one_size();
    struct px_cache *c = mk(40 * (one + 400), 0, false);
    struct worker w[NTHR];
    pthread_t t[NTHR];
    uint64_t lookups = 0;
    struct px_cache_stats s;

    for (int i = 0; i < NTHR; i++) {
        w[i] = (struct worker){ .c = c, .seed = 7u + (unsigned)i, .stop_ms = px_now_ms() + 2000 };
        cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHR; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].bad, 0, "worker %d saw %llu bad results", i,
                     (unsigned long long)w[i].bad);
        lookups += w[i].lookups;
    }
    s = stats(c);
    cr_assert_gt(s.hits, 0);
    cr_assert_gt(s.evictions, 0);
    cr_assert_eq(s.hits + s.misses + s.bypasses + s.refreshes, lookups);
    cr_assert_eq(s.bypasses + s.refreshes + s.expired, 0);
    cr_assert_eq(s.objects, s.stores - s.evictions - s.expired - s.purged - s.replaced);
    cr_assert_leq(s.bytes, 40 * (one + 400));
    uint64_t n = s.objects;
    cr_assert_eq(px_cache_flush(c), n);
    s = stats(c);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.bytes, 0);
    px_cache_free(c);
}
