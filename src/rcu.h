/* SPDX-License-Identifier: MIT */
/* Read-copy-update for the data plane, over liburcu (the "memb" flavour, the
 * same library Knot DNS reads its zones with).
 *
 * The control loop thread is the one writer: it builds new immutable data,
 * publishes a pointer to it with rcu_publish(), and hands what it replaced to
 * rcu_free_deferred(), which frees it once every reader that could still see
 * it has left its read-side section (a grace period, waited for by liburcu's
 * call_rcu thread, never by a reader or by the writer). Answering threads
 * read between rcu_reader_lock() and rcu_reader_unlock(), with loads through
 * rcu_dereference(): they take no lock and write nothing shared.
 *
 * Every thread that reads under rcu_reader_lock() or calls
 * rcu_free_deferred() registers with liburcu first (rcu_attach_thread();
 * idempotent, undone at thread exit).
 *
 * ThreadSanitizer cannot see liburcu's own synchronisation (the library is
 * not instrumented, and the grace period rests on membarrier()), so these
 * wrappers tell it what the grace period guarantees: everything a reader did
 * before rcu_reader_unlock() happens before the deferred free. */
#pragma once

#include <stdbool.h>

/* Publishing and reading a pointer to immutable data: a release store and a
 * consume (acquire) load, so that a reader sees the data complete. liburcu's
 * rcu_assign_pointer() does the same with a volatile store, which
 * ThreadSanitizer would take for a plain one. */
#define rcu_publish(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define rcu_dereference(p) __atomic_load_n(&(p), __ATOMIC_CONSUME)

/* Registers the calling thread with liburcu if it is not yet; the
 * registration is dropped when the thread exits. */
void rcu_attach_thread(void);
/* Drops the registration early (a thread about to exit does not need to). */
void rcu_detach_thread(void);

void rcu_reader_lock(void);
void rcu_reader_unlock(void);

/* Waits for a grace period, here: every read-side section that began before
 * has ended. For the rare changes whose caller frees at once (never on the
 * answer path: it blocks for a while). */
void rcu_synchronize(void);

/* Calls free_fn(p) after a grace period, on liburcu's call_rcu thread. */
void rcu_free_deferred(void *p, void (*free_fn)(void *p));
