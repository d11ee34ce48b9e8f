/* SPDX-License-Identifier: MIT */
/* fake-resolved: a stand-in for systemd-resolved's link API, for tests that
 * cannot run the real one (it needs systemd as PID 1).
 *
 *   fake-resolved
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
 * Exits 0 on SIGTERM or SIGINT, and when the bus goes away. */

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

static int method_set_link_dns_ex(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t ifindex;
        int r;

        r = sd_bus_message_read(m, "i", &ifindex);
        if (r < 0)
                return r;
        printf("SetLinkDNSEx %i", ifindex);
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
                if (size == (family == AF_INET ? 4u : 16u))
                        (void) inet_ntop(family, address, text, sizeof text);
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
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable resolve1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("SetLinkDNSEx", "ia(iayqs)", "", method_set_link_dns_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetLinkDomains", "ia(sb)", "", method_set_link_domains, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetLinkDefaultRoute", "ib", "", method_set_link_default_route, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RevertLink", "i", "", method_revert_link, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int main(void) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sigset_t mask;
        int r;

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
