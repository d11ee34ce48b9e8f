/* SPDX-License-Identifier: MIT */
/* Unit tests for the DNS answer path: a real Store, requests built with ldns
 * (or by hand when they must be malformed), dns_answer(), and every reply
 * parsed back with ldns to check what a resolver would see. No sockets. */

#include <ctype.h>
#include <inttypes.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "dns-answer.h"
#include "store.h"
#include "test-util.h"


#define REPLY_MAX 65535

typedef struct Reply {
        uint8_t buf[REPLY_MAX];
        size_t len;
        DnsQueryInfo info;
        ldns_pkt *pkt; /* NULL when there was no reply */
        uint8_t *req;  /* the request as sent */
        size_t req_len;
} Reply;

static void reply_clear(Reply *r) {
        if (r->pkt)
                ldns_pkt_free(r->pkt);
        free(r->req);
        r->pkt = NULL;
        r->req = NULL;
}

/* Runs raw request bytes through dns_answer and parses the reply. */
static void run_raw(const Store *s, const DnsAnswerConfig *cfg, DnsTransport t, const uint8_t *req, size_t req_len,
                    Reply *r) {
        reply_clear(r);
        r->req = malloc(req_len ? req_len : 1);
        CHECK(r->req);
        memcpy(r->req, req, req_len);
        r->req_len = req_len;

        r->len = dns_answer(s, cfg, t, req, req_len, r->buf, t == DNS_TRANSPORT_TCP ? REPLY_MAX : 4096, &r->info);
        if (r->len > 0)
                CHECK(ldns_wire2pkt(&r->pkt, r->buf, r->len) == LDNS_STATUS_OK);
}

typedef struct QueryOpts {
        uint16_t edns_payload; /* 0: no EDNS */
        uint8_t edns_version;
        bool edns_do;
        bool rd;
        bool cd;
        uint16_t id;
        uint16_t class; /* 0: IN */
} QueryOpts;

static void run_query(const Store *s, const DnsAnswerConfig *cfg, DnsTransport t, const char *name, uint16_t type,
                      const QueryOpts *o, Reply *r) {
        ldns_rdf *dname = ldns_dname_new_frm_str(name);
        ldns_pkt *q;
        uint8_t *wire = NULL;
        size_t wire_len = 0;

        CHECK(dname);
        q = ldns_pkt_query_new(dname, type, o->class ?: LDNS_RR_CLASS_IN, o->rd ? LDNS_RD : 0);
        CHECK(q);
        ldns_pkt_set_id(q, o->id ?: 0x1234);
        ldns_pkt_set_cd(q, o->cd);
        if (o->edns_payload > 0) {
                ldns_pkt_set_edns_udp_size(q, o->edns_payload);
                ldns_pkt_set_edns_version(q, o->edns_version);
                ldns_pkt_set_edns_do(q, o->edns_do);
        }
        CHECK(ldns_pkt2wire(&wire, q, &wire_len) == LDNS_STATUS_OK);
        ldns_pkt_free(q);

        run_raw(s, cfg, t, wire, wire_len, r);
        free(wire);
}

static uint16_t reply_u16(const Reply *r, size_t off) {
        CHECK(r->len >= off + 2);
        return (uint16_t) ((r->buf[off] << 8) | r->buf[off + 1]);
}

/* "owner TYPE rdata" for answer i of a section, owner lowercased. */
static char *rr_string(const ldns_rr_list *list, size_t i) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        char *owner = ldns_rdf2str(ldns_rr_owner(rr));
        char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        CHECK(f && owner && type);
        for (char *c = owner; *c; c++)
                *c = (char) tolower((unsigned char) *c);
        fprintf(f, "%s %s", owner, type);
        for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
                char *v = ldns_rdf2str(ldns_rr_rdf(rr, k));
                fprintf(f, " %s", v);
                free(v);
        }
        fclose(f);
        free(owner);
        free(type);
        return out;
}

static bool section_has(const ldns_rr_list *list, const char *want) {
        for (size_t i = 0; i < ldns_rr_list_rr_count(list); i++) {
                char *s = rr_string(list, i);
                bool eq = streq(s, want);
                free(s);
                if (eq)
                        return true;
        }
        return false;
}

static bool answer_is(const Reply *r, size_t i, const char *want) {
        char *s;
        bool eq;

        if (i >= ldns_rr_list_rr_count(ldns_pkt_answer(r->pkt)))
                return false;
        s = rr_string(ldns_pkt_answer(r->pkt), i);
        eq = streq(s, want);
        if (!eq)
                fprintf(stderr, "answer %zu: got \"%s\", want \"%s\"\n", i, s, want);
        free(s);
        return eq;
}

/* Checks what every answer to a parsed question has: same ID, QR, RD and CD
 * copied (for opcode QUERY: they mean nothing in others), question echoed
 * byte for byte (so with the client's case). */
static void check_common(const Reply *r, bool echoed_question) {
        bool query = (r->req[2] & 0x78) == 0;
        size_t qlen;

        CHECK(r->len >= DNS_HEADER_SIZE);
        CHECK(r->pkt);
        CHECK(memcmp(r->buf, r->req, 2) == 0);
        CHECK(ldns_pkt_qr(r->pkt));
        CHECK(!ldns_pkt_ra(r->pkt));
        CHECK(!ldns_pkt_ad(r->pkt));
        CHECK(ldns_pkt_rd(r->pkt) == (query && (r->req[2] & 0x01)));
        CHECK(ldns_pkt_cd(r->pkt) == (query && (r->req[3] & 0x10)));
        CHECK((r->buf[2] & 0x78) == (r->req[2] & 0x78)); /* opcode */
        if (!echoed_question) {
                CHECK(ldns_pkt_qdcount(r->pkt) == 0);
                return;
        }
        CHECK(ldns_pkt_qdcount(r->pkt) == 1);
        /* The request from ldns has the question right after the header and
         * ends there or with the OPT; compare the name and type/class bytes. */
        qlen = 0;
        while (r->req[DNS_HEADER_SIZE + qlen] != 0)
                qlen += r->req[DNS_HEADER_SIZE + qlen] + 1;
        qlen += 1 + 4;
        CHECK(r->len >= DNS_HEADER_SIZE + qlen);
        CHECK(memcmp(r->buf + DNS_HEADER_SIZE, r->req + DNS_HEADER_SIZE, qlen) == 0);
}

static void check_soa_authority(const Reply *r, const char *owner, uint32_t ttl, uint64_t version) {
        const ldns_rr_list *ns = ldns_pkt_authority(r->pkt);
        const ldns_rr *soa;
        char *o;

        CHECK(ldns_rr_list_rr_count(ns) == 1);
        soa = ldns_rr_list_rr(ns, 0);
        CHECK(ldns_rr_get_type(soa) == LDNS_RR_TYPE_SOA);
        CHECK(ldns_rr_get_class(soa) == LDNS_RR_CLASS_IN);
        o = ldns_rdf2str(ldns_rr_owner(soa));
        if (!streq(o, owner))
                fprintf(stderr, "SOA owner %s, want %s\n", o, owner);
        CHECK(streq(o, owner));
        free(o);
        CHECK(ldns_rr_ttl(soa) == ttl);
        CHECK(ldns_rr_rd_count(soa) == 7);
        o = ldns_rdf2str(ldns_rr_rdf(soa, 0));
        CHECK(streq(o, "ns.joyride.invalid."));
        free(o);
        o = ldns_rdf2str(ldns_rr_rdf(soa, 1));
        CHECK(streq(o, "hostmaster.joyride.invalid."));
        free(o);
        CHECK(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)) == (uint32_t) version);
        CHECK(ldns_rdf2native_int32(ldns_rr_rdf(soa, 3)) == 3600);
        CHECK(ldns_rdf2native_int32(ldns_rr_rdf(soa, 4)) == 600);
        CHECK(ldns_rdf2native_int32(ldns_rr_rdf(soa, 5)) == 86400);
        CHECK(ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)) == ttl);
}

static size_t ancount(const Reply *r) {
        return ldns_pkt_ancount(r->pkt);
}

static void add(Store *s, const char *name, uint16_t type, const char *value, const char *owner) {
        const char *err = NULL;
        int k = store_add(s, name, type, value, 300, owner, 0, NULL, &err);
        if (k < 0)
                fprintf(stderr, "store_add %s %s: %s\n", name, value, strna(err));
        CHECK(k >= 0);
}

static Store *make_store(void) {
        Store *s = NULL;
        char buf[64];

        CHECK(store_new(&s) >= 0);
        /* One name, three values from three owners. */
        add(s, "web.example.com", DNS_TYPE_A, "10.0.0.1", "docker:aaa");
        add(s, "web.example.com", DNS_TYPE_A, "10.0.0.2", "docker:bbb");
        add(s, "web.example.com", DNS_TYPE_A, "10.0.0.3", "hosts:/etc/hosts");
        add(s, "web.example.com", DNS_TYPE_A, "10.0.0.3", "docker:aaa"); /* same value twice: answers once */
        add(s, "web.example.com", DNS_TYPE_AAAA, "fd00::1", "docker:aaa");
        add(s, "txt.example.com", DNS_TYPE_TXT, "hello world", "api");
        /* CNAME chains, a loop, targets outside and missing. */
        add(s, "alias.example.com", DNS_TYPE_CNAME, "web.example.com", "api");
        add(s, "alias2.example.com", DNS_TYPE_CNAME, "alias.example.com", "api");
        add(s, "loop1.example.com", DNS_TYPE_CNAME, "loop2.example.com", "api");
        add(s, "loop2.example.com", DNS_TYPE_CNAME, "loop1.example.com", "api");
        add(s, "ext.example.com", DNS_TYPE_CNAME, "www.elsewhere.org", "api");
        add(s, "dangling.example.com", DNS_TYPE_CNAME, "nothere.example.com", "api");
        /* Only a.b.example.com: b.example.com is an empty non-terminal. */
        add(s, "a.b.example.com", DNS_TYPE_A, "10.0.0.9", "api");
        /* Wildcards. */
        add(s, "*.wild.example.com", DNS_TYPE_A, "10.1.1.1", "api");
        add(s, "exists.wild.example.com", DNS_TYPE_A, "10.1.1.2", "api");
        add(s, "x.y.wild.example.com", DNS_TYPE_A, "10.1.1.3", "api");
        add(s, "*.cn.example.com", DNS_TYPE_CNAME, "web.example.com", "api");
        /* Many values for truncation. */
        for (int i = 1; i <= 100; i++) {
                snprintf(buf, sizeof buf, "10.2.%d.%d", i / 250, i % 250);
                add(s, "many.example.com", DNS_TYPE_A, buf, "api");
        }
        /* Outside the configured domain. */
        add(s, "other.net", DNS_TYPE_A, "10.3.0.1", "api");
        return s;
}

static char *example_domains[] = { "example.com", NULL };

static const DnsAnswerConfig cfg_example = {
        .domains = example_domains,
        .negative_ttl = 30,
        .soa_mname = "ns.joyride.invalid",
        .soa_rname = "hostmaster.joyride.invalid",
};

static const DnsAnswerConfig cfg_all = {
        .domains = NULL,
        .negative_ttl = 45,
        .soa_mname = "ns.joyride.invalid",
        .soa_rname = "hostmaster.joyride.invalid",
};

static char *multi_domains[] = { "example.com", "wild.example.com.", "Zone.Test", NULL };

static const DnsAnswerConfig cfg_multi = {
        .domains = multi_domains,
        .negative_ttl = 60,
        .soa_mname = "ns.joyride.invalid",
        .soa_rname = "hostmaster.joyride.invalid",
};

static Reply R;

static void test_basic(const Store *s) {
        const QueryOpts o = { .rd = true, .id = 0xbeef };

        TEST_BEGIN("basic A");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_id(R.pkt) == 0xbeef);
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ldns_pkt_rd(R.pkt));
        CHECK(!ldns_pkt_tc(R.pkt));
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 3);
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.1"));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.2"));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.3"));
        CHECK(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(R.pkt), 0)) == 300);
        CHECK(ldns_pkt_nscount(R.pkt) == 0);
        CHECK(reply_u16(&R, 10) == 0); /* no OPT without EDNS */
        CHECK(R.info.qtype == DNS_TYPE_A && R.info.rcode == 0 && R.info.answer_count == 3);
        CHECK(!R.info.edns && !R.info.truncated);
        /* The owner of every answer is a pointer to the question. */
        CHECK(reply_u16(&R, 12 + 17 + 4) == 0xc00c);

        TEST_BEGIN("RD clear, CD copied");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_AAAA, &(QueryOpts) { .cd = true },
                  &R);
        check_common(&R, true);
        CHECK(!ldns_pkt_rd(R.pkt));
        CHECK(ldns_pkt_cd(R.pkt));
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "web.example.com. AAAA fd00::1"));

        TEST_BEGIN("client case echoed");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "WeB.ExAmPlE.CoM", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 3);
        CHECK(memcmp(R.buf + 13, "WeB", 3) == 0);

        TEST_BEGIN("TXT");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "txt.example.com", DNS_TYPE_TXT, &o, &R);
        check_common(&R, true);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "txt.example.com. TXT \"hello world\""));

        TEST_BEGIN("ANY");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_ANY, &o, &R);
        check_common(&R, true);
        CHECK(ancount(&R) == 4);
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. AAAA fd00::1"));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.2"));

        TEST_BEGIN("class ANY in the question");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_AAAA, &(QueryOpts) { .class = 255 },
                  &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(answer_is(&R, 0, "web.example.com. AAAA fd00::1"));
        /* Data of other classes may exist elsewhere: not authoritative
         * (RFC 1034 3.7.1), and neither is a negative answer. */
        CHECK(!ldns_pkt_aa(R.pkt));
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "nothere.example.com", DNS_TYPE_A, &(QueryOpts) { .class = 255 },
                  &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        CHECK(!ldns_pkt_aa(R.pkt));
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_AAAA,
                  &(QueryOpts) { .class = LDNS_RR_CLASS_IN }, &R);
        CHECK(ldns_pkt_aa(R.pkt));
}

static void test_round_robin(const Store *s) {
        char *first[3];

        TEST_BEGIN("round robin");
        for (int i = 0; i < 3; i++) {
                run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_A, &(QueryOpts) {}, &R);
                CHECK(ancount(&R) == 3);
                first[i] = rr_string(ldns_pkt_answer(R.pkt), 0);
        }
        /* Three values, three queries: three different first answers. */
        CHECK(!streq(first[0], first[1]));
        CHECK(!streq(first[1], first[2]));
        CHECK(!streq(first[0], first[2]));
        for (int i = 0; i < 3; i++)
                free(first[i]);
}

static void test_negative(const Store *s) {
        const QueryOpts o = {};

        TEST_BEGIN("NXDOMAIN");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "nothere.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));
        CHECK(R.info.rcode == DNS_RCODE_NXDOMAIN);

        TEST_BEGIN("NXDOMAIN below an existing name");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "deep.web.Example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        check_soa_authority(&R, "Example.com.", 30, store_version(s)); /* points into the question */

        TEST_BEGIN("NODATA");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "txt.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));

        TEST_BEGIN("empty non-terminal is NODATA");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "b.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "a.b.example.com", DNS_TYPE_A, &o, &R);
        CHECK(answer_is(&R, 0, "a.b.example.com. A 10.0.0.9"));

        TEST_BEGIN("SOA at the apex");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "example.com", DNS_TYPE_SOA, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 1);
        CHECK(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(R.pkt), 0)) == LDNS_RR_TYPE_SOA);
        CHECK(ldns_pkt_nscount(R.pkt) == 0);

        TEST_BEGIN("SOA below the apex is NODATA");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_SOA, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));

        TEST_BEGIN("apex A is NODATA");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        CHECK(ldns_pkt_nscount(R.pkt) == 1);

        TEST_BEGIN("REFUSED outside the domains");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "other.net", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
        CHECK(!ldns_pkt_aa(R.pkt));
        CHECK(ancount(&R) == 0 && ldns_pkt_nscount(R.pkt) == 0);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "notexample.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);

        TEST_BEGIN("the most specific domain is the apex");
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "foo.wild.example.com", DNS_TYPE_AAAA, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        check_soa_authority(&R, "wild.example.com.", 60, store_version(s));
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "nothere.example.COM", DNS_TYPE_AAAA, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        check_soa_authority(&R, "example.COM.", 60, store_version(s));

        TEST_BEGIN("an apex without data exists");
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "zone.test", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "zone.test.", 60, store_version(s));
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "zone.test", DNS_TYPE_SOA, &o, &R);
        CHECK(ancount(&R) == 1 && ldns_pkt_nscount(R.pkt) == 0);
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "a.zone.test", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        check_soa_authority(&R, "zone.test.", 60, store_version(s));
        run_query(s, &cfg_multi, DNS_TRANSPORT_UDP, "zone.testx", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);

        TEST_BEGIN("REFUSED outside the domains is flagged for forwarding");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "other.net", DNS_TYPE_A, &o, &R);
        CHECK(R.info.forward && R.info.rcode == DNS_RCODE_REFUSED);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "nothere.example.com", DNS_TYPE_A, &o, &R);
        CHECK(!R.info.forward);

        TEST_BEGIN("no domains: the domains our data lives in");
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "other.net", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(answer_is(&R, 0, "other.net. A 10.3.0.1"));
        CHECK(!R.info.forward);
        /* net holds other.net: it is the apex, never the root. */
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "nothere.net", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        CHECK(ldns_pkt_aa(R.pkt));
        check_soa_authority(&R, "net.", 45, store_version(s));
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "net", DNS_TYPE_SOA, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR && ancount(&R) == 1);
        CHECK(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(R.pkt), 0)) == LDNS_RR_TYPE_SOA);

        TEST_BEGIN("no domains: other names are REFUSED without AA or SOA");
        for (const char *const *n =
                     (const char *const[]) { "example.org", "www.example.org", "org", ".", "nothere.Invalid", NULL };
             *n; n++) {
                run_query(s, &cfg_all, DNS_TRANSPORT_UDP, *n, DNS_TYPE_A, &o, &R);
                check_common(&R, true);
                if (ldns_pkt_get_rcode(R.pkt) != LDNS_RCODE_REFUSED)
                        fprintf(stderr, "%s: rcode %d\n", *n, ldns_pkt_get_rcode(R.pkt));
                CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
                CHECK(!ldns_pkt_aa(R.pkt));
                CHECK(ancount(&R) == 0 && ldns_pkt_nscount(R.pkt) == 0 && ldns_pkt_arcount(R.pkt) == 0);
                CHECK(R.info.forward && R.info.rcode == DNS_RCODE_REFUSED);
        }
        /* With EDNS, the OPT is still there. */
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "example.org", DNS_TYPE_A, &(QueryOpts) { .edns_payload = 1232 }, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED && ldns_pkt_edns(R.pkt));
        CHECK(R.info.forward);
        /* Errors that are not about the name are not for a forwarder. */
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "example.org", 252 /* AXFR */, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED && !R.info.forward);
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "example.org", DNS_TYPE_A, &(QueryOpts) { .class = 3 }, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED && !R.info.forward);
}

static void test_reverse(const Store *s) {
        const QueryOpts o = {};

        TEST_BEGIN("reverse PTR");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "1.0.0.10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "1.0.0.10.in-addr.arpa. PTR web.example.com."));

        TEST_BEGIN("reverse PTR, IPv6");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP,
                  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", DNS_TYPE_PTR, &o, &R);
        check_common(&R, true);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(
                &R, 0,
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR web.example.com."));

        TEST_BEGIN("reverse names of addresses we do not hold are not ours");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "99.0.0.10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
        CHECK(!ldns_pkt_aa(R.pkt) && ldns_pkt_nscount(R.pkt) == 0 && R.info.forward);
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "1.2.3.4.5.ip6.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED && R.info.forward);

        TEST_BEGIN("reverse: NODATA above our addresses");
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "0.0.10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR && ancount(&R) == 0);
        check_soa_authority(&R, "in-addr.arpa.", 45, store_version(s));
}

/* Reverse names come from an address index, not from stored PTR nodes: a
 * store of its own, so the counts above stay as they are. */
static void test_reverse_index(void) {
        _cleanup_(store_freep) Store *s = NULL;
        const QueryOpts o = {};
        const char *rev = "7.8.9.10.in-addr.arpa";
        char *first[3];
        char buf[64];

        CHECK(store_new(&s) >= 0);
        CHECK(store_add(s, "a.example.com", DNS_TYPE_A, "10.9.8.7", 60, "hosts:/h", 1, NULL, NULL) == 1);
        CHECK(store_add(s, "a.example.com", DNS_TYPE_A, "10.9.8.7", 20, "docker:x", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "b.example.com", DNS_TYPE_A, "10.9.8.7", 300, "docker:x", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "c.example.com", DNS_TYPE_A, "10.9.8.7", 300, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "*.w.example.com", DNS_TYPE_A, "10.5.5.5", 300, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "v6.example.com", DNS_TYPE_AAAA, "2001:db8::7", 300, "api", 0, NULL, NULL) == 1);

        TEST_BEGIN("reverse: several names on one address, each once");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_PTR, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ancount(&R) == 3);
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR a.example.com."));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR b.example.com."));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR c.example.com."));
        for (size_t i = 0; i < 3; i++) {
                const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(R.pkt), i);
                char *t = ldns_rdf2str(ldns_rr_rdf(rr, 0));
                /* a.example.com: the lowest TTL of its two owners. */
                CHECK(ldns_rr_ttl(rr) == (streq(t, "a.example.com.") ? 20u : 300u));
                free(t);
        }

        TEST_BEGIN("reverse: round robin");
        for (int i = 0; i < 3; i++) {
                run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_PTR, &o, &R);
                CHECK(ancount(&R) == 3);
                first[i] = rr_string(ldns_pkt_answer(R.pkt), 0);
        }
        CHECK(!streq(first[0], first[1]) && !streq(first[1], first[2]) && !streq(first[0], first[2]));
        for (int i = 0; i < 3; i++)
                free(first[i]);

        TEST_BEGIN("reverse: other types and ANY");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "in-addr.arpa.", 30, store_version(s));
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_ANY, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 3);

        TEST_BEGIN("reverse: empty non-terminals are NODATA");
        for (const char *const *n =
                     (const char *const[]) { "8.9.10.in-addr.arpa", "9.10.in-addr.arpa", "10.in-addr.arpa",
                                             "in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa", "2.ip6.arpa", NULL };
             *n; n++) {
                run_query(s, &cfg_example, DNS_TRANSPORT_UDP, *n, DNS_TYPE_PTR, &o, &R);
                check_common(&R, true);
                if (ldns_pkt_get_rcode(R.pkt) != LDNS_RCODE_NOERROR)
                        fprintf(stderr, "%s: rcode %d\n", *n, ldns_pkt_get_rcode(R.pkt));
                CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
                CHECK(ancount(&R) == 0);
                CHECK(ldns_pkt_nscount(R.pkt) == 1);
        }
        /* Above the reverse zones: arpa is not ours (the address index says
         * it exists, but that must not make all of arpa ours). */
        run_query(s, &cfg_all, DNS_TRANSPORT_UDP, "arpa", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED && R.info.forward);

        TEST_BEGIN("reverse: absent addresses and wildcards are not ours");
        for (const char *const *n =
                     (const char *const[]) { "6.8.9.10.in-addr.arpa", "9.9.10.in-addr.arpa", "5.5.5.10.in-addr.arpa",
                                             "07.8.9.10.in-addr.arpa", "1.7.8.9.10.in-addr.arpa", "3.ip6.arpa", NULL };
             *n; n++) {
                run_query(s, &cfg_example, DNS_TRANSPORT_UDP, *n, DNS_TYPE_PTR, &o, &R);
                if (ldns_pkt_get_rcode(R.pkt) != LDNS_RCODE_REFUSED)
                        fprintf(stderr, "%s: rcode %d\n", *n, ldns_pkt_get_rcode(R.pkt));
                CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
                CHECK(ancount(&R) == 0 && R.info.forward);
        }

        TEST_BEGIN("reverse: explicit and derived PTRs together");
        CHECK(store_add(s, rev, DNS_TYPE_PTR, "mail.example.com", 100, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, rev, DNS_TYPE_PTR, "a.example.com", 100, "api", 0, NULL, NULL) == 1);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_PTR, &o, &R);
        CHECK(ancount(&R) == 4); /* a.example.com once */
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR mail.example.com."));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR a.example.com."));
        for (size_t i = 0; i < 4; i++) {
                const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(R.pkt), i);
                char *t = ldns_rdf2str(ldns_rr_rdf(rr, 0));
                CHECK(ldns_rr_ttl(rr) == (streq(t, "a.example.com.")      ? 20u
                                          : streq(t, "mail.example.com.") ? 100u
                                                                          : 300u));
                free(t);
        }
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_ANY, &o, &R);
        CHECK(ancount(&R) == 4);

        TEST_BEGIN("reverse: IPv6");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP,
                  "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(
                &R, 0,
                "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR v6.example.com."));

        TEST_BEGIN("reverse: too many names for UDP");
        for (int i = 0; i < 300; i++) {
                snprintf(buf, sizeof buf, "host%d.example.com", i);
                CHECK(store_add(s, buf, DNS_TYPE_A, "10.0.0.0", 300, "hosts:/many", 0, NULL, NULL) == 1);
        }
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "0.0.0.10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(ldns_pkt_tc(R.pkt) && ancount(&R) == 0);
        run_query(s, &cfg_example, DNS_TRANSPORT_TCP, "0.0.0.10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(!ldns_pkt_tc(R.pkt) && ancount(&R) == 300);
        CHECK(section_has(ldns_pkt_answer(R.pkt), "0.0.0.10.in-addr.arpa. PTR host299.example.com."));

        TEST_BEGIN("reverse: removal");
        CHECK(store_remove_owner(s, "hosts:/many") == 300);
        CHECK(store_remove_owner(s, "docker:x") == 2);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_PTR, &o, &R);
        CHECK(ancount(&R) == 3); /* hosts' a, api's c, the explicit mail (and a) */
        CHECK(section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR c.example.com."));
        CHECK(!section_has(ldns_pkt_answer(R.pkt), "7.8.9.10.in-addr.arpa. PTR b.example.com."));
        CHECK(store_remove(s, rev, DNS_TYPE_PTR, NULL, NULL) == 2);
        CHECK(store_remove(s, "a.example.com", 0, NULL, NULL) == 1);
        CHECK(store_remove(s, "c.example.com", 0, NULL, NULL) == 1);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, rev, DNS_TYPE_PTR, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "10.in-addr.arpa", DNS_TYPE_PTR, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_REFUSED);
}

static void test_cname(const Store *s) {
        const QueryOpts o = {};

        TEST_BEGIN("CNAME to A");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "alias.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 4);
        CHECK(answer_is(&R, 0, "alias.example.com. CNAME web.example.com."));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.1"));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.3"));

        TEST_BEGIN("CNAME chain");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "alias2.example.com", DNS_TYPE_AAAA, &o, &R);
        check_common(&R, true);
        CHECK(ancount(&R) == 3);
        CHECK(answer_is(&R, 0, "alias2.example.com. CNAME alias.example.com."));
        CHECK(answer_is(&R, 1, "alias.example.com. CNAME web.example.com."));
        CHECK(answer_is(&R, 2, "web.example.com. AAAA fd00::1"));

        TEST_BEGIN("CNAME asked as CNAME");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "alias2.example.com", DNS_TYPE_CNAME, &o, &R);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "alias2.example.com. CNAME alias.example.com."));

        TEST_BEGIN("CNAME loop");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "loop1.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 2);
        CHECK(answer_is(&R, 0, "loop1.example.com. CNAME loop2.example.com."));
        CHECK(answer_is(&R, 1, "loop2.example.com. CNAME loop1.example.com."));

        TEST_BEGIN("CNAME out of our data");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "ext.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "ext.example.com. CNAME www.elsewhere.org."));

        TEST_BEGIN("CNAME to a missing name of ours");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "dangling.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "dangling.example.com. CNAME nothere.example.com."));

        TEST_BEGIN("CNAME, target has no records of the type");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "alias.example.com", DNS_TYPE_TXT, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 1);
}

static void test_wildcard(const Store *s) {
        const QueryOpts o = {};

        TEST_BEGIN("wildcard");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "Foo.wild.example.com", DNS_TYPE_A, &o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "foo.wild.example.com. A 10.1.1.1"));

        TEST_BEGIN("wildcard, several labels deep");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "a.b.c.wild.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "a.b.c.wild.example.com. A 10.1.1.1"));

        TEST_BEGIN("closer existing name wins");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "exists.wild.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "exists.wild.example.com. A 10.1.1.2"));
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "exists.wild.example.com", DNS_TYPE_TXT, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);

        TEST_BEGIN("empty non-terminal blocks the wildcard");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "y.wild.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));
        /* Its closest encloser is y.wild.example.com, with no wildcard below it. */
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "q.y.wild.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);

        TEST_BEGIN("wildcard NODATA");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "foo.wild.example.com", DNS_TYPE_AAAA, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 0);
        check_soa_authority(&R, "example.com.", 30, store_version(s));

        TEST_BEGIN("the wildcard itself");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "*.wild.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ancount(&R) == 1);
        CHECK(answer_is(&R, 0, "*.wild.example.com. A 10.1.1.1"));

        TEST_BEGIN("no wildcard: NXDOMAIN");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "foo.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);

        TEST_BEGIN("wildcard CNAME");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "z.cn.example.com", DNS_TYPE_A, &o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 4);
        CHECK(answer_is(&R, 0, "z.cn.example.com. CNAME web.example.com."));
        CHECK(section_has(ldns_pkt_answer(R.pkt), "web.example.com. A 10.0.0.2"));
}

static void test_truncation(const Store *s) {
        /* many.example.com: header, question (18 + 4), 100 A records of 16
         * bytes each (owner is a 2-byte pointer). */
        const size_t full = 12 + 18 + 4 + 100 * 16;
        const uint16_t payloads[] = { 512, 1232, 1600, 1634, 1645, 1646, 4096, 65000 };

        TEST_BEGIN("UDP without EDNS truncates");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "many.example.com", DNS_TYPE_A, &(QueryOpts) {}, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_tc(R.pkt));
        CHECK(ldns_pkt_aa(R.pkt));
        CHECK(ancount(&R) == 0 && ldns_pkt_nscount(R.pkt) == 0);
        CHECK(R.len == 12 + 18 + 4);
        CHECK(R.info.truncated && R.info.answer_count == 0);

        TEST_BEGIN("TCP gets everything");
        run_query(s, &cfg_example, DNS_TRANSPORT_TCP, "many.example.com", DNS_TYPE_A, &(QueryOpts) {}, &R);
        check_common(&R, true);
        CHECK(!ldns_pkt_tc(R.pkt));
        CHECK(ancount(&R) == 100);
        CHECK(R.len == full);
        CHECK(section_has(ldns_pkt_answer(R.pkt), "many.example.com. A 10.2.0.100"));
        CHECK(R.info.answer_count == 100 && !R.info.truncated);

        for (size_t i = 0; i < ELEMENTSOF(payloads); i++) {
                size_t usable = MIN(MAX(payloads[i], 512u), 4096u);
                bool fits = full + 11 <= usable;

                TEST_BEGIN("UDP with EDNS");
                run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "many.example.com", DNS_TYPE_A,
                          &(QueryOpts) { .edns_payload = payloads[i] }, &R);
                check_common(&R, true);
                CHECK(ldns_pkt_tc(R.pkt) == !fits);
                CHECK(ancount(&R) == (fits ? 100 : 0));
                CHECK(R.len == (fits ? full : 12 + 18 + 4) + 11);
                CHECK(ldns_pkt_edns_udp_size(R.pkt) == DNS_EDNS_PAYLOAD_OURS);
                CHECK(reply_u16(&R, 10) == 1);
        }
}

static void test_edns(const Store *s) {
        TEST_BEGIN("EDNS");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_A,
                  &(QueryOpts) { .edns_payload = 1400, .edns_do = true }, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 3);
        CHECK(reply_u16(&R, 10) == 1);
        CHECK(ldns_pkt_edns_udp_size(R.pkt) == DNS_EDNS_PAYLOAD_OURS);
        CHECK(ldns_pkt_edns_version(R.pkt) == 0);
        CHECK(ldns_pkt_edns_extended_rcode(R.pkt) == 0);
        CHECK(ldns_pkt_edns_do(R.pkt)); /* copied from the query (RFC 3225 3) */
        CHECK(R.info.edns);
        /* OPT is last, owner root, no options. */
        CHECK(R.buf[R.len - 11] == 0);
        CHECK(reply_u16(&R, R.len - 10) == DNS_TYPE_OPT);
        CHECK(reply_u16(&R, R.len - 2) == 0);

        TEST_BEGIN("EDNS with a negative answer");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "nothere.example.com", DNS_TYPE_A,
                  &(QueryOpts) { .edns_payload = 1232 }, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);
        CHECK(!ldns_pkt_edns_do(R.pkt)); /* not asked for, not set */
        check_soa_authority(&R, "example.com.", 30, store_version(s));
        CHECK(reply_u16(&R, 10) == 1);

        TEST_BEGIN("BADVERS");
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_A,
                  &(QueryOpts) { .edns_payload = 1232, .edns_version = 1 }, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == 0);
        CHECK(ldns_pkt_edns_extended_rcode(R.pkt) == 1);
        CHECK(ldns_pkt_edns_version(R.pkt) == 0);
        CHECK(ancount(&R) == 0);
        CHECK(reply_u16(&R, 10) == 1);
        CHECK(R.info.rcode == DNS_RCODE_BADVERS);
        run_query(s, &cfg_example, DNS_TRANSPORT_UDP, "web.example.com", DNS_TYPE_A,
                  &(QueryOpts) { .edns_payload = 1232, .edns_version = 1, .edns_do = true }, &R);
        CHECK(ldns_pkt_edns_extended_rcode(R.pkt) == 1);
        CHECK(ldns_pkt_edns_do(R.pkt));
        CHECK(streq(dns_rcode_to_string(R.info.rcode), "BADVERS"));
}

/* Hand-made requests, for what ldns will not build. */
static size_t raw_header(uint8_t *b, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
        uint16_t v[6] = { 0x4242, flags, qd, an, ns, ar };
        for (int i = 0; i < 6; i++) {
                b[2 * i] = v[i] >> 8;
                b[2 * i + 1] = v[i] & 0xff;
        }
        return 12;
}

static size_t raw_put(uint8_t *b, size_t o, const void *data, size_t n) {
        memcpy(b + o, data, n);
        return o + n;
}

/* "\3web\7example\3com\0", type A, class IN */
static const uint8_t q_web[] = "\3web\7example\3com\0\0\1\0\1";
#define Q_WEB_LEN (sizeof(q_web) - 1)
static const uint8_t opt_rr[] = { 0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0 };
static const uint8_t opt_rr_do[] = { 0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0 }; /* DO set */

static void expect_rcode(const Store *s, const uint8_t *req, size_t len, ldns_pkt_rcode rcode, bool question) {
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, req, len, &R);
        CHECK(R.len > 0);
        check_common(&R, question);
        if (ldns_pkt_get_rcode(R.pkt) != rcode)
                fprintf(stderr, "rcode %d, want %d\n", ldns_pkt_get_rcode(R.pkt), rcode);
        CHECK(ldns_pkt_get_rcode(R.pkt) == rcode);
        CHECK(ancount(&R) == 0);
        CHECK(R.info.rcode == rcode);
        if (!question)
                CHECK(R.len == 12);
}

static void test_malformed(const Store *s) {
        uint8_t b[1024];
        size_t o;

        TEST_BEGIN("short packet");
        memset(b, 0, sizeof b);
        for (size_t l = 0; l < 12; l++) {
                run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, l, &R);
                CHECK(R.len == 0);
        }

        TEST_BEGIN("QR set");
        o = raw_header(b, 0x8100, 1, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        CHECK(R.len == 0);

        TEST_BEGIN("well-formed raw query");
        o = raw_header(b, 0x0100, 1, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        check_common(&R, true);
        CHECK(ancount(&R) == 3);

        TEST_BEGIN("QDCOUNT 0");
        o = raw_header(b, 0x0100, 0, 0, 0, 0);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);
        CHECK(R.info.qtype == 0);
        CHECK(!ldns_pkt_aa(R.pkt));

        TEST_BEGIN("QDCOUNT 2");
        o = raw_header(b, 0x0100, 2, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);

        TEST_BEGIN("label longer than 63");
        o = raw_header(b, 0, 1, 0, 0, 0);
        b[o++] = 64;
        memset(b + o, 'a', 64);
        o += 64;
        o = raw_put(b, o, "\0\0\1\0\1", 5);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);

        TEST_BEGIN("name longer than 255");
        o = raw_header(b, 0, 1, 0, 0, 0);
        for (int i = 0; i < 5; i++) {
                b[o++] = 63;
                memset(b + o, 'a', 63);
                o += 63;
        }
        o = raw_put(b, o, "\0\0\1\0\1", 5);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);

        TEST_BEGIN("compression pointer in the question");
        o = raw_header(b, 0, 1, 0, 0, 0);
        o = raw_put(b, o, "\3web\xc0\x0c\0\1\0\1", 10);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);

        TEST_BEGIN("truncated question");
        o = raw_header(b, 0, 1, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN - 2);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);
        o = raw_header(b, 0, 1, 0, 0, 0);
        o = raw_put(b, o, "\3web\7exa", 9);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, false);

        TEST_BEGIN("opcode STATUS");
        o = raw_header(b, 0x1100, 1, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        expect_rcode(s, b, o, LDNS_RCODE_NOTIMPL, true);
        CHECK(ldns_pkt_get_opcode(R.pkt) == LDNS_PACKET_STATUS);

        TEST_BEGIN("opcode NOTIFY with RD, CD and AD: none copied");
        o = raw_header(b, 0x2100 | 0x0030, 1, 0, 0, 0);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        expect_rcode(s, b, o, LDNS_RCODE_NOTIMPL, true);
        CHECK(ldns_pkt_get_opcode(R.pkt) == LDNS_PACKET_NOTIFY);
        CHECK(!ldns_pkt_rd(R.pkt) && !ldns_pkt_cd(R.pkt) && !ldns_pkt_ad(R.pkt));
        CHECK(reply_u16(&R, 2) == (0x8000 | 0x2000 | LDNS_RCODE_NOTIMPL));

        TEST_BEGIN("opcode UPDATE without a question");
        o = raw_header(b, 0x2800, 0, 0, 0, 0);
        expect_rcode(s, b, o, LDNS_RCODE_NOTIMPL, false);

        TEST_BEGIN("class CHAOS");
        o = raw_header(b, 0, 1, 0, 0, 0);
        o = raw_put(b, o, "\7version\4bind\0\0\x10\0\3", 18);
        expect_rcode(s, b, o, LDNS_RCODE_REFUSED, true);
        CHECK(ldns_pkt_nscount(R.pkt) == 0);

        TEST_BEGIN("class HS");
        o = raw_header(b, 0, 1, 0, 0, 0);
        o = raw_put(b, o, "\3web\7example\3com\0\0\1\0\4", Q_WEB_LEN);
        expect_rcode(s, b, o, LDNS_RCODE_REFUSED, true);

        TEST_BEGIN("two OPT records");
        o = raw_header(b, 0, 1, 0, 0, 2);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, true);

        TEST_BEGIN("two OPT records: the FORMERR carries ours, DO copied");
        CHECK(ldns_pkt_edns(R.pkt));
        CHECK(!ldns_pkt_edns_do(R.pkt));
        o = raw_header(b, 0, 1, 0, 0, 2);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, opt_rr_do, sizeof opt_rr_do);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, true);
        CHECK(ldns_pkt_edns(R.pkt) && ldns_pkt_edns_do(R.pkt));

        /* RFC 6891 7: a request with an OPT gets one in every response. */
        TEST_BEGIN("no question, an OPT: FORMERR with an OPT");
        o = raw_header(b, 0x0100, 0, 0, 0, 1);
        o = raw_put(b, o, opt_rr_do, sizeof opt_rr_do);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        check_common(&R, false);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_FORMERR);
        CHECK(R.len == 12 + 11 && reply_u16(&R, 10) == 1);
        CHECK(ldns_pkt_edns(R.pkt) && ldns_pkt_edns_do(R.pkt));
        CHECK(ldns_pkt_edns_udp_size(R.pkt) == DNS_EDNS_PAYLOAD_OURS);
        CHECK(R.info.edns);

        TEST_BEGIN("two questions, an OPT: FORMERR with an OPT");
        o = raw_header(b, 0x0100, 2, 0, 0, 1);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, "\3www\xc0\x10\0\1\0\1", 10);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        check_common(&R, false);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_FORMERR);
        CHECK(R.len == 12 + 11 && ldns_pkt_edns(R.pkt) && !ldns_pkt_edns_do(R.pkt));

        TEST_BEGIN("a question with a pointer, an OPT: FORMERR with an OPT");
        o = raw_header(b, 0, 1, 0, 0, 1);
        o = raw_put(b, o, "\3web\xc0\x0c\0\1\0\1", 10);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_FORMERR);
        CHECK(ldns_pkt_edns(R.pkt));

        TEST_BEGIN("NOTIMP with an OPT: OPT back, DO copied");
        o = raw_header(b, 0x1100, 1, 0, 0, 1);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, opt_rr_do, sizeof opt_rr_do);
        expect_rcode(s, b, o, LDNS_RCODE_NOTIMPL, true);
        CHECK(ldns_pkt_edns(R.pkt) && ldns_pkt_edns_do(R.pkt));
        o = raw_header(b, 0x2800, 0, 0, 0, 1);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOTIMPL);
        CHECK(ldns_pkt_edns(R.pkt));

        TEST_BEGIN("OPT with a non-root owner");
        o = raw_header(b, 0, 1, 0, 0, 1);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, "\1x", 2);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, true);

        TEST_BEGIN("truncated OPT");
        o = raw_header(b, 0, 1, 0, 0, 1);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, opt_rr, sizeof opt_rr - 3);
        expect_rcode(s, b, o, LDNS_RCODE_FORMERR, true);

        TEST_BEGIN("OPT after a compressed additional record");
        o = raw_header(b, 0, 1, 0, 0, 2);
        o = raw_put(b, o, q_web, Q_WEB_LEN);
        o = raw_put(b, o, "\xc0\x0c\0\1\0\1\0\0\0\0\0\4\1\2\3\4", 16);
        o = raw_put(b, o, opt_rr, sizeof opt_rr);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, b, o, &R);
        check_common(&R, true);
        CHECK(ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK(ancount(&R) == 3);
        CHECK(R.info.edns);

        TEST_BEGIN("rcode names");
        CHECK(streq(dns_rcode_to_string(0), "NOERROR"));
        CHECK(streq(dns_rcode_to_string(3), "NXDOMAIN"));
        CHECK(streq(dns_rcode_to_string(5), "REFUSED"));
        CHECK(dns_rcode_to_string(11) == NULL);
        CHECK(dns_rcode_to_string(-1) == NULL);
        CHECK(dns_rcode_to_string(4096) == NULL);
}

/* Informational only: how many answers per second this path makes. Under
 * ThreadSanitizer, which slows it down tenfold and more, a short run. */
#if defined(__SANITIZE_THREAD__)
#define MEASURE_QUERIES 20000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEASURE_QUERIES 20000
#endif
#endif
#ifndef MEASURE_QUERIES
#define MEASURE_QUERIES 2000000
#endif
static void measure(const Store *s) {
        uint8_t req[64], reply[512];
        uint64_t start;
        const unsigned n = MEASURE_QUERIES;
        size_t o, total = 0;
        double secs;

        o = raw_header(req, 0x0100, 1, 0, 0, 0);
        o = raw_put(req, o, q_web, Q_WEB_LEN);
        start = now_usec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n; i++)
                total += dns_answer(s, &cfg_example, DNS_TRANSPORT_UDP, req, o, reply, sizeof reply, NULL);
        secs = (double) (now_usec(CLOCK_MONOTONIC) - start) / USEC_PER_SEC;
        CHECK(total > 0);
        printf("answers per second (web.example.com A, 3 records): %.0f\n", n / secs);

        o = raw_header(req, 0x0100, 1, 0, 0, 0);
        o = raw_put(req, o, "\7nothere\7example\3com\0\0\1\0\1", 25);
        start = now_usec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n; i++)
                total += dns_answer(s, &cfg_example, DNS_TRANSPORT_UDP, req, o, reply, sizeof reply, NULL);
        secs = (double) (now_usec(CLOCK_MONOTONIC) - start) / USEC_PER_SEC;
        printf("answers per second (NXDOMAIN with SOA): %.0f\n", n / secs);
}

/* The batch prefetch: it finds the question's name as lookups will (the
 * store's hash of the lowercased wire name), gives up on anything odd, and
 * changes no answer. */
static void test_prefetch(const Store *s) {
        static const uint8_t wire[] = "\3web\7example\3com";
        uint8_t req[64], bad[64];
        DnsPrefetch p;
        size_t o, n;

        TEST_BEGIN("prefetch");
        o = raw_header(req, 0x0100, 1, 0, 0, 0);
        o = raw_put(req, o, "\3WeB\7ExAmple\3cOm\0\0\1\0\1", Q_WEB_LEN);
        p = (DnsPrefetch) { .valid = false };
        for (unsigned step = 0; step < DNS_PREFETCH_STEPS; step++)
                dns_answer_prefetch(s, req, o, &p, step);
        CHECK(p.valid);
        CHECK_INT_EQ(p.len, sizeof wire);
        CHECK(p.hash == store_name_hash(wire, sizeof wire));
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, req, o, &R);
        CHECK(R.pkt && ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NOERROR);
        CHECK_INT_EQ(ancount(&R), 3);

        /* A name we do not have: nothing to fetch, nothing changes. */
        n = raw_header(bad, 0x0100, 1, 0, 0, 0);
        n = raw_put(bad, n, "\7nothere\7example\3com\0\0\1\0\1", 25);
        for (unsigned step = 0; step < DNS_PREFETCH_STEPS; step++)
                dns_answer_prefetch(s, bad, n, &p, step);
        CHECK(p.valid);
        run_raw(s, &cfg_example, DNS_TRANSPORT_UDP, bad, n, &R);
        CHECK(R.pkt && ldns_pkt_get_rcode(R.pkt) == LDNS_RCODE_NXDOMAIN);

        /* Odd requests: left to dns_answer(). */
        p.valid = true;
        dns_answer_prefetch(s, req, DNS_HEADER_SIZE, &p, 0); /* no question */
        CHECK(!p.valid);
        memcpy(bad, req, o);
        bad[5] = 2; /* two questions */
        p.valid = true;
        dns_answer_prefetch(s, bad, o, &p, 0);
        CHECK(!p.valid);
        p.valid = true;
        dns_answer_prefetch(s, req, DNS_HEADER_SIZE + 10, &p, 0); /* cut inside the name */
        CHECK(!p.valid);
        memcpy(bad, req, o);
        bad[DNS_HEADER_SIZE + 4] = 0xc0; /* a compression pointer where a label goes */
        p.valid = true;
        dns_answer_prefetch(s, bad, o, &p, 0);
        CHECK(!p.valid);
        for (unsigned step = 1; step < DNS_PREFETCH_STEPS; step++)
                dns_answer_prefetch(s, bad, o, &p, step);
}

/* The "is it ours" rule on its own: dns_zone_apex() over a small store. */
static const char *apex_of(const Store *s, const DnsAnswerConfig *cfg, const char *name) {
        static char out[1024];
        uint8_t wire[DNS_WIRE_NAME_MAX];
        int len, off;

        /* Keep the case as written: the rule must not care. */
        ldns_rdf *d = ldns_dname_new_frm_str(name);
        CHECK(d);
        len = (int) ldns_rdf_size(d);
        memcpy(wire, ldns_rdf_data(d), (size_t) len);
        ldns_rdf_deep_free(d);
        off = dns_zone_apex(s, cfg, wire, (size_t) len);
        if (off == -ENOENT)
                return "-";
        CHECK(off >= 0 && off < len);
        CHECK(dns_wire_to_name(wire + off, (size_t) (len - off), out, sizeof out) >= 0);
        for (char *c = out; *c; c++)
                *c = (char) tolower((unsigned char) *c);
        return out[0] ? out : ".";
}

static void test_zone_apex(void) {
        _cleanup_(store_freep) Store *s = NULL;
        static char *domains[] = { "example.com", "2.0.192.in-addr.arpa", NULL };
        const DnsAnswerConfig with_domains = { .domains = domains };
        const DnsAnswerConfig without = {};
        uint8_t bad[] = { 3, 'a', 'b', 'c' }; /* no root */
        static const struct {
                const char *name;
                const char *without;      /* the apex with no domains, "-" for not ours */
                const char *with_domains; /* with example.com, 2.0.192.in-addr.arpa */
        } cases[] = {
                /* Names and the domains they live in. */
                { "api.internal", "internal", "-" },
                { "API.Internal.", "internal", "-" },
                { "internal", "internal", "-" },
                { "nothere.internal", "internal", "-" },
                { "deep.below.api.internal", "internal", "-" },
                { "example.com", "-", "example.com" },
                { "www.example.com", "-", "example.com" },
                { "internalx", "-", "-" },
                { ".", "-", "-" },
                /* An empty non-terminal makes its top-level name ours too. */
                { "c.b.lan", "lan", "-" },
                { "b.lan", "lan", "-" },
                { "x.lan", "lan", "-" },
                /* A wildcard's domain is ours, with the names it covers. */
                { "anything.wild.test", "test", "-" },
                { "test", "test", "-" },
                /* A single-label name is its own apex. */
                { "printer", "printer", "-" },
                { "x.printer", "printer", "-" },
                /* Reverse names: ours when we hold the address or one below. */
                { "7.2.0.192.in-addr.arpa", "in-addr.arpa", "2.0.192.in-addr.arpa" },
                { "8.2.0.192.in-addr.arpa", "-", "2.0.192.in-addr.arpa" },
                { "2.0.192.in-addr.arpa", "in-addr.arpa", "2.0.192.in-addr.arpa" },
                { "192.in-addr.arpa", "in-addr.arpa", "in-addr.arpa" },
                { "in-addr.arpa", "in-addr.arpa", "in-addr.arpa" },
                { "1.1.1.1.in-addr.arpa", "-", "-" },
                { "1.7.2.0.192.in-addr.arpa", "-", "2.0.192.in-addr.arpa" },
                { "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "ip6.arpa", "ip6.arpa" },
                { "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "-", "-" },
                { "ip6.arpa", "ip6.arpa", "ip6.arpa" },
                /* An explicit PTR, and a wildcard under a reverse zone. */
                { "5.5.10.in-addr.arpa", "in-addr.arpa", "in-addr.arpa" },
                { "9.9.9.10.in-addr.arpa", "in-addr.arpa", "in-addr.arpa" },
                { "9.9.8.10.in-addr.arpa", "-", "-" },
                /* arpa is not ours for holding addresses or explicit PTRs;
                 * under it, the second level is what the top level is elsewhere. */
                { "arpa", "-", "-" },
                { "x.arpa", "-", "-" },
                { "home.arpa", "home.arpa", "-" },
                { "nas.home.arpa", "home.arpa", "-" },
        };

        TEST_BEGIN("ours rule");
        CHECK(store_new(&s) >= 0);
        add(s, "api.internal", DNS_TYPE_A, "192.0.2.7", "api");
        add(s, "c.b.lan", DNS_TYPE_TXT, "x", "api");
        add(s, "*.wild.test", DNS_TYPE_A, "10.9.9.9", "api");
        add(s, "printer", DNS_TYPE_AAAA, "2001:db8::1", "api");
        add(s, "5.5.10.in-addr.arpa", DNS_TYPE_PTR, "printer", "api");
        add(s, "*.9.9.10.in-addr.arpa", DNS_TYPE_PTR, "any.internal", "api");
        add(s, "router.home.arpa", DNS_TYPE_A, "192.168.1.1", "api");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *a = apex_of(s, &without, cases[i].name);
                if (!streq(a, cases[i].without))
                        fprintf(stderr, "%s without domains: apex %s, want %s\n", cases[i].name, a, cases[i].without);
                CHECK(streq(a, cases[i].without));
                a = apex_of(s, &with_domains, cases[i].name);
                if (!streq(a, cases[i].with_domains))
                        fprintf(stderr, "%s with domains: apex %s, want %s\n", cases[i].name, a, cases[i].with_domains);
                CHECK(streq(a, cases[i].with_domains));
        }

        TEST_BEGIN("ours rule: follows the store");
        CHECK(store_remove(s, "api.internal", 0, NULL, NULL) == 1);
        CHECK(streq(apex_of(s, &without, "api.internal"), "-"));
        CHECK(streq(apex_of(s, &without, "7.2.0.192.in-addr.arpa"), "-"));
        CHECK(streq(apex_of(s, &with_domains, "7.2.0.192.in-addr.arpa"), "2.0.192.in-addr.arpa"));

        TEST_BEGIN("ours rule: bad input");
        CHECK(dns_zone_apex(s, &without, bad, sizeof bad) == -EINVAL);
        CHECK(dns_zone_apex(s, &without, bad, 0) == -EINVAL);
}

int main(void) {
        Store *s = make_store();

        test_basic(s);
        test_round_robin(s);
        test_negative(s);
        test_reverse(s);
        test_reverse_index();
        test_zone_apex();
        test_cname(s);
        test_wildcard(s);
        test_truncation(s);
        test_edns(s);
        test_malformed(s);
        test_prefetch(s);
        if (!getenv("DNS_ANSWER_NO_BENCH"))
                measure(s);

        reply_clear(&R);
        store_free(s);
        printf("test-dns-answer: all checks passed\n");
        return EXIT_SUCCESS;
}
