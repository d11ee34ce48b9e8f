/* SPDX-License-Identifier: MIT */
/* DNS names: the one validator for names we serve or are configured with,
 * and conversion between presentation form ("www.example.com") and wire form
 * (length-prefixed labels). Pure functions, no allocation.
 *
 * A valid name is what joyrided holds records for and what its settings
 * take: host-name labels of letters, digits, '-' and '_' (for service labels
 * such as _http._tcp), no label starting or ending with '-', labels of 1-63
 * bytes, at most 253 characters, an optional trailing dot, and, where the
 * caller allows it, a wildcard "*" as the whole first label. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define DNS_WIRE_NAME_MAX 255 /* bytes of a wire name, root byte included */
#define DNS_NAME_MAX 253      /* characters of a presentation name, no trailing dot */
#define DNS_LABEL_MAX 63
#define DNS_NAME_TEXT_MAX 1024 /* presentation of any wire name, \DDD escapes included */

typedef enum DnsNameFlags {
        DNS_NAME_WILDCARD = 1 << 0, /* "*" allowed as the whole first label */
} DnsNameFlags;

/* Checks a presentation name. Returns 0, or -EINVAL with *ret_error (if
 * given) set to a static string saying what is wrong. */
int dns_name_check(const char *name, DnsNameFlags flags, const char **ret_error);
static inline bool dns_name_is_valid(const char *name, DnsNameFlags flags) {
        return dns_name_check(name, flags, NULL) >= 0;
}

/* Lowercases and converts a presentation name (trailing dot optional; no
 * escapes) to wire form. Returns the wire length, root byte included, or
 * -EINVAL for an empty label, a label over 63 bytes or a name over 255. */
int dns_name_to_wire(const char *name, uint8_t out[static DNS_WIRE_NAME_MAX]);

/* Wire to presentation: lowercase, no trailing dot, bytes other than letters,
 * digits, '-', '_' and '*' escaped as ldns does (\. \\ \DDD). Reads at most
 * len bytes. Returns the length written (out is NUL-terminated), or -EINVAL
 * for a malformed name or one that does not fit out_size. */
int dns_wire_to_name(const uint8_t *wire, size_t len, char *out, size_t out_size);

/* Moves r past a wire name in a message, where compression pointers are
 * allowed (a pointer ends the name). Sets r's error to -EBADMSG for a label
 * length over 63 or more labels than 255 bytes hold; a name cut short by
 * the end of the message is r's usual overrun. */
void dns_name_skip(Wire *r);
