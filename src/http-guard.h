/* SPDX-License-Identifier: MIT */
/* What keeps the HTTP server from being held or driven from outside:
 *
 * - A connection cap and a request timeout. A connection waiting for a
 *   request (a new one, or a kept-alive one between requests) must bring its
 *   headers and body within the timeout, or it is closed; and when the cap is
 *   reached, the connection that has waited longest for its request makes
 *   room for the new one (or the new one is closed when none is waiting). So
 *   2,000 half-open connections cost at most the cap in file descriptors, and
 *   only for the timeout, and never take the ones DNS needs.
 * - The names a request may use: its Host must be one of this server's names
 *   or addresses, so that a web page cannot reach the API through DNS
 *   rebinding; a change (POST) that carries an Origin must come from this
 *   server's own pages.
 *
 * The name checks are pure functions (tests/test-http-records.c). */
#pragma once

#include <libsoup/soup.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct HttpGuard HttpGuard;

typedef struct HttpGuardCounters {
        unsigned open; /* connections now */
        uint64_t accepted;
        uint64_t timed_out; /* closed: no complete request within the timeout */
        uint64_t evicted;   /* closed for a newer connection at the cap */
        uint64_t refused;   /* closed at once: at the cap, nothing to evict */
} HttpGuardCounters;

HttpGuard *http_guard_new(SoupServer *server, unsigned max_connections, uint32_t request_timeout_msec);
HttpGuard *http_guard_free(HttpGuard *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpGuard *, http_guard_free);
const HttpGuardCounters *http_guard_get_counters(const HttpGuard *g);

/* Splits a Host header value ("name", "name:port", "1.2.3.4:80",
 * "[2001:db8::1]:8080") into its host, lowercased, without brackets or a
 * trailing dot, and its port (0 if none). Returns -EINVAL for what is no
 * host[:port]. */
int http_split_host(const char *value, char **ret_host, uint16_t *ret_port);

/* Whether host (as http_split_host gives it) is one of names: equal names
 * (any case), equal addresses in any spelling, or "*" in names. Loopback
 * addresses and "localhost" (and names under it) always are. */
bool http_host_allowed(const char *host, char *const *names);

/* Whether an Origin header value names this server: "http://HOST[:PORT]" or
 * "https://..." with an allowed HOST and PORT equal to port (80 or 443 when
 * left out). "null" and anything else are not. */
bool http_origin_allowed(const char *origin, char *const *names, uint16_t port);

/* The names a request may use for this server besides loopback and
 * localhost: extra (AllowedHosts=), the address it listens on unless that is
 * a wildcard, the host name (and NAME.local), and every address of the
 * interfaces that are up. A new NULL-terminated list (g_strfreev). */
char **http_local_names(const char *bind_address, char *const *extra);
