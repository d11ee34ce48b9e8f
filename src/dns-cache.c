/* SPDX-License-Identifier: MIT */
/* Forwarded answers: parse once, cache, replay. See dns-cache.h.
 *
 * A DnsRelayMessage is one allocation: the struct, the offsets of its TTL
 * fields, then the message bytes (OPT removed). Replaying is a copy with the
 * client's header and question, and a pass over the TTL offsets; no parsing
 * on the hit path. Messages are read and written with the bounded cursor of
 * wire.h. The cache is a GHashTable keyed by (name, type, class,
 * DO/CD) over entries on an LRU list; expired entries are dropped when found,
 * and drift to the LRU end where eviction takes them first. */

#include <glib.h>
#include <string.h>

#include "dns-cache.h"
#include "dns-name.h"
#include "wire.h"

#define DNS_FLAG_QR 0x8000u
#define DNS_FLAG_AA 0x0400u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_FLAG_RA 0x0080u
#define DNS_FLAG_AD 0x0020u
#define DNS_FLAG_CD 0x0010u
#define DNS_RR_FIXED 10u        /* type, class, ttl, rdlength */
#define DNS_TTL_MAX 0x7fffffffu /* RFC 2181 8: larger values mean 0 */

struct DnsRelayMessage {
        uint8_t *msg;   /* header (ID 0), question, records; no OPT */
        uint16_t *ttls; /* offsets of the TTL fields in msg */
        uint16_t len;
        uint16_t question_end; /* offset right after the question */
        uint16_t n_ttls;
        uint16_t ancount;
        uint16_t flags; /* upstream's header flags */
        uint32_t cache_ttl;
        size_t size;
};

static inline uint8_t ascii_lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* --- keys ------------------------------------------------------------------ */

int dns_cache_key_init(DnsCacheKey *k, const uint8_t *name, size_t len, uint16_t type, uint16_t class, uint8_t flags) {
        size_t i = 0;

        if (!k || !name || len == 0 || len > DNS_WIRE_NAME_MAX)
                return -EINVAL;
        while (name[i] != 0) {
                if (name[i] > 63 || i + 1 + name[i] >= len)
                        return -EINVAL;
                i += 1 + name[i];
        }
        if (i + 1 != len)
                return -EINVAL;

        *k = (DnsCacheKey) {
                .type = type,
                .class = class,
                .flags = flags & (DNS_CACHE_KEY_DO | DNS_CACHE_KEY_CD),
                .name_len = (uint8_t) len,
        };
        for (i = 0; i < len; i++)
                k->name[i] = ascii_lower(name[i]);
        return 0;
}

bool dns_cache_key_equal(const DnsCacheKey *a, const DnsCacheKey *b) {
        return a->type == b->type && a->class == b->class && a->flags == b->flags && a->name_len == b->name_len &&
               memcmp(a->name, b->name, a->name_len) == 0;
}

uint32_t dns_cache_key_hash(const DnsCacheKey *k) {
        /* FNV-1a over the name, then the rest. */
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < k->name_len; i++)
                h = (h ^ k->name[i]) * 16777619u;
        h = (h ^ k->type) * 16777619u;
        h = (h ^ k->class) * 16777619u;
        h = (h ^ k->flags) * 16777619u;
        return h;
}

/* --- parsing a reply ------------------------------------------------------- */

/* Long on purpose: one pass over the upstream message, section by section,
 * with the bounds checks of each in place. */
int dns_relay_message_new(const uint8_t *msg, size_t len, uint32_t max_ttl, DnsRelayMessage **ret) {
        Wire r = wire_init_const(msg, len);
        unsigned qd, an, ns, ar, total;
        size_t question_end, opt_start = 0, end, soa_ttl_off = 0;
        uint32_t min_ttl = UINT32_MAX, min_answer_ttl = UINT32_MAX, soa_min = UINT32_MAX;
        bool have_opt = false, have_soa = false;
        g_autofree uint16_t *ttls = NULL;
        DnsRelayMessage *m;
        unsigned n_ttls = 0;
        uint16_t flags;
        uint8_t rcode;

        if (!msg || !ret)
                return -EINVAL;
        if (len > DNS_TCP_MESSAGE_MAX)
                return -EBADMSG;
        wire_skip(&r, 2); /* ID */
        flags = wire_read_u16(&r);
        qd = wire_read_u16(&r);
        an = wire_read_u16(&r);
        ns = wire_read_u16(&r);
        ar = wire_read_u16(&r);
        total = an + ns + ar;
        if (!wire_ok(&r) || !(flags & DNS_FLAG_QR) || qd != 1 || total > len / (1 + DNS_RR_FIXED))
                return -EBADMSG;

        dns_name_skip(&r);
        wire_skip(&r, 4); /* type, class */
        question_end = wire_offset(&r);

        /* The TTL offsets go in a scratch array first: the count is only
         * known at the end. total <= 65535 / 11. */
        ttls = g_new(uint16_t, total ? total : 1);
        for (unsigned i = 0; i < total && wire_ok(&r); i++) {
                size_t start = wire_offset(&r), ttl_off;
                uint16_t type, rdlen;
                uint32_t ttl;
                bool root_owner;

                dns_name_skip(&r);
                root_owner = wire_offset(&r) == start + 1 && msg[start] == 0;
                type = wire_read_u16(&r);
                wire_skip(&r, 2); /* class */
                ttl_off = wire_offset(&r);
                ttl = wire_read_u32(&r);
                rdlen = wire_read_u16(&r);
                const uint8_t *rdata = wire_read_ptr(&r, rdlen);
                if (!wire_ok(&r))
                        break;

                if (type == DNS_TYPE_OPT) {
                        /* Each client gets its own OPT. Only a last one can be
                         * cut without moving what compression points to. */
                        if (i < an + ns || i + 1 != total || have_opt || !root_owner)
                                return -EBADMSG;
                        have_opt = true;
                        opt_start = start;
                        continue;
                }
                if (ttl > DNS_TTL_MAX)
                        ttl = 0;
                ttl = MIN(ttl, max_ttl);
                min_ttl = MIN(min_ttl, ttl);
                if (i < an)
                        min_answer_ttl = MIN(min_answer_ttl, ttl);
                ttls[n_ttls++] = (uint16_t) ttl_off;
                if (i >= an && i < an + ns && type == DNS_TYPE_SOA && !have_soa && rdlen >= 22) {
                        have_soa = true;
                        soa_ttl_off = ttl_off;
                        soa_min = MIN(ttl, wire_get_u32(rdata + rdlen - 4));
                }
        }
        if (!wire_ok(&r))
                return -EBADMSG;
        /* Anything after the last record is not part of the message. */
        end = have_opt ? opt_start : wire_offset(&r);

        m = g_malloc(sizeof(DnsRelayMessage) + n_ttls * sizeof(uint16_t) + end);
        *m = (DnsRelayMessage) {
                .ttls = (uint16_t *) (m + 1),
                .len = (uint16_t) end,
                .question_end = (uint16_t) question_end,
                .n_ttls = (uint16_t) n_ttls,
                .ancount = (uint16_t) an,
                .flags = flags,
                .size = sizeof(DnsRelayMessage) + n_ttls * sizeof(uint16_t) + end,
        };
        m->msg = (uint8_t *) (m->ttls + n_ttls);
        memcpy(m->ttls, ttls, n_ttls * sizeof(uint16_t));
        memcpy(m->msg, msg, end);
        wire_put_u16(m->msg, 0);
        if (have_opt)
                wire_put_u16(m->msg + 10, (uint16_t) (ar - 1));
        for (unsigned i = 0; i < n_ttls; i++) {
                uint32_t ttl = wire_get_u32(m->msg + m->ttls[i]);
                wire_put_u32(m->msg + m->ttls[i], ttl > DNS_TTL_MAX ? 0 : MIN(ttl, max_ttl));
        }

        rcode = flags & 0x0f;
        if (flags & DNS_FLAG_TC)
                m->cache_ttl = 0;
        else if (rcode == DNS_RCODE_NOERROR && an > 0)
                m->cache_ttl = min_ttl == UINT32_MAX ? 0 : min_ttl;
        else if ((rcode == DNS_RCODE_NXDOMAIN || rcode == DNS_RCODE_NOERROR) && have_soa) {
                /* RFC 2308 5: the SOA's TTL becomes the negative TTL, so a
                 * resolver behind us caches it for as long as we do. */
                wire_put_u32(m->msg + soa_ttl_off, soa_min);
                m->cache_ttl = MIN(soa_min, min_answer_ttl);
        } else
                m->cache_ttl = 0;

        *ret = m;
        return 0;
}

DnsRelayMessage *dns_relay_message_free(DnsRelayMessage *m) {
        g_free(m);
        return NULL;
}

uint8_t dns_relay_message_rcode(const DnsRelayMessage *m) {
        return m->flags & 0x0f;
}

bool dns_relay_message_truncated(const DnsRelayMessage *m) {
        return m->flags & DNS_FLAG_TC;
}

uint16_t dns_relay_message_answer_count(const DnsRelayMessage *m) {
        return m->ancount;
}

uint32_t dns_relay_message_cache_ttl(const DnsRelayMessage *m) {
        return m->cache_ttl;
}

size_t dns_relay_message_size(const DnsRelayMessage *m) {
        return m->size;
}

/* --- replaying ------------------------------------------------------------- */

static void put_opt(Wire *w, bool edns_do) {
        wire_write_u8(w, 0); /* root owner */
        wire_write_u16(w, DNS_TYPE_OPT);
        wire_write_u16(w, DNS_EDNS_PAYLOAD_OURS);
        wire_write_u8(w, 0);                     /* extended rcode */
        wire_write_u8(w, 0);                     /* version */
        wire_write_u16(w, edns_do ? 0x8000 : 0); /* DO copied (RFC 3225) */
        wire_write_u16(w, 0);                    /* no options */
}

static uint16_t reply_flags(const DnsRelayClient *c, uint16_t upstream, bool recursion_available) {
        uint16_t f = DNS_FLAG_QR | (c->flags & (DNS_FLAG_RD | DNS_FLAG_CD));

        if (recursion_available)
                f |= DNS_FLAG_RA;
        /* AD only for a client that can make sense of it (RFC 6840 5.8). */
        if ((upstream & DNS_FLAG_AD) && ((c->flags & DNS_FLAG_AD) || c->edns_do))
                f |= DNS_FLAG_AD;
        return f | (upstream & 0x0f);
}

/* Header, question, OPT: the reply of an error, or of an answer too big. */
static size_t build_empty(const DnsRelayClient *c, uint16_t flags, uint8_t *out, size_t out_size) {
        Wire w = wire_init(out, out_size);

        wire_write_u16(&w, c->id);
        wire_write_u16(&w, flags);
        wire_write_u16(&w, c->question_len > 0); /* QDCOUNT */
        wire_write_u16(&w, 0);
        wire_write_u16(&w, 0);
        wire_write_u16(&w, c->edns); /* ARCOUNT */
        wire_write(&w, c->question, c->question_len);
        if (c->edns)
                put_opt(&w, c->edns_do);
        return wire_ok(&w) ? wire_offset(&w) : 0;
}

size_t dns_relay_build(const DnsRelayMessage *m, uint32_t age, const DnsRelayClient *c, uint8_t *out, size_t out_size) {
        size_t limit;
        uint16_t flags;
        Wire w;

        if (!m || !c || !out || !c->question)
                return 0;
        /* Compression pointers into the question stay right only if the
         * client's question is where and as long as the upstream's. */
        if (DNS_HEADER_SIZE + c->question_len != m->question_end)
                return 0;

        flags = reply_flags(c, m->flags, true);
        limit = MIN(c->limit, out_size);
        w = wire_init(out, limit);
        wire_write_u16(&w, c->id);
        wire_write_u16(&w, flags);
        wire_write(&w, m->msg + 4, DNS_HEADER_SIZE - 4); /* the counts */
        wire_write(&w, c->question, c->question_len);
        wire_write(&w, m->msg + m->question_end, m->len - m->question_end);
        if (c->edns)
                put_opt(&w, c->edns_do);
        if (!wire_ok(&w))
                return build_empty(c, flags | DNS_FLAG_TC, out, limit);

        for (unsigned i = 0; i < m->n_ttls; i++) {
                uint8_t *t = out + m->ttls[i];
                uint32_t ttl = wire_get_u32(t);
                wire_put_u32(t, ttl > age ? ttl - age : 0);
        }
        if (c->edns)
                wire_put_u16(out + 10, (uint16_t) (wire_get_u16(m->msg + 10) + 1));
        return wire_offset(&w);
}

size_t dns_relay_build_error(uint8_t rcode, bool recursion_available, const DnsRelayClient *c, uint8_t *out,
                             size_t out_size) {
        if (!c || !out)
                return 0;
        return build_empty(c, reply_flags(c, rcode & 0x0f, recursion_available), out, MIN(c->limit, out_size));
}

/* --- the cache ------------------------------------------------------------- */

typedef struct Entry Entry;
struct Entry {
        DnsCacheKey key;
        DnsRelayMessage *m;
        uint64_t stored_usec;
        uint64_t expire_usec;
        Entry *prev, *next; /* LRU: most recently used first */
};

struct DnsCache {
        GHashTable *table; /* &entry->key -> entry */
        Entry *first, *last;
        size_t n_entries, bytes;
        size_t max_entries, max_bytes;
        DnsCacheCounters counters;
};

static size_t entry_bytes(const Entry *e) {
        return sizeof(Entry) + dns_relay_message_size(e->m);
}

static guint key_hash(gconstpointer p) {
        return dns_cache_key_hash(p);
}

static gboolean key_equal(gconstpointer a, gconstpointer b) {
        return dns_cache_key_equal(a, b);
}

static void lru_unlink(DnsCache *c, Entry *e) {
        if (e->prev)
                e->prev->next = e->next;
        else
                c->first = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                c->last = e->prev;
        e->prev = e->next = NULL;
}

static void lru_push_front(DnsCache *c, Entry *e) {
        e->prev = NULL;
        e->next = c->first;
        if (c->first)
                c->first->prev = e;
        else
                c->last = e;
        c->first = e;
}

static void entry_drop(DnsCache *c, Entry *e) {
        lru_unlink(c, e);
        g_hash_table_remove(c->table, &e->key);
        c->n_entries--;
        c->bytes -= entry_bytes(e);
        dns_relay_message_free(e->m);
        g_free(e);
}

int dns_cache_new(DnsCache **ret, size_t max_entries, size_t max_bytes) {
        DnsCache *c;

        if (!ret)
                return -EINVAL;
        c = g_new0(DnsCache, 1);
        c->table = g_hash_table_new(key_hash, key_equal);
        c->max_entries = max_entries;
        c->max_bytes = max_bytes;
        *ret = c;
        return 0;
}

void dns_cache_flush(DnsCache *c) {
        if (!c)
                return;
        while (c->first)
                entry_drop(c, c->first);
}

DnsCache *dns_cache_free(DnsCache *c) {
        if (!c)
                return NULL;
        dns_cache_flush(c);
        g_hash_table_destroy(c->table);
        g_free(c);
        return NULL;
}

int dns_cache_put(DnsCache *c, const DnsCacheKey *k, DnsRelayMessage *m, uint64_t now_usec) {
        Entry *e;
        uint32_t ttl;

        if (!c || !k || !m) {
                dns_relay_message_free(m);
                return c && k ? 0 : -EINVAL;
        }
        ttl = dns_relay_message_cache_ttl(m);
        if (ttl == 0 || c->max_entries == 0 || sizeof(Entry) + dns_relay_message_size(m) > c->max_bytes) {
                dns_relay_message_free(m);
                return 0;
        }

        e = g_hash_table_lookup(c->table, k);
        if (e)
                entry_drop(c, e);

        e = g_new0(Entry, 1);
        e->key = *k;
        e->m = m;
        e->stored_usec = now_usec;
        e->expire_usec = now_usec + (uint64_t) ttl * USEC_PER_SEC;
        g_hash_table_add(c->table, &e->key);
        lru_push_front(c, e);
        c->n_entries++;
        c->bytes += entry_bytes(e);
        c->counters.inserted++;

        while (c->last && (c->n_entries > c->max_entries || c->bytes > c->max_bytes)) {
                Entry *victim = c->last;

                if (victim->expire_usec <= now_usec)
                        c->counters.expired++;
                else
                        c->counters.evicted++;
                entry_drop(c, victim);
        }
        return 1;
}

const DnsRelayMessage *dns_cache_get(DnsCache *c, const DnsCacheKey *k, uint64_t now_usec, uint32_t *ret_age) {
        Entry *e;

        if (!c || !k)
                return NULL;
        e = g_hash_table_lookup(c->table, k);
        if (e && e->expire_usec <= now_usec) {
                c->counters.expired++;
                entry_drop(c, e);
                e = NULL;
        }
        if (!e) {
                c->counters.misses++;
                return NULL;
        }
        c->counters.hits++;
        if (c->first != e) {
                lru_unlink(c, e);
                lru_push_front(c, e);
        }
        if (ret_age)
                *ret_age = (uint32_t) ((now_usec - e->stored_usec) / USEC_PER_SEC);
        return e->m;
}

size_t dns_cache_entries(const DnsCache *c) {
        return c ? c->n_entries : 0;
}

size_t dns_cache_bytes(const DnsCache *c) {
        return c ? c->bytes : 0;
}

const DnsCacheCounters *dns_cache_get_counters(const DnsCache *c) {
        return c ? &c->counters : NULL;
}
