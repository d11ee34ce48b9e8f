/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD library for tests: makes inotify_init1() fail with EMFILE, as
 * when fs.inotify.max_user_instances is used up, while the file named by
 * $JOYRIDE_FAULT_INOTIFY exists. Lets a test make a source fail to start in
 * the middle of a run (a reload) without touching the machine's limits. */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

int inotify_init1(int flags) {
        static int (*real)(int);
        const char *trigger = getenv("JOYRIDE_FAULT_INOTIFY");

        if (trigger && access(trigger, F_OK) == 0) {
                errno = EMFILE;
                return -1;
        }
        if (!real)
                real = (int (*)(int)) dlsym(RTLD_NEXT, "inotify_init1");
        if (!real) {
                errno = ENOSYS;
                return -1;
        }
        return real(flags);
}
