/* SPDX-License-Identifier: MIT */
/* org.joyride.DNS on D-Bus: the vtable and signals for the Manager. Logic
 * stays in the core; this file only exports it. */
#pragma once

typedef struct Manager Manager;

/* Connects to the configured bus (m->config.bus), exports the object, takes
 * the name, and subscribes to store changes for the coalesced signals; hands
 * a system bus connection to m->resolved and m->forward_upstreams (create
 * those first) on every (re)connection. Waits for a bus that is not there,
 * and reconnects. */
int manager_bus_setup(Manager *m);
void manager_bus_done(Manager *m);
/* The system bus connection that reaches systemd-resolved (for the
 * registration and for Forward=resolv.conf), or NULL while there is none. */
struct sd_bus *manager_bus_system(Manager *m);
/* MemberChanged(node, address, state): sent at once (membership changes are rare). */
void manager_bus_emit_member_changed(Manager *m, const char *node, const char *address, const char *state);
