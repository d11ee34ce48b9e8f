/* SPDX-License-Identifier: MIT */
/* Logging: structured journal entries when running under systemd, readable
 * lines on stderr otherwise. A failing journal never affects the service. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* journal if stderr is connected to it (JOURNAL_STREAM), else console */
        LOG_TARGET_CONSOLE,
        LOG_TARGET_JOURNAL,
} LogTarget;

void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_target(LogTarget t);
int log_parse_level(const char *s);         /* "debug", "info", ... or a number; -EINVAL otherwise */
const char *log_level_to_string(int level); /* "debug", ...; NULL outside 0-7 */

/* Logs and returns -abs(error) (or 0 when error is 0), so that callers can write
 * `return log_error_errno(r, "...: %m");` — %m expands to strerror(-error).
 * Extra journal fields may be passed as a NULL-terminated list of "KEY=value"
 * strings with log_struct(). */
int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);
int log_struct_internal(int level, int error, const char *file, int line, const char *func, const char *const *fields,
                        bool console_fields, const char *format, ...) _printf_(8, 9);

#define log_full_errno(level, error, ...) \
        ({ \
                int _l_ = (level); \
                _l_ <= log_get_max_level() ? log_internal(_l_, (error), __FILE__, __LINE__, __func__, __VA_ARGS__) \
                                           : -abs(error); \
        })
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* Structured: fields is a NULL-terminated array of "KEY=value" strings that go
 * to the journal as fields (and are appended in brackets on the console at debug level). */
#define log_struct(level, fields, ...) \
        (void) ({ \
                int _l_ = (level); \
                _l_ <= log_get_max_level() \
                        ? log_struct_internal(_l_, 0, __FILE__, __LINE__, __func__, (fields), true, __VA_ARGS__) \
                        : 0; \
        })
/* The same, with the fields for the journal only: for lines whose message
 * already says all they hold (a line per query), where the console would
 * only repeat it. */
#define log_struct_journal(level, fields, ...) \
        (void) ({ \
                int _l_ = (level); \
                _l_ <= log_get_max_level() \
                        ? log_struct_internal(_l_, 0, __FILE__, __LINE__, __func__, (fields), false, __VA_ARGS__) \
                        : 0; \
        })

/* Fields for log_struct() whose values need formatting, built on the stack:
 * no allocation and no lock, so the answering threads use it too. Call
 * log_fields_init() (not "= {}", which clears the whole buffer) only once the
 * level is known to be enabled. A field that does not fit is cut short, or
 * left out when not even its "KEY=" fits; beyond LOG_FIELDS_MAX fields are
 * left out. */
#define LOG_FIELDS_MAX 12
#define LOG_FIELDS_SIZE 3072

typedef struct LogFields {
        const char *v[LOG_FIELDS_MAX + 1]; /* NULL-terminated: what log_struct() takes */
        size_t n, used;
        char buf[LOG_FIELDS_SIZE];
} LogFields;

static inline void log_fields_init(LogFields *f) {
        f->n = f->used = 0;
        f->v[0] = NULL;
}
void log_fields_add(LogFields *f, const char *format, ...) _printf_(2, 3);
