/* SPDX-License-Identifier: MIT */
/* The logger's structured fields: LogFields (what it keeps when the buffer
 * or the field count runs out) and what the console shows of fields with
 * log_struct() and log_struct_journal(). The journal side runs under real
 * journald in tests/integration/test-systemd.sh. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "test-util.h"

static void test_fields(void) {
        LogFields f;
        char big[LOG_FIELDS_SIZE * 2];

        TEST_BEGIN("test_fields");
        log_fields_init(&f);
        CHECK(f.v[0] == NULL);
        log_fields_add(&f, "JOYRIDE_NAME=%s", "web.example.com");
        log_fields_add(&f, "JOYRIDE_LINE=%u", 12u);
        CHECK_INT_EQ(f.n, 2);
        CHECK_STREQ(f.v[0], "JOYRIDE_NAME=web.example.com");
        CHECK_STREQ(f.v[1], "JOYRIDE_LINE=12");
        CHECK(f.v[2] == NULL);

        /* No '=' (or nothing before it): no field, as the journal would
         * refuse the whole entry. */
        log_fields_add(&f, "%s", "JUST_A_KEY");
        log_fields_add(&f, "=%s", "value");
        CHECK_INT_EQ(f.n, 2);
        CHECK(f.v[2] == NULL);

        /* A value longer than the room left is cut, its key kept; then the
         * buffer is full and further fields are left out. */
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        log_fields_add(&f, "JOYRIDE_VALUE=%s", big);
        CHECK_INT_EQ(f.n, 3);
        CHECK(strncmp(f.v[2], "JOYRIDE_VALUE=xxx", 17) == 0);
        CHECK(strlen(f.v[2]) < LOG_FIELDS_SIZE);
        CHECK(f.used <= sizeof f.buf);
        log_fields_add(&f, "JOYRIDE_MORE=%s", "1");
        CHECK_INT_EQ(f.n, 3);
        CHECK(f.v[3] == NULL);

        /* At most LOG_FIELDS_MAX fields, still NULL-terminated. */
        log_fields_init(&f);
        for (unsigned i = 0; i < LOG_FIELDS_MAX + 5; i++)
                log_fields_add(&f, "JOYRIDE_F%u=%u", i, i);
        CHECK_INT_EQ(f.n, LOG_FIELDS_MAX);
        CHECK_STREQ(f.v[LOG_FIELDS_MAX - 1], "JOYRIDE_F11=11");
        CHECK(f.v[LOG_FIELDS_MAX] == NULL);
}

/* Runs f with stderr going to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*f)(void)) {
        static char out[4096];
        FILE *tmp = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        CHECK(tmp && saved >= 0);
        fflush(stderr);
        CHECK(dup2(fileno(tmp), STDERR_FILENO) >= 0);
        f();
        fflush(stderr);
        CHECK(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        rewind(tmp);
        n = fread(out, 1, sizeof out - 1, tmp);
        out[n] = 0;
        fclose(tmp);
        return out;
}

static void log_both(void) {
        const char *fields[] = { "JOYRIDE_NAME=web.example.com", "JOYRIDE_TYPE=A", NULL };

        log_struct(LOG_INFO, fields, "shown with fields %d", 1);
        log_struct_journal(LOG_INFO, fields, "shown without fields %d", 2);
}

static void test_console(void) {
        char *out;

        TEST_BEGIN("test_console");
        log_set_target(LOG_TARGET_CONSOLE);

        /* At debug level the console shows log_struct()'s fields in
         * brackets, never log_struct_journal()'s: its message says them. */
        log_set_max_level(LOG_DEBUG);
        out = capture_stderr(log_both);
        CHECK(strstr(out, "INFO: shown with fields 1 [JOYRIDE_NAME=web.example.com JOYRIDE_TYPE=A]\n"));
        CHECK(strstr(out, "INFO: shown without fields 2\n"));

        /* Below debug: the messages alone. */
        log_set_max_level(LOG_INFO);
        out = capture_stderr(log_both);
        CHECK(strstr(out, "INFO: shown with fields 1\n"));
        CHECK(strstr(out, "INFO: shown without fields 2\n"));
        CHECK(!strstr(out, "JOYRIDE_"));

        /* Above the level: nothing at all. */
        log_set_max_level(LOG_WARNING);
        out = capture_stderr(log_both);
        CHECK_STREQ(out, "");
}

int main(void) {
        test_fields();
        test_console();
        printf("test-log: ok\n");
        return 0;
}
