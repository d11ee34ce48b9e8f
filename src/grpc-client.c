/* SPDX-License-Identifier: MIT */
/* The gRPC client (see grpc-client.h). nghttp2 does the framing and keeps
 * the streams; this file moves its bytes (one read always pending, one
 * write at a time), turns streams into calls and finished calls into
 * callbacks. The callbacks run from an idle source, never inside nghttp2's
 * callbacks nor inside grpc_client_call(): a callback may call again,
 * close the client or drop it.
 *
 * References: the owner's, one per I/O operation in flight (connect, read,
 * write) and one while finished calls wait for their callbacks. Calls that
 * are waiting or in flight always have an operation in flight, so the
 * client outlives them. A failure ends the connection for good: every call
 * on it fails with the reason, the I/O is cancelled, and the objects go
 * with the last reference. */

#include <gio/gio.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "grpc-client.h"
#include "macro.h"
#include "wire.h"

#define READ_SIZE (256u * 1024u)
#define WINDOW_SIZE (16 * 1024 * 1024) /* per stream and for the connection: few window updates per page */
#define REPLY_MAX (256u * 1024u * 1024u)
#define MESSAGE_HEADER 5u /* compressed flag, 32-bit length */

typedef enum ClientState {
        CLIENT_IDLE,
        CLIENT_CONNECTING,
        CLIENT_READY,
        CLIENT_FAILED,
} ClientState;

typedef struct Call {
        GrpcClient *client; /* not a reference: the client holds the call */
        int32_t stream_id;  /* 0: none yet */
        char *path, *token;
        GBytes *request; /* framed */
        size_t sent;
        GByteArray *body;
        int http_status; /* 0: none yet */
        int grpc_status; /* -1: none yet */
        char *grpc_message;
        bool grpc_content; /* content-type application/grpc */
        bool too_big;
        GSource *timer;
        /* the outcome */
        int status;
        char *message;
        GBytes *reply;
        GrpcReplyFunc done;
        void *userdata;
} Call;

struct GrpcClient {
        unsigned n_ref;
        GMainContext *context;
        char *host, *authority;
        uint16_t port;
        bool tls;
        GTlsDatabase *ca;
        GTlsCertificate *cert;
        unsigned timeout_sec;

        ClientState state;
        char *error; /* why it failed */
        int error_status;
        GCancellable *cancellable;
        GIOStream *stream;
        nghttp2_session *session;
        guint8 *rbuf;
        GBytes *out; /* being written */
        bool writing;

        GQueue waiting;  /* Call: before the connection is ready */
        GQueue active;   /* Call: on a stream */
        GQueue finished; /* Call: the outcome known, the callback not run yet */
        GSource *dispatch;
};

static void flush(GrpcClient *g);

static void call_free(Call *c) {
        if (c->timer) {
                g_source_destroy(c->timer);
                g_source_unref(c->timer);
        }
        g_free(c->path);
        g_free(c->token);
        g_bytes_unref(c->request);
        if (c->body)
                g_byte_array_unref(c->body);
        g_free(c->grpc_message);
        g_free(c->message);
        if (c->reply)
                g_bytes_unref(c->reply);
        g_free(c);
}

GrpcClient *grpc_client_ref(GrpcClient *g) {
        g->n_ref++;
        return g;
}

GrpcClient *grpc_client_unref(GrpcClient *g) {
        Call *c;

        if (!g || --g->n_ref > 0)
                return NULL;
        /* No call is left: each keeps an operation, or the dispatch, going. */
        while ((c = g_queue_pop_head(&g->waiting)))
                call_free(c);
        while ((c = g_queue_pop_head(&g->active)))
                call_free(c);
        while ((c = g_queue_pop_head(&g->finished)))
                call_free(c);
        if (g->session)
                nghttp2_session_del(g->session);
        g_clear_object(&g->stream);
        g_clear_object(&g->cancellable);
        g_clear_object(&g->ca);
        g_clear_object(&g->cert);
        if (g->out)
                g_bytes_unref(g->out);
        g_main_context_unref(g->context);
        g_free(g->rbuf);
        g_free(g->host);
        g_free(g->authority);
        g_free(g->error);
        g_free(g);
        return NULL;
}

static void unref_notify(gpointer p) {
        grpc_client_unref(p);
}

/* --- outcomes ------------------------------------------------------------------ */

static gboolean on_dispatch(gpointer userdata) {
        GrpcClient *g = userdata;
        Call *c;

        /* Callbacks may add to the queue (a new call on a failed client). */
        while ((c = g_queue_pop_head(&g->finished))) {
                c->done(c->status, c->message, TAKE_PTR(c->reply), c->userdata);
                call_free(c);
        }
        g_source_unref(g->dispatch);
        g->dispatch = NULL;
        return G_SOURCE_REMOVE; /* the source's reference goes with it */
}

/* Records a call's outcome (message and reply taken); its callback runs
 * from the loop. The caller has taken the call off its queue. */
static void call_finish(GrpcClient *g, Call *c, int status, char *message, GBytes *reply) {
        if (c->timer) {
                g_source_destroy(c->timer);
                g_source_unref(c->timer);
                c->timer = NULL;
        }
        c->status = status;
        c->message = message;
        c->reply = reply;
        g_queue_push_tail(&g->finished, c);
        if (g->dispatch)
                return;
        g->dispatch = g_idle_source_new();
        g_source_set_priority(g->dispatch, G_PRIORITY_DEFAULT);
        g_source_set_name(g->dispatch, "grpc-dispatch");
        g_source_set_callback(g->dispatch, on_dispatch, grpc_client_ref(g), unref_notify);
        g_source_attach(g->dispatch, g->context);
}

/* The connection is done for: every call on it fails with the reason. Not
 * from within nghttp2's callbacks. */
_printf_(3, 4) static void fail(GrpcClient *g, int status, const char *format, ...) {
        va_list ap;
        Call *c;

        if (g->state == CLIENT_FAILED)
                return;
        va_start(ap, format);
        g->error = g_strdup_vprintf(format, ap);
        va_end(ap);
        g->error_status = status;
        g->state = CLIENT_FAILED;
        g_cancellable_cancel(g->cancellable);
        while ((c = g_queue_pop_head(&g->waiting)))
                call_finish(g, c, status, g_strdup(g->error), NULL);
        while ((c = g_queue_pop_head(&g->active))) {
                /* The session is not used again, and forgets the call. */
                (void) nghttp2_session_set_stream_user_data(g->session, c->stream_id, NULL);
                call_finish(g, c, status, g_strdup(g->error), NULL);
        }
}

void grpc_client_close(GrpcClient *g) {
        if (g)
                fail(g, -ECANCELED, "closed");
}

static gboolean on_call_timeout(gpointer userdata) {
        Call *c = userdata;
        GrpcClient *g = c->client;

        g_source_unref(c->timer);
        c->timer = NULL;
        fail(g, -ETIMEDOUT, "no answer in %u s", g->timeout_sec);
        return G_SOURCE_REMOVE;
}

/* grpc-message is percent-encoded (RFC 3986 style). */
static char *percent_decode(const char *s, size_t len) {
        char *out = g_malloc(len + 1), *o = out;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '%' && i + 2 < len && g_ascii_isxdigit(s[i + 1]) && g_ascii_isxdigit(s[i + 2])) {
                        *o++ = (char) (g_ascii_xdigit_value(s[i + 1]) * 16 + g_ascii_xdigit_value(s[i + 2]));
                        i += 2;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return out;
}

/* A header's value as a number of up to 6 digits; -1 for anything else. */
static int header_number(const uint8_t *value, size_t len) {
        int v = 0;

        if (len == 0 || len > 6)
                return -1;
        for (size_t i = 0; i < len; i++) {
                if (!g_ascii_isdigit(value[i]))
                        return -1;
                v = v * 10 + (value[i] - '0');
        }
        return v;
}

/* A stream ended: what it gave. */
static void call_complete(GrpcClient *g, Call *c, uint32_t error_code) {
        const guint8 *data = c->body->data;
        uint32_t n;

        if (c->too_big)
                return call_finish(g, c, -EMSGSIZE, g_strdup_printf("an answer larger than %u MiB", REPLY_MAX >> 20),
                                   NULL);
        if (c->http_status != 0 && c->http_status != 200)
                return call_finish(g, c, -EPROTONOSUPPORT,
                                   g_strdup_printf("HTTP status %d instead of a gRPC answer", c->http_status), NULL);
        if (c->grpc_status > 0)
                return call_finish(g, c, c->grpc_status, g_strdup(c->grpc_message ?: ""), NULL);
        if (error_code != NGHTTP2_NO_ERROR)
                return call_finish(g, c, -ECONNRESET,
                                   g_strdup_printf("the stream was reset (%s)", nghttp2_http2_strerror(error_code)),
                                   NULL);
        if (c->http_status == 0 || !c->grpc_content)
                return call_finish(g, c, -EPROTONOSUPPORT, g_strdup("not a gRPC answer"), NULL);
        if (c->grpc_status < 0)
                return call_finish(g, c, -EPROTO, g_strdup("no grpc-status in the answer"), NULL);
        if (c->body->len < MESSAGE_HEADER)
                return call_finish(g, c, -EPROTO, g_strdup("no message in the answer"), NULL);
        if (data[0] != 0)
                return call_finish(g, c, -EPROTO, g_strdup("a compressed message (none was asked for)"), NULL);
        n = wire_get_u32(data + 1);
        if ((size_t) n + MESSAGE_HEADER != c->body->len)
                return call_finish(
                        g, c, -EPROTO,
                        g_strdup_printf("a message of %" PRIu32 " bytes in an answer of %u", n, c->body->len), NULL);

        g_autoptr(GBytes) all = g_byte_array_free_to_bytes(c->body);
        c->body = NULL;
        call_finish(g, c, 0, NULL, g_bytes_new_from_bytes(all, MESSAGE_HEADER, n));
}

/* --- nghttp2's callbacks ---------------------------------------------------------- */

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
        Call *c;

        if (frame->hd.type != NGHTTP2_HEADERS)
                return 0;
        c = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!c)
                return 0;
#define IS(s) (namelen == strlen(s) && memcmp(name, (s), namelen) == 0)
        if (IS(":status"))
                c->http_status = MAX(header_number(value, valuelen), 1);
        else if (IS("content-type"))
                c->grpc_content = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                                  (valuelen == 16 || value[16] == '+' || value[16] == ';');
        else if (IS("grpc-status")) {
                int v = header_number(value, valuelen);
                c->grpc_status = v >= 0 ? v : 2; /* UNKNOWN */
        } else if (IS("grpc-message")) {
                g_free(c->grpc_message);
                c->grpc_message = percent_decode((const char *) value, valuelen);
        }
#undef IS
        return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
        Call *c = nghttp2_session_get_stream_user_data(session, stream_id);

        if (!c || c->too_big)
                return 0;
        if (c->body->len + len > REPLY_MAX) {
                c->too_big = true;
                (void) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
                return 0;
        }
        g_byte_array_append(c->body, data, (guint) len);
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
        GrpcClient *g = user_data;
        Call *c = nghttp2_session_get_stream_user_data(session, stream_id);

        if (!c || !g_queue_remove(&g->active, c))
                return 0;
        call_complete(g, c, error_code);
        return 0;
}

static ssize_t on_read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                               uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
        Call *c = source->ptr;
        gsize len;
        const guint8 *data = g_bytes_get_data(c->request, &len);
        size_t n = MIN(length, len - c->sent);

        memcpy(buf, data + c->sent, n);
        c->sent += n;
        if (c->sent == len)
                *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t) n;
}

/* --- I/O ------------------------------------------------------------------------------- */

#define NV(n, v) \
        { (uint8_t *) (n), (uint8_t *) (v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static void submit(GrpcClient *g, Call *c) {
        g_autofree char *timeout = g_strdup_printf("%uS", g->timeout_sec);
        nghttp2_nv nva[] = {
                NV(":method", "POST"),
                NV(":scheme", g->tls ? "https" : "http"),
                NV(":path", c->path),
                NV(":authority", g->authority),
                NV("content-type", "application/grpc"),
                NV("te", "trailers"),
                NV("grpc-timeout", timeout),
                NV("user-agent", "joyrided/" JOYRIDE_VERSION),
                NV("token", c->token ?: ""),
        };
        nghttp2_data_provider body = { .source.ptr = c, .read_callback = on_read_request };
        int32_t id;

        id = nghttp2_submit_request(g->session, NULL, nva, ELEMENTSOF(nva) - (c->token ? 0 : 1), &body, c);
        if (id < 0)
                return call_finish(g, c, -EPROTO, g_strdup_printf("HTTP/2: %s", nghttp2_strerror(id)), NULL);
        c->stream_id = id;
        g_queue_push_tail(&g->active, c);
}

static void on_written(GObject *object, GAsyncResult *res, gpointer userdata) {
        GrpcClient *g = userdata;
        g_autoptr(GError) error = NULL;
        bool ok = g_output_stream_write_all_finish(G_OUTPUT_STREAM(object), res, NULL, &error);

        g->writing = false;
        g_clear_pointer(&g->out, g_bytes_unref);
        if (g->state == CLIENT_READY) {
                if (!ok)
                        fail(g, -EIO, "%s", error->message);
                else
                        flush(g);
        }
        grpc_client_unref(g);
}

/* Writes what nghttp2 has to send, one write at a time. */
static void flush(GrpcClient *g) {
        g_autoptr(GByteArray) out = NULL;

        if (g->state != CLIENT_READY || g->writing)
                return;
        for (;;) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(g->session, &data);

                if (n < 0)
                        return fail(g, -EPROTO, "HTTP/2: %s", nghttp2_strerror((int) n));
                if (n == 0)
                        break;
                if (!out)
                        out = g_byte_array_new();
                g_byte_array_append(out, data, (guint) n);
        }
        if (!out)
                return;
        g->writing = true;
        g->out = g_byte_array_free_to_bytes(TAKE_PTR(out));
        g_output_stream_write_all_async(g_io_stream_get_output_stream(g->stream), g_bytes_get_data(g->out, NULL),
                                        g_bytes_get_size(g->out), G_PRIORITY_DEFAULT, g->cancellable, on_written,
                                        grpc_client_ref(g));
}

static void read_next(GrpcClient *g);

static void on_read(GObject *object, GAsyncResult *res, gpointer userdata) {
        GrpcClient *g = userdata;
        g_autoptr(GError) error = NULL;
        gssize n = g_input_stream_read_finish(G_INPUT_STREAM(object), res, &error);
        ssize_t r;

        if (g->state != CLIENT_READY)
                goto out;
        if (n < 0) {
                fail(g, -EIO, "%s", error->message);
                goto out;
        }
        if (n == 0) {
                fail(g, -ECONNRESET, "the connection was closed before an answer");
                goto out;
        }
        r = nghttp2_session_mem_recv(g->session, g->rbuf, (size_t) n);
        if (r < 0) {
                fail(g, -EPROTO, "HTTP/2: %s", nghttp2_strerror((int) r));
                goto out;
        }
        flush(g);
        if (g->state != CLIENT_READY)
                goto out;
        if (!nghttp2_session_want_read(g->session) && !nghttp2_session_want_write(g->session))
                fail(g, -ECONNRESET, "the HTTP/2 session ended before an answer");
        else
                read_next(g);
out:
        grpc_client_unref(g);
}

static void read_next(GrpcClient *g) {
        g_input_stream_read_async(g_io_stream_get_input_stream(g->stream), g->rbuf, READ_SIZE, G_PRIORITY_DEFAULT,
                                  g->cancellable, on_read, grpc_client_ref(g));
}

static int session_start(GrpcClient *g) {
        nghttp2_session_callbacks *cbs;
        nghttp2_settings_entry settings[] = {
                { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
                { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_SIZE },
        };
        int r;

        r = nghttp2_session_callbacks_new(&cbs);
        if (r < 0)
                return -ENOMEM;
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        r = nghttp2_session_client_new(&g->session, cbs, g);
        nghttp2_session_callbacks_del(cbs);
        if (r < 0)
                return -ENOMEM;
        r = nghttp2_submit_settings(g->session, NGHTTP2_FLAG_NONE, settings, ELEMENTSOF(settings));
        if (r >= 0)
                r = nghttp2_session_set_local_window_size(g->session, NGHTTP2_FLAG_NONE, 0, WINDOW_SIZE);
        return r < 0 ? -EPROTO : 0;
}

static void on_connected(GObject *object, GAsyncResult *res, gpointer userdata) {
        GrpcClient *g = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GSocketConnection) conn = g_socket_client_connect_finish(G_SOCKET_CLIENT(object), res, &error);
        Call *c;

        if (g->state != CLIENT_CONNECTING)
                goto out;
        if (!conn) {
                fail(g, -EIO, "%s", error->message);
                goto out;
        }
        if (g->tls) {
                GIOStream *base = G_IS_TCP_WRAPPER_CONNECTION(conn)
                                          ? g_tcp_wrapper_connection_get_base_io_stream(G_TCP_WRAPPER_CONNECTION(conn))
                                          : NULL;
                const char *proto = base && G_IS_TLS_CONNECTION(base)
                                            ? g_tls_connection_get_negotiated_protocol(G_TLS_CONNECTION(base))
                                            : NULL;
                if (!streq_ptr(proto, "h2")) {
                        fail(g, -EPROTONOSUPPORT, "no HTTP/2 offered over TLS (ALPN)");
                        goto out;
                }
        }
        (void) g_socket_set_option(g_socket_connection_get_socket(conn), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
        if (session_start(g) < 0) {
                fail(g, -ENOMEM, "cannot start an HTTP/2 session");
                goto out;
        }
        g->stream = G_IO_STREAM(TAKE_PTR(conn));
        g->state = CLIENT_READY;
        while ((c = g_queue_pop_head(&g->waiting)))
                submit(g, c);
        read_next(g);
        flush(g);
out:
        grpc_client_unref(g);
}

static void on_client_event(GSocketClient *client, GSocketClientEvent event, GSocketConnectable *connectable,
                            GIOStream *connection, gpointer userdata) {
        static const char *const alpn[] = { "h2", NULL };
        GrpcClient *g = userdata;

        if (event != G_SOCKET_CLIENT_TLS_HANDSHAKING || !G_IS_TLS_CONNECTION(connection))
                return;
        if (g->ca)
                g_tls_connection_set_database(G_TLS_CONNECTION(connection), g->ca);
        if (g->cert)
                g_tls_connection_set_certificate(G_TLS_CONNECTION(connection), g->cert);
        g_tls_connection_set_advertised_protocols(G_TLS_CONNECTION(connection), alpn);
}

static void connect_start(GrpcClient *g) {
        g_autoptr(GSocketClient) client = g_socket_client_new();
        g_autoptr(GSocketConnectable) address = g_network_address_new(g->host, g->port);

        g->state = CLIENT_CONNECTING;
        /* Straight to the member: HTTP proxies do not carry cleartext HTTP/2. */
        g_socket_client_set_enable_proxy(client, FALSE);
        if (g->tls) {
                g_socket_client_set_tls(client, TRUE);
                g_signal_connect(client, "event", G_CALLBACK(on_client_event), g);
        }
        g_socket_client_connect_async(client, address, g->cancellable, on_connected, grpc_client_ref(g));
}

/* --- calls ------------------------------------------------------------------------------ */

void grpc_client_call(GrpcClient *g, const char *path, const char *token, GBytes *request, GrpcReplyFunc done,
                      void *userdata) {
        gsize len;
        const void *data = g_bytes_get_data(request, &len);
        guint8 *framed = g_malloc(MESSAGE_HEADER + len);
        Call *c = g_new0(Call, 1);

        framed[0] = 0;
        wire_put_u32(framed + 1, (uint32_t) len);
        if (len > 0)
                memcpy(framed + MESSAGE_HEADER, data, len);
        *c = (Call) {
                .client = g,
                .path = g_strdup(path),
                .token = g_strdup(token),
                .request = g_bytes_new_take(framed, MESSAGE_HEADER + len),
                .body = g_byte_array_new(),
                .grpc_status = -1,
                .done = done,
                .userdata = userdata,
        };
        if (g->state == CLIENT_FAILED)
                return call_finish(g, c, g->error_status, g_strdup(g->error), NULL);

        c->timer = g_timeout_source_new_seconds(g->timeout_sec);
        g_source_set_name(c->timer, "grpc-timeout");
        g_source_set_callback(c->timer, on_call_timeout, c, NULL);
        g_source_attach(c->timer, g->context);
        if (g->state == CLIENT_READY) {
                submit(g, c);
                flush(g);
                return;
        }
        g_queue_push_tail(&g->waiting, c);
        if (g->state == CLIENT_IDLE)
                connect_start(g);
}

GrpcClient *grpc_client_new(const char *url, GTlsDatabase *ca, GTlsCertificate *cert, unsigned timeout_sec) {
        g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
        const char *scheme, *host;
        GrpcClient *g;
        int port;
        bool tls;

        if (!uri)
                return NULL;
        scheme = g_uri_get_scheme(uri);
        host = g_uri_get_host(uri);
        if (isempty(host) || !scheme)
                return NULL;
        if (g_ascii_strcasecmp(scheme, "https") == 0)
                tls = true;
        else if (g_ascii_strcasecmp(scheme, "http") == 0)
                tls = false;
        else
                return NULL;
        port = g_uri_get_port(uri);
        if (port <= 0)
                port = tls ? 443 : 80;

        g = g_new0(GrpcClient, 1);
        *g = (GrpcClient) {
                .n_ref = 1,
                .context = g_main_context_ref_thread_default(),
                .host = g_strdup(host),
                .authority = strchr(host, ':') ? g_strdup_printf("[%s]:%d", host, port)
                                               : g_strdup_printf("%s:%d", host, port),
                .port = (uint16_t) port,
                .tls = tls,
                .ca = ca ? g_object_ref(ca) : NULL,
                .cert = cert ? g_object_ref(cert) : NULL,
                .timeout_sec = timeout_sec ?: 5,
                .cancellable = g_cancellable_new(),
                .rbuf = g_malloc(READ_SIZE),
                .waiting = G_QUEUE_INIT,
                .active = G_QUEUE_INIT,
                .finished = G_QUEUE_INIT,
        };
        return g;
}
