/* SPDX-License-Identifier: MIT */
/* DNS names. See dns-name.h for what a valid name is. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dns-name.h"
#include "macro.h"

static inline bool ascii_isalnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline char ascii_tolower(char c) {
        /* ASCII letters only: the result fits a char. */
        // NOLINTNEXTLINE(bugprone-narrowing-conversions)
        return c >= 'A' && c <= 'Z' ? (char) (c + 'a' - 'A') : c;
}

static bool label_char_ok(char c) {
        return ascii_isalnum(c) || c == '-' || c == '_';
}

int dns_name_check(const char *name, DnsNameFlags flags, const char **ret_error) {
        const char *why;
        size_t len, label = 0;

        if (isempty(name)) {
                why = "empty name";
                goto fail;
        }
        len = strlen(name);
        if (name[len - 1] == '.')
                len--;
        if (len == 0) {
                why = "the root name cannot hold records";
                goto fail;
        }
        if (len > DNS_NAME_MAX) {
                why = "name longer than 253 characters";
                goto fail;
        }
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? name[i] : '.'; // NOLINT(bugprone-narrowing-conversions): a char or '.'

                if (c == '.') {
                        if (label == 0) {
                                why = "empty label (two dots in a row, or a leading dot)";
                                goto fail;
                        }
                        if (label > DNS_LABEL_MAX) {
                                why = "label longer than 63 characters";
                                goto fail;
                        }
                        if (name[i - 1] == '-') {
                                why = "a label cannot end with '-'";
                                goto fail;
                        }
                        label = 0;
                        continue;
                }
                if (c == '*') {
                        if (!(flags & DNS_NAME_WILDCARD)) {
                                why = "'*' is not allowed here (letters, digits, '-' and '_' only)";
                                goto fail;
                        }
                        if (i != 0 || (len > 1 && name[1] != '.')) {
                                why = "'*' is only allowed as the whole first label (a wildcard)";
                                goto fail;
                        }
                } else if (!label_char_ok(c)) {
                        why = "invalid character (letters, digits, '-' and '_' only)";
                        goto fail;
                } else if (c == '-' && label == 0) {
                        why = "a label cannot start with '-'";
                        goto fail;
                }
                label++;
        }
        if (name[0] == '*' && len == 1) {
                why = "a wildcard needs a name below it";
                goto fail;
        }
        return 0;
fail:
        if (ret_error)
                *ret_error = why;
        return -EINVAL;
}

int dns_name_to_wire(const char *name, uint8_t out[static DNS_WIRE_NAME_MAX]) {
        size_t o = 0, len;

        if (!name)
                return -EINVAL;
        len = strlen(name);
        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0) {
                out[0] = 0;
                return 1;
        }
        for (size_t i = 0; i <= len;) {
                size_t start = i, l;

                while (i < len && name[i] != '.')
                        i++;
                l = i - start;
                if (l == 0 || l > DNS_LABEL_MAX || o + 1 + l + 1 > DNS_WIRE_NAME_MAX)
                        return -EINVAL;
                out[o++] = (uint8_t) l;
                for (size_t k = 0; k < l; k++)
                        out[o++] = (uint8_t) ascii_tolower(name[start + k]);
                i++;
        }
        out[o++] = 0;
        return (int) o;
}

int dns_wire_to_name(const uint8_t *wire, size_t len, char *out, size_t out_size) {
        size_t o = 0, i = 0;

        if (out_size < 2)
                return -EINVAL;
        while (i < len && wire[i] != 0) {
                uint8_t l = wire[i++];

                if (l > DNS_LABEL_MAX || i + l > len)
                        return -EINVAL;
                if (o > 0)
                        out[o++] = '.';
                for (uint8_t k = 0; k < l; k++) {
                        uint8_t c = (uint8_t) ascii_tolower((char) wire[i + k]);

                        if (o + 5 >= out_size)
                                return -EINVAL;
                        if (label_char_ok((char) c) || c == '*')
                                out[o++] = (char) c;
                        else if (c == '.' || c == '\\')
                                o += (size_t) snprintf(out + o, out_size - o, "\\%c", c);
                        else
                                o += (size_t) snprintf(out + o, out_size - o, "\\%03u", c);
                }
                i += l;
        }
        if (i >= len)
                return -EINVAL;
        out[o] = 0;
        return (int) o;
}

void dns_name_skip(Wire *r) {
        /* 255 bytes hold at most 127 labels and the root. */
        for (unsigned n = 0; n < 128; n++) {
                uint8_t l = wire_read_u8(r);

                if (!wire_ok(r) || l == 0)
                        return;
                if ((l & 0xc0) == 0xc0) {
                        wire_skip(r, 1);
                        return;
                }
                if (l > DNS_LABEL_MAX)
                        break;
                wire_skip(r, l);
        }
        wire_fail(r, -EBADMSG);
}
