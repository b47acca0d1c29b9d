/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * log.c - the proxy's log lines ("<N>xlb-proxy: level: text" on stderr, as
 * journald reads them) and its access log.
 *
 * The access log is one fd that every worker writes whole lines to with one
 * write(2) each (O_APPEND keeps lines whole).  Reopening (SIGUSR1, after a
 * rotation) opens the file again and dup2()s it over that fd, so workers
 * never see it change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

int px_log_level = PX_INFO;

void px_log(int level, const char *fmt, ...)
{
    static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice",
                                         "info", "debug" };
    char line[1024];
    va_list ap;
    int n;

    if (level > px_log_level)
        return;
    n = snprintf(line, sizeof(line), "<%d>xlb-proxy: %s: ", level, names[level & 7]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to say it */
    }
}

int px_access_open(const char *dest, char *err, size_t errlen)
{
    int fd;

    if (!strcmp(dest, "off")) {
        if (px_set.access_fd > STDERR_FILENO)
            close(px_set.access_fd);
        px_set.access_fd = -1;
        return 0;
    }
    if (!strcmp(dest, "stderr")) {
        px_set.access_fd = STDERR_FILENO;
        return 0;
    }
    fd = open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        int rc = -errno;

        snprintf(err, errlen, "access log %s: %s; set proxy.access_log to a writable file, "
                 "stderr or off", dest, strerror(errno));
        return rc;
    }
    if (px_set.access_fd > STDERR_FILENO) {
        dup2(fd, px_set.access_fd);
        close(fd);
    } else {
        px_set.access_fd = fd;
    }
    return 0;
}

void px_access_write(const char *line, size_t len)
{
    int fd = px_set.access_fd;

    if (fd >= 0 && write(fd, line, len) < 0) {
        /* a full disk must not stop the traffic */
    }
}
