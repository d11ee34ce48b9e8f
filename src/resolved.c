/* SPDX-License-Identifier: MIT */
/* Registration with systemd-resolved (see resolved.h): SetLinkDNSEx,
 * SetLinkDomains and SetLinkDefaultRoute(false) on the configured link, sent
 * as three pipelined asynchronous calls; NameOwnerChanged of
 * org.freedesktop.resolve1 sends them again whenever resolved starts; a link
 * that does not exist yet is retried on a timer with backoff; RevertLink on
 * exit. The calls do not auto-start resolved: if the admin stopped it, we do
 * not bring it back.
 *
 * The bus connection is not ours: the Manager's bus code owns it and hands
 * it over with resolved_set_bus() each time it is (re)connected, and takes
 * it back when it is lost, so nothing here outlives the connection it was
 * made on. */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <glib.h>

#include "log.h"
#include "macro.h"
#include "resolved.h"

#define RESOLVE1_NAME "org.freedesktop.resolve1"
#define RESOLVE1_PATH "/org/freedesktop/resolve1"
#define RESOLVE1_MANAGER "org.freedesktop.resolve1.Manager"

#define RETRY_MIN_USEC (2 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)

enum {
        CALL_DNS,
        CALL_DOMAINS,
        CALL_DEFAULT_ROUTE,
        _CALL_MAX,
};

static const char *const call_method[_CALL_MAX] = {
        [CALL_DNS] = "SetLinkDNSEx",
        [CALL_DOMAINS] = "SetLinkDomains",
        [CALL_DEFAULT_ROUTE] = "SetLinkDefaultRoute",
};

struct Resolved {
        sd_event *event;
        sd_bus *bus; /* a reference to the current connection; NULL while there is none */
        char *link;
        char **domains;    /* "~name" routing only, "name" routing and search */
        char **servers;    /* as configured, for messages */
        char *description; /* "DNS 127.0.0.1:5353 for ~example.internal", for messages */

        sd_bus_slot *match_slot;
        sd_bus_slot *call_slots[_CALL_MAX];
        sd_event_source *retry_timer;
        sd_event_source *exit_source;
        uint64_t retry_usec;

        int ifindex; /* where the settings went; 0 = nowhere */
        unsigned pending, failed;
        bool sent; /* resolved may hold our settings: revert on exit */
        bool registered;
        bool warned_missing_link;
};

int resolved_parse_server(const char *s, int *ret_family, ResolvedAddress *ret_address, uint16_t *ret_port) {
        g_autofree char *host = NULL;
        ResolvedAddress a = {};
        const char *port_str = NULL;
        int family;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                host = g_strndup(s + 1, end - s - 1);
                port_str = end + 2;
                family = AF_INET6;
        } else if (inet_pton(AF_INET6, s, &a.in6) == 1) {
                /* A bare IPv6 address: its colons are not a port separator. */
                host = g_strdup(s);
                family = AF_INET6;
        } else {
                const char *colon = strrchr(s, ':');
                host = colon ? g_strndup(s, colon - s) : g_strdup(s);
                port_str = colon ? colon + 1 : NULL;
                family = AF_INET;
        }
        if (inet_pton(family, host, family == AF_INET ? (void *) &a.in : (void *) &a.in6) != 1)
                return -EINVAL;

        uint16_t port = 53;
        if (port_str) {
                char *end;
                unsigned long p;

                if (!g_ascii_isdigit(port_str[0]))
                        return -EINVAL;
                errno = 0;
                p = strtoul(port_str, &end, 10);
                if (errno != 0 || *end != 0 || p == 0 || p > 65535)
                        return -EINVAL;
                port = (uint16_t) p;
        }
        *ret_family = family;
        *ret_address = a;
        *ret_port = port;
        return 0;
}

bool resolved_is_registered(const Resolved *r) {
        return r && r->registered;
}

static void cancel_calls(Resolved *r) {
        for (size_t i = 0; i < _CALL_MAX; i++)
                r->call_slots[i] = sd_bus_slot_unref(r->call_slots[i]);
        r->pending = r->failed = 0;
}

static int on_call_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Resolved *r = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        sd_bus_slot *slot = sd_bus_get_current_slot(sd_bus_message_get_bus(reply));
        const char *method = "call";
        size_t which = _CALL_MAX;

        /* A reply does not name its method call: our slot does. */
        for (size_t i = 0; i < _CALL_MAX; i++)
                if (r->call_slots[i] && r->call_slots[i] == slot)
                        which = i;
        if (which < _CALL_MAX) {
                method = call_method[which];
                r->call_slots[which] = sd_bus_slot_unref(r->call_slots[which]);
        }

        if (e) {
                r->failed++;
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER, SD_BUS_ERROR_SERVICE_UNKNOWN)) {
                        /* Not fatal and not surprising: we try again when it appears. */
                        if (which == CALL_DNS)
                                log_info("systemd-resolved is not running; registering link %s with it when it starts.",
                                         r->link);
                        r->sent = false;
                } else if (sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_METHOD))
                        log_warning(
                                "systemd-resolved does not know %s (it needs systemd 246 or newer); "
                                "link %s is not registered.",
                                method, r->link);
                else if (sd_bus_error_has_names(e, SD_BUS_ERROR_ACCESS_DENIED,
                                                SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                        log_warning(
                                "systemd-resolved refused %s on link %s (%s): it allows this to root, or "
                                "with a polkit rule; see joyrided(8).",
                                method, r->link, strna(e->message));
                else
                        log_warning("systemd-resolved refused %s on link %s: %s", method, r->link,
                                    strna(e->message ?: e->name));
        }

        if (r->pending > 0 && --r->pending == 0 && r->failed == _CALL_MAX)
                r->sent = false; /* nothing was applied: nothing to revert */
        else if (r->pending == 0 && r->failed == 0) {
                r->registered = true;
                log_info("Registered with systemd-resolved on link %s (ifindex %i): %s.", r->link, r->ifindex,
                         r->description);
        }
        return 0;
}

static int append_dns(sd_bus_message *m, Resolved *r) {
        int k;

        k = sd_bus_message_append(m, "i", r->ifindex);
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(iayqs)");
        for (char **s = r->servers; k >= 0 && s && *s; s++) {
                ResolvedAddress a;
                uint16_t port;
                int family;

                if (resolved_parse_server(*s, &family, &a, &port) < 0)
                        continue; /* config.c validated them already */
                k = sd_bus_message_open_container(m, 'r', "iayqs");
                if (k >= 0)
                        k = sd_bus_message_append(m, "i", family);
                if (k >= 0)
                        k = sd_bus_message_append_array(m, 'y', &a, family == AF_INET ? sizeof a.in : sizeof a.in6);
                if (k >= 0)
                        k = sd_bus_message_append(m, "qs", port, "");
                if (k >= 0)
                        k = sd_bus_message_close_container(m);
        }
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        return k;
}

static int append_domains(sd_bus_message *m, Resolved *r) {
        int k;

        k = sd_bus_message_append(m, "i", r->ifindex);
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(sb)");
        for (char **d = r->domains; k >= 0 && d && *d; d++)
                k = sd_bus_message_append(m, "(sb)", *d + (**d == '~'), **d == '~');
        if (k >= 0)
                k = sd_bus_message_close_container(m);
        return k;
}

static int send_call(Resolved *r, size_t which) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int k;

        k = sd_bus_message_new_method_call(r->bus, &m, RESOLVE1_NAME, RESOLVE1_PATH, RESOLVE1_MANAGER,
                                           call_method[which]);
        if (k < 0)
                return k;
        /* If the admin stopped resolved, our settings must not start it again. */
        (void) sd_bus_message_set_auto_start(m, false);
        switch (which) {
        case CALL_DNS:
                k = append_dns(m, r);
                break;
        case CALL_DOMAINS:
                k = append_domains(m, r);
                break;
        case CALL_DEFAULT_ROUTE:
                /* Only our domains go to us, not every name nobody else claims. */
                k = sd_bus_message_append(m, "ib", r->ifindex, 0);
                break;
        }
        if (k < 0)
                return k;
        k = sd_bus_call_async(r->bus, &r->call_slots[which], m, on_call_reply, r, 0);
        if (k < 0)
                return k;
        r->pending++;
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void schedule_retry(Resolved *r) {
        int k;

        r->retry_usec = r->retry_usec == 0 ? RETRY_MIN_USEC : MIN(r->retry_usec * 2, RETRY_MAX_USEC);
        r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
        k = sd_event_add_time_relative(r->event, &r->retry_timer, CLOCK_MONOTONIC, r->retry_usec, USEC_PER_SEC / 10,
                                       on_retry, r);
        if (k < 0) {
                log_warning_errno(k, "Failed to schedule registering with systemd-resolved again: %m");
                return;
        }
        (void) sd_event_source_set_description(r->retry_timer, "resolved-retry");
}

static void do_register(Resolved *r) {
        int ifindex, k = 0;

        cancel_calls(r);
        r->registered = false;
        r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
        if (!r->bus)
                return; /* again when a connection is handed over */

        ifindex = (int) if_nametoindex(r->link);
        if (ifindex <= 0) {
                /* docker0 and friends appear later than we start. */
                if (!r->warned_missing_link)
                        log_warning("Link %s for systemd-resolved does not exist (yet); trying again.", r->link);
                r->warned_missing_link = true;
                schedule_retry(r);
                return;
        }
        r->warned_missing_link = false;
        r->retry_usec = 0;
        r->ifindex = ifindex;

        for (size_t i = 0; i < _CALL_MAX && k >= 0; i++)
                k = send_call(r, i);
        if (k < 0) {
                cancel_calls(r);
                log_warning_errno(k, "Failed to send settings of link %s to systemd-resolved: %m", r->link);
                return;
        }
        r->sent = true;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        do_register(userdata);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Resolved *r = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, RESOLVE1_NAME))
                return 0;
        if (isempty(new_owner)) {
                /* Gone; whatever it kept of our settings, we send them
                 * again when it is back. Nothing to revert meanwhile. */
                cancel_calls(r);
                r->sent = r->registered = false;
                log_info("systemd-resolved stopped; registering link %s again when it starts.", r->link);
                return 0;
        }
        log_debug("systemd-resolved appeared as %s.", new_owner);
        do_register(r);
        return 0;
}

static void revert(Resolved *r) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int k;

        if (!r->sent || r->ifindex <= 0 || !r->bus || sd_bus_is_open(r->bus) <= 0)
                return;
        r->sent = r->registered = false;

        k = sd_bus_message_new_method_call(r->bus, &m, RESOLVE1_NAME, RESOLVE1_PATH, RESOLVE1_MANAGER, "RevertLink");
        if (k >= 0)
                k = sd_bus_message_append(m, "i", r->ifindex);
        if (k >= 0)
                (void) sd_bus_message_set_auto_start(m, false);
        if (k < 0) {
                log_warning_errno(k, "Failed to revert link %s in systemd-resolved: %m", r->link);
                return;
        }
        /* Synchronous, on the way out only: resolved may ask polkit about us,
         * and polkit must still find us on the bus to say yes. */
        k = sd_bus_call(r->bus, m, 2 * USEC_PER_SEC, &error, NULL);
        if (k < 0)
                log_warning_errno(k, "Failed to revert link %s in systemd-resolved: %s", r->link,
                                  error.message ?: strerror(-k));
        else
                log_info("Reverted the systemd-resolved settings of link %s.", r->link);
}

/* sd-bus closes an attached connection from an exit source of its own when
 * the loop exits; this one runs first, while RevertLink can still go out. */
static int on_loop_exit(sd_event_source *s, void *userdata) {
        Resolved *r = userdata;

        cancel_calls(r);
        revert(r);
        return 0;
}

Resolved *resolved_free(Resolved *r) {
        if (!r)
                return NULL;
        cancel_calls(r);
        revert(r); /* no-op when on_loop_exit() did it */
        sd_bus_slot_unref(r->match_slot);
        sd_event_source_disable_unref(r->retry_timer);
        sd_event_source_disable_unref(r->exit_source);
        sd_bus_unref(r->bus);
        sd_event_unref(r->event);
        free(r->link);
        g_strfreev(r->domains);
        g_strfreev(r->servers);
        free(r->description);
        free(r);
        return NULL;
}

static char **default_domains(const Config *c) {
        GPtrArray *a = g_ptr_array_new();

        for (char **d = c->dns_domains; d && *d; d++)
                g_ptr_array_add(a, g_strconcat("~", *d, NULL));
        g_ptr_array_add(a, NULL);
        return (char **) g_ptr_array_free(a, FALSE);
}

/* Where resolved should send queries when [Resolved] DNS= is not set: the
 * DNS port on loopback, or on the bind address when it is a specific one. */
static char **default_servers(const Config *c) {
        const char *addr = c->dns_bind_address;
        char **l = g_new0(char *, 2);

        if (!addr || streq(addr, "0.0.0.0") || streq(addr, "::"))
                l[0] = g_strdup_printf("127.0.0.1:%u", c->dns_port);
        else if (strchr(addr, ':'))
                l[0] = g_strdup_printf("[%s]:%u", addr, c->dns_port);
        else
                l[0] = g_strdup_printf("%s:%u", addr, c->dns_port);
        return l;
}

int resolved_new(Resolved **ret, sd_event *event, const Config *c) {
        _cleanup_(resolved_freep) Resolved *r = NULL;
        g_autofree char *servers = NULL, *domains = NULL;
        int k;

        if (!c->resolved_link)
                return -EINVAL;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->link = strdup(c->resolved_link);
        r->domains = c->resolved_domains ? g_strdupv(c->resolved_domains) : default_domains(c);
        r->servers = c->resolved_dns ? g_strdupv(c->resolved_dns) : default_servers(c);
        if (!r->link)
                return -ENOMEM;

        servers = g_strjoinv(", ", r->servers);
        domains = g_strjoinv(", ", r->domains);
        r->description = g_strdup_printf("DNS %s for %s", servers, *domains ? domains : "no domains");
        if (!r->domains[0])
                log_warning(
                        "[Resolved] Link=%s is set, but there are no domains to route to joyrided: "
                        "set [Resolved] Domains= or [DNS] Domains=. Registering the DNS server only.",
                        r->link);

        k = sd_event_add_exit(event, &r->exit_source, on_loop_exit, r);
        if (k < 0)
                return log_warning_errno(k, "Failed to set up reverting systemd-resolved settings on exit: %m");
        (void) sd_event_source_set_priority(r->exit_source, SD_EVENT_PRIORITY_IMPORTANT - 10);
        (void) sd_event_source_set_description(r->exit_source, "resolved-revert");

        *ret = TAKE_PTR(r);
        return 0;
}

void resolved_set_bus(Resolved *r, sd_bus *bus) {
        int k;

        if (r->bus == bus)
                return;

        /* Whatever was under way went with the old connection. If resolved
         * kept our settings, it gets them again on the next one. */
        cancel_calls(r);
        r->match_slot = sd_bus_slot_unref(r->match_slot);
        r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
        r->bus = sd_bus_unref(r->bus);
        r->sent = r->registered = false;
        if (!bus)
                return;

        r->bus = sd_bus_ref(bus);
        /* The match goes out before the first call on the same connection, so
         * a resolved that starts in between is not missed. */
        k = sd_bus_add_match_async(r->bus, &r->match_slot,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='" RESOLVE1_NAME "'",
                                   on_name_owner_changed, NULL, r);
        if (k < 0)
                log_warning_errno(
                        k, "Failed to watch for systemd-resolved on the bus, a restart of it will go unnoticed: %m");
        do_register(r);
}
