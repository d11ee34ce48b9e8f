/* SPDX-License-Identifier: MIT */
/* The Docker source. One connection at a time to the Engine API over its
 * unix socket (libsoup 3 with a GUnixSocketAddress as the remote-connectable;
 * json-c), all asynchronous on the thread-default GMainContext:
 *
 *   GET /_ping            -> the engine's API version (or GET /version)
 *   GET /vX/events        -> opened first: headers arrive at once, so from
 *                            here on no container event can be missed
 *   GET /vX/containers/json -> the running containers; reconcile the store
 *                            against them, then replay the events that came
 *                            in while the list was in flight, in order
 *   ...then every event as it arrives, parsed incrementally.
 *
 * Any failure drops the connection and retries with exponential backoff
 * (250 ms doubling to 30 s, reset on success), logging each distinct reason
 * once. Each labelled container's records have the owner "docker:<full id>"
 * and the container's name as detail, so every interface can say why a
 * name resolves. */

#include <arpa/inet.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <json-c/json.h>
#include <libsoup/soup.h>
#include <stdio.h>

#include "docker-label.h"
#include "catalog.h"
#include "docker.h"
#include "log.h"
#include "netinfo.h"

#define BACKOFF_MIN_MSEC 250u
#define BACKOFF_MAX_MSEC 30000u
#define REQUEST_TIMEOUT_SEC 30u
#define EVENT_READ_SIZE (64 * 1024)
/* The most read from the engine, per reply and per event; more than that and
 * the engine is treated as broken. Real replies are far smaller: /_ping says
 * "OK", /version about 1 kB, an inspect some 10 kB, the list about 2 kB per
 * container (16 MiB: some thousands), an event about 1 kB plus the
 * container's labels. */
#define PING_BODY_MAX (64u * 1024)
#define VERSION_BODY_MAX (256u * 1024)
#define INSPECT_BODY_MAX (4u * 1024 * 1024)
#define LIST_BODY_MAX (16u * 1024 * 1024)
#define EVENT_MAX (1024u * 1024)
/* Events held back while the container list is read (replayed after it). */
#define EARLY_EVENTS_MAX 10000u
#define OWNER_PREFIX "docker:"
#define DEFAULT_SOCKET "/var/run/docker.sock"

typedef struct DockerConn DockerConn;

struct DockerMonitor {
        Store *store;
        GMainContext *context;
        char *docker_host;
        char *socket_path;              /* NULL for tcp:// and http:// engines */
        char *base_uri;                 /* "http://docker" for a unix socket */
        char *opt_hostip, *opt_hostip6; /* as configured (canonical), NULL when unset */
        char *hostip, *hostip6;         /* what records get now */
        char *host_note;                /* where hostip came from, for the log */
        uint32_t default_ttl;

        /* Two sessions because they need different I/O timeouts: requests
         * should not hang for ever on a stuck engine, the event stream may
         * legitimately be quiet for days. */
        SoupSession *session;
        SoupSession *events_session;

        DockerState state;
        char api_version[16]; /* "" until negotiated */
        bool podman;
        bool ever_connected;
        char *last_error;
        GHashTable *logged_errors; /* reasons already logged since the last success */
        uint64_t connected_since_usec;
        uint64_t next_retry_usec;
        unsigned backoff_msec;
        GSource *retry_source;

        DockerConn *conn;            /* the current attempt or connection; NULL while waiting to retry */
        GHashTable *containers;      /* id -> container name: containers that have records */
        GHashTable *pending_inspect; /* id -> token of the inspect in flight for it */
        unsigned inspect_token;
};

/* One connection attempt. Every async call holds a reference; when the
 * attempt is abandoned (failure, reconnect, shutdown) it is detached from the
 * monitor and cancelled, and late callbacks find monitor == NULL and stop. */
struct DockerConn {
        unsigned n_ref;
        DockerMonitor *monitor;
        GCancellable *cancellable;
        SoupMessage *events_msg;
        GInputStream *events;
        DockerJsonStream events_json;
        bool listed;             /* initial reconcile done: events apply at once */
        GPtrArray *early_events; /* json_object*, arrived while the list was in flight */
};

static void monitor_connect(DockerMonitor *d);

static DockerConn *conn_ref(DockerConn *c) {
        c->n_ref++;
        return c;
}

static void conn_unref(DockerConn *c) {
        if (!c || --c->n_ref > 0)
                return;
        g_clear_object(&c->events);
        g_clear_object(&c->events_msg);
        g_clear_object(&c->cancellable);
        docker_json_stream_done(&c->events_json);
        if (c->early_events)
                g_ptr_array_unref(c->early_events);
        g_free(c);
}

static void json_object_putp(gpointer o) {
        json_object_put(o);
}

static DockerConn *conn_new(DockerMonitor *d) {
        DockerConn *c = g_new0(DockerConn, 1);

        c->n_ref = 1;
        c->monitor = d;
        c->cancellable = g_cancellable_new();
        c->early_events = g_ptr_array_new_with_free_func(json_object_putp);
        return c;
}

static void conn_detach(DockerConn *c) {
        if (!c)
                return;
        c->monitor = NULL;
        g_cancellable_cancel(c->cancellable);
        conn_unref(c);
}

const char *docker_state_to_string(DockerState s) {
        switch (s) {
        case DOCKER_CONNECTING:
                return "connecting";
        case DOCKER_CONNECTED:
                return "connected";
        case DOCKER_DISCONNECTED:
                return "disconnected";
        }
        return "unknown";
}

static char *owner_of(const char *id) {
        return g_strconcat(OWNER_PREFIX, id, NULL);
}

static char *short_id(const char *id, char buf[static 13]) {
        g_strlcpy(buf, id, 13);
        return buf;
}

/* --- addresses ----------------------------------------------------------- */

static char *canonical_address(const char *s, int family) {
        unsigned char buf[16];
        char out[INET6_ADDRSTRLEN];

        if (isempty(s) || inet_pton(family, s, buf) != 1 || !inet_ntop(family, buf, out, sizeof out))
                return NULL;
        return g_strdup(out);
}

/* Works out the addresses records get. Runs at start and before every
 * (re)connect, so a changed DHCP lease is picked up by the next reconcile.
 * HOSTIP wins; without it the default-route interface's IPv4 (and its global
 * IPv6, unless HOSTIP6 says otherwise). An explicit HOSTIP does not pull in
 * a detected IPv6: whoever pins the IPv4 address should pin both. */
static void update_host_addresses(DockerMonitor *d) {
        _cleanup_(netinfo_done) NetInfo ni = {};
        g_autofree char *v4 = NULL, *v6 = NULL, *note = NULL;
        int r;

        if (d->opt_hostip) {
                v4 = g_strdup(d->opt_hostip);
                v6 = g_strdup(d->opt_hostip6);
                note = g_strdup("HOSTIP");
        } else {
                r = netinfo_default_route(NULL, &ni);
                if (r < 0)
                        log_debug_errno(r, "Failed to read the routing table: %m");
                v4 = g_strdup(ni.ipv4);
                v6 = g_strdup(d->opt_hostip6 ?: ni.ipv6);
                if (v4)
                        note = g_strdup_printf("the default-route interface %s", ni.ifname);
                else {
                        /* A host with only loopback (a CI box, a laptop on a
                         * plane): 127.0.0.1 keeps the names useful locally,
                         * which beats registering nothing. Said loudly. */
                        v4 = g_strdup("127.0.0.1");
                        note = g_strdup(ni.ifname ? "fallback: the default-route interface has no IPv4 address"
                                                  : "fallback: no default route; set HOSTIP");
                }
        }

        if (streq_ptr(v4, d->hostip) && streq_ptr(v6, d->hostip6))
                return;
        if (g_str_has_prefix(note, "fallback"))
                log_warning("Docker records will point to %s (%s).", v4, note);
        else
                log_info("Docker records point to %s%s%s (%s).", v4, v6 ? " and " : "", strempty(v6), note);
        g_free(d->hostip);
        g_free(d->hostip6);
        g_free(d->host_note);
        d->hostip = TAKE_PTR(v4);
        d->hostip6 = TAKE_PTR(v6);
        d->host_note = TAKE_PTR(note);
}

/* --- records ------------------------------------------------------------- */

static void container_remove(DockerMonitor *d, const char *id, const char *why) {
        g_autofree char *owner = owner_of(id);
        char sid[13];
        int n;

        n = store_remove_owner(d->store, owner);
        if (n > 0)
                log_debug("Container %s: %s, removed %i record(s).", short_id(id, sid), why, n);
        (void) g_hash_table_remove(d->containers, id);
}

/* Gives container id exactly the records its labels ask for: mark, add,
 * sweep, so a changed label or address leaves nothing stale behind.
 * container_v4/v6 are its own addresses (for joyride.host.ip=container). */
static void container_apply(DockerMonitor *d, const char *id, const char *name, const char *names_label,
                            const char *ip_label, const char *ttl_label, const char *container_v4,
                            const char *container_v6) {
        _cleanup_(docker_label_names_done) DockerLabelNames names = {};
        _cleanup_(docker_label_ip_done) DockerLabelIp ip = {};
        g_autofree char *owner = owner_of(id);
        const char *why = NULL, *v4 = NULL, *v6 = NULL;
        uint32_t ttl;
        unsigned added = 0;
        char sid[13];
        int r;

        short_id(id, sid);
        name = name && *name ? name : sid;

        r = docker_label_parse_names(names_label, &names);
        if (r < 0) {
                log_error_errno(r, "Container %s (%s): failed to parse label %s: %m", name, sid, DOCKER_LABEL_NAME);
                return;
        }
        for (size_t i = 0; i < names.n_problems; i++)
                log_warning("Container %s (%s): skipping name \"%s\" in label %s: %s.", name, sid,
                            names.problems[i].name, DOCKER_LABEL_NAME, names.problems[i].reason);

        if (docker_label_parse_ttl(ttl_label, d->default_ttl, &ttl, &why) < 0)
                log_warning("Container %s (%s): ignoring label %s=%s: %s; using %u.", name, sid, DOCKER_LABEL_TTL,
                            ttl_label, why, ttl);

        r = docker_label_parse_ip(ip_label, &ip, &why);
        if (r == -ENOMEM) {
                log_error_errno(r, "Container %s (%s): failed to parse label %s: %m", name, sid, DOCKER_LABEL_IP);
                return;
        }
        if (r < 0)
                log_warning("Container %s (%s): ignoring label %s=%s: %s; using the host's address.", name, sid,
                            DOCKER_LABEL_IP, ip_label, why);

        switch (ip.mode) {
        case DOCKER_IP_HOST:
                v4 = d->hostip;
                v6 = d->hostip6;
                break;
        case DOCKER_IP_EXPLICIT:
                v4 = ip.ipv4;
                v6 = ip.ipv6;
                break;
        case DOCKER_IP_CONTAINER:
                v4 = container_v4;
                v6 = container_v6;
                if (!v4 && !v6) {
                        log_warning(
                                "Container %s (%s): %s=container, but it has no address of its own "
                                "(--network none?); using the host's address.",
                                name, sid, DOCKER_LABEL_IP);
                        v4 = d->hostip;
                        v6 = d->hostip6;
                }
                break;
        }

        store_mark_owner(d->store, owner);
        for (size_t i = 0; i < names.n_names; i++) {
                const struct {
                        uint16_t type;
                        const char *value;
                } want[] = { { DNS_TYPE_A, v4 }, { DNS_TYPE_AAAA, v6 } };

                for (size_t j = 0; j < ELEMENTSOF(want); j++) {
                        if (!want[j].value)
                                continue;
                        why = NULL;
                        r = store_add(d->store, names.names[i], want[j].type, want[j].value, ttl, owner, 0, name, &why);
                        if (r < 0 && why)
                                log_warning("Container %s (%s): cannot add %s %s %s: %s.", name, sid, names.names[i],
                                            dns_type_to_string(want[j].type), want[j].value, why);
                        else if (r < 0)
                                log_warning_errno(r, "Container %s (%s): cannot add %s %s %s: %m", name, sid,
                                                  names.names[i], dns_type_to_string(want[j].type), want[j].value);
                        else
                                added++;
                }
        }
        (void) store_sweep_owner(d->store, owner);

        if (names.n_names == 0)
                log_warning("Container %s (%s): label %s=\"%s\" holds no valid name; no records.", name, sid,
                            DOCKER_LABEL_NAME, strempty(names_label));

        if (added > 0)
                g_hash_table_replace(d->containers, g_strdup(id), g_strdup(name));
        else
                (void) g_hash_table_remove(d->containers, id);
}

/* --- failures and retries ------------------------------------------------- */

static void retry_source_clear(DockerMonitor *d) {
        if (!d->retry_source)
                return;
        g_source_destroy(d->retry_source);
        g_source_unref(d->retry_source);
        d->retry_source = NULL;
}

static gboolean on_retry(gpointer userdata) {
        DockerMonitor *d = userdata;

        g_source_unref(d->retry_source);
        d->retry_source = NULL;
        monitor_connect(d);
        return G_SOURCE_REMOVE;
}

/* Drops the connection and schedules a retry. On purpose the records stay:
 * an engine restart (or a dropped stream) does not stop the containers, and
 * removing their names for the seconds until the engine is back would
 * blackhole services that still run. The reconcile on reconnect removes
 * whatever went away meanwhile, so nothing stale survives it. */
static void monitor_fail(DockerMonitor *d, const char *reason) {
        unsigned delay = d->backoff_msec ?: BACKOFF_MIN_MSEC;

        conn_detach(TAKE_PTR(d->conn));
        g_hash_table_remove_all(d->pending_inspect);
        d->state = DOCKER_DISCONNECTED;
        d->connected_since_usec = 0;
        d->backoff_msec = MIN(delay * 2, BACKOFF_MAX_MSEC);
        d->next_retry_usec = (uint64_t) g_get_real_time() + (uint64_t) delay * USEC_PER_MSEC;

        /* Once per distinct reason, not once per retry: a missing engine
         * would otherwise fill the journal every 30 s for ever, and an engine
         * that is starting up alternates between "refused" and "reset". */
        if (!g_hash_table_contains(d->logged_errors, reason)) {
                if (g_hash_table_size(d->logged_errors) >= 32)
                        g_hash_table_remove_all(d->logged_errors);
                g_hash_table_add(d->logged_errors, g_strdup(reason));
                char f_host[600];
                const char *fields[] = { JOYRIDE_FIELD_DOCKER_LOST, f_host, NULL };
                snprintf(f_host, sizeof f_host, "JOYRIDE_DOCKER_HOST=%s", d->docker_host);
                log_struct(LOG_WARNING, fields,
                           "Docker engine at %s not available: %s. Retrying with backoff (up to %u s); "
                           "keeping the records of %u container(s) meanwhile.",
                           d->docker_host, reason, BACKOFF_MAX_MSEC / 1000, g_hash_table_size(d->containers));
        } else
                log_debug("Docker engine at %s still not available: %s; next try in %u ms.", d->docker_host, reason,
                          delay);
        g_free(d->last_error);
        d->last_error = g_strdup(reason);

        retry_source_clear(d);
        d->retry_source = g_timeout_source_new(delay);
        g_source_set_name(d->retry_source, "docker-retry");
        g_source_set_callback(d->retry_source, on_retry, d, NULL);
        g_source_attach(d->retry_source, d->context);
}

_printf_(2, 3) static void monitor_failf(DockerMonitor *d, const char *format, ...) {
        g_autofree char *reason = NULL;
        va_list ap;

        va_start(ap, format);
        reason = g_strdup_vprintf(format, ap);
        va_end(ap);
        monitor_fail(d, reason);
}

/* --- bounded requests ---------------------------------------------------------
 *
 * Every reply is read into memory up to a limit of its own and no further:
 * an engine that sends more is broken, and the attempt fails as if it had
 * hung up (libsoup's send_and_read has no limit; a fake engine grew the
 * daemon to gigabytes in seconds). The callback gets the whole body of a
 * 200 reply, or an error that names the request: "GET /_ping: HTTP 500
 * Internal Server Error: <the engine's message>". */

typedef struct Request Request;
/* r: 0; -EMSGSIZE for a reply over the limit; another negative errno for any
 * other failure, with error set. Only called while the connection is current. */
typedef void (*RequestDone)(DockerMonitor *d, Request *req, int r, const char *error);

struct Request {
        DockerConn *conn; /* a reference */
        SoupMessage *msg;
        GInputStream *stream;
        GByteArray *body;
        size_t max_size;
        char *what; /* "GET /containers/json", for messages */
        RequestDone done;
        void *userdata;
        GDestroyNotify free_userdata;
};

/* The limits as people write them: "16 MiB", "64 KiB". */
static char *format_size(size_t n) {
        if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
                return g_strdup_printf("%zu MiB", n / (1024 * 1024));
        if (n >= 1024 && n % 1024 == 0)
                return g_strdup_printf("%zu KiB", n / 1024);
        return g_strdup_printf("%zu bytes", n);
}

static void request_free(Request *req) {
        if (req->free_userdata)
                req->free_userdata(req->userdata);
        g_clear_object(&req->stream);
        g_clear_object(&req->msg);
        g_byte_array_unref(req->body);
        conn_unref(req->conn);
        g_free(req->what);
        g_free(req);
}

/* "HTTP 404 Not Found: no such container" from a failed reply. */
static char *http_error(SoupMessage *msg, const GByteArray *body) {
        g_autofree char *message = NULL;
        json_object *o = docker_json_parse(body->data, body->len);

        message = g_strdup(docker_json_string(o, "message"));
        json_object_put(o);
        return g_strdup_printf("HTTP %u %s%s%s", soup_message_get_status(msg),
                               strempty(soup_message_get_reason_phrase(msg)), message ? ": " : "", strempty(message));
}

static void request_finish(Request *req, int r, const char *detail) {
        DockerMonitor *d = req->conn->monitor;
        g_autofree char *error = NULL, *http = NULL;

        if (!d)
                goto out; /* abandoned: the connection went away meanwhile */
        if (r >= 0 && soup_message_get_status(req->msg) != SOUP_STATUS_OK) {
                r = -EREMOTEIO;
                detail = http = http_error(req->msg, req->body);
        }
        if (r < 0)
                error = g_strdup_printf("%s: %s", req->what, detail);
        req->done(d, req, r, error);
out:
        request_free(req);
}

static void request_read_next(Request *req);

static void on_request_read(GObject *source, GAsyncResult *res, gpointer userdata) {
        Request *req = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), res, &error);
        g_autofree char *limit = NULL, *detail = NULL;
        const void *data;
        gsize len;

        if (!bytes) {
                request_finish(req, -EIO, error->message);
                return;
        }
        data = g_bytes_get_data(bytes, &len);
        if (len == 0) {
                request_finish(req, 0, NULL);
                return;
        }
        if (req->body->len + len > req->max_size) {
                limit = format_size(req->max_size);
                detail = g_strdup_printf("the reply is longer than %s, the most joyrided reads", limit);
                request_finish(req, -EMSGSIZE, detail);
                return;
        }
        g_byte_array_append(req->body, data, (guint) len);
        request_read_next(req);
}

static void request_read_next(Request *req) {
        if (!req->conn->monitor) {
                request_finish(req, -ECANCELED, "cancelled");
                return;
        }
        /* One byte more than the room left is enough to see an overlong body. */
        g_input_stream_read_bytes_async(req->stream, MIN(EVENT_READ_SIZE, req->max_size - req->body->len + 1),
                                        G_PRIORITY_DEFAULT, req->conn->cancellable, on_request_read, req);
}

static void on_request_sent(GObject *source, GAsyncResult *res, gpointer userdata) {
        Request *req = userdata;
        g_autoptr(GError) error = NULL;
        g_autofree char *limit = NULL, *detail = NULL;
        SoupMessageHeaders *h;

        req->stream = soup_session_send_finish(SOUP_SESSION(source), res, &error);
        if (!req->stream) {
                request_finish(req, -EIO, error->message);
                return;
        }
        h = soup_message_get_response_headers(req->msg);
        if (soup_message_headers_get_encoding(h) == SOUP_ENCODING_CONTENT_LENGTH &&
            (uint64_t) soup_message_headers_get_content_length(h) > req->max_size) {
                limit = format_size(req->max_size);
                detail = g_strdup_printf("the reply announces %" G_GOFFSET_FORMAT
                                         " bytes, more than %s, the most "
                                         "joyrided reads",
                                         soup_message_headers_get_content_length(h), limit);
                request_finish(req, -EMSGSIZE, detail);
                return;
        }
        request_read_next(req);
}

/* GET path, versioned (/vX.Y/path) once the API version is known and
 * `versioned` is set. userdata is freed with free_userdata in any case. */
static void request_start(DockerConn *c, const char *path, bool versioned, size_t max_size, RequestDone done,
                          void *userdata, GDestroyNotify free_userdata) {
        DockerMonitor *d = c->monitor;
        Request *req = g_new0(Request, 1);
        g_autofree char *uri = NULL;

        if (versioned && d->api_version[0])
                uri = g_strdup_printf("%s/v%s%s", d->base_uri, d->api_version, path);
        else
                uri = g_strconcat(d->base_uri, path, NULL);
        *req = (Request) {
                .conn = conn_ref(c),
                .msg = soup_message_new(SOUP_METHOD_GET, uri),
                .body = g_byte_array_new(),
                .max_size = max_size,
                .what = g_strdup_printf("GET %.*s", (int) strcspn(path, "?"), path),
                .done = done,
                .userdata = userdata,
                .free_userdata = free_userdata,
        };
        soup_session_send_async(d->session, req->msg, G_PRIORITY_DEFAULT, c->cancellable, on_request_sent, req);
}

static json_object *request_json(Request *req) {
        return docker_json_parse(req->body->data, req->body->len);
}

static char *filter_query(const char *json) {
        g_autofree char *escaped = g_uri_escape_string(json, NULL, FALSE);
        return g_strdup_printf("filters=%s", escaped);
}

/* --- events ---------------------------------------------------------------- */

typedef struct InspectCall {
        unsigned token;
        char *id, *name, *names_label, *ip_label, *ttl_label;
} InspectCall;

static void inspect_call_free(void *p) {
        InspectCall *ic = p;

        g_free(ic->id);
        g_free(ic->name);
        g_free(ic->names_label);
        g_free(ic->ip_label);
        g_free(ic->ttl_label);
        g_free(ic);
}

static void on_inspect(DockerMonitor *d, Request *req, int r, const char *error) {
        InspectCall *ic = req->userdata;
        g_autofree char *v4 = NULL, *v6 = NULL;
        json_object *o = NULL, *ns = NULL;
        char sid[13];

        /* Stale when a newer event for the same container came in meanwhile
         * (a quick start/stop must end stopped). */
        if (GPOINTER_TO_UINT(g_hash_table_lookup(d->pending_inspect, ic->id)) != ic->token)
                return;
        (void) g_hash_table_remove(d->pending_inspect, ic->id);

        short_id(ic->id, sid);
        if (r == -EMSGSIZE) {
                /* The engine is broken, not this container. */
                monitor_fail(d, error);
                return;
        }
        if (r < 0) {
                log_warning("Container %s (%s): cannot inspect it for %s=container: %s; skipping.", ic->name, sid,
                            DOCKER_LABEL_IP, error);
                return;
        }
        o = request_json(req);
        if (o)
                (void) json_object_object_get_ex(o, "NetworkSettings", &ns);
        if (docker_network_addresses(ns, &v4, &v6) < 0)
                log_error("Container %s (%s): out of memory.", ic->name, sid);
        else
                container_apply(d, ic->id, ic->name, ic->names_label, ic->ip_label, ic->ttl_label, v4, v6);
        json_object_put(o);
}

static void container_start_inspect(DockerMonitor *d, const DockerEvent *ev) {
        g_autofree char *path = NULL, *escaped = g_uri_escape_string(ev->id, NULL, FALSE);
        InspectCall *ic = g_new0(InspectCall, 1);

        *ic = (InspectCall) {
                .token = ++d->inspect_token ?: ++d->inspect_token,
                .id = g_strdup(ev->id),
                .name = g_strdup(ev->name),
                .names_label = g_strdup(ev->names_label),
                .ip_label = g_strdup(ev->ip_label),
                .ttl_label = g_strdup(ev->ttl_label),
        };
        g_hash_table_replace(d->pending_inspect, g_strdup(ev->id), GUINT_TO_POINTER(ic->token));
        path = g_strdup_printf("/containers/%s/json", escaped);
        request_start(d->conn, path, true, INSPECT_BODY_MAX, on_inspect, ic, inspect_call_free);
}

static void handle_event(DockerMonitor *d, json_object *o) {
        _cleanup_(docker_label_ip_done) DockerLabelIp ip = {};
        DockerEvent ev;
        char sid[13];

        if (docker_event_parse(o, &ev) < 0)
                return;
        log_debug("Docker event: container %s (%s) %s.", strna(ev.name), short_id(ev.id, sid), ev.action);
        if (ev.kind == DOCKER_ACTION_IGNORE)
                return;

        /* Any newer event supersedes an inspect in flight for this container. */
        (void) g_hash_table_remove(d->pending_inspect, ev.id);

        if (ev.kind == DOCKER_ACTION_REMOVE) {
                /* No label check: removing records that do not exist changes nothing. */
                container_remove(d, ev.id, ev.action);
                return;
        }
        if (!ev.names_label)
                return;
        if (docker_label_parse_ip(ev.ip_label, &ip, NULL) >= 0 && ip.mode == DOCKER_IP_CONTAINER)
                container_start_inspect(d, &ev);
        else
                container_apply(d, ev.id, ev.name, ev.names_label, ev.ip_label, ev.ttl_label, NULL, NULL);
}

static int on_event_value(json_object *o, void *userdata) {
        DockerConn *c = userdata;

        if (!c->monitor) {
                json_object_put(o);
                return -ECANCELED;
        }
        if (c->listed) {
                handle_event(c->monitor, o);
                json_object_put(o);
                return 0;
        }
        /* Replayed after the list; an engine that floods events and never
         * finishes the list would have them pile up. */
        if (c->early_events->len >= EARLY_EVENTS_MAX) {
                json_object_put(o);
                return -ENOBUFS;
        }
        g_ptr_array_add(c->early_events, o);
        return 0;
}

static void events_read_next(DockerConn *c);

static void on_events_read(GObject *source, GAsyncResult *res, gpointer userdata) {
        DockerConn *c = userdata;
        DockerMonitor *d = c->monitor;
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), res, &error);
        g_autofree char *limit = NULL;
        const char *data, *why = NULL;
        gsize len;
        int r;

        if (!d)
                goto out;
        if (!bytes) {
                monitor_failf(d, "event stream: %s", error->message);
                goto out;
        }
        data = g_bytes_get_data(bytes, &len);
        if (len == 0) {
                /* The engine closes the stream when it stops or restarts. */
                monitor_fail(d, "the engine closed the event stream");
                goto out;
        }
        r = docker_json_feed(&c->events_json, data, len, on_event_value, c, &why);
        if (r == -EBADMSG)
                monitor_failf(d, "invalid JSON in the event stream: %s", why);
        else if (r == -EMSGSIZE) {
                limit = format_size(EVENT_MAX);
                monitor_failf(d, "event stream: an event longer than %s, the most joyrided reads", limit);
        } else if (r == -ENOBUFS)
                monitor_failf(d, "event stream: more than %u events while the container list was read",
                              EARLY_EVENTS_MAX);
        else if (r >= 0 && c->monitor)
                events_read_next(c);
out:
        conn_unref(c);
}

static void events_read_next(DockerConn *c) {
        g_input_stream_read_bytes_async(c->events, EVENT_READ_SIZE, G_PRIORITY_DEFAULT, c->cancellable, on_events_read,
                                        conn_ref(c));
}

/* --- list and reconcile ---------------------------------------------------- */

static int collect_owner(const Record *r, void *userdata) {
        GHashTable *owners = userdata;

        if (!g_hash_table_contains(owners, r->owner))
                g_hash_table_add(owners, g_strdup(r->owner));
        return 0;
}

/* Makes the store hold exactly the records of the listed containers: mark
 * every docker owner, re-add what runs, sweep the rest. */
static void reconcile(DockerMonitor *d, json_object *list) {
        g_autoptr(GHashTable) owners = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        GHashTableIter it;
        gpointer key;
        size_t n = json_object_array_length(list);

        (void) store_foreach(d->store, NULL, OWNER_PREFIX, collect_owner, owners);
        g_hash_table_iter_init(&it, owners);
        while (g_hash_table_iter_next(&it, &key, NULL))
                store_mark_owner(d->store, key);
        g_hash_table_remove_all(d->containers);

        for (size_t i = 0; i < n; i++) {
                _cleanup_(docker_label_ip_done) DockerLabelIp ip = {};
                g_autofree char *v4 = NULL, *v6 = NULL;
                DockerContainer c;

                if (docker_container_parse(json_object_array_get_idx(list, i), &c) < 0)
                        continue;
                /* Pause removes, so a paused container has no records. */
                if (!c.running)
                        continue;
                if (!c.names_label)
                        continue; /* the label filter is not honoured by every engine */
                /* The list carries NetworkSettings: no inspect needed here. */
                if (docker_label_parse_ip(c.ip_label, &ip, NULL) >= 0 && ip.mode == DOCKER_IP_CONTAINER)
                        (void) docker_network_addresses(c.network_settings, &v4, &v6);
                container_apply(d, c.id, c.name, c.names_label, c.ip_label, c.ttl_label, v4, v6);
        }

        g_hash_table_iter_init(&it, owners);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                int removed = store_sweep_owner(d->store, key);
                if (removed > 0)
                        log_debug("Reconcile: %s is gone, removed %i record(s).", (const char *) key, removed);
        }
}

static void monitor_connected(DockerMonitor *d) {
        char f_host[600];
        const char *fields[] = { JOYRIDE_FIELD_DOCKER_CONNECTED, f_host, NULL };
        bool reconnect = d->ever_connected;

        d->ever_connected = true;
        d->state = DOCKER_CONNECTED;
        d->connected_since_usec = (uint64_t) g_get_real_time();
        d->next_retry_usec = 0;
        d->backoff_msec = BACKOFF_MIN_MSEC;
        snprintf(f_host, sizeof f_host, "JOYRIDE_DOCKER_HOST=%s", d->docker_host);
        log_struct(LOG_INFO, fields, "%s Docker engine at %s (API %s%s): %u labelled container(s) running.",
                   reconnect ? "Reconnected to" : "Connected to", d->docker_host, d->api_version,
                   d->podman ? ", Podman" : "", g_hash_table_size(d->containers));
        g_clear_pointer(&d->last_error, g_free);
        g_hash_table_remove_all(d->logged_errors);
}

static void on_list(DockerMonitor *d, Request *req, int r, const char *error) {
        DockerConn *c = req->conn;
        json_object *list;

        if (r < 0) {
                monitor_fail(d, error);
                return;
        }
        list = request_json(req);
        if (!list || !json_object_is_type(list, json_type_array)) {
                json_object_put(list);
                monitor_failf(d, "%s: not a JSON array", req->what);
                return;
        }
        reconcile(d, list);
        json_object_put(list);

        /* Replay what happened while the list was in flight, in order: each
         * event sets its container's state outright, so the last one wins
         * whether or not the list already saw it. */
        c->listed = true;
        for (guint i = 0; i < c->early_events->len && c->monitor; i++)
                handle_event(d, c->early_events->pdata[i]);
        g_ptr_array_set_size(c->early_events, 0);
        if (c->monitor)
                monitor_connected(d);
}

static void on_events_open(GObject *source, GAsyncResult *res, gpointer userdata) {
        DockerConn *c = userdata;
        DockerMonitor *d = c->monitor;
        g_autoptr(GError) error = NULL;
        g_autoptr(GInputStream) stream = soup_session_send_finish(SOUP_SESSION(source), res, &error);
        g_autofree char *query = NULL, *path = NULL;
        guint status;

        if (!d)
                goto out;
        if (!stream) {
                monitor_failf(d, "GET /events: %s", error->message);
                goto out;
        }
        status = soup_message_get_status(c->events_msg);
        if (status != SOUP_STATUS_OK) {
                monitor_failf(d, "GET /events: HTTP %u %s", status,
                              strempty(soup_message_get_reason_phrase(c->events_msg)));
                goto out;
        }

        c->events = TAKE_PTR(stream);
        if (docker_json_stream_init(&c->events_json, EVENT_MAX) < 0) {
                monitor_fail(d, "out of memory");
                goto out;
        }
        events_read_next(c);

        /* Subscribed: now the list. Podman matches nothing with a key-only
         * label filter, so it gets the whole list; the client-side check in
         * reconcile() is what counts anyway. */
        if (!d->podman) {
                query = filter_query("{\"label\":[\"" DOCKER_LABEL_NAME "\"]}");
                path = g_strconcat("/containers/json?", query, NULL);
        }
        request_start(c, path ?: "/containers/json", true, LIST_BODY_MAX, on_list, NULL, NULL);
out:
        conn_unref(c);
}

static void events_open(DockerMonitor *d) {
        g_autofree char *query = filter_query("{\"type\":[\"container\"]}");
        g_autofree char *uri = g_strdup_printf("%s/v%s/events?%s", d->base_uri, d->api_version, query);
        DockerConn *c = d->conn;

        c->events_msg = soup_message_new(SOUP_METHOD_GET, uri);
        soup_session_send_async(d->events_session, c->events_msg, G_PRIORITY_DEFAULT, c->cancellable, on_events_open,
                                conn_ref(c));
}

/* --- version negotiation ---------------------------------------------------- */

static void set_api_version(DockerMonitor *d, const char *engine) {
        char v[sizeof d->api_version];

        docker_api_version_pick(engine, v, sizeof v);
        if (!streq(v, d->api_version))
                log_debug("Docker engine speaks API %s; using %s.", strna(engine), v);
        g_strlcpy(d->api_version, v, sizeof d->api_version);
}

static void on_version(DockerMonitor *d, Request *req, int r, const char *error) {
        json_object *o;

        if (r < 0) {
                monitor_fail(d, error);
                return;
        }
        o = request_json(req);
        set_api_version(d, docker_json_string(o, "ApiVersion"));
        json_object_put(o);
        events_open(d);
}

static void on_ping(DockerMonitor *d, Request *req, int r, const char *error) {
        SoupMessageHeaders *h;
        const char *v;

        if (r < 0) {
                monitor_fail(d, error);
                return;
        }
        h = soup_message_get_response_headers(req->msg);
        d->podman = soup_message_headers_get_one(h, "Libpod-Api-Version") != NULL;
        v = soup_message_headers_get_one(h, "Api-Version");
        if (v) {
                set_api_version(d, v);
                events_open(d);
        } else
                /* Engines before API 1.25 do not send the header. */
                request_start(d->conn, "/version", false, VERSION_BODY_MAX, on_version, NULL, NULL);
}

static void monitor_connect(DockerMonitor *d) {
        retry_source_clear(d);
        conn_detach(TAKE_PTR(d->conn));
        g_hash_table_remove_all(d->pending_inspect);
        d->state = DOCKER_CONNECTING;
        d->next_retry_usec = 0;
        update_host_addresses(d);

        d->conn = conn_new(d);
        request_start(d->conn, "/_ping", false, PING_BODY_MAX, on_ping, NULL, NULL);
}

/* --- lifecycle -------------------------------------------------------------- */

static int parse_docker_host(DockerMonitor *d, const char *host) {
        const char *p;

        d->docker_host = g_strdup(host ?: "unix://" DEFAULT_SOCKET);
        if ((p = g_str_has_prefix(d->docker_host, "unix://") ? d->docker_host + 7 : NULL)) {
                if (*p != '/')
                        return -EINVAL;
                d->socket_path = g_strdup(p);
                d->base_uri = g_strdup("http://docker");
        } else if (g_str_has_prefix(d->docker_host, "tcp://"))
                d->base_uri = g_strconcat("http://", d->docker_host + 6, NULL);
        else if (g_str_has_prefix(d->docker_host, "http://"))
                d->base_uri = g_strdup(d->docker_host);
        else
                return -EINVAL;
        /* No trailing slash: paths are appended. */
        while (g_str_has_suffix(d->base_uri, "/") && strlen(d->base_uri) > strlen("http://"))
                d->base_uri[strlen(d->base_uri) - 1] = '\0';
        return 0;
}

static SoupSession *session_new(DockerMonitor *d, unsigned timeout_sec) {
        g_autoptr(GSocketAddress) addr = NULL;

        if (d->socket_path)
                addr = g_unix_socket_address_new(d->socket_path);
        return soup_session_new_with_options("remote-connectable", addr, "timeout", timeout_sec, "idle-timeout", 60u,
                                             "max-conns", 16, "max-conns-per-host", 8, "user-agent",
                                             "joyrided/" JOYRIDE_VERSION, NULL);
}

int docker_monitor_new(DockerMonitor **ret, Store *store, const DockerOptions *opts) {
        _cleanup_(docker_monitor_freep) DockerMonitor *d = NULL;
        int r;

        d = g_new0(DockerMonitor, 1);
        *d = (DockerMonitor) {
                .store = store,
                .context = g_main_context_ref_thread_default(),
                .default_ttl = opts->default_ttl,
                .backoff_msec = BACKOFF_MIN_MSEC,
                .state = DOCKER_CONNECTING,
                .containers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
                .pending_inspect = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                .logged_errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        };

        r = parse_docker_host(d, opts->docker_host);
        if (r < 0)
                return log_error_errno(
                        r, "Unsupported DOCKER_HOST=%s: expected unix:///path, tcp://host:port or http://host:port.",
                        opts->docker_host);

        if (!isempty(opts->hostip)) {
                d->opt_hostip = canonical_address(opts->hostip, AF_INET);
                if (!d->opt_hostip)
                        log_warning("HOSTIP=%s is not an IPv4 address; detecting the address instead.", opts->hostip);
        }
        if (!isempty(opts->hostip6)) {
                d->opt_hostip6 = canonical_address(opts->hostip6, AF_INET6);
                if (!d->opt_hostip6)
                        log_warning("HOSTIP6=%s is not an IPv6 address; ignoring it.", opts->hostip6);
        }

        d->session = session_new(d, REQUEST_TIMEOUT_SEC);
        d->events_session = session_new(d, 0);

        monitor_connect(d);
        *ret = TAKE_PTR(d);
        return 0;
}

DockerMonitor *docker_monitor_free(DockerMonitor *d) {
        GHashTableIter it;
        gpointer key;

        if (!d)
                return NULL;
        retry_source_clear(d);
        conn_detach(TAKE_PTR(d->conn));
        if (d->session)
                soup_session_abort(d->session);
        if (d->events_session)
                soup_session_abort(d->events_session);
        g_clear_object(&d->session);
        g_clear_object(&d->events_session);

        /* The source goes, and its records with it. */
        if (d->containers) {
                g_hash_table_iter_init(&it, d->containers);
                while (g_hash_table_iter_next(&it, &key, NULL)) {
                        g_autofree char *owner = owner_of(key);
                        (void) store_remove_owner(d->store, owner);
                }
                g_hash_table_unref(d->containers);
        }
        if (d->pending_inspect)
                g_hash_table_unref(d->pending_inspect);
        if (d->logged_errors)
                g_hash_table_unref(d->logged_errors);
        if (d->context)
                g_main_context_unref(d->context);
        g_free(d->docker_host);
        g_free(d->socket_path);
        g_free(d->base_uri);
        g_free(d->opt_hostip);
        g_free(d->opt_hostip6);
        g_free(d->hostip);
        g_free(d->hostip6);
        g_free(d->host_note);
        g_free(d->last_error);
        g_free(d);
        return NULL;
}

void docker_monitor_get_status(const DockerMonitor *d, DockerStatus *ret) {
        *ret = (DockerStatus) {
                .state = d->state,
                .socket_path = d->socket_path ?: d->docker_host,
                .api_version = d->api_version[0] ? d->api_version : NULL,
                .last_error = d->last_error,
                .connected_since_usec = d->connected_since_usec,
                .next_retry_usec = d->next_retry_usec,
                .n_containers = g_hash_table_size(d->containers),
                .hostip = d->hostip,
                .hostip6 = d->hostip6,
        };
}
