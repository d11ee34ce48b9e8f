/* SPDX-License-Identifier: MIT */
/* The Manager: wires configuration, store, sources and transports together on
 * one sd-event loop (itself driven by GLib's main loop, see event-glib.c). */

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "catalog.h"
#include "event-glib.h"
#include "log.h"
#include "manager.h"
#include "cluster.h"
#include "forward-upstreams.h"
#include "manager-bus.h"
#include "resolved.h"
#include "state.h"
#include "time-util.h"

/* A line per record change, at most this many a second; then one summary. */
#define LOG_LINES_PER_WINDOW 20
#define LOG_WINDOW_USEC USEC_PER_SEC
#define STATUS_INTERVAL_USEC (2 * USEC_PER_SEC)
#define WATCHDOG_CHECK_USEC (5 * USEC_PER_SEC)

static void answer_config_update(Manager *m) {
        m->answer_config = (DnsAnswerConfig) {
                .domains = m->config.dns_domains,
                .negative_ttl = m->config.negative_ttl,
                .soa_mname = "ns.joyride.invalid",
                .soa_rname = "hostmaster.joyride.invalid",
        };
}

/* --- record change log: a line per change, coalesced per second ----------
 * Per second rather than per loop turn: a large change is applied in many
 * short turns, and each would otherwise log its own twenty lines. */

static int on_log_flush(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->suppressed_log_lines > 0)
                log_info("... and %u more record changes (store version %llu, %zu records)", m->suppressed_log_lines,
                         (unsigned long long) store_version(m->store), store_count(m->store));
        m->pending_log_lines = 0;
        m->suppressed_log_lines = 0;
        return 0;
}

static void on_record_change(Store *s, RecordChange change, const Record *r, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *source = NULL;
        const char *type = strna(dns_type_to_string(r->type));
        char f_name[300], f_type[32], f_value[2100], f_source[600], f_change[32];
        /* MESSAGE_ID keys the explanation in joyride.catalog (journalctl -x). */
        const char *fields[] = {
                f_name,   f_type,   f_value,
                f_source, f_change, change == RECORD_ADDED ? JOYRIDE_FIELD_RECORD_ADDED : JOYRIDE_FIELD_RECORD_REMOVED,
                NULL
        };
        int level;

        m->status_dirty = true;
        level = ++m->pending_log_lines <= LOG_LINES_PER_WINDOW ? LOG_INFO : LOG_DEBUG;
        if (level == LOG_DEBUG)
                m->suppressed_log_lines++;
        if (m->pending_log_lines == 1 && m->log_flush_source) {
                /* The first change of a window: its summary a second from now. */
                (void) sd_event_source_set_time_relative(m->log_flush_source, LOG_WINDOW_USEC);
                (void) sd_event_source_set_enabled(m->log_flush_source, SD_EVENT_ONESHOT);
        }

        if (level > log_get_max_level())
                return;
        source = record_source(r);
        snprintf(f_name, sizeof f_name, "JOYRIDE_NAME=%s", r->name);
        snprintf(f_type, sizeof f_type, "JOYRIDE_TYPE=%s", type);
        snprintf(f_value, sizeof f_value, "JOYRIDE_VALUE=%s", strempty(r->value));
        snprintf(f_source, sizeof f_source, "JOYRIDE_SOURCE=%s", source);
        snprintf(f_change, sizeof f_change, "JOYRIDE_CHANGE=%s", change == RECORD_ADDED ? "added" : "removed");
        log_struct(level, fields, "%s %s %s %s (%s)", change == RECORD_ADDED ? "Added" : "Removed", r->name, type,
                   strempty(r->value), source);
}

/* After "Failed to bind ...": what to do about it, naming the setting. */
static void explain_bind_error(int r, const char *what, uint16_t port, const char *setting) {
        if (r == -EADDRINUSE)
                log_error("Another program holds the %s port %u; stop it, or choose another port with %s.%s", what,
                          port, setting,
                          port == 5353 ? " 5353 is also the mDNS port, which avahi-daemon holds on many desktops."
                                       : "");
        else if (r == -EACCES && port < 1024)
                log_error(
                        "The %s port %u is below 1024: it needs root or CAP_NET_BIND_SERVICE (the systemd unit "
                        "grants it), or choose a port above 1023 with %s.",
                        what, port, setting);
}

/* --- store memory ---------------------------------------------------------- */

/* Old views and nodes wait for a grace period before they are freed; a burst
 * of changes (a hosts reload, a cluster sync) hands them over once, at the
 * end of the loop turn. An index rebuild the burst left under way goes on a
 * slice per turn until it is done. */
static int on_store_flush(sd_event_source *source, void *userdata) {
        Manager *m = userdata;

        if (store_flush(m->store))
                (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        return 0;
}

static void on_store_retired(Store *s, void *userdata) {
        Manager *m = userdata;

        if (m->store_flush_source)
                (void) sd_event_source_set_enabled(m->store_flush_source, SD_EVENT_ONESHOT);
}

/* --- status -------------------------------------------------------------- */

void manager_get_status(Manager *m, ManagerStatus *ret) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        *ret = (ManagerStatus) {
                .version = JOYRIDE_VERSION,
                .service_name = m->config.service_name,
                .environment = m->config.environment,
                .node_id = m->config.node_id,
                .state_directory = m->config.state_directory,
                .http_host = m->config.http_host,
                .http_port = m->config.http_port,
                .start_realtime_usec = m->start_realtime_usec,
                .now_realtime_usec = now_usec(CLOCK_REALTIME),
                .uptime_usec = now > m->start_usec ? now - m->start_usec : 0,

                .dns_port = m->config.dns_port,
                .dns_bind_address = m->config.dns_bind_address,
                .dns_describe = m->dns ? dns_server_describe(m->dns) : NULL,
                .dns = m->dns ? &m->dns_counters : NULL,
                .domains = m->config.dns_domains,
                .n_records = store_count(m->store),
                .store_version = store_version(m->store),

                .hosts_directory = m->config.hosts_directory,
                .hosts_enabled = m->hosts != NULL,
                .docker_enabled = m->docker != NULL,
                .cluster_enabled = m->cluster != NULL,
        };
        /* The answering threads' counters, summed. */
        if (m->dns)
                dns_server_get_counters(m->dns, &m->dns_counters);
        dns_forward_status_done(&m->forward_status);
        if (m->forwarder && dns_forwarder_get_status(m->forwarder, &m->forward_status) >= 0) {
                /* A reply is a reply, whoever sent it. */
                for (size_t i = 0; i < ELEMENTSOF(m->dns_counters.by_rcode); i++)
                        m->dns_counters.by_rcode[i] += m->forward_status.counters.by_rcode[i];
                ret->forward = &m->forward_status;
        }
        if (m->config.forward) {
                ret->forward_enabled = true;
                ret->forward_source =
                        m->forward_upstreams ? strna(forward_upstreams_origin(m->forward_upstreams)) : "configured";
        }
        if (m->hosts)
                hosts_dir_get_status(m->hosts, &ret->hosts);
        if (m->docker)
                docker_monitor_get_status(m->docker, &ret->docker);
        if (m->cluster)
                ret->cluster = *cluster_get_counters(m->cluster);
        ret->etcd_enabled = m->etcd != NULL;
        if (m->etcd)
                etcd_source_get_status(m->etcd, &ret->etcd);
        ret->queries_per_second = &m->qps;
}

static void provider_get_status(void *userdata, ManagerStatus *ret) {
        manager_get_status(userdata, ret);
}

static size_t provider_get_members(void *userdata, ClusterMember **ret) {
        Manager *m = userdata;

        *ret = NULL;
        return m->cluster ? cluster_get_members(m->cluster, ret) : 0;
}

static int provider_sync_now(void *userdata) {
        Manager *m = userdata;
        int r = 0;

        if (!m->cluster && !m->etcd)
                return -EOPNOTSUPP;
        if (m->cluster)
                r = cluster_sync_now(m->cluster);
        /* etcd: read the whole prefix again, as on a reconnect. */
        etcd_source_resync(m->etcd);
        return r;
}

static void notify_status(Manager *m) {
        ManagerStatus st;
        char cluster[64] = "", forward[64] = "";

        manager_get_status(m, &st);
        if (st.cluster_enabled)
                snprintf(cluster, sizeof cluster, "; cluster: %u alive", st.cluster.members_alive);
        if (st.forward_enabled && st.forward)
                snprintf(forward, sizeof forward, "; forwarding to %zu upstream(s)", st.forward->n_upstreams);
        (void) sd_notifyf(false, "STATUS=Serving %zu records (version %llu) on %s%s%s%s%s%s%s%s%s", st.n_records,
                          (unsigned long long) st.store_version, st.dns_describe ?: "no sockets",
                          st.hosts_enabled ? "; hosts: " : "", st.hosts_enabled ? st.hosts.path : "",
                          st.docker_enabled ? "; docker: " : "",
                          st.docker_enabled ? manager_status_docker_state(&st) : "", cluster, forward,
                          st.etcd_enabled ? "; etcd: " : "", st.etcd_enabled ? manager_status_etcd_state(&st) : "");
        m->status_dirty = false;
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->status_dirty)
                notify_status(m);
        return sd_event_source_set_time(s, usec + STATUS_INTERVAL_USEC);
}

/* Once a second: the queries answered in that second, for the dashboard's chart. */
static int on_qps_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        DnsServerCounters counters, *c = NULL;

        if (m->dns) {
                dns_server_get_counters(m->dns, &counters);
                c = &counters;
        }

        rate_ring_sample(&m->qps, c ? c->queries_udp + c->queries_tcp : 0);
        return sd_event_source_set_time(s, usec + USEC_PER_SEC);
}

/* --- forwarding ----------------------------------------------------------- */

static bool forward_from_resolv_conf(const Config *c) {
        return c->forward && c->forward[0] && streq(c->forward[0], "resolv.conf");
}

/* Starts, reconfigures or disables the forwarder for the configuration and
 * the given upstreams. */
static int forwarder_apply(Manager *m, char **upstreams) {
        DnsForwardOptions opts = {
                .enabled = m->config.forward != NULL,
                .upstreams = upstreams,
                .allow = m->config.forward_allow,
                .cache_size = m->config.forward_cache_size,
                .max_ttl = m->config.forward_max_ttl,
        };
        int r;

        if (m->forwarder)
                return dns_forwarder_reconfigure(m->forwarder, &opts);
        if (!opts.enabled)
                return 0;
        r = dns_forwarder_new(&m->forwarder, &opts);
        if (r < 0)
                return r;
        return m->dns ? dns_server_set_forwarder(m->dns, m->forwarder) : 0;
}

static void on_forward_upstreams(ForwardUpstreams *u, char **servers, const char *origin, void *userdata) {
        Manager *m = userdata;

        m->status_dirty = true;
        if (forwarder_apply(m, servers) < 0)
                log_warning("Could not apply the new upstream DNS servers from %s.", origin);
}

static int manager_setup_forward(Manager *m) {
        _cleanup_(forward_upstreams_freep) ForwardUpstreams *u = NULL;
        char **upstreams = m->config.forward;
        int r;

        /* As for the hosts source: the new watcher first, and the running
         * one (with the upstreams in use) stays if it cannot be set up. */
        if (forward_from_resolv_conf(&m->config)) {
                r = forward_upstreams_new(&u, m->event, &m->config, on_forward_upstreams, m);
                if (r < 0)
                        return r;
                /* manager-bus.c owns the system bus connection; after a
                 * reload, this is a new user of it. */
                forward_upstreams_set_bus(u, manager_bus_system(m));
        }
        forward_upstreams_free(m->forward_upstreams);
        m->forward_upstreams = TAKE_PTR(u);
        if (m->forward_upstreams)
                upstreams = forward_upstreams_get(m->forward_upstreams);
        r = forwarder_apply(m, upstreams);
        if (r < 0)
                return log_error_errno(r, "Failed to set up DNS forwarding: %m");
        if (m->config.forward && !forward_from_resolv_conf(&m->config)) {
                g_autofree char *joined = g_strjoinv(", ", m->config.forward);
                log_info("Forwarding names that are not ours to %s.", joined);
        }
        return 0;
}

/* --- watchdog ----------------------------------------------------------- */

/* With WatchdogSec=, the service manager expects a ping within the period.
 * We ping from the control loop, and only while every answering thread still
 * answers ours: a wedged answering thread then gets the daemon restarted, as
 * a wedged control loop does. Without WatchdogSec=, the same check only logs. */
static int on_watchdog_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int stuck = dns_server_check_threads(m->dns);

        if (stuck >= 0) {
                if (m->dns_stuck < 0)
                        log_error("DNS answering thread %i has not responded for %llu ms%s.", stuck,
                                  (unsigned long long) (m->watchdog_period_usec / USEC_PER_MSEC),
                                  m->watchdog_usec > 0 ? "; no longer telling the service manager we are alive" : "");
        } else {
                if (m->dns_stuck >= 0)
                        log_notice("DNS answering thread %i responds again.", m->dns_stuck);
                if (m->watchdog_usec > 0)
                        (void) sd_notify(false, "WATCHDOG=1");
        }
        m->dns_stuck = stuck;
        return sd_event_source_set_time(s, usec + m->watchdog_period_usec);
}

static int manager_setup_watchdog(Manager *m) {
        uint64_t usec = 0;
        int r;

        r = sd_watchdog_enabled(false, &usec);
        if (r < 0)
                log_warning_errno(r, "Failed to read the watchdog settings, ignoring: %m");
        m->watchdog_usec = r > 0 ? usec : 0;
        /* Four checks per watchdog period, as sd-event pings; without one,
         * a check every few seconds for the log. */
        m->watchdog_period_usec =
                m->watchdog_usec > 0 ? MAX(m->watchdog_usec / 4, (uint64_t) 1000) : WATCHDOG_CHECK_USEC;
        m->dns_stuck = -1;

        r = sd_event_add_time_relative(m->event, &m->watchdog_timer, CLOCK_MONOTONIC, m->watchdog_period_usec,
                                       m->watchdog_period_usec / 20, on_watchdog_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the watchdog timer: %m");
        (void) sd_event_source_set_description(m->watchdog_timer, "watchdog");
        (void) sd_event_source_set_enabled(m->watchdog_timer, SD_EVENT_ON);
        if (m->watchdog_usec > 0)
                (void) sd_notify(false, "WATCHDOG=1");
        return 0;
}

/* --- cluster ------------------------------------------------------------ */

static void on_member_change(Cluster *c, const ClusterMember *member, void *userdata) {
        Manager *m = userdata;

        m->status_dirty = true;
        manager_bus_emit_member_changed(m, member->id, member->address, member->state);
}

/* --- signals ------------------------------------------------------------- */

static void on_etcd_stopped(void *userdata) {
        Manager *m = userdata;
        (void) sd_event_exit(m->event, 0);
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->stopping) {
                log_info("Received %s again, not waiting for etcd.", strsignal((int) si->ssi_signo));
                return sd_event_exit(m->event, 0);
        }
        log_info("Received %s, shutting down.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        m->stopping = true;
        /* Revoke the etcd lease first (asynchronously, still answering
         * queries), so that this node's names leave the others at once. */
        if (m->etcd) {
                etcd_source_stop(m->etcd, on_etcd_stopped, m);
                return 0;
        }
        return sd_event_exit(m->event, 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIGHUP, reloading.");
        (void) manager_reload(m);
        return 0;
}

/* --- socket activation --------------------------------------------------- */

static int socket_type(int fd) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return negative_errno();
        return type;
}

/* Sorts the passed fds into roles: by name first (dns-udp, dns-tcp, http),
 * then by socket type for unnamed ones (systemd passes them in any order). */
static int collect_listen_fds(Manager *m) {
        char **names = NULL;
        int n, unnamed_stream = 0;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to read passed sockets: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names ? names[i] : NULL;
                int type = socket_type(fd);

                if (streq_ptr(name, "dns-udp") && type == SOCK_DGRAM)
                        m->listen_udp_fd = fd;
                else if (streq_ptr(name, "dns-tcp") && type == SOCK_STREAM)
                        m->listen_tcp_fd = fd;
                else if (streq_ptr(name, "http") && type == SOCK_STREAM)
                        m->listen_http_fd = fd;
                else if (type == SOCK_DGRAM && m->listen_udp_fd < 0)
                        m->listen_udp_fd = fd;
                else if (type == SOCK_STREAM && unnamed_stream++ == 0 && m->listen_tcp_fd < 0)
                        m->listen_tcp_fd = fd;
                else if (type == SOCK_STREAM && m->listen_http_fd < 0)
                        m->listen_http_fd = fd;
                else {
                        log_warning("Ignoring passed socket %i (name %s): no use for it.", fd, strna(name));
                        (void) close(fd);
                }
        }
        if (n > 0)
                log_info("Received %i socket(s) from the service manager.", n);
        for (int i = 0; names && names[i]; i++)
                free(names[i]);
        free(names);
        return n;
}

/* --- lifecycle ----------------------------------------------------------- */

int manager_new(Manager **ret, Config *config, int argc, char **argv, char **envp) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = g_new0(Manager, 1);
        *m = (Manager) {
                .config = *config,
                .argc = argc,
                .argv = argv,
                .envp = envp,
                .listen_udp_fd = -EBADF,
                .listen_tcp_fd = -EBADF,
                .listen_http_fd = -EBADF,
                .start_usec = now_usec(CLOCK_MONOTONIC),
                .start_realtime_usec = now_usec(CLOCK_REALTIME),
        };
        *config = (Config) {};

        r = sd_event_new(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        r = store_new(&m->store);
        if (r < 0)
                return r;
        answer_config_update(m);
        m->loop = g_main_loop_new(NULL, FALSE);

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* First DNS: no new question goes to the forwarder, which replies on
         * the server's sockets and so goes before them; then the answering
         * threads send the answers they owe and stop, before the sources
         * take their records away. */
        m->forward_upstreams = forward_upstreams_free(m->forward_upstreams);
        if (m->dns)
                (void) dns_server_set_forwarder(m->dns, NULL);
        m->forwarder = dns_forwarder_free(m->forwarder);
        dns_forward_status_done(&m->forward_status);
        m->dns = dns_server_free(m->dns);
        /* Sources drop their records as they go: that is shutdown, not news. */
        if (m->store) {
                store_unsubscribe(m->store, on_record_change, m);
                store_set_flush_hook(m->store, NULL, NULL);
        }
        /* Leave the cluster before the sources drop their records, so peers
         * see LEFT, not a burst of deletions. */
        m->cluster = cluster_free(m->cluster);
        /* Before the bus goes: RevertLink travels on it. */
        m->resolved = resolved_free(m->resolved);
        manager_bus_done(m);
        m->http = http_server_free(m->http);
        m->etcd = etcd_source_free(m->etcd);
        m->docker = docker_monitor_free(m->docker);
        m->hosts = hosts_dir_free(m->hosts);
        if (m->listen_http_fd >= 0)
                (void) close(m->listen_http_fd);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        sd_event_source_disable_unref(m->sighup_source);
        sd_event_source_disable_unref(m->log_flush_source);
        sd_event_source_disable_unref(m->store_flush_source);
        sd_event_source_disable_unref(m->status_timer);
        sd_event_source_disable_unref(m->qps_timer);
        sd_event_source_disable_unref(m->watchdog_timer);
        m->store = store_free(m->store);
        sd_event_unref(m->event);
        if (m->loop)
                g_main_loop_unref(m->loop);
        config_done(&m->config);
        g_free(m);
        return NULL;
}

/* Whether two directory paths name the same one for hosts_dir_new(), which
 * ignores trailing slashes (its records' owners are built from the path). */
static bool hosts_path_equal(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);

        while (la > 1 && a[la - 1] == '/')
                la--;
        while (lb > 1 && b[lb - 1] == '/')
                lb--;
        return la == lb && strncmp(a, b, la) == 0;
}

/* Makes the hosts source follow the configured directory: the running one is
 * rescanned when it watches that directory already, else replaced. The new
 * source is created (and has loaded its files) before the old one goes with
 * its records, so that a directory that cannot be watched leaves the running
 * one serving, and a switch never has a moment without hosts records. */
static int manager_setup_hosts(Manager *m) {
        _cleanup_(hosts_dir_freep) HostsDir *hosts = NULL;
        const char *path = m->config.hosts_directory;
        HostsDirStatus running = {};
        int r;

        if (m->hosts && path) {
                hosts_dir_get_status(m->hosts, &running);
                if (hosts_path_equal(running.path, path)) {
                        /* What goes wrong is logged, and the next rescan retries. */
                        hosts_dir_set_limits(m->hosts, m->config.hosts_max_records_per_file,
                                             m->config.hosts_max_records);
                        (void) hosts_dir_rescan(m->hosts);
                        return 0;
                }
        }
        if (path) {
                HostsDirOptions opts = {
                        .path = path,
                        .ttl = m->config.default_ttl,
                        .max_records_per_file = m->config.hosts_max_records_per_file,
                        .max_records = m->config.hosts_max_records,
                };

                r = hosts_dir_new(&hosts, m->event, m->store, &opts);
                if (r < 0 && m->hosts)
                        return log_error_errno(r, "Failed to watch hosts directory %s, still serving %s: %m", path,
                                               running.path);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch hosts directory %s: %m", path);
        }
        /* Different directories give different owners: freeing the old source
         * removes none of the new one's records. */
        hosts_dir_free(m->hosts);
        m->hosts = TAKE_PTR(hosts);
        return 0;
}

/* File descriptors the daemon may need at its caps: every DNS TCP and HTTP
 * connection, the cluster's push-pull connections, and the rest (sockets,
 * event sources, the bus, Docker, inotify, a file being read, the journal). */
#define FDS_CLUSTER 64u
#define FDS_OTHER 128u

/* Makes sure the connection caps fit in RLIMIT_NOFILE: raises the soft limit
 * as far as the hard one allows, and says which setting to change if that is
 * not enough. The caps are what keep HTTP from taking the fds DNS needs; they
 * only work if the caps themselves fit. */
static void manager_check_fd_limit(Manager *m) {
        uint64_t need =
                (uint64_t) m->config.tcp_max_connections + m->config.http_max_connections + FDS_CLUSTER + FDS_OTHER;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
                return;
        if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
                rl.rlim_cur = (rlim_t) need;
                if (setrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                        log_debug("Raised the file descriptor limit to %llu for the connection caps.",
                                  (unsigned long long) need);
                        return;
                }
        }
        log_warning(
                "The file descriptor limit (%llu) is below what [DNS] TCPMaxConnections=%u and "
                "[HTTP] MaxConnections=%u need (%llu): raise LimitNOFILE= (ulimit -n) or lower the caps.",
                (unsigned long long) (rl.rlim_max == RLIM_INFINITY ? rl.rlim_cur : MAX(rl.rlim_cur, rl.rlim_max)),
                m->config.tcp_max_connections, m->config.http_max_connections, (unsigned long long) need);
}

/* Long on purpose: the start sequence in order, one short block per component
 * (sockets, store sources, transports, bus, timers, readiness); the order is
 * the point, and each block's error path is local. */
int manager_start(Manager *m) {
        int r;

        manager_check_fd_limit(m);

        r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sighup_source, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        (void) sd_event_source_set_description(m->sigterm_source, "signal-term");
        (void) sd_event_source_set_description(m->sigint_source, "signal-int");
        (void) sd_event_source_set_description(m->sighup_source, "signal-hup");

        r = sd_event_add_time_relative(m->event, &m->log_flush_source, CLOCK_MONOTONIC, LOG_WINDOW_USEC,
                                       USEC_PER_SEC / 10, on_log_flush, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up log coalescing: %m");
        (void) sd_event_source_set_enabled(m->log_flush_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->log_flush_source, "log-flush");
        store_subscribe(m->store, on_record_change, m);

        r = sd_event_add_defer(m->event, &m->store_flush_source, on_store_flush, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up store memory release: %m");
        (void) sd_event_source_set_enabled(m->store_flush_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->store_flush_source, "store-flush");
        store_set_flush_hook(m->store, on_store_retired, m);

        r = collect_listen_fds(m);
        if (r < 0)
                return r;

        /* Sockets first, so queries that arrive while the hosts files load wait
         * in the socket buffer instead of being refused. */
        DnsServerOptions opts = {
                .bind_address = m->config.dns_bind_address,
                .port = m->config.dns_port,
                .tcp_idle_timeout_msec = m->config.tcp_idle_timeout_msec,
                .tcp_max_connections = m->config.tcp_max_connections,
                .threads = m->config.dns_threads,
                .udp_fd = m->listen_udp_fd,
                .tcp_fd = m->listen_tcp_fd,
        };
        r = dns_server_new(&m->dns, m->store, &m->answer_config, &opts);
        if (r < 0) {
                explain_bind_error(r, "DNS", m->config.dns_port, "--dns-port= (DNS_PORT=, [DNS] Port=)");
                return r;
        }
        m->listen_udp_fd = m->listen_tcp_fd = -EBADF; /* the server owns them now */

        r = manager_setup_forward(m);
        if (r < 0)
                return r;

        r = manager_setup_hosts(m);
        if (r < 0)
                return r;

        /* Records added over D-Bus belong to the daemon: served whether or not
         * the bus is there. A bad state file is moved aside, never fatal. */
        (void) state_load(m->store, m->config.state_directory);

        if (m->config.docker_enabled) {
                DockerOptions dopts = {
                        .docker_host = m->config.docker_host,
                        .hostip = m->config.hostip,
                        .hostip6 = m->config.hostip6,
                        .default_ttl = m->config.default_ttl,
                };
                r = docker_monitor_new(&m->docker, m->store, &dopts);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the Docker monitor: %m");
        }

        if (m->config.cluster_enabled) {
                ClusterOptions copts = {
                        .node_id = m->config.node_id,
                        .swim_port = m->config.swim_port,
                        .discovery_port = m->config.discovery_port,
                        .join = m->config.join,
                        .key = m->config.cluster_key,
                        .key_file = m->config.cluster_key_file,
                        .bind_address = m->config.cluster_bind_address,
                        .advertise_address = m->config.cluster_advertise_address,
                        .broadcast_discovery = m->config.cluster_discovery,
                        .probe_interval_usec = m->config.probe_interval_msec * USEC_PER_MSEC,
                        .probe_timeout_usec = m->config.probe_timeout_msec * USEC_PER_MSEC,
                        .gossip_interval_usec = m->config.gossip_interval_msec * USEC_PER_MSEC,
                        .indirect_checks = (int) m->config.indirect_checks,
                        .suspicion_mult = m->config.suspicion_mult,
                        .retransmit_mult = m->config.retransmit_mult,
                        .push_pull_interval_usec = m->config.push_pull_interval_msec * USEC_PER_MSEC,
                        .discovery_interval_usec = m->config.discovery_interval_msec * USEC_PER_MSEC,
                        .dead_grace_usec = m->config.dead_grace_msec * USEC_PER_MSEC,
                        .state_directory = m->config.state_directory,
                        .max_members = m->config.max_members,
                        .max_records_per_node = m->config.max_records_per_node,
                        .trusted_nodes = m->config.trusted_nodes,
                };
                r = cluster_new(&m->cluster, m->event, m->store, &copts);
                if (r < 0)
                        return r;
                cluster_set_member_callback(m->cluster, on_member_change, m);
        }

        if (m->config.etcd_endpoints) {
                EtcdOptions eopts = {
                        .endpoints = m->config.etcd_endpoints,
                        .prefix = m->config.etcd_prefix,
                        .lease_ttl = m->config.etcd_lease_ttl,
                        .ca_file = m->config.etcd_ca_file,
                        .cert_file = m->config.etcd_cert_file,
                        .key_file = m->config.etcd_key_file,
                        .user = m->config.etcd_user,
                        .password_file = m->config.etcd_password_file,
                        .node_id = m->config.node_id,
                        .default_ttl = m->config.default_ttl,
                };
                r = etcd_source_new(&m->etcd, m->event, m->store, &eopts);
                if (r < 0)
                        return r;
        }

        if (m->config.http_enabled || m->listen_http_fd >= 0) {
                HttpServerOptions hopts = {
                        .event = m->event,
                        .host = m->config.http_host,
                        .port = m->config.http_port,
                        .fd = m->listen_http_fd,
                        .api_token = m->config.api_token,
                        .max_connections = m->config.http_max_connections,
                        .request_timeout_msec = m->config.http_request_timeout_msec,
                        .allowed_hosts = m->config.http_allowed_hosts,
                };
                StatusProvider provider = {
                        .userdata = m,
                        .get_status = provider_get_status,
                        .get_members = provider_get_members,
                        .sync_now = provider_sync_now,
                };
                r = http_server_new(&m->http, m->store, &hopts, &provider);
                if (r < 0) {
                        explain_bind_error(r, "HTTP", m->config.http_port, "--http-port= (FLASK_PORT=, [HTTP] Port=)");
                        return r;
                }
                m->listen_http_fd = -EBADF;
        }

        /* Optional, asynchronous, never fatal (warnings only). It gets its
         * system bus connection from manager-bus.c, which keeps it. */
        if (m->config.resolved_link) {
                r = resolved_new(&m->resolved, m->event, &m->config);
                if (r < 0)
                        log_warning_errno(r, "Not registering with systemd-resolved: %m");
        }

        if (m->config.bus != BUS_NONE || m->resolved || m->forward_upstreams) {
                r = manager_bus_setup(m);
                if (r < 0)
                        return r;
        }

        /* The records we start with are in: answer. */
        r = dns_server_start(m->dns);
        if (r < 0)
                return r;

        r = manager_setup_watchdog(m);
        if (r < 0)
                return r;

        r = sd_event_add_time_relative(m->event, &m->status_timer, CLOCK_MONOTONIC, STATUS_INTERVAL_USEC,
                                       USEC_PER_SEC / 10, on_status_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up status timer: %m");
        (void) sd_event_source_set_description(m->status_timer, "status");
        (void) sd_event_source_set_enabled(m->status_timer, SD_EVENT_ON);

        r = sd_event_add_time_relative(m->event, &m->qps_timer, CLOCK_MONOTONIC, USEC_PER_SEC, USEC_PER_SEC / 100,
                                       on_qps_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the query rate timer: %m");
        (void) sd_event_source_set_description(m->qps_timer, "query-rate");
        (void) sd_event_source_set_enabled(m->qps_timer, SD_EVENT_ON);
        rate_ring_sample(&m->qps, 0);

        log_info("joyrided %s started: DNS on %s (%u thread%s), %zu records%s%s.", JOYRIDE_VERSION,
                 dns_server_describe(m->dns), dns_server_threads(m->dns), dns_server_threads(m->dns) == 1 ? "" : "s",
                 store_count(m->store), m->config.hosts_directory ? ", hosts from " : "",
                 strempty(m->config.hosts_directory));
        notify_status(m);
        (void) sd_notify(false, "READY=1");
        return 0;
}

/* The [Etcd] settings as one string, to see whether a reload changed them. */
static char *etcd_settings(const Config *c) {
        g_autofree char *endpoints = c->etcd_endpoints ? g_strjoinv(",", c->etcd_endpoints) : NULL;

        return g_strdup_printf("%s|%s|%u|%s|%s|%s|%s|%s|%s", strempty(endpoints), strempty(c->etcd_prefix),
                               c->etcd_lease_ttl, strempty(c->etcd_ca_file), strempty(c->etcd_cert_file),
                               strempty(c->etcd_key_file), strempty(c->etcd_user), strempty(c->etcd_password_file),
                               strempty(c->node_id));
}

int manager_reload(Manager *m) {
        _cleanup_free_ char *old_etcd = etcd_settings(&m->config), *new_etcd = NULL;
        _cleanup_free_ char *error = NULL;
        uint16_t old_port = m->config.dns_port;
        uint32_t old_threads = m->config.dns_threads;
        _cleanup_free_ char *old_bind = g_strdup(m->config.dns_bind_address);
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long) now_usec(CLOCK_MONOTONIC));
        r = config_reload(&m->config, m->argc, m->argv, m->envp, &error);
        if (r < 0) {
                log_error("Reload failed, keeping the running configuration: %s", strna(error));
                (void) sd_notify(false, "READY=1");
                return r;
        }
        log_set_max_level(m->config.log_level);
        answer_config_update(m);
        if (m->http) {
                http_server_set_api_token(m->http, m->config.api_token);
                http_server_set_allowed_hosts(m->http, m->config.http_allowed_hosts);
        }

        if (m->dns)
                (void) dns_server_set_config(m->dns, &m->answer_config);

        if (old_port != m->config.dns_port || !streq_ptr(old_bind, m->config.dns_bind_address))
                log_notice("DNS address or port changed in the configuration; this takes a restart.");
        if (old_threads != m->config.dns_threads)
                log_notice("DNS threads changed in the configuration; this takes a restart.");
        new_etcd = etcd_settings(&m->config);
        if (!streq(old_etcd, new_etcd))
                log_notice("[Etcd] settings (or the node id) changed in the configuration; this takes a restart.");

        /* What a reload rebuilds: the hosts source and forwarding; the others
         * keep their settings until a restart. */
        r = manager_setup_hosts(m);
        (void) manager_setup_forward(m);

        notify_status(m);
        (void) sd_notify(false, "READY=1");
        return r;
}

static void on_event_exit(void *userdata) {
        Manager *m = userdata;
        g_main_loop_quit(m->loop);
}

int manager_run(Manager *m) {
        GSource *source = event_glib_source_new(m->event, on_event_exit, m);
        int code = 0;

        g_source_attach(source, NULL);
        g_main_loop_run(m->loop);
        g_source_destroy(source);
        g_source_unref(source);

        (void) sd_event_get_exit_code(m->event, &code);
        log_info("Stopped.");
        return code;
}
