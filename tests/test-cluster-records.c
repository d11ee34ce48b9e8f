/* SPDX-License-Identifier: MIT */
/* The replicated-record tables without sockets: two or more "nodes", each a
 * real Store plus its ClusterRecords, wired by hand. Checks versions and
 * newer-wins, tombstones and their expiry, one value from two local owners,
 * withdrawal on death or leave and restore, snapshot merge against
 * incremental updates, and that truncated or garbage input is rejected
 * without changing anything. */

#include <glib.h>
#include <pthread.h>
#include <stdio.h>

#include "cluster-records.h"
#include "store.h"
#include "test-util.h"

#define SEC USEC_PER_SEC

typedef struct Node {
        const char *id;
        Store *store;
        ClusterRecords *cr;
        GPtrArray *sent; /* GBytes: updates emitted by the last flushes */
        uint64_t now;    /* its clock, for bursts of local changes */
} Node;

/* Every node's key pair by id (the first node of an id; a restarted node
 * keeps its key, as its state directory does). */
static GHashTable *key_pairs;

static void key_pair_destroy(gpointer p) {
        cluster_keys_free(p);
}

static ClusterKeys *key_pair(const char *id) {
        ClusterKeys *k;
        g_autofree char *error = NULL;

        if (!key_pairs)
                key_pairs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, key_pair_destroy);
        k = g_hash_table_lookup(key_pairs, id);
        if (!k) {
                CHECK(cluster_keys_new(&k, NULL, &error) == 0);
                g_hash_table_insert(key_pairs, g_strdup(id), k);
        }
        return k;
}

static void node_init(Node *n, const char *id, uint64_t first_version) {
        n->id = id;
        n->now = 0;
        CHECK(store_new(&n->store) == 0);
        CHECK(cluster_records_new(&n->cr, n->store, id, key_pair(id), first_version) == 0);
        n->sent = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
}

static void node_done(Node *n) {
        n->cr = cluster_records_free(n->cr);
        n->store = store_free(n->store);
        g_ptr_array_free(n->sent, TRUE);
}

/* to has met origin: it knows its public key (pinned on first contact). */
static void trust(Node *to, const char *origin) {
        ClusterKeyVerdict v = cluster_keys_present(key_pair(to->id), origin, cluster_keys_public(key_pair(origin)));
        CHECK(v == CLUSTER_KEY_PINNED || v == CLUSTER_KEY_KNOWN);
}

static void on_emit(const char *key, const uint8_t *data, size_t size, void *userdata) {
        Node *n = userdata;
        CHECK(strlen(key) == 64); /* a SHA-256 in hex: fits SWIM's key limit */
        g_ptr_array_add(n->sent, g_bytes_new(data, size));
}

/* Marks what changed (as the store subscriber does) and flushes. */
static void on_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Node *n = userdata;
        if (cluster_owner_is_local(r->owner))
                cluster_records_local_mark(n->cr, r->name, r->type, r->value);
}

static unsigned flush(Node *n) {
        g_ptr_array_set_size(n->sent, 0);
        return cluster_records_local_flush(n->cr, n->now, on_emit, n);
}

/* Delivers every update n emitted last to another, straight from n. */
static void deliver(Node *from, Node *to, uint64_t now) {
        trust(to, from->id);
        for (guint i = 0; i < from->sent->len; i++) {
                gsize size;
                const uint8_t *d = g_bytes_get_data(from->sent->pdata[i], &size);
                CHECK(cluster_records_apply_update(to->cr, from->id, true, d, size, now) >= 0);
        }
}

typedef struct Want {
        uint16_t type;
        const char *owner, *value;
        bool found;
} Want;

static int want_one(const Record *r, void *userdata) {
        Want *w = userdata;
        if (r->type == w->type && streq(r->owner, w->owner) && (!w->value || streq(r->value, w->value)))
                w->found = true;
        return 0;
}

static bool resolves(Store *s, const char *name, uint16_t type, const char *owner, const char *value) {
        Want w = { type, owner, value, false };
        (void) store_foreach(s, name, NULL, want_one, &w);
        return w.found;
}

static size_t peer_count(Store *s, const char *origin) {
        g_autofree char *owner = g_strconcat("peer:", origin, NULL);
        return store_count_owner_prefix(s, owner);
}

static int dump_one(const Record *r, void *userdata) {
        g_ptr_array_add(userdata, g_strdup_printf("%s %u %s %u", r->name, r->type, r->value, r->ttl));
        return 0;
}

static int cmp_str(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Dumps the records of one owner (prefix) as a sorted string, to compare two stores. */
static char *dump_owner(Store *s, const char *owner) {
        g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
        (void) store_foreach(s, NULL, owner, dump_one, lines);
        g_ptr_array_sort(lines, cmp_str);
        g_ptr_array_add(lines, NULL);
        return g_strjoinv("\n", (char **) lines->pdata);
}

static void test_wire(void) {
        uint8_t buf[2048];
        char name[256], value[CLUSTER_VALUE_MAX + 1], source[CLUSTER_SOURCE_MAX + 1];
        ClusterKeys *k = key_pair("w"), *other = key_pair("w-other");
        const uint8_t *pub = cluster_keys_public(k);
        ClusterEntry e = {
                .name = "web.example.com",
                .type = DNS_TYPE_A,
                .value = "10.0.0.5",
                .source = "docker:3f2a (web-1)",
                .ttl = 30,
                .version = CLUSTER_VERSION(7, 77),
        };
        ClusterEntry d;
        uint8_t format = 0;
        size_t n = cluster_update_encode(&e, "w", k, buf, sizeof buf);

        CHECK(n > 0);
        CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, &format) == 0);
        CHECK(format == CLUSTER_RECORDS_FORMAT);
        CHECK(streq(d.name, "web.example.com") && d.type == DNS_TYPE_A && streq(d.value, "10.0.0.5"));
        CHECK(d.source && streq(d.source, "docker:3f2a (web-1)"));
        CHECK(d.ttl == 30 && d.version == CLUSTER_VERSION(7, 77) && !d.deleted);
        CHECK(cluster_version_epoch(d.version) == 7 && cluster_version_seq(d.version) == 77);
        /* Signed by w for w: not for another origin, not with another key. */
        CHECK(cluster_update_decode(buf, n, "x", pub, &d, name, value, source, NULL) == -EKEYREJECTED);
        CHECK(cluster_update_decode(buf, n, "w", cluster_keys_public(other), &d, name, value, source, NULL) ==
              -EKEYREJECTED);
        /* Any byte changed breaks the signature (or the format). */
        for (size_t i = 3; i < n; i++) {
                buf[i] ^= 0x40;
                CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) < 0);
                buf[i] ^= 0x40;
        }

        /* Format 1 (older nodes): no source, no signature. */
        size_t n1 = cluster_update_encode(&e, "w", NULL, buf, sizeof buf);
        CHECK(n1 > 0 && n1 < n);
        CHECK(cluster_update_decode(buf, n1, "w", pub, &d, name, value, source, &format) == 0);
        CHECK(format == CLUSTER_RECORDS_FORMAT_V1 && !d.source && d.version == CLUSTER_VERSION(7, 77));

        e.deleted = true;
        e.type = DNS_TYPE_TXT;
        e.value = "\"hello world\"";
        n = cluster_update_encode(&e, "w", k, buf, sizeof buf);
        CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) == 0 && d.deleted &&
              d.type == DNS_TYPE_TXT);

        /* Every truncation, and one trailing byte, is rejected. */
        for (size_t i = 0; i < n; i++)
                CHECK(cluster_update_decode(buf, i, "w", pub, &d, name, value, source, NULL) < 0);
        buf[n] = 0;
        CHECK(cluster_update_decode(buf, n + 1, "w", pub, &d, name, value, source, NULL) < 0);
        /* An encoder with too small a buffer says so. */
        CHECK(cluster_update_encode(&e, "w", k, buf, 10) == 0);

        /* Field by field: what the store would refuse is refused on the wire. */
        struct {
                ClusterEntry e;
        } bad[] = {
                { { .name = "web.example.com", .type = DNS_TYPE_A, .value = "10.0.0.300", .ttl = 1, .version = 1 } },
                { { .name = "web.example.com", .type = DNS_TYPE_A, .value = "10.0.0.1", .ttl = 1, .version = 0 } },
                { { .name = "web.example.com",
                    .type = DNS_TYPE_A,
                    .value = "10.0.0.1",
                    .ttl = STORE_TTL_MAX + 1,
                    .version = 1 } },
                { { .name = "web..example.com", .type = DNS_TYPE_A, .value = "10.0.0.1", .ttl = 1, .version = 1 } },
                { { .name = "web.example.com", .type = 99, .value = "10.0.0.1", .ttl = 1, .version = 1 } },
                { { .name = "web.example.com", .type = DNS_TYPE_AAAA, .value = "10.0.0.1", .ttl = 1, .version = 1 } },
                { { .name = "web.example.com",
                    .type = DNS_TYPE_A,
                    .value = "10.0.0.1",
                    .source = "a\nb",
                    .ttl = 1,
                    .version = 1 } },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = cluster_update_encode(&bad[i].e, "w", k, buf, sizeof buf);
                CHECK(n > 0);
                CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) == -EBADMSG);
        }
        /* Unknown flag bits, a NUL inside the name, wrong magic or format. */
        e = (ClusterEntry) { .name = "a.example", .type = DNS_TYPE_A, .value = "10.0.0.1", .ttl = 1, .version = 1 };
        n = cluster_update_encode(&e, "w", NULL, buf, sizeof buf);
        buf[3] |= 0x80;
        CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) == -EBADMSG);
        buf[3] &= 0x7f;
        buf[3 + 15 + 1 + 1] = 0; /* second byte of the name */
        CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) == -EBADMSG);
        n = cluster_update_encode(&e, "w", NULL, buf, sizeof buf);
        buf[2] = 9;
        CHECK(cluster_update_decode(buf, n, "w", pub, &d, name, value, source, NULL) == -EBADMSG);

        /* Random garbage never decodes (and never crashes). */
        uint64_t x = 0x1234567;
        for (unsigned i = 0; i < 20000; i++) {
                size_t len = (x >> 7) % 128;
                for (size_t j = 0; j < len; j++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        buf[j] = (uint8_t) x;
                }
                if (len >= 3 && i % 2) {
                        buf[0] = 'J';
                        buf[1] = 'U';
                        buf[2] = (uint8_t) (1 + i % 4 / 2);
                }
                (void) cluster_update_decode(buf, len, "w", pub, &d, name, value, source, NULL);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
        }
}

static void test_local_versions(void) {
        Node a;
        node_init(&a, "a", 1000);
        store_subscribe(a.store, on_change, &a);

        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", 30, "hosts:/h/one", 1, NULL, NULL) == 1);
        CHECK(flush(&a) == 1);
        CHECK(cluster_records_local_version(a.cr) == 1001);
        CHECK(cluster_records_count(a.cr, "a") == 1);
        CHECK(flush(&a) == 0); /* nothing new */

        /* The same value from a second local owner: still one record for the cluster. */
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", 30, "hosts:/h/two", 0, NULL, NULL) == 1);
        CHECK(flush(&a) == 0);
        /* A lower TTL from that owner: the cluster record takes the lowest. */
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", 10, "hosts:/h/two", 0, NULL, NULL) == 0);
        CHECK(flush(&a) == 1);
        CHECK(cluster_records_local_version(a.cr) == 1002);
        /* The first owner drops it: still there through the second, which is
         * now its source (peers show it). */
        CHECK(store_remove(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", "hosts:/h/one") == 1);
        CHECK(flush(&a) == 1);
        CHECK(cluster_records_count(a.cr, "a") == 1);
        char name[256], value[CLUSTER_VALUE_MAX + 1], source[CLUSTER_SOURCE_MAX + 1];
        ClusterEntry d;
        gsize size;
        const uint8_t *p = g_bytes_get_data(a.sent->pdata[0], &size);
        CHECK(cluster_update_decode(p, size, "a", cluster_keys_public(key_pair("a")), &d, name, value, source, NULL) ==
                      0 &&
              !d.deleted && d.version == 1003 && streq_ptr(d.source, "hosts:/h/two"));
        /* The last owner drops it: a tombstone goes out, with a newer version. */
        CHECK(store_remove(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", "hosts:/h/two") == 1);
        CHECK(flush(&a) == 1);
        CHECK(cluster_records_count(a.cr, "a") == 0);
        p = g_bytes_get_data(a.sent->pdata[0], &size);
        CHECK(cluster_update_decode(p, size, "a", cluster_keys_public(key_pair("a")), &d, name, value, source, NULL) ==
                      0 &&
              d.deleted && d.version == 1004);
        /* A container's name is part of its source. */
        CHECK(store_add(a.store, "c.example.com", DNS_TYPE_A, "10.0.0.9", 30, "docker:3f2a", 0, "web-1", NULL) == 1);
        CHECK(flush(&a) == 1);
        p = g_bytes_get_data(a.sent->pdata[0], &size);
        CHECK(cluster_update_decode(p, size, "a", NULL, &d, name, value, source, NULL) == 0 &&
              streq_ptr(d.source, "docker:3f2a (web-1)"));
        /* Peer records are never announced as ours. */
        CHECK(store_add(a.store, "x.example.com", DNS_TYPE_A, "10.9.9.9", 30, "peer:b", 0, NULL, NULL) == 1);
        CHECK(flush(&a) == 0);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
}

static void test_replication(void) {
        Node a, b;
        node_init(&a, "a", 5000);
        node_init(&b, "b", 9000);
        store_subscribe(a.store, on_change, &a);

        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.5", 30, "hosts:/h/one", 1, NULL, NULL) == 1);
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_AAAA, "fd00::5", 30, "hosts:/h/one", 1, NULL, NULL) == 1);
        flush(&a);
        GPtrArray *first = g_ptr_array_ref(a.sent);
        a.sent = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        deliver(&(Node) { .id = "a", .sent = first }, &b, 0);
        CHECK(resolves(b.store, "web.example.com", DNS_TYPE_A, "peer:a", "10.0.0.5"));
        CHECK(resolves(b.store, "web.example.com", DNS_TYPE_AAAA, "peer:a", "fd00::5"));
        CHECK(cluster_records_count(b.cr, "a") == 2);
        /* The same update twice changes nothing. */
        for (guint i = 0; i < first->len; i++) {
                gsize size;
                const uint8_t *d = g_bytes_get_data(first->pdata[i], &size);
                CHECK(cluster_records_apply_update(b.cr, "a", true, d, size, 0) == 0);
        }

        /* Delete on a; the tombstone reaches b; the old add arriving late
         * (gossip reorders) does not bring the record back. */
        CHECK(store_remove(a.store, "web.example.com", DNS_TYPE_A, NULL, "hosts:/h/one") == 1);
        flush(&a);
        deliver(&a, &b, 1 * SEC);
        CHECK(!resolves(b.store, "web.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(cluster_records_tombstones(b.cr, "a") == 1);
        deliver(&(Node) { .id = "a", .sent = first }, &b, 2 * SEC);
        CHECK(!resolves(b.store, "web.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(resolves(b.store, "web.example.com", DNS_TYPE_AAAA, "peer:a", NULL));

        /* Tombstones expire after their lifetime, not before. */
        cluster_records_set_tombstone_lifetime(b.cr, 60 * SEC);
        (void) cluster_records_tick(b.cr, 30 * SEC);
        CHECK(cluster_records_tombstones(b.cr, "a") == 1);
        (void) cluster_records_tick(b.cr, 62 * SEC);
        CHECK(cluster_records_tombstones(b.cr, "a") == 0);

        /* Updates claiming to be from b itself are ignored by b; a bad origin is refused. */
        {
                gsize size;
                const uint8_t *d = g_bytes_get_data(first->pdata[0], &size);
                /* Signed by a, not by b: a forgery b's key shows up. */
                CHECK(cluster_records_apply_update(b.cr, "b", true, d, size, 0) == -EKEYREJECTED);
                CHECK(cluster_records_apply_update(b.cr, "bad id!", true, d, size, 0) == -EINVAL);
                CHECK(cluster_records_apply_update(b.cr, "", true, d, size, 0) == -EINVAL);
                CHECK(peer_count(b.store, "b") == 0);
        }

        /* Re-add on a: a newer version than the tombstone's. */
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.6", 30, "hosts:/h/one", 1, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, 63 * SEC);
        CHECK(resolves(b.store, "web.example.com", DNS_TYPE_A, "peer:a", "10.0.0.6"));

        g_ptr_array_unref(first);
        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

static void test_dead_and_left(void) {
        Node a, b;
        node_init(&a, "a", 100);
        node_init(&b, "b", 200);
        store_subscribe(a.store, on_change, &a);

        CHECK(store_add(a.store, "svc.example.com", DNS_TYPE_A, "10.0.0.7", 30, "docker:1", 0, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, 0);
        CHECK(peer_count(b.store, "a") == 1);

        /* Dead: the records stay for the grace, then go; the table is kept. */
        cluster_records_set_dead_grace(b.cr, 5 * SEC);
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_DEAD, 10 * SEC);
        CHECK(cluster_records_tick(b.cr, 11 * SEC) <= 15 * SEC);
        CHECK(peer_count(b.store, "a") == 1);
        (void) cluster_records_tick(b.cr, 15 * SEC);
        CHECK(peer_count(b.store, "a") == 0);
        CHECK(!cluster_records_origin_served(b.cr, "a"));
        CHECK(cluster_records_count(b.cr, "a") == 1);

        /* An update while it is down is kept, not served. */
        CHECK(store_add(a.store, "svc2.example.com", DNS_TYPE_A, "10.0.0.8", 30, "docker:2", 0, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, 16 * SEC);
        CHECK(peer_count(b.store, "a") == 0);

        /* Alive again: everything held comes back at once. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 20 * SEC);
        CHECK(peer_count(b.store, "a") == 2);

        /* Dead, then refuted within the grace: nothing is withdrawn. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_DEAD, 30 * SEC);
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 32 * SEC);
        (void) cluster_records_tick(b.cr, 40 * SEC);
        CHECK(peer_count(b.store, "a") == 2);

        /* Left: at once. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_LEFT, 50 * SEC);
        CHECK(peer_count(b.store, "a") == 0);
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 60 * SEC);
        CHECK(peer_count(b.store, "a") == 2);

        /* Zero grace: at once too. */
        cluster_records_set_dead_grace(b.cr, 0);
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_DEAD, 70 * SEC);
        CHECK(peer_count(b.store, "a") == 0);

        /* Leaving the cluster takes every peer record out. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 80 * SEC);
        CHECK(peer_count(b.store, "a") == 2);
        cluster_records_withdraw_all(b.cr);
        CHECK(store_count_owner_prefix(b.store, "peer:") == 0);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

static void test_snapshot(void) {
        Node a, inc, full;
        node_init(&a, "a", 1);
        node_init(&inc, "inc", 1);
        node_init(&full, "full", 1);
        store_subscribe(a.store, on_change, &a);

        /* A run of changes on a: incremental delivery to one node, a snapshot
         * at the end to the other: the same records. */
        const char *names[] = { "a.example.com", "b.example.com", "c.example.com", "d.example.com" };
        for (unsigned round = 0; round < 6; round++) {
                for (unsigned i = 0; i < ELEMENTSOF(names); i++) {
                        char ip[32];
                        snprintf(ip, sizeof ip, "10.1.%u.%u", i, round % 3);
                        if ((round + i) % 3 == 0)
                                (void) store_remove(a.store, names[i], DNS_TYPE_A, NULL, "hosts:/h/x");
                        else
                                (void) store_add(a.store, names[i], DNS_TYPE_A, ip, 30 + round, "hosts:/h/x", 1, NULL,
                                                 NULL);
                }
                (void) store_add(a.store, "txt.example.com", DNS_TYPE_TXT, "\"v=1\"", 30 + round, "dbus", 0, NULL,
                                 NULL);
                flush(&a);
                deliver(&a, &inc, round * SEC);
        }
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        trust(&full, "a");
        trust(&inc, "a");
        CHECK(cluster_records_merge_snapshot(full.cr, "a", snap, snap_size, 10 * SEC) > 0);
        g_autofree char *want = dump_owner(a.store, NULL); /* every local source: hosts and dbus */
        g_autofree char *got_inc = dump_owner(inc.store, "peer:a");
        g_autofree char *got_full = dump_owner(full.store, "peer:a");
        CHECK(streq(got_inc, got_full));
        /* ...and both mirror what the origin serves from its own sources. */
        CHECK(streq(want, got_full));
        CHECK(cluster_records_count(inc.cr, "a") == cluster_records_count(full.cr, "a"));
        CHECK(cluster_records_count(full.cr, "a") == cluster_records_count(a.cr, "a"));
        /* Merging the same snapshot again changes nothing; the incremental
         * node gets the snapshot too and changes nothing either. */
        CHECK(cluster_records_merge_snapshot(full.cr, "a", snap, snap_size, 11 * SEC) == 0);
        CHECK(cluster_records_merge_snapshot(inc.cr, "a", snap, snap_size, 11 * SEC) == 0);

        /* A snapshot removes what the origin no longer has, even when the
         * tombstone never arrived (missed gossip). */
        size_t before = peer_count(full.store, "a");
        CHECK(store_remove(a.store, "txt.example.com", DNS_TYPE_TXT, NULL, "dbus") == 1);
        flush(&a); /* not delivered */
        g_free(snap);
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        CHECK(cluster_records_merge_snapshot(full.cr, "a", snap, snap_size, 12 * SEC) == 1);
        CHECK(peer_count(full.store, "a") == before - 1);
        CHECK(!resolves(full.store, "txt.example.com", DNS_TYPE_TXT, "peer:a", NULL));
        /* ...and the late tombstone, or the late old add, are no-ops after it. */
        deliver(&a, &full, 13 * SEC);
        CHECK(peer_count(full.store, "a") == before - 1);

        /* Every truncation of a snapshot is rejected with nothing applied. */
        g_autofree char *state = dump_owner(full.store, "peer:a");
        for (size_t k = 0; k < snap_size; k++)
                CHECK(cluster_records_merge_snapshot(full.cr, "a", snap, k, 14 * SEC) < 0);
        /* A flipped byte in an entry's value too. */
        g_autofree uint8_t *bad = g_memdup2(snap, snap_size);
        bad[snap_size - 3 - CLUSTER_SIGNATURE_SIZE] = 0x01;
        CHECK(cluster_records_merge_snapshot(full.cr, "a", bad, snap_size, 14 * SEC) == -EKEYREJECTED);
        /* A count that the bytes cannot hold. */
        memcpy(bad, snap, snap_size);
        bad[11] = bad[12] = bad[13] = bad[14] = 0xff;
        CHECK(cluster_records_merge_snapshot(full.cr, "a", bad, snap_size, 14 * SEC) == -EKEYREJECTED);
        g_autofree char *state2 = dump_owner(full.store, "peer:a");
        CHECK(streq(state, state2));

        /* The origin restarts with an empty table and a later clock: its first
         * snapshot drops everything it had before. */
        Node a2;
        node_init(&a2, "a", 1000000);
        CHECK(store_add(a2.store, "new.example.com", DNS_TYPE_A, "10.2.0.1", 30, "hosts:/h/y", 1, NULL, NULL) == 1);
        cluster_records_local_mark_all(a2.cr);
        flush(&a2);
        g_free(snap);
        CHECK(cluster_records_encode_local(a2.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        CHECK(cluster_records_merge_snapshot(full.cr, "a", snap, snap_size, 15 * SEC) > 0);
        CHECK(peer_count(full.store, "a") == 1);
        CHECK(resolves(full.store, "new.example.com", DNS_TYPE_A, "peer:a", "10.2.0.1"));
        /* A snapshot that claims to be from us is refused: we did not sign it. */
        CHECK(cluster_records_merge_snapshot(full.cr, "full", snap, snap_size, 16 * SEC) == -EKEYREJECTED);
        CHECK(peer_count(full.store, "full") == 0);

        node_done(&a2);
        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&inc);
        node_done(&full);
}

static void test_two_nodes_one_name(void) {
        /* One name on two nodes: a third serves both addresses. */
        Node a, b, c;
        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        node_init(&c, "c", 1);
        store_subscribe(a.store, on_change, &a);
        store_subscribe(b.store, on_change, &b);
        CHECK(store_add(a.store, "api.example.com", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h", 1, NULL, NULL) == 1);
        CHECK(store_add(b.store, "api.example.com", DNS_TYPE_A, "10.0.0.2", 30, "hosts:/h", 1, NULL, NULL) == 1);
        flush(&a);
        flush(&b);
        deliver(&a, &c, 0);
        deliver(&b, &c, 0);
        const StoreNode *n = store_lookup(c.store, "api.example.com");
        StoreRRSet set;
        CHECK(store_node_rrset(n, DNS_TYPE_A, &set) && set.n == 2);
        /* b dies: only a's address remains. */
        cluster_records_set_dead_grace(c.cr, 0);
        cluster_records_origin_state(c.cr, "b", CLUSTER_ORIGIN_DEAD, SEC);
        CHECK(store_node_rrset(store_lookup(c.store, "api.example.com"), DNS_TYPE_A, &set) && set.n == 1);
        store_unsubscribe(a.store, on_change, &a);
        store_unsubscribe(b.store, on_change, &b);
        node_done(&a);
        node_done(&b);
        node_done(&c);
}

/* An origin at the record limit that replaces every record it holds (a
 * hosts file whose addresses all changed) is still followed, by updates and
 * by snapshots: the tombstones of the old records do not take the new ones'
 * room. */
static void test_limit_full_replace(void) {
        Node a, r;
        char name[64], ip[32];

        node_init(&a, "a", 1);
        node_init(&r, "r", 1);
        cluster_records_set_limits(r.cr, 4, 50);
        store_subscribe(a.store, on_change, &a);
        for (unsigned i = 0; i < 50; i++) {
                snprintf(name, sizeof name, "n%u.example.com", i);
                snprintf(ip, sizeof ip, "10.5.0.%u", i + 1);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/all", i + 1, NULL, NULL) == 1);
        }
        flush(&a);
        deliver(&a, &r, SEC);
        CHECK(peer_count(r.store, "a") == 50);

        /* Every address changes: 50 removals, then 50 additions, as updates
         * (an addition that overtakes the removal it replaces finds no room
         * at the limit: the next snapshot brings it). */
        for (unsigned i = 0; i < 50; i++) {
                snprintf(name, sizeof name, "n%u.example.com", i);
                snprintf(ip, sizeof ip, "10.5.0.%u", i + 1);
                CHECK(store_remove(a.store, name, DNS_TYPE_A, ip, "hosts:/h/all") == 1);
        }
        flush(&a);
        deliver(&a, &r, 2 * SEC);
        for (unsigned i = 0; i < 50; i++) {
                snprintf(name, sizeof name, "n%u.example.com", i);
                snprintf(ip, sizeof ip, "10.5.1.%u", i + 1);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/all", i + 1, NULL, NULL) == 1);
        }
        flush(&a);
        deliver(&a, &r, 2 * SEC); /* each one taken, none refused */
        CHECK(peer_count(r.store, "a") == 50);
        CHECK(resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.5.1.8"));
        CHECK(!resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.5.0.8"));
        CHECK(cluster_records_tombstones(r.cr, "a") == 50);

        /* Twice more, and r learns each from a snapshot alone (a push-pull,
         * or what a burst sends), beside the tombstones it holds. */
        for (unsigned round = 2; round <= 3; round++) {
                for (unsigned i = 0; i < 50; i++) {
                        snprintf(name, sizeof name, "n%u.example.com", i);
                        snprintf(ip, sizeof ip, "10.5.%u.%u", round - 1, i + 1);
                        CHECK(store_remove(a.store, name, DNS_TYPE_A, ip, "hosts:/h/all") == 1);
                        snprintf(ip, sizeof ip, "10.5.%u.%u", round, i + 1);
                        CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/all", i + 1, NULL, NULL) == 1);
                }
                flush(&a);
                g_autofree uint8_t *snap = NULL;
                size_t snap_size = 0;
                CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
                CHECK(cluster_records_merge_snapshot(r.cr, "a", snap, snap_size, (2 + round) * SEC) > 0);
                CHECK(cluster_records_count(r.cr, "a") == 50);
                CHECK(peer_count(r.store, "a") == 50);
                snprintf(ip, sizeof ip, "10.5.%u.8", round);
                CHECK(resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", ip));
        }
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 0);

        /* The limit still holds: a 51st record is held back, and dropped
         * once its time is up with no room made for it. */
        CHECK(store_add(a.store, "extra.example.com", DNS_TYPE_A, "10.5.9.9", 30, "dbus", 0, NULL, NULL) == 1);
        flush(&a);
        {
                gsize size;
                const uint8_t *d = g_bytes_get_data(a.sent->pdata[a.sent->len - 1], &size);
                CHECK(cluster_records_apply_update(r.cr, "a", true, d, size, 6 * SEC) == CLUSTER_APPLY_HELD);
        }
        CHECK(cluster_records_count(r.cr, "a") == 50);
        CHECK(cluster_records_tick(r.cr, 7 * SEC) <= 36 * SEC); /* wakes for it */
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 0);
        (void) cluster_records_tick(r.cr, 36 * SEC);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 1);
        CHECK(cluster_records_count(r.cr, "a") == 50);
        CHECK(!resolves(r.store, "extra.example.com", DNS_TYPE_A, "peer:a", NULL));
        node_done(&a);
        node_done(&r);
}

static void test_limits(void) {
        /* An origin with 200 records, a receiver that takes 50 per origin and 2 origins. */
        Node a, r, b, c;
        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        node_init(&c, "c", 1);
        node_init(&r, "r", 1);
        cluster_records_set_limits(r.cr, 2, 50);
        store_subscribe(a.store, on_change, &a);
        for (unsigned i = 0; i < 200; i++) {
                char name[64], ip[32];
                snprintf(name, sizeof name, "n%u.example.com", i);
                snprintf(ip, sizeof ip, "10.3.%u.%u", i / 256, i % 256);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/many", i + 1, NULL, NULL) == 1);
        }
        flush(&a);
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        trust(&r, "a");
        CHECK(cluster_records_merge_snapshot(r.cr, "a", snap, snap_size, SEC) == 50);
        CHECK(cluster_records_count(r.cr, "a") == 50);
        CHECK(peer_count(r.store, "a") == 50);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 150);
        /* An update for a key not held is refused too; one for a held key still applies. */
        gsize size;
        const uint8_t *d = g_bytes_get_data(a.sent->pdata[a.sent->len - 1], &size);
        int k = cluster_records_apply_update(r.cr, "a", true, d, size, 2 * SEC);
        CHECK(k == -ENOSPC || k == 0);
        CHECK(cluster_records_count(r.cr, "a") == 50);

        /* Origins: two are held; a third is refused until one is withdrawn. */
        store_subscribe(b.store, on_change, &b);
        store_subscribe(c.store, on_change, &c);
        CHECK(store_add(b.store, "b.example.com", DNS_TYPE_A, "10.4.0.2", 30, "dbus", 0, NULL, NULL) == 1);
        CHECK(store_add(c.store, "c.example.com", DNS_TYPE_A, "10.4.0.3", 30, "dbus", 0, NULL, NULL) == 1);
        flush(&b);
        flush(&c);
        deliver(&b, &r, 3 * SEC);
        CHECK(cluster_records_count(r.cr, "b") == 1);
        d = g_bytes_get_data(c.sent->pdata[0], &size);
        trust(&r, "c");
        CHECK(cluster_records_apply_update(r.cr, "c", true, d, size, 3 * SEC) == -ENOSPC);
        CHECK(cluster_records_get_counters(r.cr)->dropped_origins == 1);
        CHECK(!resolves(r.store, "c.example.com", DNS_TYPE_A, "peer:c", NULL));
        cluster_records_origin_state(r.cr, "b", CLUSTER_ORIGIN_LEFT, 4 * SEC);
        CHECK(cluster_records_apply_update(r.cr, "c", true, d, size, 5 * SEC) == 1);
        CHECK(resolves(r.store, "c.example.com", DNS_TYPE_A, "peer:c", "10.4.0.3"));
        CHECK(cluster_records_count(r.cr, "b") == 0); /* b's table made room */

        store_unsubscribe(a.store, on_change, &a);
        store_unsubscribe(b.store, on_change, &b);
        store_unsubscribe(c.store, on_change, &c);
        node_done(&a);
        node_done(&b);
        node_done(&c);
        node_done(&r);
}

/* An update of origin's, built by hand (keys NULL: format 1, unsigned). */
static GBytes *update_of(const char *origin, const ClusterKeys *keys, const char *name, const char *value,
                         uint64_t version, bool deleted) {
        uint8_t buf[1024];
        ClusterEntry e = {
                .name = name,
                .type = DNS_TYPE_A,
                .value = value,
                .source = keys ? "hosts:/forged" : NULL,
                .ttl = 30,
                .version = version,
                .deleted = deleted,
        };
        size_t n = cluster_update_encode(&e, origin, keys, buf, sizeof buf);
        CHECK(n > 0);
        return g_bytes_new(buf, n);
}

static int apply(Node *to, const char *origin, bool direct, GBytes *u, uint64_t now) {
        gsize size;
        const uint8_t *d = g_bytes_get_data(u, &size);
        return cluster_records_apply_update(to->cr, origin, direct, d, size, now);
}

/* Sets n%u.example.com to 10.7.<round>.<i+1> for the first count names, adding (or removing) them. */
static void set_round(Node *n, unsigned round, unsigned count, bool add) {
        char name[64], ip[32];

        for (unsigned i = 0; i < count; i++) {
                snprintf(name, sizeof name, "n%u.example.com", i);
                snprintf(ip, sizeof ip, "10.7.%u.%u", round, i + 1);
                if (add)
                        CHECK(store_add(n->store, name, DNS_TYPE_A, ip, 30, "hosts:/h/all", i + 1, NULL, NULL) == 1);
                else
                        CHECK(store_remove(n->store, name, DNS_TYPE_A, ip, "hosts:/h/all") == 1);
        }
}

/* An origin at the limit replaces its records as a hosts reload does, its
 * additions first: on the peer they overtake the removals that make room.
 * They wait for those removals (or for the snapshot a burst sends), so the
 * peer ends with every new record and drops nothing. */
static void test_limit_held(void) {
        Node a, r;

        node_init(&a, "a", 1);
        node_init(&r, "r", 1);
        cluster_records_set_limits(r.cr, 4, 50);
        store_subscribe(a.store, on_change, &a);
        set_round(&a, 0, 50, true);
        flush(&a);
        deliver(&a, &r, SEC);
        CHECK(peer_count(r.store, "a") == 50);

        /* Additions, then removals, as updates. */
        set_round(&a, 1, 50, true);
        flush(&a);
        deliver(&a, &r, 2 * SEC);
        CHECK(peer_count(r.store, "a") == 50); /* the old ones still */
        CHECK(resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.7.0.8"));
        set_round(&a, 0, 50, false);
        flush(&a);
        deliver(&a, &r, 3 * SEC);
        CHECK(cluster_records_count(r.cr, "a") == 50);
        CHECK(peer_count(r.store, "a") == 50);
        CHECK(resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.7.1.8"));
        CHECK(!resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.7.0.8"));
        (void) cluster_records_tick(r.cr, 60 * SEC);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 0);

        /* Additions as updates, the removals only in a snapshot (a burst). */
        set_round(&a, 2, 50, true);
        flush(&a);
        deliver(&a, &r, 61 * SEC);
        set_round(&a, 1, 50, false);
        flush(&a);
        {
                g_autofree uint8_t *snap = NULL;
                size_t snap_size = 0;
                CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
                CHECK(cluster_records_merge_snapshot(r.cr, "a", snap, snap_size, 62 * SEC) > 0);
        }
        CHECK(peer_count(r.store, "a") == 50);
        CHECK(resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.7.2.8"));
        CHECK(!resolves(r.store, "n7.example.com", DNS_TYPE_A, "peer:a", "10.7.1.8"));
        (void) cluster_records_tick(r.cr, 120 * SEC);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 0);

        /* What is held is bounded over all origins: beyond that, dropped at once. */
        const ClusterKeys *keys = key_pair("a");
        uint64_t v = CLUSTER_VERSION(1000, 0);
        unsigned held = 0;
        int k;
        do {
                char name[64];
                snprintf(name, sizeof name, "more%u.example.com", held);
                g_autoptr(GBytes) u = update_of("a", keys, name, "10.7.9.9", ++v, false);
                k = apply(&r, "a", true, u, 121 * SEC);
                if (k == CLUSTER_APPLY_HELD)
                        held++;
        } while (k == CLUSTER_APPLY_HELD && held <= 100000);
        CHECK(k == -ENOSPC);
        CHECK(held >= 1000 && held < 100000);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 1);
        CHECK(cluster_records_count(r.cr, "a") == 50);
        (void) cluster_records_tick(r.cr, 200 * SEC);
        CHECK(cluster_records_get_counters(r.cr)->dropped_records == 1 + held);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&r);
}

static void test_authenticity(void) {
        Node a, b;
        node_init(&a, "a", CLUSTER_VERSION(100, 0));
        node_init(&b, "b", CLUSTER_VERSION(200, 0));
        store_subscribe(a.store, on_change, &a);
        CHECK(store_add(a.store, "a.example.com", DNS_TYPE_A, "10.5.0.1", 30, "hosts:/h/a", 1, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, SEC);
        CHECK(resolves(b.store, "a.example.com", DNS_TYPE_A, "peer:a", "10.5.0.1"));
        uint64_t va = cluster_records_local_version(a.cr);

        /* A forger with a key of its own, or none, cannot speak for a: not to
         * add, not to delete, not with the highest version there is. */
        ClusterKeys *forger = key_pair("forger");
        g_autoptr(GBytes) add = update_of("a", forger, "evil.example.com", "10.6.6.6", va + 1, false);
        g_autoptr(GBytes) del = update_of("a", forger, "a.example.com", "10.5.0.1", UINT64_MAX, true);
        g_autoptr(GBytes) add1 = update_of("a", NULL, "evil.example.com", "10.6.6.6", va + 1, false);
        g_autoptr(GBytes) del1 = update_of("a", NULL, "a.example.com", "10.5.0.1", UINT64_MAX, true);
        CHECK(apply(&b, "a", true, add, 2 * SEC) == -EKEYREJECTED);
        CHECK(apply(&b, "a", true, del, 2 * SEC) == -EKEYREJECTED);
        CHECK(apply(&b, "a", true, add1, 2 * SEC) == -EPERM);
        CHECK(apply(&b, "a", true, del1, 2 * SEC) == -EPERM);
        cluster_records_set_accept_unsigned(b.cr, true); /* only for nodes whose key we lack */
        CHECK(apply(&b, "a", true, del1, 2 * SEC) == -EPERM);
        CHECK(!resolves(b.store, "evil.example.com", DNS_TYPE_A, NULL, NULL));
        CHECK(resolves(b.store, "a.example.com", DNS_TYPE_A, "peer:a", "10.5.0.1"));
        /* ...so a's later changes still get through. */
        CHECK(store_add(a.store, "a2.example.com", DNS_TYPE_A, "10.5.0.2", 30, "hosts:/h/a", 2, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, 3 * SEC);
        CHECK(resolves(b.store, "a2.example.com", DNS_TYPE_A, "peer:a", "10.5.0.2"));

        /* An older node (no key known for it) may send unsigned updates, but
         * only itself, not through a relay, and only where that is allowed. */
        g_autoptr(GBytes) old = update_of("old", NULL, "old.example.com", "10.7.0.1", 5, false);
        CHECK(apply(&b, "old", false, old, 4 * SEC) == -EPERM);
        CHECK(apply(&b, "old", true, old, 4 * SEC) == 1);
        CHECK(resolves(b.store, "old.example.com", DNS_TYPE_A, "peer:old", "10.7.0.1"));
        cluster_records_set_accept_unsigned(b.cr, false);
        g_autoptr(GBytes) old2 = update_of("old", NULL, "old2.example.com", "10.7.0.2", 6, false);
        CHECK(apply(&b, "old", true, old2, 4 * SEC) == -EPERM);

        /* Relayed updates: only for an origin we hold a table of, and only a
         * bounded step ahead of what it said; further, its own word decides. */
        trust(&b, "c");
        ClusterKeys *ck = key_pair("c");
        g_autoptr(GBytes) c1 = update_of("c", ck, "c1.example.com", "10.8.0.1", CLUSTER_VERSION(50, 10), false);
        CHECK(apply(&b, "c", false, c1, 5 * SEC) == -ERANGE); /* nothing from c yet */
        CHECK(apply(&b, "c", true, c1, 5 * SEC) == 1);
        g_autoptr(GBytes) c2 =
                update_of("c", ck, "c2.example.com", "10.8.0.2", CLUSTER_VERSION(50, 10 + CLUSTER_SEQ_STEP), false);
        g_autoptr(GBytes) c3 =
                update_of("c", ck, "c3.example.com", "10.8.0.3", CLUSTER_VERSION(50, 11 + 2 * CLUSTER_SEQ_STEP), false);
        g_autoptr(GBytes) c4 = update_of("c", ck, "c4.example.com", "10.8.0.4", CLUSTER_VERSION(51, 3), false);
        g_autoptr(GBytes) c5 = update_of("c", ck, "c5.example.com", "10.8.0.5", CLUSTER_VERSION(53, 1), false);
        CHECK(apply(&b, "c", false, c2, 5 * SEC) == 1);
        CHECK(apply(&b, "c", false, c3, 5 * SEC) == -ERANGE);
        CHECK(apply(&b, "c", false, c4, 5 * SEC) == 1); /* the next epoch: a restart, a refutation */
        CHECK(apply(&b, "c", false, c5, 5 * SEC) == -ERANGE);
        CHECK(apply(&b, "c", true, c5, 5 * SEC) == 1); /* from c itself */
        CHECK(resolves(b.store, "c5.example.com", DNS_TYPE_A, "peer:c", NULL));
        /* c's snapshot at an older version drops what lies beyond a step of it
         * (c never issued it) and what it no longer lists. */
        Node c;
        node_init(&c, "c", CLUSTER_VERSION(51, 10));
        store_subscribe(c.store, on_change, &c);
        CHECK(store_add(c.store, "c4.example.com", DNS_TYPE_A, "10.8.0.4", 30, "dbus", 0, NULL, NULL) == 1);
        flush(&c);
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(c.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        CHECK(cluster_records_merge_snapshot(b.cr, "c", snap, snap_size, 6 * SEC) > 0);
        CHECK(!resolves(b.store, "c5.example.com", DNS_TYPE_A, "peer:c", NULL));
        CHECK(!resolves(b.store, "c1.example.com", DNS_TYPE_A, "peer:c", NULL));
        CHECK(resolves(b.store, "c4.example.com", DNS_TYPE_A, "peer:c", "10.8.0.4"));
        /* And after it, relays are held to c's word again. */
        CHECK(apply(&b, "c", false, c5, 7 * SEC) <= 0);

        store_unsubscribe(c.store, on_change, &c);
        store_unsubscribe(a.store, on_change, &a);
        node_done(&c);
        node_done(&a);
        node_done(&b);
}

static void test_refutation(void) {
        Node a, b;
        node_init(&a, "a", CLUSTER_VERSION(100, 0));
        node_init(&b, "b", CLUSTER_VERSION(200, 0));
        store_subscribe(a.store, on_change, &a);
        CHECK(store_add(a.store, "mine.example.com", DNS_TYPE_A, "10.5.0.1", 30, "hosts:/h/a", 1, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, SEC);

        /* a in a previous life (same key, later epoch: say the clock went back
         * and the state was restored) said things b still holds. */
        g_autoptr(GBytes) past =
                update_of("a", key_pair("a"), "mine.example.com", "10.5.0.1", CLUSTER_VERSION(150, 1), true);
        g_autoptr(GBytes) past2 =
                update_of("a", key_pair("a"), "gone.example.com", "10.5.0.9", CLUSTER_VERSION(150, 2), false);
        CHECK(apply(&b, "a", true, past, 2 * SEC) == 1);
        CHECK(apply(&b, "a", true, past2, 2 * SEC) == 1);
        CHECK(!resolves(b.store, "mine.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(resolves(b.store, "gone.example.com", DNS_TYPE_A, "peer:a", NULL));

        /* a hears of them (relayed back): it refutes with a newer epoch. */
        CHECK(apply(&a, "a", false, past, 3 * SEC) == CLUSTER_APPLY_REFUTED);
        CHECK(cluster_version_epoch(cluster_records_local_version(a.cr)) == 151);
        CHECK(cluster_records_get_counters(a.cr)->refutations == 1);
        CHECK(flush(&a) == 1); /* its record again, at the new epoch */
        deliver(&a, &b, 4 * SEC);
        CHECK(resolves(b.store, "mine.example.com", DNS_TYPE_A, "peer:a", "10.5.0.1"));
        /* The rest of that past life (below the new epoch now) is settled by
         * a's snapshot, which the cluster sends to everyone after a refutation. */
        CHECK(apply(&a, "a", false, past2, 3 * SEC) == 0);
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        CHECK(cluster_records_merge_snapshot(b.cr, "a", snap, snap_size, 4 * SEC) >= 1);
        CHECK(!resolves(b.store, "gone.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(resolves(b.store, "mine.example.com", DNS_TYPE_A, "peer:a", "10.5.0.1"));
        /* A claim about a record a never had is retracted. */
        g_autoptr(GBytes) other = update_of("a", key_pair("a"), "other.example.com", "10.5.0.8",
                                            cluster_records_local_version(a.cr) + 5, false);
        CHECK(apply(&b, "a", true, other, 5 * SEC) == 1);
        CHECK(apply(&a, "a", false, other, 5 * SEC) == CLUSTER_APPLY_REFUTED);
        CHECK(flush(&a) == 1);
        deliver(&a, &b, 5 * SEC);
        CHECK(!resolves(b.store, "other.example.com", DNS_TYPE_A, "peer:a", NULL));
        /* Its own updates, relayed back, are not refuted. */
        CHECK(apply(&a, "a", false, a.sent->pdata[0], 5 * SEC) == 0);

        /* An unsigned claim in a's name at the highest version: refuted, but
         * only one epoch past a's own, so nobody can push a to the end of the range. */
        uint32_t before = cluster_version_epoch(cluster_records_local_version(a.cr));
        g_autoptr(GBytes) max = update_of("a", NULL, "mine.example.com", "10.5.0.1", UINT64_MAX, true);
        CHECK(apply(&a, "a", false, max, 10 * SEC) == CLUSTER_APPLY_REFUTED);
        CHECK(cluster_version_epoch(cluster_records_local_version(a.cr)) == before + 2);
        /* ...and not more than once a second. */
        CHECK(apply(&a, "a", false, max, 10 * SEC + 1) == 0);
        CHECK(cluster_version_epoch(cluster_records_local_version(a.cr)) == before + 2);
        /* A signed claim that is not a's own signature: refused, nothing moves. */
        g_autoptr(GBytes) forged = update_of("a", key_pair("forger"), "mine.example.com", "10.5.0.1", UINT64_MAX, true);
        CHECK(apply(&a, "a", false, forged, 20 * SEC) == -EKEYREJECTED);
        CHECK(cluster_version_epoch(cluster_records_local_version(a.cr)) == before + 2);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

static void test_batched_merge(void) {
        Node a, b;
        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        store_subscribe(a.store, on_change, &a);
        for (unsigned i = 0; i < 5000; i++) {
                char name[64], ip[32];
                snprintf(name, sizeof name, "m%u.example.com", i);
                snprintf(ip, sizeof ip, "10.9.%u.%u", i / 256, i % 256);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/m", i + 1, NULL, NULL) == 1);
        }
        flush(&a);
        trust(&b, "a");
        /* b held a record a no longer has: the merge's sweep removes it. */
        g_autoptr(GBytes) stale = update_of("a", key_pair("a"), "stale.example.com", "10.9.99.1", 2, false);
        CHECK(apply(&b, "a", true, stale, SEC) == 1);

        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        ClusterSnapshot *cs = NULL;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        CHECK(cluster_snapshot_decode(snap, snap_size, "a", cluster_keys_public(key_pair("a")), false, &cs) == 0);
        CHECK(cluster_snapshot_count(cs) == 5000);
        CHECK(cluster_records_merge_queue(b.cr, cs, 2 * SEC) == 0);
        unsigned steps = 0, changes = 0;
        bool news = false;
        while (cluster_records_merge_step(b.cr, 500, 2 * SEC, &changes)) {
                steps++;
                /* Between batches the store holds part of a's records, never more. */
                CHECK(peer_count(b.store, "a") <= 5002);
                if (steps == 3) {
                        /* News from a while the merge runs stays (a's burst is over). */
                        a.now = 2 * SEC;
                        CHECK(store_add(a.store, "late.example.com", DNS_TYPE_A, "10.9.200.1", 30, "dbus", 0, NULL,
                                        NULL) == 1);
                        flush(&a);
                        deliver(&a, &b, 2 * SEC);
                        news = true;
                }
        }
        CHECK(news && steps >= 10);
        CHECK(changes >= 5000);
        CHECK(peer_count(b.store, "a") == 5001);
        CHECK(resolves(b.store, "late.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(!resolves(b.store, "stale.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(resolves(b.store, "m4999.example.com", DNS_TYPE_A, "peer:a", "10.9.19.135"));

        /* A snapshot signed with another key, or cut short, is refused whole. */
        CHECK(cluster_snapshot_decode(snap, snap_size, "a", cluster_keys_public(key_pair("b")), false, &cs) ==
              -EKEYREJECTED);
        CHECK(cluster_snapshot_decode(snap, snap_size, "a", NULL, true, &cs) == -EKEYREJECTED);
        CHECK(cluster_snapshot_decode(snap, snap_size - 1, "a", cluster_keys_public(key_pair("a")), false, &cs) < 0);
        /* An unsigned one only where allowed. */
        g_free(snap);
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT_V1, &snap, &snap_size) == 0);
        CHECK(cluster_snapshot_decode(snap, snap_size, "a", NULL, false, &cs) == -EPERM);
        CHECK(cluster_snapshot_decode(snap, snap_size, "a", NULL, true, &cs) == 0);
        CHECK(cluster_snapshot_count(cs) == 5001);
        cluster_snapshot_free(cs);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

static void test_burst(void) {
        Node a, b;
        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        store_subscribe(a.store, on_change, &a);
        for (unsigned i = 0; i < CLUSTER_GOSSIP_BURST_MAX + 500; i++) {
                char name[64], ip[32];
                snprintf(name, sizeof name, "burst%u.example.com", i);
                snprintf(ip, sizeof ip, "10.7.%u.%u", i / 256, i % 256);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/burst", i + 1, NULL, NULL) == 1);
        }
        /* A burst goes in slices, and is not gossiped record by record. */
        bool more = true;
        unsigned slices = 0;
        g_ptr_array_set_size(a.sent, 0);
        while (more) {
                _cleanup_(cluster_updates_freep) ClusterUpdates *u = cluster_updates_new("a");
                (void) cluster_records_local_flush_some(a.cr, 100, a.now, u, &more);
                CHECK(cluster_updates_count(u) == 0);
                slices++;
                if (more)
                        CHECK(!cluster_records_take_resync(a.cr));
        }
        CHECK(slices == 15);
        CHECK(a.sent->len == 0);
        CHECK(cluster_records_count(a.cr, "a") == CLUSTER_GOSSIP_BURST_MAX + 500);
        /* The burst ends a window after its last change: then the snapshot goes. */
        CHECK(!cluster_records_take_resync(a.cr));
        CHECK(cluster_records_burst_end(a.cr) == CLUSTER_GOSSIP_BURST_USEC);
        a.now = CLUSTER_GOSSIP_BURST_USEC;
        CHECK(flush(&a) == 0);
        CHECK(cluster_records_take_resync(a.cr));
        CHECK(!cluster_records_take_resync(a.cr));
        CHECK(cluster_records_burst_end(a.cr) == UINT64_MAX);
        /* Its snapshot carries it all. */
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        trust(&b, "a");
        CHECK(cluster_records_merge_snapshot(b.cr, "a", snap, snap_size, SEC) == (int) CLUSTER_GOSSIP_BURST_MAX + 500);
        /* A small change after it is gossiped as before. */
        CHECK(store_add(a.store, "one.example.com", DNS_TYPE_A, "10.7.99.1", 30, "dbus", 0, NULL, NULL) == 1);
        CHECK(flush(&a) == 1 && a.sent->len == 1);
        CHECK(!cluster_records_take_resync(a.cr));

        /* A burst that reaches the store in batches, each flushed on its own
         * (as a large hosts reload does): the first changes of the window are
         * gossiped, the rest not, and the snapshot follows. */
        unsigned gossiped = 0;
        a.now = 10 * SEC;
        for (unsigned i = 0; i < CLUSTER_GOSSIP_BURST_MAX + 500; i++) {
                char name[64];
                snprintf(name, sizeof name, "burst%u.example.com", i);
                CHECK(store_remove(a.store, name, DNS_TYPE_A, NULL, "hosts:/h/burst") == 1);
                if (i % 100 == 99) {
                        a.now += 10 * USEC_PER_MSEC;
                        CHECK(flush(&a) == 100);
                        gossiped += a.sent->len;
                        CHECK(!cluster_records_take_resync(a.cr));
                }
        }
        CHECK(gossiped == CLUSTER_GOSSIP_BURST_MAX);
        CHECK(cluster_records_burst_end(a.cr) == a.now + CLUSTER_GOSSIP_BURST_USEC);
        a.now += CLUSTER_GOSSIP_BURST_USEC;
        CHECK(flush(&a) == 0 && cluster_records_take_resync(a.cr));
        CHECK(cluster_records_count(a.cr, "a") == 1);
        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

/* Batches of local updates signed on other threads, as the daemon's signer
 * does, while the table goes on changing; published in the order they were
 * made, they leave a peer with the last state of each record. */
typedef struct Emitted {
        GPtrArray *data; /* GBytes */
        GPtrArray *keys; /* char* */
} Emitted;

static void on_emit_keyed(const char *key, const uint8_t *data, size_t size, void *userdata) {
        Emitted *em = userdata;
        g_ptr_array_add(em->data, g_bytes_new(data, size));
        g_ptr_array_add(em->keys, g_strdup(key));
}

static void *sign_thread(void *userdata) {
        cluster_updates_sign(userdata, key_pair("a"));
        return NULL;
}

static ClusterUpdates *flush_batch(Node *n) {
        ClusterUpdates *u = cluster_updates_new(n->id);
        bool more = true;
        while (more)
                (void) cluster_records_local_flush_some(n->cr, 2, n->now, u, &more);
        return u;
}

static void test_signed_apart(void) {
        Node a, b;
        ClusterUpdates *batch[3];
        pthread_t thread[3];
        Emitted em = { g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref),
                       g_ptr_array_new_with_free_func(g_free) };

        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        (void) key_pair("a"); /* made here, read by the threads */
        store_subscribe(a.store, on_change, &a);

        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/x", 1, NULL, NULL) == 1);
        CHECK(store_add(a.store, "db.example.com", DNS_TYPE_A, "10.0.1.1", 30, "hosts:/h/x", 2, NULL, NULL) == 1);
        batch[0] = flush_batch(&a);
        CHECK(cluster_updates_count(batch[0]) == 2);
        CHECK(pthread_create(&thread[0], NULL, sign_thread, batch[0]) == 0);

        /* While it is signed: in one flush, web changes, goes, and comes back
         * with a third value; db goes. */
        CHECK(store_remove(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.1", "hosts:/h/x") == 1);
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.2", 30, "hosts:/h/x", 1, NULL, NULL) == 1);
        CHECK(store_remove(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.2", "hosts:/h/x") == 1);
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.3", 30, "hosts:/h/x", 1, NULL, NULL) == 1);
        CHECK(store_remove(a.store, "db.example.com", DNS_TYPE_A, "10.0.1.1", "hosts:/h/x") == 1);
        batch[1] = flush_batch(&a);
        /* web 10.0.0.1 and db removed, web 10.0.0.3 added; 10.0.0.2 never
         * went out, so it needs no update. */
        CHECK(cluster_updates_count(batch[1]) == 3);
        CHECK(pthread_create(&thread[1], NULL, sign_thread, batch[1]) == 0);

        /* And again: web's TTL, and db back. */
        CHECK(store_add(a.store, "web.example.com", DNS_TYPE_A, "10.0.0.3", 60, "hosts:/h/x", 1, NULL, NULL) == 0);
        CHECK(store_add(a.store, "db.example.com", DNS_TYPE_A, "10.0.1.1", 30, "hosts:/h/x", 2, NULL, NULL) == 1);
        batch[2] = flush_batch(&a);
        CHECK(cluster_updates_count(batch[2]) == 2);
        CHECK(pthread_create(&thread[2], NULL, sign_thread, batch[2]) == 0);
        /* The table moves on while the last one is signed. */
        CHECK(store_remove(a.store, "db.example.com", DNS_TYPE_A, "10.0.1.1", "hosts:/h/x") == 1);

        for (unsigned i = 0; i < 3; i++) {
                CHECK(pthread_join(thread[i], NULL) == 0);
                cluster_updates_emit(batch[i], on_emit_keyed, &em);
                batch[i] = cluster_updates_free(batch[i]);
        }
        CHECK(em.data->len == 7);

        /* Every update signed by a, versions rising in publication order; the
         * broadcast key is one per record. */
        uint64_t last = 0;
        const char *key_web3 = NULL;
        for (guint i = 0; i < em.data->len; i++) {
                char name[256], value[CLUSTER_VALUE_MAX + 1], source[CLUSTER_SOURCE_MAX + 1];
                ClusterEntry d;
                gsize size;
                const uint8_t *p = g_bytes_get_data(em.data->pdata[i], &size);
                CHECK(cluster_update_decode(p, size, "a", cluster_keys_public(key_pair("b")), &d, name, value, source,
                                            NULL) == -EKEYREJECTED);
                CHECK(cluster_update_decode(p, size, "a", cluster_keys_public(key_pair("a")), &d, name, value, source,
                                            NULL) == 0);
                CHECK(d.version > last);
                last = d.version;
                if (streq(value, "10.0.0.3")) {
                        CHECK(!key_web3 || streq(key_web3, em.keys->pdata[i]));
                        key_web3 = em.keys->pdata[i];
                }
        }
        CHECK(key_web3);

        /* In that order, a peer ends with the last state of each. */
        trust(&b, "a");
        for (guint i = 0; i < em.data->len; i++) {
                gsize size;
                const uint8_t *p = g_bytes_get_data(em.data->pdata[i], &size);
                CHECK(cluster_records_apply_update(b.cr, "a", true, p, size, SEC) == 1);
        }
        g_autofree char *got = dump_owner(b.store, "peer:a");
        CHECK(streq(got, "db.example.com 1 10.0.1.1 30\nweb.example.com 1 10.0.0.3 60"));
        /* The removal flushed last follows in the next batch. */
        g_ptr_array_set_size(a.sent, 0);
        CHECK(flush(&a) == 1);
        deliver(&a, &b, SEC);
        g_free(got);
        got = dump_owner(b.store, "peer:a");
        CHECK(streq(got, "web.example.com 1 10.0.0.3 60"));

        g_ptr_array_free(em.data, TRUE);
        g_ptr_array_free(em.keys, TRUE);
        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

static void test_sliced_mirror(void) {
        /* A table of 1,500 entries leaves and enters the store in slices. */
        Node a, b;
        node_init(&a, "a", 1);
        node_init(&b, "b", 1);
        store_subscribe(a.store, on_change, &a);
        for (unsigned i = 0; i < 1500; i++) {
                char name[64], ip[32];
                snprintf(name, sizeof name, "big%u.example.com", i);
                snprintf(ip, sizeof ip, "10.6.%u.%u", i / 256, i % 256);
                CHECK(store_add(a.store, name, DNS_TYPE_A, ip, 30, "hosts:/h/big", i + 1, NULL, NULL) == 1);
        }
        flush(&a);
        g_autofree uint8_t *snap = NULL;
        size_t snap_size = 0;
        CHECK(cluster_records_encode_local(a.cr, CLUSTER_RECORDS_FORMAT, &snap, &snap_size) == 0);
        trust(&b, "a");
        CHECK(cluster_records_merge_snapshot(b.cr, "a", snap, snap_size, SEC) == 1500);
        CHECK(peer_count(b.store, "a") == 1500 && !cluster_records_pending(b.cr));

        /* It leaves: nothing at once, then a slice at a time. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_LEFT, 2 * SEC);
        CHECK(!cluster_records_origin_served(b.cr, "a"));
        CHECK(cluster_records_pending(b.cr));
        CHECK(peer_count(b.store, "a") == 1500);
        unsigned steps = 0;
        while (cluster_records_merge_step(b.cr, 200, 2 * SEC, NULL))
                steps++;
        CHECK(steps >= 7);
        CHECK(peer_count(b.store, "a") == 0);

        /* It comes back, but leaves again half way: the store ends as the state says. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 3 * SEC);
        CHECK(cluster_records_merge_step(b.cr, 700, 3 * SEC, NULL));
        size_t half = peer_count(b.store, "a");
        CHECK(half > 0 && half < 1500);
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_LEFT, 4 * SEC);
        CHECK(cluster_records_merge_step(b.cr, 300, 4 * SEC, NULL));
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_ALIVE, 5 * SEC);
        /* A change while it goes back in goes in too (long after a's burst). */
        a.now = 5 * SEC;
        CHECK(store_remove(a.store, "big7.example.com", DNS_TYPE_A, NULL, "hosts:/h/big") == 1);
        CHECK(store_add(a.store, "late.example.com", DNS_TYPE_A, "10.6.99.1", 30, "dbus", 0, NULL, NULL) == 1);
        flush(&a);
        deliver(&a, &b, 5 * SEC);
        while (cluster_records_merge_step(b.cr, 100, 5 * SEC, NULL))
                ;
        CHECK(peer_count(b.store, "a") == 1500);
        CHECK(cluster_records_count(b.cr, "a") == 1500);
        CHECK(!resolves(b.store, "big7.example.com", DNS_TYPE_A, "peer:a", NULL));
        CHECK(resolves(b.store, "late.example.com", DNS_TYPE_A, "peer:a", "10.6.99.1"));
        g_autofree char *want = dump_owner(a.store, NULL);
        g_autofree char *got = dump_owner(b.store, "peer:a");
        CHECK(streq(want, got));

        /* Leaving the cluster takes it all out at once. */
        cluster_records_origin_state(b.cr, "a", CLUSTER_ORIGIN_LEFT, 6 * SEC);
        cluster_records_withdraw_all(b.cr);
        CHECK(peer_count(b.store, "a") == 0);

        store_unsubscribe(a.store, on_change, &a);
        node_done(&a);
        node_done(&b);
}

int main(void) {
        test_signed_apart();
        test_sliced_mirror();
        test_burst();
        test_authenticity();
        test_refutation();
        test_batched_merge();
        test_limits();
        test_limit_full_replace();
        test_limit_held();
        test_wire();
        test_local_versions();
        test_replication();
        test_dead_and_left();
        test_snapshot();
        test_two_nodes_one_name();
        printf("test-cluster-records: all checks passed\n");
        return 0;
}
