/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what joyrided reads from a Docker engine, with the
 * engine as the attacker. The input is both:
 *   - an event stream, fed through docker_json_feed() in pieces whose sizes
 *     come from the first bytes (so splits inside values, strings and
 *     escapes are explored), with a small limit; every value goes through
 *     docker_event_parse() and the label parsers, as docker.c does;
 *   - a reply body: docker_json_parse(), then as a container list
 *     (docker_container_parse() and docker_network_addresses() per entry) and
 *     as an inspect reply.
 * Besides the sanitizers it checks the promises: the stream never holds more
 * than its limit plus one piece, a value it hands over is whole, and what
 * the parsers return points into the JSON or is valid. */

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "docker-label.h"
#include "store.h"

#define MAX_VALUE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_labels(const char *names_label, const char *ip_label, const char *ttl_label) {
        _cleanup_(docker_label_names_done) DockerLabelNames names = {};
        _cleanup_(docker_label_ip_done) DockerLabelIp ip = {};
        const char *why = NULL;
        uint32_t ttl;

        if (docker_label_parse_names(names_label, &names) >= 0)
                for (size_t i = 0; i < names.n_names; i++)
                        assert(dns_name_check(names.names[i], DNS_NAME_WILDCARD, NULL) == 0);
        if (docker_label_parse_ip(ip_label, &ip, &why) == -EINVAL)
                assert(why && ip.mode == DOCKER_IP_HOST);
        if (docker_label_parse_ttl(ttl_label, 30, &ttl, &why) < 0)
                assert(why && ttl == 30);
        assert(ttl <= STORE_TTL_MAX);
}

static void check_addresses(json_object *network_settings) {
        _cleanup_free_ char *v4 = NULL, *v6 = NULL;

        if (docker_network_addresses(network_settings, &v4, &v6) >= 0) {
                assert(!v4 || strchr(v4, '.'));
                assert(!v6 || strchr(v6, ':'));
        }
}

static int on_value(json_object *o, void *userdata) {
        unsigned *n = userdata;
        DockerEvent ev;

        (*n)++;
        if (docker_event_parse(o, &ev) >= 0) {
                assert(ev.action && ev.action[0] && ev.id && ev.id[0]);
                assert(ev.kind == docker_action_from_string(ev.action));
                check_labels(ev.names_label, ev.ip_label, ev.ttl_label);
        }
        json_object_put(o);
        return 0;
}

static void fuzz_stream(const uint8_t *data, size_t size) {
        DockerJsonStream js;
        size_t split[4] = { 1, 7, 64, 4096 }, off = 0, piece = 0;
        unsigned n = 0;
        int r = 0;

        if (size < 2)
                return;
        split[0] = 1 + data[0] % 16;
        split[1] = 1 + data[1];
        data += 2;
        size -= 2;

        assert(docker_json_stream_init(&js, MAX_VALUE) == 0);
        while (off < size) {
                size_t want = split[piece++ % ELEMENTSOF(split)], len = MIN(want, size - off);
                const char *why = NULL;

                r = docker_json_feed(&js, (const char *) data + off, len, on_value, &n, &why);
                /* Bounded: what the tokener holds never passes the limit by more than a piece. */
                assert(js.pending <= MAX_VALUE + 4096);
                if (r < 0) {
                        assert(r == -EBADMSG || r == -EMSGSIZE);
                        assert(why && why[0]);
                        assert(js.pending == 0);
                }
                off += len;
        }
        docker_json_stream_done(&js);
}

static void fuzz_body(const uint8_t *data, size_t size) {
        json_object *o = docker_json_parse(data, size), *ns = NULL;
        DockerContainer c;

        if (!o)
                return;
        if (json_object_is_type(o, json_type_array))
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        if (docker_container_parse(json_object_array_get_idx(o, i), &c) >= 0) {
                                assert(c.id && c.id[0]);
                                check_labels(c.names_label, c.ip_label, c.ttl_label);
                                check_addresses(c.network_settings);
                        }
        if (json_object_object_get_ex(o, "NetworkSettings", &ns))
                check_addresses(ns);
        {
                char version[16];
                docker_api_version_pick(docker_json_string(o, "ApiVersion"), version, sizeof version);
                assert(strlen(version) >= 4);
        }
        json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_stream(data, size);
        fuzz_body(data, size);
        return 0;
}
