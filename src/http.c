/* SPDX-License-Identifier: MIT */
/* The HTTP API and the dashboard: a libsoup 3 server on the default GLib main
 * context (which also drives sd-event, see event-glib.c).
 *
 * One catch-all handler routes by exact path, so that unknown paths get a
 * JSON 404 and known paths with the wrong method a 405 with Allow. An early
 * handler refuses oversize bodies from the headers alone, before libsoup reads
 * them. The bodies themselves are built in http-json.c. The live feed
 * (/api/events) is Server-Sent Events: each client is a paused, chunked
 * response that store changes are appended to, every 50 ms at most. */

#include <fcntl.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http-guard.h"
#include "http-json.h"
#include "http-records.h"
#include "http.h"
#include "log.h"

#define HTTP_BODY_MAX (64u * 1024u)
#define HTTP_MAX_CONNECTIONS_DEFAULT 128u
#define HTTP_REQUEST_TIMEOUT_MSEC_DEFAULT 10000u
/* The host's names and addresses are looked up again after this long. */
#define LOCAL_NAMES_USEC (10 * USEC_PER_SEC)
#define HTTP_LISTEN_BACKLOG 128
#define SSE_CLIENTS_MAX 64u
#define SSE_KEEPALIVE_SECONDS 15u
#define SSE_RETRY_MSEC 3000u
/* Changes are sent to the feed's clients at most this often, together... */
#define SSE_FLUSH_MSEC 50u
/* ...and more than this many in a second (a big hosts file replaced, Docker
 * reconnecting) are a burst: no event per record, but one "resync" once no
 * change came for a flush period (or every 2 s while it lasts). Counted over
 * time rather than per loop turn, since large changes are applied in many
 * short turns. */
#define SSE_EVENTS_PER_SECOND_MAX 2000u
#define SSE_BURST_MAX_USEC (2 * USEC_PER_SEC)
/* A client that stopped reading is dropped rather than buffered for. */
#define SSE_BACKLOG_MAX (1024u * 1024u)

/* /dns/records listings prepared at once: each holds a copy of the records
 * it lists until it is sent. */
#define RECORDS_REQUESTS_MAX 4u

#define RESOURCE_PREFIX "/org/joyride/www/"

/* From the GResource that data/meson.build compiles into the core library.
 * Referenced here so that the linker keeps it in the static library. */
GResource *joyride_get_resource(void);

/* A JSON API answer must never be rendered as a page or framed. */
#define CSP_API "default-src 'none'; frame-ancestors 'none'"
/* The dashboard: its own scripts, styles and feed, nothing inline or remote. */
#define CSP_PAGE \
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

typedef struct SseClient SseClient;
typedef struct RecordsRequest RecordsRequest;

struct HttpServer {
        Store *store;
        StatusProvider provider;
        char *api_token; /* NULL: changes from loopback only */
        SoupServer *server;
        HttpGuard *guard; /* connection cap and request timeout */
        sd_event *event;
        Worker *worker;            /* renders /dns/records */
        char *bind_address;        /* as configured; a name Host may use */
        char **allowed_hosts;      /* AllowedHosts= */
        char **local_names;        /* all the names Host may use, from http_local_names() */
        uint64_t local_names_usec; /* when they were looked up (monotonic) */

        SseClient *clients; /* linked list */
        unsigned n_clients;
        GString *pending;           /* SSE messages not sent yet */
        uint64_t window_start_usec; /* monotonic: changes are counted per second... */
        unsigned window_events;
        bool bursting;      /* ...and more than SSE_EVENTS_PER_SECOND_MAX make a burst */
        bool burst_changed; /* changes since the last flush during a burst */
        uint64_t burst_start_usec;
        bool subscribed; /* to the store's changes */
        guint flush_source;
        guint keepalive_source;

        RecordsRequest *records_requests; /* /dns/records bodies being prepared */
        unsigned n_records_requests;
};

struct SseClient {
        HttpServer *server;
        SoupServerMessage *msg; /* owned by libsoup; we hold a reference */
        GSource *hangup_source; /* notices the peer closing while nothing is written */
        size_t backlog;         /* bytes appended but not written yet */
        bool closing;
        SseClient *next, *prev;
};

typedef void (*RouteHandler)(HttpServer *h, SoupServerMessage *msg, GHashTable *query);

typedef struct Route {
        const char *path;
        const char *method; /* "GET" also allows HEAD */
        RouteHandler handler;
} Route;

/* --- responses ------------------------------------------------------------- */

static void set_common_headers(SoupServerMessage *msg, const char *cache_control, const char *csp) {
        SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);

        soup_message_headers_replace(h, "Cache-Control", cache_control);
        soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
        soup_message_headers_replace(h, "Referrer-Policy", "no-referrer");
        soup_message_headers_replace(h, "Content-Security-Policy", csp);
}

static void respond_text(SoupServerMessage *msg, unsigned status, const char *content_type, char *body, size_t size) {
        soup_server_message_set_status(msg, status, NULL);
        set_common_headers(msg, "no-store", CSP_API);
        /* Takes body (g_malloc'ed). */
        soup_server_message_set_response(msg, content_type, SOUP_MEMORY_TAKE, body, size);
}

/* Takes o. */
static void respond_json(SoupServerMessage *msg, unsigned status, json_object *o) {
        char *body = http_json_to_string(o);

        json_object_put(o);
        respond_text(msg, status, "application/json", body, strlen(body));
}

static void respond_error(SoupServerMessage *msg, unsigned status, const char *message) {
        respond_json(msg, status, http_json_message("error", message));
}

/* --- gathering the inputs -------------------------------------------------- */

static void get_status(HttpServer *h, ManagerStatus *ret) {
        h->provider.get_status(h->provider.userdata, ret);
}

static void service_info(const ManagerStatus *st, HttpServiceInfo *ret) {
        *ret = (HttpServiceInfo) {
                .service = st->service_name,
                .version = st->version,
                .environment = st->environment,
                .node_id = st->node_id,
                .http_host = st->http_host,
                .http_port = st->http_port,
                .now_usec = st->now_realtime_usec,
                .start_usec = st->start_realtime_usec,
                .uptime_usec = st->uptime_usec,
        };
}

static json_object *cluster_members(HttpServer *h) {
        json_object *a = json_object_new_array();
        _cleanup_free_ ClusterMember *members = NULL;
        size_t n;

        n = h->provider.get_members(h->provider.userdata, &members);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "node_id", json_object_new_string(members[i].id));
                json_object_object_add(o, "address", json_object_new_string(members[i].address));
                json_object_object_add(o, "state", json_object_new_string(members[i].state));
                json_object_object_add(o, "incarnation", json_object_new_int64(members[i].incarnation));
                g_autofree char *last_change = http_iso8601(members[i].state_change_usec);
                json_object_object_add(o, "last_change", json_object_new_string(last_change));
                json_object_object_add(o, "last_change_timestamp",
                                       json_object_new_int64((int64_t) (members[i].state_change_usec / USEC_PER_SEC)));
                json_object_object_add(o, "records", json_object_new_int64((int64_t) members[i].records));
                json_object_object_add(o, "self", json_object_new_boolean(members[i].self));
                /* Its signing key as pinned (or configured): what TrustedNodes= lists. */
                json_object_object_add(o, "public_key",
                                       members[i].public_key[0] ? json_object_new_string(members[i].public_key) : NULL);
                json_object_array_add(a, o);
        }
        return a;
}

/* --- routes ---------------------------------------------------------------- */

static void serve_health(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        HttpServiceInfo info;
        ManagerStatus st;

        get_status(h, &st);
        service_info(&st, &info);
        respond_json(msg, SOUP_STATUS_OK, http_json_health(&info));
}

static void serve_status(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        ManagerStatus st;
        json_object *members;
        HttpStatusInput in;

        get_status(h, &st);
        members = cluster_members(h);
        in = (HttpStatusInput) {
                .dns_port = st.dns_port,
                .dns_bind_address = st.dns_bind_address,
                .dns_describe = st.dns_describe,
                .dns = st.dns,
                .n_records = st.n_records,
                .store_version = st.store_version,
                .queries_per_second = st.queries_per_second,
                .forward_enabled = st.forward_enabled,
                .forward_source = st.forward_source,
                .forward = st.forward,
                .docker = st.docker_enabled ? &st.docker : NULL,
                .hosts = st.hosts_enabled ? &st.hosts : NULL,
                .cluster_enabled = st.cluster_enabled,
                .cluster_members = members,
                .etcd = st.etcd_enabled ? &st.etcd : NULL,
        };
        service_info(&st, &in.service);
        respond_json(msg, SOUP_STATUS_OK, http_json_status(&in));
        json_object_put(members);
}

/* --- /dns/records: copied in batches, rendered on a thread (http-records.c) -- */

struct RecordsRequest {
        HttpServer *server;
        SoupServerMessage *msg; /* paused until the body is ready; we hold a reference */
        RecordsExport *export;
        RecordsRequest *next, *prev;
};

static void records_request_free(RecordsRequest *rq) {
        HttpServer *h = rq->server;

        if (rq->prev)
                rq->prev->next = rq->next;
        else
                h->records_requests = rq->next;
        if (rq->next)
                rq->next->prev = rq->prev;
        h->n_records_requests--;

        records_export_cancel(rq->export);
        g_signal_handlers_disconnect_by_data(rq->msg, rq);
        g_object_unref(rq->msg);
        g_free(rq);
}

static void on_large_answer_sent(SoupServerMessage *msg, gpointer userdata) {
        HttpServer *h = userdata;

        records_trim_memory(h->worker);
}

static void on_records_ready(GPtrArray *body, void *userdata) {
        RecordsRequest *rq = userdata;
        SoupServerMessage *msg = rq->msg;
        SoupMessageBody *response = soup_server_message_get_response_body(msg);
        GSocket *socket = soup_server_message_get_socket(msg);
        size_t total = 0;

        rq->export = NULL; /* done: nothing left to cancel */
        soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
        set_common_headers(msg, "no-store", CSP_API);
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Content-Type", "application/json");
        /* Pieces, each dropped once written. */
        soup_message_body_set_accumulate(response, FALSE);
        for (guint i = 0; i < body->len; i++) {
                soup_message_body_append_bytes(response, body->pdata[i]);
                total += g_bytes_get_size(body->pdata[i]);
        }
        soup_message_headers_set_content_length(soup_server_message_get_response_headers(msg), (goffset) total);
        if (total >= RECORDS_TRIM_AFTER_BYTES) {
                /* A socket buffer of a few pieces: each write copies at most
                 * that much, however big the answer (loopback's autotuning
                 * would let one write copy megabytes). */
                if (socket)
                        (void) g_socket_set_option(socket, SOL_SOCKET, SO_SNDBUF, (gint) RECORDS_PIECE_BYTES, NULL);
                g_signal_connect(msg, "finished", G_CALLBACK(on_large_answer_sent), rq->server);
        }
        soup_server_message_unpause(msg);
        records_request_free(rq);
}

/* The client went away (or the server is stopping) before the body was ready. */
static void on_records_finished(SoupServerMessage *msg, gpointer userdata) {
        records_request_free(userdata);
}

static void serve_records(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        g_autofree char *error = NULL;
        RecordsQuery q;
        RecordsRequest *rq;

        if (records_query_parse(query, &q, &error) < 0)
                return respond_error(msg, SOUP_STATUS_BAD_REQUEST, error);
        if (h->n_records_requests >= RECORDS_REQUESTS_MAX) {
                records_query_done(&q);
                soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", "1");
                return respond_error(msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                                     "Too many record listings in progress; try again in a second");
        }

        rq = g_new0(RecordsRequest, 1);
        *rq = (RecordsRequest) {
                .server = h,
                .msg = g_object_ref(msg),
                .next = h->records_requests,
        };
        if (h->records_requests)
                h->records_requests->prev = rq;
        h->records_requests = rq;
        h->n_records_requests++;

        soup_server_message_pause(msg);
        g_signal_connect(msg, "finished", G_CALLBACK(on_records_finished), rq);
        rq->export = records_export_start(h->store, h->event, h->worker, &q, on_records_ready, rq);
}

static void serve_cluster(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        ManagerStatus st;
        json_object *o;

        /* The original answers "disabled" here (and "error" for POST /dns/sync). */
        get_status(h, &st);
        if (!st.cluster_enabled && !st.etcd_enabled)
                return respond_json(msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                                    http_json_message("disabled", "DNS synchronization is not enabled"));

        o = json_object_new_object();
        json_object_object_add(o, "status", json_object_new_string("success"));
        json_object_object_add(o, "cluster", cluster_members(h));
        json_object_object_add(o, "etcd", http_json_etcd(st.etcd_enabled ? &st.etcd : NULL));
        respond_json(msg, SOUP_STATUS_OK, o);
}

static void serve_sync(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        int r = h->provider.sync_now(h->provider.userdata);

        if (r == -EOPNOTSUPP)
                return respond_error(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "DNS synchronization is not enabled");
        if (r < 0)
                return respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "DNS synchronization could not start");
        respond_json(msg, SOUP_STATUS_OK, http_json_message("success", "DNS synchronization initiated"));
}

/* The process_* figures that Prometheus's client libraries export, from
 * /proc/self. Left at 0 where /proc cannot be read. */
static void read_process_stats(HttpMetricsInput *in) {
        g_autofree char *stat = NULL;
        unsigned long long utime = 0, stime = 0, vsize = 0;
        long long rss = 0;
        struct rlimit rl;
        const char *p;
        GDir *d;

        /* The kernel's own numbers: a field that does not convert leaves the
         * count short of 4 and the figures at 0. */
        if (g_file_get_contents("/proc/self/stat", &stat, NULL, NULL) && (p = strrchr(stat, ')')) &&
            sscanf( // NOLINT(cert-err34-c)
                    p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %llu %lld",
                    &utime, &stime, &vsize, &rss) == 4) {
                long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
                in->cpu_seconds = tick > 0 ? (double) (utime + stime) / (double) tick : 0;
                in->virtual_bytes = vsize;
                in->resident_bytes = rss > 0 && page > 0 ? (uint64_t) rss * (uint64_t) page : 0;
        }
        d = g_dir_open("/proc/self/fd", 0, NULL);
        if (d) {
                while (g_dir_read_name(d))
                        in->open_fds++;
                g_dir_close(d);
                if (in->open_fds > 0)
                        in->open_fds--; /* the directory's own fd */
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                in->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
}

static void serve_metrics(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        ManagerStatus st;
        HttpMetricsInput in;
        char *body;

        get_status(h, &st);
        in = (HttpMetricsInput) {
                .dns = st.dns,
                .forward_enabled = st.forward_enabled,
                .forward = st.forward,
                .store_version = st.store_version,
                .docker_enabled = st.docker_enabled,
                .docker_connected = st.docker_enabled && st.docker.state == DOCKER_CONNECTED,
                .uptime_usec = st.uptime_usec,
                .members_by_state = {
                        [HTTP_MEMBER_ALIVE] = st.cluster.members_alive,
                        [HTTP_MEMBER_SUSPECT] = st.cluster.members_suspect,
                        [HTTP_MEMBER_DEAD] = st.cluster.members_dead,
                        [HTTP_MEMBER_LEFT] = st.cluster.members_left,
                },
                .gossip_sent = st.cluster.packets_sent,
                .gossip_received = st.cluster.packets_received,
                .gossip_rejected = st.cluster.packets_rejected,
                .cluster_enabled = st.cluster_enabled,
                .etcd = st.etcd_enabled ? &st.etcd : NULL,
                .start_time_seconds = (double) st.start_realtime_usec / USEC_PER_SEC,
                .cluster_dropped_members = st.cluster.dropped_members,
                .cluster_dropped_origins = st.cluster.dropped_origins,
                .cluster_dropped_records = st.cluster.dropped_records,
                .cluster_dropped_frames = st.cluster.dropped_frames,
                .cluster_refused_signature = st.cluster.refused_signature,
                .cluster_refused_unsigned = st.cluster.refused_unsigned,
                .cluster_refused_relay = st.cluster.refused_relay,
                .cluster_refused_not_member = st.cluster.refused_not_member,
                .cluster_refutations = st.cluster.refutations,
        };
        read_process_stats(&in);
        for (int i = 0; i < _HTTP_SOURCE_MAX; i++)
                in.records_by_source[i] = store_count_owner_prefix(h->store, http_source_owner_prefix(i));

        body = http_metrics_render(&in);
        respond_text(msg, SOUP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", body, strlen(body));
}

static const char *content_type_for(const char *name) {
        if (g_str_has_suffix(name, ".html"))
                return "text/html; charset=utf-8";
        if (g_str_has_suffix(name, ".js"))
                return "text/javascript; charset=utf-8";
        if (g_str_has_suffix(name, ".css"))
                return "text/css; charset=utf-8";
        if (g_str_has_suffix(name, ".svg"))
                return "image/svg+xml";
        return "application/octet-stream";
}

static void serve_resource(SoupServerMessage *msg, const char *name, const char *cache_control) {
        g_autofree char *path = NULL;
        g_autoptr(GBytes) data = NULL;

        /* Only plain names: the resource has no directories to walk into. */
        if (isempty(name) || strchr(name, '/') || name[0] == '.')
                return respond_error(msg, SOUP_STATUS_NOT_FOUND, "No such file");
        path = g_strconcat(RESOURCE_PREFIX, name, NULL);
        data = g_resource_lookup_data(joyride_get_resource(), path, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
        if (!data)
                return respond_error(msg, SOUP_STATUS_NOT_FOUND, "No such file");

        soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
        set_common_headers(msg, cache_control, CSP_PAGE);
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "X-Frame-Options", "DENY");
        soup_server_message_set_response(msg, content_type_for(name), SOUP_MEMORY_COPY, g_bytes_get_data(data, NULL),
                                         g_bytes_get_size(data));
}

static void serve_index(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        serve_resource(msg, "index.html", "no-store");
}

/* --- the live feed (Server-Sent Events) ------------------------------------ */

static void sse_client_free(SseClient *c) {
        HttpServer *h = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                h->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        h->n_clients--;

        if (c->hangup_source) {
                g_source_destroy(c->hangup_source);
                g_source_unref(c->hangup_source);
        }
        g_signal_handlers_disconnect_by_data(c->msg, c);
        g_object_unref(c->msg);
        g_free(c);
}

/* Ends the response; libsoup finishes the message and "finished" frees us. */
static void sse_client_close(SseClient *c) {
        if (c->closing)
                return;
        c->closing = true;
        if (c->hangup_source) {
                g_source_destroy(c->hangup_source);
                g_clear_pointer(&c->hangup_source, g_source_unref);
        }
        soup_message_body_complete(soup_server_message_get_response_body(c->msg));
        soup_server_message_unpause(c->msg);
}

static void sse_client_send(SseClient *c, const char *data, size_t len) {
        if (c->closing)
                return;
        if (c->backlog + len > SSE_BACKLOG_MAX) {
                log_debug("Dropping a live feed client that stopped reading.");
                return sse_client_close(c);
        }
        c->backlog += len;
        soup_message_body_append(soup_server_message_get_response_body(c->msg), SOUP_MEMORY_COPY, data, len);
        soup_server_message_unpause(c->msg);
}

static void on_sse_wrote_data(SoupServerMessage *msg, guint size, gpointer userdata) {
        SseClient *c = userdata;

        c->backlog -= MIN(c->backlog, (size_t) size);
}

static void on_sse_finished(SoupServerMessage *msg, gpointer userdata) {
        sse_client_free(userdata);
}

/* A feed client sends nothing after its request: readable means it closed
 * (or is misbehaving), either way it is done. */
static gboolean on_sse_hangup(GSocket *socket, GIOCondition cond, gpointer userdata) {
        SseClient *c = userdata;

        g_clear_pointer(&c->hangup_source, g_source_unref);
        c->closing = true;
        /* Closing the socket makes libsoup fail the pending write and emit
         * "finished", which frees the client. */
        soup_message_body_complete(soup_server_message_get_response_body(c->msg));
        (void) g_socket_shutdown(socket, TRUE, TRUE, NULL);
        soup_server_message_unpause(c->msg);
        return G_SOURCE_REMOVE;
}

static void serve_events(HttpServer *h, SoupServerMessage *msg, GHashTable *query) {
        SoupMessageHeaders *headers = soup_server_message_get_response_headers(msg);
        g_autofree char *hello = NULL;
        ManagerStatus st;
        json_object *o;
        GSocket *socket;
        SseClient *c;
        char retry[32];

        if (streq(soup_server_message_get_method(msg), "HEAD")) {
                soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
                set_common_headers(msg, "no-store", CSP_API);
                soup_message_headers_replace(headers, "Content-Type", "text/event-stream");
                return;
        }
        if (h->n_clients >= SSE_CLIENTS_MAX)
                return respond_error(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "Too many live feed clients");

        c = g_new0(SseClient, 1);
        *c = (SseClient) {
                .server = h,
                .msg = g_object_ref(msg),
                .next = h->clients,
        };
        if (h->clients)
                h->clients->prev = c;
        h->clients = c;
        h->n_clients++;

        soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
        set_common_headers(msg, "no-store", CSP_API);
        soup_message_headers_replace(headers, "Content-Type", "text/event-stream; charset=utf-8");
        soup_message_headers_replace(headers, "X-Accel-Buffering", "no");
        soup_message_headers_set_encoding(headers, soup_server_message_get_http_version(msg) == SOUP_HTTP_1_0
                                                           ? SOUP_ENCODING_EOF
                                                           : SOUP_ENCODING_CHUNKED);
        /* Written chunks are not kept: the feed never ends. */
        soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);

        g_signal_connect(msg, "wrote-body-data", G_CALLBACK(on_sse_wrote_data), c);
        g_signal_connect(msg, "finished", G_CALLBACK(on_sse_finished), c);

        socket = soup_server_message_get_socket(msg);
        if (socket) {
                c->hangup_source = g_socket_create_source(socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
                g_source_set_callback(c->hangup_source, G_SOURCE_FUNC(on_sse_hangup), c, NULL);
                g_source_set_name(c->hangup_source, "http-sse-hangup");
                g_source_attach(c->hangup_source, NULL);
        }

        get_status(h, &st);
        snprintf(retry, sizeof retry, "retry: %u\n\n", SSE_RETRY_MSEC);
        o = json_object_new_object();
        json_object_object_add(o, "version", json_object_new_int64((int64_t) store_version(h->store)));
        json_object_object_add(o, "node_id", json_object_new_string(strempty(st.node_id)));
        hello = http_sse_event("hello", o);
        json_object_put(o);
        sse_client_send(c, retry, strlen(retry));
        sse_client_send(c, hello, strlen(hello));
}

static gboolean on_sse_flush(gpointer userdata);

static void sse_arm_flush(HttpServer *h) {
        if (!h->flush_source)
                h->flush_source = g_timeout_add_full(G_PRIORITY_DEFAULT, SSE_FLUSH_MSEC, on_sse_flush, h, NULL);
}

static gboolean on_sse_flush(gpointer userdata) {
        HttpServer *h = userdata;
        g_autofree char *resync = NULL;
        uint64_t now = (uint64_t) g_get_monotonic_time();

        h->flush_source = 0;
        if (h->bursting) {
                /* Wait for the burst to end (a flush period without changes),
                 * but not forever: clients should see a busy store change. */
                if (h->burst_changed && now - h->burst_start_usec < SSE_BURST_MAX_USEC) {
                        h->burst_changed = false;
                        sse_arm_flush(h);
                        return G_SOURCE_REMOVE;
                }
                json_object *o = json_object_new_object();

                json_object_object_add(o, "version", json_object_new_int64((int64_t) store_version(h->store)));
                resync = http_sse_event("resync", o);
                json_object_put(o);
                h->bursting = h->burst_changed;
                h->burst_changed = false;
                h->burst_start_usec = now;
                if (h->bursting)
                        sse_arm_flush(h);
        }
        for (SseClient *c = h->clients, *next; c; c = next) {
                next = c->next;
                if (resync)
                        sse_client_send(c, resync, strlen(resync));
                else
                        sse_client_send(c, h->pending->str, h->pending->len);
        }
        g_string_truncate(h->pending, 0);
        return G_SOURCE_REMOVE;
}

static void on_store_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        HttpServer *h = userdata;
        g_autofree char *event = NULL;
        uint64_t now;

        if (h->n_clients == 0)
                return;
        sse_arm_flush(h);
        if (h->bursting) {
                h->burst_changed = true;
                return;
        }
        now = (uint64_t) g_get_monotonic_time();
        if (now - h->window_start_usec > USEC_PER_SEC) {
                h->window_start_usec = now;
                h->window_events = 0;
        }
        if (++h->window_events > SSE_EVENTS_PER_SECOND_MAX) {
                /* A burst: a big hosts file replaced, Docker reconnecting, a
                 * peer's push-pull. One resync once it is over, not each record. */
                h->bursting = true;
                h->burst_changed = true;
                h->burst_start_usec = now;
                g_string_truncate(h->pending, 0);
                return;
        }
        event = http_sse_record_event(change, r, store_version(s));
        g_string_append(h->pending, event);
}

static gboolean on_sse_keepalive(gpointer userdata) {
        HttpServer *h = userdata;
        static const char keepalive[] = ": keepalive\n\n";

        for (SseClient *c = h->clients, *next; c; c = next) {
                next = c->next;
                sse_client_send(c, keepalive, strlen(keepalive));
        }
        return G_SOURCE_CONTINUE;
}

/* --- dispatch -------------------------------------------------------------- */

static const Route routes[] = {
        { "/", "GET", serve_index },
        { "/health", "GET", serve_health },
        { "/status", "GET", serve_status },
        { "/dns/records", "GET", serve_records },
        { "/dns/cluster", "GET", serve_cluster },
        { "/dns/sync", "POST", serve_sync },
        { "/metrics", "GET", serve_metrics },
        { "/api/events", "GET", serve_events },
};

static bool is_loopback_peer(SoupServerMessage *msg) {
        GSocketAddress *sa = soup_server_message_get_remote_address(msg);
        GInetAddress *a;

        /* A unix socket (socket activation can pass one) is local by nature. */
        if (sa && G_IS_UNIX_SOCKET_ADDRESS(sa))
                return true;
        if (!sa || !G_IS_INET_SOCKET_ADDRESS(sa))
                return false;
        a = g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa));
        if (g_inet_address_get_is_loopback(a))
                return true;
        /* ::ffff:127.x.y.z, from a dual-stack socket. */
        if (g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV6) {
                const guint8 *b = g_inet_address_to_bytes(a);
                static const guint8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
                return memcmp(b, mapped, sizeof mapped) == 0 && b[12] == 127;
        }
        return false;
}

/* Compares in time that depends on the expected token's length only. */
static bool token_equal(const char *given, const char *expected) {
        size_t lg = strlen(given), le = strlen(expected);
        unsigned char d = lg != le;

        for (size_t i = 0; i < le; i++)
                d |= (unsigned char) (i < lg ? given[i] : 0) ^ (unsigned char) expected[i];
        return d == 0;
}

/* POST changes things: loopback only, or anyone with the bearer token when
 * one is configured. Returns true if the request may go on, else has answered. */
static bool authorize_change(HttpServer *h, SoupServerMessage *msg) {
        const char *token = h->api_token, *auth;

        if (isempty(token)) {
                if (is_loopback_peer(msg))
                        return true;
                respond_error(msg, SOUP_STATUS_FORBIDDEN,
                              "Changes are accepted from loopback only, unless JOYRIDE_API_TOKEN is set");
                return false;
        }

        auth = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
        if (!auth || g_ascii_strncasecmp(auth, "Bearer ", 7) != 0) {
                soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                                             "Bearer realm=\"joyride\"");
                respond_error(msg, SOUP_STATUS_UNAUTHORIZED, "Authorization: Bearer <token> required");
                return false;
        }
        auth += 7;
        auth += strspn(auth, " ");
        if (!token_equal(auth, token)) {
                respond_error(msg, SOUP_STATUS_FORBIDDEN, "Invalid token");
                return false;
        }
        return true;
}

/* --- names: DNS rebinding ------------------------------------------------------ */

static char *const *local_names(HttpServer *h) {
        uint64_t now = (uint64_t) g_get_monotonic_time();

        if (!h->local_names || now - h->local_names_usec > LOCAL_NAMES_USEC) {
                g_strfreev(h->local_names);
                h->local_names = http_local_names(h->bind_address, h->allowed_hosts);
                h->local_names_usec = now;
        }
        return h->local_names;
}

/* A browser sends the name of the site it thinks it talks to: a page of
 * evil.example whose name was made to resolve to us sends Host: evil.example.
 * Returns true if the request may go on, else has answered. */
static bool check_host(HttpServer *h, SoupServerMessage *msg) {
        const char *value = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Host");
        g_autofree char *host = NULL, *text = NULL;
        uint16_t port;

        if (!value)
                return true; /* HTTP/1.0 without one: not a browser */
        if (http_split_host(value, &host, &port) >= 0 && http_host_allowed(host, local_names(h)))
                return true;
        text = g_strdup_printf("Host '%.64s' is not a name of this server; add it to [HTTP] AllowedHosts= to use it",
                               value);
        respond_error(msg, SOUP_STATUS_FORBIDDEN, text);
        return false;
}

/* The port this request came in on, for comparing with an Origin. */
static uint16_t local_port(SoupServerMessage *msg) {
        GSocketAddress *sa = soup_server_message_get_local_address(msg);

        return sa && G_IS_INET_SOCKET_ADDRESS(sa) ? g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(sa)) : 0;
}

/* A change from a web page must come from our own: a page elsewhere that
 * makes the browser POST here carries its own Origin. Scripts send none. */
static bool check_origin(HttpServer *h, SoupServerMessage *msg) {
        const char *origin = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Origin");
        g_autofree char *text = NULL;

        if (!origin || http_origin_allowed(origin, local_names(h), local_port(msg)))
                return true;
        text = g_strdup_printf("Changes from pages of another origin ('%.64s') are not accepted", origin);
        respond_error(msg, SOUP_STATUS_FORBIDDEN, text);
        return false;
}

static void on_request(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                       gpointer userdata) {
        HttpServer *h = userdata;
        const char *method = soup_server_message_get_method(msg);
        bool is_get = streq(method, "GET") || streq(method, "HEAD");

        if (g_str_has_prefix(path, "/static/")) {
                if (!is_get)
                        goto not_allowed_get;
                return serve_resource(msg, path + strlen("/static/"), "public, max-age=300");
        }

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                const Route *r = &routes[i];

                if (!streq(path, r->path))
                        continue;
                if (streq(r->method, "GET") ? !is_get : !streq(method, r->method)) {
                        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
                                                     streq(r->method, "GET") ? "GET, HEAD" : r->method);
                        return respond_error(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "Method not allowed");
                }
                if (streq(r->method, "POST") && (!check_origin(h, msg) || !authorize_change(h, msg)))
                        return;
                return r->handler(h, msg, query);
        }

        return respond_error(msg, SOUP_STATUS_NOT_FOUND, "Not found");

not_allowed_get:
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", "GET, HEAD");
        respond_error(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "Method not allowed");
}

/* Runs once the headers are in, before the body is read: refusing here means
 * an oversize body is never buffered. */
static void on_request_headers(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                               gpointer userdata) {
        SoupMessageHeaders *headers = soup_server_message_get_request_headers(msg);

        if (!check_host(userdata, msg))
                return;

        switch (soup_message_headers_get_encoding(headers)) {
        case SOUP_ENCODING_CONTENT_LENGTH:
                if (soup_message_headers_get_content_length(headers) > HTTP_BODY_MAX)
                        respond_error(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                                      "Request body too large (limit 64 KiB)");
                break;
        case SOUP_ENCODING_CHUNKED:
        case SOUP_ENCODING_EOF:
        case SOUP_ENCODING_BYTERANGES:
                /* No endpoint takes a streamed body; its size would only be
                 * known after buffering it. */
                respond_error(msg, SOUP_STATUS_LENGTH_REQUIRED, "Request bodies need a Content-Length (limit 64 KiB)");
                break;
        default:
                break;
        }
}

/* --- listening ------------------------------------------------------------- */

static int gerror_to_errno(const GError *e) {
        if (!e || e->domain != G_IO_ERROR)
                return -EIO;
        switch (e->code) {
        case G_IO_ERROR_ADDRESS_IN_USE:
                return -EADDRINUSE;
        case G_IO_ERROR_PERMISSION_DENIED:
                return -EACCES;
        case G_IO_ERROR_INVALID_ARGUMENT:
                return -EINVAL;
        case G_IO_ERROR_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case G_IO_ERROR_HOST_NOT_FOUND:
                return -EADDRNOTAVAIL;
        default:
                return -EIO;
        }
}

static int listen_fd(HttpServer *h, int fd) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GSocket) socket = NULL;
        _cleanup_close_ int copy = -EBADF;

        /* Work on a copy, so that the caller's fd stays its own on failure
         * (GSocket closes what it wraps). */
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return log_error_errno(negative_errno(), "Failed to duplicate the passed HTTP socket: %m");
        socket = g_socket_new_from_fd(copy, &error);
        if (!socket)
                return log_error_errno(gerror_to_errno(error), "Failed to use the passed HTTP socket: %s",
                                       error->message);
        TAKE_FD(copy);
        if (!soup_server_listen_socket(h->server, socket, 0, &error))
                return log_error_errno(gerror_to_errno(error), "Failed to listen for HTTP on the passed socket: %s",
                                       error->message);
        (void) close(fd);
        log_info("HTTP API on the socket passed by the service manager.");
        return 0;
}

static int listen_address(HttpServer *h, GInetAddress *a, uint16_t port) {
        g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(a, port);
        g_autoptr(GSocket) socket = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *text = g_inet_address_to_string(a);
        bool v6 = g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV6;

        /* Our own socket rather than soup_server_listen()'s, for a listen
         * backlog that holds a burst of dashboards reconnecting at once
         * (GLib's default is 10). */
        socket = g_socket_new(g_inet_address_get_family(a), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
        if (socket) {
                g_socket_set_listen_backlog(socket, HTTP_LISTEN_BACKLOG);
                if (!g_socket_bind(socket, sa, TRUE, &error) || !g_socket_listen(socket, &error))
                        g_clear_object(&socket);
        }
        if (!socket || !soup_server_listen_socket(h->server, socket, 0, &error))
                return log_error_errno(gerror_to_errno(error), "Failed to listen for HTTP on %s%s%s:%u: %s",
                                       v6 ? "[" : "", text, v6 ? "]" : "", port, error->message);
        log_info("HTTP API on http://%s%s%s:%u/", v6 ? "[" : "", text, v6 ? "]" : "", port);
        return 0;
}

static int listen_host(HttpServer *h, const char *host, uint16_t port) {
        g_autoptr(GInetAddress) a = NULL;
        g_autoptr(GError) error = NULL;
        GList *list;
        int r = 0;

        a = g_inet_address_new_from_string(host);
        if (a)
                return listen_address(h, a, port);

        /* A host name: resolved once at start, before the loop runs. */
        list = g_resolver_lookup_by_name(g_resolver_get_default(), host, NULL, &error);
        if (!list)
                return log_error_errno(gerror_to_errno(error), "Failed to resolve HTTP host %s: %s", host,
                                       error->message);
        for (GList *l = list; l && r >= 0; l = l->next)
                r = listen_address(h, l->data, port);
        g_resolver_free_addresses(list);
        return r;
}

/* --- lifecycle ------------------------------------------------------------- */

int http_server_new(HttpServer **ret, Store *store, const HttpServerOptions *opts, const StatusProvider *provider) {
        _cleanup_(http_server_freep) HttpServer *h = NULL;
        g_autofree char *header = g_strdup_printf("joyride/%s", JOYRIDE_VERSION);
        int r;

        h = g_new0(HttpServer, 1);
        h->store = store;
        h->provider = *provider;
        h->api_token = g_strdup(opts->api_token);
        h->pending = g_string_new(NULL);
        h->server = soup_server_new("server-header", header, NULL);
        if (!h->server)
                return log_error_errno(-ENOMEM, "Failed to create the HTTP server.");

        h->event = sd_event_ref(opts->event);
        r = worker_new(&h->worker, h->event, "http-render");
        if (r < 0)
                return r;
        h->bind_address = g_ascii_strdown(opts->host ?: "0.0.0.0", -1);
        h->allowed_hosts = g_strdupv(opts->allowed_hosts);
        h->guard = http_guard_new(h->server, opts->max_connections ?: HTTP_MAX_CONNECTIONS_DEFAULT,
                                  opts->request_timeout_msec ?: HTTP_REQUEST_TIMEOUT_MSEC_DEFAULT);

        soup_server_add_early_handler(h->server, NULL, on_request_headers, h, NULL);
        soup_server_add_handler(h->server, NULL, on_request, h, NULL);

        if (opts->fd >= 0)
                r = listen_fd(h, opts->fd);
        else
                r = listen_host(h, opts->host ?: "0.0.0.0", opts->port);
        if (r < 0)
                return r;

        r = store_subscribe(store, on_store_change, h);
        if (r < 0)
                return log_error_errno(r, "Failed to follow record changes for the live feed: %m");
        h->subscribed = true;
        h->keepalive_source = g_timeout_add_seconds(SSE_KEEPALIVE_SECONDS, on_sse_keepalive, h);

        *ret = TAKE_PTR(h);
        return 0;
}

void http_server_set_allowed_hosts(HttpServer *h, char **names) {
        g_strfreev(h->allowed_hosts);
        h->allowed_hosts = g_strdupv(names);
        g_clear_pointer(&h->local_names, g_strfreev);
}

void http_server_set_api_token(HttpServer *h, const char *token) {
        g_free(h->api_token);
        h->api_token = g_strdup(token);
}

HttpServer *http_server_free(HttpServer *h) {
        if (!h)
                return NULL;

        if (h->keepalive_source)
                g_source_remove(h->keepalive_source);
        if (h->flush_source)
                g_source_remove(h->flush_source);
        if (h->subscribed)
                store_unsubscribe(h->store, on_store_change, h);
        while (h->clients)
                sse_client_free(h->clients);
        while (h->records_requests)
                records_request_free(h->records_requests);
        /* After the requests: the worker drops the renders still under way. */
        h->worker = worker_free(h->worker);
        h->guard = http_guard_free(h->guard);
        if (h->server) {
                soup_server_disconnect(h->server);
                g_object_unref(h->server);
        }
        sd_event_unref(h->event);
        g_free(h->bind_address);
        g_strfreev(h->allowed_hosts);
        g_strfreev(h->local_names);
        if (h->pending)
                g_string_free(h->pending, TRUE);
        g_free(h->api_token);
        g_free(h);
        return NULL;
}
