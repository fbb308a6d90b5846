/*
 * graph.h - Ferry's graph IR: an ONNX model as values and nodes, with the
 * batch dimension symbolic. Knows nothing of threads or devices.
 *
 * Pipeline: onnx_load.c (ONNX bytes -> graph) -> shape.c (shape inference)
 * -> fold.c (constant folding) -> fuse.c (Gemm+bias+act, GELU and LayerNorm
 * patterns) -> plan.c (execution order + one shared arena).
 */
#ifndef FERRY_GRAPH_H
#define FERRY_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

typedef enum op_kind {
    OP_GEMM,   /* Y = act(alpha*op(A)*op(B) + beta*C); also MatMul with a 2-D constant B */
    OP_MATMUL, /* numpy matmul with broadcasting over batch dims */
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_POW,
    OP_RELU,
    OP_LEAKY_RELU, /* alpha */
    OP_SIGMOID,
    OP_TANH,
    OP_GELU, /* exact (erf) GELU; approximate = 1 selects the tanh form */
    OP_ERF,
    OP_SQRT,
    OP_SOFTMAX,     /* axis */
    OP_LOG_SOFTMAX, /* axis */
    OP_LAYER_NORM,  /* axis, epsilon; inputs X, scale, bias (bias optional) */
    OP_REDUCE_MEAN, /* axes, keepdims */
    OP_FLATTEN,     /* axis; a view */
    OP_RESHAPE,     /* a view; the target shape is resolved into the output value */
    OP_IDENTITY,    /* a view (Dropout is loaded as Identity) */
    OP_CAST,        /* to */
    OP_COUNT
} op_kind;

/* Activation fused into OP_GEMM's epilogue. */
typedef enum act_kind {
    ACT_NONE = 0,
    ACT_RELU,
    ACT_GELU, /* exact, erf form */
    ACT_GELU_TANH,
    ACT_LEAKY_RELU, /* act_alpha */
    ACT_SIGMOID,
    ACT_TANH,
} act_kind;

/* A tensor in the graph. dims[i] == FERRY_DIM_BATCH is the symbolic batch
 * size N (at most one such dim per value). */
typedef struct graph_value {
    char *name;
    ferry_dtype dtype;
    int ndim;
    int64_t dims[FERRY_MAX_DIMS];
    int is_input;  /* a graph input (caller's data) */
    int is_output; /* a graph output (caller's data) */
    int is_const;  /* initializer or folded constant: data holds it */
    void *data;    /* host data of a constant, dense, in dtype; owned by the graph */
    int producer;  /* index of the node that writes it, or -1 */
    int n_consumers;
    int alias; /* value whose storage this one shares (views), or -1 */
} graph_value;

#define GRAPH_MAX_IO 4

typedef struct graph_node {
    op_kind op;
    char *name; /* ONNX node name, or "<op>_<index>" when it had none */
    int n_in, n_out;
    int in[GRAPH_MAX_IO]; /* value indices; -1 for an absent optional input */
    int out[GRAPH_MAX_IO];
    /* Attributes; each op reads the ones it documents above. */
    int axis;
    float alpha, beta; /* Gemm alpha/beta, LeakyRelu alpha */
    int trans_a, trans_b;
    act_kind act;    /* OP_GEMM epilogue */
    float act_alpha; /* LeakyRelu slope for ACT_LEAKY_RELU */
    float epsilon;
    int approximate; /* OP_GELU */
    int keepdims;
    int n_axes;
    int64_t axes[FERRY_MAX_DIMS];
    ferry_dtype to; /* OP_CAST */
    int dead;       /* removed by a pass; skipped by plan and backends */
} graph_node;

typedef struct graph {
    graph_value *values;
    int n_values, cap_values;
    graph_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs; /* graph inputs (non-initializer), in ONNX order */
    int n_inputs;
    int *outputs; /* graph outputs, in ONNX order */
    int n_outputs;
    int64_t opset;
    char *producer; /* producer_name of the ModelProto */
} graph;

/* Execution plan for one max batch size: live nodes in order, and where
 * each non-constant, non-caller value lives in one shared arena. Values
 * whose lifetimes do not overlap share bytes. */
typedef struct graph_plan {
    int *order; /* node indices to execute (views excluded) */
    int n_order;
    size_t *offset;     /* per value: arena byte offset; SIZE_MAX if not in the arena */
    size_t arena_bytes; /* total arena size (each region 64-byte aligned) */
    int64_t max_batch;
    size_t elem_bytes; /* bytes per element the plan was made for */
} graph_plan;

/* ---- building (used by the loader, the passes and tests) */
graph *graph_new(void);
void graph_free(graph *g);
/* Adds a value; returns its index or -1 (FERRY_ENOMEM set). name is copied. */
int graph_add_value(graph *g, const char *name, ferry_dtype dt, int ndim, const int64_t *dims);
/* Adds a node; returns its index or -1. name is copied (NULL: generated). */
int graph_add_node(graph *g, op_kind op, const char *name, int n_in, const int *in, int n_out,
                   const int *out);
int graph_find_value(const graph *g, const char *name); /* -1 if absent */
const char *op_name(op_kind op);                        /* "Gemm", "Relu", ... */
const char *act_name(act_kind a);                       /* "relu", "gelu", ... */

/* ---- shapes */
/* Elements of value v for batch n (the batch dim replaced by n). */
int64_t graph_value_numel(const graph_value *v, int64_t n);
/* Concrete dims of v for batch n into dims (returns ndim). */
int graph_value_shape(const graph_value *v, int64_t n, int64_t *dims);
/* Infers dtype and dims of every node output from its inputs, in order.
 * FERRY_ESHAPE / FERRY_EUNSUPPORTED with the node named on mismatch. */
ferry_status graph_infer_shapes(graph *g);

/* ---- passes */
ferry_status graph_fold_constants(graph *g);
ferry_status graph_fuse(graph *g);
/* Marks views (Identity, Reshape, Flatten) as aliases of their input. */
ferry_status graph_resolve_views(graph *g);
/* All of the above, in order; called by ferry_model_load. */
ferry_status graph_optimize(graph *g);

/* ---- loading */
ferry_status onnx_load_file(const char *path, graph **out);
ferry_status onnx_load_buffer(const void *buf, size_t len, const char *base_dir, graph **out);

/* ---- planning */
ferry_status graph_plan_make(const graph *g, int64_t max_batch, size_t elem_bytes, graph_plan *out);
void graph_plan_free(graph_plan *p);

/* Parameter count (elements of all constants). */
int64_t graph_param_count(const graph *g);

#endif /* FERRY_GRAPH_H */
