/*
 * cuda_conv.c - Conv and ConvTranspose on CUDA: the run-table rows
 * (cuda_ops.h) and the cuDNN handles of the streams.
 *
 * Two paths. A patch convolution (kernel = stride, no padding, one group:
 * a ViT's patch embedding) reads every pixel once and is a linear layer
 * over the flattened patches: a strided copy, one cuBLASLt matmul with
 * bias and activation in its epilogue, a transpose back to NCHW. Every
 * other convolution goes through cuDNN:
 *
 *   - Conv of one group in tf32, fp16 and bf16 whose epilogue ends in
 *     ReLU (bias and residual before it optional) or is a bias alone:
 *     cuDNN's graph API (cuda_dnn_graph.c: one execution plan per batch
 *     size with the epilogue inside), where an engine takes it. On an H200
 *     it ran resnet50 in fp16 1.25-2.1x faster than the legacy calls at
 *     batch 8-256 (2026-12-07 ~13:00 UTC); FERRY_CUDNN=legacy turns it off.
 *   - A depthwise convolution in fp16 or bf16 (channels-last): our kernel,
 *     kern_dwconv (kernels_image.cu).
 *   - Conv, legacy: cudnnConvolutionBiasActivationForward when the fused
 *     epilogue is bias + optional residual + ReLU (ResNet's blocks: one
 *     call), else cudnnConvolutionForward and kern_bias_act for the bias,
 *     the residual and any activation graph_fuse_conv folded (ReLU6, SiLU,
 *     HardSwish..).
 *   - ConvTranspose: cudnnConvolutionBackwardData (the transpose of the
 *     convolution whose weights have ConvTranspose's [Ci, Co/g, k..]
 *     layout), then kern_bias_act for the bias.
 *
 * Tensors are NCHW or NHWC (cuda_layout.c) in the compute dtype (1-D
 * convolutions as H = 1), with fp32 accumulation. 3-D convolutions take
 * the legacy calls on NCDHW tensors through cuDNN's Nd descriptors, with
 * the epilogue as kern_bias_act: cuda_layout.c marks only 4-D activations
 * channels-last, so a 5-D tensor is NCDHW everywhere (its neighbours, the
 * 3-D pools, Pad, elementwise ops, read it as the graph describes it) and
 * no layout conversion happens at their boundaries; cuDNN may transpose
 * inside a 16-bit NCDHW convolution for its tensor cores. The fused
 * bias+ReLU call, the graph API and the depthwise kernel stay 2-D (their
 * descriptors and dnn_conv_shape are 4-D). Then fp32 forbids TF32
 * (CUDNN_FMA_MATH), tf32 and the 16-bit precisions allow tensor cores.
 * Plans and algorithms come from cuDNN's heuristics (host-only: no
 * kernels, no sync), once per batch size: at prepare for max_batch, else
 * the first time a forward sees the size (the engine runs one plain
 * forward before it captures a CUDA graph, so captures replay cached
 * choices); FERRY_CUDNN_FIND=1 then times the legacy candidates on that
 * forward's tensors (opt-in until measured). The workspace is node scratch in the forward's arena,
 * sized at prepare from the choices at max_batch: nothing allocates on the run path.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "backend/cuda/cuda_dnn_graph.h"
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

_Static_assert((int)KA_RELU == (int)ACT_RELU && (int)KA_LEAKY_RELU == (int)ACT_LEAKY_RELU &&
                   (int)KA_TANH == (int)ACT_TANH && (int)KA_CLIP == (int)ACT_CLIP &&
                   (int)KA_HARD_SIGMOID == (int)ACT_HARD_SIGMOID && (int)KA_SILU == (int)ACT_SILU,
               "kernels.h's KA_* follow graph.h's act_kind");

/* Workspace one convolution may take from the arena's scratch (per slot in
 * flight): the heuristics' first choices at max_batch rarely ask more. */
#define CONV_WS_CAP ((size_t)64 << 20)
/* Algorithms asked of the heuristics per shape. */
#define CONV_ALGOS 8
/* Epilogue kinds through the graph API by default (graph_epilogue_ok). */
#define GRAPH_DEFAULT "relu,bias"

static ferry_status dnn_status(cudnnStatus_t e, const char *call, const char *file, int line)
{
    if (e == CUDNN_STATUS_SUCCESS)
        return FERRY_OK;
    ferry_status st = e == CUDNN_STATUS_ALLOC_FAILED ? FERRY_ENOMEM : FERRY_EDEVICE;
    return ferry_fail(st, "cuDNN: %s failed: %s (%s:%d)", call, cudnnGetErrorString(e), file, line);
}
#define DNN(call) dnn_status((call), #call, __FILE__, __LINE__)
#define DNN_TRY(call)                                                                              \
    do {                                                                                           \
        st = DNN(call);                                                                            \
        if (st != FERRY_OK)                                                                        \
            goto fail;                                                                             \
    } while (0)

/* ------------------------------------------------------ stream handles */

ferry_status cuda_dnn_stream_init(backend_stream *s)
{
    cudnnHandle_t h = NULL;
    ferry_status st = FERRY_OK;
    DNN_TRY(cudnnCreate(&h));
    DNN_TRY(cudnnSetStream(h, s->s));
    s->dnn = h;
    return FERRY_OK;
fail:
    if (h)
        cudnnDestroy(h);
    return st;
}

void cuda_dnn_stream_release(backend_stream *s)
{
    if (s->dnn)
        cudnnDestroy((cudnnHandle_t)s->dnn);
    s->dnn = NULL;
}

/* ------------------------------------------------------ patch convolutions */

typedef struct patch_state {
    gemm_plan gp;
    int nsp;
    int64_t ci, co, k[2], out[2]; /* 1-D: k[0] = out[0] = 1 */
    size_t y_off;                 /* scratch offset of the matmul's output */
} patch_state;

/* Does the patch path take node nd (NULL) or why not. */
static const char *patch_refusal(const graph_node *nd)
{
    const conv_attrs *a = &nd->conv;
    if (nd->op != OP_CONV)
        return "transposed";
    if (a->nsp < 1 || a->nsp > 2 || a->group != 1)
        return "grouped or 3-D";
    /* 1x1: a pointwise convolution in a CNN, between channels-last
     * neighbours; cuDNN reads it in place, where the patch path would
     * transpose its input and output (resnet50's 16 bottleneck entries: 44%
     * of the GPU time in two strided copies a block, and their neighbours
     * pushed to NCHW). */
    int64_t area = 1;
    for (int i = 0; i < a->nsp; i++)
        area *= a->kernel[i];
    if (area == 1)
        return "1x1";
    for (int i = 0; i < a->nsp; i++)
        if (a->kernel[i] != a->strides[i] || a->dilations[i] != 1 || a->pads[i] ||
            a->pads[i + a->nsp])
            return "overlapping or padded";
    if (nd->n_in > 3 && nd->in[3] >= 0)
        return "with a fused residual";
    if (nd->act > ACT_TANH)
        return "with this fused activation";
    return NULL;
}

static ferry_status patch_prepare(cuda_prep *p, patch_state *ps)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    const graph_value *x = &g->values[nd->in[0]], *y = &g->values[nd->out[0]];
    ps->nsp = nd->conv.nsp;
    ps->ci = x->dims[1];
    ps->co = y->dims[1];
    ps->k[0] = ps->k[1] = ps->out[0] = ps->out[1] = 1;
    for (int i = 0; i < ps->nsp; i++) {
        ps->k[2 - ps->nsp + i] = nd->conv.kernel[i];
        ps->out[2 - ps->nsp + i] = y->dims[2 + i];
    }
    int64_t rows = ps->out[0] * ps->out[1], kk = ps->ci * ps->k[0] * ps->k[1];
    ferry_status st = cuda_gemm_prepare_patch(p->c, p->ni, &ps->gp, rows, kk, ps->co);
    if (st)
        return st;
    p->c->n_gemms++;
    size_t es = ferry_dtype_size(p->cdt);
    ps->y_off = ((size_t)(p->max_batch * rows * kk) * es + 255) & ~(size_t)255;
    p->scratch = ps->y_off + (size_t)(p->max_batch * rows * ps->co) * es;
    return FERRY_OK;
}

static ferry_status patch_run(const cuda_call *c, patch_state *ps)
{
    int64_t xd[FERRY_MAX_DIMS];
    int xn = graph_value_shape(&c->g->values[c->nd->in[0]], c->n, xd);
    int64_t H = ps->nsp == 2 ? xd[2] : 1, W = xd[xn - 1];
    int64_t ho = ps->out[0], wo = ps->out[1], kh = ps->k[0], kw = ps->k[1];
    size_t es = ferry_dtype_size(c->cdt);
    char *cols = c->scratch, *ym = cols + ps->y_off;
    /* x [N, Ci, Ho*kh.., Wo*kw..] -> cols [N, Ho, Wo, Ci, kh, kw] */
    int64_t dd[6] = {c->n, ho, wo, ps->ci, kh, kw};
    int64_t sx[6] = {ps->ci * H * W, kh * W, kw, H * W, W, 1};
    ferry_status st = cuda_copy_dense(c, c->in[0], cols, 6, dd, sx, es);
    if (st)
        return st;
    st = cuda_gemm_run_ptrs(c->s, &ps->gp, c->n, cols, c->in[1], ym);
    if (st)
        return st;
    /* ym [N, Ho*Wo, Co] -> y [N, Co, Ho*Wo] */
    int64_t hw = ho * wo;
    int64_t d3[3] = {c->n, ps->co, hw}, s3[3] = {hw * ps->co, 1, ps->co};
    return cuda_copy_dense(c, ym, c->out[0], 3, d3, s3, es);
}

/* ------------------------------------------------------ cuDNN convolutions */

/* One batch size's descriptors and algorithm. Immutable once published. */
/* One batch size's descriptors and algorithms: the heuristics' choices
 * that fit the workspace, best first. The first forward at this size (a
 * plain one: the engine runs one before it captures) moves pick past any
 * that the run itself refuses (seen: CUDNN_STATUS_BAD_PARAM from a
 * channels-last fp16 depthwise convolution's first choice). */
typedef struct dnn_entry {
    cudnnTensorDescriptor_t x, y; /* Conv: x -> y; ConvTranspose: x is dy, y is dx */
    int n_algos;
    int algo[CONV_ALGOS + 1]; /* cudnnConvolutionFwdAlgo_t or ...BwdDataAlgo_t */
    size_t ws[CONV_ALGOS + 1];
    int pick;     /* index of the algorithm in use (atomic) */
    int unfused;  /* the fused call refused this shape: run conv + epilogue */
    dnn_plan *gp; /* the graph API's plan with the epilogue (cuda_dnn_graph.c), else NULL */
} dnn_entry;

typedef struct dnn_state {
    int transposed;
    int nd5;             /* a 3-D convolution: 5-D NCDHW descriptors */
    int64_t in_d, out_d; /* its depths (1 otherwise) */
    cudnnDataType_t dt;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnTensorDescriptor_t bias; /* [1, Co, 1, 1], for the fused call */
    cudnnActivationDescriptor_t relu;
    int fused;         /* cudnnConvolutionBiasActivationForward (bias + ReLU) */
    int graph;         /* try the graph API first (16-bit and tf32 Conv) */
    dnn_conv_shape gs; /* its shape, all but the batch (conv_graph_plan) */
    int find;          /* time the candidates on first use (FERRY_CUDNN_FIND=1) */
    int has_bias, has_res;
    int nhwc, x_nhwc; /* layouts of y (and the residual, the run) and of x */
    cudnnTensorFormat_t fmt;
    void *w_t;       /* channels-last: the weights as [Co, kh, kw, Ci/g] (owned) */
    size_t x_off;    /* x in the run's layout, in scratch, when x_nhwc != nhwc */
    int dw;          /* ours: kern_dwconv (FERRY_CUDA_DEPTHWISE=cudnn: never) */
    kern_dwconv dwd; /* its shape and epilogue */
    int64_t ci, co;  /* channels of x and y */
    int64_t in[2], out[2];
    size_t ws_max;    /* scratch reserved for the workspace */
    dnn_entry **by_n; /* [max_batch + 1], filled on first use under ctx->mu */
    int64_t max_batch;
} dnn_state;

typedef struct conv_state {
    int patch;
    patch_state ps;
    int pw; /* a pointwise convolution in channels-last: one matmul */
    gemm_plan pg;
    dnn_state ds;
} conv_state;

/* ------------------------------------------------ pointwise convolutions */

/* Is environment variable name set to value? (measurement knobs) */
static int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* A 1x1 convolution of stride 1 between channels-last tensors is a matmul
 * as the tensors lie: x [N*H*W, Ci] times the weights [Co, Ci] transposed
 * gives y [N*H*W, Co], with the bias and ReLU in cuBLASLt's epilogue and a
 * residual (mobilenet's projections) as its C matrix, read in the same
 * layout. cuDNN's legacy calls ran mobilenet_v2's 17 projections at ~96
 * us each at batch 256 on an H100 (45% of the model's GPU time; a residual
 * without an activation cannot take its graph API: see dnn_prepare),
 * against ~28 us for the other convolutions. 16-bit only (fp32 and tf32
 * stay NCHW), channels a multiple of 8 (16-byte rows), no epilogue but
 * bias and residual: those ending in ReLU (resnet's) stay on cuDNN's
 * graph API, which fuses them well. The default since it ran on an H100
 * (2026-12-07 21:45, mobilenet_v2 fp16 with graphs: batch 8 11,350 vs
 * 10,410 samples/s through cuDNN, 64 15,970 vs 15,070, 256 15,980 vs
 * 15,860; parity unchanged; test_conv_pointwise checks it against cuDNN's
 * path). FERRY_CUDA_POINTWISE=cudnn keeps them on cuDNN. */
static int pointwise_ok(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const conv_attrs *a = &nd->conv;
    const graph_value *x = &p->g->values[nd->in[0]], *y = &p->g->values[nd->out[0]];
    if (env_is("FERRY_CUDA_POINTWISE", "cudnn") || nd->op != OP_CONV || a->nsp != 2 ||
        a->group != 1 || p->cdt == FERRY_F32 || nd->act != ACT_NONE)
        return 0;
    for (int i = 0; i < 2; i++)
        if (a->kernel[i] != 1 || a->strides[i] != 1 || a->dilations[i] != 1 || a->pads[i] ||
            a->pads[i + 2])
            return 0;
    int res = nd->n_in > 3 && nd->in[3] >= 0;
    return x->ndim == 4 && y->ndim == 4 && x->dims[1] % 8 == 0 && y->dims[1] % 8 == 0 &&
           y->dims[2] > 0 && y->dims[3] > 0 && cuda_value_nhwc(p->c, nd->in[0]) &&
           cuda_value_nhwc(p->c, nd->out[0]) && (!res || cuda_value_nhwc(p->c, nd->in[3]));
}

static ferry_status pointwise_prepare(cuda_prep *p, gemm_plan *gp)
{
    const graph_value *x = &p->g->values[p->nd->in[0]], *y = &p->g->values[p->nd->out[0]];
    ferry_status st =
        cuda_gemm_prepare_patch(p->c, p->ni, gp, y->dims[2] * y->dims[3], x->dims[1], y->dims[1]);
    if (st == FERRY_OK)
        p->c->n_gemms++;
    return st;
}

/* Does a convolution with this epilogue go through cuDNN's graph API?
 * Its epilogue is one of four kinds: ending in ReLU ("relu", with or
 * without bias and residual: ResNet's blocks), ending in Clip ("clip":
 * MobileNet's ReLU6), a residual without activation ("res": MobileNet's
 * projections, wrong through the graph API: see dnn_prepare) or a bias
 * alone ("bias"). FERRY_CUDNN_GRAPH=kind,kind.. names the kinds that may
 * (for measurements; "none" for no kind); FERRY_CUDNN=legacy is none,
 * FERRY_CUDNN=graph-clip adds clip to the default. A plain convolution (no
 * epilogue) always takes the legacy call. */
static int graph_epilogue_ok(int bias, int res, int act)
{
    const char *kind = act == ACT_RELU   ? "relu"
                       : act == ACT_CLIP ? "clip"
                       : act != ACT_NONE ? NULL
                       : res             ? "res"
                       : bias            ? "bias"
                                         : NULL;
    if (!kind || env_is("FERRY_CUDNN", "legacy"))
        return 0;
    const char *set = getenv("FERRY_CUDNN_GRAPH");
    if (!set || !*set)
        set = env_is("FERRY_CUDNN", "graph-clip") ? GRAPH_DEFAULT ",clip" : GRAPH_DEFAULT;
    size_t k = strlen(kind);
    for (const char *p = set; *p;) {
        size_t n = strcspn(p, ",");
        if (n == k && !strncmp(p, kind, k))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

static cudnnDataType_t dnn_dtype(ferry_dtype dt)
{
    return dt == FERRY_F16    ? CUDNN_DATA_HALF
           : dt == FERRY_BF16 ? CUDNN_DATA_BFLOAT16
                              : CUDNN_DATA_FLOAT;
}

static ferry_status tensor4(cudnnTensorDescriptor_t *d, cudnnTensorFormat_t f, cudnnDataType_t dt,
                            int64_t n, int64_t c, int64_t h, int64_t w)
{
    ferry_status st = FERRY_OK;
    if (!*d)
        DNN_TRY(cudnnCreateTensorDescriptor(d));
    DNN_TRY(cudnnSetTensor4dDescriptor(*d, f, dt, (int)n, (int)c, (int)h, (int)w));
fail:
    return st;
}

/* A packed NCDHW tensor. */
static ferry_status tensor5(cudnnTensorDescriptor_t *d, cudnnDataType_t dt, int64_t n, int64_t c,
                            int64_t dd, int64_t h, int64_t w)
{
    ferry_status st = FERRY_OK;
    int dims[5] = {(int)n, (int)c, (int)dd, (int)h, (int)w};
    if (!*d)
        DNN_TRY(cudnnCreateTensorDescriptor(d));
    DNN_TRY(cudnnSetTensorNdDescriptorEx(*d, CUDNN_TENSOR_NCHW, dt, 5, dims));
fail:
    return st;
}

/* Fills e's algorithms (descriptors set): the heuristics' choices with
 * workspace at most limit, then for Conv the implicit GEMM (no workspace)
 * as the last resort. top_ws: the largest workspace of the first n_top. */
static ferry_status choose_algo(cudnnHandle_t h, const dnn_state *ds, dnn_entry *e, size_t limit,
                                int n_top, size_t *top_ws)
{
    int got = 0, algo[CONV_ALGOS];
    cudnnStatus_t ok[CONV_ALGOS];
    size_t mem[CONV_ALGOS];
    ferry_status st = FERRY_OK;
    if (!ds->transposed) {
        cudnnConvolutionFwdAlgoPerf_t perf[CONV_ALGOS];
        DNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, e->x, ds->w, ds->conv, e->y, CONV_ALGOS,
                                                       &got, perf));
        for (int i = 0; i < got; i++)
            algo[i] = perf[i].algo, ok[i] = perf[i].status, mem[i] = perf[i].memory;
    } else {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CONV_ALGOS];
        DNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, ds->w, e->x, ds->conv, e->y,
                                                            CONV_ALGOS, &got, perf));
        for (int i = 0; i < got; i++)
            algo[i] = perf[i].algo, ok[i] = perf[i].status, mem[i] = perf[i].memory;
    }
    *top_ws = 0;
    e->n_algos = 0;
    int have_gemm = 0;
    for (int i = 0; i < got; i++) {
        if (ok[i] != CUDNN_STATUS_SUCCESS || mem[i] > limit)
            continue;
        if (e->n_algos < n_top && mem[i] > *top_ws)
            *top_ws = mem[i];
        have_gemm |= algo[i] == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        e->algo[e->n_algos] = algo[i];
        e->ws[e->n_algos++] = mem[i];
    }
    if (!ds->transposed && !have_gemm) {
        e->algo[e->n_algos] = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        e->ws[e->n_algos++] = 0;
    }
    if (!e->n_algos)
        st = ferry_fail(FERRY_EUNSUPPORTED,
                        "cuDNN has no algorithm for this convolution within %zu bytes of workspace",
                        limit);
fail:
    return st;
}

/* e->gp for batch n: the convolution with its whole epilogue in one plan
 * when cuDNN takes that (bias, residual, ReLU or Clip), else none (the
 * legacy path). Not the convolution alone with kern_bias_act after it:
 * those plans gave wrong outputs above batch 1 on an H100 (mobilenet_v2
 * and efficientnet_b0, cuDNN 9.14, 2026-12-07; cause not found), while
 * the fused ones passed parity (shufflenet, squeezenet, unet). */
static void conv_graph_plan(cudnnHandle_t h, const dnn_state *ds, int64_t n, size_t limit,
                            dnn_entry *e)
{
    dnn_conv_shape sh = ds->gs;
    sh.n = n;
    if (cuda_dnn_plan_make(h, &sh, limit, &e->gp) != FERRY_OK)
        e->gp = NULL;
}

static void entry_free(dnn_entry *e)
{
    if (!e)
        return;
    cuda_dnn_plan_free(e->gp);
    if (e->x)
        cudnnDestroyTensorDescriptor(e->x);
    if (e->y)
        cudnnDestroyTensorDescriptor(e->y);
    free(e);
}

/* A new entry for batch n; top_ws: the workspace of the heuristics' top
 * choices that fit limit. */
static ferry_status entry_make(cudnnHandle_t h, const dnn_state *ds, int64_t n, size_t limit,
                               int n_top, dnn_entry **out, size_t *top_ws)
{
    dnn_entry *e = calloc(1, sizeof *e);
    if (!e)
        return ferry_fail(FERRY_ENOMEM, "out of memory describing a convolution");
    ferry_status st = ds->nd5 ? tensor5(&e->x, ds->dt, n, ds->ci, ds->in_d, ds->in[0], ds->in[1])
                              : tensor4(&e->x, ds->fmt, ds->dt, n, ds->ci, ds->in[0], ds->in[1]);
    if (!st)
        st = ds->nd5 ? tensor5(&e->y, ds->dt, n, ds->co, ds->out_d, ds->out[0], ds->out[1])
                     : tensor4(&e->y, ds->fmt, ds->dt, n, ds->co, ds->out[0], ds->out[1]);
    if (!st)
        st = choose_algo(h, ds, e, limit, n_top, top_ws);
    if (st) {
        entry_free(e);
        return st;
    }
    if (ds->graph)
        conv_graph_plan(h, ds, n, limit, e);
    *out = e;
    return FERRY_OK;
}

/* Channels-last weights: [Co, Ci/g, kh, kw] -> [Co, kh, kw, Ci/g] in the
 * compute dtype, in a buffer of their own. */
static ferry_status transpose_weights(backend_ctx *c, const graph_value *w, void **out)
{
    int64_t co = w->dims[0], ci = w->dims[1], kh = w->dims[2], kw = w->dims[3];
    int64_t n = co * ci * kh * kw;
    float *t = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!t)
        return ferry_fail(FERRY_ENOMEM, "out of memory transposing weights '%s'", w->name);
    for (int64_t o = 0; o < co; o++)
        for (int64_t i = 0; i < ci; i++)
            for (int64_t u = 0; u < kh; u++)
                for (int64_t v = 0; v < kw; v++)
                    t[((o * kh + u) * kw + v) * ci + i] =
                        cuda_host_f32(w->dtype, w->data, ((o * ci + i) * kh + u) * kw + v);
    ferry_status st =
        cuda_dev_malloc(c->device, out, (size_t)n * c->celem, "channels-last weights");
    if (!st)
        st = cuda_upload_f32(c, *out, t, n);
    free(t);
    return st;
}

static ferry_status dnn_prepare(cuda_prep *p, dnn_state *ds)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    const conv_attrs *a = &nd->conv;
    const graph_value *x = &g->values[nd->in[0]], *y = &g->values[nd->out[0]];
    const graph_value *w = &g->values[nd->in[1]];
    backend_ctx *c = p->c;
    ferry_status st = FERRY_OK;
    int nsp = a->nsp;
    ds->transposed = nd->op == OP_CONV_TRANSPOSE;
    ds->dt = dnn_dtype(p->cdt);
    ds->ci = x->dims[1];
    ds->co = y->dims[1];
    ds->nd5 = nsp == 3;
    ds->in_d = ds->nd5 ? x->dims[2] : 1;
    ds->out_d = ds->nd5 ? y->dims[2] : 1;
    ds->in[0] = nsp >= 2 ? x->dims[x->ndim - 2] : 1;
    ds->in[1] = x->dims[x->ndim - 1];
    ds->out[0] = nsp >= 2 ? y->dims[y->ndim - 2] : 1;
    ds->out[1] = y->dims[y->ndim - 1];
    /* (D,) H, W; pad, str and dil are the last two, the 2-D paths' */
    int pad3[3] = {0, 0, 0}, str3[3] = {1, 1, 1}, dil3[3] = {1, 1, 1};
    for (int i = 0; i < nsp; i++) {
        pad3[3 - nsp + i] = (int)a->pads[i];
        str3[3 - nsp + i] = (int)a->strides[i];
        dil3[3 - nsp + i] = (int)a->dilations[i];
    }
    int *pad = pad3 + 1, *str = str3 + 1, *dil = dil3 + 1;
    ds->nhwc = cuda_value_nhwc(c, nd->out[0]);
    ds->x_nhwc = cuda_value_nhwc(c, nd->in[0]);
    ds->fmt = ds->nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    if (ds->nhwc && (st = transpose_weights(c, w, &ds->w_t)) != FERRY_OK)
        goto fail;
    DNN_TRY(cudnnCreateFilterDescriptor(&ds->w));
    /* Conv: [Co, Ci/g, kh, kw]; ConvTranspose: [Ci, Co/g, kh, kw], the
     * filter of the convolution y -> x it transposes. */
    if (ds->nd5) {
        int fd[5] = {(int)w->dims[0], (int)w->dims[1], (int)w->dims[2], (int)w->dims[3],
                     (int)w->dims[4]};
        DNN_TRY(cudnnSetFilterNdDescriptor(ds->w, ds->dt, CUDNN_TENSOR_NCHW, 5, fd));
    } else {
        DNN_TRY(cudnnSetFilter4dDescriptor(ds->w, ds->dt, ds->fmt, (int)w->dims[0], (int)w->dims[1],
                                           nsp == 2 ? (int)w->dims[2] : 1,
                                           (int)w->dims[w->ndim - 1]));
    }
    DNN_TRY(cudnnCreateConvolutionDescriptor(&ds->conv));
    if (ds->nd5)
        DNN_TRY(cudnnSetConvolutionNdDescriptor(ds->conv, 3, pad3, str3, dil3,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    else
        DNN_TRY(cudnnSetConvolution2dDescriptor(ds->conv, pad[0], pad[1], str[0], str[1], dil[0],
                                                dil[1], CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_TRY(cudnnSetConvolutionGroupCount(ds->conv, (int)a->group));
    /* fp32: no TF32 (FMA math); tf32: the default, which allows it;
     * 16-bit: tensor cores, never a down-conversion. */
    cudnnMathType_t math = c->o.precision == FERRY_PRECISION_FP32   ? CUDNN_FMA_MATH
                           : c->o.precision == FERRY_PRECISION_TF32 ? CUDNN_DEFAULT_MATH
                                                                    : CUDNN_TENSOR_OP_MATH;
    DNN_TRY(cudnnSetConvolutionMathType(ds->conv, math));
    int has_bias = nd->n_in > 2 && nd->in[2] >= 0;
    ds->has_bias = has_bias;
    ds->has_res = !ds->transposed && nd->n_in > 3 && nd->in[3] >= 0;
    ds->fused = !ds->transposed && !ds->nd5 && nd->act == ACT_RELU && has_bias;
    /* The graph API where it applies (graph_epilogue_ok; FERRY_CUDNN=
     * legacy: never): a convolution of one group with a bias or ReLU
     * epilogue, never in fp32, which the legacy API keeps off TF32 (FMA
     * math). On an H100 with cuDNN 9.14 three forms gave wrong outputs above
     * batch 1 (relative error ~0.9 at batch 3 and 32; cause not found):
     * grouped convolutions (depthwise: mobilenet_v2/v3, shufflenet; 13:06
     * UTC), plans of the convolution alone (conv_graph_plan), and a residual
     * without an activation after it (mobilenet_v2's projections, found by
     * bench/gpu/run_conv_diag.sh at 16:02 UTC: bias-only and ReLU-ending
     * epilogues were right, residual-only ones 0.92 off), so those take the
     * legacy calls. A Clip (ReLU6) epilogue stays opt-in
     * (FERRY_CUDNN=graph-clip): not faster on mobilenet_v2. */
    ds->graph = !ds->transposed && !ds->nd5 && c->o.precision != FERRY_PRECISION_FP32 &&
                a->group == 1 && graph_epilogue_ok(has_bias, ds->has_res, nd->act);
    if (ds->graph) {
        dnn_conv_shape *gs = &ds->gs;
        *gs = (dnn_conv_shape){.dt = ds->dt,
                               .nhwc = ds->nhwc,
                               .ci = ds->ci,
                               .co = ds->co,
                               .group = a->group,
                               .bias = has_bias,
                               .res = ds->has_res,
                               .relu = nd->act == ACT_RELU,
                               .clip = nd->act == ACT_CLIP,
                               .lo = nd->act_alpha,
                               .hi = nd->act_beta};
        for (int i = 0; i < 2; i++) {
            gs->in[i] = ds->in[i], gs->out[i] = ds->out[i], gs->k[i] = 1;
            gs->pad[i] = pad[i], gs->str[i] = str[i], gs->dil[i] = dil[i];
        }
        for (int i = 0; i < nsp; i++)
            gs->k[2 - nsp + i] = a->kernel[i];
    }
    if (ds->fused) {
        DNN_TRY(cudnnCreateTensorDescriptor(&ds->bias));
        DNN_TRY(cudnnSetTensor4dDescriptor(ds->bias, ds->fmt, ds->dt, 1, (int)ds->co, 1, 1));
        DNN_TRY(cudnnCreateActivationDescriptor(&ds->relu));
        DNN_TRY(cudnnSetActivationDescriptor(ds->relu, CUDNN_ACTIVATION_RELU,
                                             CUDNN_NOT_PROPAGATE_NAN, 0.0));
    }
    ds->max_batch = p->max_batch;
    ds->by_n = calloc((size_t)p->max_batch + 1, sizeof *ds->by_n);
    if (!ds->by_n)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
    /* The workspace: what the heuristics' top choices ask at max_batch. */
    if (!c->dnn) {
        cudnnHandle_t h = NULL;
        DNN_TRY(cudnnCreate(&h));
        c->dnn = h;
    }
    /* Timed (opt-in): room for every candidate within the cap, since the
     * fastest on the device may be any; the entries, max_batch's too, are
     * made on first use, where the tensors to time them on exist. */
    ds->find = !ds->transposed && !ds->graph && env_is("FERRY_CUDNN_FIND", "1");
    /* A depthwise layer (one channel a group, channels-last, 2-D) through
     * our kernel (kernels_image.cu says why), where its 32-bit indices
     * hold at max_batch: mobilenet_v2 fp16 on an H100 2.0-2.4x faster at
     * batch 8-256 than through cuDNN (2026-12-07 15:50 UTC), right at batch
     * 3 (run_conv_diag.sh). FERRY_CUDA_DEPTHWISE=cudnn turns it off. */
    int64_t big = p->max_batch *
                  (ds->in[0] * ds->in[1] > ds->out[0] * ds->out[1] ? ds->in[0] * ds->in[1]
                                                                   : ds->out[0] * ds->out[1]) *
                  ds->co;
    ds->dw = !ds->transposed && nsp == 2 && ds->nhwc && a->group == ds->ci && ds->co == ds->ci &&
             big < ((int64_t)1 << 30) && !env_is("FERRY_CUDA_DEPTHWISE", "cudnn");
    if (ds->dw)
        ds->dwd = (kern_dwconv){.h = (int)ds->in[0],
                                .w = (int)ds->in[1],
                                .oh = (int)ds->out[0],
                                .ow = (int)ds->out[1],
                                .ch = (int)ds->co,
                                .kh = (int)a->kernel[0],
                                .kw = (int)a->kernel[1],
                                .sh = str[0],
                                .sw = str[1],
                                .ph = pad[0],
                                .pw = pad[1],
                                .dh = dil[0],
                                .dw = dil[1],
                                .act = (int)nd->act,
                                .p = nd->act_alpha,
                                .q = nd->act_beta};
    dnn_entry *e = NULL;
    size_t top = 0;
    st = entry_make((cudnnHandle_t)c->dnn, ds, p->max_batch, CONV_WS_CAP, ds->find ? CONV_ALGOS : 3,
                    &e, &top);
    if (st)
        goto fail;
    ds->ws_max = top;
    if (e->gp && cuda_dnn_plan_workspace(e->gp) > ds->ws_max)
        ds->ws_max = cuda_dnn_plan_workspace(e->gp);
    int kept = 0; /* the later choices that need more than the first three stay out */
    for (int i = 0; i < e->n_algos; i++)
        if (e->ws[i] <= top) {
            e->algo[kept] = e->algo[i];
            e->ws[kept++] = e->ws[i];
        }
    e->n_algos = kept;
    if (ds->find)
        entry_free(e);
    else
        ds->by_n[p->max_batch] = e;
    p->scratch = ds->ws_max;
    if (ds->x_nhwc != ds->nhwc) {
        ds->x_off = (ds->ws_max + 255) & ~(size_t)255;
        p->scratch = ds->x_off + (size_t)(p->max_batch * ds->ci * ds->in[0] * ds->in[1]) * c->celem;
    }
    c->n_dnn++;
    return FERRY_OK;
fail:
    return ferry_fail_prefix(st, "node '%s' (%s)", nd->name, op_name(nd->op));
}

/* Reorders e's algorithms by their time on this device: cuDNN runs each
 * candidate on the forward's own x and w into y (written again right
 * after) with the node's workspace, on the stream, synchronously (PyTorch's
 * cudnn.benchmark). Only on a plain forward (the engine runs one before it
 * captures), and not where y shares its buffer with the residual that the
 * timing runs would overwrite; the heuristics' order stays if it fails. */
static void time_algos(const cuda_call *c, const dnn_state *ds, dnn_entry *e, const void *x,
                       const void *w, const void *res)
{
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone ||
        res == c->out[0])
        return;
    cudnnConvolutionFwdAlgoPerf_t perf[CONV_ALGOS];
    int got = 0, n = 0, have_gemm = 0;
    if (cudnnFindConvolutionForwardAlgorithmEx(c->s->dnn, e->x, x, ds->w, w, ds->conv, e->y,
                                               c->out[0], CONV_ALGOS, &got, perf, c->scratch,
                                               ds->ws_max) != CUDNN_STATUS_SUCCESS)
        return;
    for (int i = 0; i < got && n < CONV_ALGOS; i++) /* fastest first */
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ds->ws_max) {
            have_gemm |= perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
            e->algo[n] = perf[i].algo;
            e->ws[n++] = perf[i].memory;
        }
    if (!n)
        return;
    if (!have_gemm) {
        e->algo[n] = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        e->ws[n++] = 0;
    }
    e->n_algos = n;
}

/* Batch n's entry: cached, else made now (first forward at n; timed on x
 * and w when ds->find) and published for lock-free readers. */
static ferry_status dnn_entry_for(const cuda_call *c, dnn_state *ds, const void *x, const void *w,
                                  const void *res, dnn_entry **out)
{
    dnn_entry *e = __atomic_load_n(&ds->by_n[c->n], __ATOMIC_ACQUIRE);
    if (e) {
        *out = e;
        return FERRY_OK;
    }
    ferry_status st = FERRY_OK;
    pthread_mutex_lock(&c->c->mu);
    e = ds->by_n[c->n];
    if (!e) {
        size_t top;
        st = entry_make((cudnnHandle_t)c->s->dnn, ds, c->n, ds->ws_max, CONV_ALGOS, &e, &top);
        if (!st && ds->find)
            time_algos(c, ds, e, x, w, res);
        if (!st)
            __atomic_store_n(&ds->by_n[c->n], e, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&c->c->mu);
    *out = e;
    return st;
}

/* The convolution through the legacy calls, the heuristics' algorithms in
 * order until one runs; *done when the fused call did the epilogue too. */
static ferry_status legacy_run(const cuda_call *c, const dnn_state *ds, dnn_entry *e, const void *x,
                               const void *w, const void *bias, const void *res, int *done)
{
    const graph_node *nd = c->nd;
    cudnnHandle_t h = c->s->dnn;
    const float one = 1.0f, zero = 0.0f;
    ferry_status st = FERRY_OK;
    for (;;) {
        int k = __atomic_load_n(&e->pick, __ATOMIC_RELAXED);
        if (k >= e->n_algos)
            return ferry_fail(FERRY_EDEVICE,
                              "node '%s' (%s): cuDNN refused every algorithm its heuristics gave",
                              nd->name, op_name(nd->op));
        cudnnStatus_t r;
        if (ds->fused && !__atomic_load_n(&e->unfused, __ATOMIC_RELAXED)) {
            const float a2 = res ? 1.0f : 0.0f;
            r = cudnnConvolutionBiasActivationForward(
                h, &one, e->x, x, ds->w, w, ds->conv, (cudnnConvolutionFwdAlgo_t)e->algo[k],
                c->scratch, e->ws[k], &a2, e->y, res ? res : c->out[0], ds->bias, bias, ds->relu,
                e->y, c->out[0]);
            if (r == CUDNN_STATUS_SUCCESS) {
                *done = 1;
                return FERRY_OK;
            }
            if (r != CUDNN_STATUS_NOT_SUPPORTED && r != CUDNN_STATUS_BAD_PARAM)
                return DNN(r);
            /* no fused form here: conv + epilogue from now on */
            __atomic_store_n(&e->unfused, 1, __ATOMIC_RELAXED);
        }
        if (!ds->transposed)
            r = cudnnConvolutionForward(h, &one, e->x, x, ds->w, w, ds->conv,
                                        (cudnnConvolutionFwdAlgo_t)e->algo[k], c->scratch, e->ws[k],
                                        &zero, e->y, c->out[0]);
        else
            r = cudnnConvolutionBackwardData(h, &one, ds->w, w, e->x, x, ds->conv,
                                             (cudnnConvolutionBwdDataAlgo_t)e->algo[k], c->scratch,
                                             e->ws[k], &zero, e->y, c->out[0]);
        if (r != CUDNN_STATUS_NOT_SUPPORTED && r != CUDNN_STATUS_BAD_PARAM) {
            st = DNN(r);
            break;
        }
        int next = k + 1;
        __atomic_compare_exchange_n(&e->pick, &k, next, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    return st;
}

static ferry_status dnn_run(const cuda_call *c, dnn_state *ds)
{
    const graph_node *nd = c->nd;
    cudnnHandle_t h = c->s->dnn;
    if (!h)
        return ferry_fail(FERRY_EINTERNAL, "node '%s': the stream has no cuDNN handle", nd->name);
    ferry_status st = FERRY_OK;
    const void *x = c->in[0], *w = ds->w_t ? ds->w_t : c->in[1];
    if (ds->x_nhwc != ds->nhwc) {
        /* x arrives in the other layout: transpose it into scratch */
        int64_t C = ds->ci, H = ds->in[0], W = ds->in[1];
        int64_t to_nhwc_d[4] = {c->n, H, W, C}, to_nhwc_s[4] = {C * H * W, W, 1, H * W};
        int64_t to_nchw_d[4] = {c->n, C, H, W}, to_nchw_s[4] = {H * W * C, 1, W * C, C};
        char *xt = (char *)c->scratch + ds->x_off;
        st = cuda_copy_dense(c, x, xt, 4, ds->nhwc ? to_nhwc_d : to_nchw_d,
                             ds->nhwc ? to_nhwc_s : to_nchw_s, ferry_dtype_size(c->cdt));
        if (st)
            return st;
        x = xt;
    }
    const void *bias = ds->has_bias ? c->in[2] : NULL;
    const void *res = ds->has_res ? c->in[3] : NULL;
    if (ds->dw)
        return CUDA_LAUNCH(
            c, kern_dwconv_run(x, w, bias, res, c->out[0], &ds->dwd, c->n, c->cdt, c->stream));
    dnn_entry *e;
    if ((st = dnn_entry_for(c, ds, x, w, res, &e)) != FERRY_OK)
        return st;
    if (e->gp)
        return cuda_dnn_plan_run(h, e->gp, x, w, c->out[0], bias, res, c->scratch);
    int done = 0;
    st = legacy_run(c, ds, e, x, w, bias, res, &done);
    if (st || done)
        return st;
    if (!bias && !res && nd->act == ACT_NONE)
        return FERRY_OK;
    int64_t hw = ds->out_d * ds->out[0] * ds->out[1], ny = c->n * ds->co * hw;
    return CUDA_LAUNCH(c,
                       kern_bias_act(c->out[0], bias, res, c->out[0], ny, ds->co, ds->nhwc ? 1 : hw,
                                     (int)nd->act, nd->act_alpha, nd->act_beta, c->cdt, c->stream));
}

static void dnn_release(dnn_state *ds)
{
    if (ds->by_n)
        for (int64_t i = 0; i <= ds->max_batch; i++)
            entry_free(ds->by_n[i]);
    free(ds->by_n);
    if (ds->w)
        cudnnDestroyFilterDescriptor(ds->w);
    if (ds->conv)
        cudnnDestroyConvolutionDescriptor(ds->conv);
    if (ds->bias)
        cudnnDestroyTensorDescriptor(ds->bias);
    if (ds->relu)
        cudnnDestroyActivationDescriptor(ds->relu);
    if (ds->w_t)
        cudaFree(ds->w_t);
}

void cuda_dnn_ctx_release(backend_ctx *c)
{
    if (c->dnn)
        cudnnDestroy((cudnnHandle_t)c->dnn);
    c->dnn = NULL;
}

int cuda_conv_nhwc_capable(const graph *g, const graph_node *nd)
{
    const graph_value *w = nd->n_in > 1 && nd->in[1] >= 0 ? &g->values[nd->in[1]] : NULL;
    return nd->op == OP_CONV && nd->conv.nsp == 2 && patch_refusal(nd) && w && w->is_const &&
           w->data && w->ndim == 4;
}

/* ------------------------------------------------------ the rows */

static ferry_status supports_conv(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const conv_attrs *a = &nd->conv;
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    if (nd->in[1] < 0 || !p->g->values[nd->in[1]].is_const)
        return cuda_unsupported(nd, "weights must be a constant");
    if (!patch_refusal(p->nd))
        return FERRY_OK;
    if (a->nsp < 1 || a->nsp > 3)
        return cuda_unsupported(nd, "only 1-D, 2-D and 3-D convolutions are supported");
    int r = p->g->values[nd->in[0]].ndim;
    if (r != a->nsp + 2 || p->g->values[nd->in[1]].ndim != r)
        return cuda_unsupported(nd, "input of rank %d, weights of rank %d for %d spatial dims", r,
                                p->g->values[nd->in[1]].ndim, a->nsp);
    for (int i = 0; i < a->nsp; i++) {
        int64_t pb = a->pads[i], pe = a->pads[i + a->nsp];
        if (nd->op == OP_CONV && pb != pe)
            return cuda_unsupported(nd, "asymmetric pads (%" PRId64 ", %" PRId64 ") in dim %d", pb,
                                    pe, i);
        /* ConvTranspose: pe < pb is an output padding cuDNN takes from the
         * output's dims, below the stride. */
        int64_t extra = a->out_pad[i] + pb - pe;
        if (nd->op == OP_CONV_TRANSPOSE && (extra < 0 || extra >= a->strides[i]))
            return cuda_unsupported(
                nd, "pads (%" PRId64 ", %" PRId64 ") with output_padding %" PRId64 " in dim %d", pb,
                pe, a->out_pad[i], i);
    }
    if (nd->op == OP_CONV_TRANSPOSE && nd->act != ACT_NONE)
        return cuda_unsupported(nd, "a fused activation on a ConvTranspose");
    return FERRY_OK;
}

static ferry_status prepare_conv(cuda_prep *p, void **state)
{
    conv_state *cs = calloc(1, sizeof *cs);
    if (!cs)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", p->nd->name);
    cs->patch = !patch_refusal(p->nd);
    cs->pw = !cs->patch && pointwise_ok(p);
    ferry_status st = cs->patch ? patch_prepare(p, &cs->ps)
                      : cs->pw  ? pointwise_prepare(p, &cs->pg)
                                : dnn_prepare(p, &cs->ds);
    if (st) {
        if (!cs->patch && !cs->pw)
            dnn_release(&cs->ds);
        free(cs);
        return st;
    }
    *state = cs;
    return FERRY_OK;
}

static ferry_status run_conv(const cuda_call *c)
{
    conv_state *cs = c->state;
    if (cs->pw)
        return cuda_gemm_run_ptrs(c->s, &cs->pg, c->n, c->in[0], c->in[1], c->out[0]);
    return cs->patch ? patch_run(c, &cs->ps) : dnn_run(c, &cs->ds);
}

static void destroy_conv(void *state)
{
    conv_state *cs = state;
    if (!cs)
        return;
    if (cs->patch)
        cuda_gemm_release(&cs->ps.gp);
    else if (cs->pw)
        cuda_gemm_release(&cs->pg);
    else
        dnn_release(&cs->ds);
    free(cs);
}

const cuda_op_impl cuda_conv_row = {supports_conv, prepare_conv, run_conv, destroy_conv};
