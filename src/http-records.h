/* SPDX-License-Identifier: MIT */
/* GET /dns/records at any size without holding the loop: the records that
 * match are copied from the store in short batches (a snapshot that stays
 * consistent while the store changes: a record removed before it was copied
 * is copied as it was, one added since is left out), then filtered, sorted,
 * paged and rendered on a worker thread (worker.c). The loop only ever spends
 * about half a millisecond at a time on it, apart from listing the matching
 * records (pointers only) at the start.
 *
 * The query and the rendering are pure functions, unit-tested without a
 * server (tests/test-http-json.c). */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "store.h"
#include "worker.h"

/* What a request asks for. */
typedef enum RecordsSort {
        RECORDS_SORT_HOSTNAME,
        RECORDS_SORT_TYPE,
        RECORDS_SORT_VALUE, /* addresses by number: 10.0.2.1 before 10.0.10.1 */
        RECORDS_SORT_TTL,
        RECORDS_SORT_SOURCE,
} RecordsSort;

typedef struct RecordsQuery {
        char *name;    /* exact name (any case, trailing dot allowed); NULL: any */
        char *source;  /* prefix of the owner ("docker", "hosts:/etc/..."); NULL: any */
        uint16_t type; /* 0: any */
        char *q;       /* substring of name, value or source, any case; NULL: none */
        uint64_t offset;
        uint64_t limit;   /* UINT64_MAX: all */
        RecordsSort sort; /* the column to order by; ties by hostname, type, value, owner */
        bool descending;
        bool extended; /* some parameter given: the answer gets the newer keys */
} RecordsQuery;

#define RECORDS_QUERY_Q_MAX 256u

/* Reads name, source, type, q, limit and offset from a request's query
 * (NULL: none). On a bad value returns -EINVAL and *ret_error says which
 * parameter and what is expected (free it). Other parameters are ignored. */
int records_query_parse(GHashTable *params, RecordsQuery *ret, char **ret_error);
void records_query_done(RecordsQuery *q);

/* A copy of some records, independent of the store. */
typedef struct RecordsSnapshot RecordsSnapshot;
RecordsSnapshot *records_snapshot_new(uint64_t version, size_t total);
void records_snapshot_add(RecordsSnapshot *s, const Record *r);
RecordsSnapshot *records_snapshot_free(RecordsSnapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RecordsSnapshot *, records_snapshot_free);

/* The /dns/records document for the snapshot's records that match q (name,
 * source and type are assumed applied when the snapshot was taken; q, offset
 * and limit are applied here), sorted by hostname, type, value and owner.
 * Without parameters it is byte for byte what the original service sent:
 *   {"status":"success","total_records":N,"version":V,"records":[...]}
 * With some: total_records is still every record in the store, and
 * matched_records, offset and limit say which part this is. Thread-safe. */
GBytes *records_render(RecordsSnapshot *s, const RecordsQuery *q);
/* The same bytes in pieces of about RECORDS_PIECE_BYTES (GBytes each), as the
 * server sends them: each is freed once written. */
#define RECORDS_PIECE_BYTES (256u * 1024u)
GPtrArray *records_render_pieces(RecordsSnapshot *s, const RecordsQuery *q);

/* The loop's part: a snapshot taken in batches (a defer source on e), then
 * rendered on worker. */
typedef struct RecordsExport RecordsExport;
/* body: the document in GBytes pieces; takes references to what it keeps. */
typedef void (*RecordsExportFunc)(GPtrArray *body, void *userdata);
/* Starts; done is called once, on the loop, never from this call. Takes q. */
RecordsExport *records_export_start(Store *store, sd_event *e, Worker *worker, RecordsQuery *q, RecordsExportFunc done,
                                    void *userdata);
/* Stops an export whose caller went away: done is not called. */
void records_export_cancel(RecordsExport *x);

/* Large answers are rendered and sent from memory that malloc keeps once it
 * is free (in the worker thread's arena too); this hands it back to the
 * system, on the worker, once a large answer has gone out. */
#define RECORDS_TRIM_AFTER_BYTES (4u * 1024u * 1024u)
void records_trim_memory(Worker *worker);
