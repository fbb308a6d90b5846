/*
 * kernels_topk.cu - TopK (torch.topk, and torch.sort, which exports as a
 * TopK of the whole axis): the k best elements of each line along the
 * middle axis of [outer, A, inner], best first, with their int64 indices,
 * in the CPU backend's order (cpu_topk.c): the larger (smaller) value
 * first, the lower index on a tie, NaN above every number as torch orders
 * it.
 *
 * With the index deciding ties that order is total, so the output is the
 * first k of the line sorted. K runs from 1 (top-5 of 1000 classes) to A
 * (a sort of a few thousand), too many for a per-thread heap of k as on
 * the CPU, so both kernels place every element by the whole line:
 * - A <= kSortMax: one block a line loads it (key and index, at most
 *   48 KiB, the shared memory a block gets without opting in) and
 *   bitonic-sorts it, padded to a power of two: O(A log^2 A)
 *   compare-exchanges over the block, one barrier a step, whatever k.
 * - longer lines: each thread owns one element and counts the elements
 *   ranked before it, the line streamed through shared memory a tile at a
 *   time; a count below k is the element's output position. O(A^2) a
 *   line, but exact for any k and with no scratch memory; a block stops
 *   once all its elements count k or more, which for a small k is most
 *   blocks. A radix select would do better there if a model needs it.
 * Nothing is allocated and nothing waits for the host: a forward holding
 * it can be captured.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

/* Longest line the shared-memory sort takes: 4096 keys of 8 bytes and
 * their 4-byte indices fill the 48 KiB a block may use by default. */
constexpr int64_t kSortMax = 4096;
static_assert(kSortMax * (8 + 4) <= 48 * 1024, "the sort's shared memory needs no opt-in");

/* Elements of the line in shared memory at once in the counting kernel. */
constexpr int kTile = 1024;

/* The key a line is ordered by: floats compare in fp32 (exact for f16 and
 * bf16, NaN kept), integers as themselves. */
template <typename T> struct key_of {
    using t = float;
};
template <> struct key_of<int32_t> {
    using t = int32_t;
};
template <> struct key_of<int64_t> {
    using t = int64_t;
};

__device__ __forceinline__ float key(float v)
{
    return v;
}
__device__ __forceinline__ float key(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ float key(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
__device__ __forceinline__ int32_t key(int32_t v)
{
    return v;
}
__device__ __forceinline__ int64_t key(int64_t v)
{
    return v;
}

__device__ __forceinline__ bool is_nan(float v)
{
    return isnan(v);
}
__device__ __forceinline__ bool is_nan(int32_t)
{
    return false;
}
__device__ __forceinline__ bool is_nan(int64_t)
{
    return false;
}

/* Whether element (a at index ia) ranks before (b at ib): cpu_topk.c's
 * ranks(). */
template <typename K>
__device__ __forceinline__ bool ranks(K a, int64_t ia, K b, int64_t ib, bool largest)
{
    bool na = is_nan(a), nb = is_nan(b);
    if (na || nb)
        return na != nb ? na == largest : ia < ib;
    if (a != b)
        return largest ? a > b : a < b;
    return ia < ib;
}

/* One block a line (grid-stride over the outer * inner lines): the line's
 * A keys and indices go to shared memory, padded with indices A..P-1 that
 * rank after every element, and a bitonic network sorts the P (a power of
 * two) entries best first; the first k are written. Compare-exchange
 * t of a step pairs i (bit `stride` clear) with i + stride; i's bit `size`
 * says whether its run sorts best first or worst first, and the last merge
 * (size = P) sorts the whole array best first. */
template <typename T>
__global__ void topk_sort_kernel(const T *__restrict__ x, T *__restrict__ v,
                                 int64_t *__restrict__ idx, int64_t lines, int64_t A, int64_t inner,
                                 int64_t k, int P, bool largest)
{
    using K = typename key_of<T>::t;
    extern __shared__ __align__(16) unsigned char topk_smem[];
    K *sk = (K *)topk_smem;
    int *si = (int *)(sk + P);
    for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
        int64_t o = line / inner, c = line % inner;
        const T *xl = x + o * A * inner + c;
        __syncthreads(); /* the previous line's writes still read si */
        for (int j = threadIdx.x; j < P; j += blockDim.x) {
            si[j] = j;
            sk[j] = j < A ? key(xl[j * inner]) : K(0);
        }
        __syncthreads();
        for (int size = 2; size <= P; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                for (int t = threadIdx.x; t < P / 2; t += blockDim.x) {
                    int i = 2 * t - (t & (stride - 1)), l = i + stride;
                    bool up = (i & size) == 0;
                    K ki = sk[i], kl = sk[l];
                    int ii = si[i], il = si[l];
                    /* padding (an index >= A) ranks last, by index */
                    bool l_first = (ii >= A || il >= A) ? il < ii : ranks(kl, il, ki, ii, largest);
                    if (l_first == up) {
                        sk[i] = kl;
                        sk[l] = ki;
                        si[i] = il;
                        si[l] = ii;
                    }
                }
                __syncthreads();
            }
        int64_t out = o * k * inner + c;
        for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
            int64_t j = si[r];
            if (v)
                v[out + r * inner] = xl[j * inner];
            if (idx)
                idx[out + r * inner] = j;
        }
    }
}

/* One thread an element (blocks grid-stride over the lines' chunks of
 * blockDim.x elements): its rank is the number of elements of its line
 * ranked before it, counted against kTile elements a step staged in shared
 * memory (every thread reads the same one: a broadcast). Ranks are a
 * permutation of 0..A-1, so those below k fill the output exactly. */
template <typename T>
__global__ void topk_rank_kernel(const T *__restrict__ x, T *__restrict__ v,
                                 int64_t *__restrict__ idx, int64_t lines, int64_t A, int64_t inner,
                                 int64_t k, bool largest)
{
    using K = typename key_of<T>::t;
    __shared__ K tk[kTile];
    int64_t chunks = (A + blockDim.x - 1) / blockDim.x;
    for (int64_t b = blockIdx.x; b < lines * chunks; b += gridDim.x) {
        int64_t line = b / chunks, j = (b % chunks) * blockDim.x + threadIdx.x;
        int64_t o = line / inner, c = line % inner;
        const T *xl = x + o * A * inner + c;
        bool mine = j < A;
        K kj = mine ? key(xl[j * inner]) : K(0);
        int64_t rank = 0;
        /* Every pass of this loop ends on a barrier, after the tile's last
         * read: the next pass (or chunk) may overwrite tk. */
        for (int64_t t0 = 0; t0 < A; t0 += kTile) {
            int n = (int)(A - t0 < kTile ? A - t0 : kTile);
            for (int q = threadIdx.x; q < n; q += blockDim.x)
                tk[q] = key(xl[(t0 + q) * inner]);
            __syncthreads();
            if (mine && rank < k)
                for (int q = 0; q < n; q++)
                    rank += ranks(tk[q], t0 + q, kj, j, largest);
            if (__syncthreads_and(!mine || rank >= k))
                break;
        }
        if (mine && rank < k) {
            int64_t out = o * k * inner + c + rank * inner;
            if (v)
                v[out] = xl[j * inner];
            if (idx)
                idx[out] = j;
        }
    }
}

inline unsigned blocks_for(int64_t n)
{
    return (unsigned)(n < (1 << 20) ? n : (1 << 20));
}

template <typename T>
cudaError_t topk_launch(const void *x, void *v, int64_t *idx, int64_t outer, int64_t A,
                        int64_t inner, int64_t k, int largest, cudaStream_t s)
{
    int64_t lines = outer * inner;
    if (A <= kSortMax) {
        int P = 1;
        while (P < A)
            P <<= 1;
        int threads = P / 2 < 32 ? 32 : P / 2 > 512 ? 512 : P / 2;
        size_t shm = (size_t)P * (sizeof(typename key_of<T>::t) + sizeof(int));
        topk_sort_kernel<T><<<blocks_for(lines), threads, shm, s>>>(
            (const T *)x, (T *)v, idx, lines, A, inner, k, P, largest != 0);
    } else {
        const int threads = 256;
        int64_t chunks = (A + threads - 1) / threads;
        topk_rank_kernel<T><<<blocks_for(lines * chunks), threads, 0, s>>>(
            (const T *)x, (T *)v, idx, lines, A, inner, k, largest != 0);
    }
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kern_topk(const void *x, void *v, int64_t *idx, int64_t outer, int64_t A,
                                 int64_t inner, int64_t k, int largest, ferry_dtype dt,
                                 cudaStream_t s)
{
    if (outer * inner * k <= 0 || (!v && !idx))
        return cudaSuccess;
    switch (dt) {
    case FERRY_F32: return topk_launch<float>(x, v, idx, outer, A, inner, k, largest, s);
    case FERRY_F16: return topk_launch<__half>(x, v, idx, outer, A, inner, k, largest, s);
    case FERRY_BF16: return topk_launch<__nv_bfloat16>(x, v, idx, outer, A, inner, k, largest, s);
    case FERRY_I32: return topk_launch<int32_t>(x, v, idx, outer, A, inner, k, largest, s);
    case FERRY_I64: return topk_launch<int64_t>(x, v, idx, outer, A, inner, k, largest, s);
    default: return cudaErrorInvalidValue;
    }
}
