/* SPDX-License-Identifier: MIT */
/* Unit tests for the forwarded-answer cache: upstream replies built with
 * ldns, parsed into DnsRelayMessages, stored, aged, evicted and replayed to
 * clients, every replay parsed back with ldns. No sockets, no clock: time is
 * a number passed in. */

#include <ldns/ldns.h>
#include <stdio.h>

#include "dns-cache.h"
#include "test-util.h"

#define SEC(s) ((uint64_t) (s) *USEC_PER_SEC)

/* An upstream reply: rcode, answer records, authority records (presentation
 * strings, "" ends a list), optional EDNS. */
static uint8_t *make_reply(const char *qname, uint16_t qtype, uint8_t rcode, const char *const *answer,
                           const char *const *authority, bool edns, bool tc, size_t *ret_len) {
        ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(qname), qtype, LDNS_RR_CLASS_IN, LDNS_RD);
        uint8_t *wire = NULL;

        CHECK(p);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_ra(p, true);
        ldns_pkt_set_tc(p, tc);
        ldns_pkt_set_id(p, 0x7777);
        ldns_pkt_set_rcode(p, rcode);
        for (size_t i = 0; answer && answer[i]; i++) {
                ldns_rr *rr = NULL;
                CHECK(ldns_rr_new_frm_str(&rr, answer[i], 0, NULL, NULL) == LDNS_STATUS_OK);
                ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
        }
        for (size_t i = 0; authority && authority[i]; i++) {
                ldns_rr *rr = NULL;
                CHECK(ldns_rr_new_frm_str(&rr, authority[i], 0, NULL, NULL) == LDNS_STATUS_OK);
                ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
        }
        if (edns)
                ldns_pkt_set_edns_udp_size(p, 1232);
        CHECK(ldns_pkt2wire(&wire, p, ret_len) == LDNS_STATUS_OK);
        ldns_pkt_free(p);
        return wire;
}

static DnsRelayMessage *parse(const uint8_t *wire, size_t len, uint32_t max_ttl) {
        DnsRelayMessage *m = NULL;
        CHECK(dns_relay_message_new(wire, len, max_ttl, &m) == 0);
        CHECK(m);
        return m;
}

/* The question section of a query for name/type IN. */
static size_t question(const char *name, uint16_t type, uint8_t *out) {
        ldns_rdf *d = ldns_dname_new_frm_str(name);
        size_t n = ldns_rdf_size(d);

        memcpy(out, ldns_rdf_data(d), n);
        ldns_rdf_deep_free(d);
        out[n] = type >> 8;
        out[n + 1] = type & 0xff;
        out[n + 2] = 0;
        out[n + 3] = 1;
        return n + 4;
}

static ldns_pkt *replay(const DnsRelayMessage *m, uint32_t age, const DnsRelayClient *c, uint8_t *buf) {
        ldns_pkt *p = NULL;
        size_t n = dns_relay_build(m, age, c, buf, 65535);

        CHECK(n > 0 && n <= c->limit);
        CHECK(ldns_wire2pkt(&p, buf, n) == LDNS_STATUS_OK);
        return p;
}

static void key(DnsCacheKey *k, const char *name, uint16_t type, uint8_t flags) {
        ldns_rdf *d = ldns_dname_new_frm_str(name);
        CHECK(dns_cache_key_init(k, ldns_rdf_data(d), ldns_rdf_size(d), type, 1, flags) == 0);
        ldns_rdf_deep_free(d);
}

static const char *const soa_auth[] = {
        "upstream.test. 3600 IN SOA ns.upstream.test. admin.upstream.test. 1 3600 600 86400 60",
        NULL,
};

static void test_relay(void) {
        static const char *const answer[] = {
                "www.upstream.test. 300 IN A 192.0.2.1",
                "www.upstream.test. 120 IN A 192.0.2.2",
                NULL,
        };
        uint8_t buf[65536], q[300];
        size_t len, qlen;
        _cleanup_free_ uint8_t *wire =
                make_reply("www.upstream.test", LDNS_RR_TYPE_A, 0, answer, NULL, true, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *m = parse(wire, len, 86400);
        ldns_pkt *p;

        TEST_BEGIN("relay: parse");
        CHECK(dns_relay_message_rcode(m) == 0);
        CHECK(dns_relay_message_answer_count(m) == 2);
        CHECK(!dns_relay_message_truncated(m));
        CHECK(dns_relay_message_cache_ttl(m) == 120);

        TEST_BEGIN("relay: the client's ID, case and flags; RA set, AA clear");
        qlen = question("WwW.UpStream.TEST", LDNS_RR_TYPE_A, q);
        DnsRelayClient c = {
                .id = 0x4242,
                .flags = 0x0100 /* RD */,
                .question = q,
                .question_len = qlen,
                .limit = 512,
        };
        p = replay(m, 0, &c, buf);
        CHECK(ldns_pkt_id(p) == 0x4242);
        CHECK(ldns_pkt_qr(p) && ldns_pkt_ra(p) && ldns_pkt_rd(p) && !ldns_pkt_aa(p) && !ldns_pkt_tc(p));
        CHECK(ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR);
        CHECK(memcmp(buf + 12, q, qlen) == 0);
        CHECK(ldns_pkt_ancount(p) == 2);
        CHECK(ldns_pkt_arcount(p) == 0); /* upstream's OPT removed, none asked */
        CHECK(!ldns_pkt_edns(p));
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) == 300);
        ldns_pkt_free(p);

        TEST_BEGIN("relay: RD clear stays clear, CD copied");
        c.flags = 0x0010;
        p = replay(m, 0, &c, buf);
        CHECK(!ldns_pkt_rd(p) && ldns_pkt_cd(p) && ldns_pkt_ra(p));
        ldns_pkt_free(p);

        TEST_BEGIN("relay: TTLs aged");
        p = replay(m, 100, &c, buf);
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) == 200);
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 1)) == 20);
        ldns_pkt_free(p);
        p = replay(m, 1000, &c, buf);
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 1)) == 0);
        ldns_pkt_free(p);

        TEST_BEGIN("relay: EDNS client gets our OPT, DO echoed");
        c.edns = true;
        c.edns_do = true;
        c.limit = 1232;
        p = replay(m, 0, &c, buf);
        CHECK(ldns_pkt_edns(p) && ldns_pkt_edns_udp_size(p) == DNS_EDNS_PAYLOAD_OURS && ldns_pkt_edns_do(p));
        CHECK(buf[10] == 0 && buf[11] == 1 && ldns_pkt_ancount(p) == 2); /* ARCOUNT: just our OPT */
        ldns_pkt_free(p);

        TEST_BEGIN("relay: a question of another length is refused");
        qlen = question("www.upstream.test.example", LDNS_RR_TYPE_A, q);
        c.question_len = qlen;
        CHECK(dns_relay_build(m, 0, &c, buf, sizeof buf) == 0);

        TEST_BEGIN("relay: TTLs capped at the maximum");
        {
                _cleanup_(dns_relay_message_freep) DnsRelayMessage *capped = parse(wire, len, 150);
                qlen = question("www.upstream.test", LDNS_RR_TYPE_A, q);
                c.question_len = qlen;
                p = replay(capped, 0, &c, buf);
                CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) == 150);
                CHECK(dns_relay_message_cache_ttl(capped) == 120);
                ldns_pkt_free(p);
        }
}

static void test_truncation(void) {
        char rrs[40][64];
        const char *answer[41];
        uint8_t buf[65536], q[300];
        size_t len, qlen, n;
        ldns_pkt *p;

        TEST_BEGIN("relay: too big for the client: TC, header and question");
        for (int i = 0; i < 40; i++) {
                snprintf(rrs[i], sizeof rrs[i], "big.upstream.test. 60 IN A 10.0.%d.%d", i / 200, i % 200 + 1);
                answer[i] = rrs[i];
        }
        answer[40] = NULL;
        _cleanup_free_ uint8_t *wire =
                make_reply("big.upstream.test", LDNS_RR_TYPE_A, 0, answer, NULL, false, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *m = parse(wire, len, 86400);
        qlen = question("big.upstream.test", LDNS_RR_TYPE_A, q);
        DnsRelayClient c = { .id = 1, .flags = 0x0100, .question = q, .question_len = qlen, .limit = 512 };
        p = replay(m, 0, &c, buf);
        CHECK(ldns_pkt_tc(p) && ldns_pkt_ancount(p) == 0 && ldns_pkt_qdcount(p) == 1 && ldns_pkt_ra(p));
        ldns_pkt_free(p);

        TEST_BEGIN("relay: the same over TCP is whole");
        c.limit = 65535;
        p = replay(m, 0, &c, buf);
        CHECK(!ldns_pkt_tc(p) && ldns_pkt_ancount(p) == 40);
        ldns_pkt_free(p);

        TEST_BEGIN("relay: truncated upstream replies are not cached");
        _cleanup_free_ uint8_t *tcw = make_reply("big.upstream.test", LDNS_RR_TYPE_A, 0, NULL, NULL, false, true, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *tc = parse(tcw, len, 86400);
        CHECK(dns_relay_message_truncated(tc) && dns_relay_message_cache_ttl(tc) == 0);

        TEST_BEGIN("error replies");
        c.limit = 512;
        c.edns = true;
        n = dns_relay_build_error(DNS_RCODE_SERVFAIL, true, &c, buf, sizeof buf);
        CHECK(n == 12 + qlen + 11);
        CHECK(ldns_wire2pkt(&p, buf, n) == LDNS_STATUS_OK);
        CHECK(ldns_pkt_get_rcode(p) == LDNS_RCODE_SERVFAIL && ldns_pkt_ra(p) && ldns_pkt_rd(p) && ldns_pkt_edns(p));
        CHECK(ldns_pkt_id(p) == 1 && ldns_pkt_qdcount(p) == 1 && ldns_pkt_ancount(p) == 0);
        ldns_pkt_free(p);
        n = dns_relay_build_error(DNS_RCODE_REFUSED, false, &c, buf, sizeof buf);
        CHECK(ldns_wire2pkt(&p, buf, n) == LDNS_STATUS_OK);
        CHECK(ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED && !ldns_pkt_ra(p) && !ldns_pkt_aa(p));
        ldns_pkt_free(p);
}

static void test_negative(void) {
        uint8_t buf[65536], q[300];
        size_t len, qlen;
        ldns_pkt *p;

        TEST_BEGIN("negative: NXDOMAIN cached for min(SOA TTL, MINIMUM)");
        _cleanup_free_ uint8_t *nx =
                make_reply("nx.upstream.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, soa_auth, true, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *m = parse(nx, len, 86400);
        CHECK(dns_relay_message_rcode(m) == DNS_RCODE_NXDOMAIN);
        CHECK(dns_relay_message_cache_ttl(m) == 60);
        qlen = question("nx.upstream.test", LDNS_RR_TYPE_A, q);
        DnsRelayClient c = { .id = 9, .flags = 0x0100, .question = q, .question_len = qlen, .limit = 512 };
        p = replay(m, 10, &c, buf);
        CHECK(ldns_pkt_get_rcode(p) == LDNS_RCODE_NXDOMAIN && ldns_pkt_nscount(p) == 1);
        /* The SOA's TTL is the negative TTL, aged. */
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(p), 0)) == 50);
        ldns_pkt_free(p);

        TEST_BEGIN("negative: NODATA the same");
        _cleanup_free_ uint8_t *nodata =
                make_reply("www.upstream.test", LDNS_RR_TYPE_AAAA, 0, NULL, soa_auth, false, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *nd = parse(nodata, len, 86400);
        CHECK(dns_relay_message_cache_ttl(nd) == 60);

        TEST_BEGIN("negative: capped at the maximum TTL");
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *nd30 = parse(nodata, len, 30);
        CHECK(dns_relay_message_cache_ttl(nd30) == 30);

        TEST_BEGIN("negative: without an SOA, not cached");
        _cleanup_free_ uint8_t *bare =
                make_reply("nx.upstream.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, NULL, NULL, false, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *b = parse(bare, len, 86400);
        CHECK(dns_relay_message_cache_ttl(b) == 0);

        TEST_BEGIN("SERVFAIL and REFUSED are not cached");
        _cleanup_free_ uint8_t *sf =
                make_reply("x.upstream.test", LDNS_RR_TYPE_A, LDNS_RCODE_SERVFAIL, NULL, soa_auth, false, false, &len);
        _cleanup_(dns_relay_message_freep) DnsRelayMessage *s = parse(sf, len, 86400);
        CHECK(dns_relay_message_cache_ttl(s) == 0);
}

static void test_malformed(void) {
        static const char *const answer[] = { "a.upstream.test. 60 IN A 192.0.2.9", NULL };
        DnsRelayMessage *m = NULL;
        size_t len;
        _cleanup_free_ uint8_t *wire =
                make_reply("a.upstream.test", LDNS_RR_TYPE_A, 0, answer, NULL, true, false, &len);
        uint8_t copy[1024] = {};

        TEST_BEGIN("malformed replies");
        for (size_t cut = 0; cut < len; cut++)
                CHECK(dns_relay_message_new(wire, cut, 60, &m) == -EBADMSG && !m);
        /* A query, not a reply. */
        memcpy(copy, wire, len);
        copy[2] &= 0x7f;
        CHECK(dns_relay_message_new(copy, len, 60, &m) == -EBADMSG);
        /* Two questions. */
        memcpy(copy, wire, len);
        copy[5] = 2;
        CHECK(dns_relay_message_new(copy, len, 60, &m) == -EBADMSG);
        /* An OPT in the answer section: move the answer count up by one so the
         * OPT counts as an answer. */
        memcpy(copy, wire, len);
        copy[7] = 2;
        copy[11] = 0;
        CHECK(dns_relay_message_new(copy, len, 60, &m) == -EBADMSG);
        /* TTLs with the top bit set count as 0 (RFC 2181 8). The answer's
         * TTL: after the header, the question (17 + 4) and a 2-byte owner
         * pointer, type and class. */
        memcpy(copy, wire, len);
        CHECK(copy[39] == 0 && copy[42] == 60);
        copy[39] = 0x80;
        m = parse(copy, len, 60);
        CHECK(dns_relay_message_cache_ttl(m) == 0);
        dns_relay_message_free(m);
}

static DnsRelayMessage *positive(const char *name, uint32_t ttl) {
        char rr[300];
        const char *answer[] = { rr, NULL };
        size_t len;
        DnsRelayMessage *m;

        snprintf(rr, sizeof rr, "%s %u IN A 192.0.2.1", name, ttl);
        uint8_t *w = make_reply(name, LDNS_RR_TYPE_A, 0, answer, NULL, false, false, &len);
        m = parse(w, len, 86400);
        free(w);
        return m;
}

static void test_cache(void) {
        _cleanup_(dns_cache_freep) DnsCache *c = NULL;
        DnsCacheKey k1, k2, k3, k4, kdo, kupper;
        uint32_t age = 99;

        CHECK(dns_cache_new(&c, 3, 1 << 20) == 0);
        key(&k1, "one.upstream.test", 1, 0);
        key(&k2, "two.upstream.test", 1, 0);
        key(&k3, "three.upstream.test", 1, 0);
        key(&k4, "four.upstream.test", 1, 0);
        key(&kdo, "one.upstream.test", 1, DNS_CACHE_KEY_DO);
        key(&kupper, "ONE.Upstream.Test", 1, 0);

        TEST_BEGIN("cache: keys");
        CHECK(dns_cache_key_equal(&k1, &kupper) && dns_cache_key_hash(&k1) == dns_cache_key_hash(&kupper));
        CHECK(!dns_cache_key_equal(&k1, &kdo));
        CHECK(!dns_cache_key_equal(&k1, &k2));
        CHECK(dns_cache_key_init(&k4, (const uint8_t *) "\3abc", 4, 1, 1, 0) == -EINVAL);
        key(&k4, "four.upstream.test", 1, 0);

        TEST_BEGIN("cache: hit, case-insensitive, age");
        CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 10), SEC(100)) == 1);
        CHECK(dns_cache_get(c, &kupper, SEC(100) + 9900000, &age));
        CHECK(age == 9);
        CHECK(!dns_cache_get(c, &kdo, SEC(100), NULL)); /* DO is part of the key */

        TEST_BEGIN("cache: TTL expiry");
        CHECK(!dns_cache_get(c, &k1, SEC(110), NULL));
        CHECK(dns_cache_entries(c) == 0 && dns_cache_bytes(c) == 0);
        CHECK(dns_cache_get_counters(c)->expired == 1);

        TEST_BEGIN("cache: TTL 0 is not stored");
        CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 0), SEC(200)) == 0);
        CHECK(dns_cache_entries(c) == 0);

        TEST_BEGIN("cache: size bound, least recently used evicted");
        CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 300), SEC(300)) == 1);
        CHECK(dns_cache_put(c, &k2, positive("two.upstream.test", 300), SEC(301)) == 1);
        CHECK(dns_cache_put(c, &k3, positive("three.upstream.test", 300), SEC(302)) == 1);
        CHECK(dns_cache_get(c, &k1, SEC(303), NULL)); /* one is now the most recent */
        CHECK(dns_cache_put(c, &k4, positive("four.upstream.test", 300), SEC(304)) == 1);
        CHECK(dns_cache_entries(c) == 3);
        CHECK(!dns_cache_get(c, &k2, SEC(305), NULL)); /* two was least recently used */
        CHECK(dns_cache_get(c, &k1, SEC(305), NULL));
        CHECK(dns_cache_get(c, &k3, SEC(305), NULL));
        CHECK(dns_cache_get(c, &k4, SEC(305), NULL));
        CHECK(dns_cache_get_counters(c)->evicted == 1);

        TEST_BEGIN("cache: replacing an entry");
        CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 5), SEC(306)) == 1);
        CHECK(dns_cache_entries(c) == 3);
        CHECK(!dns_cache_get(c, &k1, SEC(311), NULL));

        TEST_BEGIN("cache: flush");
        dns_cache_flush(c);
        CHECK(dns_cache_entries(c) == 0 && dns_cache_bytes(c) == 0);
        c = dns_cache_free(c);

        TEST_BEGIN("cache: memory bound");
        {
                DnsRelayMessage *m = positive("one.upstream.test", 60);
                size_t one = dns_relay_message_size(m);

                dns_relay_message_free(m);
                /* Room for two entries' bytes, however many entries are allowed. */
                CHECK(dns_cache_new(&c, 1000, 2 * (one + 400)) == 0);
                CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 60), 0) == 1);
                CHECK(dns_cache_put(c, &k2, positive("two.upstream.test", 60), 0) == 1);
                CHECK(dns_cache_put(c, &k3, positive("three.upstream.test", 60), 0) == 1);
                CHECK(dns_cache_entries(c) == 2);
                CHECK(dns_cache_bytes(c) <= 2 * (one + 400));
                CHECK(!dns_cache_get(c, &k1, 0, NULL));
                c = dns_cache_free(c);
        }

        TEST_BEGIN("cache: size 0 stores nothing");
        CHECK(dns_cache_new(&c, 0, 1 << 20) == 0);
        CHECK(dns_cache_put(c, &k1, positive("one.upstream.test", 60), 0) == 0);
        CHECK(!dns_cache_get(c, &k1, 0, NULL));
}

int main(void) {
        test_relay();
        test_truncation();
        test_negative();
        test_malformed();
        test_cache();
        printf("test-dns-cache: all checks passed\n");
        return EXIT_SUCCESS;
}
