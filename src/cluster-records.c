/* SPDX-License-Identifier: MIT */
/* Replicated records per origin node, with versions and tombstones, mirrored
 * into the store. Pure: see cluster-records.h for the rules and formats. */

#include <glib.h>
#include <stdio.h>

#include "cluster-records.h"
#include "wire.h"

#define PEER_PREFIX "peer:"

/* One (name, type, value) as held for one node. The hash key is binary:
 * type, then the lowercased wire name, then the canonical wire rdata, so two
 * spellings of one value or one name are one entry, as in the store. */
typedef struct Entry {
        GBytes *key;
        char *name;
        char *value;
        uint16_t type;
        uint32_t ttl;
        uint64_t version;
        bool deleted;
        uint64_t deleted_usec;          /* caller's clock, for tombstone expiry */
} Entry;

typedef struct Origin {
        char *id;
        char *owner;                    /* "peer:<id>" */
        GHashTable *entries;            /* GBytes key -> Entry* */
        uint64_t floor;                 /* highest version covered by a snapshot from the origin */
        size_t live, tombstones;
        bool served;                    /* live entries are in the store */
        uint64_t withdraw_at;           /* dead: withdraw then (0: nothing pending) */
        uint64_t down_since;            /* withdrawn since (0: served) */
} Origin;

/* A local key whose records may have changed. */
typedef struct Dirty {
        char *name;
        char *value;
        uint16_t type;
} Dirty;

struct ClusterRecords {
        Store *store;
        char *self_id;
        uint64_t version;               /* last local version handed out */
        GHashTable *local;              /* GBytes key -> Entry* (live only) */
        GHashTable *dirty;              /* GBytes key -> Dirty* */
        GHashTable *origins;            /* id -> Origin* */
        uint64_t dead_grace_usec;
        uint64_t tombstone_lifetime_usec;
        uint64_t next_sweep;
        unsigned max_origins, max_records;
        ClusterRecordsCounters counters;
};

/* --- helpers --------------------------------------------------------------- */

bool cluster_owner_is_local(const char *owner) {
        return owner && !g_str_has_prefix(owner, PEER_PREFIX);
}

static GBytes *make_key(uint16_t type, const uint8_t *wire, size_t wire_len, const uint8_t *rdata, size_t rdlen) {
        size_t n = 2 + wire_len + rdlen;
        uint8_t *k = g_malloc(n);

        k[0] = (uint8_t) (type >> 8);
        k[1] = (uint8_t) (type & 0xff);
        memcpy(k + 2, wire, wire_len);
        if (rdlen > 0)
                memcpy(k + 2 + wire_len, rdata, rdlen);
        return g_bytes_new_take(k, n);
}

/* Key of a presentation (name, type, value); NULL if either does not parse. */
static GBytes *key_for(const char *name, uint16_t type, const char *value) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        _cleanup_free_ uint8_t *rdata = NULL;
        uint16_t rdlen = 0;
        int len;

        len = dns_name_to_wire(name, wire);
        if (len < 0)
                return NULL;
        if (dns_rdata_parse(type, value, &rdata, &rdlen, NULL) < 0)
                return NULL;
        return make_key(type, wire, (size_t) len, rdata, rdlen);
}

static void entry_free(gpointer p) {
        Entry *e = p;
        if (!e)
                return;
        g_bytes_unref(e->key);
        g_free(e->name);
        g_free(e->value);
        g_free(e);
}

static void dirty_free(gpointer p) {
        Dirty *d = p;
        g_free(d->name);
        g_free(d->value);
        g_free(d);
}

static void origin_free(gpointer p) {
        Origin *o = p;
        g_hash_table_destroy(o->entries);
        g_free(o->id);
        g_free(o->owner);
        g_free(o);
}

/* Room for one more origin: below the limit, or by forgetting the one
 * withdrawn the longest (a dead or departed node's table). */
static bool origin_room(ClusterRecords *cr) {
        Origin *oldest = NULL;
        GHashTableIter it;
        gpointer v;

        if (g_hash_table_size(cr->origins) < cr->max_origins)
                return true;
        g_hash_table_iter_init(&it, cr->origins);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Origin *o = v;
                if (!o->served && (!oldest || o->down_since < oldest->down_since))
                        oldest = o;
        }
        if (!oldest) {
                cr->counters.dropped_origins++;
                return false;
        }
        g_hash_table_remove(cr->origins, oldest->id);
        return true;
}

/* The table of an origin; with create, a new one if there is room (NULL if not). */
static Origin *origin_get(ClusterRecords *cr, const char *id, bool create) {
        Origin *o = g_hash_table_lookup(cr->origins, id);

        if (o || !create || !origin_room(cr))
                return o;
        o = g_new0(Origin, 1);
        o->id = g_strdup(id);
        o->owner = g_strconcat(PEER_PREFIX, id, NULL);
        o->entries = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, NULL, entry_free);
        o->served = true;       /* a node we hear from is up until SWIM says otherwise */
        g_hash_table_insert(cr->origins, o->id, o);
        return o;
}

/* --- lifecycle --------------------------------------------------------------- */

int cluster_records_new(ClusterRecords **ret, Store *store, const char *self_id, uint64_t first_version) {
        ClusterRecords *cr;

        if (!store || !swim_id_is_valid(self_id))
                return -EINVAL;
        cr = g_new0(ClusterRecords, 1);
        cr->store = store;
        cr->self_id = g_strdup(self_id);
        cr->version = first_version;
        cr->local = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, NULL, entry_free);
        cr->dirty = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, dirty_free);
        cr->origins = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, origin_free);
        cr->dead_grace_usec = 5 * USEC_PER_SEC;
        cr->tombstone_lifetime_usec = 120 * USEC_PER_SEC;
        cr->max_origins = CLUSTER_MAX_ORIGINS_DEFAULT;
        cr->max_records = CLUSTER_MAX_RECORDS_DEFAULT;
        *ret = cr;
        return 0;
}

ClusterRecords *cluster_records_free(ClusterRecords *cr) {
        if (!cr)
                return NULL;
        g_hash_table_destroy(cr->origins);
        g_hash_table_destroy(cr->dirty);
        g_hash_table_destroy(cr->local);
        g_free(cr->self_id);
        g_free(cr);
        return NULL;
}

void cluster_records_set_dead_grace(ClusterRecords *cr, uint64_t usec) {
        cr->dead_grace_usec = usec;
}

void cluster_records_set_tombstone_lifetime(ClusterRecords *cr, uint64_t usec) {
        cr->tombstone_lifetime_usec = MAX(usec, USEC_PER_SEC);
}

void cluster_records_set_limits(ClusterRecords *cr, unsigned max_origins, unsigned max_records) {
        if (max_origins > 0)
                cr->max_origins = max_origins;
        if (max_records > 0)
                cr->max_records = max_records;
}

const ClusterRecordsCounters *cluster_records_get_counters(const ClusterRecords *cr) {
        return &cr->counters;
}

/* --- wire ---------------------------------------------------------------------- */

static void write_entry(Wire *w, const ClusterEntry *e) {
        size_t nl = strlen(e->name), vl = strlen(e->value);

        if (nl > 255 || vl > CLUSTER_VALUE_MAX) {
                wire_fail(w, -EMSGSIZE);
                return;
        }
        wire_write_u8(w, e->deleted ? 1 : 0);
        wire_write_u16(w, e->type);
        wire_write_u32(w, e->ttl);
        wire_write_u64(w, e->version);
        wire_write_u8(w, (uint8_t) nl);
        wire_write(w, e->name, nl);
        wire_write_u16(w, (uint16_t) vl);
        wire_write(w, e->value, vl);
}

/* A decoded, validated entry with its key. */
typedef struct Decoded {
        ClusterEntry e;
        char name[256];
        char value[CLUSTER_VALUE_MAX + 1];
        GBytes *key;
} Decoded;

static bool text_ok(const uint8_t *p, size_t n) {
        /* No NULs (they would cut the string short) and no control bytes. */
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] == 0x7f)
                        return false;
        return true;
}

/* Reads one entry and checks it fully, as the store would: a name the store
 * accepts, a type it holds, a value that parses for that type, a TTL in range. */
static int read_entry(Wire *r, Decoded *d) {
        uint8_t flags, nl;
        uint16_t vl;
        const uint8_t *p;
        uint8_t wire[DNS_WIRE_NAME_MAX], rdata[DNS_RDATA_MAX];
        int len, rdlen;

        flags = wire_read_u8(r);
        d->e.type = wire_read_u16(r);
        d->e.ttl = wire_read_u32(r);
        d->e.version = wire_read_u64(r);
        nl = wire_read_u8(r);
        p = wire_read_ptr(r, nl);
        if (!p || nl == 0 || !text_ok(p, nl))
                goto bad;
        memcpy(d->name, p, nl);
        d->name[nl] = 0;
        vl = wire_read_u16(r);
        if (vl > CLUSTER_VALUE_MAX)
                goto bad;
        p = wire_read_ptr(r, vl);
        if (!p || !text_ok(p, vl))
                goto bad;
        memcpy(d->value, p, vl);
        d->value[vl] = 0;

        if ((flags & ~1u) != 0 || d->e.version == 0 || d->e.ttl > STORE_TTL_MAX)
                goto bad;
        if (dns_name_check(d->name, DNS_NAME_WILDCARD, NULL) < 0)
                goto bad;
        len = dns_name_to_wire(d->name, wire);
        if (len < 0)
                goto bad;
        rdlen = dns_rdata_from_string(d->e.type, d->value, rdata, NULL);
        if (rdlen < 0)
                goto bad;
        d->e.deleted = flags & 1;
        d->e.name = d->name;
        d->e.value = d->value;
        d->key = make_key(d->e.type, wire, (size_t) len, rdata, (size_t) rdlen);
        return 0;
bad:
        wire_fail(r, -EBADMSG);
        return -EBADMSG;
}

size_t cluster_update_encode(const ClusterEntry *e, uint8_t *buf, size_t size) {
        Wire w = wire_init(buf, size);

        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'U');
        wire_write_u8(&w, CLUSTER_RECORDS_FORMAT);
        write_entry(&w, e);
        return wire_ok(&w) ? wire_offset(&w) : 0;
}

static int update_decode(const uint8_t *data, size_t size, Decoded *d) {
        Wire r = wire_init_const(data, size);
        int k;

        if (wire_read_u8(&r) != 'J' || wire_read_u8(&r) != 'U' || wire_read_u8(&r) != CLUSTER_RECORDS_FORMAT ||
            !wire_ok(&r))
                return -EBADMSG;
        k = read_entry(&r, d);
        if (k < 0)
                return k;
        if (!wire_at_end(&r)) {
                g_bytes_unref(TAKE_PTR(d->key));
                return -EBADMSG;
        }
        return 0;
}

int cluster_update_decode(const uint8_t *data, size_t size, ClusterEntry *ret, char *name, char *value) {
        g_autofree Decoded *d = g_new0(Decoded, 1);
        int k;

        k = update_decode(data, size, d);
        if (k < 0)
                return k;
        g_bytes_unref(d->key);
        strcpy(name, d->name);
        strcpy(value, d->value);
        *ret = d->e;
        ret->name = name;
        ret->value = value;
        return 0;
}

/* --- mirroring into the store ------------------------------------------------- */

static void mirror_add(ClusterRecords *cr, Origin *o, const Entry *e) {
        if (o->served)
                (void) store_add(cr->store, e->name, e->type, e->value, e->ttl, o->owner, 0, NULL, NULL);
}

static void mirror_remove(ClusterRecords *cr, Origin *o, const Entry *e) {
        if (o->served)
                (void) store_remove(cr->store, e->name, e->type, e->value, o->owner);
}

static void origin_withdraw(ClusterRecords *cr, Origin *o, uint64_t now) {
        o->withdraw_at = 0;
        if (!o->served)
                return;
        (void) store_remove_owner(cr->store, o->owner);
        o->served = false;
        o->down_since = MAX(now, 1u);
}

static void origin_restore(ClusterRecords *cr, Origin *o) {
        GHashTableIter it;
        gpointer v;

        o->withdraw_at = 0;
        o->down_since = 0;
        if (o->served)
                return;
        o->served = true;
        g_hash_table_iter_init(&it, o->entries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (!e->deleted)
                        mirror_add(cr, o, e);
        }
}

/* --- the remote side ----------------------------------------------------------- */

/* Applies a validated entry with the newer-wins rule. Takes the key.
 * Returns 1 if it changed the table, 0 if not, -ENOSPC if the origin holds
 * as many entries as it may. */
static int apply_entry(ClusterRecords *cr, Origin *o, Decoded *d, uint64_t now) {
        g_autoptr(GBytes) key = TAKE_PTR(d->key);
        Entry *old = g_hash_table_lookup(o->entries, key);

        if (old ? d->e.version <= old->version : d->e.version <= o->floor)
                return 0;
        if (!old && o->live + o->tombstones >= cr->max_records) {
                cr->counters.dropped_records++;
                return -ENOSPC;
        }
        if (!old && d->e.deleted) {
                /* A tombstone for a key we never had: remember it, so an older
                 * add still in flight cannot bring the record back. */
                Entry *t = g_new0(Entry, 1);
                *t = (Entry) {
                        .key = g_bytes_ref(key), .name = g_strdup(d->e.name), .value = g_strdup(d->e.value),
                        .type = d->e.type, .version = d->e.version, .deleted = true, .deleted_usec = now,
                };
                g_hash_table_replace(o->entries, t->key, t);
                o->tombstones++;
                return 1;
        }
        if (!old) {
                Entry *e = g_new0(Entry, 1);
                *e = (Entry) {
                        .key = g_bytes_ref(key), .name = g_strdup(d->e.name), .value = g_strdup(d->e.value),
                        .type = d->e.type, .ttl = d->e.ttl, .version = d->e.version,
                };
                g_hash_table_replace(o->entries, e->key, e);
                o->live++;
                mirror_add(cr, o, e);
                return 1;
        }

        /* Replacing what we hold: take the old one out of the store first
         * (a different spelling of the same value is the same record). */
        if (!old->deleted) {
                if (d->e.deleted || !streq(old->value, d->e.value) || !streq(old->name, d->e.name))
                        mirror_remove(cr, o, old);
                o->live--;
        } else
                o->tombstones--;
        g_free(old->name);
        g_free(old->value);
        old->name = g_strdup(d->e.name);
        old->value = g_strdup(d->e.value);
        old->ttl = d->e.ttl;
        old->version = d->e.version;
        old->deleted = d->e.deleted;
        old->deleted_usec = d->e.deleted ? now : 0;
        if (old->deleted)
                o->tombstones++;
        else {
                o->live++;
                mirror_add(cr, o, old);
        }
        return 1;
}

int cluster_records_apply_update(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                 uint64_t now_usec) {
        g_autofree Decoded *d = g_new0(Decoded, 1);
        Origin *o;
        int k;

        if (!swim_id_is_valid(origin))
                return -EINVAL;
        k = update_decode(data, size, d);
        if (k < 0)
                return k;
        if (streq(origin, cr->self_id)) {
                g_bytes_unref(d->key);
                return 0;       /* our own, relayed back */
        }
        o = origin_get(cr, origin, true);
        if (!o) {
                g_bytes_unref(d->key);
                return -ENOSPC;
        }
        return apply_entry(cr, o, d, now_usec);
}

static void decoded_array_free(GPtrArray *a) {
        for (guint i = 0; i < a->len; i++) {
                Decoded *d = a->pdata[i];
                if (d->key)
                        g_bytes_unref(d->key);
                g_free(d);
        }
        g_ptr_array_free(a, TRUE);
}

int cluster_records_merge_snapshot(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                   uint64_t now_usec) {
        Wire r = wire_init_const(data, size);
        g_autoptr(GHashTable) listed = NULL;
        GPtrArray *decoded;
        uint64_t version;
        uint32_t count;
        Origin *o;
        int changes = 0;

        if (!swim_id_is_valid(origin))
                return -EINVAL;
        if (wire_read_u8(&r) != 'J' || wire_read_u8(&r) != 'T' || wire_read_u8(&r) != CLUSTER_RECORDS_FORMAT)
                return -EBADMSG;
        version = wire_read_u64(&r);
        count = wire_read_u32(&r);
        if (!wire_ok(&r) || version == 0)
                return -EBADMSG;
        /* Each entry takes at least 18 bytes: a count beyond that is a lie. */
        if (count > wire_available(&r) / 18)
                return -EBADMSG;

        /* Validate everything before applying anything. */
        decoded = g_ptr_array_new();
        listed = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, NULL);
        for (uint32_t i = 0; i < count; i++) {
                Decoded *d = g_new0(Decoded, 1);
                g_ptr_array_add(decoded, d);
                if (read_entry(&r, d) < 0 || d->e.version > version) {
                        decoded_array_free(decoded);
                        return -EBADMSG;
                }
                g_hash_table_add(listed, g_bytes_ref(d->key));
        }
        if (!wire_ok(&r) || !wire_at_end(&r)) {
                decoded_array_free(decoded);
                return -EBADMSG;
        }
        if (streq(origin, cr->self_id)) {
                decoded_array_free(decoded);
                return 0;
        }

        o = origin_get(cr, origin, true);
        if (!o) {
                decoded_array_free(decoded);
                return -ENOSPC;
        }
        for (guint i = 0; i < decoded->len; i++) {
                int k = apply_entry(cr, o, decoded->pdata[i], now_usec);
                if (k > 0)
                        changes++;
        }
        decoded_array_free(decoded);

        /* What the origin no longer had at `version` is gone; newer news stays. */
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, o->entries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (e->version > version || g_hash_table_contains(listed, e->key))
                        continue;
                if (e->deleted)
                        o->tombstones--;
                else {
                        mirror_remove(cr, o, e);
                        o->live--;
                        changes++;
                }
                g_hash_table_iter_remove(&it);
        }
        o->floor = MAX(o->floor, version);
        return changes;
}

void cluster_records_origin_state(ClusterRecords *cr, const char *origin, ClusterOriginState st, uint64_t now_usec) {
        Origin *o;

        if (!swim_id_is_valid(origin) || streq(origin, cr->self_id))
                return;
        /* A node that has sent nothing yet needs no table; one that has is
         * put back or withdrawn. */
        o = origin_get(cr, origin, false);
        if (!o)
                return;
        switch (st) {
        case CLUSTER_ORIGIN_ALIVE:
                origin_restore(cr, o);
                break;
        case CLUSTER_ORIGIN_DEAD:
                if (!o->served || o->withdraw_at != 0)
                        break;
                if (cr->dead_grace_usec == 0)
                        origin_withdraw(cr, o, now_usec);
                else
                        o->withdraw_at = now_usec + cr->dead_grace_usec;
                break;
        case CLUSTER_ORIGIN_LEFT:
                origin_withdraw(cr, o, now_usec);
                break;
        }
}

void cluster_records_withdraw_all(ClusterRecords *cr) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, cr->origins);
        while (g_hash_table_iter_next(&it, NULL, &v))
                origin_withdraw(cr, v, 1);
}

uint64_t cluster_records_tick(ClusterRecords *cr, uint64_t now_usec) {
        uint64_t next = UINT64_MAX, forget = 10 * cr->tombstone_lifetime_usec;
        bool sweep = now_usec >= cr->next_sweep;
        GHashTableIter it;
        gpointer v;

        if (sweep)
                cr->next_sweep = now_usec + cr->tombstone_lifetime_usec / 4;
        g_hash_table_iter_init(&it, cr->origins);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Origin *o = v;

                if (o->withdraw_at != 0) {
                        if (now_usec >= o->withdraw_at)
                                origin_withdraw(cr, o, now_usec);
                        else
                                next = MIN(next, o->withdraw_at);
                }
                if (!sweep)
                        continue;
                if (!o->served && o->down_since != 0 && now_usec >= o->down_since + forget) {
                        /* Gone for long: forget it. A node that comes back sends everything anew. */
                        g_hash_table_iter_remove(&it);
                        continue;
                }
                if (o->tombstones == 0)
                        continue;
                GHashTableIter eit;
                gpointer ev;
                g_hash_table_iter_init(&eit, o->entries);
                while (g_hash_table_iter_next(&eit, NULL, &ev)) {
                        Entry *e = ev;
                        if (e->deleted && now_usec >= e->deleted_usec + cr->tombstone_lifetime_usec) {
                                g_hash_table_iter_remove(&eit);
                                o->tombstones--;
                        }
                }
        }
        return MIN(next, cr->next_sweep);
}

size_t cluster_records_count(const ClusterRecords *cr, const char *origin) {
        const Origin *o;

        if (streq(origin, cr->self_id))
                return g_hash_table_size(cr->local);
        o = g_hash_table_lookup(cr->origins, origin);
        return o ? o->live : 0;
}

size_t cluster_records_tombstones(const ClusterRecords *cr, const char *origin) {
        const Origin *o = g_hash_table_lookup(cr->origins, origin);
        return o ? o->tombstones : 0;
}

bool cluster_records_origin_served(const ClusterRecords *cr, const char *origin) {
        const Origin *o = g_hash_table_lookup(cr->origins, origin);
        return o && o->served;
}

/* --- the local side ------------------------------------------------------------ */

void cluster_records_local_mark(ClusterRecords *cr, const char *name, uint16_t type, const char *value) {
        GBytes *key = key_for(name, type, value);
        Dirty *d;

        if (!key)
                return;
        if (g_hash_table_contains(cr->dirty, key)) {
                g_bytes_unref(key);
                return;
        }
        d = g_new0(Dirty, 1);
        d->name = g_strdup(name);
        d->value = g_strdup(value);
        d->type = type;
        g_hash_table_insert(cr->dirty, key, d);
}

static int mark_one(const Record *r, void *userdata) {
        if (cluster_owner_is_local(r->owner))
                cluster_records_local_mark(userdata, r->name, r->type, r->value);
        return 0;
}

void cluster_records_local_mark_all(ClusterRecords *cr) {
        (void) store_foreach(cr->store, NULL, NULL, mark_one, cr);
        /* And what we announced that may be gone. */
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, cr->local);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                cluster_records_local_mark(cr, e->name, e->type, e->value);
        }
}

typedef struct Lookup {
        GBytes *key;
        uint16_t type;
        bool found;
        uint32_t ttl;
        const char *value;
} Lookup;

static int lookup_one(const Record *r, void *userdata) {
        Lookup *l = userdata;
        uint8_t wire[DNS_WIRE_NAME_MAX];
        int len;

        if (r->type != l->type || !cluster_owner_is_local(r->owner))
                return 0;
        len = dns_name_to_wire(r->name, wire);
        if (len < 0)
                return 0;
        g_autoptr(GBytes) k = make_key(r->type, wire, (size_t) len, r->rdata, r->rdlen);
        if (!g_bytes_equal(k, l->key))
                return 0;
        /* Several local owners: one record for the cluster, with the lowest TTL. */
        l->ttl = l->found ? MIN(l->ttl, r->ttl) : r->ttl;
        l->found = true;
        l->value = r->value;
        return 0;
}

static void emit_entry(ClusterRecords *cr, const Entry *e, ClusterEmitFunc emit, void *userdata) {
        uint8_t buf[2 * CLUSTER_VALUE_MAX];
        ClusterEntry ce = {
                .name = e->name, .type = e->type, .value = e->value, .ttl = e->ttl,
                .version = e->version, .deleted = e->deleted,
        };
        size_t n = cluster_update_encode(&ce, buf, sizeof buf);
        /* The broadcast key: stable per record, so a newer update replaces an
         * older one still queued. */
        g_autofree char *key = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, e->key);

        if (n > 0 && emit)
                emit(key, buf, n, userdata);
}

unsigned cluster_records_local_flush(ClusterRecords *cr, ClusterEmitFunc emit, void *userdata) {
        GHashTableIter it;
        gpointer k, v;
        unsigned n = 0;

        g_hash_table_iter_init(&it, cr->dirty);
        while (g_hash_table_iter_next(&it, &k, &v)) {
                Dirty *d = v;
                Lookup l = { .key = k, .type = d->type };
                Entry *e = g_hash_table_lookup(cr->local, k);

                (void) store_foreach(cr->store, d->name, NULL, lookup_one, &l);
                if (l.found) {
                        if (e && e->ttl == l.ttl && streq(e->value, l.value))
                                continue;
                        if (!e) {
                                e = g_new0(Entry, 1);
                                e->key = g_bytes_ref(k);
                                e->name = g_strdup(d->name);
                                e->type = d->type;
                                g_hash_table_replace(cr->local, e->key, e);
                        }
                        g_free(e->value);
                        e->value = g_strdup(l.value);
                        e->ttl = l.ttl;
                        e->version = ++cr->version;
                        emit_entry(cr, e, emit, userdata);
                        n++;
                } else if (e) {
                        /* Gone: announce a tombstone; we need not keep one ourselves,
                         * since our next snapshot's version covers it. */
                        e->deleted = true;
                        e->version = ++cr->version;
                        emit_entry(cr, e, emit, userdata);
                        g_hash_table_remove(cr->local, k);
                        n++;
                }
        }
        g_hash_table_remove_all(cr->dirty);
        return n;
}

uint64_t cluster_records_local_version(const ClusterRecords *cr) {
        return cr->version;
}

static bool entry_fits(const Entry *e) {
        return strlen(e->name) <= 255 && strlen(e->value) <= CLUSTER_VALUE_MAX;
}

int cluster_records_encode_local(ClusterRecords *cr, uint8_t **ret, size_t *ret_size) {
        size_t cap = 15;
        uint32_t count = 0;
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, cr->local);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (!entry_fits(e))
                        continue;       /* cannot be sent; the store holds it locally only */
                cap += 18 + strlen(e->name) + strlen(e->value);
                count++;
        }
        g_autofree uint8_t *buf = g_malloc(cap);
        Wire w = wire_init(buf, cap);
        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'T');
        wire_write_u8(&w, CLUSTER_RECORDS_FORMAT);
        wire_write_u64(&w, cr->version);
        wire_write_u32(&w, count);
        g_hash_table_iter_init(&it, cr->local);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                ClusterEntry ce = {
                        .name = e->name, .type = e->type, .value = e->value, .ttl = e->ttl, .version = e->version,
                };
                if (entry_fits(e))
                        write_entry(&w, &ce);
        }
        if (!wire_ok(&w))
                return -ENOBUFS;
        *ret_size = wire_offset(&w);
        *ret = TAKE_PTR(buf);
        return 0;
}
