/* SPDX-License-Identifier: MIT */
/* DNS names and rdata: the one name validator (what the store, hosts files,
 * Docker labels, D-Bus, cluster peers and the configuration accept),
 * presentation <-> wire conversion, and rdata parsing and printing. Also the
 * one node-id validator. */

#include <stdio.h>
#include <string.h>

#include "dns-name.h"
#include "dns-rdata.h"
#include "store.h"
#include "swim.h"
#include "test-util.h"

static bool rejects(const char *name, DnsNameFlags flags, const char *why_part) {
        const char *why = NULL;

        if (dns_name_check(name, flags, &why) != -EINVAL || !why)
                return false;
        if (!strstr(why, why_part)) {
                fprintf(stderr, "'%s': '%s' does not say '%s'\n", name, why, why_part);
                return false;
        }
        return true;
}

static void test_name_check(void) {
        char long_label[70], long_name[300];

        CHECK(dns_name_is_valid("www.example.com", 0));
        CHECK(dns_name_is_valid("WWW.Example.COM.", 0));
        CHECK(dns_name_is_valid("_http._tcp.example", 0));
        CHECK(dns_name_is_valid("a-b.c0", 0));
        CHECK(dns_name_is_valid("*.example.com", DNS_NAME_WILDCARD));

        CHECK(rejects(NULL, 0, "empty"));
        CHECK(rejects("", 0, "empty"));
        CHECK(rejects(".", 0, "root"));
        CHECK(rejects("a..b", 0, "empty label"));
        CHECK(rejects(".a", 0, "empty label"));
        CHECK(rejects("a b", 0, "invalid character"));
        CHECK(rejects("a\\.b", 0, "invalid character"));
        /* Host-name rules, for records as for settings. */
        CHECK(rejects("-a.example", DNS_NAME_WILDCARD, "start with '-'"));
        CHECK(rejects("a.-b", DNS_NAME_WILDCARD, "start with '-'"));
        CHECK(rejects("a-.example", DNS_NAME_WILDCARD, "end with '-'"));
        CHECK(rejects("a.b-.", DNS_NAME_WILDCARD, "end with '-'"));
        /* Wildcards only where allowed, and only as the whole first label. */
        CHECK(rejects("*.example.com", 0, "'*' is not allowed"));
        CHECK(rejects("a.*.example", DNS_NAME_WILDCARD, "whole first label"));
        CHECK(rejects("*a.example", DNS_NAME_WILDCARD, "whole first label"));
        CHECK(rejects("*", DNS_NAME_WILDCARD, "needs a name below"));

        memset(long_label, 'a', 64);
        long_label[64] = 0;
        CHECK(rejects(long_label, 0, "label longer than 63"));
        long_label[63] = 0;
        CHECK(dns_name_is_valid(long_label, 0));

        /* 253 characters pass, 254 do not. */
        for (size_t i = 0; i < 253; i++)
                long_name[i] = i % 2 ? '.' : 'a';
        long_name[253] = 0;
        CHECK(dns_name_is_valid(long_name, 0));
        long_name[252] = 'a';
        long_name[253] = 'a';
        long_name[254] = 0;
        CHECK(rejects(long_name, 0, "longer than 253"));
}

static void test_name_wire(void) {
        uint8_t w[DNS_WIRE_NAME_MAX];
        char out[DNS_NAME_TEXT_MAX];
        static const uint8_t odd[] = "\3a.b\2\\\001\0";

        CHECK(dns_name_to_wire("WWW.Example.com.", w) == 17);
        CHECK(memcmp(w, "\3www\7example\3com", 17) == 0);
        CHECK(dns_name_to_wire(".", w) == 1 && w[0] == 0);
        CHECK(dns_name_to_wire("a..b", w) == -EINVAL);

        CHECK(dns_name_to_wire("WWW.Example.com.", w) == 17);
        CHECK(dns_wire_to_name(w, 17, out, sizeof out) == 15 && strcmp(out, "www.example.com") == 0);
        CHECK(dns_wire_to_name(w, 16, out, sizeof out) == -EINVAL); /* no root byte */
        CHECK(dns_wire_to_name(odd, sizeof odd - 1, out, sizeof out) > 0);
        CHECK(strcmp(out, "a\\.b.\\\\\\001") == 0);
}

static void test_rdata(void) {
        uint8_t buf[DNS_RDATA_MAX];
        char out[DNS_RDATA_TEXT_MAX];
        const char *why = NULL;
        int n;

        CHECK(dns_type_from_string("aaaa") == DNS_TYPE_AAAA);
        CHECK(dns_type_from_string("SOA") == -EINVAL); /* we hold no SOA records */
        CHECK(strcmp(dns_type_to_string(DNS_TYPE_SOA), "SOA") == 0);
        CHECK(dns_type_to_string(99) == NULL);

        n = dns_rdata_from_string(DNS_TYPE_A, "192.0.2.7", buf, NULL);
        CHECK(n == 4 && memcmp(buf, "\xc0\x00\x02\x07", 4) == 0);
        CHECK(dns_rdata_to_string(DNS_TYPE_A, buf, 4, out) == 9 && strcmp(out, "192.0.2.7") == 0);
        n = dns_rdata_from_string(DNS_TYPE_AAAA, "2001:DB8::1", buf, NULL);
        CHECK(n == 16 && dns_rdata_to_string(DNS_TYPE_AAAA, buf, 16, out) > 0 && strcmp(out, "2001:db8::1") == 0);
        n = dns_rdata_from_string(DNS_TYPE_CNAME, "Target.Example.", buf, NULL);
        CHECK(n == 16 && dns_rdata_to_string(DNS_TYPE_CNAME, buf, 16, out) > 0 && strcmp(out, "target.example") == 0);

        CHECK(dns_rdata_from_string(DNS_TYPE_A, "10.0.0", buf, &why) == -EINVAL && strstr(why, "IPv4"));
        CHECK(dns_rdata_from_string(DNS_TYPE_CNAME, "*.example", buf, &why) == -EINVAL && strstr(why, "wildcard"));
        CHECK(dns_rdata_from_string(DNS_TYPE_PTR, "-x.example", buf, &why) == -EINVAL && strstr(why, "'-'"));
        CHECK(dns_rdata_from_string(DNS_TYPE_TXT, "a\tb", buf, &why) == -EINVAL && strstr(why, "control"));
        CHECK(dns_rdata_from_string(DNS_TYPE_MX, "10 mx.example", buf, &why) == -EOPNOTSUPP);

        /* TXT: split into 255-byte strings, joined back. */
        {
                char text[600];

                memset(text, 'x', sizeof text - 1);
                text[sizeof text - 1] = 0;
                n = dns_rdata_from_string(DNS_TYPE_TXT, text, buf, NULL);
                CHECK(n == 599 + 3 && buf[0] == 255 && buf[256] == 255 && buf[512] == 89);
                CHECK(dns_rdata_to_string(DNS_TYPE_TXT, buf, (uint16_t) n, out) == 599);
        }
        CHECK(dns_rdata_from_string(DNS_TYPE_TXT, "", buf, NULL) == 1 && buf[0] == 0);
}

/* The store takes names by the same rule: what the validator refuses, no
 * source can add. */
static void test_store_uses_it(void) {
        _cleanup_(store_freep) Store *s = NULL;
        const char *why = NULL;

        CHECK(store_new(&s) == 0);
        CHECK(store_add(s, "ok-name.test", DNS_TYPE_A, "10.0.0.1", 60, "test", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "*.wild.test", DNS_TYPE_A, "10.0.0.1", 60, "test", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "bad-.test", DNS_TYPE_A, "10.0.0.1", 60, "test", 0, NULL, &why) == -EINVAL);
        CHECK(why && strstr(why, "end with '-'"));
        CHECK(store_add(s, "-bad.test", DNS_TYPE_A, "10.0.0.1", 60, "test", 0, NULL, &why) == -EINVAL);
        CHECK(store_count(s) == 2);
}

static void test_node_id(void) {
        SwimConfig cfg;
        SwimAddr addr = { .family = 4, .port = 7946 };
        Swim *w = NULL;
        char id[80];

        CHECK(swim_id_is_valid("node-1.example_x"));
        CHECK(!swim_id_is_valid(NULL));
        CHECK(!swim_id_is_valid(""));
        CHECK(!swim_id_is_valid("node 1"));
        CHECK(!swim_id_is_valid("node/1"));
        memset(id, 'n', 64);
        id[64] = 0;
        CHECK(swim_id_is_valid(id));
        id[64] = 'n';
        id[65] = 0;
        CHECK(!swim_id_is_valid(id));

        swim_config_lan(&cfg);
        CHECK(swim_new(&w, &cfg, "bad id", &addr, 1, 0) == -EINVAL);
        CHECK(swim_new(&w, &cfg, "good-id", &addr, 1, 0) == 0);
        swim_free(w);
}

/* Skips the name at the start of buf; returns the offset after it, or the
 * cursor's error. */
static long skip(const uint8_t *buf, size_t len) {
        Wire r = wire_init_const(buf, len);

        dns_name_skip(&r);
        return wire_ok(&r) ? (long) wire_offset(&r) : (long) r.error;
}

static void test_name_skip(void) {
        static const uint8_t plain[] = { 3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0xff };
        static const uint8_t pointer[] = { 3, 'w', 'w', 'w', 0xc0, 12, 0xff };
        static const uint8_t bad_label[] = { 64, 'a' };
        static const uint8_t cut[] = { 3, 'w', 'w' };
        uint8_t many[300];

        CHECK(skip(plain, sizeof plain) == 13);
        CHECK(skip(pointer, sizeof pointer) == 6);
        CHECK(skip((const uint8_t[]) { 0 }, 1) == 1);
        CHECK(skip(bad_label, sizeof bad_label) == -EBADMSG);
        CHECK(skip(cut, sizeof cut) < 0);
        CHECK(skip((const uint8_t[]) { 0xc0 }, 1) < 0);
        /* 150 one-byte labels: more than a 255-byte name holds. */
        for (size_t i = 0; i < 150; i++) {
                many[2 * i] = 1;
                many[2 * i + 1] = 'a';
        }
        many[300 - 1] = 0;
        CHECK(skip(many, sizeof many) == -EBADMSG);
}

int main(void) {
        TEST_BEGIN("name check");
        test_name_check();
        TEST_BEGIN("name wire");
        test_name_wire();
        TEST_BEGIN("name skip");
        test_name_skip();
        TEST_BEGIN("rdata");
        test_rdata();
        TEST_BEGIN("the store uses the validator");
        test_store_uses_it();
        TEST_BEGIN("node id");
        test_node_id();
        printf("dns-name: all checks passed\n");
        return 0;
}
