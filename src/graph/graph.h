/*
 * graph.h - Ferry's graph IR: an ONNX model as values and nodes, with the
 * batch dimension symbolic. Knows nothing of threads or devices.
 *
 * Pipeline: onnx_load.c (ONNX bytes -> graph) -> shape.c (shape inference)
 * -> fold.c (constant folding) -> fuse.c (Gemm+bias+act, GELU and LayerNorm
 * patterns; attention in fuse_attention.c) -> plan.c (execution order + one
 * shared arena).
 */
#ifndef FERRY_GRAPH_H
#define FERRY_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

typedef enum op_kind {
    /* Each operator's whole life (ONNX name, arity, attributes, shape rule,
     * fold rule) is one row of src/graph/ops.c's table; a backend's run
     * table says which it supports. The comments name the node fields an
     * op reads. */
    OP_GEMM,   /* Y = act(alpha*op(A)*op(B) + beta*C); also MatMul with a 2-D constant B */
    OP_MATMUL, /* numpy matmul with broadcasting over batch dims */
    OP_EINSUM, /* mode = inputs (1, 2); labels: axes[n_axes] of A, perm[mode2] of B,
                  starts[mode3] of the output (einsum.h) */
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
    OP_SOFTMAX,     /* axis; mode 1 (fuse.c): softmax(x * alpha + in[1]) over the last
                       axis, in[1] an additive mask broadcast to x (absent: -1) */
    OP_LOG_SOFTMAX, /* axis */
    OP_LAYER_NORM,  /* axis, epsilon; inputs X, scale, bias (bias optional) */
    OP_REDUCE_MEAN, /* axes, keepdims */
    OP_FLATTEN,     /* axis; a view */
    OP_RESHAPE,     /* a view; the target shape is resolved into the output value */
    OP_IDENTITY,    /* a view (Dropout is loaded as Identity) */
    OP_CAST,        /* to */
    /* ---- convolutional networks */
    OP_CONV,           /* conv (+ act in act/act_alpha/act_beta; + residual as input 3) */
    OP_CONV_TRANSPOSE, /* conv */
    OP_MAX_POOL,       /* conv (kernel, strides, pads, dilations, ceil_mode) */
    OP_AVG_POOL,       /* conv (count_include_pad) */
    OP_GLOBAL_AVG_POOL,
    OP_GLOBAL_MAX_POOL,
    OP_BATCH_NORM,    /* epsilon; inputs X, scale, B, mean, var */
    OP_INSTANCE_NORM, /* epsilon; inputs X [N,C,...], scale [C], B [C] */
    OP_RESIZE,        /* mode, coord, nearest; alpha = cubic_coeff_a; scales[] per output dim */
    OP_GRID_SAMPLE,   /* mode (GRID_LINEAR, GRID_NEAREST), mode2 = padding (GRID_PAD_*),
                         mode3 = align_corners; inputs X [N,C,H,W], grid [N,Ho,Wo,2] */
    OP_PAD,           /* mode; starts[] = pads at the start, ends[] = at the end; input 2: value */
    OP_CLIP,          /* alpha = min, beta = max (resolved from inputs or attributes) */
    OP_HARD_SIGMOID,  /* alpha, beta */
    OP_HARD_SWISH,
    OP_PRELU,
    /* ---- elementwise */
    OP_NEG,
    OP_EXP,
    OP_LOG,
    OP_ABS,
    OP_RECIPROCAL,
    OP_FLOOR,
    OP_CEIL,
    OP_SIN,
    OP_COS,
    OP_SOFTPLUS,
    OP_ELU,              /* alpha */
    OP_SELU,             /* alpha, act_beta = gamma */
    OP_CELU,             /* alpha */
    OP_THRESHOLDED_RELU, /* alpha: x where x > alpha, else 0 */
    OP_SOFTSIGN,
    OP_MISH,
    OP_SHRINK,  /* alpha = lambd, act_beta = bias (nn.Hardshrink, nn.Softshrink) */
    OP_IS_NAN,  /* bool out */
    OP_IS_INF,  /* bool out; mode = detect_negative, mode2 = detect_positive */
    OP_ONE_HOT, /* axis (resolved); inputs indices, depth (known at load), values [off, on] */
    OP_ROUND,   /* half to even */
    OP_SIGN,
    OP_MIN, /* n inputs, broadcast */
    OP_MAX,
    OP_MOD, /* mode = fmod */
    OP_EQUAL,
    OP_LESS,
    OP_LESS_EQUAL,
    OP_GREATER,
    OP_GREATER_EQUAL,
    OP_NOT,
    OP_AND,
    OP_OR,
    OP_XOR,
    OP_WHERE,
    /* ---- reductions */
    OP_REDUCE_SUM, /* axes, keepdims (axes resolved from the input at opset 13/18+) */
    OP_REDUCE_MAX,
    OP_REDUCE_MIN,
    OP_REDUCE_PROD,
    OP_REDUCE_L2,
    OP_REDUCE_SUM_SQUARE,
    OP_REDUCE_LOG_SUM_EXP,
    OP_REDUCE_L1,
    OP_REDUCE_LOG_SUM,
    OP_ARGMAX, /* axis, keepdims, mode = select_last_index */
    OP_ARGMIN,
    OP_CUMSUM, /* axis (resolved), mode = exclusive, mode2 = reverse */
    OP_TOPK,   /* axis (resolved), mode = largest; K (input 1) is the outputs' dim on axis */
    /* ---- shapes and data movement */
    OP_SHAPE,            /* starts[0], ends[0]: the dims kept (opset 15 start/end) */
    OP_SQUEEZE,          /* a view */
    OP_UNSQUEEZE,        /* a view */
    OP_CONCAT,           /* axis */
    OP_SPLIT,            /* axis; splits[] sizes of the outputs */
    OP_SLICE,            /* starts[], steps[] per input dim, resolved */
    OP_TRANSPOSE,        /* perm[] */
    OP_GATHER,           /* axis; mode: rows per sample of a gather along the batch (shape.c) */
    OP_GATHER_ELEMENTS,  /* axis */
    OP_GATHER_ND,        /* mode = batch_dims; mode2: indices address the batch axis, each
                            sample's own rows only (shape_data.c) */
    OP_SCATTER_ND,       /* mode = reduction (SCATTER_*); mode2: indices address the batch axis,
                            each sample's own rows only (shape_data.c) */
    OP_SCATTER_ELEMENTS, /* axis; mode = reduction (SCATTER_*) */
    OP_EXPAND,
    OP_TILE,
    OP_CONSTANT_OF_SHAPE, /* input 1 (loader-made constant): the fill value */
    OP_RANGE,
    OP_EYE_LIKE,       /* to = output dtype; starts[0] = k, the diagonal */
    OP_TRILU,          /* mode = upper; k in alpha... resolved into starts[0] */
    OP_DEPTH_TO_SPACE, /* axis = blocksize, mode = CRD */
    /* ---- recurrent */
    OP_LSTM, /* rnn; inputs X, W, R, B, sequence_lens, initial_h, initial_c, P (up to 8) */
    OP_GRU,  /* rnn */
    OP_RNN,  /* rnn; mode = the activation (RNN_ACT_*); inputs X, W, R, B, sequence_lens,
                initial_h */
    /* ---- control flow */
    OP_IF, /* inputs: condition, the then branch's value, the else branch's (onnx_load.c);
              made an Identity of the taken one by shape inference */
    /* ---- recommenders */
    OP_EMBEDDING_BAG, /* inputs W [rows, D], X [N, L] ids; out[n] = reduce_j W[X[n,j]];
                         mode 0 sum, 1 mean, 2 max (nn.EmbeddingBag's Loop, onnx_load.c) */
    /* ---- fused (no ONNX name; made by a pass) */
    OP_ATTENTION, /* fuse_attention.c: inputs Q, K, V sources [B, T, C] (heads*head_dim
                     columns from starts[0], starts[1], starts[2]), mask (optional, as
                     OP_SOFTMAX mode 1's, against the scores [B, heads, Tq, Tk]);
                     heads, head_dim, alpha = scale; out [B, Tq, heads*head_dim].
                     mode 1 (MultiheadAttention's): sources [T, B, C], out
                     [Tq*B, heads*head_dim] row t*B + b, no mask */
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
    /* Conv epilogues only (fuse.c folds them after a Conv): */
    ACT_CLIP, /* act_alpha = min, act_beta = max (ReLU6) */
    ACT_HARD_SWISH,
    ACT_HARD_SIGMOID, /* act_alpha, act_beta */
    ACT_SILU,         /* x * sigmoid(x) */
} act_kind;

/* A tensor in the graph. A negative dim is symbolic: dims[i] == -k means
 * k*N, with N the batch size (FERRY_DIM_BATCH, -1, is N itself), so that
 * the [N*heads, T, d] of an attention export is a shape like any other.
 * Shapes are resolved once at load, as expressions of N, rather than per
 * batch size: every batch then runs the same plan, errors surface when the
 * model loads, and forward() turns dims into numbers with one multiply.
 *
 * Integer tensors computed from shapes (Shape -> Gather -> Concat ->
 * Reshape) are evaluated at load too: such a value has is_sym set, data
 * holding the constant parts and symk the multiples of N, element i being
 * data[i] + symk[i]*N. It is known at load without being a constant. */
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
    int alias;       /* value whose storage this one shares (views), or -1 */
    int is_sym;      /* known at load (see above): int64 data[i] + symk[i]*N, or bool data */
    int len_dim;     /* graph inputs/outputs: the dim of the length axis (model.c), 0: none */
    int data_shared; /* data belongs to another graph (model.c's length buckets): not freed */
    int64_t *symk;   /* owned; NULL when no element depends on N */
    /* Nonzero: the value holds the sample's position in the batch, scaled:
     * element e of sample i is i*bpos plus a per-sample part (a Range over
     * the batch size, then Mul/Add; shape.c's batch_position). Such a value
     * may only index rows of its own sample (Gather, graph_node.mode). */
    int64_t bpos;
    /* With bpos: only component 0 along the last dim holds the position,
     * the others are per-sample (index tuples (i*bpos + j, ...) for a
     * ScatterND, as x[:, a:b] = y exports them). */
    int bpos_tuple;
} graph_value;

/* Inputs or outputs of one node: Concat in a DenseNet block takes 25. */
#define GRAPH_MAX_IO 64

/* Spatial attributes of Conv, ConvTranspose, MaxPool and AveragePool,
 * resolved at load (auto_pad is turned into pads by shape inference). */
#define GRAPH_MAX_SPATIAL 3
typedef struct conv_attrs {
    int nsp;                              /* spatial rank: 1, 2 or 3 */
    int64_t kernel[GRAPH_MAX_SPATIAL];    /* from the attribute, else W's dims */
    int64_t strides[GRAPH_MAX_SPATIAL];   /* default 1 */
    int64_t dilations[GRAPH_MAX_SPATIAL]; /* default 1 */
    int64_t pads[2 * GRAPH_MAX_SPATIAL];  /* begins then ends, as ONNX */
    int64_t out_pad[GRAPH_MAX_SPATIAL];   /* ConvTranspose output_padding */
    int64_t out_shape[GRAPH_MAX_SPATIAL]; /* ConvTranspose output_shape, 0 if absent */
    int64_t group;                        /* Conv, ConvTranspose */
    int auto_pad;                         /* AUTO_PAD_* */
    int ceil_mode, count_include_pad;     /* pools */
} conv_attrs;

enum { AUTO_PAD_NOTSET = 0, AUTO_PAD_SAME_UPPER, AUTO_PAD_SAME_LOWER, AUTO_PAD_VALID };
enum { PAD_CONSTANT = 0, PAD_REFLECT, PAD_EDGE, PAD_WRAP };
/* ScatterND's reduction attribute, in ONNX's order of names. */
enum { SCATTER_NONE = 0, SCATTER_ADD, SCATTER_MUL, SCATTER_MAX, SCATTER_MIN };
enum { RESIZE_NEAREST = 0, RESIZE_LINEAR, RESIZE_CUBIC };
enum { GRID_LINEAR = 0, GRID_NEAREST };
enum { GRID_PAD_ZEROS = 0, GRID_PAD_BORDER, GRID_PAD_REFLECTION };
enum {
    RESIZE_HALF_PIXEL = 0,
    RESIZE_PYTORCH_HALF_PIXEL,
    RESIZE_ALIGN_CORNERS,
    RESIZE_ASYMMETRIC,
    RESIZE_HALF_PIXEL_SYMMETRIC,
};
enum { NEAREST_ROUND_PREFER_FLOOR = 0, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL };
enum { RNN_FORWARD = 0, RNN_REVERSE, RNN_BIDIRECTIONAL };
/* The plain RNN's activation (one for every direction). */
enum { RNN_ACT_TANH = 0, RNN_ACT_RELU };

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
    float act_beta; /* Clip max, HardSigmoid beta, a fused clip's max */
    conv_attrs conv;
    int mode, mode2, mode3;         /* per op: Pad mode; Resize mode/coord/nearest; ... */
    int64_t perm[FERRY_MAX_DIMS];   /* Transpose */
    int64_t starts[FERRY_MAX_DIMS]; /* Slice (per input dim), Pad (begins), Shape */
    int64_t ends[FERRY_MAX_DIMS];   /* Pad (ends), Shape */
    int64_t steps[FERRY_MAX_DIMS];  /* Slice (per input dim; 1 on dims not sliced) */
    float scales[FERRY_MAX_DIMS];   /* Resize: output/input per dim */
    int64_t *splits;                /* Split: size of each output along axis (owned) */
    int64_t hidden;                 /* LSTM, GRU */
    int direction, layout, linear_before_reset;
    /* LSTM, GRU: X already holds X W^T + Wb + Rb ([.., D*G*H]; fuse_rnn.c:
     * a GRU with linear_before_reset keeps Rbh in B), so backends skip the
     * input projection; W only declares the input size */
    int x_projected;
    float clip;              /* LSTM, GRU cell clip; 0: none */
    int64_t heads, head_dim; /* OP_ATTENTION */
    int dead;                /* removed by a pass; skipped by plan and backends */
    /* Nonzero: the node is in a branch of an If (onnx_load.c), value
     * |guard| - 1 being the condition, then branch > 0, else branch < 0.
     * Cleared or the node removed by shape inference once it is known. */
    int guard;
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
/* The fused attention softmax's mask (OP_SOFTMAX mode 1, fuse.c): for
 * scores x [xd[0..xn-1]] and a mask m [md[0..mn-1]] right-aligned to x with
 * the last dim whole, the element stride in m of each of x's leading xn-1
 * dims (0 where m is broadcast). */
void graph_mask_strides(const int64_t *xd, int xn, const int64_t *md, int mn, int64_t *mstride);
/* What both backends run an OP_ATTENTION node (fuse_attention.c) on, for
 * batch n: the sizes, and for Q, K, V (their sources, from the heads'
 * first column) and Y the element strides of a batch entry (bs) and of a
 * position (rs); the mask row of (b, h, i) at b*mstride[0] + h*mstride[1]
 * + i*mstride[2] when there is a mask. */
typedef struct graph_attention {
    int64_t B, heads, Tq, Tk, d;
    int64_t bs[4], rs[4]; /* Q, K, V, Y */
    int64_t mstride[3];
} graph_attention;
void graph_attention_of(const graph *g, const graph_node *n, int64_t batch, graph_attention *a);
const char *op_name(op_kind op);  /* "Gemm", "Relu", ... */
const char *act_name(act_kind a); /* "relu", "gelu", ... */

/* ---- shapes */
/* A dim for batch n: d itself, or -d*n where d < 0. */
static inline int64_t graph_dim(int64_t d, int64_t n)
{
    return d < 0 ? -d * n : d;
}
/* Elements of value v for batch n (the batch dim replaced by n). */
int64_t graph_value_numel(const graph_value *v, int64_t n);
/* Concrete dims of v for batch n into dims (returns ndim). */
int graph_value_shape(const graph_value *v, int64_t n, int64_t *dims);
/* Infers dtype and dims of every node output from its inputs, in order.
 * FERRY_ESHAPE / FERRY_EUNSUPPORTED with the node named on mismatch. */
ferry_status graph_infer_shapes(graph *g);

/* ---- passes */
ferry_status graph_fold_constants(graph *g);
/* Evaluates node ni, whose inputs are all known constants, with the CPU
 * backend's kernels into outs[] (malloc'd, one per output), when the op
 * folds, its outputs have static shapes and each fits max_bytes. Returns 1
 * if it did; 0 leaves outs NULL and no error set (the node then runs). */
int graph_eval_node(graph *g, int ni, size_t max_bytes, void **outs);
ferry_status graph_fuse(graph *g);
/* The indices integer value v may hold, when it (through views and integer
 * casts) indexes a constant table with Gather: a value outside [*lo, *hi)
 * would fail that Gather at run time, so a caller may refuse it up front,
 * one request at a time (the batcher). Returns 0 when no Gather bounds v. */
int graph_index_range(const graph *g, int v, int64_t *lo, int64_t *hi);
/* Marks views (Identity, Reshape, Flatten) as aliases of their input. */
ferry_status graph_resolve_views(graph *g);
/* All of the above, in order; called by ferry_model_load. */
ferry_status graph_optimize(graph *g);

/* ---- loading */
ferry_status onnx_load_file(const char *path, graph **out);
/* Reads a whole model file (a regular file) into *buf (malloc'd). */
ferry_status onnx_read_file(const char *path, char **buf, size_t *len);

/* What a model file declares, read without loading it (onnx_summary.c):
 * for `ferry info` on a model that cannot run. */
#define ONNX_SUMMARY_MAX 64
typedef struct onnx_summary_io {
    char name[128];
    ferry_dtype dtype;
    int ndim;
    int64_t dims[FERRY_MAX_DIMS]; /* -1 where symbolic, named in sym */
    char sym[FERRY_MAX_DIMS][96]; /* torch names unnamed axes by their producer and
                                     output ("LayerNormalizationlast_hidden_state_dim_1") */
} onnx_summary_io;
typedef struct onnx_summary_op {
    char name[64]; /* "Conv", or "domain.Op" outside the default domain */
    int count;
    int supported; /* in the operator table */
} onnx_summary_op;
typedef struct onnx_summary {
    int64_t opset, ir_version;
    char producer[64];
    int n_nodes;
    int n_inputs, n_outputs, n_ops;
    onnx_summary_io inputs[ONNX_SUMMARY_MAX], outputs[ONNX_SUMMARY_MAX];
    onnx_summary_op ops[ONNX_SUMMARY_MAX * 2];
} onnx_summary;
/* Fills *s (heap-allocate it: it is large) from the file at path. */
ferry_status onnx_summarize_file(const char *path, onnx_summary *s);
ferry_status onnx_load_buffer(const void *buf, size_t len, const char *base_dir, graph **out);
/* As onnx_load_buffer, with every input dimension named len_axis (its
 * dim_param) read as len_value: the graph of one length bucket (model.c).
 * Values declaring that axis get len_dim set. */
ferry_status onnx_load_buffer_len(const void *buf, size_t len, const char *base_dir,
                                  const char *len_axis, int64_t len_value, graph **out);
/* The inputs' length axis (see onnx_load.c); name "" when there is none. */
ferry_status onnx_find_length_axis(const void *buf, size_t len, const char *want, char *name,
                                   size_t cap);

/* ---- planning */
ferry_status graph_plan_make(const graph *g, int64_t max_batch, size_t elem_bytes, graph_plan *out);
void graph_plan_free(graph_plan *p);

/* Marks dead every node whose outputs nothing live reads and that writes
 * no graph output (exporters leave such nodes, and recognized patterns
 * leave their old arithmetic behind). */
void graph_remove_unread(graph *g);
/* Marks node ni dead: its inputs lose a consumer, its outputs their
 * producer. */
void graph_kill_node(graph *g, int ni);

/* Floating-point operations of one forward at batch n, roughly (the
 * multiply-adds of Gemm, MatMul, Conv and recurrent nodes, one per output
 * element elsewhere): how the engine sizes its chunks. */
double graph_flops(const graph *g, int64_t n);

/* Parameter count (elements of all constants). */
int64_t graph_param_count(const graph *g);

#endif /* FERRY_GRAPH_H */
