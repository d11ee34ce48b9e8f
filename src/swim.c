/* SPDX-License-Identifier: MIT */
/* SWIM + Lifeguard as a pure state machine. See swim.h.
 *
 * Wire format (all integers big-endian):
 *   packet  := "JR" version:u8 sender:str message*
 *   message := type:u8 length:u16 body
 *   str     := length:u8 bytes (at most SWIM_ID_MAX for ids)
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
 * malformed rejects the whole packet before any of it is applied. */

#include <glib.h>
#include <math.h>
#include <stdio.h>

#include "swim.h"

#define SWIM_MAGIC0 'J'
#define SWIM_MAGIC1 'R'
#define SWIM_VERSION 1
#define SEEN_MAX 4096                   /* user broadcasts remembered for dedup */
#define RELAY_TIMEOUT_FACTOR 2          /* relays wait this many probe timeouts */

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
        char confirmers[8][SWIM_ID_MAX + 1];
} Member;

typedef struct Broadcast {
        GList *link;            /* in Swim.broadcasts */
        char *key;
        uint8_t *msg;           /* one encoded message: type, length, body */
        size_t size;
        unsigned transmits;
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
        GHashTable *by_id;              /* id -> Member* (not self) */
        GPtrArray *members;             /* Member*, owns */
        GQueue broadcasts;              /* Broadcast*, least sent first (new ones at the head) */
        GHashTable *broadcast_keys;     /* key -> Broadcast* in the queue */
        GQueue out;                     /* OutPacket* */
        GQueue events;                  /* SwimEvent* */
        GHashTable *seen;               /* user broadcast digests */
        GQueue seen_order;
        GArray *relays;

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
        uint64_t next_push_pull_at;
        GPtrArray *probe_order;         /* ids (owned strings), shuffled */
        guint probe_index;

        GArray *snapshot;               /* SwimMember, rebuilt by swim_members() */
        uint64_t member_deadline;       /* earliest suspicion timeout or reclaim; refreshed by swim_tick() */
        unsigned live;                  /* cached n_live(); valid unless live_dirty */
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
        };
}

const char *swim_state_to_string(SwimState st) {
        switch (st) {
        case SWIM_ALIVE: return "alive";
        case SWIM_SUSPECT: return "suspect";
        case SWIM_DEAD: return "dead";
        case SWIM_LEFT: return "left";
        }
        return "unknown";
}

bool swim_addr_equal(const SwimAddr *a, const SwimAddr *b) {
        return a->family == b->family && a->port == b->port &&
               memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
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

/* memberlist's suspicion timeout: starts at max and shrinks towards min as
 * independent confirmations arrive (log-scaled). */
static uint64_t suspicion_timeout(const Swim *s, unsigned confirmations) {
        unsigned n = n_live(s);
        double node_scale = MAX(1.0, log10(MAX(1.0, (double) n)));
        double min = s->cfg.suspicion_mult * node_scale * (double) s->cfg.probe_interval_usec;
        double max = s->cfg.suspicion_max_mult * min;
        unsigned k = s->cfg.suspicion_mult > 2 ? s->cfg.suspicion_mult - 2 : 0;
        double t;

        if (n < k + 2)
                k = 0;
        if (k == 0)
                return (uint64_t) min;
        t = max - (max - min) * log((double) confirmations + 1) / log((double) k + 1);
        return (uint64_t) MAX(min, t);
}

/* --- encoding ------------------------------------------------------------ */

typedef struct Writer {
        uint8_t *buf;
        size_t size, pos;
        bool overflow;
} Writer;

static void w_bytes(Writer *w, const void *p, size_t n) {
        if (w->overflow || w->pos + n > w->size) {
                w->overflow = true;
                return;
        }
        memcpy(w->buf + w->pos, p, n);
        w->pos += n;
}
static void w_u8(Writer *w, uint8_t v) { w_bytes(w, &v, 1); }
static void w_u16(Writer *w, uint16_t v) { uint8_t b[2] = { v >> 8, v & 0xff }; w_bytes(w, b, 2); }
static void w_u32(Writer *w, uint32_t v) {
        uint8_t b[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff };
        w_bytes(w, b, 4);
}
static void w_str(Writer *w, const char *str) {
        size_t n = strlen(str);
        w_u8(w, (uint8_t) MIN(n, 255u));
        w_bytes(w, str, MIN(n, 255u));
}
static void w_addr(Writer *w, const SwimAddr *a) {
        w_u8(w, a->family);
        w_bytes(w, a->ip, 16);
        w_u16(w, a->port);
}

typedef struct Reader {
        const uint8_t *buf;
        size_t size, pos;
        bool bad;
} Reader;

static bool r_bytes(Reader *r, void *p, size_t n) {
        if (r->bad || r->pos + n > r->size) {
                r->bad = true;
                return false;
        }
        if (p)
                memcpy(p, r->buf + r->pos, n);
        r->pos += n;
        return true;
}
static uint8_t r_u8(Reader *r) { uint8_t v = 0; r_bytes(r, &v, 1); return v; }
static uint16_t r_u16(Reader *r) { uint8_t b[2] = {}; r_bytes(r, b, 2); return (uint16_t) (b[0] << 8 | b[1]); }
static uint32_t r_u32(Reader *r) {
        uint8_t b[4] = {};
        r_bytes(r, b, 4);
        return (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
}
static void r_id(Reader *r, char out[static SWIM_ID_MAX + 1]) {
        uint8_t n = r_u8(r);
        if (n == 0 || n > SWIM_ID_MAX) {
                r->bad = true;
                out[0] = 0;
                return;
        }
        if (!r_bytes(r, out, n)) {
                out[0] = 0;
                return;
        }
        out[n] = 0;
        for (uint8_t i = 0; i < n; i++)
                if (out[i] == 0)
                        r->bad = true;
}
static void r_addr(Reader *r, SwimAddr *a) {
        a->family = r_u8(r);
        r_bytes(r, a->ip, 16);
        a->port = r_u16(r);
        if (a->family != 4 && a->family != 6)
                r->bad = true;
}

/* Frames one message (type, length, body) into buf. Returns its size, or 0
 * when it does not fit. */
static size_t msg_frame(uint8_t type, const uint8_t *body, size_t body_size, uint8_t *buf, size_t size) {
        if (3 + body_size > size || body_size > UINT16_MAX)
                return 0;
        buf[0] = type;
        buf[1] = (uint8_t) (body_size >> 8);
        buf[2] = (uint8_t) (body_size & 0xff);
        memcpy(buf + 3, body, body_size);
        return 3 + body_size;
}

/* The same, into a fresh buffer (for the broadcast queue). */
static uint8_t *msg_new(uint8_t type, const uint8_t *body, size_t body_size, size_t *ret_size) {
        uint8_t *m = g_malloc(3 + body_size);
        *ret_size = msg_frame(type, body, body_size, m, 3 + body_size);
        return m;
}

static size_t encode_member_state(const SwimMember *m, const char *from, uint8_t *buf, size_t size) {
        uint8_t body[256];
        Writer w = { body, sizeof body, 0, false };
        uint8_t type;

        w_u32(&w, m->incarnation);
        w_str(&w, m->id);
        switch (m->state) {
        case SWIM_ALIVE:
                type = MSG_ALIVE;
                w_addr(&w, &m->addr);
                break;
        case SWIM_SUSPECT:
                type = MSG_SUSPECT;
                w_str(&w, from);
                break;
        case SWIM_LEFT:
                type = MSG_DEAD;
                w_str(&w, m->id);
                break;
        default:
                type = MSG_DEAD;
                w_str(&w, from);
                break;
        }
        return msg_frame(type, body, w.pos, buf, size);
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

static void packet_start(Swim *s, Writer *w, OutPacket *p) {
        *w = (Writer) { p->data, SWIM_PACKET_MAX, 0, false };
        w_u8(w, SWIM_MAGIC0);
        w_u8(w, SWIM_MAGIC1);
        w_u8(w, SWIM_VERSION);
        w_str(w, s->self.pub.id);
}

/* Fills the rest of a packet with the least-sent broadcasts. The queue
 * keeps them roughly in transmit order without sorting: new ones enter at
 * the head, and one that was sent moves to the tail. */
static void piggyback(Swim *s, Writer *w) {
        unsigned limit = retransmit_limit(s), skipped = 0;
        GQueue sent = G_QUEUE_INIT;

        for (GList *l = s->broadcasts.head, *next; l && skipped < 32; l = next) {
                Broadcast *b = l->data;
                next = l->next;
                if (w->pos + b->size > w->size) {
                        skipped++;
                        continue;
                }
                w_bytes(w, b->msg, b->size);
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
        Writer w;

        packet_start(s, &w, p);
        if (msg)
                w_bytes(&w, msg, msg_size);
        if (with_gossip)
                piggyback(s, &w);
        p->to = *to;
        p->size = w.pos;
        g_queue_push_tail(&s->out, p);
        s->counters.packets_sent++;
}

static Member *member_get(Swim *s, const char *id);

static void send_ping(Swim *s, const SwimAddr *to, uint32_t seq, const char *target) {
        uint8_t body[80], msg[90 + 300];
        Writer w = { body, sizeof body, 0, false };
        Member *m = member_get(s, target);
        size_t n;

        w_u32(&w, seq);
        w_str(&w, target);
        n = msg_frame(MSG_PING, body, w.pos, msg, sizeof msg);
        /* Lifeguard's buddy system: a suspect we probe hears of the suspicion
         * in the ping itself, so it can refute at once, instead of waiting for
         * gossip whose retransmissions may all have gone elsewhere. */
        if (m && m->pub.state == SWIM_SUSPECT)
                n += encode_member_state(&m->pub, s->self.pub.id, msg + n, sizeof msg - n);
        send_packet(s, to, msg, n, true);
}

static void send_ack(Swim *s, const SwimAddr *to, uint32_t seq) {
        uint8_t msg[7] = { MSG_ACK, 0, 4, seq >> 24, (seq >> 16) & 0xff, (seq >> 8) & 0xff, seq & 0xff };
        send_packet(s, to, msg, sizeof msg, true);
}

static void emit(Swim *s, SwimEventType type, const SwimMember *m) {
        SwimEvent *e = g_new0(SwimEvent, 1);
        s->live_dirty = true;   /* every membership event may change the count */
        e->type = type;
        if (m)
                e->member = *m;
        g_queue_push_tail(&s->events, e);
}

/* --- member state changes ----------------------------------------------- */

static Member *member_get(Swim *s, const char *id) {
        return g_hash_table_lookup(s->by_id, id);
}

static void refute(Swim *s, uint32_t incarnation) {
        s->self.pub.incarnation = MAX(s->self.pub.incarnation, incarnation) + 1;
        awareness_adjust(s, +1);
        s->counters.refutations++;
        broadcast_member(s, &s->self.pub, s->self.pub.id);
}

static void on_alive(Swim *s, uint32_t inc, const char *id, const SwimAddr *addr, uint64_t now) {
        Member *m;

        if (streq(id, s->self.pub.id))
                return;         /* only we speak for ourselves */
        m = member_get(s, id);
        if (!m) {
                m = g_new0(Member, 1);
                g_strlcpy(m->pub.id, id, sizeof m->pub.id);
                m->pub.addr = *addr;
                m->pub.state = SWIM_ALIVE;
                m->pub.incarnation = inc;
                m->pub.state_change_usec = now;
                g_ptr_array_add(s->members, m);
                g_hash_table_insert(s->by_id, m->pub.id, m);
                g_ptr_array_add(s->probe_order, g_strdup(id));
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

static void on_suspect(Swim *s, uint32_t inc, const char *id, const char *from, uint64_t now) {
        Member *m;

        if (streq(id, s->self.pub.id)) {
                if (!s->leaving)
                        refute(s, inc);
                return;
        }
        m = member_get(s, id);
        if (!m || inc < m->pub.incarnation)
                return;
        if (m->pub.state == SWIM_SUSPECT) {
                /* An independent confirmation shortens the timeout. */
                if (streq(from, s->self.pub.id) || m->confirmations >= ELEMENTSOF(m->confirmers))
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
        m->suspect_deadline = now + suspicion_timeout(s, 0);
        s->member_deadline = MIN(s->member_deadline, m->suspect_deadline);
        emit(s, SWIM_EVENT_SUSPECT, &m->pub);
        broadcast_member(s, &m->pub, from);
}

static void on_dead(Swim *s, uint32_t inc, const char *id, const char *from, uint64_t now) {
        Member *m;

        if (streq(id, s->self.pub.id)) {
                if (!s->leaving)
                        refute(s, inc);
                return;
        }
        m = member_get(s, id);
        if (!m || inc < m->pub.incarnation || m->pub.state == SWIM_DEAD || m->pub.state == SWIM_LEFT)
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
        uint8_t body[SWIM_USER_MAX + 2 * 256 + 8];
        Writer w = { body, sizeof body, 0, false };
        char bkey[2 * SWIM_ID_MAX + 300];
        size_t n;

        w_str(&w, origin);
        w_str(&w, key);
        w_u16(&w, (uint16_t) size);
        w_bytes(&w, data, size);
        snprintf(bkey, sizeof bkey, "u:%s:%s", origin, key);
        uint8_t *msg = msg_new(MSG_USER, body, w.pos, &n);
        queue_broadcast(s, bkey, msg, n);
}

/* --- the public state machine ------------------------------------------- */

int swim_new(Swim **ret, const SwimConfig *cfg, const char *self_id, const SwimAddr *self_addr,
             uint64_t seed, uint64_t now_usec) {
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
        uint8_t buf[300];
        size_t n = encode_member_state(&s->self.pub, s->self.pub.id, buf, sizeof buf);
        uint8_t sync[3] = { MSG_SYNC_REQ, 0, 0 };
        uint8_t both[sizeof buf + sizeof sync];

        memcpy(both, buf, n);
        memcpy(both + n, sync, sizeof sync);
        send_packet(s, addr, both, n + sizeof sync, false);
        return 0;
}

void swim_leave(Swim *s, uint64_t now_usec) {
        s->leaving = true;
        s->self.pub.state = SWIM_LEFT;
        broadcast_member(s, &s->self.pub, s->self.pub.id);
        /* Tell a few members directly, so the leave does not wait for gossip:
         * distinct ones, from a random start (drawing with replacement could
         * pick one member twice and miss others in a small cluster). */
        guint start = s->members->len > 0 ? (guint) (rnd(s) % s->members->len) : 0;
        for (unsigned i = 0; i < s->members->len && i < s->cfg.gossip_nodes * 2; i++) {
                Member *m = s->members->pdata[(start + i) % s->members->len];
                if (m->pub.state == SWIM_ALIVE || m->pub.state == SWIM_SUSPECT)
                        send_packet(s, &m->pub.addr, NULL, 0, true);
        }
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
        Writer w;

        for (guint i = 0; i <= s->members->len; i++) {
                const SwimMember *m = i == 0 ? &s->self.pub : &((Member *) s->members->pdata[i - 1])->pub;
                uint8_t buf[300];
                size_t n = encode_member_state(m, s->self.pub.id, buf, sizeof buf);

                if (p && w.pos + n > w.size) {
                        p->size = w.pos;
                        g_queue_push_tail(&s->out, p);
                        s->counters.packets_sent++;
                        p = NULL;
                }
                if (!p) {
                        p = g_new(OutPacket, 1);
                        p->to = *to;
                        packet_start(s, &w, p);
                }
                w_bytes(&w, buf, n);
        }
        if (p) {
                p->size = w.pos;
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

/* Applies one message; the reader is positioned on its body (already bounds-checked). */
static void apply(Swim *s, uint8_t type, Reader *r, const SwimAddr *from, uint64_t now) {
        char id[SWIM_ID_MAX + 1], other[SWIM_ID_MAX + 1];
        SwimAddr addr;
        uint32_t u;

        switch (type) {
        case MSG_PING:
                u = r_u32(r);
                r_id(r, id);
                if (streq(id, s->self.pub.id))
                        send_ack(s, from, u);
                break;
        case MSG_ACK:
                u = r_u32(r);
                if (s->probing && u == s->probe_seq)
                        s->probe_acked = true;
                else
                        relay_ack(s, u);
                break;
        case MSG_PING_REQ: {
                Relay relay;
                u = r_u32(r);
                r_id(r, id);
                r_addr(r, &addr);
                relay = (Relay) {
                        .our_seq = ++s->seq, .their_seq = u, .requester = *from,
                        .expires = now + RELAY_TIMEOUT_FACTOR * s->cfg.probe_timeout_usec,
                };
                g_array_append_val(s->relays, relay);
                s->counters.indirect_probes++;
                send_ping(s, &addr, relay.our_seq, id);
                break;
        }
        case MSG_ALIVE:
                u = r_u32(r);
                r_id(r, id);
                r_addr(r, &addr);
                on_alive(s, u, id, &addr, now);
                break;
        case MSG_SUSPECT:
                u = r_u32(r);
                r_id(r, id);
                r_id(r, other);
                on_suspect(s, u, id, other, now);
                break;
        case MSG_DEAD:
                u = r_u32(r);
                r_id(r, id);
                r_id(r, other);
                on_dead(s, u, id, other, now);
                break;
        case MSG_USER: {
                char key[256];
                uint8_t klen;
                uint16_t size;
                r_id(r, id);
                klen = r_u8(r);
                r_bytes(r, key, klen);
                key[klen] = 0;
                size = r_u16(r);
                if (size > SWIM_USER_MAX || r->pos + size > r->size)
                        break;
                if (!seen_user(s, id, key, r->buf + r->pos, size)) {
                        SwimEvent *e = g_new0(SwimEvent, 1);
                        e->type = SWIM_EVENT_USER;
                        g_strlcpy(e->member.id, id, sizeof e->member.id);
                        memcpy(e->data, r->buf + r->pos, size);
                        e->size = size;
                        g_queue_push_tail(&s->events, e);
                        queue_user(s, id, key, r->buf + r->pos, size);   /* pass it on */
                }
                break;
        }
        case MSG_SYNC_REQ:
                answer_sync(s, from);
                break;
        default:
                break;          /* unknown types are skipped */
        }
}

/* Checks a whole packet before applying any of it. */
static bool validate(const uint8_t *p, size_t size) {
        Reader r = { p, size, 0, false };
        char id[SWIM_ID_MAX + 1];

        if (r_u8(&r) != SWIM_MAGIC0 || r_u8(&r) != SWIM_MAGIC1 || r_u8(&r) != SWIM_VERSION)
                return false;
        r_id(&r, id);
        while (!r.bad && r.pos < r.size) {
                uint8_t type = r_u8(&r);
                uint16_t len = r_u16(&r);
                if (r.bad || r.pos + len > r.size)
                        return false;
                Reader body = { p + r.pos, len, 0, false };
                SwimAddr a;
                switch (type) {
                case MSG_PING: r_u32(&body); r_id(&body, id); break;
                case MSG_ACK: r_u32(&body); break;
                case MSG_PING_REQ: r_u32(&body); r_id(&body, id); r_addr(&body, &a); break;
                case MSG_ALIVE: r_u32(&body); r_id(&body, id); r_addr(&body, &a); break;
                case MSG_SUSPECT:
                case MSG_DEAD: r_u32(&body); r_id(&body, id); r_id(&body, id); break;
                case MSG_USER: {
                        r_id(&body, id);
                        uint8_t kl = r_u8(&body);
                        r_bytes(&body, NULL, kl);
                        uint16_t dl = r_u16(&body);
                        if (dl > SWIM_USER_MAX)
                                return false;
                        r_bytes(&body, NULL, dl);
                        break;
                }
                default: break;
                }
                if (body.bad)
                        return false;
                r.pos += len;
        }
        return !r.bad;
}

int swim_receive(Swim *s, const SwimAddr *from, const uint8_t *packet, size_t size, uint64_t now_usec) {
        Reader r = { packet, size, 0, false };
        char sender[SWIM_ID_MAX + 1];

        if (!validate(packet, size)) {
                s->counters.packets_rejected++;
                return -EBADMSG;
        }
        s->counters.packets_received++;
        r.pos = 3;
        r_id(&r, sender);
        if (streq(sender, s->self.pub.id))
                return 0;       /* our own broadcast, looped back */
        while (r.pos < r.size) {
                uint8_t type = r_u8(&r);
                uint16_t len = r_u16(&r);
                Reader body = { packet + r.pos, len, 0, false };
                apply(s, type, &body, from, now_usec);
                r.pos += len;
        }
        return 0;
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
        if (m && m->pub.state == SWIM_ALIVE) {
                SwimMember sus = m->pub;
                on_suspect(s, sus.incarnation, sus.id, s->self.pub.id, now);
        }
}

void swim_tick(Swim *s, uint64_t now) {
        /* The probe in flight: indirect probes at the timeout, verdict at the deadline. */
        if (s->probing && !s->probe_acked && !s->probe_indirect_sent && now >= s->probe_timeout_at) {
                Member *target = member_get(s, s->probe_target);
                s->probe_indirect_sent = true;
                if (target) {
                        unsigned sent = 0;
                        for (unsigned tries = 0; sent < s->cfg.indirect_checks && tries < 4 * s->cfg.indirect_checks &&
                                                 s->members->len > 1; tries++) {
                                Member *via = s->members->pdata[rnd(s) % s->members->len];
                                uint8_t body[120], msg[130];
                                Writer w = { body, sizeof body, 0, false };
                                if (via == target || via->pub.state != SWIM_ALIVE)
                                        continue;
                                w_u32(&w, s->probe_seq);
                                w_str(&w, target->pub.id);
                                w_addr(&w, &target->pub.addr);
                                send_packet(s, &via->pub.addr, msg,
                                            msg_frame(MSG_PING_REQ, body, w.pos, msg, sizeof msg), true);
                                sent++;
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
                                        g_hash_table_remove(s->by_id, m->pub.id);
                                        g_ptr_array_remove_index_fast(s->members, i);
                                        s->live_dirty = true;
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
                Member *m = s->members->len > 0 ? s->members->pdata[rnd(s) % s->members->len] : NULL;
                if (m && m->pub.state == SWIM_ALIVE) {
                        uint8_t sync[3] = { MSG_SYNC_REQ, 0, 0 };
                        answer_sync(s, &m->pub.addr);
                        send_packet(s, &m->pub.addr, sync, sizeof sync, false);
                }
        }

        /* Gossip: push pending broadcasts to a few random members. */
        if (now >= s->next_gossip_at) {
                s->next_gossip_at = now + s->cfg.gossip_interval_usec;
                if (s->broadcasts.length > 0 && s->members->len > 0)
                        for (unsigned i = 0; i < s->cfg.gossip_nodes && s->broadcasts.length > 0; i++) {
                                Member *m = s->members->pdata[rnd(s) % s->members->len];
                                /* The recently dead are told too, so they can refute. */
                                if (m->pub.state == SWIM_LEFT)
                                        continue;
                                send_packet(s, &m->pub.addr, NULL, 0, true);
                        }
        }
}

uint64_t swim_next_deadline(const Swim *s) {
        uint64_t d = MIN(MIN(s->next_probe_at, s->next_gossip_at), s->next_push_pull_at);

        if (s->probing) {
                if (!s->probe_indirect_sent)
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

size_t swim_encode_state(const Swim *s, uint8_t *buf, size_t size) {
        Writer w = { buf, size, 0, false };

        w_u8(&w, 'J');
        w_u8(&w, 'S');
        w_u32(&w, s->members->len + 1);
        for (guint i = 0; i <= s->members->len; i++) {
                const SwimMember *m = i == 0 ? &s->self.pub : &((Member *) s->members->pdata[i - 1])->pub;
                uint8_t tmp[300];
                size_t n = encode_member_state(m, s->self.pub.id, tmp, sizeof tmp);
                w_bytes(&w, tmp, n);
        }
        return w.overflow ? 0 : w.pos;
}

int swim_merge_state(Swim *s, const uint8_t *buf, size_t size, uint64_t now_usec) {
        Reader r = { buf, size, 0, false };
        uint32_t count;

        if (r_u8(&r) != 'J' || r_u8(&r) != 'S')
                return -EBADMSG;
        count = r_u32(&r);
        /* Validate the whole state first: nothing of a bad one is applied. */
        size_t start = r.pos;
        for (uint32_t i = 0; i < count && !r.bad; i++) {
                uint8_t type = r_u8(&r);
                uint16_t len = r_u16(&r);
                if (type < MSG_ALIVE || type > MSG_DEAD)
                        r.bad = true;
                r_bytes(&r, NULL, len);
        }
        if (r.bad || r.pos != size)
                return -EBADMSG;
        r.pos = start;
        for (uint32_t i = 0; i < count; i++) {
                uint8_t type = r_u8(&r);
                uint16_t len = r_u16(&r);
                Reader body = { buf + r.pos, len, 0, false };
                char id[SWIM_ID_MAX + 1], from[SWIM_ID_MAX + 1];
                SwimAddr addr;
                uint32_t inc = r_u32(&body);
                r_id(&body, id);
                if (type == MSG_ALIVE) {
                        r_addr(&body, &addr);
                        if (!body.bad)
                                on_alive(s, inc, id, &addr, now_usec);
                } else {
                        r_id(&body, from);
                        /* Like memberlist: a remote "dead" is only a suspicion here,
                         * unless it is a leave, which the member said itself. */
                        if (!body.bad) {
                                if (type == MSG_DEAD && streq(id, from))
                                        on_dead(s, inc, id, from, now_usec);
                                else
                                        on_suspect(s, inc, id, from, now_usec);
                        }
                }
                r.pos += len;
        }
        return 0;
}
