// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "xlb_err.h"

int xlb_errf(struct xlb_err *e, int err, const char *fmt, ...)
{
    va_list ap;

    if (e) {
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return err > 0 ? -err : (err < 0 ? err : -1);
}

int xlb_log_level_parse(const char *word)
{
    static const struct { const char *w; int level; } t[] = {
        { "err", 3 }, { "warning", 4 }, { "info", 6 }, { "debug", 7 },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(word, t[i].w))
            return t[i].level;
    return -1;
}
