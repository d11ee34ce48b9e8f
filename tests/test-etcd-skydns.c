/* SPDX-License-Identifier: MIT */
/* Unit tests for the SkyDNS layout (etcd-skydns.c): keys and values as other
 * writers (CoreDNS's documentation, external-dns, etcdctl by hand) leave
 * them, what this node writes, and that the two read back as the same
 * records and go into a real store. */

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-skydns.h"
#include "store.h"
#include "test-util.h"

#define PREFIX "/skydns"
#define DEFAULT_TTL 30

typedef int (*ParseFunc)(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                         uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error);

/* "name ttl TYPE value | TYPE value" for what key and value give, or
 * "error: why". A note (a part left out) is appended as " (note: ...)". */
static char *describe_with(ParseFunc parse, const char *key, const char *value) {
        SkyDnsEntry e = {};
        char *error = NULL;
        GString *s = g_string_new(NULL);
        int r;

        r = parse(PREFIX, key, strlen(key), value, strlen(value), DEFAULT_TTL, &e, &error);
        if (r < 0) {
                CHECK(r == -EINVAL);
                CHECK(error && *error);
                CHECK(e.name == NULL && e.n_records == 0);
                g_string_printf(s, "error: %s", error);
                g_free(error);
                return g_string_free(s, FALSE);
        }
        CHECK(!error);
        CHECK(e.n_records >= 1 && e.n_records <= 2);
        g_string_printf(s, "%s %u", e.name, e.ttl);
        for (size_t i = 0; i < e.n_records; i++)
                g_string_append_printf(s, "%s%s %s", i > 0 ? " | " : " ", dns_type_to_string(e.records[i].type),
                                       e.records[i].value);
        if (e.note)
                g_string_append_printf(s, " (note: %s)", e.note);
        skydns_entry_done(&e);
        CHECK(e.name == NULL && e.n_records == 0 && e.note == NULL);
        return g_string_free(s, FALSE);
}

/* Also checks that the plain reader and json-c read the value alike. */
static char *describe(const char *key, const char *value) {
        char *got = describe_with(skydns_parse, key, value);
        g_autofree char *jsonc = describe_with(skydns_parse_jsonc, key, value);

        if (strcmp(got, jsonc) != 0) {
                fprintf(stderr, "key %s value %s:\n  plain  %s\n  json-c %s\n", key, value, got, jsonc);
                exit(EXIT_FAILURE);
        }
        return got;
}

static void expect(const char *key, const char *value, const char *want) {
        g_autofree char *got = describe(key, value);

        if (strcmp(got, want) != 0) {
                fprintf(stderr, "key %s value %s:\n  got  %s\n  want %s\n", key, value, got, want);
                exit(EXIT_FAILURE);
        }
}

/* The error (or note) contains every one of the given fragments. */
#define expect_error(key, value, ...) \
        do { \
                g_autofree char *_got = describe((key), (value)); \
                const char *_frags[] = { __VA_ARGS__ }; \
                CHECK(g_str_has_prefix(_got, "error: ")); \
                for (size_t _i = 0; _i < ELEMENTSOF(_frags); _i++) \
                        if (!strstr(_got, _frags[_i])) \
                                test_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", _got, _frags[_i]); \
        } while (0)

static void test_names(void) {
        /* The key spells the name, labels last first. */
        expect("/skydns/com/example/web", "{\"host\":\"192.0.2.10\",\"ttl\":60}", "web.example.com 60 A 192.0.2.10");
        expect("/skydns/local/skydns/x1", "{\"host\":\"1.1.1.1\"}", "x1.skydns.local 30 A 1.1.1.1");
        /* Case folds; a segment may hold dots (CoreDNS joins them alike). */
        expect("/skydns/COM/Example/WWW", "{\"host\":\"10.0.0.1\"}", "www.example.com 30 A 10.0.0.1");
        expect("/skydns/com/example/a.b", "{\"host\":\"10.0.0.1\"}", "a.b.example.com 30 A 10.0.0.1");
        /* The apex form of CoreDNS's documentation: a trailing slash. */
        expect("/skydns/local/skydns/", "{\"host\":\"1.1.1.1\",\"ttl\":60}", "skydns.local 60 A 1.1.1.1");
        /* targetstrip: the leaf segments are no labels (external-dns, joyride). */
        expect("/skydns/com/example/web/1a2b3c4d", "{\"host\":\"192.0.2.10\",\"targetstrip\":1}",
               "web.example.com 30 A 192.0.2.10");
        expect("/skydns/com/example/web/x/y", "{\"host\":\"192.0.2.10\",\"targetstrip\":2}",
               "web.example.com 30 A 192.0.2.10");
        /* A single label is a name too. */
        expect("/skydns/localhost", "{\"host\":\"127.0.0.1\"}", "localhost 30 A 127.0.0.1");

        expect_error("/other/com/example", "{\"host\":\"1.2.3.4\"}", "not below the prefix /skydns/");
        expect_error("/skydnsx/com", "{\"host\":\"1.2.3.4\"}", "not below the prefix");
        expect_error("/skydns", "{\"host\":\"1.2.3.4\"}", "not below the prefix");
        expect_error("/skydns/", "{\"host\":\"1.2.3.4\"}", "prefix itself");
        expect_error("/skydns//", "{\"host\":\"1.2.3.4\"}", "empty segment");
        expect_error("/skydns/com./web", "{\"host\":\"1.2.3.4\"}", "no valid name", "empty label");
        expect_error("/skydns/.com/web", "{\"host\":\"1.2.3.4\"}", "no valid name", "empty label");
        expect_error("/skydns/com//web", "{\"host\":\"1.2.3.4\"}", "empty segment");
        expect_error("/skydns/com/exa mple", "{\"host\":\"1.2.3.4\"}", "no valid name", "invalid character");
        expect_error("/skydns/com/example/web/x", "{\"host\":\"1.2.3.4\",\"targetstrip\":4}",
                     "targetstrip 4 leaves no name");
        expect_error("/skydns/com/example", "{\"host\":\"1.2.3.4\",\"targetstrip\":99}", "targetstrip: expected");
        expect_error("/skydns/com/example", "{\"host\":\"1.2.3.4\",\"targetstrip\":-1}", "targetstrip: expected");

        /* NUL bytes in a key are refused, not cut short. */
        {
                const char key[] = "/skydns/com/a\0b";
                const char *value = "{\"host\":\"1.2.3.4\"}";
                SkyDnsEntry e = {};
                g_autofree char *error = NULL;

                CHECK(skydns_parse(PREFIX, key, sizeof key - 1, value, strlen(value), 30, &e, &error) == -EINVAL);
                CHECK(strstr(error, "NUL"));
        }
        /* Another prefix, with segments of its own. */
        {
                const char *key = "/dns/prod/com/example/web", *value = "{\"host\":\"::1\"}";
                SkyDnsEntry e = {};

                CHECK(skydns_parse("/dns/prod", key, strlen(key), value, strlen(value), 5, &e, NULL) == 0);
                CHECK(streq(e.name, "web.example.com") && e.ttl == 5 && e.records[0].type == DNS_TYPE_AAAA);
                skydns_entry_done(&e);
        }
}

static void test_wildcards(void) {
        expect("/skydns/com/example/*", "{\"host\":\"192.0.2.1\"}", "*.example.com 30 A 192.0.2.1");
        expect("/skydns/com/example/*/j1", "{\"host\":\"192.0.2.1\",\"targetstrip\":1}",
               "*.example.com 30 A 192.0.2.1");
        /* Only as the whole first label, as in DNS. */
        expect_error("/skydns/com/*/web", "{\"host\":\"192.0.2.1\"}", "no valid name", "wildcard");
        expect_error("/skydns/com/example/a*", "{\"host\":\"192.0.2.1\"}", "no valid name");
        expect_error("/skydns/*", "{\"host\":\"192.0.2.1\"}", "no valid name");
        /* A wildcard is no target. */
        expect_error("/skydns/com/example/c", "{\"host\":\"*.example.com\"}", "host: not an address or a name",
                     "wildcard");
}

static void test_values(void) {
        /* host: IPv4, IPv6 (canonical), a name (CNAME; PTR in the reverse trees). */
        expect("/skydns/com/example/v6", "{\"host\":\"2001:DB8:0:0::1\"}", "v6.example.com 30 AAAA 2001:db8::1");
        expect("/skydns/com/example/alias", "{\"host\":\"Web.Example.COM.\",\"ttl\":10}",
               "alias.example.com 10 CNAME web.example.com");
        expect("/skydns/arpa/in-addr/10/0/0/127", "{\"host\":\"reverse.skydns.local.\"}",
               "127.0.0.10.in-addr.arpa 30 PTR reverse.skydns.local");
        expect("/skydns/arpa/ip6/1/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
               "{\"host\":\"localhost\"}",
               "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.ip6.arpa 30 PTR localhost");
        /* text: TXT, alone or beside host (external-dns writes both in one value). */
        expect("/skydns/local/skydns/x6", "{\"ttl\":60,\"text\":\"this is a random text message.\"}",
               "x6.skydns.local 60 TXT this is a random text message.");
        expect("/skydns/org/example/www/0a1b2c3d",
               "{\"host\":\"10.1.2.3\",\"text\":\"\\\"heritage=external-dns\\\"\",\"ttl\":300,\"targetstrip\":1}",
               "www.example.org 300 A 10.1.2.3 | TXT \"heritage=external-dns\"");
        /* ttl: a number or a string of digits; none or 0 is the default. */
        expect("/skydns/com/example/t", "{\"host\":\"10.0.0.1\",\"ttl\":\"60\"}", "t.example.com 60 A 10.0.0.1");
        expect("/skydns/com/example/t", "{\"host\":\"10.0.0.1\",\"ttl\":0}", "t.example.com 30 A 10.0.0.1");
        expect("/skydns/com/example/t", "{\"host\":\"10.0.0.1\",\"ttl\":null}", "t.example.com 30 A 10.0.0.1");
        expect("/skydns/com/example/t", "{\"host\":\"10.0.0.1\",\"ttl\":4000000000}",
               "t.example.com 604800 A 10.0.0.1 (note: ttl 4000000000 lowered to 604800)");
        /* SRV fields change nothing; unknown fields are ignored. */
        expect("/skydns/com/example/srv",
               "{\"host\":\"10.0.0.2\",\"port\":8080,\"priority\":10,\"weight\":5,"
               "\"group\":\"g\",\"extra\":[1,2]}",
               "srv.example.com 30 A 10.0.0.2");
        /* Whitespace around the object is fine. */
        expect("/skydns/com/example/ws", " \n{\"host\":\"10.0.0.3\"}\n ", "ws.example.com 30 A 10.0.0.3");
        /* A part that cannot be served is left out with a note, the rest served. */
        expect("/skydns/com/example/mx", "{\"host\":\"mail.example.com\",\"mail\":true,\"text\":\"v=spf1 -all\"}",
               "mx.example.com 30 TXT v=spf1 -all (note: mail: MX records are not served)");
        expect("/skydns/com/example/half", "{\"host\":\"not a host\",\"text\":\"ok\"}",
               "half.example.com 30 TXT ok (note: host: not an address or a name (invalid character (letters, digits, "
               "'-' and '_' only)))");

        /* Values other writers may leave that cannot be served: each says why. */
        expect_error("/skydns/com/example/b", "{\"host\":\"1.2.3.4\"", "not JSON", "ends too early");
        expect_error("/skydns/com/example/b", "not json at all", "not JSON");
        expect_error("/skydns/com/example/b", "{\"host\":\"1.2.3.4\"} trailing", "not JSON", "more after the object");
        expect_error("/skydns/com/example/b", "", "empty value");
        expect_error("/skydns/com/example/b", "[\"1.2.3.4\"]", "not an object");
        expect_error("/skydns/com/example/b", "\"1.2.3.4\"", "not an object");
        expect_error("/skydns/com/example/b", "{\"host\":1234}", "host: expected a string");
        expect_error("/skydns/com/example/b", "{\"text\":true}", "text: expected a string");
        expect_error("/skydns/com/example/b", "{\"host\":\"1.2.3.4\",\"ttl\":-5}", "ttl: expected a whole number");
        expect_error("/skydns/com/example/b", "{\"host\":\"1.2.3.4\",\"ttl\":1.5}", "ttl: expected a whole number");
        expect_error("/skydns/com/example/b", "{\"host\":\"1.2.3.4\",\"ttl\":\"1m\"}", "ttl: expected a whole number");
        expect_error("/skydns/com/example/b", "{}", "neither host nor text");
        expect_error("/skydns/com/example/b", "{\"host\":\"\",\"text\":\"\"}", "neither host nor text");
        expect_error("/skydns/com/example/b", "{\"host\":\"a..b\"}", "host: not an address or a name");
        expect_error("/skydns/com/example/b", "{\"host\":\"192.0.2.1.\"}", "host: not an address or a name",
                     "trailing dot");
        expect_error("/skydns/com/example/b", "{\"host\":\"a.b..\"}", "host: not an address or a name", "empty label");
        expect_error("/skydns/com/example/b", "{\"text\":\"bell\\u0007\"}", "text: control characters");
        {
                g_autofree char *big = g_strnfill(2100, 'x');
                g_autofree char *v = g_strdup_printf("{\"text\":\"%s\"}", big);
                expect_error("/skydns/com/example/b", v, "text: text longer than 2048 bytes");
        }
        {
                g_autofree char *huge = g_strnfill(SKYDNS_VALUE_MAX + 1, ' ');
                expect_error("/skydns/com/example/b", huge, "larger than");
        }
}

/* What this node writes reads back as the same record, under the same
 * directory for every value of one name, with keys unique per node and
 * value and stable across runs. */
static void roundtrip(const char *name, uint16_t type, const char *value, uint32_t ttl, const char *want_key_dir) {
        g_autofree char *key = NULL, *json = NULL, *error = NULL, *dir = NULL;
        SkyDnsEntry e = {};

        CHECK(skydns_record_key(PREFIX, name, "node-a", type, value, &key) == 0);
        dir = g_strdup(key);
        *strrchr(dir, '/') = 0;
        if (strcmp(dir, want_key_dir) != 0) {
                fprintf(stderr, "%s: key %s, want it below %s\n", name, key, want_key_dir);
                exit(EXIT_FAILURE);
        }
        CHECK(g_str_has_prefix(strrchr(key, '/') + 1, "node-a-"));
        CHECK(strlen(strrchr(key, '/') + 1) == strlen("node-a-") + 16);

        CHECK(skydns_record_value(name, type, value, ttl, &json) == 0);
        if (skydns_parse(PREFIX, key, strlen(key), json, strlen(json), 999, &e, &error) < 0) {
                fprintf(stderr, "%s %s: %s does not read back: %s\n", name, value, json, error);
                exit(EXIT_FAILURE);
        }
        CHECK(streq(e.name, name));
        CHECK(e.ttl == ttl);
        CHECK(e.n_records == 1);
        CHECK(e.records[0].type == type);
        CHECK(streq(e.records[0].value, value));
        CHECK(e.note == NULL);
        skydns_entry_done(&e);
}

static void test_publish(void) {
        g_autofree char *k1 = NULL, *k2 = NULL, *k3 = NULL, *k4 = NULL, *k5 = NULL, *json = NULL;

        roundtrip("web.example.com", DNS_TYPE_A, "192.0.2.10", 30, "/skydns/com/example/web");
        roundtrip("web.example.com", DNS_TYPE_AAAA, "2001:db8::10", 30, "/skydns/com/example/web");
        roundtrip("alias.example.com", DNS_TYPE_CNAME, "web.example.com", 60, "/skydns/com/example/alias");
        roundtrip("web.example.com", DNS_TYPE_TXT, "v=1; \"quoted\" \\ text/with/slashes", 5,
                  "/skydns/com/example/web");
        roundtrip("*.apps.example.com", DNS_TYPE_A, "192.0.2.20", 30, "/skydns/com/example/apps/*");
        roundtrip("10.2.0.192.in-addr.arpa", DNS_TYPE_PTR, "web.example.com", 30, "/skydns/arpa/in-addr/192/0/2/10");
        roundtrip("localhost", DNS_TYPE_A, "127.0.0.1", 604800, "/skydns/localhost");

        /* The documented value, byte for byte. */
        CHECK(skydns_record_value("web.example.com", DNS_TYPE_A, "192.0.2.10", 30, &json) == 0);
        CHECK(streq(json, "{\"host\":\"192.0.2.10\",\"ttl\":30,\"targetstrip\":1}"));

        /* Unique per value and per node; stable. */
        CHECK(skydns_record_key(PREFIX, "web.example.com", "node-a", DNS_TYPE_A, "192.0.2.10", &k1) == 0);
        CHECK(skydns_record_key(PREFIX, "web.example.com", "node-a", DNS_TYPE_A, "192.0.2.11", &k2) == 0);
        CHECK(skydns_record_key(PREFIX, "web.example.com", "node-b", DNS_TYPE_A, "192.0.2.10", &k3) == 0);
        CHECK(skydns_record_key(PREFIX, "WEB.Example.com.", "node-a", DNS_TYPE_A, "192.0.2.10", &k4) == 0);
        CHECK(!streq(k1, k2) && !streq(k1, k3));
        CHECK(streq(k1, k4));
        /* Node ids are made a label; ids that spell the same label still differ by the hash. */
        g_free(k2);
        g_free(k3);
        k2 = k3 = NULL;
        CHECK(skydns_record_key(PREFIX, "a.example", "Web01.Example.COM", DNS_TYPE_A, "10.0.0.1", &k2) == 0);
        CHECK(skydns_record_key(PREFIX, "a.example", "web01-example-com", DNS_TYPE_A, "10.0.0.1", &k3) == 0);
        CHECK(g_str_has_prefix(k2, "/skydns/example/a/web01-example-com-"));
        CHECK(g_str_has_prefix(k3, "/skydns/example/a/web01-example-com-"));
        CHECK(!streq(k2, k3));
        CHECK(skydns_record_key("/dns/prod", "a.example", "___", DNS_TYPE_A, "10.0.0.1", &k5) == 0);
        CHECK(g_str_has_prefix(k5, "/dns/prod/example/a/node-"));

        /* What would not read back the same is refused. */
        g_free(json);
        json = NULL;
        CHECK(skydns_record_value("x.example.com", DNS_TYPE_PTR, "y.example.com", 30, &json) == -EOPNOTSUPP);
        CHECK(skydns_record_value("1.0.0.10.in-addr.arpa", DNS_TYPE_CNAME, "y.example.com", 30, &json) == -EOPNOTSUPP);
        CHECK(skydns_record_value("x.example.com", DNS_TYPE_CNAME, "192.0.2.1", 30, &json) == -EOPNOTSUPP);
        CHECK(skydns_record_value("x.example.com", DNS_TYPE_MX, "10 y.example.com", 30, &json) == -EOPNOTSUPP);
        CHECK(json == NULL);
        CHECK(skydns_record_key(PREFIX, "bad name", "node-a", DNS_TYPE_A, "10.0.0.1", &json) == -EINVAL);
}

/* Several values of one name, and a wildcard, through a real store. */
static int count_records(const Record *r, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_store(void) {
        static const struct {
                const char *key, *value;
        } kvs[] = {
                { "/skydns/com/example/web/aaaa0001", "{\"host\":\"192.0.2.1\",\"targetstrip\":1}" },
                { "/skydns/com/example/web/aaaa0002", "{\"host\":\"192.0.2.2\",\"targetstrip\":1}" },
                { "/skydns/com/example/web/aaaa0003", "{\"host\":\"2001:db8::3\",\"targetstrip\":1}" },
                { "/skydns/com/example/*", "{\"host\":\"192.0.2.99\"}" },
                { "/skydns/com/example/txt", "{\"text\":\"hello\"}" },
        };
        Store *s = NULL;
        const StoreNode *n;
        StoreRRSet set;
        unsigned count = 0;

        CHECK(store_new(&s) == 0);
        for (size_t i = 0; i < ELEMENTSOF(kvs); i++) {
                SkyDnsEntry e = {};
                g_autofree char *owner = g_strconcat("etcd:", kvs[i].key, NULL);

                CHECK(skydns_parse(PREFIX, kvs[i].key, strlen(kvs[i].key), kvs[i].value, strlen(kvs[i].value), 30, &e,
                                   NULL) == 0);
                for (size_t j = 0; j < e.n_records; j++)
                        CHECK(store_add(s, e.name, e.records[j].type, e.records[j].value, e.ttl, owner, 0, NULL,
                                        NULL) == 1);
                skydns_entry_done(&e);
        }
        n = store_lookup(s, "web.example.com");
        CHECK(n);
        CHECK(store_node_rrset(n, DNS_TYPE_A, &set) && set.n == 2);
        CHECK(store_node_rrset(n, DNS_TYPE_AAAA, &set) && set.n == 1);
        CHECK(store_lookup(s, "*.example.com"));
        (void) store_foreach(s, NULL, "etcd:/skydns/com/example/web/", count_records, &count);
        CHECK(count == 3);
        store_free(s);
}

static void test_owners(void) {
        /* Records read from etcd are not this node's: never published again
         * (nor gossiped by SWIM), as SWIM's peer records are not. */
        CHECK(!store_owner_is_local("etcd:/skydns/com/example/web/x"));
        CHECK(!store_owner_is_local("peer:node-b"));
        CHECK(store_owner_is_local("hosts:/etc/joyride/hosts.d/a"));
        CHECK(store_owner_is_local("docker:0123456789ab"));
        CHECK(store_owner_is_local("dbus"));
        CHECK(!store_owner_is_local(NULL));
}

/* Values at the edges of what the plain reader takes (json-c reads the
 * rest): both must read each alike, whatever they make of it. */
static void test_plain_and_jsonc(void) {
        static const char *const values[] = {
                "{\"host\":\"10.0.0.1\",\"host\":\"10.0.0.2\"}", /* twice: the last counts */
                "{\"host\":\"10.0.0.1\",\"host\":null}",
                "{\"host\":null,\"text\":\"t\"}",
                "{\"host\":\"10.0.0.1\",\"ttl\":030}",
                "{\"host\":\"10.0.0.1\",\"ttl\":-0}",
                "{\"host\":\"10.0.0.1\",\"ttl\":1e2}",
                "{\"host\":\"10.0.0.1\",\"ttl\":999999999999999999}",
                "{\"host\":\"10.0.0.1\",\"ttl\":9999999999999999999}",
                "{\"host\":\"10.0.0.1\",\"ttl\":99999999999999999999}",
                "{\"host\":\"10.0.0.1\",\"ttl\":\"0060\"}",
                "{\"host\":\"10.0.0.1\",\"targetstrip\":17}",
                "{\"host\":\"10.0.0.1\",\"targetstrip\":\"1\"}",
                "{\"host\":\"10.0.0.1\",\"mail\":\"true\"}",
                "{\"host\":\"10.0.0.1\",\"mail\":false}",
                "{\"host\":\"10.0.0.1\",\"port\":-1,\"weight\":0.5,\"x\":{\"host\":\"10.9.9.9\"}}",
                "{\"Host\":\"10.0.0.1\",\"text\":\"x\"}",
                "{\"ho\\u0073t\":\"10.0.0.1\"}",
                "{\"host\":\"10.0.0.1\",}",
                "{\"host\":\"10.0.0.1\" \"ttl\":5}",
                "{\"host\" : \"10.0.0.1\" , \"ttl\" : 5 }",
                "\f{\"host\":\"10.0.0.1\"}",
                "{\"host\":\"10.0.0.1\"}\f",
                "{\"host\":\"10.0.0.1\"}{}",
                "{\"host\":\"10.0.0.1\",\"text\":\"caf\u00e9\"}",
                "{\"host\":\"10.0.0.1\",\"text\":\"a\\\"b\"}",
                "{\"host\":\"10.0.0.1\",\"ttl\":true}",
                "{\"host\":'10.0.0.1'}",
                "{host:\"10.0.0.1\"}",
                "{\"host\":\"10.0.0.1\",\"ttl\":NaN}",
                "{\"text\":\"tab\there\"}",
        };

        for (size_t i = 0; i < ELEMENTSOF(values); i++)
                g_free(describe("/skydns/com/example/edge", values[i]));
}

static void test_printable(void) {
        g_autofree char *p = skydns_key_printable("/skydns/a\nb\\c\x01\xff", 15);
        CHECK(streq(p, "/skydns/a\\x0ab\\x5cc\\x01\\xff"));
}

int main(void) {
        test_names();
        test_wildcards();
        test_values();
        test_plain_and_jsonc();
        test_publish();
        test_store();
        test_owners();
        test_printable();
        printf("test-etcd-skydns: ok\n");
        return 0;
}
