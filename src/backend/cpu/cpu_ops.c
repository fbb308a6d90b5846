/*
 * cpu_ops.c - the CPU backend's run table (cpu_ops.h): one row per
 * operator, calling the kernels of cpu_kernels.c (Gemm, MatMul, the MLP
 * elementwise ops), cpu_dnnl.h (oneDNN convolution and pooling), cpu_rnn.h
 * (LSTM, GRU, RNN), cpu_data.h (data movement) and cpu_elem.h (elementwise,
 * comparisons, reductions).
 *
 * Shapes were checked when the model loaded (src/graph/shape*.c); a run
 * function turns the node's dims into numbers for its batch and calls the
 * kernel. Prepare functions build what is reused across runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_data.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_elem.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_parallel.h"
#include "backend/cpu/cpu_rnn.h"
#include "graph/einsum.h"
#include "util/error.h"

/* ------------------------------------------------------------ helpers */

typedef struct dims {
    int n;
    int64_t d[FERRY_MAX_DIMS];
} dims;

static dims in_dims(const cpu_call *c, int k)
{
    dims r;
    r.n = graph_value_shape(&c->g->values[c->nd->in[k]], c->n, r.d);
    return r;
}

static dims out_dims(const cpu_call *c, int k)
{
    dims r;
    r.n = graph_value_shape(&c->g->values[c->nd->out[k]], c->n, r.d);
    return r;
}

static int64_t numel(const dims *d)
{
    int64_t e = 1;
    for (int i = 0; i < d->n; i++)
        e *= d->d[i];
    return e;
}

static ferry_dtype in_sdt(const cpu_call *c, int k)
{
    return cpu_sdt(c->g->values[c->nd->in[k]].dtype);
}

static size_t in_esz(const cpu_call *c, int k)
{
    return ferry_dtype_size(in_sdt(c, k));
}

static ferry_status unsupported(const graph_node *nd, const char *why)
{
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %s on the cpu backend", nd->name,
                      op_name(nd->op), why);
}

/* ------------------------------------------------------ the MLP-era ops */

static ferry_status run_gemm(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims a = in_dims(c, 0), b = in_dims(c, 1);
    int64_t M = 1, K, N = nd->trans_b ? b.d[0] : b.d[1];
    if (nd->trans_a) {
        M = a.d[1];
        K = a.d[0];
    } else {
        for (int d = 0; d < a.n - 1; d++)
            M *= a.d[d];
        K = a.d[a.n - 1];
    }
    cpu_bias_kind bias = CPU_BIAS_NONE;
    if (nd->n_in >= 3 && nd->in[2] >= 0) {
        dims cd = in_dims(c, 2);
        int64_t cnum = numel(&cd), ones = 1;
        for (int d = 0; d < cd.n - 1; d++)
            ones *= cd.d[d];
        if (cnum == 1)
            bias = CPU_BIAS_SCALAR;
        else if (cd.n >= 1 && ones == 1 && cd.d[cd.n - 1] == N)
            bias = CPU_BIAS_ROW;
        else if (cd.n == 2 && cd.d[1] == 1 && cd.d[0] == M)
            bias = CPU_BIAS_COL;
        else
            bias = CPU_BIAS_FULL;
    }
    const float *res = nd->n_in > 3 && nd->in[3] >= 0 ? c->in[3] : NULL; /* fuse.c's residual */
    cpu_gemm_res(nd->trans_a, nd->trans_b, M, N, K, nd->alpha, c->in[0], c->in[1], nd->beta,
                 bias != CPU_BIAS_NONE ? c->in[2] : NULL, bias, nd->act, nd->act_alpha, res,
                 c->out[0]);
    return FERRY_OK;
}

static ferry_status prepare_f32(cpu_prep *p, void **state)
{
    (void)state;
    const graph_node *nd = p->nd;
    for (int k = 0; k < nd->n_in; k++)
        if (nd->in[k] >= 0 && cpu_sdt(p->g->values[nd->in[k]].dtype) != FERRY_F32)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "node '%s' (%s): input '%s' is %s; the cpu backend computes this "
                              "operator on floating tensors only",
                              nd->name, op_name(nd->op), p->g->values[nd->in[k]].name,
                              ferry_dtype_name(p->g->values[nd->in[k]].dtype));
    return FERRY_OK;
}

static ferry_status prepare_gemm(cpu_prep *p, void **state)
{
    if (p->nd->act > ACT_TANH)
        return unsupported(p->nd, "this fused activation is not supported on Gemm");
    return prepare_f32(p, state);
}

static ferry_status run_matmul(const cpu_call *c)
{
    dims a = in_dims(c, 0), b = in_dims(c, 1), y = out_dims(c, 0);
    cpu_matmul(c->in[0], a.d, a.n, c->in[1], b.d, b.n, c->out[0], y.d, y.n);
    return FERRY_OK;
}

/* Einsum in einsum.h's layout: scratch holds A' and B' when their
 * transposes are not the identity, and Y' when the output's is not, each
 * 64-byte aligned. */
static size_t einsum_part(int64_t elems)
{
    return ((size_t)elems * sizeof(float) + 63) & ~(size_t)63;
}

static ferry_status prepare_einsum(cpu_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    einsum_layout l;
    einsum_layout_of(nd, &l);
    const graph *g = p->g;
    int64_t n = p->max_batch;
    p->scratch = 0;
    if (nd->mode > 1) {
        if (!l.id_a)
            p->scratch += einsum_part(graph_value_numel(&g->values[nd->in[0]], n));
        if (!l.id_b)
            p->scratch += einsum_part(graph_value_numel(&g->values[nd->in[1]], n));
        if (!l.id_y)
            p->scratch += einsum_part(graph_value_numel(&g->values[nd->out[0]], n));
    }
    return prepare_f32(p, state);
}

static int64_t dims_prod(const int64_t *d, int from, int to)
{
    int64_t e = 1;
    for (int i = from; i < to; i++)
        e *= d[i];
    return e;
}

/* x transposed by perm into the next part of *scratch, or x itself when
 * perm is the identity. */
static const float *einsum_operand(const float *x, const dims *d, const int *perm, int identity,
                                   char **scratch)
{
    if (identity)
        return x;
    float *t = (float *)*scratch;
    cpu_transpose(x, d->d, d->n, perm, t, sizeof(float));
    *scratch += einsum_part(numel(d));
    return t;
}

static ferry_status run_einsum(const cpu_call *c)
{
    einsum_layout l;
    einsum_layout_of(c->nd, &l);
    dims a = in_dims(c, 0), y = out_dims(c, 0);
    if (c->nd->mode < 2) {
        cpu_transpose(c->in[0], a.d, a.n, l.perm_y, c->out[0], sizeof(float));
        return FERRY_OK;
    }
    dims b = in_dims(c, 1);
    char *scratch = c->scratch;
    const float *ap = einsum_operand(c->in[0], &a, l.perm_a, l.id_a, &scratch);
    const float *bp = einsum_operand(c->in[1], &b, l.perm_b, l.id_b, &scratch);
    /* A' [batch, free A, contracted], B' [batch, contracted, free B] */
    int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    for (int i = 0; i < a.n; i++)
        ad[i] = a.d[l.perm_a[i]];
    for (int i = 0; i < b.n; i++)
        bd[i] = b.d[l.perm_b[i]];
    int nb = l.n_batch, fa = nb + l.n_free_a, kb = nb + l.n_contract;
    int64_t bt = dims_prod(ad, 0, nb), M = dims_prod(ad, nb, fa), K = dims_prod(ad, fa, a.n);
    int64_t N = dims_prod(bd, kb, b.n);
    int64_t a3[3] = {bt, M, K}, b3[3] = {bt, K, N}, y3[3] = {bt, M, N};
    float *yp = l.id_y ? c->out[0] : (float *)scratch;
    cpu_matmul(ap, a3, 3, bp, b3, 3, yp, y3, 3);
    if (!l.id_y) {
        /* Y' dims: batch and free A as in A', free B as in B' */
        memcpy(yd, ad, sizeof(int64_t) * (size_t)fa);
        memcpy(yd + fa, bd + kb, sizeof(int64_t) * (size_t)l.n_free_b);
        cpu_transpose(yp, yd, y.n, l.perm_y, c->out[0], sizeof(float));
    }
    return FERRY_OK;
}

static ferry_status run_binary(const cpu_call *c)
{
    dims a = in_dims(c, 0), b = in_dims(c, 1), y = out_dims(c, 0);
    ferry_dtype adt = in_sdt(c, 0), bdt = in_sdt(c, 1);
    op_kind op = c->nd->op;
    if (adt == FERRY_F32 && bdt == FERRY_F32 && op != OP_MOD) {
        cpu_binary(op, c->in[0], a.d, a.n, c->in[1], b.d, b.n, c->out[0], y.d, y.n);
        return FERRY_OK;
    }
    if (op == OP_POW) {
        cpu_pow(c->in[0], adt, a.d, a.n, c->in[1], bdt, b.d, b.n, c->out[0], y.d, y.n);
        return FERRY_OK;
    }
    cpu_binary_op bop = op == OP_ADD   ? CPU_BIN_ADD
                        : op == OP_SUB ? CPU_BIN_SUB
                        : op == OP_MUL ? CPU_BIN_MUL
                        : op == OP_DIV ? CPU_BIN_DIV
                                       : CPU_BIN_MOD;
    cpu_binary_arith(bop, adt, c->nd->mode, c->in[0], a.d, a.n, c->in[1], b.d, b.n, c->out[0], y.d,
                     y.n);
    return FERRY_OK;
}

static ferry_status prepare_binary(cpu_prep *p, void **state)
{
    (void)state;
    ferry_dtype dt = cpu_sdt(p->g->values[p->nd->in[0]].dtype);
    if (dt != FERRY_F32 && dt != FERRY_I64 && dt != FERRY_I32)
        return unsupported(p->nd, "this input type is not supported");
    return FERRY_OK;
}

static ferry_status run_unary_old(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_unary(c->nd->op, c->in[0], c->out[0], numel(&x), c->nd->alpha, c->nd->approximate);
    return FERRY_OK;
}

static ferry_status run_unary(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    int64_t cnt = numel(&x);
    cpu_unary_op op;
    float a = nd->alpha, b = nd->act_beta;
    switch (nd->op) {
    case OP_NEG: op = CPU_UN_NEG; break;
    case OP_ABS: op = CPU_UN_ABS; break;
    case OP_EXP: op = CPU_UN_EXP; break;
    case OP_LOG: op = CPU_UN_LOG; break;
    case OP_RECIPROCAL: op = CPU_UN_RECIPROCAL; break;
    case OP_FLOOR: op = CPU_UN_FLOOR; break;
    case OP_CEIL: op = CPU_UN_CEIL; break;
    case OP_SIN: op = CPU_UN_SIN; break;
    case OP_COS: op = CPU_UN_COS; break;
    case OP_SOFTPLUS: op = CPU_UN_SOFTPLUS; break;
    case OP_ROUND: op = CPU_UN_ROUND; break;
    case OP_SIGN: op = CPU_UN_SIGN; break;
    case OP_HARD_SIGMOID: op = CPU_UN_HARD_SIGMOID; break;
    case OP_HARD_SWISH: op = CPU_UN_HARD_SWISH; break;
    case OP_CLIP: op = CPU_UN_CLIP; break;
    case OP_MISH: op = CPU_UN_MISH; break;
    case OP_ELU: op = CPU_UN_ELU; break;
    case OP_SELU: op = CPU_UN_SELU; break;
    case OP_CELU: op = CPU_UN_CELU; break;
    case OP_THRESHOLDED_RELU: op = CPU_UN_THRESHOLDED_RELU; break;
    case OP_SOFTSIGN: op = CPU_UN_SOFTSIGN; break;
    case OP_SHRINK: op = CPU_UN_SHRINK; break;
    default: return unsupported(nd, "no unary kernel");
    }
    ferry_dtype dt = in_sdt(c, 0);
    if (dt == FERRY_F32)
        cpu_unary_f32(op, c->in[0], c->out[0], cnt, a, b);
    else
        cpu_unary_int(op, dt, c->in[0], c->out[0], cnt, 0, 0);
    return FERRY_OK;
}

static ferry_status run_prelu(const cpu_call *c)
{
    dims x = in_dims(c, 0), s = in_dims(c, 1);
    const float *xp = c->in[0];
    float *y = c->out[0];
    cpu_binary(OP_MUL, xp, x.d, x.n, c->in[1], s.d, s.n, y, x.d, x.n);
    int64_t cnt = numel(&x);
    for (int64_t i = 0; i < cnt; i++)
        if (xp[i] >= 0)
            y[i] = xp[i];
    return FERRY_OK;
}

static ferry_status run_softmax(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    int axis = c->nd->axis < 0 ? c->nd->axis + x.n : c->nd->axis;
    int flat = c->g->opset > 0 && c->g->opset < 13;
    int64_t outer = 1, L = 1, inner = 1;
    for (int d = 0; d < x.n; d++) {
        if (d < axis)
            outer *= x.d[d];
        else if (d == axis || flat)
            L *= x.d[d];
        else
            inner *= x.d[d];
    }
    if (c->nd->mode == 1) { /* fuse.c: x * alpha + mask over the last axis */
        cpu_softmax_fused f;
        memset(&f, 0, sizeof f);
        f.scale = c->nd->alpha;
        f.nd = x.n - 1;
        if (c->nd->n_in > 1 && c->nd->in[1] >= 0) {
            dims m = in_dims(c, 1);
            f.mask = c->in[1];
            graph_mask_strides(x.d, x.n, m.d, m.n, f.mstride);
        }
        for (int d = 0; d < f.nd; d++)
            f.dims[d] = x.d[d];
        cpu_softmax_ex(c->in[0], c->out[0], outer, L, 1, 0, &f);
        return FERRY_OK;
    }
    cpu_softmax(c->in[0], c->out[0], outer, L, inner, c->nd->op == OP_LOG_SOFTMAX);
    return FERRY_OK;
}

/* Softmax, LogSoftmax, LayerNormalization: the axis within the rank. */
static ferry_status prepare_axis(cpu_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    int r = p->g->values[nd->in[0]].ndim;
    if (nd->axis < -r || nd->axis >= r)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): axis %d out of range for rank %d",
                          nd->name, op_name(nd->op), nd->axis, r);
    return prepare_f32(p, state);
}

static ferry_status prepare_layer_norm(cpu_prep *p, void **state)
{
    ferry_status st = prepare_axis(p, state);
    if (st)
        return st;
    const graph_node *nd = p->nd;
    const graph_value *x = &p->g->values[nd->in[0]];
    int64_t cols = 1;
    for (int d = nd->axis < 0 ? nd->axis + x->ndim : nd->axis; d < x->ndim; d++)
        cols *= x->dims[d];
    for (int i = 1; i < 3 && i < nd->n_in; i++)
        if (nd->in[i] >= 0 && graph_value_numel(&p->g->values[nd->in[i]], 1) != cols)
            return unsupported(nd, "a broadcast scale or bias is not supported");
    return prepare_f32(p, state);
}

static ferry_status run_layer_norm(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    int64_t rows = 1, cols = 1;
    int axis = nd->axis < 0 ? nd->axis + x.n : nd->axis;
    for (int d = 0; d < x.n; d++) {
        if (d < axis)
            rows *= x.d[d];
        else
            cols *= x.d[d];
    }
    const float *bias = nd->n_in >= 3 && nd->in[2] >= 0 ? c->in[2] : NULL;
    float *mean = nd->n_out >= 2 ? c->out[1] : NULL;
    float *rstd = nd->n_out >= 3 ? c->out[2] : NULL;
    cpu_layer_norm(c->in[0], c->in[1], bias, c->out[0], mean, rstd, rows, cols, nd->epsilon);
    return FERRY_OK;
}

static ferry_status run_cast(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_cast(c->in[0], in_sdt(c, 0), c->out[0], cpu_sdt(c->g->values[c->nd->out[0]].dtype),
             c->nd->to, numel(&x));
    return FERRY_OK;
}

/* Views run only where the planner could not alias them (a graph input
 * or output on one side): a copy. */
static ferry_status run_view(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    if (c->out[0] != c->in[0])
        memcpy(c->out[0], c->in[0], (size_t)numel(&x) * in_esz(c, 0));
    return FERRY_OK;
}

/* ----------------------------------------------------------- reductions */

static ferry_status run_reduce(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    int mark[FERRY_MAX_DIMS] = {0};
    for (int i = 0; i < nd->n_axes; i++)
        mark[nd->axes[i] < 0 ? nd->axes[i] + x.n : nd->axes[i]] = 1;
    if (nd->n_axes == 0)
        for (int i = 0; i < x.n; i++)
            mark[i] = 1;
    cpu_reduce_op op;
    switch (nd->op) {
    case OP_REDUCE_MEAN: op = CPU_RED_MEAN; break;
    case OP_REDUCE_SUM: op = CPU_RED_SUM; break;
    case OP_REDUCE_MAX: op = CPU_RED_MAX; break;
    case OP_REDUCE_MIN: op = CPU_RED_MIN; break;
    case OP_REDUCE_PROD: op = CPU_RED_PROD; break;
    case OP_REDUCE_L2: op = CPU_RED_L2; break;
    case OP_REDUCE_SUM_SQUARE: op = CPU_RED_SUM_SQUARE; break;
    case OP_REDUCE_LOG_SUM_EXP: op = CPU_RED_LOG_SUM_EXP; break;
    case OP_REDUCE_L1: op = CPU_RED_L1; break;
    case OP_REDUCE_LOG_SUM: op = CPU_RED_LOG_SUM; break;
    default: return unsupported(nd, "no reduction kernel");
    }
    cpu_reduce(op, in_sdt(c, 0), c->in[0], x.d, x.n, mark, c->out[0]);
    return FERRY_OK;
}

static ferry_status run_arg(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_arg_reduce(c->nd->op == OP_ARGMAX, in_sdt(c, 0), c->in[0], x.d, x.n, c->nd->axis,
                   c->nd->mode, c->out[0]);
    return FERRY_OK;
}

static ferry_status run_topk(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    const graph_value *v = &c->g->values[c->nd->out[0]];
    cpu_topk(in_sdt(c, 0), c->in[0], x.d, x.n, c->nd->axis, v->dims[c->nd->axis], c->nd->mode,
             c->out[0], c->out[1]);
    return FERRY_OK;
}

static ferry_status run_cumsum(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_cumsum(c->in[0], in_sdt(c, 0), x.d, x.n, c->nd->axis, c->nd->mode, c->nd->mode2, c->out[0]);
    return FERRY_OK;
}

/* ---------------------------------------------- comparisons and selection */

static ferry_status run_compare(const cpu_call *c)
{
    dims a = in_dims(c, 0), b = in_dims(c, 1), y = out_dims(c, 0);
    op_kind op = c->nd->op;
    if (op == OP_AND || op == OP_OR || op == OP_XOR) {
        cpu_logical(op == OP_AND  ? CPU_LOGIC_AND
                    : op == OP_OR ? CPU_LOGIC_OR
                                  : CPU_LOGIC_XOR,
                    c->in[0], a.d, a.n, c->in[1], b.d, b.n, c->out[0], y.d, y.n);
        return FERRY_OK;
    }
    cpu_cmp_op cop = op == OP_EQUAL        ? CPU_CMP_EQ
                     : op == OP_LESS       ? CPU_CMP_LT
                     : op == OP_LESS_EQUAL ? CPU_CMP_LE
                     : op == OP_GREATER    ? CPU_CMP_GT
                                           : CPU_CMP_GE;
    cpu_compare(cop, in_sdt(c, 0), c->in[0], a.d, a.n, c->in[1], b.d, b.n, c->out[0], y.d, y.n);
    return FERRY_OK;
}

static ferry_status run_not(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_not(c->in[0], c->out[0], numel(&x));
    return FERRY_OK;
}

static ferry_status run_float_test(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    if (c->nd->op == OP_IS_NAN)
        cpu_isnan(c->in[0], c->out[0], numel(&x));
    else
        cpu_isinf(c->in[0], c->out[0], numel(&x), c->nd->mode, c->nd->mode2);
    return FERRY_OK;
}

static ferry_status run_one_hot(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < x.n; d++)
        *(d < c->nd->axis ? &outer : &inner) *= x.d[d];
    cpu_one_hot(c->in[0], in_sdt(c, 0), outer, inner, c->nd->starts[0], c->in[2], in_esz(c, 2),
                c->out[0]);
    return FERRY_OK;
}

static ferry_status run_where(const cpu_call *c)
{
    dims cd = in_dims(c, 0), a = in_dims(c, 1), b = in_dims(c, 2), y = out_dims(c, 0);
    cpu_where(c->in[0], cd.d, cd.n, c->in[1], a.d, a.n, c->in[2], b.d, b.n, c->out[0], y.d, y.n,
              in_esz(c, 1));
    return FERRY_OK;
}

static ferry_status run_variadic(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims d[GRAPH_MAX_IO], y = out_dims(c, 0);
    const int64_t *xd[GRAPH_MAX_IO];
    int xn[GRAPH_MAX_IO];
    for (int k = 0; k < nd->n_in; k++) {
        d[k] = in_dims(c, k);
        xd[k] = d[k].d;
        xn[k] = d[k].n;
    }
    cpu_variadic(nd->op == OP_MIN ? CPU_BIN_MIN : CPU_BIN_MAX, in_sdt(c, 0), nd->n_in, c->in, xd,
                 xn, c->out[0], y.d, y.n);
    return FERRY_OK;
}

/* -------------------------------------------------------- data movement */

static ferry_status run_concat(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims y = out_dims(c, 0);
    int64_t lens[GRAPH_MAX_IO];
    for (int k = 0; k < nd->n_in; k++) {
        dims x = in_dims(c, k);
        lens[k] = x.d[nd->axis];
    }
    cpu_concat(c->in, lens, nd->n_in, c->out[0], y.d, y.n, nd->axis, in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status prepare_split(cpu_prep *p, void **state)
{
    (void)state;
    const graph_node *nd = p->nd;
    const graph_value *x = &p->g->values[nd->in[0]];
    int64_t inner = 1, big = 0;
    for (int d = 0; d < x->ndim; d++)
        inner *= d == nd->axis ? 1 : graph_dim(x->dims[d], p->max_batch);
    for (int k = 0; k < nd->n_out; k++)
        if (nd->splits[k] > big)
            big = nd->splits[k];
    /* outputs nobody reads are written to scratch */
    p->scratch = (size_t)(inner * big) * ferry_dtype_size(cpu_sdt(x->dtype));
    return FERRY_OK;
}

static ferry_status run_split(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    void *outs[GRAPH_MAX_IO];
    for (int k = 0; k < nd->n_out; k++)
        outs[k] = c->out[k] ? c->out[k] : c->scratch;
    cpu_split(c->in[0], x.d, x.n, nd->axis, nd->splits, nd->n_out, outs, in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_slice(const cpu_call *c)
{
    dims x = in_dims(c, 0), y = out_dims(c, 0);
    cpu_slice(c->in[0], x.d, x.n, c->nd->starts, c->nd->steps, c->out[0], y.d, in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_transpose(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    int perm[FERRY_MAX_DIMS];
    for (int i = 0; i < x.n; i++)
        perm[i] = (int)c->nd->perm[i];
    cpu_transpose(c->in[0], x.d, x.n, perm, c->out[0], in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_gather(const cpu_call *c)
{
    dims x = in_dims(c, 0), idx = in_dims(c, 1);
    if (c->nd->mode) {
        /* along the batch (shape.c's batch_position): each sample's
         * indices must stay in its own block of mode rows */
        int64_t k = c->nd->mode, samples = x.d[0] / k;
        int64_t per = samples > 0 ? numel(&idx) / samples : 0;
        if (cpu_gather_in_blocks(c->in[1], in_sdt(c, 1), numel(&idx), per, k))
            return ferry_fail(FERRY_EINVAL,
                              "node '%s' (Gather): an index in '%s' leaves its sample's %lld rows",
                              c->nd->name, c->g->values[c->nd->in[1]].name, (long long)k);
    }
    if (cpu_gather(c->in[0], x.d, x.n, c->nd->axis, c->in[1], in_sdt(c, 1), numel(&idx), c->out[0],
                   in_esz(c, 0)))
        return ferry_fail(FERRY_EINVAL,
                          "node '%s' (Gather): an index in '%s' is out of range [-%lld, %lld)",
                          c->nd->name, c->g->values[c->nd->in[1]].name, (long long)x.d[c->nd->axis],
                          (long long)x.d[c->nd->axis]);
    return FERRY_OK;
}

static ferry_status run_gather_elements(const cpu_call *c)
{
    dims x = in_dims(c, 0), idx = in_dims(c, 1);
    if (cpu_gather_elements(c->in[0], x.d, x.n, c->nd->axis, c->in[1], in_sdt(c, 1), idx.d,
                            c->out[0], in_esz(c, 0)))
        return ferry_fail(FERRY_EINVAL, "node '%s' (GatherElements): an index is out of range",
                          c->nd->name);
    return FERRY_OK;
}

/* GatherND's and ScatterND's index tuples: k components each; with mode2
 * (shape_data.c: data's and indices' first dims hold the batch) each
 * sample's block of data rows and its own count of tuples. */
typedef struct nd_tuples {
    int k;
    int64_t tuples, block, per_sample;
} nd_tuples;

static nd_tuples nd_tuples_of(const cpu_call *c, const dims *x, const dims *idx)
{
    nd_tuples t = {(int)idx->d[idx->n - 1], 0, 0, 0};
    t.tuples = t.k ? numel(idx) / t.k : 0;
    if (c->nd->mode2 && c->n > 0) {
        t.block = x->d[0] / c->n;
        t.per_sample = t.tuples / c->n;
    }
    return t;
}

/* What cpu_scatter_nd / cpu_gather_nd returned, as the node's error: -1
 * an index out of range, else nonzero a tuple that leaves its sample's
 * `block` rows (`verb`: "reads" or "writes"). */
static ferry_status nd_status(const cpu_call *c, int r, const char *verb, int64_t block)
{
    const graph_node *nd = c->nd;
    const char *iname = c->g->values[nd->in[1]].name;
    if (r == -1)
        return ferry_fail(FERRY_EINVAL, "node '%s' (%s): an index in '%s' is out of range",
                          nd->name, op_name(nd->op), iname);
    if (r)
        return ferry_fail(FERRY_EINVAL,
                          "node '%s' (%s): an index in '%s' %s outside its sample's %lld rows",
                          nd->name, op_name(nd->op), iname, verb, (long long)block);
    return FERRY_OK;
}

static ferry_status run_scatter_nd(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0), idx = in_dims(c, 1);
    nd_tuples t = nd_tuples_of(c, &x, &idx);
    int r = cpu_scatter_nd(c->in[0], x.d, x.n, c->in[1], in_sdt(c, 1), t.tuples, t.k, c->in[2],
                           in_sdt(c, 0), nd->mode, t.block, t.per_sample, c->out[0]);
    return nd_status(c, r, "writes", t.block);
}

static ferry_status run_gather_nd(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0), idx = in_dims(c, 1);
    nd_tuples t = nd_tuples_of(c, &x, &idx);
    int r = cpu_gather_nd(c->in[0], x.d, x.n, nd->mode, c->in[1], in_sdt(c, 1), t.tuples, t.k,
                          t.block, t.per_sample, c->out[0], in_esz(c, 0));
    return nd_status(c, r, "reads", t.block);
}

static ferry_status run_scatter_elements(const cpu_call *c)
{
    dims x = in_dims(c, 0), idx = in_dims(c, 1);
    if (cpu_scatter_elements(c->in[0], x.d, x.n, c->nd->axis, c->in[1], in_sdt(c, 1), idx.d,
                             c->in[2], in_sdt(c, 0), c->nd->mode, c->out[0]))
        return ferry_fail(FERRY_EINVAL,
                          "node '%s' (ScatterElements): an index in '%s' is out of range",
                          c->nd->name, c->g->values[c->nd->in[1]].name);
    return FERRY_OK;
}

static ferry_status run_expand(const cpu_call *c)
{
    dims x = in_dims(c, 0), y = out_dims(c, 0);
    cpu_expand(c->in[0], x.d, x.n, c->out[0], y.d, y.n, in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_tile(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_tile(c->in[0], x.d, x.n, c->in[1], c->out[0], in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_constant_of_shape(const cpu_call *c)
{
    dims y = out_dims(c, 0);
    static const float zero = 0.0f;
    const graph_value *ov = &c->g->values[c->nd->out[0]];
    const void *val = c->nd->n_in > 1 && c->in[1] ? c->in[1] : &zero;
    cpu_fill(c->out[0], numel(&y), val, ferry_dtype_size(cpu_sdt(ov->dtype)));
    return FERRY_OK;
}

static ferry_status run_range(const cpu_call *c)
{
    dims y = out_dims(c, 0);
    cpu_range(in_sdt(c, 0), c->in[0], c->in[2], y.d[0], c->out[0]);
    return FERRY_OK;
}

static ferry_status run_eye_like(const cpu_call *c)
{
    dims y = out_dims(c, 0);
    cpu_eye(c->out[0], y.d[0], y.d[1], c->nd->starts[0],
            cpu_sdt(c->g->values[c->nd->out[0]].dtype));
    return FERRY_OK;
}

static ferry_status run_trilu(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_trilu(c->in[0], x.d, x.n, c->nd->mode, c->nd->starts[0], c->out[0], in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_depth_to_space(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    cpu_depth_to_space(c->in[0], x.d, c->nd->axis, c->nd->mode, c->out[0], in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_pad(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    int64_t pads[2 * FERRY_MAX_DIMS];
    for (int i = 0; i < x.n; i++) {
        pads[i] = nd->starts[i];
        pads[x.n + i] = nd->ends[i];
    }
    float fv = nd->alpha;
    int64_t iv = (int64_t)nd->alpha;
    int32_t i32 = (int32_t)nd->alpha;
    uint8_t bv = nd->alpha != 0;
    ferry_dtype dt = in_sdt(c, 0);
    const void *val = dt == FERRY_F32   ? (const void *)&fv
                      : dt == FERRY_I64 ? (const void *)&iv
                      : dt == FERRY_I32 ? (const void *)&i32
                                        : (const void *)&bv;
    cpu_pad(c->in[0], x.d, x.n, pads, (cpu_pad_mode)nd->mode, val, c->out[0], in_esz(c, 0));
    return FERRY_OK;
}

static ferry_status run_resize(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0), y = out_dims(c, 0);
    if (nd->mode == RESIZE_CUBIC) {
        cpu_resize_cubic(c->in[0], x.d, x.n, c->out[0], y.d, nd->scales,
                         (cpu_resize_coord)nd->mode2, nd->alpha);
        return FERRY_OK;
    }
    cpu_resize(c->in[0], x.d, x.n, c->out[0], y.d, nd->scales, (cpu_resize_mode)nd->mode,
               (cpu_resize_coord)nd->mode2, (cpu_resize_nearest)nd->mode3);
    return FERRY_OK;
}

static ferry_status run_grid_sample(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0), y = out_dims(c, 0);
    cpu_grid_sample(c->in[0], x.d, c->in[1], y.d[2], y.d[3], c->out[0], nd->mode == GRID_NEAREST,
                    nd->mode2, nd->mode3);
    return FERRY_OK;
}

/* ------------------------------------------- convolution, pooling, norms */

static cpu_act to_cpu_act(act_kind a)
{
    switch (a) {
    case ACT_RELU: return CPU_ACT_RELU;
    case ACT_LEAKY_RELU: return CPU_ACT_LEAKY_RELU;
    case ACT_SIGMOID: return CPU_ACT_SIGMOID;
    case ACT_GELU: return CPU_ACT_GELU;
    case ACT_GELU_TANH: return CPU_ACT_GELU_TANH;
    case ACT_CLIP: return CPU_ACT_CLIP;
    case ACT_HARD_SWISH: return CPU_ACT_HARDSWISH;
    case ACT_HARD_SIGMOID: return CPU_ACT_HARDSIGMOID;
    case ACT_SILU: return CPU_ACT_SILU;
    default: return CPU_ACT_NONE;
    }
}

static ferry_status prepare_conv(cpu_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    const graph *g = p->g;
    const graph_value *x = &g->values[nd->in[0]], *w = &g->values[nd->in[1]];
    const conv_attrs *a = &nd->conv;
    if (nd->act == ACT_TANH)
        return unsupported(nd, "a fused tanh is not supported");
    if (!p->cin[1])
        return unsupported(nd, "the weight must be a constant");
    cpu_conv_params cp;
    memset(&cp, 0, sizeof cp);
    cp.rank = a->nsp;
    cp.transposed = nd->op == OP_CONV_TRANSPOSE;
    cp.c_in = x->dims[1];
    cp.c_out = g->values[nd->out[0]].dims[1];
    cp.group = a->group;
    for (int i = 0; i < a->nsp; i++) {
        cp.in[i] = x->dims[2 + i];
        cp.kernel[i] = a->kernel[i];
        cp.stride[i] = a->strides[i];
        cp.dilation[i] = a->dilations[i];
        cp.pad_begin[i] = a->pads[i];
        cp.pad_end[i] = a->pads[i + a->nsp];
        cp.output_padding[i] = a->out_pad[i];
    }
    (void)w;
    cp.max_batch = p->max_batch;
    cp.act = to_cpu_act(nd->act);
    cp.alpha = nd->act_alpha;
    cp.beta = nd->act_beta;
    cp.residual = nd->n_in > 3 && nd->in[3] >= 0 ? CPU_RESIDUAL_BEFORE_ACT : CPU_RESIDUAL_NONE;
    const float *bias = nd->n_in > 2 && nd->in[2] >= 0 ? p->cin[2] : NULL;
    if (nd->n_in > 2 && nd->in[2] >= 0 && !bias)
        return unsupported(nd, "the bias must be a constant");
    ferry_status st = cpu_conv_create(&cp, p->cin[1], bias, (cpu_conv **)state);
    if (st)
        return ferry_fail_prefix(st, "node '%s'", nd->name);
    return FERRY_OK;
}

/* oneDNN builds (and keeps) a primitive and its buffers per batch size,
 * so a batch runs as chunks of power-of-two sizes up to CHUNK_MAX: at most
 * log2(CHUNK_MAX) + 1 plans per node whatever sizes the batcher forms.
 * When this forward has the cores to itself (threads > 1) the chunks are
 * shared by the backend's pool; a lone sample's conv splits itself
 * (channel slices or Winograd tiles on the pool's threads). */
#define CHUNK_MAX 32

typedef struct chunked {
    const cpu_call *c;
    int64_t top, full;            /* full chunks of top samples, then the rest: */
    int64_t roff[8], rlen[8];     /* powers of two below top */
    int64_t n;                    /* chunks in all */
    size_t in_stride, out_stride; /* floats per sample */
    int is_conv;
    ferry_status st;
} chunked;

static void chunks_make(chunked *k, int64_t n, int threads)
{
    int64_t share = (n + threads - 1) / threads, top = 1;
    while (top * 2 <= share && top * 2 <= CHUNK_MAX)
        top *= 2;
    k->top = top;
    k->full = n / top;
    int r = 0;
    for (int64_t at = k->full * top, len = top / 2; at < n; len /= 2)
        if (len <= n - at) {
            k->roff[r] = at;
            k->rlen[r++] = len;
            at += len;
        }
    k->n = k->full + r;
}

static void chunk_run(void *arg, int64_t i)
{
    chunked *k = arg;
    const cpu_call *c = k->c;
    int64_t off = i < k->full ? i * k->top : k->roff[i - k->full];
    int64_t len = i < k->full ? k->top : k->rlen[i - k->full];
    const float *x = (const float *)c->in[0] + (size_t)off * k->in_stride;
    float *y = (float *)c->out[0] + (size_t)off * k->out_stride;
    ferry_status st;
    if (k->is_conv) {
        const float *res = c->nd->n_in > 3 && c->in[3]
                               ? (const float *)c->in[3] + (size_t)off * k->out_stride
                               : NULL;
        st = cpu_conv_run_layout(c->state, len, c->lin, c->lout, 1, x, res, y);
    } else {
        st = cpu_pool_run_layout(c->state, len, c->lin, c->lout, 1, x, y);
    }
    if (st != FERRY_OK)
        k->st = st; /* any failure will do: they all name this node */
}

static ferry_status run_chunked(const cpu_call *c, int is_conv)
{
    dims x = in_dims(c, 0), y = out_dims(c, 0);
    int64_t n = x.d[0];
    if (n == 1 && c->threads > 1 && is_conv) {
        const float *res = c->nd->n_in > 3 ? c->in[3] : NULL;
        return cpu_conv_run_layout(c->state, 1, c->lin, c->lout, c->threads, c->in[0], res,
                                   c->out[0]);
    }
    chunked k;
    k.c = c;
    k.is_conv = is_conv;
    k.st = FERRY_OK;
    k.in_stride = (size_t)(numel(&x) / n);
    k.out_stride = (size_t)(numel(&y) / n);
    chunks_make(&k, n, c->threads);
    if (c->threads > 1 && k.n > 1)
        cpu_parallel_for(chunk_run, &k, k.n, c->threads);
    else
        for (int64_t i = 0; i < k.n; i++)
            chunk_run(&k, i);
    return k.st;
}

static ferry_status run_conv(const cpu_call *c)
{
    return run_chunked(c, 1);
}

static void destroy_conv(void *s)
{
    cpu_conv_destroy(s);
}

static ferry_status prepare_pool(cpu_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    const graph_value *x = &p->g->values[nd->in[0]];
    int nsp = x->ndim - 2;
    if (nsp < 1 || nsp > 3)
        return unsupported(nd, "only 1-D, 2-D and 3-D pooling is supported");
    cpu_pool_params pp;
    memset(&pp, 0, sizeof pp);
    pp.kind = nd->op == OP_MAX_POOL          ? CPU_POOL_MAX
              : nd->op == OP_AVG_POOL        ? CPU_POOL_AVG
              : nd->op == OP_GLOBAL_MAX_POOL ? CPU_POOL_GLOBAL_MAX
                                             : CPU_POOL_GLOBAL_AVG;
    pp.rank = nsp;
    pp.c = x->dims[1];
    const conv_attrs *a = &nd->conv;
    for (int i = 0; i < nsp; i++) {
        pp.in[i] = x->dims[2 + i];
        if (nd->op == OP_MAX_POOL || nd->op == OP_AVG_POOL) {
            pp.kernel[i] = a->kernel[i];
            pp.stride[i] = a->strides[i];
            pp.dilation[i] = a->dilations[i];
            pp.pad_begin[i] = a->pads[i];
            pp.pad_end[i] = a->pads[i + nsp];
        } else {
            pp.kernel[i] = x->dims[2 + i];
        }
    }
    pp.ceil_mode = a->ceil_mode;
    pp.count_include_pad = a->count_include_pad;
    pp.max_batch = p->max_batch;
    ferry_status st = cpu_pool_create(&pp, (cpu_pool **)state);
    if (st)
        return ferry_fail_prefix(st, "node '%s'", nd->name);
    return FERRY_OK;
}

static ferry_status run_pool(const cpu_call *c)
{
    return run_chunked(c, 0);
}

static void destroy_pool(void *s)
{
    cpu_pool_destroy(s);
}

static ferry_status run_batch_norm(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    int64_t sp = 1;
    for (int d = 2; d < x.n; d++)
        sp *= x.d[d];
    cpu_batchnorm(c->in[0], c->out[0], x.d[0], x.d[1], sp, c->in[1], c->in[2], c->in[3], c->in[4],
                  c->nd->epsilon);
    return FERRY_OK;
}

static ferry_status run_instance_norm(const cpu_call *c)
{
    dims x = in_dims(c, 0);
    int64_t sp = 1;
    for (int d = 2; d < x.n; d++)
        sp *= x.d[d];
    cpu_instance_norm(c->in[0], c->in[1], c->in[2], c->out[0], x.d[0] * x.d[1], sp, x.d[1],
                      c->nd->epsilon);
    return FERRY_OK;
}

/* ------------------------------------------------------------ recurrent */

static ferry_status prepare_rnn(cpu_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    const graph *g = p->g;
    const graph_value *x = &g->values[nd->in[0]];
    cpu_rnn_params rp;
    memset(&rp, 0, sizeof rp);
    rp.kind = nd->op == OP_LSTM ? CPU_RNN_LSTM : nd->op == OP_GRU ? CPU_RNN_GRU : CPU_RNN_PLAIN;
    rp.relu = nd->op == OP_RNN && nd->mode == RNN_ACT_RELU;
    rp.hidden = nd->hidden;
    rp.x_projected = nd->x_projected;
    /* a projected X holds D*4H per row; W keeps the input size */
    rp.input = nd->x_projected ? g->values[nd->in[1]].dims[2] : x->dims[2];
    rp.direction = (cpu_rnn_direction)nd->direction;
    rp.layout = nd->layout;
    rp.linear_before_reset = nd->linear_before_reset;
    rp.has_clip = nd->clip > 0;
    rp.clip = nd->clip;
    rp.name = nd->name;
    ferry_tensor t[4];
    const ferry_tensor *tp[4] = {NULL, NULL, NULL, NULL};
    static const int slot[4] = {1, 2, 3, 7};
    for (int i = 0; i < 4; i++) {
        int k = slot[i];
        if (k >= nd->n_in || nd->in[k] < 0)
            continue;
        const graph_value *v = &g->values[nd->in[k]];
        if (!p->cin[k])
            return unsupported(nd, "W, R, B and P must be constants");
        t[i].dtype = FERRY_F32;
        t[i].ndim = v->ndim;
        memcpy(t[i].shape, v->dims, sizeof t[i].shape);
        t[i].data = (void *)p->cin[k];
        tp[i] = &t[i];
    }
    cpu_rnn *r;
    ferry_status st = cpu_rnn_create(&rp, tp[0], tp[1], tp[2], tp[3], &r);
    if (st)
        return st;
    int64_t seq = nd->layout ? x->dims[1] : x->dims[0];
    int64_t batch = graph_dim(nd->layout ? x->dims[0] : x->dims[1], p->max_batch);
    p->scratch = cpu_rnn_workspace_bytes(r, batch, seq);
    *state = r;
    return FERRY_OK;
}

static ferry_status run_rnn(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    dims x = in_dims(c, 0);
    int64_t seq = nd->layout ? x.d[1] : x.d[0], batch = nd->layout ? x.d[0] : x.d[1];
    const void *lens = nd->n_in > 4 ? c->in[4] : NULL;
    const float *h0 = nd->n_in > 5 ? c->in[5] : NULL, *c0 = nd->n_in > 6 ? c->in[6] : NULL;
    float *y = c->out[0], *yh = nd->n_out > 1 ? c->out[1] : NULL;
    float *yc = nd->op == OP_LSTM && nd->n_out > 2 ? c->out[2] : NULL;
    return cpu_rnn_run(c->state, seq, batch, c->in[0], lens, h0, c0, y, yh, yc, c->scratch);
}

static void destroy_rnn(void *s)
{
    cpu_rnn_destroy(s);
}

/* ----------------------------------------------------------- recommenders */

/* EmbeddingBag: out[n] = sum / mean / max over j of W[X[n, j]]. A plain
 * loop: each bag reads L rows of D floats, memory-bound. */
static ferry_status run_embedding_bag(const cpu_call *c)
{
    dims w = in_dims(c, 0), x = in_dims(c, 1);
    const float *W = c->in[0];
    float *y = c->out[0];
    int64_t rows = w.d[0], D = w.d[1], N = x.d[0], L = x.d[1];
    int i64 = in_sdt(c, 1) == FERRY_I64;
    for (int64_t n = 0; n < N; n++) {
        float *o = y + n * D;
        for (int64_t j = 0; j < L; j++) {
            int64_t id = i64 ? ((const int64_t *)c->in[1])[n * L + j]
                             : ((const int32_t *)c->in[1])[n * L + j];
            if (id < 0)
                id += rows;
            if (id < 0 || id >= rows)
                return ferry_fail(FERRY_EINVAL,
                                  "node '%s' (EmbeddingBag): index %lld is out of range [0, %lld)",
                                  c->nd->name, (long long)id, (long long)rows);
            const float *r = W + id * D;
            if (j == 0) {
                memcpy(o, r, sizeof(float) * (size_t)D);
            } else if (c->nd->mode == 2) {
                for (int64_t d = 0; d < D; d++)
                    o[d] = r[d] > o[d] ? r[d] : o[d];
            } else {
                for (int64_t d = 0; d < D; d++)
                    o[d] += r[d];
            }
        }
        if (L == 0)
            memset(o, 0, sizeof(float) * (size_t)D);
        if (c->nd->mode == 1 && L > 0)
            for (int64_t d = 0; d < D; d++)
                o[d] /= (float)L;
    }
    return FERRY_OK;
}

/* ------------------------------------------------ fused attention */

/* One scores slot [Tq, Tk] per chunk the node may be split into. */
static ferry_status prepare_attention(cpu_prep *p, void **state)
{
    graph_attention ga;
    graph_attention_of(p->g, p->nd, p->max_batch, &ga);
    int64_t slots = cpu_attention_slots(ga.B * ga.heads, ga.Tq, cpu_parallel_threads());
    p->scratch = sizeof(float) * (size_t)(slots * cpu_attention_slot(ga.Tq, ga.Tk));
    return prepare_f32(p, state);
}

static ferry_status run_attention(const cpu_call *c)
{
    const graph_node *nd = c->nd;
    graph_attention ga;
    graph_attention_of(c->g, nd, c->n, &ga);
    cpu_attention_args a = {
        .q = (const float *)c->in[0] + nd->starts[0],
        .k = (const float *)c->in[1] + nd->starts[1],
        .v = (const float *)c->in[2] + nd->starts[2],
        .q_bs = ga.bs[0],
        .k_bs = ga.bs[1],
        .v_bs = ga.bs[2],
        .q_rs = ga.rs[0],
        .k_rs = ga.rs[1],
        .v_rs = ga.rs[2],
        .mask = nd->n_in > 3 && nd->in[3] >= 0 ? c->in[3] : NULL,
        .mstride = {ga.mstride[0], ga.mstride[1], ga.mstride[2]},
        .y = c->out[0],
        .y_bs = ga.bs[3],
        .y_rs = ga.rs[3],
        .B = ga.B,
        .heads = ga.heads,
        .Tq = ga.Tq,
        .Tk = ga.Tk,
        .d = ga.d,
        .scale = nd->alpha,
        /* prepare_attention's slots at max_batch, of which a smaller batch
         * uses no more */
        .scratch = c->scratch,
        .slots = cpu_attention_slots(ga.B * ga.heads, ga.Tq, cpu_parallel_threads()),
    };
    cpu_attention(&a);
    return FERRY_OK;
}

/* ------------------------------------------------------------- the table */

static const cpu_op_impl ops[OP_COUNT] = {
    [OP_GEMM] = {prepare_gemm, run_gemm, NULL},
    [OP_MATMUL] = {prepare_f32, run_matmul, NULL},
    [OP_ADD] = {prepare_binary, run_binary, NULL},
    [OP_SUB] = {prepare_binary, run_binary, NULL},
    [OP_MUL] = {prepare_binary, run_binary, NULL},
    [OP_DIV] = {prepare_binary, run_binary, NULL},
    [OP_POW] = {NULL, run_binary, NULL},
    [OP_MOD] = {prepare_binary, run_binary, NULL},
    [OP_RELU] = {prepare_f32, run_unary_old, NULL},
    [OP_LEAKY_RELU] = {prepare_f32, run_unary_old, NULL},
    [OP_SIGMOID] = {prepare_f32, run_unary_old, NULL},
    [OP_TANH] = {prepare_f32, run_unary_old, NULL},
    [OP_GELU] = {prepare_f32, run_unary_old, NULL},
    [OP_ERF] = {prepare_f32, run_unary_old, NULL},
    [OP_SQRT] = {prepare_f32, run_unary_old, NULL},
    [OP_SOFTMAX] = {prepare_axis, run_softmax, NULL},
    [OP_LOG_SOFTMAX] = {prepare_axis, run_softmax, NULL},
    [OP_LAYER_NORM] = {prepare_layer_norm, run_layer_norm, NULL},
    [OP_REDUCE_MEAN] = {NULL, run_reduce, NULL},
    [OP_REDUCE_SUM] = {NULL, run_reduce, NULL},
    [OP_REDUCE_MAX] = {NULL, run_reduce, NULL},
    [OP_REDUCE_MIN] = {NULL, run_reduce, NULL},
    [OP_REDUCE_PROD] = {NULL, run_reduce, NULL},
    [OP_REDUCE_L2] = {prepare_f32, run_reduce, NULL},
    [OP_REDUCE_SUM_SQUARE] = {NULL, run_reduce, NULL},
    [OP_REDUCE_LOG_SUM_EXP] = {prepare_f32, run_reduce, NULL},
    [OP_REDUCE_L1] = {NULL, run_reduce, NULL},
    [OP_REDUCE_LOG_SUM] = {prepare_f32, run_reduce, NULL},
    [OP_ARGMAX] = {NULL, run_arg, NULL},
    [OP_ARGMIN] = {NULL, run_arg, NULL},
    [OP_CUMSUM] = {NULL, run_cumsum, NULL},
    [OP_TOPK] = {NULL, run_topk, NULL},
    [OP_EINSUM] = {prepare_einsum, run_einsum, NULL},
    [OP_FLATTEN] = {NULL, run_view, NULL},
    [OP_RESHAPE] = {NULL, run_view, NULL},
    [OP_IDENTITY] = {NULL, run_view, NULL},
    [OP_SQUEEZE] = {NULL, run_view, NULL},
    [OP_UNSQUEEZE] = {NULL, run_view, NULL},
    [OP_CAST] = {NULL, run_cast, NULL},
    [OP_NEG] = {NULL, run_unary, NULL},
    [OP_ABS] = {NULL, run_unary, NULL},
    [OP_EXP] = {prepare_f32, run_unary, NULL},
    [OP_LOG] = {prepare_f32, run_unary, NULL},
    [OP_RECIPROCAL] = {prepare_f32, run_unary, NULL},
    [OP_FLOOR] = {prepare_f32, run_unary, NULL},
    [OP_CEIL] = {prepare_f32, run_unary, NULL},
    [OP_SIN] = {prepare_f32, run_unary, NULL},
    [OP_COS] = {prepare_f32, run_unary, NULL},
    [OP_SOFTPLUS] = {prepare_f32, run_unary, NULL},
    [OP_ROUND] = {prepare_f32, run_unary, NULL},
    [OP_SIGN] = {NULL, run_unary, NULL},
    [OP_CLIP] = {prepare_f32, run_unary, NULL},
    [OP_HARD_SIGMOID] = {prepare_f32, run_unary, NULL},
    [OP_HARD_SWISH] = {prepare_f32, run_unary, NULL},
    [OP_MISH] = {prepare_f32, run_unary, NULL},
    [OP_ELU] = {prepare_f32, run_unary, NULL},
    [OP_SELU] = {prepare_f32, run_unary, NULL},
    [OP_CELU] = {prepare_f32, run_unary, NULL},
    [OP_THRESHOLDED_RELU] = {prepare_f32, run_unary, NULL},
    [OP_SOFTSIGN] = {prepare_f32, run_unary, NULL},
    [OP_SHRINK] = {prepare_f32, run_unary, NULL},
    [OP_IS_NAN] = {prepare_f32, run_float_test, NULL},
    [OP_IS_INF] = {prepare_f32, run_float_test, NULL},
    [OP_ONE_HOT] = {NULL, run_one_hot, NULL},
    [OP_PRELU] = {prepare_f32, run_prelu, NULL},
    [OP_MIN] = {NULL, run_variadic, NULL},
    [OP_MAX] = {NULL, run_variadic, NULL},
    [OP_EQUAL] = {NULL, run_compare, NULL},
    [OP_LESS] = {NULL, run_compare, NULL},
    [OP_LESS_EQUAL] = {NULL, run_compare, NULL},
    [OP_GREATER] = {NULL, run_compare, NULL},
    [OP_GREATER_EQUAL] = {NULL, run_compare, NULL},
    [OP_AND] = {NULL, run_compare, NULL},
    [OP_OR] = {NULL, run_compare, NULL},
    [OP_XOR] = {NULL, run_compare, NULL},
    [OP_NOT] = {NULL, run_not, NULL},
    [OP_WHERE] = {NULL, run_where, NULL},
    [OP_CONCAT] = {NULL, run_concat, NULL},
    [OP_SPLIT] = {prepare_split, run_split, NULL},
    [OP_SLICE] = {NULL, run_slice, NULL},
    [OP_TRANSPOSE] = {NULL, run_transpose, NULL},
    [OP_GATHER] = {NULL, run_gather, NULL},
    [OP_GATHER_ELEMENTS] = {NULL, run_gather_elements, NULL},
    [OP_GATHER_ND] = {NULL, run_gather_nd, NULL},
    [OP_SCATTER_ND] = {NULL, run_scatter_nd, NULL},
    [OP_SCATTER_ELEMENTS] = {NULL, run_scatter_elements, NULL},
    [OP_EXPAND] = {NULL, run_expand, NULL},
    [OP_TILE] = {NULL, run_tile, NULL},
    [OP_CONSTANT_OF_SHAPE] = {NULL, run_constant_of_shape, NULL},
    [OP_RANGE] = {NULL, run_range, NULL},
    [OP_EYE_LIKE] = {NULL, run_eye_like, NULL},
    [OP_TRILU] = {NULL, run_trilu, NULL},
    [OP_DEPTH_TO_SPACE] = {NULL, run_depth_to_space, NULL},
    [OP_PAD] = {NULL, run_pad, NULL},
    [OP_RESIZE] = {prepare_f32, run_resize, NULL},
    [OP_GRID_SAMPLE] = {prepare_f32, run_grid_sample, NULL},
    [OP_CONV] = {prepare_conv, run_conv, destroy_conv},
    [OP_CONV_TRANSPOSE] = {prepare_conv, run_conv, destroy_conv},
    [OP_MAX_POOL] = {prepare_pool, run_pool, destroy_pool},
    [OP_AVG_POOL] = {prepare_pool, run_pool, destroy_pool},
    [OP_GLOBAL_AVG_POOL] = {prepare_pool, run_pool, destroy_pool},
    [OP_GLOBAL_MAX_POOL] = {prepare_pool, run_pool, destroy_pool},
    [OP_BATCH_NORM] = {prepare_f32, run_batch_norm, NULL},
    [OP_INSTANCE_NORM] = {prepare_f32, run_instance_norm, NULL},
    [OP_LSTM] = {prepare_rnn, run_rnn, destroy_rnn},
    [OP_GRU] = {prepare_rnn, run_rnn, destroy_rnn},
    [OP_RNN] = {prepare_rnn, run_rnn, destroy_rnn},
    [OP_EMBEDDING_BAG] = {NULL, run_embedding_bag, NULL},
    [OP_ATTENTION] = {prepare_attention, run_attention, NULL},
};

int cpu_op_blocked_ok(op_kind op)
{
    return op == OP_CONV || op == OP_CONV_TRANSPOSE || op == OP_MAX_POOL || op == OP_AVG_POOL ||
           op == OP_GLOBAL_AVG_POOL || op == OP_GLOBAL_MAX_POOL;
}

const cpu_op_impl *cpu_op_get(op_kind op)
{
    if ((unsigned)op >= OP_COUNT || !ops[op].run)
        return NULL;
    return &ops[op];
}
