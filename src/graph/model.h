/* model.h - ferry_model: a loaded, optimized graph and where it came from. */
#ifndef FERRY_GRAPH_MODEL_H
#define FERRY_GRAPH_MODEL_H

#include "graph/graph.h"

struct ferry_model {
    graph *g;
    char *path; /* file it was loaded from, or "<buffer>" */
};

#endif
