/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Error reporting for the userspace libraries: functions return 0 or a
 * negative errno and, when given a struct xlb_err, leave a sentence in it
 * that names the object and, where one exists, the fix. */
#ifndef XLB_ERR_H
#define XLB_ERR_H

#include <stddef.h>

struct xlb_err {
    char msg[512];
};

/* Format into e (which may be NULL) and return -err (err > 0). */
int xlb_errf(struct xlb_err *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The syslog level of a --log-level word (err, warning, info, debug): 3, 4,
 * 6 or 7; -1 for anything else. */
int xlb_log_level_parse(const char *word);

#endif
