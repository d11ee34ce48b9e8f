/* SPDX-License-Identifier: MIT */
/* joyrided: DNS for things that come and go. */

#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "manager.h"

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *error = NULL;
        Config config = {};
        sigset_t mask;
        int r;

        /* Before the first GLib call: GLib may start threads, and signals
         * handled through sd-event's signalfd must be blocked in all of them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                fprintf(stderr, "joyrided: failed to block signals: %m\n");
                return 1;
        }
        /* A client that goes away mid-write must not kill the daemon. */
        signal(SIGPIPE, SIG_IGN);

        r = config_load(&config, argc, argv, environ, &error);
        if (r < 0) {
                fprintf(stderr, "joyrided: %s\n", strna(error));
                config_done(&config);
                return 2;
        }
        if (r > 0) { /* --help or --version */
                config_done(&config);
                return 0;
        }
        log_set_max_level(config.log_level);

        r = manager_new(&m, &config, argc, argv, environ);
        if (r < 0)
                return 1;
        r = manager_start(m);
        if (r < 0)
                return 1;
        return manager_run(m);
}
