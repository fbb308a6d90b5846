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
 * arrive while earlier layers compute. Each block stores the 16 x N/C
 * activations it computed straight into every cluster block's copy of the
 * next layer's input (distributed shared memory), and one cluster barrier
 * per layer publishes them. The
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

/* Rows in shared memory are padded by 8 elements (16 bytes), so that the
 * 16 rows of a tensor-core fragment fall on different banks. */
constexpr int kPad = 8;

/* Shared memory layout, in bytes; the same arithmetic on host and device. */
struct layout {
    size_t x0, x1, scratch, ytile, w0, total; /* weights of layer l follow layer l-1's */
};

__host__ __device__ inline size_t bump_size(size_t bytes)
{
    return (bytes + 127) & ~(size_t)127;
}

__host__ __device__ inline size_t bump(size_t *at, size_t bytes)
{
    size_t here = *at;
    *at = (here + bytes + 127) & ~(size_t)127;
    return here;
}

/* Shared bytes of layer l's weight slice: N/C padded rows of K. */
__host__ __device__ inline size_t w_bytes(const kern_mlp &m, int l)
{
    return (size_t)(m.dims[l + 1] / C) * (m.dims[l] + kPad) * 2;
}

__host__ __device__ inline layout make_layout(const kern_mlp &m)
{
    layout L = {};
    int kmax = 0;
    for (int l = 0; l < m.n_layers; l++)
        if (m.dims[l] > kmax)
            kmax = m.dims[l];
    size_t at = 0;
    L.x0 = bump(&at, (size_t)R * (kmax + kPad) * 2);
    L.x1 = bump(&at, (size_t)R * (kmax + kPad) * 2);
    L.scratch = bump(&at, (size_t)kWarps * 256 * 4);
    L.ytile = bump(&at, (size_t)R * (m.dims[m.n_layers] / C) * 4);
    L.w0 = at;
    for (int l = 0; l < m.n_layers; l++)
        bump(&at, w_bytes(m, l));
    L.total = at;
    return L;
}

/* Every block of the cluster holds the layer's whole 16-row input in x[l&1]
 * (row stride K + kPad): each block pushes the columns it computed into all
 * blocks' buffers with distributed-shared-memory stores, and one cluster
 * barrier per layer publishes them. Double buffering makes that one barrier
 * enough: a block writes x[(l+1)&1] while its peers may still read x[l&1]. */
template <typename T, typename XT, typename YT>
__global__ void __cluster_dims__(C, 1, 1) __launch_bounds__(kThreads)
    mlp_kernel(const kern_mlp m, const XT *__restrict__ x, YT *__restrict__ y, int64_t n)
{
    extern __shared__ __align__(128) unsigned char sm[];
    cg::cluster_group cl = cg::this_cluster();
    const unsigned rank = cl.block_rank();
    const int64_t row0 = (int64_t)(blockIdx.x / C) * R;
    const layout L = make_layout(m);
    T *const x0 = (T *)(sm + L.x0), *const x1 = (T *)(sm + L.x1);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    float *sc = (float *)(sm + L.scratch) + warp * 256;
    YT *ytile = (YT *)(sm + L.ytile);

    /* No block may touch another's shared memory before that block has
     * started: arrive at the cluster barrier now, wait just before the
     * first remote store (the weight copies are queued in between). */
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");

    /* Every layer's weight slice (rows [rank*N/C, (rank+1)*N/C) of [N][K],
     * contiguous in memory), one commit group per layer. */
    for (int l = 0, woff = (int)L.w0; l < m.n_layers; woff += (int)bump_size(w_bytes(m, l)), l++) {
        const int K = m.dims[l], ns = m.dims[l + 1] / C, vpr = K * (int)sizeof(T) / 16;
        const char *src = (const char *)m.w[l] + (size_t)rank * ns * K * sizeof(T);
        char *dst = (char *)(sm + woff);
        for (int i = tid; i < ns * vpr; i += kThreads) {
            const int r = i / vpr, v = i - r * vpr;
            __pipeline_memcpy_async(dst + ((size_t)r * (K + kPad) * sizeof(T)) + (size_t)v * 16,
                                    src + (size_t)i * 16, 16);
        }
        __pipeline_commit();
    }

    asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");

    /* This block's columns [rank*K0/C, ...) of the 16 input rows (zero past
     * n), read in 16-byte vectors (x may be host memory, where each access
     * is a PCIe transaction) and pushed to every block's x[0]. */
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
            T t[E];
#pragma unroll
            for (int e = 0; e < E; e++)
                t[e] = from_f<T>(to_f(u.e[e]));
            const int at = r * (K0 + kPad) + (int)rank * ks + v * E;
            for (int dst = 0; dst < C; dst++) {
                T *p = cl.map_shared_rank(x0, dst) + at;
#pragma unroll
                for (int e = 0; e < E; e++)
                    p[e] = t[e];
            }
        }
    }

    for (int l = 0, woff = (int)L.w0; l < m.n_layers; woff += (int)bump_size(w_bytes(m, l)), l++) {
        const int K = m.dims[l], N = m.dims[l + 1], ns = N / C;
        const bool last = l == m.n_layers - 1;
        const T *cur = (l & 1) ? x1 : x0;
        T *nxt = (l & 1) ? x0 : x1;
        const T *w = (const T *)(sm + woff);
        const T *bias = (const T *)m.bias[l];

        __pipeline_wait_prior(m.n_layers - 1 - l);
        cl.sync(); /* the layer's input is complete in every block; weights are here */

        for (int j = warp; j < ns / 16; j += kWarps) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int k = 0; k < K; k += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
                wmma::load_matrix_sync(a, cur + k, K + kPad);
                wmma::load_matrix_sync(b, w + (size_t)j * 16 * (K + kPad) + k, K + kPad);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(sc, acc, 16, wmma::mem_row_major);
            __syncwarp();
            /* lane: row lane/2, 8 consecutive columns */
            const int r = lane >> 1, c0 = (lane & 1) * 8;
            const int col = (int)rank * ns + j * 16 + c0; /* column of N */
            union {
                int4 q;
                T e[8];
            } u;
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float v = sc[r * 16 + c0 + c];
                if (bias)
                    v += to_f(bias[col + c]);
                v = ferry_cuda::unary(m.act[l], v, m.act_alpha[l]);
                if (last)
                    ytile[r * ns + j * 16 + c0 + c] = from_f<YT>(v);
                else
                    u.e[c] = from_f<T>(v);
            }
            if (!last)
                for (int dst = 0; dst < C; dst++)
                    *(int4 *)(cl.map_shared_rank(nxt, dst) + r * (N + kPad) + col) = u.q;
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
    }
    /* No barrier at the end: the last remote stores into this block landed
     * before the last layer's cluster barrier. */
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
