/* SPDX-License-Identifier: MIT */
/* How the daemon's own threads ask the kernel's scheduler for what they need:
 * background work yields (a higher nice value), answering threads get the CPU
 * soon after a query arrives (a short time slice). Neither needs privilege and
 * neither is required: a kernel or a sandbox that refuses only costs the
 * preference, logged at debug level. */
#pragma once

#include <stdint.h>

/* Raises the calling thread's nice value by step (capped at 19). */
void thread_lower_priority(const char *name, int step);

/* Asks for a time slice of slice_nsec for the calling thread (kept as a normal,
 * SCHED_OTHER thread, its nice value unchanged). On the EEVDF scheduler (Linux
 * 6.12 and later) a thread with a shorter slice than the one running gets the
 * CPU when it wakes instead of waiting for the running one's slice to end
 * (1.4 ms by default on two cores); it also gets no more CPU in all than
 * before, only in shorter turns. Older kernels ignore the request. The kernel
 * clamps slices to 0.1..100 ms. */
void thread_request_slice(const char *name, uint64_t slice_nsec);
