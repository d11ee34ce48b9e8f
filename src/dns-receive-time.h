/* SPDX-License-Identifier: MIT */
/* When the kernel received a packet, read from its SO_TIMESTAMPNS control
 * message. Apart from dns-server.c so that bench/rx-timestamp-cost.c measures
 * the very walk the answering threads do. Header-only, libc only. */
#pragma once

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* The kernel's receive timestamp (SO_TIMESTAMPNS) in a received message's
 * control data, on dns_duration_now_nsec()'s clock (CLOCK_REALTIME); 0 when
 * there is none. It is the honest start of a request: it counts the time the
 * query waited in the socket for a thread to get to it. */
static inline uint64_t dns_receive_time_nsec(const struct msghdr *m) {
        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(m); cmsg; cmsg = CMSG_NXTHDR((struct msghdr *) m, cmsg))
                if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPNS &&
                    cmsg->cmsg_len == CMSG_LEN(sizeof(struct timespec))) {
                        struct timespec ts;

                        memcpy(&ts, CMSG_DATA(cmsg), sizeof ts);
                        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
                }
        return 0;
}
