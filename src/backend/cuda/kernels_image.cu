/*
 * kernels_image.cu - the convolutional networks' own kernels around cuDNN:
 * the convolution epilogue (bias, residual, activation), pooling, Pad,
 * Resize and GridSample. All are memory-bound, one output element per
 * thread in a grid-stride loop (as kernels_elementwise.cu), computing in
 * fp32.
 *
 * Why not cuDNN for these: cuDNN's fused conv + bias + activation takes
 * ReLU only, and the models also fuse ReLU6 (Clip), SiLU, HardSwish and
 * HardSigmoid (src/graph/fuse_conv.c); its pooling descriptor has one pad
 * per side pair and no ceil_mode, and ONNX pooling has both asymmetric
 * pads and ceil_mode (SqueezeNet); Pad and Resize it does not have; its
 * spatial-transformer sampler (the nearest thing to GridSample) is
 * bilinear with one fixed padding, where ONNX GridSample also has nearest,
 * border and reflection padding and align_corners 0.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include <type_traits>

#include "backend/cuda/index.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/storage.cuh"

namespace
{

using ferry_cuda::divmod32;
using ferry_cuda::grid_for;
using ferry_cuda::kIndex32Max;
using ferry_cuda::kThreads;

using ferry_cuda::from_f;
using ferry_cuda::to_f;

/* The fused activations of graph.h's act_kind (kernels.h's KA_*). */
__device__ __forceinline__ float act(int a, float v, float p, float q)
{
    switch (a) {
    case KA_RELU: return v > 0.0f || v != v ? v : 0.0f;
    case KA_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case KA_GELU_TANH:
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case KA_LEAKY_RELU: return v >= 0.0f ? v : p * v;
    case KA_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case KA_TANH: return tanhf(v);
    case KA_CLIP: return fminf(fmaxf(v, p), q);
    case KA_HARD_SWISH: return v * fminf(fmaxf(v * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
    case KA_HARD_SIGMOID: return fminf(fmaxf(p * v + q, 0.0f), 1.0f);
    case KA_SILU: return v / (1.0f + expf(-v));
    }
    return v;
}

/* y = act(x + bias[c] + r): c = (i / inner) % ch, so NCHW (inner = H*W)
 * and channels-last (inner = 1) share it. */
template <typename T>
__global__ void bias_act(const T *x, const T *bias, const T *r, T *y, int64_t n, int64_t ch,
                         int64_t inner, int a, float p, float q)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = to_f(x[i]);
        if (bias)
            v += to_f(bias[(i / inner) % ch]);
        if (r)
            v += to_f(r[i]);
        y[i] = from_f<T>(act(a, v, p, q));
    }
}

/* bias_act on 32-bit indices (n < 2^30): the channel by a multiply-shift
 * instead of two int64 divisions per element, which cost more than the
 * element's bytes (mobilenet_v2 runs every convolution's ReLU6 here). */
template <typename T>
__global__ void bias_act32(const T *x, const T *bias, const T *r, T *y, uint32_t n, divmod32 din,
                           divmod32 dch, int a, float p, float q)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = to_f(x[i]);
        if (bias) {
            uint32_t o = din.quot(i);
            v += to_f(bias[o - dch.quot(o) * dch.d]);
        }
        if (r)
            v += to_f(r[i]);
        y[i] = from_f<T>(act(a, v, p, q));
    }
}

/* One tap of a pool: the max keeps a NaN once seen (ONNX's), the average
 * sums. */
__device__ __forceinline__ float pool_take(float acc, float v, int is_max)
{
    return is_max ? (v > acc || v != v ? v : acc) : acc + v;
}

/* A pool's value from its taps: the max as is, the average over the taps
 * that count (padded ones too with count_include_pad). */
__device__ __forceinline__ float pool_value(float acc, const kern_pool &d, int64_t padded,
                                            int64_t valid)
{
    if (d.is_max)
        return acc;
    int64_t div = d.count_include_pad ? padded : valid;
    return div ? acc / (float)div : 0.0f;
}

/* One output of a pool over [planes = N*C, in..] (the spatial dims padded
 * on the left to three): NCHW, or channels-last (d.ch channels innermost). */
template <typename T> __global__ void pool(const T *x, T *y, kern_pool d, int64_t planes)
{
    int64_t per = d.out[0] * d.out[1] * d.out[2], n = planes * per;
    int64_t ins = d.in[0] * d.in[1] * d.in[2];
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t o, xbase, xs;
        if (d.nhwc) {
            int64_t ch = i % d.ch, q = i / d.ch;
            o = q % per;
            xbase = (q / per) * ins * d.ch + ch;
            xs = d.ch;
        } else {
            o = i % per;
            xbase = (i / per) * ins;
            xs = 1;
        }
        int64_t o2 = o % d.out[2], o1 = (o / d.out[2]) % d.out[1], o0 = o / (d.out[2] * d.out[1]);
        int64_t s0 = o0 * d.stride[0] - d.pad[0], s1 = o1 * d.stride[1] - d.pad[1],
                s2 = o2 * d.stride[2] - d.pad[2];
        const T *xp = x + xbase;
        float acc = d.is_max ? -INFINITY : 0.0f;
        int64_t valid = 0, padded = 0;
        for (int64_t k0 = 0; k0 < d.kernel[0]; k0++) {
            int64_t h = s0 + k0 * d.dil[0];
            for (int64_t k1 = 0; k1 < d.kernel[1]; k1++) {
                int64_t w = s1 + k1 * d.dil[1];
                for (int64_t k2 = 0; k2 < d.kernel[2]; k2++) {
                    int64_t z = s2 + k2 * d.dil[2];
                    if (h >= -d.pad[0] && h < d.in[0] + d.pad_end[0] && w >= -d.pad[1] &&
                        w < d.in[1] + d.pad_end[1] && z >= -d.pad[2] && z < d.in[2] + d.pad_end[2])
                        padded++;
                    if (h < 0 || h >= d.in[0] || w < 0 || w >= d.in[1] || z < 0 || z >= d.in[2])
                        continue;
                    acc =
                        pool_take(acc, to_f(xp[((h * d.in[1] + w) * d.in[2] + z) * xs]), d.is_max);
                    valid++;
                }
            }
        }
        y[i] = from_f<T>(pool_value(acc, d, padded, valid));
    }
}

/* Pad: per dim, input index = output index - begin, mapped back into
 * [0, in) by the mode (constant: outside reads the value). */
template <typename T> __global__ void pad(const T *x, T *y, kern_pad d, float value)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < d.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t q = i, off = 0;
        bool outside = false;
        for (int k = d.ndim - 1; k >= 0; k--) {
            int64_t o = q % d.out[k], n = d.in[k];
            q /= d.out[k];
            int64_t j = o - d.begin[k];
            if (j < 0 || j >= n) {
                switch (d.mode) {
                case KERN_PAD_EDGE: j = j < 0 ? 0 : n - 1; break;
                case KERN_PAD_REFLECT: {
                    int64_t period = 2 * (n - 1);
                    if (period == 0) {
                        j = 0;
                        break;
                    }
                    j = j % period;
                    if (j < 0)
                        j += period;
                    if (j >= n)
                        j = period - j;
                    break;
                }
                case KERN_PAD_WRAP:
                    j %= n;
                    if (j < 0)
                        j += n;
                    break;
                default: outside = true; break;
                }
            }
            off += j * d.xs[k];
        }
        y[i] = outside ? from_f<T>(value) : x[off];
    }
}

/* Resize: per output element, per resized dim the two neighbours and the
 * weight of the second (kern_resize's tables, made on the host), summed
 * over the 2^k corners of the k linear dims. */
template <typename T> __global__ void resize(const T *x, T *y, kern_resize d)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < d.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t q = i, base = 0;
        int64_t o1[KERN_MAX_DIMS];
        float w[KERN_MAX_DIMS];
        int lin[KERN_MAX_DIMS], nl = 0;
        for (int k = d.ndim - 1; k >= 0; k--) {
            int64_t o = q % d.out[k];
            q /= d.out[k];
            if (!d.resized[k]) {
                base += o * d.xs[k];
                continue;
            }
            double c;
            switch (d.coord) {
            case KERN_COORD_PYTORCH_HALF_PIXEL:
                c = d.out[k] > 1 ? ((double)o + 0.5) / d.scale[k] - 0.5 : 0.0;
                break;
            case KERN_COORD_ALIGN_CORNERS:
                c = d.out[k] == 1 ? 0.0
                                  : (double)o * (double)(d.in[k] - 1) / (double)(d.out[k] - 1);
                break;
            case KERN_COORD_ASYMMETRIC: c = (double)o / d.scale[k]; break;
            case KERN_COORD_HALF_PIXEL_SYMMETRIC: {
                double adj = (double)d.out[k] / (d.scale[k] * (double)d.in[k]);
                c = (double)d.in[k] / 2.0 * (1.0 - adj) + ((double)o + 0.5) / d.scale[k] - 0.5;
                break;
            }
            default: c = ((double)o + 0.5) / d.scale[k] - 0.5; break;
            }
            int64_t last = d.in[k] - 1;
            if (!d.linear) {
                double f = floor(c), r;
                switch (d.nearest) {
                case KERN_NEAREST_FLOOR: r = f; break;
                case KERN_NEAREST_CEIL: r = ceil(c); break;
                case KERN_NEAREST_ROUND_PREFER_CEIL:
                    r = c - f == 0.5 ? f + 1.0 : floor(c + 0.5);
                    break;
                default: r = c - f == 0.5 ? f : floor(c + 0.5); break;
                }
                int64_t j = r < 0.0 ? 0 : r > (double)last ? last : (int64_t)r;
                base += j * d.xs[k];
                continue;
            }
            double f = floor(c);
            int64_t j0 = f < 0.0 ? 0 : f > (double)last ? last : (int64_t)f;
            int64_t j1 = f + 1.0 < 0.0 ? 0 : f + 1.0 > (double)last ? last : (int64_t)(f + 1.0);
            base += j0 * d.xs[k];
            if (j1 != j0) {
                o1[nl] = (j1 - j0) * d.xs[k];
                w[nl] = (float)(c - f);
                lin[nl++] = k;
            }
        }
        float acc = 0.0f;
        for (int m = 0; m < (1 << nl); m++) {
            int64_t off = base;
            float wt = 1.0f;
            for (int b = 0; b < nl; b++) {
                if (m & (1 << b)) {
                    off += o1[b];
                    wt *= w[b];
                } else {
                    wt *= 1.0f - w[b];
                }
            }
            acc += wt * to_f(x[off]);
        }
        y[i] = from_f<T>(acc);
    }
}

/* GridSample's coordinates, as the CPU backend's (cpu_data.c) step for
 * step: the kernels build with --use_fast_math, so the roundings that
 * decide a nearest pixel are spelled out (__fadd_rn, __fmul_rn: no fused
 * multiply-add; __fdiv_rn: an exact division). */
__device__ __forceinline__ float grid_reflect(float v, float lo2, float hi2)
{
    if (lo2 == hi2)
        return 0.0f;
    float lo = lo2 * 0.5f, span = (hi2 - lo2) * 0.5f;
    v = fabsf(v - lo);
    float extra = fmodf(v, span);
    return fmodf(floorf(__fdiv_rn(v, span)), 2.0f) == 0.0f ? extra + lo : span - extra + lo;
}

/* Grid value g of an axis of n pixels as a padded pixel coordinate within
 * [-2, n + 1]; NaN and infinities read as PyTorch's clamps make them. */
__device__ __forceinline__ float grid_coord(float g, int64_t n, int padding, int align)
{
    float g1 = __fadd_rn(g, 1.0f);
    float v = align ? __fmul_rn(__fmul_rn(g1, 0.5f), (float)(n - 1))
                    : __fmul_rn(__fadd_rn(__fmul_rn(g1, (float)n), -1.0f), 0.5f);
    if (!isfinite(v))
        return padding == KERN_GRID_PAD_ZEROS                ? -2.0f
               : padding == KERN_GRID_PAD_BORDER && v > 0.0f ? (float)(n - 1)
                                                             : 0.0f;
    if (padding == KERN_GRID_PAD_REFLECTION)
        v = align ? grid_reflect(v, 0.0f, 2.0f * (float)(n - 1))
                  : grid_reflect(v, -1.0f, 2.0f * (float)n - 1.0f);
    if (padding != KERN_GRID_PAD_ZEROS)
        v = v < 0.0f ? 0.0f : v > (float)(n - 1) ? (float)(n - 1) : v;
    return v < -2.0f ? -2.0f : v > (float)n + 1.0f ? (float)n + 1.0f : v;
}

/* GridSample: one thread per output element (b, c, p), p = the output
 * pixel, fastest; each computes its pixel's coordinates again rather than
 * sharing them across channels, which costs two grid loads and a few
 * flops next to four scattered image loads. A tap outside the image adds
 * nothing (zeros padding). */
template <typename T>
__global__ void grid_sample(const T *__restrict__ x, const T *__restrict__ grid, T *__restrict__ y,
                            kern_grid_sample d)
{
    int64_t out = d.ho * d.wo, plane = d.h * d.w, total = d.n * d.c * out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = i % out, bc = i / out, b = bc / d.c;
        const T *gp = grid + (b * out + p) * 2;
        float fx = grid_coord(to_f(gp[0]), d.w, d.padding, d.align);
        float fy = grid_coord(to_f(gp[1]), d.h, d.padding, d.align);
        const T *xc = x + bc * plane;
        float acc = 0.0f;
        if (d.nearest) {
            int64_t ix = (int64_t)rintf(fx), iy = (int64_t)rintf(fy);
            if (ix >= 0 && ix < d.w && iy >= 0 && iy < d.h)
                acc = to_f(xc[iy * d.w + ix]);
        } else {
            float x0 = floorf(fx), y0 = floorf(fy), tx = fx - x0, ty = fy - y0;
            float w[4] = {(1.0f - tx) * (1.0f - ty), tx * (1.0f - ty), (1.0f - tx) * ty, tx * ty};
            for (int t = 0; t < 4; t++) {
                int64_t ix = (int64_t)x0 + (t & 1), iy = (int64_t)y0 + (t >> 1);
                if (ix >= 0 && ix < d.w && iy >= 0 && iy < d.h)
                    acc += to_f(xc[iy * d.w + ix]) * w[t];
            }
        }
        y[i] = from_f<T>(acc);
    }
}

template <typename F> cudaError_t by_dtype(ferry_dtype dt, F f)
{
    switch (dt) {
    case FERRY_F32: f((float *)nullptr); break;
    case FERRY_F16: f((__half *)nullptr); break;
    case FERRY_BF16: f((__nv_bfloat16 *)nullptr); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kern_bias_act(const void *x, const void *bias, const void *r, void *y,
                                     int64_t n, int64_t ch, int64_t inner, int a, float p, float q,
                                     ferry_dtype dt, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    if (n < kIndex32Max) {
        divmod32 din, dch;
        din.init((uint32_t)inner);
        dch.init((uint32_t)ch);
        return by_dtype(dt, [&](auto *t) {
            using T = typename std::remove_pointer<decltype(t)>::type;
            bias_act32<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (const T *)bias,
                                                           (const T *)r, (T *)y, (uint32_t)n, din,
                                                           dch, a, p, q);
        });
    }
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        bias_act<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (const T *)bias, (const T *)r,
                                                     (T *)y, n, ch, inner, a, p, q);
    });
}

/* pool's 2-D channels-last case (every CNN's stem and downsampling
 * pools) on 32-bit indices: the general kernel's int64 divisions and
 * three-level loop cost ~10x the bytes it moves (resnet50's 3x3/2 max pool
 * at batch 64: 4% of the forward, as much as several convolutions).
 * Consecutive threads take consecutive channels of one pixel, so each tap
 * is a coalesced read. i = ((b * OH + oh) * OW + ow) * C + c. */
template <typename T>
__global__ void pool2d_nhwc(const T *x, T *y, kern_pool d, divmod32 dc, divmod32 dw, divmod32 dh,
                            uint32_t n)
{
    const int H = (int)d.in[1], W = (int)d.in[2], C = (int)d.ch;
    const int KH = (int)d.kernel[1], KW = (int)d.kernel[2];
    const int SH = (int)d.stride[1], SW = (int)d.stride[2], DH = (int)d.dil[1], DW = (int)d.dil[2];
    const int PH = (int)d.pad[1], PW = (int)d.pad[2];
    const int HE = H + (int)d.pad_end[1], WE = W + (int)d.pad_end[2];
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t q = dc.quot(i), c = i - q * dc.d;
        uint32_t q2 = dw.quot(q), ow = q - q2 * dw.d;
        uint32_t b = dh.quot(q2), oh = q2 - b * dh.d;
        int h0 = (int)oh * SH - PH, w0 = (int)ow * SW - PW;
        const T *xp = x + (uint32_t)(b * (uint32_t)H * (uint32_t)W * (uint32_t)C) + c;
        float acc = d.is_max ? -INFINITY : 0.0f;
        int valid = 0, padded = 0;
        for (int kh = 0; kh < KH; kh++) {
            int h = h0 + kh * DH;
            for (int kw = 0; kw < KW; kw++) {
                int w = w0 + kw * DW;
                padded += h >= -PH && h < HE && w >= -PW && w < WE;
                if (h < 0 || h >= H || w < 0 || w >= W)
                    continue;
                acc = pool_take(acc, to_f(xp[(h * W + w) * C]), d.is_max);
                valid++;
            }
        }
        y[i] = from_f<T>(pool_value(acc, d, padded, valid));
    }
}

/* pool2d_nhwc for 16-bit tensors of a multiple of 8 channels: a thread per
 * 8 channels of one output pixel, each tap one 16-byte load. The scalar
 * kernel's 2-byte loads left resnet50's 3x3/2 max pool at batch 256 at
 * 1.0 ms (ncu, H100, 2026-12-08: 10% of the forward, ~7x the time its
 * 411 MB of input take to read). i = ((b * OH + oh) * OW + ow) * C/8 + c8. */
template <typename T>
__global__ void pool2d_nhwc_v8(const T *x, T *y, kern_pool d, divmod32 dc, divmod32 dw, divmod32 dh,
                               uint32_t n)
{
    const int H = (int)d.in[1], W = (int)d.in[2], C = (int)d.ch;
    const int KH = (int)d.kernel[1], KW = (int)d.kernel[2];
    const int SH = (int)d.stride[1], SW = (int)d.stride[2], DH = (int)d.dil[1], DW = (int)d.dil[2];
    const int PH = (int)d.pad[1], PW = (int)d.pad[2];
    const int HE = H + (int)d.pad_end[1], WE = W + (int)d.pad_end[2];
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t q = dc.quot(i), c = (i - q * dc.d) * 8;
        uint32_t q2 = dw.quot(q), ow = q - q2 * dw.d;
        uint32_t b = dh.quot(q2), oh = q2 - b * dh.d;
        int h0 = (int)oh * SH - PH, w0 = (int)ow * SW - PW;
        const T *xp = x + (uint32_t)(b * (uint32_t)H * (uint32_t)W * (uint32_t)C) + c;
        float acc[8];
#pragma unroll
        for (int k = 0; k < 8; k++)
            acc[k] = d.is_max ? -INFINITY : 0.0f;
        int valid = 0, padded = 0;
        for (int kh = 0; kh < KH; kh++) {
            int h = h0 + kh * DH;
            for (int kw = 0; kw < KW; kw++) {
                int w = w0 + kw * DW;
                padded += h >= -PH && h < HE && w >= -PW && w < WE;
                if (h < 0 || h >= H || w < 0 || w >= W)
                    continue;
                uint4 raw = *(const uint4 *)(xp + (h * W + w) * C);
                const T *v = (const T *)&raw;
#pragma unroll
                for (int k = 0; k < 8; k++)
                    acc[k] = pool_take(acc[k], to_f(v[k]), d.is_max);
                valid++;
            }
        }
        uint4 out;
        T *o = (T *)&out;
#pragma unroll
        for (int k = 0; k < 8; k++)
            o[k] = from_f<T>(pool_value(acc[k], d, padded, valid));
        *(uint4 *)(y + (size_t)q * C + c) = out;
    }
}

extern "C" cudaError_t kern_pool_run(const void *x, void *y, const kern_pool *d, int64_t planes,
                                     ferry_dtype dt, cudaStream_t s)
{
    int64_t n = planes * d->out[0] * d->out[1] * d->out[2];
    if (n <= 0)
        return cudaSuccess;
    int64_t in_elems = planes * d->in[0] * d->in[1] * d->in[2];
    int flat = d->in[0] == 1 && d->out[0] == 1 && d->kernel[0] == 1 && d->pad[0] == 0 &&
               d->pad_end[0] == 0;
    if (d->nhwc && flat && n < kIndex32Max && in_elems < kIndex32Max && d->ch % 8 == 0 &&
        (dt == FERRY_F16 || dt == FERRY_BF16) && ((uintptr_t)x | (uintptr_t)y) % 16 == 0) {
        divmod32 dc, dw, dh;
        dc.init((uint32_t)(d->ch / 8));
        dw.init((uint32_t)d->out[2]);
        dh.init((uint32_t)d->out[1]);
        uint32_t n8 = (uint32_t)(n / 8);
        if (dt == FERRY_F16)
            pool2d_nhwc_v8<__half><<<grid_for(n8), kThreads, 0, s>>>((const __half *)x, (__half *)y,
                                                                     *d, dc, dw, dh, n8);
        else
            pool2d_nhwc_v8<__nv_bfloat16><<<grid_for(n8), kThreads, 0, s>>>(
                (const __nv_bfloat16 *)x, (__nv_bfloat16 *)y, *d, dc, dw, dh, n8);
        return cudaGetLastError();
    }
    if (d->nhwc && flat && n < kIndex32Max && in_elems < kIndex32Max) {
        divmod32 dc, dw, dh;
        dc.init((uint32_t)d->ch);
        dw.init((uint32_t)d->out[2]);
        dh.init((uint32_t)d->out[1]);
        return by_dtype(dt, [&](auto *t) {
            using T = typename std::remove_pointer<decltype(t)>::type;
            pool2d_nhwc<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (T *)y, *d, dc, dw, dh,
                                                            (uint32_t)n);
        });
    }
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        pool<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (T *)y, *d, planes);
    });
}

/* kern_dwconv_run: mobilenet's and efficientnet's depthwise layers, which
 * cuDNN's legacy calls ran at 105-120 us each at batch 64 on an H200
 * (mobilenet_v2 at 0.3x PyTorch's speed) and its graph API ran wrong above
 * batch 1 (cuda_conv.c); this kernel made mobilenet_v2 2.0-2.4x faster at
 * batch 8-256 (H100, fp16, 2026-12-07). A depthwise layer is memory-bound (9 multiply-adds
 * per output for a 3x3), so it is shaped as pool2d_nhwc: a thread per
 * output, consecutive threads on consecutive channels of one pixel, so
 * every tap is a coalesced read and neighbouring pixels' taps hit L1/L2;
 * a thread's kh*kw weights are contiguous ([C, kh, kw]) and cached. The
 * epilogue (bias, residual, activation) is applied before the one store. */
template <typename T>
__global__ void dwconv2d_nhwc(const T *x, const T *w, const T *bias, const T *r, T *y,
                              kern_dwconv d, divmod32 dc, divmod32 dwo, divmod32 dho, uint32_t n)
{
    const int H = d.h, W = d.w, C = d.ch;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t q = dc.quot(i), c = i - q * dc.d;
        uint32_t q2 = dwo.quot(q), ow = q - q2 * dwo.d;
        uint32_t b = dho.quot(q2), oh = q2 - b * dho.d;
        int h0 = (int)oh * d.sh - d.ph, w0 = (int)ow * d.sw - d.pw;
        const T *xp = x + b * (uint32_t)H * (uint32_t)W * (uint32_t)C + c;
        const T *wp = w + c * (uint32_t)(d.kh * d.kw);
        float acc = bias ? to_f(bias[c]) : 0.0f;
        for (int u = 0; u < d.kh; u++) {
            int hh = h0 + u * d.dh;
            if (hh < 0 || hh >= H)
                continue;
            for (int v = 0; v < d.kw; v++) {
                int ww = w0 + v * d.dw;
                if (ww >= 0 && ww < W)
                    acc += to_f(xp[(hh * W + ww) * C]) * to_f(wp[u * d.kw + v]);
            }
        }
        if (r)
            acc += to_f(r[i]);
        y[i] = from_f<T>(act(d.act, acc, d.p, d.q));
    }
}

extern "C" cudaError_t kern_dwconv_run(const void *x, const void *w, const void *bias,
                                       const void *r, void *y, const kern_dwconv *d, int64_t nb,
                                       ferry_dtype dt, cudaStream_t s)
{
    int64_t n = nb * d->oh * d->ow * d->ch;
    if (n <= 0)
        return cudaSuccess;
    if (n >= kIndex32Max || nb * d->h * d->w * d->ch >= kIndex32Max)
        return cudaErrorInvalidValue;
    divmod32 dc, dwo, dho;
    dc.init((uint32_t)d->ch);
    dwo.init((uint32_t)d->ow);
    dho.init((uint32_t)d->oh);
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        dwconv2d_nhwc<T><<<grid_for(n), kThreads, 0, s>>>((const T *)x, (const T *)w,
                                                          (const T *)bias, (const T *)r, (T *)y, *d,
                                                          dc, dwo, dho, (uint32_t)n);
    });
}

extern "C" cudaError_t kern_pad_run(const void *x, void *y, const kern_pad *d, float value,
                                    ferry_dtype dt, cudaStream_t s)
{
    if (d->n <= 0)
        return cudaSuccess;
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        pad<T><<<grid_for(d->n), kThreads, 0, s>>>((const T *)x, (T *)y, *d, value);
    });
}

extern "C" cudaError_t kern_resize_run(const void *x, void *y, const kern_resize *d, ferry_dtype dt,
                                       cudaStream_t s)
{
    if (d->n <= 0)
        return cudaSuccess;
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        resize<T><<<grid_for(d->n), kThreads, 0, s>>>((const T *)x, (T *)y, *d);
    });
}

extern "C" cudaError_t kern_grid_sample_run(const void *x, const void *grid, void *y,
                                            const kern_grid_sample *d, ferry_dtype dt,
                                            cudaStream_t s)
{
    int64_t total = d->n * d->c * d->ho * d->wo;
    if (total <= 0)
        return cudaSuccess;
    return by_dtype(dt, [&](auto *t) {
        using T = typename std::remove_pointer<decltype(t)>::type;
        grid_sample<T>
            <<<grid_for(total), kThreads, 0, s>>>((const T *)x, (const T *)grid, (T *)y, *d);
    });
}
