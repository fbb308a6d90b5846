/*
 * cuda_ops.h - the CUDA backend's run table, mirroring the CPU's
 * (src/backend/cpu/cpu_ops.h): for each op_kind it runs, a supports check
 * (may this node run here: dtypes, attributes, shapes), a prepare (builds
 * what runs reuse: a cuBLASLt plan, folded BatchNorm constants), a run
 * (issues the node's kernels on a stream for a batch of n) and a destroy.
 * An op without a row is not supported, and ctx_create names every such
 * operator of a model at once. Private to src/backend/cuda.
 *
 * Storage: floating tensors are held in the compute dtype (f32 for fp32 and
 * tf32, f16, bf16), integer tensors in their own dtype, bool as one byte.
 */
#ifndef FERRY_BACKEND_CUDA_OPS_H
#define FERRY_BACKEND_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "graph/graph.h"

typedef struct backend_ctx backend_ctx;
typedef struct backend_stream backend_stream;

/* What supports and prepare see. cin[k] is input k's host data when it is
 * known at load (a constant), else NULL. */
typedef struct cuda_prep {
    backend_ctx *c;
    const graph *g;
    const graph_node *nd;
    int ni; /* node index */
    int64_t max_batch;
    ferry_dtype cdt; /* compute dtype */
    size_t scratch;  /* prepare's out: bytes of arena scratch one run needs at max_batch */
} cuda_prep;

/* One run of a node on a batch of n, on stream s. */
typedef struct cuda_call {
    backend_stream *s;
    backend_ctx *c;
    const graph *g;
    const graph_node *nd;
    void *state;
    int64_t n;
    cudaStream_t stream;
    ferry_dtype cdt;
    const void *in[GRAPH_MAX_IO]; /* device pointers; NULL for an absent input */
    void *out[GRAPH_MAX_IO];      /* NULL for an output nothing reads */
    void *scratch;                /* cuda_prep.scratch bytes of the caller's arena, 256-aligned */
} cuda_call;

typedef struct cuda_op_impl {
    /* FERRY_EUNSUPPORTED with the node named and why; NULL: always runs. */
    ferry_status (*supports)(const cuda_prep *p);
    ferry_status (*prepare)(cuda_prep *p, void **state); /* NULL: no state */
    ferry_status (*run)(const cuda_call *c);
    void (*destroy)(void *state); /* NULL: state is NULL or plain malloc'd */
} cuda_op_impl;

/* Gemm's and MatMul's prepare (cuda_ops.c): a gemm_plan (cuda_gemm.c) as
 * the node's state; Einsum's (cuda_einsum.c) after its scratch. */
ferry_status cuda_gemm_node_prepare(cuda_prep *p, void **state);

/* Rows defined in their own files: LSTM, GRU and RNN (cuda_rnn.c). */
ferry_status cuda_rnn_supports(const cuda_prep *p);
ferry_status cuda_rnn_prepare(cuda_prep *p, void **state);
ferry_status cuda_rnn_run(const cuda_call *c);
void cuda_rnn_destroy(void *state);
/* EmbeddingBag, ArgMax and ArgMin (cuda_index.c). */
ferry_status cuda_embedding_bag_supports(const cuda_prep *p);
ferry_status cuda_embedding_bag_run(const cuda_call *c);
ferry_status cuda_arg_supports(const cuda_prep *p);
ferry_status cuda_arg_run(const cuda_call *c);
/* GatherElements and ScatterElements (cuda_index.c). */
ferry_status cuda_elements_supports(const cuda_prep *p);
ferry_status cuda_gather_elements_run(const cuda_call *c);
ferry_status cuda_scatter_elements_run(const cuda_call *c);
/* TopK (cuda_index.c, kernels in kernels_topk.cu). */
ferry_status cuda_topk_supports(const cuda_prep *p);
ferry_status cuda_topk_run(const cuda_call *c);

/* The row for op, or NULL when the CUDA backend does not run it. */
const cuda_op_impl *cuda_op_get(op_kind op);

/* Helpers the files of rows share (cuda_ops.c). */
/* FERRY_EUNSUPPORTED: "node 'name' (Op): <why> on CUDA". */
ferry_status cuda_unsupported(const graph_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* supports check of operators that run on float tensors only. */
ferry_status cuda_supports_float(const cuda_prep *p);
/* A launch's result as a ferry_status naming the call, its file:line and
 * the node (CUDA_CHECK's message with the node in front). */
ferry_status cuda_launch(const cuda_call *c, cudaError_t e, const char *what, const char *file,
                         int line);
#define CUDA_LAUNCH(c, call) cuda_launch((c), (call), #call, __FILE__, __LINE__)
/* y (dense, row-major over dims d) = x read with element strides sx. */
ferry_status cuda_copy_dense(const cuda_call *c, const void *x, void *y, int ndim, const int64_t *d,
                             const int64_t *sx, size_t esz);

extern const cuda_op_impl cuda_conv_row;        /* Conv, ConvTranspose (cuda_conv.c) */
extern const cuda_op_impl cuda_pool_row;        /* MaxPool, AveragePool (cuda_image.c) */
extern const cuda_op_impl cuda_global_pool_row; /* GlobalAveragePool, GlobalMaxPool */
extern const cuda_op_impl cuda_pad_row;
extern const cuda_op_impl cuda_resize_row;
extern const cuda_op_impl cuda_act_row;       /* Clip, HardSigmoid, HardSwish */
extern const cuda_op_impl cuda_attention_row; /* fused attention (cuda_attention.c) */
extern const cuda_op_impl cuda_grid_sample_row;
extern const cuda_op_impl cuda_depth_to_space_row;
extern const cuda_op_impl cuda_einsum_row; /* cuda_einsum.c */

/* Storage dtype on the device of a graph dtype under compute dtype cdt. */
static inline ferry_dtype cuda_sdt(ferry_dtype dt, ferry_dtype cdt)
{
    return (dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64) ? cdt : dt;
}

#endif
