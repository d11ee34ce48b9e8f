/* SPDX-License-Identifier: MIT */
/* What the daemon says about itself: one snapshot that the Manager fills
 * (manager_get_status()) and every front end reads: the sd_notify STATUS=
 * line, the D-Bus properties and the HTTP /health, /status, /metrics and
 * live feed. Plain data, no Manager: a front end that reads this needs
 * nothing else of the daemon's insides.
 *
 * Strings and pointers belong to the daemon and stay valid until the loop
 * runs again: read a snapshot and let it go in the same callback. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "dns-forward.h"
#include "dns-server.h"
#include "docker.h"
#include "etcd.h"
#include "hosts.h"
#include "rate-ring.h"

typedef struct ManagerStatus {
        /* The daemon */
        const char *version;         /* JOYRIDE_VERSION */
        const char *service_name;    /* SERVICE_NAME */
        const char *environment;     /* ENVIRONMENT */
        const char *node_id;         /* NULL when none is configured */
        const char *state_directory; /* NULL when none */
        const char *http_host;       /* as configured, NULL: all addresses */
        uint16_t http_port;
        uint64_t start_realtime_usec; /* CLOCK_REALTIME at start */
        uint64_t now_realtime_usec;   /* CLOCK_REALTIME when the snapshot was taken */
        uint64_t uptime_usec;         /* CLOCK_MONOTONIC since start */

        /* DNS */
        uint16_t dns_port;
        const char *dns_bind_address; /* NULL: all addresses */
        const char *dns_describe;     /* "udp 127.0.0.1:53, tcp ...", NULL without a server */
        const DnsServerCounters *dns; /* NULL without a server; by_rcode counts forwarded replies too */
        char **domains;               /* [DNS] Domains=, NULL-terminated; NULL when none */
        size_t n_records;
        uint64_t store_version;
        const RateRing *queries_per_second; /* queries answered in each of the last seconds */

        /* Forwarding ([DNS] Forward=) */
        bool forward_enabled;            /* Forward= is set */
        const char *forward_source;      /* "configured", "resolv.conf" or "systemd-resolved"; NULL when off */
        const DnsForwardStatus *forward; /* NULL when there is no forwarder */

        /* Sources */
        const char *hosts_directory; /* NULL when none is configured */
        bool hosts_enabled;          /* hosts is filled */
        HostsDirStatus hosts;
        bool docker_enabled; /* docker is filled */
        DockerStatus docker;
        bool cluster_enabled; /* cluster is filled */
        ClusterCounters cluster;
        bool etcd_enabled; /* etcd is filled ([Etcd] Endpoints=) */
        EtcdStatus etcd;
} ManagerStatus;

/* Cluster members this node sees alive or suspect, itself included; 0 without a cluster. */
static inline uint32_t manager_status_member_count(const ManagerStatus *s) {
        return s->cluster_enabled ? s->cluster.members_alive + s->cluster.members_suspect : 0;
}

/* "connecting", "connected", "disconnected", or "disabled" without etcd. */
static inline const char *manager_status_etcd_state(const ManagerStatus *s) {
        return s->etcd_enabled ? etcd_state_to_string(s->etcd.state) : "disabled";
}

/* "connecting", "connected", "disconnected", or "disabled" without Docker. */
static inline const char *manager_status_docker_state(const ManagerStatus *s) {
        return s->docker_enabled ? docker_state_to_string(s->docker.state) : "disabled";
}

/* What a front end may ask of the daemon besides its status: the handful of
 * things the HTTP API exposes. userdata is passed back to each call. */
typedef struct StatusProvider {
        void *userdata;
        void (*get_status)(void *userdata, ManagerStatus *ret);
        /* A snapshot of the cluster's members, self first; *ret is one
         * allocation, free() it. 0 (and *ret NULL) without a cluster. */
        size_t (*get_members)(void *userdata, ClusterMember **ret);
        /* Starts a push-pull with every member and a new read of the etcd
         * prefix: >= 0, or -EOPNOTSUPP with neither a cluster nor etcd, or
         * another negative errno. */
        int (*sync_now)(void *userdata);
} StatusProvider;
