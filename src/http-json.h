/* SPDX-License-Identifier: MIT */
/* The bodies the HTTP API sends, built from plain inputs: JSON documents with
 * the original service's keys, the Prometheus text exposition and the
 * Server-Sent Events of the live feed. No sockets and no Manager here, so the
 * exact output is unit-tested (tests/test-http-json.c). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "dns-forward.h"
#include "dns-server.h"
#include "docker.h"
#include "etcd.h"
#include "hosts.h"
#include "rate-ring.h"
#include "store.h"

/* Record sources as /metrics counts them: the owner prefix and the label. */
typedef enum HttpSource {
        HTTP_SOURCE_HOSTS,
        HTTP_SOURCE_DOCKER,
        HTTP_SOURCE_DBUS,
        HTTP_SOURCE_API,
        HTTP_SOURCE_PEER,
        HTTP_SOURCE_ETCD,
        _HTTP_SOURCE_MAX,
} HttpSource;
const char *http_source_label(HttpSource s);        /* "hosts", ... */
const char *http_source_owner_prefix(HttpSource s); /* "hosts:", ... */

/* Cluster member states as /metrics and the dashboard name them. */
typedef enum HttpMemberState {
        HTTP_MEMBER_ALIVE,
        HTTP_MEMBER_SUSPECT,
        HTTP_MEMBER_DEAD,
        HTTP_MEMBER_LEFT,
        _HTTP_MEMBER_STATE_MAX,
} HttpMemberState;
const char *http_member_state_label(HttpMemberState s);

typedef struct HttpServiceInfo {
        const char *service; /* SERVICE_NAME */
        const char *version;
        const char *environment;
        const char *node_id;
        const char *http_host;
        uint16_t http_port;
        uint64_t now_usec;    /* CLOCK_REALTIME */
        uint64_t start_usec;  /* CLOCK_REALTIME at start */
        uint64_t uptime_usec; /* CLOCK_MONOTONIC difference */
} HttpServiceInfo;

typedef struct HttpStatusInput {
        HttpServiceInfo service;

        /* DNS */
        uint16_t dns_port;
        const char *dns_bind_address; /* NULL: all addresses */
        const char *dns_describe;     /* "udp 127.0.0.1:53, tcp ...", NULL if no server */
        const DnsServerCounters *dns; /* NULL if no server */
        size_t n_records;
        uint64_t store_version;
        const RateRing *queries_per_second; /* NULL: none kept */

        /* Forwarding: forward NULL when there is no forwarder */
        bool forward_enabled;
        const char *forward_source; /* "configured", "resolv.conf", "systemd-resolved" */
        const DnsForwardStatus *forward;

        /* Docker: docker NULL when the monitor is disabled */
        const DockerStatus *docker;

        /* Hosts: hosts NULL when no directory is configured */
        const HostsDirStatus *hosts;

        /* Cluster */
        bool cluster_enabled;
        json_object *cluster_members; /* borrowed array, may be NULL */

        /* etcd: NULL when [Etcd] Endpoints= is not set */
        const EtcdStatus *etcd;
} HttpStatusInput;

typedef struct HttpMetricsInput {
        const DnsServerCounters *dns; /* NULL: all zero */
        bool forward_enabled;
        const DnsForwardStatus *forward; /* NULL: all zero */
        size_t records_by_source[_HTTP_SOURCE_MAX];
        uint64_t store_version;
        bool docker_enabled;
        bool docker_connected;
        unsigned members_by_state[_HTTP_MEMBER_STATE_MAX];
        uint64_t gossip_sent, gossip_received, gossip_rejected;
        const EtcdStatus *etcd; /* NULL: etcd not used */
        /* What the cluster dropped at its limits (ClusterCounters.dropped_*). */
        uint64_t cluster_dropped_members, cluster_dropped_origins, cluster_dropped_records, cluster_dropped_frames;
        /* Record updates and snapshots refused (ClusterCounters.refused_*), and refutations. */
        uint64_t cluster_refused_signature, cluster_refused_unsigned, cluster_refused_relay, cluster_refused_not_member;
        uint64_t cluster_refutations;
        uint64_t uptime_usec;
        bool cluster_enabled; /* cluster series only then: without it they can never move */
        /* The process, as Prometheus's client libraries export it (process_*). */
        double start_time_seconds; /* Unix time */
        double cpu_seconds;        /* user + system */
        uint64_t resident_bytes, virtual_bytes;
        uint64_t open_fds, max_fds;
} HttpMetricsInput;

/* "2024-05-01T12:00:00.123Z" (UTC, milliseconds). Returns a new string. */
char *http_iso8601(uint64_t realtime_usec);

/* {"status": status, "message": message} */
json_object *http_json_message(const char *status, const char *message);
json_object *http_json_health(const HttpServiceInfo *info);
json_object *http_json_status(const HttpStatusInput *in);
/* The "etcd" object of /status and /dns/cluster; {"enabled": false, ...} for NULL. */
json_object *http_json_etcd(const EtcdStatus *e);

/* One record as /dns/records and the live feed show it: hostname, ip_address
 * (the value, whatever the type), ttl, type, source, owner, added. */
json_object *http_json_record(const Record *r);
/* The /dns/records document, sorted by hostname, then type, then value.
 * Filters as store_foreach() takes them, plus type (0: any). The reference
 * form, built with json-c: the server sends the same bytes, built faster and
 * off the loop by http-records.c (tests/test-http-records.c holds them equal). */
json_object *http_json_records(const Store *s, const char *name, const char *owner_prefix, uint16_t type);

/* The Prometheus text exposition (format 0.0.4), HELP and TYPE for each metric. */
char *http_metrics_render(const HttpMetricsInput *in);

/* One SSE message: "event: record\ndata: {...}\n\n". The JSON has change
 * ("added"/"removed"), hostname, type, value, ttl, source, version. */
char *http_sse_record_event(RecordChange change, const Record *r, uint64_t version);
/* A non-record SSE message with a JSON payload (e.g. "hello", "resync"). */
char *http_sse_event(const char *event, json_object *data);

/* Serialises compactly, without escaping slashes. Returns a new string. */
char *http_json_to_string(json_object *o);
