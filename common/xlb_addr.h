/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Text <-> struct xlb_addr for IPv4 and IPv6, with optional /prefix. */
#ifndef XLB_ADDR_H
#define XLB_ADDR_H

#include <stdint.h>
#include <stddef.h>
#include "xlb_abi.h"

#define XLB_ADDR_STRLEN 46

/* Parse "198.18.0.1", "fd00::1", optionally "/plen" when plen is non-NULL.
 * Sets *family (XLB_FAMILY_V4/V6); *plen defaults to 32/128.
 * Returns 0 or -EINVAL. */
int xlb_addr_parse(const char *s, struct xlb_addr *a, uint8_t *family, uint8_t *plen);

/* Format into buf (at least XLB_ADDR_STRLEN bytes); returns buf. */
const char *xlb_addr_str(const struct xlb_addr *a, uint8_t family, char *buf, size_t len);

/* Parse "tcp"/"udp" (returns IPPROTO_*) or -EINVAL. */
int xlb_proto_parse(const char *s);
const char *xlb_proto_str(uint8_t proto);

#endif
