/* SPDX-License-Identifier: MIT */
/* The Docker source: follows the Docker Engine API over its unix socket
 * (libsoup 3 client on the GLib main context, json-c) and keeps one store
 * owner per labelled container ("docker:<id>"). Reconciles on every
 * (re)connect, so no record outlives its container. */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "store.h"

typedef enum DockerState {
        DOCKER_CONNECTING,
        DOCKER_CONNECTED,
        DOCKER_DISCONNECTED, /* waiting to retry; see last_error and next_retry_usec */
} DockerState;

typedef struct DockerOptions {
        const char *docker_host; /* "unix:///var/run/docker.sock" */
        const char *hostip;      /* NULL: IPv4 of the default-route interface */
        const char *hostip6;     /* NULL: that interface's global IPv6, if any */
        uint32_t default_ttl;
} DockerOptions;

typedef struct DockerStatus {
        DockerState state;
        const char *socket_path;
        const char *api_version;       /* negotiated, NULL until connected */
        const char *last_error;        /* NULL when none */
        uint64_t connected_since_usec; /* CLOCK_REALTIME, 0 if not connected */
        uint64_t next_retry_usec;      /* CLOCK_REALTIME, 0 if not waiting */
        unsigned n_containers;         /* labelled containers with records */
        const char *hostip;            /* the address records get */
        const char *hostip6;
} DockerStatus;

typedef struct DockerMonitor DockerMonitor;

/* Starts connecting at once (asynchronously, on the thread-default GMainContext). */
int docker_monitor_new(DockerMonitor **ret, Store *store, const DockerOptions *opts);
DockerMonitor *docker_monitor_free(DockerMonitor *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(DockerMonitor *, docker_monitor_free);

void docker_monitor_get_status(const DockerMonitor *d, DockerStatus *ret);
const char *docker_state_to_string(DockerState s); /* "connecting", "connected", "disconnected" */
