/*
 * test_fuse_attention.c - graph_fuse's attention pass (fuse_attention.c) on
 * hand-built graphs shaped as torch.onnx exports them: the whole chain
 * becomes one OP_ATTENTION reading Q, K and V in place (from the Split's
 * input, the Split gone), with the softmax's scale and mask; HF's second
 * key transpose and separate projections fuse too; near misses (a wrong
 * permutation, an intermediate read twice, a scale that is not a scalar)
 * stay as they are; MultiheadAttention's time-major chain fuses as mode 1;
 * masks filled in with Where (GPT-2's, DistilBERT's) become additive ones;
 * Hugging Face's BART-style chain with the heads folded into the batch.
 * Then the exported test models: bert's, gpt's and vit's attention fuse;
 * FERRY_NO_FUSE_ATTENTION=1 turns it off.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/fuse_builder.h"
#include "graph/graph.h"

#define N FERRY_DIM_BATCH
enum { T = 5, H = 2, DH = 4, D = H * DH };

static int value(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = graph_add_value(g, name, FERRY_F32, nd, d);
    assert_true(v >= 0);
    return v;
}

static int input(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = value(g, name, nd, d);
    g->values[v].is_input = 1;
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
    return v;
}

static int transpose(graph *g, const char *name, int x, const int64_t *perm, const int64_t *yd)
{
    int y = value(g, name, 4, yd);
    int n = node1(g, OP_TRANSPOSE, name, x, y);
    memcpy(g->nodes[n].perm, perm, 4 * sizeof *perm);
    return y;
}

/* What can go wrong in the chain, one case each. */
typedef enum variant {
    V_SPLIT,          /* torch.onnx's: one projection, Split, Mul + Add(mask) */
    V_SEPARATE,       /* three projections (HF), no mask */
    V_HF_KEY,         /* K as Transpose(0,2,1,3) then Transpose(0,1,3,2) */
    V_SPLIT_SHARED,   /* a Split output read elsewhere too: fused, Split kept */
    V_WRONG_PERM,     /* V's heads by (0,1,2,3): unfused */
    V_SCORES_READ,    /* the scores also a graph output: unfused */
    V_VECTOR_SCALE,   /* Mul by a [T] vector: not the softmax's scale, unfused */
} variant;

typedef struct chain {
    graph *g;
    int x[3];    /* sources: the Split's input three times, or three inputs */
    int mask, y, split, softmax;
} chain;

/* A projection's heads: Reshape [N,T,D] -> [N,T,H,d], then perm. */
static int heads(graph *g, const char *name, int src, const int64_t *perm, const int64_t *yd)
{
    static const int64_t rd[4] = {N, T, H, DH};
    int64_t four = 4;
    char nm[32];
    snprintf(nm, sizeof nm, "%s_shape", name);
    int shape = cst_f32(g, nm, 1, &four, 0.0f);
    snprintf(nm, sizeof nm, "%s_r", name);
    int r = value(g, nm, 4, rd);
    node2(g, OP_RESHAPE, nm, src, shape, r);
    return transpose(g, name, r, perm, yd);
}

static void build_sources(chain *c, variant v, int *q, int *k, int *vv)
{
    graph *g = c->g;
    int64_t pd[3] = {N, T, D};
    if (v == V_SEPARATE) {
        *q = c->x[0] = input(g, "xq", 3, pd);
        *k = c->x[1] = input(g, "xk", 3, pd);
        *vv = c->x[2] = input(g, "xv", 3, pd);
        return;
    }
    int64_t xd[3] = {N, T, 3 * D};
    c->x[0] = c->x[1] = c->x[2] = input(g, "qkv", 3, xd);
    *q = value(g, "q", 3, pd);
    *k = value(g, "k", 3, pd);
    *vv = value(g, "v", 3, pd);
    int outs[3] = {*q, *k, *vv};
    c->split = graph_add_node(g, OP_SPLIT, "split", 1, c->x, 3, outs);
    g->nodes[c->split].axis = 2;
    if (v == V_SPLIT_SHARED) {
        int r = value(g, "k_relu", 3, pd);
        node1(g, OP_RELU, "k_relu", *k, r);
        mark_output(g, r);
    }
}

static chain build(variant v)
{
    static const int64_t p0213[4] = {0, 2, 1, 3}, p0231[4] = {0, 2, 3, 1},
                         p0132[4] = {0, 1, 3, 2}, p0123[4] = {0, 1, 2, 3};
    static const int64_t hd[4] = {N, H, T, DH}, kd[4] = {N, H, DH, T}, sd[4] = {N, H, T, T},
                         od[4] = {N, T, H, DH}, md[4] = {N, 1, 1, T}, yd[3] = {N, T, D};
    chain c;
    memset(&c, 0, sizeof c);
    c.split = c.mask = -1;
    graph *g = c.g = graph_new();
    int q, k, vv;
    build_sources(&c, v, &q, &k, &vv);
    int qh = heads(g, "qh", q, p0213, hd);
    int kt = v == V_HF_KEY ? transpose(g, "kt", heads(g, "kh", k, p0213, hd), p0132, kd)
                           : heads(g, "kt", k, p0231, kd);
    int vh = heads(g, "vh", vv, v == V_WRONG_PERM ? p0123 : p0213, hd);
    int s = value(g, "scores", 4, sd), p = value(g, "p", 4, sd);
    node2(g, OP_MATMUL, "qk", qh, kt, s);
    int sm_in = s;
    if (v != V_SEPARATE) {
        int64_t t = T;
        int c8 = v == V_VECTOR_SCALE ? cst_f32(g, "c", 1, &t, 0.5f) : scalar(g, "c", 0.5f);
        int a = value(g, "scaled", 4, sd), b = value(g, "masked", 4, sd);
        c.mask = input(g, "mask", 4, md);
        node2(g, OP_MUL, "scale", s, c8, a);
        node2(g, OP_ADD, "add_mask", a, c.mask, b);
        sm_in = b;
    }
    c.softmax = node1(g, OP_SOFTMAX, "softmax", sm_in, p);
    g->nodes[c.softmax].axis = -1;
    if (v == V_SCORES_READ)
        mark_output(g, s);
    int o = value(g, "o", 4, hd);
    node2(g, OP_MATMUL, "pv", p, vh, o);
    int ot = transpose(g, "ot", o, p0213, od);
    int64_t three = 3;
    c.y = value(g, "y", 3, yd);
    node2(g, OP_RESHAPE, "merge", ot, cst_f32(g, "y_shape", 1, &three, 0.0f), c.y);
    mark_output(g, c.y);
    return c;
}

/* The node that writes y, checked against what the chain computes. */
static void check_fused(const chain *c, variant v)
{
    const graph *g = c->g;
    int ni = g->values[c->y].producer;
    assert_true(ni >= 0);
    const graph_node *n = &g->nodes[ni];
    assert_int_equal(n->op, OP_ATTENTION);
    assert_int_equal(n->heads, H);
    assert_int_equal(n->head_dim, DH);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(n->in[k], c->x[k]);
        assert_int_equal(n->starts[k], v == V_SEPARATE ? 0 : k * D);
    }
    if (v == V_SEPARATE) {
        assert_int_equal(n->n_in, 3);
        assert_true(n->alpha == 1.0f);
    } else {
        assert_int_equal(n->n_in, 4);
        assert_int_equal(n->in[3], c->mask);
        assert_true(fabsf(n->alpha - 0.5f) < 1e-7f);
    }
    if (c->split >= 0)
        assert_int_equal(g->nodes[c->split].dead, v != V_SPLIT_SHARED);
    int extra = (c->split >= 0 && v == V_SPLIT_SHARED) ? 2 : 0; /* the Split, the Relu */
    assert_int_equal(live_nodes(g), 1 + extra);
    check_consistent(g);
}

static void fuse_case(variant v, int want_fused)
{
    chain c = build(v);
    int before = live_nodes(c.g);
    assert_int_equal(graph_fuse(c.g), FERRY_OK);
    if (want_fused) {
        check_fused(&c, v);
    } else {
        for (int i = 0; i < c.g->n_nodes; i++)
            assert_true(c.g->nodes[i].dead || c.g->nodes[i].op != OP_ATTENTION);
        assert_false(c.g->nodes[c.softmax].dead);
        assert_true(live_nodes(c.g) >= before - 2); /* at most the softmax's Mul and Add */
        check_consistent(c.g);
    }
    graph_free(c.g);
}

static void test_split_mask(void **state)
{
    (void)state;
    fuse_case(V_SPLIT, 1);
}

static void test_separate_projections(void **state)
{
    (void)state;
    fuse_case(V_SEPARATE, 1);
}

static void test_hf_key_transposes(void **state)
{
    (void)state;
    fuse_case(V_HF_KEY, 1);
}

static void test_split_output_shared(void **state)
{
    (void)state;
    fuse_case(V_SPLIT_SHARED, 1);
}

static void test_wrong_perm_unfused(void **state)
{
    (void)state;
    fuse_case(V_WRONG_PERM, 0);
}

static void test_scores_read_unfused(void **state)
{
    (void)state;
    fuse_case(V_SCORES_READ, 0);
}

static void test_vector_scale_unfused(void **state)
{
    (void)state;
    fuse_case(V_VECTOR_SCALE, 0);
}

static void test_switch_off(void **state)
{
    (void)state;
    setenv("FERRY_NO_FUSE_ATTENTION", "1", 1);
    chain c = build(V_SPLIT);
    assert_int_equal(graph_fuse(c.g), FERRY_OK);
    unsetenv("FERRY_NO_FUSE_ATTENTION");
    assert_int_equal(c.g->nodes[c.g->values[c.y].producer].op, OP_RESHAPE);
    graph_free(c.g);
}

/* torch.nn.MultiheadAttention's time-major chain (torchvision's ViT):
 * X [T,N,3D] -> Slice x3 -> Reshape [T,N*H,d] -> Transpose (1,0,2), Q divided
 * by 2, K by (1,2,0) -> MatMul -> Softmax -> MatMul -> Transpose(1,0,2) ->
 * Reshape [T*N, D]. bad_div: Q divided by a [d] vector instead. */
static void time_major_case(int bad_div)
{
    static const int64_t p102[3] = {1, 0, 2}, p120[3] = {1, 2, 0};
    const int64_t NH = -(int64_t)H; /* N*H */
    int64_t xd[3] = {T, N, 3 * D}, pd[3] = {T, N, D}, rd[3] = {T, NH, DH}, hd[3] = {NH, T, DH},
            kd[3] = {NH, DH, T}, sd[3] = {NH, T, T}, od[3] = {T, NH, DH}, yd[2] = {-T, D};
    graph *g = graph_new();
    int x = input(g, "x", 3, xd), src[3], hv[3];
    static const char *names[3] = {"q", "k", "v"};
    for (int k = 0; k < 3; k++) {
        char nm[16];
        src[k] = value(g, names[k], 3, pd);
        int sl = node1(g, OP_SLICE, names[k], x, src[k]);
        for (int i = 0; i < 3; i++)
            g->nodes[sl].steps[i] = 1;
        g->nodes[sl].starts[2] = k * D;
        int64_t three = 3;
        snprintf(nm, sizeof nm, "%s_r", names[k]);
        int r = value(g, nm, 3, rd);
        node2(g, OP_RESHAPE, nm, src[k], cst_f32(g, "shape", 1, &three, 0.0f), r);
        snprintf(nm, sizeof nm, "%s_t", names[k]);
        hv[k] = value(g, nm, 3, k == 1 ? kd : hd);
        int t = node1(g, OP_TRANSPOSE, nm, r, hv[k]);
        memcpy(g->nodes[t].perm, k == 1 ? p120 : p102, sizeof p102);
    }
    int64_t dh = DH;
    int qs = value(g, "q_scaled", 3, hd);
    node2(g, OP_DIV, "q_div", hv[0], bad_div ? cst_f32(g, "c", 1, &dh, 2.0f) : scalar(g, "c", 2.0f),
          qs);
    int s = value(g, "scores", 3, sd), p = value(g, "p", 3, sd), o = value(g, "o", 3, hd);
    node2(g, OP_MATMUL, "qk", qs, hv[1], s);
    int sm = node1(g, OP_SOFTMAX, "softmax", s, p);
    g->nodes[sm].axis = -1;
    node2(g, OP_MATMUL, "pv", p, hv[2], o);
    int ot = value(g, "ot", 3, od);
    int t = node1(g, OP_TRANSPOSE, "ot", o, ot);
    memcpy(g->nodes[t].perm, p102, sizeof p102);
    int64_t two = 2;
    int y = value(g, "y", 2, yd);
    node2(g, OP_RESHAPE, "merge", ot, cst_f32(g, "y_shape", 1, &two, 0.0f), y);
    mark_output(g, y);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    const graph_node *n = &g->nodes[g->values[y].producer];
    if (bad_div) {
        assert_int_equal(n->op, OP_RESHAPE);
    } else {
        assert_int_equal(n->op, OP_ATTENTION);
        assert_int_equal(n->mode, 1);
        assert_int_equal(n->heads, H);
        assert_int_equal(n->head_dim, DH);
        assert_true(fabsf(n->alpha - 0.5f) < 1e-7f);
        for (int k = 0; k < 3; k++) {
            assert_int_equal(n->in[k], x);
            assert_int_equal(n->starts[k], k * D);
        }
        assert_int_equal(live_nodes(g), 1); /* the Slices went with their readers */
    }
    check_consistent(g);
    graph_free(g);
}

static void test_time_major(void **state)
{
    (void)state;
    time_major_case(0);
}

static void test_time_major_vector_div_unfused(void **state)
{
    (void)state;
    time_major_case(1);
}

/* Masks written with Where (fuse_mask.c) on the V_SEPARATE chain, scores
 * scaled by 0.5 first:
 *   WHERE_CAUSAL: GPT-2's Where(causal [1,1,T,T] const, s, min), a no-op
 *                 Cast, + pad [N,1,1,T]: fused with one Add of the masks;
 *   WHERE_PAD:    DistilBERT's Where(Expand(pad bool [N,1,1,T]), min, s):
 *                 fused, the Expand become the mask's Where at [N,1,1,T];
 *   WHERE_SMALL:  the causal case filling -1e4, which Add would not
 *                 reproduce (x - 1e4 is not -1e4): unfused. */
typedef enum where_variant { WHERE_CAUSAL, WHERE_PAD, WHERE_SMALL } where_variant;

static void where_case(where_variant wv)
{
    static const int64_t p0213[4] = {0, 2, 1, 3}, p0231[4] = {0, 2, 3, 1};
    static const int64_t hd[4] = {N, H, T, DH}, kd[4] = {N, H, DH, T}, sd[4] = {N, H, T, T},
                         od[4] = {N, T, H, DH}, pd4[4] = {N, 1, 1, T}, cd[4] = {1, 1, T, T},
                         yd[3] = {N, T, D}, xd[3] = {N, T, D};
    graph *g = graph_new();
    int xq = input(g, "xq", 3, xd), xk = input(g, "xk", 3, xd), xv = input(g, "xv", 3, xd);
    int qh = heads(g, "qh", xq, p0213, hd), kt = heads(g, "kt", xk, p0231, kd),
        vh = heads(g, "vh", xv, p0213, hd);
    int s = value(g, "scores", 4, sd), a = value(g, "scaled", 4, sd), w = value(g, "w", 4, sd);
    node2(g, OP_MATMUL, "qk", qh, kt, s);
    node2(g, OP_MUL, "scale", s, scalar(g, "c", 0.5f), a);
    float fill = wv == WHERE_SMALL ? -1e4f : -3.4028234663852886e38f;
    int pad, sm_in, in3[3];
    if (wv == WHERE_PAD) {
        int pb = graph_add_value(g, "pad", FERRY_BOOL, 4, pd4);
        g->values[pb].is_input = 1;
        g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
        g->inputs[g->n_inputs++] = pb;
        int e = graph_add_value(g, "pad_x", FERRY_BOOL, 4, sd);
        int64_t four = 4;
        node2(g, OP_EXPAND, "expand", pb, cst_f32(g, "sd", 1, &four, 0.0f), e);
        in3[0] = e, in3[1] = scalar(g, "fill", fill), in3[2] = a;
        assert_true(graph_add_node(g, OP_WHERE, "where", 3, in3, 1, &w) >= 0);
        pad = pb;
        sm_in = w;
    } else {
        int c = graph_add_value(g, "causal", FERRY_BOOL, 4, cd);
        uint8_t *cb = malloc(T * T);
        for (int i = 0; i < T * T; i++)
            cb[i] = i % T <= i / T;
        g->values[c].data = cb;
        g->values[c].is_const = 1;
        in3[0] = c, in3[1] = a, in3[2] = scalar(g, "fill", fill);
        assert_true(graph_add_node(g, OP_WHERE, "where", 3, in3, 1, &w) >= 0);
        int wc = value(g, "w_cast", 4, sd), b = value(g, "masked", 4, sd);
        g->nodes[node1(g, OP_CAST, "cast", w, wc)].to = FERRY_F32;
        pad = input(g, "pad", 4, pd4);
        node2(g, OP_ADD, "add_pad", wc, pad, b);
        sm_in = b;
    }
    int p = value(g, "p", 4, sd), o = value(g, "o", 4, hd);
    g->nodes[node1(g, OP_SOFTMAX, "softmax", sm_in, p)].axis = -1;
    node2(g, OP_MATMUL, "pv", p, vh, o);
    int ot = transpose(g, "ot", o, p0213, od);
    int64_t three = 3;
    int y = value(g, "y", 3, yd);
    node2(g, OP_RESHAPE, "merge", ot, cst_f32(g, "y_shape", 1, &three, 0.0f), y);
    mark_output(g, y);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    check_consistent(g);
    const graph_node *n = &g->nodes[g->values[y].producer];
    if (wv == WHERE_SMALL) {
        assert_int_equal(n->op, OP_RESHAPE);
        graph_free(g);
        return;
    }
    assert_int_equal(n->op, OP_ATTENTION);
    assert_true(fabsf(n->alpha - 0.5f) < 1e-7f);
    assert_int_equal(n->n_in, 4);
    /* the mask: one node left beside the attention, reading pad */
    assert_int_equal(live_nodes(g), 2);
    const graph_value *mv = &g->values[n->in[3]];
    const graph_node *mn = &g->nodes[mv->producer];
    assert_int_equal(mv->dtype, FERRY_F32);
    assert_int_equal(mv->ndim, 4);
    assert_int_equal(mv->dims[0], N);
    assert_int_equal(mv->dims[1], 1);
    assert_int_equal(mv->dims[2], wv == WHERE_PAD ? 1 : T);
    assert_int_equal(mv->dims[3], T);
    if (wv == WHERE_PAD) {
        /* Where(pad, fill, 0) */
        assert_int_equal(mn->op, OP_WHERE);
        assert_int_equal(mn->in[0], pad);
        assert_true(*(const float *)g->values[mn->in[1]].data == fill);
        assert_true(*(const float *)g->values[mn->in[2]].data == 0.0f);
    } else {
        /* Add(causal as 0 / fill, pad) */
        assert_int_equal(mn->op, OP_ADD);
        assert_int_equal(mn->in[1], pad);
        const float *cm = g->values[mn->in[0]].data;
        for (int i = 0; i < T * T; i++)
            assert_true(cm[i] == (i % T <= i / T ? 0.0f : fill));
    }
    graph_free(g);
}

static void test_where_causal_mask(void **state)
{
    (void)state;
    where_case(WHERE_CAUSAL);
}

static void test_where_padding_mask(void **state)
{
    (void)state;
    where_case(WHERE_PAD);
}

static void test_where_small_fill_unfused(void **state)
{
    (void)state;
    where_case(WHERE_SMALL);
}

/* Hugging Face's BART-style chain (CLIP, Whisper, Wav2Vec2), the heads
 * folded into the batch for the products: q_proj(x) * 0.5 -> Reshape
 * [N,T,H,d] -> Transpose(0,2,1,3) -> Reshape [N*H,T,d]; K the same then
 * Transpose(0,2,1); MatMul [N*H,T,T] (+ a causal [T,T] mask) -> Softmax ->
 * MatMul -> Reshape [N,H,T,d] -> Transpose(0,2,1,3) -> Reshape [N,T,D].
 * FOLD_WRONG_PERM: V's heads by (0,1,2,3), which is not this computation. */
enum { FOLD_PLAIN, FOLD_CAUSAL, FOLD_WRONG_PERM };

static int fold_heads(graph *g, const char *name, int src, int wrong)
{
    static const int64_t p0213[4] = {0, 2, 1, 3}, p0123[4] = {0, 1, 2, 3};
    static const int64_t hd[4] = {N, H, T, DH}, wd[4] = {N, T, H, DH};
    const int64_t fd[3] = {-(int64_t)H, T, DH};
    int64_t three = 3;
    int h = heads(g, name, src, wrong ? p0123 : p0213, wrong ? wd : hd);
    char nm[32];
    snprintf(nm, sizeof nm, "%s_fold", name);
    int f = value(g, nm, 3, fd);
    node2(g, OP_RESHAPE, nm, h, cst_f32(g, "fold_shape", 1, &three, 0.0f), f);
    return f;
}

static void folded_case(int kind)
{
    static const int64_t p0213[4] = {0, 2, 1, 3}, p021[3] = {0, 2, 1};
    const int64_t NH = -(int64_t)H;
    int64_t pd[3] = {N, T, D}, kd[3] = {NH, DH, T}, sd[3] = {NH, T, T}, od3[3] = {NH, T, DH},
            hd[4] = {N, H, T, DH}, od[4] = {N, T, H, DH}, md[2] = {T, T}, yd[3] = {N, T, D};
    graph *g = graph_new();
    int xq = input(g, "xq", 3, pd), xk = input(g, "xk", 3, pd), xv = input(g, "xv", 3, pd);
    int qs = value(g, "q_scaled", 3, pd);
    node2(g, OP_MUL, "q_mul", xq, scalar(g, "c", 0.5f), qs);
    int q = fold_heads(g, "q", qs, 0), k = fold_heads(g, "k", xk, 0);
    int v = fold_heads(g, "v", xv, kind == FOLD_WRONG_PERM);
    int kt = value(g, "kt", 3, kd);
    memcpy(g->nodes[node1(g, OP_TRANSPOSE, "kt", k, kt)].perm, p021, sizeof p021);
    int s = value(g, "scores", 3, sd), p = value(g, "p", 3, sd), o = value(g, "o", 3, od3);
    node2(g, OP_MATMUL, "qk", q, kt, s);
    int mask = -1, sm_in = s;
    if (kind == FOLD_CAUSAL) {
        mask = cst_f32(g, "causal", 2, md, 0.0f);
        float *mv = g->values[mask].data;
        for (int i = 0; i < T; i++)
            for (int j = i + 1; j < T; j++)
                mv[i * T + j] = -1e30f;
        sm_in = value(g, "masked", 3, sd);
        node2(g, OP_ADD, "add_mask", s, mask, sm_in);
    }
    g->nodes[node1(g, OP_SOFTMAX, "softmax", sm_in, p)].axis = -1;
    node2(g, OP_MATMUL, "pv", p, v, o);
    int64_t four = 4, three = 3;
    int u = value(g, "unfold", 4, hd);
    node2(g, OP_RESHAPE, "unfold", o, cst_f32(g, "u_shape", 1, &four, 0.0f), u);
    int ot = transpose(g, "ot", u, p0213, od);
    int y = value(g, "y", 3, yd);
    node2(g, OP_RESHAPE, "merge", ot, cst_f32(g, "y_shape", 1, &three, 0.0f), y);
    mark_output(g, y);

    assert_int_equal(graph_fuse(g), FERRY_OK);
    const graph_node *n = &g->nodes[g->values[y].producer];
    if (kind == FOLD_WRONG_PERM) {
        assert_int_equal(n->op, OP_RESHAPE);
    } else {
        assert_int_equal(n->op, OP_ATTENTION);
        assert_int_equal(n->mode, 0);
        assert_int_equal(n->heads, H);
        assert_int_equal(n->head_dim, DH);
        assert_true(fabsf(n->alpha - 0.5f) < 1e-7f); /* the Mul on q_proj's output */
        assert_int_equal(n->in[0], xq);
        assert_int_equal(n->in[1], xk);
        assert_int_equal(n->in[2], xv);
        assert_int_equal(n->n_in, kind == FOLD_CAUSAL ? 4 : 3);
        if (kind == FOLD_CAUSAL)
            assert_int_equal(n->in[3], mask);
        assert_int_equal(live_nodes(g), 1);
    }
    check_consistent(g);
    graph_free(g);
}

static void test_folded_heads(void **state)
{
    (void)state;
    folded_case(FOLD_PLAIN);
    folded_case(FOLD_CAUSAL);
}

static void test_folded_wrong_perm_unfused(void **state)
{
    (void)state;
    folded_case(FOLD_WRONG_PERM);
}

/* ------------------------------------------------- the exported models */

static int count_op(const graph *g, op_kind op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !g->nodes[i].dead && g->nodes[i].op == op;
    return n;
}

/* Every layer's attention of an exported model (2 layers each) is one
 * node: no Softmax left, and no Transpose but `transposes` (ViT's own
 * around each attention block). */
static void model_case(const char *name, int layers, int transposes, int slices)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.onnx", FERRY_TEST_MODELS, name);
    if (access(path, R_OK) != 0) {
        print_message("skipped: %s not exported\n", path);
        return;
    }
    graph *g = NULL;
    assert_int_equal(onnx_load_file(path, &g), FERRY_OK);
    assert_int_equal(graph_optimize(g), FERRY_OK);
    assert_int_equal(count_op(g, OP_ATTENTION), layers);
    assert_int_equal(count_op(g, OP_SOFTMAX), 0);
    assert_int_equal(count_op(g, OP_TRANSPOSE), transposes);
    assert_int_equal(count_op(g, OP_SPLIT) + count_op(g, OP_SLICE), slices);
    graph_free(g);
}

static void test_exported_models(void **state)
{
    (void)state;
    model_case("bert", 2, 0, 0);
    model_case("gpt", 2, 0, 0);
    model_case("vit", 2, 5, 0); /* the patches', and [N,T,D] <-> [T,N,D] per layer */
    /* Hugging Face's (exported when transformers is installed) */
    model_case("hf-bert-14", 2, 0, 0);
    model_case("hf-distilbert", 2, 0, 0); /* masks by Where(mask == 0, min, s) */
    model_case("hf-gpt2-lm", 2, 0, 0);    /* causal Where, no-op Casts */
    model_case("hf-vit", 2, 1, 0);        /* the patches' */
    /* the heads folded into the batch (BART-style) */
    model_case("hf-clip-vision", 2, 1, 0);     /* the patches' */
    model_case("hf-whisper-encoder", 2, 1, 0); /* the convolutions' [N,D,T] -> [N,T,D] */
    model_case("hf-wav2vec2", 2, 3, 1);        /* the features' and the positional conv's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_mask),
        cmocka_unit_test(test_separate_projections),
        cmocka_unit_test(test_hf_key_transposes),
        cmocka_unit_test(test_folded_heads),
        cmocka_unit_test(test_folded_wrong_perm_unfused),
        cmocka_unit_test(test_split_output_shared),
        cmocka_unit_test(test_wrong_perm_unfused),
        cmocka_unit_test(test_scores_read_unfused),
        cmocka_unit_test(test_vector_scale_unfused),
        cmocka_unit_test(test_switch_off),
        cmocka_unit_test(test_time_major),
        cmocka_unit_test(test_time_major_vector_div_unfused),
        cmocka_unit_test(test_where_causal_mask),
        cmocka_unit_test(test_where_padding_mask),
        cmocka_unit_test(test_where_small_fill_unfused),
        cmocka_unit_test(test_exported_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
