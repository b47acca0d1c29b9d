/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Hashes computed identically by the XDP programs and by userspace (the VIP
 * filter bit is set by the loader and tested by the balancer).  Plain C: no
 * helpers, no libc. */
#ifndef XLB_HASH_H
#define XLB_HASH_H

static inline __u32 xlb_mix32(__u32 h)
{
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

/* Bit index in xlb_vip_filter for an address (words in network order). */
static inline __u32 xlb_vip_filter_bit(const struct xlb_addr *a)
{
    __u32 h = a->addr_be[0] ^ (a->addr_be[1] * 0x9e3779b1u) ^ (a->addr_be[2] * 0x85ebca77u) ^
              (a->addr_be[3] * 0xc2b2ae3du);

    return xlb_mix32(h) & (XLB_VIP_FILTER_WORDS * 64 - 1);
}

#endif
