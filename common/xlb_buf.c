// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * struct xlb_buf: a growable byte buffer.  The buffer always keeps one
 * spare byte past len and sets it to NUL, so text built with it can be used
 * as a C string without a copy; len never counts that byte.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlb_httpd.h"

/* Make room for n more bytes plus the NUL; 0 or -ENOMEM (b unchanged). */
int xlb_buf_reserve(struct xlb_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (n > SIZE_MAX - b->len - 1)
        return -ENOMEM;
    need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int xlb_buf_add(struct xlb_buf *b, const void *p, size_t n)
{
    int err = xlb_buf_reserve(b, n);

    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int xlb_buf_printf(struct xlb_buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room;
    int n, err;

    /* A first try into whatever room there is, then once more with enough. */
    if ((err = xlb_buf_reserve(b, 64)))
        return err;
    room = b->cap - b->len;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return -EINVAL;
    }
    if ((size_t)n >= room) {
        if ((err = xlb_buf_reserve(b, (size_t)n))) {
            b->data[b->len] = '\0';
            return err;
        }
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

void xlb_buf_reset(struct xlb_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void xlb_buf_free(struct xlb_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
