/*
 * fuse_builder.h - hand-built graphs for the fusion tests (test_fuse.c,
 * test_fuse_attention.c): values, nodes, and the consistency the passes
 * promise. Include after <cmocka.h>.
 */
#ifndef FERRY_TESTS_GRAPH_FUSE_BUILDER_H
#define FERRY_TESTS_GRAPH_FUSE_BUILDER_H

#include <stdlib.h>

#include "graph/graph.h"

static inline void mark_output(graph *g, int v)
{
    g->values[v].is_output = 1;
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
    g->outputs[g->n_outputs++] = v;
}

static inline int cst_f32(graph *g, const char *name, int ndim, const int64_t *dims, float fill)
{
    int v = graph_add_value(g, name, FERRY_F32, ndim, dims);
    assert_true(v >= 0);
    int64_t n = graph_value_numel(&g->values[v], 1);
    float *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = fill + 0.01f * (float)i;
    g->values[v].data = d;
    g->values[v].is_const = 1;
    return v;
}

static inline int scalar(graph *g, const char *name, float x)
{
    return cst_f32(g, name, 0, NULL, x);
}

static inline int node2(graph *g, op_kind op, const char *name, int a, int b, int out)
{
    int in[2] = {a, b};
    int n = graph_add_node(g, op, name, b >= 0 ? 2 : 1, in, 1, &out);
    assert_true(n >= 0);
    return n;
}

static inline int node1(graph *g, op_kind op, const char *name, int a, int out)
{
    return node2(g, op, name, a, -1, out);
}

static inline int live_nodes(const graph *g)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !g->nodes[i].dead;
    return n;
}

/* Every n_consumers equals the live reads, every live output's producer is
 * its node: what the passes promise to keep. */
static inline void check_consistent(const graph *g)
{
    for (int v = 0; v < g->n_values; v++) {
        int reads = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            const graph_node *n = &g->nodes[i];
            for (int k = 0; k < n->n_in && !n->dead; k++)
                reads += n->in[k] == v;
        }
        assert_int_equal(g->values[v].n_consumers, reads);
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_out && !g->nodes[i].dead; k++)
            assert_int_equal(g->values[g->nodes[i].out[k]].producer, i);
    for (int i = 0; i < g->n_outputs; i++) {
        int p = g->values[g->outputs[i]].producer;
        assert_true(p >= 0 && !g->nodes[p].dead);
    }
}

#endif
