/* SPDX-License-Identifier: MIT */
/* Persistent state: the records added over D-Bus (owner "dbus") belong to the
 * daemon and survive restarts as a JSON file in the state directory. The file
 * is replaced atomically (temp file, fsync, rename, fsync of the directory);
 * a file that cannot be read as ours is moved aside, never fatal. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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
