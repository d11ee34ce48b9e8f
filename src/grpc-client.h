/* SPDX-License-Identifier: MIT */
/* Unary gRPC calls over one HTTP/2 connection (nghttp2, which libsoup links
 * already), on GIO streams in the thread-default GMainContext, never
 * blocking: cleartext HTTP/2 with prior knowledge for http:// URLs, TLS with
 * ALPN "h2" (a CA database and a client certificate if given) for https://.
 *
 * For etcd's ranges: its JSON gateway marshals every key by reflection and
 * costs etcd about ten times the CPU of the same range over gRPC (see
 * docs/performance.md). Messages are opaque bytes here; etcd-range.c makes
 * and reads them.
 *
 * The connection opens at the first call. Every call completes once, from
 * the main loop, never from within the call that started it: with a gRPC
 * status (0 and the reply, or the status and its message), or with a
 * negative errno and a message when there was no gRPC answer at all (no
 * connection, not HTTP/2, not gRPC, reset, timed out, closed). A failed
 * connection fails every call on it and stays failed; make a new one. */
#pragma once

#include <gio/gio.h>

#include "macro.h"

typedef struct GrpcClient GrpcClient;

/* status: 0 (OK) or a gRPC status code (1..16) with message; a negative
 * errno with message when no gRPC status came. reply: the reply message
 * when status is 0, else NULL; the callback owns it (and may hand it to
 * another thread as the only reference). */
typedef void (*GrpcReplyFunc)(int status, const char *message, GBytes *reply, void *userdata);

/* url: "http://host:port" or "https://host:port" (a path is ignored).
 * ca: NULL for the system's CAs. Returns NULL for a URL it cannot use. */
GrpcClient *grpc_client_new(const char *url, GTlsDatabase *ca, GTlsCertificate *cert, unsigned timeout_sec);
GrpcClient *grpc_client_ref(GrpcClient *g);
GrpcClient *grpc_client_unref(GrpcClient *g); /* NULL */
DEFINE_TRIVIAL_CLEANUP_FUNC(GrpcClient *, grpc_client_unref);

/* Calls path ("/etcdserverpb.KV/Range") with one request message; token,
 * if not NULL, goes in the "token" metadata (etcd's authentication). Fails
 * after timeout_sec without an answer. */
void grpc_client_call(GrpcClient *g, const char *path, const char *token, GBytes *request, GrpcReplyFunc done,
                      void *userdata);

/* Drops the connection: calls not finished complete with -ECANCELED. */
void grpc_client_close(GrpcClient *g);
