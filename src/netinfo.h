/* SPDX-License-Identifier: MIT */
/* Which address does this host answer on? Finds the interface that holds
 * the IPv4 default route (/proc/net/route) and its addresses (getifaddrs),
 * for Docker records when HOSTIP is not configured. */
#pragma once

#include <stddef.h>

typedef struct NetInfo {
        char *ifname; /* interface of the default route, NULL if none */
        char *ipv4;   /* its first IPv4 address, NULL if none */
        char *ipv6;   /* its first global IPv6 address (not link-local, loopback or multicast), NULL if none */
} NetInfo;

/* route_path is normally NULL (/proc/net/route); tests may point it elsewhere.
 * Returns 0 (fields may be NULL: no default route is not an error), or a
 * negative errno when the route table or interface list cannot be read. */
int netinfo_default_route(const char *route_path, NetInfo *ret);
void netinfo_done(NetInfo *n);

/* Parses a /proc/net/route text: the interface of the default route with the
 * lowest metric, or NULL. The result is a new string. */
char *netinfo_parse_route_table(const char *text);
