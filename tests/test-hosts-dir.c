/* SPDX-License-Identifier: MIT */
/* Unit tests for the hosts-directory source: real files in a temporary
 * directory, a real sd-event loop run until what a user would see (records in
 * the store) holds or 2 s pass, and the store's change events checked to be
 * exactly the expected adds and removes, so that a reload that churns
 * unchanged lines fails. */

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "hosts.h"
#include "log.h"
#include "store.h"
#include "test-util.h"

#define DEADLINE_USEC (2 * USEC_PER_SEC)
#define MAX_EVENTS 256

static char tmp_root[] = "/tmp/test-hosts-dir-XXXXXX";
static bool tmp_made;

static void cleanup_tmp(void) {
        char cmd[128];

        if (!tmp_made)
                return;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        (void) !system(cmd); /* NOLINT(cert-env33-c): rm -rf of our own temp folder */
        tmp_made = false;
}

typedef struct Test {
        sd_event *event;
        Store *store;
        HostsDir *dir;
        char path[256];           /* the hosts directory */
        char *events[MAX_EVENTS]; /* "+name value file" / "-name value file" */
        unsigned n_events;
        bool quiet; /* too many changes to keep: do not record them */
} Test;

static void on_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Test *t = userdata;
        const char *file = strrchr(r->owner, '/');
        char *e;

        if (t->quiet)
                return;
        CHECK(t->n_events < MAX_EVENTS);
        CHECK(asprintf(&e, "%c%s %s %s", change == RECORD_ADDED ? '+' : '-', r->name, r->value,
                       file ? file + 1 : r->owner) > 0);
        t->events[t->n_events++] = e;
}

static void clear_events(Test *t) {
        for (unsigned i = 0; i < t->n_events; i++)
                free(t->events[i]);
        t->n_events = 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Checks that the change events since the last call are exactly the given
 * ones, in any order, then forgets them. */
static bool expect_events_internal(Test *t, const char *first, ...) {
        const char *want[MAX_EVENTS];
        unsigned n = 0;
        va_list ap;
        bool ok;

        va_start(ap, first);
        /* clang 14's analyzer loses va_start in some inlined paths, depending on unrelated code in
         * this file (it did after an edit of cleanup_tmp()). */
        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is right above */
        for (const char *e = first; e; e = va_arg(ap, const char *))
                want[n++] = e;
        va_end(ap);

        qsort(want, n, sizeof want[0], cmp_str);
        qsort(t->events, t->n_events, sizeof t->events[0], cmp_str);

        ok = n == t->n_events;
        for (unsigned i = 0; ok && i < n; i++)
                ok = streq(want[i], t->events[i]);
        if (!ok) {
                fprintf(stderr, "expected %u change events:\n", n);
                for (unsigned i = 0; i < n; i++)
                        fprintf(stderr, "    %s\n", want[i]);
                fprintf(stderr, "got %u:\n", t->n_events);
                for (unsigned i = 0; i < t->n_events; i++)
                        fprintf(stderr, "    %s\n", t->events[i]);
        }
        clear_events(t);
        return ok;
}
#define expect_events(t, ...) expect_events_internal(t, __VA_ARGS__, NULL)
#define expect_no_events(t) expect_events_internal(t, NULL)

typedef struct Find {
        const char *value;
        const char *file; /* basename of the owner's file; NULL: any */
        unsigned line;    /* 0: any */
        bool found;
} Find;

static int find_cb(const Record *r, void *userdata) {
        Find *f = userdata;
        const char *file = strrchr(r->owner, '/');

        if (!streq(r->value, f->value))
                return 0;
        if (f->file && (!file || !streq(file + 1, f->file)))
                return 0;
        if (f->line && r->line != f->line)
                return 0;
        f->found = true;
        return 1;
}

static bool has_record(Test *t, const char *name, const char *value, const char *file, unsigned line) {
        Find f = { .value = value, .file = file, .line = line };

        (void) store_foreach(t->store, name, "hosts:", find_cb, &f);
        return f.found;
}

/* Whether the name answers at all (any record, any type). */
static bool name_exists(Test *t, const char *name) {
        return store_node_has_data(store_lookup(t->store, name));
}

/* Runs the loop until the record is there (or gone), or the deadline. */
static bool wait_record(Test *t, const char *name, const char *value, bool present) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;

        while (has_record(t, name, value, NULL, 0) != present) {
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return false;
                CHECK(sd_event_run(t->event, 10 * USEC_PER_MSEC) >= 0);
        }
        return true;
}

static bool wait_status_exists(Test *t, bool exists) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        HostsDirStatus st;

        for (;;) {
                hosts_dir_get_status(t->dir, &st);
                if (st.exists == exists)
                        return true;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return false;
                CHECK(sd_event_run(t->event, 10 * USEC_PER_MSEC) >= 0);
        }
}

/* Whether the status lists a warning for file (a path) and line whose text
 * has why in it. */
static bool find_warning(const HostsDirStatus *st, const char *file, unsigned line, const char *why) {
        for (size_t i = 0; i < st->n_warnings_listed; i++)
                if (streq(st->warnings[i].file, file) && st->warnings[i].line == line &&
                    strstr(st->warnings[i].why, why))
                        return true;
        return false;
}

/* Runs the loop until the status lists (or no longer lists) that warning. */
static bool wait_warning(Test *t, const char *file, unsigned line, const char *why, bool present) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        HostsDirStatus st;

        for (;;) {
                hosts_dir_get_status(t->dir, &st);
                if (find_warning(&st, file, line, why) == present)
                        return true;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return false;
                CHECK(sd_event_run(t->event, 10 * USEC_PER_MSEC) >= 0);
        }
}

/* Runs the loop until no file waits to be loaded and no change to be applied. */
static bool wait_idle(Test *t) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;

        while (hosts_dir_busy(t->dir)) {
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return false;
                CHECK(sd_event_run(t->event, 10 * USEC_PER_MSEC) >= 0);
        }
        return true;
}

/* Runs the loop for a while, so that late or duplicate reloads would show. */
static void settle(Test *t, uint64_t usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

        while (now_usec(CLOCK_MONOTONIC) < end)
                CHECK(sd_event_run(t->event, 10 * USEC_PER_MSEC) >= 0);
}

static void write_file_at(const char *path, const char *content) {
        FILE *f = fopen(path, "we");

        CHECK(f);
        CHECK(fputs(content, f) >= 0);
        CHECK(fclose(f) == 0);
}

static void write_file(Test *t, const char *name, const char *content) {
        char path[512];

        snprintf(path, sizeof path, "%s/%s", t->path, name);
        write_file_at(path, content);
}

static void append_file(Test *t, const char *name, const char *content) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", t->path, name);
        f = fopen(path, "ae");
        CHECK(f);
        CHECK(fputs(content, f) >= 0);
        CHECK(fclose(f) == 0);
}

static void in_dir(Test *t, const char *name, char out[static 512]) {
        snprintf(out, 512, "%s/%s", t->path, name);
}

static void test_setup(Test *t, const char *subdir, bool create) {
        *t = (Test) {};
        snprintf(t->path, sizeof t->path, "%s/%s", tmp_root, subdir);
        if (create)
                CHECK(mkdir(t->path, 0755) == 0);
        CHECK(sd_event_new(&t->event) >= 0);
        CHECK(store_new(&t->store) >= 0);
        CHECK(store_subscribe(t->store, on_change, t) >= 0);
}

static void test_start_limits(Test *t, uint32_t max_per_file, uint32_t max_total) {
        HostsDirOptions opts = {
                .path = t->path,
                .ttl = 300,
                .max_records_per_file = max_per_file,
                .max_records = max_total,
        };

        CHECK(hosts_dir_new(&t->dir, t->event, t->store, &opts) >= 0);
}

static void test_start(Test *t) {
        test_start_limits(t, 0, 0);
}

static void test_teardown(Test *t) {
        t->dir = hosts_dir_free(t->dir);
        /* Freeing the source takes its records out of the store. */
        CHECK(store_count(t->store) == 0);
        store_unsubscribe(t->store, on_change, t);
        clear_events(t);
        t->store = store_free(t->store);
        t->event = sd_event_unref(t->event);
}

static void test_live_changes(void) {
        Test t;
        HostsDirStatus st;
        char a[512], b[512], outside[512];

        test_setup(&t, "live", true);
        write_file(&t, "a.hosts",
                   "# the a file\n"
                   "10.0.0.1 one.test uno.test\n"
                   "10.0.0.2 two.test\n");
        write_file(&t, "b.hosts", "10.0.1.1 bee.test\n");
        write_file(&t, ".hidden", "10.9.9.9 hidden.test\n");
        write_file(&t, "a.hosts~", "10.9.9.8 backup.test\n");
        write_file(&t, "a.hosts.swp", "10.9.9.7 swap.test\n");
        write_file(&t, "a.hosts.bak", "10.9.9.6 bak.test\n");
        write_file(&t, "a.hosts.dpkg-old", "10.9.9.5 dpkg.test\n");
        write_file(&t, "#a.hosts#", "10.9.9.4 autosave.test\n");
        write_file(&t, "bad.hosts",
                   "10.0.2.1 fine.test\n"
                   "10.0.0.300 nope.test\n"
                   "10.0.2.2 good.test b@d.test\n");
        CHECK(mkdir(t.path, 0755) < 0 && errno == EEXIST);
        in_dir(&t, "subdir", a);
        CHECK(mkdir(a, 0755) == 0);

        /* Initial load: synchronous, before the loop ever runs. */
        test_start(&t);
        CHECK(has_record(&t, "one.test", "10.0.0.1", "a.hosts", 2));
        CHECK(has_record(&t, "uno.test", "10.0.0.1", "a.hosts", 2));
        CHECK(has_record(&t, "two.test", "10.0.0.2", "a.hosts", 3));
        CHECK(has_record(&t, "bee.test", "10.0.1.1", "b.hosts", 1));
        CHECK(has_record(&t, "fine.test", "10.0.2.1", "bad.hosts", 1));
        CHECK(has_record(&t, "good.test", "10.0.2.2", "bad.hosts", 3));
        CHECK(!name_exists(&t, "nope.test"));
        CHECK(!name_exists(&t, "hidden.test"));
        CHECK(!name_exists(&t, "backup.test"));
        CHECK(!name_exists(&t, "swap.test"));
        CHECK(!name_exists(&t, "bak.test"));
        CHECK(!name_exists(&t, "dpkg.test"));
        CHECK(!name_exists(&t, "autosave.test"));
        CHECK(store_count(t.store) == 6);
        CHECK(expect_events(&t, "+one.test 10.0.0.1 a.hosts", "+uno.test 10.0.0.1 a.hosts",
                            "+two.test 10.0.0.2 a.hosts", "+bee.test 10.0.1.1 b.hosts", "+fine.test 10.0.2.1 bad.hosts",
                            "+good.test 10.0.2.2 bad.hosts"));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.exists);
        CHECK(streq(st.path, t.path));
        CHECK(st.n_files == 3);
        CHECK(st.n_records == 6);
        CHECK(st.n_warnings == 2);
        CHECK(st.last_load_usec > 0);
        /* Listed with file, line and the log's wording, in line order. */
        in_dir(&t, "bad.hosts", a);
        CHECK(st.n_warnings_listed == 2);
        CHECK(streq(st.warnings[0].file, a) && st.warnings[0].line == 2);
        CHECK(streq(st.warnings[0].why, "not an IP address: '10.0.0.300'"));
        CHECK(streq(st.warnings[1].file, a) && st.warnings[1].line == 3);
        CHECK(strstr(st.warnings[1].why, "invalid name 'b@d.test'"));
        settle(&t, 100 * USEC_PER_MSEC);
        CHECK(expect_no_events(&t));

        /* Many bad lines: all counted, the first HOSTS_WARNINGS_LISTED_MAX listed. */
        {
                char many[512], line[64];
                FILE *f;

                in_dir(&t, "many.hosts", many);
                f = fopen(many, "we");
                CHECK(f);
                for (unsigned i = 1; i <= 150; i++) {
                        snprintf(line, sizeof line, "10.0.0.%u bad%u.test\n", 300 + i, i);
                        CHECK(fputs(line, f) >= 0);
                }
                CHECK(fclose(f) == 0);
                CHECK(wait_warning(&t, many, 1, "not an IP address", true));
                hosts_dir_get_status(t.dir, &st);
                CHECK(st.n_warnings == 152);
                CHECK(st.n_warnings_listed == HOSTS_WARNINGS_LISTED_MAX);
                /* Ordered by file: bad.hosts before many.hosts. */
                CHECK(streq(st.warnings[0].file, a) && st.warnings[0].line == 2);
                CHECK(st.warnings[HOSTS_WARNINGS_LISTED_MAX - 1].line == HOSTS_WARNINGS_LISTED_MAX - 2);
                CHECK(unlink(many) == 0);
                CHECK(wait_warning(&t, many, 1, "not an IP address", false));
                hosts_dir_get_status(t.dir, &st);
                CHECK(st.n_warnings == 2 && st.n_warnings_listed == 2);
                settle(&t, 100 * USEC_PER_MSEC);
                CHECK(expect_no_events(&t));
        }

        /* Add a line. */
        append_file(&t, "a.hosts", "10.0.0.3 three.test\n");
        CHECK(wait_record(&t, "three.test", "10.0.0.3", true));
        CHECK(has_record(&t, "three.test", "10.0.0.3", "a.hosts", 4));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+three.test 10.0.0.3 a.hosts"));

        /* Change an address, moving lines around: old record gone, new one
         * there, unchanged records keep quiet but get their new line number. */
        write_file(&t, "a.hosts",
                   "10.0.0.3 three.test\n"
                   "# the a file, edited\n"
                   "10.0.0.1 one.test uno.test\n"
                   "10.0.0.22 two.test\n");
        CHECK(wait_record(&t, "two.test", "10.0.0.22", true));
        CHECK(!has_record(&t, "two.test", "10.0.0.2", NULL, 0));
        CHECK(has_record(&t, "two.test", "10.0.0.22", "a.hosts", 4));
        CHECK(has_record(&t, "three.test", "10.0.0.3", "a.hosts", 1));
        CHECK(has_record(&t, "one.test", "10.0.0.1", "a.hosts", 3));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "-two.test 10.0.0.2 a.hosts", "+two.test 10.0.0.22 a.hosts"));

        /* Delete a file: its records go, the others stay. */
        in_dir(&t, "b.hosts", b);
        CHECK(unlink(b) == 0);
        CHECK(wait_record(&t, "bee.test", "10.0.1.1", false));
        CHECK(!name_exists(&t, "bee.test"));
        CHECK(has_record(&t, "one.test", "10.0.0.1", "a.hosts", 3));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "-bee.test 10.0.1.1 b.hosts"));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_files == 2);
        CHECK(st.n_records == 6);

        /* An editor's save: write a temp file, rename it over the original. */
        in_dir(&t, "a.hosts", a);
        in_dir(&t, ".a.hosts.tmp", b);
        write_file_at(b,
                      "10.0.0.3 three.test\n"
                      "10.0.0.1 one.test\n"
                      "10.0.0.22 two.test\n"
                      "2001:DB8:0::5 five.test\n");
        CHECK(rename(b, a) == 0);
        CHECK(wait_record(&t, "five.test", "2001:db8::5", true));
        CHECK(!has_record(&t, "uno.test", "10.0.0.1", NULL, 0));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "-uno.test 10.0.0.1 a.hosts", "+five.test 2001:db8::5 a.hosts"));

        /* Renamed into the directory, then out of it. */
        snprintf(outside, sizeof outside, "%s/moving.hosts", tmp_root);
        write_file_at(outside, "10.0.3.1 mover.test\n");
        in_dir(&t, "moving.hosts", b);
        CHECK(rename(outside, b) == 0);
        CHECK(wait_record(&t, "mover.test", "10.0.3.1", true));
        CHECK(rename(b, outside) == 0);
        CHECK(wait_record(&t, "mover.test", "10.0.3.1", false));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+mover.test 10.0.3.1 moving.hosts", "-mover.test 10.0.3.1 moving.hosts"));
        CHECK(unlink(outside) == 0);

        /* A dotfile written and changed: ignored. Renamed to a plain name: loaded. */
        write_file(&t, ".draft", "10.0.4.1 draft.test\n");
        append_file(&t, ".draft", "10.0.4.2 draft2.test\n");
        settle(&t, 250 * USEC_PER_MSEC);
        CHECK(!name_exists(&t, "draft.test"));
        CHECK(expect_no_events(&t));
        in_dir(&t, ".draft", a);
        in_dir(&t, "draft.hosts", b);
        CHECK(rename(a, b) == 0);
        CHECK(wait_record(&t, "draft2.test", "10.0.4.2", true));
        CHECK(has_record(&t, "draft.test", "10.0.4.1", "draft.hosts", 1));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+draft.test 10.0.4.1 draft.hosts", "+draft2.test 10.0.4.2 draft.hosts"));
        CHECK(unlink(b) == 0);
        CHECK(wait_record(&t, "draft.test", "10.0.4.1", false));
        clear_events(&t);

        /* A writer that never closes the file is still seen (IN_MODIFY). */
        {
                int fd;
                uint64_t start;
                const char *line = "10.0.5.1 open.test\n";

                in_dir(&t, "open.hosts", a);
                fd = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                CHECK(fd >= 0);
                CHECK(write(fd, line, strlen(line)) == (ssize_t) strlen(line));
                start = now_usec(CLOCK_MONOTONIC);
                CHECK(wait_record(&t, "open.test", "10.0.5.1", true));
                CHECK(now_usec(CLOCK_MONOTONIC) - start < 500 * USEC_PER_MSEC);
                CHECK(close(fd) == 0);
                settle(&t, 150 * USEC_PER_MSEC);
                CHECK(expect_events(&t, "+open.test 10.0.5.1 open.hosts"));
                CHECK(unlink(a) == 0);
                CHECK(wait_record(&t, "open.test", "10.0.5.1", false));
                clear_events(&t);
        }

        /* Symlinks to regular files are followed. */
        snprintf(outside, sizeof outside, "%s/target.txt", tmp_root);
        write_file_at(outside, "10.0.6.1 linked.test\n");
        in_dir(&t, "linked.hosts", a);
        CHECK(symlink(outside, a) == 0);
        CHECK(wait_record(&t, "linked.test", "10.0.6.1", true));
        CHECK(unlink(a) == 0);
        CHECK(wait_record(&t, "linked.test", "10.0.6.1", false));
        clear_events(&t);

        /* A file larger than 64 MiB is refused (sparse: costs no disk). */
        {
                int fd;

                in_dir(&t, "huge.hosts", a);
                fd = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                CHECK(fd >= 0);
                CHECK(write(fd, "10.0.7.1 huge.test\n", 19) == 19);
                CHECK(ftruncate(fd, (off_t) 65 * 1024 * 1024) == 0);
                CHECK(close(fd) == 0);
                settle(&t, 250 * USEC_PER_MSEC);
                CHECK(!name_exists(&t, "huge.test"));
                CHECK(expect_no_events(&t));
                hosts_dir_get_status(t.dir, &st);
                CHECK(st.n_files == 2);
                /* Listed as a warning for as long as it is there. */
                CHECK(st.n_warnings == 3);
                CHECK(find_warning(&st, a, 0, "larger than 64 MiB, ignoring it"));
                CHECK(unlink(a) == 0);
                settle(&t, 150 * USEC_PER_MSEC);
                hosts_dir_get_status(t.dir, &st);
                CHECK(!find_warning(&st, a, 0, "larger than 64 MiB"));
        }

        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_files == 2);
        CHECK(st.n_records == 6);
        CHECK(st.n_warnings == 2);

        test_teardown(&t);
}

static void test_dir_removed_and_recreated(void) {
        Test t;
        HostsDirStatus st;
        char cmd[600];

        test_setup(&t, "removed", true);
        write_file(&t, "a.hosts", "10.1.0.1 a.removed.test\n");
        write_file(&t, "b.hosts", "10.1.0.2 b.removed.test\n");
        test_start(&t);
        CHECK(has_record(&t, "a.removed.test", "10.1.0.1", "a.hosts", 1));
        clear_events(&t);

        /* Removed: all its records go, and it is waited for. */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t.path);
        CHECK(system(cmd) == 0); /* NOLINT(cert-env33-c): rm -rf of our own temp folder */
        CHECK(wait_status_exists(&t, false));
        CHECK(wait_idle(&t));
        CHECK(store_count(t.store) == 0);
        settle(&t, 100 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "-a.removed.test 10.1.0.1 a.hosts", "-b.removed.test 10.1.0.2 b.hosts"));
        hosts_dir_get_status(t.dir, &st);
        CHECK(!st.exists && st.n_files == 0 && st.n_records == 0);

        /* Created again: loaded again. */
        CHECK(mkdir(t.path, 0755) == 0);
        write_file(&t, "c.hosts", "10.1.0.3 c.removed.test\n");
        CHECK(wait_record(&t, "c.removed.test", "10.1.0.3", true));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.exists && st.n_files == 1);
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+c.removed.test 10.1.0.3 c.hosts"));

        /* Renamed away: the same as removed. Renamed back: loaded. */
        snprintf(cmd, sizeof cmd, "%s.away", t.path);
        CHECK(rename(t.path, cmd) == 0);
        CHECK(wait_record(&t, "c.removed.test", "10.1.0.3", false));
        CHECK(wait_status_exists(&t, false));
        /* Changes in the old directory, now elsewhere, are not ours. */
        {
                char p[700];

                snprintf(p, sizeof p, "%s/d.hosts", cmd);
                write_file_at(p, "10.1.0.4 d.removed.test\n");
        }
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(!name_exists(&t, "d.removed.test"));
        CHECK(rename(cmd, t.path) == 0);
        CHECK(wait_record(&t, "d.removed.test", "10.1.0.4", true));
        CHECK(wait_idle(&t));
        CHECK(has_record(&t, "c.removed.test", "10.1.0.3", "c.hosts", 1));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "-c.removed.test 10.1.0.3 c.hosts", "+c.removed.test 10.1.0.3 c.hosts",
                            "+d.removed.test 10.1.0.4 d.hosts"));

        test_teardown(&t);
}

static void test_dir_created_after_start(void) {
        Test t;
        HostsDirStatus st;
        char p[600];

        /* Two levels missing: the watch has to walk down as they appear. */
        test_setup(&t, "later/deeper/hosts.d", false);
        test_start(&t);
        hosts_dir_get_status(t.dir, &st);
        CHECK(!st.exists && st.n_files == 0);
        /* Listed: what is missing, and what is watched for it. */
        snprintf(p, sizeof p, "does not exist (%s/later is missing); watching %s for it to appear", tmp_root, tmp_root);
        CHECK(st.n_warnings == 1 && st.n_warnings_listed == 1);
        CHECK(find_warning(&st, t.path, 0, p));
        settle(&t, 50 * USEC_PER_MSEC);

        snprintf(p, sizeof p, "%s/later", tmp_root);
        CHECK(mkdir(p, 0755) == 0);
        settle(&t, 50 * USEC_PER_MSEC);
        snprintf(p, sizeof p, "%s/later/deeper", tmp_root);
        CHECK(mkdir(p, 0755) == 0);
        settle(&t, 50 * USEC_PER_MSEC);
        hosts_dir_get_status(t.dir, &st);
        CHECK(!st.exists);

        /* Made elsewhere with its file, then renamed into place. */
        snprintf(p, sizeof p, "%s/later/deeper/.staging", tmp_root);
        CHECK(mkdir(p, 0755) == 0);
        {
                char f[700];

                snprintf(f, sizeof f, "%s/x.hosts", p);
                write_file_at(f, "10.2.0.1 x.later.test\n");
        }
        CHECK(rename(p, t.path) == 0);
        CHECK(wait_record(&t, "x.later.test", "10.2.0.1", true));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.exists && st.n_files == 1 && st.n_records == 1);
        CHECK(st.n_warnings == 0 && st.n_warnings_listed == 0);

        /* And live from then on. */
        write_file(&t, "y.hosts", "10.2.0.2 y.later.test\n");
        CHECK(wait_record(&t, "y.later.test", "10.2.0.2", true));
        settle(&t, 150 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+x.later.test 10.2.0.1 x.hosts", "+y.later.test 10.2.0.2 y.hosts"));

        test_teardown(&t);

        /* The simple case: mkdir, then write a file. */
        test_setup(&t, "simple-later", false);
        test_start(&t);
        hosts_dir_get_status(t.dir, &st);
        snprintf(p, sizeof p, "does not exist; watching %s for it to appear", tmp_root);
        CHECK(find_warning(&st, t.path, 0, p));
        CHECK(mkdir(t.path, 0755) == 0);
        write_file(&t, "z.hosts", "10.2.0.3 z.later.test\n");
        CHECK(wait_record(&t, "z.later.test", "10.2.0.3", true));
        test_teardown(&t);
}

static void test_rescan(void) {
        Test t;
        HostsDirStatus st;
        char p[512];

        test_setup(&t, "rescan", true);
        write_file(&t, "a.hosts", "10.3.0.1 a.rescan.test\n10.3.0.2 keep.rescan.test\n");
        write_file(&t, "b.hosts", "10.3.0.3 b.rescan.test\n");
        test_start(&t);
        clear_events(&t);

        /* Change things without running the loop: only a rescan sees them. */
        write_file(&t, "a.hosts", "10.3.0.2 keep.rescan.test\n10.3.0.4 new.rescan.test\n");
        in_dir(&t, "b.hosts", p);
        CHECK(unlink(p) == 0);
        write_file(&t, "c.hosts", "10.3.0.5 c.rescan.test\n");

        /* Read in the background; nothing changes before the loop runs. */
        CHECK(hosts_dir_rescan(t.dir) >= 0);
        CHECK(hosts_dir_busy(t.dir));
        CHECK(has_record(&t, "a.rescan.test", "10.3.0.1", "a.hosts", 1));
        CHECK(wait_idle(&t));
        CHECK(!name_exists(&t, "a.rescan.test"));
        CHECK(!name_exists(&t, "b.rescan.test"));
        CHECK(has_record(&t, "keep.rescan.test", "10.3.0.2", "a.hosts", 1));
        CHECK(has_record(&t, "new.rescan.test", "10.3.0.4", "a.hosts", 2));
        CHECK(has_record(&t, "c.rescan.test", "10.3.0.5", "c.hosts", 1));
        CHECK(expect_events(&t, "-a.rescan.test 10.3.0.1 a.hosts", "-b.rescan.test 10.3.0.3 b.hosts",
                            "+new.rescan.test 10.3.0.4 a.hosts", "+c.rescan.test 10.3.0.5 c.hosts"));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_files == 2 && st.n_records == 3);

        /* The inotify events still queued then reload what is unchanged: no churn. */
        settle(&t, 250 * USEC_PER_MSEC);
        CHECK(expect_no_events(&t));

        /* Rescanning an unchanged directory changes nothing. */
        CHECK(hosts_dir_rescan(t.dir) >= 0);
        CHECK(wait_idle(&t));
        CHECK(expect_no_events(&t));
        CHECK(store_count(t.store) == 3);

        test_teardown(&t);
}


/* A file of many lines reloads in batches: the loop runs (and would answer
 * queries) between them, and the store passes through several sizes on the
 * way, instead of changing in one long step. */
static void test_large_file_in_batches(void) {
        Test t;
        HostsDirStatus st;
        char path[512];
        FILE *f;
        size_t last, steps = 0;
        uint64_t deadline;

        test_setup(&t, "large", true);
        t.quiet = true;
        test_start(&t);

        in_dir(&t, "big.hosts", path);
        f = fopen(path, "we");
        CHECK(f);
        for (unsigned i = 0; i < 10000; i++)
                CHECK(fprintf(f, "10.4.%u.%u big%u.large.test\n", i / 250, i % 250, i) > 0);
        CHECK(fclose(f) == 0);

        last = store_count(t.store);
        deadline = now_usec(CLOCK_MONOTONIC) + 10 * DEADLINE_USEC;
        while (store_count(t.store) < 10000 || hosts_dir_busy(t.dir)) {
                CHECK(now_usec(CLOCK_MONOTONIC) < deadline);
                CHECK(sd_event_run(t.event, 10 * USEC_PER_MSEC) >= 0);
                if (store_count(t.store) != last) {
                        /* No step larger than a batch. */
                        CHECK(store_count(t.store) - last <= 2000);
                        last = store_count(t.store);
                        steps++;
                }
        }
        CHECK(steps >= 5);
        CHECK(has_record(&t, "big9999.large.test", "10.4.39.249", "big.hosts", 10000));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_records == 10000);

        /* Gone: removed in batches too. */
        CHECK(unlink(path) == 0);
        steps = 0;
        deadline = now_usec(CLOCK_MONOTONIC) + 10 * DEADLINE_USEC;
        while (store_count(t.store) > 0 || hosts_dir_busy(t.dir)) {
                CHECK(now_usec(CLOCK_MONOTONIC) < deadline);
                CHECK(sd_event_run(t.event, 10 * USEC_PER_MSEC) >= 0);
                if (store_count(t.store) != last) {
                        CHECK(last - store_count(t.store) <= 2000);
                        last = store_count(t.store);
                        steps++;
                }
        }
        CHECK(steps >= 5);
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_files == 0 && st.n_records == 0);

        t.quiet = false;
        test_teardown(&t);
}

/* MaxRecordsPerFile= and MaxRecords=: the first lines win, the rest is left out. */
static void test_limits(void) {
        Test t;
        HostsDirStatus st;

        test_setup(&t, "limits", true);
        write_file(&t, "a.hosts",
                   "10.5.0.1 a1.limits.test\n"
                   "10.5.0.2 a2.limits.test a2.limits.test\n"
                   "10.5.0.3 a3.limits.test\n"
                   "10.5.0.4 a4.limits.test\n"
                   "10.5.0.5 a5.limits.test\n");
        test_start_limits(&t, 3, 5);
        CHECK(has_record(&t, "a1.limits.test", "10.5.0.1", "a.hosts", 1));
        CHECK(has_record(&t, "a2.limits.test", "10.5.0.2", "a.hosts", 2));
        CHECK(has_record(&t, "a3.limits.test", "10.5.0.3", "a.hosts", 3));
        CHECK(!name_exists(&t, "a4.limits.test"));
        CHECK(!name_exists(&t, "a5.limits.test"));
        clear_events(&t);

        /* Three more in another file, but only two fit in the total. */
        write_file(&t, "b.hosts", "10.5.1.1 b1.limits.test\n10.5.1.2 b2.limits.test\n10.5.1.3 b3.limits.test\n");
        CHECK(wait_record(&t, "b2.limits.test", "10.5.1.2", true));
        CHECK(wait_idle(&t));
        CHECK(!name_exists(&t, "b3.limits.test"));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.n_records == 5);
        CHECK(store_count(t.store) == 5);
        /* Both files say what was left out, and why. */
        {
                char a[512], b[512];

                in_dir(&t, "a.hosts", a);
                in_dir(&t, "b.hosts", b);
                CHECK(st.n_warnings == 2);
                CHECK(find_warning(&st, a, 0, "serving the first 3 of its 5 records: MaxRecordsPerFile=3 per file"));
                CHECK(find_warning(
                        &st, b, 0,
                        "serving the first 2 of its 3 records: MaxRecords=5 is reached over all hosts files"));
        }

        /* Room made in the first file: the second gets it at its next load. */
        write_file(&t, "a.hosts", "10.5.0.1 a1.limits.test\n");
        CHECK(wait_record(&t, "a2.limits.test", "10.5.0.2", false));
        append_file(&t, "b.hosts", "# touched\n");
        CHECK(wait_record(&t, "b3.limits.test", "10.5.1.3", true));
        CHECK(wait_idle(&t));
        settle(&t, 50 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+b1.limits.test 10.5.1.1 b.hosts", "+b2.limits.test 10.5.1.2 b.hosts",
                            "-a2.limits.test 10.5.0.2 a.hosts", "-a3.limits.test 10.5.0.3 a.hosts",
                            "+b3.limits.test 10.5.1.3 b.hosts"));

        test_teardown(&t);
}

/* Out of file descriptors while a file changed: its records stay, and the
 * reload is tried again until it works. */
static void test_emfile_retried(void) {
        Test t;
        struct rlimit old, low;
        int lowest;

        test_setup(&t, "emfile", true);
        write_file(&t, "a.hosts", "10.6.0.1 old.emfile.test\n");
        test_start(&t);
        CHECK(has_record(&t, "old.emfile.test", "10.6.0.1", "a.hosts", 1));
        clear_events(&t);

        /* No fd left: the lowest free one is the limit. */
        lowest = dup(0);
        CHECK(lowest >= 0);
        CHECK(close(lowest) == 0);
        CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
        low = old;
        low.rlim_cur = (rlim_t) lowest;
        CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);

        /* Written through an fd taken before the limit: rename a prepared file. */
        {
                char a[512], b[512];

                in_dir(&t, ".a.new", b);
                in_dir(&t, "a.hosts", a);
                CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
                write_file_at(b, "10.6.0.2 new.emfile.test\n");
                CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
                CHECK(rename(b, a) == 0);
        }
        settle(&t, 400 * USEC_PER_MSEC);
        CHECK(has_record(&t, "old.emfile.test", "10.6.0.1", "a.hosts", 1));
        CHECK(!name_exists(&t, "new.emfile.test"));
        CHECK(expect_no_events(&t));

        CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
        CHECK(wait_record(&t, "new.emfile.test", "10.6.0.2", true));
        CHECK(wait_record(&t, "old.emfile.test", "10.6.0.1", false));

        test_teardown(&t);
}

/* A file that becomes unreadable keeps its last records; readable again, it
 * is loaded again. Root reads everything, so this part runs as nobody. */
static void test_unreadable_kept_child(void) {
        struct passwd *pw = getpwuid(geteuid());
        const char *user = pw ? pw->pw_name : "?";
        HostsDirStatus st;
        Test t;
        char a[512], why[1024];

        test_setup(&t, "unreadable", false);
        write_file(&t, "a.hosts", "10.7.0.1 kept.unreadable.test\n");
        test_start(&t);
        CHECK(has_record(&t, "kept.unreadable.test", "10.7.0.1", "a.hosts", 1));
        clear_events(&t);

        in_dir(&t, "a.hosts", a);
        CHECK(chmod(a, 0) == 0);
        CHECK(open(a, O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES);
        settle(&t, 300 * USEC_PER_MSEC);
        CHECK(has_record(&t, "kept.unreadable.test", "10.7.0.1", "a.hosts", 1));
        CHECK(expect_no_events(&t));
        /* Listed, naming the user who cannot read it. */
        snprintf(why, sizeof why,
                 "cannot read it: permission denied: joyrided runs as user %s (uid %u); keeping its 1 record and "
                 "trying again",
                 user, (unsigned) geteuid());
        CHECK(wait_warning(&t, a, 0, why, true));

        CHECK(chmod(a, 0644) == 0);
        write_file(&t, "a.hosts", "10.7.0.2 back.unreadable.test\n");
        CHECK(wait_record(&t, "back.unreadable.test", "10.7.0.2", true));
        CHECK(wait_record(&t, "kept.unreadable.test", "10.7.0.1", false));
        CHECK(wait_warning(&t, a, 0, "cannot read it", false));

        test_teardown(&t);

        /* A directory that may not be read: it exists, says who cannot read
         * it, and is loaded once its permissions change. */
        test_setup(&t, "closed", false);
        write_file(&t, "c.hosts", "10.7.1.1 c.closed.test\n");
        CHECK(chmod(t.path, 0) == 0);
        test_start(&t);
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.exists && st.n_files == 0 && st.n_warnings == 1);
        snprintf(why, sizeof why,
                 "cannot be read: permission denied: joyrided runs as user %s (uid %u); watching %s for a change of "
                 "its permissions",
                 user, (unsigned) geteuid(), tmp_root);
        CHECK(find_warning(&st, t.path, 0, why));
        settle(&t, 50 * USEC_PER_MSEC);
        CHECK(chmod(t.path, 0755) == 0);
        CHECK(wait_record(&t, "c.closed.test", "10.7.1.1", true));
        hosts_dir_get_status(t.dir, &st);
        CHECK(st.exists && st.n_files == 1 && st.n_warnings == 0 && st.n_warnings_listed == 0);
        test_teardown(&t);
}

static void test_unreadable_kept(void) {
        char path[512];
        pid_t pid;
        int status;

        snprintf(path, sizeof path, "%s/closed", tmp_root);
        CHECK(mkdir(path, 0755) == 0);
        if (geteuid() == 0)
                CHECK(chown(path, 65534, 65534) == 0);
        snprintf(path, sizeof path, "%s/unreadable", tmp_root);
        CHECK(mkdir(path, 0755) == 0);
        if (geteuid() != 0) {
                test_unreadable_kept_child();
                return;
        }
        CHECK(chmod(tmp_root, 0755) == 0);
        CHECK(chown(path, 65534, 65534) == 0);
        fflush(NULL);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
                        perror("dropping to nobody");
                        _exit(EXIT_FAILURE);
                }
                tmp_made = false; /* the parent cleans up */
                test_unreadable_kept_child();
                _exit(EXIT_SUCCESS);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Addresses written in other ways than the store writes them: the entries and
 * the records made from them compare equal at the next load, which then
 * changes nothing but what the file changed. */
static void test_reload_address_spellings(void) {
        Test t;

        test_setup(&t, "spellings", true);
        write_file(&t, "a.hosts",
                   "2001:DB8:0:0::5 v6.spell.test\n"
                   "::FFFF:10.1.2.3 mapped.spell.test\n"
                   "0::1 loop6.spell.test\n"
                   "fe80:0000::0 link.spell.test\n"
                   "10.1.2.3 v4.spell.test V4.Spell.Test.\n");
        test_start(&t);
        CHECK(has_record(&t, "v6.spell.test", "2001:db8::5", "a.hosts", 1));
        CHECK(has_record(&t, "mapped.spell.test", "::ffff:10.1.2.3", "a.hosts", 2));
        CHECK(has_record(&t, "loop6.spell.test", "::1", "a.hosts", 3));
        CHECK(has_record(&t, "link.spell.test", "fe80::", "a.hosts", 4));
        CHECK(has_record(&t, "v4.spell.test", "10.1.2.3", "a.hosts", 5));
        CHECK(store_count(t.store) == 5);
        clear_events(&t);

        /* Lines moved and spelt differently again, one added. */
        write_file(&t, "a.hosts",
                   "10.1.2.4 new.spell.test\n"
                   "10.1.2.3 v4.spell.test\n"
                   "fe80::0:0 link.spell.test\n"
                   "0:0::0:1 loop6.spell.test\n"
                   "::ffff:a01:203 mapped.spell.test\n"
                   "2001:db8::5 v6.spell.test\n");
        CHECK(wait_record(&t, "new.spell.test", "10.1.2.4", true));
        CHECK(wait_idle(&t));
        settle(&t, 50 * USEC_PER_MSEC);
        CHECK(expect_events(&t, "+new.spell.test 10.1.2.4 a.hosts"));
        CHECK(has_record(&t, "v4.spell.test", "10.1.2.3", "a.hosts", 2));
        CHECK(has_record(&t, "mapped.spell.test", "::ffff:10.1.2.3", "a.hosts", 5));
        CHECK(has_record(&t, "v6.spell.test", "2001:db8::5", "a.hosts", 6));
        CHECK(store_count(t.store) == 6);

        /* And each one goes when its line does. */
        write_file(&t, "a.hosts", "10.1.2.3 v4.spell.test\n");
        CHECK(wait_record(&t, "v6.spell.test", "2001:db8::5", false));
        CHECK(wait_idle(&t));
        CHECK(store_count(t.store) == 1);
        CHECK(expect_events(&t, "-new.spell.test 10.1.2.4 a.hosts", "-link.spell.test fe80:: a.hosts",
                            "-loop6.spell.test ::1 a.hosts", "-mapped.spell.test ::ffff:10.1.2.3 a.hosts",
                            "-v6.spell.test 2001:db8::5 a.hosts"));

        test_teardown(&t);
}

/* Bytes malloc has handed out and not had back (arenas and mmapped blocks). */
static size_t heap_in_use(void) {
        struct mallinfo2 mi = mallinfo2();

        return mi.uordblks + mi.hblkhd;
}

/* Once a file is loaded, the source keeps little beside the records the
 * store made: not the names and addresses it parsed (a second copy of a large
 * file's content, megabytes that stayed for the daemon's whole life). */
#define MEMORY_N 20000u
static void test_memory_after_load(void) {
        _cleanup_(store_freep) Store *ref = NULL;
        char path[512], name[64], addr[32];
        size_t before, store_bytes, limit;
        uint64_t deadline;
        Test t;
        FILE *f;

        test_setup(&t, "memory", true);
        t.quiet = true;
        in_dir(&t, "big.hosts", path);
        f = fopen(path, "we");
        CHECK(f);
        for (unsigned i = 0; i < MEMORY_N; i++)
                CHECK(fprintf(f, "10.8.%u.%u mem%u.memory.test\n", i / 250, i % 250, i) > 0);
        CHECK(fclose(f) == 0);

        /* What the store alone takes for these records. */
        before = heap_in_use();
        CHECK(store_new(&ref) >= 0);
        for (unsigned i = 0; i < MEMORY_N; i++) {
                snprintf(name, sizeof name, "mem%u.memory.test", i);
                snprintf(addr, sizeof addr, "10.8.%u.%u", i / 250, i % 250);
                CHECK(store_add(ref, name, DNS_TYPE_A, addr, 300, "hosts:ref", i + 1, NULL, NULL) == 1);
        }
        store_flush(ref);
        store_bytes = heap_in_use() - before;
        if (store_bytes < MEMORY_N * 64) {
                /* A sanitizer's allocator: mallinfo2() does not see it. */
                fprintf(stderr, "test-hosts-dir: malloc statistics unavailable, memory check skipped\n");
                ref = store_free(ref);
                test_teardown(&t);
                return;
        }
        ref = store_free(ref);

        /* The source on top of that: the records it holds (a pointer each),
         * its bookkeeping; the parse is freed on its worker once applied. */
        before = heap_in_use();
        test_start(&t);
        CHECK(store_count(t.store) == MEMORY_N);
        limit = store_bytes + MEMORY_N * 16 + 64 * 1024;
        deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        while (heap_in_use() - before > limit) {
                if (now_usec(CLOCK_MONOTONIC) >= deadline) {
                        fprintf(stderr, "store alone: %zu bytes; store and hosts source: %zu bytes\n", store_bytes,
                                heap_in_use() - before);
                        CHECK(heap_in_use() - before <= limit);
                }
                CHECK(sd_event_run(t.event, 10 * USEC_PER_MSEC) >= 0);
        }

        /* A reload of the same content changes nothing and keeps no more. */
        append_file(&t, "big.hosts", "# touched\n");
        settle(&t, 100 * USEC_PER_MSEC);
        CHECK(wait_idle(&t));
        deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        while (heap_in_use() - before > limit) {
                CHECK(now_usec(CLOCK_MONOTONIC) < deadline);
                CHECK(sd_event_run(t.event, 10 * USEC_PER_MSEC) >= 0);
        }
        CHECK(store_count(t.store) == MEMORY_N);

        test_teardown(&t); /* quiet: the records go without a note each */
}

int main(void) {
        CHECK(mkdtemp(tmp_root));
        tmp_made = true;
        atexit(cleanup_tmp);

        test_live_changes();
        test_dir_removed_and_recreated();
        test_dir_created_after_start();
        test_rescan();
        test_large_file_in_batches();
        test_limits();
        test_emfile_retried();
        test_unreadable_kept();
        test_reload_address_spellings();
        test_memory_after_load();

        printf("test-hosts-dir: all passed\n");
        return 0;
}
