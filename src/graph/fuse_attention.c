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
 * torch.nn.MultiheadAttention (torchvision's ViT) writes the same
 * computation time-major, heads folded into the batch (mode 1):
 *
 *   X [T,B,3D] -> Slice (or Split) of the last axis -> Q, K, V [T,B,D]
 *   Q -> Reshape [T,B*H,d] -> Transpose(1,0,2) [-> Div or Mul by a scalar]
 *   K -> Reshape [T,B*H,d] -> Transpose(1,2,0);  V -> ... Transpose(1,0,2)
 *   MatMul -> Softmax -> MatMul -> Transpose(1,0,2) -> Reshape [T*B, D]
 *
 * Hugging Face's BART-style attention (CLIP, Whisper, Wav2Vec2) is the
 * batch-major computation with the heads folded into the batch for its two
 * products (bmm), a layout of its own (folded):
 *
 *   Q -> [Mul by a scalar] -> Reshape [B,T,H,d] -> Transpose(0,2,1,3)
 *     -> Reshape [B*H,T,d];  V the same;  K the same, then Transpose(0,2,1)
 *   MatMul -> Softmax -> MatMul [B*H,T,d] -> Reshape [B,H,T,d]
 *   -> Transpose(0,2,1,3) -> Reshape [B,T,D]
 *
 * Its scores [B*H,T,T] are [B,H,T,T] in memory, so a mask without batch
 * or head dims ([T,T], a causal mask) broadcasts the same in both; others
 * leave it unfused.
 *
 * It matches only what it can prove to be that computation: the exact
 * permutations above, Reshapes that split the last dim into [H, d] and merge
 * it back, MatMuls of rank 4 (3) without broadcasting, a Softmax over the
 * last axis, the same H and d for Q, K and V, every intermediate private
 * (one reader, not a graph output), f32 graph tensors. HF-style separate
 * Q, K, V projections are the same pattern with three sources at offset 0;
 * a causal or padding mask is whatever fuse_softmax took as its additive
 * mask (a constant [T,T] from gen.py's gpt family, BERT's [B,1,1,T]); a
 * scalar applied to Q before its product joins the scale. Anything else
 * stays as it was. FERRY_NO_FUSE_ATTENTION=1 skips the pass (A/B
 * measurements with one binary).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"

/* Largest head_dim fused: the CUDA kernels keep a head's row per lane group
 * (kernels_attention.cu), and the graph layer cannot ask a backend. */
#define ATTN_MAX_HEAD_DIM 256

#define MAX_DEAD 24

/* The three layouts: the ranks and permutations each exporter writes. */
typedef struct layout {
    int time_major; /* OP_ATTENTION's mode */
    int rank;       /* of the heads */
    int srank;      /* of the scores and the products: rank, or 3 when folded */
    int folded;     /* heads folded into the batch for the products (srank 3) */
    int64_t q[4], k[4], k_swap[4], v[4], o[4];
} layout;

static const layout BATCH_MAJOR = {
    0, 4, 4, 0, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 1, 3}};
static const layout TIME_MAJOR = {1, 3, 3, 0, {1, 0, 2}, {1, 2, 0}, {0}, {1, 0, 2}, {1, 0, 2}};
/* k_swap: the Transpose(0,2,1) of K's folded heads [B*H,T,d] */
static const layout FOLDED = {0, 4, 3, 1, {0, 2, 1, 3}, {0}, {0, 2, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}};

typedef struct attn_match {
    const layout *lay;
    int dead[MAX_DEAD];
    int nd;
    int src[3];     /* Q, K, V sources: [B, T, C], or [T, B, C] time-major */
    int64_t off[3]; /* column of head 0 in each source */
    int64_t heads, head_dim;
    double scale; /* a scalar Q was multiplied by */
} attn_match;

static int live_op(const graph *g, int ni, op_kind op)
{
    return ni >= 0 && !g->nodes[ni].dead && g->nodes[ni].op == op && g->nodes[ni].n_out == 1;
}

/* The private value v's producer when it is a Transpose with perm p. */
static int transpose_of(const graph *g, int v, const int64_t *p, int rank)
{
    int ni = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !live_op(g, ni, OP_TRANSPOSE) || g->values[v].ndim != rank)
        return -1;
    for (int i = 0; i < rank; i++)
        if (g->nodes[ni].perm[i] != p[i])
            return -1;
    return ni;
}

/* The heads of one projection [B,T,H*d] as [B,T,H,d], or of [T,B,H*d] as
 * [T,B*H,d] (time-major, B*H symbolic when B is). Sets H and d. */
static int split_heads(const layout *lay, const graph_value *sv, const graph_value *hv, int64_t *H,
                       int64_t *d)
{
    if (sv->ndim != 3 || hv->ndim != lay->rank || sv->dims[0] != hv->dims[0])
        return 0;
    if (!lay->time_major) {
        *H = hv->dims[2];
        *d = hv->dims[3];
        return hv->dims[1] == sv->dims[1] && *H > 0 && *d > 0 && *H * *d == sv->dims[2];
    }
    int64_t b = sv->dims[1], bh = hv->dims[1];
    *d = hv->dims[2];
    if (b == 0 || (b < 0) != (bh < 0) || bh % b != 0)
        return 0;
    *H = bh / b;
    return *H > 0 && *d > 0 && *H * *d == sv->dims[2];
}

/* v private, written by a Reshape of a projection into heads. Returns the
 * projection or -1. */
static int heads_source(const graph *g, int v, attn_match *m)
{
    int r = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !live_op(g, r, OP_RESHAPE))
        return -1;
    int s = g->nodes[r].in[0];
    const graph_value *sv = &g->values[s];
    int64_t H, d;
    if (sv->dtype != FERRY_F32 || !split_heads(m->lay, sv, &g->values[v], &H, &d))
        return -1;
    if (m->heads == 0) {
        m->heads = H;
        m->head_dim = d;
    } else if (m->heads != H || m->head_dim != d) {
        return -1;
    }
    m->dead[m->nd++] = r;
    return s;
}

/* Where the columns of s live: a Split of X along its last axis, or a
 * Slice of X's last axis with step 1, gives X and the column s starts at;
 * any other value is its own source at column 0. */
static void locate_columns(const graph *g, int s, int *src, int64_t *off)
{
    *src = s;
    *off = 0;
    int p = fuse_producer_of(g, s);
    if (p < 0)
        return;
    const graph_node *n = &g->nodes[p];
    const graph_value *x = &g->values[n->in[0]], *sv = &g->values[s];
    if (x->ndim != 3 || x->dtype != FERRY_F32 || sv->dims[0] != x->dims[0] ||
        sv->dims[1] != x->dims[1])
        return;
    if (n->op == OP_SLICE && n->starts[0] == 0 && n->starts[1] == 0 && n->steps[0] == 1 &&
        n->steps[1] == 1 && n->steps[2] == 1) {
        *src = n->in[0];
        *off = n->starts[2];
        return;
    }
    if (n->op != OP_SPLIT || n->axis != 2)
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

/* Folded heads: v [B*H, T, d] private, a Reshape of u [B, H, T, d].
 * Returns u or -1. */
static int unfold_heads(const graph *g, int v, attn_match *m)
{
    int r = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !live_op(g, r, OP_RESHAPE))
        return -1;
    int u = g->nodes[r].in[0];
    const graph_value *uv = &g->values[u], *vv = &g->values[v];
    if (uv->ndim != 4 || vv->ndim != 3 || uv->dims[1] <= 0 ||
        vv->dims[0] != uv->dims[0] * uv->dims[1] || vv->dims[1] != uv->dims[2] ||
        vv->dims[2] != uv->dims[3])
        return -1;
    m->dead[m->nd++] = r;
    return u;
}

/* One projection's heads: Transpose(perm) of heads_source (folded: then
 * merged into the batch), recorded as input k of the match. */
static int match_projection(const graph *g, int v, const int64_t *perm, int k, attn_match *m)
{
    if (m->lay->folded && (v = unfold_heads(g, v, m)) < 0)
        return 0;
    int t = transpose_of(g, v, perm, m->lay->rank);
    if (t < 0)
        return 0;
    int s = heads_source(g, g->nodes[t].in[0], m);
    if (s < 0)
        return 0;
    m->dead[m->nd++] = t;
    locate_columns(g, s, &m->src[k], &m->off[k]);
    return 1;
}

/* v private, written by a Mul or Div by a scalar constant: its other
 * input, the factor in *c; else -1. */
static int scaled_by(const graph *g, int v, double *c)
{
    int p = fuse_producer_of(g, v);
    if (!fuse_private_value(g, v) || !(live_op(g, p, OP_MUL) || live_op(g, p, OP_DIV)) ||
        g->nodes[p].n_in != 2)
        return -1;
    const graph_node *n = &g->nodes[p];
    int k = n->op == OP_MUL && fuse_const_scalar(g, n->in[0], c) ? 0 : 1;
    if (!fuse_const_scalar(g, n->in[k], c) || (n->op == OP_DIV && *c == 0.0))
        return -1;
    const graph_value *x = &g->values[n->in[1 - k]], *y = &g->values[v];
    if (x->ndim != y->ndim || memcmp(x->dims, y->dims, sizeof x->dims))
        return -1;
    if (n->op == OP_DIV)
        *c = 1.0 / *c;
    return n->in[1 - k];
}

/* Q's heads, maybe multiplied or divided by a scalar constant first (the
 * 1/sqrt(d) that MultiheadAttention applies to Q), or Q's projection
 * scaled before it is split into heads (Hugging Face's q_proj(x) *
 * scale). */
static int match_query(const graph *g, int v, attn_match *m)
{
    if (m->lay->folded) {
        double c;
        if (!match_projection(g, v, m->lay->q, 0, m))
            return 0;
        int x = m->off[0] == 0 ? scaled_by(g, m->src[0], &c) : -1;
        if (x >= 0) {
            m->dead[m->nd++] = fuse_producer_of(g, m->src[0]);
            m->scale = c;
            locate_columns(g, x, &m->src[0], &m->off[0]);
        }
        return 1;
    }
    int p = fuse_producer_of(g, v);
    double c;
    if (fuse_private_value(g, v) && (live_op(g, p, OP_MUL) || live_op(g, p, OP_DIV)) &&
        g->nodes[p].n_in == 2) {
        const graph_node *n = &g->nodes[p];
        int k = n->op == OP_MUL && fuse_const_scalar(g, n->in[0], &c) ? 0 : 1;
        if (fuse_const_scalar(g, n->in[k], &c) && (n->op == OP_MUL || c != 0.0) &&
            match_projection(g, n->in[1 - k], m->lay->q, 0, m)) {
            m->scale = n->op == OP_MUL ? c : 1.0 / c;
            m->dead[m->nd++] = p;
            return 1;
        }
    }
    return match_projection(g, v, m->lay->q, 0, m);
}

/* K^T: Transpose(k perm) of K's heads, or (batch-major) Transpose(0,1,3,2)
 * of Transpose(0,2,1,3) of them. */
static int match_key(const graph *g, int kt, attn_match *m)
{
    if (match_projection(g, kt, m->lay->k, 1, m))
        return 1;
    if (m->lay->time_major)
        return 0;
    int t = transpose_of(g, kt, m->lay->k_swap, m->lay->srank);
    if (t < 0 || !match_projection(g, g->nodes[t].in[0], m->lay->q, 1, m))
        return 0;
    m->dead[m->nd++] = t;
    return 1;
}

/* A MatMul of two operands of the layout's rank, batch dims equal (no
 * broadcasting), inner dims matching. */
static int plain_matmul(const graph *g, int ni, int rank)
{
    if (!live_op(g, ni, OP_MATMUL) || g->nodes[ni].n_in != 2)
        return 0;
    const graph_value *a = &g->values[g->nodes[ni].in[0]], *b = &g->values[g->nodes[ni].in[1]];
    if (a->ndim != rank || b->ndim != rank || a->dtype != FERRY_F32 || b->dtype != FERRY_F32 ||
        a->dims[rank - 1] != b->dims[rank - 2])
        return 0;
    for (int i = 0; i < rank - 2; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

/* The output the merged heads must have: [B, Tq, H*d] batch-major, [Tq*B,
 * H*d] time-major (B symbolic or not, Tq not). */
static int merged_shape(const attn_match *m, const graph_value *ot, const graph_value *y)
{
    int64_t width = m->heads * m->head_dim;
    if (!m->lay->time_major)
        return y->ndim == 3 && y->dims[0] == ot->dims[0] && y->dims[1] == ot->dims[1] &&
               y->dims[2] == width;
    int64_t t = ot->dims[0], b = ot->dims[1] / m->heads;
    return t > 0 && y->ndim == 2 && y->dims[0] == t * b && y->dims[1] == width;
}

/* The tail after the softmax: MatMul(P, V's heads) -> Transpose(o perm) ->
 * Reshape (the heads merged). Returns the Reshape (the node rewritten). */
static int match_tail(const graph *g, int si, attn_match *m)
{
    int p = g->nodes[si].out[0];
    int mm = fuse_sole_consumer(g, p);
    if (!plain_matmul(g, mm, m->lay->srank) || g->nodes[mm].in[0] != p)
        return -1;
    if (!match_projection(g, g->nodes[mm].in[1], m->lay->v, 2, m))
        return -1;
    int heads = g->nodes[mm].out[0]; /* [B,H,T,d]: folded, after a Reshape */
    if (m->lay->folded) {
        int r1 = fuse_sole_consumer(g, heads);
        if (!live_op(g, r1, OP_RESHAPE) || g->nodes[r1].in[0] != heads)
            return -1;
        const graph_value *o3 = &g->values[heads], *u = &g->values[g->nodes[r1].out[0]];
        if (u->ndim != 4 || u->dims[1] != m->heads || u->dims[0] * u->dims[1] != o3->dims[0] ||
            u->dims[2] != o3->dims[1] || u->dims[3] != o3->dims[2])
            return -1;
        m->dead[m->nd++] = r1;
        heads = g->nodes[r1].out[0];
    }
    int t = fuse_sole_consumer(g, heads);
    if (!live_op(g, t, OP_TRANSPOSE) || g->nodes[t].in[0] != heads ||
        transpose_of(g, g->nodes[t].out[0], m->lay->o, m->lay->rank) != t)
        return -1;
    int ot = g->nodes[t].out[0];
    int r = fuse_sole_consumer(g, ot);
    if (!live_op(g, r, OP_RESHAPE) || g->nodes[r].in[0] != ot ||
        !merged_shape(m, &g->values[ot], &g->values[g->nodes[r].out[0]]))
        return -1;
    m->dead[m->nd++] = mm;
    m->dead[m->nd++] = t;
    return r;
}

/* The whole chain around softmax si in layout lay; the rewritten node's
 * index, or -1 (nothing changed). */
static int match_chain(const graph *g, int si, const layout *lay, attn_match *m)
{
    memset(m, 0, sizeof *m);
    m->lay = lay;
    m->scale = 1.0;
    int s = g->nodes[si].in[0];
    int mm = fuse_producer_of(g, s);
    if (g->values[s].ndim != lay->srank || !fuse_private_value(g, s) ||
        !plain_matmul(g, mm, lay->srank))
        return -1;
    m->dead[m->nd++] = mm;
    m->dead[m->nd++] = si;
    if (!match_query(g, g->nodes[mm].in[0], m) || !match_key(g, g->nodes[mm].in[1], m))
        return -1;
    int r = match_tail(g, si, m);
    return r >= 0 && m->head_dim <= ATTN_MAX_HEAD_DIM ? r : -1;
}

/* A mask with no dims but the last two (or only ones before them): it
 * broadcasts against [B*H, Tq, Tk] as against [B, H, Tq, Tk]. */
static int batch_free(const graph_value *mask)
{
    for (int i = 0; i + 2 < mask->ndim; i++)
        if (mask->dims[i] != 1)
            return 0;
    return 1;
}

/* Anchored on a Softmax over the last axis of MatMul(Q's heads, K^T). */
static int fuse_one(graph *g, int si)
{
    const graph_node *sn = &g->nodes[si];
    const graph_value *sv = &g->values[sn->in[0]];
    int last = sv->ndim - 1;
    if (sv->dtype != FERRY_F32 || (sn->axis != last && sn->axis != -1) || sn->n_out != 1 ||
        (sn->mode != 0 && sn->mode != 1) || (sn->mode == 0 && sn->n_in != 1))
        return 0;
    int mask = sn->mode == 1 && sn->n_in > 1 ? sn->in[1] : -1;
    if (mask >= 0 && g->values[mask].dtype != FERRY_F32)
        return 0;
    attn_match m;
    int r = match_chain(g, si, &BATCH_MAJOR, &m);
    if (r < 0 && (mask < 0 || batch_free(&g->values[mask])))
        r = match_chain(g, si, &FOLDED, &m);
    if (r < 0 && mask < 0) /* time-major scores [B*H, T, T] leave no room for a [B,..] mask */
        r = match_chain(g, si, &TIME_MAJOR, &m);
    if (r < 0)
        return 0;
    double scale = (sn->mode == 1 ? sn->alpha : 1.0) * m.scale;

    for (int i = 0; i < m.nd; i++)
        fuse_kill_node(g, m.dead[i]);
    int in[4] = {m.src[0], m.src[1], m.src[2], mask};
    fuse_set_inputs(g, r, mask >= 0 ? 4 : 3, in);
    graph_node *n = &g->nodes[r];
    n->op = OP_ATTENTION;
    n->mode = m.lay->time_major;
    n->alpha = (float)scale;
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
        graph_remove_unread(g); /* the Splits and Slices whose parts all went to fused nodes */
    return FERRY_OK;
}

/* ------------------------------------------------- what backends run */

void graph_attention_of(const graph *g, const graph_node *n, int64_t batch, graph_attention *a)
{
    int tm = n->mode == 1, bd = tm ? 1 : 0, td = 1 - bd;
    memset(a, 0, sizeof *a);
    a->B = graph_dim(g->values[n->in[0]].dims[bd], batch);
    a->heads = n->heads;
    a->Tq = graph_dim(g->values[n->in[0]].dims[td], batch);
    a->Tk = graph_dim(g->values[n->in[1]].dims[td], batch);
    a->d = n->head_dim;
    for (int k = 0; k < 4; k++) {
        int64_t width = k < 3 ? g->values[n->in[k]].dims[2] : a->heads * a->d;
        int64_t T = k == 0 || k == 3 ? a->Tq : a->Tk;
        a->bs[k] = tm ? width : T * width;
        a->rs[k] = tm ? a->B * width : width;
    }
    if (n->n_in > 3 && n->in[3] >= 0) {
        int64_t md[FERRY_MAX_DIMS], sd[4] = {a->B, a->heads, a->Tq, a->Tk}, ms[4];
        int mn = graph_value_shape(&g->values[n->in[3]], batch, md);
        graph_mask_strides(sd, 4, md, mn, ms);
        memcpy(a->mstride, ms, sizeof a->mstride);
    }
}

/* ------------------------------------------------------------ shape rule */

/* The node fuse_one makes, checked again after fusion like any other:
 * sources [B, T, C] ([T, B, C] in mode 1) with the heads' columns inside
 * C, K and V of one length; out [B, Tq, heads*head_dim] ([Tq*B, ...]). */
ferry_status infer_attention(graph *g, graph_node *n)
{
    /* Never loaded from a file (its name is no ONNX op_type), but a file
     * could name it: without the pass's attributes it is refused here. */
    if (n->heads <= 0 || n->head_dim <= 0 || n->in[0] < 0 || n->in[1] < 0 || n->in[2] < 0)
        return node_fail(n, FERRY_EINVAL, "not a fused attention node (no heads or inputs)");
    const graph_value *q = &g->values[n->in[0]];
    int64_t width = n->heads * n->head_dim;
    int bd = n->mode ? 1 : 0, td = 1 - bd;
    for (int k = 0; k < 3; k++) {
        const graph_value *s = &g->values[n->in[k]];
        if (s->ndim != 3 || !is_float_dtype(s->dtype) || s->dims[bd] != q->dims[bd] ||
            s->dims[td] < 0)
            return node_failf(n, FERRY_ESHAPE, "source '%s' is not [%s] of the batch's B", s->name,
                              n->mode ? "T, B, C" : "B, T, C");
        if (n->starts[k] < 0 || n->starts[k] + width > s->dims[2])
            return node_failf(n, FERRY_ESHAPE, "columns %lld..%lld are outside source '%s'",
                              (long long)n->starts[k], (long long)(n->starts[k] + width), s->name);
    }
    if (g->values[n->in[1]].dims[td] != g->values[n->in[2]].dims[td])
        return node_fail(n, FERRY_ESHAPE, "keys and values differ in length");
    if (n->mode) {
        int64_t yd[2] = {q->dims[0] * q->dims[1], width};
        set_out(g, n->out[0], q->dtype, 2, yd);
    } else {
        int64_t yd[3] = {q->dims[0], q->dims[1], width};
        set_out(g, n->out[0], q->dtype, 3, yd);
    }
    return FERRY_OK;
}
