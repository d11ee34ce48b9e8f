/* SPDX-License-Identifier: MIT */
/* GET /dns/records without a server: the query parser's errors, the hand
 * written document byte for byte equal to json-c's (the original service's
 * form), search and paging, and the export's snapshot: taken in batches while
 * the store changes under it, it still holds exactly the records of the
 * moment it started (run under ASan, a record freed before it was copied
 * would show). */

#include <glib.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "http-json.h"
#include "http-records.h"
#include "test-util.h"

static Store *make_store(void) {
        Store *s = NULL;

        CHECK_INT_EQ(store_new(&s), 0);
        CHECK_INT_EQ(store_add(s, "web.example", DNS_TYPE_A, "10.0.0.2", 30, "hosts:/h/a", 3, NULL, NULL), 1);
        CHECK_INT_EQ(store_add(s, "web.example", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/a", 4, NULL, NULL), 1);
        CHECK_INT_EQ(store_add(s, "api.example", DNS_TYPE_AAAA, "fd00::1", 60, "docker:abc", 0, "api \"x\"", NULL), 1);
        CHECK_INT_EQ(store_add(s, "alias.example", DNS_TYPE_CNAME, "web.example", 120, "dbus", 0, NULL, NULL), 1);
        /* Everything json-c escapes, a slash it does not (NOSLASHESCAPE), UTF-8
         * it passes through; owners are file names: anything but NUL. */
        CHECK_INT_EQ(store_add(s, "txt.example", DNS_TYPE_TXT, "a\"b\\c/d \xc3\xa9", 5,
                               "hosts:/h/\b\f\n\r\t\001\037\x7f\"\\", 7, NULL, NULL),
                     1);
        return s;
}

static int add_to_snapshot(const Record *r, void *userdata) {
        records_snapshot_add(userdata, r);
        return 0;
}

static RecordsSnapshot *snapshot_of(Store *s) {
        RecordsSnapshot *snap = records_snapshot_new(store_version(s), store_count(s));

        (void) store_foreach(s, NULL, NULL, add_to_snapshot, snap);
        return snap;
}

static json_object *render(Store *s, const char *query_string) {
        g_autoptr(GHashTable) params =
                query_string ? g_uri_parse_params(query_string, -1, "&", G_URI_PARAMS_NONE, NULL) : NULL;
        g_autofree char *error = NULL;
        _cleanup_(records_snapshot_freep) RecordsSnapshot *snap = snapshot_of(s);
        g_autoptr(GBytes) body = NULL;
        RecordsQuery q;
        json_object *o;

        CHECK_INT_EQ(records_query_parse(params, &q, &error), 0);
        body = records_render(snap, &q);
        records_query_done(&q);
        o = json_tokener_parse(g_bytes_get_data(body, NULL));
        CHECK(o);
        return o;
}

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        CHECK(json_object_object_get_ex(o, key, &v));
        return v;
}

static void test_same_bytes_as_json_c(void) {
        Store *s = make_store();
        /* A peer's record, with where the peer has it: "peer:node-b · docker:3f2a (web-1)". */
        CHECK_INT_EQ(
                store_add(s, "far.example", DNS_TYPE_A, "10.0.0.9", 30, "peer:node-b", 0, "docker:3f2a (web-1)", NULL),
                1);
        _cleanup_(records_snapshot_freep) RecordsSnapshot *snap = snapshot_of(s);
        RecordsQuery none = { .limit = UINT64_MAX };
        g_autoptr(GBytes) body = records_render(snap, &none);
        json_object *reference = http_json_records(s, NULL, NULL, 0);
        g_autofree char *expected = http_json_to_string(reference);
        gsize size;
        const char *got = g_bytes_get_data(body, &size);

        CHECK_INT_EQ(size, strlen(expected));
        CHECK(memcmp(got, expected, size) == 0);
        json_object_put(reference);
        store_free(s);
}

static void expect_error(const char *query_string, const char *prefix) {
        g_autoptr(GHashTable) params = g_uri_parse_params(query_string, -1, "&", G_URI_PARAMS_NONE, NULL);
        g_autofree char *error = NULL;
        RecordsQuery q;

        CHECK_INT_EQ(records_query_parse(params, &q, &error), -EINVAL);
        CHECK(error);
        if (!g_str_has_prefix(error, prefix))
                g_error("%s: expected an error starting with '%s', got '%s'", query_string, prefix, error);
}

static void test_query_errors(void) {
        g_autofree char *long_q = g_strnfill(RECORDS_QUERY_Q_MAX + 1, 'x');
        g_autofree char *q = g_strconcat("q=", long_q, NULL);

        expect_error("limit=-1", "limit: expected a number");
        expect_error("limit=abc", "limit: ");
        expect_error("limit=1.5", "limit: ");
        expect_error("offset=1e3", "offset: expected a number");
        expect_error("offset=1234567890123456", "offset: ");
        expect_error("type=MX", "type: expected a record type");
        expect_error(q, "q: at most 256");
}

static const char *hostname_at(json_object *o, size_t i) {
        return json_object_get_string(get(json_object_array_get_idx(get(o, "records"), i), "hostname"));
}

static void test_search_and_paging(void) {
        Store *s = make_store();
        json_object *o;

        /* No parameter: the original keys only. */
        o = render(s, NULL);
        CHECK_INT_EQ(json_object_object_length(o), 4);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 5);
        json_object_put(o);

        /* A search matches names, values and sources, in any case. */
        o = render(s, "q=WEB");
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 5);
        CHECK_INT_EQ(json_object_get_int(get(o, "matched_records")), 3); /* alias -> web, and web twice */
        CHECK_STREQ(hostname_at(o, 0), "alias.example");
        json_object_put(o);
        o = render(s, "q=(API");
        CHECK_INT_EQ(json_object_get_int(get(o, "matched_records")), 1); /* "docker:abc (api ...)" */
        json_object_put(o);
        o = render(s, "q=h/a:4");
        CHECK_INT_EQ(json_object_get_int(get(o, "matched_records")), 1);
        json_object_put(o);

        /* Pages over the sorted list. */
        o = render(s, "limit=2&offset=1");
        CHECK_INT_EQ(json_object_get_int(get(o, "matched_records")), 5);
        CHECK_INT_EQ(json_object_get_int(get(o, "limit")), 2);
        CHECK_INT_EQ(json_object_get_int(get(o, "offset")), 1);
        CHECK_INT_EQ(json_object_array_length(get(o, "records")), 2);
        CHECK_STREQ(hostname_at(o, 0), "api.example");
        CHECK_STREQ(hostname_at(o, 1), "txt.example");
        json_object_put(o);
        o = render(s, "offset=4&limit=100");
        CHECK_INT_EQ(json_object_array_length(get(o, "records")), 1);
        CHECK_STREQ(hostname_at(o, 0), "web.example");
        json_object_put(o);
        o = render(s, "offset=18446744073");
        CHECK_INT_EQ(json_object_array_length(get(o, "records")), 0);
        json_object_put(o);

        store_free(s);
}

/* --- the export, with the store changing between its batches ----------------- */

#define N_RECORDS 20000

typedef struct ExportResult {
        GBytes *body;
        unsigned n_pieces;
        bool done;
} ExportResult;

static void on_export_done(GPtrArray *body, void *userdata) {
        ExportResult *r = userdata;
        GByteArray *all = g_byte_array_new();

        /* Pieces of about RECORDS_PIECE_BYTES, all but the last at least that. */
        for (guint i = 0; i < body->len; i++) {
                gsize n;
                const guint8 *d = g_bytes_get_data(body->pdata[i], &n);

                CHECK(i + 1 == body->len || n >= RECORDS_PIECE_BYTES);
                g_byte_array_append(all, d, (guint) n);
        }
        g_byte_array_append(all, (const guint8 *) "", 1); /* for the JSON parser */
        r->body = g_byte_array_free_to_bytes(all);
        r->n_pieces = body->len;
        r->done = true;
}

static void add_numbered(Store *s, const char *prefix, unsigned i) {
        char name[64], value[32];

        snprintf(name, sizeof name, "%s%u.example", prefix, i);
        snprintf(value, sizeof value, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        CHECK_INT_EQ(store_add(s, name, DNS_TYPE_A, value, 30, "hosts:/h/n", i + 1, NULL, NULL), 1);
}

static void remove_numbered(Store *s, const char *prefix, unsigned i) {
        char name[64];

        snprintf(name, sizeof name, "%s%u.example", prefix, i);
        CHECK_INT_EQ(store_remove(s, name, 0, NULL, NULL), 1);
}

/* What an export needs: an event loop, a render worker on it, and a store
 * of N_RECORDS records named old0.example and on. */
static void export_setup(sd_event **ret_e, Worker **ret_w, Store **ret_s) {
        CHECK(sd_event_new(ret_e) >= 0);
        CHECK(worker_new(ret_w, *ret_e, "test-render") >= 0);
        CHECK_INT_EQ(store_new(ret_s), 0);
        for (unsigned i = 0; i < N_RECORDS; i++)
                add_numbered(*ret_s, "old", i);
}

static void test_export_snapshot(void) {
        Store *s = NULL;
        RecordsQuery q = { .limit = UINT64_MAX };
        ExportResult result = {};
        RecordsExport *x;
        sd_event *e = NULL;
        Worker *w = NULL;
        json_object *o, *records;
        unsigned turns = 0, removed = 0, added = 0;

        export_setup(&e, &w, &s);
        x = records_export_start(s, e, w, &q, on_export_done, &result);
        CHECK(x);
        CHECK(!result.done);

        /* Between batches: remove old records (some copied already, some not),
         * add new ones, until the copy is done. */
        while (!result.done) {
                CHECK(sd_event_run(e, USEC_PER_SEC) >= 0);
                /* From both ends: whichever order the copy goes in, some are
                 * removed before their turn. */
                for (unsigned k = 0; k < 250 && removed < N_RECORDS / 2; k++, removed++) {
                        remove_numbered(s, "old", removed);
                        remove_numbered(s, "old", N_RECORDS - 1 - removed);
                }
                for (unsigned k = 0; k < 500; k++)
                        add_numbered(s, "new", added++);
                turns++;
        }
        /* It took several batches, and the store changed in between; the
         * answer came in several pieces. */
        CHECK(turns > 2);
        CHECK(result.n_pieces > 2);
        CHECK(removed > 500);

        o = json_tokener_parse(g_bytes_get_data(result.body, NULL));
        CHECK(o);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), N_RECORDS);
        records = get(o, "records");
        CHECK_INT_EQ(json_object_array_length(records), N_RECORDS);
        for (size_t i = 0; i < N_RECORDS; i++) {
                const char *name = json_object_get_string(get(json_object_array_get_idx(records, i), "hostname"));
                CHECK(g_str_has_prefix(name, "old"));
        }
        json_object_put(o);
        g_bytes_unref(result.body);
        store_free(s);
        worker_free(w);
        sd_event_unref(e);
}

/* A caller that goes away, while copying or while rendering: no callback,
 * nothing left behind (ASan). */
static void test_export_cancel(void) {
        Store *s = NULL;
        RecordsQuery q = { .limit = UINT64_MAX }, q2 = { .limit = UINT64_MAX };
        ExportResult result = {};
        RecordsExport *x, *y;
        sd_event *e = NULL;
        Worker *w = NULL;

        export_setup(&e, &w, &s);
        x = records_export_start(s, e, w, &q, on_export_done, &result);
        CHECK(sd_event_run(e, 0) >= 0);
        records_export_cancel(x);
        for (unsigned i = 0; i < 100; i++)
                remove_numbered(s, "old", i);
        while (sd_event_run(e, 0) > 0)
                ;
        CHECK(!result.done);

        /* Cancelled while rendering, then the worker goes too. */
        y = records_export_start(s, e, w, &q2, on_export_done, &result);
        while (sd_event_run(e, 0) > 0)
                ;
        records_export_cancel(y);
        worker_free(w);
        CHECK(!result.done);
        store_free(s);
        sd_event_unref(e);
}

int main(void) {
        TEST_BEGIN("same bytes as json c");
        test_same_bytes_as_json_c();
        TEST_BEGIN("query errors");
        test_query_errors();
        TEST_BEGIN("search and paging");
        test_search_and_paging();
        TEST_BEGIN("export snapshot");
        test_export_snapshot();
        TEST_BEGIN("export cancel");
        test_export_cancel();
        printf("http-records: all checks passed\n");
        return 0;
}
