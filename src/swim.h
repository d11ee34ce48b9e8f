/* SPDX-License-Identifier: MIT */
/* SWIM membership with Lifeguard's refinements, as a pure state machine:
 * time, randomness and received packets go in; packets to send and
 * membership events come out. It never touches a socket or a clock, so a
 * simulator can run a thousand nodes in one process (tests/test-swim.c).
 *
 * Modelled on the SWIM paper and HashiCorp memberlist's choices: a
 * shuffled round-robin probe, k indirect probes through others, suspicion with
 * incarnation numbers and refutation, a suspicion timeout that starts long and
 * shrinks with independent confirmations, a local health multiplier
 * ("awareness") that slows a node's own probing while it is unhealthy, and
 * piggybacked dissemination with a retransmit limit of
 * retransmit_mult * ceil(log10(n + 1)). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define SWIM_ID_MAX 64
#define SWIM_PACKET_MAX 1400 /* stays under a 1500-byte MTU with IP/UDP and AEAD overhead */
#define SWIM_USER_MAX 1024   /* largest user broadcast */

typedef struct SwimAddr {
        uint8_t family; /* 4 or 6 */
        uint8_t ip[16];
        uint16_t port;
} SwimAddr;

typedef enum SwimState {
        SWIM_ALIVE,
        SWIM_SUSPECT,
        SWIM_DEAD,
        SWIM_LEFT,
} SwimState;

typedef struct SwimConfig {
        uint64_t probe_interval_usec;     /* 1 s */
        uint64_t probe_timeout_usec;      /* 500 ms */
        unsigned indirect_checks;         /* 3 */
        unsigned suspicion_mult;          /* 4 */
        unsigned suspicion_max_mult;      /* 6: max timeout = this * min timeout */
        unsigned retransmit_mult;         /* 4 */
        unsigned awareness_max;           /* 8 */
        uint64_t gossip_interval_usec;    /* 200 ms */
        unsigned gossip_nodes;            /* 3 */
        uint64_t dead_reclaim_usec;       /* forget dead members after this (30 s) */
        uint64_t push_pull_interval_usec; /* full state exchange with one member (30 s, scaled up past 32 nodes) */
        unsigned members_max;             /* others we keep at most (1,000); 0: no limit */
        bool relay_user;                  /* pass user broadcasts on by itself (true); false: the
                                           * caller checks each and passes it on with swim_relay() */
} SwimConfig;

void swim_config_lan(SwimConfig *ret); /* memberlist's LAN profile */

/* A node id: 1-64 of A-Z a-z 0-9 '.' '_' '-'. The one rule for node ids, in
 * the configuration, on the wire and as the origin of replicated records. */
bool swim_id_is_valid(const char *id);

typedef struct SwimMember {
        char id[SWIM_ID_MAX + 1];
        SwimAddr addr;
        SwimState state;
        uint32_t incarnation;
        uint64_t state_change_usec; /* caller's clock */
} SwimMember;

typedef enum SwimEventType {
        SWIM_EVENT_JOIN, /* a member became known, or alive again after dead/left */
        SWIM_EVENT_SUSPECT,
        SWIM_EVENT_ALIVE, /* a suspect was refuted */
        SWIM_EVENT_DEAD,
        SWIM_EVENT_LEFT,
        SWIM_EVENT_USER, /* a user broadcast arrived (first time only) */
} SwimEventType;

typedef struct SwimEvent {
        SwimEventType type;
        SwimMember member; /* for membership events; for USER: the origin's id */
        /* USER only: who passed it to us (the origin itself, or a relay), from
         * which address, and the broadcast's key. */
        char sender[SWIM_ID_MAX + 1];
        SwimAddr from;
        char key[256];
        uint8_t data[SWIM_USER_MAX];
        size_t size;
} SwimEvent;

typedef struct Swim Swim;

int swim_new(Swim **ret, const SwimConfig *cfg, const char *self_id, const SwimAddr *self_addr, uint64_t seed,
             uint64_t now_usec);
Swim *swim_free(Swim *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Swim *, swim_free);

/* Contacts a seed: sends our ALIVE and asks for its member list. */
int swim_join(Swim *s, const SwimAddr *addr, uint64_t now_usec);
/* Graceful leave: queues our LEFT for the others; call swim_tick/pop a few times after. */
void swim_leave(Swim *s, uint64_t now_usec);

/* Feeds a packet received from `from`. Returns 0, or -EBADMSG for a
 * malformed one (nothing of it is applied then). */
int swim_receive(Swim *s, const SwimAddr *from, const uint8_t *packet, size_t size, uint64_t now_usec);
/* Runs due timers: probes, indirect probes, suspicion timeouts, gossip. */
void swim_tick(Swim *s, uint64_t now_usec);
/* When swim_tick must next run. */
uint64_t swim_next_deadline(const Swim *s);

/* Outgoing packets, oldest first. Returns the size, 0 when none is queued. */
size_t swim_pop_packet(Swim *s, SwimAddr *ret_to, uint8_t buf[static SWIM_PACKET_MAX]);
/* Membership and user events, oldest first. Returns false when none. */
bool swim_pop_event(Swim *s, SwimEvent *ret);

/* Queues a user payload to be disseminated to every member (piggybacked,
 * retransmit-limited). key deduplicates: a newer broadcast with the same key
 * replaces an older one that has not gone out fully yet. */
int swim_broadcast(Swim *s, const char *key, const uint8_t *data, size_t size);
/* Passes a received user broadcast on (with relay_user false, once the
 * caller has accepted it). */
void swim_relay(Swim *s, const SwimEvent *ev);

/* Push-pull state (for the TCP anti-entropy exchange): encode our view, merge
 * a peer's. The encoded form is self-delimiting; size may exceed a packet. */
size_t swim_encode_state(const Swim *s, uint8_t *buf, size_t size);
int swim_merge_state(Swim *s, const uint8_t *buf, size_t size, uint64_t now_usec);

size_t swim_members(const Swim *s, const SwimMember **ret); /* including ourselves, first */
/* One member (not ourselves), or NULL. Valid until the next call into the core. */
const SwimMember *swim_member(const Swim *s, const char *id);
/* Forgets a member that is dead or left (an operator's "members forget").
 * Returns 0, -ENOENT if unknown, -EBUSY if it is alive or suspect. */
int swim_forget(Swim *s, const char *id);
unsigned swim_alive_count(const Swim *s);
unsigned swim_awareness(const Swim *s);
const char *swim_state_to_string(SwimState st);
bool swim_addr_equal(const SwimAddr *a, const SwimAddr *b);

typedef struct SwimCounters {
        uint64_t packets_sent, packets_received, packets_rejected;
        uint64_t probes, indirect_probes, refutations;
        uint64_t members_dropped;   /* new members not taken: members_max reached */
        uint64_t members_forgotten; /* dead or gone members forgotten (reclaimed, evicted, by the operator) */
} SwimCounters;
const SwimCounters *swim_get_counters(const Swim *s);
