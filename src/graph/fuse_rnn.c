/*
 * fuse_rnn.c - an LSTM or GRU fed by an embedding gets its input
 * projection computed once, at load, over the vocabulary.
 *
 * Why: a recurrent layer's first step is one GEMM over every time step,
 * X W^T plus the biases ([T*N, I] x [I, G*H] a direction, G = 4 for an
 * LSTM, 3 for a GRU). When X is rows of a constant table (Gather(E, ids):
 * nn.Embedding), each row of X W^T is a row of E W^T, so the GEMM can run
 * once over the table instead of once a batch:
 *
 *     P = E W^T + Wb + Rb      [V, D*G*H], directions side by side
 *
 * and a forward gathers P's rows instead of E's. On the LSTM classifier of
 * bench/ (vocab 10,000, I 128, H 256, 2 layers) the first layer's
 * projection was ~12% of the CPU's time at batch 32; it becomes a copy of
 * 4 KiB a token. P is computed in fp32 as the GEMM computed it (its rows
 * differ from the GEMM's by summation order only). A GRU with
 * linear_before_reset (PyTorch's) keeps its new gate's Rb inside the reset
 * product r * (h R + Rb): that part of B stays, the rest moves into P.
 *
 * Pattern (PyTorch's export of Embedding -> LSTM/GRU, batch_first or not):
 *
 *     ids -> Gather(E, axis 0) [-> Transpose(1, 0, 2)] -> LSTM/GRU.X
 *
 * with E [V, I] an f32 constant, W, R (and B) constants, the gathered and
 * transposed tensors read by nothing else, and P at most PROJ_MAX_BYTES
 * (a vocabulary of 50,000 and H 1024 would need 800 MiB: left as it is).
 * Rewritten to
 *
 *     ids [-> Transpose(1, 0)] -> Gather(P, axis 0) -> X (x_projected; no B,
 *                                                       or a GRU's Rbh only)
 *
 * The Transpose moves to the ids (N*T integers instead of N*T*G*H floats);
 * the two nodes keep their places in the array (shape inference walks it
 * in order) and swap roles. W stays an input of the node for what it
 * declares (input size, `ferry info`); backends skip the projection and
 * read X as its result (graph.h, x_projected).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "util/error.h"

#define PROJ_MAX_BYTES ((int64_t)64 << 20)

static int const_f32(const graph *g, int v, int ndim)
{
    if (v < 0)
        return 0;
    const graph_value *x = &g->values[v];
    return x->is_const && x->data && x->dtype == FERRY_F32 && x->ndim == ndim;
}

#define PJ 8 /* columns a panel */
#define PR 4 /* rows of E at a time */
/* 8 floats as one value (GCC's and clang's vector extension: one AVX2
 * register, or two SSE ones): what keeps the sums in registers */
typedef float v8 __attribute__((vector_size(PJ * sizeof(float))));

/* out[r][c] = sum over i of e_r[i] * w[i][c], i in order, for one panel
 * w [I][PJ] and PR rows of E. */
static inline __attribute__((always_inline)) void
panel_body(const float *w, int64_t I, const float *const *e, float out[PR][PJ])
{
    v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const float *e0 = e[0], *e1 = e[1], *e2 = e[2], *e3 = e[3];
    for (int64_t i = 0; i < I; i++) {
        v8 wi;
        memcpy(&wi, w + i * PJ, sizeof wi);
        a0 += e0[i] * wi;
        a1 += e1[i] * wi;
        a2 += e2[i] * wi;
        a3 += e3[i] * wi;
    }
    memcpy(out[0], &a0, sizeof a0);
    memcpy(out[1], &a1, sizeof a1);
    memcpy(out[2], &a2, sizeof a2);
    memcpy(out[3], &a3, sizeof a3);
}

/* Built for AVX2 too where the compiler can (the library targets baseline
 * x86-64, 4 lanes): a branch per call, not target_clones, whose ifunc
 * resolver crashes under the sanitizers (cpu_kernels.c says why). */
static void panel_base(const float *w, int64_t I, const float *const *e, float out[PR][PJ])
{
    panel_body(w, I, e, out);
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void panel_avx2(const float *w, int64_t I,
                                                       const float *const *e, float out[PR][PJ])
{
    panel_body(w, I, e, out);
}
static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}
#else
#define panel_avx2 panel_base
static int have_avx2(void)
{
    return 0;
}
#endif

/* P [V, D*GH] = E W^T + Wb + Rb (Rb's first rb_from of each direction's
 * GH), in fp32 like the GEMM it replaces (its
 * rows differ from the GEMM's by summation order only). A small GEMM of
 * its own, the graph layer having no BLAS: W packed in panels of 8
 * columns ([C/8][I][8], zero-padded), then for 4 rows of E at a time each
 * panel's 4 x 8 sums kept in registers over all of I (each column's sum
 * runs over i in order). The bench's table (10,000 x 128 x 1,024) takes
 * ~0.1 s with AVX2. NULL: no memory. */
static float *project(const float *E, int64_t V, int64_t I, const float *W, const float *B,
                      int64_t D, int64_t GH, int64_t rb_from)
{
    int64_t C = D * GH, np = (C + PJ - 1) / PJ;
    float *P = malloc((size_t)(V * C) * sizeof *P);
    float *Wp = calloc((size_t)(np * I * PJ), sizeof *Wp), *bias = calloc((size_t)C, sizeof *bias);
    if (!P || !Wp || !bias) {
        free(P), free(Wp), free(bias);
        return NULL;
    }
    for (int64_t j = 0; j < C; j++) { /* W [D, GH, I] = [C, I] */
        for (int64_t i = 0; i < I; i++)
            Wp[(j / PJ * I + i) * PJ + j % PJ] = W[j * I + i];
        if (B) /* B [D, 2*GH]: Wb then Rb, per direction */
            bias[j] = B[j / GH * 2 * GH + j % GH] +
                      (j % GH < rb_from ? B[j / GH * 2 * GH + GH + j % GH] : 0.0f);
    }
    void (*panel)(const float *, int64_t, const float *const *, float[PR][PJ]) =
        have_avx2() ? panel_avx2 : panel_base;
    for (int64_t v0 = 0; v0 < V; v0 += PR) {
        int64_t nr = V - v0 < PR ? V - v0 : PR;
        const float *e[PR];
        for (int64_t r = 0; r < PR; r++) /* a short last block repeats a row, then drops it */
            e[r] = E + (v0 + (r < nr ? r : 0)) * I;
        for (int64_t pb = 0; pb < np; pb++) {
            float out[PR][PJ];
            panel(Wp + pb * I * PJ, I, e, out);
            int64_t j0 = pb * PJ, nc = C - j0 < PJ ? C - j0 : PJ;
            for (int64_t r = 0; r < nr; r++)
                for (int64_t c = 0; c < nc; c++)
                    P[(v0 + r) * C + j0 + c] = out[r][c] + bias[j0 + c];
        }
    }
    free(Wp), free(bias);
    return P;
}

/* A node's name as "<base><suffix>" (owned by the graph). 0: no memory. */
static int rename_node(graph_node *n, const char *base, const char *suffix)
{
    size_t len = strlen(base) + strlen(suffix) + 1;
    char *s = malloc(len);
    if (!s)
        return 0;
    snprintf(s, len, "%s%s", base, suffix);
    free(n->name);
    n->name = s;
    return 1;
}

/* 1 rewritten, 0 not this node (or no memory for the table), -1 out of
 * memory mid-rewrite. */
static int fuse_one(graph *g, int li)
{
    const graph_node *l = &g->nodes[li];
    if (l->dead || (l->op != OP_LSTM && l->op != OP_GRU) || l->x_projected || l->guard ||
        l->n_in < 3)
        return 0;
    int x = l->in[0], a = -1, t = -1;
    if (!fuse_private_value(g, x) || (a = fuse_producer_of(g, x)) < 0)
        return 0;
    if (g->nodes[a].op == OP_TRANSPOSE) {
        const graph_node *tn = &g->nodes[a];
        if (tn->guard || tn->n_axes != 3 || tn->perm[0] != 1 || tn->perm[1] != 0 ||
            tn->perm[2] != 2 || !fuse_private_value(g, tn->in[0]))
            return 0;
        t = a;
        if ((a = fuse_producer_of(g, tn->in[0])) < 0)
            return 0;
    }
    const graph_node *gn = &g->nodes[a];
    if (gn->op != OP_GATHER || gn->guard || gn->n_in != 2 || gn->mode != 0 || gn->in[0] < 0 ||
        gn->in[1] < 0 || !const_f32(g, gn->in[0], 2) || (gn->axis != 0 && gn->axis != -2))
        return 0;
    const graph_value *e = &g->values[gn->in[0]], *ids = &g->values[gn->in[1]];
    if (ids->ndim != 2)
        return 0;
    int has_b = l->n_in > 3 && l->in[3] >= 0;
    if (!const_f32(g, l->in[1], 3) || !const_f32(g, l->in[2], 3) ||
        (has_b && !const_f32(g, l->in[3], 2)))
        return 0;
    const graph_value *w = &g->values[l->in[1]];
    int64_t D = l->direction == RNN_BIDIRECTIONAL ? 2 : 1, H = l->hidden;
    int64_t GH = (l->op == OP_LSTM ? 4 : 3) * H;
    /* a GRU with linear_before_reset (PyTorch's) keeps the new gate's Rb
     * inside r * (h R + Rb): it stays in B, the rest moves into P */
    int keep_rbh = l->op == OP_GRU && l->linear_before_reset;
    int64_t V = e->dims[0], I = e->dims[1];
    if (V < 1 || I < 1 || w->dims[0] != D || w->dims[1] != GH || w->dims[2] != I ||
        (has_b && (g->values[l->in[3]].dims[0] != D || g->values[l->in[3]].dims[1] != 2 * GH)))
        return 0;
    if (V > PROJ_MAX_BYTES / 4 / (D * GH))
        return 0;
    const float *B = has_b ? g->values[l->in[3]].data : NULL;
    float *P = project(e->data, V, I, w->data, B, D, GH, keep_rbh ? 2 * H : GH);
    if (!P)
        return 0; /* no memory for the table: the model runs unfolded */
    int64_t pd[2] = {V, D * GH};
    int pv = fuse_new_const(g, e->name, ".projected", 2, pd, P, V * D * GH);
    free(P);
    if (pv < 0)
        return 0;
    /* the node pointers stay valid: only values grew */
    graph_node *gm = &g->nodes[a], *lm = &g->nodes[li];
    int ids_v = gm->in[1];
    char *base = strdup(gm->name);
    if (!base)
        return -1;
    if (t >= 0) {
        /* node a (was the Gather): Transpose(ids) -> its old output, now
         * the transposed ids; node t (was the Transpose): Gather(P, them) */
        graph_node *tm = &g->nodes[t];
        int in_a[1] = {ids_v}, in_t[2] = {pv, gm->out[0]};
        fuse_set_inputs(g, a, 1, in_a);
        gm->op = OP_TRANSPOSE;
        gm->axis = -1;
        gm->n_axes = 2;
        gm->perm[0] = 1;
        gm->perm[1] = 0;
        fuse_set_inputs(g, t, 2, in_t);
        tm->op = OP_GATHER;
        tm->axis = 0;
        tm->mode = 0;
        tm->n_axes = 0;
        if (!rename_node(gm, base, ".ids_transposed") || !rename_node(tm, base, ".projected")) {
            free(base);
            return -1;
        }
    } else {
        int in_a[2] = {pv, ids_v};
        fuse_set_inputs(g, a, 2, in_a);
        if (!rename_node(gm, base, ".projected")) {
            free(base);
            return -1;
        }
    }
    free(base);
    int lin[GRAPH_MAX_IO];
    memcpy(lin, lm->in, sizeof lin);
    if (has_b && keep_rbh) { /* B' = [0 | 0, 0, Rb_h] a direction */
        float *b2 = calloc((size_t)(D * 2 * GH), sizeof *b2);
        if (!b2)
            return -1;
        B = g->values[l->in[3]].data; /* (values may have moved) */
        for (int64_t d = 0; d < D; d++)
            memcpy(b2 + d * 2 * GH + GH + 2 * H, B + d * 2 * GH + GH + 2 * H,
                   (size_t)H * sizeof *b2);
        int64_t bd[2] = {D, 2 * GH};
        int bv = fuse_new_const(g, lm->name, ".rbh", 2, bd, b2, D * 2 * GH);
        free(b2);
        if (bv < 0)
            return -1;
        lm = &g->nodes[li];
        lin[3] = bv;
    } else if (has_b) {
        lin[3] = -1;
    }
    fuse_set_inputs(g, li, lm->n_in, lin);
    lm->x_projected = 1;
    return 1;
}

ferry_status graph_fuse_rnn(graph *g)
{
    for (int li = 0; li < g->n_nodes; li++)
        if (fuse_one(g, li) < 0)
            return ferry_fail(FERRY_ENOMEM, "out of memory projecting the input of node '%s'",
                              g->nodes[li].name);
    return FERRY_OK;
}
