/* SPDX-License-Identifier: MIT */
/* The SkyDNS layout both ways (see etcd-skydns.h). Names and values are
 * checked with the validators the store uses (dns-name.c, dns-rdata.c), so
 * that whatever this module accepts the store takes. */

#include <arpa/inet.h>
#include <glib.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>

#include "dns-name.h"
#include "dns-rdata.h"
#include "etcd-skydns.h"
#include "json-cursor.h"
#include "store.h"

void skydns_entry_done(SkyDnsEntry *e) {
        if (!e)
                return;
        g_free(e->name);
        for (size_t i = 0; i < e->n_records; i++)
                g_free(e->records[i].value);
        g_free(e->note);
        *e = (SkyDnsEntry) {};
}

char *skydns_key_printable(const char *key, size_t len) {
        GString *s = g_string_sized_new(len + 1);

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) key[i];
                if (c < 0x20 || c >= 0x7f || c == '\\')
                        g_string_append_printf(s, "\\x%02x", c);
                else
                        g_string_append_c(s, (char) c);
        }
        return g_string_free(s, FALSE);
}

static bool name_is_reverse(const char *name) {
        return g_str_has_suffix(name, ".in-addr.arpa") || g_str_has_suffix(name, ".ip6.arpa") ||
               streq(name, "in-addr.arpa") || streq(name, "ip6.arpa");
}

/* dns_name_check() (wildcards allowed) without its allowance for a trailing
 * dot: the names here are already stripped of the one a writer may add. */
static int check_name(const char *name, const char **ret_why) {
        size_t l = strlen(name);

        if (l > 0 && name[l - 1] == '.') {
                *ret_why = "empty label";
                return -EINVAL;
        }
        return dns_name_check(name, DNS_NAME_WILDCARD, ret_why);
}

/* --- values ---------------------------------------------------------------- */

typedef struct Message {
        const char *host; /* NULL or "" when none */
        const char *text;
        int64_t ttl; /* -1: none */
        int64_t targetstrip;
        bool mail;
} Message;

/* A member of the value as this layout reads it, whichever parser read
 * the JSON: json-c (any value) or read_fields_plain() (the usual ones). */
typedef enum FieldKind {
        FIELD_ABSENT,
        FIELD_NULL,
        FIELD_STRING,
        FIELD_INT,
        FIELD_BOOL,
        FIELD_OTHER, /* a double, an object, an array */
} FieldKind;

typedef struct Field {
        FieldKind kind;
        const char *s; /* FIELD_STRING: NUL-terminated */
        int64_t i;     /* FIELD_INT */
        bool b;        /* FIELD_BOOL */
} Field;

typedef struct Fields {
        Field host, text, ttl, targetstrip, mail;
} Fields;

/* A whole number, as JSON or as a string of digits (CoreDNS's own examples
 * write "ttl":"60"). Returns false for anything else. */
static bool field_whole_number(const Field *f, int64_t max, int64_t *ret) {
        const char *s;
        int64_t v = 0;

        if (f->kind == FIELD_INT) {
                if (f->i < 0 || f->i > max)
                        return false;
                *ret = f->i;
                return true;
        }
        if (f->kind != FIELD_STRING)
                return false;
        s = f->s;
        if (!*s || strlen(s) > 18)
                return false;
        for (; *s; s++) {
                if (!g_ascii_isdigit(*s))
                        return false;
                v = v * 10 + (*s - '0');
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

static bool field_set(const Field *f) {
        return f->kind != FIELD_ABSENT && f->kind != FIELD_NULL;
}

/* Checks the fields this layout uses. Returns 0, or -EINVAL with *ret_error. */
static int message_from_fields(const Fields *f, Message *ret, char **ret_error) {
        *ret = (Message) { .ttl = -1 };
        if (field_set(&f->host)) {
                if (f->host.kind != FIELD_STRING) {
                        *ret_error = g_strdup("host: expected a string");
                        return -EINVAL;
                }
                ret->host = f->host.s;
        }
        if (field_set(&f->text)) {
                if (f->text.kind != FIELD_STRING) {
                        *ret_error = g_strdup("text: expected a string");
                        return -EINVAL;
                }
                ret->text = f->text.s;
        }
        if (field_set(&f->ttl) && !field_whole_number(&f->ttl, UINT32_MAX, &ret->ttl)) {
                *ret_error = g_strdup("ttl: expected a whole number of seconds");
                return -EINVAL;
        }
        if (field_set(&f->targetstrip) &&
            !field_whole_number(&f->targetstrip, SKYDNS_TARGETSTRIP_MAX, &ret->targetstrip)) {
                *ret_error =
                        g_strdup_printf("targetstrip: expected a whole number from 0 to %u", SKYDNS_TARGETSTRIP_MAX);
                return -EINVAL;
        }
        if (f->mail.kind != FIELD_ABSENT)
                ret->mail = f->mail.kind == FIELD_BOOL && f->mail.b;
        return 0;
}

static void field_from_json(json_object *o, const char *name, Field *ret) {
        json_object *v;

        *ret = (Field) { FIELD_ABSENT };
        if (!json_object_object_get_ex(o, name, &v))
                return;
        switch (json_object_get_type(v)) {
        case json_type_null:
                ret->kind = FIELD_NULL;
                break;
        case json_type_string:
                *ret = (Field) { FIELD_STRING, .s = json_object_get_string(v) };
                break;
        case json_type_int:
                *ret = (Field) { FIELD_INT, .i = json_object_get_int64(v) };
                break;
        case json_type_boolean:
                *ret = (Field) { FIELD_BOOL, .b = json_object_get_boolean(v) };
                break;
        default:
                ret->kind = FIELD_OTHER;
        }
}

static int value_to_json(const char *value, size_t len, json_object **ret, char **ret_error) {
        json_tokener *tok;
        json_object *o;
        enum json_tokener_error jerr;
        size_t end;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, value, (int) len);
        jerr = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o || jerr != json_tokener_success) {
                json_object_put(o);
                *ret_error = g_strdup_printf("value is not JSON: %s", jerr == json_tokener_continue
                                                                              ? "it ends too early"
                                                                              : json_tokener_error_desc(jerr));
                return -EINVAL;
        }
        for (; end < len; end++)
                if (!g_ascii_isspace(value[end])) {
                        json_object_put(o);
                        *ret_error = g_strdup("value is not JSON: more after the object");
                        return -EINVAL;
                }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                *ret_error = g_strdup("value is JSON but not an object");
                return -EINVAL;
        }
        *ret = o;
        return 0;
}

/* The strings read_fields_plain() found, NUL-terminated. */
typedef struct PlainStrings {
        char *s[5];
} PlainStrings;

static void plain_strings_done(PlainStrings *p) {
        for (size_t i = 0; i < ELEMENTSOF(p->s); i++)
                g_free(p->s[i]);
}

/* Reads the usual value, {"host":"192.0.2.10","ttl":30,"targetstrip":1},
 * without json-c, which costs more than the rest of reading a key: an
 * object of members whose values are strings of printable ASCII without
 * escapes, whole numbers of up to 18 digits, true, false or null. Anything
 * else (escapes, other text, nested values, other numbers, bad JSON)
 * returns false, and json-c reads it: what this accepts, json-c reads
 * alike (fuzz-etcd-skydns.c compares the two). */
static bool read_fields_plain(const char *value, size_t len, Fields *ret, PlainStrings *strings) {
        Field *fields[] = { &ret->host, &ret->text, &ret->ttl, &ret->targetstrip, &ret->mail };
        static const char *const names[] = { "host", "text", "ttl", "targetstrip", "mail" };
        JsonCursor c;
        JsonSpan name, v;

        *ret = (Fields) {};
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) value[i];
                if ((ch < 0x20 && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') || ch >= 0x7f || ch == '\\')
                        return false;
        }
        json_cursor_init(&c, value, len);
        if (!json_cursor_object_begin(&c))
                return false;
        while (json_cursor_member(&c, &name)) {
                Field f = {};
                size_t k;

                switch (json_cursor_peek(&c)) {
                case JSON_STRING:
                        if (!json_cursor_string(&c, &v))
                                return false;
                        f = (Field) { FIELD_STRING, .s = NULL };
                        break;
                case JSON_NUMBER:
                        if (!json_cursor_number(&c, &v) || v.len > 18 || !g_ascii_isdigit(v.p[0]) ||
                            (v.p[0] == '0' && v.len > 1))
                                return false;
                        for (size_t i = 0; i < v.len; i++) {
                                if (!g_ascii_isdigit(v.p[i]))
                                        return false;
                                f.i = f.i * 10 + (v.p[i] - '0');
                        }
                        f.kind = FIELD_INT;
                        break;
                case JSON_TRUE:
                case JSON_FALSE:
                        if (!json_cursor_bool(&c, &f.b))
                                return false;
                        f.kind = FIELD_BOOL;
                        break;
                case JSON_NULL:
                        if (!json_cursor_skip(&c))
                                return false;
                        f.kind = FIELD_NULL;
                        break;
                default:
                        return false;
                }
                for (k = 0; k < ELEMENTSOF(names); k++)
                        if (json_span_is(&name, names[k]))
                                break;
                if (k == ELEMENTSOF(names))
                        continue; /* not a member this layout reads */
                /* A name given twice: the last one counts, as with json-c. */
                g_clear_pointer(&strings->s[k], g_free);
                if (f.kind == FIELD_STRING)
                        f.s = strings->s[k] = g_strndup(v.p, v.len);
                *fields[k] = f;
        }
        return json_cursor_end(&c);
}

/* The record host gives at name, or -EINVAL with *ret_why (static). */
static int host_record(const char *name, const char *host, SkyDnsRecord *ret, const char **ret_why) {
        unsigned char addr[16];
        char text[INET6_ADDRSTRLEN];
        g_autofree char *target = NULL;
        size_t l;

        if (inet_pton(AF_INET, host, addr) == 1 && inet_ntop(AF_INET, addr, text, sizeof text)) {
                *ret = (SkyDnsRecord) { DNS_TYPE_A, g_strdup(text) };
                return 0;
        }
        if (inet_pton(AF_INET6, host, addr) == 1 && inet_ntop(AF_INET6, addr, text, sizeof text)) {
                *ret = (SkyDnsRecord) { DNS_TYPE_AAAA, g_strdup(text) };
                return 0;
        }

        target = g_ascii_strdown(host, -1);
        l = strlen(target);
        if (l > 1 && target[l - 1] == '.')
                target[l - 1] = 0;
        if (check_name(target, ret_why) < 0)
                return -EINVAL;
        if (inet_pton(AF_INET, target, addr) == 1) {
                /* "192.0.2.1." is a name to CoreDNS, and a confusing one. */
                *ret_why = "an address with a trailing dot";
                return -EINVAL;
        }
        if (target[0] == '*') {
                *ret_why = "a target name cannot be a wildcard";
                return -EINVAL;
        }
        *ret = (SkyDnsRecord) { name_is_reverse(name) ? DNS_TYPE_PTR : DNS_TYPE_CNAME, TAKE_PTR(target) };
        return 0;
}

/* --- keys ------------------------------------------------------------------ */

/* The name the key spells once strip segments are dropped from its end:
 * its segments last first, joined with dots, lowercased; read in place,
 * without splitting the key. Returns 0, or -EINVAL with *ret_error. */
static int key_to_name(const char *prefix, const char *key, size_t key_len, unsigned strip, char **ret,
                       char **ret_error) {
        size_t plen = strlen(prefix), rlen, n = 1, used, seen = 0, end;
        g_autofree char *name = NULL;
        const char *rest, *why = NULL;
        char *o;

        if (key_len <= plen || memcmp(key, prefix, plen) != 0 || key[plen] != '/') {
                *ret_error = g_strdup_printf("key is not below the prefix %s/", prefix);
                return -EINVAL;
        }
        if (memchr(key, 0, key_len)) {
                *ret_error = g_strdup("key holds a NUL byte");
                return -EINVAL;
        }
        if (key_len == plen + 1) {
                *ret_error = g_strdup("key is the prefix itself, which names nothing");
                return -EINVAL;
        }
        rest = key + plen + 1;
        rlen = key_len - plen - 1;
        for (size_t i = 0; i < rlen; i++)
                if (rest[i] == '/')
                        n++;
        /* ".../local/skydns/" names skydns.local itself. */
        if (n > 1 && rest[rlen - 1] == '/') {
                n--;
                rlen--;
        }
        if (strip >= n) {
                *ret_error = g_strdup_printf("targetstrip %u leaves no name of a key with %zu segment(s)", strip, n);
                return -EINVAL;
        }
        n -= strip;

        /* rest[0, used) holds the first n segments. */
        for (used = 0; used < rlen; used++)
                if (rest[used] == '/' && ++seen == n)
                        break;
        o = name = g_malloc(used + 1);
        end = used;
        for (;;) {
                size_t start = end;

                while (start > 0 && rest[start - 1] != '/')
                        start--;
                if (start == end) {
                        *ret_error = g_strdup("key holds an empty segment (\"//\")");
                        return -EINVAL;
                }
                if (o != name)
                        *o++ = '.';
                for (size_t i = start; i < end; i++)
                        *o++ = g_ascii_tolower(rest[i]);
                if (start == 0)
                        break;
                end = start - 1;
        }
        *o = 0;
        if (check_name(name, &why) < 0) {
                *ret_error = g_strdup_printf("key spells no valid name (%s)", why);
                return -EINVAL;
        }
        *ret = TAKE_PTR(name);
        return 0;
}

/* What a value has that cannot be served as it is: at most four (ttl, host
 * or mail, text; or nothing to serve), NULL-terminated. */
typedef struct Problems {
        char *s[5];
        size_t n;
} Problems;

static void problems_done(Problems *p) {
        for (size_t i = 0; i < p->n; i++)
                g_free(p->s[i]);
}

static int parse(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                 uint32_t default_ttl, bool plain, SkyDnsEntry *ret, char **ret_error) {
        _cleanup_(skydns_entry_done) SkyDnsEntry e = {};
        _cleanup_(plain_strings_done) PlainStrings strings = {};
        _cleanup_(problems_done) Problems problems = {};
        json_object *o = NULL;
        Fields fields;
        Message m;
        char *error = NULL;
        const char *why;
        int r = 0;

        if (value_len > SKYDNS_VALUE_MAX) {
                error = g_strdup_printf("value of %zu bytes is larger than %u", value_len, SKYDNS_VALUE_MAX);
                r = -EINVAL;
        } else if (value_len == 0) {
                error = g_strdup("empty value");
                r = -EINVAL;
        } else if (!plain || !read_fields_plain(value, value_len, &fields, &strings)) {
                r = value_to_json(value, value_len, &o, &error);
                if (r >= 0) {
                        field_from_json(o, "host", &fields.host);
                        field_from_json(o, "text", &fields.text);
                        field_from_json(o, "ttl", &fields.ttl);
                        field_from_json(o, "targetstrip", &fields.targetstrip);
                        field_from_json(o, "mail", &fields.mail);
                }
        }
        if (r >= 0) {
                r = message_from_fields(&fields, &m, &error);
                if (r >= 0)
                        r = key_to_name(prefix, key, key_len, (unsigned) m.targetstrip, &e.name, &error);
        }
        if (r < 0) {
                json_object_put(o);
                if (ret_error)
                        *ret_error = error;
                else
                        g_free(error);
                return r;
        }

        e.ttl = m.ttl > 0 ? (uint32_t) MIN(m.ttl, (int64_t) UINT32_MAX) : default_ttl;
        if (e.ttl > STORE_TTL_MAX) {
                problems.s[problems.n++] = g_strdup_printf("ttl %" PRIu32 " lowered to %u", e.ttl, STORE_TTL_MAX);
                e.ttl = STORE_TTL_MAX;
        }

        if (m.host && *m.host) {
                if (m.mail)
                        problems.s[problems.n++] = g_strdup("mail: MX records are not served");
                else if (host_record(e.name, m.host, &e.records[e.n_records], &why) >= 0)
                        e.n_records++;
                else
                        problems.s[problems.n++] = g_strdup_printf("host: not an address or a name (%s)", why);
        }
        if (m.text && *m.text) {
                if (dns_rdata_parse(DNS_TYPE_TXT, m.text, NULL, NULL, &why) >= 0)
                        e.records[e.n_records++] = (SkyDnsRecord) { DNS_TYPE_TXT, g_strdup(m.text) };
                else
                        problems.s[problems.n++] = g_strdup_printf("text: %s", why);
        }
        json_object_put(o);

        if (e.n_records == 0 && problems.n == 0)
                problems.s[problems.n++] = g_strdup("neither host nor text: nothing to serve");
        if (problems.n > 0)
                error = g_strjoinv("; ", problems.s);
        if (e.n_records == 0) {
                if (ret_error)
                        *ret_error = error;
                else
                        g_free(error);
                return -EINVAL;
        }
        e.note = error;
        *ret = e;
        e = (SkyDnsEntry) {};
        return 0;
}

int skydns_parse(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                 uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error) {
        return parse(prefix, key, key_len, value, value_len, default_ttl, true, ret, ret_error);
}

int skydns_parse_jsonc(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                       uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error) {
        return parse(prefix, key, key_len, value, value_len, default_ttl, false, ret, ret_error);
}

/* --- publishing ------------------------------------------------------------ */

/* FNV-1a, 64 bits: stable across builds and machines, which g_str_hash is
 * not promised to be. Keys must not change when the daemon is upgraded. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
        const unsigned char *p = data;

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* The node id as one DNS label: lowercase letters, digits and '-', at most
 * 40 characters, so that "<tag>-<16 digits>" stays a label. */
static char *node_tag(const char *node_id) {
        GString *s = g_string_new(NULL);

        for (const char *p = node_id; *p && s->len < 40; p++) {
                char c = g_ascii_tolower(*p);
                if (!g_ascii_isalnum(c))
                        c = '-';
                if (c == '-' && (s->len == 0 || s->str[s->len - 1] == '-'))
                        continue;
                g_string_append_c(s, c);
        }
        while (s->len > 0 && s->str[s->len - 1] == '-')
                g_string_truncate(s, s->len - 1);
        if (s->len == 0)
                g_string_assign(s, "node");
        return g_string_free(s, FALSE);
}

int skydns_record_key(const char *prefix, const char *name, const char *node_id, uint16_t type, const char *value,
                      char **ret) {
        g_autofree char *tag = NULL, *lower = NULL;
        g_auto(GStrv) labels = NULL;
        GString *key;
        uint8_t t[2] = { (uint8_t) (type >> 8), (uint8_t) type };
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        size_t n;

        if (dns_name_check(name, DNS_NAME_WILDCARD, NULL) < 0)
                return -EINVAL;
        lower = g_ascii_strdown(name, -1);
        n = strlen(lower);
        if (n > 1 && lower[n - 1] == '.')
                lower[n - 1] = 0;

        h = fnv1a(h, node_id, strlen(node_id) + 1);
        h = fnv1a(h, t, sizeof t);
        h = fnv1a(h, value, strlen(value));
        tag = node_tag(node_id);

        key = g_string_new(prefix);
        labels = g_strsplit(lower, ".", -1);
        for (size_t i = g_strv_length(labels); i > 0; i--)
                g_string_append_printf(key, "/%s", labels[i - 1]);
        g_string_append_printf(key, "/%s-%016" PRIx64, tag, h);
        *ret = g_string_free(key, FALSE);
        return 0;
}

int skydns_record_value(const char *name, uint16_t type, const char *value, uint32_t ttl, char **ret) {
        unsigned char addr[4];
        json_object *o;

        switch (type) {
        case DNS_TYPE_A:
        case DNS_TYPE_AAAA:
                break;
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                /* A host name reads back as a PTR under the reverse trees and
                 * as a CNAME elsewhere (as CoreDNS serves it): others cannot
                 * be told apart. */
                if ((type == DNS_TYPE_PTR) != name_is_reverse(name))
                        return -EOPNOTSUPP;
                /* A target spelling an address would read back as the address. */
                if (inet_pton(AF_INET, value, addr) == 1)
                        return -EOPNOTSUPP;
                break;
        case DNS_TYPE_TXT:
                break;
        default:
                return -EOPNOTSUPP;
        }

        o = json_object_new_object();
        json_object_object_add(o, type == DNS_TYPE_TXT ? "text" : "host", json_object_new_string(value));
        json_object_object_add(o, "ttl", json_object_new_int64(ttl));
        json_object_object_add(o, "targetstrip", json_object_new_int(1));
        *ret = g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return 0;
}
