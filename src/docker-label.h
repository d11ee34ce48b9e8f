/* SPDX-License-Identifier: MIT */
/* Pure parsing for the Docker source: the joyride.host.* label values, the
 * event actions, the API version to speak and a container's addresses in an
 * engine's JSON. No sockets and no event loop, so every rule here is
 * unit-tested (tests/test-docker-label.c). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The API version we speak is the engine's, capped at the newest we have
 * tested against and never below the oldest whose event format we read
 * (Action and Actor.Attributes came with 1.22; 1.24 is Docker 1.12). */
#define DOCKER_API_VERSION_MIN "1.24"
#define DOCKER_API_VERSION_MAX "1.43"

typedef struct DockerNameProblem {
        char *name;             /* the rejected entry, as written in the label */
        const char *reason;     /* static string */
} DockerNameProblem;

typedef struct DockerLabelNames {
        char **names;           /* NULL-terminated; valid, lowercased, no trailing dot, deduplicated, label order */
        size_t n_names;
        DockerNameProblem *problems;
        size_t n_problems;
} DockerLabelNames;

/* Splits a joyride.host.name value at commas and whitespace (any mix, empty
 * entries ignored) and checks each name with store_check_name(). Bad names
 * land in ret->problems with the reason; the others in ret->names. A NULL or
 * empty value gives no names and no problems. Returns 0 or -ENOMEM. */
int docker_label_parse_names(const char *value, DockerLabelNames *ret);
void docker_label_names_done(DockerLabelNames *n);

typedef enum DockerIpMode {
        DOCKER_IP_HOST,         /* no label: HOSTIP / HOSTIP6 (or the detected addresses) */
        DOCKER_IP_EXPLICIT,     /* the label's addresses */
        DOCKER_IP_CONTAINER,    /* the container's own network address */
} DockerIpMode;

typedef struct DockerLabelIp {
        DockerIpMode mode;
        char *ipv4;             /* canonical text, DOCKER_IP_EXPLICIT only; NULL if none given */
        char *ipv6;
} DockerLabelIp;

/* Parses joyride.host.ip: NULL or empty -> DOCKER_IP_HOST; "container" (any
 * case) -> DOCKER_IP_CONTAINER; otherwise one IPv4 and/or one IPv6 address,
 * separated by a comma or whitespace. Returns 0, or -EINVAL with *ret_error
 * set (ret is then DOCKER_IP_HOST), or -ENOMEM. */
int docker_label_parse_ip(const char *value, DockerLabelIp *ret, const char **ret_error);
void docker_label_ip_done(DockerLabelIp *ip);

/* Parses joyride.host.ttl: decimal seconds, 0..STORE_TTL_MAX. NULL or empty
 * gives default_ttl. Returns 0, or -EINVAL/-ERANGE with *ret_error set and
 * *ret = default_ttl. */
int docker_label_parse_ttl(const char *value, uint32_t default_ttl, uint32_t *ret, const char **ret_error);

typedef enum DockerAction {
        DOCKER_ACTION_IGNORE,   /* kill, restart, create, exec_*, health_status, ... */
        DOCKER_ACTION_ADD,      /* start, unpause */
        DOCKER_ACTION_REMOVE,   /* die, stop, pause, destroy, remove (Podman) */
} DockerAction;

DockerAction docker_action_from_string(const char *action);

/* Picks the API version to use from the engine's ("1.41"): min(engine,
 * DOCKER_API_VERSION_MAX), at least DOCKER_API_VERSION_MIN. A missing or
 * unparsable engine version gives DOCKER_API_VERSION_MIN. Writes "1.41" to
 * out (size >= 16). */
void docker_api_version_pick(const char *engine, char *out, size_t out_size);

/* Reads a container's own addresses from a NetworkSettings object, as in
 * GET /containers/json entries and GET /containers/<id>/json: the
 * top-level IPAddress / GlobalIPv6Address first, then the first network in
 * Networks that has one (in the order the engine lists them). Sets
 * *ret_ipv4 / *ret_ipv6 to new strings or NULL. Returns 0 or -ENOMEM. */
int docker_network_addresses(json_object *network_settings, char **ret_ipv4, char **ret_ipv6);

/* Splits the event stream, a sequence of JSON values with optional
 * whitespace between them, fed in arbitrary pieces: a value may span several
 * feeds and one feed may hold several values. Calls f for each complete
 * value, in order, handing over the reference. Returns 0; f's negative
 * return (feeding stops there); or -EBADMSG for invalid JSON, with
 * *ret_error set (the tokener must then be reset before reuse). */
typedef int (*DockerJsonFunc)(json_object *o, void *userdata);
int docker_json_feed(json_tokener *tok, const char *data, size_t len, DockerJsonFunc f, void *userdata,
                     const char **ret_error);

/* A string member of an object, or NULL. */
const char *docker_json_string(json_object *o, const char *key);
