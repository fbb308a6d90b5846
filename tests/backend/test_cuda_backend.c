/*
 * test_cuda_backend.c - the CUDA backend on hand-made graphs, against host
 * references computed in double: Gemm with fused bias+ReLU and GELU, batched
 * MatMul, LayerNorm, Softmax/LogSoftmax, broadcasting arithmetic, ReduceMean,
 * io-dtype conversion, graph capture/replay, the data-movement, comparison,
 * integer and reduction ops of the transformer exports, patch convolutions,
 * PRelu, Min, Max, CumSum, EyeLike, DepthToSpace, GatherElements,
 * ScatterElements, GridSample, Einsum, TopK, ReduceL1, ReduceLogSum, the
 * integer reductions, PRelu channels-last, and the unsupported-operator error
 * (which needs no device). Every other
 * test is skipped when no CUDA device is found (CI has none).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/attention_ref.h"
#include "backend/backend.h"
#include "graph/graph.h"
#include "util/error.h"
#include "util/half.h"

#ifdef FERRY_HAVE_CUDA

static int have_device = -1;

static void need_device(void)
{
    if (have_device < 0) {
        int n = 0;
        char desc[1024];
        have_device = ferry_backend_cuda.probe(&n, desc, sizeof desc) == FERRY_OK && n > 0;
        if (have_device)
            print_message("%s\n", desc);
        else
            print_message("no CUDA device: %s\n", ferry_last_error());
    }
    if (!have_device)
        skip();
}

/* ---- graph building */

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / 8388608.0 - 1.0);
}

static int add_val(graph *g, const char *name, int ndim, ...)
{
    int64_t d[FERRY_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        d[i] = va_arg(ap, int64_t);
    va_end(ap);
    int v = graph_add_value(g, name, FERRY_F32, ndim, d);
    assert_true(v >= 0);
    return v;
}

/* A constant of random values in [-scale, scale) (or `fill` when scale is 0). */
static int add_const(graph *g, const char *name, float scale, float fill, int ndim, ...)
{
    int64_t d[FERRY_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        d[i] = va_arg(ap, int64_t);
    va_end(ap);
    int v = graph_add_value(g, name, FERRY_F32, ndim, d);
    assert_true(v >= 0);
    int64_t n = graph_value_numel(&g->values[v], 1);
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = scale != 0.0f ? scale * frand() : fill;
    g->values[v].data = p;
    g->values[v].is_const = 1;
    return v;
}

static const float *cdata(const graph *g, int v)
{
    return g->values[v].data;
}

static void set_io(graph *g, int n_in, const int *in, int n_out, const int *out)
{
    g->inputs = malloc(sizeof(int) * (size_t)n_in);
    g->outputs = malloc(sizeof(int) * (size_t)n_out);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    for (int i = 0; i < n_in; i++) {
        g->inputs[i] = in[i];
        g->values[in[i]].is_input = 1;
    }
    for (int i = 0; i < n_out; i++) {
        g->outputs[i] = out[i];
        g->values[out[i]].is_output = 1;
    }
    g->n_inputs = n_in;
    g->n_outputs = n_out;
    g->opset = 17;
}

/* ---- running */

static void to_io(ferry_dtype io, const float *src, void *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (io == FERRY_F16)
            ((uint16_t *)dst)[i] = ferry_f32_to_f16(src[i]);
        else if (io == FERRY_BF16)
            ((uint16_t *)dst)[i] = ferry_f32_to_bf16(src[i]);
        else
            ((float *)dst)[i] = src[i];
    }
}

static float from_io(ferry_dtype io, const void *src, int64_t i)
{
    if (io == FERRY_F16)
        return ferry_f16_to_f32(((const uint16_t *)src)[i]);
    if (io == FERRY_BF16)
        return ferry_bf16_to_f32(((const uint16_t *)src)[i]);
    return ((const float *)src)[i];
}

typedef struct run_cfg {
    ferry_precision prec;
    ferry_dtype io;
    int64_t max_batch;
    int capture; /* capture the forward, then replay it on fresh inputs */
} run_cfg;

/* Runs g on the single input x (n samples) and returns output 0 as fp32
 * (caller frees). With capture, the graph is captured once on inputs xs2
 * poisoned and replayed on x, so a wrong replay cannot match. */
static float *run_graph(graph *g, const run_cfg *rc, int64_t n, const float *x)
{
    const ferry_backend_ops *ops = &ferry_backend_cuda;
    backend_opts o = {
        .device = 0, .precision = rc->prec, .io_dtype = rc->io, .max_batch = rc->max_batch};
    backend_ctx *c = NULL;
    backend_stream *s = NULL;
    ferry_status st = ops->ctx_create(g, &o, &c);
    if (st != FERRY_OK)
        fail_msg("ctx_create: %s: %s", ferry_status_str(st), ferry_last_error());
    assert_int_equal(ops->stream_create(c, &s), FERRY_OK);
    size_t es = ferry_dtype_size(rc->io);
    int64_t nin = graph_value_numel(&g->values[g->inputs[0]], n);
    int64_t nout = graph_value_numel(&g->values[g->outputs[0]], n);
    void *hin, *hout, *din, *dout, *arena = NULL;
    assert_int_equal(ops->host_alloc(c, (size_t)nin * es, &hin), FERRY_OK);
    assert_int_equal(ops->host_alloc(c, (size_t)nout * es, &hout), FERRY_OK);
    assert_int_equal(ops->alloc(c, (size_t)nin * es, &din), FERRY_OK);
    assert_int_equal(ops->alloc(c, (size_t)nout * es, &dout), FERRY_OK);
    if (ops->arena_bytes(c))
        assert_int_equal(ops->alloc(c, ops->arena_bytes(c), &arena), FERRY_OK);
    const void *ins[1] = {din};
    void *outs[1] = {dout};

    /* Poison the output so an unwritten element cannot pass. */
    memset(hout, 0xff, (size_t)nout * es);
    assert_int_equal(ops->copy_h2d(s, dout, hout, (size_t)nout * es), FERRY_OK);
    if (rc->capture) {
        float *junk = malloc((size_t)nin * sizeof *junk);
        assert_non_null(junk);
        for (int64_t i = 0; i < nin; i++)
            junk[i] = 100.0f * frand();
        to_io(rc->io, junk, hin, nin);
        free(junk);
        assert_int_equal(ops->copy_h2d(s, din, hin, (size_t)nin * es), FERRY_OK);
        /* First call uncaptured: the matmul heuristics run here, as in the
         * engine's warm-up. */
        assert_int_equal(ops->forward(s, n, ins, outs, arena), FERRY_OK);
        assert_int_equal(ops->stream_sync(s), FERRY_OK);
        backend_graph *bg = NULL;
        assert_int_equal(ops->capture_begin(s), FERRY_OK);
        st = ops->forward(s, n, ins, outs, arena);
        backend_graph *tmp = NULL;
        ferry_status st2 = ops->capture_end(s, &tmp);
        bg = tmp;
        if (st != FERRY_OK || st2 != FERRY_OK)
            fail_msg("capture: %s", ferry_last_error());
        memset(hout, 0xff, (size_t)nout * es);
        assert_int_equal(ops->copy_h2d(s, dout, hout, (size_t)nout * es), FERRY_OK);
        to_io(rc->io, x, hin, nin);
        assert_int_equal(ops->copy_h2d(s, din, hin, (size_t)nin * es), FERRY_OK);
        assert_int_equal(ops->graph_launch(bg, s), FERRY_OK);
        assert_int_equal(ops->stream_sync(s), FERRY_OK);
        ops->graph_destroy(bg);
    } else {
        to_io(rc->io, x, hin, nin);
        assert_int_equal(ops->copy_h2d(s, din, hin, (size_t)nin * es), FERRY_OK);
        st = ops->forward(s, n, ins, outs, arena);
        if (st != FERRY_OK)
            fail_msg("forward: %s: %s", ferry_status_str(st), ferry_last_error());
    }
    backend_event *ev = NULL;
    assert_int_equal(ops->event_create(c, &ev), FERRY_OK);
    assert_int_equal(ops->copy_d2h(s, hout, dout, (size_t)nout * es), FERRY_OK);
    assert_int_equal(ops->event_record(ev, s), FERRY_OK);
    assert_int_equal(ops->event_sync(ev), FERRY_OK);
    ops->event_destroy(ev);
    float *y = malloc((size_t)nout * sizeof *y);
    assert_non_null(y);
    for (int64_t i = 0; i < nout; i++)
        y[i] = from_io(rc->io, hout, i);
    assert_int_equal(ops->device_sync(c), FERRY_OK);
    ops->free(c, din);
    ops->free(c, dout);
    ops->free(c, arena);
    ops->host_free(c, hin);
    ops->host_free(c, hout);
    ops->stream_destroy(s);
    ops->ctx_destroy(c);
    return y;
}

/* ||y - ref|| / ||ref|| must stay under tol; NaN never passes. */
static void check_close(const char *what, const float *y, const double *ref, int64_t n, double tol)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            fail_msg("%s: element %lld is %f (ref %f)", what, (long long)i, y[i], ref[i]);
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    print_message("  %-28s rel err %.2e (tol %.0e)\n", what, rel, tol);
    if (!(rel <= tol))
        fail_msg("%s: relative error %.3e > %.0e", what, rel, tol);
}

static double tol_of(ferry_precision p)
{
    switch (p) {
    case FERRY_PRECISION_FP32: return 1e-5;
    case FERRY_PRECISION_TF32: return 1e-3;
    default: return 2e-2;
    }
}

static const char *prec_name(ferry_precision p)
{
    static const char *n[] = {"fp32", "tf32", "fp16", "bf16"};
    return n[p];
}

static float *rand_vec(int64_t n, float scale)
{
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = scale * frand();
    return p;
}

static double gelu_ref(double v)
{
    return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
}

/* ---- Gemm + bias + activation */

/* x [N,K] -> Gemm(transB, bias, act) -> [N,M]; trans_b=0 stores W as [K,M]. */
static void gemm_case(ferry_precision prec, ferry_dtype io, act_kind act, int trans_b, int capture)
{
    const int64_t K = 72, M = 40, n = 37;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, K);
    int w = trans_b ? add_const(g, "W", 0.2f, 0, 2, M, K) : add_const(g, "W", 0.2f, 0, 2, K, M);
    int b = add_const(g, "b", 0.5f, 0, 1, M);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, M);
    int ins[3] = {x, w, b};
    int nd = graph_add_node(g, OP_GEMM, "fc1", 3, ins, 1, &y);
    g->nodes[nd].trans_b = trans_b;
    g->nodes[nd].act = act;
    set_io(g, 1, &x, 1, &y);

    float *xv = rand_vec(n * K, 1.0f);
    /* The caller's data is in the io dtype: the reference sees it rounded. */
    float h[1];
    for (int64_t i = 0; i < n * K && io != FERRY_F32; i++) {
        to_io(io, &xv[i], h, 1);
        xv[i] = from_io(io, h, 0);
    }
    run_cfg rc = {prec, io, 64, capture};
    float *yv = run_graph(g, &rc, n, xv);
    double *ref = malloc(sizeof(double) * (size_t)(n * M));
    assert_non_null(ref);
    const float *W = cdata(g, w), *B = cdata(g, b);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < M; j++) {
            double acc = B[j];
            for (int64_t k = 0; k < K; k++)
                acc += (double)xv[i * K + k] * (trans_b ? W[j * K + k] : W[k * M + j]);
            if (act == ACT_RELU)
                acc = acc > 0 ? acc : 0;
            else if (act == ACT_GELU)
                acc = gelu_ref(acc);
            else if (act == ACT_SIGMOID)
                acc = 1.0 / (1.0 + exp(-acc));
            ref[i * M + j] = acc;
        }
    char what[96];
    snprintf(what, sizeof what, "gemm %s %s io=%s%s", act_name(act), prec_name(prec),
             ferry_dtype_name(io), capture ? " graph" : "");
    /* A 16-bit io dtype rounds the output too. */
    check_close(what, yv, ref, n * M, io == FERRY_F32 ? tol_of(prec) : 2e-2);
    free(ref);
    free(yv);
    free(xv);
    graph_free(g);
}

static void test_gemm_bias_relu(void **state)
{
    (void)state;
    need_device();
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++)
        gemm_case((ferry_precision)p, FERRY_F32, ACT_RELU, 1, 0);
}

static void test_gemm_gelu(void **state)
{
    (void)state;
    need_device();
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++)
        gemm_case((ferry_precision)p, FERRY_F32, ACT_GELU, 0, 0);
    gemm_case(FERRY_PRECISION_FP32, FERRY_F32, ACT_SIGMOID, 1, 0);
}

/* io dtype differs from the compute dtype: conversion kernels both ways. */
static void test_io_dtypes(void **state)
{
    (void)state;
    need_device();
    gemm_case(FERRY_PRECISION_FP16, FERRY_F16, ACT_RELU, 1, 0);
    gemm_case(FERRY_PRECISION_BF16, FERRY_F32, ACT_RELU, 1, 0);
    gemm_case(FERRY_PRECISION_FP32, FERRY_BF16, ACT_NONE, 1, 0);
}

static void test_capture_replay(void **state)
{
    (void)state;
    need_device();
    gemm_case(FERRY_PRECISION_FP32, FERRY_F32, ACT_GELU, 1, 1);
    gemm_case(FERRY_PRECISION_FP16, FERRY_F32, ACT_RELU, 1, 1);
}

/* ---- a two-layer MLP: plan arena reuse across nodes */

static void test_mlp_two_layers(void **state)
{
    (void)state;
    need_device();
    const int64_t D0 = 32, D1 = 64, D2 = 16, n = 50;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, D0);
    int w1 = add_const(g, "W1", 0.25f, 0, 2, D1, D0), b1 = add_const(g, "b1", 0.1f, 0, 1, D1);
    int h = add_val(g, "h", 2, (int64_t)FERRY_DIM_BATCH, D1);
    int w2 = add_const(g, "W2", 0.25f, 0, 2, D2, D1), b2 = add_const(g, "b2", 0.1f, 0, 1, D2);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, D2);
    int in1[3] = {x, w1, b1}, in2[3] = {h, w2, b2};
    int n1 = graph_add_node(g, OP_GEMM, "fc1", 3, in1, 1, &h);
    int n2 = graph_add_node(g, OP_GEMM, "fc2", 3, in2, 1, &y);
    g->nodes[n1].trans_b = g->nodes[n2].trans_b = 1;
    g->nodes[n1].act = ACT_RELU;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * D0, 1.0f);
    double *hr = malloc(sizeof(double) * (size_t)(n * D1)),
           *yr = malloc(sizeof(double) * (size_t)(n * D2));
    assert_non_null(hr);
    assert_non_null(yr);
    const float *W1 = cdata(g, w1), *B1 = cdata(g, b1), *W2 = cdata(g, w2), *B2 = cdata(g, b2);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < D1; j++) {
            double a = B1[j];
            for (int64_t k = 0; k < D0; k++)
                a += (double)xv[i * D0 + k] * W1[j * D0 + k];
            hr[i * D1 + j] = a > 0 ? a : 0;
        }
        for (int64_t j = 0; j < D2; j++) {
            double a = B2[j];
            for (int64_t k = 0; k < D1; k++)
                a += hr[i * D1 + k] * W2[j * D1 + k];
            yr[i * D2 + j] = a;
        }
    }
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++) {
        run_cfg rc = {(ferry_precision)p, FERRY_F32, 128, 0};
        float *yv = run_graph(g, &rc, n, xv);
        char what[64];
        snprintf(what, sizeof what, "mlp %s", prec_name((ferry_precision)p));
        check_close(what, yv, yr, n * D2, tol_of((ferry_precision)p));
        free(yv);
    }
    free(hr);
    free(yr);
    free(xv);
    graph_free(g);
}

/* ---- concurrency: several threads, one stream each, on one ctx, with
 * batch sizes that differ per call (matmul cache filled concurrently) */

typedef struct conc_arg {
    graph *g;
    backend_ctx *c;
    const float *x;    /* max_batch rows of input */
    const double *ref; /* max_batch rows of reference output */
    int64_t max_batch, d_in, d_out;
    int tid, failures;
    double worst;
} conc_arg;

static void *conc_worker(void *p)
{
    conc_arg *a = p;
    const ferry_backend_ops *ops = &ferry_backend_cuda;
    backend_stream *s = NULL;
    void *din = NULL, *dout = NULL, *arena = NULL;
    float *hout = NULL;
    if (ops->stream_create(a->c, &s) != FERRY_OK ||
        ops->alloc(a->c, (size_t)(a->max_batch * a->d_in) * 4, &din) != FERRY_OK ||
        ops->alloc(a->c, (size_t)(a->max_batch * a->d_out) * 4, &dout) != FERRY_OK ||
        ops->alloc(a->c, ops->arena_bytes(a->c), &arena) != FERRY_OK ||
        ops->host_alloc(a->c, (size_t)(a->max_batch * a->d_out) * 4, (void **)&hout) != FERRY_OK) {
        a->failures++;
        goto out;
    }
    if (ops->copy_h2d(s, din, a->x, (size_t)(a->max_batch * a->d_in) * 4) != FERRY_OK)
        a->failures++;
    for (int it = 0; it < 24 && !a->failures; it++) {
        int64_t n = 1 + (it * 37 + a->tid * 101) % a->max_batch;
        const void *ins[1] = {din};
        void *outs[1] = {dout};
        memset(hout, 0xff, (size_t)(n * a->d_out) * 4);
        if (ops->forward(s, n, ins, outs, arena) != FERRY_OK ||
            ops->copy_d2h(s, hout, dout, (size_t)(n * a->d_out) * 4) != FERRY_OK ||
            ops->stream_sync(s) != FERRY_OK) {
            a->failures++;
            break;
        }
        double num = 0, den = 0;
        for (int64_t i = 0; i < n * a->d_out; i++) {
            double e = hout[i] - a->ref[i];
            num += isfinite(hout[i]) ? e * e : 1e30;
            den += a->ref[i] * a->ref[i];
        }
        double rel = sqrt(num / den);
        if (rel > a->worst)
            a->worst = rel;
        if (!(rel <= 1e-5))
            a->failures++;
    }
out:
    ops->free(a->c, din);
    ops->free(a->c, dout);
    ops->free(a->c, arena);
    ops->host_free(a->c, hout);
    ops->stream_destroy(s);
    return NULL;
}

static void test_concurrent_streams(void **state)
{
    (void)state;
    need_device();
    /* compute-sanitizer's racecheck (shared-memory hazards inside kernels,
     * which the single-stream tests cover) once stalled on four host threads
     * for minutes: bench/gpu/run_cuda_tests.sh sets this there. */
    if (getenv("FERRY_TEST_NO_THREADS"))
        skip();
    enum { THREADS = 4 };
    const int64_t D0 = 48, D1 = 80, D2 = 24, NB = 300;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, D0);
    int w1 = add_const(g, "W1", 0.25f, 0, 2, D1, D0), b1 = add_const(g, "b1", 0.1f, 0, 1, D1);
    int h = add_val(g, "h", 2, (int64_t)FERRY_DIM_BATCH, D1);
    int w2 = add_const(g, "W2", 0.25f, 0, 2, D2, D1), b2 = add_const(g, "b2", 0.1f, 0, 1, D2);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, D2);
    int in1[3] = {x, w1, b1}, in2[3] = {h, w2, b2};
    int n1 = graph_add_node(g, OP_GEMM, "fc1", 3, in1, 1, &h);
    int n2 = graph_add_node(g, OP_GEMM, "fc2", 3, in2, 1, &y);
    g->nodes[n1].trans_b = g->nodes[n2].trans_b = 1;
    g->nodes[n1].act = ACT_TANH; /* a post-matmul kernel as well */
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(NB * D0, 1.0f);
    double *ref = malloc(sizeof(double) * (size_t)(NB * D2)), hr[80];
    assert_non_null(ref);
    const float *W1 = cdata(g, w1), *B1 = cdata(g, b1), *W2 = cdata(g, w2), *B2 = cdata(g, b2);
    for (int64_t i = 0; i < NB; i++) {
        for (int64_t j = 0; j < D1; j++) {
            double a = B1[j];
            for (int64_t k = 0; k < D0; k++)
                a += (double)xv[i * D0 + k] * W1[j * D0 + k];
            hr[j] = tanh(a);
        }
        for (int64_t j = 0; j < D2; j++) {
            double a = B2[j];
            for (int64_t k = 0; k < D1; k++)
                a += hr[k] * W2[j * D1 + k];
            ref[i * D2 + j] = a;
        }
    }
    backend_opts o = {
        .device = 0, .precision = FERRY_PRECISION_FP32, .io_dtype = FERRY_F32, .max_batch = NB};
    backend_ctx *c = NULL;
    assert_int_equal(ferry_backend_cuda.ctx_create(g, &o, &c), FERRY_OK);
    conc_arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (conc_arg){g, c, xv, ref, NB, D0, D2, t, 0, 0.0};
        assert_int_equal(pthread_create(&th[t], NULL, conc_worker, &args[t]), 0);
    }
    int failures = 0;
    double worst = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        failures += args[t].failures;
        worst = fmax(worst, args[t].worst);
    }
    print_message("  %-28s worst rel err %.2e over %d threads\n", "concurrent streams", worst,
                  THREADS);
    assert_int_equal(failures, 0);
    ferry_backend_cuda.ctx_destroy(c);
    free(ref);
    free(xv);
    graph_free(g);
}

/* ---- LayerNorm */

/* Widths on both kernels: the warp-per-row one (d <= 1024, each register
 * count: 4, 8, 16, 24, 32 a lane, rows ragged against the lanes) and the
 * block-per-row one beyond. */
static void layernorm_case(int64_t D)
{
    const int64_t n = 33;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, D);
    int sc = add_const(g, "scale", 1.0f, 0, 1, D), bi = add_const(g, "bias", 0.5f, 0, 1, D);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, D);
    int ins[3] = {x, sc, bi};
    int nd = graph_add_node(g, OP_LAYER_NORM, "ln", 3, ins, 1, &y);
    g->nodes[nd].axis = -1;
    g->nodes[nd].epsilon = 1e-5f;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * D, 3.0f);
    for (int64_t i = 0; i < n * D; i++)
        xv[i] += 5.0f; /* a large mean: the two-pass variance must hold */
    double *ref = malloc(sizeof(double) * (size_t)(n * D));
    assert_non_null(ref);
    const float *S = cdata(g, sc), *B = cdata(g, bi);
    for (int64_t i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < D; j++)
            m += xv[i * D + j];
        m /= D;
        for (int64_t j = 0; j < D; j++)
            v += (xv[i * D + j] - m) * (xv[i * D + j] - m);
        v /= D;
        for (int64_t j = 0; j < D; j++)
            ref[i * D + j] = (xv[i * D + j] - m) / sqrt(v + 1e-5) * S[j] + B[j];
    }
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++) {
        if (p == FERRY_PRECISION_TF32)
            continue; /* no matmul: same as fp32 */
        run_cfg rc = {(ferry_precision)p, FERRY_F32, 64, 0};
        float *yv = run_graph(g, &rc, n, xv);
        char what[64];
        snprintf(what, sizeof what, "layernorm d %lld %s", (long long)D,
                 prec_name((ferry_precision)p));
        check_close(what, yv, ref, n * D, tol_of((ferry_precision)p));
        free(yv);
    }
    free(ref);
    free(xv);
    graph_free(g);
}

static void test_layernorm(void **state)
{
    (void)state;
    need_device();
    static const int64_t widths[] = {1, 7, 96, 200, 384, 700, 768, 1000, 1024, 1025, 3000};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        layernorm_case(widths[i]);
}

/* ---- Softmax / LogSoftmax, short rows (warp per row) and long rows (block) */

static void softmax_case(int64_t D, int want_log, ferry_precision prec)
{
    const int64_t n = 19;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, D);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, D);
    int nd = graph_add_node(g, want_log ? OP_LOG_SOFTMAX : OP_SOFTMAX, "sm", 1, &x, 1, &y);
    g->nodes[nd].axis = -1;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * D, 4.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * D));
    assert_non_null(ref);
    for (int64_t i = 0; i < n; i++) {
        double m = -1e300, s = 0;
        for (int64_t j = 0; j < D; j++)
            m = fmax(m, xv[i * D + j]);
        for (int64_t j = 0; j < D; j++)
            s += exp(xv[i * D + j] - m);
        for (int64_t j = 0; j < D; j++)
            ref[i * D + j] = want_log ? xv[i * D + j] - m - log(s) : exp(xv[i * D + j] - m) / s;
    }
    run_cfg rc = {prec, FERRY_F32, 32, 0};
    float *yv = run_graph(g, &rc, n, xv);
    char what[64];
    snprintf(what, sizeof what, "%s d=%lld %s", want_log ? "logsoftmax" : "softmax", (long long)D,
             prec_name(prec));
    check_close(what, yv, ref, n * D, tol_of(prec));
    free(yv);
    free(ref);
    free(xv);
    graph_free(g);
}

static void test_softmax(void **state)
{
    (void)state;
    need_device();
    softmax_case(10, 0, FERRY_PRECISION_FP32);
    softmax_case(3000, 0, FERRY_PRECISION_FP32);
    softmax_case(77, 1, FERRY_PRECISION_FP32);
    softmax_case(2500, 1, FERRY_PRECISION_FP32);
    softmax_case(300, 0, FERRY_PRECISION_FP16);
    softmax_case(300, 0, FERRY_PRECISION_BF16);
}

/* ---- the fused attention (kernels_attention.cu) against attention_ref.h:
 * Q, K, V as the column ranges of one [N, T, 3D] projection, or of one
 * [T, N, 3D] (time-major, MultiheadAttention's; Y [T*N, D]); a causal mask
 * [1,1,T,T] of -1e9 (-inf once stored in fp16) or none. The tensor-core
 * kernel for 16-bit heads of 32..128 (several key tiles, odd T, fewer warps
 * at a small batch, the keys split over warps at a smaller one), the CUDA-core one for fp32/tf32
 * and for 16-bit heads of 24 or 256. */
static void attention_case(ferry_precision prec, int64_t n, int64_t H, int64_t T, int64_t d,
                           int causal, int capture, int time_major)
{
    graph *g = graph_new();
    int64_t D = H * d, W = 3 * D, N = FERRY_DIM_BATCH;
    int in[4];
    in[0] = in[1] = in[2] =
        time_major ? add_val(g, "qkv", 3, T, N, W) : add_val(g, "qkv", 3, N, T, W);
    in[3] = causal ? add_const(g, "mask", 0, 0, 4, (int64_t)1, (int64_t)1, T, T) : -1;
    int y = time_major ? add_val(g, "y", 2, -T, D) : add_val(g, "y", 3, N, T, D);
    attn_ref r = {n, H, T, T, d, {0}, {0}, {0, D, 2 * D}, 1.0 / sqrt((double)d), NULL, {0, 0, 0}};
    for (int k = 0; k < 4; k++) {
        int64_t w = k < 3 ? W : D;
        r.bs[k] = time_major ? w : T * w;
        r.rs[k] = time_major ? n * w : w;
    }
    if (causal) {
        float *m = g->values[in[3]].data;
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < T; j++)
                m[i * T + j] = j > i ? -1e9f : 0.0f;
        r.mask = m;
        r.mstride[2] = T;
    }
    int nd = graph_add_node(g, OP_ATTENTION, "attn", causal ? 4 : 3, in, 1, &y);
    g->nodes[nd].heads = H;
    g->nodes[nd].head_dim = d;
    g->nodes[nd].alpha = (float)r.scale;
    g->nodes[nd].mode = time_major;
    for (int k = 0; k < 3; k++)
        g->nodes[nd].starts[k] = r.off[k];
    set_io(g, 1, in, 1, &y);
    float *xv = rand_vec(n * T * W, 2.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * T * D));
    assert_non_null(ref);
    attention_ref(&r, xv, xv, xv, ref);
    run_cfg rc = {prec, FERRY_F32, n, capture};
    float *yv = run_graph(g, &rc, n, xv);
    char what[80];
    snprintf(what, sizeof what, "attention H%lld T%lld d%lld%s%s %s", (long long)H, (long long)T,
             (long long)d, causal ? " causal" : "", time_major ? " t-major" : "", prec_name(prec));
    check_close(what, yv, ref, n * T * D, tol_of(prec));
    free(yv);
    free(ref);
    free(xv);
    graph_free(g);
}

static void test_attention(void **state)
{
    (void)state;
    need_device();
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++) {
        attention_case((ferry_precision)p, 3, 4, 77, 64, 1, 0, 0);
        attention_case((ferry_precision)p, 2, 3, 130, 32, 0, 0, 0);
        attention_case((ferry_precision)p, 5, 4, 17, 16, 0, 0, 1); /* ViT's layout */
    }
    attention_case(FERRY_PRECISION_FP16, 40, 12, 128, 64, 1, 1, 0); /* 4-warp blocks, captured */
    /* Few blocks: the keys split over 2 warps (BERT-base at batch 1,
     * captured) or 4 (130 keys: the fourth warp's tile is past them). */
    attention_case(FERRY_PRECISION_FP16, 1, 12, 128, 64, 1, 1, 0);
    attention_case(FERRY_PRECISION_BF16, 1, 2, 130, 32, 1, 0, 0);
    attention_case(FERRY_PRECISION_BF16, 2, 2, 200, 128, 1, 0, 0);
    attention_case(FERRY_PRECISION_FP16, 2, 3, 19, 24, 1, 0, 0); /* 16-bit on CUDA cores */
    attention_case(FERRY_PRECISION_FP16, 1, 2, 40, 256, 0, 0, 0);
    attention_case(FERRY_PRECISION_FP32, 1, 2, 40, 256, 1, 1, 0);
}

/* ---- broadcasting arithmetic: x [N,4,6] op c, then a general broadcast */

static double binop(op_kind op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return pow(a, b);
    default: return 0;
    }
}

static void bcast_case(op_kind op, int64_t c0, int64_t c1, ferry_precision prec)
{
    const int64_t n = 11, A = 4, B = 6;
    graph *g = graph_new();
    int x = add_val(g, "x", 3, (int64_t)FERRY_DIM_BATCH, A, B);
    /* c is [c0, c1]: [1,6] suffix broadcast, [4,1] general broadcast. */
    int cv = op == OP_DIV || op == OP_POW ? add_const(g, "c", 0, 0, 2, c0, c1)
                                          : add_const(g, "c", 1.0f, 0, 2, c0, c1);
    if (op == OP_DIV || op == OP_POW) {
        float *p = g->values[cv].data;
        for (int64_t i = 0; i < c0 * c1; i++)
            p[i] = op == OP_POW ? (float)(1 + i % 3) : 0.5f + 0.25f * (float)i;
    }
    int y = add_val(g, "y", 3, (int64_t)FERRY_DIM_BATCH, A, B);
    int ins[2] = {x, cv};
    graph_add_node(g, op, NULL, 2, ins, 1, &y);
    set_io(g, 1, &x, 1, &y);
    /* negative bases too: Pow's exponents here are 1, 2 and 3 (T5's
     * RMSNorm squares activations of both signs) */
    float *xv = rand_vec(n * A * B, 2.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * A * B));
    assert_non_null(ref);
    const float *C = cdata(g, cv);
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < A; a++)
            for (int64_t b = 0; b < B; b++) {
                int64_t ci = (c0 == 1 ? 0 : a) * c1 + (c1 == 1 ? 0 : b);
                ref[(i * A + a) * B + b] = binop(op, xv[(i * A + a) * B + b], C[ci]);
            }
    run_cfg rc = {prec, FERRY_F32, 16, 0};
    float *yv = run_graph(g, &rc, n, xv);
    char what[64];
    snprintf(what, sizeof what, "%s [%lld,%lld] %s", op_name(op), (long long)c0, (long long)c1,
             prec_name(prec));
    check_close(what, yv, ref, n * A * B, tol_of(prec));
    free(yv);
    free(ref);
    free(xv);
    graph_free(g);
}

static void test_broadcast(void **state)
{
    (void)state;
    need_device();
    for (op_kind op = OP_ADD; op <= OP_POW; op++) {
        bcast_case(op, 1, 6, FERRY_PRECISION_FP32);
        bcast_case(op, 4, 1, FERRY_PRECISION_FP32);
    }
    bcast_case(OP_MUL, 4, 1, FERRY_PRECISION_FP16);
    bcast_case(OP_ADD, 1, 6, FERRY_PRECISION_BF16);
}

/* ---- ReduceMean over the last axis, keepdims */

static void test_reduce_mean(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 9, A = 5, B = 130;
    graph *g = graph_new();
    int x = add_val(g, "x", 3, (int64_t)FERRY_DIM_BATCH, A, B);
    int y = add_val(g, "y", 3, (int64_t)FERRY_DIM_BATCH, A, (int64_t)1);
    int nd = graph_add_node(g, OP_REDUCE_MEAN, "rm", 1, &x, 1, &y);
    g->nodes[nd].n_axes = 1;
    g->nodes[nd].axes[0] = -1;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * A * B, 1.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * A));
    assert_non_null(ref);
    for (int64_t i = 0; i < n * A; i++) {
        double s = 0;
        for (int64_t b = 0; b < B; b++)
            s += xv[i * B + b];
        ref[i] = s / B;
    }
    run_cfg rc = {FERRY_PRECISION_FP32, FERRY_F32, 16, 0};
    float *yv = run_graph(g, &rc, n, xv);
    check_close("reducemean fp32", yv, ref, n * A, 1e-5);
    free(yv);
    free(ref);
    free(xv);
    graph_free(g);
}

/* ---- batched MatMul of two activations: x [N,4,4] @ x [N,4,4] */

static void test_matmul_batched(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 21, S = 4;
    graph *g = graph_new();
    int x = add_val(g, "x", 3, (int64_t)FERRY_DIM_BATCH, S, S);
    int y = add_val(g, "y", 3, (int64_t)FERRY_DIM_BATCH, S, S);
    int ins[2] = {x, x};
    graph_add_node(g, OP_MATMUL, "mm", 2, ins, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * S * S, 1.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * S * S));
    assert_non_null(ref);
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < S; i++)
            for (int64_t j = 0; j < S; j++) {
                double a = 0;
                for (int64_t k = 0; k < S; k++)
                    a += (double)xv[(b * S + i) * S + k] * xv[(b * S + k) * S + j];
                ref[(b * S + i) * S + j] = a;
            }
    run_cfg rc = {FERRY_PRECISION_FP32, FERRY_F32, 32, 0};
    float *yv = run_graph(g, &rc, n, xv);
    check_close("matmul batched fp32", yv, ref, n * S * S, 1e-5);
    free(yv);
    free(ref);
    free(xv);
    graph_free(g);
}

/* ---- unary chain and views: LeakyRelu -> Gelu(tanh) -> Reshape (run as a
 * copy) -> Sigmoid -> Flatten aliased by the graph output (the output is
 * copied out of the arena) */

static void test_unary_and_views(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 13, D = 12;
    graph *g = graph_new();
    int x = add_val(g, "x", 2, (int64_t)FERRY_DIM_BATCH, D);
    int a = add_val(g, "a", 2, (int64_t)FERRY_DIM_BATCH, D);
    int b = add_val(g, "b", 2, (int64_t)FERRY_DIM_BATCH, D);
    int c = add_val(g, "c", 3, (int64_t)FERRY_DIM_BATCH, (int64_t)3, (int64_t)4);
    int d = add_val(g, "d", 3, (int64_t)FERRY_DIM_BATCH, (int64_t)3, (int64_t)4);
    int y = add_val(g, "y", 2, (int64_t)FERRY_DIM_BATCH, D);
    int n1 = graph_add_node(g, OP_LEAKY_RELU, "lrelu", 1, &x, 1, &a);
    g->nodes[n1].alpha = 0.1f;
    int n2 = graph_add_node(g, OP_GELU, "gelu", 1, &a, 1, &b);
    g->nodes[n2].approximate = 1;
    graph_add_node(g, OP_RESHAPE, "reshape", 1, &b, 1, &c);
    graph_add_node(g, OP_SIGMOID, "sigmoid", 1, &c, 1, &d);
    graph_add_node(g, OP_FLATTEN, "flatten", 1, &d, 1, &y);
    g->values[y].alias = d; /* a resolved view: plan skips the node */
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * D, 3.0f);
    double *ref = malloc(sizeof(double) * (size_t)(n * D));
    assert_non_null(ref);
    for (int64_t i = 0; i < n * D; i++) {
        double v = xv[i] >= 0 ? xv[i] : 0.1 * xv[i];
        v = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        ref[i] = 1.0 / (1.0 + exp(-v));
    }
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p += 2) {
        run_cfg rc = {(ferry_precision)p, FERRY_F32, 16, 0};
        float *yv = run_graph(g, &rc, n, xv);
        char what[64];
        snprintf(what, sizeof what, "unary+views %s", prec_name((ferry_precision)p));
        check_close(what, yv, ref, n * D, tol_of((ferry_precision)p));
        free(yv);
    }
    free(ref);
    free(xv);
    graph_free(g);
}

/* ---- data movement, comparisons, integer arithmetic (cuda_ops.c with
 * kernels_data.cu), each graph against a host reference, at fp32 and
 * fp16, the second captured and replayed */

static int add_typed(graph *g, const char *name, ferry_dtype dt, int ndim, const int64_t *d)
{
    int v = graph_add_value(g, name, dt, ndim, d);
    assert_true(v >= 0);
    return v;
}

static int add_i64_const(graph *g, const char *name, int64_t n, const int64_t *vals)
{
    int64_t d[1] = {n};
    int v = add_typed(g, name, FERRY_I64, 1, d);
    int64_t *p = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    assert_non_null(p);
    memcpy(p, vals, sizeof(int64_t) * (size_t)n);
    g->values[v].data = p;
    g->values[v].is_const = 1;
    return v;
}

/* Runs g (float in, float out) at fp32 and captured fp16 against ref. */
static void data_case(graph *g, const char *what, int64_t n, const float *xv, const double *ref,
                      int64_t nref)
{
    for (int k = 0; k < 2; k++) {
        run_cfg rc = {k ? FERRY_PRECISION_FP16 : FERRY_PRECISION_FP32, FERRY_F32, 16, k};
        float *yv = run_graph(g, &rc, n, xv);
        char w[96];
        snprintf(w, sizeof w, "%s %s", what, k ? "fp16 graph" : "fp32");
        check_close(w, yv, ref, nref, k ? 2e-3 : 1e-7);
        free(yv);
    }
}

/* Transpose [N,3,4,5] perm (0,3,1,2) to [N,5,3,4], then Slice its last
 * dim backwards (start 3, step -2) to [N,5,3,2]. */
static void test_transpose_slice(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    graph *g = graph_new();
    int64_t dx[4] = {FERRY_DIM_BATCH, 3, 4, 5}, dt[4] = {FERRY_DIM_BATCH, 5, 3, 4};
    int64_t ds[4] = {FERRY_DIM_BATCH, 5, 3, 2};
    int x = add_typed(g, "x", FERRY_F32, 4, dx), t = add_typed(g, "t", FERRY_F32, 4, dt);
    int y = add_typed(g, "y", FERRY_F32, 4, ds);
    int k = graph_add_node(g, OP_TRANSPOSE, "tr", 1, &x, 1, &t);
    int64_t perm[4] = {0, 3, 1, 2};
    memcpy(g->nodes[k].perm, perm, sizeof perm);
    k = graph_add_node(g, OP_SLICE, "sl", 1, &t, 1, &y);
    for (int i = 0; i < 4; i++)
        g->nodes[k].steps[i] = 1;
    g->nodes[k].starts[3] = 3; /* last dim, backwards from 3 by 2: 3, 1 */
    g->nodes[k].steps[3] = -2;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 60, 1.0f);
    double ref[3 * 30];
    for (int64_t b = 0; b < n; b++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++)
                for (int l = 0; l < 2; l++) {
                    int c = 3 - 2 * l; /* t[b][i][j][c] = x[b][j][c][i] */
                    ref[((b * 5 + i) * 3 + j) * 2 + l] = xv[((b * 3 + j) * 4 + c) * 5 + i];
                }
    data_case(g, "transpose+slice", n, xv, ref, n * 30);
    free(xv);
    graph_free(g);
}

/* Gather along axis 1 with int64 indices (one negative), then Split the
 * result [N,3,4] along axis 2 into [2,2] and Concat the halves swapped. */
static void test_gather_split_concat(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 5;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 6, 4}, dg[3] = {FERRY_DIM_BATCH, 3, 4};
    int64_t dh[3] = {FERRY_DIM_BATCH, 3, 2};
    int x = add_typed(g, "x", FERRY_F32, 3, dx);
    int64_t ids[3] = {5, -6, 2};
    int idx = add_i64_const(g, "ids", 3, ids);
    int ga = add_typed(g, "g", FERRY_F32, 3, dg);
    int h0 = add_typed(g, "h0", FERRY_F32, 3, dh), h1 = add_typed(g, "h1", FERRY_F32, 3, dh);
    int y = add_typed(g, "y", FERRY_F32, 3, dg);
    int in2[2] = {x, idx};
    int k = graph_add_node(g, OP_GATHER, "ga", 2, in2, 1, &ga);
    g->nodes[k].axis = 1;
    int outs[2] = {h0, h1};
    k = graph_add_node(g, OP_SPLIT, "sp", 1, &ga, 2, outs);
    g->nodes[k].axis = 2;
    g->nodes[k].splits = malloc(2 * sizeof(int64_t));
    assert_non_null(g->nodes[k].splits);
    g->nodes[k].splits[0] = g->nodes[k].splits[1] = 2;
    int cin[2] = {h1, h0};
    k = graph_add_node(g, OP_CONCAT, "cc", 2, cin, 1, &y);
    g->nodes[k].axis = 2;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 24, 1.0f);
    double ref[5 * 12];
    for (int64_t b = 0; b < n; b++)
        for (int j = 0; j < 3; j++) {
            int64_t r = ids[j] < 0 ? ids[j] + 6 : ids[j];
            for (int c = 0; c < 4; c++)
                ref[(b * 3 + j) * 4 + c] = xv[(b * 6 + r) * 4 + (c + 2) % 4];
        }
    data_case(g, "gather+split+concat", n, xv, ref, n * 12);
    free(xv);
    graph_free(g);
}

/* Where(Greater(x, 0), x, Expand(c [1,4] -> [N,3,4])) and an integer path:
 * Cast(x * 10 -> i64) + 3 (broadcast int64 Add), Cast back to float,
 * added in: y = where + cast. */
static void test_where_compare_int(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 4;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 3, 4};
    int x = add_typed(g, "x", FERRY_F32, 3, dx);
    int zero = add_const(g, "zero", 0, 0.0f, 1, (int64_t)1);
    int cst = add_const(g, "c", 1.0f, 0, 2, (int64_t)1, (int64_t)4);
    int64_t shp[3] = {1, 3, 4};
    int shape = add_i64_const(g, "shape", 3, shp);
    int ten = add_const(g, "ten", 0, 10.0f, 1, (int64_t)1);
    int64_t three[1] = {3};
    int i3 = add_i64_const(g, "three", 1, three);
    int gt = add_typed(g, "gt", FERRY_BOOL, 3, dx), ex = add_typed(g, "ex", FERRY_F32, 3, dx);
    int wh = add_typed(g, "wh", FERRY_F32, 3, dx), sc = add_typed(g, "sc", FERRY_F32, 3, dx);
    int ci = add_typed(g, "ci", FERRY_I64, 3, dx), ai = add_typed(g, "ai", FERRY_I64, 3, dx);
    int cf = add_typed(g, "cf", FERRY_F32, 3, dx), y = add_typed(g, "y", FERRY_F32, 3, dx);
    int a[3];
    a[0] = x, a[1] = zero;
    graph_add_node(g, OP_GREATER, "gt", 2, a, 1, &gt);
    a[0] = cst, a[1] = shape;
    graph_add_node(g, OP_EXPAND, "ex", 2, a, 1, &ex);
    a[0] = gt, a[1] = x, a[2] = ex;
    graph_add_node(g, OP_WHERE, "wh", 3, a, 1, &wh);
    a[0] = x, a[1] = ten;
    graph_add_node(g, OP_MUL, "sc", 2, a, 1, &sc);
    int k = graph_add_node(g, OP_CAST, "ci", 1, &sc, 1, &ci);
    g->nodes[k].to = FERRY_I64;
    a[0] = ci, a[1] = i3;
    graph_add_node(g, OP_ADD, "ai", 2, a, 1, &ai);
    k = graph_add_node(g, OP_CAST, "cf", 1, &ai, 1, &cf);
    g->nodes[k].to = FERRY_F32;
    a[0] = wh, a[1] = cf;
    graph_add_node(g, OP_ADD, "y", 2, a, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 12, 1.0f);
    const float *cv = cdata(g, cst);
    double ref[4 * 12];
    for (int64_t i = 0; i < n * 12; i++) {
        double w = xv[i] > 0 ? xv[i] : cv[i % 4];
        ref[i] = w + (double)((int64_t)(xv[i] * 10.0f) + 3);
    }
    /* fp16 rounds x * 10 before truncation: compare at fp32 only there. */
    run_cfg rc = {FERRY_PRECISION_FP32, FERRY_F32, 16, 1};
    float *yv = run_graph(g, &rc, n, xv);
    check_close("where+compare+int64 graph", yv, ref, n * 12, 1e-7);
    free(yv);
    free(xv);
    graph_free(g);
}

/* Tile x [N,3,4] by (1, 2, 1) to [N,6,4], plus ScatterND of a constant
 * [6,4] whose rows 1 and -2 (4) get a constant's two rows. */
static void test_tile_scatter(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 3, 4}, dy[3] = {FERRY_DIM_BATCH, 6, 4};
    int64_t dd[2] = {6, 4}, di[2] = {2, 1};
    int x = add_typed(g, "x", FERRY_F32, 3, dx), t = add_typed(g, "t", FERRY_F32, 3, dy);
    int64_t reps[3] = {1, 2, 1}, rows[2] = {1, -2};
    int r = add_i64_const(g, "reps", 3, reps), idx = add_i64_const(g, "rows", 2, rows);
    g->values[idx].ndim = 2;
    memcpy(g->values[idx].dims, di, sizeof di);
    int data = add_const(g, "data", 1.0f, 0, 2, (int64_t)6, (int64_t)4);
    int upd = add_const(g, "upd", 1.0f, 0, 2, (int64_t)2, (int64_t)4);
    int sc = add_typed(g, "sc", FERRY_F32, 2, dd), y = add_typed(g, "y", FERRY_F32, 3, dy);
    int a[3] = {x, r};
    graph_add_node(g, OP_TILE, "tile", 2, a, 1, &t);
    a[0] = data, a[1] = idx, a[2] = upd;
    graph_add_node(g, OP_SCATTER_ND, "scatter", 3, a, 1, &sc);
    a[0] = t, a[1] = sc;
    graph_add_node(g, OP_ADD, "y", 2, a, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 12, 1.0f);
    const float *dv = cdata(g, data), *uv = cdata(g, upd);
    double ref[3 * 24];
    for (int64_t b = 0; b < n; b++)
        for (int i = 0; i < 6; i++)
            for (int c = 0; c < 4; c++) {
                double s = i == 1 ? uv[c] : i == 4 ? uv[4 + c] : dv[i * 4 + c];
                ref[(b * 6 + i) * 4 + c] = xv[(b * 3 + i % 3) * 4 + c] + s;
            }
    data_case(g, "tile+scatternd", n, xv, ref, n * 24);
    free(xv);
    graph_free(g);
}

/* ReduceSum over axis 1 and ReduceMax over axis 2 of [N,5,7], added with
 * broadcasting ([N,1,7] + [N,5,1] -> [N,5,7]). */
static void test_reduce_sum_max(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 5, 7}, ds[3] = {FERRY_DIM_BATCH, 1, 7};
    int64_t dm[3] = {FERRY_DIM_BATCH, 5, 1};
    int x = add_typed(g, "x", FERRY_F32, 3, dx), s_ = add_typed(g, "s", FERRY_F32, 3, ds);
    int m = add_typed(g, "m", FERRY_F32, 3, dm), y = add_typed(g, "y", FERRY_F32, 3, dx);
    int k = graph_add_node(g, OP_REDUCE_SUM, "rs", 1, &x, 1, &s_);
    g->nodes[k].n_axes = 1, g->nodes[k].axes[0] = 1, g->nodes[k].keepdims = 1;
    k = graph_add_node(g, OP_REDUCE_MAX, "rm", 1, &x, 1, &m);
    g->nodes[k].n_axes = 1, g->nodes[k].axes[0] = -1, g->nodes[k].keepdims = 1;
    int a[2] = {s_, m};
    graph_add_node(g, OP_ADD, "add", 2, a, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 35, 1.0f);
    double ref[3 * 35];
    for (int64_t b = 0; b < n; b++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 7; j++) {
                double sum = 0, mx = -1e30;
                for (int r = 0; r < 5; r++)
                    sum += xv[(b * 5 + r) * 7 + j];
                for (int c = 0; c < 7; c++)
                    mx = fmax(mx, xv[(b * 5 + i) * 7 + c]);
                ref[(b * 5 + i) * 7 + j] = sum + mx;
            }
    for (int k2 = 0; k2 < 2; k2++) {
        run_cfg rc = {k2 ? FERRY_PRECISION_FP16 : FERRY_PRECISION_FP32, FERRY_F32, 16, k2};
        float *yv = run_graph(g, &rc, n, xv);
        check_close(k2 ? "reduce sum+max fp16 graph" : "reduce sum+max fp32", yv, ref, n * 35,
                    k2 ? 2e-3 : 1e-6);
        free(yv);
    }
    free(xv);
    graph_free(g);
}

/* ---- ArgMax over a middle axis (kern_arg_reduce), ties to the first
 * index, cast to float to come out through run_graph */

static void test_argmax(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 5, 7}, di[3] = {FERRY_DIM_BATCH, 1, 7};
    int x = add_typed(g, "x", FERRY_F32, 3, dx), ix = add_typed(g, "ix", FERRY_I64, 3, di);
    int y = add_typed(g, "y", FERRY_F32, 3, di);
    int k = graph_add_node(g, OP_ARGMAX, "am", 1, &x, 1, &ix);
    g->nodes[k].axis = 1, g->nodes[k].keepdims = 1;
    k = graph_add_node(g, OP_CAST, "cast", 1, &ix, 1, &y);
    g->nodes[k].to = FERRY_F32;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 35, 1.0f);
    for (int64_t b = 0; b < n; b++) /* a tie in column 0: the first index wins */
        xv[(b * 5 + 3) * 7] = xv[(b * 5 + 1) * 7] = 9.0f;
    double ref[3 * 7];
    for (int64_t b = 0; b < n; b++)
        for (int j = 0; j < 7; j++) {
            int best = 0;
            for (int r = 1; r < 5; r++)
                if (xv[(b * 5 + r) * 7 + j] > xv[(b * 5 + best) * 7 + j])
                    best = r;
            ref[b * 7 + j] = best;
        }
    run_cfg rc = {FERRY_PRECISION_FP32, FERRY_F32, 16, 0};
    float *yv = run_graph(g, &rc, n, xv);
    check_close("argmax", yv, ref, n * 7, 0.0);
    free(yv);
    free(xv);
    graph_free(g);
}

/* ---- ArgMax of integers (CLIP's text pooling: ids cast to int32, then
 * argmax): x * 1e6 cast to int64 or int32, compared as integers */

static void test_argmax_int(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    for (int it = 0; it < 2; it++) {
        ferry_dtype idt = it ? FERRY_I32 : FERRY_I64;
        graph *g = graph_new();
        int64_t dx[3] = {FERRY_DIM_BATCH, 5, 7}, di[3] = {FERRY_DIM_BATCH, 1, 7};
        int x = add_typed(g, "x", FERRY_F32, 3, dx), xs = add_typed(g, "xs", FERRY_F32, 3, dx);
        int xi = add_typed(g, "xi", idt, 3, dx), ix = add_typed(g, "ix", FERRY_I64, 3, di);
        int y = add_typed(g, "y", FERRY_F32, 3, di), c = add_const(g, "c", 0.0f, 1e6f, 0);
        int in[2] = {x, c};
        graph_add_node(g, OP_MUL, "scale", 2, in, 1, &xs);
        int k = graph_add_node(g, OP_CAST, "to_int", 1, &xs, 1, &xi);
        g->nodes[k].to = idt;
        k = graph_add_node(g, OP_ARGMAX, "am", 1, &xi, 1, &ix);
        g->nodes[k].axis = 1, g->nodes[k].keepdims = 1;
        k = graph_add_node(g, OP_CAST, "cast", 1, &ix, 1, &y);
        g->nodes[k].to = FERRY_F32;
        set_io(g, 1, &x, 1, &y);
        float *xv = rand_vec(n * 35, 1.0f);
        for (int64_t b = 0; b < n; b++) /* a tie in column 0: the first index wins */
            xv[(b * 5 + 3) * 7] = xv[(b * 5 + 1) * 7] = 9.0f;
        double ref[3 * 7];
        for (int64_t b = 0; b < n; b++)
            for (int j = 0; j < 7; j++) {
                int best = 0;
                for (int r = 1; r < 5; r++)
                    if ((int64_t)(xv[(b * 5 + r) * 7 + j] * 1e6f) >
                        (int64_t)(xv[(b * 5 + best) * 7 + j] * 1e6f))
                        best = r;
                ref[b * 7 + j] = best;
            }
        run_cfg rc = {FERRY_PRECISION_FP32, FERRY_F32, 16, 0};
        float *yv = run_graph(g, &rc, n, xv);
        check_close(it ? "argmax int32" : "argmax int64", yv, ref, n * 7, 0.0);
        free(yv);
        free(xv);
        graph_free(g);
    }
}

/* ---- a patch convolution (kernel = stride: a ViT's patch embedding),
 * with bias and ReLU, runs as copy + matmul + transpose */

static void test_patch_conv(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3, ci = 3, co = 5, H = 8, W = 12, kh = 4, kw = 3;
    const int64_t ho = H / kh, wo = W / kw;
    graph *g = graph_new();
    int64_t dx[4] = {FERRY_DIM_BATCH, ci, H, W}, dy[4] = {FERRY_DIM_BATCH, co, ho, wo};
    int x = add_typed(g, "x", FERRY_F32, 4, dx);
    int w = add_const(g, "W", 0.3f, 0, 4, co, ci, kh, kw);
    int b = add_const(g, "b", 0.5f, 0, 1, co);
    int y = add_typed(g, "y", FERRY_F32, 4, dy);
    int in3[3] = {x, w, b};
    int k = graph_add_node(g, OP_CONV, "patch", 3, in3, 1, &y);
    conv_attrs *a = &g->nodes[k].conv;
    a->nsp = 2, a->group = 1;
    a->kernel[0] = a->strides[0] = kh, a->kernel[1] = a->strides[1] = kw;
    a->dilations[0] = a->dilations[1] = 1;
    g->nodes[k].act = ACT_RELU;
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * ci * H * W, 1.0f);
    const float *Wv = cdata(g, w), *Bv = cdata(g, b);
    int64_t ny = n * co * ho * wo;
    double *ref = malloc(sizeof(double) * (size_t)ny);
    assert_non_null(ref);
    for (int64_t s_ = 0; s_ < n; s_++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t i = 0; i < ho; i++)
                for (int64_t j = 0; j < wo; j++) {
                    double acc = Bv[o];
                    for (int64_t c = 0; c < ci; c++)
                        for (int64_t u = 0; u < kh; u++)
                            for (int64_t v = 0; v < kw; v++)
                                acc += (double)Wv[((o * ci + c) * kh + u) * kw + v] *
                                       xv[((s_ * ci + c) * H + i * kh + u) * W + j * kw + v];
                    ref[((s_ * co + o) * ho + i) * wo + j] = acc > 0 ? acc : 0;
                }
    for (int q = 0; q < 2; q++) {
        run_cfg rc = {q ? FERRY_PRECISION_FP16 : FERRY_PRECISION_FP32, FERRY_F32, 16, q};
        float *yv = run_graph(g, &rc, n, xv);
        check_close(q ? "patch conv fp16 graph" : "patch conv fp32", yv, ref, ny, q ? 2e-2 : 1e-5);
        free(yv);
    }
    free(ref);
    free(xv);
    graph_free(g);
}

/* ---- Convolutions with their epilogues at batch 3, each way Ferry runs
 * them: the default (cuDNN's graph API for one group with a bias or
 * ReLU-ending epilogue, our kernel for depthwise ones in fp16), the legacy
 * calls with cuDNN's depthwise (FERRY_CUDNN=legacy
 * FERRY_CUDA_DEPTHWISE=cudnn), and Clip through the graph API
 * (FERRY_CUDNN=graph-clip): bias + Clip (ReLU6), bias alone, bias + ReLU,
 * and a depthwise 3x3 with bias + ReLU. Forms of mobilenet_v2's came out
 * wrong above batch 1 through the graph API (cuda_conv.c), which parity at
 * batch 1 did not see. */

static void conv_ref(const float *x, const float *w, const float *b, double *y, int64_t n,
                     int64_t ci, int64_t co, int64_t hw, int64_t group, int64_t st, int act)
{
    int64_t cig = ci / group, cog = co / group, ho = (hw - 1) / st + 1;
    for (int64_t s_ = 0; s_ < n; s_++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t i = 0; i < ho; i++)
                for (int64_t j = 0; j < ho; j++) {
                    double acc = b[o];
                    for (int64_t c = 0; c < cig; c++)
                        for (int64_t u = 0; u < 3; u++)
                            for (int64_t v = 0; v < 3; v++) {
                                int64_t r = i * st + u - 1, q = j * st + v - 1;
                                if (r < 0 || q < 0 || r >= hw || q >= hw)
                                    continue;
                                acc += (double)w[((o * cig + c) * 3 + u) * 3 + v] *
                                       x[((s_ * ci + (o / cog) * cig + c) * hw + r) * hw + q];
                            }
                    if (act == ACT_RELU || act == ACT_CLIP)
                        acc = acc > 0 ? acc : 0;
                    if (act == ACT_CLIP && acc > 6)
                        acc = 6;
                    y[((s_ * co + o) * ho + i) * ho + j] = acc;
                }
}

static void test_conv_epilogues(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3, ci = 16, hw = 9;
    static const struct {
        int group, act;
        int64_t co, st;
    } cases[] = {{1, ACT_CLIP, 24, 1},  {1, ACT_NONE, 24, 1},  {1, ACT_RELU, 8, 2},
                 {16, ACT_RELU, 16, 1}, {16, ACT_CLIP, 16, 2}, {16, ACT_NONE, 16, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int64_t co = cases[t].co, group = cases[t].group, st = cases[t].st, ho = (hw - 1) / st + 1;
        graph *g = graph_new();
        int64_t dx[4] = {FERRY_DIM_BATCH, ci, hw, hw}, dy[4] = {FERRY_DIM_BATCH, co, ho, ho};
        int x = add_typed(g, "x", FERRY_F32, 4, dx);
        int w = add_const(g, "W", 0.8f, 0, 4, co, ci / group, (int64_t)3, (int64_t)3);
        int b = add_const(g, "b", 0.5f, 0, 1, co);
        int y = add_typed(g, "y", FERRY_F32, 4, dy);
        int in3[3] = {x, w, b};
        int k = graph_add_node(g, OP_CONV, "conv", 3, in3, 1, &y);
        conv_attrs *a = &g->nodes[k].conv;
        a->nsp = 2, a->group = group;
        for (int i = 0; i < 2; i++) {
            a->kernel[i] = 3, a->strides[i] = st, a->dilations[i] = 1;
            a->pads[i] = a->pads[i + 2] = 1;
        }
        g->nodes[k].act = cases[t].act;
        g->nodes[k].act_alpha = 0.0f, g->nodes[k].act_beta = 6.0f;
        set_io(g, 1, &x, 1, &y);
        int64_t ny = n * co * ho * ho;
        float *xv = rand_vec(n * ci * hw * hw, 2.0f);
        double *ref = malloc(sizeof(double) * (size_t)ny);
        assert_non_null(ref);
        conv_ref(xv, cdata(g, w), cdata(g, b), ref, n, ci, co, hw, group, st, cases[t].act);
        static const char *modes[] = {"default", "legacy + cuDNN depthwise", "graph-clip"};
        for (int mode = 0; mode < 3; mode++) {
            if (mode == 1) {
                setenv("FERRY_CUDNN", "legacy", 1);
                setenv("FERRY_CUDA_DEPTHWISE", "cudnn", 1);
            }
            if (mode == 2)
                setenv("FERRY_CUDNN", "graph-clip", 1);
            for (int q = 0; q < 2; q++) {
                run_cfg rc = {FERRY_PRECISION_FP16, FERRY_F32, 16, q};
                float *yv = run_graph(g, &rc, n, xv);
                char what[96];
                snprintf(what, sizeof what, "conv group %d act %d fp16 %s%s", cases[t].group,
                         cases[t].act, modes[mode], q ? " captured" : "");
                check_close(what, yv, ref, ny, 2e-2);
                free(yv);
            }
            unsetenv("FERRY_CUDNN");
            unsetenv("FERRY_CUDA_DEPTHWISE");
        }
        free(ref);
        free(xv);
        graph_free(g);
    }
}

/* ---- pointwise convolutions between channels-last neighbours run as one
 * matmul (cuda_conv.c pointwise_ok): 3x3 -> 1x1 (+ bias, + the 3x3's
 * output as residual or not) -> 3x3, fp16, plain and captured,
 * against the same chain in double, with FERRY_CUDA_POINTWISE=matmul (the
 * opt-in path) and =cudnn (the default). */

static void pointwise_ref(const float *x, const float *w, const float *b, const double *r,
                          double *y, int64_t n, int64_t ci, int64_t co, int64_t hw, int relu)
{
    for (int64_t s_ = 0; s_ < n; s_++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t p = 0; p < hw * hw; p++) {
                double acc = b[o] + (r ? r[(s_ * co + o) * hw * hw + p] : 0.0);
                for (int64_t c = 0; c < ci; c++)
                    acc += (double)w[o * ci + c] * x[(s_ * ci + c) * hw * hw + p];
                y[(s_ * co + o) * hw * hw + p] = relu && acc < 0 ? 0 : acc;
            }
}

static void test_conv_pointwise(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3, c0 = 16, hw = 9;
    for (int t = 0; t < 2; t++) {
        int res = t == 0, relu = 0; /* mobilenet's projection, with and without a residual */
        int64_t c1 = res ? 16 : 24;
        graph *g = graph_new();
        int64_t d0[4] = {FERRY_DIM_BATCH, c0, hw, hw}, d1[4] = {FERRY_DIM_BATCH, c1, hw, hw};
        int x = add_typed(g, "x", FERRY_F32, 4, d0), a = add_typed(g, "a", FERRY_F32, 4, d0);
        int bv = add_typed(g, "bv", FERRY_F32, 4, d1), y = add_typed(g, "y", FERRY_F32, 4, d0);
        int w0 = add_const(g, "W0", 0.3f, 0, 4, c0, c0, (int64_t)3, (int64_t)3);
        int b0 = add_const(g, "b0", 0.5f, 0, 1, c0);
        int w1 = add_const(g, "W1", 0.4f, 0, 4, c1, c0, (int64_t)1, (int64_t)1);
        int b1 = add_const(g, "b1", 0.5f, 0, 1, c1);
        int w2 = add_const(g, "W2", 0.2f, 0, 4, c0, c1, (int64_t)3, (int64_t)3);
        int b2 = add_const(g, "b2", 0.5f, 0, 1, c0);
        int i0[3] = {x, w0, b0}, i1[4] = {a, w1, b1, a}, i2[3] = {bv, w2, b2};
        int k0 = graph_add_node(g, OP_CONV, "c0", 3, i0, 1, &a);
        int k1 = graph_add_node(g, OP_CONV, "pw", res ? 4 : 3, i1, 1, &bv);
        int k2 = graph_add_node(g, OP_CONV, "c2", 3, i2, 1, &y);
        int ks[3] = {k0, k1, k2};
        for (int j = 0; j < 3; j++) {
            conv_attrs *ca = &g->nodes[ks[j]].conv;
            int64_t kk = j == 1 ? 1 : 3;
            ca->nsp = 2, ca->group = 1;
            for (int i = 0; i < 2; i++) {
                ca->kernel[i] = kk, ca->strides[i] = 1, ca->dilations[i] = 1;
                ca->pads[i] = ca->pads[i + 2] = kk / 2;
            }
            g->nodes[ks[j]].act = j == 1 && !relu ? ACT_NONE : ACT_RELU;
        }
        set_io(g, 1, &x, 1, &y);
        int64_t n0 = n * c0 * hw * hw, n1 = n * c1 * hw * hw;
        float *xv = rand_vec(n0, 2.0f), *af = malloc(sizeof(float) * (size_t)n1);
        double *ad = malloc(sizeof(double) * (size_t)n0), *bd = malloc(sizeof(double) * (size_t)n1);
        double *ref = malloc(sizeof(double) * (size_t)n0);
        assert_non_null(af);
        assert_non_null(ad);
        assert_non_null(bd);
        assert_non_null(ref);
        conv_ref(xv, cdata(g, w0), cdata(g, b0), ad, n, c0, c0, hw, 1, 1, ACT_RELU);
        for (int64_t i = 0; i < n0; i++)
            af[i] = (float)ad[i];
        pointwise_ref(af, cdata(g, w1), cdata(g, b1), res ? ad : NULL, bd, n, c0, c1, hw, relu);
        for (int64_t i = 0; i < n1; i++)
            af[i] = (float)bd[i];
        conv_ref(af, cdata(g, w2), cdata(g, b2), ref, n, c1, c0, hw, 1, 1, ACT_RELU);
        for (int mode = 0; mode < 2; mode++) {
            setenv("FERRY_CUDA_POINTWISE", mode ? "cudnn" : "matmul", 1);
            for (int q = 0; q < 2; q++) {
                run_cfg rc = {FERRY_PRECISION_FP16, FERRY_F32, 16, q};
                float *yv = run_graph(g, &rc, n, xv);
                char what[96];
                snprintf(what, sizeof what, "pointwise %s fp16 %s%s",
                         res ? "+ residual" : "24 channels", mode ? "cudnn" : "matmul",
                         q ? " captured" : "");
                check_close(what, yv, ref, n0, 2e-2);
                free(yv);
            }
            unsetenv("FERRY_CUDA_POINTWISE");
        }
        free(ref);
        free(bd);
        free(ad);
        free(af);
        free(xv);
        graph_free(g);
    }
}

/* ---- the operators the CPU backend ran and the CUDA one lacked: PRelu,
 * Min, Max, CumSum, EyeLike, DepthToSpace, GatherElements,
 * ScatterElements, GridSample, Einsum. Each graph runs at fp32 and, captured,
 * at fp16 against a double reference computed from the input as that run
 * sees it (rounded to fp16 for the second), so that an index or a pixel
 * chosen from the data is the one the device chose. */

/* The reference of one graph: ref[nref] from the input x of n samples. */
typedef void (*ref_fn)(const float *x, int64_t n, double *ref);

static float round_f16(float v)
{
    return ferry_f16_to_f32(ferry_f32_to_f16(v));
}

static void op_case(graph *g, const char *what, int64_t n, const float *xv, int64_t nx, ref_fn ref,
                    int64_t nref, double tol32, double tol16)
{
    float *xin = malloc(sizeof(float) * (size_t)nx);
    double *r = malloc(sizeof(double) * (size_t)nref);
    assert_non_null(xin);
    assert_non_null(r);
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < nx; i++)
            xin[i] = k ? round_f16(xv[i]) : xv[i];
        ref(xin, n, r);
        run_cfg rc = {k ? FERRY_PRECISION_FP16 : FERRY_PRECISION_FP32, FERRY_F32, 16, k};
        float *yv = run_graph(g, &rc, n, xin);
        char w[128];
        snprintf(w, sizeof w, "%s %s", what, k ? "fp16 graph" : "fp32");
        check_close(w, yv, r, nref, k ? tol16 : tol32);
        free(yv);
    }
    free(r);
    free(xin);
}

/* A Slice of x (rank r) starting at starts, step 1, to out's dims. */
static void add_slice(graph *g, const char *name, int x, int out, const int64_t *starts)
{
    int k = graph_add_node(g, OP_SLICE, name, 1, &x, 1, &out);
    for (int i = 0; i < g->values[x].ndim; i++) {
        g->nodes[k].starts[i] = starts[i];
        g->nodes[k].steps[i] = 1;
    }
}

static int add_cast(graph *g, const char *name, int x, int out, ferry_dtype to)
{
    int k = graph_add_node(g, OP_CAST, name, 1, &x, 1, &out);
    g->nodes[k].to = to;
    return k;
}

/* ---- PRelu, then Max of three inputs and Min of two (broadcasting), then
 * Max of one (a copy) */

static const float prelu_slope[3] = {0.25f, -0.5f, 2.0f};
static const float max_c[5] = {-0.5f, 0.0f, 0.25f, -1.0f, 0.75f};
static const float min_d[3] = {0.5f, -0.25f, 0.875f};

static void prelu_min_max_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) {
                int64_t e = (b * 3 + i) * 5 + j;
                float v = x[e], p = v >= 0 ? v : v * prelu_slope[i];
                double m = fmax(fmax(p, max_c[j]), v);
                ref[e] = fmin(m, min_d[i]);
            }
}

static void test_prelu_min_max(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 7;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 3, 5};
    int x = add_typed(g, "x", FERRY_F32, 3, dx);
    int s = add_const(g, "slope", 0, 0, 2, (int64_t)3, (int64_t)1);
    int c = add_const(g, "c", 0, 0, 1, (int64_t)5);
    int d = add_const(g, "d", 0, 0, 2, (int64_t)3, (int64_t)1);
    memcpy(g->values[s].data, prelu_slope, sizeof prelu_slope);
    memcpy(g->values[c].data, max_c, sizeof max_c);
    memcpy(g->values[d].data, min_d, sizeof min_d);
    int p = add_typed(g, "p", FERRY_F32, 3, dx), m = add_typed(g, "m", FERRY_F32, 3, dx);
    int mn = add_typed(g, "mn", FERRY_F32, 3, dx), y = add_typed(g, "y", FERRY_F32, 3, dx);
    int a[3] = {x, s};
    graph_add_node(g, OP_PRELU, "prelu", 2, a, 1, &p);
    a[0] = p, a[1] = c, a[2] = x;
    graph_add_node(g, OP_MAX, "max3", 3, a, 1, &m);
    a[0] = m, a[1] = d;
    graph_add_node(g, OP_MIN, "min2", 2, a, 1, &mn);
    graph_add_node(g, OP_MAX, "max1", 1, &mn, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 15, 2.0f);
    op_case(g, "prelu+max+min", n, xv, n * 15, prelu_min_max_ref, n * 15, 1e-7, 2e-3);
    free(xv);
    graph_free(g);
}

/* ---- CumSum over axis -2 of [N,5,6], all four of exclusive x reverse;
 * then an int64 CumSum of integers (Cast in and out) */

static int cumsum_excl, cumsum_rev;

static void cumsum_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int c = 0; c < 6; c++) {
            double acc = 0;
            for (int t = 0; t < 5; t++) {
                int r = cumsum_rev ? 4 - t : t;
                double v = x[(b * 5 + r) * 6 + c];
                if (cumsum_excl) {
                    ref[(b * 5 + r) * 6 + c] = acc;
                    acc += v;
                } else {
                    acc += v;
                    ref[(b * 5 + r) * 6 + c] = acc;
                }
            }
        }
}

static void test_cumsum(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    int64_t dx[3] = {FERRY_DIM_BATCH, 5, 6};
    float *xv = rand_vec(n * 30, 1.0f);
    for (int mode = 0; mode < 4; mode++) {
        cumsum_excl = mode & 1;
        cumsum_rev = mode >> 1;
        graph *g = graph_new();
        int x = add_typed(g, "x", FERRY_F32, 3, dx), y = add_typed(g, "y", FERRY_F32, 3, dx);
        int64_t ax[1] = {-2};
        int a[2] = {x, add_i64_const(g, "axis", 1, ax)};
        int k = graph_add_node(g, OP_CUMSUM, "cs", 2, a, 1, &y);
        g->nodes[k].axis = -2;
        g->nodes[k].mode = cumsum_excl;
        g->nodes[k].mode2 = cumsum_rev;
        set_io(g, 1, &x, 1, &y);
        char what[64];
        snprintf(what, sizeof what, "cumsum%s%s", cumsum_excl ? " exclusive" : "",
                 cumsum_rev ? " reverse" : "");
        op_case(g, what, n, xv, n * 30, cumsum_ref, n * 30, 1e-6, 2e-3);
        graph_free(g);
    }
    /* int64: integers in [-8, 8), exact in fp16 too */
    for (int64_t i = 0; i < n * 30; i++)
        xv[i] = (float)((int)(8.0f * xv[i]));
    cumsum_excl = 0;
    cumsum_rev = 1;
    graph *g = graph_new();
    int x = add_typed(g, "x", FERRY_F32, 3, dx), y = add_typed(g, "y", FERRY_F32, 3, dx);
    int xi = add_typed(g, "xi", FERRY_I64, 3, dx), ci = add_typed(g, "ci", FERRY_I64, 3, dx);
    int64_t ax[1] = {1};
    add_cast(g, "to_i64", x, xi, FERRY_I64);
    int a[2] = {xi, add_i64_const(g, "axis", 1, ax)};
    int k = graph_add_node(g, OP_CUMSUM, "cs", 2, a, 1, &ci);
    g->nodes[k].axis = 1;
    g->nodes[k].mode2 = 1;
    add_cast(g, "to_f32", ci, y, FERRY_F32);
    set_io(g, 1, &x, 1, &y);
    op_case(g, "cumsum int64 reverse", n, xv, n * 30, cumsum_ref, n * 30, 0.0, 0.0);
    graph_free(g);
    free(xv);
}

/* ---- EyeLike of an activation without a batch dim (not folded): x +
 * EyeLike(x, k=-1) + Cast(EyeLike(x, k=2, int64)) on [4,6] */

static void eye_ref(const float *x, int64_t n, double *ref)
{
    (void)n;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            ref[i * 6 + j] = x[i * 6 + j] + (j - i == -1) + (j - i == 2);
}

static void test_eye_like(void **state)
{
    (void)state;
    need_device();
    graph *g = graph_new();
    int64_t d[2] = {4, 6};
    int x = add_typed(g, "x", FERRY_F32, 2, d), e1 = add_typed(g, "e1", FERRY_F32, 2, d);
    int e2 = add_typed(g, "e2", FERRY_I64, 2, d), c2 = add_typed(g, "c2", FERRY_F32, 2, d);
    int s = add_typed(g, "s", FERRY_F32, 2, d), y = add_typed(g, "y", FERRY_F32, 2, d);
    int k = graph_add_node(g, OP_EYE_LIKE, "eye_f32", 1, &x, 1, &e1);
    g->nodes[k].to = FERRY_F32;
    g->nodes[k].starts[0] = -1;
    k = graph_add_node(g, OP_EYE_LIKE, "eye_i64", 1, &x, 1, &e2);
    g->nodes[k].to = FERRY_I64;
    g->nodes[k].starts[0] = 2;
    add_cast(g, "cast", e2, c2, FERRY_F32);
    int a[2] = {e1, c2};
    graph_add_node(g, OP_ADD, "add1", 2, a, 1, &s);
    a[0] = s, a[1] = x;
    graph_add_node(g, OP_ADD, "add2", 2, a, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(24, 1.0f);
    op_case(g, "eyelike f32+int64", 1, xv, 24, eye_ref, 24, 1e-7, 2e-3);
    free(xv);
    graph_free(g);
}

/* ---- DepthToSpace (PixelShuffle) of [N,8,3,5] by 2, DCR and CRD */

static int d2s_crd;

static void d2s_ref(const float *x, int64_t n, double *ref)
{
    const int C = 2, H = 3, W = 5, b = 2;
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H * b; h++)
                for (int w = 0; w < W * b; w++) {
                    int i = h % b, j = w % b;
                    int ch = d2s_crd ? (c * b + i) * b + j : (i * b + j) * C + c;
                    ref[((s * C + c) * H * b + h) * W * b + w] =
                        x[((s * C * b * b + ch) * H + h / b) * W + w / b];
                }
}

static void test_depth_to_space(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    int64_t dx[4] = {FERRY_DIM_BATCH, 8, 3, 5}, dy[4] = {FERRY_DIM_BATCH, 2, 6, 10};
    float *xv = rand_vec(n * 120, 1.0f);
    for (d2s_crd = 0; d2s_crd < 2; d2s_crd++) {
        graph *g = graph_new();
        int x = add_typed(g, "x", FERRY_F32, 4, dx), y = add_typed(g, "y", FERRY_F32, 4, dy);
        int k = graph_add_node(g, OP_DEPTH_TO_SPACE, "d2s", 1, &x, 1, &y);
        g->nodes[k].axis = 2;
        g->nodes[k].mode = d2s_crd;
        set_io(g, 1, &x, 1, &y);
        op_case(g, d2s_crd ? "depthtospace crd" : "depthtospace dcr", n, xv, n * 120, d2s_ref,
                n * 120, 0.0, 2e-3);
        graph_free(g);
    }
    free(xv);
}

/* ---- GatherElements and ScatterElements along axis -2 of data [N,1,5,7],
 * channel 0 of the input x [N,2,5,7]; the indices [N,1,3,4] are channel
 * 1's integers (window rows 1..3, columns 2..5) cast to int64, negative
 * ones among them; the updates are channel 0's window at rows 2..4,
 * columns 3..6 */

static const char *const scatter_names[] = {"none", "add", "mul", "max", "min"};
static int scatter_red;

static int64_t elem_index(const float *x, int64_t b, int r, int c)
{
    int64_t j = (int64_t)x[((b * 2 + 1) * 5 + r + 1) * 7 + c + 2];
    return j < 0 ? j + 5 : j;
}

static void gather_elements_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                ref[(b * 3 + r) * 4 + c] = x[(b * 2 * 5 + elem_index(x, b, r, c)) * 7 + c];
}

static void scatter_elements_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++) {
        double *y = ref + b * 35;
        for (int i = 0; i < 35; i++)
            y[i] = x[b * 70 + i];
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) {
                double u = x[(b * 2 * 5 + r + 2) * 7 + c + 3];
                double *t = &y[elem_index(x, b, r, c) * 7 + c];
                switch (scatter_red) {
                case SCATTER_NONE: *t = u; break;
                case SCATTER_ADD: *t += u; break;
                case SCATTER_MUL: *t *= u; break;
                case SCATTER_MAX: *t = u > *t ? u : *t; break;
                default: *t = u < *t ? u : *t; break;
                }
            }
    }
}

/* x with channel 1 holding indices in [-5, 5): distinct rows along each
 * index column when distinct, else random (repeats likely). */
static float *elements_input(int64_t n, int distinct)
{
    float *xv = rand_vec(n * 70, 1.0f);
    for (int64_t b = 0; b < n; b++)
        for (int c = 0; c < 4; c++) {
            int rows[5] = {0, 1, 2, 3, 4};
            for (int i = 4; i > 0; i--) { /* a shuffle: the first three are distinct */
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                int j = (int)((rng >> 33) % (uint64_t)(i + 1)), t = rows[i];
                rows[i] = rows[j];
                rows[j] = t;
            }
            for (int r = 0; r < 3; r++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                int v = distinct ? rows[r] : (int)((rng >> 33) % 5);
                if ((rng >> 40) & 1)
                    v -= 5; /* the same row from the end */
                xv[((b * 2 + 1) * 5 + r + 1) * 7 + c + 2] = (float)v;
            }
        }
    return xv;
}

static void test_gather_elements(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 4;
    graph *g = graph_new();
    int64_t dx[4] = {FERRY_DIM_BATCH, 2, 5, 7}, dd[4] = {FERRY_DIM_BATCH, 1, 5, 7};
    int64_t di[4] = {FERRY_DIM_BATCH, 1, 3, 4};
    int x = add_typed(g, "x", FERRY_F32, 4, dx), data = add_typed(g, "data", FERRY_F32, 4, dd);
    int isrc = add_typed(g, "isrc", FERRY_F32, 4, di), idx = add_typed(g, "idx", FERRY_I64, 4, di);
    int y = add_typed(g, "y", FERRY_F32, 4, di);
    int64_t s0[4] = {0, 0, 0, 0}, s1[4] = {0, 1, 1, 2};
    add_slice(g, "data", x, data, s0);
    add_slice(g, "isrc", x, isrc, s1);
    add_cast(g, "idx", isrc, idx, FERRY_I64);
    int a[2] = {data, idx};
    int k = graph_add_node(g, OP_GATHER_ELEMENTS, "ge", 2, a, 1, &y);
    g->nodes[k].axis = -2;
    set_io(g, 1, &x, 1, &y);
    float *xv = elements_input(n, 0);
    op_case(g, "gatherelements", n, xv, n * 70, gather_elements_ref, n * 12, 0.0, 2e-3);
    free(xv);
    graph_free(g);
}

/* GatherND, batch_dims 1: x [N, 10] holds data [N, 4, 2] (elements 0-7)
 * and each sample's 2 index tuples (elements 8-9, one component: a row of
 * its own data, one of them negative) -> y [N, 2, 2]. */
static void gather_nd_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int t = 0; t < 2; t++) {
            int64_t j = (int64_t)x[b * 10 + 8 + t];
            j = j < 0 ? j + 4 : j;
            for (int e = 0; e < 2; e++)
                ref[(b * 2 + t) * 2 + e] = x[b * 10 + j * 2 + e];
        }
}

static void test_gather_nd(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 5;
    graph *g = graph_new();
    int64_t dx[2] = {FERRY_DIM_BATCH, 10}, dd2[2] = {FERRY_DIM_BATCH, 8}, di2[2] = {FERRY_DIM_BATCH, 2};
    int64_t dd[3] = {FERRY_DIM_BATCH, 4, 2}, di[3] = {FERRY_DIM_BATCH, 2, 1};
    int64_t dy[3] = {FERRY_DIM_BATCH, 2, 2};
    int x = add_typed(g, "x", FERRY_F32, 2, dx), d2 = add_typed(g, "d2", FERRY_F32, 2, dd2);
    int data = add_typed(g, "data", FERRY_F32, 3, dd), i2 = add_typed(g, "i2", FERRY_F32, 2, di2);
    int if3 = add_typed(g, "if3", FERRY_F32, 3, di), idx = add_typed(g, "idx", FERRY_I64, 3, di);
    int y = add_typed(g, "y", FERRY_F32, 3, dy);
    int64_t s0[2] = {0, 0}, s1[2] = {0, 8};
    add_slice(g, "d2", x, d2, s0);
    add_slice(g, "i2", x, i2, s1);
    graph_add_node(g, OP_RESHAPE, "data", 1, &d2, 1, &data);
    graph_add_node(g, OP_RESHAPE, "if3", 1, &i2, 1, &if3);
    add_cast(g, "idx", if3, idx, FERRY_I64);
    int a[2] = {data, idx};
    int k = graph_add_node(g, OP_GATHER_ND, "gnd", 2, a, 1, &y);
    g->nodes[k].mode = 1; /* batch_dims */
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 10, 1.0f);
    static const float rows[5][2] = {{0, 3}, {-1, 1}, {2, 2}, {-4, 0}, {1, -2}};
    for (int64_t b = 0; b < n; b++)
        for (int t = 0; t < 2; t++)
            xv[b * 10 + 8 + t] = rows[b][t];
    op_case(g, "gathernd batch_dims 1", n, xv, n * 10, gather_nd_ref, n * 4, 0.0, 2e-3);
    free(xv);
    graph_free(g);
}

static void test_scatter_elements(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 4;
    int64_t dx[4] = {FERRY_DIM_BATCH, 2, 5, 7}, dd[4] = {FERRY_DIM_BATCH, 1, 5, 7};
    int64_t di[4] = {FERRY_DIM_BATCH, 1, 3, 4};
    for (scatter_red = SCATTER_NONE; scatter_red <= SCATTER_MIN; scatter_red++) {
        graph *g = graph_new();
        int x = add_typed(g, "x", FERRY_F32, 4, dx);
        int data = add_typed(g, "data", FERRY_F32, 4, dd);
        int isrc = add_typed(g, "isrc", FERRY_F32, 4, di);
        int idx = add_typed(g, "idx", FERRY_I64, 4, di);
        int upd = add_typed(g, "upd", FERRY_F32, 4, di);
        int y = add_typed(g, "y", FERRY_F32, 4, dd);
        int64_t s0[4] = {0, 0, 0, 0}, s1[4] = {0, 1, 1, 2}, s2[4] = {0, 0, 2, 3};
        add_slice(g, "data", x, data, s0);
        add_slice(g, "isrc", x, isrc, s1);
        add_slice(g, "upd", x, upd, s2);
        add_cast(g, "idx", isrc, idx, FERRY_I64);
        int a[3] = {data, idx, upd};
        int k = graph_add_node(g, OP_SCATTER_ELEMENTS, "se", 3, a, 1, &y);
        g->nodes[k].axis = -2;
        g->nodes[k].mode = scatter_red;
        set_io(g, 1, &x, 1, &y);
        /* repeated indices only where a reduction makes them well defined */
        float *xv = elements_input(n, scatter_red == SCATTER_NONE);
        char what[64];
        snprintf(what, sizeof what, "scatterelements %s", scatter_names[scatter_red]);
        op_case(g, what, n, xv, n * 70, scatter_elements_ref, n * 35, 1e-6, 4e-3);
        free(xv);
        graph_free(g);
    }
}

/* ---- GridSample: image x[:, 0:3] [N,3,4,5] at grid x[:, 3:5] moved to
 * [N,4,5,2], values out to +-1.3 (outside the image), every mode,
 * padding and align_corners; the reference follows cpu_data.c's float
 * coordinate arithmetic */

static int gs_nearest, gs_padding, gs_align;

static float gs_reflect(float v, float lo2, float hi2)
{
    if (lo2 == hi2)
        return 0.0f;
    float lo = lo2 / 2.0f, span = (hi2 - lo2) / 2.0f;
    v = fabsf(v - lo);
    float extra = fmodf(v, span);
    return fmodf(floorf(v / span), 2.0f) == 0.0f ? extra + lo : span - extra + lo;
}

static float gs_coord(float g, int64_t n)
{
    float v = gs_align ? (g + 1.0f) / 2.0f * (float)(n - 1) : ((g + 1.0f) * (float)n - 1.0f) / 2.0f;
    if (gs_padding == GRID_PAD_REFLECTION)
        v = gs_align ? gs_reflect(v, 0.0f, 2.0f * (float)(n - 1))
                     : gs_reflect(v, -1.0f, 2.0f * (float)n - 1.0f);
    if (gs_padding != GRID_PAD_ZEROS)
        v = v < 0.0f ? 0.0f : v > (float)(n - 1) ? (float)(n - 1) : v;
    return v;
}

static double gs_pixel(const float *x, int64_t b, int c, int64_t iy, int64_t ix)
{
    if (ix < 0 || ix >= 5 || iy < 0 || iy >= 4)
        return 0.0;
    return x[((b * 5 + c) * 4 + iy) * 5 + ix];
}

static void grid_sample_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 20; p++) {
                float gx = x[(b * 5 + 3) * 20 + p], gy = x[(b * 5 + 4) * 20 + p];
                float fx = gs_coord(gx, 5), fy = gs_coord(gy, 4);
                double v;
                if (gs_nearest) {
                    v = gs_pixel(x, b, c, (int64_t)nearbyintf(fy), (int64_t)nearbyintf(fx));
                } else {
                    double x0 = floor(fx), y0 = floor(fy), tx = fx - x0, ty = fy - y0;
                    v = gs_pixel(x, b, c, (int64_t)y0, (int64_t)x0) * (1 - tx) * (1 - ty) +
                        gs_pixel(x, b, c, (int64_t)y0, (int64_t)x0 + 1) * tx * (1 - ty) +
                        gs_pixel(x, b, c, (int64_t)y0 + 1, (int64_t)x0) * (1 - tx) * ty +
                        gs_pixel(x, b, c, (int64_t)y0 + 1, (int64_t)x0 + 1) * tx * ty;
                }
                ref[(b * 3 + c) * 20 + p] = v;
            }
}

static void test_grid_sample(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    int64_t dx[4] = {FERRY_DIM_BATCH, 5, 4, 5}, di[4] = {FERRY_DIM_BATCH, 3, 4, 5};
    int64_t ds[4] = {FERRY_DIM_BATCH, 2, 4, 5}, dg[4] = {FERRY_DIM_BATCH, 4, 5, 2};
    float *xv = rand_vec(n * 100, 1.0f);
    for (int64_t i = 0; i < n * 100; i++)
        if (i % 100 >= 60) /* the grid channels */
            xv[i] *= 1.3f;
    for (int m = 0; m < 12; m++) {
        gs_nearest = m / 6;
        gs_padding = m / 2 % 3;
        gs_align = m % 2;
        graph *g = graph_new();
        int x = add_typed(g, "x", FERRY_F32, 4, dx), img = add_typed(g, "img", FERRY_F32, 4, di);
        int gs = add_typed(g, "gsrc", FERRY_F32, 4, ds);
        int gr = add_typed(g, "grid", FERRY_F32, 4, dg);
        int y = add_typed(g, "y", FERRY_F32, 4, di);
        int64_t s0[4] = {0, 0, 0, 0}, s3[4] = {0, 3, 0, 0};
        add_slice(g, "img", x, img, s0);
        add_slice(g, "gsrc", x, gs, s3);
        int k = graph_add_node(g, OP_TRANSPOSE, "to_nhwc", 1, &gs, 1, &gr);
        int64_t perm[4] = {0, 2, 3, 1};
        memcpy(g->nodes[k].perm, perm, sizeof perm);
        int a[2] = {img, gr};
        k = graph_add_node(g, OP_GRID_SAMPLE, "gs", 2, a, 1, &y);
        g->nodes[k].mode = gs_nearest ? GRID_NEAREST : GRID_LINEAR;
        g->nodes[k].mode2 = gs_padding;
        g->nodes[k].mode3 = gs_align;
        set_io(g, 1, &x, 1, &y);
        static const char *const pads[] = {"zeros", "border", "reflection"};
        char what[64];
        snprintf(what, sizeof what, "gridsample %s %s align=%d",
                 gs_nearest ? "nearest" : "bilinear", pads[gs_padding], gs_align);
        op_case(g, what, n, xv, n * 100, grid_sample_ref, n * 60, 1e-6, 2e-3);
        graph_free(g);
    }
    free(xv);
}

/* ---- Einsum: one input (a transpose), a matmul with a constant and no
 * transposes, attention's "bhid,bhjd->bhij" (B transposed) and one whose
 * product is transposed into the output */

/* einsum.h's labels: 'A'..'Z' 0..25, 'a'..'z' 26..51 */
static int einsum_label(char c)
{
    return c >= 'a' ? 26 + (c - 'a') : c - 'A';
}

static void set_einsum(graph_node *nd, const char *a, const char *b, const char *y)
{
    nd->mode = b ? 2 : 1;
    nd->n_axes = (int)strlen(a);
    for (int i = 0; a[i]; i++)
        nd->axes[i] = einsum_label(a[i]);
    nd->mode2 = b ? (int)strlen(b) : 0;
    for (int i = 0; b && b[i]; i++)
        nd->perm[i] = einsum_label(b[i]);
    nd->mode3 = (int)strlen(y);
    for (int i = 0; y[i]; i++)
        nd->starts[i] = einsum_label(y[i]);
}

static float einsum_w[4 * 5];
static int einsum_which;
static const int64_t einsum_per_sample[4] = {24, 30, 18, 18}; /* output elements */

/* x [N,2,3,4] read as what each case's equation names */
static void einsum_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++) {
        const float *xb = x + b * 24;
        double *y = ref + b * einsum_per_sample[einsum_which];
        switch (einsum_which) {
        case 0: /* "nhid->nidh" */
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 3; i++)
                    for (int d = 0; d < 4; d++)
                        y[(i * 4 + d) * 2 + h] = xb[(h * 3 + i) * 4 + d];
            break;
        case 1: /* "nhij,jk->nhik" with k = 5: y [N,2,3,5] */
            for (int r = 0; r < 6; r++)
                for (int k = 0; k < 5; k++) {
                    double acc = 0;
                    for (int j = 0; j < 4; j++)
                        acc += (double)xb[r * 4 + j] * einsum_w[j * 5 + k];
                    y[r * 5 + k] = acc;
                }
            break;
        case 2: /* "nhid,nhjd->nhij" */
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        double acc = 0;
                        for (int d = 0; d < 4; d++)
                            acc += (double)xb[(h * 3 + i) * 4 + d] * xb[(h * 3 + j) * 4 + d];
                        y[(h * 3 + i) * 3 + j] = acc;
                    }
            break;
        default: /* "nhid,nhjd->njhi": the product [n,h,i,j] transposed */
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        double acc = 0;
                        for (int d = 0; d < 4; d++)
                            acc += (double)xb[(h * 3 + i) * 4 + d] * xb[(h * 3 + j) * 4 + d];
                        y[(j * 2 + h) * 3 + i] = acc;
                    }
            break;
        }
    }
}

static void test_einsum(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 5;
    int64_t dx[4] = {FERRY_DIM_BATCH, 2, 3, 4};
    int64_t dys[4][4] = {{FERRY_DIM_BATCH, 3, 4, 2},
                         {FERRY_DIM_BATCH, 2, 3, 5},
                         {FERRY_DIM_BATCH, 2, 3, 3},
                         {FERRY_DIM_BATCH, 3, 2, 3}};
    static const char *const eq[4][3] = {{"nhid", NULL, "nidh"},
                                         {"nhij", "jk", "nhik"},
                                         {"nhid", "nhjd", "nhij"},
                                         {"nhid", "nhjd", "njhi"}};
    float *xv = rand_vec(n * 24, 1.0f);
    for (einsum_which = 0; einsum_which < 4; einsum_which++) {
        graph *g = graph_new();
        int x = add_typed(g, "x", FERRY_F32, 4, dx);
        int y = add_typed(g, "y", FERRY_F32, 4, dys[einsum_which]);
        int a[2] = {x, x};
        if (einsum_which == 1) {
            a[1] = add_const(g, "w", 1.0f, 0, 2, (int64_t)4, (int64_t)5);
            memcpy(einsum_w, cdata(g, a[1]), sizeof einsum_w);
        }
        int k = graph_add_node(g, OP_EINSUM, "es", eq[einsum_which][1] ? 2 : 1, a, 1, &y);
        set_einsum(&g->nodes[k], eq[einsum_which][0], eq[einsum_which][1], eq[einsum_which][2]);
        set_io(g, 1, &x, 1, &y);
        char what[64];
        snprintf(what, sizeof what, "einsum %s%s%s->%s", eq[einsum_which][0],
                 eq[einsum_which][1] ? "," : "", eq[einsum_which][1] ? eq[einsum_which][1] : "",
                 eq[einsum_which][2]);
        op_case(g, what, n, xv, n * 24, einsum_ref, n * einsum_per_sample[einsum_which], 1e-5,
                5e-3);
        graph_free(g);
    }
    free(xv);
}

/* ---- TopK (kernels_topk.cu) along axis 1 of [N, A, inner]: values, then
 * the indices split as i / 64 and i % 64 (Div, Mod), so that they come out
 * exact through fp16 too; every case compares exactly (tolerance 0). Kinds:
 * float values, int64 values (a Cast of integers: many ties), and NaN in
 * the input (the indices only: a NaN value would fail check_close). A <=
 * 4096 runs the shared-memory sort, above it the rank count. */

enum { TK_FLOAT, TK_INT64, TK_NAN };
static int64_t tk_A, tk_inner, tk_k;
static int tk_largest, tk_kind;

/* cpu_topk.c's order: larger (smaller) first, NaN above every number,
 * the lower index on a tie. */
static int tk_ranks(double a, int64_t ia, double b, int64_t ib)
{
    int na = a != a, nb = b != b;
    if (na || nb)
        return na != nb ? na == tk_largest : ia < ib;
    if (a != b)
        return tk_largest ? a > b : a < b;
    return ia < ib;
}

static double tk_key(float v)
{
    return tk_kind == TK_INT64 ? (double)(int64_t)v : (double)v;
}

static void topk_ref(const float *x, int64_t n, double *ref)
{
    int64_t A = tk_A, in = tk_inner, K = tk_k, np = tk_kind == TK_NAN ? 2 : 3;
    for (int64_t b = 0; b < n; b++)
        for (int64_t c = 0; c < in; c++) {
            const float *xl = x + b * A * in + c;
            double *y = ref + b * np * K * in + c;
            for (int64_t j = 0; j < A; j++) {
                int64_t r = 0;
                double kj = tk_key(xl[j * in]);
                for (int64_t q = 0; q < A && r < K; q++)
                    r += tk_ranks(tk_key(xl[q * in]), q, kj, j);
                if (r >= K)
                    continue;
                int64_t p = 0;
                if (tk_kind != TK_NAN)
                    y[(p++ * K + r) * in] = kj;
                y[(p++ * K + r) * in] = (double)(j / 64);
                y[(p * K + r) * in] = (double)(j % 64);
            }
        }
}

static void topk_case(const char *what, int64_t n, const float *xv, int64_t A, int64_t inner,
                      int64_t K, int largest, int kind)
{
    tk_A = A, tk_inner = inner, tk_k = K, tk_largest = largest, tk_kind = kind;
    int64_t np = kind == TK_NAN ? 2 : 3;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, A, inner}, dk[3] = {FERRY_DIM_BATCH, K, inner};
    int64_t dy[3] = {FERRY_DIM_BATCH, np * K, inner}, sixty_four = 64;
    int x = add_typed(g, "x", FERRY_F32, 3, dx), src = x;
    if (kind == TK_INT64) {
        src = add_typed(g, "xi", FERRY_I64, 3, dx);
        add_cast(g, "to_i64", x, src, FERRY_I64);
    }
    int vals = add_typed(g, "vals", kind == TK_INT64 ? FERRY_I64 : FERRY_F32, 3, dk);
    int ids = add_typed(g, "ids", FERRY_I64, 3, dk);
    int a[3] = {src, add_i64_const(g, "K", 1, &K)}, outs[2] = {vals, ids};
    int k = graph_add_node(g, OP_TOPK, "topk", 2, a, 2, outs);
    g->nodes[k].axis = 1;
    g->nodes[k].mode = largest;
    int hi = add_typed(g, "hi", FERRY_I64, 3, dk), lo = add_typed(g, "lo", FERRY_I64, 3, dk);
    a[0] = ids, a[1] = add_i64_const(g, "c64", 1, &sixty_four);
    graph_add_node(g, OP_DIV, "div", 2, a, 1, &hi);
    graph_add_node(g, OP_MOD, "mod", 2, a, 1, &lo);
    int hf = add_typed(g, "hf", FERRY_F32, 3, dk), lf = add_typed(g, "lf", FERRY_F32, 3, dk);
    add_cast(g, "hi_f", hi, hf, FERRY_F32);
    add_cast(g, "lo_f", lo, lf, FERRY_F32);
    int cat[3], nc = 0;
    if (kind == TK_INT64) {
        int vf = add_typed(g, "vf", FERRY_F32, 3, dk);
        add_cast(g, "vals_f", vals, vf, FERRY_F32);
        cat[nc++] = vf;
    } else if (kind == TK_FLOAT) {
        cat[nc++] = vals;
    }
    cat[nc++] = hf;
    cat[nc++] = lf;
    int y = add_typed(g, "y", FERRY_F32, 3, dy);
    k = graph_add_node(g, OP_CONCAT, "cat", nc, cat, 1, &y);
    g->nodes[k].axis = 1;
    set_io(g, 1, &x, 1, &y);
    char w[96];
    snprintf(w, sizeof w, "topk %s A %lld K %lld", what, (long long)A, (long long)K);
    op_case(g, w, n, xv, n * A * inner, topk_ref, n * np * K * inner, 0.0, 0.0);
    graph_free(g);
}

/* Integers in [-s, s] (as floats, exact in fp16 while s <= 2048). */
static float *int_vec(int64_t n, float s)
{
    float *p = rand_vec(n, s + 0.999f);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(int)p[i];
    return p;
}

static void test_topk(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    /* [N, 7, 5]: ties (row 5 repeats row 2; +0 and -0 in rows 1 and 4) */
    float *xv = rand_vec(n * 35, 1.0f);
    for (int64_t b = 0; b < n; b++)
        for (int c = 0; c < 5; c++) {
            xv[(b * 7 + 5) * 5 + c] = xv[(b * 7 + 2) * 5 + c];
            if (c == 1) {
                xv[(b * 7 + 1) * 5 + c] = 0.0f;
                xv[(b * 7 + 4) * 5 + c] = -0.0f;
            }
        }
    topk_case("largest, ties", n, xv, 7, 5, 3, 1, TK_FLOAT);
    topk_case("smallest", n, xv, 7, 5, 1, 0, TK_FLOAT);
    topk_case("sort, smallest", n, xv, 7, 5, 7, 0, TK_FLOAT);
    /* NaN in rows 3 and 6 of some columns: first when largest, last when
     * not, the lower index first among them */
    for (int64_t b = 0; b < n; b++)
        for (int c = 0; c < 5; c++) {
            if (c % 2 == 0)
                xv[(b * 7 + 3) * 5 + c] = NAN;
            if (c % 3 == 0)
                xv[(b * 7 + 6) * 5 + c] = NAN;
        }
    topk_case("NaN largest", n, xv, 7, 5, 7, 1, TK_NAN);
    topk_case("NaN smallest", n, xv, 7, 5, 2, 0, TK_NAN);
    free(xv);
    /* one line a sample: a sort of 1000, the top 5 of 3000 (padded to
     * 4096), int64 with many ties up to the sort's limit (4096, 48 KiB of
     * shared memory), and the rank count past it (inner 2) */
    xv = rand_vec(n * 3000, 1.0f);
    for (int64_t b = 0; b < n; b++)
        xv[b * 1000 + 999] = xv[b * 1000 + 17]; /* a tie */
    topk_case("sort, smallest", n, xv, 1000, 1, 1000, 0, TK_FLOAT);
    topk_case("largest", n, xv, 3000, 1, 5, 1, TK_FLOAT);
    topk_case("K 1", n, xv, 1, 1, 1, 1, TK_FLOAT);
    free(xv);
    xv = int_vec(n * 9 * 4, 3.0f);
    topk_case("int64 largest", n, xv, 9, 4, 4, 1, TK_INT64);
    free(xv);
    xv = int_vec(2 * 4096, 100.0f);
    topk_case("int64 sort", 2, xv, 4096, 1, 4096, 0, TK_INT64);
    free(xv);
    xv = rand_vec(2 * 5000 * 2, 1.0f);
    topk_case("rank count, sort", 2, xv, 5000, 1, 5000, 1, TK_FLOAT);
    topk_case("rank count, smallest", 2, xv, 5000, 2, 3, 0, TK_FLOAT);
    free(xv);
    xv = int_vec(2 * 4097, 50.0f);
    topk_case("rank count, int64", 2, xv, 4097, 1, 4097, 1, TK_INT64);
    free(xv);
}

/* ---- ReduceL1 over axis 1 and ReduceLogSum of Abs(x) over axis 2 of
 * [N,5,7], added with broadcasting */

static void l1_logsum_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 7; j++) {
                double l1 = 0, s = 0;
                for (int r = 0; r < 5; r++)
                    l1 += fabs(x[(b * 5 + r) * 7 + j]);
                for (int c = 0; c < 7; c++)
                    s += fabs(x[(b * 5 + i) * 7 + c]);
                ref[(b * 5 + i) * 7 + j] = l1 + log(s);
            }
}

static void test_reduce_l1_logsum(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3;
    graph *g = graph_new();
    int64_t dx[3] = {FERRY_DIM_BATCH, 5, 7}, ds[3] = {FERRY_DIM_BATCH, 1, 7};
    int64_t dm[3] = {FERRY_DIM_BATCH, 5, 1};
    int x = add_typed(g, "x", FERRY_F32, 3, dx), ab = add_typed(g, "ab", FERRY_F32, 3, dx);
    int l1 = add_typed(g, "l1", FERRY_F32, 3, ds), ls = add_typed(g, "ls", FERRY_F32, 3, dm);
    int y = add_typed(g, "y", FERRY_F32, 3, dx);
    int k = graph_add_node(g, OP_REDUCE_L1, "l1", 1, &x, 1, &l1);
    g->nodes[k].n_axes = 1, g->nodes[k].axes[0] = 1, g->nodes[k].keepdims = 1;
    graph_add_node(g, OP_ABS, "abs", 1, &x, 1, &ab);
    k = graph_add_node(g, OP_REDUCE_LOG_SUM, "ls", 1, &ab, 1, &ls);
    g->nodes[k].n_axes = 1, g->nodes[k].axes[0] = -1, g->nodes[k].keepdims = 1;
    int a[2] = {l1, ls};
    graph_add_node(g, OP_ADD, "add", 2, a, 1, &y);
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * 35, 2.0f);
    op_case(g, "reduce l1+logsum", n, xv, n * 35, l1_logsum_ref, n * 35, 1e-6, 2e-3);
    free(xv);
    graph_free(g);
}

/* ---- integer ReduceProd, ReduceL1 (over axis 1) and ReduceSumSquare,
 * ReduceSum (over axis 2) of [N,6,5] in int64 and int32, wrapping on
 * overflow as the CPU: six factors of magnitude 1024..2047 overflow
 * int64 often and int32 always. Concat, Mod 997 (exact through fp16),
 * Cast out. */

static ferry_dtype ri_dt;

static int64_t ri_wrap(uint64_t u)
{
    return ri_dt == FERRY_I32 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
}

static void reduce_int_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t b = 0; b < n; b++) {
        double *y = ref + b * 22;
        for (int j = 0; j < 5; j++) {
            uint64_t p = 1, l1 = 0;
            for (int r = 0; r < 6; r++) {
                int64_t v = (int64_t)x[(b * 6 + r) * 5 + j];
                p *= (uint64_t)v;
                l1 += v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            }
            y[j] = (double)(((ri_wrap(p) % 997) + 997) % 997);
            y[5 + j] = (double)(((ri_wrap(l1) % 997) + 997) % 997);
        }
        for (int i = 0; i < 6; i++) {
            uint64_t ss = 0, s = 0;
            for (int c = 0; c < 5; c++) {
                int64_t v = (int64_t)x[(b * 6 + i) * 5 + c];
                ss += (uint64_t)v * (uint64_t)v;
                s += (uint64_t)v;
            }
            y[10 + i] = (double)(((ri_wrap(ss) % 997) + 997) % 997);
            y[16 + i] = (double)(((ri_wrap(s) % 997) + 997) % 997);
        }
    }
}

static void test_reduce_int(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 4;
    float *xv = rand_vec(n * 30, 1.0f);
    for (int64_t i = 0; i < n * 30; i++)
        xv[i] = (xv[i] < 0 ? -1.0f : 1.0f) * (float)(1024 + (int)(1023.999f * fabsf(xv[i])));
    for (int t = 0; t < 2; t++) {
        ri_dt = t ? FERRY_I32 : FERRY_I64;
        graph *g = graph_new();
        int64_t dx[3] = {FERRY_DIM_BATCH, 6, 5}, d5[2] = {FERRY_DIM_BATCH, 5};
        int64_t d6[2] = {FERRY_DIM_BATCH, 6}, dc[2] = {FERRY_DIM_BATCH, 22}, one = 1;
        int x = add_typed(g, "x", FERRY_F32, 3, dx), xi = add_typed(g, "xi", ri_dt, 3, dx);
        add_cast(g, "to_int", x, xi, ri_dt);
        static const op_kind ops[4] = {OP_REDUCE_PROD, OP_REDUCE_L1, OP_REDUCE_SUM_SQUARE,
                                       OP_REDUCE_SUM};
        static const char *names[4] = {"prod", "l1", "sumsq", "sum"};
        int r[4];
        for (int q = 0; q < 4; q++) {
            r[q] = add_typed(g, names[q], ri_dt, 2, q < 2 ? d5 : d6);
            int k = graph_add_node(g, ops[q], names[q], 1, &xi, 1, &r[q]);
            g->nodes[k].n_axes = 1, g->nodes[k].axes[0] = q < 2 ? 1 : 2;
        }
        int cat = add_typed(g, "cat", ri_dt, 2, dc), m = add_typed(g, "m", ri_dt, 2, dc);
        int y = add_typed(g, "y", FERRY_F32, 2, dc);
        int k = graph_add_node(g, OP_CONCAT, "cat", 4, r, 1, &cat);
        g->nodes[k].axis = 1;
        int p = add_typed(g, "p", ri_dt, 1, &one);
        void *pv = malloc(8);
        assert_non_null(pv);
        if (ri_dt == FERRY_I32)
            *(int32_t *)pv = 997;
        else
            *(int64_t *)pv = 997;
        g->values[p].data = pv;
        g->values[p].is_const = 1;
        int a[2] = {cat, p};
        graph_add_node(g, OP_MOD, "mod", 2, a, 1, &m);
        add_cast(g, "to_f32", m, y, FERRY_F32);
        set_io(g, 1, &x, 1, &y);
        op_case(g, t ? "reduce int32 wrapping" : "reduce int64 wrapping", n, xv, n * 30,
                reduce_int_ref, n * 22, 0.0, 0.0);
        graph_free(g);
    }
    free(xv);
}

/* ---- PRelu with a per-channel slope between two fp16 convolutions: the
 * activations between stay channels-last (cuda_layout.c), so the slope
 * broadcasts over NHWC; the same with FERRY_CUDA_LAYOUT=nchw */

static void test_prelu_nhwc(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 3, ci = 4, cm = 6, co = 5, hw = 7;
    graph *g = graph_new();
    int64_t dx[4] = {FERRY_DIM_BATCH, ci, hw, hw}, dm[4] = {FERRY_DIM_BATCH, cm, hw, hw};
    int64_t dy[4] = {FERRY_DIM_BATCH, co, hw, hw};
    int x = add_typed(g, "x", FERRY_F32, 4, dx);
    int w1 = add_const(g, "W1", 0.5f, 0, 4, cm, ci, (int64_t)3, (int64_t)3);
    int b1 = add_const(g, "b1", 0.5f, 0, 1, cm);
    int s = add_const(g, "slope", 1.0f, 0, 3, cm, (int64_t)1, (int64_t)1);
    int w2 = add_const(g, "W2", 0.5f, 0, 4, co, cm, (int64_t)3, (int64_t)3);
    int b2 = add_const(g, "b2", 0.5f, 0, 1, co);
    int c1 = add_typed(g, "c1", FERRY_F32, 4, dm), p = add_typed(g, "p", FERRY_F32, 4, dm);
    int y = add_typed(g, "y", FERRY_F32, 4, dy);
    int in3[3] = {x, w1, b1};
    int convs[2];
    convs[0] = graph_add_node(g, OP_CONV, "conv1", 3, in3, 1, &c1);
    int a[2] = {c1, s};
    graph_add_node(g, OP_PRELU, "prelu", 2, a, 1, &p);
    in3[0] = p, in3[1] = w2, in3[2] = b2;
    convs[1] = graph_add_node(g, OP_CONV, "conv2", 3, in3, 1, &y);
    for (int q = 0; q < 2; q++) {
        conv_attrs *ca = &g->nodes[convs[q]].conv;
        ca->nsp = 2, ca->group = 1;
        for (int i = 0; i < 2; i++) {
            ca->kernel[i] = 3, ca->strides[i] = 1, ca->dilations[i] = 1;
            ca->pads[i] = ca->pads[i + 2] = 1;
        }
    }
    set_io(g, 1, &x, 1, &y);
    float *xv = rand_vec(n * ci * hw * hw, 2.0f);
    int64_t nm = n * cm * hw * hw, ny = n * co * hw * hw;
    double *mid = malloc(sizeof(double) * (size_t)nm), *ref = malloc(sizeof(double) * (size_t)ny);
    float *pf = malloc(sizeof(float) * (size_t)nm);
    assert_non_null(mid);
    assert_non_null(ref);
    assert_non_null(pf);
    conv_ref(xv, cdata(g, w1), cdata(g, b1), mid, n, ci, cm, hw, 1, 1, ACT_NONE);
    for (int64_t i = 0; i < nm; i++) {
        double v = mid[i], sl = cdata(g, s)[(i / (hw * hw)) % cm];
        pf[i] = (float)(v >= 0 ? v : v * sl);
    }
    conv_ref(pf, cdata(g, w2), cdata(g, b2), ref, n, cm, co, hw, 1, 1, ACT_NONE);
    for (int mode = 0; mode < 2; mode++) {
        if (mode)
            setenv("FERRY_CUDA_LAYOUT", "nchw", 1);
        for (int q = 0; q < 2; q++) {
            run_cfg rc = {FERRY_PRECISION_FP16, FERRY_F32, 16, q};
            float *yv = run_graph(g, &rc, n, xv);
            char what[96];
            snprintf(what, sizeof what, "conv+prelu+conv fp16 %s%s", mode ? "nchw" : "nhwc",
                     q ? " captured" : "");
            check_close(what, yv, ref, ny, 2e-2);
            free(yv);
        }
        unsetenv("FERRY_CUDA_LAYOUT");
    }
    free(pf);
    free(ref);
    free(mid);
    free(xv);
    graph_free(g);
}

/* ---- the operators the CPU backend gained before the CUDA one: each
 * graph at fp32, then at fp16 and bf16 (captured and replayed) against a
 * double reference of the input as that precision stores it */

static float round_to(ferry_precision p, float v)
{
    if (p == FERRY_PRECISION_FP16)
        return ferry_f16_to_f32(ferry_f32_to_f16(v));
    if (p == FERRY_PRECISION_BF16)
        return ferry_bf16_to_f32(ferry_f32_to_bf16(v));
    return v;
}

/* tol: fp32, fp16, bf16. */
static void prec_case(graph *g, const char *what, int64_t n, const float *xv, int64_t nx,
                      ref_fn ref, int64_t nref, const double tol[3])
{
    static const ferry_precision ps[3] = {FERRY_PRECISION_FP32, FERRY_PRECISION_FP16,
                                          FERRY_PRECISION_BF16};
    float *xin = malloc(sizeof(float) * (size_t)nx);
    double *r = malloc(sizeof(double) * (size_t)nref);
    assert_non_null(xin);
    assert_non_null(r);
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < nx; i++)
            xin[i] = round_to(ps[k], xv[i]);
        ref(xin, n, r);
        run_cfg rc = {ps[k], FERRY_F32, 16, k > 0};
        float *yv = run_graph(g, &rc, n, xin);
        char w[128];
        snprintf(w, sizeof w, "%s %s%s", what, prec_name(ps[k]), k ? " captured" : "");
        check_close(w, yv, r, nref, tol[k]);
        free(yv);
    }
    free(r);
    free(xin);
}

/* ---- Elu, Selu, Celu, ThresholdedRelu, Softsign, Mish, Shrink on
 * [N,3,7]: random values in [-4, 4) and the edges (0, +-threshold, the
 * far tails, a tiny negative where e^x - 1 cancels) */

typedef struct act_spec {
    op_kind op;
    const char *name;
    float a, b; /* node alpha, act_beta */
} act_spec;
static act_spec act_cur;

static double act_ref1(double v)
{
    double a = act_cur.a, b = act_cur.b;
    switch (act_cur.op) {
    case OP_ELU: return v > 0 ? v : a * expm1(v);
    case OP_SELU: return b * (v > 0 ? v : a * expm1(v));
    case OP_CELU: return fmax(0.0, v) + fmin(0.0, a * expm1(v / a));
    case OP_THRESHOLDED_RELU: return v > a ? v : 0.0;
    case OP_SOFTSIGN: return v / (1.0 + fabs(v));
    case OP_MISH: return v * tanh(log1p(exp(v)));
    case OP_SHRINK: return v < -a ? v + b : v > a ? v - b : 0.0;
    default: return NAN;
    }
}

static void act_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t i = 0; i < n * 21; i++)
        ref[i] = act_ref1(x[i]);
}

static void test_activations_param(void **state)
{
    (void)state;
    need_device();
    static const act_spec specs[] = {
        {OP_ELU, "elu", 0.7f, 0},
        {OP_ELU, "elu alpha 1", 1.0f, 0},
        {OP_SELU, "selu", 1.67326319217681884765625f, 1.05070102214813232421875f},
        {OP_SELU, "selu alpha 2 gamma 0.5", 2.0f, 0.5f},
        {OP_CELU, "celu", 1.3f, 0},
        {OP_CELU, "celu alpha -5", -5.0f, 0}, /* |x / alpha| <= 6: finite in fp16 */
        {OP_THRESHOLDED_RELU, "thresholded_relu", 0.5f, 0},
        {OP_THRESHOLDED_RELU, "thresholded_relu -0.25", -0.25f, 0},
        {OP_SOFTSIGN, "softsign", 0, 0},
        {OP_MISH, "mish", 0, 0},
        {OP_SHRINK, "shrink (soft)", 0.5f, 0.5f},
        {OP_SHRINK, "shrink (hard)", 0.75f, 0.0f},
    };
    const int64_t n = 5;
    float *xv = rand_vec(n * 21, 4.0f);
    static const float edges[] = {0.0f,   0.5f,  -0.5f,  0.75f, -0.75f, -0.25f, 30.0f,
                                  -30.0f, 25.0f, -1e-3f, 1e-3f, -12.0f, 19.5f,  21.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        xv[i * 7] = edges[i];
    static const double tol[3] = {1e-5, 2e-3, 1e-2};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        act_cur = specs[k];
        graph *g = graph_new();
        int64_t dx[3] = {FERRY_DIM_BATCH, 3, 7};
        int x = add_typed(g, "x", FERRY_F32, 3, dx), y = add_typed(g, "y", FERRY_F32, 3, dx);
        int nd = graph_add_node(g, act_cur.op, act_cur.name, 1, &x, 1, &y);
        g->nodes[nd].alpha = act_cur.a;
        g->nodes[nd].act_beta = act_cur.b;
        set_io(g, 1, &x, 1, &y);
        prec_case(g, act_cur.name, n, xv, n * 21, act_ref, n * 21, tol);
        graph_free(g);
    }
    free(xv);
}

/* ---- IsNaN and IsInf (all four detect_negative x detect_positive) of
 * [N,11] holding NaN, +-inf, 1e30 (inf once stored in fp16, finite in
 * bf16) and ordinary values; the bool out cast to float */

static int ft_nan, ft_neg, ft_pos;

static void float_test_ref(const float *x, int64_t n, double *ref)
{
    for (int64_t i = 0; i < n * 11; i++) {
        float v = x[i];
        ref[i] = ft_nan ? isnan(v) != 0 : isinf(v) && (v < 0 ? ft_neg : ft_pos);
    }
}

static void test_isnan_isinf(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 4;
    float *xv = rand_vec(n * 11, 3.0f);
    for (int64_t b = 0; b < n; b++) {
        xv[b * 11 + 1] = NAN;
        xv[b * 11 + 3] = INFINITY;
        xv[b * 11 + 5] = -INFINITY;
        xv[b * 11 + 7] = b % 2 ? 1e30f : -1e30f;
        xv[b * 11 + 9] = b % 2 ? -NAN : 65504.0f;
    }
    static const double tol[3] = {0, 0, 0};
    for (int mode = 0; mode < 5; mode++) {
        ft_nan = mode == 4;
        ft_neg = mode & 1;
        ft_pos = (mode >> 1) & 1;
        graph *g = graph_new();
        int64_t dx[2] = {FERRY_DIM_BATCH, 11};
        int x = add_typed(g, "x", FERRY_F32, 2, dx), t = add_typed(g, "t", FERRY_BOOL, 2, dx);
        int y = add_typed(g, "y", FERRY_F32, 2, dx);
        int k = graph_add_node(g, ft_nan ? OP_IS_NAN : OP_IS_INF, "test", 1, &x, 1, &t);
        g->nodes[k].mode = ft_neg;
        g->nodes[k].mode2 = ft_pos;
        add_cast(g, "to_f32", t, y, FERRY_F32);
        set_io(g, 1, &x, 1, &y);
        char what[64];
        if (ft_nan)
            snprintf(what, sizeof what, "isnan");
        else
            snprintf(what, sizeof what, "isinf neg %d pos %d", ft_neg, ft_pos);
        prec_case(g, what, n, xv, n * 11, float_test_ref, n * 11, tol);
        graph_free(g);
    }
    free(xv);
}

/* ---- OneHot of [N,4] indices: int64 on the last axis (axis -1) with
 * float values, int32 on axis 1 (given as -2) with int64 values, and
 * float indices (fractions truncated, NaN and out of range off) on the
 * last axis; indices in [-depth - 1, depth] so that negatives wrap and
 * the ends are out of range */

static int oh_depth, oh_axis, oh_float;
static double oh_off, oh_on;

static void one_hot_ref(const float *x, int64_t n, double *ref)
{
    int64_t D = oh_depth;
    for (int64_t b = 0; b < n; b++)
        for (int j = 0; j < 4; j++) {
            float f = x[b * 4 + j];
            int64_t h;
            if (oh_float)
                h = f > (float)-D - 1.0f && f < (float)D ? (int64_t)f : D;
            else
                h = (int64_t)f; /* integers: the Cast to int is exact */
            if (h < 0)
                h += D;
            for (int64_t k = 0; k < D; k++) {
                /* [N, 4, D] (axis 2) or [N, D, 4] (axis 1) */
                int64_t e = oh_axis == 2 ? (b * 4 + j) * D + k : (b * D + k) * 4 + j;
                ref[e] = h == k ? oh_on : oh_off;
            }
        }
}

static void test_one_hot(void **state)
{
    (void)state;
    need_device();
    const int64_t n = 6;
    oh_depth = 5;
    float *xv = int_vec(n * 4, 6.0f); /* [-6, 6]: -6 and 5, 6 out of range */
    xv[0] = -5.0f, xv[1] = 4.0f, xv[2] = -1.0f, xv[3] = 0.0f;
    for (int c = 0; c < 3; c++) {
        oh_float = c == 2;
        oh_axis = c == 1 ? 1 : 2;
        ferry_dtype it = c == 0 ? FERRY_I64 : c == 1 ? FERRY_I32 : FERRY_F32;
        ferry_dtype vt = c == 1 ? FERRY_I64 : FERRY_F32;
        if (oh_float) { /* fractions exact in fp16 and bf16 */
            for (int64_t i = 0; i < n * 4; i++)
                xv[i] += xv[i] < 0 ? -0.25f : 0.75f;
            xv[5] = NAN;
            xv[6] = -5.75f; /* -5 wraps to 0 */
            xv[7] = -6.25f; /* -6: out of range */
            xv[9] = 4.99f;  /* 4 */
        }
        oh_off = c == 1 ? 3.0 : -1.5;
        oh_on = c == 1 ? -7.0 : 2.0;
        graph *g = graph_new();
        int64_t dx[2] = {FERRY_DIM_BATCH, 4}, dv[1] = {2};
        int64_t dy[3] = {FERRY_DIM_BATCH, oh_axis == 2 ? 4 : oh_depth, oh_axis == 2 ? oh_depth : 4};
        int x = add_typed(g, "x", FERRY_F32, 2, dx), idx = x;
        if (!oh_float) {
            idx = add_typed(g, "idx", it, 2, dx);
            add_cast(g, "to_int", x, idx, it);
        }
        int64_t depth = oh_depth;
        int dep = add_i64_const(g, "depth", 1, &depth);
        int vals = add_typed(g, "values", vt, 1, dv);
        if (vt == FERRY_F32) {
            float *p = malloc(2 * sizeof *p);
            assert_non_null(p);
            p[0] = (float)oh_off, p[1] = (float)oh_on;
            g->values[vals].data = p;
        } else {
            int64_t *p = malloc(2 * sizeof *p);
            assert_non_null(p);
            p[0] = (int64_t)oh_off, p[1] = (int64_t)oh_on;
            g->values[vals].data = p;
        }
        g->values[vals].is_const = 1;
        int oh = add_typed(g, "oh", vt, 3, dy), y = oh;
        int a[3] = {idx, dep, vals};
        int k = graph_add_node(g, OP_ONE_HOT, "onehot", 3, a, 1, &oh);
        g->nodes[k].axis = oh_axis == 2 ? -1 : -2; /* as given; the backend resolves it */
        g->nodes[k].starts[0] = oh_depth;          /* as infer_one_hot leaves it */
        if (vt != FERRY_F32) {
            y = add_typed(g, "y", FERRY_F32, 3, dy);
            add_cast(g, "to_f32", oh, y, FERRY_F32);
        }
        set_io(g, 1, &x, 1, &y);
        static const char *const names[3] = {"onehot int64 axis -1", "onehot int32 axis -2",
                                             "onehot float axis -1"};
        static const double tol[3] = {0, 0, 0};
        prec_case(g, names[c], n, xv, n * 4, one_hot_ref, n * 4 * oh_depth, tol);
        graph_free(g);
    }
    free(xv);
}

/* ---- RNN (tanh, relu; forward, reverse, bidirectional; layouts 0 and 1;
 * B, sequence_lens and initial_h present or not) of T = 5 steps, I = 3
 * inputs, H = 6 units. The graph's one input z [N, 1 + T*I + D*H] carries
 * each row's length, its X row and its initial_h; the output is Y
 * [N, T, D, H] then Y_h [N, D, H], concatenated per row. */

enum { RT = 5, RI = 3, RH = 6 };
typedef struct rnn_spec {
    const char *name;
    int relu, direction, layout, has_b, has_lens, has_h0;
    int kind; /* 0 RNN, 1 LSTM (initial_c in, Y_c out), 2 GRU (linear_before_reset 1) */
} rnn_spec;
static rnn_spec rs_cur;
/* W [D,G*H,I], R [D,G*H,H], B [D,2*G*H] as the device has them */
static const float *rs_w, *rs_r, *rs_b;
static ferry_precision rs_prec;

static int rs_dirs(void)
{
    return rs_cur.direction == RNN_BIDIRECTIONAL ? 2 : 1;
}

static int rs_gates(void)
{
    return rs_cur.kind == 1 ? 4 : rs_cur.kind == 2 ? 3 : 1;
}

/* z [n, zw]: the length, X [T, I], initial_h [D, H], initial_c [D, H]
 * (LSTM); the reference [n, yw]: Y [T, D, H], Y_h [D, H], Y_c [D, H]. */
static int64_t rs_zw(void)
{
    return 1 + RT * RI + (rs_cur.kind == 1 ? 2 : 1) * rs_dirs() * RH;
}

static int64_t rs_yw(void)
{
    return (RT + 1 + (rs_cur.kind == 1)) * rs_dirs() * RH;
}

static double sigm64(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* One direction's gate sum for gate q, unit j at time t from state h:
 * W x + R h + Wb + Rb (without Rb and the state for GRU's h gate: the
 * caller adds r * (R h + Rb) there). */
static double rs_sum(int d, int q, int j, const float *x, const double *h, int with_r)
{
    const int64_t GH = (int64_t)rs_gates() * RH, row = (int64_t)q * RH + j;
    double v = 0.0;
    if (rs_cur.has_b)
        v += (double)rs_b[d * 2 * GH + row] + (with_r ? (double)rs_b[d * 2 * GH + GH + row] : 0.0);
    for (int i = 0; i < RI; i++)
        v += (double)rs_w[(d * GH + row) * RI + i] * x[i];
    for (int i = 0; with_r && i < RH; i++)
        v += (double)rs_r[(d * GH + row) * RH + i] * h[i];
    return v;
}

static void rnn_plain_ref(const float *z, int64_t n, double *ref)
{
    int D = rs_dirs();
    const int64_t zw = rs_zw(), yw = rs_yw(), GH = (int64_t)rs_gates() * RH;
    for (int64_t b = 0; b < n; b++) {
        const float *zr = z + b * zw;
        int64_t len = rs_cur.has_lens ? (int64_t)zr[0] : RT;
        double *yr = ref + b * yw;
        for (int64_t i = 0; i < RT * D * RH; i++)
            yr[i] = 0.0;
        for (int d = 0; d < D; d++) {
            double h[RH], c[RH], hn[RH];
            for (int j = 0; j < RH; j++) {
                h[j] = rs_cur.has_h0 ? zr[1 + RT * RI + d * RH + j] : 0.0;
                c[j] = rs_cur.has_h0 && rs_cur.kind == 1 ? zr[1 + RT * RI + (D + d) * RH + j] : 0.0;
            }
            int reverse = d == 1 || rs_cur.direction == RNN_REVERSE;
            for (int64_t k = 0; k < len; k++) {
                int64_t t = reverse ? len - 1 - k : k;
                const float *x = zr + 1 + t * RI;
                for (int j = 0; j < RH; j++) {
                    if (rs_cur.kind == 1) { /* ONNX order i, o, f, c */
                        double gi = sigm64(rs_sum(d, 0, j, x, h, 1));
                        double go = sigm64(rs_sum(d, 1, j, x, h, 1));
                        double gf = sigm64(rs_sum(d, 2, j, x, h, 1));
                        double gc = tanh(rs_sum(d, 3, j, x, h, 1));
                        c[j] = gf * c[j] + gi * gc;
                        hn[j] = go * tanh(c[j]);
                    } else if (rs_cur.kind == 2) { /* z, r, h */
                        double gz = sigm64(rs_sum(d, 0, j, x, h, 1));
                        double gr = sigm64(rs_sum(d, 1, j, x, h, 1));
                        double rh = rs_cur.has_b ? (double)rs_b[d * 2 * GH + GH + 2 * RH + j] : 0.0;
                        for (int i = 0; i < RH; i++)
                            rh += (double)rs_r[(d * GH + 2 * RH + j) * RH + i] * h[i];
                        double gn = tanh(rs_sum(d, 2, j, x, h, 0) + gr * rh);
                        hn[j] = (1.0 - gz) * gn + gz * h[j];
                    } else {
                        double v = rs_sum(d, 0, j, x, h, 1);
                        hn[j] = rs_cur.relu ? (v > 0 ? v : 0.0) : tanh(v);
                    }
                }
                for (int j = 0; j < RH; j++) {
                    h[j] = hn[j];
                    yr[(t * D + d) * RH + j] = h[j];
                }
            }
            for (int j = 0; j < RH; j++) {
                yr[RT * D * RH + d * RH + j] = h[j];
                if (rs_cur.kind == 1)
                    yr[(RT + 1) * D * RH + d * RH + j] = c[j];
            }
        }
    }
}

static int add_transpose(graph *g, const char *name, int x, int out, const int64_t *perm)
{
    int k = graph_add_node(g, OP_TRANSPOSE, name, 1, &x, 1, &out);
    for (int i = 0; i < g->values[x].ndim; i++)
        g->nodes[k].perm[i] = perm[i];
    return k;
}

static void rnn_plain_case(const rnn_spec *spec, int64_t n, const float *zv)
{
    rs_cur = *spec;
    const int64_t D = rs_dirs(), B = FERRY_DIM_BATCH, G = rs_gates(), GH = G * RH;
    const int64_t zw = rs_zw(), yw = rs_yw();
    const int lstm = spec->kind == 1;
    graph *g = graph_new();
    int64_t dz[2] = {B, zw}, d1[2] = {B, 1}, dn[1] = {B}, dxs[2] = {B, RT * RI};
    int64_t dx1[3] = {B, RT, RI}, dx0[3] = {RT, B, RI}, dhs[2] = {B, D * RH};
    int64_t dh1[3] = {B, D, RH}, dh0[3] = {D, B, RH};
    int64_t dy1[4] = {B, RT, D, RH}, dy0[4] = {RT, D, B, RH};
    int64_t dyf[2] = {B, RT * D * RH}, dyh[2] = {B, D * RH}, dout[2] = {B, yw};
    int z = add_typed(g, "z", FERRY_F32, 2, dz);
    int in[7] = {-1, -1, -1, -1, -1, -1, -1};
    /* X */
    int xs = add_typed(g, "xs", FERRY_F32, 2, dxs), x1 = add_typed(g, "x1", FERRY_F32, 3, dx1);
    int64_t st1[2] = {0, 1};
    add_slice(g, "slice_x", z, xs, st1);
    graph_add_node(g, OP_RESHAPE, "reshape_x", 1, &xs, 1, &x1);
    in[0] = x1;
    static const int64_t p102[3] = {1, 0, 2}, p2013[4] = {2, 0, 1, 3};
    if (!spec->layout) {
        in[0] = add_typed(g, "x0", FERRY_F32, 3, dx0);
        add_transpose(g, "x_to_time_major", x1, in[0], p102);
    }
    in[1] = add_const(g, "W", 0.6f, 0, 3, D, GH, (int64_t)RI);
    in[2] = add_const(g, "R", 0.4f, 0, 3, D, GH, (int64_t)RH);
    if (spec->has_b)
        in[3] = add_const(g, "B", 0.3f, 0, 2, D, 2 * GH);
    if (spec->has_lens) {
        int lf = add_typed(g, "lens_f", FERRY_F32, 2, d1),
            lr = add_typed(g, "lens_r", FERRY_F32, 1, dn);
        int64_t st0[2] = {0, 0};
        add_slice(g, "slice_lens", z, lf, st0);
        graph_add_node(g, OP_RESHAPE, "reshape_lens", 1, &lf, 1, &lr);
        in[4] = add_typed(g, "lens", FERRY_I32, 1, dn);
        add_cast(g, "lens_i32", lr, in[4], FERRY_I32);
    }
    /* initial_h (and initial_c of an LSTM) from z, direction-major at layout 0 */
    for (int k = 0; spec->has_h0 && k < 1 + lstm; k++) {
        char nm[4][16];
        snprintf(nm[0], sizeof nm[0], "%cs", k ? 'c' : 'h');
        snprintf(nm[1], sizeof nm[1], "%c1", k ? 'c' : 'h');
        snprintf(nm[2], sizeof nm[2], "%c0", k ? 'c' : 'h');
        snprintf(nm[3], sizeof nm[3], "slice_%c0", k ? 'c' : 'h');
        int hs = add_typed(g, nm[0], FERRY_F32, 2, dhs), h1 = add_typed(g, nm[1], FERRY_F32, 3, dh1);
        int64_t st2[2] = {0, 1 + RT * RI + k * D * RH};
        add_slice(g, nm[3], z, hs, st2);
        graph_add_node(g, OP_RESHAPE, k ? "reshape_c0" : "reshape_h0", 1, &hs, 1, &h1);
        in[5 + k] = h1;
        if (!spec->layout) {
            in[5 + k] = add_typed(g, nm[2], FERRY_F32, 3, dh0);
            add_transpose(g, k ? "c0_to_dir_major" : "h0_to_dir_major", h1, in[5 + k], p102);
        }
    }
    int Y = add_typed(g, "Y", FERRY_F32, 4, spec->layout ? dy1 : dy0);
    int Yh = add_typed(g, "Y_h", FERRY_F32, 3, spec->layout ? dh1 : dh0);
    int Yc = lstm ? add_typed(g, "Y_c", FERRY_F32, 3, spec->layout ? dh1 : dh0) : -1;
    int outs[3] = {Y, Yh, Yc};
    op_kind op = spec->kind == 1 ? OP_LSTM : spec->kind == 2 ? OP_GRU : OP_RNN;
    int k = graph_add_node(g, op, "rnn", lstm ? 7 : 6, in, lstm ? 3 : 2, outs);
    g->nodes[k].hidden = RH;
    g->nodes[k].direction = spec->direction;
    g->nodes[k].layout = spec->layout;
    g->nodes[k].mode = spec->relu ? RNN_ACT_RELU : RNN_ACT_TANH;
    g->nodes[k].linear_before_reset = spec->kind == 2;
    if (!spec->layout) {
        int y1 = add_typed(g, "Y1", FERRY_F32, 4, dy1),
            yh1 = add_typed(g, "Y_h1", FERRY_F32, 3, dh1);
        add_transpose(g, "y_to_batch_major", Y, y1, p2013);
        add_transpose(g, "yh_to_batch_major", Yh, yh1, p102);
        Y = y1, Yh = yh1;
        if (lstm) {
            int yc1 = add_typed(g, "Y_c1", FERRY_F32, 3, dh1);
            add_transpose(g, "yc_to_batch_major", Yc, yc1, p102);
            Yc = yc1;
        }
    }
    int yf = add_typed(g, "yf", FERRY_F32, 2, dyf), yhf = add_typed(g, "yhf", FERRY_F32, 2, dyh);
    graph_add_node(g, OP_RESHAPE, "flat_y", 1, &Y, 1, &yf);
    graph_add_node(g, OP_RESHAPE, "flat_yh", 1, &Yh, 1, &yhf);
    int cat[3] = {yf, yhf, -1};
    if (lstm) {
        cat[2] = add_typed(g, "ycf", FERRY_F32, 2, dyh);
        graph_add_node(g, OP_RESHAPE, "flat_yc", 1, &Yc, 1, &cat[2]);
    }
    int y = add_typed(g, "y", FERRY_F32, 2, dout);
    k = graph_add_node(g, OP_CONCAT, "cat", lstm ? 3 : 2, cat, 1, &y);
    g->nodes[k].axis = 1;
    set_io(g, 1, &z, 1, &y);

    /* The weights as each precision stores them on the device. */
    int64_t nw = D * GH * RI, nr = D * GH * RH, nb = D * 2 * GH;
    float *w = malloc(sizeof(float) * (size_t)(nw + nr + nb));
    float *zin = malloc(sizeof(float) * (size_t)(n * zw));
    double *ref = malloc(sizeof(double) * (size_t)(n * yw));
    assert_non_null(w);
    assert_non_null(zin);
    assert_non_null(ref);
    static const double tol[4] = {1e-5, 5e-3, 2e-2, 3e-2};
    for (int p = FERRY_PRECISION_FP32; p <= FERRY_PRECISION_BF16; p++) {
        rs_prec = (ferry_precision)p;
        for (int64_t i = 0; i < nw; i++)
            w[i] = round_to(rs_prec, cdata(g, in[1])[i]);
        for (int64_t i = 0; i < nr; i++)
            w[nw + i] = round_to(rs_prec, cdata(g, in[2])[i]);
        for (int64_t i = 0; spec->has_b && i < nb; i++)
            w[nw + nr + i] = cdata(g, in[3])[i]; /* biases stay fp32 (cuda_rnn.c) */
        rs_w = w, rs_r = w + nw, rs_b = w + nw + nr;
        for (int64_t i = 0; i < n * zw; i++)
            zin[i] = round_to(rs_prec, zv[i]);
        rnn_plain_ref(zin, n, ref);
        run_cfg rc = {rs_prec, FERRY_F32, 16, p == FERRY_PRECISION_FP16};
        float *yv = run_graph(g, &rc, n, zin);
        char what[128];
        snprintf(what, sizeof what, "%s %s %s%s", op_name(op), spec->name, prec_name(rs_prec),
                 rc.capture ? " captured" : "");
        check_close(what, yv, ref, n * yw, tol[p]);
        free(yv);
    }
    free(ref);
    free(zin);
    free(w);
    graph_free(g);
}

/* RNN, LSTM and GRU over the step kernel they share: every direction and
 * layout, lengths 0..T (sequence_lens), initial states in and every state
 * out (Y, Y_h, Y_c), an odd hidden size of 6 (the second direction's R is
 * unaligned in 16 bits). */
static void test_rnn_plain(void **state)
{
    (void)state;
    need_device();
    static const rnn_spec specs[] = {
        {"tanh forward, layout 1, B, lens, h0", 0, RNN_FORWARD, 1, 1, 1, 1, 0},
        {"relu reverse, layout 1, lens", 1, RNN_REVERSE, 1, 0, 1, 0, 0},
        {"tanh bidirectional, layout 0, B, lens, h0", 0, RNN_BIDIRECTIONAL, 0, 1, 1, 1, 0},
        {"relu bidirectional, layout 0, B", 1, RNN_BIDIRECTIONAL, 0, 1, 0, 0, 0},
        {"tanh forward, layout 0, h0", 0, RNN_FORWARD, 0, 0, 0, 1, 0},
        {"bidirectional, layout 0, B, lens, h0 c0", 0, RNN_BIDIRECTIONAL, 0, 1, 1, 1, 1},
        {"reverse, layout 1, B, h0 c0", 0, RNN_REVERSE, 1, 1, 0, 1, 1},
        {"bidirectional, layout 1, lens", 0, RNN_BIDIRECTIONAL, 1, 0, 1, 0, 1},
        {"bidirectional, layout 0, B, lens, h0", 0, RNN_BIDIRECTIONAL, 0, 1, 1, 1, 2},
        {"reverse, layout 1, B", 0, RNN_REVERSE, 1, 1, 0, 0, 2},
        {"forward, layout 1, B, lens, h0", 0, RNN_FORWARD, 1, 1, 1, 1, 2},
    };
    const int64_t n = 7, zmax = 1 + RT * RI + 4 * RH;
    float *zv = rand_vec(n * zmax, 1.0f);
    /* lengths 0..T, the full one twice (rows of every length, one empty) */
    static const int lens[7] = {3, 0, 5, 1, 4, 5, 2};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        rs_cur = specs[k];
        int64_t w = rs_zw();
        float *z = malloc(sizeof(float) * (size_t)(n * w));
        assert_non_null(z);
        for (int64_t b = 0; b < n; b++) {
            memcpy(z + b * w, zv + b * zmax, sizeof(float) * (size_t)w);
            z[b * w] = (float)lens[b];
        }
        rnn_plain_case(&specs[k], n, z);
        free(z);
    }
    free(zv);
}

/* ---- 3-D Conv (bias + fused ReLU; grouped, strided, dilated, unpadded
 * depth), ConvTranspose (stride 2, output_padding) through cuDNN's Nd
 * descriptors, MaxPool (asymmetric pads) and AveragePool (with and
 * without the pads counted) on NCDHW tensors */

typedef struct vol_spec {
    op_kind op;
    const char *name;
    int64_t ci, co, group, in[3], out[3], k[3], s[3], p[6], dil[3], opad[3];
    int bias, relu, count_pad;
} vol_spec;
static const vol_spec *vs_cur;
static const float *vs_w, *vs_b;

static void vol_ref(const float *x, int64_t n, double *ref)
{
    const vol_spec *v = vs_cur;
    int64_t isz = v->in[0] * v->in[1] * v->in[2], osz = v->out[0] * v->out[1] * v->out[2];
    int64_t nref = n * v->co * osz;
    for (int64_t i = 0; i < nref; i++)
        ref[i] = 0.0;
    if (v->op == OP_CONV) {
        int64_t cig = v->ci / v->group, cog = v->co / v->group;
        for (int64_t b = 0; b < n; b++)
            for (int64_t o = 0; o < v->co; o++)
                for (int64_t e = 0; e < osz; e++) {
                    int64_t od = e / (v->out[1] * v->out[2]), oh = (e / v->out[2]) % v->out[1],
                            ow = e % v->out[2];
                    double acc = v->bias ? vs_b[o] : 0.0;
                    for (int64_t ic = 0; ic < cig; ic++)
                        for (int64_t a = 0; a < v->k[0]; a++)
                            for (int64_t bb = 0; bb < v->k[1]; bb++)
                                for (int64_t cc = 0; cc < v->k[2]; cc++) {
                                    int64_t id = od * v->s[0] - v->p[0] + a * v->dil[0];
                                    int64_t ih = oh * v->s[1] - v->p[1] + bb * v->dil[1];
                                    int64_t iw = ow * v->s[2] - v->p[2] + cc * v->dil[2];
                                    if (id < 0 || id >= v->in[0] || ih < 0 || ih >= v->in[1] ||
                                        iw < 0 || iw >= v->in[2])
                                        continue;
                                    int64_t c = (o / cog) * cig + ic;
                                    acc += (double)x[(b * v->ci + c) * isz +
                                                     (id * v->in[1] + ih) * v->in[2] + iw] *
                                           vs_w[(((o * cig + ic) * v->k[0] + a) * v->k[1] + bb) *
                                                    v->k[2] +
                                                cc];
                                }
                    ref[(b * v->co + o) * osz + e] = v->relu && acc < 0 ? 0.0 : acc;
                }
    } else if (v->op == OP_CONV_TRANSPOSE) { /* group 1: W [ci, co, k..] */
        for (int64_t b = 0; b < n; b++)
            for (int64_t ic = 0; ic < v->ci; ic++)
                for (int64_t e = 0; e < isz; e++) {
                    int64_t id = e / (v->in[1] * v->in[2]), ih = (e / v->in[2]) % v->in[1],
                            iw = e % v->in[2];
                    double xv = x[(b * v->ci + ic) * isz + e];
                    for (int64_t o = 0; o < v->co; o++)
                        for (int64_t a = 0; a < v->k[0]; a++)
                            for (int64_t bb = 0; bb < v->k[1]; bb++)
                                for (int64_t cc = 0; cc < v->k[2]; cc++) {
                                    int64_t od = id * v->s[0] - v->p[0] + a * v->dil[0];
                                    int64_t oh = ih * v->s[1] - v->p[1] + bb * v->dil[1];
                                    int64_t ow = iw * v->s[2] - v->p[2] + cc * v->dil[2];
                                    if (od < 0 || od >= v->out[0] || oh < 0 || oh >= v->out[1] ||
                                        ow < 0 || ow >= v->out[2])
                                        continue;
                                    ref[(b * v->co + o) * osz + (od * v->out[1] + oh) * v->out[2] +
                                        ow] +=
                                        xv *
                                        vs_w[(((ic * v->co + o) * v->k[0] + a) * v->k[1] + bb) *
                                                 v->k[2] +
                                             cc];
                                }
                }
        for (int64_t i = 0; v->bias && i < nref; i++)
            ref[i] += vs_b[(i / osz) % v->co];
    } else { /* pools: ci == co */
        for (int64_t pl = 0; pl < n * v->ci; pl++)
            for (int64_t e = 0; e < osz; e++) {
                int64_t od = e / (v->out[1] * v->out[2]), oh = (e / v->out[2]) % v->out[1],
                        ow = e % v->out[2];
                double acc = v->op == OP_MAX_POOL ? -INFINITY : 0.0;
                int64_t taps = 0;
                for (int64_t a = 0; a < v->k[0]; a++)
                    for (int64_t bb = 0; bb < v->k[1]; bb++)
                        for (int64_t cc = 0; cc < v->k[2]; cc++) {
                            int64_t id = od * v->s[0] - v->p[0] + a;
                            int64_t ih = oh * v->s[1] - v->p[1] + bb;
                            int64_t iw = ow * v->s[2] - v->p[2] + cc;
                            int inside = id >= 0 && id < v->in[0] && ih >= 0 && ih < v->in[1] &&
                                         iw >= 0 && iw < v->in[2];
                            /* the padded input's extent (count_include_pad) */
                            int padded = id < v->in[0] + v->p[3] && ih < v->in[1] + v->p[4] &&
                                         iw < v->in[2] + v->p[5];
                            if (inside) {
                                double xv = x[pl * isz + (id * v->in[1] + ih) * v->in[2] + iw];
                                acc = v->op == OP_MAX_POOL ? fmax(acc, xv) : acc + xv;
                            }
                            taps += v->count_pad ? padded : inside;
                        }
                ref[pl * osz + e] = v->op == OP_MAX_POOL ? acc : acc / (double)taps;
            }
    }
}

static void test_conv_pool_3d(void **state)
{
    (void)state;
    need_device();
    /* op, name, ci, co, group, in, out, k, stride, pads (begin, end), dilations,
     * output_padding, bias, relu, count_include_pad */
    static const vol_spec specs[] = {
        {OP_CONV, "conv3d k3 pad 1 stride (1,2,1) bias relu", 3, 4, 1, {5, 6, 7}, {5, 3, 7},
         {3, 3, 3}, {1, 2, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, 1, 0},
        {OP_CONV, "conv3d group 2 k (2,3,1) stride (2,1,1) dil (1,2,1)", 4, 6, 2, {5, 6, 4},
         {2, 4, 4}, {2, 3, 1}, {2, 1, 1}, {0, 1, 0, 0, 1, 0}, {1, 2, 1}, {0, 0, 0}, 0, 0, 0},
        {OP_CONV_TRANSPOSE, "convtranspose3d stride 2 pad 1 output_padding (1,0,1) bias", 4, 3, 1,
         {3, 4, 5}, {5, 7, 10}, {2, 3, 3}, {2, 2, 2}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, {1, 0, 1}, 1,
         0, 0},
        {OP_MAX_POOL, "maxpool3d k (2,3,3) stride (2,2,1) pads (0,1,1)-(1,1,0)", 3, 3, 1,
         {5, 6, 7}, {3, 3, 6}, {2, 3, 3}, {2, 2, 1}, {0, 1, 1, 1, 1, 0}, {1, 1, 1}, {0, 0, 0}, 0,
         0, 0},
        {OP_AVG_POOL, "avgpool3d k3 stride 2 pad 1", 3, 3, 1, {5, 6, 7}, {3, 3, 4}, {3, 3, 3},
         {2, 2, 2}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0, 0, 0},
        {OP_AVG_POOL, "avgpool3d k3 stride 2 pad 1 count_include_pad", 3, 3, 1, {5, 6, 7},
         {3, 3, 4}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0, 0, 1},
    };
    const int64_t n = 3;
    for (size_t q = 0; q < sizeof specs / sizeof specs[0]; q++) {
        const vol_spec *v = &specs[q];
        vs_cur = v;
        /* the ConvTranspose output size follows from the attributes */
        if (v->op == OP_CONV_TRANSPOSE)
            for (int i = 0; i < 3; i++)
                assert_int_equal(v->out[i], v->s[i] * (v->in[i] - 1) + v->opad[i] +
                                                (v->k[i] - 1) * v->dil[i] + 1 - v->p[i] -
                                                v->p[i + 3]);
        graph *g = graph_new();
        int64_t dx[5] = {FERRY_DIM_BATCH, v->ci, v->in[0], v->in[1], v->in[2]};
        int64_t dy[5] = {FERRY_DIM_BATCH, v->co, v->out[0], v->out[1], v->out[2]};
        int x = add_typed(g, "x", FERRY_F32, 5, dx), y = add_typed(g, "y", FERRY_F32, 5, dy);
        int in[3] = {x, -1, -1}, nin = 1;
        if (v->op == OP_CONV || v->op == OP_CONV_TRANSPOSE) {
            int64_t w0 = v->op == OP_CONV ? v->co : v->ci;
            int64_t w1 = v->op == OP_CONV ? v->ci / v->group : v->co / v->group;
            in[1] = add_const(g, "W", 0.3f, 0, 5, w0, w1, v->k[0], v->k[1], v->k[2]);
            vs_w = cdata(g, in[1]);
            nin = 2;
            if (v->bias) {
                in[2] = add_const(g, "b", 0.5f, 0, 1, v->co);
                vs_b = cdata(g, in[2]);
                nin = 3;
            }
        }
        int k = graph_add_node(g, v->op, "vol", nin, in, 1, &y);
        conv_attrs *ca = &g->nodes[k].conv;
        ca->nsp = 3;
        ca->group = v->group;
        ca->count_include_pad = v->count_pad;
        for (int i = 0; i < 3; i++) {
            ca->kernel[i] = v->k[i], ca->strides[i] = v->s[i], ca->dilations[i] = v->dil[i];
            ca->pads[i] = v->p[i], ca->pads[i + 3] = v->p[i + 3], ca->out_pad[i] = v->opad[i];
        }
        if (v->relu)
            g->nodes[k].act = ACT_RELU;
        set_io(g, 1, &x, 1, &y);
        int64_t nx = n * v->ci * v->in[0] * v->in[1] * v->in[2];
        int64_t ny = n * v->co * v->out[0] * v->out[1] * v->out[2];
        float *xv = rand_vec(nx, 1.0f);
        /* weights as the 16-bit precisions store them: the reference of
         * each precision reads its own (vs_w points at the graph's) */
        int is_conv = v->op == OP_CONV || v->op == OP_CONV_TRANSPOSE;
        static const double tol_conv[3] = {1e-5, 1e-2, 2e-2}, tol_pool[3] = {1e-6, 1e-3, 4e-3};
        if (is_conv) {
            int64_t nw = graph_value_numel(&g->values[in[1]], 1);
            float *w32 = malloc(sizeof(float) * (size_t)nw);
            assert_non_null(w32);
            memcpy(w32, vs_w, sizeof(float) * (size_t)nw);
            static const ferry_precision ps[3] = {FERRY_PRECISION_FP32, FERRY_PRECISION_FP16,
                                                  FERRY_PRECISION_BF16};
            float *xin = malloc(sizeof(float) * (size_t)nx),
                  *wr = malloc(sizeof(float) * (size_t)nw);
            double *r = malloc(sizeof(double) * (size_t)ny);
            assert_non_null(xin);
            assert_non_null(wr);
            assert_non_null(r);
            for (int pi = 0; pi < 3; pi++) {
                for (int64_t i = 0; i < nx; i++)
                    xin[i] = round_to(ps[pi], xv[i]);
                for (int64_t i = 0; i < nw; i++)
                    wr[i] = round_to(ps[pi], w32[i]);
                vs_w = wr;
                vol_ref(xin, n, r);
                run_cfg rc = {ps[pi], FERRY_F32, 16, pi == 1};
                float *yv = run_graph(g, &rc, n, xin);
                char what[160];
                snprintf(what, sizeof what, "%s %s%s", v->name, prec_name(ps[pi]),
                         rc.capture ? " captured" : "");
                check_close(what, yv, r, ny, tol_conv[pi]);
                free(yv);
            }
            free(r);
            free(wr);
            free(xin);
            free(w32);
        } else {
            prec_case(g, v->name, n, xv, nx, vol_ref, ny, tol_pool);
        }
        free(xv);
        graph_free(g);
    }
}

/* ---- what the new rows still refuse, named at creation (no device
 * needed): Elu of int64, an RNN with clip, an LSTM with sequence_lens, a
 * 3-D Conv with asymmetric pads */

static void refused_case(graph *g, const char *fragment)
{
    backend_opts o = {
        .device = 0, .precision = FERRY_PRECISION_FP16, .io_dtype = FERRY_F32, .max_batch = 8};
    backend_ctx *c = NULL;
    assert_int_equal(ferry_backend_cuda.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_null(c);
    print_message("%s\n", ferry_last_error());
    assert_non_null(strstr(ferry_last_error(), fragment));
}

static void test_new_ops_refused(void **state)
{
    (void)state;
    int64_t d[2] = {FERRY_DIM_BATCH, 4};
    graph *g = graph_new();
    int x = add_typed(g, "x", FERRY_I64, 2, d), y = add_typed(g, "y", FERRY_I64, 2, d);
    graph_add_node(g, OP_ELU, "elu", 1, &x, 1, &y);
    set_io(g, 1, &x, 1, &y);
    refused_case(g, "node 'elu' (Elu): i64 input is not supported on CUDA");
    graph_free(g);

    for (int lstm = 0; lstm < 2; lstm++) {
        g = graph_new();
        int64_t dx[3] = {3, FERRY_DIM_BATCH, 2}, dy[4] = {3, 1, FERRY_DIM_BATCH, 4};
        int64_t dh[3] = {1, FERRY_DIM_BATCH, 4}, dn[1] = {FERRY_DIM_BATCH};
        int G = lstm ? 4 : 1;
        int in[5] = {add_typed(g, "X", FERRY_F32, 3, dx),
                     add_const(g, "W", 0.5f, 0, 3, (int64_t)1, (int64_t)(G * 4), (int64_t)2),
                     add_const(g, "R", 0.5f, 0, 3, (int64_t)1, (int64_t)(G * 4), (int64_t)4), -1,
                     add_typed(g, "lens", lstm ? FERRY_I64 : FERRY_I32, 1, dn)};
        int outs[2] = {add_typed(g, "Y", FERRY_F32, 4, dy), add_typed(g, "Y_h", FERRY_F32, 3, dh)};
        int k = graph_add_node(g, lstm ? OP_LSTM : OP_RNN, "rec", lstm ? 5 : 3, in, 2, outs);
        g->nodes[k].hidden = 4;
        g->nodes[k].clip = lstm ? 0.0f : 3.0f;
        int gin[2] = {in[0], in[4]};
        set_io(g, lstm ? 2 : 1, gin, 1, outs);
        refused_case(g, lstm ? "node 'rec' (LSTM): sequence_lens must be int32"
                             : "node 'rec' (RNN): attribute clip is not supported");
        graph_free(g);
    }

    g = graph_new();
    int64_t dx[5] = {FERRY_DIM_BATCH, 2, 4, 4, 4}, dy[5] = {FERRY_DIM_BATCH, 3, 4, 4, 4};
    int in[2] = {
        add_typed(g, "x", FERRY_F32, 5, dx),
        add_const(g, "W", 0.5f, 0, 5, (int64_t)3, (int64_t)2, (int64_t)3, (int64_t)3, (int64_t)3)};
    y = add_typed(g, "y", FERRY_F32, 5, dy);
    int k = graph_add_node(g, OP_CONV, "conv3d", 2, in, 1, &y);
    conv_attrs *ca = &g->nodes[k].conv;
    ca->nsp = 3, ca->group = 1;
    for (int i = 0; i < 3; i++) {
        ca->kernel[i] = 3, ca->strides[i] = 1, ca->dilations[i] = 1;
        ca->pads[i] = i == 0 ? 0 : 1, ca->pads[i + 3] = i == 0 ? 2 : 1;
    }
    set_io(g, 1, in, 1, &y);
    refused_case(g, "node 'conv3d' (Conv): asymmetric pads (0, 2) in dim 0 on CUDA");
    graph_free(g);
}

/* ---- operators without a CUDA kernel are all named at creation, with
 * counts, before the device is touched (so also on a machine without one) */

static void test_unsupported(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t d[2] = {FERRY_DIM_BATCH, 4};
    int x = graph_add_value(g, "x", FERRY_F32, 2, d);
    int t1 = graph_add_value(g, "t1", FERRY_F32, 2, d);
    int t2 = graph_add_value(g, "t2", FERRY_F32, 2, d);
    int y = graph_add_value(g, "y", FERRY_F32, 2, d);
    /* Shape is the one operator without a CUDA row (or a CPU one): the
     * loader evaluates it as shape math */
    graph_add_node(g, OP_SHAPE, "shape1", 1, &x, 1, &t1);
    graph_add_node(g, OP_SHAPE, "shape2", 1, &t1, 1, &t2);
    graph_add_node(g, OP_RELU, "relu", 1, &t2, 1, &y);
    set_io(g, 1, &x, 1, &y);
    backend_opts o = {
        .device = 0, .precision = FERRY_PRECISION_FP32, .io_dtype = FERRY_F32, .max_batch = 8};
    backend_ctx *c = NULL;
    assert_int_equal(ferry_backend_cuda.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_null(c);
    print_message("%s\n", ferry_last_error());
    assert_non_null(strstr(ferry_last_error(), "1 operator is not supported by the cuda backend"));
    assert_non_null(strstr(ferry_last_error(), "Shape (2 nodes, first 'shape1')"));
    graph_free(g);

    need_device();
    g = graph_new();
    int a = graph_add_value(g, "a", FERRY_F32, 2, d);
    int b = graph_add_value(g, "b", FERRY_F32, 2, d);
    graph_add_node(g, OP_RELU, "relu", 1, &a, 1, &b);
    set_io(g, 1, &a, 1, &b);
    o.device = 99;
    assert_int_equal(ferry_backend_cuda.ctx_create(g, &o, &c), FERRY_ENOTFOUND);
    graph_free(g);
}

static void test_probe(void **state)
{
    (void)state;
    int n = -1;
    char desc[1024];
    ferry_status st = ferry_backend_cuda.probe(&n, desc, sizeof desc);
    if (st != FERRY_OK) {
        /* No device (CI): a clean FERRY_EDEVICE with the CUDA reason. */
        assert_int_equal(st, FERRY_EDEVICE);
        assert_int_equal(n, 0);
        assert_true(strlen(ferry_last_error()) > 0);
        print_message("probe: %s\n", ferry_last_error());
        return;
    }
    assert_true(n >= 1);
    assert_non_null(strstr(desc, "cuda:0 "));
    assert_non_null(strstr(desc, "sm_"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_gemm_bias_relu),
        cmocka_unit_test(test_gemm_gelu),
        cmocka_unit_test(test_io_dtypes),
        cmocka_unit_test(test_capture_replay),
        cmocka_unit_test(test_mlp_two_layers),
        cmocka_unit_test(test_concurrent_streams),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_reduce_mean),
        cmocka_unit_test(test_matmul_batched),
        cmocka_unit_test(test_unary_and_views),
        cmocka_unit_test(test_transpose_slice),
        cmocka_unit_test(test_gather_split_concat),
        cmocka_unit_test(test_where_compare_int),
        cmocka_unit_test(test_tile_scatter),
        cmocka_unit_test(test_reduce_sum_max),
        cmocka_unit_test(test_patch_conv),
        cmocka_unit_test(test_conv_epilogues),
        cmocka_unit_test(test_conv_pointwise),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_argmax_int),
        cmocka_unit_test(test_prelu_min_max),
        cmocka_unit_test(test_cumsum),
        cmocka_unit_test(test_eye_like),
        cmocka_unit_test(test_depth_to_space),
        cmocka_unit_test(test_gather_elements),
        cmocka_unit_test(test_gather_nd),
        cmocka_unit_test(test_scatter_elements),
        cmocka_unit_test(test_grid_sample),
        cmocka_unit_test(test_einsum),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_reduce_l1_logsum),
        cmocka_unit_test(test_reduce_int),
        cmocka_unit_test(test_prelu_nhwc),
        cmocka_unit_test(test_activations_param),
        cmocka_unit_test(test_isnan_isinf),
        cmocka_unit_test(test_one_hot),
        cmocka_unit_test(test_rnn_plain),
        cmocka_unit_test(test_conv_pool_3d),
        cmocka_unit_test(test_new_ops_refused),
        cmocka_unit_test(test_unsupported),
    };
    /* FERRY_TEST_FILTER=test_attention: one test, e.g. under compute-sanitizer */
    const char *only = getenv("FERRY_TEST_FILTER");
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* no CUDA toolkit in this build: the backend is absent */

static void test_cuda_absent(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cuda_absent)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
