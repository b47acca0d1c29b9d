/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Data-plane constants that are not part of the map ABI.  Each can be
 * overridden at build time with -DNAME=value. */
#ifndef XLB_CONSTS_H
#define XLB_CONSTS_H

#ifndef XLB_VLAN_MAX_DEPTH
#define XLB_VLAN_MAX_DEPTH 2        /* 802.1Q / 802.1ad tags parsed */
#endif
#ifndef XLB_IPV6_EXT_MAX
#define XLB_IPV6_EXT_MAX 4          /* IPv6 extension headers skipped */
#endif
#ifndef XLB_L4_OFF_MAX
#define XLB_L4_OFF_MAX 511          /* transport header must start within this; keep 2^n - 1 */
#endif
#ifndef XLB_TUNNEL_TTL
#define XLB_TUNNEL_TTL 64           /* outer TTL / hop limit */
#endif
#ifndef XLB_CONN_TOUCH_NS
#define XLB_CONN_TOUCH_NS 1000000000ULL /* refresh last_seen at most once a second */
#endif
#ifndef XLB_NH_CACHE_NS
#define XLB_NH_CACHE_NS 1000000000ULL /* next hop re-learnt from the FIB every second */
#endif
#ifndef XLB_GUE_SPORT_BASE
#define XLB_GUE_SPORT_BASE 49152    /* GUE source ports: 49152..65535 by flow hash */
#endif

#define ETH_ALEN_ 6
#define IPPROTO_ICMPV6_ 58
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define AF_INET_ 2
#define AF_INET6_ 10
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF
#define IP_DF_ 0x4000
#define NEXTHDR_HOP_ 0
#define NEXTHDR_ROUTING_ 43
#define NEXTHDR_FRAGMENT_ 44
#define NEXTHDR_DEST_ 60
#define NEXTHDR_IPV6_ 41
#define NEXTHDR_IPIP_ 4
#define ICMP_ECHO_ 8
#define ICMP_ECHOREPLY_ 0
#define ICMPV6_ECHO_REQUEST_ 128
#define ICMPV6_ECHO_REPLY_ 129

/* TCP header flags (byte 13). */
#define XLB_TCP_FIN 0x01
#define XLB_TCP_SYN 0x02
#define XLB_TCP_RST 0x04
#define XLB_TCP_ACK 0x10

#endif
