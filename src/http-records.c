/* SPDX-License-Identifier: MIT */
/* GET /dns/records: the query, the snapshot, the rendering and the export
 * that ties them to the loop (see http-records.h).
 *
 * The snapshot is taken in two steps. First, on the loop and in one go, the
 * list of matching records (pointers only: about 2 ms at 100,000 records).
 * Then, in batches of half a millisecond, each is copied. Between batches the
 * store may change: a record removed before its turn is copied by the change
 * callback while it still exists (the first removal of an address is the
 * listed record's, since no other record can be at that address before it is
 * freed), and the batch takes that copy instead of the freed memory. Records
 * added after the start are not in the list: the snapshot is the store as it
 * was when the request came, save for TTL and line numbers, which the store
 * updates in place.
 *
 * The document is written by hand rather than through json-c's tree: the
 * same bytes (json-c's plain form, which tests/test-http-json.c checks), ten
 * times faster, in one buffer. */

#include <arpa/inet.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http-records.h"
#include "log.h"
#include "time-util.h"
#include "worker.h"

/* Loop time per batch of copies, and the most records per batch. */
#define COPY_BUDGET_USEC 500u
#define COPY_BATCH_MAX 8192u

/* --- the query ------------------------------------------------------------- */

static const char *param(GHashTable *params, const char *key) {
        const char *v = params ? g_hash_table_lookup(params, key) : NULL;

        return v && *v ? v : NULL;
}

/* A count: decimal digits only, at most 15 of them. */
static int parse_count(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        size_t n = strlen(s);

        if (n == 0 || n > 15 || strspn(s, "0123456789") != n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (uint64_t) (s[i] - '0');
        *ret = v;
        return 0;
}

/* A value as a person can read it in an error: at most 32 bytes, printable ASCII. */
static char *quote_value(const char *s) {
        GString *out = g_string_new(NULL);

        for (size_t i = 0; s[i] && i < 32; i++)
                g_string_append_c(out, g_ascii_isprint(s[i]) ? s[i] : '?');
        if (strlen(s) > 32)
                g_string_append(out, "...");
        return g_string_free(out, FALSE);
}

int records_query_parse(GHashTable *params, RecordsQuery *ret, char **ret_error) {
        const char *name = param(params, "name"), *source = param(params, "source"), *type = param(params, "type");
        const char *q = param(params, "q"), *limit = param(params, "limit"), *offset = param(params, "offset");
        const char *sort = param(params, "sort"), *order = param(params, "order");
        static const char *const sort_names[] = {
                [RECORDS_SORT_HOSTNAME] = "hostname", [RECORDS_SORT_TYPE] = "type",     [RECORDS_SORT_VALUE] = "value",
                [RECORDS_SORT_TTL] = "ttl",           [RECORDS_SORT_SOURCE] = "source",
        };
        RecordsQuery query = { .limit = UINT64_MAX };

        if (sort) {
                size_t i;

                for (i = 0; i < ELEMENTSOF(sort_names); i++)
                        if (streq(sort, sort_names[i]))
                                break;
                if (i == ELEMENTSOF(sort_names)) {
                        g_autofree char *v = quote_value(sort);
                        *ret_error =
                                g_strdup_printf("sort: expected hostname, type, value, ttl or source, got '%s'", v);
                        return -EINVAL;
                }
                query.sort = (RecordsSort) i;
        }
        if (order) {
                if (!streq(order, "asc") && !streq(order, "desc")) {
                        g_autofree char *v = quote_value(order);
                        *ret_error = g_strdup_printf("order: expected asc or desc, got '%s'", v);
                        return -EINVAL;
                }
                query.descending = streq(order, "desc");
        }

        if (type) {
                int t = dns_type_from_string(type);

                if (t < 0) {
                        *ret_error = g_strdup("type: expected a record type such as A, AAAA, CNAME, TXT or PTR");
                        return -EINVAL;
                }
                query.type = (uint16_t) t;
        }
        if (limit && parse_count(limit, &query.limit) < 0) {
                g_autofree char *v = quote_value(limit);
                *ret_error = g_strdup_printf("limit: expected a number of records (0 or more), got '%s'", v);
                return -EINVAL;
        }
        if (offset && parse_count(offset, &query.offset) < 0) {
                g_autofree char *v = quote_value(offset);
                *ret_error = g_strdup_printf("offset: expected a number of records to skip (0 or more), got '%s'", v);
                return -EINVAL;
        }
        if (q && strlen(q) > RECORDS_QUERY_Q_MAX) {
                *ret_error = g_strdup_printf("q: at most %u characters", RECORDS_QUERY_Q_MAX);
                return -EINVAL;
        }

        query.name = g_strdup(name);
        query.source = g_strdup(source);
        query.q = g_strdup(q);
        query.extended = name || source || type || q || limit || offset || sort || order;
        *ret = query;
        return 0;
}

void records_query_done(RecordsQuery *q) {
        g_free(q->name);
        g_free(q->source);
        g_free(q->q);
        *q = (RecordsQuery) {};
}

/* --- the snapshot ---------------------------------------------------------- */

typedef struct RecordCopy {
        const char *name, *value, *owner, *detail; /* in the snapshot's strings */
        uint64_t added_usec;
        uint32_t ttl;
        uint32_t line;
        uint16_t type;
} RecordCopy;

struct RecordsSnapshot {
        GArray *records; /* RecordCopy */
        GStringChunk *strings;
        uint64_t version; /* of the store when it was taken */
        size_t total;     /* records in the store then */
};

RecordsSnapshot *records_snapshot_new(uint64_t version, size_t total) {
        RecordsSnapshot *s = g_new0(RecordsSnapshot, 1);

        s->records = g_array_new(FALSE, FALSE, sizeof(RecordCopy));
        s->strings = g_string_chunk_new(64 * 1024);
        s->version = version;
        s->total = total;
        return s;
}

RecordsSnapshot *records_snapshot_free(RecordsSnapshot *s) {
        if (!s)
                return NULL;
        g_array_free(s->records, TRUE);
        g_string_chunk_free(s->strings);
        g_free(s);
        return NULL;
}

static RecordCopy copy_record(RecordsSnapshot *s, const Record *r) {
        return (RecordCopy) {
                .name = g_string_chunk_insert(s->strings, r->name),
                .value = g_string_chunk_insert(s->strings, strempty(r->value)),
                /* Few owners and container names, many records each. */
                .owner = g_string_chunk_insert_const(s->strings, strempty(r->owner)),
                .detail = r->detail ? g_string_chunk_insert_const(s->strings, r->detail) : NULL,
                .added_usec = r->added_usec,
                .ttl = r->ttl,
                .line = r->line,
                .type = r->type,
        };
}

void records_snapshot_add(RecordsSnapshot *s, const Record *r) {
        RecordCopy c = copy_record(s, r);

        g_array_append_val(s->records, c);
}

/* --- rendering ------------------------------------------------------------- */

/* As json-c writes a string with JSON_C_TO_STRING_NOSLASHESCAPE. */
static void append_json_string(GString *out, const char *s) {
        static const char hex[] = "0123456789abcdef";

        g_string_append_c(out, '"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                switch (*p) {
                case '\b':
                        g_string_append(out, "\\b");
                        break;
                case '\n':
                        g_string_append(out, "\\n");
                        break;
                case '\r':
                        g_string_append(out, "\\r");
                        break;
                case '\t':
                        g_string_append(out, "\\t");
                        break;
                case '\f':
                        g_string_append(out, "\\f");
                        break;
                case '"':
                        g_string_append(out, "\\\"");
                        break;
                case '\\':
                        g_string_append(out, "\\\\");
                        break;
                default:
                        if (*p < 0x20) {
                                g_string_append(out, "\\u00");
                                g_string_append_c(out, hex[*p >> 4]);
                                g_string_append_c(out, hex[*p & 15]);
                        } else
                                g_string_append_c(out, (char) *p);
                }
        g_string_append_c(out, '"');
}

/* record_source()'s text, without allocating: "owner[:line][ (detail)]". */
static void source_of(const RecordCopy *r, GString *out) {
        record_source_format(out, r->owner, r->line, r->detail);
}

static void append_time(GString *out, uint64_t realtime_usec) {
        time_t t = (time_t) (realtime_usec / USEC_PER_SEC);
        struct tm tm;
        char buf[64];

        /* As http_iso8601(). */
        if (!gmtime_r(&t, &tm)) {
                g_string_append(out, "\"1970-01-01T00:00:00.000Z\"");
                return;
        }
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        g_string_append_printf(out, "\"%s.%03uZ\"", buf, (unsigned) (realtime_usec % USEC_PER_SEC / 1000));
}

/* Addresses compare by number (IPv4 before IPv6), other values as text. */
static int value_compare(const RecordCopy *x, const RecordCopy *y) {
        bool xa = x->type == DNS_TYPE_A || x->type == DNS_TYPE_AAAA;
        bool ya = y->type == DNS_TYPE_A || y->type == DNS_TYPE_AAAA;
        uint8_t bx[16], by[16];

        if (xa && ya) {
                if (x->type != y->type)
                        return x->type == DNS_TYPE_A ? -1 : 1;
                int af = x->type == DNS_TYPE_A ? AF_INET : AF_INET6;
                if (inet_pton(af, x->value, bx) == 1 && inet_pton(af, y->value, by) == 1)
                        return memcmp(bx, by, af == AF_INET ? 4 : 16);
        }
        return strcmp(x->value, y->value);
}

static int copy_compare_default(const RecordCopy *x, const RecordCopy *y) {
        int c;

        c = strcmp(x->name, y->name);
        if (c != 0)
                return c;
        if (x->type != y->type)
                return x->type < y->type ? -1 : 1;
        c = value_compare(x, y);
        if (c != 0)
                return c;
        return strcmp(x->owner, y->owner);
}

static int copy_compare(const void *a, const void *b, void *userdata) {
        const RecordCopy *x = *(const RecordCopy *const *) a, *y = *(const RecordCopy *const *) b;
        const RecordsQuery *q = userdata;
        int c = 0;

        switch (q->sort) {
        case RECORDS_SORT_TYPE: {
                const char *tx = dns_type_to_string(x->type) ?: "", *ty = dns_type_to_string(y->type) ?: "";
                c = strcmp(tx, ty);
                break;
        }
        case RECORDS_SORT_VALUE:
                c = value_compare(x, y);
                break;
        case RECORDS_SORT_TTL:
                c = x->ttl < y->ttl ? -1 : x->ttl > y->ttl;
                break;
        case RECORDS_SORT_SOURCE:
                c = strcmp(x->owner, y->owner);
                if (c == 0)
                        c = x->line < y->line ? -1 : x->line > y->line;
                break;
        case RECORDS_SORT_HOSTNAME:
        default:
                break;
        }
        if (c == 0)
                c = copy_compare_default(x, y);
        return q->descending ? -c : c;
}

static bool matches(const RecordCopy *r, const char *q, GString *scratch) {
        if (!q)
                return true;
        if (strcasestr(r->name, q) || strcasestr(r->value, q))
                return true;
        source_of(r, scratch);
        return strcasestr(scratch->str, q) != NULL;
}

/* Ends the piece being written once it is big enough, so that the answer is
 * many pieces of about RECORDS_PIECE_BYTES: libsoup frees each once it is
 * sent, and no single free of a 20 MB block (an munmap of it) lands on the loop. */
static void piece_check(GPtrArray *pieces, GString **out, bool last) {
        if (!last && (*out)->len < RECORDS_PIECE_BYTES)
                return;
        g_ptr_array_add(pieces, g_string_free_to_bytes(*out));
        *out = last ? NULL : g_string_sized_new(RECORDS_PIECE_BYTES + 4096);
}

GPtrArray *records_render_pieces(RecordsSnapshot *s, const RecordsQuery *q) {
        g_autoptr(GString) scratch = g_string_new(NULL);
        g_autofree const RecordCopy **list = NULL;
        GPtrArray *pieces = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        uint64_t first, end;
        size_t n = 0;
        GString *out;

        list = g_new(const RecordCopy *, MAX(s->records->len, 1u));
        for (guint i = 0; i < s->records->len; i++) {
                const RecordCopy *r = &g_array_index(s->records, RecordCopy, i);

                if (matches(r, q->q, scratch))
                        list[n++] = r;
        }
        if (n > 1)
                qsort_r(list, n, sizeof *list, copy_compare, (void *) q);
        first = MIN(q->offset, (uint64_t) n);
        end = q->limit >= (uint64_t) n - first ? (uint64_t) n : first + q->limit;

        out = g_string_sized_new(MIN(64 + (size_t) (end - first) * 200, (size_t) RECORDS_PIECE_BYTES + 4096));
        g_string_append_printf(out, "{\"status\":\"success\",\"total_records\":%zu,", q->extended ? s->total : n);
        if (q->extended) {
                g_string_append_printf(out, "\"matched_records\":%zu,\"offset\":%" PRIu64 ",", n, q->offset);
                if (q->limit != UINT64_MAX)
                        g_string_append_printf(out, "\"limit\":%" PRIu64 ",", q->limit);
        }
        g_string_append_printf(out, "\"version\":%" PRIu64 ",\"records\":[", s->version);
        for (uint64_t i = first; i < end; i++) {
                const RecordCopy *r = list[i];

                g_string_append(out, i == first ? "{\"hostname\":" : ",{\"hostname\":");
                append_json_string(out, r->name);
                g_string_append(out, ",\"ip_address\":");
                append_json_string(out, r->value);
                g_string_append_printf(out, ",\"ttl\":%" PRIu32 ",\"type\":", r->ttl);
                append_json_string(out, dns_type_to_string(r->type) ?: "unknown");
                g_string_append(out, ",\"source\":");
                source_of(r, scratch);
                append_json_string(out, scratch->str);
                g_string_append(out, ",\"owner\":");
                append_json_string(out, r->owner);
                g_string_append(out, ",\"added\":");
                append_time(out, r->added_usec);
                g_string_append_c(out, '}');
                piece_check(pieces, &out, false);
        }
        g_string_append(out, "]}");
        piece_check(pieces, &out, true);
        return pieces;
}

GBytes *records_render(RecordsSnapshot *s, const RecordsQuery *q) {
        g_autoptr(GPtrArray) pieces = records_render_pieces(s, q);
        GByteArray *all = g_byte_array_new();

        guint size;

        for (guint i = 0; i < pieces->len; i++) {
                gsize n;
                const guint8 *d = g_bytes_get_data(pieces->pdata[i], &n);

                g_byte_array_append(all, d, (guint) n);
        }
        /* NUL-terminated, as a GString's bytes are, for parsers that want a string. */
        size = all->len;
        g_byte_array_append(all, (const guint8 *) "", 1);
        return g_bytes_new_take(g_byte_array_free(all, FALSE), size);
}

/* --- the export ------------------------------------------------------------ */

struct RecordsExport {
        WorkerJob job; /* renders on the worker */
        Store *store;
        RecordsQuery query;
        RecordsExportFunc done;
        void *userdata;

        GPtrArray *pending; /* const Record *: listed, not copied yet */
        guint pos;
        GHashTable *rescued; /* Record address -> RecordCopy *: removed before copied */
        bool subscribed;
        sd_event_source *copy_source; /* defer: the next batch */
        Worker *worker;
        RecordsSnapshot *snapshot;
        GPtrArray *body; /* rendered: GBytes pieces */
        bool rendering;  /* on the worker: freed when it is done */
        bool cancelled;
};

static void on_store_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        RecordsExport *x = userdata;
        RecordCopy *c;

        if (change != RECORD_REMOVED || g_hash_table_contains(x->rescued, r))
                return;
        c = g_new(RecordCopy, 1);
        *c = copy_record(x->snapshot, r);
        g_hash_table_insert(x->rescued, (gpointer) r, c);
}

static void export_free(RecordsExport *x) {
        if (x->subscribed)
                store_unsubscribe(x->store, on_store_change, x);
        sd_event_source_disable_unref(x->copy_source);
        if (x->pending)
                g_ptr_array_free(x->pending, TRUE);
        if (x->rescued)
                g_hash_table_destroy(x->rescued);
        if (x->body)
                g_ptr_array_unref(x->body);
        records_snapshot_free(x->snapshot);
        records_query_done(&x->query);
        g_free(x);
}

static void render_run(WorkerJob *j) {
        RecordsExport *x = (RecordsExport *) j;

        x->body = records_render_pieces(x->snapshot, &x->query);
        /* Not needed any more: freed here, off the loop. */
        x->snapshot = records_snapshot_free(x->snapshot);
}

static void render_done(WorkerJob *j) {
        RecordsExport *x = (RecordsExport *) j;

        if (!x->cancelled)
                x->done(x->body, x->userdata);
        export_free(x);
}

static void render_discard(WorkerJob *j) {
        export_free((RecordsExport *) j);
}

/* Copies the next batch; at the end, hands the snapshot to the worker. */
static bool copy_batch(RecordsExport *x) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + COPY_BUDGET_USEC;

        for (guint k = 0; x->pos < x->pending->len && k < COPY_BATCH_MAX; x->pos++, k++) {
                const Record *r = x->pending->pdata[x->pos];
                RecordCopy *c = g_hash_table_lookup(x->rescued, r);

                if (c)
                        g_array_append_val(x->snapshot->records, *c);
                else
                        records_snapshot_add(x->snapshot, r);
                if ((k & 63) == 63 && now_usec(CLOCK_MONOTONIC) >= deadline) {
                        x->pos++;
                        break;
                }
        }
        if (x->pos < x->pending->len)
                return false;

        /* Copied: the store may do as it likes from here on. */
        if (x->subscribed)
                store_unsubscribe(x->store, on_store_change, x);
        x->subscribed = false;
        g_clear_pointer(&x->pending, g_ptr_array_unref);
        g_clear_pointer(&x->rescued, g_hash_table_destroy);
        x->copy_source = sd_event_source_disable_unref(x->copy_source);

        x->rendering = true;
        worker_submit(x->worker, &x->job);
        return true;
}

static int on_copy(sd_event_source *s, void *userdata) {
        RecordsExport *x = userdata;

        if (!copy_batch(x))
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

RecordsExport *records_export_start(Store *store, sd_event *e, Worker *worker, RecordsQuery *q, RecordsExportFunc done,
                                    void *userdata) {
        RecordsExport *x = g_new0(RecordsExport, 1);

        *x = (RecordsExport) {
                .job = { .run = render_run, .done = render_done, .discard = render_discard },
                .store = store,
                .query = *q,
                .done = done,
                .userdata = userdata,
                .worker = worker,
                .pending = g_ptr_array_sized_new((guint) MIN(store_count(store), (size_t) 1 << 20)),
                .rescued = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free),
                .snapshot = records_snapshot_new(store_version(store), store_count(store)),
        };
        *q = (RecordsQuery) {};

        store_collect(store, x->query.name, x->query.source, x->query.type, x->pending);
        /* Room for all of them at once: growing by doubling would copy megabytes in one batch. */
        g_array_set_size(x->snapshot->records, x->pending->len);
        g_array_set_size(x->snapshot->records, 0);

        /* Without change tracking or a batch source, copy it all now rather
         * than risk reading freed records. */
        if (store_subscribe(store, on_store_change, x) >= 0)
                x->subscribed = true;
        if (x->subscribed && sd_event_add_defer(e, &x->copy_source, on_copy, x) >= 0) {
                /* Below the sockets: a batch waits for them, not the reverse. */
                (void) sd_event_source_set_priority(x->copy_source, SD_EVENT_PRIORITY_NORMAL + 10);
                (void) sd_event_source_set_description(x->copy_source, "http-records-copy");
                (void) sd_event_source_set_enabled(x->copy_source, SD_EVENT_ONESHOT);
        } else
                while (!copy_batch(x))
                        ;
        return x;
}

void records_export_cancel(RecordsExport *x) {
        if (!x)
                return;
        if (x->rendering) {
                x->cancelled = true; /* render_done frees it */
                return;
        }
        export_free(x);
}

/* --- memory ---------------------------------------------------------------------- */

static void trim_run(WorkerJob *j) {
        (void) malloc_trim(0);
}

static void trim_free(WorkerJob *j) {
        g_free(j);
}

void records_trim_memory(Worker *worker) {
        WorkerJob *j = g_new0(WorkerJob, 1);

        *j = (WorkerJob) { .run = trim_run, .done = trim_free, .discard = trim_free };
        worker_submit(worker, j);
}
