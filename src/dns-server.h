/* SPDX-License-Identifier: MIT */
/* DNS transports: UDP (batched with recvmmsg/sendmmsg) and TCP (several
 * queries per connection, idle timeout, connection cap) on sd-event. They only
 * move bytes; dns_answer() makes the replies. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "dns-answer.h"
#include "dns-forward.h"
#include "store.h"

typedef struct DnsServer DnsServer;

#define DNS_SERVER_N_TYPES 7      /* the by_type counters: see dns_server_type_index() */

typedef struct DnsServerCounters {
        uint64_t queries_udp;
        uint64_t queries_tcp;
        uint64_t by_rcode[24];            /* index: rcode (0..23) */
        uint64_t by_type[DNS_SERVER_N_TYPES];              /* A, AAAA, CNAME, TXT, PTR, SOA, other: see dns_server_type_index() */
        uint64_t truncated;
        uint64_t tcp_connections;         /* accepted in total */
        uint64_t tcp_rejected;            /* refused because of the cap */
        uint64_t tcp_timeouts;
        uint64_t forwarded;               /* handed off to the forwarder (it counts their rcodes) */
} DnsServerCounters;

typedef struct DnsServerOptions {
        const char *bind_address;         /* NULL: all addresses (IPv6 socket with v4-mapped, plus IPv4 if needed) */
        uint16_t port;
        uint32_t tcp_idle_timeout_msec;
        uint32_t tcp_max_connections;
        int udp_fd;                       /* socket-activated fds, or -EBADF to bind ourselves */
        int tcp_fd;
} DnsServerOptions;

/* The server reads cfg and store for each query; both must outlive it. */
int dns_server_new(DnsServer **ret, sd_event *e, const Store *store, const DnsAnswerConfig *cfg,
                   const DnsServerOptions *opts);
DnsServer *dns_server_free(DnsServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(DnsServer *, dns_server_free);

const DnsServerCounters *dns_server_get_counters(const DnsServer *s);
/* Questions that are not ours go to f from now on (NULL: they get the
 * answer path's REFUSED). f must outlive the server, or be unset first. */
int dns_server_set_forwarder(DnsServer *s, DnsForwarder *f);
int dns_server_type_index(uint16_t qtype);
/* The label of a by_type index: "A", "AAAA", "CNAME", "TXT", "PTR", "SOA", "other". */
const char *dns_server_type_label(int index);

/* Like "udp 127.0.0.1:5353, tcp 127.0.0.1:5353", for status lines. */
const char *dns_server_describe(const DnsServer *s);
