/* SPDX-License-Identifier: MIT */
/* Replicated records per origin node, with versions, tombstones and origin
 * signatures, mirrored into the store. Pure: see cluster-records.h for the
 * rules and formats. */

#include <glib.h>
#include <stdio.h>

#include "cluster-records.h"
#include "wire.h"

#define PEER_PREFIX "peer:"
#define CTX_UPDATE "joyride update v2"
#define CTX_SNAPSHOT "joyride snapshot v2"
#define SIG_SIZE CLUSTER_SIGNATURE_SIZE
/* The fewest bytes an entry takes: flags, type, ttl, version, three lengths. */
#define ENTRY_MIN_V1 18u
#define ENTRY_MIN_V2 19u
/* An unsigned claim about us is refuted at most this often. */
#define REFUTE_UNSIGNED_INTERVAL_USEC USEC_PER_SEC
/* Additions held back at the limit (see Held): how many, over all origins,
 * and for how long. A burst's snapshot comes within its quiet time (at most
 * ten windows) and a transfer. */
#define HELD_MAX 4096u
#define HELD_USEC (30 * USEC_PER_SEC)

/* One (name, type, value) as held for one node. The hash key is binary:
 * type, then the lowercased wire name, then the canonical wire rdata, so two
 * spellings of one value or one name are one entry, as in the store. */
typedef struct Entry {
        GBytes *key;
        char *name;
        char *value;
        char *source; /* where the origin has it; NULL: not said */
        uint16_t type;
        uint32_t ttl;
        uint64_t version;
        bool deleted;
        uint32_t mark;         /* the snapshot merge that last listed it */
        uint64_t deleted_usec; /* caller's clock, for tombstone expiry */
        GBytes *wire;          /* local entries: as a snapshot carries it (format 2) */
} Entry;

typedef struct Origin {
        char *id;
        char *owner;         /* "peer:<id>" */
        GHashTable *entries; /* GBytes key -> Entry* */
        uint64_t floor;      /* highest version covered by a snapshot from the origin */
        uint64_t max_seen;   /* highest version taken from it (reset by its snapshots) */
        size_t live, tombstones;
        bool served;           /* live entries are in the store */
        uint64_t withdraw_at;  /* dead: withdraw then (0: nothing pending) */
        uint64_t down_since;   /* withdrawn since (0: served) */
        struct Mirror *mirror; /* a large table going into or out of the store, in slices */
        GQueue held;           /* Held*, oldest first */
        size_t *held_total;    /* the count over all origins, kept in step */
} Origin;

/* Putting a large origin's records into the store, or taking them out, is
 * done in slices (cluster_records_merge_step), as merging a snapshot is: the
 * keys to go through, each looked up as it comes. */
typedef struct Mirror {
        char *origin;
        bool serve;      /* into the store (true) or out of it */
        GPtrArray *keys; /* GBytes */
        guint next;
} Mirror;
#define MIRROR_SLICE_MIN 1000u /* smaller tables go in or out at once */

/* A local key whose records may have changed. */
typedef struct Dirty {
        char *name;
        char *value;
        uint16_t type;
} Dirty;

/* A decoded entry: its strings and key live in an arena (offsets, since the
 * arena grows while decoding). */
typedef struct Item {
        uint32_t name, value, source; /* offsets of NUL-terminated strings; source NO_SOURCE: none */
        uint32_t key, key_len;
        uint16_t type;
        uint32_t ttl;
        uint64_t version;
        bool deleted;
} Item;
#define NO_SOURCE UINT32_MAX

/* An addition that found its origin's table full. A node applies a change's
 * additions before its removals (so that a name never answers with nothing),
 * so an origin at the limit that replaces records sends additions that
 * overtake the removals making room for them. Such an addition waits here
 * for a removal from its origin, or for the origin's next snapshot (which a
 * burst sends), and counts as dropped only if neither comes in time. */
typedef struct Held {
        GByteArray *arena; /* the decoded update */
        Item it;
        uint64_t expires;
} Held;

struct ClusterSnapshot {
        char *origin;
        uint8_t format;
        uint64_t version;
        GArray *items; /* Item */
        GByteArray *arena;
        /* merge progress */
        uint32_t gen;
        guint next;          /* items applied so far */
        size_t marked;       /* entries of the origin's table that it lists */
        uint64_t max_listed; /* highest version among them */
        GPtrArray *sweep;    /* keys to drop at the end, once every item is in */
        guint sweep_next;
        uint64_t max_kept; /* highest version left after the sweep */
};

struct ClusterRecords {
        Store *store;
        char *self_id;
        ClusterKeys *keys;
        uint64_t version;    /* last local version handed out */
        GHashTable *local;   /* GBytes key -> Entry* (live only) */
        GHashTable *dirty;   /* GBytes key -> Dirty* */
        GHashTable *reissue; /* GBytes key set: local entries to send again (refutation) */
        GPtrArray *retract;  /* Dirty*: keys claimed in our name that we do not hold */
        GHashTable *origins; /* id -> Origin* */
        GQueue merges;       /* ClusterSnapshot* */
        GQueue mirrors;      /* Mirror*, before the merges */
        GPtrArray *parts;    /* the local entries encoded, as of parts_version (NULL: none) */
        uint64_t parts_version;
        uint32_t gen;
        bool accept_unsigned;
        bool refute_unsigned;
        bool quiet;            /* in a burst: changes are not gossiped */
        bool resync;           /* a burst was flushed: push-pull carries it */
        uint64_t window_start; /* the current burst window (caller's clock) */
        unsigned window_changes;
        uint64_t quiet_since, quiet_until; /* the burst ends then, unless more changes come */
        uint64_t last_unsigned_refute;
        uint64_t dead_grace_usec;
        uint64_t tombstone_lifetime_usec;
        uint64_t next_sweep;
        size_t n_held; /* additions held back, over all origins */
        unsigned max_origins, max_records;
        ClusterRecordsCounters counters;
};

/* --- helpers --------------------------------------------------------------- */

bool cluster_owner_is_local(const char *owner) {
        return store_owner_is_local(owner);
}

static GBytes *make_key(uint16_t type, const uint8_t *wire, size_t wire_len, const uint8_t *rdata, size_t rdlen) {
        size_t n = 2 + wire_len + rdlen;
        uint8_t *k = g_malloc(n);

        wire_put_u16(k, type);
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

static bool within_step(uint64_t seen, uint64_t v) {
        uint32_t e = cluster_version_epoch(v), se = cluster_version_epoch(seen);
        uint32_t q = cluster_version_seq(v), sq = cluster_version_seq(seen);

        if (v <= seen)
                return true;
        if (e == se)
                return q - sq <= CLUSTER_SEQ_STEP;
        return se < UINT32_MAX && e == se + 1 && q <= CLUSTER_SEQ_STEP;
}

static void entry_free(gpointer p) {
        Entry *e = p;
        if (!e)
                return;
        g_bytes_unref(e->key);
        if (e->wire)
                g_bytes_unref(e->wire);
        g_free(e->name);
        g_free(e->value);
        g_free(e->source);
        g_free(e);
}

static void dirty_free(gpointer p) {
        Dirty *d = p;
        g_free(d->name);
        g_free(d->value);
        g_free(d);
}

static Dirty *dirty_new(const char *name, uint16_t type, const char *value) {
        Dirty *d = g_new0(Dirty, 1);
        d->name = g_strdup(name);
        d->value = g_strdup(value);
        d->type = type;
        return d;
}

static void mirror_free(Mirror *m) {
        if (!m)
                return;
        g_free(m->origin);
        g_ptr_array_unref(m->keys);
        g_free(m);
}

static void held_free(Held *h) {
        g_byte_array_unref(h->arena);
        g_free(h);
}

static void held_drop(Origin *o) {
        held_free(g_queue_pop_head(&o->held));
        (*o->held_total)--;
}

static void origin_free(gpointer p) {
        Origin *o = p;
        while (!g_queue_is_empty(&o->held))
                held_drop(o);
        if (o->mirror)
                o->mirror->origin[0] = 0; /* its task goes when its turn comes */
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
        o->served = true; /* a node we hear from is up until SWIM says otherwise */
        g_queue_init(&o->held);
        o->held_total = &cr->n_held;
        g_hash_table_insert(cr->origins, o->id, o);
        return o;
}

/* --- lifecycle --------------------------------------------------------------- */

int cluster_records_new(ClusterRecords **ret, Store *store, const char *self_id, ClusterKeys *keys,
                        uint64_t first_version) {
        ClusterRecords *cr;

        if (!store || !keys || !swim_id_is_valid(self_id))
                return -EINVAL;
        cr = g_new0(ClusterRecords, 1);
        cr->store = store;
        cr->self_id = g_strdup(self_id);
        cr->keys = keys;
        cr->version = first_version;
        cr->local = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, NULL, entry_free);
        cr->dirty = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, dirty_free);
        cr->reissue = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, NULL);
        cr->retract = g_ptr_array_new_with_free_func(dirty_free);
        cr->origins = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, origin_free);
        g_queue_init(&cr->merges);
        g_queue_init(&cr->mirrors);
        cr->dead_grace_usec = 5 * USEC_PER_SEC;
        cr->tombstone_lifetime_usec = 120 * USEC_PER_SEC;
        cr->max_origins = CLUSTER_MAX_ORIGINS_DEFAULT;
        cr->max_records = CLUSTER_MAX_RECORDS_DEFAULT;
        cr->refute_unsigned = true;
        *ret = cr;
        return 0;
}

static void snapshot_destroy(gpointer p) {
        cluster_snapshot_free(p);
}

ClusterRecords *cluster_records_free(ClusterRecords *cr) {
        if (!cr)
                return NULL;
        g_queue_clear_full(&cr->merges, snapshot_destroy);
        g_queue_clear_full(&cr->mirrors, (GDestroyNotify) mirror_free);
        if (cr->parts)
                g_ptr_array_unref(cr->parts);
        g_hash_table_destroy(cr->origins);
        g_hash_table_destroy(cr->dirty);
        g_hash_table_destroy(cr->reissue);
        g_ptr_array_free(cr->retract, TRUE);
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

void cluster_records_set_accept_unsigned(ClusterRecords *cr, bool b) {
        cr->accept_unsigned = b;
}

void cluster_records_set_refute_unsigned(ClusterRecords *cr, bool b) {
        cr->refute_unsigned = b;
}

const ClusterRecordsCounters *cluster_records_get_counters(const ClusterRecords *cr) {
        return &cr->counters;
}

/* --- wire ---------------------------------------------------------------------- */

static void write_entry(Wire *w, uint8_t format, const ClusterEntry *e) {
        size_t nl = strlen(e->name), vl = strlen(e->value), sl = e->source ? strlen(e->source) : 0;

        if (nl > 255 || vl > CLUSTER_VALUE_MAX || sl > CLUSTER_SOURCE_MAX) {
                wire_fail(w, -ENOBUFS);
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
        if (format >= CLUSTER_RECORDS_FORMAT) {
                wire_write_u8(w, (uint8_t) sl);
                wire_write(w, e->source, sl);
        }
}

static bool text_ok(const uint8_t *p, size_t n) {
        /* No NULs (they would cut the string short) and no control bytes. */
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] == 0x7f)
                        return false;
        return true;
}

static uint32_t arena_add(GByteArray *arena, const void *p, size_t n, bool nul) {
        uint32_t at = arena->len;
        g_byte_array_append(arena, p, (guint) n);
        if (nul)
                g_byte_array_append(arena, (const guint8 *) "", 1);
        return at;
}

static const char *arena_str(const GByteArray *arena, uint32_t at) {
        return at == NO_SOURCE ? NULL : (const char *) arena->data + at;
}

/* Reads one entry and checks it fully, as the store would: a name the store
 * accepts, a type it holds, a value that parses for that type, a TTL in
 * range. Its strings and key go to the arena. */
static int read_entry(Wire *w, uint8_t format, GByteArray *arena, Item *it) {
        char name[256];
        g_autofree char *value = NULL;
        const uint8_t *np, *vp, *sp = NULL;
        uint8_t wire[DNS_WIRE_NAME_MAX];
        _cleanup_free_ uint8_t *rdata = NULL;
        uint16_t rdlen = 0, vl;
        uint8_t flags, nl, sl = 0;
        int len;

        flags = wire_read_u8(w);
        it->type = wire_read_u16(w);
        it->ttl = wire_read_u32(w);
        it->version = wire_read_u64(w);
        nl = wire_read_u8(w);
        np = wire_read_ptr(w, nl);
        vl = wire_read_u16(w);
        vp = wire_read_ptr(w, vl);
        if (format >= CLUSTER_RECORDS_FORMAT) {
                sl = wire_read_u8(w);
                sp = wire_read_ptr(w, sl);
        }
        if (!wire_ok(w) || nl == 0 || vl > CLUSTER_VALUE_MAX || !text_ok(np, nl) || !text_ok(vp, vl) ||
            (sp && !text_ok(sp, sl)))
                return -EBADMSG;
        if ((flags & ~1u) != 0 || it->version == 0 || it->ttl > STORE_TTL_MAX)
                return -EBADMSG;
        memcpy(name, np, nl);
        name[nl] = 0;
        value = g_strndup((const char *) vp, vl);
        if (dns_name_check(name, DNS_NAME_WILDCARD, NULL) < 0)
                return -EBADMSG;
        len = dns_name_to_wire(name, wire);
        if (len < 0)
                return -EBADMSG;
        if (dns_rdata_parse(it->type, value, &rdata, &rdlen, NULL) < 0)
                return -EBADMSG;
        it->deleted = flags & 1;
        it->name = arena_add(arena, name, nl, true);
        it->value = arena_add(arena, value, vl, true);
        it->source = sl > 0 ? arena_add(arena, sp, sl, true) : NO_SOURCE;
        it->key = arena->len;
        uint8_t t[2];
        wire_put_u16(t, it->type);
        arena_add(arena, t, 2, false);
        arena_add(arena, wire, (size_t) len, false);
        if (rdlen > 0)
                arena_add(arena, rdata, rdlen, false);
        it->key_len = arena->len - it->key;
        return 0;
}

static void sign_into(const ClusterKeys *keys, const char *ctx, const char *origin, uint8_t *buf, size_t signed_len) {
        uint8_t digest[CLUSTER_DIGEST_SIZE];

        cluster_digest(ctx, origin, buf, signed_len, digest);
        cluster_keys_sign(keys, digest, sizeof digest, buf + signed_len);
}

static bool signature_ok(const uint8_t *key, const char *ctx, const char *origin, const uint8_t *data, size_t size) {
        uint8_t digest[CLUSTER_DIGEST_SIZE];

        if (size < SIG_SIZE)
                return false;
        cluster_digest(ctx, origin, data, size - SIG_SIZE, digest);
        return cluster_signature_ok(key, digest, sizeof digest, data + size - SIG_SIZE);
}

static bool entry_fits(const Entry *e) {
        return strlen(e->name) <= 255 && strlen(e->value) <= CLUSTER_VALUE_MAX;
}

/* A local entry as our snapshots carry it, kept beside it: a snapshot is then
 * the concatenation of these (cluster_snapshot_assemble), which another
 * thread can do, since they never change once made. */
static void local_encode(Entry *e) {
        ClusterEntry ce = {
                .name = e->name,
                .type = e->type,
                .value = e->value,
                .source = e->source,
                .ttl = e->ttl,
                .version = e->version,
        };
        size_t cap = ENTRY_MIN_V2 + strlen(e->name) + strlen(e->value) + (e->source ? strlen(e->source) : 0);
        uint8_t *buf = g_malloc(cap);
        Wire w = wire_init(buf, cap);

        if (e->wire)
                g_bytes_unref(e->wire);
        e->wire = NULL;
        if (!entry_fits(e)) {
                g_free(buf);
                return; /* cannot be sent; the store holds it locally only */
        }
        write_entry(&w, CLUSTER_RECORDS_FORMAT, &ce);
        if (!wire_ok(&w)) {
                g_free(buf);
                return;
        }
        e->wire = g_bytes_new_take(buf, wire_offset(&w));
}

size_t cluster_update_encode(const ClusterEntry *e, const char *origin, const ClusterKeys *keys, uint8_t *buf,
                             size_t size) {
        uint8_t format = keys ? CLUSTER_RECORDS_FORMAT : CLUSTER_RECORDS_FORMAT_V1;
        Wire w = wire_init(buf, size);

        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'U');
        wire_write_u8(&w, format);
        write_entry(&w, format, e);
        if (keys)
                (void) wire_reserve(&w, SIG_SIZE);
        if (!wire_ok(&w))
                return 0;
        if (keys)
                sign_into(keys, CTX_UPDATE, origin, buf, wire_offset(&w) - SIG_SIZE);
        return wire_offset(&w);
}

/* Decodes an update into arena and item. Returns its format, or -EBADMSG. The
 * signature (format 2) is not checked here. */
static int update_decode(const uint8_t *data, size_t size, GByteArray *arena, Item *it) {
        Wire w = wire_init_const(data, size);
        uint8_t format;

        if (wire_read_u8(&w) != 'J' || wire_read_u8(&w) != 'U')
                return -EBADMSG;
        format = wire_read_u8(&w);
        if (format == CLUSTER_RECORDS_FORMAT) {
                if (size < 3 + SIG_SIZE)
                        return -EBADMSG;
                w = wire_init_const(data, size - SIG_SIZE);
                wire_skip(&w, 3);
        } else if (format != CLUSTER_RECORDS_FORMAT_V1)
                return -EBADMSG;
        if (read_entry(&w, format, arena, it) < 0 || !wire_at_end(&w))
                return -EBADMSG;
        return format;
}

static void item_to_entry(const GByteArray *arena, const Item *it, ClusterEntry *ret) {
        *ret = (ClusterEntry) {
                .name = arena_str(arena, it->name),
                .type = it->type,
                .value = arena_str(arena, it->value),
                .source = arena_str(arena, it->source),
                .ttl = it->ttl,
                .version = it->version,
                .deleted = it->deleted,
        };
}

int cluster_update_decode(const uint8_t *data, size_t size, const char *origin, const uint8_t *key, ClusterEntry *ret,
                          char *name, char *value, char *source, uint8_t *ret_format) {
        g_autoptr(GByteArray) arena = g_byte_array_new();
        ClusterEntry e;
        Item it;
        int format;

        format = update_decode(data, size, arena, &it);
        if (format < 0)
                return format;
        if (format == CLUSTER_RECORDS_FORMAT && key && !signature_ok(key, CTX_UPDATE, origin, data, size))
                return -EKEYREJECTED;
        item_to_entry(arena, &it, &e);
        /* The decoder bounded each string; the sizes are the documented ones. */
        g_strlcpy(name, strempty(e.name), 256);
        g_strlcpy(value, strempty(e.value), CLUSTER_VALUE_MAX + 1);
        g_strlcpy(source, strempty(e.source), CLUSTER_SOURCE_MAX + 1);
        *ret = e;
        ret->name = name;
        ret->value = value;
        ret->source = e.source ? source : NULL;
        if (ret_format)
                *ret_format = (uint8_t) format;
        return 0;
}

/* --- mirroring into the store ------------------------------------------------- */

static void mirror_add(ClusterRecords *cr, Origin *o, const Entry *e) {
        /* While a table goes into the store in slices, what changes goes
         * in too (the slices add what they find, store_add() is idempotent). */
        if (o->served)
                (void) store_add(cr->store, e->name, e->type, e->value, e->ttl, o->owner, 0, e->source, NULL);
}

static void mirror_remove(ClusterRecords *cr, Origin *o, const Entry *e) {
        if (o->served)
                (void) store_remove(cr->store, e->name, e->type, e->value, o->owner);
}

/* Starts putting a large origin's records into the store (serve) or taking
 * them out, in slices; a task already running for it is dropped (the new
 * one ends where the origin's state says). */
static void mirror_start(ClusterRecords *cr, Origin *o, bool serve) {
        Mirror *m = g_new0(Mirror, 1);
        GHashTableIter it;
        gpointer k;

        if (o->mirror)
                o->mirror->origin[0] = 0; /* superseded: skipped when its turn comes */
        m->origin = g_strdup(o->id);
        m->serve = serve;
        m->keys = g_ptr_array_new_full(g_hash_table_size(o->entries), (GDestroyNotify) g_bytes_unref);
        g_hash_table_iter_init(&it, o->entries);
        while (g_hash_table_iter_next(&it, &k, NULL))
                g_ptr_array_add(m->keys, g_bytes_ref(k));
        if (serve)
                /* Whatever is left of a withdrawal cut short goes at the end,
                 * unless the table still has it. */
                store_mark_owner(cr->store, o->owner);
        o->mirror = m;
        g_queue_push_tail(&cr->mirrors, m);
}

static void origin_withdraw(ClusterRecords *cr, Origin *o, uint64_t now) {
        o->withdraw_at = 0;
        if (!o->served)
                return;
        o->served = false;
        o->down_since = MAX(now, 1u);
        if (g_hash_table_size(o->entries) < MIRROR_SLICE_MIN) {
                if (o->mirror)
                        o->mirror->origin[0] = 0;
                o->mirror = NULL;
                (void) store_remove_owner(cr->store, o->owner);
        } else
                mirror_start(cr, o, false);
}

/* At once, whatever the size: the node leaves the cluster, or an operator
 * forgets an origin. */
static void origin_withdraw_now(ClusterRecords *cr, Origin *o, uint64_t now) {
        if (o->mirror)
                o->mirror->origin[0] = 0;
        o->mirror = NULL;
        o->withdraw_at = 0;
        o->served = false;
        o->down_since = MAX(now, 1u);
        (void) store_remove_owner(cr->store, o->owner);
}

static void origin_restore(ClusterRecords *cr, Origin *o) {
        GHashTableIter it;
        gpointer v;

        o->withdraw_at = 0;
        o->down_since = 0;
        if (o->served)
                return;
        o->served = true;
        if (g_hash_table_size(o->entries) >= MIRROR_SLICE_MIN) {
                mirror_start(cr, o, true);
                return;
        }
        if (o->mirror) {
                /* A withdrawal of a table that has since shrunk: finish it here. */
                o->mirror->origin[0] = 0;
                o->mirror = NULL;
                store_mark_owner(cr->store, o->owner);
                g_hash_table_iter_init(&it, o->entries);
                while (g_hash_table_iter_next(&it, NULL, &v)) {
                        Entry *e = v;
                        if (!e->deleted)
                                mirror_add(cr, o, e);
                }
                (void) store_sweep_owner(cr->store, o->owner);
                return;
        }
        g_hash_table_iter_init(&it, o->entries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (!e->deleted)
                        mirror_add(cr, o, e);
        }
}

/* One slice of the mirror tasks. Returns the budget left. */
static unsigned mirror_step(ClusterRecords *cr, unsigned budget) {
        while (budget > 0 && !g_queue_is_empty(&cr->mirrors)) {
                Mirror *m = g_queue_peek_head(&cr->mirrors);
                Origin *o = m->origin[0] ? g_hash_table_lookup(cr->origins, m->origin) : NULL;

                if (!o || o->mirror != m) {
                        mirror_free(g_queue_pop_head(&cr->mirrors)); /* superseded or forgotten */
                        continue;
                }
                for (; budget > 0 && m->next < m->keys->len; budget--, m->next++) {
                        Entry *e = g_hash_table_lookup(o->entries, m->keys->pdata[m->next]);
                        if (!e || e->deleted)
                                continue;
                        if (m->serve)
                                (void) store_add(cr->store, e->name, e->type, e->value, e->ttl, o->owner, 0, e->source,
                                                 NULL);
                        else
                                (void) store_remove(cr->store, e->name, e->type, e->value, o->owner);
                }
                if (m->next < m->keys->len)
                        break;
                /* What changed meanwhile: a withdrawal takes the rest of the
                 * owner out; a restoration drops what it did not put back. */
                if (m->serve)
                        (void) store_sweep_owner(cr->store, o->owner);
                else
                        (void) store_remove_owner(cr->store, o->owner);
                o->mirror = NULL;
                mirror_free(g_queue_pop_head(&cr->mirrors));
        }
        return budget;
}

/* --- the remote side ----------------------------------------------------------- */

static void entry_set(Entry *e, const GByteArray *arena, const Item *it, uint64_t now) {
        g_free(e->name);
        g_free(e->value);
        g_free(e->source);
        e->name = g_strdup(arena_str(arena, it->name));
        e->value = g_strdup(arena_str(arena, it->value));
        e->source = g_strdup(arena_str(arena, it->source));
        e->type = it->type;
        e->ttl = it->deleted ? 0 : it->ttl;
        e->version = it->version;
        e->deleted = it->deleted;
        e->deleted_usec = it->deleted ? now : 0;
}

/* Whether an origin has room for one more entry (a new key, or a
 * tombstone that comes back to life). The limit is on records. A snapshot
 * lists everything its origin holds, and what it does not list (old records,
 * tombstones) goes at its end, its floor then keeping out what they kept
 * out: there only what it listed so far counts. An update may also bring a
 * tombstone: an origin that replaced all of its records holds one for each
 * old record beside each new one, so the table holds twice the limit at
 * most, tombstones included (more churn than that before the tombstones
 * expire is caught up by the next snapshot; a large change is sent as one
 * anyway). */
static bool origin_has_room(const ClusterRecords *cr, const Origin *o, const Item *it, const ClusterSnapshot *snap) {
        size_t max = cr->max_records;

        if (snap)
                return snap->marked < max;
        return o->live + o->tombstones < 2 * max && (it->deleted || o->live < max);
}

/* Applies a checked entry with the newer-wins rule. mark: the merge that
 * lists it (0 for an update). Returns 1 if it changed the table, 0 if not,
 * -ENOSPC if the origin holds as many records as it may. */
static int apply_item(ClusterRecords *cr, Origin *o, const GByteArray *arena, const Item *it, uint32_t mark,
                      ClusterSnapshot *snap, uint64_t now) {
        g_autoptr(GBytes) key = g_bytes_new(arena->data + it->key, it->key_len);
        Entry *old = g_hash_table_lookup(o->entries, key);
        bool room = old ? !old->deleted || it->deleted || mark != 0 || o->live < cr->max_records
                        : origin_has_room(cr, o, it, mark != 0 ? snap : NULL);

        if (old && mark != 0) {
                if (old->mark != mark) {
                        snap->marked++;
                        snap->max_listed = MAX(snap->max_listed, MAX(old->version, it->version));
                }
                old->mark = mark;
        } else if (!old && mark != 0 && it->version > o->floor && room) {
                snap->marked++; /* a new entry, listed */
                snap->max_listed = MAX(snap->max_listed, it->version);
        }
        if (old ? it->version <= old->version : it->version <= o->floor)
                return 0;
        if (!room)
                return -ENOSPC; /* the caller counts it, or holds it back */
        o->max_seen = MAX(o->max_seen, it->version);
        if (!old) {
                /* A tombstone for a key we never had is kept too, so that an
                 * older add still in flight cannot bring the record back. */
                Entry *e = g_new0(Entry, 1);
                e->key = g_bytes_ref(key);
                e->mark = mark;
                entry_set(e, arena, it, now);
                g_hash_table_replace(o->entries, e->key, e);
                if (e->deleted)
                        o->tombstones++;
                else {
                        o->live++;
                        mirror_add(cr, o, e);
                }
                return 1;
        }

        /* Replacing what we hold: take the old one out of the store first
         * (a different spelling of the same value is the same record). A new
         * TTL or source is updated in place by store_add(). */
        if (!old->deleted) {
                if (it->deleted || !streq(old->value, arena_str(arena, it->value)) ||
                    !streq(old->name, arena_str(arena, it->name)))
                        mirror_remove(cr, o, old);
                o->live--;
        } else
                o->tombstones--;
        entry_set(old, arena, it, now);
        if (old->deleted)
                o->tombstones++;
        else {
                o->live++;
                mirror_add(cr, o, old);
        }
        return 1;
}

/* A version of ours we never issued. What is at stake: an older node (or
 * one without our key yet) may have taken it from a relay. We move past it:
 * a new epoch above it for everything we hold (the caller sends our snapshot
 * to everyone), the key it named sent again, or retracted if it is not ours. */
static int refute(ClusterRecords *cr, const GByteArray *arena, const Item *it, bool signed_by_us, uint64_t now) {
        uint32_t ours = cluster_version_epoch(cr->version), theirs = cluster_version_epoch(it->version);
        g_autoptr(GBytes) key = g_bytes_new(arena->data + it->key, it->key_len);
        GHashTableIter iter;
        gpointer v;

        if (!signed_by_us) {
                /* Nobody takes an unsigned version more than an epoch ahead
                 * of ours from a relay: we need not (and must not let anyone
                 * push us to the end of the range) go further. */
                if (theirs > ours + 1u)
                        theirs = ours + 1u;
                if (cr->last_unsigned_refute != 0 && now < cr->last_unsigned_refute + REFUTE_UNSIGNED_INTERVAL_USEC)
                        return 0;
                cr->last_unsigned_refute = MAX(now, 1u);
        }
        if (MAX(ours, theirs) == UINT32_MAX)
                return 0;
        cr->version = CLUSTER_VERSION(MAX(ours, theirs) + 1, 0);
        cr->counters.refutations++;
        g_hash_table_iter_init(&iter, cr->local);
        while (g_hash_table_iter_next(&iter, NULL, &v)) {
                Entry *e = v;
                e->version = ++cr->version;
                local_encode(e);
        }
        if (g_hash_table_contains(cr->local, key))
                g_hash_table_add(cr->reissue, g_bytes_ref(key));
        else
                g_ptr_array_add(cr->retract,
                                dirty_new(arena_str(arena, it->name), it->type, arena_str(arena, it->value)));
        return CLUSTER_APPLY_REFUTED;
}

/* What becomes of an origin's held-back additions: those its snapshot
 * covered go (it listed what it still has, and what found no room was
 * counted then); the others are applied, oldest first, while there is room;
 * one that finds none when its time is up counts as dropped. */
static void held_settle(ClusterRecords *cr, Origin *o, uint64_t now) {
        while (!g_queue_is_empty(&o->held)) {
                Held *h = g_queue_peek_head(&o->held);

                if (h->it.version > o->floor && apply_item(cr, o, h->arena, &h->it, 0, NULL, now) == -ENOSPC) {
                        if (now < h->expires)
                                return; /* still no room: it waits on */
                        cr->counters.dropped_records++;
                }
                held_drop(o);
        }
}

int cluster_records_apply_update(ClusterRecords *cr, const char *origin, bool direct, const uint8_t *data, size_t size,
                                 uint64_t now_usec) {
        g_autoptr(GByteArray) arena = g_byte_array_new();
        const uint8_t *key;
        Origin *o;
        Item it;
        int format, r;

        if (!swim_id_is_valid(origin))
                return -EINVAL;
        format = update_decode(data, size, arena, &it);
        if (format < 0)
                return format;

        if (streq(origin, cr->self_id)) {
                bool ours = format == CLUSTER_RECORDS_FORMAT &&
                            signature_ok(cluster_keys_public(cr->keys), CTX_UPDATE, origin, data, size);
                if (format == CLUSTER_RECORDS_FORMAT && !ours)
                        return -EKEYREJECTED; /* a forgery nobody who knows our key believes */
                if (it.version <= cr->version)
                        return 0; /* ours, relayed back (or older) */
                if (!ours && !cr->refute_unsigned)
                        return -EPERM; /* nobody here believes an unsigned one */
                return refute(cr, arena, &it, ours, now_usec);
        }

        key = cluster_keys_lookup(cr->keys, origin);
        if (format == CLUSTER_RECORDS_FORMAT) {
                if (!key || !signature_ok(key, CTX_UPDATE, origin, data, size))
                        return -EKEYREJECTED;
        } else if (key || !cr->accept_unsigned || !direct)
                return -EPERM;

        o = origin_get(cr, origin, false);
        if (!direct && (!o || !within_step(o->max_seen, it.version)))
                return -ERANGE;
        if (!o) {
                o = origin_get(cr, origin, true);
                if (!o)
                        return -ENOSPC;
        }
        r = apply_item(cr, o, arena, &it, 0, NULL, now_usec);
        if (r == -ENOSPC) {
                if (it.deleted || cr->n_held >= HELD_MAX) {
                        cr->counters.dropped_records++;
                        return -ENOSPC;
                }
                Held *h = g_new(Held, 1);
                h->arena = g_steal_pointer(&arena);
                h->it = it;
                h->expires = now_usec + HELD_USEC;
                g_queue_push_tail(&o->held, h);
                cr->n_held++;
                return CLUSTER_APPLY_HELD;
        }
        if (r > 0 && it.deleted)
                held_settle(cr, o, now_usec); /* room, maybe */
        return r;
}

/* --- snapshots ----------------------------------------------------------------- */

ClusterSnapshot *cluster_snapshot_free(ClusterSnapshot *snap) {
        if (!snap)
                return NULL;
        g_free(snap->origin);
        g_array_free(snap->items, TRUE);
        g_byte_array_free(snap->arena, TRUE);
        if (snap->sweep)
                g_ptr_array_free(snap->sweep, TRUE);
        g_free(snap);
        return NULL;
}

size_t cluster_snapshot_count(const ClusterSnapshot *snap) {
        return snap->items->len;
}

const char *cluster_snapshot_origin(const ClusterSnapshot *snap) {
        return snap->origin;
}

int cluster_snapshot_decode(const uint8_t *data, size_t size, const char *origin, const uint8_t *key,
                            bool allow_unsigned, ClusterSnapshot **ret) {
        _cleanup_(cluster_snapshot_freep) ClusterSnapshot *snap = NULL;
        Wire w = wire_init_const(data, size);
        uint32_t count;
        uint8_t format;
        size_t min;

        if (!swim_id_is_valid(origin))
                return -EINVAL;
        if (wire_read_u8(&w) != 'J' || wire_read_u8(&w) != 'T')
                return -EBADMSG;
        format = wire_read_u8(&w);
        if (format == CLUSTER_RECORDS_FORMAT) {
                if (size < 3 + 12 + SIG_SIZE)
                        return -EBADMSG;
                /* The signature first: a forgery costs us a hash, not a parse. */
                if (!key || !signature_ok(key, CTX_SNAPSHOT, origin, data, size))
                        return -EKEYREJECTED;
                w = wire_init_const(data, size - SIG_SIZE);
                wire_skip(&w, 3);
                min = ENTRY_MIN_V2;
        } else if (format == CLUSTER_RECORDS_FORMAT_V1) {
                if (!allow_unsigned)
                        return -EPERM;
                min = ENTRY_MIN_V1;
        } else
                return -EBADMSG;

        snap = g_new0(ClusterSnapshot, 1);
        snap->origin = g_strdup(origin);
        snap->format = format;
        snap->version = wire_read_u64(&w);
        count = wire_read_u32(&w);
        if (!wire_ok(&w) || snap->version == 0 || count > wire_available(&w) / min)
                return -EBADMSG;
        snap->items = g_array_sized_new(FALSE, FALSE, sizeof(Item), count);
        snap->arena = g_byte_array_sized_new((guint) MIN(wire_available(&w) + 16u * count, (size_t) G_MAXUINT / 2));
        for (uint32_t i = 0; i < count; i++) {
                Item it;
                if (read_entry(&w, format, snap->arena, &it) < 0 || it.version > snap->version)
                        return -EBADMSG;
                g_array_append_val(snap->items, it);
        }
        if (!wire_at_end(&w) || snap->arena->len >= NO_SOURCE)
                return -EBADMSG;
        *ret = TAKE_PTR(snap);
        return 0;
}

int cluster_records_merge_queue(ClusterRecords *cr, ClusterSnapshot *snap, uint64_t now_usec) {
        if (streq(snap->origin, cr->self_id)) {
                cluster_snapshot_free(snap);
                return 0;
        }
        if (!origin_get(cr, snap->origin, true)) {
                cluster_snapshot_free(snap);
                return -ENOSPC;
        }
        if (++cr->gen == 0)
                cr->gen = 1;
        snap->gen = cr->gen;
        g_queue_push_tail(&cr->merges, snap);
        return 0;
}

/* Whether a held entry goes when a snapshot at version v has been merged:
 * the snapshot did not list it though the origin would have had it at v, or
 * it is further ahead of v than the origin could have issued. */
static bool sweep_drops(const ClusterSnapshot *snap, const Entry *e) {
        if (e->version > snap->version)
                return !within_step(snap->version, e->version);
        return e->mark != snap->gen;
}

static void sweep_prepare(ClusterSnapshot *snap, Origin *o) {
        GHashTableIter it;
        gpointer v;

        snap->sweep = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        snap->max_kept = snap->version;
        g_hash_table_iter_init(&it, o->entries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (sweep_drops(snap, e))
                        g_ptr_array_add(snap->sweep, g_bytes_ref(e->key));
                else
                        snap->max_kept = MAX(snap->max_kept, e->version);
        }
}

bool cluster_records_merge_step(ClusterRecords *cr, unsigned budget, uint64_t now_usec, unsigned *ret_changes) {
        unsigned changes = 0;

        budget = mirror_step(cr, budget);

        while (budget > 0 && !g_queue_is_empty(&cr->merges)) {
                ClusterSnapshot *snap = g_queue_peek_head(&cr->merges);
                Origin *o = origin_get(cr, snap->origin, true);

                if (!o) {
                        cluster_snapshot_free(g_queue_pop_head(&cr->merges));
                        continue;
                }
                for (; budget > 0 && snap->next < snap->items->len; budget--, snap->next++) {
                        int r = apply_item(cr, o, snap->arena, &g_array_index(snap->items, Item, snap->next), snap->gen,
                                           snap, now_usec);
                        if (r > 0)
                                changes++;
                        else if (r == -ENOSPC)
                                cr->counters.dropped_records++;
                }
                if (snap->next < snap->items->len)
                        break;
                if (!snap->sweep) {
                        if (g_hash_table_size(o->entries) == snap->marked) {
                                /* It listed every entry held: nothing to sweep,
                                 * and no pass over a large table. */
                                snap->sweep = g_ptr_array_new();
                                snap->max_kept = MAX(snap->version, snap->max_listed);
                        } else
                                sweep_prepare(snap, o);
                }
                for (; budget > 0 && snap->sweep_next < snap->sweep->len; budget--, snap->sweep_next++) {
                        Entry *e = g_hash_table_lookup(o->entries, snap->sweep->pdata[snap->sweep_next]);
                        if (!e || !sweep_drops(snap, e))
                                continue; /* changed since: newer news stays */
                        if (e->deleted)
                                o->tombstones--;
                        else {
                                mirror_remove(cr, o, e);
                                o->live--;
                                changes++;
                        }
                        g_hash_table_remove(o->entries, e->key);
                }
                if (snap->sweep_next < snap->sweep->len)
                        break;
                o->floor = MAX(o->floor, snap->version);
                /* The origin's own word settles what was taken from relays,
                 * and what was held back (it listed what it still has). */
                o->max_seen = snap->max_kept;
                held_settle(cr, o, now_usec);
                cluster_snapshot_free(g_queue_pop_head(&cr->merges));
        }
        if (ret_changes)
                *ret_changes += changes;
        return !g_queue_is_empty(&cr->merges) || !g_queue_is_empty(&cr->mirrors);
}

bool cluster_records_pending(const ClusterRecords *cr) {
        return cr->merges.length > 0 || cr->mirrors.length > 0;
}

int cluster_records_merge_snapshot(ClusterRecords *cr, const char *origin, const uint8_t *data, size_t size,
                                   uint64_t now_usec) {
        ClusterSnapshot *snap = NULL;
        unsigned changes = 0;
        int r;

        r = cluster_snapshot_decode(data, size, origin,
                                    streq(origin, cr->self_id) ? cluster_keys_public(cr->keys)
                                                               : cluster_keys_lookup(cr->keys, origin),
                                    cr->accept_unsigned && !cluster_keys_lookup(cr->keys, origin), &snap);
        if (r < 0)
                return r;
        r = cluster_records_merge_queue(cr, snap, now_usec);
        if (r < 0)
                return r;
        while (cluster_records_merge_step(cr, UINT_MAX, now_usec, &changes))
                ;
        return (int) MIN(changes, (unsigned) INT_MAX);
}

/* --- membership ------------------------------------------------------------------ */

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

bool cluster_records_forget(ClusterRecords *cr, const char *origin) {
        Origin *o = g_hash_table_lookup(cr->origins, origin);

        /* Queued snapshots of it go too: they were checked with the key now forgotten. */
        for (GList *l = cr->merges.head, *next; l; l = next) {
                ClusterSnapshot *snap = l->data;
                next = l->next;
                if (streq(snap->origin, origin) && l != cr->merges.head) {
                        g_queue_delete_link(&cr->merges, l);
                        cluster_snapshot_free(snap);
                }
        }
        if (!g_queue_is_empty(&cr->merges) &&
            streq(((ClusterSnapshot *) g_queue_peek_head(&cr->merges))->origin, origin))
                cluster_snapshot_free(g_queue_pop_head(&cr->merges));
        if (!o)
                return false;
        origin_withdraw_now(cr, o, 1);
        g_hash_table_remove(cr->origins, origin);
        return true;
}

void cluster_records_withdraw_all(ClusterRecords *cr) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, cr->origins);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Origin *o = v;
                if (o->served || o->mirror)
                        origin_withdraw_now(cr, o, 1);
        }
}

static bool origin_merging(const ClusterRecords *cr, const Origin *o) {
        for (GList *l = cr->merges.head; l; l = l->next)
                if (streq(((ClusterSnapshot *) l->data)->origin, o->id))
                        return true;
        return false;
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
                if (!g_queue_is_empty(&o->held)) {
                        held_settle(cr, o, now_usec);
                        if (!g_queue_is_empty(&o->held))
                                next = MIN(next, ((const Held *) g_queue_peek_head(&o->held))->expires);
                }
                if (!sweep || origin_merging(cr, o))
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

        if (!key)
                return;
        if (g_hash_table_contains(cr->dirty, key)) {
                g_bytes_unref(key);
                return;
        }
        g_hash_table_insert(cr->dirty, key, dirty_new(name, type, value));
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

/* Where a local record comes from, as peers show it: the owner and its
 * detail, without the line (a line that moves is not a change worth
 * gossiping), control bytes replaced, at most CLUSTER_SOURCE_MAX bytes cut
 * at a character boundary. */
static char *local_source(const Record *r) {
        GString *s = g_string_new(r->owner);

        if (r->detail)
                g_string_append_printf(s, " (%s)", r->detail);
        for (gsize i = 0; i < s->len; i++)
                if ((uint8_t) s->str[i] < 0x20 || s->str[i] == 0x7f)
                        s->str[i] = '?';
        if (s->len > CLUSTER_SOURCE_MAX) {
                const char *end = s->str + CLUSTER_SOURCE_MAX - 3;
                if (g_utf8_validate(s->str, (gssize) s->len, NULL))
                        end = g_utf8_find_prev_char(s->str, end + 1) ?: s->str;
                g_string_truncate(s, (gsize) (end - s->str));
                g_string_append(s, "\xe2\x80\xa6"); /* an ellipsis */
        }
        return g_string_free(s, FALSE);
}

typedef struct Lookup {
        GBytes *key;
        uint16_t type;
        bool found;
        uint32_t ttl;
        const char *value;
        char *source; /* the smallest of the owners' sources: stable */
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
        g_autofree char *source = local_source(r);
        if (!l->source || strcmp(source, l->source) < 0) {
                g_free(l->source);
                l->source = TAKE_PTR(source);
        }
        return 0;
}

/* --- local updates, signed apart ------------------------------------------------ */

/* One update: the entry (strings and key in the batch's arena, as a decoded
 * one) and, once signed, where its bytes are in out and its broadcast key. */
typedef struct Update {
        Item item;
        uint32_t out, out_len; /* out_len 0: does not fit in an update */
        char key[65];          /* SHA-256 of the entry's key, in hex */
} Update;

struct ClusterUpdates {
        char *origin;
        GArray *items; /* Update */
        GByteArray *arena;
        GByteArray *out; /* the signed updates, one after the other */
        bool signed_;
};

ClusterUpdates *cluster_updates_new(const char *origin) {
        ClusterUpdates *u = g_new0(ClusterUpdates, 1);

        u->origin = g_strdup(origin);
        u->items = g_array_new(FALSE, TRUE, sizeof(Update));
        u->arena = g_byte_array_new();
        u->out = g_byte_array_new();
        return u;
}

ClusterUpdates *cluster_updates_free(ClusterUpdates *u) {
        if (!u)
                return NULL;
        g_array_unref(u->items);
        g_byte_array_unref(u->arena);
        g_byte_array_unref(u->out);
        g_free(u->origin);
        g_free(u);
        return NULL;
}

size_t cluster_updates_count(const ClusterUpdates *u) {
        return u->items->len;
}

/* Copies e (as it is now) into the batch. */
static void updates_add(ClusterUpdates *u, const Entry *e) {
        gsize key_len;
        const void *key = g_bytes_get_data(e->key, &key_len);
        Update up = {
                .item = {
                        .name = arena_add(u->arena, e->name, strlen(e->name), true),
                        .value = arena_add(u->arena, e->value, strlen(e->value), true),
                        .source = e->source ? arena_add(u->arena, e->source, strlen(e->source), true) : NO_SOURCE,
                        .key = arena_add(u->arena, key, key_len, false),
                        .key_len = (uint32_t) key_len,
                        .type = e->type,
                        .ttl = e->ttl,
                        .version = e->version,
                        .deleted = e->deleted,
                },
        };

        g_array_append_val(u->items, up);
}

void cluster_updates_sign(ClusterUpdates *u, const ClusterKeys *keys) {
        uint8_t buf[2 * CLUSTER_VALUE_MAX];

        for (guint i = 0; i < u->items->len; i++) {
                Update *up = &g_array_index(u->items, Update, i);
                ClusterEntry ce;

                item_to_entry(u->arena, &up->item, &ce);
                size_t n = cluster_update_encode(&ce, u->origin, keys, buf, sizeof buf);
                up->out = u->out->len;
                up->out_len = (uint32_t) n;
                if (n > 0)
                        g_byte_array_append(u->out, buf, (guint) n);
                /* The broadcast key: stable per record, so a newer update
                 * replaces an older one still queued. */
                g_autofree char *key =
                        g_compute_checksum_for_data(G_CHECKSUM_SHA256, u->arena->data + up->item.key, up->item.key_len);
                g_strlcpy(up->key, key, sizeof up->key);
        }
        u->signed_ = true;
}

void cluster_updates_emit(const ClusterUpdates *u, ClusterEmitFunc emit, void *userdata) {
        if (!u->signed_)
                return;
        for (guint i = 0; i < u->items->len; i++) {
                const Update *up = &g_array_index(u->items, Update, i);
                if (up->out_len > 0)
                        emit(up->key, u->out->data + up->out, up->out_len, userdata);
        }
}

/* Re-reads one marked key. Returns whether it changed (and was added to
 * out, unless quiet). */
static bool flush_one(ClusterRecords *cr, GBytes *k, const Dirty *d, bool quiet, ClusterUpdates *out) {
        Lookup l = { .key = k, .type = d->type };
        Entry *e = g_hash_table_lookup(cr->local, k);

        (void) store_foreach(cr->store, d->name, NULL, lookup_one, &l);
        if (l.found) {
                if (e && e->ttl == l.ttl && streq(e->value, l.value) && streq_ptr(e->source, l.source)) {
                        g_free(l.source);
                        return false;
                }
                if (!e) {
                        e = g_new0(Entry, 1);
                        e->key = g_bytes_ref(k);
                        e->name = g_strdup(d->name);
                        e->type = d->type;
                        g_hash_table_replace(cr->local, e->key, e);
                }
                g_free(e->value);
                g_free(e->source);
                e->value = g_strdup(l.value);
                e->source = l.source;
                e->ttl = l.ttl;
                e->version = ++cr->version;
                local_encode(e);
                if (!quiet)
                        updates_add(out, e);
                return true;
        }
        if (!e)
                return false;
        /* Gone: announce a tombstone; we need not keep one ourselves, since
         * our next snapshot's version covers it. */
        e->deleted = true;
        e->version = ++cr->version;
        if (!quiet)
                updates_add(out, e);
        g_hash_table_remove(cr->local, k);
        return true;
}

unsigned cluster_records_local_flush_some(ClusterRecords *cr, unsigned budget, uint64_t now_usec, ClusterUpdates *out,
                                          bool *ret_more) {
        GHashTableIter it;
        gpointer k, v;
        unsigned n = 0;

        /* A burst (a hosts file of thousands of names, the first flush after
         * start) is not gossiped record by record: every node would relay it
         * all. Its records get their versions, and push-pull carries them.
         * Bursts are counted over a window, not per flush: a large reload
         * reaches the store in batches, each flushed on its own. A burst
         * ends a window after its last change (or after ten, if changes go
         * on), and then the caller sends the snapshot. */
        if (cr->quiet && now_usec >= cr->quiet_until) {
                cr->quiet = false;
                cr->resync = true;
        }
        if (!cr->quiet) {
                if (now_usec >= cr->window_start + CLUSTER_GOSSIP_BURST_USEC) {
                        cr->window_start = now_usec;
                        cr->window_changes = 0;
                }
                if (cr->window_changes + g_hash_table_size(cr->dirty) > CLUSTER_GOSSIP_BURST_MAX) {
                        cr->quiet = true;
                        cr->quiet_since = now_usec;
                        cr->quiet_until = now_usec + CLUSTER_GOSSIP_BURST_USEC;
                }
        }
        g_hash_table_iter_init(&it, cr->dirty);
        while (budget > 0 && g_hash_table_iter_next(&it, &k, &v)) {
                if (flush_one(cr, k, v, cr->quiet, out)) {
                        n++;
                        if (cr->quiet)
                                cr->quiet_until = MIN(now_usec, cr->quiet_since + 9 * CLUSTER_GOSSIP_BURST_USEC) +
                                                  CLUSTER_GOSSIP_BURST_USEC;
                        else
                                cr->window_changes++;
                }
                g_hash_table_iter_remove(&it);
                budget--;
        }
        if (g_hash_table_size(cr->dirty) > 0) {
                if (ret_more)
                        *ret_more = true;
                return n;
        }

        /* After a refutation: the record it named again, at our new epoch... */
        g_hash_table_iter_init(&it, cr->reissue);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
                Entry *e = g_hash_table_lookup(cr->local, k);
                if (e) {
                        updates_add(out, e);
                        n++;
                }
        }
        g_hash_table_remove_all(cr->reissue);
        /* ...or its retraction, when it was never ours. */
        for (guint i = 0; i < cr->retract->len; i++) {
                Dirty *d = cr->retract->pdata[i];
                g_autoptr(GBytes) key = key_for(d->name, d->type, d->value);
                if (!key || g_hash_table_contains(cr->local, key))
                        continue;
                Entry t = {
                        .key = key,
                        .name = d->name,
                        .value = d->value,
                        .type = d->type,
                        .version = ++cr->version,
                        .deleted = true,
                };
                updates_add(out, &t);
                n++;
        }
        g_ptr_array_set_size(cr->retract, 0);
        if (ret_more)
                *ret_more = false;
        return n;
}

unsigned cluster_records_local_flush(ClusterRecords *cr, uint64_t now_usec, ClusterEmitFunc emit, void *userdata) {
        _cleanup_(cluster_updates_freep) ClusterUpdates *u = cluster_updates_new(cr->self_id);
        unsigned n = cluster_records_local_flush_some(cr, UINT_MAX, now_usec, u, NULL);

        cluster_updates_sign(u, cr->keys);
        if (emit)
                cluster_updates_emit(u, emit, userdata);
        return n;
}

uint64_t cluster_records_burst_end(const ClusterRecords *cr) {
        return cr->quiet ? cr->quiet_until : UINT64_MAX;
}

bool cluster_records_take_resync(ClusterRecords *cr) {
        bool r = cr->resync;
        cr->resync = false;
        return r;
}

uint64_t cluster_records_local_version(const ClusterRecords *cr) {
        return cr->version;
}

int cluster_records_local_parts(ClusterRecords *cr, uint64_t *ret_version, GPtrArray **ret_parts) {
        GHashTableIter it;
        gpointer v;

        /* Kept until the table changes: a large, steady table is collected
         * once, not at each push-pull. Every change moves the version. */
        if (!cr->parts || cr->parts_version != cr->version) {
                if (cr->parts)
                        g_ptr_array_unref(cr->parts);
                cr->parts = g_ptr_array_new_full(g_hash_table_size(cr->local), (GDestroyNotify) g_bytes_unref);
                g_hash_table_iter_init(&it, cr->local);
                while (g_hash_table_iter_next(&it, NULL, &v)) {
                        Entry *e = v;
                        if (e->wire)
                                g_ptr_array_add(cr->parts, g_bytes_ref(e->wire));
                }
                cr->parts_version = cr->version;
        }
        *ret_version = cr->version;
        *ret_parts = g_ptr_array_ref(cr->parts);
        return 0;
}

int cluster_snapshot_assemble(const ClusterKeys *keys, const char *origin, uint64_t version, const GPtrArray *parts,
                              uint8_t **ret, size_t *ret_size) {
        size_t cap = 15 + SIG_SIZE;
        Wire w;

        if (parts->len > UINT32_MAX)
                return -E2BIG;
        for (guint i = 0; i < parts->len; i++)
                cap += g_bytes_get_size(parts->pdata[i]);
        g_autofree uint8_t *buf = g_malloc(cap);
        w = wire_init(buf, cap);
        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'T');
        wire_write_u8(&w, CLUSTER_RECORDS_FORMAT);
        wire_write_u64(&w, version);
        wire_write_u32(&w, parts->len);
        for (guint i = 0; i < parts->len; i++) {
                gsize n;
                const void *p = g_bytes_get_data(parts->pdata[i], &n);
                wire_write(&w, p, n);
        }
        (void) wire_reserve(&w, SIG_SIZE);
        if (!wire_ok(&w))
                return w.error;
        sign_into(keys, CTX_SNAPSHOT, origin, buf, wire_offset(&w) - SIG_SIZE);
        *ret_size = wire_offset(&w);
        *ret = TAKE_PTR(buf);
        return 0;
}

int cluster_records_encode_local(ClusterRecords *cr, uint8_t format, uint8_t **ret, size_t *ret_size) {
        size_t cap = 15;
        uint32_t count = 0;
        GHashTableIter it;
        gpointer v;
        Wire w;

        if (format == CLUSTER_RECORDS_FORMAT) {
                g_autoptr(GPtrArray) parts = NULL;
                uint64_t version;
                (void) cluster_records_local_parts(cr, &version, &parts);
                return cluster_snapshot_assemble(cr->keys, cr->self_id, version, parts, ret, ret_size);
        }
        if (format != CLUSTER_RECORDS_FORMAT_V1)
                return -EINVAL;
        /* Format 1, for older nodes: small, rare, built here. */
        g_hash_table_iter_init(&it, cr->local);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                if (!entry_fits(e))
                        continue;
                cap += ENTRY_MIN_V1 + strlen(e->name) + strlen(e->value);
                count++;
        }
        g_autofree uint8_t *buf = g_malloc(cap);
        w = wire_init(buf, cap);
        wire_write_u8(&w, 'J');
        wire_write_u8(&w, 'T');
        wire_write_u8(&w, format);
        wire_write_u64(&w, cr->version);
        wire_write_u32(&w, count);
        g_hash_table_iter_init(&it, cr->local);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Entry *e = v;
                ClusterEntry ce = {
                        .name = e->name,
                        .type = e->type,
                        .value = e->value,
                        .ttl = e->ttl,
                        .version = e->version,
                };
                if (entry_fits(e))
                        write_entry(&w, format, &ce);
        }
        if (!wire_ok(&w))
                return w.error;
        *ret_size = wire_offset(&w);
        *ret = TAKE_PTR(buf);
        return 0;
}
