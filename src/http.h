/* SPDX-License-Identifier: MIT */
/* The HTTP API and the dashboard: a libsoup 3 server on the GLib main
 * context. Compatible with the original service's paths and JSON keys.
 *
 * A front end: it reads the record store and the daemon's status (through a
 * StatusProvider), and knows nothing else of the Manager. */
#pragma once

#include <systemd/sd-event.h>

#include "macro.h"
#include "manager-status.h"
#include "store.h"

typedef struct HttpServer HttpServer;

typedef struct HttpServerOptions {
        sd_event *event;  /* the loop, for work done in batches and on a worker thread */
        const char *host; /* NULL: 0.0.0.0 */
        uint16_t port;
        int fd;                        /* >= 0: a socket-activated listener to take over instead */
        const char *api_token;         /* NULL: changes from loopback only (copied) */
        unsigned max_connections;      /* 0: 128 */
        uint32_t request_timeout_msec; /* 0: 10 s */
        char **allowed_hosts;          /* names Host may use besides the defaults (see http-guard.h); copied */
} HttpServerOptions;

/* Listens as opts says. The store and the provider's userdata must outlive
 * the server; *provider is copied. */
int http_server_new(HttpServer **ret, Store *store, const HttpServerOptions *opts, const StatusProvider *provider);
HttpServer *http_server_free(HttpServer *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);

/* After a reload: the bearer token POST requests need (NULL: none). Copied. */
void http_server_set_api_token(HttpServer *h, const char *token);
/* After a reload: AllowedHosts=. Copied. */
void http_server_set_allowed_hosts(HttpServer *h, char **names);
