/* SPDX-License-Identifier: MIT */
/* The request-duration histogram behind joyride_dns_request_duration_seconds:
 * how long a query took from its arrival (the kernel's receive timestamp,
 * SO_TIMESTAMPNS) to its reply leaving. Each thread that sends replies (an
 * answering thread, the forwarder) keeps its own and is its only writer: an
 * observation is two relaxed loads and stores, no lock and no locked
 * instruction. Readers sum the threads' histograms; /metrics makes the
 * buckets cumulative. Times are CLOCK_REALTIME nanoseconds, the clock the
 * kernel stamps packets with. */
#pragma once

#include <stdint.h>
#include <time.h>

/* Upper bounds, for a server that answers from memory in tens of
 * microseconds and forwards in milliseconds (the forwarder gives up after
 * 1.5 s): 50 µs .. 2.5 s, then +Inf. */
#define DNS_DURATION_BOUNDS 15
#define DNS_DURATION_BUCKETS (DNS_DURATION_BOUNDS + 1)

static const uint64_t dns_duration_bounds_nsec[DNS_DURATION_BOUNDS] = {
        50000,    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,
        25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000,
};
/* The same bounds as Prometheus "le" label values, in seconds. */
static const char *const dns_duration_bounds_label[DNS_DURATION_BOUNDS] = {
        "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
        "0.025",   "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",
};

typedef struct DnsDurationHistogram {
        /* Not cumulative: [i] counts durations in (bounds[i-1], bounds[i]];
         * the last one those above every bound. Only uint64_t fields, so
         * that counters holding it can be summed as arrays of them. */
        uint64_t buckets[DNS_DURATION_BUCKETS];
        uint64_t sum_nsec;
} DnsDurationHistogram;

static inline uint64_t dns_duration_now_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Records n requests that took end - start (clamped at 0: the realtime
 * clock may have been set back meanwhile). Only from the owning thread. */
static inline void dns_duration_observe(DnsDurationHistogram *h, uint64_t start_nsec, uint64_t end_nsec, uint64_t n) {
        uint64_t d = end_nsec > start_nsec ? end_nsec - start_nsec : 0;
        unsigned i = 0;

        while (i < DNS_DURATION_BOUNDS && d > dns_duration_bounds_nsec[i])
                i++;
        __atomic_store_n(&h->buckets[i], __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
        __atomic_store_n(&h->sum_nsec, __atomic_load_n(&h->sum_nsec, __ATOMIC_RELAXED) + d * n, __ATOMIC_RELAXED);
}

/* Adds src into dst, reading src's fields atomically (another thread writes them). */
static inline void dns_duration_add(DnsDurationHistogram *dst, const DnsDurationHistogram *src) {
        for (unsigned i = 0; i < DNS_DURATION_BUCKETS; i++)
                dst->buckets[i] += __atomic_load_n(&src->buckets[i], __ATOMIC_RELAXED);
        dst->sum_nsec += __atomic_load_n(&src->sum_nsec, __ATOMIC_RELAXED);
}
