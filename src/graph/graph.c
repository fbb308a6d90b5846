/* graph.c - building and querying the graph IR. */
#include "graph/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

graph *graph_new(void)
{
    graph *g = calloc(1, sizeof *g);
    if (!g)
        ferry_fail(FERRY_ENOMEM, "out of memory allocating a graph");
    return g;
}

void graph_free(graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        if (!g->values[i].data_shared)
            free(g->values[i].data);
        free(g->values[i].symk);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].splits);
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->producer);
    free(g);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return -1;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

int graph_add_value(graph *g, const char *name, ferry_dtype dt, int ndim, const int64_t *dims)
{
    if (ndim < 0 || ndim > FERRY_MAX_DIMS) {
        ferry_fail(FERRY_EUNSUPPORTED, "tensor '%s' has rank %d; at most %d is supported",
                   name ? name : "?", ndim, FERRY_MAX_DIMS);
        return -1;
    }
    if (grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values)) {
        ferry_fail(FERRY_ENOMEM, "out of memory adding tensor '%s'", name ? name : "?");
        return -1;
    }
    graph_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    char buf[32];
    if (!name) {
        snprintf(buf, sizeof buf, "_v%d", g->n_values);
        name = buf;
    }
    v->name = strdup(name);
    if (!v->name) {
        ferry_fail(FERRY_ENOMEM, "out of memory adding tensor '%s'", name);
        return -1;
    }
    v->dtype = dt;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = dims[i];
    v->producer = -1;
    v->alias = -1;
    return g->n_values++;
}

int graph_add_node(graph *g, op_kind op, const char *name, int n_in, const int *in, int n_out,
                   const int *out)
{
    if (n_in > GRAPH_MAX_IO || n_out > GRAPH_MAX_IO) {
        ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s) has %d inputs and %d outputs; at most %d",
                   name ? name : "?", op_name(op), n_in, n_out, GRAPH_MAX_IO);
        return -1;
    }
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) {
        ferry_fail(FERRY_ENOMEM, "out of memory adding a node");
        return -1;
    }
    graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    char buf[64];
    if (!name || !*name) {
        snprintf(buf, sizeof buf, "%s_%d", op_name(op), g->n_nodes);
        name = buf;
    }
    n->name = strdup(name);
    if (!n->name) {
        ferry_fail(FERRY_ENOMEM, "out of memory adding node '%s'", name);
        return -1;
    }
    n->op = op;
    n->n_in = n_in;
    n->n_out = n_out;
    for (int i = 0; i < GRAPH_MAX_IO; i++) {
        n->in[i] = i < n_in ? in[i] : -1;
        n->out[i] = i < n_out ? out[i] : -1;
    }
    n->alpha = 1.0f;
    n->beta = 1.0f;
    n->epsilon = 1e-5f;
    n->axis = -1;
    n->keepdims = 1;
    int idx = g->n_nodes++;
    for (int i = 0; i < n_in; i++)
        if (in[i] >= 0)
            g->values[in[i]].n_consumers++;
    for (int i = 0; i < n_out; i++)
        if (out[i] >= 0)
            g->values[out[i]].producer = idx;
    return idx;
}

int graph_find_value(const graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

const char *act_name(act_kind a)
{
    switch (a) {
    case ACT_NONE: return "none";
    case ACT_RELU: return "relu";
    case ACT_GELU: return "gelu";
    case ACT_GELU_TANH: return "gelu_tanh";
    case ACT_LEAKY_RELU: return "leaky_relu";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_TANH: return "tanh";
    case ACT_CLIP: return "clip";
    case ACT_HARD_SWISH: return "hard_swish";
    case ACT_HARD_SIGMOID: return "hard_sigmoid";
    case ACT_SILU: return "silu";
    }
    return "?";
}

int64_t graph_value_numel(const graph_value *v, int64_t n)
{
    int64_t e = 1;
    for (int i = 0; i < v->ndim; i++)
        e *= graph_dim(v->dims[i], n);
    return e;
}

int graph_value_shape(const graph_value *v, int64_t n, int64_t *dims)
{
    for (int i = 0; i < v->ndim; i++)
        dims[i] = graph_dim(v->dims[i], n);
    return v->ndim;
}

int64_t graph_param_count(const graph *g)
{
    int64_t n = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].is_const)
            n += graph_value_numel(&g->values[i], 1);
    return n;
}

void graph_remove_unread(graph *g)
{
    /* Nodes are in topological order: one sweep from the end frees chains. */
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        graph_node *n = &g->nodes[ni];
        if (n->dead)
            continue;
        int needed = 0;
        for (int k = 0; k < n->n_out && !needed; k++) {
            int v = n->out[k];
            needed = v >= 0 && (g->values[v].n_consumers > 0 || g->values[v].is_output);
        }
        if (!needed)
            graph_kill_node(g, ni);
    }
}

void graph_kill_node(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0)
            g->values[n->in[k]].n_consumers--;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->values[n->out[k]].producer == ni)
            g->values[n->out[k]].producer = -1;
    n->dead = 1;
}

double graph_flops(const graph *g, int64_t n)
{
    double f = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *nd = &g->nodes[k];
        if (nd->dead || nd->n_out < 1 || nd->out[0] < 0)
            continue;
        const graph_value *y = &g->values[nd->out[0]], *x = &g->values[nd->in[0]];
        double out = (double)graph_value_numel(y, n), macs = 0;
        switch (nd->op) {
        case OP_GEMM:
        case OP_MATMUL:
            macs =
                out * (double)graph_dim(
                          nd->op == OP_GEMM && nd->trans_a ? x->dims[0] : x->dims[x->ndim - 1], n);
            break;
        case OP_CONV: {
            double per = (double)graph_dim(x->dims[1], n) / (double)nd->conv.group;
            for (int i = 0; i < nd->conv.nsp; i++)
                per *= (double)nd->conv.kernel[i];
            macs = out * per;
            break;
        }
        case OP_CONV_TRANSPOSE: {
            double per = (double)graph_dim(y->dims[1], n) / (double)nd->conv.group;
            for (int i = 0; i < nd->conv.nsp; i++)
                per *= (double)nd->conv.kernel[i];
            macs = (double)graph_value_numel(x, n) * per;
            break;
        }
        case OP_ATTENTION: /* Q K^T and P V: Tk multiply-adds per output element each */
            macs = 2 * out * (double)graph_dim(g->values[nd->in[1]].dims[1], n);
            break;
        case OP_LSTM:
        case OP_GRU:
        case OP_RNN: {
            double gates = nd->op == OP_LSTM ? 4 : nd->op == OP_GRU ? 3 : 1;
            /* a projected X was multiplied by W at load (fuse_rnn.c) */
            double in = nd->x_projected ? 0.0 : (double)x->dims[2], h = (double)nd->hidden;
            /* per output element of Y ([T, D, N, H]): gates * (I + H) */
            macs = out * gates * (in + h);
            break;
        }
        default: macs = out / 2; break;
        }
        f += 2 * macs;
    }
    return f;
}

void graph_mask_strides(const int64_t *xd, int xn, const int64_t *md, int mn, int64_t *mstride)
{
    int64_t st = xd[xn - 1];
    for (int d = xn - 2; d >= 0; d--) {
        int k = d - (xn - mn); /* the mask's dim, right-aligned */
        int64_t size = k >= 0 ? md[k] : 1;
        mstride[d] = size == 1 ? 0 : st;
        st *= size;
    }
}

/* Depth-first over v's consumers: views and integer casts pass the indices
 * on; a Gather of a constant whose indices they are bounds them by its
 * axis's length (Gather wraps negative indices once). */
static void index_range_from(const graph *g, int v, int depth, int64_t *bound)
{
    if (depth > 8)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->dead || n->n_in < 1)
            continue;
        if (n->op == OP_GATHER && n->n_in >= 2 && n->in[1] == v && n->in[0] >= 0) {
            const graph_value *x = &g->values[n->in[0]];
            int ax = n->axis < 0 ? n->axis + x->ndim : n->axis;
            if (x->is_const && ax >= 0 && ax < x->ndim && x->dims[ax] > 0 &&
                (*bound < 0 || x->dims[ax] < *bound))
                *bound = x->dims[ax];
            continue;
        }
        if (n->in[0] != v || n->n_out < 1 || n->out[0] < 0)
            continue;
        /* ops that move the ids without changing any (a Transpose too:
         * fuse_rnn.c puts one between the ids and their Gather) */
        int view = n->op == OP_RESHAPE || n->op == OP_UNSQUEEZE || n->op == OP_SQUEEZE ||
                   n->op == OP_IDENTITY || n->op == OP_FLATTEN || n->op == OP_TRANSPOSE;
        int cast = n->op == OP_CAST && (n->to == FERRY_I64 || n->to == FERRY_I32);
        if (view || cast)
            index_range_from(g, n->out[0], depth + 1, bound);
    }
}

int graph_index_range(const graph *g, int v, int64_t *lo, int64_t *hi)
{
    const graph_value *x = &g->values[v];
    if (x->dtype != FERRY_I64 && x->dtype != FERRY_I32)
        return 0;
    int64_t bound = -1;
    index_range_from(g, v, 0, &bound);
    if (bound <= 0)
        return 0;
    *lo = -bound;
    *hi = bound;
    return 1;
}
