/*
 * kernels_mlp.cu - a whole small MLP (a chain of Gemm + bias + activation
 * layers) in one kernel, for small batches in fp16 or bf16.
 *
 * Why: at small batches every cuBLASLt call and every kernel launch costs the
 * host 4-7 us (measured on an H200, bench/gpu/api_cost.cu) and the device a
 * gap between dependent kernels, while the math is a few microseconds. A
 * forward of mlp-s at batch 32 was 5 launches (cast in, 3 matmuls, cast out)
 * and 38 us of host time; here it is one launch, which can also read its
 * input from and write its output to pinned host memory directly, so a whole
 * batch is one launch and one event.
 *
 * How: a thread-block cluster of KERN_MLP_CLUSTER blocks owns 16 rows. Block
 * r of the cluster computes columns [r*N/C, (r+1)*N/C) of every layer, so it
 * only ever needs that slice of each weight matrix: all slices are copied to
 * shared memory with cp.async at the start (one commit group per layer) and
 * arrive while earlier layers compute. After a layer each block holds a
 * 16 x N/C slice of the activations; the next layer gathers the full 16 x N
 * rows from the cluster's blocks through distributed shared memory. The
 * matmuls are 16x16x16 tensor-core tiles with fp32 accumulators; bias and
 * activation are applied in fp32 and the result rounded to the compute dtype
 * (as cuBLASLt's epilogue does), the last layer is written in the output's
 * dtype. Weights are [N][K] (nn.Linear's layout), so a block's slice is
 * contiguous.
 */
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <mma.h>
#include <stdint.h>

#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

namespace cg = cooperative_groups;
using namespace nvcuda;
using ferry_cuda::from_f;
using ferry_cuda::to_f;

constexpr int C = KERN_MLP_CLUSTER;
constexpr int R = KERN_MLP_ROWS;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

/* Shared memory layout, in bytes; the same arithmetic on host and device. */
struct layout {
    size_t xfull, slice0, slice1, scratch, ytile, w[KERN_MLP_MAX_LAYERS], total;
};

__host__ __device__ inline layout make_layout(const kern_mlp &m)
{
    layout L = {};
    int kmax = 0, smax = m.dims[0] / C;
    for (int l = 0; l < m.n_layers; l++) {
        if (m.dims[l] > kmax)
            kmax = m.dims[l];
        if (m.dims[l + 1] / C > smax)
            smax = m.dims[l + 1] / C;
    }
    size_t at = 0;
    L.xfull = at;
    at = (at + (size_t)R * kmax * 2 + 127) & ~(size_t)127;
    L.slice0 = at;
    at = (at + (size_t)R * smax * 2 + 127) & ~(size_t)127;
    L.slice1 = at;
    at = (at + (size_t)R * smax * 2 + 127) & ~(size_t)127;
    L.scratch = at;
    at = (at + (size_t)kWarps * 256 * 4 + 127) & ~(size_t)127;
    L.ytile = at;
    at = (at + (size_t)R * (m.dims[m.n_layers] / C) * 4 + 127) & ~(size_t)127;
    for (int l = 0; l < m.n_layers; l++) {
        L.w[l] = at;
        at = (at + (size_t)(m.dims[l + 1] / C) * m.dims[l] * 2 + 127) & ~(size_t)127;
    }
    L.total = at;
    return L;
}

template <typename T, typename XT, typename YT>
__global__ void __cluster_dims__(C, 1, 1) __launch_bounds__(kThreads)
    mlp_kernel(const kern_mlp m, const XT *__restrict__ x, YT *__restrict__ y, int64_t n)
{
    extern __shared__ __align__(128) unsigned char sm[];
    cg::cluster_group cl = cg::this_cluster();
    const unsigned rank = cl.block_rank();
    const int64_t row0 = (int64_t)(blockIdx.x / C) * R;
    const layout L = make_layout(m);
    T *xfull = (T *)(sm + L.xfull);
    T *slices[2] = {(T *)(sm + L.slice0), (T *)(sm + L.slice1)};
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    float *sc = (float *)(sm + L.scratch) + warp * 256;
    YT *ytile = (YT *)(sm + L.ytile);

    /* Every layer's weight slice, one commit group per layer. */
    for (int l = 0; l < m.n_layers; l++) {
        const int K = m.dims[l], ns = m.dims[l + 1] / C;
        const char *src = (const char *)m.w[l] + (size_t)rank * ns * K * sizeof(T);
        char *dst = (char *)(sm + L.w[l]);
        const int nvec = ns * K * (int)sizeof(T) / 16;
        for (int i = tid; i < nvec; i += kThreads)
            __pipeline_memcpy_async(dst + (size_t)i * 16, src + (size_t)i * 16, 16);
        __pipeline_commit();
    }

    /* This block's slice of the input, 16 rows x K0/C columns (zero past
     * n), read in 16-byte vectors: x may be host memory, where every access
     * is a PCIe transaction. */
    {
        constexpr int E = 16 / sizeof(XT);
        const int K0 = m.dims[0], ks = K0 / C, vpr = ks / E;
        for (int i = tid; i < R * vpr; i += kThreads) {
            const int r = i / vpr, v = i - r * vpr;
            const int64_t row = row0 + r;
            union {
                int4 q;
                XT e[E];
            } u;
            if (row < n)
                u.q = ((const int4 *)(x + row * K0 + (int64_t)rank * ks))[v];
            else
                u.q = make_int4(0, 0, 0, 0);
#pragma unroll
            for (int e = 0; e < E; e++)
                slices[0][r * ks + v * E + e] = from_f<T>(to_f(u.e[e]));
        }
    }

    for (int l = 0; l < m.n_layers; l++) {
        const int K = m.dims[l], N = m.dims[l + 1], ks = K / C, ns = N / C;
        const bool last = l == m.n_layers - 1;
        T *cur = slices[l & 1], *nxt = slices[(l + 1) & 1];
        const T *w = (const T *)(sm + L.w[l]);
        const T *bias = (const T *)m.bias[l];

        /* Every block's slice of this layer's input is written. */
        cl.sync();
        const int vpr = ks * (int)sizeof(T) / 16; /* 16-byte vectors per row of a slice */
        for (int i = tid; i < C * R * vpr; i += kThreads) {
            const int src_rank = i / (R * vpr), rem = i - src_rank * R * vpr;
            const int r = rem / vpr, v = rem - r * vpr;
            const int4 *src = (const int4 *)cl.map_shared_rank(cur, src_rank) + r * vpr + v;
            ((int4 *)(xfull + (size_t)r * K + (size_t)src_rank * ks))[v] = *src;
        }
        __pipeline_wait_prior(m.n_layers - 1 - l);
        __syncthreads();

        for (int j = warp; j < ns / 16; j += kWarps) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int k = 0; k < K; k += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
                wmma::load_matrix_sync(a, xfull + k, K);
                wmma::load_matrix_sync(b, w + (size_t)j * 16 * K + k, K);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(sc, acc, 16, wmma::mem_row_major);
            __syncwarp();
            const int r = lane >> 1, c0 = (lane & 1) * 8;
            const int col = (int)rank * ns + j * 16 + c0; /* column of N */
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float v = sc[r * 16 + c0 + c];
                if (bias)
                    v += to_f(bias[col + c]);
                v = ferry_cuda::unary(m.act[l], v, m.act_alpha[l]);
                if (!last)
                    nxt[r * ns + j * 16 + c0 + c] = from_f<T>(v);
                else
                    ytile[r * ns + j * 16 + c0 + c] = from_f<YT>(v);
            }
            __syncwarp();
        }
        if (last) {
            /* the block's 16 x N/C output slice, row by row in 16-byte
             * vectors, so that host memory sees few, full transactions */
            __syncthreads();
            constexpr int E = 16 / sizeof(YT);
            const int vpr = ns / E;
            for (int i = tid; i < R * vpr; i += kThreads) {
                const int r = i / vpr, v = i - r * vpr;
                const int64_t row = row0 + r;
                if (row < n)
                    ((int4 *)(y + row * N + (int64_t)rank * ns))[v] =
                        ((const int4 *)(ytile + r * ns))[v];
            }
        }
        /* xfull is rewritten by the next layer's gather */
        __syncthreads();
    }
    /* Output may be pinned host memory: make it visible before the kernel
     * completes; then stay resident until every block of the cluster has
     * read this block's slices. */
    __threadfence_system();
    cl.sync();
}

template <typename T, typename XT, typename YT> cudaError_t set_smem(size_t bytes)
{
    return cudaFuncSetAttribute(mlp_kernel<T, XT, YT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)bytes);
}

template <typename T, typename XT> cudaError_t set_smem_y(ferry_dtype ydt, size_t bytes)
{
    switch (ydt) {
    case FERRY_F16: return set_smem<T, XT, __half>(bytes);
    case FERRY_BF16: return set_smem<T, XT, __nv_bfloat16>(bytes);
    default: return set_smem<T, XT, float>(bytes);
    }
}

template <typename T, typename XT, typename YT>
cudaError_t launch(const kern_mlp *m, const void *x, void *y, int64_t n, cudaStream_t s)
{
    const size_t smem = make_layout(*m).total;
    const int64_t clusters = (n + R - 1) / R;
    mlp_kernel<T, XT, YT>
        <<<(unsigned)(clusters * C), kThreads, smem, s>>>(*m, (const XT *)x, (YT *)y, n);
    return cudaGetLastError();
}

template <typename T, typename XT>
cudaError_t launch_y(const kern_mlp *m, const void *x, void *y, ferry_dtype ydt, int64_t n,
                     cudaStream_t s)
{
    switch (ydt) {
    case FERRY_F16: return launch<T, XT, __half>(m, x, y, n, s);
    case FERRY_BF16: return launch<T, XT, __nv_bfloat16>(m, x, y, n, s);
    default: return launch<T, XT, float>(m, x, y, n, s);
    }
}

template <typename T>
cudaError_t launch_xy(const kern_mlp *m, const void *x, ferry_dtype xdt, void *y, ferry_dtype ydt,
                      int64_t n, cudaStream_t s)
{
    switch (xdt) {
    case FERRY_F16: return launch_y<T, __half>(m, x, y, ydt, n, s);
    case FERRY_BF16: return launch_y<T, __nv_bfloat16>(m, x, y, ydt, n, s);
    default: return launch_y<T, float>(m, x, y, ydt, n, s);
    }
}

} // namespace

extern "C" size_t kern_mlp_smem(const kern_mlp *m)
{
    if (m->n_layers < 1 || m->n_layers > KERN_MLP_MAX_LAYERS)
        return 0;
    for (int l = 0; l <= m->n_layers; l++)
        if (m->dims[l] <= 0 || m->dims[l] % (C * 16) != 0)
            return 0;
    return make_layout(*m).total;
}

extern "C" cudaError_t kern_mlp_prepare(const kern_mlp *m, ferry_dtype cdt)
{
    const size_t bytes = kern_mlp_smem(m);
    static const ferry_dtype io[3] = {FERRY_F32, FERRY_F16, FERRY_BF16};
    for (int i = 0; i < 3; i++)
        for (int o = 0; o < 3; o++) {
            cudaError_t e;
            if (cdt == FERRY_BF16)
                e = io[i] == FERRY_F16    ? set_smem_y<__nv_bfloat16, __half>(io[o], bytes)
                    : io[i] == FERRY_BF16 ? set_smem_y<__nv_bfloat16, __nv_bfloat16>(io[o], bytes)
                                          : set_smem_y<__nv_bfloat16, float>(io[o], bytes);
            else
                e = io[i] == FERRY_F16    ? set_smem_y<__half, __half>(io[o], bytes)
                    : io[i] == FERRY_BF16 ? set_smem_y<__half, __nv_bfloat16>(io[o], bytes)
                                          : set_smem_y<__half, float>(io[o], bytes);
            if (e != cudaSuccess)
                return e;
        }
    return cudaSuccess;
}

extern "C" cudaError_t kern_mlp_run(const kern_mlp *m, ferry_dtype cdt, const void *x,
                                    ferry_dtype xdt, void *y, ferry_dtype ydt, int64_t n,
                                    cudaStream_t s)
{
    if (cdt == FERRY_BF16)
        return launch_xy<__nv_bfloat16>(m, x, xdt, y, ydt, n, s);
    return launch_xy<__half>(m, x, xdt, y, ydt, n, s);
}
