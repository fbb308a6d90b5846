/*
 * loop.c - the HTTP threads. Each runs one libmicrohttpd daemon of its own
 * in MHD's external-polling mode (epoll inside), all on the one listening
 * socket; the kernel gives each new connection to whichever thread accepts
 * it first, as MHD's own thread pool does.
 *
 * Why not MHD's thread pool: MHD_epoll() (libmicrohttpd 0.9.75, Debian 12,
 * and still 1.0.1) calls epoll_wait again, with the same timeout, whenever
 * one call returns its full 128 events, before it serves the connections
 * those events made ready. When all of a thread's clients have sent at once
 * (128 sockets, or 127 and the wake-up of a resumed request) the second
 * call finds nothing and sleeps until the connection timeout (30 s), or with
 * none pending until a new connection arrives, and every one of those
 * requests waits unread (issue 14: 127 of 256 wrk connections stalled; in
 * tests/server/test_server_load.c, 1 thread and 128 connections stalled in
 * 7 of 10 rounds). Driven from here, MHD_run() never blocks: its epoll_wait
 * timeout is 0, so its second call returns at once. This loop blocks
 * instead, on MHD's epoll descriptor, for no longer than MHD_get_timeout().
 *
 * The wake eventfd. A batcher thread resumes a connection by setting MHD's
 * resume flag and signalling MHD's inter-thread channel; but MHD_run() may
 * consume that signal after it has looked for resumed connections, and
 * MHD_get_timeout() does not look at the flag, so the answer could wait for
 * the next event. The batcher writes wake after the resume, and this loop
 * reads wake before MHD_run(): a resume is either seen by that run, or it
 * leaves wake readable and the next poll returns at once.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/server.h"
#include "util/error.h"

void srv_worker_wake(srv_worker *w)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so the thread is awake anyway */
    if (write(w->wake, &one, sizeof one) < 0) {
    }
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    ferry_server *s = w->srv;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd p[2] = {{info->epoll_fd, POLLIN, 0}, {w->wake, POLLIN, 0}};
    for (;;) {
        int phase = atomic_load(&s->phase);
        if (phase >= SRV_QUIESCE && !w->quiesced) {
            /* Connections the kernel has already accepted for us are
             * served rather than reset by the close: take them first
             * (MHD accepts up to 10 a run), a bounded number of times,
             * as clients may go on connecting. */
            struct pollfd l = {s->listen_fd, POLLIN, 0};
            for (int k = 0; k < 16 && poll(&l, 1, 0) > 0; k++)
                MHD_run(w->mhd);
            /* in this thread: MHD's epoll set is not to be changed under
             * a running MHD_run() */
            MHD_quiesce_daemon(w->mhd);
            w->quiesced = true;
            atomic_fetch_add(&s->n_quiesced, 1);
        }
        if (phase >= SRV_EXIT)
            break;
        MHD_UNSIGNED_LONG_LONG left;
        int ms = -1;
        if (MHD_get_timeout(w->mhd, &left) == MHD_YES)
            ms = left > INT_MAX ? INT_MAX : (int)left;
        if (poll(p, 2, ms) > 0 && (p[1].revents & POLLIN)) {
            uint64_t n;
            if (read(w->wake, &n, sizeof n) < 0) {
                /* EAGAIN: another read took it; nothing is lost */
            }
        }
        MHD_run(w->mhd);
    }
    return NULL;
}

ferry_status srv_worker_start(srv_worker *w)
{
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake < 0)
        return ferry_fail(FERRY_EIO, "server: eventfd: %s", strerror(errno));
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
        close(w->wake);
        w->wake = -1;
        return ferry_fail(FERRY_EIO, "server: cannot start an HTTP thread: %s", strerror(rc));
    }
    pthread_setname_np(w->thread, "ferry-http");
    w->running = true;
    return FERRY_OK;
}

void srv_worker_join(srv_worker *w)
{
    if (!w->running)
        return;
    srv_worker_wake(w);
    pthread_join(w->thread, NULL);
    w->running = false;
    close(w->wake);
    w->wake = -1;
}
