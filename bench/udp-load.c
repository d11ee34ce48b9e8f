/* SPDX-License-Identifier: MIT */
/* udp-load: a lean UDP DNS load generator for bench/dns-bench.sh.
 *
 * One dnsperf thread on one core cannot keep one server thread busy on this
 * machine (its core is saturated first), so its queries/s say more about
 * dnsperf than about the server. This program does the least a client can:
 * the queries are built once from the query file, then sent and received in
 * batches (sendmmsg, recvmmsg) on one connected socket (or a few), keeping a
 * fixed window of queries in flight. Each query gets a random ID; a reply
 * counts only if its ID is in flight and its question is the one asked.
 * With -T, several threads do the same, each on sockets of its own, with
 * its share of the window (so that on a core shared with other work the
 * client gets more than one thread's turn).
 *
 *   udp-load -p PORT -d QUERY_FILE [-s 127.0.0.1] [-l SECONDS] [-w WINDOW]
 *            [-b BATCH] [-S SOCKETS] [-T THREADS] [-t TIMEOUT_MS] [-P]
 *
 * The query file is dnsperf's format: "NAME TYPE" per line, blank lines and
 * lines starting with ';' or '#' skipped. Queries go out in file order,
 * round and round, with RD set and no EDNS, as dnsperf sends them. It sends
 * for -l seconds, then waits for what is in flight; a query with no reply
 * after -t milliseconds is lost. At the end it prints one JSON line:
 * queries/s (replies counted over the time from the first send to the last
 * reply), sent, completed, lost, the rcodes, truncated replies, replies that
 * matched no query in flight (late or stray) and replies whose question was
 * not the one asked.
 *
 * It only sends to loopback (127.0.0.0/8 or ::1) and refuses anything else:
 * it is a tool for loading a server on this machine, nothing more. */
#ifndef _GNU_SOURCE /* meson defines it; `cc bench/udp-load.c` does not */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKETS 16
#define MAX_BATCH 256
#define MAX_WINDOW_PER_SOCKET 32768 /* half the ID space: a free ID is found fast */
#define MAX_QUERY 300               /* header + a 255-byte name + type and class */
#define REPLY_SIZE 4096
#define ID_SPACE 65536

/* One query from the file, built once: its wire bytes (ID left 0) live in
 * the shared buffer at `offset`. */
typedef struct Query {
        size_t offset;
        uint16_t size;
} Query;

/* A query in flight on a socket, found by its ID. `active_pos` is its place
 * in the socket's list of IDs in flight, which the timeout scan walks. */
typedef struct Slot {
        uint32_t query; /* index into the queries */
        uint32_t active_pos;
        int64_t sent_ns;
        bool in_use;
} Slot;

typedef struct Sock {
        int fd;
        unsigned window;
        unsigned in_flight;
        Slot *slots;      /* ID_SPACE of them */
        uint16_t *active; /* the IDs in flight, in no order */
} Sock;

/* What every thread reads and none writes while they run. */
typedef struct Run {
        const uint8_t *wire;
        const Query *queries;
        size_t n_queries;
        unsigned batch;
        bool busy_poll;
        int64_t stop_sending, deadline, timeout_ns;
} Run;

typedef struct Counts {
        uint64_t sent;
        uint64_t completed;
        uint64_t lost;
        uint64_t rcode[16];
        uint64_t truncated;
        uint64_t unexpected;
        uint64_t mismatched;
        uint64_t send_errors;
        uint64_t latency_ns_sum;
} Counts;

/* One thread's share of the load: its sockets (a slice of all), its place
 * in the queries, its counts and its own buffers. */
typedef struct Worker {
        pthread_t thread;
        const Run *run;
        Sock *socks;
        unsigned n_socks;
        size_t next_query;
        uint64_t rng;
        int64_t last_reply;
        int error; /* errno of a failed poll() */
        Counts c;
        uint8_t send_bufs[MAX_BATCH][MAX_QUERY];
        uint8_t recv_bufs[MAX_BATCH][REPLY_SIZE];
        struct mmsghdr msgs[MAX_BATCH];
        struct iovec iovs[MAX_BATCH];
        uint16_t ids[MAX_BATCH];
        struct pollfd pfds[MAX_SOCKETS];
} Worker;

static int64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64*: IDs need to be unpredictable to nobody here, only spread. */
static uint16_t random_id(uint64_t *state) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        return (uint16_t) ((*state * 0x2545F4914F6CDD1DULL) >> 48);
}

static const struct {
        const char *name;
        uint16_t type;
} query_types[] = {
        { "A", 1 },       { "NS", 2 },    { "CNAME", 5 },  { "SOA", 6 },    { "PTR", 12 },  { "MX", 15 },
        { "TXT", 16 },    { "AAAA", 28 }, { "SRV", 33 },   { "NAPTR", 35 }, { "DS", 43 },   { "RRSIG", 46 },
        { "DNSKEY", 48 }, { "SVCB", 64 }, { "HTTPS", 65 }, { "CAA", 257 },  { "ANY", 255 },
};

static int parse_type(const char *s, uint16_t *ret) {
        for (size_t i = 0; i < sizeof(query_types) / sizeof(query_types[0]); i++)
                if (strcasecmp(s, query_types[i].name) == 0) {
                        *ret = query_types[i].type;
                        return 0;
                }
        if (strncasecmp(s, "TYPE", 4) == 0 && s[4] >= '0' && s[4] <= '9') {
                char *end;
                unsigned long v;

                errno = 0;
                v = strtoul(s + 4, &end, 10);
                if (errno == 0 && *end == '\0' && v <= 65535) {
                        *ret = (uint16_t) v;
                        return 0;
                }
        }
        return -EINVAL;
}

/* Writes the query for NAME/TYPE into buf (MAX_QUERY bytes): header with ID
 * 0 and RD, one question of class IN. Returns its size or a negative errno. */
static int build_query(const char *name, uint16_t type, uint8_t *buf) {
        size_t len = strlen(name), i = 12;

        if (len > 0 && name[len - 1] == '.')
                len--;
        memset(buf, 0, 12);
        buf[2] = 0x01; /* RD, as dnsperf sends */
        buf[5] = 1;    /* QDCOUNT */
        for (size_t start = 0; start < len;) {
                const char *dot = memchr(name + start, '.', len - start);
                size_t label = (dot ? (size_t) (dot - name) : len) - start;

                if (label == 0 || label > 63)
                        return -EINVAL;
                if (i + 1 + label + 1 + 4 > 12 + 255 + 4)
                        return -ENAMETOOLONG;
                buf[i++] = (uint8_t) label;
                memcpy(buf + i, name + start, label);
                i += label;
                start += label + 1;
        }
        buf[i++] = 0;
        buf[i++] = (uint8_t) (type >> 8);
        buf[i++] = (uint8_t) type;
        buf[i++] = 0;
        buf[i++] = 1; /* IN */
        return (int) i;
}

/* Reads the query file into one buffer of wire queries. */
static int load_queries(const char *path, uint8_t **ret_wire, Query **ret_queries, size_t *ret_n) {
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t line_size = 0, n = 0, cap = 0, wire_size = 0, wire_cap = 0, lineno = 0;
        uint8_t *wire = NULL;
        Query *queries = NULL;
        int r = 0;

        if (!f) {
                fprintf(stderr, "udp-load: cannot open the query file %s: %s\n", path, strerror(errno));
                return -errno;
        }
        while (getline(&line, &line_size, f) >= 0) {
                char name[1024], type_name[32], extra[2];
                uint16_t type;
                int fields, size;

                lineno++;
                fields = sscanf(line, "%1023s %31s %1s", name, type_name, extra);
                if (fields <= 0 || name[0] == ';' || name[0] == '#')
                        continue;
                if (fields != 2) {
                        fprintf(stderr, "udp-load: %s:%zu: expected \"NAME TYPE\"\n", path, lineno);
                        r = -EINVAL;
                        break;
                }
                if (parse_type(type_name, &type) < 0) {
                        fprintf(stderr, "udp-load: %s:%zu: unknown query type \"%s\"\n", path, lineno, type_name);
                        r = -EINVAL;
                        break;
                }
                if (n == cap) {
                        Query *q;

                        cap = cap ? cap * 2 : 1024;
                        q = realloc(queries, cap * sizeof(Query));
                        if (!q) {
                                r = -ENOMEM;
                                break;
                        }
                        queries = q;
                }
                if (wire_size + MAX_QUERY > wire_cap) {
                        uint8_t *w;

                        wire_cap = wire_cap ? wire_cap * 2 : 65536;
                        w = realloc(wire, wire_cap);
                        if (!w) {
                                r = -ENOMEM;
                                break;
                        }
                        wire = w;
                }
                size = build_query(name, type, wire + wire_size);
                if (size < 0) {
                        fprintf(stderr, "udp-load: %s:%zu: \"%s\" is not a valid domain name\n", path, lineno, name);
                        r = size;
                        break;
                }
                queries[n++] = (Query) { .offset = wire_size, .size = (uint16_t) size };
                wire_size += (size_t) size;
        }
        free(line);
        (void) fclose(f);
        if (r == 0 && n == 0) {
                fprintf(stderr, "udp-load: %s holds no queries\n", path);
                r = -EINVAL;
        }
        if (r < 0) {
                if (r == -ENOMEM)
                        fprintf(stderr, "udp-load: out of memory reading %s\n", path);
                free(wire);
                free(queries);
                return r;
        }
        *ret_wire = wire;
        *ret_queries = queries;
        *ret_n = n;
        return 0;
}

/* Fills `sa` from ADDR and PORT if ADDR is a loopback address; anything else
 * is refused. */
static int parse_loopback(const char *addr, unsigned port, struct sockaddr_storage *sa, socklen_t *ret_len) {
        struct sockaddr_in *in4 = (struct sockaddr_in *) sa;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;

        memset(sa, 0, sizeof(*sa));
        if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
                if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
                        return -EPERM;
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t) port);
                *ret_len = sizeof(*in4);
                return 0;
        }
        if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
                if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return -EPERM;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof(*in6);
                return 0;
        }
        return -EINVAL;
}

static int open_socket(const struct sockaddr_storage *sa, socklen_t len) {
        int fd = socket(sa->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int size = 4 << 20;

        if (fd < 0)
                return -errno;
        /* Room for a whole window of replies whatever the batch; best effort. */
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        if (connect(fd, (const struct sockaddr *) sa, len) < 0) {
                int r = -errno;

                (void) close(fd);
                return r;
        }
        return fd;
}

static void slot_release(Sock *s, uint16_t id) {
        Slot *slot = &s->slots[id];
        uint16_t last = s->active[--s->in_flight];

        /* Swap the last ID in flight into the released one's place. */
        s->active[slot->active_pos] = last;
        s->slots[last].active_pos = slot->active_pos;
        slot->in_use = false;
}

/* Sends up to `batch` new queries on s, as many as its window has room for. */
static void send_batch(Worker *w, Sock *s, int64_t now) {
        const Run *run = w->run;
        uint8_t(*bufs)[MAX_QUERY] = w->send_bufs;
        struct mmsghdr *msgs = w->msgs;
        struct iovec *iovs = w->iovs;
        uint16_t *ids = w->ids;
        size_t *next_query = &w->next_query;
        unsigned k = s->window - s->in_flight, batch = run->batch;
        Counts *c = &w->c;
        int sent;

        if (k == 0)
                return;
        if (k > batch)
                k = batch;
        for (unsigned i = 0; i < k; i++) {
                const Query *q = &run->queries[*next_query];
                uint16_t id = random_id(&w->rng);
                Slot *slot;

                while (s->slots[id].in_use)
                        id++;
                slot = &s->slots[id];
                *slot = (Slot) {
                        .query = (uint32_t) *next_query, .active_pos = s->in_flight, .sent_ns = now, .in_use = true
                };
                s->active[s->in_flight++] = id;
                ids[i] = id;
                memcpy(bufs[i], run->wire + q->offset, q->size);
                bufs[i][0] = (uint8_t) (id >> 8);
                bufs[i][1] = (uint8_t) id;
                iovs[i] = (struct iovec) { .iov_base = bufs[i], .iov_len = q->size };
                msgs[i] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &iovs[i], .msg_iovlen = 1 } };
                if (++*next_query == run->n_queries)
                        *next_query = 0;
        }
        sent = sendmmsg(s->fd, msgs, k, MSG_DONTWAIT);
        if (sent < 0) {
                /* A full send buffer or the ICMP error of an earlier query
                 * (nobody listening): these were not sent. */
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        c->send_errors++;
                sent = 0;
        }
        c->sent += (unsigned) sent;
        /* Whatever the kernel did not take is not in flight. */
        for (unsigned i = (unsigned) sent; i < k; i++)
                slot_release(s, ids[i]);
}

/* Reads what replies are waiting on s; returns how many datagrams. */
static int receive_batch(Worker *w, Sock *s, int64_t now) {
        const Run *run = w->run;
        uint8_t(*bufs)[REPLY_SIZE] = w->recv_bufs;
        struct mmsghdr *msgs = w->msgs;
        struct iovec *iovs = w->iovs;
        unsigned batch = run->batch;
        Counts *c = &w->c;
        int got;

        for (unsigned i = 0; i < batch; i++) {
                iovs[i] = (struct iovec) { .iov_base = bufs[i], .iov_len = REPLY_SIZE };
                msgs[i] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &iovs[i], .msg_iovlen = 1 } };
        }
        got = recvmmsg(s->fd, msgs, batch, MSG_DONTWAIT, NULL);
        if (got <= 0)
                return 0; /* EAGAIN, or the ICMP error of a query nobody heard */
        for (int i = 0; i < got; i++) {
                const uint8_t *m = bufs[i];
                size_t len = msgs[i].msg_len;
                uint16_t id;
                Slot *slot;
                const Query *q;

                if (len < 12 || !(m[2] & 0x80)) {
                        c->unexpected++;
                        continue;
                }
                id = (uint16_t) (m[0] << 8 | m[1]);
                slot = &s->slots[id];
                if (!slot->in_use) {
                        c->unexpected++; /* late (already counted lost) or stray */
                        continue;
                }
                /* The question must be the one asked: everything after the
                 * header, byte for byte (both servers echo it as sent). */
                q = &run->queries[slot->query];
                if (len < q->size || m[5] != 1 || m[4] != 0 ||
                    memcmp(m + 12, run->wire + q->offset + 12, q->size - 12u) != 0) {
                        c->mismatched++;
                        slot_release(s, id);
                        continue;
                }
                c->completed++;
                c->rcode[m[3] & 0x0f]++;
                if (m[2] & 0x02)
                        c->truncated++;
                c->latency_ns_sum += (uint64_t) (now - slot->sent_ns);
                slot_release(s, id);
        }
        w->last_reply = now;
        return got;
}

/* Counts as lost every query in flight on s for longer than timeout. */
static void expire(Sock *s, int64_t now, int64_t timeout_ns, Counts *c) {
        for (unsigned i = 0; i < s->in_flight;) {
                uint16_t id = s->active[i];

                if (now - s->slots[id].sent_ns >= timeout_ns) {
                        c->lost++;
                        slot_release(s, id); /* moves another ID to i */
                } else
                        i++;
        }
}

/* One thread: keeps its sockets' windows full until the run's end, then
 * waits for what is in flight (up to the timeout). */
static void *worker_run(void *arg) {
        Worker *w = arg;
        const Run *run = w->run;
        int64_t last_expire = now_ns();

        for (;;) {
                int64_t now = now_ns();
                bool sending = now < run->stop_sending, any = false;
                unsigned in_flight = 0;

                if (now - last_expire >= 10000000) {
                        for (unsigned i = 0; i < w->n_socks; i++)
                                expire(&w->socks[i], now, run->timeout_ns, &w->c);
                        last_expire = now;
                }
                for (unsigned i = 0; i < w->n_socks; i++) {
                        Sock *s = &w->socks[i];

                        if (sending)
                                send_batch(w, s, now);
                        if (receive_batch(w, s, now) > 0)
                                any = true;
                        in_flight += s->in_flight;
                }
                if (!sending && (in_flight == 0 || now >= run->deadline))
                        break;
                /* Nothing came back: wait for a reply rather than spin (a
                 * window with room was just topped up). */
                if (!any && !run->busy_poll && poll(w->pfds, w->n_socks, 10) < 0 && errno != EINTR) {
                        w->error = errno;
                        break;
                }
        }
        for (unsigned i = 0; i < w->n_socks; i++)
                w->c.lost += w->socks[i].in_flight; /* still unanswered after the timeout */
        return NULL;
}

static void usage(FILE *out) {
        fprintf(out,
                "Usage: udp-load -p PORT -d QUERY_FILE [-s ADDRESS] [-l SECONDS] [-w WINDOW]\n"
                "                [-b BATCH] [-S SOCKETS] [-T THREADS] [-t TIMEOUT_MS] [-P]\n"
                "  -s ADDRESS     server, 127.0.0.0/8 or ::1 only (default 127.0.0.1)\n"
                "  -p PORT        server port\n"
                "  -d FILE        queries, \"NAME TYPE\" per line (dnsperf's format)\n"
                "  -l SECONDS     how long to send (default 10)\n"
                "  -w WINDOW      queries in flight, over all sockets (default 256)\n"
                "  -b BATCH       datagrams per sendmmsg/recvmmsg (default 32, at most %d)\n"
                "  -S SOCKETS     sockets, each with its own source port (default: one per thread,\n"
                "                 at most %d)\n"
                "  -T THREADS     threads, each with its own sockets and share of the window\n"
                "                 (default 1)\n"
                "  -t TIMEOUT_MS  a query with no reply after this is lost (default 1000)\n"
                "  -P             busy-poll: never sleep waiting for replies (the client's\n"
                "                 core then shows 100%% busy whatever the load)\n",
                MAX_BATCH, MAX_SOCKETS);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, const char *what, unsigned long *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
                fprintf(stderr, "udp-load: %s must be a number from %lu to %lu, not \"%s\"\n", what, min, max, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static const char *const rcode_names[16] = {
        "noerror", "formerr", "servfail", "nxdomain", "notimp", "refused",
};

int main(int argc, char *argv[]) {
        const char *address = "127.0.0.1", *query_file = NULL;
        unsigned long port = 0, seconds = 10, window = 256, batch = 32, n_sockets = 0, timeout_ms = 1000, n_threads = 1,
                      started = 0;
        struct sockaddr_storage sa;
        socklen_t sa_len;
        uint8_t *wire = NULL;
        Query *queries = NULL;
        size_t n_queries = 0;
        Sock socks[MAX_SOCKETS] = {};
        Worker *workers = NULL;
        Run run = {};
        Counts c = {};
        int64_t start, last_reply, end;
        uint64_t other = 0;
        double elapsed;
        bool busy_poll = false;
        int opt, r, ret = 1, poll_error = 0;

        while ((opt = getopt(argc, argv, "s:p:d:l:w:b:S:T:t:Ph")) >= 0) {
                r = 0;
                switch (opt) {
                case 's':
                        address = optarg;
                        break;
                case 'p':
                        r = parse_uint(optarg, 1, 65535, "the port (-p)", &port);
                        break;
                case 'd':
                        query_file = optarg;
                        break;
                case 'l':
                        r = parse_uint(optarg, 1, 3600, "the run length in seconds (-l)", &seconds);
                        break;
                case 'w':
                        r = parse_uint(optarg, 1, MAX_WINDOW_PER_SOCKET, "the window (-w)", &window);
                        break;
                case 'b':
                        r = parse_uint(optarg, 1, MAX_BATCH, "the batch (-b)", &batch);
                        break;
                case 'S':
                        r = parse_uint(optarg, 1, MAX_SOCKETS, "the number of sockets (-S)", &n_sockets);
                        break;
                case 'T':
                        r = parse_uint(optarg, 1, MAX_SOCKETS, "the number of threads (-T)", &n_threads);
                        break;
                case 't':
                        r = parse_uint(optarg, 1, 60000, "the timeout in ms (-t)", &timeout_ms);
                        break;
                case 'P':
                        busy_poll = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (r < 0)
                        return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "udp-load: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (port == 0 || !query_file) {
                fprintf(stderr, "udp-load: -p PORT and -d QUERY_FILE are required\n");
                usage(stderr);
                return 2;
        }
        if (n_sockets == 0)
                n_sockets = n_threads;
        if (n_sockets < n_threads) {
                fprintf(stderr, "udp-load: each thread (-T %lu) needs a socket of its own (-S %lu)\n", n_threads,
                        n_sockets);
                return 2;
        }
        if (window < n_sockets) {
                fprintf(stderr, "udp-load: the window (-w %lu) must be at least one query per socket (-S %lu)\n",
                        window, n_sockets);
                return 2;
        }
        r = parse_loopback(address, (unsigned) port, &sa, &sa_len);
        if (r == -EPERM) {
                fprintf(stderr, "udp-load: refusing to send to %s: only loopback (127.0.0.0/8, ::1) is allowed\n",
                        address);
                return 2;
        }
        if (r < 0) {
                fprintf(stderr, "udp-load: \"%s\" is not an IPv4 or IPv6 address\n", address);
                return 2;
        }
        if (load_queries(query_file, &wire, &queries, &n_queries) < 0 || !queries)
                return 1;
        for (unsigned long i = 0; i < MAX_SOCKETS; i++)
                socks[i].fd = -EBADF;
        workers = calloc(n_threads, sizeof(Worker));
        if (!workers) {
                fprintf(stderr, "udp-load: out of memory\n");
                goto finish;
        }

        for (unsigned long i = 0; i < n_sockets; i++) {
                Sock *s = &socks[i];

                s->fd = open_socket(&sa, sa_len);
                if (s->fd < 0) {
                        fprintf(stderr, "udp-load: cannot open a UDP socket to %s port %lu: %s\n", address, port,
                                strerror(-s->fd));
                        goto finish;
                }
                /* The window split over the sockets, the remainder to the first. */
                s->window = (unsigned) (window / n_sockets + (i < window % n_sockets));
                s->slots = calloc(ID_SPACE, sizeof(Slot));
                s->active = calloc(s->window, sizeof(uint16_t));
                if (!s->slots || !s->active) {
                        fprintf(stderr, "udp-load: out of memory\n");
                        goto finish;
                }
        }

        /* The sockets in contiguous slices, one per thread; each thread starts
         * at its own place in the queries. */
        run = (Run) { .wire = wire,
                      .queries = queries,
                      .n_queries = n_queries,
                      .batch = (unsigned) batch,
                      .busy_poll = busy_poll,
                      .timeout_ns = (int64_t) timeout_ms * 1000000 };
        for (unsigned long t = 0; t < n_threads; t++) {
                Worker *w = &workers[t];
                unsigned long first = t * n_sockets / n_threads, last = (t + 1) * n_sockets / n_threads;

                w->run = &run;
                w->socks = &socks[first];
                w->n_socks = (unsigned) (last - first);
                w->next_query = t * n_queries / n_threads;
                for (unsigned i = 0; i < w->n_socks; i++)
                        w->pfds[i] = (struct pollfd) { .fd = w->socks[i].fd, .events = POLLIN };
                if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
                        w->rng = (uint64_t) now_ns() * (t + 1) | 1;
        }

        start = now_ns();
        run.stop_sending = start + (int64_t) seconds * 1000000000;
        run.deadline = run.stop_sending + run.timeout_ns;
        for (; started < n_threads; started++) {
                workers[started].last_reply = start;
                r = pthread_create(&workers[started].thread, NULL, worker_run, &workers[started]);
                if (r != 0) {
                        fprintf(stderr, "udp-load: cannot start a thread: %s\n", strerror(r));
                        goto finish;
                }
        }
        last_reply = start;
        for (unsigned long t = 0; t < n_threads; t++) {
                Worker *w = &workers[t];

                (void) pthread_join(w->thread, NULL);
                if (w->error != 0)
                        poll_error = w->error;
                c.sent += w->c.sent;
                c.completed += w->c.completed;
                c.lost += w->c.lost;
                for (unsigned i = 0; i < 16; i++)
                        c.rcode[i] += w->c.rcode[i];
                c.truncated += w->c.truncated;
                c.unexpected += w->c.unexpected;
                c.mismatched += w->c.mismatched;
                c.send_errors += w->c.send_errors;
                c.latency_ns_sum += w->c.latency_ns_sum;
                if (w->last_reply > last_reply)
                        last_reply = w->last_reply;
        }
        started = 0; /* all joined */
        if (poll_error != 0) {
                fprintf(stderr, "udp-load: poll: %s\n", strerror(poll_error));
                goto finish;
        }

        end = last_reply > run.stop_sending ? last_reply : run.stop_sending;
        elapsed = (double) (end - start) / 1e9;
        printf("{\"qps\": %.1f, \"seconds\": %.3f, \"sent\": %llu, \"completed\": %llu, \"lost\": %llu, "
               "\"rcodes\": {",
               (double) c.completed / elapsed, elapsed, (unsigned long long) c.sent, (unsigned long long) c.completed,
               (unsigned long long) c.lost);
        for (unsigned i = 0, first = 1; i < 16; i++) {
                if (!rcode_names[i]) {
                        other += c.rcode[i];
                        continue;
                }
                printf("%s\"%s\": %llu", first ? "" : ", ", rcode_names[i], (unsigned long long) c.rcode[i]);
                first = 0;
        }
        printf(", \"other\": %llu}, \"truncated\": %llu, \"unexpected\": %llu, \"mismatched\": %llu, "
               "\"send_errors\": %llu, \"latency_avg_us\": %.1f, \"window\": %lu, \"sockets\": %lu, "
               "\"threads\": %lu, \"batch\": %lu, \"busy_poll\": %s}\n",
               (unsigned long long) other, (unsigned long long) c.truncated, (unsigned long long) c.unexpected,
               (unsigned long long) c.mismatched, (unsigned long long) c.send_errors,
               c.completed ? (double) c.latency_ns_sum / (double) c.completed / 1e3 : 0.0, window, n_sockets, n_threads,
               batch, busy_poll ? "true" : "false");
        ret = 0;
finish:
        /* Threads started before a failure: they stop at the run's end. */
        for (unsigned long t = 0; t < started; t++)
                (void) pthread_join(workers[t].thread, NULL);
        free(workers);
        for (unsigned long i = 0; i < n_sockets; i++) {
                if (socks[i].fd >= 0)
                        (void) close(socks[i].fd);
                free(socks[i].slots);
                free(socks[i].active);
        }
        free(wire);
        free(queries);
        return ret;
}
