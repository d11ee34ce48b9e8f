/* SPDX-License-Identifier: MIT */
/* Unit tests for the forwarder's pure parts: which upstream replies are
 * accepted (ID, question, source address and port), the queries it parses
 * and sends, ForwardAllow prefixes, server addresses, resolv.conf, and which
 * servers are joyrided itself. No sockets, no threads. */

#include <arpa/inet.h>
#include <glib.h>
#include <ldns/ldns.h>
#include <stdio.h>

#include "dns-forward.h"
#include "forward-upstreams.h"
#include "test-util.h"

static struct sockaddr_storage addr(const char *s) {
        struct sockaddr_storage sa;
        socklen_t l;
        CHECK(dns_forward_parse_address(s, 53, &sa, &l) == 0);
        return sa;
}

static void key_for(DnsCacheKey *k, const char *name, uint16_t type) {
        ldns_rdf *d = ldns_dname_new_frm_str(name);
        CHECK(dns_cache_key_init(k, ldns_rdf_data(d), ldns_rdf_size(d), type, 1, 0) == 0);
        ldns_rdf_deep_free(d);
}

/* An upstream's reply to name/type with the given ID. */
static uint8_t *reply_for(const char *name, uint16_t type, uint16_t id, size_t *ret_len) {
        ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(name), type, LDNS_RR_CLASS_IN, LDNS_RD);
        ldns_rr *rr = NULL;
        uint8_t *wire = NULL;

        CHECK(p);
        ldns_pkt_set_id(p, id);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_ra(p, true);
        CHECK(ldns_rr_new_frm_str(&rr, "www.upstream.test. 60 IN A 192.0.2.80", 0, NULL, NULL) == LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
        CHECK(ldns_pkt2wire(&wire, p, ret_len) == LDNS_STATUS_OK);
        ldns_pkt_free(p);
        return wire;
}

static void test_matching(void) {
        struct sockaddr_storage up = addr("127.0.0.1:25353"), other_port = addr("127.0.0.1:25354"),
                                other_host = addr("127.0.0.2:25353"), up6 = addr("[::1]:25353");
        const struct sockaddr *u = (const struct sockaddr *) &up;
        DnsCacheKey k;
        uint8_t copy[512];
        size_t len;
        _cleanup_free_ uint8_t *ok = reply_for("www.upstream.test", LDNS_RR_TYPE_A, 0xabcd, &len);
        _cleanup_free_ uint8_t *upper = NULL, *aaaa = NULL, *other = NULL;
        size_t l2;

        key_for(&k, "www.upstream.test", LDNS_RR_TYPE_A);

        TEST_BEGIN("matching: the right reply");
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, ok, len) == 0);
        upper = reply_for("WWW.Upstream.TEST", LDNS_RR_TYPE_A, 0xabcd, &l2);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, upper, l2) == 0);

        TEST_BEGIN("matching: wrong ID dropped");
        CHECK(dns_forward_check_reply(&k, 0xabce, u, u, ok, len) == -ENOMSG);
        CHECK(dns_forward_check_reply(&k, 0xcdab, u, u, ok, len) == -ENOMSG);

        TEST_BEGIN("matching: wrong source dropped");
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, (struct sockaddr *) &other_port, ok, len) == -ESRCH);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, (struct sockaddr *) &other_host, ok, len) == -ESRCH);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, (struct sockaddr *) &up6, ok, len) == -ESRCH);

        TEST_BEGIN("matching: wrong name or type dropped");
        other = reply_for("wwx.upstream.test", LDNS_RR_TYPE_A, 0xabcd, &l2);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, other, l2) == -ENOMSG);
        free(other);
        other = reply_for("www.upstream.test.evil", LDNS_RR_TYPE_A, 0xabcd, &l2);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, other, l2) == -ENOMSG);
        free(other);
        other = reply_for("upstream.test", LDNS_RR_TYPE_A, 0xabcd, &l2);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, other, l2) == -ENOMSG);
        aaaa = reply_for("www.upstream.test", LDNS_RR_TYPE_AAAA, 0xabcd, &l2);
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, aaaa, l2) == -ENOMSG);
        memcpy(copy, ok, len);
        copy[12 + 19 + 3] = 3; /* class CH */
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, copy, len) == -ENOMSG);

        TEST_BEGIN("matching: not a reply");
        memcpy(copy, ok, len);
        copy[2] &= 0x7f; /* QR clear: a query */
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, copy, len) == -EBADMSG);
        for (size_t cut = 0; cut < 12 + 19 + 4; cut++)
                CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, ok, cut) < 0);
        memcpy(copy, ok, len);
        copy[5] = 0; /* no question */
        CHECK(dns_forward_check_reply(&k, 0xabcd, u, u, copy, len) == -ENOMSG);
}

static void test_queries(void) {
        ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str("WwW.Example.ORG"), LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_IN,
                                         LDNS_RD | LDNS_CD);
        DnsForwardQuery q;
        uint8_t *wire = NULL, out[512];
        size_t len, n;
        ldns_pkt *back = NULL;

        TEST_BEGIN("client query: parsed");
        ldns_pkt_set_id(p, 0x1111);
        ldns_pkt_set_edns_udp_size(p, 4096);
        ldns_pkt_set_edns_do(p, true);
        CHECK(ldns_pkt2wire(&wire, p, &len) == LDNS_STATUS_OK);
        ldns_pkt_free(p);
        CHECK(dns_forward_parse_query(wire, len, &q) == 0);
        CHECK(q.id == 0x1111 && q.edns && q.payload == 4096);
        CHECK(q.key.flags == (DNS_CACHE_KEY_DO | DNS_CACHE_KEY_CD));
        CHECK(q.key.type == LDNS_RR_TYPE_AAAA && q.key.class == 1);
        CHECK(q.key.name_len == 17 && memcmp(q.key.name, "\3www\7example\3org", 17) == 0);
        CHECK(q.question_len == 17 + 4);

        TEST_BEGIN("upstream query: RD, the client's CD and DO, our payload, our ID");
        n = dns_forward_build_query(&q.key, 0x2222, out, sizeof out);
        CHECK(n > 0);
        CHECK(ldns_wire2pkt(&back, out, n) == LDNS_STATUS_OK);
        CHECK(ldns_pkt_id(back) == 0x2222 && ldns_pkt_rd(back) && ldns_pkt_cd(back) && !ldns_pkt_qr(back));
        CHECK(ldns_pkt_edns(back) && ldns_pkt_edns_udp_size(back) == DNS_EDNS_PAYLOAD_OURS && ldns_pkt_edns_do(back));
        CHECK(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(back), 0)) == LDNS_RR_TYPE_AAAA);
        ldns_pkt_free(back);
        CHECK(dns_forward_build_query(&q.key, 1, out, 20) == 0);

        TEST_BEGIN("client query: without EDNS, 512");
        wire[11] = 0; /* ARCOUNT 0: the OPT is gone */
        CHECK(dns_forward_parse_query(wire, len, &q) == 0);
        CHECK(!q.edns && q.payload == 512 && q.key.flags == DNS_CACHE_KEY_CD);

        TEST_BEGIN("client query: refused shapes");
        wire[2] |= 0x80; /* a response */
        CHECK(dns_forward_parse_query(wire, len, &q) == -EBADMSG);
        wire[2] &= 0x7f;
        wire[2] |= 0x28; /* opcode 5, UPDATE */
        CHECK(dns_forward_parse_query(wire, len, &q) == -EBADMSG);
        wire[2] &= 0x87;
        CHECK(dns_forward_parse_query(wire, 20, &q) == -EBADMSG);
        free(wire);
}

static bool allowed(const char *const *prefixes, const char *client) {
        DnsAllowPrefix list[8];
        size_t n = 0;
        struct sockaddr_storage sa = addr(client);

        for (; prefixes[n]; n++)
                CHECK(dns_allow_parse(prefixes[n], list + n) == 0);
        return dns_allow_match(list, n, (struct sockaddr *) &sa);
}

static void test_allow(void) {
        const char *const loopback1[] = { "127.0.0.1", NULL };
        const char *const lan[] = { "10.16.0.0/12", "fd00::/8", "192.168.1.7/24", NULL };
        DnsAllowPrefix p, *def = NULL;
        size_t n = 0;
        char buf[80];
        struct sockaddr_in6 mapped = { .sin6_family = AF_INET6 };

        TEST_BEGIN("allow: single address");
        CHECK(allowed(loopback1, "127.0.0.1:5000"));
        CHECK(!allowed(loopback1, "127.0.0.2:5000"));
        CHECK(!allowed(loopback1, "[::1]:5000"));

        TEST_BEGIN("allow: prefixes");
        CHECK(allowed(lan, "10.16.0.1"));
        CHECK(allowed(lan, "10.31.255.255"));
        CHECK(!allowed(lan, "10.32.0.1"));
        CHECK(!allowed(lan, "10.15.255.255"));
        CHECK(allowed(lan, "[fd12::1]:53"));
        CHECK(!allowed(lan, "[fe80::1]:53"));
        CHECK(allowed(lan, "192.168.1.200"));
        CHECK(!allowed(lan, "192.168.2.1"));

        TEST_BEGIN("allow: IPv4-mapped clients count as IPv4");
        inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
        CHECK(dns_allow_parse("127.0.0.1", &p) == 0);
        CHECK(dns_allow_match(&p, 1, (struct sockaddr *) &mapped));
        inet_pton(AF_INET6, "::ffff:127.0.0.2", &mapped.sin6_addr);
        CHECK(!dns_allow_match(&p, 1, (struct sockaddr *) &mapped));

        TEST_BEGIN("allow: canonical form");
        CHECK(dns_allow_parse("192.168.1.7/24", &p) == 0);
        dns_allow_format(&p, buf, sizeof buf);
        CHECK(streq(buf, "192.168.1.0/24"));
        CHECK(dns_allow_parse("::1", &p) == 0);
        dns_allow_format(&p, buf, sizeof buf);
        CHECK(streq(buf, "::1/128"));
        CHECK(dns_allow_parse("0.0.0.0/0", &p) == 0);

        TEST_BEGIN("allow: bad input");
        for (const char *const *b = (const char *const[]) { "", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
                                                            "host", "10.0.0.256", "/8", NULL };
             *b; b++)
                CHECK(dns_allow_parse(*b, &p) == -EINVAL);

        TEST_BEGIN("allow: the default holds loopback");
        CHECK(dns_allow_default(&def, &n) == 0);
        CHECK(n >= 2);
        struct sockaddr_storage lo = addr("127.0.0.1"), lo6 = addr("::1");
        CHECK(dns_allow_match(def, n, (struct sockaddr *) &lo));
        CHECK(dns_allow_match(def, n, (struct sockaddr *) &lo6));
        g_free(def);
}

static void test_addresses(void) {
        struct sockaddr_storage sa;
        socklen_t l;
        char buf[80];

        TEST_BEGIN("server addresses");
        static const struct {
                const char *in, *out;
        } good[] = {
                { "192.0.2.1", "192.0.2.1:53" },
                { "192.0.2.1:5353", "192.0.2.1:5353" },
                { "::1", "[::1]:53" },
                { "[::1]:5353", "[::1]:5353" },
                { "[2001:db8::1]", "[2001:db8::1]:53" },
                { "[fe80::1%lo]:53", "[fe80::1%lo]:53" },
                { "fe80::1%lo", "[fe80::1%lo]:53" },
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                CHECK(dns_forward_parse_address(good[i].in, 53, &sa, &l) == 0);
                dns_forward_format_address((struct sockaddr *) &sa, buf, sizeof buf);
                if (!streq(buf, good[i].out))
                        fprintf(stderr, "%s -> %s, want %s\n", good[i].in, buf, good[i].out);
                CHECK(streq(buf, good[i].out));
        }
        for (const char *const *b =
                     (const char *const[]) { "", "localhost", "localhost:53", "1.2.3.4:0", "1.2.3.4:65536",
                                             "[1.2.3.4]:53", "[::1", "[::1]x", "::1%nosuchif0", "1.2.3.4:", NULL };
             *b; b++) {
                if (dns_forward_parse_address(*b, 53, &sa, &l) != -EINVAL)
                        fprintf(stderr, "'%s' accepted\n", *b);
                CHECK(dns_forward_parse_address(*b, 53, &sa, &l) == -EINVAL);
        }
}

static void test_resolv_conf(void) {
        char **l = NULL;

        TEST_BEGIN("resolv.conf");
        CHECK(dns_forward_parse_resolv_conf("# generated\n"
                                            "nameserver 192.0.2.1\n"
                                            "search example.com\n"
                                            "  nameserver\t2001:db8::53   # comment\n"
                                            "nameserver 127.0.0.53\n"
                                            "nameserver fe80::1%lo\n"
                                            "nameserver 192.0.2.9:53\n"
                                            "nameserver bogus\n"
                                            "; nameserver 192.0.2.99\n"
                                            "options edns0 trust-ad\n",
                                            &l) == 0);
        CHECK(l && g_strv_length(l) == 4);
        CHECK(streq(l[0], "192.0.2.1"));
        CHECK(streq(l[1], "2001:db8::53"));
        CHECK(streq(l[2], "127.0.0.53"));
        CHECK(streq(l[3], "fe80::1%lo"));
        g_strfreev(l);
        CHECK(dns_forward_parse_resolv_conf("search x\n", &l) == 0 && l == NULL);
        CHECK(dns_forward_parse_resolv_conf("", &l) == 0 && l == NULL);
}

static void test_own(void) {
        char *resolved_dns[] = { "127.0.0.1:5353", NULL };

        TEST_BEGIN("own addresses");
        /* Bound to one address: that address and our port. */
        CHECK(forward_upstreams_is_own("127.0.0.1", 53, "127.0.0.1", 53, NULL));
        CHECK(!forward_upstreams_is_own("127.0.0.1", 53, "127.0.0.1", 5353, NULL));
        CHECK(!forward_upstreams_is_own("127.0.0.2", 53, "127.0.0.1", 53, NULL));
        CHECK(forward_upstreams_is_own("127.0.0.1:5353", 53, "127.0.0.1", 5353, NULL));
        /* Bound to all: every local address. */
        CHECK(forward_upstreams_is_own("127.0.0.5", 53, NULL, 53, NULL));
        CHECK(forward_upstreams_is_own("::1", 53, "::", 53, NULL));
        CHECK(!forward_upstreams_is_own("192.0.2.1", 53, NULL, 53, NULL));
        /* What was given to resolved. */
        CHECK(forward_upstreams_is_own("127.0.0.1:5353", 53, "10.0.0.1", 53, resolved_dns));
        CHECK(!forward_upstreams_is_own("127.0.0.1:53", 53, "10.0.0.1", 5353, resolved_dns));
}

int main(void) {
        test_matching();
        test_queries();
        test_allow();
        test_addresses();
        test_resolv_conf();
        test_own();
        printf("test-dns-forward: all checks passed\n");
        return EXIT_SUCCESS;
}
