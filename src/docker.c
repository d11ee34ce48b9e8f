/* SPDX-License-Identifier: MIT */
/* stub: being written (issue 3) */
#include <glib.h>

#include "docker.h"

struct DockerMonitor {
        int unused;
};

int docker_monitor_new(DockerMonitor **ret, Store *store, const DockerOptions *opts) {
        *ret = g_new0(DockerMonitor, 1);
        return 0;
}

DockerMonitor *docker_monitor_free(DockerMonitor *d) {
        g_free(d);
        return NULL;
}

void docker_monitor_get_status(const DockerMonitor *d, DockerStatus *ret) {
        *ret = (DockerStatus) { .state = DOCKER_DISCONNECTED, .last_error = "not implemented yet" };
}

const char *docker_state_to_string(DockerState s) {
        return s == DOCKER_CONNECTED ? "connected" : s == DOCKER_CONNECTING ? "connecting" : "disconnected";
}
