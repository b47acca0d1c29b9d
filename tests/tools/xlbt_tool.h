/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers shared by the integration-test tools. */
#ifndef XLBT_TOOL_H
#define XLBT_TOOL_H

#include <sys/socket.h>

/* Parse "A.B.C.D:PORT" or "[V6]:PORT" (port 1-65535). Returns 0 or -EINVAL. */
int xlbt_parse_hostport(const char *arg, struct sockaddr_storage *ss, socklen_t *sslen);

#endif
