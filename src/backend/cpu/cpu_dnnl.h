/*
 * cpu_dnnl.h - the CPU backend's convolution-family kernels through oneDNN
 * primitives: Conv and ConvTranspose with fused post-ops, MaxPool,
 * AveragePool and the global pools, BatchNormalization, and reorders
 * between the plain ONNX layout and oneDNN's channel-blocked one.
 * Private to src/backend/cpu.
 *
 * Tensors are dense row-major f32. At the boundary they are NCHW (2-D),
 * NCW (1-D, run as 2-D with H = 1) or NCDHW (3-D), the ONNX layout, unless
 * a *_run_layout call says CPU_LAYOUT_BLOCKED (see cpu_layout; the backend
 * blocks only 4-D tensors). 3-D convs take AUTO's REORDER unless they are
 * pointwise on 14x14 voxels or more, as 2-D ones; unmeasured in 3-D.
 *
 * Concurrency: an object is built once (create) and then run by any number
 * of threads at once, each with its own buffers. Each (batch size, threads,
 * layouts) gets one plan (the oneDNN primitives), made by the first run
 * that needs it; each concurrent run borrows an execution slot (stream,
 * memory objects, its own user-mode scratchpad, reorder temporaries) from
 * that plan's free list. A mutex guards only the lookup and the slot list,
 * never the execution. After the first run at a given size a run
 * allocates nothing itself (cpu_dnnl.c says what oneDNN does). Memory
 * grows with the sizes seen: a slot's temporaries hold x and y in the
 * primitive's layout (resnet18's conv1 at batch 32 plain: 19 + 103 MB),
 * so an engine should run a few bucketed batch sizes, not every n.
 *
 * Threads: oneDNN (Debian's build) threads with OpenMP; a run sets the
 * calling thread's OpenMP team size to the requested count (1 by default,
 * the engine runs one forward per core) and puts the caller's back.
 */
#ifndef FERRY_BACKEND_CPU_DNNL_H
#define FERRY_BACKEND_CPU_DNNL_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

/* Activation fused after a conv (or conv + residual). */
typedef enum cpu_act {
    CPU_ACT_NONE = 0,
    CPU_ACT_RELU,
    CPU_ACT_LEAKY_RELU, /* alpha: slope for x < 0 */
    CPU_ACT_CLIP,       /* alpha = min, beta = max (ReLU6: 0, 6) */
    CPU_ACT_SIGMOID,
    CPU_ACT_HARDSWISH,   /* x * clip(x/6 + 1/2, 0, 1), ONNX HardSwish */
    CPU_ACT_HARDSIGMOID, /* clip(alpha*x + beta, 0, 1) */
    CPU_ACT_GELU,        /* exact, erf form */
    CPU_ACT_GELU_TANH,
    CPU_ACT_SILU, /* x * sigmoid(x) */
} cpu_act;

/* Where a residual input joins (cpu_conv_params.residual). */
typedef enum cpu_residual {
    CPU_RESIDUAL_NONE = 0,
    CPU_RESIDUAL_BEFORE_ACT, /* y = act(conv(x) + b + r): ResNet's block end */
    CPU_RESIDUAL_AFTER_ACT,  /* y = act(conv(x) + b) + r */
} cpu_residual;

/* Activation layout of a *_run_layout call.
 * PLAIN: NCHW / NCW, the ONNX layout.
 * BLOCKED: oneDNN's nChw8c on AVX2 machines (nChw16c with AVX-512; see
 * cpu_dnnl_block()): [N][ceil(C/b)][H][W][b], channels past C zero. A
 * chain of convs and pools can pass tensors in this layout to each other
 * and reorder only at its ends (cpu_reorder). */
typedef enum cpu_layout {
    CPU_LAYOUT_PLAIN = 0,
    CPU_LAYOUT_BLOCKED,
} cpu_layout;

/* The channel block of CPU_LAYOUT_BLOCKED on this machine: 16 where oneDNN
 * uses AVX-512, else 8. */
int cpu_dnnl_block(void);

/* Floats a tensor of n x c x spatial (h*w, or l for 1-D) takes in layout:
 * n*c*spatial for PLAIN, n*ceil(c/b)*b*spatial for BLOCKED. */
int64_t cpu_layout_numel(cpu_layout layout, int64_t n, int64_t c, int64_t spatial);

/* ------------------------------------------------------------------ conv */

typedef enum cpu_autopad {
    CPU_AUTOPAD_NOTSET = 0, /* explicit pads */
    CPU_AUTOPAD_VALID,
    CPU_AUTOPAD_SAME_UPPER,
    CPU_AUTOPAD_SAME_LOWER,
} cpu_autopad;

/* How a conv runs on plain (NCHW) activations. DIRECT asks oneDNN for a
 * primitive on nchw itself (gemm:jit, im2col + sgemm); REORDER lets it
 * pick its layout (nChw8c, jit:avx2) and reorders x and y at the boundary.
 * AUTO, the default: DIRECT for 1x1 stride-1 unpadded convs of group 1 on
 * images of 14x14 and up, REORDER otherwise (measured, see cpu_conv.c). */
typedef enum cpu_plain_impl {
    CPU_PLAIN_AUTO = 0,
    CPU_PLAIN_DIRECT,
    CPU_PLAIN_REORDER,
} cpu_plain_impl;

typedef struct cpu_conv_params {
    int rank;             /* spatial rank: 1 (NCW), 2 (NCHW) or 3 (NCDHW) */
    int transposed;       /* 0: Conv, 1: ConvTranspose */
    int64_t c_in, c_out;  /* channels */
    int64_t group;        /* >= 1; c_in and c_out divisible by it */
    int64_t in[3];        /* input spatial dims (rank of them) */
    int64_t kernel[3];    /* kernel spatial dims */
    int64_t stride[3];    /* 0 means 1 */
    int64_t dilation[3];  /* 0 means 1 (ONNX: 1 = no dilation) */
    int64_t pad_begin[3]; /* explicit pads (resolve auto_pad first) */
    int64_t pad_end[3];
    int64_t output_padding[3]; /* ConvTranspose only */
    int64_t max_batch;         /* largest n a run may pass (>= 1) */
    cpu_act act;
    float alpha, beta; /* the activation's parameters (cpu_act) */
    cpu_residual residual;
    cpu_plain_impl plain_impl;
} cpu_conv_params;

typedef struct cpu_conv cpu_conv;

/* Writes explicit pads for ONNX auto_pad into pad_begin/pad_end[rank] of a
 * Conv (transposed 0) or ConvTranspose (1) with the given in, kernel,
 * stride, dilation (0 = 1) and, for ConvTranspose, output_padding. SAME_*
 * aim at out = ceil(in / stride) (Conv) or in * stride (ConvTranspose),
 * the odd pad going to the end (UPPER) or the beginning (LOWER); VALID is
 * no pad. NOTSET leaves the pads alone. FERRY_EINVAL for a bad mode. */
ferry_status cpu_conv_resolve_autopad(cpu_autopad mode, int transposed, int rank, const int64_t *in,
                                      const int64_t *kernel, const int64_t *stride,
                                      const int64_t *dilation, const int64_t *output_padding,
                                      int64_t *pad_begin, int64_t *pad_end);

/* The output spatial dims (rank of them) into out: ONNX's
 * floor((in + pads - ((k-1)*d+1)) / s) + 1 for Conv,
 * s*(in-1) + output_padding + (k-1)*d+1 - pads for ConvTranspose. */
void cpu_conv_out_dims(const cpu_conv *c, int64_t *out);

/* Builds a Conv (p->transposed 0) or ConvTranspose (1). W is ONNX's layout,
 * [c_out, c_in/group, k...] for Conv, [c_in, c_out/group, k...] for
 * ConvTranspose; B is [c_out] or NULL. Both are copied (reordered once into
 * the layout the primitive wants); the caller keeps its arrays. Returns
 * FERRY_EINVAL / FERRY_ESHAPE with a message for bad params, FERRY_ENOMEM,
 * FERRY_EUNSUPPORTED when oneDNN has no implementation. Any thread. */
ferry_status cpu_conv_create(const cpu_conv_params *p, const float *W, const float *B,
                             cpu_conv **out);

/* y = act(conv(x) + b [+ residual]) on n (1..max_batch) samples, plain
 * layout, this thread only. x is [n, c_in, in...], y and residual (needed
 * iff p->residual, may equal y) [n, c_out, out...]; y must not overlap x.
 * Thread-safe: any number of threads may run one object at once. Fails
 * with FERRY_EINVAL (n out of range, missing residual) or FERRY_EINTERNAL
 * / FERRY_ENOMEM on the first run at a new n. */
ferry_status cpu_conv_run(cpu_conv *c, int64_t n, const float *x, const float *residual, float *y);

/* cpu_conv_run with x in layout lin, y and residual in lout, on up to
 * `threads` threads of the backend's pool (cpu_parallel.h): a batch-1 run
 * as channel slices, a Winograd run (cpu_winograd.h) as tiles; anything
 * else runs on the calling thread (oneDNN with an OpenMP team of one:
 * cpu_conv.c says why). A BLOCKED input's pad channels must be zero
 * (oneDNN may rewrite them with zeros); a BLOCKED output's are written as
 * zeros. */
ferry_status cpu_conv_run_layout(cpu_conv *c, int64_t n, cpu_layout lin, cpu_layout lout,
                                 int threads, const float *x, const float *residual, float *y);

/* The oneDNN implementation a run with these arguments uses ("jit:avx2",
 * "gemm:jit", ...), building its plan if needed; for benchmarks and logs.
 * "?" on failure. */
const char *cpu_conv_impl(cpu_conv *c, int64_t n, cpu_layout lin, cpu_layout lout, int threads);

/* Frees c; NULL is fine. No run may be in flight. */
void cpu_conv_destroy(cpu_conv *c);

/* ----------------------------------------------------------------- pools */

typedef enum cpu_pool_kind {
    CPU_POOL_MAX = 0,
    CPU_POOL_AVG,
    CPU_POOL_GLOBAL_MAX, /* kernel = the input's spatial dims */
    CPU_POOL_GLOBAL_AVG,
} cpu_pool_kind;

typedef struct cpu_pool_params {
    cpu_pool_kind kind;
    int rank;      /* 1, 2 or 3 */
    int64_t c;     /* channels */
    int64_t in[3]; /* input spatial dims */
    int64_t kernel[3];
    int64_t stride[3];   /* 0 means 1 */
    int64_t dilation[3]; /* 0 means 1 (AveragePool has them since opset 19) */
    int64_t pad_begin[3], pad_end[3];
    int ceil_mode;         /* output dims rounded up (ONNX ceil_mode) */
    int count_include_pad; /* AveragePool: the divisor counts pads */
    int64_t max_batch;
} cpu_pool_params;

typedef struct cpu_pool cpu_pool;

/* Builds a pool. Output dims follow ONNX: floor or ceil of
 * (in + pads - ((k-1)*d+1)) / s + 1, where with ceil_mode a last window
 * that would start in the end pad is dropped (PyTorch, ONNX Runtime).
 * Global pools ignore kernel/stride/pads. FERRY_EINVAL / FERRY_ESHAPE with
 * a message for bad params. Any thread. */
ferry_status cpu_pool_create(const cpu_pool_params *p, cpu_pool **out);

/* The output spatial dims (rank of them) into out. */
void cpu_pool_out_dims(const cpu_pool *pl, int64_t *out);

/* y = pool(x) on n samples, plain layout, this thread; thread-safe as
 * cpu_conv_run. x is [n, c, in...], y [n, c, out...]. */
ferry_status cpu_pool_run(cpu_pool *pl, int64_t n, const float *x, float *y);

/* cpu_pool_run with x in layout lin and y in lout, up to `threads` OpenMP
 * threads. */
ferry_status cpu_pool_run_layout(cpu_pool *pl, int64_t n, cpu_layout lin, cpu_layout lout,
                                 int threads, const float *x, float *y);

/* Frees pl; NULL is fine. */
void cpu_pool_destroy(cpu_pool *pl);

/* --------------------------------------------------------------- reorder */

typedef struct cpu_reorder cpu_reorder;

/* Builds a layout change of [n, c, spatial] tensors from `from` to `to`
 * (spatial = h*w; 1-D and 2-D are the same here), n up to max_batch.
 * FERRY_EINVAL for bad dims. */
ferry_status cpu_reorder_create(cpu_layout from, cpu_layout to, int64_t c, int64_t spatial,
                                int64_t max_batch, cpu_reorder **out);

/* y = x in the new layout on n samples, this thread; thread-safe as
 * cpu_conv_run. */
ferry_status cpu_reorder_run(cpu_reorder *r, int64_t n, const float *x, float *y);

/* Frees r; NULL is fine. */
void cpu_reorder_destroy(cpu_reorder *r);

/* ------------------------------------------------------------- batchnorm */

/* Inference BatchNormalization of X [n, c, spatial] (rank >= 2: spatial is
 * the product of the dims after C, 1 for [N,C]) into Y (may equal X), plain
 * layout: y = scale * (x - mean) / sqrt(var + eps) + bias per channel.
 * Reentrant. */
void cpu_batchnorm(const float *X, float *Y, int64_t n, int64_t c, int64_t spatial,
                   const float *scale, const float *bias, const float *mean, const float *var,
                   float eps);

/* cpu_batchnorm with X and Y in layout; a BLOCKED tensor's pad channels
 * stay zero. */
void cpu_batchnorm_layout(cpu_layout layout, const float *X, float *Y, int64_t n, int64_t c,
                          int64_t spatial, const float *scale, const float *bias, const float *mean,
                          const float *var, float eps);

/* Folds a BatchNormalization that follows a Conv (transposed 0) or
 * ConvTranspose (1) into that conv's ONNX weights W (in place, laid out as
 * cpu_conv_create takes them) and bias: W' = W * s[o] and
 * B' = (B - mean) * s + bias with s = scale / sqrt(var + eps), per output
 * channel o. B may be NULL (0); B_out [c_out] receives B' (may equal B).
 * ksize is the product of the kernel dims. Computed in double. */
void cpu_bn_fold_into_conv(int transposed, int64_t c_in, int64_t c_out, int64_t group,
                           int64_t ksize, float *W, const float *B, float *B_out,
                           const float *scale, const float *bias, const float *mean,
                           const float *var, float eps);

#endif
