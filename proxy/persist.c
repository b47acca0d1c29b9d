// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * persist.c - layer 7 persistence: which real a returning client goes to.
 *
 * Kinds of persistence:
 *   active-cookie  the proxy inserts a cookie NAME=base64url(id || expiry ||
 *                  mac): id the real's 8-byte px_real.id, expiry Unix
 *                  seconds (8 bytes, big-endian), mac the first 16 bytes of
 *                  HMAC-SHA256(node key, service \0 pool \0 id expiry).  The
 *                  id is itself HMAC-SHA256(node key, "real" \0 service \0
 *                  pool \0 real name), so the cookie says nothing about the
 *                  real's address.  A cookie that does not decode, fails the
 *                  MAC, has expired or names no real of the pool is absent.
 *   server-cookie  a table learns the value of the real's own cookie from
 *                  its Set-Cookie fields; a request with a known value goes
 *                  to that real.
 *   source-ip      a table of client addresses masked by netmask4/6.
 *   hash types     hash-cookies (every cookie pair of the Cookie fields in
 *                  order), super-http (User-Agent and Authorization),
 *                  url-hash (the target), host (lowercased, port removed),
 *                  query-item (the value of query item NAME, as sent),
 *                  header (the first field NAME): a weighted Maglev table
 *                  over the reals that are up or drained, so a real going
 *                  down moves only its own clients and a drained real keeps
 *                  them.  Hashes use fixed keys: every node with the same
 *                  config sends a key to the same real.
 * Without the key (no cookie, field or item; an invalid active cookie),
 * fallback: source-ip uses the source-ip table, else the scheduler chooses.
 * A persisted real that is down, halted, passively failed or excluded for
 * this request is replaced by a scheduler choice (the record then names the
 * new real, an active cookie is re-issued); a drained one, or one of weight
 * 0, keeps its clients.  Records expire timeout_ms after their last use.
 *
 * Tables are 8-way set-associative with PX_PT_ENTRIES records, the bucket
 * index a SipHash under a key derived from the node key; a full bucket
 * evicts its least recently used record.  Two threads placing the same new
 * client at once may both choose; the last record stored wins.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb_int.h"
#include "maglev.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Fixed SipHash keys of the hash persistence types and sh/maglev, so that
 * nodes agree ("xlb-px-hash-key!" in ASCII). */
#define HK0 0x78702d786c622d70ull
#define HK1 0x2179656b2d687361ull

/* ---- SHA-256 (FIPS 180-4) and HMAC (RFC 2104) ----------------------- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t ror32(uint32_t x, int n)
{
    return x >> n | x << (32 - n);
}

static void sha_block_c(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, k;

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);

        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));

        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

#if defined(__x86_64__)
/*
 * The same block with the x86 SHA extensions.  The state is kept as the
 * instructions want it: s0 = (A, B, E, F) and s1 = (C, D, G, H), highest
 * lane first.  Each sha256rnds2 does two rounds with the two low words of
 * W + K; the message schedule takes W[t-16..t-13] and W[t-12] through
 * sha256msg1 (the sigma0 terms), adds W[t-7..t-4], and sha256msg2 adds the
 * sigma1 terms of W[t-2], W[t-1] and the two words it has just made.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void sha_block_ni(uint32_t h[8], const uint8_t *p)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
    __m128i t = _mm_loadu_si128((const __m128i *)h);
    __m128i s1 = _mm_loadu_si128((const __m128i *)(h + 4));
    __m128i s0, save0, save1, w[4], m;

    t = _mm_shuffle_epi32(t, 0xb1);             /* B A D C */
    s1 = _mm_shuffle_epi32(s1, 0x1b);           /* H G F E */
    s0 = _mm_alignr_epi8(t, s1, 8);             /* F E B A: ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xf0);          /* H G D C: CDGH */
    save0 = s0;
    save1 = s1;
    for (int i = 0; i < 4; i++)
        w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {
            /* W[4g..4g+3] from the groups g-4 (in w[g & 3]) to g-1 */
            __m128i x = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);

            x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
            w[g & 3] = _mm_sha256msg2_epu32(x, w[(g + 3) & 3]);
        }
        m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)(sha_k + 4 * g)));
        s1 = _mm_sha256rnds2_epu32(s1, s0, m);
        m = _mm_shuffle_epi32(m, 0x0e);
        s0 = _mm_sha256rnds2_epu32(s0, s1, m);
    }
    s0 = _mm_add_epi32(s0, save0);
    s1 = _mm_add_epi32(s1, save1);
    t = _mm_shuffle_epi32(s0, 0x1b);            /* A B E F */
    s1 = _mm_shuffle_epi32(s1, 0xb1);           /* G H C D */
    _mm_storeu_si128((__m128i *)h, _mm_blend_epi16(t, s1, 0xf0));
    _mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(s1, t, 8));
}

static bool cpu_has_sha(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
        return false;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#endif

/* The block function in use: chosen on first use, or by px_sha256_select. */
static void (*_Atomic sha_block_fn)(uint32_t h[8], const uint8_t *p);

int px_sha256_select(int impl)
{
    switch (impl) {
    case PX_SHA_AUTO:
#if defined(__x86_64__)
        sha_block_fn = cpu_has_sha() ? sha_block_ni : sha_block_c;
#else
        sha_block_fn = sha_block_c;
#endif
        return 0;
    case PX_SHA_PORTABLE:
        sha_block_fn = sha_block_c;
        return 0;
    case PX_SHA_CPU:
#if defined(__x86_64__)
        if (cpu_has_sha()) {
            sha_block_fn = sha_block_ni;
            return 0;
        }
#endif
        return -ENOTSUP;
    }
    return -EINVAL;
}

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    if (!sha_block_fn)
        px_sha256_select(PX_SHA_AUTO);
    sha_block_fn(h, p);
}

static void sha_init(struct px_sha256 *s)
{
    static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->n = 0;
}

static void sha_update(struct px_sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;

    s->len += len;
    while (len) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;

        if (s->n == 0 && len >= 64) {
            sha_block(s->h, p);
            take = 64;
        } else {
            memcpy(s->buf + s->n, p, take);
            s->n += (uint32_t)take;
            if (s->n == 64) {
                sha_block(s->h, s->buf);
                s->n = 0;
            }
        }
        p += take;
        len -= take;
    }
}

static void sha_final(struct px_sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;

    s->buf[s->n++] = 0x80;
    if (s->n > 56) {
        memset(s->buf + s->n, 0, 64 - s->n);
        sha_block(s->h, s->buf);
        s->n = 0;
    }
    memset(s->buf + s->n, 0, 56 - s->n);
    for (int i = 0; i < 8; i++)
        s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_block(s->h, s->buf);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* HMAC states after the inner and the outer key block. */
static void hmac_start(const uint8_t key[32], struct px_sha256 *in, struct px_sha256 *out)
{
    uint8_t pad[64];

    memset(pad, 0x36, sizeof(pad));
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    sha_init(in);
    sha_update(in, pad, 64);
    memset(pad, 0x5c, sizeof(pad));
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    sha_init(out);
    sha_update(out, pad, 64);
}

static void hmac_end(struct px_sha256 *in, struct px_sha256 *out, uint8_t mac[32])
{
    uint8_t ih[32];

    sha_final(in, ih);
    sha_update(out, ih, 32);
    sha_final(out, mac);
}

/* HMAC-SHA256 under a 32-byte key of the concatenation of n parts. */
void px_hmac_sha256(const uint8_t key[32], const void *const *parts, const size_t *lens, int n,
                    uint8_t out[32])
{
    struct px_sha256 in, o;

    hmac_start(key, &in, &o);
    for (int i = 0; i < n; i++)
        sha_update(&in, parts[i], lens[i]);
    hmac_end(&in, &o, out);
}

/* ---- small helpers ------------------------------------------------------ */

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define COOKIE_RAW 32           /* id 8, expiry 8, mac 16 */
#define COOKIE_TXT 43           /* base64url of 32 bytes, unpadded */

static void b64u_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = b64u[v >> 18];
        out[o++] = b64u[v >> 12 & 63];
        out[o++] = b64u[v >> 6 & 63];
        out[o++] = b64u[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64u[in[i] >> 2];
        out[o++] = b64u[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

        out[o++] = b64u[v >> 10];
        out[o++] = b64u[v >> 4 & 63];
        out[o++] = b64u[(v & 15) << 2];
    }
    out[o] = '\0';
}

static int b64u_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decode exactly COOKIE_TXT characters into COOKIE_RAW bytes; false on a
 * character outside the alphabet or non-zero unused bits. */
static bool b64u_decode_cookie(const char *s, uint8_t out[COOKIE_RAW])
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < COOKIE_TXT; i++) {
        int v = b64u_val(s[i]);

        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o == COOKIE_RAW && acc == 0;
}

static bool ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static uint64_t rd_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void wr_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Unix seconds for the px_now_ms clock: CLOCK_REALTIME minus
 * CLOCK_MONOTONIC taken once, so moving px_now_offset_ms moves it too. */
static int64_t wall_base_ms;
static pthread_once_t wall_once = PTHREAD_ONCE_INIT;

static void wall_init(void)
{
    struct timespec rt, mt;

    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    wall_base_ms = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * 1000 +
                   ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec) / 1000000;
}

static uint64_t unix_s(uint64_t now_ms)
{
    return (uint64_t)((int64_t)now_ms + wall_base_ms) / 1000u;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Walk the cookie pairs of a Cookie value ("a=1; b=2").  Starting at *pos,
 * finds the next pair, trims it and sets name/value; returns false at the
 * end.  A pair without '=' has an empty name (RFC 6265bis).
 */
static bool next_pair(const char *v, size_t len, size_t *pos, const char **pair, size_t *plen,
                      size_t *eq)
{
    while (*pos < len) {
        size_t s = *pos, e;
        const char *semi = memchr(v + s, ';', len - s);

        e = semi ? (size_t)(semi - v) : len;
        *pos = semi ? e + 1 : len;
        while (s < e && is_ows(v[s]))
            s++;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (s == e)
            continue;
        *pair = v + s;
        *plen = e - s;
        {
            const char *q = memchr(v + s, '=', e - s);

            *eq = q ? (size_t)(q - (v + s)) : SIZE_MAX;
        }
        return true;
    }
    return false;
}

/* The value of the first request cookie named name, trimmed; false when
 * there is none. */
static bool find_cookie(const struct px_reqview *rv, const char *name, size_t nlen,
                        const char **val, size_t *vlen)
{
    const struct xlb_h1_head *h = rv->head;

    for (int i = px_field_find(h, rv->buf, "cookie", 6, 0); i >= 0;
         i = px_field_find(h, rv->buf, "cookie", 6, (uint32_t)i + 1)) {
        const char *v = rv->buf + h->fields[i].value.off, *pair;
        size_t len = h->fields[i].value.len, pos = 0, plen, eq;

        while (next_pair(v, len, &pos, &pair, &plen, &eq)) {
            size_t ne = eq, vs;

            if (eq == SIZE_MAX)
                continue;
            while (ne > 0 && is_ows(pair[ne - 1]))
                ne--;
            if (ne != nlen || memcmp(pair, name, nlen))
                continue;
            vs = eq + 1;
            while (vs < plen && is_ows(pair[vs]))
                vs++;
            *val = pair + vs;
            *vlen = plen - vs;
            return true;
        }
    }
    return false;
}

static bool field_value(const struct px_reqview *rv, const char *name, size_t nlen,
                        const char **val, size_t *vlen)
{
    int i = px_field_find(rv->head, rv->buf, name, nlen, 0);

    if (i < 0)
        return false;
    *val = rv->buf + rv->head->fields[i].value.off;
    *vlen = rv->head->fields[i].value.len;
    return true;
}

/* ---- client addresses --------------------------------------------------- */

/* The client address as 16 bytes (IPv4 and IPv4-mapped IPv6 in the first
 * 4) and its family (4 or 6; 0 for other families); *port in host order. */
static int client_addr(const struct sockaddr_storage *ss, uint8_t a[16], uint16_t *port)
{
    memset(a, 0, 16);
    *port = 0;
    if (!ss)
        return 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

        memcpy(a, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

        *port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
            return 4;
        }
        memcpy(a, &s6->sin6_addr, 16);
        return 6;
    }
    return 0;
}

uint64_t px_hash_client(const struct sockaddr_storage *ss, bool with_port)
{
    uint8_t k[19];
    uint16_t port;
    int fam = client_addr(ss, k, &port);
    size_t n = fam == 6 ? 16 : 4;

    if (with_port) {
        k[n++] = (uint8_t)(port >> 8);
        k[n++] = (uint8_t)port;
    }
    return xlb_maglev_siphash24(HK0, HK1, k, n);
}

/* ---- record tables ------------------------------------------------------ */

static struct px_ptable *pt_new(const uint8_t key[32], uint8_t label, uint32_t timeout_ms)
{
    struct px_ptable *t = calloc(1, sizeof(*t));
    uint32_t buckets = PX_PT_ENTRIES / PX_PT_WAYS;
    uint8_t tk[32];
    const void *parts[2] = { "table", &label };
    const size_t lens[2] = { 5, 1 };

    if (!t)
        return NULL;
    t->ents = calloc((size_t)buckets * PX_PT_WAYS, sizeof(*t->ents));
    if (!t->ents) {
        free(t);
        return NULL;
    }
    t->mask = buckets - 1;
    t->timeout_ms = timeout_ms;
    px_hmac_sha256(key, parts, lens, 2, tk);
    memcpy(&t->k0, tk, 8);
    memcpy(&t->k1, tk + 8, 8);
    for (uint32_t i = 0; i < PX_PT_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    return t;
}

static void pt_free(struct px_ptable *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < PX_PT_LOCKS; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t->ents);
    free(t);
}

static bool pt_live(const struct px_ptable *t, const struct px_pt_ent *e, uint64_t now)
{
    return e->used && now - e->last_ms < t->timeout_ms;
}

/* The real of key, its record touched; false when none is live. */
static bool pt_get(struct px_ptable *t, const uint8_t key[16], uint64_t now, uint32_t *real)
{
    uint32_t b = (uint32_t)xlb_maglev_siphash24(t->k0, t->k1, key, 16) & t->mask;
    struct px_pt_ent *e = &t->ents[(size_t)b * PX_PT_WAYS];
    pthread_mutex_t *l = &t->locks[b % PX_PT_LOCKS];
    bool found = false;

    pthread_mutex_lock(l);
    for (int w = 0; w < PX_PT_WAYS; w++)
        if (pt_live(t, &e[w], now) && !memcmp(e[w].key, key, 16)) {
            e[w].last_ms = now;
            *real = e[w].real;
            found = true;
            break;
        }
    pthread_mutex_unlock(l);
    return found;
}

/* Record key -> real: the same key's record, else a free or expired one,
 * else the bucket's least recently used. */
static void pt_put(struct px_ptable *t, const uint8_t key[16], uint64_t now, uint32_t real)
{
    uint32_t b = (uint32_t)xlb_maglev_siphash24(t->k0, t->k1, key, 16) & t->mask;
    struct px_pt_ent *e = &t->ents[(size_t)b * PX_PT_WAYS], *same = NULL, *dead = NULL, *lru = NULL;
    pthread_mutex_t *l = &t->locks[b % PX_PT_LOCKS];
    struct px_pt_ent *slot;

    pthread_mutex_lock(l);
    for (int w = 0; w < PX_PT_WAYS && !same; w++) {
        if (e[w].used && !memcmp(e[w].key, key, 16))
            same = &e[w];
        else if (!pt_live(t, &e[w], now))
            dead = dead ? dead : &e[w];
        else if (!lru || e[w].last_ms < lru->last_ms)
            lru = &e[w];
    }
    slot = same ? same : dead ? dead : lru;
    memcpy(slot->key, key, 16);
    slot->real = real;
    slot->last_ms = now;
    slot->used = 1;
    pthread_mutex_unlock(l);
}

/* ---- set-up ------------------------------------------------------------- */

int px_persist_init(struct px_pool *pool, const uint8_t key[32])
{
    struct px_lb_pool *lb = pool->lb;
    const struct xlb_cfg_persistence *p = pool->persist;
    const char *svc = pool->svc->name;
    size_t sl = strnlen(svc, XLB_NAME_LEN), pl = strnlen(pool->name, XLB_NAME_LEN);
    static const uint8_t zero = 0;

    pthread_once(&wall_once, wall_init);
    for (int i = 0; i < pool->n_reals; i++) {
        struct px_real *r = &pool->reals[i];
        const void *parts[6] = { "real", &zero, svc, &zero, pool->name, &zero };
        const size_t lens[6] = { 4, 1, sl, 1, pl, 1 };
        const void *all[7];
        size_t all_l[7];
        uint8_t mac[32];

        memcpy(all, parts, sizeof(parts));
        memcpy(all_l, lens, sizeof(lens));
        all[6] = r->name;
        all_l[6] = strnlen(r->name, XLB_NAME_LEN);
        px_hmac_sha256(key, all, all_l, 7, mac);
        memcpy(r->id, mac, 8);
    }
    lb->ptype = p ? p->type : XLB_PERSIST_NONE;
    if (lb->ptype == XLB_PERSIST_NONE)
        return 0;
    lb->timeout_ms = p->timeout_ms ? p->timeout_ms : 300000;
    lb->netmask4 = p->netmask4 && p->netmask4 <= 32 ? p->netmask4 : 32;
    lb->netmask6 = p->netmask6 && p->netmask6 <= 128 ? p->netmask6 : 128;
    lb->fallback_src = p->fallback == XLB_PERSIST_SOURCE_IP;
    snprintf(lb->name, sizeof(lb->name), "%s",
             p->name[0] || lb->ptype != XLB_PERSIST_ACTIVE_COOKIE ? p->name
                                                                  : XLB_CFG_COOKIE_DEFAULT);
    lb->name_len = strlen(lb->name);
    if (lb->ptype == XLB_PERSIST_SOURCE_IP || lb->fallback_src) {
        lb->src = pt_new(key, 's', lb->timeout_ms);
        if (!lb->src)
            return -ENOMEM;
    }
    if (lb->ptype == XLB_PERSIST_SERVER_COOKIE) {
        lb->srv = pt_new(key, 'c', lb->timeout_ms);
        if (!lb->srv)
            return -ENOMEM;
    }
    if (lb->ptype == XLB_PERSIST_ACTIVE_COOKIE) {
        hmac_start(key, &lb->mac_in, &lb->mac_out);
        sha_update(&lb->mac_in, svc, sl);
        sha_update(&lb->mac_in, &zero, 1);
        sha_update(&lb->mac_in, pool->name, pl);
        sha_update(&lb->mac_in, &zero, 1);
        snprintf(lb->cookie_attrs, sizeof(lb->cookie_attrs), "%s%s%s%s",
                 p->cookie_secure ? "; Secure" : "", p->cookie_httponly ? "; HttpOnly" : "",
                 p->cookie_samesite[0] ? "; SameSite=" : "", p->cookie_samesite);
    }
    return 0;
}

void px_persist_free(struct px_pool *pool)
{
    pt_free(pool->lb->src);
    pt_free(pool->lb->srv);
    pool->lb->src = pool->lb->srv = NULL;
}

/* ---- active cookies ----------------------------------------------------- */

static void cookie_mac(const struct px_lb_pool *lb, const uint8_t idexp[16], uint8_t mac[32])
{
    struct px_sha256 in = lb->mac_in, out = lb->mac_out;

    sha_update(&in, idexp, 16);
    hmac_end(&in, &out, mac);
}

/* The real a valid cookie value names, with its expiry; NULL when the
 * value is not a valid, unexpired cookie of this pool. */
static struct px_real *cookie_real(struct px_pool *pool, const char *v, size_t len,
                                   uint64_t now_s, uint64_t *expiry)
{
    uint8_t raw[COOKIE_RAW], mac[32];

    if (len != COOKIE_TXT || !b64u_decode_cookie(v, raw))
        return NULL;
    *expiry = rd_be64(raw + 8);
    if (*expiry <= now_s)
        return NULL;
    cookie_mac(pool->lb, raw, mac);
    if (!ct_equal(mac, raw + 16, 16))
        return NULL;
    for (int i = 0; i < pool->n_reals; i++)
        if (!memcmp(pool->reals[i].id, raw, 8))
            return &pool->reals[i];
    return NULL;
}

static void cookie_issue(struct px_pool *pool, const struct px_real *r, uint64_t now_s,
                         struct px_choice *out)
{
    struct px_lb_pool *lb = pool->lb;
    uint32_t age = lb->timeout_ms / 1000u;
    uint8_t raw[COOKIE_RAW], mac[32];
    char txt[COOKIE_TXT + 1];
    int n;

    memcpy(raw, r->id, 8);
    wr_be64(raw + 8, now_s + age);
    cookie_mac(lb, raw, mac);
    memcpy(raw + 16, mac, 16);
    b64u_encode(raw, sizeof(raw), txt);
    {
        /* NAME=VALUE; Path=/; Max-Age=AGE ATTRS, without printf on the
         * request path; name is at most XLB_CFG_STR_MAX - 1 bytes and
         * attrs 95, so it always fits */
        char num[12], *o = out->cookie;
        size_t nl = strlen(lb->name), al = strlen(lb->cookie_attrs), dl = 0;

        do
            num[sizeof(num) - 1 - dl++] = (char)('0' + age % 10);
        while ((age /= 10) && dl < sizeof(num));
        n = (int)(nl + 1 + COOKIE_TXT + 18 + dl + al);
        out->set_cookie = (size_t)n < sizeof(out->cookie);
        if (!out->set_cookie)
            return;
        memcpy(o, lb->name, nl), o += nl;
        *o++ = '=';
        memcpy(o, txt, COOKIE_TXT), o += COOKIE_TXT;
        memcpy(o, "; Path=/; Max-Age=", 18), o += 18;
        memcpy(o, num + sizeof(num) - dl, dl), o += dl;
        memcpy(o, lb->cookie_attrs, al + 1);
    }
}

/* ---- keys --------------------------------------------------------------- */

static uint64_t hash_more(uint64_t h, const void *p, size_t n)
{
    return xlb_maglev_siphash24(HK0 ^ h, HK1, p, n);
}

/* The query item name's value (as sent); false when the target has no such
 * item. */
static bool query_item(const struct px_reqview *rv, const char *name, size_t nlen,
                       const char **val, size_t *vlen)
{
    const char *t = rv->buf + rv->head->target.off, *end = t + rv->head->target.len;
    const char *q = memchr(t, '?', (size_t)(end - t)), *hash;

    if (!q || !nlen)
        return false;
    hash = memchr(q, '#', (size_t)(end - q));
    if (hash)
        end = hash;
    for (const char *s = q + 1; s <= end;) {
        const char *amp = memchr(s, '&', (size_t)(end - s)), *e = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(e - s));
        const char *ne = eq ? eq : e;

        if ((size_t)(ne - s) == nlen && !memcmp(s, name, nlen)) {
            *val = eq ? eq + 1 : e;
            *vlen = (size_t)(e - *val);
            return true;
        }
        if (!amp)
            break;
        s = amp + 1;
    }
    return false;
}

/* The hash of the request's persistence key; false when it has none. */
static bool hash_key(struct px_pool *pool, const struct px_reqview *rv, uint64_t *h)
{
    struct px_lb_pool *lb = pool->lb;
    const char *v, *v2;
    size_t n, n2;

    switch (lb->ptype) {
    case XLB_PERSIST_HASH_COOKIES: {
        const struct xlb_h1_head *hd = rv->head;
        bool any = false;

        *h = 0;
        for (int i = px_field_find(hd, rv->buf, "cookie", 6, 0); i >= 0;
             i = px_field_find(hd, rv->buf, "cookie", 6, (uint32_t)i + 1)) {
            size_t pos = 0, plen, eq;
            const char *pair;

            v = rv->buf + hd->fields[i].value.off;
            while (next_pair(v, hd->fields[i].value.len, &pos, &pair, &plen, &eq)) {
                *h = hash_more(*h, pair, plen);
                any = true;
            }
        }
        return any;
    }
    case XLB_PERSIST_SUPER_HTTP: {
        bool ua = field_value(rv, "user-agent", 10, &v, &n);
        bool au = field_value(rv, "authorization", 13, &v2, &n2);

        if (!ua && !au)
            return false;
        *h = hash_more(hash_more(ua ? 1 : 2, ua ? v : "", ua ? n : 0), au ? v2 : "",
                       au ? n2 : 0);
        return true;
    }
    case XLB_PERSIST_URL_HASH:
        *h = hash_more(0, rv->buf + rv->head->target.off, rv->head->target.len);
        return true;
    case XLB_PERSIST_HOST: {
        char low[256];
        const char *e;

        if (!field_value(rv, "host", 4, &v, &n))
            return false;
        e = v < v + n && *v == '[' ? memchr(v, ']', n) : NULL;
        e = e ? e + 1 : memchr(v, ':', n);
        if (e)
            n = (size_t)(e - v);
        *h = 0;
        for (size_t off = 0; off < n; off += sizeof(low)) {
            size_t m = n - off < sizeof(low) ? n - off : sizeof(low);

            for (size_t j = 0; j < m; j++) {
                char c = v[off + j];

                low[j] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
            }
            *h = hash_more(*h, low, m);
        }
        return n > 0;
    }
    case XLB_PERSIST_QUERY_ITEM:
        if (!query_item(rv, lb->name, lb->name_len, &v, &n))
            return false;
        *h = hash_more(0, v, n);
        return true;
    case XLB_PERSIST_HEADER:
        if (!lb->name_len || !field_value(rv, lb->name, lb->name_len, &v, &n))
            return false;
        *h = hash_more(0, v, n);
        return true;
    default:
        return false;
    }
}

/* A real of the persistence Maglev table for hash h that may keep the
 * client; a few derived probes when the owner cannot; NULL otherwise. */
static struct px_real *hash_real(struct px_pool *pool, uint64_t h, const uint64_t *exclude,
                                 uint64_t now)
{
    struct px_lb_pool *lb = pool->lb;
    uint64_t x = h;

    for (int k = 0; k <= 8; k++) {
        uint32_t i = atomic_load_explicit(&lb->pmag[x % lb->ring], memory_order_relaxed);

        if (i < (uint32_t)pool->n_reals && px_lb_keep_ok(&pool->reals[i], exclude, now))
            return &pool->reals[i];
        x = px_mix64(h + (uint64_t)k + 1);
    }
    return NULL;
}

/* ---- source-ip records -------------------------------------------------- */

static void src_key(const struct px_lb_pool *lb, const struct sockaddr_storage *ss,
                    uint8_t key[16])
{
    uint8_t a[16];
    uint16_t port;
    int fam = client_addr(ss, a, &port);
    unsigned plen = fam == 4 ? lb->netmask4 : lb->netmask6, bytes = fam == 4 ? 4 : 16;
    uint8_t *k = key;

    memset(key, 0, 16);
    if (fam == 4) {
        /* IPv4 as the IPv4-mapped IPv6 address, which no IPv6 client has */
        key[10] = key[11] = 0xff;
        k = key + 12;
    }
    for (unsigned b = 0; b < bytes; b++) {
        unsigned keep = plen >= 8 * (b + 1) ? 8 : plen > 8 * b ? plen - 8 * b : 0;

        k[b] = a[b] & (uint8_t)(0xff00u >> keep);
    }
}

/* Place the client through the source-ip table: its record's real when it
 * may keep the client, else a scheduler choice that the record then names. */
static void src_pick(struct px_pool *pool, const struct px_reqview *rv, const uint64_t *exclude,
                     struct px_choice *out)
{
    struct px_lb_pool *lb = pool->lb;
    uint8_t key[16];
    uint32_t i;

    src_key(lb, rv->client, key);
    if (pt_get(lb->src, key, rv->now_ms, &i) && i < (uint32_t)pool->n_reals &&
        px_lb_keep_ok(&pool->reals[i], exclude, rv->now_ms)) {
        out->real = &pool->reals[i];
        out->persisted = true;
        return;
    }
    out->real = px_lb_schedule(pool, rv, exclude);
    if (out->real)
        pt_put(lb->src, key, rv->now_ms, out->real->index);
}

/* ---- server cookies ----------------------------------------------------- */

static void srv_key(const char *v, size_t n, uint8_t key[16])
{
    uint64_t a = xlb_maglev_siphash24(HK0, HK1, v, n), b = xlb_maglev_siphash24(HK1, HK0, v, n);

    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

void px_persist_learn(struct px_pool *pool, struct px_real *r, const char *buf,
                      const struct xlb_h1_head *resp, uint64_t now_ms)
{
    struct px_lb_pool *lb = pool->lb;

    if (!lb->name_len)
        return;
    for (int i = px_field_find(resp, buf, "set-cookie", 10, 0); i >= 0;
         i = px_field_find(resp, buf, "set-cookie", 10, (uint32_t)i + 1)) {
        const char *v = buf + resp->fields[i].value.off, *pair;
        size_t len = resp->fields[i].value.len, pos = 0, plen, eq, ne, vs;
        uint8_t key[16];

        /* only the first pair is the cookie; the rest are attributes */
        if (!next_pair(v, len, &pos, &pair, &plen, &eq) || eq == SIZE_MAX)
            continue;
        for (ne = eq; ne > 0 && is_ows(pair[ne - 1]); ne--)
            ;
        if (ne != lb->name_len || memcmp(pair, lb->name, ne))
            continue;
        for (vs = eq + 1; vs < plen && is_ows(pair[vs]); vs++)
            ;
        if (vs == plen)
            continue;   /* an empty value deletes the cookie: nothing to learn */
        srv_key(pair + vs, plen - vs, key);
        pt_put(lb->srv, key, now_ms, r->index);
    }
}

/* ---- the pick ----------------------------------------------------------- */

void px_persist_pick(struct px_pool *pool, const struct px_reqview *rv, const uint64_t *exclude,
                     struct px_choice *out)
{
    struct px_lb_pool *lb = pool->lb;
    uint64_t now = rv->now_ms;
    const char *v;
    size_t n;

    switch (lb->ptype) {
    case XLB_PERSIST_SOURCE_IP:
        src_pick(pool, rv, exclude, out);
        return;
    case XLB_PERSIST_ACTIVE_COOKIE: {
        uint64_t now_s = unix_s(now), exp = 0;
        struct px_real *r = NULL;

        if (find_cookie(rv, lb->name, lb->name_len, &v, &n))
            r = cookie_real(pool, v, n, now_s, &exp);
        if (r && px_lb_keep_ok(r, exclude, now)) {
            out->real = r;
            out->persisted = true;
            if ((exp - now_s) * 1000u < lb->timeout_ms / 2)
                cookie_issue(pool, r, now_s, out);
            return;
        }
        if (!r && lb->fallback_src)
            src_pick(pool, rv, exclude, out);
        else
            out->real = px_lb_schedule(pool, rv, exclude);
        if (out->real)
            cookie_issue(pool, out->real, now_s, out);
        return;
    }
    case XLB_PERSIST_SERVER_COOKIE: {
        uint8_t key[16];
        uint32_t i;

        if (lb->name_len && find_cookie(rv, lb->name, lb->name_len, &v, &n) && n) {
            srv_key(v, n, key);
            if (pt_get(lb->srv, key, now, &i)) {
                if (i < (uint32_t)pool->n_reals && px_lb_keep_ok(&pool->reals[i], exclude, now)) {
                    out->real = &pool->reals[i];
                    out->persisted = true;
                    return;
                }
                /* the record now names the replacement */
                out->real = px_lb_schedule(pool, rv, exclude);
                if (out->real)
                    pt_put(lb->srv, key, now, out->real->index);
                return;
            }
        }
        if (lb->fallback_src)
            src_pick(pool, rv, exclude, out);
        else
            out->real = px_lb_schedule(pool, rv, exclude);
        return;
    }
    default: {
        uint64_t h;

        if (hash_key(pool, rv, &h)) {
            out->real = hash_real(pool, h, exclude, now);
            if (out->real) {
                out->persisted = true;
                return;
            }
            out->real = px_lb_schedule(pool, rv, exclude);
            return;
        }
        if (lb->fallback_src)
            src_pick(pool, rv, exclude, out);
        else
            out->real = px_lb_schedule(pool, rv, exclude);
        return;
    }
    }
}
