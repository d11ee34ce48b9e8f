/* SPDX-License-Identifier: MIT */
/* The DNS answer path: a function from request bytes to reply bytes over the
 * record store. It never touches a socket, so it is tested and fuzzed alone. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

#define DNS_HEADER_SIZE 12
#define DNS_UDP_PAYLOAD_DEFAULT 512
#define DNS_EDNS_PAYLOAD_OURS 1232 /* what we advertise and cap to (DNS flag day 2020) */
#define DNS_TCP_MESSAGE_MAX 65535

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5
#define DNS_RCODE_BADVERS 16

typedef enum DnsTransport {
        DNS_TRANSPORT_UDP,
        DNS_TRANSPORT_TCP,
} DnsTransport;

typedef struct DnsAnswerConfig {
        char **domains;        /* the zones we are authoritative for; NULL or empty: the domains
                                     * our data lives in (see dns_zone_apex()) */
        uint32_t negative_ttl; /* SOA TTL and MINIMUM in negative answers */
        const char *soa_mname; /* primary name server in the SOA, e.g. "ns.joyride.invalid" */
        const char *soa_rname; /* mailbox, e.g. "hostmaster.joyride.invalid" */
} DnsAnswerConfig;

/* What happened, for counters and debug logs. */
typedef struct DnsQueryInfo {
        uint16_t qtype; /* 0 when there was no readable question */
        uint8_t rcode;  /* including extended bits (BADVERS = 16) */
        bool truncated;
        bool edns;
        uint16_t answer_count;
        /* The name is not ours: the reply is a REFUSED (AA clear, no SOA)
         * that a forwarder may replace with an upstream's answer. */
        bool forward;
} DnsQueryInfo;

/* Answers one request. reply must hold reply_size bytes (at least 512; 65535
 * for TCP). Returns the reply length, or 0 when no reply must be sent (shorter
 * than a header, or a response rather than a query).
 *
 * It only reads the store and cfg: call it between rcu_reader_lock() and
 * rcu_reader_unlock() from an answering thread (or from the thread that
 * changes the store). Round robin turns a counter of the calling thread. */
size_t dns_answer(const Store *s, const DnsAnswerConfig *cfg, DnsTransport transport, const uint8_t *req,
                  size_t req_len, uint8_t *reply, size_t reply_size, DnsQueryInfo *ret_info);

/* Starts fetching what answering req will read, for a batch of requests
 * (see store_prefetch()): step 0 reads the question's name into p, steps 1
 * to DNS_PREFETCH_STEPS - 1 go on from there; call each step for every
 * request of the batch before the next step, and dns_answer() after the
 * last. Under rcu_reader_lock(), like dns_answer(). */
#define DNS_PREFETCH_STEPS STORE_PREFETCH_STEPS
typedef struct DnsPrefetch {
        uint32_t hash;
        uint16_t len;
        bool valid;
} DnsPrefetch;
void dns_answer_prefetch(const Store *s, const uint8_t *req, size_t req_len, DnsPrefetch *p, unsigned step);

/* Which names are ours, and the apex of the zone a name of ours is in (the
 * owner of the SOA in negative answers):
 * - under a configured domain (cfg->domains): the most specific one;
 * - else a reverse name (under in-addr.arpa or ip6.arpa) of an address the
 *   store holds, above one, or covered by a wildcard of ours: in-addr.arpa or
 *   ip6.arpa;
 * - else, when no domains are configured, a name whose top-level label is a
 *   name in the store (with records, or above some: with api.internal held,
 *   internal and every name below it are ours, example.com is not): that
 *   top-level name.
 * Every other name is not ours: never the root. wire is an uncompressed wire
 * name in any case. Returns the offset of the apex in wire, -ENOENT when the
 * name is not ours, -EINVAL when wire is not a valid name. */
int dns_zone_apex(const Store *s, const DnsAnswerConfig *cfg, const uint8_t *wire, size_t len);

const char *dns_rcode_to_string(int rcode); /* "NOERROR", ...; NULL if unknown */
/* The name, or "RCODE<n>" in buf for one without a name. */
const char *dns_rcode_format(unsigned rcode, char buf[static 16]);
