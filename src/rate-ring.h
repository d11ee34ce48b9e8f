/* SPDX-License-Identifier: MIT */
/* A ring of per-interval counts taken from an ever-growing total (queries
 * answered): sample the total once a second and the ring holds the queries of
 * each of the last RATE_RING_SIZE seconds, for the dashboard's chart. Plain
 * data, no clock: the caller decides when a sample is due. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_RING_SIZE 300 /* five minutes at one sample a second */

typedef struct RateRing {
        uint32_t counts[RATE_RING_SIZE];
        uint32_t head; /* where the next count goes */
        uint32_t n;    /* counts held, up to RATE_RING_SIZE */
        uint64_t last_total;
        bool started; /* last_total is set */
} RateRing;

/* Records the difference to the last total (0 for the first sample, and when
 * the total went backwards, as after a restart of a counter). */
static inline void rate_ring_sample(RateRing *r, uint64_t total) {
        uint64_t d = r->started && total >= r->last_total ? total - r->last_total : 0;

        if (r->started) {
                r->counts[r->head] = d > UINT32_MAX ? UINT32_MAX : (uint32_t) d;
                r->head = (r->head + 1) % RATE_RING_SIZE;
                if (r->n < RATE_RING_SIZE)
                        r->n++;
        }
        r->last_total = total;
        r->started = true;
}

/* The i-th count, oldest first (0 <= i < r->n). */
static inline uint32_t rate_ring_get(const RateRing *r, size_t i) {
        return r->counts[(r->head + RATE_RING_SIZE - r->n + i) % RATE_RING_SIZE];
}
