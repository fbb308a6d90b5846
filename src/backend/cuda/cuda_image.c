/*
 * cuda_image.c - run-table rows (cuda_ops.h) of the image operators around
 * the convolutions: MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool, Pad, Resize, GridSample, DepthToSpace, and the
 * activations graph_fuse_conv folds into a Conv when they stand alone
 * (Clip, HardSigmoid, HardSwish).
 * Kernels: kernels_image.cu (why not cuDNN: its head comment), the global
 * pools through kernels_rows.cu's reductions. Pools read and write
 * channels-last when cuda_layout.c holds their tensors so.
 */
#include <inttypes.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

_Static_assert((int)KERN_PAD_REFLECT == (int)PAD_REFLECT && (int)KERN_PAD_EDGE == (int)PAD_EDGE &&
                   (int)KERN_PAD_WRAP == (int)PAD_WRAP,
               "kernels.h's pad modes follow graph.h's");
_Static_assert((int)KERN_COORD_ASYMMETRIC == (int)RESIZE_ASYMMETRIC &&
                   (int)KERN_COORD_HALF_PIXEL_SYMMETRIC == (int)RESIZE_HALF_PIXEL_SYMMETRIC &&
                   (int)KERN_NEAREST_CEIL == (int)NEAREST_CEIL,
               "kernels.h's resize modes follow graph.h's");

static int in_shape(const cuda_call *c, int k, int64_t *d)
{
    return graph_value_shape(&c->g->values[c->nd->in[k]], c->n, d);
}

static int out_shape(const cuda_call *c, int64_t *d)
{
    return graph_value_shape(&c->g->values[c->nd->out[0]], c->n, d);
}

/* ------------------------------------------------------------ pooling */

static ferry_status supports_pool(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    int r = p->g->values[p->nd->in[0]].ndim;
    if (r < 3 || r > 5)
        return cuda_unsupported(p->nd, "only 1-D, 2-D and 3-D pooling is supported");
    if (p->nd->n_out > 1 && p->nd->out[1] >= 0)
        return cuda_unsupported(p->nd, "MaxPool's Indices output is not supported");
    return FERRY_OK;
}

static ferry_status run_pool(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    const conv_attrs *a = &nd->conv;
    int64_t xd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    int r = in_shape(c, 0, xd);
    out_shape(c, yd);
    int nsp = r - 2, off = 3 - nsp;
    kern_pool d;
    for (int i = 0; i < 3; i++) {
        d.in[i] = d.out[i] = d.kernel[i] = d.stride[i] = d.dil[i] = 1;
        d.pad[i] = d.pad_end[i] = 0;
    }
    for (int i = 0; i < nsp; i++) {
        d.in[off + i] = xd[2 + i];
        d.out[off + i] = yd[2 + i];
        d.kernel[off + i] = a->kernel[i];
        d.stride[off + i] = a->strides[i];
        d.dil[off + i] = a->dilations[i] > 0 ? a->dilations[i] : 1;
        d.pad[off + i] = a->pads[i];
        d.pad_end[off + i] = a->pads[i + nsp];
    }
    d.is_max = nd->op == OP_MAX_POOL;
    d.count_include_pad = a->count_include_pad;
    d.nhwc = cuda_value_nhwc(c->c, nd->in[0]); /* a neutral output reads the same */
    d.ch = xd[1];
    return CUDA_LAUNCH(c, kern_pool_run(c->in[0], c->out[0], &d, xd[0] * xd[1], c->cdt, c->stream));
}

/* Global pools: a reduction of [N*C, spatial] over its rows. */
static ferry_status run_global_pool(const cuda_call *c)
{
    int64_t xd[FERRY_MAX_DIMS];
    int r = in_shape(c, 0, xd);
    int64_t sp = 1;
    for (int i = 2; i < r; i++)
        sp *= xd[i];
    kern_reduce rd;
    memset(&rd, 0, sizeof rd);
    rd.nk = rd.nr = 1;
    rd.kdims[0] = rd.n_out = xd[0] * xd[1];
    rd.kstride[0] = sp;
    rd.rdims[0] = rd.n_red = sp;
    rd.rstride[0] = 1;
    if (cuda_value_nhwc(c->c, c->nd->in[0])) { /* [N, sp, C]: keep N and C */
        rd.nk = 2;
        rd.kdims[0] = xd[0], rd.kstride[0] = sp * xd[1];
        rd.kdims[1] = xd[1], rd.kstride[1] = 1;
        rd.rstride[0] = xd[1];
    }
    if (c->nd->op == OP_GLOBAL_AVG_POOL)
        return CUDA_LAUNCH(c, kern_reduce_mean(c->in[0], c->out[0], &rd, c->cdt, c->stream));
    return CUDA_LAUNCH(c, kern_reduce_any(KR_MAX, c->in[0], c->out[0], &rd, c->cdt, c->stream));
}

/* ------------------------------------------------------------ Pad */

static ferry_status supports_pad(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    if (p->g->values[p->nd->in[0]].ndim > KERN_MAX_DIMS)
        return cuda_unsupported(p->nd, "rank above %d", KERN_MAX_DIMS);
    return FERRY_OK;
}

static ferry_status run_pad(const cuda_call *c)
{
    kern_pad d;
    memset(&d, 0, sizeof d);
    d.ndim = in_shape(c, 0, d.in);
    out_shape(c, d.out);
    d.mode = c->nd->mode;
    d.n = 1;
    int64_t acc = 1;
    for (int k = d.ndim - 1; k >= 0; k--) {
        d.xs[k] = acc;
        acc *= d.in[k];
        d.n *= d.out[k];
        d.begin[k] = c->nd->starts[k];
    }
    return CUDA_LAUNCH(c, kern_pad_run(c->in[0], c->out[0], &d, c->nd->alpha, c->cdt, c->stream));
}

/* ------------------------------------------------------------ Resize */

static ferry_status supports_resize(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    const graph_node *nd = p->nd;
    if (nd->mode != RESIZE_NEAREST && nd->mode != RESIZE_LINEAR)
        return cuda_unsupported(nd, "cubic Resize is not supported");
    const graph_value *x = &p->g->values[nd->in[0]], *y = &p->g->values[nd->out[0]];
    if (x->ndim > KERN_MAX_DIMS)
        return cuda_unsupported(nd, "rank above %d", KERN_MAX_DIMS);
    int lin = 0;
    for (int k = 0; k < x->ndim; k++)
        lin += x->dims[k] != y->dims[k] || nd->scales[k] != 1.0f;
    if (nd->mode == RESIZE_LINEAR && lin > 4)
        return cuda_unsupported(nd, "linear Resize over more than 4 dims");
    return FERRY_OK;
}

static ferry_status run_resize(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    kern_resize d;
    memset(&d, 0, sizeof d);
    d.ndim = in_shape(c, 0, d.in);
    out_shape(c, d.out);
    d.linear = nd->mode == RESIZE_LINEAR;
    d.coord = nd->mode2;
    d.nearest = nd->mode3;
    d.n = 1;
    int64_t acc = 1;
    for (int k = d.ndim - 1; k >= 0; k--) {
        d.xs[k] = acc;
        acc *= d.in[k];
        d.n *= d.out[k];
        float s = nd->scales[k];
        d.resized[k] = d.in[k] != d.out[k] || s != 1.0f;
        /* a scale that is the rounded output/input ratio is that ratio, as
         * the CPU's resize (cpu_data.c) takes it */
        double ratio = (double)d.out[k] / (double)d.in[k];
        d.scale[k] = (float)ratio == s ? ratio : (double)s;
    }
    return CUDA_LAUNCH(c, kern_resize_run(c->in[0], c->out[0], &d, c->cdt, c->stream));
}

/* ---------------------------------------------- GridSample, DepthToSpace */

_Static_assert((int)KERN_GRID_PAD_BORDER == (int)GRID_PAD_BORDER &&
                   (int)KERN_GRID_PAD_REFLECTION == (int)GRID_PAD_REFLECTION,
               "kernels.h's grid padding modes follow graph.h's");

static ferry_status supports_grid_sample(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    if (p->g->values[p->nd->in[0]].ndim != 4)
        return cuda_unsupported(p->nd, "only 4-D input ([N,C,H,W]) is supported");
    return FERRY_OK;
}

static ferry_status run_grid_sample(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t xd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    in_shape(c, 0, xd);
    out_shape(c, yd);
    kern_grid_sample d = {.n = xd[0],
                          .c = xd[1],
                          .h = xd[2],
                          .w = xd[3],
                          .ho = yd[2],
                          .wo = yd[3],
                          .nearest = nd->mode == GRID_NEAREST,
                          .padding = nd->mode2,
                          .align = nd->mode3};
    return CUDA_LAUNCH(c,
                       kern_grid_sample_run(c->in[0], c->in[1], c->out[0], &d, c->cdt, c->stream));
}

/* DepthToSpace (PyTorch's PixelShuffle) is a transpose of a 6-D view, as
 * the CPU's: x [N, C*b*b, H, W] read as [N, b, b, C, H, W] (DCR) or [N, C,
 * b, b, H, W] (CRD), y [N, C, H, b, W, b] = [N, C, H*b, W*b]; one strided
 * copy. */
static ferry_status run_depth_to_space(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t xd[FERRY_MAX_DIMS];
    in_shape(c, 0, xd);
    int64_t b = nd->axis, ch = xd[1] / (b * b);
    int64_t dcr[6] = {xd[0], b, b, ch, xd[2], xd[3]}, crd[6] = {xd[0], ch, b, b, xd[2], xd[3]};
    static const int perm_dcr[6] = {0, 3, 4, 1, 5, 2}, perm_crd[6] = {0, 1, 4, 2, 5, 3};
    const int64_t *v = nd->mode ? crd : dcr;
    const int *perm = nd->mode ? perm_crd : perm_dcr;
    int64_t vs[6], d[6], sx[6], acc = 1;
    for (int i = 5; i >= 0; i--) {
        vs[i] = acc;
        acc *= v[i];
    }
    for (int i = 0; i < 6; i++) { /* dim i of y is dim perm[i] of the view */
        d[i] = v[perm[i]];
        sx[i] = vs[perm[i]];
    }
    ferry_dtype dt = cuda_sdt(c->g->values[nd->in[0]].dtype, c->cdt);
    return cuda_copy_dense(c, c->in[0], c->out[0], 6, d, sx, ferry_dtype_size(dt));
}

/* ------------------------------------------ activations folded elsewhere */

static ferry_status run_act(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int a = nd->op == OP_CLIP ? KA_CLIP : nd->op == OP_HARD_SWISH ? KA_HARD_SWISH : KA_HARD_SIGMOID;
    int64_t n = graph_value_numel(&c->g->values[nd->out[0]], c->n);
    return CUDA_LAUNCH(c, kern_bias_act(c->in[0], NULL, NULL, c->out[0], n, 1, 1, a, nd->alpha,
                                        nd->act_beta, c->cdt, c->stream));
}

const cuda_op_impl cuda_pool_row = {supports_pool, NULL, run_pool, NULL};
const cuda_op_impl cuda_global_pool_row = {cuda_supports_float, NULL, run_global_pool, NULL};
const cuda_op_impl cuda_pad_row = {supports_pad, NULL, run_pad, NULL};
const cuda_op_impl cuda_resize_row = {supports_resize, NULL, run_resize, NULL};
const cuda_op_impl cuda_act_row = {cuda_supports_float, NULL, run_act, NULL};
const cuda_op_impl cuda_grid_sample_row = {supports_grid_sample, NULL, run_grid_sample, NULL};
const cuda_op_impl cuda_depth_to_space_row = {NULL, NULL, run_depth_to_space, NULL};
