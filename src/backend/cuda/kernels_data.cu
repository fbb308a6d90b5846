/*
 * kernels_data.cu - data movement (strided copy, gather, where, fill),
 * comparisons, integer arithmetic and the shape-math writer, for the ops a
 * transformer export leaves between its matmuls.
 *
 * Data movement works on raw elements of 1, 2, 4 or 8 bytes: a Transpose
 * of f16 activations and one of int64 positions are the same copy, so the
 * kernels are instantiated per element size, not per dtype. Every kernel is
 * a grid-stride loop over the output, one element per thread per step:
 * these ops are memory-bound and small next to the matmuls, so the aim is
 * one launch with coalesced writes, not peak bandwidth. The host side
 * (cuda_ops.c) merges dims that are contiguous in both source and
 * destination before calling, so the per-element index arithmetic is
 * usually over two or three dims.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "backend/cuda/index.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using ferry_cuda::grid_for;
using ferry_cuda::kThreads;

using ferry_cuda::to_f;

#define GRID_LOOP(i, n)                                                                            \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

/* Element types by size: the bits are moved, never interpreted. */
template <size_t E> struct word;
template <> struct word<1> {
    using t = uint8_t;
};
template <> struct word<2> {
    using t = uint16_t;
};
template <> struct word<4> {
    using t = uint32_t;
};
template <> struct word<8> {
    using t = uint64_t;
};
template <> struct word<16> {
    using t = uint4;
};

/* The strided copy on 32-bit indices (index.cuh): dims and strides of
 * kern_strided with a divider per dim. */
struct strided32 {
    int ndim;
    uint32_t n;
    ferry_cuda::divmod32 dm[KERN_MAX_DIMS];
    int32_t sx[KERN_MAX_DIMS], sy[KERN_MAX_DIMS];
};

template <typename W>
__global__ void copy_strided32_kernel(const W *__restrict__ x, W *__restrict__ y, strided32 d)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < d.n; i += gridDim.x * blockDim.x) {
        uint32_t r = i;
        int32_t ox = 0, oy = 0;
        for (int k = d.ndim - 1; k >= 0; k--) {
            uint32_t q = d.dm[k].quot(r);
            int32_t c = (int32_t)(r - q * d.dm[k].d);
            r = q;
            ox += c * d.sx[k];
            oy += c * d.sy[k];
        }
        y[oy] = x[ox];
    }
}

template <typename W>
__global__ void copy_strided_kernel(const W *__restrict__ x, W *__restrict__ y, kern_strided d)
{
    GRID_LOOP(i, d.n)
    {
        int64_t r = i, ox = 0, oy = 0;
        for (int k = d.ndim - 1; k >= 0; k--) {
            int64_t c = r % d.dims[k];
            r /= d.dims[k];
            ox += c * d.sx[k];
            oy += c * d.sy[k];
        }
        y[oy] = x[ox];
    }
}

template <typename W, typename I>
__global__ void gather_kernel(const W *__restrict__ x, const I *__restrict__ idx, W *__restrict__ y,
                              int64_t total, int64_t axis_len, int64_t n_idx, int64_t inner,
                              int64_t per_sample, int64_t block)
{
    GRID_LOOP(i, total)
    {
        int64_t in = i % inner, r = i / inner;
        int64_t j = r % n_idx, o = r / n_idx;
        int64_t k = (int64_t)idx[j], lo = 0, hi = axis_len;
        if (block > 0)
            lo = j / per_sample * block, hi = lo + block; /* the sample's own rows */
        else if (k < 0)
            k += axis_len;
        y[i] = k >= lo && k < hi ? x[(o * axis_len + k) * inner + in] : (W)0;
    }
}

/* One thread per updated element: tuple t = i / slice, element i % slice
 * of its slice. */
template <typename W, typename I>
__global__ void scatter_nd_kernel(const I *__restrict__ idx, const W *__restrict__ u,
                                  W *__restrict__ y, kern_scatter sc)
{
    GRID_LOOP(i, sc.n_tuples * sc.slice)
    {
        int64_t t = i / sc.slice, e = i % sc.slice, off = 0;
        bool ok = true;
        for (int j = 0; j < sc.k; j++) {
            int64_t v = (int64_t)idx[t * sc.k + j];
            if (v < 0)
                v += sc.dims[j];
            ok = ok && v >= 0 && v < sc.dims[j];
            if (j == 0 && sc.block > 0) {
                int64_t lo = t / sc.per_sample * sc.block;
                ok = ok && v >= lo && v < lo + sc.block;
            }
            off += v * sc.stride[j];
        }
        if (ok)
            y[off + e] = u[i];
    }
}

/* One thread per output element: tuple t = i / slice, element i % slice
 * of the slice it reads. */
template <typename W, typename I>
__global__ void gather_nd_kernel(const W *__restrict__ x, const I *__restrict__ idx,
                                 W *__restrict__ y, kern_scatter sc)
{
    GRID_LOOP(i, sc.n_tuples * sc.slice)
    {
        int64_t t = i / sc.slice, e = i % sc.slice;
        int64_t off = sc.bd_tuples > 0 ? t / sc.bd_tuples * sc.bd_stride : 0;
        bool ok = true;
        for (int j = 0; j < sc.k; j++) {
            int64_t v = (int64_t)idx[t * sc.k + j];
            if (v < 0)
                v += sc.dims[j];
            ok = ok && v >= 0 && v < sc.dims[j];
            if (j == 0 && sc.block > 0) {
                int64_t lo = t / sc.per_sample * sc.block;
                ok = ok && v >= lo && v < lo + sc.block;
            }
            off += v * sc.stride[j];
        }
        y[i] = ok ? x[off + e] : (W)0;
    }
}

template <typename W>
__global__ void where_kernel(const uint8_t *__restrict__ c, const W *__restrict__ a,
                             const W *__restrict__ b, W *__restrict__ y, kern_bcast3 bc)
{
    GRID_LOOP(i, bc.n)
    {
        int64_t r = i, o0 = 0, o1 = 0, o2 = 0;
        for (int k = bc.ndim - 1; k >= 0; k--) {
            int64_t q = r % bc.dims[k];
            r /= bc.dims[k];
            o0 += q * bc.s[0][k];
            o1 += q * bc.s[1][k];
            o2 += q * bc.s[2][k];
        }
        y[i] = c[o0] ? a[o1] : b[o2];
    }
}

/* Index of output element i in the two inputs of a broadcast. */
__device__ __forceinline__ void bcast_index(const kern_bcast &bc, int64_t i, int64_t *ia,
                                            int64_t *ib)
{
    int64_t r = i, a = 0, b = 0;
    for (int d = bc.ndim - 1; d >= 0; d--) {
        int64_t c = r % bc.dims[d];
        r /= bc.dims[d];
        a += c * bc.sa[d];
        b += c * bc.sb[d];
    }
    *ia = a;
    *ib = b;
}

/* Comparisons read floats through fp32 (exact for every storage dtype)
 * and integers as int64. */
template <typename T> __device__ __forceinline__ double as_num(T v)
{
    return (double)v;
}
template <> __device__ __forceinline__ double as_num(__half v)
{
    return (double)__half2float(v);
}
template <> __device__ __forceinline__ double as_num(__nv_bfloat16 v)
{
    return (double)__bfloat162float(v);
}

template <typename T>
__global__ void compare_kernel(kern_binary_op op, const T *__restrict__ a, const T *__restrict__ b,
                               uint8_t *__restrict__ y, kern_bcast bc)
{
    GRID_LOOP(i, bc.n)
    {
        int64_t ia, ib;
        bcast_index(bc, i, &ia, &ib);
        bool r = false;
        if constexpr (sizeof(T) == 8 && !std::is_floating_point<T>::value) {
            int64_t p = (int64_t)a[ia], q = (int64_t)b[ib]; /* exact beyond 2^53 */
            switch (op) {
            case KB_EQ: r = p == q; break;
            case KB_LT: r = p < q; break;
            case KB_LE: r = p <= q; break;
            case KB_GT: r = p > q; break;
            case KB_GE: r = p >= q; break;
            case KB_AND: r = p && q; break;
            case KB_OR: r = p || q; break;
            case KB_XOR: r = (p != 0) != (q != 0); break;
            default: break;
            }
        } else {
            double p = as_num(a[ia]), q = as_num(b[ib]);
            switch (op) {
            case KB_EQ: r = p == q; break;
            case KB_LT: r = p < q; break;
            case KB_LE: r = p <= q; break;
            case KB_GT: r = p > q; break;
            case KB_GE: r = p >= q; break;
            case KB_AND: r = p != 0 && q != 0; break;
            case KB_OR: r = p != 0 || q != 0; break;
            case KB_XOR: r = (p != 0) != (q != 0); break;
            default: break;
            }
        }
        y[i] = r;
    }
}

template <typename T> __device__ __forceinline__ T int_op(kern_binary_op op, T a, T b)
{
    switch (op) {
    case KB_ADD: return a + b;
    case KB_SUB: return a - b;
    case KB_MUL: return a * b;
    case KB_DIV: return b ? a / b : (T)0;
    case KB_FMOD: return b ? a % b : (T)0;
    case KB_MOD: {
        if (!b)
            return 0;
        T m = a % b;
        return m != 0 && ((m < 0) != (b < 0)) ? m + b : m;
    }
    case KB_MIN: return a < b ? a : b;
    case KB_MAX: return a > b ? a : b;
    case KB_POW: {
        T r = 1;
        for (T e = b; e > 0; e--)
            r *= a;
        return b < 0 ? (T)0 : r;
    }
    default: return a;
    }
}

/* y may be a: Min and Max fold their inputs into the output in place. */
template <typename T>
__global__ void binary_int_kernel(kern_binary_op op, const T *a, const T *__restrict__ b, T *y,
                                  kern_bcast bc)
{
    GRID_LOOP(i, bc.n)
    {
        int64_t ia, ib;
        bcast_index(bc, i, &ia, &ib);
        y[i] = int_op<T>(op, a[ia], b[ib]);
    }
}

template <typename T>
__global__ void unary_int_kernel(kern_unary_op op, const T *__restrict__ x, T *__restrict__ y,
                                 int64_t n)
{
    GRID_LOOP(i, n)
    {
        T v = x[i];
        switch (op) {
        case KU_NEG: v = -v; break;
        case KU_ABS: v = v < 0 ? -v : v; break;
        case KU_SIGN: v = (T)((v > 0) - (v < 0)); break;
        case KU_RELU: v = v > 0 ? v : 0; break;
        default: break;
        }
        y[i] = v;
    }
}

__global__ void not_kernel(const uint8_t *__restrict__ x, uint8_t *__restrict__ y, int64_t n)
{
    GRID_LOOP(i, n) y[i] = !x[i];
}

template <typename W> __global__ void fill_kernel(W *__restrict__ y, int64_t n, W v)
{
    GRID_LOOP(i, n) y[i] = v;
}

__global__ void sym_kernel(const int64_t *__restrict__ base, const int64_t *__restrict__ k,
                           int64_t *__restrict__ y, int64_t n, int64_t batch)
{
    GRID_LOOP(i, n) y[i] = base[i] + (k ? k[i] * batch : 0);
}

template <typename T>
__global__ void range_kernel(const T *__restrict__ start, const T *__restrict__ delta,
                             T *__restrict__ y, int64_t n)
{
    GRID_LOOP(i, n)
    {
        if constexpr (std::is_integral<T>::value)
            y[i] = (T)(start[0] + (T)i * delta[0]);
        else
            y[i] = ferry_cuda::from_f<T>(to_f(start[0]) + (float)i * to_f(delta[0]));
    }
}

template <typename W>
__global__ void trilu_kernel(const W *__restrict__ x, W *__restrict__ y, int64_t total,
                             int64_t rows, int64_t cols, int64_t k, bool upper)
{
    GRID_LOOP(i, total)
    {
        int64_t j = i % cols, r = (i / cols) % rows;
        bool keep = upper ? j - r >= k : j - r <= k;
        y[i] = keep ? x[i] : (W)0;
    }
}

template <typename W>
__global__ void eye_kernel(W *__restrict__ y, int64_t total, int64_t cols, int64_t k, W one)
{
    GRID_LOOP(i, total) y[i] = i % cols - i / cols == k ? one : (W)0;
}

/* Offset in x of index element i's coordinates, the axis's left out (the
 * index supplies it). */
__device__ __forceinline__ int64_t elements_offset(const kern_elements &d, int64_t i)
{
    int64_t r = i, off = 0;
    for (int k = d.ndim - 1; k >= 0; k--) {
        int64_t c = r % d.dims[k];
        r /= d.dims[k];
        if (k != d.axis)
            off += c * d.xs[k];
    }
    return off;
}

/* idx[i] from the end when negative; -1 when out of range. */
template <typename I>
__device__ __forceinline__ int64_t elements_index(const kern_elements &d, const I *idx, int64_t i)
{
    int64_t j = (int64_t)idx[i];
    if (j < 0)
        j += d.axis_len;
    return j >= 0 && j < d.axis_len ? j : -1;
}

template <typename W, typename I>
__global__ void gather_elements_kernel(const W *__restrict__ x, const I *__restrict__ idx,
                                       W *__restrict__ y, kern_elements d)
{
    GRID_LOOP(i, d.n)
    {
        int64_t j = elements_index(d, idx, i);
        y[i] = j >= 0 ? x[elements_offset(d, i) + j * d.xs[d.axis]] : (W)0;
    }
}

template <typename W, typename I>
__global__ void scatter_elements_kernel(const I *__restrict__ idx, const W *__restrict__ u,
                                        W *__restrict__ y, kern_elements d)
{
    GRID_LOOP(i, d.n)
    {
        int64_t j = elements_index(d, idx, i);
        if (j >= 0)
            y[elements_offset(d, i) + j * d.xs[d.axis]] = u[i];
    }
}

/* The word atomicCAS takes for an element of E bytes (sm_70+ for 2). */
template <size_t E> struct cas_word;
template <> struct cas_word<2> {
    using t = unsigned short;
};
template <> struct cas_word<4> {
    using t = unsigned int;
};
template <> struct cas_word<8> {
    using t = unsigned long long;
};

/* y (op)= u as the CPU's scatter_put: floats in fp32 (rounded to T once),
 * integers wrapping, max/min keeping y unless u compares past it. */
template <typename T> __device__ __forceinline__ T scatter_combine(T y, T u, int reduction)
{
    if constexpr (std::is_integral<T>::value) {
        using U = typename std::make_unsigned<T>::type;
        switch (reduction) {
        case 1: return (T)((U)y + (U)u);
        case 2: return (T)((U)y * (U)u);
        case 3: return u > y ? u : y;
        default: return u < y ? u : y;
        }
    } else {
        float a = to_f(y), b = to_f(u), r;
        switch (reduction) {
        case 1: r = a + b; break;
        case 2: r = a * b; break;
        case 3: r = b > a ? b : a; break;
        default: r = b < a ? b : a; break;
        }
        return ferry_cuda::from_f<T>(r);
    }
}

/* *p = scatter_combine(*p, u) atomically: one compare-and-swap loop for
 * every reduction and dtype, so that repeated indices all count. */
template <typename T> __device__ void scatter_atomic(T *p, T u, int reduction)
{
    using C = typename cas_word<sizeof(T)>::t;
    C *w = (C *)p;
    C old = *(volatile C *)w, seen;
    do {
        seen = old;
        T cur, next;
        memcpy(&cur, &seen, sizeof cur);
        next = scatter_combine(cur, u, reduction);
        C nw;
        memcpy(&nw, &next, sizeof nw);
        if (nw == seen)
            return;
        old = atomicCAS(w, seen, nw);
    } while (old != seen);
}

template <typename T, typename I>
__global__ void scatter_elements_reduce_kernel(const I *__restrict__ idx, const T *__restrict__ u,
                                               T *__restrict__ y, kern_elements d, int reduction)
{
    GRID_LOOP(i, d.n)
    {
        int64_t j = elements_index(d, idx, i);
        if (j >= 0)
            scatter_atomic(y + elements_offset(d, i) + j * d.xs[d.axis], u[i], reduction);
    }
}

template <typename T>
cudaError_t scatter_reduce_launch(const void *idx, ferry_dtype idt, const void *u, void *y,
                                  const kern_elements *d, int reduction, cudaStream_t s)
{
    if (idt == FERRY_I64)
        scatter_elements_reduce_kernel<T, int64_t><<<grid_for(d->n), kThreads, 0, s>>>(
            (const int64_t *)idx, (const T *)u, (T *)y, *d, reduction);
    else if (idt == FERRY_I32)
        scatter_elements_reduce_kernel<T, int32_t><<<grid_for(d->n), kThreads, 0, s>>>(
            (const int32_t *)idx, (const T *)u, (T *)y, *d, reduction);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

template <template <typename> class F, typename... A> cudaError_t by_size(size_t esz, A... args)
{
    switch (esz) {
    case 1: return F<uint8_t>::go(args...);
    case 2: return F<uint16_t>::go(args...);
    case 4: return F<uint32_t>::go(args...);
    case 8: return F<uint64_t>::go(args...);
    }
    return cudaErrorInvalidValue;
}

template <typename W> struct copy_go {
    static cudaError_t go(const void *x, void *y, const kern_strided *d, cudaStream_t s)
    {
        using ferry_cuda::kIndex32Max;
        using ferry_cuda::max_offset;
        if (d->n <= kIndex32Max && max_offset(d->ndim, d->dims, d->sx) < kIndex32Max &&
            max_offset(d->ndim, d->dims, d->sy) < kIndex32Max) {
            strided32 p;
            p.ndim = d->ndim;
            p.n = (uint32_t)d->n;
            for (int k = 0; k < d->ndim; k++) {
                p.dm[k].init((uint32_t)d->dims[k]);
                p.sx[k] = (int32_t)d->sx[k];
                p.sy[k] = (int32_t)d->sy[k];
            }
            copy_strided32_kernel<W><<<grid_for(d->n), kThreads, 0, s>>>((const W *)x, (W *)y, p);
        } else {
            copy_strided_kernel<W><<<grid_for(d->n), kThreads, 0, s>>>((const W *)x, (W *)y, *d);
        }
        return cudaGetLastError();
    }
};

template <typename W> struct gather_go {
    static cudaError_t go(const void *x, const void *idx, ferry_dtype idt, void *y, int64_t outer,
                          int64_t axis_len, int64_t n_idx, int64_t inner, int64_t per_sample,
                          int64_t block, cudaStream_t s)
    {
        int64_t total = outer * n_idx * inner;
        if (idt == FERRY_I64)
            gather_kernel<W, int64_t><<<grid_for(total), kThreads, 0, s>>>(
                (const W *)x, (const int64_t *)idx, (W *)y, total, axis_len, n_idx, inner,
                per_sample, block);
        else if (idt == FERRY_I32)
            gather_kernel<W, int32_t><<<grid_for(total), kThreads, 0, s>>>(
                (const W *)x, (const int32_t *)idx, (W *)y, total, axis_len, n_idx, inner,
                per_sample, block);
        else
            return cudaErrorInvalidValue;
        return cudaGetLastError();
    }
};

template <typename W> struct scatter_nd_go {
    static cudaError_t go(const void *idx, ferry_dtype idt, const void *u, void *y,
                          const kern_scatter *sc, cudaStream_t s)
    {
        int64_t n = sc->n_tuples * sc->slice;
        if (idt == FERRY_I64)
            scatter_nd_kernel<W, int64_t>
                <<<grid_for(n), kThreads, 0, s>>>((const int64_t *)idx, (const W *)u, (W *)y, *sc);
        else if (idt == FERRY_I32)
            scatter_nd_kernel<W, int32_t>
                <<<grid_for(n), kThreads, 0, s>>>((const int32_t *)idx, (const W *)u, (W *)y, *sc);
        else
            return cudaErrorInvalidValue;
        return cudaGetLastError();
    }
};

template <typename W> struct gather_nd_go {
    static cudaError_t go(const void *x, const void *idx, ferry_dtype idt, void *y,
                          const kern_scatter *sc, cudaStream_t s)
    {
        int64_t n = sc->n_tuples * sc->slice;
        if (idt == FERRY_I64)
            gather_nd_kernel<W, int64_t>
                <<<grid_for(n), kThreads, 0, s>>>((const W *)x, (const int64_t *)idx, (W *)y, *sc);
        else if (idt == FERRY_I32)
            gather_nd_kernel<W, int32_t>
                <<<grid_for(n), kThreads, 0, s>>>((const W *)x, (const int32_t *)idx, (W *)y, *sc);
        else
            return cudaErrorInvalidValue;
        return cudaGetLastError();
    }
};

template <typename W> struct where_go {
    static cudaError_t go(const void *c, const void *a, const void *b, void *y,
                          const kern_bcast3 *bc, cudaStream_t s)
    {
        where_kernel<W><<<grid_for(bc->n), kThreads, 0, s>>>((const uint8_t *)c, (const W *)a,
                                                             (const W *)b, (W *)y, *bc);
        return cudaGetLastError();
    }
};

template <typename W> struct fill_go {
    static cudaError_t go(void *y, int64_t n, uint64_t v, cudaStream_t s)
    {
        fill_kernel<W><<<grid_for(n), kThreads, 0, s>>>((W *)y, n, (W)v);
        return cudaGetLastError();
    }
};

template <typename W> struct trilu_go {
    static cudaError_t go(const void *x, void *y, int64_t total, int64_t rows, int64_t cols,
                          int64_t k, int upper, cudaStream_t s)
    {
        trilu_kernel<W><<<grid_for(total), kThreads, 0, s>>>((const W *)x, (W *)y, total, rows,
                                                             cols, k, upper != 0);
        return cudaGetLastError();
    }
};

template <typename W> struct eye_go {
    static cudaError_t go(void *y, int64_t total, int64_t cols, int64_t k, uint64_t one,
                          cudaStream_t s)
    {
        eye_kernel<W><<<grid_for(total), kThreads, 0, s>>>((W *)y, total, cols, k, (W)one);
        return cudaGetLastError();
    }
};

template <typename W> struct gather_elements_go {
    static cudaError_t go(const void *x, const void *idx, ferry_dtype idt, void *y,
                          const kern_elements *d, cudaStream_t s)
    {
        if (idt == FERRY_I64)
            gather_elements_kernel<W, int64_t><<<grid_for(d->n), kThreads, 0, s>>>(
                (const W *)x, (const int64_t *)idx, (W *)y, *d);
        else if (idt == FERRY_I32)
            gather_elements_kernel<W, int32_t><<<grid_for(d->n), kThreads, 0, s>>>(
                (const W *)x, (const int32_t *)idx, (W *)y, *d);
        else
            return cudaErrorInvalidValue;
        return cudaGetLastError();
    }
};

template <typename W> struct scatter_elements_go {
    static cudaError_t go(const void *idx, ferry_dtype idt, const void *u, void *y,
                          const kern_elements *d, cudaStream_t s)
    {
        if (idt == FERRY_I64)
            scatter_elements_kernel<W, int64_t><<<grid_for(d->n), kThreads, 0, s>>>(
                (const int64_t *)idx, (const W *)u, (W *)y, *d);
        else if (idt == FERRY_I32)
            scatter_elements_kernel<W, int32_t><<<grid_for(d->n), kThreads, 0, s>>>(
                (const int32_t *)idx, (const W *)u, (W *)y, *d);
        else
            return cudaErrorInvalidValue;
        return cudaGetLastError();
    }
};

template <typename T>
cudaError_t compare_launch(kern_binary_op op, const void *a, const void *b, void *y,
                           const kern_bcast *bc, cudaStream_t s)
{
    compare_kernel<T>
        <<<grid_for(bc->n), kThreads, 0, s>>>(op, (const T *)a, (const T *)b, (uint8_t *)y, *bc);
    return cudaGetLastError();
}

} // namespace

/* Moves the innermost dim, when it is contiguous on both sides, in words
 * of up to 16 bytes: a head transpose of f16 moves 64-element rows, eight
 * uint4s each rather than 64 uint16s. Every other stride, the row and both
 * pointers must be multiples of the word. Returns the word size used. */
static size_t widen(kern_strided *d, size_t esz, const void *x, const void *y)
{
    int last = d->ndim - 1;
    if (last < 0 || d->sx[last] != 1 || d->sy[last] != 1)
        return esz;
    for (size_t w = 16; w > esz; w /= 2) {
        int64_t f = (int64_t)(w / esz);
        int ok = d->dims[last] % f == 0 && (uintptr_t)x % w == 0 && (uintptr_t)y % w == 0;
        for (int k = 0; k < last && ok; k++)
            ok = d->sx[k] % f == 0 && d->sy[k] % f == 0;
        if (!ok)
            continue;
        d->dims[last] /= f;
        d->n /= f;
        for (int k = 0; k < last; k++) {
            d->sx[k] /= f;
            d->sy[k] /= f;
        }
        return w;
    }
    return esz;
}

extern "C" cudaError_t kern_copy_strided(const void *x, void *y, const kern_strided *d, size_t esz,
                                         cudaStream_t s)
{
    if (d->n <= 0)
        return cudaSuccess;
    kern_strided w = *d;
    size_t wsz = widen(&w, esz, x, y);
    if (wsz == 16)
        return copy_go<uint4>::go(x, y, &w, s);
    return by_size<copy_go>(wsz, x, y, &w, s);
}

extern "C" cudaError_t kern_gather(const void *x, const void *idx, ferry_dtype idt, void *y,
                                   int64_t outer, int64_t axis_len, int64_t n_idx, int64_t inner,
                                   int64_t per_sample, int64_t block, size_t esz, cudaStream_t s)
{
    if (outer * n_idx * inner <= 0)
        return cudaSuccess;
    if (block > 0 && per_sample <= 0)
        return cudaErrorInvalidValue;
    return by_size<gather_go>(esz, x, idx, idt, y, outer, axis_len, n_idx, inner, per_sample, block,
                              s);
}

extern "C" cudaError_t kern_scatter_nd(const void *x, const void *idx, ferry_dtype idt,
                                       const void *u, void *y, const kern_scatter *sc, size_t esz,
                                       cudaStream_t s)
{
    if (y != x && sc->total > 0) {
        cudaError_t e = cudaMemcpyAsync(y, x, (size_t)sc->total * esz, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess)
            return e;
    }
    if (sc->n_tuples * sc->slice <= 0)
        return cudaSuccess;
    if (sc->block > 0 && sc->per_sample <= 0)
        return cudaErrorInvalidValue;
    return by_size<scatter_nd_go>(esz, idx, idt, u, y, sc, s);
}

extern "C" cudaError_t kern_gather_nd(const void *x, const void *idx, ferry_dtype idt, void *y,
                                      const kern_scatter *sc, size_t esz, cudaStream_t s)
{
    if (sc->n_tuples * sc->slice <= 0)
        return cudaSuccess;
    if (sc->block > 0 && sc->per_sample <= 0)
        return cudaErrorInvalidValue;
    return by_size<gather_nd_go>(esz, x, idx, idt, y, sc, s);
}

extern "C" cudaError_t kern_where(const void *cond, const void *a, const void *b, void *y,
                                  const kern_bcast3 *bc, size_t esz, cudaStream_t s)
{
    if (bc->n <= 0)
        return cudaSuccess;
    return by_size<where_go>(esz, cond, a, b, y, bc, s);
}

extern "C" cudaError_t kern_compare(kern_binary_op op, const void *a, const void *b, void *y,
                                    const kern_bcast *bc, ferry_dtype dt, cudaStream_t s)
{
    if (bc->n <= 0)
        return cudaSuccess;
    switch (dt) {
    case FERRY_F32: return compare_launch<float>(op, a, b, y, bc, s);
    case FERRY_F16: return compare_launch<__half>(op, a, b, y, bc, s);
    case FERRY_BF16: return compare_launch<__nv_bfloat16>(op, a, b, y, bc, s);
    case FERRY_I32: return compare_launch<int32_t>(op, a, b, y, bc, s);
    case FERRY_I64: return compare_launch<int64_t>(op, a, b, y, bc, s);
    case FERRY_BOOL:
    case FERRY_U8: return compare_launch<uint8_t>(op, a, b, y, bc, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kern_binary_int(kern_binary_op op, const void *a, const void *b, void *y,
                                       const kern_bcast *bc, ferry_dtype dt, cudaStream_t s)
{
    if (bc->n <= 0)
        return cudaSuccess;
    unsigned g = grid_for(bc->n);
    if (dt == FERRY_I64)
        binary_int_kernel<int64_t>
            <<<g, kThreads, 0, s>>>(op, (const int64_t *)a, (const int64_t *)b, (int64_t *)y, *bc);
    else if (dt == FERRY_I32)
        binary_int_kernel<int32_t>
            <<<g, kThreads, 0, s>>>(op, (const int32_t *)a, (const int32_t *)b, (int32_t *)y, *bc);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" cudaError_t kern_unary_int(kern_unary_op op, const void *x, void *y, int64_t n,
                                      ferry_dtype dt, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    if (dt == FERRY_I64)
        unary_int_kernel<int64_t>
            <<<grid_for(n), kThreads, 0, s>>>(op, (const int64_t *)x, (int64_t *)y, n);
    else if (dt == FERRY_I32)
        unary_int_kernel<int32_t>
            <<<grid_for(n), kThreads, 0, s>>>(op, (const int32_t *)x, (int32_t *)y, n);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" cudaError_t kern_not(const void *x, void *y, int64_t n, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    not_kernel<<<grid_for(n), kThreads, 0, s>>>((const uint8_t *)x, (uint8_t *)y, n);
    return cudaGetLastError();
}

extern "C" cudaError_t kern_fill(void *y, int64_t n, uint64_t value, size_t esz, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    return by_size<fill_go>(esz, y, n, value, s);
}

extern "C" cudaError_t kern_sym_i64(const int64_t *base, const int64_t *k, int64_t *y,
                                    int64_t count, int64_t batch, cudaStream_t s)
{
    if (count <= 0)
        return cudaSuccess;
    sym_kernel<<<grid_for(count), kThreads, 0, s>>>(base, k, y, count, batch);
    return cudaGetLastError();
}

extern "C" cudaError_t kern_range(const void *start, const void *delta, void *y, int64_t n,
                                  ferry_dtype dt, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    unsigned g = grid_for(n);
    switch (dt) {
    case FERRY_F32:
        range_kernel<float>
            <<<g, kThreads, 0, s>>>((const float *)start, (const float *)delta, (float *)y, n);
        break;
    case FERRY_F16:
        range_kernel<__half>
            <<<g, kThreads, 0, s>>>((const __half *)start, (const __half *)delta, (__half *)y, n);
        break;
    case FERRY_BF16:
        range_kernel<__nv_bfloat16><<<g, kThreads, 0, s>>>(
            (const __nv_bfloat16 *)start, (const __nv_bfloat16 *)delta, (__nv_bfloat16 *)y, n);
        break;
    case FERRY_I64:
        range_kernel<int64_t><<<g, kThreads, 0, s>>>((const int64_t *)start, (const int64_t *)delta,
                                                     (int64_t *)y, n);
        break;
    case FERRY_I32:
        range_kernel<int32_t><<<g, kThreads, 0, s>>>((const int32_t *)start, (const int32_t *)delta,
                                                     (int32_t *)y, n);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t kern_trilu(const void *x, void *y, int64_t batch, int64_t rows, int64_t cols,
                                  int64_t k, int upper, size_t esz, cudaStream_t s)
{
    int64_t total = batch * rows * cols;
    if (total <= 0)
        return cudaSuccess;
    return by_size<trilu_go>(esz, x, y, total, rows, cols, k, upper, s);
}

extern "C" cudaError_t kern_eye(void *y, int64_t rows, int64_t cols, int64_t k, uint64_t one,
                                size_t esz, cudaStream_t s)
{
    int64_t total = rows * cols;
    if (total <= 0)
        return cudaSuccess;
    return by_size<eye_go>(esz, y, total, cols, k, one, s);
}

extern "C" cudaError_t kern_gather_elements(const void *x, const void *idx, ferry_dtype idt,
                                            void *y, const kern_elements *d, size_t esz,
                                            cudaStream_t s)
{
    if (d->n <= 0)
        return cudaSuccess;
    return by_size<gather_elements_go>(esz, x, idx, idt, y, d, s);
}

extern "C" cudaError_t kern_scatter_elements(const void *x, const void *idx, ferry_dtype idt,
                                             const void *u, void *y, const kern_elements *d,
                                             int64_t x_total, int reduction, ferry_dtype dt,
                                             cudaStream_t s)
{
    size_t esz = ferry_dtype_size(dt);
    if (y != x && x_total > 0) {
        cudaError_t e = cudaMemcpyAsync(y, x, (size_t)x_total * esz, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess)
            return e;
    }
    if (d->n <= 0)
        return cudaSuccess;
    if (reduction == 0)
        return by_size<scatter_elements_go>(esz, idx, idt, u, y, d, s);
    switch (dt) {
    case FERRY_F32: return scatter_reduce_launch<float>(idx, idt, u, y, d, reduction, s);
    case FERRY_F16: return scatter_reduce_launch<__half>(idx, idt, u, y, d, reduction, s);
    case FERRY_BF16: return scatter_reduce_launch<__nv_bfloat16>(idx, idt, u, y, d, reduction, s);
    case FERRY_I32: return scatter_reduce_launch<int32_t>(idx, idt, u, y, d, reduction, s);
    case FERRY_I64: return scatter_reduce_launch<int64_t>(idx, idt, u, y, d, reduction, s);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- IsNaN, IsInf, OneHot */

namespace
{

/* IsNaN / IsInf on the storage's bits, not through float compares:
 * --use_fast_math leaves isnan alone today, but a bit test cannot be
 * optimized away, and it reads each storage dtype as stored (an fp16
 * activation that overflowed to inf is inf, as the model's values are).
 * W is the word of the storage dtype, abs_mask its bits but the sign,
 * inf the exponent all ones with a zero mantissa. */
template <typename W>
__global__ void float_test_kernel(const W *__restrict__ x, uint8_t *__restrict__ y, int64_t n,
                                  W abs_mask, W inf, W sign, int nan, int neg, int pos)
{
    GRID_LOOP(i, n)
    {
        W v = x[i], a = v & abs_mask;
        bool r;
        if (nan)
            r = a > inf;
        else
            r = a == inf && ((v & sign) ? neg : pos);
        y[i] = r;
    }
}

/* The class of an index read as OneHot reads it: integers as they are,
 * floats through fp32 truncated toward zero (as the CPU's cpu_one_hot),
 * NaN and values beyond [-depth - 1, depth) off. */
template <typename I> __device__ __forceinline__ int64_t hot_index(I v, int64_t depth)
{
    if constexpr (std::is_integral<I>::value) {
        return (int64_t)v;
    } else {
        float f = to_f(v);
        return f > (float)-depth - 1.0f && f < (float)depth ? (int64_t)f : depth;
    }
}

/* OneHot: y [outer, depth, inner] = on where the index of (o, i) (after
 * a negative one is wrapped by depth) is k, else off; one thread per
 * output element, so every element is written once and coalesced. */
template <typename I, typename W>
__global__ void one_hot_kernel(const I *__restrict__ idx, const W *__restrict__ values,
                               W *__restrict__ y, int64_t total, int64_t depth, int64_t inner)
{
    W off = values[0], on = values[1];
    GRID_LOOP(e, total)
    {
        int64_t i = e % inner, ok = e / inner, k = ok % depth, o = ok / depth;
        int64_t h = hot_index(idx[o * inner + i], depth);
        if (h < 0)
            h += depth;
        y[e] = h == k ? on : off;
    }
}

template <typename W> struct one_hot_go {
    static cudaError_t go(const void *idx, ferry_dtype idt, const void *values, void *y,
                          int64_t total, int64_t depth, int64_t inner, cudaStream_t s)
    {
        unsigned g = grid_for(total);
        const W *v = (const W *)values;
        switch (idt) {
        case FERRY_I64:
            one_hot_kernel<<<g, kThreads, 0, s>>>((const int64_t *)idx, v, (W *)y, total, depth,
                                                  inner);
            break;
        case FERRY_I32:
            one_hot_kernel<<<g, kThreads, 0, s>>>((const int32_t *)idx, v, (W *)y, total, depth,
                                                  inner);
            break;
        case FERRY_F32:
            one_hot_kernel<<<g, kThreads, 0, s>>>((const float *)idx, v, (W *)y, total, depth,
                                                  inner);
            break;
        case FERRY_F16:
            one_hot_kernel<<<g, kThreads, 0, s>>>((const __half *)idx, v, (W *)y, total, depth,
                                                  inner);
            break;
        case FERRY_BF16:
            one_hot_kernel<<<g, kThreads, 0, s>>>((const __nv_bfloat16 *)idx, v, (W *)y, total,
                                                  depth, inner);
            break;
        default: return cudaErrorInvalidValue;
        }
        return cudaGetLastError();
    }
};

} // namespace

extern "C" cudaError_t kern_float_test(const void *x, void *y, int64_t n, int nan, int neg, int pos,
                                       ferry_dtype dt, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    unsigned g = grid_for(n);
    uint8_t *yb = (uint8_t *)y;
    switch (dt) {
    case FERRY_F32:
        float_test_kernel<uint32_t><<<g, kThreads, 0, s>>>((const uint32_t *)x, yb, n, 0x7fffffffu,
                                                           0x7f800000u, 0x80000000u, nan, neg, pos);
        break;
    case FERRY_F16:
        float_test_kernel<uint16_t><<<g, kThreads, 0, s>>>((const uint16_t *)x, yb, n, 0x7fff,
                                                           0x7c00, 0x8000, nan, neg, pos);
        break;
    case FERRY_BF16:
        float_test_kernel<uint16_t><<<g, kThreads, 0, s>>>((const uint16_t *)x, yb, n, 0x7fff,
                                                           0x7f80, 0x8000, nan, neg, pos);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t kern_one_hot(const void *idx, ferry_dtype idt, const void *values, void *y,
                                    int64_t outer, int64_t depth, int64_t inner, size_t esz,
                                    cudaStream_t s)
{
    int64_t total = outer * depth * inner;
    if (total <= 0)
        return cudaSuccess;
    return by_size<one_hot_go>(esz, idx, idt, values, y, total, depth, inner, s);
}
