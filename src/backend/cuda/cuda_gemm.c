/*
 * cuda_gemm.c - Gemm and MatMul nodes through cuBLASLt, with bias and
 * activation fused into the matmul's epilogue where cuBLASLt has one;
 * also the batched matmul at the heart of an Einsum (cuda_einsum.c).
 *
 * Row-major Y[M,N] = X[M,K] * W[K,N] + b is, read column-major, Y^T = W^T X^T:
 * a row-major buffer of R rows and C columns is the column-major C x R
 * matrix of its transpose. So cuBLASLt's A is the weight buffer (ONNX B),
 * its B the activations (ONNX A), D the output with leading dimension N,
 * and the bias runs along D's rows, N of them - exactly the epilogue's
 * per-row bias. ONNX Gemm's transB=1 ([N,K] weights, as nn.Linear stores
 * them) is the column-major K x N matrix W, used with op T.
 *
 * The descriptor of a node is made once; the layouts depend on the batch
 * size n, and the algorithm heuristic is slow (tens of microseconds), so
 * both are cached per (node, n) in a small open-addressed table. Lookups
 * happen on the first forward at each n; later forwards, and captures of
 * them, only read the table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/kernels.h"
#include "graph/einsum.h"
#include "util/error.h"

int cuda_is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

cudaDataType_t cuda_data_type(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F16: return CUDA_R_16F;
    case FERRY_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

/* Problem of one node at batch n, in row-major terms: batch x ([M,K] x
 * [K,N]); strides in elements between batches (0: broadcast). */
typedef struct gemm_shape {
    int64_t m, k, nn, batch, sx, sw, sy;
    int trans_w;
} gemm_shape;

static ferry_status shape_fail(const graph_node *nd, const char *why)
{
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %s", nd->name, op_name(nd->op), why);
}

/* An Einsum (cuda_einsum.c) in einsum.h's layout: A' [bt, M, K] x B' [bt,
 * K, N], both primed operands dense in scratch (or the inputs, where their
 * transposes are the identity). */
static ferry_status einsum_shape_of(const backend_ctx *c, const graph_node *nd, int64_t n,
                                    gemm_shape *sh)
{
    einsum_layout l;
    einsum_layout_of(nd, &l);
    int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS];
    int na = graph_value_shape(&c->g->values[nd->in[0]], n, ad);
    int nb = graph_value_shape(&c->g->values[nd->in[1]], n, bd);
    memset(sh, 0, sizeof *sh);
    sh->batch = sh->m = sh->k = sh->nn = 1;
    for (int i = 0; i < na; i++) {
        int64_t d = ad[l.perm_a[i]];
        if (i < l.n_batch)
            sh->batch *= d;
        else if (i < l.n_batch + l.n_free_a)
            sh->m *= d;
        else
            sh->k *= d;
    }
    for (int i = l.n_batch + l.n_contract; i < nb; i++)
        sh->nn *= bd[l.perm_b[i]];
    sh->sx = sh->m * sh->k;
    sh->sw = sh->k * sh->nn;
    sh->sy = sh->m * sh->nn;
    return FERRY_OK;
}

static ferry_status gemm_shape_of(const backend_ctx *c, const graph_node *nd, int64_t n,
                                  gemm_shape *sh)
{
    if (nd->op == OP_EINSUM)
        return einsum_shape_of(c, nd, n, sh);
    const graph *g = c->g;
    const graph_value *a = &g->values[nd->in[0]], *b = &g->values[nd->in[1]];
    int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS];
    int na = graph_value_shape(a, n, ad), nb = graph_value_shape(b, n, bd);
    memset(sh, 0, sizeof *sh);
    sh->batch = 1;
    if (na < 1 || nb != 2) {
        if (nd->op == OP_GEMM || na < 2 || nb < 2)
            return shape_fail(nd, "needs 2-D weights and activations of rank >= 1 (rank >= 2 "
                                  "for a batched MatMul)");
    }
    if (nd->op == OP_GEMM) {
        if (nd->trans_a)
            return shape_fail(nd, "transA=1 is not supported on CUDA");
        sh->trans_w = nd->trans_b;
    }
    sh->k = sh->trans_w ? bd[1] : bd[nb - 2];
    sh->nn = sh->trans_w ? bd[0] : bd[nb - 1];
    if (ad[na - 1] != sh->k) {
        return ferry_fail(FERRY_ESHAPE,
                          "node '%s' (%s): input A has inner dimension %" PRId64
                          ", weights expect %" PRId64,
                          nd->name, op_name(nd->op), ad[na - 1], sh->k);
    }
    int64_t numel_a = graph_value_numel(a, n);
    if (nb == 2) { /* every leading dim of A is a row */
        sh->m = sh->k ? numel_a / sh->k : 0;
        sh->sy = sh->m * sh->nn;
        return FERRY_OK;
    }
    /* Batched MatMul: A [..., M, K] x B [..., K, N] with numpy broadcast of
     * the batch dims, supported where each side is either whole (its batch
     * dims are the output's) or a single matrix repeated (stride 0). */
    sh->m = ad[na - 2];
    int nbat = (na > nb ? na : nb) - 2;
    int64_t pa = 1, pb = 1, po = 1;
    int a_whole = 1, b_whole = 1;
    for (int i = 0; i < nbat; i++) {
        int ia = na - 3 - i, ib = nb - 3 - i;
        int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return shape_fail(nd, "batch dimensions do not broadcast");
        int64_t dout = da > db ? da : db;
        pa *= da;
        pb *= db;
        po *= dout;
        if (da != dout)
            a_whole = 0;
        if (db != dout)
            b_whole = 0;
    }
    if (!(a_whole || pa == 1) || !(b_whole || pb == 1))
        return shape_fail(nd, "partially broadcast batch dimensions are not supported on CUDA");
    sh->batch = po;
    sh->sx = pa == 1 ? 0 : sh->m * sh->k;
    sh->sw = pb == 1 ? 0 : sh->k * sh->nn;
    sh->sy = sh->m * sh->nn;
    return FERRY_OK;
}

/* The problem of gp at batch n: from the graph, or a patch plan's own. */
static ferry_status plan_shape(const backend_ctx *c, const gemm_plan *gp, int64_t n, gemm_shape *sh)
{
    if (!gp->raw_rows)
        return gemm_shape_of(c, &c->g->nodes[gp->node], n, sh);
    memset(sh, 0, sizeof *sh);
    sh->m = gp->raw_rows * n;
    sh->k = gp->raw_k;
    sh->nn = gp->raw_n;
    sh->batch = 1;
    sh->sy = sh->m * sh->nn;
    sh->trans_w = 1;
    return FERRY_OK;
}

static ferry_status make_layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows,
                                int64_t cols, int64_t ld, int64_t batch, int64_t stride)
{
    ferry_status st =
        CUDA_CHECK(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (st != FERRY_OK)
        return st;
    if (batch > 1) {
        int32_t bc = (int32_t)batch;
        st = CUDA_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                         &bc, sizeof bc));
        if (st == FERRY_OK)
            st = CUDA_CHECK(cublasLtMatrixLayoutSetAttribute(
                *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return st;
}

static void entry_release(gemm_entry *e)
{
    if (e->la)
        cublasLtMatrixLayoutDestroy(e->la);
    if (e->lb)
        cublasLtMatrixLayoutDestroy(e->lb);
    if (e->ld)
        cublasLtMatrixLayoutDestroy(e->ld);
    memset(e, 0, sizeof *e);
}

/* Fills e (layouts and the heuristic's best algorithm) for batch n; with
 * cand, also the heuristic's first *n_cand (at most GEMM_TUNE_MAX) choices
 * for gemm_tune. */
#define GEMM_TUNE_MAX 8
static ferry_status entry_make(backend_ctx *c, gemm_plan *gp, int64_t n, gemm_entry *e,
                               cublasLtMatmulHeuristicResult_t *cand, int *n_cand)
{
    const graph_node *nd = &c->g->nodes[gp->node];
    gemm_shape sh;
    ferry_status st = plan_shape(c, gp, n, &sh);
    if (st != FERRY_OK)
        return st;
    memset(e, 0, sizeof *e);
    cudaDataType_t t = cuda_data_type(c->cdt);
    if (sh.trans_w)
        st = make_layout(&e->la, t, sh.k, sh.nn, sh.k, sh.batch, sh.sw);
    else
        st = make_layout(&e->la, t, sh.nn, sh.k, sh.nn, sh.batch, sh.sw);
    if (st == FERRY_OK)
        st = make_layout(&e->lb, t, sh.k, sh.m, sh.k, sh.batch, sh.sx);
    if (st == FERRY_OK)
        st = make_layout(&e->ld, t, sh.nn, sh.m, sh.nn, sh.batch, sh.sy);
    if (st != FERRY_OK)
        goto fail;
    cublasLtMatmulHeuristicResult_t one, *res = cand ? cand : &one;
    int found = 0;
    memset(res, 0, (cand ? GEMM_TUNE_MAX : 1) * sizeof *res);
    st = CUDA_CHECK(cublasLtMatmulAlgoGetHeuristic(c->lt, gp->desc, e->la, e->lb, e->ld, e->ld,
                                                   c->pref, cand ? GEMM_TUNE_MAX : 1, res, &found));
    if (st != FERRY_OK)
        goto fail;
    if (found < 1) {
        st = ferry_fail(FERRY_EUNSUPPORTED,
                        "node '%s' (%s): cuBLASLt has no algorithm for [%" PRId64 "x%" PRId64
                        "] x [%" PRId64 "x%" PRId64 "] (batch %" PRId64 ") in %s",
                        nd->name, op_name(nd->op), sh.m, sh.k, sh.k, sh.nn, sh.batch,
                        ferry_dtype_name(c->cdt));
        goto fail;
    }
    e->algo = res[0].algo;
    e->n = n;
    if (n_cand)
        *n_cand = found;
    return FERRY_OK;
fail:
    entry_release(e);
    return st;
}

static size_t slot_of(int64_t n, int cap)
{
    return (size_t)(((uint64_t)n * 0x9E3779B97F4A7C15ull) >> 32) & (size_t)(cap - 1);
}

static ferry_status prepare_common(backend_ctx *c, int ni, gemm_plan *gp);

ferry_status cuda_gemm_prepare(backend_ctx *c, int ni, gemm_plan *gp)
{
    memset(gp, 0, sizeof *gp);
    return prepare_common(c, ni, gp);
}

ferry_status cuda_gemm_prepare_patch(backend_ctx *c, int ni, gemm_plan *gp, int64_t rows_per_sample,
                                     int64_t k, int64_t nn)
{
    memset(gp, 0, sizeof *gp);
    gp->raw_rows = rows_per_sample;
    gp->raw_k = k;
    gp->raw_n = nn;
    return prepare_common(c, ni, gp);
}

static ferry_status prepare_common(backend_ctx *c, int ni, gemm_plan *gp)
{
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[ni];
    ferry_status st = FERRY_OK;
    float *hbias = NULL;
    int conv = nd->op == OP_CONV;
    gp->node = ni;
    gp->alpha = nd->op == OP_GEMM ? nd->alpha : 1.0f;
    gp->post_act = ACT_NONE;
    int64_t want = c->o.max_batch < GEMM_CACHE_MAX ? c->o.max_batch : GEMM_CACHE_MAX;
    gp->cap = 16;
    while (gp->cap < GEMM_CACHE_MAX && (int64_t)gp->cap * 3 / 4 < want)
        gp->cap *= 2;
    gp->cache = calloc((size_t)gp->cap, sizeof *gp->cache);
    if (!gp->cache)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
    if (nd->n_in < 2 || nd->in[0] < 0 || nd->in[1] < 0) {
        st = shape_fail(nd, "needs two inputs");
        goto fail;
    }
    const graph_value *b = &g->values[nd->in[1]];
    if (nd->op == OP_GEMM && (!b->is_const || b->ndim != 2)) {
        st = shape_fail(nd, "weights (input B) must be a 2-D constant");
        goto fail;
    }

    gemm_shape sh;
    st = plan_shape(c, gp, c->o.max_batch, &sh);
    if (st != FERRY_OK)
        goto fail;

    /* A Conv's bias is input 2 with beta 1. */
    float beta = conv ? 1.0f : nd->beta;
    int cin = (nd->op == OP_GEMM || conv) && nd->n_in > 2 ? nd->in[2] : -1;
    if (cin >= 0 && beta != 0.0f) {
        const graph_value *cv = &g->values[cin];
        const graph_value *yv = &g->values[nd->out[0]];
        int64_t cn = graph_value_numel(cv, 1);
        if (cv->is_const && (cn == 1 || (cn == sh.nn && cv->dims[cv->ndim - 1] == sh.nn))) {
            /* A bias: expanded to N elements with beta folded in, in the
             * compute dtype, for the epilogue. */
            hbias = malloc((size_t)sh.nn * sizeof *hbias);
            if (!hbias) {
                st = ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
                goto fail;
            }
            for (int64_t j = 0; j < sh.nn; j++)
                hbias[j] = cuda_host_f32(cv->dtype, cv->data, cn == 1 ? 0 : j) * beta;
            size_t bytes = (size_t)sh.nn * c->celem;
            CUDA_TRY(cudaMalloc(&gp->bias, bytes));
            st = cuda_upload_f32(c, gp->bias, hbias, sh.nn);
            if (st != FERRY_OK)
                goto fail;
        } else if (!conv && !cv->is_const && graph_value_numel(cv, 2) == graph_value_numel(yv, 2) &&
                   graph_value_numel(cv, 1) == graph_value_numel(yv, 1) && cv->ndim == yv->ndim) {
            gp->c_matrix = 1;
            gp->c_input = 2;
            gp->beta = nd->beta;
        } else {
            st = shape_fail(nd, "input C must be a bias of N elements or a tensor of Y's shape");
            goto fail;
        }
    }

    /* A residual (input 3, fuse.c; a pointwise Conv's too, cuda_conv.c):
     * cuBLASLt's C with beta 1, the bias still in the epilogue: D = A*B +
     * bias + R in one pass. */
    int rin = (nd->op == OP_GEMM || conv) && nd->n_in > 3 ? nd->in[3] : -1;
    if (rin >= 0) {
        if (gp->c_matrix) {
            st = shape_fail(nd, "a residual beside a full C matrix is not supported");
            goto fail;
        }
        gp->c_matrix = 1;
        gp->c_input = 3;
        gp->beta = 1.0f;
    }

    int have_bias = gp->bias != NULL;
    act_kind act = nd->op == OP_GEMM || conv ? nd->act : ACT_NONE;
    int half = c->cdt != FERRY_F32;
    if (act == ACT_RELU) {
        gp->epilogue = have_bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    } else if (act == ACT_GELU_TANH || (act == ACT_GELU && half)) {
        /* cuBLASLt's GELU is the tanh form. It differs from the exact erf
         * form by at most 4.8e-4, below half a 16-bit ulp of outputs past
         * ~0.5, so fp16/bf16 take the fused epilogue; fp32/tf32 run the
         * exact form as a separate kernel. */
        gp->epilogue = have_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    } else {
        gp->epilogue = have_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
        gp->post_act = act;
        gp->post_alpha = nd->act_alpha;
    }

    cublasComputeType_t ct =
        c->o.precision == FERRY_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CUDA_TRY(cublasLtMatmulDescCreate(&gp->desc, ct, CUDA_R_32F));
    cublasOperation_t ta = sh.trans_w ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    CUDA_TRY(cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUDA_TRY(cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUDA_TRY(cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &gp->epilogue,
                                            sizeof gp->epilogue));
    if (have_bias)
        CUDA_TRY(cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                &gp->bias, sizeof gp->bias));
    free(hbias);
    return FERRY_OK;
fail:
    free(hbias);
    cuda_gemm_release(gp);
    return st;
}

void cuda_gemm_release(gemm_plan *gp)
{
    for (int i = 0; gp->cache && i < gp->cap; i++)
        if (gp->cache[i].n)
            entry_release(&gp->cache[i]);
    free(gp->cache);
    if (gp->desc)
        cublasLtMatmulDescDestroy(gp->desc);
    if (gp->bias)
        cudaFree(gp->bias);
    memset(gp, 0, sizeof *gp);
}

static int misaligned(const void *p)
{
    return ((uintptr_t)p & 15u) != 0;
}

static ferry_status gemm_launch(backend_stream *s, gemm_plan *gp, const gemm_entry *e,
                                const cublasLtMatmulAlgo_t *algo, const void *x, const void *w,
                                void *y)
{
    const void *cm = gp->c_matrix ? s->vptr[s->c->g->nodes[gp->node].in[gp->c_input]] : y;
    float beta = gp->c_matrix ? gp->beta : 0.0f;
    return CUDA_CHECK(cublasLtMatmul(s->lt, gp->desc, &gp->alpha, w, e->la, x, e->lb, &beta, cm,
                                     e->ld, y, e->ld, algo, s->ws, CUDA_LT_WORKSPACE, s->s));
}

/* FERRY_GEMM_TUNE set to anything but "" or "0" (a measurement knob; "2"
 * also prints each node's pick). */
static int gemm_tune_on(void)
{
    const char *v = getenv("FERRY_GEMM_TUNE");
    return v && *v && strcmp(v, "0") != 0;
}

static int overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + nb && pb < pa + na;
}

/* Split-K variants of the heuristic's first GEMM_SPLIT_BASE choices: the
 * same kernel with K cut in 2 to 8 slices, partial sums reduced in the
 * compute type (fp32), where the algorithm supports it and the workspace
 * holds the partials. The heuristic rarely offers them, yet at small M
 * (BERT-base at batch 1: 128 rows, 18 output tiles for 132 SMs) they are
 * how a GEMM fills the GPU. Appended to cand[n..]; returns the new count. */
#define GEMM_SPLIT_BASE 3
#define GEMM_SPLITS 5
static int add_split_k(backend_ctx *c, gemm_plan *gp, const gemm_entry *e,
                       cublasLtMatmulHeuristicResult_t *cand, int n)
{
    static const int32_t splits[GEMM_SPLITS] = {2, 3, 4, 6, 8};
    int base = n < GEMM_SPLIT_BASE ? n : GEMM_SPLIT_BASE, out = n;
    for (int i = 0; i < base; i++) {
        int32_t ok = 0;
        uint32_t mask = 0;
        size_t got = 0;
        if (cand[i].state != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoCapGetAttribute(&cand[i].algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &ok,
                                              sizeof ok, &got) != CUBLAS_STATUS_SUCCESS ||
            !ok ||
            cublasLtMatmulAlgoCapGetAttribute(&cand[i].algo,
                                              CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &mask,
                                              sizeof mask, &got) != CUBLAS_STATUS_SUCCESS)
            continue;
        uint32_t scheme = mask & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
                              ? CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
                              : CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
        if (!(mask & scheme))
            continue;
        for (int k = 0; k < GEMM_SPLITS; k++) {
            cublasLtMatmulHeuristicResult_t *r = &cand[out];
            memset(r, 0, sizeof *r);
            r->algo = cand[i].algo;
            if (cublasLtMatmulAlgoConfigSetAttribute(&r->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                                     &splits[k],
                                                     sizeof splits[k]) != CUBLAS_STATUS_SUCCESS ||
                cublasLtMatmulAlgoConfigSetAttribute(&r->algo,
                                                     CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                     sizeof scheme) != CUBLAS_STATUS_SUCCESS ||
                cublasLtMatmulAlgoCheck(c->lt, gp->desc, e->la, e->lb, e->ld, e->ld, &r->algo, r) !=
                    CUBLAS_STATUS_SUCCESS)
                continue;
            r->state = CUBLAS_STATUS_SUCCESS;
            out++;
        }
    }
    return out;
}

/* FERRY_GEMM_TUNE: times the heuristic's first choices on the node's own
 * buffers, on the first forward at batch n (never in a capture: the
 * engine runs a batch size once before it captures it), and keeps the
 * fastest in e. cuBLASLt's first choice is a model's guess; at small M
 * (BERT at batch 1: 128 rows) the guess can leave most SMs idle where a
 * split-K kernel would not (add_split_k). Each candidate runs once to warm up and
 * three times timed; the output is written each time, so a node whose
 * output overlaps an input (C, a residual) is left untuned. */
static void gemm_tune(backend_stream *s, gemm_plan *gp, int64_t n, gemm_entry *e,
                      const cublasLtMatmulHeuristicResult_t *cand, int n_cand, const void *x,
                      const void *w, void *y)
{
    backend_ctx *c = s->c;
    const graph_node *nd = &c->g->nodes[gp->node];
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    gemm_shape sh;
    if (cudaStreamIsCapturing(s->s, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone ||
        plan_shape(c, gp, n, &sh) != FERRY_OK)
        return;
    size_t esz = ferry_dtype_size(c->cdt);
    size_t ny = (size_t)(sh.batch * sh.m * sh.nn) * esz, nx = (size_t)(sh.m * sh.k) * esz;
    nx *= sh.sx ? (size_t)sh.batch : 1;
    const void *cm = gp->c_matrix ? s->vptr[nd->in[gp->c_input]] : NULL;
    if (overlaps(y, ny, x, nx) || (cm && overlaps(y, ny, cm, ny)))
        return;
    cudaEvent_t t0 = NULL, t1 = NULL;
    if (cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess)
        goto done;
    float best = 0.0f, first = 0.0f;
    int best_i = -1;
    for (int i = 0; i < n_cand; i++) {
        if (cand[i].state != CUBLAS_STATUS_SUCCESS || cand[i].workspaceSize > CUDA_LT_WORKSPACE)
            continue;
        int ok = gemm_launch(s, gp, e, &cand[i].algo, x, w, y) == FERRY_OK &&
                 cudaEventRecord(t0, s->s) == cudaSuccess;
        for (int r = 0; ok && r < 3; r++)
            ok = gemm_launch(s, gp, e, &cand[i].algo, x, w, y) == FERRY_OK;
        float ms = 0.0f;
        ok = ok && cudaEventRecord(t1, s->s) == cudaSuccess &&
             cudaEventSynchronize(t1) == cudaSuccess &&
             cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess;
        if (!ok) {
            ferry_clear_error();
            (void)cudaGetLastError();
            continue;
        }
        if (i == 0)
            first = ms;
        if (best_i < 0 || ms < best) {
            best = ms;
            best_i = i;
        }
    }
    if (best_i >= 0)
        e->algo = cand[best_i].algo;
    if (best_i >= 0 && getenv("FERRY_GEMM_TUNE")[0] == '2') {
        int32_t split = 1;
        size_t got = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&cand[best_i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                             &split, sizeof split, &got);
        fprintf(stderr,
                "gemm tune: node '%s' batch %" PRId64
                ": candidate %d of %d (split %d), %.2f us (the heuristic's first %.2f)\n",
                nd->name, n, best_i, n_cand, (int)split, best * 1000.0f / 3.0f,
                first * 1000.0f / 3.0f);
    }
done:
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
}

ferry_status cuda_gemm_run(backend_stream *s, gemm_plan *gp, int64_t n)
{
    const graph_node *nd = &s->c->g->nodes[gp->node];
    return cuda_gemm_run_ptrs(s, gp, n, s->vptr[nd->in[0]], s->vptr[nd->in[1]],
                              s->vptr[nd->out[0]]);
}

ferry_status cuda_gemm_run_ptrs(backend_stream *s, gemm_plan *gp, int64_t n, const void *x,
                                const void *w, void *y)
{
    backend_ctx *c = s->c;
    const graph_node *nd = &c->g->nodes[gp->node];
    ferry_status st = FERRY_OK;
    const void *cm = gp->c_matrix ? s->vptr[nd->in[gp->c_input]] : y;
    if (misaligned(x) || misaligned(w) || misaligned(y) || misaligned(cm))
        return ferry_fail(FERRY_EINVAL, "node '%s' (%s): a buffer is not 16-byte aligned", nd->name,
                          op_name(nd->op));

    /* Find or make the cache entry for n. Entries are never removed while
     * the ctx lives, so a pointer into the table stays valid unlocked. */
    gemm_entry *e = NULL, tmp;
    int temporary = 0;
    pthread_mutex_lock(&c->mu);
    size_t i = slot_of(n, gp->cap), mask = (size_t)gp->cap - 1;
    for (int probes = 0; probes < gp->cap; probes++, i = (i + 1) & mask) {
        if (gp->cache[i].n == n) {
            e = &gp->cache[i];
            break;
        }
        if (gp->cache[i].n == 0)
            break;
    }
    if (!e && gp->n_cached < gp->cap / 4 * 3) {
        cublasLtMatmulHeuristicResult_t cand[GEMM_TUNE_MAX + GEMM_SPLIT_BASE * GEMM_SPLITS];
        int n_cand = 0, tune = gemm_tune_on();
        st = entry_make(c, gp, n, &gp->cache[i], tune ? cand : NULL, &n_cand);
        if (st == FERRY_OK) {
            e = &gp->cache[i];
            gp->n_cached++;
            if (tune)
                n_cand = add_split_k(c, gp, e, cand, n_cand);
            if (tune && n_cand > 1)
                gemm_tune(s, gp, n, e, cand, n_cand, x, w, y);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (st != FERRY_OK)
        return st;
    if (!e) {
        /* More distinct batch sizes than the table holds: an uncached
         * lookup for this call (slow, but correct). */
        st = entry_make(c, gp, n, &tmp, NULL, NULL);
        if (st != FERRY_OK)
            return st;
        e = &tmp;
        temporary = 1;
    }

    st = gemm_launch(s, gp, e, &e->algo, x, w, y);
    if (temporary)
        entry_release(&tmp);
    if (st != FERRY_OK)
        return ferry_fail_prefix(st, "node '%s' (%s)", nd->name, op_name(nd->op));
    if (gp->post_act != ACT_NONE) {
        static const kern_unary_op map[] = {
            [ACT_RELU] = KU_RELU,           [ACT_GELU] = KU_GELU,
            [ACT_GELU_TANH] = KU_GELU_TANH, [ACT_LEAKY_RELU] = KU_LEAKY_RELU,
            [ACT_SIGMOID] = KU_SIGMOID,     [ACT_TANH] = KU_TANH,
        };
        int64_t ny = gp->raw_rows ? gp->raw_rows * n * gp->raw_n
                                  : graph_value_numel(&c->g->values[nd->out[0]], n);
        st =
            CUDA_CHECK(kern_unary(map[gp->post_act], gp->post_alpha, 0.0f, y, y, ny, c->cdt, s->s));
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "node '%s' (%s) activation", nd->name, op_name(nd->op));
    }
    return FERRY_OK;
}
