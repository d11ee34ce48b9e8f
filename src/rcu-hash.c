/* SPDX-License-Identifier: MIT */
/* The RCU hash set; see rcu-hash.h for the model. */

#include <assert.h>
#include <glib.h>

#include "rcu-hash.h"

#define SLOTS_MIN 16u

static RcuHashTable *table_new(size_t size) {
        RcuHashTable *t = g_malloc0(sizeof(RcuHashTable) + size * sizeof(uintptr_t));

        t->size = size;
        return t;
}

static void table_free(void *p) {
        g_free(p);
}

static size_t next_slot(const RcuHashTable *t, size_t i) {
        return i + 1 == t->size ? 0 : i + 1;
}

/* Where item is. Writer only: plain loads see the writer's own stores. */
static size_t slot_of(const RcuHashTable *t, uint32_t hash, const void *item) {
        for (size_t i = rcu_hash_home(rcu_hash_mix(hash), t->size);; i = next_slot(t, i)) {
                assert(t->slots[i] != 0); /* an item being looked for is in the set */
                if ((t->slots[i] & ~RCU_HASH_TAG_MASK) == (uintptr_t) item)
                        return i;
        }
}

/* Where an item with this hash goes: the first free slot of its probe. */
static size_t free_slot_of(const RcuHashTable *t, uint32_t hash) {
        for (size_t i = rcu_hash_home(rcu_hash_mix(hash), t->size);; i = next_slot(t, i))
                if (t->slots[i] == 0 || t->slots[i] == RCU_HASH_TOMBSTONE)
                        return i;
}

static uintptr_t slot_value(const void *item, uint32_t hash) {
        assert(((uintptr_t) item & RCU_HASH_TAG_MASK) == 0);
        return (uintptr_t) item | rcu_hash_tag(rcu_hash_mix(hash));
}

/* A new array sized for n items: half full, so that many changes can go by
 * before the next rebuild (at 75%, tombstones included), and a growing set
 * is rebuilt about twice per doubling: each rebuild reads every item (for
 * its hash), a cache miss each. */
static void rebuild(RcuHash *h, size_t n) {
        const RcuHashTable *old = h->table;
        RcuHashTable *t = table_new(MAX((size_t) SLOTS_MIN, n * 2 + 1));

        for (size_t i = 0; i < old->size; i++) {
                uintptr_t slot = old->slots[i];

                /* Reading each item's hash is a cache miss: ask for the ones
                 * a few slots on while this one is placed. */
                if (i + 8 < old->size && old->slots[i + 8] > RCU_HASH_TOMBSTONE)
                        __builtin_prefetch((const void *) (old->slots[i + 8] & ~RCU_HASH_TAG_MASK));
                if (slot > RCU_HASH_TOMBSTONE) {
                        void *item = (void *) (slot & ~RCU_HASH_TAG_MASK);
                        t->slots[free_slot_of(t, h->hash(item))] = slot;
                }
        }
        h->n_used = h->n_items;
        /* Readers see the new array complete, or keep using the old one,
         * which nobody changes any more, until the grace period ends. */
        rcu_publish(h->table, t);
        rcu_free_deferred((void *) old, table_free);
}

void rcu_hash_init(RcuHash *h, uint32_t (*hash)(const void *item)) {
        *h = (RcuHash) {
                .table = table_new(SLOTS_MIN),
                .hash = hash,
        };
}

void rcu_hash_done(RcuHash *h) {
        if (!h)
                return;
        g_free(h->table);
        *h = (RcuHash) {};
}

void rcu_hash_add(RcuHash *h, void *item) {
        uint32_t hash = h->hash(item);
        size_t i;

        if ((h->n_used + 1) * 4 > h->table->size * 3)
                rebuild(h, h->n_items + 1);
        i = free_slot_of(h->table, hash);
        if (h->table->slots[i] == 0)
                h->n_used++;
        h->n_items++;
        rcu_publish(h->table->slots[i], slot_value(item, hash));
}

void rcu_hash_replace(RcuHash *h, void *old_item, void *new_item) {
        uint32_t hash = h->hash(old_item);
        size_t i = slot_of(h->table, hash, old_item);

        assert(h->hash(new_item) == hash);
        rcu_publish(h->table->slots[i], slot_value(new_item, hash));
}

void rcu_hash_remove(RcuHash *h, void *item) {
        size_t i = slot_of(h->table, h->hash(item), item);

        rcu_publish(h->table->slots[i], RCU_HASH_TOMBSTONE);
        h->n_items--;
        /* Give memory back when most of it is empty. */
        if (h->table->size > SLOTS_MIN && h->n_items * 8 < h->table->size)
                rebuild(h, h->n_items);
}

void *rcu_hash_next(const RcuHash *h, size_t *iter) {
        for (; *iter < h->table->size; (*iter)++) {
                uintptr_t slot = h->table->slots[*iter];

                if (slot > RCU_HASH_TOMBSTONE) {
                        (*iter)++;
                        return (void *) (slot & ~RCU_HASH_TAG_MASK);
                }
        }
        return NULL;
}
