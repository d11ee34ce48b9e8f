/* SPDX-License-Identifier: MIT */
/* The clock in microseconds, the unit of every timer and timestamp here
 * (sd-event's too): CLOCK_MONOTONIC for intervals and deadlines,
 * CLOCK_REALTIME for what people read. */
#pragma once

#include <stdint.h>
#include <time.h>

#include "macro.h"

static inline uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}
