/* SPDX-License-Identifier: MIT */
/* JSON objects shared by the daemon and joyridectl (see json-util.h). */

#include "json-util.h"

json_object *json_hosts_warning_new(const char *file, unsigned line, const char *why) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "file", json_object_new_string(file));
        json_object_object_add(o, "line", line > 0 ? json_object_new_int64(line) : NULL);
        json_object_object_add(o, "message", json_object_new_string(why));
        return o;
}
