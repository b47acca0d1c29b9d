// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xlb_addr.h"

int xlb_addr_parse(const char *s, struct xlb_addr *a, uint8_t *family, uint8_t *plen)
{
    char buf[64];
    const char *slash;
    size_t n;
    int max;

    if (!s)
        return -EINVAL;
    slash = strchr(s, '/');
    n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf) || (slash && !plen))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, buf, &a->addr_be[0]) == 1) {
        *family = XLB_FAMILY_V4;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, a->addr_be) == 1) {
        *family = XLB_FAMILY_V6;
        max = 128;
    } else {
        return -EINVAL;
    }
    if (plen) {
        *plen = (uint8_t)max;
        if (slash) {
            char *end;
            long v = strtol(slash + 1, &end, 10);

            if (slash[1] == '\0' || *end != '\0' || v < 0 || v > max)
                return -EINVAL;
            *plen = (uint8_t)v;
        }
    }
    return 0;
}

const char *xlb_addr_str(const struct xlb_addr *a, uint8_t family, char *buf, size_t len)
{
    if (!inet_ntop(family == XLB_FAMILY_V4 ? AF_INET : AF_INET6, a->addr_be, buf, len) && len)
        buf[0] = '\0';
    return buf;
}

int xlb_proto_parse(const char *s)
{
    if (!strcmp(s, "tcp"))
        return IPPROTO_TCP;
    if (!strcmp(s, "udp"))
        return IPPROTO_UDP;
    return -EINVAL;
}

const char *xlb_proto_str(uint8_t proto)
{
    switch (proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    default: return "?";
    }
}
