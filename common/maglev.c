// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Weighted Maglev table population
 * ================================
 *
 * The table has m entries (m prime). A flow is sent to table[hash % m], so a
 * backend's traffic share is the fraction of entries holding its value, and a
 * change of configuration breaks exactly the flows whose entry changed owner.
 * We want three things: shares that follow the weights, few changed entries
 * when a backend comes or goes, and the same table on every node that has the
 * same configuration.
 *
 * Preferences. As in Maglev, every backend ranks all m entries: with h1 and
 * h2 two 64-bit SipHash-2-4 values of its identity under fixed keys,
 *     offset = h1 % m,  skip = h2 % (m - 1) + 1,
 *     pref[k] = (offset + k * skip) % m,   k = 0, 1, ..., m - 1.
 * Because m is prime and 0 < skip < m, pref[] visits every entry exactly
 * once. Preferences depend on the backend's own identity only.
 *
 * Quotas. With W the sum of weights, backend i's exact share is
 * s_i = m * w_i / W entries. It may own floor(s_i) entries, plus one "spare"
 * entry if s_i is not an integer. Only m - sum(floor(s_i)) spare entries
 * exist, fewer than the backends that could take one, so spares go to
 * whichever backends reach for their extra entry first. Every backend ends
 * with floor(s_i) or ceil(s_i) entries: less than one entry from its share,
 * for any weights and any number of backends.
 *
 * Population: the first backend to look at an entry wins it. Classic Maglev
 * lets backends take turns, each turn claiming the next free entry of the
 * backend's list. Here instead each backend walks its list at a steady speed
 * proportional to its weight, looking at pref[k] at time (2k + 1) / (2 w_i),
 * occupied or not. Looks are processed in time order; a look at a free entry
 * claims it if the backend still has room under its quota. A backend stops
 * once it has no room left. Backends fill at about the same moment, because
 * speed and quota are both proportional to weight.
 *
 * Why not take turns: with turns, one claim more or less for a backend (say,
 * because a removed backend no longer took an entry first) shifts all its
 * later claims by one turn, and the shift spreads to everyone it then beats
 * or loses to. With steady walking, a backend's looks happen at fixed times
 * whatever the others do. Removing a backend frees its entries, which go to
 * the next backends looking at them, and only backends whose quota thereby
 * fills one look earlier give up a late entry. On our measurements this moves
 * roughly half as many foreign entries as turn-taking Maglev does. It is
 * still not minimal. Most extra moves happen among the last few percent of
 * claims, when few entries are free and each backend has about one entry of
 * room left, and they grow as m / N shrinks (about 0.3/N of the other entries
 * with 100 backends in 65537 entries, about 3/N with 1000).
 *
 * Scheduling. Backends of the same speed look at the same moments, so they
 * form a speed class with a single schedule. Time is cut into rounds of 1/Q,
 * Q being the smallest power of two at least the largest weight, so a class
 * looks at most once per round; a ring of per-round buckets holds each class
 * until its next look. Within a round, classes go in the order of the exact
 * time of their look, the faster class first on a tie, and the members of a
 * class go in the order of h1. The work is proportional to the number of
 * looks, about m ln m in all. To keep the ring short, backends lighter than
 * 1/1024 of the heaviest walk at that speed anyway: speed decides which
 * entries a backend gets, never how many.
 *
 * End game. Once few entries are free, nearly every look lands on an owned
 * entry. Then, for each backend with room, the index of its first look at a
 * free entry is computed directly (entry e is (e - cur) * skip^-1 mod m looks
 * ahead of entry cur) and the earliest such look is the next claim. That is
 * exactly what walking would do, in fewer steps.
 *
 * Order independence. Everything above is a function of the set of
 * (identity, weight, value) triples: preferences come from the identity,
 * quotas and speeds from the weights, and every tie is broken by the speed
 * and then the hash order of the identities, with the identity bytes as the
 * last resort. The input array order is never consulted. Two active backends
 * with the same identity would make that order ambiguous, so they are
 * rejected.
 *
 * Termination. At any moment, free entries = (entries still missing below
 * the floors) + (spares not yet taken). So while an entry is free, some
 * backend is below its floor, or a spare is left and a backend is at its
 * floor with room for one. That backend looks at every entry within m looks
 * and takes the free one. When a single backend has room left, it would
 * take every free entry, so those are given to it at once.
 */
#include "maglev.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Keys of the two identity hashes: arbitrary, but fixed for good. Changing
 * them reshuffles every table, and nodes running different versions would
 * then send the same flow to different reals. */
#define MG_K0_OFFSET 0x6d676c762d6f6666ull
#define MG_K1_OFFSET 0x3130302d626c782dull
#define MG_K0_SKIP   0x6d676c762d736b70ull
#define MG_K1_SKIP   0x3130302d626c782eull

/* Slowest walking speed relative to the heaviest backend; see the essay. */
#define MG_SPEED_RATIO_MAX 1024u

#define MG_NIL UINT32_MAX

/* ---- SipHash-2-4 ---- */

static inline uint64_t rotl64(uint64_t x, unsigned int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define SIPROUND(v0, v1, v2, v3)                                                    \
    do {                                                                            \
        v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);               \
        v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                                    \
        v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                                    \
        v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);               \
    } while (0)

uint64_t xlb_maglev_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
    uint64_t v3 = k1 ^ 0x7465646279746573ull;
    size_t left = len;
    uint64_t w;

    for (; left >= 8; left -= 8, p += 8) {
        w = load_le64(p);
        v3 ^= w;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= w;
    }
    /* Last block: the remaining bytes, and the length's low byte on top. */
    w = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < left; i++)
        w |= (uint64_t)p[i] << (8 * i);
    v3 ^= w;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= w;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

int xlb_is_prime(uint32_t m)
{
    if (m < 2)
        return 0;
    if (m < 4)
        return 1;
    if (m % 2 == 0 || m % 3 == 0)
        return 0;
    /* Every prime above 3 is 6k - 1 or 6k + 1. */
    for (uint64_t d = 5; d * d <= m; d += 6)
        if (m % d == 0 || m % (d + 2) == 0)
            return 0;
    return 1;
}

/* ---- ordering of the active backends ---- */

struct mg_key {
    uint64_t h1, h2;
    const struct xlb_maglev_backend *b;
};

static int mg_key_cmp(const void *pa, const void *pb)
{
    const struct mg_key *a = pa, *b = pb;
    size_t len;
    int c;

    if (a->h1 != b->h1)
        return a->h1 < b->h1 ? -1 : 1;
    if (a->h2 != b->h2)
        return a->h2 < b->h2 ? -1 : 1;
    if (a->b->id_len != b->b->id_len)
        return a->b->id_len < b->b->id_len ? -1 : 1;
    len = a->b->id_len;
    c = len ? memcmp(a->b->id, b->b->id, len) : 0;
    return c;
}

/* ---- population ---- */

/*
 * Backends walking at the same speed look at the same moments, so they share
 * one schedule: a speed class. Each class lists its members in hash order in
 * its slice of ord[]; the ring of rounds holds classes.
 */
struct mg_member {
    uint32_t cur;       /* entry of the next look */
    uint32_t skip;
    uint32_t cnt;       /* entries owned */
    uint32_t lo;        /* floor of the share */
    uint32_t cap;       /* lo, or lo + 1 if the share is not an integer */
    uint32_t value;
};

struct mg_class {
    uint64_t due;       /* round of the next look */
    uint64_t rem;       /* the look happens rem / div of a round after due */
    uint64_t rem_step;  /* looks are due_step + rem_step / div rounds apart */
    uint64_t div;
    uint64_t k;         /* index of the next look in each member's list */
    uint32_t due_step;
    uint32_t speed;
    uint32_t first;     /* members are ord[first .. first + n - 1] */
    uint32_t n;
    uint32_t link;      /* next class in the same ring bucket */
};

struct mg_pop {
    uint32_t *table;
    uint32_t m;
    struct mg_member *mb;   /* one per active backend */
    uint32_t *ord;      /* member indexes by class, in each class's look order */
    uint32_t nmemb;
    struct mg_class *cls;
    uint32_t ncls;
    uint64_t *used;     /* bit per entry: 1 = owned */
    uint32_t filled;
    uint32_t spares;    /* spare entries not yet taken */
    uint32_t n_below;   /* members below their floor */
    uint32_t n_at_lo;   /* members at their floor that may take a spare */
    /* ring of rounds: bucket r & mask holds the classes due at round r */
    uint32_t *head;
    uint64_t *busy;     /* bit per bucket: not empty */
    uint32_t mask;
    uint32_t *due_now;  /* scratch: classes of the current round */
};

static inline bool mg_has_room(const struct mg_pop *p, const struct mg_member *mb)
{
    return mb->cnt < mb->lo || (mb->cnt < mb->cap && p->spares);
}

static inline uint32_t mg_with_room(const struct mg_pop *p)
{
    return p->n_below + (p->spares ? p->n_at_lo : 0);
}

static void mg_enqueue(struct mg_pop *p, uint32_t c)
{
    uint32_t b = (uint32_t)(p->cls[c].due & p->mask);

    /* Order inside a bucket does not matter: a round is sorted before use. */
    p->cls[c].link = p->head[b];
    p->head[b] = c;
    p->busy[b / 64] |= 1ull << (b % 64);
}

/* Bucket of the earliest round >= r that has classes; the ring is not empty.
 * Every class is due less than one ring length after the current round, so
 * circular bucket order from r is round order. */
static uint32_t mg_next_busy(const struct mg_pop *p, uint64_t r, uint64_t *round)
{
    uint32_t start = (uint32_t)(r & p->mask), words = (p->mask + 1) / 64;
    uint32_t wi = start / 64, b;
    uint64_t bits = p->busy[wi] & (~0ull << (start % 64));

    /* After words steps wi is back at the start word, read whole: its bits
     * below start are the rounds that wrapped around. */
    for (uint32_t k = 0; !bits && k < words; k++) {
        wi = (wi + 1) % words;
        bits = p->busy[wi];
    }
    b = wi * 64 + (uint32_t)__builtin_ctzll(bits);
    *round = r + ((b - start) & p->mask);
    return b;
}

/* Does class a look before class b? By exact time (2k + 1) / (2 speed),
 * then the faster class first. Speeds are distinct between classes. */
static bool mg_class_before(const struct mg_class *a, const struct mg_class *b)
{
    unsigned __int128 ta = (unsigned __int128)(2 * a->k + 1) * b->speed;
    unsigned __int128 tb = (unsigned __int128)(2 * b->k + 1) * a->speed;

    if (ta != tb)
        return ta < tb;
    return a->speed > b->speed;
}

static inline void mg_claim(struct mg_pop *p, struct mg_member *mb, uint32_t e)
{
    p->used[e / 64] |= 1ull << (e % 64);
    p->table[e] = mb->value;
    p->filled++;
    if (mb->cnt++ < mb->lo) {
        if (mb->cnt == mb->lo) {
            p->n_below--;
            if (mb->cap > mb->lo)
                p->n_at_lo++;
        }
    } else {
        p->spares--;
        p->n_at_lo--;
    }
}

/* The one member with room takes every free entry: it would find them all. */
static void mg_finish_single(struct mg_pop *p)
{
    const struct mg_member *mb = p->mb;
    uint32_t words = (p->m + 63) / 64;

    while (!mg_has_room(p, mb))
        mb++;
    for (uint32_t wi = 0; wi < words; wi++) {
        uint64_t freebits = ~p->used[wi];

        while (freebits) {
            uint32_t e = wi * 64 + (uint32_t)__builtin_ctzll(freebits);

            if (e >= p->m)
                break;
            freebits &= freebits - 1;
            p->table[e] = mb->value;
        }
    }
    p->filled = p->m;
}

/* One look for each member of class c with room, in the class's order.
 * Members left without room are dropped; the others keep their order. */
static void mg_class_looks(struct mg_pop *p, struct mg_class *c)
{
    uint32_t *ord = p->ord + c->first;
    uint32_t keep = 0, m = p->m;

    for (uint32_t x = 0; x < c->n; x++) {
        struct mg_member *mb = &p->mb[ord[x]];
        uint32_t e = mb->cur;

        if (!mg_has_room(p, mb))    /* spares ran out while it waited */
            continue;
        /* e + skip may not fit in 32 bits when m > 2^31 */
        mb->cur = e >= m - mb->skip ? e - (m - mb->skip) : e + mb->skip;
        if (!(p->used[e / 64] & (1ull << (e % 64)))) {
            mg_claim(p, mb, e);
            if (p->filled == m)
                return;
            if (!mg_has_room(p, mb))
                continue;
        }
        ord[keep++] = ord[x];
    }
    c->n = keep;
    c->k++;
    c->due += c->due_step;
    c->rem += c->rem_step;
    if (c->rem >= c->div) {
        c->rem -= c->div;
        c->due++;
    }
}

/*
 * End game. Once few entries are free, almost every look lands on an owned
 * entry. Instead of walking, compute for every member with room the index of
 * its first look at a still-free entry: with inv = skip^-1 mod m, entry e is
 * (e - cur) * inv mod m looks ahead. The earliest of these looks in the
 * usual order (exact time, faster class, class order) is the next claim.
 * That is what walking would do, so the table is the same; it is only
 * cheaper when few entries are free and few members have room.
 */
#ifndef MG_ENDGAME_WORK
#define MG_ENDGAME_WORK 32768u
#endif

struct mg_cand {
    struct mg_member *mb;
    uint64_t k0;        /* the class's next look index when the end game began */
    uint32_t speed;
    uint32_t pos;       /* position in the class order */
    uint32_t inv;       /* skip^-1 mod m */
    uint32_t d;         /* first look at a free entry is look k0 + d ... */
    uint32_t e;         /* ... and it looks at entry e */
};

static uint32_t mg_inverse(uint32_t a, uint32_t m)
{
    int64_t t = 0, nt = 1, r = m, nr = a;

    while (nr) {
        int64_t qt = r / nr, tmp;

        tmp = t - qt * nt; t = nt; nt = tmp;
        tmp = r - qt * nr; r = nr; nr = tmp;
    }
    return (uint32_t)(t < 0 ? t + m : t);
}

static void mg_cand_aim(struct mg_cand *c, const uint32_t *free_e, uint32_t nfree, uint32_t m)
{
    uint32_t cur = c->mb->cur;

    c->d = UINT32_MAX;
    for (uint32_t i = 0; i < nfree; i++) {
        uint32_t ahead = free_e[i] >= cur ? free_e[i] - cur : m - (cur - free_e[i]);
        uint32_t d = (uint32_t)((uint64_t)ahead * c->inv % m);

        if (d < c->d) {
            c->d = d;
            c->e = free_e[i];
        }
    }
}

static bool mg_cand_before(const struct mg_cand *a, const struct mg_cand *b)
{
    unsigned __int128 ta = (unsigned __int128)(2 * (a->k0 + a->d) + 1) * b->speed;
    unsigned __int128 tb = (unsigned __int128)(2 * (b->k0 + b->d) + 1) * a->speed;

    if (ta != tb)
        return ta < tb;
    if (a->speed != b->speed)
        return a->speed > b->speed;
    return a->pos < b->pos;
}

/* Returns false, doing nothing, when the end game would cost too much yet. */
static bool mg_endgame(struct mg_pop *p)
{
    uint32_t nfree = p->m - p->filled, ncand = 0, words = (p->m + 63) / 64;
    /* Each claim re-aims the claimer and scans the others: about
     * nfree * (nfree + members with room) steps in all. */
    uint64_t work = (uint64_t)nfree * (nfree + mg_with_room(p));
    struct mg_cand *cand;
    uint32_t *free_e;

    if (work > MG_ENDGAME_WORK)
        return false;
    cand = malloc(mg_with_room(p) * sizeof(*cand));
    free_e = malloc(nfree * sizeof(*free_e));
    if (!cand || !free_e) {     /* walking on is just slower */
        free(cand);
        free(free_e);
        return false;
    }
    nfree = 0;
    for (uint32_t wi = 0; wi < words; wi++) {
        uint64_t freebits = ~p->used[wi];

        while (freebits) {
            uint32_t e = wi * 64 + (uint32_t)__builtin_ctzll(freebits);

            if (e >= p->m)
                break;
            freebits &= freebits - 1;
            free_e[nfree++] = e;
        }
    }
    for (uint32_t c = 0; c < p->ncls; c++) {
        const struct mg_class *cl = &p->cls[c];

        for (uint32_t x = 0; x < cl->n; x++) {
            struct mg_member *mb = &p->mb[p->ord[cl->first + x]];

            if (!mg_has_room(p, mb))
                continue;
            cand[ncand] = (struct mg_cand){ .mb = mb, .k0 = cl->k, .speed = cl->speed,
                                            .pos = x, .inv = mg_inverse(mb->skip, p->m) };
            mg_cand_aim(&cand[ncand], free_e, nfree, p->m);
            ncand++;
        }
    }

    while (nfree) {
        uint32_t best = 0, e, keep = 0;

        for (uint32_t i = 1; i < ncand; i++)
            if (mg_cand_before(&cand[i], &cand[best]))
                best = i;
        e = cand[best].e;
        mg_claim(p, cand[best].mb, e);
        for (uint32_t i = 0; i < nfree; i++) {
            if (free_e[i] == e) {
                free_e[i] = free_e[--nfree];
                break;
            }
        }
        /* Drop members out of room (the claimer, or all at their floor when
         * the last spare went); re-aim those that were aiming at e. */
        for (uint32_t i = 0; i < ncand; i++) {
            if (!mg_has_room(p, cand[i].mb))
                continue;
            cand[keep] = cand[i];
            if (cand[keep].e == e && nfree)
                mg_cand_aim(&cand[keep], free_e, nfree, p->m);
            keep++;
        }
        ncand = keep;
    }
    free(cand);
    free(free_e);
    return true;
}

static void mg_populate(struct mg_pop *p)
{
    uint64_t r = 0;

    if (p->ncls == 1) {
        /* Equal speeds, the common case: every round is this class's. */
        while (p->filled < p->m) {
            if (mg_with_room(p) == 1) {
                mg_finish_single(p);
                return;
            }
            if (p->m - p->filled <= MG_ENDGAME_WORK && mg_endgame(p))
                return;
            mg_class_looks(p, &p->cls[0]);
        }
        return;
    }
    for (uint32_t c = 0; c < p->ncls; c++)
        mg_enqueue(p, c);

    while (p->filled < p->m) {
        uint32_t b, c, nd = 0;

        if (mg_with_room(p) == 1) {
            mg_finish_single(p);
            return;
        }
        if (p->m - p->filled <= MG_ENDGAME_WORK && mg_endgame(p))
            return;
        b = mg_next_busy(p, r, &r);
        for (c = p->head[b]; c != MG_NIL; c = p->cls[c].link) {
            /* insertion sort: a round rarely holds more than a few classes */
            uint32_t at = nd++;

            while (at && mg_class_before(&p->cls[c], &p->cls[p->due_now[at - 1]])) {
                p->due_now[at] = p->due_now[at - 1];
                at--;
            }
            p->due_now[at] = c;
        }
        p->head[b] = MG_NIL;
        p->busy[b / 64] &= ~(1ull << (b % 64));

        for (uint32_t i = 0; i < nd; i++) {
            struct mg_class *cl = &p->cls[p->due_now[i]];

            mg_class_looks(p, cl);
            if (p->filled == p->m)
                return;
            if (cl->n)
                mg_enqueue(p, p->due_now[i]);
        }
        r++;
    }
}

/* Members sorted by speed, fastest first, then by hash order (their index
 * in the hash-sorted keys). */
struct mg_memb {
    uint32_t speed;
    uint32_t rank;
};

static int mg_memb_cmp(const void *pa, const void *pb)
{
    const struct mg_memb *a = pa, *b = pb;

    if (a->speed != b->speed)
        return a->speed > b->speed ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

int xlb_maglev_build(const struct xlb_maglev_backend *b, size_t n, uint32_t *table, uint32_t m)
{
    struct mg_pop p = { .table = table, .m = m };
    struct mg_key *keys = NULL;
    struct mg_memb *memb = NULL;
    uint32_t *arrays = NULL;
    uint64_t total = 0, lo_sum = 0, q = 1, max_step = 0;
    uint32_t wmax = 0, nbuckets, min_speed;
    size_t na = 0;
    int err = 0;

    if (!table || (n && !b) || !xlb_is_prime(m))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!b[i].weight)
            continue;
        if ((!b[i].id && b[i].id_len) || b[i].value == XLB_MAGLEV_EMPTY)
            return -EINVAL;
        if (++na > m)
            return -EINVAL;
        total += b[i].weight;
        if (b[i].weight > wmax)
            wmax = b[i].weight;
    }
    if (!na) {
        for (uint32_t e = 0; e < m; e++)
            table[e] = XLB_MAGLEV_EMPTY;
        return 0;
    }

    keys = malloc(na * sizeof(*keys));
    memb = malloc(na * sizeof(*memb));
    arrays = malloc(na * 2 * sizeof(*arrays));
    p.mb = malloc(na * sizeof(*p.mb));
    p.cls = malloc(na * sizeof(*p.cls));
    p.used = calloc((m + 63) / 64, sizeof(*p.used));
    if (!keys || !memb || !arrays || !p.mb || !p.cls || !p.used) {
        err = -ENOMEM;
        goto out;
    }
    na = 0;
    for (size_t i = 0; i < n; i++) {
        if (!b[i].weight)
            continue;
        keys[na].h1 = xlb_maglev_siphash24(MG_K0_OFFSET, MG_K1_OFFSET, b[i].id, b[i].id_len);
        keys[na].h2 = xlb_maglev_siphash24(MG_K0_SKIP, MG_K1_SKIP, b[i].id, b[i].id_len);
        keys[na].b = &b[i];
        na++;
    }
    qsort(keys, na, sizeof(*keys), mg_key_cmp);
    for (size_t i = 1; i < na; i++) {
        if (!mg_key_cmp(&keys[i - 1], &keys[i])) {
            err = -EINVAL;  /* the same identity twice */
            goto out;
        }
    }

    /* Rounds of 1/q with q a power of two >= every weight: at most one look
     * per backend and round. */
    while (q < wmax)
        q <<= 1;
    min_speed = (wmax + MG_SPEED_RATIO_MAX - 1) / MG_SPEED_RATIO_MAX;
    for (size_t i = 0; i < na; i++) {
        uint32_t w = keys[i].b->weight;

        memb[i].speed = w > min_speed ? w : min_speed;
        memb[i].rank = (uint32_t)i;
    }
    qsort(memb, na, sizeof(*memb), mg_memb_cmp);

    p.nmemb = (uint32_t)na;
    p.ord = arrays;
    p.due_now = arrays + na;
    for (uint32_t j = 0; j < p.nmemb; j++) {
        const struct mg_key *key = &keys[memb[j].rank];
        uint64_t share = (uint64_t)m * key->b->weight;  /* < 2^64: both factors < 2^32 */
        struct mg_member *mb = &p.mb[j];
        struct mg_class *c;

        mb->cur = (uint32_t)(key->h1 % m);
        mb->skip = (uint32_t)(key->h2 % (m - 1) + 1);
        mb->cnt = 0;
        mb->lo = (uint32_t)(share / total);
        mb->cap = mb->lo + (share % total != 0);
        mb->value = key->b->value;
        lo_sum += mb->lo;
        if (mb->lo)
            p.n_below++;
        else
            p.n_at_lo++;    /* weight > 0 and floor 0: the share has a fraction */
        p.ord[j] = j;

        if (j && memb[j].speed == memb[j - 1].speed) {
            p.cls[p.ncls - 1].n++;
            continue;
        }
        c = &p.cls[p.ncls++];
        memset(c, 0, sizeof(*c));
        c->speed = memb[j].speed;
        c->first = j;
        c->n = 1;
        /* Look k happens (2k + 1) * q / (2 * speed) rounds from the start. */
        c->div = 2ull * c->speed;
        c->due = q / c->div;
        c->rem = q % c->div;
        c->due_step = (uint32_t)(2 * q / c->div);
        c->rem_step = 2 * q % c->div;
        if (c->due_step + 1ull > max_step)
            max_step = c->due_step + 1ull;
    }
    p.spares = (uint32_t)(m - lo_sum);

    /* A ring longer than any gap between two looks of a class. */
    nbuckets = 64;
    while (nbuckets <= max_step + 1)
        nbuckets <<= 1;
    p.mask = nbuckets - 1;
    p.head = malloc(nbuckets * sizeof(*p.head));
    p.busy = calloc(nbuckets / 64, sizeof(*p.busy));
    if (!p.head || !p.busy) {
        err = -ENOMEM;
        goto out;
    }
    memset(p.head, 0xff, nbuckets * sizeof(*p.head));

    mg_populate(&p);
out:
    free(p.head);
    free(p.busy);
    free(p.used);
    free(p.cls);
    free(p.mb);
    free(arrays);
    free(memb);
    free(keys);
    return err;
}

uint32_t xlb_maglev_ring_size(size_t n)
{
    uint64_t want = (uint64_t)n * XLB_MAGLEV_ENTRIES_PER_REAL;
    uint32_t m;

    if (want < XLB_MAGLEV_DEFAULT_M)
        return XLB_MAGLEV_DEFAULT_M;
    if (want >= XLB_MAGLEV_MAX_M)
        return XLB_MAGLEV_MAX_M;
    for (m = (uint32_t)want; !xlb_is_prime(m); m++)
        ;
    return m;
}
