/*
 * cuda_dnn_graph.c - convolutions through cuDNN's graph (backend) API.
 *
 * Why not only the legacy calls: cuDNN 9's cudnnConvolutionForward and
 * cudnnConvolutionBiasActivationForward reach the kernels behind the
 * legacy algorithm enum. On an H100, ResNet-50 in fp16 ran its 3x3
 * convolutions at ~35 TFLOP/s through them (FERRY_CUDA_PROFILE: 2.4 ms a
 * convolution at batch 256, 94% of the forward), a third of PyTorch's
 * speed on the same library; timing the legacy candidates did not move it.
 * PyTorch reaches cuDNN through this API: an operation graph lets cuDNN's
 * heuristics choose among all its engines (Hopper's tensor-core kernels,
 * runtime-fused epilogues), and lets the epilogue run in the convolution's
 * own kernel instead of a second pass over the output.
 *
 * One graph per convolution and batch size:
 *
 *     y0 = conv(x, w)        fp32, virtual (never stored)
 *     y1 = y0 + bias         when there is a bias
 *     y2 = y1 + z            when a residual was fused (graph_fuse_conv)
 *     y  = relu(y2)          when the activation is ReLU; clip(y2, lo, hi)
 *                            when it is a Clip (ReLU6)
 *
 * the last of them stored in the tensor dtype. Heuristics mode A ranks the
 * engine configurations; the first whose execution plan finalizes with a
 * workspace within the limit is kept. Plans are built on the host (a
 * runtime-fused engine compiles its kernel then, once) and run with
 * cudnnBackendExecute on the stream's handle: nothing allocates or syncs,
 * so CUDA graphs capture it. A shape no engine takes returns
 * FERRY_EUNSUPPORTED, and cuda_conv.c runs the legacy path instead.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "backend/cuda/cuda_dnn_graph.h"
#include "util/error.h"

/* Engine configurations tried per graph, best ranked first. */
#define HEUR_CONFIGS 8
/* Descriptors one plan keeps: 5 tensors, 3 virtual, conv, 3 pointwise
 * descriptors and 4 operations, the graph, the engine configuration. */
#define PLAN_KEEP 24

/* UIDs of the tensors a variant pack binds (virtual ones from 100). */
enum { UID_X = 1, UID_W, UID_Y, UID_B, UID_Z };

struct dnn_plan {
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t keep[PLAN_KEEP]; /* what the plan was built from */
    int n_keep;
    size_t ws;
    int bias, res; /* the variant pack binds UID_B, UID_Z */
};

typedef cudnnBackendDescriptor_t bdesc;

/* Failures here mean "not this way": they are not reported to the user,
 * only returned, and the legacy path takes over. */
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != CUDNN_STATUS_SUCCESS)                                                        \
            goto fail;                                                                             \
    } while (0)

static bdesc keep(dnn_plan *p, cudnnBackendDescriptorType_t type)
{
    bdesc d = NULL;
    if (p->n_keep >= PLAN_KEEP || cudnnBackendCreateDescriptor(type, &d) != CUDNN_STATUS_SUCCESS)
        return NULL;
    p->keep[p->n_keep++] = d;
    return d;
}

static bdesc tensor(dnn_plan *p, int64_t uid, cudnnDataType_t dt, const int64_t dims[4],
                    const int64_t strides[4], int is_virtual)
{
    bdesc t = keep(p, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t align = 16;
    bool virt = is_virtual != 0;
    if (!t)
        return NULL;
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
    TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt));
    TRY(cudnnBackendFinalize(t));
    return t;
fail:
    return NULL;
}

/* Strides of a [d0, d1, d2, d3] = [N, C, H, W] tensor, channels last or not. */
static void strides_of(const int64_t d[4], int nhwc, int64_t s[4])
{
    if (nhwc) {
        s[1] = 1, s[3] = d[1], s[2] = d[3] * d[1], s[0] = d[2] * d[3] * d[1];
    } else {
        s[3] = 1, s[2] = d[3], s[1] = d[2] * d[3], s[0] = d[1] * d[2] * d[3];
    }
}

static bdesc conv_op(dnn_plan *p, const dnn_conv_shape *s, bdesc x, bdesc w, bdesc y)
{
    bdesc cd = keep(p, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    bdesc op = keep(p, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t nsp = 2;
    float alpha = 1.0f, beta = 0.0f;
    if (!cd || !op)
        return NULL;
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1,
                                 &comp));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE,
                                 1, &mode));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1,
                                 &nsp));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2,
                                 s->dil));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2,
                                 s->str));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2,
                                 s->pad));
    TRY(cudnnBackendSetAttribute(cd, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2,
                                 s->pad));
    TRY(cudnnBackendFinalize(cd));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                                 CUDNN_TYPE_FLOAT, 1, &alpha));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
                                 CUDNN_TYPE_FLOAT, 1, &beta));
    TRY(cudnnBackendFinalize(op));
    return op;
fail:
    return NULL;
}

/* y = x + b (b NULL: y = relu(x), or with clip min(max(x, lo), hi)), fp32
 * arithmetic. */
static bdesc pointwise_op(dnn_plan *p, bdesc x, bdesc b, bdesc y, const dnn_conv_shape *s)
{
    bdesc pw = keep(p, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    bdesc op = keep(p, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    cudnnPointwiseMode_t mode = b ? CUDNN_POINTWISE_ADD : CUDNN_POINTWISE_RELU_FWD;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    if (!pw || !op)
        return NULL;
    TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1,
                                 &mode));
    TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1,
                                 &prec));
    if (!b && s->clip) {
        TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_FLOAT, 1,
                                     &s->lo));
        TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_FLOAT, 1,
                                     &s->hi));
    }
    TRY(cudnnBackendFinalize(pw));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
    if (b)
        TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b));
    TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
    TRY(cudnnBackendFinalize(op));
    return op;
fail:
    return NULL;
}

/* The operation graph of s: its operations in order into ops, their
 * count returned (0: a descriptor was refused). */
static int build_ops(dnn_plan *p, const dnn_conv_shape *s, bdesc ops[4])
{
    int64_t xd[4] = {s->n, s->ci, s->in[0], s->in[1]};
    int64_t yd[4] = {s->n, s->co, s->out[0], s->out[1]};
    int64_t wd[4] = {s->co, s->ci / s->group, s->k[0], s->k[1]};
    int64_t bd[4] = {1, s->co, 1, 1};
    int64_t xs[4], ys[4], ws[4], bs[4];
    strides_of(xd, s->nhwc, xs);
    strides_of(yd, s->nhwc, ys);
    strides_of(wd, s->nhwc, ws);
    strides_of(bd, s->nhwc, bs);
    int n_epi = !!s->bias + !!s->res + !!(s->relu || s->clip);
    bdesc x = tensor(p, UID_X, s->dt, xd, xs, 0);
    bdesc w = tensor(p, UID_W, s->dt, wd, ws, 0);
    /* each step's output: virtual fp32 until the last, stored */
    bdesc cur = tensor(p, n_epi ? 100 : UID_Y, n_epi ? CUDNN_DATA_FLOAT : s->dt, yd, ys, n_epi);
    if (!x || !w || !cur || !(ops[0] = conv_op(p, s, x, w, cur)))
        return 0;
    int n = 1;
    int64_t next_uid = 101;
    for (int step = 0; step < 3; step++) {
        int on = step == 0 ? s->bias : step == 1 ? s->res : s->relu || s->clip;
        if (!on)
            continue;
        int last = --n_epi == 0;
        bdesc out =
            tensor(p, last ? UID_Y : next_uid++, last ? s->dt : CUDNN_DATA_FLOAT, yd, ys, !last);
        bdesc b = step == 0   ? tensor(p, UID_B, s->dt, bd, bs, 0)
                  : step == 1 ? tensor(p, UID_Z, s->dt, yd, ys, 0)
                              : NULL;
        if (!out || (step < 2 && !b) || !(ops[n] = pointwise_op(p, cur, b, out, s)))
            return 0;
        n++;
        cur = out;
    }
    return n;
}

/* cudnnBackend*'s handle attributes are marked deprecated from 9.x in
 * favour of a device-properties descriptor that older 9.x libraries (the
 * GPU machine has 9.14) lack; the handle form works in every 9.x. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* The first engine configuration whose plan finalizes within ws_limit. */
static int choose_plan(dnn_plan *p, cudnnHandle_t h, bdesc graph, size_t ws_limit)
{
    bdesc heur = keep(p, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    bdesc cfg[HEUR_CONFIGS] = {0};
    int64_t got = 0;
    int ok = 0;
    if (!heur)
        return 0;
    TRY(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
    TRY(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    TRY(cudnnBackendFinalize(heur));
    for (int i = 0; i < HEUR_CONFIGS; i++)
        TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg[i]));
    TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 HEUR_CONFIGS, &got, cfg));
    for (int64_t i = 0; i < got && i < HEUR_CONFIGS && !ok; i++) {
        bdesc plan = NULL;
        int64_t ws = 0;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan))
            break;
        ok = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                      &h) == CUDNN_STATUS_SUCCESS &&
             cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                      &cfg[i]) == CUDNN_STATUS_SUCCESS &&
             cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS &&
             cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                      CUDNN_TYPE_INT64, 1, NULL, &ws) == CUDNN_STATUS_SUCCESS &&
             ws >= 0 && (size_t)ws <= ws_limit;
        if (ok) {
            p->plan = plan;
            p->ws = (size_t)ws;
        } else {
            cudnnBackendDestroyDescriptor(plan);
        }
    }
fail:
    for (int i = 0; i < HEUR_CONFIGS; i++)
        if (cfg[i])
            cudnnBackendDestroyDescriptor(cfg[i]);
    return ok;
}

ferry_status cuda_dnn_plan_make(cudnnHandle_t h, const dnn_conv_shape *s, size_t ws_limit,
                                dnn_plan **out)
{
    *out = NULL;
    dnn_plan *p = calloc(1, sizeof *p);
    if (!p)
        return ferry_fail(FERRY_ENOMEM, "out of memory planning a convolution");
    bdesc ops[4];
    int n_ops = build_ops(p, s, ops);
    bdesc graph = n_ops ? keep(p, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR) : NULL;
    if (!graph)
        goto fail;
    TRY(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops));
    TRY(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                 &h));
    TRY(cudnnBackendFinalize(graph));
    if (!choose_plan(p, h, graph, ws_limit))
        goto fail;
    p->bias = s->bias;
    p->res = s->res;
    *out = p;
    return FERRY_OK;
fail:
    cuda_dnn_plan_free(p);
    return FERRY_EUNSUPPORTED;
}

#pragma GCC diagnostic pop

size_t cuda_dnn_plan_workspace(const dnn_plan *p)
{
    return p->ws;
}

ferry_status cuda_dnn_plan_run(cudnnHandle_t h, const dnn_plan *p, const void *x, const void *w,
                               void *y, const void *bias, const void *res, void *ws)
{
    int64_t uids[5] = {UID_X, UID_W, UID_Y};
    void *ptrs[5] = {(void *)x, (void *)w, y};
    int64_t n = 3;
    if (p->bias)
        uids[n] = UID_B, ptrs[n++] = (void *)bias;
    if (p->res)
        uids[n] = UID_Z, ptrs[n++] = (void *)res;
    bdesc vp = NULL;
    cudnnStatus_t r = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (!r)
        r = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n,
                                     uids);
    if (!r)
        r = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                                     n, ptrs);
    if (!r)
        r = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                     &ws);
    if (!r)
        r = cudnnBackendFinalize(vp);
    if (!r)
        r = cudnnBackendExecute(h, p->plan, vp);
    if (vp)
        cudnnBackendDestroyDescriptor(vp);
    if (r)
        return ferry_fail(FERRY_EDEVICE, "cuDNN: executing a convolution plan failed: %s",
                          cudnnGetErrorString(r));
    return FERRY_OK;
}

void cuda_dnn_plan_free(dnn_plan *p)
{
    if (!p)
        return;
    if (p->plan)
        cudnnBackendDestroyDescriptor(p->plan);
    for (int i = p->n_keep - 1; i >= 0; i--)
        cudnnBackendDestroyDescriptor(p->keep[i]);
    free(p);
}
