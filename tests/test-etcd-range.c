/* SPDX-License-Identifier: MIT */
/* Unit tests for reading etcd's range pages (etcd-range.c) and the JSON
 * cursor under it (json-cursor.c): pages as etcd 3.4's gateway writes them
 * and as its gRPC API does (protobuf), the requests, where the next page
 * starts, pairs that cannot be served, and pages that are not what etcd
 * sends, each refused with a reason. */

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-range.h"
#include "json-cursor.h"
#include "macro.h"
#include "test-util.h"

#define PREFIX "/skydns"

/* --- the cursor ------------------------------------------------------------ */

/* Skips one value: NULL when the text is one JSON value, else the error. */
static const char *skip_error(const char *text) {
        JsonCursor c;

        json_cursor_init(&c, text, strlen(text));
        if (json_cursor_skip(&c) && json_cursor_end(&c))
                return NULL;
        return json_cursor_error(&c, NULL);
}

static void test_cursor_valid(void) {
        static const char *const valid[] = {
                "{}",
                "[]",
                " { } ",
                "\"\"",
                "0",
                "-0",
                "1.5e-3",
                "1E+2",
                "-12.25",
                "true",
                "false",
                "null",
                "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}",
                "[[[[]]]]",
                "\"caf\xc3\xa9\"", /* UTF-8 passes through unchecked */
                "\t\r\n[ 1 , 2 ]\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(valid); i++)
                if (skip_error(valid[i])) {
                        fprintf(stderr, "%s: %s\n", valid[i], skip_error(valid[i]));
                        exit(EXIT_FAILURE);
                }
}

static void test_cursor_invalid(void) {
        static const struct {
                const char *text, *error;
        } invalid[] = {
                { "", "ends too early" },
                { "{", "ends too early" },
                { "{\"a\":1,}", "a comma before the end" },
                { "[1,]", "a comma before the end" },
                { "[1 2]", "expected ',' or ']'" },
                { "{\"a\" 1}", "expected ':'" },
                { "{a:1}", "expected a string" },
                { "{\"a\":1 \"b\":2}", "expected ',' or '}'" },
                { "01", "more after the value" },
                { "1.", "expected a digit after '.'" },
                { "1e", "expected a digit in an exponent" },
                { "-", "expected a number" },
                { "tru", "expected a value" },
                { "nul", "expected a value" },
                { "'a'", "expected a value" },
                { "\"a", "a string that does not end" },
                { "\"a\nb\"", "a control character in a string" },
                { "\"\\x\"", "a bad escape in a string" },
                { "\"\\u12\"", "a bad \\u escape" },
                { "{} {}", "more after the value" },
                { "\f{}", "expected a value" },
        };

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                const char *e = skip_error(invalid[i].text);
                if (!e || !streq(e, invalid[i].error)) {
                        fprintf(stderr, "%s: got %s, want %s\n", invalid[i].text, strna(e), invalid[i].error);
                        exit(EXIT_FAILURE);
                }
        }

        /* Nested deeper than the cursor goes. */
        {
                g_autofree char *deep = g_strnfill(JSON_CURSOR_DEPTH_MAX + 1, '[');
                CHECK(streq(skip_error(deep), "nested too deep"));
        }
        /* Where the error is. */
        {
                JsonCursor c;
                size_t at;
                json_cursor_init(&c, "[1, x]", 6);
                CHECK(!json_cursor_skip(&c));
                CHECK(streq(json_cursor_error(&c, &at), "expected a value"));
                CHECK(at == 4);
                /* The error sticks. */
                CHECK(!json_cursor_end(&c));
                CHECK(json_cursor_peek(&c) == JSON_INVALID);
        }
}

static void test_cursor_members(void) {
        const char *text =
                "{\"n\":42,\"s\":\"a\\u00e9\\ud83d\\ude00\\ud800x\",\"b\":true,\"o\":{\"x\":[1]},\"z\":null}";
        JsonCursor c;
        JsonSpan name, v;
        bool b = false;
        unsigned seen = 0;

        json_cursor_init(&c, text, strlen(text));
        CHECK(json_cursor_object_begin(&c));
        while (json_cursor_member(&c, &name)) {
                seen++;
                if (json_span_is(&name, "n")) {
                        CHECK(json_cursor_peek(&c) == JSON_NUMBER);
                        CHECK(json_cursor_number(&c, &v));
                        CHECK(v.len == 2 && memcmp(v.p, "42", 2) == 0);
                } else if (json_span_is(&name, "s")) {
                        g_autofree char *t = NULL;
                        size_t len;
                        CHECK(json_cursor_string(&c, &v));
                        CHECK(v.escaped);
                        t = json_span_unescape(&v, &len);
                        /* é, 😀 from a surrogate pair, U+FFFD for a lone surrogate */
                        CHECK(streq(t, "a\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx"));
                        CHECK(len == strlen(t));
                } else if (json_span_is(&name, "b"))
                        CHECK(json_cursor_bool(&c, &b));
                else
                        CHECK(json_cursor_skip(&c));
        }
        CHECK(json_cursor_end(&c));
        CHECK(seen == 5 && b);

        /* A member name written with an escape is the same name. */
        {
                JsonSpan s = { "k\\u0065y", 8, true };
                CHECK(json_span_is(&s, "key"));
                CHECK(!json_span_is(&s, "kex"));
        }
        /* "\u0000" is text too. */
        {
                JsonSpan s = { "a\\u0000b", 8, true };
                size_t len;
                g_autofree char *t = json_span_unescape(&s, &len);
                CHECK(len == 3 && t[0] == 'a' && t[1] == 0 && t[2] == 'b');
        }
}

/* --- pages -------------------------------------------------------------------- */

static char *b64(const char *s) {
        return g_base64_encode((const guchar *) s, strlen(s));
}

/* One pair as the gateway writes it. */
static void append_kv(GString *page, const char *key, const char *value, const char *mod_revision, const char *lease) {
        g_autofree char *k = b64(key), *v = b64(value);

        if (page->str[page->len - 1] != '[')
                g_string_append_c(page, ',');
        g_string_append_printf(page,
                               "{\"key\":\"%s\",\"create_revision\":\"2\",\"mod_revision\":\"%s\",\"version\":\"1\"", k,
                               mod_revision);
        if (*value)
                g_string_append_printf(page, ",\"value\":\"%s\"", v);
        if (lease)
                g_string_append_printf(page, ",\"lease\":\"%s\"", lease);
        g_string_append_c(page, '}');
}

static void test_page(void) {
        g_autoptr(GString) page = g_string_new(
                "{\"header\":{\"cluster_id\":\"13563953999236700474\",\"member_id\":\"18322585789577394815\","
                "\"revision\":\"803\",\"raft_term\":\"2\"},\"kvs\":[");
        EtcdRangePage p = {};
        g_autofree char *error = NULL;

        append_kv(page, "/skydns/test/a/x1", "{\"host\":\"10.0.0.1\",\"ttl\":60,\"targetstrip\":1}", "7", NULL);
        append_kv(page, "/skydns/test/b", "{\"text\":\"hello\"}", "8", "7587869445410389508");
        append_kv(page, "/skydns/test/bad", "{\"host\":", "9", NULL);
        append_kv(page, "/skydns/test/empty", "", "10", NULL);
        append_kv(page, "/skydns/test/mine", "{\"host\":\"10.0.0.9\"}", "11", "42");
        g_string_append(page, "],\"more\":true,\"count\":\"95000\"}");

        CHECK(etcd_range_parse(page->str, page->len, PREFIX, 30, 42, &p, &error) == 0);
        CHECK(!error);
        CHECK(p.revision == 803);
        CHECK(p.more);
        CHECK(p.n_kvs == 5);

        CHECK(streq(p.kvs[0].key, "/skydns/test/a/x1") && p.kvs[0].key_len == 17);
        CHECK(p.kvs[0].mod_revision == 7 && p.kvs[0].lease == 0 && !p.kvs[0].bad);
        CHECK(p.kvs[0].r == 0 && streq(p.kvs[0].entry.name, "a.test") && p.kvs[0].entry.ttl == 60);
        CHECK(p.kvs[0].entry.n_records == 1 && streq(p.kvs[0].entry.records[0].value, "10.0.0.1"));

        CHECK(p.kvs[1].lease == 7587869445410389508LL && p.kvs[1].r == 0);
        CHECK(streq(p.kvs[1].entry.records[0].value, "hello"));

        /* Bad JSON in a value: the pair says why; the page is fine. */
        CHECK(p.kvs[2].r == -EINVAL && strstr(p.kvs[2].error, "not JSON"));
        CHECK(streq(p.kvs[2].key, "/skydns/test/bad"));
        /* The gateway leaves an empty value out. */
        CHECK(p.kvs[3].r == -EINVAL && streq(p.kvs[3].error, "empty value"));
        /* This node's own (lease 42): the key, not mapped. */
        CHECK(streq(p.kvs[4].key, "/skydns/test/mine") && p.kvs[4].lease == 42);
        CHECK(p.kvs[4].r == 0 && p.kvs[4].entry.n_records == 0 && !p.kvs[4].error);

        /* The next page starts right after the last key. */
        CHECK(p.next_len == strlen("/skydns/test/mine") + 1);
        CHECK(memcmp(p.next_key, "/skydns/test/mine", p.next_len) == 0); /* with its NUL */
        etcd_range_page_done(&p);
        CHECK(p.kvs == NULL && p.next_key == NULL);
}

static void test_page_edges(void) {
        EtcdRangePage p = {};
        char *error = NULL;
        /* The last page; numbers as JSON numbers; members in another order;
         * white space; unknown members. */
        const char *last =
                " { \"kvs\" : [ { \"value\" : \"eyJob3N0IjoiMTAuMC4wLjEifQ==\" , \"mod_revision\" : 5 , "
                "\"key\" : \"L3NreWRucy90ZXN0L2M=\", \"extra\": {\"x\": [1, 2]} } ] , "
                "\"header\" : { \"revision\" : 12 } , \"more\" : false } ";
        /* An empty range. */
        const char *empty = "{\"header\":{\"revision\":\"9\"}}";
        /* Keys that cannot be used, and an element that is not an object. */
        const char *bad =
                "{\"kvs\":[{\"key\":\"!!!\",\"value\":\"e30=\"},{\"key\":\"L3NreWRucy9hAGI=\"},42,"
                "{\"key\":\"L3NreWRucy90ZXN0L2Q=\",\"value\":\"%%%\"}],\"more\":true}";

        CHECK(etcd_range_parse(last, strlen(last), PREFIX, 30, 0, &p, &error) == 0);
        CHECK(p.revision == 12 && !p.more && !p.next_key && p.n_kvs == 1);
        CHECK(streq(p.kvs[0].key, "/skydns/test/c") && p.kvs[0].mod_revision == 5);
        CHECK(p.kvs[0].r == 0 && streq(p.kvs[0].entry.records[0].value, "10.0.0.1"));
        etcd_range_page_done(&p);

        CHECK(etcd_range_parse(empty, strlen(empty), PREFIX, 30, 0, &p, &error) == 0);
        CHECK(p.revision == 9 && !p.more && p.n_kvs == 0);
        etcd_range_page_done(&p);

        CHECK(etcd_range_parse(bad, strlen(bad), PREFIX, 30, 0, &p, &error) == 0);
        CHECK(p.n_kvs == 4);
        CHECK(p.kvs[0].bad && strstr(p.kvs[0].bad, "base64") && !p.kvs[0].key);
        CHECK(p.kvs[1].bad && strstr(p.kvs[1].bad, "NUL"));
        CHECK(p.kvs[2].bad);
        CHECK(p.kvs[3].bad && strstr(p.kvs[3].bad, "base64"));
        /* The last key is fine: the next page starts after it. */
        CHECK(p.more && p.next_len == strlen("/skydns/test/d") + 1);
        etcd_range_page_done(&p);

        /* More to come, but the last key is not base64: where to go on? */
        {
                const char *lost = "{\"kvs\":[{\"key\":\"!!\"}],\"more\":true}";
                CHECK(etcd_range_parse(lost, strlen(lost), PREFIX, 30, 0, &p, &error) == -EBADMSG);
                CHECK(strstr(error, "not base64"));
                g_clear_pointer(&error, g_free);
        }
        /* Not a range reply at all. */
        {
                static const char *const broken[] = { "", "[]", "{\"kvs\":[", "{\"kvs\":[{\"key\":}]}", "<html>" };
                for (size_t i = 0; i < ELEMENTSOF(broken); i++) {
                        CHECK(etcd_range_parse(broken[i], strlen(broken[i]), PREFIX, 30, 0, &p, &error) == -EBADMSG);
                        CHECK(g_str_has_prefix(error, "/v3/kv/range: the answer is not JSON as expected ("));
                        CHECK(strstr(error, " at byte "));
                        CHECK(p.kvs == NULL);
                        g_clear_pointer(&error, g_free);
                }
        }
}

/* --- protobuf ----------------------------------------------------------------------------- */

static void put_varint(GByteArray *b, uint64_t v) {
        do {
                guint8 c = (guint8) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                g_byte_array_append(b, &c, 1);
                v >>= 7;
        } while (v > 0);
}

static void put_bytes(GByteArray *b, unsigned field, const void *data, size_t len) {
        put_varint(b, (uint64_t) field << 3 | 2);
        put_varint(b, len);
        g_byte_array_append(b, data, (guint) len);
}

static void put_int(GByteArray *b, unsigned field, uint64_t v) {
        put_varint(b, (uint64_t) field << 3);
        put_varint(b, v);
}

/* A KeyValue as etcd writes it (every field, in order). */
static void put_kv(GByteArray *page, const char *key, const char *value, int64_t mod_revision, int64_t lease) {
        g_autoptr(GByteArray) kv = g_byte_array_new();

        put_bytes(kv, 1, key, strlen(key));
        put_int(kv, 2, 2);
        put_int(kv, 3, (uint64_t) mod_revision);
        put_int(kv, 4, 1);
        if (*value)
                put_bytes(kv, 5, value, strlen(value));
        if (lease)
                put_int(kv, 6, (uint64_t) lease);
        put_bytes(page, 2, kv->data, kv->len);
}

static void test_page_pb(void) {
        g_autoptr(GByteArray) page = g_byte_array_new(), header = g_byte_array_new();
        EtcdRangePage p = {};
        g_autofree char *error = NULL, *next = NULL;
        size_t next_len = 0;

        put_int(header, 1, UINT64_C(13563953999236700474));
        put_int(header, 2, UINT64_C(18322585789577394815));
        put_int(header, 3, 803);
        put_int(header, 4, 2);
        put_bytes(page, 1, header->data, header->len);
        put_kv(page, "/skydns/test/a/x1", "{\"host\":\"10.0.0.1\",\"ttl\":60,\"targetstrip\":1}", 7, 0);
        put_kv(page, "/skydns/test/b", "{\"text\":\"hello\"}", 8, 7587869445410389508LL);
        put_kv(page, "/skydns/test/empty", "", 10, 0);
        put_kv(page, "/skydns/test/mine", "{\"host\":\"10.0.0.9\"}", 11, 42);
        put_int(page, 3, 1);     /* more */
        put_int(page, 4, 95000); /* count */
        put_int(page, 9, 5);     /* a field this version does not know */

        CHECK(etcd_range_parse_pb(page->data, page->len, PREFIX, 30, 42, &p, &error) == 0);
        CHECK(!error);
        CHECK(p.revision == 803 && p.more && p.n_kvs == 4);
        CHECK(streq(p.kvs[0].key, "/skydns/test/a/x1") && p.kvs[0].mod_revision == 7);
        CHECK(p.kvs[0].r == 0 && streq(p.kvs[0].entry.name, "a.test") && p.kvs[0].entry.ttl == 60);
        CHECK(p.kvs[1].lease == 7587869445410389508LL && streq(p.kvs[1].entry.records[0].value, "hello"));
        CHECK(p.kvs[2].r == -EINVAL && streq(p.kvs[2].error, "empty value"));
        CHECK(streq(p.kvs[3].key, "/skydns/test/mine") && p.kvs[3].entry.n_records == 0 && p.kvs[3].lease == 42);
        CHECK(p.next_len == strlen("/skydns/test/mine") + 1 &&
              memcmp(p.next_key, "/skydns/test/mine", p.next_len) == 0);
        etcd_range_page_done(&p);

        /* The next page's start, without mapping the pairs. */
        CHECK(etcd_range_pb_next(page->data, page->len, &next, &next_len));
        CHECK(next_len == strlen("/skydns/test/mine") + 1 && memcmp(next, "/skydns/test/mine", next_len) == 0);

        /* Truncated anywhere: an error that says where, never a crash. */
        for (size_t cut = 1; cut < page->len; cut++) {
                int r = etcd_range_parse_pb(page->data, cut, PREFIX, 30, 0, &p, &error);
                if (r == 0) {
                        etcd_range_page_done(&p);
                        continue; /* cut between two fields */
                }
                CHECK(r == -EBADMSG);
                CHECK(g_str_has_prefix(error, "/etcdserverpb.KV/Range: the answer is not a range ("));
                CHECK(p.kvs == NULL);
                g_clear_pointer(&error, g_free);
        }

        /* A known field of the wrong type; an unknown wire type; field 0. */
        {
                static const guint8 wrong_type[] = { 0x18, 0x01, 0x10, 0x01 }; /* more, then kvs as a number */
                static const guint8 bad_wire[] = { 0x0b };                     /* field 1, wire type 3 */
                static const guint8 zero[] = { 0x00, 0x01 };
                static const guint8 overlong[] = { 0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                   0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
                struct {
                        const guint8 *data;
                        size_t len;
                        const char *why;
                } cases[] = {
                        { wrong_type, sizeof wrong_type, "a field of the wrong type" },
                        { bad_wire, sizeof bad_wire, "a field of an unknown wire type" },
                        { zero, sizeof zero, "a field numbered 0" },
                        { overlong, sizeof overlong, "a number longer than 10 bytes" },
                };
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        CHECK(etcd_range_parse_pb(cases[i].data, cases[i].len, PREFIX, 30, 0, &p, &error) == -EBADMSG);
                        if (!strstr(error, cases[i].why)) {
                                fprintf(stderr, "case %zu: %s\n", i, error);
                                exit(EXIT_FAILURE);
                        }
                        g_clear_pointer(&error, g_free);
                }
        }
        /* An empty message is an empty range. */
        CHECK(etcd_range_parse_pb("", 0, PREFIX, 30, 0, &p, &error) == 0);
        CHECK(p.n_kvs == 0 && !p.more && p.revision == 0);
        etcd_range_page_done(&p);
}

static void test_request_pb(void) {
        g_autoptr(GBytes) first = etcd_range_request_pb("/skydns/", 8, "/skydns0", 8, 10000, 0, false);
        g_autoptr(GBytes) next = etcd_range_request_pb("/skydns/a\0", 10, "/skydns0", 8, 10000, 803, true);
        static const guint8 want_first[] = { 0x0a, 8,   '/', 's', 'k', 'y', 'd', 'n', 's',  '/',  0x12, 8,
                                             '/',  's', 'k', 'y', 'd', 'n', 's', '0', 0x18, 0x90, 0x4e };
        static const guint8 want_next[] = { 0x0a, 10,  '/',  's',  'k',  'y',  'd',  'n',  's',  '/',
                                            'a',  0,   0x12, 8,    '/',  's',  'k',  'y',  'd',  'n',
                                            's',  '0', 0x18, 0x90, 0x4e, 0x20, 0xa3, 0x06, 0x38, 0x01 };

        CHECK(g_bytes_get_size(first) == sizeof want_first);
        CHECK(memcmp(g_bytes_get_data(first, NULL), want_first, sizeof want_first) == 0);
        CHECK(g_bytes_get_size(next) == sizeof want_next);
        CHECK(memcmp(g_bytes_get_data(next, NULL), want_next, sizeof want_next) == 0);
}

static void test_int64(void) {
        CHECK(etcd_int64_from_span("0", 1) == 0);
        CHECK(etcd_int64_from_span("9223372036854775807", 19) == INT64_MAX);
        CHECK(etcd_int64_from_span("9223372036854775808", 19) == 0);
        CHECK(etcd_int64_from_span("-5", 2) == -5);
        CHECK(etcd_int64_from_span("12a", 3) == 0);
        CHECK(etcd_int64_from_span("", 0) == 0);
        CHECK(etcd_int64_from_span("-", 1) == 0);
}

int main(void) {
        test_cursor_valid();
        test_cursor_invalid();
        test_cursor_members();
        test_page();
        test_page_edges();
        test_page_pb();
        test_request_pb();
        test_int64();
        printf("test-etcd-range: ok\n");
        return 0;
}
