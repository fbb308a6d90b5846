/*
 * fuse_attention.c - multi-head attention as one node (OP_ATTENTION).
 *
 * What PyTorch exports for softmax(q k^T * scale + mask) v over heads is
 * eleven nodes, and after fuse.c's softmax fusion still nine:
 *
 *   X [B,T,3D] -> Split(last axis) -> Q, K, V [B,T,D]
 *   Q -> Reshape [B,T,H,d] -> Transpose(0,2,1,3)             -> Qh [B,H,T,d]
 *   K -> Reshape [B,T,H,d] -> Transpose(0,2,3,1)             -> Kt [B,H,d,T]
 *        (or Transpose(0,2,1,3) then Transpose(0,1,3,2), as HF writes k.transpose(-1,-2))
 *   V -> Reshape [B,T,H,d] -> Transpose(0,2,1,3)             -> Vh [B,H,T,d]
 *   MatMul(Qh, Kt) -> Softmax (mode 1: * scale + mask, or plain)
 *   -> MatMul(., Vh) -> Transpose(0,2,1,3) -> Reshape [B,T,D]
 *
 * Each Transpose is a copy of a whole activation and the scores make a round
 * trip through memory twice: on an H100 in fp16 those nodes were ~40% of
 * BERT-base's time at batch 256 (issue 15), on the CPU ~17% at batch 8
 * (issue 13). The fused node reads Q, K and V in place, as column ranges of
 * their sources (the Split's input when they come from one, so that the
 * Split goes too), keeps the scores of one (batch, head) in cache and writes
 * [B,T,D] directly.
 *
 * It matches only what it can prove to be that computation: the exact
 * permutations above, Reshapes that split the last dim into [H, d] and merge
 * it back, MatMuls of rank 4 without broadcasting, a Softmax over the last
 * axis, the same H and d for Q, K and V, every intermediate private (one
 * reader, not a graph output), f32 graph tensors. HF-style separate Q, K, V
 * projections are the same pattern with three sources at offset 0; a
 * causal or padding mask is whatever fuse_softmax took as its additive mask
 * (a constant [T,T] from gen.py's gpt family, BERT's [B,1,1,T]). Anything
 * else stays as it was. FERRY_NO_FUSE_ATTENTION=1 skips the pass (A/B
 * measurements with one binary).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"

/* Largest head_dim fused: the CUDA kernels hold a row of d per thread
 * group (kernels_attention.cu), and the graph layer cannot ask a backend. */
#define ATTN_MAX_HEAD_DIM 256

#define MAX_DEAD 16

typedef struct attn_match {
    int dead[MAX_DEAD];
    int nd;
    int src[3];      /* Q, K, V sources [B, T, C] */
    int64_t off[3];  /* column of head 0 in each source */
    int64_t heads, head_dim;
} attn_match;

static int same_dims(const graph_value *v, int n, const int64_t *d)
{
    if (v->ndim != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (v->dims[i] != d[i])
            return 0;
    return 1;
}

static int live_op(const graph *g, int ni, op_kind op)
{
    return ni >= 0 && !g->nodes[ni].dead && g->nodes[ni].op == op && g->nodes[ni].n_out == 1;
}

/* The private value v's producer when it is a Transpose with perm p. */
static int transpose_of(const graph *g, int v, const int64_t *p)
{
    int ni = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !live_op(g, ni, OP_TRANSPOSE) || g->values[v].ndim != 4)
        return -1;
    for (int i = 0; i < 4; i++)
        if (g->nodes[ni].perm[i] != p[i])
            return -1;
    return ni;
}

/* v private, written by a Reshape of src [B,T,H*d] into [B,T,H,d]: the
 * heads of one projection. Returns src or -1. */
static int heads_source(const graph *g, int v, attn_match *m)
{
    int r = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !live_op(g, r, OP_RESHAPE))
        return -1;
    int s = g->nodes[r].in[0];
    const graph_value *sv = &g->values[s], *hv = &g->values[v];
    if (sv->ndim != 3 || hv->ndim != 4 || sv->dtype != FERRY_F32 || hv->dims[0] != sv->dims[0] ||
        hv->dims[1] != sv->dims[1] || hv->dims[2] <= 0 || hv->dims[3] <= 0 ||
        hv->dims[2] * hv->dims[3] != sv->dims[2])
        return -1;
    if (m->heads == 0) {
        m->heads = hv->dims[2];
        m->head_dim = hv->dims[3];
    } else if (m->heads != hv->dims[2] || m->head_dim != hv->dims[3]) {
        return -1;
    }
    m->dead[m->nd++] = r;
    return s;
}

/* Where the columns of s live: a Split of X along its last axis gives X
 * and the column s starts at (the Split's earlier outputs' widths); any
 * other value is its own source at column 0. */
static void locate_columns(const graph *g, int s, int *src, int64_t *off)
{
    *src = s;
    *off = 0;
    int sp = fuse_producer_of(g, s);
    if (sp < 0 || g->nodes[sp].op != OP_SPLIT)
        return;
    const graph_node *n = &g->nodes[sp];
    const graph_value *x = &g->values[n->in[0]];
    if (x->ndim != 3 || n->axis != 2 || x->dtype != FERRY_F32)
        return;
    int64_t col = 0;
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] == s) {
            *src = n->in[0];
            *off = col;
            return;
        }
        col += n->out[i] >= 0 ? g->values[n->out[i]].dims[2] : 0;
    }
}

/* One projection's heads: Transpose(perm) of heads_source, recorded as
 * input k of the match. */
static int match_projection(const graph *g, int v, const int64_t *perm, int k, attn_match *m)
{
    int t = transpose_of(g, v, perm);
    if (t < 0)
        return 0;
    int s = heads_source(g, g->nodes[t].in[0], m);
    if (s < 0)
        return 0;
    m->dead[m->nd++] = t;
    locate_columns(g, s, &m->src[k], &m->off[k]);
    return 1;
}

/* K^T [B,H,d,T]: Transpose(0,2,3,1) of K's heads, or Transpose(0,1,3,2) of
 * Transpose(0,2,1,3) of them. */
static int match_key(const graph *g, int kt, attn_match *m)
{
    static const int64_t direct[4] = {0, 2, 3, 1}, swap[4] = {0, 1, 3, 2},
                         heads[4] = {0, 2, 1, 3};
    if (match_projection(g, kt, direct, 1, m))
        return 1;
    int t = transpose_of(g, kt, swap);
    if (t < 0 || !match_projection(g, g->nodes[t].in[0], heads, 1, m))
        return 0;
    m->dead[m->nd++] = t;
    return 1;
}

/* A rank-4 MatMul of A [b,h,i,k] and B [b,h,k,j] with no broadcasting. */
static int plain_matmul(const graph *g, int ni)
{
    if (!live_op(g, ni, OP_MATMUL) || g->nodes[ni].n_in != 2)
        return 0;
    const graph_value *a = &g->values[g->nodes[ni].in[0]], *b = &g->values[g->nodes[ni].in[1]];
    return a->ndim == 4 && b->ndim == 4 && a->dims[0] == b->dims[0] && a->dims[1] == b->dims[1] &&
           a->dims[3] == b->dims[2] && a->dtype == FERRY_F32 && b->dtype == FERRY_F32;
}

/* The tail after the softmax: MatMul(P, Vh) -> Transpose(0,2,1,3) ->
 * Reshape [B,T,H*d]. Returns the Reshape (the node rewritten) or -1. */
static int match_tail(const graph *g, int si, attn_match *m)
{
    static const int64_t heads[4] = {0, 2, 1, 3};
    int p = g->nodes[si].out[0];
    int mm = fuse_sole_consumer(g, p);
    if (!plain_matmul(g, mm) || g->nodes[mm].in[0] != p)
        return -1;
    if (!match_projection(g, g->nodes[mm].in[1], heads, 2, m))
        return -1;
    int o = g->nodes[mm].out[0];
    int t = fuse_sole_consumer(g, o);
    if (!live_op(g, t, OP_TRANSPOSE) || transpose_of(g, g->nodes[t].out[0], heads) != t)
        return -1;
    int ot = g->nodes[t].out[0];
    int r = fuse_sole_consumer(g, ot);
    if (!live_op(g, r, OP_RESHAPE) || g->nodes[r].in[0] != ot)
        return -1;
    const graph_value *ov = &g->values[ot];
    int64_t yd[3] = {ov->dims[0], ov->dims[1], m->heads * m->head_dim};
    if (!same_dims(&g->values[g->nodes[r].out[0]], 3, yd))
        return -1;
    m->dead[m->nd++] = mm;
    m->dead[m->nd++] = t;
    return r;
}

/* Anchored on a Softmax over the last axis of MatMul(Qh, Kt). */
static int fuse_one(graph *g, int si)
{
    static const int64_t heads[4] = {0, 2, 1, 3};
    const graph_node *sn = &g->nodes[si];
    int s = sn->in[0];
    const graph_value *sv = &g->values[s];
    if (sv->ndim != 4 || sv->dtype != FERRY_F32 || (sn->axis != 3 && sn->axis != -1) ||
        sn->n_out != 1 ||
        (sn->mode != 0 && sn->mode != 1) || (sn->mode == 0 && sn->n_in != 1))
        return 0;
    int mm = fuse_producer_of(g, s);
    if (!fuse_private_value(g, s) || !plain_matmul(g, mm))
        return 0;
    attn_match m;
    memset(&m, 0, sizeof m);
    m.dead[m.nd++] = mm;
    m.dead[m.nd++] = si;
    if (!match_projection(g, g->nodes[mm].in[0], heads, 0, &m) ||
        !match_key(g, g->nodes[mm].in[1], &m))
        return 0;
    int r = match_tail(g, si, &m);
    if (r < 0 || m.head_dim > ATTN_MAX_HEAD_DIM)
        return 0;
    int mask = sn->mode == 1 && sn->n_in > 1 ? sn->in[1] : -1;
    if (mask >= 0 && g->values[mask].dtype != FERRY_F32)
        return 0;
    float scale = sn->mode == 1 ? sn->alpha : 1.0f;

    for (int i = 0; i < m.nd; i++)
        fuse_kill_node(g, m.dead[i]);
    int in[4] = {m.src[0], m.src[1], m.src[2], mask};
    fuse_set_inputs(g, r, mask >= 0 ? 4 : 3, in);
    graph_node *n = &g->nodes[r];
    n->op = OP_ATTENTION;
    n->alpha = scale;
    n->heads = m.heads;
    n->head_dim = m.head_dim;
    for (int k = 0; k < 3; k++)
        n->starts[k] = m.off[k];
    return 1;
}

ferry_status graph_fuse_attention(graph *g)
{
    const char *off = getenv("FERRY_NO_FUSE_ATTENTION");
    if (off && *off && strcmp(off, "0"))
        return FERRY_OK;
    int fused = 0;
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (!g->nodes[ni].dead && g->nodes[ni].op == OP_SOFTMAX)
            fused += fuse_one(g, ni);
    if (fused)
        graph_remove_unread(g); /* the Splits whose parts all went to fused nodes */
    return FERRY_OK;
}

/* ------------------------------------------------------------ shape rule */

/* The node fuse_one makes, checked again after fusion like any other:
 * sources [B, T, C] with the heads' columns inside C, K and V of one
 * length; out [B, Tq, heads*head_dim]. */
ferry_status infer_attention(graph *g, graph_node *n)
{
    const graph_value *q = &g->values[n->in[0]];
    int64_t width = n->heads * n->head_dim;
    if (n->heads <= 0 || n->head_dim <= 0)
        return node_fail(n, FERRY_EINVAL, "heads and head_dim must be positive");
    for (int k = 0; k < 3; k++) {
        const graph_value *s = &g->values[n->in[k]];
        if (s->ndim != 3 || !is_float_dtype(s->dtype) || s->dims[0] != q->dims[0])
            return node_failf(n, FERRY_ESHAPE, "source '%s' is not [B, T, C] of the batch's B",
                              s->name);
        if (n->starts[k] < 0 || n->starts[k] + width > s->dims[2])
            return node_failf(n, FERRY_ESHAPE, "columns %lld..%lld are outside source '%s'",
                              (long long)n->starts[k], (long long)(n->starts[k] + width),
                              s->name);
    }
    if (g->values[n->in[1]].dims[1] != g->values[n->in[2]].dims[1])
        return node_fail(n, FERRY_ESHAPE, "keys and values differ in length");
    int64_t yd[3] = {q->dims[0], q->dims[1], width};
    set_out(g, n->out[0], q->dtype, 3, yd);
    return FERRY_OK;
}
