/* SPDX-License-Identifier: MIT */
/* DNS transports. This file only moves bytes: UDP queries are read in
 * batches with recvmmsg() and answered with sendmmsg(), TCP connections carry
 * 2-byte length-prefixed messages, several per connection. dns_answer() turns
 * each request into its reply (answer_query() is the one place every query
 * passes through); questions about names that are not ours go to the
 * forwarder when there is one (see "forwarding" below), which replies on its
 * own thread.
 *
 * Threads: each answering thread (a DnsWorker) runs its own sd-event loop
 * (and reads UDP beside it: see worker_loop()) with its own UDP and TCP
 * sockets (bound with SO_REUSEPORT, so the kernel spreads queries and
 * connections over them) or, with socket activation, the passed sockets,
 * shared. A worker owns its connections, buffers and
 * counters; it reads the store and the answer configuration under RCU and
 * writes nothing another thread reads but its counters (relaxed atomics,
 * summed when read), its watchdog answer and the shared TCP connection count.
 * The control loop talks to a worker through an eventfd: stop, watchdog
 * ping. Nothing here blocks; a thread sleeps only when it has nothing to do. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "dns-server.h"
#include "log.h"
#include "macro.h"
#include "dns-name.h"
#include "dns-rdata.h"
#include "dns-receive-time.h"
#include "rcu.h"
#include "thread-sched.h"
#include "wire.h"

/* recvmmsg() batch, and how many batches one wakeup may handle before going
 * back to the loop, so a UDP flood does not starve TCP clients. */
#define UDP_BATCH 32
#define UDP_BATCHES_PER_WAKEUP 8
/* Queries larger than this are dropped: a query is a header, one question and
 * an OPT record, so anything near this size is not a real query. */
#define UDP_QUERY_MAX 4096
#define UDP_RCVBUF_WANTED (4 * 1024 * 1024)

/* The answering threads' time slice: the kernel's smallest. A thread answers
 * a batch of queries in microseconds and sleeps again, so it never uses a
 * slice up; a short one lets it run as soon as a query wakes it. */
#define DNS_THREAD_SLICE_NSEC (100 * 1000)

#define TCP_ACCEPT_PER_WAKEUP 64
#define TCP_READ_BUFFER_INITIAL 1024
#define TCP_LISTEN_BACKLOG 128

/* At shutdown, how long a TCP client may take to read the answers it asked
 * for before its connection is closed anyway. */
#define STOP_GRACE_USEC (3 * USEC_PER_SEC)

#define new0(t, n) ((t *) calloc((n), sizeof(t)))

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Counters and flags one thread writes and others read: relaxed atomics. A
 * counter has one writer, so an increment is a load and a store, not a
 * locked read-modify-write. */
#define SHARED_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SHARED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define COUNTER_INC(x) SHARED_STORE(x, SHARED_LOAD(x) + 1)

/* The peer went away; not worth a log line. */
static bool errno_is_disconnect(int r) {
        return r == -ECONNRESET || r == -EPIPE || r == -ECONNABORTED || r == -ETIMEDOUT || r == -EHOSTUNREACH ||
               r == -ENETUNREACH;
}

/* Room for an IPV6_PKTINFO and an IP_PKTINFO control message, aligned as
 * struct cmsghdr is (which cannot be a member: it ends in a flexible array). */
typedef union PktInfoControl {
        size_t align;
        uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
} PktInfoControl;

/* What a received query brings along: its destination address (packet
 * info) and the kernel's receive timestamp (SO_TIMESTAMPNS). */
typedef union ReceiveControl {
        size_t align;
        uint8_t buf[sizeof(PktInfoControl) + CMSG_SPACE(sizeof(struct timespec))];
} ReceiveControl;

/* One message of a UDP batch. Allocated once per worker, reused for every
 * batch, so the UDP path does not allocate per query. The reply buffer caps
 * UDP replies at what we advertise (1232, DNS flag day 2020) even when a
 * client offers more, so answers are not fragmented; larger ones get TC. */
typedef struct UdpSlot {
        uint8_t query[UDP_QUERY_MAX];
        uint8_t reply[DNS_EDNS_PAYLOAD_OURS];
        struct sockaddr_storage peer;
        struct iovec iov_in, iov_out;
        ReceiveControl control_in;
        PktInfoControl control_out;
} UdpSlot;

typedef struct DnsWorker DnsWorker;
typedef struct DnsTcpConnection DnsTcpConnection;

struct DnsTcpConnection {
        DnsWorker *worker;
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
        bool shut_wr;      /* stopping: our side is closed, waiting for the client to take it all */
        uint64_t answered; /* queries answered: its progress, for eviction at the cap */
        /* When the bytes that completed the latest query arrived: the start
         * of the request-duration clock for the queries in rbuf. */
        uint64_t received_nsec;
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

/* A socket of the server: bound here (one per worker) or passed (shared). */
typedef struct DnsSocket {
        int fd;
        bool pktinfo;    /* bound to a wildcard: reply from the address the query went to */
        bool timestamps; /* SO_TIMESTAMPNS: the kernel says when each query arrived */
} DnsSocket;

struct DnsWorker {
        DnsServer *server;
        unsigned index;
        pthread_t thread;
        bool started;

        sd_event *event;
        int control_fd; /* eventfd: the control loop has something for us */
        sd_event_source *control_source;
        sd_event_source *tcp_source;
        sd_event_source *stop_timer;
        const DnsSocket *udp, *tcp;
        bool stopping;

        UdpSlot *slots;
        struct mmsghdr msgs_in[UDP_BATCH];
        struct mmsghdr msgs_out[UDP_BATCH];
        uint64_t received_out[UDP_BATCH]; /* when the query of msgs_out[i] arrived */

        /* Replies are made here, then written; only what the peer does not
         * take at once is copied into the connection. */
        uint8_t tcp_reply[2 + DNS_TCP_MESSAGE_MAX];

        DnsTcpConnection *conn_first, *conn_last;
        uint32_t n_connections; /* this worker's; other workers read it (atomic) */
        uint64_t next_conn_id;

        /* The forwarder's TCP replies come back here (it sends UDP ones
         * itself, on our socket). */
        DnsReplyQueue *replies;
        sd_event_source *replies_source;

        /* Written by this worker, read by the control loop. */
        DnsServerCounters counters;
        uint64_t ping_answered; /* the last ping seen */

        /* Written by others, read by this worker. */
        uint64_t ping;           /* the latest ping sent (control loop) */
        bool stop;               /* (control loop) */
        uint32_t evict_requests; /* connections to close for another worker at the cap */
};

struct DnsServer {
        const Store *store;
        const DnsAnswerConfig *cfg; /* a copy, published with rcu_publish() */
        DnsForwarder *forwarder;    /* published with rcu_publish(); used under rcu_reader_lock() */

        uint32_t tcp_idle_timeout_msec;
        uint32_t tcp_max_connections;
        uint32_t n_connections; /* all workers', for the cap: atomic */

        /* One UDP and one TCP socket per worker, or the passed one shared.
         * Passed fds are the caller's until dns_server_new() succeeds. */
        DnsSocket *udp_sockets, *tcp_sockets;
        unsigned n_udp, n_tcp;
        bool udp_passed, tcp_passed;

        DnsWorker *workers;
        unsigned n_workers;
        char *description;
};

/* In the order of DnsServerCounters.by_type (dns_server_type_index()). */
static const char *const type_labels[DNS_SERVER_N_TYPES] = { "A", "AAAA", "CNAME", "TXT", "PTR", "SOA", "other" };

const char *dns_server_type_label(int index) {
        return index >= 0 && index < DNS_SERVER_N_TYPES ? type_labels[index] : NULL;
}

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

/* The hand-off to the forwarder (see "forwarding" below). */
static int udp_forward(DnsWorker *w, const UdpSlot *slot, const struct msghdr *in, size_t len, uint64_t received_nsec);
static int tcp_forward(DnsTcpConnection *c, const uint8_t *query, size_t len);

static void count_query(DnsWorker *w, DnsTransport transport, const DnsQueryInfo *info, bool forwarded) {
        DnsServerCounters *c = &w->counters;

        if (transport == DNS_TRANSPORT_UDP)
                COUNTER_INC(c->queries_udp);
        else
                COUNTER_INC(c->queries_tcp);
        if (forwarded)
                COUNTER_INC(c->forwarded);
        else if (info->rcode < ELEMENTSOF(c->by_rcode))
                COUNTER_INC(c->by_rcode[info->rcode]);
        COUNTER_INC(c->by_type[dns_server_type_index(info->qtype)]);
        if (info->truncated)
                COUNTER_INC(c->truncated);
}

/* The answer configuration and the store as this worker sees them. Only
 * between rcu_reader_lock() and rcu_reader_unlock(). */
static const DnsAnswerConfig *worker_config(const DnsWorker *w) {
        return rcu_dereference(w->server->cfg);
}

/* Every query passes through here, with the answer config read under the
 * same read-side section. A query for a name that is not ours comes back
 * with info->forward set: the caller hands it to the forwarder (udp_forward(),
 * tcp_forward()), in the same read-side section, and sends this reply
 * (REFUSED, or SERVFAIL when the forwarder is full) only if it does not take
 * it. */
static size_t answer_query(DnsWorker *w, const DnsAnswerConfig *cfg, DnsTransport transport, const uint8_t *query,
                           size_t len, uint8_t *reply, size_t size, DnsQueryInfo *info) {
        return dns_answer(w->server->store, cfg, transport, query, len, reply, size, info);
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

/* A line per query, at debug level only (log_query() checks the level).
 * Its journal fields JOYRIDE_NAME (lower case, no final dot, as records
 * name it), JOYRIDE_TYPE, JOYRIDE_RCODE (not for a query handed to the
 * forwarder, whose own line has the rcode the client got) and
 * JOYRIDE_CLIENT (the address alone, IPv4 as IPv4) let
 * `journalctl JOYRIDE_NAME=...` find the queries of a name. Everything is on
 * the stack: answering threads log it. */
static _noinline_ void log_query_debug(DnsTransport transport, const DnsQueryInfo *info, bool forwarded,
                                       const uint8_t *req, size_t len, const struct sockaddr_storage *peer, int fd) {
        struct sockaddr_storage sa = {};
        char from[INET6_ADDRSTRLEN + 8] = "?", name[1024] = "", client[INET6_ADDRSTRLEN] = "", lname[1024];
        char type[16], rcode[16];
        LogFields f;

        if (peer)
                sa = *peer;
        else {
                socklen_t salen = sizeof sa;
                if (getpeername(fd, (struct sockaddr *) &sa, &salen) < 0)
                        sa.ss_family = AF_UNSPEC;
        }
        if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
                sockaddr_format(&sa, from, sizeof from);
                dns_format_client_address((const struct sockaddr *) &sa, client, sizeof client);
        }
        /* The question name, read defensively: it may be malformed. */
        if (req && len > DNS_HEADER_SIZE) {
                size_t p = DNS_HEADER_SIZE, o = 0;
                while (p < len && req[p] != 0 && req[p] <= 63 && p + 1 + req[p] <= len &&
                       o + req[p] + 2 < sizeof name) {
                        for (uint8_t i = 0; i < req[p]; i++) {
                                uint8_t ch = req[p + 1 + i];
                                name[o++] = (char) (ch > 0x20 && ch < 0x7f ? ch : '?');
                        }
                        name[o++] = '.';
                        p += 1 + req[p];
                }
                name[o] = 0;
        }
        if (dns_type_to_string(info->qtype))
                snprintf(type, sizeof type, "%s", dns_type_to_string(info->qtype));
        else
                snprintf(type, sizeof type, "TYPE%u", info->qtype);

        log_fields_init(&f);
        /* qtype 0: no readable question, so no name to speak of. */
        if (info->qtype != 0 && req && len > DNS_HEADER_SIZE) {
                int k = dns_wire_to_name(req + DNS_HEADER_SIZE, len - DNS_HEADER_SIZE, lname, sizeof lname);
                if (k >= 0)
                        log_fields_add(&f, "JOYRIDE_NAME=%s", k == 0 ? "." : lname);
                log_fields_add(&f, "JOYRIDE_TYPE=%s", type);
        }
        if (!forwarded)
                log_fields_add(&f, "JOYRIDE_RCODE=%s", dns_rcode_format(info->rcode, rcode));
        if (client[0])
                log_fields_add(&f, "JOYRIDE_CLIENT=%s", client);

        if (forwarded)
                log_struct_journal(LOG_DEBUG, f.v, "Query %s %s from %s over %s: not ours, forwarded",
                                   name[0] ? name : ".", type, from, transport == DNS_TRANSPORT_UDP ? "UDP" : "TCP");
        else
                log_struct_journal(LOG_DEBUG, f.v, "Query %s %s from %s over %s: %s, %u answer(s)%s",
                                   name[0] ? name : ".", type, from, transport == DNS_TRANSPORT_UDP ? "UDP" : "TCP",
                                   dns_rcode_format(info->rcode, rcode), info->answer_count,
                                   info->truncated ? ", truncated" : "");
}

/* The level checked first, apart: the buffers above cost a clear of over
 * 1 KiB per query otherwise. */
static inline void log_query(DnsTransport transport, const DnsQueryInfo *info, bool forwarded, const uint8_t *req,
                             size_t len, const struct sockaddr_storage *peer, int fd) {
        if (log_get_max_level() >= LOG_DEBUG)
                log_query_debug(transport, info, forwarded, req, len, peer, fd);
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
static int make_sockaddr(const char *address, uint16_t port, int family_wildcard, struct sockaddr_storage *ret,
                         socklen_t *ret_len) {
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

static int make_socket(int type, const struct sockaddr_storage *sa, socklen_t salen, bool reuseport, int *ret_fd) {
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
        if (reuseport) {
                /* One socket per answering thread on the same address: the
                 * kernel spreads queries and connections over them. */
                r = setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
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

static int bind_socket(int type, const char *address, uint16_t port, bool reuseport, int *ret_fd) {
        struct sockaddr_storage sa;
        socklen_t salen;
        int r;

        r = make_sockaddr(address, port, AF_INET6, &sa, &salen);
        if (r < 0)
                return r;

        r = make_socket(type, &sa, salen, reuseport, ret_fd);
        if (!address && r == -EAFNOSUPPORT) {
                /* No IPv6 on this host (ipv6.disable=1): all IPv4 addresses then. */
                log_debug_errno(r, "IPv6 is not available, binding DNS %s socket to 0.0.0.0: %m",
                                type == SOCK_DGRAM ? "UDP" : "TCP");
                r = make_sockaddr(NULL, port, AF_INET, &sa, &salen);
                if (r < 0)
                        return r;
                r = make_socket(type, &sa, salen, reuseport, ret_fd);
        }
        return r;
}

/* --- UDP ---------------------------------------------------------------- */

static void udp_prepare_receive(DnsWorker *w) {
        bool control = w->udp->pktinfo || w->udp->timestamps;

        for (size_t i = 0; i < UDP_BATCH; i++) {
                UdpSlot *slot = w->slots + i;

                slot->iov_in = (struct iovec) { .iov_base = slot->query, .iov_len = sizeof(slot->query) };
                w->msgs_in[i] = (struct mmsghdr) {
                        .msg_hdr = {
                                .msg_name = &slot->peer,
                                .msg_namelen = sizeof(slot->peer),
                                .msg_iov = &slot->iov_in,
                                .msg_iovlen = 1,
                                .msg_control = control ? slot->control_in.buf : NULL,
                                .msg_controllen = control ? sizeof(slot->control_in.buf) : 0,
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


/* Returns how many of the n replies went to the kernel (the rest were
 * dropped because the send buffer was full). */
static unsigned udp_send_batch(DnsWorker *w, unsigned n) {
        unsigned done = 0;

        while (done < n) {
                int k = sendmmsg(w->udp->fd, w->msgs_out + done, n - done, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        /* A full send buffer drops the rest of the batch, as the
                         * network would; clients retry. Any other error is about
                         * this one message (a peer that vanished, a bad source
                         * address): skip it and send the others. */
                        if (errno == EAGAIN || errno == ENOBUFS) {
                                log_debug("DNS UDP send buffer full, dropping %u replies", n - done);
                                return done;
                        }
                        log_debug_errno(negative_errno(), "Failed to send DNS UDP reply: %m");
                        done++;
                        continue;
                }
                done += (unsigned) k;
        }
        return done;
}

/* The lookups of a batch wait for memory together rather than one after the
 * other (see store_prefetch()). */
static void udp_prefetch(DnsWorker *w, unsigned n) {
        DnsPrefetch p[UDP_BATCH];

        for (unsigned step = 0; step < DNS_PREFETCH_STEPS; step++)
                for (unsigned i = 0; i < n; i++) {
                        if (step == 0 && (w->msgs_in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                                p[i].valid = false;
                                continue;
                        }
                        dns_answer_prefetch(w->server->store, w->slots[i].query, w->msgs_in[i].msg_len, &p[i], step);
                }
}

/* Reads, answers and sends up to max_batches batches. Returns true when the
 * socket is drained. */
static bool udp_serve(DnsWorker *w, unsigned max_batches) {
        for (unsigned batch = 0; batch < max_batches; batch++) {
                const DnsAnswerConfig *cfg;
                unsigned n_out = 0, n_sent;
                uint64_t batch_nsec = 0, now;
                int n;

                udp_prepare_receive(w);

                n = recvmmsg(w->udp->fd, w->msgs_in, UDP_BATCH, MSG_DONTWAIT, NULL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return true;
                        /* ICMP errors of earlier sends (ECONNREFUSED and friends)
                         * show up here; they are about that peer, not us. */
                        log_debug_errno(negative_errno(), "Failed to receive DNS UDP query, ignoring: %m");
                        return true;
                }

                /* One read-side section per batch: the store and the config
                 * stay as they were for the whole batch. */
                rcu_reader_lock();
                cfg = worker_config(w);
                if (n > 1)
                        udp_prefetch(w, (unsigned) n);
                for (int i = 0; i < n; i++) {
                        const struct msghdr *in = &w->msgs_in[i].msg_hdr;
                        UdpSlot *slot = w->slots + i;
                        DnsQueryInfo info = {};
                        uint64_t received;
                        size_t len;

                        if (in->msg_flags & MSG_TRUNC) {
                                log_debug("Dropping oversized DNS UDP query (%u bytes)", w->msgs_in[i].msg_len);
                                continue;
                        }

                        len = answer_query(w, cfg, DNS_TRANSPORT_UDP, slot->query, w->msgs_in[i].msg_len, slot->reply,
                                           sizeof(slot->reply), &info);
                        if (len == 0)
                                continue;
                        /* Without a kernel timestamp (the option failed), the
                         * batch's arrival: one clock reading for all. */
                        received = dns_receive_time_nsec(in);
                        if (received == 0) {
                                if (batch_nsec == 0)
                                        batch_nsec = dns_duration_now_nsec();
                                received = batch_nsec;
                        }
                        if (info.forward) {
                                int r = udp_forward(w, slot, in, w->msgs_in[i].msg_len, received);
                                if (r == 0 || r == -ENOBUFS) {
                                        count_query(w, DNS_TRANSPORT_UDP, &info, true);
                                        log_query(DNS_TRANSPORT_UDP, &info, true, slot->query, w->msgs_in[i].msg_len,
                                                  &slot->peer, -1);
                                        continue;
                                }
                        }
                        count_query(w, DNS_TRANSPORT_UDP, &info, false);
                        log_query(DNS_TRANSPORT_UDP, &info, false, slot->query, w->msgs_in[i].msg_len, &slot->peer, -1);

                        slot->iov_out = (struct iovec) { .iov_base = slot->reply, .iov_len = len };
                        w->msgs_out[n_out] = (struct mmsghdr) {
                                .msg_hdr = {
                                        .msg_name = &slot->peer,
                                        .msg_namelen = in->msg_namelen,
                                        .msg_iov = &slot->iov_out,
                                        .msg_iovlen = 1,
                                },
                        };
                        if (w->udp->pktinfo) {
                                size_t cl = udp_reply_control(in, &slot->control_out);
                                if (cl > 0) {
                                        w->msgs_out[n_out].msg_hdr.msg_control = slot->control_out.buf;
                                        w->msgs_out[n_out].msg_hdr.msg_controllen = cl;
                                }
                        }
                        w->received_out[n_out] = received;
                        n_out++;
                }
                rcu_reader_unlock();

                if (n_out > 0) {
                        /* One clock reading for the batch, once the replies are out. */
                        n_sent = udp_send_batch(w, n_out);
                        now = dns_duration_now_nsec();
                        for (unsigned i = 0; i < n_sent; i++)
                                dns_duration_observe(&w->counters.duration[DNS_TRANSPORT_UDP], w->received_out[i], now,
                                                     1);
                }

                if (n < UDP_BATCH)
                        return true;
        }
        return false;
}

/* --- TCP ---------------------------------------------------------------- */

static void conn_list_remove(DnsWorker *w, DnsTcpConnection *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                w->conn_first = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                w->conn_last = c->prev;
        c->prev = c->next = NULL;
}

static void conn_list_append(DnsWorker *w, DnsTcpConnection *c) {
        c->prev = w->conn_last;
        c->next = NULL;
        if (w->conn_last)
                w->conn_last->next = c;
        else
                w->conn_first = c;
        w->conn_last = c;
}

static void worker_maybe_done(DnsWorker *w);

static void worker_signal(DnsWorker *w) {
        uint64_t one = 1;

        /* A full counter (never, in practice) still wakes the worker. */
        (void) !write(w->control_fd, &one, sizeof one);
}

static DnsTcpConnection *conn_free(DnsTcpConnection *c) {
        DnsWorker *w;

        if (!c)
                return NULL;

        w = c->worker;
        if (w) {
                conn_list_remove(w, c);
                SHARED_STORE(w->n_connections, w->n_connections - 1);
                (void) __atomic_fetch_sub(&w->server->n_connections, 1, __ATOMIC_RELAXED);
        }
        /* The io source owns the fd. */
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        free(c->rbuf);
        free(c->wbuf);
        free(c);
        if (w)
                worker_maybe_done(w);
        return NULL;
}

/* Something happened that shows the peer is alive and being served: restart
 * the idle timer and move it to the recently-active end of the list. Bytes
 * alone do not count, so a client dribbling a byte now and then is still
 * closed. */
static void conn_touch(DnsTcpConnection *c) {
        DnsWorker *w = c->worker;
        int r;

        c->last_outq = -1;
        r = sd_event_source_set_time_relative(c->timer_source, w->server->tcp_idle_timeout_msec * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "Failed to restart DNS TCP idle timer, ignoring: %m");

        conn_list_remove(w, c);
        conn_list_append(w, c);
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

/* Sends one reply (already framed in the worker's tcp_reply), keeping
 * whatever the socket does not take now. */
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
        DnsWorker *w = c->worker;
        uint64_t n_replied = 0;
        bool forwarded;
        int r = 0, error = 0;

        while (c->woff == c->wlen && c->rlen - c->roff >= 2) {
                const uint8_t *p = c->rbuf + c->roff;
                size_t mlen = wire_get_u16(p);
                DnsQueryInfo info = {};
                size_t len;

                /* Nothing shorter than a header is a DNS message; a client
                 * sending such is broken, and we cannot resynchronise. */
                if (mlen < DNS_HEADER_SIZE) {
                        error = -EBADMSG;
                        break;
                }

                if (c->rlen - c->roff < 2 + mlen) {
                        /* Incomplete: make sure it will fit, at the start of the buffer. */
                        if (c->roff > 0) {
                                memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
                                c->rlen -= c->roff;
                                c->roff = 0;
                        }
                        if (c->rsize < 2 + mlen) {
                                uint8_t *b = realloc(c->rbuf, 2 + mlen);
                                if (!b) {
                                        error = -ENOMEM;
                                        break;
                                }
                                c->rbuf = b;
                                c->rsize = 2 + mlen;
                        }
                        break;
                }

                forwarded = false;
                rcu_reader_lock();
                len = answer_query(w, worker_config(w), DNS_TRANSPORT_TCP, p + 2, mlen, w->tcp_reply + 2,
                                   DNS_TCP_MESSAGE_MAX, &info);
                if (len > 0 && info.forward) {
                        r = tcp_forward(c, p + 2, mlen);
                        forwarded = r == 0;
                        if (r == -ENOBUFS) /* the forwarder is overloaded: say so */
                                w->tcp_reply[2 + 3] = (w->tcp_reply[2 + 3] & 0xf0) | DNS_RCODE_SERVFAIL;
                }
                rcu_reader_unlock();
                c->roff += 2 + mlen;

                if (len == 0)
                        continue;
                c->answered++; /* answered, or handed to the forwarder: served */
                count_query(w, DNS_TRANSPORT_TCP, &info, forwarded);
                log_query(DNS_TRANSPORT_TCP, &info, forwarded, p + 2, mlen, NULL, c->fd);
                conn_touch(c);
                if (forwarded)
                        continue;

                wire_put_u16(w->tcp_reply, (uint16_t) len);
                r = conn_send(c, w->tcp_reply, 2 + len);
                if (r < 0) {
                        error = r;
                        break;
                }
                n_replied++;
        }

        /* One clock reading for the replies of this pass. Their queries came
         * with the latest read (reading pauses while replies wait), or an
         * earlier one: they are counted from that one. */
        if (n_replied > 0)
                dns_duration_observe(&w->counters.duration[DNS_TRANSPORT_TCP], c->received_nsec,
                                     dns_duration_now_nsec(), n_replied);
        if (error < 0)
                return error;

        if (c->roff == c->rlen)
                c->roff = c->rlen = 0;
        return 0;
}

/* Reads what the socket holds. Returns the bytes read (0 at EOF, when
 * nothing is there, or when the buffer is full), or a negative errno. */
static int conn_read(DnsTcpConnection *c) {
        ReceiveControl control;
        struct iovec iov;
        struct msghdr m;
        ssize_t k;

        if (c->roff > 0 && c->rlen == c->rsize) {
                memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
                c->rlen -= c->roff;
                c->roff = 0;
        }
        if (c->rlen == c->rsize)
                return 0; /* full of complete messages waiting for output to drain */

        iov = (struct iovec) { .iov_base = c->rbuf + c->rlen, .iov_len = c->rsize - c->rlen };
        m = (struct msghdr) {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = c->worker->tcp->timestamps ? control.buf : NULL,
                .msg_controllen = c->worker->tcp->timestamps ? sizeof control.buf : 0,
        };
        k = recvmsg(c->fd, &m, MSG_DONTWAIT);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return negative_errno();
        }
        if (k == 0)
                c->eof = true;
        else {
                /* The kernel's timestamp is that of the last segment read. */
                c->received_nsec = dns_receive_time_nsec(&m);
                if (c->received_nsec == 0)
                        c->received_nsec = dns_duration_now_nsec();
        }
        c->rlen += (size_t) k;
        return (int) MIN(k, (ssize_t) INT_MAX);
}

/* Stopping, every answer written: ends our side after them and closes once
 * the client's kernel has acknowledged them all (or the client closed too).
 * Closing earlier could leave them to an orphaned socket, which the kernel
 * may reset, or reset them at once if the client sent more. Returns true when
 * the connection was freed. */
static bool conn_linger(DnsTcpConnection *c) {
        int outq = 0;

        if (!c->shut_wr) {
                c->shut_wr = true;
                if (shutdown(c->fd, SHUT_WR) < 0)
                        goto done;
        }
        if (ioctl(c->fd, SIOCOUTQ, &outq) < 0 || outq == 0)
                goto done;
        /* Poll: no event says "all acknowledged". A client that never reads
         * is closed when the stop's grace period ends. */
        if (sd_event_source_set_io_events(c->io_source, EPOLLIN) < 0 ||
            sd_event_source_set_time_relative(c->timer_source, 20 * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT) < 0)
                goto done;
        return false;
done:
        conn_free(c);
        return true;
}

/* Stopping: answers what the client has sent already, without waiting for
 * more, then lingers until the client has the answers. Returns false while
 * the connection waits (for EPOLLOUT, or in conn_linger()), true when it was
 * freed. */
static bool conn_stop_step(DnsTcpConnection *c) {
        /* Bounded: a client streaming queries does not hold the exit up. */
        for (unsigned i = 0; i < 64; i++) {
                int r = conn_process(c);

                if (r < 0)
                        goto fail;
                if (c->woff < c->wlen) {
                        if (conn_update_events(c) < 0)
                                goto fail;
                        return false;
                }
                if (c->eof)
                        break;
                r = conn_read(c);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
        }
        return conn_linger(c);
fail:
        conn_free(c);
        return true;
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

        if (c->shut_wr) {
                uint8_t discard[512];

                /* Lingering: the client closing (or failing) ends it;
                 * anything it still sends cannot be answered any more. */
                ssize_t k = recv(fd, discard, sizeof discard, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                        conn_free(c);
                else
                        (void) conn_linger(c);
                return 0;
        }
        if (c->worker->stopping) {
                (void) conn_stop_step(c);
                return 0;
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
        DnsWorker *w = c->worker;
        int outq = 0;

        if (c->shut_wr) {
                (void) conn_linger(c);
                return 0;
        }

        /* Replies may sit in a large kernel send buffer that a slow but live
         * client is still reading: we see no EPOLLOUT, yet it is progressing.
         * Give it another period as long as that queue shrinks. */
        if (ioctl(c->fd, SIOCOUTQ, &outq) >= 0 && outq > 0 && (c->last_outq < 0 || outq < c->last_outq)) {
                int r;

                c->last_outq = outq;
                r = sd_event_source_set_time_relative(c->timer_source,
                                                      w->server->tcp_idle_timeout_msec * USEC_PER_MSEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
                if (r >= 0)
                        return 0;
        }

        COUNTER_INC(w->counters.tcp_timeouts);
        log_debug("DNS TCP connection idle for %" PRIu32 " ms, closing", w->server->tcp_idle_timeout_msec);
        conn_free(c);
        return 0;
}

/* Closes this worker's connection that has made the least progress: the
 * fewest queries answered, then the least recently active. A client that
 * holds a partial query, or never sends one, gives way to any client that is
 * being served; among those that hold on to nothing, the oldest goes first.
 * Returns false when the worker has no connection. */
static bool evict_one(DnsWorker *w) {
        DnsTcpConnection *victim = NULL;

        /* The list runs from the least recently active: the first of the
         * fewest answered is the one. */
        for (DnsTcpConnection *c = w->conn_first; c; c = c->next)
                if (!victim || c->answered < victim->answered)
                        victim = c;
        if (!victim)
                return false;

        log_debug("DNS TCP connection limit (%" PRIu32 ") reached, closing a connection with %" PRIu64
                  " queries answered and %zu bytes of a query pending",
                  w->server->tcp_max_connections, victim->answered, victim->rlen - victim->roff);
        conn_free(victim);
        return true;
}

/* At the cap: makes room for a new client, here or, when this worker has no
 * connection, in the worker with the most (it closes one as soon as it reads
 * our request; the new client is taken meanwhile). Returns false when there
 * is no connection to close anywhere. */
static bool make_room(DnsWorker *w) {
        DnsServer *s = w->server;
        DnsWorker *busiest = NULL;
        uint32_t most = 0;

        if (evict_one(w))
                return true;
        for (unsigned i = 0; i < s->n_workers; i++) {
                uint32_t n = SHARED_LOAD(s->workers[i].n_connections);

                if (&s->workers[i] != w && n > most) {
                        busiest = &s->workers[i];
                        most = n;
                }
        }
        if (!busiest)
                return false;
        (void) __atomic_fetch_add(&busiest->evict_requests, 1, __ATOMIC_RELAXED);
        worker_signal(busiest);
        return true;
}

static int conn_new(DnsWorker *w, int fd) {
        DnsServer *s = w->server;
        DnsTcpConnection *c;
        int r;

        c = new0(DnsTcpConnection, 1);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->last_outq = -1;
        c->worker = w;
        c->id = ++w->next_conn_id;
        conn_list_append(w, c);
        SHARED_STORE(w->n_connections, w->n_connections + 1);
        (void) __atomic_fetch_add(&s->n_connections, 1, __ATOMIC_RELAXED);

        r = sd_event_add_io(w->event, &c->io_source, fd, EPOLLIN, conn_on_io, c);
        if (r < 0) {
                safe_close(fd);
                conn_free(c);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(c->io_source, true);
        (void) sd_event_source_set_description(c->io_source, "dns-tcp-connection");

        r = sd_event_add_time_relative(w->event, &c->timer_source, CLOCK_MONOTONIC,
                                       s->tcp_idle_timeout_msec * USEC_PER_MSEC, 10 * USEC_PER_MSEC, conn_on_timeout,
                                       c);
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
        DnsWorker *w = userdata;
        DnsServer *s = w->server;
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

                if (SHARED_LOAD(s->n_connections) >= s->tcp_max_connections && !make_room(w)) {
                        /* Accept and close at once: leaving it in the backlog
                         * would keep the listening socket readable forever. */
                        COUNTER_INC(w->counters.tcp_rejected);
                        log_debug("DNS TCP connection limit (%" PRIu32 ") reached, refusing connection",
                                  s->tcp_max_connections);
                        safe_close(cfd);
                        continue;
                }

                (void) setsockopt_int(cfd, IPPROTO_TCP, TCP_NODELAY, 1);

                r = conn_new(w, cfd);
                if (r < 0) {
                        log_warning_errno(r, "Failed to set up DNS TCP connection: %m");
                        continue;
                }
                COUNTER_INC(w->counters.tcp_connections);
        }
        return 0;
}

/* --- forwarding ---------------------------------------------------------- */

/* The hand-off: the forwarder copies the query and replies itself, over UDP
 * on the socket the query came in on, over TCP through the worker's reply
 * queue. Called under rcu_reader_lock(): the forwarder read here is not freed
 * before the section ends (dns_server_set_forwarder() waits for that). */

static int udp_forward(DnsWorker *w, const UdpSlot *slot, const struct msghdr *in, size_t len, uint64_t received_nsec) {
        DnsForwarder *f = rcu_dereference(w->server->forwarder);
        PktInfoControl control;
        size_t cl = 0;

        if (!f)
                return -ENOENT;
        if (w->udp->pktinfo)
                cl = udp_reply_control(in, &control);
        return dns_forwarder_submit(f,
                                    &(DnsForwardClient) {
                                            .transport = DNS_TRANSPORT_UDP,
                                            .peer = (const struct sockaddr *) &slot->peer,
                                            .peer_len = in->msg_namelen,
                                            .udp_fd = w->udp->fd,
                                            .control = cl > 0 ? control.buf : NULL,
                                            .control_len = cl,
                                            .received_nsec = received_nsec,
                                    },
                                    slot->query, len);
}

static int tcp_forward(DnsTcpConnection *c, const uint8_t *query, size_t len) {
        DnsForwarder *f = rcu_dereference(c->worker->server->forwarder);
        struct sockaddr_storage peer = {};
        socklen_t peer_len = sizeof peer;
        int r;

        if (!f)
                return -ENOENT;
        if (getpeername(c->fd, (struct sockaddr *) &peer, &peer_len) < 0)
                return negative_errno();
        r = dns_forwarder_submit(f,
                                 &(DnsForwardClient) {
                                         .transport = DNS_TRANSPORT_TCP,
                                         .peer = (const struct sockaddr *) &peer,
                                         .peer_len = peer_len,
                                         .udp_fd = -EBADF,
                                         .replies = c->worker->replies,
                                         .conn_id = c->id,
                                         .received_nsec = c->received_nsec,
                                 },
                                 query, len);
        if (r >= 0)
                c->n_forwarding++;
        return r;
}

static DnsTcpConnection *conn_find(DnsWorker *w, uint64_t id) {
        for (DnsTcpConnection *c = w->conn_last; c; c = c->prev)
                if (c->id == id)
                        return c;
        return NULL;
}

static int on_forward_replies(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsWorker *w = userdata;

        for (DnsForwardReply *r = dns_reply_queue_take(w->replies), *next; r; r = next) {
                DnsTcpConnection *c = conn_find(w, r->conn_id);
                int k = 0;

                next = r->next;
                if (c) {
                        uint8_t *framed = malloc(2 + r->len);

                        c->n_forwarding--;
                        if (framed) {
                                wire_put_u16(framed, (uint16_t) r->len);
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
        DnsForwarder *old;

        if (!s)
                return -EINVAL;
        old = s->forwarder;
        rcu_publish(s->forwarder, f);
        /* The caller may free the old one once we return: wait until no
         * thread can still be handing it a question. */
        if (old && old != f)
                rcu_synchronize();
        return 0;
}

/* --- the worker's loop ---------------------------------------------------- */

/* Stopping and no connection left: the thread can end. */
static void worker_maybe_done(DnsWorker *w) {
        if (w->stopping && !w->conn_first)
                (void) sd_event_exit(w->event, 0);
}

static int worker_on_stop_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        DnsWorker *w = userdata;

        /* Clients that did not take their answers in time. */
        if (w->conn_first)
                log_notice("Closing %" PRIu32
                           " DNS TCP connection(s) whose clients did not read their answers "
                           "in time.",
                           w->n_connections);
        while (w->conn_first)
                conn_free(w->conn_first);
        return sd_event_exit(w->event, 0);
}

/* Stops taking queries; the ones already received get their answers: what
 * waits in the UDP socket, and every complete query a TCP client sent. */
static void worker_begin_stop(DnsWorker *w) {
        int r;

        /* Connections still in the listen queue have sent queries too, and
         * closing the listening socket would reset them: take them first. */
        (void) tcp_on_accept(w->tcp_source, w->tcp->fd, EPOLLIN, w);
        w->stopping = true;
        (void) sd_event_source_set_enabled(w->tcp_source, SD_EVENT_OFF);
        (void) udp_serve(w, UDP_BATCHES_PER_WAKEUP); /* and worker_loop() reads UDP no more */

        for (DnsTcpConnection *c = w->conn_first, *next; c; c = next) {
                next = c->next;
                (void) conn_stop_step(c);
        }

        r = sd_event_add_time_relative(w->event, &w->stop_timer, CLOCK_MONOTONIC, STOP_GRACE_USEC, 0,
                                       worker_on_stop_timeout, w);
        if (r < 0)
                (void) worker_on_stop_timeout(NULL, 0, w);
        worker_maybe_done(w);
}

/* Someone wrote to our eventfd: the control loop (a watchdog ping, a stop)
 * or another worker at the connection cap (close one of ours). */
static int worker_on_control(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DnsWorker *w = userdata;
        uint32_t evict;
        uint64_t v;

        (void) !read(fd, &v, sizeof v);
        for (evict = __atomic_exchange_n(&w->evict_requests, 0, __ATOMIC_RELAXED); evict > 0; evict--)
                if (!evict_one(w))
                        break;
        /* Answering the ping shows that this loop turns. */
        SHARED_STORE(w->ping_answered, __atomic_load_n(&w->ping, __ATOMIC_ACQUIRE));
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) && !w->stopping)
                worker_begin_stop(w);
        return 0;
}

/* The worker's loop: sd-event's, with UDP read beside it rather than through
 * it. A socket in an epoll set keeps the epoll's entry on its wait queue for
 * good, and the kernel walks that queue for every reply sent (the freed
 * reply makes room in the send buffer: "write space"), a wakeup per query
 * that finds nobody to wake. So UDP is read here in batches while queries
 * keep coming, the loop's own sources (TCP, control, timers, forwarded
 * replies) get a non-blocking turn between budgets, and only when the
 * socket is drained does the thread sleep, in poll() on the UDP socket and
 * the loop's fd together: then the socket's wait queue holds an entry only
 * while nobody is sending on it. */
static int worker_loop(DnsWorker *w) {
        int event_fd = sd_event_get_fd(w->event);

        if (event_fd < 0)
                return event_fd;

        for (;;) {
                bool drained = true;
                int r;

                if (!w->stopping)
                        drained = udp_serve(w, UDP_BATCHES_PER_WAKEUP);

                r = sd_event_prepare(w->event);
                if (r == 0 && drained) {
                        struct pollfd p[2] = {
                                { .fd = event_fd, .events = POLLIN },
                                { .fd = w->udp->fd, .events = POLLIN },
                        };

                        /* sd-event's timers are timerfds in its fd, armed by
                         * the prepare step: no timeout needed here. */
                        if (poll(p, w->stopping ? 1 : 2, -1) < 0 && errno != EINTR)
                                return negative_errno();
                }
                /* Also when only UDP woke us: the prepared loop must pass
                 * through its wait step (an empty epoll_wait then). */
                if (r == 0)
                        r = sd_event_wait(w->event, 0);
                if (r > 0)
                        r = sd_event_dispatch(w->event);
                if (r < 0)
                        return r;
                if (sd_event_get_state(w->event) == SD_EVENT_FINISHED)
                        return 0;
        }
}

static void *worker_main(void *userdata) {
        DnsWorker *w = userdata;
        char name[16];
        int r;

        /* Shows in ps, top and /proc/PID/task/TID/comm. */
        (void) snprintf(name, sizeof name, "dns-%u", w->index);
        (void) pthread_setname_np(pthread_self(), name);
        /* A query should not wait for the control loop or a worker to use
         * up its time slice: see thread-sched.h. */
        thread_request_slice(name, DNS_THREAD_SLICE_NSEC);
        rcu_attach_thread();

        r = worker_loop(w);
        if (r < 0)
                log_error_errno(r, "DNS answering thread %u failed: %m", w->index);

        rcu_detach_thread();
        return NULL;
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
                return log_error_errno(-EINVAL, "Passed DNS %s fd %i is a %s socket, expected a %s socket", what, fd,
                                       t == SOCK_STREAM  ? "stream"
                                       : t == SOCK_DGRAM ? "datagram"
                                                         : "other",
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

/* Asks the kernel to stamp each received packet with its arrival time
 * (SO_TIMESTAMPNS; accepted TCP connections inherit it from the listening
 * socket), for the request-duration histogram. Best effort: without it a
 * query is timed from when the thread read it. */
static void socket_enable_timestamps(DnsSocket *sock) {
        int r = setsockopt_int(sock->fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);

        if (r < 0)
                log_debug_errno(
                        r, "Could not enable receive timestamps on DNS socket, timing queries from their read: %m");
        sock->timestamps = r >= 0;
}

/* Makes a UDP socket ready: a large receive buffer, packet info when it is
 * bound to a wildcard address, receive timestamps. */
static int udp_socket_prepare(DnsSocket *sock) {
        struct sockaddr_storage sa;
        char where[INET6_ADDRSTRLEN + 16];
        int r;

        r = describe_fd(sock->fd, where, sizeof(where), &sa);
        if (r < 0)
                return log_error_errno(r, "Failed to get address of DNS UDP socket: %m");

        /* Best effort: bursts of queries should queue rather than be dropped.
         * FORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; without it
         * we get what rmem_max allows. */
        if (setsockopt_int(sock->fd, SOL_SOCKET, SO_RCVBUFFORCE, UDP_RCVBUF_WANTED) < 0 &&
            setsockopt_int(sock->fd, SOL_SOCKET, SO_RCVBUF, UDP_RCVBUF_WANTED) < 0)
                log_debug("Could not raise DNS UDP receive buffer, using the default");

        if (sockaddr_is_wildcard(&sa)) {
                if (sa.ss_family == AF_INET6)
                        r = setsockopt_int(sock->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
                else
                        r = setsockopt_int(sock->fd, IPPROTO_IP, IP_PKTINFO, 1);
                if (r < 0)
                        return log_error_errno(r, "Failed to enable packet info on DNS UDP socket %s: %m", where);
                sock->pktinfo = true;
                log_debug(
                        "DNS UDP socket %s: bound to all addresses, replies leave from the address each query "
                        "was sent to",
                        where);
        } else
                /* The kernel sends from the bound address anyway: no packet
                 * info to receive, parse and send back with every query. */
                log_debug("DNS UDP socket %s: bound to one address, replies leave from it", where);
        socket_enable_timestamps(sock);
        return 0;
}

/* The sockets of one type: the passed one, shared; or n bound here, with
 * SO_REUSEPORT when there are several. Before those, a plain socket checks
 * that nobody holds the address: SO_REUSEPORT would otherwise let a second
 * instance started by mistake share it silently. */
static int sockets_setup(DnsServer *s, int type, int passed_fd, const DnsServerOptions *opts, unsigned n,
                         const char *where, DnsSocket **ret, unsigned *ret_n) {
        const char *what = type == SOCK_DGRAM ? "UDP" : "TCP";
        DnsSocket *socks;
        int r;

        if (passed_fd >= 0) {
                r = check_passed_fd(passed_fd, type, what);
                if (r < 0)
                        return r;
                n = 1;
        }
        socks = new0(DnsSocket, n);
        if (!socks)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++)
                socks[i].fd = -EBADF;
        *ret = socks;
        *ret_n = n;

        if (passed_fd >= 0)
                socks[0].fd = passed_fd;
        else {
                if (n > 1) {
                        _cleanup_close_ int probe = -EBADF;

                        r = bind_socket(type, opts->bind_address, opts->port, false, &probe);
                        if (r < 0)
                                return log_error_errno(r, "Failed to bind DNS %s socket %s: %m", what, where);
                }
                for (unsigned i = 0; i < n; i++) {
                        r = bind_socket(type, opts->bind_address, opts->port, n > 1, &socks[i].fd);
                        if (r < 0)
                                return log_error_errno(r, "Failed to bind DNS %s socket %s: %m", what, where);
                }
        }

        for (unsigned i = 0; i < n; i++) {
                if (type == SOCK_STREAM) {
                        socket_enable_timestamps(&socks[i]);
                        continue;
                }
                r = udp_socket_prepare(&socks[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int worker_init(DnsServer *s, DnsWorker *w, unsigned index, const DnsSocket *udp, const DnsSocket *tcp) {
        int r;

        *w = (DnsWorker) {
                .server = s,
                .index = index,
                .udp = udp,
                .tcp = tcp,
                .control_fd = -EBADF,
        };

        r = sd_event_new(&w->event);
        if (r < 0)
                return r;

        w->control_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->control_fd < 0)
                return negative_errno();
        r = sd_event_add_io(w->event, &w->control_source, w->control_fd, EPOLLIN, worker_on_control, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_io_fd_own(w->control_source, true);
        w->control_fd = sd_event_source_get_io_fd(w->control_source);
        (void) sd_event_source_set_description(w->control_source, "dns-control");

        /* The sockets stay the server's: shared ones are watched by every
         * worker. UDP is not in the loop's epoll: worker_loop() reads it. */
        r = sd_event_add_io(w->event, &w->tcp_source, tcp->fd, EPOLLIN, tcp_on_accept, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->tcp_source, "dns-tcp-listen");

        r = dns_reply_queue_new(&w->replies);
        if (r < 0)
                return r;
        r = sd_event_add_io(w->event, &w->replies_source, dns_reply_queue_get_fd(w->replies), EPOLLIN,
                            on_forward_replies, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->replies_source, "dns-forward-replies");

        w->slots = new0(UdpSlot, UDP_BATCH);
        if (!w->slots)
                return -ENOMEM;
        return 0;
}

static void worker_done(DnsWorker *w) {
        if (!w->event)
                return;
        while (w->conn_first)
                conn_free(w->conn_first);
        w->stop_timer = sd_event_source_disable_unref(w->stop_timer);
        w->tcp_source = sd_event_source_disable_unref(w->tcp_source);
        w->control_source = sd_event_source_disable_unref(w->control_source); /* closes control_fd */
        w->replies_source = sd_event_source_disable_unref(w->replies_source);
        w->replies = dns_reply_queue_unref(w->replies);
        w->event = sd_event_unref(w->event);
        w->slots = mfree(w->slots);
}

static int build_description(DnsServer *s) {
        struct sockaddr_storage sa;
        char u[INET6_ADDRSTRLEN + 16], t[INET6_ADDRSTRLEN + 16];
        int r;

        r = describe_fd(s->workers[0].udp->fd, u, sizeof(u), &sa);
        if (r < 0)
                return r;
        r = describe_fd(s->workers[0].tcp->fd, t, sizeof(t), &sa);
        if (r < 0)
                return r;
        if (asprintf(&s->description, "udp %s, tcp %s", u, t) < 0) {
                s->description = NULL;
                return -ENOMEM;
        }
        return 0;
}

static DnsAnswerConfig *answer_config_copy(const DnsAnswerConfig *cfg) {
        DnsAnswerConfig *c = g_new(DnsAnswerConfig, 1);

        *c = (DnsAnswerConfig) {
                .domains = g_strdupv(cfg->domains),
                .negative_ttl = cfg->negative_ttl,
                .soa_mname = g_strdup(cfg->soa_mname),
                .soa_rname = g_strdup(cfg->soa_rname),
        };
        return c;
}

static void answer_config_free(void *p) {
        DnsAnswerConfig *c = p;

        if (!c)
                return;
        g_strfreev(c->domains);
        g_free((char *) c->soa_mname);
        g_free((char *) c->soa_rname);
        g_free(c);
}

int dns_server_set_config(DnsServer *s, const DnsAnswerConfig *cfg) {
        const DnsAnswerConfig *old = s->cfg;

        rcu_publish(s->cfg, (const DnsAnswerConfig *) answer_config_copy(cfg));
        /* Threads answering with the old one finish with it first. */
        if (old)
                rcu_free_deferred((void *) old, answer_config_free);
        return 0;
}

unsigned dns_server_default_threads(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        if (n < 1)
                return 1;
        return (unsigned) MIN(n, (long) DNS_THREADS_DEFAULT_MAX);
}

int dns_server_new(DnsServer **ret, const Store *store, const DnsAnswerConfig *cfg, const DnsServerOptions *opts) {
        _cleanup_(dns_server_freep) DnsServer *s = NULL;
        char where[INET6_ADDRSTRLEN + 16];
        DnsSocket *udp = NULL, *tcp = NULL;
        unsigned n, n_udp = 0, n_tcp = 0;
        int r;

        if (!ret || !store || !cfg || !opts)
                return -EINVAL;

        n = opts->threads > 0 ? opts->threads : dns_server_default_threads();
        n = MIN(n, (unsigned) DNS_THREADS_MAX);

        s = new0(DnsServer, 1);
        if (!s)
                return -ENOMEM;
        s->store = store;
        s->tcp_idle_timeout_msec = opts->tcp_idle_timeout_msec > 0 ? opts->tcp_idle_timeout_msec : 10000;
        s->tcp_max_connections = opts->tcp_max_connections > 0 ? opts->tcp_max_connections : 256;
        (void) dns_server_set_config(s, cfg);

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

        /* The server closes the sockets it keeps. Passed fds it keeps only on
         * success: on failure they stay the caller's. */
        r = sockets_setup(s, SOCK_DGRAM, opts->udp_fd, opts, n, where, &udp, &n_udp);
        s->udp_sockets = udp;
        s->n_udp = n_udp;
        s->udp_passed = opts->udp_fd >= 0;
        if (r < 0)
                return r;
        r = sockets_setup(s, SOCK_STREAM, opts->tcp_fd, opts, n, where, &tcp, &n_tcp);
        s->tcp_sockets = tcp;
        s->n_tcp = n_tcp;
        s->tcp_passed = opts->tcp_fd >= 0;
        if (r < 0)
                return r;

        s->workers = new0(DnsWorker, n);
        if (!s->workers)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++) {
                s->n_workers = i + 1;
                r = worker_init(s, &s->workers[i], i, &udp[i % n_udp], &tcp[i % n_tcp]);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up DNS answering thread %u: %m", i);
        }

        r = build_description(s);
        if (r < 0)
                return log_error_errno(r, "Failed to describe DNS sockets: %m");

        /* Success: the passed sockets are ours now. */
        s->udp_passed = s->tcp_passed = false;
        *ret = TAKE_PTR(s);
        return 0;
}

int dns_server_start(DnsServer *s) {
        for (unsigned i = 0; i < s->n_workers; i++) {
                int r;

                if (s->workers[i].started)
                        continue;
                r = -pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to start DNS answering thread %u: %m", i);
                s->workers[i].started = true;
        }
        return 0;
}

static void sockets_close(DnsSocket *socks, unsigned n, bool passed) {
        for (unsigned i = 0; socks && i < n; i++)
                if (!passed)
                        safe_close(socks[i].fd);
        free(socks);
}

DnsServer *dns_server_free(DnsServer *s) {
        if (!s)
                return NULL;

        for (unsigned i = 0; i < s->n_workers; i++)
                if (s->workers[i].started) {
                        __atomic_store_n(&s->workers[i].stop, true, __ATOMIC_RELEASE);
                        worker_signal(&s->workers[i]);
                }
        for (unsigned i = 0; i < s->n_workers; i++)
                if (s->workers[i].started)
                        (void) pthread_join(s->workers[i].thread, NULL);
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_done(&s->workers[i]);
        free(s->workers);

        sockets_close(s->udp_sockets, s->n_udp, s->udp_passed);
        sockets_close(s->tcp_sockets, s->n_tcp, s->tcp_passed);
        /* No thread is left to read it. */
        answer_config_free((void *) s->cfg);
        free(s->description);
        free(s);
        return NULL;
}

void dns_server_get_counters(const DnsServer *s, DnsServerCounters *ret) {
        /* Every field is a uint64_t counter: sum them as an array. */
        uint64_t *sum = (uint64_t *) ret;

        G_STATIC_ASSERT(sizeof(DnsServerCounters) % sizeof(uint64_t) == 0);
        *ret = (DnsServerCounters) {};
        for (unsigned i = 0; s && i < s->n_workers; i++) {
                const uint64_t *c = (const uint64_t *) &s->workers[i].counters;

                for (size_t k = 0; k < sizeof(DnsServerCounters) / sizeof(uint64_t); k++)
                        sum[k] += SHARED_LOAD(c[k]);
        }
}

unsigned dns_server_threads(const DnsServer *s) {
        return s ? s->n_workers : 0;
}

const char *dns_server_describe(const DnsServer *s) {
        return s ? strempty(s->description) : "";
}

int dns_server_check_threads(DnsServer *s) {
        int stuck = -1;

        for (unsigned i = 0; s && i < s->n_workers; i++) {
                DnsWorker *w = &s->workers[i];
                uint64_t sent = w->ping; /* only this thread writes it */

                if (SHARED_LOAD(w->ping_answered) < sent) {
                        /* Not pinged again: it still owes the last one. */
                        if (stuck < 0)
                                stuck = (int) i;
                        continue;
                }
                __atomic_store_n(&w->ping, sent + 1, __ATOMIC_RELEASE);
                worker_signal(w);
        }
        return stuck;
}
