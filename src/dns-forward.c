/* SPDX-License-Identifier: MIT */
/* Forwarding of the names that are not ours; see dns-forward.h.
 *
 * Threads: answering threads call dns_forwarder_submit(), which pushes an
 * Item onto a lock-free list (a Treiber stack: push with compare-and-swap,
 * the single consumer takes the whole list with one exchange, so there is no
 * ABA problem) and writes the eventfd when the list was empty. Everything
 * else runs on the forwarder's thread, on its own sd-event loop: the
 * in-flight table, the cache, the upstream sockets, the timers. The control
 * loop talks to it through the same list (reconfigure, quit) and reads its
 * counters (relaxed atomics) and upstream list (under a mutex the forwarder
 * thread takes only to swap the list) for status.
 *
 * A question's life: parsed, checked against ForwardAllow, answered from the
 * cache, or attached to the transaction for its key (name, type, class,
 * DO/CD) so that the same question in flight goes upstream once. A
 * transaction sends attempts: each a new socket connected to one upstream
 * (UDP, or TCP for TCP clients and after a TC reply) with a random ID; a new
 * attempt every ATTEMPT_INTERVAL while earlier ones may still answer, the
 * next upstream first; all answered with SERVFAIL at the deadline. An
 * upstream's SERVFAIL, REFUSED, NOTIMP or FORMERR sends the question to the
 * next upstream at once, and is relayed only when no other does better. */

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <systemd/sd-event.h>

#include <glib.h>

#include "dns-forward.h"
#include "dns-name.h"
#include "dns-rdata.h"
#include "log.h"
#include "wire.h"

#define ATTEMPT_INTERVAL_USEC (400 * USEC_PER_MSEC)
#define DEADLINE_USEC (1500 * USEC_PER_MSEC)
#define QUEUE_MAX 4096u    /* questions waiting for the forwarder thread */
#define INFLIGHT_MAX 1024u /* transactions at once */
#define WAITERS_MAX 64u    /* clients waiting for one transaction */
#define ALLOW_REFRESH_USEC (5 * USEC_PER_SEC)
#define UDP_BATCH 32
#define CONTROL_MAX 64
#define CACHE_BYTES_PER_ENTRY 1024u
#define CACHE_BYTES_MIN (1024u * 1024u)
#define DNS_FLAG_QR 0x8000u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_FLAG_CD 0x0010u
#define DNS_OPCODE_MASK 0x7800u

/* Counters written by the forwarder thread, read by others. */
#define INC(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static inline uint8_t ascii_lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* --- the lock-free list ------------------------------------------------------ */

typedef struct Node {
        struct Node *next;
} Node;

/* Returns true when the list was empty: the consumer must be woken. */
static bool list_push(Node **head, Node *n) {
        Node *old = __atomic_load_n(head, __ATOMIC_RELAXED);

        do
                n->next = old;
        while (!__atomic_compare_exchange_n(head, &old, n, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        return old == NULL;
}

/* Takes everything, oldest first. */
static Node *list_take(Node **head) {
        Node *l = __atomic_exchange_n(head, NULL, __ATOMIC_ACQUIRE), *out = NULL;

        while (l) {
                Node *next = l->next;
                l->next = out;
                out = l;
                l = next;
        }
        return out;
}

static void eventfd_wake(int fd) {
        uint64_t one = 1;
        /* EAGAIN: the counter is already huge, the reader is awake anyway. */
        (void) !write(fd, &one, sizeof one);
}

static void eventfd_clear(int fd) {
        uint64_t v;
        (void) !read(fd, &v, sizeof v);
}

/* --- reply queues --------------------------------------------------------------- */

struct DnsReplyQueue {
        unsigned n_ref; /* atomic */
        int fd;
        Node *head; /* DnsForwardReply, through its first member */
};

int dns_reply_queue_new(DnsReplyQueue **ret) {
        DnsReplyQueue *q;

        if (!ret)
                return -EINVAL;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->n_ref = 1;
        q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (q->fd < 0) {
                int r = negative_errno();
                free(q);
                return r;
        }
        *ret = q;
        return 0;
}

DnsReplyQueue *dns_reply_queue_ref(DnsReplyQueue *q) {
        if (q)
                __atomic_fetch_add(&q->n_ref, 1, __ATOMIC_RELAXED);
        return q;
}

DnsReplyQueue *dns_reply_queue_unref(DnsReplyQueue *q) {
        if (!q || __atomic_sub_fetch(&q->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        for (Node *n = list_take(&q->head), *next; n; n = next) {
                next = n->next;
                free(n);
        }
        safe_close(q->fd);
        free(q);
        return NULL;
}

int dns_reply_queue_get_fd(const DnsReplyQueue *q) {
        return q ? q->fd : -EBADF;
}

DnsForwardReply *dns_reply_queue_take(DnsReplyQueue *q) {
        if (!q)
                return NULL;
        eventfd_clear(q->fd);
        return (DnsForwardReply *) list_take(&q->head);
}

static void reply_queue_push(DnsReplyQueue *q, uint64_t conn_id, const uint8_t *data, size_t len) {
        DnsForwardReply *r = malloc(sizeof *r + len);

        if (!r)
                return; /* the client times out, as on a lost datagram */
        r->conn_id = conn_id;
        r->len = len;
        memcpy(r->data, data, len);
        if (list_push(&q->head, (Node *) r))
                eventfd_wake(q->fd);
}

/* --- addresses ------------------------------------------------------------------ */

int dns_forward_parse_address(const char *s, uint16_t default_port, struct sockaddr_storage *ret, socklen_t *ret_len) {
        char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        const char *port_s = NULL, *scope;
        unsigned long port = default_port;
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        size_t n;

        if (!s || !ret || !ret_len)
                return -EINVAL;
        *ret = (struct sockaddr_storage) {};

        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || (end[1] != 0 && end[1] != ':') || (size_t) (end - s - 1) >= sizeof host)
                        return -EINVAL;
                memcpy(host, s + 1, end - s - 1);
                host[end - s - 1] = 0;
                if (end[1] == ':')
                        port_s = end + 2;
                if (!strchr(host, ':'))
                        return -EINVAL; /* brackets are for IPv6 */
        } else {
                const char *colon = strchr(s, ':');
                if (colon && !strchr(colon + 1, ':')) {
                        /* One colon: IPv4:PORT. */
                        n = colon - s;
                        port_s = colon + 1;
                } else
                        n = strlen(s);
                if (n >= sizeof host)
                        return -EINVAL;
                memcpy(host, s, n);
                host[n] = 0;
        }

        if (port_s) {
                char *e;
                if (!*port_s || *port_s < '0' || *port_s > '9')
                        return -EINVAL;
                errno = 0;
                port = strtoul(port_s, &e, 10);
                if (errno != 0 || *e != 0 || port == 0 || port > 65535)
                        return -EINVAL;
        }

        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                *ret_len = sizeof *in;
                return 0;
        }

        scope = strchr(host, '%');
        if (scope)
                host[scope - host] = 0;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
                return -EINVAL;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t) port);
        if (scope) {
                in6->sin6_scope_id = if_nametoindex(scope + 1);
                if (in6->sin6_scope_id == 0) {
                        char *e;
                        unsigned long v = strtoul(scope + 1, &e, 10);
                        if (!scope[1] || *e != 0 || v == 0 || v > UINT32_MAX)
                                return -EINVAL;
                        in6->sin6_scope_id = (uint32_t) v;
                }
        }
        *ret_len = sizeof *in6;
        return 0;
}

void dns_forward_format_address(const struct sockaddr *sa, char *buf, size_t size) {
        char a[INET6_ADDRSTRLEN];

        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                (void) inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
                (void) snprintf(buf, size, "%s:%u", a, ntohs(in->sin_port));
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                char ifname[IF_NAMESIZE] = "";
                (void) inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
                if (in6->sin6_scope_id && !if_indextoname(in6->sin6_scope_id, ifname))
                        (void) snprintf(ifname, sizeof ifname, "%u", in6->sin6_scope_id);
                (void) snprintf(buf, size, "[%s%s%s]:%u", a, ifname[0] ? "%" : "", ifname, ntohs(in6->sin6_port));
        } else
                (void) snprintf(buf, size, "(family %i)", sa->sa_family);
}

void dns_format_client_address(const struct sockaddr *sa, char *buf, size_t size) {
        buf[0] = 0;
        if (sa->sa_family == AF_INET)
                (void) inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, buf, (socklen_t) size);
        else if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a6))
                        (void) inet_ntop(AF_INET, &a6->s6_addr[12], buf, (socklen_t) size);
                else
                        (void) inet_ntop(AF_INET6, a6, buf, (socklen_t) size);
        }
}

static bool sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b) {
        if (a->sa_family != b->sa_family)
                return false;
        if (a->sa_family == AF_INET) {
                const struct sockaddr_in *x = (const void *) a, *y = (const void *) b;
                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        if (a->sa_family == AF_INET6) {
                const struct sockaddr_in6 *x = (const void *) a, *y = (const void *) b;
                return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
        }
        return false;
}

/* --- ForwardAllow ----------------------------------------------------------------- */

static void prefix_clear_host_bits(DnsAllowPrefix *p) {
        size_t bytes = p->family == AF_INET ? 4 : 16;

        for (size_t i = 0; i < bytes; i++) {
                unsigned keep = p->bits > i * 8 ? MIN(8u, p->bits - i * 8u) : 0;
                p->addr[i] &= (uint8_t) (0xff00u >> keep);
        }
}

int dns_allow_parse(const char *s, DnsAllowPrefix *ret) {
        char host[INET6_ADDRSTRLEN];
        const char *slash;
        unsigned long bits;
        size_t n;

        if (!s || !ret)
                return -EINVAL;
        *ret = (DnsAllowPrefix) {};
        slash = strchr(s, '/');
        n = slash ? (size_t) (slash - s) : strlen(s);
        if (n == 0 || n >= sizeof host)
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = 0;
        if (inet_pton(AF_INET, host, ret->addr) == 1)
                ret->family = AF_INET;
        else if (inet_pton(AF_INET6, host, ret->addr) == 1)
                ret->family = AF_INET6;
        else
                return -EINVAL;

        bits = ret->family == AF_INET ? 32 : 128;
        if (slash) {
                char *e;
                unsigned long max = bits;
                if (slash[1] < '0' || slash[1] > '9')
                        return -EINVAL;
                errno = 0;
                bits = strtoul(slash + 1, &e, 10);
                if (errno != 0 || *e != 0 || bits > max)
                        return -EINVAL;
        }
        ret->bits = (uint8_t) bits;
        prefix_clear_host_bits(ret);
        return 0;
}

void dns_allow_format(const DnsAllowPrefix *p, char *buf, size_t size) {
        char a[INET6_ADDRSTRLEN] = "?";

        (void) inet_ntop(p->family, p->addr, a, sizeof a);
        (void) snprintf(buf, size, "%s/%u", a, p->bits);
}

static bool prefix_contains(const DnsAllowPrefix *p, int family, const uint8_t *addr) {
        unsigned full = p->bits / 8, rest = p->bits % 8;

        if (p->family != family)
                return false;
        if (memcmp(p->addr, addr, full) != 0)
                return false;
        return rest == 0 || ((p->addr[full] ^ addr[full]) & (uint8_t) (0xff00u >> rest)) == 0;
}

bool dns_allow_match(const DnsAllowPrefix *list, size_t n, const struct sockaddr *sa) {
        const uint8_t *addr;
        int family;

        if (!sa)
                return false;
        if (sa->sa_family == AF_INET) {
                family = AF_INET;
                addr = (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr;
        } else if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        family = AF_INET;
                        addr = a6->s6_addr + 12;
                } else {
                        family = AF_INET6;
                        addr = a6->s6_addr;
                }
        } else
                return false;

        for (size_t i = 0; i < n; i++)
                if (prefix_contains(list + i, family, addr))
                        return true;
        return false;
}

static unsigned netmask_bits(const uint8_t *m, size_t bytes) {
        unsigned bits = 0;

        for (size_t i = 0; i < bytes; i++) {
                uint8_t b = m[i];
                while (b & 0x80) {
                        bits++;
                        b <<= 1;
                }
                if (m[i] != 0xff)
                        break;
        }
        return bits;
}

int dns_allow_default(DnsAllowPrefix **ret, size_t *ret_n) {
        struct ifaddrs *list = NULL;
        DnsAllowPrefix *a;
        size_t n = 0, allocated = 2;

        if (!ret || !ret_n)
                return -EINVAL;
        a = g_new0(DnsAllowPrefix, allocated);
        (void) dns_allow_parse("127.0.0.0/8", a + n++);
        (void) dns_allow_parse("::1/128", a + n++);

        if (getifaddrs(&list) < 0) {
                int r = negative_errno();
                g_free(a);
                return r;
        }
        for (struct ifaddrs *i = list; i; i = i->ifa_next) {
                DnsAllowPrefix p = {};
                bool dup = false;

                if (!i->ifa_addr || !i->ifa_netmask)
                        continue;
                if (i->ifa_addr->sa_family == AF_INET) {
                        p.family = AF_INET;
                        memcpy(p.addr, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, 4);
                        p.bits = (uint8_t) netmask_bits((uint8_t *) &((struct sockaddr_in *) i->ifa_netmask)->sin_addr,
                                                        4);
                } else if (i->ifa_addr->sa_family == AF_INET6) {
                        p.family = AF_INET6;
                        memcpy(p.addr, &((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr, 16);
                        p.bits = (uint8_t) netmask_bits(
                                (uint8_t *) &((struct sockaddr_in6 *) i->ifa_netmask)->sin6_addr, 16);
                } else
                        continue;
                prefix_clear_host_bits(&p);
                for (size_t k = 0; k < n && !dup; k++)
                        dup = a[k].family == p.family && a[k].bits == p.bits && memcmp(a[k].addr, p.addr, 16) == 0;
                if (dup)
                        continue;
                if (n == allocated) {
                        allocated *= 2;
                        a = g_renew(DnsAllowPrefix, a, allocated);
                }
                a[n++] = p;
        }
        freeifaddrs(list);
        *ret = a;
        *ret_n = n;
        return 0;
}

/* --- messages ----------------------------------------------------------------------- */

/* Reads the question's name: plain labels only (no compression pointer in
 * a question: there is nothing before it to point to). */
static const uint8_t *read_question_name(Wire *r, size_t *ret_len) {
        size_t start = wire_offset(r);

        for (;;) {
                uint8_t l = wire_read_u8(r);

                if (!wire_ok(r))
                        return NULL;
                if (l == 0)
                        break;
                if (l > 63 || wire_offset(r) - start + l + 1 > DNS_WIRE_NAME_MAX) {
                        wire_fail(r, -EBADMSG);
                        return NULL;
                }
                wire_skip(r, l);
        }
        *ret_len = wire_offset(r) - start;
        return r->buf + start;
}

int dns_forward_parse_query(const uint8_t *q, size_t len, DnsForwardQuery *ret) {
        Wire r = wire_init_const(q, len);
        const uint8_t *name;
        unsigned an, ns, ar;
        uint8_t key_flags = 0;
        uint16_t id, flags, type, class;
        size_t name_len = 0;

        if (!q || !ret)
                return -EBADMSG;
        id = wire_read_u16(&r);
        flags = wire_read_u16(&r);
        if (!wire_ok(&r) || (flags & DNS_FLAG_QR) || (flags & DNS_OPCODE_MASK) || wire_read_u16(&r) != 1)
                return -EBADMSG;
        an = wire_read_u16(&r);
        ns = wire_read_u16(&r);
        ar = wire_read_u16(&r);
        name = read_question_name(&r, &name_len);
        type = wire_read_u16(&r);
        class = wire_read_u16(&r);
        if (!wire_ok(&r))
                return -EBADMSG;

        *ret = (DnsForwardQuery) {
                .id = id,
                .flags = flags,
                .question_len = wire_offset(&r) - DNS_HEADER_SIZE,
                .payload = DNS_UDP_PAYLOAD_DEFAULT,
        };

        /* EDNS: the OPT record in the additional section, if any. */
        for (unsigned i = 0; i < an + ns + ar && wire_ok(&r); i++) {
                size_t start = wire_offset(&r);
                uint16_t rtype, rclass, rdlen;
                uint32_t ttl;

                dns_name_skip(&r);
                bool root_owner = wire_offset(&r) == start + 1;
                rtype = wire_read_u16(&r);
                rclass = wire_read_u16(&r);
                ttl = wire_read_u32(&r);
                rdlen = wire_read_u16(&r);
                wire_skip(&r, rdlen);
                if (wire_ok(&r) && i >= an + ns && rtype == DNS_TYPE_OPT && root_owner) {
                        ret->edns = true;
                        ret->payload = MAX(rclass, (uint16_t) DNS_UDP_PAYLOAD_DEFAULT);
                        if (ttl & 0x8000) /* DO, in the OPT's TTL field */
                                key_flags |= DNS_CACHE_KEY_DO;
                }
        }
        if (!wire_ok(&r))
                return -EBADMSG;
        if (flags & DNS_FLAG_CD)
                key_flags |= DNS_CACHE_KEY_CD;

        return dns_cache_key_init(&ret->key, name, name_len, type, class, key_flags) < 0 ? -EBADMSG : 0;
}

size_t dns_forward_build_query(const DnsCacheKey *key, uint16_t id, uint8_t *out, size_t out_size) {
        Wire w = wire_init(out, out_size);

        wire_write_u16(&w, id);
        wire_write_u16(&w, DNS_FLAG_RD | ((key->flags & DNS_CACHE_KEY_CD) ? DNS_FLAG_CD : 0));
        wire_write_u16(&w, 1); /* QDCOUNT */
        wire_write_u16(&w, 0);
        wire_write_u16(&w, 0);
        wire_write_u16(&w, 1); /* ARCOUNT: our OPT */
        wire_write(&w, key->name, key->name_len);
        wire_write_u16(&w, key->type);
        wire_write_u16(&w, key->class);
        /* OPT: root owner, our payload size, DO as the client asked. */
        wire_write_u8(&w, 0);
        wire_write_u16(&w, DNS_TYPE_OPT);
        wire_write_u16(&w, DNS_EDNS_PAYLOAD_OURS);
        wire_write_u32(&w, (key->flags & DNS_CACHE_KEY_DO) ? 0x8000 : 0);
        wire_write_u16(&w, 0);
        return wire_ok(&w) ? wire_offset(&w) : 0;
}

int dns_forward_check_reply(const DnsCacheKey *key, uint16_t id, const struct sockaddr *expected,
                            const struct sockaddr *from, const uint8_t *reply, size_t len) {
        Wire r = wire_init_const(reply, len);
        const uint8_t *name;
        size_t name_len = 0;
        uint16_t rid, flags, type, class;

        if (!key || !expected || !from || !reply)
                return -EINVAL;
        if (!sockaddr_equal(expected, from))
                return -ESRCH;
        rid = wire_read_u16(&r);
        flags = wire_read_u16(&r);
        if (!wire_ok(&r) || !(flags & DNS_FLAG_QR))
                return -EBADMSG;
        if (rid != id || (flags & DNS_OPCODE_MASK) || wire_read_u16(&r) != 1)
                return -ENOMSG;
        wire_skip(&r, 6); /* AN, NS, AR counts */
        name = read_question_name(&r, &name_len);
        type = wire_read_u16(&r);
        class = wire_read_u16(&r);
        if (!wire_ok(&r))
                return -EBADMSG;
        /* The question, without regard to case: the name's labels fall at
         * the same offsets when the lengths match. */
        if (name_len != key->name_len || type != key->type || class != key->class)
                return -ENOMSG;
        for (size_t i = 0; i < name_len; i++)
                if (ascii_lower(name[i]) != key->name[i])
                        return -ENOMSG;
        return 0;
}

int dns_forward_parse_resolv_conf(const char *text, char ***ret) {
        g_auto(GStrv) lines = NULL;
        GPtrArray *a;

        if (!text || !ret)
                return -EINVAL;
        lines = g_strsplit(text, "\n", -1);
        a = g_ptr_array_new();
        for (char **l = lines; *l; l++) {
                g_auto(GStrv) words = NULL;
                char *c = strpbrk(*l, "#;");

                if (c)
                        *c = 0;
                words = g_strsplit_set(g_strstrip(*l), " \t", -1);
                /* "nameserver ADDR": blanks between may repeat, giving empty words. */
                if (!words[0] || !streq(words[0], "nameserver"))
                        continue;
                for (char **w = words + 1; *w; w++)
                        if (**w) {
                                struct sockaddr_storage sa;
                                socklen_t l_sa;
                                if (dns_forward_parse_address(*w, 53, &sa, &l_sa) >= 0 && !strchr(*w, ']') &&
                                    (sa.ss_family == AF_INET6 || !strchr(*w, ':')))
                                        g_ptr_array_add(a, g_strdup(*w));
                                break;
                        }
        }
        if (a->len == 0) {
                g_ptr_array_free(a, TRUE);
                *ret = NULL;
                return 0;
        }
        g_ptr_array_add(a, NULL);
        *ret = (char **) g_ptr_array_free(a, FALSE);
        return 0;
}

/* --- the forwarder's state ---------------------------------------------------------- */

typedef struct Upstream {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char name[64];
        /* Statistics, atomics. */
        uint64_t queries, answers, failures, rtt_usec_sum, last_rtt_usec;
        bool failing;
} Upstream;

/* The upstreams of one configuration; transactions keep the set they
 * started with across a reload. */
typedef struct UpstreamSet {
        unsigned n_ref;     /* forwarder thread only */
        unsigned preferred; /* the last that answered */
        size_t n;
        Upstream items[];
} UpstreamSet;

typedef enum ItemKind {
        ITEM_QUERY,
        ITEM_RECONFIGURE,
        ITEM_QUIT,
} ItemKind;

typedef struct Transaction Transaction;

/* A handed-off question, and then a client waiting for its answer. */
typedef struct Item {
        Node node; /* first: the queue's link */
        ItemKind kind;
        struct Item *wnext; /* next waiter of the same transaction */

        /* ITEM_QUERY */
        DnsTransport transport;
        struct sockaddr_storage peer;
        socklen_t peer_len;
        int udp_fd;
        union {
                size_t align;
                uint8_t buf[CONTROL_MAX];
        } control;
        size_t control_len;
        DnsReplyQueue *replies;
        uint64_t conn_id;
        uint64_t received_nsec;
        DnsForwardQuery q;

        /* ITEM_RECONFIGURE */
        DnsForwardOptions opts;
        UpstreamSet *set;
        DnsAllowPrefix *allow;
        size_t n_allow;
        bool allow_default;

        size_t len;
        uint8_t query[];
} Item;

typedef struct Attempt {
        Transaction *t;
        struct Attempt *next;
        unsigned upstream;
        uint16_t id;
        bool tcp;
        bool connected;      /* TCP: connect() completed */
        bool sent;           /* TCP: the query is out, the reply is coming in */
        sd_event_source *io; /* owns the socket */
        uint64_t sent_usec;
        /* TCP: the framed query going out, then the reply coming in. */
        uint8_t *buf;
        size_t off, len;
} Attempt;

struct Transaction {
        DnsForwarder *f;
        DnsCacheKey key;
        UpstreamSet *set;
        Item *waiters;
        unsigned n_waiters;
        Attempt *attempts;
        unsigned n_started;
        uint32_t failed;   /* upstreams that failed or gave a non-answer, one bit each */
        uint32_t answered; /* upstreams that answered, one bit each */
        bool tcp;          /* attempts go over TCP */
        uint64_t start_usec, deadline_usec;
        sd_event_source *timer;
        DnsRelayMessage *fallback; /* an upstream's non-answer, relayed if nothing better comes */
};

struct DnsForwarder {
        pthread_t thread;
        bool thread_started;
        sd_event *event;
        int queue_fd;
        sd_event_source *queue_source;
        sd_event_source *flush_source;
        Node *queue_head;
        unsigned queued; /* atomic */

        /* Guarded by lock: written by the forwarder thread, read for status. */
        pthread_mutex_t lock;
        UpstreamSet *set;
        DnsAllowPrefix *allow;
        size_t n_allow;
        bool allow_default;
        bool enabled;
        uint32_t cache_size, max_ttl;

        /* Forwarder thread only. */
        uint64_t allow_refreshed_usec;
        DnsCache *cache;
        GHashTable *inflight; /* DnsCacheKey -> Transaction */
        uint8_t random[256];
        size_t random_left;
        uint8_t rbuf[DNS_TCP_MESSAGE_MAX + 2];
        uint8_t scratch[DNS_TCP_MESSAGE_MAX];

        /* UDP replies go out in batches, one sendmmsg per socket. */
        int batch_fd;
        unsigned n_batch;
        struct mmsghdr batch[UDP_BATCH];
        struct iovec batch_iov[UDP_BATCH];
        struct sockaddr_storage batch_peer[UDP_BATCH];
        union {
                size_t align;
                uint8_t buf[CONTROL_MAX];
        } batch_control[UDP_BATCH];
        uint8_t batch_buf[UDP_BATCH][DNS_EDNS_PAYLOAD_OURS];
        uint64_t batch_received[UDP_BATCH]; /* the queries' arrival, 0: not timed */

        DnsForwardCounters counters; /* atomics */
};

static guint inflight_hash(gconstpointer p) {
        return dns_cache_key_hash(p);
}

static gboolean inflight_equal(gconstpointer a, gconstpointer b) {
        return dns_cache_key_equal(a, b);
}

static void item_free(Item *it) {
        if (!it)
                return;
        dns_reply_queue_unref(it->replies);
        if (it->kind == ITEM_RECONFIGURE) {
                g_free(it->set);
                g_free(it->allow);
        }
        free(it);
}

static uint16_t random_u16(DnsForwarder *f) {
        uint16_t v;

        if (f->random_left < 2) {
                ssize_t k = getrandom(f->random, sizeof f->random, 0);
                if (k != (ssize_t) sizeof f->random) {
                        /* Cannot happen after boot on Linux; degrade, loudly. */
                        log_warning("getrandom() failed, upstream query IDs are weaker");
                        for (size_t i = 0; i < sizeof f->random; i++)
                                f->random[i] = (uint8_t) g_random_int();
                }
                f->random_left = sizeof f->random;
        }
        f->random_left -= 2;
        memcpy(&v, f->random + f->random_left, 2);
        return v;
}

static uint64_t now_usec(DnsForwarder *f) {
        uint64_t t = 0;
        (void) sd_event_now(f->event, CLOCK_MONOTONIC, &t);
        return t;
}

static UpstreamSet *set_unref(UpstreamSet *s) {
        if (s && --s->n_ref == 0)
                g_free(s);
        return NULL;
}

static int make_upstream_set(char **upstreams, UpstreamSet **ret) {
        size_t n = upstreams ? g_strv_length(upstreams) : 0;
        UpstreamSet *s;

        if (n > DNS_FORWARD_UPSTREAMS_MAX)
                return log_error_errno(-E2BIG, "Too many upstream DNS servers (%zu), at most %d are used.", n,
                                       DNS_FORWARD_UPSTREAMS_MAX);
        s = g_malloc0(sizeof(UpstreamSet) + n * sizeof(Upstream));
        s->n_ref = 1;
        s->n = n;
        for (size_t i = 0; i < n; i++) {
                Upstream *u = s->items + i;
                if (dns_forward_parse_address(upstreams[i], 53, &u->addr, &u->addr_len) < 0) {
                        g_free(s);
                        return log_error_errno(-EINVAL,
                                               "Upstream DNS server '%s' is not ADDRESS, IPv4:PORT or [IPv6]:PORT.",
                                               upstreams[i]);
                }
                dns_forward_format_address((struct sockaddr *) &u->addr, u->name, sizeof u->name);
        }
        *ret = s;
        return 0;
}

static bool sets_equal(const UpstreamSet *a, const UpstreamSet *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!sockaddr_equal((const struct sockaddr *) &a->items[i].addr,
                                    (const struct sockaddr *) &b->items[i].addr))
                        return false;
        return true;
}

static int make_allow(char **allow, DnsAllowPrefix **ret, size_t *ret_n, bool *ret_default) {
        size_t n = allow ? g_strv_length(allow) : 0;
        DnsAllowPrefix *a;

        if (!allow) {
                *ret_default = true;
                return dns_allow_default(ret, ret_n);
        }
        a = g_new0(DnsAllowPrefix, MAX(n, (size_t) 1));
        for (size_t i = 0; i < n; i++)
                if (dns_allow_parse(allow[i], a + i) < 0) {
                        g_free(a);
                        return log_error_errno(-EINVAL, "ForwardAllow entry '%s' is not ADDRESS or ADDRESS/PREFIXLEN.",
                                               allow[i]);
                }
        *ret = a;
        *ret_n = n;
        *ret_default = false;
        return 0;
}

/* --- replies to clients --------------------------------------------------------------- */

static void batch_flush(DnsForwarder *f) {
        unsigned done = 0;
        uint64_t now;

        while (done < f->n_batch) {
                int k = sendmmsg(f->batch_fd, f->batch + done, f->n_batch - done, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == ENOBUFS)
                                break; /* a full buffer drops them, as the network would */
                        log_debug_errno(negative_errno(), "Failed to send forwarded DNS reply: %m");
                        done++;
                        continue;
                }
                done += (unsigned) k;
        }
        /* One clock reading for the batch: the replies that went out. */
        now = done > 0 ? dns_duration_now_nsec() : 0;
        for (unsigned i = 0; i < done; i++)
                if (f->batch_received[i] > 0)
                        dns_duration_observe(&f->counters.duration[DNS_TRANSPORT_UDP], f->batch_received[i], now, 1);
        f->n_batch = 0;
}

static int on_flush(sd_event_source *s, void *userdata) {
        DnsForwarder *f = userdata;

        if (f->n_batch > 0)
                batch_flush(f);
        return 0;
}

/* The forwarded query's line, at debug level only, with the fields of the
 * DNS server's query line (JOYRIDE_NAME, _TYPE, _RCODE, _CLIENT). */
static void log_reply(const Item *w, const uint8_t *reply, size_t len, const char *how) {
        char name[1024] = "?", from[80] = "?", client[INET6_ADDRSTRLEN] = "", type[16], rcode[16];
        const struct sockaddr *sa = (const struct sockaddr *) &w->peer;
        const char *rc;
        bool named;
        LogFields f;

        if (log_get_max_level() < LOG_DEBUG)
                return;
        named = dns_wire_to_name(w->q.key.name, w->q.key.name_len, name, sizeof name) >= 0;
        if (!named)
                strcpy(name, "?");
        dns_forward_format_address(sa, from, sizeof from);
        dns_format_client_address(sa, client, sizeof client);
        if (dns_type_to_string(w->q.key.type))
                snprintf(type, sizeof type, "%s", dns_type_to_string(w->q.key.type));
        else
                snprintf(type, sizeof type, "TYPE%u", w->q.key.type);
        rc = dns_rcode_format(len >= 4 ? reply[3] & 0x0f : 0, rcode);

        log_fields_init(&f);
        if (named)
                log_fields_add(&f, "JOYRIDE_NAME=%s", name[0] ? name : ".");
        log_fields_add(&f, "JOYRIDE_TYPE=%s", type);
        log_fields_add(&f, "JOYRIDE_RCODE=%s", rc);
        if (client[0])
                log_fields_add(&f, "JOYRIDE_CLIENT=%s", client);
        log_struct_journal(LOG_DEBUG, f.v, "Forwarded %s%s %s from %s over %s: %s (%s), %zu bytes", name,
                           name[0] ? "." : "", type, from, w->transport == DNS_TRANSPORT_UDP ? "UDP" : "TCP", rc, how,
                           len);
}

/* Sends a reply: either m (aged by age) or, when m is NULL, an error with
 * rcode (RA set when ra). */
static void client_reply(DnsForwarder *f, Item *w, const DnsRelayMessage *m, uint32_t age, uint8_t rcode, bool ra,
                         const char *how) {
        DnsRelayClient c = {
                .id = w->q.id,
                .flags = w->q.flags,
                .question = w->query + DNS_HEADER_SIZE,
                .question_len = w->q.question_len,
                .edns = w->q.edns,
                .edns_do = w->q.key.flags & DNS_CACHE_KEY_DO,
        };
        uint8_t *buf;
        size_t n;

        if (w->transport == DNS_TRANSPORT_UDP) {
                if (f->n_batch > 0 && (f->batch_fd != w->udp_fd || f->n_batch == UDP_BATCH))
                        batch_flush(f);
                c.limit = MIN((size_t) w->q.payload, (size_t) DNS_EDNS_PAYLOAD_OURS);
                buf = f->batch_buf[f->n_batch];
        } else {
                c.limit = DNS_TCP_MESSAGE_MAX;
                buf = f->scratch;
        }

        n = m ? dns_relay_build(m, age, &c, buf, c.limit) : 0;
        if (n == 0)
                n = dns_relay_build_error(m ? DNS_RCODE_SERVFAIL : rcode, ra, &c, buf, c.limit);
        if (n == 0)
                return;
        INC(f->counters.by_rcode[buf[3] & 0x0f]);
        log_reply(w, buf, n, how);

        if (w->transport == DNS_TRANSPORT_TCP) {
                reply_queue_push(w->replies, w->conn_id, buf, n);
                if (w->received_nsec > 0)
                        dns_duration_observe(&f->counters.duration[DNS_TRANSPORT_TCP], w->received_nsec,
                                             dns_duration_now_nsec(), 1);
                return;
        }

        unsigned i = f->n_batch++;
        f->batch_fd = w->udp_fd;
        f->batch_received[i] = w->received_nsec;
        memcpy(&f->batch_peer[i], &w->peer, w->peer_len);
        memcpy(f->batch_control[i].buf, w->control.buf, w->control_len);
        f->batch_iov[i] = (struct iovec) { .iov_base = buf, .iov_len = n };
        f->batch[i] = (struct mmsghdr) {
                .msg_hdr = {
                        .msg_name = &f->batch_peer[i],
                        .msg_namelen = w->peer_len,
                        .msg_iov = &f->batch_iov[i],
                        .msg_iovlen = 1,
                        .msg_control = w->control_len > 0 ? f->batch_control[i].buf : NULL,
                        .msg_controllen = w->control_len,
                },
        };
}

/* --- transactions ----------------------------------------------------------------------- */

static void attempt_free(Attempt *a) {
        if (!a)
                return;
        sd_event_source_disable_unref(a->io);
        free(a->buf);
        free(a);
}

static void attempt_unlink(Attempt *a) {
        for (Attempt **p = &a->t->attempts; *p; p = &(*p)->next)
                if (*p == a) {
                        *p = a->next;
                        break;
                }
        attempt_free(a);
}

static void upstream_failed(DnsForwarder *f, Upstream *u, int error) {
        INC(u->failures);
        INC(f->counters.upstream_failures);
        if (!GET(u->failing)) {
                SET(u->failing, true);
                if (error == -ETIMEDOUT)
                        log_warning("Upstream DNS server %s did not answer in time.", u->name);
                else
                        log_warning_errno(error, "Upstream DNS server %s failed: %m", u->name);
        }
}

static void upstream_answered(Upstream *u, uint64_t rtt) {
        INC(u->answers);
        ADD(u->rtt_usec_sum, rtt);
        SET(u->last_rtt_usec, rtt);
        if (GET(u->failing)) {
                SET(u->failing, false);
                log_info("Upstream DNS server %s answers again.", u->name);
        }
}

static void transaction_free(Transaction *t) {
        DnsForwarder *f = t->f;
        uint64_t now = now_usec(f);

        g_hash_table_remove(f->inflight, &t->key);
        while (t->attempts) {
                Attempt *a = t->attempts;
                /* Still open at the end and past its interval, from an
                 * upstream that did not answer otherwise: it timed out. */
                if (now >= a->sent_usec + ATTEMPT_INTERVAL_USEC && !(t->answered & (1u << a->upstream)))
                        upstream_failed(f, t->set->items + a->upstream, -ETIMEDOUT);
                t->attempts = a->next;
                attempt_free(a);
        }
        while (t->waiters) {
                Item *w = t->waiters;
                t->waiters = w->wnext;
                item_free(w);
        }
        sd_event_source_disable_unref(t->timer);
        dns_relay_message_free(t->fallback);
        set_unref(t->set);
        free(t);
}

/* Answers every waiter with m (NULL: SERVFAIL) and ends the transaction.
 * Takes ownership of m. good: m is an answer worth caching. */
static void transaction_finish(Transaction *t, DnsRelayMessage *m, bool good) {
        DnsForwarder *f = t->f;
        uint64_t now = now_usec(f);

        if (m && m == t->fallback)
                t->fallback = NULL;
        if (!m)
                INC(f->counters.servfail);
        else if (good) {
                ADD(f->counters.latency_usec_sum, now - t->start_usec);
                INC(f->counters.latency_count);
        }
        for (Item *w = t->waiters; w; w = w->wnext)
                client_reply(f, w, m, 0, DNS_RCODE_SERVFAIL, true, m ? "upstream" : "no upstream answered");

        if (m && good && f->cache) {
                (void) dns_cache_put(f->cache, &t->key, m, now);
                SET(f->counters.cache_entries, dns_cache_entries(f->cache));
                SET(f->counters.cache_bytes, dns_cache_bytes(f->cache));
        } else
                dns_relay_message_free(m);
        transaction_free(t);
}

static int pick_upstream(Transaction *t) {
        size_t n = t->set->n;

        for (size_t k = 0; k < n; k++) {
                unsigned i = (unsigned) ((t->set->preferred + t->n_started + k) % n);
                if (!(t->failed & (1u << i)))
                        return (int) i;
        }
        return -1;
}

static int attempt_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int attempt_start(Transaction *t, unsigned upstream, bool tcp);

/* After an attempt ended without an answer: try the next upstream now if
 * none is pending; with every upstream failed, give up. */
static void transaction_next(Transaction *t) {
        int i;

        if (t->attempts)
                return; /* others may still answer; the timer goes on */
        while ((i = pick_upstream(t)) >= 0)
                if (attempt_start(t, (unsigned) i, t->tcp) >= 0)
                        return;
        transaction_finish(t, t->fallback, false);
}

static void attempt_failed(Attempt *a, int error) {
        Transaction *t = a->t;

        upstream_failed(t->f, t->set->items + a->upstream, error);
        t->failed |= 1u << a->upstream;
        attempt_unlink(a);
        transaction_next(t);
}

static void attempt_answered(Attempt *a, const uint8_t *msg, size_t len) {
        Transaction *t = a->t;
        DnsForwarder *f = t->f;
        Upstream *u = t->set->items + a->upstream;
        DnsRelayMessage *m = NULL;
        unsigned upstream = a->upstream;
        uint8_t rcode;
        int r;

        upstream_answered(u, now_usec(f) - a->sent_usec);
        t->answered |= 1u << upstream;
        r = dns_relay_message_new(msg, len, f->max_ttl, &m);
        if (r < 0) {
                log_debug("Upstream DNS server %s sent a reply that cannot be relayed, ignoring it.", u->name);
                attempt_failed(a, r);
                return;
        }

        if (dns_relay_message_truncated(m) && !a->tcp) {
                /* Too big for UDP: the same upstream over TCP. */
                dns_relay_message_free(m);
                attempt_unlink(a);
                t->tcp = true;
                if (attempt_start(t, upstream, true) < 0)
                        transaction_next(t);
                return;
        }

        rcode = dns_relay_message_rcode(m);
        if (rcode == DNS_RCODE_SERVFAIL || rcode == DNS_RCODE_REFUSED || rcode == DNS_RCODE_NOTIMP ||
            rcode == DNS_RCODE_FORMERR) {
                /* Not an answer about the name: another upstream may do better. */
                dns_relay_message_free(t->fallback);
                t->fallback = m;
                t->failed |= 1u << upstream;
                attempt_unlink(a);
                transaction_next(t);
                return;
        }

        t->set->preferred = upstream;
        attempt_unlink(a);
        transaction_finish(t, m, true);
}

static int attempt_read_udp(Attempt *a, int fd) {
        DnsForwarder *f = a->t->f;
        const Upstream *u = a->t->set->items + a->upstream;

        for (;;) {
                struct sockaddr_storage from = {};
                socklen_t from_len = sizeof from;
                ssize_t n = recvfrom(fd, f->rbuf, sizeof f->rbuf, MSG_DONTWAIT, (struct sockaddr *) &from, &from_len);
                int r;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        /* ICMP unreachable and friends, on a connected socket. */
                        attempt_failed(a, negative_errno());
                        return 0;
                }
                r = dns_forward_check_reply(&a->t->key, a->id, (const struct sockaddr *) &u->addr,
                                            (const struct sockaddr *) &from, f->rbuf, (size_t) n);
                if (r < 0) {
                        INC(f->counters.mismatched);
                        log_debug_errno(r, "Dropping a reply that does not match the query sent to %s: %m", u->name);
                        continue;
                }
                attempt_answered(a, f->rbuf, (size_t) n);
                return 0;
        }
}

/* TCP: connect, write the framed query, read the framed reply. */
static int attempt_io_tcp(Attempt *a, int fd, uint32_t revents) {
        const Upstream *u = a->t->set->items + a->upstream;
        DnsForwarder *f = a->t->f;
        int r;

        if (!a->connected) {
                int error = 0;
                socklen_t l = sizeof error;

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &l) < 0)
                        error = errno;
                if (error != 0) {
                        attempt_failed(a, -error);
                        return 0;
                }
                if (!(revents & EPOLLOUT))
                        return 0;
                a->connected = true;
        }

        if (!a->sent) {
                while (a->off < a->len) {
                        ssize_t k = send(fd, a->buf + a->off, a->len - a->off, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        return 0;
                                attempt_failed(a, negative_errno());
                                return 0;
                        }
                        a->off += (size_t) k;
                }
                /* The buffer now takes the reply: its length first. */
                a->sent = true;
                a->off = 0;
                a->len = 2;
                r = sd_event_source_set_io_events(a->io, EPOLLIN);
                if (r < 0) {
                        attempt_failed(a, r);
                        return 0;
                }
                return 0;
        }

        for (;;) {
                ssize_t k = recv(fd, a->buf + a->off, a->len - a->off, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        attempt_failed(a, negative_errno());
                        return 0;
                }
                if (k == 0) {
                        attempt_failed(a, -ECONNRESET);
                        return 0;
                }
                a->off += (size_t) k;
                if (a->off < a->len)
                        continue;
                if (a->len > 2)
                        break;
                /* The length is in: make room for the message. */
                size_t mlen = wire_get_u16(a->buf);
                uint8_t *b;
                if (mlen < DNS_HEADER_SIZE) {
                        attempt_failed(a, -EBADMSG);
                        return 0;
                }
                b = realloc(a->buf, 2 + mlen);
                if (!b) {
                        attempt_failed(a, -ENOMEM);
                        return 0;
                }
                a->buf = b;
                a->len = 2 + mlen;
        }

        /* The source is the connection's peer: only the ID and question
         * remain to be checked. */
        r = dns_forward_check_reply(&a->t->key, a->id, (const struct sockaddr *) &u->addr,
                                    (const struct sockaddr *) &u->addr, a->buf + 2, a->len - 2);
        if (r < 0) {
                INC(f->counters.mismatched);
                attempt_failed(a, r);
                return 0;
        }
        memcpy(f->rbuf, a->buf + 2, a->len - 2);
        attempt_answered(a, f->rbuf, a->len - 2);
        return 0;
}

static int attempt_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Attempt *a = userdata;

        if (a->tcp)
                return attempt_io_tcp(a, fd, revents);
        return attempt_read_udp(a, fd);
}

static int attempt_start(Transaction *t, unsigned upstream, bool tcp) {
        DnsForwarder *f = t->f;
        Upstream *u = t->set->items + upstream;
        _cleanup_close_ int fd = -EBADF;
        uint8_t q[DNS_HEADER_SIZE + DNS_WIRE_NAME_MAX + 4 + 11];
        Attempt *a;
        size_t n;
        int r;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->t = t;
        a->upstream = upstream;
        a->tcp = tcp;
        a->id = random_u16(f);
        a->sent_usec = now_usec(f);
        t->n_started++;
        INC(u->queries);
        INC(f->counters.upstream_queries);
        if (tcp)
                INC(f->counters.upstream_tcp);

        n = dns_forward_build_query(&t->key, a->id, q, sizeof q);
        fd = socket(u->addr.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = negative_errno();
                goto fail;
        }
        if (tcp) {
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                a->buf = malloc(2 + n);
                if (!a->buf) {
                        r = -ENOMEM;
                        goto fail;
                }
                wire_put_u16(a->buf, (uint16_t) n);
                memcpy(a->buf + 2, q, n);
                a->len = 2 + n;
        }
        /* Connected: the kernel gives a random source port and drops
         * datagrams from any other address or port. */
        if (connect(fd, (struct sockaddr *) &u->addr, u->addr_len) < 0 && errno != EINPROGRESS) {
                r = negative_errno();
                goto fail;
        }
        if (!tcp && send(fd, q, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                r = negative_errno();
                goto fail;
        }

        r = sd_event_add_io(f->event, &a->io, fd, tcp ? EPOLLOUT : EPOLLIN, attempt_on_io, a);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_io_fd_own(a->io, true);
        (void) sd_event_source_set_description(a->io, tcp ? "dns-forward-tcp" : "dns-forward-udp");
        TAKE_FD(fd);
        a->next = t->attempts;
        t->attempts = a;
        return 0;

fail:
        upstream_failed(f, u, r);
        t->failed |= 1u << upstream;
        attempt_free(a);
        return r;
}

static int transaction_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Transaction *t = userdata;
        int i;

        if (usec >= t->deadline_usec) {
                transaction_finish(t, t->fallback, false);
                return 0;
        }
        /* Another attempt, to the next upstream, while the others may still
         * answer. When every upstream failed, wait for those in flight. */
        i = pick_upstream(t);
        if (i >= 0)
                (void) attempt_start(t, (unsigned) i, t->tcp);
        if (!t->attempts) {
                transaction_next(t);
                return 0;
        }
        (void) sd_event_source_set_time(s, MIN(usec + ATTEMPT_INTERVAL_USEC, t->deadline_usec));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void transaction_new(DnsForwarder *f, Item *w) {
        Transaction *t;
        uint64_t now = now_usec(f);
        int r;

        t = calloc(1, sizeof *t);
        if (!t) {
                INC(f->counters.dropped);
                item_free(w);
                return;
        }
        t->f = f;
        t->key = w->q.key;
        t->set = f->set;
        t->set->n_ref++;
        t->tcp = w->transport == DNS_TRANSPORT_TCP;
        t->start_usec = now;
        t->deadline_usec = now + DEADLINE_USEC;
        t->waiters = w;
        t->n_waiters = 1;
        g_hash_table_insert(f->inflight, &t->key, t);

        r = sd_event_add_time(f->event, &t->timer, CLOCK_MONOTONIC, now + ATTEMPT_INTERVAL_USEC, USEC_PER_MSEC,
                              transaction_on_timer, t);
        if (r < 0) {
                transaction_finish(t, NULL, false);
                return;
        }
        (void) sd_event_source_set_description(t->timer, "dns-forward-timer");
        transaction_next(t);
}

/* --- handed-off questions ---------------------------------------------------------------- */

static bool client_allowed(DnsForwarder *f, const Item *w) {
        const struct sockaddr *peer = (const struct sockaddr *) &w->peer;
        uint64_t now;

        if (dns_allow_match(f->allow, f->n_allow, peer))
                return true;
        if (!f->allow_default)
                return false;
        /* A new interface (a Docker network made since) may hold the client:
         * look again, now and then. */
        now = now_usec(f);
        if (f->allow_refreshed_usec != 0 && now < f->allow_refreshed_usec + ALLOW_REFRESH_USEC)
                return false;
        f->allow_refreshed_usec = now;

        DnsAllowPrefix *a = NULL, *old;
        size_t n = 0;
        if (dns_allow_default(&a, &n) < 0)
                return false;
        pthread_mutex_lock(&f->lock);
        old = f->allow;
        f->allow = a;
        f->n_allow = n;
        pthread_mutex_unlock(&f->lock);
        g_free(old);
        return dns_allow_match(f->allow, f->n_allow, peer);
}

static void process_query(DnsForwarder *f, Item *w) {
        const DnsRelayMessage *m;
        Transaction *t;
        uint32_t age = 0;

        if (dns_forward_parse_query(w->query, w->len, &w->q) < 0) {
                item_free(w);
                return;
        }
        if (!f->enabled || !client_allowed(f, w)) {
                INC(f->counters.refused);
                client_reply(f, w, NULL, 0, DNS_RCODE_REFUSED, false,
                             f->enabled ? "client not in ForwardAllow" : "forwarding off");
                item_free(w);
                return;
        }
        if (f->set->n == 0) {
                INC(f->counters.servfail);
                client_reply(f, w, NULL, 0, DNS_RCODE_SERVFAIL, true, "no upstream servers");
                item_free(w);
                return;
        }

        if (f->cache) {
                m = dns_cache_get(f->cache, &w->q.key, now_usec(f), &age);
                SET(f->counters.cache_entries, dns_cache_entries(f->cache));
                SET(f->counters.cache_bytes, dns_cache_bytes(f->cache));
                if (m) {
                        INC(f->counters.cache_hits);
                        client_reply(f, w, m, age, 0, true, "cache");
                        item_free(w);
                        return;
                }
                INC(f->counters.cache_misses);
        }

        t = g_hash_table_lookup(f->inflight, &w->q.key);
        if (t) {
                if (t->n_waiters >= WAITERS_MAX) {
                        INC(f->counters.dropped);
                        item_free(w);
                        return;
                }
                INC(f->counters.coalesced);
                w->wnext = t->waiters;
                t->waiters = w;
                t->n_waiters++;
                return;
        }
        if (g_hash_table_size(f->inflight) >= INFLIGHT_MAX) {
                INC(f->counters.dropped);
                item_free(w);
                return;
        }
        transaction_new(f, w);
}

static void process_reconfigure(DnsForwarder *f, Item *it) {
        bool flush = false;
        UpstreamSet *old_set = NULL;
        DnsAllowPrefix *old_allow;

        pthread_mutex_lock(&f->lock);
        f->enabled = it->opts.enabled;
        if (!sets_equal(f->set, it->set)) {
                old_set = f->set;
                f->set = TAKE_PTR(it->set);
                flush = true;
        }
        old_allow = f->allow;
        f->allow = TAKE_PTR(it->allow);
        f->n_allow = it->n_allow;
        f->allow_default = it->allow_default;
        f->allow_refreshed_usec = now_usec(f);
        if (f->cache_size != it->opts.cache_size)
                flush = true;
        f->cache_size = it->opts.cache_size;
        if (f->max_ttl != it->opts.max_ttl)
                flush = true;
        f->max_ttl = it->opts.max_ttl;
        pthread_mutex_unlock(&f->lock);

        set_unref(old_set);
        g_free(old_allow);
        if (flush) {
                f->cache = dns_cache_free(f->cache);
                if (f->cache_size > 0)
                        (void) dns_cache_new(
                                &f->cache, f->cache_size,
                                MAX((size_t) f->cache_size * CACHE_BYTES_PER_ENTRY, (size_t) CACHE_BYTES_MIN));
                SET(f->counters.cache_entries, 0);
                SET(f->counters.cache_bytes, 0);
        }
}

static int on_queue(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        DnsForwarder *f = userdata;
        unsigned n = 0;

        eventfd_clear(fd);
        for (Node *node = list_take(&f->queue_head), *next; node; node = next) {
                Item *it = (Item *) node;

                next = node->next;
                switch (it->kind) {
                case ITEM_QUERY:
                        n++;
                        process_query(f, it);
                        break;
                case ITEM_RECONFIGURE:
                        process_reconfigure(f, it);
                        item_free(it);
                        break;
                case ITEM_QUIT:
                        (void) sd_event_exit(f->event, 0);
                        item_free(it);
                        break;
                }
        }
        __atomic_fetch_sub(&f->queued, n, __ATOMIC_RELAXED);
        return 0;
}

static void *forwarder_thread(void *userdata) {
        DnsForwarder *f = userdata;
        int r;

        r = sd_event_loop(f->event);
        if (r < 0)
                log_error_errno(r, "DNS forwarder loop failed: %m");
        return NULL;
}

/* --- public ------------------------------------------------------------------------------- */

int dns_forwarder_submit(DnsForwarder *f, const DnsForwardClient *c, const uint8_t *query, size_t len) {
        Item *it;

        if (!f || !c || !query || len < DNS_HEADER_SIZE || !c->peer || c->peer_len > sizeof(struct sockaddr_storage) ||
            c->control_len > CONTROL_MAX || (c->transport == DNS_TRANSPORT_TCP && !c->replies))
                return -EINVAL;
        if (__atomic_fetch_add(&f->queued, 1, __ATOMIC_RELAXED) >= QUEUE_MAX) {
                __atomic_fetch_sub(&f->queued, 1, __ATOMIC_RELAXED);
                INC(f->counters.dropped);
                return -ENOBUFS;
        }
        INC(f->counters.queries);

        it = malloc(sizeof *it + len);
        if (!it) {
                __atomic_fetch_sub(&f->queued, 1, __ATOMIC_RELAXED);
                return -ENOBUFS;
        }
        /* Only what the forwarder reads: the query is parsed on its thread. */
        it->kind = ITEM_QUERY;
        it->wnext = NULL;
        it->transport = c->transport;
        memcpy(&it->peer, c->peer, c->peer_len);
        it->peer_len = c->peer_len;
        it->udp_fd = c->udp_fd;
        it->control_len = c->control_len;
        if (c->control_len > 0)
                memcpy(it->control.buf, c->control, c->control_len);
        it->replies = dns_reply_queue_ref(c->replies);
        it->conn_id = c->conn_id;
        it->received_nsec = c->received_nsec;
        it->len = len;
        memcpy(it->query, query, len);

        if (list_push(&f->queue_head, &it->node))
                eventfd_wake(f->queue_fd);
        return 0;
}

static Item *item_new(ItemKind kind) {
        Item *it = calloc(1, sizeof(Item));
        if (it)
                it->kind = kind;
        return it;
}

static int prepare_reconfigure(const DnsForwardOptions *opts, Item **ret) {
        Item *it = item_new(ITEM_RECONFIGURE);
        int r;

        if (!it)
                return -ENOMEM;
        it->opts = (DnsForwardOptions) {
                .enabled = opts->enabled,
                .cache_size = opts->cache_size,
                .max_ttl = opts->max_ttl,
        };
        r = make_upstream_set(opts->enabled ? opts->upstreams : NULL, &it->set);
        if (r >= 0)
                r = make_allow(opts->allow, &it->allow, &it->n_allow, &it->allow_default);
        if (r < 0) {
                item_free(it);
                return r;
        }
        *ret = it;
        return 0;
}

int dns_forwarder_new(DnsForwarder **ret, const DnsForwardOptions *opts) {
        _cleanup_(dns_forwarder_freep) DnsForwarder *f = NULL;
        Item *it = NULL;
        sigset_t all, saved;
        int r;

        if (!ret || !opts)
                return -EINVAL;

        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->queue_fd = -EBADF;
        f->batch_fd = -EBADF;
        pthread_mutex_init(&f->lock, NULL);
        f->inflight = g_hash_table_new(inflight_hash, inflight_equal);
        f->set = g_malloc0(sizeof(UpstreamSet));
        f->set->n_ref = 1;

        /* The first configuration goes through the same path as a reload. */
        r = prepare_reconfigure(opts, &it);
        if (r < 0)
                return r;

        r = sd_event_new(&f->event);
        if (r < 0) {
                item_free(it);
                return log_error_errno(r, "Failed to allocate the DNS forwarder's event loop: %m");
        }
        process_reconfigure(f, it);
        item_free(it);

        f->queue_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (f->queue_fd < 0)
                return log_error_errno(negative_errno(), "Failed to make the DNS forwarder's eventfd: %m");
        r = sd_event_add_io(f->event, &f->queue_source, f->queue_fd, EPOLLIN, on_queue, f);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the DNS forwarder's queue: %m");
        (void) sd_event_source_set_description(f->queue_source, "dns-forward-queue");
        r = sd_event_add_post(f->event, &f->flush_source, on_flush, f);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the DNS forwarder's reply batches: %m");
        (void) sd_event_source_set_description(f->flush_source, "dns-forward-flush");

        /* The control loop handles the signals: none for this thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&f->thread, NULL, forwarder_thread, f);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to start the DNS forwarder thread: %m");
        f->thread_started = true;
        (void) pthread_setname_np(f->thread, "joyride-fwd");

        *ret = TAKE_PTR(f);
        return 0;
}

int dns_forwarder_reconfigure(DnsForwarder *f, const DnsForwardOptions *opts) {
        Item *it = NULL;
        int r;

        if (!f || !opts)
                return -EINVAL;
        r = prepare_reconfigure(opts, &it);
        if (r < 0)
                return r;
        if (list_push(&f->queue_head, &it->node))
                eventfd_wake(f->queue_fd);
        return 0;
}

DnsForwarder *dns_forwarder_free(DnsForwarder *f) {
        GHashTableIter iter;
        gpointer v;

        if (!f)
                return NULL;
        if (f->thread_started) {
                Item *quit = item_new(ITEM_QUIT);
                if (quit && list_push(&f->queue_head, &quit->node))
                        eventfd_wake(f->queue_fd);
                if (!quit)
                        log_warning("Out of memory stopping the DNS forwarder.");
                else
                        (void) pthread_join(f->thread, NULL);
        }

        /* The thread is gone: everything is ours. */
        if (f->inflight) {
                g_hash_table_iter_init(&iter, f->inflight);
                while (g_hash_table_iter_next(&iter, NULL, &v)) {
                        g_hash_table_iter_steal(&iter);
                        ((Transaction *) v)->f = f;
                        transaction_free(v);
                }
                g_hash_table_destroy(f->inflight);
        }
        for (Node *n = list_take(&f->queue_head), *next; n; n = next) {
                next = n->next;
                item_free((Item *) n);
        }
        f->queue_source = sd_event_source_disable_unref(f->queue_source);
        f->flush_source = sd_event_source_disable_unref(f->flush_source);
        safe_close(f->queue_fd);
        f->event = sd_event_unref(f->event);
        dns_cache_free(f->cache);
        set_unref(f->set);
        g_free(f->allow);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return NULL;
}

int dns_forwarder_get_status(DnsForwarder *f, DnsForwardStatus *ret) {
        const DnsForwardCounters *c;
        GPtrArray *allow;

        if (!f || !ret)
                return -EINVAL;
        *ret = (DnsForwardStatus) {};
        c = &f->counters;
#define COPY(field) ret->counters.field = GET(c->field)
        COPY(queries);
        COPY(refused);
        COPY(cache_hits);
        COPY(cache_misses);
        COPY(coalesced);
        COPY(upstream_queries);
        COPY(upstream_tcp);
        COPY(upstream_failures);
        COPY(servfail);
        COPY(mismatched);
        COPY(dropped);
        COPY(latency_usec_sum);
        COPY(latency_count);
        COPY(cache_entries);
        COPY(cache_bytes);
        for (size_t i = 0; i < ELEMENTSOF(c->by_rcode); i++)
                COPY(by_rcode[i]);
#undef COPY
        for (size_t i = 0; i < ELEMENTSOF(c->duration); i++)
                dns_duration_add(&ret->counters.duration[i], &c->duration[i]);

        allow = g_ptr_array_new();
        pthread_mutex_lock(&f->lock);
        ret->enabled = f->enabled;
        ret->cache_size = f->cache_size;
        ret->max_ttl = f->max_ttl;
        ret->allow_default = f->allow_default;
        ret->n_upstreams = f->set->n;
        ret->upstreams = g_new0(DnsForwardUpstreamStatus, MAX(f->set->n, (size_t) 1));
        for (size_t i = 0; i < f->set->n; i++) {
                Upstream *u = f->set->items + i;
                DnsForwardUpstreamStatus *s = ret->upstreams + i;

                memcpy(s->address, u->name, sizeof s->address);
                s->queries = GET(u->queries);
                s->answers = GET(u->answers);
                s->failures = GET(u->failures);
                s->rtt_usec_sum = GET(u->rtt_usec_sum);
                s->last_rtt_usec = GET(u->last_rtt_usec);
                s->failing = GET(u->failing);
        }
        for (size_t i = 0; i < f->n_allow; i++) {
                char buf[INET6_ADDRSTRLEN + 8];
                dns_allow_format(f->allow + i, buf, sizeof buf);
                g_ptr_array_add(allow, g_strdup(buf));
        }
        pthread_mutex_unlock(&f->lock);
        g_ptr_array_add(allow, NULL);
        ret->allow = (char **) g_ptr_array_free(allow, FALSE);
        return 0;
}

void dns_forward_status_done(DnsForwardStatus *s) {
        if (!s)
                return;
        g_free(s->upstreams);
        g_strfreev(s->allow);
        *s = (DnsForwardStatus) {};
}
