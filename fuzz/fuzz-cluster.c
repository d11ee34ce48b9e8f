/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what a cluster node accepts from the network, after
 * decryption (an authenticated but hostile or buggy peer): SWIM packets,
 * SWIM push-pull state, record updates and snapshots (signed or not), and
 * push-pull payloads (hello, push, reply) with the snapshot they carry,
 * merged in small batches as the daemon does. The first byte picks the
 * decoder; the rest is the message. A fuzzer cannot forge a signature, so
 * some cases sign the input with the origin's key first: then everything
 * behind the signature check is reached too. Besides the sanitizers it checks
 * the promises: a rejected message changes nothing (the store's version
 * stays), an accepted snapshot leaves the store holding exactly the origin's
 * live entries, and the core still produces valid packets after. */

#include <assert.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "cluster-frame.h"
#include "cluster-keys.h"
#include "cluster-records.h"
#include "log.h"
#include "store.h"
#include "swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ClusterKeys *self_keys, *origin_keys;

static void drain(Swim *s) {
        uint8_t buf[SWIM_PACKET_MAX];
        SwimAddr to;
        SwimEvent ev;
        size_t n;

        /* What the core sends must be what it accepts. */
        Swim *peer = NULL;
        SwimConfig cfg;
        SwimAddr pa = { .family = 4, .ip = { 10, 0, 0, 9 }, .port = 8890 };
        swim_config_lan(&cfg);
        assert(swim_new(&peer, &cfg, "peer", &pa, 7, 0) == 0);
        while ((n = swim_pop_packet(s, &to, buf)) > 0) {
                assert(n <= SWIM_PACKET_MAX);
                assert(swim_receive(peer, &pa, buf, n, 1) == 0);
        }
        while (swim_pop_event(s, &ev))
                assert(ev.size <= SWIM_USER_MAX);
        swim_free(peer);
}

/* The input as the bytes before a signature, signed by the origin. */
static uint8_t *signed_copy(const char *context, const uint8_t *data, size_t size, size_t *ret_size) {
        uint8_t digest[CLUSTER_DIGEST_SIZE];
        uint8_t *out = g_malloc(size + CLUSTER_SIGNATURE_SIZE);

        memcpy(out, data, size);
        cluster_digest(context, "origin", data, size, digest);
        cluster_keys_sign(origin_keys, digest, sizeof digest, out + size);
        *ret_size = size + CLUSTER_SIGNATURE_SIZE;
        return out;
}

/* Merges a snapshot in batches of a few entries, then checks the store. */
static void merge(ClusterRecords *cr, Store *store, const uint8_t *data, size_t size, uint64_t before) {
        ClusterSnapshot *snap = NULL;
        int r = cluster_snapshot_decode(data, size, "origin", cluster_keys_public(origin_keys), true, &snap);

        if (r < 0) {
                assert(store_version(store) == before);
                return;
        }
        assert(cluster_records_merge_queue(cr, snap, 1000) == 0);
        while (cluster_records_merge_step(cr, 7, 1000, NULL))
                ;
        assert(store_count_owner_prefix(store, "peer:origin") == cluster_records_count(cr, "origin"));
        /* Withdraw and restore keep the store and the table in step. */
        cluster_records_origin_state(cr, "origin", CLUSTER_ORIGIN_LEFT, 2000);
        assert(store_count_owner_prefix(store, "peer:") == 0);
        cluster_records_origin_state(cr, "origin", CLUSTER_ORIGIN_ALIVE, 3000);
        assert(store_count_owner_prefix(store, "peer:origin") == cluster_records_count(cr, "origin"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Store *store = NULL;
        ClusterRecords *cr = NULL;
        Swim *swim = NULL;
        SwimConfig cfg;
        SwimAddr self = { .family = 4, .ip = { 10, 0, 0, 1 }, .port = 8890 };
        SwimAddr from = { .family = 4, .ip = { 10, 0, 0, 2 }, .port = 8890 };
        g_autofree uint8_t *copy = NULL;
        size_t n;
        uint64_t before;
        int r;

        if (!self_keys) {
                g_autofree char *error = NULL;
                log_set_max_level(LOG_CRIT);
                assert(cluster_keys_new(&self_keys, NULL, &error) == 0);
                assert(cluster_keys_new(&origin_keys, NULL, &error) == 0);
                assert(cluster_keys_present(self_keys, "origin", cluster_keys_public(origin_keys)) ==
                       CLUSTER_KEY_PINNED);
        }
        if (size < 1)
                return 0;

        assert(store_new(&store) == 0);
        assert(cluster_records_new(&cr, store, "self", self_keys, CLUSTER_VERSION(5, 0)) == 0);
        cluster_records_set_limits(cr, 4, 64);
        swim_config_lan(&cfg);
        assert(swim_new(&swim, &cfg, "self", &self, 1, 0) == 0);
        before = store_version(store);

        switch (data[0] % 8) {
        case 0:
                (void) swim_receive(swim, &from, data + 1, size - 1, 1000);
                swim_tick(swim, 2 * USEC_PER_SEC);
                drain(swim);
                break;
        case 1:
                r = swim_merge_state(swim, data + 1, size - 1, 1000);
                swim_tick(swim, 2 * USEC_PER_SEC);
                drain(swim);
                (void) r;
                break;
        case 2:
        case 3:
                /* An update as it came (unsigned ones allowed), or signed by the origin. */
                cluster_records_set_accept_unsigned(cr, true);
                if (data[0] % 8 == 3) {
                        copy = signed_copy("joyride update v2", data + 1, size - 1, &n);
                        r = cluster_records_apply_update(cr, "origin", (data[0] >> 3) & 1, copy, n, 1000);
                } else
                        r = cluster_records_apply_update(cr, "origin", (data[0] >> 3) & 1, data + 1, size - 1, 1000);
                if (r <= 0)
                        assert(store_version(store) == before);
                else
                        assert(store_count_owner_prefix(store, "peer:origin") <= 1);
                /* In our own name: refuted or refused, never applied. */
                r = cluster_records_apply_update(cr, "self", false, data + 1, size - 1, 2000);
                assert(r <= 0 || r == CLUSTER_APPLY_REFUTED);
                assert(store_count_owner_prefix(store, "peer:self") == 0);
                break;
        case 4:
                merge(cr, store, data + 1, size - 1, before);
                break;
        case 5:
                copy = signed_copy("joyride snapshot v2", data + 1, size - 1, &n);
                merge(cr, store, copy, n, before);
                break;
        case 6: {
                /* An update decoded and re-encoded is byte-identical (but for
                 * the signature, which only the origin's key makes). */
                char name[256], value[CLUSTER_VALUE_MAX + 1], source[CLUSTER_SOURCE_MAX + 1];
                uint8_t again[2 * CLUSTER_VALUE_MAX], format = 0;
                ClusterEntry e;
                if (cluster_update_decode(data + 1, size - 1, "origin", NULL, &e, name, value, source, &format) == 0) {
                        n = cluster_update_encode(&e, "origin", format == CLUSTER_RECORDS_FORMAT ? origin_keys : NULL,
                                                  again, sizeof again);
                        size_t body = format == CLUSTER_RECORDS_FORMAT ? n - CLUSTER_SIGNATURE_SIZE : n;
                        assert(n == size - 1 && memcmp(again, data + 1, body) == 0);
                        assert(cluster_update_decode(again, n, "origin", cluster_keys_public(origin_keys), &e, name,
                                                     value, source, NULL) == 0);
                }
                break;
        }
        case 7: {
                /* A push-pull payload: a hello, or a push or reply with the
                 * member list and snapshot it carries. */
                ClusterHello h;
                ClusterPush p;
                uint8_t kind = 0, version = cluster_frame_version(data + 1, size - 1, &kind);
                if (cluster_hello_decode(data + 1, size - 1, "joyride", &h) == 0)
                        assert(version == CLUSTER_PUSH_PULL_V2 && kind == CLUSTER_FRAME_HELLO && h.id[0]);
                if (cluster_push_decode(data + 1, size - 1, &p) == 0) {
                        uint8_t *again = NULL;
                        size_t again_size = 0;
                        assert(version == p.version && kind == p.kind);
                        assert(cluster_push_encode(p.version, p.kind, p.id, p.swim, p.swim_size, p.records,
                                                   p.records_size, &again, &again_size) == 0);
                        assert(again_size == size - 1 && memcmp(again, data + 1, again_size) == 0);
                        g_free(again);
                        (void) swim_merge_state(swim, p.swim, p.swim_size, 1000);
                        drain(swim);
                        if (p.records_size > 3 + CLUSTER_SIGNATURE_SIZE && p.records[2] == CLUSTER_RECORDS_FORMAT) {
                                /* Signed anew by the origin, to reach behind the check. */
                                copy = signed_copy("joyride snapshot v2", p.records,
                                                   p.records_size - CLUSTER_SIGNATURE_SIZE, &n);
                                merge(cr, store, copy, n, before);
                        } else
                                merge(cr, store, p.records, p.records_size, before);
                }
                break;
        }
        }

        swim_free(swim);
        cluster_records_free(cr);
        store_free(store);
        return 0;
}
