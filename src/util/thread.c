/* thread.c - see thread.h. */
#include "util/thread.h"

void ferry_signals_block(sigset_t *saved)
{
    static const int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                               SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
    sigset_t set;
    sigemptyset(&set);
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, saved);
}

void ferry_signals_restore(const sigset_t *saved)
{
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

int ferry_thread_start(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    sigset_t saved;
    ferry_signals_block(&saved);
    int rc = pthread_create(t, attr, fn, arg);
    ferry_signals_restore(&saved);
    return rc;
}
