/*
 * storage.cuh - fp32 views of the storage dtypes (f32, f16, bf16) for the
 * .cu kernels: every kernel loads through to_f, computes and accumulates in
 * fp32, and stores through from_f<T> (round to nearest even).
 */
#ifndef FERRY_CUDA_STORAGE_CUH
#define FERRY_CUDA_STORAGE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>

#include "backend/cuda/kernels.h"

namespace ferry_cuda
{

__device__ __forceinline__ float to_f(float v)
{
    return v;
}
__device__ __forceinline__ float to_f(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v)
{
    return v;
}
template <> __device__ __forceinline__ __half from_f<__half>(float v)
{
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* Launch shape of the grid-stride kernels: 256 threads a block, and enough
 * blocks to fill an H100 (132 SMs x 2048 threads) several times over;
 * beyond that the grid-stride loop takes over. */
constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n)
{
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b > 132 * 8 * 4)
        b = 132 * 8 * 4;
    return (unsigned)(b < 1 ? 1 : b);
}

/* op(v) in fp32; alpha is LeakyRelu's slope. Relu keeps NaN, as PyTorch's. */
__device__ __forceinline__ float unary(int op, float v, float alpha)
{
    switch (op) {
    case KU_RELU: return v > 0.0f || v != v ? v : 0.0f;
    case KU_LEAKY_RELU: return v >= 0.0f ? v : alpha * v;
    case KU_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case KU_TANH: return tanhf(v);
    case KU_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case KU_GELU_TANH:
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case KU_ERF: return erff(v);
    case KU_SQRT: return sqrtf(v);
    }
    return v; /* KERN_MLP_NO_ACT */
}

/* A measurement knob: whether environment variable `name` is exactly "1",
 * read once and cached in `cache` (initialized to -1). The cache is a
 * file-scope atomic of the caller's rather than a function-local static:
 * in a template, that one's guard variable is a global symbol, which
 * libferry must not export (tests/install). */
inline bool env_knob(std::atomic<int> &cache, const char *name)
{
    int v = cache.load(std::memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv(name);
        v = e && e[0] == '1' && !e[1];
        cache.store(v, std::memory_order_relaxed);
    }
    return v != 0;
}

} // namespace ferry_cuda

#endif
