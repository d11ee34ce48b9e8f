/* SPDX-License-Identifier: MIT */
/* Configuration: one table describes every setting (its [Group] Key in the
 * config file, its environment variables, its command-line option, its type
 * and its default). Loading collects one raw string per setting, layer by
 * layer (defaults < file < environment < command line), remembering which key
 * set it last; only then is each final string parsed and validated, so an
 * error can say exactly what the user wrote: "DNS_PORT=abc: expected a port
 * number (1-65535)", "[DNS] Port=abc in /etc/joyride/joyride.conf:3: ...".
 *
 * Ownership: every char* in Config is malloc'd (strdup) and released with
 * free(); the string lists (dns_domains, forward, forward_allow, join,
 * trusted_nodes, resolved_domains, resolved_dns) are GLib string vectors
 * (g_new/g_strdup) released with g_strfreev(). config_done() frees both
 * kinds and leaves the struct zeroed.
 *
 * Empty values: an empty environment variable counts as unset (shells and
 * compose files export empty variables freely); an empty value in the config
 * file or on the command line resets the setting to its built-in default, as
 * in systemd unit files. */

#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <getopt.h>
#include <glib.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster-keys.h"
#include "config.h"
#include "dns-forward.h"
#include "dns-name.h"
#include "log.h"
#include "swim.h"

#define CONFIG_FILE_MAX (4U * 1024U * 1024U)

typedef enum ValueType {
        VALUE_STRING, /* free text */
        VALUE_PATH,   /* absolute path */
        VALUE_IPV4,
        VALUE_IPV6,
        VALUE_IP,          /* IPv4 or IPv6 literal */
        VALUE_HOST,        /* IP literal or DNS name */
        VALUE_DOCKER_HOST, /* unix:///path, tcp://..., http(s)://... */
        VALUE_PORT,        /* uint16_t, 1-65535 */
        VALUE_UINT32,      /* uint32_t, min..max */
        VALUE_MSEC,        /* seconds (fractions allowed) stored as uint32_t msec */
        VALUE_BOOL,
        VALUE_DOMAINS,       /* comma-separated DNS names, char** */
        VALUE_JOIN,          /* comma-separated host:port, char** */
        VALUE_HOSTS,         /* comma-separated IP literals and DNS names, or "*", char** */
        VALUE_TRUSTED_NODES, /* comma-separated node-id:base64-key, char** */
        VALUE_BUS,
        VALUE_LOG_LEVEL,
        VALUE_NODE_ID,
        VALUE_IFNAME,        /* network interface name */
        VALUE_ROUTE_DOMAINS, /* comma-separated DNS names, each optionally prefixed with '~', char** */
        VALUE_DNS_SERVERS,   /* comma-separated ADDR, ADDR:PORT, [ADDR6]:PORT, char** */
        VALUE_FORWARD,       /* the same with %scope on IPv6, or the one word resolv.conf, char** */
        VALUE_PREFIXES,      /* comma-separated ADDR or ADDR/LEN, char** */
        VALUE_CLUSTER_KEYS,  /* base64 of 32 bytes, several separated by commas; never echoed in errors */
        VALUE_URLS,          /* comma-separated http:// or https:// URLs of a host, char** */
        VALUE_KEY_PREFIX,    /* an etcd key prefix: "/" then path segments, no trailing "/" */
} ValueType;

typedef enum SettingId {
        SETTING_SERVICE_NAME,
        SETTING_ENVIRONMENT,
        SETTING_HOSTIP,
        SETTING_HOSTIP6,
        SETTING_STATE_DIRECTORY,
        SETTING_LOG_LEVEL,
        SETTING_DNS_PORT,
        SETTING_DNS_BIND_ADDRESS,
        SETTING_DNS_DOMAINS,
        SETTING_DNS_TTL,
        SETTING_DNS_NEGATIVE_TTL,
        SETTING_TCP_IDLE_TIMEOUT,
        SETTING_TCP_MAX_CONNECTIONS,
        SETTING_DNS_FORWARD,
        SETTING_DNS_FORWARD_ALLOW,
        SETTING_DNS_FORWARD_CACHE_SIZE,
        SETTING_DNS_FORWARD_MAX_TTL,
        SETTING_RESOLV_CONF,
        SETTING_DNS_THREADS,
        SETTING_HOSTS_DIRECTORY,
        SETTING_HOSTS_MAX_RECORDS_PER_FILE,
        SETTING_HOSTS_MAX_RECORDS,
        SETTING_DOCKER_ENABLED,
        SETTING_DOCKER_HOST,
        SETTING_HTTP_ENABLED,
        SETTING_HTTP_HOST,
        SETTING_HTTP_PORT,
        SETTING_API_TOKEN,
        SETTING_HTTP_MAX_CONNECTIONS,
        SETTING_HTTP_REQUEST_TIMEOUT,
        SETTING_HTTP_ALLOWED_HOSTS,
        SETTING_BUS,
        SETTING_CLUSTER_ENABLED,
        SETTING_NODE_ID,
        SETTING_DISCOVERY_PORT,
        SETTING_SWIM_PORT,
        SETTING_JOIN,
        SETTING_CLUSTER_KEY,
        SETTING_CLUSTER_KEY_FILE,
        SETTING_CLUSTER_BIND_ADDRESS,
        SETTING_CLUSTER_ADVERTISE_ADDRESS,
        SETTING_CLUSTER_DISCOVERY,
        SETTING_PROBE_INTERVAL,
        SETTING_PROBE_TIMEOUT,
        SETTING_GOSSIP_INTERVAL,
        SETTING_INDIRECT_CHECKS,
        SETTING_SUSPICION_MULT,
        SETTING_RETRANSMIT_MULT,
        SETTING_PUSH_PULL_INTERVAL,
        SETTING_DISCOVERY_INTERVAL,
        SETTING_DEAD_GRACE,
        SETTING_MAX_MEMBERS,
        SETTING_MAX_RECORDS_PER_NODE,
        SETTING_TRUSTED_NODES,
        SETTING_RESOLVED_LINK,
        SETTING_RESOLVED_DOMAINS,
        SETTING_RESOLVED_DNS,
        SETTING_ETCD_ENDPOINTS,
        SETTING_ETCD_PREFIX,
        SETTING_ETCD_LEASE_TTL,
        SETTING_ETCD_CA_FILE,
        SETTING_ETCD_CERT_FILE,
        SETTING_ETCD_KEY_FILE,
        SETTING_ETCD_USER,
        SETTING_ETCD_PASSWORD_FILE,
        _SETTING_MAX,
} SettingId;

typedef struct Setting {
        const char *group;
        const char *key;
        const char *env[2];     /* environment variables, later ones win */
        const char *option;     /* long option taking a value, or NULL */
        const char *option_on;  /* booleans: flag setting it to true */
        const char *option_off; /* booleans: flag setting it to false */
        const char *metavar;
        ValueType type;
        size_t offset;
        uint32_t min, max; /* VALUE_UINT32 */
        const char *def;   /* default as a string, validated like any value; NULL = unset */
        const char *help;
} Setting;

static const Setting settings[_SETTING_MAX] = {
        [SETTING_SERVICE_NAME] = {
                "Service", "Name", { "SERVICE_NAME" }, "service-name", NULL, NULL, "NAME",
                VALUE_STRING, offsetof(Config, service_name), .def = "joyride-dns",
                .help = "Service name reported by the API",
        },
        [SETTING_ENVIRONMENT] = {
                "Service", "Environment", { "ENVIRONMENT" }, "environment", NULL, NULL, "NAME",
                VALUE_STRING, offsetof(Config, environment), .def = "production",
                .help = "Deployment environment reported by the API",
        },
        [SETTING_HOSTIP] = {
                "Service", "HostIP", { "HOSTIP" }, "hostip", NULL, NULL, "ADDR",
                VALUE_IPV4, offsetof(Config, hostip),
                .help = "IPv4 address for Docker records (default: auto-detect)",
        },
        [SETTING_HOSTIP6] = {
                "Service", "HostIP6", { "HOSTIP6" }, "hostip6", NULL, NULL, "ADDR",
                VALUE_IPV6, offsetof(Config, hostip6),
                .help = "IPv6 address for Docker records",
        },
        [SETTING_STATE_DIRECTORY] = {
                /* JOYRIDE_STATE_DIRECTORY is ours and so wins over systemd's generic one. */
                "Service", "StateDirectory", { "STATE_DIRECTORY", "JOYRIDE_STATE_DIRECTORY" },
                "state-directory", NULL, NULL, "DIR",
                VALUE_PATH, offsetof(Config, state_directory), .def = "/var/lib/joyride",
                .help = "Directory for persistent state",
        },
        [SETTING_LOG_LEVEL] = {
                "Service", "LogLevel", { "JOYRIDE_LOG_LEVEL" }, "log-level", NULL, NULL, "LEVEL",
                VALUE_LOG_LEVEL, offsetof(Config, log_level), .def = "info",
                .help = "Maximum log level (emerg ... debug, or 0-7)",
        },
        [SETTING_DNS_PORT] = {
                "DNS", "Port", { "DNS_PORT" }, "dns-port", NULL, NULL, "PORT",
                VALUE_PORT, offsetof(Config, dns_port), .def = "5353",
                .help = "UDP and TCP port to answer DNS on",
        },
        [SETTING_DNS_BIND_ADDRESS] = {
                "DNS", "BindAddress", { "DNS_BIND_ADDRESS" }, "dns-bind-address", NULL, NULL, "ADDR",
                VALUE_IP, offsetof(Config, dns_bind_address),
                .help = "IPv4 or IPv6 address to answer DNS on (default: all)",
        },
        [SETTING_DNS_DOMAINS] = {
                "DNS", "Domains", { "DNS_DOMAINS" }, "domains", NULL, NULL, "D1,D2",
                VALUE_DOMAINS, offsetof(Config, dns_domains),
                .help = "Only answer for names under these domains (default: every name)",
        },
        [SETTING_DNS_TTL] = {
                "DNS", "TTL", { "DNS_TTL" }, "ttl", NULL, NULL, "SECONDS",
                VALUE_UINT32, offsetof(Config, default_ttl), 0, 604800, .def = "30",
                .help = "TTL of records that do not set one",
        },
        [SETTING_DNS_NEGATIVE_TTL] = {
                "DNS", "NegativeTTL", { "DNS_NEGATIVE_TTL" }, "negative-ttl", NULL, NULL, "SECONDS",
                VALUE_UINT32, offsetof(Config, negative_ttl), 0, 86400, .def = "5",
                .help = "TTL of negative answers",
        },
        [SETTING_TCP_IDLE_TIMEOUT] = {
                "DNS", "TCPIdleTimeoutSec", { NULL }, NULL, NULL, NULL, "SECONDS",
                VALUE_MSEC, offsetof(Config, tcp_idle_timeout_msec), .def = "10",
                .help = "Close idle DNS-over-TCP connections after this time",
        },
        [SETTING_TCP_MAX_CONNECTIONS] = {
                "DNS", "TCPMaxConnections", { NULL }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, tcp_max_connections), 1, 65536, .def = "256",
                .help = "Maximum concurrent DNS-over-TCP connections",
        },
        [SETTING_DNS_FORWARD] = {
                "DNS", "Forward", { "DNS_FORWARD" }, "forward", NULL, NULL, "SERVERS|resolv.conf",
                VALUE_FORWARD, offsetof(Config, forward),
                .help = "Forward names that are not ours to these DNS servers (default: none, REFUSED)",
        },
        [SETTING_DNS_FORWARD_ALLOW] = {
                "DNS", "ForwardAllow", { "DNS_FORWARD_ALLOW" }, "forward-allow", NULL, NULL, "PREFIXES",
                VALUE_PREFIXES, offsetof(Config, forward_allow),
                .help = "Clients that may use forwarding (default: loopback and the host's subnets)",
        },
        [SETTING_DNS_FORWARD_CACHE_SIZE] = {
                "DNS", "ForwardCacheSize", { "DNS_FORWARD_CACHE_SIZE" }, "forward-cache-size", NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, forward_cache_size), 0, 1000000, .def = "10000",
                .help = "Forwarded answers to cache (0: none)",
        },
        [SETTING_DNS_FORWARD_MAX_TTL] = {
                "DNS", "ForwardMaxTTL", { "DNS_FORWARD_MAX_TTL" }, "forward-max-ttl", NULL, NULL, "SECONDS",
                VALUE_UINT32, offsetof(Config, forward_max_ttl), 0, 604800, .def = "86400",
                .help = "Longest time a forwarded answer is cached",
        },
        [SETTING_RESOLV_CONF] = {
                "DNS", "ResolvConf", { "JOYRIDE_RESOLV_CONF" }, NULL, NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, resolv_conf), .def = "/etc/resolv.conf",
                .help = "The file Forward=resolv.conf reads",
        },
        [SETTING_DNS_THREADS] = {
                /* Unset (0): the online CPUs, at most 16, chosen at start. */
                "DNS", "Threads", { "DNS_THREADS" }, "dns-threads", NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, dns_threads), 1, 64,
                .help = "Threads answering DNS (default: one per CPU, at most 16)",
        },
        [SETTING_HOSTS_DIRECTORY] = {
                "Hosts", "Directory", { "HOSTS_DIRECTORY" }, "hosts-directory", NULL, NULL, "DIR",
                VALUE_PATH, offsetof(Config, hosts_directory),
                .help = "Directory of hosts files to serve (default: none)",
        },
        [SETTING_HOSTS_MAX_RECORDS_PER_FILE] = {
                "Hosts", "MaxRecordsPerFile", { NULL }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, hosts_max_records_per_file), 1, 100000000, .def = "500000",
                .help = "Most records one hosts file may bring (the first lines win)",
        },
        [SETTING_HOSTS_MAX_RECORDS] = {
                "Hosts", "MaxRecords", { NULL }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, hosts_max_records), 1, 100000000, .def = "1000000",
                .help = "Most records all hosts files together may bring",
        },
        [SETTING_DOCKER_ENABLED] = {
                "Docker", "Enabled", { "DOCKER_ENABLED" }, NULL, NULL, "no-docker", NULL,
                VALUE_BOOL, offsetof(Config, docker_enabled), .def = "true",
                .help = "Do not watch Docker containers",
        },
        [SETTING_DOCKER_HOST] = {
                "Docker", "Host", { "DOCKER_HOST" }, "docker-host", NULL, NULL, "URL",
                VALUE_DOCKER_HOST, offsetof(Config, docker_host), .def = "unix:///var/run/docker.sock",
                .help = "Docker API endpoint",
        },
        [SETTING_HTTP_ENABLED] = {
                "HTTP", "Enabled", { "HTTP_ENABLED" }, NULL, NULL, "no-http", NULL,
                VALUE_BOOL, offsetof(Config, http_enabled), .def = "true",
                .help = "Do not serve the HTTP API and web page",
        },
        [SETTING_HTTP_HOST] = {
                "HTTP", "Host", { "FLASK_HOST" }, "http-host", NULL, NULL, "ADDR",
                VALUE_HOST, offsetof(Config, http_host), .def = "0.0.0.0",
                .help = "Address the HTTP API listens on",
        },
        [SETTING_HTTP_PORT] = {
                "HTTP", "Port", { "FLASK_PORT" }, "http-port", NULL, NULL, "PORT",
                VALUE_PORT, offsetof(Config, http_port), .def = "5000",
                .help = "Port the HTTP API listens on",
        },
        [SETTING_API_TOKEN] = {
                "HTTP", "APIToken", { "JOYRIDE_API_TOKEN" }, "api-token", NULL, NULL, "TOKEN",
                VALUE_STRING, offsetof(Config, api_token),
                .help = "Bearer token required for changes through the HTTP API",
        },
        [SETTING_HTTP_MAX_CONNECTIONS] = {
                "HTTP", "MaxConnections", { NULL }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, http_max_connections), 1, 65536, .def = "128",
                .help = "Most HTTP connections at once (the one waiting longest for its request makes room)",
        },
        [SETTING_HTTP_REQUEST_TIMEOUT] = {
                "HTTP", "RequestTimeoutSec", { NULL }, NULL, NULL, NULL, "SECONDS",
                VALUE_MSEC, offsetof(Config, http_request_timeout_msec), .def = "10",
                .help = "Time a connection has to send a whole request (and to send the next one)",
        },
        [SETTING_HTTP_ALLOWED_HOSTS] = {
                "HTTP", "AllowedHosts", { "JOYRIDE_HTTP_ALLOWED_HOSTS" }, "http-allowed-hosts", NULL, NULL, "NAMES",
                VALUE_HOSTS, offsetof(Config, http_allowed_hosts),
                .help = "More names and addresses requests may use in Host (default: localhost, loopback, the host's names and addresses; * allows any)",
        },
        [SETTING_BUS] = {
                "DBus", "Bus", { "JOYRIDE_BUS" }, "bus", NULL, NULL, "system|user|none",
                VALUE_BUS, offsetof(Config, bus), .def = "system",
                .help = "D-Bus bus to export the API on",
        },
        [SETTING_CLUSTER_ENABLED] = {
                "Cluster", "Enabled", { "ENABLE_DNS_SYNC" }, NULL, "cluster", "no-cluster", NULL,
                VALUE_BOOL, offsetof(Config, cluster_enabled), .def = "false",
                .help = "Share records with other nodes (or not)",
        },
        [SETTING_NODE_ID] = {
                /* The default (the host name) is filled in at load time. */
                "Cluster", "NodeId", { "NODE_ID" }, "node-id", NULL, NULL, "ID",
                VALUE_NODE_ID, offsetof(Config, node_id),
                .help = "Name of this node in the cluster (default: host name)",
        },
        [SETTING_DISCOVERY_PORT] = {
                "Cluster", "DiscoveryPort", { "DISCOVERY_PORT" }, "discovery-port", NULL, NULL, "PORT",
                VALUE_PORT, offsetof(Config, discovery_port), .def = "8889",
                .help = "UDP port for node discovery",
        },
        [SETTING_SWIM_PORT] = {
                "Cluster", "SwimPort", { "SWIM_PORT" }, "swim-port", NULL, NULL, "PORT",
                VALUE_PORT, offsetof(Config, swim_port), .def = "8890",
                .help = "Port for cluster membership (SWIM)",
        },
        [SETTING_JOIN] = {
                "Cluster", "Join", { "JOIN" }, "join", NULL, NULL, "HOST:PORT,...",
                VALUE_JOIN, offsetof(Config, join),
                .help = "Nodes to contact when joining the cluster",
        },
        [SETTING_CLUSTER_KEY] = {
                /* No command-line option on purpose: argv is visible to every user in ps. */
                "Cluster", "Key", { "JOYRIDE_CLUSTER_KEY" }, NULL, NULL, NULL, "KEY",
                VALUE_CLUSTER_KEYS, offsetof(Config, cluster_key),
                .help = "Shared secret of the cluster",
        },
        [SETTING_CLUSTER_KEY_FILE] = {
                "Cluster", "KeyFile", { "JOYRIDE_CLUSTER_KEY_FILE" }, "cluster-key-file", NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, cluster_key_file),
                .help = "File holding the cluster keys (base64, primary first), if no Key is set",
        },
        [SETTING_CLUSTER_BIND_ADDRESS] = {
                "Cluster", "BindAddress", { "JOYRIDE_CLUSTER_BIND_ADDRESS" }, "cluster-bind-address", NULL, NULL, "ADDRESS",
                VALUE_IP, offsetof(Config, cluster_bind_address),
                .help = "Address for cluster traffic (default: all IPv4; loopback turns discovery off)",
        },
        [SETTING_CLUSTER_ADVERTISE_ADDRESS] = {
                "Cluster", "AdvertiseAddress", { "ADVERTISE_ADDRESS", "JOYRIDE_CLUSTER_ADVERTISE_ADDRESS" },
                "cluster-advertise-address", NULL, NULL, "ADDRESS",
                VALUE_IP, offsetof(Config, cluster_advertise_address),
                .help = "Address the other nodes reach this one at (default: the bind address, else detected)",
        },
        [SETTING_CLUSTER_DISCOVERY] = {
                "Cluster", "Discovery", { "JOYRIDE_CLUSTER_DISCOVERY" }, NULL, "discovery", "no-discovery", NULL,
                VALUE_BOOL, offsetof(Config, cluster_discovery), .def = "true",
                .help = "Find other nodes by UDP broadcast (or only through Join)",
        },
        /* Protocol timings: no command-line options (tuning for tests and
         * unusual networks). The environment variables are the historical
         * ones, in milliseconds. Defaults as in swim_config_lan() except
         * where cluster.c says why. */
        [SETTING_PROBE_INTERVAL] = {
                "Cluster", "ProbeIntervalSec", { "JOYRIDE_SWIM_PROBE_INTERVAL_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, probe_interval_msec), .def = "1",
                .help = "How often each node probes one other node",
        },
        [SETTING_PROBE_TIMEOUT] = {
                "Cluster", "ProbeTimeoutSec", { "JOYRIDE_SWIM_PROBE_TIMEOUT_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, probe_timeout_msec), .def = "0.5",
                .help = "Wait this long for a probe's answer (at most half the probe interval)",
        },
        [SETTING_GOSSIP_INTERVAL] = {
                "Cluster", "GossipIntervalSec", { "JOYRIDE_SWIM_GOSSIP_INTERVAL_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, gossip_interval_msec),
                .help = "How often membership news is gossiped (default: 0.2, or a fifth of a shorter probe interval)",
        },
        [SETTING_INDIRECT_CHECKS] = {
                "Cluster", "IndirectChecks", { "JOYRIDE_SWIM_INDIRECT_CHECKS" }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, indirect_checks), 0, 16, .def = "3",
                .help = "Nodes asked to probe a node that did not answer (0: none)",
        },
        [SETTING_SUSPICION_MULT] = {
                "Cluster", "SuspicionMultiplier", { "JOYRIDE_SWIM_SUSPICION_MULT" }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, suspicion_mult), 1, 100, .def = "4",
                .help = "Suspicion timeout in probe intervals, scaled by the cluster size",
        },
        [SETTING_RETRANSMIT_MULT] = {
                "Cluster", "RetransmitMultiplier", { "JOYRIDE_SWIM_RETRANSMIT_MULT" }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, retransmit_mult), 1, 100, .def = "6",
                .help = "Each piece of news is gossiped this many times, scaled by the cluster size",
        },
        [SETTING_PUSH_PULL_INTERVAL] = {
                "Cluster", "PushPullIntervalSec", { "JOYRIDE_CLUSTER_PUSH_PULL_INTERVAL_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, push_pull_interval_msec), .def = "30",
                .help = "How often the full state is exchanged with one other node",
        },
        [SETTING_DISCOVERY_INTERVAL] = {
                "Cluster", "DiscoveryIntervalSec", { "JOYRIDE_CLUSTER_DISCOVERY_INTERVAL_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, discovery_interval_msec), .def = "10",
                .help = "How often this node announces itself by broadcast",
        },
        [SETTING_DEAD_GRACE] = {
                "Cluster", "DeadGraceSec", { "JOYRIDE_CLUSTER_DEAD_GRACE_MS" }, NULL, NULL, NULL, "TIME",
                VALUE_MSEC, offsetof(Config, dead_grace_msec), .def = "5",
                .help = "Keep serving a failed node's records this long",
        },
        /* Limits and trust against hostile or broken peers. */
        [SETTING_MAX_MEMBERS] = {
                "Cluster", "MaxMembers", { "JOYRIDE_CLUSTER_MAX_MEMBERS" }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, max_members), 1, 65536, .def = "1000",
                .help = "Other members (and their record tables) kept at most; more are dropped",
        },
        [SETTING_MAX_RECORDS_PER_NODE] = {
                "Cluster", "MaxRecordsPerNode", { "JOYRIDE_CLUSTER_MAX_RECORDS_PER_NODE" }, NULL, NULL, NULL, "N",
                VALUE_UINT32, offsetof(Config, max_records_per_node), 1, 10000000, .def = "100000",
                .help = "Records taken from one other node at most; more are dropped",
        },
        [SETTING_TRUSTED_NODES] = {
                "Cluster", "TrustedNodes", { "JOYRIDE_CLUSTER_TRUSTED_NODES" }, NULL, NULL, NULL, "ID:KEY,...",
                VALUE_TRUSTED_NODES, offsetof(Config, trusted_nodes),
                .help = "Only these nodes, with these signing keys, are believed (default: keys pinned on first contact)",
        },
        [SETTING_RESOLVED_LINK] = {
                "Resolved", "Link", { "JOYRIDE_RESOLVED_LINK" }, "resolved-link", NULL, NULL, "IFNAME",
                VALUE_IFNAME, offsetof(Config, resolved_link),
                .help = "Register with systemd-resolved as the DNS server of this link (default: do not)",
        },
        [SETTING_RESOLVED_DOMAINS] = {
                "Resolved", "Domains", { "JOYRIDE_RESOLVED_DOMAINS" }, "resolved-domains", NULL, NULL, "DOMAINS",
                VALUE_ROUTE_DOMAINS, offsetof(Config, resolved_domains),
                .help = "Domains resolved sends to us; ~ = routing only (default: the DNS domains)",
        },
        [SETTING_RESOLVED_DNS] = {
                "Resolved", "DNS", { "JOYRIDE_RESOLVED_DNS" }, "resolved-dns", NULL, NULL, "SERVERS",
                VALUE_DNS_SERVERS, offsetof(Config, resolved_dns),
                .help = "Addresses resolved sends those queries to (default: 127.0.0.1 and the DNS port)",
        },
        /* etcd's own server reads ETCD_CERT_FILE, ETCD_KEY_FILE and the like:
         * ours carry JOYRIDE_ so that a shared environment cannot mix them up.
         * ETCD_ENDPOINTS, unprefixed, is the name etcd's own client tools read. */
        [SETTING_ETCD_ENDPOINTS] = {
                "Etcd", "Endpoints", { "ETCD_ENDPOINTS", "JOYRIDE_ETCD_ENDPOINTS" }, "etcd-endpoints", NULL, NULL, "URL,...",
                VALUE_URLS, offsetof(Config, etcd_endpoints),
                .help = "Share records through these etcd members (default: not at all)",
        },
        [SETTING_ETCD_PREFIX] = {
                "Etcd", "Prefix", { "JOYRIDE_ETCD_PREFIX" }, "etcd-prefix", NULL, NULL, "PATH",
                VALUE_KEY_PREFIX, offsetof(Config, etcd_prefix), .def = "/skydns",
                .help = "Key prefix of the records in etcd (SkyDNS layout)",
        },
        [SETTING_ETCD_LEASE_TTL] = {
                "Etcd", "LeaseTTL", { "JOYRIDE_ETCD_LEASE_TTL" }, "etcd-lease-ttl", NULL, NULL, "SECONDS",
                VALUE_UINT32, offsetof(Config, etcd_lease_ttl), 2, 86400, .def = "10",
                .help = "A dead node's names leave etcd after this time",
        },
        [SETTING_ETCD_CA_FILE] = {
                "Etcd", "CAFile", { "JOYRIDE_ETCD_CA_FILE" }, "etcd-ca-file", NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, etcd_ca_file),
                .help = "CA certificates (PEM) that sign the etcd members' (default: the system's)",
        },
        [SETTING_ETCD_CERT_FILE] = {
                "Etcd", "CertFile", { "JOYRIDE_ETCD_CERT_FILE" }, "etcd-cert-file", NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, etcd_cert_file),
                .help = "Client certificate (PEM) for etcd; needs KeyFile",
        },
        [SETTING_ETCD_KEY_FILE] = {
                "Etcd", "KeyFile", { "JOYRIDE_ETCD_KEY_FILE" }, "etcd-key-file", NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, etcd_key_file),
                .help = "Private key (PEM) of the client certificate",
        },
        [SETTING_ETCD_USER] = {
                "Etcd", "User", { "JOYRIDE_ETCD_USER" }, "etcd-user", NULL, NULL, "NAME",
                VALUE_STRING, offsetof(Config, etcd_user),
                .help = "etcd user to authenticate as; needs PasswordFile",
        },
        [SETTING_ETCD_PASSWORD_FILE] = {
                /* A file, not a value: argv and the environment are too easy to read. */
                "Etcd", "PasswordFile", { "JOYRIDE_ETCD_PASSWORD_FILE" }, "etcd-password-file", NULL, NULL, "FILE",
                VALUE_PATH, offsetof(Config, etcd_password_file),
                .help = "File whose first line is the etcd user's password",
        },
};

static const char *const known_groups[] = { "Service", "DNS",     "Hosts",    "Docker", "HTTP",
                                            "DBus",    "Cluster", "Resolved", "Etcd" };

typedef enum SourceKind {
        SOURCE_DEFAULT,
        SOURCE_FILE,
        SOURCE_ENV,
        SOURCE_CLI,
} SourceKind;

/* The current raw value of one setting and who set it, for error messages. */
typedef struct Value {
        char *raw; /* g_malloc'd; NULL = unset */
        bool set;  /* assigned in this layer (even if reset to the default) */
        SourceKind kind;
        const char *name; /* env var or option name (static strings); unused for file and default */
        unsigned line;    /* file line, 0 if unknown */
} Value;

typedef struct LoadState {
        Value values[_SETTING_MAX];
        char *const *defaults; /* built-in defaults, owned by load() */
        char *path;            /* config file that was read, g_malloc'd */
        char *config_option;   /* --config= value, g_malloc'd */
        bool help, version, check;
        GPtrArray *errors; /* --check-config: every error, not only the first; else NULL */
} LoadState;

static void load_state_done(LoadState *s) {
        for (size_t i = 0; i < _SETTING_MAX; i++)
                g_free(s->values[i].raw);
        g_free(s->path);
        g_free(s->config_option);
        if (s->errors)
                g_ptr_array_unref(s->errors);
        *s = (LoadState) {};
}

static void strv_freep(char ***p) {
        g_strfreev(*p);
}

_printf_(2, 3) static int fail(char **ret_error, const char *format, ...) {
        va_list ap;
        char *m;
        int k;

        va_start(ap, format);
        k = vasprintf(&m, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (ret_error)
                *ret_error = m;
        else
                free(m);
        return -EINVAL;
}

/* ---- "did you mean" ---- */

static unsigned edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        g_autofree unsigned *row = g_new(unsigned, lb + 1);

        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                unsigned diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned up = row[j];
                        unsigned cost = g_ascii_tolower(a[i - 1]) == g_ascii_tolower(b[j - 1]) ? 0 : 1;
                        row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
                        diag = up;
                }
        }
        return row[lb];
}

/* Case-insensitive equality counts as distance 0, so "port" suggests "Port". */
static const char *suggest(const char *word, const char *const *candidates, size_t n) {
        const char *best = NULL;
        unsigned best_d = 3;

        for (size_t i = 0; i < n; i++) {
                if (!candidates[i])
                        continue;
                unsigned d = edit_distance(word, candidates[i]);
                if (d < best_d) {
                        best_d = d;
                        best = candidates[i];
                }
        }
        return best;
}

/* ---- value parsing and validation ---- */

static bool parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                v = v * 10 + (uint64_t) (*p - '0');
                if (v > max)
                        return false;
        }
        *ret = v;
        return true;
}

static int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "true", "yes", "on" };
        static const char *const no[] = { "0", "false", "no", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

static bool is_ipv4(const char *s) {
        struct in_addr a;
        return inet_pton(AF_INET, s, &a) == 1;
}

static bool is_ipv6(const char *s) {
        struct in6_addr a;
        return inet_pton(AF_INET6, s, &a) == 1;
}

static bool is_host(const char *s) {
        g_autofree char *t = NULL;
        size_t l = strlen(s);

        if (is_ipv4(s) || is_ipv6(s))
                return true;
        t = g_ascii_strdown(s, -1);
        if (l > 1 && t[l - 1] == '.')
                t[l - 1] = 0;
        return dns_name_is_valid(t, 0);
}

/* host:port with host a name, an IPv4 address or a [bracketed] IPv6 address. */
static bool is_host_port(const char *s) {
        g_autofree char *host = NULL;
        const char *colon;
        uint64_t port;

        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return false;
                host = g_strndup(s + 1, end - s - 1);
                colon = end + 1;
                if (!is_ipv6(host))
                        return false;
        } else {
                colon = strrchr(s, ':');
                if (!colon || colon == s)
                        return false;
                host = g_strndup(s, colon - s);
                /* "::1:8890" could be an address or address:port: IPv6 needs brackets. */
                if (strchr(host, ':') || !is_host(host))
                        return false;
        }
        return parse_uint(colon + 1, 65535, &port) && port > 0;
}

static bool is_docker_host(const char *s) {
        const char *p;

        if ((p = g_str_has_prefix(s, "unix://") ? s + 7 : NULL))
                return p[0] == '/';
        if ((p = g_str_has_prefix(s, "tcp://") ? s + 6 : NULL) || (p = g_str_has_prefix(s, "http://") ? s + 7 : NULL) ||
            (p = g_str_has_prefix(s, "https://") ? s + 8 : NULL))
                return *p != 0 && *p != '/';
        return false;
}

/* What the kernel accepts as an interface name (dev_valid_name()). */
static bool is_ifname(const char *s) {
        size_t l = strlen(s);

        if (l < 1 || l >= 16 || streq(s, ".") || streq(s, ".."))
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '/' || *p == ':' || g_ascii_isspace(*p) || !g_ascii_isprint(*p))
                        return false;
        return true;
}

/* A DNS server as resolved takes it: IPv4, IPv4:PORT, IPv6 or [IPv6]:PORT. */
static bool is_dns_server(const char *s) {
        g_autofree char *host = NULL;
        const char *colon;
        uint64_t port;

        if (is_ipv4(s) || is_ipv6(s))
                return true;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return false;
                host = g_strndup(s + 1, end - s - 1);
                colon = end + 1;
                if (!is_ipv6(host))
                        return false;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return false;
                host = g_strndup(s, colon - s);
                if (!is_ipv4(host))
                        return false;
        }
        return parse_uint(colon + 1, 65535, &port) && port > 0;
}

/* "what the user wrote": DNS_PORT=abc, --dns-port=abc, [DNS] Port=abc in FILE:LINE */
static char *value_describe(const Setting *s, const Value *v, const char *path) {
        switch (v->kind) {
        case SOURCE_ENV:
                return g_strdup_printf("%s=%s", v->name, v->raw);
        case SOURCE_CLI:
                return g_strdup_printf("--%s=%s", v->name, v->raw);
        case SOURCE_FILE:
                if (v->line > 0)
                        return g_strdup_printf("[%s] %s=%s in %s:%u", s->group, s->key, v->raw, path, v->line);
                return g_strdup_printf("[%s] %s=%s in %s", s->group, s->key, v->raw, path);
        case SOURCE_DEFAULT:
        default:
                return g_strdup_printf("default [%s] %s=%s", s->group, s->key, v->raw);
        }
}

/* Where a value came from, without the value: "environment DNS_PORT",
 * "option --dns-port", "/etc/joyride/joyride.conf:3", "default". */
static char *value_origin(const Value *v, const char *path) {
        switch (v->kind) {
        case SOURCE_ENV:
                return g_strdup_printf("environment %s", v->name);
        case SOURCE_CLI:
                return g_strdup_printf("option --%s", v->name);
        case SOURCE_FILE:
                return v->line > 0 ? g_strdup_printf("%s:%u", path, v->line) : g_strdup(path);
        case SOURCE_DEFAULT:
        default:
                return g_strdup("default");
        }
}

/* One setting's final value on its way into Config: what the parsers get. */
typedef struct ParseTarget {
        const Setting *setting;
        const Value *value;
        const char *path; /* the config file, for messages */
        void *field;      /* the Config member at setting->offset */
        char **ret_error;
} ParseTarget;

_printf_(2, 3) static int invalid(const ParseTarget *t, const char *format, ...) {
        g_autofree char *what = value_describe(t->setting, t->value, t->path);
        g_autofree char *expected = NULL;
        va_list ap;

        va_start(ap, format);
        expected = g_strdup_vprintf(format, ap);
        va_end(ap);

        if (t->setting == &settings[SETTING_NODE_ID] && t->value->kind == SOURCE_DEFAULT)
                return fail(t->ret_error,
                            "host name '%s' cannot be used as the node id: %s; set NODE_ID or [Cluster] NodeId",
                            t->value->raw, expected);
        return fail(t->ret_error, "%s: %s", what, expected);
}

/* Splits a comma-separated list, trimming blanks and skipping empty entries. */
static char **split_list(const char *raw) {
        g_auto(GStrv) parts = g_strsplit(raw, ",", -1);
        GPtrArray *a = g_ptr_array_new();

        for (char **p = parts; *p; p++) {
                g_strstrip(*p);
                if (**p)
                        g_ptr_array_add(a, g_strdup(*p));
        }
        if (a->len == 0) {
                g_ptr_array_free(a, TRUE);
                return NULL;
        }
        g_ptr_array_add(a, NULL);
        return (char **) g_ptr_array_free(a, FALSE);
}

/* ---- one parser per value type ---- */

static bool is_absolute_path(const char *s) {
        return s[0] == '/';
}

static bool is_ip(const char *s) {
        return is_ipv4(s) || is_ipv6(s);
}

/* Free text, checked by a predicate: stored as a malloc'd copy. */
static const struct {
        bool (*valid)(const char *s);
        const char *expected;
} text_types[] = {
        [VALUE_STRING] = { NULL, NULL },
        [VALUE_PATH] = { is_absolute_path, "expected an absolute path" },
        [VALUE_IPV4] = { is_ipv4, "expected an IPv4 address" },
        [VALUE_IPV6] = { is_ipv6, "expected an IPv6 address" },
        [VALUE_IP] = { is_ip, "expected an IPv4 or IPv6 address" },
        [VALUE_HOST] = { is_host, "expected an IP address or a host name" },
        [VALUE_DOCKER_HOST] = { is_docker_host,
                                "expected unix:///path/to/socket, tcp://HOST:PORT, http://... or https://..." },
        [VALUE_IFNAME] = { is_ifname, "expected a network interface name (1-15 characters, no '/', ':' or blanks)" },
        [VALUE_NODE_ID] = { swim_id_is_valid, "expected 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'" },
};

static int parse_text(const ParseTarget *t) {
        ValueType type = t->setting->type;
        char *d;

        assert(type < ELEMENTSOF(text_types));
        if (text_types[type].valid && !text_types[type].valid(t->value->raw))
                return invalid(t, "%s", text_types[type].expected);
        d = strdup(t->value->raw);
        if (!d)
                return -ENOMEM;
        free(*(char **) t->field);
        *(char **) t->field = d;
        return 0;
}

/* Cluster keys: base64 of 32 bytes each, primary first, separated by commas
 * or blanks. On error says which key and what it decodes to, never the key. */
static int cluster_keys_check(const char *raw, char **ret_why) {
        g_auto(GStrv) parts = g_strsplit_set(raw, ",\n\r\t ", -1);
        unsigned n = 0;

        for (char **p = parts; *p; p++) {
                uint8_t buf[1024];
                size_t len = 0;

                if (!**p)
                        continue;
                n++;
                if (sodium_base642bin(buf, sizeof buf, *p, strlen(*p), NULL, &len, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) < 0) {
                        *ret_why = g_strdup_printf("key %u is not base64", n);
                        return -EINVAL;
                }
                sodium_memzero(buf, sizeof buf);
                if (len != 32) {
                        *ret_why = g_strdup_printf("key %u decodes to %zu bytes, not 32", n, len);
                        return -EINVAL;
                }
        }
        if (n == 0) {
                *ret_why = g_strdup("no key given");
                return -EINVAL;
        }
        return 0;
}

#define CLUSTER_KEY_HOWTO "make a key with: head -c 32 /dev/urandom | base64"

static int parse_cluster_keys(const ParseTarget *t) {
        g_autofree char *why = NULL, *where = NULL;
        char *d;

        if (cluster_keys_check(t->value->raw, &why) < 0) {
                where = value_origin(t->value, t->path);
                return fail(t->ret_error, "[%s] %s (%s): %s; %s", t->setting->group, t->setting->key, where, why,
                            CLUSTER_KEY_HOWTO);
        }
        d = strdup(t->value->raw);
        if (!d)
                return -ENOMEM;
        free(*(char **) t->field);
        *(char **) t->field = d;
        return 0;
}

/* A DNS name, lowercased and without a trailing dot, so that the DNS code can
 * compare names bytewise. */
static bool normalize_domain(char **item) {
        char *t = g_ascii_strdown(*item, -1);
        size_t n = strlen(t);

        if (n > 1 && t[n - 1] == '.')
                t[n - 1] = 0;
        if (!dns_name_is_valid(t, 0)) {
                g_free(t);
                return false;
        }
        g_free(*item);
        *item = t;
        return true;
}

/* As in resolved.conf: "~name" routes name to us without making it a search
 * domain. Normalized like a domain, "~" kept. */
static bool normalize_route_domain(char **item) {
        bool route_only = (*item)[0] == '~';
        g_autofree char *t = g_strdup(*item + route_only);

        if (!normalize_domain(&t))
                return false;
        g_free(*item);
        *item = g_strconcat(route_only ? "~" : "", t, NULL);
        return true;
}

static bool check_dns_server(char **item) {
        return is_dns_server(*item);
}

static bool check_host_port(char **item) {
        return is_host_port(*item);
}

/* AllowedHosts=: a host name or an address as a Host header gives it, or "*":
 * lowercased, without a trailing dot, as Host is compared. */
static bool normalize_allowed_host(char **item) {
        char *t;
        size_t n;

        if (!streq(*item, "*") && !is_host(*item))
                return false;
        t = g_ascii_strdown(*item, -1);
        n = strlen(t);
        if (n > 1 && t[n - 1] == '.')
                t[n - 1] = 0;
        g_free(*item);
        *item = t;
        return true;
}

/* ForwardAllow: an address or a prefix, kept in its canonical form with the
 * host bits cleared, as it is used. */
static bool normalize_prefix(char **item) {
        DnsAllowPrefix p;
        char buf[INET6_ADDRSTRLEN + 8];

        if (dns_allow_parse(*item, &p) < 0)
                return false;
        dns_allow_format(&p, buf, sizeof buf);
        g_free(*item);
        *item = g_strdup(buf);
        return true;
}

/* An etcd member's URL: http:// or https://, a host, an optional port, no
 * path beyond "/", no user, query or fragment. Normalized without the
 * trailing slash. */
static bool normalize_url(char **item) {
        g_autoptr(GUri) uri = g_uri_parse(*item, G_URI_FLAGS_NONE, NULL);
        const char *scheme, *host, *path;

        if (!uri)
                return false;
        scheme = g_uri_get_scheme(uri);
        host = g_uri_get_host(uri);
        path = g_uri_get_path(uri);
        if (!scheme || (g_ascii_strcasecmp(scheme, "http") != 0 && g_ascii_strcasecmp(scheme, "https") != 0))
                return false;
        if (isempty(host) || g_uri_get_userinfo(uri) || g_uri_get_query(uri) || g_uri_get_fragment(uri))
                return false;
        if (!isempty(path) && !streq(path, "/"))
                return false;
        if (g_uri_get_port(uri) == 0)
                return false;
        g_free(*item);
        *item = g_uri_join(G_URI_FLAGS_NONE, scheme, NULL, host, g_uri_get_port(uri), "", NULL, NULL);
        return true;
}

static bool check_trusted_node(char **item) {
        char id[65];
        uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];
        const char *why = NULL;

        return cluster_trusted_parse(*item, id, key, &why) >= 0;
}

/* Comma-separated lists: each entry checked (and maybe normalized), stored as
 * a GLib string vector. */
static const struct {
        bool (*item)(char **item);
        const char *expected;
} list_types[] = {
        [VALUE_DOMAINS] = { normalize_domain, "expected a comma-separated list of DNS names" },
        [VALUE_ROUTE_DOMAINS] = { normalize_route_domain,
                                  "expected a comma-separated list of DNS names, each optionally prefixed with '~'" },
        [VALUE_DNS_SERVERS] = { check_dns_server,
                                "expected a comma-separated list of ADDRESS, IPv4:PORT or [IPv6]:PORT" },
        [VALUE_JOIN] = { check_host_port, "expected a comma-separated list of HOST:PORT" },
        [VALUE_HOSTS] = { normalize_allowed_host,
                          "expected a comma-separated list of host names and IP addresses (or *)" },
        [VALUE_PREFIXES] = { normalize_prefix, "expected a comma-separated list of ADDRESS or ADDRESS/PREFIXLEN" },
        [VALUE_URLS] = { normalize_url, "expected a comma-separated list of http://HOST:PORT or https://HOST:PORT" },
        [VALUE_TRUSTED_NODES] = { check_trusted_node,
                                  "expected a comma-separated list of NODE-ID:PUBLIC-KEY (the base64 key in the "
                                  "node's " CLUSTER_PUB_FILE ")" },
};

static int parse_list(const ParseTarget *t) {
        ValueType type = t->setting->type;
        _cleanup_(strv_freep) char **l = split_list(t->value->raw);

        assert(type < ELEMENTSOF(list_types) && list_types[type].item);
        for (char **p = l; p && *p; p++) {
                g_autofree char *written = g_strdup(*p);

                if (!list_types[type].item(p))
                        return invalid(t, "%s, and '%s' is not one", list_types[type].expected, written);
        }
        g_strfreev(*(char ***) t->field);
        *(char ***) t->field = TAKE_PTR(l);
        return 0;
}

/* Forward=: upstream servers (a link-local IPv6 address may carry its
 * %interface), at most as many as the forwarder uses, or resolv.conf alone. */
static int parse_forward(const ParseTarget *t) {
        _cleanup_(strv_freep) char **l = split_list(t->value->raw);

        for (char **p = l; p && *p; p++) {
                struct sockaddr_storage sa;
                socklen_t salen;

                if (strcasecmp(*p, "resolv.conf") == 0) {
                        if (p != l || p[1])
                                return invalid(t, "expected resolv.conf alone, or a list of servers without it");
                        g_free(*p);
                        *p = g_strdup("resolv.conf");
                        continue;
                }
                if (dns_forward_parse_address(*p, 53, &sa, &salen) < 0)
                        return invalid(t,
                                       "expected resolv.conf, or a comma-separated list of ADDRESS, IPv4:PORT or "
                                       "[IPv6]:PORT, and '%s' is not one",
                                       *p);
        }
        if (l && g_strv_length(l) > DNS_FORWARD_UPSTREAMS_MAX)
                return invalid(t, "expected at most %d servers", DNS_FORWARD_UPSTREAMS_MAX);
        g_strfreev(*(char ***) t->field);
        *(char ***) t->field = TAKE_PTR(l);
        return 0;
}

static int parse_port(const ParseTarget *t) {
        uint64_t u;

        if (!parse_uint(t->value->raw, 65535, &u) || u == 0)
                return invalid(t, "expected a port number (1-65535)");
        *(uint16_t *) t->field = (uint16_t) u;
        return 0;
}

static int parse_uint32(const ParseTarget *t) {
        const Setting *s = t->setting;
        uint64_t u;

        if (!parse_uint(t->value->raw, s->max, &u) || u < s->min)
                return invalid(t, "expected an integer from %u to %u", s->min, s->max);
        *(uint32_t *) t->field = (uint32_t) u;
        return 0;
}

/* A time span, 1 ms to 24 h, stored as milliseconds: a plain decimal number
 * with an optional unit, as in systemd's unit files ("0.2", "200ms", "1.5s",
 * "2min", "1h"). A bare number is seconds, except in the historical *_MS
 * environment variables, where it is milliseconds. */
static int parse_msec(const ParseTarget *t) {
        static const struct {
                const char *suffix;
                double msec;
        } units[] = {
                { "ms", 1 },    { "msec", 1 },    { "s", 1000 },    { "sec", 1000 },
                { "m", 60000 }, { "min", 60000 }, { "h", 3600000 }, { "hr", 3600000 },
        };
        const char *raw = t->value->raw;
        bool in_ms = t->value->kind == SOURCE_ENV && g_str_has_suffix(t->value->name, "_MS");
        size_t digits = strspn(raw, "0123456789.");
        const char *unit = raw + digits;
        double factor = in_ms ? 1 : 1000, n, msec;
        g_autofree char *number = g_strndup(raw, digits);
        char *end;

        if (*unit) {
                factor = 0;
                for (size_t i = 0; i < ELEMENTSOF(units) && factor == 0; i++)
                        if (streq(unit, units[i].suffix))
                                factor = units[i].msec;
        }
        /* Only plain decimals: strtod alone would take "inf", "nan", hex and blanks. */
        errno = 0;
        n = g_ascii_strtod(number, &end);
        msec = n * factor;
        if (factor == 0 || !g_ascii_isdigit(raw[0]) || errno != 0 || *end != 0 ||
            !(msec >= 1 - 1e-6 && msec <= 86400000 + 1e-6)) {
                if (in_ms)
                        return invalid(t, "expected a number of milliseconds from 1 to 86400000");
                return invalid(t,
                               "expected a number of seconds from 0.001 to 86400, or a time with a unit "
                               "(200ms, 1.5s, 2min, 1h)");
        }
        *(uint32_t *) t->field = (uint32_t) MAX(msec + 0.5, 1.0);
        return 0;
}

static int parse_bool(const ParseTarget *t) {
        int k = parse_boolean(t->value->raw);

        if (k < 0)
                return invalid(t, "expected a boolean (1/0, true/false, yes/no, on/off)");
        *(bool *) t->field = k;
        return 0;
}

static int parse_bus(const ParseTarget *t) {
        const char *raw = t->value->raw;

        if (streq(raw, "system"))
                *(BusKind *) t->field = BUS_SYSTEM;
        else if (streq(raw, "user"))
                *(BusKind *) t->field = BUS_USER;
        else if (streq(raw, "none"))
                *(BusKind *) t->field = BUS_NONE;
        else
                return invalid(t, "expected system, user or none");
        return 0;
}

/* "/skydns", "/dns/prod": slash-separated segments of printable characters.
 * Trailing slashes are dropped; "/" alone and empty segments are refused. */
static int parse_key_prefix(const ParseTarget *t) {
        g_autofree char *p = g_strdup(t->value->raw);
        size_t l = strlen(p);
        char *d;

        while (l > 1 && p[l - 1] == '/')
                p[--l] = 0;
        for (const char *c = p; *c; c++)
                if ((unsigned char) *c < 0x21 || *c == 0x7f)
                        l = 0;
        if (p[0] != '/' || l < 2 || l > 512 || strstr(p, "//"))
                return invalid(t,
                               "expected a key prefix such as /skydns ('/' then names, no blanks, no empty segment)");
        d = strdup(p);
        if (!d)
                return -ENOMEM;
        free(*(char **) t->field);
        *(char **) t->field = d;
        return 0;
}

static int parse_log_level(const ParseTarget *t) {
        int k = log_parse_level(t->value->raw);

        if (k < 0)
                return invalid(t,
                               "expected a log level (emerg, alert, crit, err, warning, notice, info, debug, or 0-7)");
        *(int *) t->field = k;
        return 0;
}

static int setting_apply(Config *c, SettingId id, const Value *v, const char *path, char **ret_error) {
        const ParseTarget t = {
                .setting = &settings[id],
                .value = v,
                .path = path,
                .field = (uint8_t *) c + settings[id].offset,
                .ret_error = ret_error,
        };

        if (!v->raw)
                return 0; /* unset: the field stays zero/NULL */

        switch (t.setting->type) {
        case VALUE_STRING:
        case VALUE_PATH:
        case VALUE_IPV4:
        case VALUE_IPV6:
        case VALUE_IP:
        case VALUE_HOST:
        case VALUE_DOCKER_HOST:
        case VALUE_IFNAME:
        case VALUE_NODE_ID:
                return parse_text(&t);
        case VALUE_DOMAINS:
        case VALUE_ROUTE_DOMAINS:
        case VALUE_DNS_SERVERS:
        case VALUE_JOIN:
        case VALUE_PREFIXES:
        case VALUE_HOSTS:
        case VALUE_URLS:
        case VALUE_TRUSTED_NODES:
                return parse_list(&t);
        case VALUE_KEY_PREFIX:
                return parse_key_prefix(&t);
        case VALUE_FORWARD:
                return parse_forward(&t);
        case VALUE_PORT:
                return parse_port(&t);
        case VALUE_UINT32:
                return parse_uint32(&t);
        case VALUE_MSEC:
                return parse_msec(&t);
        case VALUE_BOOL:
                return parse_bool(&t);
        case VALUE_BUS:
                return parse_bus(&t);
        case VALUE_LOG_LEVEL:
                return parse_log_level(&t);
        case VALUE_CLUSTER_KEYS:
                return parse_cluster_keys(&t);
        }
        return fail(ret_error, "internal error: setting [%s] %s has no parser", t.setting->group, t.setting->key);
}

/* Sets a value; an empty string resets to the built-in default (see top). */
static void value_set(LoadState *st, SettingId id, const char *raw, SourceKind kind, const char *name, unsigned line) {
        Value *v = &st->values[id];

        g_free(v->raw);
        if (isempty(raw) && kind != SOURCE_DEFAULT) {
                raw = st->defaults[id];
                kind = SOURCE_DEFAULT;
                name = NULL;
                line = 0;
        }
        *v = (Value) {
                .raw = g_strdup(raw),
                .set = true,
                .kind = kind,
                .name = name,
                .line = line,
        };
}

/* ---- command line ---- */

enum {
        OPT_HELP = 'h',
        OPT_CONFIG = 0x100,
        OPT_VERSION,
        OPT_CHECK_CONFIG,
        OPT_SETTING = 0x1000, /* + 4 * setting id + one of the below */
};
enum {
        OPT_KIND_VALUE,
        OPT_KIND_ON,
        OPT_KIND_OFF,
};

static size_t build_options(struct option *o) {
        size_t n = 0;

        o[n++] = (struct option) { "help", no_argument, NULL, OPT_HELP };
        o[n++] = (struct option) { "version", no_argument, NULL, OPT_VERSION };
        o[n++] = (struct option) { "config", required_argument, NULL, OPT_CONFIG };
        o[n++] = (struct option) { "check-config", no_argument, NULL, OPT_CHECK_CONFIG };
        for (size_t i = 0; i < _SETTING_MAX; i++) {
                const Setting *s = &settings[i];
                int base = OPT_SETTING + 4 * (int) i;

                if (s->option)
                        o[n++] = (struct option) { s->option, required_argument, NULL, base + OPT_KIND_VALUE };
                if (s->option_on)
                        o[n++] = (struct option) { s->option_on, no_argument, NULL, base + OPT_KIND_ON };
                if (s->option_off)
                        o[n++] = (struct option) { s->option_off, no_argument, NULL, base + OPT_KIND_OFF };
        }
        o[n] = (struct option) {};
        return n;
}

static const char *option_name_by_val(const struct option *o, int val) {
        for (; o->name; o++)
                if (o->val == val)
                        return o->name;
        return NULL;
}

static int unknown_option(const struct option *opts, size_t n_opts, const char *arg, char **ret_error) {
        g_autofree char *name = NULL;
        g_autofree const char **names = NULL;
        g_autoptr(GString) matches = g_string_new(NULL);
        size_t n_matches = 0;
        const char *s;

        if (!g_str_has_prefix(arg, "--"))
                return fail(ret_error, "unknown option '%s'", arg);

        name = g_strndup(arg + 2, strcspn(arg + 2, "="));

        /* getopt_long also rejects abbreviations that fit several options. */
        for (size_t i = 0; i < n_opts && *name; i++)
                if (g_str_has_prefix(opts[i].name, name)) {
                        g_string_append_printf(matches, "%s--%s", n_matches > 0 ? ", " : "", opts[i].name);
                        n_matches++;
                }
        if (n_matches > 1)
                return fail(ret_error, "ambiguous option '--%s' (could be %s)", name, matches->str);

        names = g_new0(const char *, n_opts);
        for (size_t i = 0; i < n_opts; i++)
                names[i] = opts[i].name;
        s = suggest(name, names, n_opts);
        if (s)
                return fail(ret_error, "unknown option '--%s' (did you mean --%s?)", name, s);
        return fail(ret_error, "unknown option '--%s'", name);
}

static int parse_command_line(LoadState *st, int argc, char *argv[], char **ret_error) {
        struct option opts[4 + 3 * _SETTING_MAX + 1];
        size_t n_opts = build_options(opts);
        int c;

        if (argc <= 0 || !argv)
                return 0;

        /* optind = 0 makes glibc reinitialize, so loading twice (reload) works.
         * '+' stops at the first non-option instead of permuting the caller's
         * argv; ':' reports a missing argument as ':' and silences getopt. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) >= 0) {
                const char *arg = argv[optind - 1];

                switch (c) {

                case OPT_HELP:
                        st->help = true;
                        return 0;

                case OPT_VERSION:
                        st->version = true;
                        return 0;

                case OPT_CHECK_CONFIG:
                        st->check = true;
                        break;

                case OPT_CONFIG:
                        if (isempty(optarg))
                                return fail(ret_error, "--config=: expected a file name");
                        g_free(st->config_option);
                        st->config_option = g_strdup(optarg);
                        break;

                case ':': {
                        const char *name = option_name_by_val(opts, optopt);
                        return fail(ret_error, "option '--%s' needs a value (--%s=...)", strna(name), strna(name));
                }

                case '?':
                        if (optopt >= OPT_SETTING || optopt == OPT_VERSION || optopt == OPT_CHECK_CONFIG) {
                                const char *name = option_name_by_val(opts, optopt);
                                return fail(ret_error, "option '--%s' does not take a value", strna(name));
                        }
                        if (optopt == OPT_HELP)
                                return fail(ret_error, "option '--help' does not take a value");
                        if (optopt != 0)
                                return fail(ret_error, "unknown option '-%c'", optopt);
                        return unknown_option(opts, n_opts, arg, ret_error);

                default: {
                        int id = (c - OPT_SETTING) / 4, kind = (c - OPT_SETTING) % 4;
                        const Setting *s;

                        if (c < OPT_SETTING || id >= _SETTING_MAX)
                                return fail(ret_error, "internal error parsing option '%s'", arg);
                        s = &settings[id];
                        if (kind == OPT_KIND_VALUE)
                                value_set(st, id, optarg, SOURCE_CLI, s->option, 0);
                        else if (kind == OPT_KIND_ON)
                                value_set(st, id, "true", SOURCE_CLI, s->option_on, 0);
                        else
                                value_set(st, id, "false", SOURCE_CLI, s->option_off, 0);
                }
                }
        }

        if (optind < argc)
                return fail(ret_error, "unexpected argument '%s' (options look like --name=value)", argv[optind]);
        return 0;
}

static void print_help(void) {
        printf("Usage: joyrided [OPTIONS]\n\n"
               "Joyride DNS: DNS names for Docker containers and static hosts files.\n\n"
               "Settings come from built-in defaults, then the config file, then the\n"
               "environment, then the command line; later ones win.\n\n"
               "Options:\n"
               "  -h --help                    Show this help and exit\n"
               "     --version                 Show the version and exit\n"
               "     --config=FILE             Config file to read\n"
               "                               [$JOYRIDE_CONFIG; default " CONFIG_FILE_DEFAULT
               "]\n"
               "     --check-config            Read every layer (file, environment, options), report every\n"
               "                               error, print the effective settings and where each came from;\n"
               "                               exit 0 when valid, 2 when not\n");

        for (size_t i = 0; i < _SETTING_MAX; i++) {
                const Setting *s = &settings[i];
                g_autoptr(GString) where = g_string_new(NULL);

                for (size_t e = 0; e < ELEMENTSOF(s->env) && s->env[e]; e++)
                        g_string_append_printf(where, "$%s, ", s->env[e]);
                g_string_append_printf(where, "[%s] %s", s->group, s->key);

                if (s->option) {
                        g_autofree char *opt = g_strdup_printf("--%s=%s", s->option, s->metavar);
                        printf("     %-24s  %s\n", opt, s->help);
                } else if (s->option_off && s->option_on) {
                        g_autofree char *opt = g_strdup_printf("--%s, --%s", s->option_on, s->option_off);
                        printf("     %-24s  %s\n", opt, s->help);
                } else if (s->option_off || s->option_on) {
                        g_autofree char *opt = g_strdup_printf("--%s", s->option_off ?: s->option_on);
                        printf("     %-24s  %s\n", opt, s->help);
                } else
                        continue;
                printf("%31s[%s%s%s]\n", "", where->str, s->def ? "; default " : "", strempty(s->def));
        }

        printf("\nOnly in the config file or the environment:\n");
        for (size_t i = 0; i < _SETTING_MAX; i++) {
                const Setting *s = &settings[i];
                if (s->option || s->option_on || s->option_off)
                        continue;
                printf("  [%s] %s=%s%s%s%s  %s%s%s\n", s->group, s->key, s->metavar, s->env[0] ? " ($" : "",
                       strempty(s->env[0]), s->env[0] ? ")" : "", s->help, s->def ? "; default " : "",
                       strempty(s->def));
        }
}

/* ---- environment ---- */

static const char *env_get(char *const envp[], const char *name) {
        size_t l = strlen(name);

        for (char *const *e = envp; e && *e; e++)
                if (strncmp(*e, name, l) == 0 && (*e)[l] == '=')
                        return *e + l + 1;
        return NULL;
}

static void apply_environment(LoadState *st, char *const envp[]) {
        for (size_t i = 0; i < _SETTING_MAX; i++)
                for (size_t e = 0; e < ELEMENTSOF(settings[i].env) && settings[i].env[e]; e++) {
                        const char *name = settings[i].env[e];
                        const char *v = env_get(envp, name);
                        g_autofree char *first = NULL;

                        if (isempty(v))
                                continue;
                        /* systemd passes one path per StateDirectory= entry, colon-separated. */
                        if (streq(name, "STATE_DIRECTORY")) {
                                first = g_strndup(v, strcspn(v, ":"));
                                if (isempty(first))
                                        continue;
                                v = first;
                        }
                        value_set(st, i, v, SOURCE_ENV, name, 0);
                }
}

/* ---- config file ---- */

static int read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        g_autoptr(GString) buf = NULL;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;

        buf = g_string_new(NULL);
        for (;;) {
                char chunk[16384];
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                if (buf->len + (size_t) n > CONFIG_FILE_MAX)
                        return -EFBIG;
                g_string_append_len(buf, chunk, n);
        }
        *ret_size = buf->len;
        *ret = g_string_free(TAKE_PTR(buf), FALSE);
        return 0;
}

/* GKeyFile's messages do not carry line numbers. Parsing is line by line, so
 * a prefix of the file fails exactly when it contains the bad line: the
 * shortest failing prefix ends on it. Config files are small. */
static unsigned find_error_line(const char *data, size_t size) {
        size_t end = 0;

        for (unsigned line = 1; end < size; line++) {
                g_autoptr(GKeyFile) k = g_key_file_new();
                const char *nl = memchr(data + end, '\n', size - end);

                end = nl ? (size_t) (nl - data) + 1 : size;
                if (!g_key_file_load_from_data(k, data, end, G_KEY_FILE_NONE, NULL))
                        return line;
        }
        return 0;
}

/* Line of the group header (key == NULL) or of the last assignment of key in
 * group; GKeyFile lets a later assignment win, so report that one. */
static unsigned find_line(const char *data, const char *group, const char *key) {
        g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
        g_autofree char *current = NULL;
        unsigned found = 0;

        for (unsigned i = 0; lines[i]; i++) {
                char *l = g_strstrip(lines[i]);

                if (*l == '#' || *l == 0)
                        continue;
                if (*l == '[') {
                        char *e = strchr(l, ']');
                        g_free(current);
                        current = e ? g_strndup(l + 1, e - l - 1) : NULL;
                        if (!key && streq_ptr(current, group))
                                return i + 1;
                        continue;
                }
                if (!key || !streq_ptr(current, group))
                        continue;
                char *eq = strchr(l, '=');
                if (!eq)
                        continue;
                *eq = 0;
                if (streq(g_strchomp(l), key))
                        found = i + 1;
        }
        return found;
}

static int setting_find(const char *group, const char *key) {
        for (size_t i = 0; i < _SETTING_MAX; i++)
                if (streq(settings[i].group, group) && streq(settings[i].key, key))
                        return (int) i;
        return -ENOENT;
}

/* An error of the config file: returned, or with --check-config recorded
 * while the checks go on. */
static int file_error(GPtrArray *errors, char **ret_error, char *message) {
        if (errors) {
                g_ptr_array_add(errors, message);
                return 0;
        }
        int r = fail(ret_error, "%s", message);
        g_free(message);
        return r;
}

static int check_unknown(GKeyFile *k, const char *path, const char *data, GPtrArray *errors, char **ret_error) {
        g_auto(GStrv) groups = g_key_file_get_groups(k, NULL);
        int r;

        for (char **g = groups; *g; g++) {
                bool known = false;

                for (size_t i = 0; i < ELEMENTSOF(known_groups); i++)
                        known = known || streq(*g, known_groups[i]);
                if (!known) {
                        const char *s = suggest(*g, known_groups, ELEMENTSOF(known_groups));
                        unsigned line = find_line(data, *g, NULL);
                        g_autofree char *where = line > 0 ? g_strdup_printf("%s:%u", path, line) : g_strdup(path);

                        r = file_error(
                                errors, ret_error,
                                s ? g_strdup_printf("%s: unknown section [%s] (did you mean [%s]?)", where, *g, s)
                                  : g_strdup_printf("%s: unknown section [%s]", where, *g));
                        if (r < 0)
                                return r;
                        continue;
                }

                g_auto(GStrv) keys = g_key_file_get_keys(k, *g, NULL, NULL);
                for (char **key = keys; key && *key; key++) {
                        const char *in_group[_SETTING_MAX] = {};
                        const char *s = NULL, *s_group = NULL;

                        if (setting_find(*g, *key) >= 0)
                                continue;
                        for (size_t i = 0; i < _SETTING_MAX; i++)
                                if (streq(settings[i].group, *g))
                                        in_group[i] = settings[i].key;

                        s = suggest(*key, in_group, _SETTING_MAX);
                        if (!s)
                                /* Right key, wrong section? */
                                for (size_t i = 0; i < _SETTING_MAX && !s; i++)
                                        if (strcasecmp(settings[i].key, *key) == 0) {
                                                s = settings[i].key;
                                                s_group = settings[i].group;
                                        }

                        unsigned line = find_line(data, *g, *key);
                        g_autofree char *where = line > 0 ? g_strdup_printf("%s:%u", path, line) : g_strdup(path);
                        char *m;
                        if (s && s_group)
                                m = g_strdup_printf("%s: unknown key '%s' in section [%s] (did you mean [%s] %s?)",
                                                    where, *key, *g, s_group, s);
                        else if (s)
                                m = g_strdup_printf("%s: unknown key '%s' in section [%s] (did you mean '%s'?)", where,
                                                    *key, *g, s);
                        else
                                m = g_strdup_printf("%s: unknown key '%s' in section [%s]", where, *key, *g);
                        r = file_error(errors, ret_error, m);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Says what is wrong with line `line` of a file GKeyFile refused, in our
 * words rather than GLib's ("Key file does not start with a group"). */
static char *syntax_error(const char *data, unsigned line, const GError *error) {
        g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
        bool in_section = false;
        const char *text;

        if (line == 0 || line > g_strv_length(lines))
                return g_strdup(error->message);
        for (unsigned i = 0; i + 1 < line; i++) {
                const char *l = lines[i] + strspn(lines[i], " \t");
                in_section = in_section || l[0] == '[';
        }
        text = lines[line - 1] + strspn(lines[line - 1], " \t");
        g_strchomp((char *) text);
        if (text[0] == '[' && !strchr(text, ']'))
                return g_strdup_printf("'%s': a section header needs its closing ']' (like [DNS])", text);
        if (text[0] == '[')
                return g_strdup_printf("'%s': a section header is [Name] alone on its line", text);
        if (strchr(text, '=') && !in_section)
                return g_strdup_printf(
                        "'%s' comes before any section: put it under its section header, "
                        "such as [DNS] for Port= (see joyride.conf(5))",
                        text);
        if (!strchr(text, '='))
                return g_strdup_printf(
                        "'%s' is not a setting (Key=value), a section header ([Name]) or a "
                        "comment (# ...)",
                        text);
        return g_strdup_printf("'%s': %s", text, error->message);
}

static int apply_file(LoadState *st, const char *path, const char *origin, char **ret_error) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autoptr(GError) error = NULL;
        g_autofree char *data = NULL;
        size_t size = 0;
        int r;

        r = read_file(path, &data, &size);
        if (r == -ENOENT && !origin)
                return 0; /* no file at the default path: defaults and environment only */
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (origin)
                        return fail(ret_error, "%s=%s: cannot read config file: %s", origin, path, strerror(-r));
                return fail(ret_error, "%s: cannot read config file: %s", path, strerror(-r));
        }

        if (!g_key_file_load_from_data(k, data, size, G_KEY_FILE_NONE, &error)) {
                unsigned line = find_error_line(data, size);
                g_autofree char *why = syntax_error(data, line, error);

                r = file_error(st->errors, ret_error,
                               line > 0 ? g_strdup_printf("%s:%u: %s", path, line, why)
                                        : g_strdup_printf("%s: %s", path, why));
                return r < 0 ? r : 0; /* --check-config: nothing more to read in this file */
        }

        r = check_unknown(k, path, data, st->errors, ret_error);
        if (r < 0)
                return r;

        for (size_t i = 0; i < _SETTING_MAX; i++) {
                const Setting *s = &settings[i];
                g_autofree char *v = NULL;
                unsigned line;

                if (!g_key_file_has_key(k, s->group, s->key, NULL))
                        continue;
                line = find_line(data, s->group, s->key);
                v = g_key_file_get_string(k, s->group, s->key, &error);
                if (!v) {
                        if (line > 0)
                                return fail(ret_error, "[%s] %s in %s:%u: %s", s->group, s->key, path, line,
                                            error->message);
                        return fail(ret_error, "[%s] %s in %s: %s", s->group, s->key, path, error->message);
                }
                value_set(st, i, v, SOURCE_FILE, NULL, line);
        }

        st->path = g_strdup(path);
        return 0;
}

/* The key file, when the cluster uses one: readable and holding keys, so that
 * a bad key stops the start with a configuration error rather than later. */
static int check_key_file(const Config *c, char **ret_error) {
        g_autofree char *data = NULL, *why = NULL;
        g_autoptr(GError) error = NULL;
        int r;

        if (!c->cluster_enabled || c->cluster_key || !c->cluster_key_file)
                return 0;
        if (!g_file_get_contents(c->cluster_key_file, &data, NULL, &error))
                return fail(ret_error, "[Cluster] KeyFile=%s: cannot read it: %s", c->cluster_key_file, error->message);
        r = cluster_keys_check(data, &why);
        sodium_memzero(data, strlen(data));
        if (r < 0)
                return fail(ret_error, "[Cluster] KeyFile=%s: %s; %s", c->cluster_key_file, why, CLUSTER_KEY_HOWTO);
        return 0;
}

/* Settings that only make sense together: the first one set without its
 * partner. Returns 0 or -EINVAL with *ret_error. */
static int check_pairs(const LoadState *st, char **ret_error) {
        static const struct {
                SettingId a, b;
                const char *why;
        } pairs[] = {
                { SETTING_ETCD_CERT_FILE, SETTING_ETCD_KEY_FILE, "a client certificate needs its private key" },
                { SETTING_ETCD_KEY_FILE, SETTING_ETCD_CERT_FILE, "a private key needs its client certificate" },
                { SETTING_ETCD_USER, SETTING_ETCD_PASSWORD_FILE, "the etcd user needs a password" },
                { SETTING_ETCD_PASSWORD_FILE, SETTING_ETCD_USER, "a password needs the etcd user it belongs to" },
        };

        for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
                const Setting *a = &settings[pairs[i].a], *b = &settings[pairs[i].b];
                const Value *va = &st->values[pairs[i].a];

                if (!va->raw || st->values[pairs[i].b].raw)
                        continue;
                g_autofree char *what = value_describe(a, va, st->path);
                return fail(ret_error, "%s: needs [%s] %s= (%s, --%s) as well: %s", what, b->group, b->key, b->env[0],
                            b->option, pairs[i].why);
        }
        return 0;
}

/* ---- --check-config ---- */

/* Parses every value the given layer set, into a scratch Config, and records
 * what is wrong: also the values that a later layer overrides. */
static void check_layer(LoadState *st, LoadState *layer, SourceKind kind) {
        if (!st->errors)
                return;
        for (size_t i = 0; i < _SETTING_MAX; i++) {
                _cleanup_(config_done) Config scratch = {};
                char *error = NULL;

                if (!layer->values[i].set || layer->values[i].kind != kind)
                        continue;
                if (setting_apply(&scratch, i, &layer->values[i], st->path, &error) < 0)
                        g_ptr_array_add(st->errors, error);
        }
}


/* Prints the effective settings, section by section, each with where it came
 * from (secrets shown as set or not, never their value), then every error.
 * Returns 1 (stop, exit 0) when there is none, -EINVAL (exit 2) otherwise. */
static int check_report(LoadState *st, char **ret_error) {
        const char *group = NULL;

        printf("# joyrided %s: the effective configuration (config file: %s)\n", JOYRIDE_VERSION, st->path ?: "none");
        for (size_t g = 0; g < ELEMENTSOF(known_groups); g++)
                for (size_t i = 0; i < _SETTING_MAX; i++) {
                        const Setting *s = &settings[i];
                        const Value *v = &st->values[i];
                        g_autofree char *origin = NULL, *line = NULL;
                        bool secret = i == SETTING_CLUSTER_KEY || i == SETTING_API_TOKEN;

                        if (!streq(s->group, known_groups[g]))
                                continue;
                        if (!group || !streq(group, s->group)) {
                                printf("\n[%s]\n", s->group);
                                group = s->group;
                        }
                        origin = value_origin(v, st->path);
                        line = g_strdup_printf("%s=%s", s->key,
                                               secret ? (isempty(v->raw) ? "" : "(set, not shown)") : strempty(v->raw));
                        printf("%-44s # %s\n", line, origin);
                }
        fflush(stdout);

        for (guint i = 0; i < st->errors->len; i++)
                fprintf(stderr, "joyrided: %s\n", (const char *) st->errors->pdata[i]);
        if (st->errors->len == 0) {
                fprintf(stderr, "joyrided: the configuration is valid.\n");
                return 1;
        }
        return fail(ret_error, "%u error%s in the configuration", st->errors->len, st->errors->len == 1 ? "" : "s");
}

/* ---- loading ---- */

static char *host_name(void) {
        char buf[HOST_NAME_MAX + 1] = {};

        if (gethostname(buf, sizeof buf - 1) < 0 || !buf[0])
                return g_strdup("localhost");
        return g_strdup(buf);
}

static void defaults_done(char *(*defaults)[_SETTING_MAX]) {
        for (size_t i = 0; i < _SETTING_MAX; i++)
                g_free((*defaults)[i]);
}

/* Long on purpose: the layers in their order (defaults, options parsed, file,
 * environment, options applied, values parsed, --check-config), each a short
 * block; split up, the order would be harder to see. */
static int load(Config *ret, int argc, char *argv[], char *const envp[], bool reload, char **ret_error) {
        _cleanup_(defaults_done) char *defaults[_SETTING_MAX] = {};
        _cleanup_(load_state_done) LoadState st = { .defaults = defaults }, cli = { .defaults = defaults };
        _cleanup_(config_done) Config c = {};
        g_autofree char *path = NULL;
        const char *origin = NULL, *e;
        int r;

        for (size_t i = 0; i < _SETTING_MAX; i++) {
                defaults[i] = i == SETTING_NODE_ID ? host_name() : g_strdup(settings[i].def);
                value_set(&st, i, defaults[i], SOURCE_DEFAULT, NULL, 0);
        }

        /* The command line is parsed first (for --config, --help, syntax
         * errors) into a separate state and applied last. */
        r = parse_command_line(&cli, argc, argv, ret_error);
        if (r < 0)
                return r;
        if (!reload && (cli.help || cli.version)) {
                if (cli.help)
                        print_help();
                else
                        printf("joyrided " JOYRIDE_VERSION "\n");
                fflush(stdout);
                return 1;
        }

        if (cli.config_option) {
                path = g_strdup(cli.config_option);
                origin = "--config";
        } else if (!isempty(e = env_get(envp, "JOYRIDE_CONFIG"))) {
                path = g_strdup(e);
                origin = "JOYRIDE_CONFIG";
        } else
                path = g_strdup(CONFIG_FILE_DEFAULT);
        if (!g_path_is_absolute(path)) {
                /* Reload happens later, maybe after a chdir: remember where the file really is. */
                char *abs = g_canonicalize_filename(path, NULL);
                g_free(path);
                path = abs;
        }

        if (cli.check && !reload)
                st.errors = g_ptr_array_new_with_free_func(g_free);

        g_autofree char *file_error = NULL;
        r = apply_file(&st, path, origin, st.errors ? &file_error : ret_error);
        if (r < 0 && !st.errors)
                return r;
        if (r < 0) {
                g_ptr_array_add(st.errors, TAKE_PTR(file_error));
                st.path = g_strdup(path);
        }
        check_layer(&st, &st, SOURCE_FILE);

        apply_environment(&st, envp);
        check_layer(&st, &st, SOURCE_ENV);
        check_layer(&st, &cli, SOURCE_CLI);

        for (size_t i = 0; i < _SETTING_MAX; i++)
                if (cli.values[i].set) {
                        Value *v = &st.values[i];
                        g_free(v->raw);
                        *v = cli.values[i];
                        cli.values[i].raw = NULL;
                }

        for (size_t i = 0; i < _SETTING_MAX; i++) {
                g_autofree char *error = NULL;

                r = setting_apply(&c, i, &st.values[i], st.path, &error);
                if (r < 0 && !st.errors) {
                        if (ret_error)
                                *ret_error = TAKE_PTR(error);
                        return r;
                }
                /* With --check-config every layer's value was checked above. */
        }
        {
                g_autofree char *error = NULL;

                r = check_key_file(&c, &error);
                if (r < 0 && !st.errors) {
                        if (ret_error)
                                *ret_error = TAKE_PTR(error);
                        return r;
                }
                if (r < 0)
                        g_ptr_array_add(st.errors, TAKE_PTR(error));
        }
        {
                g_autofree char *error = NULL;

                r = check_pairs(&st, &error);
                if (r < 0 && !st.errors) {
                        if (ret_error)
                                *ret_error = TAKE_PTR(error);
                        return r;
                }
                if (r < 0)
                        g_ptr_array_add(st.errors, TAKE_PTR(error));
        }
        if (st.errors)
                return check_report(&st, ret_error);

        if (st.path) {
                c.config_file = strdup(st.path);
                if (!c.config_file)
                        return -ENOMEM;
        }

        *ret = c;
        c = (Config) {};
        return 0;
}

int config_load(Config *c, int argc, char *argv[], char *const envp[], char **ret_error) {
        if (ret_error)
                *ret_error = NULL;
        return load(c, argc, argv, envp, false, ret_error);
}

int config_reload(Config *c, int argc, char *argv[], char *const envp[], char **ret_error) {
        Config n = {};
        int r;

        if (ret_error)
                *ret_error = NULL;
        /* Into a fresh Config, so that a bad edit keeps the running one. */
        r = load(&n, argc, argv, envp, true, ret_error);
        if (r < 0)
                return r;
        config_done(c);
        *c = n;
        return 0;
}

void config_done(Config *c) {
        if (!c)
                return;

        free(c->config_file);
        free(c->service_name);
        free(c->environment);
        free(c->hostip);
        free(c->hostip6);
        free(c->state_directory);
        free(c->dns_bind_address);
        g_strfreev(c->dns_domains);
        g_strfreev(c->forward);
        g_strfreev(c->forward_allow);
        free(c->resolv_conf);
        free(c->hosts_directory);
        free(c->docker_host);
        free(c->http_host);
        free(c->api_token);
        free(c->node_id);
        g_strfreev(c->join);
        g_strfreev(c->http_allowed_hosts);
        g_strfreev(c->trusted_nodes);
        free(c->cluster_key);
        free(c->cluster_key_file);
        free(c->cluster_bind_address);
        free(c->cluster_advertise_address);
        free(c->resolved_link);
        g_strfreev(c->etcd_endpoints);
        free(c->etcd_prefix);
        free(c->etcd_ca_file);
        free(c->etcd_cert_file);
        free(c->etcd_key_file);
        free(c->etcd_user);
        free(c->etcd_password_file);
        g_strfreev(c->resolved_domains);
        g_strfreev(c->resolved_dns);
        *c = (Config) {};
}
