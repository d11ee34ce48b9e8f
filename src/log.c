/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* CODE_FILE, CODE_LINE and CODE_FUNC are the caller's, sent below: without
 * this, sd_journal_sendv() adds log.c's own as a second value of each. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <time.h>

#include "log.h"

/* Read by every thread that logs (the DNS forwarder's too), set by the
 * control loop on reload and SetLogLevel: relaxed atomics. */
static int max_level = LOG_INFO;
static LogTarget target = LOG_TARGET_AUTO;
static int journal_decided = -1; /* -1 unknown, 0 console, 1 journal */

/* Answering threads log too: the level and the journal decision are read
 * and set with relaxed atomics (a racy first decision decides the same). */
void log_set_max_level(int level) {
        __atomic_store_n(&max_level, level, __ATOMIC_RELAXED);
}

int log_get_max_level(void) {
        return __atomic_load_n(&max_level, __ATOMIC_RELAXED);
}

void log_set_target(LogTarget t) {
        __atomic_store_n(&target, t, __ATOMIC_RELAXED);
        __atomic_store_n(&journal_decided, -1, __ATOMIC_RELAXED);
}

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

const char *log_level_to_string(int level) {
        return level >= 0 && (size_t) level < ELEMENTSOF(level_names) ? level_names[level] : NULL;
}

int log_parse_level(const char *s) {
        const char *const *names = level_names;

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is connected to the journal;
 * only trust it if our stderr really is that stream. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2) /* NOLINT(cert-err34-c): garbage means not the journal */
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static bool use_journal(void) {
        LogTarget t = __atomic_load_n(&target, __ATOMIC_RELAXED);
        int decided;

        if (t == LOG_TARGET_JOURNAL)
                return true;
        if (t == LOG_TARGET_CONSOLE)
                return false;
        decided = __atomic_load_n(&journal_decided, __ATOMIC_RELAXED);
        if (decided < 0) {
                decided = stderr_is_journal();
                __atomic_store_n(&journal_decided, decided, __ATOMIC_RELAXED);
        }
        return decided;
}

static void write_console(int level, const char *msg, const char *const *fields, bool console_fields) {
        static const char *const prefix[] = {
                [LOG_EMERG] = "EMERG",  [LOG_ALERT] = "ALERT",   [LOG_CRIT] = "CRIT", [LOG_ERR] = "ERROR",
                [LOG_WARNING] = "WARN", [LOG_NOTICE] = "NOTICE", [LOG_INFO] = "INFO", [LOG_DEBUG] = "DEBUG",
        };
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) localtime_r(&ts.tv_sec, &tm);
        (void) strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);

        flockfile(stderr);
        fprintf(stderr, "%s.%03ld joyrided %s: %s", stamp, ts.tv_nsec / 1000000, prefix[level & 7], msg);
        if (fields && fields[0] && console_fields && log_get_max_level() >= LOG_DEBUG) {
                fputs(" [", stderr);
                for (size_t i = 0; fields[i]; i++)
                        fprintf(stderr, "%s%s", i ? " " : "", fields[i]);
                fputc(']', stderr);
        }
        fputc('\n', stderr);
        funlockfile(stderr);
}

_printf_(8, 0) static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                                       const char *const *fields, bool console_fields, const char *format, va_list ap) {
        char msg[2048];
        int saved = errno;

        /* Let %m print the error we were given, not whatever errno happens to be. */
        errno = error ? abs(error) : saved;
        (void) vsnprintf(msg, sizeof msg, format, ap);

        if (use_journal()) {
                char prio[32], cfile[512], cline[32], cfunc[256], cerr[32], message[2100];
                struct iovec iov[64];
                size_t n = 0;

                snprintf(prio, sizeof prio, "PRIORITY=%i", level & 7);
                snprintf(cfile, sizeof cfile, "CODE_FILE=%s", file);
                snprintf(cline, sizeof cline, "CODE_LINE=%i", line);
                snprintf(cfunc, sizeof cfunc, "CODE_FUNC=%s", func);
                snprintf(message, sizeof message, "MESSAGE=%s", msg);
                iov[n++] = (struct iovec) { message, strlen(message) };
                iov[n++] = (struct iovec) { prio, strlen(prio) };
                iov[n++] = (struct iovec) { cfile, strlen(cfile) };
                iov[n++] = (struct iovec) { cline, strlen(cline) };
                iov[n++] = (struct iovec) { cfunc, strlen(cfunc) };
                iov[n++] =
                        (struct iovec) { (char *) "SYSLOG_IDENTIFIER=joyrided", strlen("SYSLOG_IDENTIFIER=joyrided") };
                if (error) {
                        snprintf(cerr, sizeof cerr, "ERRNO=%i", abs(error));
                        iov[n++] = (struct iovec) { cerr, strlen(cerr) };
                }
                for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec) { (char *) fields[i], strlen(fields[i]) };

                /* With no journal socket sd_journal_sendv() silently drops the
                 * message; with a stale one it fails: then fall back to stderr. */
                if (sd_journal_sendv(iov, (int) n) < 0)
                        write_console(level, msg, fields, console_fields);
        } else
                write_console(level, msg, fields, console_fields);

        errno = saved;
        return error ? -abs(error) : 0;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, NULL, false, format, ap);
        va_end(ap);
        return r;
}

int log_struct_internal(int level, int error, const char *file, int line, const char *func, const char *const *fields,
                        bool console_fields, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, fields, console_fields, format, ap);
        va_end(ap);
        return r;
}

void log_fields_add(LogFields *f, const char *format, ...) {
        size_t room = sizeof f->buf - f->used;
        char *p = f->buf + f->used;
        va_list ap;
        int k;

        if (f->n >= LOG_FIELDS_MAX || room < 3)
                return;
        va_start(ap, format);
        k = vsnprintf(p, room, format, ap);
        va_end(ap);
        if (k < 0)
                return;
        /* Cut short is fine; without its '=' it is no field (and the journal
         * would refuse the whole entry). */
        if (!strchr(p, '=') || p[0] == '=')
                return;
        f->used += strlen(p) + 1;
        f->v[f->n++] = p;
        f->v[f->n] = NULL;
}
