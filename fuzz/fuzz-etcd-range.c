/* SPDX-License-Identifier: MIT */
/* libFuzzer target for pages of etcd ranges as a member (or anything in
 * its place) may answer: the same bytes as the JSON gateway's reply
 * (etcd_range_parse()) and as a gRPC RangeResponse (etcd_range_parse_pb()).
 * Besides the sanitizers, it checks the promises: a refusal says why, an
 * accepted page's pairs are each usable or say why not, a page with more
 * to come says where it goes on, etcd_range_pb_next() agrees with the full
 * read, and JSON the cursor accepts, json-c reads too, with as many pairs. */

#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "etcd-range.h"

#define PREFIX "/skydns"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_page(const EtcdRangePage *p) {
        for (size_t i = 0; i < p->n_kvs; i++) {
                const EtcdKv *kv = &p->kvs[i];

                if (kv->bad) {
                        assert(*kv->bad);
                        continue;
                }
                assert(kv->key && kv->key_len > 0 && strlen(kv->key) == kv->key_len);
                if (kv->r < 0)
                        assert(kv->r == -EINVAL && kv->error && *kv->error);
                else if (kv->entry.n_records > 0)
                        assert(kv->entry.name && *kv->entry.name);
        }
        if (p->more) {
                assert(p->n_kvs > 0 && p->next_key && p->next_len >= 1);
                assert(p->next_key[p->next_len - 1] == 0);
        } else
                assert(!p->next_key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        EtcdRangePage p = {};
        char *error = NULL, *next = NULL;
        size_t next_len = 0;
        int r;

        r = etcd_range_parse((const char *) data, size, PREFIX, 30, 42, &p, &error);
        if (r < 0) {
                assert(r == -EBADMSG && error && *error && !p.kvs);
                free(error);
                error = NULL;
        } else {
                json_tokener *tok = json_tokener_new();
                json_object *o, *kvs;

                check_page(&p);
                /* What the strict cursor accepts, json-c reads alike. */
                o = size <= INT32_MAX ? json_tokener_parse_ex(tok, (const char *) data, (int) size) : NULL;
                assert(o && json_object_is_type(o, json_type_object));
                if (json_object_object_get_ex(o, "kvs", &kvs) && json_object_is_type(kvs, json_type_array))
                        assert(json_object_array_length(kvs) == p.n_kvs);
                else
                        assert(p.n_kvs == 0);
                json_object_put(o);
                json_tokener_free(tok);
                etcd_range_page_done(&p);
        }

        r = etcd_range_parse_pb(data, size, PREFIX, 30, 42, &p, &error);
        if (r < 0) {
                assert(r == -EBADMSG && error && *error && !p.kvs);
                free(error);
                return 0;
        }
        check_page(&p);
        if (etcd_range_pb_next(data, size, &next, &next_len)) {
                assert(p.more && next_len == p.next_len && memcmp(next, p.next_key, next_len) == 0);
                free(next);
        } else
                assert(!p.more || p.next_len == 1); /* an empty last key cannot say where to go on */
        etcd_range_page_done(&p);
        return 0;
}
