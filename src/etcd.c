/* SPDX-License-Identifier: MIT */
/* The etcd source. One connection at a time to one member of the endpoint
 * list, through etcd's v3 JSON gateway (POST, keys and values base64, 64-bit
 * numbers as strings), all asynchronous on the thread-default GMainContext:
 *
 *   /v3/auth/authenticate  -> a token, when [Etcd] User= is set
 *   /v3/lease/keepalive    -> does the lease of the last connection live?
 *   /v3/lease/grant        -> if not, a new one; every key is written again
 *   KV/Range (gRPC)        -> the whole prefix at one revision, in pages,
 *                             compared with what we hold (mark and sweep)
 *   /v3/watch              -> every change from that revision + 1 on, so
 *                             none is missed between the two
 *
 * The range alone goes over etcd's gRPC API (grpc-client.c, HTTP/2 on the
 * same URL): for 100 000 keys the gateway's JSON costs etcd about ten times
 * the CPU, more than everything else in a resync. Where gRPC gets no answer
 * at all (an HTTP/1.1 proxy in between), the connection reads the range
 * through /v3/kv/range instead. The pages are parsed on a worker thread
 * (pure code: protobuf or JSON, the SkyDNS mapping) and applied to the store
 * on the loop, a batch per turn; the store is only ever written from the
 * loop.
 *
 * From then on the watch's events are applied as they come, the lease is
 * renewed every third of its TTL, and this node's changes go out in
 * transactions (/v3/kv/txn) of at most 128 operations (etcd's default
 * --max-txn-ops), one in flight at a time so that they land in order.
 *
 * Any failure drops the connection: the next endpoint is tried at once, the
 * failed one only after a delay that doubles from 250 ms to 30 s. Meanwhile
 * the node serves what it last read. A compacted watch, a lost lease or a
 * reconnect start over from the range, and the sweep removes whatever went
 * away meanwhile. A clean stop revokes the lease (/v3/lease/revoke), so the
 * node's names leave etcd at once; a node that dies leaves them until the
 * lease expires.
 *
 * Keys of this node's lease are not served from etcd (the node has them
 * already); every other key below the prefix becomes the store owner
 * "etcd:<key>". */

#include <gio/gio.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libsoup/soup.h>
#include <stdio.h>

#include "catalog.h"
#include "docker-label.h"
#include "etcd-range.h"
#include "etcd-skydns.h"
#include "etcd.h"
#include "grpc-client.h"
#include "log.h"
#include "macro.h"
#include "worker.h"

#define BACKOFF_MIN_MSEC 250u
#define BACKOFF_MAX_MSEC 30000u
#define REQUEST_TIMEOUT_SEC 5u
#define RANGE_PAGE_KEYS 10000u /* keys per page of a range (JOYRIDE_ETCD_RANGE_PAGE_KEYS for tests) */
#define RANGE_PAGE_KEYS_MAX 100000u
#define RANGE_PAGES_AHEAD 3          /* pages being parsed or waiting to be applied, at most */
#define APPLY_BATCH 256u             /* keys applied to the store per loop turn */
#define SWEEP_LIST_BATCH 8192u       /* keys held looked through per loop turn after a range */
#define TXN_OPS_MAX 128u             /* etcd's default --max-txn-ops */
#define TXN_BYTES_MAX (256u * 1024u) /* etcd refuses requests above 1.5 MiB by default */
#define DIRTY_BATCH 1024u            /* local changes turned into keys per loop turn */
#define WATCH_READ_SIZE (64 * 1024)
#define WATCH_VALUE_MAX (32u * 1024u * 1024u) /* one watch result; etcd's requests stop at 1.5 MiB */
#define STOP_TIMEOUT_MSEC 3000u
#define QUICK_RESTARTS_MAX 5u /* restarts without a success before they count as failures */
#define SKIP_WARNINGS_PER_MINUTE 20u
#define OWNER_PREFIX "etcd:"

/* gRPC status codes, as the gateway reports them in "code". */
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_PERMISSION_DENIED 7
#define GRPC_OUT_OF_RANGE 11
#define GRPC_UNAUTHENTICATED 16

typedef struct EtcdConn EtcdConn;
typedef struct RangePage RangePage;

typedef struct Endpoint {
        char *url;
        unsigned backoff_msec;
        int64_t retry_at;  /* g_get_monotonic_time(); 0: at once */
        bool told_no_grpc; /* logged that ranges go through the gateway */
} Endpoint;

typedef struct RemoteKey {
        int64_t mod_revision;
        unsigned gen; /* resync generation that last saw it */
        unsigned n_records;
} RemoteKey;

typedef struct DirtyRecord {
        char *name, *value;
        uint16_t type;
} DirtyRecord;

typedef struct TxnOp {
        char *key;
        char *json; /* NULL: delete */
} TxnOp;

struct EtcdSource {
        Store *store;
        GMainContext *context;
        Endpoint *endpoints;
        size_t n_endpoints;
        size_t current;
        char **endpoint_urls;
        char *prefix;
        char *range_key, *range_end; /* prefix + "/" up to prefix + "0" ('/' + 1) */
        uint32_t lease_ttl, default_ttl;
        char *node_id;
        char *user, *password_file;
        GTlsDatabase *ca; /* NULL: the system's */
        GTlsCertificate *client_cert;
        /* Requests time out; the watch stream may be quiet for hours. */
        SoupSession *session, *watch_session;
        Worker *worker; /* parses the range's pages */

        EtcdState state;
        char *last_error;
        GHashTable *logged_errors; /* reasons logged since the last success */
        uint64_t connected_since_usec, next_retry_usec;
        GSource *retry_source;
        unsigned quick_restarts;
        bool ever_connected;
        EtcdConn *conn;
        char *token;

        int64_t lease_id;
        GSource *keepalive_source;

        GHashTable *remote; /* key -> RemoteKey: others' keys we hold */
        GString *owner_buf; /* owner_name() */
        unsigned range_page_keys;
        unsigned gen;
        unsigned n_remote_records; /* remote keys that hold a record */
        int64_t revision;
        int64_t skip_window_start;
        unsigned skip_logged, skip_suppressed;

        GHashTable *wanted;  /* key -> JSON value of this node's record there */
        GHashTable *pending; /* keys whose value in etcd may differ from wanted */
        GHashTable *dirty;   /* key -> DirtyRecord: local records that changed */
        GSource *flush_source;

        bool stopping;
        EtcdStopFunc stop_done;
        void *stop_userdata;
        GSource *stop_timer;
        EtcdConn *stop_conn; /* the revocation's requests */
        size_t stop_tries;

        uint64_t n_resyncs, n_events, n_txns, n_failures, n_skipped;
};

/* One connection attempt. Every request holds a reference; an abandoned
 * attempt is detached (source = NULL) and cancelled, and late replies find
 * that and stop. */
struct EtcdConn {
        unsigned n_ref;
        EtcdSource *source;
        GCancellable *cancellable;
        size_t endpoint;
        bool lease_ready; /* the lease lives: publishing and keepalives may go */
        bool txn_in_flight;
        bool keepalive_in_flight;
        int64_t range_revision;
        char *range_next; /* where the next page of the range starts; NULL: no more */
        size_t range_next_len;
        char *range_asked; /* where the page on its way starts */
        size_t range_asked_len;
        GrpcClient *grpc;       /* the range's pages over gRPC */
        bool no_grpc;           /* gRPC failed on this connection: the JSON gateway */
        bool range_requesting;  /* a page on its way */
        unsigned pages_parsing; /* pages with a worker */
        GQueue *pages;          /* RangePage: parsed, being applied */
        GSource *apply_source;
        GPtrArray *gone; /* keys the range did not hold, being removed */
        GHashTableIter gone_iter;
        bool gone_listed;
        guint gone_done;
        int64_t range_started; /* g_get_monotonic_time() */
        size_t range_keys;
        unsigned range_pages, range_new, range_changed;
        GPtrArray *txn; /* TxnOp of the transaction in flight */
        SoupMessage *watch_msg;
        GInputStream *watch;
        DockerJsonStream watch_json; /* splits the watch stream into its JSON values */
};

typedef struct Call Call;
typedef void (*CallFunc)(Call *call, json_object *reply);
/* Takes body: a page's body goes to the worker thread, which must then hold
 * the only reference (GBytes counts its references with atomics, which
 * ThreadSanitizer cannot see from an uninstrumented GLib). */
typedef void (*CallRawFunc)(Call *call, GBytes *body);
struct Call {
        EtcdConn *conn;
        char *path;
        CallFunc ok;        /* gets the reply parsed */
        CallRawFunc ok_raw; /* or gets its bytes */
};

static void source_connect(EtcdSource *e);
static void source_restart(EtcdSource *e, const char *why);
static void flush_schedule(EtcdSource *e);
static void txn_send_next(EtcdSource *e);

const char *etcd_state_to_string(EtcdState s) {
        switch (s) {
        case ETCD_CONNECTING:
                return "connecting";
        case ETCD_CONNECTED:
                return "connected";
        case ETCD_DISCONNECTED:
                return "disconnected";
        }
        return "unknown";
}

static void txn_op_free(gpointer p) {
        TxnOp *op = p;
        g_free(op->key);
        g_free(op->json);
        g_free(op);
}

static void dirty_record_free(gpointer p) {
        DirtyRecord *d = p;
        g_free(d->name);
        g_free(d->value);
        g_free(d);
}

static void source_clear(GSource **s) {
        if (!*s)
                return;
        g_source_destroy(*s);
        g_source_unref(*s);
        *s = NULL;
}

static GSource *source_timeout(EtcdSource *e, unsigned msec, const char *name, GSourceFunc f) {
        GSource *s = g_timeout_source_new(msec);

        g_source_set_name(s, name);
        g_source_set_callback(s, f, e, NULL);
        g_source_attach(s, e->context);
        return s;
}

/* --- connections ------------------------------------------------------------- */

static EtcdConn *conn_ref(EtcdConn *c) {
        c->n_ref++;
        return c;
}

static void range_page_free(gpointer p);

static void conn_unref(EtcdConn *c) {
        if (!c || --c->n_ref > 0)
                return;
        if (c->pages)
                g_queue_free_full(c->pages, range_page_free);
        if (c->gone)
                g_ptr_array_unref(c->gone);
        g_free(c->range_next);
        g_free(c->range_asked);
        grpc_client_unref(c->grpc);
        g_clear_object(&c->watch);
        g_clear_object(&c->watch_msg);
        g_clear_object(&c->cancellable);
        docker_json_stream_done(&c->watch_json);
        if (c->txn)
                g_ptr_array_unref(c->txn);
        g_free(c);
}

static void conn_detach(EtcdConn *c) {
        if (!c)
                return;
        source_clear(&c->apply_source);
        c->source = NULL;
        g_cancellable_cancel(c->cancellable);
        grpc_client_close(c->grpc);
        conn_unref(c);
}

static const char *conn_url(const EtcdConn *c) {
        return c->source->endpoints[c->endpoint].url;
}

/* --- JSON ---------------------------------------------------------------------- */

static json_object *json_b64(const char *data, size_t len) {
        g_autofree char *b = g_base64_encode((const guchar *) data, len);
        return json_object_new_string(b);
}

static json_object *json_int64_string(int64_t v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, v);
        return json_object_new_string(buf);
}

/* A 64-bit number as the gateway sends it: a string of digits (or a number). */
static int64_t json_get_int64(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v))
                return 0;
        if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);
                char *end;
                long long n;

                errno = 0;
                n = strtoll(s, &end, 10);
                return errno == 0 && end != s && *end == 0 ? (int64_t) n : 0;
        }
        if (json_object_is_type(v, json_type_int))
                return json_object_get_int64(v);
        return 0;
}

static bool json_get_bool(json_object *o, const char *key) {
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

/* Decodes a base64 member; an absent one is empty (the gateway leaves out
 * empty values). Returns NULL only for bad base64. */
static guchar *json_get_bytes(json_object *o, const char *key, gsize *ret_len) {
        json_object *v;
        const char *s;

        *ret_len = 0;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return (guchar *) g_strdup("");
        s = json_object_get_string(v);
        for (const char *p = s; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("+/=", *p))
                        return NULL;
        return g_base64_decode(s, ret_len);
}

static json_object *parse_json(const char *data, size_t len) {
        json_tokener *tok = json_tokener_new();
        json_object *o;

        if (!tok || len > INT_MAX) {
                if (tok)
                        json_tokener_free(tok);
                return NULL;
        }
        o = json_tokener_parse_ex(tok, data, (int) len);
        json_tokener_free(tok);
        return o;
}

/* etcd's error: {"error": "...", "message": "...", "code": N}; or, from
 * the HTTP layer in front of the gateway, a line of text. */
static char *api_error(json_object *o, GBytes *body, unsigned http_status, int *ret_code) {
        const char *m = docker_json_string(o, "message") ?: docker_json_string(o, "error");
        g_autofree char *text = NULL;
        gsize len = 0;
        const char *data = body ? g_bytes_get_data(body, &len) : NULL;

        *ret_code = (int) json_get_int64(o, "code");
        if (m)
                return g_strdup(m);
        if (!o && len > 0) {
                text = g_strndup(data, MIN(len, (gsize) 300));
                g_strstrip(text);
                for (char *p = text; *p; p++)
                        if ((unsigned char) *p < 0x20 || (unsigned char) *p == 0x7f)
                                *p = ' ';
        }
        if (text && *text)
                return g_strdup_printf("HTTP %u: %s", http_status, text);
        return g_strdup_printf("HTTP %u", http_status);
}

/* --- failures and retries --------------------------------------------------------- */

static void log_lost(EtcdSource *e, const char *url, const char *reason) {
        char f_endpoint[300], f_error[600];
        const char *fields[] = { JOYRIDE_FIELD_ETCD_LOST, f_endpoint, f_error, NULL };

        /* Once per distinct reason, not once per retry: an etcd that is away
         * for a day would otherwise fill the journal. */
        if (g_hash_table_contains(e->logged_errors, reason)) {
                log_debug("etcd at %s still not available: %s.", url, reason);
                return;
        }
        if (g_hash_table_size(e->logged_errors) >= 32)
                g_hash_table_remove_all(e->logged_errors);
        g_hash_table_add(e->logged_errors, g_strdup(reason));
        snprintf(f_endpoint, sizeof f_endpoint, "JOYRIDE_ETCD_ENDPOINT=%s", url);
        snprintf(f_error, sizeof f_error, "JOYRIDE_ETCD_ERROR=%s", reason);
        log_struct(LOG_WARNING, fields,
                   "etcd at %s not available: %s. %s; serving the %u name(s) last read from etcd and this "
                   "node's own meanwhile.",
                   url, reason, e->n_endpoints > 1 ? "Trying the other endpoints" : "Retrying with backoff",
                   e->n_remote_records);
}

static gboolean on_retry(gpointer userdata) {
        EtcdSource *e = userdata;

        source_clear(&e->retry_source);
        source_connect(e);
        return G_SOURCE_REMOVE;
}

/* Drops the connection, puts its endpoint on hold and goes on with the one
 * that is free first, the next in the list on a tie. The records read from
 * etcd stay: the sweep of the next successful read removes what is gone. */
static void source_fail(EtcdSource *e, const char *reason) {
        Endpoint *ep = &e->endpoints[e->current];
        int64_t now = g_get_monotonic_time(), best_at = INT64_MAX;
        size_t best = e->current;

        conn_detach(TAKE_PTR(e->conn));
        e->n_failures++;
        e->connected_since_usec = 0;
        g_free(e->last_error);
        e->last_error = g_strdup(reason);
        log_lost(e, ep->url, reason);

        ep->retry_at = now + (int64_t) ep->backoff_msec * 1000;
        ep->backoff_msec = MIN(ep->backoff_msec * 2, BACKOFF_MAX_MSEC);

        for (size_t i = 1; i <= e->n_endpoints; i++) {
                size_t k = (e->current + i) % e->n_endpoints;
                int64_t at = MAX(e->endpoints[k].retry_at, now);
                if (at < best_at) {
                        best_at = at;
                        best = k;
                }
        }
        e->current = best;
        source_clear(&e->retry_source);
        if (best_at <= now) {
                /* From the loop, not from here: a failure inside
                 * source_connect() must not recurse through every endpoint. */
                e->state = ETCD_CONNECTING;
                e->next_retry_usec = 0;
                e->retry_source = source_timeout(e, 0, "etcd-retry", on_retry);
                return;
        }
        e->state = ETCD_DISCONNECTED;
        e->next_retry_usec = (uint64_t) (g_get_real_time() + (best_at - now));
        e->retry_source = source_timeout(e, (unsigned) ((best_at - now + 999) / 1000), "etcd-retry", on_retry);
}

_printf_(2, 3) static void source_failf(EtcdSource *e, const char *format, ...) {
        g_autofree char *reason = NULL;
        va_list ap;

        va_start(ap, format);
        reason = g_strdup_vprintf(format, ap);
        va_end(ap);
        source_fail(e, reason);
}

/* Starts over on the same endpoint: not its fault (a compacted watch, a
 * lost lease, an expired token). Repeated restarts without a success in
 * between count as a failure, so that nothing spins. */
static void source_restart(EtcdSource *e, const char *why) {
        if (++e->quick_restarts > QUICK_RESTARTS_MAX) {
                e->quick_restarts = 0;
                source_failf(e, "%s (again and again)", why);
                return;
        }
        log_info("etcd at %s: %s; reading %s again.", e->endpoints[e->current].url, why, e->prefix);
        conn_detach(TAKE_PTR(e->conn));
        source_connect(e);
}

/* --- requests -------------------------------------------------------------------- */

static void call_free(Call *call) {
        conn_unref(call->conn);
        g_free(call->path);
        g_free(call);
}

static GBytes *json_bytes(json_object *o) {
        const char *json = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        return g_bytes_new(json, strlen(json));
}

static SoupMessage *post_message(EtcdSource *e, const char *url, const char *path, GBytes *body) {
        g_autofree char *uri = g_strconcat(url, path, NULL);
        SoupMessage *msg = soup_message_new(SOUP_METHOD_POST, uri);

        soup_message_set_request_body_from_bytes(msg, "application/json", body);
        if (e->token)
                soup_message_headers_replace(soup_message_get_request_headers(msg), "Authorization", e->token);
        if (e->client_cert)
                soup_message_set_tls_client_certificate(msg, e->client_cert);
        return msg;
}

/* An error the member answered with: some mean "start over", the rest that
 * this endpoint cannot serve us now. */
static void api_error_handle(EtcdSource *e, const char *path, int code, const char *message) {
        if (code == GRPC_UNAUTHENTICATED || strstr(message, "invalid auth token")) {
                g_clear_pointer(&e->token, g_free);
                return source_restart(e, "the authentication token expired");
        }
        if (code == GRPC_NOT_FOUND && strstr(message, "lease not found")) {
                log_warning("etcd lease %" PRIx64
                            " of this node expired (etcd was out of reach for longer than "
                            "LeaseTTL=%" PRIu32 "s?); writing every key again on a new one.",
                            (uint64_t) e->lease_id, e->lease_ttl);
                e->lease_id = 0;
                return source_restart(e, "the lease expired");
        }
        if (code == GRPC_OUT_OF_RANGE && strstr(message, "compacted"))
                return source_restart(e, "the revision being read was compacted");
        if (code == GRPC_INVALID_ARGUMENT && strstr(message, "authentication failed"))
                return source_failf(e, "user '%s' could not authenticate: %s (check [Etcd] User= and PasswordFile=)",
                                    strempty(e->user), message);
        if (strstr(message, "CommonName of client"))
                return source_failf(e,
                                    "%s: %s (etcd's gateway refuses client certificates with a Common Name: "
                                    "issue [Etcd] CertFile= without one)",
                                    path, message);
        if (code == GRPC_PERMISSION_DENIED)
                return source_failf(e, "%s: %s (the user needs read and write access to %s/)", path, message,
                                    e->prefix);
        source_failf(e, "%s: %s", path, message);
}

static void call_api_error(Call *call, unsigned status, json_object *reply, GBytes *body) {
        g_autofree char *message = NULL;
        int code = 0;

        message = api_error(reply, body, status, &code);
        api_error_handle(call->conn->source, call->path, code, message);
}

static void on_call_reply(GObject *object, GAsyncResult *res, gpointer userdata) {
        Call *call = userdata;
        EtcdSource *e = call->conn->source;
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) body = soup_session_send_and_read_finish(SOUP_SESSION(object), res, &error);
        json_object *reply = NULL;
        SoupMessage *msg;
        unsigned status;
        const char *data;
        gsize len;

        if (!e)
                goto out;
        if (!body) {
                source_failf(e, "%s: %s", call->path, error->message);
                goto out;
        }
        msg = soup_session_get_async_result_message(SOUP_SESSION(object), res);
        status = soup_message_get_status(msg);
        if (status == SOUP_STATUS_OK && call->ok_raw) {
                call->ok_raw(call, TAKE_PTR(body));
                goto out;
        }
        data = g_bytes_get_data(body, &len);
        reply = parse_json(data, len);
        if (status != SOUP_STATUS_OK) {
                call_api_error(call, status, reply, body);
                goto out;
        }
        if (!reply || !json_object_is_type(reply, json_type_object)) {
                source_failf(e, "%s: the answer is not a JSON object", call->path);
                goto out;
        }
        call->ok(call, reply);
out:
        json_object_put(reply);
        call_free(call);
}

static void conn_post_bytes(EtcdConn *c, const char *path, GBytes *body, CallFunc ok, CallRawFunc ok_raw) {
        EtcdSource *e = c->source;
        g_autoptr(SoupMessage) msg = post_message(e, conn_url(c), path, body);
        Call *call = g_new0(Call, 1);

        *call = (Call) { .conn = conn_ref(c), .path = g_strdup(path), .ok = ok, .ok_raw = ok_raw };
        soup_session_send_and_read_async(e->session, msg, G_PRIORITY_DEFAULT, c->cancellable, on_call_reply, call);
}

static void conn_post_full(EtcdConn *c, const char *path, json_object *body, CallFunc ok, CallRawFunc ok_raw) {
        g_autoptr(GBytes) bytes = json_bytes(body);

        json_object_put(body);
        conn_post_bytes(c, path, bytes, ok, ok_raw);
}

/* Sends body (taken) to the connection's endpoint; ok gets the reply if it
 * is a 200 with a JSON object, every other outcome is handled here. */
static void conn_post(EtcdConn *c, const char *path, json_object *body, CallFunc ok) {
        conn_post_full(c, path, body, ok, NULL);
}

/* --- records read from etcd --------------------------------------------------------- */

static char *owner_of(const char *key) {
        return g_strconcat(OWNER_PREFIX, key, NULL);
}

static void remote_drop(EtcdSource *e, const char *key) {
        RemoteKey *rk = g_hash_table_lookup(e->remote, key);
        g_autofree char *owner = owner_of(key);

        if (!rk)
                return;
        if (rk->n_records > 0)
                e->n_remote_records--;
        (void) store_remove_owner(e->store, owner);
        g_hash_table_remove(e->remote, key);
}

/* Logs a key that cannot be served, at most SKIP_WARNINGS_PER_MINUTE a
 * minute: another tool may write thousands of them. */
static void log_skipped(EtcdSource *e, const char *key, size_t key_len, int level, const char *what, const char *why) {
        int64_t now = g_get_monotonic_time();
        g_autofree char *printable = skydns_key_printable(key, key_len);

        if (now - e->skip_window_start > 60 * G_USEC_PER_SEC) {
                if (e->skip_suppressed > 0)
                        log_warning(
                                "... and %u more etcd key(s) skipped or partly served in the last minute "
                                "(debug level shows them).",
                                e->skip_suppressed);
                e->skip_window_start = now;
                e->skip_logged = 0;
                e->skip_suppressed = 0;
        }
        if (e->skip_logged < SKIP_WARNINGS_PER_MINUTE) {
                e->skip_logged++;
                log_full(level, "etcd key %s: %s: %s.", printable, what, why);
        } else {
                e->skip_suppressed++;
                log_debug("etcd key %s: %s: %s.", printable, what, why);
        }
}

/* What applying a pair did. */
typedef enum ApplyResult {
        APPLY_SAME,    /* held at this revision already */
        APPLY_NEW,     /* a key not held before */
        APPLY_CHANGED, /* a key held at another revision */
        APPLY_OTHER,   /* this node's own, or unusable */
} ApplyResult;

/* "etcd:<key>", in a buffer kept for it: no allocation per key. */
static const char *owner_name(EtcdSource *e, const char *key) {
        g_string_assign(e->owner_buf, OWNER_PREFIX);
        g_string_append(e->owner_buf, key);
        return e->owner_buf->str;
}

/* Applies one pair: skipped if it is this node's (its lease), unchanged if
 * its revision is, else the key's records replaced (mark, add, sweep). A
 * key held for the first time takes kv's key. */
static ApplyResult remote_apply(EtcdSource *e, EtcdKv *kv) {
        const char *owner;
        RemoteKey *rk;
        unsigned added = 0;
        ApplyResult result;

        if (kv->bad) {
                e->n_skipped++;
                log_skipped(e, kv->key ?: "?", kv->key ? kv->key_len : 1, LOG_WARNING, "skipped", kv->bad);
                return APPLY_OTHER;
        }
        if (e->lease_id != 0 && kv->lease == e->lease_id) {
                /* Ours: served locally already. It may have been someone
                 * else's before (our last run's, on its old lease). */
                remote_drop(e, kv->key);
                return APPLY_OTHER;
        }
        rk = g_hash_table_lookup(e->remote, kv->key);
        if (rk && rk->mod_revision == kv->mod_revision) {
                rk->gen = e->gen;
                return APPLY_SAME;
        }
        result = rk ? APPLY_CHANGED : APPLY_NEW;

        if (kv->r == -ENOMEM) {
                log_error("Out of memory reading etcd key %s.", kv->key);
                return APPLY_OTHER;
        }
        if (kv->r < 0) {
                e->n_skipped++;
                log_skipped(e, kv->key, kv->key_len, LOG_WARNING, "skipped", kv->error);
        } else if (kv->entry.note)
                log_skipped(e, kv->key, kv->key_len, LOG_NOTICE, "partly served", kv->entry.note);

        owner = owner_name(e, kv->key);
        /* A key held for the first time has no records to mark or sweep. */
        if (rk)
                store_mark_owner(e->store, owner);
        for (size_t i = 0; kv->r >= 0 && i < kv->entry.n_records; i++) {
                const char *why = NULL;
                int q = store_add(e->store, kv->entry.name, kv->entry.records[i].type, kv->entry.records[i].value,
                                  kv->entry.ttl, owner, 0, NULL, &why);
                if (q < 0)
                        log_skipped(e, kv->key, kv->key_len, LOG_WARNING, "record refused", why ?: strerror(-q));
                else
                        added++;
        }
        if (rk)
                (void) store_sweep_owner(e->store, owner);

        if (!rk) {
                rk = g_new0(RemoteKey, 1);
                g_hash_table_insert(e->remote, TAKE_PTR(kv->key), rk);
        }
        if (rk->n_records > 0)
                e->n_remote_records--;
        *rk = (RemoteKey) { .mod_revision = kv->mod_revision, .gen = e->gen, .n_records = added };
        if (added > 0)
                e->n_remote_records++;
        return result;
}

static void apply_kv(EtcdSource *e, json_object *o) {
        _cleanup_(etcd_kv_done) EtcdKv kv = {};
        g_autofree guchar *key = NULL, *value = NULL;
        gsize key_len = 0, value_len = 0;
        int64_t lease = json_get_int64(o, "lease");

        key = json_get_bytes(o, "key", &key_len);
        /* This node's own writes come back through the watch: the key is
         * all they need (a record held from our last run's lease goes). */
        if (e->lease_id != 0 && lease == e->lease_id) {
                if (key && key_len > 0 && !memchr(key, 0, key_len) && g_hash_table_size(e->remote) > 0) {
                        g_autofree char *k = g_strndup((const char *) key, key_len);
                        remote_drop(e, k);
                }
                return;
        }
        value = json_get_bytes(o, "value", &value_len);
        if (!key || !value)
                kv = (EtcdKv) { .bad = "a key without a name, or not in base64" };
        else
                etcd_kv_set(&kv, (const char *) key, key_len, (const char *) value, value_len,
                            json_get_int64(o, "mod_revision"), lease, e->prefix, e->default_ttl);
        (void) remote_apply(e, &kv);
}

/* --- publishing this node's records --------------------------------------------------- */

typedef struct LocalState {
        const DirtyRecord *want;
        bool found;
        uint32_t ttl;
} LocalState;

static int local_find(const Record *r, void *userdata) {
        LocalState *st = userdata;

        if (r->type != st->want->type || !store_owner_is_local(r->owner) || !streq_ptr(r->value, st->want->value))
                return 0;
        st->ttl = st->found ? MIN(st->ttl, r->ttl) : r->ttl;
        st->found = true;
        return 0;
}

/* Works out what etcd should hold for one changed record: the value with
 * the lowest TTL any local source gives it, or nothing. */
static void dirty_resolve(EtcdSource *e, const char *key, const DirtyRecord *d) {
        LocalState st = { .want = d };
        g_autofree char *json = NULL;
        const char *cur;

        (void) store_foreach(e->store, d->name, NULL, local_find, &st);
        if (st.found && skydns_record_value(d->name, d->type, d->value, st.ttl, &json) < 0) {
                log_debug("Not publishing %s %s %s to etcd: the SkyDNS layout cannot hold it.", d->name,
                          strna(dns_type_to_string(d->type)), d->value);
                st.found = false;
        }
        cur = g_hash_table_lookup(e->wanted, key);
        if (streq_ptr(cur, json))
                return;
        if (json)
                g_hash_table_replace(e->wanted, g_strdup(key), TAKE_PTR(json));
        else
                g_hash_table_remove(e->wanted, key);
        g_hash_table_add(e->pending, g_strdup(key));
}

static gboolean on_flush(gpointer userdata) {
        EtcdSource *e = userdata;
        GHashTableIter it;
        gpointer key, value;
        unsigned n = 0;

        g_hash_table_iter_init(&it, e->dirty);
        while (n++ < DIRTY_BATCH && g_hash_table_iter_next(&it, &key, &value)) {
                dirty_resolve(e, key, value);
                g_hash_table_iter_remove(&it);
        }
        txn_send_next(e);
        if (g_hash_table_size(e->dirty) > 0)
                return G_SOURCE_CONTINUE;
        g_source_unref(e->flush_source);
        e->flush_source = NULL;
        return G_SOURCE_REMOVE;
}

static void flush_schedule(EtcdSource *e) {
        if (e->flush_source || e->stopping)
                return;
        e->flush_source = g_idle_source_new();
        g_source_set_name(e->flush_source, "etcd-flush");
        g_source_set_callback(e->flush_source, on_flush, e, NULL);
        g_source_attach(e->flush_source, e->context);
}

static void on_store_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        EtcdSource *e = userdata;
        DirtyRecord *d;
        char *key = NULL;

        if (!store_owner_is_local(r->owner) || !r->value)
                return;
        if (skydns_record_key(e->prefix, r->name, e->node_id, r->type, r->value, &key) < 0)
                return;
        if (g_hash_table_contains(e->dirty, key)) {
                g_free(key);
                return;
        }
        d = g_new0(DirtyRecord, 1);
        *d = (DirtyRecord) { .name = g_strdup(r->name), .value = g_strdup(r->value), .type = r->type };
        g_hash_table_insert(e->dirty, key, d);
        flush_schedule(e);
}

static int mark_local(const Record *r, void *userdata) {
        if (store_owner_is_local(r->owner))
                on_store_change(NULL, RECORD_ADDED, r, userdata);
        return 0;
}

static void on_txn(Call *call, GBytes *taken) {
        g_autoptr(GBytes) body = taken;
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        g_autoptr(GPtrArray) ops = TAKE_PTR(c->txn);
        static const char succeeded[] = "\"succeeded\":true";
        gsize len;
        const char *data = g_bytes_get_data(body, &len);

        c->txn_in_flight = false;
        /* {"header":{...},"succeeded":true,"responses":[...]}: no need to
         * parse a response per key to know. A transaction without a compare
         * always succeeds. */
        if (!data || !memmem(data, len, succeeded, strlen(succeeded))) {
                source_fail(e, "/v3/kv/txn: the transaction did not succeed");
                return;
        }
        e->n_txns++;
        for (guint i = 0; i < ops->len; i++) {
                TxnOp *op = ops->pdata[i];
                if (streq_ptr(g_hash_table_lookup(e->wanted, op->key), op->json))
                        g_hash_table_remove(e->pending, op->key);
        }
        txn_send_next(e);
}

static void string_append_b64(GString *s, const char *data, size_t len) {
        gsize old = s->len;
        gint state = 0, save = 0;
        gsize n;

        /* Encoded in place: no string per key. */
        g_string_set_size(s, old + (len / 3 + 1) * 4 + 4);
        n = g_base64_encode_step((const guchar *) data, len, FALSE, s->str + old, &state, &save);
        n += g_base64_encode_close(FALSE, s->str + old + n, &state, &save);
        g_string_truncate(s, old + n);
}

/* Writes the next batch of pending keys, if the connection may. The body
 * is written as text: json-c objects per key cost more than the rest of
 * publishing together. */
static void txn_send_next(EtcdSource *e) {
        EtcdConn *c = e->conn;
        g_autoptr(GString) body = NULL;
        g_autoptr(GBytes) bytes = NULL;
        GHashTableIter it;
        gpointer key;
        char lease[32];

        if (!c || !c->lease_ready || c->txn_in_flight || e->stopping || g_hash_table_size(e->pending) == 0)
                return;

        snprintf(lease, sizeof lease, "%" PRId64, e->lease_id);
        body = g_string_sized_new(64 * 1024);
        g_string_append(body, "{\"success\":[");
        c->txn = g_ptr_array_new_with_free_func(txn_op_free);
        g_hash_table_iter_init(&it, e->pending);
        while (c->txn->len < TXN_OPS_MAX && body->len < TXN_BYTES_MAX && g_hash_table_iter_next(&it, &key, NULL)) {
                const char *json = g_hash_table_lookup(e->wanted, key);
                TxnOp *t = g_new0(TxnOp, 1);

                if (c->txn->len > 0)
                        g_string_append_c(body, ',');
                g_string_append(body, json ? "{\"request_put\":{\"key\":\"" : "{\"request_delete_range\":{\"key\":\"");
                string_append_b64(body, key, strlen(key));
                if (json) {
                        g_string_append(body, "\",\"value\":\"");
                        string_append_b64(body, json, strlen(json));
                        g_string_append_printf(body, "\",\"lease\":\"%s", lease);
                }
                g_string_append(body, "\"}}");
                *t = (TxnOp) { .key = g_strdup(key), .json = g_strdup(json) };
                g_ptr_array_add(c->txn, t);
        }
        g_string_append(body, "]}");
        bytes = g_string_free_to_bytes(TAKE_PTR(body));
        c->txn_in_flight = true;
        conn_post_bytes(c, "/v3/kv/txn", bytes, NULL, on_txn);
}

/* --- the lease ----------------------------------------------------------------------------- */

static void on_keepalive(Call *call, json_object *reply) {
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        json_object *result = NULL;

        c->keepalive_in_flight = false;
        /* A stream reply: {"result": {"ID": ..., "TTL": ...}}; no TTL: expired. */
        (void) json_object_object_get_ex(reply, "result", &result);
        if (json_get_int64(result ?: reply, "TTL") <= 0) {
                log_warning("etcd lease %" PRIx64
                            " of this node expired (etcd was out of reach for longer than "
                            "LeaseTTL=%" PRIu32 "s?); writing every key again on a new one.",
                            (uint64_t) e->lease_id, e->lease_ttl);
                e->lease_id = 0;
                source_restart(e, "the lease expired");
        }
}

static gboolean on_keepalive_timer(gpointer userdata) {
        EtcdSource *e = userdata;
        EtcdConn *c = e->conn;
        json_object *body;

        if (!c || !c->lease_ready || c->keepalive_in_flight || e->lease_id == 0)
                return G_SOURCE_CONTINUE;
        body = json_object_new_object();
        json_object_object_add(body, "ID", json_int64_string(e->lease_id));
        c->keepalive_in_flight = true;
        conn_post(c, "/v3/lease/keepalive", body, on_keepalive);
        return G_SOURCE_CONTINUE;
}

static void lease_ready(EtcdConn *c) {
        EtcdSource *e = c->source;

        c->lease_ready = true;
        if (!e->keepalive_source)
                e->keepalive_source =
                        source_timeout(e, MAX(e->lease_ttl * 1000u / 3u, 500u), "etcd-keepalive", on_keepalive_timer);
        txn_send_next(e);
}

/* --- reading the prefix ----------------------------------------------------------------------- */

static void watch_open(EtcdConn *c, int64_t revision);

/* A page of the range. A worker thread parses it (JSON, base64, the SkyDNS
 * mapping: the costly part, pure); the loop then applies it to the store a
 * batch at a time, so that answering never waits long behind a resync, and
 * hands it back to the worker to be freed. The next page is asked for as
 * soon as this one has arrived. */
struct RangePage {
        WorkerJob job;  /* first: the worker parses the page, later frees it */
        EtcdConn *conn; /* a reference while the page is parsed; the loop's alone */
        GBytes *body;
        bool protobuf; /* a RangeResponse over gRPC, not the gateway's JSON */
        char *prefix;
        uint32_t default_ttl;
        int64_t own_lease;
        /* from the worker */
        char *error; /* the page is unusable */
        EtcdRangePage parsed;
        bool next_asked; /* the next page was asked for before this one was parsed */
        size_t applied;
};

static void range_page_free(gpointer p) {
        RangePage *page = p;

        if (!page)
                return;
        if (page->body)
                g_bytes_unref(page->body);
        g_free(page->prefix);
        g_free(page->error);
        etcd_range_page_done(&page->parsed);
        g_free(page);
}

/* On the worker thread: touches the page only. */
static void range_parse_run(WorkerJob *j) {
        RangePage *page = (RangePage *) j;
        gsize len;
        const char *data = g_bytes_get_data(page->body, &len);

        if (page->protobuf)
                (void) etcd_range_parse_pb(data, len, page->prefix, page->default_ttl, page->own_lease, &page->parsed,
                                           &page->error);
        else
                (void) etcd_range_parse(data, len, page->prefix, page->default_ttl, page->own_lease, &page->parsed,
                                        &page->error);
        g_clear_pointer(&page->body, g_bytes_unref);
}

static void range_free_run(WorkerJob *j) {
        etcd_range_page_done(&((RangePage *) j)->parsed);
}

static void range_free_done(WorkerJob *j) {
        range_page_free(j);
}

/* An applied page goes back to the worker: its tens of thousands of small
 * allocations are freed there, by the thread that made them, beside the
 * loop rather than on it. */
static void range_page_release(EtcdSource *e, RangePage *page) {
        page->job = (WorkerJob) { .run = range_free_run, .done = range_free_done, .discard = range_free_done };
        worker_submit(e->worker, &page->job);
}

static void range_pump(EtcdConn *c);
static void apply_schedule(EtcdConn *c);

static void range_parse_discard(WorkerJob *j) {
        RangePage *page = (RangePage *) j;

        conn_unref(TAKE_PTR(page->conn));
        range_page_free(page);
}

/* Back on the loop, in the order the pages were handed over. */
static void range_parse_done(WorkerJob *j) {
        RangePage *page = (RangePage *) j;
        EtcdConn *c = TAKE_PTR(page->conn);
        EtcdSource *e = c->source;

        if (!e) {
                range_page_free(page);
                goto out;
        }
        c->pages_parsing--;
        if (page->error) {
                g_autofree char *error = g_strdup(page->error);
                range_page_free(page);
                source_fail(e, error);
                goto out;
        }
        if (c->range_revision == 0)
                c->range_revision = page->parsed.revision;
        c->range_keys += page->parsed.n_kvs;
        c->range_pages++;
        if (page->parsed.more && !page->next_asked) {
                g_free(c->range_next);
                c->range_next = TAKE_PTR(page->parsed.next_key);
                c->range_next_len = page->parsed.next_len;
        }
        g_queue_push_tail(c->pages, page);
        range_pump(c);
        apply_schedule(c);
out:
        conn_unref(c);
}

/* Where the page after this one starts, found without parsing the page, so
 * that etcd works on it while a worker parses this one: the last key of the
 * page, as etcd sorts them, is the last "key" member in the reply. Returns
 * false when there is no next page, or when it cannot tell (the parse then
 * says where the next page starts). */
static bool range_next_early(EtcdConn *c, GBytes *body) {
        static const char needle[] = "\"key\":\"";
        gsize len, b64_len, key_len;
        const char *data = g_bytes_get_data(body, &len), *k, *end;
        g_autofree char *b64 = NULL;
        g_autofree guchar *key = NULL;

        if (len == 0 || !memmem(data, len, "\"more\":true", strlen("\"more\":true")))
                return false;
        k = g_strrstr_len(data, (gssize) len, needle);
        if (!k)
                return false;
        k += strlen(needle);
        end = memchr(k, '"', len - (size_t) (k - data));
        if (!end)
                return false;
        b64_len = (gsize) (end - k);
        b64 = g_strndup(k, b64_len);
        for (const char *p = b64; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("+/=", *p))
                        return false;
        key = g_base64_decode(b64, &key_len);
        if (!key || key_len == 0)
                return false;
        g_free(c->range_next);
        c->range_next = g_malloc(key_len + 1);
        memcpy(c->range_next, key, key_len);
        c->range_next[key_len] = 0;
        c->range_next_len = key_len + 1;
        return true;
}

/* A page arrived (body taken): to the worker with it, and on to the next. */
static void range_page_arrived(EtcdConn *c, GBytes *body, bool protobuf) {
        EtcdSource *e = c->source;
        RangePage *page = g_new0(RangePage, 1);

        *page = (RangePage) {
                .job = { .run = range_parse_run, .done = range_parse_done, .discard = range_parse_discard },
                .conn = conn_ref(c),
                .body = body,
                .protobuf = protobuf,
                .prefix = g_strdup(e->prefix),
                .default_ttl = e->default_ttl,
                .own_lease = e->lease_id,
        };
        c->range_requesting = false;
        g_clear_pointer(&c->range_asked, g_free);
        if (protobuf) {
                g_free(c->range_next);
                c->range_next = NULL;
                page->next_asked = etcd_range_pb_next(g_bytes_get_data(body, NULL), g_bytes_get_size(body),
                                                      &c->range_next, &c->range_next_len);
        } else
                page->next_asked = range_next_early(c, body);
        c->pages_parsing++;
        worker_submit(e->worker, &page->job);
        range_pump(c);
}

static void on_range_body(Call *call, GBytes *body) {
        range_page_arrived(call->conn, body, false);
}

static void on_grpc_range(int status, const char *message, GBytes *reply, void *userdata) {
        Call *call = userdata;
        g_autoptr(GBytes) body = reply;
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        Endpoint *ep;

        if (!e)
                goto out;
        if (status == 0) {
                range_page_arrived(c, TAKE_PTR(body), true);
                goto out;
        }
        if (status > 0) {
                api_error_handle(e, call->path, status, message);
                goto out;
        }
        /* No gRPC answer at all (a proxy that speaks HTTP/1.1 only, a
         * member gone): the same page again through the JSON gateway, which
         * fails in its turn if the member is gone. */
        ep = &e->endpoints[c->endpoint];
        log_full(ep->told_no_grpc ? LOG_DEBUG : LOG_INFO,
                 "etcd at %s: no gRPC (%s); reading %s/ through the JSON gateway, which costs etcd about ten times "
                 "the CPU.",
                 ep->url, message, e->prefix);
        ep->told_no_grpc = true;
        c->no_grpc = true;
        c->grpc = grpc_client_unref(c->grpc);
        c->range_requesting = false;
        g_free(c->range_next);
        c->range_next = TAKE_PTR(c->range_asked);
        c->range_next_len = c->range_asked_len;
        range_pump(c);
out:
        call_free(call);
}

/* Asks for the next page, unless one is on its way or enough wait: over
 * gRPC, or through the JSON gateway where gRPC failed. */
static void range_pump(EtcdConn *c) {
        EtcdSource *e = c->source;
        json_object *body;

        if (c->range_requesting || !c->range_next ||
            g_queue_get_length(c->pages) + c->pages_parsing >= RANGE_PAGES_AHEAD)
                return;
        c->range_requesting = true;
        if (!c->no_grpc && !c->grpc)
                c->grpc = grpc_client_new(conn_url(c), e->ca, e->client_cert, REQUEST_TIMEOUT_SEC);
        if (!c->no_grpc && c->grpc) {
                g_autoptr(GBytes) request = NULL;
                Call *call = g_new0(Call, 1);

                /* Any member that answered the first page holds its revision:
                 * no need for a quorum read of every page. */
                request = etcd_range_request_pb(c->range_next, c->range_next_len, e->range_end, strlen(e->range_end),
                                                e->range_page_keys, c->range_revision, c->range_revision > 0);
                *call = (Call) { .conn = conn_ref(c), .path = g_strdup("/etcdserverpb.KV/Range") };
                g_free(c->range_asked);
                c->range_asked = TAKE_PTR(c->range_next);
                c->range_asked_len = c->range_next_len;
                grpc_client_call(c->grpc, call->path, e->token, request, on_grpc_range, call);
                return;
        }
        body = json_object_new_object();
        json_object_object_add(body, "key", json_b64(c->range_next, c->range_next_len));
        json_object_object_add(body, "range_end", json_b64(e->range_end, strlen(e->range_end)));
        json_object_object_add(body, "limit", json_int64_string(e->range_page_keys));
        if (c->range_revision > 0) {
                json_object_object_add(body, "revision", json_int64_string(c->range_revision));
                json_object_object_add(body, "serializable", json_object_new_boolean(true));
        }
        g_clear_pointer(&c->range_next, g_free);
        conn_post_full(c, "/v3/kv/range", body, NULL, on_range_body);
}

/* The whole prefix is read and applied: what was not seen went away. The
 * keys held are looked through a slice per turn, and those to remove then
 * removed a batch per turn (nothing else changes the table meanwhile: the
 * watch opens after, from the range's revision + 1, so that no change made
 * meanwhile is missed). Returns true when done. */
static bool sweep_step(EtcdConn *c) {
        EtcdSource *e = c->source;
        gpointer key, value;
        unsigned n = 0;

        if (!c->gone) {
                c->gone = g_ptr_array_new_with_free_func(g_free);
                g_hash_table_iter_init(&c->gone_iter, e->remote);
        }
        if (!c->gone_listed) {
                for (; n < SWEEP_LIST_BATCH; n++) {
                        if (!g_hash_table_iter_next(&c->gone_iter, &key, &value)) {
                                c->gone_listed = true;
                                break;
                        }
                        if (((RemoteKey *) value)->gen != e->gen)
                                g_ptr_array_add(c->gone, g_strdup(key));
                }
                return false;
        }
        for (; n < APPLY_BATCH && c->gone_done < c->gone->len; n++)
                remote_drop(e, c->gone->pdata[c->gone_done++]);
        return c->gone_done == c->gone->len;
}

static void range_finish(EtcdConn *c) {
        EtcdSource *e = c->source;
        double secs = (double) (g_get_monotonic_time() - c->range_started) / (double) G_USEC_PER_SEC;

        log_info("Read %s/ at revision %" PRId64
                 " %s: %zu key(s) in %u page(s) in %.2f s (%u new, %u changed, %u "
                 "gone).",
                 e->prefix, c->range_revision, c->no_grpc ? "through the JSON gateway" : "over gRPC", c->range_keys,
                 c->range_pages, secs, c->range_new, c->range_changed, c->gone ? c->gone->len : 0u);
        e->n_resyncs++;
        e->revision = MAX(e->revision, c->range_revision);
        /* Until the next resync, the JSON gateway does for the rest. */
        grpc_client_close(c->grpc);
        c->grpc = grpc_client_unref(c->grpc);
        watch_open(c, c->range_revision + 1);
}

static gboolean on_apply(gpointer userdata) {
        EtcdConn *c = userdata;
        EtcdSource *e = c->source;
        unsigned n = 0;
        RangePage *page;

        while (n < APPLY_BATCH && (page = g_queue_peek_head(c->pages))) {
                for (; n < APPLY_BATCH && page->applied < page->parsed.n_kvs; n++)
                        switch (remote_apply(e, &page->parsed.kvs[page->applied++])) {
                        case APPLY_NEW:
                                c->range_new++;
                                break;
                        case APPLY_CHANGED:
                                c->range_changed++;
                                break;
                        default:
                                break;
                        }
                if (page->applied == page->parsed.n_kvs) {
                        range_page_release(e, g_queue_pop_head(c->pages));
                        range_pump(c);
                }
        }
        if (!g_queue_is_empty(c->pages))
                return G_SOURCE_CONTINUE;
        if (c->range_requesting || c->range_next || c->pages_parsing > 0) {
                source_clear(&c->apply_source);
                return G_SOURCE_REMOVE; /* more pages to come */
        }
        if (!sweep_step(c))
                return G_SOURCE_CONTINUE;
        source_clear(&c->apply_source);
        range_finish(c);
        return G_SOURCE_REMOVE;
}

static void apply_schedule(EtcdConn *c) {
        if (c->apply_source)
                return;
        c->apply_source = g_idle_source_new();
        g_source_set_name(c->apply_source, "etcd-apply");
        g_source_set_callback(c->apply_source, on_apply, c, NULL);
        g_source_attach(c->apply_source, c->source->context);
}

static void range_start(EtcdConn *c) {
        EtcdSource *e = c->source;

        e->gen++;
        c->range_revision = 0;
        c->range_started = g_get_monotonic_time();
        g_free(c->range_next);
        c->range_next = g_strdup(e->range_key);
        c->range_next_len = strlen(e->range_key);
        range_pump(c);
}

/* --- the watch --------------------------------------------------------------------------------- */

static void connected(EtcdConn *c) {
        EtcdSource *e = c->source;
        Endpoint *ep = &e->endpoints[c->endpoint];
        char f_endpoint[300], f_prefix[600];
        const char *fields[] = { JOYRIDE_FIELD_ETCD_CONNECTED, f_endpoint, f_prefix, NULL };
        bool again = e->ever_connected;

        ep->backoff_msec = BACKOFF_MIN_MSEC;
        ep->retry_at = 0;
        e->quick_restarts = 0;
        if (e->state == ETCD_CONNECTED)
                return; /* a resync on a healthy connection */
        e->state = ETCD_CONNECTED;
        e->ever_connected = true;
        e->connected_since_usec = (uint64_t) g_get_real_time();
        e->next_retry_usec = 0;
        g_clear_pointer(&e->last_error, g_free);
        g_hash_table_remove_all(e->logged_errors);

        snprintf(f_endpoint, sizeof f_endpoint, "JOYRIDE_ETCD_ENDPOINT=%s", ep->url);
        snprintf(f_prefix, sizeof f_prefix, "JOYRIDE_ETCD_PREFIX=%s", e->prefix);
        log_struct(LOG_INFO, fields,
                   "%s etcd at %s (revision %" PRId64 "): serving %u name(s) from %s/, publishing %u of this node's.",
                   again ? "Reconnected to" : "Connected to", ep->url, e->revision, e->n_remote_records, e->prefix,
                   g_hash_table_size(e->wanted));
}

static void apply_event(EtcdSource *e, json_object *ev) {
        json_object *kv = NULL;
        const char *type = docker_json_string(ev, "type");

        if (!json_object_object_get_ex(ev, "kv", &kv))
                return;
        e->n_events++;
        if (streq_ptr(type, "DELETE")) {
                g_autofree guchar *key = NULL;
                g_autofree char *k = NULL;
                gsize len;

                key = json_get_bytes(kv, "key", &len);
                if (!key || len == 0 || memchr(key, 0, len))
                        return;
                k = g_strndup((const char *) key, len);
                remote_drop(e, k);
                /* One of ours, gone while we still want it (etcdctl del, or
                 * our lease expired): write it again. */
                if (g_hash_table_contains(e->wanted, k) && !g_hash_table_contains(e->pending, k)) {
                        g_hash_table_add(e->pending, g_strdup(k));
                        txn_send_next(e);
                }
                return;
        }
        apply_kv(e, kv);
}

static int on_watch_value(json_object *o, void *userdata) {
        EtcdConn *c = userdata;
        EtcdSource *e = c->source;
        json_object *result = NULL, *events = NULL, *header = NULL, *err = NULL;
        int64_t revision;

        if (!e) {
                json_object_put(o);
                return -ECANCELED;
        }
        if (json_object_object_get_ex(o, "error", &err)) {
                const char *m = docker_json_string(err, "message") ?: json_object_get_string(err);
                g_autofree char *msg = g_strdup_printf("/v3/watch: %s", strna(m));
                json_object_put(o);
                source_fail(e, msg);
                return -ECANCELED;
        }
        if (!json_object_object_get_ex(o, "result", &result)) {
                json_object_put(o);
                return 0;
        }
        if (json_get_bool(result, "canceled")) {
                int64_t compacted = json_get_int64(result, "compact_revision");
                g_autofree char *reason = g_strdup(docker_json_string(result, "cancel_reason"));

                json_object_put(o);
                if (compacted > 0) {
                        g_autofree char *why = g_strdup_printf("revision %" PRId64 " was compacted (up to %" PRId64 ")",
                                                               e->revision + 1, compacted);
                        source_restart(e, why);
                } else if (reason && strstr(reason, "PermissionDenied"))
                        source_failf(e, "/v3/watch: %s (the user needs read and write access to %s/)", reason,
                                     e->prefix);
                else
                        source_failf(e, "/v3/watch: cancelled: %s", strna(reason));
                return -ECANCELED;
        }
        if (json_get_bool(result, "created"))
                connected(c);

        (void) json_object_object_get_ex(result, "header", &header);
        revision = json_get_int64(header, "revision");
        if (json_object_object_get_ex(result, "events", &events) && json_object_is_type(events, json_type_array)) {
                size_t n = json_object_array_length(events);
                for (size_t i = 0; i < n && c->source; i++)
                        apply_event(e, json_object_array_get_idx(events, i));
        }
        if (c->source && revision > e->revision)
                e->revision = revision;
        json_object_put(o);
        return c->source ? 0 : -ECANCELED;
}

static void watch_read_next(EtcdConn *c);

static void on_watch_read(GObject *object, GAsyncResult *res, gpointer userdata) {
        EtcdConn *c = userdata;
        EtcdSource *e = c->source;
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(object), res, &error);
        const char *data, *why = NULL;
        gsize len;
        int r;

        if (!e)
                goto out;
        if (!bytes) {
                source_failf(e, "/v3/watch: %s", error->message);
                goto out;
        }
        data = g_bytes_get_data(bytes, &len);
        if (len == 0) {
                source_fail(e, "/v3/watch: the member closed the stream");
                goto out;
        }
        r = docker_json_feed(&c->watch_json, data, len, on_watch_value, c, &why);
        if ((r == -EBADMSG || r == -EMSGSIZE) && c->source)
                source_failf(e, "/v3/watch: %s", why);
        else if (r >= 0 && c->source)
                watch_read_next(c);
out:
        conn_unref(c);
}

static void watch_read_next(EtcdConn *c) {
        g_input_stream_read_bytes_async(c->watch, WATCH_READ_SIZE, G_PRIORITY_DEFAULT, c->cancellable, on_watch_read,
                                        conn_ref(c));
}

static void on_watch_open(GObject *object, GAsyncResult *res, gpointer userdata) {
        EtcdConn *c = userdata;
        EtcdSource *e = c->source;
        g_autoptr(GError) error = NULL;
        g_autoptr(GInputStream) stream = soup_session_send_finish(SOUP_SESSION(object), res, &error);
        unsigned status;

        if (!e)
                goto out;
        if (!stream) {
                source_failf(e, "/v3/watch: %s", error->message);
                goto out;
        }
        status = soup_message_get_status(c->watch_msg);
        if (status != SOUP_STATUS_OK) {
                source_failf(e, "/v3/watch: HTTP %u %s", status,
                             strempty(soup_message_get_reason_phrase(c->watch_msg)));
                goto out;
        }
        c->watch = TAKE_PTR(stream);
        if (docker_json_stream_init(&c->watch_json, WATCH_VALUE_MAX) < 0) {
                source_fail(e, "out of memory");
                goto out;
        }
        watch_read_next(c);
out:
        conn_unref(c);
}

static void watch_open(EtcdConn *c, int64_t revision) {
        EtcdSource *e = c->source;
        json_object *body = json_object_new_object(), *create = json_object_new_object();
        g_autoptr(GBytes) bytes = NULL;

        json_object_object_add(create, "key", json_b64(e->range_key, strlen(e->range_key)));
        json_object_object_add(create, "range_end", json_b64(e->range_end, strlen(e->range_end)));
        json_object_object_add(create, "start_revision", json_int64_string(revision));
        json_object_object_add(body, "create_request", create);
        bytes = json_bytes(body);
        json_object_put(body);
        c->watch_msg = post_message(e, conn_url(c), "/v3/watch", bytes);
        soup_session_send_async(e->watch_session, c->watch_msg, G_PRIORITY_DEFAULT, c->cancellable, on_watch_open,
                                conn_ref(c));
}

/* --- connecting ----------------------------------------------------------------------------------- */

static void on_grant(Call *call, json_object *reply) {
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        GHashTableIter it;
        gpointer key;
        int64_t id = json_get_int64(reply, "ID");

        if (id == 0)
                return source_failf(e, "/v3/lease/grant: %s", docker_json_string(reply, "error") ?: "no lease ID");
        e->lease_id = id;
        log_debug("etcd lease %" PRIx64 " granted for %" PRIu32 "s.", (uint64_t) id, e->lease_ttl);
        /* A new lease holds none of our keys yet. */
        g_hash_table_iter_init(&it, e->wanted);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_hash_table_add(e->pending, g_strdup(key));
        lease_ready(c);
        range_start(c);
}

static void lease_grant(EtcdConn *c) {
        EtcdSource *e = c->source;
        json_object *body = json_object_new_object();

        json_object_object_add(body, "TTL", json_int64_string(e->lease_ttl));
        conn_post(c, "/v3/lease/grant", body, on_grant);
}

static void on_lease_check(Call *call, json_object *reply) {
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        json_object *result = NULL;

        (void) json_object_object_get_ex(reply, "result", &result);
        if (json_get_int64(result ?: reply, "TTL") > 0) {
                lease_ready(c);
                return range_start(c);
        }
        log_info("etcd lease %" PRIx64
                 " of this node expired while etcd was out of reach; writing every key again "
                 "on a new one.",
                 (uint64_t) e->lease_id);
        e->lease_id = 0;
        lease_grant(c);
}

static void lease_start(EtcdConn *c) {
        EtcdSource *e = c->source;
        json_object *body;

        if (e->lease_id == 0)
                return lease_grant(c);
        body = json_object_new_object();
        json_object_object_add(body, "ID", json_int64_string(e->lease_id));
        conn_post(c, "/v3/lease/keepalive", body, on_lease_check);
}

static void on_authenticate(Call *call, json_object *reply) {
        EtcdConn *c = call->conn;
        EtcdSource *e = c->source;
        const char *token = docker_json_string(reply, "token");

        if (isempty(token))
                return source_fail(e, "/v3/auth/authenticate: no token in the answer (is authentication enabled?)");
        g_free(e->token);
        e->token = g_strdup(token);
        lease_start(c);
}

/* The password: the file's first line. Read at every connection, so that
 * a changed password needs no restart. */
static int read_password(const char *path, char **ret, char **ret_error) {
        g_autoptr(GError) error = NULL;
        g_autofree char *data = NULL;
        size_t n;

        if (!g_file_get_contents(path, &data, NULL, &error)) {
                *ret_error = g_strdup_printf("cannot read the password file %s: %s", path, error->message);
                return -EIO;
        }
        n = strcspn(data, "\r\n");
        data[n] = 0;
        if (n == 0) {
                *ret_error = g_strdup_printf("the password file %s is empty", path);
                return -EINVAL;
        }
        *ret = TAKE_PTR(data);
        return 0;
}

static void source_connect(EtcdSource *e) {
        json_object *body;
        EtcdConn *c;

        source_clear(&e->retry_source);
        conn_detach(TAKE_PTR(e->conn));
        if (e->stopping)
                return;
        if (e->state != ETCD_CONNECTED)
                e->state = ETCD_CONNECTING;
        e->next_retry_usec = 0;

        c = g_new0(EtcdConn, 1);
        *c = (EtcdConn) { .n_ref = 1,
                          .source = e,
                          .cancellable = g_cancellable_new(),
                          .endpoint = e->current,
                          .pages = g_queue_new() };
        e->conn = c;

        if (!e->user)
                return lease_start(c);

        g_autofree char *password = NULL, *error = NULL;
        if (read_password(e->password_file, &password, &error) < 0)
                return source_fail(e, error);
        body = json_object_new_object();
        json_object_object_add(body, "name", json_object_new_string(e->user));
        json_object_object_add(body, "password", json_object_new_string(password));
        g_clear_pointer(&e->token, g_free);
        conn_post(c, "/v3/auth/authenticate", body, on_authenticate);
        explicit_bzero(password, strlen(password));
}

void etcd_source_resync(EtcdSource *e) {
        if (!e || e->stopping)
                return;
        if (!e->conn || e->state != ETCD_CONNECTED) {
                /* Not connected: try now rather than at the next retry. */
                source_clear(&e->retry_source);
                for (size_t i = 0; i < e->n_endpoints; i++)
                        e->endpoints[i].retry_at = 0;
                if (!e->conn)
                        source_connect(e);
                return;
        }
        e->quick_restarts = 0;
        source_restart(e, "a resync was asked for");
}

/* --- stopping ----------------------------------------------------------------------------------- */

static void stop_finish(EtcdSource *e) {
        EtcdStopFunc done = TAKE_PTR(e->stop_done);

        source_clear(&e->stop_timer);
        conn_detach(TAKE_PTR(e->stop_conn));
        if (done)
                done(e->stop_userdata);
}

static gboolean on_stop_timeout(gpointer userdata) {
        EtcdSource *e = userdata;

        g_source_unref(TAKE_PTR(e->stop_timer));
        log_warning(
                "etcd did not answer the lease revocation in time; this node's names leave etcd when lease "
                "%" PRIx64 " expires (%" PRIu32 "s).",
                (uint64_t) e->lease_id, e->lease_ttl);
        stop_finish(e);
        return G_SOURCE_REMOVE;
}

static void revoke_try(EtcdSource *e);

static void on_revoke(GObject *object, GAsyncResult *res, gpointer userdata) {
        EtcdConn *c = userdata;
        EtcdSource *e = c->source;
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) body = soup_session_send_and_read_finish(SOUP_SESSION(object), res, &error);
        g_autofree char *message = NULL;
        SoupMessage *msg;
        json_object *reply;
        int code = 0;

        if (!e)
                goto out;
        msg = soup_session_get_async_result_message(SOUP_SESSION(object), res);
        if (body && soup_message_get_status(msg) == SOUP_STATUS_OK) {
                log_info("Revoked etcd lease %" PRIx64 ": this node's %u name(s) left etcd.", (uint64_t) e->lease_id,
                         g_hash_table_size(e->wanted));
                e->lease_id = 0;
                stop_finish(e);
                goto out;
        }
        if (body) {
                reply = parse_json(g_bytes_get_data(body, NULL), g_bytes_get_size(body));
                message = api_error(reply, body, soup_message_get_status(msg), &code);
                json_object_put(reply);
                if (code == GRPC_NOT_FOUND) {
                        /* Expired already: nothing of ours is left. */
                        e->lease_id = 0;
                        stop_finish(e);
                        goto out;
                }
        }
        log_debug("Revoking the etcd lease at %s failed: %s.", e->endpoints[e->current].url,
                  error ? error->message : message);
        e->current = (e->current + 1) % e->n_endpoints;
        revoke_try(e);
out:
        conn_unref(c);
}

static void revoke_try(EtcdSource *e) {
        g_autoptr(SoupMessage) msg = NULL;
        g_autoptr(GBytes) bytes = NULL;
        json_object *body;

        if (e->stop_tries++ >= e->n_endpoints) {
                log_warning(
                        "No etcd member took the lease revocation; this node's names leave etcd when lease "
                        "%" PRIx64 " expires (%" PRIu32 "s).",
                        (uint64_t) e->lease_id, e->lease_ttl);
                return stop_finish(e);
        }
        body = json_object_new_object();
        json_object_object_add(body, "ID", json_int64_string(e->lease_id));
        bytes = json_bytes(body);
        json_object_put(body);
        msg = post_message(e, e->endpoints[e->current].url, "/v3/lease/revoke", bytes);
        soup_session_send_and_read_async(e->session, msg, G_PRIORITY_HIGH, e->stop_conn->cancellable, on_revoke,
                                         conn_ref(e->stop_conn));
}

static gboolean on_stop_idle(gpointer userdata) {
        EtcdSource *e = userdata;

        g_source_unref(TAKE_PTR(e->stop_timer));
        stop_finish(e);
        return G_SOURCE_REMOVE;
}

void etcd_source_stop(EtcdSource *e, EtcdStopFunc done, void *userdata) {
        if (e->stopping)
                return;
        e->stopping = true;
        e->stop_done = done;
        e->stop_userdata = userdata;
        source_clear(&e->flush_source);
        source_clear(&e->keepalive_source);
        source_clear(&e->retry_source);
        conn_detach(TAKE_PTR(e->conn));

        if (e->lease_id == 0) {
                /* Nothing of ours in etcd. */
                e->stop_timer = g_idle_source_new();
                g_source_set_callback(e->stop_timer, on_stop_idle, e, NULL);
                g_source_attach(e->stop_timer, e->context);
                return;
        }
        e->stop_conn = g_new0(EtcdConn, 1);
        *e->stop_conn = (EtcdConn) { .n_ref = 1, .source = e, .cancellable = g_cancellable_new() };
        e->stop_timer = source_timeout(e, STOP_TIMEOUT_MSEC, "etcd-stop", on_stop_timeout);
        revoke_try(e);
}

/* --- lifecycle ------------------------------------------------------------------------------------ */

static SoupSession *session_new(EtcdSource *e, GTlsDatabase *ca, unsigned timeout_sec) {
        SoupSession *s =
                soup_session_new_with_options("timeout", timeout_sec, "idle-timeout", 60u, "max-conns", 8,
                                              "max-conns-per-host", 4, "user-agent", "joyrided/" JOYRIDE_VERSION, NULL);
        if (ca)
                soup_session_set_tls_database(s, ca);
        return s;
}

int etcd_source_new(EtcdSource **ret, sd_event *event, Store *store, const EtcdOptions *opts) {
        _cleanup_(etcd_source_freep) EtcdSource *e = NULL;
        g_autoptr(GTlsDatabase) ca = NULL;
        g_autoptr(GError) error = NULL;
        const char *page_keys;
        size_t n = 0;
        int r;

        while (opts->endpoints && opts->endpoints[n])
                n++;
        if (n == 0)
                return log_error_errno(-EINVAL, "No etcd endpoint given.");

        e = g_new0(EtcdSource, 1);
        *e = (EtcdSource) {
                .store = store,
                .context = g_main_context_ref_thread_default(),
                .n_endpoints = n,
                .endpoints = g_new0(Endpoint, n),
                .endpoint_urls = g_strdupv((char **) opts->endpoints),
                .prefix = g_strdup(opts->prefix ?: "/skydns"),
                .lease_ttl = opts->lease_ttl ?: 10,
                .default_ttl = opts->default_ttl,
                .node_id = g_strdup(opts->node_id),
                .user = g_strdup(opts->user),
                .password_file = g_strdup(opts->password_file),
                .state = ETCD_CONNECTING,
                .logged_errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                .remote = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
                .wanted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
                .pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                .dirty = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, dirty_record_free),
        };
        for (size_t i = 0; i < n; i++)
                e->endpoints[i] = (Endpoint) { .url = g_strdup(opts->endpoints[i]), .backoff_msec = BACKOFF_MIN_MSEC };
        e->range_key = g_strconcat(e->prefix, "/", NULL);
        e->range_end = g_strconcat(e->prefix, "0", NULL);
        e->owner_buf = g_string_new(NULL);
        /* Tests page through a few keys; not a setting: the default suits
         * every size (etcd's cost per page grows with what is left to read,
         * its cost per key does not shrink with bigger pages). */
        e->range_page_keys = RANGE_PAGE_KEYS;
        page_keys = getenv("JOYRIDE_ETCD_RANGE_PAGE_KEYS");
        if (page_keys) {
                guint64 v;
                if (!g_ascii_string_to_unsigned(page_keys, 10, 1, RANGE_PAGE_KEYS_MAX, &v, NULL))
                        return log_error_errno(-EINVAL, "JOYRIDE_ETCD_RANGE_PAGE_KEYS=%s: expected 1 to %u.", page_keys,
                                               RANGE_PAGE_KEYS_MAX);
                e->range_page_keys = (unsigned) v;
        }

        /* What cannot work is said now, not at every retry. */
        if (opts->ca_file) {
                ca = g_tls_file_database_new(opts->ca_file, &error);
                if (!ca)
                        return log_error_errno(-EINVAL, "[Etcd] CAFile=%s: %s", opts->ca_file, error->message);
        }
        if (opts->cert_file) {
                e->client_cert = g_tls_certificate_new_from_files(opts->cert_file, opts->key_file, &error);
                if (!e->client_cert)
                        return log_error_errno(-EINVAL, "[Etcd] CertFile=%s, KeyFile=%s: %s", opts->cert_file,
                                               strna(opts->key_file), error->message);
        }
        if (e->user) {
                g_autofree char *password = NULL, *why = NULL;
                r = read_password(e->password_file, &password, &why);
                if (r < 0)
                        return log_error_errno(r, "[Etcd] PasswordFile=: %s.", why);
                explicit_bzero(password, strlen(password));
        }

        e->ca = ca ? g_object_ref(ca) : NULL;
        e->session = session_new(e, ca, REQUEST_TIMEOUT_SEC);
        e->watch_session = session_new(e, ca, 0);
        r = worker_new(&e->worker, event, "etcd-parse");
        if (r < 0)
                return log_error_errno(r, "Failed to start the etcd parsing thread: %m");

        r = store_subscribe(store, on_store_change, e);
        if (r < 0)
                return log_error_errno(r, "Failed to follow record changes for etcd: %m");
        /* Records loaded before us (hosts files, D-Bus state) go out too. */
        (void) store_foreach(store, NULL, NULL, mark_local, e);

        log_info("Sharing records through etcd at %s (prefix %s/, lease TTL %" PRIu32 "s).", e->endpoints[0].url,
                 e->prefix, e->lease_ttl);
        source_connect(e);
        *ret = TAKE_PTR(e);
        return 0;
}

EtcdSource *etcd_source_free(EtcdSource *e) {
        GHashTableIter it;
        gpointer key;

        if (!e)
                return NULL;
        if (e->store)
                store_unsubscribe(e->store, on_store_change, e);
        source_clear(&e->retry_source);
        source_clear(&e->flush_source);
        source_clear(&e->keepalive_source);
        source_clear(&e->stop_timer);
        conn_detach(TAKE_PTR(e->stop_conn));
        conn_detach(TAKE_PTR(e->conn));
        /* Pages still with the worker are dropped (range_parse_discard()). */
        e->worker = worker_free(e->worker);
        if (e->session)
                soup_session_abort(e->session);
        if (e->watch_session)
                soup_session_abort(e->watch_session);
        g_clear_object(&e->session);
        g_clear_object(&e->watch_session);
        g_clear_object(&e->client_cert);
        g_clear_object(&e->ca);

        /* The source goes, and the records it read with it. */
        if (e->remote) {
                g_hash_table_iter_init(&it, e->remote);
                while (g_hash_table_iter_next(&it, &key, NULL)) {
                        g_autofree char *owner = owner_of(key);
                        (void) store_remove_owner(e->store, owner);
                }
                g_hash_table_unref(e->remote);
        }
        if (e->wanted)
                g_hash_table_unref(e->wanted);
        if (e->pending)
                g_hash_table_unref(e->pending);
        if (e->dirty)
                g_hash_table_unref(e->dirty);
        if (e->logged_errors)
                g_hash_table_unref(e->logged_errors);
        for (size_t i = 0; i < e->n_endpoints; i++)
                g_free(e->endpoints[i].url);
        g_free(e->endpoints);
        g_strfreev(e->endpoint_urls);
        if (e->context)
                g_main_context_unref(e->context);
        g_free(e->prefix);
        g_free(e->range_key);
        g_free(e->range_end);
        if (e->owner_buf)
                g_string_free(e->owner_buf, TRUE);
        g_free(e->node_id);
        g_free(e->user);
        g_free(e->password_file);
        if (e->token) {
                explicit_bzero(e->token, strlen(e->token));
                g_free(e->token);
        }
        g_free(e->last_error);
        g_free(e);
        return NULL;
}

void etcd_source_get_status(const EtcdSource *e, EtcdStatus *ret) {
        *ret = (EtcdStatus) {
                .state = e->state,
                .endpoint = e->endpoints[e->current].url,
                .endpoints = e->endpoint_urls,
                .prefix = e->prefix,
                .last_error = e->last_error,
                .connected_since_usec = e->connected_since_usec,
                .next_retry_usec = e->next_retry_usec,
                .lease_id = e->lease_id,
                .lease_ttl = e->lease_ttl,
                .revision = e->revision,
                .n_keys = e->n_remote_records,
                .n_published =
                        g_hash_table_size(e->wanted) - MIN(g_hash_table_size(e->wanted), g_hash_table_size(e->pending)),
                .n_pending = g_hash_table_size(e->pending) + g_hash_table_size(e->dirty),
                .resyncs = e->n_resyncs,
                .events = e->n_events,
                .txns = e->n_txns,
                .failures = e->n_failures,
                .skipped = e->n_skipped,
        };
}
