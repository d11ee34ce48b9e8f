/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the DNS answer path: arbitrary request bytes against a
 * store with wildcards, CNAME chains and loops, reverse names (derived from
 * addresses, explicit, both), over UDP and TCP, with and without configured
 * domains. Besides what the sanitizers catch, every reply
 * must parse with ldns and respect the size limit of its transport. */

#include <ldns/ldns.h>
#include <stdio.h>

#include "dns-answer.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Store *store;

static char *domains[] = { "example.com", "wild.example.com", "in-addr.arpa", NULL };

static const DnsAnswerConfig configs[] = {
        {
                .domains = domains,
                .negative_ttl = 30,
                .soa_mname = "ns.joyride.invalid",
                .soa_rname = "hostmaster.joyride.invalid",
        },
        {
                .domains = NULL,
                .negative_ttl = 60,
                .soa_mname = "ns.joyride.invalid",
                .soa_rname = "hostmaster.joyride.invalid",
        },
};

static void add(const char *name, uint16_t type, const char *value) {
        if (store_add(store, name, type, value, 300, "fuzz", 0, NULL, NULL) < 0)
                abort();
}

static void setup(void) {
        char buf[32];

        if (store_new(&store) < 0)
                abort();
        add("web.example.com", DNS_TYPE_A, "10.0.0.1");
        add("web.example.com", DNS_TYPE_A, "10.0.0.2");
        add("web.example.com", DNS_TYPE_AAAA, "fd00::1");
        add("txt.example.com", DNS_TYPE_TXT, "some text");
        add("alias.example.com", DNS_TYPE_CNAME, "web.example.com");
        add("alias2.example.com", DNS_TYPE_CNAME, "alias.example.com");
        add("loop1.example.com", DNS_TYPE_CNAME, "loop2.example.com");
        add("loop2.example.com", DNS_TYPE_CNAME, "loop1.example.com");
        add("self.example.com", DNS_TYPE_CNAME, "self.example.com");
        add("ext.example.com", DNS_TYPE_CNAME, "www.elsewhere.org");
        add("a.b.example.com", DNS_TYPE_A, "10.0.0.9");
        add("*.wild.example.com", DNS_TYPE_A, "10.1.1.1");
        add("*.wild.example.com", DNS_TYPE_CNAME, "loop1.example.com");
        add("x.y.wild.example.com", DNS_TYPE_A, "10.1.1.3");
        add("*.cn.example.com", DNS_TYPE_CNAME, "alias2.example.com");
        add("*.other.net", DNS_TYPE_TXT, "wild text");
        /* A long chain, longer than we follow. */
        for (int i = 0; i < 12; i++) {
                char target[32];
                snprintf(buf, sizeof buf, "c%d.example.com", i);
                snprintf(target, sizeof target, "c%d.example.com", i + 1);
                add(buf, DNS_TYPE_CNAME, target);
        }
        for (int i = 1; i <= 200; i++) {
                snprintf(buf, sizeof buf, "10.2.%d.%d", i / 250, i % 250);
                add("many.example.com", DNS_TYPE_A, buf);
        }
        /* Reverse names: several names on one address, explicit PTRs next to
         * derived ones (one the same target), a CNAME and a wildcard among
         * them, IPv6, and one address with more names than a reply holds. */
        add("mail.example.com", DNS_TYPE_A, "10.0.0.1");
        add("1.0.0.10.in-addr.arpa", DNS_TYPE_PTR, "web.example.com");
        add("1.0.0.10.in-addr.arpa", DNS_TYPE_PTR, "other.example.org");
        add("5.0.0.10.in-addr.arpa", DNS_TYPE_CNAME, "1.0.0.10.in-addr.arpa");
        add("*.9.0.10.in-addr.arpa", DNS_TYPE_PTR, "wild.example.com");
        add("v6.example.com", DNS_TYPE_AAAA, "fd00::1");
        add("v6b.example.com", DNS_TYPE_AAAA, "2001:db8::abcd");
        for (int i = 0; i < 400; i++) {
                snprintf(buf, sizeof buf, "blocked%d.example.com", i);
                add(buf, DNS_TYPE_A, "0.0.0.0");
        }
}

static void check_reply(const uint8_t *req, size_t req_len, const uint8_t *reply, size_t len, size_t limit,
                        const DnsQueryInfo *info) {
        ldns_pkt *pkt = NULL;

        if (len == 0)
                return;
        if (len < DNS_HEADER_SIZE || len > limit)
                abort();
        if (reply[0] != req[0] || reply[1] != req[1] || !(reply[2] & 0x80))
                abort();
        if (ldns_wire2pkt(&pkt, reply, len) != LDNS_STATUS_OK) {
                fprintf(stderr, "reply of %zu bytes does not parse\n", len);
                abort();
        }
        if (ldns_pkt_ancount(pkt) != info->answer_count)
                abort();
        if (info->truncated && (!ldns_pkt_tc(pkt) || ldns_pkt_ancount(pkt) != 0))
                abort();
        ldns_pkt_free(pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t reply[DNS_TCP_MESSAGE_MAX];

        if (!store)
                setup();

        {
                DnsPrefetch p;

                for (unsigned step = 0; step < DNS_PREFETCH_STEPS; step++)
                        dns_answer_prefetch(store, data, size, &p, step);
        }

        for (size_t c = 0; c < ELEMENTSOF(configs); c++) {
                DnsQueryInfo info;
                size_t len;

                /* UDP into a big buffer: the 512/EDNS limit must hold by itself. */
                len = dns_answer(store, &configs[c], DNS_TRANSPORT_UDP, data, size, reply, 4096, &info);
                check_reply(data, size, reply, len, info.edns ? 4096 : DNS_UDP_PAYLOAD_DEFAULT, &info);

                /* UDP into the smallest buffer allowed. */
                len = dns_answer(store, &configs[c], DNS_TRANSPORT_UDP, data, size, reply, DNS_UDP_PAYLOAD_DEFAULT,
                                 &info);
                check_reply(data, size, reply, len, DNS_UDP_PAYLOAD_DEFAULT, &info);

                len = dns_answer(store, &configs[c], DNS_TRANSPORT_TCP, data, size, reply, sizeof reply, &info);
                check_reply(data, size, reply, len, sizeof reply, &info);
        }
        return 0;
}
