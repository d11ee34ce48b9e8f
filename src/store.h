/* SPDX-License-Identifier: MIT */
/* The record store: every source (hosts files, Docker, D-Bus, peers) adds and
 * removes the records it owns; every consumer (DNS answers, D-Bus signals,
 * the dashboard feed, cluster gossip) reads it or subscribes to its changes.
 *
 * Names are kept lowercased, without the trailing dot. A record is identified
 * by (name, type, rdata, owner): the same name, type and value from two owners
 * are two records, but answer once (the rrset keeps a reference count).
 * Every A/AAAA record also makes a PTR for its reverse name.
 * The store keeps every ancestor of a name as a node too (an "empty
 * non-terminal" when it holds no data), so NXDOMAIN vs NODATA and wildcard
 * closest-encloser lookups (RFC 4592) are exact. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define DNS_TYPE_A      1
#define DNS_TYPE_NS     2
#define DNS_TYPE_CNAME  5
#define DNS_TYPE_SOA    6
#define DNS_TYPE_PTR    12
#define DNS_TYPE_MX     15
#define DNS_TYPE_TXT    16
#define DNS_TYPE_AAAA   28
#define DNS_TYPE_OPT    41
#define DNS_TYPE_ANY    255

#define DNS_WIRE_NAME_MAX 255
#define STORE_TTL_MAX 604800u   /* a week; larger TTLs are refused */

typedef struct Store Store;
typedef struct StoreNode StoreNode;

typedef struct Record {
        /* All read-only outside store.c. */
        const char *name;       /* lowercased, no trailing dot; owned by the node */
        uint16_t type;
        uint16_t rdlen;
        uint32_t ttl;
        uint32_t line;          /* line in the owner's file, 0 when it has none */
        char *value;            /* canonical presentation form: "10.0.0.1", "::1", "a.example.com", "some text" */
        const char *owner;      /* interned: "hosts:/dir/file", "docker:<id>", "dbus", "api", "peer:<node>" */
        char *detail;           /* optional, e.g. the container's name; NULL when none */
        uint8_t *rdata;         /* wire rdata */
        uint64_t added_usec;    /* CLOCK_REALTIME when first added */
        bool marked;            /* for mark-and-sweep reloads */
        StoreNode *node;
        struct Record *node_next;   /* records at the same node */
        struct Record *owner_next, *owner_prev;   /* records of the same owner */
} Record;

/* One deduplicated value of an rrset as the DNS answer path sees it. */
typedef struct RRData {
        uint8_t *rdata;         /* into inline_rdata, a node's wire name (PTR), or the heap */
        uint16_t rdlen;
        uint8_t storage;        /* private to store.c */
        uint32_t ttl;           /* the lowest TTL any owner gave this value */
        uint32_t refs;          /* how many records (or derived PTRs) hold it */
        uint8_t inline_rdata[16];   /* A and AAAA live here: no allocation */
} RRData;

typedef struct RRSet {
        uint16_t type;
        uint32_t n;
        uint32_t allocated;
        uint32_t rotate;        /* round-robin start, advanced by store_rrset_rotate() */
        RRData *items;
} RRSet;

struct StoreNode {
        uint8_t *wire;          /* lowercased wire-format name: the hash key (in this allocation) */
        char *name;             /* presentation form, no trailing dot; NULL on nodes that hold
                                 * no explicit record (ancestors, reverse names) */
        StoreNode *parent;
        uint32_t n_children;    /* nodes directly below this one */
        uint32_t n_rrsets;
        RRSet *rrsets;          /* &rrset_inline while there is one type, else an array */
        Record *records;        /* explicit records at this name (not derived PTRs) */
        RRSet rrset_inline;
        bool name_heap;         /* name was allocated on its own, after the node */
};

typedef enum RecordChange {
        RECORD_ADDED,
        RECORD_REMOVED,
} RecordChange;

/* Called synchronously after each change; the record is valid for the duration
 * of the call only. Subscribers must not change the store from the callback. */
typedef void (*StoreSubscriber)(Store *s, RecordChange change, const Record *r, void *userdata);

int store_new(Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* Converts a presentation value to canonical wire rdata (ldns). Returns 0, or
 * -EINVAL when the value is not valid for the type (ret_error, if given, gets
 * a static string saying why), -EOPNOTSUPP for a type the store does not hold. */
int store_parse_value(uint16_t type, const char *value, uint8_t **ret_rdata, uint16_t *ret_rdlen,
                      const char **ret_error);
/* Checks a name (presentation, optional trailing dot, "*." first label allowed).
 * Returns 0 or -EINVAL with *ret_error set. */
int store_check_name(const char *name, const char **ret_error);
/* "A", "aaaa", "TXT", ... -> type number, or -EINVAL. Only the types the store holds. */
int store_type_from_string(const char *s);
const char *store_type_to_string(uint16_t type);   /* NULL for unknown */

/* Adds a record. Returns 1 if it is new, 0 if (name, type, value, owner)
 * existed already (its TTL, line and detail are updated and its mark cleared,
 * without a change event unless the TTL changed), or a negative errno:
 * -EINVAL for a bad name or value (ret_error says why), -EOPNOTSUPP for a type
 * the store does not hold, -ERANGE for a TTL above STORE_TTL_MAX. */
int store_add(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl,
              const char *owner, uint32_t line, const char *detail, const char **ret_error);

/* Removes matching records of one owner; type 0 and value NULL match any.
 * owner NULL matches any owner. Returns the number removed (0 if none). */
int store_remove(Store *s, const char *name, uint16_t type, const char *value, const char *owner);
int store_remove_owner(Store *s, const char *owner);

/* Mark and sweep, for reloads: mark every record of an owner, re-add what is
 * still there (store_add clears the mark), then sweep what is still marked.
 * store_sweep_owner returns the number removed. */
void store_mark_owner(Store *s, const char *owner);
int store_sweep_owner(Store *s, const char *owner);

uint64_t store_version(const Store *s);     /* grows by one with each change */
size_t store_count(const Store *s);         /* explicit records */
size_t store_count_owner_prefix(const Store *s, const char *prefix);   /* e.g. "hosts:" */

int store_subscribe(Store *s, StoreSubscriber cb, void *userdata);
void store_unsubscribe(Store *s, StoreSubscriber cb, void *userdata);

/* Iterates over records in no particular order; stop by returning non-zero
 * (which is then returned). Filters: NULL matches all; name exact (any case,
 * trailing dot allowed); owner_prefix a prefix of the owner. */
typedef int (*StoreForeachFunc)(const Record *r, void *userdata);
int store_foreach(const Store *s, const char *name, const char *owner_prefix, StoreForeachFunc f, void *userdata);

/* "hosts:/dir/file:12", "docker:3f2a... (web)", "dbus", "peer:node-b" — the
 * owner, then ":line" if there is one, then " (detail)" if there is one. */
char *record_source(const Record *r);

/* --- lookups for the DNS answer path ----------------------------------- */

/* Exact lookup by lowercased wire-format name (len includes the root byte).
 * Returns NULL if no node, which means the name does not exist at all. */
const StoreNode *store_lookup_wire(const Store *s, const uint8_t *wire, size_t len);
/* Same, by presentation name (any case, trailing dot optional). */
const StoreNode *store_lookup(const Store *s, const char *name);
const RRSet *store_node_rrset(const StoreNode *n, uint16_t type);
static inline bool store_node_has_data(const StoreNode *n) {
        return n && n->n_rrsets > 0;
}
/* Rotates the start of an rrset for round-robin answers. Mutates only the
 * rotation counter, so the answer path stays a read of the store otherwise. */
uint32_t store_rrset_rotate(const RRSet *set);

/* Lowercases and converts a presentation name to wire format. Returns the wire
 * length, or -EINVAL. */
int dns_name_to_wire(const char *name, uint8_t out[static DNS_WIRE_NAME_MAX]);
/* Wire to presentation (lowercase, no trailing dot, escaping as ldns does).
 * Returns the length, or -EINVAL. out must hold 1024 bytes. */
int dns_wire_to_name(const uint8_t *wire, size_t len, char *out, size_t out_size);
