/*
 * kernels_elementwise.cu - one-element-per-thread kernels: dtype conversion
 * (io <-> compute dtype, ONNX Cast), unary activations and broadcasting
 * binary arithmetic. All are memory-bound; they use grid-stride loops over a
 * grid capped at a few waves, so one launch shape serves every size and the
 * index arithmetic stays out of the way of the loads.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/index.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using ferry_cuda::grid_for;
using ferry_cuda::kThreads;

using ferry_cuda::from_f;
using ferry_cuda::to_f;

template <typename T> struct is_int {
    static constexpr bool value = false;
};
template <> struct is_int<int32_t> {
    static constexpr bool value = true;
};
template <> struct is_int<int64_t> {
    static constexpr bool value = true;
};
template <> struct is_int<uint8_t> {
    static constexpr bool value = true;
};

/* Cast S -> D. Float pairs go through fp32 (exact for every float source
 * here), integer pairs through int64, mixed pairs truncate toward zero
 * (numpy's rule); bool (uint8) is x != 0. */
template <typename S, typename D> __device__ __forceinline__ D cast_one(S x, bool to_bool)
{
    if constexpr (is_int<S>::value && is_int<D>::value) {
        return to_bool ? (D)(x != 0) : (D)(int64_t)x;
    } else if constexpr (is_int<S>::value) {
        return from_f<D>((float)(int64_t)x);
    } else if constexpr (is_int<D>::value) {
        float f = to_f(x);
        return to_bool ? (D)(f != 0.0f) : (D)(int64_t)f;
    } else {
        return from_f<D>(to_f(x));
    }
}

template <typename S, typename D>
__global__ void cast_kernel(const S *__restrict__ x, D *__restrict__ y, int64_t n, bool to_bool)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = cast_one<S, D>(x[i], to_bool);
}

template <typename S>
cudaError_t cast_to(const S *x, void *y, ferry_dtype ddt, int64_t n, cudaStream_t s)
{
    unsigned g = grid_for(n);
    switch (ddt) {
    case FERRY_F32: cast_kernel<<<g, kThreads, 0, s>>>(x, (float *)y, n, false); break;
    case FERRY_F16: cast_kernel<<<g, kThreads, 0, s>>>(x, (__half *)y, n, false); break;
    case FERRY_BF16: cast_kernel<<<g, kThreads, 0, s>>>(x, (__nv_bfloat16 *)y, n, false); break;
    case FERRY_I32: cast_kernel<<<g, kThreads, 0, s>>>(x, (int32_t *)y, n, false); break;
    case FERRY_I64: cast_kernel<<<g, kThreads, 0, s>>>(x, (int64_t *)y, n, false); break;
    case FERRY_BOOL: cast_kernel<<<g, kThreads, 0, s>>>(x, (uint8_t *)y, n, true); break;
    case FERRY_U8: cast_kernel<<<g, kThreads, 0, s>>>(x, (uint8_t *)y, n, false); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

/* The op is a kernel argument, not a template parameter: the switch is
 * uniform across the grid, costs nothing next to the memory traffic, and
 * keeps the number of instantiations (and build time) small. */
/* Mish as x * tanh(log(1 + e^x)) with the tanh of a log written out:
 * tanh(log u) = (u^2 - 1) / (u^2 + 1), u = 1 + e^x, so with e = e^x,
 * n = e (e + 2): mish = x n / (n + 2). One exp instead of exp, log1p and
 * tanh (each approximated under --use_fast_math); past x = 20 n / (n + 2)
 * is 1 in fp32 (and e^2x would overflow from x = 44). */
__device__ __forceinline__ float mish(float v)
{
    if (v > 20.0f)
        return v;
    float e = expf(v), n = e * (e + 2.0f);
    return v * n / (n + 2.0f);
}

/* The activations the fused MLP kernel shares (storage.cuh), then the
 * plain elementwise functions of the transformer exports, then those with
 * two parameters (a, b: graph.h's alpha and act_beta). expm1f, not
 * expf - 1: near 0 the difference would cancel to nothing in fp32. */
__device__ __forceinline__ float unary_any(kern_unary_op op, float v, float alpha, float beta)
{
    switch (op) {
    case KU_NEG: return -v;
    case KU_EXP: return expf(v);
    case KU_LOG: return logf(v);
    case KU_ABS: return fabsf(v);
    case KU_RECIPROCAL: return 1.0f / v;
    case KU_FLOOR: return floorf(v);
    case KU_CEIL: return ceilf(v);
    case KU_SIN: return sinf(v);
    case KU_COS: return cosf(v);
    case KU_SOFTPLUS: return v > 20.0f ? v : log1pf(expf(v));
    case KU_SIGN: return (float)((v > 0.0f) - (v < 0.0f));
    case KU_ROUND: return rintf(v);
    case KU_ELU: return v > 0.0f ? v : alpha * expm1f(v);
    case KU_SELU: return beta * (v > 0.0f ? v : alpha * expm1f(v));
    case KU_CELU: return v > 0.0f ? v : alpha * expm1f(v / alpha);
    case KU_THRESHOLDED_RELU: return v > alpha ? v : 0.0f;
    case KU_SOFTSIGN: return v / (1.0f + fabsf(v));
    case KU_MISH: return mish(v);
    case KU_SHRINK: return v < -alpha ? v + beta : v > alpha ? v - beta : 0.0f;
    default: return ferry_cuda::unary(op, v, alpha);
    }
}

template <typename T>
__global__ void unary_kernel(kern_unary_op op, float alpha, float beta, const T *x, T *y, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(unary_any(op, to_f(x[i]), alpha, beta));
}

/* a^b as C's powf. The kernels build with --use_fast_math, which makes
 * powf __powf = exp2(b * log2(a)): NaN for every negative a, so T5's and
 * LLaMA's RMSNorm (Pow(x, 2)) and decomposed LayerNorms came out NaN. A
 * negative base takes an integer exponent's sign; b = 2 (the common one)
 * is a product, as exact as the CPU's. */
__device__ __forceinline__ float pow_exact_sign(float a, float b)
{
    if (b == 2.0f)
        return a * a;
    if (b == 0.0f || a == 1.0f)
        return 1.0f; /* as powf, even for a NaN b or a */
    float r = powf(fabsf(a), b);
    if (signbit(a)) { /* -0 included: powf(-0, -3) is -inf */
        if (b != rintf(b))
            return a == 0.0f ? r : __int_as_float(0x7fc00000); /* NaN, as powf */
        if (fmodf(b, 2.0f) != 0.0f)
            r = -r;
    }
    return r;
}

__device__ __forceinline__ float binary_one(kern_binary_op op, float a, float b)
{
    switch (op) {
    case KB_ADD: return a + b;
    case KB_SUB: return a - b;
    case KB_MUL: return a * b;
    case KB_DIV: return a / b;
    case KB_POW: return pow_exact_sign(a, b);
    case KB_PRELU: return a >= 0.0f ? a : a * b;
    case KB_MIN: return a < b || a != a ? a : b;
    case KB_MAX: return a > b || a != a ? a : b;
    default: break;
    }
    return a;
}

/* Broadcasting binary op. Three shapes of the index map, chosen per launch:
 * mode 0: both inputs have the output's shape, or one is a trailing-dims
 * broadcast (bias-like: index modulo its size) or a scalar - the common
 * cases, with no per-element division beyond one modulo; mode 1: general
 * numpy broadcasting through per-dim strides. */
template <typename T>
__global__ void binary_flat_kernel(kern_binary_op op, const T *a, const T *b, T *y, int64_t n,
                                   int64_t na, int64_t nb)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ia = na == n ? i : i % na, ib = nb == n ? i : i % nb;
        y[i] = from_f<T>(binary_one(op, to_f(a[ia]), to_f(b[ib])));
    }
}

/* The broadcast index map on 32-bit indices (index.cuh). */
struct bcast32 {
    int ndim;
    uint32_t n;
    ferry_cuda::divmod32 dm[KERN_MAX_DIMS];
    uint32_t sa[KERN_MAX_DIMS], sb[KERN_MAX_DIMS];
};

template <typename T>
__global__ void binary_flat32_kernel(kern_binary_op op, const T *a, const T *b, T *y, uint32_t n,
                                     uint32_t na, uint32_t nb)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t ia = na == n ? i : i % na, ib = nb == n ? i : i % nb;
        y[i] = from_f<T>(binary_one(op, to_f(a[ia]), to_f(b[ib])));
    }
}

template <typename T>
__global__ void binary_general32_kernel(kern_binary_op op, const T *a, const T *b, T *y, bcast32 bc)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < bc.n;
         i += gridDim.x * blockDim.x) {
        uint32_t r = i, ia = 0, ib = 0;
        for (int d = bc.ndim - 1; d >= 0; d--) {
            uint32_t q = bc.dm[d].quot(r);
            uint32_t c = r - q * bc.dm[d].d;
            r = q;
            ia += c * bc.sa[d];
            ib += c * bc.sb[d];
        }
        y[i] = from_f<T>(binary_one(op, to_f(a[ia]), to_f(b[ib])));
    }
}

template <typename T>
__global__ void binary_general_kernel(kern_binary_op op, const T *a, const T *b, T *y,
                                      kern_bcast bc)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < bc.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, ia = 0, ib = 0;
        for (int d = bc.ndim - 1; d >= 0; d--) {
            int64_t c = r % bc.dims[d];
            r /= bc.dims[d];
            ia += c * bc.sa[d];
            ib += c * bc.sb[d];
        }
        y[i] = from_f<T>(binary_one(op, to_f(a[ia]), to_f(b[ib])));
    }
}

/* True when the input with strides st is the output's trailing dims (or a
 * scalar), so that its index is the output index modulo its size. */
bool is_suffix(const kern_bcast *bc, const int64_t *st, int64_t ne)
{
    if (ne == 1 || ne == bc->n)
        return true;
    int64_t stride = 1;
    int d = bc->ndim - 1;
    for (; d >= 0 && stride < ne; d--) {
        if (st[d] != stride)
            return false;
        stride *= bc->dims[d];
    }
    return stride == ne;
}

template <typename T>
cudaError_t binary_launch(kern_binary_op op, const void *a, const void *b, void *y,
                          const kern_bcast *bc, cudaStream_t s)
{
    unsigned g = grid_for(bc->n);
    bool flat = is_suffix(bc, bc->sa, bc->na) && is_suffix(bc, bc->sb, bc->nb);
    /* Inputs are no larger than the output, so n bounds every offset. */
    bool small = bc->n <= ferry_cuda::kIndex32Max;
    if (flat && small) {
        binary_flat32_kernel<T><<<g, kThreads, 0, s>>>(op, (const T *)a, (const T *)b, (T *)y,
                                                       (uint32_t)bc->n, (uint32_t)bc->na,
                                                       (uint32_t)bc->nb);
    } else if (flat) {
        binary_flat_kernel<T>
            <<<g, kThreads, 0, s>>>(op, (const T *)a, (const T *)b, (T *)y, bc->n, bc->na, bc->nb);
    } else if (small) {
        bcast32 p;
        p.ndim = bc->ndim;
        p.n = (uint32_t)bc->n;
        for (int d = 0; d < bc->ndim; d++) {
            p.dm[d].init((uint32_t)bc->dims[d]);
            p.sa[d] = (uint32_t)bc->sa[d];
            p.sb[d] = (uint32_t)bc->sb[d];
        }
        binary_general32_kernel<T>
            <<<g, kThreads, 0, s>>>(op, (const T *)a, (const T *)b, (T *)y, p);
    } else {
        binary_general_kernel<T>
            <<<g, kThreads, 0, s>>>(op, (const T *)a, (const T *)b, (T *)y, *bc);
    }
    return cudaGetLastError();
}

template <typename T>
__global__ void channel_affine_kernel(const T *__restrict__ x, const T *__restrict__ a,
                                      const T *__restrict__ b, T *__restrict__ y, int64_t n,
                                      int64_t ch, int64_t inner)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = (i / inner) % ch;
        y[i] = from_f<T>(to_f(x[i]) * to_f(a[c]) + to_f(b[c]));
    }
}

template <typename T>
cudaError_t channel_affine_launch(const void *x, const void *a, const void *b, void *y, int64_t n,
                                  int64_t ch, int64_t inner, cudaStream_t s)
{
    channel_affine_kernel<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (const T *)a,
                                                              (const T *)b, (T *)y, n, ch, inner);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kern_channel_affine(const void *x, const void *a, const void *b, void *y,
                                           int64_t n, int64_t ch, int64_t inner, ferry_dtype dt,
                                           cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    switch (dt) {
    case FERRY_F32: return channel_affine_launch<float>(x, a, b, y, n, ch, inner, s);
    case FERRY_F16: return channel_affine_launch<__half>(x, a, b, y, n, ch, inner, s);
    case FERRY_BF16: return channel_affine_launch<__nv_bfloat16>(x, a, b, y, n, ch, inner, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kern_cast(const void *x, ferry_dtype sdt, void *y, ferry_dtype ddt,
                                 int64_t n, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    switch (sdt) {
    case FERRY_F32: return cast_to((const float *)x, y, ddt, n, s);
    case FERRY_F16: return cast_to((const __half *)x, y, ddt, n, s);
    case FERRY_BF16: return cast_to((const __nv_bfloat16 *)x, y, ddt, n, s);
    case FERRY_I32: return cast_to((const int32_t *)x, y, ddt, n, s);
    case FERRY_I64: return cast_to((const int64_t *)x, y, ddt, n, s);
    case FERRY_BOOL:
    case FERRY_U8: return cast_to((const uint8_t *)x, y, ddt, n, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kern_unary(kern_unary_op op, float alpha, float beta, const void *x, void *y,
                                  int64_t n, ferry_dtype dt, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    unsigned g = grid_for(n);
    switch (dt) {
    case FERRY_F32:
        unary_kernel<<<g, kThreads, 0, s>>>(op, alpha, beta, (const float *)x, (float *)y, n);
        break;
    case FERRY_F16:
        unary_kernel<<<g, kThreads, 0, s>>>(op, alpha, beta, (const __half *)x, (__half *)y, n);
        break;
    case FERRY_BF16:
        unary_kernel<<<g, kThreads, 0, s>>>(op, alpha, beta, (const __nv_bfloat16 *)x,
                                            (__nv_bfloat16 *)y, n);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t kern_binary(kern_binary_op op, const void *a, const void *b, void *y,
                                   const kern_bcast *bc, ferry_dtype dt, cudaStream_t s)
{
    if (bc->n <= 0)
        return cudaSuccess;
    switch (dt) {
    case FERRY_F32: return binary_launch<float>(op, a, b, y, bc, s);
    case FERRY_F16: return binary_launch<__half>(op, a, b, y, bc, s);
    case FERRY_BF16: return binary_launch<__nv_bfloat16>(op, a, b, y, bc, s);
    default: return cudaErrorInvalidValue;
    }
}
