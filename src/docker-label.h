/* SPDX-License-Identifier: MIT */
/* Pure parsing for the Docker source: the joyride.host.* label values, the
 * event stream and its events, the container list's entries, the API version
 * to speak and a container's addresses in an engine's JSON. No sockets and no
 * event loop, so every rule here is unit-tested (tests/test-docker-label.c)
 * and fuzzed (fuzz/fuzz-docker-json.c). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define DOCKER_LABEL_NAME "joyride.host.name"
#define DOCKER_LABEL_IP "joyride.host.ip"
#define DOCKER_LABEL_TTL "joyride.host.ttl"

/* The API version we speak is the engine's, capped at the newest we have
 * tested against and never below the oldest whose event format we read
 * (Action and Actor.Attributes came with 1.22; 1.24 is Docker 1.12). */
#define DOCKER_API_VERSION_MIN "1.24"
#define DOCKER_API_VERSION_MAX "1.43"

typedef struct DockerNameProblem {
        char *name;         /* the rejected entry, as written in the label */
        const char *reason; /* static string */
} DockerNameProblem;

typedef struct DockerLabelNames {
        char **names; /* NULL-terminated; valid, lowercased, no trailing dot, deduplicated, label order */
        size_t n_names;
        DockerNameProblem *problems;
        size_t n_problems;
} DockerLabelNames;

/* Splits a joyride.host.name value at commas and whitespace (any mix, empty
 * entries ignored) and checks each name with dns_name_check(). Bad names
 * land in ret->problems with the reason; the others in ret->names. A NULL or
 * empty value gives no names and no problems. Returns 0 or -ENOMEM. */
int docker_label_parse_names(const char *value, DockerLabelNames *ret);
void docker_label_names_done(DockerLabelNames *n);

typedef enum DockerIpMode {
        DOCKER_IP_HOST,      /* no label: HOSTIP / HOSTIP6 (or the detected addresses) */
        DOCKER_IP_EXPLICIT,  /* the label's addresses */
        DOCKER_IP_CONTAINER, /* the container's own network address */
} DockerIpMode;

typedef struct DockerLabelIp {
        DockerIpMode mode;
        char *ipv4; /* canonical text, DOCKER_IP_EXPLICIT only; NULL if none given */
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
        DOCKER_ACTION_IGNORE, /* kill, restart, create, exec_*, health_status, ... */
        DOCKER_ACTION_ADD,    /* start, unpause */
        DOCKER_ACTION_REMOVE, /* die, stop, pause, destroy, remove (Podman) */
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
int docker_network_addresses(json_object *ns, char **ret_ipv4, char **ret_ipv6);

/* The event stream: a sequence of JSON values with optional whitespace
 * between them, fed in arbitrary pieces; a value may span several feeds and
 * one feed may hold several values. A value longer than max_value bytes
 * (with blanks next to it) is an error: the tokener holds an unfinished
 * value in memory, and an engine that never finishes one must not grow it
 * without end. */
typedef struct DockerJsonStream {
        json_tokener *tok;
        size_t max_value; /* 0: no limit */
        size_t pending;   /* bytes of the unfinished value fed so far */
} DockerJsonStream;

int docker_json_stream_init(DockerJsonStream *s, size_t max_value); /* 0 or -ENOMEM */
void docker_json_stream_done(DockerJsonStream *s);

/* Calls f for each complete value, in order, handing over the reference.
 * Returns 0; f's negative return (feeding stops there); -EBADMSG for invalid
 * JSON or -EMSGSIZE for a value over the limit, with *ret_error set (the
 * stream is reset then, and what followed in data is dropped). */
typedef int (*DockerJsonFunc)(json_object *o, void *userdata);
int docker_json_feed(DockerJsonStream *s, const char *data, size_t len, DockerJsonFunc f, void *userdata,
                     const char **ret_error);

/* A whole response body as one JSON value (blanks around it allowed). NULL
 * when it is not valid JSON, or is the literal null. */
json_object *docker_json_parse(const void *data, size_t len);

/* A string member of an object, or NULL. */
const char *docker_json_string(json_object *o, const char *key);

/* A container event, as the engine's GET /events sends it. Strings point
 * into ev. */
typedef struct DockerEvent {
        const char *action; /* as sent: "start", "die", "exec_start: sh", ... */
        DockerAction kind;
        const char *id;
        const char *name;        /* NULL when the event does not say */
        const char *names_label; /* the joyride.host.* labels, NULL when absent */
        const char *ip_label;
        const char *ttl_label;
} DockerEvent;

/* Returns 0, or -EINVAL for what is not a container event with an action and
 * an id (to be skipped). */
int docker_event_parse(json_object *ev, DockerEvent *ret);

/* One entry of GET /containers/json. Strings point into c. */
typedef struct DockerContainer {
        const char *id;
        const char *name; /* the first name without its '/'; NULL if none */
        bool running;     /* the list holds paused containers too */
        const char *names_label;
        const char *ip_label;
        const char *ttl_label;
        json_object *network_settings; /* for docker_network_addresses(); NULL if absent */
} DockerContainer;

/* Returns 0, or -EINVAL for an entry without an id (to be skipped). */
int docker_container_parse(json_object *c, DockerContainer *ret);
