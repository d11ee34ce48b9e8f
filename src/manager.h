/* SPDX-License-Identifier: MIT */
/* The Manager owns everything the daemon runs: configuration, the record
 * store, the event loop and every source and transport plugged into it. */
#pragma once

#include <glib.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "dns-answer.h"
#include "dns-server.h"
#include "docker.h"
#include "etcd.h"
#include "hosts.h"
#include "http.h"
#include "rate-ring.h"
#include "manager-status.h"
#include "store.h"

typedef struct Cluster Cluster;

typedef struct Manager {
        Config config;
        int argc; /* kept for config_reload() */
        char **argv;
        char **envp;

        sd_event *event;
        GMainLoop *loop;
        Store *store;

        DnsAnswerConfig answer_config;
        DnsServer *dns;
        DnsForwarder *forwarder; /* NULL until [DNS] Forward= is first set; then kept, disabled when unset */
        struct ForwardUpstreams *forward_upstreams; /* Forward=resolv.conf only */
        /* The snapshots manager_get_status() points into. */
        DnsServerCounters dns_counters;
        DnsForwardStatus forward_status;
        HostsDir *hosts;
        DockerMonitor *docker;     /* NULL when disabled */
        HttpServer *http;          /* NULL when disabled */
        void *bus_data;            /* private to manager-bus.c, which owns the bus connections */
        struct Resolved *resolved; /* systemd-resolved registration; NULL unless [Resolved] Link= */
        Cluster *cluster;          /* NULL unless ENABLE_DNS_SYNC */
        EtcdSource *etcd;          /* NULL unless [Etcd] Endpoints= */

        /* fds passed by systemd, by role; -EBADF when not passed */
        int listen_udp_fd;
        int listen_tcp_fd;
        int listen_http_fd;

        sd_event_source *sigterm_source, *sigint_source, *sighup_source;
        sd_event_source *log_flush_source;   /* timer: ends a window of record-change log lines */
        sd_event_source *store_flush_source; /* hands what store changes replaced to RCU, once a turn */
        sd_event_source *status_timer;       /* refreshes sd_notify STATUS= */
        sd_event_source *qps_timer;          /* samples the query counters into qps, once a second */
        RateRing qps;
        sd_event_source *watchdog_timer; /* checks the answering threads, pings WATCHDOG=1 */
        uint64_t watchdog_usec;          /* WatchdogSec=, 0 when unset */
        uint64_t watchdog_period_usec;
        int dns_stuck; /* an answering thread that did not respond, or -1 */

        unsigned pending_log_lines;
        unsigned suppressed_log_lines;
        bool status_dirty;
        bool stopping;       /* SIGTERM seen: revoking the etcd lease before exit */
        uint64_t start_usec; /* CLOCK_MONOTONIC */
        uint64_t start_realtime_usec;
        int exit_code;
} Manager;

/* Takes ownership of *config (it is moved into the manager and zeroed). */
int manager_new(Manager **ret, Config *config, int argc, char **argv, char **envp);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Binds or takes sockets, loads sources, tells systemd we are ready. */
int manager_start(Manager *m);
/* Runs until SIGTERM/SIGINT; returns the exit code. */
int manager_run(Manager *m);
/* SIGHUP: re-read the config file and rescan the hosts directory. */
int manager_reload(Manager *m);
/* The daemon's status as every front end reports it (see manager-status.h). */
void manager_get_status(Manager *m, ManagerStatus *ret);
