// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * clock.c - the proxy's one clock: CLOCK_MONOTONIC in milliseconds plus an
 * offset that tests move to make timeouts expire without waiting.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "px.h"

_Atomic int64_t px_now_offset_ms;

/* Milliseconds of CLOCK_MONOTONIC plus px_now_offset_ms; never fails. */
uint64_t px_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u +
           (uint64_t)atomic_load_explicit(&px_now_offset_ms, memory_order_relaxed);
}
