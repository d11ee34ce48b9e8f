/* SPDX-License-Identifier: MIT */
/* Configuration: built-in defaults, then the config file (GKeyFile ini), then
 * environment variables (the original service's names), then the command
 * line; then validation that names the key, the value and what is expected. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define CONFIG_FILE_DEFAULT "/etc/joyride/joyride.conf"

typedef enum BusKind {
        BUS_NONE,
        BUS_SYSTEM,
        BUS_USER,
} BusKind;

typedef struct Config {
        char *config_file; /* which file was read (NULL if none existed at the default path) */

        /* [Service] */
        char *service_name;    /* SERVICE_NAME, default "joyride-dns" */
        char *environment;     /* ENVIRONMENT, default "production" */
        char *hostip;          /* HOSTIP: IPv4 for Docker records; NULL = auto-detect */
        char *hostip6;         /* HOSTIP6 */
        char *state_directory; /* STATE_DIRECTORY (systemd's), JOYRIDE_STATE_DIRECTORY; default /var/lib/joyride */
        int log_level;         /* JOYRIDE_LOG_LEVEL / --log-level; default LOG_INFO */

        /* [DNS] */
        uint16_t dns_port;              /* DNS_PORT, default 5353 */
        char *dns_bind_address;         /* DNS_BIND_ADDRESS; NULL = all addresses, IPv4 and IPv6 */
        char **dns_domains;             /* DNS_DOMAINS, comma-separated; NULL/empty = answer for every name */
        uint32_t default_ttl;           /* DNS_TTL, TTL of records that do not set one; default 30 */
        uint32_t negative_ttl;          /* DNS_NEGATIVE_TTL, default 5 */
        uint32_t tcp_idle_timeout_msec; /* default 10000 */
        uint32_t tcp_max_connections;   /* default 256 */
        char **forward;                 /* DNS_FORWARD: upstream servers for names that are not ours, or the
                                   * one word "resolv.conf"; NULL = no forwarding */
        char **forward_allow;           /* DNS_FORWARD_ALLOW: ADDR[/LEN] prefixes; NULL = loopback and the
                                   * subnets of the host's interfaces */
        uint32_t forward_cache_size;    /* DNS_FORWARD_CACHE_SIZE, entries, default 10000 */
        uint32_t forward_max_ttl;       /* DNS_FORWARD_MAX_TTL, default 86400 */
        char *resolv_conf;              /* JOYRIDE_RESOLV_CONF, default /etc/resolv.conf */
        uint32_t dns_threads;           /* DNS_THREADS, 1-64; 0 (unset) = online CPUs, at most 16 */

        /* [Hosts] */
        char *hosts_directory;               /* HOSTS_DIRECTORY; NULL = no hosts files */
        uint32_t hosts_max_records_per_file; /* MaxRecordsPerFile=, default 500000 */
        uint32_t hosts_max_records;          /* MaxRecords=, over all files, default 1000000 */

        /* [Docker] */
        bool docker_enabled; /* DOCKER_ENABLED, default true */
        char *docker_host;   /* DOCKER_HOST, default unix:///var/run/docker.sock */

        /* [HTTP] */
        bool http_enabled;                  /* HTTP_ENABLED, default true */
        char *http_host;                    /* FLASK_HOST, default 0.0.0.0 */
        uint16_t http_port;                 /* FLASK_PORT, default 5000 */
        char *api_token;                    /* JOYRIDE_API_TOKEN */
        uint32_t http_max_connections;      /* MaxConnections=, default 128 */
        uint32_t http_request_timeout_msec; /* RequestTimeoutSec=, default 10 s */
        char **http_allowed_hosts;          /* AllowedHosts=, JOYRIDE_HTTP_ALLOWED_HOSTS; "*": any */

        /* [DBus] */
        BusKind bus; /* JOYRIDE_BUS=system|user|none, default system */

        /* [Cluster] */
        bool cluster_enabled;            /* ENABLE_DNS_SYNC, default false */
        char *node_id;                   /* NODE_ID, default the host name */
        uint16_t discovery_port;         /* DISCOVERY_PORT, default 8889 */
        uint16_t swim_port;              /* SWIM_PORT, default 8890 */
        char **join;                     /* JOIN, comma-separated host:port */
        char *cluster_key;               /* JOYRIDE_CLUSTER_KEY */
        char *cluster_key_file;          /* JOYRIDE_CLUSTER_KEY_FILE */
        char *cluster_bind_address;      /* JOYRIDE_CLUSTER_BIND_ADDRESS; NULL = all IPv4 */
        char *cluster_advertise_address; /* ADVERTISE_ADDRESS; NULL = the bind address, else detected */
        bool cluster_discovery;          /* JOYRIDE_CLUSTER_DISCOVERY, default true */
        /* Protocol timings (docs/cluster-protocol.md); the environment
         * variables (JOYRIDE_SWIM_*_MS, JOYRIDE_CLUSTER_*_MS) take milliseconds. */
        uint32_t probe_interval_msec;     /* ProbeIntervalSec, default 1 s */
        uint32_t probe_timeout_msec;      /* ProbeTimeoutSec, default 0.5 s */
        uint32_t gossip_interval_msec;    /* GossipIntervalSec; 0 = 200 ms, or a fifth of a shorter probe interval */
        uint32_t indirect_checks;         /* IndirectChecks, default 3 */
        uint32_t suspicion_mult;          /* SuspicionMultiplier, default 4 */
        uint32_t retransmit_mult;         /* RetransmitMultiplier, default 6 (memberlist: 4) */
        uint32_t push_pull_interval_msec; /* PushPullIntervalSec, default 30 s */
        uint32_t discovery_interval_msec; /* DiscoveryIntervalSec, default 10 s */
        uint32_t dead_grace_msec;         /* DeadGraceSec, default 5 s */
        uint32_t max_members;             /* MaxMembers, default 1,000 */
        uint32_t max_records_per_node;    /* MaxRecordsPerNode, default 100,000 */
        char **trusted_nodes;             /* TrustedNodes: "node-id:base64-key"; NULL = pin keys on first contact */

        /* [Resolved]: register with systemd-resolved (see resolved.h) */
        char *resolved_link;     /* JOYRIDE_RESOLVED_LINK: interface name; NULL = do not register */
        char **resolved_domains; /* JOYRIDE_RESOLVED_DOMAINS: "~name" routing-only, "name" also searched;
                                   * NULL = the DNS domains, routing-only */
        char **resolved_dns;     /* JOYRIDE_RESOLVED_DNS: ADDR, ADDR:PORT or [ADDR6]:PORT;
                                   * NULL = 127.0.0.1 and the DNS port */

        /* [Etcd]: share records through etcd (see etcd.h) */
        char **etcd_endpoints;    /* ETCD_ENDPOINTS: http(s)://HOST:PORT, comma-separated; NULL = off */
        char *etcd_prefix;        /* JOYRIDE_ETCD_PREFIX, default /skydns, no trailing slash */
        uint32_t etcd_lease_ttl;  /* JOYRIDE_ETCD_LEASE_TTL, seconds, default 10 */
        char *etcd_ca_file;       /* JOYRIDE_ETCD_CA_FILE: PEM; NULL = the system's CAs */
        char *etcd_cert_file;     /* JOYRIDE_ETCD_CERT_FILE: client certificate (PEM) */
        char *etcd_key_file;      /* JOYRIDE_ETCD_KEY_FILE: its private key (PEM) */
        char *etcd_user;          /* JOYRIDE_ETCD_USER */
        char *etcd_password_file; /* JOYRIDE_ETCD_PASSWORD_FILE: the user's password (first line) */
} Config;

/* Fills *c from defaults, file, environment (envp, NULL-terminated
 * "KEY=value" strings) and command line. On success returns 0, or 1 when the
 * command line asked for --help or --version (already printed to stdout) and
 * the caller should exit 0. On failure returns -EINVAL and *ret_error is a
 * message for a person, e.g. "DNS_PORT=abc: expected a port number (1-65535)". */
int config_load(Config *c, int argc, char *argv[], char *const envp[], char **ret_error);

/* Re-reads the config file c->config_file (for SIGHUP), keeping environment
 * and command-line overrides: pass the same argc/argv/envp as at start. */
int config_reload(Config *c, int argc, char *argv[], char *const envp[], char **ret_error);

void config_done(Config *c);
