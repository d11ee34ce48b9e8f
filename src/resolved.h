/* SPDX-License-Identifier: MIT */
/* Optional registration with systemd-resolved: joyrided tells resolved, over
 * D-Bus (org.freedesktop.resolve1), to send the names under its domains to
 * joyrided, as the DNS server and routing domains of one network link
 * ([Resolved] Link=). Everything is asynchronous and nothing here is fatal:
 * when resolved is not running, refuses, or the link does not exist, a
 * warning says so and joyrided serves DNS as before. When resolved (re)starts
 * the settings are sent again; on exit they are reverted (RevertLink).
 *
 * resolved lets root change a link's DNS settings, and anyone else only when
 * polkit allows it (org.freedesktop.resolve1.set-dns-servers, set-domains,
 * set-default-route, revert): on a dbus-daemon bus the caller's
 * capabilities come from /proc and sd-bus does not trust them, so
 * CAP_NET_ADMIN does not help. See data/systemd/joyride-resolved.rules. */
#pragma once

#include <netinet/in.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"

typedef struct Resolved Resolved;

/* Prepares registering c->resolved_link (which must be set); copies what it
 * needs from c. Nothing is sent until a bus connection is handed over.
 * Fails only on allocation. */
int resolved_new(Resolved **ret, sd_event *event, const Config *c);
/* The system bus connection to reach resolved on, attached to the event
 * loop, or NULL when it was lost. Each new connection registers the link
 * again. The caller owns the connection; Resolved keeps a reference until
 * the next call or resolved_free(). */
void resolved_set_bus(Resolved *r, sd_bus *bus);
/* Reverts the link's settings (when they were sent) and frees. */
Resolved *resolved_free(Resolved *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Resolved *, resolved_free);

/* True once resolved accepted every setting (for status and tests). */
bool resolved_is_registered(const Resolved *r);

/* "ADDR", "IPv4:PORT" or "[IPv6]:PORT" into family, address and port (53
 * when none is given). -EINVAL when s is none of those. */
typedef union ResolvedAddress {
        struct in_addr in;
        struct in6_addr in6;
} ResolvedAddress;
int resolved_parse_server(const char *s, int *ret_family, ResolvedAddress *ret_address, uint16_t *ret_port);
