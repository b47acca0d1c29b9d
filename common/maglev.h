/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Weighted Maglev lookup table builder.
 *
 * The agent turns every hash scheduler (sh, maglev, source persistence) into
 * a flat table of m entries that the XDP program indexes with a flow hash
 * modulo m. maglev.c explains how the table is populated.
 */
#ifndef XLB_MAGLEV_H
#define XLB_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

#define XLB_MAGLEV_EMPTY 0xffffffffu
#define XLB_MAGLEV_DEFAULT_M 65537u

struct xlb_maglev_backend {
    const void *id;      /* identity bytes, e.g. the real server's address (family + 16 bytes) */
    size_t id_len;
    uint32_t weight;     /* 0 = takes no entries */
    uint32_t value;      /* what is written into the table for this backend (a real id) */
};

/*
 * Fill table[0..m-1] with backend values.
 *
 * - m must be prime, otherwise -EINVAL.
 * - Backends with weight 0 are ignored entirely (not even their id or value
 *   is looked at). The others, the "active" backends, must have distinct ids
 *   (equal length and bytes means the same backend), a non-NULL id unless
 *   id_len is 0, a value other than XLB_MAGLEV_EMPTY, and there may be at
 *   most m of them (a table cannot give m + 1 backends an entry each).
 *   Any violation returns -EINVAL.
 * - Active backend i owns floor(m * w_i / W) or ceil(m * w_i / W) entries,
 *   W being the sum of active weights: never a whole entry away from its
 *   exact weighted share. Hence a backend whose share is below one entry may
 *   own no entry.
 * - The table depends only on the set of active (id, weight, value) triples,
 *   not on their order in b[] nor on zero-weight entries, so nodes with the
 *   same configuration build the same table.
 * - With no active backend the table is filled with XLB_MAGLEV_EMPTY and 0
 *   is returned.
 * - On error the table is left untouched, so a caller filling the inactive
 *   half of a double-buffered table keeps serving the old one.
 *
 * Returns 0, -EINVAL or -ENOMEM. Keeps no pointer into b[] or table.
 */
int xlb_maglev_build(const struct xlb_maglev_backend *b, size_t n, uint32_t *table, uint32_t m);

/* 1 if m is prime, else 0 (0 and 1 are not prime). */
int xlb_is_prime(uint32_t m);

/*
 * Table room for consistent behaviour.  Removing one of N reals should move
 * at most 1.2/N of the other reals' entries; tests/unit/test_maglev.c checks
 * it for N <= 300 in the default table and for N = 1000 in a table of
 * xlb_maglev_ring_size(1000) entries.  Crowded tables do worse: 1000 reals in
 * 65537 entries move up to 3.3/N.  Give services with more than ~300 reals a
 * table of about this many entries per real.
 */
#define XLB_MAGLEV_ENTRIES_PER_REAL 1024u

/* The smallest prime table size >= max(65537, n * XLB_MAGLEV_ENTRIES_PER_REAL),
 * capped at XLB_MAGLEV_MAX_M. */
#define XLB_MAGLEV_MAX_M 1048573u
uint32_t xlb_maglev_ring_size(size_t n);

/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012) of len bytes at data under the
 * 128-bit key whose bytes 0..7 are k0 and 8..15 are k1, both little-endian,
 * as in the reference code. Exported so the tests can check the published
 * vectors: the table layout depends on it and must never change.
 */
uint64_t xlb_maglev_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif /* XLB_MAGLEV_H */
