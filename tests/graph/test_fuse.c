/*
 * test_fuse.c - graph_fuse on hand-built graphs: each pattern PyTorch
 * exports becomes the one node the backends implement (Gemm with bias and
 * activation, GELU, LayerNorm), the swallowed nodes are dead and the
 * consumer counts and producers stay consistent; near misses (a wrong
 * constant, an intermediate read twice or exported) stay as they are.
 */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse_builder.h"
#include "graph/graph.h"

/* ------------------------------------------------------------ builders */

static int act_val(graph *g, const char *name, int64_t width)
{
    int64_t d[2] = {FERRY_DIM_BATCH, width};
    int v = graph_add_value(g, name, FERRY_F32, 2, d);
    assert_true(v >= 0);
    return v;
}

static int input(graph *g, const char *name, int64_t width)
{
    int v = act_val(g, name, width);
    g->values[v].is_input = 1;
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
    return v;
}

/* A [1]-shaped f64 scalar, as torch.onnx writes its double constants. */
static int scalar64(graph *g, const char *name, double x)
{
    int64_t one = 1;
    int v = graph_add_value(g, name, FERRY_F64, 1, &one);
    double *d = malloc(sizeof *d);
    *d = x;
    g->values[v].data = d;
    g->values[v].is_const = 1;
    return v;
}

static int vec(graph *g, const char *name, int64_t n)
{
    return cst_f32(g, name, 1, &n, 0.5f);
}

/* ------------------------------------------------ Gemm + bias + act */

static void gemm_bias_relu(int bias_first)
{
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 3);
    int y = act_val(g, "y", 3), z = act_val(g, "z", 3), r = act_val(g, "r", 3);
    int gm = node2(g, OP_GEMM, "fc", x, w, y);
    g->nodes[gm].trans_b = 1;
    int add = bias_first ? node2(g, OP_ADD, "add", b, y, z) : node2(g, OP_ADD, "add", y, b, z);
    int relu = node1(g, OP_RELU, "relu", z, r);
    mark_output(g, r);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    const graph_node *n = &g->nodes[gm];
    assert_false(n->dead);
    assert_int_equal(n->op, OP_GEMM);
    assert_int_equal(n->act, ACT_RELU);
    assert_int_equal(n->n_in, 3);
    assert_int_equal(n->in[2], b);
    assert_true(n->beta == 1.0f);
    assert_int_equal(n->trans_b, 1);
    assert_int_equal(n->out[0], r);
    assert_true(g->nodes[add].dead && g->nodes[relu].dead);
    assert_int_equal(g->values[r].producer, gm);
    assert_string_equal(g->values[r].name, "r");
    check_consistent(g);
    graph_free(g);
}

static void test_gemm_add_relu(void **state)
{
    (void)state;
    gemm_bias_relu(0);
}

static void test_gemm_bias_first_relu(void **state)
{
    (void)state;
    gemm_bias_relu(1);
}

/* MatMul with a 2-D constant B becomes a Gemm; an approximate Gelu after
 * the bias becomes ACT_GELU_TANH. */
static void test_matmul_add_gelu_tanh(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {4, 5};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int64_t bd[2] = {1, 5};
    int b = cst_f32(g, "b", 2, bd, 0.0f);
    int y = act_val(g, "y", 5), z = act_val(g, "z", 5), o = act_val(g, "o", 5);
    int mm = node2(g, OP_MATMUL, "mm", x, w, y);
    node2(g, OP_ADD, "add", y, b, z);
    int ge = node1(g, OP_GELU, "gelu", z, o);
    g->nodes[ge].approximate = 1;
    mark_output(g, o);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    assert_int_equal(g->nodes[mm].op, OP_GEMM);
    assert_int_equal(g->nodes[mm].trans_b, 0);
    assert_int_equal(g->nodes[mm].act, ACT_GELU_TANH);
    assert_int_equal(g->nodes[mm].in[2], b);
    assert_int_equal(g->nodes[mm].out[0], o);
    check_consistent(g);
    graph_free(g);
}

/* A MatMul over a 3-D activation [N,T,4] whose 2-D B is constant only
 * after folding (torch's export of layers sharing weights: an Identity of
 * the shared initializer) becomes a Gemm with bias and ReLU too. */
static void test_matmul_3d_folded_weight(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t xd[3] = {FERRY_DIM_BATCH, 7, 4}, yd[3] = {FERRY_DIM_BATCH, 7, 5};
    int x = graph_add_value(g, "x", FERRY_F32, 3, xd);
    g->values[x].is_input = 1;
    g->inputs = malloc(sizeof *g->inputs);
    g->inputs[g->n_inputs++] = x;
    int64_t wd[2] = {4, 5};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 5);
    int y = graph_add_value(g, "y", FERRY_F32, 3, yd);
    int z = graph_add_value(g, "z", FERRY_F32, 3, yd);
    int o = graph_add_value(g, "o", FERRY_F32, 3, yd);
    int mm = node2(g, OP_MATMUL, "mm", x, w, y); /* as parse_matmul left it: B not yet const */
    node2(g, OP_ADD, "add", y, b, z);
    node1(g, OP_RELU, "relu", z, o);
    mark_output(g, o);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    assert_int_equal(g->nodes[mm].op, OP_GEMM);
    assert_int_equal(g->nodes[mm].act, ACT_RELU);
    assert_int_equal(g->nodes[mm].in[2], b);
    assert_int_equal(g->nodes[mm].out[0], o);
    check_consistent(g);
    graph_free(g);
}

/* The Gemm's output is read twice: nothing may be fused into it. */
static void test_gemm_two_consumers_unfused(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 3);
    int y = act_val(g, "y", 3), z = act_val(g, "z", 3), r = act_val(g, "r", 3),
        s = act_val(g, "s", 3);
    int gm = node2(g, OP_GEMM, "fc", x, w, y);
    g->nodes[gm].trans_b = 1;
    node2(g, OP_ADD, "add", y, b, z);
    node1(g, OP_RELU, "relu", z, r);
    node1(g, OP_SIGMOID, "side", y, s);
    mark_output(g, r);
    mark_output(g, s);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 4);
    assert_int_equal(g->nodes[gm].act, ACT_NONE);
    assert_int_equal(g->nodes[gm].n_in, 2);
    assert_int_equal(g->nodes[gm].out[0], y);
    check_consistent(g);
    graph_free(g);
}

/* The bias sum is a graph output: the bias is fused, the Relu is not. */
static void test_gemm_bias_output_stops_act(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 3);
    int y = act_val(g, "y", 3), z = act_val(g, "z", 3), r = act_val(g, "r", 3);
    int gm = node2(g, OP_GEMM, "fc", x, w, y);
    g->nodes[gm].trans_b = 1;
    node2(g, OP_ADD, "add", y, b, z);
    int relu = node1(g, OP_RELU, "relu", z, r);
    mark_output(g, z);
    mark_output(g, r);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 2);
    assert_int_equal(g->nodes[gm].act, ACT_NONE);
    assert_int_equal(g->nodes[gm].in[2], b);
    assert_int_equal(g->nodes[gm].out[0], z);
    assert_false(g->nodes[relu].dead);
    check_consistent(g);
    graph_free(g);
}

/* Gemm + bias, then Add with a computed tensor of the same shape (a
 * residual connection): the residual becomes input 3; with a Relu between,
 * or a residual of another shape, it stays an Add. */
static void gemm_residual(int with_act, int64_t res_width)
{
    graph *g = graph_new();
    int x = input(g, "x", 4), skip = input(g, "skip", res_width);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 3);
    int y = act_val(g, "y", 3), z = act_val(g, "z", 3), a = act_val(g, "a", 3),
        o = act_val(g, "o", 3);
    int gm = node2(g, OP_GEMM, "fc", x, w, y);
    g->nodes[gm].trans_b = 1;
    node2(g, OP_ADD, "bias", y, b, z);
    int pre = z;
    if (with_act) {
        node1(g, OP_RELU, "relu", z, a);
        pre = a;
    }
    int add = node2(g, OP_ADD, "residual", skip, pre, o);
    mark_output(g, o);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    const graph_node *n = &g->nodes[gm];
    int fused = !with_act && res_width == 3;
    assert_int_equal(live_nodes(g), fused ? 1 : 2);
    assert_int_equal(n->in[2], b);
    if (fused) {
        assert_int_equal(n->n_in, 4);
        assert_int_equal(n->in[3], skip);
        assert_int_equal(n->out[0], o);
        assert_true(g->nodes[add].dead);
    } else {
        assert_int_equal(n->n_in, 3);
        assert_false(g->nodes[add].dead);
    }
    check_consistent(g);
    graph_free(g);
}

static void test_gemm_residual(void **state)
{
    (void)state;
    gemm_residual(0, 3);
}

static void test_gemm_act_residual_unfused(void **state)
{
    (void)state;
    gemm_residual(1, 3);
}

static void test_gemm_broadcast_residual_unfused(void **state)
{
    (void)state;
    gemm_residual(0, 1);
}

/* Add(Y, R) with R written by a later node: the Gemm, which runs where
 * it stands, cannot read R; the later Gemm (R's) takes Y as its residual
 * instead, as a ResNet block's downsample Conv does. */
static void test_gemm_late_residual(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f), w2 = cst_f32(g, "w2", 2, wd, 0.2f);
    int y = act_val(g, "y", 3), r = act_val(g, "r", 3), o = act_val(g, "o", 3);
    int g1 = node2(g, OP_GEMM, "fc1", x, w, y);
    int g2 = node2(g, OP_GEMM, "fc2", x, w2, r);
    g->nodes[g1].trans_b = g->nodes[g2].trans_b = 1;
    node2(g, OP_ADD, "residual", y, r, o);
    mark_output(g, o);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 2);
    assert_int_equal(g->nodes[g1].n_in, 2);
    assert_int_equal(g->nodes[g2].n_in, 4);
    assert_int_equal(g->nodes[g2].in[3], y);
    assert_int_equal(g->nodes[g2].out[0], o);
    check_consistent(g);
    assert_int_equal(graph_infer_shapes(g), FERRY_OK);
    graph_free(g);
}

/* BatchNormalization normalizes dim 1: after a MatMul of [N, T, K] made a
 * Gemm that is T, not the Gemm's columns, even when T equals them. */
static void test_gemm_3d_batchnorm_unfolded(void **state)
{
    (void)state;
    graph *g = graph_new();
    int64_t xd[3] = {FERRY_DIM_BATCH, 4, 3}, yd[3] = {FERRY_DIM_BATCH, 4, 4};
    int x = graph_add_value(g, "x", FERRY_F32, 3, xd);
    g->values[x].is_input = 1;
    g->inputs = malloc(sizeof *g->inputs);
    g->inputs[g->n_inputs++] = x;
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int sc = vec(g, "scale", 4), bb = vec(g, "B", 4), mu = vec(g, "mean", 4),
        var = vec(g, "var", 4);
    int y = graph_add_value(g, "y", FERRY_F32, 3, yd);
    int z = graph_add_value(g, "z", FERRY_F32, 3, yd);
    node2(g, OP_GEMM, "mm", x, w, y);
    int bin[5] = {y, sc, bb, mu, var};
    int bn = graph_add_node(g, OP_BATCH_NORM, "bn", 5, bin, 1, &z);
    mark_output(g, z);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 2);
    assert_false(g->nodes[bn].dead);
    assert_int_equal(g->nodes[bn].in[0], y);
    check_consistent(g);
    graph_free(g);
}

/* Attention's softmax: Softmax(Add(Mul(s, 0.125), mask)) becomes one
 * Softmax of mode 1 with alpha 0.125 and the mask as input 1; Div by a
 * scalar gives its reciprocal; a mask of another last dim stays an Add. */
static void softmax_attention(op_kind scale_op, int64_t mask_width)
{
    graph *g = graph_new();
    int s = input(g, "scores", 8), mask = input(g, "mask", mask_width);
    int64_t one = 1;
    int c = cst_f32(g, "c", 1, &one, scale_op == OP_MUL ? 0.125f : 8.0f);
    int a = act_val(g, "a", 8), b = act_val(g, "b", 8), p = act_val(g, "p", 8);
    int sc = node2(g, scale_op, "scale", s, c, a);
    int add = node2(g, OP_ADD, "mask", a, mask, b);
    int sm = node1(g, OP_SOFTMAX, "softmax", b, p);
    g->nodes[sm].axis = -1;
    mark_output(g, p);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    const graph_node *n = &g->nodes[sm];
    if (mask_width == 8) {
        assert_int_equal(live_nodes(g), 1);
        assert_int_equal(n->mode, 1);
        assert_true(fabsf(n->alpha - 0.125f) < 1e-7f);
        assert_int_equal(n->n_in, 2);
        assert_int_equal(n->in[0], s);
        assert_int_equal(n->in[1], mask);
        assert_true(g->nodes[sc].dead && g->nodes[add].dead);
    } else {
        assert_int_equal(live_nodes(g), 3);
        assert_int_equal(n->mode, 0);
        assert_int_equal(n->in[0], b);
    }
    check_consistent(g);
    graph_free(g);
}

static void test_softmax_scale_mask(void **state)
{
    (void)state;
    softmax_attention(OP_MUL, 8);
}

static void test_softmax_div_mask(void **state)
{
    (void)state;
    softmax_attention(OP_DIV, 8);
}

static void test_softmax_odd_mask_unfused(void **state)
{
    (void)state;
    softmax_attention(OP_MUL, 1);
}

/* A bias of the wrong width is not a bias. */
static void test_gemm_wrong_bias_width_unfused(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 4);
    int64_t wd[2] = {3, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f);
    int b = vec(g, "b", 1);
    int y = act_val(g, "y", 3), z = act_val(g, "z", 3);
    int gm = node2(g, OP_GEMM, "fc", x, w, y);
    g->nodes[gm].trans_b = 1;
    int add = node2(g, OP_ADD, "add", y, b, z);
    mark_output(g, z);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_false(g->nodes[add].dead);
    assert_int_equal(g->nodes[gm].n_in, 2);
    check_consistent(g);
    graph_free(g);
}

/* ---------------------------------------------------------------- GELU */

/* torch.onnx's erf GELU: ((x * (1 + erf(x / sqrt2))) * 0.5). */
static graph *erf_gelu(float sqrt2, int half_first, int *x_out, int *y_out)
{
    graph *g = graph_new();
    int x = input(g, "x", 8);
    int t1 = act_val(g, "t1", 8), t2 = act_val(g, "t2", 8), t3 = act_val(g, "t3", 8),
        t4 = act_val(g, "t4", 8), y = act_val(g, "y", 8);
    if (half_first) {
        /* h = x * 0.5; y = h * (1 + erf(x * 1/sqrt2)), f64 [1] constants */
        node2(g, OP_MUL, "scale", x, scalar64(g, "inv_sqrt2", 1.0 / sqrt2), t1);
        node1(g, OP_ERF, "erf", t1, t2);
        node2(g, OP_ADD, "plus1", scalar64(g, "one", 1.0), t2, t3);
        node2(g, OP_MUL, "half", x, scalar64(g, "half", 0.5), t4);
        node2(g, OP_MUL, "prod", t4, t3, y);
    } else {
        node2(g, OP_DIV, "div", x, scalar(g, "sqrt2", sqrt2), t1);
        node1(g, OP_ERF, "erf", t1, t2);
        node2(g, OP_ADD, "plus1", t2, scalar(g, "one", 1.0f), t3);
        node2(g, OP_MUL, "prod", x, t3, t4);
        node2(g, OP_MUL, "half", t4, scalar(g, "half", 0.5f), y);
    }
    mark_output(g, y);
    *x_out = x;
    *y_out = y;
    return g;
}

static void check_gelu(graph *g, int x, int y, int approximate)
{
    assert_int_equal(live_nodes(g), 1);
    int p = g->values[y].producer;
    assert_true(p >= 0);
    const graph_node *n = &g->nodes[p];
    assert_false(n->dead);
    assert_int_equal(n->op, OP_GELU);
    assert_int_equal(n->approximate, approximate);
    assert_int_equal(n->n_in, 1);
    assert_int_equal(n->in[0], x);
    assert_int_equal(g->values[x].n_consumers, 1);
    check_consistent(g);
}

static void test_gelu_erf(void **state)
{
    (void)state;
    int x, y;
    graph *g = erf_gelu(1.41421f, 0, &x, &y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_gelu(g, x, y, 0);
    graph_free(g);
}

static void test_gelu_erf_half_first(void **state)
{
    (void)state;
    int x, y;
    graph *g = erf_gelu((float)M_SQRT2, 1, &x, &y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_gelu(g, x, y, 0);
    graph_free(g);
}

/* Dividing by 1.5 is not GELU. */
static void test_gelu_wrong_constant_unfused(void **state)
{
    (void)state;
    int x, y;
    graph *g = erf_gelu(1.5f, 0, &x, &y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 5);
    assert_int_equal(g->nodes[g->values[y].producer].op, OP_MUL);
    check_consistent(g);
    graph_free(g);
}

/* erf(x/sqrt2) is also read elsewhere: the chain must stay. */
static void test_gelu_shared_intermediate_unfused(void **state)
{
    (void)state;
    int x, y;
    graph *g = erf_gelu(1.41421f, 0, &x, &y);
    int t2 = graph_find_value(g, "t2"), o = act_val(g, "o", 8);
    node1(g, OP_RELU, "other", t2, o);
    mark_output(g, o);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 6);
    check_consistent(g);
    graph_free(g);
}

/* torch.onnx's tanh GELU (approximate='tanh'), with f64 constants:
 * 0.5 * (x * (1 + tanh(beta * (x + kappa * (x * (x * x)))))). */
static void test_gelu_tanh(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = input(g, "x", 8);
    int sq = act_val(g, "sq", 8), cube = act_val(g, "cube", 8), k = act_val(g, "k", 8),
        in = act_val(g, "in", 8), bt = act_val(g, "bt", 8), th = act_val(g, "th", 8),
        p1 = act_val(g, "p1", 8), m = act_val(g, "m", 8), y = act_val(g, "y", 8);
    node2(g, OP_MUL, "sq", x, x, sq);
    node2(g, OP_MUL, "cube", x, sq, cube);
    node2(g, OP_MUL, "kappa", scalar64(g, "kappa", 0.044715), cube, k);
    node2(g, OP_ADD, "inner", x, k, in);
    node2(g, OP_MUL, "beta", scalar64(g, "beta", sqrt(2.0 / M_PI)), in, bt);
    node1(g, OP_TANH, "tanh", bt, th);
    node2(g, OP_ADD, "plus1", scalar64(g, "one", 1.0), th, p1);
    node2(g, OP_MUL, "prod", x, p1, m);
    node2(g, OP_MUL, "half", scalar64(g, "half", 0.5), m, y);
    mark_output(g, y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_gelu(g, x, y, 1);
    graph_free(g);
}

/* The whole hidden layer of an exported GELU MLP: Gemm, bias Add, erf
 * GELU -> one Gemm with ACT_GELU. */
static void test_gemm_bias_gelu_chain(void **state)
{
    (void)state;
    graph *g = graph_new();
    int in = input(g, "in", 4);
    int64_t wd[2] = {8, 4};
    int w = cst_f32(g, "w", 2, wd, 0.1f), b = vec(g, "b", 8);
    int y = act_val(g, "y", 8), x = act_val(g, "x", 8);
    int gm = node2(g, OP_GEMM, "fc", in, w, y);
    g->nodes[gm].trans_b = 1;
    node2(g, OP_ADD, "bias", y, b, x);
    int t1 = act_val(g, "t1", 8), t2 = act_val(g, "t2", 8), t3 = act_val(g, "t3", 8),
        t4 = act_val(g, "t4", 8), o = act_val(g, "o", 8);
    node2(g, OP_DIV, "div", x, scalar(g, "sqrt2", 1.4142135f), t1);
    node1(g, OP_ERF, "erf", t1, t2);
    node2(g, OP_ADD, "plus1", t2, scalar(g, "one", 1.0f), t3);
    node2(g, OP_MUL, "prod", x, t3, t4);
    node2(g, OP_MUL, "half", t4, scalar(g, "half", 0.5f), o);
    mark_output(g, o);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    assert_int_equal(g->nodes[gm].act, ACT_GELU);
    assert_int_equal(g->nodes[gm].in[2], b);
    assert_int_equal(g->nodes[gm].out[0], o);
    check_consistent(g);
    graph_free(g);
}

/* ----------------------------------------------------------- LayerNorm */

static int reduce_mean(graph *g, const char *name, int x, int out)
{
    int n = node1(g, OP_REDUCE_MEAN, name, x, out);
    g->nodes[n].n_axes = 1;
    g->nodes[n].axes[0] = -1;
    g->nodes[n].keepdims = 1;
    return n;
}

/* x [N,6] -> the decomposition of LayerNorm(eps) * scale + bias. */
static graph *layer_norm(double eps, int affine, int *x_out, int *y_out)
{
    graph *g = graph_new();
    int x = input(g, "x", 6);
    int mean = act_val(g, "mean", 1), d = act_val(g, "d", 6), p = act_val(g, "p", 6),
        var = act_val(g, "var", 1), ve = act_val(g, "ve", 1), sd = act_val(g, "sd", 1),
        n = act_val(g, "n", 6);
    reduce_mean(g, "mean", x, mean);
    node2(g, OP_SUB, "sub", x, mean, d);
    node2(g, OP_POW, "pow", d, scalar(g, "two", 2.0f), p);
    reduce_mean(g, "var", p, var);
    node2(g, OP_ADD, "eps", var, scalar64(g, "eps", eps), ve);
    node1(g, OP_SQRT, "sqrt", ve, sd);
    node2(g, OP_DIV, "div", d, sd, n);
    int y = n;
    if (affine) {
        int s = act_val(g, "s", 6);
        y = act_val(g, "y", 6);
        node2(g, OP_MUL, "scale", n, vec(g, "gamma", 6), s);
        node2(g, OP_ADD, "shift", vec(g, "beta", 6), s, y);
    }
    mark_output(g, y);
    *x_out = x;
    *y_out = y;
    return g;
}

static void test_layer_norm(void **state)
{
    (void)state;
    int x, y;
    graph *g = layer_norm(1e-6, 1, &x, &y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    const graph_node *n = &g->nodes[g->values[y].producer];
    assert_int_equal(n->op, OP_LAYER_NORM);
    assert_int_equal(n->n_in, 3);
    assert_int_equal(n->in[0], x);
    assert_int_equal(n->in[1], graph_find_value(g, "gamma"));
    assert_int_equal(n->in[2], graph_find_value(g, "beta"));
    assert_int_equal(n->axis, -1);
    assert_true(fabsf(n->epsilon - 1e-6f) <= 1e-12f);
    assert_int_equal(g->values[x].n_consumers, 1);
    check_consistent(g);
    graph_free(g);
}

/* No affine part: a scale of ones is made, there is no bias. */
static void test_layer_norm_plain(void **state)
{
    (void)state;
    int x, y;
    graph *g = layer_norm(1e-5, 0, &x, &y);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 1);
    const graph_node *n = &g->nodes[g->values[y].producer];
    assert_int_equal(n->op, OP_LAYER_NORM);
    assert_int_equal(n->n_in, 2);
    const graph_value *s = &g->values[n->in[1]];
    assert_true(s->is_const);
    assert_int_equal(s->ndim, 1);
    assert_int_equal(s->dims[0], 6);
    for (int i = 0; i < 6; i++)
        assert_true(((const float *)s->data)[i] == 1.0f);
    assert_true(fabsf(n->epsilon - 1e-5f) <= 1e-11f);
    check_consistent(g);
    graph_free(g);
}

/* x - mean is also read by another node: LayerNorm would lose it. */
static void test_layer_norm_shared_diff_unfused(void **state)
{
    (void)state;
    int x, y;
    graph *g = layer_norm(1e-5, 1, &x, &y);
    int d = graph_find_value(g, "d"), o = act_val(g, "o", 6);
    node1(g, OP_RELU, "other", d, o);
    mark_output(g, o);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 10);
    check_consistent(g);
    graph_free(g);
}

/* Squaring with Pow(d, 3) is not a variance. */
static void test_layer_norm_wrong_power_unfused(void **state)
{
    (void)state;
    int x, y;
    graph *g = layer_norm(1e-5, 1, &x, &y);
    float *two = g->values[graph_find_value(g, "two")].data;
    *two = 3.0f;
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_int_equal(live_nodes(g), 9);
    check_consistent(g);
    graph_free(g);
}

/* ------------------------------------- Embedding -> LSTM (fuse_rnn.c) */

/* ids [N, 3] int64 -> Gather(E [V, 2]) -> Transpose(1, 0, 2) -> LSTM or
 * GRU with linear_before_reset (hidden 2, forward, W [1, 2G, 2], R [1, 2G,
 * 2], B [1, 4G]) -> Y. With `shared`, the gathered tensor is a graph
 * output too. */
static graph *embedding_rnn(op_kind op, int64_t V, int shared, int *gather, int *transpose,
                            int *lstm)
{
    graph *g = graph_new();
    int64_t G = op == OP_LSTM ? 4 : 3;
    int64_t idd[2] = {FERRY_DIM_BATCH, 3}, ed[2] = {V, 2}, xd[3] = {FERRY_DIM_BATCH, 3, 2},
            td[3] = {3, FERRY_DIM_BATCH, 2}, wd[3] = {1, 2 * G, 2}, rd[3] = {1, 2 * G, 2},
            bd[2] = {1, 4 * G}, yd[4] = {3, 1, FERRY_DIM_BATCH, 2};
    int ids = graph_add_value(g, "ids", FERRY_I64, 2, idd);
    g->values[ids].is_input = 1;
    g->inputs = malloc(sizeof *g->inputs);
    g->inputs[g->n_inputs++] = ids;
    int e = cst_f32(g, "E", 2, ed, -0.3f), w = cst_f32(g, "W", 3, wd, 0.2f),
        r = cst_f32(g, "R", 3, rd, -0.1f), b = cst_f32(g, "B", 2, bd, 0.05f);
    int x = graph_add_value(g, "x", FERRY_F32, 3, xd), xt = graph_add_value(g, "xt", FERRY_F32, 3, td),
        y = graph_add_value(g, "y", FERRY_F32, 4, yd);
    *gather = node2(g, OP_GATHER, "emb", e, ids, x);
    g->nodes[*gather].axis = 0;
    *transpose = node1(g, OP_TRANSPOSE, "tr", x, xt);
    g->nodes[*transpose].n_axes = 3;
    g->nodes[*transpose].perm[0] = 1, g->nodes[*transpose].perm[1] = 0;
    g->nodes[*transpose].perm[2] = 2;
    int in[4] = {xt, w, r, b};
    *lstm = graph_add_node(g, op, "rnn", 4, in, 1, &y);
    g->nodes[*lstm].hidden = 2;
    g->nodes[*lstm].linear_before_reset = op == OP_GRU;
    mark_output(g, y);
    if (shared)
        mark_output(g, x);
    return g;
}

static void test_embedding_lstm_projected(void **state)
{
    (void)state;
    int ga, tr, ls;
    graph *g = embedding_rnn(OP_LSTM, 5, 0, &ga, &tr, &ls);
    const float *E = g->values[graph_find_value(g, "E")].data,
                *W = g->values[graph_find_value(g, "W")].data,
                *B = g->values[graph_find_value(g, "B")].data;
    float Ec[10], Wc[16], Bc[16];
    memcpy(Ec, E, sizeof Ec), memcpy(Wc, W, sizeof Wc), memcpy(Bc, B, sizeof Bc);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_consistent(g);
    const graph_node *l = &g->nodes[ls], *t = &g->nodes[ga], *gn = &g->nodes[tr];
    assert_true(l->x_projected);
    assert_int_equal(l->in[3], -1); /* the biases went into the table */
    /* the Transpose moved to the ids, the Gather reads the projected table */
    assert_int_equal(t->op, OP_TRANSPOSE);
    assert_int_equal(t->in[0], graph_find_value(g, "ids"));
    assert_int_equal(t->n_axes, 2);
    assert_int_equal(gn->op, OP_GATHER);
    assert_int_equal(gn->out[0], l->in[0]);
    const graph_value *p = &g->values[gn->in[0]];
    assert_true(p->is_const && p->ndim == 2 && p->dims[0] == 5 && p->dims[1] == 8);
    const float *P = p->data;
    for (int v = 0; v < 5; v++)
        for (int j = 0; j < 8; j++) {
            double want = (double)Bc[j] + Bc[8 + j];
            for (int i = 0; i < 2; i++)
                want += (double)Ec[v * 2 + i] * Wc[j * 2 + i];
            assert_true(fabs(P[v * 8 + j] - want) <= 1e-6 * (1 + fabs(want)));
        }
    assert_int_equal(graph_infer_shapes(g), FERRY_OK);
    const graph_value *x = &g->values[l->in[0]];
    assert_true(x->ndim == 3 && x->dims[0] == 3 && x->dims[2] == 8);
    graph_free(g);
}

/* A GRU (linear_before_reset): P takes Wb and the update and reset gates'
 * Rb; B keeps only the new gate's Rb, inside r * (h R + Rb). */
static void test_embedding_gru_projected(void **state)
{
    (void)state;
    int ga, tr, ls;
    graph *g = embedding_rnn(OP_GRU, 5, 0, &ga, &tr, &ls);
    float Ec[10], Wc[12], Bc[12];
    memcpy(Ec, g->values[graph_find_value(g, "E")].data, sizeof Ec);
    memcpy(Wc, g->values[graph_find_value(g, "W")].data, sizeof Wc);
    memcpy(Bc, g->values[graph_find_value(g, "B")].data, sizeof Bc);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_consistent(g);
    const graph_node *l = &g->nodes[ls];
    assert_true(l->x_projected);
    const graph_value *b = &g->values[l->in[3]], *p = &g->values[g->nodes[tr].in[0]];
    assert_true(b->is_const && b->dims[1] == 12 && p->dims[1] == 6);
    const float *B = b->data, *P = p->data;
    for (int j = 0; j < 12; j++) /* [Wb z r h | Rb z r h]: only Rb h is left */
        assert_true(B[j] == (j >= 10 ? Bc[j] : 0.0f));
    for (int v = 0; v < 5; v++)
        for (int j = 0; j < 6; j++) {
            double want = (double)Bc[j] + (j < 4 ? Bc[6 + j] : 0.0);
            for (int i = 0; i < 2; i++)
                want += (double)Ec[v * 2 + i] * Wc[j * 2 + i];
            assert_true(fabs(P[v * 6 + j] - want) <= 1e-6 * (1 + fabs(want)));
        }
    graph_free(g);
}

/* The gathered rows are read elsewhere too, or the table would pass
 * 64 MiB: left as they are. */
static void test_embedding_lstm_unfused(void **state)
{
    (void)state;
    int ga, tr, ls;
    graph *g = embedding_rnn(OP_LSTM, 5, 1, &ga, &tr, &ls);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_false(g->nodes[ls].x_projected);
    assert_int_equal(g->nodes[ga].op, OP_GATHER);
    graph_free(g);
    g = embedding_rnn(OP_LSTM, (64 << 20) / 4 / 8 + 1, 0, &ga, &tr, &ls);
    assert_int_equal(graph_fuse(g), FERRY_OK);
    assert_false(g->nodes[ls].x_projected);
    check_consistent(g);
    graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_add_relu),
        cmocka_unit_test(test_gemm_bias_first_relu),
        cmocka_unit_test(test_matmul_add_gelu_tanh),
        cmocka_unit_test(test_matmul_3d_folded_weight),
        cmocka_unit_test(test_gemm_two_consumers_unfused),
        cmocka_unit_test(test_gemm_bias_output_stops_act),
        cmocka_unit_test(test_gemm_wrong_bias_width_unfused),
        cmocka_unit_test(test_gemm_residual),
        cmocka_unit_test(test_gemm_late_residual),
        cmocka_unit_test(test_gemm_3d_batchnorm_unfolded),
        cmocka_unit_test(test_softmax_scale_mask),
        cmocka_unit_test(test_softmax_div_mask),
        cmocka_unit_test(test_softmax_odd_mask_unfused),
        cmocka_unit_test(test_gemm_act_residual_unfused),
        cmocka_unit_test(test_gemm_broadcast_residual_unfused),
        cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_gelu_erf_half_first),
        cmocka_unit_test(test_gelu_wrong_constant_unfused),
        cmocka_unit_test(test_gelu_shared_intermediate_unfused),
        cmocka_unit_test(test_gelu_tanh),
        cmocka_unit_test(test_gemm_bias_gelu_chain),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_layer_norm_plain),
        cmocka_unit_test(test_layer_norm_shared_diff_unfused),
        cmocka_unit_test(test_layer_norm_wrong_power_unfused),
        cmocka_unit_test(test_embedding_lstm_projected),
        cmocka_unit_test(test_embedding_gru_projected),
        cmocka_unit_test(test_embedding_lstm_unfused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
