/* SPDX-License-Identifier: MIT */
/* The HTTP API and the dashboard: a libsoup 3 server on the GLib main
 * context. Compatible with the original service's paths and JSON keys. */
#pragma once

#include "macro.h"

typedef struct Manager Manager;
typedef struct HttpServer HttpServer;

/* Listens on m->config.http_host:http_port, or on fd when it is >= 0
 * (socket-activated, taken over). */
int http_server_new(HttpServer **ret, Manager *m, int fd);
HttpServer *http_server_free(HttpServer *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);
