/* thread.h - starting Ferry's own threads with the process's stop and user
 * signals blocked in them. */
#ifndef FERRY_UTIL_THREAD_H
#define FERRY_UTIL_THREAD_H

#include <pthread.h>
#include <signal.h>

/* pthread_create with SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM
 * and SIGCHLD blocked in the new thread (and in every thread it starts in
 * turn), so that the application's handlers run on its own threads. Why:
 * a process-directed signal goes to any thread that does not block it; on
 * one of ours parked in a raw futex (the batcher's dispatcher, engine
 * workers) a sanitizer runtime defers the handler until the thread returns
 * to it, which may be never (`ferry serve` under TSan ignored SIGTERM).
 * Faults (SIGSEGV and the like) stay unblocked. Returns pthread_create's. */
int ferry_thread_start(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* The same mask around code that starts threads Ferry does not create
 * itself (libmicrohttpd's): block, start, then restore the saved mask. */
void ferry_signals_block(sigset_t *saved);
void ferry_signals_restore(const sigset_t *saved);

#endif
