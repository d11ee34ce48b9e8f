/* SPDX-License-Identifier: MIT */
/* The SkyDNS layout of DNS records in etcd, both ways, as pure functions (no
 * etcd, no store): the layout CoreDNS's etcd plugin serves and external-dns
 * writes with its CoreDNS provider.
 *
 * A key spells a name with its labels last first, below a prefix:
 * web.example.com is /skydns/com/example/web. Its value is a JSON object:
 *
 *   host         an IPv4 address (A), an IPv6 address (AAAA) or a name:
 *                a CNAME, or a PTR for names under in-addr.arpa and ip6.arpa
 *   text         text (TXT); a value may hold both host and text
 *   ttl          seconds, a number or a string of digits; 0 or none: the
 *                default TTL
 *   targetstrip  how many segments at the end of the key are not part of
 *                the name: several values for one name sit side by side as
 *                .../web/x1 and .../web/x2 with "targetstrip":1, which is
 *                how external-dns writes them and how joyride does
 *
 * A key ending in "/" names its path (CoreDNS's zone apex form), and "*"
 * as the first label gives a wildcard (RFC 4592). Other SkyDNS fields
 * (port, priority, weight, group) change nothing here; "mail" (MX) is not
 * served. Values from other writers are checked as closely as records from
 * any other source: what cannot be served is refused with a reason. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Values longer than this are refused: no DNS record needs one. */
#define SKYDNS_VALUE_MAX (64u * 1024u)
/* At most this many segments of a key are stripped (targetstrip). */
#define SKYDNS_TARGETSTRIP_MAX 16u

typedef struct SkyDnsRecord {
        uint16_t type;
        char *value; /* canonical, as the store holds it: "10.0.0.1", "a.example.com", text */
} SkyDnsRecord;

/* What one key gives: one name, one or two records (host, text). */
typedef struct SkyDnsEntry {
        char *name; /* lowercased, no trailing dot; "*.x" for a wildcard */
        uint32_t ttl;
        size_t n_records;
        SkyDnsRecord records[2];
        char *note; /* a part of the value that was left out, and why; NULL when none */
} SkyDnsEntry;

void skydns_entry_done(SkyDnsEntry *e);

/* Parses one key and its value. key and value are bytes as etcd holds them
 * (not NUL-terminated). Returns 0 and fills *ret; -EINVAL when nothing of it
 * can be served, with *ret_error a new string saying why ("value is not
 * JSON: ...", "host: not an address or a name ..."); -ENOMEM. */
int skydns_parse(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                 uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error);

/* skydns_parse() with json-c alone: skydns_parse() reads the usual values
 * without it, and the tests check that both read every value alike. */
int skydns_parse_jsonc(const char *prefix, const char *key, size_t key_len, const char *value, size_t value_len,
                       uint32_t default_ttl, SkyDnsEntry *ret, char **ret_error);

/* The key of one record this node publishes:
 * PREFIX/<labels last first>/<tag>-<16 hex digits>, the tag spelling the
 * node id as a DNS label, the digits a hash of the node id, type and value:
 * the same record of the same node has the same key across restarts, and
 * two records of one name have two keys. Returns -EINVAL for a name the
 * store would refuse. */
int skydns_record_key(const char *prefix, const char *name, const char *node_id, uint16_t type, const char *value,
                      char **ret);

/* The JSON value this node writes for a record at name:
 * {"host":"192.0.2.10","ttl":30,"targetstrip":1}, {"text":"...",...}.
 * Returns -EOPNOTSUPP for what would not read back as the same record: a
 * type the layout cannot hold, a CNAME under in-addr.arpa or ip6.arpa, a
 * PTR elsewhere. */
int skydns_record_value(const char *name, uint16_t type, const char *value, uint32_t ttl, char **ret);

/* A key as log lines show it: bytes outside printable ASCII as \xNN. */
char *skydns_key_printable(const char *key, size_t len);
