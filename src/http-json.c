/* SPDX-License-Identifier: MIT */
/* Builders for the HTTP API's bodies: JSON with the original service's keys
 * (plus a few new ones), Prometheus text and SSE messages. Pure functions of
 * their inputs; http.c gathers the inputs from the Manager. */

#include <glib.h>
#include <inttypes.h>
#include <stdio.h>

#include "http-json.h"
#include "json-util.h"

static const char *const source_labels[_HTTP_SOURCE_MAX] = {
        [HTTP_SOURCE_HOSTS] = "hosts", [HTTP_SOURCE_DOCKER] = "docker", [HTTP_SOURCE_DBUS] = "dbus",
        [HTTP_SOURCE_API] = "api",     [HTTP_SOURCE_PEER] = "peer",     [HTTP_SOURCE_ETCD] = "etcd",
};

static const char *const source_prefixes[_HTTP_SOURCE_MAX] = {
        [HTTP_SOURCE_HOSTS] = "hosts:", [HTTP_SOURCE_DOCKER] = "docker:", [HTTP_SOURCE_DBUS] = "dbus",
        [HTTP_SOURCE_API] = "api",      [HTTP_SOURCE_PEER] = "peer:",     [HTTP_SOURCE_ETCD] = "etcd:",
};

static const char *const member_state_labels[_HTTP_MEMBER_STATE_MAX] = {
        [HTTP_MEMBER_ALIVE] = "alive",
        [HTTP_MEMBER_SUSPECT] = "suspect",
        [HTTP_MEMBER_DEAD] = "dead",
        [HTTP_MEMBER_LEFT] = "left",
};

/* Always exported, even at zero, so rate() works from the first scrape. */
static const unsigned common_rcodes[] = { 0, 1, 2, 3, 4, 5 };

const char *http_source_label(HttpSource s) {
        return s >= 0 && s < _HTTP_SOURCE_MAX ? source_labels[s] : NULL;
}

const char *http_source_owner_prefix(HttpSource s) {
        return s >= 0 && s < _HTTP_SOURCE_MAX ? source_prefixes[s] : NULL;
}

const char *http_member_state_label(HttpMemberState s) {
        return s >= 0 && s < _HTTP_MEMBER_STATE_MAX ? member_state_labels[s] : NULL;
}

char *http_iso8601(uint64_t realtime_usec) {
        time_t t = (time_t) (realtime_usec / USEC_PER_SEC);
        struct tm tm;
        char buf[64];

        if (!gmtime_r(&t, &tm))
                return g_strdup("1970-01-01T00:00:00.000Z");
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        return g_strdup_printf("%s.%03uZ", buf, (unsigned) (realtime_usec % USEC_PER_SEC / 1000));
}

static json_object *json_string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *json_time_or_null(uint64_t realtime_usec) {
        g_autofree char *s = NULL;

        if (realtime_usec == 0)
                return NULL;
        s = http_iso8601(realtime_usec);
        return json_object_new_string(s);
}

char *http_json_to_string(json_object *o) {
        return g_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

json_object *http_json_message(const char *status, const char *message) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "status", json_object_new_string(status));
        json_object_object_add(o, "message", json_object_new_string(message));
        return o;
}

static void add_service_keys(json_object *o, const HttpServiceInfo *info) {
        g_autofree char *now = http_iso8601(info->now_usec);

        json_object_object_add(o, "timestamp", json_object_new_string(now));
        json_object_object_add(o, "service", json_object_new_string(strempty(info->service)));
        json_object_object_add(o, "version", json_object_new_string(strempty(info->version)));
}

json_object *http_json_health(const HttpServiceInfo *info) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "status", json_object_new_string("healthy"));
        add_service_keys(o, info);
        return o;
}

static double msec(uint64_t sum_usec, uint64_t count) {
        return count > 0 ? (double) sum_usec / (double) count / 1000.0 : 0.0;
}

static json_object *status_forwarding(const HttpStatusInput *in) {
        const DnsForwardStatus *f = in->forward;
        const DnsForwardCounters zero = {}, *c = f ? &f->counters : &zero;
        json_object *o = json_object_new_object(), *ups = json_object_new_array(), *allow, *cache;

        json_object_object_add(o, "enabled", json_object_new_boolean(in->forward_enabled && f && f->enabled));
        json_object_object_add(o, "source", json_string_or_null(in->forward_enabled ? in->forward_source : NULL));
        for (size_t i = 0; f && i < f->n_upstreams; i++) {
                const DnsForwardUpstreamStatus *u = f->upstreams + i;
                json_object *j = json_object_new_object();

                json_object_object_add(j, "address", json_object_new_string(u->address));
                json_object_object_add(j, "state",
                                       json_object_new_string(u->failing       ? "failing"
                                                              : u->answers > 0 ? "ok"
                                                                               : "unused"));
                json_object_object_add(j, "queries", json_object_new_int64((int64_t) u->queries));
                json_object_object_add(j, "answers", json_object_new_int64((int64_t) u->answers));
                json_object_object_add(j, "failures", json_object_new_int64((int64_t) u->failures));
                json_object_object_add(j, "average_rtt_ms", json_object_new_double(msec(u->rtt_usec_sum, u->answers)));
                json_object_object_add(j, "last_rtt_ms", json_object_new_double((double) u->last_rtt_usec / 1000.0));
                json_object_array_add(ups, j);
        }
        json_object_object_add(o, "upstreams", ups);
        allow = json_object_new_array();
        for (char **a = f ? f->allow : NULL; a && *a; a++)
                json_object_array_add(allow, json_object_new_string(*a));
        json_object_object_add(o, "allow", allow);
        json_object_object_add(o, "allow_default", json_object_new_boolean(!f || f->allow_default));

        cache = json_object_new_object();
        json_object_object_add(cache, "size", json_object_new_int64(f ? f->cache_size : 0));
        json_object_object_add(cache, "max_ttl", json_object_new_int64(f ? f->max_ttl : 0));
        json_object_object_add(cache, "entries", json_object_new_int64((int64_t) c->cache_entries));
        json_object_object_add(cache, "bytes", json_object_new_int64((int64_t) c->cache_bytes));
        json_object_object_add(cache, "hits", json_object_new_int64((int64_t) c->cache_hits));
        json_object_object_add(cache, "misses", json_object_new_int64((int64_t) c->cache_misses));
        json_object_object_add(o, "cache", cache);

        json_object_object_add(o, "queries", json_object_new_int64((int64_t) c->queries));
        json_object_object_add(o, "refused", json_object_new_int64((int64_t) c->refused));
        json_object_object_add(o, "servfail", json_object_new_int64((int64_t) c->servfail));
        json_object_object_add(o, "coalesced", json_object_new_int64((int64_t) c->coalesced));
        json_object_object_add(o, "upstream_queries", json_object_new_int64((int64_t) c->upstream_queries));
        json_object_object_add(o, "upstream_tcp", json_object_new_int64((int64_t) c->upstream_tcp));
        json_object_object_add(o, "upstream_failures", json_object_new_int64((int64_t) c->upstream_failures));
        json_object_object_add(o, "mismatched", json_object_new_int64((int64_t) c->mismatched));
        json_object_object_add(o, "dropped", json_object_new_int64((int64_t) c->dropped));
        json_object_object_add(o, "average_latency_ms",
                               json_object_new_double(msec(c->latency_usec_sum, c->latency_count)));
        return o;
}

static json_object *status_dns(const HttpStatusInput *in) {
        json_object *o = json_object_new_object(), *by_type, *by_rcode;
        const DnsServerCounters *c = in->dns;
        char name[32];

        /* The original's keys first: port, bind_address, running. */
        json_object_object_add(o, "port", json_object_new_int(in->dns_port));
        json_object_object_add(o, "bind_address", json_object_new_string(in->dns_bind_address ?: "0.0.0.0"));
        json_object_object_add(o, "running", json_object_new_boolean(c != NULL));
        json_object_object_add(o, "bind", json_string_or_null(in->dns_describe));
        json_object_object_add(o, "records", json_object_new_int64((int64_t) in->n_records));
        json_object_object_add(o, "store_version", json_object_new_int64((int64_t) in->store_version));
        json_object_object_add(o, "queries",
                               json_object_new_int64(c ? (int64_t) (c->queries_udp + c->queries_tcp) : 0));
        json_object_object_add(o, "queries_udp", json_object_new_int64(c ? (int64_t) c->queries_udp : 0));
        json_object_object_add(o, "queries_tcp", json_object_new_int64(c ? (int64_t) c->queries_tcp : 0));

        by_type = json_object_new_object();
        for (int i = 0; i < DNS_SERVER_N_TYPES; i++)
                json_object_object_add(by_type, dns_server_type_label(i),
                                       json_object_new_int64(c ? (int64_t) c->by_type[i] : 0));
        json_object_object_add(o, "queries_by_type", by_type);

        by_rcode = json_object_new_object();
        for (unsigned i = 0; i < ELEMENTSOF(c->by_rcode); i++) {
                uint64_t n = c ? c->by_rcode[i] : 0;
                bool common = false;

                for (size_t j = 0; j < ELEMENTSOF(common_rcodes); j++)
                        common = common || common_rcodes[j] == i;
                if (n == 0 && !common)
                        continue;

                json_object_object_add(by_rcode, dns_rcode_format(i, name), json_object_new_int64((int64_t) n));
        }
        json_object_object_add(o, "responses_by_rcode", by_rcode);
        json_object_object_add(o, "truncated", json_object_new_int64(c ? (int64_t) c->truncated : 0));
        json_object_object_add(o, "tcp_connections", json_object_new_int64(c ? (int64_t) c->tcp_connections : 0));
        json_object_object_add(o, "tcp_rejected", json_object_new_int64(c ? (int64_t) c->tcp_rejected : 0));

        /* Queries answered in each of the last seconds, oldest first: the
         * dashboard's chart. */
        json_object *qps = json_object_new_array_ext(in->queries_per_second ? (int) in->queries_per_second->n : 0);
        for (size_t i = 0; in->queries_per_second && i < in->queries_per_second->n; i++)
                json_object_array_add(qps, json_object_new_int64(rate_ring_get(in->queries_per_second, i)));
        json_object_object_add(o, "queries_per_second", qps);
        json_object_object_add(o, "queries_forwarded", json_object_new_int64(c ? (int64_t) c->forwarded : 0));
        json_object_object_add(o, "forwarding", status_forwarding(in));
        return o;
}

static json_object *status_docker(const DockerStatus *d) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "enabled", json_object_new_boolean(d != NULL));
        json_object_object_add(o, "running", json_object_new_boolean(d != NULL));
        json_object_object_add(o, "state", json_object_new_string(d ? docker_state_to_string(d->state) : "disabled"));
        json_object_object_add(o, "connected", json_object_new_boolean(d && d->state == DOCKER_CONNECTED));
        json_object_object_add(o, "socket", json_string_or_null(d ? d->socket_path : NULL));
        json_object_object_add(o, "api_version", json_string_or_null(d ? d->api_version : NULL));
        json_object_object_add(o, "last_error", json_string_or_null(d ? d->last_error : NULL));
        json_object_object_add(o, "connected_since", json_time_or_null(d ? d->connected_since_usec : 0));
        json_object_object_add(o, "next_retry", json_time_or_null(d ? d->next_retry_usec : 0));
        json_object_object_add(o, "containers", json_object_new_int(d ? (int) d->n_containers : 0));
        json_object_object_add(o, "hostip", json_string_or_null(d ? d->hostip : NULL));
        json_object_object_add(o, "hostip6", json_string_or_null(d ? d->hostip6 : NULL));
        return o;
}

/* The first of the current warnings, as the log words them: file, line
 * (null for the file or the directory as a whole) and message. */
static json_object *status_hosts_warnings(const HostsDirStatus *h) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; h && i < h->n_warnings_listed; i++) {
                const HostsWarning *w = &h->warnings[i];

                json_object_array_add(a, json_hosts_warning_new(w->file, w->line, w->why));
        }
        return a;
}

static json_object *status_hosts(const HostsDirStatus *h) {
        json_object *o = json_object_new_object();

        /* The original's keys: enabled, directory, running, records_count. */
        json_object_object_add(o, "enabled", json_object_new_boolean(h != NULL));
        json_object_object_add(o, "directory", json_string_or_null(h ? h->path : NULL));
        json_object_object_add(o, "running", json_object_new_boolean(h != NULL));
        json_object_object_add(o, "records_count", json_object_new_int(h ? (int) h->n_records : 0));
        json_object_object_add(o, "exists", json_object_new_boolean(h && h->exists));
        json_object_object_add(o, "files", json_object_new_int(h ? (int) h->n_files : 0));
        json_object_object_add(o, "records", json_object_new_int(h ? (int) h->n_records : 0));
        json_object_object_add(o, "warnings", json_object_new_int(h ? (int) h->n_warnings : 0));
        json_object_object_add(o, "warning_list", status_hosts_warnings(h));
        json_object_object_add(o, "last_load", json_time_or_null(h ? h->last_load_usec : 0));
        return o;
}

static json_object *status_cluster(const HttpStatusInput *in) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "enabled", json_object_new_boolean(in->cluster_enabled));
        json_object_object_add(o, "running", json_object_new_boolean(in->cluster_enabled));
        json_object_object_add(o, "node_id", json_string_or_null(in->service.node_id));
        json_object_object_add(o, "members",
                               in->cluster_members ? json_object_get(in->cluster_members) : json_object_new_array());
        return o;
}

json_object *http_json_etcd(const EtcdStatus *e) {
        json_object *o = json_object_new_object(), *endpoints = json_object_new_array();
        char lease[32];

        for (char *const *p = e ? e->endpoints : NULL; p && *p; p++)
                json_object_array_add(endpoints, json_object_new_string(*p));
        /* Lease ids in hex, as etcdctl prints them. */
        snprintf(lease, sizeof lease, "%" PRIx64, e ? (uint64_t) e->lease_id : 0);

        json_object_object_add(o, "enabled", json_object_new_boolean(e != NULL));
        json_object_object_add(o, "state", json_object_new_string(e ? etcd_state_to_string(e->state) : "disabled"));
        json_object_object_add(o, "connected", json_object_new_boolean(e && e->state == ETCD_CONNECTED));
        json_object_object_add(o, "endpoint", json_string_or_null(e ? e->endpoint : NULL));
        json_object_object_add(o, "endpoints", endpoints);
        json_object_object_add(o, "prefix", json_string_or_null(e ? e->prefix : NULL));
        json_object_object_add(o, "last_error", json_string_or_null(e ? e->last_error : NULL));
        json_object_object_add(o, "connected_since", json_time_or_null(e ? e->connected_since_usec : 0));
        json_object_object_add(o, "next_retry", json_time_or_null(e ? e->next_retry_usec : 0));
        json_object_object_add(o, "lease", e && e->lease_id ? json_object_new_string(lease) : NULL);
        json_object_object_add(o, "lease_ttl", json_object_new_int64(e ? e->lease_ttl : 0));
        json_object_object_add(o, "revision", json_object_new_int64(e ? e->revision : 0));
        json_object_object_add(o, "keys", json_object_new_int64(e ? e->n_keys : 0));
        json_object_object_add(o, "published", json_object_new_int64(e ? e->n_published : 0));
        json_object_object_add(o, "pending", json_object_new_int64(e ? e->n_pending : 0));
        json_object_object_add(o, "resyncs", json_object_new_int64(e ? (int64_t) e->resyncs : 0));
        json_object_object_add(o, "events", json_object_new_int64(e ? (int64_t) e->events : 0));
        json_object_object_add(o, "transactions", json_object_new_int64(e ? (int64_t) e->txns : 0));
        json_object_object_add(o, "failures", json_object_new_int64(e ? (int64_t) e->failures : 0));
        json_object_object_add(o, "skipped", json_object_new_int64(e ? (int64_t) e->skipped : 0));
        return o;
}

json_object *http_json_status(const HttpStatusInput *in) {
        json_object *o = json_object_new_object(), *http;
        g_autofree char *started = http_iso8601(in->service.start_usec);

        json_object_object_add(o, "status", json_object_new_string("running"));
        add_service_keys(o, &in->service);
        json_object_object_add(o, "environment", json_object_new_string(strempty(in->service.environment)));
        json_object_object_add(o, "dns_server", status_dns(in));
        json_object_object_add(o, "docker_monitor", status_docker(in->docker));
        json_object_object_add(o, "hosts_monitor", status_hosts(in->hosts));
        /* The original sent a string here ("N/A"); seconds are what a script can use. */
        json_object_object_add(o, "uptime", json_object_new_int64((int64_t) (in->service.uptime_usec / USEC_PER_SEC)));
        json_object_object_add(o, "dns_sync_cluster", status_cluster(in));
        json_object_object_add(o, "etcd", http_json_etcd(in->etcd));

        /* New keys, for the dashboard. */
        json_object_object_add(o, "node_id", json_string_or_null(in->service.node_id));
        json_object_object_add(o, "started", json_object_new_string(started));
        http = json_object_new_object();
        json_object_object_add(http, "host", json_string_or_null(in->service.http_host));
        json_object_object_add(http, "port", json_object_new_int(in->service.http_port));
        json_object_object_add(o, "http_server", http);
        return o;
}

json_object *http_json_record(const Record *r) {
        json_object *o = json_object_new_object();
        g_autofree char *source = record_source(r);
        g_autofree char *added = http_iso8601(r->added_usec);

        json_object_object_add(o, "hostname", json_object_new_string(r->name));
        json_object_object_add(o, "ip_address", json_object_new_string(strempty(r->value)));
        json_object_object_add(o, "ttl", json_object_new_int64(r->ttl));
        json_object_object_add(o, "type", json_object_new_string(dns_type_to_string(r->type) ?: "unknown"));
        json_object_object_add(o, "source", json_object_new_string(strempty(source)));
        json_object_object_add(o, "owner", json_object_new_string(strempty(r->owner)));
        json_object_object_add(o, "added", json_object_new_string(added));
        return o;
}

json_object *http_json_records(const Store *s, const char *name, const char *owner_prefix, uint16_t type) {
        g_autoptr(GPtrArray) records = g_ptr_array_new();
        json_object *o = json_object_new_object(), *array;

        store_collect(s, name, owner_prefix, type, records);
        g_ptr_array_sort(records, record_compare_ptr);

        array = json_object_new_array_ext((int) records->len);
        for (guint i = 0; i < records->len; i++)
                json_object_array_add(array, http_json_record(records->pdata[i]));

        json_object_object_add(o, "status", json_object_new_string("success"));
        json_object_object_add(o, "total_records", json_object_new_int64(records->len));
        /* The store version these records are from: the live feed's events
         * with a version at or below it are already included. */
        json_object_object_add(o, "version", json_object_new_int64((int64_t) store_version(s)));
        json_object_object_add(o, "records", array);
        return o;
}

/* --- Prometheus text format 0.0.4 ------------------------------------------ */

static void metric_header(GString *out, const char *name, const char *type, const char *help) {
        g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric of one series without labels: its header, then its value. */
static void metric_value(GString *out, const char *name, const char *type, const char *help, uint64_t value) {
        metric_header(out, name, type, help);
        g_string_append_printf(out, "%s %" PRIu64 "\n", name, value);
}

/* A label value: backslash, quote and newline escaped. */
static char *label_escape(const char *s) {
        GString *o = g_string_new(NULL);

        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        g_string_append_c(o, '\\');
                if (*s == '\n')
                        g_string_append(o, "\\n");
                else
                        g_string_append_c(o, *s);
        }
        return g_string_free(o, FALSE);
}

static void metrics_forward(GString *out, const HttpMetricsInput *in) {
        const DnsForwardStatus *f = in->forward;
        const DnsForwardCounters zero = {}, *c = f ? &f->counters : &zero;
        static const struct {
                const char *name, *help;
                size_t offset;
        } counters[] = {
                { "joyride_forward_queries_total", "Questions about names that are not ours, handed to the forwarder.",
                  offsetof(DnsForwardCounters, queries) },
                { "joyride_forward_refused_total",
                  "Forwardable questions refused: client outside ForwardAllow, or forwarding off.",
                  offsetof(DnsForwardCounters, refused) },
                { "joyride_forward_coalesced_total", "Questions that joined the same question already sent upstream.",
                  offsetof(DnsForwardCounters, coalesced) },
                { "joyride_forward_servfail_total", "SERVFAIL sent because no upstream answered in time.",
                  offsetof(DnsForwardCounters, servfail) },
                { "joyride_forward_mismatched_total", "Upstream replies dropped: wrong ID, question or source.",
                  offsetof(DnsForwardCounters, mismatched) },
                { "joyride_forward_dropped_total",
                  "Questions dropped: the forwarder's queue or in-flight table was full.",
                  offsetof(DnsForwardCounters, dropped) },
                { "joyride_forward_upstream_tcp_total",
                  "Upstream queries sent over TCP (truncated answers, TCP clients).",
                  offsetof(DnsForwardCounters, upstream_tcp) },
        };

        metric_value(out, "joyride_forward_enabled", "gauge", "1 when names that are not ours are forwarded, else 0.",
                     in->forward_enabled && f && f->enabled);
        for (size_t i = 0; i < ELEMENTSOF(counters); i++)
                metric_value(out, counters[i].name, "counter", counters[i].help,
                             *(const uint64_t *) ((const uint8_t *) c + counters[i].offset));
        metric_header(out, "joyride_forward_cache_lookups_total", "counter", "Forward cache lookups, by result.");
        g_string_append_printf(out, "joyride_forward_cache_lookups_total{result=\"hit\"} %" PRIu64 "\n", c->cache_hits);
        g_string_append_printf(out, "joyride_forward_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
                               c->cache_misses);
        metric_value(out, "joyride_forward_cache_entries", "gauge", "Answers in the forward cache.", c->cache_entries);
        metric_value(out, "joyride_forward_cache_bytes", "gauge", "Bytes the forward cache holds.", c->cache_bytes);
        metric_header(out, "joyride_forward_latency_seconds", "summary",
                      "From a question's hand-off to its upstream answer (cache misses that were answered).");
        g_string_append_printf(out, "joyride_forward_latency_seconds_sum %.6f\n",
                               (double) c->latency_usec_sum / USEC_PER_SEC);
        g_string_append_printf(out, "joyride_forward_latency_seconds_count %" PRIu64 "\n", c->latency_count);

        metric_header(out, "joyride_forward_upstream_queries_total", "counter", "Queries sent to each upstream.");
        for (size_t i = 0; f && i < f->n_upstreams; i++) {
                g_autofree char *l = label_escape(f->upstreams[i].address);
                g_string_append_printf(out, "joyride_forward_upstream_queries_total{upstream=\"%s\"} %" PRIu64 "\n", l,
                                       f->upstreams[i].queries);
        }
        metric_header(out, "joyride_forward_upstream_failures_total", "counter",
                      "Queries to each upstream that timed out or failed.");
        for (size_t i = 0; f && i < f->n_upstreams; i++) {
                g_autofree char *l = label_escape(f->upstreams[i].address);
                g_string_append_printf(out, "joyride_forward_upstream_failures_total{upstream=\"%s\"} %" PRIu64 "\n", l,
                                       f->upstreams[i].failures);
        }
        metric_header(out, "joyride_forward_upstream_rtt_seconds", "summary",
                      "Round trips of each upstream's answers.");
        for (size_t i = 0; f && i < f->n_upstreams; i++) {
                g_autofree char *l = label_escape(f->upstreams[i].address);
                g_string_append_printf(out, "joyride_forward_upstream_rtt_seconds_sum{upstream=\"%s\"} %.6f\n", l,
                                       (double) f->upstreams[i].rtt_usec_sum / USEC_PER_SEC);
                g_string_append_printf(out, "joyride_forward_upstream_rtt_seconds_count{upstream=\"%s\"} %" PRIu64 "\n",
                                       l, f->upstreams[i].answers);
        }
        metric_header(out, "joyride_forward_upstream_up", "gauge", "0 when an upstream's last query failed, else 1.");
        for (size_t i = 0; f && i < f->n_upstreams; i++) {
                g_autofree char *l = label_escape(f->upstreams[i].address);
                g_string_append_printf(out, "joyride_forward_upstream_up{upstream=\"%s\"} %d\n", l,
                                       !f->upstreams[i].failing);
        }
}

/* One series of joyride_dns_request_duration_seconds: the buckets made
 * cumulative, +Inf, then _sum and _count. */
static void metrics_duration(GString *out, const char *transport, const char *answer, const DnsDurationHistogram *h) {
        const char *name = "joyride_dns_request_duration_seconds";
        uint64_t cumulative = 0;

        for (unsigned i = 0; i < DNS_DURATION_BUCKETS; i++) {
                cumulative += h->buckets[i];
                g_string_append_printf(out, "%s_bucket{transport=\"%s\",answer=\"%s\",le=\"%s\"} %" PRIu64 "\n", name,
                                       transport, answer,
                                       i < DNS_DURATION_BOUNDS ? dns_duration_bounds_label[i] : "+Inf", cumulative);
        }
        g_string_append_printf(out, "%s_sum{transport=\"%s\",answer=\"%s\"} %.9f\n", name, transport, answer,
                               (double) h->sum_nsec / 1e9);
        g_string_append_printf(out, "%s_count{transport=\"%s\",answer=\"%s\"} %" PRIu64 "\n", name, transport, answer,
                               cumulative);
}

/* Long on purpose: a flat list of the exposed series, one block per metric,
 * in the order /metrics shows them. */
char *http_metrics_render(const HttpMetricsInput *in) {
        const DnsServerCounters zero = {}, *c = in->dns ?: &zero;
        GString *out = g_string_sized_new(4096);
        char name[32];

        metric_header(out, "joyride_dns_queries_total", "counter", "DNS queries answered, by query type.");
        for (int i = 0; i < DNS_SERVER_N_TYPES; i++)
                g_string_append_printf(out, "joyride_dns_queries_total{type=\"%s\"} %" PRIu64 "\n",
                                       dns_server_type_label(i), c->by_type[i]);

        metric_header(out, "joyride_dns_responses_total", "counter", "DNS responses sent, by response code.");
        for (unsigned i = 0; i < ELEMENTSOF(c->by_rcode); i++) {
                bool common = false;

                for (size_t j = 0; j < ELEMENTSOF(common_rcodes); j++)
                        common = common || common_rcodes[j] == i;
                if (c->by_rcode[i] == 0 && !common)
                        continue;
                g_string_append_printf(out, "joyride_dns_responses_total{rcode=\"%s\"} %" PRIu64 "\n",
                                       dns_rcode_format(i, name), c->by_rcode[i]);
        }

        metric_header(out, "joyride_dns_transport_queries_total", "counter", "DNS queries received, by transport.");
        g_string_append_printf(out, "joyride_dns_transport_queries_total{transport=\"udp\"} %" PRIu64 "\n",
                               c->queries_udp);
        g_string_append_printf(out, "joyride_dns_transport_queries_total{transport=\"tcp\"} %" PRIu64 "\n",
                               c->queries_tcp);

        metric_header(out, "joyride_dns_request_duration_seconds", "histogram",
                      "From a query's arrival (the kernel's receive timestamp) to its reply leaving, by transport; "
                      "answer=\"forwarded\" for questions answered through the forwarder (cache, upstream).");
        metrics_duration(out, "udp", "local", &c->duration[DNS_TRANSPORT_UDP]);
        metrics_duration(out, "tcp", "local", &c->duration[DNS_TRANSPORT_TCP]);
        /* Only where they can move: with a forwarder. */
        if (in->forward) {
                metrics_duration(out, "udp", "forwarded", &in->forward->counters.duration[DNS_TRANSPORT_UDP]);
                metrics_duration(out, "tcp", "forwarded", &in->forward->counters.duration[DNS_TRANSPORT_TCP]);
        }

        metric_value(out, "joyride_dns_truncated_total", "counter", "UDP responses sent truncated (TC bit).",
                     c->truncated);
        metric_value(out, "joyride_dns_tcp_connections_total", "counter", "DNS TCP connections accepted.",
                     c->tcp_connections);
        metric_value(out, "joyride_dns_tcp_rejected_total", "counter",
                     "DNS TCP connections refused because of the connection cap.", c->tcp_rejected);

        /* Like Docker's and the cluster's: only where they can move. */
        if (in->forward)
                metrics_forward(out, in);

        metric_header(out, "joyride_records", "gauge", "Records in the store, by source.");
        for (int i = 0; i < _HTTP_SOURCE_MAX; i++) {
                if (i == HTTP_SOURCE_PEER && !in->cluster_enabled)
                        continue;
                if (i == HTTP_SOURCE_DOCKER && !in->docker_enabled)
                        continue;
                if (i == HTTP_SOURCE_ETCD && !in->etcd)
                        continue;
                g_string_append_printf(out, "joyride_records{source=\"%s\"} %zu\n", source_labels[i],
                                       in->records_by_source[i]);
        }

        metric_value(out, "joyride_store_changes_total", "counter",
                     "Changes to the record store (records added or removed) since start.", in->store_version);

        if (in->docker_enabled) {
                metric_value(out, "joyride_docker_connected", "gauge",
                             "1 when the Docker monitor is connected to the engine, else 0.", in->docker_connected);
        }

        if (in->cluster_enabled) {
                metric_header(out, "joyride_cluster_members", "gauge", "Cluster members known, by state.");
                for (int i = 0; i < _HTTP_MEMBER_STATE_MAX; i++)
                        g_string_append_printf(out, "joyride_cluster_members{state=\"%s\"} %u\n",
                                               member_state_labels[i], in->members_by_state[i]);

                metric_header(out, "joyride_gossip_packets_total", "counter", "Cluster gossip packets, by direction.");
                g_string_append_printf(out, "joyride_gossip_packets_total{direction=\"sent\"} %" PRIu64 "\n",
                                       in->gossip_sent);
                g_string_append_printf(out, "joyride_gossip_packets_total{direction=\"received\"} %" PRIu64 "\n",
                                       in->gossip_received);
                g_string_append_printf(out, "joyride_gossip_packets_total{direction=\"rejected\"} %" PRIu64 "\n",
                                       in->gossip_rejected);

                metric_header(
                        out, "joyride_cluster_dropped_total", "counter",
                        "What the cluster dropped at a limit: new members beyond MaxMembers, records beyond "
                        "MaxRecordsPerNode, nodes' record tables, push-pull frames too large or unauthenticated.");
                g_string_append_printf(out, "joyride_cluster_dropped_total{what=\"members\"} %" PRIu64 "\n",
                                       in->cluster_dropped_members);
                g_string_append_printf(out, "joyride_cluster_dropped_total{what=\"records\"} %" PRIu64 "\n",
                                       in->cluster_dropped_records);
                g_string_append_printf(out, "joyride_cluster_dropped_total{what=\"origins\"} %" PRIu64 "\n",
                                       in->cluster_dropped_origins);
                g_string_append_printf(out, "joyride_cluster_dropped_total{what=\"frames\"} %" PRIu64 "\n",
                                       in->cluster_dropped_frames);

                metric_header(out, "joyride_cluster_refused_total", "counter",
                              "Record updates and snapshots refused: not signed with the origin's key, unsigned where "
                              "a signature is needed, relayed out of step with the origin, or not from a live member.");
                g_string_append_printf(out, "joyride_cluster_refused_total{reason=\"signature\"} %" PRIu64 "\n",
                                       in->cluster_refused_signature);
                g_string_append_printf(out, "joyride_cluster_refused_total{reason=\"unsigned\"} %" PRIu64 "\n",
                                       in->cluster_refused_unsigned);
                g_string_append_printf(out, "joyride_cluster_refused_total{reason=\"relay\"} %" PRIu64 "\n",
                                       in->cluster_refused_relay);
                g_string_append_printf(out, "joyride_cluster_refused_total{reason=\"not_member\"} %" PRIu64 "\n",
                                       in->cluster_refused_not_member);
                metric_value(out, "joyride_cluster_refutations_total", "counter",
                             "Record versions in this node's name that it never issued, refuted with newer ones.",
                             in->cluster_refutations);
        }

        if (in->etcd) {
                const EtcdStatus *e = in->etcd;

                metric_value(out, "joyride_etcd_connected", "gauge",
                             "1 when the node reads and writes its records through etcd, else 0.",
                             e->state == ETCD_CONNECTED);
                metric_header(out, "joyride_etcd_keys", "gauge",
                              "Keys in etcd: served (others', holding records), published (this node's), pending (to "
                              "write).");
                g_string_append_printf(out, "joyride_etcd_keys{kind=\"served\"} %u\n", e->n_keys);
                g_string_append_printf(out, "joyride_etcd_keys{kind=\"published\"} %u\n", e->n_published);
                g_string_append_printf(out, "joyride_etcd_keys{kind=\"pending\"} %u\n", e->n_pending);
                metric_header(out, "joyride_etcd_revision", "gauge", "The etcd revision of the last change read.");
                g_string_append_printf(out, "joyride_etcd_revision %" PRId64 "\n", e->revision);
                metric_value(out, "joyride_etcd_resyncs_total", "counter",
                             "Full reads of the etcd prefix (start, reconnects, compactions).", e->resyncs);
                metric_value(out, "joyride_etcd_events_total", "counter", "Changes read from the etcd watch.",
                             e->events);
                metric_value(out, "joyride_etcd_transactions_total", "counter",
                             "Transactions of this node's changes written to etcd.", e->txns);
                metric_value(out, "joyride_etcd_failures_total", "counter",
                             "Connections to etcd members lost or refused.", e->failures);
                metric_value(out, "joyride_etcd_skipped_keys_total", "counter",
                             "Keys below the prefix that could not be served.", e->skipped);
        }

        metric_header(out, "joyride_uptime_seconds", "gauge", "Seconds since the daemon started.");
        g_string_append_printf(out, "joyride_uptime_seconds %.3f\n", (double) in->uptime_usec / USEC_PER_SEC);

        metric_header(out, "joyride_build_info", "gauge", "Always 1; the labels say which joyrided this is.");
        g_string_append_printf(out, "joyride_build_info{version=\"%s\"} 1\n", JOYRIDE_VERSION);

        metric_header(out, "process_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch in seconds.");
        g_string_append_printf(out, "process_start_time_seconds %.3f\n", in->start_time_seconds);
        metric_header(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        g_string_append_printf(out, "process_cpu_seconds_total %.2f\n", in->cpu_seconds);
        metric_value(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                     in->resident_bytes);
        metric_value(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", in->virtual_bytes);
        metric_value(out, "process_open_fds", "gauge", "Number of open file descriptors.", in->open_fds);
        metric_value(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", in->max_fds);

        return g_string_free(out, FALSE);
}

/* --- Server-Sent Events ------------------------------------------------------ */

char *http_sse_event(const char *event, json_object *data) {
        g_autofree char *json = http_json_to_string(data);

        /* json-c escapes newlines inside strings, so the payload is one line
         * and one data: field is enough. */
        return g_strdup_printf("event: %s\ndata: %s\n\n", event, json);
}

char *http_sse_record_event(RecordChange change, const Record *r, uint64_t version) {
        json_object *o = json_object_new_object();
        g_autofree char *source = record_source(r);
        char *s;

        json_object_object_add(o, "change", json_object_new_string(change == RECORD_ADDED ? "added" : "removed"));
        json_object_object_add(o, "hostname", json_object_new_string(r->name));
        json_object_object_add(o, "type", json_object_new_string(dns_type_to_string(r->type) ?: "unknown"));
        json_object_object_add(o, "value", json_object_new_string(strempty(r->value)));
        json_object_object_add(o, "ttl", json_object_new_int64(r->ttl));
        json_object_object_add(o, "source", json_object_new_string(strempty(source)));
        json_object_object_add(o, "owner", json_object_new_string(strempty(r->owner)));
        json_object_object_add(o, "version", json_object_new_int64((int64_t) version));
        s = http_sse_event("record", o);
        json_object_put(o);
        return s;
}
