/*
 * storage.cuh - fp32 views of the storage dtypes (f32, f16, bf16) for the
 * .cu kernels: every kernel loads through to_f, computes and accumulates in
 * fp32, and stores through from_f<T> (round to nearest even).
 */
#ifndef FERRY_CUDA_STORAGE_CUH
#define FERRY_CUDA_STORAGE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

} // namespace ferry_cuda

#endif
