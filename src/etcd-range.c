/* SPDX-License-Identifier: MIT */
/* Pages of etcd's ranges, read in place (see etcd-range.h). Keys and values
 * are decoded from base64 into buffers reused from one pair to the next:
 * a pair costs the allocations of what it gives (its key, its records). */

#include <glib.h>
#include <string.h>

#include "etcd-range.h"
#include "json-cursor.h"
#include "macro.h"

#define BAD_KEY "a key without a name, or not in base64"

void etcd_kv_done(EtcdKv *kv) {
        if (!kv)
                return;
        g_free(kv->key);
        skydns_entry_done(&kv->entry);
        g_free(kv->error);
        *kv = (EtcdKv) {};
}

void etcd_kv_set(EtcdKv *kv, const char *key, size_t key_len, const char *value, size_t value_len, int64_t mod_revision,
                 int64_t lease, const char *prefix, uint32_t default_ttl) {
        *kv = (EtcdKv) { .mod_revision = mod_revision, .lease = lease };
        if (key_len == 0) {
                kv->bad = BAD_KEY;
                return;
        }
        if (memchr(key, 0, key_len)) {
                kv->bad = "the key holds a NUL byte";
                return;
        }
        kv->key = g_strndup(key, key_len);
        kv->key_len = key_len;
        kv->r = skydns_parse(prefix, kv->key, key_len, value, value_len, default_ttl, &kv->entry, &kv->error);
}

void etcd_range_page_done(EtcdRangePage *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_kvs; i++)
                etcd_kv_done(&p->kvs[i]);
        g_free(p->kvs);
        g_free(p->next_key);
        *p = (EtcdRangePage) {};
}

int64_t etcd_int64_from_span(const char *p, size_t len) {
        bool negative = len > 0 && p[0] == '-';
        uint64_t v = 0;
        size_t i = negative ? 1 : 0;

        if (i == len || len - i > 19)
                return 0;
        for (; i < len; i++) {
                if (!g_ascii_isdigit(p[i]))
                        return 0;
                v = v * 10 + (uint64_t) (p[i] - '0');
        }
        if (v > (uint64_t) INT64_MAX)
                return 0;
        return negative ? -(int64_t) v : (int64_t) v;
}

/* A pair, mapped; but for own_lease's (this node's own), whose key is all
 * the loop needs. */
static void kv_make(EtcdKv *ret, const char *key, size_t key_len, const char *value, size_t value_len,
                    int64_t mod_revision, int64_t lease, const char *prefix, uint32_t default_ttl, int64_t own_lease) {
        if (own_lease != 0 && lease == own_lease && key_len > 0 && !memchr(key, 0, key_len)) {
                *ret = (EtcdKv) {
                        .key = g_strndup(key, key_len), .key_len = key_len, .mod_revision = mod_revision, .lease = lease
                };
                return;
        }
        etcd_kv_set(ret, key, key_len, value, value_len, mod_revision, lease, prefix, default_ttl);
}

/* A number member: a string of digits or a JSON number; 0 for others. */
static int64_t read_int64(JsonCursor *c) {
        JsonSpan v;

        switch (json_cursor_peek(c)) {
        case JSON_STRING:
                if (!json_cursor_string(c, &v) || v.escaped)
                        return 0;
                return etcd_int64_from_span(v.p, v.len);
        case JSON_NUMBER:
                if (!json_cursor_number(c, &v))
                        return 0;
                return etcd_int64_from_span(v.p, v.len);
        default:
                (void) json_cursor_skip(c);
                return 0;
        }
}

/* A base64 member, decoded into buf; an absent or non-string one is empty
 * (the gateway leaves out empty values). Returns false for bad base64. */
static bool read_base64(JsonCursor *c, GByteArray *buf) {
        g_autofree char *unescaped = NULL;
        const char *p;
        JsonSpan v;
        size_t len;
        gint state = 0;
        guint save = 0;

        g_byte_array_set_size(buf, 0);
        if (json_cursor_peek(c) != JSON_STRING)
                return json_cursor_skip(c);
        if (!json_cursor_string(c, &v))
                return false;
        p = v.p;
        len = v.len;
        if (v.escaped) /* not from etcd, which has no reason to escape base64 */
                p = unescaped = json_span_unescape(&v, &len);
        for (size_t i = 0; i < len; i++)
                if (!g_ascii_isalnum(p[i]) && p[i] != '+' && p[i] != '/' && p[i] != '=')
                        return false;
        g_byte_array_set_size(buf, (guint) (len / 4 * 3 + 3));
        g_byte_array_set_size(buf, (guint) g_base64_decode_step(p, len, buf->data, &state, &save));
        return true;
}

typedef struct KvReader {
        const char *prefix;
        uint32_t default_ttl;
        int64_t own_lease;
        GByteArray *key, *value;
        bool key_ok; /* the last element's key is base64 (or absent) */
} KvReader;

static void read_kv(JsonCursor *c, KvReader *rd, EtcdKv *ret) {
        int64_t mod_revision = 0, lease = 0;
        bool value_ok = true;
        JsonSpan name;

        rd->key_ok = true;
        g_byte_array_set_size(rd->key, 0);
        g_byte_array_set_size(rd->value, 0);
        if (json_cursor_peek(c) != JSON_OBJECT) {
                (void) json_cursor_skip(c);
                *ret = (EtcdKv) { .bad = BAD_KEY };
                return;
        }
        (void) json_cursor_object_begin(c);
        while (json_cursor_member(c, &name)) {
                if (json_span_is(&name, "key"))
                        rd->key_ok = read_base64(c, rd->key);
                else if (json_span_is(&name, "value"))
                        value_ok = read_base64(c, rd->value);
                else if (json_span_is(&name, "mod_revision"))
                        mod_revision = read_int64(c);
                else if (json_span_is(&name, "lease"))
                        lease = read_int64(c);
                else
                        (void) json_cursor_skip(c);
        }
        if (!rd->key_ok || !value_ok) {
                *ret = (EtcdKv) { .mod_revision = mod_revision, .lease = lease, .bad = BAD_KEY };
                return;
        }
        kv_make(ret, (const char *) rd->key->data, rd->key->len, (const char *) rd->value->data, rd->value->len,
                mod_revision, lease, rd->prefix, rd->default_ttl, rd->own_lease);
}

static void kv_clear(gpointer p) {
        etcd_kv_done(p);
}

int etcd_range_parse(const char *data, size_t len, const char *prefix, uint32_t default_ttl, int64_t own_lease,
                     EtcdRangePage *ret, char **ret_error) {
        _cleanup_(etcd_range_page_done) EtcdRangePage page = {};
        g_autoptr(GArray) kvs = g_array_new(FALSE, TRUE, sizeof(EtcdKv));
        g_autoptr(GByteArray) key = g_byte_array_new(), value = g_byte_array_new();
        KvReader rd = {
                .prefix = prefix, .default_ttl = default_ttl, .own_lease = own_lease, .key = key, .value = value
        };
        JsonCursor c;
        JsonSpan name;
        const char *why;
        size_t at;

        g_array_set_clear_func(kvs, kv_clear);
        json_cursor_init(&c, data, len);
        if (json_cursor_object_begin(&c))
                while (json_cursor_member(&c, &name)) {
                        JsonKind kind = json_cursor_peek(&c);

                        if (json_span_is(&name, "header") && kind == JSON_OBJECT) {
                                (void) json_cursor_object_begin(&c);
                                while (json_cursor_member(&c, &name))
                                        if (json_span_is(&name, "revision"))
                                                page.revision = read_int64(&c);
                                        else
                                                (void) json_cursor_skip(&c);
                        } else if (json_span_is(&name, "kvs") && kind == JSON_ARRAY) {
                                /* A member given twice: the last one counts, as with json-c. */
                                g_array_set_size(kvs, 0);
                                (void) json_cursor_array_begin(&c);
                                while (json_cursor_element(&c)) {
                                        EtcdKv kv;
                                        read_kv(&c, &rd, &kv);
                                        g_array_append_val(kvs, kv);
                                }
                        } else if (json_span_is(&name, "more") && (kind == JSON_TRUE || kind == JSON_FALSE))
                                (void) json_cursor_bool(&c, &page.more);
                        else
                                (void) json_cursor_skip(&c);
                }
        if (!json_cursor_end(&c)) {
                why = json_cursor_error(&c, &at);
                *ret_error =
                        g_strdup_printf("/v3/kv/range: the answer is not JSON as expected (%s at byte %zu)", why, at);
                return -EBADMSG;
        }

        page.more = page.more && kvs->len > 0;
        if (page.more) {
                /* The next page starts right after the last key: key + "\0". */
                if (!rd.key_ok) {
                        *ret_error = g_strdup("/v3/kv/range: a key that is not base64");
                        return -EBADMSG;
                }
                page.next_len = key->len + 1;
                page.next_key = g_malloc(page.next_len);
                memcpy(page.next_key, key->data, key->len);
                page.next_key[key->len] = 0;
        }
        page.n_kvs = kvs->len;
        page.kvs = (EtcdKv *) (void *) g_array_free(TAKE_PTR(kvs), FALSE);
        *ret = page;
        page = (EtcdRangePage) {};
        return 0;
}

/* --- protobuf, for gRPC -------------------------------------------------------------------- */

/* etcdserverpb (rpc.proto) and mvccpb (kv.proto), the fields used here:
 *   RangeRequest   key = 1, range_end = 2, limit = 3, revision = 4, serializable = 7
 *   RangeResponse  header = 1, kvs = 2 (repeated), more = 3, count = 4
 *   ResponseHeader revision = 3
 *   KeyValue       key = 1, create_revision = 2, mod_revision = 3, version = 4, value = 5, lease = 6 */

enum {
        WIRE_VARINT = 0,
        WIRE_FIXED64 = 1,
        WIRE_BYTES = 2,
        WIRE_FIXED32 = 5,
};

static void pb_put_varint(GByteArray *b, uint64_t v) {
        guint8 buf[10];
        guint n = 0;

        do {
                buf[n++] = (guint8) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v > 0);
        g_byte_array_append(b, buf, n);
}

static void pb_put_bytes(GByteArray *b, unsigned field, const void *data, size_t len) {
        pb_put_varint(b, (uint64_t) field << 3 | WIRE_BYTES);
        pb_put_varint(b, len);
        g_byte_array_append(b, data, (guint) len);
}

static void pb_put_int(GByteArray *b, unsigned field, uint64_t v) {
        pb_put_varint(b, (uint64_t) field << 3 | WIRE_VARINT);
        pb_put_varint(b, v);
}

GBytes *etcd_range_request_pb(const char *key, size_t key_len, const char *range_end, size_t end_len, int64_t limit,
                              int64_t revision, bool serializable) {
        GByteArray *b = g_byte_array_new();

        pb_put_bytes(b, 1, key, key_len);
        pb_put_bytes(b, 2, range_end, end_len);
        if (limit > 0)
                pb_put_int(b, 3, (uint64_t) limit);
        if (revision > 0)
                pb_put_int(b, 4, (uint64_t) revision);
        if (serializable)
                pb_put_int(b, 7, 1);
        return g_byte_array_free_to_bytes(b);
}

typedef struct PbReader {
        const uint8_t *begin, *p, *end;
        const char *error; /* static, the first */
        size_t error_at;
} PbReader;

typedef struct PbField {
        unsigned number, wire;
        uint64_t value;      /* WIRE_VARINT */
        const uint8_t *data; /* WIRE_BYTES */
        size_t len;
} PbField;

static void pb_reader_init(PbReader *r, const void *data, size_t len) {
        *r = (PbReader) { .begin = data, .p = data, .end = (const uint8_t *) data + len };
}

static bool pb_fail(PbReader *r, const char *why) {
        if (!r->error) {
                r->error = why;
                r->error_at = (size_t) (r->p - r->begin);
        }
        r->p = r->end;
        return false;
}

static bool pb_varint(PbReader *r, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                uint8_t b;

                if (r->p >= r->end)
                        return pb_fail(r, "ends inside a number");
                b = *r->p++;
                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return pb_fail(r, "a number longer than 10 bytes");
}

/* The next field, its value read (numbers) or found (bytes) or skipped;
 * false at the end or on an error (r->error). */
static bool pb_next(PbReader *r, PbField *ret) {
        uint64_t tag, len;

        if (r->error || r->p >= r->end)
                return false;
        if (!pb_varint(r, &tag))
                return false;
        *ret = (PbField) { .number = (unsigned) MIN(tag >> 3, (uint64_t) UINT_MAX), .wire = (unsigned) (tag & 7) };
        if (ret->number == 0)
                return pb_fail(r, "a field numbered 0");
        switch (ret->wire) {
        case WIRE_VARINT:
                return pb_varint(r, &ret->value);
        case WIRE_FIXED64:
        case WIRE_FIXED32: {
                size_t n = ret->wire == WIRE_FIXED64 ? 8 : 4;
                if ((size_t) (r->end - r->p) < n)
                        return pb_fail(r, "ends inside a fixed-size number");
                r->p += n;
                return true;
        }
        case WIRE_BYTES:
                if (!pb_varint(r, &len))
                        return false;
                if (len > (uint64_t) (r->end - r->p))
                        return pb_fail(r, "a field longer than the message");
                ret->data = r->p;
                ret->len = (size_t) len;
                r->p += len;
                return true;
        default:
                return pb_fail(r, "a field of an unknown wire type");
        }
}

/* A known field with the wire type it must have. */
static bool pb_is(PbReader *r, const PbField *f, unsigned number, unsigned wire) {
        if (f->number != number)
                return false;
        if (f->wire != wire)
                return pb_fail(r, "a field of the wrong type");
        return true;
}

static void pb_read_kv(PbReader *top, const PbField *f, const char *prefix, uint32_t default_ttl, int64_t own_lease,
                       EtcdKv *ret, PbField *ret_key) {
        const uint8_t *value = NULL;
        size_t value_len = 0;
        int64_t mod_revision = 0, lease = 0;
        PbReader r;
        PbField k;

        *ret_key = (PbField) {};
        pb_reader_init(&r, f->data, f->len);
        while (pb_next(&r, &k))
                if (pb_is(&r, &k, 1, WIRE_BYTES))
                        *ret_key = k;
                else if (pb_is(&r, &k, 3, WIRE_VARINT))
                        mod_revision = (int64_t) k.value;
                else if (pb_is(&r, &k, 5, WIRE_BYTES)) {
                        value = k.data;
                        value_len = k.len;
                } else if (pb_is(&r, &k, 6, WIRE_VARINT))
                        lease = (int64_t) k.value;
        if (r.error) {
                top->p = f->data + r.error_at; /* say where, in the whole message */
                (void) pb_fail(top, r.error);
                *ret = (EtcdKv) {};
                return;
        }
        kv_make(ret, (const char *) ret_key->data ?: "", ret_key->len, (const char *) value ?: "", value_len,
                mod_revision, lease, prefix, default_ttl, own_lease);
}

int etcd_range_parse_pb(const void *data, size_t len, const char *prefix, uint32_t default_ttl, int64_t own_lease,
                        EtcdRangePage *ret, char **ret_error) {
        _cleanup_(etcd_range_page_done) EtcdRangePage page = {};
        g_autoptr(GArray) kvs = g_array_new(FALSE, TRUE, sizeof(EtcdKv));
        PbField f, last_key = {};
        PbReader r;

        g_array_set_clear_func(kvs, kv_clear);
        pb_reader_init(&r, data, len);
        while (pb_next(&r, &f))
                if (pb_is(&r, &f, 1, WIRE_BYTES)) {
                        PbReader h;
                        PbField hf;

                        pb_reader_init(&h, f.data, f.len);
                        while (pb_next(&h, &hf))
                                if (pb_is(&h, &hf, 3, WIRE_VARINT))
                                        page.revision = (int64_t) hf.value;
                        if (h.error) {
                                r.p = f.data + h.error_at;
                                (void) pb_fail(&r, h.error);
                        }
                } else if (pb_is(&r, &f, 2, WIRE_BYTES)) {
                        EtcdKv kv;

                        pb_read_kv(&r, &f, prefix, default_ttl, own_lease, &kv, &last_key);
                        if (r.error)
                                break;
                        g_array_append_val(kvs, kv);
                } else if (pb_is(&r, &f, 3, WIRE_VARINT))
                        page.more = f.value != 0;
        if (r.error) {
                *ret_error = g_strdup_printf("/etcdserverpb.KV/Range: the answer is not a range (%s at byte %zu)",
                                             r.error, r.error_at);
                return -EBADMSG;
        }

        page.more = page.more && kvs->len > 0;
        if (page.more) {
                page.next_len = last_key.len + 1;
                page.next_key = g_malloc(page.next_len);
                if (last_key.len > 0)
                        memcpy(page.next_key, last_key.data, last_key.len);
                page.next_key[last_key.len] = 0;
        }
        page.n_kvs = kvs->len;
        page.kvs = (EtcdKv *) (void *) g_array_free(TAKE_PTR(kvs), FALSE);
        *ret = page;
        page = (EtcdRangePage) {};
        return 0;
}

bool etcd_range_pb_next(const void *data, size_t len, char **ret_key, size_t *ret_len) {
        PbField f, kv = {}, k, key = {};
        bool more = false;
        PbReader r;

        /* The top level only: each pair is one length-delimited field. */
        pb_reader_init(&r, data, len);
        while (pb_next(&r, &f))
                if (f.number == 2 && f.wire == WIRE_BYTES)
                        kv = f;
                else if (f.number == 3 && f.wire == WIRE_VARINT)
                        more = f.value != 0;
        if (r.error || !more || !kv.data)
                return false;
        pb_reader_init(&r, kv.data, kv.len);
        while (pb_next(&r, &k))
                if (k.number == 1 && k.wire == WIRE_BYTES)
                        key = k;
        if (r.error || key.len == 0)
                return false;
        *ret_key = g_malloc(key.len + 1);
        memcpy(*ret_key, key.data, key.len);
        (*ret_key)[key.len] = 0;
        *ret_len = key.len + 1;
        return true;
}
