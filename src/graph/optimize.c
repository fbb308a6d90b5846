/*
 * optimize.c - the pass pipeline run on every loaded model.
 *
 * Shapes are inferred first because the passes match on them (a bias
 * vector's width, LayerNorm's last axis, MatMul's rank), and again after
 * fusion so that rewritten nodes (Gemm with a bias and an epilogue, GELU,
 * LayerNorm) are checked like any loaded node. Views are resolved last:
 * folding removes views of constants, fusion never creates views.
 */
#include <stdlib.h>

#include "graph/graph.h"
#include "util/error.h"

/* Frees constants no live node reads any more (the f16 originals of folded
 * Casts, the scalars of fused GELU and LayerNorm patterns): they would hold
 * host memory for nothing and inflate graph_param_count past what the model
 * computes with. The value stays, as an unused non-constant with no
 * producer, so indices and names do not move. */
static void drop_unused_constants(graph *g)
{
    for (int i = 0; i < g->n_values; i++) {
        graph_value *v = &g->values[i];
        if (!v->is_const || v->n_consumers > 0 || v->is_output || v->is_input)
            continue;
        free(v->data);
        v->data = NULL;
        v->is_const = 0;
    }
}

ferry_status graph_optimize(graph *g)
{
    ferry_status st;
    if ((st = graph_infer_shapes(g)) != FERRY_OK)
        return st;
    if ((st = graph_fold_constants(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "constant folding");
    if ((st = graph_fuse(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "fusion");
    drop_unused_constants(g);
    if ((st = graph_infer_shapes(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "after fusion");
    if ((st = graph_resolve_views(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "resolving views");
    return FERRY_OK;
}
