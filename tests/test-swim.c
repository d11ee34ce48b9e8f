/* SPDX-License-Identifier: MIT */
/* The SWIM core under a simulated network, in one process: a virtual clock,
 * per-packet latency and loss, nodes that can be killed. Checks convergence,
 * failure detection, no false deaths under loss, and dissemination speed.
 * The figures printed here go in docs/cluster-protocol.md. */

#include <glib.h>
#include <math.h>
#include <stdio.h>

#include "swim.h"
#include "test-util.h"

#define STEP_USEC (5 * USEC_PER_MSEC)
#define BUCKETS 64 /* latency stays below BUCKETS steps */

typedef struct Packet {
        int to;
        SwimAddr from;
        size_t size;
        uint8_t data[SWIM_PACKET_MAX];
} Packet;

typedef struct Sim {
        unsigned n;
        Swim **nodes;
        bool *up;
        uint64_t now;
        double loss;
        GPtrArray *buckets[BUCKETS];
        uint64_t rng;
        uint64_t delivered, dropped;
        /* observations */
        unsigned *dead_seen; /* per node: how many DEAD events it saw (about anyone) */
        int watch;           /* node whose death we time, -1 none */
        bool *saw_watch_dead;
        bool watch_suspected; /* some node suspected the watched one */
        unsigned *user_seen;  /* per node: user broadcasts received */
        uint8_t *got;         /* per node, per numbered broadcast ("b<k>"): received */
        unsigned got_max;
} Sim;

static uint64_t sim_rnd(Sim *s) {
        s->rng ^= s->rng >> 12;
        s->rng ^= s->rng << 25;
        s->rng ^= s->rng >> 27;
        return s->rng * 2685821657736338717ULL;
}

static SwimAddr addr_of(unsigned i) {
        SwimAddr a = { .family = 4, .port = 8890 };
        a.ip[0] = 10;
        a.ip[1] = (uint8_t) (i >> 16);
        a.ip[2] = (uint8_t) (i >> 8);
        a.ip[3] = (uint8_t) i;
        return a;
}

static int index_of(const SwimAddr *a) {
        return a->ip[1] << 16 | a->ip[2] << 8 | a->ip[3];
}

static void sim_init_with(Sim *s, const SwimConfig *cfg, unsigned n, double loss, uint64_t seed) {
        *s = (Sim) { .n = n, .loss = loss, .rng = seed, .watch = -1 };
        s->nodes = g_new0(Swim *, n);
        s->up = g_new0(bool, n);
        s->dead_seen = g_new0(unsigned, n);
        s->saw_watch_dead = g_new0(bool, n);
        s->user_seen = g_new0(unsigned, n);
        for (unsigned i = 0; i < BUCKETS; i++)
                s->buckets[i] = g_ptr_array_new_with_free_func(g_free);
        for (unsigned i = 0; i < n; i++) {
                char id[32];
                SwimAddr a = addr_of(i);
                snprintf(id, sizeof id, "node-%u", i);
                CHECK(swim_new(&s->nodes[i], cfg, id, &a, seed * 7919 + i + 1, 0) == 0);
                s->up[i] = true;
        }
}

static void sim_init(Sim *s, unsigned n, double loss, uint64_t seed) {
        SwimConfig cfg;

        swim_config_lan(&cfg);
        sim_init_with(s, &cfg, n, loss, seed);
}

static void sim_done(Sim *s) {
        for (unsigned i = 0; i < s->n; i++)
                swim_free(s->nodes[i]);
        for (unsigned i = 0; i < BUCKETS; i++)
                g_ptr_array_free(s->buckets[i], TRUE);
        g_free(s->nodes);
        g_free(s->up);
        g_free(s->dead_seen);
        g_free(s->saw_watch_dead);
        g_free(s->user_seen);
        g_free(s->got);
}

static void drain(Sim *s, unsigned i) {
        SwimEvent ev;
        SwimAddr to;
        Packet p;

        while ((p.size = swim_pop_packet(s->nodes[i], &to, p.data)) > 0) {
                int dst = index_of(&to);
                if (dst < 0 || (unsigned) dst >= s->n)
                        continue;
                if ((double) (sim_rnd(s) % 1000000) / 1e6 < s->loss) {
                        s->dropped++;
                        continue;
                }
                /* 1 to 10 steps (5-50 ms) of latency */
                unsigned delay = 1 + (unsigned) (sim_rnd(s) % 10);
                Packet *q = g_memdup2(&p, sizeof p);
                q->to = dst;
                q->from = addr_of(i);
                g_ptr_array_add(s->buckets[(s->now / STEP_USEC + delay) % BUCKETS], q);
        }
        while (swim_pop_event(s->nodes[i], &ev)) {
                if (ev.type == SWIM_EVENT_DEAD)
                        s->dead_seen[i]++;
                if ((ev.type == SWIM_EVENT_DEAD || ev.type == SWIM_EVENT_LEFT) && s->watch >= 0) {
                        char id[32];
                        snprintf(id, sizeof id, "node-%d", s->watch);
                        if (streq(ev.member.id, id))
                                s->saw_watch_dead[i] = true;
                }
                if (ev.type == SWIM_EVENT_SUSPECT && s->watch >= 0) {
                        char id[32];
                        snprintf(id, sizeof id, "node-%d", s->watch);
                        if (streq(ev.member.id, id))
                                s->watch_suspected = true;
                }
                if (ev.type == SWIM_EVENT_USER) {
                        s->user_seen[i]++;
                        /* Numbered broadcasts: "b<k>" and a NUL. */
                        if (s->got && ev.size > 2 && ev.data[0] == 'b' && ev.data[ev.size - 1] == 0) {
                                char *end;
                                unsigned long k = strtoul((const char *) ev.data + 1, &end, 10);
                                if (*end == 0 && k < s->got_max)
                                        s->got[(size_t) i * s->got_max + k] = 1;
                        }
                }
        }
}

static void sim_step(Sim *s) {
        GPtrArray *bucket;

        s->now += STEP_USEC;
        bucket = s->buckets[(s->now / STEP_USEC) % BUCKETS];
        for (guint k = 0; k < bucket->len; k++) {
                Packet *p = bucket->pdata[k];
                if (!s->up[p->to])
                        continue;
                (void) swim_receive(s->nodes[p->to], &p->from, p->data, p->size, s->now);
                s->delivered++;
        }
        g_ptr_array_set_size(bucket, 0);
        for (unsigned i = 0; i < s->n; i++) {
                if (!s->up[i])
                        continue;
                if (swim_next_deadline(s->nodes[i]) <= s->now) {
                        swim_tick(s->nodes[i], s->now);
                        /* A deadline that a tick leaves in the past makes the
                         * daemon's timer fire again at once: a busy loop. */
                        CHECK(swim_next_deadline(s->nodes[i]) > s->now);
                }
                drain(s, i);
        }
}

static bool all_see_alive(Sim *s, unsigned expect) {
        for (unsigned i = 0; i < s->n; i++)
                if (s->up[i] && swim_alive_count(s->nodes[i]) != expect)
                        return false;
        return true;
}

static double run_until_converged(Sim *s, unsigned expect, double limit_sec) {
        uint64_t start = s->now;
        while (s->now - start < (uint64_t) (limit_sec * USEC_PER_SEC)) {
                sim_step(s);
                if (s->now % (100 * USEC_PER_MSEC) == 0 && all_see_alive(s, expect))
                        return (double) (s->now - start) / USEC_PER_SEC;
        }
        return -1;
}

static void join_all(Sim *s) {
        SwimAddr seed = addr_of(0);
        for (unsigned i = 1; i < s->n; i++) {
                swim_join(s->nodes[i], &seed, s->now);
                drain(s, i);
        }
}

static void test_converge_and_detect(unsigned n) {
        Sim s;
        double t;

        sim_init(&s, n, 0.0, 42);
        join_all(&s);
        t = run_until_converged(&s, n, 120);
        printf("swim: %u nodes converged in %.1f s (simulated), %llu packets delivered\n", n, t,
               (unsigned long long) s.delivered);
        CHECK(t > 0 && t < 60);

        /* Kill one node: everyone else must see it dead, within the longest
         * suspicion timeout plus a few periods of dissemination. */
        unsigned victim = n / 2;
        SwimConfig cfg;
        swim_config_lan(&cfg);
        double node_scale = MAX(1.0, log10((double) n));
        double max_suspicion = cfg.suspicion_max_mult * cfg.suspicion_mult * node_scale *
                               (double) cfg.probe_interval_usec / USEC_PER_SEC;
        s.watch = (int) victim;
        s.up[victim] = false;
        uint64_t killed_at = s.now;
        double detected = -1;
        double suspected = -1, first_dead = -1;
        while (s.now - killed_at < (uint64_t) ((max_suspicion + 30) * USEC_PER_SEC)) {
                sim_step(&s);
                if (suspected < 0 && s.watch_suspected)
                        suspected = (double) (s.now - killed_at) / USEC_PER_SEC;
                for (unsigned i = 0; i < n && first_dead < 0; i++)
                        if (s.saw_watch_dead[i])
                                first_dead = (double) (s.now - killed_at) / USEC_PER_SEC;
                bool all = true;
                for (unsigned i = 0; i < n && all; i++)
                        if (s.up[i] && !s.saw_watch_dead[i])
                                all = false;
                if (all) {
                        detected = (double) (s.now - killed_at) / USEC_PER_SEC;
                        break;
                }
        }
        printf("swim: %u nodes: a killed node was suspected after %.1f s, declared dead after %.1f s, "
               "seen dead by all in %.1f s (suspicion timeout %.0f..%.0f s)\n",
               n, suspected, first_dead, detected, max_suspicion / cfg.suspicion_max_mult, max_suspicion);
        CHECK(detected > 0 && detected <= max_suspicion + 10);
        /* Nobody alive was declared dead along the way. */
        unsigned false_deaths = 0;
        for (unsigned i = 0; i < n; i++)
                if (s.up[i])
                        false_deaths += s.dead_seen[i] - (s.saw_watch_dead[i] ? 1 : 0);
        CHECK(false_deaths == 0);
        sim_done(&s);
}

static void test_loss(unsigned n, double loss, double seconds) {
        Sim s;
        unsigned deaths = 0;
        double t;

        sim_init(&s, n, 0.0, 7);
        join_all(&s);
        t = run_until_converged(&s, n, 60);
        CHECK(t > 0);
        s.loss = loss;
        uint64_t start = s.now;
        while (s.now - start < (uint64_t) (seconds * USEC_PER_SEC))
                sim_step(&s);
        for (unsigned i = 0; i < n; i++)
                deaths += s.dead_seen[i];
        unsigned max_awareness = 0;
        for (unsigned i = 0; i < n; i++)
                max_awareness = MAX(max_awareness, swim_awareness(s.nodes[i]));
        printf("swim: %u nodes, %.0f%% loss for %.0f s: %u false death events, %llu packets dropped, max awareness "
               "%u\n",
               n, loss * 100, seconds, deaths, (unsigned long long) s.dropped, max_awareness);
        CHECK(deaths == 0);
        CHECK(all_see_alive(&s, n));
        sim_done(&s);
}

static void test_dissemination(unsigned n) {
        Sim s;
        SwimConfig cfg;
        double t;

        swim_config_lan(&cfg);
        sim_init(&s, n, 0.0, 99);
        join_all(&s);
        t = run_until_converged(&s, n, 120);
        CHECK(t > 0);
        /* Let the join gossip settle so the update is not queued behind it. */
        for (unsigned k = 0; k < 2000; k++)
                sim_step(&s);

        const uint8_t payload[] = "record app.example.com A 10.0.0.1 v1";
        CHECK(swim_broadcast(s.nodes[3], "records:node-3", payload, sizeof payload) == 0);
        uint64_t start = s.now;
        double reached = -1;
        while (s.now - start < 30 * USEC_PER_SEC) {
                sim_step(&s);
                unsigned have = 1;
                for (unsigned i = 0; i < n; i++)
                        if (i != 3 && s.user_seen[i] > 0)
                                have++;
                if (have == n) {
                        reached = (double) (s.now - start) / USEC_PER_SEC;
                        break;
                }
        }
        double periods = reached / ((double) cfg.gossip_interval_usec / USEC_PER_SEC);
        /* O(log n): each period every informed node tells gossip_nodes others,
         * so about log(n)/log(1 + gossip_nodes) periods, plus slack for latency. */
        double bound = 3 * ceil(log((double) n) / log(1.0 + cfg.gossip_nodes)) + 5;
        printf("swim: a record update reached all %u nodes in %.2f s = %.1f gossip periods (bound %.0f)\n", n, reached,
               periods, bound);
        CHECK(reached > 0 && periods <= bound);
        /* Each node saw it exactly once. */
        for (unsigned i = 0; i < n; i++)
                if (i != 3)
                        CHECK(s.user_seen[i] == 1);
        sim_done(&s);
}

/* How reliably gossip alone delivers: `count` numbered broadcasts from
 * random nodes, one every half second, then time for every retransmission
 * to run out; counts the (broadcast, node) pairs that never arrived. Only
 * piggybacked gossip carries user broadcasts here (the simulated SWIM sync
 * exchanges members, not records), so nothing repairs a miss. Returns the
 * misses. */
static unsigned test_delivery(unsigned n, double loss, unsigned mult, unsigned count) {
        SwimConfig cfg;
        Sim s;
        unsigned missed = 0;

        swim_config_lan(&cfg);
        cfg.retransmit_mult = mult;
        sim_init_with(&s, &cfg, n, 0.0, 1000 + n);
        join_all(&s);
        CHECK(run_until_converged(&s, n, 120) > 0);
        for (unsigned k = 0; k < 2000; k++)
                sim_step(&s);
        s.got_max = count;
        s.got = g_new0(uint8_t, (size_t) n * count);
        s.loss = loss;
        for (unsigned b = 0; b < count; b++) {
                char payload[32], key[32];
                unsigned from = (unsigned) (sim_rnd(&s) % n);
                snprintf(payload, sizeof payload, "b%u", b);
                snprintf(key, sizeof key, "key-%u", b);
                CHECK(swim_broadcast(s.nodes[from], key, (const uint8_t *) payload, strlen(payload) + 1) == 0);
                s.got[(size_t) from * count + b] = 1;
                for (unsigned k = 0; k < 100; k++)
                        sim_step(&s);
        }
        for (unsigned k = 0; k < 2000; k++)
                sim_step(&s);
        for (size_t i = 0; i < (size_t) n * count; i++)
                missed += !s.got[i];
        printf("swim: %u nodes, %.0f%% loss, retransmit multiplier %u: %u of %u deliveries missed by gossip\n", n,
               loss * 100, mult, missed, n * count);
        sim_done(&s);
        return missed;
}

static void test_refute_and_leave(void) {
        Sim s;

        sim_init(&s, 5, 0.0, 3);
        join_all(&s);
        CHECK(run_until_converged(&s, 5, 60) > 0);

        /* Node 1 is cut off until someone suspects it, then returns: it
         * refutes with a higher incarnation and nobody declares it dead. The
         * shortest suspicion timeout is 4 s: cut off for less than that. */
        s.watch = 1;
        s.up[1] = false;
        for (unsigned k = 0; k < 600 && !s.watch_suspected; k++)
                sim_step(&s);
        CHECK(s.watch_suspected);
        s.up[1] = true;
        s.watch = -1;
        for (unsigned k = 0; k < 2000; k++)
                sim_step(&s);
        CHECK(all_see_alive(&s, 5));
        for (unsigned i = 0; i < 5; i++)
                CHECK(s.dead_seen[i] == 0);
        const SwimMember *ms;
        size_t nm = swim_members(s.nodes[1], &ms);
        CHECK(nm == 5 && ms[0].incarnation > 0);

        /* A graceful leave is seen as LEFT by all, fast. */
        s.watch = 4;
        swim_leave(s.nodes[4], s.now);
        drain(&s, 4);
        for (unsigned k = 0; k < 400; k++) {
                sim_step(&s);
                if (k == 20)
                        s.up[4] = false;
        }
        for (unsigned i = 0; i < 4; i++)
                CHECK(s.saw_watch_dead[i]);
        sim_done(&s);
}

/* Appends an ALIVE for id at 10.0.0.9:7946 to a packet. */
static size_t put_alive(uint8_t *p, size_t n, const char *id) {
        size_t l = strlen(id), body = 4 + 1 + l + 1 + 16 + 2;

        p[n++] = 4; /* ALIVE */
        p[n++] = 0;
        p[n++] = (uint8_t) body;
        memcpy(p + n, "\0\0\0\1", 4);
        n += 4;
        p[n++] = (uint8_t) l;
        memcpy(p + n, id, l);
        n += l;
        p[n++] = 4;
        memset(p + n, 0, 16);
        memcpy(p + n, "\12\0\0\11", 4);
        n += 16;
        p[n++] = 0x1f;
        p[n++] = 0x0a;
        return n;
}

/* A packet is parsed whole before any of it is applied: a bad message after
 * a good one rejects both; unknown message types are skipped; ids follow the
 * node-id rule. */
static void test_all_or_nothing(Swim *sw, const SwimAddr *from) {
        uint8_t p[256] = { 'J', 'R', 1, 1, 'x' };
        size_t n;

        n = put_alive(p, 5, "newbie");
        memcpy(p + n, "\1\0\10\0\0\0\1\7", 8); /* a PING whose target runs past the end */
        CHECK(swim_receive(sw, from, p, n + 8, 1) == -EBADMSG);
        CHECK(swim_alive_count(sw) == 1);

        n = put_alive(p, 5, "new bie");
        CHECK(swim_receive(sw, from, p, n, 1) == -EBADMSG);
        CHECK(swim_alive_count(sw) == 1);

        memcpy(p + 5, "\143\0\2zz", 5); /* type 99, two bytes: skipped */
        n = put_alive(p, 10, "newbie");
        CHECK(swim_receive(sw, from, p, n, 1) == 0);
        CHECK(swim_alive_count(sw) == 2);
}

static void test_hostile_packets(void) {
        Swim *sw;
        SwimConfig cfg;
        SwimAddr a = addr_of(1), from = addr_of(2);
        uint8_t buf[SWIM_PACKET_MAX];
        GRand *r = g_rand_new_with_seed(1);

        swim_config_lan(&cfg);
        CHECK(swim_new(&sw, &cfg, "victim", &a, 1, 0) == 0);
        CHECK(swim_receive(sw, &from, (const uint8_t *) "", 0, 1) == -EBADMSG);
        CHECK(swim_receive(sw, &from, (const uint8_t *) "JR\001", 3, 1) == -EBADMSG);
        /* An ALIVE whose id runs past the end of the packet. */
        const uint8_t bad[] = { 'J', 'R', 1, 1, 'x', 4, 0, 30, 0, 0, 0, 1, 40, 'y' };
        CHECK(swim_receive(sw, &from, bad, sizeof bad, 1) == -EBADMSG);
        CHECK(swim_alive_count(sw) == 1);
        test_all_or_nothing(sw, &from);
        for (unsigned i = 0; i < 20000; i++) {
                size_t n = (size_t) g_rand_int_range(r, 0, 200);
                for (size_t k = 0; k < n; k++)
                        buf[k] = (uint8_t) g_rand_int(r);
                if (n > 3) {
                        buf[0] = 'J';
                        buf[1] = 'R';
                        buf[2] = 1;
                }
                (void) swim_receive(sw, &from, buf, n, i);
                swim_tick(sw, i * 1000);
                SwimAddr to;
                while (swim_pop_packet(sw, &to, buf) > 0)
                        ;
                SwimEvent ev;
                while (swim_pop_event(sw, &ev))
                        ;
        }
        CHECK(swim_get_counters(sw)->packets_rejected > 0);
        CHECK(swim_merge_state(sw, (const uint8_t *) "JS\0\0\0\5", 6, 1) == -EBADMSG);
        swim_free(sw);
        g_rand_free(r);
}

/* One packet from `sender` announcing `count` members fake-<first>... as alive. */
static size_t fake_alives(uint8_t *buf, const char *sender, unsigned first, unsigned count) {
        size_t n = 0, sl = strlen(sender);

        buf[n++] = 'J';
        buf[n++] = 'R';
        buf[n++] = 1;
        buf[n++] = (uint8_t) sl;
        memcpy(buf + n, sender, sl);
        n += sl;
        for (unsigned i = first; i < first + count; i++) {
                char id[32];
                size_t il = (size_t) snprintf(id, sizeof id, "fake-%u", i);
                size_t body = 4 + 1 + il + 19;
                buf[n++] = 4; /* ALIVE */
                buf[n++] = 0;
                buf[n++] = (uint8_t) body;
                memset(buf + n, 0, 4); /* incarnation 0 */
                n += 4;
                buf[n++] = (uint8_t) il;
                memcpy(buf + n, id, il);
                n += il;
                buf[n++] = 4;
                memset(buf + n, 0, 16);
                buf[n] = 10;
                buf[n + 1] = (uint8_t) (i >> 16);
                buf[n + 2] = (uint8_t) (i >> 8);
                buf[n + 3] = (uint8_t) i;
                n += 16;
                buf[n++] = 0x22;
                buf[n++] = 0xc2;
        }
        return n;
}

static void test_member_cap(void) {
        Swim *sw;
        SwimConfig cfg;
        SwimAddr a = addr_of(1), from = addr_of(2);
        uint8_t buf[SWIM_PACKET_MAX];
        const SwimMember *ms;

        swim_config_lan(&cfg);
        CHECK(cfg.members_max == 1000);
        cfg.members_max = 50;
        cfg.dead_reclaim_usec = 24 * 3600 * USEC_PER_SEC; /* the dead stay, and fill the table */
        CHECK(swim_new(&sw, &cfg, "victim", &a, 1, 0) == 0);
        /* 5,000 made-up members from one sender: 50 are kept, the rest counted. */
        for (unsigned i = 0; i < 5000; i += 25)
                CHECK(swim_receive(sw, &from, buf, fake_alives(buf, "intruder", i, 25), 1) == 0);
        CHECK(swim_members(sw, &ms) == 51);
        CHECK(swim_get_counters(sw)->members_dropped == 4950);
        CHECK(swim_member(sw, "fake-0") && !swim_member(sw, "fake-50"));
        CHECK(swim_forget(sw, "fake-0") == -EBUSY);
        CHECK(swim_forget(sw, "nobody") == -ENOENT);

        /* Those that never answer die (slowly: every failed probe slows our
         * probing down, as Lifeguard wants); then a real newcomer finds room, and
         * the one dead longest is forgotten for it. */
        for (uint64_t t = 1; t < 3600 * USEC_PER_SEC; t += 10 * USEC_PER_MSEC) {
                SwimAddr to;
                SwimEvent ev;
                swim_tick(sw, t);
                while (swim_pop_packet(sw, &to, buf) > 0)
                        ;
                while (swim_pop_event(sw, &ev))
                        ;
                if (swim_alive_count(sw) == 1)
                        break;
        }
        CHECK(swim_alive_count(sw) == 1);
        size_t before = swim_members(sw, &ms);
        CHECK(swim_receive(sw, &from, buf, fake_alives(buf, "newcomer", 90000, 1), 1) == 0);
        CHECK(swim_member(sw, "fake-90000") != NULL);
        CHECK(swim_members(sw, &ms) == before && before == 51);
        /* And an operator may forget a dead one. */
        for (size_t i = 1; i < (size_t) swim_members(sw, &ms); i++)
                if (ms[i].state == SWIM_DEAD) {
                        char id[SWIM_ID_MAX + 1];
                        g_strlcpy(id, ms[i].id, sizeof id);
                        CHECK(swim_forget(sw, id) == 0);
                        CHECK(swim_member(sw, id) == NULL);
                        break;
                }
        swim_free(sw);
}

int main(int argc, char *argv[]) {
        test_hostile_packets();
        test_member_cap();
        test_refute_and_leave();
        if (argc > 1 && streq(argv[1], "--small"))
                return 0;
        if (argc > 2 && streq(argv[1], "--detect")) {
                test_converge_and_detect((unsigned) strtoul(argv[2], NULL, 10));
                return 0;
        }
        /* Distinct gossip targets, and no transmission spent on a member
         * that has the news while another may lack it, let memberlist's
         * multiplier of 4 deliver at least as reliably as 6 did with targets
         * drawn with replacement, in clusters small enough for the limit to
         * be 4 x 1 (that missed 0.13% at 8 nodes without loss, 0.34% with
         * 10% loss; 4 missed 1.4% and 2.3%). --delivery prints both
         * multipliers for docs/cluster-protocol.md. */
        static const unsigned sizes[] = { 4, 8, 16, 50 };
        bool matrix = argc > 1 && streq(argv[1], "--delivery");
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (unsigned mult = 4; mult <= (matrix ? 6u : 4u); mult += 2) {
                        unsigned n = sizes[i], count = matrix ? 1000 : 500;
                        unsigned lossless = test_delivery(n, 0.0, mult, count);
                        unsigned lossy = test_delivery(n, 0.10, mult, count);
                        if (!matrix) {
                                CHECK(lossless * 1000 <= n * count);
                                CHECK(lossy * 1000 <= 3 * n * count);
                        }
                }
        if (matrix)
                return 0;
        test_converge_and_detect(1000);
        test_loss(100, 0.10, 300);
        test_dissemination(1000);
        printf("swim: all checks passed\n");
        return 0;
}
