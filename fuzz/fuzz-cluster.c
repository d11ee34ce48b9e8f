/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what a cluster node accepts from the network, after
 * decryption (an authenticated but hostile or buggy peer): SWIM packets,
 * SWIM push-pull state, record updates and record snapshots. The first byte
 * picks the decoder; the rest is the message. Besides the sanitizers it
 * checks the promises: a rejected message changes nothing (the store's
 * version stays), an accepted snapshot leaves the store holding exactly the
 * origin's live entries, and the core still produces valid packets after. */

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "cluster-records.h"
#include "log.h"
#include "store.h"
#include "swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        Store *store = NULL;
        ClusterRecords *cr = NULL;
        Swim *swim = NULL;
        SwimConfig cfg;
        SwimAddr self = { .family = 4, .ip = { 10, 0, 0, 1 }, .port = 8890 };
        SwimAddr from = { .family = 4, .ip = { 10, 0, 0, 2 }, .port = 8890 };
        uint64_t before;
        int r;

        if (!init) {
                log_set_max_level(LOG_CRIT);
                init = true;
        }
        if (size < 1)
                return 0;

        assert(store_new(&store) == 0);
        assert(cluster_records_new(&cr, store, "self", 1) == 0);
        swim_config_lan(&cfg);
        assert(swim_new(&swim, &cfg, "self", &self, 1, 0) == 0);
        before = store_version(store);

        switch (data[0] % 5) {
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
                r = cluster_records_apply_update(cr, "origin", data + 1, size - 1, 1000);
                if (r <= 0)
                        assert(store_version(store) == before);
                else
                        assert(store_count_owner_prefix(store, "peer:origin") <= 1);
                break;
        case 3:
                r = cluster_records_merge_snapshot(cr, "origin", data + 1, size - 1, 1000);
                if (r < 0)
                        assert(store_version(store) == before);
                else
                        assert(store_count_owner_prefix(store, "peer:origin") == cluster_records_count(cr, "origin"));
                /* Withdraw and restore keep the store and the table in step. */
                cluster_records_origin_state(cr, "origin", CLUSTER_ORIGIN_LEFT, 2000);
                assert(store_count_owner_prefix(store, "peer:") == 0);
                cluster_records_origin_state(cr, "origin", CLUSTER_ORIGIN_ALIVE, 3000);
                assert(store_count_owner_prefix(store, "peer:origin") == cluster_records_count(cr, "origin"));
                break;
        case 4: {
                /* An update decoded and re-encoded is byte-identical. */
                char name[256], value[CLUSTER_VALUE_MAX + 1];
                uint8_t again[2 * CLUSTER_VALUE_MAX];
                ClusterEntry e;
                if (cluster_update_decode(data + 1, size - 1, &e, name, value) == 0) {
                        size_t n = cluster_update_encode(&e, again, sizeof again);
                        assert(n == size - 1 && memcmp(again, data + 1, n) == 0);
                }
                break;
        }
        }

        swim_free(swim);
        cluster_records_free(cr);
        store_free(store);
        return 0;
}
