/*
 * kernels_index.cu - kernels that follow indices or produce them:
 * EmbeddingBag (a DLRM's sparse features) and ArgMax / ArgMin. One thread
 * per output element; each walks its bag or its axis, which is short
 * (tens of ids, a class axis) for the models that use them.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using ferry_cuda::from_f;
using ferry_cuda::to_f;

/* out[n, d] = sum / mean / max over j < L of W[X[n, j], d]. An id outside
 * [-rows, rows) contributes nothing (as kern_gather's zeros: a device
 * kernel cannot fail the node; the CPU backend names the id). */
template <typename T, typename I>
__global__ void embedding_bag_kernel(const T *__restrict__ w, const I *__restrict__ ids,
                                     T *__restrict__ y, int64_t N, int64_t L, int64_t rows,
                                     int64_t D, int mode)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * D)
        return;
    int64_t n = i / D, d = i % D;
    float acc = 0.0f;
    int seen = 0;
    for (int64_t j = 0; j < L; j++) {
        int64_t id = (int64_t)ids[n * L + j];
        if (id < 0)
            id += rows;
        if (id < 0 || id >= rows)
            continue;
        float v = to_f(w[id * D + d]);
        acc = mode == 2 ? (seen ? fmaxf(acc, v) : v) : acc + v;
        seen = 1;
    }
    if (mode == 1 && L > 0)
        acc /= (float)L;
    y[i] = from_f<T>(acc);
}

/* ArgMax (is_max) / ArgMin over the middle axis of [outer, A, inner]; NaN
 * wins (as numpy and the CPU backend); ties go to the first index, or the
 * last with select_last. */
/* The value ArgMax compares: floats widened to float, integers as they
 * are (an int64 id above 2^24 would not survive a float). */
template <typename T> struct arg_key {
    using K = float;
    static __device__ __forceinline__ float get(T v)
    {
        return to_f(v);
    }
};
template <> struct arg_key<int32_t> {
    using K = int32_t;
    static __device__ __forceinline__ int32_t get(int32_t v)
    {
        return v;
    }
};
template <> struct arg_key<int64_t> {
    using K = int64_t;
    static __device__ __forceinline__ int64_t get(int64_t v)
    {
        return v;
    }
};

template <typename T>
__global__ void arg_kernel(const T *__restrict__ x, int64_t *__restrict__ y, int64_t outer,
                           int64_t A, int64_t inner, int is_max, int last)
{
    using K = typename arg_key<T>::K;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * inner)
        return;
    int64_t o = i / inner, k = i % inner;
    const T *p = x + o * A * inner + k;
    K best = arg_key<T>::get(p[0]);
    int64_t at = 0;
    for (int64_t j = 1; j < A; j++) {
        K v = arg_key<T>::get(p[j * inner]);
        bool better;
        if (v != v)
            better = best == best || last;
        else if (best != best)
            better = false;
        else
            better = is_max ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
        if (better) {
            best = v;
            at = j;
        }
    }
    y[i] = at;
}

template <typename T>
cudaError_t bag(const void *w, const void *ids, ferry_dtype idt, void *y, int64_t N, int64_t L,
                int64_t rows, int64_t D, int mode, cudaStream_t s)
{
    int64_t n = N * D;
    if (n <= 0)
        return cudaSuccess;
    unsigned blocks = (unsigned)((n + 255) / 256);
    if (idt == FERRY_I64)
        embedding_bag_kernel<T, int64_t><<<blocks, 256, 0, s>>>((const T *)w, (const int64_t *)ids,
                                                                (T *)y, N, L, rows, D, mode);
    else
        embedding_bag_kernel<T, int32_t><<<blocks, 256, 0, s>>>((const T *)w, (const int32_t *)ids,
                                                                (T *)y, N, L, rows, D, mode);
    return cudaGetLastError();
}

template <typename T>
cudaError_t arg(const void *x, int64_t *y, int64_t outer, int64_t A, int64_t inner, int is_max,
                int last, cudaStream_t s)
{
    int64_t n = outer * inner;
    if (n <= 0)
        return cudaSuccess;
    arg_kernel<T><<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const T *)x, y, outer, A, inner,
                                                              is_max, last);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kern_embedding_bag(const void *w, const void *ids, ferry_dtype idt, void *y,
                                          int64_t N, int64_t L, int64_t rows, int64_t D, int mode,
                                          ferry_dtype dt, cudaStream_t s)
{
    switch (dt) {
    case FERRY_F16: return bag<__half>(w, ids, idt, y, N, L, rows, D, mode, s);
    case FERRY_BF16: return bag<__nv_bfloat16>(w, ids, idt, y, N, L, rows, D, mode, s);
    default: return bag<float>(w, ids, idt, y, N, L, rows, D, mode, s);
    }
}

extern "C" cudaError_t kern_arg_reduce(const void *x, int64_t *y, int64_t outer, int64_t A,
                                       int64_t inner, int is_max, int last, ferry_dtype dt,
                                       cudaStream_t s)
{
    switch (dt) {
    case FERRY_F16: return arg<__half>(x, y, outer, A, inner, is_max, last, s);
    case FERRY_BF16: return arg<__nv_bfloat16>(x, y, outer, A, inner, is_max, last, s);
    case FERRY_I32: return arg<int32_t>(x, y, outer, A, inner, is_max, last, s);
    case FERRY_I64: return arg<int64_t>(x, y, outer, A, inner, is_max, last, s);
    default: return arg<float>(x, y, outer, A, inner, is_max, last, s);
    }
}
