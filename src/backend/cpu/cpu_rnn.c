/*
 * cpu_rnn.c - ONNX LSTM, GRU and RNN on the CPU (see cpu_rnn.h).
 *
 * A run is one GEMM for the input projection of every step and direction
 * (X [seq*batch, I] x W^T [I, D*G*H], the biases that do not depend on
 * the state folded in as its row bias), then per step and direction one
 * GEMM of the state with R for all gates (two for GRU with
 * linear_before_reset 0, whose candidate gate multiplies r into the state
 * before R), and one pass over each batch row that does all of the gate
 * math and writes the new state. The two directions of a bidirectional
 * layer are independent and run on two threads when the backend has them.
 *
 * The gate passes use call-free exp/tanh (below) so that they vectorize;
 * they are built for AVX2+FMA and for baseline x86-64 and picked once at
 * create, as cpu_kernels.c does for its activations.
 */
#include "backend/cpu/cpu_rnn.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_parallel.h"
#include "util/error.h"
#include "util/format.h"

/* One LSTM row: gates xg (input projection plus biases, [4H] in ONNX order
 * i,o,f,c) + hg (h_{t-1} R^T, [4H], scratch: the gates' values are left
 * there); pp the peepholes [3H] (i,o,f; zeros when absent); h and c the
 * state, updated in place. */
typedef void (*lstm_row_fn)(int64_t H, const float *xg, float *hg, const float *pp, float *h,
                            float *c, float clip, int input_forget);
/* GRU, linear_before_reset 1: hg is h_{t-1} R^T [3H] (z,r,h; scratch), rb
 * the recurrent bias of the h gate [H]. */
typedef void (*gru_row_fn)(int64_t H, const float *xg, float *hg, const float *rb, float *h,
                           float clip);
/* GRU, linear_before_reset 0, first pass: z and r from xg and hg ([2H]);
 * z is stored over hg's z part, rh = r * h_{t-1}. */
typedef void (*gru_zr_fn)(int64_t H, const float *xg, float *hg, const float *h, float *rh,
                          float clip);
/* Second pass: hh = (r * h_{t-1}) Rh^T [H], z from the first pass. */
typedef void (*gru_n_fn)(int64_t H, const float *xg, const float *z, const float *hh, float *h,
                         float clip);
/* RNN: h_t = f(xg + hg) with hg = h_{t-1} R^T [H]; relu selects f. */
typedef void (*rnn_row_fn)(int64_t H, const float *xg, const float *hg, float *h, float clip,
                           int relu);

struct cpu_rnn {
    cpu_rnn_kind kind;
    int D, G, layout, lbr, input_forget;
    int reverse; /* one direction, reverse */
    int64_t H, I, GH;
    float clip;     /* FLT_MAX when none */
    char label[96]; /* "LSTM 'name'" for messages */
    float *Wt;      /* [I, D*G*H]: W of every direction, transposed */
    float *R;       /* [D, G*H, H] as given */
    float *bias;    /* [D*G*H]: Wb + Rb; GRU lbr=1's h gate: Wbh only */
    float *rbh;     /* GRU lbr=1: [D, H] Rbh */
    float *peep;    /* LSTM: [D, 3H], zeros when P is absent */
    float *Rp;      /* R packed for rec_gemm ([D][G*H/16][H][16]), or NULL */
    lstm_row_fn lstm_row;
    gru_row_fn gru_row;
    gru_zr_fn gru_zr;
    gru_n_fn gru_n;
    rnn_row_fn rnn_row;
    int relu;      /* RNN: the activation is Relu (else Tanh) */
    int projected; /* X is the projection (cpu_rnn_params.x_projected) */
};

/* --------------------------------------------------------- gate math */

/* Without no-trapping-math GCC keeps the selects below as branches and the
 * loops scalar (see cpu_kernels.c). fp-contract: -std=c11 turns GCC's
 * contraction off, which left the AVX2 gate pass 150 vmulps and 150 vaddps
 * and no FMA (exp's polynomials, the gate sums); fused, each is one
 * rounding instead of two. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#define RNN_INLINE static inline __attribute__((always_inline))

#include "backend/cpu/cpu_vexp.h" /* after the pragma: see there */

RNN_INLINE float rnn_sigmoid(float x)
{
    return 1.0f / (1.0f + vexpf(-x));
}

/* tanh as Cephes' tanhf: an odd polynomial below 0.625, where 1 - 2/(e^2x
 * + 1) would lose the small result to cancellation, else that form; both
 * computed and one selected, so that the loop vectorizes. ~2e-7 relative. */
RNN_INLINE float rnn_tanh(float x)
{
    float a = fabsf(x);
    float big = 1.0f - 2.0f / (vexpf(2.0f * a) + 1.0f);
    float z = a * a;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * a + a;
    float t = a < 0.625f ? small : big;
    return copysignf(t, x);
}

RNN_INLINE float rnn_clip(float v, float c)
{
    v = v < -c ? -c : v;
    return v > c ? c : v;
}

/* The LSTM equations of the ONNX page, with clip on every gate's input:
 *   i = s(xi + hi + Pi.c_{t-1})  f = s(xf + hf + Pf.c_{t-1})  (or 1 - i)
 *   g = tanh(xc + hc)            c_t = f.c_{t-1} + i.g
 *   o = s(xo + ho + Po.c_t)      h_t = o.tanh(c_t)
 * One short loop per gate, each leaving its values over hg's part, rather
 * than one loop over all five: that body was ~250 AVX2 instructions with
 * chains of three dependent exp-and-divides (i -> c_t -> o -> h), longer
 * than Zen 3's 256-entry reorder window, so that one j's chains could not
 * overlap the next's, and the constants no longer fitted the registers
 * (71 reloads). Apart, each loop's iterations overlap: 10.8 -> ~3 ns an
 * element (H = 256, a 16-row block, in cache), the gates 13% of an LSTM
 * classifier's time at batch 32 before. */
RNN_INLINE void lstm_row_body(int64_t H, const float *restrict xg, float *restrict hg,
                              const float *restrict pp, float *restrict h, float *restrict c,
                              float clip, int input_forget)
{
    const float *xi = xg, *xo = xg + H, *xf = xg + 2 * H, *xc = xg + 3 * H;
    float *hi = hg, *ho = hg + H, *hf = hg + 2 * H, *hc = hg + 3 * H;
    const float *pi = pp, *po = pp + H, *pf = pp + 2 * H;
    for (int64_t j = 0; j < H; j++)
        hi[j] = rnn_sigmoid(rnn_clip(xi[j] + hi[j] + pi[j] * c[j], clip));
    if (input_forget) {
        for (int64_t j = 0; j < H; j++)
            hf[j] = 1.0f - hi[j];
    } else {
        for (int64_t j = 0; j < H; j++)
            hf[j] = rnn_sigmoid(rnn_clip(xf[j] + hf[j] + pf[j] * c[j], clip));
    }
    for (int64_t j = 0; j < H; j++)
        hc[j] = rnn_tanh(rnn_clip(xc[j] + hc[j], clip));
    for (int64_t j = 0; j < H; j++) {
        float cn = hf[j] * c[j] + hi[j] * hc[j];
        c[j] = cn;
        ho[j] = rnn_sigmoid(rnn_clip(xo[j] + ho[j] + po[j] * cn, clip));
    }
    for (int64_t j = 0; j < H; j++)
        h[j] = ho[j] * rnn_tanh(c[j]);
}

/* GRU, linear_before_reset 1:
 *   z = s(xz + hz)  r = s(xr + hr)  n = tanh(xh + r.(hh + Rbh))
 *   h_t = (1 - z).n + z.h_{t-1}
 * In short loops, as the LSTM's. */
RNN_INLINE void gru_row_body(int64_t H, const float *restrict xg, float *restrict hg,
                             const float *restrict rb, float *restrict h, float clip)
{
    float *hz = hg, *hr = hg + H, *hh = hg + 2 * H;
    for (int64_t j = 0; j < H; j++)
        hz[j] = rnn_sigmoid(rnn_clip(xg[j] + hz[j], clip));
    for (int64_t j = 0; j < H; j++)
        hr[j] = rnn_sigmoid(rnn_clip(xg[H + j] + hr[j], clip));
    for (int64_t j = 0; j < H; j++) {
        float n = rnn_tanh(rnn_clip(xg[2 * H + j] + hr[j] * (hh[j] + rb[j]), clip));
        h[j] = (1.0f - hz[j]) * n + hz[j] * h[j];
    }
}

/* GRU, linear_before_reset 0: n = tanh(xh + (r.h_{t-1}) Rh^T), the
 * recurrent bias Rbh being in xh; z, r as above. */
RNN_INLINE void gru_zr_body(int64_t H, const float *restrict xg, float *restrict hg,
                            const float *restrict h, float *restrict rh, float clip)
{
    for (int64_t j = 0; j < H; j++) {
        float z = rnn_sigmoid(rnn_clip(xg[j] + hg[j], clip));
        float r = rnn_sigmoid(rnn_clip(xg[H + j] + hg[H + j], clip));
        hg[j] = z;
        rh[j] = r * h[j];
    }
}

RNN_INLINE void gru_n_body(int64_t H, const float *restrict xg, const float *restrict z,
                           const float *restrict hh, float *restrict h, float clip)
{
    for (int64_t j = 0; j < H; j++) {
        float n = rnn_tanh(rnn_clip(xg[2 * H + j] + hh[j], clip));
        h[j] = (1.0f - z[j]) * n + z[j] * h[j];
    }
}

/* RNN: h_t = tanh or relu of (x Wi^T + Wbi + h_{t-1} Ri^T + Rbi), the
 * biases being in xg. */
RNN_INLINE void rnn_row_body(int64_t H, const float *restrict xg, const float *restrict hg,
                             float *restrict h, float clip, int relu)
{
    if (relu)
        for (int64_t j = 0; j < H; j++) {
            float v = rnn_clip(xg[j] + hg[j], clip);
            h[j] = v > 0.0f ? v : 0.0f;
        }
    else
        for (int64_t j = 0; j < H; j++)
            h[j] = rnn_tanh(rnn_clip(xg[j] + hg[j], clip));
}

#define LSTM_PARAMS                                                                                \
    (int64_t H, const float *xg, float *hg, const float *pp, float *h, float *c, float clip,       \
     int input_forget)
#define LSTM_ARGS (H, xg, hg, pp, h, c, clip, input_forget)
#define GRU_PARAMS (int64_t H, const float *xg, float *hg, const float *rb, float *h, float clip)
#define GRU_ARGS (H, xg, hg, rb, h, clip)
#define GRU_ZR_PARAMS (int64_t H, const float *xg, float *hg, const float *h, float *rh, float clip)
#define GRU_ZR_ARGS (H, xg, hg, h, rh, clip)
#define GRU_N_PARAMS                                                                               \
    (int64_t H, const float *xg, const float *z, const float *hh, float *h, float clip)
#define GRU_N_ARGS (H, xg, z, hh, h, clip)
#define RNN_ROW_PARAMS (int64_t H, const float *xg, const float *hg, float *h, float clip, int relu)
#define RNN_ROW_ARGS (H, xg, hg, h, clip, relu)

#define RNN_VARIANT(name, attr, suffix, params, args)                                              \
    attr static void name##_##suffix params                                                        \
    {                                                                                              \
        name##_body args;                                                                          \
    }

#define RNN_VARIANTS(attr, suffix)                                                                 \
    RNN_VARIANT(lstm_row, attr, suffix, LSTM_PARAMS, LSTM_ARGS)                                    \
    RNN_VARIANT(gru_row, attr, suffix, GRU_PARAMS, GRU_ARGS)                                       \
    RNN_VARIANT(gru_zr, attr, suffix, GRU_ZR_PARAMS, GRU_ZR_ARGS)                                  \
    RNN_VARIANT(gru_n, attr, suffix, GRU_N_PARAMS, GRU_N_ARGS)                                     \
    RNN_VARIANT(rnn_row, attr, suffix, RNN_ROW_PARAMS, RNN_ROW_ARGS)

RNN_VARIANTS(, base)
#if defined(__x86_64__) && defined(__GNUC__)
#define RNN_HAVE_AVX2_VARIANT 1
RNN_VARIANTS(__attribute__((target("avx2,fma"))), avx2)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ------------------------------------------------- the recurrent GEMM */

/* g[b, n] = sum_k h[b, k] R[n, k] for a step, with R packed once at create
 * into panels of 16 of its rows, k-major ([GH/16][H][16]), so that each
 * step reads it as it is. oneDNN's and OpenBLAS's sgemm repack R (1 MB for
 * H = 256) on every call and have no packed-weights entry point; at the
 * engine's batch of 16 a worker (a batch of 32 split over two) that cost
 * dnnl_sgemm a third: [16, 256] x [256, 1024] took 114-136 us (62-73
 * GFLOP/s on one Zen 3 core), this kernel 90 us (93 GFLOP/s), best of 300.
 * Rows go in blocks of up to six (12 accumulators, the two panel vectors
 * and a broadcast fill the 16 AVX2 registers). */
#if defined(__x86_64__) && defined(__GNUC__)
#define RNN_HAVE_PACKED 1
#include <immintrin.h>

#define REC_AVX2 __attribute__((target("avx2,fma")))

static inline __attribute__((always_inline, target("avx2,fma"))) void
rec_block(int rows, const float *h, int64_t H, const float *panel, float *g, int64_t ldg)
{
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
        c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < H; k++) {
        __m256 b0 = _mm256_load_ps(panel + k * 16), b1 = _mm256_load_ps(panel + k * 16 + 8);
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++)
            if (r < rows) {
                __m256 a = _mm256_broadcast_ss(h + r * H + k);
                c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
                c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
            }
    }
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
        if (r < rows) {
            _mm256_storeu_ps(g + r * ldg, c[r][0]);
            _mm256_storeu_ps(g + r * ldg + 8, c[r][1]);
        }
}

#define REC_ROWS(n)                                                                                \
    REC_AVX2 static void rec_rows##n(const float *h, int64_t H, const float *p, float *g,          \
                                     int64_t ldg)                                                  \
    {                                                                                              \
        rec_block(n, h, H, p, g, ldg);                                                             \
    }
REC_ROWS(1)
REC_ROWS(2)
REC_ROWS(3)
REC_ROWS(4)
REC_ROWS(5)
REC_ROWS(6)

/* g [batch, 16 * n_panels] (rows ldg apart) from h [batch, H] and panels
 * [p0, p0 + n_panels) of Rp. Each panel (16 KB for H = 256) stays in L1
 * while every row block passes over it. */
static void rec_gemm(const float *Rp, int64_t p0, int64_t n_panels, const float *h, int64_t batch,
                     int64_t H, float *g, int64_t ldg)
{
    typedef void (*rows_fn)(const float *, int64_t, const float *, float *, int64_t);
    static const rows_fn by_rows[7] = {NULL,      rec_rows1, rec_rows2, rec_rows3,
                                       rec_rows4, rec_rows5, rec_rows6};
    for (int64_t p = 0; p < n_panels; p++) {
        const float *panel = Rp + (p0 + p) * H * 16;
        for (int64_t b = 0; b < batch; b += 6) {
            int64_t rows = batch - b < 6 ? batch - b : 6;
            by_rows[rows](h + b * H, H, panel, g + b * ldg + p * 16, ldg);
        }
    }
}
#endif

/* ------------------------------------------- the LSTM gates in AVX2 */

/* lstm_row_body written out in AVX2 for H a multiple of 8: the same short
 * loops and the same exp (cpu_vexp.h's Cephes polynomial), but 1/d as a
 * reciprocal estimate refined by one Newton step (~2 ulp) instead of
 * vdivps. The five divisions an element were a third of the gate pass
 * (perf: the instruction after each vdivps held most samples; Zen 3
 * starts one 8-wide division every 5 cycles); GCC emits the estimate only
 * under -ffast-math, which would also drop the NaN and clamp semantics
 * kept here. d >= 1 everywhere below (1 + e^x, e^2a + 1), so the estimate
 * never meets 0, a denormal or infinity (exp's input is clamped). */
#ifdef RNN_HAVE_PACKED
#define V8 static inline __attribute__((always_inline, target("avx2,fma")))

V8 __m256 v8_exp(__m256 x)
{
    /* max/min with x second keep a NaN x (they return their second operand
     * then), as the scalar version's compares do. */
    x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.3f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 a =
        _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    __m256 b =
        _mm256_fmadd_ps(_mm256_set1_ps(8.3334519073e-3f), r, _mm256_set1_ps(4.1665795894e-2f));
    __m256 c =
        _mm256_fmadd_ps(_mm256_set1_ps(1.6666665459e-1f), r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(a, r2, b), r2, c);
    p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

V8 __m256 v8_recip(__m256 d)
{
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

V8 __m256 v8_sigmoid(__m256 x)
{
    return v8_recip(
        _mm256_add_ps(_mm256_set1_ps(1.0f), v8_exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* rnn_tanh in AVX2: the odd polynomial below 0.625, 1 - 2/(e^2a + 1) above. */
V8 __m256 v8_tanh(__m256 x)
{
    __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 e = v8_exp(_mm256_add_ps(a, a));
    __m256 big =
        _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), v8_recip(_mm256_add_ps(e, _mm256_set1_ps(1.0f))),
                         _mm256_set1_ps(1.0f));
    __m256 z = _mm256_mul_ps(a, a);
    __m256 p =
        _mm256_fmadd_ps(_mm256_set1_ps(-5.70498872745e-3f), z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
    __m256 t = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

/* rnn_clip: NaN stays NaN (max/min return x, their second operand). */
V8 __m256 v8_clip(__m256 v, __m256 lo, __m256 hi, int on)
{
    return on ? _mm256_min_ps(hi, _mm256_max_ps(lo, v)) : v;
}

V8 void lstm_row_v8_body(int64_t H, const float *restrict xg, float *restrict hg,
                         const float *restrict pp, float *restrict h, float *restrict c, float clip,
                         int input_forget, int clip_on)
{
    const float *xi = xg, *xo = xg + H, *xf = xg + 2 * H, *xc = xg + 3 * H;
    float *hi = hg, *ho = hg + H, *hf = hg + 2 * H, *hc = hg + 3 * H;
    const float *pi = pp, *po = pp + H, *pf = pp + 2 * H;
    __m256 hi_c = _mm256_set1_ps(clip), lo_c = _mm256_set1_ps(-clip);
#define LD(p) _mm256_loadu_ps((p) + j)
    for (int64_t j = 0; j < H; j += 8) {
        __m256 v = _mm256_fmadd_ps(LD(pi), LD(c), _mm256_add_ps(LD(xi), LD(hi)));
        _mm256_storeu_ps(hi + j, v8_sigmoid(v8_clip(v, lo_c, hi_c, clip_on)));
    }
    if (input_forget) {
        for (int64_t j = 0; j < H; j += 8)
            _mm256_storeu_ps(hf + j, _mm256_sub_ps(_mm256_set1_ps(1.0f), LD(hi)));
    } else {
        for (int64_t j = 0; j < H; j += 8) {
            __m256 v = _mm256_fmadd_ps(LD(pf), LD(c), _mm256_add_ps(LD(xf), LD(hf)));
            _mm256_storeu_ps(hf + j, v8_sigmoid(v8_clip(v, lo_c, hi_c, clip_on)));
        }
    }
    for (int64_t j = 0; j < H; j += 8)
        _mm256_storeu_ps(hc + j,
                         v8_tanh(v8_clip(_mm256_add_ps(LD(xc), LD(hc)), lo_c, hi_c, clip_on)));
    for (int64_t j = 0; j < H; j += 8) {
        __m256 cn = _mm256_fmadd_ps(LD(hf), LD(c), _mm256_mul_ps(LD(hi), LD(hc)));
        _mm256_storeu_ps(c + j, cn);
        __m256 v = _mm256_fmadd_ps(LD(po), cn, _mm256_add_ps(LD(xo), LD(ho)));
        _mm256_storeu_ps(ho + j, v8_sigmoid(v8_clip(v, lo_c, hi_c, clip_on)));
    }
    for (int64_t j = 0; j < H; j += 8)
        _mm256_storeu_ps(h + j, _mm256_mul_ps(LD(ho), v8_tanh(LD(c))));
#undef LD
}

/* With and without clip, so that the unclipped loops carry no min/max. */
REC_AVX2 static void lstm_row_v8 LSTM_PARAMS
{
    lstm_row_v8_body(H, xg, hg, pp, h, c, clip, input_forget, 1);
}
REC_AVX2 static void lstm_row_v8_noclip LSTM_PARAMS
{
    lstm_row_v8_body(H, xg, hg, pp, h, c, clip, input_forget, 0);
}
#undef V8
#endif

static void pick_gate_fns(cpu_rnn *r)
{
#ifdef RNN_HAVE_AVX2_VARIANT
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        r->lstm_row = lstm_row_avx2;
#ifdef RNN_HAVE_PACKED
        if (r->H % 8 == 0)
            r->lstm_row = r->clip < FLT_MAX ? lstm_row_v8 : lstm_row_v8_noclip;
#endif
        r->gru_row = gru_row_avx2;
        r->gru_zr = gru_zr_avx2;
        r->gru_n = gru_n_avx2;
        r->rnn_row = rnn_row_avx2;
        return;
    }
#endif
    r->lstm_row = lstm_row_base;
    r->gru_row = gru_row_base;
    r->gru_zr = gru_zr_base;
    r->gru_n = gru_n_base;
    r->rnn_row = rnn_row_base;
}

/* ------------------------------------------------------------- create */

static ferry_status check_tensor(const cpu_rnn *r, const char *what, const ferry_tensor *t, int nd,
                                 const int64_t *want)
{
    char got[96], exp[96];
    if (t->dtype != FERRY_F32)
        return ferry_fail(FERRY_EDTYPE, "%s: input %s has dtype %s, expected f32", r->label, what,
                          ferry_dtype_name(t->dtype));
    int ok = t->ndim == nd && t->data != NULL;
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        ferry_shape_str(got, sizeof got, t->ndim, t->shape);
        ferry_shape_str(exp, sizeof exp, nd, want);
        if (!t->data && t->ndim == nd)
            return ferry_fail(FERRY_EINVAL, "%s: input %s has no data", r->label, what);
        return ferry_fail(FERRY_ESHAPE, "%s: input %s has shape %s, expected %s", r->label, what,
                          got, exp);
    }
    return FERRY_OK;
}

static ferry_status check_activations(const cpu_rnn *r, const cpu_rnn_params *p)
{
    static const char *const lstm[3] = {"Sigmoid", "Tanh", "Tanh"};
    static const char *const gru[2] = {"Sigmoid", "Tanh"};
    static const char *const rnn_tanh1[1] = {"Tanh"}, *const rnn_relu1[1] = {"Relu"};
    const char *const *def = p->kind == CPU_RNN_LSTM  ? lstm
                             : p->kind == CPU_RNN_GRU ? gru
                             : p->relu                ? rnn_relu1
                                                      : rnn_tanh1;
    int per_dir = p->kind == CPU_RNN_LSTM ? 3 : p->kind == CPU_RNN_GRU ? 2 : 1;
    if (p->n_activations == 0 || !p->activations)
        return FERRY_OK;
    if (p->n_activations != per_dir * r->D)
        return ferry_fail(FERRY_EINVAL, "%s: attribute activations has %d names, expected %d",
                          r->label, p->n_activations, per_dir * r->D);
    for (int i = 0; i < p->n_activations; i++) {
        const char *a = p->activations[i] ? p->activations[i] : "(null)";
        if (strcasecmp(a, def[i % per_dir]) != 0)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "%s: attribute activations[%d] is '%s'; only the default '%s' is "
                              "supported",
                              r->label, i, a, def[i % per_dir]);
    }
    return FERRY_OK;
}

void cpu_rnn_destroy(cpu_rnn *rnn)
{
    if (!rnn)
        return;
    free(rnn->Wt);
    free(rnn->R);
    free(rnn->bias);
    free(rnn->rbh);
    free(rnn->peep);
    free(rnn->Rp);
    free(rnn);
}

static float *copy_floats(const float *src, size_t n)
{
    float *d = malloc((n ? n : 1) * sizeof *d);
    if (d && src)
        memcpy(d, src, n * sizeof *d);
    else if (d)
        memset(d, 0, n * sizeof *d);
    return d;
}

ferry_status cpu_rnn_create(const cpu_rnn_params *p, const ferry_tensor *W, const ferry_tensor *R,
                            const ferry_tensor *B, const ferry_tensor *P, cpu_rnn **out)
{
    ferry_status st;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "cpu_rnn_create: out is NULL");
    *out = NULL;
    if (!p || !W || !R)
        return ferry_fail(FERRY_EINVAL, "cpu_rnn_create: params, W and R are required");
    if (p->kind != CPU_RNN_LSTM && p->kind != CPU_RNN_GRU && p->kind != CPU_RNN_PLAIN)
        return ferry_fail(FERRY_EINVAL, "cpu_rnn_create: unknown kind %d", (int)p->kind);
    cpu_rnn *r = calloc(1, sizeof *r);
    if (!r)
        return ferry_fail(FERRY_ENOMEM, "cpu_rnn_create: out of memory");
    const char *op = p->kind == CPU_RNN_LSTM ? "LSTM" : p->kind == CPU_RNN_GRU ? "GRU" : "RNN";
    if (p->name && *p->name)
        snprintf(r->label, sizeof r->label, "%s '%s'", op, p->name);
    else
        snprintf(r->label, sizeof r->label, "%s", op);
    r->kind = p->kind;
    r->G = p->kind == CPU_RNN_LSTM ? 4 : p->kind == CPU_RNN_GRU ? 3 : 1;
    r->relu = p->kind == CPU_RNN_PLAIN && p->relu;
    r->H = p->hidden;
    r->I = p->input;
    r->GH = r->G * r->H;
    r->layout = p->layout;
    r->lbr = p->linear_before_reset;
    r->input_forget = p->input_forget;
    r->clip = p->has_clip ? p->clip : FLT_MAX;

    st = FERRY_EINVAL;
    if (p->direction < CPU_RNN_FORWARD || p->direction > CPU_RNN_BIDIRECTIONAL) {
        ferry_fail(st, "%s: attribute direction %d is not forward, reverse or bidirectional",
                   r->label, (int)p->direction);
        goto fail;
    }
    r->D = p->direction == CPU_RNN_BIDIRECTIONAL ? 2 : 1;
    r->reverse = p->direction == CPU_RNN_REVERSE;
    if (p->hidden < 1) {
        ferry_fail(st, "%s: attribute hidden_size is %lld, must be >= 1", r->label,
                   (long long)p->hidden);
        goto fail;
    }
    if (p->input < 1) {
        ferry_fail(st, "%s: input size (X's last dim) is %lld, must be >= 1", r->label,
                   (long long)p->input);
        goto fail;
    }
    /* The weights and the workspace index with int64 but BLAS takes int:
     * keep every matrix dimension well inside it. */
    if (p->hidden > (1 << 24) || p->input > (1 << 24)) {
        ferry_fail(st, "%s: hidden_size %lld or input size %lld is too large", r->label,
                   (long long)p->hidden, (long long)p->input);
        goto fail;
    }
    if (p->layout != 0 && p->layout != 1) {
        ferry_fail(st, "%s: attribute layout is %d, must be 0 or 1", r->label, p->layout);
        goto fail;
    }
    if (p->linear_before_reset != 0 && p->linear_before_reset != 1) {
        ferry_fail(st, "%s: attribute linear_before_reset is %d, must be 0 or 1", r->label,
                   p->linear_before_reset);
        goto fail;
    }
    if (p->linear_before_reset && p->kind != CPU_RNN_GRU) {
        ferry_fail(st, "%s: attribute linear_before_reset is GRU's", r->label);
        goto fail;
    }
    if (p->input_forget != 0 && p->input_forget != 1) {
        ferry_fail(st, "%s: attribute input_forget is %d, must be 0 or 1", r->label,
                   p->input_forget);
        goto fail;
    }
    if (p->input_forget && p->kind != CPU_RNN_LSTM) {
        ferry_fail(st, "%s: attribute input_forget is LSTM's", r->label);
        goto fail;
    }
    if (p->has_clip && !(p->clip > 0.0f)) {
        ferry_fail(st, "%s: attribute clip is %g, must be > 0", r->label, (double)p->clip);
        goto fail;
    }
    if ((st = check_activations(r, p)) != FERRY_OK)
        goto fail;

    int64_t D = r->D, H = r->H, GH = r->GH;
    int64_t wd[3] = {D, GH, r->I}, rd[3] = {D, GH, H}, bd[2] = {D, 2 * GH}, pd[2] = {D, 3 * H};
    if ((st = check_tensor(r, "W", W, 3, wd)) != FERRY_OK ||
        (st = check_tensor(r, "R", R, 3, rd)) != FERRY_OK ||
        (B && (st = check_tensor(r, "B", B, 2, bd)) != FERRY_OK))
        goto fail;
    /* (a GRU's B then holds only the new gate's Rb: the run adds no other bias) */
    if (p->x_projected &&
        (p->kind == CPU_RNN_PLAIN || (B && !(p->kind == CPU_RNN_GRU && p->linear_before_reset)))) {
        st = ferry_fail(FERRY_EINVAL,
                        "%s: a projected X is an LSTM's without B or a GRU's (linear_before_reset "
                        "with B: Rbh only)",
                        r->label);
        goto fail;
    }
    r->projected = p->x_projected;
    if (P && p->kind != CPU_RNN_LSTM) {
        st = ferry_fail(FERRY_EINVAL, "%s: input P (peepholes) is LSTM's", r->label);
        goto fail;
    }
    if (P && (st = check_tensor(r, "P", P, 2, pd)) != FERRY_OK)
        goto fail;

    st = FERRY_ENOMEM;
    r->Wt = malloc((size_t)(D * GH * r->I) * sizeof *r->Wt);
    r->R = copy_floats(R->data, (size_t)(D * GH * H));
    r->bias = copy_floats(NULL, (size_t)(D * GH));
    if (!r->Wt || !r->R || !r->bias)
        goto nomem;
    /* The projection reads W transposed: [I, D*G*H] as a plain B operand
     * ran 15% faster than W as a trans_b operand (X [2048,128] x [128,1024],
     * oneDNN, one thread). R stays as given, [G*H, H] per direction: its
     * gate blocks are then contiguous row blocks (GRU's z,r and h GEMMs),
     * and trans_b measured within 10% of a transposed copy, either way, for
     * the per-step shapes ([1 or 32, 256] x [256, 1024]). */
    const float *w = W->data;
    for (int64_t n = 0; n < D * GH; n++)
        for (int64_t k = 0; k < r->I; k++)
            r->Wt[k * D * GH + n] = w[n * r->I + k];
    if (p->kind == CPU_RNN_LSTM &&
        !(r->peep = copy_floats(P ? P->data : NULL, (size_t)(D * 3 * H))))
        goto nomem;
    if (p->kind == CPU_RNN_GRU && r->lbr && !(r->rbh = copy_floats(NULL, (size_t)(D * H))))
        goto nomem;
    if (B) {
        const float *b = B->data;
        for (int64_t d = 0; d < D; d++) {
            const float *wb = b + d * 2 * GH, *rb = wb + GH;
            float *o = r->bias + d * GH;
            for (int64_t k = 0; k < GH; k++) {
                /* GRU lbr=1: Rbh is inside r * (...), not a plain bias. */
                int inside = r->rbh && k >= 2 * H;
                o[k] = wb[k] + (inside ? 0.0f : rb[k]);
                if (inside)
                    r->rbh[d * H + (k - 2 * H)] = rb[k];
            }
        }
    }
    pick_gate_fns(r);
#ifdef RNN_HAVE_PACKED
    if (H % 16 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        r->Rp = aligned_alloc(64, (size_t)(D * GH * H) * sizeof *r->Rp);
        if (!r->Rp)
            goto nomem;
        for (int64_t d = 0; d < D; d++)
            for (int64_t n = 0; n < GH; n++)
                for (int64_t k = 0; k < H; k++)
                    r->Rp[((d * GH + n / 16 * 16) * H + k * 16) + n % 16] =
                        r->R[(d * GH + n) * H + k];
    }
#endif
    *out = r;
    return FERRY_OK;

nomem:
    ferry_fail(st, "%s: out of memory for the repacked weights", r->label);
fail:
    cpu_rnn_destroy(r);
    return st;
}

/* -------------------------------------------------------------- run */

static size_t round16(int64_t n)
{
    return (size_t)((n + 15) & ~(int64_t)15);
}

/* Per direction: h [batch,H], c [batch,H] (LSTM), g [batch,G*H] (the
 * recurrent GEMM's output; GRU lbr=0: [batch,2H] for z,r then [batch,H]
 * for (r.h)Rh^T), rh [batch,H] (GRU lbr=0). In floats. */
static size_t dir_floats(const cpu_rnn *r, int64_t batch)
{
    size_t n = 2 * round16(batch * r->H) + round16(batch * r->GH);
    if (r->kind == CPU_RNN_GRU && !r->lbr)
        n += round16(batch * r->H);
    return n;
}

size_t cpu_rnn_workspace_bytes(const cpu_rnn *rnn, int64_t max_batch, int64_t seq_len)
{
    if (!rnn || max_batch < 1 || seq_len < 1 || seq_len > INT32_MAX / max_batch)
        return 0;
    size_t xp = rnn->projected ? 0 : round16(seq_len * max_batch * rnn->D * rnn->GH);
    return (xp + (size_t)rnn->D * dir_floats(rnn, max_batch)) * sizeof(float);
}

typedef struct rnn_job {
    const cpu_rnn *r;
    int64_t seq, batch, steps;
    const int32_t *lens;
    const float *h0, *c0, *xp;
    float *Y, *Y_h, *Y_c;
    float *ws; /* the first direction's scratch */
    size_t ws_dir;
} rnn_job;

/* Where batch entry b's state of direction d sits in initial_h / Y_h. */
static int64_t state_off(const cpu_rnn *r, int64_t batch, int64_t d, int64_t b)
{
    return (r->layout == 0 ? d * batch + b : b * r->D + d) * r->H;
}

/* Where the row of (t, d, b) starts in Y. */
static int64_t y_off(const cpu_rnn *r, int64_t seq, int64_t batch, int64_t t, int64_t d, int64_t b)
{
    return (r->layout == 0 ? (t * r->D + d) * batch + b : (b * seq + t) * r->D + d) * r->H;
}

/* The time index batch entry b visits at step k of a direction, or -1
 * once k is past its length. Reverse starts at the entry's own last step. */
static int64_t step_time(const rnn_job *j, int reverse, int64_t b, int64_t k)
{
    int64_t len = j->lens ? j->lens[b] : j->seq;
    if (k >= len)
        return -1;
    return reverse ? len - 1 - k : k;
}

/* The projection's row for (t, b), direction d's gates: x's rows keep X's
 * layout. */
static const float *proj_row(const rnn_job *j, int64_t t, int64_t b, int64_t d)
{
    const cpu_rnn *r = j->r;
    int64_t row = r->layout == 0 ? t * j->batch + b : b * j->seq + t;
    return j->xp + (row * r->D + d) * r->GH;
}

/* g [batch, n] = h [batch, H] times rows [r0, r0 + n) of direction d's R,
 * transposed: packed (rec_gemm) from a batch of 2 up (one row is a GEMV,
 * which reads R once anyway), split over the backend's threads in panel
 * ranges when it has them free; else through cpu_gemm. */
typedef struct rec_job {
    const float *Rp, *h;
    int64_t p0, panels, per, batch, H, ldg;
    float *g;
} rec_job;

#ifdef RNN_HAVE_PACKED
static void rec_part(void *arg, int64_t i)
{
    const rec_job *j = arg;
    int64_t a = i * j->per, n = j->panels - a < j->per ? j->panels - a : j->per;
    rec_gemm(j->Rp, j->p0 + a, n, j->h, j->batch, j->H, j->g + a * 16, j->ldg);
}
#endif

static void rec_step(const cpu_rnn *r, int64_t d, int64_t r0, int64_t n, const float *h,
                     int64_t batch, float *g)
{
    int64_t H = r->H;
#ifdef RNN_HAVE_PACKED
    if (r->Rp && batch >= 2) {
        rec_job j = {r->Rp + d * r->GH * H, h, r0 / 16, n / 16, n / 16, batch, H, n, g};
        int T = cpu_parallel_available();
        if (T > 1 && 2.0 * (double)(batch * n * H) >= 2e5) {
            int64_t parts = 4 * (int64_t)T < j.panels ? 4 * (int64_t)T : j.panels;
            j.per = (j.panels + parts - 1) / parts;
            cpu_parallel_for(rec_part, &j, (j.panels + j.per - 1) / j.per, T);
        } else {
            rec_gemm(j.Rp, j.p0, j.panels, h, batch, H, g, n);
        }
        return;
    }
#endif
    cpu_gemm(0, 1, batch, n, H, 1.0f, h, r->R + (d * r->GH + r0) * H, 0.0f, NULL, CPU_BIAS_NONE,
             ACT_NONE, 0.0f, g);
}

/* One direction over every step: the state lives in the workspace, one
 * GEMM with R a step, the gate pass per batch row, the row copied to Y. */
static void run_direction(void *arg, int64_t d)
{
    const rnn_job *j = arg;
    const cpu_rnn *r = j->r;
    int64_t H = r->H, GH = r->GH, batch = j->batch;
    int reverse = d == 1 || r->reverse;
    float *h = j->ws + (size_t)d * j->ws_dir;
    float *c = h + round16(batch * H);
    float *g = c + round16(batch * H);
    float *rh = g + round16(batch * GH);
    int lstm = r->kind == CPU_RNN_LSTM, gru0 = r->kind == CPU_RNN_GRU && !r->lbr;

    for (int64_t b = 0; b < batch; b++) {
        int64_t o = state_off(r, batch, d, b);
        if (j->h0)
            memcpy(h + b * H, j->h0 + o, (size_t)H * sizeof *h);
        else
            memset(h + b * H, 0, (size_t)H * sizeof *h);
        if (lstm && j->c0)
            memcpy(c + b * H, j->c0 + o, (size_t)H * sizeof *c);
        else if (lstm)
            memset(c + b * H, 0, (size_t)H * sizeof *c);
    }
    /* GRU lbr=0's h GEMM reads every row of rh, also those of entries
     * past their length, which the z,r pass no longer writes. */
    if (gru0)
        memset(rh, 0, (size_t)(batch * H) * sizeof *rh);
    /* The recurrent GEMM's gates: all, or z and r only (GRU lbr=0). */
    int64_t n_rec = gru0 ? 2 * H : GH;

    for (int64_t k = 0; k < j->steps; k++) {
        rec_step(r, d, 0, n_rec, h, batch, g);
        float *hh = g + batch * 2 * H; /* GRU lbr=0: (r.h) Rh^T */
        if (gru0) {
            for (int64_t b = 0; b < batch; b++) {
                int64_t t = step_time(j, reverse, b, k);
                if (t >= 0)
                    r->gru_zr(H, proj_row(j, t, b, d), g + b * 2 * H, h + b * H, rh + b * H,
                              r->clip);
            }
            rec_step(r, d, 2 * H, H, rh, batch, hh);
        }
        for (int64_t b = 0; b < batch; b++) {
            int64_t t = step_time(j, reverse, b, k);
            if (t < 0)
                continue;
            const float *xg = proj_row(j, t, b, d);
            float *hb = h + b * H;
            if (r->kind == CPU_RNN_PLAIN)
                r->rnn_row(H, xg, g + b * GH, hb, r->clip, r->relu);
            else if (lstm)
                r->lstm_row(H, xg, g + b * GH, r->peep + d * 3 * H, hb, c + b * H, r->clip,
                            r->input_forget);
            else if (!gru0)
                r->gru_row(H, xg, g + b * GH, r->rbh + d * H, hb, r->clip);
            else
                r->gru_n(H, xg, g + b * 2 * H, hh + b * H, hb, r->clip);
            if (j->Y) {
                memcpy(j->Y + y_off(r, j->seq, batch, t, d, b), hb, (size_t)H * sizeof *hb);
            }
        }
    }
    for (int64_t b = 0; b < batch; b++) {
        int64_t o = state_off(r, batch, d, b);
        if (j->Y_h)
            memcpy(j->Y_h + o, h + b * H, (size_t)H * sizeof *h);
        if (lstm && j->Y_c)
            memcpy(j->Y_c + o, c + b * H, (size_t)H * sizeof *c);
    }
}

ferry_status cpu_rnn_run(const cpu_rnn *rnn, int64_t seq_len, int64_t batch, const float *x,
                         const int32_t *sequence_lens, const float *initial_h,
                         const float *initial_c, float *Y, float *Y_h, float *Y_c, void *workspace)
{
    if (!rnn || !x || !workspace)
        return ferry_fail(FERRY_EINVAL, "cpu_rnn_run: %s is NULL",
                          !rnn ? "the layer"
                          : !x ? "X"
                               : "the workspace");
    const cpu_rnn *r = rnn;
    if (seq_len < 1 || batch < 1)
        return ferry_fail(FERRY_EINVAL, "%s: seq_length %lld and batch_size %lld must be >= 1",
                          r->label, (long long)seq_len, (long long)batch);
    /* BLAS takes int dimensions: the projection has seq_len * batch rows. */
    if (seq_len > INT32_MAX / batch)
        return ferry_fail(FERRY_EINVAL, "%s: seq_length %lld x batch_size %lld is too large",
                          r->label, (long long)seq_len, (long long)batch);
    if ((uintptr_t)workspace % sizeof(float) != 0)
        return ferry_fail(FERRY_EINVAL, "%s: the workspace is not float-aligned", r->label);
    int64_t steps = seq_len;
    if (sequence_lens) {
        steps = 0;
        for (int64_t b = 0; b < batch; b++) {
            if (sequence_lens[b] < 0 || sequence_lens[b] > seq_len)
                return ferry_fail(
                    FERRY_EINVAL, "%s: input sequence_lens[%lld] is %d, outside [0, %lld]",
                    r->label, (long long)b, (int)sequence_lens[b], (long long)seq_len);
            steps = sequence_lens[b] > steps ? sequence_lens[b] : steps;
        }
    }
    int64_t H = r->H, D = r->D, GH = r->GH;
    /* the projection of every step, biases included: X itself when the
     * graph computed it at load (an embedding's rows, fuse_rnn.c) */
    const float *xp = x;
    float *ws = workspace;
    if (!r->projected) {
        cpu_gemm(0, 0, seq_len * batch, D * GH, r->I, 1.0f, x, r->Wt, 1.0f, r->bias, CPU_BIAS_ROW,
                 ACT_NONE, 0.0f, ws);
        xp = ws;
        ws += round16(seq_len * batch * D * GH);
    }

    /* Steps past an entry's length are never visited: their Y is 0. */
    if (Y && sequence_lens) {
        for (int64_t b = 0; b < batch; b++)
            for (int64_t t = sequence_lens[b]; t < seq_len; t++)
                for (int64_t d = 0; d < D; d++) {
                    memset(Y + y_off(r, seq_len, batch, t, d, b), 0, (size_t)H * sizeof *Y);
                }
    }

    rnn_job j = {
        .r = r,
        .seq = seq_len,
        .batch = batch,
        .steps = steps,
        .lens = sequence_lens,
        .h0 = initial_h,
        .c0 = initial_c,
        .xp = xp,
        .Y = Y,
        .Y_h = Y_h,
        .Y_c = Y_c,
        .ws = ws,
        .ws_dir = dir_floats(r, batch),
    };
    /* The directions share nothing but the projection: one each on two
     * threads when the backend has a second one free (their GEMMs then
     * run inline: the pool is taken). */
    if (D == 2)
        cpu_parallel_for(run_direction, &j, 2, cpu_parallel_available());
    else
        run_direction(&j, 0);
    return FERRY_OK;
}
