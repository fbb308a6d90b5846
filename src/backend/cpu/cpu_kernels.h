/*
 * cpu_kernels.h - the CPU backend's compute kernels over dense row-major
 * f32 tensors (plus Cast, which also reads and writes integer tensors).
 * Every kernel is reentrant: it touches only the memory it is given.
 * Private to src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_KERNELS_H
#define FERRY_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* How Gemm's C operand broadcasts onto the [M,N] output. */
typedef enum cpu_bias_kind {
    CPU_BIAS_NONE = 0,
    CPU_BIAS_SCALAR, /* one value */
    CPU_BIAS_ROW,    /* [N] or [1,N]: the same row for every output row */
    CPU_BIAS_COL,    /* [M,1]: one value per output row */
    CPU_BIAS_FULL,   /* [M,N] */
} cpu_bias_kind;

/* Y[M,N] = act(alpha * op(A) * op(B) + beta * C), row-major. op(A) is [M,K]
 * (A stored [K,M] when trans_a), op(B) is [K,N] (B stored [N,K] when
 * trans_b). The bias and activation are applied in one pass over Y. Large
 * products are split into row or column blocks run on the backend's
 * threads (cpu_parallel.h); Y must not overlap A, B or C. */
void cpu_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, const float *B, float beta, const float *C, cpu_bias_kind bias,
              act_kind act, float act_alpha, float *Y);
/* The same, then Y += R (R [M, N] row-major, NULL: none): a residual
 * connection fused into the Gemm (graph fuse.c), added while the block is in
 * cache. */
void cpu_gemm_res(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, const float *B, float beta, const float *C, cpu_bias_kind bias,
                  act_kind act, float act_alpha, const float *R, float *Y);

/* Y[M,N] (row stride ldy) = alpha * op(A) * op(B), A and B read with
 * leading dims lda and ldb: one BLAS call (oneDNN or OpenBLAS, GEMV for one
 * row) on the calling thread, for callers that split work themselves
 * (cpu_attention.c reads each head in place from its projection). */
void cpu_gemm_block(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float *Y,
                    int64_t ldy);

/* numpy matmul: A [..., M, K] x B [..., K, N] -> Y [..., M, N] with the
 * batch dims broadcast; rank-1 operands are promoted as numpy does.
 * Dims are concrete; yd/yn are the output's. */
void cpu_matmul(const float *A, const int64_t *ad, int an, const float *B, const int64_t *bd,
                int bn, float *Y, const int64_t *yd, int yn);

/* Y = A op B for op in Add/Sub/Mul/Div/Pow, with ONNX multidirectional
 * broadcasting onto Y's dims. */
void cpu_binary(op_kind op, const float *A, const int64_t *ad, int an, const float *B,
                const int64_t *bd, int bn, float *Y, const int64_t *yd, int yn);

/* Y = f(X) elementwise for Relu, LeakyRelu (alpha), Sigmoid, Tanh, Gelu
 * (approximate != 0: tanh form), Erf, Sqrt. Y may equal X. */
void cpu_unary(op_kind op, const float *X, float *Y, int64_t n, float alpha, int approximate);

/* Softmax (or LogSoftmax) of X viewed as [outer, L, inner] over L. */
void cpu_softmax(const float *X, float *Y, int64_t outer, int64_t L, int64_t inner, int is_log);
/* Softmax over the last axis of x * scale + mask (graph fuse.c's attention
 * softmax): mask row of score row o (o over the leading dims[nd]) at
 * sum (o's index in dim d) * mstride[d]; mask NULL: none. */
typedef struct cpu_softmax_fused {
    float scale;
    const float *mask;
    int nd;
    int64_t dims[FERRY_MAX_DIMS], mstride[FERRY_MAX_DIMS];
} cpu_softmax_fused;
void cpu_softmax_ex(const float *X, float *Y, int64_t outer, int64_t L, int64_t inner, int is_log,
                    const cpu_softmax_fused *f);

/* Softmax's numerators in place over each of rows rows of S [rows, L],
 * after adding the mask row r * mstride (mask NULL: none): exp(s - row
 * max), and 1 / the row's sum into inv[r], on the calling thread. The
 * fused attention's scores, already scaled; it divides P V's rows. */
void cpu_softmax_rows_exp(float *S, int64_t rows, int64_t L, const float *mask, int64_t mstride,
                          float *inv);

/* Y[r, 0..cols) *= s[r] for rows rows of stride ld, on the calling thread. */
void cpu_scale_rows(float *Y, int64_t rows, int64_t cols, int64_t ld, const float *s);

/* Multi-head attention (graph fuse_attention.c): for every batch entry b
 * and head h, rows i of Y's head columns = softmax(scale * Q K^T + mask) V,
 * where row i of head h of Q is q[b*q_bs + i*q_rs + h*d + (0..d)] (K and V
 * alike over Tk rows, Y's row at b*y_bs + i*y_rs); the mask row of (b, h, i)
 * at b*mstride[0] + h*mstride[1] + i*mstride[2] (graph_mask_strides). The
 * (b, h) pairs (or blocks of their query rows, when the pairs do not share
 * out evenly over the threads) are split over the backend's threads, each
 * chunk keeping its scores [Tq, Tk] and their Tq row sums in its own slot
 * of scratch (cpu_attention_slot floats). */
typedef struct cpu_attention_args {
    const float *q, *k, *v;   /* head 0's first column in each source */
    int64_t q_bs, k_bs, v_bs; /* elements between batch entries */
    int64_t q_rs, k_rs, v_rs; /* elements between rows (positions) */
    const float *mask;        /* NULL: none */
    int64_t mstride[3];
    float *y;
    int64_t y_bs, y_rs;
    int64_t B, heads, Tq, Tk, d;
    float scale;
    float *scratch; /* slots * cpu_attention_slot(Tq, Tk) floats */
    int64_t slots;
} cpu_attention_args;
void cpu_attention(const cpu_attention_args *a);
static inline int64_t cpu_attention_slot(int64_t Tq, int64_t Tk)
{
    return Tq * (Tk + 1);
}
/* Slots (chunks) cpu_attention may use for B * heads = pairs on threads:
 * what scratch must hold; a smaller batch needs no more. */
int64_t cpu_attention_slots(int64_t pairs, int64_t Tq, int threads);

/* LayerNormalization of X viewed as [rows, cols] over cols. bias, mean_out
 * and rstd_out may be NULL. */
void cpu_layer_norm(const float *X, const float *scale, const float *bias, float *Y,
                    float *mean_out, float *rstd_out, int64_t rows, int64_t cols, float eps);

/* InstanceNormalization of X viewed as [rows, cols], rows = N*channels:
 * each row over its cols, then scale and bias of its channel (row %
 * channels). */
void cpu_instance_norm(const float *X, const float *scale, const float *bias, float *Y,
                       int64_t rows, int64_t cols, int64_t channels, float eps);

/* Mean of X (dims xd[nd]) over the dims where reduce[d] != 0, into Y laid
 * out as X's dims with the reduced ones removed (or kept as 1). */
void cpu_reduce_mean(const float *X, const int64_t *xd, int nd, const int *reduce, float *Y);

/* Converts n elements. Floating tensors are stored as f32 on the CPU: src_dt
 * and dst_store are the stored dtypes; to is Cast's target (f16/bf16 round
 * the stored f32 to that precision). Float to integer truncates toward zero
 * and saturates; NaN becomes 0. */
void cpu_cast(const void *src, ferry_dtype src_dt, void *dst, ferry_dtype dst_store, ferry_dtype to,
              int64_t n);

#endif
