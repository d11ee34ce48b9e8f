/* SPDX-License-Identifier: MIT */
/* The HTTP API's bodies, without a server: the JSON documents keep the
 * original service's keys, /dns/records filters and sorts, /metrics is valid
 * Prometheus text with the counters it was given, and a feed message is one
 * well-formed SSE event whatever the record holds. */

#include <glib.h>
#include <json-c/json.h>
#include <stdio.h>

#include "http-json.h"
#include "json-util.h"
#include "test-util.h"

static json_object *get(json_object *o, const char *key) {
        json_object *v = NULL;

        CHECK(json_object_object_get_ex(o, key, &v));
        return v;
}

static const char *get_str(json_object *o, const char *key) {
        return json_object_get_string(get(o, key));
}

static void test_iso8601(void) {
        g_autofree char *epoch = http_iso8601(0);
        g_autofree char *t = http_iso8601(1700000000123456ull);

        CHECK_STREQ(epoch, "1970-01-01T00:00:00.000Z");
        CHECK_STREQ(t, "2023-11-14T22:13:20.123Z");
}

static void test_health(void) {
        HttpServiceInfo info = { .service = "joyride-dns", .version = "1.2.3", .now_usec = 1700000000000000ull };
        json_object *o = http_json_health(&info);

        CHECK_STREQ(get_str(o, "status"), "healthy");
        CHECK_STREQ(get_str(o, "timestamp"), "2023-11-14T22:13:20.000Z");
        CHECK_STREQ(get_str(o, "service"), "joyride-dns");
        CHECK_STREQ(get_str(o, "version"), "1.2.3");
        CHECK_INT_EQ(json_object_object_length(o), 4);
        json_object_put(o);
}

static void test_rate_ring(void) {
        RateRing r = {};

        rate_ring_sample(&r, 100); /* the first sample only sets the base */
        CHECK_INT_EQ(r.n, 0);
        rate_ring_sample(&r, 105);
        rate_ring_sample(&r, 105);
        rate_ring_sample(&r, 200);
        CHECK_INT_EQ(r.n, 3);
        CHECK_INT_EQ(rate_ring_get(&r, 0), 5);
        CHECK_INT_EQ(rate_ring_get(&r, 1), 0);
        CHECK_INT_EQ(rate_ring_get(&r, 2), 95);
        rate_ring_sample(&r, 50); /* a counter that went back counts 0 */
        CHECK_INT_EQ(rate_ring_get(&r, 3), 0);
        for (unsigned i = 1; i <= 2 * RATE_RING_SIZE; i++)
                rate_ring_sample(&r, 50 + (uint64_t) i * i);
        CHECK_INT_EQ(r.n, RATE_RING_SIZE);
        /* oldest first: the last RATE_RING_SIZE differences, (i*i - (i-1)*(i-1)) = 2i - 1 */
        CHECK_INT_EQ(rate_ring_get(&r, 0), 2 * (RATE_RING_SIZE + 1) - 1);
        CHECK_INT_EQ(rate_ring_get(&r, RATE_RING_SIZE - 1), 2 * (2 * RATE_RING_SIZE) - 1);
}

static void test_status(void) {
        DnsServerCounters c = { .queries_udp = 7, .queries_tcp = 2 };
        RateRing qps = {};

        rate_ring_sample(&qps, 0);
        rate_ring_sample(&qps, 3);
        rate_ring_sample(&qps, 10);
        DockerStatus ds = { .state = DOCKER_CONNECTED,
                            .socket_path = "/run/docker.sock",
                            .api_version = "1.43",
                            .n_containers = 4,
                            .connected_since_usec = 1700000000000000ull };
        const HostsWarning warnings[] = {
                { .file = "/etc/joyride/hosts/big.hosts", .line = 0, .why = "larger than 64 MiB, ignoring it" },
                { .file = "/etc/joyride/hosts/lan.hosts", .line = 3, .why = "not an IP address: '10.0.0.300'" },
        };
        HostsDirStatus hs = {
                .path = "/etc/joyride/hosts",
                .exists = true,
                .n_files = 2,
                .n_records = 9,
                .n_warnings = 5,
                .warnings = warnings,
                .n_warnings_listed = ELEMENTSOF(warnings),
        };
        HttpStatusInput in = {
                .service = { .service = "s",
                             .version = "v",
                             .environment = "test",
                             .node_id = "node-a",
                             .uptime_usec = 90 * USEC_PER_SEC + 5 },
                .dns_port = 5353,
                .dns = &c,
                .n_records = 11,
                .docker = &ds,
                .hosts = &hs,
                .queries_per_second = &qps,
        };
        json_object *o, *dns, *d, *h, *cl;

        c.by_type[dns_server_type_index(DNS_TYPE_AAAA)] = 3;
        c.by_rcode[3] = 2;
        o = http_json_status(&in);
        CHECK_STREQ(get_str(o, "status"), "running");
        CHECK_STREQ(get_str(o, "environment"), "test");
        CHECK_INT_EQ(json_object_get_int(get(o, "uptime")), 90);

        dns = get(o, "dns_server");
        CHECK_INT_EQ(json_object_get_int(get(dns, "port")), 5353);
        CHECK_STREQ(get_str(dns, "bind_address"), "0.0.0.0");
        CHECK(json_object_get_boolean(get(dns, "running")));
        CHECK_INT_EQ(json_object_get_int(get(dns, "records")), 11);
        CHECK_INT_EQ(json_object_get_int(get(dns, "queries")), 9);
        CHECK_INT_EQ(json_object_get_int(get(get(dns, "queries_by_type"), "AAAA")), 3);
        CHECK_INT_EQ(json_object_get_int(get(get(dns, "responses_by_rcode"), "NXDOMAIN")), 2);
        CHECK_INT_EQ(json_object_array_length(get(dns, "queries_per_second")), 2);
        CHECK_INT_EQ(json_object_get_int(json_object_array_get_idx(get(dns, "queries_per_second"), 0)), 3);
        CHECK_INT_EQ(json_object_get_int(json_object_array_get_idx(get(dns, "queries_per_second"), 1)), 7);

        d = get(o, "docker_monitor");
        CHECK(json_object_get_boolean(get(d, "connected")));
        CHECK_STREQ(get_str(d, "state"), "connected");
        CHECK_INT_EQ(json_object_get_int(get(d, "containers")), 4);
        CHECK(!(get(d, "next_retry")));
        CHECK(!(get(d, "last_error")));
        CHECK_STREQ(get_str(d, "connected_since"), "2023-11-14T22:13:20.000Z");

        h = get(o, "hosts_monitor");
        CHECK_STREQ(get_str(h, "directory"), "/etc/joyride/hosts");
        CHECK_INT_EQ(json_object_get_int(get(h, "records_count")), 9);
        CHECK_INT_EQ(json_object_get_int(get(h, "files")), 2);
        CHECK_INT_EQ(json_object_get_int(get(h, "warnings")), 5);
        {
                json_object *list = get(h, "warning_list"), *w;

                /* The listed ones (the total is "warnings"). */
                CHECK_INT_EQ(json_object_array_length(list), 2);
                w = json_object_array_get_idx(list, 0);
                CHECK_STREQ(get_str(w, "file"), "/etc/joyride/hosts/big.hosts");
                CHECK(!get(w, "line"));
                CHECK_STREQ(get_str(w, "message"), "larger than 64 MiB, ignoring it");
                w = json_object_array_get_idx(list, 1);
                CHECK_STREQ(get_str(w, "file"), "/etc/joyride/hosts/lan.hosts");
                CHECK_INT_EQ(json_object_get_int(get(w, "line")), 3);
                CHECK_STREQ(get_str(w, "message"), "not an IP address: '10.0.0.300'");
        }

        cl = get(o, "dns_sync_cluster");
        CHECK(!(json_object_get_boolean(get(cl, "enabled"))));
        CHECK_INT_EQ(json_object_array_length(get(cl, "members")), 0);
        CHECK(!json_object_get_boolean(get(get(o, "etcd"), "enabled")));
        CHECK_STREQ(get_str(get(o, "etcd"), "state"), "disabled");
        json_object_put(o);

        /* etcd out of reach: said with the error and the next try. */
        {
                char *endpoints[] = { "http://10.0.0.1:2379", "http://10.0.0.2:2379", NULL };
                EtcdStatus es = { .state = ETCD_DISCONNECTED,
                                  .endpoint = "http://10.0.0.2:2379",
                                  .endpoints = endpoints,
                                  .prefix = "/skydns",
                                  .last_error = "/v3/watch: Connection refused",
                                  .next_retry_usec = 1700000000000000ull,
                                  .lease_id = 0x390da22d13738513,
                                  .lease_ttl = 10,
                                  .revision = 42,
                                  .n_keys = 7,
                                  .n_published = 3,
                                  .n_pending = 1,
                                  .resyncs = 2,
                                  .failures = 5 };
                json_object *e;

                in.etcd = &es;
                o = http_json_status(&in);
                e = get(o, "etcd");
                CHECK(json_object_get_boolean(get(e, "enabled")));
                CHECK(!json_object_get_boolean(get(e, "connected")));
                CHECK_STREQ(get_str(e, "state"), "disconnected");
                CHECK_STREQ(get_str(e, "endpoint"), "http://10.0.0.2:2379");
                CHECK_INT_EQ(json_object_array_length(get(e, "endpoints")), 2);
                CHECK_STREQ(get_str(e, "last_error"), "/v3/watch: Connection refused");
                CHECK_STREQ(get_str(e, "next_retry"), "2023-11-14T22:13:20.000Z");
                CHECK(!get(e, "connected_since"));
                CHECK_STREQ(get_str(e, "lease"), "390da22d13738513");
                CHECK_INT_EQ(json_object_get_int(get(e, "keys")), 7);
                CHECK_INT_EQ(json_object_get_int(get(e, "published")), 3);
                CHECK_INT_EQ(json_object_get_int(get(e, "pending")), 1);
                CHECK_INT_EQ(json_object_get_int(get(e, "failures")), 5);
                json_object_put(o);
                in.etcd = NULL;
        }

        /* Docker and hosts off, no DNS server: still every key, with "off" values. */
        in.docker = NULL;
        in.hosts = NULL;
        in.dns = NULL;
        o = http_json_status(&in);
        d = get(o, "docker_monitor");
        CHECK(!(json_object_get_boolean(get(d, "enabled"))));
        CHECK_STREQ(get_str(d, "state"), "disabled");
        h = get(o, "hosts_monitor");
        CHECK(!(json_object_get_boolean(get(h, "enabled"))));
        CHECK(!(get(h, "directory")));
        CHECK_INT_EQ(json_object_array_length(get(h, "warning_list")), 0);
        CHECK(!(json_object_get_boolean(get(get(o, "dns_server"), "running"))));
        json_object_put(o);
}

static Store *make_store(void) {
        Store *s = NULL;
        const char *error = NULL;

        CHECK_INT_EQ(store_new(&s), 0);
        CHECK_INT_EQ(store_add(s, "web.example", DNS_TYPE_A, "10.0.0.2", 30, "hosts:/h/a", 3, NULL, &error), 1);
        CHECK_INT_EQ(store_add(s, "web.example", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/a", 4, NULL, &error), 1);
        CHECK_INT_EQ(store_add(s, "api.example", DNS_TYPE_AAAA, "fd00::1", 60, "docker:abc", 0, "api", &error), 1);
        CHECK_INT_EQ(store_add(s, "alias.example", DNS_TYPE_CNAME, "web.example", 120, "dbus", 0, NULL, &error), 1);
        return s;
}

static void test_records(void) {
        Store *s = make_store();
        json_object *o, *records, *r;

        o = http_json_records(s, NULL, NULL, 0);
        CHECK_STREQ(get_str(o, "status"), "success");
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 4);
        CHECK_INT_EQ(json_object_get_int64(get(o, "version")), (int64_t) store_version(s));
        records = get(o, "records");
        CHECK_INT_EQ(json_object_array_length(records), 4);
        /* Sorted by name, then value. */
        CHECK_STREQ(get_str(json_object_array_get_idx(records, 0), "hostname"), "alias.example");
        CHECK_STREQ(get_str(json_object_array_get_idx(records, 1), "hostname"), "api.example");
        CHECK_STREQ(get_str(json_object_array_get_idx(records, 2), "ip_address"), "10.0.0.1");
        CHECK_STREQ(get_str(json_object_array_get_idx(records, 3), "ip_address"), "10.0.0.2");

        /* The value goes in ip_address for every type, as the original's key. */
        r = json_object_array_get_idx(records, 0);
        CHECK_STREQ(get_str(r, "type"), "CNAME");
        CHECK_STREQ(get_str(r, "ip_address"), "web.example");
        CHECK_INT_EQ(json_object_get_int(get(r, "ttl")), 120);
        CHECK_STREQ(get_str(r, "source"), "dbus");
        r = json_object_array_get_idx(records, 1);
        CHECK_STREQ(get_str(r, "source"), "docker:abc (api)");
        CHECK_STREQ(get_str(r, "owner"), "docker:abc");
        r = json_object_array_get_idx(records, 2);
        CHECK_STREQ(get_str(r, "source"), "hosts:/h/a:4");
        json_object_put(o);

        o = http_json_records(s, "WEB.example.", NULL, 0);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 2);
        json_object_put(o);
        o = http_json_records(s, NULL, "docker", 0);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 1);
        json_object_put(o);
        o = http_json_records(s, NULL, NULL, DNS_TYPE_CNAME);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 1);
        json_object_put(o);
        o = http_json_records(s, "nothing.example", NULL, 0);
        CHECK_INT_EQ(json_object_get_int(get(o, "total_records")), 0);
        CHECK_INT_EQ(json_object_array_length(get(o, "records")), 0);
        json_object_put(o);

        store_free(s);
}

/* Checks the exposition line by line as a scraper would: HELP and TYPE
 * before each family's samples, every sample "name{labels} value". */
static void check_exposition(const char *text) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        g_autoptr(GHashTable) typed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GRegex) sample = g_regex_new(
                "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^"
                "\"\\\\]*\")*\\})? "
                "-?[0-9]+(\\.[0-9]+)?$",
                0, 0, NULL);
        g_autofree char *last_help = NULL;

        CHECK(g_str_has_suffix(text, "\n"));
        for (size_t i = 0; lines[i]; i++) {
                const char *l = lines[i];
                g_autoptr(GMatchInfo) m = NULL;

                if (*l == '\0')
                        continue;
                if (g_str_has_prefix(l, "# HELP ")) {
                        g_free(last_help);
                        last_help = g_strndup(l + 7, strcspn(l + 7, " "));
                        continue;
                }
                if (g_str_has_prefix(l, "# TYPE ")) {
                        g_autofree char *name = g_strndup(l + 7, strcspn(l + 7, " "));
                        const char *type = l + 7 + strlen(name) + 1;

                        CHECK_STREQ(name, last_help);
                        CHECK(streq(type, "counter") || streq(type, "gauge") || streq(type, "summary") ||
                              streq(type, "histogram"));
                        CHECK(!(g_hash_table_contains(typed, name)));
                        /* 1: a summary, 2: a histogram (it has _bucket samples too). */
                        g_hash_table_insert(typed, g_steal_pointer(&name),
                                            (gpointer) (uintptr_t) (streq(type, "summary")     ? 1
                                                                    : streq(type, "histogram") ? 2
                                                                                               : 0));
                        continue;
                }
                if (!g_regex_match(sample, l, 0, &m))
                        g_error("not a sample line: '%s'", l);
                g_autofree char *name = g_match_info_fetch(m, 1);
                /* A summary's samples are NAME_sum and NAME_count, a
                 * histogram's NAME_bucket as well. */
                if (!g_hash_table_contains(typed, name)) {
                        size_t n = strlen(name);
                        bool bucket = g_str_has_suffix(name, "_bucket");
                        size_t base = g_str_has_suffix(name, "_sum")     ? n - 4
                                      : g_str_has_suffix(name, "_count") ? n - 6
                                      : bucket                           ? n - 7
                                                                         : n;
                        g_autofree char *b = g_strndup(name, base);
                        uintptr_t kind = (uintptr_t) g_hash_table_lookup(typed, b);
                        if (base == n || kind == 0 || (bucket && kind != 2))
                                g_error("sample without HELP/TYPE: '%s'", l);
                }
        }
}

static void test_metrics(void) {
        DnsServerCounters c = { .queries_udp = 10, .queries_tcp = 1 };
        HttpMetricsInput in = {
                .dns = &c,
                .records_by_source = { [HTTP_SOURCE_HOSTS] = 12, [HTTP_SOURCE_PEER] = 3 },
                .store_version = 99,
                .docker_enabled = true,
                .docker_connected = true,
                .gossip_rejected = 4,
                .uptime_usec = 1500 * USEC_PER_MSEC,
                .cluster_enabled = true,
                .start_time_seconds = 1700000000.25,
                .cpu_seconds = 1.5,
                .resident_bytes = 4096,
                .open_fds = 12,
                .max_fds = 1024,
        };
        g_autofree char *text = NULL, *zero = NULL;

        c.by_type[dns_server_type_index(DNS_TYPE_A)] = 5;
        c.by_type[dns_server_type_index(DNS_TYPE_MX)] = 1;
        c.by_rcode[3] = 2;
        c.by_rcode[9] = 1;
        c.by_rcode[17] = 1;
        /* Per bucket, as the threads count: 3 at most 50 us, 2 in (0.5, 1] ms, 1 above 2.5 s. */
        c.duration[DNS_TRANSPORT_UDP].buckets[0] = 3;
        c.duration[DNS_TRANSPORT_UDP].buckets[4] = 2;
        c.duration[DNS_TRANSPORT_UDP].buckets[DNS_DURATION_BOUNDS] = 1;
        c.duration[DNS_TRANSPORT_UDP].sum_nsec = 3500000000u;
        text = http_metrics_render(&in);
        check_exposition(text);
        CHECK(strstr(text, "\n# TYPE joyride_dns_request_duration_seconds histogram\n"));
#define DURATION "joyride_dns_request_duration_seconds"
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"udp\",answer=\"local\",le=\"0.00005\"} 3\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"udp\",answer=\"local\",le=\"0.0005\"} 3\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"udp\",answer=\"local\",le=\"0.001\"} 5\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"udp\",answer=\"local\",le=\"2.5\"} 5\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"udp\",answer=\"local\",le=\"+Inf\"} 6\n"));
        CHECK(strstr(text, "\n" DURATION "_sum{transport=\"udp\",answer=\"local\"} 3.500000000\n"));
        CHECK(strstr(text, "\n" DURATION "_count{transport=\"udp\",answer=\"local\"} 6\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"tcp\",answer=\"local\",le=\"+Inf\"} 0\n"));
        CHECK(strstr(text, "\n" DURATION "_count{transport=\"tcp\",answer=\"local\"} 0\n"));
        /* No forwarder: no forwarded series, which could never move. */
        CHECK(!strstr(text, ",answer=\"forwarded\""));
        CHECK(strstr(text, "\njoyride_dns_queries_total{type=\"A\"} 5\n"));
        CHECK(strstr(text, "\njoyride_dns_queries_total{type=\"other\"} 1\n"));
        CHECK(strstr(text, "\njoyride_dns_responses_total{rcode=\"NXDOMAIN\"} 2\n"));
        CHECK(strstr(text, "\njoyride_dns_responses_total{rcode=\"NOERROR\"} 0\n"));
        CHECK(strstr(text, "\njoyride_dns_responses_total{rcode=\"NOTAUTH\"} 1\n"));
        CHECK(strstr(text, "\njoyride_dns_responses_total{rcode=\"RCODE17\"} 1\n"));
        CHECK(!(strstr(text, "YXDOMAIN"))); /* zero and uncommon: left out */
        CHECK(strstr(text, "\njoyride_records{source=\"hosts\"} 12\n"));
        CHECK(strstr(text, "\njoyride_records{source=\"peer\"} 3\n"));
        CHECK(strstr(text, "\njoyride_records{source=\"docker\"} 0\n"));
        CHECK(strstr(text, "\n# TYPE joyride_store_changes_total counter\njoyride_store_changes_total 99\n"));
        CHECK(!(strstr(text, "joyride_store_version")));
        CHECK(strstr(text, "\njoyride_build_info{version=\"" JOYRIDE_VERSION "\"} 1\n"));
        CHECK(strstr(text, "\nprocess_start_time_seconds 1700000000.250\n"));
        CHECK(strstr(text, "\nprocess_cpu_seconds_total 1.50\n"));
        CHECK(strstr(text, "\nprocess_resident_memory_bytes 4096\n"));
        CHECK(strstr(text, "\nprocess_open_fds 12\n"));
        CHECK(strstr(text, "\nprocess_max_fds 1024\n"));
        CHECK(strstr(text, "\njoyride_docker_connected 1\n"));
        CHECK(strstr(text, "\njoyride_cluster_members{state=\"alive\"} 0\n"));
        CHECK(strstr(text, "\njoyride_gossip_packets_total{direction=\"rejected\"} 4\n"));
        CHECK(strstr(text, "\njoyride_uptime_seconds 1.500\n"));
        /* etcd off: none of its series. */
        CHECK(!strstr(text, "joyride_records{source=\"etcd\"}"));
        CHECK(!strstr(text, "joyride_etcd_"));
        g_free(text);

        {
                EtcdStatus es = { .state = ETCD_CONNECTED,
                                  .n_keys = 100,
                                  .n_published = 3,
                                  .revision = 77,
                                  .resyncs = 1,
                                  .events = 12,
                                  .txns = 4 };
                in.etcd = &es;
                in.records_by_source[HTTP_SOURCE_ETCD] = 100;
                text = http_metrics_render(&in);
                check_exposition(text);
                CHECK(strstr(text, "\njoyride_records{source=\"etcd\"} 100\n"));
                CHECK(strstr(text, "\njoyride_etcd_connected 1\n"));
                CHECK(strstr(text, "\njoyride_etcd_keys{kind=\"served\"} 100\n"));
                CHECK(strstr(text, "\njoyride_etcd_keys{kind=\"published\"} 3\n"));
                CHECK(strstr(text, "\njoyride_etcd_revision 77\n"));
                CHECK(strstr(text, "\njoyride_etcd_events_total 12\n"));
                CHECK(strstr(text, "\njoyride_etcd_transactions_total 4\n"));
                g_free(text);
                es.state = ETCD_DISCONNECTED;
                text = http_metrics_render(&in);
                check_exposition(text);
                CHECK(strstr(text, "\njoyride_etcd_connected 0\n"));
                in.etcd = NULL;
        }

        /* No DNS server, Docker and the cluster disabled: zeros, still valid,
         * and no series that could never move. */
        in = (HttpMetricsInput) { .docker_connected = true };
        zero = http_metrics_render(&in);
        check_exposition(zero);
        CHECK(!(strstr(zero, "joyride_docker_connected")));
        CHECK(!(strstr(zero, "joyride_cluster_members")));
        CHECK(!(strstr(zero, "joyride_gossip_packets_total")));
        CHECK(!(strstr(zero, "source=\"peer\"")));
        CHECK(!(strstr(zero, "source=\"docker\"")));
        CHECK(strstr(zero, "\njoyride_records{source=\"hosts\"} 0\n"));
        CHECK(strstr(zero, "\njoyride_dns_queries_total{type=\"A\"} 0\n"));
}

static DnsForwardUpstreamStatus forward_upstreams[] = {
        { .address = "192.0.2.1:53",
          .queries = 10,
          .answers = 8,
          .failures = 2,
          .rtt_usec_sum = 4000,
          .last_rtt_usec = 700,
          .failing = true },
        { .address = "[2001:db8::1]:5353", .queries = 3, .answers = 3, .rtt_usec_sum = 1500 },
        { .address = "192.0.2.2:53" },
};
static char *forward_allow[] = { "127.0.0.0/8", "::1/128", NULL };

static const DnsForwardStatus forward_status = {
        .enabled = true,
        .counters = { .queries = 100,
                      .refused = 1,
                      .cache_hits = 80,
                      .cache_misses = 19,
                      .coalesced = 6,
                      .upstream_queries = 13,
                      .upstream_tcp = 2,
                      .upstream_failures = 2,
                      .servfail = 1,
                      .mismatched = 3,
                      .dropped = 0,
                      .latency_usec_sum = 120000,
                      .latency_count = 12,
                      .cache_entries = 11,
                      .cache_bytes = 4096,
                      .duration = { [DNS_TRANSPORT_TCP] = { .buckets = { [10] = 4 }, .sum_nsec = 300000000 } } },
        .upstreams = forward_upstreams,
        .n_upstreams = 3,
        .allow = forward_allow,
        .allow_default = true,
        .cache_size = 10000,
        .max_ttl = 86400,
};

static void test_forwarding(void) {
        HttpStatusInput sin = { .forward_enabled = true, .forward_source = "resolv.conf", .forward = &forward_status };
        HttpMetricsInput min = { .forward_enabled = true, .forward = &forward_status };
        g_autofree char *text = NULL, *off = NULL;
        json_object *o, *f, *u;

        o = http_json_status(&sin);
        f = get(get(o, "dns_server"), "forwarding");
        CHECK(json_object_get_boolean(get(f, "enabled")));
        CHECK_STREQ(get_str(f, "source"), "resolv.conf");
        CHECK_INT_EQ(json_object_array_length(get(f, "upstreams")), 3);
        u = json_object_array_get_idx(get(f, "upstreams"), 0);
        CHECK_STREQ(get_str(u, "address"), "192.0.2.1:53");
        CHECK_STREQ(get_str(u, "state"), "failing");
        CHECK_INT_EQ(json_object_get_int(get(u, "queries")), 10);
        CHECK_INT_EQ(json_object_get_int(get(u, "failures")), 2);
        CHECK(json_object_get_double(get(u, "average_rtt_ms")) == 0.5);
        CHECK_STREQ(get_str(json_object_array_get_idx(get(f, "upstreams"), 1), "state"), "ok");
        CHECK_STREQ(get_str(json_object_array_get_idx(get(f, "upstreams"), 2), "state"), "unused");
        CHECK_STREQ(json_object_get_string(json_object_array_get_idx(get(f, "allow"), 1)), "::1/128");
        CHECK(json_object_get_boolean(get(f, "allow_default")));
        CHECK_INT_EQ(json_object_get_int(get(get(f, "cache"), "hits")), 80);
        CHECK_INT_EQ(json_object_get_int(get(get(f, "cache"), "entries")), 11);
        CHECK_INT_EQ(json_object_get_int(get(get(f, "cache"), "size")), 10000);
        CHECK_INT_EQ(json_object_get_int(get(f, "coalesced")), 6);
        CHECK_INT_EQ(json_object_get_int(get(f, "servfail")), 1);
        CHECK(json_object_get_double(get(f, "average_latency_ms")) == 10.0);
        json_object_put(o);

        /* Off: every key, with "off" values. */
        sin = (HttpStatusInput) {};
        o = http_json_status(&sin);
        f = get(get(o, "dns_server"), "forwarding");
        CHECK(!json_object_get_boolean(get(f, "enabled")));
        CHECK(!get(f, "source"));
        CHECK_INT_EQ(json_object_array_length(get(f, "upstreams")), 0);
        json_object_put(o);

        text = http_metrics_render(&min);
        check_exposition(text);
        CHECK(strstr(text, "\njoyride_forward_enabled 1\n"));
        CHECK(strstr(text, "\njoyride_forward_queries_total 100\n"));
        CHECK(strstr(text, "\njoyride_forward_cache_lookups_total{result=\"hit\"} 80\n"));
        CHECK(strstr(text, "\njoyride_forward_cache_lookups_total{result=\"miss\"} 19\n"));
        CHECK(strstr(text, "\njoyride_forward_mismatched_total 3\n"));
        CHECK(strstr(text, "\njoyride_forward_latency_seconds_sum 0.120000\n"));
        CHECK(strstr(text, "\njoyride_forward_latency_seconds_count 12\n"));
        CHECK(strstr(text, "\njoyride_forward_upstream_queries_total{upstream=\"[2001:db8::1]:5353\"} 3\n"));
        CHECK(strstr(text, "\njoyride_forward_upstream_failures_total{upstream=\"192.0.2.1:53\"} 2\n"));
        CHECK(strstr(text, "\njoyride_forward_upstream_rtt_seconds_count{upstream=\"192.0.2.1:53\"} 8\n"));
        CHECK(strstr(text, "\njoyride_forward_upstream_up{upstream=\"192.0.2.1:53\"} 0\n"));
        CHECK(strstr(text, "\njoyride_forward_upstream_up{upstream=\"192.0.2.2:53\"} 1\n"));
        /* Forwarded questions: their own series, the upstream's wait included. */
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"tcp\",answer=\"forwarded\",le=\"0.05\"} 0\n"));
        CHECK(strstr(text, "\n" DURATION "_bucket{transport=\"tcp\",answer=\"forwarded\",le=\"0.1\"} 4\n"));
        CHECK(strstr(text, "\n" DURATION "_count{transport=\"tcp\",answer=\"forwarded\"} 4\n"));
        CHECK(strstr(text, "\n" DURATION "_sum{transport=\"tcp\",answer=\"forwarded\"} 0.300000000\n"));
        CHECK(strstr(text, "\n" DURATION "_count{transport=\"udp\",answer=\"forwarded\"} 0\n"));

        /* Without a forwarder: no forwarding series, which could never move. */
        off = http_metrics_render(&(HttpMetricsInput) {});
        check_exposition(off);
        CHECK(!strstr(off, "joyride_forward_"));
}

typedef struct Captured {
        GPtrArray *events;
} Captured;

static void capture(Store *s, RecordChange change, const Record *r, void *userdata) {
        Captured *c = userdata;
        g_ptr_array_add(c->events, http_sse_record_event(change, r, store_version(s)));
}

static void test_sse(void) {
        Store *s = NULL;
        Captured c = { .events = g_ptr_array_new_with_free_func(g_free) };
        const char *error = NULL;
        json_object *o;

        CHECK_INT_EQ(store_new(&s), 0);
        store_subscribe(s, capture, &c);
        /* A TXT value with a newline and quotes must not break the framing. */
        CHECK_INT_EQ(store_add(s, "txt.example", DNS_TYPE_TXT, "\"line one\\010line \\\"two\\\"\"", 30, "api", 0, NULL,
                               &error),
                     1);
        CHECK_INT_EQ(store_remove(s, "txt.example", 0, NULL, "api"), 1);
        CHECK_INT_EQ(c.events->len, 2);

        for (guint i = 0; i < c.events->len; i++) {
                const char *e = c.events->pdata[i];
                g_auto(GStrv) lines = NULL;

                CHECK(g_str_has_prefix(e, "event: record\ndata: {"));
                CHECK(g_str_has_suffix(e, "}\n\n"));
                lines = g_strsplit(e, "\n", -1);
                CHECK_INT_EQ(g_strv_length(lines), 4); /* event, data, "", "" */
                o = json_tokener_parse(lines[1] + strlen("data: "));
                CHECK(o);
                CHECK_STREQ(get_str(o, "change"), i == 0 ? "added" : "removed");
                CHECK_STREQ(get_str(o, "hostname"), "txt.example");
                CHECK_STREQ(get_str(o, "type"), "TXT");
                CHECK_STREQ(get_str(o, "source"), "api");
                CHECK_INT_EQ(json_object_get_int(get(o, "ttl")), 30);
                CHECK_INT_EQ(json_object_get_int(get(o, "version")), (int) i + 1);
                CHECK(get_str(o, "value"));
                json_object_put(o);
        }
        store_unsubscribe(s, capture, &c);
        g_ptr_array_unref(c.events);
        store_free(s);

        o = json_object_new_object();
        json_object_object_add(o, "version", json_object_new_int(7));
        g_autofree char *hello = http_sse_event("hello", o);
        CHECK_STREQ(hello, "event: hello\ndata: {\"version\":7}\n\n");
        json_object_put(o);
}

static void test_message(void) {
        json_object *o = http_json_message("error", "Not found: /a/b");
        g_autofree char *s = http_json_to_string(o);

        CHECK_STREQ(s, "{\"status\":\"error\",\"message\":\"Not found: /a/b\"}");
        json_object_put(o);
}

/* One hosts warning, as /status and `joyridectl status --json` both list it:
 * line 0 (the file or the directory as a whole) is null. */
static void test_hosts_warning(void) {
        json_object *o = json_hosts_warning_new("/h/a.hosts", 3, "not an IP address: '10.0.0.300'");
        g_autofree char *s = http_json_to_string(o);

        CHECK_STREQ(s, "{\"file\":\"/h/a.hosts\",\"line\":3,\"message\":\"not an IP address: '10.0.0.300'\"}");
        json_object_put(o);

        o = json_hosts_warning_new("/h", 0, "cannot read it: Permission denied; trying again");
        g_free(s);
        s = http_json_to_string(o);
        CHECK_STREQ(s,
                    "{\"file\":\"/h\",\"line\":null,\"message\":\"cannot read it: Permission denied; trying again\"}");
        json_object_put(o);
}

int main(void) {
        static const struct {
                const char *name;
                void (*run)(void);
        } tests[] = {
                { "iso8601", test_iso8601 },       { "health", test_health },
                { "rate-ring", test_rate_ring },   { "status", test_status },
                { "records", test_records },       { "metrics", test_metrics },
                { "forwarding", test_forwarding }, { "sse", test_sse },
                { "message", test_message },       { "hosts-warning", test_hosts_warning },
        };

        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TEST_BEGIN(tests[i].name);
                tests[i].run();
        }
        printf("test-http-json: all passed\n");
        return 0;
}
