/*
 * fuse_mask.c - attention masks written with Where, made additive so that
 * fuse.c's softmax fusion and fuse_attention.c see the pattern they know.
 *
 * Hugging Face models mask scores in three ways. BERT, RoBERTa and T5 add
 * a mask (Add(scores, (1 - m) * min)): nothing to do. GPT-2 fills the
 * causal part with Where over a constant bool, then adds the padding
 * mask; DistilBERT fills the padding with Where over the mask compared to
 * zero and Expanded to the scores' shape:
 *
 *   GPT-2:      Softmax(Add(Where(causal, Div(QK, c), min), pad))
 *   DistilBERT: Softmax(Where(Expand(Reshape(Equal(m, 0)), S), min, QK))
 *
 * Where(c, x, fill) is x + Where(c, 0, fill) exactly when fill is at or
 * below MASK_FLOOR: a finite score that large is not representable next
 * to fill in f32 (x + fill rounds to fill for |x| < 1e22), and -inf stays
 * -inf. A masked x that is no such score is not absorbed: -inf (an
 * additive causal mask applied before the Where) changes only rows the
 * masks fill entirely (a sequence of padding alone), which the Where made
 * uniform; NaN, +inf or |x| >= 1e22 there spoils its row. Both rewrites
 * reuse the pattern's own nodes, so that the nodes stay in topological
 * order with no insertion:
 *
 *   - the mask Where(c, 0, fill) is a new constant when c is one (GPT-2's
 *     causal mask, a constant per length bucket), else the Expand that
 *     only broadcast c to the scores becomes that Where, at c's shape;
 *   - the filling Where becomes Add(x, mask), or, with an Add of a second
 *     mask after it, Add(mask, pad) and the Add becomes Add(x, masks).
 *
 * Exporters also leave Casts to the type a tensor already has around the
 * softmax (GPT-2's attn_weights.to(dtype)); fuse_drop_noop_casts removes
 * them first so that no pattern has to look through them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fuse.h"
#include "graph/graph.h"
#include "util/error.h"

/* A fill at or below this is absorbed by any score it is added to. */
#define MASK_FLOOR (-1e30)

void fuse_drop_noop_casts(graph *g)
{
    for (int ni = 0; ni < g->n_nodes; ni++) {
        graph_node *n = &g->nodes[ni];
        if (n->dead || n->op != OP_CAST || n->n_in != 1 || n->n_out != 1 || n->in[0] < 0 ||
            n->out[0] < 0)
            continue;
        int x = n->in[0], y = n->out[0];
        if (g->values[x].dtype != n->to || g->values[y].is_output)
            continue;
        for (int k = ni + 1; k < g->n_nodes; k++) {
            graph_node *r = &g->nodes[k];
            for (int i = 0; !r->dead && i < r->n_in; i++)
                if (r->in[i] == y) {
                    r->in[i] = x;
                    g->values[y].n_consumers--;
                    g->values[x].n_consumers++;
                }
        }
        fuse_kill_node(g, ni);
    }
    /* and whatever only fed shape math that folding resolved (GPT-2's
     * un-transposed K, read by a Shape alone): such a reader would keep a
     * value the attention pattern needs private from being so */
    graph_remove_unread(g);
}

/* m broadcasts into x without growing it: right-aligned dims 1 or x's. */
static int broadcasts_into(const graph_value *m, const graph_value *x)
{
    if (m->ndim > x->ndim)
        return 0;
    for (int d = 0; d < m->ndim; d++) {
        int64_t md = m->dims[d], xd = x->dims[x->ndim - m->ndim + d];
        if (md != 1 && md != xd)
            return 0;
    }
    return 1;
}

static int same_shape(const graph_value *a, const graph_value *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

/* A constant scalar fill low enough to be added instead of written. */
static int mask_fill(const graph *g, int v, float *fill)
{
    double c;
    if (v < 0 || g->values[v].dtype != FERRY_F32 || !fuse_const_scalar(g, v, &c) ||
        !(c <= MASK_FLOOR))
        return 0;
    *fill = (float)c;
    return 1;
}

/* A new f32 constant [1] holding x; suffix names it after base (".zero"). */
static int scalar_const(graph *g, const char *base, const char *suffix, float x)
{
    int64_t one = 1;
    return fuse_new_const(g, base, suffix, 1, &one, &x, 1);
}

/* Where(c, 0, fill) (or Where(c, fill, 0) when fill_when_true) of a
 * constant c [..] as a new f32 constant of c's shape. */
static int const_mask(graph *g, const char *base, int c, float fill, int fill_when_true)
{
    const graph_value *cv = &g->values[c];
    int64_t cnt = graph_value_numel(cv, 1), dims[FERRY_MAX_DIMS];
    int nd = cv->ndim;
    memcpy(dims, cv->dims, sizeof dims);
    float *d = malloc((size_t)(cnt ? cnt : 1) * sizeof *d);
    if (!d)
        return -1;
    const uint8_t *b = cv->data;
    for (int64_t i = 0; i < cnt; i++)
        d[i] = (b[i] != 0) == fill_when_true ? fill : 0.0f;
    char name[256];
    snprintf(name, sizeof name, "%s.mask", base);
    int v = graph_add_value(g, name, FERRY_F32, nd, dims);
    if (v < 0) {
        free(d);
        return -1;
    }
    g->values[v].is_const = 1;
    g->values[v].data = d;
    return v;
}

/* Broadcast of two mask shapes (dims 1 or equal); 0 when they clash. */
static int mask_broadcast(const graph_value *a, const graph_value *b, int *nd, int64_t *dims)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return 0;
        dims[i] = da == 1 ? db : da;
    }
    *nd = n;
    return 1;
}

int fuse_where_mask(graph *g, int si)
{
    const graph_node *sn = &g->nodes[si];
    if (sn->n_in != 1 || sn->mode || sn->in[0] < 0)
        return 0;
    int s_in = sn->in[0];
    if (g->values[s_in].dtype != FERRY_F32 || fuse_sole_consumer(g, s_in) != si)
        return 0;
    /* Softmax(Where(..)) or Softmax(Add(Where(..), pad)) */
    int wi = fuse_producer_of(g, s_in), add = -1, pad = -1;
    if (wi >= 0 && g->nodes[wi].op == OP_ADD && g->nodes[wi].n_in == 2) {
        const graph_node *an = &g->nodes[wi];
        int found = -1;
        for (int k = 0; k < 2 && found < 0; k++) {
            int p = fuse_producer_of(g, an->in[k]);
            const graph_value *o = &g->values[an->in[1 - k]];
            if (p >= 0 && g->nodes[p].op == OP_WHERE && fuse_private_value(g, an->in[k]) &&
                o->dtype == FERRY_F32 && broadcasts_into(o, &g->values[s_in]) &&
                fuse_producer_of(g, an->in[1 - k]) < p) {
                found = p;
                pad = an->in[1 - k];
            }
        }
        add = wi;
        wi = found;
    }
    if (wi < 0 || g->nodes[wi].op != OP_WHERE || g->nodes[wi].n_in != 3 ||
        g->nodes[wi].n_out != 1 || !fuse_private_value(g, g->nodes[wi].out[0]))
        return 0;
    const graph_node *w = &g->nodes[wi];
    int c = w->in[0], x, w_out = w->out[0], fill_when_true;
    float fill;
    if (mask_fill(g, w->in[2], &fill)) {
        x = w->in[1];
        fill_when_true = 0;
    } else if (mask_fill(g, w->in[1], &fill)) {
        x = w->in[2];
        fill_when_true = 1;
    } else {
        return 0;
    }
    if (g->values[x].dtype != FERRY_F32 || !same_shape(&g->values[x], &g->values[w_out]))
        return 0;
    /* the condition without the Expand that only broadcast it */
    int spare = -1, cp = fuse_producer_of(g, c);
    if (cp >= 0 && g->nodes[cp].op == OP_EXPAND && fuse_private_value(g, c) &&
        g->nodes[cp].in[0] >= 0 && broadcasts_into(&g->values[g->nodes[cp].in[0]], &g->values[x])) {
        spare = cp;
        c = g->nodes[cp].in[0];
    }
    if (g->values[c].dtype != FERRY_BOOL || !broadcasts_into(&g->values[c], &g->values[x]))
        return 0;
    int const_c = g->values[c].is_const && g->values[c].data;
    if (!const_c && spare < 0)
        return 0; /* no node left to compute the mask in */
    int nd = 0;
    int64_t dims[FERRY_MAX_DIMS];
    if (add >= 0 && !mask_broadcast(&g->values[c], &g->values[pad], &nd, dims))
        return 0;

    /* every check passed: rewrite */
    int mask;
    const char *base = g->nodes[wi].name;
    if (const_c) {
        if ((mask = const_mask(g, base, c, fill, fill_when_true)) < 0)
            goto nomem;
        if (spare >= 0)
            fuse_kill_node(g, spare); /* its output, Where's condition, goes below */
    } else {
        int zero = scalar_const(g, base, ".zero", 0.0f), f = scalar_const(g, base, ".fill", fill);
        if (zero < 0 || f < 0)
            goto nomem;
        int in[3] = {c, fill_when_true ? f : zero, fill_when_true ? zero : f};
        fuse_set_inputs(g, spare, 3, in);
        g->nodes[spare].op = OP_WHERE;
        mask = g->nodes[spare].out[0];
        graph_value *mv = &g->values[mask];
        const graph_value *cv = &g->values[c];
        mv->dtype = FERRY_F32;
        mv->ndim = cv->ndim;
        memcpy(mv->dims, cv->dims, sizeof mv->dims);
    }
    if (add < 0) {
        int in[2] = {x, mask};
        fuse_set_inputs(g, wi, 2, in);
        g->nodes[wi].op = OP_ADD;
        return 1;
    }
    /* Where -> Add(mask, pad) at the masks' broadcast, Add -> Add(x, that) */
    int in_w[2] = {mask, pad};
    fuse_set_inputs(g, wi, 2, in_w);
    g->nodes[wi].op = OP_ADD;
    graph_value *wv = &g->values[w_out];
    wv->ndim = nd;
    memcpy(wv->dims, dims, sizeof wv->dims);
    int in_a[2] = {x, w_out};
    fuse_set_inputs(g, add, 2, in_a);
    return 1;
nomem:
    ferry_fail(FERRY_ENOMEM, "out of memory making the mask of node '%s'", base);
    return -1;
}
