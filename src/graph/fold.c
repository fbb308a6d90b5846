/* fold.c - placeholder pass (does nothing yet). */
#include "graph/graph.h"

ferry_status graph_fold_constants(graph *g)
{
    (void)g;
    return FERRY_OK;
}
