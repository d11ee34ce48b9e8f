/* SPDX-License-Identifier: MIT */
/* Persistent state: the records added over D-Bus (owner "dbus") belong to the
 * daemon and survive restarts as a JSON file in the state directory. The file
 * is replaced atomically (temp file, fsync, rename, fsync of the directory);
 * a file that cannot be read as ours is moved aside, never fatal. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "store.h"

#define STATE_OWNER "dbus"
#define STATE_FILE_NAME "records.json"

/* One persisted record, in presentation form (what store_add takes). */
typedef struct StateRecord {
        char *name;
        uint16_t type;
        char *value;
        uint32_t ttl;
} StateRecord;

/* Loads <dir>/records.json into the store as owner STATE_OWNER. A missing
 * directory or file is no error. A file that is not valid JSON of the
 * expected shape is logged and renamed to records.json.corrupt-<unix time>;
 * invalid entries are logged and skipped (the file is then kept aside too and
 * rewritten with the valid entries). Loading twice is harmless: records that
 * are there already are not added again. Returns the number of records newly
 * added (>= 0); errors are logged and never returned, since a lost state file
 * must not stop the DNS service. */
int state_load(Store *s, const char *dir);

/* Writes the records to <dir>/records.json atomically, creating dir if needed.
 * Returns 0 or a negative errno; on failure the old file is untouched. */
int state_save(const char *dir, const StateRecord *records, size_t n);

/* Collects the store's STATE_OWNER records into a newly allocated array
 * (free with state_records_free). */
int state_collect(const Store *s, StateRecord **ret, size_t *ret_n);
void state_records_free(StateRecord *records, size_t n);

/* Path of the state file for a directory; free() the result. */
char *state_file_path(const char *dir);

/* The writer that keeps the file up to date while the daemon runs, off the
 * loop: every change to the STATE_OWNER records asks for a save; the records
 * are collected on the loop, then sorted, rendered, written and synced on a
 * worker thread. Saves coalesce: while one write is under way, every request
 * that comes in waits for the next one, which then holds all of their changes
 * (many adds, one write, one fsync). Each request's callback runs on the loop
 * once a write that holds its change is durable (error 0), or has failed
 * (negative errno; the file is then as it was before that write). */
typedef struct StateWriter StateWriter;
typedef void (*StateSavedFunc)(int error, void *userdata);

typedef struct StateWriterStats {
        uint64_t n_requests; /* state_writer_request() calls */
        uint64_t n_writes;   /* files written (each one fsync of the file) */
        uint64_t n_failed;   /* writes that failed */
} StateWriterStats;

int state_writer_new(StateWriter **ret, sd_event *e, Store *store, const char *dir);
/* Finishes the write under way, writes what is still waiting (synchronously:
 * this is shutdown), runs every callback, then frees. */
StateWriter *state_writer_free(StateWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(StateWriter *, state_writer_free);
/* Asks for a save that holds every change made to the store so far; done is
 * called exactly once, never from within this call. */
void state_writer_request(StateWriter *w, StateSavedFunc done, void *userdata);
void state_writer_get_stats(const StateWriter *w, StateWriterStats *ret);
