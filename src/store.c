/* SPDX-License-Identifier: MIT */
/* The record store. See store.h for the model.
 *
 * Layout: a hash table from lowercased wire names to nodes. Every ancestor of
 * a name with data is a node too, so "does this name exist" and "closest
 * encloser" are single lookups. A node keeps two views of its data: the
 * explicit records (with owner, line, detail: for the APIs) and the rrsets
 * (deduplicated wire rdata with reference counts: for the answer path).
 * Owners (sources) are interned and keep a list of their records, so a
 * source's records can be marked, swept or dropped without a scan. */

#include <arpa/inet.h>
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
        StoreSubscriber cb;
        void *userdata;
} Subscriber;

struct Store {
        GHashTable *nodes;      /* wire name -> StoreNode (owns) */
        GHashTable *owners;     /* name -> Owner (owns) */
        GArray *subscribers;
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

static bool label_char_ok(char c) {
        return g_ascii_isalnum(c) || c == '-' || c == '_';
}

int store_check_name(const char *name, const char **ret_error) {
        const char *why = NULL;
        size_t len, label = 0;

        if (!name || !*name) {
                why = "empty name";
                goto fail;
        }
        len = strlen(name);
        if (name[len - 1] == '.')
                len--;
        if (len == 0) {
                why = "the root name cannot hold records";
                goto fail;
        }
        if (len > 253) {
                why = "name longer than 253 characters";
                goto fail;
        }
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? name[i] : '.';
                if (c == '.') {
                        if (label == 0) {
                                why = "empty label (two dots in a row, or a leading dot)";
                                goto fail;
                        }
                        if (label > 63) {
                                why = "label longer than 63 characters";
                                goto fail;
                        }
                        label = 0;
                        continue;
                }
                if (c == '*') {
                        if (i != 0 || (len > 1 && name[1] != '.')) {
                                why = "'*' is only allowed as the whole first label (a wildcard)";
                                goto fail;
                        }
                } else if (!label_char_ok(c)) {
                        why = "invalid character (letters, digits, '-' and '_' only)";
                        goto fail;
                }
                label++;
        }
        if (name[0] == '*' && len == 1) {
                why = "a wildcard needs a name below it";
                goto fail;
        }
        return 0;
fail:
        if (ret_error)
                *ret_error = why;
        return -EINVAL;
}

int dns_name_to_wire(const char *name, uint8_t out[static DNS_WIRE_NAME_MAX]) {
        size_t o = 0, len;

        if (!name)
                return -EINVAL;
        len = strlen(name);
        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0) {
                out[0] = 0;
                return 1;
        }
        for (size_t i = 0; i <= len;) {
                size_t start = i, l;
                while (i < len && name[i] != '.')
                        i++;
                l = i - start;
                if (l == 0 || l > 63 || o + 1 + l + 1 > DNS_WIRE_NAME_MAX)
                        return -EINVAL;
                out[o++] = (uint8_t) l;
                for (size_t k = 0; k < l; k++)
                        out[o++] = (uint8_t) g_ascii_tolower(name[start + k]);
                i++;
        }
        out[o++] = 0;
        return (int) o;
}

int dns_wire_to_name(const uint8_t *wire, size_t len, char *out, size_t out_size) {
        size_t o = 0, i = 0;

        if (out_size < 2)
                return -EINVAL;
        while (i < len && wire[i] != 0) {
                uint8_t l = wire[i++];
                if (l > 63 || i + l > len)
                        return -EINVAL;
                if (o > 0)
                        out[o++] = '.';
                for (uint8_t k = 0; k < l; k++) {
                        uint8_t c = (uint8_t) g_ascii_tolower(wire[i + k]);
                        if (o + 5 >= out_size)
                                return -EINVAL;
                        if (label_char_ok((char) c) || c == '*')
                                out[o++] = (char) c;
                        else if (c == '.' || c == '\\')
                                o += (size_t) snprintf(out + o, out_size - o, "\\%c", c);
                        else
                                o += (size_t) snprintf(out + o, out_size - o, "\\%03u", c);
                }
                i += l;
        }
        if (i >= len)
                return -EINVAL;
        out[o] = 0;
        return (int) o;
}

/* --- values -------------------------------------------------------------- */

int store_type_from_string(const char *s) {
        static const struct { const char *n; uint16_t t; } types[] = {
                { "A", DNS_TYPE_A }, { "AAAA", DNS_TYPE_AAAA }, { "CNAME", DNS_TYPE_CNAME },
                { "TXT", DNS_TYPE_TXT }, { "PTR", DNS_TYPE_PTR },
        };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (g_ascii_strcasecmp(s, types[i].n) == 0)
                        return types[i].t;
        return -EINVAL;
}

const char *store_type_to_string(uint16_t type) {
        switch (type) {
        case DNS_TYPE_A: return "A";
        case DNS_TYPE_AAAA: return "AAAA";
        case DNS_TYPE_CNAME: return "CNAME";
        case DNS_TYPE_TXT: return "TXT";
        case DNS_TYPE_PTR: return "PTR";
        case DNS_TYPE_SOA: return "SOA";
        case DNS_TYPE_NS: return "NS";
        case DNS_TYPE_MX: return "MX";
        case DNS_TYPE_ANY: return "ANY";
        default: return NULL;
        }
}

/* Canonical presentation of rdata: the value string records carry. */
static char *value_from_rdata(uint16_t type, const uint8_t *rdata, uint16_t rdlen) {
        char buf[1024];

        switch (type) {
        case DNS_TYPE_A:
                return g_strdup(inet_ntop(AF_INET, rdata, buf, sizeof buf));
        case DNS_TYPE_AAAA:
                return g_strdup(inet_ntop(AF_INET6, rdata, buf, sizeof buf));
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                return dns_wire_to_name(rdata, rdlen, buf, sizeof buf) < 0 ? NULL : g_strdup(buf);
        case DNS_TYPE_TXT: {
                GString *s = g_string_sized_new(rdlen);
                for (size_t i = 0; i < rdlen;) {
                        uint8_t l = rdata[i++];
                        g_string_append_len(s, (const char *) rdata + i, MIN(l, rdlen - i));
                        i += l;
                }
                return g_string_free(s, FALSE);
        }
        default:
                return NULL;
        }
}

int store_parse_value(uint16_t type, const char *value, uint8_t **ret_rdata, uint16_t *ret_rdlen,
                      const char **ret_error) {
        uint8_t buf[4096];
        const char *why = NULL;
        int len;

        if (!value) {
                why = "missing value";
                goto fail;
        }
        switch (type) {
        case DNS_TYPE_A:
                if (inet_pton(AF_INET, value, buf) != 1) {
                        why = "not an IPv4 address";
                        goto fail;
                }
                len = 4;
                break;
        case DNS_TYPE_AAAA:
                if (inet_pton(AF_INET6, value, buf) != 1) {
                        why = "not an IPv6 address";
                        goto fail;
                }
                len = 16;
                break;
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                if (store_check_name(value, &why) < 0)
                        goto fail;
                if (value[0] == '*') {
                        why = "a target name cannot be a wildcard";
                        goto fail;
                }
                len = dns_name_to_wire(value, buf);
                if (len < 0) {
                        why = "not a valid domain name";
                        goto fail;
                }
                break;
        case DNS_TYPE_TXT: {
                /* Plain text, split into character-strings of at most 255 bytes. */
                size_t n = strlen(value), o = 0;
                if (n > 2048) {
                        why = "text longer than 2048 bytes";
                        goto fail;
                }
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f) {
                                why = "control characters are not allowed in text";
                                goto fail;
                        }
                if (n == 0)
                        buf[o++] = 0;
                for (size_t i = 0; i < n;) {
                        size_t l = MIN(n - i, 255u);
                        buf[o++] = (uint8_t) l;
                        memcpy(buf + o, value + i, l);
                        o += l;
                        i += l;
                }
                len = (int) o;
                break;
        }
        default:
                if (ret_error)
                        *ret_error = "unsupported record type (A, AAAA, CNAME, TXT and PTR are)";
                return -EOPNOTSUPP;
        }
        if (ret_rdata)
                *ret_rdata = g_memdup2(buf, (gsize) len);
        if (ret_rdlen)
                *ret_rdlen = (uint16_t) len;
        return 0;
fail:
        if (ret_error)
                *ret_error = why;
        return -EINVAL;
}

/* --- nodes and rrsets ---------------------------------------------------- */

/* Memory matters here: 100,000 names should fit in a few tens of MiB. So a
 * node is one allocation (struct, wire key, and the name when it has
 * records), a node with one type keeps its rrset inline, A and AAAA rdata
 * live inline in the rrset item, a derived PTR borrows the wire name of the
 * node it points to (which lives as long as the records that make the PTR),
 * and the hash table is a set of nodes keyed by their wire name. */

enum {
        RRDATA_INLINE,
        RRDATA_HEAP,
        RRDATA_BORROWED,
};

static void rrdata_release(RRData *d) {
        if (d->storage == RRDATA_HEAP)
                g_free(d->rdata);
}

/* Items moved in memory: inline rdata pointers must follow them. */
static void rrset_fixup(RRSet *set) {
        for (uint32_t i = 0; i < set->n; i++)
                if (set->items[i].storage == RRDATA_INLINE)
                        set->items[i].rdata = set->items[i].inline_rdata;
}

static void node_free(gpointer p) {
        StoreNode *n = p;
        for (uint32_t i = 0; i < n->n_rrsets; i++) {
                for (uint32_t k = 0; k < n->rrsets[i].n; k++)
                        rrdata_release(&n->rrsets[i].items[k]);
                g_free(n->rrsets[i].items);
        }
        if (n->rrsets != &n->rrset_inline)
                g_free(n->rrsets);
        if (n->name_heap)
                g_free(n->name);
        g_free(n);
}

static guint node_hash(gconstpointer p) {
        return wire_hash(((const StoreNode *) p)->wire);
}

static gboolean node_equal(gconstpointer a, gconstpointer b) {
        return wire_equal(((const StoreNode *) a)->wire, ((const StoreNode *) b)->wire);
}

static StoreNode *node_lookup(const Store *s, const uint8_t *wire) {
        StoreNode key = { .wire = (uint8_t *) wire };
        return g_hash_table_lookup(s->nodes, &key);
}

/* Gives a node its presentation name, the first time a record needs it. */
static void node_ensure_name(StoreNode *n) {
        char name[1024];

        if (n->name)
                return;
        if (dns_wire_to_name(n->wire, wire_len(n->wire), name, sizeof name) < 0)
                name[0] = 0;
        n->name = g_strdup(name);
        n->name_heap = true;
}

static StoreNode *node_get(Store *s, const uint8_t *wire, size_t len, bool create, bool with_name) {
        StoreNode *n = node_lookup(s, wire);
        char name[1024];
        int nl = -1;

        if (n || !create) {
                if (n && with_name)
                        node_ensure_name(n);
                return n;
        }

        if (with_name)
                nl = dns_wire_to_name(wire, len, name, sizeof name);
        n = g_malloc0(sizeof(StoreNode) + len + (nl >= 0 ? (size_t) nl + 1 : 0));
        n->wire = (uint8_t *) (n + 1);
        memcpy(n->wire, wire, len);
        if (nl >= 0) {
                n->name = (char *) n->wire + len;
                memcpy(n->name, name, (size_t) nl + 1);
        }
        g_hash_table_add(s->nodes, n);

        if (wire[0] != 0) {
                const uint8_t *pw = wire + wire[0] + 1;
                if (pw[0] != 0) {       /* no node for the root */
                        n->parent = node_get(s, pw, len - wire[0] - 1, true, false);
                        n->parent->n_children++;
                }
        }
        return n;
}

/* Drops nodes that hold nothing, walking up. */
static void node_prune(Store *s, StoreNode *n) {
        while (n && n->n_rrsets == 0 && !n->records && n->n_children == 0) {
                StoreNode *parent = n->parent;
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
                /* A second type: move to an array (RRSets hold no pointers into themselves). */
                RRSet *a = g_new(RRSet, 2);
                a[0] = n->rrset_inline;
                n->rrsets = a;
        } else
                n->rrsets = g_renew(RRSet, n->rrsets, n->n_rrsets + 1);
        n->rrsets[n->n_rrsets] = (RRSet) { .type = type };
        return &n->rrsets[n->n_rrsets++];
}

/* borrow: rdata lives at least as long as this reference (a node's wire name). */
static void rrset_ref(StoreNode *n, uint16_t type, const uint8_t *rdata, uint16_t rdlen, uint32_t ttl, bool borrow) {
        RRSet *set = node_rrset(n, type, true);
        RRData *d;

        for (uint32_t i = 0; i < set->n; i++) {
                d = &set->items[i];
                if (d->rdlen == rdlen && memcmp(d->rdata, rdata, rdlen) == 0) {
                        d->refs++;
                        d->ttl = MIN(d->ttl, ttl);
                        return;
                }
        }
        if (set->n == set->allocated) {
                set->allocated = set->allocated ? set->allocated * 2 : 1;
                set->items = g_renew(RRData, set->items, set->allocated);
                rrset_fixup(set);
        }
        d = &set->items[set->n++];
        *d = (RRData) { .rdlen = rdlen, .ttl = ttl, .refs = 1 };
        if (borrow) {
                d->storage = RRDATA_BORROWED;
                d->rdata = (uint8_t *) rdata;
        } else if (rdlen <= sizeof d->inline_rdata) {
                d->storage = RRDATA_INLINE;
                memcpy(d->inline_rdata, rdata, rdlen);
                d->rdata = d->inline_rdata;
        } else {
                d->storage = RRDATA_HEAP;
                d->rdata = g_memdup2(rdata, rdlen);
        }
}

static void rrset_unref(StoreNode *n, uint16_t type, const uint8_t *rdata, uint16_t rdlen) {
        RRSet *set = node_rrset(n, type, false);

        if (!set)
                return;
        for (uint32_t i = 0; i < set->n; i++) {
                RRData *d = &set->items[i];
                if (d->rdlen != rdlen || memcmp(d->rdata, rdata, rdlen) != 0)
                        continue;
                if (--d->refs > 0) {
                        /* The lowest TTL may have gone with this reference. */
                        uint32_t ttl = UINT32_MAX;
                        for (Record *r = n->records; r; r = r->node_next)
                                if (r->type == type && r->rdlen == rdlen && memcmp(r->rdata, rdata, rdlen) == 0)
                                        ttl = MIN(ttl, r->ttl);
                        if (ttl != UINT32_MAX)
                                d->ttl = ttl;
                        return;
                }
                rrdata_release(d);
                memmove(set->items + i, set->items + i + 1, (set->n - i - 1) * sizeof(RRData));
                set->n--;
                rrset_fixup(set);
                break;
        }
        if (set->n == 0) {
                g_free(set->items);
                size_t idx = (size_t) (set - n->rrsets);
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
        }
}

/* The reverse name of an address, as wire: 4.3.2.1.in-addr.arpa or the ip6.arpa nibbles. */
static int reverse_wire(uint16_t type, const uint8_t *addr, uint8_t out[static DNS_WIRE_NAME_MAX]) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        if (type == DNS_TYPE_A) {
                for (int i = 3; i >= 0; i--) {
                        char b[4];
                        int l = snprintf(b, sizeof b, "%u", addr[i]);
                        out[o++] = (uint8_t) l;
                        memcpy(out + o, b, (size_t) l);
                        o += (size_t) l;
                }
                memcpy(out + o, "\007in-addr\004arpa", 14);
                return (int) (o + 14);
        }
        for (int i = 15; i >= 0; i--) {
                out[o++] = 1;
                out[o++] = (uint8_t) hex[addr[i] & 0xf];
                out[o++] = 1;
                out[o++] = (uint8_t) hex[addr[i] >> 4];
        }
        memcpy(out + o, "\003ip6\004arpa", 10);
        return (int) (o + 10);
}

static void ptr_ref(Store *s, const Record *r, bool add) {
        uint8_t rev[DNS_WIRE_NAME_MAX];
        int len;
        StoreNode *n;

        if (r->type != DNS_TYPE_A && r->type != DNS_TYPE_AAAA)
                return;
        if (r->name[0] == '*')          /* a wildcard has no single name to point back to */
                return;
        len = reverse_wire(r->type, r->rdata, rev);
        n = node_get(s, rev, (size_t) len, add, false);
        if (!n)
                return;
        if (add)
                rrset_ref(n, DNS_TYPE_PTR, r->node->wire, (uint16_t) wire_len(r->node->wire), r->ttl, true);
        else {
                rrset_unref(n, DNS_TYPE_PTR, r->node->wire, (uint16_t) wire_len(r->node->wire));
                node_prune(s, n);
        }
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

static void notify(Store *s, RecordChange change, const Record *r) {
        s->version++;
        for (guint i = 0; i < s->subscribers->len; i++) {
                Subscriber *sub = &g_array_index(s->subscribers, Subscriber, i);
                sub->cb(s, change, r, sub->userdata);
        }
}

/* A record is one allocation: the struct, its rdata and its value string. */
static void record_free(Record *r) {
        g_free(r->detail);
        g_free(r);
}

/* Unlinks, notifies and frees one record. */
static void record_remove(Store *s, Record *r) {
        StoreNode *n = r->node;
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

        rrset_unref(n, r->type, r->rdata, r->rdlen);
        ptr_ref(s, r, false);
        notify(s, RECORD_REMOVED, r);

        record_free(r);
        if (o->count == 0)
                g_hash_table_remove(s->owners, o->name);
        node_prune(s, n);
}

int store_add(Store *s, const char *name, uint16_t type, const char *value, uint32_t ttl,
              const char *owner, uint32_t line, const char *detail, const char **ret_error) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        _cleanup_free_ uint8_t *rdata = NULL;
        uint16_t rdlen;
        StoreNode *n;
        Owner *o;
        Record *r;
        int len, k;

        if (!s || !owner || !*owner) {
                if (ret_error)
                        *ret_error = "missing owner";
                return -EINVAL;
        }
        if (store_check_name(name, ret_error) < 0)
                return -EINVAL;
        if (ttl > STORE_TTL_MAX) {
                if (ret_error)
                        *ret_error = "TTL above 604800 seconds (a week)";
                return -ERANGE;
        }
        k = store_parse_value(type, value, &rdata, &rdlen, ret_error);
        if (k < 0)
                return k;
        len = dns_name_to_wire(name, wire);
        if (len < 0) {
                if (ret_error)
                        *ret_error = "not a valid domain name";
                return -EINVAL;
        }

        o = owner_get(s, owner, false);
        n = node_get(s, wire, (size_t) len, false, false);
        if (n && o)
                for (r = n->records; r; r = r->node_next) {
                        if (r->type != type || r->owner != o->name || r->rdlen != rdlen ||
                            memcmp(r->rdata, rdata, rdlen) != 0)
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
                                rrset_unref(n, type, rdata, rdlen);
                                ptr_ref(s, r, false);
                                notify(s, RECORD_REMOVED, &old);
                                r->ttl = ttl;
                                rrset_ref(n, type, rdata, rdlen, ttl, false);
                                ptr_ref(s, r, true);
                                notify(s, RECORD_ADDED, r);
                        }
                        return 0;
                }

        if (!o)
                o = owner_get(s, owner, true);
        n = node_get(s, wire, (size_t) len, true, true);

        {
                _cleanup_free_ char *v = value_from_rdata(type, rdata, rdlen);
                size_t vl = v ? strlen(v) + 1 : 1;
                r = g_malloc0(sizeof(Record) + rdlen + vl);
                r->rdata = (uint8_t *) (r + 1);
                memcpy(r->rdata, rdata, rdlen);
                r->value = (char *) r->rdata + rdlen;
                memcpy(r->value, v ?: "", vl);
        }
        r->name = n->name;
        r->type = type;
        r->ttl = ttl;
        r->line = line;
        r->rdlen = rdlen;
        r->owner = o->name;
        r->detail = g_strdup(detail);
        r->node = n;
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

        rrset_ref(n, type, r->rdata, rdlen, ttl, false);
        ptr_ref(s, r, true);
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
        n = node_get(s, wire, (size_t) len, false, false);
        if (!n)
                return 0;
        if (owner) {
                o = owner_get(s, owner, false);
                if (!o)
                        return 0;
        }
        if (value && type != 0 && store_parse_value(type, value, &rdata, &rdlen, NULL) < 0)
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
        if (r->detail)
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
