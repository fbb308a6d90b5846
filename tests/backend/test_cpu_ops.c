/*
 * test_cpu_ops.c - every op of the CPU backend on hand-built graphs, checked
 * against naive double-precision references computed here.
 */
#include <math.h>
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
#include "util/half.h"

#define B FERRY_DIM_BATCH
#define MAXV 8

/* ------------------------------------------------------------- helpers */

static uint32_t rng = 12345u;

static float frand(float lo, float hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

static void push(int **list, int *n, int v)
{
    *list = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    assert_non_null(*list);
    (*list)[(*n)++] = v;
}

static int val(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = graph_add_value(g, name, FERRY_F32, nd, d);
    assert_true(v >= 0);
    return v;
}

static int inp(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = val(g, name, nd, d);
    g->values[v].is_input = 1;
    push(&g->inputs, &g->n_inputs, v);
    return v;
}

static int outp(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = val(g, name, nd, d);
    g->values[v].is_output = 1;
    push(&g->outputs, &g->n_outputs, v);
    return v;
}

/* A constant filled with random values in [lo, hi]. */
static int cst(graph *g, const char *name, int nd, const int64_t *d, float lo, float hi)
{
    int v = val(g, name, nd, d);
    int64_t n = graph_value_numel(&g->values[v], 1);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = frand(lo, hi);
    g->values[v].is_const = 1;
    g->values[v].data = p;
    return v;
}

static graph_node *node(graph *g, op_kind op, int n_in, const int *in, int n_out, const int *out)
{
    int k = graph_add_node(g, op, NULL, n_in, in, n_out, out);
    assert_true(k >= 0);
    return &g->nodes[k];
}

/* A graph's tensors for one run at batch n: inputs filled with random
 * values in [lo, hi], outputs zeroed. */
typedef struct run_io {
    void *in[MAXV], *out[MAXV];
    int64_t n;
} run_io;

static void io_alloc(const graph *g, run_io *io, int64_t n, float lo, float hi)
{
    memset(io, 0, sizeof *io);
    io->n = n;
    for (int i = 0; i < g->n_inputs; i++) {
        const graph_value *v = &g->values[g->inputs[i]];
        int64_t cnt = graph_value_numel(v, n);
        size_t es = v->dtype == FERRY_F32 ? 4 : ferry_dtype_size(v->dtype);
        io->in[i] = calloc((size_t)cnt + 1, es);
        if (v->dtype == FERRY_F32)
            for (int64_t j = 0; j < cnt; j++)
                ((float *)io->in[i])[j] = frand(lo, hi);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const graph_value *v = &g->values[g->outputs[i]];
        size_t es = ferry_dtype_size(v->dtype) > 4 && v->dtype != FERRY_F64
                        ? ferry_dtype_size(v->dtype)
                        : 4;
        io->out[i] = calloc((size_t)graph_value_numel(v, n) + 1, es);
    }
}

static void io_free(run_io *io)
{
    for (int i = 0; i < MAXV; i++) {
        free(io->in[i]);
        free(io->out[i]);
    }
}

/* Creates a ctx for g at max_batch, runs one forward on io, destroys. */
static ferry_status run(const graph *g, int64_t max_batch, run_io *io)
{
    const ferry_backend_ops *be = &ferry_backend_cpu;
    backend_opts o = {.device = 0,
                      .precision = FERRY_PRECISION_FP32,
                      .io_dtype = FERRY_F32,
                      .max_batch = max_batch};
    backend_ctx *c = NULL;
    backend_stream *s = NULL;
    void *arena = NULL;
    ferry_status st = be->ctx_create(g, &o, &c);
    if (st != FERRY_OK)
        return st;
    assert_int_equal(be->stream_create(c, &s), FERRY_OK);
    assert_int_equal(be->alloc(c, be->arena_bytes(c), &arena), FERRY_OK);
    assert_int_equal((uintptr_t)arena % 64, 0);
    st = be->forward(s, io->n, (const void *const *)io->in, io->out, arena);
    assert_int_equal(be->stream_sync(s), FERRY_OK);
    be->free(c, arena);
    be->stream_destroy(s);
    be->ctx_destroy(c);
    return st;
}

static void expect_close(const float *got, const double *want, int64_t n, double tol,
                         const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= tol * fabs(want[i]) + tol)) {
            fail_msg("%s: element %lld: got %.9g, want %.9g", what, (long long)i, (double)got[i],
                     want[i]);
        }
    }
}

/* Index into x (dims xd[xn], right-aligned, broadcast) of output element
 * `flat` of an output with dims yd[yn]. */
static int64_t bidx(const int64_t *yd, int yn, int64_t flat, const int64_t *xd, int xn)
{
    int64_t idx = 0, stride = 1;
    for (int d = yn - 1; d >= 0; d--) {
        int64_t i = flat % yd[d];
        flat /= yd[d];
        int xdim = d - (yn - xn);
        if (xdim >= 0) {
            if (xd[xdim] != 1)
                idx += i * stride;
            stride *= xd[xdim];
        }
    }
    return idx;
}

static const float *cdata(const graph *g, int v)
{
    return g->values[v].data;
}

/* ---------------------------------------------------------- elementwise */

static double ref_bin(op_kind op, double x, double z)
{
    switch (op) {
    case OP_ADD: return x + z;
    case OP_SUB: return x - z;
    case OP_MUL: return x * z;
    case OP_DIV: return x / z;
    case OP_POW: return pow(x, z);
    default: return NAN;
    }
}

typedef struct bcase {
    int an;
    int64_t ad[4];
    int bn;
    int64_t bd[4];
    int yn;
    int64_t yd[4];
    int b_const;
} bcase;

static void test_binary(void **state)
{
    (void)state;
    const bcase cases[] = {
        {2, {B, 4}, 1, {4}, 2, {B, 4}, 1},             /* row vector over the last dim */
        {2, {B, 1}, 2, {1, 4}, 2, {B, 4}, 0},          /* outer-product broadcast */
        {2, {B, 4}, 0, {0}, 2, {B, 4}, 1},             /* scalar */
        {1, {1}, 2, {B, 4}, 2, {B, 4}, 0},             /* scalar on the left */
        {2, {B, 4}, 2, {B, 4}, 2, {B, 4}, 0},          /* same shape */
        {3, {B, 3, 4}, 2, {3, 1}, 3, {B, 3, 4}, 1},    /* middle broadcast */
        {3, {B, 1, 4}, 3, {1, 3, 1}, 3, {B, 3, 4}, 0}, /* both sides */
        {2, {B, 4}, 2, {B, 1}, 2, {B, 4}, 0},          /* one value per row */
    };
    const op_kind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
            const bcase *bc = &cases[ci];
            graph *g = graph_new();
            /* Pow: positive bases, moderate exponents. */
            float lo = ops[oi] == OP_POW ? 0.5f : -2.0f, hi = 2.0f;
            int a = inp(g, "a", bc->an, bc->ad);
            int b =
                bc->b_const ? cst(g, "b", bc->bn, bc->bd, 0.5f, 2.0f) : inp(g, "b", bc->bn, bc->bd);
            int y = outp(g, "y", bc->yn, bc->yd);
            int ins[2] = {a, b};
            node(g, ops[oi], 2, ins, 1, &y);
            run_io io;
            io_alloc(g, &io, 3, lo, hi);
            if (!bc->b_const) /* keep divisors away from 0 */
                for (int64_t j = 0; j < graph_value_numel(&g->values[b], 3); j++)
                    ((float *)io.in[1])[j] =
                        frand(0.5f, 2.0f) * (ops[oi] == OP_POW || j % 2 ? 1 : -1);
            assert_int_equal(run(g, 8, &io), FERRY_OK);
            int64_t ad[4], bd[4], yd[4];
            int an = graph_value_shape(&g->values[a], 3, ad);
            int bn = graph_value_shape(&g->values[b], 3, bd);
            int yn = graph_value_shape(&g->values[y], 3, yd);
            int64_t ny = graph_value_numel(&g->values[y], 3);
            const float *A = io.in[0], *Bp = bc->b_const ? cdata(g, b) : io.in[1];
            double *want = malloc((size_t)ny * sizeof *want);
            for (int64_t i = 0; i < ny; i++)
                want[i] = ref_bin(ops[oi], A[bidx(yd, yn, i, ad, an)], Bp[bidx(yd, yn, i, bd, bn)]);
            char what[64];
            snprintf(what, sizeof what, "%s case %zu", op_name(ops[oi]), ci);
            expect_close(io.out[0], want, ny, 1e-5, what);
            free(want);
            io_free(&io);
            graph_free(g);
        }
    }
}

static double ref_unary(op_kind op, double x, float alpha, int approximate)
{
    switch (op) {
    case OP_RELU: return x > 0 ? x : 0;
    case OP_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case OP_TANH: return tanh(x);
    case OP_GELU:
        if (approximate)
            return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case OP_ERF: return erf(x);
    case OP_SQRT: return sqrt(x);
    default: return NAN;
    }
}

static void test_unary(void **state)
{
    (void)state;
    const struct {
        op_kind op;
        int approximate;
    } cases[] = {{OP_RELU, 0}, {OP_LEAKY_RELU, 0}, {OP_SIGMOID, 0}, {OP_TANH, 0},
                 {OP_GELU, 0}, {OP_GELU, 1},       {OP_ERF, 0},     {OP_SQRT, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        graph *g = graph_new();
        int64_t d[2] = {B, 37};
        int x = inp(g, "x", 2, d), y = outp(g, "y", 2, d);
        graph_node *nd = node(g, cases[ci].op, 1, &x, 1, &y);
        nd->alpha = 0.07f;
        nd->approximate = cases[ci].approximate;
        run_io io;
        io_alloc(g, &io, 5, cases[ci].op == OP_SQRT ? 0.0f : -6.0f, 6.0f);
        assert_int_equal(run(g, 5, &io), FERRY_OK);
        int64_t n = 5 * 37;
        double *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++)
            want[i] = ref_unary(cases[ci].op, ((float *)io.in[0])[i], 0.07f, cases[ci].approximate);
        expect_close(io.out[0], want, n, 1e-5, op_name(cases[ci].op));
        free(want);
        io_free(&io);
        graph_free(g);
    }
}

/* NaN in stays NaN out through Relu, as in PyTorch (max(0, NaN) would
 * silently turn a poisoned input into zeros). */
static void test_relu_nan(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t d[2] = {B, 4};
    int x = inp(g, "x", 2, d), y = outp(g, "y", 2, d);
    node(g, OP_RELU, 1, &x, 1, &y);
    run_io io;
    io_alloc(g, &io, 1, -1.0f, 1.0f);
    float *in = io.in[0];
    in[0] = NAN;
    in[1] = -2.0f;
    in[2] = 3.0f;
    in[3] = -0.0f;
    assert_int_equal(run(g, 1, &io), FERRY_OK);
    const float *out = io.out[0];
    assert_true(isnan(out[0]));
    assert_true(out[1] == 0.0f);
    assert_true(out[2] == 3.0f);
    assert_true(out[3] == 0.0f);
    io_free(&io);
    graph_free(g);
}

/* ----------------------------------------------------------------- gemm */

static double ref_act(act_kind a, double v, float aa)
{
    switch (a) {
    case ACT_NONE: return v;
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_GELU: return ref_unary(OP_GELU, v, 0, 0);
    case ACT_GELU_TANH: return ref_unary(OP_GELU, v, 0, 1);
    case ACT_LEAKY_RELU: return v >= 0 ? v : aa * v;
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case ACT_TANH: return tanh(v);
    default: break; /* Conv-only epilogues */
    }
    return NAN;
}

/* One Gemm: A is an input [M,K] (or [K,M] with transA), M = batch n when
 * batch_a, else fixed 5; B constant; C of shape cdims (cn dims, 0: none). */
static void gemm_case(int ta, int tb, act_kind act, int cn, const int64_t *cdims, int batch_a,
                      int64_t n)
{
    const int64_t K = 7, N = 6, Mf = 5;
    int64_t M = batch_a ? n : Mf;
    graph *g = graph_new();
    int64_t mdim = batch_a ? B : Mf;
    int64_t ad[2] = {ta ? K : mdim, ta ? mdim : K};
    int64_t bd[2] = {tb ? N : K, tb ? K : N};
    int64_t yd[2] = {mdim, N};
    int a = inp(g, "A", 2, ad);
    int b = cst(g, "B", 2, bd, -1, 1);
    int ins[3] = {a, b, -1};
    int nin = 2;
    if (cn >= 0) {
        ins[2] = cst(g, "C", cn, cdims, -1, 1);
        nin = 3;
    }
    int y = outp(g, "Y", 2, yd);
    graph_node *nd = node(g, OP_GEMM, nin, ins, 1, &y);
    nd->trans_a = ta;
    nd->trans_b = tb;
    nd->alpha = 0.75f;
    nd->beta = 1.5f;
    nd->act = act;
    nd->act_alpha = 0.1f;
    run_io io;
    io_alloc(g, &io, n, -1, 1);
    assert_int_equal(run(g, 8, &io), FERRY_OK);
    const float *A = io.in[0], *Bm = cdata(g, b), *C = nin == 3 ? cdata(g, ins[2]) : NULL;
    double *want = malloc((size_t)(M * N) * sizeof *want);
    int64_t cd[2] = {1, 1};
    int cnd = graph_value_shape(nin == 3 ? &g->values[ins[2]] : &g->values[y], n, cd);
    int64_t yshape[2] = {M, N};
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * M + i] : A[i * K + k]) *
                     (tb ? Bm[j * K + k] : Bm[k * N + j]);
            s *= 0.75;
            if (C)
                s += 1.5 * C[bidx(yshape, 2, i * N + j, cd, cnd)];
            want[i * N + j] = ref_act(act, s, 0.1f);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d act=%s C rank %d M=%lld", ta, tb, act_name(act),
             cn, (long long)M);
    expect_close(io.out[0], want, M * N, 1e-5, what);
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_gemm(void **state)
{
    (void)state;
    const int64_t row[1] = {6}, row2[2] = {1, 6}, full[2] = {5, 6}, col[2] = {5, 1}, one[1] = {1};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int act = ACT_NONE; act <= ACT_TANH; act++) {
                gemm_case(ta, tb, (act_kind)act, 1, row, 1, 3);
                gemm_case(ta, tb, (act_kind)act, -1, NULL, 1, 1); /* M = 1: the GEMV path */
            }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(ta, tb, ACT_RELU, 2, row2, 0, 1);
            gemm_case(ta, tb, ACT_NONE, 2, full, 0, 1);
            gemm_case(ta, tb, ACT_SIGMOID, 2, col, 0, 1);
            gemm_case(ta, tb, ACT_GELU, 1, one, 1, 4);
            gemm_case(ta, tb, ACT_NONE, 0, NULL, 1, 2); /* a rank-0 scalar C */
            gemm_case(ta, tb, ACT_RELU, 1, row, 1, 1);  /* GEMV with bias */
        }
}

/* MatMul-derived Gemm: A [N, 3, K] x B [K, N] -> [N, 3, N]. */
static void test_gemm_rank3(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t ad[3] = {B, 3, 8}, bd[2] = {8, 5}, cd[1] = {5}, yd[3] = {B, 3, 5};
    int ins[3] = {inp(g, "A", 3, ad), cst(g, "W", 2, bd, -1, 1), cst(g, "b", 1, cd, -1, 1)};
    int y = outp(g, "Y", 3, yd);
    graph_node *nd = node(g, OP_GEMM, 3, ins, 1, &y);
    nd->act = ACT_GELU_TANH;
    run_io io;
    io_alloc(g, &io, 2, -1, 1);
    assert_int_equal(run(g, 4, &io), FERRY_OK);
    const float *A = io.in[0], *W = cdata(g, ins[1]), *bias = cdata(g, ins[2]);
    double want[30];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++) {
            double s = bias[j];
            for (int k = 0; k < 8; k++)
                s += (double)A[i * 8 + k] * W[k * 5 + j];
            want[i * 5 + j] = ref_act(ACT_GELU_TANH, s, 0);
        }
    expect_close(io.out[0], want, 30, 1e-5, "rank-3 gemm");
    io_free(&io);
    graph_free(g);
}

/* --------------------------------------------------------------- matmul */

static void matmul_case(int an, const int64_t *ad, int bn, const int64_t *bd, int yn,
                        const int64_t *yd, int64_t n)
{
    graph *g = graph_new();
    int ins[2] = {inp(g, "A", an, ad), inp(g, "B", bn, bd)};
    int y = outp(g, "Y", yn, yd);
    node(g, OP_MATMUL, 2, ins, 1, &y);
    run_io io;
    io_alloc(g, &io, n, -1, 1);
    assert_int_equal(run(g, 4, &io), FERRY_OK);
    int64_t a[8], b[8], o[8];
    graph_value_shape(&g->values[ins[0]], n, a);
    graph_value_shape(&g->values[ins[1]], n, b);
    graph_value_shape(&g->values[y], n, o);
    /* numpy promotion of rank-1 operands */
    int64_t pa[8], pb[8];
    int pan = an, pbn = bn;
    memcpy(pa, a, sizeof a);
    memcpy(pb, b, sizeof b);
    if (an == 1) {
        pa[0] = 1;
        pa[1] = a[0];
        pan = 2;
    }
    if (bn == 1) {
        pb[1] = 1;
        pb[0] = b[0];
        pbn = 2;
    }
    int64_t M = pa[pan - 2], K = pa[pan - 1], N = pb[pbn - 1];
    int nb = (pan > pbn ? pan : pbn) - 2;
    int64_t bat[8], nbat = 1;
    for (int d = 0; d < nb; d++) {
        int ai = d - (nb - (pan - 2)), bi = d - (nb - (pbn - 2));
        int64_t av = ai >= 0 ? pa[ai] : 1, bv = bi >= 0 ? pb[bi] : 1;
        bat[d] = av > bv ? av : bv;
        nbat *= bat[d];
    }
    int64_t ny = graph_value_numel(&g->values[y], n);
    assert_int_equal(ny, nbat * M * N);
    double *want = malloc((size_t)ny * sizeof *want);
    const float *A = io.in[0], *Bm = io.in[1];
    for (int64_t t = 0; t < nbat; t++) {
        int64_t ia = bidx(bat, nb, t, pa, pan - 2), ib = bidx(bat, nb, t, pb, pbn - 2);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)A[ia * M * K + i * K + k] * Bm[ib * K * N + k * N + j];
                want[t * M * N + i * N + j] = s;
            }
    }
    expect_close(io.out[0], want, ny, 1e-5, "matmul");
    free(want);
    io_free(&io);
    graph_free(g);
    (void)o;
}

static void test_matmul(void **state)
{
    (void)state;
    {
        int64_t a[4] = {2, 3, 4, 5}, b[3] = {3, 5, 6}, y[4] = {2, 3, 4, 6};
        matmul_case(4, a, 3, b, 4, y, 1);
    }
    {
        int64_t a[3] = {B, 3, 4}, b[2] = {4, 2}, y[3] = {B, 3, 2};
        matmul_case(3, a, 2, b, 3, y, 3);
    }
    {
        int64_t a[3] = {B, 3, 4}, b[3] = {B, 4, 2}, y[3] = {B, 3, 2};
        matmul_case(3, a, 3, b, 3, y, 3);
    }
    {
        int64_t a[3] = {1, 3, 4}, b[3] = {B, 4, 5}, y[3] = {B, 3, 5};
        matmul_case(3, a, 3, b, 3, y, 2);
    }
    {
        int64_t a[1] = {4}, b[2] = {4, 3}, y[1] = {3};
        matmul_case(1, a, 2, b, 1, y, 1);
    }
    {
        int64_t a[3] = {B, 3, 4}, b[1] = {4}, y[2] = {B, 3};
        matmul_case(3, a, 1, b, 2, y, 2);
    }
}

/* -------------------------------------------------------------- softmax */

/* Softmax over axis of [n, d1, d2]; with masked, every 7th element is
 * -1e9 (an attention mask's "never"), which must come out as 0 (log: its
 * huge negative). Wide shapes take the eight-lane rows, their tails and
 * the threaded split. */
static void softmax_case(op_kind op, int axis, int64_t n, int64_t d1, int64_t d2, int masked)
{
    graph *g = graph_new();
    int64_t d[3] = {B, d1, d2};
    int x = inp(g, "x", 3, d), y = outp(g, "y", 3, d);
    graph_node *nd = node(g, op, 1, &x, 1, &y);
    nd->axis = axis;
    run_io io;
    io_alloc(g, &io, n, -30, 30); /* wide range: the max shift matters */
    float *X = io.in[0];
    int64_t total = n * d1 * d2;
    if (masked)
        for (int64_t i = 0; i < total; i += 7)
            X[i] = -1e9f;
    assert_int_equal(run(g, n, &io), FERRY_OK);
    int64_t dims[3] = {n, d1, d2};
    int ax = axis < 0 ? axis + 3 : axis;
    int64_t outer = 1, L = dims[ax], inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= dims[i];
    for (int i = ax + 1; i < 3; i++)
        inner *= dims[i];
    double *want = malloc((size_t)total * sizeof *want);
    assert_non_null(want);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            double mx = -INFINITY, s = 0;
            for (int64_t j = 0; j < L; j++)
                mx = fmax(mx, X[(o * L + j) * inner + k]);
            for (int64_t j = 0; j < L; j++)
                s += exp(X[(o * L + j) * inner + k] - mx);
            for (int64_t j = 0; j < L; j++) {
                double v = X[(o * L + j) * inner + k] - mx;
                want[(o * L + j) * inner + k] = op == OP_LOG_SOFTMAX ? v - log(s) : exp(v) / s;
            }
        }
    char what[96];
    snprintf(what, sizeof what, "%s axis %d of [%lld,%lld,%lld]%s", op_name(op), axis,
             (long long)n, (long long)d1, (long long)d2, masked ? " masked" : "");
    expect_close(io.out[0], want, total, 1e-5, what);
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_softmax(void **state)
{
    (void)state;
    for (int op = 0; op < 2; op++) {
        op_kind k = op ? OP_LOG_SOFTMAX : OP_SOFTMAX;
        softmax_case(k, 0, 4, 5, 6, 0);
        softmax_case(k, 1, 4, 5, 6, 0);
        softmax_case(k, -1, 4, 5, 6, 0);
        softmax_case(k, -1, 4, 300, 37, 0);  /* 8-lane rows + tail, threaded */
        softmax_case(k, -1, 2, 64, 128, 1); /* attention-shaped, masked */
        softmax_case(k, 1, 3, 40, 200, 0);  /* strided axis, threaded */
    }
}

/* The fused attention softmax (graph fuse.c, mode 1): softmax over the
 * last axis of x * alpha + mask, the mask [N,1,1,L] broadcast over heads
 * and query rows (BERT's), or [1,1,Q,L] (a causal one), or absent. */
static void softmax_fused_case(int mask_kind)
{
    graph *g = graph_new();
    const int64_t H = 3, Q = 5, L = 37, n = 4;
    int64_t d[4] = {B, H, Q, L}, md[4] = {B, 1, 1, L}, cd[4] = {1, 1, Q, L};
    int ins[2];
    ins[0] = inp(g, "x", 4, d);
    ins[1] = mask_kind == 1 ? inp(g, "mask", 4, md) : mask_kind == 2 ? cst(g, "mask", 4, cd, -9, 0) : -1;
    int y = outp(g, "y", 4, d);
    graph_node *nd = node(g, OP_SOFTMAX, mask_kind ? 2 : 1, ins, 1, &y);
    nd->axis = -1;
    nd->mode = 1;
    nd->alpha = 0.125f;
    run_io io;
    io_alloc(g, &io, n, -30, 30);
    if (mask_kind == 1) /* 0 or BERT's -10000 on padding */
        for (int64_t i = 0; i < n * L; i++)
            ((float *)io.in[1])[i] = i % 5 == 4 ? -10000.0f : 0.0f;
    assert_int_equal(run(g, n, &io), FERRY_OK);
    const float *X = io.in[0];
    const float *M = mask_kind == 1 ? io.in[1] : mask_kind == 2 ? cdata(g, ins[1]) : NULL;
    int64_t total = n * H * Q * L;
    double *want = malloc((size_t)total * sizeof *want);
    assert_non_null(want);
    for (int64_t r = 0; r < n * H * Q; r++) {
        int64_t b = r / (H * Q), q = r % Q;
        const float *m = mask_kind == 1 ? M + b * L : mask_kind == 2 ? M + q * L : NULL;
        double mx = -INFINITY, s = 0, t[64];
        for (int64_t j = 0; j < L; j++) {
            t[j] = (double)X[r * L + j] * 0.125 + (m ? m[j] : 0.0);
            mx = fmax(mx, t[j]);
        }
        for (int64_t j = 0; j < L; j++)
            s += exp(t[j] - mx);
        for (int64_t j = 0; j < L; j++)
            want[r * L + j] = exp(t[j] - mx) / s;
    }
    char what[64];
    snprintf(what, sizeof what, "fused softmax, mask kind %d", mask_kind);
    expect_close(io.out[0], want, total, 1e-5, what);
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_softmax_fused(void **state)
{
    (void)state;
    softmax_fused_case(0);
    softmax_fused_case(1);
    softmax_fused_case(2);
}

/* ------------------------------------------------------ fused attention */

/* OP_ATTENTION (graph fuse_attention.c) against attention_ref.h: Q, K, V as
 * column ranges of one [N, T, 3D + 2] projection (offsets 1, D+1, 2D+1), or
 * of three sources of their own widths with Tq != Tk; the mask [N,1,1,Tk]
 * (BERT's padding), [1,1,Tq,Tk] (a constant, GPT's causal), or none; or
 * time-major (mode 1, MultiheadAttention's): one [T, N, 3D] projection, Y
 * [T*N, D]. */
static void attention_case(int64_t n, int64_t H, int64_t Tq, int64_t Tk, int64_t d, int one_src,
                           int mask_kind, int time_major)
{
    graph *g = graph_new();
    int64_t D = H * d, W = time_major ? 3 * D : 3 * D + 2;
    attn_ref r = {n, H, Tq, one_src ? Tq : Tk, d, {0}, {0}, {0}, 0.3, NULL, {0}};
    int in[4] = {-1, -1, -1, -1};
    if (one_src) {
        int64_t xd[3] = {B, Tq, W}, td[3] = {Tq, B, W};
        in[0] = in[1] = in[2] = inp(g, "qkv", 3, time_major ? td : xd);
        for (int k = 0; k < 3; k++) {
            r.bs[k] = time_major ? W : Tq * W;
            r.rs[k] = time_major ? n * W : W;
            r.off[k] = (time_major ? 0 : 1) + k * D;
        }
    } else {
        static const char *names[3] = {"q", "k", "v"};
        for (int k = 0; k < 3; k++) {
            int64_t T = k ? Tk : Tq, sd[3] = {B, T, D + k};
            r.bs[k] = T * (D + k);
            r.rs[k] = D + k;
            r.off[k] = k;
            in[k] = inp(g, names[k], 3, sd);
        }
    }
    r.bs[3] = time_major ? D : Tq * D;
    r.rs[3] = time_major ? n * D : D;
    int64_t md1[4] = {B, 1, 1, r.Tk}, md2[4] = {1, 1, Tq, r.Tk};
    int64_t yd[3] = {B, Tq, D}, ytd[2] = {-Tq, D}; /* [Tq*N, D] */
    if (mask_kind == 1)
        in[3] = inp(g, "mask", 4, md1);
    else if (mask_kind == 2)
        in[3] = cst(g, "mask", 4, md2, -9, 0);
    int y = time_major ? outp(g, "y", 2, ytd) : outp(g, "y", 3, yd);
    graph_node *nd = node(g, OP_ATTENTION, mask_kind ? 4 : 3, in, 1, &y);
    nd->heads = H;
    nd->head_dim = d;
    nd->alpha = (float)r.scale;
    nd->mode = time_major;
    for (int k = 0; k < 3; k++)
        nd->starts[k] = r.off[k];
    run_io io;
    io_alloc(g, &io, n, -2, 2);
    int nin = one_src ? 1 : 3;
    if (mask_kind == 1) { /* 0, or BERT's -10000 on padding */
        for (int64_t i = 0; i < n * r.Tk; i++)
            ((float *)io.in[nin])[i] = i % 4 == 3 ? -10000.0f : 0.0f;
        r.mask = io.in[nin];
        r.mstride[0] = r.Tk;
    } else if (mask_kind == 2) {
        r.mask = cdata(g, in[3]);
        r.mstride[2] = r.Tk;
    }
    assert_int_equal(run(g, n, &io), FERRY_OK);
    const float *q = io.in[0], *k = io.in[one_src ? 0 : 1], *v = io.in[one_src ? 0 : 2];
    double *want = malloc(sizeof(double) * (size_t)(n * Tq * D));
    assert_non_null(want);
    attention_ref(&r, q, k, v, want);
    char what[96];
    snprintf(what, sizeof what, "attention n %lld H %lld Tq %lld Tk %lld d %lld mask %d%s",
             (long long)n, (long long)H, (long long)Tq, (long long)r.Tk, (long long)d, mask_kind,
             time_major ? " time-major" : "");
    expect_close(io.out[0], want, n * Tq * D, 1e-5, what);
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_attention(void **state)
{
    (void)state;
    for (int mask = 0; mask < 3; mask++) {
        attention_case(1, 2, 7, 7, 5, 1, mask, 0);   /* odd T and d, one row block */
        attention_case(3, 3, 9, 9, 8, 1, mask, 0);   /* odd heads */
        attention_case(4, 4, 37, 37, 24, 1, mask, 0); /* threaded (over 2e5 flops) */
        /* 3 heads on 2 threads: each head's queries in row blocks, 35 + 35
         * and (uneven) 49 + 48; mask 2 has a row per query */
        attention_case(1, 3, 70, 70, 24, 1, mask, 0);
        attention_case(1, 3, 97, 97, 16, 1, mask, 0);
    }
    attention_case(2, 3, 6, 11, 4, 0, 0, 0); /* cross attention, sources of their own */
    attention_case(2, 3, 6, 11, 4, 0, 1, 0);
    attention_case(2, 1, 1, 5, 3, 0, 1, 0); /* one query: GEMV */
    attention_case(3, 4, 17, 17, 16, 1, 0, 1); /* ViT's time-major layout */
    attention_case(5, 3, 37, 37, 24, 1, 0, 1);
    attention_case(1, 3, 97, 97, 16, 1, 0, 1); /* time-major in row blocks */
}

/* ------------------------------------------------------------ layernorm */

static void layer_norm_case(int axis, int with_bias, int64_t d1, int64_t d2)
{
    graph *g = graph_new();
    int64_t d[3] = {B, d1, d2};
    int64_t cols = axis == 1 ? d1 * d2 : d2;
    int64_t sd[2] = {d1, d2};
    int ins[3];
    ins[0] = inp(g, "x", 3, d);
    ins[1] = cst(g, "scale", axis == 1 ? 2 : 1, axis == 1 ? sd : sd + 1, 0.5f, 1.5f);
    ins[2] = with_bias ? cst(g, "bias", axis == 1 ? 2 : 1, axis == 1 ? sd : sd + 1, -1, 1) : -1;
    int y = outp(g, "y", 3, d);
    graph_node *nd = node(g, OP_LAYER_NORM, with_bias ? 3 : 2, ins, 1, &y);
    nd->axis = axis;
    nd->epsilon = 1e-5f;
    run_io io;
    io_alloc(g, &io, 3, -3, 5);
    assert_int_equal(run(g, 3, &io), FERRY_OK);
    const float *X = io.in[0], *S = cdata(g, ins[1]), *Bi = with_bias ? cdata(g, ins[2]) : NULL;
    int64_t rows = 3 * d1 * d2 / cols;
    double *want = malloc((size_t)(3 * d1 * d2) * sizeof *want);
    assert_non_null(want);
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < cols; j++)
            m += X[r * cols + j];
        m /= (double)cols;
        for (int64_t j = 0; j < cols; j++)
            v += (X[r * cols + j] - m) * (X[r * cols + j] - m);
        v /= (double)cols;
        for (int64_t j = 0; j < cols; j++)
            want[r * cols + j] = (X[r * cols + j] - m) / sqrt(v + 1e-5) * S[j] + (Bi ? Bi[j] : 0.0);
    }
    expect_close(io.out[0], want, 3 * d1 * d2, 1e-5, "layer norm");
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_layer_norm(void **state)
{
    (void)state;
    layer_norm_case(-1, 1, 4, 16);
    layer_norm_case(2, 0, 4, 16);
    layer_norm_case(1, 1, 4, 16);
    layer_norm_case(-1, 1, 200, 259); /* 8-lane rows + tail, threaded */
    layer_norm_case(1, 0, 3, 7);      /* rows shorter than a lane block */
}

/* InstanceNormalization on [N, C, spatial...]: each (sample, channel) over
 * its spatial elements, then the channel's scale and bias. */
static void instance_norm_case(int nd_, const int64_t *d, float lo, float hi)
{
    graph *g = graph_new();
    int64_t cd[1] = {d[1]}, n = 3, sp = 1;
    for (int i = 2; i < nd_; i++)
        sp *= d[i];
    int ins[3];
    ins[0] = inp(g, "x", nd_, d);
    ins[1] = cst(g, "scale", 1, cd, 0.5f, 1.5f);
    ins[2] = cst(g, "bias", 1, cd, -1, 1);
    int y = outp(g, "y", nd_, d);
    node(g, OP_INSTANCE_NORM, 3, ins, 1, &y)->epsilon = 1e-3f;
    run_io io;
    io_alloc(g, &io, n, lo, hi);
    assert_int_equal(run(g, n, &io), FERRY_OK);
    const float *X = io.in[0], *S = cdata(g, ins[1]), *Bi = cdata(g, ins[2]);
    int64_t rows = n * d[1];
    double *want = malloc((size_t)(rows * sp) * sizeof *want);
    assert_non_null(want);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * sp;
        double m = 0, v = 0;
        for (int64_t j = 0; j < sp; j++)
            m += x[j];
        m /= (double)sp;
        for (int64_t j = 0; j < sp; j++)
            v += (x[j] - m) * (x[j] - m);
        v /= (double)sp;
        for (int64_t j = 0; j < sp; j++)
            want[r * sp + j] = (x[j] - m) / sqrt(v + 1e-3) * S[r % d[1]] + Bi[r % d[1]];
    }
    expect_close(io.out[0], want, rows * sp, 1e-5, "instance norm");
    free(want);
    io_free(&io);
    graph_free(g);
}

static void test_instance_norm(void **state)
{
    (void)state;
    const int64_t d3[3] = {B, 4, 16}, d4[4] = {B, 3, 5, 7}, dl[3] = {B, 8, 3001};
    instance_norm_case(3, d3, -3, 5);
    instance_norm_case(4, d4, -3, 5);   /* rows shorter than a lane block, tails */
    instance_norm_case(3, dl, 90, 110); /* long rows, threaded; a mean far from 0 */
}

/* ----------------------------------------------------------- reducemean */

static void reduce_case(int n_axes, const int64_t *axes, int keepdims)
{
    graph *g = graph_new();
    int64_t d[3] = {B, 5, 6}, dims[3] = {3, 5, 6};
    int red[3] = {0, 0, 0};
    for (int i = 0; i < n_axes; i++)
        red[axes[i] < 0 ? axes[i] + 3 : axes[i]] = 1;
    if (n_axes == 0)
        red[0] = red[1] = red[2] = 1;
    int64_t od[3];
    int on = 0;
    for (int i = 0; i < 3; i++)
        if (!red[i] || keepdims)
            od[on++] = red[i] ? 1 : d[i];
    int x = inp(g, "x", 3, d), y = outp(g, "y", on, od);
    graph_node *nd = node(g, OP_REDUCE_MEAN, 1, &x, 1, &y);
    nd->n_axes = n_axes;
    for (int i = 0; i < n_axes; i++)
        nd->axes[i] = axes[i];
    nd->keepdims = keepdims;
    run_io io;
    io_alloc(g, &io, 3, -2, 2);
    assert_int_equal(run(g, 4, &io), FERRY_OK);
    double sum[90] = {0};
    int cnt = 1, nout = 1;
    for (int i = 0; i < 3; i++)
        if (red[i])
            cnt *= (int)dims[i];
        else
            nout *= (int)dims[i];
    const float *X = io.in[0];
    for (int i0 = 0; i0 < 3; i0++)
        for (int i1 = 0; i1 < 5; i1++)
            for (int i2 = 0; i2 < 6; i2++) {
                int o = 0;
                if (!red[0])
                    o = i0;
                if (!red[1])
                    o = o * 5 + i1;
                if (!red[2])
                    o = o * 6 + i2;
                sum[o] += X[(i0 * 5 + i1) * 6 + i2];
            }
    for (int i = 0; i < nout; i++)
        sum[i] /= cnt;
    char what[64];
    snprintf(what, sizeof what, "reduce_mean %d axes keepdims %d", n_axes, keepdims);
    expect_close(io.out[0], sum, nout, 1e-5, what);
    io_free(&io);
    graph_free(g);
}

static void test_reduce_mean(void **state)
{
    (void)state;
    const int64_t last[1] = {-1}, mid[1] = {1}, first[1] = {0}, outer2[2] = {0, 2},
                  tail[2] = {1, 2};
    for (int k = 0; k < 2; k++) {
        reduce_case(1, last, k);
        reduce_case(1, mid, k);
        reduce_case(1, first, k);
        reduce_case(2, outer2, k); /* two separate blocks: the general path */
        reduce_case(2, tail, k);
        reduce_case(0, NULL, k);
    }
}

/* ----------------------------------------------------------------- topk */

/* TopK of x [n,4,5] along `axis` (1 or 2) against a selection by hand:
 * best first, the lower index on a tie, NaN above every number. */
static void topk_case(int axis, int64_t k, int largest)
{
    graph *g = graph_new();
    const int64_t xd[3] = {B, 4, 5}, kd[1] = {1};
    int64_t yd[3] = {B, 4, 5};
    yd[axis] = k;
    int x = inp(g, "x", 3, xd), kc = val(g, "k", 1, kd);
    g->values[kc].dtype = FERRY_I64;
    g->values[kc].is_const = 1;
    g->values[kc].data = malloc(sizeof(int64_t));
    *(int64_t *)g->values[kc].data = k;
    int v = outp(g, "values", 3, yd);
    int i = graph_add_value(g, "indices", FERRY_I64, 3, yd);
    g->values[i].is_output = 1;
    push(&g->outputs, &g->n_outputs, i);
    const int in[2] = {x, kc}, out[2] = {v, i};
    graph_node *nd = node(g, OP_TOPK, 2, in, 2, out);
    nd->axis = axis;
    nd->mode = largest;
    run_io io;
    io_alloc(g, &io, 2, -2, 2);
    float *X = io.in[0];
    X[1] = X[3] = 0.5f; /* ties along axis 2 */
    X[5] = X[15] = 0.5f; /* and along axis 1 */
    X[7] = NAN;
    assert_int_equal(run(g, 2, &io), FERRY_OK);
    const float *V = io.out[0];
    const int64_t *I = io.out[1];
    int64_t A = xd[axis], inner = axis == 1 ? 5 : 1, outer = axis == 1 ? 2 : 8;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < inner; c++) {
            const float *xl = X + o * A * inner + c;
            int used[5] = {0};
            for (int64_t r = 0; r < k; r++) {
                int64_t best = -1;
                for (int64_t j = 0; j < A; j++) {
                    if (used[j])
                        continue;
                    float a = xl[j * inner], b = best < 0 ? 0 : xl[best * inner];
                    int better = best < 0;
                    if (!better && isnan(a) != isnan(b))
                        better = isnan(a) == largest;
                    else if (!better && !isnan(a) && a != b)
                        better = largest ? a > b : a < b;
                    if (better)
                        best = j;
                }
                used[best] = 1;
                int64_t at = (o * k + r) * inner + c;
                if (I[at] != best)
                    fail_msg("axis %d k %lld largest %d: line %lld,%lld rank %lld: index %lld, "
                             "want %lld",
                             axis, (long long)k, largest, (long long)o, (long long)c, (long long)r,
                             (long long)I[at], (long long)best);
                float want = xl[best * inner];
                assert_true(isnan(want) ? isnan(V[at]) : V[at] == want);
            }
        }
    io_free(&io);
    graph_free(g);
}

static void test_topk(void **state)
{
    (void)state;
    topk_case(2, 3, 1);
    topk_case(2, 5, 0); /* torch.sort: the whole axis */
    topk_case(1, 2, 0);
    topk_case(1, 4, 1);
    topk_case(2, 0, 1);
}

/* ----------------------------------------------------------------- cast */

static void test_cast_round_trip(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t d[2] = {B, 64};
    int x = inp(g, "x", 2, d);
    int h = graph_add_value(g, "h", FERRY_F16, 2, d);
    int y = outp(g, "y", 2, d);
    int i64 = graph_add_value(g, "i", FERRY_I64, 2, d);
    int z = outp(g, "z", 2, d);
    graph_node *c1 = node(g, OP_CAST, 1, &x, 1, &h);
    c1->to = FERRY_F16;
    graph_node *c2 = node(g, OP_CAST, 1, &h, 1, &y);
    c2->to = FERRY_F32;
    graph_node *c3 = node(g, OP_CAST, 1, &x, 1, &i64);
    c3->to = FERRY_I64;
    graph_node *c4 = node(g, OP_CAST, 1, &i64, 1, &z);
    c4->to = FERRY_F32;
    run_io io;
    io_alloc(g, &io, 2, -70000, 70000);
    float *X = io.in[0];
    X[0] = 1.0f + 1.0f / 2048.0f; /* a tie: rounds to even, 1.0 */
    X[1] = 3.0e-6f;               /* an f16 subnormal */
    X[2] = 1e9f;                  /* beyond f16: inf */
    X[3] = -2.75f;                /* truncates to -2 as an integer */
    assert_int_equal(run(g, 2, &io), FERRY_OK);
    const float *Y = io.out[0], *Z = io.out[1];
    for (int i = 0; i < 128; i++) {
        float want = ferry_f16_to_f32(ferry_f32_to_f16(X[i]));
        assert_true(memcmp(&Y[i], &want, 4) == 0);
        assert_true(Z[i] == truncf(X[i]));
        if (fabsf(X[i]) < 65504.0f)
            assert_true(fabsf(Y[i] - X[i]) <= fabsf(X[i]) * (1.0f / 1024.0f) + 6e-8f);
    }
    assert_true(Y[0] == 1.0f);
    assert_true(isinf(Y[2]));
    assert_true(Z[3] == -2.0f);
    io_free(&io);
    graph_free(g);
}

/* ---------------------------------------------------- graph-level paths */

/* x -> Gemm(relu) -> Gemm -> Softmax -> y, plus a Reshape view of an
 * intermediate (aliased), an Identity of the input to an output (copied). */
static void test_chain_and_views(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t xd[2] = {B, 8}, w1d[2] = {16, 8}, b1d[1] = {16}, hd[2] = {B, 16}, w2d[2] = {16, 4},
            yd[2] = {B, 4}, rd[3] = {B, 4, 4};
    int x = inp(g, "x", 2, xd);
    int w1 = cst(g, "w1", 2, w1d, -1, 1), b1 = cst(g, "b1", 1, b1d, -1, 1);
    int w2 = cst(g, "w2", 2, w2d, -1, 1);
    int h = val(g, "h", 2, hd), r = val(g, "r", 3, rd), h2 = val(g, "h2", 2, hd);
    int l = val(g, "l", 2, yd);
    int y = outp(g, "y", 2, yd), xi = outp(g, "x_copy", 2, xd);
    int in1[3] = {x, w1, b1};
    graph_node *n1 = node(g, OP_GEMM, 3, in1, 1, &h);
    n1->trans_b = 1;
    n1->act = ACT_RELU;
    node(g, OP_RESHAPE, 1, &h, 1, &r);
    g->values[r].alias = h;
    node(g, OP_RESHAPE, 1, &r, 1, &h2);
    g->values[h2].alias = r;
    int in2[2] = {h2, w2};
    node(g, OP_GEMM, 2, in2, 1, &l);
    node(g, OP_SOFTMAX, 1, &l, 1, &y);
    node(g, OP_IDENTITY, 1, &x, 1, &xi);
    run_io io;
    io_alloc(g, &io, 3, -1, 1);
    assert_int_equal(run(g, 16, &io), FERRY_OK);
    const float *X = io.in[0], *W1 = cdata(g, w1), *B1 = cdata(g, b1), *W2 = cdata(g, w2);
    double want[12];
    for (int i = 0; i < 3; i++) {
        double hh[16], lg[4], mx = -INFINITY, s = 0;
        for (int j = 0; j < 16; j++) {
            double a = B1[j];
            for (int k = 0; k < 8; k++)
                a += (double)X[i * 8 + k] * W1[j * 8 + k];
            hh[j] = a > 0 ? a : 0;
        }
        for (int j = 0; j < 4; j++) {
            lg[j] = 0;
            for (int k = 0; k < 16; k++)
                lg[j] += hh[k] * W2[k * 4 + j];
            mx = fmax(mx, lg[j]);
        }
        for (int j = 0; j < 4; j++)
            s += exp(lg[j] - mx);
        for (int j = 0; j < 4; j++)
            want[i * 4 + j] = exp(lg[j] - mx) / s;
    }
    expect_close(io.out[0], want, 12, 1e-5, "chain");
    assert_memory_equal(io.out[1], io.in[0], 3 * 8 * sizeof(float));
    io_free(&io);
    graph_free(g);
}

/* A constant stored as f16 feeding an Add is converted once to f32. */
static void test_f16_constant(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t xd[2] = {B, 4}, cd[1] = {4};
    int x = inp(g, "x", 2, xd);
    int c = graph_add_value(g, "c", FERRY_F16, 1, cd);
    uint16_t *hc = malloc(4 * sizeof *hc);
    const float cv[4] = {0.5f, -1.25f, 3.0f, 1024.0f};
    for (int i = 0; i < 4; i++)
        hc[i] = ferry_f32_to_f16(cv[i]);
    g->values[c].is_const = 1;
    g->values[c].data = hc;
    int y = outp(g, "y", 2, xd);
    int ins[2] = {x, c};
    node(g, OP_ADD, 2, ins, 1, &y);
    run_io io;
    io_alloc(g, &io, 2, -1, 1);
    assert_int_equal(run(g, 2, &io), FERRY_OK);
    double want[8];
    for (int i = 0; i < 8; i++)
        want[i] = (double)((float *)io.in[0])[i] + cv[i % 4];
    expect_close(io.out[0], want, 8, 1e-6, "f16 constant");
    io_free(&io);
    graph_free(g);
}

/* ----------------------------------------------------------- errors */

static graph *tiny_relu(void)
{
    graph *g = graph_new();
    int64_t d[2] = {B, 4};
    int x = inp(g, "x", 2, d), y = outp(g, "y", 2, d);
    node(g, OP_RELU, 1, &x, 1, &y);
    return g;
}

static void test_unsupported_precision(void **state)
{
    (void)state;
    graph *g = tiny_relu();
    backend_ctx *c = NULL;
    backend_opts o = {.precision = FERRY_PRECISION_FP16, .io_dtype = FERRY_F32, .max_batch = 4};
    assert_int_equal(ferry_backend_cpu.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(ferry_last_error(), "supports precision fp32 only"));
    assert_non_null(strstr(ferry_last_error(), "fp16"));
    o.precision = FERRY_PRECISION_FP32;
    o.io_dtype = FERRY_F16;
    assert_int_equal(ferry_backend_cpu.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "f32 only"));
    graph_free(g);
}

static void test_unsupported_node(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t d[2] = {B, 4};
    int a = graph_add_value(g, "ints", FERRY_I64, 2, d);
    g->values[a].is_input = 1;
    push(&g->inputs, &g->n_inputs, a);
    int y = graph_add_value(g, "y", FERRY_I64, 2, d);
    g->values[y].is_output = 1;
    push(&g->outputs, &g->n_outputs, y);
    int ins[1] = {a};
    graph_add_node(g, OP_SHAPE, "shape_ints", 1, ins, 1, &y); /* shape math: never run */
    backend_ctx *c = NULL;
    backend_opts o = {.precision = FERRY_PRECISION_FP32, .io_dtype = FERRY_F32, .max_batch = 4};
    assert_int_equal(ferry_backend_cpu.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "shape_ints"));
    assert_non_null(strstr(ferry_last_error(), "Shape (1 node"));
    graph_free(g);

    g = graph_new();
    int x = inp(g, "x", 2, d);
    int yy = outp(g, "y", 2, d);
    graph_node *nd = node(g, OP_SOFTMAX, 1, &x, 1, &yy);
    nd->axis = 5;
    assert_int_equal(ferry_backend_cpu.ctx_create(g, &o, &c), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "axis 5"));
    graph_free(g);
}

static void test_bad_batch(void **state)
{
    (void)state;
    graph *g = tiny_relu();
    run_io io;
    io_alloc(g, &io, 5, -1, 1);
    assert_int_equal(run(g, 4, &io), FERRY_EINVAL);
    io_free(&io);
    graph_free(g);
}

static void test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(backend_find("cpu"), &ferry_backend_cpu);
    assert_null(backend_find("tpu"));
    const ferry_backend_ops *const *l = backend_list();
    assert_ptr_equal(l[0], &ferry_backend_cpu);
    char buf[2048];
    ferry_backends_describe(buf, sizeof buf);
    assert_non_null(strstr(buf, "cpu: built; 1 device"));
    assert_non_null(strstr(buf, "cuda"));
    char small[8];
    ferry_backends_describe(small, sizeof small);
    assert_true(strlen(small) < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_rank3),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_softmax_fused),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_instance_norm),
        cmocka_unit_test(test_reduce_mean),
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_cast_round_trip),
        cmocka_unit_test(test_chain_and_views),
        cmocka_unit_test(test_f16_constant),
        cmocka_unit_test(test_unsupported_precision),
        cmocka_unit_test(test_unsupported_node),
        cmocka_unit_test(test_bad_batch),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_relu_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
