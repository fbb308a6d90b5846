/* optimize.c - the pass pipeline run on every loaded model. */
#include "graph/graph.h"

ferry_status graph_optimize(graph *g)
{
    ferry_status st;
    if ((st = graph_fold_constants(g)) != FERRY_OK)
        return st;
    if ((st = graph_fuse(g)) != FERRY_OK)
        return st;
    if ((st = graph_infer_shapes(g)) != FERRY_OK)
        return st;
    return graph_resolve_views(g);
}
