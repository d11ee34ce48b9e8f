/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what an HTTP request brings that the daemon parses
 * itself: the Host and Origin headers (http-guard.c) and the /dns/records
 * query (http-records.c), and for the hand-written /dns/records document.
 *
 * The input is split at its first two newlines: a query string, then a
 * Host/Origin value, then the rest, which becomes a record's owner (any bytes
 * but NUL, as a hosts file name can be) and TXT value. Checks: a split host
 * holds only host characters; the document always parses as JSON, and
 * without parameters it is byte for byte what json-c writes. */

#include <assert.h>
#include <glib.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "http-guard.h"
#include "http-json.h"
#include "http-records.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int add_to_snapshot(const Record *r, void *userdata) {
        records_snapshot_add(userdata, r);
        return 0;
}

static char *take_line(const uint8_t **p, const uint8_t *end) {
        const uint8_t *nl = memchr(*p, '\n', (size_t) (end - *p));
        const uint8_t *e = nl ?: end;
        char *s = g_strndup((const char *) *p, (gsize) (e - *p)); /* stops at a NUL too */

        *p = nl ? nl + 1 : end;
        return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size;
        g_autofree char *query = take_line(&p, end), *header = take_line(&p, end), *rest = take_line(&p, end);
        g_autofree char *host = NULL, *owner = NULL, *text = NULL, *error = NULL;
        char *names[] = { "dash.example.com", "192.0.2.7", NULL };
        g_autoptr(GHashTable) params = NULL;
        Store *store = NULL;
        RecordsSnapshot *snap;
        RecordsQuery q;
        uint16_t port;

        log_set_max_level(LOG_CRIT);

        /* Host and Origin. */
        if (http_split_host(header, &host, &port) >= 0) {
                assert(*host);
                for (const char *c = host; *c; c++)
                        assert(g_ascii_isalnum(*c) || strchr("-._:%", *c));
                (void) http_host_allowed(host, names);
        }
        (void) http_origin_allowed(header, names, 5000);

        /* A store with a record whose owner and text came from the input. */
        owner = g_strconcat("hosts:/fuzz/", rest, NULL);
        text = g_strdup(rest);
        for (char *c = text; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        *c = '?';
        assert(store_new(&store) >= 0);
        assert(store_add(store, "a.fuzz.test", DNS_TYPE_A, "10.0.0.1", 30, owner, 7, rest, NULL) == 1);
        if (strlen(text) <= 2048)
                assert(store_add(store, "t.fuzz.test", DNS_TYPE_TXT, text, 30, "dbus", 0, NULL, NULL) == 1);
        snap = records_snapshot_new(store_version(store), store_count(store));
        (void) store_foreach(store, NULL, NULL, add_to_snapshot, snap);

        /* The query, then the document. */
        params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, NULL);
        if (records_query_parse(params, &q, &error) >= 0) {
                g_autoptr(GBytes) body = records_render(snap, &q);
                json_object *o = json_tokener_parse(g_bytes_get_data(body, NULL));

                assert(o);
                json_object_put(o);
                if (!q.extended) {
                        json_object *reference = http_json_records(store, NULL, NULL, 0);
                        g_autofree char *expected = http_json_to_string(reference);
                        gsize n;
                        const char *got = g_bytes_get_data(body, &n);

                        assert(n == strlen(expected) && memcmp(got, expected, n) == 0);
                        json_object_put(reference);
                }
                records_query_done(&q);
        } else
                assert(error && *error);

        records_snapshot_free(snap);
        store_free(store);
        return 0;
}
