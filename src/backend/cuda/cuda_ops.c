/*
 * cuda_ops.c - the CUDA backend's run table (cuda_ops.h): one row per
 * operator, calling cuda_gemm.c (Gemm, MatMul through cuBLASLt) and the
 * kernels of kernels_elementwise.cu (casts, unary, broadcasting
 * arithmetic), kernels_rows.cu (Softmax, LayerNorm, reductions) and
 * kernels_data.cu (data movement, comparisons, integer arithmetic); the
 * convolutions' and the image operators' rows are in cuda_conv.c and
 * cuda_image.c.
 *
 * Shapes were checked when the model loaded (src/graph/shape*.c); a run
 * function turns the node's dims into numbers for its batch, describes
 * the index map (strides, broadcast) and launches. Nothing here allocates
 * or synchronizes on the run path, so a forward can be captured.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"
#include "util/half.h"

/* ------------------------------------------------------------ helpers */

typedef struct dims {
    int n;
    int64_t d[FERRY_MAX_DIMS];
} dims;

static dims vdims(const graph *g, int v, int64_t n)
{
    dims r;
    r.n = graph_value_shape(&g->values[v], n, r.d);
    return r;
}

static int64_t numel(const dims *d)
{
    int64_t e = 1;
    for (int i = 0; i < d->n; i++)
        e *= d->d[i];
    return e;
}

static ferry_dtype in_sdt(const cuda_prep *p, int k)
{
    return cuda_sdt(p->g->values[p->nd->in[k]].dtype, p->cdt);
}

static ferry_dtype call_sdt(const cuda_call *c, int v)
{
    return cuda_sdt(c->g->values[v].dtype, c->cdt);
}

static size_t call_esz(const cuda_call *c, int v)
{
    return ferry_dtype_size(call_sdt(c, v));
}

static int is_fl(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16;
}

static int is_int(ferry_dtype dt)
{
    return dt == FERRY_I32 || dt == FERRY_I64;
}

ferry_status cuda_unsupported(const graph_node *nd, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %s on CUDA", nd->name, op_name(nd->op),
                      why);
}

ferry_status cuda_launch(const cuda_call *c, cudaError_t e, const char *what, const char *file,
                         int line)
{
    if (e == cudaSuccess)
        return FERRY_OK;
    ferry_status st = cuda_status_rt(e, what, file, line);
    return ferry_fail_prefix(st, "node '%s' (%s)", c->nd->name, op_name(c->nd->op));
}

static int norm_ax(int64_t axis, int r)
{
    return (int)(axis < 0 ? axis + r : axis);
}

/* Row-major strides of d. */
static void strides_of(const dims *d, int64_t *s)
{
    int64_t acc = 1;
    for (int i = d->n - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= d->d[i];
    }
}

/* Drops dims of size 1 and merges neighbours contiguous in both x and y,
 * so that the kernel's index arithmetic runs over as few dims as it can. */
static void coalesce(kern_strided *k)
{
    int m = 0;
    for (int i = 0; i < k->ndim; i++) {
        if (k->dims[i] == 1)
            continue;
        if (m > 0 && k->sx[m - 1] == k->sx[i] * k->dims[i] &&
            k->sy[m - 1] == k->sy[i] * k->dims[i]) {
            k->dims[m - 1] *= k->dims[i];
            k->sx[m - 1] = k->sx[i];
            k->sy[m - 1] = k->sy[i];
            continue;
        }
        k->dims[m] = k->dims[i];
        k->sx[m] = k->sx[i];
        k->sy[m] = k->sy[i];
        m++;
    }
    if (m == 0) {
        m = 1;
        k->dims[0] = 1;
        k->sx[0] = k->sy[0] = 0;
    }
    k->ndim = m;
    k->n = 1;
    for (int i = 0; i < m; i++)
        k->n *= k->dims[i];
}

/* Element strides of input value v broadcast (numpy, right-aligned) to
 * output dims od; FERRY_ESHAPE when it does not broadcast. nhwc: the node
 * runs channels-last (cuda_layout.c), dims are physical. */
static ferry_status bcast_strides(const graph *g, const graph_node *nd, int v, int64_t n, int nhwc,
                                  const dims *od, int64_t *st, int64_t *ne)
{
    dims id = vdims(g, v, n);
    cuda_phys_dims(nhwc, &id.n, id.d);
    if (id.n > od->n)
        return ferry_fail(FERRY_ESHAPE, "node '%s' (%s): input '%s' has more dims than the output",
                          nd->name, op_name(nd->op), g->values[v].name);
    int64_t stride = 1;
    *ne = 1;
    for (int d = od->n - 1; d >= 0; d--) {
        int j = d - (od->n - id.n);
        if (j < 0) {
            st[d] = 0;
            continue;
        }
        if (id.d[j] != od->d[d] && id.d[j] != 1)
            return ferry_fail(FERRY_ESHAPE,
                              "node '%s' (%s): input '%s' does not broadcast to the output",
                              nd->name, op_name(nd->op), g->values[v].name);
        st[d] = id.d[j] == 1 ? 0 : stride;
        stride *= id.d[j];
        *ne *= id.d[j];
    }
    return FERRY_OK;
}

static dims out_dims_min1(const graph *g, int v, int64_t n)
{
    dims o = vdims(g, v, n);
    if (o.n == 0) {
        o.n = 1;
        o.d[0] = 1;
    }
    return o;
}

/* Numpy broadcast of values va and vb to output 0 at batch n (nhwc: in
 * physical channels-last dims). */
static ferry_status make_bcast_of(const graph *g, const graph_node *nd, int va, int vb, int64_t n,
                                  int nhwc, kern_bcast *bc)
{
    memset(bc, 0, sizeof *bc);
    dims o = out_dims_min1(g, nd->out[0], n);
    cuda_phys_dims(nhwc, &o.n, o.d);
    bc->ndim = o.n;
    bc->n = numel(&o);
    memcpy(bc->dims, o.d, sizeof(int64_t) * (size_t)o.n);
    ferry_status st = bcast_strides(g, nd, va, n, nhwc, &o, bc->sa, &bc->na);
    return st ? st : bcast_strides(g, nd, vb, n, nhwc, &o, bc->sb, &bc->nb);
}

/* The same for inputs 0 and 1. */
static ferry_status make_bcast(const graph *g, const graph_node *nd, int64_t n, int nhwc,
                               kern_bcast *bc)
{
    return make_bcast_of(g, nd, nd->in[0], nd->in[1], n, nhwc, bc);
}

/* ---------------------------------------------------- matmuls (cuBLASLt) */

static ferry_status supports_gemm(const cuda_prep *p)
{
    if (!is_fl(in_sdt(p, 0)) || !is_fl(cuda_sdt(p->g->values[p->nd->out[0]].dtype, p->cdt)))
        return cuda_unsupported(p->nd, "integer matmul is not supported");
    if (p->nd->n_in < 2 || p->nd->in[1] < 0 || !is_fl(in_sdt(p, 1)))
        return cuda_unsupported(p->nd, "needs two float inputs");
    return FERRY_OK;
}

ferry_status cuda_gemm_node_prepare(cuda_prep *p, void **state)
{
    gemm_plan *gp = calloc(1, sizeof *gp);
    if (!gp)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", p->nd->name);
    ferry_status st = cuda_gemm_prepare(p->c, p->ni, gp);
    if (st) {
        free(gp);
        return st;
    }
    p->c->n_gemms++;
    *state = gp;
    return FERRY_OK;
}

static ferry_status run_gemm(const cuda_call *c)
{
    return cuda_gemm_run(c->s, c->state, c->n);
}

static void destroy_gemm(void *state)
{
    cuda_gemm_release(state);
    free(state);
}

/* ------------------------------------------------------ elementwise ops */

static ferry_status supports_binary(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    if (nd->n_in != 2 || nd->in[1] < 0)
        return cuda_unsupported(nd, "needs two inputs");
    ferry_dtype a = in_sdt(p, 0), b = in_sdt(p, 1);
    if (a != b)
        return cuda_unsupported(nd, "inputs of two dtypes (%s, %s) are not supported",
                                ferry_dtype_name(p->g->values[nd->in[0]].dtype),
                                ferry_dtype_name(p->g->values[nd->in[1]].dtype));
    if (!is_fl(a) && !is_int(a))
        return cuda_unsupported(nd, "%s inputs are not supported", ferry_dtype_name(a));
    if (is_fl(a) && nd->op == OP_MOD)
        return cuda_unsupported(nd, "floating-point Mod is not supported");
    kern_bcast bc;
    return make_bcast(p->g, nd, p->max_batch, 0, &bc);
}

static ferry_status run_binary(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    kern_bcast bc;
    ferry_status st = make_bcast(c->g, nd, c->n, cuda_value_nhwc(c->c, nd->out[0]), &bc);
    if (st)
        return st;
    ferry_dtype dt = call_sdt(c, nd->in[0]);
    kern_binary_op op = nd->op == OP_ADD   ? KB_ADD
                        : nd->op == OP_SUB ? KB_SUB
                        : nd->op == OP_MUL ? KB_MUL
                        : nd->op == OP_DIV ? KB_DIV
                        : nd->op == OP_POW ? KB_POW
                        : nd->mode         ? KB_FMOD
                                           : KB_MOD;
    if (is_fl(dt))
        return CUDA_LAUNCH(c, kern_binary(op, c->in[0], c->in[1], c->out[0], &bc, dt, c->stream));
    return CUDA_LAUNCH(c, kern_binary_int(op, c->in[0], c->in[1], c->out[0], &bc, dt, c->stream));
}

static kern_unary_op unary_of(const graph_node *nd)
{
    switch (nd->op) {
    case OP_RELU: return KU_RELU;
    case OP_LEAKY_RELU: return KU_LEAKY_RELU;
    case OP_SIGMOID: return KU_SIGMOID;
    case OP_TANH: return KU_TANH;
    case OP_GELU: return nd->approximate ? KU_GELU_TANH : KU_GELU;
    case OP_ERF: return KU_ERF;
    case OP_SQRT: return KU_SQRT;
    case OP_NEG: return KU_NEG;
    case OP_EXP: return KU_EXP;
    case OP_LOG: return KU_LOG;
    case OP_ABS: return KU_ABS;
    case OP_RECIPROCAL: return KU_RECIPROCAL;
    case OP_FLOOR: return KU_FLOOR;
    case OP_CEIL: return KU_CEIL;
    case OP_SIN: return KU_SIN;
    case OP_COS: return KU_COS;
    case OP_SOFTPLUS: return KU_SOFTPLUS;
    case OP_SIGN: return KU_SIGN;
    case OP_ROUND: return KU_ROUND;
    case OP_ELU: return KU_ELU;
    case OP_SELU: return KU_SELU;
    case OP_CELU: return KU_CELU;
    case OP_THRESHOLDED_RELU: return KU_THRESHOLDED_RELU;
    case OP_SOFTSIGN: return KU_SOFTSIGN;
    case OP_MISH: return KU_MISH;
    case OP_SHRINK: return KU_SHRINK;
    default: return KU_RELU;
    }
}

static ferry_status supports_unary(const cuda_prep *p)
{
    ferry_dtype dt = in_sdt(p, 0);
    if (is_fl(dt))
        return FERRY_OK;
    op_kind op = p->nd->op;
    if (is_int(dt) && (op == OP_NEG || op == OP_ABS || op == OP_SIGN || op == OP_RELU ||
                       op == OP_FLOOR || op == OP_CEIL || op == OP_ROUND))
        return FERRY_OK;
    return cuda_unsupported(p->nd, "%s input is not supported", ferry_dtype_name(dt));
}

static ferry_status run_unary(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t ny = graph_value_numel(&c->g->values[nd->out[0]], c->n);
    ferry_dtype dt = call_sdt(c, nd->in[0]);
    if (is_fl(dt))
        return CUDA_LAUNCH(c, kern_unary(unary_of(nd), nd->alpha, nd->act_beta, c->in[0], c->out[0],
                                         ny, dt, c->stream));
    return CUDA_LAUNCH(c, kern_unary_int(unary_of(nd), c->in[0], c->out[0], ny, dt, c->stream));
}

/* PRelu: y = x >= 0 ? x : x * slope, the slope broadcast to x (the
 * shape rule checked that it does). */
static ferry_status supports_prelu(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    kern_bcast bc;
    return make_bcast(p->g, p->nd, p->max_batch, 0, &bc);
}

static ferry_status run_prelu(const cuda_call *c)
{
    kern_bcast bc;
    ferry_status st = make_bcast(c->g, c->nd, c->n, cuda_value_nhwc(c->c, c->nd->out[0]), &bc);
    if (st)
        return st;
    return CUDA_LAUNCH(c, kern_binary(KB_PRELU, c->in[0], c->in[1], c->out[0], &bc,
                                      call_sdt(c, c->nd->in[0]), c->stream));
}

/* Min, Max of n inputs (one dtype, broadcast together): as the CPU, a fold
 * from the left, y = op(x0, x1) then y = op(y, xk), each step one
 * broadcasting kernel over the output. One input is a copy. */
static ferry_status supports_variadic(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    ferry_dtype dt = in_sdt(p, 0);
    if (!is_fl(dt) && !is_int(dt))
        return cuda_unsupported(nd, "%s inputs are not supported",
                                ferry_dtype_name(p->g->values[nd->in[0]].dtype));
    for (int k = 0; k < nd->n_in; k++) {
        if (nd->in[k] < 0 || in_sdt(p, k) != dt)
            return cuda_unsupported(nd, "needs present inputs of one dtype");
        kern_bcast bc;
        ferry_status st = make_bcast_of(p->g, nd, nd->in[k], nd->in[0], p->max_batch, 0, &bc);
        if (st)
            return st;
    }
    return FERRY_OK;
}

static ferry_status run_variadic(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    ferry_dtype dt = call_sdt(c, nd->in[0]);
    if (nd->n_in == 1) { /* the output has the input's shape */
        size_t bytes =
            (size_t)graph_value_numel(&c->g->values[nd->out[0]], c->n) * ferry_dtype_size(dt);
        if (!bytes || c->out[0] == c->in[0])
            return FERRY_OK;
        return CUDA_LAUNCH(
            c, cudaMemcpyAsync(c->out[0], c->in[0], bytes, cudaMemcpyDeviceToDevice, c->stream));
    }
    kern_binary_op op = nd->op == OP_MIN ? KB_MIN : KB_MAX;
    for (int k = 1; k < nd->n_in; k++) {
        kern_bcast bc;
        int va = k == 1 ? nd->in[0] : nd->out[0];
        ferry_status st = make_bcast_of(c->g, nd, va, nd->in[k], c->n, 0, &bc);
        if (st)
            return st;
        const void *a = k == 1 ? c->in[0] : c->out[0];
        if (is_fl(dt))
            st = CUDA_LAUNCH(c, kern_binary(op, a, c->in[k], c->out[0], &bc, dt, c->stream));
        else
            st = CUDA_LAUNCH(c, kern_binary_int(op, a, c->in[k], c->out[0], &bc, dt, c->stream));
        if (st)
            return st;
    }
    return FERRY_OK;
}

ferry_status cuda_supports_float(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    for (int k = 0; k < nd->n_in; k++)
        if (nd->in[k] >= 0 && !is_fl(in_sdt(p, k)))
            return cuda_unsupported(
                nd, "input '%s' is %s; this operator runs on float tensors only",
                p->g->values[nd->in[k]].name, ferry_dtype_name(p->g->values[nd->in[k]].dtype));
    return FERRY_OK;
}

/* BatchNormalization (inference): y = x * a[c] + b[c] with a = scale /
 * sqrt(var + eps) and b = B - mean * a folded once at prepare. */
typedef struct bn_state {
    void *ab; /* a then b, C elements each, compute dtype */
    int64_t ch;
} bn_state;

static ferry_status supports_batch_norm(const cuda_prep *p)
{
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    for (int k = 1; k < 5; k++)
        if (p->nd->in[k] < 0 || !p->g->values[p->nd->in[k]].is_const)
            return cuda_unsupported(p->nd, "scale, B, mean and var must be constants");
    if (p->g->values[p->nd->in[0]].ndim < 2)
        return cuda_unsupported(p->nd, "input of rank < 2");
    return FERRY_OK;
}

static ferry_status prepare_batch_norm(cuda_prep *p, void **state)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    int64_t ch = g->values[nd->in[0]].dims[1];
    bn_state *bs = calloc(1, sizeof *bs);
    float *h = malloc(sizeof(float) * (size_t)(2 * ch));
    ferry_status st = FERRY_OK;
    if (!bs || !h) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
        goto fail;
    }
    for (int64_t i = 0; i < ch; i++) {
        const graph_value *sc = &g->values[nd->in[1]], *bb = &g->values[nd->in[2]];
        const graph_value *mu = &g->values[nd->in[3]], *va = &g->values[nd->in[4]];
        double a = cuda_host_f32(sc->dtype, sc->data, i) /
                   sqrt((double)cuda_host_f32(va->dtype, va->data, i) + nd->epsilon);
        h[i] = (float)a;
        h[ch + i] = (float)(cuda_host_f32(bb->dtype, bb->data, i) -
                            cuda_host_f32(mu->dtype, mu->data, i) * a);
    }
    bs->ch = ch;
    st = cuda_dev_malloc(p->c->device, &bs->ab, (size_t)(2 * ch) * ferry_dtype_size(p->cdt),
                         "BatchNormalization constants");
    if (st)
        goto fail;
    st = cuda_upload_f32(p->c, bs->ab, h, 2 * ch);
    if (st)
        goto fail;
    free(h);
    *state = bs;
    return FERRY_OK;
fail:
    if (bs && bs->ab)
        cudaFree(bs->ab);
    free(bs);
    free(h);
    return st;
}

static ferry_status run_batch_norm(const cuda_call *c)
{
    const bn_state *bs = c->state;
    dims x = vdims(c->g, c->nd->in[0], c->n);
    int64_t inner = 1;
    for (int d = 2; d < x.n && !cuda_value_nhwc(c->c, c->nd->in[0]); d++)
        inner *= x.d[d];
    const char *b = (const char *)bs->ab + (size_t)bs->ch * ferry_dtype_size(c->cdt);
    return CUDA_LAUNCH(c, kern_channel_affine(c->in[0], bs->ab, b, c->out[0], numel(&x), bs->ch,
                                              inner, c->cdt, c->stream));
}

static void destroy_batch_norm(void *state)
{
    bn_state *bs = state;
    if (bs && bs->ab)
        cudaFree(bs->ab);
    free(bs);
}

/* -------------------------------------------------- rows: softmax, norms */

static ferry_status supports_softmax(const cuda_prep *p)
{
    int r = p->g->values[p->nd->in[0]].ndim;
    if (p->nd->axis < -r || p->nd->axis >= r)
        return cuda_unsupported(p->nd, "axis %d out of range for rank %d", p->nd->axis, r);
    return cuda_supports_float(p);
}

/* Softmax as [outer, d, inner]: opset >= 13 reduces one axis; earlier
 * opsets flatten to 2-D at the axis and reduce the whole tail. */
static ferry_status run_softmax(const cuda_call *c)
{
    dims x = vdims(c->g, c->nd->in[0], c->n);
    int axis = norm_ax(c->nd->axis, x.n);
    if (c->nd->mode == 1) { /* fuse.c: x * alpha + mask over the last axis */
        kern_softmax_fused f;
        memset(&f, 0, sizeof f);
        f.on = 1;
        f.scale = c->nd->alpha;
        f.nd = x.n - 1;
        int64_t L = x.d[x.n - 1], rows = numel(&x) / (L ? L : 1);
        if (c->nd->n_in > 1 && c->nd->in[1] >= 0) {
            dims m = vdims(c->g, c->nd->in[1], c->n);
            f.mask = c->in[1];
            graph_mask_strides(x.d, x.n, m.d, m.n, f.mstride);
        }
        for (int d = 0; d < f.nd; d++)
            f.dims[d] = x.d[d];
        return CUDA_LAUNCH(
            c, kern_softmax_fused_rows(c->in[0], c->out[0], rows, L, &f, c->cdt, c->stream));
    }
    int64_t outer = 1, d = 1, inner = 1;
    for (int i = 0; i < x.n; i++) {
        if (i < axis)
            outer *= x.d[i];
        else if (i == axis || (c->g->opset > 0 && c->g->opset < 13))
            d *= x.d[i];
        else
            inner *= x.d[i];
    }
    return CUDA_LAUNCH(c, kern_softmax(c->in[0], c->out[0], outer, d, inner,
                                       c->nd->op == OP_LOG_SOFTMAX, c->cdt, c->stream));
}

static ferry_status supports_layer_norm(const cuda_prep *p)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    ferry_status st = cuda_supports_float(p);
    if (st)
        return st;
    if (nd->n_in < 2 || nd->in[1] < 0)
        return cuda_unsupported(nd, "needs a scale input");
    for (int k = 1; k < nd->n_out; k++) {
        int v = nd->out[k];
        if (v >= 0 && (g->values[v].n_consumers > 0 || g->values[v].is_output))
            return cuda_unsupported(nd, "the Mean and InvStdDev outputs are not supported");
    }
    const graph_value *vx = &g->values[nd->in[0]];
    int axis = norm_ax(nd->axis, vx->ndim);
    if (axis < 0 || axis >= vx->ndim)
        return cuda_unsupported(nd, "axis out of range");
    int64_t d = 1;
    for (int i = axis; i < vx->ndim; i++) {
        if (vx->dims[i] < 0)
            return cuda_unsupported(nd, "normalizing over the batch dimension is not supported");
        d *= vx->dims[i];
    }
    for (int k = 1; k < 3 && k < nd->n_in; k++)
        if (nd->in[k] >= 0 && graph_value_numel(&g->values[nd->in[k]], 1) != d)
            return cuda_unsupported(nd, "scale and bias must have the normalized shape");
    return FERRY_OK;
}

static ferry_status run_layer_norm(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    const graph_value *vx = &c->g->values[nd->in[0]];
    int axis = norm_ax(nd->axis, vx->ndim);
    int64_t d = 1;
    for (int i = axis; i < vx->ndim; i++)
        d *= vx->dims[i];
    int64_t ny = graph_value_numel(vx, c->n);
    const void *bias = nd->n_in > 2 && nd->in[2] >= 0 ? c->in[2] : NULL;
    return CUDA_LAUNCH(c, kern_layernorm(c->in[0], c->in[1], bias, c->out[0], ny / d, d,
                                         nd->epsilon, c->cdt, c->stream));
}

static ferry_status run_instance_norm(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n);
    int64_t sp = 1;
    for (int i = 2; i < x.n; i++)
        sp *= x.d[i];
    return CUDA_LAUNCH(c,
                       kern_instancenorm(c->in[0], c->in[1], c->in[2], c->out[0], x.d[0] * x.d[1],
                                         sp, x.d[1], nd->epsilon, c->cdt, c->stream));
}

/* The reduced and kept dims of a reduction at batch n (axes resolved by
 * the shape rule; none listed: all). */
static ferry_status make_reduce(const graph *g, const graph_node *nd, int64_t n, kern_reduce *rd)
{
    dims x = vdims(g, nd->in[0], n);
    int64_t stride[FERRY_MAX_DIMS];
    int red[FERRY_MAX_DIMS] = {0};
    memset(rd, 0, sizeof *rd);
    strides_of(&x, stride);
    for (int i = 0; i < nd->n_axes; i++) {
        int a = norm_ax(nd->axes[i], x.n);
        if (a < 0 || a >= x.n)
            return ferry_fail(FERRY_ESHAPE, "node '%s' (%s): axis %" PRId64 " out of range",
                              nd->name, op_name(nd->op), nd->axes[i]);
        red[a] = 1;
    }
    rd->n_out = rd->n_red = 1;
    for (int i = 0; i < x.n; i++) {
        if (red[i] || nd->n_axes == 0) {
            rd->rdims[rd->nr] = x.d[i];
            rd->rstride[rd->nr++] = stride[i];
            rd->n_red *= x.d[i];
        } else {
            rd->kdims[rd->nk] = x.d[i];
            rd->kstride[rd->nk++] = stride[i];
            rd->n_out *= x.d[i];
        }
    }
    if (rd->nk == 0) {
        rd->nk = 1;
        rd->kdims[0] = 1;
        rd->kstride[0] = 0;
    }
    if (rd->nr == 0) {
        rd->nr = 1;
        rd->rdims[0] = 1;
        rd->rstride[0] = 0;
    }
    return FERRY_OK;
}

/* Integer inputs (the shape rule's int64, and int32 as the CPU takes
 * them) for the reductions whose result stays an integer. */
static ferry_status supports_reduce(const cuda_prep *p)
{
    op_kind op = p->nd->op;
    ferry_dtype dt = in_sdt(p, 0);
    if (is_int(dt)) {
        if (op != OP_REDUCE_SUM && op != OP_REDUCE_MAX && op != OP_REDUCE_MIN &&
            op != OP_REDUCE_PROD && op != OP_REDUCE_L1 && op != OP_REDUCE_SUM_SQUARE)
            return cuda_unsupported(p->nd, "%s input is not supported", ferry_dtype_name(dt));
    } else {
        ferry_status st = cuda_supports_float(p);
        if (st)
            return st;
    }
    if (p->nd->n_axes == 0 && p->nd->mode)
        return cuda_unsupported(p->nd, "noop_with_empty_axes is not supported");
    kern_reduce rd;
    return make_reduce(p->g, p->nd, p->max_batch, &rd);
}

static ferry_status run_reduce(const cuda_call *c)
{
    kern_reduce rd;
    ferry_status st = make_reduce(c->g, c->nd, c->n, &rd);
    if (st)
        return st;
    ferry_dtype dt = call_sdt(c, c->nd->in[0]);
    if (c->nd->op == OP_REDUCE_MEAN)
        return CUDA_LAUNCH(c, kern_reduce_mean(c->in[0], c->out[0], &rd, dt, c->stream));
    kern_reduce_op op;
    switch (c->nd->op) {
    case OP_REDUCE_SUM: op = KR_SUM; break;
    case OP_REDUCE_MAX: op = KR_MAX; break;
    case OP_REDUCE_MIN: op = KR_MIN; break;
    case OP_REDUCE_PROD: op = KR_PROD; break;
    case OP_REDUCE_L2: op = KR_L2; break;
    case OP_REDUCE_SUM_SQUARE: op = KR_SUM_SQUARE; break;
    case OP_REDUCE_L1: op = KR_L1; break;
    case OP_REDUCE_LOG_SUM: op = KR_LOG_SUM; break;
    default: op = KR_LOG_SUM_EXP; break;
    }
    if (is_int(dt))
        return CUDA_LAUNCH(c, kern_reduce_int(op, c->in[0], c->out[0], &rd, dt, c->stream));
    return CUDA_LAUNCH(c, kern_reduce_any(op, c->in[0], c->out[0], &rd, dt, c->stream));
}

/* CumSum along its axis (resolved by the shape rule), as [outer, L,
 * inner]. */
static ferry_status supports_cumsum(const cuda_prep *p)
{
    ferry_dtype dt = in_sdt(p, 0);
    if (!is_fl(dt) && !is_int(dt))
        return cuda_unsupported(p->nd, "%s input is not supported",
                                ferry_dtype_name(p->g->values[p->nd->in[0]].dtype));
    return FERRY_OK;
}

static ferry_status run_cumsum(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n);
    int axis = norm_ax(nd->axis, x.n);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= x.d[i];
    for (int i = axis + 1; i < x.n; i++)
        inner *= x.d[i];
    return CUDA_LAUNCH(c, kern_cumsum(c->in[0], c->out[0], outer, x.d[axis], inner, nd->mode,
                                      nd->mode2, call_sdt(c, nd->in[0]), c->stream));
}

/* ------------------------------------------------------ views and casts */

/* Views run only where the planner could not alias them (a graph input or
 * output on one side): a device copy. */
static ferry_status run_view(const cuda_call *c)
{
    int v = c->nd->out[0];
    size_t bytes = (size_t)graph_value_numel(&c->g->values[v], c->n) * call_esz(c, v);
    if (c->out[0] == c->in[0] || !bytes)
        return FERRY_OK;
    return CUDA_LAUNCH(
        c, cudaMemcpyAsync(c->out[0], c->in[0], bytes, cudaMemcpyDeviceToDevice, c->stream));
}

static ferry_status run_cast(const cuda_call *c)
{
    ferry_dtype sd = call_sdt(c, c->nd->in[0]), dd = call_sdt(c, c->nd->out[0]);
    if (sd == dd) /* a float->float Cast in one compute dtype */
        return run_view(c);
    int64_t ny = graph_value_numel(&c->g->values[c->nd->out[0]], c->n);
    return CUDA_LAUNCH(c, kern_cast(c->in[0], sd, c->out[0], dd, ny, c->stream));
}

/* ---------------------------------------------- comparisons and selection */

static ferry_status supports_compare(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    if (in_sdt(p, 0) != in_sdt(p, 1))
        return cuda_unsupported(nd, "inputs of two dtypes are not supported");
    kern_bcast bc;
    return make_bcast(p->g, nd, p->max_batch, 0, &bc);
}

static ferry_status run_compare(const cuda_call *c)
{
    kern_bcast bc;
    ferry_status st = make_bcast(c->g, c->nd, c->n, 0, &bc);
    if (st)
        return st;
    kern_binary_op op;
    switch (c->nd->op) {
    case OP_EQUAL: op = KB_EQ; break;
    case OP_LESS: op = KB_LT; break;
    case OP_LESS_EQUAL: op = KB_LE; break;
    case OP_GREATER: op = KB_GT; break;
    case OP_GREATER_EQUAL: op = KB_GE; break;
    case OP_AND: op = KB_AND; break;
    case OP_OR: op = KB_OR; break;
    default: op = KB_XOR; break;
    }
    return CUDA_LAUNCH(c, kern_compare(op, c->in[0], c->in[1], c->out[0], &bc,
                                       call_sdt(c, c->nd->in[0]), c->stream));
}

static ferry_status run_not(const cuda_call *c)
{
    int64_t ny = graph_value_numel(&c->g->values[c->nd->out[0]], c->n);
    return CUDA_LAUNCH(c, kern_not(c->in[0], c->out[0], ny, c->stream));
}

static ferry_status make_where(const graph *g, const graph_node *nd, int64_t n, kern_bcast3 *bc)
{
    memset(bc, 0, sizeof *bc);
    dims o = out_dims_min1(g, nd->out[0], n);
    bc->ndim = o.n;
    bc->n = numel(&o);
    memcpy(bc->dims, o.d, sizeof(int64_t) * (size_t)o.n);
    for (int k = 0; k < 3; k++) {
        int64_t ne;
        ferry_status st = bcast_strides(g, nd, nd->in[k], n, 0, &o, bc->s[k], &ne);
        if (st)
            return st;
    }
    return FERRY_OK;
}

static ferry_status supports_where(const cuda_prep *p)
{
    if (p->g->values[p->nd->in[0]].dtype != FERRY_BOOL)
        return cuda_unsupported(p->nd, "the condition must be bool");
    if (in_sdt(p, 1) != in_sdt(p, 2))
        return cuda_unsupported(p->nd, "X and Y of two dtypes are not supported");
    kern_bcast3 bc;
    return make_where(p->g, p->nd, p->max_batch, &bc);
}

static ferry_status run_where(const cuda_call *c)
{
    kern_bcast3 bc;
    ferry_status st = make_where(c->g, c->nd, c->n, &bc);
    if (st)
        return st;
    return CUDA_LAUNCH(c, kern_where(c->in[0], c->in[1], c->in[2], c->out[0], &bc,
                                     call_esz(c, c->nd->in[1]), c->stream));
}

/* -------------------------------------------------------- data movement */

static ferry_status supports_rank(const cuda_prep *p)
{
    for (int k = 0; k < p->nd->n_out; k++)
        if (p->nd->out[k] >= 0 && p->g->values[p->nd->out[k]].ndim > KERN_MAX_DIMS)
            return cuda_unsupported(p->nd, "rank above %d", KERN_MAX_DIMS);
    return FERRY_OK;
}

static ferry_status copy(const cuda_call *c, const void *x, void *y, kern_strided *k, size_t esz)
{
    coalesce(k);
    return CUDA_LAUNCH(c, kern_copy_strided(x, y, k, esz, c->stream));
}

ferry_status cuda_copy_dense(const cuda_call *c, const void *x, void *y, int ndim, const int64_t *d,
                             const int64_t *sx, size_t esz)
{
    kern_strided k;
    memset(&k, 0, sizeof k);
    k.ndim = ndim;
    int64_t acc = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        k.dims[i] = d[i];
        k.sx[i] = sx[i];
        k.sy[i] = acc;
        acc *= d[i];
    }
    return copy(c, x, y, &k, esz);
}

static ferry_status run_transpose(const cuda_call *c)
{
    dims x = vdims(c->g, c->nd->in[0], c->n);
    int64_t xs[FERRY_MAX_DIMS];
    strides_of(&x, xs);
    kern_strided k;
    memset(&k, 0, sizeof k);
    k.ndim = x.n;
    /* Walk the output in order: its dim i is input dim perm[i]. */
    int64_t acc = 1;
    for (int i = x.n - 1; i >= 0; i--) {
        int p = (int)c->nd->perm[i];
        k.dims[i] = x.d[p];
        k.sx[i] = xs[p];
        k.sy[i] = acc;
        acc *= x.d[p];
    }
    return copy(c, c->in[0], c->out[0], &k, call_esz(c, c->nd->in[0]));
}

static ferry_status run_slice(const cuda_call *c)
{
    dims x = vdims(c->g, c->nd->in[0], c->n), y = vdims(c->g, c->nd->out[0], c->n);
    int64_t xs[FERRY_MAX_DIMS], ys[FERRY_MAX_DIMS], off = 0;
    strides_of(&x, xs);
    strides_of(&y, ys);
    kern_strided k;
    memset(&k, 0, sizeof k);
    k.ndim = y.n;
    for (int i = 0; i < y.n; i++) {
        k.dims[i] = y.d[i];
        k.sx[i] = xs[i] * c->nd->steps[i];
        k.sy[i] = ys[i];
        off += c->nd->starts[i] * xs[i];
    }
    size_t esz = call_esz(c, c->nd->in[0]);
    return copy(c, (const char *)c->in[0] + (size_t)off * esz, c->out[0], &k, esz);
}

static ferry_status run_expand(const cuda_call *c)
{
    dims y = vdims(c->g, c->nd->out[0], c->n);
    int64_t ys[FERRY_MAX_DIMS], ne;
    strides_of(&y, ys);
    kern_strided k;
    memset(&k, 0, sizeof k);
    k.ndim = y.n;
    ferry_status st = bcast_strides(c->g, c->nd, c->nd->in[0], c->n, 0, &y, k.sx, &ne);
    if (st)
        return st;
    for (int i = 0; i < y.n; i++) {
        k.dims[i] = y.d[i];
        k.sy[i] = ys[i];
    }
    return copy(c, c->in[0], c->out[0], &k, call_esz(c, c->nd->in[0]));
}

/* Tile as one strided copy: the output viewed as [r0, x0, r1, x1, ...],
 * x's strides on the x dims and 0 on the repeats (cpu_tile's view). The
 * repeats are read from the dims (y / x), so repeats that hold N (a Tile
 * of a dim of 1 by the batch size, shape_data.c) need no host copy. */
static ferry_status supports_tile(const cuda_prep *p)
{
    if (2 * p->g->values[p->nd->in[0]].ndim > KERN_MAX_DIMS)
        return cuda_unsupported(p->nd, "rank above %d", KERN_MAX_DIMS / 2);
    return FERRY_OK;
}

static ferry_status run_tile(const cuda_call *c)
{
    dims x = vdims(c->g, c->nd->in[0], c->n), y = vdims(c->g, c->nd->out[0], c->n);
    if (numel(&y) == 0)
        return FERRY_OK;
    int64_t xs[FERRY_MAX_DIMS], ys[FERRY_MAX_DIMS];
    strides_of(&x, xs);
    strides_of(&y, ys);
    kern_strided k;
    memset(&k, 0, sizeof k);
    k.ndim = 2 * x.n;
    for (int d = 0; d < x.n; d++) {
        k.dims[2 * d] = y.d[d] / x.d[d];
        k.dims[2 * d + 1] = x.d[d];
        k.sx[2 * d] = 0;
        k.sx[2 * d + 1] = xs[d];
        k.sy[2 * d] = x.d[d] * ys[d];
        k.sy[2 * d + 1] = ys[d];
    }
    return copy(c, c->in[0], c->out[0], &k, call_esz(c, c->nd->in[0]));
}

/* Concat: one strided copy per input into its slab of the output (of the
 * channels-last dims when cuda_layout.c holds the output so). */
static ferry_status run_concat(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims y = vdims(c->g, nd->out[0], c->n);
    int nhwc = cuda_value_nhwc(c->c, nd->out[0]);
    static const int to_phys[4] = {0, 3, 1, 2};
    int axis = nhwc ? to_phys[nd->axis] : nd->axis;
    cuda_phys_dims(nhwc, &y.n, y.d);
    int64_t ys[FERRY_MAX_DIMS], at = 0;
    strides_of(&y, ys);
    size_t esz = call_esz(c, nd->out[0]);
    for (int j = 0; j < nd->n_in; j++) {
        dims x = vdims(c->g, nd->in[j], c->n);
        cuda_phys_dims(nhwc, &x.n, x.d);
        int64_t xs[FERRY_MAX_DIMS];
        strides_of(&x, xs);
        kern_strided k;
        memset(&k, 0, sizeof k);
        k.ndim = x.n;
        for (int i = 0; i < x.n; i++) {
            k.dims[i] = x.d[i];
            k.sx[i] = xs[i];
            k.sy[i] = ys[i];
        }
        ferry_status st =
            copy(c, c->in[j], (char *)c->out[0] + (size_t)(at * ys[axis]) * esz, &k, esz);
        if (st)
            return st;
        at += x.d[axis];
    }
    return FERRY_OK;
}

/* Split: one strided copy per output read, from its slab of the input. */
static ferry_status run_split(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n);
    int64_t xs[FERRY_MAX_DIMS], at = 0;
    strides_of(&x, xs);
    size_t esz = call_esz(c, nd->in[0]);
    for (int j = 0; j < nd->n_out; j++) {
        int64_t len = nd->splits[j];
        if (c->out[j]) {
            kern_strided k;
            memset(&k, 0, sizeof k);
            k.ndim = x.n;
            int64_t acc = 1;
            for (int i = x.n - 1; i >= 0; i--) {
                k.dims[i] = i == nd->axis ? len : x.d[i];
                k.sx[i] = xs[i];
                k.sy[i] = acc;
                acc *= k.dims[i];
            }
            ferry_status st = copy(c, (const char *)c->in[0] + (size_t)(at * xs[nd->axis]) * esz,
                                   c->out[j], &k, esz);
            if (st)
                return st;
        }
        at += len;
    }
    return FERRY_OK;
}

static ferry_status supports_gather(const cuda_prep *p)
{
    if (!is_int(p->g->values[p->nd->in[1]].dtype))
        return cuda_unsupported(p->nd, "indices must be int32 or int64");
    return supports_rank(p);
}

static ferry_status run_gather(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n), idx = vdims(c->g, nd->in[1], c->n);
    int64_t outer = 1, inner = 1, block = nd->mode, per = 0;
    for (int i = 0; i < nd->axis; i++)
        outer *= x.d[i];
    for (int i = nd->axis + 1; i < x.n; i++)
        inner *= x.d[i];
    if (block > 0) /* along the batch: mode rows a sample (shape.c's batch_position) */
        per = x.d[0] / block > 0 ? numel(&idx) / (x.d[0] / block) : 0;
    return CUDA_LAUNCH(c, kern_gather(c->in[0], c->in[1], c->g->values[nd->in[1]].dtype, c->out[0],
                                      outer, x.d[nd->axis], numel(&idx), inner, per, block,
                                      call_esz(c, nd->in[0]), c->stream));
}

/* ScatterND: the reductions (add, mul, max, min) would need atomics per
 * dtype; no model met so far scatters with one outside what folds at load. */
static ferry_status supports_scatter_nd(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    if (nd->mode != SCATTER_NONE)
        return cuda_unsupported(nd, "a reduction (add, mul, max, min) is not supported");
    if (!is_int(p->g->values[nd->in[1]].dtype))
        return cuda_unsupported(nd, "indices must be int32 or int64");
    if (p->g->values[nd->in[0]].ndim > KERN_MAX_DIMS)
        return cuda_unsupported(nd, "rank above %d", KERN_MAX_DIMS);
    return FERRY_OK;
}

static ferry_status run_scatter_nd(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n), idx = vdims(c->g, nd->in[1], c->n);
    kern_scatter sc;
    memset(&sc, 0, sizeof sc);
    sc.k = (int)idx.d[idx.n - 1];
    sc.n_tuples = sc.k ? numel(&idx) / sc.k : 0;
    sc.total = numel(&x);
    int64_t acc = 1; /* elements after dim i */
    for (int i = x.n - 1; i >= 0; i--) {
        if (i < sc.k) {
            sc.dims[i] = x.d[i];
            sc.stride[i] = acc;
        } else {
            sc.slice = acc * x.d[i];
        }
        acc *= x.d[i];
    }
    if (sc.k == x.n)
        sc.slice = 1;
    if (nd->mode2 && c->n > 0) { /* shape_data.c: indices address the batch axis */
        sc.block = x.d[0] / c->n;
        sc.per_sample = sc.n_tuples / c->n;
    }
    return CUDA_LAUNCH(c,
                       kern_scatter_nd(c->in[0], c->in[1], c->g->values[nd->in[1]].dtype, c->in[2],
                                       c->out[0], &sc, call_esz(c, nd->in[0]), c->stream));
}

/* GatherND (any element type, batch_dims): shape_data.c checked the
 * shapes and the batch rule; the kernel reads zeros where the CPU fails
 * the run (an index out of range, or outside its sample's rows). */
static ferry_status supports_gather_nd(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    if (!is_int(p->g->values[nd->in[1]].dtype))
        return cuda_unsupported(nd, "indices must be int32 or int64");
    if (p->g->values[nd->in[0]].ndim > KERN_MAX_DIMS)
        return cuda_unsupported(nd, "rank above %d", KERN_MAX_DIMS);
    return FERRY_OK;
}

static ferry_status run_gather_nd(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n), idx = vdims(c->g, nd->in[1], c->n);
    int b = nd->mode;
    kern_scatter sc;
    memset(&sc, 0, sizeof sc);
    sc.k = (int)idx.d[idx.n - 1];
    sc.n_tuples = sc.k ? numel(&idx) / sc.k : 0;
    int64_t acc = 1; /* elements after dim i */
    sc.slice = 1;
    for (int i = x.n - 1; i >= b; i--) {
        if (i < b + sc.k) {
            sc.dims[i - b] = x.d[i];
            sc.stride[i - b] = acc;
        } else {
            sc.slice *= x.d[i];
        }
        acc *= x.d[i];
    }
    int64_t lead = 1;
    for (int i = 0; i < b; i++)
        lead *= x.d[i];
    if (b > 0 && lead > 0) {
        sc.bd_tuples = sc.n_tuples / lead;
        sc.bd_stride = acc;
    }
    if (nd->mode2 && c->n > 0) { /* shape_data.c: indices address the batch axis */
        sc.block = x.d[0] / c->n;
        sc.per_sample = sc.n_tuples / c->n;
    }
    return CUDA_LAUNCH(c, kern_gather_nd(c->in[0], c->in[1], c->g->values[nd->in[1]].dtype,
                                         c->out[0], &sc, call_esz(c, nd->in[0]), c->stream));
}

/* ConstantOfShape: the fill value, in the output's storage dtype, is read
 * at prepare from the loader-made constant (absent: f32 zero). */
static ferry_status prepare_constant_of_shape(cuda_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    ferry_dtype odt = p->g->values[nd->out[0]].dtype, sdt = cuda_sdt(odt, p->cdt);
    uint64_t *bits = calloc(1, sizeof *bits);
    if (!bits)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
    const graph_value *v = nd->n_in > 1 && nd->in[1] >= 0 ? &p->g->values[nd->in[1]] : NULL;
    if (v && v->data) {
        if (is_fl(sdt)) {
            float f = cuda_host_f32(v->dtype, v->data, 0);
            if (sdt == FERRY_F32)
                memcpy(bits, &f, sizeof f);
            else {
                uint16_t h = sdt == FERRY_F16 ? ferry_f32_to_f16_sat(f) : ferry_f32_to_bf16_sat(f);
                memcpy(bits, &h, sizeof h);
            }
        } else {
            memcpy(bits, v->data, ferry_dtype_size(sdt)); /* little-endian: low bytes */
        }
    }
    *state = bits;
    return FERRY_OK;
}

static ferry_status run_constant_of_shape(const cuda_call *c)
{
    int v = c->nd->out[0];
    return CUDA_LAUNCH(c, kern_fill(c->out[0], graph_value_numel(&c->g->values[v], c->n),
                                    *(const uint64_t *)c->state, call_esz(c, v), c->stream));
}

static ferry_status run_range(const cuda_call *c)
{
    int v = c->nd->out[0];
    return CUDA_LAUNCH(c, kern_range(c->in[0], c->in[2], c->out[0],
                                     graph_value_numel(&c->g->values[v], c->n), call_sdt(c, v),
                                     c->stream));
}

static ferry_status run_trilu(const cuda_call *c)
{
    dims x = vdims(c->g, c->nd->in[0], c->n);
    int64_t rows = x.d[x.n - 2], cols = x.d[x.n - 1], mat = rows * cols;
    int64_t b = mat > 0 ? numel(&x) / mat : 0;
    return CUDA_LAUNCH(c, kern_trilu(c->in[0], c->out[0], b, rows, cols, c->nd->starts[0],
                                     c->nd->mode, call_esz(c, c->nd->in[0]), c->stream));
}

/* EyeLike: the identity's 1 written as the bits of the output's storage
 * dtype (f16 0x3c00, bf16 0x3f80, ...). Most EyeLikes fold at load (their
 * input a constant); this runs the rest. */
static ferry_status run_eye_like(const cuda_call *c)
{
    int v = c->nd->out[0];
    dims y = vdims(c->g, v, c->n);
    ferry_dtype dt = call_sdt(c, v);
    uint64_t one = dt == FERRY_F32    ? 0x3f800000u
                   : dt == FERRY_F16  ? 0x3c00u
                   : dt == FERRY_BF16 ? 0x3f80u
                                      : 1u;
    return CUDA_LAUNCH(c, kern_eye(c->out[0], y.d[0], y.d[1], c->nd->starts[0], one,
                                   ferry_dtype_size(dt), c->stream));
}

static ferry_status supports_trilu(const cuda_prep *p)
{
    if (p->g->values[p->nd->in[0]].ndim < 2)
        return cuda_unsupported(p->nd, "input of rank < 2");
    return FERRY_OK;
}

/* IsNaN, IsInf: a float tensor (in its storage dtype) to bool. */
static ferry_status supports_float_test(const cuda_prep *p)
{
    if (!is_fl(in_sdt(p, 0)))
        return cuda_unsupported(p->nd, "input '%s' is %s; a float tensor is required",
                                p->g->values[p->nd->in[0]].name,
                                ferry_dtype_name(p->g->values[p->nd->in[0]].dtype));
    return FERRY_OK;
}

static ferry_status run_float_test(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t n = graph_value_numel(&c->g->values[nd->out[0]], c->n);
    int nan = nd->op == OP_IS_NAN;
    return CUDA_LAUNCH(c, kern_float_test(c->in[0], c->out[0], n, nan, nd->mode, nd->mode2,
                                          call_sdt(c, nd->in[0]), c->stream));
}

/* OneHot: indices int32, int64 or float (read in their storage dtype),
 * the depth known at load (shape_data.c's infer_one_hot keeps it in
 * starts[0]), values [off, on] in the output's dtype, on the device (a
 * constant or computed). */
static int one_hot_axis(const graph *g, const graph_node *nd)
{
    return norm_ax(nd->axis, g->values[nd->out[0]].ndim);
}

static ferry_status supports_one_hot(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const graph *g = p->g;
    ferry_dtype it = g->values[nd->in[0]].dtype, vt = g->values[nd->in[2]].dtype;
    if (!is_int(it) && it != FERRY_F32)
        return cuda_unsupported(nd, "indices of dtype %s are not supported", ferry_dtype_name(it));
    if (!is_int(vt) && vt != FERRY_F32)
        return cuda_unsupported(nd, "values of dtype %s are not supported", ferry_dtype_name(vt));
    if (nd->starts[0] < 1)
        return cuda_unsupported(nd, "the depth must be known when the model loads");
    /* Float indices are stored in the compute dtype, whose whole numbers
     * are exact only up to 2^11 (f16) or 2^8 (bf16): a larger depth would
     * set the wrong position. */
    int64_t exact = p->cdt == FERRY_F16 ? 2048 : p->cdt == FERRY_BF16 ? 256 : INT64_MAX;
    if (!is_int(it) && nd->starts[0] > exact)
        return cuda_unsupported(nd,
                                "float indices with depth %" PRId64
                                " in %s (exact only up to %" PRId64 "; cast the indices to int64)",
                                nd->starts[0], ferry_dtype_name(p->cdt), exact);
    int ax = one_hot_axis(g, nd);
    if (ax < 0 || ax >= g->values[nd->out[0]].ndim ||
        g->values[nd->out[0]].dims[ax] != nd->starts[0])
        return cuda_unsupported(nd, "axis %d does not hold the depth %" PRId64, nd->axis,
                                nd->starts[0]);
    return FERRY_OK;
}

static ferry_status run_one_hot(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    dims x = vdims(c->g, nd->in[0], c->n);
    int ax = one_hot_axis(c->g, nd);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < x.n; d++)
        *(d < ax ? &outer : &inner) *= x.d[d];
    return CUDA_LAUNCH(c, kern_one_hot(c->in[0], call_sdt(c, nd->in[0]), c->in[2], c->out[0], outer,
                                       nd->starts[0], inner, call_esz(c, nd->out[0]), c->stream));
}

/* ------------------------------------------------------------- the table */

#define BINARY                                                                                     \
    {                                                                                              \
        supports_binary, NULL, run_binary, NULL                                                    \
    }
#define UNARY                                                                                      \
    {                                                                                              \
        supports_unary, NULL, run_unary, NULL                                                      \
    }
#define REDUCE                                                                                     \
    {                                                                                              \
        supports_reduce, NULL, run_reduce, NULL                                                    \
    }
#define VIEW                                                                                       \
    {                                                                                              \
        NULL, NULL, run_view, NULL                                                                 \
    }
#define COMPARE                                                                                    \
    {                                                                                              \
        supports_compare, NULL, run_compare, NULL                                                  \
    }

static const cuda_op_impl ops[OP_COUNT] = {
    [OP_GEMM] = {supports_gemm, cuda_gemm_node_prepare, run_gemm, destroy_gemm},
    [OP_MATMUL] = {supports_gemm, cuda_gemm_node_prepare, run_gemm, destroy_gemm},
    [OP_ADD] = BINARY,
    [OP_SUB] = BINARY,
    [OP_MUL] = BINARY,
    [OP_DIV] = BINARY,
    [OP_POW] = BINARY,
    [OP_MOD] = BINARY,
    [OP_RELU] = UNARY,
    [OP_LEAKY_RELU] = UNARY,
    [OP_SIGMOID] = UNARY,
    [OP_TANH] = UNARY,
    [OP_GELU] = UNARY,
    [OP_ERF] = UNARY,
    [OP_SQRT] = UNARY,
    [OP_NEG] = UNARY,
    [OP_EXP] = UNARY,
    [OP_LOG] = UNARY,
    [OP_ABS] = UNARY,
    [OP_RECIPROCAL] = UNARY,
    [OP_FLOOR] = UNARY,
    [OP_CEIL] = UNARY,
    [OP_SIN] = UNARY,
    [OP_COS] = UNARY,
    [OP_SOFTPLUS] = UNARY,
    [OP_SIGN] = UNARY,
    [OP_ROUND] = UNARY,
    /* float only: supports_unary refuses their integer inputs */
    [OP_ELU] = UNARY,
    [OP_SELU] = UNARY,
    [OP_CELU] = UNARY,
    [OP_THRESHOLDED_RELU] = UNARY,
    [OP_SOFTSIGN] = UNARY,
    [OP_MISH] = UNARY,
    [OP_SHRINK] = UNARY,
    [OP_SOFTMAX] = {supports_softmax, NULL, run_softmax, NULL},
    [OP_LOG_SOFTMAX] = {supports_softmax, NULL, run_softmax, NULL},
    [OP_LAYER_NORM] = {supports_layer_norm, NULL, run_layer_norm, NULL},
    [OP_INSTANCE_NORM] = {cuda_supports_float, NULL, run_instance_norm, NULL},
    [OP_BATCH_NORM] = {supports_batch_norm, prepare_batch_norm, run_batch_norm, destroy_batch_norm},
    [OP_REDUCE_MEAN] = REDUCE,
    [OP_REDUCE_SUM] = REDUCE,
    [OP_REDUCE_MAX] = REDUCE,
    [OP_REDUCE_MIN] = REDUCE,
    [OP_REDUCE_PROD] = REDUCE,
    [OP_REDUCE_L2] = REDUCE,
    [OP_REDUCE_SUM_SQUARE] = REDUCE,
    [OP_REDUCE_LOG_SUM_EXP] = REDUCE,
    [OP_REDUCE_L1] = REDUCE,
    [OP_REDUCE_LOG_SUM] = REDUCE,
    [OP_FLATTEN] = VIEW,
    [OP_RESHAPE] = VIEW,
    [OP_IDENTITY] = VIEW,
    [OP_SQUEEZE] = VIEW,
    [OP_UNSQUEEZE] = VIEW,
    [OP_CAST] = {NULL, NULL, run_cast, NULL},
    [OP_EQUAL] = COMPARE,
    [OP_LESS] = COMPARE,
    [OP_LESS_EQUAL] = COMPARE,
    [OP_GREATER] = COMPARE,
    [OP_GREATER_EQUAL] = COMPARE,
    [OP_AND] = COMPARE,
    [OP_OR] = COMPARE,
    [OP_XOR] = COMPARE,
    [OP_NOT] = {NULL, NULL, run_not, NULL},
    [OP_WHERE] = {supports_where, NULL, run_where, NULL},
    [OP_TRANSPOSE] = {supports_rank, NULL, run_transpose, NULL},
    [OP_SLICE] = {supports_rank, NULL, run_slice, NULL},
    [OP_EXPAND] = {supports_rank, NULL, run_expand, NULL},
    [OP_TILE] = {supports_tile, NULL, run_tile, NULL},
    [OP_CONCAT] = {supports_rank, NULL, run_concat, NULL},
    [OP_SPLIT] = {supports_rank, NULL, run_split, NULL},
    [OP_GATHER] = {supports_gather, NULL, run_gather, NULL},
    [OP_SCATTER_ND] = {supports_scatter_nd, NULL, run_scatter_nd, NULL},
    [OP_GATHER_ND] = {supports_gather_nd, NULL, run_gather_nd, NULL},
    [OP_CONSTANT_OF_SHAPE] = {NULL, prepare_constant_of_shape, run_constant_of_shape, NULL},
    [OP_RANGE] = {NULL, NULL, run_range, NULL},
    [OP_TRILU] = {supports_trilu, NULL, run_trilu, NULL},
    [OP_EYE_LIKE] = {NULL, NULL, run_eye_like, NULL},
    [OP_CUMSUM] = {supports_cumsum, NULL, run_cumsum, NULL},
    [OP_PRELU] = {supports_prelu, NULL, run_prelu, NULL},
    [OP_MIN] = {supports_variadic, NULL, run_variadic, NULL},
    [OP_MAX] = {supports_variadic, NULL, run_variadic, NULL},
    [OP_GATHER_ELEMENTS] = {cuda_elements_supports, NULL, cuda_gather_elements_run, NULL},
    [OP_SCATTER_ELEMENTS] = {cuda_elements_supports, NULL, cuda_scatter_elements_run, NULL},
    [OP_LSTM] = {cuda_rnn_supports, cuda_rnn_prepare, cuda_rnn_run, cuda_rnn_destroy},
    [OP_GRU] = {cuda_rnn_supports, cuda_rnn_prepare, cuda_rnn_run, cuda_rnn_destroy},
    [OP_RNN] = {cuda_rnn_supports, cuda_rnn_prepare, cuda_rnn_run, cuda_rnn_destroy},
    [OP_EMBEDDING_BAG] = {cuda_embedding_bag_supports, NULL, cuda_embedding_bag_run, NULL},
    [OP_ARGMAX] = {cuda_arg_supports, NULL, cuda_arg_run, NULL},
    [OP_ARGMIN] = {cuda_arg_supports, NULL, cuda_arg_run, NULL},
    [OP_TOPK] = {cuda_topk_supports, NULL, cuda_topk_run, NULL},
    [OP_IS_NAN] = {supports_float_test, NULL, run_float_test, NULL},
    [OP_IS_INF] = {supports_float_test, NULL, run_float_test, NULL},
    [OP_ONE_HOT] = {supports_one_hot, NULL, run_one_hot, NULL},
};

/* Rows defined beside their kernels' callers (cuda_conv.c, cuda_image.c,
 * cuda_attention.c, cuda_einsum.c). */
static const cuda_op_impl *row_elsewhere(op_kind op)
{
    switch (op) {
    case OP_CONV:
    case OP_CONV_TRANSPOSE: return &cuda_conv_row;
    case OP_MAX_POOL:
    case OP_AVG_POOL: return &cuda_pool_row;
    case OP_GLOBAL_AVG_POOL:
    case OP_GLOBAL_MAX_POOL: return &cuda_global_pool_row;
    case OP_PAD: return &cuda_pad_row;
    case OP_RESIZE: return &cuda_resize_row;
    case OP_CLIP:
    case OP_HARD_SIGMOID:
    case OP_HARD_SWISH: return &cuda_act_row;
    case OP_ATTENTION: return &cuda_attention_row;
    case OP_GRID_SAMPLE: return &cuda_grid_sample_row;
    case OP_DEPTH_TO_SPACE: return &cuda_depth_to_space_row;
    case OP_EINSUM: return &cuda_einsum_row;
    default: return NULL;
    }
}

const cuda_op_impl *cuda_op_get(op_kind op)
{
    if ((unsigned)op >= OP_COUNT)
        return NULL;
    return ops[op].run ? &ops[op] : row_elsewhere(op);
}
