/* SPDX-License-Identifier: MIT */
/* The record store: every source (hosts files, Docker, D-Bus, peers) adds and
 * removes the records it owns; every consumer (DNS answers, D-Bus signals,
 * the dashboard feed, cluster gossip) reads it or subscribes to its changes.
 *
 * Names are kept lowercased, without the trailing dot. A record is identified
 * by (name, type, rdata, owner): the same name, type and value from two owners
 * are two records, but answer once, with the lower TTL.
 * Every A/AAAA record (but a wildcard's) also answers PTR queries for its
 * reverse name. Those PTRs are not stored as nodes: an address index maps
 * each address to the names holding it, and store_lookup_name() turns a
 * reverse name back into an address (see there).
 * The store keeps every ancestor of a name as a node too (an "empty
 * non-terminal" when it holds no data), so NXDOMAIN vs NODATA and wildcard
 * closest-encloser lookups (RFC 4592) are exact.
 *
 * One thread at a time changes the store (in the daemon, the control loop);
 * the functions above the answer-path section are for that thread only.
 * Answering threads read it concurrently, lock-free (see below). */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns-name.h"
#include "dns-rdata.h"
#include "macro.h"
#include "rcu.h"

#define STORE_TTL_MAX 604800u /* a week; larger TTLs are refused */

typedef struct Store Store;
typedef struct StoreNode StoreNode;
typedef struct StoreView StoreView;
typedef struct StoreAddr StoreAddr;

typedef struct Record {
        /* All read-only outside store.c, and control plane only: the answer
         * path never sees a Record. Pointers first, so the struct packs. */
        const char *name;         /* lowercased, no trailing dot; owned by the node */
        char *value;              /* canonical presentation form: "10.0.0.1", "::1", "a.example.com", "some text" */
        const char *owner;        /* interned: "hosts:/dir/file", "docker:<id>", "dbus", "api", "peer:<node>" */
        char *detail;             /* optional, e.g. the container's name; NULL when none */
        uint8_t *rdata;           /* wire rdata */
        uint64_t added_usec;      /* CLOCK_REALTIME when first added */
        struct Record *node_next; /* records at the same node */
        struct Record *owner_next, *owner_prev; /* records of the same owner */
        uint16_t type;
        uint16_t rdlen;
        uint32_t ttl;
        uint32_t line; /* line in the owner's file, 0 when it has none */
        bool marked;   /* for mark-and-sweep reloads */
} Record;

/* Whether a record comes from this node's own sources (hosts files, Docker,
 * D-Bus, the API) rather than from other nodes: "peer:" (the SWIM cluster)
 * or "etcd:" (read from etcd). Only this node's own records are shared
 * onwards, so that nothing echoes between nodes or between the two ways of
 * sharing. */
static inline bool store_owner_is_local(const char *owner) {
        return owner && strncmp(owner, "peer:", 5) != 0 && strncmp(owner, "etcd:", 5) != 0;
}

/* A name of the store. The control plane (the thread that changes the store)
 * reads records and n_children; the answer path reads only the view, and the
 * wire name after the struct. */
struct StoreNode {
        Record *records;          /* explicit records at this name */
        const StoreView *view;    /* what the answer path reads; NULL when the node holds no
                                 * records (an ancestor of some). Published with rcu_publish(). */
        uint32_t hash;            /* of the wire name */
        uint32_t n_children : 31; /* nodes directly below this one */
        uint32_t has_name : 1;    /* the presentation name follows the wire name */
        /* then the lowercased wire name (the hash key), then the presentation
         * name once the node held records */
};

static inline const uint8_t *store_node_wire(const StoreNode *n) {
        return (const uint8_t *) (n + 1);
}

typedef enum RecordChange {
        RECORD_ADDED,
        RECORD_REMOVED,
} RecordChange;

/* Called synchronously after each change; the record is valid for the duration
 * of the call only. Subscribers must not change the store from the callback;
 * they may subscribe and unsubscribe (themselves or others) from it. */
typedef void (*StoreSubscriber)(Store *s, RecordChange change, const Record *r, void *userdata);

int store_new(Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* Adds a record. Returns 1 if it is new, 0 if (name, type, value, owner)
 * existed already (its TTL, line and detail are updated and its mark cleared,
 * without a change event unless the TTL changed), or a negative errno:
 * -EINVAL for a bad name (dns_name_check(), wildcards allowed) or value
 * (dns_rdata_from_string()), ret_error saying why, -EOPNOTSUPP for a type
 * the store does not hold, -ERANGE for a TTL above STORE_TTL_MAX. */
int store_add(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl, const char *owner,
              uint32_t line, const char *detail, const char **ret_error);
/* The same, also giving the record added or found (ret_record, when not
 * negative). A record stays where it is until it is removed, and only its
 * owner's changes touch it: a source may keep pointers to its own records,
 * and read their name, type, value and line from another thread while it
 * makes no change to them (the hosts source diffs a file against them off
 * the loop). */
int store_add_record(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl, const char *owner,
                     uint32_t line, const char *detail, const char **ret_error, const Record **ret_record);

/* Removes matching records of one owner; type 0 and value NULL match any.
 * owner NULL matches any owner. Returns the number removed (0 if none). */
int store_remove(Store *s, const char *name, uint16_t type, const char *value, const char *owner);
int store_remove_owner(Store *s, const char *owner);
/* Removes one record that store_add_record() gave, and frees it. */
void store_remove_record(Store *s, const Record *r);

/* Mark and sweep, for reloads: mark every record of an owner, re-add what is
 * still there (store_add clears the mark), then sweep what is still marked.
 * store_sweep_owner returns the number removed. */
void store_mark_owner(Store *s, const char *owner);
int store_sweep_owner(Store *s, const char *owner);

uint64_t store_version(const Store *s); /* grows by one with each change; readable by the answer path */
size_t store_count(const Store *s);     /* explicit records */
size_t store_count_owner_prefix(const Store *s, const char *prefix); /* e.g. "hosts:" */

/* Memory a change replaced (old views, nodes that went, ...) is freed after
 * an RCU grace period. By default each change hands it to liburcu as it
 * ends; with a flush hook, the hook is called when the first such piece is
 * set aside, and its owner calls store_flush() later (the daemon: once per
 * loop iteration), so that a burst of changes costs one hand-over.
 *
 * The store's indexes are rebuilt a few slots per change (see rcu-hash.h);
 * store_flush() also copies a bounded slice of a rebuild the changes left
 * under way, and returns true while one still is: its caller calls it again
 * (the daemon: next turn). The hook is called for that too. */
typedef void (*StoreFlushHook)(Store *s, void *userdata);
void store_set_flush_hook(Store *s, StoreFlushHook hook, void *userdata);
bool store_flush(Store *s);

int store_subscribe(Store *s, StoreSubscriber cb, void *userdata);
void store_unsubscribe(Store *s, StoreSubscriber cb, void *userdata);

/* Iterates over records in no particular order; stop by returning non-zero
 * (which is then returned). Filters: NULL matches all; name exact (any case,
 * trailing dot allowed); owner_prefix a prefix of the owner. */
typedef int (*StoreForeachFunc)(const Record *r, void *userdata);
int store_foreach(const Store *s, const char *name, const char *owner_prefix, StoreForeachFunc f, void *userdata);

/* Appends to records (borrowed Record pointers, valid as long as
 * store_foreach()'s are) the records store_foreach() visits that are of
 * type, or of any type for 0. */
void store_collect(const Store *s, const char *name, const char *owner_prefix, uint16_t type, GPtrArray *records);

/* For g_ptr_array_sort() of Record pointers: by name, type, value, then
 * owner, the order the HTTP and D-Bus APIs list records in. */
int record_compare_ptr(const void *a, const void *b);

/* "hosts:/dir/file:12", "docker:3f2a... (web)", "dbus", "peer:node-b" — the
 * owner, then ":line" if there is one, then " (detail)" if there is one; for
 * a peer's record the detail is the peer's own source:
 * "peer:node-b · docker:3f2a... (web)". */
/* The same, into out (replacing what it held), from the parts of a record. */
void record_source_format(GString *out, const char *owner, uint32_t line, const char *detail);
char *record_source(const Record *r);

/* --- the answer path ------------------------------------------------------
 *
 * Answering threads read the store with no lock and no write, between
 * rcu_reader_lock() and rcu_reader_unlock() (rcu.h); the thread that changes
 * the store may also read it without. What a lookup returns stays valid
 * until the unlock.
 *
 * Each change publishes the new state of the names it touches: a name's
 * view (its rrsets, each value with its wire rdata and the lowest TTL any
 * owner gave it) is immutable and replaced as a whole, so a reader sees a
 * name's state before or after a change, never a mix. The derived PTRs of an
 * address come in chunks of up to 32 names: each chunk is replaced as a
 * whole, so an address held by at most 32 names reads as one state too;
 * beyond that, a read during a burst of changes sees each name with or
 * without its own change. */

/* Exact lookup by lowercased wire-format name (len includes the root byte).
 * Returns NULL if no node. Nodes hold explicit records and their ancestors
 * only: reverse names answered from A/AAAA records are not nodes, so the
 * answer path uses store_lookup_name(). */
const StoreNode *store_lookup_wire(const Store *s, const uint8_t *wire, size_t len);
/* Same, by presentation name (any case, trailing dot optional). */
const StoreNode *store_lookup(const Store *s, const char *name);

/* One rrset of a view, and one of its values. */
typedef struct StoreRRSet {
        uint16_t type;
        uint32_t n;           /* values */
        const uint8_t *first; /* the first value, for store_rr_read() */
} StoreRRSet;

typedef struct StoreRR {
        const uint8_t *rdata;
        uint16_t rdlen;
        uint32_t ttl;
} StoreRR;

unsigned store_view_n_rrsets(const StoreView *v); /* 0 for NULL */
/* The rrset of a type, or false when the view has none. */
bool store_view_rrset(const StoreView *v, uint16_t type, StoreRRSet *ret);
/* The i-th rrset, i < store_view_n_rrsets(). */
void store_view_rrset_at(const StoreView *v, unsigned i, StoreRRSet *ret);

/* Reads the value at *pos (start at set->first) and moves *pos past it.
 * Values are packed: a 4-byte TTL, a 2-byte length, the rdata. */
static inline void store_rr_read(const uint8_t **pos, StoreRR *ret) {
        const uint8_t *p = *pos;

        memcpy(&ret->ttl, p, sizeof ret->ttl);
        memcpy(&ret->rdlen, p + 4, sizeof ret->rdlen);
        ret->rdata = p + 6;
        *pos = p + 6 + ret->rdlen;
}

/* A node's current rrset of a type (for the control plane and tests). */
bool store_node_rrset(const StoreNode *n, uint16_t type, StoreRRSet *ret);
static inline bool store_node_has_data(const StoreNode *n) {
        return n && n->records;
}

/* What the answer path knows about a name: its node (explicit records, or an
 * ancestor of some) with the view read once, and, for a reverse name
 * (in-addr.arpa, ip6.arpa), the names holding that address, which answer its
 * PTR queries. */
typedef struct StoreName {
        const StoreNode *node; /* NULL when there is none */
        const StoreView *view; /* the node's view as read by the lookup; NULL when none */
        const StoreAddr *addr; /* the names of the address (see store_name_next_ptr()), or NULL */
        bool exists;           /* the name exists: data at it, or a name below it (NODATA, not NXDOMAIN) */
} StoreName;

/* Looks a lowercased wire name up. Returns ret->exists. A reverse name above
 * an address we hold (2.0.192.in-addr.arpa for 192.0.2.7, the nibbles of an
 * ip6.arpa prefix, in-addr.arpa, arpa) exists, without data of its own. */
bool store_lookup_name(const Store *s, const uint8_t *wire, size_t len, StoreName *ret);

/* Most of a lookup's time with many names is waiting for memory: the
 * name's table slot, its node, its view. For a batch of questions, those
 * waits overlap when each step is started for every question before the
 * next step, and the lookups come after: call store_prefetch() with step 0
 * for each name, then step 1 for each, then 2, then look them up. Each step
 * reads what the one before brought in and starts fetching the next piece.
 * Hints only: a change in between costs a miss, nothing else. hash is
 * store_name_hash() of the lowercased wire name, len its length. */
#define STORE_PREFETCH_STEPS 3u
uint32_t store_name_hash(const uint8_t *wire, size_t len);
void store_prefetch(const Store *s, uint32_t hash, size_t len, unsigned step);

/* Whether the name has PTRs to answer: explicit ones or derived ones. */
bool store_name_has_ptr(const StoreName *n);

/* The derived PTRs of a name, one per target name, leaving out targets that
 * an explicit PTR at the name holds too (those answer once, from the
 * explicit rrset, with store_name_ptr_ttl()). Start with a zeroed iterator;
 * each call gives the target's wire name, its length and the lowest TTL of
 * the records that make it, and returns false at the end. */
typedef struct StorePtrIter {
        const StoreAddr *chunk;
        uint32_t i;
        bool started;
} StorePtrIter;
bool store_name_next_ptr(const StoreName *n, StorePtrIter *iter, const uint8_t **ret_target, uint16_t *ret_len,
                         uint32_t *ret_ttl);
size_t store_name_n_ptr(const StoreName *n); /* how many store_name_next_ptr() gives */
/* The TTL to answer an explicit PTR value with: its own, or lower when names
 * of the address are that target too. */
uint32_t store_name_ptr_ttl(const StoreName *n, const StoreRR *explicit_ptr);
