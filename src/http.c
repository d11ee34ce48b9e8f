/* SPDX-License-Identifier: MIT */
/* stub: being written (issue 5) */
#include <glib.h>

#include "http.h"
#include "manager.h"

struct HttpServer {
        int unused;
};

int http_server_new(HttpServer **ret, Manager *m, int fd) {
        *ret = g_new0(HttpServer, 1);
        return 0;
}

HttpServer *http_server_free(HttpServer *h) {
        g_free(h);
        return NULL;
}
