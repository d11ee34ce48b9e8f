/* SPDX-License-Identifier: MIT */
/* Unit tests for the record store: owners, union and dedup, removal by owner,
 * mark and sweep, versions and change events, derived PTRs (the address
 * index and reverse empty non-terminals), empty non-terminals. */

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "test-util.h"

typedef struct Events {
        unsigned added, removed;
        char last[256];
} Events;

static void on_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Events *e = userdata;
        if (change == RECORD_ADDED)
                e->added++;
        else
                e->removed++;
        snprintf(e->last, sizeof e->last, "%s %s %s %s %s", change == RECORD_ADDED ? "+" : "-", r->name,
                 dns_type_to_string(r->type), r->value, r->owner);
}

static unsigned rrset_size(const Store *s, const char *name, uint16_t type) {
        StoreRRSet set;
        return store_node_rrset(store_lookup(s, name), type, &set) ? set.n : 0;
}

/* The TTL of the first value of a name's rrset, 0 when there is none. */
static uint32_t first_ttl(const Store *s, const char *name, uint16_t type) {
        StoreRRSet set;
        const uint8_t *pos;
        StoreRR rr;

        if (!store_node_rrset(store_lookup(s, name), type, &set))
                return 0;
        pos = set.first;
        store_rr_read(&pos, &rr);
        return rr.ttl;
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The answer path's view of a name. */
static bool lookup_name(const Store *s, const char *name, StoreName *ret) {
        uint8_t wire[DNS_WIRE_NAME_MAX];
        int len = dns_name_to_wire(name, wire);

        CHECK(len > 0);
        return store_lookup_name(s, wire, (size_t) len, ret);
}

/* The derived PTRs of a reverse name, as "target/ttl" sorted and joined by
 * spaces; "" when there are none, "-" when the name does not exist. */
static const char *derived_ptrs(const Store *s, const char *name) {
        static char out[1024];
        StorePtrIter iter = {};
        const uint8_t *target;
        uint16_t len;
        uint32_t ttl;
        StoreName n;
        char *items[64];
        size_t o = 0, count = 0;

        out[0] = 0;
        if (!lookup_name(s, name, &n))
                return "-";
        while (store_name_next_ptr(&n, &iter, &target, &len, &ttl)) {
                char t[1024];
                CHECK(dns_wire_to_name(target, len, t, sizeof t) >= 0);
                if (count < ELEMENTSOF(items))
                        items[count] = g_strdup_printf("%s/%u", t, ttl);
                count++;
        }
        CHECK(count == store_name_n_ptr(&n));
        count = MIN(count, ELEMENTSOF(items));
        qsort(items, count, sizeof items[0], compare_strings);
        for (size_t i = 0; i < count; i++) {
                o += (size_t) snprintf(out + o, sizeof out - o, "%s%s", o ? " " : "", items[i]);
                g_free(items[i]);
        }
        return out;
}

static void test_add_union_dedup(void) {
        _cleanup_(store_freep) Store *s = NULL;
        Events ev = {};
        const char *why = NULL;

        CHECK(store_new(&s) == 0);
        store_subscribe(s, on_change, &ev);

        CHECK(store_add(s, "App.Example.COM.", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/a", 3, NULL, NULL) == 1);
        CHECK(ev.added == 1);
        CHECK(strcmp(ev.last, "+ app.example.com A 10.0.0.1 hosts:/h/a") == 0);
        CHECK(store_version(s) == 1);

        /* Same record again from the same owner: no change, line updated. */
        CHECK(store_add(s, "app.example.com", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/a", 9, NULL, NULL) == 0);
        CHECK(ev.added == 1 && store_version(s) == 1);
        CHECK(store_count(s) == 1);

        /* Same value from another owner: two records, one answer. */
        CHECK(store_add(s, "app.example.com", DNS_TYPE_A, "10.0.0.1", 10, "docker:abc", 0, "web", NULL) == 1);
        CHECK(store_count(s) == 2);
        CHECK(rrset_size(s, "app.example.com", DNS_TYPE_A) == 1);
        CHECK(first_ttl(s, "app.example.com", DNS_TYPE_A) == 10);

        /* A second value: union. */
        CHECK(store_add(s, "app.example.com", DNS_TYPE_A, "10.0.0.2", 30, "docker:abc", 0, "web", NULL) == 1);
        CHECK(rrset_size(s, "app.example.com", DNS_TYPE_A) == 2);

        /* Dropping the docker owner leaves the hosts record, with its own TTL again. */
        CHECK(store_remove_owner(s, "docker:abc") == 2);
        CHECK(store_count(s) == 1);
        CHECK(rrset_size(s, "app.example.com", DNS_TYPE_A) == 1);
        CHECK(first_ttl(s, "app.example.com", DNS_TYPE_A) == 30);
        CHECK(ev.removed == 2);
        CHECK(store_version(s) == 5);

        /* Bad input is refused with a reason, and changes nothing. */
        CHECK(store_add(s, "bad..name", DNS_TYPE_A, "10.0.0.1", 30, "api", 0, NULL, &why) == -EINVAL && why);
        CHECK(store_add(s, "ok.name", DNS_TYPE_A, "10.0.0.300", 30, "api", 0, NULL, &why) == -EINVAL);
        CHECK(why && strstr(why, "IPv4"));
        CHECK(store_add(s, "ok.name", DNS_TYPE_AAAA, "10.0.0.3", 30, "api", 0, NULL, NULL) == -EINVAL);
        CHECK(store_add(s, "ok.name", DNS_TYPE_MX, "10 mx.ok.name", 30, "api", 0, NULL, NULL) == -EOPNOTSUPP);
        CHECK(store_add(s, "ok.name", DNS_TYPE_A, "10.0.0.3", 604801, "api", 0, NULL, NULL) == -ERANGE);
        CHECK(store_add(s, "a*.name", DNS_TYPE_A, "10.0.0.3", 30, "api", 0, NULL, NULL) == -EINVAL);
        CHECK(store_add(s, "x.*.name", DNS_TYPE_A, "10.0.0.3", 30, "api", 0, NULL, NULL) == -EINVAL);
        CHECK(store_add(s, "under_score.name", DNS_TYPE_TXT, "v=spf1 -all", 30, "api", 0, NULL, NULL) == 1);
        CHECK(store_count(s) == 2);
        CHECK(store_version(s) == 6);
}

static void test_nodes_and_ptr(void) {
        _cleanup_(store_freep) Store *s = NULL;
        const StoreNode *n;

        CHECK(store_new(&s) == 0);
        CHECK(store_add(s, "a.b.example.com", DNS_TYPE_A, "192.0.2.7", 30, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "*.example.com", DNS_TYPE_A, "192.0.2.9", 30, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "v6.example.com", DNS_TYPE_AAAA, "2001:db8::0:1", 30, "api", 0, NULL, NULL) == 1);

        /* Empty non-terminals exist, without data. */
        n = store_lookup(s, "b.example.com");
        CHECK(n && !store_node_has_data(n) && n->n_children == 1);
        n = store_lookup(s, "example.com");
        CHECK(n && !store_node_has_data(n) && n->n_children == 3);
        CHECK(store_lookup(s, "com") != NULL);
        CHECK(store_lookup(s, "nope.example.com") == NULL);
        CHECK(store_lookup(s, "*.example.com") && store_node_has_data(store_lookup(s, "*.example.com")));

        /* PTR for addresses, not for wildcards; canonical AAAA value. The
         * reverse names are no nodes: the answer path finds them by address. */
        CHECK(streq(derived_ptrs(s, "7.2.0.192.in-addr.arpa"), "a.b.example.com/30"));
        CHECK(store_lookup(s, "7.2.0.192.in-addr.arpa") == NULL);
        CHECK(streq(derived_ptrs(s, "9.2.0.192.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
                    "v6.example.com/30"));
        CHECK(streq(derived_ptrs(s, "2.0.192.in-addr.arpa"), "")); /* reverse ENT */
        {
                const Record *r = store_lookup(s, "v6.example.com")->records;
                CHECK(r && strcmp(r->value, "2001:db8::1") == 0);
        }

        /* Removal prunes the nodes it made, and only those. */
        CHECK(store_remove(s, "a.b.example.com", 0, NULL, NULL) == 1);
        CHECK(store_lookup(s, "b.example.com") == NULL);
        CHECK(streq(derived_ptrs(s, "7.2.0.192.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "2.0.192.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "ip6.arpa"), ""));
        CHECK(store_lookup(s, "example.com")->n_children == 2);
        CHECK(store_remove(s, "*.example.com", DNS_TYPE_A, "192.0.2.9", "api") == 1);
        CHECK(store_remove(s, "v6.example.com", DNS_TYPE_AAAA, "2001:db8::1", "other") == 0);
        CHECK(store_remove(s, "v6.example.com", DNS_TYPE_AAAA, "2001:db8::1", "api") == 1);
        CHECK(store_lookup(s, "com") == NULL);
        CHECK(streq(derived_ptrs(s, "ip6.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "arpa"), "-"));
        CHECK(store_count(s) == 0);
}

/* The address index: which reverse names exist, what they answer, and that
 * it follows every change. */
static void test_reverse_index(void) {
        _cleanup_(store_freep) Store *s = NULL;
        StoreName n;

        CHECK(store_new(&s) == 0);
        CHECK(store_add(s, "a.test", DNS_TYPE_A, "10.9.8.7", 60, "hosts:/h", 1, NULL, NULL) == 1);

        /* Every octet prefix exists (NODATA), its siblings do not (NXDOMAIN). */
        CHECK(streq(derived_ptrs(s, "8.9.10.in-addr.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "9.10.in-addr.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "10.in-addr.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "in-addr.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "arpa"), ""));
        CHECK(streq(derived_ptrs(s, "9.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "11.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "6.8.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "ip6.arpa"), "-"));
        /* Only the form our PTRs have: no leading zeros, no fifth octet. */
        CHECK(streq(derived_ptrs(s, "07.8.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "1.7.8.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "x.8.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa.example"), "-"));
        CHECK(lookup_name(s, "7.8.9.10.in-addr.arpa", &n) && n.addr && !n.node);
        CHECK(store_name_has_ptr(&n));
        CHECK(!lookup_name(s, "a.test.in-addr.arpa", &n) && !n.addr);

        /* Several names on one address, one of them from two owners with
         * different TTLs: each name answers once, with its lowest TTL. */
        CHECK(store_add(s, "b.test", DNS_TYPE_A, "10.9.8.7", 30, "docker:x", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "a.test", DNS_TYPE_A, "10.9.8.7", 20, "docker:x", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "c.test", DNS_TYPE_A, "10.9.8.7", 40, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "*.w.test", DNS_TYPE_A, "10.9.8.7", 40, "api", 0, NULL, NULL) == 1);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "a.test/20 b.test/30 c.test/40"));

        /* A TTL change moves the derived TTL both ways. */
        CHECK(store_add(s, "a.test", DNS_TYPE_A, "10.9.8.7", 90, "docker:x", 0, NULL, NULL) == 0);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "a.test/60 b.test/30 c.test/40"));

        /* An explicit PTR: answered from the rrset; a target the address
         * gives too is left to it (so it answers once, store_name_ptr_ttl()
         * giving the lower TTL). */
        CHECK(store_add(s, "7.8.9.10.in-addr.arpa", DNS_TYPE_PTR, "Mail.Test.", 100, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "7.8.9.10.in-addr.arpa", DNS_TYPE_PTR, "b.test", 100, "api", 0, NULL, NULL) == 1);
        CHECK(lookup_name(s, "7.8.9.10.in-addr.arpa", &n) && n.node && n.addr);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "a.test/60 c.test/40"));
        {
                StoreRRSet set;
                const uint8_t *pos;

                CHECK(store_view_rrset(n.view, DNS_TYPE_PTR, &set) && set.n == 2);
                pos = set.first;
                for (uint32_t i = 0; i < set.n; i++) {
                        char t[1024];
                        StoreRR rr;

                        store_rr_read(&pos, &rr);
                        CHECK(dns_wire_to_name(rr.rdata, rr.rdlen, t, sizeof t) > 0);
                        if (streq(t, "b.test"))
                                CHECK(store_name_ptr_ttl(&n, &rr) == 30);
                        else
                                CHECK(streq(t, "mail.test") && store_name_ptr_ttl(&n, &rr) == 100);
                }
        }
        /* An explicit PTR alone makes its reverse name, as any record. */
        CHECK(store_add(s, "1.1.1.1.in-addr.arpa", DNS_TYPE_PTR, "one.test", 100, "api", 0, NULL, NULL) == 1);
        CHECK(lookup_name(s, "1.1.1.1.in-addr.arpa", &n) && n.node && !n.addr && store_name_has_ptr(&n));
        CHECK(lookup_name(s, "1.1.in-addr.arpa", &n) && n.node && !n.addr);

        /* Removals in every position of the address chain: the head (the
         * first added), the middle, the newest. */
        CHECK(store_remove(s, "a.test", DNS_TYPE_A, "10.9.8.7", "hosts:/h") == 1);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "a.test/90 c.test/40"));
        CHECK(store_remove(s, "c.test", 0, NULL, NULL) == 1);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "a.test/90"));
        CHECK(store_remove_owner(s, "docker:x") == 2);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "")); /* the explicit PTRs stay */
        CHECK(store_remove_owner(s, "api") == 4);
        CHECK(streq(derived_ptrs(s, "7.8.9.10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "10.in-addr.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "arpa"), "-"));
        CHECK(store_count(s) == 0);

        /* IPv6: every nibble prefix exists, and only lowercase single nibbles. */
        CHECK(store_add(s, "v6.test", DNS_TYPE_AAAA, "2001:db8::abc", 60, "api", 0, NULL, NULL) == 1);
        CHECK(streq(derived_ptrs(s, "c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
                    "v6.test/60"));
        CHECK(streq(derived_ptrs(s, "b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "2.ip6.arpa"), ""));
        CHECK(streq(derived_ptrs(s, "3.ip6.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "d.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.0.ip6.arpa"),
                    "-"));
        CHECK(streq(derived_ptrs(s, "cb.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"), "-"));
        CHECK(streq(derived_ptrs(s, "in-addr.arpa"), "-"));
        CHECK(store_remove(s, "v6.test", 0, NULL, NULL) == 1);
        CHECK(streq(derived_ptrs(s, "2.ip6.arpa"), "-"));
}

/* A shared address (a blocklist's 0.0.0.0) with many names: adding and
 * removing stay linear, and each name answers once. */
static void test_many_on_one_address(void) {
        _cleanup_(store_freep) Store *s = NULL;
        char name[64];
        StoreName n;

        CHECK(store_new(&s) == 0);
        for (unsigned i = 0; i < 20000; i++) {
                snprintf(name, sizeof name, "ad%u.block.test", i);
                CHECK(store_add(s, name, DNS_TYPE_A, "0.0.0.0", 30, "hosts:/b", i + 1, NULL, NULL) == 1);
        }
        CHECK(lookup_name(s, "0.0.0.0.in-addr.arpa", &n) && store_name_n_ptr(&n) == 20000);
        store_mark_owner(s, "hosts:/b");
        CHECK(store_sweep_owner(s, "hosts:/b") == 20000);
        CHECK(!lookup_name(s, "0.0.0.0.in-addr.arpa", &n));
}

/* More names on one address than one chunk holds: removals and TTL changes
 * anywhere in the chain, and each name still answers once. */
static void test_address_chunks(void) {
        _cleanup_(store_freep) Store *s = NULL;
        const uint8_t *target;
        StorePtrIter iter;
        char name[64];
        uint16_t len;
        uint32_t ttl;
        StoreName n;
        unsigned seen[100];

        CHECK(store_new(&s) == 0);
        for (unsigned i = 0; i < 100; i++) {
                snprintf(name, sizeof name, "c%u.chunk.test", i);
                CHECK(store_add(s, name, DNS_TYPE_A, "10.7.7.7", 30, "api", 0, NULL, NULL) == 1);
        }
        CHECK(lookup_name(s, "7.7.7.10.in-addr.arpa", &n) && store_name_n_ptr(&n) == 100);
        /* The oldest (last chunk), one in the middle, the newest; a new TTL
         * for one in an older chunk; a second owner with a lower TTL. */
        CHECK(store_remove(s, "c0.chunk.test", 0, NULL, NULL) == 1);
        CHECK(store_remove(s, "c50.chunk.test", 0, NULL, NULL) == 1);
        CHECK(store_remove(s, "c99.chunk.test", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "c10.chunk.test", DNS_TYPE_A, "10.7.7.7", 90, "api", 0, NULL, NULL) == 0);
        CHECK(store_add(s, "c20.chunk.test", DNS_TYPE_A, "10.7.7.7", 5, "docker:x", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "c98.chunk.test", DNS_TYPE_A, "10.7.7.8", 30, "api", 0, NULL, NULL) == 1);
        CHECK(lookup_name(s, "7.7.7.10.in-addr.arpa", &n) && store_name_n_ptr(&n) == 97);

        memset(seen, 0, sizeof seen);
        iter = (StorePtrIter) {};
        while (store_name_next_ptr(&n, &iter, &target, &len, &ttl)) {
                char t[1024];
                unsigned i;

                CHECK(dns_wire_to_name(target, len, t, sizeof t) > 0);
                CHECK(t[0] == 'c' && g_str_has_suffix(t, ".chunk.test"));
                i = (unsigned) strtoul(t + 1, NULL, 10);
                CHECK(i < 100);
                seen[i]++;
                CHECK(ttl == (i == 10 ? 90u : i == 20 ? 5u : 30u));
        }
        for (unsigned i = 0; i < 100; i++)
                CHECK(seen[i] == (i == 0 || i == 50 || i == 99 ? 0u : 1u));

        /* Dropping the lower TTL gives the name its own again. */
        CHECK(store_remove_owner(s, "docker:x") == 1);
        CHECK(lookup_name(s, "7.7.7.10.in-addr.arpa", &n));
        iter = (StorePtrIter) {};
        while (store_name_next_ptr(&n, &iter, &target, &len, &ttl))
                CHECK(ttl == 30 || ttl == 90);
        CHECK(store_remove_owner(s, "api") == 98);
        CHECK(!lookup_name(s, "7.7.7.10.in-addr.arpa", &n));
}

static void test_mark_sweep(void) {
        _cleanup_(store_freep) Store *s = NULL;
        Events ev = {};

        CHECK(store_new(&s) == 0);
        store_add(s, "one.test", DNS_TYPE_A, "10.1.0.1", 30, "hosts:/d/f", 1, NULL, NULL);
        store_add(s, "two.test", DNS_TYPE_A, "10.1.0.2", 30, "hosts:/d/f", 2, NULL, NULL);
        store_add(s, "three.test", DNS_TYPE_A, "10.1.0.3", 30, "hosts:/d/g", 1, NULL, NULL);
        store_subscribe(s, on_change, &ev);

        /* Reload of f: one.test stays (moved to line 5), two.test goes, four.test comes. */
        store_mark_owner(s, "hosts:/d/f");
        CHECK(store_add(s, "one.test", DNS_TYPE_A, "10.1.0.1", 30, "hosts:/d/f", 5, NULL, NULL) == 0);
        CHECK(store_add(s, "four.test", DNS_TYPE_A, "10.1.0.4", 30, "hosts:/d/f", 6, NULL, NULL) == 1);
        CHECK(store_sweep_owner(s, "hosts:/d/f") == 1);
        CHECK(ev.added == 1 && ev.removed == 1);
        CHECK(store_lookup(s, "two.test") == NULL);
        CHECK(store_lookup(s, "one.test")->records->line == 5);
        CHECK(store_lookup(s, "three.test") != NULL);
        CHECK(store_count_owner_prefix(s, "hosts:") == 3);
        CHECK(store_count_owner_prefix(s, "hosts:/d/g") == 1);

        /* A sweep with nothing re-added empties the owner. */
        store_mark_owner(s, "hosts:/d/f");
        CHECK(store_sweep_owner(s, "hosts:/d/f") == 2);
        CHECK(store_count(s) == 1);

        /* A TTL change is seen as remove + add. */
        ev = (Events) {};
        CHECK(store_add(s, "three.test", DNS_TYPE_A, "10.1.0.3", 60, "hosts:/d/g", 1, NULL, NULL) == 0);
        CHECK(ev.added == 1 && ev.removed == 1);
        CHECK(first_ttl(s, "three.test", DNS_TYPE_A) == 60);
}

static int count_cb(const Record *r, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_foreach_source(void) {
        _cleanup_(store_freep) Store *s = NULL;
        unsigned n = 0;

        CHECK(store_new(&s) == 0);
        store_add(s, "w.test", DNS_TYPE_A, "10.2.0.1", 30, "hosts:/d/f", 12, NULL, NULL);
        store_add(s, "w.test", DNS_TYPE_CNAME, "Target.Test.", 30, "docker:0123456789ab", 0, "web", NULL);
        store_add(s, "x.test", DNS_TYPE_TXT, "hello", 30, "dbus", 0, NULL, NULL);

        CHECK(store_foreach(s, NULL, NULL, count_cb, &n) == 0 && n == 3);
        n = 0;
        CHECK(store_foreach(s, "W.TEST.", NULL, count_cb, &n) == 0 && n == 2);
        n = 0;
        CHECK(store_foreach(s, NULL, "docker:", count_cb, &n) == 0 && n == 1);

        const StoreNode *node = store_lookup(s, "w.test");
        for (const Record *r = node->records; r; r = r->node_next) {
                _cleanup_free_ char *src = record_source(r);
                if (r->type == DNS_TYPE_A)
                        CHECK(strcmp(src, "hosts:/d/f:12") == 0);
                else {
                        CHECK(strcmp(src, "docker:0123456789ab (web)") == 0);
                        CHECK(strcmp(r->value, "target.test") == 0);
                }
        }
        CHECK(strcmp(store_lookup(s, "x.test")->records->value, "hello") == 0);
}

static void test_many(void) {
        _cleanup_(store_freep) Store *s = NULL;
        char name[64], addr[32];

        CHECK(store_new(&s) == 0);
        for (unsigned i = 0; i < 100000; i++) {
                snprintf(name, sizeof name, "host%u.bench.test", i);
                snprintf(addr, sizeof addr, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                CHECK(store_add(s, name, DNS_TYPE_A, addr, 30, "hosts:/b/f", i + 1, NULL, NULL) == 1);
        }
        CHECK(store_count(s) == 100000);
        CHECK(store_lookup(s, "bench.test")->n_children == 100000);
        CHECK(streq(derived_ptrs(s, "159.134.1.10.in-addr.arpa"), "host99999.bench.test/30"));
        CHECK(streq(derived_ptrs(s, "134.1.10.in-addr.arpa"), ""));
        CHECK(store_remove_owner(s, "hosts:/b/f") == 100000);
        CHECK(store_count(s) == 0);
        CHECK(store_lookup(s, "test") == NULL);
        CHECK(streq(derived_ptrs(s, "10.in-addr.arpa"), "-"));
}

/* With a flush hook, as the daemon runs it: the hook says when there is
 * something to flush, its owner calls store_flush() once a turn. An index
 * rebuild that the changes left under way is finished by the flushes alone,
 * a slice each: the hook was called for it, store_flush() says there is more
 * until it is done, and every name answers throughout. */
static void on_flush_wanted(Store *s, void *userdata) {
        (*(unsigned *) userdata)++;
}

static void test_flush_settles_rebuild(void) {
        _cleanup_(store_freep) Store *s = NULL;
        unsigned hook_calls = 0, flushes = 0, added = 0;
        char name[64], addr[32];
        bool more = false;

        CHECK(store_new(&s) == 0);
        store_set_flush_hook(s, on_flush_wanted, &hook_calls);
        /* Add names, flushing when the hook asked, until a flush reports a
         * rebuild under way (the indexes grow past 32,000 names). */
        while (!more) {
                unsigned before = hook_calls;

                snprintf(name, sizeof name, "n%u.settle.test", added);
                snprintf(addr, sizeof addr, "10.%u.%u.%u", (added >> 16) & 255, (added >> 8) & 255, added & 255);
                CHECK(store_add(s, name, DNS_TYPE_A, addr, 30, "hosts:/s/f", added + 1, NULL, NULL) == 1);
                added++;
                CHECK(added < 200000);
                if (hook_calls > before && added > 32000)
                        more = store_flush(s);
                else if (hook_calls > before)
                        (void) store_flush(s);
        }
        /* No more changes: the flushes finish it, and then say so. */
        while (more) {
                unsigned before = hook_calls;

                more = store_flush(s);
                flushes++;
                CHECK(flushes < 1000);
                CHECK(hook_calls == before);
                for (unsigned i = 0; i < added; i += 997) {
                        snprintf(name, sizeof name, "n%u.settle.test", i);
                        CHECK(rrset_size(s, name, DNS_TYPE_A) == 1);
                }
        }
        CHECK(!store_flush(s));
        printf("flush: a rebuild left under way at %u names finished in %u flushes\n", added, flushes);
        CHECK(store_count(s) == added);
        CHECK(store_remove_owner(s, "hosts:/s/f") == (int) added);
        store_set_flush_hook(s, NULL, NULL);
}

/* Subscribers that unsubscribe (themselves or another) or subscribe from a
 * callback: nobody is skipped or called twice, nobody is called after
 * leaving, and a newcomer hears from the next change on. */
typedef struct Listener {
        Store *store;
        unsigned calls;
        struct Listener *drop; /* unsubscribes this one on its first call */
        struct Listener *add;  /* subscribes this one on its first call */
} Listener;

static void on_listener(Store *s, RecordChange change, const Record *r, void *userdata) {
        Listener *l = userdata;

        if (l->calls++ > 0)
                return;
        if (l->drop)
                store_unsubscribe(l->store, on_listener, l->drop);
        if (l->add)
                store_subscribe(l->store, on_listener, l->add);
}

static void test_subscribers_change_while_notified(void) {
        _cleanup_(store_freep) Store *s = NULL;
        Listener a = {}, b = {}, c = {}, d = {}, e = {};

        CHECK(store_new(&s) == 0);
        a = (Listener) { .store = s, .drop = &a }; /* leaves from its callback */
        b = (Listener) { .store = s, .drop = &d }; /* removes one still to be called */
        c = (Listener) { .store = s, .add = &e };  /* brings a newcomer */
        d = (Listener) { .store = s };
        e = (Listener) { .store = s };
        store_subscribe(s, on_listener, &a);
        store_subscribe(s, on_listener, &b);
        store_subscribe(s, on_listener, &c);
        store_subscribe(s, on_listener, &d);

        CHECK(store_add(s, "x.test", DNS_TYPE_A, "10.7.0.1", 30, "api", 0, NULL, NULL) == 1);
        CHECK(a.calls == 1 && b.calls == 1 && c.calls == 1);
        CHECK(d.calls == 0); /* unsubscribed before its turn */
        CHECK(e.calls == 0); /* subscribed during this change */

        CHECK(store_add(s, "y.test", DNS_TYPE_A, "10.7.0.2", 30, "api", 0, NULL, NULL) == 1);
        CHECK(a.calls == 1 && b.calls == 2 && c.calls == 2 && d.calls == 0 && e.calls == 1);

        /* Unsubscribing outside a callback still works, and only once. */
        store_unsubscribe(s, on_listener, &b);
        store_unsubscribe(s, on_listener, &b);
        CHECK(store_remove(s, "x.test", 0, NULL, "api") == 1);
        CHECK(b.calls == 2 && c.calls == 3 && e.calls == 2);
}

/* Counting a source's records: by the part of the owner before its ':' (one
 * owner per etcd key), and by any longer prefix too. */
static void test_count_owner_prefix(void) {
        _cleanup_(store_freep) Store *s = NULL;
        char name[64], owner[64];

        CHECK(store_new(&s) == 0);
        for (unsigned i = 0; i < 1000; i++) {
                (void) snprintf(name, sizeof name, "k%u.etcd.test", i);
                (void) snprintf(owner, sizeof owner, "etcd:/skydns/test/etcd/k%u", i);
                CHECK(store_add(s, name, DNS_TYPE_A, "10.2.0.1", 30, owner, 0, NULL, NULL) == 1);
        }
        store_add(s, "a.test", DNS_TYPE_A, "10.1.0.1", 30, "hosts:/d/f", 1, NULL, NULL);
        store_add(s, "b.test", DNS_TYPE_A, "10.1.0.2", 30, "hosts:/d/g", 1, NULL, NULL);
        store_add(s, "c.test", DNS_TYPE_A, "10.1.0.3", 30, "dbus", 0, NULL, NULL);
        store_add(s, "d.test", DNS_TYPE_A, "10.1.0.4", 30, "dbusy", 0, NULL, NULL);
        store_add(s, "e.test", DNS_TYPE_A, "10.1.0.5", 30, "api", 0, NULL, NULL);

        CHECK(store_count_owner_prefix(s, "etcd:") == 1000);
        CHECK(store_count_owner_prefix(s, "etcd:/skydns/test/etcd/k99") == 11); /* k99, k990..k999 */
        CHECK(store_count_owner_prefix(s, "hosts:") == 2);
        CHECK(store_count_owner_prefix(s, "hosts:/d/g") == 1);
        CHECK(store_count_owner_prefix(s, "hos") == 2);
        CHECK(store_count_owner_prefix(s, "dbus") == 2); /* a prefix: "dbusy" too */
        CHECK(store_count_owner_prefix(s, "dbus:") == 0);
        CHECK(store_count_owner_prefix(s, "api") == 1);
        CHECK(store_count_owner_prefix(s, "peer:") == 0);
        CHECK(store_count_owner_prefix(s, "") == 1005);
        CHECK(store_count_owner_prefix(s, NULL) == 1005);

        /* Records and owners that go take their counts with them. */
        for (unsigned i = 0; i < 500; i++) {
                (void) snprintf(owner, sizeof owner, "etcd:/skydns/test/etcd/k%u", i);
                CHECK(store_remove_owner(s, owner) == 1);
        }
        CHECK(store_count_owner_prefix(s, "etcd:") == 500);
        CHECK(store_remove(s, "c.test", DNS_TYPE_A, "10.1.0.3", "dbus") == 1);
        CHECK(store_count_owner_prefix(s, "dbus") == 1);
        CHECK(store_add(s, "c.test", DNS_TYPE_A, "10.1.0.3", 30, "dbus", 0, NULL, NULL) == 1);
        CHECK(store_count_owner_prefix(s, "dbus") == 2);
        CHECK(store_count_owner_prefix(s, "") == 505);
}

/* store_collect: the records of one type (or all), sorted by
 * record_compare_ptr by name, type, value, then owner. */
static void test_collect_sorted(void) {
        _cleanup_(store_freep) Store *s = NULL;
        g_autoptr(GPtrArray) all = g_ptr_array_new(), a = g_ptr_array_new(), web = g_ptr_array_new();
        g_autoptr(GString) got = g_string_new(NULL);

        CHECK(store_new(&s) == 0);
        CHECK(store_add(s, "web.example.com", DNS_TYPE_A, "10.0.0.2", 30, "hosts:/h/b", 1, NULL, NULL) == 1);
        CHECK(store_add(s, "web.example.com", DNS_TYPE_AAAA, "fd00::1", 30, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "web.example.com", DNS_TYPE_A, "10.0.0.1", 30, "hosts:/h/b", 2, NULL, NULL) == 1);
        CHECK(store_add(s, "web.example.com", DNS_TYPE_A, "10.0.0.1", 30, "api", 0, NULL, NULL) == 1);
        CHECK(store_add(s, "api.example.com", DNS_TYPE_TXT, "hello", 30, "api", 0, NULL, NULL) == 1);

        store_collect(s, NULL, NULL, 0, all);
        g_ptr_array_sort(all, record_compare_ptr);
        for (guint i = 0; i < all->len; i++) {
                const Record *r = all->pdata[i];
                g_string_append_printf(got, "%s %s %s %s;", r->name, dns_type_to_string(r->type), r->value, r->owner);
        }
        CHECK_STREQ(got->str,
                    "api.example.com TXT hello api;"
                    "web.example.com A 10.0.0.1 api;"
                    "web.example.com A 10.0.0.1 hosts:/h/b;"
                    "web.example.com A 10.0.0.2 hosts:/h/b;"
                    "web.example.com AAAA fd00::1 api;");

        store_collect(s, NULL, NULL, DNS_TYPE_A, a);
        CHECK_INT_EQ(a->len, 3);
        store_collect(s, "WEB.example.com.", "hosts:", DNS_TYPE_A, web);
        CHECK_INT_EQ(web->len, 2);
        /* Appends to what the array holds. */
        store_collect(s, "api.example.com", NULL, 0, web);
        CHECK_INT_EQ(web->len, 3);
}

int main(void) {
        test_add_union_dedup();
        test_nodes_and_ptr();
        test_reverse_index();
        test_many_on_one_address();
        test_address_chunks();
        test_mark_sweep();
        test_foreach_source();
        test_count_owner_prefix();
        test_collect_sorted();
        test_many();
        test_flush_settles_rebuild();
        test_subscribers_change_while_notified();
        printf("store: all checks passed\n");
        return 0;
}
