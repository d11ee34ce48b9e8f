/* SPDX-License-Identifier: MIT */
/* What it costs per UDP reply that the answering thread's socket sits in an
 * epoll set, without the noise of a whole DNS load test. A reply's buffer is
 * freed as it is delivered (on loopback, within sendmmsg()), which makes room
 * in the socket's send buffer, and the kernel then wakes the socket's wait
 * queue ("write space") if anything waits on it. An epoll set watching the
 * socket keeps an entry there for as long as it watches, so every reply pays
 * for that wakeup, even though nobody waits for EPOLLOUT. A thread that reads
 * the socket directly and waits in poll() only when it is drained leaves the
 * queue empty while it sends.
 *
 * One thread plays client and server over loopback, in batches of 32 as the
 * answering threads do: the client sends 32 queries (sendmmsg), the server
 * reads them (recvmmsg) and sends 32 replies (sendmmsg), the client reads
 * them. CPU per query and reply, in two modes:
 *
 *   plain   the server socket is in no epoll set (joyrided's answering
 *           threads since they read UDP beside their sd-event loop)
 *   epoll   the server socket is in an epoll set for EPOLLIN, never waited
 *           on (as when it was an sd-event io source)
 *
 * Each mode runs ROUNDS times, interleaved; the best of each is printed and
 * the difference. Build and run (pinned, as the bench pins servers):
 *
 *   cc -O2 bench/udp-wait-cost.c -o /tmp/udp-wait-cost
 *   taskset -c 0 /tmp/udp-wait-cost [QUERIES_PER_RUN]
 *
 * (meson builds it too, as BUILD/bench/udp-wait-cost.) With
 * UDP_WAIT_COST_MODE=plain or epoll it runs that mode once, for perf. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg(), sendmmsg(); meson defines it already */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define ROUNDS 10

enum { MODE_PLAIN, MODE_EPOLL, _MODE_MAX };
static const char *const mode_names[_MODE_MAX] = { "plain", "epoll" };

static double cpu_seconds(void) {
        struct rusage u;

        (void) getrusage(RUSAGE_SELF, &u);
        return (double) (u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               (double) (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int bound_socket(struct sockaddr_in *ret) {
        socklen_t len = sizeof *ret;
        int fd = socket(AF_INET, SOCK_DGRAM, 0), size = 4 << 20;

        *ret = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (fd < 0 || bind(fd, (struct sockaddr *) ret, sizeof *ret) < 0 ||
            getsockname(fd, (struct sockaddr *) ret, &len) < 0)
                return -1;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        return fd;
}

/* Fills msgs to send BATCH datagrams of bufs to peer (NULL: to whoever the
 * message names already) or to receive into bufs. */
static void prepare(struct mmsghdr *msgs, struct iovec *iov, uint8_t (*bufs)[512], size_t len,
                    struct sockaddr_in *peers, struct sockaddr_in *to) {
        for (int i = 0; i < BATCH; i++) {
                iov[i] = (struct iovec) { .iov_base = bufs[i], .iov_len = len };
                msgs[i] = (struct mmsghdr) { .msg_hdr = { .msg_name = to ? (void *) to : (void *) &peers[i],
                                                          .msg_namelen = sizeof *to,
                                                          .msg_iov = &iov[i],
                                                          .msg_iovlen = 1 } };
        }
}

/* Nanoseconds of CPU per query and reply, or a negative number on failure. */
static double run(int mode, long queries) {
        static uint8_t qbuf[BATCH][512], sbuf[BATCH][512], cbuf[BATCH][512];
        struct sockaddr_in server_addr, client_addr, peers[BATCH];
        struct mmsghdr q_out[BATCH], s_in[BATCH], s_out[BATCH], c_in[BATCH];
        struct iovec q_iov[BATCH], si_iov[BATCH], so_iov[BATCH], ci_iov[BATCH];
        int server, client, ep = -1;
        long answered = 0;
        double t0, t;

        server = bound_socket(&server_addr);
        client = bound_socket(&client_addr);
        if (server < 0 || client < 0)
                return -1;
        if (mode == MODE_EPOLL) {
                struct epoll_event ev = { .events = EPOLLIN };

                ep = epoll_create1(0);
                if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, server, &ev) < 0)
                        return -1;
        }
        memset(qbuf, 0x5a, sizeof qbuf);

        t0 = cpu_seconds();
        for (long k = 0; k < queries / BATCH; k++) {
                int n, m;

                prepare(q_out, q_iov, qbuf, 40, NULL, &server_addr);
                if (sendmmsg(client, q_out, BATCH, 0) != BATCH)
                        return -1;
                prepare(s_in, si_iov, sbuf, sizeof sbuf[0], peers, NULL);
                n = recvmmsg(server, s_in, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                        return -1;
                /* The replies: the queries' bytes and some more, as a DNS answer is. */
                prepare(s_out, so_iov, sbuf, 80, peers, NULL);
                if (sendmmsg(server, s_out, (unsigned) n, 0) != n)
                        return -1;
                prepare(c_in, ci_iov, cbuf, sizeof cbuf[0], peers, NULL);
                m = recvmmsg(client, c_in, BATCH, MSG_DONTWAIT, NULL);
                if (m > 0)
                        answered += m;
        }
        t = cpu_seconds() - t0;
        if (ep >= 0)
                (void) close(ep);
        (void) close(server);
        (void) close(client);
        return answered > 0 ? t / (double) answered * 1e9 : -1;
}

int main(int argc, char **argv) {
        long queries = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
        const char *only = getenv("UDP_WAIT_COST_MODE");
        double best[_MODE_MAX];

        /* One mode alone, for a profiler: UDP_WAIT_COST_MODE=epoll perf record ... */
        for (int m = 0; only && m < _MODE_MAX; m++)
                if (strcmp(only, mode_names[m]) == 0) {
                        printf("%s %.1f\n", mode_names[m], run(m, queries));
                        return 0;
                }

        for (int m = 0; m < _MODE_MAX; m++)
                best[m] = 1e12;
        for (int r = 0; r < ROUNDS; r++)
                for (int i = 0; i < _MODE_MAX; i++) {
                        int m = (r + i) % _MODE_MAX;
                        double v = run(m, queries);

                        if (v < 0) {
                                perror("udp-wait-cost");
                                return 1;
                        }
                        if (v < best[m])
                                best[m] = v;
                }
        printf("ns of CPU per query and reply, best of %d runs of %ld: %s %.1f, %s %+.1f (%+.1f%%)\n", ROUNDS, queries,
               mode_names[MODE_PLAIN], best[MODE_PLAIN], mode_names[MODE_EPOLL], best[MODE_EPOLL] - best[MODE_PLAIN],
               (best[MODE_EPOLL] / best[MODE_PLAIN] - 1) * 100);
        return 0;
}
