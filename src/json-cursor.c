/* SPDX-License-Identifier: MIT */
/* The JSON cursor (see json-cursor.h): one pointer moving forward, a depth
 * and one bit per depth for "no item yet", so that commas are checked
 * without a stack of states. */

#include <glib.h>
#include <string.h>

#include "json-cursor.h"

void json_cursor_init(JsonCursor *c, const char *data, size_t len) {
        *c = (JsonCursor) { .begin = data, .p = data, .end = data + len };
}

static bool fail(JsonCursor *c, const char *why) {
        if (!c->error) {
                c->error = why;
                c->error_at = (size_t) (c->p - c->begin);
        }
        return false;
}

const char *json_cursor_error(const JsonCursor *c, size_t *ret_offset) {
        if (ret_offset)
                *ret_offset = c->error_at;
        return c->error;
}

static void skip_space(JsonCursor *c) {
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
                c->p++;
}

static bool is_digit(char ch) {
        return ch >= '0' && ch <= '9';
}

static bool at_digit(const JsonCursor *c) {
        return c->p < c->end && is_digit(*c->p);
}

JsonKind json_cursor_peek(JsonCursor *c) {
        if (c->error)
                return JSON_INVALID;
        skip_space(c);
        if (c->p >= c->end)
                return JSON_INVALID;
        switch (*c->p) {
        case '{':
                return JSON_OBJECT;
        case '[':
                return JSON_ARRAY;
        case '"':
                return JSON_STRING;
        case 't':
                return JSON_TRUE;
        case 'f':
                return JSON_FALSE;
        case 'n':
                return JSON_NULL;
        case '-':
                return JSON_NUMBER;
        default:
                return is_digit(*c->p) ? JSON_NUMBER : JSON_INVALID;
        }
}

static bool container_begin(JsonCursor *c, char open) {
        if (c->error)
                return false;
        skip_space(c);
        if (c->p >= c->end || *c->p != open)
                return fail(c, open == '{' ? "expected an object" : "expected an array");
        if (c->depth >= JSON_CURSOR_DEPTH_MAX)
                return fail(c, "nested too deep");
        c->p++;
        c->depth++;
        c->first |= UINT64_C(1) << (c->depth - 1);
        return true;
}

/* Before each item of the innermost container: the comma after the one
 * before, or the end (consumed, false). */
static bool container_next(JsonCursor *c, char close) {
        uint64_t bit;

        if (c->error)
                return false;
        if (c->depth == 0)
                return fail(c, "not inside an object or array");
        bit = UINT64_C(1) << (c->depth - 1);
        skip_space(c);
        if (c->p >= c->end)
                return fail(c, "ends too early");
        if (*c->p == close) {
                c->p++;
                c->depth--;
                return false;
        }
        if (!(c->first & bit)) {
                if (*c->p != ',')
                        return fail(c, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
                c->p++;
                skip_space(c);
                if (c->p < c->end && *c->p == close)
                        return fail(c, "a comma before the end");
        }
        c->first &= ~bit;
        return true;
}

bool json_cursor_object_begin(JsonCursor *c) {
        return container_begin(c, '{');
}

bool json_cursor_array_begin(JsonCursor *c) {
        return container_begin(c, '[');
}

bool json_cursor_element(JsonCursor *c) {
        return container_next(c, ']');
}

bool json_cursor_member(JsonCursor *c, JsonSpan *ret_name) {
        if (!container_next(c, '}'))
                return false;
        if (!json_cursor_string(c, ret_name))
                return false;
        skip_space(c);
        if (c->p >= c->end || *c->p != ':')
                return fail(c, "expected ':'");
        c->p++;
        return true;
}

static bool is_hex4(const char *p) {
        for (size_t i = 0; i < 4; i++)
                if (!g_ascii_isxdigit(p[i]))
                        return false;
        return true;
}

bool json_cursor_string(JsonCursor *c, JsonSpan *ret) {
        const char *start;
        bool escaped = false;

        if (c->error)
                return false;
        skip_space(c);
        if (c->p >= c->end || *c->p != '"')
                return fail(c, "expected a string");
        start = ++c->p;
        for (;; c->p++) {
                unsigned char ch;

                if (c->p >= c->end)
                        return fail(c, "a string that does not end");
                ch = (unsigned char) *c->p;
                if (ch == '"')
                        break;
                if (ch < 0x20)
                        return fail(c, "a control character in a string");
                if (ch != '\\')
                        continue;
                escaped = true;
                if (++c->p >= c->end)
                        return fail(c, "a string that does not end");
                switch (*c->p) {
                case '"':
                case '\\':
                case '/':
                case 'b':
                case 'f':
                case 'n':
                case 'r':
                case 't':
                        break;
                case 'u':
                        if (c->end - c->p < 5 || !is_hex4(c->p + 1))
                                return fail(c, "a bad \\u escape");
                        c->p += 4;
                        break;
                default:
                        return fail(c, "a bad escape in a string");
                }
        }
        *ret = (JsonSpan) { start, (size_t) (c->p - start), escaped };
        c->p++;
        return true;
}

bool json_cursor_number(JsonCursor *c, JsonSpan *ret) {
        const char *start;

        if (c->error)
                return false;
        skip_space(c);
        start = c->p;
        if (c->p < c->end && *c->p == '-')
                c->p++;
        if (!at_digit(c))
                return fail(c, "expected a number");
        if (*c->p == '0')
                c->p++;
        else
                while (at_digit(c))
                        c->p++;
        if (c->p < c->end && *c->p == '.') {
                c->p++;
                if (!at_digit(c))
                        return fail(c, "expected a digit after '.'");
                while (at_digit(c))
                        c->p++;
        }
        if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
                c->p++;
                if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
                        c->p++;
                if (!at_digit(c))
                        return fail(c, "expected a digit in an exponent");
                while (at_digit(c))
                        c->p++;
        }
        *ret = (JsonSpan) { start, (size_t) (c->p - start), false };
        return true;
}

static bool literal(JsonCursor *c, const char *word) {
        size_t n = strlen(word);

        if ((size_t) (c->end - c->p) < n || memcmp(c->p, word, n) != 0)
                return fail(c, "expected a value");
        c->p += n;
        return true;
}

bool json_cursor_bool(JsonCursor *c, bool *ret) {
        switch (json_cursor_peek(c)) {
        case JSON_TRUE:
                *ret = true;
                return literal(c, "true");
        case JSON_FALSE:
                *ret = false;
                return literal(c, "false");
        default:
                return fail(c, "expected true or false");
        }
}

bool json_cursor_skip(JsonCursor *c) {
        JsonSpan s;
        bool b;

        switch (json_cursor_peek(c)) {
        case JSON_OBJECT:
                if (!json_cursor_object_begin(c))
                        return false;
                while (json_cursor_member(c, &s))
                        if (!json_cursor_skip(c))
                                return false;
                return !c->error;
        case JSON_ARRAY:
                if (!json_cursor_array_begin(c))
                        return false;
                while (json_cursor_element(c))
                        if (!json_cursor_skip(c))
                                return false;
                return !c->error;
        case JSON_STRING:
                return json_cursor_string(c, &s);
        case JSON_NUMBER:
                return json_cursor_number(c, &s);
        case JSON_TRUE:
        case JSON_FALSE:
                return json_cursor_bool(c, &b);
        case JSON_NULL:
                return literal(c, "null");
        case JSON_INVALID:
                break;
        }
        if (c->error)
                return false;
        return fail(c, c->p >= c->end ? "ends too early" : "expected a value");
}

bool json_cursor_end(JsonCursor *c) {
        if (c->error)
                return false;
        skip_space(c);
        if (c->p != c->end)
                return fail(c, "more after the value");
        return true;
}

static unsigned hex4(const char *p) {
        unsigned v = 0;

        for (size_t i = 0; i < 4; i++)
                v = v * 16 + (unsigned) g_ascii_xdigit_value(p[i]);
        return v;
}

static char *utf8_put(char *o, uint32_t cp) {
        if (cp < 0x80)
                *o++ = (char) cp;
        else if (cp < 0x800) {
                *o++ = (char) (0xc0 | (cp >> 6));
                *o++ = (char) (0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
                *o++ = (char) (0xe0 | (cp >> 12));
                *o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char) (0x80 | (cp & 0x3f));
        } else {
                *o++ = (char) (0xf0 | (cp >> 18));
                *o++ = (char) (0x80 | ((cp >> 12) & 0x3f));
                *o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char) (0x80 | (cp & 0x3f));
        }
        return o;
}

/* Decoding never makes the text longer: an escape of 2 bytes gives 1, one
 * of 6 at most 3, a pair of 12 gives 4. */
char *json_span_unescape(const JsonSpan *s, size_t *ret_len) {
        char *out = g_malloc(s->len + 1), *o = out;

        for (size_t i = 0; i < s->len; i++) {
                char ch = s->p[i];

                if (ch != '\\' || i + 1 >= s->len) {
                        *o++ = ch;
                        continue;
                }
                ch = s->p[++i];
                switch (ch) {
                case 'b':
                        *o++ = '\b';
                        break;
                case 'f':
                        *o++ = '\f';
                        break;
                case 'n':
                        *o++ = '\n';
                        break;
                case 'r':
                        *o++ = '\r';
                        break;
                case 't':
                        *o++ = '\t';
                        break;
                case 'u': {
                        uint32_t cp;

                        if (s->len - i < 5 || !is_hex4(s->p + i + 1)) {
                                *o++ = ch; /* not from json_cursor_string(): kept as written */
                                break;
                        }
                        cp = hex4(s->p + i + 1);
                        i += 4;
                        if (cp >= 0xd800 && cp < 0xdc00 && s->len - i >= 7 && s->p[i + 1] == '\\' &&
                            s->p[i + 2] == 'u' && is_hex4(s->p + i + 3)) {
                                uint32_t low = hex4(s->p + i + 3);
                                if (low >= 0xdc00 && low < 0xe000) {
                                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                                        i += 6;
                                }
                        }
                        if (cp >= 0xd800 && cp < 0xe000)
                                cp = 0xfffd; /* a lone surrogate */
                        o = utf8_put(o, cp);
                        break;
                }
                default: /* '"', '\\', '/' */
                        *o++ = ch;
                }
        }
        *o = 0;
        if (ret_len)
                *ret_len = (size_t) (o - out);
        return out;
}

bool json_span_is(const JsonSpan *s, const char *text) {
        g_autofree char *decoded = NULL;
        size_t n = strlen(text), len;

        if (!s->escaped)
                return s->len == n && memcmp(s->p, text, n) == 0;
        decoded = json_span_unescape(s, &len);
        return len == n && memcmp(decoded, text, n) == 0;
}
