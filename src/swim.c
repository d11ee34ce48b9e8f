/* SPDX-License-Identifier: MIT */
/* SWIM + Lifeguard as a pure state machine. See swim.h.
 *
 * Wire format (all integers big-endian):
 *   packet  := "JR" version:u8 sender:str message*
 *   message := type:u8 length:u16 body
 *   str     := length:u8 bytes (ids: what swim_id_is_valid() accepts)
 *   addr    := family:u8 ip:16 port:u16
 *   PING     seq:u32 target:str
 *   ACK      seq:u32
 *   PING_REQ seq:u32 target:str addr
 *   ALIVE    incarnation:u32 id:str addr
 *   SUSPECT  incarnation:u32 id:str from:str
 *   DEAD     incarnation:u32 id:str from:str     (from == id: a graceful leave)
 *   USER     origin:str key:str data:u16-length bytes
 *   SYNC_REQ (empty): asks for the receiver's whole member list
 * Unknown message types are skipped (forward compatibility); anything
 * malformed rejects the whole packet before any of it is applied: a packet
 * is decoded once into a list of messages, which are then applied. */

#include <glib.h>
#include <math.h>
#include <stdio.h>

#include "swim.h"
#include "wire.h"

#define SWIM_MAGIC0 'J'
#define SWIM_MAGIC1 'R'
#define SWIM_VERSION 1
#define SEEN_MAX 4096          /* user broadcasts remembered for dedup */
#define RELAY_TIMEOUT_FACTOR 2 /* relays wait this many probe timeouts */
#define TOLD_MAX 16            /* members a broadcast is known to have reached, remembered */
#define PASS_OVER_MAX 32       /* broadcasts a packet may pass over (too big, or already told) */
#define EAGER_GOSSIP_DIVISOR 4 /* news not sent yet goes out this fraction of a gossip interval after the last round */

enum {
        MSG_PING = 1,
        MSG_ACK = 2,
        MSG_PING_REQ = 3,
        MSG_ALIVE = 4,
        MSG_SUSPECT = 5,
        MSG_DEAD = 6,
        MSG_USER = 7,
        MSG_SYNC_REQ = 8,
};

typedef struct Member {
        SwimMember pub;
        uint64_t suspect_start;
        uint64_t suspect_deadline;
        unsigned confirmations;
        char suspecter[SWIM_ID_MAX + 1]; /* whose suspicion started ours: not a confirmation */
        char confirmers[8][SWIM_ID_MAX + 1];
} Member;

typedef struct Broadcast {
        GList *link; /* in Swim.broadcasts */
        char *key;
        uint8_t *msg; /* one encoded message: type, length, body */
        size_t size;
        unsigned transmits;
        /* Who has it already (the member we heard it from, those we sent it
         * to): a transmission is not spent on them while someone else is
         * left, so the retransmit limit goes to members that lack it. */
        SwimAddr told[TOLD_MAX];
        unsigned n_told;
} Broadcast;

typedef struct OutPacket {
        SwimAddr to;
        size_t size;
        uint8_t data[SWIM_PACKET_MAX];
} OutPacket;

typedef struct Relay {
        uint32_t our_seq, their_seq;
        SwimAddr requester;
        uint64_t expires;
} Relay;

struct Swim {
        SwimConfig cfg;
        Member self;
        GHashTable *by_id;          /* id -> Member* (not self) */
        GPtrArray *members;         /* Member*, owns */
        GQueue broadcasts;          /* Broadcast*, least sent first (new ones at the head) */
        GHashTable *broadcast_keys; /* key -> Broadcast* in the queue */
        GQueue out;                 /* OutPacket* */
        GQueue events;              /* SwimEvent* */
        GHashTable *seen;           /* user broadcast digests */
        GQueue seen_order;
        GArray *relays;
        const SwimAddr *rx_from; /* sender of the packet being applied, else NULL */

        uint64_t rng;
        uint32_t seq;
        unsigned awareness;
        bool leaving;

        /* the probe in flight */
        bool probing;
        bool probe_acked;
        bool probe_indirect_sent;
        uint32_t probe_seq;
        char probe_target[SWIM_ID_MAX + 1];
        uint64_t probe_timeout_at;
        uint64_t probe_deadline;

        uint64_t next_probe_at;
        uint64_t next_gossip_at;
        uint64_t last_gossip_at;
        uint64_t next_push_pull_at;
        GPtrArray *probe_order; /* ids (owned strings), shuffled */
        guint probe_index;

        GArray *snapshot;         /* SwimMember, rebuilt by swim_members() */
        uint64_t member_deadline; /* earliest suspicion timeout or reclaim; refreshed by swim_tick() */
        unsigned live;            /* cached n_live(); valid unless live_dirty */
        bool live_dirty;

        SwimCounters counters;
};

/* --- small helpers ------------------------------------------------------- */

void swim_config_lan(SwimConfig *ret) {
        *ret = (SwimConfig) {
                .probe_interval_usec = 1000 * USEC_PER_MSEC,
                .probe_timeout_usec = 500 * USEC_PER_MSEC,
                .indirect_checks = 3,
                .suspicion_mult = 4,
                .suspicion_max_mult = 6,
                .retransmit_mult = 4,
                .awareness_max = 8,
                .gossip_interval_usec = 200 * USEC_PER_MSEC,
                .gossip_nodes = 3,
                .dead_reclaim_usec = 30 * USEC_PER_SEC,
                .push_pull_interval_usec = 30 * USEC_PER_SEC,
                .members_max = 1000,
                .relay_user = true,
        };
}

const char *swim_state_to_string(SwimState st) {
        switch (st) {
        case SWIM_ALIVE:
                return "alive";
        case SWIM_SUSPECT:
                return "suspect";
        case SWIM_DEAD:
                return "dead";
        case SWIM_LEFT:
                return "left";
        }
        return "unknown";
}

bool swim_addr_equal(const SwimAddr *a, const SwimAddr *b) {
        return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

bool swim_id_is_valid(const char *id) {
        size_t l;

        if (!id)
                return false;
        l = strlen(id);
        if (l < 1 || l > SWIM_ID_MAX)
                return false;
        for (const char *p = id; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("._-", *p))
                        return false;
        return true;
}

static uint64_t rnd(Swim *s) {
        /* xorshift64*: the caller's seed makes a simulation repeatable. */
        s->rng ^= s->rng >> 12;
        s->rng ^= s->rng << 25;
        s->rng ^= s->rng >> 27;
        return s->rng * 2685821657736338717ULL;
}

static unsigned n_live(const Swim *s) {
        /* Cached: it is asked for on every packet. The cache is not part of
         * the observable state, so const callers may refresh it. */
        Swim *w = (Swim *) s;
        if (w->live_dirty) {
                unsigned n = 1;
                for (guint i = 0; i < s->members->len; i++) {
                        const Member *m = s->members->pdata[i];
                        if (m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT)
                                n++;
                }
                w->live = n;
                w->live_dirty = false;
        }
        return w->live;
}

unsigned swim_alive_count(const Swim *s) {
        return n_live(s);
}

unsigned swim_awareness(const Swim *s) {
        return s->awareness;
}

const SwimCounters *swim_get_counters(const Swim *s) {
        return &s->counters;
}

static unsigned retransmit_limit(const Swim *s) {
        unsigned n = n_live(s);
        return s->cfg.retransmit_mult * (unsigned) ceil(log10((double) n + 1));
}

static uint64_t scaled(const Swim *s, uint64_t usec) {
        return usec * (s->awareness + 1);
}

static void awareness_adjust(Swim *s, int delta) {
        int a = (int) s->awareness + delta;
        s->awareness = (unsigned) CLAMP(a, 0, (int) s->cfg.awareness_max - 1);
}

/* Independent confirmations that bring a suspicion to its shortest timeout
 * (memberlist: suspicion multiplier - 2, none in a cluster too small to have them). */
static unsigned suspicion_confirmations(const Swim *s) {
        unsigned k = s->cfg.suspicion_mult > 2 ? s->cfg.suspicion_mult - 2 : 0;
        return n_live(s) < k + 2 ? 0 : MIN(k, (unsigned) ELEMENTSOF(((Member *) NULL)->confirmers));
}

/* memberlist's suspicion timeout: starts at max and shrinks towards min as
 * independent confirmations arrive (log-scaled). */
static uint64_t suspicion_timeout(const Swim *s, unsigned confirmations) {
        unsigned n = n_live(s);
        double node_scale = MAX(1.0, log10(MAX(1.0, (double) n)));
        double min = s->cfg.suspicion_mult * node_scale * (double) s->cfg.probe_interval_usec;
        double max = s->cfg.suspicion_max_mult * min;
        unsigned k = suspicion_confirmations(s);
        double t;

        if (k == 0)
                return (uint64_t) min;
        t = max - (max - min) * log((double) confirmations + 1) / log((double) k + 1);
        return (uint64_t) MAX(min, t);
}

/* --- encoding ------------------------------------------------------------ */

/* Strings are a u8 length and the bytes; longer ones are cut at 255. */
static void write_str(Wire *w, const char *str) {
        size_t n = MIN(strlen(str), 255u);

        wire_write_u8(w, (uint8_t) n);
        wire_write(w, str, n);
}

static void write_addr(Wire *w, const SwimAddr *a) {
        wire_write_u8(w, a->family);
        wire_write(w, a->ip, 16);
        wire_write_u16(w, a->port);
}

/* A node id: what swim_id_is_valid() accepts, else the message is malformed. */
static void read_id(Wire *r, char out[static SWIM_ID_MAX + 1]) {
        uint8_t n = wire_read_u8(r);
        const uint8_t *p = n <= SWIM_ID_MAX ? wire_read_ptr(r, n) : NULL;

        out[0] = 0;
        if (!p) {
                wire_fail(r, -EBADMSG);
                return;
        }
        memcpy(out, p, n);
        out[n] = 0;
        if (!swim_id_is_valid(out)) {
                out[0] = 0;
                wire_fail(r, -EBADMSG);
        }
}

static void read_addr(Wire *r, SwimAddr *a) {
        a->family = wire_read_u8(r);
        wire_read(r, a->ip, 16);
        a->port = wire_read_u16(r);
        if (a->family != 4 && a->family != 6)
                wire_fail(r, -EBADMSG);
}

/* A message is its type, the length of its body, and the body: start one
 * with msg_begin(), write the body, and msg_end() fills in the length. */
static size_t msg_begin(Wire *w, uint8_t type) {
        wire_write_u8(w, type);
        wire_write_u16(w, 0);
        return wire_offset(w);
}

static void msg_end(Wire *w, size_t body_start) {
        size_t n = wire_offset(w) - body_start;

        if (n > UINT16_MAX)
                wire_fail(w, -EMSGSIZE);
        if (wire_ok(w))
                wire_put_u16(w->buf + body_start - 2, (uint16_t) n);
}

/* Writes one member's state as an ALIVE, SUSPECT or DEAD message. */
static void write_member_state(Wire *w, const SwimMember *m, const char *from) {
        uint8_t type = m->state == SWIM_ALIVE ? MSG_ALIVE : m->state == SWIM_SUSPECT ? MSG_SUSPECT : MSG_DEAD;
        size_t body = msg_begin(w, type);

        wire_write_u32(w, m->incarnation);
        write_str(w, m->id);
        if (m->state == SWIM_ALIVE)
                write_addr(w, &m->addr);
        else
                write_str(w, m->state == SWIM_LEFT ? m->id : from);
        msg_end(w, body);
}

/* The same into buf. Returns its size, or 0 when it does not fit. */
static size_t encode_member_state(const SwimMember *m, const char *from, uint8_t *buf, size_t size) {
        Wire w = wire_init(buf, size);

        write_member_state(&w, m, from);
        return wire_ok(&w) ? wire_offset(&w) : 0;
}

/* --- broadcasts and packets --------------------------------------------- */

static void broadcast_free(gpointer p) {
        Broadcast *b = p;
        g_free(b->key);
        g_free(b->msg);
        g_free(b);
}

static void broadcast_drop(Swim *s, Broadcast *b) {
        g_hash_table_remove(s->broadcast_keys, b->key);
        g_queue_delete_link(&s->broadcasts, b->link);
        broadcast_free(b);
}

static void queue_broadcast(Swim *s, const char *key, uint8_t *msg, size_t size) {
        /* A newer message about the same thing replaces the older one. */
        Broadcast *old = g_hash_table_lookup(s->broadcast_keys, key);
        if (old)
                broadcast_drop(s, old);

        Broadcast *b = g_new0(Broadcast, 1);
        b->key = g_strdup(key);
        b->msg = msg;
        b->size = size;
        /* Relaying what a packet said: its sender has it. */
        if (s->rx_from)
                b->told[b->n_told++] = *s->rx_from;
        g_queue_push_head(&s->broadcasts, b);
        b->link = s->broadcasts.head;
        g_hash_table_insert(s->broadcast_keys, b->key, b);
}

static void broadcast_member(Swim *s, const SwimMember *m, const char *from) {
        uint8_t buf[300];
        size_t n = encode_member_state(m, from, buf, sizeof buf);
        char key[SWIM_ID_MAX + 3];

        snprintf(key, sizeof key, "m:%s", m->id);
        queue_broadcast(s, key, g_memdup2(buf, n), n);
}

static void packet_start(Swim *s, Wire *w, OutPacket *p) {
        *w = wire_init(p->data, SWIM_PACKET_MAX);
        wire_write_u8(w, SWIM_MAGIC0);
        wire_write_u8(w, SWIM_MAGIC1);
        wire_write_u8(w, SWIM_VERSION);
        write_str(w, s->self.pub.id);
}

static bool broadcast_told(const Broadcast *b, const SwimAddr *to) {
        for (unsigned i = 0; i < b->n_told; i++)
                if (swim_addr_equal(&b->told[i], to))
                        return true;
        return false;
}

/* Fills the rest of a packet to `to` with the least-sent broadcasts. The
 * queue keeps them roughly in transmit order without sorting: new ones
 * enter at the head, and one that was sent moves to the tail. A broadcast
 * skips a member that has it already while some live member may not:
 * memberlist spends transmissions on such repeats, and with its multiplier
 * of 4 that leaves a member of a small cluster without an update now and
 * then (tests/test-swim.c measures it). */
static void piggyback(Swim *s, Wire *w, const SwimAddr *to) {
        unsigned limit = retransmit_limit(s), others = n_live(s) - 1, passed = 0;
        GQueue sent = G_QUEUE_INIT;

        for (GList *l = s->broadcasts.head, *next; l && passed < PASS_OVER_MAX; l = next) {
                Broadcast *b = l->data;
                bool told = broadcast_told(b, to);
                next = l->next;
                if (b->size > wire_available(w) || (told && b->n_told < others)) {
                        passed++;
                        continue;
                }
                wire_write(w, b->msg, b->size);
                if (!told && b->n_told < TOLD_MAX)
                        b->told[b->n_told++] = *to;
                if (++b->transmits >= limit) {
                        broadcast_drop(s, b);
                        continue;
                }
                g_queue_unlink(&s->broadcasts, l);
                g_queue_push_tail_link(&sent, l);
        }
        /* Move the sent ones to the tail, keeping their order. */
        while (sent.head) {
                GList *l = sent.head;
                g_queue_unlink(&sent, l);
                g_queue_push_tail_link(&s->broadcasts, l);
        }
}

static void send_packet(Swim *s, const SwimAddr *to, const uint8_t *msg, size_t msg_size, bool with_gossip) {
        OutPacket *p = g_new(OutPacket, 1);
        Wire w;

        packet_start(s, &w, p);
        if (msg)
                wire_write(&w, msg, msg_size);
        if (with_gossip)
                piggyback(s, &w, to);
        p->to = *to;
        p->size = wire_offset(&w);
        g_queue_push_tail(&s->out, p);
        s->counters.packets_sent++;
}

static Member *member_get(Swim *s, const char *id);

static void send_ping(Swim *s, const SwimAddr *to, uint32_t seq, const char *target) {
        uint8_t msg[400];
        Wire w = wire_init(msg, sizeof msg);
        Member *m = member_get(s, target);
        size_t body;

        body = msg_begin(&w, MSG_PING);
        wire_write_u32(&w, seq);
        write_str(&w, target);
        msg_end(&w, body);
        /* Lifeguard's buddy system: a suspect we probe hears of the suspicion
         * in the ping itself, so it can refute at once, instead of waiting for
         * gossip whose retransmissions may all have gone elsewhere. */
        if (m && m->pub.state == SWIM_SUSPECT)
                write_member_state(&w, &m->pub, s->self.pub.id);
        send_packet(s, to, msg, wire_offset(&w), true);
}

static void send_ack(Swim *s, const SwimAddr *to, uint32_t seq) {
        uint8_t msg[7];
        Wire w = wire_init(msg, sizeof msg);
        size_t body;

        body = msg_begin(&w, MSG_ACK);
        wire_write_u32(&w, seq);
        msg_end(&w, body);
        send_packet(s, to, msg, wire_offset(&w), true);
}

static void emit(Swim *s, SwimEventType type, const SwimMember *m) {
        SwimEvent *e = g_new0(SwimEvent, 1);
        s->live_dirty = true; /* every membership event may change the count */
        e->type = type;
        if (m)
                e->member = *m;
        g_queue_push_tail(&s->events, e);
}

/* --- member state changes ----------------------------------------------- */

static Member *member_get(Swim *s, const char *id) {
        return g_hash_table_lookup(s->by_id, id);
}

/* Up to k distinct members that `want` accepts, chosen uniformly at random,
 * as memberlist's kRandomNodes: selection sampling over the member list
 * (Knuth's algorithm S), so no member is drawn twice in one round and a
 * cluster smaller than k is covered whole. Returns how many were stored. */
static unsigned random_members(Swim *s, unsigned k, bool (*want)(const Member *m, const void *data), const void *data,
                               Member **ret) {
        unsigned eligible = 0, seen = 0, chosen = 0;

        for (guint i = 0; i < s->members->len; i++)
                if (want(s->members->pdata[i], data))
                        eligible++;
        for (guint i = 0; i < s->members->len && chosen < k; i++) {
                Member *m = s->members->pdata[i];
                if (!want(m, data))
                        continue;
                if (rnd(s) % (eligible - seen) < k - chosen)
                        ret[chosen++] = m;
                seen++;
        }
        return chosen;
}

static bool want_gossip(const Member *m, const void *data) {
        /* The recently dead are told too, so they can refute; the dead are
         * forgotten after dead_reclaim_usec (memberlist's GossipToTheDeadTime). */
        return m->pub.state != SWIM_LEFT;
}

static bool want_relay(const Member *m, const void *target) {
        return m != target && m->pub.state == SWIM_ALIVE;
}

static bool want_alive(const Member *m, const void *data) {
        return m->pub.state == SWIM_ALIVE;
}

static bool want_live(const Member *m, const void *data) {
        return m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT;
}

static void refute(Swim *s, uint32_t incarnation) {
        const SwimAddr *rx_from = s->rx_from;

        s->self.pub.incarnation = MAX(s->self.pub.incarnation, incarnation) + 1;
        awareness_adjust(s, +1);
        s->counters.refutations++;
        /* News of our own, not a relay: the sender of the suspicion needs it most. */
        s->rx_from = NULL;
        broadcast_member(s, &s->self.pub, s->self.pub.id);
        s->rx_from = rx_from;
}

static void member_remove(Swim *s, guint i) {
        Member *m = s->members->pdata[i];

        g_hash_table_remove(s->by_id, m->pub.id);
        g_ptr_array_remove_index_fast(s->members, i); /* frees it; probe_order drops the id lazily */
        s->live_dirty = true;
        s->counters.members_forgotten++;
}

/* Room for one more member: below the cap, or by forgetting the member that
 * has been dead (or gone) the longest. A flood of made-up members can then
 * fill the table only with members that answer probes, and never push out
 * live ones. */
static bool member_room(Swim *s) {
        guint oldest = G_MAXUINT;

        if (s->cfg.members_max == 0 || s->members->len < s->cfg.members_max)
                return true;
        for (guint i = 0; i < s->members->len; i++) {
                const Member *m = s->members->pdata[i];
                if ((m->pub.state == SWIM_DEAD || m->pub.state == SWIM_LEFT) &&
                    (oldest == G_MAXUINT ||
                     m->pub.state_change_usec < ((Member *) s->members->pdata[oldest])->pub.state_change_usec))
                        oldest = i;
        }
        if (oldest == G_MAXUINT) {
                s->counters.members_dropped++;
                return false;
        }
        member_remove(s, oldest);
        return true;
}

static void on_alive(Swim *s, uint32_t inc, const char *id, const SwimAddr *addr, uint64_t now) {
        Member *m;

        if (streq(id, s->self.pub.id))
                return; /* only we speak for ourselves */
        m = member_get(s, id);
        if (!m) {
                if (!member_room(s))
                        return;
                m = g_new0(Member, 1);
                g_strlcpy(m->pub.id, id, sizeof m->pub.id);
                m->pub.addr = *addr;
                m->pub.state = SWIM_ALIVE;
                m->pub.incarnation = inc;
                m->pub.state_change_usec = now;
                g_ptr_array_add(s->members, m);
                g_hash_table_insert(s->by_id, m->pub.id, m);
                /* Into the probe order at a random place, as memberlist does:
                 * nodes that learn of members in the same order (all of them,
                 * after a join) would otherwise probe them in step for a
                 * whole round, and a member that fails late in that order
                 * would go unprobed for most of it. */
                g_ptr_array_add(s->probe_order, g_strdup(id));
                guint last = s->probe_order->len - 1, j = (guint) (rnd(s) % (last + 1));
                gpointer t = s->probe_order->pdata[j];
                s->probe_order->pdata[j] = s->probe_order->pdata[last];
                s->probe_order->pdata[last] = t;
                emit(s, SWIM_EVENT_JOIN, &m->pub);
                broadcast_member(s, &m->pub, s->self.pub.id);
                return;
        }
        if (inc <= m->pub.incarnation)
                return;
        SwimState old = m->pub.state;
        m->pub.incarnation = inc;
        m->pub.addr = *addr;
        if (old != SWIM_ALIVE) {
                m->pub.state = SWIM_ALIVE;
                m->pub.state_change_usec = now;
                m->confirmations = 0;
                emit(s, old == SWIM_SUSPECT ? SWIM_EVENT_ALIVE : SWIM_EVENT_JOIN, &m->pub);
        }
        broadcast_member(s, &m->pub, s->self.pub.id);
}

/* Suspect or dead news about id at incarnation inc: about this node it is
 * refuted (unless leaving); else the member it is about, NULL when that is
 * unknown or the news older than what is known of it. */
static Member *member_for_news(Swim *s, uint32_t inc, const char *id) {
        Member *m;

        if (streq(id, s->self.pub.id)) {
                if (!s->leaving)
                        refute(s, inc);
                return NULL;
        }
        m = member_get(s, id);
        if (!m || inc < m->pub.incarnation)
                return NULL;
        return m;
}

static void on_suspect(Swim *s, uint32_t inc, const char *id, const char *from, uint64_t now) {
        Member *m = member_for_news(s, inc, id);

        if (!m)
                return;
        if (m->pub.state == SWIM_SUSPECT) {
                /* An independent confirmation shortens the timeout and is passed
                 * on: from anyone but the suspecter, once each, up to the number
                 * that reaches the shortest timeout. As in memberlist, our own
                 * failed probe of a suspect counts, so confirmations keep coming
                 * even once the suspicion has reached everyone. */
                if (streq(from, m->suspecter) || m->confirmations >= suspicion_confirmations(s))
                        return;
                for (unsigned i = 0; i < m->confirmations; i++)
                        if (streq(m->confirmers[i], from))
                                return;
                g_strlcpy(m->confirmers[m->confirmations++], from, SWIM_ID_MAX + 1);
                m->suspect_deadline = m->suspect_start + suspicion_timeout(s, m->confirmations);
                s->member_deadline = MIN(s->member_deadline, m->suspect_deadline);
                broadcast_member(s, &m->pub, from);
                return;
        }
        if (m->pub.state != SWIM_ALIVE)
                return;
        m->pub.state = SWIM_SUSPECT;
        m->pub.incarnation = inc;
        m->pub.state_change_usec = now;
        m->suspect_start = now;
        m->confirmations = 0;
        g_strlcpy(m->suspecter, from, sizeof m->suspecter);
        m->suspect_deadline = now + suspicion_timeout(s, 0);
        s->member_deadline = MIN(s->member_deadline, m->suspect_deadline);
        emit(s, SWIM_EVENT_SUSPECT, &m->pub);
        broadcast_member(s, &m->pub, from);
}

static void on_dead(Swim *s, uint32_t inc, const char *id, const char *from, uint64_t now) {
        Member *m = member_for_news(s, inc, id);

        if (!m || m->pub.state == SWIM_DEAD || m->pub.state == SWIM_LEFT)
                return;
        m->pub.incarnation = inc;
        m->pub.state = streq(id, from) ? SWIM_LEFT : SWIM_DEAD;
        m->pub.state_change_usec = now;
        s->member_deadline = MIN(s->member_deadline, now + s->cfg.dead_reclaim_usec);
        emit(s, m->pub.state == SWIM_LEFT ? SWIM_EVENT_LEFT : SWIM_EVENT_DEAD, &m->pub);
        broadcast_member(s, &m->pub, from);
}

static bool seen_user(Swim *s, const char *origin, const char *key, const uint8_t *data, size_t size) {
        /* Digest of the whole broadcast: origin, key and content. */
        g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
        g_checksum_update(c, (const guchar *) origin, (gssize) strlen(origin) + 1);
        g_checksum_update(c, (const guchar *) key, (gssize) strlen(key) + 1);
        g_checksum_update(c, data, (gssize) size);
        const char *digest = g_checksum_get_string(c);

        if (g_hash_table_contains(s->seen, digest))
                return true;
        char *d = g_strdup(digest);
        g_hash_table_add(s->seen, d);
        g_queue_push_tail(&s->seen_order, d);
        if (g_queue_get_length(&s->seen_order) > SEEN_MAX)
                g_hash_table_remove(s->seen, g_queue_pop_head(&s->seen_order));
        return false;
}

static void queue_user(Swim *s, const char *origin, const char *key, const uint8_t *data, size_t size) {
        uint8_t msg[3 + SWIM_USER_MAX + 2 * 256 + 8];
        Wire w = wire_init(msg, sizeof msg);
        char bkey[2 * SWIM_ID_MAX + 300];
        size_t body;

        body = msg_begin(&w, MSG_USER);
        write_str(&w, origin);
        write_str(&w, key);
        wire_write_u16(&w, (uint16_t) size);
        wire_write(&w, data, size);
        msg_end(&w, body);
        snprintf(bkey, sizeof bkey, "u:%s:%s", origin, key);
        queue_broadcast(s, bkey, g_memdup2(msg, wire_offset(&w)), wire_offset(&w));
}

/* --- the public state machine ------------------------------------------- */

int swim_new(Swim **ret, const SwimConfig *cfg, const char *self_id, const SwimAddr *self_addr, uint64_t seed,
             uint64_t now_usec) {
        Swim *s;

        if (!swim_id_is_valid(self_id))
                return -EINVAL;
        s = g_new0(Swim, 1);
        s->cfg = *cfg;
        g_strlcpy(s->self.pub.id, self_id, sizeof s->self.pub.id);
        s->self.pub.addr = *self_addr;
        s->self.pub.state = SWIM_ALIVE;
        s->self.pub.state_change_usec = now_usec;
        s->by_id = g_hash_table_new(g_str_hash, g_str_equal);
        s->members = g_ptr_array_new_with_free_func(g_free);
        g_queue_init(&s->broadcasts);
        s->broadcast_keys = g_hash_table_new(g_str_hash, g_str_equal);
        s->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        s->relays = g_array_new(FALSE, FALSE, sizeof(Relay));
        s->probe_order = g_ptr_array_new_with_free_func(g_free);
        s->snapshot = g_array_new(FALSE, FALSE, sizeof(SwimMember));
        s->live = 1;
        s->member_deadline = UINT64_MAX;
        s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
        /* Spread first probes and gossip so that nodes started together do not move in lockstep. */
        s->next_probe_at = now_usec + rnd(s) % cfg->probe_interval_usec;
        s->next_gossip_at = now_usec + rnd(s) % cfg->gossip_interval_usec;
        s->next_push_pull_at = now_usec + cfg->push_pull_interval_usec / 2 + rnd(s) % cfg->push_pull_interval_usec;
        *ret = s;
        return 0;
}

Swim *swim_free(Swim *s) {
        if (!s)
                return NULL;
        g_hash_table_destroy(s->by_id);
        g_ptr_array_free(s->members, TRUE);
        g_hash_table_destroy(s->broadcast_keys);
        g_queue_clear_full(&s->broadcasts, broadcast_free);
        g_queue_clear_full(&s->out, g_free);
        g_queue_clear_full(&s->events, g_free);
        g_queue_clear(&s->seen_order);
        g_hash_table_destroy(s->seen);
        g_array_free(s->relays, TRUE);
        g_ptr_array_free(s->probe_order, TRUE);
        g_array_free(s->snapshot, TRUE);
        g_free(s);
        return NULL;
}

int swim_join(Swim *s, const SwimAddr *addr, uint64_t now_usec) {
        uint8_t msg[300];
        Wire w = wire_init(msg, sizeof msg);

        write_member_state(&w, &s->self.pub, s->self.pub.id);
        msg_end(&w, msg_begin(&w, MSG_SYNC_REQ));
        send_packet(s, addr, msg, wire_offset(&w), false);
        return 0;
}

void swim_leave(Swim *s, uint64_t now_usec) {
        s->leaving = true;
        s->self.pub.state = SWIM_LEFT;
        broadcast_member(s, &s->self.pub, s->self.pub.id);
        /* Tell a few distinct members directly, so the leave does not wait for gossip. */
        unsigned k = s->cfg.gossip_nodes * 2;
        g_autofree Member **to = g_new(Member *, MAX(k, 1u));
        unsigned n = random_members(s, k, want_live, NULL, to);
        for (unsigned i = 0; i < n; i++)
                send_packet(s, &to[i]->pub.addr, NULL, 0, true);
}

void swim_relay(Swim *s, const SwimEvent *ev) {
        if (ev->type == SWIM_EVENT_USER && ev->size <= SWIM_USER_MAX)
                queue_user(s, ev->member.id, ev->key, ev->data, ev->size);
}

int swim_broadcast(Swim *s, const char *key, const uint8_t *data, size_t size) {
        if (size > SWIM_USER_MAX || strlen(key) > 255)
                return -EMSGSIZE;
        (void) seen_user(s, s->self.pub.id, key, data, size);
        queue_user(s, s->self.pub.id, key, data, size);
        return 0;
}

static void answer_sync(Swim *s, const SwimAddr *to) {
        /* Our whole view, ourselves first, in as many packets as it takes. */
        OutPacket *p = NULL;
        Wire w;

        for (guint i = 0; i <= s->members->len; i++) {
                const SwimMember *m = i == 0 ? &s->self.pub : &((Member *) s->members->pdata[i - 1])->pub;
                uint8_t buf[300];
                size_t n = encode_member_state(m, s->self.pub.id, buf, sizeof buf);

                if (p && n > wire_available(&w)) {
                        p->size = wire_offset(&w);
                        g_queue_push_tail(&s->out, p);
                        s->counters.packets_sent++;
                        p = NULL;
                }
                if (!p) {
                        p = g_new(OutPacket, 1);
                        p->to = *to;
                        packet_start(s, &w, p);
                }
                wire_write(&w, buf, n);
        }
        if (p) {
                p->size = wire_offset(&w);
                g_queue_push_tail(&s->out, p);
                s->counters.packets_sent++;
        }
}

static void relay_ack(Swim *s, uint32_t seq) {
        for (guint i = 0; i < s->relays->len; i++) {
                Relay *r = &g_array_index(s->relays, Relay, i);
                if (r->our_seq == seq) {
                        SwimAddr to = r->requester;
                        uint32_t theirs = r->their_seq;
                        g_array_remove_index_fast(s->relays, i);
                        send_ack(s, &to, theirs);
                        return;
                }
        }
}

/* One decoded message. Strings are copied out; a USER payload points into
 * the packet. */
typedef struct Msg {
        uint8_t type;
        uint8_t key_len;
        uint16_t data_size;
        uint32_t u;                 /* seq (PING, ACK, PING_REQ) or incarnation */
        char id[SWIM_ID_MAX + 1];   /* target (PING, PING_REQ), member, or USER origin */
        char from[SWIM_ID_MAX + 1]; /* SUSPECT, DEAD */
        SwimAddr addr;              /* PING_REQ, ALIVE */
        const uint8_t *key, *data;  /* USER */
} Msg;

static bool msg_type_known(uint8_t type) {
        return type >= MSG_PING && type <= MSG_SYNC_REQ;
}

/* Decodes one message body. Bytes after what a type defines are ignored
 * (room for later fields); anything missing or invalid sets the error. */
static void msg_decode(Wire *r, uint8_t type, Msg *m) {
        m->type = type;
        switch (type) {
        case MSG_PING:
        case MSG_ACK:
        case MSG_PING_REQ:
        case MSG_ALIVE:
        case MSG_SUSPECT:
        case MSG_DEAD:
                m->u = wire_read_u32(r);
                if (type == MSG_ACK)
                        break;
                read_id(r, m->id);
                if (type == MSG_PING_REQ || type == MSG_ALIVE)
                        read_addr(r, &m->addr);
                else if (type != MSG_PING)
                        read_id(r, m->from);
                break;
        case MSG_USER:
                read_id(r, m->id);
                m->key_len = wire_read_u8(r);
                m->key = wire_read_ptr(r, m->key_len);
                m->data_size = wire_read_u16(r);
                if (m->data_size > SWIM_USER_MAX)
                        wire_fail(r, -EBADMSG);
                m->data = wire_read_ptr(r, m->data_size);
                break;
        default:
                break; /* SYNC_REQ has no body */
        }
}

/* Reads one message frame (type, length, body) and decodes it. Returns
 * false at the end of the input or on a malformed frame (r's error says
 * which); *ret_known is false for a type we skip. */
static bool msg_next(Wire *r, Msg *m, bool *ret_known) {
        const uint8_t *body;
        uint8_t type;
        uint16_t len;
        Wire b;

        if (!wire_ok(r) || wire_at_end(r))
                return false;
        type = wire_read_u8(r);
        len = wire_read_u16(r);
        body = wire_read_ptr(r, len);
        if (!body)
                return false;
        *ret_known = msg_type_known(type);
        if (!*ret_known)
                return true; /* unknown types are skipped: forward compatibility */
        b = wire_init_const(body, len);
        msg_decode(&b, type, m);
        if (!wire_ok(&b)) {
                wire_fail(r, b.error);
                return false;
        }
        return true;
}

static void apply(Swim *s, const Msg *m, const char *sender, const SwimAddr *from, uint64_t now) {
        switch (m->type) {
        case MSG_PING:
                if (streq(m->id, s->self.pub.id))
                        send_ack(s, from, m->u);
                break;
        case MSG_ACK:
                if (s->probing && m->u == s->probe_seq)
                        s->probe_acked = true;
                else
                        relay_ack(s, m->u);
                break;
        case MSG_PING_REQ: {
                Relay relay = {
                        .our_seq = ++s->seq,
                        .their_seq = m->u,
                        .requester = *from,
                        .expires = now + RELAY_TIMEOUT_FACTOR * s->cfg.probe_timeout_usec,
                };
                g_array_append_val(s->relays, relay);
                s->counters.indirect_probes++;
                send_ping(s, &m->addr, relay.our_seq, m->id);
                break;
        }
        case MSG_ALIVE:
                on_alive(s, m->u, m->id, &m->addr, now);
                break;
        case MSG_SUSPECT:
                on_suspect(s, m->u, m->id, m->from, now);
                break;
        case MSG_DEAD:
                on_dead(s, m->u, m->id, m->from, now);
                break;
        case MSG_USER: {
                char key[256];

                /* The key is a string: it ends at its first NUL, if any. */
                memcpy(key, m->key, m->key_len);
                key[m->key_len] = 0;
                if (!seen_user(s, m->id, key, m->data, m->data_size)) {
                        SwimEvent *e = g_new0(SwimEvent, 1);
                        e->type = SWIM_EVENT_USER;
                        g_strlcpy(e->member.id, m->id, sizeof e->member.id);
                        g_strlcpy(e->sender, sender, sizeof e->sender);
                        e->from = *from;
                        g_strlcpy(e->key, key, sizeof e->key);
                        memcpy(e->data, m->data, m->data_size);
                        e->size = m->data_size;
                        g_queue_push_tail(&s->events, e);
                        if (s->cfg.relay_user)
                                queue_user(s, m->id, key, m->data, m->data_size); /* pass it on */
                }
                break;
        }
        case MSG_SYNC_REQ:
                answer_sync(s, from);
                break;
        }
}

/* Most packets hold a few messages; a larger one gets a heap array. */
#define MSGS_INLINE 16

int swim_receive(Swim *s, const SwimAddr *from, const uint8_t *packet, size_t size, uint64_t now_usec) {
        Wire r = wire_init_const(packet, size);
        Msg inline_msgs[MSGS_INLINE], *msgs = inline_msgs;
        g_autofree Msg *heap = NULL;
        size_t n = 0, allocated = MSGS_INLINE;
        char sender[SWIM_ID_MAX + 1];
        bool known;

        /* Parse it all first: anything malformed rejects the whole packet
         * before any of it is applied. */
        if (wire_read_u8(&r) != SWIM_MAGIC0 || wire_read_u8(&r) != SWIM_MAGIC1 || wire_read_u8(&r) != SWIM_VERSION)
                wire_fail(&r, -EBADMSG);
        read_id(&r, sender);
        while (msg_next(&r, &msgs[n], &known)) {
                if (!known)
                        continue;
                if (++n < allocated)
                        continue;
                allocated *= 2;
                if (!heap) {
                        heap = g_new(Msg, allocated);
                        memcpy(heap, inline_msgs, sizeof inline_msgs);
                } else
                        heap = g_renew(Msg, heap, allocated);
                msgs = heap;
        }
        if (!wire_ok(&r)) {
                s->counters.packets_rejected++;
                return -EBADMSG;
        }
        s->counters.packets_received++;
        if (streq(sender, s->self.pub.id))
                return 0; /* our own broadcast, looped back */
        s->rx_from = from;
        for (size_t i = 0; i < n; i++)
                apply(s, &msgs[i], sender, from, now_usec);
        s->rx_from = NULL;
        return 0;
}

/* News that has not been sent to anyone yet (new broadcasts enter the queue
 * at its head, one that was sent moves to the tail). It does not wait for
 * the next gossip round: a round goes out a quarter interval after the last
 * one. Each hop of an update then costs up to 50 ms instead of up to 200,
 * which is what brings an update to every node of fifty within half a
 * second; the number of transmissions is the same, only less batched. */
static bool fresh_news(const Swim *s) {
        const Broadcast *b = s->broadcasts.head ? s->broadcasts.head->data : NULL;
        return b && b->transmits == 0 && s->cfg.gossip_nodes > 0 && n_live(s) > 1;
}

static uint64_t eager_gossip_at(const Swim *s) {
        return s->last_gossip_at + s->cfg.gossip_interval_usec / EAGER_GOSSIP_DIVISOR;
}

static Member *next_probe_target(Swim *s) {
        for (guint tries = 0; tries < s->probe_order->len * 2 + 1; tries++) {
                if (s->probe_index >= s->probe_order->len) {
                        /* Reshuffle at the end of each round (Fisher-Yates), dropping forgotten ids. */
                        for (guint i = s->probe_order->len; i > 0; i--)
                                if (!member_get(s, s->probe_order->pdata[i - 1]))
                                        g_ptr_array_remove_index_fast(s->probe_order, i - 1);
                        for (guint i = s->probe_order->len; i > 1; i--) {
                                guint j = (guint) (rnd(s) % i);
                                gpointer t = s->probe_order->pdata[i - 1];
                                s->probe_order->pdata[i - 1] = s->probe_order->pdata[j];
                                s->probe_order->pdata[j] = t;
                        }
                        s->probe_index = 0;
                        if (s->probe_order->len == 0)
                                return NULL;
                }
                Member *m = member_get(s, s->probe_order->pdata[s->probe_index++]);
                if (m && (m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT))
                        return m;
        }
        return NULL;
}

static void probe_finish(Swim *s, uint64_t now) {
        Member *m = member_get(s, s->probe_target);

        s->probing = false;
        if (s->probe_acked) {
                awareness_adjust(s, -1);
                return;
        }
        awareness_adjust(s, +1);
        if (m && (m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT)) {
                SwimMember sus = m->pub;
                on_suspect(s, sus.incarnation, sus.id, s->self.pub.id, now);
        }
}

/* Long on purpose: one protocol period in the order SWIM runs it (probe,
 * indirect probes, suspicion timeouts, gossip, push-pull), each a short block
 * over the same member table. */
void swim_tick(Swim *s, uint64_t now) {
        /* The probe in flight: indirect probes at the timeout, verdict at the deadline. */
        if (s->probing && !s->probe_acked && !s->probe_indirect_sent && now >= s->probe_timeout_at) {
                Member *target = member_get(s, s->probe_target);
                s->probe_indirect_sent = true;
                if (target && s->cfg.indirect_checks > 0) {
                        g_autofree Member **via = g_new(Member *, s->cfg.indirect_checks);
                        unsigned n = random_members(s, s->cfg.indirect_checks, want_relay, target, via);
                        for (unsigned i = 0; i < n; i++) {
                                uint8_t msg[130];
                                Wire w = wire_init(msg, sizeof msg);
                                size_t body;

                                body = msg_begin(&w, MSG_PING_REQ);
                                wire_write_u32(&w, s->probe_seq);
                                write_str(&w, target->pub.id);
                                write_addr(&w, &target->pub.addr);
                                msg_end(&w, body);
                                send_packet(s, &via[i]->pub.addr, msg, wire_offset(&w), true);
                        }
                }
        }
        if (s->probing && now >= s->probe_deadline)
                probe_finish(s, now);

        if (!s->leaving && now >= s->next_probe_at) {
                if (s->probing)
                        probe_finish(s, now);
                Member *m = next_probe_target(s);
                if (m) {
                        s->probing = true;
                        s->probe_acked = false;
                        s->probe_indirect_sent = false;
                        s->probe_seq = ++s->seq;
                        g_strlcpy(s->probe_target, m->pub.id, sizeof s->probe_target);
                        s->probe_timeout_at = now + scaled(s, s->cfg.probe_timeout_usec);
                        s->probe_deadline = now + scaled(s, s->cfg.probe_interval_usec);
                        s->counters.probes++;
                        send_ping(s, &m->pub.addr, s->probe_seq, m->pub.id);
                }
                s->next_probe_at = now + scaled(s, s->cfg.probe_interval_usec);
        }

        /* Suspicion timeouts, and forgetting the long dead. */
        if (now >= s->member_deadline) {
                s->member_deadline = UINT64_MAX;
                for (guint i = 0; i < s->members->len;) {
                        Member *m = s->members->pdata[i];
                        if (m->pub.state == SWIM_SUSPECT && now >= m->suspect_deadline) {
                                m->pub.state = SWIM_DEAD;
                                m->pub.state_change_usec = now;
                                emit(s, SWIM_EVENT_DEAD, &m->pub);
                                broadcast_member(s, &m->pub, s->self.pub.id);
                        }
                        if (m->pub.state == SWIM_DEAD || m->pub.state == SWIM_LEFT) {
                                uint64_t reclaim = m->pub.state_change_usec + s->cfg.dead_reclaim_usec;
                                if (now >= reclaim) {
                                        member_remove(s, i);
                                        continue;
                                }
                                s->member_deadline = MIN(s->member_deadline, reclaim);
                        } else if (m->pub.state == SWIM_SUSPECT)
                                s->member_deadline = MIN(s->member_deadline, m->suspect_deadline);
                        i++;
                }
        }

        for (guint i = 0; i < s->relays->len;)
                if (now >= g_array_index(s->relays, Relay, i).expires)
                        g_array_remove_index_fast(s->relays, i);
                else
                        i++;

        /* Anti-entropy: swap whole views with one member now and then, so a
         * node that missed gossip converges (memberlist's push-pull). The
         * interval grows with the cluster, as memberlist's pushPullScale. */
        if (now >= s->next_push_pull_at) {
                unsigned n = n_live(s);
                uint64_t scale = n <= 32 ? 1 : (uint64_t) ceil(log2((double) n) - log2(32.0)) + 1;
                s->next_push_pull_at = now + s->cfg.push_pull_interval_usec * scale;
                Member *m;
                if (random_members(s, 1, want_alive, NULL, &m) == 1) {
                        uint8_t sync[3] = { MSG_SYNC_REQ, 0, 0 };
                        answer_sync(s, &m->pub.addr);
                        send_packet(s, &m->pub.addr, sync, sizeof sync, false);
                }
        }

        /* Gossip: push pending broadcasts to a few distinct random members,
         * every gossip interval, and sooner when there is news that has not
         * gone out at all yet (see fresh_news()). */
        if (now >= s->next_gossip_at || (fresh_news(s) && now >= eager_gossip_at(s))) {
                s->last_gossip_at = now;
                s->next_gossip_at = now + s->cfg.gossip_interval_usec;
                if (s->broadcasts.length > 0 && s->members->len > 0 && s->cfg.gossip_nodes > 0) {
                        g_autofree Member **to = g_new(Member *, s->cfg.gossip_nodes);
                        unsigned n = random_members(s, s->cfg.gossip_nodes, want_gossip, NULL, to);
                        for (unsigned i = 0; i < n && s->broadcasts.length > 0; i++)
                                send_packet(s, &to[i]->pub.addr, NULL, 0, true);
                }
        }
}

uint64_t swim_next_deadline(const Swim *s) {
        uint64_t d = MIN(MIN(s->next_probe_at, s->next_gossip_at), s->next_push_pull_at);

        if (fresh_news(s))
                d = MIN(d, eager_gossip_at(s));

        if (s->probing) {
                /* Indirect probes are due only while no ack came; an acked
                 * probe's timeout in the past would make the caller's timer
                 * fire at once, over and over, until the probe's deadline. */
                if (!s->probe_acked && !s->probe_indirect_sent)
                        d = MIN(d, s->probe_timeout_at);
                d = MIN(d, s->probe_deadline);
        }
        return MIN(d, s->member_deadline);
}

size_t swim_pop_packet(Swim *s, SwimAddr *ret_to, uint8_t buf[static SWIM_PACKET_MAX]) {
        OutPacket *p = g_queue_pop_head(&s->out);
        size_t n;

        if (!p)
                return 0;
        *ret_to = p->to;
        n = p->size;
        memcpy(buf, p->data, n);
        g_free(p);
        return n;
}

bool swim_pop_event(Swim *s, SwimEvent *ret) {
        SwimEvent *e = g_queue_pop_head(&s->events);
        if (!e)
                return false;
        *ret = *e;
        g_free(e);
        return true;
}

size_t swim_members(const Swim *s, const SwimMember **ret) {
        /* A snapshot owned by the Swim, valid until the next call. */
        GArray *snapshot = ((Swim *) s)->snapshot;
        g_array_set_size(snapshot, 0);
        g_array_append_val(snapshot, s->self.pub);
        for (guint i = 0; i < s->members->len; i++)
                g_array_append_val(snapshot, ((Member *) s->members->pdata[i])->pub);
        *ret = (const SwimMember *) snapshot->data;
        return snapshot->len;
}

const SwimMember *swim_member(const Swim *s, const char *id) {
        const Member *m = g_hash_table_lookup(s->by_id, id);
        return m ? &m->pub : NULL;
}

int swim_forget(Swim *s, const char *id) {
        for (guint i = 0; i < s->members->len; i++) {
                const Member *m = s->members->pdata[i];
                if (!streq(m->pub.id, id))
                        continue;
                if (m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT)
                        return -EBUSY;
                member_remove(s, i);
                return 0;
        }
        return -ENOENT;
}

size_t swim_encode_state(const Swim *s, uint8_t *buf, size_t size) {
        Wire w = wire_init(buf, size);

        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'S');
        wire_write_u32(&w, s->members->len + 1);
        for (guint i = 0; i <= s->members->len; i++) {
                const SwimMember *m = i == 0 ? &s->self.pub : &((Member *) s->members->pdata[i - 1])->pub;
                write_member_state(&w, m, s->self.pub.id);
        }
        return wire_ok(&w) ? wire_offset(&w) : 0;
}

int swim_merge_state(Swim *s, const uint8_t *buf, size_t size, uint64_t now_usec) {
        Wire r = wire_init_const(buf, size);
        g_autoptr(GArray) msgs = NULL;
        uint32_t count;

        if (wire_read_u8(&r) != 'J' || wire_read_u8(&r) != 'S')
                return -EBADMSG;
        count = wire_read_u32(&r);
        /* Decode the whole state first: nothing of a bad one is applied. A
         * frame that is not a member state, or a count that does not match,
         * makes it bad; a member state with a bad body is only skipped. */
        msgs = g_array_new(FALSE, FALSE, sizeof(Msg));
        for (uint32_t i = 0; i < count && wire_ok(&r); i++) {
                uint8_t type = wire_read_u8(&r);
                uint16_t len = wire_read_u16(&r);
                const uint8_t *body = wire_read_ptr(&r, len);
                Wire b = wire_init_const(body, len);
                Msg m;

                if (type < MSG_ALIVE || type > MSG_DEAD)
                        wire_fail(&r, -EBADMSG);
                if (!wire_ok(&r))
                        break;
                msg_decode(&b, type, &m);
                if (wire_ok(&b))
                        g_array_append_val(msgs, m);
        }
        if (!wire_ok(&r) || !wire_at_end(&r))
                return -EBADMSG;

        for (guint i = 0; i < msgs->len; i++) {
                const Msg *m = &g_array_index(msgs, Msg, i);

                if (m->type == MSG_ALIVE)
                        on_alive(s, m->u, m->id, &m->addr, now_usec);
                /* Like memberlist: a remote "dead" is only a suspicion here,
                 * unless it is a leave, which the member said itself. */
                else if (m->type == MSG_DEAD && streq(m->id, m->from))
                        on_dead(s, m->u, m->id, m->from, now_usec);
                else
                        on_suspect(s, m->u, m->id, m->from, now_usec);
        }
        return 0;
}
