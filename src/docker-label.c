/* SPDX-License-Identifier: MIT */
/* Pure parsing for the Docker source: label values, event actions, API
 * version choice, container addresses. See docker-label.h. */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-label.h"
#include "store.h"

static bool is_separator(char c) {
        return c == ',' || isspace((unsigned char) c);
}

/* Calls f on each entry of a comma/whitespace separated list. Stops at the
 * first negative return and returns it. */
static int split_list(const char *value, int (*f)(const char *item, size_t len, void *userdata), void *userdata) {
        const char *p = value;

        if (!p)
                return 0;
        for (;;) {
                size_t len;
                int r;

                while (*p && is_separator(*p))
                        p++;
                if (!*p)
                        return 0;
                len = 0;
                while (p[len] && !is_separator(p[len]))
                        len++;
                r = f(p, len, userdata);
                if (r < 0)
                        return r;
                p += len;
        }
}

static int add_name(const char *item, size_t len, void *userdata) {
        DockerLabelNames *n = userdata;
        const char *why = NULL;
        _cleanup_free_ char *name = strndup(item, len);

        if (!name)
                return -ENOMEM;
        if (dns_name_check(name, DNS_NAME_WILDCARD, &why) < 0) {
                DockerNameProblem *p = realloc(n->problems, (n->n_problems + 1) * sizeof *p);
                if (!p)
                        return -ENOMEM;
                n->problems = p;
                p[n->n_problems++] = (DockerNameProblem) {
                        .name = TAKE_PTR(name),
                        .reason = why ?: "invalid name",
                };
                return 0;
        }

        /* The store keeps names lowercased without the trailing dot; compare
         * in that form so "A.example.com." and "a.example.com" are one name. */
        if (len > 1 && name[len - 1] == '.')
                name[--len] = '\0';
        for (char *c = name; *c; c++)
                *c = (char) tolower((unsigned char) *c);
        for (size_t i = 0; i < n->n_names; i++)
                if (streq(n->names[i], name))
                        return 0;

        char **names = realloc(n->names, (n->n_names + 2) * sizeof *names);
        if (!names)
                return -ENOMEM;
        n->names = names;
        names[n->n_names++] = TAKE_PTR(name);
        names[n->n_names] = NULL;
        return 0;
}

int docker_label_parse_names(const char *value, DockerLabelNames *ret) {
        DockerLabelNames n = {};
        int r;

        r = split_list(value, add_name, &n);
        if (r < 0) {
                docker_label_names_done(&n);
                return r;
        }
        *ret = n;
        return 0;
}

void docker_label_names_done(DockerLabelNames *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_names; i++)
                free(n->names[i]);
        free(n->names);
        for (size_t i = 0; i < n->n_problems; i++)
                free(n->problems[i].name);
        free(n->problems);
        *n = (DockerLabelNames) {};
}

/* Narrows [*s, *e) to the value without surrounding white space; false when
 * nothing is left (an empty label means "use the default"). */
static bool trim(const char **s, const char **e) {
        while (isspace((unsigned char) **s))
                (*s)++;
        *e = *s + strlen(*s);
        while (*e > *s && isspace((unsigned char) (*e)[-1]))
                (*e)--;
        return *e > *s;
}

/* --- joyride.host.ip ----------------------------------------------------- */

typedef struct IpParse {
        DockerLabelIp *ip;
        const char *error;
} IpParse;

static int add_ip(const char *item, size_t len, void *userdata) {
        IpParse *p = userdata;
        char buf[INET6_ADDRSTRLEN + 1], out[INET6_ADDRSTRLEN];
        unsigned char addr[16];

        if (len >= sizeof buf) {
                p->error = "not an IPv4 or IPv6 address";
                return -EINVAL;
        }
        memcpy(buf, item, len);
        buf[len] = '\0';

        if (inet_pton(AF_INET, buf, addr) == 1) {
                if (p->ip->ipv4) {
                        p->error = "more than one IPv4 address";
                        return -EINVAL;
                }
                if (!inet_ntop(AF_INET, addr, out, sizeof out) || !(p->ip->ipv4 = strdup(out)))
                        return -ENOMEM;
                return 0;
        }
        if (inet_pton(AF_INET6, buf, addr) == 1) {
                if (p->ip->ipv6) {
                        p->error = "more than one IPv6 address";
                        return -EINVAL;
                }
                if (!inet_ntop(AF_INET6, addr, out, sizeof out) || !(p->ip->ipv6 = strdup(out)))
                        return -ENOMEM;
                return 0;
        }
        p->error = "not an IPv4 or IPv6 address, nor \"container\"";
        return -EINVAL;
}

int docker_label_parse_ip(const char *value, DockerLabelIp *ret, const char **ret_error) {
        DockerLabelIp ip = { .mode = DOCKER_IP_EXPLICIT };
        IpParse p = { .ip = &ip };
        const char *s = value, *e;
        int r;

        *ret = (DockerLabelIp) { .mode = DOCKER_IP_HOST };
        if (!s)
                return 0;
        if (!trim(&s, &e))
                return 0;
        if (e - s == 9 && strncasecmp(s, "container", 9) == 0) {
                ret->mode = DOCKER_IP_CONTAINER;
                return 0;
        }

        r = split_list(value, add_ip, &p);
        if (r < 0) {
                docker_label_ip_done(&ip);
                if (ret_error)
                        *ret_error = p.error ?: "out of memory";
                return r;
        }
        *ret = ip;
        return 0;
}

void docker_label_ip_done(DockerLabelIp *ip) {
        if (!ip)
                return;
        free(ip->ipv4);
        free(ip->ipv6);
        *ip = (DockerLabelIp) {};
}

/* --- joyride.host.ttl ---------------------------------------------------- */

int docker_label_parse_ttl(const char *value, uint32_t default_ttl, uint32_t *ret, const char **ret_error) {
        const char *s = value, *e;
        uint64_t v = 0;

        *ret = default_ttl;
        if (!s)
                return 0;
        if (!trim(&s, &e))
                return 0;

        for (const char *c = s; c < e; c++) {
                if (*c < '0' || *c > '9') {
                        if (ret_error)
                                *ret_error = "not a number of seconds";
                        return -EINVAL;
                }
                v = v * 10 + (uint64_t) (*c - '0');
                if (v > STORE_TTL_MAX) {
                        if (ret_error)
                                *ret_error = "larger than 604800 (a week)";
                        return -ERANGE;
                }
        }
        *ret = (uint32_t) v;
        return 0;
}

/* --- events -------------------------------------------------------------- */

DockerAction docker_action_from_string(const char *action) {
        /* start/unpause: the container runs (again). die comes on every exit,
         * however caused, so it alone would be enough to remove; stop, pause
         * and destroy are there for engines that skip die (Podman sends no
         * stop, and "remove" instead of "destroy"). kill is only a signal:
         * the container may catch it and live on, and if it dies a die
         * follows. A restart shows as die then start; the "restart" action
         * itself follows the start and adds nothing. */
        static const struct {
                const char *name;
                DockerAction action;
        } table[] = {
                { "start", DOCKER_ACTION_ADD },     { "unpause", DOCKER_ACTION_ADD },
                { "die", DOCKER_ACTION_REMOVE },    { "stop", DOCKER_ACTION_REMOVE },
                { "pause", DOCKER_ACTION_REMOVE },  { "destroy", DOCKER_ACTION_REMOVE },
                { "remove", DOCKER_ACTION_REMOVE },
        };

        if (!action)
                return DOCKER_ACTION_IGNORE;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(action, table[i].name))
                        return table[i].action;
        return DOCKER_ACTION_IGNORE;
}

/* --- API version --------------------------------------------------------- */

static bool parse_version(const char *s, unsigned *ret_major, unsigned *ret_minor) {
        unsigned major, minor;
        int n = 0;

        /* At most three digits each, and the whole string: nothing to overflow. */
        if (!s || sscanf(s, "%3u.%3u%n", &major, &minor, &n) != 2 || s[n] != '\0') // NOLINT(cert-err34-c)
                return false;
        *ret_major = major;
        *ret_minor = minor;
        return true;
}

void docker_api_version_pick(const char *engine, char *out, size_t out_size) {
        unsigned maj, min, lo_maj = 1, lo_min = 24, hi_maj = 1, hi_min = 43;

        (void) parse_version(DOCKER_API_VERSION_MIN, &lo_maj, &lo_min);
        (void) parse_version(DOCKER_API_VERSION_MAX, &hi_maj, &hi_min);
        if (!parse_version(engine, &maj, &min)) {
                maj = lo_maj;
                min = lo_min;
        }
        if (maj > hi_maj || (maj == hi_maj && min > hi_min)) {
                maj = hi_maj;
                min = hi_min;
        }
        if (maj < lo_maj || (maj == lo_maj && min < lo_min)) {
                maj = lo_maj;
                min = lo_min;
        }
        snprintf(out, out_size, "%u.%u", maj, min);
}

/* --- JSON helpers -------------------------------------------------------- */

int docker_json_stream_init(DockerJsonStream *s, size_t max_value) {
        *s = (DockerJsonStream) {
                .tok = json_tokener_new(),
                .max_value = max_value,
        };
        return s->tok ? 0 : -ENOMEM;
}

void docker_json_stream_done(DockerJsonStream *s) {
        if (s->tok)
                json_tokener_free(s->tok);
        *s = (DockerJsonStream) {};
}

static int stream_error(DockerJsonStream *s, int r, const char *why, const char **ret_error) {
        json_tokener_reset(s->tok);
        s->pending = 0;
        if (ret_error)
                *ret_error = why;
        return r;
}

int docker_json_feed(DockerJsonStream *s, const char *data, size_t len, DockerJsonFunc f, void *userdata,
                     const char **ret_error) {
        while (len > 0) {
                size_t piece = MIN(len, (size_t) INT_MAX);
                json_object *o = json_tokener_parse_ex(s->tok, data, (int) piece);
                enum json_tokener_error jerr = json_tokener_get_error(s->tok);
                size_t used, value_size;
                int r;

                if (jerr == json_tokener_continue) {
                        /* The rest of the value comes with a later feed;
                         * the tokener holds what it has seen until then. */
                        s->pending += piece;
                        if (s->max_value > 0 && s->pending > s->max_value)
                                return stream_error(s, -EMSGSIZE, "value longer than the limit", ret_error);
                        data += piece;
                        len -= piece;
                        continue;
                }
                if (jerr != json_tokener_success)
                        return stream_error(s, -EBADMSG, json_tokener_error_desc(jerr), ret_error);
                used = json_tokener_get_parse_end(s->tok);
                json_tokener_reset(s->tok);
                if (used == 0 || used > piece) {
                        json_object_put(o);
                        return stream_error(s, -EBADMSG, "parser made no progress", ret_error);
                }
                value_size = s->pending + used;
                s->pending = 0;
                if (s->max_value > 0 && value_size > s->max_value) {
                        json_object_put(o);
                        return stream_error(s, -EMSGSIZE, "value longer than the limit", ret_error);
                }
                data += used;
                len -= used;
                /* A literal null is a value too, but carries no event. */
                if (!o)
                        continue;
                r = f(o, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

json_object *docker_json_parse(const void *data, size_t len) {
        json_tokener *tok;
        json_object *o = NULL;

        if (len > INT_MAX)
                return NULL;
        tok = json_tokener_new();
        if (!tok)
                return NULL;
        o = json_tokener_parse_ex(tok, data, (int) len);
        /* Trailing garbage after the value makes the body invalid too. */
        if (o && json_tokener_get_parse_end(tok) < len &&
            strspn((const char *) data + json_tokener_get_parse_end(tok), " \t\r\n") !=
                    len - json_tokener_get_parse_end(tok)) {
                json_object_put(o);
                o = NULL;
        }
        json_tokener_free(tok);
        return o;
}

const char *docker_json_string(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object))
                return NULL;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static const char *valid_address(const char *s, int family) {
        unsigned char buf[16];

        if (isempty(s) || inet_pton(family, s, buf) != 1)
                return NULL;
        return s;
}

int docker_network_addresses(json_object *ns, char **ret_ipv4, char **ret_ipv6) {
        const char *v4, *v6;
        json_object *networks;
        _cleanup_free_ char *a = NULL, *b = NULL;

        *ret_ipv4 = *ret_ipv6 = NULL;
        v4 = valid_address(docker_json_string(ns, "IPAddress"), AF_INET);
        v6 = valid_address(docker_json_string(ns, "GlobalIPv6Address"), AF_INET6);

        if ((!v4 || !v6) && ns && json_object_is_type(ns, json_type_object) &&
            json_object_object_get_ex(ns, "Networks", &networks) && json_object_is_type(networks, json_type_object)) {
                json_object_object_foreach(networks, key, net) {
                        (void) key;
                        if (!v4)
                                v4 = valid_address(docker_json_string(net, "IPAddress"), AF_INET);
                        if (!v6)
                                v6 = valid_address(docker_json_string(net, "GlobalIPv6Address"), AF_INET6);
                }
        }

        if (v4 && !(a = strdup(v4)))
                return -ENOMEM;
        if (v6 && !(b = strdup(v6)))
                return -ENOMEM;
        *ret_ipv4 = TAKE_PTR(a);
        *ret_ipv6 = TAKE_PTR(b);
        return 0;
}

/* --- events and container lists ---------------------------------------- */

int docker_event_parse(json_object *ev, DockerEvent *ret) {
        json_object *actor = NULL, *attrs = NULL;
        const char *type, *action, *id;

        if (!ev || !json_object_is_type(ev, json_type_object))
                return -EINVAL;
        type = docker_json_string(ev, "Type");
        if (type && !streq(type, "container"))
                return -EINVAL; /* the server-side filter is a wish, not a promise */
        /* "status" and "id": the names before API 1.22, still sent by some engines. */
        action = docker_json_string(ev, "Action") ?: docker_json_string(ev, "status");
        (void) json_object_object_get_ex(ev, "Actor", &actor);
        id = docker_json_string(actor, "ID") ?: docker_json_string(ev, "id");
        if (isempty(action) || isempty(id))
                return -EINVAL;
        if (actor && json_object_is_type(actor, json_type_object))
                (void) json_object_object_get_ex(actor, "Attributes", &attrs);

        /* Labels arrive flattened into Actor.Attributes, next to "name". */
        *ret = (DockerEvent) {
                .action = action,
                .kind = docker_action_from_string(action),
                .id = id,
                .name = docker_json_string(attrs, "name"),
                .names_label = docker_json_string(attrs, DOCKER_LABEL_NAME),
                .ip_label = docker_json_string(attrs, DOCKER_LABEL_IP),
                .ttl_label = docker_json_string(attrs, DOCKER_LABEL_TTL),
        };
        return 0;
}

int docker_container_parse(json_object *c, DockerContainer *ret) {
        json_object *labels = NULL, *names = NULL, *ns = NULL;
        const char *id, *state, *name = NULL;

        if (!c || !json_object_is_type(c, json_type_object))
                return -EINVAL;
        id = docker_json_string(c, "Id");
        if (isempty(id))
                return -EINVAL;
        state = docker_json_string(c, "State");
        (void) json_object_object_get_ex(c, "Labels", &labels);
        if (json_object_object_get_ex(c, "Names", &names) && json_object_is_type(names, json_type_array) &&
            json_object_array_length(names) > 0) {
                json_object *first = json_object_array_get_idx(names, 0);
                if (json_object_is_type(first, json_type_string))
                        name = json_object_get_string(first);
        }
        if (name && name[0] == '/')
                name++;
        (void) json_object_object_get_ex(c, "NetworkSettings", &ns);

        *ret = (DockerContainer) {
                .id = id,
                .name = name,
                /* Older engines send no State; the list then holds only running ones. */
                .running = !state || streq(state, "running"),
                .names_label = docker_json_string(labels, DOCKER_LABEL_NAME),
                .ip_label = docker_json_string(labels, DOCKER_LABEL_IP),
                .ttl_label = docker_json_string(labels, DOCKER_LABEL_TTL),
                .network_settings = ns,
        };
        return 0;
}
