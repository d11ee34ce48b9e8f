/* SPDX-License-Identifier: MIT */
/* sd-launch: socket activation without systemd, for tests.
 *
 *   sd-launch [--udp ADDR:PORT[=NAME]]... [--tcp ADDR:PORT[=NAME]]... -- COMMAND [ARGS...]
 *
 * Binds each socket (TCP ones listening), puts them on fds 3, 4, ... in the
 * order given, sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID as systemd
 * does (sd_listen_fds(3)), and execs COMMAND. exec keeps the pid, so
 * LISTEN_PID is our own. ADDR is an IPv4 address ("127.0.0.1:5353") or an
 * IPv6 address in brackets ("[::1]:5353"). Plain C, no dependencies. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3
#define MAX_SOCKETS 64

typedef struct Socket {
        const char *spec; /* as given, for messages */
        int type;         /* SOCK_DGRAM or SOCK_STREAM */
        char name[256];
        struct sockaddr_storage sa;
        socklen_t salen;
        int fd;
} Socket;

static const char *program = "sd-launch";

static void usage(FILE *f) {
        fprintf(f,
                "Usage: %s [--udp ADDR:PORT[=NAME]]... [--tcp ADDR:PORT[=NAME]]... -- COMMAND [ARGS...]\n"
                "Binds the sockets, passes them as fds 3, 4, ... in the order given with\n"
                "LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, and executes COMMAND.\n"
                "ADDR is an IPv4 address (127.0.0.1:5353) or an IPv6 address in brackets ([::1]:5353).\n"
                "NAME defaults to \"unknown\".\n",
                program);
}

static int parse_socket(const char *spec, int type, Socket *ret) {
        char buf[512];
        char *addr, *port, *name, *end;
        unsigned long p;

        *ret = (Socket) { .spec = spec, .type = type, .fd = -1 };
        snprintf(ret->name, sizeof ret->name, "unknown");

        if (strlen(spec) >= sizeof(buf)) {
                fprintf(stderr, "%s: '%s': too long\n", program, spec);
                return -1;
        }
        snprintf(buf, sizeof buf, "%s", spec);

        name = strchr(buf, '=');
        if (name) {
                *name++ = 0;
                if (*name == 0 || strlen(name) >= sizeof(ret->name) || strchr(name, ':')) {
                        fprintf(stderr, "%s: '%s': the name must be 1-255 characters without ':'\n", program, spec);
                        return -1;
                }
                snprintf(ret->name, sizeof ret->name, "%s", name);
        }

        addr = buf;
        if (addr[0] == '[') {
                char *close = strchr(addr, ']');
                if (!close || close[1] != ':') {
                        fprintf(stderr, "%s: '%s': expected [IPV6]:PORT\n", program, spec);
                        return -1;
                }
                *close = 0;
                addr++;
                port = close + 2;
        } else {
                port = strrchr(addr, ':');
                if (!port) {
                        fprintf(stderr, "%s: '%s': expected ADDR:PORT\n", program, spec);
                        return -1;
                }
                *port++ = 0;
        }

        errno = 0;
        p = strtoul(port, &end, 10);
        if (errno != 0 || *port == 0 || *end != 0 || p > 65535 || port[0] == '-' || port[0] == '+') {
                fprintf(stderr, "%s: '%s': '%s' is not a port number (0-65535)\n", program, spec, port);
                return -1;
        }

        if (buf[0] != '[' && inet_pton(AF_INET, addr, &((struct sockaddr_in *) &ret->sa)->sin_addr) == 1) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ret->sa;
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) p);
                ret->salen = sizeof(*in);
        } else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *) &ret->sa)->sin6_addr) == 1) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ret->sa;
                if (spec[0] != '[') {
                        fprintf(stderr, "%s: '%s': put IPv6 addresses in brackets: [%s]:%s\n", program, spec, addr,
                                port);
                        return -1;
                }
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) p);
                ret->salen = sizeof(*in6);
        } else {
                fprintf(stderr, "%s: '%s': '%s' is not an IPv4 or IPv6 address\n", program, spec, addr);
                return -1;
        }

        return 0;
}

static int open_socket(Socket *s) {
        int one = 1;

        s->fd = socket(s->sa.ss_family, s->type | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                fprintf(stderr, "%s: cannot create socket for '%s': %s\n", program, s->spec, strerror(errno));
                return -1;
        }
        if (s->type == SOCK_STREAM && setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
                fprintf(stderr, "%s: cannot set SO_REUSEADDR for '%s': %s\n", program, s->spec, strerror(errno));
                return -1;
        }
        if (bind(s->fd, (struct sockaddr *) &s->sa, s->salen) < 0) {
                fprintf(stderr, "%s: cannot bind %s socket '%s': %s\n", program, s->type == SOCK_STREAM ? "TCP" : "UDP",
                        s->spec, strerror(errno));
                return -1;
        }
        if (s->type == SOCK_STREAM && listen(s->fd, SOMAXCONN) < 0) {
                fprintf(stderr, "%s: cannot listen on '%s': %s\n", program, s->spec, strerror(errno));
                return -1;
        }
        return 0;
}

/* Moves the sockets to 3, 4, ... First everything goes above the target
 * range, so that no dup2() overwrites a socket not yet moved. */
static int move_fds(Socket *sockets, int n) {
        for (int i = 0; i < n; i++) {
                int fd = fcntl(sockets[i].fd, F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + n);
                if (fd < 0) {
                        fprintf(stderr, "%s: cannot duplicate fd: %s\n", program, strerror(errno));
                        return -1;
                }
                close(sockets[i].fd);
                sockets[i].fd = fd;
        }

        for (int i = 0; i < n; i++) {
                int target = SD_LISTEN_FDS_START + i;

                if (dup2(sockets[i].fd, target) < 0) {
                        fprintf(stderr, "%s: cannot move socket to fd %i: %s\n", program, target, strerror(errno));
                        return -1;
                }
                close(sockets[i].fd);
                sockets[i].fd = target;
                /* dup2() gives a new fd without FD_CLOEXEC, but say so
                 * explicitly: the fd is what COMMAND must inherit. */
                if (fcntl(target, F_SETFD, 0) < 0) {
                        fprintf(stderr, "%s: cannot clear close-on-exec on fd %i: %s\n", program, target,
                                strerror(errno));
                        return -1;
                }
        }
        return 0;
}

int main(int argc, char *argv[]) {
        Socket sockets[MAX_SOCKETS];
        int n = 0, i;
        char names[MAX_SOCKETS * 257] = "";
        char num[32];

        if (argc > 0 && argv[0])
                program = argv[0];

        for (i = 1; i < argc; i++) {
                const char *a = argv[i], *value = NULL;
                int type;

                if (strcmp(a, "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        return 0;
                }

                if (strncmp(a, "--udp", 5) == 0 && (a[5] == 0 || a[5] == '='))
                        type = SOCK_DGRAM;
                else if (strncmp(a, "--tcp", 5) == 0 && (a[5] == 0 || a[5] == '='))
                        type = SOCK_STREAM;
                else {
                        fprintf(stderr, "%s: unknown option '%s' (COMMAND must follow '--')\n", program, a);
                        usage(stderr);
                        return 2;
                }

                if (a[5] == '=')
                        value = a + 6;
                else if (i + 1 < argc)
                        value = argv[++i];
                else {
                        fprintf(stderr, "%s: '%s' needs ADDR:PORT[=NAME]\n", program, a);
                        return 2;
                }

                if (n >= MAX_SOCKETS) {
                        fprintf(stderr, "%s: at most %i sockets\n", program, MAX_SOCKETS);
                        return 2;
                }
                if (parse_socket(value, type, &sockets[n]) < 0)
                        return 2;
                n++;
        }

        if (i >= argc) {
                fprintf(stderr, "%s: no COMMAND given after '--'\n", program);
                usage(stderr);
                return 2;
        }

        for (int k = 0; k < n; k++)
                if (open_socket(&sockets[k]) < 0)
                        return 1;

        if (move_fds(sockets, n) < 0)
                return 1;

        for (int k = 0, len = 0; k < n; k++)
                len += snprintf(names + len, sizeof names - len, "%s%s", k > 0 ? ":" : "", sockets[k].name);

        /* LISTEN_PID is our pid: exec does not change it. */
        snprintf(num, sizeof(num), "%i", n);
        if (setenv("LISTEN_FDS", num, 1) < 0 || setenv("LISTEN_FDNAMES", names, 1) < 0)
                goto fail_env;
        snprintf(num, sizeof(num), "%li", (long) getpid());
        if (setenv("LISTEN_PID", num, 1) < 0)
                goto fail_env;

        execvp(argv[i], argv + i);
        fprintf(stderr, "%s: cannot execute '%s': %s\n", program, argv[i], strerror(errno));
        return 127;

fail_env:
        fprintf(stderr, "%s: cannot set environment: %s\n", program, strerror(errno));
        return 1;
}
