/*
 * ops.h - the operator table: one row per operator in src/graph/ops.c
 * gives its ONNX name, the op_kind it loads as, its arity, how its
 * attributes are read, its shape rule and whether a constant instance may
 * be folded. A backend says what it runs in its own table (the CPU's is
 * src/backend/cpu/cpu_ops.c). Adding an operator is: a row here, its shape
 * rule, its kernels and their tests.
 *
 * The table knows nothing of protobuf: the loader hands each parse
 * function an op_attrs reader over the node's attributes.
 */
#ifndef FERRY_GRAPH_OPS_H
#define FERRY_GRAPH_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* One attribute as the loader found it. */
typedef enum op_attr_type {
    OP_ATTR_NONE = 0,
    OP_ATTR_FLOAT,
    OP_ATTR_INT,
    OP_ATTR_STRING,
    OP_ATTR_TENSOR,
    OP_ATTR_FLOATS,
    OP_ATTR_INTS,
    OP_ATTR_STRINGS,
    OP_ATTR_OTHER,
} op_attr_type;

/* The strings of an OP_ATTR_STRINGS attribute the reader hands over: the
 * longest list an operator reads (LSTM's activations, two directions). */
#define OP_ATTR_MAX_STRINGS 6

typedef struct op_attr {
    op_attr_type type;
    float f;
    int64_t i;
    const char *s; /* not NUL-terminated: s_len bytes */
    size_t s_len;
    const float *floats;
    const int64_t *ints;
    size_t n;                                 /* elements of floats, ints or strings */
    const char *strings[OP_ATTR_MAX_STRINGS]; /* the first of n; not NUL-terminated */
    size_t string_lens[OP_ATTR_MAX_STRINGS];
    int tensor_value; /* OP_ATTR_TENSOR: the value the loader made of it */
} op_attr;

/* What a parse function sees of a node. */
typedef struct op_parse_ctx {
    graph *g;
    const char *name; /* node name, for messages */
    const char *op;   /* ONNX op_type */
    int64_t opset;
    void *reader; /* the loader's */
    /* Finds attribute name; returns 0 and fills *out, or -1 when absent. */
    int (*find)(void *reader, const char *name, op_attr *out);
} op_parse_ctx;

typedef struct op_def op_def;
typedef ferry_status (*op_parse_fn)(const op_parse_ctx *c, graph_node *n);
typedef ferry_status (*op_infer_fn)(graph *g, graph_node *n);

struct op_def {
    const char *onnx; /* ONNX op_type in the default domain */
    op_kind op;
    int min_in, max_in; /* ONNX inputs accepted (max_in up to GRAPH_MAX_IO) */
    int n_out;          /* outputs the IR keeps; further ones load as unwritten */
    int max_out;
    int since, until;  /* opsets whose form of the op is implemented */
    op_parse_fn parse; /* attributes; NULL: none read */
    op_infer_fn infer; /* dtypes and shapes of the outputs; may evaluate shape math */
    unsigned flags;    /* OPF_* */
};

enum {
    OPF_VIEW = 1u << 0,     /* output is the input's bytes under another shape */
    OPF_FOLD = 1u << 1,     /* a node whose inputs are all constant may be evaluated at load */
    OPF_VARIADIC = 1u << 2, /* any number of inputs or outputs up to GRAPH_MAX_IO */
    OPF_INTERNAL = 1u << 3, /* made by the loader or a pass: no op_type finds it */
};

/* The row for an ONNX op_type (default domain), or NULL; never an
 * OPF_INTERNAL row, whose name a model could otherwise spell. */
const op_def *op_find(const char *onnx_name);
/* The row an op_kind loads from (the first, where several ONNX names map
 * to one kind). Never NULL for a valid kind. */
const op_def *op_def_of(op_kind op);
/* Name of an op_kind ("Gemm", "Conv"). */
const char *op_name(op_kind op);

/* ---- attribute helpers for parse functions (ops.c) */
ferry_status op_attr_int(const op_parse_ctx *c, const char *name, int64_t def, int64_t lo,
                         int64_t hi, int64_t *out);
ferry_status op_attr_float(const op_parse_ctx *c, const char *name, float def, float *out);
/* ints attribute into out[max]; *n = -1 when absent. */
ferry_status op_attr_ints(const op_parse_ctx *c, const char *name, int64_t *out, int max, int *n);
/* string attribute matched against choices[] (NULL-terminated); *out is the
 * index, def when absent. */
ferry_status op_attr_enum(const op_parse_ctx *c, const char *name, const char *const *choices,
                          int def, int *out);

/* ---- shape-rule helpers shared by shape.c, shape_nn.c and shape_data.c */
ferry_status node_fail(const graph_node *n, ferry_status st, const char *msg);
ferry_status node_failf(const graph_node *n, ferry_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void set_out(graph *g, int v, ferry_dtype dt, int ndim, const int64_t *dims);
/* "[N,3,224,224]", "[4N,16,64]". */
void fmt_shape(char *buf, size_t len, int ndim, const int64_t *dims);
/* One dim as fmt_shape writes it, without the brackets: "64", "4N". */
const char *dim_str(int64_t d, char *buf, size_t len);
int norm_axis(int64_t axis, int r, int inclusive_end, int64_t *out);
/* numpy broadcast of two shapes; symbolic dims broadcast with themselves or 1. */
ferry_status broadcast_dims(const graph_node *n, const graph_value *a, const graph_value *b,
                            int *ndim, int64_t *out);
int is_float_dtype(ferry_dtype dt);
int is_int_dtype(ferry_dtype dt);

/* v's data is known at load and holds no N: a constant, or shape math
 * (is_sym) whose every element is a plain number. */
int known_const(const graph_value *v);

/* A 1-D (or scalar) int tensor input known at load: constant, or symbolic
 * (see graph.h). *vals holds the constant parts, *ks the multiples of N
 * (NULL for a constant). FERRY_EUNSUPPORTED naming what when it is only
 * known at run time. */
ferry_status known_ints(const graph *g, const graph_node *n, int k, const char *what,
                        const int64_t **vals, const int64_t **ks, int64_t *count);
/* The same, insisting on no N: a plain constant list. */
ferry_status const_ints(const graph *g, const graph_node *n, int k, const char *what,
                        const int64_t **vals, int64_t *count);
/* A scalar float input known at load (Clip's min/max, Pad's value). */
ferry_status const_float(const graph *g, const graph_node *n, int k, const char *what, float *out);

/* v is shape math (is_sym) held as int64 data[i] + symk[i]*N: what set_sym
 * may copy. A known value of another dtype (a bool comparison, or anything
 * eval_known in shape.c evaluated) has is_sym set too, but its data is not
 * int64. */
int sym_i64(const graph_value *v);

/* Makes output 0 of n symbolic (is_sym) with count elements; vals and ks
 * are copied. An all-zero ks makes it a plain constant. */
ferry_status set_sym(graph *g, const graph_node *n, int64_t count, const int64_t *vals,
                     const int64_t *ks, int ndim, const int64_t *dims);

/* Shape rules (each op's row names its own). */
/* shape.c: the MLP-era ops */
ferry_status infer_gemm(graph *g, graph_node *n);
ferry_status infer_matmul(graph *g, graph_node *n);
ferry_status infer_binary(graph *g, graph_node *n); /* broadcast; bool out for compares */
ferry_status infer_same(graph *g, graph_node *n);   /* output = input 0 */
ferry_status infer_cast(graph *g, graph_node *n);
ferry_status infer_softmax(graph *g, graph_node *n);
ferry_status infer_layer_norm(graph *g, graph_node *n);
ferry_status infer_reduce(graph *g, graph_node *n);
ferry_status infer_flatten(graph *g, graph_node *n);
ferry_status infer_reshape(graph *g, graph_node *n);
/* shape_nn.c: convolutional and recurrent networks */
ferry_status infer_conv(graph *g, graph_node *n);
ferry_status infer_conv_transpose(graph *g, graph_node *n);
ferry_status infer_pool(graph *g, graph_node *n);
ferry_status infer_global_pool(graph *g, graph_node *n);
ferry_status infer_batch_norm(graph *g, graph_node *n);
ferry_status infer_instance_norm(graph *g, graph_node *n);
ferry_status infer_resize(graph *g, graph_node *n);
ferry_status infer_grid_sample(graph *g, graph_node *n);
ferry_status infer_pad(graph *g, graph_node *n);
ferry_status infer_clip(graph *g, graph_node *n);
ferry_status infer_prelu(graph *g, graph_node *n);
ferry_status infer_rnn(graph *g, graph_node *n);
ferry_status infer_embedding_bag(graph *g, graph_node *n);
/* fuse_attention.c: the node its pass makes */
ferry_status infer_attention(graph *g, graph_node *n);
/* shape_data.c: shapes, data movement, comparisons (with shape math) */
ferry_status infer_variadic(graph *g, graph_node *n); /* Min, Max */
ferry_status infer_not(graph *g, graph_node *n);
ferry_status infer_float_test(graph *g, graph_node *n); /* IsNaN, IsInf */
ferry_status infer_one_hot(graph *g, graph_node *n);
ferry_status infer_where(graph *g, graph_node *n);
ferry_status infer_arg(graph *g, graph_node *n);
ferry_status infer_cumsum(graph *g, graph_node *n);
ferry_status infer_topk(graph *g, graph_node *n);
ferry_status infer_shape_op(graph *g, graph_node *n);
ferry_status infer_squeeze(graph *g, graph_node *n);
ferry_status infer_unsqueeze(graph *g, graph_node *n);
ferry_status infer_concat(graph *g, graph_node *n);
ferry_status infer_split(graph *g, graph_node *n);
ferry_status infer_slice(graph *g, graph_node *n);
ferry_status infer_transpose(graph *g, graph_node *n);
ferry_status infer_gather(graph *g, graph_node *n);
ferry_status infer_gather_elements(graph *g, graph_node *n);
ferry_status infer_gather_nd(graph *g, graph_node *n);
ferry_status infer_scatter_nd(graph *g, graph_node *n);
ferry_status infer_scatter_elements(graph *g, graph_node *n);
/* einsum.c */
ferry_status infer_einsum(graph *g, graph_node *n);
ferry_status infer_expand(graph *g, graph_node *n);
ferry_status infer_tile(graph *g, graph_node *n);
ferry_status infer_constant_of_shape(graph *g, graph_node *n);
ferry_status infer_range(graph *g, graph_node *n);
ferry_status infer_eye_like(graph *g, graph_node *n);
ferry_status infer_trilu(graph *g, graph_node *n);
ferry_status infer_depth_to_space(graph *g, graph_node *n);

#endif
