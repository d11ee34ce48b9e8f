/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the hosts-file parser: any bytes go through
 * hosts_parse() into a real store, as the hosts directory does. Besides the
 * sanitizers, it checks the parser's promises: every entry has a canonical
 * address of the stated type and a name the store accepts, and every warning
 * is printable text (it ends up in the log). */

#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hosts.h"
#include "log.h"
#include "store.h"

#define OWNER "hosts:/fuzz/input.hosts"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_entry(const char *name, uint16_t type, const char *address, unsigned line, void *userdata) {
        Store *store = userdata;
        unsigned char bin[sizeof(struct in6_addr)];
        char again[INET6_ADDRSTRLEN];
        int family = type == DNS_TYPE_A ? AF_INET : AF_INET6;
        int r;

        assert(type == DNS_TYPE_A || type == DNS_TYPE_AAAA);
        assert(line >= 1);
        assert(dns_name_check(name, DNS_NAME_WILDCARD, NULL) == 0);
        /* Canonical: the text is what inet_ntop() gives back for it. */
        assert(inet_pton(family, address, bin) == 1);
        assert(inet_ntop(family, bin, again, sizeof again));
        assert(strcmp(again, address) == 0);

        r = store_add(store, name, type, address, 60, OWNER, line, NULL, NULL);
        /* The parser checked the name and the address: the store must take them. */
        assert(r >= 0);
        return 0;
}

static void on_warning(unsigned line, const char *why, void *userdata) {
        assert(line >= 1);
        assert(why && *why);
        for (const char *p = why; *p; p++)
                assert((unsigned char) *p >= 0x20 && (unsigned char) *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Store *store = NULL;
        int r;

        if (!store) {
                log_set_max_level(LOG_CRIT);
                assert(store_new(&store) >= 0);
        }

        r = hosts_parse((const char *) data, size, on_entry, on_warning, store);
        assert(r >= 0);
        /* No more entries than names could fit in the input. */
        assert((size_t) r <= size / 2);

        (void) store_remove_owner(store, OWNER);
        assert(store_count(store) == 0);
        return 0;
}
