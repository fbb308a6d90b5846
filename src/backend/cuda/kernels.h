/*
 * kernels.h - launchers of the CUDA backend's own kernels (the .cu files),
 * callable from C. Each launches asynchronously on the given stream and
 * returns the launch's cudaError_t; tensors are dense row-major, in the
 * dtype passed (float kernels take F32, F16 or BF16 and accumulate in fp32).
 */
#ifndef FERRY_BACKEND_CUDA_KERNELS_H
#define FERRY_BACKEND_CUDA_KERNELS_H

#include <stdint.h>

#include <cuda_runtime.h>

#include "ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KERN_MAX_DIMS 8

typedef enum kern_unary_op {
    KU_RELU,
    KU_LEAKY_RELU, /* alpha */
    KU_SIGMOID,
    KU_TANH,
    KU_GELU, /* erf form */
    KU_GELU_TANH,
    KU_ERF,
    KU_SQRT,
} kern_unary_op;

typedef enum kern_binary_op { KB_ADD, KB_SUB, KB_MUL, KB_DIV, KB_POW } kern_binary_op;

/* Broadcast of two inputs to one output: output dims and, per dim, each
 * input's element stride (0 where that input is broadcast). */
typedef struct kern_bcast {
    int ndim;
    int64_t n;      /* output elements */
    int64_t na, nb; /* input elements */
    int64_t dims[KERN_MAX_DIMS];
    int64_t sa[KERN_MAX_DIMS], sb[KERN_MAX_DIMS];
} kern_bcast;

/* Reduction: per output element, the kept dims (with input strides) and the
 * reduced dims (with input strides). */
typedef struct kern_reduce {
    int nk, nr;
    int64_t n_out, n_red;
    int64_t kdims[KERN_MAX_DIMS], kstride[KERN_MAX_DIMS];
    int64_t rdims[KERN_MAX_DIMS], rstride[KERN_MAX_DIMS];
} kern_reduce;

/* y = x converted from sdt to ddt (float types round to nearest even; float
 * to integer truncates; to bool is x != 0). Also ONNX Cast. */
cudaError_t kern_cast(const void *x, ferry_dtype sdt, void *y, ferry_dtype ddt, int64_t n,
                      cudaStream_t s);
/* y = op(x), in place allowed. */
cudaError_t kern_unary(kern_unary_op op, float alpha, const void *x, void *y, int64_t n,
                       ferry_dtype dt, cudaStream_t s);
/* y = a op b with numpy broadcasting described by bc. */
cudaError_t kern_binary(kern_binary_op op, const void *a, const void *b, void *y,
                        const kern_bcast *bc, ferry_dtype dt, cudaStream_t s);
/* Softmax (or log-softmax) over the middle axis of [outer, d, inner]. */
cudaError_t kern_softmax(const void *x, void *y, int64_t outer, int64_t d, int64_t inner, int log,
                         ferry_dtype dt, cudaStream_t s);
/* y = (x - mean) / sqrt(var + eps) * scale + bias over rows of d; bias may be NULL. */
cudaError_t kern_layernorm(const void *x, const void *scale, const void *bias, void *y,
                           int64_t rows, int64_t d, float eps, ferry_dtype dt, cudaStream_t s);
/* Mean over the reduced dims of rd. */
cudaError_t kern_reduce_mean(const void *x, void *y, const kern_reduce *rd, ferry_dtype dt,
                             cudaStream_t s);

/* A chain of dense layers run as one kernel (kernels_mlp.cu): layer l maps
 * dims[l] features to dims[l+1] with weights w[l] ([N][K] row-major, the
 * compute dtype), an optional bias (N elements, compute dtype) and an
 * activation act[l] (a kern_unary_op, or KERN_MLP_NO_ACT). */
#define KERN_MLP_MAX_LAYERS 8
#define KERN_MLP_CLUSTER 8 /* blocks per cluster: each owns 1/8 of every layer's columns */
#define KERN_MLP_ROWS 16   /* rows per cluster */
#define KERN_MLP_NO_ACT (-1)
typedef struct kern_mlp {
    int n_layers;
    int dims[KERN_MLP_MAX_LAYERS + 1];
    const void *w[KERN_MLP_MAX_LAYERS];
    const void *bias[KERN_MLP_MAX_LAYERS];
    int act[KERN_MLP_MAX_LAYERS];
    float act_alpha[KERN_MLP_MAX_LAYERS];
} kern_mlp;
/* Shared memory per block the fused kernel needs for m; 0 when it cannot
 * run m (too many layers, or a width that is not a multiple of 128). */
size_t kern_mlp_smem(const kern_mlp *m);
/* Once per model before kern_mlp_run: raises the kernel's shared memory limit. */
cudaError_t kern_mlp_prepare(const kern_mlp *m, ferry_dtype cdt);
/* y[n, dims[L]] = mlp(x[n, dims[0]]); cdt is F16 or BF16; x and y are F32,
 * F16 or BF16 and may be pinned host memory (their device pointers). */
cudaError_t kern_mlp_run(const kern_mlp *m, ferry_dtype cdt, const void *x, ferry_dtype xdt,
                         void *y, ferry_dtype ydt, int64_t n, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
