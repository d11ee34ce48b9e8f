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

void etcd_kv_set(EtcdKv *kv, const char *key, size_t key_len, const char *value, size_t value_len,
                 int64_t mod_revision, int64_t lease, const char *prefix, uint32_t default_ttl) {
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
        if (rd->own_lease != 0 && lease == rd->own_lease && rd->key->len > 0) {
                /* This node's own: the loop needs the key, not the records. */
                *ret = (EtcdKv) { .key = g_strndup((const char *) rd->key->data, rd->key->len),
                                  .key_len = rd->key->len,
                                  .mod_revision = mod_revision,
                                  .lease = lease };
                return;
        }
        etcd_kv_set(ret, (const char *) rd->key->data, rd->key->len, (const char *) rd->value->data, rd->value->len,
                    mod_revision, lease, rd->prefix, rd->default_ttl);
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
                *ret_error = g_strdup_printf("/v3/kv/range: the answer is not JSON as expected (%s at byte %zu)", why,
                                             at);
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
