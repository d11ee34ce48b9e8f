/* SPDX-License-Identifier: MIT */
/* Unit tests for the hosts-file parser: every piece of /etc/hosts syntax we
 * accept, every kind of bad line we skip (and the warning that says so), and
 * a 100,000-line parse into a real store that must stay well under a second. */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hosts.h"
#include "store.h"
#include "test-util.h"

#define MAX_ITEMS 64

typedef struct Entry {
        char name[300];
        uint16_t type;
        char address[64];
        unsigned line;
} Entry;

typedef struct Warning {
        unsigned line;
        char why[600];
} Warning;

typedef struct Result {
        Entry entries[MAX_ITEMS];
        unsigned n_entries;
        Warning warnings[MAX_ITEMS];
        unsigned n_warnings;
        int fail_after; /* make the entry callback fail after this many, if > 0 */
} Result;

static int on_entry(const char *name, uint16_t type, const char *address, unsigned line, void *userdata) {
        Result *res = userdata;
        Entry *e;

        if (res->fail_after > 0 && res->n_entries >= (unsigned) res->fail_after)
                return -ENOMEM;
        CHECK(res->n_entries < MAX_ITEMS);
        e = &res->entries[res->n_entries++];
        CHECK(strlen(name) < sizeof e->name);
        CHECK(strlen(address) < sizeof e->address);
        snprintf(e->name, sizeof e->name, "%s", name);
        snprintf(e->address, sizeof e->address, "%s", address);
        e->type = type;
        e->line = line;
        return 0;
}

static void on_warning(unsigned line, const char *why, void *userdata) {
        Result *res = userdata;
        Warning *w;

        CHECK(res->n_warnings < MAX_ITEMS);
        w = &res->warnings[res->n_warnings++];
        w->line = line;
        snprintf(w->why, sizeof w->why, "%s", why);
}

static int parse(const char *data, size_t len, Result *res) {
        memset(res, 0, sizeof *res);
        return hosts_parse(data, len, on_entry, on_warning, res);
}

static int parse_str(const char *data, Result *res) {
        return parse(data, strlen(data), res);
}

static bool has_entry(const Result *res, const char *name, uint16_t type, const char *address, unsigned line) {
        for (unsigned i = 0; i < res->n_entries; i++)
                if (streq(res->entries[i].name, name) && res->entries[i].type == type &&
                    streq(res->entries[i].address, address) && res->entries[i].line == line)
                        return true;
        return false;
}

static bool has_warning(const Result *res, unsigned line, const char *substring) {
        for (unsigned i = 0; i < res->n_warnings; i++)
                if (res->warnings[i].line == line && strstr(res->warnings[i].why, substring))
                        return true;
        return false;
}

static void test_basic(void) {
        Result res;

        CHECK(parse_str("127.0.0.1 localhost\n"
                        "192.168.1.100 api.internal dashboard.internal\n",
                        &res) == 3);
        CHECK(res.n_entries == 3);
        CHECK(res.n_warnings == 0);
        CHECK(has_entry(&res, "localhost", DNS_TYPE_A, "127.0.0.1", 1));
        CHECK(has_entry(&res, "api.internal", DNS_TYPE_A, "192.168.1.100", 2));
        CHECK(has_entry(&res, "dashboard.internal", DNS_TYPE_A, "192.168.1.100", 2));
        /* In the order written. */
        CHECK(streq(res.entries[1].name, "api.internal"));
        CHECK(streq(res.entries[2].name, "dashboard.internal"));
}

static void test_comments_and_blanks(void) {
        Result res;

        CHECK(parse_str("# a whole-line comment\n"
                        "\n"
                        "   \n"
                        "\t\n"
                        "10.0.0.1 one.test # trailing comment two.test\n"
                        "   # indented comment 10.0.0.9 nine.test\n"
                        "10.0.0.2 two.test#glued-comment\n"
                        "#10.0.0.3 three.test\n",
                        &res) == 2);
        CHECK(res.n_warnings == 0);
        CHECK(has_entry(&res, "one.test", DNS_TYPE_A, "10.0.0.1", 5));
        CHECK(has_entry(&res, "two.test", DNS_TYPE_A, "10.0.0.2", 7));
}

static void test_whitespace(void) {
        Result res;

        CHECK(parse_str("\t10.0.0.1\t\ttab.test\t  spaces.test   \t\n"
                        "10.0.0.2      many.test\n",
                        &res) == 3);
        CHECK(res.n_warnings == 0);
        CHECK(has_entry(&res, "tab.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "spaces.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "many.test", DNS_TYPE_A, "10.0.0.2", 2));
}

static void test_crlf_and_no_final_newline(void) {
        Result res;

        CHECK(parse_str("10.0.0.1 a.test\r\n"
                        "# comment\r\n"
                        "\r\n"
                        "10.0.0.2 b.test c.test\r\n"
                        "10.0.0.3 last.test",
                        &res) == 4);
        CHECK(res.n_warnings == 0);
        CHECK(has_entry(&res, "a.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "b.test", DNS_TYPE_A, "10.0.0.2", 4));
        CHECK(has_entry(&res, "c.test", DNS_TYPE_A, "10.0.0.2", 4));
        CHECK(has_entry(&res, "last.test", DNS_TYPE_A, "10.0.0.3", 5));

        /* A CRLF file whose last line has a CR and no LF. */
        CHECK(parse_str("10.0.0.4 cr.test\r", &res) == 1);
        CHECK(has_entry(&res, "cr.test", DNS_TYPE_A, "10.0.0.4", 1));
        CHECK(res.n_warnings == 0);
}

static void test_ipv6_and_canonical(void) {
        Result res;

        CHECK(parse_str("::1 localhost6\n"
                        "::0:1 short.test\n"
                        "2001:DB8:0:0:0:0:0:1 upper.test\n"
                        "fd00:0000::0042 zeros.test\n"
                        "::ffff:10.0.0.1 mapped.test\n"
                        "010.0.0.1 octal.test\n",
                        &res) == 5);
        CHECK(has_entry(&res, "localhost6", DNS_TYPE_AAAA, "::1", 1));
        CHECK(has_entry(&res, "short.test", DNS_TYPE_AAAA, "::1", 2));
        CHECK(has_entry(&res, "upper.test", DNS_TYPE_AAAA, "2001:db8::1", 3));
        CHECK(has_entry(&res, "zeros.test", DNS_TYPE_AAAA, "fd00::42", 4));
        CHECK(has_entry(&res, "mapped.test", DNS_TYPE_AAAA, "::ffff:10.0.0.1", 5));
        /* Leading zeros are ambiguous (octal to some resolvers): refused. */
        CHECK(res.n_warnings == 1);
        CHECK(has_warning(&res, 6, "not an IP address: '010.0.0.1'"));
}

static void test_bad_address(void) {
        Result res;

        CHECK(parse_str("10.0.0.1 good.test\n"
                        "10.0.0.300 bad.test\n"
                        "hello world.test\n"
                        "10.0.0 short.test\n"
                        "1.2.3.4.5 long.test\n"
                        "2001:db8::g1 hex.test\n"
                        "10.0.0.2 also-good.test\n",
                        &res) == 2);
        CHECK(has_entry(&res, "good.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "also-good.test", DNS_TYPE_A, "10.0.0.2", 7));
        CHECK(res.n_warnings == 5);
        CHECK(has_warning(&res, 2, "not an IP address: '10.0.0.300'"));
        CHECK(has_warning(&res, 3, "not an IP address: 'hello'"));
        CHECK(has_warning(&res, 4, "not an IP address: '10.0.0'"));
        CHECK(has_warning(&res, 5, "not an IP address: '1.2.3.4.5'"));
        CHECK(has_warning(&res, 6, "not an IP address: '2001:db8::g1'"));
}

static void test_no_names(void) {
        Result res;

        CHECK(parse_str("10.0.0.1\n"
                        "10.0.0.2   # only a comment\n"
                        "10.0.0.3 ok.test\n",
                        &res) == 1);
        CHECK(res.n_warnings == 2);
        CHECK(has_warning(&res, 1, "no names"));
        CHECK(has_warning(&res, 2, "no names"));
        CHECK(has_entry(&res, "ok.test", DNS_TYPE_A, "10.0.0.3", 3));
}

static void test_bad_name(void) {
        Result res;

        CHECK(parse_str("10.0.0.1 good.test bad..test also.test bad!name last.test\n", &res) == 3);
        CHECK(has_entry(&res, "good.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "also.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "last.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(res.n_warnings == 2);
        CHECK(has_warning(&res, 1, "'bad..test'"));
        CHECK(has_warning(&res, 1, "'bad!name'"));
        /* The store's reason is passed on. */
        CHECK(has_warning(&res, 1, "empty label"));

        /* A name longer than anything valid. */
        char line[3000];
        memset(line, 'a', sizeof line);
        /* A line of the file, not a C string: parse() takes its length. */
        memcpy(line, "10.0.0.1 ", 9);                  /* NOLINT(bugprone-not-null-terminated-result) */
        memcpy(line + sizeof line - 8, " ok.test", 8); /* NOLINT(bugprone-not-null-terminated-result) */
        CHECK(parse(line, sizeof line, &res) == 1);
        CHECK(has_entry(&res, "ok.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(res.n_warnings == 1);
        CHECK(has_warning(&res, 1, "too long"));
        /* The quote in the warning is cut short. */
        CHECK(strlen(res.warnings[0].why) < 200);
}

static void test_zone(void) {
        Result res;

        CHECK(parse_str("fe80::1%eth0 zoned.test\n"
                        "fe80::1 link.test\n",
                        &res) == 1);
        CHECK(has_entry(&res, "link.test", DNS_TYPE_AAAA, "fe80::1", 2));
        CHECK(res.n_warnings == 1);
        CHECK(has_warning(&res, 1, "zone"));
        CHECK(has_warning(&res, 1, "fe80::1%eth0"));
}

static void test_empty(void) {
        Result res;

        CHECK(parse("", 0, &res) == 0);
        CHECK(res.n_entries == 0 && res.n_warnings == 0);
        CHECK(hosts_parse(NULL, 0, on_entry, on_warning, &res) == 0);
        CHECK(parse_str("\n\n\n", &res) == 0);
        CHECK(res.n_warnings == 0);
        /* No callbacks at all is allowed: just count. */
        const char *two = "10.0.0.1 a.test b.test\nbad x\n";
        CHECK(hosts_parse(two, strlen(two), NULL, NULL, NULL) == 2);
}

static void test_binary_junk(void) {
        Result res;
        static const char junk[] =
                "10.0.0.1 a.test\n"
                "\x00\x01\xff\xfe garbage \x7f\n"
                "10.0.0.2 b\x00"
                "c.test d.test\n"
                "10.0.0\x00.3 e.test\n"
                "\xc3\xa9t\xc3\xa9 \x01\n"
                "10.0.0.4 f.test";
        char why_line[600];

        CHECK(parse(junk, sizeof junk - 1, &res) == 3);
        CHECK(has_entry(&res, "a.test", DNS_TYPE_A, "10.0.0.1", 1));
        CHECK(has_entry(&res, "d.test", DNS_TYPE_A, "10.0.0.2", 3));
        CHECK(has_entry(&res, "f.test", DNS_TYPE_A, "10.0.0.4", 6));
        CHECK(has_warning(&res, 2, "not an IP address"));
        CHECK(has_warning(&res, 3, "NUL"));
        CHECK(has_warning(&res, 4, "not an IP address"));
        CHECK(has_warning(&res, 5, "not an IP address"));
        /* Warnings never carry raw control or non-ASCII bytes. */
        for (unsigned i = 0; i < res.n_warnings; i++) {
                snprintf(why_line, sizeof why_line, "%s", res.warnings[i].why);
                for (const char *p = why_line; *p; p++)
                        CHECK((unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f);
        }
        CHECK(has_warning(&res, 2, "\\x00\\x01\\xff\\xfe"));

        /* Every byte value, in lines of random-ish length: must not crash. */
        char all[4096];
        for (size_t i = 0; i < sizeof all; i++)
                all[i] = (char) ((i * 7919 + (i >> 3)) & 0xff);
        memset(&res, 0, sizeof res);
        for (size_t off = 0; off < sizeof all; off += 512)
                (void) hosts_parse(all + off, sizeof all - off, NULL, NULL, NULL);
}

static void test_entry_error_stops(void) {
        Result res;

        memset(&res, 0, sizeof res);
        res.fail_after = 2;
        const char *data = "10.0.0.1 a.test b.test c.test\n10.0.0.2 d.test\n";
        CHECK(hosts_parse(data, strlen(data), on_entry, on_warning, &res) == -ENOMEM);
        CHECK(res.n_entries == 2);
}

typedef struct StoreContext {
        Store *store;
        unsigned n_warnings;
} StoreContext;

static int store_entry(const char *name, uint16_t type, const char *address, unsigned line, void *userdata) {
        StoreContext *c = userdata;
        int r;

        r = store_add(c->store, name, type, address, 60, "hosts:/test/big.hosts", line, NULL, NULL);
        return r < 0 ? r : 0;
}

static void store_warning(unsigned line, const char *why, void *userdata) {
        ((StoreContext *) userdata)->n_warnings++;
}

static void test_big_into_store(void) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *data = NULL;
        StoreContext c = {};
        size_t size = 0, allocated = 100000 * 64;
        uint64_t start, took;
        const StoreNode *n;
        StoreRRSet set;
        int r;

        CHECK(store_new(&store) >= 0);
        c.store = store;

        data = malloc(allocated);
        CHECK(data);
        for (unsigned i = 0; i < 100000; i++) {
                int k;

                if (i % 10 == 9)
                        /* IPv6 every tenth line, a comment on some. */
                        k = snprintf(data + size, allocated - size, "fd00::%x:%x host%u.big.test # v6\n", i >> 16,
                                     i & 0xffff, i);
                else
                        k = snprintf(data + size, allocated - size, "10.%u.%u.%u\thost%u.big.test\n", (i >> 16) & 0xff,
                                     (i >> 8) & 0xff, i & 0xff, i);
                CHECK(k > 0 && (size_t) k < allocated - size);
                size += (size_t) k;
        }

        start = now_usec(CLOCK_MONOTONIC);
        r = hosts_parse(data, size, store_entry, store_warning, &c);
        took = now_usec(CLOCK_MONOTONIC) - start;

        fprintf(stderr, "100000 lines parsed into the store in %llu ms: %i entries, %u warnings\n",
                (unsigned long long) (took / 1000), r, c.n_warnings);
        CHECK(r == 100000);
        CHECK(c.n_warnings == 0);
        CHECK(store_count(store) == 100000);
        CHECK(store_count_owner_prefix(store, "hosts:") == 100000);
        n = store_lookup(store, "host12345.big.test");
        CHECK(n && store_node_rrset(n, DNS_TYPE_A, &set));
        n = store_lookup(store, "host99999.big.test");
        CHECK(n && store_node_rrset(n, DNS_TYPE_AAAA, &set));
        /* The time is printed, not asserted: speed is measured by bench/
         * (first answer with 100,000 hosts lines), not by a timed test. */

        /* The same again, by mark and sweep: no change at all. */
        uint64_t version = store_version(store);
        store_mark_owner(store, "hosts:/test/big.hosts");
        CHECK(hosts_parse(data, size, store_entry, store_warning, &c) == 100000);
        CHECK(store_sweep_owner(store, "hosts:/test/big.hosts") == 0);
        CHECK(store_version(store) == version);
}

int main(void) {
        test_basic();
        test_comments_and_blanks();
        test_whitespace();
        test_crlf_and_no_final_newline();
        test_ipv6_and_canonical();
        test_bad_address();
        test_no_names();
        test_bad_name();
        test_zone();
        test_empty();
        test_binary_junk();
        test_entry_error_stops();
        test_big_into_store();
        printf("test-hosts: all passed\n");
        return 0;
}
