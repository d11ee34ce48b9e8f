/* SPDX-License-Identifier: MIT */
/* Forwarding of the names that are not ours ([DNS] Forward=): questions the
 * answer path flags (DnsQueryInfo.forward) are handed off here by the DNS
 * transports, sent upstream, and the answers relayed back to the clients.
 *
 * The forwarder runs on a thread of its own with its own sd-event loop, so an
 * answering thread never waits for it: dns_forwarder_submit() copies the
 * query into a lock-free queue and returns. The forwarder thread then checks
 * the client against ForwardAllow, answers from its cache (dns-cache.h),
 * joins a question already in flight, or asks the upstreams in turn. It
 * sends UDP replies itself, on the socket the query came in on (sendmsg on a
 * UDP socket is safe from any thread); TCP replies go back to the thread that
 * owns the connection through a DnsReplyQueue (an eventfd and a lock-free
 * list), which that thread's loop drains.
 *
 * Upstream queries carry RD, the client's CD and DO, EDNS(0) with our payload
 * size (1232), a random ID and a random source port (a new connected socket
 * each), so that an off-path attacker must guess 32 bits; a reply counts only
 * when it comes from the upstream's address and port, with the ID and the
 * question (name, type, class) that were sent. A reply with TC is asked again
 * over TCP; TCP clients are forwarded over TCP. Upstreams are tried in turn
 * (the last one that answered first), a new attempt every 400 ms while the
 * earlier ones may still answer, and SERVFAIL goes out when none answered
 * within 1.5 s. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns-answer.h"
#include "dns-cache.h"
#include "dns-duration.h"
#include "macro.h"

#define DNS_FORWARD_UPSTREAMS_MAX 16

typedef struct DnsForwarder DnsForwarder;
typedef struct DnsReplyQueue DnsReplyQueue;

typedef struct DnsForwardOptions {
        bool enabled;        /* false: every handed-off question gets REFUSED */
        char **upstreams;    /* "ADDR", "IPv4:PORT", "[IPv6]:PORT" (port 53 by default); none: SERVFAIL */
        char **allow;        /* "ADDR" or "ADDR/PREFIXLEN"; NULL: loopback and the subnets of the
                                 * host's interfaces (looked up again when an unknown client comes) */
        uint32_t cache_size; /* entries; 0: no cache. Bytes are bounded at 1 KiB per entry, 1 MiB at least */
        uint32_t max_ttl;    /* seconds; every cached TTL is capped at this */
} DnsForwardOptions;

/* Starts the forwarder thread. The options are copied. */
int dns_forwarder_new(DnsForwarder **ret, const DnsForwardOptions *opts);
/* Stops the thread (questions in flight get no answer) and frees. */
DnsForwarder *dns_forwarder_free(DnsForwarder *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsForwarder *, dns_forwarder_free);

/* Applies new options (a reload), from the thread that made the forwarder.
 * Questions in flight finish with the upstreams they started with; the
 * cache is flushed when the upstreams or its size change. */
int dns_forwarder_reconfigure(DnsForwarder *f, const DnsForwardOptions *opts);

/* Where a handed-off question came from, and how its reply goes back. */
typedef struct DnsForwardClient {
        DnsTransport transport;
        const struct sockaddr *peer; /* the client */
        socklen_t peer_len;
        /* UDP: the socket to reply on, and the control message that makes
         * the reply leave from the address the query went to (or none). */
        int udp_fd;
        const void *control;
        size_t control_len;
        /* TCP: the queue of the thread that owns the connection, and the
         * connection's id there. */
        DnsReplyQueue *replies;
        uint64_t conn_id;
        /* When the query arrived (dns_duration_now_nsec()'s clock), for the
         * request-duration histogram; 0: unknown, not timed. */
        uint64_t received_nsec;
} DnsForwardClient;

/* From any thread; never blocks. Copies the query and what the client needs.
 * Returns 0 when the forwarder took it (it will reply), -ENOBUFS when too
 * many questions wait already (the caller drops it, as a full socket buffer
 * would), -EINVAL on bad arguments. */
int dns_forwarder_submit(DnsForwarder *f, const DnsForwardClient *c, const uint8_t *query, size_t len);

/* --- TCP replies back to their connection's thread ------------------------- */

typedef struct DnsForwardReply {
        struct DnsForwardReply *next;
        uint64_t conn_id;
        size_t len;
        uint8_t data[]; /* the DNS message, without the TCP length prefix */
} DnsForwardReply;

int dns_reply_queue_new(DnsReplyQueue **ret);
DnsReplyQueue *dns_reply_queue_ref(DnsReplyQueue *q);
DnsReplyQueue *dns_reply_queue_unref(DnsReplyQueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsReplyQueue *, dns_reply_queue_unref);
/* Readable (EPOLLIN) when replies wait; the owner watches it. */
int dns_reply_queue_get_fd(const DnsReplyQueue *q);
/* Every waiting reply, oldest first (clears the fd's readiness). Free each
 * with free(). */
DnsForwardReply *dns_reply_queue_take(DnsReplyQueue *q);

/* --- status ---------------------------------------------------------------- */

typedef struct DnsForwardUpstreamStatus {
        char address[64];      /* "192.0.2.1:53", "[2001:db8::1]:53" */
        uint64_t queries;      /* attempts sent, UDP and TCP */
        uint64_t answers;      /* replies that matched */
        uint64_t failures;     /* attempts that timed out or failed */
        uint64_t rtt_usec_sum; /* over the answers */
        uint64_t last_rtt_usec;
        bool failing; /* its last attempt failed */
} DnsForwardUpstreamStatus;

typedef struct DnsForwardCounters {
        uint64_t queries; /* questions handed off */
        uint64_t refused; /* from clients outside ForwardAllow (or forwarding disabled) */
        uint64_t cache_hits;
        uint64_t cache_misses;
        uint64_t coalesced;         /* joined the same question in flight */
        uint64_t upstream_queries;  /* attempts sent */
        uint64_t upstream_tcp;      /* of which over TCP */
        uint64_t upstream_failures; /* attempts that timed out or failed */
        uint64_t servfail;          /* SERVFAIL sent: no upstream answered in time */
        uint64_t mismatched;        /* replies dropped: wrong ID, question or source */
        uint64_t dropped;           /* questions dropped: queue or in-flight table full */
        uint64_t by_rcode[24];      /* replies sent to clients, by rcode */
        uint64_t latency_usec_sum;  /* from hand-off to the upstream's answer */
        uint64_t latency_count;
        uint64_t cache_entries;
        uint64_t cache_bytes;
        /* By DnsTransport: from the arrival of a forwarded query to its
         * reply leaving (UDP) or being handed to the connection's thread (TCP). */
        DnsDurationHistogram duration[2];
} DnsForwardCounters;

typedef struct DnsForwardStatus {
        bool enabled;
        DnsForwardCounters counters;
        DnsForwardUpstreamStatus *upstreams;
        size_t n_upstreams;
        char **allow;       /* the prefixes in use, "127.0.0.0/8", ... */
        bool allow_default; /* derived from the host's interfaces */
        uint32_t cache_size, max_ttl;
} DnsForwardStatus;

/* A snapshot, from any thread. Free with dns_forward_status_done(). */
int dns_forwarder_get_status(DnsForwarder *f, DnsForwardStatus *ret);
void dns_forward_status_done(DnsForwardStatus *s);

/* --- pure helpers (unit-tested) --------------------------------------------- */

/* "ADDR", "IPv4:PORT", "[IPv6]:PORT", with "%ifname" scope allowed on IPv6
 * addresses; default_port when none is given. -EINVAL otherwise. */
int dns_forward_parse_address(const char *s, uint16_t default_port, struct sockaddr_storage *ret, socklen_t *ret_len);
/* "192.0.2.1:53", "[::1]:5353". */
void dns_forward_format_address(const struct sockaddr *sa, char *buf, size_t size);
/* A client's address alone, as the query log's JOYRIDE_CLIENT field names it:
 * "192.0.2.1", "2001:db8::1"; an IPv4 client of a dual-stack socket
 * (::ffff:192.0.2.1) as IPv4. Empty for other families. */
void dns_format_client_address(const struct sockaddr *sa, char *buf, size_t size);

typedef struct DnsAllowPrefix {
        int family;
        uint8_t addr[16];
        uint8_t bits;
} DnsAllowPrefix;

/* "ADDR" or "ADDR/LEN" (host bits beyond LEN are cleared). -EINVAL otherwise. */
int dns_allow_parse(const char *s, DnsAllowPrefix *ret);
void dns_allow_format(const DnsAllowPrefix *p, char *buf, size_t size);
/* Whether sa is in one of the prefixes; IPv4-mapped IPv6 addresses count
 * as IPv4. */
bool dns_allow_match(const DnsAllowPrefix *list, size_t n, const struct sockaddr *sa);
/* Loopback and the subnet of every address of the host's interfaces. */
int dns_allow_default(DnsAllowPrefix **ret, size_t *ret_n);

/* What the forwarder needs from a client's query. */
typedef struct DnsForwardQuery {
        uint16_t id;
        uint16_t flags;
        size_t question_len; /* the question section, at offset 12 */
        DnsCacheKey key;     /* the name lowercased, type, class, DO/CD */
        bool edns;
        uint16_t payload; /* the client's UDP payload size, 512 without EDNS */
} DnsForwardQuery;

/* -EBADMSG when the query is not one question of opcode QUERY. */
int dns_forward_parse_query(const uint8_t *q, size_t len, DnsForwardQuery *ret);

/* Builds the query sent upstream for key with the given ID. Returns its
 * length, or 0 when out is too small. */
size_t dns_forward_build_query(const DnsCacheKey *key, uint16_t id, uint8_t *out, size_t out_size);

/* Whether reply is the answer to the query sent (id, key) to expected, as
 * received from from: 0 when it is, -ESRCH from another address or port,
 * -ENOMSG a well-formed reply to something else (ID, name, type, class),
 * -EBADMSG not a DNS reply. */
int dns_forward_check_reply(const DnsCacheKey *key, uint16_t id, const struct sockaddr *expected,
                            const struct sockaddr *from, const uint8_t *reply, size_t len);

/* The nameserver addresses of a resolv.conf text, in order, as strings
 * ("192.0.2.1", "fe80::1%eth0"). Returns 0 and a NULL-terminated list (NULL
 * when there are none; free with g_strfreev). */
int dns_forward_parse_resolv_conf(const char *text, char ***ret);
