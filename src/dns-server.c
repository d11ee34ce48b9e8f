/* SPDX-License-Identifier: MIT */
/* DNS transports on sd-event. This file only moves bytes: UDP queries are
 * read in batches with recvmmsg() and answered with sendmmsg(), TCP
 * connections carry 2-byte length-prefixed messages, several per connection.
 * dns_answer() turns each request into its reply; questions about names that
 * are not ours go to the forwarder when there is one (see "forwarding"
 * below), which replies on its own thread.
 *
 * Everything runs on the event loop thread; nothing here blocks. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dns-server.h"
#include "log.h"
#include "macro.h"

/* recvmmsg() batch, and how many batches one wakeup may handle before going
 * back to the loop, so a UDP flood does not starve TCP clients. */
#define UDP_BATCH 32
#define UDP_BATCHES_PER_WAKEUP 8
/* Queries larger than this are dropped: a query is a header, one question and
 * an OPT record, so anything near this size is not a real query. */
#define UDP_QUERY_MAX 4096
#define UDP_RCVBUF_WANTED (4 * 1024 * 1024)

#define TCP_ACCEPT_PER_WAKEUP 64
#define TCP_READ_BUFFER_INITIAL 1024
#define TCP_LISTEN_BACKLOG 128

#define new0(t, n) ((t *) calloc((n), sizeof(t)))

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* The peer went away; not worth a log line. */
static bool errno_is_disconnect(int r) {
        return r == -ECONNRESET || r == -EPIPE || r == -ECONNABORTED || r == -ETIMEDOUT ||
                r == -EHOSTUNREACH || r == -ENETUNREACH;
}

/* Room for an IPV6_PKTINFO and an IP_PKTINFO control message, aligned as
 * struct cmsghdr is (which cannot be a member: it ends in a flexible array). */
typedef union PktInfoControl {
        size_t align;
        uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
} PktInfoControl;

/* One message of a UDP batch. Allocated once per server, reused for every
 * batch, so the UDP path does not allocate per query. The reply buffer caps
 * UDP replies at what we advertise (1232, DNS flag day 2020) even when a
 * client offers more, so answers are not fragmented; larger ones get TC. */
typedef struct UdpSlot {
        uint8_t query[UDP_QUERY_MAX];
        uint8_t reply[DNS_EDNS_PAYLOAD_OURS];
        struct sockaddr_storage peer;
        struct iovec iov_in, iov_out;
        PktInfoControl control_in, control_out;
} UdpSlot;

typedef struct DnsTcpConnection DnsTcpConnection;

struct DnsTcpConnection {
        DnsServer *server;
        int fd;
        sd_event_source *io_source;
        sd_event_source *timer_source;

        /* Input: bytes in rbuf[roff..rlen) are received but not yet answered. */
        uint8_t *rbuf;
        size_t rsize, roff, rlen;
        bool eof;

        /* Output the peer has not taken yet. While some is pending we stop
         * reading, so a client that never reads cannot make us buffer more. */
        uint8_t *wbuf;
        size_t woff, wlen;
        /* Bytes the kernel still held for the peer at the last idle timeout
         * that found some, -1 if none: a peer draining them is not idle. */
        int last_outq;

        /* Least recently active first, for picking which one to drop at the cap. */
        DnsTcpConnection *prev, *next;

        /* Questions handed to the forwarder whose replies have not come back:
         * the connection is not idle, and stays open for them after EOF. */
        uint64_t id;
        unsigned n_forwarding;
};

struct DnsServer {
        sd_event *event;
        const Store *store;
        const DnsAnswerConfig *cfg;

        uint32_t tcp_idle_timeout_msec;
        uint32_t tcp_max_connections;

        sd_event_source *udp_source;
        sd_event_source *tcp_source;
        bool udp_pktinfo;       /* bound to a wildcard: reply from the address the query went to */

        UdpSlot *slots;
        struct mmsghdr msgs_in[UDP_BATCH];
        struct mmsghdr msgs_out[UDP_BATCH];

        /* Replies are made here, then written; only what the peer does not
         * take at once is copied into the connection. */
        uint8_t tcp_reply[2 + DNS_TCP_MESSAGE_MAX];

        DnsTcpConnection *conn_first, *conn_last;
        uint32_t n_connections;
        uint64_t next_conn_id;

        /* Forwarding: the forwarder (read by whichever thread answers, set by
         * the control loop), and the queue its TCP replies come back on. */
        DnsForwarder *forwarder;
        DnsReplyQueue *replies;
        sd_event_source *replies_source;

        DnsServerCounters counters;
        char *description;
};

/* In the order of DnsServerCounters.by_type (dns_server_type_index()). */
static const char *const type_labels[DNS_SERVER_N_TYPES] = { "A", "AAAA", "CNAME", "TXT", "PTR", "SOA", "other" };

const char *dns_server_type_label(int index) {
        return index >= 0 && index < DNS_SERVER_N_TYPES ? type_labels[index] : NULL;
}

/* The hand-off to the forwarder (see "forwarding" below). */
static int udp_forward(DnsServer *s, int fd, const UdpSlot *slot, const struct msghdr *in, size_t len);
static int tcp_forward(DnsTcpConnection *c, const uint8_t *query, size_t len);

int dns_server_type_index(uint16_t qtype) {
        switch (qtype) {
        case DNS_TYPE_A:
                return 0;
        case DNS_TYPE_AAAA:
                return 1;
        case DNS_TYPE_CNAME:
                return 2;
        case DNS_TYPE_TXT:
                return 3;
        case DNS_TYPE_PTR:
                return 4;
        case DNS_TYPE_SOA:
                return 5;
        default:
                return 6;
        }
}

static void count_query(DnsServer *s, DnsTransport transport, const DnsQueryInfo *info, bool forwarded) {
        if (transport == DNS_TRANSPORT_UDP)
                s->counters.queries_udp++;
        else
                s->counters.queries_tcp++;
        if (forwarded)
                s->counters.forwarded++;
        else if (info->rcode < ELEMENTSOF(s->counters.by_rcode))
                s->counters.by_rcode[info->rcode]++;
        s->counters.by_type[dns_server_type_index(info->qtype)]++;
        if (info->truncated)
                s->counters.truncated++;
}

/* --- addresses --------------------------------------------------------- */

static void sockaddr_format(const struct sockaddr_storage *sa, char *buf, size_t size) {
        char a[INET6_ADDRSTRLEN];

        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                (void) inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
                (void) snprintf(buf, size, "%s:%u", a, ntohs(in->sin_port));
        } else if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                (void) inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
                (void) snprintf(buf, size, "[%s]:%u", a, ntohs(in6->sin6_port));
        } else
                (void) snprintf(buf, size, "(family %i)", sa->ss_family);
}

/* A line per query, at debug level only (checked first: no cost otherwise). */
static void log_query(DnsTransport transport, const DnsQueryInfo *info, bool forwarded, const uint8_t *req, size_t len,
                      const struct sockaddr_storage *peer, int fd) {
        struct sockaddr_storage sa = {};
        char from[INET6_ADDRSTRLEN + 8] = "?", name[1024] = "";

        if (log_get_max_level() < LOG_DEBUG)
                return;
        if (peer)
                sa = *peer;
        else {
                socklen_t salen = sizeof sa;
                if (getpeername(fd, (struct sockaddr *) &sa, &salen) < 0)
                        sa.ss_family = AF_UNSPEC;
        }
        if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6)
                sockaddr_format(&sa, from, sizeof from);
        /* The question name, read defensively: it may be malformed. */
        if (len > DNS_HEADER_SIZE) {
                size_t p = DNS_HEADER_SIZE, o = 0;
                while (p < len && req[p] != 0 && req[p] <= 63 && p + 1 + req[p] <= len && o + req[p] + 2 < sizeof name) {
                        for (uint8_t i = 0; i < req[p]; i++) {
                                uint8_t ch = req[p + 1 + i];
                                name[o++] = ch > 0x20 && ch < 0x7f ? (char) ch : '?';  // NOLINT(bugprone-narrowing-conversions): printable ASCII
                        }
                        name[o++] = '.';
                        p += 1 + req[p];
                }
                name[o] = 0;
        }
        char type[16];
        if (dns_type_to_string(info->qtype))
                snprintf(type, sizeof type, "%s", dns_type_to_string(info->qtype));
        else
                snprintf(type, sizeof type, "TYPE%u", info->qtype);
        if (forwarded)
                log_debug("Query %s %s from %s over %s: not ours, forwarded", name[0] ? name : ".", type, from,
                          transport == DNS_TRANSPORT_UDP ? "UDP" : "TCP");
        else
                log_debug("Query %s %s from %s over %s: %s, %u answer(s)%s", name[0] ? name : ".", type, from,
                          transport == DNS_TRANSPORT_UDP ? "UDP" : "TCP", strna(dns_rcode_to_string(info->rcode)),
                          info->answer_count, info->truncated ? ", truncated" : "");
}

static bool sockaddr_is_wildcard(const struct sockaddr_storage *sa) {
        if (sa->ss_family == AF_INET)
                return ((const struct sockaddr_in *) sa)->sin_addr.s_addr == htonl(INADDR_ANY);
        if (sa->ss_family == AF_INET6)
                return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *) sa)->sin6_addr);
        return false;
}

/* A literal IPv4 or IPv6 address (brackets allowed around IPv6), or for
 * NULL the wildcard address of family_wildcard. */
static int make_sockaddr(const char *address, uint16_t port, int family_wildcard,
                         struct sockaddr_storage *ret, socklen_t *ret_len) {
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        char buf[INET6_ADDRSTRLEN + 2];
        size_t n;

        *ret = (struct sockaddr_storage) {};

        if (!address) {
                if (family_wildcard == AF_INET6) {
                        in6->sin6_family = AF_INET6;
                        in6->sin6_addr = in6addr_any;
                        in6->sin6_port = htons(port);
                        *ret_len = sizeof(*in6);
                } else {
                        in->sin_family = AF_INET;
                        in->sin_addr.s_addr = htonl(INADDR_ANY);
                        in->sin_port = htons(port);
                        *ret_len = sizeof(*in);
                }
                return 0;
        }

        if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                *ret_len = sizeof(*in);
                return 0;
        }

        n = strlen(address);
        if (n >= 2 && address[0] == '[' && address[n - 1] == ']' && n - 2 < sizeof(buf)) {
                memcpy(buf, address + 1, n - 2);
                buf[n - 2] = 0;
                address = buf;
        }
        if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                *ret_len = sizeof(*in6);
                return 0;
        }

        return -EINVAL;
}

static int setsockopt_int(int fd, int level, int name, int value) {
        if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
                return negative_errno();
        return 0;
}

static int make_socket(int type, const struct sockaddr_storage *sa, socklen_t salen, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = socket(sa->ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();

        if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *) sa)->sin6_addr)) {
                /* One socket for both families, whatever the sysctl default is. */
                r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
                if (r < 0)
                        return r;
        }
        if (type == SOCK_STREAM) {
                /* Restarts must not wait for TIME_WAIT connections to expire. */
                r = setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
                if (r < 0)
                        return r;
        }

        if (bind(fd, (const struct sockaddr *) sa, salen) < 0)
                return negative_errno();

        if (type == SOCK_STREAM && listen(fd, TCP_LISTEN_BACKLOG) < 0)
                return negative_errno();

        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int bind_socket(int type, const char *address, uint16_t port, int *ret_fd) {
        struct sockaddr_storage sa;
        socklen_t salen;
        int r;

        r = make_sockaddr(address, port, AF_INET6, &sa, &salen);
        if (r < 0)
                return r;

        r = make_socket(type, &sa, salen, ret_fd);
        if (!address && r == -EAFNOSUPPORT) {
                /* No IPv6 on this host (ipv6.disable=1): all IPv4 addresses then. */
                log_debug_errno(r, "IPv6 is not available, binding DNS %s socket to 0.0.0.0: %m",
                                type == SOCK_DGRAM ? "UDP" : "TCP");
                r = make_sockaddr(NULL, port, AF_INET, &sa, &salen);
                if (r < 0)
                        return r;
                r = make_socket(type, &sa, salen, ret_fd);
        }
        return r;
}

/* --- UDP ---------------------------------------------------------------- */

static void udp_prepare_receive(DnsServer *s) {
        for (size_t i = 0; i < UDP_BATCH; i++) {
                UdpSlot *slot = s->slots + i;

                slot->iov_in = (struct iovec) { .iov_base = slot->query, .iov_len = sizeof(slot->query) };
                s->msgs_in[i] = (struct mmsghdr) {
                        .msg_hdr = {
                                .msg_name = &slot->peer,
                                .msg_namelen = sizeof(slot->peer),
                                .msg_iov = &slot->iov_in,
                                .msg_iovlen = 1,
                                .msg_control = s->udp_pktinfo ? slot->control_in.buf : NULL,
                                .msg_controllen = s->udp_pktinfo ? sizeof(slot->control_in.buf) : 0,
                        },
                };
        }
}

/* Copies the destination address of the query into the control message of
 * the reply, so that on a multi-homed host the reply leaves from the address
 * the client sent to (else the client drops it as coming from a stranger).
 * Returns the control length to use, 0 for none. */
static size_t udp_reply_control(const struct msghdr *in, PktInfoControl *out) {
        struct cmsghdr *cmsg;

        if (in->msg_flags & MSG_CTRUNC)
                return 0;

        for (cmsg = CMSG_FIRSTHDR(in); cmsg; cmsg = CMSG_NXTHDR((struct msghdr *) in, cmsg)) {
                if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_PKTINFO &&
                    cmsg->cmsg_len == CMSG_LEN(sizeof(struct in6_pktinfo))) {
                        struct in6_pktinfo pi;
                        struct cmsghdr *o = (struct cmsghdr *) out->buf;

                        memcpy(&pi, CMSG_DATA(cmsg), sizeof(pi));
                        if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
                                return 0;
                        /* The interface only matters for link-local addresses;
                         * elsewhere let routing pick it. For v4-mapped
                         * addresses the kernel takes the address as IPv4
                         * source. */
                        if (!IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                                pi.ipi6_ifindex = 0;

                        *o = (struct cmsghdr) {
                                .cmsg_level = IPPROTO_IPV6,
                                .cmsg_type = IPV6_PKTINFO,
                                .cmsg_len = CMSG_LEN(sizeof(pi)),
                        };
                        memcpy(CMSG_DATA(o), &pi, sizeof(pi));
                        return CMSG_SPACE(sizeof(pi));
                }

                if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_PKTINFO &&
                    cmsg->cmsg_len == CMSG_LEN(sizeof(struct in_pktinfo))) {
                        struct in_pktinfo pi, reply = {};
                        struct cmsghdr *o = (struct cmsghdr *) out->buf;

                        memcpy(&pi, CMSG_DATA(cmsg), sizeof(pi));
                        /* Broadcast and multicast destinations cannot be a source. */
                        if (IN_MULTICAST(ntohl(pi.ipi_addr.s_addr)) || pi.ipi_addr.s_addr == htonl(INADDR_BROADCAST))
                                return 0;
                        reply.ipi_spec_dst = pi.ipi_addr;

                        *o = (struct cmsghdr) {
                                .cmsg_level = IPPROTO_IP,
                                .cmsg_type = IP_PKTINFO,
                                .cmsg_len = CMSG_LEN(sizeof(reply)),
                        };
                        memcpy(CMSG_DATA(o), &reply, sizeof(reply));
                        return CMSG_SPACE(sizeof(reply));
                }
        }

        return 0;
}

static void udp_send_batch(DnsServer *s, unsigned n) {
        unsigned done = 0;

        while (done < n) {
                int k = sendmmsg(sd_event_source_get_io_fd(s->udp_source), s->msgs_out + done, n - done, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        /* A full send buffer drops the rest of the batch, as the
                         * network would; clients retry. Any other error is about
                         * this one message (a peer that vanished, a bad source
                         * address): skip it and send the others. */
                        if (errno == EAGAIN || errno == ENOBUFS) {
                                log_debug("DNS UDP send buffer full, dropping %u replies", n - done);
                                return;
                        }
                        log_debug_errno(negative_errno(), "Failed to send DNS UDP reply: %m");
                        done++;
                        continue;
                }
                done += (unsigned) k;
        }
}

static int udp_on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsServer *s = userdata;

        for (unsigned batch = 0; batch < UDP_BATCHES_PER_WAKEUP; batch++) {
                unsigned n_out = 0;
                int n;

                udp_prepare_receive(s);

                n = recvmmsg(fd, s->msgs_in, UDP_BATCH, MSG_DONTWAIT, NULL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        /* ICMP errors of earlier sends (ECONNREFUSED and friends)
                         * show up here; they are about that peer, not us. */
                        log_debug_errno(negative_errno(), "Failed to receive DNS UDP query, ignoring: %m");
                        return 0;
                }

                for (int i = 0; i < n; i++) {
                        const struct msghdr *in = &s->msgs_in[i].msg_hdr;
                        UdpSlot *slot = s->slots + i;
                        DnsQueryInfo info = {};
                        size_t len;

                        if (in->msg_flags & MSG_TRUNC) {
                                log_debug("Dropping oversized DNS UDP query (%u bytes)", s->msgs_in[i].msg_len);
                                continue;
                        }

                        len = dns_answer(s->store, s->cfg, DNS_TRANSPORT_UDP,
                                         slot->query, s->msgs_in[i].msg_len,
                                         slot->reply, sizeof(slot->reply), &info);
                        if (len == 0)
                                continue;
                        if (info.forward) {
                                int r = udp_forward(s, fd, slot, in, s->msgs_in[i].msg_len);
                                if (r == 0 || r == -ENOBUFS) {
                                        count_query(s, DNS_TRANSPORT_UDP, &info, true);
                                        log_query(DNS_TRANSPORT_UDP, &info, true, slot->query, s->msgs_in[i].msg_len,
                                                  &slot->peer, -1);
                                        continue;
                                }
                        }
                        count_query(s, DNS_TRANSPORT_UDP, &info, false);
                        log_query(DNS_TRANSPORT_UDP, &info, false, slot->query, s->msgs_in[i].msg_len, &slot->peer, -1);

                        slot->iov_out = (struct iovec) { .iov_base = slot->reply, .iov_len = len };
                        s->msgs_out[n_out] = (struct mmsghdr) {
                                .msg_hdr = {
                                        .msg_name = &slot->peer,
                                        .msg_namelen = in->msg_namelen,
                                        .msg_iov = &slot->iov_out,
                                        .msg_iovlen = 1,
                                },
                        };
                        if (s->udp_pktinfo) {
                                size_t cl = udp_reply_control(in, &slot->control_out);
                                if (cl > 0) {
                                        s->msgs_out[n_out].msg_hdr.msg_control = slot->control_out.buf;
                                        s->msgs_out[n_out].msg_hdr.msg_controllen = cl;
                                }
                        }
                        n_out++;
                }

                if (n_out > 0)
                        udp_send_batch(s, n_out);

                if (n < UDP_BATCH)
                        return 0;   /* drained */
        }

        /* Budget used up; the source is level-triggered, so we come back
         * after other sources had their turn. */
        return 0;
}

/* --- TCP ---------------------------------------------------------------- */

static void conn_list_remove(DnsServer *s, DnsTcpConnection *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conn_first = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                s->conn_last = c->prev;
        c->prev = c->next = NULL;
}

static void conn_list_append(DnsServer *s, DnsTcpConnection *c) {
        c->prev = s->conn_last;
        c->next = NULL;
        if (s->conn_last)
                s->conn_last->next = c;
        else
                s->conn_first = c;
        s->conn_last = c;
}

static DnsTcpConnection *conn_free(DnsTcpConnection *c) {
        if (!c)
                return NULL;

        if (c->server) {
                conn_list_remove(c->server, c);
                c->server->n_connections--;
        }
        /* The io source owns the fd. */
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        free(c->rbuf);
        free(c->wbuf);
        free(c);
        return NULL;
}

static bool conn_is_idle(const DnsTcpConnection *c) {
        return c->roff == c->rlen && c->woff == c->wlen && c->n_forwarding == 0;
}

/* Something happened that shows the peer is alive and being served: restart
 * the idle timer and move it to the recently-active end of the list. Bytes
 * alone do not count, so a client dribbling a byte now and then is still
 * closed. */
static void conn_touch(DnsTcpConnection *c) {
        DnsServer *s = c->server;
        int r;

        c->last_outq = -1;
        r = sd_event_source_set_time_relative(c->timer_source, s->tcp_idle_timeout_msec * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "Failed to restart DNS TCP idle timer, ignoring: %m");

        conn_list_remove(s, c);
        conn_list_append(s, c);
}

static int conn_update_events(DnsTcpConnection *c) {
        uint32_t events;

        /* Output pending: wait until it can be written, read nothing more.
         * After EOF there is nothing left to read either. */
        if (c->woff < c->wlen)
                events = EPOLLOUT;
        else if (c->eof)
                events = 0;
        else
                events = EPOLLIN;

        return sd_event_source_set_io_events(c->io_source, events);
}

/* Writes what is pending. Returns 0 when it was all written (or nothing was
 * pending), 1 when some is left, or a negative errno on a broken connection. */
static int conn_flush(DnsTcpConnection *c) {
        while (c->woff < c->wlen) {
                ssize_t k = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 1;
                        return negative_errno();
                }
                c->woff += (size_t) k;
                conn_touch(c);
        }

        c->wbuf = mfree(c->wbuf);
        c->woff = c->wlen = 0;
        return 0;
}

/* Sends one reply (already framed in server->tcp_reply), keeping whatever the
 * socket does not take now. */
static int conn_send(DnsTcpConnection *c, const uint8_t *data, size_t len) {
        size_t off = 0;

        if (c->woff < c->wlen) {
                /* Output is pending (a forwarded reply came back meanwhile):
                 * queue behind it, so that messages do not interleave. */
                uint8_t *b = realloc(c->wbuf, c->wlen + len);
                if (!b)
                        return -ENOMEM;
                memcpy(b + c->wlen, data, len);
                c->wbuf = b;
                c->wlen += len;
                return 0;
        }

        while (off < len) {
                ssize_t k = send(c->fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                off += (size_t) k;
        }

        if (off < len) {
                c->wbuf = malloc(len - off);
                if (!c->wbuf)
                        return -ENOMEM;
                memcpy(c->wbuf, data + off, len - off);
                c->woff = 0;
                c->wlen = len - off;
        }
        return 0;
}

/* Answers the complete messages in the input buffer, as long as the replies
 * are taken. Returns 0, or a negative errno when the connection must close. */
static int conn_process(DnsTcpConnection *c) {
        DnsServer *s = c->server;
        int r;

        while (c->woff == c->wlen && c->rlen - c->roff >= 2) {
                const uint8_t *p = c->rbuf + c->roff;
                size_t mlen = ((size_t) p[0] << 8) | p[1];
                DnsQueryInfo info = {};
                size_t len;

                /* Nothing shorter than a header is a DNS message; a client
                 * sending such is broken, and we cannot resynchronise. */
                if (mlen < DNS_HEADER_SIZE)
                        return -EBADMSG;

                if (c->rlen - c->roff < 2 + mlen) {
                        /* Incomplete: make sure it will fit, at the start of the buffer. */
                        if (c->roff > 0) {
                                memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
                                c->rlen -= c->roff;
                                c->roff = 0;
                        }
                        if (c->rsize < 2 + mlen) {
                                uint8_t *b = realloc(c->rbuf, 2 + mlen);
                                if (!b)
                                        return -ENOMEM;
                                c->rbuf = b;
                                c->rsize = 2 + mlen;
                        }
                        break;
                }

                len = dns_answer(s->store, s->cfg, DNS_TRANSPORT_TCP, p + 2, mlen,
                                 s->tcp_reply + 2, DNS_TCP_MESSAGE_MAX, &info);
                c->roff += 2 + mlen;

                if (len == 0)
                        continue;
                if (info.forward) {
                        r = tcp_forward(c, p + 2, mlen);
                        if (r == 0) {
                                count_query(s, DNS_TRANSPORT_TCP, &info, true);
                                log_query(DNS_TRANSPORT_TCP, &info, true, p + 2, mlen, NULL, c->fd);
                                conn_touch(c);
                                continue;
                        }
                        if (r == -ENOBUFS)      /* the forwarder is overloaded: say so */
                                s->tcp_reply[2 + 3] = (s->tcp_reply[2 + 3] & 0xf0) | DNS_RCODE_SERVFAIL;
                }
                count_query(s, DNS_TRANSPORT_TCP, &info, false);
                log_query(DNS_TRANSPORT_TCP, &info, false, p + 2, mlen, NULL, c->fd);
                conn_touch(c);

                s->tcp_reply[0] = (uint8_t) (len >> 8);
                s->tcp_reply[1] = (uint8_t) len;
                r = conn_send(c, s->tcp_reply, 2 + len);
                if (r < 0)
                        return r;
        }

        if (c->roff == c->rlen)
                c->roff = c->rlen = 0;
        return 0;
}

static int conn_read(DnsTcpConnection *c) {
        ssize_t k;

        if (c->roff > 0 && c->rlen == c->rsize) {
                memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
                c->rlen -= c->roff;
                c->roff = 0;
        }
        if (c->rlen == c->rsize)
                return 0;   /* full of complete messages waiting for output to drain */

        k = recv(c->fd, c->rbuf + c->rlen, c->rsize - c->rlen, MSG_DONTWAIT);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return negative_errno();
        }
        if (k == 0)
                c->eof = true;
        c->rlen += (size_t) k;
        return 0;
}

static int conn_on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsTcpConnection *c = userdata;
        int r;

        /* A hang-up while output is pending must reach send() to be noticed,
         * else the level-triggered source would fire forever. */
        if ((revents & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->woff < c->wlen) {
                r = conn_flush(c);
                if (r < 0)
                        goto fail;
        }

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->woff == c->wlen && !c->eof) {
                r = conn_read(c);
                if (r < 0)
                        goto fail;
        }

        r = conn_process(c);
        if (r < 0)
                goto fail;

        /* The peer closed its side: finish writing what it asked for (and
         * what the forwarder still owes it), then close. A partial message
         * at EOF can never complete. */
        if (c->eof && c->woff == c->wlen && c->n_forwarding == 0) {
                conn_free(c);
                return 0;
        }

        r = conn_update_events(c);
        if (r < 0)
                goto fail;
        return 0;

fail:
        if (r == -EBADMSG)
                log_debug("DNS TCP client sent a message shorter than a header, closing connection");
        else if (!errno_is_disconnect(r))
                log_debug_errno(r, "DNS TCP connection failed, closing: %m");
        conn_free(c);
        return 0;
}

static int conn_on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        DnsTcpConnection *c = userdata;
        int outq = 0;

        /* Replies may sit in a large kernel send buffer that a slow but live
         * client is still reading: we see no EPOLLOUT, yet it is progressing.
         * Give it another period as long as that queue shrinks. */
        if (ioctl(c->fd, SIOCOUTQ, &outq) >= 0 && outq > 0 && (c->last_outq < 0 || outq < c->last_outq)) {
                int r;

                c->last_outq = outq;
                r = sd_event_source_set_time_relative(c->timer_source, c->server->tcp_idle_timeout_msec * USEC_PER_MSEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
                if (r >= 0)
                        return 0;
        }

        c->server->counters.tcp_timeouts++;
        log_debug("DNS TCP connection idle for %" PRIu32 " ms, closing", c->server->tcp_idle_timeout_msec);
        conn_free(c);
        return 0;
}

/* At the cap: drop the least recently active connection if it has nothing
 * in flight, so that stale keep-alive connections give way to new clients.
 * Returns true if room was made. */
static bool make_room(DnsServer *s) {
        DnsTcpConnection *c = s->conn_first;

        if (!c || !conn_is_idle(c))
                return false;

        log_debug("DNS TCP connection limit (%" PRIu32 ") reached, closing the oldest idle connection",
                  s->tcp_max_connections);
        conn_free(c);
        return true;
}

static int conn_new(DnsServer *s, int fd) {
        DnsTcpConnection *c;
        int r;

        c = new0(DnsTcpConnection, 1);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->last_outq = -1;
        c->server = s;
        c->id = ++s->next_conn_id;
        conn_list_append(s, c);
        s->n_connections++;

        r = sd_event_add_io(s->event, &c->io_source, fd, EPOLLIN, conn_on_io, c);
        if (r < 0) {
                safe_close(fd);
                conn_free(c);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(c->io_source, true);
        (void) sd_event_source_set_description(c->io_source, "dns-tcp-connection");

        r = sd_event_add_time_relative(s->event, &c->timer_source, CLOCK_MONOTONIC,
                                       s->tcp_idle_timeout_msec * USEC_PER_MSEC, 10 * USEC_PER_MSEC,
                                       conn_on_timeout, c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->timer_source, "dns-tcp-idle-timer");

        c->rbuf = malloc(TCP_READ_BUFFER_INITIAL);
        if (!c->rbuf) {
                conn_free(c);
                return -ENOMEM;
        }
        c->rsize = TCP_READ_BUFFER_INITIAL;
        return 0;
}

static int tcp_on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsServer *s = userdata;
        int r;

        for (unsigned i = 0; i < TCP_ACCEPT_PER_WAKEUP; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        /* The connection died in the backlog, or we are out of
                         * fds: try again on the next wakeup. */
                        log_debug_errno(negative_errno(), "Failed to accept DNS TCP connection: %m");
                        return 0;
                }

                if (s->n_connections >= s->tcp_max_connections && !make_room(s)) {
                        /* Accept and close at once: leaving it in the backlog
                         * would keep the listening socket readable forever. */
                        s->counters.tcp_rejected++;
                        log_debug("DNS TCP connection limit (%" PRIu32 ") reached, refusing connection",
                                  s->tcp_max_connections);
                        safe_close(cfd);
                        continue;
                }

                (void) setsockopt_int(cfd, IPPROTO_TCP, TCP_NODELAY, 1);

                r = conn_new(s, cfd);
                if (r < 0) {
                        log_warning_errno(r, "Failed to set up DNS TCP connection: %m");
                        continue;
                }
                s->counters.tcp_connections++;
        }
        return 0;
}

/* --- forwarding ---------------------------------------------------------- */

/* The hand-off: the forwarder copies the query and replies itself, over UDP
 * on the socket the query came in on, over TCP through our reply queue. */

static DnsForwarder *server_forwarder(const DnsServer *s) {
        return __atomic_load_n(&s->forwarder, __ATOMIC_ACQUIRE);
}

static int udp_forward(DnsServer *s, int fd, const UdpSlot *slot, const struct msghdr *in, size_t len) {
        DnsForwarder *f = server_forwarder(s);
        PktInfoControl control;
        size_t cl = 0;

        if (!f)
                return -ENOENT;
        if (s->udp_pktinfo)
                cl = udp_reply_control(in, &control);
        return dns_forwarder_submit(f, &(DnsForwardClient) {
                        .transport = DNS_TRANSPORT_UDP,
                        .peer = (const struct sockaddr *) &slot->peer,
                        .peer_len = in->msg_namelen,
                        .udp_fd = fd,
                        .control = cl > 0 ? control.buf : NULL,
                        .control_len = cl,
                }, slot->query, len);
}

static int tcp_forward(DnsTcpConnection *c, const uint8_t *query, size_t len) {
        DnsForwarder *f = server_forwarder(c->server);
        struct sockaddr_storage peer = {};
        socklen_t peer_len = sizeof peer;
        int r;

        if (!f || !c->server->replies)
                return -ENOENT;
        if (getpeername(c->fd, (struct sockaddr *) &peer, &peer_len) < 0)
                return negative_errno();
        r = dns_forwarder_submit(f, &(DnsForwardClient) {
                        .transport = DNS_TRANSPORT_TCP,
                        .peer = (const struct sockaddr *) &peer,
                        .peer_len = peer_len,
                        .udp_fd = -EBADF,
                        .replies = c->server->replies,
                        .conn_id = c->id,
                }, query, len);
        if (r >= 0)
                c->n_forwarding++;
        return r;
}

static DnsTcpConnection *conn_find(DnsServer *s, uint64_t id) {
        for (DnsTcpConnection *c = s->conn_last; c; c = c->prev)
                if (c->id == id)
                        return c;
        return NULL;
}

static int on_forward_replies(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsServer *s = userdata;

        for (DnsForwardReply *r = dns_reply_queue_take(s->replies), *next; r; r = next) {
                DnsTcpConnection *c = conn_find(s, r->conn_id);
                int k = 0;

                next = r->next;
                if (c) {
                        uint8_t *framed = malloc(2 + r->len);

                        c->n_forwarding--;
                        if (framed) {
                                framed[0] = (uint8_t) (r->len >> 8);
                                framed[1] = (uint8_t) r->len;
                                memcpy(framed + 2, r->data, r->len);
                                k = conn_send(c, framed, 2 + r->len);
                                free(framed);
                        }
                        if (k >= 0) {
                                conn_touch(c);
                                /* More queries may wait behind a reply that is out now. */
                                k = conn_process(c);
                        }
                        if (k >= 0 && c->eof && c->woff == c->wlen && c->n_forwarding == 0)
                                conn_free(c);
                        else if (k >= 0)
                                k = conn_update_events(c);
                        if (k < 0) {
                                if (!errno_is_disconnect(k))
                                        log_debug_errno(k, "DNS TCP connection failed, closing: %m");
                                conn_free(c);
                        }
                }
                /* A connection closed meanwhile: the reply has nowhere to go. */
                free(r);
        }
        return 0;
}

int dns_server_set_forwarder(DnsServer *s, DnsForwarder *f) {
        int r;

        if (!s)
                return -EINVAL;
        if (f && !s->replies) {
                r = dns_reply_queue_new(&s->replies);
                if (r < 0)
                        return log_error_errno(r, "Failed to make the DNS forwarder's reply queue: %m");
                r = sd_event_add_io(s->event, &s->replies_source, dns_reply_queue_get_fd(s->replies), EPOLLIN,
                                    on_forward_replies, s);
                if (r < 0) {
                        s->replies = dns_reply_queue_unref(s->replies);
                        return log_error_errno(r, "Failed to watch the DNS forwarder's reply queue: %m");
                }
                (void) sd_event_source_set_description(s->replies_source, "dns-forward-replies");
        }
        __atomic_store_n(&s->forwarder, f, __ATOMIC_RELEASE);
        return 0;
}

/* --- setup -------------------------------------------------------------- */

/* A socket handed to us (socket activation) must be of the expected type;
 * it may have come in blocking. */
static int check_passed_fd(int fd, int type, const char *what) {
        int t = 0, flags;
        socklen_t l = sizeof(t);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0)
                return log_error_errno(negative_errno(), "Passed DNS %s fd %i is not a socket: %m", what, fd);
        if (t != type)
                return log_error_errno(-EINVAL,
                                       "Passed DNS %s fd %i is a %s socket, expected a %s socket", what, fd,
                                       t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "datagram" : "other",
                                       type == SOCK_STREAM ? "stream" : "datagram");

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(negative_errno(), "Failed to make DNS %s fd %i non-blocking: %m", what, fd);
        return 0;
}

static int describe_fd(int fd, char *buf, size_t size, struct sockaddr_storage *ret_sa) {
        socklen_t l = sizeof(*ret_sa);

        *ret_sa = (struct sockaddr_storage) {};
        if (getsockname(fd, (struct sockaddr *) ret_sa, &l) < 0)
                return negative_errno();
        sockaddr_format(ret_sa, buf, size);
        return 0;
}

static int udp_setup(DnsServer *s, int fd) {
        struct sockaddr_storage sa;
        char where[INET6_ADDRSTRLEN + 16];
        int r;

        r = describe_fd(fd, where, sizeof(where), &sa);
        if (r < 0)
                return log_error_errno(r, "Failed to get address of DNS UDP socket: %m");

        /* Best effort: bursts of queries should queue rather than be dropped.
         * FORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; without it
         * we get what rmem_max allows. */
        if (setsockopt_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, UDP_RCVBUF_WANTED) < 0 &&
            setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, UDP_RCVBUF_WANTED) < 0)
                log_debug("Could not raise DNS UDP receive buffer, using the default");

        if (sockaddr_is_wildcard(&sa)) {
                if (sa.ss_family == AF_INET6)
                        r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
                else
                        r = setsockopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
                if (r < 0)
                        return log_error_errno(r, "Failed to enable packet info on DNS UDP socket %s: %m", where);
                s->udp_pktinfo = true;
        }

        r = sd_event_add_io(s->event, &s->udp_source, fd, EPOLLIN, udp_on_io, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch DNS UDP socket %s: %m", where);
        (void) sd_event_source_set_description(s->udp_source, "dns-udp");
        return 0;
}

static int tcp_setup(DnsServer *s, int fd) {
        struct sockaddr_storage sa;
        char where[INET6_ADDRSTRLEN + 16];
        int r;

        r = describe_fd(fd, where, sizeof(where), &sa);
        if (r < 0)
                return log_error_errno(r, "Failed to get address of DNS TCP socket: %m");

        r = sd_event_add_io(s->event, &s->tcp_source, fd, EPOLLIN, tcp_on_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch DNS TCP socket %s: %m", where);
        (void) sd_event_source_set_description(s->tcp_source, "dns-tcp-listen");
        return 0;
}

static int build_description(DnsServer *s) {
        struct sockaddr_storage sa;
        char u[INET6_ADDRSTRLEN + 16], t[INET6_ADDRSTRLEN + 16];
        int r;

        r = describe_fd(sd_event_source_get_io_fd(s->udp_source), u, sizeof(u), &sa);
        if (r < 0)
                return r;
        r = describe_fd(sd_event_source_get_io_fd(s->tcp_source), t, sizeof(t), &sa);
        if (r < 0)
                return r;
        if (asprintf(&s->description, "udp %s, tcp %s", u, t) < 0) {
                s->description = NULL;
                return -ENOMEM;
        }
        return 0;
}

int dns_server_new(DnsServer **ret, sd_event *e, const Store *store, const DnsAnswerConfig *cfg,
                   const DnsServerOptions *opts) {
        _cleanup_(dns_server_freep) DnsServer *s = NULL;
        _cleanup_close_ int udp_bound = -EBADF, tcp_bound = -EBADF;
        char where[INET6_ADDRSTRLEN + 16];
        int udp_fd, tcp_fd, r;

        if (!ret || !e || !store || !cfg || !opts)
                return -EINVAL;

        s = new0(DnsServer, 1);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->store = store;
        s->cfg = cfg;
        s->tcp_idle_timeout_msec = opts->tcp_idle_timeout_msec > 0 ? opts->tcp_idle_timeout_msec : 10000;
        s->tcp_max_connections = opts->tcp_max_connections > 0 ? opts->tcp_max_connections : 256;

        s->slots = new0(UdpSlot, UDP_BATCH);
        if (!s->slots)
                return -ENOMEM;

        if (opts->bind_address) {
                struct sockaddr_storage sa;
                socklen_t salen;

                if (make_sockaddr(opts->bind_address, opts->port, AF_INET6, &sa, &salen) < 0)
                        return log_error_errno(-EINVAL, "DNS bind address '%s' is not an IPv4 or IPv6 address",
                                               opts->bind_address);
                /* For messages: "[::1]:53" rather than "::1:53". */
                sockaddr_format(&sa, where, sizeof(where));
        } else
                (void) snprintf(where, sizeof(where), "[::]:%u", opts->port);

        if (opts->udp_fd >= 0) {
                r = check_passed_fd(opts->udp_fd, SOCK_DGRAM, "UDP");
                if (r < 0)
                        return r;
                udp_fd = opts->udp_fd;
        } else {
                r = bind_socket(SOCK_DGRAM, opts->bind_address, opts->port, &udp_bound);
                if (r < 0)
                        return log_error_errno(r, "Failed to bind DNS UDP socket %s: %m", where);
                udp_fd = udp_bound;
        }

        if (opts->tcp_fd >= 0) {
                r = check_passed_fd(opts->tcp_fd, SOCK_STREAM, "TCP");
                if (r < 0)
                        return r;
                tcp_fd = opts->tcp_fd;
        } else {
                r = bind_socket(SOCK_STREAM, opts->bind_address, opts->port, &tcp_bound);
                if (r < 0)
                        return log_error_errno(r, "Failed to bind DNS TCP socket %s: %m", where);
                tcp_fd = tcp_bound;
        }

        r = udp_setup(s, udp_fd);
        if (r < 0)
                return r;
        r = tcp_setup(s, tcp_fd);
        if (r < 0)
                return r;

        r = build_description(s);
        if (r < 0)
                return log_error_errno(r, "Failed to describe DNS sockets: %m");

        /* Success: from here on the event sources own the sockets, passed
         * ones included. On failure above, passed fds stay the caller's. */
        (void) sd_event_source_set_io_fd_own(s->udp_source, true);
        (void) sd_event_source_set_io_fd_own(s->tcp_source, true);
        TAKE_FD(udp_bound);
        TAKE_FD(tcp_bound);

        *ret = TAKE_PTR(s);
        return 0;
}

DnsServer *dns_server_free(DnsServer *s) {
        if (!s)
                return NULL;

        while (s->conn_first)
                conn_free(s->conn_first);

        s->udp_source = sd_event_source_disable_unref(s->udp_source);
        s->tcp_source = sd_event_source_disable_unref(s->tcp_source);
        s->replies_source = sd_event_source_disable_unref(s->replies_source);
        s->replies = dns_reply_queue_unref(s->replies);
        s->event = sd_event_unref(s->event);
        free(s->slots);
        free(s->description);
        free(s);
        return NULL;
}

const DnsServerCounters *dns_server_get_counters(const DnsServer *s) {
        return s ? &s->counters : NULL;
}

const char *dns_server_describe(const DnsServer *s) {
        return s ? strempty(s->description) : "";
}
