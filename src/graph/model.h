/* model.h - ferry_model: a loaded, optimized graph and where it came from. */
#ifndef FERRY_GRAPH_MODEL_H
#define FERRY_GRAPH_MODEL_H

#include "graph/graph.h"

/* Length buckets. A model whose inputs have a second symbolic axis (a
 * sequence length, named by the export's dynamic_axes) is loaded once per
 * bucket length L, with that axis fixed to L before shape inference: the
 * graph layer keeps its one symbol, the batch N, and each bucket is a plain
 * model (`var`) that the engine compiles as it compiles any other. The
 * buckets' graphs share the bytes of every constant that is the same in
 * all of them (the weights), so the copies cost only what differs (shape
 * constants, position tables sliced to L). See src/batcher/buckets.c for
 * how requests of other lengths are padded into a bucket. */
struct ferry_model {
    graph *g;          /* the model's graph; with length buckets, the longest bucket's (var's) */
    char *path;        /* file it was loaded from, or "<buffer>" */
    int n_len;         /* length buckets, 0 when the model has no length axis */
    int64_t *len;      /* ascending */
    ferry_model **var; /* var[k]: the model with the axis fixed to len[k] */
    char *len_axis;    /* its dim_param ("sequence") */
};

#endif
