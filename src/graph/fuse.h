/* fuse.h - the graph surgery fuse.c and fuse_conv.c share. Private to
 * src/graph. */
#ifndef FERRY_GRAPH_FUSE_H
#define FERRY_GRAPH_FUSE_H

#include "graph/graph.h"

/* A constant float scalar's value (shape [] or [1], or all ones): 1, else 0. */
int fuse_const_scalar(const graph *g, int v, double *out);
/* The live node that produces v, or -1. */
int fuse_producer_of(const graph *g, int v);
/* An intermediate a pattern may swallow: written by a live node, read by
 * exactly one consumer, and not a graph output. */
int fuse_private_value(const graph *g, int v);
/* The only live node reading v when v is private, else -1. */
int fuse_sole_consumer(const graph *g, int v);
/* For a two-input node reading v, the other input; -1 if v is not read. */
int fuse_other_input(const graph_node *n, int v);
/* Marks node ni dead and releases what it read and wrote. */
void fuse_kill_node(graph *g, int ni);
/* A new f32 constant named base + suffix holding count values (copied);
 * -1 on failure. */
int fuse_new_const(graph *g, const char *base, const char *suffix, int ndim, const int64_t *dims,
                   const float *vals, int64_t count);
/* Replaces node ni's inputs, keeping n_consumers right. */
void fuse_set_inputs(graph *g, int ni, int n_in, const int *in);

/* Before any pattern: Casts to the type a tensor has are bypassed, and
 * nodes whose outputs nobody reads are removed (fuse_mask.c). */
void fuse_drop_noop_casts(graph *g);
/* Softmax si over Where(c, x, fill) [+ mask], fill <= -1e30: rewritten as
 * Add(x, mask) for step 5 (fuse_mask.c). 1 rewritten, 0 not, -1 error. */
int fuse_where_mask(graph *g, int si);

/* Step 4 of graph_fuse: Conv epilogues (fuse_conv.c). */
ferry_status graph_fuse_conv(graph *g);
/* Step 6: multi-head attention after the softmax fusion (fuse_attention.c). */
ferry_status graph_fuse_attention(graph *g);
/* Step 7: an LSTM fed by an embedding gets its input projection at load (fuse_rnn.c). */
ferry_status graph_fuse_rnn(graph *g);

#endif
