/* SPDX-License-Identifier: MIT */
/* Persistent state: the D-Bus records as <state dir>/records.json.
 *
 *   { "version": 1,
 *     "records": [ { "name": "web.example.com", "type": "A", "value": "10.0.0.1", "ttl": 60 } ] }
 *
 * Written atomically, so a crash leaves either the old file or the new one.
 * Read leniently: whatever cannot be used is kept aside for a person to look
 * at, and the daemon starts anyway. */

#include <fcntl.h>
#include <inttypes.h>
#include <glib.h>
#include <json-c/json.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "state.h"
#include "worker.h"

#define STATE_FORMAT_VERSION 1

char *state_file_path(const char *dir) {
        return g_build_filename(dir, STATE_FILE_NAME, NULL);
}

void state_records_free(StateRecord *records, size_t n) {
        for (size_t i = 0; records && i < n; i++) {
                g_free(records[i].name);
                g_free(records[i].value);
        }
        g_free(records);
}

static int collect_one(const Record *r, void *userdata) {
        GArray *a = userdata;
        StateRecord sr = {
                .name = g_strdup(r->name),
                .type = r->type,
                .value = g_strdup(r->value),
                .ttl = r->ttl,
        };
        g_array_append_val(a, sr);
        return 0;
}

static int state_record_compare(const void *a, const void *b) {
        const StateRecord *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c == 0)
                c = (int) x->type - (int) y->type;
        if (c == 0)
                c = strcmp(strempty(x->value), strempty(y->value));
        return c;
}

static void collect_unsorted(const Store *s, StateRecord **ret, size_t *ret_n) {
        GArray *a = g_array_new(FALSE, TRUE, sizeof(StateRecord));

        (void) store_foreach(s, NULL, STATE_OWNER, collect_one, a);
        *ret_n = a->len;
        *ret = (StateRecord *) g_array_free(a, FALSE);
}

/* Sorted, so the file reads well and does not churn between saves. */
static void sort_records(StateRecord *records, size_t n) {
        if (n > 1)
                qsort(records, n, sizeof *records, state_record_compare);
}

int state_collect(const Store *s, StateRecord **ret, size_t *ret_n) {
        collect_unsorted(s, ret, ret_n);
        sort_records(*ret, *ret_n);
        return 0;
}

/* --- saving -------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static void append_json_string(GString *out, const char *s) {
        g_string_append_c(out, '"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        g_string_append_c(out, '\\');
                        g_string_append_c(out, (char) *p);
                } else if (*p < 0x20)
                        g_string_append_printf(out, "\\u%04x", *p);
                else
                        g_string_append_c(out, (char) *p);
        }
        g_string_append_c(out, '"');
}

/* The file's text: one record a line, so that it reads and diffs well. Written
 * by hand rather than through json-c's tree: ten times faster at 10,000
 * records, which matters when every D-Bus change waits for a save. */
static GString *render(const StateRecord *records, size_t n) {
        GString *out = g_string_sized_new(64 + n * 80);

        g_string_append_printf(out, "{\n  \"version\": %d,\n  \"records\": [", STATE_FORMAT_VERSION);
        for (size_t i = 0; i < n; i++) {
                g_string_append(out, i == 0 ? "\n    { \"name\": " : ",\n    { \"name\": ");
                append_json_string(out, records[i].name);
                g_string_append(out, ", \"type\": ");
                append_json_string(out, strna(dns_type_to_string(records[i].type)));
                g_string_append(out, ", \"value\": ");
                append_json_string(out, strempty(records[i].value));
                g_string_append_printf(out, ", \"ttl\": %" PRIu32 " }", records[i].ttl);
        }
        g_string_append(out, n > 0 ? "\n  ]\n}\n" : "]\n}\n");
        return out;
}

/* The whole save; logs nothing, so that it can run on the worker thread.
 * *ret_dir_error gets the error of syncing the directory after the rename,
 * which does not fail the save (the data is written; only the rename might
 * not survive a crash). */
static int save_file(const char *dir, const StateRecord *records, size_t n, int *ret_dir_error) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        g_autoptr(GString) text = NULL;
        int r;

        if (g_mkdir_with_parents(dir, 0755) < 0)
                return negative_errno();

        text = render(records, n);
        path = state_file_path(dir);
        tmp = g_strdup_printf("%s.XXXXXX", path);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, text->str, text->len);
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = negative_errno();
        /* The data must be on disk before the rename makes it the state. */
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* And the rename itself must survive a crash. */
        *ret_dir_error = 0;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                *ret_dir_error = negative_errno();
        return 0;
}

int state_save(const char *dir, const StateRecord *records, size_t n) {
        int r, dir_error = 0;

        r = save_file(dir, records, n, &dir_error);
        if (r >= 0 && dir_error < 0)
                log_warning_errno(dir_error, "Failed to sync state directory %s, ignoring: %m", dir);
        return r;
}

/* --- loading ------------------------------------------------------------- */

/* Renames the file to <path>.corrupt-<unix time> so a person can look at it. */
static void move_aside(const char *path, const char *why) {
        long long now = (long long) time(NULL);
        _cleanup_free_ char *aside = g_strdup_printf("%s.corrupt-%lld", path, now);

        /* Never replace an earlier one: each may be someone's only copy. */
        for (unsigned i = 1; access(aside, F_OK) >= 0 && i < 100; i++) {
                g_free(aside);
                aside = g_strdup_printf("%s.corrupt-%lld-%u", path, now, i);
        }

        if (rename(path, aside) < 0)
                log_error_errno(negative_errno(), "State file %s is unusable (%s) and could not be moved aside: %m",
                                path, why);
        else
                log_warning("State file %s is unusable (%s); moved it to %s and continuing without it.", path, why,
                            aside);
}

/* Checks an entry and returns it as a StateRecord, or -EINVAL with *ret_why. */
static int parse_entry(json_object *o, StateRecord *ret, const char **ret_why) {
        json_object *name, *type, *value, *ttl;
        int t;
        int64_t ttl_value;

        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "name", &name) ||
            !json_object_is_type(name, json_type_string) || !json_object_object_get_ex(o, "type", &type) ||
            !json_object_is_type(type, json_type_string) || !json_object_object_get_ex(o, "value", &value) ||
            !json_object_is_type(value, json_type_string) || !json_object_object_get_ex(o, "ttl", &ttl) ||
            !json_object_is_type(ttl, json_type_int)) {
                *ret_why = "expected an object with string name, type, value and integer ttl";
                return -EINVAL;
        }
        t = dns_type_from_string(json_object_get_string(type));
        if (t < 0) {
                *ret_why = "unknown record type";
                return -EINVAL;
        }
        ttl_value = json_object_get_int64(ttl);
        if (ttl_value < 0 || ttl_value > STORE_TTL_MAX) {
                *ret_why = "TTL out of range";
                return -EINVAL;
        }
        *ret = (StateRecord) {
                .name = (char *) json_object_get_string(name),
                .type = (uint16_t) t,
                .value = (char *) json_object_get_string(value),
                .ttl = (uint32_t) ttl_value,
        };
        return 0;
}

int state_load(Store *s, const char *dir) {
        _cleanup_free_ char *path = NULL, *contents = NULL;
        g_autoptr(GError) error = NULL;
        json_tokener *tok;
        json_object *root = NULL, *records, *version;
        enum json_tokener_error jerr;
        gsize len = 0;
        size_t n, bad = 0;
        int added = 0;

        if (!dir)
                return 0;
        path = state_file_path(dir);
        if (!g_file_get_contents(path, &contents, &len, &error)) {
                if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        log_error("Failed to read state file %s, continuing without it: %s", path, error->message);
                return 0;
        }

        tok = json_tokener_new();
        root = json_tokener_parse_ex(tok, contents, (int) len);
        jerr = json_tokener_get_error(tok);
        /* Only whitespace may follow the object. */
        if (root && jerr == json_tokener_success)
                for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                        if (!g_ascii_isspace(contents[i])) {
                                jerr = json_tokener_error_parse_unexpected;
                                break;
                        }
        json_tokener_free(tok);
        if (!root || jerr != json_tokener_success) {
                json_object_put(root);
                move_aside(path, jerr == json_tokener_continue  ? "truncated or empty JSON"
                                 : jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                                                                : "no JSON value");
                return 0;
        }
        if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "version", &version) ||
            json_object_get_int(version) != STATE_FORMAT_VERSION ||
            !json_object_object_get_ex(root, "records", &records) || !json_object_is_type(records, json_type_array)) {
                json_object_put(root);
                move_aside(path, "not a version 1 object with a \"records\" array");
                return 0;
        }

        n = json_object_array_length(records);
        for (size_t i = 0; i < n; i++) {
                StateRecord sr;
                const char *why = NULL;
                int r;

                r = parse_entry(json_object_array_get_idx(records, i), &sr, &why);
                if (r >= 0) {
                        r = store_add(s, sr.name, sr.type, sr.value, sr.ttl, STATE_OWNER, 0, NULL, &why);
                        if (r > 0)
                                added++;
                }
                if (r < 0) {
                        log_warning("State file %s, record %zu: %s; skipping it.", path, i + 1, strna(why));
                        bad++;
                }
        }
        json_object_put(root);

        if (bad > 0) {
                /* Keep the original for a person, and the valid part as the state. */
                StateRecord *valid = NULL;
                size_t n_valid = 0;
                int r;

                move_aside(path, "invalid records");
                (void) state_collect(s, &valid, &n_valid);
                r = state_save(dir, valid, n_valid);
                state_records_free(valid, n_valid);
                if (r < 0)
                        log_error_errno(r, "Failed to rewrite state file %s: %m", path);
        }
        if (added > 0)
                log_info("Loaded %i record(s) added over D-Bus from %s.", added, path);
        return added;
}

/* --- the writer ------------------------------------------------------------ */

typedef struct SaveRequest {
        StateSavedFunc done;
        void *userdata;
} SaveRequest;

typedef struct SaveJob {
        WorkerJob job;
        StateWriter *writer;
        char *dir;
        StateRecord *records;
        size_t n;
        GArray *requests; /* SaveRequest: the callers whose changes this write holds */
        int result;
        int dir_error;
} SaveJob;

struct StateWriter {
        Store *store;
        char *dir;
        Worker *worker;
        sd_event_source *start_source; /* defer: starts the next write */
        GArray *waiting;               /* SaveRequest: for the next write */
        SaveJob *in_flight;            /* the write under way, or NULL */
        StateWriterStats stats;
};

static void save_job_free(SaveJob *j) {
        if (!j)
                return;
        state_records_free(j->records, j->n);
        if (j->requests)
                g_array_free(j->requests, TRUE);
        g_free(j->dir);
        g_free(j);
}

static void save_job_run(WorkerJob *wj) {
        SaveJob *j = (SaveJob *) wj;

        sort_records(j->records, j->n);
        j->result = save_file(j->dir, j->records, j->n, &j->dir_error);
}

/* Logs the outcome and answers every request the write held. */
static void save_job_finish(SaveJob *j) {
        StateWriter *w = j->writer;

        w->in_flight = NULL;
        w->stats.n_writes++;
        if (j->result < 0) {
                w->stats.n_failed++;
                log_error_errno(j->result, "Failed to save %zu record(s) to %s: %m", j->n, j->dir);
        } else {
                if (j->dir_error < 0)
                        log_warning_errno(j->dir_error, "Failed to sync state directory %s, ignoring: %m", j->dir);
                log_debug("Saved %zu record(s) to %s: one write for %u change request(s).", j->n, j->dir,
                          j->requests->len);
        }
        for (guint i = 0; i < j->requests->len; i++) {
                SaveRequest *q = &g_array_index(j->requests, SaveRequest, i);
                q->done(j->result, q->userdata);
        }
}

static void save_job_done(WorkerJob *wj) {
        SaveJob *j = (SaveJob *) wj;
        StateWriter *w = j->writer;

        save_job_finish(j);
        save_job_free(j);
        /* What came in while this one was written goes in the next one. */
        if (w->waiting->len > 0)
                (void) sd_event_source_set_enabled(w->start_source, SD_EVENT_ONESHOT);
}

static void save_job_discard(WorkerJob *wj) {
        /* Freeing the writer: the write ran to its end; answer its callers. */
        SaveJob *j = (SaveJob *) wj;

        save_job_finish(j);
        save_job_free(j);
}

/* Takes the waiting requests and the records as the store holds them now. */
static SaveJob *save_job_new(StateWriter *w) {
        SaveJob *j = g_new0(SaveJob, 1);

        *j = (SaveJob) {
                .job = { .run = save_job_run, .done = save_job_done, .discard = save_job_discard },
                .writer = w,
                .dir = g_strdup(w->dir),
                .requests = w->waiting,
        };
        w->waiting = g_array_new(FALSE, FALSE, sizeof(SaveRequest));
        collect_unsorted(w->store, &j->records, &j->n);
        return j;
}

static int on_start(sd_event_source *s, void *userdata) {
        StateWriter *w = userdata;

        if (w->in_flight || w->waiting->len == 0)
                return 0; /* the write under way restarts us when it is done */
        w->in_flight = save_job_new(w);
        worker_submit(w->worker, &w->in_flight->job);
        return 0;
}

int state_writer_new(StateWriter **ret, sd_event *e, Store *store, const char *dir) {
        _cleanup_(state_writer_freep) StateWriter *w = NULL;
        int r;

        w = g_new0(StateWriter, 1);
        w->store = store;
        w->dir = g_strdup(dir);
        w->waiting = g_array_new(FALSE, FALSE, sizeof(SaveRequest));

        r = worker_new(&w->worker, e, "state-writer");
        if (r < 0)
                return r;
        r = sd_event_add_defer(e, &w->start_source, on_start, w);
        if (r < 0)
                return r;
        /* After the method call that asked (and the others already read from
         * the bus): they all go into one write. */
        (void) sd_event_source_set_priority(w->start_source, SD_EVENT_PRIORITY_NORMAL + 1);
        (void) sd_event_source_set_enabled(w->start_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(w->start_source, "state-save");

        *ret = TAKE_PTR(w);
        return 0;
}

StateWriter *state_writer_free(StateWriter *w) {
        if (!w)
                return NULL;

        /* Lets the write under way finish, and answers its callers. */
        w->worker = worker_free(w->worker);
        w->start_source = sd_event_source_disable_unref(w->start_source);

        if (w->waiting && w->waiting->len > 0) {
                SaveJob *j = save_job_new(w);

                w->in_flight = j;
                save_job_run(&j->job);
                save_job_discard(&j->job);
        }
        if (w->waiting)
                g_array_free(w->waiting, TRUE);
        g_free(w->dir);
        g_free(w);
        return NULL;
}

void state_writer_request(StateWriter *w, StateSavedFunc done, void *userdata) {
        SaveRequest q = { done, userdata };

        g_array_append_val(w->waiting, q);
        w->stats.n_requests++;
        if (!w->in_flight)
                (void) sd_event_source_set_enabled(w->start_source, SD_EVENT_ONESHOT);
}

void state_writer_get_stats(const StateWriter *w, StateWriterStats *ret) {
        *ret = w ? w->stats : (StateWriterStats) {};
}
