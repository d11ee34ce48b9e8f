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

/* A whole number, as JSON or as a string of digits (CoreDNS's own examples
 * write "ttl":"60"). Returns false for anything else. */
static bool json_whole_number(json_object *o, int64_t max, int64_t *ret) {
        const char *s;
        int64_t v = 0;

        if (json_object_is_type(o, json_type_int)) {
                v = json_object_get_int64(o);
                if (v < 0 || v > max)
                        return false;
                *ret = v;
                return true;
        }
        if (!json_object_is_type(o, json_type_string))
                return false;
        s = json_object_get_string(o);
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

/* Reads the fields this layout uses. Returns 0, or -EINVAL with *ret_error. */
static int message_parse(json_object *o, Message *ret, char **ret_error) {
        json_object *f;

        *ret = (Message) { .ttl = -1 };
        if (!json_object_is_type(o, json_type_object)) {
                *ret_error = g_strdup("value is JSON but not an object");
                return -EINVAL;
        }
        if (json_object_object_get_ex(o, "host", &f) && !json_object_is_type(f, json_type_null)) {
                if (!json_object_is_type(f, json_type_string)) {
                        *ret_error = g_strdup("host: expected a string");
                        return -EINVAL;
                }
                ret->host = json_object_get_string(f);
        }
        if (json_object_object_get_ex(o, "text", &f) && !json_object_is_type(f, json_type_null)) {
                if (!json_object_is_type(f, json_type_string)) {
                        *ret_error = g_strdup("text: expected a string");
                        return -EINVAL;
                }
                ret->text = json_object_get_string(f);
        }
        if (json_object_object_get_ex(o, "ttl", &f) && !json_object_is_type(f, json_type_null) &&
            !json_whole_number(f, UINT32_MAX, &ret->ttl)) {
                *ret_error = g_strdup("ttl: expected a whole number of seconds");
                return -EINVAL;
        }
        if (json_object_object_get_ex(o, "targetstrip", &f) && !json_object_is_type(f, json_type_null) &&
            !json_whole_number(f, SKYDNS_TARGETSTRIP_MAX, &ret->targetstrip)) {
                *ret_error =
                        g_strdup_printf("targetstrip: expected a whole number from 0 to %u", SKYDNS_TARGETSTRIP_MAX);
                return -EINVAL;
        }
        if (json_object_object_get_ex(o, "mail", &f))
                ret->mail = json_object_is_type(f, json_type_boolean) && json_object_get_boolean(f);
        return 0;
}

static int value_to_json(const char *value, size_t len, json_object **ret, char **ret_error) {
        json_tokener *tok;
        json_object *o;
        enum json_tokener_error jerr;
        size_t end;

        if (len > SKYDNS_VALUE_MAX) {
                *ret_error = g_strdup_printf("value of %zu bytes is larger than %u", len, SKYDNS_VALUE_MAX);
                return -EINVAL;
        }
        if (len == 0) {
                *ret_error = g_strdup("empty value");
                return -EINVAL;
        }
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
        *ret = o;
        return 0;
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

/* The name the key spells once strip segments are dropped from its end.
 * Returns 0, or -EINVAL with *ret_error. */
static int key_to_name(const char *prefix, const char *key, size_t key_len, unsigned strip, char **ret,
                       char **ret_error) {
        size_t plen = strlen(prefix);
        g_autofree char *rest = NULL;
        g_auto(GStrv) segments = NULL;
        g_autoptr(GString) name = NULL;
        const char *why = NULL;
        size_t n;

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
        rest = g_strndup(key + plen + 1, key_len - plen - 1);
        segments = g_strsplit(rest, "/", -1);
        n = g_strv_length(segments);
        /* ".../local/skydns/" names skydns.local itself. */
        if (n > 1 && segments[n - 1][0] == 0)
                n--;
        if (strip >= n) {
                *ret_error = g_strdup_printf("targetstrip %u leaves no name of a key with %zu segment(s)", strip, n);
                return -EINVAL;
        }
        n -= strip;

        name = g_string_new(NULL);
        for (size_t i = n; i > 0; i--) {
                if (segments[i - 1][0] == 0) {
                        *ret_error = g_strdup("key holds an empty segment (\"//\")");
                        return -EINVAL;
                }
                if (name->len > 0)
                        g_string_append_c(name, '.');
                g_string_append(name, segments[i - 1]);
        }
        for (size_t i = 0; i < name->len; i++)
                name->str[i] = g_ascii_tolower(name->str[i]);
        if (check_name(name->str, &why) < 0) {
                *ret_error = g_strdup_printf("key spells no valid name (%s)", why);
                return -EINVAL;
        }
        *ret = g_string_free(TAKE_PTR(name), FALSE);
        return 0;
}

int skydns_parse(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                 uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error) {
        _cleanup_(skydns_entry_done) SkyDnsEntry e = {};
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        json_object *o = NULL;
        Message m;
        char *error = NULL;
        const char *why;
        int r;

        r = value_to_json(value, value_len, &o, &error);
        if (r >= 0) {
                r = message_parse(o, &m, &error);
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
                g_ptr_array_add(problems, g_strdup_printf("ttl %" PRIu32 " lowered to %u", e.ttl, STORE_TTL_MAX));
                e.ttl = STORE_TTL_MAX;
        }

        if (m.host && *m.host) {
                if (m.mail)
                        g_ptr_array_add(problems, g_strdup("mail: MX records are not served"));
                else if (host_record(e.name, m.host, &e.records[e.n_records], &why) >= 0)
                        e.n_records++;
                else
                        g_ptr_array_add(problems, g_strdup_printf("host: not an address or a name (%s)", why));
        }
        if (m.text && *m.text) {
                if (dns_rdata_parse(DNS_TYPE_TXT, m.text, NULL, NULL, &why) >= 0)
                        e.records[e.n_records++] = (SkyDnsRecord) { DNS_TYPE_TXT, g_strdup(m.text) };
                else
                        g_ptr_array_add(problems, g_strdup_printf("text: %s", why));
        }
        json_object_put(o);

        if (e.n_records == 0 && problems->len == 0)
                g_ptr_array_add(problems, g_strdup("neither host nor text: nothing to serve"));
        if (problems->len > 0) {
                g_ptr_array_add(problems, NULL);
                error = g_strjoinv("; ", (char **) problems->pdata);
        }
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
