/*
 * cuda_internal.h - private structures of the CUDA backend, shared by its
 * files, one concern each:
 *   cuda_device.c  the backend table; errors, probing, device and pinned
 *                  memory, streams, events, CUDA graph capture
 *   cuda_model.c   a compiled model (ctx): support check, storage plan,
 *                  constants, per-node prepare, forward
 *   cuda_ops.c     the run table (cuda_ops.h): one row per operator
 *   cuda_gemm.c    cuBLASLt matmuls and their plan cache
 *   cuda_einsum.c  Einsum: transposes around one of those matmuls
 *   cuda_mlp.c     the fused whole-MLP kernel's setup
 *   cuda_conv.c    Conv, ConvTranspose through cuDNN (and patch matmuls);
 *                  the streams' cuDNN handles
 *   cuda_image.c   pooling, Pad, Resize rows
 *   cuda_layout.c  which activations stay channels-last (NHWC)
 * Nothing outside src/backend/cuda includes this.
 */
#ifndef FERRY_BACKEND_CUDA_INTERNAL_H
#define FERRY_BACKEND_CUDA_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "backend/profile.h"
#include "graph/graph.h"

/* Turns a CUDA runtime or cuBLASLt result into a ferry_status: FERRY_OK, or
 * FERRY_EDEVICE (FERRY_ENOMEM for out-of-memory) with the call's text, the
 * library's error string and file:line as this thread's message. One macro
 * for both libraries, dispatched on the result's type. */
ferry_status cuda_status_rt(cudaError_t e, const char *call, const char *file, int line);
ferry_status cuda_status_lt(cublasStatus_t e, const char *call, const char *file, int line);
#define CUDA_CHECK(call)                                                                           \
    _Generic((call), cudaError_t                                                                   \
             : cuda_status_rt, cublasStatus_t                                                      \
             : cuda_status_lt)((call), #call, __FILE__, __LINE__)

/* CUDA_TRY: check and jump to the function's `fail:` label with st set. */
#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        st = CUDA_CHECK(call);                                                                     \
        if (st != FERRY_OK)                                                                        \
            goto fail;                                                                             \
    } while (0)

/* cuBLASLt workspace of each stream: the size NVIDIA recommends for Hopper. */
#define CUDA_LT_WORKSPACE ((size_t)32 << 20)

/* Cached matmul shape for one batch size: the layouts and the algorithm the
 * heuristic chose. Immutable once n is set (readers take no lock). */
typedef struct gemm_entry {
    int64_t n;                             /* batch size; 0 = empty slot */
    cublasLtMatrixLayout_t la, lb, lc, ld; /* lc == ld unless C is a matrix */
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

/* Table slots per node: room for every batch size up to max_batch (at 75%
 * load) up to this many; beyond it a batch size not yet seen pays an
 * uncached heuristic lookup on each call. */
#define GEMM_CACHE_MAX 16384

/* One OP_GEMM or OP_MATMUL node compiled for cuBLASLt. In column-major
 * terms the row-major Y[M,N] = X[M,K] * W[K,N] is Y^T = W^T * X^T: cuBLASLt's
 * "A" is the weight side (ONNX B), its "B" is the activation side (ONNX A),
 * and D is Y^T with leading dimension N. */
typedef struct gemm_plan {
    int node;
    cublasLtMatmulDesc_t desc;
    cublasLtEpilogue_t epilogue;
    act_kind post_act; /* activation run as a kernel after the matmul */
    float post_alpha;
    float alpha, beta; /* beta applies to a C matrix only */
    int c_matrix;      /* cuBLASLt's C is a full [M,N] tensor: Gemm's input c_input */
    int c_input;       /* 2 (ONNX Gemm's C), or 3 (a residual fused by graph fuse.c) */
    void *bias;        /* device bias vector of N elements (beta folded in), or NULL */
    gemm_entry *cache; /* open-addressed by n, cap slots (a power of two) */
    int cap, n_cached;
    /* A Conv run as a matmul over patches (cuda_ops.c): per sample raw_rows
     * rows of raw_k, times weights [raw_n, raw_k]; 0 for Gemm and MatMul,
     * whose shapes come from the graph. */
    int64_t raw_rows, raw_k, raw_n;
} gemm_plan;

/* A live node: its run-table row and what its prepare built. */
typedef struct cuda_node {
    const cuda_op_impl *impl;
    void *state;
} cuda_node;

/* Shape math read at run time (graph.h's is_sym) that depends on N: its
 * constant parts and multiples of N on the device, written into its arena
 * region by a kernel at the start of each forward. */
typedef struct cuda_sym {
    int v;
    int64_t count;           /* elements */
    size_t off;              /* arena offset */
    const int64_t *base, *k; /* device, in the constant block */
} cuda_sym;

struct backend_ctx {
    const graph *g;
    backend_opts o;
    int device;
    int on_device; /* the device was checked and selected (ctx_destroy may select it) */
    char name[256];
    int sm_count;
    ferry_dtype cdt; /* compute dtype: F32 (fp32, tf32), F16, BF16 */
    size_t celem;    /* its size */

    graph_plan plan;
    int have_plan;
    int *root;           /* per value: the value owning its storage */
    unsigned char *nhwc; /* per root value: held channels-last (cuda_layout.c) */
    ferry_dtype *vdt;    /* per value: dtype on the device */
    void **cdev;         /* per value: device copy of a constant, else NULL */
    void *const_block;   /* one allocation holding every constant */
    size_t *in_scratch;  /* per graph input: arena offset of its converted copy, or SIZE_MAX */
    size_t *out_scratch; /* per graph output: likewise */
    size_t scratch_off;  /* arena offset of the nodes' shared scratch */
    size_t arena_total;

    cuda_node *nodes;  /* per graph node; impl NULL for dead nodes */
    int n_gemms;       /* nodes with a cuBLASLt plan: streams then need a workspace */
    int n_dnn;         /* nodes run through cuDNN: streams then need a handle */
    cudnnHandle_t dnn; /* for the convolutions' heuristics at prepare */
    cuda_sym *syms;
    int n_syms;
    cublasLtHandle_t lt; /* for heuristics (matmuls use the stream's own) */
    cublasLtMatmulPreference_t pref;
    pthread_mutex_t mu; /* guards the gemm caches */
    int have_mu;

    /* The fused whole-MLP kernel (cuda_mlp.c), for batches of 1..mlp_max
     * (0: the model is not a plain MLP, or the kernel is off). */
    kern_mlp mlp;
    int64_t mlp_max;
    int mlp_zero_copy;                    /* forward_host may read and write pinned host memory */
    void *mlp_owned[KERN_MLP_MAX_LAYERS]; /* transposed weight copies */
    int n_mlp_owned;
    backend_profile prof; /* FERRY_CUDA_PROFILE: GPU time per node (cuda_model.c) */
};

struct backend_stream {
    backend_ctx *c;
    cudaStream_t s;
    cublasLtHandle_t lt;
    void *ws;          /* CUDA_LT_WORKSPACE bytes of cuBLASLt workspace */
    cudnnHandle_t dnn; /* bound to s; NULL when the model runs nothing through cuDNN */
    void **vptr;       /* per value: device pointer during a forward */
    char *arena;       /* the arena of the forward in progress */
};

/* cuda_device.c */
/* cudaMalloc that names what it was for and the device's free memory when
 * it runs out. */
ferry_status cuda_dev_malloc(int dev, void **p, size_t bytes, const char *what);

/* cuda_model.c: the compiled model's slots of the backend table */
ferry_status cuda_ctx_create(const graph *g, const backend_opts *o, backend_ctx **out);
void cuda_ctx_destroy(backend_ctx *c);
const char *cuda_ctx_device_name(backend_ctx *c);
size_t cuda_arena_bytes(backend_ctx *c);
ferry_status cuda_forward(backend_stream *s, int64_t n, const void *const *in, void *const *out,
                          void *arena);
ferry_status cuda_forward_host(backend_stream *s, int64_t n, const void *const *in,
                               void *const *out, int *done);
/* Element i of host data of dtype dt (a float type), as fp32. */
float cuda_host_f32(ferry_dtype dt, const void *data, int64_t i);
/* Copies n fp32 values to dst on the device, converted to the compute dtype. */
ferry_status cuda_upload_f32(backend_ctx *c, void *dst, const float *src, int64_t n);

/* cuda_mlp.c */
#define CUDA_MLP_DEFAULT_MAX_BATCH 64
/* Sets up the fused MLP kernel when the model is a chain of dense layers
 * it can run (c->mlp_max > 0 then); otherwise, or if setting it up fails,
 * leaves it off. Needs the gemm plans. Returns FERRY_OK. */
ferry_status cuda_mlp_prepare(backend_ctx *c);
void cuda_mlp_release(backend_ctx *c);
/* The whole forward as one kernel: x and y in the io dtype, on the device
 * or pinned host memory (device pointers). 1 <= n <= c->mlp_max. */
ferry_status cuda_mlp_run(backend_stream *s, int64_t n, const void *x, void *y);

/* cuda_conv.c: the cuDNN handle of stream s (bound to it), and its release
 * (accepts a stream without one); the ctx's own handle's release. */
ferry_status cuda_dnn_stream_init(backend_stream *s);
void cuda_dnn_stream_release(backend_stream *s);
void cuda_dnn_ctx_release(backend_ctx *c);

/* cuda_layout.c: plans c->nhwc (after check_supported, before prepare). */
ferry_status cuda_layout_plan(backend_ctx *c);
/* Is value v (through its root) held channels-last? */
int cuda_value_nhwc(const backend_ctx *c, int v);
/* The physical dims of a tensor of logical dims d (nd of them, <= 4) under
 * a channels-last node: padded on the left to 4, then (N, H, W, C). */
void cuda_phys_dims(int nhwc, int *nd, int64_t *d);
/* cuda_conv.c: may Conv node nd run channels-last (the cuDNN path, 2-D)? */
int cuda_conv_nhwc_capable(const graph *g, const graph_node *nd);

/* cuda_gemm.c */
int cuda_is_float(ferry_dtype dt);
cudaDataType_t cuda_data_type(ferry_dtype dt);
/* Checks node ni can run through cuBLASLt, builds its descriptor and bias.
 * FERRY_EUNSUPPORTED naming the node for a shape or attribute it cannot do. */
ferry_status cuda_gemm_prepare(backend_ctx *c, int ni, gemm_plan *gp);
void cuda_gemm_release(gemm_plan *gp);
/* The same for a Conv node ni whose every output pixel is one
 * non-overlapping patch: a matmul of rows_per_sample x k patches per sample
 * by its weights [nn, k], with its bias and fused activation. */
ferry_status cuda_gemm_prepare_patch(backend_ctx *c, int ni, gemm_plan *gp, int64_t rows_per_sample,
                                     int64_t k, int64_t nn);
/* Runs the matmul (and its post activation) of gp for batch n on stream s. */
ferry_status cuda_gemm_run(backend_stream *s, gemm_plan *gp, int64_t n);
/* The same on explicit device buffers (a patch plan's x, w and y). */
ferry_status cuda_gemm_run_ptrs(backend_stream *s, gemm_plan *gp, int64_t n, const void *x,
                                const void *w, void *y);

#endif
