/* SPDX-License-Identifier: MIT */
/* The hosts-file parser: /etc/hosts syntax in, (name, type, address, line)
 * entries and per-line warnings out. It knows nothing of files, the store or
 * the event loop, so it is tested and fuzzed on plain byte buffers.
 *
 * Syntax: one address followed by one or more names per line, separated by
 * spaces or tabs; '#' starts a comment anywhere on a line; CRLF endings, blank
 * lines and a missing final newline are fine. Nothing in the input can make
 * it fail: a bad address skips its line, a bad name skips that name, and a
 * warning says which and why.
 *
 * It works on the caller's buffer in place and copies only one token at a time
 * into a fixed stack buffer (to NUL-terminate it for inet_pton() and the name
 * check), so parsing does no allocation at all, whatever the input. */

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hosts.h"
#include "store.h"

/* Longest token we look at. A DNS name is at most 253 characters, or four
 * times that if every byte is written as a \DDD escape; an address is far
 * shorter. Anything longer cannot be valid, so it is refused unread. */
#define TOKEN_MAX 1024

/* How much of a bad token a warning quotes. */
#define QUOTE_MAX 64

static bool is_blank(char c) {
        /* '\r' is blank so that CRLF files parse; NUL is not: it is junk that
         * makes the token it sits in invalid. */
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Quotes a token for a warning: printable ASCII as is, anything else as \xNN,
 * cut after QUOTE_MAX bytes, so that binary junk cannot garble a log line. */
static void quote_token(const char *p, size_t n, char *out, size_t out_size) {
        size_t o = 0;

        for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
                unsigned char c = (unsigned char) p[i];

                if (o + 5 >= out_size)
                        break;
                if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
                        out[o++] = (char) c;
                else
                        o += (size_t) snprintf(out + o, out_size - o, "\\x%02x", c);
        }
        if (n > QUOTE_MAX && o + 4 < out_size) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
}

_printf_(4, 5) static void warnf(HostsWarnFunc warn, void *userdata, unsigned line, const char *format, ...) {
        char why[512];
        va_list ap;

        if (!warn)
                return;

        va_start(ap, format);
        (void) vsnprintf(why, sizeof why, format, ap);
        va_end(ap);

        warn(line, why, userdata);
}

/* Copies a token into buf as a C string. Returns false if it cannot be one:
 * too long, or containing a NUL byte. */
static bool token_to_string(const char *p, size_t n, char buf[static TOKEN_MAX + 1]) {
        if (n > TOKEN_MAX || memchr(p, 0, n))
                return false;
        memcpy(buf, p, n);
        buf[n] = 0;
        return true;
}

/* Parses the address token. Returns the record type, or 0 after warning. */
static uint16_t parse_address(const char *p, size_t n, char canonical[static DNS_ADDRESS_TEXT_MAX], unsigned line,
                              HostsWarnFunc warn, void *userdata) {
        char buf[TOKEN_MAX + 1], quoted[QUOTE_MAX * 4 + 8];
        union {
                struct in_addr in;
                struct in6_addr in6;
        } a;

        if (token_to_string(p, n, buf)) {
                if (strchr(buf, ':')) {
                        /* A zone only means something on one link of this machine;
                         * a DNS answer cannot carry it. */
                        if (strchr(buf, '%')) {
                                quote_token(p, n, quoted, sizeof quoted);
                                warnf(warn, userdata, line, "IPv6 address with a zone ID is not supported: '%s'",
                                      quoted);
                                return 0;
                        }
                        if (inet_pton(AF_INET6, buf, &a.in6) == 1 &&
                            dns_address_to_string(AF_INET6, &a.in6, canonical) >= 0)
                                return DNS_TYPE_AAAA;
                } else if (inet_pton(AF_INET, buf, &a.in) == 1 && dns_address_to_string(AF_INET, &a.in, canonical) >= 0)
                        return DNS_TYPE_A;
        }

        quote_token(p, n, quoted, sizeof quoted);
        warnf(warn, userdata, line, "not an IP address: '%s'", quoted);
        return 0;
}

/* Parses one line (without its '\n'). Returns the number of entries given to
 * entry(), or what entry() returned if that was negative. */
static int parse_line(const char *p, size_t len, unsigned line, HostsEntryFunc entry, HostsWarnFunc warn,
                      void *userdata) {
        const char *end, *hash, *tok;
        char address[DNS_ADDRESS_TEXT_MAX], name[TOKEN_MAX + 1], quoted[QUOTE_MAX * 4 + 8];
        uint16_t type;
        unsigned n_names = 0;
        int n = 0, r;

        /* '#' starts a comment anywhere, as glibc's reader has it. */
        hash = memchr(p, '#', len);
        end = hash ?: p + len;

        while (p < end && is_blank(*p))
                p++;
        if (p >= end)
                return 0; /* blank or comment only */

        tok = p;
        while (p < end && !is_blank(*p))
                p++;

        type = parse_address(tok, (size_t) (p - tok), address, line, warn, userdata);
        if (type == 0)
                return 0;

        for (;;) {
                const char *error = NULL;
                size_t tlen;

                while (p < end && is_blank(*p))
                        p++;
                if (p >= end)
                        break;
                tok = p;
                while (p < end && !is_blank(*p))
                        p++;
                tlen = (size_t) (p - tok);
                n_names++;

                if (!token_to_string(tok, tlen, name))
                        error = tlen > TOKEN_MAX ? "name too long" : "contains a NUL byte";
                else if (dns_name_check(name, DNS_NAME_WILDCARD, &error) >= 0)
                        error = NULL;
                else if (!error)
                        error = "invalid name";

                if (error) {
                        quote_token(tok, tlen, quoted, sizeof quoted);
                        warnf(warn, userdata, line, "invalid name '%s': %s", quoted, error);
                        continue;
                }

                if (entry) {
                        r = entry(name, type, address, line, userdata);
                        if (r < 0)
                                return r;
                }
                n++;
        }

        if (n_names == 0)
                warnf(warn, userdata, line, "no names for address %s", address);

        return n;
}

int hosts_parse(const char *data, size_t len, HostsEntryFunc entry, HostsWarnFunc warn, void *userdata) {
        const char *p, *end;
        unsigned line = 0;
        int n = 0, r;

        if (len == 0)
                return 0;
        if (!data)
                return -EINVAL;

        p = data;
        end = data + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *eol = nl ?: end;

                line++;
                r = parse_line(p, (size_t) (eol - p), line, entry, warn, userdata);
                if (r < 0)
                        return r;
                /* The return type is int: saturate rather than wrap on absurd inputs. */
                n = r > INT_MAX - n ? INT_MAX : n + r;

                p = nl ? nl + 1 : end;
        }

        return n;
}
