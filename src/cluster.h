/* SPDX-License-Identifier: MIT */
/* The cluster: the SWIM core (swim.c) and the replicated records
 * (cluster-records.c) on sd-event sockets and timers, with broadcast
 * discovery and an AEAD keyring. See docs/cluster-protocol.md.
 *
 * Transports, all on the same port number (SWIM_PORT, default 8890) except
 * discovery (DISCOVERY_PORT, default 8889):
 *   UDP   SWIM packets (probes, acks, membership and record gossip)
 *   TCP   push-pull: both sides send their member list and their own records
 *   UDP   discovery announcements, broadcast on every interface that has a
 *         broadcast address (never loopback), or in an IPv6 cluster sent to
 *         the link-local multicast group ff02::6a72 on every interface that
 *         can multicast
 * With a key every message is sealed with XChaCha20-Poly1305; without one the
 * cluster is open (a warning is logged).
 *
 * Protocol timings come in ClusterOptions ([Cluster] ProbeIntervalSec= and
 * the others in joyride.conf(5)); 0 means the built-in default. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "store.h"
#include "swim.h"

#define CLUSTER_DEAD_GRACE_DEFAULT_USEC (5 * USEC_PER_SEC)
#define CLUSTER_PUSH_PULL_INTERVAL_DEFAULT_USEC (30 * USEC_PER_SEC)
#define CLUSTER_DISCOVERY_INTERVAL_DEFAULT_USEC (10 * USEC_PER_SEC)
#define CLUSTER_RETRANSMIT_MULT_DEFAULT 6
#define CLUSTER_KEY_ENV "JOYRIDE_CLUSTER_KEY"

typedef struct Cluster Cluster;

typedef struct ClusterOptions {
        const char *node_id;      /* required: 1-64 of [A-Za-z0-9._-] */
        const char *bind_address; /* NULL: all IPv4 addresses; an IPv6 literal (:: for all) makes an IPv6 cluster */
        const char *advertise_address; /* NULL: a non-wildcard bind_address, else the first non-loopback address
                                        * (IPv6 global or unique-local first in an IPv6 cluster) */
        const char *cluster_name;      /* NULL: "joyride"; part of the AEAD associated data */
        uint16_t swim_port, discovery_port;
        char **join;              /* "host:port" seeds ("[v6]:port" for IPv6); NULL: none. Names are
                                   * resolved off the loop at every attempt. */
        const char *key;          /* base64 32-byte keys, comma-separated, primary first; NULL: key_file */
        const char *key_file;     /* same format (commas or newlines); NULL with key NULL: open cluster */
        bool broadcast_discovery; /* announcements (IPv4 broadcast, IPv6 multicast); forced off when bound
                                   * to a loopback address */

        /* Protocol timings; 0: the default (swim_config_lan() or CLUSTER_*_DEFAULT*). */
        uint64_t probe_interval_usec;
        uint64_t probe_timeout_usec;   /* at most half the probe interval */
        uint64_t gossip_interval_usec; /* 0: 200 ms, or a fifth of a shorter probe interval */
        int indirect_checks;           /* -1: the default; 0: no indirect probes */
        unsigned suspicion_mult;
        unsigned retransmit_mult;
        uint64_t push_pull_interval_usec;
        uint64_t discovery_interval_usec;
        uint64_t dead_grace_usec;

        /* Limits against hostile or broken peers; 0: the default. */
        unsigned max_members;          /* other members kept at most (1,000) */
        unsigned max_records_per_node; /* records taken from one node at most (100,000) */
        const char *state_directory;   /* our signing key and the others' pinned keys; NULL: in memory */
        char **trusted_nodes;          /* "id:base64-key": only these nodes are believed; NULL: pin on first contact */
} ClusterOptions;

typedef struct ClusterMember {
        char id[SWIM_ID_MAX + 1];
        char address[INET6_ADDRSTRLEN + 8]; /* "10.0.0.2:8890", "[fe80::1]:8890" */
        const char *state;                  /* "alive", "suspect", "dead", "left" (static string) */
        uint32_t incarnation;
        uint64_t state_change_usec; /* CLOCK_REALTIME */
        size_t records;             /* records of that node this node holds (served or not) */
        bool self;                  /* the first entry */
        char public_key[48];        /* base64 of its signing key, pinned or configured; "" if none */
} ClusterMember;

typedef struct ClusterCounters {
        uint64_t packets_sent, packets_received;
        uint64_t packets_rejected;   /* rejected_auth + rejected_malformed */
        uint64_t rejected_auth;      /* failed decryption / wrong key / open vs keyed */
        uint64_t rejected_malformed; /* authentic but not parseable */
        uint64_t push_pulls, push_pull_failures;
        uint64_t announcements_sent, announcements_received;
        uint64_t updates_sent, updates_applied;
        /* Beyond a limit: dropped, counted, and warned about (at most every 10 s). */
        uint64_t dropped_members; /* new members beyond max_members */
        uint64_t dropped_origins; /* nodes whose records found no room */
        uint64_t dropped_records; /* records beyond max_records_per_node */
        uint64_t dropped_frames;  /* push-pull frames too large, or read before authentication */
        /* Record updates and snapshots refused, by why (at most every 10 s a warning). */
        uint64_t refused_signature;  /* no key known for the origin, a bad signature, or a changed key */
        uint64_t refused_unsigned;   /* unsigned (an older node's) where a signature is needed */
        uint64_t refused_relay;      /* relayed, for an origin not heard from yet or too far ahead */
        uint64_t refused_not_member; /* for an origin, or from a sender, that is no live member there */
        uint64_t refutations;        /* versions of our own we never issued, refuted */
        unsigned members_alive, members_suspect, members_dead, members_left; /* including self */
} ClusterCounters;

/* Binds the sockets, starts discovery and contacts the seeds. Logs its errors. */
int cluster_new(Cluster **ret, sd_event *e, Store *store, const ClusterOptions *o);
/* Leaves gracefully (sends LEFT and gossips it for a moment, blocking for at
 * most ~0.5 s), then closes everything and removes every "peer:" record. */
Cluster *cluster_free(Cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Cluster *, cluster_free);

/* Starts a push-pull with every alive member. Returns how many were started. */
int cluster_sync_now(Cluster *c);
/* A snapshot of the members, self first; *ret is one allocation, free() it. */
size_t cluster_get_members(Cluster *c, ClusterMember **ret);
const ClusterCounters *cluster_get_counters(const Cluster *c);
/* Called after each membership change of another node. */
typedef void (*ClusterMemberCallback)(Cluster *c, const ClusterMember *m, void *userdata);
void cluster_set_member_callback(Cluster *c, ClusterMemberCallback cb, void *userdata);
const char *cluster_node_id(const Cluster *c);
/* Forgets what we hold about a node: its pinned key (so that the next key it
 * shows is pinned), its records, and, if it is dead or left, the member.
 * Returns 0, -ENOENT if nothing is known of it, -EPERM if its key is
 * configured (TrustedNodes=), -EINVAL for our own id or an invalid one. */
int cluster_forget_member(Cluster *c, const char *id);

/* A discovery announcement (after unsealing), exposed for the fuzzer: the
 * announcing node's id, and where to reach it (the address it carries, else
 * `from` with the announced port). Returns 0 or -EBADMSG. */
int cluster_parse_announcement(const uint8_t *p, size_t n, const SwimAddr *from, char ret_id[static SWIM_ID_MAX + 1],
                               SwimAddr *ret_to);

/* Keyring parsing, exposed for tests: "k1,k2,..." of base64 32-byte keys.
 * Returns the number of keys, or -EINVAL (ret_error says which one and why). */
int cluster_parse_keys(const char *s, uint8_t (**ret_keys)[32], const char **ret_error);
