/* SPDX-License-Identifier: MIT */
/* The record store. See store.h for the model.
 *
 * Two planes. The control plane (the thread that changes the store, in the
 * daemon the control loop) keeps the records: each with its owner, line and
 * detail, listed at its node and at its owner, so a source's records can be
 * marked, swept or dropped without a scan. The answer path reads only what
 * the control plane publishes for it, under RCU (rcu.h): every change builds
 * new immutable data, publishes it with one pointer store, and frees the old
 * after a grace period. Nothing the answer path reads is ever changed in
 * place.
 *
 * Names: an RCU hash set (rcu-hash.h) of nodes keyed by their lowercased wire
 * name. Every ancestor of a name with data is a node too, so "does this name
 * exist" and "closest encloser" are single lookups; a node is in the set
 * exactly while it holds records or has nodes below it. A node's view
 * (its rrsets: deduplicated values with the lowest TTL of their owners) is
 * rebuilt from its records on each change and swapped in whole. A new name
 * enters the set with its view already in place; a name that goes leaves the
 * set with its last view; so a reader finds a name as it was before a change
 * or after it.
 *
 * Reverse names are not nodes. An address index (an RCU hash set keyed by
 * address) gives the names holding each address, in immutable chunks of up
 * to ADDR_CHUNK_MAX, newest first; counts of address prefixes (in-addr.arpa
 * octets, ip6.arpa nibbles) answer "does 2.0.192.in-addr.arpa exist". A
 * reverse name is parsed back into an address or a prefix when asked, and
 * the TTL of each derived PTR is read from its name's view. That saves a
 * node, a view and a hash slot per address, which was a third of the memory
 * and of the load time with a large hosts file. */

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <glib.h>
#include <malloc.h>
#include <stdio.h>
#include <time.h>

#include "macro.h"
#include "rcu-hash.h"
#include "store.h"
#include "time-util.h"

/* The owners of one source: the part of an owner's name up to its first
 * ':' ("hosts:", "etcd:"), or the whole name ("dbus"). Counted as records
 * come and go, so that counting a source's records does not walk its owners
 * (etcd has one per key). */
typedef struct OwnerKind {
        char *name;
        size_t count;    /* records */
        size_t n_owners; /* the kind goes with its last owner */
} OwnerKind;

typedef struct Owner {
        char *name;
        Record *head;
        size_t count;
        OwnerKind *kind;
} Owner;

typedef struct Subscriber {
        StoreSubscriber cb; /* NULL: unsubscribed while notifying, removed afterwards */
        void *userdata;
} Subscriber;

/* An address prefix that some held address starts with: an item of
 * Store.prefixes. Bits past the prefix are zero. Only the control plane
 * reads or writes count; the rest is the key, fixed once in the set. */
typedef struct Prefix {
        uint32_t count; /* addresses under it */
        uint8_t rdlen;  /* 4 or 16 */
        uint8_t bits;   /* 8, 16, 24 (IPv4); a multiple of 4 below 128 (IPv6) */
        uint8_t addr[16];
} Prefix;

struct Store {
        RcuHash nodes;      /* StoreNode, by wire name (owned) */
        RcuHash addrs;      /* StoreAddr, the newest chunk of each address (owned, with the older ones) */
        RcuHash prefixes;   /* Prefix (owned) */
        GHashTable *owners; /* name -> Owner (owns); control plane only */
        GHashTable *kinds;  /* name -> OwnerKind (owns); control plane only */
        size_t n_addrs[2];  /* addresses held: IPv4, IPv6; the answer path reads them */
        GArray *subscribers;
        bool notifying;   /* subscribers are being called: unsubscribe only marks */
        uint64_t version; /* the answer path reads it (SOA serial) */
        size_t n_records;

        /* What changes replaced, to free after a grace period: handed to
         * liburcu in one go by store_flush(), at the end of each change
         * unless a flush hook batches several changes. */
        GPtrArray *retired;
        StoreFlushHook flush_hook;
        void *flush_userdata;
        bool flush_requested; /* the hook was called since the last store_flush() */
};

/* Counters the answer path reads while the writer changes them: relaxed
 * atomics, each written by the writer alone. */
#define SHARED_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SHARED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static void request_flush(Store *s) {
        if (s->flush_hook && !s->flush_requested) {
                s->flush_requested = true;
                s->flush_hook(s, s->flush_userdata);
        }
}

static void free_later(Store *s, const void *p) {
        if (!p)
                return;
        if (!s->retired)
                s->retired = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(s->retired, (void *) p);
        request_flush(s);
}

static bool rebuilding(const Store *s) {
        return rcu_hash_rebuilding(&s->nodes) || rcu_hash_rebuilding(&s->addrs) || rcu_hash_rebuilding(&s->prefixes);
}

/* On liburcu's call_rcu thread, after the grace period. A large batch (a
 * hosts file or a peer's records going) is handed back to the system at once:
 * this is the last free of that memory, after any trim the source did when
 * it dropped its own, and malloc would keep it otherwise. */
#define RETIRED_TRIM_MIN 1024u

static void retired_free(void *p) {
        GPtrArray *a = p;
        bool large = a->len >= RETIRED_TRIM_MIN;

        g_ptr_array_unref(a);
        if (large)
                (void) malloc_trim(0);
}

/* Slots of an index rebuild copied per store_flush(), per index: about
 * 0.2 ms at 100,000 names. */
#define SETTLE_SLOTS 4096u

bool store_flush(Store *s) {
        bool more = false;

        s->flush_requested = false;
        if (s->retired)
                rcu_free_deferred(TAKE_PTR(s->retired), retired_free);
        more |= rcu_hash_settle(&s->nodes, SETTLE_SLOTS);
        more |= rcu_hash_settle(&s->addrs, SETTLE_SLOTS);
        more |= rcu_hash_settle(&s->prefixes, SETTLE_SLOTS);
        return more;
}

/* The end of a change: what it replaced goes to liburcu now, unless the
 * hook's owner flushes later (once per loop iteration, say). */
static void change_done(Store *s) {
        if (!s->flush_hook)
                (void) store_flush(s);
        else if (rebuilding(s))
                request_flush(s);
}

void store_set_flush_hook(Store *s, StoreFlushHook hook, void *userdata) {
        s->flush_hook = hook;
        s->flush_userdata = userdata;
        s->flush_requested = false;
        if (s->retired || rebuilding(s))
                request_flush(s);
}

/* --- names --------------------------------------------------------------- */

static size_t wire_len(const uint8_t *w) {
        size_t n = 0;
        while (w[n] != 0)
                n += w[n] + 1;
        return n + 1;
}

static uint32_t wire_hash(const uint8_t *w, size_t n) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t i = 0; i < n; i++) {
                h ^= w[i];
                h *= 16777619u;
        }
        return h;
}

/* --- views: what the answer path reads of a name ------------------------ */

/* Memory matters here: 100,000 names should fit in a few tens of MiB. So a
 * node is one allocation (struct, wire key, and the name when it has
 * records), a view is one packed allocation (a single A record makes 21
 * bytes), reverse names are no nodes at all (see the address index below),
 * and the name set is an array of pointers.
 *
 * A view, read-only once published:
 *   uint8_t n_rrsets;
 *   per rrset: uint16_t type, uint32_t n (values), uint32_t size (bytes of
 *     its values), then its values, each: uint32_t ttl, uint16_t rdlen, rdata.
 * Host byte order, unaligned (read with memcpy). Rrsets come in the order
 * their type first appears among the node's records, oldest first; values
 * likewise, so the first CNAME is the oldest one still held. */
struct StoreView {
        uint8_t n_rrsets;
        uint8_t data[];
};

#define VIEW_RRSET_HEADER 10

static bool record_same_value(const Record *r, uint16_t type, const uint8_t *rdata, uint16_t rdlen) {
        return r->type == type && r->rdlen == rdlen && memcmp(r->rdata, rdata, rdlen) == 0;
}

/* Builds the view of a node's records: NULL when it has none. */
static StoreView *view_build(const StoreNode *n) {
        g_autofree const Record **heap = NULL;
        const Record *stack[16], **recs = stack;
        StoreView *v = NULL;
        size_t count = 0;

        for (const Record *r = n->records; r; r = r->node_next)
                count++;
        if (count == 0)
                return NULL;
        if (count > ELEMENTSOF(stack))
                recs = heap = g_new(const Record *, count);
        /* The node's list is newest first. */
        {
                size_t i = count;
                for (const Record *r = n->records; r; r = r->node_next)
                        recs[--i] = r;
        }

        /* Twice: to measure, then to write. */
        for (int pass = 0; pass < 2; pass++) {
                size_t off = 0;
                unsigned n_rrsets = 0;

                for (size_t i = 0; i < count; i++) {
                        uint16_t type = recs[i]->type;
                        size_t header = off, start;
                        uint32_t n_values = 0, size;
                        bool seen = false;

                        for (size_t j = 0; j < i && !seen; j++)
                                seen = recs[j]->type == type;
                        if (seen)
                                continue;
                        n_rrsets++;
                        off += VIEW_RRSET_HEADER;
                        start = off;

                        for (size_t j = i; j < count; j++) {
                                const Record *r = recs[j];
                                uint32_t ttl = r->ttl;

                                if (r->type != type)
                                        continue;
                                seen = false;
                                for (size_t k = i; k < j && !seen; k++)
                                        seen = record_same_value(recs[k], type, r->rdata, r->rdlen);
                                if (seen)
                                        continue;
                                /* One value for all its owners, with their lowest TTL. */
                                for (size_t k = j + 1; k < count; k++)
                                        if (record_same_value(recs[k], type, r->rdata, r->rdlen))
                                                ttl = MIN(ttl, recs[k]->ttl);
                                if (v) {
                                        memcpy(v->data + off, &ttl, 4);
                                        memcpy(v->data + off + 4, &r->rdlen, 2);
                                        memcpy(v->data + off + 6, r->rdata, r->rdlen);
                                }
                                off += 6 + r->rdlen;
                                n_values++;
                        }
                        size = (uint32_t) (off - start);
                        if (v) {
                                memcpy(v->data + header, &type, 2);
                                memcpy(v->data + header + 2, &n_values, 4);
                                memcpy(v->data + header + 6, &size, 4);
                        }
                }
                if (!v) {
                        v = g_malloc(sizeof(StoreView) + off);
                        v->n_rrsets = (uint8_t) n_rrsets;
                }
        }
        return v;
}

static const uint8_t *view_rrset_read(const uint8_t *p, StoreRRSet *ret) {
        uint32_t size;

        memcpy(&ret->type, p, 2);
        memcpy(&ret->n, p + 2, 4);
        memcpy(&size, p + 6, 4);
        ret->first = p + VIEW_RRSET_HEADER;
        return ret->first + size;
}

unsigned store_view_n_rrsets(const StoreView *v) {
        return v ? v->n_rrsets : 0;
}

bool store_view_rrset(const StoreView *v, uint16_t type, StoreRRSet *ret) {
        const uint8_t *p = v ? v->data : NULL;

        for (unsigned i = 0; v && i < v->n_rrsets; i++) {
                p = view_rrset_read(p, ret);
                if (ret->type == type)
                        return true;
        }
        *ret = (StoreRRSet) {};
        return false;
}

void store_view_rrset_at(const StoreView *v, unsigned i, StoreRRSet *ret) {
        const uint8_t *p = v->data;

        assert(i < v->n_rrsets);
        for (unsigned k = 0; k <= i; k++)
                p = view_rrset_read(p, ret);
}

/* --- nodes --------------------------------------------------------------- */

typedef struct WireKey {
        const uint8_t *wire;
        size_t len;
} WireKey;

static uint32_t node_hash(const void *item) {
        return ((const StoreNode *) item)->hash;
}

static bool node_match(const void *item, uint32_t hash, const void *key) {
        const StoreNode *n = item;
        const WireKey *k = key;

        return n->hash == hash && wire_len(store_node_wire(n)) == k->len &&
               memcmp(store_node_wire(n), k->wire, k->len) == 0;
}

static StoreNode *node_lookup(const Store *s, const uint8_t *wire, size_t len) {
        WireKey k = { wire, len };

        return rcu_hash_lookup(&s->nodes, wire_hash(wire, len), node_match, &k);
}

/* A record's node: its name is the node's, stored right after the wire
 * name, which is two bytes longer (the first length byte and the root).
 * This saves a pointer in every record. */
static StoreNode *record_node(const Record *r) {
        return (StoreNode *) (r->name - (strlen(r->name) + 2)) - 1;
}

/* A node, not yet in the set. name, when given, is the presentation form
 * (lowercased, no trailing dot, len - 2 bytes) to keep inline, for the
 * records at the node. */
static StoreNode *node_alloc(const uint8_t *wire, size_t len, const char *name) {
        size_t name_size = name ? len - 1 : 0;
        StoreNode *n = g_malloc(sizeof(StoreNode) + len + name_size);

        *n = (StoreNode) {
                .hash = wire_hash(wire, len),
                .has_name = name != NULL,
        };
        memcpy(n + 1, wire, len);
        if (name)
                memcpy((char *) (n + 1) + len, name, name_size);
        return n;
}

static char *node_name(StoreNode *n) {
        return n->has_name ? (char *) (n + 1) + wire_len(store_node_wire(n)) : NULL;
}

/* Counts a new node under its parent, making the ancestors that are missing
 * (in the set at once: they hold nothing, so each reads as an empty
 * non-terminal, which it is after the change too). Top down, so that a
 * reader never finds a name whose parent is not there. */
static void node_count_child(Store *s, const uint8_t *wire, size_t len) {
        const uint8_t *missing[DNS_WIRE_NAME_MAX / 2];
        size_t missing_len[DNS_WIRE_NAME_MAX / 2], n_missing = 0;
        StoreNode *found = NULL;

        while (wire[0] != 0) {
                size_t plen = len - wire[0] - 1;

                wire += wire[0] + 1;
                len = plen;
                if (wire[0] == 0)
                        break; /* no node for the root */
                found = node_lookup(s, wire, len);
                if (found)
                        break;
                missing[n_missing] = wire;
                missing_len[n_missing++] = len;
        }
        if (found)
                found->n_children++;
        for (size_t i = n_missing; i > 0; i--) {
                StoreNode *n = node_alloc(missing[i - 1], missing_len[i - 1], NULL);

                n->n_children = 1;
                rcu_hash_add(&s->nodes, n);
        }
}

/* Finds or makes the node of a name about to hold a record; n is what
 * node_lookup() found (NULL: none). A new node is not in the set yet
 * (*ret_new): node_publish() adds it once its view is there, so that readers
 * never see the new name without its data. */
static StoreNode *node_get(Store *s, StoreNode *n, const uint8_t *wire, size_t len, const char *name, bool *ret_new) {
        *ret_new = false;
        if (n) {
                if (!n->has_name) {
                        /* An ancestor about to hold records itself: a copy with
                         * room for the name takes its place. Nothing points to
                         * a node without records but the set and readers, and
                         * it has no view: readers see the same empty name. */
                        StoreNode *m = node_alloc(wire, len, name);

                        assert(!n->records && !n->view);
                        m->n_children = n->n_children;
                        rcu_hash_replace(&s->nodes, n, m);
                        free_later(s, n);
                        n = m;
                }
                return n;
        }

        n = node_alloc(wire, len, name);
        node_count_child(s, wire, len);
        *ret_new = true;
        return n;
}

/* Publishes the view of a node's records as they are now; adds a new node to
 * the set after its view. */
static void node_publish(Store *s, StoreNode *n, bool is_new) {
        const StoreView *old = n->view;

        rcu_publish(n->view, (const StoreView *) view_build(n));
        if (is_new)
                rcu_hash_add(&s->nodes, n);
        free_later(s, old);
}

/* Drops nodes that hold nothing, walking up. A node leaves the set with its
 * last view: a reader finds it as it was, or not at all. */
static void node_prune(Store *s, StoreNode *n) {
        while (n && !n->records && n->n_children == 0) {
                const uint8_t *wire = store_node_wire(n);
                StoreNode *parent = NULL;

                if (wire[0] != 0 && wire[wire[0] + 1] != 0)
                        parent = node_lookup(s, wire + wire[0] + 1, wire_len(wire) - wire[0] - 1);
                rcu_hash_remove(&s->nodes, n);
                free_later(s, n->view);
                free_later(s, n);
                if (parent)
                        parent->n_children--;
                n = parent;
        }
}

/* --- the address index (derived PTRs) ------------------------------------ */

/* The names holding one address, newest first, in chunks, each with the
 * TTL of its PTR (the lowest TTL of its records with the address). Only the
 * link to the next chunk changes once a chunk is published (when the chunk
 * after it is replaced or goes); adding, retuning or removing a name
 * replaces its chunk with a new one, so a reader that holds a chunk sees it
 * whole. Most addresses have one name, in one chunk, without a link: 32
 * bytes for an IPv4 address. */
struct StoreAddr {
        uint16_t n;       /* names in this chunk */
        uint8_t rdlen;    /* 4 or 16 */
        uint8_t has_next; /* a link to older names follows the address */
        uint8_t addr[];   /* rdlen bytes; then, 8-byte aligned, the link (read with
                                 * rcu_dereference()), the nodes and their TTLs */
};

#define ADDR_CHUNK_MAX 32u

static size_t addr_after_key(uint8_t rdlen) {
        return (offsetof(StoreAddr, addr) + rdlen + 7) & ~(size_t) 7;
}

static StoreAddr **addr_link_field(const StoreAddr *a) {
        assert(a->has_next);
        return (StoreAddr **) ((uint8_t *) a + addr_after_key(a->rdlen));
}

static StoreAddr *addr_next(const StoreAddr *a) {
        return a->has_next ? rcu_dereference(*addr_link_field(a)) : NULL;
}

static const StoreNode **addr_nodes(const StoreAddr *a) {
        return (const StoreNode **) ((uint8_t *) a + addr_after_key(a->rdlen) +
                                     (a->has_next ? sizeof(StoreAddr *) : 0));
}

static uint32_t *addr_ttls(const StoreAddr *a) {
        return (uint32_t *) (addr_nodes(a) + a->n);
}

static StoreAddr *addr_alloc(const uint8_t *addr, uint8_t rdlen, size_t n, StoreAddr *next) {
        StoreAddr *a = g_malloc(addr_after_key(rdlen) + (next ? sizeof(StoreAddr *) : 0) +
                                n * (sizeof(StoreNode *) + sizeof(uint32_t)));

        a->n = (uint16_t) n;
        a->rdlen = rdlen;
        a->has_next = next != NULL;
        memcpy(a->addr, addr, rdlen);
        if (next)
                *addr_link_field(a) = next;
        return a;
}

/* A copy of chunk a: skip is an index to leave out (or a->n for none), and
 * when node is given it goes in front with ttl. */
static StoreAddr *addr_copy(const StoreAddr *a, size_t skip, const StoreNode *node, uint32_t ttl) {
        size_t n = a->n - (skip < a->n) + (node != NULL), o = 0;
        StoreAddr *c = addr_alloc(a->addr, a->rdlen, n, addr_next(a));

        if (node) {
                addr_nodes(c)[0] = node;
                addr_ttls(c)[0] = ttl;
                o = 1;
        }
        for (size_t i = 0; i < a->n; i++) {
                if (i == skip)
                        continue;
                addr_nodes(c)[o] = addr_nodes(a)[i];
                addr_ttls(c)[o] = addr_ttls(a)[i];
                o++;
        }
        return c;
}

static bool record_has_ptr(const Record *r) {
        /* A wildcard has no single name to point back to. */
        return (r->type == DNS_TYPE_A || r->type == DNS_TYPE_AAAA) && r->name[0] != '*';
}

static uint32_t bytes_hash(const uint8_t *p, size_t n, uint32_t h) {
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 16777619u; /* FNV-1a */
        }
        return h;
}

typedef struct AddrKey {
        const uint8_t *addr;
        uint8_t rdlen;
} AddrKey;

/* An A and an AAAA address never match (rdlen 4 vs 16). */
static uint32_t addr_key_hash(const uint8_t *addr, uint8_t rdlen) {
        return bytes_hash(addr, rdlen, 2166136261u);
}

static uint32_t addr_hash(const void *item) {
        const StoreAddr *a = item;
        return addr_key_hash(a->addr, a->rdlen);
}

static bool addr_match(const void *item, uint32_t hash, const void *key) {
        const StoreAddr *a = item;
        const AddrKey *k = key;
        return a->rdlen == k->rdlen && memcmp(a->addr, k->addr, k->rdlen) == 0;
}

static StoreAddr *addr_lookup(const Store *s, const uint8_t *addr, uint8_t rdlen) {
        AddrKey k = { addr, rdlen };
        return rcu_hash_lookup(&s->addrs, addr_key_hash(addr, rdlen), addr_match, &k);
}

static uint32_t prefix_hash(const void *item) {
        const Prefix *k = item;
        return bytes_hash(k->addr, (k->bits + 7) / 8, 2166136261u ^ (k->rdlen * 131u + k->bits));
}

static bool prefix_match(const void *item, uint32_t hash, const void *key) {
        const Prefix *a = item, *b = key;
        return a->rdlen == b->rdlen && a->bits == b->bits && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static Prefix prefix_make(const uint8_t *addr, uint8_t rdlen, unsigned bits) {
        Prefix k = { .rdlen = rdlen, .bits = (uint8_t) bits };
        memcpy(k.addr, addr, bits / 8);
        if (bits % 8)
                k.addr[bits / 8] = addr[bits / 8] & 0xf0;
        return k;
}

/* Counts one address in (or out of) every prefix a reverse name can stand
 * for: in-addr.arpa names octets, ip6.arpa names nibbles. */
static void prefixes_count(Store *s, const uint8_t *addr, uint8_t rdlen, bool add) {
        unsigned step = rdlen == 4 ? 8 : 4;
        size_t *n_addrs = &s->n_addrs[rdlen == 16];

        SHARED_STORE(*n_addrs, add ? *n_addrs + 1 : *n_addrs - 1);
        for (unsigned bits = step; bits < rdlen * 8u; bits += step) {
                Prefix k = prefix_make(addr, rdlen, bits), *p;

                p = rcu_hash_lookup(&s->prefixes, prefix_hash(&k), prefix_match, &k);
                if (add) {
                        if (!p) {
                                p = g_memdup2(&k, sizeof k);
                                rcu_hash_add(&s->prefixes, p);
                        }
                        p->count++;
                } else if (p && --p->count == 0) {
                        rcu_hash_remove(&s->prefixes, p);
                        free_later(s, p);
                }
        }
}

/* Adds a node to the names of an address (it has a record with it now, and
 * had none before). */
static void addr_link(Store *s, const StoreNode *n, const uint8_t *addr, uint8_t rdlen, uint32_t ttl) {
        StoreAddr *head = addr_lookup(s, addr, rdlen), *a;

        if (!head) {
                a = addr_alloc(addr, rdlen, 1, NULL);
                addr_nodes(a)[0] = n;
                addr_ttls(a)[0] = ttl;
                rcu_hash_add(&s->addrs, a);
                prefixes_count(s, addr, rdlen, true);
                return;
        }
        if (head->n < ADDR_CHUNK_MAX) {
                /* A copy of the newest chunk with the node in front. */
                a = addr_copy(head, head->n, n, ttl);
                rcu_hash_replace(&s->addrs, head, a);
                free_later(s, head);
                return;
        }
        /* The newest chunk is full: a new one in front of it. */
        a = addr_alloc(addr, rdlen, 1, head);
        addr_nodes(a)[0] = n;
        addr_ttls(a)[0] = ttl;
        rcu_hash_replace(&s->addrs, head, a);
}

/* Takes a node out of the names of an address (gone: its last record with
 * it went), or gives it a new TTL. Removals come newest first (owner lists
 * are newest first), and the newest sit in the first chunk: usually the
 * search stops there. */
static void addr_change(Store *s, const StoreNode *n, const uint8_t *addr, uint8_t rdlen, bool gone, uint32_t ttl) {
        StoreAddr *prev = NULL;

        for (StoreAddr *a = addr_lookup(s, addr, rdlen); a; prev = a, a = addr_next(a)) {
                const StoreNode **nodes = addr_nodes(a);
                StoreAddr *repl;
                size_t i;

                for (i = 0; i < a->n && nodes[i] != n; i++)
                        ;
                if (i == a->n)
                        continue;

                if (!gone) {
                        repl = addr_copy(a, a->n, NULL, 0);
                        addr_ttls(repl)[i] = ttl;
                } else if (a->n > 1)
                        repl = addr_copy(a, i, NULL, 0);
                else
                        repl = addr_next(a);

                if (prev)
                        rcu_publish(*addr_link_field(prev), repl);
                else if (repl)
                        rcu_hash_replace(&s->addrs, a, repl);
                else {
                        rcu_hash_remove(&s->addrs, a);
                        prefixes_count(s, addr, rdlen, false);
                }
                free_later(s, a);
                return;
        }
}

/* Whether the node holds a value (but in except), and the lowest TTL its
 * records give it. */
static bool node_value_ttl(const StoreNode *n, const Record *except, uint16_t type, const uint8_t *rdata,
                           uint16_t rdlen, uint32_t *ret_ttl) {
        bool found = false;

        *ret_ttl = UINT32_MAX;
        for (const Record *r = n->records; r; r = r->node_next)
                if (r != except && record_same_value(r, type, rdata, rdlen)) {
                        found = true;
                        *ret_ttl = MIN(*ret_ttl, r->ttl);
                }
        return found;
}

/* After a change to record r at node n: the address index follows what the
 * node now holds for r's value. had and old_ttl: what it held before. */
static void addr_follow(Store *s, const StoreNode *n, const Record *r, bool had, uint32_t old_ttl) {
        uint32_t ttl;
        bool has;

        if (!record_has_ptr(r))
                return;
        has = node_value_ttl(n, NULL, r->type, r->rdata, r->rdlen, &ttl);
        if (has && !had)
                addr_link(s, n, r->rdata, (uint8_t) r->rdlen, ttl);
        else if (had && (!has || ttl != old_ttl))
                addr_change(s, n, r->rdata, (uint8_t) r->rdlen, !has, ttl);
}

/* Parses the labels of a reverse name before its in-addr.arpa / ip6.arpa
 * suffix (at wire offset suffix) into an address. Labels must be in the
 * form the PTRs of our addresses have: decimal octets without leading
 * zeros, single lowercase hex nibbles. Returns the number of bits named,
 * or -1 when the name is not one of ours. */
static int reverse_parse(const uint8_t *wire, size_t suffix, bool v6, uint8_t addr[static 16]) {
        unsigned labels = 0;
        size_t i;

        /* Count the labels first: the address is written backwards. */
        for (i = 0; i < suffix; i += 1 + wire[i])
                labels++;
        if (labels > (v6 ? 32u : 4u))
                return -1;
        memset(addr, 0, 16);
        i = 0;
        for (unsigned k = labels; k > 0; k--) {
                uint8_t l = wire[i];
                const uint8_t *c = wire + i + 1;
                unsigned pos = k - 1; /* octet / nibble index, from the top */

                if (v6) {
                        int v;
                        if (l != 1)
                                return -1;
                        if (c[0] >= '0' && c[0] <= '9')
                                v = c[0] - '0';
                        else if (c[0] >= 'a' && c[0] <= 'f')
                                v = c[0] - 'a' + 10;
                        else
                                return -1;
                        addr[pos / 2] |= (uint8_t) (pos % 2 ? v : v << 4);
                } else {
                        unsigned v = 0;
                        if (l < 1 || l > 3 || (l > 1 && c[0] == '0'))
                                return -1;
                        for (unsigned j = 0; j < l; j++) {
                                if (c[j] < '0' || c[j] > '9')
                                        return -1;
                                v = v * 10 + (c[j] - '0');
                        }
                        if (v > 255)
                                return -1;
                        addr[pos] = (uint8_t) v;
                }
                i += 1 + l;
        }
        return (int) (labels * (v6 ? 4 : 8));
}

/* The derived side of a lookup: sets *ret_addr for the reverse name of an
 * address we hold, and returns whether the name is one or above one. */
static bool reverse_lookup(const Store *s, const uint8_t *wire, size_t len, const StoreAddr **ret_addr) {
        static const uint8_t in_addr[] = "\7in-addr\4arpa", ip6[] = "\3ip6\4arpa", arpa[] = "\4arpa";
        size_t n_v4 = SHARED_LOAD(s->n_addrs[0]), n_v6 = SHARED_LOAD(s->n_addrs[1]);
        uint8_t addr[16];
        size_t suffix = 0;
        bool v6;
        int bits;

        *ret_addr = NULL;
        if (n_v4 + n_v6 == 0)
                return false;
        /* Find the suffix: the last two labels. */
        for (size_t i = 0, prev = SIZE_MAX, prev2 = SIZE_MAX; i < len; i += 1 + wire[i]) {
                if (wire[i] == 0) {
                        suffix = prev2;
                        if (prev == SIZE_MAX)
                                return false;  /* the root */
                        if (prev2 == SIZE_MAX) /* one label: arpa itself? */
                                return len == sizeof arpa && memcmp(wire, arpa, sizeof arpa) == 0;
                        break;
                }
                prev2 = prev;
                prev = i;
        }
        if (len - suffix == sizeof in_addr && memcmp(wire + suffix, in_addr, sizeof in_addr) == 0)
                v6 = false;
        else if (len - suffix == sizeof ip6 && memcmp(wire + suffix, ip6, sizeof ip6) == 0)
                v6 = true;
        else
                return false;
        if ((v6 ? n_v6 : n_v4) == 0)
                return false;
        bits = reverse_parse(wire, suffix, v6, addr);
        if (bits < 0)
                return false;
        if (bits == 0)
                return true; /* in-addr.arpa, ip6.arpa */
        if (bits == (v6 ? 128 : 32)) {
                *ret_addr = addr_lookup(s, addr, v6 ? 16 : 4);
                return *ret_addr != NULL;
        }
        Prefix k = prefix_make(addr, v6 ? 16 : 4, (unsigned) bits);
        return rcu_hash_lookup(&s->prefixes, prefix_hash(&k), prefix_match, &k) != NULL;
}

/* --- owners and records -------------------------------------------------- */

static void owner_free(gpointer p) {
        Owner *o = p;
        g_free(o->name);
        g_free(o);
}

static void owner_kind_free(gpointer p) {
        OwnerKind *k = p;
        g_free(k->name);
        g_free(k);
}

static OwnerKind *owner_kind_get(Store *s, const char *owner) {
        const char *colon = strchr(owner, ':');
        g_autofree char *name = g_strndup(owner, colon ? (size_t) (colon - owner) + 1 : strlen(owner));
        OwnerKind *k = g_hash_table_lookup(s->kinds, name);

        if (!k) {
                k = g_new0(OwnerKind, 1);
                k->name = TAKE_PTR(name);
                g_hash_table_insert(s->kinds, k->name, k);
        }
        return k;
}

static Owner *owner_get(Store *s, const char *name, bool create) {
        Owner *o = g_hash_table_lookup(s->owners, name);
        if (o || !create)
                return o;
        o = g_new0(Owner, 1);
        o->name = g_strdup(name);
        o->kind = owner_kind_get(s, name);
        o->kind->n_owners++;
        g_hash_table_insert(s->owners, o->name, o);
        return o;
}

/* Called with the owner's last record gone. */
static void owner_drop(Store *s, Owner *o) {
        OwnerKind *k = o->kind;

        g_hash_table_remove(s->owners, o->name);
        if (--k->n_owners == 0)
                g_hash_table_remove(s->kinds, k->name);
}

/* A callback may unsubscribe itself or another subscriber: the entry is
 * cleared, not removed, so that no one is skipped or called twice, and the
 * list is compacted afterwards. One that subscribes from a callback hears
 * from the next change on. */
static void notify(Store *s, RecordChange change, const Record *r) {
        guint n = s->subscribers->len;

        SHARED_STORE(s->version, s->version + 1);
        s->notifying = true;
        for (guint i = 0; i < n; i++) {
                Subscriber sub = g_array_index(s->subscribers, Subscriber, i);
                if (sub.cb)
                        sub.cb(s, change, r, sub.userdata);
        }
        s->notifying = false;

        for (guint i = s->subscribers->len; i > 0; i--)
                if (!g_array_index(s->subscribers, Subscriber, i - 1).cb)
                        g_array_remove_index(s->subscribers, i - 1);
}

/* A record is one allocation: the struct, its rdata and its value string.
 * Records are control plane only: freed at once. */
static void record_free(Record *r) {
        g_free(r->detail);
        g_free(r);
}

/* Unlinks, notifies and frees one record. */
static void record_remove(Store *s, Record *r) {
        StoreNode *n = record_node(r);
        Owner *o = g_hash_table_lookup(s->owners, r->owner);
        uint32_t old_ttl;
        bool had = node_value_ttl(n, NULL, r->type, r->rdata, r->rdlen, &old_ttl);

        for (Record **p = &n->records; *p; p = &(*p)->node_next)
                if (*p == r) {
                        *p = r->node_next;
                        break;
                }
        if (r->owner_prev)
                r->owner_prev->owner_next = r->owner_next;
        else
                o->head = r->owner_next;
        if (r->owner_next)
                r->owner_next->owner_prev = r->owner_prev;
        o->count--;
        o->kind->count--;
        s->n_records--;

        addr_follow(s, n, r, had, old_ttl);
        /* A node about to go keeps its last view until it leaves the set. */
        if (n->records || n->n_children > 0)
                node_publish(s, n, false);
        notify(s, RECORD_REMOVED, r);

        record_free(r);
        if (o->count == 0)
                owner_drop(s, o);
        node_prune(s, n);
}

int store_add(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl, const char *owner,
              uint32_t line, const char *detail, const char **ret_error) {
        return store_add_record(s, name, type, value, ttl, owner, line, detail, ret_error, NULL);
}

/* The record owner o already has at n with this value, or NULL. */
static Record *node_find_record(StoreNode *n, const Owner *o, uint16_t type, const uint8_t *rdata, uint16_t rdlen) {
        if (!n || !o)
                return NULL;
        for (Record *r = n->records; r; r = r->node_next)
                if (r->owner == o->name && record_same_value(r, type, rdata, rdlen))
                        return r;
        return NULL;
}

/* A record added again (a reload's mark-and-sweep): kept, with its line and
 * detail updated; only a new TTL is a change that subscribers see. */
static void record_refresh(Store *s, StoreNode *n, Record *r, uint32_t ttl, uint32_t line, const char *detail) {
        uint32_t old_ttl;

        r->marked = false;
        r->line = line;
        if (!streq_ptr(r->detail, detail)) {
                g_free(r->detail);
                r->detail = g_strdup(detail);
        }
        if (r->ttl != ttl) {
                /* Seen as the old record going and the new one coming. */
                Record old = *r;

                (void) node_value_ttl(n, NULL, r->type, r->rdata, r->rdlen, &old_ttl);
                r->ttl = ttl;
                node_publish(s, n, false);
                addr_follow(s, n, r, true, old_ttl);
                notify(s, RECORD_REMOVED, &old);
                notify(s, RECORD_ADDED, r);
                change_done(s);
        }
}

/* A new record at n for owner o, one allocation with its rdata and value
 * string, linked into the node's and the owner's lists and counted. Not yet
 * published: the caller does that. */
static Record *record_new(Store *s, StoreNode *n, Owner *o, uint16_t type, const uint8_t *rdata, uint16_t rdlen,
                          uint32_t ttl, uint32_t line, const char *detail) {
        char v[DNS_RDATA_TEXT_MAX];
        int vl;
        Record *r;

        vl = dns_rdata_to_string(type, rdata, rdlen, v);
        if (vl < 0)
                vl = 0;
        r = g_malloc(sizeof(Record) + (size_t) rdlen + (size_t) vl + 1);
        *r = (Record) {
                .name = node_name(n),
                .type = type,
                .ttl = ttl,
                .line = line,
                .rdlen = rdlen,
                .owner = o->name,
                .detail = g_strdup(detail),
                .rdata = (uint8_t *) (r + 1),
                .added_usec = now_usec(CLOCK_REALTIME),
        };
        memcpy(r->rdata, rdata, rdlen);
        r->value = (char *) r->rdata + rdlen;
        memcpy(r->value, v, (size_t) vl);
        r->value[vl] = 0;

        r->node_next = n->records;
        n->records = r;
        r->owner_next = o->head;
        if (o->head)
                o->head->owner_prev = r;
        o->head = r;
        o->count++;
        o->kind->count++;
        s->n_records++;
        return r;
}

int store_add_record(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl, const char *owner,
                     uint32_t line, const char *detail, const char **ret_error, const Record **ret_record) {
        uint8_t wire[DNS_WIRE_NAME_MAX], rdata[DNS_RDATA_MAX];
        char lname[DNS_WIRE_NAME_MAX];
        size_t name_len;
        int rdlen, len;
        uint32_t old_ttl;
        bool is_new, had;
        StoreNode *n;
        Owner *o;
        Record *r;

        if (!s || isempty(owner)) {
                if (ret_error)
                        *ret_error = "missing owner";
                return -EINVAL;
        }
        if (dns_name_check(name, DNS_NAME_WILDCARD, ret_error) < 0)
                return -EINVAL;
        if (ttl > STORE_TTL_MAX) {
                if (ret_error)
                        *ret_error = "TTL above 604800 seconds (a week)";
                return -ERANGE;
        }
        rdlen = dns_rdata_from_string(type, value, rdata, ret_error);
        if (rdlen < 0)
                return rdlen;
        len = dns_name_to_wire(name, wire);
        if (len < 0) {
                if (ret_error)
                        *ret_error = "not a valid domain name";
                return -EINVAL;
        }

        o = owner_get(s, owner, false);
        n = node_lookup(s, wire, (size_t) len);
        r = node_find_record(n, o, type, rdata, (uint16_t) rdlen);
        if (r) {
                record_refresh(s, n, r, ttl, line, detail);
                if (ret_record)
                        *ret_record = r;
                return 0;
        }

        if (!o)
                o = owner_get(s, owner, true);

        /* dns_name_check() let only letters, digits, '-', '_' and '*'
         * through: the presentation name is the lowercased input, with no
         * escapes to add, so no need to convert back from the wire, and it
         * is two bytes shorter than the wire name, as record_node() needs. */
        name_len = strlen(name);
        if (name[name_len - 1] == '.')
                name_len--;
        assert(name_len + 2 == (size_t) len);
        for (size_t i = 0; i < name_len; i++)
                lname[i] = g_ascii_tolower(name[i]);
        lname[name_len] = 0;
        n = node_get(s, n, wire, (size_t) len, lname, &is_new);
        had = node_value_ttl(n, NULL, type, rdata, (uint16_t) rdlen, &old_ttl);

        r = record_new(s, n, o, type, rdata, (uint16_t) rdlen, ttl, line, detail);
        node_publish(s, n, is_new);
        addr_follow(s, n, r, had, old_ttl);
        notify(s, RECORD_ADDED, r);
        change_done(s);
        if (ret_record)
                *ret_record = r;
        return 1;
}

int store_remove(Store *s, const char *name, uint16_t type, const char *value, const char *owner) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        _cleanup_free_ uint8_t *rdata = NULL;
        uint16_t rdlen = 0;
        StoreNode *n;
        Owner *o = NULL;
        int len, removed = 0;

        len = dns_name_to_wire(name, wire);
        if (len < 0)
                return 0;
        n = node_lookup(s, wire, (size_t) len);
        if (!n)
                return 0;
        if (owner) {
                o = owner_get(s, owner, false);
                if (!o)
                        return 0;
        }
        if (value && type != 0 && dns_rdata_parse(type, value, &rdata, &rdlen, NULL) < 0)
                return 0;

        /* Removing may prune the node: collect first. */
        g_autoptr(GPtrArray) victims = g_ptr_array_new();
        for (Record *r = n->records; r; r = r->node_next) {
                if (type != 0 && r->type != type)
                        continue;
                if (o && r->owner != o->name)
                        continue;
                if (value) {
                        if (rdata) {
                                if (r->rdlen != rdlen || memcmp(r->rdata, rdata, rdlen) != 0)
                                        continue;
                        } else if (!streq_ptr(r->value, value))
                                continue;
                }
                g_ptr_array_add(victims, r);
        }
        for (guint i = 0; i < victims->len; i++) {
                record_remove(s, victims->pdata[i]);
                removed++;
        }
        change_done(s);
        return removed;
}

int store_remove_owner(Store *s, const char *owner) {
        Owner *o = owner_get(s, owner, false);
        int removed = 0;

        while (o && o->head) {
                bool last = o->count == 1;
                record_remove(s, o->head);
                removed++;
                if (last)
                        break; /* the owner is gone with its last record */
        }
        change_done(s);
        return removed;
}

void store_remove_record(Store *s, const Record *r) {
        /* The store's own record, handed out read-only. */
        record_remove(s, (Record *) r);
        change_done(s);
}

void store_mark_owner(Store *s, const char *owner) {
        Owner *o = owner_get(s, owner, false);
        for (Record *r = o ? o->head : NULL; r; r = r->owner_next)
                r->marked = true;
}

int store_sweep_owner(Store *s, const char *owner) {
        Owner *o = owner_get(s, owner, false);
        int removed = 0;

        if (!o)
                return 0;
        for (Record *r = o->head, *next; r; r = next) {
                bool last = o->count == 1;
                next = r->owner_next;
                if (!r->marked)
                        continue;
                record_remove(s, r);
                removed++;
                if (last)
                        break;
        }
        change_done(s);
        return removed;
}

/* --- lifecycle, queries -------------------------------------------------- */

int store_new(Store **ret) {
        Store *s = g_new0(Store, 1);

        rcu_hash_init(&s->nodes, node_hash);
        rcu_hash_init(&s->addrs, addr_hash);
        rcu_hash_init(&s->prefixes, prefix_hash);
        s->owners = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, owner_free);
        s->kinds = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, owner_kind_free);
        s->subscribers = g_array_new(FALSE, FALSE, sizeof(Subscriber));
        *ret = s;
        return 0;
}

Store *store_free(Store *s) {
        GHashTableIter it;
        gpointer v;
        size_t iter;
        void *item;

        if (!s)
                return NULL;
        /* No reader is left (the caller stopped them): free at once. Records
         * hang off owners; free them without events. */
        g_hash_table_iter_init(&it, s->owners);
        while (g_hash_table_iter_next(&it, NULL, &v))
                for (Record *r = ((Owner *) v)->head, *next; r; r = next) {
                        next = r->owner_next;
                        record_free(r);
                }
        g_hash_table_destroy(s->owners);
        g_hash_table_destroy(s->kinds);
        for (iter = 0; (item = rcu_hash_next(&s->nodes, &iter));) {
                g_free((void *) ((StoreNode *) item)->view);
                g_free(item);
        }
        for (iter = 0; (item = rcu_hash_next(&s->addrs, &iter));)
                for (StoreAddr *a = item, *next; a; a = next) {
                        next = addr_next(a);
                        g_free(a);
                }
        for (iter = 0; (item = rcu_hash_next(&s->prefixes, &iter));)
                g_free(item);
        rcu_hash_done(&s->nodes);
        rcu_hash_done(&s->addrs);
        rcu_hash_done(&s->prefixes);
        g_array_free(s->subscribers, TRUE);
        if (s->retired)
                g_ptr_array_unref(s->retired);
        g_free(s);
        /* What earlier changes handed to liburcu is freed on its own time:
         * none of it points back here. */
        return NULL;
}

uint64_t store_version(const Store *s) {
        return SHARED_LOAD(s->version);
}

size_t store_count(const Store *s) {
        return s->n_records;
}

size_t store_count_owner_prefix(const Store *s, const char *prefix) {
        GHashTableIter it;
        gpointer v;
        size_t n = 0;

        if (!prefix)
                return s->n_records;
        /* An owner starts with the prefix exactly when its kind does, unless
         * the prefix goes past a kind's ':' ("hosts:/etc/a"): then only that
         * kind's owners can match, and they are looked at one by one. */
        g_hash_table_iter_init(&it, s->kinds);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const OwnerKind *k = v;

                if (g_str_has_prefix(k->name, prefix))
                        n += k->count;
                else if (g_str_has_prefix(prefix, k->name) && g_str_has_suffix(k->name, ":"))
                        goto walk;
        }
        return n;

walk:
        n = 0;
        g_hash_table_iter_init(&it, s->owners);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (g_str_has_prefix(((Owner *) v)->name, prefix))
                        n += ((Owner *) v)->count;
        return n;
}

int store_subscribe(Store *s, StoreSubscriber cb, void *userdata) {
        Subscriber sub = { cb, userdata };
        g_array_append_val(s->subscribers, sub);
        return 0;
}

void store_unsubscribe(Store *s, StoreSubscriber cb, void *userdata) {
        for (guint i = 0; i < s->subscribers->len; i++) {
                Subscriber *sub = &g_array_index(s->subscribers, Subscriber, i);
                if (sub->cb == cb && sub->userdata == userdata) {
                        if (s->notifying)
                                sub->cb = NULL;
                        else
                                g_array_remove_index(s->subscribers, i);
                        return;
                }
        }
}

int store_foreach(const Store *s, const char *name, const char *owner_prefix, StoreForeachFunc f, void *userdata) {
        GHashTableIter it;
        gpointer v;
        int r;

        if (name) {
                const StoreNode *n = store_lookup(s, name);
                for (Record *rec = n ? n->records : NULL; rec; rec = rec->node_next) {
                        if (owner_prefix && !g_str_has_prefix(rec->owner, owner_prefix))
                                continue;
                        r = f(rec, userdata);
                        if (r != 0)
                                return r;
                }
                return 0;
        }
        g_hash_table_iter_init(&it, s->owners);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Owner *o = v;
                if (owner_prefix && !g_str_has_prefix(o->name, owner_prefix))
                        continue;
                for (Record *rec = o->head; rec; rec = rec->owner_next) {
                        r = f(rec, userdata);
                        if (r != 0)
                                return r;
                }
        }
        return 0;
}

typedef struct CollectContext {
        GPtrArray *records;
        uint16_t type;
} CollectContext;

static int collect_record(const Record *r, void *userdata) {
        CollectContext *c = userdata;

        if (c->type == 0 || r->type == c->type)
                g_ptr_array_add(c->records, (gpointer) r);
        return 0;
}

void store_collect(const Store *s, const char *name, const char *owner_prefix, uint16_t type, GPtrArray *records) {
        CollectContext c = { .records = records, .type = type };

        (void) store_foreach(s, name, owner_prefix, collect_record, &c);
}

int record_compare_ptr(const void *a, const void *b) {
        const Record *x = *(const Record *const *) a, *y = *(const Record *const *) b;
        int c;

        c = strcmp(x->name, y->name);
        if (c != 0)
                return c;
        if (x->type != y->type)
                return x->type < y->type ? -1 : 1;
        c = strcmp(strempty(x->value), strempty(y->value));
        if (c != 0)
                return c;
        return strcmp(strempty(x->owner), strempty(y->owner));
}

void record_source_format(GString *out, const char *owner, uint32_t line, const char *detail) {
        g_string_assign(out, owner);
        if (line > 0)
                g_string_append_printf(out, ":%u", line);
        /* A peer's record: the detail is where the peer has it. */
        if (detail && g_str_has_prefix(owner, "peer:"))
                g_string_append_printf(out, " \xc2\xb7 %s", detail);
        else if (detail)
                g_string_append_printf(out, " (%s)", detail);
}

char *record_source(const Record *r) {
        GString *s = g_string_new(NULL);

        record_source_format(s, r->owner, r->line, r->detail);
        return g_string_free(s, FALSE);
}

/* --- the answer path: reads only ----------------------------------------- */

const StoreNode *store_lookup_wire(const Store *s, const uint8_t *wire, size_t len) {
        if (len == 0 || len > DNS_WIRE_NAME_MAX)
                return NULL;
        return node_lookup(s, wire, len);
}

const StoreNode *store_lookup(const Store *s, const char *name) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        int len = dns_name_to_wire(name, wire);
        return len < 0 ? NULL : store_lookup_wire(s, wire, (size_t) len);
}

bool store_node_rrset(const StoreNode *n, uint16_t type, StoreRRSet *ret) {
        return store_view_rrset(n ? rcu_dereference(n->view) : NULL, type, ret);
}

uint32_t store_name_hash(const uint8_t *wire, size_t len) {
        return wire_hash(wire, len);
}

void store_prefetch(const Store *s, uint32_t hash, size_t len, unsigned step) {
        const StoreNode *n;

        if (step == 0) {
                rcu_hash_prefetch_slot(&s->nodes, hash);
                return;
        }
        n = rcu_hash_peek(&s->nodes, hash);
        if (!n)
                return;
        if (step == 1) {
                /* The lookup compares the wire name after the struct: half
                 * of the nodes have its end in the next cache line. */
                __builtin_prefetch(n);
                __builtin_prefetch(store_node_wire(n) + len - 1);
        } else if (n->hash == hash)
                __builtin_prefetch(rcu_dereference(n->view));
}

bool store_lookup_name(const Store *s, const uint8_t *wire, size_t len, StoreName *ret) {
        const StoreNode *n;
        bool derived;

        *ret = (StoreName) {};
        if (len == 0 || len > DNS_WIRE_NAME_MAX)
                return false;
        n = node_lookup(s, wire, len);
        derived = reverse_lookup(s, wire, len, &ret->addr);
        if (n) {
                ret->node = n;
                ret->view = rcu_dereference(n->view);
        }
        ret->exists = n || derived;
        return ret->exists;
}

bool store_name_has_ptr(const StoreName *n) {
        StoreRRSet set;
        return n->addr || store_view_rrset(n->view, DNS_TYPE_PTR, &set);
}

/* Whether an explicit PTR at the name points to target. */
static bool explicit_ptr_has(const StoreName *n, const uint8_t *target, size_t len) {
        StoreRRSet set;
        const uint8_t *pos;

        if (!store_view_rrset(n->view, DNS_TYPE_PTR, &set))
                return false;
        pos = set.first;
        for (uint32_t i = 0; i < set.n; i++) {
                StoreRR rr;

                store_rr_read(&pos, &rr);
                if (rr.rdlen == len && memcmp(rr.rdata, target, len) == 0)
                        return true;
        }
        return false;
}

bool store_name_next_ptr(const StoreName *n, StorePtrIter *iter, const uint8_t **ret_target, uint16_t *ret_len,
                         uint32_t *ret_ttl) {
        const StoreAddr *a = iter->started ? iter->chunk : n->addr;
        uint32_t i = iter->started ? iter->i : 0;

        iter->started = true;
        for (; a; a = addr_next(a), i = 0) {
                const StoreNode *const *nodes = addr_nodes(a);

                for (; i < a->n; i++) {
                        const uint8_t *target = store_node_wire(nodes[i]);
                        size_t len = wire_len(target);

                        if (explicit_ptr_has(n, target, len))
                                continue;
                        iter->chunk = a;
                        iter->i = i + 1;
                        *ret_target = target;
                        *ret_len = (uint16_t) len;
                        *ret_ttl = addr_ttls(a)[i];
                        return true;
                }
        }
        iter->chunk = NULL;
        iter->i = 0;
        return false;
}

size_t store_name_n_ptr(const StoreName *n) {
        StorePtrIter iter = {};
        const uint8_t *target;
        uint16_t len;
        uint32_t ttl;
        size_t k = 0;

        while (store_name_next_ptr(n, &iter, &target, &len, &ttl))
                k++;
        return k;
}

uint32_t store_name_ptr_ttl(const StoreName *n, const StoreRR *explicit_ptr) {
        const StoreRR *rr = explicit_ptr;
        uint32_t ttl = rr->ttl;

        for (const StoreAddr *a = n->addr; a; a = addr_next(a))
                for (uint16_t i = 0; i < a->n; i++) {
                        const uint8_t *w = store_node_wire(addr_nodes(a)[i]);

                        if (wire_len(w) == rr->rdlen && memcmp(w, rr->rdata, rr->rdlen) == 0)
                                ttl = MIN(ttl, addr_ttls(a)[i]);
                }
        return ttl;
}
