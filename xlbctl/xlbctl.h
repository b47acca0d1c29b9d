/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* xlbctl's parts: the data-plane commands (xlbctl.c) and the commands that
 * talk to xlb-agent's API (xlbctl_api.c). */
#ifndef XLBCTL_H
#define XLBCTL_H

#include <stdbool.h>

void xlbctl_usage_exit(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
bool xlbctl_is_api_command(const char *cmd);
/* argv[0] is the command; returns the exit status. */
int xlbctl_api_main(const char *cmd, int argc, char **argv);

#endif
