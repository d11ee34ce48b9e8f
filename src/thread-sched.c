/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <linux/sched/types.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "thread-sched.h"

void thread_lower_priority(const char *name, int step) {
        pid_t tid = gettid();
        int nice;

        /* Linux keeps a nice value per thread: PRIO_PROCESS with a thread id
         * changes that thread only. */
        errno = 0;
        nice = getpriority(PRIO_PROCESS, (id_t) tid);
        if (nice == -1 && errno != 0)
                return (void) log_debug_errno(-errno, "Failed to read the %s thread's priority: %m", name);
        if (setpriority(PRIO_PROCESS, (id_t) tid, MIN(nice + step, 19)) < 0)
                log_debug_errno(-errno, "Failed to lower the %s thread's priority: %m", name);
}

void thread_request_slice(const char *name, uint64_t slice_nsec) {
        struct sched_attr attr = {
                .size = sizeof(attr),
                .sched_policy = SCHED_NORMAL,
                .sched_runtime = slice_nsec,
        };
        int nice;

        /* sched_setattr() sets the nice value too: keep the thread's own. */
        errno = 0;
        nice = getpriority(PRIO_PROCESS, (id_t) gettid());
        if (nice == -1 && errno != 0)
                return (void) log_debug_errno(-errno, "Failed to read the %s thread's priority: %m", name);
        attr.sched_nice = nice;

        /* glibc 2.36 has no wrapper. */
        if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
                log_debug_errno(-errno, "Failed to ask for a %" PRIu64 " µs time slice for the %s thread: %m",
                                slice_nsec / 1000, name);
}
