/*
 * kernels_rnn.cu - the per-step gate math of ONNX LSTM, GRU and RNN
 * (cuda_rnn.c runs the matmuls around it). One thread per (batch row,
 * hidden unit): the step's gate sums are xg (the input projection, read in
 * place from the projection of every step) + hg (the state's matmul with
 * R) + the biases, and the new state is written in fp32 (the running
 * state never rounds to 16 bits: over 64 steps an fp16 state would) and,
 * for the next step's matmul, in the compute dtype.
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

__device__ __forceinline__ float sigm(float v)
{
    return 1.0f / (1.0f + __expf(-v));
}

template <typename T> __global__ void rnn_init_kernel(kern_rnn p, const T *h0, const T *c0)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.batch * p.H)
        return;
    int64_t b = i / p.H, j = i % p.H;
    float h = h0 ? to_f(h0[b * p.s_ld + j]) : 0.0f;
    p.h[i] = h;
    T ht = from_f<T>(h);
    ((T *)p.hc)[i] = ht;
    if (p.yh)
        ((T *)p.yh)[b * p.s_ld + j] = ht;
    if (p.c) {
        float c = c0 ? to_f(c0[b * p.s_ld + j]) : 0.0f;
        p.c[i] = c;
        if (p.yc)
            ((T *)p.yc)[b * p.s_ld + j] = from_f<T>(c);
    }
}

/* ONNX gate order: LSTM i, o, f, c; GRU z, r, h (linear_before_reset 1:
 * h = tanh(xh + Wbh + r * (hh + Rbh))); RNN h = f(x Wi + h Ri + Wbi + Rbi),
 * f tanh or relu. The time this row visits at step k: k, or from its own
 * end backwards; none past its length (sequence_lens). */
template <typename T> __global__ void rnn_step_kernel(kern_rnn p)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.batch * p.H)
        return;
    int64_t b = i / p.H, j = i % p.H, H = p.H;
    int64_t len = p.seq;
    if (p.lens) {
        int64_t l = p.lens[b];
        len = l < 0 ? 0 : l > p.seq ? p.seq : l;
    }
    if (p.k >= len)
        return;
    int64_t t = p.reverse ? len - 1 - p.k : p.k;
    const T *xg = (const T *)p.xg + t * p.xg_ts + b * p.xg_ld;
    const T *hg = (const T *)p.hg + b * p.GH;
    float h;
    if (p.kind == KERN_RNN_TANH || p.kind == KERN_RNN_RELU) {
        float v = to_f(xg[j]) + to_f(hg[j]) + p.bias[j];
        h = p.kind == KERN_RNN_TANH ? tanhf(v) : v > 0.0f ? v : 0.0f;
    } else if (p.kind == KERN_RNN_LSTM) {
        float gi = to_f(xg[j]) + to_f(hg[j]) + p.bias[j];
        float go = to_f(xg[H + j]) + to_f(hg[H + j]) + p.bias[H + j];
        float gf = to_f(xg[2 * H + j]) + to_f(hg[2 * H + j]) + p.bias[2 * H + j];
        float gc = to_f(xg[3 * H + j]) + to_f(hg[3 * H + j]) + p.bias[3 * H + j];
        float c = sigm(gf) * p.c[i] + sigm(gi) * tanhf(gc);
        p.c[i] = c;
        h = sigm(go) * tanhf(c);
        if (p.yc)
            ((T *)p.yc)[b * p.s_ld + j] = from_f<T>(c);
    } else {
        float z = sigm(to_f(xg[j]) + to_f(hg[j]) + p.bias[j]);
        float r = sigm(to_f(xg[H + j]) + to_f(hg[H + j]) + p.bias[H + j]);
        float n =
            tanhf(to_f(xg[2 * H + j]) + p.bias[2 * H + j] + r * (to_f(hg[2 * H + j]) + p.rbh[j]));
        h = (1.0f - z) * n + z * p.h[i];
    }
    p.h[i] = h;
    T ht = from_f<T>(h);
    ((T *)p.hc)[i] = ht;
    if (p.y)
        ((T *)p.y)[t * p.y_ts + b * p.y_ld + j] = ht;
    if (p.yh)
        ((T *)p.yh)[b * p.s_ld + j] = ht;
}

template <typename T>
cudaError_t launch_step(const kern_rnn *p, const void *h0, const void *c0, int init, cudaStream_t s)
{
    int64_t n = p->batch * p->H;
    if (n <= 0)
        return cudaSuccess;
    unsigned blocks = (unsigned)((n + 255) / 256);
    if (init)
        rnn_init_kernel<T><<<blocks, 256, 0, s>>>(*p, (const T *)h0, (const T *)c0);
    else
        rnn_step_kernel<T><<<blocks, 256, 0, s>>>(*p);
    return cudaGetLastError();
}

cudaError_t dispatch(const kern_rnn *p, const void *h0, const void *c0, int init, ferry_dtype dt,
                     cudaStream_t s)
{
    switch (dt) {
    case FERRY_F16: return launch_step<__half>(p, h0, c0, init, s);
    case FERRY_BF16: return launch_step<__nv_bfloat16>(p, h0, c0, init, s);
    default: return launch_step<float>(p, h0, c0, init, s);
    }
}

} // namespace

extern "C" cudaError_t kern_rnn_init(const kern_rnn *p, const void *h0, const void *c0,
                                     ferry_dtype dt, cudaStream_t s)
{
    return dispatch(p, h0, c0, 1, dt, s);
}

extern "C" cudaError_t kern_rnn_step(const kern_rnn *p, ferry_dtype dt, cudaStream_t s)
{
    return dispatch(p, NULL, NULL, 0, dt, s);
}
