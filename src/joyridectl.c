/* SPDX-License-Identifier: MIT */
/* joyridectl: the command line for joyrided, over org.joyride.DNS on D-Bus,
 * in the manner of resolvectl and hostnamectl. A client only: it links
 * libsystemd (sd-bus), json-c and GLib, never the daemon's core.
 *
 * Exit status: 0 success, 1 failure, 2 bad input (ours or the daemon's
 * InvalidArgs), 3 the daemon is not running, 4 permission denied. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <glib.h>
#include <json-c/json.h>
#include <libintl.h>
#include <locale.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "time-util.h"

#define _(s) gettext(s)
#define N_(s) (s)

#define BUS_NAME "org.joyride.DNS"
#define BUS_PATH "/org/joyride/DNS"
#define BUS_INTERFACE "org.joyride.DNS"

enum {
        EXIT_BAD_INPUT = 2,
        EXIT_NOT_RUNNING = 3,
        EXIT_DENIED = 4,
};

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

static bool arg_user = false;
static bool arg_no_pager = false;
static bool arg_legend = true;
static JsonMode arg_json = JSON_OFF;
static const char *arg_source = NULL;
static const char *arg_type = NULL;
static const char *arg_ttl = NULL;

static pid_t pager_pid = 0;

/* --- pager --------------------------------------------------------------- */

/* Pipes our stdout through $PAGER (or less -FRSX) when it is a terminal. */
static void pager_open(void) {
        const char *pager = getenv("PAGER");
        int fds[2];
        pid_t pid;

        if (arg_no_pager || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        if (pager && (isempty(pager) || streq(pager, "cat")))
                return;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                close(fds[0]);
                close(fds[1]);
                return;
        }
        if (pid == 0) {
                if (dup2(fds[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                if (pager)
                        execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                else {
                        execlp("less", "less", "-FRSX", (char *) NULL);
                        execlp("more", "more", (char *) NULL);
                }
                /* No pager at all: pass the text through. */
                execlp("cat", "cat", (char *) NULL);
                _exit(EXIT_FAILURE);
        }
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
                close(fds[0]);
                close(fds[1]);
                return;
        }
        close(fds[0]);
        close(fds[1]);
        pager_pid = pid;
        /* The user may quit the pager before we are done writing. */
        signal(SIGPIPE, SIG_IGN);
}

static void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        fclose(stdout);
        (void) waitpid(pager_pid, NULL, 0);
        pager_pid = 0;
}

/* --- tables -------------------------------------------------------------- */

typedef struct Table {
        size_t n_columns;
        GPtrArray *cells; /* n_columns headers, then the rows, row-major */
        bool *right;      /* right-aligned columns (numbers) */
} Table;

static Table *table_new(size_t n, const char *const *headers, const bool *right) {
        Table *t = g_new0(Table, 1);
        t->n_columns = n;
        t->cells = g_ptr_array_new_with_free_func(g_free);
        t->right = g_new0(bool, n);
        for (size_t i = 0; i < n; i++) {
                g_ptr_array_add(t->cells, g_strdup(headers[i]));
                t->right[i] = right && right[i];
        }
        return t;
}

static void table_free(Table *t) {
        if (!t)
                return;
        g_ptr_array_free(t->cells, TRUE);
        g_free(t->right);
        g_free(t);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Table, table_free)

static void table_add(Table *t, const char *cell) {
        g_ptr_array_add(t->cells, g_strdup(cell));
}

static size_t table_rows(const Table *t) {
        return t->cells->len / t->n_columns - 1;
}

static size_t display_width(const char *s) {
        return g_utf8_validate(s, -1, NULL) ? (size_t) g_utf8_strlen(s, -1) : strlen(s);
}

/* A header line (unless --no-legend), then the rows, columns padded to fit. */
static void table_print(const Table *t) {
        g_autofree size_t *width = g_new0(size_t, t->n_columns);
        size_t first = arg_legend ? 0 : t->n_columns;

        for (size_t i = first; i < t->cells->len; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], display_width(t->cells->pdata[i]));
        for (size_t i = first; i < t->cells->len; i++) {
                size_t col = i % t->n_columns;
                const char *cell = t->cells->pdata[i];
                size_t pad = width[col] - display_width(cell);
                bool last = col == t->n_columns - 1;

                if (t->right[col])
                        printf("%*s%s", (int) pad, "", cell);
                else
                        printf("%s%*s", cell, last ? 0 : (int) pad, "");
                fputs(last ? "\n" : " ", stdout);
        }
}

static void json_print(json_object *o) {
        int flags =
                JSON_C_TO_STRING_NOSLASHESCAPE |
                (arg_json == JSON_PRETTY ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
        puts(json_object_to_json_string_ext(o, flags));
}

/* --- errors -------------------------------------------------------------- */

/* Turns a failed call into a message and an exit status. what says what we
 * tried, for the generic case. */
static int call_failed(sd_bus *bus, const sd_bus_error *e, int r, const char *what) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                fprintf(stderr, "joyridectl: ");
                fprintf(stderr,
                        arg_user ? _("joyrided is not running: nobody owns %s on the user bus.\n")
                                 : _("joyrided is not running: nobody owns %s on the system bus.\n"),
                        BUS_NAME);
                if (arg_user)
                        fprintf(stderr, "%s\n",
                                _("Start a development instance with 'make run', or use --system for the "
                                  "system service."));
                else
                        fprintf(stderr, "%s\n",
                                _("Start the service with 'systemctl start joyride.socket joyride-http.socket', "
                                  "or use --user for a development instance started with 'make run'."));
                return EXIT_NOT_RUNNING;
        }
        if (e && e->name && g_str_has_prefix(e->name, "org.freedesktop.DBus.Error.Spawn.")) {
                fprintf(stderr, "joyridectl: %s %s\n", _("joyrided is not running and could not be started:"),
                        strna(e->message));
                return EXIT_NOT_RUNNING;
        }
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                fprintf(stderr, "joyridectl: %s\n",
                        _("Permission denied: changing records, syncing, reloading and setting the log level need root "
                          "or CAP_NET_ADMIN."));
                return EXIT_DENIED;
        }
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_INVALID_ARGS)) {
                fprintf(stderr, "joyridectl: %s\n", strna(e->message));
                return EXIT_BAD_INPUT;
        }
        if (e && e->message)
                fprintf(stderr, "joyridectl: %s: %s\n", what, e->message);
        else
                fprintf(stderr, "joyridectl: %s: %s\n", what, strerror(-r));
        return EXIT_FAILURE;
}

static int parse_failed(int r) {
        fprintf(stderr, "joyridectl: %s %s\n", _("Failed to read the reply:"), strerror(-r));
        return EXIT_FAILURE;
}

/* --- status -------------------------------------------------------------- */

/* One of the hosts directory's warnings: line 0 for a file or the directory
 * as a whole. */
typedef struct HostsWarningItem {
        char *file, *why;
        uint32_t line;
} HostsWarningItem;

typedef struct Status {
        char *node_id, *docker_state, *docker_error, *hosts_directory, *state_directory, *daemon_version;
        char *etcd_state, *etcd_error;
        char **domains, **listen_addresses;
        GArray *hosts_warnings; /* HostsWarningItem */
        uint64_t version, start_timestamp, uptime;
        uint32_t record_count, member_count, hosts_warning_count;
        uint16_t dns_port;
        int cluster_enabled;
} Status;

static void status_done(Status *s) {
        g_free(s->node_id);
        g_free(s->docker_state);
        g_free(s->docker_error);
        g_free(s->etcd_state);
        g_free(s->etcd_error);
        g_free(s->hosts_directory);
        g_free(s->state_directory);
        g_free(s->daemon_version);
        g_strfreev(s->domains);
        g_strfreev(s->listen_addresses);
        for (guint i = 0; s->hosts_warnings && i < s->hosts_warnings->len; i++) {
                HostsWarningItem *w = &g_array_index(s->hosts_warnings, HostsWarningItem, i);

                g_free(w->file);
                g_free(w->why);
        }
        if (s->hosts_warnings)
                g_array_free(s->hosts_warnings, TRUE);
}

static int read_hosts_warnings(sd_bus_message *m, Status *s) {
        const char *file, *why;
        uint32_t line;
        int r;

        if (!s->hosts_warnings)
                s->hosts_warnings = g_array_new(FALSE, FALSE, sizeof(HostsWarningItem));
        r = sd_bus_message_enter_container(m, 'a', "(sus)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "(sus)", &file, &line, &why)) > 0) {
                HostsWarningItem w = { .file = g_strdup(file), .why = g_strdup(why), .line = line };

                g_array_append_val(s->hosts_warnings, w);
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_strv(sd_bus_message *m, char ***ret) {
        g_autoptr(GPtrArray) a = g_ptr_array_new_with_free_func(g_free);
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0)
                g_ptr_array_add(a, g_strdup(s));
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        g_ptr_array_add(a, NULL);
        *ret = (char **) g_ptr_array_free(g_steal_pointer(&a), FALSE);
        return 0;
}

/* Reads GetAll's a{sv} into Status; unknown properties are skipped, so a
 * newer daemon works with an older joyridectl. */
static int read_status(sd_bus_message *m, Status *s) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name, *contents;
                char **str = NULL;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, NULL, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;

                if (streq(name, "NodeId"))
                        str = &s->node_id;
                else if (streq(name, "DockerState"))
                        str = &s->docker_state;
                else if (streq(name, "DockerError"))
                        str = &s->docker_error;
                else if (streq(name, "EtcdState"))
                        str = &s->etcd_state;
                else if (streq(name, "EtcdError"))
                        str = &s->etcd_error;
                else if (streq(name, "HostsDirectory"))
                        str = &s->hosts_directory;
                else if (streq(name, "StateDirectory"))
                        str = &s->state_directory;
                else if (streq(name, "DaemonVersion"))
                        str = &s->daemon_version;

                if (str && streq(contents, "s")) {
                        const char *v;
                        r = sd_bus_message_read(m, "s", &v);
                        g_free(*str);
                        *str = g_strdup(v);
                } else if (streq(name, "Domains") && streq(contents, "as"))
                        r = read_strv(m, &s->domains);
                else if (streq(name, "ListenAddresses") && streq(contents, "as"))
                        r = read_strv(m, &s->listen_addresses);
                else if (streq(name, "HostsWarnings") && streq(contents, "a(sus)"))
                        r = read_hosts_warnings(m, s);
                else if (streq(name, "HostsWarningCount") && streq(contents, "u"))
                        r = sd_bus_message_read(m, "u", &s->hosts_warning_count);
                else if (streq(name, "Version") && streq(contents, "t"))
                        r = sd_bus_message_read(m, "t", &s->version);
                else if (streq(name, "StartTimestamp") && streq(contents, "t"))
                        r = sd_bus_message_read(m, "t", &s->start_timestamp);
                else if (streq(name, "Uptime") && streq(contents, "t"))
                        r = sd_bus_message_read(m, "t", &s->uptime);
                else if (streq(name, "RecordCount") && streq(contents, "u"))
                        r = sd_bus_message_read(m, "u", &s->record_count);
                else if (streq(name, "MemberCount") && streq(contents, "u"))
                        r = sd_bus_message_read(m, "u", &s->member_count);
                else if (streq(name, "DNSPort") && streq(contents, "q"))
                        r = sd_bus_message_read(m, "q", &s->dns_port);
                else if (streq(name, "ClusterEnabled") && streq(contents, "b"))
                        r = sd_bus_message_read(m, "b", &s->cluster_enabled);
                else
                        r = sd_bus_message_skip(m, contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* v */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* e */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static json_object *json_strv(char **v) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; v && v[i]; i++)
                json_object_array_add(a, json_object_new_string(v[i]));
        return a;
}

/* As /status's hosts_monitor.warning_list: line null for a whole file. */
static json_object *json_hosts_warnings(GArray *warnings) {
        json_object *a = json_object_new_array();

        for (guint i = 0; warnings && i < warnings->len; i++) {
                const HostsWarningItem *w = &g_array_index(warnings, HostsWarningItem, i);

                json_object_array_add(a, json_hosts_warning_new(w->file, w->line, w->why));
        }
        return a;
}

static char *format_timespan(uint64_t usec) {
        uint64_t s = usec / USEC_PER_SEC;
        GString *out = g_string_new(NULL);
        const struct {
                uint64_t secs;
                const char *unit;
        } units[] = {
                { 86400, "d" },
                { 3600, "h" },
                { 60, "min" },
                { 1, "s" },
        };

        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (s >= units[i].secs) {
                        g_string_append_printf(out, "%s%llu%s", out->len ? " " : "",
                                               (unsigned long long) (s / units[i].secs), units[i].unit);
                        s %= units[i].secs;
                }
        if (out->len == 0)
                g_string_append(out, "0s");
        return g_string_free(out, FALSE);
}

static char *format_timestamp(uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;
        char buf[64];

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, sizeof buf, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                return g_strdup("-");
        return g_strdup(buf);
}

/* UTC, to the second, as the HTTP API writes times: "2026-11-30T15:04:05Z".
 * NULL for 0 (never). */
static char *format_iso8601(uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;
        char buf[32];

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return NULL;
        return g_strdup(buf);
}

static void print_field(size_t width, const char *label, const char *value) {
        printf("%*s%s: %s\n", (int) (width - display_width(label)), "", label, value);
}

/* One line per warning, "FILE:LINE: why" as the log has it, the first under
 * the label and the rest aligned below it; nothing when there are none. */
static void print_hosts_warnings(size_t width, const char *label, const Status *s) {
        guint n = s->hosts_warnings ? s->hosts_warnings->len : 0;

        for (guint i = 0; i < n; i++) {
                const HostsWarningItem *w = &g_array_index(s->hosts_warnings, HostsWarningItem, i);
                g_autofree char *text = w->line > 0 ? g_strdup_printf("%s:%u: %s", w->file, w->line, w->why)
                                                    : g_strdup_printf("%s: %s", w->file, w->why);

                if (i == 0)
                        print_field(width, label, text);
                else
                        printf("%*s  %s\n", (int) width, "", text);
        }
        if (s->hosts_warning_count > n) {
                g_autofree char *more = g_strdup_printf(_("… and %u more"), s->hosts_warning_count - n);

                if (n == 0)
                        print_field(width, label, more);
                else
                        printf("%*s  %s\n", (int) width, "", more);
        }
}

static int verb_status(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(status_done) Status s = {};
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply,
                               "s", BUS_INTERFACE);
        if (r < 0)
                return call_failed(bus, &error, r, _("Failed to read the daemon's status"));
        r = read_status(reply, &s);
        if (r < 0)
                return parse_failed(r);

        pager_open();
        if (arg_json != JSON_OFF) {
                g_autofree char *started_iso = format_iso8601(s.start_timestamp);
                json_object *o = json_object_new_object();
                /* The same keys as the HTTP API where the meaning is the same. */
                json_object_object_add(o, "node_id", json_object_new_string(strempty(s.node_id)));
                json_object_object_add(o, "version", json_object_new_string(strempty(s.daemon_version)));
                json_object_object_add(o, "store_version", json_object_new_uint64(s.version));
                json_object_object_add(o, "total_records", json_object_new_int64(s.record_count));
                json_object_object_add(o, "dns_port", json_object_new_int(s.dns_port));
                json_object_object_add(o, "listen_addresses", json_strv(s.listen_addresses));
                json_object_object_add(o, "domains", json_strv(s.domains));
                json_object_object_add(o, "hosts_directory", json_object_new_string(strempty(s.hosts_directory)));
                json_object_object_add(o, "hosts_warnings", json_object_new_int64(s.hosts_warning_count));
                json_object_object_add(o, "hosts_warning_list", json_hosts_warnings(s.hosts_warnings));
                json_object_object_add(o, "docker_state", json_object_new_string(strempty(s.docker_state)));
                json_object_object_add(o, "docker_error", json_object_new_string(strempty(s.docker_error)));
                /* An older daemon has no EtcdState: it shares nothing through etcd. */
                json_object_object_add(o, "etcd_state", json_object_new_string(s.etcd_state ?: "disabled"));
                json_object_object_add(o, "etcd_error", json_object_new_string(strempty(s.etcd_error)));
                json_object_object_add(o, "cluster_enabled", json_object_new_boolean(s.cluster_enabled));
                json_object_object_add(o, "member_count", json_object_new_int64(s.member_count));
                json_object_object_add(o, "state_directory", json_object_new_string(strempty(s.state_directory)));
                json_object_object_add(o, "started", started_iso ? json_object_new_string(started_iso) : NULL);
                json_object_object_add(o, "uptime", json_object_new_uint64(s.uptime / USEC_PER_SEC));
                json_print(o);
                json_object_put(o);
                return EXIT_SUCCESS;
        }

        const char *labels[] = {
                _("Node"),
                _("Daemon version"),
                _("Store version"),
                _("Records"),
                _("DNS"),
                _("Domains"),
                _("Hosts directory"),
                _("Docker"),
                _("Cluster"),
                _("State directory"),
                _("Started"),
                _("etcd"),
                _("Hosts warnings"),
        };
        size_t width = 0;
        for (size_t i = 0; i < ELEMENTSOF(labels); i++)
                width = MAX(width, display_width(labels[i]));

        g_autofree char *version = g_strdup_printf("%llu", (unsigned long long) s.version);
        g_autofree char *records = g_strdup_printf("%u", s.record_count);
        g_autofree char *listen = s.listen_addresses && s.listen_addresses[0] ? g_strjoinv(", ", s.listen_addresses)
                                                                              : g_strdup(_("no sockets"));
        g_autofree char *domains = s.domains && s.domains[0] ? g_strjoinv(", ", s.domains) : g_strdup(_("all names"));
        g_autofree char *docker = isempty(s.docker_error)
                                          ? g_strdup(strna(s.docker_state))
                                          : g_strdup_printf("%s (%s)", strna(s.docker_state), s.docker_error);
        g_autofree char *cluster =
                s.cluster_enabled
                        ? g_strdup_printf(ngettext("enabled, %u member", "enabled, %u members", s.member_count),
                                          s.member_count)
                        : g_strdup(_("disabled"));
        g_autofree char *etcd = isempty(s.etcd_error) ? g_strdup(s.etcd_state ?: "disabled")
                                                      : g_strdup_printf("%s (%s)", strna(s.etcd_state), s.etcd_error);
        g_autofree char *since = format_timestamp(s.start_timestamp);
        g_autofree char *uptime = format_timespan(s.uptime);
        g_autofree char *started = g_strdup_printf(_("%s (up %s)"), since, uptime);

        print_field(width, labels[0], strna(s.node_id));
        print_field(width, labels[1], strna(s.daemon_version));
        print_field(width, labels[2], version);
        print_field(width, labels[3], records);
        print_field(width, labels[4], listen);
        print_field(width, labels[5], domains);
        print_field(width, labels[6], isempty(s.hosts_directory) ? _("none") : s.hosts_directory);
        print_hosts_warnings(width, labels[12], &s);
        print_field(width, labels[7], docker);
        print_field(width, labels[8], cluster);
        print_field(width, labels[11], etcd);
        print_field(width, labels[9], strna(s.state_directory));
        print_field(width, labels[10], started);
        return EXIT_SUCCESS;
}

/* --- records ------------------------------------------------------------- */

static int verb_records(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *headers[] = { _("NAME"), _("TYPE"), _("VALUE"), _("TTL"), _("SOURCE") };
        const bool right[] = { false, false, false, true, false };
        g_autoptr(Table) t = table_new(5, headers, right);
        json_object *array = arg_json != JSON_OFF ? json_object_new_array() : NULL;
        const char *name, *type, *value, *source;
        uint32_t ttl;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "ListRecords", &error, &reply, "ss",
                               args[0] ?: "", strempty(arg_source));
        if (r < 0) {
                json_object_put(array);
                return call_failed(bus, &error, r, _("Failed to list records"));
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssus)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssus)", &name, &type, &value, &ttl, &source)) > 0) {
                if (array) {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "name", json_object_new_string(name));
                        json_object_object_add(o, "type", json_object_new_string(type));
                        json_object_object_add(o, "value", json_object_new_string(value));
                        json_object_object_add(o, "ttl", json_object_new_int64(ttl));
                        json_object_object_add(o, "source", json_object_new_string(source));
                        json_object_array_add(array, o);
                        continue;
                }
                g_autofree char *ttl_str = g_strdup_printf("%u", ttl);
                table_add(t, name);
                table_add(t, type);
                table_add(t, value);
                table_add(t, ttl_str);
                table_add(t, source);
        }
        if (r < 0) {
                json_object_put(array);
                return parse_failed(r);
        }

        pager_open();
        if (array) {
                json_print(array);
                json_object_put(array);
                return EXIT_SUCCESS;
        }
        table_print(t);
        if (arg_legend)
                printf(ngettext("\n%zu record listed.\n", "\n%zu records listed.\n", table_rows(t)), table_rows(t));
        return EXIT_SUCCESS;
}

/* --- query --------------------------------------------------------------- */

/* "192.0.2.7" -> "7.2.0.192.in-addr.arpa", "2001:db8::1" -> its ip6.arpa
 * nibbles, as resolvectl query does for an address; NULL for anything else. */
static char *reverse_name(const char *s) {
        unsigned char a[16];
        GString *out;

        if (inet_pton(AF_INET, s, a) == 1)
                return g_strdup_printf("%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        if (inet_pton(AF_INET6, s, a) != 1)
                return NULL;
        out = g_string_new(NULL);
        for (int i = 15; i >= 0; i--)
                g_string_append_printf(out, "%x.%x.", a[i] & 0xf, a[i] >> 4);
        g_string_append(out, "ip6.arpa");
        return g_string_free(out, FALSE);
}

static int verb_query(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *headers[] = { _("NAME"), _("TYPE"), _("TTL"), _("VALUE") };
        const bool right[] = { false, false, true, false };
        g_autoptr(Table) t = table_new(4, headers, right);
        g_autofree char *reverse = reverse_name(args[0]);
        const char *qname = reverse ?: args[0];
        const char *qtype = args[1] ?: arg_type ?: (reverse ? "PTR" : "A");
        const char *rcode, *name, *type, *value;
        json_object *array = json_object_new_array();
        uint32_t ttl;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "Resolve", &error, &reply, "ss", qname, qtype);
        if (r < 0) {
                json_object_put(array);
                return call_failed(bus, &error, r, _("Failed to resolve"));
        }
        r = sd_bus_message_read(reply, "s", &rcode);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sssu)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssu)", &name, &type, &value, &ttl)) > 0) {
                g_autofree char *ttl_str = g_strdup_printf("%u", ttl);
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(name));
                json_object_object_add(o, "type", json_object_new_string(type));
                json_object_object_add(o, "ttl", json_object_new_int64(ttl));
                json_object_object_add(o, "value", json_object_new_string(value));
                json_object_array_add(array, o);
                table_add(t, name);
                table_add(t, type);
                table_add(t, ttl_str);
                table_add(t, value);
        }
        if (r < 0) {
                json_object_put(array);
                return parse_failed(r);
        }

        pager_open();
        if (arg_json != JSON_OFF) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(qname));
                json_object_object_add(o, "type", json_object_new_string(qtype));
                json_object_object_add(o, "rcode", json_object_new_string(rcode));
                json_object_object_add(o, "answers", array);
                json_print(o);
                json_object_put(o);
        } else {
                json_object_put(array);
                if (table_rows(t) > 0)
                        table_print(t);
                if (arg_legend && streq(rcode, "NOERROR")) {
                        if (table_rows(t) > 0)
                                putchar('\n');
                        printf(ngettext("%s, %zu answer.\n", "%s, %zu answers.\n", table_rows(t)), rcode,
                               table_rows(t));
                }
        }
        if (!streq(rcode, "NOERROR")) {
                /* Like host(1): a name that does not resolve is a failure. */
                fflush(stdout);
                fprintf(stderr, "joyridectl: %s %s: %s\n", qname, qtype, rcode);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* --- add, remove --------------------------------------------------------- */

static int parse_ttl(const char *s, uint32_t *ret) {
        char *end;
        unsigned long long v;

        if (!s) {
                *ret = 0; /* the daemon's default */
                return 0;
        }
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-' || v > UINT32_MAX) {
                fprintf(stderr, "joyridectl: ");
                fprintf(stderr, _("Invalid TTL '%s': expected a number of seconds.\n"), s);
                return -EINVAL;
        }
        *ret = (uint32_t) v;
        return 0;
}

static int verb_add(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t ttl;
        int r;

        if (parse_ttl(arg_ttl, &ttl) < 0)
                return EXIT_BAD_INPUT;
        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "AddRecord", &error, NULL, "sssu", args[0],
                               strempty(arg_type), args[1], ttl);
        if (r < 0)
                return call_failed(bus, &error, r, _("Failed to add the record"));
        return EXIT_SUCCESS;
}

static int verb_remove(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL, *list = NULL;
        uint32_t removed = 0;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "RemoveRecord", &error, &reply, "sss", args[0],
                               strempty(arg_type), args[1] ?: "");
        if (r < 0)
                return call_failed(bus, &error, r, _("Failed to remove the record"));
        r = sd_bus_message_read(reply, "u", &removed);
        if (r < 0)
                return parse_failed(r);
        if (arg_json != JSON_OFF) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "removed", json_object_new_int64(removed));
                json_print(o);
                json_object_put(o);
        }
        if (removed > 0)
                return EXIT_SUCCESS;

        /* Say why: nothing there, or records that other sources own. */
        size_t others = 0;
        g_autoptr(GPtrArray) sources = g_ptr_array_new_with_free_func(g_free);
        if (sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "ListRecords", NULL, &list, "ss", args[0], "") >=
                    0 &&
            sd_bus_message_enter_container(list, 'a', "(sssus)") >= 0) {
                const char *name, *type, *value, *source;
                uint32_t ttl;
                while (sd_bus_message_read(list, "(sssus)", &name, &type, &value, &ttl, &source) > 0) {
                        others++;
                        if (sources->len < 3)
                                g_ptr_array_add(sources, g_strdup(source));
                }
        }
        fprintf(stderr, "joyridectl: ");
        if (others > 0) {
                g_ptr_array_add(sources, NULL);
                g_autofree char *list_str = g_strjoinv(", ", (char **) sources->pdata);
                fprintf(stderr,
                        ngettext("No record added over D-Bus matches; %s has %zu record from another source (%s), "
                                 "which cannot be removed here.\n",
                                 "No record added over D-Bus matches; %s has %zu records from other sources (%s), "
                                 "which cannot be removed here.\n",
                                 others),
                        args[0], others, list_str);
        } else
                fprintf(stderr, _("No record matches %s%s%s.\n"), args[0], args[1] ? " " : "", args[1] ?: "");
        return EXIT_FAILURE;
}

/* --- members, sync, reload ----------------------------------------------- */

/* members forget NODE: the node's pinned key, records and (if gone) membership. */
static int members_forget(sd_bus *bus, const char *node) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "ForgetMember", &error, NULL, "s", node);
        if (r < 0)
                return call_failed(bus, &error, r, _("Failed to forget the cluster member"));
        printf(_("Forgot %s: the next signing key it shows is pinned.\n"), node);
        return EXIT_SUCCESS;
}

static int verb_members(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *headers[] = { _("NODE"), _("ADDRESS"), _("STATE"), _("RECORDS"), _("SINCE") };
        const bool right[] = { false, false, false, true, false };
        g_autoptr(Table) t = table_new(5, headers, right);
        json_object *array = json_object_new_array();
        const char *node, *address, *state;
        uint32_t records;
        uint64_t since;
        int r;

        if (args[0]) {
                if (!streq(args[0], "forget") || !args[1]) {
                        json_object_put(array);
                        fprintf(stderr, _("Usage: %s members [forget NODE]\n"), program_invocation_short_name);
                        return EXIT_FAILURE;
                }
                json_object_put(array);
                return members_forget(bus, args[1]);
        }

        int enabled = 0;
        r = sd_bus_get_property_trivial(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "ClusterEnabled", &error, 'b',
                                        &enabled);
        if (r < 0) {
                json_object_put(array);
                return call_failed(bus, &error, r, _("Failed to list cluster members"));
        }
        if (!enabled) {
                /* Not an error: a node without a cluster simply has no members. */
                if (arg_json != JSON_OFF)
                        json_print(array);
                else
                        puts(_("Clustering is disabled on this node (see ENABLE_DNS_SYNC)."));
                json_object_put(array);
                return EXIT_SUCCESS;
        }

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "ListMembers", &error, &reply, NULL);
        if (r < 0) {
                json_object_put(array);
                return call_failed(bus, &error, r, _("Failed to list cluster members"));
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssut)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssut)", &node, &address, &state, &records, &since)) > 0) {
                g_autofree char *records_str = g_strdup_printf("%u", records);
                g_autofree char *since_str = format_timestamp(since);
                json_object *o = json_object_new_object();
                g_autofree char *since_iso = format_iso8601(since);
                json_object_object_add(o, "node_id", json_object_new_string(node));
                json_object_object_add(o, "address", json_object_new_string(address));
                json_object_object_add(o, "state", json_object_new_string(state));
                json_object_object_add(o, "records", json_object_new_int64(records));
                json_object_object_add(o, "last_change", since_iso ? json_object_new_string(since_iso) : NULL);
                json_object_array_add(array, o);
                table_add(t, node);
                table_add(t, address);
                table_add(t, state);
                table_add(t, records_str);
                table_add(t, since_str);
        }
        if (r < 0) {
                json_object_put(array);
                return parse_failed(r);
        }

        pager_open();
        if (arg_json != JSON_OFF)
                json_print(array);
        else {
                table_print(t);
                if (arg_legend)
                        printf(ngettext("\n%zu member listed.\n", "\n%zu members listed.\n", table_rows(t)),
                               table_rows(t));
        }
        json_object_put(array);
        return EXIT_SUCCESS;
}

static int simple_call(sd_bus *bus, const char *method, const char *what) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, method, &error, NULL, NULL);
        if (r < 0)
                return call_failed(bus, &error, r, what);
        return EXIT_SUCCESS;
}

static int verb_sync(sd_bus *bus, char **args) {
        return simple_call(bus, "Sync", _("Failed to sync with the cluster"));
}

static int verb_reload(sd_bus *bus, char **args) {
        return simple_call(bus, "Reload", _("Failed to reload"));
}

/* --- statistics, log-level ---------------------------------------------- */

static int verb_statistics(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *o = json_object_new_object(), *by_type = json_object_new_object(),
                    *by_rcode = json_object_new_object();
        g_autoptr(GString) types = g_string_new(NULL), rcodes = g_string_new(NULL);
        uint64_t queries = 0, udp = 0, tcp = 0, truncated = 0, conns = 0, rejected = 0, timeouts = 0;
        uint64_t fwd[6] = {}; /* queries, cache hits, misses, coalesced, SERVFAIL, refused */
        bool forwarding = false;
        const char *key;
        uint64_t value;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "GetStatistics", &error, &reply, NULL);
        if (r < 0) {
                json_object_put(o);
                json_object_put(by_type);
                json_object_put(by_rcode);
                return call_failed(bus, &error, r, _("Failed to read the statistics"));
        }
        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &key, &value)) > 0) {
                if (g_str_has_prefix(key, "queries_by_type.")) {
                        json_object_object_add(by_type, key + strlen("queries_by_type."),
                                               json_object_new_uint64(value));
                        g_string_append_printf(types, "%s%s %" PRIu64, types->len ? ", " : "",
                                               key + strlen("queries_by_type."), value);
                } else if (g_str_has_prefix(key, "responses_by_rcode.")) {
                        json_object_object_add(by_rcode, key + strlen("responses_by_rcode."),
                                               json_object_new_uint64(value));
                        g_string_append_printf(rcodes, "%s%s %" PRIu64, rcodes->len ? ", " : "",
                                               key + strlen("responses_by_rcode."), value);
                } else {
                        json_object_object_add(o, key, json_object_new_uint64(value));
                        if (streq(key, "queries"))
                                queries = value;
                        else if (streq(key, "queries_udp"))
                                udp = value;
                        else if (streq(key, "queries_tcp"))
                                tcp = value;
                        else if (streq(key, "truncated"))
                                truncated = value;
                        else if (streq(key, "tcp_connections"))
                                conns = value;
                        else if (streq(key, "tcp_rejected"))
                                rejected = value;
                        else if (streq(key, "tcp_timeouts"))
                                timeouts = value;
                        else if (g_str_has_prefix(key, "forwarding.")) {
                                static const char *const keys[] = { "queries",   "cache.hits", "cache.misses",
                                                                    "coalesced", "servfail",   "refused" };
                                forwarding = true;
                                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                                        if (streq(key + strlen("forwarding."), keys[i]))
                                                fwd[i] = value;
                        }
                }
        }
        json_object_object_add(o, "queries_by_type", by_type);
        json_object_object_add(o, "responses_by_rcode", by_rcode);
        if (r < 0) {
                json_object_put(o);
                return parse_failed(r);
        }

        pager_open();
        if (arg_json != JSON_OFF)
                json_print(o);
        else {
                const char *labels[] = { _("Queries"),   _("By type"), _("Responses"),
                                         _("Truncated"), _("TCP"),     _("Forwarding") };
                size_t width = 0;
                for (size_t i = 0; i < ELEMENTSOF(labels); i++)
                        width = MAX(width, display_width(labels[i]));
                g_autofree char *q =
                        g_strdup_printf(_("%" PRIu64 " (UDP %" PRIu64 ", TCP %" PRIu64 ")"), queries, udp, tcp);
                g_autofree char *t = g_strdup_printf("%" PRIu64, truncated);
                g_autofree char *c = g_strdup_printf(
                        _("%" PRIu64 " connections, %" PRIu64 " refused at the cap, %" PRIu64 " timed out"), conns,
                        rejected, timeouts);
                print_field(width, labels[0], q);
                print_field(width, labels[1], types->str);
                print_field(width, labels[2], rcodes->str);
                print_field(width, labels[3], t);
                print_field(width, labels[4], c);
                if (forwarding) {
                        g_autofree char *f =
                                g_strdup_printf(_("%" PRIu64 " questions: %" PRIu64 " from the cache, %" PRIu64
                                                  " asked upstream, %" PRIu64 " joined one in flight, %" PRIu64
                                                  " SERVFAIL, %" PRIu64 " refused"),
                                                fwd[0], fwd[1], fwd[2], fwd[3], fwd[4], fwd[5]);
                        print_field(width, labels[5], f);
                }
        }
        json_object_put(o);
        return EXIT_SUCCESS;
}

/* Without an argument shows the level; with one sets it (privileged). */
static int verb_log_level(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *level = NULL;
        int r;

        if (args[0]) {
                r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "SetLogLevel", &error, NULL, "s",
                                       args[0]);
                if (r < 0)
                        return call_failed(bus, &error, r, _("Failed to set the log level"));
                return EXIT_SUCCESS;
        }
        r = sd_bus_get_property_string(bus, BUS_NAME, BUS_PATH, BUS_INTERFACE, "LogLevel", &error, &level);
        if (r < 0)
                return call_failed(bus, &error, r, _("Failed to read the log level"));
        if (arg_json != JSON_OFF) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "log_level", json_object_new_string(level));
                json_print(o);
                json_object_put(o);
        } else
                puts(level);
        return EXIT_SUCCESS;
}

/* --- monitor -------------------------------------------------------------- */

static volatile sig_atomic_t monitor_stop = 0;

static void monitor_signal(int sig) {
        monitor_stop = 1;
}

static void monitor_stamp(json_object *o, char *buf, size_t size) {
        uint64_t now = now_usec(CLOCK_REALTIME);
        time_t sec = (time_t) (now / USEC_PER_SEC);
        struct tm tm;

        if (o) {
                g_autofree char *iso = format_iso8601(now);
                json_object_object_add(o, "timestamp", json_object_new_string(strempty(iso)));
        }
        localtime_r(&sec, &tm);
        strftime(buf, size, "%H:%M:%S", &tm);
}

static int monitor_records(sd_bus_message *m, const char *change, const char *mark) {
        const char *name, *type, *value, *source;
        uint32_t ttl;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(sssus)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(sssus)", &name, &type, &value, &ttl, &source)) > 0) {
                char when[16];
                if (arg_json != JSON_OFF) {
                        json_object *o = json_object_new_object();
                        monitor_stamp(o, when, sizeof when);
                        json_object_object_add(o, "change", json_object_new_string(change));
                        json_object_object_add(o, "name", json_object_new_string(name));
                        json_object_object_add(o, "type", json_object_new_string(type));
                        json_object_object_add(o, "value", json_object_new_string(value));
                        json_object_object_add(o, "ttl", json_object_new_int64(ttl));
                        json_object_object_add(o, "source", json_object_new_string(source));
                        json_print(o);
                        json_object_put(o);
                } else {
                        monitor_stamp(NULL, when, sizeof when);
                        printf("%s %s %s %s %s %u %s\n", when, mark, name, type, value, ttl, source);
                }
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int on_records_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int r = monitor_records(m, "added", "+");
        if (r >= 0)
                r = monitor_records(m, "removed", "-");
        if (r < 0)
                fprintf(stderr, "joyridectl: %s %s\n", _("Failed to read a RecordsChanged signal:"), strerror(-r));
        return 0;
}

static int on_member_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *node, *address, *state;
        char when[16];
        int r;

        r = sd_bus_message_read(m, "sss", &node, &address, &state);
        if (r < 0) {
                fprintf(stderr, "joyridectl: %s %s\n", _("Failed to read a MemberChanged signal:"), strerror(-r));
                return 0;
        }
        if (arg_json != JSON_OFF) {
                json_object *o = json_object_new_object();
                monitor_stamp(o, when, sizeof when);
                json_object_object_add(o, "change", json_object_new_string("member"));
                json_object_object_add(o, "node_id", json_object_new_string(node));
                json_object_object_add(o, "address", json_object_new_string(address));
                json_object_object_add(o, "state", json_object_new_string(state));
                json_print(o);
                json_object_put(o);
        } else {
                monitor_stamp(NULL, when, sizeof when);
                printf("%s %s %s %s %s\n", when, _("member"), node, address, state);
        }
        return 0;
}

/* Follows RecordsChanged and MemberChanged until SIGINT or SIGTERM, one line
 * per change ("+" added, "-" removed), or one JSON object per line. */
static int verb_monitor(sd_bus *bus, char **args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct sigaction sa = { .sa_handler = monitor_signal }; /* no SA_RESTART: the wait returns */
        int r;

        r = sd_bus_match_signal(bus, NULL, BUS_NAME, BUS_PATH, BUS_INTERFACE, "RecordsChanged", on_records_changed,
                                NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, BUS_NAME, BUS_PATH, BUS_INTERFACE, "MemberChanged",
                                        on_member_changed, NULL);
        if (r < 0) {
                fprintf(stderr, "joyridectl: %s %s\n", _("Failed to subscribe to the daemon's signals:"), strerror(-r));
                return EXIT_FAILURE;
        }
        /* Say so when nobody is there to send anything, but keep listening:
         * a daemon that starts later is followed too. */
        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, "org.freedesktop.DBus.Peer", "Ping", &error, NULL, NULL);
        if (r < 0)
                (void) call_failed(bus, &error, r, _("Failed to reach the daemon"));

        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        fprintf(stderr, "%s\n", _("Monitoring record and member changes; press Ctrl+C to stop."));
        while (!monitor_stop) {
                r = sd_bus_process(bus, NULL);
                if (r < 0) {
                        fprintf(stderr, "joyridectl: %s %s\n", _("Lost the bus connection:"), strerror(-r));
                        return EXIT_FAILURE;
                }
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "joyridectl: %s %s\n", _("Lost the bus connection:"), strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        return EXIT_SUCCESS;
}

/* --- command line -------------------------------------------------------- */

static void help(void) {
        printf(_("%s [OPTIONS...] COMMAND ...\n"
                 "\n"
                 "Query and change the records joyrided serves.\n"
                 "\n"
                 "Commands:\n"
                 "  status                   Show the daemon's state\n"
                 "  records [NAME]           List records, with their source and TTL\n"
                 "  query NAME|ADDRESS [TYPE]\n"
                 "                           Resolve a name as the DNS server answers it\n"
                 "                           (an address is looked up in reverse, as PTR)\n"
                 "  add NAME VALUE           Add a record (kept across restarts)\n"
                 "  remove NAME [VALUE]      Remove records added with 'add'\n"
                 "  members [forget NODE]    List cluster members, or forget a member's signing\n"
                 "                           key and records (after it was set up anew)\n"
                 "  sync                     Sync records with the cluster now\n"
                 "  reload                   Re-read the configuration and hosts files\n"
                 "  monitor                  Follow record and member changes until interrupted\n"
                 "  statistics               Show the query counters\n"
                 "  log-level [LEVEL]        Show or set the daemon's log level\n"
                 "\n"
                 "Options:\n"
                 "  -h --help                Show this help\n"
                 "     --version             Show the version\n"
                 "     --user                Talk to the daemon on the user bus\n"
                 "     --system              Talk to the daemon on the system bus (default)\n"
                 "     --source=SOURCE       Only records whose source starts with SOURCE\n"
                 "                           (e.g. dbus, hosts:, docker:)\n"
                 "     --type=TYPE           Record type: A, AAAA, CNAME, TXT, PTR\n"
                 "                           (for add, taken from the value when it is an address)\n"
                 "     --ttl=SECONDS         TTL of an added record (default: the daemon's)\n"
                 "     --json=MODE           Print JSON: short or pretty\n"
                 "     --no-legend           Print neither the header line nor the footer\n"
                 "     --no-pager            Do not pipe the output into a pager\n"),
               program_invocation_short_name);
}

typedef struct Verb {
        const char *name;
        unsigned min_args, max_args;
        int (*run)(sd_bus *bus, char **args);
} Verb;

static const Verb verbs[] = {
        { "status", 0, 0, verb_status },       { "records", 0, 1, verb_records },
        { "query", 1, 2, verb_query },         { "add", 2, 2, verb_add },
        { "remove", 1, 2, verb_remove },       { "members", 0, 2, verb_members },
        { "sync", 0, 0, verb_sync },           { "reload", 0, 0, verb_reload },
        { "monitor", 0, 0, verb_monitor },     { "statistics", 0, 0, verb_statistics },
        { "log-level", 0, 1, verb_log_level },
};

/* Returns 0 to go on, a positive exit status to stop (after --help), or -1. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_USER,
                ARG_SYSTEM,
                ARG_SOURCE,
                ARG_TYPE,
                ARG_TTL,
                ARG_JSON,
                ARG_NO_LEGEND,
                ARG_NO_PAGER,
        };
        static const struct option options[] = { { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, ARG_VERSION },
                                                 { "user", no_argument, NULL, ARG_USER },
                                                 { "system", no_argument, NULL, ARG_SYSTEM },
                                                 { "source", required_argument, NULL, ARG_SOURCE },
                                                 { "type", required_argument, NULL, ARG_TYPE },
                                                 { "ttl", required_argument, NULL, ARG_TTL },
                                                 { "json", required_argument, NULL, ARG_JSON },
                                                 { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                                                 { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                                                 {} };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        puts("joyridectl " JOYRIDE_VERSION);
                        return 1;
                case ARG_USER:
                        arg_user = true;
                        break;
                case ARG_SYSTEM:
                        arg_user = false;
                        break;
                case ARG_SOURCE:
                        arg_source = optarg;
                        break;
                case ARG_TYPE:
                        arg_type = optarg;
                        break;
                case ARG_TTL:
                        arg_ttl = optarg;
                        break;
                case ARG_JSON:
                        if (streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else if (streq(optarg, "off"))
                                arg_json = JSON_OFF;
                        else {
                                fprintf(stderr, "joyridectl: ");
                                fprintf(stderr, _("Unknown JSON mode '%s': expected short, pretty or off.\n"), optarg);
                                return -1;
                        }
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_PAGER:
                        arg_no_pager = true;
                        break;
                case '?':
                        return -1;
                default:
                        return -1;
                }
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *localedir = getenv("JOYRIDE_LOCALEDIR");
        const Verb *verb = NULL;
        unsigned n_args;
        int r;

        setlocale(LC_ALL, "");
        /* JOYRIDE_LOCALEDIR lets tests use the catalogs of a build tree. */
        bindtextdomain(GETTEXT_PACKAGE, localedir ?: LOCALEDIR);
        bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
        textdomain(GETTEXT_PACKAGE);

        r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : EXIT_BAD_INPUT;

        const char *name = optind < argc ? argv[optind] : "status";
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        verb = &verbs[i];
        if (!verb) {
                fprintf(stderr, "joyridectl: ");
                fprintf(stderr, _("Unknown command '%s'; see joyridectl --help.\n"), name);
                return EXIT_BAD_INPUT;
        }
        n_args = optind < argc ? (unsigned) (argc - optind - 1) : 0;
        if (n_args < verb->min_args || n_args > verb->max_args) {
                fprintf(stderr, "joyridectl: ");
                fprintf(stderr,
                        n_args < verb->min_args ? _("Too few arguments for '%s'; see joyridectl --help.\n")
                                                : _("Too many arguments for '%s'; see joyridectl --help.\n"),
                        name);
                return EXIT_BAD_INPUT;
        }

        r = arg_user ? sd_bus_open_user(&bus) : sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "joyridectl: ");
                fprintf(stderr,
                        arg_user ? _("Failed to connect to the user bus: %s\n")
                                 : _("Failed to connect to the system bus: %s\n"),
                        strerror(-r));
                return EXIT_NOT_RUNNING;
        }

        char *args[3] = {};
        for (unsigned i = 0; i < n_args; i++)
                args[i] = argv[optind + 1 + i];
        r = verb->run(bus, args);
        pager_close();
        return r;
}
