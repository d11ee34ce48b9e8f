/* SPDX-License-Identifier: MIT */
/* org.joyride.DNS on D-Bus: the vtable, the coalesced signals and the
 * property change tracking for the Manager. The logic lives in the core (the
 * store, dns_answer(), state.c, manager_reload()); this file reads arguments,
 * validates, authorises, changes, emits and replies.
 *
 * Change signals are coalesced: store changes are queued (an addition and a
 * removal of the same record in one turn cancel out) and a defer source of
 * idle priority sends one RecordsChanged and one PropertiesChanged after
 * everything else pending in this loop turn has run (more than 500 changes
 * go out as several RecordsChanged, one per turn). Properties without a
 * change hook (the Docker state, ...) are compared against a snapshot then
 * and on a slow timer. The documented interface is data/dbus/org.joyride.DNS.xml.
 *
 * This file is also the only owner of the daemon's bus connections, the
 * systemd-resolved registration's included (see the connection section). */

#include <arpa/inet.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <glib.h>
#include <ldns/ldns.h>
#include <linux/capability.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "catalog.h"
#include "cluster.h"
#include "forward-upstreams.h"
#include "log.h"
#include "manager-bus.h"
#include "manager.h"
#include "resolved.h"
#include "state.h"

#define BUS_NAME "org.joyride.DNS"
#define BUS_PATH "/org/joyride/DNS"
#define BUS_INTERFACE "org.joyride.DNS"

#define BUS_ERROR_NO_CLUSTER "org.joyride.DNS.Error.NoCluster"
#define BUS_ERROR_RELOAD_FAILED "org.joyride.DNS.Error.ReloadFailed"

#define PROPERTY_POLL_USEC (1 * USEC_PER_SEC)
/* Between losing a connection and opening the next one, which then waits
 * for the bus by itself: only keeps a bus that drops us at once from
 * making us spin. */
#define RECONNECT_USEC (1 * USEC_PER_SEC)

/* Changes per RecordsChanged signal; more are sent in further signals. */
#define SIGNAL_CHANGES_MAX 500u

#define RECORD_SIGNATURE "(sssus)"
#define ANSWER_SIGNATURE "(sssu)"
#define MEMBER_SIGNATURE "(sssut)"

typedef struct PendingChange {
        char *key; /* name, type, value, ttl, source: identifies one change */
        char *name, *type, *value, *source;
        uint32_t ttl;
        bool added;
        bool cancelled; /* undone later in the same turn */
} PendingChange;

/* One bus connection and its life (see the connection section below). */
typedef struct BusConnection {
        Manager *manager;
        BusKind kind;          /* BUS_SYSTEM or BUS_USER */
        bool exports;          /* org.joyride.DNS is on it */
        bool reaches_resolved; /* systemd-resolved is registered with (and asked for its
                                             * DNS servers, Forward=resolv.conf) through it */
        bool lost;             /* not connected at start, or lost since: say when it is back */
        sd_bus *bus;
        sd_event_source *reconnect_timer;
} BusConnection;

typedef struct ManagerBus {
        /* The configured bus (--bus=), and the system bus for systemd-resolved
         * when that is another one. */
        BusConnection connections[2];
        size_t n_connections;
        BusConnection *api; /* the one org.joyride.DNS is on; NULL with --bus=none */

        sd_event_source *flush_source; /* defer, idle priority: sends the coalesced signals */
        sd_event_source *poll_timer;   /* compares the properties without a change hook */
        GPtrArray *pending;            /* PendingChange, in order */
        GHashTable *pending_by_key;    /* key -> the live PendingChange of that key, not sent yet */
        guint flush_pos;               /* pending[0..flush_pos) are sent */
        GHashTable *snapshot;          /* property name -> its last announced value, as text */
        StateWriter *state_writer;     /* saves the D-Bus records; NULL without a state directory */
} ManagerBus;

static void emit_properties_changed(Manager *m);

static ManagerBus *bus_data(Manager *m) {
        return m->bus_data;
}

/* The connection org.joyride.DNS is exported on, or NULL. */
static sd_bus *api_bus(Manager *m) {
        ManagerBus *b = bus_data(m);
        return b && b->api ? b->api->bus : NULL;
}

/* --- helpers ------------------------------------------------------------- */

static void pending_change_free(gpointer p) {
        PendingChange *c = p;

        if (!c)
                return; /* sent and freed already */
        g_free(c->key);
        g_free(c->name);
        g_free(c->type);
        g_free(c->value);
        g_free(c->source);
        g_free(c);
}

static const char *type_string(uint16_t type) {
        return strna(dns_type_to_string(type));
}

static uint16_t infer_type(const char *value) {
        struct in6_addr a;

        if (inet_pton(AF_INET, value, &a) == 1)
                return DNS_TYPE_A;
        if (inet_pton(AF_INET6, value, &a) == 1)
                return DNS_TYPE_AAAA;
        return 0;
}

static int parse_type(const char *s, sd_bus_error *error) {
        int t = dns_type_from_string(s);
        if (t < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Unknown record type '%s': expected one of A, AAAA, CNAME, TXT, PTR.", s);
        return t;
}

static int check_name(const char *name, sd_bus_error *error) {
        const char *why = NULL;

        if (isempty(name))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Missing record name.");
        if (dns_name_check(name, DNS_NAME_WILDCARD, &why) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid name '%s': %s.", name, strna(why));
        return 0;
}

/* Write methods: root or CAP_NET_ADMIN. sd_bus_query_sender_privilege() also
 * grants callers of our own UID; when we run as a service user and cannot see
 * the caller's capabilities (dbus-daemon does not pass them), root is allowed
 * explicitly, matching the bus policy. */
static int check_privilege(sd_bus_message *msg, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_privilege(msg, CAP_NET_ADMIN);
        if (r > 0)
                return 0;
        if (sd_bus_query_sender_creds(msg, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID, &creds) >= 0 &&
            (sd_bus_creds_get_euid(creds, &uid) >= 0 || sd_bus_creds_get_uid(creds, &uid) >= 0) && uid == 0)
                return 0;
        return sd_bus_error_set(
                error, SD_BUS_ERROR_ACCESS_DENIED,
                "Changing records or cluster members, syncing and reloading need root or CAP_NET_ADMIN.");
}

/* --- who changed what ------------------------------------------------------ */

/* How many bytes of a string argument the log line shows. */
#define ARG_SHOWN_MAX 64

/* A string argument as the log line shows it: quoted, control characters
 * escaped (a caller's newline cannot forge a line on the console), cut at a
 * character boundary after ARG_SHOWN_MAX bytes. D-Bus strings are UTF-8. */
static void append_string_arg(GString *out, const char *s) {
        size_t n = strlen(s), shown = MIN(n, (size_t) ARG_SHOWN_MAX);

        while (shown < n && shown > 0 && ((unsigned char) s[shown] & 0xc0) == 0x80)
                shown--;
        g_string_append_c(out, '"');
        for (size_t i = 0; i < shown; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        g_string_append_printf(out, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        g_string_append_printf(out, "\\x%02x", c);
                else
                        g_string_append_c(out, (char) c);
        }
        g_string_append(out, shown < n ? "\"..." : "\"");
}

/* The call in short, read from the message itself so that no method can
 * forget an argument: AddRecord("web.example.com", "A", "10.0.0.9", 60). */
static char *describe_call(sd_bus_message *msg) {
        GString *out = g_string_new(strna(sd_bus_message_get_member(msg)));
        const char *contents;
        char type;

        g_string_append_c(out, '(');
        if (sd_bus_message_rewind(msg, true) >= 0)
                for (bool first = true; sd_bus_message_peek_type(msg, &type, &contents) > 0; first = false) {
                        const char *str;
                        uint32_t u;
                        int b;

                        if (!first)
                                g_string_append(out, ", ");
                        if (type == SD_BUS_TYPE_STRING && sd_bus_message_read_basic(msg, type, &str) > 0)
                                append_string_arg(out, str);
                        else if (type == SD_BUS_TYPE_UINT32 && sd_bus_message_read_basic(msg, type, &u) > 0)
                                g_string_append_printf(out, "%" PRIu32, u);
                        else if (type == SD_BUS_TYPE_BOOLEAN && sd_bus_message_read_basic(msg, type, &b) > 0)
                                g_string_append(out, b ? "true" : "false");
                        else {
                                g_string_append(out, "...");
                                if (sd_bus_message_skip(msg, NULL) < 0)
                                        break;
                        }
                }
        (void) sd_bus_message_rewind(msg, true);
        g_string_append_c(out, ')');
        return g_string_free(out, FALSE);
}

/* One line for every D-Bus call that changes something, once it is
 * authorised and its arguments are valid: the method, its arguments in short
 * and the caller's uid and pid, also as the journal fields JOYRIDE_METHOD,
 * JOYRIDE_CALLER_UID and JOYRIDE_CALLER_PID (the journal's own _UID and _PID
 * are the daemon's, and a client cannot set fields that start with '_'),
 * with the catalog's MESSAGE_ID of changes over D-Bus.
 * fields: more fields for this call (JOYRIDE_NAME, ...), or NULL. */
static void log_bus_call(sd_bus_message *msg, int level, LogFields *fields) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        g_autofree char *call = NULL;
        char uid_text[32] = "unknown", pid_text[32] = "unknown";
        LogFields own;
        LogFields *f = fields;
        uid_t uid;
        pid_t pid;

        if (level > log_get_max_level())
                return;
        if (!f) {
                log_fields_init(&own);
                f = &own;
        }
        /* The caller's credentials as the bus daemon saw them at connect
         * time; the euid where the bus tells it apart. */
        (void) sd_bus_query_sender_creds(msg, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &creds);
        if (sd_bus_creds_get_euid(creds, &uid) >= 0 || sd_bus_creds_get_uid(creds, &uid) >= 0) {
                snprintf(uid_text, sizeof uid_text, "%lu", (unsigned long) uid);
                log_fields_add(f, "JOYRIDE_CALLER_UID=%s", uid_text);
        }
        if (sd_bus_creds_get_pid(creds, &pid) >= 0 && pid > 0) {
                snprintf(pid_text, sizeof pid_text, "%ld", (long) pid);
                log_fields_add(f, "JOYRIDE_CALLER_PID=%s", pid_text);
        }
        log_fields_add(f, "JOYRIDE_METHOD=%s", strna(sd_bus_message_get_member(msg)));
        log_fields_add(f, "%s", JOYRIDE_FIELD_BUS_CHANGE);
        call = describe_call(msg);
        log_struct_journal(level, f->v, "%s over D-Bus by uid %s, pid %s.", call, uid_text, pid_text);
}

/* JOYRIDE_NAME of a call about a name: as records spell it (lower case, no
 * final dot), so that `journalctl JOYRIDE_NAME=` finds the call beside the
 * record changes it made. */
static void add_name_field(LogFields *f, const char *name) {
        g_autofree char *lower = g_ascii_strdown(name, -1);
        size_t n = strlen(lower);

        if (n > 1 && lower[n - 1] == '.')
                lower[n - 1] = 0;
        log_fields_add(f, "JOYRIDE_NAME=%s", lower);
}

static void schedule_flush(Manager *m) {
        ManagerBus *b = bus_data(m);
        if (b && b->flush_source)
                (void) sd_event_source_set_enabled(b->flush_source, SD_EVENT_ONESHOT);
}

static bool bus_usable(Manager *m) {
        sd_bus *bus = api_bus(m);
        return bus && sd_bus_is_ready(bus) > 0;
}

/* --- store changes ------------------------------------------------------- */

static void on_record_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Manager *m = userdata;
        ManagerBus *b = bus_data(m);
        _cleanup_free_ char *source = NULL, *key = NULL;
        PendingChange *c, *prev;
        bool added = change == RECORD_ADDED;

        schedule_flush(m); /* RecordCount and Version changed */
        if (!bus_usable(m))
                return; /* nobody to tell; do not queue */

        source = record_source(r);
        key = g_strdup_printf("%s\x1f%u\x1f%s\x1f%u\x1f%s", r->name, r->type, strempty(r->value), r->ttl, source);
        prev = g_hash_table_lookup(b->pending_by_key, key);
        if (prev && prev->added != added) {
                /* Added and removed again (or the reverse) in one turn: no news. */
                prev->cancelled = true;
                g_hash_table_remove(b->pending_by_key, key);
                return;
        }

        c = g_new0(PendingChange, 1);
        *c = (PendingChange) {
                .key = TAKE_PTR(key),
                .name = g_strdup(r->name),
                .type = g_strdup(type_string(r->type)),
                .value = g_strdup(strempty(r->value)),
                .source = TAKE_PTR(source),
                .ttl = r->ttl,
                .added = added,
        };
        g_ptr_array_add(b->pending, c);
        g_hash_table_replace(b->pending_by_key, c->key, c);
}

/* --- properties ---------------------------------------------------------- */

/* One getter per property, each reading the status every front end reads
 * (manager-status.h). The vtable below is the only list of the properties:
 * its SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE flags say which ones
 * PropertiesChanged announces, and change detection runs these very getters
 * (see property_snapshot()). */

#define DEFINE_PROPERTY_GETTER(function, signature, value) \
        static int function(sd_bus *bus, const char *path, const char *interface, const char *property, \
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) { \
                ManagerStatus st; \
                manager_get_status(userdata, &st); \
                return sd_bus_message_append(reply, signature, value); \
        }

DEFINE_PROPERTY_GETTER(property_get_node_id, "s", strempty(st.node_id))
DEFINE_PROPERTY_GETTER(property_get_version, "t", st.store_version)
DEFINE_PROPERTY_GETTER(property_get_record_count, "u", (uint32_t) st.n_records)
DEFINE_PROPERTY_GETTER(property_get_docker_state, "s", manager_status_docker_state(&st))
DEFINE_PROPERTY_GETTER(property_get_docker_error, "s", st.docker_enabled ? strempty(st.docker.last_error) : "")
DEFINE_PROPERTY_GETTER(property_get_hosts_directory, "s", strempty(st.hosts_directory))
DEFINE_PROPERTY_GETTER(property_get_hosts_warning_count, "u", st.hosts_enabled ? st.hosts.n_warnings : 0)
DEFINE_PROPERTY_GETTER(property_get_cluster_enabled, "b", (int) st.cluster_enabled)
DEFINE_PROPERTY_GETTER(property_get_member_count, "u", manager_status_member_count(&st))
DEFINE_PROPERTY_GETTER(property_get_dns_port, "q", st.dns_port)
DEFINE_PROPERTY_GETTER(property_get_state_directory, "s", strempty(st.state_directory))
DEFINE_PROPERTY_GETTER(property_get_daemon_version, "s", st.version)
DEFINE_PROPERTY_GETTER(property_get_start_timestamp, "t", st.start_realtime_usec)
DEFINE_PROPERTY_GETTER(property_get_uptime, "t", st.uptime_usec)
DEFINE_PROPERTY_GETTER(property_get_forward_enabled, "b", (int) (st.forward_enabled &&st.forward &&st.forward->enabled))

/* The upstreams forwarding uses now, "ADDR:PORT": configured, or from
 * resolv.conf or systemd-resolved. */
static int property_get_forward_upstreams(sd_bus *bus, const char *path, const char *interface, const char *property,
                                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagerStatus st;
        int r;

        manager_get_status(userdata, &st);
        r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && st.forward_enabled && st.forward && i < st.forward->n_upstreams; i++)
                r = sd_bus_message_append(reply, "s", st.forward->upstreams[i].address);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}
/* The first of the hosts source's current warnings: (file, line, why), line
 * 0 for the file or the directory as a whole. */
static int property_get_hosts_warnings(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagerStatus st;
        int r;

        manager_get_status(userdata, &st);
        r = sd_bus_message_open_container(reply, 'a', "(sus)");
        for (size_t i = 0; r >= 0 && st.hosts_enabled && i < st.hosts.n_warnings_listed; i++) {
                const HostsWarning *w = &st.hosts.warnings[i];

                r = sd_bus_message_append(reply, "(sus)", w->file, w->line, w->why);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}
DEFINE_PROPERTY_GETTER(property_get_etcd_state, "s", manager_status_etcd_state(&st))
DEFINE_PROPERTY_GETTER(property_get_etcd_error, "s", st.etcd_enabled ? strempty(st.etcd.last_error) : "")

static int property_get_log_level(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", log_level_to_string(log_get_max_level()));
}

static int property_get_domains(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagerStatus st;

        manager_get_status(userdata, &st);
        return sd_bus_message_append_strv(reply, st.domains);
}

/* "udp 127.0.0.1:5353, tcp 127.0.0.1:5353" -> { "udp 127.0.0.1:5353", "tcp 127.0.0.1:5353" } */
static int property_get_listen_addresses(sd_bus *bus, const char *path, const char *interface, const char *property,
                                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_auto(GStrv) addresses = NULL;
        ManagerStatus st;

        manager_get_status(userdata, &st);
        addresses = st.dns_describe ? g_strsplit(st.dns_describe, ", ", -1) : g_new0(char *, 1);
        return sd_bus_message_append_strv(reply, addresses);
}

/* --- signals ------------------------------------------------------------- */

static int append_changes(sd_bus_message *msg, GPtrArray *pending, guint from, guint to, bool added) {
        int r;

        r = sd_bus_message_open_container(msg, 'a', RECORD_SIGNATURE);
        if (r < 0)
                return r;
        for (guint i = from; i < to; i++) {
                PendingChange *c = pending->pdata[i];
                if (c->cancelled || c->added != added)
                        continue;
                r = sd_bus_message_append(msg, RECORD_SIGNATURE, c->name, c->type, c->value, c->ttl, c->source);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(msg);
}

/* Sends one RecordsChanged with the next queued changes, at most
 * SIGNAL_CHANGES_MAX of them, and forgets those; *ret_more says whether some
 * are left for the next turn. A large hosts file replaced is 200,000 changes:
 * in one message that would hold the loop for half a second (and pass the
 * bus's message size limit). */
static int emit_records_changed(Manager *m, bool *ret_more) {
        ManagerBus *b = bus_data(m);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        guint from = b->flush_pos, to = from, n = 0;
        int r = 0;

        for (; to < b->pending->len && n < SIGNAL_CHANGES_MAX; to++) {
                PendingChange *c = b->pending->pdata[to];

                if (c->cancelled)
                        continue;
                n++;
                /* Sent: a later change of the same record is news again. */
                if (g_hash_table_lookup(b->pending_by_key, c->key) == c)
                        g_hash_table_remove(b->pending_by_key, c->key);
        }
        b->flush_pos = to;
        *ret_more = to < b->pending->len;

        if (n == 0 || !bus_usable(m))
                return 0;
        r = sd_bus_message_new_signal(api_bus(m), &msg, BUS_PATH, BUS_INTERFACE, "RecordsChanged");
        if (r >= 0)
                r = append_changes(msg, b->pending, from, to, true);
        if (r >= 0)
                r = append_changes(msg, b->pending, from, to, false);
        if (r >= 0)
                r = sd_bus_send(api_bus(m), msg, NULL);
        return r;
}

/* Frees the changes sent (and those cancelled among them) as they go, rather
 * than 200,000 of them at once at the end. */
static void forget_sent(ManagerBus *b, guint from, guint to) {
        for (guint i = from; i < to; i++) {
                pending_change_free(b->pending->pdata[i]);
                b->pending->pdata[i] = NULL;
        }
}

static int on_flush(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        ManagerBus *b = bus_data(m);
        guint from = b->flush_pos;
        bool more = false;
        int r;

        r = emit_records_changed(m, &more);
        if (r < 0)
                log_warning_errno(r, "Failed to emit RecordsChanged: %m");
        forget_sent(b, from, b->flush_pos);
        if (more) {
                /* The rest in the next turns, each after whatever else is pending. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        g_hash_table_remove_all(b->pending_by_key);
        g_ptr_array_set_size(b->pending, 0);
        b->flush_pos = 0;
        emit_properties_changed(m);
        return 0;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        /* Through the flush, so that signals keep their order. */
        schedule_flush(m);
        return sd_event_source_set_time(s, usec + PROPERTY_POLL_USEC);
}

/* --- methods ------------------------------------------------------------- */

static int append_record(sd_bus_message *reply, const Record *r) {
        _cleanup_free_ char *source = record_source(r);
        return sd_bus_message_append(reply, RECORD_SIGNATURE, r->name, type_string(r->type), strempty(r->value), r->ttl,
                                     source);
}

static int method_list_records(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GPtrArray) records = g_ptr_array_new();
        Manager *m = userdata;
        const char *name, *source;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &source);
        if (r < 0)
                return r;
        if (!isempty(name)) {
                r = check_name(name, error);
                if (r < 0)
                        return r;
        }

        store_collect(m->store, isempty(name) ? NULL : name, isempty(source) ? NULL : source, 0, records);
        g_ptr_array_sort(records, record_compare_ptr);

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', RECORD_SIGNATURE);
        for (guint i = 0; r >= 0 && i < records->len; i++)
                r = append_record(reply, records->pdata[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The value of one rdata field the way records show it: names without the
 * trailing dot, text unquoted. */
static void append_rdf(GString *out, const ldns_rdf *rdf) {
        _cleanup_free_ char *s = NULL;

        if (ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_STR && ldns_rdf_size(rdf) >= 1) {
                const uint8_t *d = ldns_rdf_data(rdf);
                g_string_append_len(out, (const char *) d + 1, MIN((size_t) d[0], ldns_rdf_size(rdf) - 1));
                return;
        }
        if (out->len > 0)
                g_string_append_c(out, ' ');
        s = ldns_rdf2str(rdf);
        if (!s)
                return;
        if (ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_DNAME && strlen(s) > 1 && g_str_has_suffix(s, "."))
                s[strlen(s) - 1] = 0;
        g_string_append(out, s);
}

static int method_resolve(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ uint8_t *query = NULL, *answer = NULL;
        _cleanup_free_ char *fqdn = NULL;
        Manager *m = userdata;
        const char *name, *type;
        ldns_pkt *q = NULL, *p = NULL;
        ldns_rdf *dname;
        ldns_rr_type t;
        DnsQueryInfo info = {};
        size_t qlen = 0, n;
        const char *rcode;
        char rcode_buf[16];
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &type);
        if (r < 0)
                return r;
        if (isempty(name))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Missing name to resolve.");
        if (isempty(type))
                type = "A";
        t = ldns_get_rr_type_by_name(type);
        if (t == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown DNS type '%s'.", type);
        fqdn = g_str_has_suffix(name, ".") ? g_strdup(name) : g_strconcat(name, ".", NULL);
        dname = ldns_dname_new_frm_str(fqdn);
        if (!dname)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid name '%s': not a domain name.",
                                         name);

        /* The very question dig would send, answered by the very code the DNS
         * server uses. TCP framing rules: no truncation. */
        q = ldns_pkt_query_new(dname, t, LDNS_RR_CLASS_IN, LDNS_RD);
        if (!q)
                return -ENOMEM;
        ldns_pkt_set_id(q, (uint16_t) g_random_int());
        if (ldns_pkt2wire(&query, q, &qlen) != LDNS_STATUS_OK) {
                ldns_pkt_free(q);
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Cannot build a query for '%s'.", name);
        }
        ldns_pkt_free(q);

        answer = g_malloc(DNS_TCP_MESSAGE_MAX);
        n = dns_answer(m->store, &m->answer_config, DNS_TRANSPORT_TCP, query, qlen, answer, DNS_TCP_MESSAGE_MAX, &info);
        if (n == 0 || ldns_wire2pkt(&p, answer, n) != LDNS_STATUS_OK)
                return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "The DNS answer path gave no usable reply.");

        rcode = dns_rcode_to_string(ldns_pkt_get_rcode(p));
        if (!rcode) {
                snprintf(rcode_buf, sizeof rcode_buf, "RCODE%u", (unsigned) ldns_pkt_get_rcode(p));
                rcode = rcode_buf;
        }

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", rcode);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', ANSWER_SIGNATURE);
        for (size_t i = 0; r >= 0 && i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); i++) {
                const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
                _cleanup_free_ char *owner = ldns_rdf2str(ldns_rr_owner(rr));
                _cleanup_free_ char *rtype = ldns_rr_type2str(ldns_rr_get_type(rr));
                g_autoptr(GString) value = g_string_new(NULL);

                for (size_t k = 0; k < ldns_rr_rd_count(rr); k++)
                        append_rdf(value, ldns_rr_rdf(rr, k));
                if (owner && strlen(owner) > 1 && g_str_has_suffix(owner, "."))
                        owner[strlen(owner) - 1] = 0;
                r = sd_bus_message_append(reply, ANSWER_SIGNATURE, strempty(owner), strempty(rtype), value->str,
                                          ldns_rr_ttl(rr));
        }
        ldns_pkt_free(p);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Refuses a change up front when it could not be kept. */
static int check_state_directory(Manager *m, sd_bus_error *error) {
        if (!m->config.state_directory || !bus_data(m)->state_writer)
                return sd_bus_error_set(
                        error, SD_BUS_ERROR_NOT_SUPPORTED,
                        "No state directory is configured, so records cannot be kept; nothing was changed.");
        return 0;
}

/* A change made to the store whose reply waits until the state file holds it.
 * If that save fails, the change is undone (the record added taken out, the
 * records removed put back), so that what is served stays what is on disk,
 * and the caller is told so. */
typedef struct PendingCall {
        Manager *manager;
        sd_bus_message *msg;
        bool remove;
        /* AddRecord: the record added */
        char *name, *value;
        uint16_t type;
        /* AddRecord: what was there before (put back on failure); RemoveRecord: what it removed */
        StateRecord *records;
        size_t n_records;
} PendingCall;

static void pending_call_free(PendingCall *p) {
        sd_bus_message_unref(p->msg);
        g_free(p->name);
        g_free(p->value);
        state_records_free(p->records, p->n_records);
        g_free(p);
}

static void on_state_saved(int error, void *userdata) {
        PendingCall *p = userdata;
        Manager *m = p->manager;
        int r;

        if (error >= 0) {
                r = p->remove ? sd_bus_reply_method_return(p->msg, "u", (uint32_t) p->n_records)
                              : sd_bus_reply_method_return(p->msg, NULL);
        } else {
                if (!p->remove)
                        (void) store_remove(m->store, p->name, p->type, p->value, STATE_OWNER);
                for (size_t i = 0; i < p->n_records; i++)
                        (void) store_add(m->store, p->records[i].name, p->records[i].type, p->records[i].value,
                                         p->records[i].ttl, STATE_OWNER, 0, NULL, NULL);
                r = sd_bus_reply_method_errorf(p->msg, SD_BUS_ERROR_FAILED,
                                               "Cannot save records in %s (%s); nothing was changed.",
                                               m->config.state_directory, strerror(-error));
        }
        if (r < 0)
                log_debug_errno(r, "Failed to reply to a record change (the caller may be gone): %m");
        pending_call_free(p);
}

/* Takes p; the reply is sent once the state file holds the change. */
static void save_state(Manager *m, PendingCall *p) {
        state_writer_request(bus_data(m)->state_writer, on_state_saved, p);
}

typedef struct FindRecord {
        uint16_t type;     /* 0: any */
        const char *value; /* NULL: any; else compared as rdata of the record's type */
        GArray *found;     /* StateRecord copies */
} FindRecord;

static int find_one(const Record *r, void *userdata) {
        FindRecord *f = userdata;
        _cleanup_free_ uint8_t *rdata = NULL;
        uint16_t rdlen;

        if (f->type != 0 && r->type != f->type)
                return 0;
        if (f->value) {
                if (dns_rdata_parse(r->type, f->value, &rdata, &rdlen, NULL) < 0)
                        return 0;
                if (rdlen != r->rdlen || memcmp(rdata, r->rdata, rdlen) != 0)
                        return 0;
        }
        StateRecord sr = { g_strdup(r->name), r->type, g_strdup(r->value), r->ttl };
        g_array_append_val(f->found, sr);
        return 0;
}

/* The D-Bus records at name matching type and value (see FindRecord). */
static size_t find_records(Manager *m, const char *name, uint16_t type, const char *value, StateRecord **ret) {
        FindRecord f = { type, value, g_array_new(FALSE, TRUE, sizeof(StateRecord)) };
        size_t n;

        (void) store_foreach(m->store, name, STATE_OWNER, find_one, &f);
        n = f.found->len;
        *ret = (StateRecord *) g_array_free(f.found, FALSE);
        return n;
}

static int method_add_record(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *type_str, *value, *why = NULL;
        _cleanup_free_ uint8_t *rdata = NULL;
        StateRecord *old = NULL;
        LogFields fields;
        PendingCall *p;
        size_t n_old;
        uint16_t rdlen;
        uint32_t ttl;
        int type, r;

        r = sd_bus_message_read(msg, "sssu", &name, &type_str, &value, &ttl);
        if (r < 0)
                return r;
        r = check_privilege(msg, error);
        if (r < 0)
                return r;
        r = check_state_directory(m, error);
        if (r < 0)
                return r;

        /* Validate everything before touching anything. */
        r = check_name(name, error);
        if (r < 0)
                return r;
        if (isempty(type_str)) {
                type = infer_type(value);
                if (type == 0)
                        return sd_bus_error_setf(
                                error, SD_BUS_ERROR_INVALID_ARGS,
                                "Cannot tell the record type from the value '%s': it is not an IP address; "
                                "give one of A, AAAA, CNAME, TXT, PTR.",
                                value);
        } else {
                type = parse_type(type_str, error);
                if (type < 0)
                        return type;
        }
        if (ttl == 0)
                ttl = m->config.default_ttl;
        else if (ttl > STORE_TTL_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "TTL %u is out of range: expected 1 to %u seconds (or 0 for the default, %u).",
                                         ttl, STORE_TTL_MAX, m->config.default_ttl);
        r = dns_rdata_parse((uint16_t) type, value, &rdata, &rdlen, &why);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid %s value '%s': %s.",
                                         type_string((uint16_t) type), value, strna(why));

        log_fields_init(&fields);
        add_name_field(&fields, name);
        log_fields_add(&fields, "JOYRIDE_TYPE=%s", type_string((uint16_t) type));
        log_bus_call(msg, LOG_INFO, &fields);

        /* Remember what there was, to put it back if the state cannot be saved. */
        n_old = find_records(m, name, (uint16_t) type, value, &old);

        r = store_add(m->store, name, (uint16_t) type, value, ttl, STATE_OWNER, 0, NULL, &why);
        if (r < 0) {
                state_records_free(old, n_old);
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Cannot add %s %s %s: %s.", name,
                                         type_string((uint16_t) type), value, strna(why));
        }

        p = g_new0(PendingCall, 1);
        *p = (PendingCall) {
                .manager = m,
                .msg = sd_bus_message_ref(msg),
                .name = g_strdup(name),
                .value = g_strdup(value),
                .type = (uint16_t) type,
                .records = old,
                .n_records = n_old,
        };
        save_state(m, p);
        return 1;
}

static int method_remove_record(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *type_str, *value, *why = NULL;
        StateRecord *victims = NULL;
        LogFields fields;
        PendingCall *p;
        size_t n;
        int type = 0, r;

        r = sd_bus_message_read(msg, "sss", &name, &type_str, &value);
        if (r < 0)
                return r;
        r = check_privilege(msg, error);
        if (r < 0)
                return r;

        r = check_name(name, error);
        if (r < 0)
                return r;
        if (!isempty(type_str)) {
                type = parse_type(type_str, error);
                if (type < 0)
                        return type;
                if (!isempty(value)) {
                        _cleanup_free_ uint8_t *rdata = NULL;
                        uint16_t rdlen;
                        if (dns_rdata_parse((uint16_t) type, value, &rdata, &rdlen, &why) < 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid %s value '%s': %s.",
                                                         type_string((uint16_t) type), value, strna(why));
                }
        }

        log_fields_init(&fields);
        add_name_field(&fields, name);
        if (type > 0)
                log_fields_add(&fields, "JOYRIDE_TYPE=%s", type_string((uint16_t) type));
        log_bus_call(msg, LOG_INFO, &fields);

        n = find_records(m, name, (uint16_t) type, isempty(value) ? NULL : value, &victims);
        if (n == 0) {
                state_records_free(victims, n);
                return sd_bus_reply_method_return(msg, "u", (uint32_t) 0);
        }
        r = check_state_directory(m, error);
        if (r < 0) {
                state_records_free(victims, n);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                (void) store_remove(m->store, victims[i].name, victims[i].type, victims[i].value, STATE_OWNER);

        p = g_new0(PendingCall, 1);
        *p = (PendingCall) {
                .manager = m,
                .msg = sd_bus_message_ref(msg),
                .remove = true,
                .records = victims,
                .n_records = n,
        };
        save_state(m, p);
        return 1;
}

static int method_list_members(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ ClusterMember *members = NULL;
        Manager *m = userdata;
        size_t n = 0;
        int r;

        if (m->cluster)
                n = cluster_get_members(m->cluster, &members);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', MEMBER_SIGNATURE);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, MEMBER_SIGNATURE, members[i].id, members[i].address, members[i].state,
                                          (uint32_t) members[i].records, (uint64_t) members[i].state_change_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_sync(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = check_privilege(msg, error);
        if (r < 0)
                return r;
        if (!m->cluster)
                return sd_bus_error_set(error, BUS_ERROR_NO_CLUSTER,
                                        "Clustering is not enabled on this node (ENABLE_DNS_SYNC, --cluster).");
        log_bus_call(msg, LOG_INFO, NULL);
        r = cluster_sync_now(m->cluster);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not start a cluster sync: %m");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_forget_member(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *node;
        LogFields fields;
        int r;

        r = sd_bus_message_read(msg, "s", &node);
        if (r < 0)
                return r;
        r = check_privilege(msg, error);
        if (r < 0)
                return r;
        if (!m->cluster)
                return sd_bus_error_set(error, BUS_ERROR_NO_CLUSTER,
                                        "Clustering is not enabled on this node (ENABLE_DNS_SYNC, --cluster).");
        r = cluster_forget_member(m->cluster, node);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         streq(node, cluster_node_id(m->cluster))
                                                 ? "'%s' is this node."
                                                 : "Invalid node id '%s': use 1-64 of A-Z a-z 0-9 . _ -",
                                         node);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Nothing is known of cluster node '%s': no member, key or records.", node);
        if (r == -EPERM)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The key of '%s' is configured in [Cluster] TrustedNodes=: change it there.",
                                         node);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not forget '%s': %m", node);
        /* Rare and felt by the whole cluster: a notice. */
        log_fields_init(&fields);
        log_fields_add(&fields, "JOYRIDE_MEMBER=%s", node);
        log_bus_call(msg, LOG_NOTICE, &fields);
        return sd_bus_reply_method_return(msg, NULL);
}

void manager_bus_emit_member_changed(Manager *m, const char *node, const char *address, const char *state) {
        int r;

        if (!bus_usable(m))
                return;
        r = sd_bus_emit_signal(api_bus(m), BUS_PATH, BUS_INTERFACE, "MemberChanged", "sss", node, address, state);
        if (r < 0)
                log_debug_errno(r, "Failed to emit MemberChanged: %m");
}

static void on_reload_done(void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = userdata;
        int r;

        r = sd_bus_reply_method_return(msg, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to reply to Reload (the caller may be gone): %m");
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = check_privilege(msg, error);
        if (r < 0)
                return r;
        log_bus_call(msg, LOG_INFO, NULL);
        r = manager_reload(m);
        schedule_flush(m); /* HostsDirectory, Domains, ... may have changed */
        if (r < 0)
                return sd_bus_error_set(error, BUS_ERROR_RELOAD_FAILED,
                                        "Reload failed; the running configuration is kept (see the daemon's log).");
        /* The hosts files are reread in the background: answer once they are. */
        if (m->hosts && hosts_dir_busy(m->hosts)) {
                hosts_dir_when_idle(m->hosts, on_reload_done, sd_bus_message_ref(msg));
                return 1;
        }
        return sd_bus_reply_method_return(msg, NULL);
}

/* The query counters as name -> count, with the keys of the HTTP API's
 * /status dns_server object ("queries_by_type.A" for its nested ones). */
static int method_get_statistics(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        DnsServerCounters zero = {};
        ManagerStatus st;
        const DnsServerCounters *c;
        char key[64], rcode[32];
        int r;

        manager_get_status(userdata, &st);
        c = st.dns ?: &zero;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{st}{st}{st}{st}{st}{st}{st}", "queries",
                                          c->queries_udp + c->queries_tcp, "queries_udp", c->queries_udp, "queries_tcp",
                                          c->queries_tcp, "truncated", c->truncated, "tcp_connections",
                                          c->tcp_connections, "tcp_rejected", c->tcp_rejected, "tcp_timeouts",
                                          c->tcp_timeouts);
        for (int i = 0; r >= 0 && i < DNS_SERVER_N_TYPES; i++) {
                snprintf(key, sizeof key, "queries_by_type.%s", dns_server_type_label(i));
                r = sd_bus_message_append(reply, "{st}", key, c->by_type[i]);
        }
        for (unsigned i = 0; r >= 0 && i < ELEMENTSOF(c->by_rcode); i++) {
                if (c->by_rcode[i] == 0 && i > 5) /* the common ones always, the rest when seen */
                        continue;
                snprintf(key, sizeof key, "responses_by_rcode.%s", dns_rcode_format(i, rcode));
                r = sd_bus_message_append(reply, "{st}", key, c->by_rcode[i]);
        }
        if (r >= 0 && st.forward) {
                /* The forwarder's, with the keys of /status "forwarding". */
                const DnsForwardCounters *f = &st.forward->counters;
                r = sd_bus_message_append(
                        reply, "{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}", "queries_forwarded",
                        c->forwarded, "forwarding.queries", f->queries, "forwarding.cache.hits", f->cache_hits,
                        "forwarding.cache.misses", f->cache_misses, "forwarding.cache.entries", f->cache_entries,
                        "forwarding.coalesced", f->coalesced, "forwarding.refused", f->refused, "forwarding.servfail",
                        f->servfail, "forwarding.upstream_queries", f->upstream_queries, "forwarding.upstream_tcp",
                        f->upstream_tcp, "forwarding.upstream_failures", f->upstream_failures, "forwarding.mismatched",
                        f->mismatched, "forwarding.dropped", f->dropped);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Sets the log level until the next restart or reload (which applies the
 * configured one again), as systemd's LogControl does. */
static int method_set_log_level(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *level;
        int r, k;

        r = sd_bus_message_read(msg, "s", &level);
        if (r < 0)
                return r;
        k = log_parse_level(level);
        if (k < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid log level '%s': expected emerg, alert, crit, err, warning, notice, "
                                         "info or debug.",
                                         level);
        r = check_privilege(msg, error);
        if (r < 0)
                return r;
        /* A notice, written whatever the old and the new level: the level
         * is raised for this one line. */
        log_set_max_level(MAX(k, LOG_NOTICE));
        log_bus_call(msg, LOG_NOTICE, NULL);
        log_set_max_level(k);
        schedule_flush(m); /* LogLevel changed */
        return sd_bus_reply_method_return(msg, NULL);
}

/* Properties are readable by everyone: sd-bus checks the caller only for
 * method calls and property writes (and refuses the UNPRIVILEGED flag on
 * read-only properties). */
static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("NodeId", "s", property_get_node_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Version", "t", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecordCount", "u", property_get_record_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DockerState", "s", property_get_docker_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DockerError", "s", property_get_docker_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostsDirectory", "s", property_get_hosts_directory, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostsWarnings", "a(sus)", property_get_hosts_warnings, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostsWarningCount", "u", property_get_hosts_warning_count, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Domains", "as", property_get_domains, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ClusterEnabled", "b", property_get_cluster_enabled, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemberCount", "u", property_get_member_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DNSPort", "q", property_get_dns_port, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ListenAddresses", "as", property_get_listen_addresses, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EtcdState", "s", property_get_etcd_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EtcdError", "s", property_get_etcd_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateDirectory", "s", property_get_state_directory, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DaemonVersion", "s", property_get_daemon_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StartTimestamp", "t", property_get_start_timestamp, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* Changes all the time: read it, do not wait for a signal. */
        SD_BUS_PROPERTY("Uptime", "t", property_get_uptime, 0, 0),
        SD_BUS_PROPERTY("LogLevel", "s", property_get_log_level, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ForwardEnabled", "b", property_get_forward_enabled, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ForwardUpstreams", "as", property_get_forward_upstreams, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

        SD_BUS_METHOD_WITH_ARGS("ListRecords", SD_BUS_ARGS("s", name, "s", source),
                                SD_BUS_RESULT("a" RECORD_SIGNATURE, records), method_list_records,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resolve", SD_BUS_ARGS("s", name, "s", type),
                                SD_BUS_RESULT("s", rcode, "a" ANSWER_SIGNATURE, answers), method_resolve,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddRecord", SD_BUS_ARGS("s", name, "s", type, "s", value, "u", ttl), SD_BUS_NO_RESULT,
                                method_add_record, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveRecord", SD_BUS_ARGS("s", name, "s", type, "s", value),
                                SD_BUS_RESULT("u", removed), method_remove_record, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListMembers", SD_BUS_NO_ARGS, SD_BUS_RESULT("a" MEMBER_SIGNATURE, members),
                                method_list_members, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Sync", NULL, NULL, method_sync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForgetMember", SD_BUS_ARGS("s", node_id), SD_BUS_NO_RESULT, method_forget_member,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", NULL, NULL, method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{st}", counters),
                                method_get_statistics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetLogLevel", SD_BUS_ARGS("s", level), SD_BUS_NO_RESULT, method_set_log_level,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("RecordsChanged",
                                SD_BUS_ARGS("a" RECORD_SIGNATURE, added, "a" RECORD_SIGNATURE, removed), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MemberChanged", SD_BUS_ARGS("s", node_id, "s", address, "s", state), 0),

        SD_BUS_VTABLE_END
};

/* The value of a property as its getter appends it, as text: what change
 * detection compares. NULL when the bus cannot build a message (closed). */
static char *property_snapshot(Manager *m, const sd_bus_vtable *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char *text = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        r = sd_bus_message_new_signal(api_bus(m), &msg, BUS_PATH, BUS_INTERFACE, "Snapshot");
        if (r >= 0)
                r = v->x.property.get(api_bus(m), BUS_PATH, BUS_INTERFACE, v->x.property.member, msg, m, &error);
        if (r >= 0)
                r = sd_bus_message_seal(msg, 1, 0);
        if (r < 0)
                return NULL;
        f = open_memstream(&text, &size);
        if (!f)
                return NULL;
        r = sd_bus_message_dump(msg, f, 0);
        if (fclose(f) != 0 || r < 0) {
                free(text);
                return NULL;
        }
        return text;
}

static bool property_emits_change(const sd_bus_vtable *v) {
        return v->type == _SD_BUS_VTABLE_PROPERTY && (v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE);
}

/* Takes the current value of every property that announces changes as the
 * last announced one; returns the names of those that differ, NULL-terminated
 * (the array is the caller's, the names are the vtable's). */
static const char **snapshot_properties(Manager *m) {
        ManagerBus *b = bus_data(m);
        GPtrArray *changed = g_ptr_array_new();

        for (const sd_bus_vtable *v = manager_vtable; v->type != _SD_BUS_VTABLE_END; v++) {
                const char *name = v->x.property.member;
                char *now;

                if (!property_emits_change(v))
                        continue;
                now = property_snapshot(m, v);
                if (!now || streq_ptr(now, g_hash_table_lookup(b->snapshot, name))) {
                        free(now);
                        continue;
                }
                g_hash_table_replace(b->snapshot, (gpointer) name, now);
                g_ptr_array_add(changed, (gpointer) name);
        }
        g_ptr_array_add(changed, NULL);
        return (const char **) g_ptr_array_free(changed, FALSE);
}

/* Sends one PropertiesChanged with every property that differs from the
 * last snapshot. */
static void emit_properties_changed(Manager *m) {
        g_autofree const char **changed = NULL;
        int r;

        if (!bus_usable(m))
                return; /* compared again on connecting */
        changed = snapshot_properties(m);
        if (!changed[0])
                return;
        r = sd_bus_emit_properties_changed_strv(api_bus(m), BUS_PATH, BUS_INTERFACE, (char **) changed);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged: %m");
}

/* --- connections --------------------------------------------------------- */

/* The bus connections are this file's alone, and so is their life. The first
 * attempt at start is a plain one, so that a bus that is not there is
 * reported at once; every later one is in watch-bind mode: sd-bus waits,
 * through inotify, for the bus socket to appear and connects as soon as it
 * does, without polling. Each time a connection is up (the Connected signal)
 * it is handed to what uses it: the org.joyride.DNS name and the
 * systemd-resolved registration. When it is lost (Disconnected) they let go
 * of it, and the next one is opened. */

static const char *bus_kind_to_string(BusKind kind) {
        return kind == BUS_USER ? "user" : "system";
}

static const char *bus_kind(Manager *m) {
        return bus_kind_to_string(m->config.bus);
}

static int on_name_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t result = 0;

        if (e) {
                log_warning("Failed to own the bus name %s on the %s bus, the D-Bus API is unavailable: %s", BUS_NAME,
                            bus_kind(m), strna(e->message));
                return 0;
        }
        (void) sd_bus_message_read(reply, "u", &result);
        if (result == 1 /* DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER */ || result == 4 /* ALREADY_OWNER */)
                log_info("Acquired bus name %s on the %s bus.", BUS_NAME, bus_kind(m));
        else
                log_warning("Bus name %s on the %s bus is owned by another process; the D-Bus API is unavailable.",
                            BUS_NAME, bus_kind(m));
        return 0;
}

/* Like sd_bus_open_system() and sd_bus_open_user(), plus the Connected
 * signal and, when asked, watch-bind mode. */
static int bus_open(BusKind kind, bool watch_bind, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        g_autofree char *address = NULL;
        const char *e;
        int r;

        if (kind == BUS_USER) {
                e = secure_getenv("DBUS_SESSION_BUS_ADDRESS");
                if (!e) {
                        g_autofree char *escaped = NULL;

                        e = secure_getenv("XDG_RUNTIME_DIR");
                        if (!e)
                                return -ENOMEDIUM; /* what sd_bus_open_user() says then */
                        escaped = g_dbus_address_escape_value(e);
                        address = g_strconcat("unix:path=", escaped, "/bus", NULL);
                }
        } else {
                e = secure_getenv("DBUS_SYSTEM_BUS_ADDRESS");
                if (!e)
                        e = "unix:path=/run/dbus/system_bus_socket";
        }

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        (void) sd_bus_set_description(bus, "joyride");
        r = sd_bus_set_address(bus, address ?: e);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        /* As sd-bus does for its own connections: everyone on the user bus is
         * us; on the system bus every method checks its caller. */
        if (r >= 0)
                r = sd_bus_set_trusted(bus, kind == BUS_USER);
        if (r >= 0 && kind == BUS_SYSTEM)
                r = sd_bus_negotiate_creds(bus, true,
                                           SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_EFFECTIVE_CAPS);
        if (r >= 0)
                r = sd_bus_set_watch_bind(bus, watch_bind);
        if (r >= 0)
                r = sd_bus_set_connected_signal(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

static void schedule_reconnect(BusConnection *c) {
        (void) sd_event_source_set_time_relative(c->reconnect_timer, RECONNECT_USEC);
        (void) sd_event_source_set_enabled(c->reconnect_timer, SD_EVENT_ONESHOT);
}

static int on_connected(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        BusConnection *c = userdata;
        Manager *m = c->manager;
        int r;

        if (c->lost)
                log_info("Connected to the %s bus.", bus_kind_to_string(c->kind));
        c->lost = false;

        if (c->exports) {
                g_free(snapshot_properties(m)); /* what clients see on connecting: no news */
                /* Asynchronous: never block the loop that answers DNS on the bus. */
                r = sd_bus_request_name_async(c->bus, NULL, BUS_NAME, 0, on_name_reply, m);
                if (r < 0)
                        log_warning_errno(r, "Failed to request the bus name %s, the D-Bus API is unavailable: %m",
                                          BUS_NAME);
        }
        if (c->reaches_resolved && m->resolved)
                resolved_set_bus(m->resolved, c->bus);
        if (c->reaches_resolved)
                forward_upstreams_set_bus(m->forward_upstreams, c->bus);
        return 0;
}

static int on_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        BusConnection *c = userdata;
        Manager *m = c->manager;

        if (c->exports)
                log_warning("Lost the connection to the %s bus; DNS continues, connecting again when the bus is back.",
                            bus_kind_to_string(c->kind));
        else
                log_warning(
                        "Lost the connection to the system bus; reaching systemd-resolved again "
                        "when the bus is back.");
        c->lost = true;
        if (c->reaches_resolved && m->resolved)
                resolved_set_bus(m->resolved, NULL);
        if (c->reaches_resolved)
                forward_upstreams_set_bus(m->forward_upstreams, NULL);
        /* Not freed here: sd-bus is dispatching this very connection. */
        schedule_reconnect(c);
        return 0;
}

static int connection_open(BusConnection *c, bool watch_bind) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        Manager *m = c->manager;
        int r;

        r = bus_open(c->kind, watch_bind, &bus);
        if (r < 0)
                return r;
        if (c->exports) {
                r = sd_bus_add_object_vtable(bus, NULL, BUS_PATH, BUS_INTERFACE, manager_vtable, m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_match_signal_async(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                      "org.freedesktop.DBus.Local", "Connected", on_connected, NULL, c);
        if (r >= 0)
                r = sd_bus_match_signal_async(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                              "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, NULL, c);
        if (r >= 0)
                r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        c->bus = TAKE_PTR(bus);
        return 0;
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        BusConnection *c = userdata;
        int r;

        c->bus = sd_bus_flush_close_unref(c->bus);
        r = connection_open(c, /* watch_bind= */ true);
        if (r < 0) {
                log_debug_errno(r, "Cannot open a connection to the %s bus yet: %m", bus_kind_to_string(c->kind));
                schedule_reconnect(c);
        }
        return 0;
}

static int connection_start(BusConnection *c) {
        Manager *m = c->manager;
        int r;

        r = sd_event_add_time_relative(m->event, &c->reconnect_timer, CLOCK_MONOTONIC, RECONNECT_USEC,
                                       USEC_PER_SEC / 10, on_reconnect, c);
        if (r < 0)
                return log_error_errno(r, "Failed to set up D-Bus reconnection: %m");
        (void) sd_event_source_set_enabled(c->reconnect_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->reconnect_timer, "bus-reconnect");

        r = connection_open(c, /* watch_bind= */ false);
        if (r >= 0)
                return 0;

        /* DNS matters more than the management API: serve, and wait for the bus. */
        log_warning_errno(r, "Cannot connect to the %s bus, %s until it appears: %m", bus_kind_to_string(c->kind),
                          c->exports ? "the D-Bus API is unavailable" : "not reaching systemd-resolved");
        c->lost = true;
        r = connection_open(c, /* watch_bind= */ true);
        if (r < 0) {
                log_debug_errno(r, "Cannot open a connection to the %s bus yet: %m", bus_kind_to_string(c->kind));
                schedule_reconnect(c);
        }
        return 0;
}

static void connection_done(BusConnection *c) {
        Manager *m = c->manager;

        if (c->reaches_resolved && m->resolved)
                resolved_set_bus(m->resolved, NULL);
        if (c->reaches_resolved)
                forward_upstreams_set_bus(m->forward_upstreams, NULL);
        c->bus = sd_bus_flush_close_unref(c->bus);
        c->reconnect_timer = sd_event_source_disable_unref(c->reconnect_timer);
}

int manager_bus_setup(Manager *m) {
        ManagerBus *b;
        int r;

        if (m->bus_data)
                return 0;
        b = g_new0(ManagerBus, 1);
        b->pending = g_ptr_array_new_with_free_func(pending_change_free);
        b->pending_by_key = g_hash_table_new(g_str_hash, g_str_equal);
        b->snapshot = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, free);
        m->bus_data = b;

        if (m->config.bus != BUS_NONE) {
                b->api = &b->connections[b->n_connections++];
                *b->api = (BusConnection) {
                        .manager = m,
                        .kind = m->config.bus,
                        .exports = true,
                        .reaches_resolved = m->config.bus == BUS_SYSTEM,
                };

                r = sd_event_add_defer(m->event, &b->flush_source, on_flush, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up D-Bus signal coalescing: %m");
                /* Idle priority: runs after every other pending source of this turn. */
                (void) sd_event_source_set_priority(b->flush_source, SD_EVENT_PRIORITY_IDLE);
                (void) sd_event_source_set_enabled(b->flush_source, SD_EVENT_OFF);
                (void) sd_event_source_set_description(b->flush_source, "bus-flush");

                r = sd_event_add_time_relative(m->event, &b->poll_timer, CLOCK_MONOTONIC, PROPERTY_POLL_USEC,
                                               PROPERTY_POLL_USEC / 2, on_poll, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up D-Bus property polling: %m");
                (void) sd_event_source_set_enabled(b->poll_timer, SD_EVENT_ON);
                (void) sd_event_source_set_description(b->poll_timer, "bus-property-poll");

                store_subscribe(m->store, on_record_change, m);

                if (m->config.state_directory) {
                        r = state_writer_new(&b->state_writer, m->event, m->store, m->config.state_directory);
                        if (r < 0)
                                return log_error_errno(r, "Failed to set up the state file writer: %m");
                }
        }
        /* systemd-resolved is on the system bus, whichever bus the API is on. */
        if ((m->resolved || m->forward_upstreams) && m->config.bus != BUS_SYSTEM)
                b->connections[b->n_connections++] = (BusConnection) {
                        .manager = m,
                        .kind = BUS_SYSTEM,
                        .reaches_resolved = true,
                };

        for (size_t i = 0; i < b->n_connections; i++) {
                r = connection_start(&b->connections[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct sd_bus *manager_bus_system(Manager *m) {
        ManagerBus *b = bus_data(m);

        for (size_t i = 0; b && i < b->n_connections; i++)
                if (b->connections[i].reaches_resolved && !b->connections[i].lost)
                        return b->connections[i].bus;
        return NULL;
}

void manager_bus_done(Manager *m) {
        ManagerBus *b = bus_data(m);

        if (!b)
                return;
        /* Writes what is still waiting and answers its callers: before the bus goes. */
        b->state_writer = state_writer_free(b->state_writer);
        if (b->api && m->store)
                store_unsubscribe(m->store, on_record_change, m);
        for (size_t i = 0; i < b->n_connections; i++)
                connection_done(&b->connections[i]);
        sd_event_source_disable_unref(b->flush_source);
        sd_event_source_disable_unref(b->poll_timer);
        g_hash_table_destroy(b->pending_by_key);
        g_ptr_array_free(b->pending, TRUE);
        g_hash_table_destroy(b->snapshot);
        g_free(b);
        m->bus_data = NULL;
}
