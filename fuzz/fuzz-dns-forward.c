/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what the forwarder reads from others: an upstream's
 * reply (matched against a question, parsed, cached, replayed to clients of
 * every size), a client's query as handed off, and resolv.conf text. The
 * first byte picks the parser. Besides the sanitizers it checks the promises:
 * a replay never exceeds the client's limit and always parses as a header
 * with the client's ID and question; the cache holds what it says it does. */

#include <assert.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "dns-cache.h"
#include "dns-forward.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void replay(const DnsRelayMessage *m, const uint8_t *msg, size_t len) {
        static uint8_t out[DNS_TCP_MESSAGE_MAX];
        size_t qend = DNS_HEADER_SIZE;

        /* The client asked the upstream's own question (the forwarder only
         * relays matching replies), in another case. */
        while (qend < len && msg[qend] != 0 && msg[qend] <= 63)
                qend += 1 + msg[qend];
        if (qend >= len || msg[qend] != 0 || qend + 5 > len)
                return;
        qend += 5;
        uint8_t q[DNS_WIRE_NAME_MAX + 4 + 8];
        if (qend - DNS_HEADER_SIZE > sizeof q)
                return;
        memcpy(q, msg + DNS_HEADER_SIZE, qend - DNS_HEADER_SIZE);
        for (size_t i = 0; i < qend - DNS_HEADER_SIZE; i++)
                if (q[i] >= 'a' && q[i] <= 'z')
                        q[i] -= 'a' - 'A';

        static const size_t limits[] = { 512, 1232, DNS_TCP_MESSAGE_MAX };
        for (size_t i = 0; i < 3; i++)
                for (int edns = 0; edns < 2; edns++) {
                        DnsRelayClient c = {
                                .id = 0x1234,
                                .flags = 0x0100,
                                .question = q,
                                .question_len = qend - DNS_HEADER_SIZE,
                                .edns = edns,
                                .limit = limits[i],
                        };
                        size_t n = dns_relay_build(m, (uint32_t) i * 100, &c, out, sizeof out);
                        if (n == 0)
                                continue;
                        assert(n <= limits[i]);
                        assert(n >= DNS_HEADER_SIZE + c.question_len);
                        assert(out[0] == 0x12 && out[1] == 0x34);
                        assert(memcmp(out + DNS_HEADER_SIZE, q, c.question_len) == 0);
                        assert(out[2] & 0x80);    /* QR */
                        assert(!(out[2] & 0x04)); /* AA clear */
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        static DnsCache *cache;

        if (!init) {
                log_set_max_level(LOG_CRIT);
                assert(dns_cache_new(&cache, 16, 64 * 1024) == 0);
                init = true;
        }
        if (size < 1)
                return 0;

        switch (data[0] % 3) {
        case 0: {
                /* An upstream's reply. */
                DnsRelayMessage *m = NULL;
                DnsCacheKey k;
                struct sockaddr_storage up;
                socklen_t l;
                size_t len = size - 1;
                const uint8_t *msg = data + 1;

                assert(dns_forward_parse_address("127.0.0.1:53", 53, &up, &l) == 0);
                if (len >= DNS_HEADER_SIZE + 5) {
                        size_t e = DNS_HEADER_SIZE;
                        while (e < len && msg[e] != 0 && msg[e] <= 63)
                                e += 1 + msg[e];
                        if (e < len && msg[e] == 0 && e + 1 - DNS_HEADER_SIZE <= DNS_WIRE_NAME_MAX &&
                            dns_cache_key_init(&k, msg + DNS_HEADER_SIZE, e + 1 - DNS_HEADER_SIZE, 1, 1, 0) == 0)
                                (void) dns_forward_check_reply(&k, (uint16_t) ((msg[0] << 8) | msg[1]),
                                                               (struct sockaddr *) &up, (struct sockaddr *) &up, msg,
                                                               len);
                }
                if (dns_relay_message_new(msg, len, 3600, &m) < 0) {
                        assert(!m);
                        return 0;
                }
                assert(dns_relay_message_cache_ttl(m) <= 3600);
                replay(m, msg, len);
                if (dns_cache_key_init(&k, (const uint8_t *) "\4fuzz\0", 6, 1, 1, 0) == 0) {
                        uint32_t ttl = dns_relay_message_cache_ttl(m);
                        int stored = dns_cache_put(cache, &k, m, 1000000);
                        assert(stored == 0 || stored == 1);
                        if (stored)
                                assert(ttl > 0 && dns_cache_get(cache, &k, 1000000, NULL));
                        assert(dns_cache_entries(cache) <= 16);
                } else
                        dns_relay_message_free(m);
                break;
        }
        case 1: {
                /* A client's query, as the answering threads hand it off. */
                DnsForwardQuery q;
                uint8_t out[600];

                if (dns_forward_parse_query(data + 1, size - 1, &q) == 0) {
                        assert(q.question_len <= size - 1 - DNS_HEADER_SIZE);
                        assert(q.payload >= DNS_UDP_PAYLOAD_DEFAULT);
                        size_t n = dns_forward_build_query(&q.key, 7, out, sizeof out);
                        assert(n > 0);
                        DnsForwardQuery back;
                        assert(dns_forward_parse_query(out, n, &back) == 0);
                        assert(dns_cache_key_equal(&back.key, &q.key));
                }
                break;
        }
        case 2: {
                /* resolv.conf text. */
                char *text = g_strndup((const char *) data + 1, size - 1);
                char **l = NULL;

                assert(dns_forward_parse_resolv_conf(text, &l) == 0);
                for (char **s = l; s && *s; s++) {
                        struct sockaddr_storage sa;
                        socklen_t sl;
                        assert(dns_forward_parse_address(*s, 53, &sa, &sl) == 0);
                }
                g_strfreev(l);
                g_free(text);
                break;
        }
        }
        return 0;
}
