/* SPDX-License-Identifier: MIT */
/* Runs an sd-event loop inside a GLib main loop, so that sd-event sources
 * (DNS sockets, inotify, timers, sd-bus, signals, watchdog) and GLib users
 * (libsoup's server and client) share one thread without locks. */
#pragma once

#include <glib.h>
#include <systemd/sd-event.h>

/* Returns a new GSource (attach it with g_source_attach). When the sd-event
 * loop finishes (sd_event_exit()), on_exit is called once with userdata:
 * typically it quits the GMainLoop. */
GSource *event_glib_source_new(sd_event *e, void (*on_exit)(void *userdata), void *userdata);
