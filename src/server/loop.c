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
 * leaves wake readable and the next wait returns at once.
 *
 * A client's FIN. MHD reads a socket until a read returns fewer bytes than
 * it asked for, then waits for the next edge; when the FIN came with the
 * last bytes (a request and a close, or a partial request and a close),
 * there is no next edge, and the connection sits in CLOSE_WAIT until the
 * connection timeout (issue 14, defect 5: 511 of them after a garbage
 * run). So this thread also watches each connection for EPOLLRDHUP; when a
 * client has half-closed, its connection gets a 1 s timeout
 * (MHD_CONNECTION_OPTION_TIMEOUT, the least there is): MHD still answers a
 * request that came whole before the FIN (a half-close is how some clients
 * say "that is all"), and closes the connection once it has been idle for
 * that second, as it closes a partial request's.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/server.h"
#include "util/error.h"
#include "util/thread.h"

void srv_worker_wake(srv_worker *w)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so the thread is awake anyway */
    if (write(w->wake, &one, sizeof one) < 0) {
    }
}

void srv_conn_open(srv_worker *w, struct MHD_Connection *conn, void **socket_ctx)
{
    *socket_ctx = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    srv_conn *c = ci ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return; /* unwatched: its FIN waits for the connection timeout */
    c->conn = conn;
    c->fd = ci->connect_fd;
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        free(c);
        return;
    }
    c->watched = true;
    *socket_ctx = c;
}

void srv_conn_close(srv_worker *w, void *socket_ctx)
{
    srv_conn *c = socket_ctx;
    if (!c)
        return;
    /* the descriptor is still open: MHD closes it after this notice */
    if (c->watched)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    free(c);
}

/* The client half-closed c (or it broke): from now on an idle second ends
 * it. Level-triggered, the event would come back on every wait: c leaves
 * the set. */
static void peer_closed(srv_worker *w, srv_conn *c)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->watched = false;
    MHD_set_connection_option(c->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    ferry_server *s = w->srv;
    struct epoll_event ev[64];
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
        int n = epoll_wait(w->ep, ev, 64, ms);
        /* Before MHD_run: a connection an event names is still open (MHD
         * closes connections, and srv_conn_close frees them, only inside
         * MHD_run). */
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &w->wake) {
                uint64_t v;
                if (read(w->wake, &v, sizeof v) < 0) {
                    /* EAGAIN: nothing is lost (see the top of this file) */
                }
            } else if (p != NULL) {
                peer_closed(w, p);
            }
        }
        MHD_run(w->mhd);
    }
    return NULL;
}

ferry_status srv_worker_init(srv_worker *w)
{
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->wake < 0 || w->ep < 0)
        return ferry_fail(FERRY_EIO, "server: eventfd or epoll_create1: %s", strerror(errno));
    struct epoll_event wake = {.events = EPOLLIN, .data.ptr = &w->wake};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &wake) != 0)
        return ferry_fail(FERRY_EIO, "server: epoll_ctl: %s", strerror(errno));
    return FERRY_OK;
}

ferry_status srv_worker_start(srv_worker *w)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event mhd = {.events = EPOLLIN, .data.ptr = NULL};
    if (!info || epoll_ctl(w->ep, EPOLL_CTL_ADD, info->epoll_fd, &mhd) != 0)
        return ferry_fail(FERRY_EIO, "server: cannot watch libmicrohttpd's epoll descriptor");
    int rc = ferry_thread_start(&w->thread, NULL, worker_main, w);
    if (rc)
        return ferry_fail(FERRY_EIO, "server: cannot start an HTTP thread: %s", strerror(rc));
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
}

void srv_worker_free(srv_worker *w)
{
    if (w->wake >= 0)
        close(w->wake);
    if (w->ep >= 0)
        close(w->ep);
    w->wake = w->ep = -1;
}
