/* SPDX-License-Identifier: MIT */
/* What timing each query costs, without the noise of a whole DNS load test:
 * the CPU per UDP datagram of a loopback send (sendmmsg) and receive
 * (recvmmsg) in batches of 32, as the answering threads do, in one thread so
 * that the softirq delivery is counted too, in four modes:
 *
 *   none            no timing at all (the reference)
 *   stamps          SO_TIMESTAMPNS on the receiving socket, nothing read
 *   stamps+hist     that, the timestamp read from the control data (with
 *                   dns_receive_time_nsec(), the answering threads' own
 *                   helper) and counted in a DnsDurationHistogram, one clock
 *                   reading per batch: what joyrided does
 *   clock+hist      no kernel stamps: one clock reading when the batch is
 *                   read and one when it is answered, and the histogram (the
 *                   fallback, which does not see the time a query waited in
 *                   the socket)
 *
 * Each mode runs ROUNDS times, interleaved; the best of each is printed, and
 * the differences to "none". Build and run (pinned, as the bench pins servers):
 *
 *   cc -O2 -Isrc bench/rx-timestamp-cost.c -o /tmp/rx-timestamp-cost
 *   taskset -c 0 /tmp/rx-timestamp-cost [DATAGRAMS_PER_RUN]
 *
 * (meson builds it too, as BUILD/bench/rx-timestamp-cost.)
 *
 * Note that a socket with receive timestamps makes the kernel stamp every
 * packet it receives, host-wide, while it is open; if another program holds
 * such a socket, "none" pays part of that too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg(), sendmmsg(); meson defines it already */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns-duration.h"
#include "dns-receive-time.h"

#define BATCH 32
#define ROUNDS 8

enum { MODE_NONE, MODE_STAMPS, MODE_STAMPS_HIST, MODE_CLOCK_HIST, _MODE_MAX };
static const char *const mode_names[_MODE_MAX] = { "none", "stamps", "stamps+hist", "clock+hist" };

static double cpu_seconds(void) {
        struct rusage u;

        (void) getrusage(RUSAGE_SELF, &u);
        return (double) (u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               (double) (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static DnsDurationHistogram histogram;

/* Nanoseconds of CPU per datagram, or a negative number on failure. */
static double run(int mode, long datagrams) {
        static uint8_t out_buf[BATCH][48], in_buf[BATCH][512], control[BATCH][128];
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct mmsghdr out[BATCH], in[BATCH];
        struct iovec out_iov[BATCH], in_iov[BATCH];
        socklen_t alen = sizeof a;
        int rx, tx, one = 1, rcvbuf = 4 << 20;
        long received = 0;
        double t0, t;

        rx = socket(AF_INET, SOCK_DGRAM, 0);
        tx = socket(AF_INET, SOCK_DGRAM, 0);
        if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *) &a, sizeof a) < 0 ||
            getsockname(rx, (struct sockaddr *) &a, &alen) < 0)
                return -1;
        if (setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
                (void) setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if ((mode == MODE_STAMPS || mode == MODE_STAMPS_HIST) &&
            setsockopt(rx, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
                return -1;
        for (int i = 0; i < BATCH; i++) {
                memset(out_buf[i], i, sizeof out_buf[i]);
                out_iov[i] = (struct iovec) { .iov_base = out_buf[i], .iov_len = sizeof out_buf[i] };
                out[i] = (struct mmsghdr) {
                        .msg_hdr = { .msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &out_iov[i], .msg_iovlen = 1 }
                };
        }

        t0 = cpu_seconds();
        for (long k = 0; k < datagrams / BATCH; k++) {
                uint64_t start = 0, now;
                int n;

                if (sendmmsg(tx, out, BATCH, 0) < 0)
                        return -1;
                for (int i = 0; i < BATCH; i++) {
                        in_iov[i] = (struct iovec) { .iov_base = in_buf[i], .iov_len = sizeof in_buf[i] };
                        in[i] = (struct mmsghdr) { .msg_hdr = { .msg_iov = &in_iov[i],
                                                                .msg_iovlen = 1,
                                                                .msg_control = control[i],
                                                                .msg_controllen = sizeof control[i] } };
                }
                n = recvmmsg(rx, in, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                        continue;
                received += n;
                if (mode == MODE_CLOCK_HIST)
                        start = dns_duration_now_nsec();
                if (mode != MODE_STAMPS_HIST && mode != MODE_CLOCK_HIST)
                        continue;
                now = dns_duration_now_nsec();
                for (int i = 0; i < n; i++) {
                        uint64_t received_nsec =
                                mode == MODE_CLOCK_HIST ? start : dns_receive_time_nsec(&in[i].msg_hdr);
                        dns_duration_observe(&histogram, received_nsec, now, 1);
                }
        }
        t = cpu_seconds() - t0;
        (void) close(rx);
        (void) close(tx);
        return received > 0 ? t / (double) received * 1e9 : -1;
}

int main(int argc, char **argv) {
        long datagrams = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
        double best[_MODE_MAX];

        for (int m = 0; m < _MODE_MAX; m++)
                best[m] = 1e12;
        for (int r = 0; r < ROUNDS; r++)
                for (int i = 0; i < _MODE_MAX; i++) {
                        int m = (r + i) % _MODE_MAX;
                        double v = run(m, datagrams);

                        if (v < 0) {
                                perror("rx-timestamp-cost");
                                return 1;
                        }
                        if (v < best[m])
                                best[m] = v;
                }
        printf("ns of CPU per datagram, best of %d runs of %ld:", ROUNDS, datagrams);
        for (int m = 0; m < _MODE_MAX; m++)
                if (m == MODE_NONE)
                        printf(" %s %.1f", mode_names[m], best[m]);
                else
                        printf(", %s %+.1f", mode_names[m], best[m] - best[MODE_NONE]);
        printf("\n");
        return 0;
}
