// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * How this host reaches an address, from the kernel's routing table: the
 * question `ip route get ADDR` asks (RTM_GETROUTE over rtnetlink), asked
 * for dsr reals, which must be on a directly connected network.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "xlb_loader.h"
#include "xlb_addr.h"

struct route_req {
    struct nlmsghdr nh;
    struct rtmsg rt;
    char attrs[64];
};

/* Describe a gateway attribute (RTA_GATEWAY of the route's family, or
 * RTA_VIA naming a gateway of either family) into buf. */
static void gateway_str(const struct rtattr *a, int family, char *buf, size_t len)
{
    const void *p = RTA_DATA(a);
    int fam = family;

    if (a->rta_type == RTA_VIA) {
        const struct rtvia *v = p;

        fam = v->rtvia_family;
        p = v->rtvia_addr;
    }
    if (!inet_ntop(fam, p, buf, (socklen_t)len))
        snprintf(buf, len, "a gateway");
}

int xlb_route_onlink(uint8_t family, const struct xlb_addr *addr, char *how, size_t how_len)
{
    struct route_req req;
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    struct timeval tv = { .tv_sec = 2 };
    char buf[8192], gw[INET6_ADDRSTRLEN] = "", dev[IF_NAMESIZE] = "";
    int af = family == XLB_FAMILY_V4 ? AF_INET : AF_INET6, alen = af == AF_INET ? 4 : 16;
    int fd, err = -EIO, oif = 0;
    struct rtattr *rta;
    unsigned left;
    ssize_t n;

    if (how && how_len)
        how[0] = '\0';
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    req.nh.nlmsg_type = RTM_GETROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = 1;
    req.rt.rtm_family = (unsigned char)af;
    req.rt.rtm_dst_len = (unsigned char)(alen * 8);
    rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
    rta->rta_type = RTA_DST;
    rta->rta_len = (unsigned short)RTA_LENGTH(alen);
    memcpy(RTA_DATA(rta), addr->addr_be, (size_t)alen);
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = -errno;
        goto out;
    }
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        err = -errno;
        goto out;
    }
    left = (unsigned)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
        struct rtmsg *rt;
        int len;

        if (h->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *ne = NLMSG_DATA(h);

            err = ne->error ? ne->error : -EIO;
            if (how && how_len)
                snprintf(how, how_len, "no route (%s)", strerror(-err));
            goto out;
        }
        if (h->nlmsg_type != RTM_NEWROUTE)
            continue;
        rt = NLMSG_DATA(h);
        len = (int)RTM_PAYLOAD(h);
        for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            if (a->rta_type == RTA_GATEWAY || a->rta_type == RTA_VIA)
                gateway_str(a, af, gw, sizeof(gw));
            else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int))
                memcpy(&oif, RTA_DATA(a), sizeof(int));
        }
        if (oif && !if_indextoname((unsigned)oif, dev))
            snprintf(dev, sizeof(dev), "#%d", oif);
        if (rt->rtm_type == RTN_LOCAL) {
            err = -EADDRINUSE;
            if (how && how_len)
                snprintf(how, how_len, "it is an address of this host");
        } else if (rt->rtm_type != RTN_UNICAST) {
            err = -ENETUNREACH;
            if (how && how_len)
                snprintf(how, how_len, "its route is not a unicast route (type %u)",
                         rt->rtm_type);
        } else if (gw[0]) {
            err = -EHOSTUNREACH;
            if (how && how_len)
                snprintf(how, how_len, "its route goes via %s%s%s", gw, dev[0] ? " dev " : "",
                         dev);
        } else {
            err = 0;
            if (how && how_len)
                snprintf(how, how_len, "directly connected%s%s", dev[0] ? " on " : "", dev);
        }
        goto out;
    }
out:
    close(fd);
    return err;
}
