/*
 * bench.c - `ferry bench`: the batching-vs-threading findings of the Python
 * examples Ferry grows from, measured for any ONNX model:
 *   sweep      one caller, batch b, synchronous runs: samples/s and latency
 *   threading  N callers, batch 1 each, on one engine
 *   stack      baseline (8 threads x batch 1, fp32, whole-device sync) and the
 *              optimizations one by one: batching, pipelining, precision,
 *              graph capture
 *   batcher    closed-loop single-sample requests through the dynamic batcher
 * Prints tables; --json and --plot for machines and people.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "batcher/bench.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/timeutil.h"
#include "util/error.h"

#define MAX_SIZES 32

typedef struct opts {
    const char *model;
    const char *device;
    ferry_precision precision;
    int64_t sizes[MAX_SIZES];
    int n_sizes;
    int compare_threading, stack, latency, batcher, quiet;
    int threads;
    double duration;
    const char *json, *plot;
    int64_t conc[MAX_SIZES];
    int n_conc;
    int user_chose_sections;
    int workers, max_batch, graphs; /* the sweep engine */
    int inflight;                   /* sweep: batches in flight (1: synchronous calls) */
    ferry_dtype io_dtype;
} opts;

typedef struct point {
    int64_t batch;
    double sps;           /* samples/s */
    double p50, p90, p99; /* us per call */
} point;

typedef struct stack_row {
    const char *step, *config;
    double sps;
    char skipped[256];
} stack_row;

typedef struct brow {
    int64_t conc;
    double rps, p50, p99, mean_batch;
} brow;

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

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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
                                    double *lat, size_t cap, point *pt)
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
    qsort(lat, f.n_lat, sizeof *lat, cmp_d);
    pt->batch = n;
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

static ferry_status run_sweep(const opts *o, const ferry_model *m, point *pts)
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
    for (int k = 0; k < o->n_sizes && st == FERRY_OK; k++) {
        int64_t n = o->sizes[k];
        char what[64];
        snprintf(what, sizeof what, "sweep: batch %lld", (long long)n);
        progress(o, what);
        if (o->inflight > 1 && n <= chunk) {
            st = sweep_pipelined(o, e, m, n, lat, cap, &pts[k]);
            prog_done++;
            continue;
        }
        ferry_tensor in[CLI_MAX_IO], out[CLI_MAX_IO];
        io_view(&b, n, in, out);
        for (int w = 0; w < 3 && st == FERRY_OK; w++)
            st = ferry_engine_run(e, in, b.n_in, out, b.n_out);
        size_t cnt = 0;
        int64_t t0 = ferry_now_us(), t1 = t0, limit = (int64_t)(o->duration * 1e6);
        while (st == FERRY_OK && (t1 - t0 < limit || cnt < 3) && cnt < cap) {
            int64_t a = ferry_now_us();
            st = ferry_engine_run(e, in, b.n_in, out, b.n_out);
            t1 = ferry_now_us();
            lat[cnt++] = (double)(t1 - a);
        }
        qsort(lat, cnt, sizeof *lat, cmp_d);
        pts[k].batch = n;
        pts[k].sps = (double)n * (double)cnt / ((double)(t1 - t0) / 1e6);
        pts[k].p50 = pct(lat, (int)cnt, 50);
        pts[k].p90 = pct(lat, (int)cnt, 90);
        pts[k].p99 = pct(lat, (int)cnt, 99);
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
    atomic_int go = 0, stop = 0;
    tctx *c = calloc((size_t)threads, sizeof *c);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!c || !t) {
        free(c);
        free(t);
        return FERRY_ENOMEM;
    }
    for (int i = 0; i < threads; i++) {
        c[i] = (tctx){.e = e, .m = m, .batch = batch, .depth = depth, .go = &go, .stop = &stop};
        pthread_create(&t[i], NULL, client_main, &c[i]);
    }
    atomic_store(&go, 1);
    /* a short warm period, then count */
    usleep((useconds_t)(o->duration * 1e6 * 0.1));
    uint64_t s0 = 0;
    for (int i = 0; i < threads; i++)
        s0 += __atomic_load_n(&c[i].samples, __ATOMIC_RELAXED);
    int64_t t0 = ferry_now_us();
    usleep((useconds_t)(o->duration * 1e6));
    uint64_t s1 = 0;
    for (int i = 0; i < threads; i++)
        s1 += __atomic_load_n(&c[i].samples, __ATOMIC_RELAXED);
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

static ferry_status run_threading(const opts *o, const ferry_model *m, point *thr, int *n_thr)
{
    *n_thr = 0;
    for (int k = 0; k < o->n_sizes; k++) {
        int64_t n = o->sizes[k];
        if (n > 64)
            continue;
        char what[64];
        snprintf(what, sizeof what, "threading: %lld threads x batch 1", (long long)n);
        progress(o, what);
        ferry_engine *e;
        ferry_status st = make_engine(o, m, (int)n, 1, 1, o->precision, 0, FERRY_SYNC_EVENT, &e);
        if (st != FERRY_OK)
            return st;
        double sps;
        st = measure_threads(o, e, m, (int)n, 1, 1, &sps);
        ferry_engine_destroy(e);
        if (st != FERRY_OK)
            return st;
        thr[*n_thr].batch = n;
        thr[*n_thr].sps = sps;
        (*n_thr)++;
        prog_done++;
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------ stack */

static int stack_rows(void)
{
    return 5;
}

static ferry_status run_stack(const opts *o, const ferry_model *m, stack_row *rows)
{
    static const struct {
        const char *step, *config;
        int threads, batch, depth, reduced, graphs;
        ferry_sync sync;
    } steps[5] = {
        {"baseline", "8 threads x batch 1, fp32, device sync", 8, 1, 1, 0, 0, FERRY_SYNC_DEVICE},
        {"+ dynamic batch sizing", "2 workers x batch 32", 2, 32, 1, 0, 0, FERRY_SYNC_DEVICE},
        {"+ pipelining", "depth 8, per-batch events", 2, 32, 8, 0, 0, FERRY_SYNC_EVENT},
        {"+ reduced precision", "", 2, 32, 8, 1, 0, FERRY_SYNC_EVENT},
        {"+ graph capture", "CUDA graph per batch size", 2, 32, 8, 1, 1, FERRY_SYNC_EVENT},
    };
    int cuda = !strncmp(o->device, "cuda", 4);
    ferry_precision reduced = cuda ? FERRY_PRECISION_FP16 : FERRY_PRECISION_BF16;
    int reduced_ok = 1;
    for (int k = 0; k < 5; k++) {
        stack_row *r = &rows[k];
        r->step = steps[k].step;
        r->config = k == 3 ? (cuda ? "fp16" : "bf16") : steps[k].config;
        r->skipped[0] = '\0';
        r->sps = 0;
        progress(o, r->step);
        ferry_precision prec = steps[k].reduced && reduced_ok ? reduced : FERRY_PRECISION_FP32;
        ferry_engine *e;
        ferry_status st = make_engine(o, m, steps[k].threads, steps[k].batch, steps[k].depth, prec,
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
        st = measure_threads(o, e, m, steps[k].threads, steps[k].batch, steps[k].depth, &r->sps);
        ferry_engine_destroy(e);
        if (st != FERRY_OK)
            return st;
        prog_done++;
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------ batcher */

static ferry_status run_batcher(const opts *o, const ferry_model *m, brow *rows)
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
        rows[k].conc = o->conc[k];
        /* A window shorter than one batch (a CNN at 64 clients on two
         * cores) completes nothing: measure again over a longer one. */
        double dur = o->duration;
        for (int tries = 0; tries < 3; tries++, dur *= 4) {
            st = batcher_bench_closed_loop(b, (int)o->conc[k], dur, &rows[k].rps, &rows[k].p50,
                                           &rows[k].p99, &rows[k].mean_batch);
            if (st != FERRY_OK || rows[k].rps > 0)
                break;
        }
        ferry_batcher_destroy(b);
        prog_done++;
    }
    ferry_engine_destroy(e);
    return st;
}

/* ------------------------------------------------------------ output */

static void print_num(double v)
{
    if (v >= 1e7)
        printf("%12.2fM", v / 1e6);
    else if (v >= 100)
        printf("%13.0f", v);
    else
        printf("%13.1f", v);
}

static void write_svg(const char *path, const point *pts, int n, const point *thr, int n_thr,
                      const char *title)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "ferry bench: cannot write %s\n", path);
        return;
    }
    double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
    for (int i = 0; i < n; i++) {
        xmin = fmin(xmin, (double)pts[i].batch);
        xmax = fmax(xmax, (double)pts[i].batch);
        ymin = fmin(ymin, pts[i].sps);
        ymax = fmax(ymax, pts[i].sps);
    }
    for (int i = 0; i < n_thr; i++) {
        ymin = fmin(ymin, thr[i].sps);
        ymax = fmax(ymax, thr[i].sps);
    }
    if (xmax <= xmin)
        xmax = xmin * 2;
    ymin = pow(10, floor(log10(ymin > 0 ? ymin : 1)));
    ymax = pow(10, ceil(log10(ymax > ymin ? ymax : ymin * 10)));
    const double W = 720, H = 440, L = 80, R = 20, T = 40, B = 60;
#define XS(x) (L + (log2(x) - log2(xmin)) / (log2(xmax) - log2(xmin)) * (W - L - R))
#define YS(y) (H - B - (log10(y) - log10(ymin)) / (log10(ymax) - log10(ymin)) * (H - T - B))
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif' font-size='12'>\n<rect width='100%%' height='100%%' "
            "fill='white'/>\n<text x='%.0f' y='24' font-size='15'>%s</text>\n",
            W, H, L, title);
    for (double y = ymin; y <= ymax * 1.001; y *= 10) {
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#ddd'/>", L, W - R, YS(y),
                YS(y));
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end'>%.0e</text>\n", L - 6, YS(y) + 4, y);
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>%lld</text>\n",
                XS((double)pts[i].batch), H - B + 18, (long long)pts[i].batch);
    fprintf(f, "<text x='%.0f' y='%.0f' text-anchor='middle'>batch size / parallel units</text>\n",
            (L + W - R) / 2, H - 20);
    fprintf(f,
            "<text transform='translate(18,%.0f) rotate(-90)' "
            "text-anchor='middle'>samples/s</text>\n",
            (T + H - B) / 2);
    const point *series[2] = {pts, thr};
    int counts[2] = {n, n_thr};
    const char *colors[2] = {"#1f77b4", "#d62728"},
               *names[2] = {"batching (1 caller, batch b)", "threading (b callers, batch 1)"};
    for (int s = 0; s < 2; s++) {
        if (!counts[s])
            continue;
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[s]);
        for (int i = 0; i < counts[s]; i++)
            fprintf(f, "%.1f,%.1f ", XS((double)series[s][i].batch), YS(series[s][i].sps));
        fprintf(f, "'/>\n");
        for (int i = 0; i < counts[s]; i++)
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                    XS((double)series[s][i].batch), YS(series[s][i].sps), colors[s]);
        fprintf(f,
                "<rect x='%.0f' y='%.0f' width='12' height='3' fill='%s'/>"
                "<text x='%.0f' y='%.0f'>%s</text>\n",
                L + 10, T + 10 + s * 18.0, colors[s], L + 28, T + 15 + s * 18.0, names[s]);
    }
#undef XS
#undef YS
    fprintf(f, "</svg>\n");
    fclose(f);
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
            "sections (any combination; default: sweep + --compare-threading + --stack):\n"
            "  --sweep                the batch-size sweep only (it always runs)\n"
            "  --batch-sizes LIST     batch sizes of the sweep (default 1,4,8,16,32,256)\n"
            "  --compare-threading    N callers x batch 1 for each N <= 64 in LIST\n"
            "  --stack                baseline, then + batching, + pipelining, + reduced\n"
            "                         precision, + graph capture (each with its gain)\n"
            "  --latency              p50/p90/p99 per batch size in the sweep table\n"
            "  --batcher              closed-loop single-sample requests through the dynamic\n"
            "                         batcher at each --concurrency (default 1,16,64,256,1024)\n"
            "options:\n"
            "  --device DEV           cpu, cuda, cuda:N (default: cuda if present, else cpu)\n"
            "  --precision P          fp32 (default), tf32, fp16, bf16 for sweep/threading\n"
            "  --io-dtype T           dtype of the caller's tensors: f32 (default), f16, bf16\n"
            "  --workers N            sweep and batcher: engine workers (default: one per core on\n"
            "                         the CPU, 2 streams on CUDA)\n"
            "  --max-batch N          sweep: chunk size a batch is split into (default: the\n"
            "                         largest batch size, i.e. no split); batcher: the\n"
            "                         largest batch it forms (default 256)\n"
            "  --graphs               sweep: capture CUDA graphs per batch size\n"
            "  --inflight K           sweep: keep K batches in flight (asynchronous submit)\n"
            "                         instead of one synchronous call at a time\n"
            "  --duration S           seconds per measurement (default 1.0)\n"
            "  --json FILE            write all results as JSON\n"
            "  --plot FILE.svg        throughput vs batch size, batching and threading\n"
            "  --quiet                no progress bar\n"
            "\n"
            "PyTorch side by side: bench/compare.py runs this and bench/torch_reference.py on\n"
            "the same weights in one run and prints the ratios.\n");
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

int cmd_bench(int argc, char **argv)
{
    opts o = {.precision = FERRY_PRECISION_FP32,
              .threads = 8,
              .duration = 1.0,
              .workers = 0,
              .io_dtype = FERRY_F32,
              .inflight = 1};
    static const int64_t def_sizes[] = {1, 4, 8, 16, 32, 256};
    static const int64_t def_conc[] = {1, 16, 64, 256, 1024};
    char devbuf[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes =
            !strcmp(a, "--batch-sizes") || !strcmp(a, "--device") || !strcmp(a, "--precision") ||
            !strcmp(a, "--duration") || !strcmp(a, "--json") || !strcmp(a, "--plot") ||
            !strcmp(a, "--concurrency") || !strcmp(a, "--threads") || !strcmp(a, "--workers") ||
            !strcmp(a, "--max-batch") || !strcmp(a, "--io-dtype") || !strcmp(a, "--inflight");
        if (takes && !v) {
            fprintf(stderr, "ferry bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--batch-sizes")) {
            if ((o.n_sizes = cli_parse_int_list(v, o.sizes, MAX_SIZES)) < 0) {
                fprintf(stderr, "ferry bench: --batch-sizes '%s': expected e.g. 1,4,8,16\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--concurrency")) {
            if ((o.n_conc = cli_parse_int_list(v, o.conc, MAX_SIZES)) < 0) {
                fprintf(stderr, "ferry bench: --concurrency '%s': expected e.g. 1,16,64\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--device")) {
            o.device = v;
        } else if (!strcmp(a, "--precision")) {
            if (cli_parse_precision(v, &o.precision))
                return 2;
        } else if (!strcmp(a, "--duration")) {
            o.duration = atof(v);
            if (!(o.duration > 0 && o.duration < 3600)) {
                fprintf(stderr, "ferry bench: --duration '%s': expected seconds > 0\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if ((o.threads = (int)cli_parse_pos(a, v)) < 0)
                return 2;
        } else if (!strcmp(a, "--workers")) {
            if ((o.workers = (int)cli_parse_pos(a, v)) < 0)
                return 2;
        } else if (!strcmp(a, "--inflight")) {
            if ((o.inflight = (int)cli_parse_pos(a, v)) < 0)
                return 2;
            if (o.inflight > 64) {
                fprintf(stderr, "ferry bench: --inflight %d: at most 64\n", o.inflight);
                return 2;
            }
        } else if (!strcmp(a, "--max-batch")) {
            if ((o.max_batch = (int)cli_parse_pos(a, v)) < 0)
                return 2;
        } else if (!strcmp(a, "--io-dtype")) {
            if (!strcmp(v, "f32"))
                o.io_dtype = FERRY_F32;
            else if (!strcmp(v, "f16"))
                o.io_dtype = FERRY_F16;
            else if (!strcmp(v, "bf16"))
                o.io_dtype = FERRY_BF16;
            else {
                fprintf(stderr, "ferry bench: --io-dtype '%s': expected f32, f16 or bf16\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--graphs")) {
            o.graphs = 1;
            continue;
        } else if (!strcmp(a, "--json")) {
            o.json = v;
        } else if (!strcmp(a, "--plot")) {
            o.plot = v;
        } else if (!strcmp(a, "--sweep")) {
            o.user_chose_sections = 1; /* the sweep always runs; alone when only it is named */
            continue;
        } else if (!strcmp(a, "--compare-threading")) {
            o.compare_threading = o.user_chose_sections = 1;
            continue;
        } else if (!strcmp(a, "--stack")) {
            o.stack = o.user_chose_sections = 1;
            continue;
        } else if (!strcmp(a, "--latency")) {
            o.latency = 1;
            continue;
        } else if (!strcmp(a, "--batcher")) {
            o.batcher = o.user_chose_sections = 1;
            continue;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!o.model) {
            o.model = a;
            continue;
        } else {
            fprintf(stderr, "ferry bench: unexpected argument '%s'\n", a);
            return 2;
        }
        i++;
    }
    if (!o.n_sizes) {
        memcpy(o.sizes, def_sizes, sizeof def_sizes);
        o.n_sizes = (int)(sizeof def_sizes / sizeof def_sizes[0]);
    }
    if (!o.n_conc) {
        memcpy(o.conc, def_conc, sizeof def_conc);
        o.n_conc = (int)(sizeof def_conc / sizeof def_conc[0]);
    }
    if (!o.user_chose_sections)
        o.compare_threading = o.stack = 1;
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

    ferry_model *m;
    ferry_status st = ferry_model_load(o.model, &m);
    if (st != FERRY_OK)
        return cli_error("bench", st);

    int n_thr_sizes = 0;
    for (int k = 0; k < o.n_sizes; k++)
        n_thr_sizes += o.sizes[k] <= 64;
    prog_total = o.n_sizes + (o.compare_threading ? n_thr_sizes : 0) +
                 (o.stack ? stack_rows() : 0) + (o.batcher ? o.n_conc : 0);

    point pts[MAX_SIZES], thr[MAX_SIZES];
    stack_row rows[5];
    brow brows[MAX_SIZES];
    int n_thr = 0, rc = 1;
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
    fprintf(stderr, "ferry bench: %s on %s, %s, %.1f s per point\n", o.model, devname,
            cli_precision_name(o.precision), o.duration);

    if ((st = run_sweep(&o, m, pts)) != FERRY_OK) {
        rc = cli_error("bench: sweep", st);
        goto done;
    }
    if (o.compare_threading && (st = run_threading(&o, m, thr, &n_thr)) != FERRY_OK) {
        rc = cli_error("bench: threading", st);
        goto done;
    }
    if (o.stack && (st = run_stack(&o, m, rows)) != FERRY_OK) {
        rc = cli_error("bench: stack", st);
        goto done;
    }
    if (o.batcher && (st = run_batcher(&o, m, brows)) != FERRY_OK) {
        rc = cli_error("bench: batcher", st);
        goto done;
    }
    progress_end(&o);

    printf("\nmodel %s, device %s, %s\n\n", o.model, devname, cli_precision_name(o.precision));
    if (o.inflight > 1)
        printf("Batching: one caller, batch b, %d batches in flight\n", o.inflight);
    else
        printf("Batching: one caller, batch b, one synchronous call at a time\n");
    printf("%8s %13s", "batch", "samples/s");
    if (o.latency)
        printf(" %10s %10s %10s", "p50 us", "p90 us", "p99 us");
    if (n_thr)
        printf(" %13s %9s", "threads(b)", "ratio");
    printf("\n");
    for (int k = 0; k < o.n_sizes; k++) {
        printf("%8lld ", (long long)pts[k].batch);
        print_num(pts[k].sps);
        if (o.latency)
            printf(" %10.1f %10.1f %10.1f", pts[k].p50, pts[k].p90, pts[k].p99);
        for (int j = 0; j < n_thr; j++)
            if (thr[j].batch == pts[k].batch) {
                printf(" ");
                print_num(thr[j].sps);
                printf(" %8.1fx", pts[k].sps / thr[j].sps);
            }
        printf("\n");
    }
    if (n_thr) {
        int at = -1;
        for (int j = 0; j < n_thr; j++)
            if (thr[j].batch == 8 || (at < 0 && j == n_thr - 1))
                at = j;
        for (int k = 0; at >= 0 && k < o.n_sizes; k++)
            if (pts[k].batch == thr[at].batch)
                printf("\nAt %lld parallel units: batching %.0f samples/s, threading %.0f "
                       "samples/s, %s is %.1fx faster\n",
                       (long long)thr[at].batch, pts[k].sps, thr[at].sps,
                       pts[k].sps >= thr[at].sps ? "batching" : "threading",
                       pts[k].sps >= thr[at].sps ? pts[k].sps / thr[at].sps
                                                 : thr[at].sps / pts[k].sps);
    }
    if (o.stack) {
        printf("\nOptimization stack\n%-26s %-40s %13s %8s %11s\n", "step", "config", "samples/s",
               "gain", "cumulative");
        double prev = 0, base = rows[0].sps;
        for (int k = 0; k < 5; k++) {
            if (rows[k].skipped[0]) {
                printf("%-26s %-40s %13s   skipped: %.80s\n", rows[k].step, rows[k].config, "-",
                       rows[k].skipped);
                continue;
            }
            printf("%-26s %-40s ", rows[k].step, rows[k].config);
            print_num(rows[k].sps);
            printf(" %7.2fx %10.1fx\n", prev > 0 ? rows[k].sps / prev : 1.0,
                   base > 0 ? rows[k].sps / base : 1.0);
            prev = rows[k].sps;
        }
    }
    if (o.batcher) {
        printf("\nDynamic batcher, closed loop, one sample per request\n%12s %13s %10s %10s "
               "%11s\n",
               "concurrency", "requests/s", "p50 us", "p99 us", "mean batch");
        for (int k = 0; k < o.n_conc; k++) {
            printf("%12lld ", (long long)brows[k].conc);
            print_num(brows[k].rps);
            if (brows[k].p50 > 0)
                printf(" %10.1f %10.1f %11.1f\n", brows[k].p50, brows[k].p99,
                       brows[k].mean_batch);
            else /* no request both started and ended in the window */
                printf(" %10s %10s %11.1f\n", "-", "-", brows[k].mean_batch);
        }
    }
    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        char date[32];
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        cJSON_AddStringToObject(j, "impl", "ferry");
        cJSON_AddStringToObject(j, "version", FERRY_VERSION);
        cJSON_AddStringToObject(j, "device", devname);
        cJSON_AddStringToObject(j, "model", o.model);
        cJSON_AddStringToObject(j, "precision", cli_precision_name(o.precision));
        cJSON_AddStringToObject(j, "date", date);
        cJSON *sw = cJSON_AddArrayToObject(j, "sweep");
        for (int k = 0; k < o.n_sizes; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "batch", (double)pts[k].batch);
            cJSON_AddNumberToObject(p, "samples_per_s", pts[k].sps);
            cJSON_AddNumberToObject(p, "p50_us", pts[k].p50);
            cJSON_AddNumberToObject(p, "p90_us", pts[k].p90);
            cJSON_AddNumberToObject(p, "p99_us", pts[k].p99);
            cJSON_AddItemToArray(sw, p);
        }
        cJSON *th = cJSON_AddArrayToObject(j, "threading");
        for (int k = 0; k < n_thr; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "threads", (double)thr[k].batch);
            cJSON_AddNumberToObject(p, "batch", 1);
            cJSON_AddNumberToObject(p, "samples_per_s", thr[k].sps);
            cJSON_AddItemToArray(th, p);
        }
        cJSON *sk = cJSON_AddArrayToObject(j, "stack");
        double prev = 0;
        for (int k = 0; o.stack && k < 5; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "step", rows[k].step);
            cJSON_AddStringToObject(p, "config", rows[k].config);
            if (rows[k].skipped[0]) {
                cJSON_AddNullToObject(p, "samples_per_s");
                cJSON_AddStringToObject(p, "skipped", rows[k].skipped);
            } else {
                cJSON_AddNumberToObject(p, "samples_per_s", rows[k].sps);
                cJSON_AddNumberToObject(p, "gain", prev > 0 ? rows[k].sps / prev : 1.0);
                cJSON_AddNumberToObject(p, "cumulative",
                                        rows[0].sps > 0 ? rows[k].sps / rows[0].sps : 1.0);
                cJSON_AddNullToObject(p, "skipped");
                prev = rows[k].sps;
            }
            cJSON_AddItemToArray(sk, p);
        }
        cJSON *ba = cJSON_AddArrayToObject(j, "batcher");
        for (int k = 0; o.batcher && k < o.n_conc; k++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "concurrency", (double)brows[k].conc);
            cJSON_AddNumberToObject(p, "requests_per_s", brows[k].rps);
            cJSON_AddNumberToObject(p, "p50_us", brows[k].p50);
            cJSON_AddNumberToObject(p, "p99_us", brows[k].p99);
            cJSON_AddNumberToObject(p, "mean_batch", brows[k].mean_batch);
            cJSON_AddItemToArray(ba, p);
        }
        char *s = cJSON_Print(j);
        FILE *f = fopen(o.json, "w");
        if (!f || fputs(s, f) < 0) {
            fprintf(stderr, "ferry bench: cannot write %s\n", o.json);
        }
        if (f)
            fclose(f);
        free(s);
        cJSON_Delete(j);
    }
    if (o.plot) {
        char title[512];
        snprintf(title, sizeof title, "ferry bench: %s on %s", o.model, devname);
        write_svg(o.plot, pts, o.n_sizes, thr, n_thr, title);
    }
    rc = 0;
done:
    progress_end(&o);
    ferry_model_destroy(m);
    return rc;
}
