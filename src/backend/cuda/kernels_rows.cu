/*
 * kernels_rows.cu - kernels that reduce along rows: Softmax / LogSoftmax,
 * LayerNorm, the Reduce* operators. Each row is owned by one warp (short
 * rows) or one block (long rows), so a row's reduction needs no atomics
 * and no second launch; every float sum is accumulated in fp32 whatever
 * the storage dtype, every integer one in int64.
 * CumSum, a running sum rather than a reduction, gives each thread one
 * column to walk instead.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using ferry_cuda::from_f;
using ferry_cuda::to_f;

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide reduction through one shared word per warp; every thread gets
 * the result. blockDim.x is a multiple of 32, at most 1024. */
template <bool MAX> __device__ float block_reduce(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous reduction */
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (MAX ? -FLT_MAX : 0.0f);
    return MAX ? warp_max(v) : warp_sum(v);
}

/* Softmax over the middle axis of [outer, d, inner]: row r = (o, i) holds
 * elements o*d*inner + j*inner + i. Short rows (d <= 1024): one warp per
 * row, 8 rows per 256-thread block, so that tiny rows (d = 10 logits) still
 * keep the SMs busy; long rows: a whole block per row. Three passes over the
 * row (max, sum of exp, write) re-read it from L1/L2, which is cheaper than
 * staging a row of unknown length in shared memory. */
template <typename T, bool WARP>
__global__ void softmax_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t d,
                               int64_t inner, bool log, kern_softmax_fused f)
{
    __shared__ float sh[32];
    int64_t row;
    int lane, width;
    if (WARP) {
        row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
        lane = threadIdx.x & 31;
        width = 32;
        if (row >= rows)
            return; /* whole warps leave together: no shuffle loses a lane */
    } else {
        row = blockIdx.x;
        lane = threadIdx.x;
        width = blockDim.x;
    }
    int64_t o = row / inner, i = row % inner;
    const T *xr = x + o * d * inner + i;
    T *yr = y + o * d * inner + i;
    /* The fused attention softmax (inner 1): x * scale + the row's mask. */
    const T *mr = NULL;
    float scale = 1.0f;
    if (f.on) {
        scale = f.scale;
        if (f.mask) {
            int64_t r = row, off = 0;
            for (int k = f.nd - 1; k >= 0; k--) {
                off += (r % f.dims[k]) * f.mstride[k];
                r /= f.dims[k];
            }
            mr = (const T *)f.mask + off;
        }
    }
#define SOFTMAX_V(j) (to_f(xr[(j)*inner]) * scale + (mr ? to_f(mr[j]) : 0.0f))

    float m = -FLT_MAX;
    for (int64_t j = lane; j < d; j += width)
        m = fmaxf(m, SOFTMAX_V(j));
    m = WARP ? warp_max(m) : block_reduce<true>(m, sh);
    float s = 0.0f;
    for (int64_t j = lane; j < d; j += width)
        s += __expf(SOFTMAX_V(j) - m);
    s = WARP ? warp_sum(s) : block_reduce<false>(s, sh);
    if (log) {
        float ls = __logf(s);
        for (int64_t j = lane; j < d; j += width)
            yr[j * inner] = from_f<T>(SOFTMAX_V(j) - m - ls);
    } else {
        float inv = 1.0f / s;
        for (int64_t j = lane; j < d; j += width)
            yr[j * inner] = from_f<T>(__expf(SOFTMAX_V(j) - m) * inv);
    }
#undef SOFTMAX_V
}

template <typename T>
cudaError_t softmax_launch(const void *x, void *y, int64_t outer, int64_t d, int64_t inner, int log,
                           const kern_softmax_fused *f, cudaStream_t s)
{
    int64_t rows = outer * inner;
    kern_softmax_fused none;
    memset(&none, 0, sizeof none);
    const kern_softmax_fused &ff = f ? *f : none;
    if (d <= 1024) {
        int64_t blocks = (rows + 7) / 8;
        softmax_kernel<T, true>
            <<<(unsigned)blocks, 256, 0, s>>>((const T *)x, (T *)y, rows, d, inner, log != 0, ff);
    } else {
        softmax_kernel<T, false>
            <<<(unsigned)rows, 512, 0, s>>>((const T *)x, (T *)y, rows, d, inner, log != 0, ff);
    }
    return cudaGetLastError();
}

/* LayerNorm over contiguous rows of d: one block per row. Two-pass (mean,
 * then the mean of squared deviations) rather than E[x^2] - E[x]^2, which
 * cancels catastrophically in fp32 for rows with a large mean. The row is
 * re-read from L1/L2 on each pass. channels > 0: InstanceNormalization,
 * whose rows are (sample, channel) pairs and whose scale and bias are one
 * number per channel (row % channels) rather than one per column.
 * Tried and slower: one warp per row with the row in registers (one read,
 * shuffles only): BERT-base fp16 at batch 1 ran 1,276 samples/s against
 * this kernel's 1,500 (H100, 2026-12-07, BENCHMARKS.md). */
template <typename T>
__global__ void layernorm_kernel(const T *__restrict__ x, const T *__restrict__ scale,
                                 const T *__restrict__ bias, T *__restrict__ y, int64_t d,
                                 int64_t channels, float eps)
{
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * d;
    T *yr = y + blockIdx.x * d;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        s += to_f(xr[j]);
    float mean = block_reduce<false>(s, sh) / (float)d;
    float v = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float t = to_f(xr[j]) - mean;
        v += t * t;
    }
    float rstd = rsqrtf(block_reduce<false>(v, sh) / (float)d + eps);
    if (channels > 0) {
        int64_t c = blockIdx.x % channels;
        float a = rstd * to_f(scale[c]), b = bias ? to_f(bias[c]) : 0.0f;
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
            yr[j] = from_f<T>((to_f(xr[j]) - mean) * a + b);
        return;
    }
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float t = (to_f(xr[j]) - mean) * rstd * to_f(scale[j]);
        if (bias)
            t += to_f(bias[j]);
        yr[j] = from_f<T>(t);
    }
}

template <typename T>
cudaError_t layernorm_launch(const void *x, const void *scale, const void *bias, void *y,
                             int64_t rows, int64_t d, int64_t channels, float eps, cudaStream_t s)
{
    int threads = d >= 2048 ? 512 : d >= 512 ? 256 : d >= 128 ? 128 : 64;
    layernorm_kernel<T><<<(unsigned)rows, threads, 0, s>>>(
        (const T *)x, (const T *)scale, (const T *)bias, (T *)y, d, channels, eps);
    return cudaGetLastError();
}

/* Where output `out`'s first input element sits: its index over the kept
 * dims, each at its stride in x. */
__device__ __forceinline__ int64_t reduce_base(const kern_reduce &rd, int64_t out)
{
    int64_t base = 0, r = out;
    for (int k = rd.nk - 1; k >= 0; k--) {
        base += (r % rd.kdims[k]) * rd.kstride[k];
        r /= rd.kdims[k];
    }
    return base;
}

/* ReduceMean: one warp per output element; the lanes stride over the
 * reduced index, so a reduction over innermost dims reads coalesced. */
template <typename T>
__global__ void reduce_mean_kernel(const T *__restrict__ x, T *__restrict__ y, kern_reduce rd)
{
    int64_t out = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (out >= rd.n_out)
        return;
    int64_t base = reduce_base(rd, out);
    float s = 0.0f;
    for (int64_t j = lane; j < rd.n_red; j += 32) {
        int64_t off = 0, q = j;
        for (int k = rd.nr - 1; k >= 0; k--) {
            off += (q % rd.rdims[k]) * rd.rstride[k];
            q /= rd.rdims[k];
        }
        s += to_f(x[base + off]);
    }
    s = warp_sum(s);
    if (lane == 0)
        y[out] = from_f<T>(s / (float)rd.n_red);
}

/* The other reductions: the same shape as ReduceMean (one warp per output
 * element), the op a uniform kernel argument. LogSumExp takes the max
 * first so that exp never overflows. */
__device__ __forceinline__ float red_init(kern_reduce_op op)
{
    switch (op) {
    case KR_MAX:
    case KR_LOG_SUM_EXP: return -FLT_MAX;
    case KR_MIN: return FLT_MAX;
    case KR_PROD: return 1.0f;
    default: return 0.0f;
    }
}

__device__ __forceinline__ float red_step(kern_reduce_op op, float a, float v, float m)
{
    switch (op) {
    case KR_MAX: return fmaxf(a, v);
    case KR_MIN: return fminf(a, v);
    case KR_PROD: return a * v;
    case KR_SUM_SQUARE:
    case KR_L2: return a + v * v;
    case KR_LOG_SUM_EXP: return a + expf(v - m);
    case KR_L1: return a + fabsf(v);
    default: return a + v; /* KR_SUM, KR_MEAN, KR_LOG_SUM */
    }
}

__device__ __forceinline__ float warp_red(kern_reduce_op op, float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = op == KR_MAX ? fmaxf(v, u) : op == KR_MIN ? fminf(v, u) : op == KR_PROD ? v * u : v + u;
    }
    return v;
}

template <typename T>
__global__ void reduce_kernel(kern_reduce_op op, const T *__restrict__ x, T *__restrict__ y,
                              kern_reduce rd)
{
    int64_t out = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (out >= rd.n_out)
        return;
    int64_t base = reduce_base(rd, out);
    float m = 0.0f;
    if (op == KR_LOG_SUM_EXP) {
        float mx = -FLT_MAX;
        for (int64_t j = lane; j < rd.n_red; j += 32) {
            int64_t off = 0, q = j;
            for (int k = rd.nr - 1; k >= 0; k--) {
                off += (q % rd.rdims[k]) * rd.rstride[k];
                q /= rd.rdims[k];
            }
            mx = fmaxf(mx, to_f(x[base + off]));
        }
        m = warp_max(mx);
    }
    float a = op == KR_LOG_SUM_EXP ? 0.0f : red_init(op);
    for (int64_t j = lane; j < rd.n_red; j += 32) {
        int64_t off = 0, q = j;
        for (int k = rd.nr - 1; k >= 0; k--) {
            off += (q % rd.rdims[k]) * rd.rstride[k];
            q /= rd.rdims[k];
        }
        a = red_step(op == KR_LOG_SUM_EXP ? KR_LOG_SUM_EXP : op, a, to_f(x[base + off]), m);
    }
    a = warp_red(op == KR_LOG_SUM_EXP                 ? KR_SUM
                 : op == KR_SUM_SQUARE || op == KR_L2 ? KR_SUM
                                                      : op,
                 a);
    if (lane == 0) {
        if (op == KR_MEAN)
            a /= (float)rd.n_red;
        else if (op == KR_L2)
            a = sqrtf(a);
        else if (op == KR_LOG_SUM_EXP)
            a = m + logf(a);
        else if (op == KR_LOG_SUM)
            a = logf(a);
        y[out] = from_f<T>(a);
    }
}

template <typename T>
cudaError_t reduce_any_launch(kern_reduce_op op, const void *x, void *y, const kern_reduce *rd,
                              cudaStream_t s)
{
    int64_t blocks = (rd->n_out + 7) / 8;
    reduce_kernel<T><<<(unsigned)blocks, 256, 0, s>>>(op, (const T *)x, (T *)y, *rd);
    return cudaGetLastError();
}

/* Integer reductions: the same shape again, accumulated in int64 with
 * wrapping (unsigned) arithmetic as the CPU's cpu_reduce.c. Sums and
 * products modulo 2^64 do not depend on the order the lanes combine in, so
 * the result is the CPU's bit for bit; an int32 result is the low 32 bits,
 * as the CPU's truncating store. */
__device__ __forceinline__ int64_t int_comb(kern_reduce_op op, int64_t a, int64_t v)
{
    switch (op) {
    case KR_MAX: return v > a ? v : a;
    case KR_MIN: return v < a ? v : a;
    case KR_PROD: return (int64_t)((uint64_t)a * (uint64_t)v);
    default: return (int64_t)((uint64_t)a + (uint64_t)v); /* SUM, L1, SUM_SQUARE */
    }
}

template <typename T>
__global__ void reduce_int_kernel(kern_reduce_op op, const T *__restrict__ x, T *__restrict__ y,
                                  kern_reduce rd)
{
    int64_t out = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (out >= rd.n_out)
        return;
    int64_t base = reduce_base(rd, out);
    const int64_t lo = sizeof(T) == 4 ? INT32_MIN : INT64_MIN;
    const int64_t hi = sizeof(T) == 4 ? INT32_MAX : INT64_MAX;
    int64_t a = op == KR_MAX ? lo : op == KR_MIN ? hi : op == KR_PROD ? 1 : 0;
    for (int64_t j = lane; j < rd.n_red; j += 32) {
        int64_t off = 0, q = j;
        for (int k = rd.nr - 1; k >= 0; k--) {
            off += (q % rd.rdims[k]) * rd.rstride[k];
            q /= rd.rdims[k];
        }
        int64_t v = x[base + off];
        if (op == KR_L1 && v < 0)
            v = (int64_t)((uint64_t)0 - (uint64_t)v);
        else if (op == KR_SUM_SQUARE)
            v = (int64_t)((uint64_t)v * (uint64_t)v);
        a = int_comb(op, a, v);
    }
    for (int o = 16; o > 0; o >>= 1)
        a = int_comb(op, a, __shfl_xor_sync(0xffffffffu, a, o));
    if (lane == 0)
        y[out] = (T)a;
}

template <typename T>
cudaError_t reduce_int_launch(kern_reduce_op op, const void *x, void *y, const kern_reduce *rd,
                              cudaStream_t s)
{
    int64_t blocks = (rd->n_out + 7) / 8;
    reduce_int_kernel<T><<<(unsigned)blocks, 256, 0, s>>>(op, (const T *)x, (T *)y, *rd);
    return cudaGetLastError();
}

/* ReduceMean whose reduced dims all lie outside a contiguous kept dim
 * (a global average pool in channels-last, [N, H*W, C] over H*W): a
 * thread per output, neighbours on neighbouring channels, so each step
 * over the reduced index is one coalesced row. The warp-per-output kernel
 * read such a reduction a lane per pixel, C elements apart: resnet50's
 * pool at batch 256 took 232 us (ncu, H100) for 51 MB. */
template <typename T>
__global__ void reduce_mean_cols(const T *__restrict__ x, T *__restrict__ y, kern_reduce rd)
{
    int64_t out = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (out >= rd.n_out)
        return;
    int64_t base = reduce_base(rd, out);
    float s = 0.0f;
    for (int64_t j = 0; j < rd.n_red; j++) {
        int64_t off = 0, q = j;
        for (int k = rd.nr - 1; k >= 0; k--) {
            off += (q % rd.rdims[k]) * rd.rstride[k];
            q /= rd.rdims[k];
        }
        s += to_f(x[base + off]);
    }
    y[out] = from_f<T>(s / (float)rd.n_red);
}

/* The innermost kept dim is contiguous and every reduced dim strides past
 * it (reduce_mean_cols's case). */
static bool reduce_over_columns(const kern_reduce *rd)
{
    if (rd->nk < 1 || rd->kstride[rd->nk - 1] != 1 || rd->kdims[rd->nk - 1] < 32)
        return false;
    /* enough outputs to fill the GPU, or short columns: a long reduction
     * into few outputs keeps the warp per output */
    if (rd->n_out < 4096 && rd->n_red > 256)
        return false;
    for (int k = 0; k < rd->nr; k++)
        if (rd->rdims[k] > 1 && rd->rstride[k] < rd->kdims[rd->nk - 1])
            return false;
    return true;
}

template <typename T>
cudaError_t reduce_launch(const void *x, void *y, const kern_reduce *rd, cudaStream_t s)
{
    if (reduce_over_columns(rd)) {
        reduce_mean_cols<T>
            <<<(unsigned)((rd->n_out + 255) / 256), 256, 0, s>>>((const T *)x, (T *)y, *rd);
        return cudaGetLastError();
    }
    int64_t blocks = (rd->n_out + 7) / 8;
    reduce_mean_kernel<T><<<(unsigned)blocks, 256, 0, s>>>((const T *)x, (T *)y, *rd);
    return cudaGetLastError();
}

/* CumSum over [outer, L, inner]: one thread per (outer, inner) column
 * walks its L elements in order, carrying the sum; neighbouring threads
 * read neighbouring columns, so the loads coalesce whenever inner is
 * large. The axes CumSum runs along in models (positions from a mask, a
 * few hundred long) do not justify a parallel scan. Floats carry the sum
 * in fp32, integers in the unsigned type (wrapping, as the CPU's). x may
 * be y: each element is read before it is written. */
template <typename T, bool = std::is_integral<T>::value> struct cumsum_acc {
    using t = float;
};
template <typename T> struct cumsum_acc<T, true> {
    using t = typename std::make_unsigned<T>::type;
};

template <typename T>
__global__ void cumsum_kernel(const T *x, T *y, int64_t outer, int64_t L, int64_t inner,
                              int exclusive, int reverse)
{
    using A = typename cumsum_acc<T>::t;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < outer * inner;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t base = i / inner * L * inner + i % inner;
        A acc = 0;
        for (int64_t t = 0; t < L; t++) {
            int64_t p = base + (reverse ? L - 1 - t : t) * inner;
            A v;
            if constexpr (std::is_integral<T>::value)
                v = (A)x[p];
            else
                v = to_f(x[p]);
            A out = exclusive ? acc : acc + v;
            acc += v;
            if constexpr (std::is_integral<T>::value)
                y[p] = (T)out;
            else
                y[p] = from_f<T>(out);
        }
    }
}

template <typename T>
cudaError_t cumsum_launch(const void *x, void *y, int64_t outer, int64_t L, int64_t inner,
                          int exclusive, int reverse, cudaStream_t s)
{
    cumsum_kernel<T><<<ferry_cuda::grid_for(outer * inner), ferry_cuda::kThreads, 0, s>>>(
        (const T *)x, (T *)y, outer, L, inner, exclusive, reverse);
    return cudaGetLastError();
}

} // namespace

#define DISPATCH_FLOAT(dt, fn, ...)                                                                \
    switch (dt) {                                                                                  \
    case FERRY_F32: return fn<float>(__VA_ARGS__);                                                 \
    case FERRY_F16: return fn<__half>(__VA_ARGS__);                                                \
    case FERRY_BF16: return fn<__nv_bfloat16>(__VA_ARGS__);                                        \
    default: return cudaErrorInvalidValue;                                                         \
    }

extern "C" cudaError_t kern_softmax(const void *x, void *y, int64_t outer, int64_t d, int64_t inner,
                                    int log, ferry_dtype dt, cudaStream_t s)
{
    if (outer * d * inner <= 0)
        return cudaSuccess;
    const kern_softmax_fused *none = NULL;
    DISPATCH_FLOAT(dt, softmax_launch, x, y, outer, d, inner, log, none, s)
}

extern "C" cudaError_t kern_softmax_fused_rows(const void *x, void *y, int64_t rows, int64_t d,
                                               const kern_softmax_fused *f, ferry_dtype dt,
                                               cudaStream_t s)
{
    if (rows * d <= 0)
        return cudaSuccess;
    int64_t inner = 1;
    int log = 0;
    DISPATCH_FLOAT(dt, softmax_launch, x, y, rows, d, inner, log, f, s)
}

extern "C" cudaError_t kern_layernorm(const void *x, const void *scale, const void *bias, void *y,
                                      int64_t rows, int64_t d, float eps, ferry_dtype dt,
                                      cudaStream_t s)
{
    if (rows <= 0 || d <= 0)
        return cudaSuccess;
    int64_t channels = 0;
    DISPATCH_FLOAT(dt, layernorm_launch, x, scale, bias, y, rows, d, channels, eps, s)
}

extern "C" cudaError_t kern_instancenorm(const void *x, const void *scale, const void *bias,
                                         void *y, int64_t rows, int64_t d, int64_t channels,
                                         float eps, ferry_dtype dt, cudaStream_t s)
{
    if (rows <= 0 || d <= 0 || channels <= 0)
        return cudaSuccess;
    DISPATCH_FLOAT(dt, layernorm_launch, x, scale, bias, y, rows, d, channels, eps, s)
}

extern "C" cudaError_t kern_reduce_mean(const void *x, void *y, const kern_reduce *rd,
                                        ferry_dtype dt, cudaStream_t s)
{
    if (rd->n_out <= 0 || rd->n_red <= 0)
        return cudaSuccess;
    DISPATCH_FLOAT(dt, reduce_launch, x, y, rd, s)
}

extern "C" cudaError_t kern_reduce_any(kern_reduce_op op, const void *x, void *y,
                                       const kern_reduce *rd, ferry_dtype dt, cudaStream_t s)
{
    if (rd->n_out <= 0)
        return cudaSuccess;
    DISPATCH_FLOAT(dt, reduce_any_launch, op, x, y, rd, s)
}

extern "C" cudaError_t kern_reduce_int(kern_reduce_op op, const void *x, void *y,
                                       const kern_reduce *rd, ferry_dtype dt, cudaStream_t s)
{
    if (rd->n_out <= 0)
        return cudaSuccess;
    switch (dt) {
    case FERRY_I32: return reduce_int_launch<int32_t>(op, x, y, rd, s);
    case FERRY_I64: return reduce_int_launch<int64_t>(op, x, y, rd, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kern_cumsum(const void *x, void *y, int64_t outer, int64_t L, int64_t inner,
                                   int exclusive, int reverse, ferry_dtype dt, cudaStream_t s)
{
    if (outer * L * inner <= 0)
        return cudaSuccess;
    switch (dt) {
    case FERRY_I32: return cumsum_launch<int32_t>(x, y, outer, L, inner, exclusive, reverse, s);
    case FERRY_I64: return cumsum_launch<int64_t>(x, y, outer, L, inner, exclusive, reverse, s);
    default: break;
    }
    DISPATCH_FLOAT(dt, cumsum_launch, x, y, outer, L, inner, exclusive, reverse, s)
}
