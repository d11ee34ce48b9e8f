/* SPDX-License-Identifier: MIT */
/* The RCU hash set on its own (the store's names, addresses and prefixes
 * live in three of them):
 *   - against a model: random adds, replacements and removals through growth,
 *     churn and shrinking; after each change the set holds exactly what the
 *     model holds;
 *   - a rebuild is spread over the changes that follow: the published array
 *     stays in place, complete, while each change copies a few slots, and the
 *     new one is published once all are copied;
 *   - readers in threads, under rcu_reader_lock() as the answering threads,
 *     while the writer grows and shrinks the set through many rebuilds: a key
 *     present throughout is found by every lookup (run under ASan and TSan
 *     too: freed arrays and items must never be read). */

#include <pthread.h>
#include <stdlib.h>

#include "rcu-hash.h"
#include "rcu.h"
#include "test-util.h"

typedef struct Item {
        uint32_t hash;
        uint32_t key;
        uint32_t version;
} Item;

/* Four keys share each hash: lookups must tell them apart by key. */
static uint32_t key_hash(uint32_t key) {
        return (key / 4) * 2654435761u;
}

static uint32_t item_hash(const void *item) {
        return ((const Item *) item)->hash;
}

static bool item_match(const void *item, uint32_t hash, const void *key) {
        return ((const Item *) item)->key == *(const uint32_t *) key;
}

static Item *item_new(uint32_t key, uint32_t version) {
        Item *i = g_new(Item, 1);

        *i = (Item) { .hash = key_hash(key), .key = key, .version = version };
        return i;
}

static Item *lookup(const RcuHash *h, uint32_t key) {
        return rcu_hash_lookup(h, key_hash(key), item_match, &key);
}

/* --- against a model ------------------------------------------------------- */

#define MODEL_KEYS 30000

static void check_all(const RcuHash *h, Item *const *model) {
        size_t n = 0, iter = 0;
        Item *i;

        for (uint32_t k = 0; k < MODEL_KEYS; k++) {
                CHECK(lookup(h, k) == model[k]);
                n += model[k] != NULL;
        }
        CHECK_INT_EQ(rcu_hash_size(h), n);
        /* The walk sees each item once. */
        for (size_t seen = 0; (i = rcu_hash_next(h, &iter)); seen++) {
                CHECK(seen < n);
                CHECK(model[i->key] == i);
        }
}

static void test_model(void) {
        TEST_BEGIN("test_model");
        static Item *model[MODEL_KEYS];
        RcuHash h;
        unsigned rebuilds = 0, steps_under_way = 0;
        const RcuHashTable *published;
        GRand *r = g_rand_new_with_seed(7);

        rcu_hash_init(&h, item_hash);
        published = h.table;
        /* Growth (mostly adds), churn (as many removals as adds), then
         * shrinking (mostly removals), twice over. */
        for (unsigned phase = 0; phase < 6; phase++) {
                unsigned add_percent = (unsigned[]) { 90, 50, 10, 90, 50, 10 }[phase];

                for (unsigned n = 0; n < 40000; n++) {
                        uint32_t k = (uint32_t) g_rand_int_range(r, 0, MODEL_KEYS);
                        bool want = (unsigned) g_rand_int_range(r, 0, 100) < add_percent;

                        if (!model[k] && want) {
                                model[k] = item_new(k, n);
                                rcu_hash_add(&h, model[k]);
                        } else if (model[k] && want) {
                                Item *old = model[k];

                                model[k] = item_new(k, n);
                                rcu_hash_replace(&h, old, model[k]);
                                g_free(old);
                        } else if (model[k]) {
                                rcu_hash_remove(&h, model[k]);
                                g_free(model[k]);
                                model[k] = NULL;
                        }
                        CHECK(lookup(&h, k) == model[k]);
                        if (h.next)
                                steps_under_way++;
                        if (h.table != published) {
                                rebuilds++;
                                published = h.table;
                        }
                        if (n % 5000 == 0)
                                check_all(&h, model);
                }
                check_all(&h, model);
        }
        /* The set grew and shrank, twice: many rebuilds, and thousands of
         * changes made while one was under way. */
        printf("model: %u rebuilds, %u changes with one under way\n", rebuilds, steps_under_way);
        CHECK(rebuilds >= 12);
        CHECK(steps_under_way >= 3000);
        for (uint32_t k = 0; k < MODEL_KEYS; k++)
                g_free(model[k]);
        rcu_hash_done(&h);
        g_rand_free(r);
}

/* --- a rebuild is spread over the changes that follow ------------------------ */

static void test_spread(void) {
        TEST_BEGIN("test_spread");
        const uint32_t n = 100000;
        GPtrArray *items = g_ptr_array_new_with_free_func(g_free); /* by key; NULL once removed */
        GRand *r = g_rand_new_with_seed(11);
        const RcuHashTable *old;
        size_t old_size, changes = 0;
        RcuHash h;
        uint32_t k = 0;

        rcu_hash_init(&h, item_hash);
        /* Fill, finish what is under way, then add until the next rebuild is due. */
        while (k < n || h.next) {
                g_ptr_array_add(items, item_new(k, 0));
                rcu_hash_add(&h, items->pdata[k++]);
        }
        old = h.table;
        old_size = old->size;
        while (!h.next) {
                g_ptr_array_add(items, item_new(k, 0));
                rcu_hash_add(&h, items->pdata[k++]);
        }
        /* Under way: the old array is still the published one, and each change
         * (adds, replacements and removals alike) copies at most 16 of its
         * slots. */
        CHECK(h.table == old);
        CHECK(h.migrated <= 16);
        while (h.next) {
                size_t before = h.migrated;
                uint32_t victim = (uint32_t) g_rand_int_range(r, 0, (int32_t) k);
                Item *v = items->pdata[victim];

                CHECK(h.table == old);
                if (changes % 3 == 0 || !v) {
                        g_ptr_array_add(items, item_new(k, 0));
                        rcu_hash_add(&h, items->pdata[k++]);
                } else if (changes % 3 == 1) {
                        items->pdata[victim] = item_new(victim, 1);
                        rcu_hash_replace(&h, v, items->pdata[victim]);
                        g_free(v);
                } else {
                        rcu_hash_remove(&h, v);
                        items->pdata[victim] = NULL;
                        g_free(v);
                }
                changes++;
                CHECK(!h.next || h.migrated - before == 16);
                if (changes % 1000 == 0)
                        for (uint32_t j = 0; j < k; j++)
                                CHECK(lookup(&h, j) == items->pdata[j]);
        }
        /* Published once every slot was copied, 16 per change. */
        CHECK(h.table != old);
        CHECK_INT_EQ(changes + 1, (old_size + 15) / 16);
        for (uint32_t j = 0; j < k; j++)
                CHECK(lookup(&h, j) == items->pdata[j]);
        printf("spread: a rebuild of %zu slots over %zu changes\n", old_size, changes + 1);

        /* One the changes left under way is finished by rcu_hash_settle(),
         * a slice at a time. */
        CHECK(!rcu_hash_settle(&h, 1000));
        while (!h.next) {
                g_ptr_array_add(items, item_new(k, 0));
                rcu_hash_add(&h, items->pdata[k++]);
        }
        old = h.table;
        old_size = old->size;
        changes = 0;
        while (rcu_hash_settle(&h, 1000)) {
                CHECK(h.table == old);
                changes++;
        }
        CHECK(h.table != old);
        CHECK_INT_EQ(changes + 1, (old_size - 16 + 999) / 1000);
        for (uint32_t j = 0; j < k; j++)
                CHECK(lookup(&h, j) == items->pdata[j]);
        rcu_hash_done(&h);
        g_ptr_array_free(items, TRUE);
        g_rand_free(r);
}

/* --- readers in threads -------------------------------------------------------- */

#define STABLE 5000 /* keys present throughout (replaced now and then) */
#define CHURN 40000 /* keys added and removed, in waves */
#define READERS 2

static RcuHash shared;
static bool writer_done;
static unsigned long lookups;

static void *reader(void *unused) {
        unsigned long n = 0;
        GRand *r = g_rand_new();

        rcu_attach_thread();
        while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
                uint32_t k = (uint32_t) g_rand_int_range(r, 0, STABLE + CHURN);
                const Item *i;

                rcu_reader_lock();
                i = lookup(&shared, k);
                if (k < STABLE)
                        CHECK(i != NULL);
                if (i)
                        CHECK(i->key == k && i->hash == key_hash(k));
                rcu_reader_unlock();
                n++;
        }
        __atomic_add_fetch(&lookups, n, __ATOMIC_RELAXED);
        g_rand_free(r);
        return NULL;
}

static void test_readers(void) {
        TEST_BEGIN("test_readers");
        static Item *live[STABLE + CHURN];
        pthread_t threads[READERS];
        const RcuHashTable *published;
        unsigned rebuilds = 0;

        rcu_attach_thread();
        rcu_hash_init(&shared, item_hash);
        for (uint32_t k = 0; k < STABLE; k++) {
                live[k] = item_new(k, 0);
                rcu_hash_add(&shared, live[k]);
        }
        published = shared.table;
        for (unsigned t = 0; t < READERS; t++)
                CHECK(pthread_create(&threads[t], NULL, reader, NULL) == 0);
        /* Waves: the churn keys all come, then all go, so that the set grows
         * and shrinks through rebuilds; a stable key is replaced in between. */
        for (unsigned wave = 0; wave < 3; wave++)
                for (uint32_t k = STABLE; k < STABLE + CHURN; k++) {
                        uint32_t s = k % STABLE;
                        Item *old = live[s];

                        if (!live[k]) {
                                live[k] = item_new(k, wave);
                                rcu_hash_add(&shared, live[k]);
                        } else {
                                rcu_hash_remove(&shared, live[k]);
                                rcu_free_deferred(live[k], g_free);
                                live[k] = NULL;
                        }
                        live[s] = item_new(s, wave + 1);
                        rcu_hash_replace(&shared, old, live[s]);
                        rcu_free_deferred(old, g_free);
                        if (shared.table != published) {
                                rebuilds++;
                                published = shared.table;
                        }
                }
        __atomic_store_n(&writer_done, true, __ATOMIC_RELEASE);
        for (unsigned t = 0; t < READERS; t++)
                CHECK(pthread_join(threads[t], NULL) == 0);
        CHECK(rebuilds >= 6);
        CHECK(lookups > 0);
        printf("readers: %lu lookups during %u rebuilds\n", lookups, rebuilds);
        rcu_synchronize();
        for (uint32_t k = 0; k < STABLE + CHURN; k++)
                g_free(live[k]);
        rcu_hash_done(&shared);
}

int main(void) {
        test_model();
        test_spread();
        test_readers();
        printf("all rcu-hash checks passed\n");
        return 0;
}
