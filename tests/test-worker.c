/* SPDX-License-Identifier: MIT */
/* The control loop's worker thread: jobs come back to the loop in the order
 * they were submitted, each run on the worker thread, and that thread runs
 * below the daemon's priority so that it never keeps an answering thread
 * waiting for a core. */

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test-util.h"
#include "worker.h"

typedef struct {
        WorkerJob job;
        unsigned seq;
        pid_t ran_on;
        int ran_at_nice;
        GArray *done_order; /* of unsigned: the loop's record */
        sd_event *event;
        unsigned exit_after;
} TestJob;

static void job_run(WorkerJob *j) {
        TestJob *t = (TestJob *) j;

        t->ran_on = gettid();
        errno = 0;
        t->ran_at_nice = getpriority(PRIO_PROCESS, (id_t) t->ran_on);
        CHECK_INT_EQ(errno, 0);
}

static void job_done(WorkerJob *j) {
        TestJob *t = (TestJob *) j;

        g_array_append_val(t->done_order, t->seq);
        if (t->done_order->len == t->exit_after)
                (void) sd_event_exit(t->event, 0);
}

static void job_discard(WorkerJob *j) {
        (void) j;
        test_fail(__FILE__, __LINE__, "a job was discarded: the worker is freed with none queued");
}

static void test_order_and_priority(void) {
        enum { N = 64 };
        sd_event *e = NULL;
        Worker *w = NULL;
        g_autoptr(GArray) order = g_array_new(false, false, sizeof(unsigned));
        TestJob jobs[N] = {};
        int base_nice;

        errno = 0;
        base_nice = getpriority(PRIO_PROCESS, (id_t) gettid());
        CHECK_INT_EQ(errno, 0);

        CHECK(sd_event_new(&e) >= 0);
        CHECK_INT_EQ(worker_new(&w, e, "test-worker"), 0);
        for (unsigned i = 0; i < N; i++) {
                jobs[i] = (TestJob) {
                        .job = { .run = job_run, .done = job_done, .discard = job_discard },
                        .seq = i,
                        .done_order = order,
                        .event = e,
                        .exit_after = N,
                };
                worker_submit(w, &jobs[i].job);
        }
        CHECK_INT_EQ(worker_n_pending(w), N);
        CHECK_INT_EQ(sd_event_loop(e), 0);

        CHECK_INT_EQ(order->len, N);
        CHECK_INT_EQ(worker_n_pending(w), 0);
        for (unsigned i = 0; i < N; i++) {
                CHECK_INT_EQ(g_array_index(order, unsigned, i), i);
                /* Not on the loop's thread, and WORKER_NICE_STEP levels below it. */
                CHECK(jobs[i].ran_on != gettid());
                CHECK_INT_EQ(jobs[i].ran_at_nice, MIN(base_nice + WORKER_NICE_STEP, 19));
        }
        /* The loop's own thread keeps its priority. */
        CHECK_INT_EQ(getpriority(PRIO_PROCESS, (id_t) gettid()), base_nice);

        worker_free(w);
        sd_event_unref(e);
}

int main(void) {
        TEST_BEGIN("order and priority");
        test_order_and_priority();
        printf("worker: all checks passed\n");
        return 0;
}
