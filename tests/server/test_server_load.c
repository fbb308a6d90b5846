/*
 * test_server_load.c - the server never strands a connection: many
 * keep-alive connections over several HTTP threads, each connection
 * counted on its own (every request it sent is answered, none waits longer
 * than a stall bound), and SIGTERM to `ferry serve` under that load (every
 * request sent before the signal is answered with 200, or 503 and
 * Connection: close, and the process exits soon after its last answer).
 *
 * Loopback only, a few seconds each. The client is tests/server/load_client.h.
 * Environment: FERRY_LOAD_ROUNDS multiplies the rounds of each keep-alive
 * run (default 1), to run them again and again; FERRY_LOAD_SIGTERM_MS is
 * when the signal comes (default 2500).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry.h"
#include "load_client.h"

#define MODEL_PATH FERRY_BUILD_DIR "/models/mlp-s.onnx"
/* An answer later than this is a stall. A healthy server answers within
 * tens of milliseconds here, under ASan within a few hundred; a stranded
 * connection waits for the connection timeout (30 s) or forever. */
#define STALL_MS 5000
/* After its last answer, `ferry serve` exits within this (it lingers 300 ms
 * for keep-alive clients, then stops its threads and frees the model): well
 * under the 10 s grace a stranded request would wait out (the defect this
 * bounds), above the 3.1 s that 4 threads and 512 connections once took on
 * a 2-core machine shared with the other tests (ctest -j2, 2026-12-07;
 * ~0.2 s when it has the cores). */
#define EXIT_AFTER_LAST_ANSWER_S 6.0

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static void report(const char *what, const lc_result *r)
{
    printf("%s: sent %ld answered %ld (200: %ld, 503: %ld, other: %ld), unanswered %ld "
           "(+%ld after the event), stalled conns %d, incomplete conns %d, longest wait "
           "%.0f ms%s%s\n",
           what, r->sent, r->answered, r->status_200, r->status_503, r->status_other, r->unanswered,
           r->unanswered_after, r->conns_stalled, r->conns_incomplete, r->max_wait_ms,
           r->first_error[0] ? "; first problem: " : "", r->first_error);
    fflush(stdout);
}

/* An in-process server on mlp-s with `threads` HTTP threads; its batcher
 * waits up to delay_us for a batch (0: the default) and queues at most
 * max_queue requests (0: the default). */
static ferry_server *start_server_with(int threads, int64_t delay_us, int max_queue)
{
    ferry_model *m;
    ferry_engine *e;
    ferry_batcher *b;
    assert_int_equal(ferry_model_load(MODEL_PATH, &m), FERRY_OK);
    ferry_engine_config ec;
    ferry_engine_config_init(&ec);
    ec.workers = 1;
    assert_int_equal(ferry_engine_create(m, &ec, &e), FERRY_OK);
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    if (delay_us)
        bc.max_delay_us = delay_us;
    if (max_queue)
        bc.max_queue = max_queue;
    assert_int_equal(ferry_batcher_create(e, &bc, &b), FERRY_OK);
    ferry_server_config c;
    ferry_server_config_init(&c);
    c.port = 0;
    c.threads = threads;
    ferry_server *s;
    assert_int_equal(ferry_server_create(&c, &s), FERRY_OK);
    assert_int_equal(ferry_server_add_model(s, "mlp-s", NULL, m, e, b), FERRY_OK);
    assert_int_equal(ferry_server_start(s), FERRY_OK);
    return s;
}

static ferry_server *start_server(int threads)
{
    return start_server_with(threads, 0, 0);
}

/*
 * Rounds of `conns` connections x `requests` requests against one server.
 * About 128 connections on one HTTP thread, all sending at once, is what
 * stranded them (issue 14, defect 1: a thread that took 128 ready sockets
 * in one epoll_wait went back to sleep with them unserved, until the
 * connection timeout). Before the fix, 1 thread x 128 connections x 100
 * requests stalled in 7 of 10 rounds on the 2-core development machine,
 * 2 threads x 256 in 1 of 10; after it, none in hundreds.
 */
static void keepalive_run(int threads, int conns, long requests, long rounds)
{
    ferry_server *s = start_server(threads);
    size_t len;
    char *req = lc_infer_request("mlp-s", &len);
    assert_non_null(req);
    rounds *= env_long("FERRY_LOAD_ROUNDS", 1);
    for (long k = 0; k < rounds; k++) {
        lc_config cfg = {0};
        cfg.port = ferry_server_port(s);
        cfg.conns = conns;
        cfg.requests = requests;
        cfg.request = req;
        cfg.request_len = len;
        cfg.stall_ms = STALL_MS;
        cfg.deadline_s = 300;
        lc_result r;
        int rc = lc_run(&cfg, &r);
        char what[96];
        snprintf(what, sizeof what, "%d threads, %d connections, round %ld", threads, conns, k);
        report(what, &r);
        assert_int_equal(rc, 0);
        assert_int_equal(r.sent, (long)conns * requests);
        assert_int_equal(r.answered, r.sent);
        assert_int_equal(r.status_200, r.sent);
        assert_int_equal(r.conns_incomplete, 0);
    }
    free(req);
    assert_int_equal(ferry_server_stop(s), FERRY_OK);
    ferry_server_destroy(s);
}

static void test_keepalive_1_thread_128_connections(void **state)
{
    (void)state;
    keepalive_run(1, 128, 100, 3);
}

static void test_keepalive_2_threads_256_connections(void **state)
{
    (void)state;
    keepalive_run(2, 256, 50, 2);
}

static void test_keepalive_4_threads_512_connections(void **state)
{
    (void)state;
    keepalive_run(4, 512, 20, 1);
}

/* ------------------------------------------------------- half-closed */

/* Reads from fd until EOF or `limit_s`; returns the seconds it took (or a
 * negative number on timeout) and what came in buf. */
static double read_to_eof(int fd, char *buf, size_t cap, double limit_s)
{
    double t0 = lc_now();
    size_t len = 0;
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (lc_now() - t0 < limit_s) {
        ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            buf[len] = '\0';
            return lc_now() - t0;
        }
        if (k > 0 && len + (size_t)k < cap - 1)
            len += (size_t)k;
    }
    buf[len] = '\0';
    return -1;
}

/*
 * A client that half-closes (shutdown SHUT_WR) after a partial request, or
 * after a whole one, or with its keep-alive connection idle, has its
 * connection closed within a second or two, not at the connection timeout
 * (30 s): issue 14, defect 5 (libmicrohttpd misses a FIN that comes with
 * the last bytes it reads). A whole request sent before the FIN is still
 * answered first.
 */
static void test_half_closed_connections_close(void **state)
{
    (void)state;
    ferry_server *s = start_server(2);
    int port = ferry_server_port(s);
    static const char *cases[] = {
        "POST /v2/models/mlp-s/infer HTTP/1.1\r\nHost: x\r\n", /* partial headers */
        "POST /v2/models/mlp-s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        "POST /v2/models/mlp-s/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\n5\r\nab",
        "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n", /* whole: answered, then closed */
        "",                                                /* nothing */
    };
    enum { N = sizeof cases / sizeof *cases, EACH = 4 };
    int fds[N][EACH];
    for (int c = 0; c < N; c++) {
        for (int k = 0; k < EACH; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            assert_true(fd >= 0);
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
            size_t n = strlen(cases[c]);
            if (n)
                assert_int_equal(send(fd, cases[c], n, MSG_NOSIGNAL), (ssize_t)n);
            assert_int_equal(shutdown(fd, SHUT_WR), 0);
            fds[c][k] = fd;
        }
    }
    for (int c = 0; c < N; c++) {
        for (int k = 0; k < EACH; k++) {
            char buf[4096];
            double t = read_to_eof(fds[c][k], buf, sizeof buf, 5);
            if (t < 0)
                fail_msg("case %d: the server kept a half-closed connection open for 5 s", c);
            if (c == 3 && !strstr(buf, "HTTP/1.1 200"))
                fail_msg("a whole request before the FIN got '%s'", buf);
            close(fds[c][k]);
        }
    }
    assert_int_equal(ferry_server_stop(s), FERRY_OK);
    ferry_server_destroy(s);
}

/* ------------------------------------------------- metrics after resets */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* The value of a metric series of mlp-s in the /metrics text. */
/* A metric of model mlp-s, summed over its series (the failure counter
 * has one a reason). */
static long long metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s{model=\"mlp-s\"", name);
    long long sum = 0;
    int found = 0;
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        const char *v = strchr(p, '}');
        if (v) {
            sum += atoll(v + 1);
            found++;
        }
    }
    if (!found)
        fail_msg("no %s in /metrics", name);
    return sum;
}

static char *get_metrics(int port)
{
    int fd = connect_to(port);
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t k;
    while ((k = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        if ((len += (size_t)k) == cap - 1)
            buf = realloc(buf, cap *= 2);
    buf[len] = '\0';
    close(fd);
    return buf;
}

/*
 * Clients that reset their connections while their requests wait for a
 * batch, and a queue small enough to refuse some: every request is still
 * counted once in the server's counters and in the batcher's, so they agree
 * (issue 14, defect 6: a request whose client was gone when it completed
 * was counted by the batcher but not as a success or failure, because
 * MHD closed the connection without calling the handler again).
 */
static void test_metrics_agree_after_resets(void **state)
{
    (void)state;
    /* 20 ms batches: the resets come while the requests wait */
    ferry_server *s = start_server_with(2, 20000, 16);
    int port = ferry_server_port(s);
    size_t len;
    char *req = lc_infer_request("mlp-s", &len);
    assert_non_null(req);
    enum { CONNS = 48, ROUNDS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        int fds[CONNS];
        for (int i = 0; i < CONNS; i++) {
            fds[i] = connect_to(port);
            assert_int_equal(send(fds[i], req, len, MSG_NOSIGNAL), (ssize_t)len);
        }
        usleep(5000);
        for (int i = 0; i < CONNS; i++) {
            struct linger lg = {1, 0}; /* close with a reset */
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(fds[i]);
        }
    }
    free(req);
    /* until nothing is pending and the counts stop moving */
    char *m = NULL;
    long long last = -1;
    for (int k = 0; k < 100; k++) {
        usleep(100000);
        free(m);
        m = get_metrics(port);
        long long total =
            metric(m, "nv_inference_request_success") + metric(m, "nv_inference_request_failure");
        if (metric(m, "nv_inference_pending_request_count") == 0 && total == last)
            break;
        last = total;
    }
    long long ok = metric(m, "nv_inference_request_success");
    long long failed = metric(m, "nv_inference_request_failure");
    long long samples = metric(m, "nv_inference_count");
    long long refused = metric(m, "ferry_inference_requests_rejected_total");
    long long expired = metric(m, "ferry_inference_requests_expired_total");
    printf("after resets: success %lld, failure %lld; samples %lld, rejected %lld, expired %lld\n",
           ok, failed, samples, refused, expired);
    free(m);
    assert_true(ok + failed > 0);
    assert_int_equal(ok, samples); /* one sample a request */
    assert_int_equal(failed, refused + expired);
    assert_int_equal(ferry_server_stop(s), FERRY_OK);
    ferry_server_destroy(s);
}

/* ------------------------------------------------------ SIGTERM under load */

typedef struct serve_proc {
    pid_t pid;
    int err_fd; /* its stderr */
    int port;
    char log[8192];
    size_t log_len;
} serve_proc;

/* Reads the child's stderr until "listening on port N" (or it ends). */
static void serve_start(serve_proc *p, const char *threads)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execl(FERRY_CLI, FERRY_CLI, "serve", MODEL_PATH, "--port", "0", "--threads", threads,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->err_fd = fds[0];
    p->port = 0;
    p->log_len = 0;
    while (p->log_len < sizeof p->log - 1) {
        ssize_t k = read(p->err_fd, p->log + p->log_len, sizeof p->log - 1 - p->log_len);
        if (k <= 0)
            break;
        p->log_len += (size_t)k;
        p->log[p->log_len] = '\0';
        const char *l = strstr(p->log, "listening on port ");
        if (l && strchr(l, '\n')) {
            p->port = atoi(l + 18);
            break;
        }
    }
    if (p->port <= 0)
        fail_msg("ferry serve did not start: %s", p->log);
}

static void send_sigterm(void *arg)
{
    serve_proc *p = arg;
    kill(p->pid, SIGTERM);
}

/*
 * SIGTERM to `ferry serve` after 2.5 s of load from `conns` keep-alive
 * connections that go on sending through the stop, as wrk does. Every
 * request sent before the signal is answered: 200, or 503 with
 * Connection: close; none is left unanswered or cut off; the process exits
 * 0 within EXIT_AFTER_LAST_ANSWER_S of its last answer. (Defect 2 of issue
 * 14 was defect 1 meeting the stop: a thread asleep with its connections
 * unserved was not woken by MHD_quiesce_daemon, so their requests waited
 * out the 10 s grace and were dropped; this run catches it only when a
 * stall is under way at the signal, as in 1 of 12 runs then.)
 */
static void sigterm_run(const char *threads, int conns)
{
    serve_proc p;
    serve_start(&p, threads);
    size_t len;
    char *req = lc_infer_request("mlp-s", &len);
    assert_non_null(req);
    lc_config cfg = {0};
    cfg.port = p.port;
    cfg.conns = conns;
    cfg.request = req;
    cfg.request_len = len;
    cfg.stall_ms = STALL_MS;
    cfg.deadline_s = 60;
    cfg.event = send_sigterm;
    cfg.event_arg = &p;
    cfg.event_at_s = (double)env_long("FERRY_LOAD_SIGTERM_MS", 2500) / 1000;
    lc_result r;
    int rc = lc_run(&cfg, &r);
    char what[96];
    snprintf(what, sizeof what, "SIGTERM at %.1f s, %s threads, %d connections", cfg.event_at_s,
             threads, conns);
    report(what, &r);
    free(req);

    int status = 0;
    pid_t w;
    while ((w = waitpid(p.pid, &status, WNOHANG)) == 0 && lc_now() - r.start < r.t_end + 30)
        usleep(1000);
    double exit_after = lc_now() - (r.start + r.t_last_answer);
    char rest[4096];
    ssize_t k = read(p.err_fd, rest, sizeof rest - 1);
    rest[k > 0 ? k : 0] = '\0';
    close(p.err_fd);
    if (w == 0) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, &status, 0);
        fail_msg("ferry serve still runs 30 s after SIGTERM: %s", rest);
    }
    printf("ferry serve exited %.3f s after its last answer (bound %.1f s), %.3f s after "
           "the signal\n",
           exit_after, EXIT_AFTER_LAST_ANSWER_S, exit_after + r.t_last_answer - r.t_event);
    assert_int_equal(rc, 0);
    assert_true(r.status_200 > 0);
    assert_int_equal(r.unanswered, 0);
    assert_int_equal(r.bad_responses, 0);
    assert_int_equal(r.status_other, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(exit_after < EXIT_AFTER_LAST_ANSWER_S);
}

static void test_sigterm_under_load_2_threads(void **state)
{
    (void)state;
    sigterm_run("2", 256);
}

static void test_sigterm_under_load_4_threads(void **state)
{
    (void)state;
    sigterm_run("4", 512);
}

int main(void)
{
    /* as `ferry serve` does: the HTTP threads keep the cores busy */
    setenv("FERRY_CPU_THREADS", "1", 0);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_1_thread_128_connections),
        cmocka_unit_test(test_keepalive_2_threads_256_connections),
        cmocka_unit_test(test_keepalive_4_threads_512_connections),
        cmocka_unit_test(test_half_closed_connections_close),
        cmocka_unit_test(test_metrics_agree_after_resets),
        cmocka_unit_test(test_sigterm_under_load_2_threads),
        cmocka_unit_test(test_sigterm_under_load_4_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
