/*
 * optimize.c - the pass pipeline run on every loaded model.
 *
 * Shapes are inferred first because the passes match on them (a bias
 * vector's width, LayerNorm's last axis, MatMul's rank), and again after
 * fusion so that rewritten nodes (Gemm with a bias and an epilogue, GELU,
 * LayerNorm) are checked like any loaded node. Views are resolved last:
 * folding removes views of constants, fusion never creates views.
 */
#include "graph/graph.h"
#include "util/error.h"

ferry_status graph_optimize(graph *g)
{
    ferry_status st;
    if ((st = graph_infer_shapes(g)) != FERRY_OK)
        return st;
    if ((st = graph_fold_constants(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "constant folding");
    if ((st = graph_fuse(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "fusion");
    if ((st = graph_infer_shapes(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "after fusion");
    if ((st = graph_resolve_views(g)) != FERRY_OK)
        return ferry_fail_prefix(st, "resolving views");
    return FERRY_OK;
}
