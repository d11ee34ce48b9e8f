/* SPDX-License-Identifier: MIT */
/* Unit test of the configuration module: layering (defaults < file <
 * environment < command line), every original environment name, every
 * validation error and its message, unknown keys and options with
 * suggestions, and reload keeping the running config on a bad edit.
 * Config files are written to a private temporary directory that is removed
 * at exit, also when a check fails. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "cluster.h"
#include "config.h"
#include "swim.h"
#include "test-util.h"

#define CHECK_ERR(r, err, ...) check_error(__FILE__, __LINE__, (r), (err), (const char *[]) { __VA_ARGS__, NULL })

#define ARGV(...) ((char *[]) { "joyrided", ##__VA_ARGS__, NULL })
#define ENVP(...) ((char *[]) { __VA_ARGS__, NULL })

static char tmpdir[] = "/tmp/test-config-XXXXXX";
static bool have_tmpdir;
static char *created[64];
static size_t n_created;
static char *empty_env; /* "JOYRIDE_CONFIG=<an empty file>" */

static void cleanup(void) {
        for (size_t i = 0; i < n_created; i++) {
                (void) unlink(created[i]);
                free(created[i]);
        }
        n_created = 0;
        if (have_tmpdir)
                (void) rmdir(tmpdir);
        have_tmpdir = false;
        free(empty_env);
        empty_env = NULL;
}

__attribute__((noreturn)) static void die(const char *what) {
        fprintf(stderr, "test-config: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

static size_t argc_of(char **argv) {
        size_t n = 0;
        while (argv[n])
                n++;
        return n;
}

static void check_error(const char *file, int line, int r, const char *err, const char *const *fragments) {
        if (r != -EINVAL)
                test_fail(file, line, "expected -EINVAL, got %d (error: %s)", r, strna(err));
        if (!err)
                test_fail(file, line, "-EINVAL without an error message");
        for (const char *const *f = fragments; *f; f++)
                if (!strstr(err, *f))
                        test_fail(file, line, "error \"%s\" does not contain \"%s\"", err, *f);
}

/* Writes (or rewrites) a config file; with path NULL a new one is created. */
static char *write_config(const char *path, const char *contents) {
        char *p;
        int fd;

        if (path) {
                p = strdup(path);
                fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
        } else {
                if (asprintf(&p, "%s/joyride-XXXXXX.conf", tmpdir) < 0)
                        die("asprintf");
                fd = mkstemps(p, 5);
                if (fd >= 0)
                        created[n_created++] = strdup(p);
        }
        if (fd < 0)
                die("cannot create config file");
        if (write(fd, contents, strlen(contents)) != (ssize_t) strlen(contents))
                die("cannot write config file");
        close(fd);
        return p;
}

static char *env_for(const char *path) {
        char *e;
        if (asprintf(&e, "JOYRIDE_CONFIG=%s", path) < 0)
                die("asprintf");
        return e;
}

/* Loads and, when it fails unexpectedly, says why. */
static int load(Config *c, char **argv, char **envp, char **ret_error) {
        *c = (Config) {};
        *ret_error = NULL;
        return config_load(c, (int) argc_of(argv), argv, envp, ret_error);
}

#define LOAD_OK(c, argv, envp) \
        do { \
                char *_e = NULL; \
                int _r = load((c), (argv), (envp), &_e); \
                if (_r != 0) \
                        test_fail(__FILE__, __LINE__, "config_load() = %d: %s", _r, strna(_e)); \
                free(_e); \
        } while (0)

/* Loads expecting failure; the message must name the given fragments. */
#define LOAD_FAILS(argv, envp, ...) \
        do { \
                Config _c; \
                char *_e = NULL; \
                int _r = load(&_c, (argv), (envp), &_e); \
                CHECK_ERR(_r, _e, __VA_ARGS__); \
                if (_r == 0) \
                        config_done(&_c); \
                free(_e); \
        } while (0)

static size_t strv_length(char **l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

static void test_defaults(void) {
        char host[HOST_NAME_MAX + 1] = {};
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(empty_env));
        CHECK(c.config_file && strstr(empty_env, c.config_file));
        CHECK_STREQ(c.service_name, "joyride-dns");
        CHECK_STREQ(c.environment, "production");
        CHECK_STREQ(c.hostip, NULL);
        CHECK_STREQ(c.hostip6, NULL);
        CHECK_STREQ(c.state_directory, "/var/lib/joyride");
        CHECK_INT_EQ(c.log_level, LOG_INFO);
        CHECK_INT_EQ(c.dns_port, 5353);
        CHECK_STREQ(c.dns_bind_address, NULL);
        CHECK(c.dns_domains == NULL);
        CHECK_INT_EQ(c.default_ttl, 30);
        CHECK_INT_EQ(c.negative_ttl, 5);
        CHECK_INT_EQ(c.tcp_idle_timeout_msec, 10000);
        CHECK_INT_EQ(c.tcp_max_connections, 256);
        CHECK_INT_EQ(c.dns_threads, 0); /* unset: the DNS server picks one per CPU */
        CHECK_STREQ(c.hosts_directory, NULL);
        CHECK(c.docker_enabled);
        CHECK_STREQ(c.docker_host, "unix:///var/run/docker.sock");
        CHECK(c.http_enabled);
        CHECK_STREQ(c.http_host, "0.0.0.0");
        CHECK_INT_EQ(c.http_port, 5000);
        CHECK_STREQ(c.api_token, NULL);
        CHECK_INT_EQ(c.bus, BUS_SYSTEM);
        CHECK(!c.cluster_enabled);
        CHECK(gethostname(host, sizeof host - 1) == 0);
        CHECK_STREQ(c.node_id, host);
        CHECK_INT_EQ(c.discovery_port, 8889);
        CHECK_INT_EQ(c.swim_port, 8890);
        CHECK(c.join == NULL);
        CHECK_STREQ(c.cluster_key, NULL);
        CHECK_STREQ(c.resolved_link, NULL);
        CHECK(c.resolved_domains == NULL);
        CHECK(c.resolved_dns == NULL);
        CHECK(c.forward == NULL);
        CHECK(c.forward_allow == NULL);
        CHECK_INT_EQ(c.forward_cache_size, 10000);
        CHECK_INT_EQ(c.forward_max_ttl, 86400);
        CHECK_STREQ(c.resolv_conf, "/etc/resolv.conf");

        /* config_done() zeroes and may be called again. */
        config_done(&c);
        CHECK(c.service_name == NULL && c.node_id == NULL && c.dns_port == 0);
        config_done(&c);
}

static void test_default_path_missing(void) {
        Config c;

        /* Without --config or JOYRIDE_CONFIG the default path is tried, and
         * its absence is fine. Only checkable where that file does not exist. */
        if (access(CONFIG_FILE_DEFAULT, F_OK) == 0) {
                printf("SKIP: %s exists on this machine\n", CONFIG_FILE_DEFAULT);
                return;
        }
        LOAD_OK(&c, ARGV(), ENVP(NULL));
        CHECK(c.config_file == NULL);
        CHECK_INT_EQ(c.dns_port, 5353);
        config_done(&c);

        /* An empty JOYRIDE_CONFIG counts as unset, so also the default path. */
        LOAD_OK(&c, ARGV(), ENVP("JOYRIDE_CONFIG="));
        CHECK(c.config_file == NULL);
        config_done(&c);
}

static const char full_file[] =
        "# every key, with values different from the defaults\n"
        "[Service]\n"
        "Name=svc-file\n"
        "Environment=staging\n"
        "HostIP=192.0.2.1\n"
        "HostIP6=2001:db8::1\n"
        "StateDirectory=/srv/state\n"
        "LogLevel=debug\n"
        "\n"
        "[DNS]\n"
        "Port=1053\n"
        "BindAddress=127.0.0.1\n"
        "Domains=Docker.Example.COM., internal\n"
        "TTL=60\n"
        "NegativeTTL=10\n"
        "TCPIdleTimeoutSec=2.5\n"
        "TCPMaxConnections=17\n"
        "Threads=3\n"
        "\n"
        "[Hosts]\n"
        "Directory=/srv/hosts\n"
        "\n"
        "[Docker]\n"
        "Enabled=no\n"
        "Host=tcp://192.0.2.9:2375\n"
        "\n"
        "[HTTP]\n"
        "Enabled=off\n"
        "Host=127.0.0.1\n"
        "Port=8080\n"
        "APIToken=file-token\n"
        "\n"
        "[DBus]\n"
        "Bus=user\n"
        "\n"
        "[Cluster]\n"
        "Enabled=yes\n"
        "NodeId=node-file\n"
        "DiscoveryPort=18889\n"
        "SwimPort=18890\n"
        "Join=peer1:18890, [::1]:18891,192.0.2.3:1\n"
        "Key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

static void test_file(void) {
        char *path = write_config(NULL, full_file);
        char *env = env_for(path);
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_STREQ(c.config_file, path);
        CHECK_STREQ(c.service_name, "svc-file");
        CHECK_STREQ(c.environment, "staging");
        CHECK_STREQ(c.hostip, "192.0.2.1");
        CHECK_STREQ(c.hostip6, "2001:db8::1");
        CHECK_STREQ(c.state_directory, "/srv/state");
        CHECK_INT_EQ(c.log_level, LOG_DEBUG);
        CHECK_INT_EQ(c.dns_port, 1053);
        CHECK_STREQ(c.dns_bind_address, "127.0.0.1");
        CHECK_INT_EQ(strv_length(c.dns_domains), 2);
        if (strv_length(c.dns_domains) == 2) {
                /* normalized: lowercase, no trailing dot, blanks trimmed */
                CHECK_STREQ(c.dns_domains[0], "docker.example.com");
                CHECK_STREQ(c.dns_domains[1], "internal");
        }
        CHECK_INT_EQ(c.default_ttl, 60);
        CHECK_INT_EQ(c.negative_ttl, 10);
        CHECK_INT_EQ(c.tcp_idle_timeout_msec, 2500);
        CHECK_INT_EQ(c.tcp_max_connections, 17);
        CHECK_INT_EQ(c.dns_threads, 3);
        CHECK_STREQ(c.hosts_directory, "/srv/hosts");
        CHECK(!c.docker_enabled);
        CHECK_STREQ(c.docker_host, "tcp://192.0.2.9:2375");
        CHECK(!c.http_enabled);
        CHECK_STREQ(c.http_host, "127.0.0.1");
        CHECK_INT_EQ(c.http_port, 8080);
        CHECK_STREQ(c.api_token, "file-token");
        CHECK_INT_EQ(c.bus, BUS_USER);
        CHECK(c.cluster_enabled);
        CHECK_STREQ(c.node_id, "node-file");
        CHECK_INT_EQ(c.discovery_port, 18889);
        CHECK_INT_EQ(c.swim_port, 18890);
        CHECK_INT_EQ(strv_length(c.join), 3);
        if (strv_length(c.join) == 3) {
                CHECK_STREQ(c.join[0], "peer1:18890");
                CHECK_STREQ(c.join[1], "[::1]:18891");
                CHECK_STREQ(c.join[2], "192.0.2.3:1");
        }
        CHECK_STREQ(c.cluster_key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        config_done(&c);

        /* The same file through --config. */
        char *opt;
        if (asprintf(&opt, "--config=%s", path) < 0)
                die("asprintf");
        LOAD_OK(&c, ARGV(opt), ENVP(NULL));
        CHECK_STREQ(c.config_file, path);
        CHECK_INT_EQ(c.dns_port, 1053);
        config_done(&c);

        /* An empty value in the file resets to the built-in default. */
        char *p2 = write_config(NULL, "[DNS]\nPort=\nBindAddress=\n[HTTP]\nHost=\n");
        char *env2 = env_for(p2);
        LOAD_OK(&c, ARGV(), ENVP(env2));
        CHECK_INT_EQ(c.dns_port, 5353);
        CHECK_STREQ(c.dns_bind_address, NULL);
        CHECK_STREQ(c.http_host, "0.0.0.0");
        config_done(&c);

        free(opt);
        free(env);
        free(env2);
        free(path);
        free(p2);
}

static void test_precedence(void) {
        char *path = write_config(NULL, "[DNS]\nPort=1000\nTTL=100\nNegativeTTL=7\n[DBus]\nBus=user\n");
        char *env = env_for(path);
        Config c;

        /* file over defaults */
        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_INT_EQ(c.dns_port, 1000);
        CHECK_INT_EQ(c.default_ttl, 100);
        CHECK_INT_EQ(c.negative_ttl, 7);
        CHECK_INT_EQ(c.bus, BUS_USER);
        config_done(&c);

        /* environment over file */
        LOAD_OK(&c, ARGV(), ENVP(env, "DNS_PORT=2000", "DNS_TTL=200", "JOYRIDE_BUS=none"));
        CHECK_INT_EQ(c.dns_port, 2000);
        CHECK_INT_EQ(c.default_ttl, 200);
        CHECK_INT_EQ(c.negative_ttl, 7);
        CHECK_INT_EQ(c.bus, BUS_NONE);
        config_done(&c);

        /* command line over environment, whatever the order of arguments */
        LOAD_OK(&c, ARGV("--dns-port=3000", "--bus=system"),
                ENVP(env, "DNS_PORT=2000", "DNS_TTL=200", "JOYRIDE_BUS=none"));
        CHECK_INT_EQ(c.dns_port, 3000);
        CHECK_INT_EQ(c.default_ttl, 200);
        CHECK_INT_EQ(c.bus, BUS_SYSTEM);
        config_done(&c);

        /* "--opt value" form, and the last occurrence wins */
        LOAD_OK(&c, ARGV("--dns-port", "3001", "--dns-port=3002"), ENVP(env));
        CHECK_INT_EQ(c.dns_port, 3002);
        config_done(&c);

        /* an empty environment variable counts as unset */
        LOAD_OK(&c, ARGV(), ENVP(env, "DNS_PORT=", "JOYRIDE_BUS="));
        CHECK_INT_EQ(c.dns_port, 1000);
        CHECK_INT_EQ(c.bus, BUS_USER);
        config_done(&c);

        /* an empty command-line value resets to the built-in default */
        LOAD_OK(&c, ARGV("--dns-port=", "--hostip="), ENVP(env, "DNS_PORT=2000", "HOSTIP=192.0.2.1"));
        CHECK_INT_EQ(c.dns_port, 5353);
        CHECK_STREQ(c.hostip, NULL);
        config_done(&c);

        /* only the final value is validated: a bad lower layer that is overridden is fine */
        char *bad = write_config(NULL, "[DNS]\nPort=abc\n");
        char *bad_env = env_for(bad);
        LOAD_OK(&c, ARGV(), ENVP(bad_env, "DNS_PORT=53"));
        CHECK_INT_EQ(c.dns_port, 53);
        config_done(&c);
        LOAD_OK(&c, ARGV("--dns-port=54"), ENVP(env, "DNS_PORT=abc"));
        CHECK_INT_EQ(c.dns_port, 54);
        config_done(&c);

        /* --config wins over JOYRIDE_CONFIG */
        char *opt;
        if (asprintf(&opt, "--config=%s", path) < 0)
                die("asprintf");
        LOAD_OK(&c, ARGV(opt), ENVP(bad_env));
        CHECK_STREQ(c.config_file, path);
        CHECK_INT_EQ(c.dns_port, 1000);
        config_done(&c);

        /* getopt state is reset between calls and argv is not reordered */
        char **argv = ARGV("--ttl=9", "--no-http");
        LOAD_OK(&c, argv, ENVP(env));
        config_done(&c);
        LOAD_OK(&c, argv, ENVP(env));
        CHECK_INT_EQ(c.default_ttl, 9);
        CHECK(!c.http_enabled);
        CHECK_STREQ(argv[1], "--ttl=9");
        CHECK_STREQ(argv[2], "--no-http");
        config_done(&c);

        free(opt);
        free(bad);
        free(bad_env);
        free(path);
        free(env);
}

static void test_environment_names(void) {
        Config c;

        LOAD_OK(&c, ARGV(),
                ENVP(empty_env, "HOSTIP=192.0.2.10", "HOSTIP6=2001:db8::10", "HOSTS_DIRECTORY=/env/hosts",
                     "DNS_PORT=1153", "DNS_BIND_ADDRESS=::1", "DNS_DOMAINS=a.example,B.example.", "DNS_TTL=61",
                     "DNS_NEGATIVE_TTL=11", "DNS_THREADS=5", "NODE_ID=node.env_1", "ENABLE_DNS_SYNC=true",
                     "DISCOVERY_PORT=1889", "SWIM_PORT=1890", "JOIN=n1:1890,n2:1891",
                     "JOYRIDE_CLUSTER_KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "FLASK_HOST=::",
                     "FLASK_PORT=1500", "HTTP_ENABLED=false", "JOYRIDE_API_TOKEN=env-token", "SERVICE_NAME=svc-env",
                     "ENVIRONMENT=dev", "DOCKER_HOST=unix:///run/user/1000/docker.sock", "DOCKER_ENABLED=0",
                     "JOYRIDE_BUS=user", "JOYRIDE_LOG_LEVEL=warning", "STATE_DIRECTORY=/env/state"));
        CHECK_STREQ(c.hostip, "192.0.2.10");
        CHECK_STREQ(c.hostip6, "2001:db8::10");
        CHECK_STREQ(c.hosts_directory, "/env/hosts");
        CHECK_INT_EQ(c.dns_port, 1153);
        CHECK_STREQ(c.dns_bind_address, "::1");
        CHECK_INT_EQ(strv_length(c.dns_domains), 2);
        if (strv_length(c.dns_domains) == 2) {
                CHECK_STREQ(c.dns_domains[0], "a.example");
                CHECK_STREQ(c.dns_domains[1], "b.example");
        }
        CHECK_INT_EQ(c.default_ttl, 61);
        CHECK_INT_EQ(c.negative_ttl, 11);
        CHECK_INT_EQ(c.dns_threads, 5);
        CHECK_STREQ(c.node_id, "node.env_1");
        CHECK(c.cluster_enabled);
        CHECK_INT_EQ(c.discovery_port, 1889);
        CHECK_INT_EQ(c.swim_port, 1890);
        CHECK_INT_EQ(strv_length(c.join), 2);
        if (strv_length(c.join) == 2) {
                CHECK_STREQ(c.join[0], "n1:1890");
                CHECK_STREQ(c.join[1], "n2:1891");
        }
        CHECK_STREQ(c.cluster_key, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
        CHECK_STREQ(c.http_host, "::");
        CHECK_INT_EQ(c.http_port, 1500);
        CHECK(!c.http_enabled);
        CHECK_STREQ(c.api_token, "env-token");
        CHECK_STREQ(c.service_name, "svc-env");
        CHECK_STREQ(c.environment, "dev");
        CHECK_STREQ(c.docker_host, "unix:///run/user/1000/docker.sock");
        CHECK(!c.docker_enabled);
        CHECK_INT_EQ(c.bus, BUS_USER);
        CHECK_INT_EQ(c.log_level, LOG_WARNING);
        CHECK_STREQ(c.state_directory, "/env/state");
        config_done(&c);

        /* systemd's STATE_DIRECTORY may list several directories */
        LOAD_OK(&c, ARGV(), ENVP(empty_env, "STATE_DIRECTORY=/var/lib/joyride:/var/lib/other"));
        CHECK_STREQ(c.state_directory, "/var/lib/joyride");
        config_done(&c);

        /* ours wins over systemd's, in either order in the environment */
        LOAD_OK(&c, ARGV(), ENVP(empty_env, "JOYRIDE_STATE_DIRECTORY=/mine", "STATE_DIRECTORY=/systemd:/x"));
        CHECK_STREQ(c.state_directory, "/mine");
        config_done(&c);
        LOAD_OK(&c, ARGV(), ENVP(empty_env, "STATE_DIRECTORY=/systemd", "JOYRIDE_STATE_DIRECTORY=/mine"));
        CHECK_STREQ(c.state_directory, "/mine");
        config_done(&c);

        /* a variable is matched by its whole name only */
        LOAD_OK(&c, ARGV(), ENVP(empty_env, "DNS_PORTX=1", "XDNS_PORT=2"));
        CHECK_INT_EQ(c.dns_port, 5353);
        config_done(&c);

        /* every boolean spelling */
        static const char *const yes[] = { "1", "true", "TRUE", "yes", "Yes", "on", "ON" };
        static const char *const no[] = { "0", "false", "False", "no", "NO", "off", "Off" };
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                char *e1, *e2;
                if (asprintf(&e1, "ENABLE_DNS_SYNC=%s", yes[i]) < 0 || asprintf(&e2, "DOCKER_ENABLED=%s", no[i]) < 0)
                        die("asprintf");
                LOAD_OK(&c, ARGV(), ENVP(empty_env, e1, e2));
                CHECK(c.cluster_enabled);
                CHECK(!c.docker_enabled);
                config_done(&c);
                free(e1);
                free(e2);
        }
}

static void test_command_line(void) {
        Config c;

        LOAD_OK(&c,
                ARGV("--hostip=192.0.2.20", "--hostip6=2001:db8::20", "--dns-port=2053", "--dns-bind-address=127.0.0.2",
                     "--domains=cli.example", "--ttl=62", "--negative-ttl=12", "--hosts-directory=/cli/hosts",
                     "--dns-threads=2", "--docker-host=unix:///cli/docker.sock", "--no-docker", "--http-host=localhost",
                     "--http-port=2500", "--no-http", "--api-token=cli-token", "--bus=none", "--cluster",
                     "--node-id=node-cli", "--discovery-port=2889", "--swim-port=2890", "--join=c1:2890",
                     "--state-directory=/cli/state", "--log-level=err", "--service-name=svc-cli", "--environment=test"),
                ENVP(empty_env));
        CHECK_STREQ(c.hostip, "192.0.2.20");
        CHECK_STREQ(c.hostip6, "2001:db8::20");
        CHECK_INT_EQ(c.dns_port, 2053);
        CHECK_STREQ(c.dns_bind_address, "127.0.0.2");
        CHECK_INT_EQ(strv_length(c.dns_domains), 1);
        if (c.dns_domains)
                CHECK_STREQ(c.dns_domains[0], "cli.example");
        CHECK_INT_EQ(c.default_ttl, 62);
        CHECK_INT_EQ(c.negative_ttl, 12);
        CHECK_INT_EQ(c.dns_threads, 2);
        CHECK_STREQ(c.hosts_directory, "/cli/hosts");
        CHECK_STREQ(c.docker_host, "unix:///cli/docker.sock");
        CHECK(!c.docker_enabled);
        CHECK_STREQ(c.http_host, "localhost");
        CHECK_INT_EQ(c.http_port, 2500);
        CHECK(!c.http_enabled);
        CHECK_STREQ(c.api_token, "cli-token");
        CHECK_INT_EQ(c.bus, BUS_NONE);
        CHECK(c.cluster_enabled);
        CHECK_STREQ(c.node_id, "node-cli");
        CHECK_INT_EQ(c.discovery_port, 2889);
        CHECK_INT_EQ(c.swim_port, 2890);
        CHECK_INT_EQ(strv_length(c.join), 1);
        if (c.join)
                CHECK_STREQ(c.join[0], "c1:2890");
        CHECK_STREQ(c.state_directory, "/cli/state");
        CHECK_INT_EQ(c.log_level, LOG_ERR);
        CHECK_STREQ(c.service_name, "svc-cli");
        CHECK_STREQ(c.environment, "test");
        config_done(&c);

        /* --no-cluster overrides the environment */
        LOAD_OK(&c, ARGV("--no-cluster"), ENVP(empty_env, "ENABLE_DNS_SYNC=1"));
        CHECK(!c.cluster_enabled);
        config_done(&c);
}

static void test_validation(void) {
        /* environment */
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_PORT=abc"), "DNS_PORT=abc: expected a port number (1-65535)");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_PORT=0"), "DNS_PORT=0", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_PORT=65536"), "DNS_PORT=65536", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_PORT=-1"), "DNS_PORT=-1", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_PORT= 53"), "DNS_PORT= 53", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "FLASK_PORT=99999"), "FLASK_PORT=99999", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DISCOVERY_PORT=x"), "DISCOVERY_PORT=x", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "SWIM_PORT=0"), "SWIM_PORT=0", "port number");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HOSTIP=10.0.0.300"), "HOSTIP=10.0.0.300: expected an IPv4 address");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HOSTIP=::1"), "HOSTIP=::1", "IPv4");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HOSTIP6=10.0.0.1"), "HOSTIP6=10.0.0.1: expected an IPv6 address");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HOSTIP6=2001:db8::g"), "HOSTIP6=2001:db8::g", "IPv6");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_BIND_ADDRESS=localhost"), "DNS_BIND_ADDRESS=localhost", "IPv4 or IPv6");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_TTL=604801"), "DNS_TTL=604801", "0 to 604800");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_TTL=1h"), "DNS_TTL=1h", "0 to 604800");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_NEGATIVE_TTL=86401"), "DNS_NEGATIVE_TTL=86401", "0 to 86400");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DOCKER_ENABLED=maybe"), "DOCKER_ENABLED=maybe", "boolean");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HTTP_ENABLED=2"), "HTTP_ENABLED=2", "boolean");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "ENABLE_DNS_SYNC=yess"), "ENABLE_DNS_SYNC=yess", "boolean");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_DOMAINS=good.example,bad..name"), "DNS_DOMAINS=good.example,bad..name",
                   "'bad..name'", "DNS name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_DOMAINS=-bad.example"), "DNS_DOMAINS=-bad.example", "DNS name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_DOMAINS=sp ace.example"), "DNS_DOMAINS=sp ace.example", "DNS name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOIN=lonelyhost"), "JOIN=lonelyhost", "HOST:PORT", "'lonelyhost'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOIN=a:1,b:99999"), "JOIN=a:1,b:99999", "'b:99999'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOIN=::1:8890"), "JOIN=::1:8890", "HOST:PORT");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_LOG_LEVEL=verbose"), "JOYRIDE_LOG_LEVEL=verbose", "log level");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "NODE_ID=has space"), "NODE_ID=has space", "1-64 characters");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "NODE_ID=n0123456789012345678901234567890123456789012345678901234567890123"),
                   "NODE_ID=n0123456789", "1-64 characters");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "HOSTS_DIRECTORY=relative/hosts"), "HOSTS_DIRECTORY=relative/hosts",
                   "absolute path");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "STATE_DIRECTORY=state:/abs"), "STATE_DIRECTORY=state", "absolute path");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_STATE_DIRECTORY=rel"), "JOYRIDE_STATE_DIRECTORY=rel",
                   "absolute path");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_BUS=session"), "JOYRIDE_BUS=session",
                   "expected system, user or none");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "FLASK_HOST=bad_host!"), "FLASK_HOST=bad_host!", "host name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DOCKER_HOST=/var/run/docker.sock"), "DOCKER_HOST=/var/run/docker.sock",
                   "unix://");

        /* command line */
        LOAD_FAILS(ARGV("--bus=sessio"), ENVP(empty_env), "--bus=sessio: expected system, user or none");
        LOAD_FAILS(ARGV("--dns-port=abc"), ENVP(empty_env), "--dns-port=abc", "port number");
        LOAD_FAILS(ARGV("--dns-threads=0"), ENVP(empty_env), "--dns-threads=0", "1 to 64");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_THREADS=65"), "DNS_THREADS=65", "1 to 64");
        LOAD_FAILS(ARGV("--hostip=1.2.3"), ENVP(empty_env), "--hostip=1.2.3", "IPv4");
        LOAD_FAILS(ARGV("--ttl=-5"), ENVP(empty_env), "--ttl=-5", "0 to 604800");
        LOAD_FAILS(ARGV("--log-level=loud"), ENVP(empty_env), "--log-level=loud", "log level");
        LOAD_FAILS(ARGV("--state-directory=var/lib"), ENVP(empty_env), "--state-directory=var/lib", "absolute path");
        LOAD_FAILS(ARGV("--domains=a..b"), ENVP(empty_env), "--domains=a..b", "DNS name");
        LOAD_FAILS(ARGV("--join=x"), ENVP(empty_env), "--join=x", "HOST:PORT");
        LOAD_FAILS(ARGV("--node-id=a/b"), ENVP(empty_env), "--node-id=a/b", "1-64");

        /* config file: the message names [Group] Key, the file and the line */
        struct {
                const char *contents;
                const char *fragment1, *fragment2;
        } file_cases[] = {
                { "[DNS]\nPort=abc\n", "[DNS] Port=abc in ", "port number" },
                { "[DNS]\nTCPMaxConnections=0\n", "[DNS] TCPMaxConnections=0 in ", "1 to 65536" },
                { "[DNS]\nThreads=many\n", "[DNS] Threads=many in ", "1 to 64" },
                { "[DNS]\nTCPMaxConnections=65537\n", "[DNS] TCPMaxConnections=65537 in ", "1 to 65536" },
                { "[DNS]\nTCPIdleTimeoutSec=abc\n", "[DNS] TCPIdleTimeoutSec=abc in ", "seconds" },
                { "[DNS]\nTCPIdleTimeoutSec=0\n", "[DNS] TCPIdleTimeoutSec=0 in ", "seconds" },
                { "[DNS]\nTCPIdleTimeoutSec=nan\n", "[DNS] TCPIdleTimeoutSec=nan in ", "seconds" },
                { "[DNS]\nNegativeTTL=100000\n", "[DNS] NegativeTTL=100000 in ", "0 to 86400" },
                { "[Docker]\nEnabled=nah\n", "[Docker] Enabled=nah in ", "boolean" },
                { "[Hosts]\nDirectory=hosts\n", "[Hosts] Directory=hosts in ", "absolute path" },
                { "[DBus]\nBus=session\n", "[DBus] Bus=session in ", "system, user or none" },
                { "[Service]\nHostIP=1.2.3.4.5\n", "[Service] HostIP=1.2.3.4.5 in ", "IPv4" },
        };
        for (size_t i = 0; i < sizeof file_cases / sizeof file_cases[0]; i++) {
                char *path = write_config(NULL, file_cases[i].contents);
                char *env = env_for(path);
                char *where;
                if (asprintf(&where, "%s:2", path) < 0)
                        die("asprintf");
                LOAD_FAILS(ARGV(), ENVP(env), file_cases[i].fragment1, where, file_cases[i].fragment2);
                free(where);
                free(env);
                free(path);
        }
}

static void test_unknown(void) {
        struct {
                const char *contents;
                unsigned line;
                const char *fragment1, *fragment2;
        } cases[] = {
                { "[DNS]\nProt=53\n", 2, "unknown key 'Prot' in section [DNS]", "(did you mean 'Port'?)" },
                { "[DNS]\nport=53\n", 2, "unknown key 'port'", "(did you mean 'Port'?)" },
                { "[DNS]\nTTl=53\n", 2, "unknown key 'TTl'", "(did you mean 'TTL'?)" },
                { "[DSN]\nPort=53\n", 1, "unknown section [DSN]", "(did you mean [DNS]?)" },
                { "[Service]\nPort=53\n", 2, "unknown key 'Port' in section [Service]", "(did you mean [DNS] Port?)" },
                { "[Docker]\nCompletelyUnrelated=1\n", 2, "unknown key 'CompletelyUnrelated' in section [Docker]", "" },
                { "[Nonsense]\n", 1, "unknown section [Nonsense]", "" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *path = write_config(NULL, cases[i].contents);
                char *env = env_for(path);
                char *where;
                if (asprintf(&where, "%s:%u: ", path, cases[i].line) < 0)
                        die("asprintf");
                LOAD_FAILS(ARGV(), ENVP(env), where, cases[i].fragment1, cases[i].fragment2);
                free(where);
                free(env);
                free(path);
        }

        /* line numbers point at the offending key */
        char *path = write_config(NULL, "# comment\n[DNS]\nPort=53\n\n  Prot = 54\n");
        char *env = env_for(path);
        char *where;
        if (asprintf(&where, "%s:5: unknown key 'Prot'", path) < 0)
                die("asprintf");
        LOAD_FAILS(ARGV(), ENVP(env), where, "did you mean 'Port'?");
        free(where);
        free(env);
        free(path);

        /* syntax errors name the file and line */
        path = write_config(NULL, "[DNS]\nPort=53\nthis line is garbage\n[HTTP]\n");
        env = env_for(path);
        if (asprintf(&where, "%s:3:", path) < 0)
                die("asprintf");
        LOAD_FAILS(ARGV(), ENVP(env), where);
        free(where);
        free(env);
        free(path);

        path = write_config(NULL, "Port=53\n");
        env = env_for(path);
        if (asprintf(&where, "%s:1:", path) < 0)
                die("asprintf");
        LOAD_FAILS(ARGV(), ENVP(env), where);
        free(where);
        free(env);
        free(path);

        /* command line */
        LOAD_FAILS(ARGV("--dns-prot=53"), ENVP(empty_env), "unknown option '--dns-prot' (did you mean --dns-port?)");
        LOAD_FAILS(ARGV("--no-dokcer"), ENVP(empty_env), "unknown option '--no-dokcer' (did you mean --no-docker?)");
        LOAD_FAILS(ARGV("--frobnicate"), ENVP(empty_env), "unknown option '--frobnicate'");
        LOAD_FAILS(ARGV("-x"), ENVP(empty_env), "unknown option '-x'");
        LOAD_FAILS(ARGV("--dns"), ENVP(empty_env), "ambiguous option '--dns'", "--dns-port", "--dns-bind-address");
        LOAD_FAILS(ARGV("stray"), ENVP(empty_env), "unexpected argument 'stray'");
        LOAD_FAILS(ARGV("--ttl=5", "stray", "--dns-port=1"), ENVP(empty_env), "unexpected argument 'stray'");
        LOAD_FAILS(ARGV("--dns-port"), ENVP(empty_env), "'--dns-port' needs a value");
        LOAD_FAILS(ARGV("--no-docker=1"), ENVP(empty_env), "'--no-docker' does not take a value");
        LOAD_FAILS(ARGV("--config="), ENVP(empty_env), "--config");
}

static void test_missing_explicit(void) {
        char *missing;
        char *opt, *env;

        if (asprintf(&missing, "%s/does-not-exist.conf", tmpdir) < 0 || asprintf(&opt, "--config=%s", missing) < 0 ||
            asprintf(&env, "JOYRIDE_CONFIG=%s", missing) < 0)
                die("asprintf");

        LOAD_FAILS(ARGV(opt), ENVP(NULL), missing, "--config", "No such file");
        LOAD_FAILS(ARGV(), ENVP(env), missing, "JOYRIDE_CONFIG", "No such file");
        /* a directory is not a config file */
        char *dir_env = env_for(tmpdir);
        LOAD_FAILS(ARGV(), ENVP(dir_env), tmpdir, "directory");

        free(dir_env);
        free(missing);
        free(opt);
        free(env);
}

static void test_help_version(void) {
        char out[] = "/tmp/test-config-out-XXXXXX";
        char buf[16384] = {};
        int fd, saved;
        Config c = {};
        char *err = NULL;
        int r;

        fd = mkstemp(out);
        if (fd < 0)
                die("mkstemp");
        (void) unlink(out);

        fflush(stdout);
        saved = dup(STDOUT_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* --help wins even over a broken environment: it is how people find the fix */
        r = config_load(&c, 2, ARGV("--help"), ENVP(empty_env, "DNS_PORT=abc"), &err);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        CHECK_INT_EQ(r, 1);
        CHECK(err == NULL);
        CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
        static const char *const expect[] = {
                "--dns-port=PORT",
                "$DNS_PORT",
                "--config=FILE",
                "$JOYRIDE_CONFIG",
                "--no-docker",
                "$DOCKER_ENABLED",
                "--http-port=PORT",
                "$FLASK_PORT",
                "--cluster, --no-cluster",
                "$ENABLE_DNS_SYNC",
                "--state-directory=DIR",
                "$JOYRIDE_STATE_DIRECTORY",
                "--version",
                "--bus=system|user|none",
                "$JOYRIDE_BUS",
                "TCPIdleTimeoutSec",
                "$JOYRIDE_CLUSTER_KEY",
        };
        for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
                if (!strstr(buf, expect[i]))
                        test_fail(__FILE__, __LINE__, "--help output lacks \"%s\"", expect[i]);

        CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
        memset(buf, 0, sizeof buf);
        fflush(stdout);
        dup2(fd, STDOUT_FILENO);
        r = config_load(&c, 2, ARGV("--version"), ENVP(empty_env), &err);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        CHECK_INT_EQ(r, 1);
        CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
        CHECK_STREQ(buf, "joyrided " JOYRIDE_VERSION "\n");

        close(saved);
        close(fd);
        config_done(&c);
}

static void test_reload(void) {
        char *path = write_config(NULL, "[DNS]\nPort=1000\nDomains=one.example\n");
        char *opt;
        Config c;
        char *err = NULL;
        int r;

        if (asprintf(&opt, "--config=%s", path) < 0)
                die("asprintf");
        char **argv = ARGV(opt, "--ttl=77");
        char **envp = ENVP("DNS_NEGATIVE_TTL=9");

        LOAD_OK(&c, argv, envp);
        CHECK_INT_EQ(c.dns_port, 1000);

        /* a good edit is applied; environment and command line still apply */
        free(write_config(path, "[DNS]\nPort=2000\nDomains=two.example,three.example\nTTL=1\n"));
        r = config_reload(&c, (int) argc_of(argv), argv, envp, &err);
        CHECK_INT_EQ(r, 0);
        CHECK(err == NULL);
        CHECK_INT_EQ(c.dns_port, 2000);
        CHECK_INT_EQ(c.default_ttl, 77);
        CHECK_INT_EQ(c.negative_ttl, 9);
        CHECK_INT_EQ(strv_length(c.dns_domains), 2);
        CHECK_STREQ(c.config_file, path);

        /* a bad value keeps the running config */
        free(write_config(path, "[DNS]\nPort=abc\n"));
        r = config_reload(&c, (int) argc_of(argv), argv, envp, &err);
        CHECK_ERR(r, err, "[DNS] Port=abc", path);
        free(err);
        err = NULL;
        CHECK_INT_EQ(c.dns_port, 2000);
        CHECK_INT_EQ(strv_length(c.dns_domains), 2);
        if (c.dns_domains)
                CHECK_STREQ(c.dns_domains[0], "two.example");

        /* so does a typo'd key and a syntax error */
        free(write_config(path, "[DNS]\nPrt=3000\n"));
        r = config_reload(&c, (int) argc_of(argv), argv, envp, &err);
        CHECK_ERR(r, err, "Prt", "did you mean 'Port'?");
        free(err);
        err = NULL;
        free(write_config(path, "[DNS\nPort=3000\n"));
        r = config_reload(&c, (int) argc_of(argv), argv, envp, &err);
        CHECK_ERR(r, err, path);
        free(err);
        err = NULL;
        CHECK_INT_EQ(c.dns_port, 2000);

        /* and a fixed file is picked up again */
        free(write_config(path, "[DNS]\nPort=3000\n"));
        r = config_reload(&c, (int) argc_of(argv), argv, envp, &err);
        CHECK_INT_EQ(r, 0);
        CHECK_INT_EQ(c.dns_port, 3000);
        CHECK(c.dns_domains == NULL);

        config_done(&c);
        free(opt);
        free(path);
}

/* [Resolved]: file, environment and command line, normalization, and the
 * messages for each kind of bad value. */
static void test_cluster(void) {
        /* The key file must exist and hold a key when the cluster is on. */
        char *key = write_config(NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        char *contents = NULL;
        if (asprintf(&contents,
                     "[Cluster]\nEnabled=yes\nKeyFile=%s\nBindAddress=10.0.0.2\n"
                     "AdvertiseAddress=192.0.2.7\nDiscovery=no\n",
                     key) < 0)
                die("asprintf");
        char *path = write_config(NULL, contents);
        char *env_key_file = NULL;
        if (asprintf(&env_key_file, "JOYRIDE_CLUSTER_KEY_FILE=%s", key) < 0)
                die("asprintf");
        char *env = env_for(path);
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(NULL));
        CHECK(c.cluster_discovery);
        CHECK_STREQ(c.cluster_key_file, NULL);
        CHECK_STREQ(c.cluster_bind_address, NULL);
        CHECK_STREQ(c.cluster_advertise_address, NULL);
        config_done(&c);

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK(c.cluster_enabled);
        CHECK(!c.cluster_discovery);
        CHECK_STREQ(c.cluster_key_file, key);
        CHECK_STREQ(c.cluster_bind_address, "10.0.0.2");
        CHECK_STREQ(c.cluster_advertise_address, "192.0.2.7");
        config_done(&c);

        /* The advertised address: the environment over the file, the command line over both. */
        LOAD_OK(&c, ARGV(), ENVP(env, "ADVERTISE_ADDRESS=2001:db8::7"));
        CHECK_STREQ(c.cluster_advertise_address, "2001:db8::7");
        config_done(&c);
        LOAD_OK(&c, ARGV("--cluster-advertise-address=198.51.100.1"), ENVP(env, "ADVERTISE_ADDRESS=2001:db8::7"));
        CHECK_STREQ(c.cluster_advertise_address, "198.51.100.1");
        config_done(&c);
        LOAD_FAILS(ARGV(), ENVP("ADVERTISE_ADDRESS=node-a.example"), "ADVERTISE_ADDRESS=node-a.example", "address");

        LOAD_OK(&c, ARGV("--discovery", "--cluster-bind-address=127.0.0.1"), ENVP(env, env_key_file));
        CHECK(c.cluster_discovery);
        CHECK_STREQ(c.cluster_bind_address, "127.0.0.1");
        CHECK_STREQ(c.cluster_key_file, key);
        config_done(&c);

        /* A missing or bad key file is a configuration error, without the key. */
        LOAD_FAILS(ARGV(), ENVP(env, "JOYRIDE_CLUSTER_KEY_FILE=/nonexistent/key"), "[Cluster] KeyFile=/nonexistent/key",
                   "cannot read");
        char *bad_key = write_config(NULL, "c2VjcmV0\n");
        char *env_bad_key = NULL;
        if (asprintf(&env_bad_key, "JOYRIDE_CLUSTER_KEY_FILE=%s", bad_key) < 0)
                die("asprintf");
        LOAD_FAILS(ARGV(), ENVP(env, env_bad_key), "decodes to 6 bytes, not 32", "head -c 32 /dev/urandom | base64");
        free(env_bad_key);
        free(bad_key);

        LOAD_FAILS(ARGV("--cluster-bind-address=node-a"), ENVP(NULL), "--cluster-bind-address=node-a", "address");
        LOAD_FAILS(ARGV(), ENVP("JOYRIDE_CLUSTER_KEY_FILE=keys.txt"), "JOYRIDE_CLUSTER_KEY_FILE=keys.txt", "absolute");

        free(env);
        free(path);
        free(contents);
        free(env_key_file);
        free(key);
}

/* The protocol timings: [Cluster] keys in seconds or with a unit, the
 * historical environment variables in milliseconds, the same validation and
 * messages as every other key, and defaults that agree with the cluster's. */
static void test_cluster_timings(void) {
        char *path = write_config(NULL,
                                  "[Cluster]\nProbeIntervalSec=0.2\nProbeTimeoutSec=100ms\n"
                                  "GossipIntervalSec=50ms\nIndirectChecks=0\nSuspicionMultiplier=5\n"
                                  "RetransmitMultiplier=8\nPushPullIntervalSec=2min\n"
                                  "DiscoveryIntervalSec=1.5s\nDeadGraceSec=1h\n");
        char *env = env_for(path);
        SwimConfig lan;
        Config c;

        TEST_BEGIN("cluster timings");
        swim_config_lan(&lan);
        LOAD_OK(&c, ARGV(), ENVP(empty_env));
        CHECK_INT_EQ(c.probe_interval_msec * USEC_PER_MSEC, lan.probe_interval_usec);
        CHECK_INT_EQ(c.probe_timeout_msec * USEC_PER_MSEC, lan.probe_timeout_usec);
        CHECK_INT_EQ(c.gossip_interval_msec, 0);
        CHECK_INT_EQ(c.indirect_checks, lan.indirect_checks);
        CHECK_INT_EQ(c.suspicion_mult, lan.suspicion_mult);
        CHECK_INT_EQ(c.retransmit_mult, CLUSTER_RETRANSMIT_MULT_DEFAULT);
        CHECK_INT_EQ(c.push_pull_interval_msec * USEC_PER_MSEC, CLUSTER_PUSH_PULL_INTERVAL_DEFAULT_USEC);
        CHECK_INT_EQ(c.discovery_interval_msec * USEC_PER_MSEC, CLUSTER_DISCOVERY_INTERVAL_DEFAULT_USEC);
        CHECK_INT_EQ(c.dead_grace_msec * USEC_PER_MSEC, CLUSTER_DEAD_GRACE_DEFAULT_USEC);
        config_done(&c);

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_INT_EQ(c.probe_interval_msec, 200);
        CHECK_INT_EQ(c.probe_timeout_msec, 100);
        CHECK_INT_EQ(c.gossip_interval_msec, 50);
        CHECK_INT_EQ(c.indirect_checks, 0);
        CHECK_INT_EQ(c.suspicion_mult, 5);
        CHECK_INT_EQ(c.retransmit_mult, 8);
        CHECK_INT_EQ(c.push_pull_interval_msec, 120000);
        CHECK_INT_EQ(c.discovery_interval_msec, 1500);
        CHECK_INT_EQ(c.dead_grace_msec, 3600000);
        config_done(&c);

        /* The environment names of old keep working, in milliseconds, and win over the file. */
        LOAD_OK(&c, ARGV(),
                ENVP(env, "JOYRIDE_SWIM_PROBE_INTERVAL_MS=300", "JOYRIDE_SWIM_PROBE_TIMEOUT_MS=120",
                     "JOYRIDE_SWIM_GOSSIP_INTERVAL_MS=40", "JOYRIDE_SWIM_INDIRECT_CHECKS=2",
                     "JOYRIDE_SWIM_SUSPICION_MULT=7", "JOYRIDE_SWIM_RETRANSMIT_MULT=3",
                     "JOYRIDE_CLUSTER_PUSH_PULL_INTERVAL_MS=2s", "JOYRIDE_CLUSTER_DISCOVERY_INTERVAL_MS=2500",
                     "JOYRIDE_CLUSTER_DEAD_GRACE_MS=1000"));
        CHECK_INT_EQ(c.probe_interval_msec, 300);
        CHECK_INT_EQ(c.probe_timeout_msec, 120);
        CHECK_INT_EQ(c.gossip_interval_msec, 40);
        CHECK_INT_EQ(c.indirect_checks, 2);
        CHECK_INT_EQ(c.suspicion_mult, 7);
        CHECK_INT_EQ(c.retransmit_mult, 3);
        CHECK_INT_EQ(c.push_pull_interval_msec, 2000);
        CHECK_INT_EQ(c.discovery_interval_msec, 2500);
        CHECK_INT_EQ(c.dead_grace_msec, 1000);
        config_done(&c);

        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_SWIM_PROBE_INTERVAL_MS=abc"), "JOYRIDE_SWIM_PROBE_INTERVAL_MS=abc",
                   "milliseconds from 1 to 86400000");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_CLUSTER_DEAD_GRACE_MS=0"), "JOYRIDE_CLUSTER_DEAD_GRACE_MS=0",
                   "milliseconds");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_SWIM_INDIRECT_CHECKS=17"), "JOYRIDE_SWIM_INDIRECT_CHECKS=17",
                   "0 to 16");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_SWIM_SUSPICION_MULT=0"), "JOYRIDE_SWIM_SUSPICION_MULT=0",
                   "1 to 100");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_SWIM_RETRANSMIT_MULT=-1"), "JOYRIDE_SWIM_RETRANSMIT_MULT=-1",
                   "1 to 100");
        struct {
                const char *contents;
                const char *fragment;
        } file_cases[] = {
                { "[Cluster]\nProbeIntervalSec=5 years\n", "[Cluster] ProbeIntervalSec=5 years in " },
                { "[Cluster]\nProbeTimeoutSec=0.0001\n", "[Cluster] ProbeTimeoutSec=0.0001 in " },
                { "[Cluster]\nDeadGraceSec=25h\n", "[Cluster] DeadGraceSec=25h in " },
                { "[Cluster]\nGossipIntervalSec=1e3\n", "[Cluster] GossipIntervalSec=1e3 in " },
                { "[Cluster]\nPushPullIntervalSec=.5\n", "[Cluster] PushPullIntervalSec=.5 in " },
                { "[Cluster]\nDiscoveryIntervalSec=-1\n", "[Cluster] DiscoveryIntervalSec=-1 in " },
        };
        for (size_t i = 0; i < ELEMENTSOF(file_cases); i++) {
                char *p = write_config(NULL, file_cases[i].contents);
                char *e = env_for(p);
                LOAD_FAILS(ARGV(), ENVP(e), file_cases[i].fragment, ":2: ", "seconds from 0.001 to 86400", "200ms");
                free(e);
                free(p);
        }

        char *tcp = write_config(NULL, "[DNS]\nTCPIdleTimeoutSec=250ms\n");
        char *tcp_env = env_for(tcp);
        LOAD_OK(&c, ARGV(), ENVP(tcp_env));
        CHECK_INT_EQ(c.tcp_idle_timeout_msec, 250);
        config_done(&c);
        free(tcp_env);
        free(tcp);

        free(env);
        free(path);
}

static void test_cluster_limits(void) {
        const char *key = "qzBWk0YVHI2Ju6ifn7IUNn/zpCYi3bLBGnebgR5vrGU=";
        char contents[256], want[128];
        snprintf(contents, sizeof contents,
                 "[Cluster]\nMaxMembers=50\nMaxRecordsPerNode=2000\n"
                 "TrustedNodes=node-a:%s, node-b:%s\n",
                 key, key);
        char *path = write_config(NULL, contents);
        char *env = env_for(path);
        Config c;

        TEST_BEGIN("cluster limits and trust");
        LOAD_OK(&c, ARGV(), ENVP(empty_env));
        CHECK_INT_EQ(c.max_members, 1000);
        CHECK_INT_EQ(c.max_records_per_node, 100000);
        CHECK(c.trusted_nodes == NULL);
        config_done(&c);

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_INT_EQ(c.max_members, 50);
        CHECK_INT_EQ(c.max_records_per_node, 2000);
        CHECK_INT_EQ(strv_length(c.trusted_nodes), 2);
        snprintf(want, sizeof want, "node-b:%s", key);
        if (strv_length(c.trusted_nodes) == 2)
                CHECK_STREQ(c.trusted_nodes[1], want);
        config_done(&c);

        LOAD_OK(&c, ARGV(), ENVP(env, "JOYRIDE_CLUSTER_MAX_MEMBERS=7", "JOYRIDE_CLUSTER_MAX_RECORDS_PER_NODE=9"));
        CHECK_INT_EQ(c.max_members, 7);
        CHECK_INT_EQ(c.max_records_per_node, 9);
        config_done(&c);

        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_CLUSTER_MAX_MEMBERS=0"), "JOYRIDE_CLUSTER_MAX_MEMBERS=0",
                   "1 to 65536");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_CLUSTER_MAX_RECORDS_PER_NODE=lots"),
                   "JOYRIDE_CLUSTER_MAX_RECORDS_PER_NODE=lots", "1 to 10000000");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_CLUSTER_TRUSTED_NODES=node-a"),
                   "JOYRIDE_CLUSTER_TRUSTED_NODES=node-a", "NODE-ID:PUBLIC-KEY", "'node-a'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_CLUSTER_TRUSTED_NODES=node-a:c2hvcnQ="), "NODE-ID:PUBLIC-KEY",
                   "'node-a:c2hvcnQ='");
        LOAD_FAILS(ARGV(),
                   ENVP(empty_env, "JOYRIDE_CLUSTER_TRUSTED_NODES=bad/id:qzBWk0YVHI2Ju6ifn7IUNn/zpCYi3bLBGnebgR5vrGU="),
                   "NODE-ID:PUBLIC-KEY");
        free(env);
        free(path);
}

static void test_resolved(void) {
        char *path = write_config(NULL,
                                  "[Resolved]\nLink=joyride0\nDomains=~Example.Internal., lab.example\n"
                                  "DNS=127.0.0.1:5353, [::1]:5353, 192.0.2.53\n");
        char *env = env_for(path);
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_STREQ(c.resolved_link, "joyride0");
        CHECK_INT_EQ(strv_length(c.resolved_domains), 2);
        if (strv_length(c.resolved_domains) == 2) {
                CHECK_STREQ(c.resolved_domains[0], "~example.internal");
                CHECK_STREQ(c.resolved_domains[1], "lab.example");
        }
        CHECK_INT_EQ(strv_length(c.resolved_dns), 3);
        if (strv_length(c.resolved_dns) == 3) {
                CHECK_STREQ(c.resolved_dns[0], "127.0.0.1:5353");
                CHECK_STREQ(c.resolved_dns[1], "[::1]:5353");
                CHECK_STREQ(c.resolved_dns[2], "192.0.2.53");
        }
        config_done(&c);

        /* The environment wins over the file, the command line over both. */
        LOAD_OK(&c, ARGV("--resolved-dns=::1"),
                ENVP(env, "JOYRIDE_RESOLVED_LINK=docker0", "JOYRIDE_RESOLVED_DOMAINS=~a.example",
                     "JOYRIDE_RESOLVED_DNS=10.0.0.1:53"));
        CHECK_STREQ(c.resolved_link, "docker0");
        CHECK_INT_EQ(strv_length(c.resolved_domains), 1);
        CHECK_STREQ(c.resolved_domains ? c.resolved_domains[0] : NULL, "~a.example");
        CHECK_INT_EQ(strv_length(c.resolved_dns), 1);
        CHECK_STREQ(c.resolved_dns ? c.resolved_dns[0] : NULL, "::1");
        config_done(&c);

        /* An empty value on the command line resets to the default: unset. */
        LOAD_OK(&c, ARGV("--resolved-link=", "--resolved-domains="), ENVP(env));
        CHECK_STREQ(c.resolved_link, NULL);
        CHECK(c.resolved_domains == NULL);
        config_done(&c);

        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_LINK=a/b"), "JOYRIDE_RESOLVED_LINK=a/b",
                   "network interface name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_LINK=eth0:1"), "JOYRIDE_RESOLVED_LINK=eth0:1",
                   "network interface name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_LINK=waytoolonginterface"),
                   "JOYRIDE_RESOLVED_LINK=waytoolonginterface", "1-15 characters");
        LOAD_FAILS(ARGV("--resolved-link=.."), ENVP(empty_env), "--resolved-link=..", "network interface name");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DOMAINS=~ok.example,~~bad"),
                   "JOYRIDE_RESOLVED_DOMAINS=~ok.example,~~bad", "'~~bad'", "prefixed with '~'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DOMAINS=~"), "JOYRIDE_RESOLVED_DOMAINS=~", "'~'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DNS=localhost:53"), "JOYRIDE_RESOLVED_DNS=localhost:53",
                   "'localhost:53'", "[IPv6]:PORT");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DNS=127.0.0.1:0"), "JOYRIDE_RESOLVED_DNS=127.0.0.1:0",
                   "'127.0.0.1:0'");
        /* "::1:53" is an IPv6 address, not ::1 port 53: a port needs brackets. */
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DNS=[::1]"), "JOYRIDE_RESOLVED_DNS=[::1]", "'[::1]'");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLVED_DNS=[127.0.0.1]:53"), "'[127.0.0.1]:53'");

        /* A misspelt key in the new section gets a suggestion, and the
         * section itself is known. */
        char *bad = write_config(NULL, "[Resolved]\nLnk=eth0\n");
        char *bad_env = env_for(bad);
        LOAD_FAILS(ARGV(), ENVP(bad_env), "unknown key 'Lnk' in section [Resolved]", "did you mean 'Link'");
        free(bad_env);
        free(bad);

        free(env);
        free(path);
}

static void test_forward(void) {
        char *path = write_config(NULL,
                                  "[DNS]\nForward=192.0.2.1, [2001:db8::1]:5353 ,192.0.2.2:53\n"
                                  "ForwardAllow=10.1.2.3/8, ::1, 192.168.7.0/24\n"
                                  "ForwardCacheSize=0\nForwardMaxTTL=600\nResolvConf=/run/r.conf\n");
        char *env = env_for(path);
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_INT_EQ(strv_length(c.forward), 3);
        if (strv_length(c.forward) == 3) {
                CHECK_STREQ(c.forward[0], "192.0.2.1");
                CHECK_STREQ(c.forward[1], "[2001:db8::1]:5353");
                CHECK_STREQ(c.forward[2], "192.0.2.2:53");
        }
        /* Prefixes in their canonical form, host bits cleared. */
        CHECK_INT_EQ(strv_length(c.forward_allow), 3);
        if (strv_length(c.forward_allow) == 3) {
                CHECK_STREQ(c.forward_allow[0], "10.0.0.0/8");
                CHECK_STREQ(c.forward_allow[1], "::1/128");
                CHECK_STREQ(c.forward_allow[2], "192.168.7.0/24");
        }
        CHECK_INT_EQ(c.forward_cache_size, 0);
        CHECK_INT_EQ(c.forward_max_ttl, 600);
        CHECK_STREQ(c.resolv_conf, "/run/r.conf");
        config_done(&c);

        /* The environment and the command line, as for every key. */
        LOAD_OK(&c, ARGV("--forward=Resolv.Conf", "--forward-cache-size=5"),
                ENVP(env, "DNS_FORWARD=192.0.2.9", "DNS_FORWARD_ALLOW=0.0.0.0/0", "DNS_FORWARD_MAX_TTL=1",
                     "JOYRIDE_RESOLV_CONF=/tmp/x.conf"));
        CHECK_INT_EQ(strv_length(c.forward), 1);
        CHECK_STREQ(c.forward ? c.forward[0] : NULL, "resolv.conf");
        CHECK_STREQ(c.forward_allow ? c.forward_allow[0] : NULL, "0.0.0.0/0");
        CHECK_INT_EQ(c.forward_cache_size, 5);
        CHECK_INT_EQ(c.forward_max_ttl, 1);
        CHECK_STREQ(c.resolv_conf, "/tmp/x.conf");
        config_done(&c);

        LOAD_FAILS(ARGV("--forward=resolv.conf,192.0.2.1"), ENVP(empty_env), "--forward=resolv.conf,192.0.2.1",
                   "resolv.conf alone");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_FORWARD=dns.example"), "DNS_FORWARD=dns.example", "'dns.example'",
                   "[IPv6]:PORT");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "DNS_FORWARD=192.0.2.1:0"), "'192.0.2.1:0'");
        LOAD_FAILS(ARGV(),
                   ENVP(empty_env,
                        "DNS_FORWARD=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,"
                        "1.1.1.8,1.1.1.9,1.1.1.10,1.1.1.11,1.1.1.12,1.1.1.13,1.1.1.14,1.1.1.15,"
                        "1.1.1.16,1.1.1.17"),
                   "at most 16 servers");
        LOAD_FAILS(ARGV("--forward-allow=10.0.0.0/33"), ENVP(empty_env), "--forward-allow=10.0.0.0/33", "'10.0.0.0/33'",
                   "ADDRESS/PREFIXLEN");
        LOAD_FAILS(ARGV("--forward-cache-size=-1"), ENVP(empty_env), "--forward-cache-size=-1", "0 to 1000000");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_RESOLV_CONF=resolv.conf"), "absolute path");

        free(env);
        free(path);
}

/* [Etcd]: off by default; file, environment and command line;
 * normalization of URLs and the prefix; settings that need each other. */
static void test_etcd(void) {
        char *path = write_config(NULL,
                                  "[Etcd]\nEndpoints=http://127.0.0.1:2379/, https://etcd-2.example:2379\n"
                                  "Prefix=/dns/prod/\nLeaseTTL=3\nCAFile=/etc/joyride/etcd-ca.pem\n"
                                  "CertFile=/etc/joyride/etcd.pem\nKeyFile=/etc/joyride/etcd.key\n"
                                  "User=joyride\nPasswordFile=/etc/joyride/etcd.password\n");
        char *env = env_for(path);
        Config c;

        LOAD_OK(&c, ARGV(), ENVP(empty_env));
        CHECK(c.etcd_endpoints == NULL);
        CHECK_STREQ(c.etcd_prefix, "/skydns");
        CHECK_INT_EQ(c.etcd_lease_ttl, 10);
        CHECK_STREQ(c.etcd_user, NULL);
        config_done(&c);

        LOAD_OK(&c, ARGV(), ENVP(env));
        CHECK_INT_EQ(strv_length(c.etcd_endpoints), 2);
        if (strv_length(c.etcd_endpoints) == 2) {
                CHECK_STREQ(c.etcd_endpoints[0], "http://127.0.0.1:2379");
                CHECK_STREQ(c.etcd_endpoints[1], "https://etcd-2.example:2379");
        }
        CHECK_STREQ(c.etcd_prefix, "/dns/prod");
        CHECK_INT_EQ(c.etcd_lease_ttl, 3);
        CHECK_STREQ(c.etcd_ca_file, "/etc/joyride/etcd-ca.pem");
        CHECK_STREQ(c.etcd_cert_file, "/etc/joyride/etcd.pem");
        CHECK_STREQ(c.etcd_key_file, "/etc/joyride/etcd.key");
        CHECK_STREQ(c.etcd_user, "joyride");
        CHECK_STREQ(c.etcd_password_file, "/etc/joyride/etcd.password");
        config_done(&c);

        /* ETCD_ENDPOINTS, as etcd's tools spell it; the command line wins. */
        LOAD_OK(&c, ARGV(), ENVP(empty_env, "ETCD_ENDPOINTS=http://[::1]:2379"));
        CHECK_STREQ(c.etcd_endpoints ? c.etcd_endpoints[0] : NULL, "http://[::1]:2379");
        config_done(&c);
        LOAD_OK(&c, ARGV("--etcd-endpoints=http://10.0.0.1:2379", "--etcd-prefix=/skydns/"),
                ENVP(empty_env, "ETCD_ENDPOINTS=http://[::1]:2379"));
        CHECK_STREQ(c.etcd_endpoints ? c.etcd_endpoints[0] : NULL, "http://10.0.0.1:2379");
        CHECK_STREQ(c.etcd_prefix, "/skydns");
        config_done(&c);

        LOAD_FAILS(ARGV(), ENVP(empty_env, "ETCD_ENDPOINTS=127.0.0.1:2379"), "ETCD_ENDPOINTS=127.0.0.1:2379",
                   "'127.0.0.1:2379'", "http://HOST:PORT");
        LOAD_FAILS(ARGV("--etcd-endpoints=http://a:1/v3"), ENVP(empty_env), "'http://a:1/v3'");
        LOAD_FAILS(ARGV("--etcd-endpoints=http://user@a:1"), ENVP(empty_env), "'http://user@a:1'");
        LOAD_FAILS(ARGV("--etcd-prefix=skydns"), ENVP(empty_env), "--etcd-prefix=skydns", "key prefix");
        LOAD_FAILS(ARGV("--etcd-prefix=/"), ENVP(empty_env), "--etcd-prefix=/", "key prefix");
        LOAD_FAILS(ARGV("--etcd-prefix=/a//b"), ENVP(empty_env), "empty segment");
        LOAD_FAILS(ARGV("--etcd-lease-ttl=1"), ENVP(empty_env), "--etcd-lease-ttl=1", "from 2 to 86400");
        LOAD_FAILS(ARGV("--etcd-ca-file=ca.pem"), ENVP(empty_env), "--etcd-ca-file=ca.pem", "absolute");
        LOAD_FAILS(ARGV("--etcd-cert-file=/c.pem"), ENVP(empty_env), "--etcd-cert-file=/c.pem",
                   "KeyFile=", "private key");
        LOAD_FAILS(ARGV(), ENVP(empty_env, "JOYRIDE_ETCD_KEY_FILE=/k.pem"), "JOYRIDE_ETCD_KEY_FILE=/k.pem",
                   "CertFile=");
        LOAD_FAILS(ARGV("--etcd-user=joyride"), ENVP(empty_env), "--etcd-user=joyride", "PasswordFile=");
        LOAD_FAILS(ARGV("--etcd-password-file=/p"), ENVP(empty_env), "--etcd-password-file=/p", "User=");

        char *bad = write_config(NULL, "[Etcd]\nEndpoint=http://a:1\n");
        char *bad_env = env_for(bad);
        LOAD_FAILS(ARGV(), ENVP(bad_env), "unknown key 'Endpoint' in section [Etcd]", "did you mean 'Endpoints'");
        free(bad_env);
        free(bad);

        free(env);
        free(path);
}

int main(void) {
        if (!mkdtemp(tmpdir))
                die("mkdtemp");
        have_tmpdir = true;
        atexit(cleanup);

        char *empty = write_config(NULL, "");
        empty_env = env_for(empty);
        free(empty);

        test_defaults();
        test_default_path_missing();
        test_file();
        test_precedence();
        test_environment_names();
        test_command_line();
        test_validation();
        test_unknown();
        test_missing_explicit();
        test_help_version();
        test_reload();
        test_resolved();
        test_forward();
        test_cluster();
        test_cluster_timings();
        test_etcd();
        test_cluster_limits();

        return EXIT_SUCCESS;
}
