/* SPDX-License-Identifier: MIT */
/* Unit tests for the Docker source's pure parts: the joyride.host.name,
 * joyride.host.ip and joyride.host.ttl label values, the event actions, the
 * API version we pick, a container's addresses in the engine's JSON, and the
 * default-route lookup in a /proc/net/route text. */

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-label.h"
#include "netinfo.h"
#include "store.h"
#include "test-util.h"

/* Parses value and checks the names ("a b c", space-joined) and the rejected
 * entries (space-joined) that come out. */
/* Appends WORD to the space-separated list in BUF, within SIZE. */
static void append_word(char *buf, size_t size, const char *word) {
        size_t len = strlen(buf);

        snprintf(buf + len, size - len, "%s%s", len > 0 ? " " : "", word);
}

static void check_names(const char *value, const char *want_names, const char *want_bad) {
        DockerLabelNames n = {};
        char got[2048] = "", bad[2048] = "";

        CHECK(docker_label_parse_names(value, &n) == 0);
        for (size_t i = 0; i < n.n_names; i++)
                append_word(got, sizeof got, n.names[i]);
        CHECK(n.n_names == 0 || n.names[n.n_names] == NULL);
        for (size_t i = 0; i < n.n_problems; i++) {
                append_word(bad, sizeof bad, n.problems[i].name);
                CHECK(n.problems[i].reason && n.problems[i].reason[0]);
        }
        if (strcmp(got, want_names) != 0 || strcmp(bad, want_bad) != 0) {
                fprintf(stderr, "label \"%s\": names \"%s\" (want \"%s\"), bad \"%s\" (want \"%s\")\n",
                        value ?: "(null)", got, want_names, bad, want_bad);
                exit(EXIT_FAILURE);
        }
        docker_label_names_done(&n);
        CHECK(n.names == NULL && n.n_names == 0 && n.problems == NULL);
}

static void test_names(void) {
        /* Separators: commas, spaces, tabs, newlines, any mix, repeated. */
        check_names("a.example.com", "a.example.com", "");
        check_names("a.example.com,b.example.com", "a.example.com b.example.com", "");
        check_names("a.example.com b.example.com", "a.example.com b.example.com", "");
        check_names(" a.example.com , b.example.com\tc.example.com\n", "a.example.com b.example.com c.example.com", "");
        check_names(",,a.example.com,, ,b.example.com,", "a.example.com b.example.com", "");

        /* Empty values give nothing, and no complaint. */
        check_names(NULL, "", "");
        check_names("", "", "");
        check_names(" , ,, ", "", "");

        /* Lowercased, trailing dot dropped, duplicates (in any spelling) once. */
        check_names("App.Example.COM.", "app.example.com", "");
        check_names("a.example.com a.example.com A.EXAMPLE.COM a.example.com.", "a.example.com", "");
        check_names("b.example.com,a.example.com,b.example.com", "b.example.com a.example.com", "");

        /* Wildcards: "*." as the whole first label only. */
        check_names("*.apps.example.com", "*.apps.example.com", "");
        check_names("apps.example.com,*.apps.example.com", "apps.example.com *.apps.example.com", "");
        check_names("a*.example.com", "", "a*.example.com");
        check_names("x.*.example.com", "", "x.*.example.com");

        /* Bad names are skipped, the good ones around them still count. */
        check_names("good.example.com bad_name!x other.example.com", "good.example.com other.example.com",
                    "bad_name!x");
        check_names("a..example.com,ok.example.com", "ok.example.com", "a..example.com");
        check_names(".leading.example.com ok.example.com", "ok.example.com", ".leading.example.com");
        check_names("ok.example.com ..", "ok.example.com", "..");

        /* Labels over 63 characters and names over 253. */
        char longlabel[200], longname[400];
        memset(longlabel, 'x', 64);
        snprintf(longlabel + 64, sizeof longlabel - 64, ".example.com ok.example.com");
        check_names(longlabel, "ok.example.com",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.example.com");
        for (int i = 0; i < 26; i++)
                memcpy(longname + 10 * i, "abcdefghi.", 10);
        snprintf(longname + 260, sizeof longname - 260, "com");
        {
                DockerLabelNames n = {};
                CHECK(docker_label_parse_names(longname, &n) == 0);
                CHECK(n.n_names == 0 && n.n_problems == 1);
                CHECK(strstr(n.problems[0].reason, "253"));
                docker_label_names_done(&n);
        }

        /* The reason says what is wrong. */
        {
                DockerLabelNames n = {};
                CHECK(docker_label_parse_names("ok.example.com bad!name.example.com", &n) == 0);
                CHECK(n.n_names == 1 && n.n_problems == 1);
                CHECK(strcmp(n.problems[0].name, "bad!name.example.com") == 0);
                CHECK(strstr(n.problems[0].reason, "character"));
                docker_label_names_done(&n);
        }

        /* Every name that comes out is one the store takes. */
        {
                DockerLabelNames n = {};
                CHECK(docker_label_parse_names("A.b.C, *.x.y  z-1.example_2.org.", &n) == 0);
                for (size_t i = 0; i < n.n_names; i++)
                        CHECK(dns_name_check(n.names[i], DNS_NAME_WILDCARD, NULL) == 0);
                CHECK(n.n_names == 3);
                docker_label_names_done(&n);
        }
}

static void check_ip(const char *value, int want_r, DockerIpMode want_mode, const char *want4, const char *want6) {
        DockerLabelIp ip = {};
        const char *why = NULL;
        int r = docker_label_parse_ip(value, &ip, &why);

        if (r != want_r || ip.mode != want_mode || strcmp(ip.ipv4 ?: "-", want4 ?: "-") != 0 ||
            strcmp(ip.ipv6 ?: "-", want6 ?: "-") != 0) {
                fprintf(stderr, "ip label \"%s\": r=%d mode=%d v4=%s v6=%s (want r=%d mode=%d v4=%s v6=%s)\n",
                        value ?: "(null)", r, ip.mode, ip.ipv4 ?: "-", ip.ipv6 ?: "-", want_r, want_mode, want4 ?: "-",
                        want6 ?: "-");
                exit(EXIT_FAILURE);
        }
        if (r < 0)
                CHECK(why && why[0]);
        docker_label_ip_done(&ip);
}

static void test_ip(void) {
        check_ip(NULL, 0, DOCKER_IP_HOST, NULL, NULL);
        check_ip("", 0, DOCKER_IP_HOST, NULL, NULL);
        check_ip("   ", 0, DOCKER_IP_HOST, NULL, NULL);
        check_ip("container", 0, DOCKER_IP_CONTAINER, NULL, NULL);
        check_ip(" Container ", 0, DOCKER_IP_CONTAINER, NULL, NULL);
        check_ip("10.1.2.3", 0, DOCKER_IP_EXPLICIT, "10.1.2.3", NULL);
        check_ip(" 10.1.2.3 ", 0, DOCKER_IP_EXPLICIT, "10.1.2.3", NULL);
        /* IPv6 comes out canonical. */
        check_ip("2001:DB8:0:0::1", 0, DOCKER_IP_EXPLICIT, NULL, "2001:db8::1");
        check_ip("10.1.2.3,2001:db8::1", 0, DOCKER_IP_EXPLICIT, "10.1.2.3", "2001:db8::1");
        check_ip("2001:db8::1 10.1.2.3", 0, DOCKER_IP_EXPLICIT, "10.1.2.3", "2001:db8::1");

        /* Junk is refused, and the mode falls back to the host's address. */
        check_ip("junk", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("10.1.2", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("10.1.2.300", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("10.1.2.3/24", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("10.1.2.3,10.1.2.4", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("::1 ::2", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("container,10.1.2.3", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("containers", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
        check_ip("10.1.2.3 junk", -EINVAL, DOCKER_IP_HOST, NULL, NULL);
}

static void check_ttl(const char *value, int want_r, uint32_t want) {
        uint32_t ttl = 12345;
        const char *why = NULL;
        int r = docker_label_parse_ttl(value, 30, &ttl, &why);

        if (r != want_r || ttl != want) {
                fprintf(stderr, "ttl label \"%s\": r=%d ttl=%u (want r=%d ttl=%u)\n", value ?: "(null)", r, ttl, want_r,
                        want);
                exit(EXIT_FAILURE);
        }
        if (r < 0)
                CHECK(why && why[0]);
}

static void test_ttl(void) {
        check_ttl(NULL, 0, 30);
        check_ttl("", 0, 30);
        check_ttl("0", 0, 0);
        check_ttl("1", 0, 1);
        check_ttl(" 300 ", 0, 300);
        check_ttl("604800", 0, 604800);
        check_ttl("604801", -ERANGE, 30);
        check_ttl("99999999999999999999999", -ERANGE, 30);
        check_ttl("-1", -EINVAL, 30);
        check_ttl("+5", -EINVAL, 30);
        check_ttl("5s", -EINVAL, 30);
        check_ttl("1 2", -EINVAL, 30);
        check_ttl("ten", -EINVAL, 30);
        check_ttl("0x10", -EINVAL, 30);
}

static void test_actions(void) {
        CHECK(docker_action_from_string("start") == DOCKER_ACTION_ADD);
        CHECK(docker_action_from_string("unpause") == DOCKER_ACTION_ADD);
        CHECK(docker_action_from_string("die") == DOCKER_ACTION_REMOVE);
        CHECK(docker_action_from_string("stop") == DOCKER_ACTION_REMOVE);
        CHECK(docker_action_from_string("pause") == DOCKER_ACTION_REMOVE);
        CHECK(docker_action_from_string("destroy") == DOCKER_ACTION_REMOVE);
        CHECK(docker_action_from_string("remove") == DOCKER_ACTION_REMOVE); /* Podman */
        /* A signal alone changes nothing: die follows if the container goes. */
        CHECK(docker_action_from_string("kill") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("restart") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("create") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("exec_start: sh") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("health_status: healthy") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("Start") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string("") == DOCKER_ACTION_IGNORE);
        CHECK(docker_action_from_string(NULL) == DOCKER_ACTION_IGNORE);
}

static void check_version(const char *engine, const char *want) {
        char out[16];

        docker_api_version_pick(engine, out, sizeof out);
        if (strcmp(out, want) != 0) {
                fprintf(stderr, "engine API %s: picked %s, want %s\n", engine ?: "(null)", out, want);
                exit(EXIT_FAILURE);
        }
}

static void test_version(void) {
        check_version("1.41", "1.41");
        check_version("1.24", "1.24");
        check_version("1.43", "1.43");
        check_version("1.45", "1.43");
        check_version("1.9", "1.24"); /* numeric, not string, comparison */
        check_version("1.100", "1.43");
        check_version("2.0", "1.43");
        check_version("1.12", "1.24");
        check_version(NULL, "1.24");
        check_version("", "1.24");
        check_version("banana", "1.24");
        check_version("1.41x", "1.24");
}

static void check_addresses(const char *json, const char *want4, const char *want6) {
        json_object *o = json ? json_tokener_parse(json) : NULL;
        char *v4 = (char *) 1, *v6 = (char *) 1;

        CHECK(json == NULL || o);
        CHECK(docker_network_addresses(o, &v4, &v6) == 0);
        if (strcmp(v4 ?: "-", want4 ?: "-") != 0 || strcmp(v6 ?: "-", want6 ?: "-") != 0) {
                fprintf(stderr, "%s: v4=%s v6=%s (want %s %s)\n", json ?: "(null)", v4 ?: "-", v6 ?: "-", want4 ?: "-",
                        want6 ?: "-");
                exit(EXIT_FAILURE);
        }
        free(v4);
        free(v6);
        json_object_put(o);
}

static void test_addresses(void) {
        check_addresses(NULL, NULL, NULL);
        check_addresses("{}", NULL, NULL);
        /* --network none: empty strings. */
        check_addresses("{\"Networks\":{\"none\":{\"IPAddress\":\"\",\"GlobalIPv6Address\":\"\"}}}", NULL, NULL);
        /* The default bridge: top-level fields (inspect). */
        check_addresses(
                "{\"IPAddress\":\"172.17.0.2\",\"GlobalIPv6Address\":\"\","
                "\"Networks\":{\"bridge\":{\"IPAddress\":\"172.17.0.2\"}}}",
                "172.17.0.2", NULL);
        /* A user network: only under Networks (the list's entries). */
        check_addresses("{\"Networks\":{\"app\":{\"IPAddress\":\"10.5.0.7\",\"GlobalIPv6Address\":\"fd00::7\"}}}",
                        "10.5.0.7", "fd00::7");
        /* Two networks: the first one that has an address of each family. */
        check_addresses(
                "{\"Networks\":{\"a\":{\"IPAddress\":\"\"},\"b\":{\"IPAddress\":\"10.6.0.2\"},"
                "\"c\":{\"IPAddress\":\"10.7.0.2\",\"GlobalIPv6Address\":\"fd00::9\"}}}",
                "10.6.0.2", "fd00::9");
        /* Junk is not an address. */
        check_addresses("{\"IPAddress\":\"bogus\",\"Networks\":{\"x\":{\"IPAddress\":42}}}", NULL, NULL);
        check_addresses("[1,2]", NULL, NULL);
}

typedef struct Collected {
        char actions[64][32];
        unsigned n;
        int fail_at; /* return -ECANCELED on this value (1-based), 0: never */
} Collected;

static int collect(json_object *o, void *userdata) {
        Collected *c = userdata;
        const char *a = docker_json_string(o, "Action");

        CHECK(c->n < 64);
        snprintf(c->actions[c->n], sizeof c->actions[c->n], "%s", a ?: "?");
        c->n++;
        json_object_put(o);
        return c->fail_at > 0 && (int) c->n == c->fail_at ? -ECANCELED : 0;
}

static const char stream[] =
        "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"abc\",\"Attributes\":"
        "{\"joyride.host.name\":\"a.example.com, b.example.com\",\"name\":\"web\"}},\"timeNano\":1795637293008244319}\n"
        "{\"Action\":\"die\",\"text\":\"brace } and \\\" quote in a string\"}\r\n"
        "  {\"Action\":\"stop\"}{\"Action\":\"destroy\"}\n\n";

static void check_stream_split(size_t chunk) {
        DockerJsonStream js;
        Collected c = {};
        size_t len = strlen(stream);

        CHECK(docker_json_stream_init(&js, 0) == 0);
        for (size_t off = 0; off < len; off += chunk)
                CHECK(docker_json_feed(&js, stream + off, MIN(chunk, len - off), collect, &c, NULL) == 0);
        if (c.n != 4 || !streq(c.actions[0], "start") || !streq(c.actions[1], "die") || !streq(c.actions[2], "stop") ||
            !streq(c.actions[3], "destroy")) {
                fprintf(stderr, "chunk %zu: got %u values\n", chunk, c.n);
                exit(EXIT_FAILURE);
        }
        docker_json_stream_done(&js);
}

static void test_json_stream(void) {
        /* Every split: byte by byte, odd sizes, all at once. */
        for (size_t chunk = 1; chunk <= strlen(stream); chunk++)
                check_stream_split(chunk);

        /* Labels come through the flattened attributes intact. */
        {
                json_object *o, *actor, *attrs;
                o = json_tokener_parse("{\"Actor\":{\"Attributes\":{\"joyride.host.name\":\"x.y\"}}}");
                CHECK(json_object_object_get_ex(o, "Actor", &actor));
                CHECK(json_object_object_get_ex(actor, "Attributes", &attrs));
                CHECK(strcmp(docker_json_string(attrs, "joyride.host.name"), "x.y") == 0);
                CHECK(docker_json_string(attrs, "missing") == NULL);
                CHECK(docker_json_string(actor, "Attributes") == NULL); /* not a string */
                json_object_put(o);
        }

        /* The callback can stop the feed. */
        {
                DockerJsonStream js;
                Collected c = { .fail_at = 2 };
                CHECK(docker_json_stream_init(&js, 0) == 0);
                CHECK(docker_json_feed(&js, stream, strlen(stream), collect, &c, NULL) == -ECANCELED);
                CHECK(c.n == 2);
                docker_json_stream_done(&js);
        }

        /* Garbage is an error with a reason, also after good values. */
        {
                DockerJsonStream js;
                Collected c = {};
                const char *why = NULL;
                const char *part = "{\"Action\":\"start\"}\n{\"Action\":";
                CHECK(docker_json_stream_init(&js, 0) == 0);
                CHECK(docker_json_feed(&js, part, strlen(part), collect, &c, &why) == 0);
                CHECK(c.n == 1);
                CHECK(docker_json_feed(&js, "]oops", 5, collect, &c, &why) == -EBADMSG);
                CHECK(why && why[0]);
                docker_json_stream_done(&js);
        }
}

/* An event (with blanks next to it) may be max_value bytes long, in any
 * split; one byte more is -EMSGSIZE, and an event that never ends fails as
 * soon as it passes the limit rather than being held in memory. */
static void check_limit_split(const char *events, size_t max, size_t chunk, int want, unsigned want_n) {
        DockerJsonStream js;
        Collected c = {};
        size_t len = strlen(events);
        int r = 0;

        CHECK(docker_json_stream_init(&js, max) == 0);
        for (size_t off = 0; off < len && r == 0; off += chunk)
                r = docker_json_feed(&js, events + off, MIN(chunk, len - off), collect, &c, NULL);
        CHECK_INT_EQ(r, want);
        CHECK_INT_EQ(c.n, want_n);
        docker_json_stream_done(&js);
}

static void test_json_stream_limit(void) {
        /* 16 bytes each. */
        const char *two = "{\"Action\":\"die\"}{\"Action\":\"die\"}";
        const char *big = "{\"Action\":\"start\"}{\"Action\":\"die\", \"pad\":\"0123456789\"}";

        for (size_t chunk = 1; chunk <= strlen(big); chunk++) {
                check_limit_split(two, 16, chunk, 0, 2);
                check_limit_split(two, 15, chunk, -EMSGSIZE, 0);
                check_limit_split(big, 20, chunk, -EMSGSIZE, 1);
        }

        /* An endless event: fails after the limit, fed in 64 KiB pieces. */
        {
                DockerJsonStream js;
                Collected c = {};
                const char *why = NULL;
                g_autofree char *piece = g_strnfill(64 * 1024, 'a');
                size_t fed = 0;
                int r;

                CHECK(docker_json_stream_init(&js, 1024 * 1024) == 0);
                r = docker_json_feed(&js, "{\"Action\":\"", 11, collect, &c, &why);
                for (fed = 11; r == 0 && fed < 64 * 1024 * 1024; fed += 64 * 1024)
                        r = docker_json_feed(&js, piece, 64 * 1024, collect, &c, &why);
                CHECK_INT_EQ(r, -EMSGSIZE);
                CHECK(fed > 1024 * 1024 && fed <= 1024 * 1024 + 64 * 1024 + 11);
                CHECK(why && strstr(why, "limit"));
                CHECK_INT_EQ(c.n, 0);
                /* Reset: the next event is read again. */
                CHECK(docker_json_feed(&js, "{\"Action\":\"stop\"}", 17, collect, &c, &why) == 0);
                CHECK_INT_EQ(c.n, 1);
                docker_json_stream_done(&js);
        }

        /* Blanks without end count too. */
        {
                g_autofree char *blanks = g_strnfill(5000, ' ');
                check_limit_split(blanks, 4096, 1000, -EMSGSIZE, 0);
        }
}

static int count_value(json_object *o, void *userdata) {
        unsigned *n = userdata;

        CHECK(docker_json_string(o, "Action"));
        (*n)++;
        json_object_put(o);
        return 0;
}

/* A burst of real-sized events read in pieces of every size up to 64 KiB
 * (as the stream delivers them): none lost, none joined, with the limit on. */
static void test_json_stream_burst(void) {
        g_autoptr(GString) burst = g_string_new(NULL);
        g_autoptr(GRand) rand = g_rand_new_with_seed(42);
        const unsigned n_events = 200;

        for (unsigned i = 0; i < n_events; i++)
                g_string_append_printf(burst,
                                       "{\"status\":\"start\",\"id\":\"%064u\",\"from\":\"debian:bookworm\","
                                       "\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"%064u\","
                                       "\"Attributes\":{\"image\":\"debian:bookworm\",\"joyride.host.name\":"
                                       "\"bulk-%u.docker.test\",\"name\":\"bulk-%u\"}},\"scope\":\"local\","
                                       "\"time\":1700000000,\"timeNano\":1700000000123456789}\n",
                                       i, i, i, i);
        for (unsigned round = 0; round < 200; round++) {
                DockerJsonStream js;
                unsigned n = 0;
                size_t max_piece = round < 100 ? round + 1 : 64 * 1024;

                CHECK(docker_json_stream_init(&js, 1024 * 1024) == 0);
                for (size_t off = 0; off < burst->len;) {
                        size_t want = (size_t) g_rand_int_range(rand, 1, (gint32) max_piece + 1);
                        size_t len = MIN(want, burst->len - off);
                        const char *why = NULL;
                        int r = docker_json_feed(&js, burst->str + off, len, count_value, &n, &why);
                        if (r != 0)
                                test_fail(__FILE__, __LINE__, "round %u: %zu bytes at %zu: %s", round, len, off,
                                          strna(why));
                        off += len;
                }
                CHECK_INT_EQ(n, n_events);
                docker_json_stream_done(&js);
        }
}

static void test_json_parse(void) {
        json_object *o;

        o = docker_json_parse("  [1, 2]\n", 9);
        CHECK(o && json_object_is_type(o, json_type_array) && json_object_array_length(o) == 2);
        json_object_put(o);
        CHECK(docker_json_parse("[1, 2] [3]", 10) == NULL);
        CHECK(docker_json_parse("[1, 2", 5) == NULL);
        CHECK(docker_json_parse("null", 4) == NULL);
        CHECK(docker_json_parse("", 0) == NULL);
}

static void test_event_parse(void) {
        json_object *o;
        DockerEvent ev;

        o = docker_json_parse(stream, strcspn(stream, "\n"));
        CHECK(docker_event_parse(o, &ev) == 0);
        CHECK_STREQ(ev.action, "start");
        CHECK_INT_EQ(ev.kind, DOCKER_ACTION_ADD);
        CHECK_STREQ(ev.id, "abc");
        CHECK_STREQ(ev.name, "web");
        CHECK_STREQ(ev.names_label, "a.example.com, b.example.com");
        CHECK(!ev.ip_label && !ev.ttl_label);
        json_object_put(o);

        /* The names of engines before API 1.22. */
        o = json_tokener_parse("{\"status\":\"die\",\"id\":\"def\"}");
        CHECK(docker_event_parse(o, &ev) == 0);
        CHECK_INT_EQ(ev.kind, DOCKER_ACTION_REMOVE);
        CHECK_STREQ(ev.id, "def");
        CHECK(!ev.name && !ev.names_label);
        json_object_put(o);

        static const char *const skipped[] = {
                "{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"n1\"}}",
                "{\"Type\":\"container\",\"Action\":\"start\"}",
                "{\"Action\":\"start\",\"Actor\":{\"ID\":\"\"}}",
                "{\"Action\":7,\"Actor\":{\"ID\":\"x\"}}",
                "{\"Action\":\"start\",\"Actor\":[\"ID\"]}",
                "[\"start\"]",
                "\"start\"",
        };
        for (size_t i = 0; i < ELEMENTSOF(skipped); i++) {
                o = json_tokener_parse(skipped[i]);
                CHECK(docker_event_parse(o, &ev) == -EINVAL);
                json_object_put(o);
        }
        CHECK(docker_event_parse(NULL, &ev) == -EINVAL);
}

static void test_container_parse(void) {
        json_object *o;
        DockerContainer c;

        o = json_tokener_parse(
                "{\"Id\":\"0123\",\"Names\":[\"/web\",\"/alias\"],\"State\":\"running\","
                "\"Labels\":{\"joyride.host.name\":\"web.test\",\"joyride.host.ip\":\"container\","
                "\"joyride.host.ttl\":\"60\"},\"NetworkSettings\":{\"Networks\":{\"bridge\":"
                "{\"IPAddress\":\"172.17.0.2\"}}}}");
        CHECK(docker_container_parse(o, &c) == 0);
        CHECK_STREQ(c.id, "0123");
        CHECK_STREQ(c.name, "web");
        CHECK(c.running);
        CHECK_STREQ(c.names_label, "web.test");
        CHECK_STREQ(c.ip_label, "container");
        CHECK_STREQ(c.ttl_label, "60");
        CHECK(c.network_settings);
        json_object_put(o);

        o = json_tokener_parse("{\"Id\":\"0124\",\"State\":\"paused\",\"Names\":[7],\"Labels\":null}");
        CHECK(docker_container_parse(o, &c) == 0);
        CHECK(!c.running);
        CHECK(!c.name && !c.names_label && !c.network_settings);
        json_object_put(o);

        /* No State (older engines): the list held running containers only. */
        o = json_tokener_parse("{\"Id\":\"0125\"}");
        CHECK(docker_container_parse(o, &c) == 0 && c.running);
        json_object_put(o);

        o = json_tokener_parse("{\"Names\":[\"/x\"]}");
        CHECK(docker_container_parse(o, &c) == -EINVAL);
        json_object_put(o);
        o = json_tokener_parse("[]");
        CHECK(docker_container_parse(o, &c) == -EINVAL);
        json_object_put(o);
}

static void test_route_table(void) {
        char *s;

        s = netinfo_parse_route_table(
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        CHECK(s && strcmp(s, "eth0") == 0);
        free(s);

        /* The lowest metric wins; a route that is not up does not count. */
        s = netinfo_parse_route_table(
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                "down0\t00000000\t0101A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"
                "eth1\t00000000\t010010AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                "eth1\t000010AC\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n");
        CHECK(s && strcmp(s, "eth1") == 0);
        free(s);

        /* Only loopback, or nothing: no default route. */
        CHECK(netinfo_parse_route_table(
                      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n") == NULL);
        CHECK(netinfo_parse_route_table("") == NULL);
        CHECK(netinfo_parse_route_table(NULL) == NULL);
}

int main(void) {
        test_names();
        test_ip();
        test_ttl();
        test_actions();
        test_version();
        test_addresses();
        test_json_stream();
        test_json_stream_limit();
        test_json_stream_burst();
        test_json_parse();
        test_event_parse();
        test_container_parse();
        test_route_table();
        printf("test-docker-label: ok\n");
        return 0;
}
