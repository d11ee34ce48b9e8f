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
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

#include "hosts.h"
#include "log.h"
#include "store.h"

/* What we want to hear about inside the directory, and about the directory
 * itself going away. IN_ATTRIB catches a chmod that makes a file readable. */
#define DIR_MASK (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
                  IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* While waiting for the directory: its next missing component appearing in the
 * nearest existing ancestor, or that ancestor itself going away. */
#define PARENT_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

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

typedef struct HostsFile {
        char *name;             /* name in the directory: the hash key */
        char *path;             /* <dir>/<name> */
        char *owner;            /* "hosts:<dir>/<name>" */
        bool dirty;             /* reload at the next coalescing timer */
        bool modified;          /* written to but not (yet) closed */
        bool loaded;            /* its records are in the store */
        unsigned n_records;
        unsigned n_warnings;
} HostsFile;

struct HostsDir {
        sd_event *event;
        Store *store;
        char *path;
        uint32_t ttl;

        int inotify_fd;                 /* owned by inotify_source */
        sd_event_source *inotify_source;
        int wd;                         /* watch on the directory, -1 if none */
        int parent_wd;                  /* watch on the nearest ancestor while waiting, -1 if none */
        char *parent_path;
        char *waiting_for;              /* the component of path that parent_path lacks */
        bool exists;

        GHashTable *files;              /* name -> HostsFile */
        sd_event_source *coalesce_source;
        sd_event_source *modify_source;
        uint64_t last_load_usec;
};

typedef struct LoadContext {
        HostsDir *dir;
        HostsFile *file;
        unsigned n_added;
        unsigned n_warnings;
} LoadContext;

static HostsFile *hosts_file_free(HostsFile *f) {
        if (!f)
                return NULL;
        free(f->name);
        free(f->path);
        free(f->owner);
        free(f);
        return NULL;
}

static void hosts_file_destroy(gpointer p) {
        (void) hosts_file_free(p);
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static int log_oom(void) {
        return log_error_errno(ENOMEM, "Out of memory.");
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
                "~", ".swp", ".bak",
                ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".dpkg-bak",
                ".rpmnew", ".rpmsave", ".rpmorig",
                ".ucf-old", ".ucf-new", ".ucf-dist",
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

static void load_warning(LoadContext *c, unsigned line, const char *why) {
        if (c->n_warnings++ < WARNINGS_LOGGED_MAX)
                log_warning("%s:%u: %s", c->file->path, line, why);
}

static void load_parse_warning(unsigned line, const char *why, void *userdata) {
        load_warning(userdata, line, why);
}

static int load_entry(const char *name, uint16_t type, const char *address, unsigned line, void *userdata) {
        LoadContext *c = userdata;
        const char *error = NULL;
        char why[512];
        int r;

        r = store_add(c->dir->store, name, type, address, c->dir->ttl, c->file->owner, line, NULL, &error);
        if (is_add_error(r)) {
                /* The parser already checked the name; whatever the store still
                 * refuses is a problem of this line, not of the whole file. */
                (void) snprintf(why, sizeof why, "cannot add '%s' %s: %s", name, address,
                                error ?: strerror(-r));
                load_warning(c, line, why);
                return 0;
        }
        if (r < 0)
                return r;
        if (r > 0)
                c->n_added++;
        return 0;
}

/* Removes what a file had in the store, when it is gone or cannot be read. */
static void hosts_dir_unload_file(HostsDir *h, HostsFile *f) {
        int n;

        n = store_remove_owner(h->store, f->owner);
        if (f->loaded || n > 0)
                log_info("Removed %s: %i record%s", f->path, MAX(n, 0), n == 1 ? "" : "s");
        f->loaded = false;
        f->n_records = 0;
        f->n_warnings = 0;
}

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

/* Loads (or reloads) one file by mark and sweep. Returns 1 when the file is
 * loaded, 0 when it is not a hosts file (any more): gone, not a regular file,
 * unreadable, too big; its records are then removed and the caller forgets it.
 * Negative only for running out of memory. */
static int hosts_dir_load_file(HostsDir *h, HostsFile *f) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        LoadContext c = { .dir = h, .file = f };
        struct stat st;
        size_t size;
        int r, removed;

        f->dirty = f->modified = false;

        /* O_NONBLOCK so that a FIFO dropped into the directory cannot hang the loop. */
        fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno != ENOENT)
                        log_warning_errno(errno, "Failed to open %s, ignoring: %m", f->path);
                hosts_dir_unload_file(h, f);
                return 0;
        }
        if (fstat(fd, &st) < 0) {
                log_warning_errno(errno, "Failed to stat %s, ignoring: %m", f->path);
                hosts_dir_unload_file(h, f);
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                log_debug("%s is not a regular file, ignoring.", f->path);
                hosts_dir_unload_file(h, f);
                return 0;
        }
        if ((uint64_t) st.st_size > HOSTS_FILE_SIZE_MAX) {
                log_warning("%s is larger than %zu MiB, ignoring.", f->path, HOSTS_FILE_SIZE_MAX >> 20);
                hosts_dir_unload_file(h, f);
                return 0;
        }

        r = read_all(fd, (size_t) st.st_size, &data, &size);
        if (r == -ENOMEM)
                return log_error_errno(r, "Failed to read %s: %m", f->path);
        if (r == -EFBIG) {
                log_warning("%s is larger than %zu MiB, ignoring.", f->path, HOSTS_FILE_SIZE_MAX >> 20);
                hosts_dir_unload_file(h, f);
                return 0;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to read %s, ignoring: %m", f->path);
                hosts_dir_unload_file(h, f);
                return 0;
        }

        store_mark_owner(h->store, f->owner);
        r = hosts_parse(data, size, load_entry, load_parse_warning, &c);
        if (r < 0)
                /* Out of memory half-way: keep what was there rather than sweep
                 * away records that may well still be in the file. */
                return log_error_errno(r, "Failed to load %s: %m", f->path);
        removed = store_sweep_owner(h->store, f->owner);
        removed = MAX(removed, 0);

        if (c.n_warnings > WARNINGS_LOGGED_MAX)
                log_warning("%s: %u more warnings not shown.", f->path, c.n_warnings - WARNINGS_LOGGED_MAX);

        /* Exact as long as only we touch this owner: store_add() counts a
         * record as new only once, however often the file repeats it. */
        f->n_records = f->n_records + c.n_added - MIN((unsigned) removed, f->n_records + c.n_added);
        f->n_warnings = c.n_warnings;
        f->loaded = true;
        h->last_load_usec = now_realtime_usec();

        log_info("Loaded %s: %u record%s (+%u -%i), %u warning%s",
                 f->path, f->n_records, f->n_records == 1 ? "" : "s",
                 c.n_added, removed, c.n_warnings, c.n_warnings == 1 ? "" : "s");
        return 1;
}

/* Reloads every dirty file; forgets those that turned out not to be hosts files. */
static int hosts_dir_load_dirty(HostsDir *h) {
        GHashTableIter i;
        gpointer v;
        int ret = 0;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                HostsFile *f = v;
                int r;

                if (!f->dirty)
                        continue;
                r = hosts_dir_load_file(h, f);
                if (r < 0)
                        ret = r;
                else if (r == 0)
                        g_hash_table_iter_remove(&i);
        }
        return ret;
}

static void hosts_dir_drop_all(HostsDir *h) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                hosts_dir_unload_file(h, v);
                g_hash_table_iter_remove(&i);
        }
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
        if (!d)
                log_warning_errno(errno, "Failed to list hosts directory %s: %m", h->path);
        else {
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

/* Puts a watch on the directory if it exists (returns 1), else on its nearest
 * existing ancestor (returns 0). */
static int hosts_dir_watch(HostsDir *h) {
        /* The tree may change under us while we walk it; after a few tries
         * settle for whatever watch we have, its events will bring us back. */
        for (unsigned attempt = 0; attempt < 8; attempt++) {
                _cleanup_free_ char *child = NULL;
                int wd;

                hosts_dir_unwatch(h);

                wd = inotify_add_watch(h->inotify_fd, h->path, DIR_MASK);
                if (wd >= 0) {
                        h->wd = wd;
                        return 1;
                }
                if (!errno_is_missing(errno))
                        return log_warning_errno(errno, "Failed to watch hosts directory %s: %m", h->path);

                child = strdup(h->path);
                if (!child)
                        return -ENOMEM;

                for (;;) {
                        _cleanup_free_ char *parent = NULL, *name = NULL;
                        int r;

                        r = path_split(child, &parent, &name);
                        if (r < 0)
                                return r;
                        if (streq(parent, child))
                                return log_warning_errno(ENOENT, "No existing ancestor of %s to watch: %m", h->path);

                        wd = inotify_add_watch(h->inotify_fd, parent, PARENT_MASK);
                        if (wd >= 0) {
                                h->parent_wd = wd;
                                h->parent_path = TAKE_PTR(parent);
                                h->waiting_for = TAKE_PTR(name);
                                break;
                        }
                        if (!errno_is_missing(errno))
                                return log_warning_errno(errno, "Failed to watch %s for %s to appear: %m", parent, h->path);

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

/* (Re)starts: watches the directory or waits for it; loads it if it is there. */
static int hosts_dir_start(HostsDir *h) {
        int r;

        r = hosts_dir_watch(h);
        if (r < 0)
                return r;
        if (r == 0) {
                if (h->parent_path)
                        log_info("Hosts directory %s does not exist, waiting for it (watching %s).",
                                 h->path, h->parent_path);
                h->exists = false;
                return 0;
        }

        h->exists = true;
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

                for (uint8_t *p = buf.raw; p < buf.raw + n; ) {
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

int hosts_dir_new(HostsDir **ret, sd_event *e, Store *store, const char *path, uint32_t ttl) {
        _cleanup_(hosts_dir_freep) HostsDir *h = NULL;
        int fd, r;
        size_t n;

        if (!ret || !e || !store || !path || !path[0])
                return -EINVAL;
        if (ttl > STORE_TTL_MAX)
                return -ERANGE;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        *h = (HostsDir) {
                .event = sd_event_ref(e),
                .store = store,
                .ttl = ttl,
                .inotify_fd = -EBADF,
                .wd = -1,
                .parent_wd = -1,
        };

        /* "/etc/hosts.d/" and "/etc/hosts.d" are the same directory and must
         * give the same owners. */
        h->path = strdup(path);
        if (!h->path)
                return -ENOMEM;
        n = strlen(h->path);
        while (n > 1 && h->path[n - 1] == '/')
                h->path[--n] = 0;

        h->files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, hosts_file_destroy);

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

        r = hosts_dir_start(h);
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

        /* This source's records go with it: the store must outlive it. */
        if (h->files) {
                GHashTableIter i;
                gpointer v;

                g_hash_table_iter_init(&i, h->files);
                while (g_hash_table_iter_next(&i, NULL, &v))
                        (void) store_remove_owner(h->store, ((HostsFile *) v)->owner);
                g_hash_table_destroy(h->files);
        }

        /* Closes the inotify fd, and with it every watch. */
        h->inotify_source = sd_event_source_disable_unref(h->inotify_source);
        h->coalesce_source = sd_event_source_disable_unref(h->coalesce_source);
        h->modify_source = sd_event_source_disable_unref(h->modify_source);
        sd_event_unref(h->event);

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

void hosts_dir_get_status(const HostsDir *h, HostsDirStatus *ret) {
        GHashTableIter i;
        gpointer v;

        *ret = (HostsDirStatus) {
                .path = h->path,
                .exists = h->exists,
                .last_load_usec = h->last_load_usec,
        };

        g_hash_table_iter_init(&i, h->files);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                const HostsFile *f = v;

                if (!f->loaded)
                        continue;
                ret->n_files++;
                ret->n_records += f->n_records;
                ret->n_warnings += f->n_warnings;
        }
}
