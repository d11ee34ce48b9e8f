/* SPDX-License-Identifier: MIT */
/* The HTTP connection guard and the Host/Origin checks (see http-guard.h).
 *
 * libsoup has no connection limit or read timeout of its own, but it emits
 * "request-started" when a connection is accepted (and when a kept-alive one
 * gets the first bytes of its next request), "request-read" once a request's
 * headers and body are in, and "request-finished" or "request-aborted" when
 * the answer is out. That is enough to follow every connection by its socket:
 * waiting for a request (from request-started, or idle between requests after
 * request-finished) or busy (from request-read until finished). A waiting
 * connection has a timer; the waiting ones are also queued oldest first,
 * which is where room is made at the cap. Closing is a shutdown() of the
 * socket: libsoup reads EOF and cleans up as for any client that left. A
 * connection libsoup has closed is found by its closed socket (there is no
 * signal for it that covers every case), at the next request and once a
 * second. */

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "http-guard.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

typedef struct HttpConn {
        HttpGuard *guard;
        GSocket *socket;      /* the key; we hold a reference, libsoup closes it */
        guint timeout_source; /* while waiting */
        GList *waiting_link;  /* in guard->waiting, while waiting */
} HttpConn;

struct HttpGuard {
        SoupServer *server;
        unsigned max_connections;
        uint32_t request_timeout_msec;
        GHashTable *conns; /* GSocket * -> HttpConn * */
        GQueue waiting;    /* HttpConn *, oldest first */
        gulong started_handler, read_handler, finished_handler, aborted_handler;
        guint sweep_source;
        HttpGuardCounters counters;
        uint64_t last_warning_usec;
};

static void conn_stop_waiting(HttpConn *c) {
        if (c->timeout_source) {
                g_source_remove(c->timeout_source);
                c->timeout_source = 0;
        }
        if (c->waiting_link) {
                g_queue_delete_link(&c->guard->waiting, c->waiting_link);
                c->waiting_link = NULL;
        }
}

static void conn_free(gpointer p) {
        HttpConn *c = p;

        conn_stop_waiting(c);
        g_object_unref(c->socket);
        g_free(c);
}

/* Forgets the connections libsoup has closed. */
static void sweep(HttpGuard *g) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, g->conns);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (g_socket_is_closed(((HttpConn *) v)->socket))
                        g_hash_table_iter_remove(&i);
        g->counters.open = g_hash_table_size(g->conns);
}

static gboolean on_sweep(gpointer userdata) {
        sweep(userdata);
        return G_SOURCE_CONTINUE;
}

/* Rate-limited: a flood must not flood the log too. */
static void warn_closing(HttpGuard *g, const char *why) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (now - g->last_warning_usec < 10 * USEC_PER_SEC)
                return;
        g->last_warning_usec = now;
        log_warning("HTTP: %s (%u connections open, at most %u; %" G_GUINT64_FORMAT " timed out, %" G_GUINT64_FORMAT
                    " evicted, %" G_GUINT64_FORMAT " refused so far).",
                    why, g->counters.open, g->max_connections, g->counters.timed_out, g->counters.evicted,
                    g->counters.refused);
}

static void conn_close(HttpConn *c) {
        conn_stop_waiting(c);
        /* libsoup sees EOF, ends the message and closes the connection. */
        (void) g_socket_shutdown(c->socket, TRUE, TRUE, NULL);
}

static gboolean on_timeout(gpointer userdata) {
        HttpConn *c = userdata;

        c->timeout_source = 0;
        c->guard->counters.timed_out++;
        warn_closing(c->guard, "closing connections that did not send a request in time");
        conn_close(c);
        return G_SOURCE_REMOVE;
}

static void conn_start_waiting(HttpConn *c) {
        HttpGuard *g = c->guard;

        conn_stop_waiting(c);
        c->timeout_source = g_timeout_add_full(G_PRIORITY_DEFAULT, g->request_timeout_msec, on_timeout, c, NULL);
        g_queue_push_tail(&g->waiting, c);
        c->waiting_link = g_queue_peek_tail_link(&g->waiting);
}

static HttpConn *conn_of(HttpGuard *g, SoupServerMessage *msg) {
        GSocket *socket = soup_server_message_get_socket(msg);

        return socket ? g_hash_table_lookup(g->conns, socket) : NULL;
}

static void on_request_started(SoupServer *server, SoupServerMessage *msg, gpointer userdata) {
        HttpGuard *g = userdata;
        GSocket *socket = soup_server_message_get_socket(msg);
        HttpConn *c;

        if (!socket)
                return;
        c = g_hash_table_lookup(g->conns, socket);
        if (!c) {
                /* A new connection. */
                g->counters.accepted++;
                c = g_new0(HttpConn, 1);
                c->guard = g;
                c->socket = g_object_ref(socket);
                g_hash_table_insert(g->conns, socket, c);
                g->counters.open = g_hash_table_size(g->conns);
                if (g->counters.open > g->max_connections)
                        sweep(g);

                if (g->counters.open > g->max_connections) {
                        HttpConn *victim = g_queue_peek_head(&g->waiting);

                        if (victim) {
                                g->counters.evicted++;
                                warn_closing(g,
                                             "at the connection limit, closing the connection that waited longest for "
                                             "its request");
                                conn_close(victim);
                        } else {
                                g->counters.refused++;
                                warn_closing(g,
                                             "at the connection limit with every connection busy, refusing new ones");
                                conn_close(c);
                                return;
                        }
                }
        }
        conn_start_waiting(c);
}

static void on_request_read(SoupServer *server, SoupServerMessage *msg, gpointer userdata) {
        HttpConn *c = conn_of(userdata, msg);

        /* The whole request is in: what happens now is up to us, not the client. */
        if (c)
                conn_stop_waiting(c);
}

static void on_request_done(SoupServer *server, SoupServerMessage *msg, gpointer userdata) {
        HttpConn *c = conn_of(userdata, msg);

        /* Kept alive, it waits for its next request: the same timeout applies. */
        if (c && !g_socket_is_closed(c->socket))
                conn_start_waiting(c);
}

HttpGuard *http_guard_new(SoupServer *server, unsigned max_connections, uint32_t request_timeout_msec) {
        HttpGuard *g = g_new0(HttpGuard, 1);

        g->server = g_object_ref(server);
        g->max_connections = MAX(max_connections, 1u);
        g->request_timeout_msec = MAX(request_timeout_msec, 1u);
        g->conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, conn_free);
        g_queue_init(&g->waiting);
        g->started_handler = g_signal_connect(server, "request-started", G_CALLBACK(on_request_started), g);
        g->read_handler = g_signal_connect(server, "request-read", G_CALLBACK(on_request_read), g);
        g->finished_handler = g_signal_connect(server, "request-finished", G_CALLBACK(on_request_done), g);
        g->aborted_handler = g_signal_connect(server, "request-aborted", G_CALLBACK(on_request_done), g);
        g->sweep_source = g_timeout_add_seconds(1, on_sweep, g);
        return g;
}

HttpGuard *http_guard_free(HttpGuard *g) {
        if (!g)
                return NULL;
        g_signal_handler_disconnect(g->server, g->started_handler);
        g_signal_handler_disconnect(g->server, g->read_handler);
        g_signal_handler_disconnect(g->server, g->finished_handler);
        g_signal_handler_disconnect(g->server, g->aborted_handler);
        g_source_remove(g->sweep_source);
        g_hash_table_destroy(g->conns);
        g_object_unref(g->server);
        g_free(g);
        return NULL;
}

const HttpGuardCounters *http_guard_get_counters(const HttpGuard *g) {
        return &g->counters;
}

/* --- names ------------------------------------------------------------------- */

int http_split_host(const char *value, char **ret_host, uint16_t *ret_port) {
        const char *host = value, *end, *colon;
        size_t n;
        unsigned long port = 0;
        char *h;

        if (isempty(value))
                return -EINVAL;
        if (value[0] == '[') {
                end = strchr(value, ']');
                if (!end)
                        return -EINVAL;
                host = value + 1;
                n = (size_t) (end - host);
                colon = end[1] == ':' ? end + 1 : NULL;
                if (!colon && end[1] != 0)
                        return -EINVAL;
        } else {
                colon = strrchr(value, ':');
                /* More than one colon without brackets: a bare IPv6 address. */
                if (colon && strchr(value, ':') != colon)
                        colon = NULL;
                n = colon ? (size_t) (colon - value) : strlen(value);
        }
        if (colon) {
                char *e;

                if (!g_ascii_isdigit(colon[1]))
                        return -EINVAL;
                port = strtoul(colon + 1, &e, 10);
                if (*e != 0 || port == 0 || port > 65535)
                        return -EINVAL;
        }
        if (n == 0 || n > 255)
                return -EINVAL;
        h = g_ascii_strdown(host, (gssize) n);
        if (n > 1 && h[n - 1] == '.')
                h[n - 1] = 0;
        for (const char *p = h; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("-._:%", *p)) {
                        g_free(h);
                        return -EINVAL;
                }
        *ret_host = h;
        *ret_port = (uint16_t) port;
        return 0;
}

static bool same_host(const char *a, const char *b) {
        g_autoptr(GInetAddress) x = g_inet_address_new_from_string(a);
        g_autoptr(GInetAddress) y = NULL;
        size_t n = strlen(b);

        if (x) {
                y = g_inet_address_new_from_string(b);
                return y && g_inet_address_equal(x, y);
        }
        if (n > 1 && b[n - 1] == '.')
                n--;
        return strlen(a) == n && g_ascii_strncasecmp(a, b, n) == 0;
}

bool http_host_allowed(const char *host, char *const *names) {
        g_autoptr(GInetAddress) a = g_inet_address_new_from_string(host);

        if (a && g_inet_address_get_is_loopback(a))
                return true;
        /* RFC 6761: localhost and every name below it are this machine. */
        if (streq(host, "localhost") || g_str_has_suffix(host, ".localhost"))
                return true;
        for (char *const *p = names; p && *p; p++)
                if (streq(*p, "*") || same_host(host, *p))
                        return true;
        return false;
}

bool http_origin_allowed(const char *origin, char *const *names, uint16_t port) {
        g_autofree char *host = NULL;
        uint16_t origin_port = 0, default_port;
        const char *rest;

        if (!origin)
                return false;
        if (g_str_has_prefix(origin, "http://")) {
                rest = origin + 7;
                default_port = 80;
        } else if (g_str_has_prefix(origin, "https://")) {
                rest = origin + 8;
                default_port = 443;
        } else
                return false; /* "null" (a sandboxed page, a file:), or junk */
        if (strchr(rest, '/') || http_split_host(rest, &host, &origin_port) < 0)
                return false;
        return (origin_port ?: default_port) == port && http_host_allowed(host, names);
}

char **http_local_names(const char *bind_address, char *const *extra) {
        g_autoptr(GPtrArray) names = g_ptr_array_new();
        struct ifaddrs *ifa = NULL;
        char host[256] = "";

        for (char *const *p = extra; p && *p; p++)
                g_ptr_array_add(names, g_strdup(*p));
        if (bind_address && !streq(bind_address, "0.0.0.0") && !streq(bind_address, "::"))
                g_ptr_array_add(names, g_ascii_strdown(bind_address, -1));
        if (gethostname(host, sizeof host - 1) >= 0 && host[0]) {
                g_ptr_array_add(names, g_ascii_strdown(host, -1));
                if (!strchr(host, '.'))
                        g_ptr_array_add(names, g_strconcat(host, ".local", NULL));
        }
        if (getifaddrs(&ifa) >= 0) {
                for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                        char text[INET6_ADDRSTRLEN];
                        const void *a;

                        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
                                continue;
                        if (i->ifa_addr->sa_family == AF_INET)
                                a = &((const struct sockaddr_in *) (const void *) i->ifa_addr)->sin_addr;
                        else if (i->ifa_addr->sa_family == AF_INET6)
                                a = &((const struct sockaddr_in6 *) (const void *) i->ifa_addr)->sin6_addr;
                        else
                                continue;
                        if (inet_ntop(i->ifa_addr->sa_family, a, text, sizeof text))
                                g_ptr_array_add(names, g_strdup(text));
                }
                freeifaddrs(ifa);
        }
        g_ptr_array_add(names, NULL);
        return (char **) g_ptr_array_free(g_steal_pointer(&names), FALSE);
}
