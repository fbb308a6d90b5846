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
    /* Not used by the fused MLP kernel (storage.cuh's unary() stops above):
     * kernels_elementwise.cu's own switch. */
    KU_NEG,
    KU_EXP,
    KU_LOG,
    KU_ABS,
    KU_RECIPROCAL,
    KU_FLOOR,
    KU_CEIL,
    KU_SIN,
    KU_COS,
    KU_SOFTPLUS,
    KU_SIGN,
    KU_ROUND, /* half to even */
    /* With parameters a (alpha) and b (beta), as graph.h's nodes hold them: */
    KU_ELU,              /* x > 0 ? x : a (e^x - 1) */
    KU_SELU,             /* b (x > 0 ? x : a (e^x - 1)); b = gamma */
    KU_CELU,             /* x > 0 ? x : a (e^(x/a) - 1) */
    KU_THRESHOLDED_RELU, /* x > a ? x : 0 */
    KU_SOFTSIGN,         /* x / (1 + |x|) */
    KU_MISH,             /* x tanh(softplus(x)) */
    KU_SHRINK,           /* x < -a ? x + b : x > a ? x - b : 0; a = lambd, b = bias */
} kern_unary_op;

typedef enum kern_binary_op {
    KB_ADD,
    KB_SUB,
    KB_MUL,
    KB_DIV,
    KB_POW,
    KB_PRELU, /* a >= 0 ? a : a * b (b the slope) */
    /* comparisons and logic: bool (one byte) out */
    KB_EQ,
    KB_LT,
    KB_LE,
    KB_GT,
    KB_GE,
    KB_AND,
    KB_OR,
    KB_XOR,
    /* integer only */
    KB_MOD,  /* sign of the divisor, as Python (ONNX Mod fmod=0) */
    KB_FMOD, /* sign of the dividend, as C */
    /* integer and float; on floats a NaN in either input wins, and of two
     * equal values (-0 and +0) the second is kept, as the CPU backend */
    KB_MIN,
    KB_MAX,
} kern_binary_op;

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

/* A strided copy: for every index c of dims (row-major over ndim dims, n
 * elements), y[sum c[d]*sy[d]] = x[sum c[d]*sx[d]]. Transpose, Slice,
 * Expand, Concat and Split are each one or a few of these. */
typedef struct kern_strided {
    int ndim;
    int64_t n;
    int64_t dims[KERN_MAX_DIMS];
    int64_t sx[KERN_MAX_DIMS], sy[KERN_MAX_DIMS];
} kern_strided;

/* Broadcast of three inputs to one output (Where): per input, element
 * strides per output dim, 0 where it is broadcast. */
typedef struct kern_bcast3 {
    int ndim;
    int64_t n;
    int64_t dims[KERN_MAX_DIMS];
    int64_t s[3][KERN_MAX_DIMS];
} kern_bcast3;

typedef enum kern_reduce_op {
    KR_SUM,
    KR_MEAN,
    KR_MAX,
    KR_MIN,
    KR_PROD,
    KR_SUM_SQUARE,
    KR_L2,
    KR_LOG_SUM_EXP,
    KR_L1,
    KR_LOG_SUM,
} kern_reduce_op;

/* y = x converted from sdt to ddt (float types round to nearest even; float
 * to integer truncates; to bool is x != 0). Also ONNX Cast. */
cudaError_t kern_cast(const void *x, ferry_dtype sdt, void *y, ferry_dtype ddt, int64_t n,
                      cudaStream_t s);
/* y = op(x) with the op's parameters alpha and beta (unused ones ignored),
 * in place allowed. */
cudaError_t kern_unary(kern_unary_op op, float alpha, float beta, const void *x, void *y, int64_t n,
                       ferry_dtype dt, cudaStream_t s);
/* y = a op b with numpy broadcasting described by bc; y may be a. */
cudaError_t kern_binary(kern_binary_op op, const void *a, const void *b, void *y,
                        const kern_bcast *bc, ferry_dtype dt, cudaStream_t s);
/* y[i] = x[i] * a[c] + b[c] with c = (i / inner) % ch (BatchNormalization
 * folded to a per-channel affine map). */
cudaError_t kern_channel_affine(const void *x, const void *a, const void *b, void *y, int64_t n,
                                int64_t ch, int64_t inner, ferry_dtype dt, cudaStream_t s);
/* Softmax (or log-softmax) over the middle axis of [outer, d, inner]. */
cudaError_t kern_softmax(const void *x, void *y, int64_t outer, int64_t d, int64_t inner, int log,
                         ferry_dtype dt, cudaStream_t s);
/* The fused attention softmax (graph fuse.c): rows of d, softmax of
 * x * scale + mask, the mask row of row o at sum (o's index in dims[k]) *
 * mstride[k] over the nd leading dims (0 stride: broadcast); mask NULL:
 * none. */
typedef struct kern_softmax_fused {
    int on, nd;
    float scale;
    const void *mask;
    int64_t dims[KERN_MAX_DIMS], mstride[KERN_MAX_DIMS];
} kern_softmax_fused;
cudaError_t kern_softmax_fused_rows(const void *x, void *y, int64_t rows, int64_t d,
                                    const kern_softmax_fused *f, ferry_dtype dt, cudaStream_t s);
/* y = (x - mean) / sqrt(var + eps) * scale + bias over rows of d; bias may be NULL. */
cudaError_t kern_layernorm(const void *x, const void *scale, const void *bias, void *y,
                           int64_t rows, int64_t d, float eps, ferry_dtype dt, cudaStream_t s);
/* InstanceNormalization: rows = samples * channels rows of d, each
 * normalized, then y = y * scale[c] + bias[c], c = row % channels. */
cudaError_t kern_instancenorm(const void *x, const void *scale, const void *bias, void *y,
                              int64_t rows, int64_t d, int64_t channels, float eps, ferry_dtype dt,
                              cudaStream_t s);
/* CumSum along the middle axis of [outer, L, inner]: y[o, t, c] = sum of
 * x[o, j, c] over j <= t (j < t exclusive; j >= t, j > t reverse). Floats
 * accumulate in fp32; I32 and I64 wrap. */
cudaError_t kern_cumsum(const void *x, void *y, int64_t outer, int64_t L, int64_t inner,
                        int exclusive, int reverse, ferry_dtype dt, cudaStream_t s);
/* Mean over the reduced dims of rd. */
cudaError_t kern_reduce_mean(const void *x, void *y, const kern_reduce *rd, ferry_dtype dt,
                             cudaStream_t s);
/* op over the reduced dims of rd, float dtypes (accumulated in fp32). */
cudaError_t kern_reduce_any(kern_reduce_op op, const void *x, void *y, const kern_reduce *rd,
                            ferry_dtype dt, cudaStream_t s);
/* KR_SUM, KR_MAX, KR_MIN, KR_PROD, KR_L1 or KR_SUM_SQUARE over the reduced
 * dims of rd, dt I32 or I64: accumulated in int64 with wrapping arithmetic
 * and stored truncated to dt, as the CPU backend (cpu_reduce.c). An empty
 * reduction gives 0, 1 (PROD), or dt's minimum (MAX) or maximum (MIN). */
cudaError_t kern_reduce_int(kern_reduce_op op, const void *x, void *y, const kern_reduce *rd,
                            ferry_dtype dt, cudaStream_t s);

/* ---- kernels_data.cu: data movement, integer and comparison ops */
/* The strided copy above, for elements of esz bytes (1, 2, 4 or 8). */
cudaError_t kern_copy_strided(const void *x, void *y, const kern_strided *d, size_t esz,
                              cudaStream_t s);
/* Gather along an axis: x is [outer, axis_len, inner], idx holds n_idx
 * indices (I32 or I64; negative ones count from the end), y is [outer,
 * n_idx, inner]. An index out of range yields zeros (a device kernel cannot
 * report it). block > 0: a gather along the batch (graph.h's OP_GATHER
 * mode), where index e belongs to sample e / per_sample and must lie in
 * that sample's rows [sample*block, (sample+1)*block); others yield zeros. */
cudaError_t kern_gather(const void *x, const void *idx, ferry_dtype idt, void *y, int64_t outer,
                        int64_t axis_len, int64_t n_idx, int64_t inner, int64_t per_sample,
                        int64_t block, size_t esz, cudaStream_t s);
/* ScatterND without reduction: y = x (copied unless y == x), then for each
 * of n_tuples index tuples of sc->k components (idt int32/int64, negatives
 * from the end) the slice of sc->slice elements at sum idx*stride gets the
 * tuple's slice of u. A tuple out of range, or (block > 0) outside rows
 * [s*block, (s+1)*block) of dim 0 for its sample s = t / per_sample,
 * writes nothing: a device kernel cannot fail the node (the CPU backend
 * names the index). Repeated tuples: one of their writes wins. */
typedef struct kern_scatter {
    int k;
    int64_t n_tuples, slice, total; /* total: x's elements */
    int64_t dims[KERN_MAX_DIMS], stride[KERN_MAX_DIMS];
    int64_t block, per_sample;
    /* GatherND's batch_dims: tuple t reads batch element t / bd_tuples,
     * bd_stride elements of x apart (0: no batch_dims) */
    int64_t bd_tuples, bd_stride;
} kern_scatter;
cudaError_t kern_scatter_nd(const void *x, const void *idx, ferry_dtype idt, const void *u, void *y,
                            const kern_scatter *sc, size_t esz, cudaStream_t s);
/* GatherND: y[t, e] = x at tuple t's k components (dims/stride: the
 * addressed dims), element e of its slice; an index out of range (or, with
 * block, outside its sample's rows) reads zero. */
cudaError_t kern_gather_nd(const void *x, const void *idx, ferry_dtype idt, void *y,
                           const kern_scatter *sc, size_t esz, cudaStream_t s);
/* y = cond ? a : b, broadcast as bc (cond is bool, a and b of esz bytes). */
cudaError_t kern_where(const void *cond, const void *a, const void *b, void *y,
                       const kern_bcast3 *bc, size_t esz, cudaStream_t s);
/* Comparisons and logic (KB_EQ .. KB_XOR) of two inputs of dtype dt (any
 * float storage dtype, I32, I64, bool) into bool y. */
cudaError_t kern_compare(kern_binary_op op, const void *a, const void *b, void *y,
                         const kern_bcast *bc, ferry_dtype dt, cudaStream_t s);
/* Integer arithmetic (KB_ADD .. KB_DIV, KB_POW, KB_MOD, KB_FMOD, KB_MIN,
 * KB_MAX) on I32 or I64; Div truncates toward zero, as ONNX. y may be a. */
cudaError_t kern_binary_int(kern_binary_op op, const void *a, const void *b, void *y,
                            const kern_bcast *bc, ferry_dtype dt, cudaStream_t s);
/* Integer unary ops (KU_NEG, KU_ABS, KU_SIGN; the others copy) on I32/I64. */
cudaError_t kern_unary_int(kern_unary_op op, const void *x, void *y, int64_t n, ferry_dtype dt,
                           cudaStream_t s);
/* y = !x on bool. */
cudaError_t kern_not(const void *x, void *y, int64_t n, cudaStream_t s);
/* n copies of the esz-byte value (a kernel argument) into y. */
cudaError_t kern_fill(void *y, int64_t n, uint64_t value, size_t esz, cudaStream_t s);
/* y[i] = base[i] + k[i] * batch (shape math at batch size batch, graph.h's
 * is_sym): a kernel rather than a copy from the host, so that a captured
 * CUDA graph holds no host pointer and replays it for its own batch. */
cudaError_t kern_sym_i64(const int64_t *base, const int64_t *k, int64_t *y, int64_t count,
                         int64_t batch, cudaStream_t s);
/* Range: y[i] = start + i * delta, dt F32 (compute dtype given) or I64/I32;
 * start and delta are device scalars of that dtype. */
cudaError_t kern_range(const void *start, const void *delta, void *y, int64_t n, ferry_dtype dt,
                       cudaStream_t s);
/* EyeLike: y [rows, cols] all zeros but y[i, i + k] = one, where one is
 * the esz-byte pattern of 1 in the output's storage dtype. */
cudaError_t kern_eye(void *y, int64_t rows, int64_t cols, int64_t k, uint64_t one, size_t esz,
                     cudaStream_t s);
/* GatherElements and ScatterElements: for every element i of the indices
 * (dims, ndim of them, n in all), the element of x (element strides xs)
 * at i's coordinates with the one on axis replaced by idx[i] (idt I32 or
 * I64; negatives count from axis_len). An index out of [-axis_len,
 * axis_len) gathers zero and scatters nothing: a device kernel cannot fail
 * the node (the CPU backend names it). */
typedef struct kern_elements {
    int ndim, axis;
    int64_t n, axis_len;
    int64_t dims[KERN_MAX_DIMS], xs[KERN_MAX_DIMS];
} kern_elements;
/* y[i] = x[element of idx[i]] (y has the indices' shape). */
cudaError_t kern_gather_elements(const void *x, const void *idx, ferry_dtype idt, void *y,
                                 const kern_elements *d, size_t esz, cudaStream_t s);
/* y = x (copied unless y == x; x_total elements), then y[element of
 * idx[i]] = u[i] (reduction 0), or combined with it by graph.h's
 * SCATTER_ADD, SCATTER_MUL, SCATTER_MAX, SCATTER_MIN in dtype dt (any
 * float storage dtype, I32, I64; without a reduction any dtype) through
 * atomics, so repeated indices all count. */
cudaError_t kern_scatter_elements(const void *x, const void *idx, ferry_dtype idt, const void *u,
                                  void *y, const kern_elements *d, int64_t x_total, int reduction,
                                  ferry_dtype dt, cudaStream_t s);
/* IsNaN (nan) or IsInf (!nan: -inf counts when neg, +inf when pos) of x
 * in float storage dtype dt (F32, F16, BF16) into bool y. */
cudaError_t kern_float_test(const void *x, void *y, int64_t n, int nan, int neg, int pos,
                            ferry_dtype dt, cudaStream_t s);
/* OneHot: y [outer, depth, inner] of values[0] (off) and values[1] (on),
 * elements of esz bytes; on where idx [outer, inner] (idt I32, I64 or a
 * float storage dtype, truncated toward zero; negative ones wrap by
 * depth once) equals the depth index. Indices out of range give off. */
cudaError_t kern_one_hot(const void *idx, ferry_dtype idt, const void *values, void *y,
                         int64_t outer, int64_t depth, int64_t inner, size_t esz, cudaStream_t s);
/* Trilu over the last two dims [rows, cols] of batch matrices: keeps
 * j - i >= k (upper) or j - i <= k (lower), zeroes the rest. */
cudaError_t kern_trilu(const void *x, void *y, int64_t batch, int64_t rows, int64_t cols, int64_t k,
                       int upper, size_t esz, cudaStream_t s);

/* ---- kernels_image.cu: around cuDNN in the convolutional networks */
/* The activations fused into a Conv (graph.h's act_kind, in its order:
 * cuda_conv.c checks that they agree). */
enum {
    KA_NONE = 0,
    KA_RELU,
    KA_GELU,
    KA_GELU_TANH,
    KA_LEAKY_RELU, /* p = slope */
    KA_SIGMOID,
    KA_TANH,
    KA_CLIP, /* p = min, q = max */
    KA_HARD_SWISH,
    KA_HARD_SIGMOID, /* p = alpha, q = beta */
    KA_SILU,
};
/* y = act(x + bias[(i / inner) % ch] + r[i]); bias and r may be NULL, y may
 * be x. A convolution's epilogue, and Clip, HardSigmoid, HardSwish alone. */
cudaError_t kern_bias_act(const void *x, const void *bias, const void *r, void *y, int64_t n,
                          int64_t ch, int64_t inner, int act, float p, float q, ferry_dtype dt,
                          cudaStream_t s);

/* A depthwise 2-D convolution (one input and one output channel a group)
 * of channels-last tensors [N, H, W, C] with weights [C, kh, kw], then
 * + bias[c] + r (either may be NULL) and the activation act (KA_*, p and
 * q its parameters, as kern_bias_act). 32-bit indices: the caller keeps
 * N*H*W*C and N*OH*OW*C below 2^30. */
typedef struct kern_dwconv {
    int h, w, oh, ow, ch;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int act;
    float p, q;
} kern_dwconv;
cudaError_t kern_dwconv_run(const void *x, const void *w, const void *bias, const void *r, void *y,
                            const kern_dwconv *d, int64_t n, ferry_dtype dt, cudaStream_t s);

/* MaxPool / AveragePool over planes [N*C] of NCHW tensors (or of
 * channels-last ones, nhwc, with ch channels), the spatial dims padded on
 * the left with 1s to three (kernel 1, stride 1, pads 0). */
typedef struct kern_pool {
    int64_t in[3], out[3], kernel[3], stride[3], dil[3], pad[3], pad_end[3];
    int is_max, count_include_pad; /* average: divide by taps in the padded input */
    int nhwc;
    int64_t ch;
} kern_pool;
cudaError_t kern_pool_run(const void *x, void *y, const kern_pool *d, int64_t planes,
                          ferry_dtype dt, cudaStream_t s);

enum { KERN_PAD_CONSTANT = 0, KERN_PAD_REFLECT, KERN_PAD_EDGE, KERN_PAD_WRAP }; /* graph.h's */
/* Pad of a dense tensor: out dims, in dims and strides, pads at the start
 * (negative: a crop). */
typedef struct kern_pad {
    int ndim, mode;
    int64_t n; /* output elements */
    int64_t out[KERN_MAX_DIMS], in[KERN_MAX_DIMS], xs[KERN_MAX_DIMS], begin[KERN_MAX_DIMS];
} kern_pad;
cudaError_t kern_pad_run(const void *x, void *y, const kern_pad *d, float value, ferry_dtype dt,
                         cudaStream_t s);

/* graph.h's Resize coordinate transforms and nearest modes, in its order. */
enum {
    KERN_COORD_HALF_PIXEL = 0,
    KERN_COORD_PYTORCH_HALF_PIXEL,
    KERN_COORD_ALIGN_CORNERS,
    KERN_COORD_ASYMMETRIC,
    KERN_COORD_HALF_PIXEL_SYMMETRIC,
};
enum {
    KERN_NEAREST_ROUND_PREFER_FLOOR = 0,
    KERN_NEAREST_ROUND_PREFER_CEIL,
    KERN_NEAREST_FLOOR,
    KERN_NEAREST_CEIL,
};
/* Resize, nearest or (multi)linear over the dims marked resized; scale[k]
 * is output/input (the exact ratio where the attribute rounds it). */
typedef struct kern_resize {
    int ndim, linear, coord, nearest;
    int64_t n;
    int64_t out[KERN_MAX_DIMS], in[KERN_MAX_DIMS], xs[KERN_MAX_DIMS];
    int resized[KERN_MAX_DIMS];
    double scale[KERN_MAX_DIMS];
} kern_resize;
cudaError_t kern_resize_run(const void *x, void *y, const kern_resize *d, ferry_dtype dt,
                            cudaStream_t s);

/* GridSample of x [N, C, H, W] at grid [N, Ho, Wo, 2] ((x, y) in [-1, 1])
 * into y [N, C, Ho, Wo]: bilinear or nearest (half to even), padding
 * KERN_GRID_PAD_* (graph.h's GRID_PAD_*), align_corners. */
enum { KERN_GRID_PAD_ZEROS = 0, KERN_GRID_PAD_BORDER, KERN_GRID_PAD_REFLECTION };
typedef struct kern_grid_sample {
    int64_t n, c, h, w, ho, wo;
    int nearest, padding, align;
} kern_grid_sample;
cudaError_t kern_grid_sample_run(const void *x, const void *grid, void *y,
                                 const kern_grid_sample *d, ferry_dtype dt, cudaStream_t s);

/* ---- kernels_rnn.cu: one step of an LSTM, a GRU (linear_before_reset
 * 1) or a plain RNN for one direction, batch x H threads. Row b of time t
 * of each strided input or output is at base + t * its ts + b * its ld
 * (elements of the compute dtype). */
enum { KERN_RNN_GRU = 0, KERN_RNN_LSTM, KERN_RNN_TANH, KERN_RNN_RELU };
typedef struct kern_rnn {
    int kind;            /* KERN_RNN_*: LSTM (gates i,o,f,c), GRU (z,r,h), RNN (one gate) */
    int reverse;         /* the direction walks the sequence backwards */
    int64_t seq, k;      /* steps in all; this step (0 first) */
    const int32_t *lens; /* per batch row, steps it runs (clamped to [0, seq]); NULL: seq.
                            Reverse rows start at their own last step, as the CPU's */
    int64_t batch, H, GH;
    const void *xg; /* the input projection of time 0 (this direction's columns) */
    int64_t xg_ts, xg_ld;
    const void *hg;    /* h_{t-1} R^T, [batch, GH] */
    const float *bias; /* [GH] fp32: LSTM and RNN Wb + Rb; GRU z,r Wb + Rb, h Wbh */
    const float *rbh;  /* GRU: [H] fp32 Rbh */
    float *h, *c;      /* [batch, H] fp32 state (c: LSTM only) */
    void *hc;          /* [batch, H] the state in the compute dtype, for the next matmul */
    void *y;           /* Y of time 0 (this direction's rows), or NULL */
    int64_t y_ts, y_ld;
    void *yh, *yc; /* Y_h / Y_c rows (b * s_ld), written at init and each step; or NULL */
    int64_t s_ld;  /* row stride of initial_h/c, Y_h and Y_c */
} kern_rnn;
/* h = h0 (or 0), c = c0 (or 0; when p->c), hc = h in dt, and Y_h, Y_c
 * the same (a row of length 0 never steps); h0/c0 rows at b * s_ld. */
cudaError_t kern_rnn_init(const kern_rnn *p, const void *h0, const void *c0, ferry_dtype dt,
                          cudaStream_t s);
/* Step p->k: the gates, the new state, its rows of Y, Y_h and Y_c; rows
 * past their length keep their state and write nothing. */
cudaError_t kern_rnn_step(const kern_rnn *p, ferry_dtype dt, cudaStream_t s);

/* ---- kernels_index.cu */
/* EmbeddingBag: y[n, :] = sum (mode 0), mean (1) or max (2) over j < L of
 * w[ids[n, j], :] (w [rows, D]; ids I32 or I64, negative ones count from the
 * end; one out of range adds nothing). */
cudaError_t kern_embedding_bag(const void *w, const void *ids, ferry_dtype idt, void *y, int64_t N,
                               int64_t L, int64_t rows, int64_t D, int mode, ferry_dtype dt,
                               cudaStream_t s);
/* ArgMax (is_max) / ArgMin over the middle axis of [outer, A, inner] into
 * int64 y [outer, inner]: NaN wins, ties to the first (or last) index. */
cudaError_t kern_arg_reduce(const void *x, int64_t *y, int64_t outer, int64_t A, int64_t inner,
                            int is_max, int last, ferry_dtype dt, cudaStream_t s);

/* ---- kernels_topk.cu */
/* TopK over the middle axis of [outer, A, inner] (dt any float storage
 * dtype, I32 or I64) into v and idx [outer, k, inner]: the k largest
 * (smallest when !largest) of each line, best first, ties to the lower
 * index, NaN above every number (cpu_topk.c's order); v or idx may be
 * NULL (an output nothing reads). */
cudaError_t kern_topk(const void *x, void *v, int64_t *idx, int64_t outer, int64_t A, int64_t inner,
                      int64_t k, int largest, ferry_dtype dt, cudaStream_t s);

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

/* ---- kernels_attention.cu: the fused multi-head attention (graph
 * fuse_attention.c). For each batch entry b and head h, row i of y's head
 * columns = softmax_t(scale * q_bhi . k_bht + mask) v_bht, where
 * q_bhi = q[b*q_bs + i*q_rs + h*d + (0..d)] (k and v alike over Tk rows;
 * y's row at b*y_bs + i*y_rs) and the mask row of (b, h, i) is at
 * b*mstride[0] + h*mstride[1] + i*mstride[2] (graph_mask_strides; NULL:
 * none). Everything in the compute dtype dt; strides in elements; head_dim
 * up to KERN_ATTN_MAX_D. */
#define KERN_ATTN_MAX_D 256
typedef struct kern_attention {
    const void *q, *k, *v;          /* head 0's first column in each source */
    int64_t q_bs, k_bs, v_bs, y_bs; /* between batch entries */
    int64_t q_rs, k_rs, v_rs, y_rs; /* between rows (positions) */
    const void *mask;
    int64_t mstride[3];
    void *y;
    int B, heads, Tq, Tk, d;
    float scale;
} kern_attention;
/* Once per model, before any run (and not while capturing): lets the
 * kernels for head_dim d and dtype dt use the shared memory they need. */
cudaError_t kern_attention_prepare(int d, ferry_dtype dt);
cudaError_t kern_attention_run(const kern_attention *a, ferry_dtype dt, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
