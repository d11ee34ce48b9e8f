/* SPDX-License-Identifier: MIT */
/* RCU helpers over liburcu; see rcu.h. */

#include <pthread.h>
#include <stdlib.h>
#include <urcu.h>
#include <urcu/compiler.h>

/* liburcu's rcu_dereference() is the same load; ours is visible to ThreadSanitizer. */
#undef rcu_dereference
#include "rcu.h"

#if defined(__SANITIZE_THREAD__)
#define HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HAVE_TSAN 1
#endif
#endif

#ifdef HAVE_TSAN
#include <sanitizer/tsan_interface.h>
/* The grace period as ThreadSanitizer sees it: each reader releases this
 * token as it leaves a read-side section, and a deferred free acquires it. */
static char grace_period_token;
#define tsan_release(p) __tsan_release(p)
#define tsan_acquire(p) __tsan_acquire(p)
#else
#define tsan_release(p) \
        do { \
        } while (0)
#define tsan_acquire(p) \
        do { \
        } while (0)
#endif

typedef struct Deferred {
        struct rcu_head head;
        void *p;
        void (*free_fn)(void *p);
} Deferred;

static __thread bool attached;
static pthread_key_t detach_key;
static pthread_once_t detach_key_once = PTHREAD_ONCE_INIT;

static void on_thread_exit(void *unused) {
        rcu_detach_thread();
}

static void make_detach_key(void) {
        if (pthread_key_create(&detach_key, on_thread_exit) != 0)
                abort();
        /* A forked child (the tests fork; GLib may spawn) has no call_rcu
         * thread: liburcu pauses it around fork() and starts one in the
         * child, or deferred frees there would never run. */
        if (pthread_atfork(call_rcu_before_fork, call_rcu_after_fork_parent, call_rcu_after_fork_child) != 0)
                abort();
}

void rcu_attach_thread(void) {
        if (attached)
                return;
        (void) pthread_once(&detach_key_once, make_detach_key);
        rcu_register_thread();
        attached = true;
        /* Any non-NULL value: it only makes the destructor run at exit. */
        (void) pthread_setspecific(detach_key, &attached);
}

void rcu_detach_thread(void) {
        if (!attached)
                return;
        rcu_unregister_thread();
        attached = false;
        (void) pthread_setspecific(detach_key, NULL);
}

void rcu_reader_lock(void) {
        rcu_read_lock();
}

void rcu_reader_unlock(void) {
        tsan_release(&grace_period_token);
        rcu_read_unlock();
}

static void deferred_run(struct rcu_head *head) {
        Deferred *d = caa_container_of(head, Deferred, head);

        tsan_acquire(&grace_period_token);
        tsan_acquire(d);
        d->free_fn(d->p);
        free(d);
}

void rcu_synchronize(void) {
        rcu_attach_thread();
        synchronize_rcu();
        /* Every read-side section that could see the old pointer is over. */
        tsan_acquire(&grace_period_token);
}

void rcu_free_deferred(void *p, void (*free_fn)(void *p)) {
        Deferred *d;

        if (!p)
                return;
        d = malloc(sizeof *d);
        if (!d) {
                /* No memory for the bookkeeping: wait here instead. */
                rcu_attach_thread();
                synchronize_rcu();
                free_fn(p);
                return;
        }
        *d = (Deferred) { .p = p, .free_fn = free_fn };
        rcu_attach_thread();
        /* The writer's last touches of p happen before the free. */
        tsan_release(d);
        call_rcu(&d->head, deferred_run);
}
