/* SPDX-License-Identifier: MIT */
/* DNS types and rdata. See dns-rdata.h. */

#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "dns-name.h"
#include "dns-rdata.h"
#include "macro.h"

int dns_type_from_string(const char *s) {
        static const struct {
                const char *n;
                uint16_t t;
        } types[] = {
                { "A", DNS_TYPE_A },     { "AAAA", DNS_TYPE_AAAA }, { "CNAME", DNS_TYPE_CNAME },
                { "TXT", DNS_TYPE_TXT }, { "PTR", DNS_TYPE_PTR },
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (g_ascii_strcasecmp(s, types[i].n) == 0)
                        return types[i].t;
        return -EINVAL;
}

const char *dns_type_to_string(uint16_t type) {
        switch (type) {
        case DNS_TYPE_A:
                return "A";
        case DNS_TYPE_AAAA:
                return "AAAA";
        case DNS_TYPE_CNAME:
                return "CNAME";
        case DNS_TYPE_TXT:
                return "TXT";
        case DNS_TYPE_PTR:
                return "PTR";
        case DNS_TYPE_SOA:
                return "SOA";
        case DNS_TYPE_NS:
                return "NS";
        case DNS_TYPE_MX:
                return "MX";
        case DNS_TYPE_ANY:
                return "ANY";
        default:
                return NULL;
        }
}

int dns_rdata_from_string(uint16_t type, const char *value, uint8_t buf[static DNS_RDATA_MAX], const char **ret_error) {
        const char *why = NULL;
        int len;

        if (!value) {
                why = "missing value";
                goto fail;
        }
        switch (type) {
        case DNS_TYPE_A:
                if (inet_pton(AF_INET, value, buf) != 1) {
                        why = "not an IPv4 address";
                        goto fail;
                }
                return 4;
        case DNS_TYPE_AAAA:
                if (inet_pton(AF_INET6, value, buf) != 1) {
                        why = "not an IPv6 address";
                        goto fail;
                }
                return 16;
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                if (dns_name_check(value, DNS_NAME_WILDCARD, &why) < 0)
                        goto fail;
                if (value[0] == '*') {
                        why = "a target name cannot be a wildcard";
                        goto fail;
                }
                len = dns_name_to_wire(value, buf);
                if (len < 0) {
                        why = "not a valid domain name";
                        goto fail;
                }
                return len;
        case DNS_TYPE_TXT: {
                size_t n = strlen(value), o = 0;

                if (n > DNS_TXT_TEXT_MAX) {
                        why = "text longer than 2048 bytes";
                        goto fail;
                }
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f) {
                                why = "control characters are not allowed in text";
                                goto fail;
                        }
                if (n == 0)
                        buf[o++] = 0;
                for (size_t i = 0; i < n;) {
                        size_t l = MIN(n - i, 255u);

                        buf[o++] = (uint8_t) l;
                        memcpy(buf + o, value + i, l);
                        o += l;
                        i += l;
                }
                return (int) o;
        }
        default:
                if (ret_error)
                        *ret_error = "unsupported record type (A, AAAA, CNAME, TXT and PTR are)";
                return -EOPNOTSUPP;
        }
fail:
        if (ret_error)
                *ret_error = why;
        return -EINVAL;
}

int dns_rdata_parse(uint16_t type, const char *value, uint8_t **ret_rdata, uint16_t *ret_rdlen,
                    const char **ret_error) {
        uint8_t buf[DNS_RDATA_MAX];
        int len = dns_rdata_from_string(type, value, buf, ret_error);

        if (len < 0)
                return len;
        if (ret_rdata)
                *ret_rdata = g_memdup2(buf, (gsize) len);
        if (ret_rdlen)
                *ret_rdlen = (uint16_t) len;
        return 0;
}

static size_t format_u8(char *out, uint8_t v) {
        size_t o = 0;

        if (v >= 100)
                out[o++] = (char) ('0' + v / 100);
        if (v >= 10)
                out[o++] = (char) ('0' + v / 10 % 10);
        out[o++] = (char) ('0' + v % 10);
        return o;
}

/* IPv4 is formatted by hand: inet_ntop's sprintf was a tenth of the load time
 * of a large hosts file. */
int dns_address_to_string(int family, const void *addr, char out[static DNS_ADDRESS_TEXT_MAX]) {
        const uint8_t *a = addr;
        size_t o = 0;

        switch (family) {
        case AF_INET:
                for (int i = 0; i < 4; i++) {
                        if (i > 0)
                                out[o++] = '.';
                        o += format_u8(out + o, a[i]);
                }
                out[o] = 0;
                return (int) o;
        case AF_INET6:
                if (!inet_ntop(AF_INET6, addr, out, DNS_ADDRESS_TEXT_MAX))
                        return -EINVAL;
                return (int) strlen(out);
        default:
                return -EINVAL;
        }
}

int dns_rdata_to_string(uint16_t type, const uint8_t *rdata, uint16_t rdlen, char out[static DNS_RDATA_TEXT_MAX]) {
        size_t o = 0;

        switch (type) {
        case DNS_TYPE_A:
                if (rdlen != 4)
                        return -EINVAL;
                return dns_address_to_string(AF_INET, rdata, out);
        case DNS_TYPE_AAAA:
                if (rdlen != 16)
                        return -EINVAL;
                return dns_address_to_string(AF_INET6, rdata, out);
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                return dns_wire_to_name(rdata, rdlen, out, DNS_RDATA_TEXT_MAX);
        case DNS_TYPE_TXT:
                for (size_t i = 0; i < rdlen;) {
                        uint8_t l = rdata[i++];
                        size_t k = MIN((size_t) l, (size_t) rdlen - i);

                        if (o + k >= DNS_RDATA_TEXT_MAX)
                                return -EINVAL;
                        memcpy(out + o, rdata + i, k);
                        o += k;
                        i += l;
                }
                out[o] = 0;
                return (int) o;
        default:
                return -EINVAL;
        }
}
