/*
 * test_fold.c - graph_fold_constants turns nodes of constants into
 * constants with the right dtype, shape and bytes (Cast, Reshape, Flatten,
 * broadcasting arithmetic, chains of them), leaves everything else alone,
 * and keeps graph outputs' producers; graph_resolve_views aliases views of
 * intermediates but not of graph inputs or outputs.
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

#include "graph/graph.h"
#include "util/half.h"

static int cst(graph *g, const char *name, ferry_dtype dt, int ndim, const int64_t *dims,
               const void *data)
{
    int v = graph_add_value(g, name, dt, ndim, dims);
    assert_true(v >= 0);
    size_t bytes = (size_t)graph_value_numel(&g->values[v], 1) * ferry_dtype_size(dt);
    g->values[v].data = malloc(bytes ? bytes : 1);
    memcpy(g->values[v].data, data, bytes);
    g->values[v].is_const = 1;
    return v;
}

static int val(graph *g, const char *name)
{
    int v = graph_add_value(g, name, FERRY_DTYPE_UNDEFINED, 0, NULL);
    assert_true(v >= 0);
    return v;
}

static int act(graph *g, const char *name, int64_t width)
{
    int64_t d[2] = {FERRY_DIM_BATCH, width};
    int v = graph_add_value(g, name, FERRY_F32, 2, d);
    assert_true(v >= 0);
    return v;
}

static int node(graph *g, op_kind op, int a, int b, int out)
{
    int in[2] = {a, b};
    int n = graph_add_node(g, op, NULL, b >= 0 ? 2 : 1, in, 1, &out);
    assert_true(n >= 0);
    return n;
}

static void mark_output(graph *g, int v)
{
    g->values[v].is_output = 1;
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
    g->outputs[g->n_outputs++] = v;
}

/* f16 weights Cast to f32, then Reshaped by a constant [3, -1]: one sweep
 * folds the chain into an f32 [3,2] constant with the exact values. */
static void test_cast_reshape_chain(void **state)
{
    (void)state;
    graph *g = graph_new();
    const float want[6] = {0.5f, -1.25f, 3.0f, 65504.0f, 0.0009765625f, -2.0f};
    uint16_t h[6];
    for (int i = 0; i < 6; i++)
        h[i] = ferry_f32_to_f16(want[i]);
    int64_t wd[2] = {2, 3}, sd = 2;
    const int64_t shape[2] = {3, -1};
    int w16 = cst(g, "w16", FERRY_F16, 2, wd, h);
    int s = cst(g, "shape", FERRY_I64, 1, &sd, shape);
    int w32 = val(g, "w32"), w = val(g, "w");
    int cast = node(g, OP_CAST, w16, -1, w32);
    g->nodes[cast].to = FERRY_F32;
    int rs = node(g, OP_RESHAPE, w32, s, w);
    int x = act(g, "x", 2), y = act(g, "y", 3);
    g->values[x].is_input = 1;
    node(g, OP_MATMUL, x, w, y); /* keeps w alive */
    mark_output(g, y);

    assert_int_equal(graph_fold_constants(g), FERRY_OK);
    assert_true(g->nodes[cast].dead && g->nodes[rs].dead);
    const graph_value *wv = &g->values[w];
    assert_true(wv->is_const);
    assert_int_equal(wv->producer, -1);
    assert_int_equal(wv->dtype, FERRY_F32);
    assert_int_equal(wv->ndim, 2);
    assert_int_equal(wv->dims[0], 3);
    assert_int_equal(wv->dims[1], 2);
    assert_memory_equal(wv->data, want, sizeof want);
    assert_int_equal(g->values[w16].n_consumers, 0);
    assert_int_equal(g->values[w32].n_consumers, 0);
    assert_int_equal(g->values[s].n_consumers, 0);
    assert_int_equal(g->values[w].n_consumers, 1);
    graph_free(g);
}

/* Casts that lose information do what ONNX says: float -> int truncates
 * toward zero, float -> bool is "nonzero", f32 -> bf16 rounds to nearest. */
static void test_cast_semantics(void **state)
{
    (void)state;
    graph *g = graph_new();
    const float src[4] = {2.7f, -2.7f, 0.25f, 1.00390625f};
    int64_t n = 4;
    int a = cst(g, "a", FERRY_F32, 1, &n, src);
    int i64 = val(g, "i64"), b = val(g, "b"), bf = val(g, "bf"), f64 = val(g, "f64");
    ferry_dtype to[4] = {FERRY_I64, FERRY_BOOL, FERRY_BF16, FERRY_F64};
    int outs[4] = {i64, b, bf, f64};
    for (int k = 0; k < 4; k++) {
        int ni = node(g, OP_CAST, a, -1, outs[k]);
        g->nodes[ni].to = to[k];
    }

    assert_int_equal(graph_fold_constants(g), FERRY_OK);
    const int64_t *iv = g->values[i64].data;
    assert_int_equal(iv[0], 2);
    assert_int_equal(iv[1], -2);
    assert_int_equal(iv[2], 0);
    const uint8_t *bv = g->values[b].data;
    assert_int_equal(bv[2], 1);
    const uint16_t *hv = g->values[bf].data;
    assert_int_equal(hv[0], ferry_f32_to_bf16(2.7f));
    assert_true(ferry_bf16_to_f32(hv[3]) == 1.0f); /* a tie, rounded to even */
    const double *dv = g->values[f64].data;
    assert_true(dv[1] == (double)-2.7f);
    graph_free(g);
}

/* Broadcasting arithmetic: [2,3] - [3], then / a [] scalar, then Sqrt. */
static void test_broadcast_arith(void **state)
{
    (void)state;
    graph *g = graph_new();
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {1, 1, 2}, c = 0.5f;
    int64_t ad[2] = {2, 3}, bd = 3;
    int va = cst(g, "a", FERRY_F32, 2, ad, a), vb = cst(g, "b", FERRY_F32, 1, &bd, b);
    int vc = cst(g, "c", FERRY_F32, 0, NULL, &c);
    int d = val(g, "d"), q = val(g, "q"), r = val(g, "r");
    node(g, OP_SUB, va, vb, d);
    node(g, OP_DIV, d, vc, q);
    node(g, OP_SQRT, q, -1, r);

    assert_int_equal(graph_fold_constants(g), FERRY_OK);
    const graph_value *rv = &g->values[r];
    assert_true(rv->is_const);
    assert_int_equal(rv->ndim, 2);
    assert_int_equal(rv->dims[0], 2);
    assert_int_equal(rv->dims[1], 3);
    const float want[6] = {0, 2, 2, 6, 8, 8};
    for (int i = 0; i < 6; i++)
        assert_true(((const float *)rv->data)[i] == sqrtf(want[i]));
    graph_free(g);
}

/* f64 arithmetic stays f64; int64 arithmetic stays exact. */
static void test_f64_and_int(void **state)
{
    (void)state;
    graph *g = graph_new();
    const double a = 1.0 / 3.0, b = 3.0;
    const int64_t i[2] = {((int64_t)1 << 60) + 1, 7}, j = 2;
    int64_t two = 2;
    int va = cst(g, "a", FERRY_F64, 0, NULL, &a), vb = cst(g, "b", FERRY_F64, 0, NULL, &b);
    int vi = cst(g, "i", FERRY_I64, 1, &two, i), vj = cst(g, "j", FERRY_I64, 0, NULL, &j);
    int p = val(g, "p"), m = val(g, "m");
    node(g, OP_MUL, va, vb, p);
    node(g, OP_MUL, vi, vj, m);

    assert_int_equal(graph_fold_constants(g), FERRY_OK);
    assert_int_equal(g->values[p].dtype, FERRY_F64);
    assert_true(*(const double *)g->values[p].data == (1.0 / 3.0) * 3.0);
    const int64_t *mv = g->values[m].data;
    assert_true(mv[0] == ((int64_t)1 << 61) + 2);
    assert_true(mv[1] == 14);
    graph_free(g);
}

/* Nodes that read a non-constant, and nodes that write a graph output,
 * are not folded; Flatten of a constant is. */
static void test_not_folded(void **state)
{
    (void)state;
    graph *g = graph_new();
    const float two = 2.0f, w[6] = {1, 2, 3, 4, 5, 6};
    int64_t wd[3] = {1, 2, 3};
    int x = act(g, "x", 4);
    g->values[x].is_input = 1;
    int c = cst(g, "two", FERRY_F32, 0, NULL, &two);
    int vw = cst(g, "w", FERRY_F32, 3, wd, w);
    int s = val(g, "s"), y = act(g, "y", 4), o = val(g, "o"), f = val(g, "f");
    int sq = node(g, OP_SQRT, c, -1, s);
    int dv = node(g, OP_DIV, x, s, y);
    int out = node(g, OP_IDENTITY, c, -1, o);
    int fl = node(g, OP_FLATTEN, vw, -1, f);
    g->nodes[fl].axis = 2;
    mark_output(g, y);
    mark_output(g, o);

    assert_int_equal(graph_fold_constants(g), FERRY_OK);
    assert_true(g->nodes[sq].dead);
    assert_true(fabsf(*(const float *)g->values[s].data - sqrtf(2.0f)) == 0.0f);
    assert_false(g->nodes[dv].dead);
    assert_false(g->nodes[out].dead);
    assert_int_equal(g->values[o].producer, out);
    assert_false(g->values[o].is_const);
    assert_true(g->nodes[fl].dead);
    assert_int_equal(g->values[f].ndim, 2);
    assert_int_equal(g->values[f].dims[0], 2);
    assert_int_equal(g->values[f].dims[1], 3);
    graph_free(g);
}

/* Views of intermediates share their root's storage (through chains);
 * views of graph inputs or into graph outputs stay copies. */
static void test_views(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = act(g, "x", 4);
    g->values[x].is_input = 1;
    int a = act(g, "a", 4), b = act(g, "b", 4), c = act(g, "c", 4), d = act(g, "d", 4),
        e = act(g, "e", 4);
    node(g, OP_IDENTITY, x, -1, a); /* reads a graph input: copy */
    node(g, OP_RELU, a, -1, b);
    node(g, OP_FLATTEN, b, -1, c);  /* alias of b */
    node(g, OP_IDENTITY, c, -1, d); /* alias of b, through c */
    node(g, OP_IDENTITY, d, -1, e); /* writes a graph output: copy */
    mark_output(g, e);

    assert_int_equal(graph_resolve_views(g), FERRY_OK);
    assert_int_equal(g->values[a].alias, -1);
    assert_int_equal(g->values[c].alias, b);
    assert_int_equal(g->values[d].alias, b);
    assert_int_equal(g->values[e].alias, -1);
    for (int i = 0; i < g->n_nodes; i++)
        assert_false(g->nodes[i].dead);
    graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cast_reshape_chain), cmocka_unit_test(test_cast_semantics),
        cmocka_unit_test(test_broadcast_arith),    cmocka_unit_test(test_f64_and_int),
        cmocka_unit_test(test_not_folded),         cmocka_unit_test(test_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
