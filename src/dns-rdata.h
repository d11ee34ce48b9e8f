/* SPDX-License-Identifier: MIT */
/* DNS record types and rdata: type numbers and names, and conversion of the
 * values joyrided serves (A, AAAA, CNAME, PTR, TXT) between the presentation
 * form people write ("10.0.0.1", "a.example.com", "some text") and canonical
 * wire rdata. Pure functions; only dns_rdata_parse() allocates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_TYPE_A 1
#define DNS_TYPE_NS 2
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA 6
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_OPT 41
#define DNS_TYPE_IXFR 251
#define DNS_TYPE_AXFR 252
#define DNS_TYPE_ANY 255

#define DNS_CLASS_IN 1
#define DNS_CLASS_ANY 255

#define DNS_RDATA_MAX 4096      /* longest rdata dns_rdata_from_string() makes */
#define DNS_RDATA_TEXT_MAX 4096 /* longest presentation dns_rdata_to_string() makes, NUL included */
#define DNS_TXT_TEXT_MAX 2048   /* longest TXT value accepted */

/* "A", "aaaa", "TXT", ... -> type number, or -EINVAL. Only the types whose
 * values dns_rdata_from_string() parses. */
int dns_type_from_string(const char *s);
/* The mnemonic of a type we know (also SOA, NS, MX, ANY); NULL for others. */
const char *dns_type_to_string(uint16_t type);

/* Presentation value to canonical wire rdata in buf. Returns the rdata
 * length, -EINVAL when the value is not valid for the type, -EOPNOTSUPP for a
 * type other than A, AAAA, CNAME, PTR and TXT; *ret_error (if given) then
 * says why in a static string. CNAME and PTR targets are checked with
 * dns_name_check() and may not be wildcards; TXT is plain text of at most
 * 2048 bytes without control characters, split into 255-byte strings. */
int dns_rdata_from_string(uint16_t type, const char *value, uint8_t buf[static DNS_RDATA_MAX], const char **ret_error);
/* The same into a new buffer (g_free() it); ret_rdata and ret_rdlen may be NULL. */
int dns_rdata_parse(uint16_t type, const char *value, uint8_t **ret_rdata, uint16_t *ret_rdlen, const char **ret_error);

/* Canonical presentation of wire rdata of those types into out. Returns its
 * length, or -EINVAL for rdata that is malformed for the type. */
int dns_rdata_to_string(uint16_t type, const uint8_t *rdata, uint16_t rdlen, char out[static DNS_RDATA_TEXT_MAX]);
/* The canonical text of an address, as dns_rdata_to_string() gives it for an
 * A or AAAA record (the hosts parser uses them too, so that a parsed entry
 * and the record the store makes from it have the same value). Return the
 * length, or -EINVAL for a family other than AF_INET and AF_INET6. */
#define DNS_ADDRESS_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
int dns_address_to_string(int family, const void *addr, char out[static DNS_ADDRESS_TEXT_MAX]);
