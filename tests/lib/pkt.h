/*
 * pkt: craft Ethernet frames for BPF_PROG_TEST_RUN and check what comes back.
 *
 * A test describes a packet with a struct pkt_spec (addresses, tags, L4 ports,
 * flags, payload), turns it into wire bytes with pkt_build(), runs the XDP
 * program on it, and compares the output with a second frame built the same way
 * (memcmp, with pkt_hexdiff() for the failure message). pkt_parse() and the
 * checksum checks serve the cases where a byte-exact expectation is awkward;
 * pkt_pcap_write() saves the frames of a failing case for Wireshark.
 *
 * Everything here is plain userspace C (libc + Linux UAPI headers), allocates
 * nothing and never reads past the lengths it is given.
 */
#ifndef XLB_TESTS_PKT_H
#define XLB_TESTS_PKT_H

#include <stddef.h>
#include <stdint.h>

/* pkt_spec.frag_off / pkt_view.frag_off bits, IPv4 layout, host order. */
#define PKT_DF      0x4000  /* IPv4 don't fragment */
#define PKT_MF      0x2000  /* more fragments (IPv4 MF, IPv6 M) */
#define PKT_OFFMASK 0x1fff  /* fragment offset, in 8-byte units */

/* Window field of every TCP header pkt_build() writes. */
#define PKT_TCP_WINDOW 65535

/*
 * Longest header stack pkt_build() produces: Ethernet 14 + two tags 8 +
 * IPv4 with 40 option bytes 60 (IPv6 + Fragment header is 48) + TCP 20.
 * A buffer of PKT_HDR_MAX + payload_len always fits.
 */
#define PKT_HDR_MAX (14 + 8 + 60 + 20)

struct pkt_vlan {
    uint16_t tpid;  /* 0x8100 (802.1Q) or 0x88a8 (802.1ad), host order */
    uint16_t tci;   /* PCP(3) DEI(1) VID(12), host order */
};

struct pkt_spec {
    uint8_t eth_src[6], eth_dst[6];
    int n_vlan;                 /* 0..2; vlan[0] is the outer tag */
    struct pkt_vlan vlan[2];
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t src[16], dst[16];   /* network order; IPv4 uses the first 4 bytes */
    /*
     * IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6 get a header
     * with a correct checksum. Any other value (IPPROTO_IPIP, IPPROTO_IPV6,
     * IPPROTO_GRE, ...) is written as the next-protocol field and the payload
     * follows the IP header directly: that is how an encapsulated frame is
     * built, with the inner packet as payload.
     */
    uint8_t proto;
    /*
     * TCP/UDP: ports, host order. ICMP/ICMPv6: bytes 4-5 and 6-7 of the
     * header, host order, whatever the type: echo id = sport, seq = dport;
     * "fragmentation needed" next-hop MTU = dport; ICMPv6 "packet too big"
     * MTU = sport << 16 | dport.
     */
    uint16_t sport, dport;
    uint8_t icmp_type, icmp_code;
    uint8_t tcp_flags;          /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
    uint32_t tcp_seq, tcp_ack;  /* host order */
    uint8_t tos;                /* IPv4 TOS or IPv6 traffic class */
    uint8_t ttl;                /* TTL or hop limit; 0 means 64 */
    uint8_t ip_opts_len;        /* IPv4 option bytes: multiple of 4, <= 40;
                                 * written as NOPs and a final EOL. Must be 0
                                 * for IPv6. */
    /*
     * IPv4: ip_id is the Identification field and frag_off the flags +
     * offset field exactly as on the wire (PKT_DF | PKT_MF | offset).
     * IPv6: a nonzero frag_off adds a Fragment header with identification
     * ip_id, offset frag_off & PKT_OFFMASK and M = frag_off & PKT_MF; other
     * bits only serve to make the value nonzero, so PKT_DF alone gives an
     * atomic fragment (offset 0, M 0).
     * A fragment with a nonzero offset carries no L4 header: the payload
     * follows the IP (or Fragment) header. A first fragment gets its L4
     * header, checksummed over the bytes present in this frame.
     */
    uint16_t ip_id;
    uint16_t frag_off;
    const uint8_t *payload;     /* may be NULL when payload_len is 0 */
    size_t payload_len;
};

/*
 * Parse src and dst as IPv4 or IPv6 text addresses into s->src / s->dst and
 * set s->family. Both must be the same family. Returns 0, or -EINVAL with
 * *s unchanged.
 */
int pkt_addr(struct pkt_spec *s, const char *src, const char *dst);

/*
 * Length of the frame pkt_build() would write for s, or 0 if s is invalid
 * (bad n_vlan, family, ip_opts_len; payload too long for the IP length
 * field; NULL payload with a nonzero length).
 */
size_t pkt_len(const struct pkt_spec *s);

/*
 * Write the frame described by s into out: Ethernet, tags, IP header, L4
 * header, payload, with every length and checksum filled in. No padding to
 * the Ethernet minimum is added. Returns the frame length, or 0 if s is
 * invalid (see pkt_len()) or the frame does not fit in cap bytes; out is
 * untouched then.
 */
size_t pkt_build(const struct pkt_spec *s, uint8_t *out, size_t cap);

/*
 * RFC 1071 internet checksum of len bytes at data: the ones' complement sum
 * of big-endian 16-bit words (an odd last byte is the high half of a word),
 * plus initial (a partial sum of other words, e.g. a pseudo header, in the
 * same host-order numbers), folded to 16 bits and complemented. The result
 * is a host-order number; store it with htons(). Over a header or segment
 * that already holds a correct checksum the result is 0.
 */
uint16_t pkt_csum(const void *data, size_t len, uint32_t initial);

/*
 * 1 if the IPv4 header at ip (IHL * 4 readable bytes) has a correct
 * checksum, 0 if not or if the version or IHL is invalid.
 */
int pkt_ipv4_hdr_csum_ok(const uint8_t *ip);

/*
 * 1 if the TCP, UDP, ICMP or ICMPv6 checksum of the IP datagram at ip is
 * correct, 0 otherwise. ip_total_len is the datagram length (header
 * included) or more: nothing past it is read, and the length checksummed
 * is the one the IP header states, so trailing padding does no harm. The
 * IPv4 options or IPv6 extension headers are skipped to find the L4
 * header; TCP, UDP and ICMPv6 are checked with their pseudo header (built
 * from the IP header's addresses; a Routing header is not consulted), ICMP
 * without. UDP over IPv4 with a zero checksum (none computed) counts as
 * correct. Returns 0 as well when there is nothing to check: malformed
 * header, other protocol, fragment with a nonzero offset, L4 header cut
 * short.
 */
int pkt_l4_csum_ok(int family, const uint8_t *ip, size_t ip_total_len);

/* What pkt_parse() found in a frame; offsets count from the frame start. */
struct pkt_view {
    int n_vlan;                 /* 0..2 */
    struct pkt_vlan vlan[2];    /* outer first */
    uint16_t ethertype;         /* after the tags, host order */
    size_t l3_off;              /* outer IP header */
    int family;                 /* AF_INET or AF_INET6 */
    size_t l3_len;              /* IP header incl. options / IPv6 extension headers */
    uint8_t proto;              /* L4 protocol after extension headers */
    /*
     * Fragment info, in the pkt_spec.frag_off layout. IPv4: the field as on
     * the wire (DF included). IPv6: offset | PKT_MF from the Fragment header,
     * and v6_frag set when that header is present (an atomic fragment has
     * frag_off 0 and v6_frag 1).
     */
    uint16_t frag_off;
    int v6_frag;
    size_t l4_off;              /* L4 header; fragment data when offset != 0 */
    size_t l4_len;              /* bytes from l4_off to the end of the IP datagram */
};

/*
 * Parse an Ethernet frame carrying IPv4 or IPv6, behind up to two 802.1Q /
 * 802.1ad tags. Lengths come from the IP header: bytes past the datagram
 * (Ethernet padding) are allowed and ignored, so l3_off + l3_len + l4_len
 * is the end of the datagram. Checksums are not checked. Returns 0, or
 * -EINVAL if the frame is not such a frame, is cut short, or has more tags
 * or IPv6 extension headers than are handled; *v is unspecified then.
 */
int pkt_parse(const uint8_t *frame, size_t len, struct pkt_view *v);

/*
 * Write n frames to path as a classic pcap file (magic 0xa1b2c3d4 in host
 * byte order, version 2.4, LINKTYPE_ETHERNET), replacing the file. Record i
 * has the timestamp 0 s + i us so the output is reproducible. Returns 0 or
 * a negative errno; a partial file is removed.
 */
int pkt_pcap_write(const char *path, const uint8_t *const *frames,
                   const size_t *lens, size_t n);

/*
 * Describe expected vs actual for a failure message: a line with both
 * lengths and the first difference, then a hexdump, 16 bytes per row, where
 * rows that match print once and rows that differ print as a "-" (expected)
 * and "+" (actual) pair followed by a line with ^^ under each differing byte;
 * a byte missing from the shorter frame shows as "..". Two equal frames give
 * a single "identical" line. The text is cut to fit bufsz (always
 * NUL-terminated when bufsz > 0). Returns buf.
 */
const char *pkt_hexdiff(const uint8_t *exp, size_t elen,
                        const uint8_t *act, size_t alen,
                        char *buf, size_t bufsz);

#endif /* XLB_TESTS_PKT_H */
