/* SPDX-License-Identifier: MIT */
/* The store under concurrency: writer threads add, replace (a new TTL) and
 * remove records while reader threads answer queries with dns_answer() under
 * rcu_reader_lock(), as the answering threads do. Every answer must equal a
 * state the name really had while the query ran: not a mix of two states,
 * not memory already freed (run it under ASan and TSan too).
 *
 * Writers take turns (the store has one writer at a time; in the daemon the
 * control loop), and each write changes one record, so each is one published
 * state. Before a write, the writer appends the state it will produce to the
 * name's history; a reader notes the history's length before and after its
 * query, and the answer must be one of the states from the one current at
 * the start to the last announced at the end.
 *
 * Names: NAMES forward names, each with values from its own small pool
 * (several values and two owners, so values are shared and TTLs merge) and
 * sometimes a shared address, whose reverse name gathers the names holding
 * it (fewer than 32, so its chunk is replaced as a whole too). */

#include <ldns/ldns.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "dns-answer.h"
#include "rcu.h"
#include "store.h"

#define NAMES 12
#define VALUES 4 /* per name, besides the shared one */
#define OWNERS 2
#define WRITERS 2
#define READERS 3
#define WRITES 60000
#define HISTORY_MAX (WRITES + 1)
#define STATE_MAX 512

static const char *const owners[OWNERS] = { "hosts:/h/a", "docker:b" };
#define SHARED_ADDR "10.99.99.99"
#define SHARED_REVERSE "99.99.99.10.in-addr.arpa"

/* A history: the states a name had, in order. Only writers append (taking
 * turns under the writer lock); readers read the length with an acquire load
 * and only entries below it. */
typedef struct History {
        char *states[HISTORY_MAX];
        size_t len;
} History;

static Store *store;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static History history[NAMES + 1];                 /* the names, then the shared reverse name */
static uint32_t ttl_of[NAMES][VALUES + 1][OWNERS]; /* the writers' model: 0 = no record */
static bool writers_done;
static unsigned long n_checked, n_failed;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static const DnsAnswerConfig config = {
        .negative_ttl = 5,
        .soa_mname = "ns.joyride.invalid",
        .soa_rname = "hostmaster.joyride.invalid",
};

static void name_of(unsigned i, char *buf, size_t size) {
        snprintf(buf, size, "n%u.stress.test", i);
}

static void value_of(unsigned i, unsigned v, char *buf, size_t size) {
        if (v == VALUES)
                snprintf(buf, size, SHARED_ADDR);
        else
                snprintf(buf, size, "10.%u.0.%u", i, v);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "value/ttl value/ttl ..." sorted, or "-" for no records (NXDOMAIN). */
static void join_sorted(char **items, size_t n, char *out, size_t size) {
        size_t o = 0;

        if (n == 0) {
                snprintf(out, size, "-");
                return;
        }
        qsort(items, n, sizeof items[0], compare_strings);
        out[0] = 0;
        for (size_t k = 0; k < n; k++) {
                o += (size_t) snprintf(out + o, size - o, "%s%s", k ? " " : "", items[k]);
                free(items[k]);
        }
}

/* The answer a name's records make: each value once, with its lowest TTL. */
static void model_state(unsigned i, char *out, size_t size) {
        char *items[VALUES + 1];
        size_t n = 0;

        for (unsigned v = 0; v <= VALUES; v++) {
                uint32_t ttl = 0;
                char value[32];

                for (unsigned o = 0; o < OWNERS; o++)
                        if (ttl_of[i][v][o] && (!ttl || ttl_of[i][v][o] < ttl))
                                ttl = ttl_of[i][v][o];
                if (!ttl)
                        continue;
                value_of(i, v, value, sizeof value);
                if (asprintf(&items[n++], "%s/%u", value, ttl) < 0)
                        abort();
        }
        join_sorted(items, n, out, size);
}

/* The PTRs of the shared address: each name holding it, with its TTL there. */
static void model_reverse(char *out, size_t size) {
        char *items[NAMES];
        size_t n = 0;

        for (unsigned i = 0; i < NAMES; i++) {
                uint32_t ttl = 0;
                char name[64];

                for (unsigned o = 0; o < OWNERS; o++)
                        if (ttl_of[i][VALUES][o] && (!ttl || ttl_of[i][VALUES][o] < ttl))
                                ttl = ttl_of[i][VALUES][o];
                if (!ttl)
                        continue;
                name_of(i, name, sizeof name);
                if (asprintf(&items[n++], "%s./%u", name, ttl) < 0)
                        abort();
        }
        join_sorted(items, n, out, size);
}

static void history_append(History *h, const char *state) {
        char *copy = strdup(state);

        if (!copy || h->len >= HISTORY_MAX)
                abort();
        h->states[h->len] = copy;
        __atomic_store_n(&h->len, h->len + 1, __ATOMIC_RELEASE);
}

static size_t history_len(History *h) {
        return __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
}

static void *writer(void *arg) {
        unsigned seed = (unsigned) (uintptr_t) arg;

        for (unsigned k = 0; k < WRITES / WRITERS; k++) {
                unsigned i = (unsigned) rand_r(&seed) % NAMES;
                unsigned v = (unsigned) rand_r(&seed) % (VALUES + 1);
                unsigned o = (unsigned) rand_r(&seed) % OWNERS;
                unsigned dice = (unsigned) rand_r(&seed);
                char name[64], value[32], state[STATE_MAX];
                bool remove;
                uint32_t ttl;
                int r;

                name_of(i, name, sizeof name);
                value_of(i, v, value, sizeof value);

                pthread_mutex_lock(&writer_lock);
                /* Adds and TTL changes a bit more often than removals. */
                remove = ttl_of[i][v][o] && dice % 3 == 0;
                ttl = remove ? 0 : 1 + (dice >> 8) % 5;
                ttl_of[i][v][o] = ttl;
                model_state(i, state, sizeof state);
                history_append(&history[i], state);
                if (v == VALUES) {
                        model_reverse(state, sizeof state);
                        history_append(&history[NAMES], state);
                }
                if (remove)
                        r = store_remove(store, name, DNS_TYPE_A, value, owners[o]);
                else
                        r = store_add(store, name, DNS_TYPE_A, value, ttl, owners[o], 1, NULL, NULL);
                pthread_mutex_unlock(&writer_lock);
                if (r < 0) {
                        fprintf(stderr, "store change failed: %s\n", strerror(-r));
                        abort();
                }
        }
        return NULL;
}

/* The answer as a state string: "-" for a name that is not there (NXDOMAIN;
 * or REFUSED, for a reverse name under no address we hold), else the sorted
 * answers. */
static bool answer_state(const uint8_t *reply, size_t len, char *out, size_t size) {
        ldns_pkt *pkt = NULL;
        ldns_rr_list *an;
        char *items[64];
        size_t n = 0;

        if (ldns_wire2pkt(&pkt, reply, len) != LDNS_STATUS_OK)
                return false;
        if (ldns_pkt_get_rcode(pkt) == LDNS_RCODE_NXDOMAIN || ldns_pkt_get_rcode(pkt) == LDNS_RCODE_REFUSED) {
                ldns_pkt_free(pkt);
                snprintf(out, size, "-");
                return true;
        }
        an = ldns_pkt_answer(pkt);
        if (ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR || ldns_rr_list_rr_count(an) == 0 ||
            ldns_rr_list_rr_count(an) > ELEMENTSOF(items)) {
                ldns_pkt_free(pkt);
                return false;
        }
        for (size_t k = 0; k < ldns_rr_list_rr_count(an); k++) {
                const ldns_rr *rr = ldns_rr_list_rr(an, k);
                char *v = ldns_rdf2str(ldns_rr_rdf(rr, 0));

                if (!v || asprintf(&items[n++], "%s/%u", v, ldns_rr_ttl(rr)) < 0)
                        abort();
                free(v);
        }
        ldns_pkt_free(pkt);
        join_sorted(items, n, out, size);
        return true;
}

static size_t make_query(const char *name, uint16_t type, uint16_t id, uint8_t *buf) {
        size_t o = 12, start = 0;

        memset(buf, 0, 12);
        buf[0] = (uint8_t) (id >> 8);
        buf[1] = (uint8_t) id;
        buf[5] = 1; /* one question */
        for (size_t k = 0;; k++)
                if (name[k] == '.' || name[k] == 0) {
                        buf[o++] = (uint8_t) (k - start);
                        memcpy(buf + o, name + start, k - start);
                        o += k - start;
                        start = k + 1;
                        if (name[k] == 0)
                                break;
                }
        buf[o++] = 0;
        buf[o++] = (uint8_t) (type >> 8);
        buf[o++] = (uint8_t) type;
        buf[o++] = 0;
        buf[o++] = 1; /* IN */
        return o;
}

static void *reader(void *arg) {
        unsigned seed = (unsigned) (uintptr_t) arg;
        uint8_t query[512], reply[4096];
        unsigned long checked = 0, failed = 0;
        DnsPrefetch prefetch;

        rcu_attach_thread();
        while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
                unsigned i = (unsigned) rand_r(&seed) % (NAMES + 1);
                char name[64], got[STATE_MAX];
                size_t qlen, len, before, after;
                bool ok, found = false;

                if (i < NAMES)
                        name_of(i, name, sizeof name);
                else
                        snprintf(name, sizeof name, SHARED_REVERSE);
                qlen = make_query(name, i < NAMES ? DNS_TYPE_A : DNS_TYPE_PTR, (uint16_t) checked, query);

                before = history_len(&history[i]);
                rcu_reader_lock();
                /* As the answering threads do for a batch: the prefetch
                 * reads the name's slot, node and view as they change. */
                for (unsigned step = 0; step < DNS_PREFETCH_STEPS; step++)
                        dns_answer_prefetch(store, query, qlen, &prefetch, step);
                len = dns_answer(store, &config, DNS_TRANSPORT_UDP, query, qlen, reply, sizeof reply, NULL);
                rcu_reader_unlock();
                after = history_len(&history[i]);

                ok = len > 0 && answer_state(reply, len, got, sizeof got);
                /* The state at the start is the last one announced, or the
                 * one before it if that write had not happened yet. */
                for (size_t k = before >= 2 ? before - 2 : 0; ok && !found && k < after; k++)
                        found = streq(history[i].states[k], got);
                if (ok && !found && before <= 1)
                        found = streq(got, "-"); /* before the first write */
                if (!found) {
                        failed++;
                        if (failed <= 5)
                                fprintf(stderr,
                                        "%s: answer '%s' is no state the name had during the query "
                                        "(history %zu..%zu)\n",
                                        name, ok ? got : "(unparsable)", before, after);
                }
                checked++;
        }
        rcu_detach_thread();
        pthread_mutex_lock(&count_lock);
        n_checked += checked;
        n_failed += failed;
        pthread_mutex_unlock(&count_lock);
        return NULL;
}

int main(void) {
        pthread_t writers[WRITERS], readers[READERS];
        unsigned long writes = 0;

        if (store_new(&store) < 0)
                return 1;
        /* Another name under the same parent, so the parent never goes. */
        if (store_add(store, "fixed.stress.test", DNS_TYPE_A, "10.250.0.1", 30, "api", 0, NULL, NULL) != 1)
                return 1;

        for (unsigned k = 0; k < READERS; k++)
                if (pthread_create(&readers[k], NULL, reader, (void *) (uintptr_t) (1000 + k)) != 0)
                        return 1;
        for (unsigned k = 0; k < WRITERS; k++)
                if (pthread_create(&writers[k], NULL, writer, (void *) (uintptr_t) (1 + k)) != 0)
                        return 1;
        for (unsigned k = 0; k < WRITERS; k++)
                pthread_join(writers[k], NULL);
        __atomic_store_n(&writers_done, true, __ATOMIC_RELEASE);
        for (unsigned k = 0; k < READERS; k++)
                pthread_join(readers[k], NULL);

        for (unsigned i = 0; i <= NAMES; i++) {
                writes += history[i].len;
                for (size_t k = 0; k < history[i].len; k++)
                        free(history[i].states[k]);
        }
        store = store_free(store);

        printf("store-threads: %lu answers checked against %lu states, %lu wrong\n", n_checked, writes, n_failed);
        if (n_checked == 0 || n_failed > 0)
                return 1;
        return 0;
}
