/* SPDX-License-Identifier: MIT */
/* What every unit test shares. A check that fails stops the test program at
 * once: it prints the file, the line, the test that was running and what was
 * expected, and exits with a failure; cleanup registered with atexit() still
 * runs. One meaning everywhere, so that reading a test never needs a look at
 * its macros. */
#pragma once

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "time-util.h"

/* The test function running now, for the failure message; set with TEST_BEGIN(). */
static const char *test_current _unused_;

#define TEST_BEGIN(name) (test_current = (name))

/* A GLib warning or critical (a g_return_if_fail() that tripped) fails the
 * test, as it would under g_test_init(). */
__attribute__((constructor)) static void test_glib_fatal(void) {
        g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
}

_printf_(3, 4)
        __attribute__((noreturn)) static inline void test_fail(const char *file, int line, const char *format, ...) {
        va_list ap;

        fflush(stdout);
        fprintf(stderr, "%s:%d: %s%sCHECK failed: ", file, line, test_current ?: "", test_current ? ": " : "");
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

#define CHECK(expr) \
        do { \
                if (!(expr)) \
                        test_fail(__FILE__, __LINE__, "%s", #expr); \
        } while (0)

/* Equality with both values in the message. */
#define CHECK_STREQ(a, b) \
        do { \
                const char *_a = (a), *_b = (b); \
                if (!streq_ptr(_a, _b)) \
                        test_fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b, strna(_a), strna(_b)); \
        } while (0)

#define CHECK_INT_EQ(a, b) \
        do { \
                long long _a = (long long) (a), _b = (long long) (b); \
                if (_a != _b) \
                        test_fail(__FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, _a, _b); \
        } while (0)
