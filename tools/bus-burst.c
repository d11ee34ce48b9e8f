/* SPDX-License-Identifier: MIT */
/* A burst of org.joyride.DNS AddRecord (or RemoveRecord) calls, many in flight
 * at once, the way a busy orchestrator would make them: for the tests and the
 * benchmarks, not installed.
 *
 *   bus-burst [--user] [--count N] [--window W] [--prefix P] [--suffix S]
 *             [--remove] [--check-file PATH]
 *
 * Names are P<i>.S for i in [0, N) (S is burst.test unless given), A records 10.<i>. Up to W calls
 * are outstanding at any time. With --check-file, each successful reply is
 * checked against the state file right when it arrives: the daemon promises
 * that a reply comes only once the file holds the change, so the name must
 * be in it (or, with --remove, gone from it). Prints one line of figures;
 * exits 1 if any call failed or any check did not hold. */

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

typedef struct Burst {
        sd_bus *bus;
        unsigned count, window, next, outstanding;
        unsigned ok, failed, not_durable;
        const char *prefix, *suffix;
        const char *check_file;
        bool remove;
        char first_error[256];
} Burst;

static double now_seconds(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void name_of(const Burst *b, unsigned i, char out[static 128]) {
        snprintf(out, 128, "%s%u.%s", b->prefix, i, b->suffix);
}

/* Whether the file holds "name" as a JSON string. */
static bool file_has_name(const char *path, const char *name) {
        char needle[160];
        char *data = NULL;
        size_t size = 0;
        FILE *f;
        bool found;

        f = fopen(path, "re");
        if (!f)
                return false;
        {
                char buf[65536];
                size_t k;
                FILE *mem = open_memstream(&data, &size);

                if (!mem) {
                        fclose(f);
                        return false;
                }
                while ((k = fread(buf, 1, sizeof buf, f)) > 0)
                        fwrite(buf, 1, k, mem);
                fclose(mem);
        }
        fclose(f);
        snprintf(needle, sizeof needle, "\"%s\"", name);
        found = data && strstr(data, needle);
        free(data);
        return found;
}

static int send_one(Burst *b);

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Burst *b = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        b->outstanding--;
        if (e) {
                if (b->failed++ == 0)
                        snprintf(b->first_error, sizeof b->first_error, "%s: %s", e->name, e->message);
        } else
                b->ok++;
        return send_one(b);
}

/* The check needs the name of the call the reply belongs to: one slot each. */
typedef struct Slot {
        Burst *burst;
        unsigned index;
} Slot;

static int on_reply_checked(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Slot *s = userdata;
        Burst *b = s->burst;
        char name[128];

        if (!sd_bus_message_is_method_error(reply, NULL) && b->check_file) {
                name_of(b, s->index, name);
                if (file_has_name(b->check_file, name) == b->remove)
                        b->not_durable++;
        }
        free(s);
        return on_reply(reply, b, ret_error);
}

static int send_one(Burst *b) {
        char name[128], value[32];
        unsigned i;
        Slot *s;
        int r;

        if (b->next >= b->count)
                return 0;
        i = b->next++;
        name_of(b, i, name);
        snprintf(value, sizeof value, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);

        s = malloc(sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (Slot) { b, i };
        if (b->remove)
                r = sd_bus_call_method_async(b->bus, NULL, "org.joyride.DNS", "/org/joyride/DNS", "org.joyride.DNS",
                                             "RemoveRecord", on_reply_checked, s, "sss", name, "A", "");
        else
                r = sd_bus_call_method_async(b->bus, NULL, "org.joyride.DNS", "/org/joyride/DNS", "org.joyride.DNS",
                                             "AddRecord", on_reply_checked, s, "sssu", name, "A", value, 60);
        if (r < 0) {
                free(s);
                return r;
        }
        b->outstanding++;
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = { { "user", no_argument, NULL, 'u' },
                                                 { "count", required_argument, NULL, 'n' },
                                                 { "window", required_argument, NULL, 'w' },
                                                 { "prefix", required_argument, NULL, 'p' },
                                                 { "suffix", required_argument, NULL, 's' },
                                                 { "remove", no_argument, NULL, 'r' },
                                                 { "check-file", required_argument, NULL, 'c' },
                                                 {} };
        Burst b = { .count = 1000, .window = 64, .prefix = "b", .suffix = "burst.test" };
        bool user = false;
        double start, seconds;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'u':
                        user = true;
                        break;
                case 'n':
                        b.count = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'w':
                        b.window = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'p':
                        b.prefix = optarg;
                        break;
                case 's':
                        b.suffix = optarg;
                        break;
                case 'r':
                        b.remove = true;
                        break;
                case 'c':
                        b.check_file = optarg;
                        break;
                default:
                        return 2;
                }
        if (b.window == 0)
                b.window = 1;

        r = user ? sd_bus_open_user(&b.bus) : sd_bus_open_system(&b.bus);
        if (r < 0) {
                fprintf(stderr, "bus-burst: cannot connect to the bus: %s\n", strerror(-r));
                return 1;
        }

        start = now_seconds();
        for (unsigned k = 0; k < b.window; k++)
                if ((r = send_one(&b)) < 0)
                        break;
        while (r >= 0 && b.outstanding > 0) {
                r = sd_bus_process(b.bus, NULL);
                if (r < 0)
                        break;
                if (r == 0)
                        r = sd_bus_wait(b.bus, 30 * 1000000ULL);
        }
        seconds = now_seconds() - start;
        if (r < 0)
                fprintf(stderr, "bus-burst: %s\n", strerror(-r));

        printf("calls=%u ok=%u failed=%u not_durable=%u seconds=%.3f per_second=%.0f\n", b.count, b.ok, b.failed,
               b.not_durable, seconds, seconds > 0 ? b.ok / seconds : 0.0);
        if (b.failed > 0)
                fprintf(stderr, "bus-burst: first error: %s\n", b.first_error);
        sd_bus_flush_close_unref(b.bus);
        return r < 0 || b.failed > 0 || b.not_durable > 0 || b.ok != b.count ? 1 : 0;
}
