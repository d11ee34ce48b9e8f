/* SPDX-License-Identifier: MIT */
/* The cluster on sd-event: sockets, timers and crypto around the pure SWIM
 * core and the pure replicated-record tables. Everything here only moves
 * bytes, seals and opens them, and turns SWIM events into record withdrawals;
 * the decisions live in swim.c and cluster-records.c.
 *
 * Sealed message (UDP datagram, or TCP frame payload):
 *   0x00 plaintext                            (open cluster)
 *   0x01 nonce[24] ciphertext+tag[16]         (XChaCha20-Poly1305-IETF)
 * associated data: cluster name, 0x00, "v1", channel ('S' SWIM, 'P' push-pull,
 * 'D' discovery), so that a message cannot be replayed on another channel or
 * accepted by another cluster that shares the key.
 *
 * Push-pull frames on TCP: length:u32 sealed; what they carry is in
 * cluster-frame.h (a signed hello, then the member list and the signed
 * record snapshot). Until a peer's hello has been checked, a frame may hold
 * at most CLUSTER_HELLO_MAX bytes; after it, CLUSTER_FRAME_MAX, read into a
 * buffer that grows as the bytes arrive, within a budget for all connections.
 * Discovery announcement, plaintext: "JA" version:u8 id:u8-length port:u16
 * [addr: family:u8 ip:16], the address only in IPv6 announcements (their
 * source is a link-local address, which a SWIM address cannot carry).
 *
 * Who may speak for whom: every record update and snapshot is signed by its
 * origin (cluster-keys.h, cluster-records.h); a node's key is pinned on first
 * contact, from a hello that node sends from the address it has as a member.
 * Without a cluster key, gossip is taken only from live members at the address
 * it came from. */

#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <gio/gio.h>
#include <glib.h>

#include "cluster-frame.h"
#include "cluster-keys.h"
#include "cluster-records.h"
#include "catalog.h"
#include "cluster.h"
#include "log.h"
#include "time-util.h"
#include "wire.h"
#include "worker.h"

#define SEAL_OPEN 0x00
#define SEAL_XCHACHA 0x01
#define KEY_SIZE crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_SIZE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_SIZE crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_OVERHEAD (1 + NONCE_SIZE + TAG_SIZE)
#define UDP_MAX (SWIM_PACKET_MAX + SEAL_OVERHEAD)
#define FRAME_MAX CLUSTER_FRAME_MAX
#define BUFFER_BUDGET (4 * CLUSTER_FRAME_MAX) /* push-pull input held for all connections together */
#define MERGE_STEP 64                         /* snapshot entries applied between clock checks */
#define MERGE_SLICE_USEC 500                  /* then the loop gets its turn */
#define SIGN_BATCH_MAX 256u                   /* local updates signed per job */
#define SIGN_JOBS_MAX 4u /* batches on the signer at once; past that, changes wait (and coalesce) in the table */
#define READ_SLICE (256u * 1024) /* push-pull bytes read per wake-up */
#define KEY_WARN_INTERVAL_USEC (60 * USEC_PER_SEC)
#define RESYNC_INTERVAL_USEC (10 * USEC_PER_SEC)
#define PINS_SAVE_DELAY_USEC USEC_PER_SEC
#define CONN_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define CONNS_MAX 64
#define JOIN_RETRY_USEC (2 * USEC_PER_SEC)
#define SEED_ADDRESSES_MAX 16 /* addresses of one seed name joined */
#define REJECT_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)
#define PROTOCOL_VERSION 1

enum {
        CHANNEL_SWIM = 'S',
        CHANNEL_PUSH_PULL = 'P',
        CHANNEL_DISCOVERY = 'D',
};

/* A JOIN= entry: a literal address, or a name resolved off the loop at
 * each attempt (so a seed that moves is followed). */
typedef struct Seed {
        char *spec; /* as configured, for messages */
        char *host; /* NULL when literal */
        uint16_t port;
        SwimAddr literal;
        bool resolving;    /* a look-up is in flight */
        unsigned failures; /* look-ups failed in a row */
} Seed;

typedef struct Conn {
        Cluster *cluster;
        int fd;
        sd_event_source *io, *timer;
        bool outgoing, connected;
        uint8_t version;    /* push-pull protocol; 0: not known yet (incoming) */
        bool authenticated; /* the peer's hello checked out: large frames may follow */
        char peer[INET6_ADDRSTRLEN + 8];
        SwimAddr peer_addr;
        char peer_id[SWIM_ID_MAX + 1]; /* from its hello */
        char sync_id[SWIM_ID_MAX + 1]; /* outgoing: the first exchange with this new member, else "" */
        uint8_t peer_key[CLUSTER_PUBLIC_KEY_SIZE];
        unsigned refs; /* c->conns while open, and each job on the worker */
        bool closed;
        bool busy;              /* a frame of it is on the worker */
        bool last_frame_queued; /* our push or reply is in out */
        GByteArray *out;        /* frames to send */
        size_t out_pos;
        uint8_t hdr[4];
        size_t hdr_pos;
        uint8_t *in; /* the frame being read: in_pos of in_len bytes, in_cap allocated */
        size_t in_len, in_cap, in_pos;
} Conn;

struct Cluster {
        sd_event *event;
        Store *store;
        Swim *swim;
        ClusterRecords *records;
        char *node_id;
        char *cluster_name;
        SwimConfig swim_config;

        uint8_t (*keys)[KEY_SIZE]; /* keyring: [0] seals, all open */
        size_t n_keys;
        ClusterKeys *node_keys; /* our signing key, and the others' keys */
        Worker *worker;         /* decodes and builds large push-pull frames off the loop */
        Worker *signer;         /* encodes and signs local record updates off the loop */
        unsigned n_signing;     /* batches of updates on the signer, not published yet */

        int family; /* AF_INET or AF_INET6 */
        SwimAddr self_addr;
        uint16_t swim_port, discovery_port;
        struct in_addr bind4;  /* for choosing broadcast interfaces; INADDR_ANY: all */
        struct in6_addr bind6; /* likewise for multicast (IPv6 clusters); in6addr_any: all */
        Seed *seeds;
        size_t n_seeds;
        GCancellable *resolving; /* seed look-ups in flight; cancelled by cluster_free() */
        bool discovery;          /* broadcast (IPv4) or multicast (IPv6) announcements */
        uint64_t push_pull_interval_usec, discovery_interval_usec, dead_grace_usec;
        unsigned discovery_round;

        int udp_fd, tcp_fd, disc_fd;
        sd_event_source *udp_source, *tcp_source, *disc_source;
        sd_event_source *swim_timer, *records_timer, *discovery_timer, *join_timer, *push_pull_timer;
        sd_event_source *flush_source;
        sd_event_source *merge_source; /* applies queued snapshots in batches, when idle */
        sd_event_source *pins_timer;   /* saves learned keys, coalesced */
        sd_event_source *sync_timer;   /* retries of failed first exchanges */
        GHashTable *sync_retry;        /* member id -> SyncRetry: first exchanges to try again */

        GHashTable *conns;       /* Conn* set */
        size_t buffered;         /* bytes allocated for push-pull input, all connections */
        GHashTable *v1_peers;    /* ids of nodes that spoke protocol 1 to us */
        GHashTable *key_warned;  /* id -> when we last warned about its key (monotonic usec) */
        GHashTable *key_refused; /* ids whose node showed a new key from its own address: records withdrawn */
        uint64_t last_resync;    /* our snapshot to everyone after a refutation, rate-limited */
        uint64_t last_refuse_log;
        ClusterCounters refuse_logged;
        GHashTable *joined; /* id -> last swim_join from discovery (monotonic usec), as gint64 in a pointer-size box */
        ClusterCounters counters;
        uint64_t last_reject_log;
        uint64_t last_limit_log[4];   /* by kind: members, records, origins, frames */
        ClusterCounters limit_logged; /* the drop counters as last logged */
        unsigned max_members, max_records;
        uint64_t members_forgotten; /* swim's count when the member counts were last taken */
        uint64_t rng;

        ClusterMemberCallback member_cb;
        void *member_userdata;
};

/* --- small helpers ------------------------------------------------------------- */

/* interval ± pct%, from libsodium's generator (timers only, not crypto). */
static uint64_t jitter(uint64_t usec, unsigned pct) {
        uint64_t span = usec * pct / 100;
        if (span == 0)
                return usec;
        return usec - span + (uint64_t) randombytes_uniform((uint32_t) MIN(2 * span + 1, UINT32_MAX));
}

/* sa: filled by recvfrom()/accept() or getaddrinfo(); callers zero their
 * sockaddr_storage first, so a family is always there to read. */
static void addr_to_swim(const struct sockaddr *sa, SwimAddr *ret) {
        *ret = (SwimAddr) {};
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                ret->family = 4;
                memcpy(ret->ip, &in->sin_addr, 4);
                ret->port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                        ret->family = 4;
                        memcpy(ret->ip, in6->sin6_addr.s6_addr + 12, 4);
                } else {
                        ret->family = 6;
                        memcpy(ret->ip, &in6->sin6_addr, 16);
                }
                ret->port = ntohs(in6->sin6_port);
        }
}

/* SwimAddr -> sockaddr for a socket of `family`. Returns the length, 0 if unusable. */
static socklen_t swim_to_addr(int family, const SwimAddr *a, struct sockaddr_storage *ret) {
        memset(ret, 0, sizeof *ret);
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) ret;
                if (a->family != 4)
                        return 0;
                in->sin_family = AF_INET;
                in->sin_port = htons(a->port);
                memcpy(&in->sin_addr, a->ip, 4);
                return sizeof *in;
        }
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        if (a->family == 4) {
                in6->sin6_addr.s6_addr[10] = 0xff;
                in6->sin6_addr.s6_addr[11] = 0xff;
                memcpy(in6->sin6_addr.s6_addr + 12, a->ip, 4);
        } else
                memcpy(&in6->sin6_addr, a->ip, 16);
        return sizeof *in6;
}

static void swim_addr_format(const SwimAddr *a, char *buf, size_t size) {
        char ip[INET6_ADDRSTRLEN] = "?";

        if (a->family == 4) {
                (void) inet_ntop(AF_INET, a->ip, ip, sizeof ip);
                snprintf(buf, size, "%s:%u", ip, a->port);
        } else {
                (void) inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
                snprintf(buf, size, "[%s]:%u", ip, a->port);
        }
}

/* --- keyring and sealing ------------------------------------------------------- */

int cluster_parse_keys(const char *s, uint8_t (**ret_keys)[32], const char **ret_error) {
        g_auto(GStrv) parts = NULL;
        g_autofree uint8_t(*keys)[KEY_SIZE] = NULL;
        size_t n = 0;

        if (sodium_init() < 0)
                return -EIO;
        parts = g_strsplit_set(s, ",\n\r\t ", -1);
        keys = g_malloc0(KEY_SIZE * (g_strv_length(parts) + 1));
        for (char **p = parts; *p; p++) {
                size_t len = 0;
                if (!**p)
                        continue;
                if (sodium_base642bin(keys[n], KEY_SIZE, *p, strlen(*p), NULL, &len, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) < 0 ||
                    len != KEY_SIZE) {
                        sodium_memzero(keys, sizeof keys[0] * (g_strv_length(parts) + 1));
                        if (ret_error)
                                *ret_error = n == 0 ? "the first key is not base64 of 32 bytes"
                                                    : "a further key is not base64 of 32 bytes";
                        return -EINVAL;
                }
                n++;
        }
        if (n == 0) {
                if (ret_error)
                        *ret_error = "no key given";
                return -EINVAL;
        }
        *ret_keys = TAKE_PTR(keys);
        return (int) n;
}

static size_t make_ad(const Cluster *c, uint8_t channel, uint8_t *ad, size_t size) {
        size_t n = strlen(c->cluster_name);
        n = MIN(n, size - 4);
        memcpy(ad, c->cluster_name, n);
        ad[n] = 0;
        ad[n + 1] = 'v';
        ad[n + 2] = '0' + PROTOCOL_VERSION;
        ad[n + 3] = channel;
        return n + 4;
}

/* Seals plain into out (which has room for n + SEAL_OVERHEAD). Returns the size. */
static size_t seal(const Cluster *c, uint8_t channel, const uint8_t *plain, size_t n, uint8_t *out) {
        uint8_t ad[300];
        size_t adlen;
        unsigned long long clen = 0;

        if (c->n_keys == 0) {
                out[0] = SEAL_OPEN;
                memcpy(out + 1, plain, n);
                return n + 1;
        }
        adlen = make_ad(c, channel, ad, sizeof ad);
        out[0] = SEAL_XCHACHA;
        randombytes_buf(out + 1, NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NONCE_SIZE, &clen, plain, n, ad, adlen, NULL, out + 1,
                                                   c->keys[0]);
        return 1 + NONCE_SIZE + (size_t) clen;
}

/* Opens a sealed message into out (room for n bytes). Returns the plaintext
 * size, or -EACCES when it is not authentic for any key of the ring (or
 * open/sealed does not match how we run), -EBADMSG when too short. */
static ssize_t unseal(const Cluster *c, uint8_t channel, const uint8_t *in, size_t n, uint8_t *out) {
        uint8_t ad[300];
        size_t adlen;
        unsigned long long plen = 0;

        if (n < 1)
                return -EBADMSG;
        if (c->n_keys == 0) {
                if (in[0] != SEAL_OPEN)
                        return -EACCES;
                memcpy(out, in + 1, n - 1);
                return (ssize_t) n - 1;
        }
        if (in[0] != SEAL_XCHACHA)
                return -EACCES;
        if (n < SEAL_OVERHEAD)
                return -EBADMSG;
        adlen = make_ad(c, channel, ad, sizeof ad);
        for (size_t i = 0; i < c->n_keys; i++)
                if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, in + 1 + NONCE_SIZE,
                                                               n - 1 - NONCE_SIZE, ad, adlen, in + 1, c->keys[i]) == 0)
                        return (ssize_t) plen;
        return -EACCES;
}

static void count_reject(Cluster *c, int error, const char *what, const char *from) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        c->counters.packets_rejected++;
        if (error == -EACCES)
                c->counters.rejected_auth++;
        else
                c->counters.rejected_malformed++;
        /* Logged, but not once per packet: a misconfigured node sends many. */
        if (c->last_reject_log == 0 || now >= c->last_reject_log + REJECT_LOG_INTERVAL_USEC) {
                c->last_reject_log = now;
                log_warning("Rejected cluster %s from %s: %s (rejected so far: %" PRIu64 " authentication, %" PRIu64
                            " malformed).",
                            what, from,
                            error == -EACCES     ? "authentication failed (wrong or missing cluster key?)"
                            : error == -EMSGSIZE ? "too large (more than 64 KiB before the peer's hello, or 16 MiB)"
                                                 : "malformed",
                            c->counters.rejected_auth, c->counters.rejected_malformed);
        }
}

/* --- SWIM plumbing ------------------------------------------------------------- */

static void cluster_process(Cluster *c);
static int conn_start(Cluster *c, const SwimAddr *to, const char *id);
static void sync_start(Cluster *c, const SwimAddr *to, const char *id);

static void send_swim_packets(Cluster *c) {
        uint8_t buf[SWIM_PACKET_MAX], sealed[UDP_MAX];
        SwimAddr to;
        size_t n;

        while ((n = swim_pop_packet(c->swim, &to, buf)) > 0) {
                struct sockaddr_storage sa = {};
                socklen_t salen = swim_to_addr(c->family, &to, &sa);
                size_t m;

                if (salen == 0 || c->udp_fd < 0)
                        continue;
                m = seal(c, CHANNEL_SWIM, buf, n, sealed);
                if (sendto(c->udp_fd, sealed, m, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &sa, salen) < 0) {
                        log_debug_errno(negative_errno(), "Failed to send SWIM packet, ignoring: %m");
                        continue;
                }
                c->counters.packets_sent++;
        }
}

static void member_to_public(Cluster *c, const SwimMember *m, bool self, uint64_t mono, uint64_t real,
                             ClusterMember *ret) {
        const uint8_t *key = self ? cluster_keys_public(c->node_keys) : cluster_keys_lookup(c->node_keys, m->id);

        *ret = (ClusterMember) {
                .state = swim_state_to_string(m->state),
                .incarnation = m->incarnation,
                .records = cluster_records_count(c->records, m->id),
                .self = self,
        };
        g_strlcpy(ret->id, m->id, sizeof ret->id);
        swim_addr_format(&m->addr, ret->address, sizeof ret->address);
        ret->state_change_usec = real - MIN(real, mono - MIN(mono, m->state_change_usec));
        if (key)
                sodium_bin2base64(ret->public_key, sizeof ret->public_key, key, CLUSTER_PUBLIC_KEY_SIZE,
                                  sodium_base64_VARIANT_ORIGINAL);
}

/* A live member whose address is addr (the port too, with port). */
static bool member_at(Cluster *c, const char *id, const SwimAddr *addr, bool port) {
        const SwimMember *m = swim_member(c->swim, id);

        return m && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT) && m->addr.family == addr->family &&
               memcmp(m->addr.ip, addr->ip, addr->family == 4 ? 4 : 16) == 0 && (!port || m->addr.port == addr->port);
}

static bool member_live(Cluster *c, const char *id) {
        const SwimMember *m = swim_member(c->swim, id);
        return m && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT);
}

/* SWIM says id is alive: its records are served again, unless its node
 * showed a signing key other than the pinned one (SWIM's alive messages are
 * not signed by the node, so they do not speak for it then). */
static void origin_alive(Cluster *c, const char *id, uint64_t now) {
        if (!g_hash_table_contains(c->key_refused, id))
                cluster_records_origin_state(c->records, id, CLUSTER_ORIGIN_ALIVE, now);
}

/* Counts a refused record update or snapshot by why, and warns (at most
 * every 10 s) with the counts since the last warning and the latest case. */
static void count_refused(Cluster *c, int error, const char *origin, const char *from) {
        ClusterCounters *k = &c->counters, *l = &c->refuse_logged;
        const char *why;
        uint64_t now;

        switch (error) {
        case -EKEYREJECTED:
                k->refused_signature++;
                why = "not signed with its key";
                break;
        case -EPERM:
                k->refused_unsigned++;
                why = "unsigned (an older joyrided?), where a signature is needed";
                break;
        case -ERANGE:
                k->refused_relay++;
                why = "relayed, and not in step with what its origin said itself";
                break;
        default:
                k->refused_not_member++;
                why = "its origin or sender is no live member at that address";
                break;
        }
        now = now_usec(CLOCK_MONOTONIC);
        if (c->last_refuse_log != 0 && now < c->last_refuse_log + REJECT_LOG_INTERVAL_USEC)
                return;
        c->last_refuse_log = now;
        log_warning("Refused cluster records of %s from %s: %s (refused since the last warning: %" PRIu64
                    " signature, %" PRIu64 " unsigned, %" PRIu64 " relayed out of step, %" PRIu64 " not a member).",
                    origin, from, why, k->refused_signature - l->refused_signature,
                    k->refused_unsigned - l->refused_unsigned, k->refused_relay - l->refused_relay,
                    k->refused_not_member - l->refused_not_member);
        *l = *k;
}

static void update_member_counts(Cluster *c) {
        const SwimMember *ms;
        size_t n = swim_members(c->swim, &ms);

        c->counters.members_alive = c->counters.members_suspect = 0;
        c->counters.members_dead = c->counters.members_left = 0;
        for (size_t i = 0; i < n; i++)
                switch (ms[i].state) {
                case SWIM_ALIVE:
                        c->counters.members_alive++;
                        break;
                case SWIM_SUSPECT:
                        c->counters.members_suspect++;
                        break;
                case SWIM_DEAD:
                        c->counters.members_dead++;
                        break;
                case SWIM_LEFT:
                        c->counters.members_left++;
                        break;
                }
}

/* An older node (protocol 1) spoke to us: we speak its protocol when we
 * start a push-pull with it, and refute unsigned claims in our name, which
 * it would believe. */
static void note_v1_peer(Cluster *c, const char *id) {
        g_hash_table_add(c->v1_peers, g_strdup(id));
        cluster_records_set_refute_unsigned(c->records, true);
}

/* A record update gossiped to us, by its origin or by a relay. It is passed
 * on only once it has been accepted, so that what one hostile packet says
 * goes no further than the node it was sent to. */
static void handle_update(Cluster *c, const SwimEvent *ev, uint64_t now) {
        const char *origin = ev->member.id;
        char from[INET6_ADDRSTRLEN + 8];
        bool self = streq(origin, c->node_id);
        bool direct = streq(ev->sender, origin) && member_at(c, ev->sender, &ev->from, true);
        int r;

        swim_addr_format(&ev->from, from, sizeof from);
        /* Without a cluster key nothing vouches for a packet but where it
         * came from: take gossip only from live members at their address,
         * about live members. */
        if (c->n_keys == 0 && !self && (!member_at(c, ev->sender, &ev->from, true) || !member_live(c, origin))) {
                count_refused(c, -EACCES, origin, from);
                return;
        }
        if (!self && !member_live(c, origin)) {
                count_refused(c, -EACCES, origin, from);
                return;
        }
        r = cluster_records_apply_update(c->records, origin, direct, ev->data, ev->size, now);
        if (r == -EBADMSG || r == -EINVAL) {
                count_reject(c, -EBADMSG, "record update", from);
                return;
        }
        if (r == -ENOSPC || r == CLUSTER_APPLY_HELD)
                return; /* counted as dropped, or held until there is room: not passed on */
        if (r < 0) {
                count_refused(c, r, origin, from);
                return;
        }
        if (r == CLUSTER_APPLY_REFUTED) {
                /* Someone spoke in our name with a version we never issued:
                 * we have moved past it; say so to everyone. */
                c->counters.refutations++;
                log_warning(
                        "A record update in our name (%s) with a version we never issued came from %s: "
                        "refuting it with a newer one.",
                        c->node_id, from);
                (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
                if (c->last_resync == 0 || now >= c->last_resync + RESYNC_INTERVAL_USEC) {
                        c->last_resync = now;
                        (void) cluster_sync_now(c);
                }
                return;
        }
        if (r > 0)
                c->counters.updates_applied++;
        if (!self)
                swim_relay(c->swim, ev);
        /* A node that gossips in the old format is an older joyrided: speak
         * its protocol when we start a push-pull with it. */
        if (direct && ev->size >= 3 && ev->data[2] == CLUSTER_RECORDS_FORMAT_V1)
                note_v1_peer(c, origin);
}

static void handle_event(Cluster *c, const SwimEvent *ev, uint64_t now) {
        char addr[INET6_ADDRSTRLEN + 8];

        if (ev->type == SWIM_EVENT_USER) {
                handle_update(c, ev, now);
                return;
        }

        swim_addr_format(&ev->member.addr, addr, sizeof addr);
        /* Journal fields for the catalog entries (member alive, member dead). */
        char f_member[SWIM_ID_MAX + 32], f_address[sizeof addr + 32];
        const char *alive_fields[] = { JOYRIDE_FIELD_MEMBER_ALIVE, f_member, f_address, NULL };
        const char *dead_fields[] = { JOYRIDE_FIELD_MEMBER_DEAD, f_member, f_address, NULL };
        snprintf(f_member, sizeof f_member, "JOYRIDE_MEMBER=%s", ev->member.id);
        snprintf(f_address, sizeof f_address, "JOYRIDE_MEMBER_ADDRESS=%s", addr);
        switch (ev->type) {
        case SWIM_EVENT_JOIN:
                log_struct(LOG_INFO, alive_fields, "Cluster member %s at %s is alive (incarnation %" PRIu32 ").",
                           ev->member.id, addr, ev->member.incarnation);
                origin_alive(c, ev->member.id, now);
                /* Gossip only carries changes: swap whole record tables with a
                 * node that (re)appears. One side starts it (the smaller id), the
                 * exchange goes both ways. */
                if (strcmp(c->node_id, ev->member.id) < 0)
                        sync_start(c, &ev->member.addr, ev->member.id);
                break;
        case SWIM_EVENT_ALIVE:
                log_struct(LOG_INFO, alive_fields,
                           "Cluster member %s is alive again (refuted suspicion, incarnation %" PRIu32 ").",
                           ev->member.id, ev->member.incarnation);
                origin_alive(c, ev->member.id, now);
                break;
        case SWIM_EVENT_SUSPECT:
                log_info("Cluster member %s at %s is suspected to have failed.", ev->member.id, addr);
                break;
        case SWIM_EVENT_DEAD:
                log_struct(LOG_WARNING, dead_fields,
                           "Cluster member %s at %s is dead; its records go in %.1f s unless it returns.",
                           ev->member.id, addr, (double) c->dead_grace_usec / USEC_PER_SEC);
                cluster_records_origin_state(c->records, ev->member.id, CLUSTER_ORIGIN_DEAD, now);
                break;
        case SWIM_EVENT_LEFT:
                log_info("Cluster member %s at %s left.", ev->member.id, addr);
                cluster_records_origin_state(c->records, ev->member.id, CLUSTER_ORIGIN_LEFT, now);
                break;
        default:
                return;
        }

        if (c->member_cb) {
                ClusterMember pub;
                member_to_public(c, &ev->member, false, now, now_usec(CLOCK_REALTIME), &pub);
                c->member_cb(c, &pub, c->member_userdata);
        }
}

static void arm(sd_event_source *s, uint64_t usec) {
        if (!s)
                return;
        if (usec == UINT64_MAX) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(s, usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* One kind of drop: warned about at most every 10 s, with the count since
 * the last warning of that kind. */
static void limit_warning(Cluster *c, unsigned kind, uint64_t now, uint64_t count, uint64_t *logged, const char *what) {
        if (count == *logged)
                return;
        if (c->last_limit_log[kind] != 0 && now < c->last_limit_log[kind] + REJECT_LOG_INTERVAL_USEC)
                return;
        c->last_limit_log[kind] = now;
        log_warning("Cluster limit reached: dropped %" PRIu64 " %s since the last warning.", count - *logged, what);
        *logged = count;
}

/* Takes the drop counters of the cores and warns when something was dropped
 * at a limit. */
static void check_limits(Cluster *c) {
        const ClusterRecordsCounters *rc = cluster_records_get_counters(c->records);
        ClusterCounters *k = &c->counters, *l = &c->limit_logged;
        char what[128];
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        k->dropped_members = swim_get_counters(c->swim)->members_dropped;
        k->dropped_origins = rc->dropped_origins;
        k->dropped_records = rc->dropped_records;
        snprintf(what, sizeof what, "new members (MaxMembers=%u)", c->max_members);
        limit_warning(c, 0, now, k->dropped_members, &l->dropped_members, what);
        snprintf(what, sizeof what, "records (MaxRecordsPerNode=%u)", c->max_records);
        limit_warning(c, 1, now, k->dropped_records, &l->dropped_records, what);
        snprintf(what, sizeof what, "nodes' record tables (at most %u)", c->max_members);
        limit_warning(c, 2, now, k->dropped_origins, &l->dropped_origins, what);
        limit_warning(c, 3, now, k->dropped_frames, &l->dropped_frames,
                      "push-pull frames (too large, or too large before the peer said who it is)");
}

/* Expiries and withdrawals of the tables, and the end of a burst of local changes. */
static void arm_records_timer(Cluster *c, uint64_t now) {
        arm(c->records_timer, MIN(cluster_records_tick(c->records, now), cluster_records_burst_end(c->records)));
}

/* After anything that fed the core: send what it queued, act on its events,
 * re-arm its timer. */
static void cluster_process(Cluster *c) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        SwimEvent *ev = g_new(SwimEvent, 1);
        bool membership = false;

        send_swim_packets(c);
        while (swim_pop_event(c->swim, ev)) {
                handle_event(c, ev, now);
                membership = membership || ev->type != SWIM_EVENT_USER;
        }
        g_free(ev);
        /* Members also go without an event (forgotten when long dead, or to
         * make room): the counts follow those too. */
        if (membership || swim_get_counters(c->swim)->members_forgotten != c->members_forgotten) {
                c->members_forgotten = swim_get_counters(c->swim)->members_forgotten;
                update_member_counts(c);
        }
        check_limits(c);
        /* A large origin withdrawn or put back goes in slices, as merges do. */
        if (c->merge_source && cluster_records_pending(c->records))
                (void) sd_event_source_set_enabled(c->merge_source, SD_EVENT_ON);
        send_swim_packets(c); /* handling may have queued more (e.g. nothing today, but cheap) */
        arm(c->swim_timer, swim_next_deadline(c->swim));
        arm_records_timer(c, now);
}

static int on_swim_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        swim_tick(c->swim, now_usec(CLOCK_MONOTONIC));
        cluster_process(c);
        return 0;
}

static int on_records_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        /* A burst of local changes is over: the flush ends it (and sends our snapshot). */
        if (now >= cluster_records_burst_end(c->records))
                (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
        arm_records_timer(c, now);
        if (cluster_records_pending(c->records))
                (void) sd_event_source_set_enabled(c->merge_source, SD_EVENT_ON);
        return 0;
}

static int on_udp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Cluster *c = userdata;
        uint8_t buf[UDP_MAX + 1], plain[UDP_MAX];

        for (unsigned i = 0; i < 64; i++) {
                struct sockaddr_storage sa = {};
                socklen_t salen = sizeof sa;
                ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *) &sa, &salen);
                SwimAddr from;
                char fromstr[INET6_ADDRSTRLEN + 8];
                ssize_t p;

                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_debug_errno(negative_errno(), "SWIM receive failed, ignoring: %m");
                        break;
                }
                addr_to_swim((struct sockaddr *) &sa, &from);
                if (from.family == 0)
                        continue;
                swim_addr_format(&from, fromstr, sizeof fromstr);
                if ((size_t) n > UDP_MAX) {
                        count_reject(c, -EBADMSG, "SWIM packet", fromstr);
                        continue;
                }
                p = unseal(c, CHANNEL_SWIM, buf, (size_t) n, plain);
                if (p < 0) {
                        count_reject(c, (int) p, "SWIM packet", fromstr);
                        continue;
                }
                if (swim_receive(c->swim, &from, plain, (size_t) p, now_usec(CLOCK_MONOTONIC)) < 0) {
                        count_reject(c, -EBADMSG, "SWIM packet", fromstr);
                        continue;
                }
                c->counters.packets_received++;
        }
        cluster_process(c);
        return 0;
}

/* --- push-pull over TCP ---------------------------------------------------------- */

/* A connection is held by c->conns while it is open and by each job of it
 * on the worker; the last one frees it. */
static Conn *conn_ref(Conn *k) {
        k->refs++;
        return k;
}

static void conn_unref(Conn *k) {
        if (!k || --k->refs > 0)
                return;
        if (k->out)
                g_byte_array_free(k->out, TRUE);
        k->cluster->buffered -= k->in_cap;
        g_free(k->in);
        g_free(k);
}

/* Closes it (its jobs still finish, and find it closed). */
static void conn_close(Conn *k) {
        k->closed = true;
        k->io = sd_event_source_disable_unref(k->io);
        k->timer = sd_event_source_disable_unref(k->timer);
        k->fd = safe_close(k->fd);
}

static void sync_failed(Cluster *c, const char *id);

static void conn_done(Conn *k, bool ok) {
        Cluster *c = k->cluster;
        if (!ok) {
                c->counters.push_pull_failures++;
                log_debug("Push-pull with %s failed.", k->peer);
        }
        if (k->sync_id[0] != 0) {
                if (ok)
                        g_hash_table_remove(c->sync_retry, k->sync_id);
                else
                        sync_failed(c, k->sync_id);
        }
        g_hash_table_remove(c->conns, k); /* closes it and drops that reference */
}

/* What to wait for: writable while something is to be sent (or the
 * connection is being made), readable unless a frame is on the worker. */
static void conn_want(Conn *k) {
        uint32_t events = k->busy ? 0 : EPOLLIN;

        if (!k->connected || (k->out && k->out_pos < k->out->len))
                events |= EPOLLOUT;
        if (k->io)
                (void) sd_event_source_set_io_events(k->io, events);
}

/* Appends a frame, sealed, to what goes out: length, then the sealed
 * payload. Runs on the worker too (for a push), hence no Conn here. */
static int frame_seal(const Cluster *c, const uint8_t *plain, size_t size, GByteArray *out) {
        size_t at = out->len;
        uint8_t *frame;

        if (size + SEAL_OVERHEAD > FRAME_MAX)
                return -EMSGSIZE;
        g_byte_array_set_size(out, (guint) (at + 4 + size + SEAL_OVERHEAD));
        frame = out->data + at;
        size = seal(c, CHANNEL_PUSH_PULL, plain, size, frame + 4);
        wire_put_u32(frame, (uint32_t) size);
        g_byte_array_set_size(out, (guint) (at + 4 + size));
        return 0;
}

static int conn_queue(Conn *k, const uint8_t *plain, size_t size) {
        if (!k->out)
                k->out = g_byte_array_new();
        return frame_seal(k->cluster, plain, size, k->out);
}

static int conn_queue_hello(Conn *k) {
        Cluster *c = k->cluster;
        uint8_t buf[256];
        size_t n = cluster_hello_encode(c->node_keys, c->node_id, c->cluster_name, buf, sizeof buf);

        return n > 0 ? conn_queue(k, buf, n) : -ENOBUFS;
}

/* Our member list, for a push or reply. */
static int encode_swim_state(Cluster *c, uint8_t **ret, size_t *ret_size) {
        /* The member list has no size getter: grow until it fits. */
        for (size_t want = 64 * 1024; want <= FRAME_MAX; want *= 2) {
                uint8_t *buf = g_malloc(want);
                size_t n = swim_encode_state(c->swim, buf, want);
                if (n > 0) {
                        *ret = buf;
                        *ret_size = n;
                        return 0;
                }
                g_free(buf);
        }
        return -ENOBUFS;
}

/* Our push or reply in protocol 1, for an older node: small, built here. */
static int conn_queue_push_v1(Conn *k, uint8_t kind) {
        Cluster *c = k->cluster;
        g_autofree uint8_t *swim_state = NULL, *recs = NULL, *plain = NULL;
        size_t swim_size = 0, recs_size = 0, size = 0;
        int r;

        r = encode_swim_state(c, &swim_state, &swim_size);
        if (r >= 0)
                r = cluster_records_encode_local(c->records, CLUSTER_RECORDS_FORMAT_V1, &recs, &recs_size);
        if (r >= 0)
                r = cluster_push_encode(CLUSTER_PUSH_PULL_V1, kind, c->node_id, swim_state, swim_size, recs, recs_size,
                                        &plain, &size);
        if (r >= 0)
                r = conn_queue(k, plain, size);
        return r;
}

/* Our push or reply in protocol 2. The snapshot of a large table takes a
 * while to put together, sign and seal: the loop only collects its parts
 * (each entry encoded already) and the member list, the worker does the rest. */
typedef struct BuildJob {
        WorkerJob job;
        Conn *conn;
        uint8_t kind;
        uint8_t *swim_state;
        size_t swim_size;
        GPtrArray *parts;
        uint64_t version;
        GByteArray *out; /* the sealed frame */
        int error;
} BuildJob;

static void build_job_free(BuildJob *b) {
        g_free(b->swim_state);
        if (b->parts)
                g_ptr_array_unref(b->parts);
        if (b->out)
                g_byte_array_free(b->out, TRUE);
        conn_unref(b->conn);
        g_free(b);
}

static void build_job_run(WorkerJob *j) {
        BuildJob *b = (BuildJob *) j;
        Cluster *c = b->conn->cluster; /* its keys, names and key pair do not change */
        g_autofree uint8_t *recs = NULL, *plain = NULL;
        size_t recs_size = 0, size = 0;

        b->error = cluster_snapshot_assemble(c->node_keys, c->node_id, b->version, b->parts, &recs, &recs_size);
        if (b->error >= 0)
                b->error = cluster_push_encode(CLUSTER_PUSH_PULL_V2, b->kind, NULL, b->swim_state, b->swim_size, recs,
                                               recs_size, &plain, &size);
        if (b->error >= 0) {
                b->out = g_byte_array_new();
                b->error = frame_seal(c, plain, size, b->out);
        }
}

static void build_job_done(WorkerJob *j) {
        BuildJob *b = (BuildJob *) j;
        Conn *k = b->conn;

        if (!k->closed) {
                if (b->error < 0) {
                        log_warning_errno(b->error, "Cannot send our records to %s: %m", k->peer);
                        conn_done(k, false);
                } else {
                        /* Megabytes at 100,000 records: taken over, not
                         * copied on the loop, unless bytes wait before it. */
                        if (!k->out || k->out->len == 0) {
                                if (k->out)
                                        g_byte_array_free(k->out, TRUE);
                                k->out = TAKE_PTR(b->out);
                                k->out_pos = 0;
                        } else
                                g_byte_array_append(k->out, b->out->data, b->out->len);
                        k->last_frame_queued = true;
                        conn_want(k);
                }
        }
        build_job_free(b);
}

static void build_job_discard(WorkerJob *j) {
        build_job_free((BuildJob *) j);
}

static int conn_queue_push(Conn *k, uint8_t kind) {
        Cluster *c = k->cluster;
        BuildJob *b;
        int r;

        if (k->version == CLUSTER_PUSH_PULL_V1) {
                r = conn_queue_push_v1(k, kind);
                if (r >= 0)
                        k->last_frame_queued = true;
                return r;
        }
        b = g_new0(BuildJob, 1);
        b->job = (WorkerJob) { .run = build_job_run, .done = build_job_done, .discard = build_job_discard };
        b->conn = conn_ref(k);
        b->kind = kind;
        r = encode_swim_state(c, &b->swim_state, &b->swim_size);
        if (r < 0) {
                build_job_free(b);
                return r;
        }
        (void) cluster_records_local_parts(c->records, &b->version, &b->parts);
        worker_submit(c->worker, &b->job);
        return 0;
}

/* Warns about a node's key, at most once a minute per node. */
static void key_warning(Cluster *c, const char *id, const char *peer, bool changed) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        gpointer last = g_hash_table_lookup(c->key_warned, id);

        if (last && now < (uint64_t) GPOINTER_TO_SIZE(last) + KEY_WARN_INTERVAL_USEC)
                return;
        g_hash_table_replace(c->key_warned, g_strdup(id), GSIZE_TO_POINTER((gsize) now));
        if (changed)
                log_warning(
                        "Cluster node %s (at %s) shows a signing key other than the one %s for it: refusing it. "
                        "If %s was set up anew, forget the old key with: joyridectl members forget %s",
                        id, peer, cluster_keys_strict(c->node_keys) ? "TrustedNodes= lists" : "pinned", id, id);
        else
                log_warning("Cluster node %s (at %s) is not in TrustedNodes=: refusing it.", id, peer);
}

static void schedule_pins_save(Cluster *c) {
        if (!c->pins_timer)
                return;
        (void) sd_event_source_set_time(c->pins_timer, now_usec(CLOCK_MONOTONIC) + PINS_SAVE_DELAY_USEC);
        (void) sd_event_source_set_enabled(c->pins_timer, SD_EVENT_ONESHOT);
}

/* A peer's hello: the node it names, with the key it signed the hello with.
 * A key we hold must be the same; a node we have no key for is pinned now,
 * if it speaks from the address it has as a live member (so that nobody
 * else can claim its name first). */
static int conn_hello(Conn *k, const uint8_t *plain, size_t size) {
        Cluster *c = k->cluster;
        const uint8_t *held;
        ClusterHello h;
        int r;

        r = cluster_hello_decode(plain, size, c->cluster_name, &h);
        if (r < 0) {
                count_reject(c, r == -EKEYREJECTED ? -EACCES : -EBADMSG, "push-pull hello", k->peer);
                return r;
        }
        if (streq(h.id, c->node_id)) {
                log_warning("Push-pull from %s claims our own node id %s: two nodes share one id?", k->peer, h.id);
                return -EEXIST;
        }
        held = cluster_keys_lookup(c->node_keys, h.id);
        if (held) {
                if (sodium_memcmp(held, h.key, CLUSTER_PUBLIC_KEY_SIZE) != 0) {
                        c->counters.refused_signature++;
                        key_warning(c, h.id, k->peer, true);
                        /* From the address the member lives at, the node
                         * itself was set up anew: what it published under its
                         * old key is withdrawn until the operator forgets
                         * that key, not served as if it still spoke for it.
                         * From elsewhere it is someone claiming its name:
                         * refused, and nothing else changes. */
                        if (member_at(c, h.id, &k->peer_addr, false) &&
                            g_hash_table_add(c->key_refused, g_strdup(h.id)))
                                cluster_records_origin_state(c->records, h.id, CLUSTER_ORIGIN_LEFT,
                                                             now_usec(CLOCK_MONOTONIC));
                        return -EKEYREJECTED;
                }
                /* The pinned key again (its old state was put back). */
                if (g_hash_table_remove(c->key_refused, h.id) && member_live(c, h.id))
                        origin_alive(c, h.id, now_usec(CLOCK_MONOTONIC));
        } else if (cluster_keys_strict(c->node_keys)) {
                c->counters.refused_signature++;
                key_warning(c, h.id, k->peer, false);
                return -EPERM;
        } else {
                char b64[48];
                if (!member_at(c, h.id, &k->peer_addr, false)) {
                        /* Usual while a node joins: its ALIVE may not be here
                         * yet. The exchange after the join pins it. */
                        log_debug("Push-pull from %s names node %s, not a live member there (yet): not now.", k->peer,
                                  h.id);
                        return -EACCES;
                }
                (void) cluster_keys_present(c->node_keys, h.id, h.key);
                sodium_bin2base64(b64, sizeof b64, h.key, sizeof h.key, sodium_base64_VARIANT_ORIGINAL);
                log_info("Cluster node %s at %s: pinned its signing key %s.", h.id, k->peer, b64);
                schedule_pins_save(c);
        }
        g_strlcpy(k->peer_id, h.id, sizeof k->peer_id);
        memcpy(k->peer_key, h.key, sizeof k->peer_key);
        k->authenticated = true;
        k->version = CLUSTER_PUSH_PULL_V2;
        return 0;
}

/* A push or reply, on the worker: opened (unless the loop did), decoded,
 * its snapshot's signature checked and its entries validated. Nothing here
 * touches the loop's state: the frame, the peer's key and the sealing keys
 * (which do not change) are all it reads. */
typedef struct DecodeJob {
        WorkerJob job;
        Conn *conn;
        uint8_t *in; /* the frame as read, sealed; or NULL when plain is set */
        size_t in_len, in_cap;
        uint8_t *plain;
        size_t plain_len;
        uint8_t want_kind;
        bool v2; /* after a hello: protocol 2, signed by peer_key */
        uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];
        /* results */
        int error;        /* as unseal() and cluster_snapshot_decode() */
        ClusterPush push; /* points into plain */
        ClusterSnapshot *snap;
} DecodeJob;

static void decode_job_free(DecodeJob *d) {
        Cluster *c = d->conn->cluster;

        c->buffered -= d->in_cap;
        g_free(d->in);
        g_free(d->plain);
        cluster_snapshot_free(d->snap);
        conn_unref(d->conn);
        g_free(d);
}

static void decode_job_run(WorkerJob *j) {
        DecodeJob *d = (DecodeJob *) j;
        const Cluster *c = d->conn->cluster;
        const char *id;
        ssize_t n;

        if (!d->plain) {
                d->plain = g_malloc(MAX(d->in_len, 1u));
                n = unseal(c, CHANNEL_PUSH_PULL, d->in, d->in_len, d->plain);
                g_free(d->in);
                d->in = NULL;
                if (n < 0) {
                        d->error = (int) n;
                        return;
                }
                d->plain_len = (size_t) n;
        }
        if (cluster_push_decode(d->plain, d->plain_len, &d->push) < 0 || d->push.kind != d->want_kind ||
            d->push.version != (d->v2 ? CLUSTER_PUSH_PULL_V2 : CLUSTER_PUSH_PULL_V1)) {
                d->error = -EBADMSG;
                return;
        }
        /* Protocol 1: unsigned, taken (or not) once the loop knows who sent it. */
        id = d->v2 ? d->conn->peer_id : d->push.id;
        d->error = cluster_snapshot_decode(d->push.records, d->push.records_size, id, d->v2 ? d->key : NULL, !d->v2,
                                           &d->snap);
}

/* Back on the loop: the member list merged, the snapshot queued for the
 * batches of on_merge(), and our answer on its way. */
static int conn_merged(Conn *k, DecodeJob *d) {
        Cluster *c = k->cluster;
        const char *id = d->v2 ? k->peer_id : d->push.id;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int r;

        if (d->error == -EACCES) {
                count_reject(c, -EACCES, "push-pull", k->peer);
                return d->error;
        }
        if (d->error == -EKEYREJECTED || d->error == -EPERM) {
                count_refused(c, d->error, id, k->peer);
                return d->error;
        }
        if (d->error < 0) {
                count_reject(c, -EBADMSG, "push-pull", k->peer);
                return d->error;
        }
        if (streq(id, c->node_id)) {
                log_warning("Push-pull from %s claims our own node id %s: two nodes share one id?", k->peer, id);
                return -EEXIST;
        }
        if (swim_merge_state(c->swim, d->push.swim, d->push.swim_size, now) < 0) {
                count_reject(c, -EBADMSG, "push-pull", k->peer);
                return -EBADMSG;
        }
        if (!d->v2) {
                /* An older node: its records are unsigned. They are taken only
                 * in a cluster with a key (which this frame was sealed with),
                 * from a node whose key we do not know, at its member address. */
                note_v1_peer(c, id);
                if (c->n_keys == 0 || cluster_keys_strict(c->node_keys) || cluster_keys_lookup(c->node_keys, id) ||
                    !member_at(c, id, &k->peer_addr, false)) {
                        count_refused(c, -EPERM, id, k->peer);
                        d->snap = cluster_snapshot_free(d->snap);
                }
        }
        if (d->snap) {
                log_debug("Push-pull with %s (%s): %zu records, merging.", id, k->peer,
                          cluster_snapshot_count(d->snap));
                if (cluster_records_merge_queue(c->records, TAKE_PTR(d->snap), now) >= 0)
                        (void) sd_event_source_set_enabled(c->merge_source, SD_EVENT_ON);
        }
        c->counters.push_pulls++;
        cluster_process(c);
        if (k->outgoing)
                return 1;
        /* Our answer, in the peer's protocol. */
        k->version = d->v2 ? CLUSTER_PUSH_PULL_V2 : CLUSTER_PUSH_PULL_V1;
        r = k->version == CLUSTER_PUSH_PULL_V2 ? conn_queue_hello(k) : 0;
        if (r >= 0)
                r = conn_queue_push(k, CLUSTER_FRAME_REPLY);
        if (r < 0)
                return r;
        conn_want(k);
        return 0;
}

static void decode_job_done(WorkerJob *j) {
        DecodeJob *d = (DecodeJob *) j;
        Conn *k = d->conn;

        if (!k->closed) {
                int r;
                k->busy = false;
                r = conn_merged(k, d);
                if (r != 0)
                        conn_done(k, r > 0);
                else
                        conn_want(k);
        }
        decode_job_free(d);
}

static void decode_job_discard(WorkerJob *j) {
        decode_job_free((DecodeJob *) j);
}

/* One whole frame has arrived. A hello is checked here (it needs what the
 * loop knows); a push or reply goes to the worker. Returns 0 to go on, or a
 * negative errno to drop the connection. */
static int conn_frame(Conn *k) {
        Cluster *c = k->cluster;
        DecodeJob *d;

        d = g_new0(DecodeJob, 1);
        d->job = (WorkerJob) { .run = decode_job_run, .done = decode_job_done, .discard = decode_job_discard };
        d->conn = conn_ref(k);
        d->want_kind = k->outgoing ? CLUSTER_FRAME_REPLY : CLUSTER_FRAME_PUSH;
        /* The buffer (and what it counts against the budget) goes with the job. */
        d->in = TAKE_PTR(k->in);
        d->in_len = k->in_len;
        d->in_cap = k->in_cap;
        k->in_cap = 0;

        if (!k->authenticated) {
                /* The first frame, at most CLUSTER_HELLO_MAX bytes: a hello, or
                 * an older node's whole push. */
                uint8_t version, kind = 0;
                ssize_t n;
                int r;

                d->plain = g_malloc(MAX(d->in_len, 1u));
                n = unseal(c, CHANNEL_PUSH_PULL, d->in, d->in_len, d->plain);
                if (n < 0) {
                        count_reject(c, (int) n, "push-pull", k->peer);
                        decode_job_free(d);
                        return (int) n;
                }
                d->plain_len = (size_t) n;
                version = cluster_frame_version(d->plain, d->plain_len, &kind);
                if (version == CLUSTER_PUSH_PULL_V2 && kind == CLUSTER_FRAME_HELLO &&
                    k->version != CLUSTER_PUSH_PULL_V1) {
                        r = conn_hello(k, d->plain, d->plain_len);
                        decode_job_free(d);
                        return r;
                }
                if (version != CLUSTER_PUSH_PULL_V1 || k->version == CLUSTER_PUSH_PULL_V2) {
                        count_reject(c, -EBADMSG, "push-pull", k->peer);
                        decode_job_free(d);
                        return -EBADMSG;
                }
        } else {
                d->v2 = true;
                memcpy(d->key, k->peer_key, sizeof d->key);
        }
        k->busy = true; /* no further frame is read meanwhile */
        conn_want(k);
        worker_submit(c->worker, &d->job);
        return 0;
}

/* Room for the frame being read, grown as its bytes arrive (never to more
 * than it said it holds), within the budget for all connections. */
static int conn_grow(Conn *k) {
        Cluster *c = k->cluster;
        size_t cap = k->in_cap == 0 ? MIN(k->in_len, (size_t) CLUSTER_HELLO_MAX) : MIN(k->in_len, 2 * k->in_cap);

        if (c->buffered - k->in_cap + cap > BUFFER_BUDGET)
                return -ENOBUFS;
        k->in = g_realloc(k->in, cap);
        c->buffered += cap - k->in_cap;
        k->in_cap = cap;
        return 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *k = userdata;
        Cluster *c = k->cluster;
        ssize_t n;
        int r;

        if (k->outgoing && !k->connected) {
                int err = 0;
                socklen_t l = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err != 0) {
                        conn_done(k, false);
                        return 0;
                }
                k->connected = true;
        }

        /* Write what we have to send. */
        if (k->out && k->out_pos < k->out->len) {
                n = send(fd, k->out->data + k->out_pos, k->out->len - k->out_pos, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        conn_done(k, false);
                        return 0;
                }
                if (n > 0)
                        k->out_pos += (size_t) n;
                if (k->out_pos == k->out->len) {
                        g_byte_array_set_size(k->out, 0);
                        k->out_pos = 0;
                        if (!k->outgoing && k->last_frame_queued) {
                                /* Our reply is out: done. */
                                conn_done(k, true);
                                return 0;
                        }
                }
        }
        conn_want(k);

        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || k->busy)
                return 0;
        /* A few hundred KiB per wake-up: a large frame arrives over several
         * loop turns, never in one long one. */
        for (size_t budget = READ_SLICE; budget > 0;) {
                /* A frame: its length first, then its bytes. */
                if (k->hdr_pos < 4) {
                        n = recv(fd, k->hdr + k->hdr_pos, 4 - k->hdr_pos, MSG_DONTWAIT);
                        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                                return 0;
                        if (n <= 0) {
                                conn_done(k, false);
                                return 0;
                        }
                        k->hdr_pos += (size_t) n;
                        if (k->hdr_pos < 4)
                                continue;
                        k->in_len = wire_get_u32(k->hdr);
                        k->in_pos = 0;
                        /* Until the peer is known, a hello's worth at most. */
                        if (k->in_len == 0 || k->in_len > (k->authenticated ? FRAME_MAX : CLUSTER_HELLO_MAX) ||
                            conn_grow(k) < 0) {
                                c->counters.dropped_frames++;
                                count_reject(c, k->in_len == 0 ? -EBADMSG : -EMSGSIZE, "push-pull frame", k->peer);
                                check_limits(c);
                                conn_done(k, false);
                                return 0;
                        }
                }
                if (k->in_pos == k->in_cap && conn_grow(k) < 0) {
                        c->counters.dropped_frames++;
                        check_limits(c);
                        conn_done(k, false);
                        return 0;
                }
                n = recv(fd, k->in + k->in_pos, MIN(k->in_cap - k->in_pos, budget), MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (n <= 0) {
                        conn_done(k, false);
                        return 0;
                }
                k->in_pos += (size_t) n;
                budget -= (size_t) n;
                if (k->in_pos < k->in_len)
                        continue;

                k->hdr_pos = 0;
                r = conn_frame(k); /* takes the buffer */
                if (r < 0) {
                        conn_done(k, false);
                        return 0;
                }
                if (k->busy)
                        return 0; /* the worker has it; decode_job_done() goes on */
        }
        return 0; /* more next time round (the socket is still readable) */
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *k = userdata;
        log_debug("Push-pull with %s timed out.", k->peer);
        conn_done(k, false);
        return 0;
}

static int conn_add(Cluster *c, int fd, bool outgoing, const SwimAddr *peer, Conn **ret) {
        Conn *k = g_new0(Conn, 1);
        int r;

        k->cluster = c;
        k->refs = 1; /* c->conns */
        k->fd = fd;
        k->outgoing = outgoing;
        k->connected = !outgoing;
        k->peer_addr = *peer;
        swim_addr_format(peer, k->peer, sizeof k->peer);
        g_hash_table_add(c->conns, k);
        r = sd_event_add_io(c->event, &k->io, fd, outgoing ? EPOLLOUT : EPOLLIN, on_conn_io, k);
        if (r >= 0)
                r = sd_event_add_time_relative(c->event, &k->timer, CLOCK_MONOTONIC, CONN_TIMEOUT_USEC, 0,
                                               on_conn_timeout, k);
        if (r < 0) {
                k->fd = -EBADF; /* the caller closes it */
                g_hash_table_remove(c->conns, k);
                return r;
        }
        (void) sd_event_source_set_description(k->io, outgoing ? "cluster-push-pull-out" : "cluster-push-pull-in");
        (void) sd_event_source_set_description(k->timer, "cluster-push-pull-timeout");
        if (ret)
                *ret = k;
        return 0;
}

/* Starts a push-pull with the node at `to` (id: who we expect there, if we
 * know; an older node gets protocol 1). */
/* Opens an outgoing connection (the connect is under way). */
static int conn_connect(Cluster *c, const SwimAddr *to, Conn **ret) {
        struct sockaddr_storage sa = {};
        socklen_t salen = swim_to_addr(c->family, to, &sa);
        _cleanup_close_ int fd = -EBADF;
        Conn *k = NULL;
        int r;

        if (salen == 0 || g_hash_table_size(c->conns) >= CONNS_MAX)
                return -EBUSY;
        fd = socket(c->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, salen) < 0 && errno != EINPROGRESS) {
                c->counters.push_pull_failures++;
                return negative_errno();
        }
        r = conn_add(c, fd, true, to, &k);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        assert(k);
        *ret = k;
        return 0;
}

/* A push-pull with the node at `to` (id, when known). With sync, it is the
 * first exchange with member id, tried again if it fails (sync_failed()). */
static int conn_start_full(Cluster *c, const SwimAddr *to, const char *id, bool sync) {
        Conn *k = NULL;
        int r;

        r = conn_connect(c, to, &k);
        if (r < 0) {
                if (sync)
                        sync_failed(c, id);
                return r;
        }
        assert(k);
        if (sync)
                g_strlcpy(k->sync_id, id, sizeof k->sync_id);
        k->version = id && g_hash_table_contains(c->v1_peers, id) ? CLUSTER_PUSH_PULL_V1 : CLUSTER_PUSH_PULL_V2;
        r = k->version == CLUSTER_PUSH_PULL_V2 ? conn_queue_hello(k) : 0;
        if (r >= 0)
                r = conn_queue_push(k, CLUSTER_FRAME_PUSH);
        if (r < 0) {
                conn_done(k, false);
                return r;
        }
        return 0;
}

static int conn_start(Cluster *c, const SwimAddr *to, const char *id) {
        return conn_start_full(c, to, id, false);
}

/* The first exchange with a member that appeared swaps whole record tables:
 * gossip only carries changes, and the periodic push-pull picks one random
 * member, so a first exchange that fails (a refused or reset connection, a
 * peer that was busy) would leave that member's records missing here, and
 * ours there, for minutes in a large cluster. It is tried again, after 0.5,
 * 1, 2, 4 and 8 s, while the member lives. */
#define SYNC_ATTEMPTS_MAX 5u
#define SYNC_RETRY_FIRST_USEC (USEC_PER_SEC / 2)

typedef struct SyncRetry {
        unsigned failures;
        uint64_t due_usec; /* CLOCK_MONOTONIC */
} SyncRetry;

static void sync_arm(Cluster *c) {
        GHashTableIter it;
        gpointer v;
        uint64_t next = UINT64_MAX;

        g_hash_table_iter_init(&it, c->sync_retry);
        while (g_hash_table_iter_next(&it, NULL, &v))
                next = MIN(next, ((SyncRetry *) v)->due_usec);
        arm(c->sync_timer, next);
}

static void sync_failed(Cluster *c, const char *id) {
        SyncRetry *r = g_hash_table_lookup(c->sync_retry, id);

        if (!r) {
                r = g_new0(SyncRetry, 1);
                g_hash_table_insert(c->sync_retry, g_strdup(id), r);
        }
        if (++r->failures > SYNC_ATTEMPTS_MAX) {
                log_info(
                        "Cluster node %s: the first exchange of records failed %u times; the periodic push-pull "
                        "will bring them.",
                        id, SYNC_ATTEMPTS_MAX + 1);
                g_hash_table_remove(c->sync_retry, id);
                return;
        }
        r->due_usec = now_usec(CLOCK_MONOTONIC) + (SYNC_RETRY_FIRST_USEC << (r->failures - 1));
        log_debug("Cluster node %s: the first exchange of records failed; trying again in %.1f s.", id,
                  (double) (SYNC_RETRY_FIRST_USEC << (r->failures - 1)) / USEC_PER_SEC);
        sync_arm(c);
}

/* Starts the first exchange with member id; a failure schedules it again. */
static void sync_start(Cluster *c, const SwimAddr *to, const char *id) {
        (void) conn_start_full(c, to, id, true);
}

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        g_autoptr(GPtrArray) due = g_ptr_array_new_with_free_func(g_free);
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        GHashTableIter it;
        gpointer k, v;

        g_hash_table_iter_init(&it, c->sync_retry);
        while (g_hash_table_iter_next(&it, &k, &v))
                if (((SyncRetry *) v)->due_usec <= now) {
                        ((SyncRetry *) v)->due_usec = UINT64_MAX; /* until this attempt ends */
                        g_ptr_array_add(due, g_strdup(k));
                }
        for (guint i = 0; i < due->len; i++) {
                const char *id = due->pdata[i];
                const SwimMember *m = swim_member(c->swim, id);

                if (!m || (m->state != SWIM_ALIVE && m->state != SWIM_SUSPECT)) {
                        g_hash_table_remove(c->sync_retry, id);
                        continue;
                }
                sync_start(c, &m->addr, id);
        }
        sync_arm(c);
        return 0;
}

static int on_tcp_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Cluster *c = userdata;

        for (unsigned i = 0; i < 16; i++) {
                struct sockaddr_storage sa = {};
                socklen_t salen = sizeof sa;
                SwimAddr from;
                int cfd = accept4(fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0)
                        break;
                if (g_hash_table_size(c->conns) >= CONNS_MAX) {
                        safe_close(cfd);
                        continue;
                }
                addr_to_swim((struct sockaddr *) &sa, &from);
                if (conn_add(c, cfd, false, &from, NULL) < 0)
                        safe_close(cfd);
        }
        return 0;
}

/* Applies queued snapshots a batch at a time, when the loop has nothing
 * else to do, so that a large peer never holds DNS answers or the API: small
 * steps until MERGE_SLICE_USEC have passed, then the loop's turn again. */
static int on_merge(sd_event_source *s, void *userdata) {
        Cluster *c = userdata;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        unsigned changes = 0;
        bool more;

        do
                more = cluster_records_merge_step(c->records, MERGE_STEP, start, &changes);
        while (more && now_usec(CLOCK_MONOTONIC) < start + MERGE_SLICE_USEC);
        if (!more)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        check_limits(c);
        return 0;
}

static int on_pins_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        int r = cluster_keys_save(c->node_keys);

        if (r < 0)
                log_warning_errno(r, "Failed to save the cluster's pinned keys (%s), will try again: %m",
                                  CLUSTER_PINS_FILE);
        if (cluster_keys_dirty(c->node_keys))
                schedule_pins_save(c);
        return 0;
}

/* Ids and addresses of the live members (not ourselves), copied: starting a
 * connection may call back into the core. */
typedef struct Peer {
        char id[SWIM_ID_MAX + 1];
        SwimAddr addr;
} Peer;

static GArray *live_peers(Cluster *c, bool with_suspect) {
        const SwimMember *ms;
        size_t n = swim_members(c->swim, &ms);
        GArray *a = g_array_new(FALSE, FALSE, sizeof(Peer));

        for (size_t i = 1; i < n; i++)
                if (ms[i].state == SWIM_ALIVE || (with_suspect && ms[i].state == SWIM_SUSPECT)) {
                        Peer p = { .addr = ms[i].addr };
                        g_strlcpy(p.id, ms[i].id, sizeof p.id);
                        g_array_append_val(a, p);
                }
        return a;
}

int cluster_sync_now(Cluster *c) {
        g_autoptr(GArray) peers = live_peers(c, true);
        int started = 0;

        for (guint i = 0; i < peers->len; i++) {
                Peer *p = &g_array_index(peers, Peer, i);
                if (conn_start(c, &p->addr, p->id) >= 0)
                        started++;
        }
        return started;
}

static int on_push_pull_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        g_autoptr(GArray) peers = live_peers(c, false);

        if (peers->len > 0) {
                Peer *p = &g_array_index(peers, Peer, randombytes_uniform(peers->len));
                (void) conn_start(c, &p->addr, p->id);
        }
        arm(s, now_usec(CLOCK_MONOTONIC) + jitter(c->push_pull_interval_usec, 10));
        return 0;
}

int cluster_forget_member(Cluster *c, const char *id) {
        bool known = false;
        int r;

        if (!swim_id_is_valid(id) || streq(id, c->node_id))
                return -EINVAL;
        r = cluster_keys_forget(c->node_keys, id);
        if (r == -EPERM)
                return r;
        known = r >= 0;
        if (known)
                schedule_pins_save(c);
        known = cluster_records_forget(c->records, id) || known;
        known = swim_forget(c->swim, id) >= 0 || known;
        known = g_hash_table_remove(c->v1_peers, id) || known;
        known = g_hash_table_remove(c->key_warned, id) || known;
        known = g_hash_table_remove(c->key_refused, id) || known;
        if (!known && !swim_member(c->swim, id))
                return -ENOENT;
        log_info("Forgot what we held about cluster node %s: its next key is pinned on first contact.", id);
        /* Alive still: learn its key and records again at once. */
        const SwimMember *m = swim_member(c->swim, id);
        if (m && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT)) {
                SwimAddr a = m->addr;
                (void) conn_start(c, &a, id);
        }
        update_member_counts(c);
        return 0;
}

/* --- discovery and seeds ---------------------------------------------------------- */

/* IPv6 clusters announce themselves by link-local multicast to this group
 * ("jr" in hex), on DISCOVERY_PORT, on every interface that can multicast:
 * a segment without IPv4 has no broadcast. */
#define DISCOVERY_GROUP6 "ff02::6a72"

static size_t build_announcement(Cluster *c, bool with_addr, uint8_t *sealed) {
        uint8_t plain[128];
        size_t idlen = strlen(c->node_id);
        Wire w = wire_init(plain, sizeof plain);

        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'A');
        wire_write_u8(&w, PROTOCOL_VERSION);
        wire_write_u8(&w, (uint8_t) idlen);
        wire_write(&w, c->node_id, idlen);
        wire_write_u16(&w, c->swim_port);
        if (with_addr) {
                wire_write_u8(&w, c->self_addr.family);
                wire_write(&w, c->self_addr.ip, 16);
        }
        if (!wire_ok(&w))
                return 0; /* cannot happen: the node id is at most 64 bytes */
        return seal(c, CHANNEL_DISCOVERY, plain, wire_offset(&w), sealed);
}

static void announce4(Cluster *c, struct ifaddrs *list) {
        uint8_t sealed[128 + SEAL_OVERHEAD];
        size_t m = build_announcement(c, false, sealed);

        for (struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
                struct sockaddr_in to;
                if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || !ifa->ifa_broadaddr)
                        continue;
                if (!(ifa->ifa_flags & IFF_UP) || !(ifa->ifa_flags & IFF_BROADCAST) || (ifa->ifa_flags & IFF_LOOPBACK))
                        continue;
                /* Bound to one address: announce only on its interface. */
                if (c->bind4.s_addr != htonl(INADDR_ANY) &&
                    ((struct sockaddr_in *) ifa->ifa_addr)->sin_addr.s_addr != c->bind4.s_addr)
                        continue;
                to = *(struct sockaddr_in *) ifa->ifa_broadaddr;
                to.sin_port = htons(c->discovery_port);
                if (sendto(c->disc_fd, sealed, m, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &to, sizeof to) < 0)
                        log_debug_errno(negative_errno(), "Failed to announce on %s, ignoring: %m", ifa->ifa_name);
                else
                        c->counters.announcements_sent++;
        }
}

/* Joins the group and announces on every interface that can multicast (each
 * round, so that interfaces that came up since are covered). */
static void announce6(Cluster *c, struct ifaddrs *list) {
        static const uint8_t loopback6[16] = { [15] = 1 };
        uint8_t sealed[128 + SEAL_OVERHEAD];
        size_t m = build_announcement(c, true, sealed);
        unsigned done[64];
        size_t n_done = 0;

        /* With nothing better than ::1 to advertise (a warning said so at
         * start), an announcement would only make others join themselves. */
        if (c->self_addr.family == 6 && memcmp(c->self_addr.ip, loopback6, 16) == 0)
                return;

        for (struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) ifa->ifa_addr;
                struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons(c->discovery_port) };
                struct ipv6_mreq mreq = {};
                unsigned idx;
                bool seen = false;

                if (!a || a->sin6_family != AF_INET6)
                        continue;
                if (!(ifa->ifa_flags & IFF_UP) || !(ifa->ifa_flags & IFF_MULTICAST) || (ifa->ifa_flags & IFF_LOOPBACK))
                        continue;
                if (!IN6_IS_ADDR_UNSPECIFIED(&c->bind6) && !IN6_ARE_ADDR_EQUAL(&a->sin6_addr, &c->bind6))
                        continue;
                idx = if_nametoindex(ifa->ifa_name);
                for (size_t i = 0; i < n_done; i++)
                        seen = seen || done[i] == idx;
                if (idx == 0 || seen || n_done >= ELEMENTSOF(done))
                        continue;
                done[n_done++] = idx;

                (void) inet_pton(AF_INET6, DISCOVERY_GROUP6, &mreq.ipv6mr_multiaddr);
                mreq.ipv6mr_interface = idx;
                if (setsockopt(c->disc_fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq) < 0 &&
                    errno != EADDRINUSE)
                        log_debug_errno(negative_errno(), "Failed to join %s on %s, ignoring: %m", DISCOVERY_GROUP6,
                                        ifa->ifa_name);
                to.sin6_addr = mreq.ipv6mr_multiaddr;
                to.sin6_scope_id = idx;
                if (sendto(c->disc_fd, sealed, m, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *) &to, sizeof to) < 0)
                        log_debug_errno(negative_errno(), "Failed to announce on %s, ignoring: %m", ifa->ifa_name);
                else
                        c->counters.announcements_sent++;
        }
}

static void send_announcements(Cluster *c) {
        struct ifaddrs *list = NULL;

        if (getifaddrs(&list) < 0) {
                log_debug_errno(negative_errno(), "getifaddrs() failed, no announcement: %m");
                return;
        }
        if (c->family == AF_INET)
                announce4(c, list);
        else
                announce6(c, list);
        freeifaddrs(list);
}

static int on_discovery_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        uint64_t next;

        send_announcements(c);
        /* Quick at first, so nodes started together find each other at once. */
        next = c->discovery_round++ < 3 ? USEC_PER_SEC : c->discovery_interval_usec;
        arm(s, now_usec(CLOCK_MONOTONIC) + jitter(MIN(next, c->discovery_interval_usec), 20));
        return 0;
}

int cluster_parse_announcement(const uint8_t *p, size_t n, const SwimAddr *from, char ret_id[static SWIM_ID_MAX + 1],
                               SwimAddr *ret_to) {
        static const uint8_t zero[16];
        Wire w = wire_init_const(p, n);
        char id[SWIM_ID_MAX + 1];
        const uint8_t *idp;
        SwimAddr to = *from;
        uint8_t idlen;

        if (wire_read_u8(&w) != 'J' || wire_read_u8(&w) != 'A' || wire_read_u8(&w) != PROTOCOL_VERSION)
                return -EBADMSG;
        idlen = wire_read_u8(&w);
        idp = idlen <= SWIM_ID_MAX ? wire_read_ptr(&w, idlen) : NULL;
        if (!idp)
                return -EBADMSG;
        memcpy(id, idp, idlen);
        id[idlen] = 0;
        to.port = wire_read_u16(&w);
        if (!wire_at_end(&w)) {
                /* The address it carries: one another node can send to (not
                 * unspecified, loopback, multicast or broadcast). */
                static const uint8_t loopback6[16] = { [15] = 1 };
                to.family = wire_read_u8(&w);
                wire_read(&w, to.ip, 16);
                if (to.family == 4 &&
                    (memcmp(to.ip + 4, zero, 12) != 0 || to.ip[0] == 0 || to.ip[0] == 127 || to.ip[0] >= 224))
                        return -EBADMSG;
                if (to.family == 6 &&
                    (memcmp(to.ip, zero, 16) == 0 || memcmp(to.ip, loopback6, 16) == 0 || to.ip[0] == 0xff))
                        return -EBADMSG;
                if (to.family != 4 && to.family != 6)
                        return -EBADMSG;
        }
        if (!wire_ok(&w) || !wire_at_end(&w) || !swim_id_is_valid(id) || to.port == 0)
                return -EBADMSG;
        memcpy(ret_id, id, idlen + 1);
        *ret_to = to;
        return 0;
}

static int on_discovery(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Cluster *c = userdata;
        uint8_t buf[512], plain[512];

        for (unsigned i = 0; i < 32; i++) {
                struct sockaddr_storage sa = {};
                socklen_t salen = sizeof sa;
                ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *) &sa, &salen);
                char id[SWIM_ID_MAX + 1], fromstr[INET6_ADDRSTRLEN + 8];
                SwimAddr from, to;
                ssize_t p;

                if (n < 0)
                        break;
                addr_to_swim((struct sockaddr *) &sa, &from);
                if (from.family == 0)
                        continue;
                swim_addr_format(&from, fromstr, sizeof fromstr);
                p = unseal(c, CHANNEL_DISCOVERY, buf, (size_t) n, plain);
                if (p < 0) {
                        count_reject(c, (int) p, "announcement", fromstr);
                        continue;
                }
                if (cluster_parse_announcement(plain, (size_t) p, &from, id, &to) < 0) {
                        count_reject(c, -EBADMSG, "announcement", fromstr);
                        continue;
                }
                c->counters.announcements_received++;
                if (streq(id, c->node_id) || member_live(c, id))
                        continue;
                if (c->family == AF_INET && to.family != 4)
                        continue;
                /* Once a second per node at most: its ALIVE may still be on the way. */
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                gpointer last = g_hash_table_lookup(c->joined, id);
                if (last && now < (uint64_t) GPOINTER_TO_SIZE(last) + USEC_PER_SEC)
                        continue;
                g_hash_table_replace(c->joined, g_strdup(id), GSIZE_TO_POINTER((gsize) now));
                swim_addr_format(&to, fromstr, sizeof fromstr);
                log_debug("Heard node %s at %s: joining it.", id, fromstr);
                (void) swim_join(c->swim, &to, now);
                /* And a push-pull, as memberlist joins: it carries our view of the
                 * node too, so one that restarted learns it was declared dead and
                 * refutes at once with a higher incarnation (its ALIVE with the
                 * incarnation it starts from would be ignored until then). */
                (void) conn_start(c, &to, id);
        }
        cluster_process(c);
        return 0;
}

static void seed_join(Cluster *c, const SwimAddr *a) {
        if (a->family == 0 || swim_addr_equal(a, &c->self_addr) || (c->family == AF_INET && a->family != 4))
                return;
        (void) swim_join(c->swim, a, now_usec(CLOCK_MONOTONIC));
        (void) conn_start(c, a, NULL); /* see on_discovery() */
}

typedef struct SeedLookup {
        Cluster *cluster; /* only used while `cancel` is not cancelled */
        GCancellable *cancel;
        size_t index;
} SeedLookup;

static void on_seed_resolved(GObject *source, GAsyncResult *result, gpointer userdata) {
        SeedLookup *l = userdata;
        g_autoptr(GError) error = NULL;
        GList *addresses = g_resolver_lookup_by_name_with_flags_finish(G_RESOLVER(source), result, &error);
        Cluster *c = l->cluster;
        Seed *seed;
        unsigned joined = 0;

        if (g_cancellable_is_cancelled(l->cancel))
                goto out; /* the cluster is gone */
        seed = &c->seeds[l->index];
        seed->resolving = false;
        if (!addresses) {
                /* Warned once; the next attempt resolves it again. */
                if (seed->failures++ == 0)
                        log_warning("Cannot resolve cluster seed %s: %s (trying again every %u s while alone).",
                                    seed->spec, error ? error->message : "no address",
                                    (unsigned) (JOIN_RETRY_USEC / USEC_PER_SEC));
                else
                        log_debug("Cannot resolve cluster seed %s: %s", seed->spec,
                                  error ? error->message : "no address");
                goto out;
        }
        if (seed->failures > 0)
                log_info("Cluster seed %s resolves again.", seed->spec);
        seed->failures = 0;
        for (GList *a = addresses; a && joined < SEED_ADDRESSES_MAX; a = a->next) {
                GInetAddress *ia = a->data;
                SwimAddr sa = { .port = seed->port };
                size_t size = g_inet_address_get_native_size(ia);

                if (size != 4 && size != 16)
                        continue;
                sa.family = size == 4 ? 4 : 6;
                memcpy(sa.ip, g_inet_address_to_bytes(ia), size);
                seed_join(c, &sa);
                joined++;
        }
        cluster_process(c);
out:
        g_resolver_free_addresses(addresses);
        g_object_unref(l->cancel);
        g_free(l);
}

static void join_seeds(Cluster *c) {
        for (size_t i = 0; i < c->n_seeds; i++) {
                Seed *seed = &c->seeds[i];
                SeedLookup *l;

                if (!seed->host) {
                        seed_join(c, &seed->literal);
                        continue;
                }
                /* A name is looked up on GLib's resolver threads, never on the
                 * loop: a slow or dead DNS server must not stall the cluster. */
                if (seed->resolving)
                        continue;
                seed->resolving = true;
                l = g_new(SeedLookup, 1);
                *l = (SeedLookup) { .cluster = c, .cancel = g_object_ref(c->resolving), .index = i };
                g_autoptr(GResolver) resolver = g_resolver_get_default();
                g_resolver_lookup_by_name_with_flags_async(resolver, seed->host,
                                                           c->family == AF_INET ? G_RESOLVER_NAME_LOOKUP_FLAGS_IPV4_ONLY
                                                                                : G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT,
                                                           c->resolving, on_seed_resolved, l);
        }
        cluster_process(c);
}

static int on_join_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;

        /* Until someone answers: a seed that was not up yet may be now. */
        if (swim_alive_count(c->swim) <= 1)
                join_seeds(c);
        arm(s, now_usec(CLOCK_MONOTONIC) + jitter(JOIN_RETRY_USEC, 20));
        return 0;
}

/* JOIN= entries: "host:port", "[v6]:port"; an IP literal is used as it is. */
static int parse_seeds(Cluster *c, char **join) {
        size_t n = join ? g_strv_length(join) : 0;

        c->seeds = g_new0(Seed, MAX(n, 1u));
        for (size_t i = 0; i < n; i++) {
                const char *colon = strrchr(join[i], ':');
                g_autofree char *host = NULL;
                Seed *seed = &c->seeds[c->n_seeds];
                unsigned long port;
                char *end;

                if (!colon || colon == join[i])
                        return log_error_errno(-EINVAL, "Cluster seed '%s' is not HOST:PORT.", join[i]);
                errno = 0;
                port = strtoul(colon + 1, &end, 10);
                if (errno != 0 || *end || port == 0 || port > 65535)
                        return log_error_errno(-EINVAL, "Cluster seed '%s' has no valid port.", join[i]);
                host = g_strndup(join[i], (gsize) (colon - join[i]));
                if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                        memmove(host, host + 1, strlen(host));
                        host[strlen(host) - 1] = 0;
                }
                seed->spec = g_strdup(join[i]);
                seed->port = (uint16_t) port;
                seed->literal.port = (uint16_t) port;
                if (inet_pton(AF_INET, host, seed->literal.ip) == 1)
                        seed->literal.family = 4;
                else if (inet_pton(AF_INET6, host, seed->literal.ip) == 1)
                        seed->literal.family = 6;
                else
                        seed->host = TAKE_PTR(host);
                if (seed->literal.family == 6 && c->family == AF_INET)
                        log_warning(
                                "Cluster seed %s is IPv6 but the cluster is IPv4 (set BindAddress=:: for IPv6): "
                                "ignoring it.",
                                join[i]);
                c->n_seeds++;
        }
        return 0;
}

/* --- local record changes ---------------------------------------------------------- */

static void on_store_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Cluster *c = userdata;

        if (!cluster_owner_is_local(r->owner))
                return;
        cluster_records_local_mark(c->records, r->name, r->type, r->value);
        (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
}

static void emit_update(const char *key, const uint8_t *data, size_t size, void *userdata) {
        Cluster *c = userdata;
        int r = swim_broadcast(c->swim, key, data, size);
        if (r < 0)
                /* Too big for gossip: push-pull carries it. */
                log_debug_errno(r, "Record update of %zu bytes not gossiped, push-pull will carry it: %m", size);
        else
                c->counters.updates_sent++;
}

/* A batch of local updates, versioned on the loop, encoded and signed on the
 * signer thread, published on the loop in the order the batches were made
 * (the signer runs them, and hands them back, in order): a later change of a
 * record never overtakes an earlier one. */
typedef struct SignJob {
        WorkerJob job; /* first */
        Cluster *c;
        const ClusterKeys *keys;
        ClusterUpdates *updates;
} SignJob;

static void sign_job_run(WorkerJob *j) {
        SignJob *s = (SignJob *) j;
        cluster_updates_sign(s->updates, s->keys);
}

static void sign_job_publish(SignJob *s) {
        Cluster *c = s->c;

        cluster_updates_emit(s->updates, emit_update, c);
        c->n_signing--;
        cluster_updates_free(s->updates);
        g_free(s);
}

static void sign_job_done(WorkerJob *j) {
        SignJob *s = (SignJob *) j;
        Cluster *c = s->c;

        sign_job_publish(s);
        cluster_process(c); /* the updates go out with the next packets */
        /* Changes held back while the signer was full. */
        if (c->n_signing < SIGN_JOBS_MAX)
                (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
}

/* The signer is freed first thing in cluster_free(), with the cluster intact:
 * what it signed still goes out, ahead of our leave. */
static void sign_job_discard(WorkerJob *j) {
        sign_job_publish((SignJob *) j);
}

static void sign_submit(Cluster *c, ClusterUpdates *updates) {
        SignJob *s = g_new0(SignJob, 1);

        s->job = (WorkerJob) { .run = sign_job_run, .done = sign_job_done, .discard = sign_job_discard };
        s->c = c;
        s->keys = c->node_keys;
        s->updates = updates;
        c->n_signing++;
        worker_submit(c->signer, &s->job);
}

static int on_flush(sd_event_source *s, void *userdata) {
        Cluster *c = userdata;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        bool more = false;

        /* The signer has enough to do: the keys stay marked (a record that
         * changes again meanwhile is sent once), sign_job_done() comes back. */
        if (c->n_signing >= SIGN_JOBS_MAX)
                return 0;
        /* In slices, as snapshots are merged: a hosts file of 100,000 names
         * must not hold the loop. The loop only versions the changes and
         * copies them out; the signer does the rest. */
        _cleanup_(cluster_updates_freep) ClusterUpdates *updates = cluster_updates_new(c->node_id);
        do
                (void) cluster_records_local_flush_some(c->records, MERGE_STEP, start, updates, &more);
        while (more && cluster_updates_count(updates) < SIGN_BATCH_MAX &&
               now_usec(CLOCK_MONOTONIC) < start + MERGE_SLICE_USEC);
        if (more)
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (cluster_updates_count(updates) > 0)
                sign_submit(c, TAKE_PTR(updates));
        if (cluster_records_take_resync(c->records))
                (void) cluster_sync_now(c); /* a burst: our snapshot to everyone */
        if (cluster_records_burst_end(c->records) != UINT64_MAX)
                arm_records_timer(c, start);
        return 0;
}

/* --- setup ------------------------------------------------------------------------ */

/* The first address of an up, non-loopback interface of the family (IPv6:
 * not link-local, which needs a scope that SWIM addresses do not carry);
 * pass 0 only looks at interfaces that can broadcast (IPv4) or multicast
 * (IPv6), i.e. those discovery announces on. */
static bool detect_address(int family, SwimAddr *ret) {
        struct ifaddrs *list = NULL;
        bool found = false;

        if (getifaddrs(&list) < 0)
                return false;
        for (int pass = 0; pass < 2 && !found; pass++)
                for (struct ifaddrs *ifa = list; ifa && !found; ifa = ifa->ifa_next) {
                        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != family)
                                continue;
                        if (!(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
                                continue;
                        if (pass == 0 && !(ifa->ifa_flags & (family == AF_INET ? IFF_BROADCAST : IFF_MULTICAST)))
                                continue;
                        if (family == AF_INET6) {
                                const struct in6_addr *a = &((struct sockaddr_in6 *) ifa->ifa_addr)->sin6_addr;
                                if (IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_V4MAPPED(a))
                                        continue;
                                memcpy(ret->ip, a, 16);
                                ret->family = 6;
                        } else {
                                memcpy(ret->ip, &((struct sockaddr_in *) ifa->ifa_addr)->sin_addr, 4);
                                ret->family = 4;
                        }
                        found = true;
                }
        freeifaddrs(list);
        return found;
}

static int pick_advertise(Cluster *c, const char *advertise) {
        c->self_addr = (SwimAddr) { .port = c->swim_port };
        if (advertise) {
                if (inet_pton(AF_INET, advertise, c->self_addr.ip) == 1) {
                        c->self_addr.family = 4;
                        if (c->self_addr.ip[0] == 0 || c->self_addr.ip[0] >= 224)
                                return log_error_errno(-EINVAL,
                                                       "Cluster advertise address %s is not one other nodes can "
                                                       "send to (unspecified, multicast or broadcast).",
                                                       advertise);
                } else if (inet_pton(AF_INET6, advertise, c->self_addr.ip) == 1) {
                        struct in6_addr a;
                        memcpy(&a, c->self_addr.ip, 16);
                        c->self_addr.family = 6;
                        if (IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_MULTICAST(&a) || IN6_IS_ADDR_LINKLOCAL(&a))
                                return log_error_errno(-EINVAL,
                                                       "Cluster advertise address %s is not one other nodes can "
                                                       "send to (unspecified, multicast, or link-local, which needs an "
                                                       "interface).",
                                                       advertise);
                } else
                        return log_error_errno(-EINVAL, "Cluster address '%s' is not an IP address.", advertise);
                if (c->family == AF_INET && c->self_addr.family != 4)
                        return log_error_errno(-EINVAL,
                                               "Cluster address %s is IPv6 but the cluster binds IPv4 "
                                               "(set BindAddress=:: for an IPv6 cluster).",
                                               advertise);
                return 0;
        }
        /* An IPv6 cluster (dual-stack when bound to ::) advertises IPv6 first. */
        if (c->family == AF_INET6 && detect_address(AF_INET6, &c->self_addr))
                return 0;
        if (detect_address(AF_INET, &c->self_addr))
                return 0;
        if (c->family == AF_INET6) {
                log_warning("No non-loopback address found: the cluster advertises ::1.");
                c->self_addr.family = 6;
                c->self_addr.ip[15] = 1;
        } else {
                log_warning(
                        "No non-loopback IPv4 address found: the cluster advertises 127.0.0.1 "
                        "(set BindAddress=:: for an IPv6 cluster).");
                c->self_addr.family = 4;
                c->self_addr.ip[0] = 127;
                c->self_addr.ip[3] = 1;
        }
        return 0;
}

static int bind_socket(int family, int type, const struct sockaddr_storage *sa, socklen_t salen, bool broadcast,
                       const char *what) {
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Failed to create %s socket: %m", what);
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
                return log_error_errno(negative_errno(), "Failed to allow broadcast on %s socket: %m", what);
        if (bind(fd, (const struct sockaddr *) sa, salen) < 0)
                return log_error_errno(negative_errno(), "Failed to bind %s socket: %m", what);
        if (type == SOCK_STREAM && listen(fd, 64) < 0)
                return log_error_errno(negative_errno(), "Failed to listen on %s socket: %m", what);
        return TAKE_FD(fd);
}

static int load_keys(Cluster *c, const ClusterOptions *o) {
        g_autofree char *contents = NULL;
        const char *src = o->key, *error = NULL;
        g_autoptr(GError) err = NULL;
        int n;

        if (!src && o->key_file) {
                if (!g_file_get_contents(o->key_file, &contents, NULL, &err))
                        return log_error_errno(-ENOENT, "Failed to read cluster key file %s: %s", o->key_file,
                                               err->message);
                src = contents;
        }
        if (isempty(src)) {
                log_warning(
                        "No cluster key (%s or a key file): the cluster is open. Anyone on the network can "
                        "join it and publish names.",
                        CLUSTER_KEY_ENV);
                return 0;
        }
        n = cluster_parse_keys(src, &c->keys, &error);
        if (contents)
                sodium_memzero(contents, strlen(contents));
        if (n < 0)
                return log_error_errno(n, "Invalid cluster key%s%s: %s", o->key ? "" : " in ",
                                       o->key ? "" : o->key_file, strna(error));
        c->n_keys = (size_t) n;
        return 0;
}

static int load_node_keys(Cluster *c, const ClusterOptions *o) {
        g_autofree char *error = NULL;
        int r;

        r = cluster_keys_new(&c->node_keys, o->state_directory, &error);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the cluster signing key: %s", error);
        if (r > 0)
                log_warning(
                        "Cluster signing key: %s; after a restart the other nodes refuse this node until "
                        "they forget its old key.",
                        error);
        else if (!o->state_directory)
                log_warning(
                        "No state directory: the cluster signing key lives in memory only; after a restart "
                        "the other nodes refuse this node until they forget its old key.");
        g_clear_pointer(&error, g_free);
        r = cluster_keys_set_trusted(c->node_keys, o->trusted_nodes, &error);
        if (r < 0)
                return log_error_errno(r, "Invalid cluster configuration: %s", error);
        return 0;
}

static void conn_destroy(gpointer p) {
        conn_close(p);
        conn_unref(p);
}

/* The protocol timings: memberlist's LAN profile, then what the options set. */
static void setup_timings(Cluster *c, const ClusterOptions *o) {
        SwimConfig *sc = &c->swim_config;

        swim_config_lan(sc);
        if (o->probe_interval_usec > 0)
                sc->probe_interval_usec = o->probe_interval_usec;
        if (o->probe_timeout_usec > 0)
                sc->probe_timeout_usec = o->probe_timeout_usec;
        if (sc->probe_timeout_usec >= sc->probe_interval_usec)
                sc->probe_timeout_usec = sc->probe_interval_usec / 2;
        /* Gossip keeps its ratio to the probe period (memberlist's LAN: 5 rounds
         * per probe) when only the probe period is changed, or dissemination
         * and refutation would fall behind a shortened suspicion timeout. */
        sc->gossip_interval_usec =
                o->gossip_interval_usec
                        ?: MAX(MIN(sc->gossip_interval_usec, sc->probe_interval_usec / 5), 10 * USEC_PER_MSEC);
        if (o->indirect_checks >= 0)
                sc->indirect_checks = (unsigned) o->indirect_checks;
        if (o->suspicion_mult > 0)
                sc->suspicion_mult = o->suspicion_mult;
        /* 6 rather than memberlist's 4: with distinct targets 4 delivers as
         * well as 6 used to in small clusters, but at 50 nodes it leaves
         * about 1 delivery in 10,000 (3 in 9,500 on real nodes) to push-pull,
         * and a record snapshot comes only from its origin, so the repair can
         * take minutes; 6 missed none of 9,800 (docs/cluster-protocol.md). */
        sc->retransmit_mult = o->retransmit_mult ?: CLUSTER_RETRANSMIT_MULT_DEFAULT;
        c->push_pull_interval_usec = o->push_pull_interval_usec ?: CLUSTER_PUSH_PULL_INTERVAL_DEFAULT_USEC;
        sc->push_pull_interval_usec = c->push_pull_interval_usec;
        c->discovery_interval_usec = o->discovery_interval_usec ?: CLUSTER_DISCOVERY_INTERVAL_DEFAULT_USEC;
        c->dead_grace_usec = o->dead_grace_usec ?: CLUSTER_DEAD_GRACE_DEFAULT_USEC;
        c->max_members = o->max_members ?: sc->members_max;
        c->max_records = o->max_records_per_node ?: CLUSTER_MAX_RECORDS_DEFAULT;
        sc->members_max = c->max_members;
        sc->relay_user = false; /* an update goes on once we have taken it */
}

/* The replicated records, versioned from an epoch above every earlier start's. */
static int setup_records(Cluster *c, Store *store, const ClusterOptions *o) {
        uint64_t clock = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
        uint32_t epoch;
        int r;

        r = cluster_keys_next_epoch(c->node_keys, (uint32_t) MIN(clock, (uint64_t) UINT32_MAX - 2), &epoch);
        if (r < 0)
                log_warning_errno(r, "Failed to keep the record epoch in %s/%s, using the clock's: %m",
                                  o->state_directory, CLUSTER_EPOCH_FILE);
        r = cluster_records_new(&c->records, store, c->node_id, c->node_keys, CLUSTER_VERSION(epoch, 0));
        if (r < 0)
                return log_error_errno(r, "Failed to set up cluster records: %m");
        /* Older nodes sign nothing: with a cluster key, what they send
         * themselves is taken, as long as we hold no key of theirs. */
        cluster_records_set_accept_unsigned(c->records, c->n_keys > 0 && !cluster_keys_strict(c->node_keys));
        /* Until an older node shows up, nobody could believe an unsigned
         * claim in our name: not worth a refutation each. */
        cluster_records_set_refute_unsigned(c->records, false);
        return 0;
}

/* The address SWIM and push-pull bind to: IPv4 unless the bind address is an
 * IPv6 literal. Also picks the address advertised to the other nodes. */
static int setup_address(Cluster *c, const ClusterOptions *o, struct sockaddr_storage *ret_sa, socklen_t *ret_salen) {
        struct sockaddr_storage sa = {};
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
        struct sockaddr_in *in = (struct sockaddr_in *) &sa;
        const char *advertise;

        c->family = AF_INET;
        c->bind4.s_addr = htonl(INADDR_ANY);
        c->bind6 = in6addr_any;
        if (o->bind_address && inet_pton(AF_INET6, o->bind_address, &in6->sin6_addr) == 1) {
                c->family = AF_INET6;
                c->bind6 = in6->sin6_addr;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(c->swim_port);
                *ret_salen = sizeof *in6;
        } else {
                if (o->bind_address && inet_pton(AF_INET, o->bind_address, &c->bind4) != 1)
                        return log_error_errno(-EINVAL, "Cluster bind address '%s' is not an IP address.",
                                               o->bind_address);
                in->sin_family = AF_INET;
                in->sin_port = htons(c->swim_port);
                in->sin_addr = c->bind4;
                *ret_salen = sizeof *in;
        }
        *ret_sa = sa;

        /* A specific bind address is what the others reach us at; a
         * wildcard one (0.0.0.0, ::) says nothing about that. */
        advertise = o->advertise_address;
        if (!advertise &&
            (c->family == AF_INET ? c->bind4.s_addr != htonl(INADDR_ANY) : !IN6_IS_ADDR_UNSPECIFIED(&c->bind6)))
                advertise = o->bind_address;
        return pick_advertise(c, advertise);
}

/* SWIM on UDP and push-pull on TCP, same port; discovery on its own. */
static int setup_sockets(Cluster *c, const struct sockaddr_storage *sa, socklen_t salen) {
        int r;

        r = bind_socket(c->family, SOCK_DGRAM, sa, salen, false, "SWIM UDP");
        if (r < 0)
                return r;
        c->udp_fd = r;
        r = bind_socket(c->family, SOCK_STREAM, sa, salen, false, "push-pull TCP");
        if (r < 0)
                return r;
        c->tcp_fd = r;
        if (c->discovery && c->family == AF_INET) {
                struct sockaddr_storage dsa = {};
                struct sockaddr_in *din = (struct sockaddr_in *) &dsa;
                din->sin_family = AF_INET;
                din->sin_port = htons(c->discovery_port);
                din->sin_addr.s_addr = htonl(INADDR_ANY); /* broadcasts arrive only on a wildcard socket */
                r = bind_socket(AF_INET, SOCK_DGRAM, &dsa, sizeof *din, true, "discovery UDP");
                if (r < 0)
                        return r;
                c->disc_fd = r;
        } else if (c->discovery) {
                /* Multicast arrives only on a wildcard socket too; IPv6 only,
                 * the group is joined per interface as announcements go out. */
                struct sockaddr_storage dsa = {};
                struct sockaddr_in6 *din6 = (struct sockaddr_in6 *) &dsa;
                din6->sin6_family = AF_INET6;
                din6->sin6_port = htons(c->discovery_port);
                din6->sin6_addr = in6addr_any;
                r = bind_socket(AF_INET6, SOCK_DGRAM, &dsa, sizeof *din6, false, "discovery UDP");
                if (r < 0)
                        return r;
                c->disc_fd = r;
        }
        return 0;
}

/* The event sources own the sockets from here on. */
static int setup_event_sources(Cluster *c, uint64_t now) {
        sd_event *e = c->event;
        int r;

        r = sd_event_add_io(e, &c->udp_source, c->udp_fd, EPOLLIN, on_udp, c);
        if (r >= 0)
                r = sd_event_add_io(e, &c->tcp_source, c->tcp_fd, EPOLLIN, on_tcp_accept, c);
        if (r >= 0 && c->disc_fd >= 0)
                r = sd_event_add_io(e, &c->disc_source, c->disc_fd, EPOLLIN, on_discovery, c);
        if (r >= 0)
                r = sd_event_add_time(e, &c->swim_timer, CLOCK_MONOTONIC, now, USEC_PER_MSEC, on_swim_timer, c);
        if (r >= 0)
                r = sd_event_add_time(e, &c->records_timer, CLOCK_MONOTONIC, now, 10 * USEC_PER_MSEC, on_records_timer,
                                      c);
        if (r >= 0)
                r = sd_event_add_time(e, &c->push_pull_timer, CLOCK_MONOTONIC,
                                      now + jitter(c->push_pull_interval_usec, 10), USEC_PER_SEC / 10,
                                      on_push_pull_timer, c);
        if (r >= 0 && c->disc_fd >= 0)
                r = sd_event_add_time(e, &c->discovery_timer, CLOCK_MONOTONIC, now, 10 * USEC_PER_MSEC,
                                      on_discovery_timer, c);
        if (r >= 0 && c->n_seeds > 0)
                r = sd_event_add_time(e, &c->join_timer, CLOCK_MONOTONIC, now, 10 * USEC_PER_MSEC, on_join_timer, c);
        if (r >= 0)
                r = sd_event_add_defer(e, &c->flush_source, on_flush, c);
        if (r >= 0)
                r = sd_event_add_defer(e, &c->merge_source, on_merge, c);
        if (r >= 0)
                r = sd_event_add_time(e, &c->pins_timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_SEC / 10, on_pins_timer,
                                      c);
        if (r >= 0)
                r = sd_event_add_time(e, &c->sync_timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_SEC / 20, on_sync_timer,
                                      c);
        if (r < 0)
                return log_error_errno(r, "Failed to set up cluster event sources: %m");
        (void) sd_event_source_set_io_fd_own(c->udp_source, true);
        (void) sd_event_source_set_io_fd_own(c->tcp_source, true);
        (void) sd_event_source_set_description(c->udp_source, "cluster-swim-udp");
        (void) sd_event_source_set_description(c->tcp_source, "cluster-push-pull-listen");
        (void) sd_event_source_set_description(c->swim_timer, "cluster-swim-timer");
        (void) sd_event_source_set_description(c->records_timer, "cluster-records-timer");
        (void) sd_event_source_set_description(c->push_pull_timer, "cluster-push-pull-timer");
        (void) sd_event_source_set_description(c->flush_source, "cluster-record-flush");
        (void) sd_event_source_set_description(c->merge_source, "cluster-snapshot-merge");
        (void) sd_event_source_set_description(c->pins_timer, "cluster-pins-save");
        (void) sd_event_source_set_description(c->sync_timer, "cluster-first-exchange-retry");
        (void) sd_event_source_set_enabled(c->sync_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->merge_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->pins_timer, SD_EVENT_OFF);
        /* Batches of a large peer's records go in when nothing else waits. */
        (void) sd_event_source_set_priority(c->merge_source, SD_EVENT_PRIORITY_IDLE);
        if (c->disc_source) {
                (void) sd_event_source_set_io_fd_own(c->disc_source, true);
                (void) sd_event_source_set_description(c->disc_source, "cluster-discovery-udp");
                (void) sd_event_source_set_description(c->discovery_timer, "cluster-discovery-timer");
        }
        if (c->join_timer)
                (void) sd_event_source_set_description(c->join_timer, "cluster-join-timer");
        (void) sd_event_source_set_enabled(c->push_pull_timer, SD_EVENT_ONESHOT);
        return 0;
}

int cluster_new(Cluster **ret, sd_event *e, Store *store, const ClusterOptions *o) {
        _cleanup_(cluster_freep) Cluster *c = NULL;
        struct sockaddr_storage sa = {};
        socklen_t salen = 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int r;

        if (!o->node_id || !swim_id_is_valid(o->node_id))
                return log_error_errno(-EINVAL, "Invalid cluster node id '%s': use 1-64 of A-Z a-z 0-9 . _ -",
                                       strna(o->node_id));
        if (sodium_init() < 0)
                return log_error_errno(-EIO, "Failed to initialise libsodium.");

        c = g_new0(Cluster, 1);
        c->event = sd_event_ref(e);
        c->store = store;
        c->node_id = g_strdup(o->node_id);
        c->cluster_name = g_strdup(o->cluster_name ?: "joyride");
        c->udp_fd = c->tcp_fd = c->disc_fd = -EBADF;
        c->swim_port = o->swim_port ?: 8890;
        c->discovery_port = o->discovery_port ?: 8889;
        c->resolving = g_cancellable_new();
        c->conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, conn_destroy, NULL);
        c->sync_retry = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        c->joined = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        c->v1_peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        c->key_warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        c->key_refused = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        r = load_keys(c, o);
        if (r < 0)
                return r;
        r = load_node_keys(c, o);
        if (r < 0)
                return r;
        r = setup_address(c, o, &sa, &salen);
        if (r < 0)
                return r;
        r = parse_seeds(c, o->join);
        if (r < 0)
                return r;
        /* A daemon bound to loopback never broadcasts: discovery would leave
         * through the other interfaces. */
        c->discovery = o->broadcast_discovery && (c->family == AF_INET ? (ntohl(c->bind4.s_addr) >> 24) != 127
                                                                       : !IN6_IS_ADDR_LOOPBACK(&c->bind6));
        setup_timings(c, o);

        randombytes_buf(&c->rng, sizeof c->rng);
        r = swim_new(&c->swim, &c->swim_config, c->node_id, &c->self_addr, c->rng, now);
        if (r < 0)
                return log_error_errno(r, "Failed to set up SWIM: %m");
        r = setup_records(c, store, o);
        if (r < 0)
                return r;
        cluster_records_set_dead_grace(c->records, c->dead_grace_usec);
        cluster_records_set_limits(c->records, c->max_members, c->max_records);
        /* A tombstone matters while an older update can still arrive: gossip
         * lasts seconds, and a push-pull from the origin supersedes it. */
        cluster_records_set_tombstone_lifetime(c->records, 2 * c->push_pull_interval_usec + c->dead_grace_usec);

        r = setup_sockets(c, &sa, salen);
        if (r < 0)
                return r;
        r = setup_event_sources(c, now);
        if (r < 0)
                return r;
        r = worker_new(&c->worker, e, "cluster-work");
        if (r < 0)
                return log_error_errno(r, "Failed to start the cluster's worker thread: %m");
        /* A thread of its own: a burst of signing must not hold up the
         * decoding of a push-pull frame, nor the reverse. */
        r = worker_new(&c->signer, e, "cluster-sign");
        if (r < 0)
                return log_error_errno(r, "Failed to start the cluster's signing thread: %m");

        /* What the local sources hold already goes out as our first updates. */
        store_subscribe(store, on_store_change, c);
        cluster_records_local_mark_all(c->records);
        (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);

        char self[INET6_ADDRSTRLEN + 8], disc[96] = ", no discovery";
        swim_addr_format(&c->self_addr, self, sizeof self);
        if (c->discovery && c->family == AF_INET)
                snprintf(disc, sizeof disc, ", discovery by broadcast on port %u", c->discovery_port);
        else if (c->discovery)
                snprintf(disc, sizeof disc, ", discovery by multicast to %s port %u", DISCOVERY_GROUP6,
                         c->discovery_port);
        update_member_counts(c);
        log_info(
                "Cluster node %s on %s (SWIM UDP and push-pull TCP port %u%s), %s, %zu key%s; "
                "probe every %" PRIu64 " ms, dead grace %" PRIu64 " ms.",
                c->node_id, self, c->swim_port, disc, c->n_keys > 0 ? "encrypted" : "OPEN (no key)", c->n_keys,
                c->n_keys == 1 ? "" : "s", c->swim_config.probe_interval_usec / USEC_PER_MSEC,
                c->dead_grace_usec / USEC_PER_MSEC);
        log_info("Cluster signing key of %s: %s (%s); other nodes' keys: %s.", c->node_id,
                 cluster_keys_public_base64(c->node_keys),
                 cluster_keys_persistent(c->node_keys) ? "in " CLUSTER_KEY_FILE : "in memory only",
                 cluster_keys_strict(c->node_keys) ? "only those in TrustedNodes=" : "pinned on first contact");
        *ret = TAKE_PTR(c);
        return 0;
}

Cluster *cluster_free(Cluster *c) {
        if (!c)
                return NULL;

        /* Updates being signed are published (sign_job_discard()), then what
         * is still marked is flushed here: none is lost, none goes twice,
         * and all of them go out before our leave. */
        c->signer = worker_free(c->signer);
        if (c->records && c->swim)
                (void) cluster_records_local_flush(c->records, now_usec(CLOCK_MONOTONIC), emit_update, c);
        if (c->swim && c->udp_fd >= 0) {
                /* Graceful leave: LEFT to a few members directly, then gossip it
                 * for a few rounds so that it reaches everyone without waiting
                 * for the failure detector. */
                uint64_t t = now_usec(CLOCK_MONOTONIC);
                swim_leave(c->swim, t);
                send_swim_packets(c);
                for (unsigned i = 0; i < 3; i++) {
                        uint64_t step = MIN(c->swim_config.gossip_interval_usec, 200 * USEC_PER_MSEC);
                        (void) usleep((useconds_t) step);
                        swim_tick(c->swim, now_usec(CLOCK_MONOTONIC));
                        send_swim_packets(c);
                }
                log_info("Left the cluster (sent %" PRIu64 ", received %" PRIu64 ", rejected %" PRIu64 " packets).",
                         c->counters.packets_sent, c->counters.packets_received, c->counters.packets_rejected);
        }
        /* Look-ups still in flight end without touching the cluster. */
        if (c->resolving) {
                g_cancellable_cancel(c->resolving);
                g_object_unref(c->resolving);
        }
        if (c->store)
                store_unsubscribe(c->store, on_store_change, c);
        if (c->conns)
                g_hash_table_destroy(c->conns);
        /* Jobs still on the worker run to their end and find their
         * connections closed; they read the keys, freed below. */
        c->worker = worker_free(c->worker);
        if (c->joined)
                g_hash_table_destroy(c->joined);
        if (c->v1_peers)
                g_hash_table_destroy(c->v1_peers);
        if (c->key_warned)
                g_hash_table_destroy(c->key_warned);
        if (c->key_refused)
                g_hash_table_destroy(c->key_refused);
        sd_event_source_disable_unref(c->udp_source);
        sd_event_source_disable_unref(c->tcp_source);
        sd_event_source_disable_unref(c->disc_source);
        if (!c->udp_source)
                safe_close(c->udp_fd);
        if (!c->tcp_source)
                safe_close(c->tcp_fd);
        if (!c->disc_source)
                safe_close(c->disc_fd);
        sd_event_source_disable_unref(c->swim_timer);
        sd_event_source_disable_unref(c->records_timer);
        sd_event_source_disable_unref(c->discovery_timer);
        sd_event_source_disable_unref(c->join_timer);
        sd_event_source_disable_unref(c->push_pull_timer);
        sd_event_source_disable_unref(c->flush_source);
        sd_event_source_disable_unref(c->merge_source);
        sd_event_source_disable_unref(c->pins_timer);
        sd_event_source_disable_unref(c->sync_timer);
        if (c->sync_retry)
                g_hash_table_unref(c->sync_retry);
        if (c->node_keys && cluster_keys_dirty(c->node_keys))
                (void) cluster_keys_save(c->node_keys);
        /* Peer records are this node's view of others: not served once we are out. */
        if (c->records)
                cluster_records_withdraw_all(c->records);
        cluster_records_free(c->records);
        cluster_keys_free(c->node_keys);
        swim_free(c->swim);
        if (c->keys) {
                sodium_memzero(c->keys, c->n_keys * sizeof c->keys[0]);
                g_free(c->keys);
        }
        for (size_t i = 0; i < c->n_seeds; i++) {
                g_free(c->seeds[i].spec);
                g_free(c->seeds[i].host);
        }
        g_free(c->seeds);
        g_free(c->node_id);
        g_free(c->cluster_name);
        sd_event_unref(c->event);
        g_free(c);
        return NULL;
}

size_t cluster_get_members(Cluster *c, ClusterMember **ret) {
        const SwimMember *ms;
        size_t n = swim_members(c->swim, &ms);
        uint64_t mono = now_usec(CLOCK_MONOTONIC), real = now_usec(CLOCK_REALTIME);
        ClusterMember *out = calloc(MAX(n, 1u), sizeof *out);

        if (!out) {
                *ret = NULL;
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                member_to_public(c, &ms[i], i == 0, mono, real, &out[i]);
        *ret = out;
        return n;
}

const ClusterCounters *cluster_get_counters(const Cluster *c) {
        return &c->counters;
}

void cluster_set_member_callback(Cluster *c, ClusterMemberCallback cb, void *userdata) {
        c->member_cb = cb;
        c->member_userdata = userdata;
}

const char *cluster_node_id(const Cluster *c) {
        return c->node_id;
}
