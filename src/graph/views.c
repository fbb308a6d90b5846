/* views.c - placeholder pass (does nothing yet). */
#include "graph/graph.h"

ferry_status graph_resolve_views(graph *g)
{
    (void)g;
    return FERRY_OK;
}
