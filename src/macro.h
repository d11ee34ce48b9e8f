/* SPDX-License-Identifier: MIT */
/* Small helpers for visible ownership and error handling, in the spirit of
 * systemd's macro.h, written for this project. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _pure_ __attribute__((pure))
#define _noinline_ __attribute__((noinline))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
/* GLib defines the same two; keep one definition whichever comes first. */
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)

/* Take ownership of a pointer: returns it and leaves NULL behind. */
#define TAKE_PTR(p) \
        ({ \
                __typeof__(p) _p_ = (p); \
                (p) = NULL; \
                _p_; \
        })
/* Same for a file descriptor: leaves -EBADF behind. */
#define TAKE_FD(fd) \
        ({ \
                int _fd_ = (fd); \
                (fd) = -EBADF; \
                _fd_; \
        })

/* `type *p` cannot take parentheses: hence the NOLINT(bugprone-macro-parentheses). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) { /* NOLINT(bugprone-macro-parentheses) */ \
                if (*p) \
                        *p = func(*p); \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

static inline bool isempty(const char *s) {
        return !s || !*s;
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}
static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

/* errno as a negative value, never 0, for use right after a failing libc call. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
