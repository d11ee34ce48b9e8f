/* SPDX-License-Identifier: MIT */
/* libFuzzer target for values other writers leave in etcd: any bytes as a
 * key and a value (split at the first newline; without one, the bytes are
 * the value of a fixed key) go through skydns_parse(). Besides the
 * sanitizers, it checks the promises: an accepted entry has a name and
 * values the store takes, its reasons are printable text (they end up in
 * the log), a refusal always says why, and what this node would write for
 * each record reads back as the same record; and the plain reader and
 * json-c (skydns_parse_jsonc()) read every value alike. */

#include <assert.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "etcd-skydns.h"
#include "store.h"

#define PREFIX "/skydns"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool entries_equal(const SkyDnsEntry *a, const SkyDnsEntry *b) {
        if (!streq_ptr(a->name, b->name) || a->ttl != b->ttl || a->n_records != b->n_records ||
            !streq_ptr(a->note, b->note))
                return false;
        for (size_t i = 0; i < a->n_records; i++)
                if (a->records[i].type != b->records[i].type || !streq(a->records[i].value, b->records[i].value))
                        return false;
        return true;
}

static void check_printable(const char *s) {
        for (; *s; s++)
                assert((unsigned char) *s >= 0x20);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Store *store;
        const char *key = "/skydns/com/example/fuzz", *value = (const char *) data;
        size_t key_len = strlen(key), value_len = size;
        const uint8_t *nl = memchr(data, '\n', size);
        SkyDnsEntry e = {};
        char *error = NULL, *printable;
        int r;

        if (!store)
                assert(store_new(&store) == 0);
        if (nl) {
                key = (const char *) data;
                key_len = (size_t) (nl - data);
                value = (const char *) nl + 1;
                value_len = size - key_len - 1;
        }
        printable = skydns_key_printable(key, key_len);
        check_printable(printable);
        g_free(printable);

        r = skydns_parse(PREFIX, key, key_len, value, value_len, 30, &e, &error);
        {
                SkyDnsEntry j = {};
                char *jerror = NULL;
                int jr = skydns_parse_jsonc(PREFIX, key, key_len, value, value_len, 30, &j, &jerror);

                assert(jr == r);
                assert(streq_ptr(jerror, error));
                assert(entries_equal(&e, &j));
                skydns_entry_done(&j);
                g_free(jerror);
        }
        if (r < 0) {
                assert(r == -EINVAL);
                assert(error && *error);
                assert(!e.name && e.n_records == 0);
                g_free(error);
                return 0;
        }
        assert(!error);
        assert(dns_name_check(e.name, DNS_NAME_WILDCARD, NULL) == 0);
        assert(e.n_records >= 1 && e.n_records <= 2);
        assert(e.ttl <= STORE_TTL_MAX);
        if (e.note)
                check_printable(e.note);

        for (size_t i = 0; i < e.n_records; i++) {
                char *k = NULL, *json = NULL;
                SkyDnsEntry back = {};

                r = store_add(store, e.name, e.records[i].type, e.records[i].value, e.ttl, "etcd:fuzz", 0, NULL, NULL);
                assert(r >= 0);

                if (skydns_record_value(e.name, e.records[i].type, e.records[i].value, e.ttl, &json) < 0)
                        continue;
                assert(skydns_record_key(PREFIX, e.name, "fuzz-node", e.records[i].type, e.records[i].value, &k) == 0);
                assert(skydns_parse(PREFIX, k, strlen(k), json, strlen(json), 30, &back, NULL) == 0);
                assert(streq(back.name, e.name));
                assert(back.n_records == 1 && back.records[0].type == e.records[i].type);
                assert(streq(back.records[0].value, e.records[i].value));
                assert(back.ttl == (e.ttl ?: 30));
                skydns_entry_done(&back);
                g_free(k);
                g_free(json);
        }
        (void) store_remove_owner(store, "etcd:fuzz");
        skydns_entry_done(&e);
        return 0;
}
