/* SPDX-License-Identifier: MIT */
/* fake-resolved: a stand-in for systemd-resolved's link API, for tests that
 * cannot run the real one (it needs systemd as PID 1).
 *
 *   fake-resolved [--dns=SERVER,...]
 *
 * Takes org.freedesktop.resolve1 on the system bus (DBUS_SYSTEM_BUS_ADDRESS)
 * and answers SetLinkDNSEx, SetLinkDomains, SetLinkDefaultRoute and
 * RevertLink on /org/freedesktop/resolve1 (org.freedesktop.resolve1.Manager)
 * by accepting them and printing one line per call on stdout:
 *
 *   SetLinkDNSEx 1 127.0.0.1:5353 [::1]:53
 *   SetLinkDomains 1 ~example.internal search.example
 *   SetLinkDefaultRoute 1 no
 *   RevertLink 1
 *
 * Like resolved, it reports its DNS servers in the DNSEx property
 * (a(iiayqs): ifindex, family, address, port, name): the global ones given
 * with --dns (ADDR, IPv4:PORT or [IPv6]:PORT), then those of the links set
 * with SetLinkDNSEx (until RevertLink).
 *
 * Exits 0 on SIGTERM or SIGINT, and when the bus goes away. */

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define SERVERS_MAX 32

typedef struct Server {
        int32_t ifindex; /* 0: global */
        int32_t family;
        uint8_t address[16];
        uint16_t port;
} Server;

static Server servers[SERVERS_MAX];
static size_t n_servers;

static void add_server(int32_t ifindex, int32_t family, const void *address, uint16_t port) {
        if (n_servers == SERVERS_MAX)
                return;
        servers[n_servers] = (Server) { .ifindex = ifindex, .family = family, .port = port };
        memcpy(servers[n_servers].address, address, family == AF_INET ? 4 : 16);
        n_servers++;
}

static void drop_link(int32_t ifindex) {
        size_t k = 0;

        for (size_t i = 0; i < n_servers; i++)
                if (servers[i].ifindex != ifindex)
                        servers[k++] = servers[i];
        n_servers = k;
}

/* "ADDR", "IPv4:PORT" or "[IPv6]:PORT" as a global server. */
static int parse_global(const char *s) {
        char host[INET6_ADDRSTRLEN + 1];
        const char *port = NULL, *end;
        uint8_t a[16];
        size_t n;

        if (s[0] == '[' && (end = strchr(s, ']'))) {
                n = (size_t) (end - s - 1);
                port = end[1] == ':' ? end + 2 : NULL;
                s++;
        } else if ((end = strchr(s, ':')) && !strchr(end + 1, ':')) {
                n = (size_t) (end - s);
                port = end + 1;
        } else
                n = strlen(s);
        if (n >= sizeof host)
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = 0;
        if (inet_pton(AF_INET, host, a) == 1)
                add_server(0, AF_INET, a, port ? (uint16_t) strtoul(port, NULL, 10) : 0);
        else if (inet_pton(AF_INET6, host, a) == 1)
                add_server(0, AF_INET6, a, port ? (uint16_t) strtoul(port, NULL, 10) : 0);
        else
                return -EINVAL;
        return 0;
}

static int property_get_dns_ex(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        int r = sd_bus_message_open_container(reply, 'a', "(iiayqs)");

        for (size_t i = 0; r >= 0 && i < n_servers; i++) {
                r = sd_bus_message_open_container(reply, 'r', "iiayqs");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "ii", servers[i].ifindex, servers[i].family);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', servers[i].address,
                                                        servers[i].family == AF_INET ? 4 : 16);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "qs", servers[i].port, "");
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int method_set_link_dns_ex(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t ifindex;
        int r;

        r = sd_bus_message_read(m, "i", &ifindex);
        if (r < 0)
                return r;
        printf("SetLinkDNSEx %i", ifindex);
        drop_link(ifindex);
        r = sd_bus_message_enter_container(m, 'a', "(iayqs)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'r', "iayqs")) > 0) {
                char text[INET6_ADDRSTRLEN] = "?";
                const void *address;
                const char *name;
                int32_t family;
                uint16_t port;
                size_t size;

                r = sd_bus_message_read(m, "i", &family);
                if (r >= 0)
                        r = sd_bus_message_read_array(m, 'y', &address, &size);
                if (r >= 0)
                        r = sd_bus_message_read(m, "qs", &port, &name);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                if (size == (family == AF_INET ? 4u : 16u)) {
                        (void) inet_ntop(family, address, text, sizeof text);
                        add_server(ifindex, family, address, port);
                }
                printf(family == AF_INET6 ? " [%s]:%u" : " %s:%u", text, port);
        }
        if (r < 0)
                return r;
        printf("\n");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_link_domains(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *domain;
        int32_t ifindex;
        int routing, r;

        r = sd_bus_message_read(m, "i", &ifindex);
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "(sb)");
        if (r < 0)
                return r;
        printf("SetLinkDomains %i", ifindex);
        while ((r = sd_bus_message_read(m, "(sb)", &domain, &routing)) > 0)
                printf(" %s%s", routing ? "~" : "", domain);
        if (r < 0)
                return r;
        printf("\n");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_link_default_route(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t ifindex;
        int yes, r;

        r = sd_bus_message_read(m, "ib", &ifindex, &yes);
        if (r < 0)
                return r;
        printf("SetLinkDefaultRoute %i %s\n", ifindex, yes ? "yes" : "no");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_revert_link(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t ifindex;
        int r;

        r = sd_bus_message_read(m, "i", &ifindex);
        if (r < 0)
                return r;
        printf("RevertLink %i\n", ifindex);
        drop_link(ifindex);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable resolve1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("SetLinkDNSEx", "ia(iayqs)", "", method_set_link_dns_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetLinkDomains", "ia(sb)", "", method_set_link_domains, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetLinkDefaultRoute", "ib", "", method_set_link_default_route, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RevertLink", "i", "", method_revert_link, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("DNSEx", "a(iiayqs)", property_get_dns_ex, 0, 0),
        SD_BUS_VTABLE_END
};

int main(int argc, char *argv[]) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sigset_t mask;
        int r;

        for (int i = 1; i < argc; i++) {
                char *list, *save = NULL;

                if (strncmp(argv[i], "--dns=", 6) != 0) {
                        fprintf(stderr, "usage: fake-resolved [--dns=SERVER,...]\n");
                        return 2;
                }
                list = strdup(argv[i] + 6);
                for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
                        if (parse_global(s) < 0) {
                                fprintf(stderr, "fake-resolved: '%s' is not ADDR, IPv4:PORT or [IPv6]:PORT\n", s);
                                free(list);
                                return 2;
                        }
                free(list);
        }

        setvbuf(stdout, NULL, _IOLBF, 0);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/resolve1", "org.freedesktop.resolve1.Manager",
                                             resolve1_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, "org.freedesktop.resolve1", 0);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                fprintf(stderr, "fake-resolved: %s\n", strerror(-r));
                return 1;
        }
        fprintf(stderr, "fake-resolved: owning org.freedesktop.resolve1\n");
        r = sd_event_loop(event);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
