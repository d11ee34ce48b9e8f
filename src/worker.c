/* SPDX-License-Identifier: MIT */
/* The worker thread: a FIFO of jobs in, a FIFO of finished jobs out, one
 * mutex for both, and an eventfd that wakes the loop when the out queue stops
 * being empty. The loop drains it in one go: finished jobs are rare compared
 * with loop iterations, and each done() bounds its own work.
 *
 * POSIX threads rather than GLib's: GMutex is built on futexes that
 * ThreadSanitizer does not see, and this is the one place our own threads
 * meet. */

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "thread-sched.h"
#include "worker.h"

struct Worker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool started;
        char name[16];
        WorkerJob *todo_head, *todo_tail; /* submitted, not run yet */
        WorkerJob *done_head, *done_tail; /* run, done() not called yet */
        bool stopping;
        unsigned n_pending; /* loop thread only */

        int efd; /* owned by efd_source */
        sd_event_source *efd_source;
};

static void queue_push(WorkerJob **head, WorkerJob **tail, WorkerJob *j) {
        j->next = NULL;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
}

static void *worker_thread(void *userdata) {
        Worker *w = userdata;

        (void) pthread_setname_np(pthread_self(), w->name);
        /* Background work yields the cores to the answering threads and the loop. */
        thread_lower_priority(w->name, WORKER_NICE_STEP);
        pthread_mutex_lock(&w->lock);
        for (;;) {
                WorkerJob *j = w->todo_head;
                bool wake;
                uint64_t one = 1;

                if (!j) {
                        if (w->stopping)
                                break;
                        pthread_cond_wait(&w->cond, &w->lock);
                        continue;
                }
                w->todo_head = j->next;
                if (!w->todo_head)
                        w->todo_tail = NULL;
                pthread_mutex_unlock(&w->lock);

                j->run(j);

                pthread_mutex_lock(&w->lock);
                wake = !w->done_head;
                queue_push(&w->done_head, &w->done_tail, j);
                /* One wake-up per empty-to-non-empty transition is enough: the
                 * loop takes the whole queue. Nothing to do if the counter is full. */
                if (wake)
                        (void) !write(w->efd, &one, sizeof one);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int on_efd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        WorkerJob *j;
        uint64_t n;

        (void) !read(fd, &n, sizeof n);

        pthread_mutex_lock(&w->lock);
        j = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);

        while (j) {
                WorkerJob *next = j->next;

                w->n_pending--;
                j->done(j); /* may submit again, or free its owner's other jobs: not this list */
                j = next;
        }
        return 0;
}

int worker_new(Worker **ret, sd_event *e, const char *name) {
        _cleanup_(worker_freep) Worker *w = NULL;
        int fd, r;

        w = g_new0(Worker, 1);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        g_strlcpy(w->name, name, sizeof w->name);
        w->efd = -EBADF;

        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        r = sd_event_add_io(e, &w->efd_source, fd, EPOLLIN, on_efd, w);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        w->efd = fd;
        (void) sd_event_source_set_io_fd_own(w->efd_source, true);
        (void) sd_event_source_set_description(w->efd_source, name);

        r = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (r < 0)
                return log_error_errno(r, "Failed to start the %s thread: %m", name);
        w->started = true;

        *ret = TAKE_PTR(w);
        return 0;
}

Worker *worker_free(Worker *w) {
        WorkerJob *j;

        if (!w)
                return NULL;

        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                pthread_cond_signal(&w->cond);
                pthread_mutex_unlock(&w->lock);
                (void) pthread_join(w->thread, NULL);
        }

        /* The thread is gone: no lock needed any more. */
        for (j = w->done_head; j;) {
                WorkerJob *next = j->next;
                j->discard(j);
                j = next;
        }
        for (j = w->todo_head; j;) { /* only when the thread never started */
                WorkerJob *next = j->next;
                j->discard(j);
                j = next;
        }

        sd_event_source_disable_unref(w->efd_source);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        g_free(w);
        return NULL;
}

void worker_submit(Worker *w, WorkerJob *j) {
        pthread_mutex_lock(&w->lock);
        queue_push(&w->todo_head, &w->todo_tail, j);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        w->n_pending++;
}

unsigned worker_n_pending(const Worker *w) {
        return w ? w->n_pending : 0;
}
