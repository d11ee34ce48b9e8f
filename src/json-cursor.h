/* SPDX-License-Identifier: MIT */
/* A cursor over JSON text (RFC 8259) that reads it in place, member by
 * member, without building a tree: for etcd's range pages (megabytes, of
 * which a few members per key matter) and for SkyDNS values (read by the
 * hundred thousand), where json-c's objects cost more than the reading.
 *
 * Strict: what it accepts, every JSON parser reads alike (UTF-8 is not
 * checked; strings are handed over as the bytes between the quotes). The
 * first error sticks: every later call returns false or JSON_INVALID, and
 * json_cursor_error() says what and where.
 *
 *   JsonCursor c;
 *   JsonSpan name;
 *   json_cursor_init(&c, data, len);
 *   if (json_cursor_object_begin(&c))
 *           while (json_cursor_member(&c, &name))
 *                   if (json_span_is(&name, "ttl")) ... read the value ...
 *                   else json_cursor_skip(&c);
 *   if (!json_cursor_end(&c)) ... json_cursor_error(&c) ...
 *
 * After json_cursor_member() or json_cursor_element() returns true the
 * caller reads exactly one value (or skips it). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_CURSOR_DEPTH_MAX 64u

typedef enum JsonKind {
        JSON_INVALID, /* not a value here, or an error already */
        JSON_OBJECT,
        JSON_ARRAY,
        JSON_STRING,
        JSON_NUMBER,
        JSON_TRUE,
        JSON_FALSE,
        JSON_NULL,
} JsonKind;

/* A string's bytes between its quotes, escapes as written; or a number's. */
typedef struct JsonSpan {
        const char *p;
        size_t len;
        bool escaped; /* holds a backslash: json_span_unescape() gives the text */
} JsonSpan;

typedef struct JsonCursor {
        const char *begin, *p, *end;
        unsigned depth;
        uint64_t first; /* bit d: no member or element read yet at depth d */
        const char *error;
        size_t error_at;
} JsonCursor;

void json_cursor_init(JsonCursor *c, const char *data, size_t len);

/* What the next value is, after white space; consumes nothing. */
JsonKind json_cursor_peek(JsonCursor *c);

/* '{', then each member's name until the closing '}' (consumed; false). */
bool json_cursor_object_begin(JsonCursor *c);
bool json_cursor_member(JsonCursor *c, JsonSpan *ret_name);
/* '[', then true before each element until the closing ']' (false). */
bool json_cursor_array_begin(JsonCursor *c);
bool json_cursor_element(JsonCursor *c);

bool json_cursor_string(JsonCursor *c, JsonSpan *ret);
bool json_cursor_number(JsonCursor *c, JsonSpan *ret);
bool json_cursor_bool(JsonCursor *c, bool *ret);
/* Any one value, nested ones included (at most JSON_CURSOR_DEPTH_MAX deep). */
bool json_cursor_skip(JsonCursor *c);
/* Nothing but white space is left. */
bool json_cursor_end(JsonCursor *c);

/* The first error: what (static text), and at which byte; NULL if none. */
const char *json_cursor_error(const JsonCursor *c, size_t *ret_offset);

/* Whether a string span reads as the given text (escapes decoded). */
bool json_span_is(const JsonSpan *s, const char *text);
/* The text of a string span, escapes decoded (\u to UTF-8; a lone
 * surrogate becomes U+FFFD), NUL-terminated; *ret_len without the NUL
 * (the text may hold "\u0000"). */
char *json_span_unescape(const JsonSpan *s, size_t *ret_len);
