/* SPDX-License-Identifier: MIT */
/* Forward=resolv.conf: the upstreams from resolv.conf, or from
 * systemd-resolved behind its stub; see forward-upstreams.h. */

#include <arpa/inet.h>
#include <glib.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>

#include "dns-forward.h"
#include "forward-upstreams.h"
#include "log.h"

#define RESOLVE1_NAME "org.freedesktop.resolve1"
#define RESOLVE1_PATH "/org/freedesktop/resolve1"
#define RESOLVE1_MANAGER "org.freedesktop.resolve1.Manager"
#define RECHECK_USEC (5 * USEC_PER_SEC)

struct ForwardUpstreams {
        sd_event *event;
        sd_bus *bus;
        char *path;
        char *bind_address;
        uint16_t dns_port;
        char **resolved_dns;

        ForwardUpstreamsCallback callback;
        void *userdata;

        sd_event_source *timer;
        sd_bus_slot *call;
        unsigned property; /* which one the call asks for, see properties[] */

        struct stat st; /* of the file last read */
        bool have_st;
        char **file_servers;     /* from the file, without the stub and our own */
        bool stub;               /* the file names resolved's stub */
        bool resolved_tried;     /* resolved answered (or failed to) at least once */
        char **resolved_servers; /* resolved's, without our own */
        char **servers;          /* what was last reported */
        const char *origin;
        bool warned;
};

/* Newest first: DNSEx has ports; DNS is what resolved had before v246. An
 * empty DNS list means resolved uses its fallback servers. */
static const char *const properties[] = { "DNSEx", "FallbackDNSEx", "DNS", "FallbackDNS" };

static bool is_stub(const char *a) {
        return streq(a, "127.0.0.53") || streq(a, "127.0.0.54");
}

static bool address_is_local(const struct sockaddr *sa) {
        struct ifaddrs *list = NULL;
        bool found = false;

        if (sa->sa_family == AF_INET && (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127)
                return true;
        if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) sa)->sin6_addr))
                return true;
        if (getifaddrs(&list) < 0)
                return false;
        for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != sa->sa_family)
                        continue;
                if (sa->sa_family == AF_INET)
                        found = ((struct sockaddr_in *) i->ifa_addr)->sin_addr.s_addr ==
                                ((const struct sockaddr_in *) sa)->sin_addr.s_addr;
                else
                        found = IN6_ARE_ADDR_EQUAL(&((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr,
                                                   &((const struct sockaddr_in6 *) sa)->sin6_addr);
        }
        freeifaddrs(list);
        return found;
}

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b, bool ports) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *x = (const void *) a, *y = (const void *) b;
                return x->sin_addr.s_addr == y->sin_addr.s_addr && (!ports || x->sin_port == y->sin_port);
        }
        const struct sockaddr_in6 *x = (const void *) a, *y = (const void *) b;
        return IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) && (!ports || x->sin6_port == y->sin6_port);
}

bool forward_upstreams_is_own(const char *server, uint16_t default_port, const char *bind_address, uint16_t dns_port,
                              char **resolved_dns) {
        struct sockaddr_storage sa, other;
        socklen_t l;

        if (dns_forward_parse_address(server, default_port, &sa, &l) < 0)
                return false;
        for (char **r = resolved_dns; r && *r; r++)
                if (dns_forward_parse_address(*r, 53, &other, &l) >= 0 && same_address(&sa, &other, true))
                        return true;
        if (ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *) &sa)->sin_port
                                          : ((struct sockaddr_in6 *) &sa)->sin6_port) != dns_port)
                return false;
        if (!bind_address || streq(bind_address, "0.0.0.0") || streq(bind_address, "::"))
                return address_is_local((struct sockaddr *) &sa);
        if (dns_forward_parse_address(bind_address, dns_port, &other, &l) < 0)
                return false;
        return same_address(&sa, &other, false);
}

static bool strv_same(char **a, char **b) {
        size_t n = a ? g_strv_length(a) : 0, m = b ? g_strv_length(b) : 0;

        if (n != m)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

static void publish(ForwardUpstreams *u) {
        GPtrArray *a = g_ptr_array_new();
        const char *origin = u->stub && u->resolved_servers ? "systemd-resolved" : "resolv.conf";
        char **l;

        if (u->stub)
                for (char **s = u->resolved_servers; s && *s; s++)
                        g_ptr_array_add(a, g_strdup(*s));
        for (char **s = u->file_servers; s && *s; s++)
                g_ptr_array_add(a, g_strdup(*s));
        /* The forwarder takes so many; resolv.conf rarely has more than three. */
        while (a->len > DNS_FORWARD_UPSTREAMS_MAX)
                g_ptr_array_remove_index(a, a->len - 1);
        if (a->len == 0) {
                g_ptr_array_free(a, TRUE);
                l = NULL;
        } else {
                g_ptr_array_add(a, NULL);
                l = (char **) g_ptr_array_free(a, FALSE);
        }

        if (strv_same(l, u->servers) && u->origin) {
                g_strfreev(l);
                return;
        }
        g_strfreev(u->servers);
        u->servers = l;
        u->origin = origin;
        if (l) {
                g_autofree char *joined = g_strjoinv(", ", l);
                log_info("Forwarding to %s (from %s).", joined, origin);
                u->warned = false;
        } else if (!u->warned && (!u->stub || u->resolved_tried)) {
                log_warning(
                        "Forward=resolv.conf: %s names no DNS server but joyrided's own%s; "
                        "names that are not ours get SERVFAIL.",
                        u->path, u->stub ? " (and systemd-resolved's could not be read)" : "");
                u->warned = true;
        }
        if (u->callback)
                u->callback(u, u->servers, u->origin, u->userdata);
}

/* --- systemd-resolved ----------------------------------------------------------- */

static int ask_resolved(ForwardUpstreams *u);

static int read_resolved_list(ForwardUpstreams *u, sd_bus_message *m, bool ex, GPtrArray *out) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', ex ? "(iiayqs)" : "(iiay)");
        if (r < 0)
                return r;
        for (;;) {
                int32_t ifindex, family;
                const void *addr;
                size_t size;
                uint16_t port = 53;
                const char *name = NULL;
                char a[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN + 32];

                r = sd_bus_message_enter_container(m, 'r', ex ? "iiayqs" : "iiay");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "ii", &ifindex, &family);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_array(m, 'y', &addr, &size);
                if (r < 0)
                        return r;
                if (ex) {
                        r = sd_bus_message_read(m, "qs", &port, &name);
                        if (r < 0)
                                return r;
                        if (port == 0)
                                port = 53;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;

                if (!((family == AF_INET && size == 4) || (family == AF_INET6 && size == 16)) ||
                    !inet_ntop(family, addr, a, sizeof a))
                        continue;
                if (family == AF_INET)
                        snprintf(s, sizeof s, "%s:%u", a, port);
                else if (ifindex > 0 && IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *) addr))
                        snprintf(s, sizeof s, "[%s%%%i]:%u", a, ifindex, port);
                else
                        snprintf(s, sizeof s, "[%s]:%u", a, port);
                if (is_stub(a) || forward_upstreams_is_own(s, 53, u->bind_address, u->dns_port, u->resolved_dns))
                        continue;
                bool dup = false;
                for (guint i = 0; i < out->len && !dup; i++)
                        dup = streq(out->pdata[i], s);
                if (!dup)
                        g_ptr_array_add(out, g_strdup(s));
        }
        return sd_bus_message_exit_container(m);
}

static int on_resolved_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ForwardUpstreams *u = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *property = properties[u->property];
        bool ex = g_str_has_suffix(property, "Ex");
        g_autoptr(GPtrArray) a = NULL;
        int r;

        u->call = sd_bus_slot_unref(u->call);
        u->resolved_tried = true;
        if (e) {
                /* An older resolved: no DNSEx, ask for DNS. */
                if (ex && sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_PROPERTY)) {
                        u->property += 2;
                        return ask_resolved(u);
                }
                log_debug("Could not read the DNS servers of systemd-resolved: %s", e->message);
                goto fail;
        }

        a = g_ptr_array_new_with_free_func(g_free);
        r = sd_bus_message_enter_container(reply, 'v', ex ? "a(iiayqs)" : "a(iiay)");
        if (r >= 0)
                r = read_resolved_list(u, reply, ex, a);
        if (r < 0) {
                log_debug_errno(r, "Could not parse the DNS servers of systemd-resolved: %m");
                goto fail;
        }
        if (a->len == 0 && (u->property == 0 || u->property == 2)) {
                /* No servers of its own: resolved uses its fallback ones. */
                u->property++;
                return ask_resolved(u);
        }

        g_ptr_array_add(a, NULL);
        g_strfreev(u->resolved_servers);
        u->resolved_servers = (char **) g_ptr_array_free(TAKE_PTR(a), FALSE);
        if (!u->resolved_servers[0])
                u->resolved_servers = (g_strfreev(u->resolved_servers), NULL);
        u->property = u->property >= 2 ? 2 : 0;
        publish(u);
        return 0;

fail:
        u->property = u->property >= 2 ? 2 : 0;
        g_strfreev(u->resolved_servers);
        u->resolved_servers = NULL;
        publish(u);
        return 0;
}

static int ask_resolved(ForwardUpstreams *u) {
        int r;

        if (u->call)
                return 0;
        if (!u->bus) {
                /* manager-bus.c hands one over when it connects. */
                log_debug(
                        "resolv.conf points at systemd-resolved; waiting for the system bus to ask it for its "
                        "DNS servers.");
                return -ENOTCONN;
        }
        r = sd_bus_call_method_async(u->bus, &u->call, RESOLVE1_NAME, RESOLVE1_PATH, "org.freedesktop.DBus.Properties",
                                     "Get", on_resolved_reply, u, "ss", RESOLVE1_MANAGER, properties[u->property]);
        if (r < 0)
                return log_debug_errno(r, "Failed to ask systemd-resolved for its DNS servers: %m");
        return 0;
}

/* --- resolv.conf ------------------------------------------------------------------ */

static void read_file(ForwardUpstreams *u) {
        g_autofree char *text = NULL;
        g_auto(GStrv) all = NULL;
        g_autoptr(GError) error = NULL;
        GPtrArray *a;
        struct stat st;

        if (stat(u->path, &st) < 0) {
                if (u->have_st || !u->origin)
                        log_warning_errno(negative_errno(), "Forward=resolv.conf: cannot read %s: %m", u->path);
                u->have_st = false;
                g_strfreev(u->file_servers);
                u->file_servers = NULL;
                u->stub = false;
                return;
        }
        if (u->have_st && st.st_mtim.tv_sec == u->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == u->st.st_mtim.tv_nsec &&
            st.st_ino == u->st.st_ino && st.st_size == u->st.st_size)
                return;
        u->st = st;
        u->have_st = true;

        if (!g_file_get_contents(u->path, &text, NULL, &error)) {
                log_warning("Forward=resolv.conf: cannot read %s: %s", u->path, error->message);
                return;
        }
        (void) dns_forward_parse_resolv_conf(text, &all);
        a = g_ptr_array_new();
        u->stub = false;
        for (char **s = all; s && *s; s++) {
                if (is_stub(*s)) {
                        u->stub = true;
                        continue;
                }
                if (forward_upstreams_is_own(*s, 53, u->bind_address, u->dns_port, u->resolved_dns)) {
                        log_debug("Forward=resolv.conf: skipping %s, that is joyrided itself.", *s);
                        continue;
                }
                /* As ADDR:PORT, like every other list of upstreams. */
                struct sockaddr_storage sa;
                socklen_t l;
                char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 16];
                if (dns_forward_parse_address(*s, 53, &sa, &l) < 0)
                        continue;
                dns_forward_format_address((struct sockaddr *) &sa, buf, sizeof buf);
                g_ptr_array_add(a, g_strdup(buf));
        }
        g_ptr_array_add(a, NULL);
        g_strfreev(u->file_servers);
        u->file_servers = (char **) g_ptr_array_free(a, FALSE);
        if (!u->file_servers[0])
                u->file_servers = (g_strfreev(u->file_servers), NULL);
}

static void refresh(ForwardUpstreams *u) {
        read_file(u);
        if (u->stub && ask_resolved(u) >= 0)
                return; /* publishes when resolved answers */
        if (!u->stub) {
                g_strfreev(u->resolved_servers);
                u->resolved_servers = NULL;
        }
        publish(u);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ForwardUpstreams *u = userdata;

        refresh(u);
        return sd_event_source_set_time(s, usec + RECHECK_USEC);
}

int forward_upstreams_new(ForwardUpstreams **ret, sd_event *event, const Config *c, ForwardUpstreamsCallback callback,
                          void *userdata) {
        _cleanup_(forward_upstreams_freep) ForwardUpstreams *u = NULL;
        int r;

        if (!ret || !event || !c)
                return -EINVAL;
        u = g_new0(ForwardUpstreams, 1);
        u->event = sd_event_ref(event);
        u->path = g_strdup(c->resolv_conf ?: "/etc/resolv.conf");
        u->bind_address = g_strdup(c->dns_bind_address);
        u->dns_port = c->dns_port;
        u->resolved_dns = g_strdupv(c->resolved_dns);
        if (c->resolved_link && !c->resolved_dns) {
                /* What resolved.c registers by default: see there. */
                u->resolved_dns = g_new0(char *, 2);
                u->resolved_dns[0] = g_strdup_printf("127.0.0.1:%u", c->dns_port);
        }

        /* The first list from the file alone, without a callback: the caller
         * takes it with forward_upstreams_get(). */
        read_file(u);
        publish(u);
        u->callback = callback;
        u->userdata = userdata;

        r = sd_event_add_time_relative(event, &u->timer, CLOCK_MONOTONIC, RECHECK_USEC, USEC_PER_SEC / 10, on_timer, u);
        if (r < 0)
                return log_error_errno(r, "Failed to set up re-reading %s: %m", u->path);
        (void) sd_event_source_set_enabled(u->timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(u->timer, "forward-resolv-conf");

        *ret = TAKE_PTR(u);
        return 0;
}

ForwardUpstreams *forward_upstreams_free(ForwardUpstreams *u) {
        if (!u)
                return NULL;
        sd_event_source_disable_unref(u->timer);
        sd_bus_slot_unref(u->call);
        sd_bus_unref(u->bus);
        sd_event_unref(u->event);
        g_free(u->path);
        g_free(u->bind_address);
        g_strfreev(u->resolved_dns);
        g_strfreev(u->file_servers);
        g_strfreev(u->resolved_servers);
        g_strfreev(u->servers);
        g_free(u);
        return NULL;
}

void forward_upstreams_set_bus(ForwardUpstreams *u, sd_bus *bus) {
        if (!u || u->bus == bus)
                return;
        u->call = sd_bus_slot_unref(u->call);
        sd_bus_unref(u->bus);
        u->bus = sd_bus_ref(bus);
        if (u->bus && u->stub)
                (void) ask_resolved(u);
}

char **forward_upstreams_get(const ForwardUpstreams *u) {
        return u ? u->servers : NULL;
}

const char *forward_upstreams_origin(const ForwardUpstreams *u) {
        return u ? u->origin : NULL;
}
