/* SPDX-License-Identifier: MIT */
/* Forwarded answers: an upstream's reply parsed once (DnsRelayMessage), kept
 * in a cache bounded in entries and bytes with LRU eviction (DnsCache), and
 * replayed to each client with its ID, its letter case, its flags, its EDNS
 * and TTLs aged by the time spent in the cache. No sockets, no clock of its
 * own (callers pass CLOCK_MONOTONIC microseconds), no locks: the forwarder's
 * thread owns it. Unit-tested in tests/test-dns-cache.c.
 *
 * What is cached (RFC 2308 for the negative side):
 * - NOERROR with answers: for the lowest TTL of its records;
 * - NXDOMAIN and NODATA (NOERROR, no answer) with an SOA in the authority
 *   section: for min(SOA TTL, SOA MINIMUM), the SOA's TTL rewritten to that;
 * - every TTL capped at the configured maximum first;
 * - nothing else: SERVFAIL, REFUSED, truncated replies, a TTL of 0, negative
 *   answers without an SOA. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns-answer.h"
#include "macro.h"

/* What a cached answer is for: the question, and the bits of the query that
 * change what an upstream puts in its answer (DNSSEC records, validation). */
typedef struct DnsCacheKey {
        uint16_t type;
        uint16_t class;
        uint8_t flags;                   /* DNS_CACHE_KEY_DO | DNS_CACHE_KEY_CD */
        uint8_t name_len;                /* wire length, with the root byte */
        uint8_t name[DNS_WIRE_NAME_MAX]; /* lowercased wire name */
} DnsCacheKey;

#define DNS_CACHE_KEY_DO 0x01
#define DNS_CACHE_KEY_CD 0x02

/* Builds a key from a wire name (any case, uncompressed). -EINVAL when the
 * name is not a valid wire name of exactly len bytes. */
int dns_cache_key_init(DnsCacheKey *k, const uint8_t *name, size_t len, uint16_t type, uint16_t class, uint8_t flags);
bool dns_cache_key_equal(const DnsCacheKey *a, const DnsCacheKey *b);
uint32_t dns_cache_key_hash(const DnsCacheKey *k);

/* An upstream's reply, ready to replay: its OPT record removed (each client
 * gets its own), TTLs capped, the offset of every TTL remembered. */
typedef struct DnsRelayMessage DnsRelayMessage;

/* Parses msg (a reply already matched to its question). max_ttl caps every
 * TTL. Returns 0, -EBADMSG when msg is not a well-formed reply (or its OPT
 * record is not the last record), -ENOMEM. */
int dns_relay_message_new(const uint8_t *msg, size_t len, uint32_t max_ttl, DnsRelayMessage **ret);
DnsRelayMessage *dns_relay_message_free(DnsRelayMessage *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsRelayMessage *, dns_relay_message_free);

uint8_t dns_relay_message_rcode(const DnsRelayMessage *m);  /* the 4-bit header rcode */
bool dns_relay_message_truncated(const DnsRelayMessage *m); /* TC was set upstream */
uint16_t dns_relay_message_answer_count(const DnsRelayMessage *m);
/* How long it may be cached, in seconds (see the top); 0: not at all. */
uint32_t dns_relay_message_cache_ttl(const DnsRelayMessage *m);
size_t dns_relay_message_size(const DnsRelayMessage *m); /* bytes it holds, for the cache's bound */

/* The client a reply is for, as its query said. */
typedef struct DnsRelayClient {
        uint16_t id;
        uint16_t flags;          /* the query's header flags: RD, CD (and AD) are honoured */
        const uint8_t *question; /* the question section as the client wrote it */
        size_t question_len;
        bool edns; /* the query had an OPT record: the reply gets ours */
        bool edns_do;
        size_t limit; /* the most bytes the reply may have: UDP payload size or 65535 */
} DnsRelayClient;

/* Writes the reply for client c into out (out_size >= c->limit): upstream's
 * sections with TTLs lowered by age seconds, ID and question of the client,
 * QR, RA and RD set (RD as the client had it), AA clear, the upstream's rcode.
 * When it does not fit c->limit: header, question (and OPT) with TC set.
 * Returns the length, or 0 when out is too small even for that. */
size_t dns_relay_build(const DnsRelayMessage *m, uint32_t age, const DnsRelayClient *c, uint8_t *out, size_t out_size);

/* A reply without data from us: SERVFAIL when no upstream answered, REFUSED
 * to a client that may not use forwarding. RA is set with recursion_available. */
size_t dns_relay_build_error(uint8_t rcode, bool recursion_available, const DnsRelayClient *c, uint8_t *out,
                             size_t out_size);

/* --- the cache ------------------------------------------------------------ */

typedef struct DnsCache DnsCache;

typedef struct DnsCacheCounters {
        uint64_t hits;
        uint64_t misses;
        uint64_t inserted;
        uint64_t evicted; /* dropped for room (LRU) */
        uint64_t expired; /* dropped when found past their TTL */
} DnsCacheCounters;

/* max_entries 0: a cache that stores nothing. max_bytes bounds what the
 * stored messages take (at least one full-size message fits). */
int dns_cache_new(DnsCache **ret, size_t max_entries, size_t max_bytes);
DnsCache *dns_cache_free(DnsCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsCache *, dns_cache_free);

/* Stores m under k at now_usec for its cache TTL, replacing what k had, and
 * evicting the least recently used entries beyond the bounds. Takes
 * ownership of m in every case (frees it when it is not cacheable). Returns
 * 1 when stored, 0 when not cacheable. */
int dns_cache_put(DnsCache *c, const DnsCacheKey *k, DnsRelayMessage *m, uint64_t now_usec);

/* The live message for k, and its age in whole seconds; NULL when there is
 * none (an expired one is dropped). Counts a hit or a miss. */
const DnsRelayMessage *dns_cache_get(DnsCache *c, const DnsCacheKey *k, uint64_t now_usec, uint32_t *ret_age);

void dns_cache_flush(DnsCache *c);
size_t dns_cache_entries(const DnsCache *c);
size_t dns_cache_bytes(const DnsCache *c);
const DnsCacheCounters *dns_cache_get_counters(const DnsCache *c);
