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

/* How many slots of the published array each change copies into the next
 * one while a rebuild is under way. The published array takes the additions
 * made meanwhile, one per change at most, so it is at most 1/16 fuller when
 * the copy ends (81% from 75%) than when it began. */
#define MIGRATE_SLOTS 16u

/* Places a slot value into h->next (not published yet: plain stores). */
static void next_place(RcuHash *h, uint32_t hash, uintptr_t value) {
        size_t j = free_slot_of(h->next, hash);

        if (h->next->slots[j] == 0)
                h->next_used++;
        h->next->slots[j] = value;
}

/* Copies the next slots of the published array into h->next; once the last
 * is copied, publishes h->next in its place. The slots copied already are
 * kept in step by the changes (see copied()). */
static void migrate(RcuHash *h, size_t n_slots) {
        RcuHashTable *old = h->table, *t = h->next;
        size_t end = MIN(old->size, h->migrated + n_slots);

        for (size_t i = h->migrated; i < end; i++) {
                uintptr_t slot = old->slots[i];

                /* Reading each item's hash is a cache miss: ask for the ones
                 * a few slots on while this one is placed. */
                if (i + 8 < end && old->slots[i + 8] > RCU_HASH_TOMBSTONE)
                        __builtin_prefetch((const void *) (old->slots[i + 8] & ~RCU_HASH_TAG_MASK));
                if (slot > RCU_HASH_TOMBSTONE)
                        next_place(h, h->hash((void *) (slot & ~RCU_HASH_TAG_MASK)), slot);
        }
        h->migrated = end;
        if (end < old->size)
                return;
        /* Readers see the new array complete, or keep using the old one,
         * which nobody changes any more, until the grace period ends. */
        h->n_used = h->next_used;
        h->next = NULL;
        rcu_publish(h->table, t);
        rcu_free_deferred((void *) old, table_free);
}

/* Starts a rebuild into a new array sized for n items: half full, so that
 * many changes can go by before the next rebuild (at 75%, tombstones
 * included), and a growing set is rebuilt about twice per doubling. The
 * copy is spread over the changes that follow, MIGRATE_SLOTS at a time, so
 * that no single change does all of it: each copied item is a cache miss,
 * and at 100,000 items one rebuild in one go kept the control loop for 5 to
 * 16 ms. The published array stays complete and current meanwhile, so
 * readers never look at two. The new one must hold, at 75% at most, the
 * items of now and those the changes during the copy may add (one each). */
static void rebuild_start(RcuHash *h, size_t n) {
        size_t during = h->table->size / MIGRATE_SLOTS + 2;
        size_t size = MAX((size_t) SLOTS_MIN, MAX(n * 2 + 1, (n + during) * 4 / 3 + 1));

        assert(!h->next);
        h->next = table_new(size);
        h->next_used = 0;
        h->migrated = 0;
}

/* After a change: copy some more, or, with nothing under way, start when due. */
static void rebuild_step(RcuHash *h) {
        if (!h->next) {
                if ((h->n_used + 1) * 4 > h->table->size * 3)
                        rebuild_start(h, h->n_items + 1);
                /* Give memory back when most of it is empty. */
                else if (h->table->size > SLOTS_MIN && h->n_items * 8 < h->table->size)
                        rebuild_start(h, h->n_items);
                else
                        return;
        }
        migrate(h, MIGRATE_SLOTS);
}

bool rcu_hash_settle(RcuHash *h, size_t n_slots) {
        if (h->next)
                migrate(h, n_slots);
        return h->next != NULL;
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
        g_free(h->next);
        g_free(h->table);
        *h = (RcuHash) {};
}

/* Whether slot i of the published array has been copied into h->next
 * already: a change there is made in both. */
static bool copied(const RcuHash *h, size_t i) {
        return h->next && i < h->migrated;
}

void rcu_hash_add(RcuHash *h, void *item) {
        uint32_t hash = h->hash(item);
        size_t i = free_slot_of(h->table, hash);

        if (h->table->slots[i] == 0)
                h->n_used++;
        /* Room is left: a rebuild is under way from 75% on, and it ends before
         * another sixteenth of the slots is taken (see MIGRATE_SLOTS). */
        assert(h->n_used < h->table->size);
        h->n_items++;
        rcu_publish(h->table->slots[i], slot_value(item, hash));
        if (copied(h, i))
                next_place(h, hash, slot_value(item, hash));
        rebuild_step(h);
}

void rcu_hash_replace(RcuHash *h, void *old_item, void *new_item) {
        uint32_t hash = h->hash(old_item);
        size_t i = slot_of(h->table, hash, old_item);

        assert(h->hash(new_item) == hash);
        rcu_publish(h->table->slots[i], slot_value(new_item, hash));
        if (copied(h, i))
                h->next->slots[slot_of(h->next, hash, old_item)] = slot_value(new_item, hash);
        rebuild_step(h);
}

void rcu_hash_remove(RcuHash *h, void *item) {
        uint32_t hash = h->hash(item);
        size_t i = slot_of(h->table, hash, item);

        rcu_publish(h->table->slots[i], RCU_HASH_TOMBSTONE);
        if (copied(h, i))
                h->next->slots[slot_of(h->next, hash, item)] = RCU_HASH_TOMBSTONE;
        h->n_items--;
        rebuild_step(h);
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
