/*
 * http_load.c - SIGTERM under load, counted per request: starts a server
 * command (`ferry serve ... --port 0`, which prints "listening on port N"),
 * drives it with keep-alive connections that each send one mlp-s infer
 * request after another (tests/server/load_client.h), sends SIGTERM after
 * a while, and reports, per run: requests answered (200 / 503), requests
 * sent before the signal and never answered, and how long the process took
 * to exit after its last answer and after the signal. wrk cannot say
 * these: it does not count a request that never completes.
 *
 * Build (no Ferry library needed):
 *   cc -O2 -D_GNU_SOURCE bench/http_load.c -o /tmp/http_load
 * Run:
 *   /tmp/http_load [-c CONNS] [-s SECONDS_BEFORE_SIGTERM] [-n RUNS] \
 *       -- build/ferry serve build/models/mlp-s.onnx --port 0
 * With -s 0 there is no signal: the run lasts -d seconds (default 10) and
 * reports connections that waited over 2 s for an answer (stalls).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "../tests/server/load_client.h"

typedef struct child {
    pid_t pid;
    int err_fd;
    int port;
} child;

static int start(char **argv, child *c)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    c->pid = fork();
    if (c->pid < 0)
        return -1;
    if (c->pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    c->err_fd = fds[0];
    char log[8192];
    size_t len = 0;
    c->port = 0;
    while (len < sizeof log - 1) {
        ssize_t k = read(c->err_fd, log + len, sizeof log - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        log[len] = '\0';
        const char *l = strstr(log, "listening on port ");
        if (l && strchr(l, '\n')) {
            c->port = atoi(l + 18);
            return 0;
        }
    }
    fprintf(stderr, "http_load: the server did not start:\n%s\n", log);
    return -1;
}

static void sigterm(void *arg)
{
    kill(((child *)arg)->pid, SIGTERM);
}

int main(int argc, char **argv)
{
    int conns = 256, runs = 1;
    double at = 3, duration = 10;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (i + 1 >= argc)
            break;
        if (!strcmp(argv[i], "-c"))
            conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s"))
            at = atof(argv[++i]);
        else if (!strcmp(argv[i], "-n"))
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d"))
            duration = atof(argv[++i]);
    }
    if (i >= argc - 1) {
        fprintf(stderr, "usage: http_load [-c CONNS] [-s SECONDS] [-n RUNS] [-d SECONDS] -- "
                        "SERVER COMMAND...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char **cmd = argv + i + 1;
    size_t len = 0;
    char *req = lc_infer_request("mlp-s", &len);
    if (!req)
        return 1;
    int bad_runs = 0;
    for (int run = 0; run < runs; run++) {
        child c;
        if (start(cmd, &c) != 0)
            return 1;
        lc_config cfg = {0};
        cfg.port = c.port;
        cfg.conns = conns;
        cfg.request = req;
        cfg.request_len = len;
        cfg.deadline_s = at > 0 ? at + 60 : duration + 60;
        if (at > 0) {
            cfg.stall_ms = 30000; /* the report counts unanswered requests, not waits */
            cfg.event = sigterm;
            cfg.event_arg = &c;
            cfg.event_at_s = at;
        } else {
            cfg.stall_ms = 2000;
            cfg.duration_s = duration;
        }
        lc_result r;
        int rc = lc_run(&cfg, &r);
        if (at <= 0)
            kill(c.pid, SIGTERM);
        int status = 0;
        pid_t w;
        while ((w = waitpid(c.pid, &status, WNOHANG)) == 0 && lc_now() - r.start < r.t_end + 30)
            usleep(1000);
        double t_exit = lc_now() - r.start;
        if (w == 0) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, &status, 0);
        }
        close(c.err_fd);
        bad_runs += rc != 0;
        if (at > 0)
            printf("run %d: %d conns, SIGTERM at %.1f s: answered %ld (200: %ld, 503: %ld, "
                   "other: %ld), unanswered before the signal %ld (after: %ld), bad %ld; "
                   "exit %.3f s after the last answer, %.3f s after the signal, status %d%s\n",
                   run, conns, r.t_event, r.answered, r.status_200, r.status_503, r.status_other,
                   r.unanswered, r.unanswered_after, r.bad_responses, t_exit - r.t_last_answer,
                   t_exit - r.t_event, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                   w == 0 ? " (killed)" : "");
        else
            printf("run %d: %d conns, %.0f s: answered %ld (%.0f/s), stalled connections "
                   "(no answer for 2 s) %d, longest wait %.0f ms\n",
                   run, conns, duration, r.answered, r.answered / duration, r.conns_stalled,
                   r.max_wait_ms);
        fflush(stdout);
    }
    free(req);
    printf("runs with a problem: %d of %d\n", bad_runs, runs);
    return bad_runs ? 1 : 0;
}
