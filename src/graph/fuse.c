/*
 * fuse.c - pattern fusion. Exporters spell GELU, LayerNorm and
 * "Linear + activation" as chains of small elementwise nodes; each node is
 * a kernel launch and a round trip through memory. This pass rewrites the
 * chains into single nodes the backends implement directly, in this order:
 *
 *   1. GELU, erf form:  0.5 * x * (1 + erf(x / sqrt2))   -> OP_GELU
 *      GELU, tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
 *                                                         -> OP_GELU approximate
 *   2. LayerNorm:  (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * s + b
 *                                                         -> OP_LAYER_NORM
 *   3. Gemm/MatMul(B const 2-D) [+ Add(bias)] [+ activation] -> one OP_GEMM
 *   4. Conv [+ BatchNormalization] [+ Add(residual)] [+ activation] -> one
 *      OP_CONV, and Gemm + BatchNormalization (fuse_conv.c); run before 3
 *   5. Softmax(Add(Mul(scores, c), mask)) -> OP_SOFTMAX mode 1, after a
 *      Where that fills masked scores became an Add (fuse_mask.c)
 *   6. Split/Reshape/Transpose -> MatMul -> Softmax -> MatMul -> Transpose ->
 *      Reshape -> OP_ATTENTION (fuse_attention.c), on 5's softmax
 *
 * GELU goes first so that Gemm -> Add -> GELU chains end in an OP_GELU the
 * third step can absorb. A pattern matches only when its constants have the
 * expected values (1e-4 relative) and every intermediate has exactly one
 * consumer and is not a graph output; anything else is left unfused. The
 * node that wrote the chain's last value is rewritten in place (so that
 * value keeps its name and index), the others are marked dead, and
 * n_consumers/producer are kept consistent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "graph/graph.h"
#include "util/error.h"
#include "util/half.h"

#define MAX_CHAIN 12

static const double SQRT2 = 1.4142135623730951, SQRT1_2 = 0.7071067811865476;

/* ------------------------------------------------------------ helpers */

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-4 * fabs(b);
}

/* Value of a constant float scalar (shape [] or [1], or all ones). */
int fuse_const_scalar(const graph *g, int v, double *out)
{
    if (v < 0)
        return 0;
    const graph_value *c = &g->values[v];
    if (!c->is_const || !c->data)
        return 0;
    for (int i = 0; i < c->ndim; i++)
        if (c->dims[i] != 1)
            return 0;
    switch (c->dtype) {
    case FERRY_F32: *out = *(const float *)c->data; return 1;
    case FERRY_F64: *out = *(const double *)c->data; return 1;
    case FERRY_F16: *out = ferry_f16_to_f32(*(const uint16_t *)c->data); return 1;
    case FERRY_BF16: *out = ferry_bf16_to_f32(*(const uint16_t *)c->data); return 1;
    case FERRY_I32: *out = *(const int32_t *)c->data; return 1;
    case FERRY_I64: *out = (double)*(const int64_t *)c->data; return 1;
    default: return 0;
    }
}

static int is_scalar(const graph *g, int v, double want)
{
    double x;
    return fuse_const_scalar(g, v, &x) && near(x, want);
}

/* The live node that produces v, or -1. */
int fuse_producer_of(const graph *g, int v)
{
    if (v < 0)
        return -1;
    int p = g->values[v].producer;
    return (p >= 0 && !g->nodes[p].dead) ? p : -1;
}

/* An intermediate the pattern may swallow: written by a live node, read by
 * exactly one consumer, and not a graph output. */
int fuse_private_value(const graph *g, int v)
{
    if (v < 0)
        return 0;
    const graph_value *x = &g->values[v];
    return x->n_consumers == 1 && !x->is_output && !x->is_input && !x->is_const &&
           fuse_producer_of(g, v) >= 0;
}

/* The only live node reading v when v is private, else -1. */
int fuse_sole_consumer(const graph *g, int v)
{
    if (!fuse_private_value(g, v))
        return -1;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const graph_node *n = &g->nodes[ni];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] == v)
                return ni;
    }
    return -1;
}

/* For a two-input node reading v, the other input; -1 if v is not read. */
int fuse_other_input(const graph_node *n, int v)
{
    if (n->n_in != 2)
        return -1;
    if (n->in[0] == v)
        return n->in[1];
    if (n->in[1] == v)
        return n->in[0];
    return -1;
}

/* Node ni if it is a live op with two inputs, else -1. */
static int binary(const graph *g, int ni, op_kind op)
{
    if (ni < 0 || g->nodes[ni].dead || g->nodes[ni].op != op || g->nodes[ni].n_in != 2 ||
        g->nodes[ni].n_out != 1)
        return -1;
    return ni;
}

static int unary(const graph *g, int ni, op_kind op)
{
    if (ni < 0 || g->nodes[ni].dead || g->nodes[ni].op != op || g->nodes[ni].n_in < 1 ||
        g->nodes[ni].n_out != 1)
        return -1;
    return ni;
}

/* Marks node ni dead and releases what it read and wrote. */
void fuse_kill_node(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0)
            g->values[n->in[i]].n_consumers--;
    for (int i = 0; i < n->n_out; i++)
        if (n->out[i] >= 0 && g->values[n->out[i]].producer == ni)
            g->values[n->out[i]].producer = -1;
    n->dead = 1;
}

/* Replaces node ni's inputs, keeping n_consumers right. */
void fuse_set_inputs(graph *g, int ni, int n_in, const int *in)
{
    graph_node *n = &g->nodes[ni];
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0)
            g->values[n->in[i]].n_consumers--;
    for (int i = 0; i < GRAPH_MAX_IO; i++)
        n->in[i] = i < n_in ? in[i] : -1;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++)
        if (in[i] >= 0)
            g->values[in[i]].n_consumers++;
}

/* Resets the attributes a rewritten node must not inherit. */
static void reset_attrs(graph_node *n)
{
    n->axis = -1;
    n->alpha = n->beta = 1.0f;
    n->trans_a = n->trans_b = 0;
    n->act = ACT_NONE;
    n->act_alpha = 0.0f;
    n->epsilon = 1e-5f;
    n->approximate = 0;
    n->keepdims = 1;
    n->n_axes = 0;
}

/* -------------------------------------------------------------- GELU */

/* Matches the product x * 0.5 * t3 (t3 = 1 + erf/tanh(...)) in any of the
 * three association orders exporters use. On success *final is the node
 * that writes the product and dead[] gains the other node. */
static int match_gelu_tail(const graph *g, int x, int t3, int *dead, int *nd, int *final)
{
    int m1 = binary(g, fuse_sole_consumer(g, t3), OP_MUL);
    if (m1 < 0)
        return 0;
    int o = fuse_other_input(&g->nodes[m1], t3);
    int t4 = g->nodes[m1].out[0];
    if (o == x || is_scalar(g, o, 0.5)) { /* (x * t3) * 0.5, or (t3 * 0.5) * x */
        int m2 = binary(g, fuse_sole_consumer(g, t4), OP_MUL);
        if (m2 < 0)
            return 0;
        int o2 = fuse_other_input(&g->nodes[m2], t4);
        if (!(o == x ? is_scalar(g, o2, 0.5) : o2 == x))
            return 0;
        dead[(*nd)++] = m1;
        *final = m2;
        return 1;
    }
    /* (x * 0.5) * t3 */
    int h = binary(g, fuse_producer_of(g, o), OP_MUL);
    if (h < 0 || !fuse_private_value(g, o) || !is_scalar(g, fuse_other_input(&g->nodes[h], x), 0.5))
        return 0;
    dead[(*nd)++] = h;
    *final = m1;
    return 1;
}

static void rewrite_gelu(graph *g, int x, const int *dead, int nd, int final, int approximate)
{
    for (int i = 0; i < nd; i++)
        fuse_kill_node(g, dead[i]);
    fuse_set_inputs(g, final, 1, &x);
    graph_node *n = &g->nodes[final];
    n->op = OP_GELU;
    reset_attrs(n);
    n->approximate = approximate;
}

/* Anchored on Erf: x / sqrt2 (or x * 1/sqrt2) -> Erf -> + 1 -> tail. */
static int fuse_gelu_erf(graph *g, int e)
{
    int dead[MAX_CHAIN], nd = 0, final, x = -1;
    int t1 = g->nodes[e].in[0];
    if (!fuse_private_value(g, t1))
        return 0;
    int p = fuse_producer_of(g, t1);
    if (binary(g, p, OP_DIV) >= 0 && is_scalar(g, g->nodes[p].in[1], SQRT2)) {
        x = g->nodes[p].in[0];
    } else if (binary(g, p, OP_MUL) >= 0) {
        if (is_scalar(g, g->nodes[p].in[1], SQRT1_2))
            x = g->nodes[p].in[0];
        else if (is_scalar(g, g->nodes[p].in[0], SQRT1_2))
            x = g->nodes[p].in[1];
    }
    if (x < 0)
        return 0;
    int t2 = g->nodes[e].out[0];
    int a = binary(g, fuse_sole_consumer(g, t2), OP_ADD);
    if (a < 0 || !is_scalar(g, fuse_other_input(&g->nodes[a], t2), 1.0))
        return 0;
    dead[nd++] = p;
    dead[nd++] = e;
    dead[nd++] = a;
    if (!match_gelu_tail(g, x, g->nodes[a].out[0], dead, &nd, &final))
        return 0;
    rewrite_gelu(g, x, dead, nd, final, 0);
    return 1;
}

/* p == x^3 as Pow(x, 3), x * (x * x) or (x * x) * x. */
static int match_cube(const graph *g, int p, int x, int *dead, int *nd)
{
    int pn = fuse_producer_of(g, p);
    if (binary(g, pn, OP_POW) >= 0) {
        if (g->nodes[pn].in[0] != x || !is_scalar(g, g->nodes[pn].in[1], 3.0))
            return 0;
        dead[(*nd)++] = pn;
        return 1;
    }
    if (binary(g, pn, OP_MUL) < 0)
        return 0;
    int q = fuse_other_input(&g->nodes[pn], x);
    int qn = binary(g, fuse_producer_of(g, q), OP_MUL);
    if (qn < 0 || !fuse_private_value(g, q) || g->nodes[qn].in[0] != x || g->nodes[qn].in[1] != x)
        return 0;
    dead[(*nd)++] = pn;
    dead[(*nd)++] = qn;
    return 1;
}

/* Anchored on Tanh: sqrt(2/pi) * (x + 0.044715 * x^3) -> Tanh -> + 1 -> tail. */
static int fuse_gelu_tanh(graph *g, int t)
{
    int dead[MAX_CHAIN], nd = 0, final, x = -1;
    const double beta = 0.7978845608028654, kappa = 0.044715;
    int u = g->nodes[t].in[0];
    int pb = binary(g, fuse_producer_of(g, u), OP_MUL);
    if (!fuse_private_value(g, u) || pb < 0)
        return 0;
    int s = is_scalar(g, g->nodes[pb].in[0], beta)   ? g->nodes[pb].in[1]
            : is_scalar(g, g->nodes[pb].in[1], beta) ? g->nodes[pb].in[0]
                                                     : -1;
    int pa = binary(g, fuse_producer_of(g, s), OP_ADD);
    if (s < 0 || !fuse_private_value(g, s) || pa < 0)
        return 0;
    dead[nd++] = pb;
    dead[nd++] = pa;
    for (int k = 0; k < 2 && x < 0; k++) {
        int cx = g->nodes[pa].in[k], w = g->nodes[pa].in[1 - k];
        int pk = binary(g, fuse_producer_of(g, w), OP_MUL);
        if (pk < 0 || !fuse_private_value(g, w))
            continue;
        int p = is_scalar(g, g->nodes[pk].in[0], kappa)   ? g->nodes[pk].in[1]
                : is_scalar(g, g->nodes[pk].in[1], kappa) ? g->nodes[pk].in[0]
                                                          : -1;
        int save = nd;
        dead[nd++] = pk;
        if (p >= 0 && fuse_private_value(g, p) && match_cube(g, p, cx, dead, &nd))
            x = cx;
        else
            nd = save;
    }
    if (x < 0)
        return 0;
    int t2 = g->nodes[t].out[0];
    int a = binary(g, fuse_sole_consumer(g, t2), OP_ADD);
    if (a < 0 || !is_scalar(g, fuse_other_input(&g->nodes[a], t2), 1.0))
        return 0;
    dead[nd++] = t;
    dead[nd++] = a;
    if (!match_gelu_tail(g, x, g->nodes[a].out[0], dead, &nd, &final))
        return 0;
    rewrite_gelu(g, x, dead, nd, final, 1);
    return 1;
}

/* --------------------------------------------------------- LayerNorm */

/* ReduceMean node r reduces only the last axis of its rank-`rank` input
 * and keeps dims (axes from the attribute, or the opset-18 input). */
static int reduces_last_axis(const graph *g, int r, int rank)
{
    const graph_node *n = &g->nodes[r];
    int64_t axis;
    if (!n->keepdims || rank <= 0)
        return 0;
    if (n->n_axes == 1) {
        axis = n->axes[0];
    } else if (n->n_axes == 0 && n->n_in >= 2 && n->in[1] >= 0) {
        double a;
        if (!fuse_const_scalar(g, n->in[1], &a))
            return 0;
        axis = (int64_t)a;
    } else if (n->n_axes == 0 && rank == 1) {
        axis = 0; /* no axes: all of them, which is the last one for rank 1 */
    } else {
        return 0;
    }
    if (axis < 0)
        axis += rank;
    return axis == rank - 1;
}

/* A constant [C] vector for scale/bias, of x's dtype. */
static int is_vector(const graph *g, int v, int64_t c, ferry_dtype dt)
{
    if (v < 0)
        return 0;
    const graph_value *x = &g->values[v];
    return x->is_const && x->data && x->ndim == 1 && x->dims[0] == c && x->dtype == dt;
}

/* A new f32 constant holding count values (copied); -1 on failure. */
int fuse_new_const(graph *g, const char *base, const char *suffix, int ndim, const int64_t *dims,
                   const float *vals, int64_t count)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    float *data = malloc(sizeof(float) * (size_t)(count ? count : 1));
    if (!data)
        return -1;
    memcpy(data, vals, sizeof(float) * (size_t)count);
    int v = graph_add_value(g, name, FERRY_F32, ndim, dims);
    if (v < 0) {
        free(data);
        return -1;
    }
    g->values[v].is_const = 1;
    g->values[v].data = data;
    return v;
}

/* Adds a constant [c] of ones (the scale a LayerNorm without Mul needs). */
static int add_ones(graph *g, const char *base, int64_t c)
{
    float *d = malloc((size_t)c * sizeof *d);
    if (!d) {
        ferry_fail(FERRY_ENOMEM, "out of memory fusing LayerNorm '%s'", base);
        return -1;
    }
    for (int64_t i = 0; i < c; i++)
        d[i] = 1.0f;
    int v = fuse_new_const(g, base, ".ones", 1, &c, d, c);
    free(d);
    return v;
}

/* Anchored on the first ReduceMean. Returns 1 fused, 0 no match, -1 error. */
static int fuse_layer_norm(graph *g, int m1)
{
    int dead[MAX_CHAIN], nd = 0;
    int x = g->nodes[m1].in[0];
    const graph_value *xv = &g->values[x];
    int rank = xv->ndim;
    if (rank <= 0 || !reduces_last_axis(g, m1, rank))
        return 0;
    int64_t c = xv->dims[rank - 1];
    ferry_dtype dt = xv->dtype;
    if (c <= 0 || (dt != FERRY_F32 && dt != FERRY_F16 && dt != FERRY_BF16 && dt != FERRY_F64))
        return 0;

    int mean = g->nodes[m1].out[0];
    int sub = binary(g, fuse_sole_consumer(g, mean), OP_SUB);
    if (sub < 0 || g->nodes[sub].in[0] != x || g->nodes[sub].in[1] != mean)
        return 0;
    /* d = x - mean feeds exactly the square and the division. */
    int d = g->nodes[sub].out[0];
    const graph_value *dv = &g->values[d];
    if (dv->is_output)
        return 0;
    int sq = -1, div = -1, uses = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const graph_node *n = &g->nodes[ni];
        if (n->dead)
            continue;
        int reads = 0;
        for (int i = 0; i < n->n_in; i++)
            reads += n->in[i] == d;
        if (!reads)
            continue;
        uses += reads;
        if (binary(g, ni, OP_POW) >= 0 && n->in[0] == d && is_scalar(g, n->in[1], 2.0))
            sq = ni;
        else if (binary(g, ni, OP_MUL) >= 0 && reads == 2)
            sq = ni;
        else if (binary(g, ni, OP_DIV) >= 0 && n->in[0] == d && n->in[1] != d)
            div = ni;
        else
            return 0;
    }
    if (sq < 0 || div < 0 || uses != dv->n_consumers)
        return 0;

    int m2 = unary(g, fuse_sole_consumer(g, g->nodes[sq].out[0]), OP_REDUCE_MEAN);
    if (m2 < 0 || !reduces_last_axis(g, m2, rank))
        return 0;
    int var = g->nodes[m2].out[0];
    int ae = binary(g, fuse_sole_consumer(g, var), OP_ADD);
    double eps;
    if (ae < 0 || !fuse_const_scalar(g, fuse_other_input(&g->nodes[ae], var), &eps) ||
        !(eps >= 0.0) || eps > 1.0)
        return 0;
    int sr = unary(g, fuse_sole_consumer(g, g->nodes[ae].out[0]), OP_SQRT);
    if (sr < 0 || fuse_sole_consumer(g, g->nodes[sr].out[0]) != div ||
        g->nodes[div].in[1] != g->nodes[sr].out[0])
        return 0;
    dead[nd++] = m1;
    dead[nd++] = sub;
    dead[nd++] = sq;
    dead[nd++] = m2;
    dead[nd++] = ae;
    dead[nd++] = sr;

    int final = div, scale = -1, bias = -1;
    int cur = g->nodes[div].out[0];
    int mul = binary(g, fuse_sole_consumer(g, cur), OP_MUL);
    if (mul >= 0 && is_vector(g, fuse_other_input(&g->nodes[mul], cur), c, dt)) {
        scale = fuse_other_input(&g->nodes[mul], cur);
        dead[nd++] = final;
        final = mul;
        cur = g->nodes[mul].out[0];
    }
    int add = binary(g, fuse_sole_consumer(g, cur), OP_ADD);
    if (add >= 0 && is_vector(g, fuse_other_input(&g->nodes[add], cur), c, dt)) {
        bias = fuse_other_input(&g->nodes[add], cur);
        dead[nd++] = final;
        final = add;
    }
    if (scale < 0) {
        if (dt != FERRY_F32)
            return 0; /* no scale to borrow and ones of another dtype: leave it */
        scale = add_ones(g, g->nodes[final].name, c);
        if (scale < 0)
            return -1;
    }

    for (int i = 0; i < nd; i++)
        fuse_kill_node(g, dead[i]);
    int in[3] = {x, scale, bias};
    fuse_set_inputs(g, final, bias >= 0 ? 3 : 2, in);
    graph_node *n = &g->nodes[final];
    n->op = OP_LAYER_NORM;
    reset_attrs(n);
    n->axis = -1;
    n->epsilon = (float)eps;
    return 1;
}

/* ------------------------------------------------ Gemm + bias + act */

static act_kind act_of(const graph_node *n, float *alpha)
{
    *alpha = 0.0f;
    switch (n->op) {
    case OP_RELU: return ACT_RELU;
    case OP_GELU: return n->approximate ? ACT_GELU_TANH : ACT_GELU;
    case OP_LEAKY_RELU: *alpha = n->alpha; return ACT_LEAKY_RELU;
    case OP_SIGMOID: return ACT_SIGMOID;
    case OP_TANH: return ACT_TANH;
    default: return ACT_NONE;
    }
}

static int fuse_gemm(graph *g, int gi)
{
    graph_node *gn = &g->nodes[gi];
    if (gn->n_out != 1 || gn->n_in < 2)
        return 0;
    int b = gn->in[1];
    const graph_value *bv = &g->values[b];
    int changed = 0;
    if (gn->op == OP_MATMUL) {
        /* parse_matmul's rule (ops.c), for a B that became constant only in
         * folding: an Identity of a shared initializer, as torch exports
         * layers that share weights (ALBERT, deep-copied layers) */
        const graph_value *av = &g->values[gn->in[0]];
        if (gn->n_in != 2 || !bv->is_const || bv->ndim != 2 || av->ndim < 2)
            return 0;
        gn->op = OP_GEMM;
        reset_attrs(gn);
        changed = 1;
    }
    if (gn->op != OP_GEMM || gn->act != ACT_NONE)
        return changed;

    int y = gn->out[0];
    const graph_value *yv = &g->values[y];
    int64_t width = -1;
    if (yv->ndim == 2 && yv->dims[1] > 0)
        width = yv->dims[1];
    else if (bv->ndim == 2)
        width = gn->trans_b ? bv->dims[0] : bv->dims[1];

    int dead[3], nd = 0, cur = y, bias = -1;
    int has_c = gn->n_in >= 3 && gn->in[2] >= 0;
    int add = has_c ? -1 : binary(g, fuse_sole_consumer(g, cur), OP_ADD);
    if (add >= 0 && width > 0) {
        int o = fuse_other_input(&g->nodes[add], cur);
        const graph_value *ov = &g->values[o];
        int shaped = (ov->ndim == 1 && ov->dims[0] == width) ||
                     (ov->ndim == 2 && ov->dims[0] == 1 && ov->dims[1] == width);
        if (o != cur && ov->is_const && ov->data && shaped &&
            (ov->dtype == yv->dtype || yv->dtype == FERRY_DTYPE_UNDEFINED)) {
            bias = o;
            dead[nd++] = add;
            cur = g->nodes[add].out[0];
        }
    }
    int an = fuse_sole_consumer(g, cur);
    float aa = 0.0f;
    act_kind act = ACT_NONE;
    if (an >= 0 && g->nodes[an].n_in >= 1 && g->nodes[an].in[0] == cur && g->nodes[an].n_out == 1)
        act = act_of(&g->nodes[an], &aa);
    if (act != ACT_NONE) {
        dead[nd++] = an;
        cur = g->nodes[an].out[0];
    }
    /* A residual connection, Add(Y, R) with R a computed tensor of Y's
     * shape, becomes the Gemm's input 3, added after the bias (only without
     * an activation, which would apply before the Add): the CPU adds it to
     * each block in cache, cuBLASLt reads it as its C matrix. Y has this
     * Add as its one reader, so R cannot depend on Y; R must still be
     * written before the Gemm in the node order, which the Gemm keeps. */
    int res = -1;
    int ra = act == ACT_NONE ? binary(g, fuse_sole_consumer(g, cur), OP_ADD) : -1;
    if (ra >= 0) {
        int o = fuse_other_input(&g->nodes[ra], cur);
        const graph_value *ov = &g->values[o], *cv = &g->values[cur];
        int same = o != cur && !ov->is_const && ov->producer < gi && ov->ndim == cv->ndim &&
                   ov->dtype == cv->dtype && cv->dtype == FERRY_F32;
        for (int d = 0; same && d < cv->ndim; d++)
            same = ov->dims[d] == cv->dims[d];
        if (same) {
            res = o;
            dead[nd++] = ra;
            cur = g->nodes[ra].out[0];
        }
    }
    if (nd == 0)
        return changed;

    for (int i = 0; i < nd; i++)
        fuse_kill_node(g, dead[i]);
    gn = &g->nodes[gi];
    if (bias >= 0) {
        int in[3] = {gn->in[0], gn->in[1], bias};
        fuse_set_inputs(g, gi, 3, in);
        gn->beta = 1.0f;
    }
    if (res >= 0) {
        int in[4] = {gn->in[0], gn->in[1], gn->n_in > 2 ? gn->in[2] : -1, res};
        fuse_set_inputs(g, gi, 4, in);
    }
    gn->act = act;
    gn->act_alpha = aa;
    if (g->values[y].producer == gi)
        g->values[y].producer = -1;
    gn->out[0] = cur;
    g->values[cur].producer = gi;
    return 1;
}

/* ------------------------------------------------- attention softmax */

/* Broadcasts to x's shape with the last dim whole (an attention mask,
 * [N,1,1,T] against scores [N,H,T,T]): right-aligned dims each 1 or x's. */
static int mask_fits(const graph_value *m, const graph_value *x)
{
    if (m->ndim < 1 || m->ndim > x->ndim || m->dims[m->ndim - 1] != x->dims[x->ndim - 1] ||
        m->dtype != x->dtype)
        return 0;
    for (int d = 0; d < m->ndim - 1; d++) {
        int64_t md = m->dims[d], xd = x->dims[x->ndim - m->ndim + d];
        if (md != 1 && md != xd)
            return 0;
    }
    return 1;
}

/* Softmax over the last axis of Add(Mul(s, c), mask), Mul(s, c), Div(s, c)
 * or Add(s, mask), with c a scalar constant: attention's scaled, masked
 * scores, one pass instead of three (the scale and the mask are applied
 * as each row is read). */
static int fuse_softmax(graph *g, int si)
{
    graph_node *sn = &g->nodes[si];
    const graph_value *xv = &g->values[sn->in[0]];
    int axis = sn->axis < 0 ? sn->axis + xv->ndim : sn->axis;
    if (sn->mode || sn->n_in != 1 || xv->ndim < 1 || axis != xv->ndim - 1 || xv->dtype != FERRY_F32)
        return 0;
    int dead[2], nd = 0, cur = sn->in[0], mask = -1;
    double scale = 1.0;
    int p = fuse_producer_of(g, cur);
    if (p >= 0 && binary(g, p, OP_ADD) >= 0 && fuse_sole_consumer(g, cur) == si) {
        const graph_node *an = &g->nodes[p];
        /* The mask second first (Add(scores, mask), as exports write it);
         * either way the sum is the same, only the scale may go unfused. */
        for (int k = 1; k >= 0 && mask < 0; k--) {
            int m = an->in[k], o = an->in[1 - k];
            const graph_value *mv = &g->values[m], *ov = &g->values[o];
            if (m != o && ov->ndim == xv->ndim && mask_fits(mv, xv)) {
                int same = 1;
                for (int d = 0; d < ov->ndim; d++)
                    same &= ov->dims[d] == xv->dims[d];
                if (same) {
                    mask = m;
                    dead[nd++] = p;
                    cur = o;
                }
            }
        }
        p = mask >= 0 ? fuse_producer_of(g, cur) : -1;
    }
    if (p >= 0 && (binary(g, p, OP_MUL) >= 0 || binary(g, p, OP_DIV) >= 0) &&
        fuse_sole_consumer(g, cur) == (nd ? dead[0] : si)) {
        const graph_node *mn = &g->nodes[p];
        double c;
        int k = mn->op == OP_MUL && fuse_const_scalar(g, mn->in[0], &c) ? 0 : 1;
        int x = mn->in[1 - k];
        if (fuse_const_scalar(g, mn->in[k], &c) && (mn->op == OP_MUL || c != 0.0) &&
            g->values[x].ndim == xv->ndim) {
            scale = mn->op == OP_MUL ? c : 1.0 / c;
            dead[nd++] = p;
            cur = x;
        }
    }
    if (nd == 0)
        return 0;
    for (int i = 0; i < nd; i++)
        fuse_kill_node(g, dead[i]);
    sn = &g->nodes[si];
    int in[2] = {cur, mask};
    fuse_set_inputs(g, si, mask >= 0 ? 2 : 1, in);
    sn->mode = 1;
    sn->alpha = (float)scale;
    return 1;
}

/* ------------------------------------------------------------- driver */

ferry_status graph_fuse(graph *g)
{
    fuse_drop_noop_casts(g);
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].dead)
            continue;
        if (unary(g, ni, OP_ERF) >= 0)
            fuse_gelu_erf(g, ni);
        else if (unary(g, ni, OP_TANH) >= 0)
            fuse_gelu_tanh(g, ni);
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (unary(g, ni, OP_REDUCE_MEAN) >= 0 && fuse_layer_norm(g, ni) < 0)
            return ferry_fail_prefix(FERRY_ENOMEM, "fusing node '%s'", g->nodes[ni].name);
    }
    /* before Gemm's own epilogue: BatchNormalization folds into a Gemm */
    ferry_status st = graph_fuse_conv(g);
    if (st != FERRY_OK)
        return st;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        op_kind op = g->nodes[ni].op;
        if (!g->nodes[ni].dead && (op == OP_GEMM || op == OP_MATMUL))
            fuse_gemm(g, ni);
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].dead || g->nodes[ni].op != OP_SOFTMAX)
            continue;
        if (fuse_where_mask(g, ni) < 0)
            return ferry_fail_prefix(FERRY_ENOMEM, "fusing node '%s'", g->nodes[ni].name);
        fuse_softmax(g, ni);
    }
    if ((st = graph_fuse_attention(g)) != FERRY_OK)
        return st;
    return graph_fuse_rnn(g);
}
