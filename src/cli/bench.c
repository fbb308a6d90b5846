/*
 * bench.c - `ferry bench`: the batching-vs-threading findings of the Python
 * examples Ferry grows from, measured for any ONNX model:
 *   sweep      one caller, batch b, synchronous runs: samples/s and latency
 *   threading  N callers, batch 1 each, on one engine
 *   stack      baseline (8 threads x batch 1, fp32, whole-device sync) and the
 *              optimizations one by one: batching, pipelining, precision,
 *              graph capture
 *   batcher    closed-loop single-sample requests through the dynamic batcher
 * Each point is measured --repeat times and reported as the median run with
 * its spread (bench_report.c prints the tables, --json and --plot).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "batcher/bench.h"
#include "cli/bench.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/error.h"
#include "util/timeutil.h"

typedef bench_opts opts;

/* Defaults: three runs of 0.5 s a point keep `make bench` (sweep, threading,
 * stack) near half a minute on two cores, as one run of 1 s was before. */
#define DEF_DURATION 0.5
#define DEF_REPEAT 3
#define DEF_STABILITY 10.0 /* percent, perf_analyzer's --stability-percentage default */

/* One run of a sweep point. */
typedef struct sweep_run {
    double sps, p50, p90, p99;
} sweep_run;

/* ------------------------------------------------------------ progress */

static int prog_total, prog_done;
static int prog_tty;

static void progress(const opts *o, const char *what)
{
    if (o->quiet)
        return;
    int width = 28, filled = prog_total ? prog_done * width / prog_total : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    if (prog_tty)
        fprintf(stderr, "\r[%s] %d/%d %-40.40s", bar, prog_done, prog_total, what);
    else
        fprintf(stderr, "[%s] %d/%d %s\n", bar, prog_done, prog_total, what);
    fflush(stderr);
}

static void progress_end(const opts *o)
{
    if (!o->quiet && prog_tty)
        fprintf(stderr, "\r%-80s\r", "");
}

/* ------------------------------------------------------------ helpers */

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return 0;
    int k = (int)ceil(p / 100.0 * n) - 1;
    return v[k < 0 ? 0 : (k >= n ? n - 1 : k)];
}

/* Caller buffers for a batch of up to n samples, from a pool so that on a
 * GPU they are pinned (the pool falls back to host memory without one). */
typedef struct io_bufs {
    ferry_pool *pool_in[CLI_MAX_IO], *pool_out[CLI_MAX_IO];
    ferry_tensor in[CLI_MAX_IO], out[CLI_MAX_IO];
    int n_in, n_out;
} io_bufs;

static void io_free(io_bufs *b)
{
    for (int i = 0; i < b->n_in; i++) {
        if (b->pool_in[i]) {
            ferry_pool_release(b->pool_in[i], &b->in[i]);
            ferry_pool_destroy(b->pool_in[i]);
        }
    }
    for (int i = 0; i < b->n_out; i++) {
        if (b->pool_out[i]) {
            ferry_pool_release(b->pool_out[i], &b->out[i]);
            ferry_pool_destroy(b->pool_out[i]);
        }
    }
    memset(b, 0, sizeof *b);
}

static ferry_status io_alloc(ferry_engine *e, const ferry_model *m, int64_t n, io_bufs *b)
{
    ferry_status st;
    memset(b, 0, sizeof *b);
    b->n_in = ferry_model_num_inputs(m);
    b->n_out = ferry_model_num_outputs(m);
    const ferry_engine_config *cfg = ferry_engine_get_config(e);
    for (int i = 0; i < b->n_in; i++) {
        ferry_tensor_info ti;
        ferry_model_input(m, i, &ti);
        ferry_tensor t = {.dtype = ti.dtype == FERRY_F32 ? cfg->io_dtype : ti.dtype,
                          .ndim = ti.ndim};
        for (int d = 0; d < ti.ndim; d++)
            t.shape[d] = ti.shape[d] == FERRY_DIM_BATCH ? n : ti.shape[d];
        if ((st = ferry_pool_create(t.shape, t.ndim, t.dtype, "pinned", 1, &b->pool_in[i])) ||
            (st = ferry_pool_acquire(b->pool_in[i], 0, &b->in[i]))) {
            io_free(b);
            return st;
        }
        /* random data: zeros would flatter the hardware */
        cli_random_fill(m, i, &b->in[i], 12345u);
    }
    for (int i = 0; i < b->n_out; i++) {
        ferry_tensor t;
        ferry_engine_output_info(e, i, n, &t);
        if ((st = ferry_pool_create(t.shape, t.ndim, t.dtype, "pinned", 1, &b->pool_out[i])) ||
            (st = ferry_pool_acquire(b->pool_out[i], 0, &b->out[i]))) {
            io_free(b);
            return st;
        }
    }
    return FERRY_OK;
}

/* Views of the first n samples of b. */
static void io_view(const io_bufs *b, int64_t n, ferry_tensor *in, ferry_tensor *out)
{
    for (int i = 0; i < b->n_in; i++) {
        in[i] = b->in[i];
        in[i].shape[0] = n;
    }
    for (int i = 0; i < b->n_out; i++) {
        out[i] = b->out[i];
        out[i].shape[0] = n;
    }
}

static ferry_status make_engine(const opts *o, const ferry_model *m, int workers, int max_batch,
                                int depth, ferry_precision prec, int graphs, ferry_sync sync,
                                ferry_engine **out)
{
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = o->device;
    cfg.workers = workers;
    cfg.max_batch = max_batch;
    cfg.pipeline_depth = depth;
    cfg.precision = prec;
    cfg.graphs = graphs;
    cfg.sync = sync;
    cfg.io_dtype = o->io_dtype;
    ferry_status st = ferry_engine_create(m, &cfg, out);
    if (st == FERRY_OK && (st = ferry_engine_warmup(*out)) != FERRY_OK) {
        ferry_engine_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* ------------------------------------------------------------ sweep */

/* Pipelined sweep point: one caller keeps `inflight` batches of n queued
 * with ferry_engine_submit, each in its own caller buffers, so that one
 * batch's copies overlap another's compute. Latency is submit -> callback. */
typedef struct flight {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int *free_idx, n_free;
    int64_t *t_sub;
    double *lat;
    size_t n_lat, cap;
    ferry_status err;
} flight;

typedef struct flight_arg {
    flight *f;
    int idx;
} flight_arg;

static void flight_done(void *user, ferry_status st)
{
    flight_arg *a = user;
    flight *f = a->f;
    int64_t now = ferry_now_us();
    pthread_mutex_lock(&f->mu);
    if (st != FERRY_OK && f->err == FERRY_OK)
        f->err = st;
    if (f->n_lat < f->cap)
        f->lat[f->n_lat++] = (double)(now - f->t_sub[a->idx]);
    f->free_idx[f->n_free++] = a->idx;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static ferry_status sweep_pipelined(const opts *o, ferry_engine *e, const ferry_model *m, int64_t n,
                                    double *lat, size_t cap, sweep_run *pt)
{
    int k = o->inflight;
    io_bufs *b = calloc((size_t)k, sizeof *b);
    flight_arg *args = calloc((size_t)k, sizeof *args);
    flight f = {.free_idx = calloc((size_t)k, sizeof(int)),
                .t_sub = calloc((size_t)k, sizeof(int64_t)),
                .lat = lat,
                .cap = cap};
    ferry_status st = (b && args && f.free_idx && f.t_sub) ? FERRY_OK : FERRY_ENOMEM;
    int made = 0;
    for (; st == FERRY_OK && made < k; made++)
        st = io_alloc(e, m, n, &b[made]);
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    for (int i = 0; i < made; i++) {
        f.free_idx[f.n_free++] = i;
        args[i] = (flight_arg){.f = &f, .idx = i};
    }
    uint64_t done_batches = 0;
    int64_t t0 = 0, limit = (int64_t)(o->duration * 1e6), warm = 2 * (int64_t)k;
    for (int64_t it = 0; st == FERRY_OK; it++) {
        pthread_mutex_lock(&f.mu);
        while (f.n_free == 0)
            pthread_cond_wait(&f.cv, &f.mu);
        int i = f.free_idx[--f.n_free];
        if (it == warm) { /* the clock starts once the pipeline is full */
            t0 = ferry_now_us();
            f.n_lat = 0;
        }
        ferry_status err = f.err;
        pthread_mutex_unlock(&f.mu);
        if (err != FERRY_OK) {
            st = err;
            break;
        }
        if (it >= warm) {
            if (ferry_now_us() - t0 >= limit && done_batches >= 3) {
                pthread_mutex_lock(&f.mu);
                f.free_idx[f.n_free++] = i; /* not submitted: give it back */
                pthread_mutex_unlock(&f.mu);
                break;
            }
            done_batches++;
        }
        f.t_sub[i] = ferry_now_us();
        st =
            ferry_engine_submit(e, b[i].in, b[i].n_in, b[i].out, b[i].n_out, flight_done, &args[i]);
        if (st != FERRY_OK) {
            pthread_mutex_lock(&f.mu);
            f.free_idx[f.n_free++] = i;
            pthread_mutex_unlock(&f.mu);
        }
    }
    /* drain */
    pthread_mutex_lock(&f.mu);
    while (f.n_free < made)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    int64_t t1 = ferry_now_us();
    if (st == FERRY_OK && f.err != FERRY_OK)
        st = f.err;
    bench_sort(lat, f.n_lat);
    pt->sps = t0 ? (double)n * (double)done_batches / ((double)(t1 - t0) / 1e6) : 0;
    pt->p50 = pct(lat, (int)f.n_lat, 50);
    pt->p90 = pct(lat, (int)f.n_lat, 90);
    pt->p99 = pct(lat, (int)f.n_lat, 99);
    for (int i = 0; i < made; i++)
        io_free(&b[i]);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
    free(f.free_idx);
    free(f.t_sub);
    free(args);
    free(b);
    return st;
}

/* One synchronous run of batch n: back-to-back ferry_engine_run calls for
 * o->duration seconds (at least 3). */
static ferry_status sweep_sync(const opts *o, ferry_engine *e, const io_bufs *b, int64_t n,
                               double *lat, size_t cap, sweep_run *run)
{
    ferry_tensor in[CLI_MAX_IO], out[CLI_MAX_IO];
    io_view(b, n, in, out);
    ferry_status st = FERRY_OK;
    for (int w = 0; w < 3 && st == FERRY_OK; w++)
        st = ferry_engine_run(e, in, b->n_in, out, b->n_out);
    size_t cnt = 0;
    int64_t t0 = ferry_now_us(), t1 = t0, limit = (int64_t)(o->duration * 1e6);
    while (st == FERRY_OK && (t1 - t0 < limit || cnt < 3) && cnt < cap) {
        int64_t a = ferry_now_us();
        st = ferry_engine_run(e, in, b->n_in, out, b->n_out);
        t1 = ferry_now_us();
        lat[cnt++] = (double)(t1 - a);
    }
    bench_sort(lat, cnt);
    run->sps = (double)n * (double)cnt / ((double)(t1 - t0) / 1e6);
    run->p50 = pct(lat, (int)cnt, 50);
    run->p90 = pct(lat, (int)cnt, 90);
    run->p99 = pct(lat, (int)cnt, 99);
    return st;
}

static ferry_status run_sweep(const opts *o, const ferry_model *m, bench_point *pts)
{
    int64_t maxb = 1;
    for (int i = 0; i < o->n_sizes; i++)
        if (o->sizes[i] > maxb)
            maxb = o->sizes[i];
    ferry_engine *e;
    int chunk = o->max_batch ? o->max_batch : (int)maxb;
    ferry_status st = make_engine(o, m, o->workers, chunk, o->inflight > 2 ? o->inflight : 2,
                                  o->precision, o->graphs, FERRY_SYNC_EVENT, &e);
    if (st != FERRY_OK)
        return st;
    io_bufs b;
    if ((st = io_alloc(e, m, maxb, &b)) != FERRY_OK) {
        ferry_engine_destroy(e);
        return st;
    }
    size_t cap = 1 << 20;
    double *lat = malloc(cap * sizeof *lat);
    if (!lat)
        st = FERRY_ENOMEM;
    for (int k = 0; k < o->n_sizes && st == FERRY_OK; k++) {
        int64_t n = o->sizes[k];
        char what[64];
        snprintf(what, sizeof what, "sweep: batch %lld", (long long)n);
        progress(o, what);
        double p50[BENCH_MAX_REPEAT], p90[BENCH_MAX_REPEAT], p99[BENCH_MAX_REPEAT];
        bench_point *pt = &pts[k];
        pt->batch = n;
        pt->sps.n = 0;
        for (int r = 0; r < o->repeat && st == FERRY_OK; r++) {
            sweep_run run = {0};
            if (o->inflight > 1 && n <= chunk)
                st = sweep_pipelined(o, e, m, n, lat, cap, &run);
            else
                st = sweep_sync(o, e, &b, n, lat, cap, &run);
            pt->sps.run[pt->sps.n++] = run.sps;
            p50[r] = run.p50;
            p90[r] = run.p90;
            p99[r] = run.p99;
        }
        bench_measure_finish(&pt->sps, o->stability);
        pt->p50 = bench_median(p50, pt->sps.n);
        pt->p90 = bench_median(p90, pt->sps.n);
        pt->p99 = bench_median(p99, pt->sps.n);
        prog_done++;
    }
    free(lat);
    io_free(&b);
    ferry_engine_destroy(e);
    return st;
}

/* ------------------------------------------------------------ threads */

typedef struct tctx {
    ferry_engine *e;
    const ferry_model *m;
    int64_t batch;
    int depth; /* batches per run_many call (1: plain run) */
    atomic_int *go;
    atomic_int *stop;
    atomic_int *running; /* clients still in their loop */
    uint64_t samples;
    ferry_status st;
    char err[256];
} tctx;

static void *client_main(void *arg)
{
    tctx *c = arg;
    io_bufs b[8];
    int nb = c->depth < 1 ? 1 : (c->depth > 8 ? 8 : c->depth);
    int made = 0;
    for (; made < nb; made++)
        if ((c->st = io_alloc(c->e, c->m, c->batch, &b[made])) != FERRY_OK)
            break;
    ferry_tensor in[8 * CLI_MAX_IO], out[8 * CLI_MAX_IO];
    int n_in = made ? b[0].n_in : 0, n_out = made ? b[0].n_out : 0;
    for (int k = 0; k < made; k++)
        io_view(&b[k], c->batch, in + k * n_in, out + k * n_out);
    while (!atomic_load(c->go))
        ;
    while (c->st == FERRY_OK && !atomic_load_explicit(c->stop, memory_order_relaxed)) {
        if (nb == 1)
            c->st = ferry_engine_run(c->e, in, n_in, out, n_out);
        else
            c->st = ferry_engine_run_many(c->e, nb, in, n_in, out, n_out);
        if (c->st == FERRY_OK)
            c->samples += (uint64_t)(c->batch * nb);
    }
    atomic_fetch_sub(c->running, 1);
    if (c->st != FERRY_OK)
        snprintf(c->err, sizeof c->err, "%s", ferry_last_error());
    for (int k = 0; k < made; k++)
        io_free(&b[k]);
    return NULL;
}

/* threads callers, each running `batch` samples (depth batches per call). */
static ferry_status measure_threads(const opts *o, ferry_engine *e, const ferry_model *m,
                                    int threads, int64_t batch, int depth, double *sps)
{
    atomic_int go = 0, stop = 0, running = threads;
    tctx *c = calloc((size_t)threads, sizeof *c);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!c || !t) {
        free(c);
        free(t);
        return FERRY_ENOMEM;
    }
    for (int i = 0; i < threads; i++) {
        c[i] = (tctx){.e = e,
                      .m = m,
                      .batch = batch,
                      .depth = depth,
                      .go = &go,
                      .stop = &stop,
                      .running = &running};
        pthread_create(&t[i], NULL, client_main, &c[i]);
    }
    atomic_store(&go, 1);
    /* a short warm period, then count */
    usleep((useconds_t)(o->duration * 1e6 * 0.1));
    uint64_t s0 = 0;
    for (int i = 0; i < threads; i++)
        s0 += __atomic_load_n(&c[i].samples, __ATOMIC_RELAXED);
    int64_t t0 = ferry_now_us();
    uint64_t s1 = s0;
    /* a window in which no call completed (a slow model, or clients still
     * setting up: short --duration, sanitizer builds) measures nothing:
     * extend it, while the clients run */
    for (int extra = 0; s1 == s0 && extra < 20 && atomic_load(&running) > 0; extra++) {
        usleep((useconds_t)(o->duration * 1e6));
        s1 = 0;
        for (int i = 0; i < threads; i++)
            s1 += __atomic_load_n(&c[i].samples, __ATOMIC_RELAXED);
    }
    int64_t t1 = ferry_now_us();
    atomic_store(&stop, 1);
    ferry_status st = FERRY_OK;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (c[i].st != FERRY_OK && st == FERRY_OK) {
            st = c[i].st;
            ferry_fail(st, "%s", c[i].err);
        }
    }
    *sps = (double)(s1 - s0) / ((double)(t1 - t0) / 1e6);
    free(c);
    free(t);
    return st;
}

/* Measures one engine --repeat times with `threads` callers into m. */
static ferry_status measure_repeated(const opts *o, ferry_engine *e, const ferry_model *m,
                                     int threads, int64_t batch, int depth, bench_measure *out)
{
    ferry_status st = FERRY_OK;
    out->n = 0;
    for (int r = 0; r < o->repeat && st == FERRY_OK; r++)
        st = measure_threads(o, e, m, threads, batch, depth, &out->run[out->n++]);
    bench_measure_finish(out, o->stability);
    return st;
}

static ferry_status run_threading(const opts *o, const ferry_model *m, bench_point *thr, int *n_thr)
{
    *n_thr = 0;
    for (int k = 0; k < o->n_threads; k++) {
        int64_t n = o->threads[k];
        char what[64];
        snprintf(what, sizeof what, "threading: %lld threads x batch 1", (long long)n);
        progress(o, what);
        ferry_engine *e;
        ferry_status st = make_engine(o, m, (int)n, 1, 1, o->precision, 0, FERRY_SYNC_EVENT, &e);
        if (st != FERRY_OK)
            return st;
        thr[*n_thr].batch = n;
        st = measure_repeated(o, e, m, (int)n, 1, 1, &thr[*n_thr].sps);
        ferry_engine_destroy(e);
        if (st != FERRY_OK)
            return st;
        (*n_thr)++;
        prog_done++;
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------ stack */

static ferry_status run_stack(const opts *o, const ferry_model *m, bench_stack_row *rows)
{
    static const struct {
        const char *step, *config;
        int threads, batch, depth, reduced, graphs;
        ferry_sync sync;
    } steps[BENCH_STACK_ROWS] = {
        {"baseline", "%d threads x batch 1, fp32, device sync", 8, 1, 1, 0, 0, FERRY_SYNC_DEVICE},
        {"+ dynamic batch sizing", "2 workers x batch 32", 2, 32, 1, 0, 0, FERRY_SYNC_DEVICE},
        {"+ pipelining", "depth 8, per-batch events", 2, 32, 8, 0, 0, FERRY_SYNC_EVENT},
        {"+ reduced precision", "", 2, 32, 8, 1, 0, FERRY_SYNC_EVENT},
        {"+ graph capture", "CUDA graph per batch size", 2, 32, 8, 1, 1, FERRY_SYNC_EVENT},
    };
    int cuda = !strncmp(o->device, "cuda", 4);
    ferry_precision reduced = cuda ? FERRY_PRECISION_FP16 : FERRY_PRECISION_BF16;
    int reduced_ok = 1;
    for (int k = 0; k < BENCH_STACK_ROWS; k++) {
        bench_stack_row *r = &rows[k];
        r->step = steps[k].step;
        int threads = k == 0 ? o->baseline_threads : steps[k].threads;
        snprintf(r->config, sizeof r->config, steps[k].config, threads);
        if (k == 3)
            snprintf(r->config, sizeof r->config, "%s", cuda ? "fp16" : "bf16");
        r->skipped[0] = '\0';
        r->sps.n = 0;
        progress(o, r->step);
        ferry_precision prec = steps[k].reduced && reduced_ok ? reduced : FERRY_PRECISION_FP32;
        ferry_engine *e;
        ferry_status st = make_engine(o, m, threads, steps[k].batch, steps[k].depth, prec,
                                      steps[k].graphs, steps[k].sync, &e);
        if (st == FERRY_EUNSUPPORTED) {
            /* the reason without the context prefix and the detail after ';' */
            const char *msg = ferry_last_error(), *colon = strstr(msg, "): ");
            snprintf(r->skipped, sizeof r->skipped, "%s", colon ? colon + 3 : msg);
            char *semi = strchr(r->skipped, ';');
            if (semi)
                *semi = '\0';
            if (k == 3)
                reduced_ok = 0;
            prog_done++;
            continue;
        }
        if (st != FERRY_OK)
            return st;
        st = measure_repeated(o, e, m, threads, steps[k].batch, steps[k].depth, &r->sps);
        ferry_engine_destroy(e);
        if (st != FERRY_OK)
            return st;
        prog_done++;
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------ batcher */

static ferry_status run_batcher(const opts *o, const ferry_model *m, bench_batcher_row *rows)
{
    ferry_engine *e;
    int cuda = !strncmp(o->device, "cuda", 4);
    /* Serving defaults (as ferry serve): one CPU worker, whose backend spreads
     * each GEMM over the cores, lets batches grow; 4 streams on CUDA. */
    int workers = o->workers ? o->workers : (cuda ? 4 : 1);
    int max_batch = o->max_batch ? o->max_batch : 256;
    ferry_status st = make_engine(o, m, workers, max_batch, cuda ? 4 : 2, o->precision, cuda,
                                  FERRY_SYNC_EVENT, &e);
    if (st != FERRY_OK)
        return st;
    for (int k = 0; k < o->n_conc && st == FERRY_OK; k++) {
        char what[64];
        snprintf(what, sizeof what, "batcher: concurrency %lld", (long long)o->conc[k]);
        progress(o, what);
        ferry_batcher_config bc;
        ferry_batcher_config_init(&bc);
        ferry_batcher *b;
        if ((st = ferry_batcher_create(e, &bc, &b)) != FERRY_OK)
            break;
        bench_batcher_row *row = &rows[k];
        row->conc = o->conc[k];
        row->rps.n = 0;
        double p50[BENCH_MAX_REPEAT], p99[BENCH_MAX_REPEAT], mean_batch[BENCH_MAX_REPEAT];
        for (int r = 0; r < o->repeat && st == FERRY_OK; r++) {
            /* A window shorter than one batch (a CNN at 64 clients on two
             * cores) completes nothing: measure again over a longer one. */
            double dur = o->duration, rps = 0;
            for (int tries = 0; tries < 3; tries++, dur *= 4) {
                st = batcher_bench_closed_loop(b, (int)o->conc[k], dur, &rps, &p50[r], &p99[r],
                                               &mean_batch[r]);
                if (st != FERRY_OK || rps > 0)
                    break;
            }
            row->rps.run[row->rps.n++] = rps;
        }
        bench_measure_finish(&row->rps, o->stability);
        row->p50 = bench_median(p50, row->rps.n);
        row->p99 = bench_median(p99, row->rps.n);
        row->mean_batch = bench_median(mean_batch, row->rps.n);
        ferry_batcher_destroy(b);
        prog_done++;
    }
    ferry_engine_destroy(e);
    return st;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry bench [MODEL.onnx] [options]\n"
            "\n"
            "Measures what batching buys over threading. Without options: the sweep, the\n"
            "threading comparison and the optimization stack, on the bundled mlp-s model and\n"
            "the best device present (CUDA if there is one, else the CPU).\n"
            "\n"
            "Each point is measured --repeat times and shown as the median run with its\n"
            "spread, (max - min) / min; a point whose runs differ by more than\n"
            "--stability-percentage is flagged '*' in the table and \"stable\": false in the\n"
            "JSON (perf_analyzer's stability rule).\n"
            "\n"
            "sections (any combination; default: sweep + --compare-threading + --stack):\n"
            "  --sweep                the batch-size sweep only (it always runs)\n"
            "  --batch-sizes LIST     batch sizes of the sweep (default 1,4,8,16,32,256)\n"
            "  --compare-threading    N callers x batch 1 for each N in --threads\n"
            "  --threads LIST         caller counts of --compare-threading (default: the batch\n"
            "                         sizes up to 64); the largest given is also the stack\n"
            "                         baseline's (default 8), as bench/torch_reference.py\n"
            "  --stack                baseline, then + batching, + pipelining, + reduced\n"
            "                         precision, + graph capture (each with its gain)\n"
            "  --latency              p50/p90/p99 per batch size in the sweep table\n"
            "  --batcher              closed-loop single-sample requests through the dynamic\n"
            "                         batcher at each --concurrency (default 1,16,64,256,1024)\n"
            "\n"
            "measurement:\n"
            "  --duration S           seconds per run (default %.1f)\n"
            "  --repeat N             runs per point (default %d, at most %d)\n"
            "  --stability-percentage P  flag a point whose runs differ by more than P%%\n"
            "                         (default %g)\n"
            "  --device DEV           cpu, cuda, cuda:N (default: cuda if present, else cpu)\n"
            "  --precision P          fp32 (default), tf32, fp16, bf16 for sweep/threading\n"
            "  --io-dtype T           dtype of the caller's tensors: f32 (default), f16, bf16\n"
            "  --workers N            engine workers (CPU threads or CUDA streams) of the\n"
            "                         sweep (default: one per core this process may use on\n"
            "                         the CPU, 2 streams on CUDA) and of --batcher (default:\n"
            "                         1 on the CPU, 4 streams on CUDA, as ferry serve)\n"
            "  --max-batch N          sweep: chunk size a batch is split into (default: the\n"
            "                         largest batch size, i.e. no split); batcher: the\n"
            "                         largest batch it forms (default 256)\n"
            "  --graphs               sweep: capture CUDA graphs per batch size\n"
            "  --inflight K           sweep: keep K batches in flight (asynchronous submit)\n"
            "                         instead of one synchronous call at a time (default 1)\n"
            "\n"
            "output (checked before measuring: a file that cannot be written stops the run\n"
            "at once; one that fails at the end exits 1 with the reason):\n"
            "  --json FILE            write all results as JSON\n"
            "  --plot FILE.svg        throughput vs batch size, batching and threading, as\n"
            "                         SVG (the only format written: another name is refused)\n"
            "  --quiet                no progress bar\n"
            "\n"
            "examples (from the repository root, after `make`):\n"
            "  ./build/ferry bench\n"
            "  ./build/ferry bench build/models/mlp-s.onnx --batch-sizes 1,32,256 --latency \\\n"
            "      --json bench.json --plot bench.svg\n"
            "  ./build/ferry bench --batcher --concurrency 1,16,64 --repeat 5\n"
            "\n"
            "PyTorch side by side: bench/compare.py runs this and bench/torch_reference.py on\n"
            "the same weights in one run and prints the ratios.\n",
            DEF_DURATION, DEF_REPEAT, BENCH_MAX_REPEAT, DEF_STABILITY);
}

static int best_device(char *buf, size_t len)
{
    char desc[2048];
    ferry_backends_describe(desc, sizeof desc);
    /* a "cuda:0 ..." device line means a usable GPU */
    if (strstr(desc, "cuda:0")) {
        snprintf(buf, len, "cuda");
        return 1;
    }
    snprintf(buf, len, "cpu");
    return 0;
}

/* Parses a LIST option (--batch-sizes, --threads, --concurrency): positive
 * integers up to hi, each once. */
static int parse_list(const char *opt, const char *v, int64_t hi, int64_t *out, int *n)
{
    if ((*n = cli_parse_int_list(v, out, BENCH_MAX_SIZES)) < 0) {
        fprintf(stderr,
                "ferry bench: %s '%s': expected up to %d positive integers, comma-separated "
                "(e.g. 1,8,32)\n",
                opt, v, BENCH_MAX_SIZES);
        return -1;
    }
    for (int i = 0; i < *n; i++) {
        if (out[i] > hi) {
            fprintf(stderr, "ferry bench: %s '%s': %lld is more than %lld\n", opt, v,
                    (long long)out[i], (long long)hi);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (out[j] == out[i]) {
                fprintf(stderr, "ferry bench: %s '%s': %lld is given twice\n", opt, v,
                        (long long)out[i]);
                return -1;
            }
    }
    return 0;
}

/* "x.svg" or "X.SVG". */
static bool svg_name(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && !strcasecmp(path + n - 4, ".svg");
}

/* Fills o from argv: 0 to measure, 1 for --help (printed), -1 on a bad
 * argument (explained on stderr). */
static int parse_opts(int argc, char **argv, opts *o)
{
    static const char *takes_value[] = {"--batch-sizes", "--device",
                                        "--precision",   "--duration",
                                        "--json",        "--plot",
                                        "--concurrency", "--threads",
                                        "--workers",     "--max-batch",
                                        "--io-dtype",    "--inflight",
                                        "--repeat",      "--stability-percentage"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long x;
        for (size_t t = 0; t < sizeof takes_value / sizeof *takes_value; t++)
            if (!strcmp(a, takes_value[t])) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "ferry bench: %s needs a value\n", a);
                    return -1;
                }
                v = argv[++i];
            }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--batch-sizes")) {
            if (parse_list(a, v, 1 << 22, o->sizes, &o->n_sizes))
                return -1;
        } else if (!strcmp(a, "--threads")) {
            if (parse_list(a, v, 256, o->threads, &o->n_threads))
                return -1;
            for (int k = 0; k < o->n_threads; k++)
                if (o->threads[k] > o->baseline_threads)
                    o->baseline_threads = (int)o->threads[k];
        } else if (!strcmp(a, "--concurrency")) {
            if (parse_list(a, v, 1 << 20, o->conc, &o->n_conc))
                return -1;
        } else if (!strcmp(a, "--device")) {
            o->device = v;
        } else if (!strcmp(a, "--precision")) {
            if (cli_parse_precision(v, &o->precision))
                return -1;
        } else if (!strcmp(a, "--duration")) {
            if (cli_parse_double("ferry bench", a, v, 0.001, 3600, &o->duration))
                return -1;
        } else if (!strcmp(a, "--stability-percentage")) {
            if (cli_parse_double("ferry bench", a, v, 0, 1e6, &o->stability))
                return -1;
        } else if (!strcmp(a, "--repeat")) {
            if (cli_parse_int("ferry bench", a, v, 1, BENCH_MAX_REPEAT, &x))
                return -1;
            o->repeat = (int)x;
        } else if (!strcmp(a, "--workers")) {
            if (cli_parse_int("ferry bench", a, v, 1, 256, &x))
                return -1;
            o->workers = (int)x;
        } else if (!strcmp(a, "--inflight")) {
            if (cli_parse_int("ferry bench", a, v, 1, 64, &x))
                return -1;
            o->inflight = (int)x;
        } else if (!strcmp(a, "--max-batch")) {
            if (cli_parse_int("ferry bench", a, v, 1, 1 << 22, &x))
                return -1;
            o->max_batch = (int)x;
        } else if (!strcmp(a, "--io-dtype")) {
            if (!strcmp(v, "f32"))
                o->io_dtype = FERRY_F32;
            else if (!strcmp(v, "f16"))
                o->io_dtype = FERRY_F16;
            else if (!strcmp(v, "bf16"))
                o->io_dtype = FERRY_BF16;
            else {
                fprintf(stderr, "ferry bench: --io-dtype '%s': expected f32, f16 or bf16\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else if (!strcmp(a, "--plot")) {
            if (!svg_name(v)) {
                fprintf(stderr,
                        "ferry bench: --plot %s: ferry bench writes SVG only; name the file "
                        ".svg (then convert it if you need another format, e.g. "
                        "rsvg-convert -o plot.png plot.svg)\n",
                        v);
                return -1;
            }
            o->plot = v;
        } else if (!strcmp(a, "--graphs")) {
            o->graphs = 1;
        } else if (!strcmp(a, "--sweep")) {
            o->user_chose_sections = 1; /* the sweep always runs; alone when only it is named */
        } else if (!strcmp(a, "--compare-threading")) {
            o->compare_threading = o->user_chose_sections = 1;
        } else if (!strcmp(a, "--stack")) {
            o->stack = o->user_chose_sections = 1;
        } else if (!strcmp(a, "--latency")) {
            o->latency = 1;
        } else if (!strcmp(a, "--batcher")) {
            o->batcher = o->user_chose_sections = 1;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry bench: unknown option '%s'\n", a);
            usage(stderr);
            return -1;
        } else if (!o->model) {
            o->model = a;
        } else {
            fprintf(stderr, "ferry bench: unexpected argument '%s'\n", a);
            return -1;
        }
    }
    static const int64_t def_sizes[] = {1, 4, 8, 16, 32, 256};
    static const int64_t def_conc[] = {1, 16, 64, 256, 1024};
    if (!o->n_sizes) {
        memcpy(o->sizes, def_sizes, sizeof def_sizes);
        o->n_sizes = (int)(sizeof def_sizes / sizeof def_sizes[0]);
    }
    if (!o->n_conc) {
        memcpy(o->conc, def_conc, sizeof def_conc);
        o->n_conc = (int)(sizeof def_conc / sizeof def_conc[0]);
    }
    if (!o->baseline_threads)
        o->baseline_threads = 8;
    if (!o->n_threads)
        for (int k = 0; k < o->n_sizes; k++)
            if (o->sizes[k] <= 64)
                o->threads[o->n_threads++] = o->sizes[k];
    if (!o->user_chose_sections)
        o->compare_threading = o->stack = 1;
    if (!o->compare_threading)
        o->n_threads = 0;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    opts o = {.precision = FERRY_PRECISION_FP32,
              .duration = DEF_DURATION,
              .repeat = DEF_REPEAT,
              .stability = DEF_STABILITY,
              .io_dtype = FERRY_F32,
              .inflight = 1};
    char devbuf[64];
    int p = parse_opts(argc, argv, &o);
    if (p)
        return p > 0 ? 0 : 2;
    if (!o.device) {
        best_device(devbuf, sizeof devbuf);
        o.device = devbuf;
    }
    if (!o.model)
        o.model = cli_default_model();
    if (!o.model) {
        fprintf(stderr, "ferry bench: no MODEL given and the bundled models/mlp-s.onnx was not "
                        "found (build it with `make build`, or set FERRY_MODEL)\n");
        return 2;
    }
    prog_tty = isatty(2);

    /* before anything is measured: a run whose results cannot be kept is
     * not worth its minutes */
    bench_outputs outs;
    if (bench_outputs_open(&o, &outs))
        return 1;
    ferry_model *m;
    ferry_status st = ferry_model_load(o.model, &m);
    if (st != FERRY_OK) {
        bench_outputs_abort(&o, &outs);
        return cli_error("bench", st);
    }

    prog_total =
        o.n_sizes + o.n_threads + (o.stack ? BENCH_STACK_ROWS : 0) + (o.batcher ? o.n_conc : 0);

    static bench_results r; /* large: off the stack */
    memset(&r, 0, sizeof r);
    int rc = 1;
    char devname[256] = "";
    {
        ferry_engine *probe;
        if ((st = make_engine(&o, m, 1, 1, 1, o.precision, 0, FERRY_SYNC_EVENT, &probe)) !=
            FERRY_OK) {
            rc = cli_error("bench", st);
            goto done;
        }
        snprintf(devname, sizeof devname, "%s", ferry_engine_device(probe));
        ferry_engine_destroy(probe);
    }
    r.device = devname;
    fprintf(stderr, "ferry bench: %s on %s, %s, %d run%s of %.2g s per point\n", o.model, devname,
            cli_precision_name(o.precision), o.repeat, o.repeat > 1 ? "s" : "", o.duration);

    if ((st = run_sweep(&o, m, r.sweep)) != FERRY_OK) {
        rc = cli_error("bench: sweep", st);
        goto done;
    }
    if (o.compare_threading && (st = run_threading(&o, m, r.thr, &r.n_thr)) != FERRY_OK) {
        rc = cli_error("bench: threading", st);
        goto done;
    }
    if (o.stack && (st = run_stack(&o, m, r.stack)) != FERRY_OK) {
        rc = cli_error("bench: stack", st);
        goto done;
    }
    if (o.batcher && (st = run_batcher(&o, m, r.batcher)) != FERRY_OK) {
        rc = cli_error("bench: batcher", st);
        goto done;
    }
    progress_end(&o);
    bench_print(&o, &r);
    fflush(stdout);
    rc = bench_outputs_write(&o, &r, &outs) ? 1 : 0;
done:
    bench_outputs_abort(&o, &outs); /* nothing left to close after a write */
    progress_end(&o);
    ferry_model_destroy(m);
    return rc;
}
