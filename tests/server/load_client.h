/*
 * load_client.h - an HTTP/1.1 keep-alive load client that keeps the books
 * per connection, for the server's load tests (tests/server/test_server_load.c)
 * and the bench tool beside them (bench/http_load.c).
 *
 * Why not wrk: wrk does not count a request that never completes, so a
 * connection the server stopped serving looks like a slightly lower rate.
 * This client knows, for every connection, how many requests it sent and
 * how many were answered, the longest wait for an answer, and whether a
 * request that was sent before a given moment (a SIGTERM, say) was left
 * unanswered when the connection closed.
 *
 * One thread, nonblocking sockets, epoll. Each connection sends one request,
 * waits for its whole response (Content-Length framing, as Ferry always
 * sends), then sends the next: the way wrk and most clients use keep-alive.
 * Everything is static: include it in one file.
 */
#ifndef FERRY_TESTS_LOAD_CLIENT_H
#define FERRY_TESTS_LOAD_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct lc_config {
    int port;              /* 127.0.0.1:port */
    int conns;             /* keep-alive connections, all opened at the start */
    long requests;         /* per connection; 0: until duration_s has passed */
    double duration_s;     /* with requests == 0 */
    const char *request;   /* one whole HTTP request, sent again and again */
    size_t request_len;
    int stall_ms;          /* an answer later than this is a stall; the run gives up on
                              that connection (0: 5000) */
    double deadline_s;     /* the whole run, at most (0: 120) */
    /* at event_at_s after the start (if event is set), event(event_arg) is
     * called once: it stops the server. Requests sent before that moment
     * must still be answered (200, or 503 with Connection: close); after
     * it, connections are not reopened, and the run ends when all are
     * closed. */
    void (*event)(void *);
    void *event_arg;
    double event_at_s;
} lc_config;

typedef struct lc_result {
    long sent, answered;
    long status_200, status_503, status_other;
    long bad_responses;      /* unparseable, or a 503 at stop without Connection: close */
    long unanswered;         /* sent before the event (or with no event), and the
                                connection closed or stalled with no answer */
    long unanswered_after;   /* sent after the event, closed with no answer */
    int conns_incomplete;    /* connections that did not get an answer to every request */
    int conns_stalled;       /* connections that waited longer than stall_ms */
    int conns_failed;        /* connect failures */
    double max_wait_ms;      /* the longest wait for one answer */
    double start;            /* lc_now() at the start */
    double t_event;          /* seconds from the start: the event */
    double t_last_answer;    /* seconds from the start: the last answer of the run */
    double t_end;            /* seconds from the start: every connection closed */
    char first_error[256];   /* what went wrong first, for a test's message */
} lc_result;

typedef struct lc_conn {
    int fd;
    bool open, waiting, closing, before_event;
    size_t woff;                /* bytes of the current request written */
    char *buf;                  /* the response being read */
    size_t len, cap;
    double sent_at;             /* when the current request was sent */
    long sent, answered;
} lc_conn;

static double lc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void lc_error(lc_result *r, int i, const char *what)
{
    if (!r->first_error[0])
        snprintf(r->first_error, sizeof r->first_error, "connection %d: %s", i, what);
}

static int lc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes what is left of the current request; false when the socket failed. */
static bool lc_write(const lc_config *cfg, lc_conn *c)
{
    while (c->woff < cfg->request_len) {
        ssize_t k = send(c->fd, cfg->request + c->woff, cfg->request_len - c->woff, MSG_NOSIGNAL);
        if (k < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->woff += (size_t)k;
    }
    return true;
}

static void lc_close(int ep, lc_conn *c)
{
    if (!c->open)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->open = false;
}

/* A complete response at the start of c->buf: its length, else 0 (more
 * bytes needed) or -1 (not HTTP). Sets the status and whether it says
 * Connection: close. */
static long lc_parse(const lc_conn *c, int *status, bool *close_hdr)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return c->len > 16384 ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (head < 12 || memcmp(c->buf, "HTTP/1.1 ", 9))
        return -1;
    *status = atoi(c->buf + 9);
    long clen = -1;
    *close_hdr = false;
    for (const char *p = c->buf; p < end;) {
        const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *le = nl ? nl : end;
        if (le - p > 15 && !strncasecmp(p, "Content-Length:", 15))
            clen = atol(p + 15);
        if (le - p > 11 && !strncasecmp(p, "Connection:", 11)) {
            const char *v = p + 11;
            while (*v == ' ')
                v++;
            if (!strncasecmp(v, "close", 5))
                *close_hdr = true;
        }
        p = le + 2;
    }
    if (clen < 0)
        return -1;
    return c->len >= head + (size_t)clen ? (long)(head + (size_t)clen) : 0;
}

/* Whether c is to send another request after its answer. With an event,
 * connections go on until the server closes them: requests keep arriving
 * while it stops, as they do from real clients. */
static bool lc_wants_more(const lc_config *cfg, const lc_conn *c, double now, double t0)
{
    if (c->closing)
        return false;
    if (cfg->event)
        return true;
    return cfg->requests ? c->sent < cfg->requests : now - t0 < cfg->duration_s;
}

static void lc_send(lc_conn *c, bool event_done, double now)
{
    c->woff = 0;
    c->waiting = true;
    c->sent++;
    c->sent_at = now;
    c->before_event = !event_done;
}

/* Reads what c has; false when the connection is over (closed by the
 * server, broken, or a response that is not HTTP). Answers complete the
 * current request and send the next, if any. */
static bool lc_read(const lc_config *cfg, lc_conn *c, int i, lc_result *r, bool event_done,
                    double now, double t0)
{
    for (;;) {
        if (c->cap - c->len < 4096) {
            size_t cap = c->cap ? 2 * c->cap : 16384;
            char *nb = realloc(c->buf, cap);
            if (!nb)
                return false;
            c->buf = nb;
            c->cap = cap;
        }
        ssize_t got = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        c->len += (size_t)got;
        int status;
        bool close_hdr;
        long used;
        while (c->len && (used = lc_parse(c, &status, &close_hdr)) != 0) {
            if (used < 0 || !c->waiting) {
                r->bad_responses++;
                lc_error(r, i, used < 0 ? "not an HTTP response" : "an answer to nothing");
                return false;
            }
            double wait_ms = (now - c->sent_at) * 1000;
            if (wait_ms > r->max_wait_ms)
                r->max_wait_ms = wait_ms;
            c->waiting = false;
            c->answered++;
            r->answered++;
            r->t_last_answer = now - t0;
            if (status == 200) {
                r->status_200++;
            } else if (status == 503) {
                r->status_503++;
                if (!close_hdr) {
                    r->bad_responses++;
                    lc_error(r, i, "503 without Connection: close");
                }
            } else {
                r->status_other++;
                char m[64];
                snprintf(m, sizeof m, "status %d", status);
                lc_error(r, i, m);
            }
            memmove(c->buf, c->buf + used, c->len - (size_t)used);
            c->len -= (size_t)used;
            c->closing = c->closing || close_hdr;
            if (!lc_wants_more(cfg, c, now, t0))
                return false; /* done: close from our side */
            lc_send(c, event_done, now);
            if (!lc_write(cfg, c))
                return false;
        }
    }
}

/* Closes c, counting the request it leaves unanswered, if any. */
static void lc_end(int ep, lc_conn *c, int i, lc_result *r, const char *why)
{
    if (c->waiting) {
        if (c->before_event) {
            r->unanswered++;
            lc_error(r, i, why);
        } else {
            r->unanswered_after++;
        }
        c->waiting = false;
    }
    lc_close(ep, c);
}

/*
 * Runs the load; returns 0 when every connection got an answer to every
 * request it sent (before the event, if there is one), all well formed,
 * none later than stall_ms; else -1, with the first problem in
 * r->first_error. r holds the figures either way.
 */
static int lc_run(const lc_config *cfg, lc_result *r)
{
    memset(r, 0, sizeof *r);
    int stall_ms = cfg->stall_ms > 0 ? cfg->stall_ms : 5000;
    double deadline = cfg->deadline_s > 0 ? cfg->deadline_s : 120;
    lc_conn *cs = calloc((size_t)cfg->conns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || ep < 0) {
        free(cs);
        if (ep >= 0)
            close(ep);
        snprintf(r->first_error, sizeof r->first_error, "out of memory or descriptors");
        return -1;
    }
    double t0 = lc_now();
    r->start = t0;
    bool event_done = false, late = false;
    int open = 0;
    for (int i = 0; i < cfg->conns; i++) {
        lc_conn *c = &cs[i];
        c->fd = lc_connect(cfg->port);
        if (c->fd < 0) {
            r->conns_failed++;
            lc_error(r, i, "connect failed");
            continue;
        }
        /* edge-triggered: a written request leaves the socket writable,
         * which level-triggered EPOLLOUT would report on every wait */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            close(c->fd);
            r->conns_failed++;
            lc_error(r, i, "epoll_ctl failed");
            continue;
        }
        c->open = true;
        open++;
        lc_send(c, false, t0);
    }
    struct epoll_event evs[256];
    while (open > 0) {
        double now = lc_now();
        if (now - t0 > deadline) {
            late = true;
            lc_error(r, -1, "the run passed its deadline");
            break;
        }
        if (cfg->event && !event_done && now - t0 >= cfg->event_at_s) {
            event_done = true;
            r->t_event = now - t0;
            cfg->event(cfg->event_arg);
        }
        /* a connection that has waited too long is a stall: give up on it */
        for (int i = 0; i < cfg->conns; i++) {
            lc_conn *c = &cs[i];
            if (c->open && c->waiting && (now - c->sent_at) * 1000 > stall_ms) {
                r->conns_stalled++;
                char m[96];
                snprintf(m, sizeof m, "no answer for %d ms to request %ld", stall_ms, c->sent);
                lc_end(ep, c, i, r, m);
                open--;
            }
        }
        int n = epoll_wait(ep, evs, 256, 20);
        now = lc_now();
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            lc_conn *c = &cs[i];
            if (!c->open)
                continue;
            bool alive = !(c->waiting && c->woff < cfg->request_len && !lc_write(cfg, c));
            if (alive)
                alive = lc_read(cfg, c, i, r, event_done, now, t0);
            if (!alive) {
                lc_end(ep, c, i, r, "closed by the server with a request unanswered");
                open--;
            }
        }
    }
    r->t_end = lc_now() - t0;
    for (int i = 0; i < cfg->conns; i++) {
        lc_conn *c = &cs[i];
        if (c->open)
            lc_end(ep, c, i, r, "still waiting at the deadline");
        r->sent += c->sent;
        if (c->answered != c->sent)
            r->conns_incomplete++;
        free(c->buf);
    }
    close(ep);
    free(cs);
    bool ok = r->unanswered == 0 && r->conns_stalled == 0 && r->bad_responses == 0 &&
              r->conns_failed == 0 && r->status_other == 0 && !late;
    if (!cfg->event)
        ok = ok && r->conns_incomplete == 0;
    return ok ? 0 : -1;
}

/* The request the load tools send: one mlp-s sample as KServe v2 JSON, the
 * numbers bench/wrk/infer.lua sends. Returns a malloc'd request. */
static char *lc_infer_request(const char *model, size_t *len)
{
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body,
                                "{\"id\":\"load\",\"inputs\":[{\"name\":\"input\",\"datatype\":"
                                "\"FP32\",\"shape\":[1,256],\"data\":[");
    for (int i = 1; i <= 256; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s%.4f", i > 1 ? "," : "",
                              ((i * 37) % 200) / 100.0 - 1);
    o += (size_t)snprintf(body + o, sizeof body - o, "]}]}");
    size_t cap = o + 512;
    char *req = malloc(cap);
    if (!req)
        return NULL;
    int h = snprintf(req, cap,
                     "POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     model, o);
    memcpy(req + h, body, o);
    *len = (size_t)h + o;
    return req;
}

#endif
