/* SPDX-License-Identifier: MIT */
/* A worker thread for the control loop: work that would hold the loop for
 * more than a millisecond (reading and parsing a large file, writing and
 * syncing one, rendering a large answer) runs on it, and its result comes back
 * to the loop, in submission order, through an eventfd that sd-event watches.
 *
 * A job is a struct of the caller's with a WorkerJob first (or anywhere, with
 * container_of): run() works on the worker thread and must not touch anything
 * the loop changes (the store, the Manager; a source may read records of its
 * own that nothing changes while the job runs, see store_add_record()); done()
 * runs on the loop afterwards and owns the job from then on. Logging belongs
 * in done(). */
#pragma once

#include <systemd/sd-event.h>

#include "macro.h"

typedef struct Worker Worker;
typedef struct WorkerJob WorkerJob;

struct WorkerJob {
        void (*run)(WorkerJob *j);     /* on the worker thread */
        void (*done)(WorkerJob *j);    /* on the loop, after run(); frees the job */
        void (*discard)(WorkerJob *j); /* instead of done() when the worker is freed first */
        WorkerJob *next;               /* private to worker.c */
};

/* How many nice levels below the daemon a worker thread runs (capped at
 * 19): a large parse or render then never keeps an answering thread or the
 * control loop waiting for a core. */
#define WORKER_NICE_STEP 10

/* Starts a thread named name (at most 15 characters: the kernel's limit). */
int worker_new(Worker **ret, sd_event *e, const char *name);
/* Lets every job submitted so far run to its end (so that a save in progress
 * is not cut short), joins the thread, and discards the results that were not
 * delivered yet. */
Worker *worker_free(Worker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);

/* Queues a job; never fails once the worker exists. */
void worker_submit(Worker *w, WorkerJob *j);
/* Jobs submitted whose done() has not run yet. */
unsigned worker_n_pending(const Worker *w);
