/* SPDX-License-Identifier: MIT */
/* The upstreams of [DNS] Forward=resolv.conf: the nameservers of resolv.conf
 * ([DNS] ResolvConf=, /etc/resolv.conf by default), leaving out joyrided's
 * own addresses; and when resolv.conf points at systemd-resolved's stub
 * (127.0.0.53, 127.0.0.54), the servers resolved itself uses, read from its
 * D-Bus API (the DNSEx property, else FallbackDNSEx; DNS/FallbackDNS on old
 * versions), again without ours: forwarding to the stub would loop back to
 * us whenever resolved routes a name to joyrided ([Resolved] Link=).
 *
 * The file is read at once; resolved answers asynchronously. Both are looked
 * at again every few seconds, and the callback runs whenever the list
 * changes. Nothing here is fatal: with no usable server the list is empty
 * (the forwarder answers SERVFAIL) and a warning says why. */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"

typedef struct ForwardUpstreams ForwardUpstreams;

/* servers: the new list ("ADDR:PORT", "[ADDR6]:PORT"), NULL when empty;
 * valid during the call. origin: "resolv.conf" or "systemd-resolved". */
typedef void (*ForwardUpstreamsCallback)(ForwardUpstreams *u, char **servers, const char *origin, void *userdata);

/* Copies what it needs from c. The first list (from the file alone) is
 * available at once from forward_upstreams_get(); the callback reports later
 * changes. resolved is asked once a bus connection is handed over. */
int forward_upstreams_new(ForwardUpstreams **ret, sd_event *event, const Config *c, ForwardUpstreamsCallback callback,
                          void *userdata);
/* The system bus connection to reach resolved on, attached to the event
 * loop, or NULL when it was lost (manager-bus.c owns it; we keep a
 * reference until the next call or forward_upstreams_free()). */
void forward_upstreams_set_bus(ForwardUpstreams *u, sd_bus *bus);
ForwardUpstreams *forward_upstreams_free(ForwardUpstreams *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(ForwardUpstreams *, forward_upstreams_free);

char **forward_upstreams_get(const ForwardUpstreams *u);
const char *forward_upstreams_origin(const ForwardUpstreams *u);

/* Whether a server address (with its port) is one joyrided answers on: the
 * port is ours and the address is the bind address, or any address of the
 * host when bound to all; or it is one of the addresses given to resolved.
 * Exposed for the unit tests. */
bool forward_upstreams_is_own(const char *server, uint16_t default_port, const char *bind_address, uint16_t dns_port,
                              char **resolved_dns);
