/*
 * kernels_attention.cu - the fused multi-head attention node (graph
 * fuse_attention.c): softmax(scale * Q K^T + mask) V for every (batch entry,
 * head), Q, K and V read in place from their projections, the result
 * written straight into [B, T, heads*d].
 *
 * Why: unfused, BERT-base's attention at batch 256 in fp16 was four head
 * transposes, two strided-batched GEMMs and a softmax whose [B, H, T, T]
 * scores went through memory three times: ~40% of the model's time on an
 * H100 (issue 15). Here a block keeps its scores on chip, so the node moves
 * only Q, K, V and Y.
 *
 * How (16-bit, head_dim a multiple of 16 up to 128: attn_tc): one block
 * owns 16 query rows per warp of one (b, h) and walks the keys in tiles of
 * 64, flash-attention style, so that any sequence length fits a fixed
 * amount of shared memory: each K and V tile is staged in shared memory
 * (16-byte loads where the layout allows), each warp computes its 16 x 64
 * scores with 16x16x16 tensor-core tiles (fp32 accumulation), applies the
 * scale and the mask and updates a running max and sum per row (online
 * softmax: the rows' output so far is rescaled by exp(m_old - m_new)),
 * then adds P V, P rounded to the compute dtype as the tensor cores take
 * it. The output accumulator lives in shared memory (fp32) rather than in
 * WMMA fragments, whose element layout is opaque, so that its rows can be
 * rescaled. Few blocks (batch 1) would leave most SMs idle: then blocks of
 * fewer warps are launched.
 *
 * fp32 and tf32 (fp32 storage), and 16-bit heads of other widths up to
 * 256: attn_simt, the same loop on CUDA cores, a warp per query row at a
 * time and a lane per key of a 32-key tile (the dot product over d from
 * shared memory, K rows padded by one float so that lanes hit different
 * banks), each lane accumulating the output columns lane, lane + 32, ...
 *
 * Nothing is allocated and nothing synchronizes with the host: the node
 * can be captured in a CUDA graph. A row whose every key is masked with
 * -inf gives zeros (PyTorch gives NaN); masks of -1e4 or -1e9 (-inf in
 * fp16 storage) on some keys are exact.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>

#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using namespace nvcuda;
using ferry_cuda::from_f;
using ferry_cuda::to_f;

constexpr int kSms = 132; /* an H100's; only sizes how many blocks are enough */

__device__ __forceinline__ const void *mask_row(const kern_attention &a, int b, int h, int i,
                                                size_t esz)
{
    if (!a.mask || i >= a.Tq)
        return nullptr;
    int64_t off = b * a.mstride[0] + h * a.mstride[1] + i * a.mstride[2];
    return (const char *)a.mask + off * (int64_t)esz;
}

/* ------------------------------------------------------ tensor cores */

constexpr int kKeys = 64; /* keys per tile */
constexpr int kPadH = 8;  /* 16-bit elements of padding per shared row: 16 bytes, other banks */
constexpr int kPadF = 4;  /* floats of padding per shared fp32 row */
constexpr int kMaxTcD = 128;

/* Shared memory of attn_tc in bytes for head_dim d, `qwarps` groups of 16
 * query rows and `split` warps per group: Q rows, `split` K and V tiles
 * (16-bit), and per warp its scores (fp32), its P (16-bit), its output
 * accumulator (fp32), a float per row and its rows' running max and sum
 * (for the split's final combine). Every region is a multiple of 32
 * bytes, as WMMA's pointers must be aligned. */
struct tc_layout {
    size_t q, k, v, s, p, o, row, ml, total;
};

__host__ __device__ inline tc_layout tc_make(int d, int qwarps, int split)
{
    tc_layout L;
    size_t qrows = 16 * (size_t)qwarps, rows = qrows * split, at = 0;
    L.q = at, at += qrows * (d + kPadH) * 2;
    L.k = at, at += (size_t)split * kKeys * (d + kPadH) * 2;
    L.v = at, at += (size_t)split * kKeys * (d + kPadH) * 2;
    L.s = at, at += rows * (kKeys + kPadF) * 4;
    L.p = at, at += rows * (kKeys + kPadH) * 2;
    L.o = at, at += rows * (d + kPadF) * 4;
    L.row = at, at += rows * 4;
    L.ml = at, at += rows * 2 * 4;
    L.total = at;
    return L;
}

/* The (query warps, split) shapes launch() may pick: at most 4 warps, and
 * a split of 4 only for heads up to 64 wide (4 K and V tiles of 128 would
 * need ~200 KB, more than an A100's 163). */
constexpr int kTcShapes[][2] = {{4, 1}, {2, 1}, {1, 1}, {1, 2}, {1, 4}};

__host__ __device__ inline bool tc_split_ok(int d, int split)
{
    return split <= 2 || d <= 64;
}

/* rows x d of a source into shared rows of ldd, rows past `valid` zero
 * (their scores are masked, and zero V rows keep 0 * V finite). vec: 16-byte
 * loads (d, ld and the pointer allow them), kLoadBatch of them issued
 * before the first is stored: with one warp a block (batch 1: a few dozen
 * blocks) a load-store loop waited out the memory latency once per 16
 * bytes, 16 times per 64 x 64 tile of K and of V, and the node took 43 us
 * a layer for 12 heads x 128 x 128 on an H200 (43% of BERT-base's GPU time
 * at batch 1, FERRY_CUDA_PROFILE). */
constexpr int kLoadBatch = 8;

template <typename T>
__device__ void load_rows(T *dst, int ldd, const T *src, int64_t ld, int valid, int rows, int d,
                          bool vec)
{
    if (vec) {
        const int per = d / 8, total = rows * per, step = blockDim.x;
        for (int base = threadIdx.x; base < total; base += step * kLoadBatch) {
            uint4 x[kLoadBatch];
#pragma unroll
            for (int j = 0; j < kLoadBatch; j++) {
                int i = base + j * step, r = i / per;
                x[j] = make_uint4(0, 0, 0, 0);
                if (i < total && r < valid)
                    x[j] = *(const uint4 *)(src + r * ld + (i - r * per) * 8);
            }
#pragma unroll
            for (int j = 0; j < kLoadBatch; j++) {
                int i = base + j * step, r = i / per;
                if (i < total)
                    *(uint4 *)(dst + r * ldd + (i - r * per) * 8) = x[j];
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
        int r = i / d, c = i % d;
        dst[r * ldd + c] = r < valid ? src[r * ld + c] : from_f<T>(0.0f);
    }
}

/* This warp's 16 x 64 scores S = Q K^T into ss (fp32, ld kKeys + kPadF). */
template <typename T> __device__ void tc_scores(const T *qw, const T *ks, float *ss, int d)
{
    for (int n = 0; n < kKeys / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < d; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
            wmma::load_matrix_sync(fa, qw + kk, d + kPadH);
            wmma::load_matrix_sync(fb, ks + n * 16 * (d + kPadH) + kk, d + kPadH);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(ss + n * 16, acc, kKeys + kPadF, wmma::mem_row_major);
    }
}

/* The online softmax of one tile for row r of this warp, two lanes a row
 * (half: columns 32*half ..): P into ps, the factor that rescales the
 * row's output so far into corr[r]; m and l are the row's running max and
 * sum, the same in both lanes. */
template <typename T>
__device__ void tc_softmax(const float *ss, T *ps, float *corr, const T *mrow, int k0, int kv,
                           float scale, float &m, float &l)
{
    int lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    float sv[32], tmax = -INFINITY;
#pragma unroll
    for (int j = 0; j < 32; j++) {
        int c = half * 32 + j;
        float s = -INFINITY;
        if (c < kv)
            s = ss[r * (kKeys + kPadF) + c] * scale + (mrow ? to_f(mrow[k0 + c]) : 0.0f);
        sv[j] = s;
        tmax = fmaxf(tmax, s);
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    float mnew = fmaxf(m, tmax);
    float base = mnew == -INFINITY ? 0.0f : mnew; /* all masked so far: exp(-inf) = 0 */
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; j++) {
        float p = __expf(sv[j] - base);
        sum += p;
        ps[r * (kKeys + kPadH) + half * 32 + j] = from_f<T>(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    float c = __expf(m - base);
    l = l * c + sum;
    m = mnew;
    if (!half)
        corr[r] = c;
}

/* This warp's output rows os (fp32, ld d + kPadF) = os * corr + P V. */
template <typename T>
__device__ void tc_accumulate(float *os, const float *corr, const T *ps, const T *vs, int d)
{
    int lane = threadIdx.x & 31;
    for (int r = 0; r < 16; r++)
        for (int c = lane; c < d; c += 32)
            os[r * (d + kPadF) + c] *= corr[r];
    __syncwarp();
    for (int n = 0; n < d / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, os + n * 16, d + kPadF, wmma::mem_row_major);
        for (int kk = 0; kk < kKeys; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
            wmma::load_matrix_sync(fa, ps + kk, kKeys + kPadH);
            wmma::load_matrix_sync(fb, vs + kk * (d + kPadH) + n * 16, d + kPadH);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(os + n * 16, acc, d + kPadF, wmma::mem_row_major);
    }
}

/* split > 1 (few blocks: batch 1): the `split` warps of a query group
 * walk the keys in turn, warp g of a group taking tiles g, g + split, ...,
 * each with its own running max, sum and output; the block loads `split`
 * tiles at a time, and at the end the group's partial results are
 * combined: O = sum_g O_g e^(m_g - M) / sum_g l_g e^(m_g - M), M = max_g
 * m_g. At batch 1 a layer of BERT-base is 12 heads x 8 query groups, 96
 * one-warp blocks for 132 SMs, each walking its 128 keys in two tiles one
 * after the other; split 2 walks both at once. */
template <typename T>
__global__ void __launch_bounds__(128) attn_tc(kern_attention a, int qtiles, int split, bool vec)
{
    extern __shared__ __align__(128) unsigned char smem[];
    const int d = a.d, warps = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int qwarps = warps / split, qw = w / split, kg = w % split;
    const tc_layout L = tc_make(d, qwarps, split);
    T *qs = (T *)(smem + L.q), *ks0 = (T *)(smem + L.k), *vs0 = (T *)(smem + L.v);
    T *ks = ks0 + kg * kKeys * (d + kPadH), *vs = vs0 + kg * kKeys * (d + kPadH);
    float *ss = (float *)(smem + L.s) + w * 16 * (kKeys + kPadF);
    T *ps = (T *)(smem + L.p) + w * 16 * (kKeys + kPadH);
    float *os = (float *)(smem + L.o) + w * 16 * (d + kPadF);
    float *corr = (float *)(smem + L.row) + w * 16;
    float *ml = (float *)(smem + L.ml);
    const int bh = blockIdx.x / qtiles, b = bh / a.heads, h = bh % a.heads;
    const int q0 = (blockIdx.x % qtiles) * 16 * qwarps;

    const T *q = (const T *)a.q + b * a.q_bs + q0 * a.q_rs + (int64_t)h * d;
    load_rows(qs, d + kPadH, q, a.q_rs, min(16 * qwarps, a.Tq - q0), 16 * qwarps, d, vec);
    for (int r = 0; r < 16; r++)
        for (int c = lane; c < d; c += 32)
            os[r * (d + kPadF) + c] = 0.0f;
    const int qi = q0 + qw * 16 + (lane >> 1);
    const T *mrow = (const T *)mask_row(a, b, h, qi, sizeof(T));
    float m = -INFINITY, l = 0.0f;

    const T *k = (const T *)a.k + b * a.k_bs + (int64_t)h * d;
    const T *v = (const T *)a.v + b * a.v_bs + (int64_t)h * d;
    for (int t0 = 0; t0 < a.Tk; t0 += kKeys * split) {
        __syncthreads(); /* every warp is done with the last tiles */
        for (int g = 0; g < split; g++) {
            int k0 = t0 + g * kKeys, kv = max(0, min(kKeys, a.Tk - k0));
            load_rows(ks0 + g * kKeys * (d + kPadH), d + kPadH, k + k0 * a.k_rs, a.k_rs, kv, kKeys,
                      d, vec);
            load_rows(vs0 + g * kKeys * (d + kPadH), d + kPadH, v + k0 * a.v_rs, a.v_rs, kv, kKeys,
                      d, vec);
        }
        __syncthreads();
        int k0 = t0 + kg * kKeys, kv = min(kKeys, a.Tk - k0);
        if (kv <= 0)
            continue; /* this warp's tile is past the keys; the others' are not */
        tc_scores(qs + qw * 16 * (d + kPadH), ks, ss, d);
        __syncwarp();
        tc_softmax(ss, ps, corr, mrow, k0, kv, a.scale, m, l);
        __syncwarp();
        tc_accumulate(os, corr, ps, vs, d);
        __syncwarp();
    }
    if (split > 1) {
        /* Each warp's rows' (m, l); then the group's first warp combines. */
        if (!(lane & 1)) {
            ml[(w * 16 + (lane >> 1)) * 2] = m;
            ml[(w * 16 + (lane >> 1)) * 2 + 1] = l;
        }
        __syncthreads();
        if (kg != 0)
            return;
        if (lane < 16) {
            float mm = -INFINITY, ll = 0.0f;
            for (int g = 0; g < split; g++)
                mm = fmaxf(mm, ml[((w + g) * 16 + lane) * 2]);
            float base = mm == -INFINITY ? 0.0f : mm;
            for (int g = 0; g < split; g++) {
                float f = __expf(ml[((w + g) * 16 + lane) * 2] - base);
                ll += ml[((w + g) * 16 + lane) * 2 + 1] * f;
                /* the factor each partial output is scaled by, over the sum */
                ml[((w + g) * 16 + lane) * 2] = f;
            }
            corr[lane] = ll > 0.0f ? 1.0f / ll : 0.0f;
        }
        __syncwarp();
        for (int r = 0; r < 16 && q0 + qw * 16 + r < a.Tq; r++) {
            T *y = (T *)a.y + b * a.y_bs + (int64_t)(q0 + qw * 16 + r) * a.y_rs + (int64_t)h * d;
            for (int c = lane; c < d; c += 32) {
                float acc = 0.0f;
                for (int g = 0; g < split; g++)
                    acc += ((float *)(smem + L.o))[((w + g) * 16 + r) * (d + kPadF) + c] *
                           ml[((w + g) * 16 + r) * 2];
                y[c] = from_f<T>(acc * corr[r]);
            }
        }
        return;
    }
    if (!(lane & 1))
        corr[lane >> 1] = l > 0.0f ? 1.0f / l : 0.0f;
    __syncwarp();
    for (int r = 0; r < 16 && q0 + qw * 16 + r < a.Tq; r++) {
        T *y = (T *)a.y + b * a.y_bs + (int64_t)(q0 + qw * 16 + r) * a.y_rs + (int64_t)h * d;
        for (int c = lane; c < d; c += 32)
            y[c] = from_f<T>(os[r * (d + kPadF) + c] * corr[r]);
    }
}

/* -------------------------------------------------------- CUDA cores */

constexpr int kSimtKeys = 32; /* a lane per key */
constexpr int kSimtRows = 4;  /* query rows per warp */
constexpr int kSimtWarps = 4;
constexpr int kSimtCols = KERN_ATTN_MAX_D / 32; /* output columns per lane */

inline size_t simt_smem(int d)
{
    return sizeof(float) * ((size_t)kSimtKeys * (d + 1) + (size_t)kSimtKeys * d +
                            (size_t)kSimtRows * kSimtWarps * d);
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* K (rows padded to d + 1) and V tiles of 32 keys, in fp32, zero past kv. */
template <typename T>
__device__ void simt_load_kv(float *ks, float *vs, const T *k, const T *v, const kern_attention &a,
                             int kv)
{
    for (int i = threadIdx.x; i < kSimtKeys * a.d; i += blockDim.x) {
        int r = i / a.d, c = i % a.d;
        ks[r * (a.d + 1) + c] = r < kv ? to_f(k[r * a.k_rs + c]) : 0.0f;
        vs[i] = r < kv ? to_f(v[r * a.v_rs + c]) : 0.0f;
    }
}

template <typename T> __global__ void __launch_bounds__(128) attn_simt(kern_attention a, int qtiles)
{
    extern __shared__ float fs[];
    const int d = a.d, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *ks = fs, *vs = ks + kSimtKeys * (d + 1), *qs = vs + kSimtKeys * d;
    const int bh = blockIdx.x / qtiles, b = bh / a.heads, h = bh % a.heads;
    const int q0 = (blockIdx.x % qtiles) * kSimtRows * kSimtWarps;
    const T *q = (const T *)a.q + b * a.q_bs + q0 * a.q_rs + (int64_t)h * d;
    for (int i = threadIdx.x; i < kSimtRows * kSimtWarps * d; i += blockDim.x) {
        int r = i / d, c = i % d;
        qs[i] = q0 + r < a.Tq ? to_f(q[r * a.q_rs + c]) : 0.0f;
    }
    float m[kSimtRows], l[kSimtRows], o[kSimtRows][kSimtCols];
#pragma unroll
    for (int r = 0; r < kSimtRows; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < kSimtCols; i++)
            o[r][i] = 0.0f;
    }
    const T *k = (const T *)a.k + b * a.k_bs + (int64_t)h * d;
    const T *v = (const T *)a.v + b * a.v_bs + (int64_t)h * d;
    for (int k0 = 0; k0 < a.Tk; k0 += kSimtKeys) {
        int kv = min(kSimtKeys, a.Tk - k0);
        __syncthreads();
        simt_load_kv(ks, vs, k + k0 * a.k_rs, v + k0 * a.v_rs, a, kv);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < kSimtRows; r++) {
            int row = w * kSimtRows + r;
            const T *mrow = (const T *)mask_row(a, b, h, q0 + row, sizeof(T));
            float s = -INFINITY;
            if (lane < kv) {
                float dot = 0.0f;
                for (int c = 0; c < d; c++)
                    dot += qs[row * d + c] * ks[lane * (d + 1) + c];
                s = dot * a.scale + (mrow ? to_f(mrow[k0 + lane]) : 0.0f);
            }
            float mnew = fmaxf(m[r], warp_max(s));
            float base = mnew == -INFINITY ? 0.0f : mnew;
            float p = __expf(s - base), c = __expf(m[r] - base);
            l[r] = l[r] * c + warp_sum(p);
            m[r] = mnew;
#pragma unroll
            for (int i = 0; i < kSimtCols; i++)
                o[r][i] *= c;
            for (int j = 0; j < kv; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
                for (int i = 0; i < kSimtCols; i++)
                    if (lane + 32 * i < d)
                        o[r][i] += pj * vs[j * d + lane + 32 * i];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < kSimtRows; r++) {
        int qi = q0 + w * kSimtRows + r;
        if (qi >= a.Tq)
            continue;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        T *y = (T *)a.y + b * a.y_bs + (int64_t)qi * a.y_rs + (int64_t)h * d;
#pragma unroll
        for (int i = 0; i < kSimtCols; i++)
            if (lane + 32 * i < d)
                y[lane + 32 * i] = from_f<T>(o[r][i] * inv);
    }
}

/* ------------------------------------------------------------ launch */

template <typename T> bool use_tc(int d)
{
    return sizeof(T) == 2 && d % 16 == 0 && d <= kMaxTcD;
}

/* 16-byte loads: 8 elements at a time from every row of every source. */
inline bool aligned16(const kern_attention *a)
{
    uintptr_t any = (uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v;
    int64_t st = a->q_bs | a->q_rs | a->k_bs | a->k_rs | a->v_bs | a->v_rs;
    return a->d % 8 == 0 && any % 16 == 0 && st % 8 == 0;
}

template <typename T> cudaError_t prepare(int d)
{
    if constexpr (sizeof(T) == 2) /* attn_tc exists for 16-bit types only */
        if (use_tc<T>(d)) {
            size_t most = 0;
            for (const auto &sh : kTcShapes)
                if (tc_split_ok(d, sh[1]) && tc_make(d, sh[0], sh[1]).total > most)
                    most = tc_make(d, sh[0], sh[1]).total;
            return cudaFuncSetAttribute(attn_tc<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)most);
        }
    return cudaFuncSetAttribute(attn_simt<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)simt_smem(d));
}

/* FERRY_ATTN_SPLIT=1: never split the keys (a measurement knob). */
std::atomic<int> g_split_off{-1};

bool split_off()
{
    return ferry_cuda::env_knob(g_split_off, "FERRY_ATTN_SPLIT");
}

template <typename T> cudaError_t launch(const kern_attention *a, cudaStream_t s)
{
    int64_t bh = (int64_t)a->B * a->heads;
    if constexpr (sizeof(T) == 2) {
        if (use_tc<T>(a->d)) {
            /* Fewer query rows a block where 64-row blocks would not fill
             * the SMs twice; then, where even 16-row blocks leave SMs
             * idle, the keys split over the block's warps (2 or 4, no more
             * than the key tiles). FERRY_ATTN_SPLIT=1 turns the split off. */
            const bool no_split = split_off();
            int qwarps = 4, split = 1;
            while (qwarps > 1 && bh * ((a->Tq + 16 * qwarps - 1) / (16 * qwarps)) < 2 * kSms)
                qwarps >>= 1;
            int qtiles = (a->Tq + 16 * qwarps - 1) / (16 * qwarps);
            int tiles = (a->Tk + kKeys - 1) / kKeys;
            if (!no_split && qwarps == 1 && bh * qtiles < kSms && tiles > 1)
                split = tiles > 2 && bh * qtiles * 2 < kSms && tc_split_ok(a->d, 4) ? 4 : 2;
            attn_tc<T><<<(unsigned)(bh * qtiles), 32 * qwarps * split,
                         tc_make(a->d, qwarps, split).total, s>>>(*a, qtiles, split, aligned16(a));
            return cudaGetLastError();
        }
    }
    int qtiles = (a->Tq + kSimtRows * kSimtWarps - 1) / (kSimtRows * kSimtWarps);
    attn_simt<T><<<(unsigned)(bh * qtiles), 32 * kSimtWarps, simt_smem(a->d), s>>>(*a, qtiles);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kern_attention_prepare(int d, ferry_dtype dt)
{
    if (d <= 0 || d > KERN_ATTN_MAX_D)
        return cudaErrorInvalidValue;
    switch (dt) {
    case FERRY_F32: return prepare<float>(d);
    case FERRY_F16: return prepare<__half>(d);
    case FERRY_BF16: return prepare<__nv_bfloat16>(d);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kern_attention_run(const kern_attention *a, ferry_dtype dt, cudaStream_t s)
{
    if (a->B <= 0 || a->heads <= 0 || a->Tq <= 0)
        return cudaSuccess;
    if (a->d <= 0 || a->d > KERN_ATTN_MAX_D)
        return cudaErrorInvalidValue;
    switch (dt) {
    case FERRY_F32: return launch<float>(a, s);
    case FERRY_F16: return launch<__half>(a, s);
    case FERRY_BF16: return launch<__nv_bfloat16>(a, s);
    default: return cudaErrorInvalidValue;
    }
}
