/*
 * fuse_conv.c - step 4 of graph_fuse (fuse.c): the epilogues of
 * convolutional networks, so that a ResNet block's
 *
 *     Conv -> BatchNormalization -> Add(identity) -> Relu
 *
 * runs as one oneDNN convolution with a sum and an eltwise post-op, and a
 * tabular MLP's Gemm -> BatchNormalization as one Gemm:
 *
 *   a. BatchNormalization after a Conv or a Gemm (alpha = beta = 1) is
 *      folded into its weights and bias: W' = W * s, b' = (b - mean) * s + B
 *      with s = scale / sqrt(var + eps), per output channel.
 *   b. x * Sigmoid(x) after a Conv (EfficientNet's SiLU) -> act SILU.
 *   c. Add(conv, r) with r of the output's shape -> the residual input 3,
 *      added before the activation.
 *   d. Relu, LeakyRelu, Clip (ReLU6), Sigmoid, HardSigmoid, HardSwish, or
 *      the GELU the earlier steps made -> the Conv's act.
 *
 * Folding writes new constants (a weight may be shared) and only for f32
 * data; every intermediate swallowed must have one consumer and not be a
 * graph output, as in fuse.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "graph/graph.h"
#include "util/error.h"

static const float *f32_const(const graph *g, int v, int64_t count)
{
    if (v < 0)
        return NULL;
    const graph_value *c = &g->values[v];
    if (!c->is_const || !c->data || c->dtype != FERRY_F32 || graph_value_numel(c, 1) != count)
        return NULL;
    return c->data;
}

/* Moves node ni's output to the output of the node it swallowed (di),
 * which dies. */
static void take_output(graph *g, int ni, int di)
{
    int old = g->nodes[ni].out[0], out = g->nodes[di].out[0];
    fuse_kill_node(g, di);
    if (g->values[old].producer == ni)
        g->values[old].producer = -1;
    g->nodes[ni].out[0] = out;
    g->values[out].producer = ni;
}

/* a. BatchNormalization after Conv or Gemm. Returns -1 on allocation
 * failure, 1 when folded. */
static int fold_bn(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    int y = n->out[0];
    int bi = fuse_sole_consumer(g, y);
    if (bi < 0 || g->nodes[bi].op != OP_BATCH_NORM || g->nodes[bi].in[0] != y)
        return 0;
    const graph_node *bn = &g->nodes[bi];
    const graph_value *wv = &g->values[n->in[1]];
    int64_t m; /* output channels */
    if (n->op == OP_CONV) {
        m = wv->dims[0];
    } else {
        /* BatchNormalization's channels are dim 1: the Gemm's columns only
         * when its output is [N, M] (a MatMul of [N, T, K] made a Gemm at
         * load normalizes over T), and C must be a row of M, not a column */
        const graph_value *cv = n->n_in > 2 && n->in[2] >= 0 ? &g->values[n->in[2]] : NULL;
        if (n->alpha != 1.0f || n->beta != 1.0f || wv->ndim != 2 || n->act != ACT_NONE ||
            g->values[y].ndim != 2 || (cv && cv->ndim == 2 && cv->dims[0] != 1))
            return 0;
        m = n->trans_b ? wv->dims[0] : wv->dims[1];
    }
    int64_t wn = graph_value_numel(wv, 1);
    const float *w = f32_const(g, n->in[1], wn);
    const float *sc = f32_const(g, bn->in[1], m), *bb = f32_const(g, bn->in[2], m),
                *mean = f32_const(g, bn->in[3], m), *var = f32_const(g, bn->in[4], m);
    int has_b = n->n_in > 2 && n->in[2] >= 0;
    const float *b = has_b ? f32_const(g, n->in[2], m) : NULL;
    if (!w || !sc || !bb || !mean || !var || (has_b && !b) || n->act != ACT_NONE)
        return 0;
    float *nw = malloc(sizeof(float) * (size_t)wn), *nb = malloc(sizeof(float) * (size_t)m);
    if (!nw || !nb) {
        free(nw);
        free(nb);
        return -1;
    }
    for (int64_t j = 0; j < m; j++) {
        double s = sc[j] / sqrt((double)var[j] + bn->epsilon);
        nb[j] = (float)(((has_b ? b[j] : 0.0) - mean[j]) * s + bb[j]);
        if (n->op == OP_CONV) {
            int64_t per = wn / m;
            for (int64_t i = 0; i < per; i++)
                nw[j * per + i] = (float)(w[j * per + i] * s);
        } else if (n->trans_b) { /* B [M, K] */
            int64_t k = wv->dims[1];
            for (int64_t i = 0; i < k; i++)
                nw[j * k + i] = (float)(w[j * k + i] * s);
        } else { /* B [K, M] */
            int64_t k = wv->dims[0];
            for (int64_t i = 0; i < k; i++)
                nw[i * m + j] = (float)(w[i * m + j] * s);
        }
    }
    int64_t wdims[FERRY_MAX_DIMS];
    memcpy(wdims, wv->dims, sizeof wdims);
    int wnd = wv->ndim;
    char base[256];
    snprintf(base, sizeof base, "%s", g->nodes[ni].name);
    int vw = fuse_new_const(g, base, ".bn_w", wnd, wdims, nw, wn);
    int vb = vw < 0 ? -1 : fuse_new_const(g, base, ".bn_b", 1, &m, nb, m);
    free(nw);
    free(nb);
    if (vw < 0 || vb < 0)
        return -1;
    n = &g->nodes[ni];
    int in[4] = {n->in[0], vw, vb, -1};
    fuse_set_inputs(g, ni, 3, in);
    take_output(g, ni, bi);
    return 1;
}

/* b. Mul(y, Sigmoid(y)) with y the Conv's output: SiLU. */
static int fuse_silu(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    int y = n->out[0];
    const graph_value *yv = &g->values[y];
    if (n->act != ACT_NONE || n->n_in > 3 || yv->n_consumers != 2 || yv->is_output)
        return 0;
    int sig = -1, mul = -1;
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *c = &g->nodes[k];
        if (c->dead)
            continue;
        for (int i = 0; i < c->n_in; i++) {
            if (c->in[i] != y)
                continue;
            if (c->op == OP_SIGMOID)
                sig = k;
            else if (c->op == OP_MUL)
                mul = k;
        }
    }
    if (sig < 0 || mul < 0)
        return 0;
    int s_out = g->nodes[sig].out[0];
    if (fuse_other_input(&g->nodes[mul], y) != s_out || !fuse_private_value(g, s_out))
        return 0;
    fuse_kill_node(g, sig);
    take_output(g, ni, mul);
    g->nodes[ni].act = ACT_SILU;
    return 1;
}

/* c. Add(y, r) -> residual input 3. */
static int fuse_residual(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    int y = n->out[0];
    int ai = fuse_sole_consumer(g, y);
    if (ai < 0 || g->nodes[ai].op != OP_ADD || n->op != OP_CONV || n->act != ACT_NONE ||
        n->n_in > 3)
        return 0;
    int r = fuse_other_input(&g->nodes[ai], y);
    if (r < 0 || r == y)
        return 0;
    /* r must be written before this node in the node order (in a ResNet
     * block the downsample branch comes after the main one: that branch's
     * Conv takes the Add instead) */
    int rp = g->values[r].producer;
    if (rp >= ni)
        return 0;
    const graph_value *rv = &g->values[r], *yv = &g->values[y];
    if (rv->ndim != yv->ndim || rv->dtype != yv->dtype ||
        memcmp(rv->dims, yv->dims, sizeof(int64_t) * (size_t)yv->ndim))
        return 0;
    int in[4] = {n->in[0], n->in[1], n->n_in > 2 ? n->in[2] : -1, r};
    fuse_set_inputs(g, ni, 4, in);
    take_output(g, ni, ai);
    return 1;
}

/* d. the activation after the Conv (and its residual). */
static int fuse_act(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    if (n->act != ACT_NONE)
        return 0;
    int ai = fuse_sole_consumer(g, n->out[0]);
    if (ai < 0 || g->nodes[ai].n_out != 1 || g->nodes[ai].in[0] != n->out[0])
        return 0;
    const graph_node *a = &g->nodes[ai];
    act_kind act = ACT_NONE;
    float aa = 0.0f, ab = 0.0f;
    switch (a->op) {
    case OP_RELU: act = ACT_RELU; break;
    case OP_LEAKY_RELU: act = ACT_LEAKY_RELU, aa = a->alpha; break;
    case OP_SIGMOID: act = ACT_SIGMOID; break;
    case OP_HARD_SWISH: act = ACT_HARD_SWISH; break;
    case OP_HARD_SIGMOID: act = ACT_HARD_SIGMOID, aa = a->alpha, ab = a->act_beta; break;
    case OP_GELU: act = a->approximate ? ACT_GELU_TANH : ACT_GELU; break;
    case OP_CLIP:
        if (a->n_in > 1) /* bounds not resolved into the node */
            return 0;
        act = ACT_CLIP, aa = a->alpha, ab = a->act_beta;
        break;
    default: return 0;
    }
    take_output(g, ni, ai);
    n = &g->nodes[ni];
    n->act = act;
    n->act_alpha = aa;
    n->act_beta = ab;
    return 1;
}

ferry_status graph_fuse_conv(graph *g)
{
    for (int ni = 0; ni < g->n_nodes; ni++) {
        graph_node *n = &g->nodes[ni];
        if (n->dead || n->n_out != 1 || n->out[0] < 0)
            continue;
        if (n->op == OP_CONV || (n->op == OP_GEMM && n->n_in >= 2)) {
            if (fold_bn(g, ni) < 0)
                return ferry_fail(FERRY_ENOMEM,
                                  "out of memory folding a BatchNormalization into '%s'",
                                  g->nodes[ni].name);
        }
        if (g->nodes[ni].op != OP_CONV)
            continue;
        if (!fuse_silu(g, ni)) {
            fuse_residual(g, ni);
            fuse_act(g, ni);
        }
    }
    return FERRY_OK;
}
