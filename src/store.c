/* SPDX-License-Identifier: MIT */
/* The record store. See store.h for the model.
 *
 * Layout: a hash table from lowercased wire names to nodes. Every ancestor of
 * a name with data is a node too, so "does this name exist" and "closest
 * encloser" are single lookups. A node keeps two views of its data: the
 * explicit records (with owner, line, detail: for the APIs) and the rrsets
 * (deduplicated wire rdata with reference counts: for the answer path).
 * Owners (sources) are interned and keep a list of their records, so a
 * source's records can be marked, swept or dropped without a scan.
 *
 * Reverse names are not nodes. An address index (a set of records keyed by
 * their address, each chaining the others with that address) answers
 * "which names have 192.0.2.7", and counts of address prefixes (in-addr.arpa
 * octets, ip6.arpa nibbles) answer "does 2.0.192.in-addr.arpa exist". A
 * reverse name is parsed back into an address or a prefix when asked. That
 * saves a node, an rrset and a hash slot per address, which was a third of
 * the memory and of the load time with a large hosts file. */

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <glib.h>
#include <stdio.h>
#include <time.h>

#include "store.h"

typedef struct Owner {
        char *name;
        Record *head;
        size_t count;
} Owner;

typedef struct Subscriber {
        StoreSubscriber cb;     /* NULL: unsubscribed while notifying, removed afterwards */
        void *userdata;
} Subscriber;

/* An address prefix that some held address starts with: the key of
 * Store.prefixes. Bits past the prefix are zero. */
typedef struct Prefix {
        uint8_t rdlen;          /* 4 or 16 */
        uint8_t bits;           /* 8, 16, 24 (IPv4); a multiple of 4 below 128 (IPv6) */
        uint8_t addr[16];
        uint32_t count;         /* addresses under it; not part of the key */
} Prefix;

struct Store {
        GHashTable *nodes;      /* wire name -> StoreNode (owns) */
        GHashTable *owners;     /* name -> Owner (owns) */
        GHashTable *addrs;      /* set of the first Record of each address (addr_next: the others) */
        GHashTable *prefixes;   /* set of Prefix (owned) */
        size_t n_addrs[2];      /* addresses held: IPv4, IPv6 */
        uint32_t reverse_rotate;
        GArray *subscribers;
        bool notifying;         /* subscribers are being called: unsubscribe only marks */
        uint64_t version;
        size_t n_records;
};

/* --- names --------------------------------------------------------------- */

static size_t wire_len(const uint8_t *w) {
        size_t n = 0;
        while (w[n] != 0)
                n += w[n] + 1;
        return n + 1;
}

static guint wire_hash(gconstpointer p) {
        const uint8_t *w = p;
        size_t n = wire_len(w);
        uint32_t h = 2166136261u;     /* FNV-1a */
        for (size_t i = 0; i < n; i++) {
                h ^= w[i];
                h *= 16777619u;
        }
        return h;
}

static gboolean wire_equal(gconstpointer a, gconstpointer b) {
        size_t la = wire_len(a);
        return la == wire_len(b) && memcmp(a, b, la) == 0;
}

/* --- nodes and rrsets ---------------------------------------------------- */

/* Memory matters here: 100,000 names should fit in a few tens of MiB. So a
 * node is one allocation (struct, wire key, and the name when it has
 * records), a node with one type keeps its rrset inline, an rrset with one
 * value keeps it inline, rrset items point to the rdata of a record holding
 * the value rather than copying it, reverse names are no nodes at all (see
 * the address index below), and the hash table is a set of nodes keyed by
 * their wire name. */

/* RRSets moved in memory: an inline item must follow its rrset. */
static void rrsets_fixup(StoreNode *n) {
        for (uint32_t i = 0; i < n->n_rrsets; i++)
                if (n->rrsets[i].allocated == 0)
                        n->rrsets[i].items = &n->rrsets[i].item_inline;
}

static void node_free(gpointer p) {
        StoreNode *n = p;
        for (uint32_t i = 0; i < n->n_rrsets; i++)
                if (n->rrsets[i].allocated > 0)
                        g_free(n->rrsets[i].items);
        if (n->rrsets != &n->rrset_inline)
                g_free(n->rrsets);
        g_free(n);
}

static guint node_hash(gconstpointer p) {
        return wire_hash(store_node_wire(p));
}

static gboolean node_equal(gconstpointer a, gconstpointer b) {
        return wire_equal(store_node_wire(a), store_node_wire(b));
}

/* A lookup key the hash functions can read like a node: the wire name right
 * after a StoreNode, as in a real node. */
typedef struct NodeKey {
        StoreNode node;
        uint8_t wire[DNS_WIRE_NAME_MAX];
} NodeKey;
G_STATIC_ASSERT(offsetof(NodeKey, wire) == sizeof(StoreNode));

static StoreNode *node_lookup(const Store *s, const uint8_t *wire) {
        NodeKey key;

        memcpy(key.wire, wire, wire_len(wire));
        return g_hash_table_lookup(s->nodes, &key.node);
}

/* A record's node: its name is the node's, stored right after the wire
 * name, which is two bytes longer (the first length byte and the root).
 * This saves a pointer in every record. */
static StoreNode *record_node(const Record *r) {
        return (StoreNode *) (r->name - (strlen(r->name) + 2)) - 1;
}

/* Finds or makes the node of a name, and its ancestors. name, when given, is
 * the presentation form (lowercased, no trailing dot, len - 2 bytes) to keep
 * inline, for the records at the node. */
static StoreNode *node_get(Store *s, const uint8_t *wire, size_t len, const char *name) {
        size_t name_size = name ? len - 1 : 0;
        StoreNode *n = node_lookup(s, wire);

        if (n) {
                if (name && !n->name) {
                        /* An ancestor about to hold records itself: grow it to
                         * keep the name inline too. Nothing points to a node
                         * without records but the table, and it has no rrsets. */
                        assert(n->n_rrsets == 0 && !n->records);
                        g_hash_table_steal(s->nodes, n);
                        n = g_realloc(n, sizeof(StoreNode) + len + name_size);
                        n->name = (char *) (n + 1) + len;
                        memcpy(n->name, name, name_size);
                        g_hash_table_add(s->nodes, n);
                }
                return n;
        }

        n = g_malloc(sizeof(StoreNode) + len + name_size);
        *n = (StoreNode) {};
        memcpy(n + 1, wire, len);
        if (name) {
                n->name = (char *) (n + 1) + len;
                memcpy(n->name, name, name_size);
        }
        g_hash_table_add(s->nodes, n);

        if (wire[0] != 0) {
                const uint8_t *pw = wire + wire[0] + 1;
                if (pw[0] != 0)         /* no node for the root */
                        node_get(s, pw, len - wire[0] - 1, NULL)->n_children++;
        }
        return n;
}

/* Drops nodes that hold nothing, walking up. */
static void node_prune(Store *s, StoreNode *n) {
        while (n && n->n_rrsets == 0 && !n->records && n->n_children == 0) {
                const uint8_t *wire = store_node_wire(n);
                StoreNode *parent = NULL;

                if (wire[0] != 0 && wire[wire[0] + 1] != 0)
                        parent = node_lookup(s, wire + wire[0] + 1);
                g_hash_table_remove(s->nodes, n);   /* frees n */
                if (parent)
                        parent->n_children--;
                n = parent;
        }
}

static RRSet *node_rrset(StoreNode *n, uint16_t type, bool create) {
        for (uint32_t i = 0; i < n->n_rrsets; i++)
                if (n->rrsets[i].type == type)
                        return &n->rrsets[i];
        if (!create)
                return NULL;
        if (n->n_rrsets == 0)
                n->rrsets = &n->rrset_inline;
        else if (n->rrsets == &n->rrset_inline) {
                /* A second type: move to an array. */
                RRSet *a = g_new(RRSet, 2);
                a[0] = n->rrset_inline;
                n->rrsets = a;
        } else
                n->rrsets = g_renew(RRSet, n->rrsets, n->n_rrsets + 1);
        n->rrsets[n->n_rrsets] = (RRSet) { .type = type };
        n->n_rrsets++;
        rrsets_fixup(n);
        return &n->rrsets[n->n_rrsets - 1];
}

static bool record_same_value(const Record *r, uint16_t type, const uint8_t *rdata, uint16_t rdlen) {
        return r->type == type && r->rdlen == rdlen && memcmp(r->rdata, rdata, rdlen) == 0;
}

/* Adds a reference to a value from record r (already at the node). */
static void rrset_ref(StoreNode *n, const Record *r) {
        RRSet *set = node_rrset(n, r->type, true);
        RRData *d;

        for (uint32_t i = 0; i < set->n; i++) {
                d = &set->items[i];
                if (record_same_value(d->record, r->type, r->rdata, r->rdlen)) {
                        d->refs++;
                        d->ttl = MIN(d->ttl, r->ttl);
                        return;
                }
        }
        if (set->n == 0)
                set->items = &set->item_inline;
        else if (set->allocated == 0) {
                RRData *a = g_new(RRData, 2);
                a[0] = set->item_inline;
                set->items = a;
                set->allocated = 2;
        } else if (set->n == set->allocated) {
                set->allocated *= 2;
                set->items = g_renew(RRData, set->items, set->allocated);
        }
        set->items[set->n++] = (RRData) { .record = r, .ttl = r->ttl, .refs = 1 };
}

/* Recomputes what an item owes to the records still holding its value: the
 * lowest TTL, and the record it points to, which must not be gone. */
static void rrdata_refresh(StoreNode *n, RRData *d, const Record *gone) {
        const Record *was = d->record;
        uint32_t ttl = UINT32_MAX;

        for (Record *r = n->records; r; r = r->node_next) {
                if (r == gone || !record_same_value(r, was->type, was->rdata, was->rdlen))
                        continue;
                ttl = MIN(ttl, r->ttl);
                if (d->record == gone)
                        d->record = r;
        }
        if (ttl != UINT32_MAX)
                d->ttl = ttl;
}

/* Drops the reference of record r, which may be unlinked already but is
 * still allocated. */
static void rrset_unref(StoreNode *n, const Record *r) {
        RRSet *set = node_rrset(n, r->type, false);

        if (!set)
                return;
        for (uint32_t i = 0; i < set->n; i++) {
                RRData *d = &set->items[i];
                if (!record_same_value(d->record, r->type, r->rdata, r->rdlen))
                        continue;
                if (--d->refs > 0) {
                        rrdata_refresh(n, d, r);
                        return;
                }
                memmove(set->items + i, set->items + i + 1, (set->n - i - 1) * sizeof(RRData));
                set->n--;
                break;
        }
        if (set->n == 1 && set->allocated > 0) {
                set->item_inline = set->items[0];
                g_free(set->items);
                set->items = &set->item_inline;
                set->allocated = 0;
        }
        if (set->n == 0) {
                size_t idx = (size_t) (set - n->rrsets);
                if (set->allocated > 0)
                        g_free(set->items);
                memmove(n->rrsets + idx, n->rrsets + idx + 1, (n->n_rrsets - idx - 1) * sizeof(RRSet));
                n->n_rrsets--;
                if (n->n_rrsets == 0) {
                        if (n->rrsets != &n->rrset_inline)
                                g_free(n->rrsets);
                        n->rrsets = NULL;
                } else if (n->n_rrsets == 1 && n->rrsets != &n->rrset_inline) {
                        n->rrset_inline = n->rrsets[0];
                        g_free(n->rrsets);
                        n->rrsets = &n->rrset_inline;
                }
                rrsets_fixup(n);
        }
}

/* --- the address index (derived PTRs) ------------------------------------ */

static bool record_has_ptr(const Record *r) {
        /* A wildcard has no single name to point back to. */
        return (r->type == DNS_TYPE_A || r->type == DNS_TYPE_AAAA) && r->name[0] != '*';
}

static guint bytes_hash(const uint8_t *p, size_t n, uint32_t h) {
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 16777619u;     /* FNV-1a */
        }
        return h;
}

/* Keys are records; an A and an AAAA record never match (rdlen 4 vs 16). */
static guint addr_hash(gconstpointer p) {
        const Record *r = p;
        return bytes_hash(r->rdata, r->rdlen, 2166136261u);
}

static gboolean addr_equal(gconstpointer a, gconstpointer b) {
        const Record *x = a, *y = b;
        return x->rdlen == y->rdlen && memcmp(x->rdata, y->rdata, x->rdlen) == 0;
}

static guint prefix_hash(gconstpointer p) {
        const Prefix *k = p;
        return bytes_hash(k->addr, (k->bits + 7) / 8, 2166136261u ^ (k->rdlen * 131u + k->bits));
}

static gboolean prefix_equal(gconstpointer a, gconstpointer b) {
        return memcmp(a, b, offsetof(Prefix, count)) == 0;
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

        s->n_addrs[rdlen == 16] += add ? 1 : -1;
        for (unsigned bits = step; bits < rdlen * 8u; bits += step) {
                Prefix k = prefix_make(addr, rdlen, bits), *p;

                p = g_hash_table_lookup(s->prefixes, &k);
                if (add) {
                        if (!p) {
                                p = g_memdup2(&k, sizeof k);
                                g_hash_table_add(s->prefixes, p);
                        }
                        p->count++;
                } else if (p && --p->count == 0)
                        g_hash_table_remove(s->prefixes, p);
        }
}

static void addr_index(Store *s, Record *r, bool add) {
        Record *head;

        if (!record_has_ptr(r))
                return;
        head = g_hash_table_lookup(s->addrs, r);
        if (add) {
                if (head) {
                        /* After the head: the key stays as it is. */
                        r->addr_next = head->addr_next;
                        head->addr_next = r;
                } else {
                        r->addr_next = NULL;
                        g_hash_table_add(s->addrs, r);
                        prefixes_count(s, r->rdata, (uint8_t) r->rdlen, true);
                }
                return;
        }
        if (!head)
                return;
        if (head == r) {
                if (r->addr_next)
                        g_hash_table_add(s->addrs, r->addr_next);   /* replaces the key */
                else {
                        g_hash_table_remove(s->addrs, r);
                        prefixes_count(s, r->rdata, (uint8_t) r->rdlen, false);
                }
        } else
                /* Removals come newest first (owner lists are newest first),
                 * and the newest sit right after the head: usually one step. */
                for (Record *p = head; p->addr_next; p = p->addr_next)
                        if (p->addr_next == r) {
                                p->addr_next = r->addr_next;
                                break;
                        }
        r->addr_next = NULL;
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
                unsigned pos = k - 1;       /* octet / nibble index, from the top */

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

/* The derived side of a lookup: sets ret->addr for the reverse name of an
 * address we hold, and returns whether the name is one or above one. */
static bool reverse_lookup(const Store *s, const uint8_t *wire, size_t len, const Record **ret_addr) {
        static const uint8_t in_addr[] = "\7in-addr\4arpa", ip6[] = "\3ip6\4arpa", arpa[] = "\4arpa";
        uint8_t addr[16];
        size_t suffix = 0;
        bool v6;
        int bits;

        *ret_addr = NULL;
        if (s->n_addrs[0] + s->n_addrs[1] == 0)
                return false;
        /* Find the suffix: the last two labels. */
        for (size_t i = 0, prev = SIZE_MAX, prev2 = SIZE_MAX; i < len; i += 1 + wire[i]) {
                if (wire[i] == 0) {
                        suffix = prev2;
                        if (prev == SIZE_MAX)
                                return false;           /* the root */
                        if (prev2 == SIZE_MAX)          /* one label: arpa itself? */
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
        if (s->n_addrs[v6] == 0)
                return false;
        bits = reverse_parse(wire, suffix, v6, addr);
        if (bits < 0)
                return false;
        if (bits == 0)
                return true;                    /* in-addr.arpa, ip6.arpa */
        if (bits == (v6 ? 128 : 32)) {
                Record key = { .rdata = addr, .rdlen = v6 ? 16 : 4 };
                *ret_addr = g_hash_table_lookup(s->addrs, &key);
                return *ret_addr != NULL;
        }
        Prefix k = prefix_make(addr, v6 ? 16 : 4, (unsigned) bits);
        return g_hash_table_contains(s->prefixes, &k);
}

/* --- owners and records -------------------------------------------------- */

static void owner_free(gpointer p) {
        Owner *o = p;
        g_free(o->name);
        g_free(o);
}

static Owner *owner_get(Store *s, const char *name, bool create) {
        Owner *o = g_hash_table_lookup(s->owners, name);
        if (o || !create)
                return o;
        o = g_new0(Owner, 1);
        o->name = g_strdup(name);
        g_hash_table_insert(s->owners, o->name, o);
        return o;
}

/* A callback may unsubscribe itself or another subscriber: the entry is
 * cleared, not removed, so that no one is skipped or called twice, and the
 * list is compacted afterwards. One that subscribes from a callback hears
 * from the next change on. */
static void notify(Store *s, RecordChange change, const Record *r) {
        guint n = s->subscribers->len;

        s->version++;
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

/* A record is one allocation: the struct, its rdata and its value string. */
static void record_free(Record *r) {
        g_free(r->detail);
        g_free(r);
}

/* Unlinks, notifies and frees one record. */
static void record_remove(Store *s, Record *r) {
        StoreNode *n = record_node(r);
        Owner *o = g_hash_table_lookup(s->owners, r->owner);

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
        s->n_records--;

        rrset_unref(n, r);
        addr_index(s, r, false);
        notify(s, RECORD_REMOVED, r);

        record_free(r);
        if (o->count == 0)
                g_hash_table_remove(s->owners, o->name);
        node_prune(s, n);
}

/* A record's TTL changed: its value's item takes the lowest TTL again. */
static void rrset_retune(StoreNode *n, const Record *r) {
        RRSet *set = node_rrset(n, r->type, false);

        for (uint32_t i = 0; set && i < set->n; i++)
                if (record_same_value(set->items[i].record, r->type, r->rdata, r->rdlen)) {
                        rrdata_refresh(n, &set->items[i], NULL);
                        return;
                }
}

int store_add(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl,
              const char *owner, uint32_t line, const char *detail, const char **ret_error) {
        uint8_t wire[DNS_WIRE_NAME_MAX], rdata[DNS_RDATA_MAX];
        char lname[DNS_WIRE_NAME_MAX], v[DNS_RDATA_TEXT_MAX];
        size_t name_len;
        int rdlen, len, vl;
        StoreNode *n;
        Owner *o;
        Record *r;

        if (!s || !owner || !*owner) {
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
        n = node_lookup(s, wire);
        if (n && o)
                for (r = n->records; r; r = r->node_next) {
                        if (r->owner != o->name || !record_same_value(r, type, rdata, (uint16_t) rdlen))
                                continue;
                        r->marked = false;
                        r->line = line;
                        if (!streq_ptr(r->detail, detail)) {
                                g_free(r->detail);
                                r->detail = g_strdup(detail);
                        }
                        if (r->ttl != ttl) {
                                /* Seen as the old record going and the new one coming. */
                                Record old = *r;
                                r->ttl = ttl;
                                rrset_retune(n, r);
                                notify(s, RECORD_REMOVED, &old);
                                notify(s, RECORD_ADDED, r);
                        }
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
        n = node_get(s, wire, (size_t) len, lname);

        vl = dns_rdata_to_string(type, rdata, (uint16_t) rdlen, v);
        if (vl < 0)
                vl = 0;
        r = g_malloc(sizeof(Record) + (size_t) rdlen + (size_t) vl + 1);
        *r = (Record) {
                .name = n->name,
                .type = type,
                .ttl = ttl,
                .line = line,
                .rdlen = (uint16_t) rdlen,
                .owner = o->name,
                .detail = g_strdup(detail),
                .rdata = (uint8_t *) (r + 1),
        };
        memcpy(r->rdata, rdata, (size_t) rdlen);
        r->value = (char *) r->rdata + rdlen;
        memcpy(r->value, v, (size_t) vl);
        r->value[vl] = 0;
        {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                r->added_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        }

        r->node_next = n->records;
        n->records = r;
        r->owner_next = o->head;
        if (o->head)
                o->head->owner_prev = r;
        o->head = r;
        o->count++;
        s->n_records++;

        rrset_ref(n, r);
        addr_index(s, r, true);
        notify(s, RECORD_ADDED, r);
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
        n = node_lookup(s, wire);
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
                        break;  /* the owner is gone with its last record */
        }
        return removed;
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
        return removed;
}

/* --- lifecycle, queries -------------------------------------------------- */

int store_new(Store **ret) {
        Store *s = g_new0(Store, 1);

        s->nodes = g_hash_table_new_full(node_hash, node_equal, node_free, NULL);
        s->owners = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, owner_free);
        s->addrs = g_hash_table_new(addr_hash, addr_equal);
        s->prefixes = g_hash_table_new_full(prefix_hash, prefix_equal, g_free, NULL);
        s->subscribers = g_array_new(FALSE, FALSE, sizeof(Subscriber));
        *ret = s;
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        /* Records hang off owners; free them without events. */
        GHashTableIter it;
        gpointer v;
        g_hash_table_destroy(s->addrs);
        g_hash_table_destroy(s->prefixes);
        g_hash_table_iter_init(&it, s->owners);
        while (g_hash_table_iter_next(&it, NULL, &v))
                for (Record *r = ((Owner *) v)->head, *next; r; r = next) {
                        next = r->owner_next;
                        record_free(r);
                }
        g_hash_table_destroy(s->owners);
        g_hash_table_destroy(s->nodes);
        g_array_free(s->subscribers, TRUE);
        g_free(s);
        return NULL;
}

uint64_t store_version(const Store *s) {
        return s->version;
}

size_t store_count(const Store *s) {
        return s->n_records;
}

size_t store_count_owner_prefix(const Store *s, const char *prefix) {
        GHashTableIter it;
        gpointer v;
        size_t n = 0;

        g_hash_table_iter_init(&it, s->owners);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (!prefix || g_str_has_prefix(((Owner *) v)->name, prefix))
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

char *record_source(const Record *r) {
        GString *s = g_string_new(r->owner);
        if (r->line > 0)
                g_string_append_printf(s, ":%u", r->line);
        /* A peer's record: the detail is where the peer has it. */
        if (r->detail && g_str_has_prefix(r->owner, "peer:"))
                g_string_append_printf(s, " \xc2\xb7 %s", r->detail);
        else if (r->detail)
                g_string_append_printf(s, " (%s)", r->detail);
        return g_string_free(s, FALSE);
}

const StoreNode *store_lookup_wire(const Store *s, const uint8_t *wire, size_t len) {
        if (len == 0 || len > DNS_WIRE_NAME_MAX)
                return NULL;
        return node_lookup(s, wire);
}

const StoreNode *store_lookup(const Store *s, const char *name) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        int len = dns_name_to_wire(name, wire);
        return len < 0 ? NULL : store_lookup_wire(s, wire, (size_t) len);
}

const RRSet *store_node_rrset(const StoreNode *n, uint16_t type) {
        for (uint32_t i = 0; n && i < n->n_rrsets; i++)
                if (n->rrsets[i].type == type)
                        return &n->rrsets[i];
        return NULL;
}

uint32_t store_rrset_rotate(const RRSet *set) {
        /* The counter is not part of the data: a cast keeps the lookups const. */
        return ((RRSet *) set)->rotate++;
}

bool store_lookup_name(const Store *s, const uint8_t *wire, size_t len, StoreName *ret) {
        const StoreNode *n = store_lookup_wire(s, wire, len);
        bool derived;

        *ret = (StoreName) {};
        if (len == 0 || len > DNS_WIRE_NAME_MAX)
                return false;
        derived = reverse_lookup(s, wire, len, &ret->addr);
        /* A node that holds nothing and has nothing below is a leftover. */
        if (n && (n->n_rrsets > 0 || n->n_children > 0))
                ret->node = n;
        ret->exists = ret->node || derived;
        return ret->exists;
}

bool store_name_has_ptr(const StoreName *n) {
        return n->addr || store_node_rrset(n->node, DNS_TYPE_PTR);
}

/* Whether an explicit PTR at the name points to target. */
static bool explicit_ptr_has(const StoreName *n, const uint8_t *target, size_t len) {
        const RRSet *set = store_node_rrset(n->node, DNS_TYPE_PTR);

        for (uint32_t i = 0; set && i < set->n; i++)
                if (set->items[i].record->rdlen == len && memcmp(set->items[i].record->rdata, target, len) == 0)
                        return true;
        return false;
}

/* The lowest TTL of the records at r's node with r's address. Only the
 * first of them (in the node's list) stands for them all, so that a name
 * given by two owners answers once; returns 0 for the others. */
static uint32_t derived_ttl(const Record *r) {
        uint32_t ttl = UINT32_MAX;

        for (const Record *o = record_node(r)->records; o; o = o->node_next) {
                if (!record_same_value(o, r->type, r->rdata, r->rdlen))
                        continue;
                if (ttl == UINT32_MAX && o != r)
                        return 0;
                ttl = MIN(ttl, o->ttl);
        }
        return ttl;
}

bool store_name_next_ptr(const StoreName *n, const Record **iter,
                         const uint8_t **ret_target, uint16_t *ret_len, uint32_t *ret_ttl) {
        const Record *r = *iter ? (*iter)->addr_next : n->addr;

        for (; r; r = r->addr_next) {
                const uint8_t *target = store_node_wire(record_node(r));
                size_t len = wire_len(target);
                uint32_t ttl = derived_ttl(r);

                if (ttl == 0 || explicit_ptr_has(n, target, len))
                        continue;
                *iter = r;
                *ret_target = target;
                *ret_len = (uint16_t) len;
                *ret_ttl = ttl;
                return true;
        }
        *iter = NULL;
        return false;
}

size_t store_name_n_ptr(const StoreName *n) {
        const Record *iter = NULL;
        const uint8_t *target;
        uint16_t len;
        uint32_t ttl;
        size_t k = 0;

        while (store_name_next_ptr(n, &iter, &target, &len, &ttl))
                k++;
        return k;
}

uint32_t store_name_ptr_ttl(const StoreName *n, const RRData *d) {
        uint32_t ttl = d->ttl;

        for (const Record *r = n->addr; r; r = r->addr_next) {
                const uint8_t *w = store_node_wire(record_node(r));
                if (wire_len(w) == d->record->rdlen && memcmp(w, d->record->rdata, d->record->rdlen) == 0)
                        ttl = MIN(ttl, r->ttl);
        }
        return ttl;
}

uint32_t store_reverse_rotate(const Store *s) {
        /* As store_rrset_rotate(): the counter is not part of the data. */
        return ((Store *) s)->reverse_rotate++;
}
