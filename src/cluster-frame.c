/* SPDX-License-Identifier: MIT */
/* Push-pull payloads: hello, push and reply. See cluster-frame.h. */

#include <glib.h>

#include "cluster-frame.h"
#include "cluster-records.h"
#include "wire.h"

#define CTX_HELLO "joyride hello v2"

static void hello_digest(const char *id, const uint8_t key[static CLUSTER_PUBLIC_KEY_SIZE], const char *cluster_name,
                         uint8_t ret[static CLUSTER_DIGEST_SIZE]) {
        size_t n = strlen(cluster_name);
        g_autofree uint8_t *data = g_malloc(CLUSTER_PUBLIC_KEY_SIZE + n);

        memcpy(data, key, CLUSTER_PUBLIC_KEY_SIZE);
        /* The name's bytes, not a string: no terminator wanted. */
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result)
        memcpy(data + CLUSTER_PUBLIC_KEY_SIZE, cluster_name, n);
        cluster_digest(CTX_HELLO, id, data, CLUSTER_PUBLIC_KEY_SIZE + n, ret);
}

size_t cluster_hello_encode(const ClusterKeys *keys, const char *id, const char *cluster_name, uint8_t *buf,
                            size_t size) {
        uint8_t digest[CLUSTER_DIGEST_SIZE];
        size_t idlen = strlen(id);
        uint8_t *sig;
        Wire w = wire_init(buf, size);

        if (idlen == 0 || idlen > SWIM_ID_MAX)
                return 0;
        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'P');
        wire_write_u8(&w, CLUSTER_PUSH_PULL_V2);
        wire_write_u8(&w, CLUSTER_FRAME_HELLO);
        wire_write_u8(&w, (uint8_t) idlen);
        wire_write(&w, id, idlen);
        wire_write(&w, cluster_keys_public(keys), CLUSTER_PUBLIC_KEY_SIZE);
        sig = wire_reserve(&w, CLUSTER_SIGNATURE_SIZE);
        if (!wire_ok(&w))
                return 0;
        hello_digest(id, cluster_keys_public(keys), cluster_name, digest);
        cluster_keys_sign(keys, digest, sizeof digest, sig);
        return wire_offset(&w);
}

static int read_id(Wire *w, char ret[static SWIM_ID_MAX + 1]) {
        uint8_t n = wire_read_u8(w);
        const uint8_t *p = n <= SWIM_ID_MAX ? wire_read_ptr(w, n) : NULL;

        if (!p || memchr(p, 0, n))
                return -EBADMSG;
        memcpy(ret, p, n);
        ret[n] = 0;
        return swim_id_is_valid(ret) ? 0 : -EBADMSG;
}

int cluster_hello_decode(const uint8_t *data, size_t size, const char *cluster_name, ClusterHello *ret) {
        uint8_t digest[CLUSTER_DIGEST_SIZE];
        const uint8_t *key, *sig;
        Wire w = wire_init_const(data, size);
        ClusterHello h = {};

        if (wire_read_u8(&w) != 'J' || wire_read_u8(&w) != 'P' || wire_read_u8(&w) != CLUSTER_PUSH_PULL_V2 ||
            wire_read_u8(&w) != CLUSTER_FRAME_HELLO)
                return -EBADMSG;
        if (read_id(&w, h.id) < 0)
                return -EBADMSG;
        key = wire_read_ptr(&w, CLUSTER_PUBLIC_KEY_SIZE);
        sig = wire_read_ptr(&w, CLUSTER_SIGNATURE_SIZE);
        if (!wire_ok(&w) || !wire_at_end(&w))
                return -EBADMSG;
        memcpy(h.key, key, sizeof h.key);
        hello_digest(h.id, h.key, cluster_name, digest);
        if (!cluster_signature_ok(h.key, digest, sizeof digest, sig))
                return -EKEYREJECTED;
        *ret = h;
        return 0;
}

uint8_t cluster_frame_version(const uint8_t *data, size_t size, uint8_t *ret_kind) {
        if (size < 4 || data[0] != 'J' || data[1] != 'P')
                return 0;
        if (ret_kind)
                *ret_kind = data[3];
        return data[2];
}

int cluster_push_decode(const uint8_t *data, size_t size, ClusterPush *ret) {
        Wire w = wire_init_const(data, size);
        ClusterPush p = {};

        if (wire_read_u8(&w) != 'J' || wire_read_u8(&w) != 'P')
                return -EBADMSG;
        p.version = wire_read_u8(&w);
        p.kind = wire_read_u8(&w);
        if ((p.version != CLUSTER_PUSH_PULL_V1 && p.version != CLUSTER_PUSH_PULL_V2) ||
            (p.kind != CLUSTER_FRAME_PUSH && p.kind != CLUSTER_FRAME_REPLY))
                return -EBADMSG;
        if (p.version == CLUSTER_PUSH_PULL_V1 && read_id(&w, p.id) < 0)
                return -EBADMSG;
        p.swim_size = wire_read_u32(&w);
        p.swim = wire_read_ptr(&w, p.swim_size);
        p.records_size = wire_read_u32(&w);
        p.records = wire_read_ptr(&w, p.records_size);
        if (!wire_ok(&w) || !wire_at_end(&w))
                return -EBADMSG;
        *ret = p;
        return 0;
}

int cluster_push_encode(uint8_t version, uint8_t kind, const char *id, const uint8_t *swim, size_t swim_size,
                        const uint8_t *records, size_t records_size, uint8_t **ret, size_t *ret_size) {
        size_t idlen = id ? strlen(id) : 0, cap = 4 + 1 + idlen + 4 + swim_size + 4 + records_size;
        g_autofree uint8_t *buf = NULL;
        Wire w;

        if (swim_size > UINT32_MAX || records_size > UINT32_MAX || idlen > SWIM_ID_MAX ||
            (version == CLUSTER_PUSH_PULL_V1 && idlen == 0))
                return -EINVAL;
        buf = g_malloc(cap);
        w = wire_init(buf, cap);
        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'P');
        wire_write_u8(&w, version);
        wire_write_u8(&w, kind);
        if (version == CLUSTER_PUSH_PULL_V1) {
                wire_write_u8(&w, (uint8_t) idlen);
                wire_write(&w, id, idlen);
        }
        wire_write_u32(&w, (uint32_t) swim_size);
        wire_write(&w, swim, swim_size);
        wire_write_u32(&w, (uint32_t) records_size);
        wire_write(&w, records, records_size);
        if (!wire_ok(&w))
                return w.error;
        *ret_size = wire_offset(&w);
        *ret = TAKE_PTR(buf);
        return 0;
}
