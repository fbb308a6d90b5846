/*
 * test_cuda_fused.c - the CUDA backend's fused whole-MLP kernel
 * (src/backend/cuda/kernels_mlp.cu) against the cuBLASLt path on the same
 * engine settings, through the public API: fp16 and bf16, f32 and f16 host
 * tensors, batch sizes around the kernel's 16-row tiles and its batch limit,
 * pageable buffers (copies + fused forward on the device) and pinned ones
 * (zero-copy: the kernel reads and writes host memory), graphs on, rows past
 * the batch left untouched, and 16 threads on one engine getting the same
 * bits as one. Parity with PyTorch itself is test_parity_cuda's job (its
 * mlp-s cases at fp16/bf16 run through this kernel).
 *
 * Skips without a usable CUDA device. FERRY_TEST_QUICK=1 runs a few batch
 * sizes of one configuration (for compute-sanitizer's racecheck, which is
 * slow).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ferry.h"
#include "util/half.h"

#define IN 256
#define OUT 256
#define MAXB 512

static char model_path[4096];
static ferry_model *model;
static char no_cuda[512];
static int quick; /* FERRY_TEST_QUICK=1 */

static ferry_status make_engine(ferry_precision p, ferry_dtype io, int fused, int graphs,
                                ferry_engine **e)
{
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = "cuda";
    cfg.workers = 2;
    cfg.max_batch = MAXB;
    cfg.precision = p;
    cfg.io_dtype = io;
    cfg.graphs = graphs;
    if (fused)
        unsetenv("FERRY_CUDA_MLP_MAX_BATCH");
    else
        setenv("FERRY_CUDA_MLP_MAX_BATCH", "0", 1);
    ferry_status st = ferry_engine_create(model, &cfg, e);
    unsetenv("FERRY_CUDA_MLP_MAX_BATCH");
    return st;
}

static float get(ferry_dtype dt, const void *p, size_t i)
{
    if (dt == FERRY_F16)
        return ferry_f16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static void fill(ferry_dtype dt, void *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f;
        if (dt == FERRY_F16)
            ((uint16_t *)p)[i] = ferry_f32_to_f16(v);
        else
            ((float *)p)[i] = v;
    }
}

static ferry_tensor view(void *data, ferry_dtype dt, int64_t n, int64_t w)
{
    ferry_tensor t = {.data = data, .dtype = dt, .ndim = 2, .shape = {n, w}};
    return t;
}

static ferry_status run(ferry_engine *e, ferry_dtype io, const void *x, void *y, int64_t n)
{
    ferry_tensor in = view((void *)x, io, n, IN), out = view(y, io, n, OUT);
    return ferry_engine_run(e, &in, 1, &out, 1);
}

/* ||a - b|| / ||b|| over n rows */
static double rel_err(ferry_dtype dt, const void *a, const void *b, int64_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)n * OUT; i++) {
        double x = get(dt, a, i), y = get(dt, b, i);
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_config(ferry_precision p, ferry_dtype io)
{
    if (no_cuda[0]) {
        print_message("note: skipped: %s\n", no_cuda);
        skip();
    }
    ferry_engine *ref = NULL, *fused = NULL, *graphs = NULL;
    assert_int_equal(make_engine(p, io, 0, 0, &ref), FERRY_OK);
    assert_int_equal(make_engine(p, io, 1, 0, &fused), FERRY_OK);
    assert_int_equal(make_engine(p, io, 1, 1, &graphs), FERRY_OK);

    size_t es = ferry_dtype_size(io);
    int64_t shape_in[2] = {MAXB, IN}, shape_out[2] = {MAXB, OUT};
    ferry_pool *pin_in, *pin_out;
    ferry_tensor pi, po;
    assert_int_equal(ferry_pool_create(shape_in, 2, io, "pinned", 1, &pin_in), FERRY_OK);
    assert_int_equal(ferry_pool_create(shape_out, 2, io, "pinned", 1, &pin_out), FERRY_OK);
    assert_int_equal(ferry_pool_acquire(pin_in, 0, &pi), FERRY_OK);
    assert_int_equal(ferry_pool_acquire(pin_out, 0, &po), FERRY_OK);
    void *x = malloc(MAXB * IN * es), *yr = malloc(MAXB * OUT * es), *yf = malloc(MAXB * OUT * es);
    assert_non_null(x);
    assert_non_null(yr);
    assert_non_null(yf);

    static const int64_t sizes[] = {1, 17, 64, 7, 15, 16, 32, 100, 255, 256, 257, 300, 512};
    size_t n_sizes = quick ? 3 : sizeof sizes / sizeof sizes[0];
    for (size_t k = 0; k < n_sizes; k++) {
        int64_t n = sizes[k];
        fill(io, x, (size_t)n * IN, 77u + (uint32_t)n);
        memcpy(pi.data, x, (size_t)n * IN * es);
        assert_int_equal(run(ref, io, x, yr, n), FERRY_OK);

        /* pageable: copies, then the fused kernel on device buffers */
        assert_int_equal(run(fused, io, x, yf, n), FERRY_OK);
        double e1 = rel_err(io, yf, yr, n);

        /* pinned: zero-copy; the row after the batch must stay as it was */
        memset(po.data, 0x5a, (size_t)MAXB * OUT * es);
        assert_int_equal(run(fused, io, pi.data, po.data, n), FERRY_OK);
        double e2 = rel_err(io, po.data, yr, n);
        const unsigned char *after = (const unsigned char *)po.data + (size_t)n * OUT * es;
        for (size_t i = 0; n < MAXB && i < OUT * es; i++)
            assert_int_equal(after[i], 0x5a);

        /* graphs on (pinned: zero-copy wins; pageable: the captured graph) */
        assert_int_equal(run(graphs, io, x, yf, n), FERRY_OK);
        double e3 = rel_err(io, yf, yr, n);
        assert_int_equal(run(graphs, io, pi.data, po.data, n), FERRY_OK);
        double e4 = rel_err(io, po.data, yr, n);

        print_message("  n=%-4lld pageable %.2e  pinned %.2e  graphs %.2e / %.2e\n", (long long)n,
                      e1, e2, e3, e4);
        assert_true(e1 < 1e-2 && e2 < 1e-2 && e3 < 1e-2 && e4 < 1e-2);
    }
    free(x);
    free(yr);
    free(yf);
    ferry_pool_release(pin_in, &pi);
    ferry_pool_release(pin_out, &po);
    ferry_pool_destroy(pin_in);
    ferry_pool_destroy(pin_out);
    ferry_engine_destroy(ref);
    ferry_engine_destroy(fused);
    ferry_engine_destroy(graphs);
}

static void test_fp16_f32(void **state)
{
    (void)state;
    check_config(FERRY_PRECISION_FP16, FERRY_F32);
}
static void test_fp16_f16(void **state)
{
    (void)state;
    if (quick)
        skip();
    check_config(FERRY_PRECISION_FP16, FERRY_F16);
}
static void test_bf16_f32(void **state)
{
    (void)state;
    if (quick)
        skip();
    check_config(FERRY_PRECISION_BF16, FERRY_F32);
}

/* 16 threads, each with its own pinned buffers and batch size, on one
 * engine: every result bitwise equal to the same batch run alone. */
#define T 16
typedef struct tjob {
    ferry_engine *e;
    int64_t n;
    float *x, *y, *want;
    int bad;
} tjob;

static void *thread_main(void *arg)
{
    tjob *j = arg;
    for (int it = 0; it < 200 && !j->bad; it++) {
        if (run(j->e, FERRY_F32, j->x, j->y, j->n) != FERRY_OK ||
            memcmp(j->y, j->want, (size_t)j->n * OUT * sizeof(float)))
            j->bad = 1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    if (no_cuda[0]) {
        print_message("note: skipped: %s\n", no_cuda);
        skip();
    }
    if (quick)
        skip();
    ferry_engine *e = NULL;
    assert_int_equal(make_engine(FERRY_PRECISION_FP16, FERRY_F32, 1, 0, &e), FERRY_OK);
    int64_t shape[2] = {64, IN};
    ferry_pool *pool;
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "pinned", 2 * T, &pool), FERRY_OK);
    tjob jobs[T];
    ferry_tensor bufs[2 * T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        assert_int_equal(ferry_pool_acquire(pool, 0, &bufs[2 * i]), FERRY_OK);
        assert_int_equal(ferry_pool_acquire(pool, 0, &bufs[2 * i + 1]), FERRY_OK);
        jobs[i] =
            (tjob){.e = e, .n = 1 + (i * 7) % 64, .x = bufs[2 * i].data, .y = bufs[2 * i + 1].data};
        jobs[i].want = malloc(64 * OUT * sizeof(float));
        assert_non_null(jobs[i].want);
        fill(FERRY_F32, jobs[i].x, (size_t)jobs[i].n * IN, 1000u + (uint32_t)i);
        assert_int_equal(run(e, FERRY_F32, jobs[i].x, jobs[i].want, jobs[i].n), FERRY_OK);
    }
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    int bad = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        bad += jobs[i].bad;
        free(jobs[i].want);
        ferry_pool_release(pool, &bufs[2 * i]);
        ferry_pool_release(pool, &bufs[2 * i + 1]);
    }
    assert_int_equal(bad, 0);
    ferry_pool_destroy(pool);
    ferry_engine_destroy(e);
}

int main(void)
{
    const char *dir = getenv("FERRY_TEST_MODELS"), *q = getenv("FERRY_TEST_QUICK");
    quick = q && !strcmp(q, "1");
    snprintf(model_path, sizeof model_path, "%s/mlp-s.onnx", dir ? dir : FERRY_TEST_MODELS);
    if (ferry_model_load(model_path, &model) != FERRY_OK) {
        fprintf(stderr, "ferry_model_load('%s'): %s\n", model_path, ferry_last_error());
        return 1;
    }
    ferry_engine *e = NULL;
    ferry_status st = make_engine(FERRY_PRECISION_FP16, FERRY_F32, 1, 0, &e);
    if (st == FERRY_EUNSUPPORTED || st == FERRY_EDEVICE || st == FERRY_ENOTFOUND)
        snprintf(no_cuda, sizeof no_cuda, "no usable CUDA device (%s: %s)", ferry_status_str(st),
                 ferry_last_error());
    else if (st != FERRY_OK) {
        fprintf(stderr, "ferry_engine_create(cuda fp16): %s\n", ferry_last_error());
        return 1;
    }
    ferry_engine_destroy(e);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_f32),
        cmocka_unit_test(test_fp16_f16),
        cmocka_unit_test(test_bf16_f32),
        cmocka_unit_test(test_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_model_destroy(model);
    return rc;
}
