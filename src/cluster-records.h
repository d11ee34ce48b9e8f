/* SPDX-License-Identifier: MIT */
/* Replicated records, as pure state: no sockets, no clock of its own.
 *
 * Each node owns the records its local sources put in the store (every owner
 * that does not start with "peer:"). It keeps a local table of them, keyed
 * by (name, type, value), each with a version and the source that holds it
 * ("docker:3f2a... (web-1)", "hosts:/etc/joyride/hosts.d/lab"), and signs
 * every update and snapshot it sends with its own key (cluster-keys.h).
 *
 * Versions are (epoch, sequence) pairs, sent as one u64 (epoch in the high
 * 32 bits). The epoch is chosen at start, above any the node used before
 * (the caller keeps it); the sequence counts changes. A node that hears of
 * a version of its own it never issued (an update from a previous life, or
 * a forgery that someone may have believed) refutes it: it moves to a higher
 * epoch, re-issues what it holds and retracts what it does not, as SWIM
 * refutes a suspicion with a higher incarnation.
 *
 * For every other node ("origin") it keeps that node's table as last heard:
 * live entries and versioned tombstones, the highest version covered by a
 * full snapshot from the origin itself (the "floor") and the highest version
 * seen. The live entries of every origin that is up are mirrored into the
 * store as owner "peer:<origin>", with the origin's source as the detail; an
 * origin that is dead (after a grace) or left is withdrawn from the store
 * but its table is kept, and put back when it is alive again.
 *
 * Rules (see docs/cluster-protocol.md):
 *  - an update applies only if its signature verifies with the origin's key
 *    (an unsigned one only when the caller allows it: older nodes), and its
 *    version is newer than what is held for that key from that origin (an
 *    entry or a tombstone), and, for a key we hold nothing for, newer than
 *    the floor;
 *  - an update passed on by a relay applies only if the origin's table exists
 *    and the version is at most a bounded step ahead of the highest seen
 *    (CLUSTER_SEQ_STEP in the same epoch, or the next epoch); further ahead,
 *    the origin's own push-pull settles it;
 *  - a full snapshot at version V from the origin applies entry by entry with
 *    the same rule, and deletes every held entry of version <= V that it does
 *    not list (the origin no longer had it at V) and every entry further
 *    ahead of V than a step (the origin never issued it); the highest version
 *    seen becomes V;
 *  - tombstones are dropped after a lifetime chosen by the caller, long enough
 *    that no retransmission of an older update can still be in flight;
 *  - at most max_origins tables and max_records records per table are kept
 *    (with their tombstones, at most twice that many entries).
 *
 * Wire formats (all integers big-endian):
 *   entry    := flags:u8 (bit 0: deleted) type:u16 ttl:u32 version:u64
 *               name:u8-length bytes value:u16-length bytes
 *               source:u8-length bytes                     (format 2 only)
 *   update   := "JU" format:u8 entry [signature:64]        (one SWIM user broadcast)
 *   snapshot := "JT" format:u8 version:u64 count:u32 entry* [signature:64]   (push-pull)
 * Format 2 carries the source and a signature: Ed25519 by the origin over
 * BLAKE2b-256("joyride update v2" or "joyride snapshot v2", 0, origin, 0,
 * the bytes before the signature). Format 1 (older nodes) has neither.
 * Decoders validate everything (lengths, names, values, types, TTLs,
 * signature) before anything is applied. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster-keys.h"
#include "macro.h"
#include "store.h"
#include "swim.h"

#define CLUSTER_RECORDS_FORMAT 2
#define CLUSTER_RECORDS_FORMAT_V1 1
#define CLUSTER_VALUE_MAX 4096 /* longest presentation value accepted on the wire */
#define CLUSTER_SOURCE_MAX 255
#define CLUSTER_ORIGIN_MAX 64
#define CLUSTER_SEQ_STEP 65536u /* how far ahead a relayed update may be, in one epoch */

#define CLUSTER_VERSION(epoch, seq) ((uint64_t) (epoch) << 32 | (uint32_t) (seq))
static inline uint32_t cluster_version_epoch(uint64_t v) {
        return (uint32_t) (v >> 32);
}
static inline uint32_t cluster_version_seq(uint64_t v) {
        return (uint32_t) v;
}

typedef struct ClusterRecords ClusterRecords;

/* One decoded entry. Strings point into the decoder's buffers or into the table. */
typedef struct ClusterEntry {
        const char *name;
        uint16_t type;
        const char *value;
        const char *source; /* NULL: none (format 1) */
        uint32_t ttl;
        uint64_t version;
        bool deleted;
} ClusterEntry;

/* self_id: this node's id. keys: this node's key pair (signs what we send)
 * and the keys of the others (checks what they sent); kept, not owned.
 * first_version: where the local version counter starts, CLUSTER_VERSION(epoch, 0). */
int cluster_records_new(ClusterRecords **ret, Store *store, const char *self_id, ClusterKeys *keys,
                        uint64_t first_version);
ClusterRecords *cluster_records_free(ClusterRecords *cr);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterRecords *, cluster_records_free);

bool cluster_owner_is_local(const char *owner);

/* --- the local side ------------------------------------------------------ */

/* Notes that the local records of (name, type, value) may have changed (from
 * a store subscriber; cheap, changes nothing in the store). */
void cluster_records_local_mark(ClusterRecords *cr, const char *name, uint16_t type, const char *value);
/* Marks every local record in the store (at start). */
void cluster_records_local_mark_all(ClusterRecords *cr);
/* Local updates to send, in the order their versions were given: copies of
 * the entries (nothing in them points into the table), so that encoding and
 * signing them, the costly part, can run on another thread while the loop
 * goes on changing the table. */
typedef struct ClusterUpdates ClusterUpdates;
/* origin: this node's id, which the signatures cover. */
ClusterUpdates *cluster_updates_new(const char *origin);
ClusterUpdates *cluster_updates_free(ClusterUpdates *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterUpdates *, cluster_updates_free);
size_t cluster_updates_count(const ClusterUpdates *u);
/* Encodes and signs each update with keys (ours). Touches nothing but u and
 * the key pair (which never changes once made): safe on any thread while
 * the loop goes on. */
void cluster_updates_sign(ClusterUpdates *u, const ClusterKeys *keys);
/* After cluster_updates_sign(): calls emit() with each signed update, in
 * order, and a stable key per record for the broadcast queue (an update
 * too large to encode is left out). */
typedef void (*ClusterEmitFunc)(const char *key, const uint8_t *data, size_t size, void *userdata);
void cluster_updates_emit(const ClusterUpdates *u, ClusterEmitFunc emit, void *userdata);

/* Re-reads each marked key from the store: a key that appeared, changed TTL,
 * value spelling or source, or disappeared gets the next version, and its
 * update is signed and passed to emit(), on the calling thread. Returns the
 * number of changes. For small flushes (tests, shutdown). now_usec: the
 * caller's monotonic clock, for bursts (below). */
unsigned cluster_records_local_flush(ClusterRecords *cr, uint64_t now_usec, ClusterEmitFunc emit, void *userdata);
/* The same for at most budget marked keys, with the updates appended to out
 * (cluster_updates_new(self_id)) for signing elsewhere; *ret_more says
 * whether some keys are left. Versions are given here, in the table's
 * order: publishing the batches in the order they were filled keeps a later
 * change of a record after an earlier one.
 * More than CLUSTER_GOSSIP_BURST_MAX changes within CLUSTER_GOSSIP_BURST_USEC
 * make a burst: its updates are not gossiped (every node would relay them
 * all) until a window passes without a change (or ten windows, if changes
 * go on); the first flush after that (the caller flushes again at
 * cluster_records_burst_end()) ends it, and cluster_records_take_resync()
 * returns true: the caller sends its snapshot to everyone instead. */
#define CLUSTER_GOSSIP_BURST_MAX 1000u
#define CLUSTER_GOSSIP_BURST_USEC USEC_PER_SEC
unsigned cluster_records_local_flush_some(ClusterRecords *cr, unsigned budget, uint64_t now_usec, ClusterUpdates *out,
                                          bool *ret_more);
/* When the burst in progress ends (UINT64_MAX: none). */
uint64_t cluster_records_burst_end(const ClusterRecords *cr);
bool cluster_records_take_resync(ClusterRecords *cr);
/* The whole local table as a signed snapshot (format 1: unsigned, without
 * sources, for older nodes); caller frees *ret. */
int cluster_records_encode_local(ClusterRecords *cr, uint8_t format, uint8_t **ret, size_t *ret_size);
/* The same in two steps, the second of which may run on another thread:
 * the local entries, each already encoded (GBytes, referenced), and the
 * version they make up; then the signed snapshot assembled from them. */
int cluster_records_local_parts(ClusterRecords *cr, uint64_t *ret_version, GPtrArray **ret_parts);
int cluster_snapshot_assemble(const ClusterKeys *keys, const char *origin, uint64_t version, const GPtrArray *parts,
                              uint8_t **ret, size_t *ret_size);
uint64_t cluster_records_local_version(const ClusterRecords *cr);

/* --- the remote side ----------------------------------------------------- */

/* Whether unsigned (format 1) records of an origin whose key we do not know
 * may apply, when they come straight from it: for clusters with older nodes,
 * sealed with the cluster key. Default false. */
void cluster_records_set_accept_unsigned(ClusterRecords *cr, bool b);
/* Whether an unsigned claim in our own name is refuted: only older nodes
 * could believe one, so this is worth it (each refutation re-versions the
 * local table) only while some are around. Default true. */
void cluster_records_set_refute_unsigned(ClusterRecords *cr, bool b);

/* Decodes, checks and applies one update from origin. direct: it came from
 * the origin itself, not from a relay. Returns:
 *   1 if it changed the table, 0 if it was stale (or ours, as we issued it);
 *   CLUSTER_APPLY_REFUTED when it was about us with a version we never
 *     issued: we moved past it; flush and send our snapshot to everyone;
 *   CLUSTER_APPLY_HELD an addition for an origin that holds max_records: it
 *     waits (up to 30 s, a few thousand over all origins) for a removal from
 *     the origin or for its next snapshot, and counts as dropped if neither
 *     makes room. A node applies a change's additions before its removals,
 *     so one that replaces records at the limit sends such additions;
 *   -EBADMSG malformed, -EINVAL an unusable origin id (nothing applied);
 *   -EKEYREJECTED no key known for the origin, or a bad signature;
 *   -EPERM unsigned where a signature is needed;
 *   -ERANGE passed on by a relay for an origin we hold no table of, or too
 *     far ahead of what we have seen from it;
 *   -ENOSPC a limit is reached (see cluster_records_set_limits), and no
 *     more can be held. */
#define CLUSTER_APPLY_REFUTED 2
#define CLUSTER_APPLY_HELD 3
int cluster_records_apply_update(ClusterRecords *cr, const char *origin, bool direct, const uint8_t *data, size_t size,
                                 uint64_t now_usec);

/* A decoded and checked snapshot, ready to merge: decoding (and the signature
 * check) may run on another thread, as it touches nothing but its input. */
typedef struct ClusterSnapshot ClusterSnapshot;
/* key: the origin's public key (format 2 needs it); allow_unsigned: a format 1
 * snapshot is taken. Returns 0, -EBADMSG, -EKEYREJECTED or -EPERM as above. */
int cluster_snapshot_decode(const uint8_t *data, size_t size, const char *origin, const uint8_t *key,
                            bool allow_unsigned, ClusterSnapshot **ret);
ClusterSnapshot *cluster_snapshot_free(ClusterSnapshot *snap);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterSnapshot *, cluster_snapshot_free);
size_t cluster_snapshot_count(const ClusterSnapshot *snap);
const char *cluster_snapshot_origin(const ClusterSnapshot *snap);

/* Queues a decoded snapshot (taken) for merging; cluster_records_merge_step()
 * applies queued ones in bounded batches, in order. Returns 0, or -ENOSPC if
 * the origin finds no room (the snapshot is dropped). */
int cluster_records_merge_queue(ClusterRecords *cr, ClusterSnapshot *snap, uint64_t now_usec);
/* Applies up to budget entries of queued snapshots. Returns true while work
 * remains. ret_changes (may be NULL) adds the table changes made. */
bool cluster_records_merge_step(ClusterRecords *cr, unsigned budget, uint64_t now_usec, unsigned *ret_changes);
/* Whether queued snapshots, or a large origin going into or out of the
 * store, wait for cluster_records_merge_step(). */
bool cluster_records_pending(const ClusterRecords *cr);
/* Decodes (with the key held for origin) and merges a full snapshot sent by
 * origin itself, at once. Returns the number of table changes, or a negative
 * errno as cluster_snapshot_decode() (nothing applied). */
int cluster_records_merge_snapshot(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                   uint64_t now_usec);

/* Membership, as SWIM reports it. Alive (or suspect): the origin's records
 * are served (put back if they had been withdrawn). Dead: withdrawn once
 * dead_grace has passed without it coming back (cluster_records_tick does
 * it). Left: withdrawn at once. A table of 1,000 entries or more goes into
 * or out of the store in the slices of cluster_records_merge_step(). */
typedef enum ClusterOriginState {
        CLUSTER_ORIGIN_ALIVE,
        CLUSTER_ORIGIN_DEAD,
        CLUSTER_ORIGIN_LEFT,
} ClusterOriginState;
void cluster_records_origin_state(ClusterRecords *cr, const char *origin, ClusterOriginState st, uint64_t now_usec);
/* Forgets an origin's table (its records leave the store): the operator
 * forgot the node, or its key changed. Returns whether there was one. */
bool cluster_records_forget(ClusterRecords *cr, const char *origin);
void cluster_records_set_dead_grace(ClusterRecords *cr, uint64_t usec);
/* Tombstones older than this are dropped; withdrawn origins are forgotten
 * after ten times this. */
void cluster_records_set_tombstone_lifetime(ClusterRecords *cr, uint64_t usec);
/* Limits against a peer that sends without end: at most max_origins other
 * nodes' tables (default 1,000; a withdrawn one makes room for a new one), and
 * at most max_records records per origin (default 100,000), and as many
 * tombstones again at most: an origin that replaces all of its records is
 * still followed. What is beyond them is dropped and counted. 0 keeps a
 * limit. */
#define CLUSTER_MAX_ORIGINS_DEFAULT 1000u
#define CLUSTER_MAX_RECORDS_DEFAULT 100000u
void cluster_records_set_limits(ClusterRecords *cr, unsigned max_origins, unsigned max_records);
typedef struct ClusterRecordsCounters {
        uint64_t dropped_records; /* entries not taken: the origin holds max_records records (held
                                   * additions count when their time is up) */
        uint64_t dropped_origins; /* origins not taken: max_origins held, none withdrawn */
        uint64_t refutations;     /* versions of ours we never issued, refuted */
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

/* Encodes one entry as a signed update from origin (keys: ours; NULL: format
 * 1, unsigned). Returns the size, or 0 if it does not fit. */
size_t cluster_update_encode(const ClusterEntry *e, const char *origin, const ClusterKeys *keys, uint8_t *buf,
                             size_t size);
/* Decodes and validates an update, and checks its signature with key unless
 * key is NULL. Strings in ret are copied to buffers of the caller: name must
 * hold 256 bytes, value CLUSTER_VALUE_MAX + 1, source CLUSTER_SOURCE_MAX + 1.
 * ret_format (may be NULL) gets the format. Returns 0, -EBADMSG or -EKEYREJECTED. */
int cluster_update_decode(const uint8_t *data, size_t size, const char *origin, const uint8_t *key, ClusterEntry *ret,
                          char *name, char *value, char *source, uint8_t *ret_format);
