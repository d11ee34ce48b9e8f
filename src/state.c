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
#include <glib.h>
#include <json-c/json.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "state.h"

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

int state_collect(const Store *s, StateRecord **ret, size_t *ret_n) {
        GArray *a = g_array_new(FALSE, TRUE, sizeof(StateRecord));

        (void) store_foreach(s, NULL, STATE_OWNER, collect_one, a);
        /* Sorted, so the file reads well and does not churn between saves. */
        g_array_sort(a, state_record_compare);
        *ret_n = a->len;
        *ret = (StateRecord *) g_array_free(a, FALSE);
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

int state_save(const char *dir, const StateRecord *records, size_t n) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        json_object *root, *array;
        const char *text;
        int r;

        if (g_mkdir_with_parents(dir, 0755) < 0)
                return negative_errno();

        root = json_object_new_object();
        array = json_object_new_array_ext((int) n);
        json_object_object_add(root, "version", json_object_new_int(STATE_FORMAT_VERSION));
        json_object_object_add(root, "records", array);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(records[i].name));
                json_object_object_add(o, "type", json_object_new_string(strna(dns_type_to_string(records[i].type))));
                json_object_object_add(o, "value", json_object_new_string(strempty(records[i].value)));
                json_object_object_add(o, "ttl", json_object_new_int64(records[i].ttl));
                json_object_array_add(array, o);
        }
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

        path = state_file_path(dir);
        tmp = g_strdup_printf("%s.XXXXXX", path);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                json_object_put(root);
                return r;
        }
        r = write_all(fd, text, strlen(text));
        if (r >= 0)
                r = write_all(fd, "\n", 1);
        json_object_put(root);
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
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                log_warning_errno(negative_errno(), "Failed to sync state directory %s, ignoring: %m", dir);
        return 0;
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
                log_warning("State file %s is unusable (%s); moved it to %s and continuing without it.",
                            path, why, aside);
}

/* Checks an entry and returns it as a StateRecord, or -EINVAL with *ret_why. */
static int parse_entry(json_object *o, StateRecord *ret, const char **ret_why) {
        json_object *name, *type, *value, *ttl;
        int t;
        int64_t ttl_value;

        if (!json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "name", &name) || !json_object_is_type(name, json_type_string) ||
            !json_object_object_get_ex(o, "type", &type) || !json_object_is_type(type, json_type_string) ||
            !json_object_object_get_ex(o, "value", &value) || !json_object_is_type(value, json_type_string) ||
            !json_object_object_get_ex(o, "ttl", &ttl) || !json_object_is_type(ttl, json_type_int)) {
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
                move_aside(path, jerr == json_tokener_continue ? "truncated or empty JSON" :
                                 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "no JSON value");
                return 0;
        }
        if (!json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "version", &version) || json_object_get_int(version) != STATE_FORMAT_VERSION ||
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
