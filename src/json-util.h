/* SPDX-License-Identifier: MIT */
/* JSON objects that both the daemon and joyridectl write, built in one
 * place so that the HTTP API and `joyridectl status --json` shape them the
 * same. Pure and small: joyridectl compiles this file in, as it links
 * json-c but not the daemon's core. */
#pragma once

#include <json-c/json.h>

/* One hosts warning as /status's hosts_monitor.warning_list lists it:
 * {"file": FILE, "line": LINE or null for the file or the directory as a
 * whole (line 0), "message": WHY}. */
json_object *json_hosts_warning_new(const char *file, unsigned line, const char *why);
