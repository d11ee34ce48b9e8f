/* SPDX-License-Identifier: MIT */
/* Replicated records, as pure state: no sockets, no clock of its own.
 *
 * Each node owns the records its local sources put in the store (every owner
 * that does not start with "peer:"). It keeps a local table of them, keyed
 * by (name, type, value), with a version taken from one per-node counter
 * that starts at the wall-clock time in microseconds when the node starts,
 * so a restarted node's versions are newer than anything it said before.
 *
 * For every other node ("origin") it keeps that node's table as last heard:
 * live entries and versioned tombstones, plus the highest version covered
 * by a full snapshot from the origin itself (the "floor"). The live entries
 * of every origin that is up are mirrored into the store as owner
 * "peer:<origin>"; an origin that is dead (after a grace) or left is
 * withdrawn from the store but its table is kept, and put back when it is
 * alive again.
 *
 * Rules (see docs/cluster-protocol.md):
 *  - an update applies only if its version is newer than what is held for
 *    that key from that origin (an entry or a tombstone), and, for a key we
 *    hold nothing for, newer than the floor (an older one would have been in
 *    the snapshot, so it was deleted since);
 *  - a full snapshot at version V from the origin applies entry by entry with
 *    the same rule, and deletes every held entry of version <= V that it does
 *    not list (the origin no longer had it at V); newer entries stay;
 *  - tombstones are dropped after a lifetime chosen by the caller, long enough
 *    that no retransmission of an older update can still be in flight.
 *
 * Wire formats (all integers big-endian):
 *   entry    := flags:u8 (bit 0: deleted) type:u16 ttl:u32 version:u64
 *               name:u8-length bytes value:u16-length bytes
 *   update   := "JU" format:u8 (1) entry           (one SWIM user broadcast)
 *   snapshot := "JT" format:u8 (1) version:u64 count:u32 entry*   (push-pull)
 * Decoders validate everything (lengths, names, values, types, TTLs) before
 * anything is applied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "store.h"
#include "swim.h"

#define CLUSTER_RECORDS_FORMAT 1
#define CLUSTER_VALUE_MAX 4096          /* longest presentation value accepted on the wire */

typedef struct ClusterRecords ClusterRecords;

/* One decoded entry. Strings point into the decoder's input or into the table. */
typedef struct ClusterEntry {
        const char *name;
        uint16_t type;
        const char *value;
        uint32_t ttl;
        uint64_t version;
        bool deleted;
} ClusterEntry;

/* self_id: this node's id (updates and snapshots claiming to come from it are
 * ignored). first_version: where the local version counter starts (the
 * caller passes CLOCK_REALTIME in microseconds). */
int cluster_records_new(ClusterRecords **ret, Store *store, const char *self_id, uint64_t first_version);
ClusterRecords *cluster_records_free(ClusterRecords *cr);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterRecords *, cluster_records_free);

bool cluster_owner_is_local(const char *owner);

/* --- the local side ------------------------------------------------------ */

/* Notes that the local records of (name, type, value) may have changed (from
 * a store subscriber; cheap, changes nothing in the store). */
void cluster_records_local_mark(ClusterRecords *cr, const char *name, uint16_t type, const char *value);
/* Marks every local record in the store (at start). */
void cluster_records_local_mark_all(ClusterRecords *cr);
/* Re-reads each marked key from the store: a key that appeared, changed TTL
 * or disappeared gets the next version, and emit() is called with its encoded
 * update (an "update" as above) and a stable key for the broadcast queue.
 * Returns the number of updates emitted. */
typedef void (*ClusterEmitFunc)(const char *key, const uint8_t *data, size_t size, void *userdata);
unsigned cluster_records_local_flush(ClusterRecords *cr, ClusterEmitFunc emit, void *userdata);
/* The whole local table as a snapshot; caller frees *ret. */
int cluster_records_encode_local(ClusterRecords *cr, uint8_t **ret, size_t *ret_size);
uint64_t cluster_records_local_version(const ClusterRecords *cr);

/* --- the remote side ----------------------------------------------------- */

/* Decodes and applies one update from origin. Returns 1 if it changed the
 * table, 0 if it was stale or from ourselves, -EBADMSG if malformed (nothing
 * applied), -EINVAL for an unusable origin id, -ENOSPC when a limit is
 * reached (see cluster_records_set_limits). */
int cluster_records_apply_update(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                 uint64_t now_usec);
/* Decodes and merges a full snapshot sent by origin itself. Returns the
 * number of table changes, or -EBADMSG / -EINVAL (nothing applied). */
int cluster_records_merge_snapshot(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                   uint64_t now_usec);

/* Membership, as SWIM reports it. Alive (or suspect): the origin's records
 * are served (put back if they had been withdrawn). Dead: withdrawn once
 * dead_grace has passed without it coming back (cluster_records_tick does
 * it). Left: withdrawn at once. */
typedef enum ClusterOriginState {
        CLUSTER_ORIGIN_ALIVE,
        CLUSTER_ORIGIN_DEAD,
        CLUSTER_ORIGIN_LEFT,
} ClusterOriginState;
void cluster_records_origin_state(ClusterRecords *cr, const char *origin, ClusterOriginState st, uint64_t now_usec);
void cluster_records_set_dead_grace(ClusterRecords *cr, uint64_t usec);
/* Tombstones older than this are dropped; withdrawn origins are forgotten
 * after ten times this. */
void cluster_records_set_tombstone_lifetime(ClusterRecords *cr, uint64_t usec);
/* Limits against a peer that sends without end: at most max_origins other
 * nodes' tables (default 1,000; a withdrawn one makes room for a new one), and
 * at most max_records entries (live and tombstones) per origin (default
 * 100,000). What is beyond them is dropped and counted. 0 keeps a limit. */
#define CLUSTER_MAX_ORIGINS_DEFAULT 1000u
#define CLUSTER_MAX_RECORDS_DEFAULT 100000u
void cluster_records_set_limits(ClusterRecords *cr, unsigned max_origins, unsigned max_records);
typedef struct ClusterRecordsCounters {
        uint64_t dropped_records;       /* entries not taken: the origin holds max_records */
        uint64_t dropped_origins;       /* origins not taken: max_origins held, none withdrawn */
} ClusterRecordsCounters;
const ClusterRecordsCounters *cluster_records_get_counters(const ClusterRecords *cr);
/* Takes every origin's records out of the store (the node leaves the cluster). */
void cluster_records_withdraw_all(ClusterRecords *cr);
/* Runs due withdrawals and expiries. Returns when it must run next (UINT64_MAX: never). */
uint64_t cluster_records_tick(ClusterRecords *cr, uint64_t now_usec);

/* Live entries held for origin (self_id: the local table); 0 if unknown. */
size_t cluster_records_count(const ClusterRecords *cr, const char *origin);
/* Tombstones held for origin (for tests and status). */
size_t cluster_records_tombstones(const ClusterRecords *cr, const char *origin);
/* Whether origin's records are currently in the store. */
bool cluster_records_origin_served(const ClusterRecords *cr, const char *origin);

/* --- wire helpers (also used by the fuzzer) ------------------------------ */

/* Encodes one entry as an update. Returns the size, or 0 if it does not fit. */
size_t cluster_update_encode(const ClusterEntry *e, uint8_t *buf, size_t size);
/* Decodes and validates an update; strings in ret point into data (copied to
 * buffers of the caller: name must hold 256 bytes, value CLUSTER_VALUE_MAX + 1). */
int cluster_update_decode(const uint8_t *data, size_t size, ClusterEntry *ret, char *name, char *value);
