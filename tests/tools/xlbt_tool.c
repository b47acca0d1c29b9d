// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xlbt_tool.h"

int xlbt_parse_hostport(const char *arg, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	size_t hlen;
	char *end;
	unsigned long p;

	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hlen = (size_t)(rb - arg - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, arg + 1, hlen);
		port = rb + 2;
	} else {
		const char *colon = strrchr(arg, ':');

		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - arg);
		if (hlen == 0 || hlen >= sizeof(host) || memchr(arg, ':', hlen))
			return -EINVAL;
		memcpy(host, arg, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';

	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || end == port || *end || p == 0 || p > 65535)
		return -EINVAL;

	memset(ss, 0, sizeof(*ss));
	if (arg[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*sslen = sizeof(*sin6);
	}
	return 0;
}
