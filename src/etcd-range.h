/* SPDX-License-Identifier: MIT */
/* etcd's key/value pairs as its v3 JSON gateway gives them, read and
 * mapped to records (etcd-skydns.h), as pure functions: a worker thread
 * reads a page of a range with them while the loop does other work.
 *
 * A page of /v3/kv/range looks like
 *
 *   {"header":{"revision":"803",...},
 *    "kvs":[{"key":"<base64>","create_revision":"2","mod_revision":"2",
 *            "version":"1","value":"<base64>","lease":"7587..."}, ...],
 *    "more":true,"count":"95000"}
 *
 * (64-bit numbers as strings of digits; members left out when empty or
 * zero). It is read with json-cursor.h, member by member: a tree of json-c
 * objects for 10 000 keys costs more than everything else done with them.
 * Over gRPC the same page is a RangeResponse, read here field by field. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "etcd-skydns.h"

/* One key and what it gives. */
typedef struct EtcdKv {
        char *key; /* NUL-terminated; NULL when unusable (see bad) */
        size_t key_len;
        int64_t mod_revision, lease;
        const char *bad; /* why the pair is unusable (static); NULL when fine */
        int r;           /* skydns_parse()'s result: 0, -EINVAL (see error), -ENOMEM */
        SkyDnsEntry entry;
        char *error;
} EtcdKv;

void etcd_kv_done(EtcdKv *kv);

/* Fills kv from a key's bytes and its value's, and maps it (skydns_parse()). */
void etcd_kv_set(EtcdKv *kv, const char *key, size_t key_len, const char *value, size_t value_len, int64_t mod_revision,
                 int64_t lease, const char *prefix, uint32_t default_ttl);

typedef struct EtcdRangePage {
        int64_t revision; /* of the store when the page was read (header.revision) */
        bool more;        /* keys follow in the range */
        char *next_key;   /* when more: where the next page starts (the last key + "\0") */
        size_t next_len;
        EtcdKv *kvs;
        size_t n_kvs;
} EtcdRangePage;

void etcd_range_page_done(EtcdRangePage *p);

/* Reads a page of a range: every pair, mapped, but those of own_lease
 * (this node's own, when not 0: key and revisions only). Returns 0, or
 * -EBADMSG with *ret_error saying what is wrong with the page (not JSON,
 * not a range reply); a pair that cannot be served is no error: its bad or
 * r says why. */
int etcd_range_parse(const char *data, size_t len, const char *prefix, uint32_t default_ttl, int64_t own_lease,
                     EtcdRangePage *ret, char **ret_error);

/* The same over gRPC: a RangeResponse (protobuf). */
int etcd_range_parse_pb(const void *data, size_t len, const char *prefix, uint32_t default_ttl, int64_t own_lease,
                        EtcdRangePage *ret, char **ret_error);

/* A RangeRequest for a page: [key, range_end), at most limit keys (0: all),
 * at revision (0: the newest), serializable (any member may answer). */
GBytes *etcd_range_request_pb(const char *key, size_t key_len, const char *range_end, size_t end_len, int64_t limit,
                              int64_t revision, bool serializable);

/* Where the page after a RangeResponse starts (the last key + "\0"), read
 * from the top level of the message without mapping a pair, so that the
 * next page can be asked for while this one is parsed. False when there is
 * no next page or it cannot tell. */
bool etcd_range_pb_next(const void *data, size_t len, char **ret_key, size_t *ret_len);

/* A 64-bit number as the gateway writes it: a string of digits (or a JSON
 * number), with an optional '-'; 0 when it is neither. */
int64_t etcd_int64_from_span(const char *p, size_t len);
