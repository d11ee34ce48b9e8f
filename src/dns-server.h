/* SPDX-License-Identifier: MIT */
/* DNS transports: answering threads, each serving UDP (batched with
 * recvmmsg/sendmmsg) and TCP (several queries per connection, idle timeout,
 * a connection cap counted across threads) on its own sd-event loop. They
 * only move bytes; dns_answer() makes the replies, reading the store under
 * RCU. The control loop starts and stops them, publishes the answer
 * configuration to them, reads their counters and checks that each is alive. */
#pragma once

#include <stdint.h>

#include "dns-answer.h"
#include "dns-duration.h"
#include "dns-forward.h"
#include "store.h"

#define DNS_THREADS_MAX 64
#define DNS_THREADS_DEFAULT_MAX 16 /* the default: online CPUs, at most this */

typedef struct DnsServer DnsServer;

#define DNS_SERVER_N_TYPES 7 /* the by_type counters: see dns_server_type_index() */

typedef struct DnsServerCounters {
        uint64_t queries_udp;
        uint64_t queries_tcp;
        uint64_t by_rcode[24];                /* index: rcode (0..23) */
        uint64_t by_type[DNS_SERVER_N_TYPES]; /* A, AAAA, CNAME, TXT, PTR, SOA, other: see dns_server_type_index() */
        uint64_t truncated;
        uint64_t tcp_connections; /* accepted in total */
        uint64_t tcp_rejected;    /* refused because of the cap */
        uint64_t tcp_timeouts;
        uint64_t forwarded; /* handed off to the forwarder (it counts their rcodes) */
        /* By DnsTransport: the queries answered here, from the arrival of the
         * query to the reply leaving (the forwarder times the forwarded ones). */
        DnsDurationHistogram duration[2];
} DnsServerCounters;

typedef struct DnsServerOptions {
        const char *bind_address; /* NULL: all addresses (IPv6 socket with v4-mapped, plus IPv4 if needed) */
        uint16_t port;
        uint32_t tcp_idle_timeout_msec;
        uint32_t tcp_max_connections; /* across all threads */
        unsigned threads;             /* answering threads; 0: dns_server_default_threads() */
        int udp_fd;                   /* socket-activated fds, shared by the threads, or -EBADF to */
        int tcp_fd;                   /* bind ourselves (one SO_REUSEPORT pair per thread) */
} DnsServerOptions;

/* The default number of answering threads: the online CPUs, at most
 * DNS_THREADS_DEFAULT_MAX. */
unsigned dns_server_default_threads(void);

/* Binds (or takes) the sockets and sets the threads up; queries wait in the
 * sockets until dns_server_start() starts the threads. The store must
 * outlive the server; cfg is copied (see dns_server_set_config()). */
int dns_server_new(DnsServer **ret, const Store *store, const DnsAnswerConfig *cfg, const DnsServerOptions *opts);
int dns_server_start(DnsServer *s);
/* Stops the threads: each stops taking queries, sends the answers it owes
 * (TCP output still pending gets a short grace period) and exits. */
DnsServer *dns_server_free(DnsServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsServer *, dns_server_free);

/* Publishes a new answer configuration (a deep copy) to the threads; the
 * old one is freed after a grace period. */
int dns_server_set_config(DnsServer *s, const DnsAnswerConfig *cfg);

/* The counters of all threads, summed. */
void dns_server_get_counters(const DnsServer *s, DnsServerCounters *ret);
/* Questions that are not ours go to f from now on (NULL: they get the
 * answer path's REFUSED). f must outlive the server, or be unset first. */
int dns_server_set_forwarder(DnsServer *s, DnsForwarder *f);
int dns_server_type_index(uint16_t qtype);
/* The label of a by_type index: "A", "AAAA", "CNAME", "TXT", "PTR", "SOA", "other". */
const char *dns_server_type_label(int index);

unsigned dns_server_threads(const DnsServer *s);
/* Like "udp 127.0.0.1:5353, tcp 127.0.0.1:5353", for status lines. */
const char *dns_server_describe(const DnsServer *s);

/* For the watchdog, called periodically from the control loop: returns the
 * index of a thread that has not answered the previous call's ping (it is
 * wedged, or was too busy for a whole period), or -1 when all did; then pings
 * every thread again. */
int dns_server_check_threads(DnsServer *s);
