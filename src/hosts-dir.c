/* SPDX-License-Identifier: MIT */
/* The hosts-directory source: keeps the store in sync with a directory of
 * /etc/hosts-style files, live.
 *
 * Each file is its own owner in the store ("hosts:<dir>/<file>") and is loaded
 * by mark and sweep, so a reload removes exactly what went away from the file
 * and a line that stays the same causes no change event at all.
 *
 * One inotify fd, on the sd-event loop, watches either the directory itself or,
 * while the directory does not exist, its nearest existing ancestor, waiting
 * for the next path component to appear. Events only mark files dirty; a short
 * timer then reloads the dirty files, so an editor's burst of events (write a
 * temp file, rename it over) costs one reload, and a change is visible in DNS
 * well within 200 ms. */

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <malloc.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hosts.h"
#include "log.h"
#include "store.h"
#include "time-util.h"
#include "worker.h"

/* What we want to hear about inside the directory, and about the directory
 * itself going away. IN_ATTRIB catches a chmod that makes a file readable. */
#define DIR_MASK \
        (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* While waiting for the directory: its next missing component appearing in the
 * nearest existing ancestor, or that ancestor itself going away; and, for a
 * directory that is there but may not be read, a chmod or chown of it. */
#define PARENT_MASK (IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* A hosts file bigger than this is a mistake (or an attack), not a hosts file. */
#define HOSTS_FILE_SIZE_MAX ((size_t) 64 * 1024 * 1024)

/* Reload delay after an event that says a write is complete (close after
 * write, rename, delete). */
#define COALESCE_USEC (20 * USEC_PER_MSEC)
/* Reload delay after a bare write or a create: the writer will most likely
 * close the file soon (and then the short delay applies), but one that keeps
 * it open forever (a log-like appender) is still picked up this long after its
 * first write. Not re-armed by later writes, so a busy writer cannot starve it. */
#define MODIFY_USEC (100 * USEC_PER_MSEC)

/* One bad line per line of a huge generated file should not flood the log. */
#define WARNINGS_LOGGED_MAX 20

/* Changes applied to the store per loop iteration: at most this many, and
 * no more than this much time's worth, so that the loop turns (and, while
 * DNS shares it, answers) at least every half millisecond or so. */
#define APPLY_BATCH 2000u
#define APPLY_BUDGET_USEC 500u

/* A file that could not be read (out of file descriptors, an I/O error, no
 * permission) keeps its records and is tried again, ever more slowly. */
#define RETRY_FIRST_USEC (100 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)

/* Records dropped at once beyond which the freed memory is handed back to
 * the system (malloc keeps it otherwise: a large file deleted would leave the
 * daemon hundreds of megabytes bigger for good). */
#define TRIM_AFTER_RECORDS 20000u

/* A warning about one line of a file, kept for the status. */
typedef struct LineWarning {
        unsigned line;
        unsigned seq; /* order of arrival: a line's warnings stay in order */
        bool logged;  /* already in the log */
        char *why;
} LineWarning;

/* What is wrong with the directory itself, if anything. */
typedef enum DirProblem {
        DIR_OK,
        DIR_MISSING,      /* it, or a folder above it, does not exist */
        DIR_NOT_DIR,      /* something else is at its path */
        DIR_UNREADABLE,   /* no permission */
        DIR_WATCH_FAILED, /* anything else (out of inotify watches, ...) */
} DirProblem;

/* One name for one address, as the file says it. name is lowercased without a
 * trailing dot, as the store keeps it, so that two spellings of one record
 * are one entry. */
typedef struct HostsEntry {
        const char *name;
        const char *address; /* canonical */
        uint32_t line;       /* the last line that gives it, as store_add() keeps */
        uint16_t type;
} HostsEntry;

/* What one load of a file found: entries sorted by (name, type, address), no
 * two alike. Kept only until the difference is in the store. */
typedef struct HostsSet {
        HostsEntry *entries;
        size_t n;
        GStringChunk *strings;
} HostsSet;

typedef struct LoadJob LoadJob;

typedef struct HostsFile {
        char *name;    /* name in the directory: the hash key */
        char *path;    /* <dir>/<name> */
        char *owner;   /* "hosts:<dir>/<name>" */
        bool dirty;    /* to be reloaded */
        bool modified; /* written to but not (yet) closed */
        bool loaded;   /* its records are in the store */
        /* What the store holds from it: its records, in the order of the
         * entries they came from (name, type, value: the record's value is
         * the entry's address, in the same text), NULL where the store
         * refused an entry. The next load is compared with these rather than
         * with the entries, which would keep every name and address of a
         * large file twice. */
        const Record **held;
        size_t n_held;
        unsigned n_records;
        unsigned n_warnings; /* bad lines of the last load, kept below or not */
        GArray *warnings;    /* LineWarning: the first of them, by line */
        char *problem;       /* what is wrong with the file as a whole, or NULL */
        int read_error;      /* last failure to read it (kept records), 0 if none */
        unsigned n_failures; /* in a row, for the retry delay */
        uint64_t retry_usec; /* CLOCK_MONOTONIC: dirty again then; 0 if no retry is due */
} HostsFile;

typedef struct IdleCallback {
        HostsDirIdleFunc f;
        void *userdata;
} IdleCallback;

struct HostsDir {
        sd_event *event;
        Store *store;
        char *path;
        uint32_t ttl;
        uint32_t max_records_per_file;
        uint32_t max_records;

        int inotify_fd; /* owned by inotify_source */
        sd_event_source *inotify_source;
        int wd;        /* watch on the directory, -1 if none */
        int parent_wd; /* watch on the nearest ancestor while waiting, -1 if none */
        char *parent_path;
        char *waiting_for; /* the component of path that parent_path lacks */
        bool exists;

        GHashTable *files; /* name -> HostsFile */
        sd_event_source *coalesce_source;
        sd_event_source *modify_source;
        sd_event_source *retry_source;
        uint64_t last_load_usec;

        Worker *worker;                /* reads, parses and compares files */
        LoadJob *job;                  /* the one file being loaded, or NULL */
        sd_event_source *apply_source; /* defer: applies the next batch of job */
        bool synchronous;              /* the first load: no worker, no batches */
        uint64_t n_records;            /* over all files */
        GArray *idle_callbacks;        /* IdleCallback */

        DirProblem dir_problem;
        char *dir_problem_why; /* worded for "Hosts directory PATH <why>." */
        GArray *listed;        /* HostsWarning: the status's list, rebuilt when listed_dirty */
        bool listed_dirty;
};

typedef enum LoadStatus {
        LOAD_OK,     /* read and parsed: apply the difference */
        LOAD_GONE,   /* not a hosts file (any more): remove its records */
        LOAD_FAILED, /* could not be read: keep its records, try again */
} LoadStatus;

/* One load of one file: inputs from the loop, then the worker's results, then
 * the loop's progress through the difference. */
struct LoadJob {
        WorkerJob job;
        HostsDir *dir;
        HostsFile *file;

        /* Inputs (the worker only reads them) */
        char *path;
        /* file->held. The worker reads these records' name, type, value and
         * line: only this source changes them, and not while its job runs
         * (one job at a time, and the loop applies nothing meanwhile). */
        const Record *const *old;
        size_t n_old;
        size_t cap;        /* most records the file may bring */
        bool cap_is_total; /* the cap comes from MaxRecords=, not MaxRecordsPerFile= */

        /* Results */
        LoadStatus status;
        int error;            /* LOAD_FAILED: why */
        const char *gone_why; /* LOAD_GONE: why, NULL when simply not there */
        HostsSet *set;        /* LOAD_OK: the new content */
        const Record **held;  /* one per entry of set: the old record where it stays, the loop fills the rest */
        size_t n_refused;     /* new entries the store refused: not held */
        GArray *warnings;     /* LineWarning, at most HOSTS_WARNINGS_LISTED_MAX */
        unsigned n_warnings;  /* from the parser, kept or not */
        size_t n_capped;      /* entries left out for the cap */
        uint32_t *adds;       /* indices into set: new entries and new line numbers */
        size_t n_adds;
        uint32_t *removes; /* indices into old */
        size_t n_removes;

        /* Progress of the loop through adds, then removes */
        size_t pos;
        unsigned n_added;
        unsigned n_removed;
        unsigned n_add_errors;
};

static HostsSet *hosts_set_free(HostsSet *s) {
        if (!s)
                return NULL;
        g_free(s->entries);
        if (s->strings)
                g_string_chunk_free(s->strings);
        g_free(s);
        return NULL;
}

static void line_warning_clear(void *p) {
        LineWarning *w = p;

        g_free(w->why);
}

static GArray *line_warnings_new(void) {
        GArray *a = g_array_new(FALSE, FALSE, sizeof(LineWarning));

        g_array_set_clear_func(a, line_warning_clear);
        return a;
}

static void line_warnings_add(GArray *a, unsigned line, char *why, bool logged) {
        LineWarning w = { .line = line, .seq = a->len, .logged = logged, .why = why };

        if (a->len >= HOSTS_WARNINGS_LISTED_MAX) {
                g_free(why);
                return;
        }
        g_array_append_val(a, w);
}

static int line_warning_compare(const void *a, const void *b) {
        const LineWarning *x = a, *y = b;

        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static HostsFile *hosts_file_free(HostsFile *f) {
        if (!f)
                return NULL;
        free(f->name);
        free(f->path);
        free(f->owner);
        g_free(f->held);
        if (f->warnings)
                g_array_free(f->warnings, TRUE);
        g_free(f->problem);
        free(f);
        return NULL;
}

static void hosts_file_destroy(gpointer p) {
        (void) hosts_file_free(p);
}

static int log_oom(void) {
        return log_error_errno(ENOMEM, "Out of memory.");
}

/* Why something could not be read or watched, in words that help fix it: a
 * permission problem names the user the daemon runs as (which is not the
 * user who looks at the file, most of the time). */
static char *describe_error(int error) {
        struct passwd pw, *found = NULL;
        char buf[1024];
        uid_t uid;

        error = abs(error);
        if (error == ENOSPC)
                /* What inotify_add_watch() says when it runs out of watches. */
                return g_strdup("no inotify watch left (see sysctl fs.inotify.max_user_watches)");
        if (error != EACCES && error != EPERM)
                return g_strdup(g_strerror(error));

        uid = geteuid();
        if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found)
                return g_strdup_printf("permission denied: joyrided runs as user %s (uid %u)", found->pw_name,
                                       (unsigned) uid);
        return g_strdup_printf("permission denied: joyrided runs as uid %u", (unsigned) uid);
}

/* What the store says about one bad line, as opposed to running out of memory. */
static bool is_add_error(int r) {
        return r == -EINVAL || r == -EOPNOTSUPP || r == -ERANGE;
}

/* A path component is missing, or is there but is no directory. */
static bool errno_is_missing(int e) {
        return e == ENOENT || e == ENOTDIR;
}

static bool string_has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);

        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Which names in the directory are hosts files: every one but hidden files
 * (".foo", which also covers vim's ".foo.swp" and emacs' ".#foo" lock links)
 * and leftovers that would otherwise serve stale or half-written records:
 * editor backups ("foo~", "foo.bak"), vim swap files when vim's 'directory'
 * points here ("foo.swp"), emacs auto-saves ("#foo#"), and the copies package
 * managers leave beside a changed config file ("foo.dpkg-old", "foo.rpmnew",
 * ...). Whether it is a regular file (or a symlink to one) is checked when it
 * is opened. */
static bool hosts_file_name_wanted(const char *name) {
        static const char *const leftovers[] = {
                "~",         ".swp",    ".bak",     ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp",
                ".dpkg-bak", ".rpmnew", ".rpmsave", ".rpmorig",  ".ucf-old",  ".ucf-new",   ".ucf-dist",
        };
        size_t n = strlen(name);

        if (n == 0 || name[0] == '.')
                return false;
        if (n >= 2 && name[0] == '#' && name[n - 1] == '#')
                return false;
        for (size_t i = 0; i < ELEMENTSOF(leftovers); i++)
                if (string_has_suffix(name, leftovers[i]))
                        return false;
        return true;
}

static HostsFile *hosts_dir_get_file(HostsDir *h, const char *name) {
        HostsFile *f;

        f = g_hash_table_lookup(h->files, name);
        if (f)
                return f;

        f = calloc(1, sizeof *f);
        if (!f)
                return NULL;
        f->name = strdup(name);
        if (f->name) {
                if (asprintf(&f->path, "%s%s%s", h->path, string_has_suffix(h->path, "/") ? "" : "/", name) < 0)
                        f->path = NULL;
                else if (asprintf(&f->owner, "hosts:%s", f->path) < 0)
                        f->owner = NULL;
        }
        if (!f->name || !f->path || !f->owner)
                return hosts_file_free(f);

        g_hash_table_insert(h->files, f->name, f);
        return f;
}

/* --- on the worker: read, parse, compare ------------------------------------ */

/* Reads a whole file, up to HOSTS_FILE_SIZE_MAX. The size from fstat() is only
 * a hint: the file may grow or shrink while it is read. */
static int read_all(int fd, size_t size_hint, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t allocated, n = 0;

        allocated = MIN(MAX(size_hint + 1, (size_t) 4096), HOSTS_FILE_SIZE_MAX + 1);
        buf = malloc(allocated);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k;

                if (n == allocated) {
                        char *p;

                        if (allocated > HOSTS_FILE_SIZE_MAX)
                                return -EFBIG;
                        allocated = MIN(allocated * 2, HOSTS_FILE_SIZE_MAX + 1);
                        p = realloc(buf, allocated);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }

                k = read(fd, buf + n, allocated - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }

        if (n > HOSTS_FILE_SIZE_MAX)
                return -EFBIG;

        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

/* Reads the job's file. Sets the job's status unless it is LOAD_OK. */
static int job_read(LoadJob *j, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        /* O_NONBLOCK so that a FIFO dropped into the directory cannot hang the worker. */
        fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = negative_errno();
                if (errno_is_missing(-r))
                        j->status = LOAD_GONE;
                else {
                        j->status = LOAD_FAILED;
                        j->error = r;
                }
                return r;
        }
        if (fstat(fd, &st) < 0) {
                j->status = LOAD_FAILED;
                j->error = negative_errno();
                return j->error;
        }
        if (!S_ISREG(st.st_mode)) {
                j->status = LOAD_GONE;
                j->gone_why = "not a regular file";
                return -EBADF;
        }
        if ((uint64_t) st.st_size > HOSTS_FILE_SIZE_MAX) {
                j->status = LOAD_GONE;
                j->gone_why = "larger than 64 MiB";
                return -EFBIG;
        }
        r = read_all(fd, (size_t) st.st_size, ret, ret_size);
        if (r == -EFBIG) {
                j->status = LOAD_GONE;
                j->gone_why = "larger than 64 MiB";
                return r;
        }
        if (r < 0) {
                j->status = LOAD_FAILED;
                j->error = r;
                return r;
        }
        return 0;
}

typedef struct ParseContext {
        LoadJob *job;
        GArray *entries;       /* HostsEntry, in file order */
        GHashTable *addresses; /* interned address strings: most files repeat a few */
} ParseContext;

static void parse_warning(unsigned line, const char *why, void *userdata) {
        ParseContext *c = userdata;
        LoadJob *j = c->job;

        /* Logged on the loop, once the load is applied. */
        if (j->warnings->len < HOSTS_WARNINGS_LISTED_MAX)
                line_warnings_add(j->warnings, line, g_strdup(why), false);
        j->n_warnings++;
}

static int parse_entry(const char *name, uint16_t type, const char *address, unsigned line, void *userdata) {
        ParseContext *c = userdata;
        GStringChunk *strings = c->job->set->strings;
        HostsEntry e = { .type = type, .line = line };
        size_t n = strlen(name);
        char *lower;

        /* store_check_name() (in the parser) lets only ASCII letters, digits, '-',
         * '_', '*' and dots through: lowercasing is all the store does to it. */
        while (n > 1 && name[n - 1] == '.')
                n--;
        lower = g_string_chunk_insert_len(strings, name, (gssize) n);
        for (char *p = lower; *p; p++)
                *p = g_ascii_tolower(*p);
        e.name = lower;

        e.address = g_hash_table_lookup(c->addresses, address);
        if (!e.address) {
                e.address = g_string_chunk_insert(strings, address);
                g_hash_table_insert(c->addresses, (gpointer) e.address, (gpointer) e.address);
        }
        g_array_append_val(c->entries, e);
        return 0;
}

static int entry_compare(const void *a, const void *b) {
        const HostsEntry *x = a, *y = b;
        int c = strcmp(x->name, y->name);

        if (c == 0)
                c = (int) x->type - (int) y->type;
        if (c == 0)
                c = strcmp(x->address, y->address);
        return c;
}

static int entry_compare_line(const void *a, const void *b) {
        const HostsEntry *x = a, *y = b;

        return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorts, keeps one of each (with the last line that gives it) and applies the cap. */
static void set_finish(LoadJob *j, GArray *entries) {
        HostsEntry *e = (HostsEntry *) entries->data;
        size_t n = 0;

        if (entries->len > 1)
                qsort(e, entries->len, sizeof *e, entry_compare);
        for (size_t i = 0; i < entries->len; i++) {
                if (n > 0 && entry_compare(&e[n - 1], &e[i]) == 0) {
                        e[n - 1].line = MAX(e[n - 1].line, e[i].line);
                        continue;
                }
                e[n++] = e[i];
        }

        if (n > j->cap) {
                /* The first lines of the file win. */
                qsort(e, n, sizeof *e, entry_compare_line);
                j->n_capped = n - j->cap;
                n = j->cap;
                qsort(e, n, sizeof *e, entry_compare);
        }

        g_array_set_size(entries, (guint) n);
        j->set->n = n;
        j->set->entries = (HostsEntry *) g_array_free(entries, FALSE);
}

/* A held record against an entry, in the order of entry_compare(). */
static int held_compare(const Record *r, const HostsEntry *e) {
        int c = strcmp(r->name, e->name);

        if (c == 0)
                c = (int) r->type - (int) e->type;
        if (c == 0)
                c = strcmp(r->value, e->address);
        return c;
}

/* Merges old and new: what to add (or re-add for a new line number) and what
 * to remove; the records that stay are held again. */
static void job_diff(LoadJob *j) {
        const Record *const *o = j->old;
        const HostsEntry *e = j->set ? j->set->entries : NULL;
        size_t n_old = j->n_old, n_new = j->set ? j->set->n : 0, a = 0, b = 0;

        j->adds = g_new(uint32_t, MAX(n_new, (size_t) 1));
        j->removes = g_new(uint32_t, MAX(n_old, (size_t) 1));
        j->held = g_new0(const Record *, MAX(n_new, (size_t) 1));

        for (;;) {
                int c;

                while (a < n_old && !o[a])
                        a++; /* refused last time: nothing to remove */
                if (a >= n_old && b >= n_new)
                        break;
                c = a >= n_old ? 1 : b >= n_new ? -1 : held_compare(o[a], &e[b]);
                if (c < 0)
                        j->removes[j->n_removes++] = (uint32_t) a++;
                else if (c > 0)
                        j->adds[j->n_adds++] = (uint32_t) b++;
                else {
                        if (o[a]->line != e[b].line)
                                j->adds[j->n_adds++] = (uint32_t) b;
                        j->held[b++] = o[a++];
                }
        }
}

static void job_run(WorkerJob *wj) {
        LoadJob *j = (LoadJob *) wj;
        _cleanup_free_ char *data = NULL;
        ParseContext c = { .job = j };
        size_t size = 0;
        int r;

        if (job_read(j, &data, &size) < 0) {
                if (j->status == LOAD_GONE)
                        job_diff(j); /* everything goes */
                return;
        }

        j->set = g_new0(HostsSet, 1);
        j->set->strings = g_string_chunk_new(MIN(MAX(size, (size_t) 1024), (size_t) 1024 * 1024));
        c.entries = g_array_sized_new(FALSE, FALSE, sizeof(HostsEntry), (guint) MIN(size / 32, (size_t) 1 << 18));
        c.addresses = g_hash_table_new(g_str_hash, g_str_equal);
        r = hosts_parse(data, size, parse_entry, parse_warning, &c);
        g_hash_table_destroy(c.addresses);
        if (r < 0) {
                g_array_free(c.entries, TRUE);
                j->set = hosts_set_free(j->set);
                j->status = LOAD_FAILED;
                j->error = r;
                return;
        }
        set_finish(j, c.entries);
        j->status = LOAD_OK;
        job_diff(j);
}

/* --- on the loop: start, apply, finish ---------------------------------------- */

static void hosts_dir_kick(HostsDir *h);

static void load_job_free(LoadJob *j) {
        if (!j)
                return;
        if (j->warnings)
                g_array_free(j->warnings, TRUE);
        hosts_set_free(j->set);
        g_free(j->held);
        g_free(j->adds);
        g_free(j->removes);
        g_free(j->path);
        g_free(j);
}

/* What a finished load leaves behind: the entries it parsed, the records the
 * file held before and the difference's index arrays, megabytes for a large
 * file. Freed on the worker, so that no free of a large block (an munmap)
 * lands on the loop; and after a large load or removal, the memory is handed
 * back to the system there too (malloc keeps it otherwise: a large file
 * deleted would leave the daemon hundreds of megabytes bigger for good, and
 * a large file loaded would keep its parse). */
typedef struct CleanupJob {
        WorkerJob job;
        HostsSet *set;
        const Record **held; /* only the array: the records are the store's */
        uint32_t *adds, *removes;
        bool trim;
} CleanupJob;

static void cleanup_run(WorkerJob *wj) {
        CleanupJob *j = (CleanupJob *) wj;

        j->set = hosts_set_free(j->set);
        g_free(TAKE_PTR(j->held));
        g_free(TAKE_PTR(j->adds));
        g_free(TAKE_PTR(j->removes));
        if (j->trim)
                (void) malloc_trim(0);
}

static void cleanup_free(WorkerJob *wj) {
        CleanupJob *j = (CleanupJob *) wj;

        hosts_set_free(j->set);
        g_free(j->held);
        g_free(j->adds);
        g_free(j->removes);
        g_free(j);
}

/* Takes set, held, adds and removes (freed on the worker), so they are not const. */
static void hosts_dir_cleanup(HostsDir *h, HostsSet *set, const Record **held,
                              // NOLINTNEXTLINE(readability-non-const-parameter)
                              uint32_t *adds, uint32_t *removes, bool trim) {
        CleanupJob *j = g_new0(CleanupJob, 1);

        *j = (CleanupJob) {
                .job = { .run = cleanup_run, .done = cleanup_free, .discard = cleanup_free },
                .set = set,
                .held = held,
                .adds = adds,
                .removes = removes,
                .trim = trim,
        };
        if (!h->worker) {
                cleanup_run(&j->job);
                cleanup_free(&j->job);
                return;
        }
        worker_submit(h->worker, &j->job);
}

static void schedule_retry(HostsDir *h, HostsFile *f) {
        uint64_t delay = RETRY_FIRST_USEC, now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;
        GHashTableIter i;
        gpointer v;

        for (unsigned k = 1; k < f->n_failures && delay < RETRY_MAX_USEC; k++)
                delay *= 2;
        f->retry_usec = now + MIN(delay, RETRY_MAX_USEC);

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (((HostsFile *) v)->retry_usec > 0)
                        next = MIN(next, ((HostsFile *) v)->retry_usec);
        if (sd_event_source_set_time(h->retry_source, next) < 0 ||
            sd_event_source_set_enabled(h->retry_source, SD_EVENT_ONESHOT) < 0)
                log_warning("Failed to arm the hosts retry timer; %s is reloaded at its next change.", f->path);
}

/* A warning about a line of a hosts file, with the journal fields
 * JOYRIDE_FILE (its path) and JOYRIDE_LINE (when line is not 0), so that
 * `journalctl JOYRIDE_FILE=...` lists what is wrong with a file. */
_printf_(3, 4) static void log_line_warning(const HostsFile *f, unsigned line, const char *format, ...) {
        char text[2048];
        LogFields fields;
        va_list ap;

        if (log_get_max_level() < LOG_WARNING)
                return;
        va_start(ap, format);
        (void) vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        log_fields_init(&fields);
        log_fields_add(&fields, "JOYRIDE_FILE=%s", f->path);
        if (line > 0)
                log_fields_add(&fields, "JOYRIDE_LINE=%u", line);
        log_struct_journal(LOG_WARNING, fields.v, "%s", text);
}

/* The file could not be read: it keeps what it had, and is tried again. */
static void job_failed(HostsDir *h, LoadJob *j) {
        HostsFile *f = j->file;

        if (f->read_error != j->error || !f->problem) {
                g_autofree char *error = describe_error(j->error);

                g_free(f->problem);
                if (f->loaded)
                        f->problem = g_strdup_printf("cannot read it: %s; keeping its %u record%s and trying again",
                                                     error, f->n_records, f->n_records == 1 ? "" : "s");
                else
                        f->problem = g_strdup_printf("cannot read it: %s; trying again", error);
                log_warning("%s: %s.", f->path, f->problem);
                h->listed_dirty = true;
        }
        f->read_error = j->error;
        f->n_failures++;
        schedule_retry(h, f);
}

/* The difference is in the store: the file's records are now the new set. */
static void job_finish(HostsDir *h, LoadJob *j) {
        HostsFile *f = j->file;
        bool gone = j->status == LOAD_GONE;
        size_t parsed = j->set ? j->set->n : 0;

        if (f->read_error != 0)
                log_info("%s is readable again.", f->path);
        f->read_error = 0;
        g_clear_pointer(&f->problem, g_free);
        h->listed_dirty = true;
        f->n_failures = 0;
        f->retry_usec = 0;

        hosts_dir_cleanup(h, TAKE_PTR(j->set), TAKE_PTR(f->held), TAKE_PTR(j->adds), TAKE_PTR(j->removes),
                          j->n_removes >= TRIM_AFTER_RECORDS || parsed >= TRIM_AFTER_RECORDS);
        f->held = TAKE_PTR(j->held);
        f->n_held = parsed;
        h->n_records -= f->n_records;
        f->n_records = (unsigned) (parsed - j->n_refused);
        h->n_records += f->n_records;

        if (f->warnings)
                g_array_free(f->warnings, TRUE);
        f->warnings = NULL;
        if (gone) {
                if (j->gone_why) {
                        /* Kept (with this warning) for as long as it is there. */
                        f->problem = g_strdup_printf("%s, ignoring it", j->gone_why);
                        log_warning("%s: %s.", f->path, f->problem);
                }
                if (f->loaded || j->n_removed > 0)
                        log_info("Removed %s: %u record%s", f->path, j->n_removed, j->n_removed == 1 ? "" : "s");
                f->loaded = false;
                f->n_warnings = 0;
        } else {
                unsigned logged = 0;

                /* In line order; what the store refused was logged as it happened. */
                g_array_sort(j->warnings, line_warning_compare);
                for (guint i = 0; i < j->warnings->len && logged < WARNINGS_LOGGED_MAX; i++) {
                        LineWarning *w = &g_array_index(j->warnings, LineWarning, i);

                        if (w->logged)
                                continue;
                        log_line_warning(f, w->line, "%s:%u: %s", f->path, w->line, w->why);
                        w->logged = true;
                        logged++;
                }
                if (j->n_warnings > WARNINGS_LOGGED_MAX)
                        log_line_warning(f, 0, "%s: %u more warnings not shown.", f->path,
                                         j->n_warnings - WARNINGS_LOGGED_MAX);
                if (j->n_capped > 0) {
                        f->problem = g_strdup_printf("serving the first %zu of its %zu records: %s=%u %s", j->cap,
                                                     j->cap + j->n_capped,
                                                     j->cap_is_total ? "MaxRecords" : "MaxRecordsPerFile",
                                                     j->cap_is_total ? h->max_records : h->max_records_per_file,
                                                     j->cap_is_total ? "is reached over all hosts files" : "per file");
                        log_warning("%s: %s.", f->path, f->problem);
                }
                f->warnings = TAKE_PTR(j->warnings);
                f->n_warnings = j->n_warnings + j->n_add_errors;
                f->loaded = true;
                h->last_load_usec = now_usec(CLOCK_REALTIME);
                log_info("Loaded %s: %u record%s (+%u -%u), %u warning%s", f->path, f->n_records,
                         f->n_records == 1 ? "" : "s", j->n_added, j->n_removed, f->n_warnings,
                         f->n_warnings == 1 ? "" : "s");
        }

        h->job = NULL;
        load_job_free(j);

        /* Gone and not back since: forget it. */
        if (gone && !f->problem && !f->dirty && !f->modified)
                g_hash_table_remove(h->files, f->name);
}

/* Applies up to limit changes, or what fits in budget_usec (0: no limit);
 * returns true when the job has none left. */
static bool job_apply(HostsDir *h, LoadJob *j, size_t limit, uint64_t budget_usec) {
        HostsFile *f = j->file;
        size_t end = MIN(j->pos + limit, j->n_adds + j->n_removes);
        uint64_t deadline = budget_usec > 0 ? now_usec(CLOCK_MONOTONIC) + budget_usec : 0;

        /* Additions first: a name whose address changes answers with both for
         * a moment rather than with none. */
        for (size_t k = 0; j->pos < end; j->pos++, k++) {
                const char *error = NULL;
                int r;

                if (j->pos < j->n_adds) {
                        uint32_t i = j->adds[j->pos];
                        const HostsEntry *e = &j->set->entries[i];
                        const Record *rec = NULL;

                        r = store_add_record(h->store, e->name, e->type, e->address, h->ttl, f->owner, e->line, NULL,
                                             &error, &rec);
                        if (r >= 0)
                                j->held[i] = rec;
                        if (r > 0)
                                j->n_added++;
                        else if (r < 0) {
                                /* A record that stays (a new line number) is still held. */
                                if (!j->held[i])
                                        j->n_refused++;
                                /* The parser checked the line; what the store still refuses
                                 * (or cannot hold) is this line's problem, not the file's. */
                                bool log = j->n_add_errors++ < WARNINGS_LOGGED_MAX;

                                if (log || j->warnings->len < HOSTS_WARNINGS_LISTED_MAX) {
                                        char *why = g_strdup_printf("cannot add '%s' %s: %s", e->name, e->address,
                                                                    is_add_error(r) && error ? error : strerror(-r));
                                        if (log)
                                                log_line_warning(f, e->line, "%s:%u: %s", f->path, e->line, why);
                                        line_warnings_add(j->warnings, e->line, why, log);
                                }
                        }
                } else {
                        store_remove_record(h->store, j->old[j->removes[j->pos - j->n_adds]]);
                        j->n_removed++;
                }
                if (deadline > 0 && (k & 31) == 31 && now_usec(CLOCK_MONOTONIC) >= deadline) {
                        j->pos++;
                        break;
                }
        }
        return j->pos >= j->n_adds + j->n_removes;
}

static int on_apply(sd_event_source *s, void *userdata) {
        HostsDir *h = userdata;

        if (!h->job)
                return 0;
        if (!job_apply(h, h->job, APPLY_BATCH, APPLY_BUDGET_USEC)) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        job_finish(h, h->job);
        hosts_dir_kick(h);
        return 0;
}

static void job_done(WorkerJob *wj) {
        LoadJob *j = (LoadJob *) wj;
        HostsDir *h = j->dir;

        if (j->status == LOAD_FAILED) {
                job_failed(h, j);
                h->job = NULL;
                load_job_free(j);
                hosts_dir_kick(h);
                return;
        }
        /* Batches from a defer source of lower priority than the sockets, so
         * that queries keep being answered between them. */
        if (sd_event_source_set_enabled(h->apply_source, SD_EVENT_ONESHOT) < 0) {
                (void) job_apply(h, j, SIZE_MAX, 0);
                job_finish(h, j);
                hosts_dir_kick(h);
        }
}

static void job_discard(WorkerJob *wj) {
        LoadJob *j = (LoadJob *) wj;

        if (j->dir->job == j)
                j->dir->job = NULL;
        load_job_free(j);
}

static LoadJob *job_new(HostsDir *h, HostsFile *f) {
        LoadJob *j = g_new0(LoadJob, 1);
        uint64_t others = h->n_records - f->n_records;
        uint64_t budget = others >= h->max_records ? 0 : h->max_records - others;

        *j = (LoadJob) {
                .job = { .run = job_run, .done = job_done, .discard = job_discard },
                .dir = h,
                .file = f,
                .path = g_strdup(f->path),
                .warnings = line_warnings_new(),
                .old = f->held,
                .n_old = f->n_held,
                .cap = (size_t) MIN((uint64_t) h->max_records_per_file, budget),
                .cap_is_total = budget < h->max_records_per_file,
        };
        return j;
}

static void call_idle_callbacks(HostsDir *h) {
        while (h->idle_callbacks->len > 0) {
                IdleCallback c = g_array_index(h->idle_callbacks, IdleCallback, 0);

                g_array_remove_index(h->idle_callbacks, 0);
                c.f(c.userdata);
        }
}

static HostsFile *next_dirty(HostsDir *h) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (((HostsFile *) v)->dirty)
                        return v;
        return NULL;
}

/* Loads the next dirty file, one at a time: on the worker, or right here
 * for the first load. */
static void hosts_dir_kick(HostsDir *h) {
        HostsFile *f;

        while (!h->job) {
                f = next_dirty(h);
                if (!f) {
                        call_idle_callbacks(h);
                        return;
                }
                f->dirty = f->modified = false;
                f->retry_usec = 0;
                h->job = job_new(h, f);
                if (!h->synchronous) {
                        worker_submit(h->worker, &h->job->job);
                        return;
                }
                job_run(&h->job->job);
                if (h->job->status == LOAD_FAILED) {
                        job_failed(h, h->job);
                        load_job_free(TAKE_PTR(h->job));
                        continue;
                }
                (void) job_apply(h, h->job, SIZE_MAX, 0);
                job_finish(h, h->job);
        }
}

/* Reloads every dirty file (in the background); those that turn out not to be
 * hosts files are forgotten once their records are removed. */
static int hosts_dir_load_dirty(HostsDir *h) {
        hosts_dir_kick(h);
        return 0;
}

/* The directory went away: every file is reloaded, which finds it gone. */
static void hosts_dir_drop_all(HostsDir *h) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v))
                ((HostsFile *) v)->dirty = true;
        hosts_dir_kick(h);
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HostsDir *h = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                HostsFile *f = v;

                if (f->retry_usec == 0)
                        continue;
                if (f->retry_usec <= now + USEC_PER_MSEC) {
                        f->retry_usec = 0;
                        f->dirty = true;
                } else
                        next = MIN(next, f->retry_usec);
        }
        if (next != UINT64_MAX) {
                (void) sd_event_source_set_time(s, next);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        hosts_dir_kick(h);
        return 0;
}


static void arm_timer(sd_event_source *s, uint64_t usec) {
        int enabled = SD_EVENT_OFF, r;

        /* Already pending: the reload it will do covers this event too. */
        if (sd_event_source_get_enabled(s, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;

        r = sd_event_source_set_time_relative(s, usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arm hosts reload timer: %m");
}

static int on_coalesce_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) hosts_dir_load_dirty(userdata);
        return 0;
}

static int on_modify_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HostsDir *h = userdata;
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                HostsFile *f = v;

                if (f->modified)
                        f->dirty = true;
        }
        (void) hosts_dir_load_dirty(h);
        return 0;
}

/* Lists the directory, marks every file in it dirty, along with every file we
 * know of (so that those gone are found gone), and loads them all now. */
static int hosts_dir_load_all(HostsDir *h) {
        DIR *d;
        GHashTableIter i;
        gpointer v;
        struct dirent *de;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v))
                ((HostsFile *) v)->dirty = true;

        d = opendir(h->path);
        if (!d) {
                g_autofree char *why = describe_error(errno);

                log_warning("Failed to list hosts directory %s: %s", h->path, why);
        } else {
                while ((de = readdir(d))) {
                        HostsFile *f;

                        if (!hosts_file_name_wanted(de->d_name) || de->d_type == DT_DIR)
                                continue;
                        f = hosts_dir_get_file(h, de->d_name);
                        if (!f) {
                                closedir(d);
                                return log_oom();
                        }
                        f->dirty = true;
                }
                closedir(d);
        }

        return hosts_dir_load_dirty(h);
}

static void hosts_dir_unwatch(HostsDir *h) {
        if (h->wd >= 0)
                (void) inotify_rm_watch(h->inotify_fd, h->wd);
        if (h->parent_wd >= 0)
                (void) inotify_rm_watch(h->inotify_fd, h->parent_wd);
        h->wd = h->parent_wd = -1;
        free(h->parent_path);
        free(h->waiting_for);
        h->parent_path = h->waiting_for = NULL;
}

/* Splits "a/b/c" into "a/b" and "c"; "/c" into "/" and "c"; "c" into "." and "c". */
static int path_split(const char *path, char **ret_parent, char **ret_name) {
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *parent = NULL, *name = NULL;

        if (!slash) {
                parent = strdup(".");
                name = strdup(path);
        } else {
                parent = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
                name = strdup(slash + 1);
        }
        if (!parent || !name)
                return -ENOMEM;

        *ret_parent = TAKE_PTR(parent);
        *ret_name = TAKE_PTR(name);
        return 0;
}

static bool is_directory(const char *path) {
        struct stat st;

        return stat(path, &st) >= 0 && S_ISDIR(st.st_mode);
}

/* Records what is wrong with the directory (DIR_OK: nothing), for the status
 * and the log: a new kind of problem is a warning, the same one again (the
 * next step of a path being made, say) only an info line. */
static void hosts_dir_set_problem(HostsDir *h, DirProblem problem, char *why) {
        if (problem == DIR_OK)
                g_clear_pointer(&why, g_free);
        if (streq_ptr(why, h->dir_problem_why)) {
                g_free(why);
                return;
        }
        if (why) {
                if (problem != h->dir_problem)
                        log_warning("Hosts directory %s %s.", h->path, why);
                else
                        log_info("Hosts directory %s %s.", h->path, why);
        }
        g_free(h->dir_problem_why);
        h->dir_problem_why = why;
        h->dir_problem = problem;
        h->listed_dirty = true;
}

/* Watches the parent of the directory for a change of the directory's
 * permissions (IN_ATTRIB in the parent names it). */
static int hosts_dir_watch_parent(HostsDir *h) {
        _cleanup_free_ char *parent = NULL, *name = NULL;
        int r, wd;

        r = path_split(h->path, &parent, &name);
        if (r < 0)
                return r;
        wd = inotify_add_watch(h->inotify_fd, parent, PARENT_MASK);
        if (wd < 0)
                return negative_errno();
        h->parent_wd = wd;
        h->parent_path = TAKE_PTR(parent);
        h->waiting_for = TAKE_PTR(name);
        return 0;
}

/* Puts a watch on the directory if it can (returns 1); else on its nearest
 * existing ancestor, or on its parent when it may not be read (returns 0,
 * *ret_error saying why the directory itself could not be watched). Logs
 * nothing: the caller says what is wrong. */
static int hosts_dir_watch(HostsDir *h, int *ret_error) {
        *ret_error = 0;

        /* The tree may change under us while we walk it; after a few tries
         * settle for whatever watch we have, its events will bring us back. */
        for (unsigned attempt = 0; attempt < 8; attempt++) {
                _cleanup_free_ char *child = NULL;
                int wd, r;

                hosts_dir_unwatch(h);

                wd = inotify_add_watch(h->inotify_fd, h->path, DIR_MASK);
                if (wd >= 0) {
                        h->wd = wd;
                        return 1;
                }
                *ret_error = errno;
                if (errno == EACCES || errno == EPERM) {
                        r = hosts_dir_watch_parent(h);
                        if (r < 0)
                                return -*ret_error;
                        /* Made readable between our try and the watch: no event will tell. */
                        if (faccessat(AT_FDCWD, h->path, R_OK | X_OK, AT_EACCESS) < 0)
                                return 0;
                        continue;
                }
                if (!errno_is_missing(errno))
                        return negative_errno();

                child = strdup(h->path);
                if (!child)
                        return -ENOMEM;

                for (;;) {
                        _cleanup_free_ char *parent = NULL, *name = NULL;

                        r = path_split(child, &parent, &name);
                        if (r < 0)
                                return r;
                        if (streq(parent, child))
                                return -ENOENT;

                        wd = inotify_add_watch(h->inotify_fd, parent, PARENT_MASK);
                        if (wd >= 0) {
                                h->parent_wd = wd;
                                h->parent_path = TAKE_PTR(parent);
                                h->waiting_for = TAKE_PTR(name);
                                break;
                        }
                        if (!errno_is_missing(errno))
                                return negative_errno();

                        free(child);
                        child = TAKE_PTR(parent);
                }

                /* If what we wait for appeared between our look and the watch,
                 * no event will tell us: look again. */
                if (!is_directory(child))
                        return 0;
        }

        return 0;
}

/* Why the directory is not being watched, after hosts_dir_watch() settled
 * for a watch on an ancestor (error: why the directory's own failed). */
static void hosts_dir_explain_wait(HostsDir *h, int error) {
        _cleanup_free_ char *missing = NULL;
        struct stat st;

        if (error == EACCES || error == EPERM) {
                g_autofree char *why = describe_error(error);

                hosts_dir_set_problem(h, DIR_UNREADABLE,
                                      g_strdup_printf("cannot be read: %s; watching %s for a change of its permissions",
                                                      why, h->parent_path));
                return;
        }
        if (stat(h->path, &st) >= 0 && !S_ISDIR(st.st_mode)) {
                hosts_dir_set_problem(
                        h, DIR_NOT_DIR,
                        g_strdup_printf("is not a directory; watching %s for a directory to take its place",
                                        h->parent_path));
                return;
        }
        /* The first component that is missing: all the rest is, too. */
        if (asprintf(&missing, "%s%s%s", h->parent_path, string_has_suffix(h->parent_path, "/") ? "" : "/",
                     h->waiting_for) < 0)
                missing = NULL;
        if (missing && !streq(missing, h->path))
                hosts_dir_set_problem(h, DIR_MISSING,
                                      g_strdup_printf("does not exist (%s is missing); watching %s for it to appear",
                                                      missing, h->parent_path));
        else
                hosts_dir_set_problem(h, DIR_MISSING,
                                      g_strdup_printf("does not exist; watching %s for it to appear", h->parent_path));
}

/* (Re)starts: watches the directory or waits for it; loads it if it is there. */
static int hosts_dir_start(HostsDir *h) {
        int r, error;

        r = hosts_dir_watch(h, &error);
        if (r < 0) {
                g_autofree char *why = describe_error(r);

                /* The daemon serves its other sources; a rescan (SIGHUP) tries again. */
                hosts_dir_set_problem(h, DIR_WATCH_FAILED,
                                      g_strdup_printf("cannot be watched: %s; serving no records from it", why));
                h->exists = false;
                return r;
        }
        if (r == 0) {
                h->exists = false;
                if (h->parent_path)
                        hosts_dir_explain_wait(h, error);
                return 0;
        }

        h->exists = true;
        hosts_dir_set_problem(h, DIR_OK, NULL);
        log_info("Watching hosts directory %s", h->path);
        return hosts_dir_load_all(h);
}

static void hosts_dir_file_event(HostsDir *h, const char *name, uint32_t mask) {
        HostsFile *f;

        if (!hosts_file_name_wanted(name))
                return;
        /* A subdirectory is no hosts file; but a name we know of may have been
         * replaced by one, so let the reload find out. */
        if ((mask & IN_ISDIR) && !g_hash_table_contains(h->files, name))
                return;

        f = hosts_dir_get_file(h, name);
        if (!f) {
                (void) log_oom();
                return;
        }

        if (mask & (IN_MODIFY | IN_CREATE) && !(mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE))) {
                f->modified = true;
                arm_timer(h->modify_source, MODIFY_USEC);
        } else {
                f->dirty = true;
                f->modified = false;
                arm_timer(h->coalesce_source, COALESCE_USEC);
        }
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HostsDir *h = userdata;
        union {
                struct inotify_event ev;
                uint8_t raw[64 * 1024];
        } buf;
        bool rescan = false;

        for (;;) {
                ssize_t n;

                n = read(fd, &buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                /* Not returned: sd-event would disable the source for good. */
                                log_warning_errno(errno, "Failed to read inotify events: %m");
                        break;
                }

                for (uint8_t *p = buf.raw; p < buf.raw + n;) {
                        struct inotify_event *e = (struct inotify_event *) p;

                        p += sizeof *e + e->len;

                        if (e->mask & IN_Q_OVERFLOW) {
                                rescan = true;
                                continue;
                        }

                        if (h->wd >= 0 && e->wd == h->wd) {
                                if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
                                        /* Gone, or no longer at our path: what it
                                         * holds is no longer what the path says. */
                                        log_info("Hosts directory %s was removed or moved away, dropping its records.",
                                                 h->path);
                                        hosts_dir_drop_all(h);
                                        h->exists = false;
                                        (void) hosts_dir_start(h);
                                } else if (e->len > 0)
                                        hosts_dir_file_event(h, e->name, e->mask);

                        } else if (h->parent_wd >= 0 && e->wd == h->parent_wd) {
                                if ((e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
                                    (e->len > 0 && streq_ptr(e->name, h->waiting_for)))
                                        /* A step closer (or further): look again. */
                                        (void) hosts_dir_start(h);
                        }
                        /* Anything else is about a watch we already dropped. */
                }
        }

        if (rescan) {
                log_warning("Too many inotify events for %s, rescanning it.", h->path);
                (void) hosts_dir_rescan(h);
        }
        return 0;
}

int hosts_dir_new(HostsDir **ret, sd_event *e, Store *store, const HostsDirOptions *opts) {
        _cleanup_(hosts_dir_freep) HostsDir *h = NULL;
        int fd, r;
        size_t n;

        if (!ret || !e || !store || !opts || !opts->path || !opts->path[0])
                return -EINVAL;
        if (opts->ttl > STORE_TTL_MAX)
                return -ERANGE;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        *h = (HostsDir) {
                .event = sd_event_ref(e),
                .store = store,
                .ttl = opts->ttl,
                .max_records_per_file = opts->max_records_per_file ?: HOSTS_MAX_RECORDS_PER_FILE_DEFAULT,
                .max_records = opts->max_records ?: HOSTS_MAX_RECORDS_DEFAULT,
                .inotify_fd = -EBADF,
                .wd = -1,
                .parent_wd = -1,
        };

        /* "/etc/hosts.d/" and "/etc/hosts.d" are the same directory and must
         * give the same owners. */
        h->path = strdup(opts->path);
        if (!h->path)
                return -ENOMEM;
        n = strlen(h->path);
        while (n > 1 && h->path[n - 1] == '/')
                h->path[--n] = 0;

        h->files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, hosts_file_destroy);
        h->idle_callbacks = g_array_new(FALSE, FALSE, sizeof(IdleCallback));
        h->listed = g_array_new(FALSE, FALSE, sizeof(HostsWarning));

        r = worker_new(&h->worker, e, "hosts-reader");
        if (r < 0)
                return log_error_errno(r, "Failed to start the hosts reader: %m");

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create inotify fd: %m");
        r = sd_event_add_io(e, &h->inotify_source, fd, EPOLLIN, on_inotify, h);
        if (r < 0) {
                safe_close(fd);
                return log_error_errno(r, "Failed to watch inotify fd: %m");
        }
        h->inotify_fd = fd;
        (void) sd_event_source_set_io_fd_own(h->inotify_source, true);
        (void) sd_event_source_set_description(h->inotify_source, "hosts-dir-inotify");

        /* Accuracy 1 ms: sd-event's default (250 ms) would defeat the purpose. */
        r = sd_event_add_time_relative(e, &h->coalesce_source, CLOCK_MONOTONIC, COALESCE_USEC, USEC_PER_MSEC,
                                       on_coalesce_timer, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add hosts reload timer: %m");
        (void) sd_event_source_set_enabled(h->coalesce_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(h->coalesce_source, "hosts-dir-reload");

        r = sd_event_add_time_relative(e, &h->modify_source, CLOCK_MONOTONIC, MODIFY_USEC, USEC_PER_MSEC,
                                       on_modify_timer, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add hosts modify timer: %m");
        (void) sd_event_source_set_enabled(h->modify_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(h->modify_source, "hosts-dir-modify");

        r = sd_event_add_time(e, &h->retry_source, CLOCK_MONOTONIC, 0, 10 * USEC_PER_MSEC, on_retry_timer, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add hosts retry timer: %m");
        (void) sd_event_source_set_enabled(h->retry_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(h->retry_source, "hosts-dir-retry");

        r = sd_event_add_defer(e, &h->apply_source, on_apply, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add hosts apply source: %m");
        /* Below the sockets (and the bus): a batch waits for them, not the reverse. */
        (void) sd_event_source_set_priority(h->apply_source, SD_EVENT_PRIORITY_NORMAL + 10);
        (void) sd_event_source_set_enabled(h->apply_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(h->apply_source, "hosts-dir-apply");

        /* The first load is done right away, in full: what the daemon serves
         * when it says it is ready includes the hosts files. */
        h->synchronous = true;
        r = hosts_dir_start(h);
        h->synchronous = false;
        if (r == -ENOMEM)
                return r;
        /* Anything else (no permission, out of watches) was logged; the
         * daemon serves its other sources, and a rescan may retry. */

        *ret = TAKE_PTR(h);
        return 0;
}

HostsDir *hosts_dir_free(HostsDir *h) {
        if (!h)
                return NULL;

        /* Lets a read under way finish, and drops its result. */
        h->worker = worker_free(h->worker);
        load_job_free(TAKE_PTR(h->job));

        /* This source's records go with it: the store must outlive it. */
        if (h->files) {
                GHashTableIter i;
                gpointer v;

                g_hash_table_iter_init(&i, h->files);
                while (g_hash_table_iter_next(&i, NULL, &v))
                        (void) store_remove_owner(h->store, ((HostsFile *) v)->owner);
                g_hash_table_destroy(h->files);
        }
        if (h->idle_callbacks) {
                call_idle_callbacks(h);
                g_array_free(h->idle_callbacks, TRUE);
        }

        /* Closes the inotify fd, and with it every watch. */
        h->inotify_source = sd_event_source_disable_unref(h->inotify_source);
        h->coalesce_source = sd_event_source_disable_unref(h->coalesce_source);
        h->modify_source = sd_event_source_disable_unref(h->modify_source);
        h->retry_source = sd_event_source_disable_unref(h->retry_source);
        h->apply_source = sd_event_source_disable_unref(h->apply_source);
        sd_event_unref(h->event);

        if (h->listed)
                g_array_free(h->listed, TRUE);
        g_free(h->dir_problem_why);
        free(h->parent_path);
        free(h->waiting_for);
        free(h->path);
        free(h);
        return NULL;
}

int hosts_dir_rescan(HostsDir *h) {
        if (!h)
                return -EINVAL;

        /* Also the way to retry after a watch could not be set up at all. */
        if (!h->exists || h->wd < 0)
                return hosts_dir_start(h);

        return hosts_dir_load_all(h);
}

void hosts_dir_set_limits(HostsDir *h, uint32_t max_records_per_file, uint32_t max_records) {
        h->max_records_per_file = max_records_per_file ?: HOSTS_MAX_RECORDS_PER_FILE_DEFAULT;
        h->max_records = max_records ?: HOSTS_MAX_RECORDS_DEFAULT;
}

bool hosts_dir_busy(const HostsDir *h) {
        GHashTableIter i;
        gpointer v;

        if (!h)
                return false;
        if (h->job)
                return true;
        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (((HostsFile *) v)->dirty)
                        return true;
        return false;
}

void hosts_dir_when_idle(HostsDir *h, HostsDirIdleFunc f, void *userdata) {
        IdleCallback c = { f, userdata };

        g_array_append_val(h->idle_callbacks, c);
        if (!hosts_dir_busy(h))
                hosts_dir_kick(h);
}

static int file_compare_path(const void *a, const void *b) {
        const HostsFile *x = *(const HostsFile *const *) a, *y = *(const HostsFile *const *) b;

        return strcmp(x->path, y->path);
}

static void hosts_dir_list_add(HostsDir *h, const char *file, unsigned line, const char *why) {
        HostsWarning w = { .file = file, .line = line, .why = why };

        if (h->listed->len < HOSTS_WARNINGS_LISTED_MAX)
                g_array_append_val(h->listed, w);
}

/* The status's list: the directory's own problem, then by file and line. */
static void hosts_dir_list_warnings(HostsDir *h) {
        g_autoptr(GPtrArray) files = g_ptr_array_new();
        GHashTableIter i;
        gpointer v;

        g_array_set_size(h->listed, 0);
        h->listed_dirty = false;
        if (h->dir_problem_why)
                hosts_dir_list_add(h, h->path, 0, h->dir_problem_why);

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                const HostsFile *f = v;

                if (f->problem || (f->warnings && f->warnings->len > 0))
                        g_ptr_array_add(files, v);
        }
        if (files->len > 1)
                qsort(files->pdata, files->len, sizeof(gpointer), file_compare_path);

        for (guint k = 0; k < files->len && h->listed->len < HOSTS_WARNINGS_LISTED_MAX; k++) {
                const HostsFile *f = files->pdata[k];

                if (f->problem)
                        hosts_dir_list_add(h, f->path, 0, f->problem);
                for (guint n = 0; f->warnings && n < f->warnings->len; n++) {
                        const LineWarning *w = &g_array_index(f->warnings, LineWarning, n);

                        hosts_dir_list_add(h, f->path, w->line, w->why);
                }
        }
}

void hosts_dir_get_status(HostsDir *h, HostsDirStatus *ret) {
        GHashTableIter i;
        gpointer v;

        if (h->listed_dirty)
                hosts_dir_list_warnings(h);

        *ret = (HostsDirStatus) {
                .path = h->path,
                /* There, but not ours to read: it exists all the same. */
                .exists = h->exists || h->dir_problem == DIR_UNREADABLE,
                .last_load_usec = h->last_load_usec,
                .n_warnings = h->dir_problem_why ? 1 : 0,
                .warnings = (const HostsWarning *) h->listed->data,
                .n_warnings_listed = h->listed->len,
        };

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                const HostsFile *f = v;

                ret->n_warnings += f->n_warnings + (f->problem ? 1 : 0);
                if (!f->loaded)
                        continue;
                ret->n_files++;
                ret->n_records += f->n_records;
        }
}
