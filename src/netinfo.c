/* SPDX-License-Identifier: MIT */
/* Default-route interface and its addresses; see netinfo.h. */

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "netinfo.h"

#define RTF_UP_FLAG 0x0001

char *netinfo_parse_route_table(const char *text) {
        char best[IF_NAMESIZE + 1] = "";
        unsigned long best_metric = 0;
        const char *line = text;

        /* Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
         * with hexadecimal addresses. The first line is a header. */
        while (line && *line) {
                const char *nl = strchr(line, '\n');
                char ifname[64];
                unsigned long dest, gw, flags, refcnt, use, metric, mask;

                /* NOLINTNEXTLINE(cert-err34-c): the kernel writes this table */
                if (sscanf(line, "%63s %lx %lx %lx %lu %lu %lu %lx", ifname, &dest, &gw, &flags, &refcnt, &use, &metric,
                           &mask) == 8 &&
                    dest == 0 && mask == 0 && (flags & RTF_UP_FLAG) && strlen(ifname) <= IF_NAMESIZE &&
                    (!best[0] || metric < best_metric)) {
                        snprintf(best, sizeof best, "%s", ifname);
                        best_metric = metric;
                }
                line = nl ? nl + 1 : NULL;
        }
        return best[0] ? strdup(best) : NULL;
}

static bool ipv6_is_global(const struct in6_addr *a) {
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
            IN6_IS_ADDR_MULTICAST(a) || IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_SITELOCAL(a))
                return false;
        return true;
}

int netinfo_default_route(const char *route_path, NetInfo *ret) {
        _cleanup_(netinfo_done) NetInfo n = {};
        char text[16384];
        size_t len;
        FILE *f;
        struct ifaddrs *ifa_list = NULL;

        f = fopen(route_path ?: "/proc/net/route", "re");
        if (!f)
                return negative_errno();
        len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';

        n.ifname = netinfo_parse_route_table(text);
        if (!n.ifname) {
                *ret = (NetInfo) {};
                return 0;
        }

        if (getifaddrs(&ifa_list) < 0)
                return negative_errno();
        for (struct ifaddrs *ifa = ifa_list; ifa; ifa = ifa->ifa_next) {
                char buf[INET6_ADDRSTRLEN];

                if (!ifa->ifa_addr || !ifa->ifa_name || !streq(ifa->ifa_name, n.ifname))
                        continue;
                if (ifa->ifa_addr->sa_family == AF_INET && !n.ipv4) {
                        const struct sockaddr_in *sin = (const struct sockaddr_in *) ifa->ifa_addr;
                        if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf))
                                n.ipv4 = strdup(buf);
                } else if (ifa->ifa_addr->sa_family == AF_INET6 && !n.ipv6) {
                        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ifa->ifa_addr;
                        if (ipv6_is_global(&sin6->sin6_addr) && inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf))
                                n.ipv6 = strdup(buf);
                }
        }
        freeifaddrs(ifa_list);

        *ret = n;
        n = (NetInfo) {};
        return 0;
}

void netinfo_done(NetInfo *n) {
        if (!n)
                return;
        free(n->ifname);
        free(n->ipv4);
        free(n->ipv6);
        *n = (NetInfo) {};
}
