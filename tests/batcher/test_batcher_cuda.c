/*
 * test_batcher_cuda.c - the dynamic batcher over a CUDA engine: 16 threads
 * submit requests of 1..8 samples (some blocking, most asynchronous, a few
 * with deadlines); every accepted request's callback runs exactly once and
 * its outputs equal the engine's unbatched outputs for the same samples
 * (within the precision's tolerance: batches of different sizes may take
 * different cuBLASLt algorithms). Runs with fp32 + CUDA graphs (the batcher
 * issues batches from its dispatcher thread) and with fp16, where batches
 * of up to 64 samples run through the fused MLP kernel straight from the
 * pinned staging buffers. Then destroy under load: everything accepted
 * completes, with its result or FERRY_ESHUTDOWN.
 *
 * Skips without a usable CUDA device. The CPU batcher's full contract
 * (priorities, queue limits, TSan) is test_batcher's.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ferry.h"

#define W 256       /* mlp-s input and output width */
#define POOL 1024   /* distinct samples */
#define THREADS 16
#define PER_THREAD 3000
#define MAXK 8
#define WINDOW 32 /* asynchronous requests outstanding per thread */

static ferry_model *model;
static char no_cuda[512];
static float *pool_in, *ref_out;

typedef struct req {
    int64_t first, k;
    float out[MAXK * W];
    atomic_int calls;
    ferry_status st;
} req;

typedef struct tctx {
    ferry_batcher *b;
    int id;
    double tol;
    req *reqs;
    atomic_int outstanding;
    int accepted, bad;
} tctx;

static ferry_tensor tens(float *d, int64_t n)
{
    ferry_tensor t = {.dtype = FERRY_F32, .ndim = 2, .shape = {n, W}, .data = d};
    return t;
}

static ferry_status make_engine(ferry_precision p, int graphs, ferry_engine **e)
{
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.device = "cuda";
    c.workers = 4;
    c.pipeline_depth = 4;
    c.max_batch = 256;
    c.precision = p;
    c.graphs = graphs;
    return ferry_engine_create(model, &c, e);
}

typedef struct cb_arg {
    tctx *t;
    req *r;
} cb_arg;

static void on_done(void *user, ferry_status st)
{
    cb_arg *a = user;
    a->r->st = st;
    atomic_fetch_add(&a->r->calls, 1);
    atomic_fetch_sub(&a->t->outstanding, 1);
}

/* ||got - want|| / ||want|| over the request's samples */
static double rel_err(const req *r)
{
    double num = 0, den = 0;
    const float *want = ref_out + r->first * W;
    for (int64_t i = 0; i < r->k * W; i++) {
        double d = (double)r->out[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void *client(void *arg)
{
    tctx *t = arg;
    uint32_t s = 99u + (uint32_t)t->id * 7919u;
    cb_arg *args = calloc(PER_THREAD, sizeof *args);
    if (!args)
        return NULL;
    for (int i = 0; i < PER_THREAD; i++) {
        s = s * 1664525u + 1013904223u;
        req *r = &t->reqs[i];
        r->k = 1 + (s >> 8) % MAXK;
        r->first = (s >> 16) % (POOL - MAXK);
        ferry_tensor in = tens(pool_in + r->first * W, r->k), out = tens(r->out, r->k);
        if (i % 10 == 0) { /* blocking */
            ferry_status st = ferry_batcher_infer(t->b, &in, 1, &out, 1, NULL);
            atomic_store(&r->calls, 1);
            r->st = st;
            t->accepted++;
            continue;
        }
        while (atomic_load(&t->outstanding) >= WINDOW)
            sched_yield();
        args[i] = (cb_arg){t, r};
        atomic_fetch_add(&t->outstanding, 1);
        ferry_status st = ferry_batcher_submit(t->b, &in, 1, &out, 1, NULL, on_done, &args[i]);
        if (st != FERRY_OK) {
            atomic_fetch_sub(&t->outstanding, 1);
            r->st = st;
            atomic_store(&r->calls, -1); /* rejected: no callback may come */
            continue;
        }
        t->accepted++;
    }
    while (atomic_load(&t->outstanding) > 0)
        sched_yield();
    free(args);
    return NULL;
}

static void run_load(ferry_precision p, int graphs, double tol)
{
    if (no_cuda[0]) {
        print_message("note: skipped: %s\n", no_cuda);
        skip();
    }
    ferry_engine *e = NULL;
    assert_int_equal(make_engine(p, graphs, &e), FERRY_OK);
    /* the reference: every pool sample through the engine, 256 at a time */
    for (int64_t off = 0; off < POOL; off += 256) {
        ferry_tensor in = tens(pool_in + off * W, 256), out = tens(ref_out + off * W, 256);
        assert_int_equal(ferry_engine_run(e, &in, 1, &out, 1), FERRY_OK);
    }
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    ferry_batcher *b = NULL;
    assert_int_equal(ferry_batcher_create(e, &bc, &b), FERRY_OK);

    tctx t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (tctx){.b = b, .id = i, .tol = tol};
        t[i].reqs = calloc(PER_THREAD, sizeof(req));
        assert_non_null(t[i].reqs);
        pthread_create(&th[i], NULL, client, &t[i]);
    }
    int accepted = 0, wrong = 0, twice = 0, failed = 0;
    double worst = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        accepted += t[i].accepted;
        for (int j = 0; j < PER_THREAD; j++) {
            req *r = &t[i].reqs[j];
            int c = atomic_load(&r->calls);
            if (c == -1)
                continue; /* rejected at submit */
            if (c != 1)
                twice++;
            if (r->st != FERRY_OK) {
                failed++;
                continue;
            }
            double err = rel_err(r);
            if (err > worst)
                worst = err;
            if (!(err <= tol))
                wrong++;
        }
        free(t[i].reqs);
    }
    ferry_batcher_stats bs;
    ferry_batcher_get_stats(b, &bs);
    print_message("  accepted %d, succeeded %llu, mean batch %.1f, worst error %.2e\n", accepted,
                  (unsigned long long)bs.succeeded,
                  bs.batches ? (double)bs.samples / (double)bs.batches : 0.0, worst);
    assert_int_equal(twice, 0);
    assert_int_equal(failed, 0);
    assert_int_equal(wrong, 0);
    assert_int_equal(bs.succeeded, (uint64_t)accepted);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

static void test_fp32_graphs(void **state)
{
    (void)state;
    run_load(FERRY_PRECISION_FP32, 1, 1e-5);
}

static void test_fp16_fused(void **state)
{
    (void)state;
    run_load(FERRY_PRECISION_FP16, 0, 2e-2);
}

/* destroy while 16 x 64 requests are queued: each completes exactly once */
static atomic_int destroy_calls, destroy_ok, destroy_shutdown;
static void on_destroy_done(void *user, ferry_status st)
{
    (void)user;
    atomic_fetch_add(&destroy_calls, 1);
    if (st == FERRY_OK)
        atomic_fetch_add(&destroy_ok, 1);
    else if (st == FERRY_ESHUTDOWN)
        atomic_fetch_add(&destroy_shutdown, 1);
}

static void test_destroy_under_load(void **state)
{
    (void)state;
    if (no_cuda[0]) {
        print_message("note: skipped: %s\n", no_cuda);
        skip();
    }
    ferry_engine *e = NULL;
    assert_int_equal(make_engine(FERRY_PRECISION_FP16, 0, &e), FERRY_OK);
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    ferry_batcher *b = NULL;
    assert_int_equal(ferry_batcher_create(e, &bc, &b), FERRY_OK);
    enum { N = 4096 };
    float *out = malloc((size_t)N * W * sizeof(float));
    assert_non_null(out);
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        ferry_tensor in = tens(pool_in + (i % POOL) * W, 1), o = tens(out + (size_t)i * W, 1);
        if (ferry_batcher_submit(b, &in, 1, &o, 1, NULL, on_destroy_done, NULL) == FERRY_OK)
            accepted++;
    }
    ferry_batcher_destroy(b);
    assert_int_equal(atomic_load(&destroy_calls), accepted);
    assert_int_equal(atomic_load(&destroy_ok) + atomic_load(&destroy_shutdown), accepted);
    free(out);
    ferry_engine_destroy(e);
}

int main(void)
{
    const char *dir = getenv("FERRY_TEST_MODELS");
    char path[4096];
    snprintf(path, sizeof path, "%s/mlp-s.onnx", dir ? dir : FERRY_TEST_MODELS);
    if (ferry_model_load(path, &model) != FERRY_OK) {
        fprintf(stderr, "ferry_model_load('%s'): %s\n", path, ferry_last_error());
        return 1;
    }
    pool_in = malloc((size_t)POOL * W * sizeof(float));
    ref_out = malloc((size_t)POOL * W * sizeof(float));
    if (!pool_in || !ref_out)
        return 1;
    uint32_t s = 12345u;
    for (int i = 0; i < POOL * W; i++) {
        s = s * 1664525u + 1013904223u;
        pool_in[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    ferry_engine *e = NULL;
    ferry_status st = make_engine(FERRY_PRECISION_FP32, 0, &e);
    if (st == FERRY_EUNSUPPORTED || st == FERRY_EDEVICE || st == FERRY_ENOTFOUND)
        snprintf(no_cuda, sizeof no_cuda, "no usable CUDA device (%s: %s)", ferry_status_str(st),
                 ferry_last_error());
    else if (st != FERRY_OK) {
        fprintf(stderr, "ferry_engine_create(cuda): %s\n", ferry_last_error());
        return 1;
    }
    ferry_engine_destroy(e);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_graphs),
        cmocka_unit_test(test_fp16_fused),
        cmocka_unit_test(test_destroy_under_load),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(pool_in);
    free(ref_out);
    ferry_model_destroy(model);
    return rc;
}
