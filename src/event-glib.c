/* SPDX-License-Identifier: MIT */
/* sd-event inside a GSource: the documented sd_event_prepare/wait/dispatch
 * split (sd_event_get_fd(3)), with GLib polling sd-event's epoll fd.
 * GLib may skip our check() when a higher-priority source dispatches, leaving
 * sd-event "armed"; prepare() then finishes that cycle with a zero-timeout
 * wait instead of calling sd_event_prepare() again (which would fail). */

#include "event-glib.h"
#include "log.h"

typedef struct EventSource {
        GSource source;
        sd_event *event;
        gpointer poll_tag;
        void (*on_exit)(void *userdata);
        void *userdata;
        bool exited;
} EventSource;

static gboolean source_prepare(GSource *source, gint *timeout) {
        EventSource *s = (EventSource *) source;
        int r;

        *timeout = -1; /* sd-event's timers live in its epoll fd */
        if (s->exited)
                return FALSE;

        switch (sd_event_get_state(s->event)) {
        case SD_EVENT_PENDING:
                return TRUE;
        case SD_EVENT_ARMED:
                r = sd_event_wait(s->event, 0);
                return r > 0;
        case SD_EVENT_INITIAL:
                r = sd_event_prepare(s->event);
                if (r < 0)
                        log_error_errno(r, "sd_event_prepare() failed: %m");
                return r > 0;
        default:
                return FALSE;
        }
}

static gboolean source_check(GSource *source) {
        EventSource *s = (EventSource *) source;

        if (s->exited)
                return FALSE;
        switch (sd_event_get_state(s->event)) {
        case SD_EVENT_PENDING:
                return TRUE;
        case SD_EVENT_ARMED:
                return sd_event_wait(s->event, 0) > 0;
        default:
                return FALSE;
        }
}

static gboolean source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        EventSource *s = (EventSource *) source;
        int r;

        if (sd_event_get_state(s->event) == SD_EVENT_PENDING) {
                r = sd_event_dispatch(s->event);
                if (r < 0)
                        log_error_errno(r, "sd_event_dispatch() failed: %m");
        }
        if (!s->exited && sd_event_get_state(s->event) == SD_EVENT_FINISHED) {
                s->exited = true;
                if (s->on_exit)
                        s->on_exit(s->userdata);
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void source_finalize(GSource *source) {
        EventSource *s = (EventSource *) source;
        sd_event_unref(s->event);
}

static GSourceFuncs event_source_funcs = {
        .prepare = source_prepare,
        .check = source_check,
        .dispatch = source_dispatch,
        .finalize = source_finalize,
};

GSource *event_glib_source_new(sd_event *e, void (*on_exit)(void *userdata), void *userdata) {
        GSource *source = g_source_new(&event_source_funcs, sizeof(EventSource));
        EventSource *s = (EventSource *) source;

        s->event = sd_event_ref(e);
        s->on_exit = on_exit;
        s->userdata = userdata;
        s->poll_tag = g_source_add_unix_fd(source, sd_event_get_fd(e), G_IO_IN);
        g_source_set_name(source, "sd-event");
        return source;
}
