/* SPDX-License-Identifier: MIT */
/* A hash set of pointers that answering threads read under RCU while one
 * writer (the control loop) changes it.
 *
 * Open addressing with linear probing over an array of slots: a slot goes
 * from empty to an item, from an item to a tombstone (removed) or to
 * another item with the same key (replaced), and from a tombstone to an item;
 * never back to empty. So a reader probing for a key stops at the first empty
 * slot and cannot miss an item that was there for its whole probe. Each slot
 * changes with one atomic store, so a reader sees an item or not, never half
 * of one. Growing, shrinking and clearing out tombstones build a new array,
 * publish it, and free the old one after a grace period. The building is
 * spread over the changes that follow the one that made it due, a few slots
 * each; until it is done the old array stays published, complete and
 * current, and the changes are made in both.
 *
 * Memory matters (two of these hold 100,000 names and their addresses): the
 * array is sized to the items, not to a power of two, and kept 50 to 75%
 * full. At that load a probe passes several other items, so a slot keeps 4
 * bits of its item's hash in the pointer's low bits (items are malloc'd,
 * 16-byte aligned) and a reader looks at an item only when they match.
 *
 * Items carry their own hash (the hash callback returns it), so rebuilding
 * never looks at a key. The set owns no item: removing one does not free it;
 * the caller frees it after a grace period. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcu.h"

#define RCU_HASH_TAG_MASK ((uintptr_t) 15)
#define RCU_HASH_TOMBSTONE ((uintptr_t) 1) /* below 16: no item */

typedef struct RcuHashTable {
        size_t size;
        uintptr_t slots[]; /* 0 (empty), RCU_HASH_TOMBSTONE, or item | tag */
} RcuHashTable;

typedef struct RcuHash {
        RcuHashTable *table; /* read through rcu_dereference() */
        size_t n_items;      /* writer only, like the rest */
        size_t n_used;       /* items and tombstones in table */
        RcuHashTable *next;  /* the array being built to replace table, or NULL; not published */
        size_t next_used;    /* items and tombstones in next */
        size_t migrated;     /* table's slots below this are copied into next */
        uint32_t (*hash)(const void *item);
} RcuHash;

void rcu_hash_init(RcuHash *h, uint32_t (*hash)(const void *item));
/* Frees the slot array at once: no reader may be left. Items are the caller's. */
void rcu_hash_done(RcuHash *h);

/* The hash mixed (murmur3's finaliser), so that keys differing in a few bits
 * (host1, host2, ...) spread over the whole array. */
static inline uint32_t rcu_hash_mix(uint32_t hash) {
        hash ^= hash >> 16;
        hash *= 0x85ebca6bu;
        hash ^= hash >> 13;
        hash *= 0xc2b2ae35u;
        hash ^= hash >> 16;
        return hash;
}

/* The first slot to probe (the mixed hash scaled to the size), and the tag. */
static inline size_t rcu_hash_home(uint32_t mixed, size_t size) {
        return (size_t) (((uint64_t) mixed * size) >> 32);
}

static inline uintptr_t rcu_hash_tag(uint32_t mixed) {
        return 1 + (mixed & 0xff) % 15; /* 1..15: never 0, never a tombstone alone */
}

/* The item matching key, or NULL. From a reader under rcu_reader_lock(), or
 * from the writer. match() is given each candidate whose tag fits. */
static inline void *rcu_hash_lookup(const RcuHash *h, uint32_t hash,
                                    bool (*match)(const void *item, uint32_t hash, const void *key), const void *key) {
        const RcuHashTable *t = rcu_dereference(h->table);
        uint32_t mixed = rcu_hash_mix(hash);
        uintptr_t tag = rcu_hash_tag(mixed);

        for (size_t i = rcu_hash_home(mixed, t->size);; i = i + 1 == t->size ? 0 : i + 1) {
                uintptr_t slot = __atomic_load_n(&t->slots[i], __ATOMIC_CONSUME);
                void *item = (void *) (slot & ~RCU_HASH_TAG_MASK);

                if (slot == 0)
                        return NULL;
                if ((slot & RCU_HASH_TAG_MASK) == tag && item && match(item, hash, key))
                        return item;
        }
}

/* Hints for a lookup to come (the answer path warms a batch of lookups
 * before doing them, see store_prefetch()): the home slot of a hash, and the
 * first item from there whose tag fits, which is most likely the one the
 * lookup will match. From a reader or the writer; nothing read here may be
 * relied upon. */
static inline void rcu_hash_prefetch_slot(const RcuHash *h, uint32_t hash) {
        const RcuHashTable *t = rcu_dereference(h->table);

        __builtin_prefetch(&t->slots[rcu_hash_home(rcu_hash_mix(hash), t->size)]);
}

static inline const void *rcu_hash_peek(const RcuHash *h, uint32_t hash) {
        const RcuHashTable *t = rcu_dereference(h->table);
        uint32_t mixed = rcu_hash_mix(hash);
        uintptr_t tag = rcu_hash_tag(mixed);
        size_t i = rcu_hash_home(mixed, t->size);

        /* A few slots: a long run of others is not worth the walk twice. */
        for (unsigned k = 0; k < 4; k++, i = i + 1 == t->size ? 0 : i + 1) {
                uintptr_t slot = __atomic_load_n(&t->slots[i], __ATOMIC_CONSUME);

                if (slot == 0)
                        return NULL;
                if ((slot & RCU_HASH_TAG_MASK) == tag && slot > RCU_HASH_TAG_MASK)
                        return (const void *) (slot & ~RCU_HASH_TAG_MASK);
        }
        return NULL;
}

/* Writer only. add: the item's key must not be in the set yet. replace: old
 * is in the set and new has the same key. remove: item is in the set. */
void rcu_hash_add(RcuHash *h, void *item);
void rcu_hash_replace(RcuHash *h, void *old_item, void *new_item);
void rcu_hash_remove(RcuHash *h, void *item);

/* Writer only. Whether a rebuild is under way; and copying up to n_slots
 * more of it without a change (so that one the changes left unfinished
 * ends: its new array is allocated, and the published one fuller than
 * usual), returning whether one is still under way. */
static inline bool rcu_hash_rebuilding(const RcuHash *h) {
        return h->next != NULL;
}
bool rcu_hash_settle(RcuHash *h, size_t n_slots);

static inline size_t rcu_hash_size(const RcuHash *h) {
        return h->n_items;
}

/* Writer only: iterates over the items; start with *iter = 0. The set must
 * not change during the walk. */
void *rcu_hash_next(const RcuHash *h, size_t *iter);
