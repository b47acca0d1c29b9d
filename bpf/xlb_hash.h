/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Hashes computed identically by the XDP programs and by userspace (the VIP
 * filter bit is set by the loader and tested by the balancer; tests and the
 * control plane can tell which table entry a flow or a client takes).
 * Plain C: no helpers, no libc.  Include after xlb_abi.h. */
#ifndef XLB_HASH_H
#define XLB_HASH_H

#ifdef __clang__
#define XLB_HASH_UNROLL _Pragma("unroll")
#else
#define XLB_HASH_UNROLL
#endif

static inline __u32 xlb_mix32(__u32 h)
{
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

/* The 5-tuple flow hash: FNV-1a over the 32-bit words of the key (pad
 * zeroed), then the murmur3 finaliser so that every input bit reaches the
 * low bits a table index uses.  Indexes hash tables and gives the
 * encapsulation its entropy. */
static inline __u32 xlb_flow_hash(const struct xlb_flow_key *k)
{
    const unsigned char *b = (const unsigned char *)k;
    __u32 h = 0x811c9dc5, w;

    XLB_HASH_UNROLL
    for (unsigned i = 0; i < sizeof(*k) / 4; i++) {
        __builtin_memcpy(&w, b + 4 * i, 4);     /* a word load, without type punning */
        h = (h ^ w) * 0x01000193;
    }
    return xlb_mix32(h);
}

/* The source-address hash of XLB_VS_F_SRC_HASH services: the same for
 * every port and protocol of one client, and on every node. */
static inline __u32 xlb_src_hash(const struct xlb_addr *src)
{
    __u32 h = 0x811c9dc5;

    XLB_HASH_UNROLL
    for (unsigned i = 0; i < 4; i++)
        h = (h ^ src->addr_be[i]) * 0x01000193;
    return xlb_mix32(h);
}

/* Bit index in xlb_vip_filter for an address (words in network order). */
static inline __u32 xlb_vip_filter_bit(const struct xlb_addr *a)
{
    __u32 h = a->addr_be[0] ^ (a->addr_be[1] * 0x9e3779b1u) ^ (a->addr_be[2] * 0x85ebca77u) ^
              (a->addr_be[3] * 0xc2b2ae3du);

    return xlb_mix32(h) & (XLB_VIP_FILTER_WORDS * 64 - 1);
}

#endif
