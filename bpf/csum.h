/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Internet checksum helpers (RFC 1071, RFC 1624) for the XDP programs. */
#ifndef XLB_CSUM_H
#define XLB_CSUM_H

/* Fold a 32/64-bit one's-complement accumulator to 16 bits (not inverted). */
static __always_inline __u16 csum_fold16(__u64 sum)
{
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}

/* Sum of the 32-bit words of an address; works in either byte order as long
 * as the caller folds and stores in the same order it read. */
static __always_inline __u64 csum_add_addr(__u64 sum, const struct xlb_addr *a, int family)
{
    sum += a->addr_be[0];
    if (family == XLB_FAMILY_V6)
        sum += (__u64)a->addr_be[1] + a->addr_be[2] + a->addr_be[3];
    return sum;
}

/* Checksum of a 20-byte IPv4 header whose check field is zero. */
static __always_inline __u16 csum_ipv4_hdr(const struct iphdr *ip)
{
    const __u32 *w = (const __u32 *)ip;
    __u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
    return ~csum_fold16(sum);
}

/* RFC 1624 eqn. 3: update a checksum when a 16-bit field changes. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
    __u32 sum = (__u16)~check + (__u16)~old + (__u32)new;
    return ~csum_fold16(sum);
}

/* Accumulate the change of a 32-bit word from old to new, for csum_apply()
 * (RFC 1624 eqn. 3 summed over 32-bit words; byte order as stored). */
static __always_inline __u64 csum_diff32(__u64 diff, __be32 old, __be32 new)
{
    return diff + (__u32)~old + new;
}

/* The same for a 16-bit word. */
static __always_inline __u64 csum_diff16(__u64 diff, __be16 old, __be16 new)
{
    return diff + (__u16)~old + new;
}

/* A checksum after the changes accumulated in diff. */
static __always_inline __u16 csum_apply(__u16 check, __u64 diff)
{
    return ~csum_fold16((__u64)(__u16)~check + diff);
}

#endif
