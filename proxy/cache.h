/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cache.h - xlb-proxy's in-memory HTTP cache (RFC 9111, shared cache), one
 * per layer-7 service, used by every worker thread at once.
 *
 * Objects.  A stored response is an immutable, reference-counted object:
 * its head as bytes ready to send (status line and fields, without
 * hop-by-hop fields, Age and Content-Length, which are written per hit) and
 * its body.  A hit takes a reference under the cache lock and then reads
 * the object without it; an object evicted, purged or flushed while a hit
 * is being sent stays alive until that hit releases it.  The lock is held
 * only for the hash-table walk and list updates; nothing is copied or freed
 * under it.
 *
 * Key.  GET and HEAD share the GET entry.  The key is the host, lowercased
 * and with its port as received ("a.example:8080" and "a.example" differ;
 * the authority of an absolute-form target wins over Host), and the
 * request target as received, query included (no percent-decoding or dot
 * segment removal; the scheme is not part of it).  A target with a query
 * is cached only with cache_query.
 * Within a key, objects are told apart by the lead's variant string (e.g.
 * the content-coding it negotiated, so compressed variants are stored
 * compressed) and by the request values of the fields the response's Vary
 * names (RFC 9111 4.1: the values of all fields with that name, joined with
 * ", ", compared exactly; an absent field matches only an absent field).
 * The most recently stored matching object is used.  A new object replaces
 * older ones of its key with the same variant and the same Vary values; at
 * most PX_CACHE_MAX_VARIANTS objects are kept per key.
 *
 * What is stored (px_cache_fill_begin): responses to GET (not HEAD) whose
 * request is itself cacheable (see px_cache_lookup; except Authorization,
 * which RFC 9111 3.5 allows with public, s-maxage or must-revalidate) and
 * has no "no-store"; status 200, 203, 204, 300, 301, 308, 404, 405, 410,
 * 414 or 501; with explicit freshness: s-maxage, else max-age, else Expires
 * minus Date (minus the time received when there is no Date); fresh when
 * received.  There is no heuristic freshness: a response without one of
 * those is not stored.  Never stored: no-store, private, no-cache (also
 * with field names), Set-Cookie, Vary: *, a body delimited by the
 * connection close (its end cannot be told from a truncation), a body over
 * max_object.  Stored objects are never served stale and never
 * revalidated: a stale one is dropped at lookup.
 *
 * Age (RFC 9111 4.2.3).  A response's corrected initial age is the larger
 * of its apparent age (time received minus Date, not below 0) and its Age
 * field; the response delay is taken as 0 (the proxy's own round trip to
 * the real is not known here).  The current age adds the time resident in
 * the cache.  It is fresh while the freshness lifetime is larger than the
 * current age.  Times received are on the caller's now_ms clock (px_now_ms)
 * and are mapped to wall-clock seconds for Date comparisons by an offset
 * taken at px_cache_new() (px_cache_set_wall_offset changes it).
 *
 * Size.  Every object counts its head, body, key and bookkeeping bytes; the
 * total is kept under max_size by evicting the least recently used objects
 * (a hit makes an object the most recently used, unless it already is among
 * the most recently used quarter).
 */
#ifndef XLB_PX_CACHE_H
#define XLB_PX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xlb_config.h"
#include "xlb_http1.h"
#include "xlb_httpd.h"

#define PX_CACHE_MAX_VARIANTS 32    /* objects per key (variants and Vary values) */
#define PX_CACHE_MAX_VARIANT_LEN 31 /* longest variant string used; longer: BYPASS */

struct px_cache;
struct px_cache_obj;
struct px_cache_fill;

/* Outcomes of px_cache_lookup(). */
enum px_cache_rc {
    PX_CACHE_HIT = 0,       /* a fresh object; *hit holds a reference to release */
    PX_CACHE_MISS = 1,      /* cacheable request; nothing fresh stored: forward it
                             * and offer the response to px_cache_fill_begin() */
    PX_CACHE_BYPASS = 2,    /* the cache cannot answer this request: forward it
                             * (px_cache_fill_begin may still be called; it applies
                             * its own rules) */
    PX_CACHE_REFRESH = 3,   /* the client asked for a response from the origin
                             * (no-cache, Pragma: no-cache, or a request max-age /
                             * min-fresh the stored one does not satisfy): forward
                             * it; a storable response replaces the entry */
};

struct px_cache_stats {
    uint64_t hits, misses, bypasses, refreshes;    /* px_cache_lookup outcomes */
    uint64_t stores;            /* objects committed */
    uint64_t uncacheable;       /* px_cache_fill_begin refusals */
    uint64_t drops;             /* fills not committed: too large, incomplete, or
                                 * overtaken by a purge or flush */
    uint64_t evictions;         /* objects removed to stay under max_size */
    uint64_t expired;           /* stale objects removed at lookup */
    uint64_t purged;            /* objects removed by flush, purge, invalidation */
    uint64_t replaced;          /* objects replaced by a newer one of the same variant,
                                 * or over PX_CACHE_MAX_VARIANTS per key */
    uint64_t objects, bytes;    /* now stored */
};

/*
 * A cache with cfg's limits (copied; max_size 0 means the default 64 MiB,
 * max_object 0 the default 1 MiB).  A cache with cfg->enabled false answers
 * every lookup BYPASS and stores nothing.  NULL with errno set on failure.
 */
struct px_cache *px_cache_new(const struct xlb_cfg_cache *cfg);

/* Drop every object (those still referenced live until released) and the
 * cache.  No other call on c may be running or follow.  NULL is fine. */
void px_cache_free(struct px_cache *c);

/*
 * Set the difference between wall-clock milliseconds (CLOCK_REALTIME) and
 * the now_ms clock callers pass, which px_cache_new() measured.  Used to
 * compare Date / Expires / Last-Modified with the time a response arrived;
 * tests set it to make those deterministic.
 */
void px_cache_set_wall_offset(struct px_cache *c, int64_t wall_minus_now_ms);

/*
 * Look up the request req (parsed from req_buf) for the lead's variant
 * (e.g. "gzip", or "" / NULL for none) at time now_ms.  BYPASS for: a
 * disabled cache, a method other than GET and HEAD, Authorization,
 * If-Match, If-Unmodified-Since, a target that is neither origin-form nor
 * absolute http(s) form, a query without cache_query, a variant longer
 * than PX_CACHE_MAX_VARIANT_LEN.  REFRESH for Cache-Control: no-cache or
 * Pragma: no-cache (without looking), and when the stored object is older
 * than the request's max-age or fresh for less than its min-fresh.  HIT
 * sets *hit to a fresh object with a reference the caller must give back
 * with px_cache_release(); for HEAD, send only its head.  Otherwise *hit is
 * NULL.  A stale object found is removed (MISS).  Counts the outcome.
 */
int px_cache_lookup(struct px_cache *c, const char *req_buf, const struct xlb_h1_head *req,
                    const char *variant, uint64_t now_ms, struct px_cache_obj **hit);

/*
 * Whether a hit for req must be answered 304 (RFC 9110 13.1.2, 13.1.3,
 * 13.2.2): If-None-Match, when present, decides alone: true when one of
 * its entity-tags matches the stored ETag by weak comparison, or it is
 * "*".  Otherwise a valid If-Modified-Since gives true when the stored
 * Last-Modified (else its Date, else the time it was received) is not
 * later than it.  False without either.
 */
bool px_cache_not_modified(const struct px_cache_obj *o, const char *req_buf,
                           const struct xlb_h1_head *req);

/*
 * Append o's response head for a hit at now_ms to out: the stored status
 * line (as HTTP/1.1) and fields, then "Age: <current age in seconds>", then
 * Content-Length of the stored body (not for 204), then the empty line.
 * With not_modified, a "304 Not Modified" head instead with only the
 * fields a 304 keeps (Cache-Control, Content-Location, Date, ETag,
 * Expires, Last-Modified, Vary) and Age.  A caller that adds fields of its
 * own (Connection, Via) drops the final CRLF (out->len -= 2), appends its
 * lines and "\r\n".  0, or -ENOMEM with out as it was.
 */
int px_cache_write_head(const struct px_cache_obj *o, uint64_t now_ms, struct xlb_buf *out,
                        bool not_modified);

/* The stored body (for a GET 200-class hit); valid until o is released. */
void px_cache_body(const struct px_cache_obj *o, const char **ptr, size_t *len);

/* The stored status code. */
int px_cache_status(const struct px_cache_obj *o);

/* Give back a reference from px_cache_lookup(); NULL is fine. */
void px_cache_release(struct px_cache_obj *o);

/*
 * Start storing the response resp (head parsed from resp_buf, as it is
 * sent to clients: if the lead compressed, the compressed head; without
 * per-client fields such as a persistence Set-Cookie, which would make it
 * not storable) to the request req for variant, received at now_ms.  What
 * is needed of both heads is copied: the buffers may be reused after the
 * call.  NULL when the response is not storable (the rules at the top of
 * this file) or on allocation failure.  The fill belongs to the caller's
 * thread until px_cache_fill_end().
 */
struct px_cache_fill *px_cache_fill_begin(struct px_cache *c, const char *req_buf,
                                          const struct xlb_h1_head *req, const char *variant,
                                          const char *resp_buf, const struct xlb_h1_head *resp,
                                          uint64_t now_ms);

/*
 * Append n payload bytes (decoded of chunked framing) of the body.  0, or
 * -EFBIG when the body goes over max_object (or the Content-Length), or
 * -ENOMEM; after an error the fill stores nothing and further calls return
 * the error without doing anything.  NULL fill is fine (returns -EINVAL).
 */
int px_cache_fill_add(struct px_cache_fill *f, const char *p, size_t n);

/*
 * End a fill: with complete (the whole body was received and added), store
 * the object, replacing older ones of its key with the same variant and
 * Vary values, and evict least recently used objects past max_size; else,
 * or after an error, or when a flush / purge / invalidation happened since
 * px_cache_fill_begin(), drop it.  Frees f; NULL is fine.
 */
void px_cache_fill_end(struct px_cache_fill *f, bool complete);

/* Remove every object; returns how many. */
size_t px_cache_flush(struct px_cache *c);

/*
 * Remove every object (every variant) of the URL host + path_and_query
 * (host compared case-insensitively, with its port as in the key;
 * path_and_query exactly); host NULL: that path_and_query under every
 * host.  Returns how many.
 */
size_t px_cache_purge(struct px_cache *c, const char *host, const char *path_and_query);

/*
 * Invalidation by an unsafe method (RFC 9111 4.4): remove every object of
 * req's target URI.  The lead calls it when a request with a method other
 * than GET, HEAD, OPTIONS or TRACE got a 2xx or 3xx response; the method is
 * not checked here.  Returns how many.
 */
size_t px_cache_invalidate_uri(struct px_cache *c, const char *req_buf,
                               const struct xlb_h1_head *req);

/* A snapshot of the counters (each read atomically; not one instant). */
void px_cache_get_stats(const struct px_cache *c, struct px_cache_stats *st);

#endif
