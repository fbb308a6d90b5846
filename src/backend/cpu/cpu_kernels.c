/*
 * cpu_kernels.c - the CPU backend's kernels. GEMMs go to oneDNN or OpenBLAS
 * (per shape, see cpu_gemm_block), one BLAS call a chunk, chunks spread over the
 * backend's threads (cpu_parallel.h), each chunk's bias and activation
 * applied while its block of Y is in cache. The rest are plain loops over
 * contiguous memory, written so that the compiler can vectorize the inner
 * loop (no calls, no aliasing surprises, unit strides); the activations
 * use call-free exp/erfc approximations for that reason. Reductions
 * accumulate in double so that f32 results track a float64 reference to
 * ~1e-7 relative.
 */
#include "backend/cpu/cpu_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_parallel.h"

#ifdef FERRY_HAVE_DNNL
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

#include "util/half.h"

/* ------------------------------------------------------------ activations */

/* Without no-trapping-math GCC will not turn the clamps and selects of
 * vexpf/act_gelu into blends (an arm might raise an FP exception, which
 * nothing here observes) and the activation loops stay scalar. With
 * -std=c11 GCC also keeps a * b + c as two roundings (fp-contract=off);
 * fp-contract=fast lets the AVX2+FMA variants fuse them (the baseline ones
 * have no FMA and are unchanged): the erf GELU 0.98 -> 0.69 ns an element,
 * attention's exp rows 1.31 -> 1.00 ns a score on this Zen 3 VM, each a
 * little more exact. Every function up to the pop below shares the options,
 * so that the helpers inline. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

static inline float act_relu(float v)
{
    return v < 0.0f ? 0.0f : v;
} /* NaN stays NaN, as in PyTorch */
static inline float act_leaky(float v, float a)
{
    return v >= 0.0f ? v : a * v;
}
static inline float act_gelu_tanh(float v)
{
    return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}

#include "backend/cpu/cpu_vexp.h" /* after the pragma: see there */

/* Exact (erf) GELU, 0.5 x (1 + erf(x / sqrt2)), with erf as the rational
 * function of Eigen and XLA (odd degree 13 over even degree 8, the argument
 * clamped to [-4, 4], where erf is +-1 in float). Against float64: absolute
 * error at most 1e-6 where |y| < 1 (largest near x = -4.7, where y is
 * -6e-6), relative 3.5e-5 where |y| > 0.01; PyTorch's own float GELU
 * (Abramowitz-Stegun erf, 1.5e-7 absolute) cancels the same way in
 * 1 + erf for negative x. The erfc form it replaces (Numerical Recipes'
 * erfcc: a degree-9 polynomial, then an exp; relative error 1.2e-7 even
 * where Phi(x) is tiny) took 2.7 ns an element on this Zen 3 VM, a tenth
 * of BERT's and ViT's time at batch 32, against 1.0 ns for this one (0.69
 * with the FMAs of the pragma above): no exp, and two short chains
 * (numerator, denominator) the core overlaps instead of some twenty
 * dependent steps. */
static inline float act_gelu(float v)
{
    float x = v * 0.70710678118654752f;
    x = x > 4.0f ? 4.0f : x;
    x = x < -4.0f ? -4.0f : x;
    float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    p = p * x2 + -2.10102402082508e-06f;
    q = q * x2 + -1.68282697438203e-03f;
    p = p * x2 + -5.69250639462346e-05f;
    q = q * x2 + -7.37332916720468e-03f;
    p = p * x2 + -7.34990630326855e-04f;
    q = q * x2 + -1.42647390514189e-02f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float h = 0.5f * v;
    return h + h * (x * p / q);
}

static inline float act_sigmoid(float v)
{
    return 1.0f / (1.0f + vexpf(-v));
}

/* One pass over a row: y = act(y + beta*b[j]) (b != NULL) or act(y + bs). */
#define EPI_LOOP(F)                                                                                \
    do {                                                                                           \
        if (b) {                                                                                   \
            for (int64_t j = 0; j < n; j++) {                                                      \
                float v = y[j] + beta * b[j];                                                      \
                y[j] = (F);                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t j = 0; j < n; j++) {                                                      \
                float v = y[j] + bs;                                                               \
                y[j] = (F);                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The activation loops are built twice, for AVX2+FMA and for the baseline,
 * and picked per call: the library is compiled for baseline x86-64, where
 * they would run four lanes wide instead of eight. A plain branch rather
 * than target_clones: an ifunc resolver runs before the sanitizers'
 * runtimes are up, and crashes under them. The AVX2 variant inlines the
 * same body (a callee may inline into a caller with more ISA). */
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_AVX2 __attribute__((target("avx2,fma")))
static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define CPU_DISPATCH(name, params, args)                                                           \
    CPU_AVX2 static void name##_avx2 params                                                        \
    {                                                                                              \
        name##_body args;                                                                          \
    }                                                                                              \
    static void name##_base params                                                                 \
    {                                                                                              \
        name##_body args;                                                                          \
    }                                                                                              \
    static void name params                                                                        \
    {                                                                                              \
        if (have_avx2())                                                                           \
            name##_avx2 args;                                                                      \
        else                                                                                       \
            name##_base args;                                                                      \
    }
#else
#define CPU_DISPATCH(name, params, args)                                                           \
    static void name params                                                                        \
    {                                                                                              \
        name##_body args;                                                                          \
    }
#endif

static inline __attribute__((always_inline)) void epilogue_row_body(float *restrict y, int64_t n,
                                                                    const float *restrict b,
                                                                    float bs, float beta,
                                                                    act_kind act, float aa)
{
    switch (act) {
    case ACT_NONE: EPI_LOOP(v); break;
    case ACT_RELU: EPI_LOOP(act_relu(v)); break;
    case ACT_LEAKY_RELU: EPI_LOOP(act_leaky(v, aa)); break;
    case ACT_SIGMOID: EPI_LOOP(act_sigmoid(v)); break;
    case ACT_TANH: EPI_LOOP(tanhf(v)); break;
    case ACT_GELU: EPI_LOOP(act_gelu(v)); break;
    case ACT_GELU_TANH: EPI_LOOP(act_gelu_tanh(v)); break;
    default: EPI_LOOP(v); break; /* Conv-only epilogues: cpu_ops.c refuses them on Gemm */
    }
}

CPU_DISPATCH(epilogue_row,
             (float *restrict y, int64_t n, const float *restrict b, float bs, float beta,
              act_kind act, float aa),
             (y, n, b, bs, beta, act, aa))

/* ----------------------------------------------------------------- unary */

#define UN_LOOP(F)                                                                                 \
    do {                                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float v = X[i];                                                                        \
            Y[i] = (F);                                                                            \
        }                                                                                          \
    } while (0)

static inline __attribute__((always_inline)) void
unary_loop_body(op_kind op, const float *X, float *Y, int64_t n, float alpha, int approximate)
{
    switch (op) {
    case OP_RELU: UN_LOOP(act_relu(v)); break;
    case OP_LEAKY_RELU: UN_LOOP(act_leaky(v, alpha)); break;
    case OP_SIGMOID: UN_LOOP(act_sigmoid(v)); break;
    case OP_TANH: UN_LOOP(tanhf(v)); break;
    case OP_GELU:
        if (approximate)
            UN_LOOP(act_gelu_tanh(v));
        else
            UN_LOOP(act_gelu(v));
        break;
    case OP_ERF: UN_LOOP(erff(v)); break;
    case OP_SQRT: UN_LOOP(sqrtf(v)); break;
    default: break;
    }
}

CPU_DISPATCH(unary_loop,
             (op_kind op, const float *X, float *Y, int64_t n, float alpha, int approximate),
             (op, X, Y, n, alpha, approximate))

void cpu_unary(op_kind op, const float *X, float *Y, int64_t n, float alpha, int approximate)
{
    unary_loop(op, X, Y, n, alpha, approximate);
}

/* --------------------------------------------------------------- softmax */

/* Rows are split over the backend's threads above this many elements: a
 * hand-off costs a few microseconds (BERT's 4 x 128 x 128 scores at batch
 * 1 are 64k). */
#define ROWS_PAR_MIN 16384

/* exp(x - max x) over one contiguous row, into y when store (y may be x),
 * and its sum; the max into *max_out. Eight independent lanes for the max
 * and the sum, so that the loops vectorize without reassociation (no
 * -ffast-math), and vexpf rather than libm's expf: 436 -> ~40 us for
 * BERT's scores. Lanes sum at most L/8 terms in float; the lanes meet in
 * double. */
static inline __attribute__((always_inline)) double exp_sum_row(const float *x, float *y, int64_t L,
                                                                int store, float *max_out)
{
    float m8[8];
    for (int l = 0; l < 8; l++)
        m8[l] = x[0];
    int64_t j = 0;
    for (; j + 8 <= L; j += 8)
        for (int l = 0; l < 8; l++)
            m8[l] = x[j + l] > m8[l] ? x[j + l] : m8[l];
    float mx = m8[0];
    for (int l = 1; l < 8; l++)
        mx = m8[l] > mx ? m8[l] : mx;
    for (; j < L; j++)
        mx = x[j] > mx ? x[j] : mx;
    float s8[8] = {0};
    j = 0;
    if (store) {
        for (; j + 8 <= L; j += 8)
            for (int l = 0; l < 8; l++) {
                float e = vexpf(x[j + l] - mx);
                y[j + l] = e;
                s8[l] += e;
            }
    } else {
        for (; j + 8 <= L; j += 8)
            for (int l = 0; l < 8; l++)
                s8[l] += vexpf(x[j + l] - mx);
    }
    double sum = 0.0;
    for (int l = 0; l < 8; l++)
        sum += s8[l];
    for (; j < L; j++) {
        float e = vexpf(x[j] - mx);
        if (store)
            y[j] = e;
        sum += e;
    }
    *max_out = mx;
    return sum;
}

static inline __attribute__((always_inline)) void softmax_row_body(const float *x, float *y,
                                                                   int64_t L, int is_log)
{
    float mx;
    double sum = exp_sum_row(x, y, L, !is_log, &mx);
    if (is_log) {
        float sub = mx + (float)log(sum);
        for (int64_t j = 0; j < L; j++)
            y[j] = x[j] - sub;
    } else {
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < L; j++)
            y[j] *= inv;
    }
}

/* x may be y (each y[j] is computed from x[j] alone): no restrict. */
CPU_DISPATCH(softmax_row, (const float *x, float *y, int64_t L, int is_log), (x, y, L, is_log))

/* y = x * scale + m (m NULL: none), the fused attention scores' prepass. */
static inline __attribute__((always_inline)) void scale_mask_row_body(const float *restrict x,
                                                                      const float *restrict m,
                                                                      float *restrict y, int64_t L,
                                                                      float scale)
{
    if (m)
        for (int64_t j = 0; j < L; j++)
            y[j] = x[j] * scale + m[j];
    else
        for (int64_t j = 0; j < L; j++)
            y[j] = x[j] * scale;
}

CPU_DISPATCH(scale_mask_row,
             (const float *restrict x, const float *restrict m, float *restrict y, int64_t L,
              float scale),
             (x, m, y, L, scale))

typedef struct softmax_job {
    const float *X;
    float *Y;
    int64_t outer, L, inner, per; /* per: rows (outer * inner items) a chunk */
    int is_log;
    const cpu_softmax_fused *f; /* scale and mask (inner 1 only), or NULL */
} softmax_job;

/* The mask row of score row o: o's leading indices dotted with the mask's
 * strides (0 where the mask is broadcast). */
static const float *mask_row(const cpu_softmax_fused *f, int64_t o)
{
    int64_t off = 0;
    for (int d = f->nd - 1; d >= 0; d--) {
        off += (o % f->dims[d]) * f->mstride[d];
        o /= f->dims[d];
    }
    return f->mask + off;
}

static void softmax_chunk(void *arg, int64_t c)
{
    const softmax_job *j = arg;
    int64_t L = j->L, inner = j->inner, n = j->outer * inner;
    int64_t i0 = c * j->per, i1 = i0 + j->per < n ? i0 + j->per : n;
    if (j->f) {
        for (int64_t o = i0; o < i1; o++) {
            float *y = j->Y + o * L;
            scale_mask_row(j->X + o * L, j->f->mask ? mask_row(j->f, o) : NULL, y, L, j->f->scale);
            softmax_row(y, y, L, j->is_log);
        }
        return;
    }
    if (inner == 1) {
        for (int64_t o = i0; o < i1; o++)
            softmax_row(j->X + o * L, j->Y + o * L, L, j->is_log);
        return;
    }
    /* The axis strided by inner (softmax over a middle axis): rare, scalar. */
    for (int64_t i = i0; i < i1; i++) {
        int64_t o = i / inner, k = i % inner;
        const float *x = j->X + o * L * inner + k;
        float *y = j->Y + o * L * inner + k;
        float mx = x[0];
        for (int64_t t = 1; t < L; t++)
            mx = x[t * inner] > mx ? x[t * inner] : mx;
        double sum = 0.0;
        for (int64_t t = 0; t < L; t++)
            sum += vexpf(x[t * inner] - mx);
        if (j->is_log) {
            float sub = mx + (float)log(sum);
            for (int64_t t = 0; t < L; t++)
                y[t * inner] = x[t * inner] - sub;
        } else {
            float inv = (float)(1.0 / sum);
            for (int64_t t = 0; t < L; t++)
                y[t * inner] = vexpf(x[t * inner] - mx) * inv;
        }
    }
}

/* Rows of rows_total items, each costing `cost` elements: how many a chunk
 * takes so that each thread gets about four, or all of them below
 * ROWS_PAR_MIN. */
static int64_t rows_per_chunk(int64_t rows_total, int64_t cost, int T)
{
    if (T <= 1 || rows_total * cost < ROWS_PAR_MIN)
        return rows_total > 0 ? rows_total : 1;
    int64_t chunks = 4 * (int64_t)T;
    int64_t per = (rows_total + chunks - 1) / chunks;
    return per > 0 ? per : 1;
}

/* The fused attention's softmax without its division: y += m (m NULL:
 * none), then exp(y - max y) in place, and 1 / sum into *inv. Three passes
 * over the row (two without a mask) where add, max, exp and scale took
 * four; the caller divides P V's rows instead (d columns, not Tk). */
static inline __attribute__((always_inline)) void
exp_row_body(float *restrict y, const float *restrict m, int64_t L, float *inv)
{
    if (m)
        for (int64_t j = 0; j < L; j++)
            y[j] += m[j];
    float mx;
    *inv = (float)(1.0 / exp_sum_row(y, y, L, 1, &mx));
}

CPU_DISPATCH(exp_row, (float *restrict y, const float *restrict m, int64_t L, float *inv),
             (y, m, L, inv))

void cpu_softmax_rows_exp(float *S, int64_t rows, int64_t L, const float *mask, int64_t mstride,
                          float *inv)
{
    for (int64_t r = 0; r < rows; r++)
        exp_row(S + r * L, mask ? mask + r * mstride : NULL, L, inv + r);
}

static inline __attribute__((always_inline)) void scale_row_body(float *restrict y, int64_t n,
                                                                 float s)
{
    for (int64_t j = 0; j < n; j++)
        y[j] *= s;
}

CPU_DISPATCH(scale_row, (float *restrict y, int64_t n, float s), (y, n, s))

void cpu_scale_rows(float *Y, int64_t rows, int64_t cols, int64_t ld, const float *s)
{
    for (int64_t r = 0; r < rows; r++)
        scale_row(Y + r * ld, cols, s[r]);
}

void cpu_softmax(const float *X, float *Y, int64_t outer, int64_t L, int64_t inner, int is_log)
{
    cpu_softmax_ex(X, Y, outer, L, inner, is_log, NULL);
}

void cpu_softmax_ex(const float *X, float *Y, int64_t outer, int64_t L, int64_t inner, int is_log,
                    const cpu_softmax_fused *f)
{
    if (L <= 0 || outer <= 0 || inner <= 0)
        return;
    int T = cpu_parallel_available();
    softmax_job j = {X, Y, outer, L, f ? 1 : inner, 0, is_log, f};
    int64_t n = outer * inner;
    j.per = rows_per_chunk(n, L, T);
    int64_t chunks = (n + j.per - 1) / j.per;
    if (chunks <= 1)
        softmax_chunk(&j, 0);
    else
        cpu_parallel_for(softmax_chunk, &j, chunks, T);
}

/* ------------------------------------------------------------ layer norm */

/* One row's mean and 1/sqrt(var + eps), two passes (the mean, then the
 * centred squares, which do not cancel the way E[x^2] - E[x]^2 does), each
 * in eight float lanes that meet in double: vectorized without
 * reassociation. */
static inline __attribute__((always_inline)) void row_stats(const float *restrict x, int64_t cols,
                                                            float eps, float *mean, float *rstd)
{
    float a8[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
        for (int l = 0; l < 8; l++)
            a8[l] += x[j + l];
    double s = 0.0;
    for (int l = 0; l < 8; l++)
        s += a8[l];
    for (; j < cols; j++)
        s += x[j];
    float m = cols ? (float)(s / (double)cols) : 0.0f;
    float v8[8] = {0};
    for (j = 0; j + 8 <= cols; j += 8)
        for (int l = 0; l < 8; l++) {
            float d = x[j + l] - m;
            v8[l] += d * d;
        }
    double v = 0.0;
    for (int l = 0; l < 8; l++)
        v += v8[l];
    for (; j < cols; j++) {
        double d = x[j] - m;
        v += d * d;
    }
    double var = cols ? v / (double)cols : 0.0;
    *mean = m;
    *rstd = (float)(1.0 / sqrt(var + eps));
}

static inline __attribute__((always_inline)) void
layer_norm_row_body(const float *restrict x, const float *restrict scale,
                    const float *restrict bias, float *restrict y, int64_t cols, float eps,
                    float *mean_out, float *rstd_out)
{
    float m, rstd;
    row_stats(x, cols, eps, &m, &rstd);
    int64_t j;
    if (bias)
        for (j = 0; j < cols; j++)
            y[j] = (x[j] - m) * rstd * scale[j] + bias[j];
    else
        for (j = 0; j < cols; j++)
            y[j] = (x[j] - m) * rstd * scale[j];
    if (mean_out)
        *mean_out = m;
    if (rstd_out)
        *rstd_out = rstd;
}

CPU_DISPATCH(layer_norm_row,
             (const float *restrict x, const float *restrict scale, const float *restrict bias,
              float *restrict y, int64_t cols, float eps, float *mean_out, float *rstd_out),
             (x, scale, bias, y, cols, eps, mean_out, rstd_out))

typedef struct ln_job {
    const float *X, *scale, *bias;
    float *Y, *mean, *rstd;
    int64_t rows, cols, per;
    float eps;
} ln_job;

static void ln_chunk(void *arg, int64_t c)
{
    const ln_job *j = arg;
    int64_t r0 = c * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    for (int64_t r = r0; r < r1; r++)
        layer_norm_row(j->X + r * j->cols, j->scale, j->bias, j->Y + r * j->cols, j->cols, j->eps,
                       j->mean ? j->mean + r : NULL, j->rstd ? j->rstd + r : NULL);
}

void cpu_layer_norm(const float *X, const float *scale, const float *bias, float *Y,
                    float *mean_out, float *rstd_out, int64_t rows, int64_t cols, float eps)
{
    if (rows <= 0)
        return;
    int T = cpu_parallel_available();
    ln_job j = {X, scale, bias, Y, mean_out, rstd_out, rows, cols, 0, eps};
    j.per = rows_per_chunk(rows, cols, T);
    int64_t chunks = (rows + j.per - 1) / j.per;
    if (chunks <= 1)
        ln_chunk(&j, 0);
    else
        cpu_parallel_for(ln_chunk, &j, chunks, T);
}

typedef struct in_job {
    const float *X, *scale, *bias;
    float *Y;
    int64_t rows, cols, channels, per;
    float eps;
} in_job;

static void in_chunk(void *arg, int64_t c)
{
    const in_job *j = arg;
    int64_t r0 = c * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->X + r * j->cols;
        float *y = j->Y + r * j->cols, m, rstd;
        row_stats(x, j->cols, j->eps, &m, &rstd);
        float a = rstd * j->scale[r % j->channels], b = j->bias[r % j->channels];
        for (int64_t k = 0; k < j->cols; k++)
            y[k] = (x[k] - m) * a + b;
    }
}

void cpu_instance_norm(const float *X, const float *scale, const float *bias, float *Y,
                       int64_t rows, int64_t cols, int64_t channels, float eps)
{
    if (rows <= 0 || channels <= 0)
        return;
    int T = cpu_parallel_available();
    in_job j = {X, scale, bias, Y, rows, cols, channels, 0, eps};
    j.per = rows_per_chunk(rows, cols, T);
    int64_t chunks = (rows + j.per - 1) / j.per;
    if (chunks <= 1)
        in_chunk(&j, 0);
    else
        cpu_parallel_for(in_chunk, &j, chunks, T);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ------------------------------------------------------------------ gemm */

/* One BLAS call on the calling thread (the backend keeps OpenBLAS at one
 * thread and splits work itself, see cpu_gemm). */
void cpu_gemm_block(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float *Y, int64_t ldy)
{
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            memset(Y + i * ldy, 0, (size_t)N * sizeof *Y);
        return;
    }
    if (M == 1) {
        /* One row: GEMV streams B once; OpenBLAS 0.3.21's sgemm does not
         * forward M == 1 to it and pays its packing cost. op(A)'s row is
         * strided by lda when A is stored transposed (a one-row block of
         * a larger trans_a Gemm; lda is 1 when the whole Gemm has M 1). */
        int incx = trans_a ? (int)lda : 1;
        if (trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A, incx,
                        0.0f, Y, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A, incx,
                        0.0f, Y, 1);
        return;
    }
#ifdef FERRY_HAVE_DNNL
    /* oneDNN's sgemm is 7-25% faster than OpenBLAS's on one thread for
     * weights up to 1024x1024 (mlp-s's layers, row blocks of 32..4096) and
     * 6-10% slower on larger ones (mlp-l's 4096-wide layers), and the same
     * for GEMV: measured per shape, one thread, on a 2-core AMD EPYC
     * (Zen 3, AVX2), oneDNN 2.6.3 against OpenBLAS 0.3.21.
     * Debian's oneDNN threads with OpenMP: it must run on this thread only
     * (the backend splits work itself), and the caller's OpenMP setting is
     * put back. */
    if (K <= 1024 && N * K <= 1024 * 1024) {
        int saved = omp_get_max_threads();
        if (saved != 1)
            omp_set_num_threads(1);
        dnnl_status_t ds = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A,
                                      lda, B, ldb, 0.0f, Y, ldy);
        if (saved != 1)
            omp_set_num_threads(saved);
        if (ds == dnnl_success)
            return;
    }
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
                (int)ldb, 0.0f, Y, (int)ldy);
}

typedef struct gemm_args {
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta, act_alpha;
    const float *A, *B, *C;
    cpu_bias_kind bias;
    act_kind act;
    const float *R; /* residual added last ([M, N], or NULL) */
    float *Y;
    int64_t rstep, cstep; /* a chunk's rows and columns */
    int64_t ncb;          /* column blocks: chunk c is row block c / ncb, column block c % ncb */
} gemm_args;

/* Bias and activation over row i, columns [j0,j1) of Y. */
static void epilogue_block_row(const gemm_args *g, cpu_bias_kind bias, int64_t i, int64_t j0,
                               int64_t j1)
{
    const float *C = g->C;
    const float *b = NULL;
    float bs = 0.0f;
    switch (bias) {
    case CPU_BIAS_NONE: break;
    case CPU_BIAS_SCALAR: bs = g->beta * C[0]; break;
    case CPU_BIAS_COL: bs = g->beta * C[i]; break;
    case CPU_BIAS_ROW: b = C + j0; break;
    case CPU_BIAS_FULL: b = C + i * g->N + j0; break;
    }
    epilogue_row(g->Y + i * g->N + j0, j1 - j0, b, bs, g->beta, g->act, g->act_alpha);
}

/* Bias and activation, then the residual, over rows [i0,i1) x columns
 * [j0,j1) of Y. */
static void epilogue_block(const gemm_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    cpu_bias_kind bias = g->bias;
    if (g->beta == 0.0f || !g->C)
        bias = CPU_BIAS_NONE;
    if (g->R)
        for (int64_t i = i0; i < i1; i++) {
            float *restrict y = g->Y + i * g->N;
            const float *restrict r = g->R + i * g->N;
            if (bias != CPU_BIAS_NONE || g->act != ACT_NONE)
                epilogue_block_row(g, bias, i, j0, j1);
            for (int64_t j = j0; j < j1; j++)
                y[j] += r[j];
        }
    if (g->R || (bias == CPU_BIAS_NONE && g->act == ACT_NONE))
        return;
    for (int64_t i = i0; i < i1; i++)
        epilogue_block_row(g, bias, i, j0, j1);
}

/* One chunk: its block of Y, then that block's epilogue while it is still
 * in cache. */
static void gemm_chunk(void *arg, int64_t c)
{
    const gemm_args *g = arg;
    int64_t M = g->M, N = g->N, K = g->K;
    int64_t lda = g->trans_a ? M : K, ldb = g->trans_b ? K : N;
    int64_t i0 = c / g->ncb * g->rstep, i1 = i0 + g->rstep < M ? i0 + g->rstep : M;
    int64_t j0 = c % g->ncb * g->cstep, j1 = j0 + g->cstep < N ? j0 + g->cstep : N;
    const float *A = g->trans_a ? g->A + i0 : g->A + i0 * K;
    const float *B = g->trans_b ? g->B + j0 * K : g->B + j0;
    cpu_gemm_block(g->trans_a, g->trans_b, i1 - i0, j1 - j0, K, g->alpha, A, lda, B, ldb,
                   g->Y + i0 * N + j0, N);
    epilogue_block(g, i0, i1, j0, j1);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Below this many flops a Gemm runs on the calling thread: handing chunks
 * to a helper costs a few microseconds. */
#define GEMM_PAR_MIN_FLOPS 2.0e5

void cpu_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, const float *B, float beta, const float *C, cpu_bias_kind bias,
              act_kind act, float act_alpha, float *Y)
{
    cpu_gemm_res(trans_a, trans_b, M, N, K, alpha, A, B, beta, C, bias, act, act_alpha, NULL, Y);
}

void cpu_gemm_res(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, const float *B, float beta, const float *C, cpu_bias_kind bias,
                  act_kind act, float act_alpha, const float *R, float *Y)
{
    if (M <= 0 || N <= 0)
        return;
    gemm_args g = {trans_a, trans_b, M,    N,   K, alpha, beta, act_alpha, A,
                   B,       C,       bias, act, R, Y,     M,    N,         1};
    /* Small chunks only when helpers can take them: run alone, each chunk
     * is one more BLAS call with its fixed cost (mlp-s at batch 256 split
     * over 16 engine workers: 378k samples/s with one call per Gemm, 255k
     * with eight). Alone, large Gemms still go in blocks of 512 rows, so
     * that each block's epilogue finds it in cache or at least in L3: 256
     * made oneDNN's sgemm 5-16% slower on the transformers' K 192-256
     * layers (one thread, 2048-3152 rows, this 2-core Zen 3 VM: BERT's FFN
     * in + GELU 16.4 -> 14.7 ms, ViT's 15.8 -> 13.3) and no faster on
     * their K 768-1024 ones. */
    int T = cpu_parallel_available();
    double flops = 2.0 * (double)M * (double)N * (double)K;
    if (T <= 1 && M >= 1024) {
        g.rstep = 512;
    } else if (T > 1 && flops >= GEMM_PAR_MIN_FLOPS) {
        /* About four chunks a thread, so that a thread slowed by another
         * process hands its share to the others, in blocks of rows and
         * columns never so small that the BLAS call loses its efficiency
         * (64 rows, 64 columns). Each BLAS call packs the operands of its
         * block, so split first the side that keeps what is re-packed
         * small: rows when op(A) has at least as many rows as op(B) has
         * columns (mlp-s at batch 4096), columns otherwise (GEMV, mlp-l
         * below batch 4096); then the other side too when one alone gives
         * too few chunks (mlp-s at batch 256 on 16 cores: 4 x 8 blocks, not 4
         * column blocks). */
        int64_t want = 4 * (int64_t)T;
        int64_t rb_max = M >= 128 ? M / 64 : 1, cb_max = N >= 128 ? N / 64 : 1;
        int64_t rb, cb;
        if (M >= N) {
            rb = rb_max < want ? rb_max : want;
            cb = ceil_div(want, rb);
            cb = cb < cb_max ? cb : cb_max;
        } else {
            cb = cb_max < want ? cb_max : want;
            rb = ceil_div(want, cb);
            rb = rb < rb_max ? rb : rb_max;
        }
        g.rstep = (ceil_div(M, rb) + 15) & ~(int64_t)15;
        g.cstep = (ceil_div(N, cb) + 15) & ~(int64_t)15;
        g.ncb = ceil_div(N, g.cstep);
    }
    int64_t chunks = ceil_div(M, g.rstep) * g.ncb;
    if (chunks <= 1) {
        gemm_chunk(&g, 0);
        return;
    }
    cpu_parallel_for(gemm_chunk, &g, chunks, T);
}

/* ----------------------------------------------------------------- matmul */

typedef struct batched_mm {
    const float *A, *B;
    float *Y;
    int64_t M, N, K;
    int nb;
    int64_t dim[FERRY_MAX_DIMS], sa[FERRY_MAX_DIMS], sb[FERRY_MAX_DIMS];
} batched_mm;

/* Batch entry o of a broadcast matmul. */
static void batched_mm_one(void *arg, int64_t o)
{
    const batched_mm *j = arg;
    int64_t oa = 0, ob = 0, rest = o;
    for (int d = j->nb - 1; d >= 0; d--) {
        int64_t i = rest % j->dim[d];
        rest /= j->dim[d];
        oa += i * j->sa[d];
        ob += i * j->sb[d];
    }
    cpu_gemm(0, 0, j->M, j->N, j->K, 1.0f, j->A + oa, j->B + ob, 0.0f, NULL, CPU_BIAS_NONE,
             ACT_NONE, 0.0f, j->Y + o * j->M * j->N);
}

void cpu_matmul(const float *A, const int64_t *ad, int an, const float *B, const int64_t *bd,
                int bn, float *Y, const int64_t *yd, int yn)
{
    (void)yd;
    (void)yn;
    int64_t M = an >= 2 ? ad[an - 2] : 1, K = ad[an - 1];
    int64_t N = bn >= 2 ? bd[bn - 1] : 1;
    /* Batch dims of A and B, right-aligned to nb dims. */
    int na = an > 2 ? an - 2 : 0, nbb = bn > 2 ? bn - 2 : 0;
    int nb = na > nbb ? na : nbb;
    int64_t dim[FERRY_MAX_DIMS], sa[FERRY_MAX_DIMS], sb[FERRY_MAX_DIMS];
    int64_t b_batch = 1;
    for (int d = 0; d < nbb; d++)
        b_batch *= bd[d];
    if (b_batch == 1) {
        /* B is shared by every batch entry: one GEMM over all rows of A. */
        int64_t rows = M;
        for (int d = 0; d < na; d++)
            rows *= ad[d];
        cpu_gemm(0, 0, rows, N, K, 1.0f, A, B, 0.0f, NULL, CPU_BIAS_NONE, ACT_NONE, 0.0f, Y);
        return;
    }
    int64_t pa = M * K, pb = K * N, outer = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int ai = d - (nb - na), bi = d - (nb - nbb);
        int64_t av = ai >= 0 ? ad[ai] : 1, bv = bi >= 0 ? bd[bi] : 1;
        dim[d] = av > bv ? av : bv;
        sa[d] = av == 1 ? 0 : pa;
        sb[d] = bv == 1 ? 0 : pb;
        pa *= av;
        pb *= bv;
        outer *= dim[d];
    }
    batched_mm j = {A, B, Y, M, N, K, nb, {0}, {0}, {0}};
    memcpy(j.dim, dim, sizeof dim);
    memcpy(j.sa, sa, sizeof sa);
    memcpy(j.sb, sb, sizeof sb);
    /* Attention's per-head products are small (T x d by d x T): split over
     * the heads, one single-threaded GEMM each, rather than each GEMM over
     * the threads with a hand-off per product. */
    int T = cpu_parallel_available();
    if (T > 1 && outer > 1)
        cpu_parallel_for(batched_mm_one, &j, outer, T);
    else
        for (int64_t o = 0; o < outer; o++)
            batched_mm_one(&j, o);
}

/* ---------------------------------------------------------------- binary */

/* x is A's element, z is B's. Four stride patterns so that each inner loop
 * has unit or zero strides the compiler can vectorize. */
#define BIN_LOOPS(EXPR)                                                                            \
    do {                                                                                           \
        if (ia && ib) {                                                                            \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float x = a[i], z = b[i];                                                          \
                (void)z;                                                                           \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (ia) {                                                                           \
            float z = b[0];                                                                        \
            (void)z;                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float x = a[i];                                                                    \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (ib) {                                                                           \
            float x = a[0];                                                                        \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float z = b[i];                                                                    \
                (void)z;                                                                           \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else {                                                                                   \
            float x = a[0], z = b[0];                                                              \
            (void)z;                                                                               \
            float r = (EXPR);                                                                      \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = r;                                                                          \
        }                                                                                          \
    } while (0)

static void bin_run(op_kind op, const float *a, int ia, const float *b, int ib, float *y, int64_t n)
{
    switch (op) {
    case OP_ADD: BIN_LOOPS(x + z); break;
    case OP_SUB: BIN_LOOPS(x - z); break;
    case OP_MUL: BIN_LOOPS(x * z); break;
    case OP_DIV: BIN_LOOPS(x / z); break;
    case OP_POW:
        if (!ib && b[0] == 2.0f)
            BIN_LOOPS(x * x);
        else if (!ib && b[0] == 1.0f)
            BIN_LOOPS(x);
        else
            BIN_LOOPS(powf(x, z));
        break;
    default: break;
    }
}

void cpu_binary(op_kind op, const float *A, const int64_t *ad, int an, const float *B,
                const int64_t *bd, int bn, float *Y, const int64_t *yd, int yn)
{
    /* Drop size-1 output dims and merge neighbours that broadcast the same
     * way: same shapes become one flat loop, a row vector over the last dim
     * becomes [rows, cols], a scalar becomes one loop with a zero stride. */
    int64_t dim[FERRY_MAX_DIMS], sa[FERRY_MAX_DIMS], sb[FERRY_MAX_DIMS];
    int abc[FERRY_MAX_DIMS], bbc[FERRY_MAX_DIMS], nd = 0;
    for (int d = 0; d < yn; d++) {
        int ai = d - (yn - an), bi = d - (yn - bn);
        int64_t yv = yd[d], av = ai >= 0 ? ad[ai] : 1, bv = bi >= 0 ? bd[bi] : 1;
        if (yv == 0)
            return;
        if (yv == 1)
            continue;
        int fa = av == 1, fb = bv == 1;
        if (nd > 0 && abc[nd - 1] == fa && bbc[nd - 1] == fb) {
            dim[nd - 1] *= yv;
        } else {
            dim[nd] = yv;
            abc[nd] = fa;
            bbc[nd] = fb;
            nd++;
        }
    }
    if (nd == 0) {
        dim[0] = 1;
        abc[0] = bbc[0] = 0;
        nd = 1;
    }
    int64_t pa = 1, pb = 1, outer = 1;
    for (int d = nd - 1; d >= 0; d--) {
        sa[d] = abc[d] ? 0 : pa;
        sb[d] = bbc[d] ? 0 : pb;
        if (!abc[d])
            pa *= dim[d];
        if (!bbc[d])
            pb *= dim[d];
        if (d < nd - 1)
            outer *= dim[d];
    }
    int64_t L = dim[nd - 1], idx[FERRY_MAX_DIMS] = {0}, oa = 0, ob = 0;
    int ia = sa[nd - 1] != 0, ib = sb[nd - 1] != 0;
    for (int64_t o = 0; o < outer; o++) {
        bin_run(op, A + oa, ia, B + ob, ib, Y + o * L, L);
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            oa += sa[d];
            ob += sb[d];
            if (idx[d] < dim[d])
                break;
            oa -= sa[d] * dim[d];
            ob -= sb[d] * dim[d];
            idx[d] = 0;
        }
    }
}

/* ----------------------------------------------------------- reduce mean */

void cpu_reduce_mean(const float *X, const int64_t *xd, int nd, const int *reduce, float *Y)
{
    /* Merge neighbouring dims of the same kind, dropping size-1 dims. */
    int64_t dim[FERRY_MAX_DIMS];
    int red[FERRY_MAX_DIMS], n = 0;
    int64_t count = 1, total = 1;
    for (int d = 0; d < nd; d++) {
        total *= xd[d];
        if (reduce[d])
            count *= xd[d];
        if (xd[d] == 1)
            continue;
        if (n > 0 && red[n - 1] == !!reduce[d]) {
            dim[n - 1] *= xd[d];
        } else {
            dim[n] = xd[d];
            red[n] = !!reduce[d];
            n++;
        }
    }
    if (total == 0) {
        int64_t out = count ? total / count : 0;
        for (int64_t i = 0; i < out; i++)
            Y[i] = NAN; /* a mean over nothing */
        return;
    }
    double inv = 1.0 / (double)count;
    /* [K0, R, K1] (any part possibly absent) covers every reduction of one
     * block of neighbouring axes: rows when K1 == 1, columns otherwise. */
    int64_t k0 = 1, r = 1, k1 = 1;
    int ok = 1, i = 0;
    if (i < n && !red[i])
        k0 = dim[i++];
    if (i < n && red[i])
        r = dim[i++];
    if (i < n && !red[i])
        k1 = dim[i++];
    if (i < n)
        ok = 0;
    if (ok) {
        for (int64_t a = 0; a < k0; a++) {
            const float *x = X + a * r * k1;
            float *y = Y + a * k1;
            if (k1 == 1) {
                double s = 0.0;
                for (int64_t j = 0; j < r; j++)
                    s += x[j];
                y[0] = (float)(s * inv);
                continue;
            }
            for (int64_t c0 = 0; c0 < k1; c0 += 64) {
                int64_t w = k1 - c0 < 64 ? k1 - c0 : 64;
                double acc[64] = {0};
                for (int64_t j = 0; j < r; j++)
                    for (int64_t c = 0; c < w; c++)
                        acc[c] += x[j * k1 + c0 + c];
                for (int64_t c = 0; c < w; c++)
                    y[c0 + c] = (float)(acc[c] * inv);
            }
        }
        return;
    }
    /* General: every output element sums its reduced sub-block. */
    int64_t stride[FERRY_MAX_DIMS], p = 1;
    for (int d = n - 1; d >= 0; d--) {
        stride[d] = p;
        p *= dim[d];
    }
    int64_t out_n = total / count, kidx[FERRY_MAX_DIMS] = {0};
    int64_t base = 0;
    for (int64_t o = 0; o < out_n; o++) {
        int64_t ridx[FERRY_MAX_DIMS] = {0}, off = 0;
        double s = 0.0;
        for (int64_t j = 0; j < count; j++) {
            s += X[base + off];
            for (int d = n - 1; d >= 0; d--) {
                if (!red[d])
                    continue;
                ridx[d]++;
                off += stride[d];
                if (ridx[d] < dim[d])
                    break;
                off -= stride[d] * dim[d];
                ridx[d] = 0;
            }
        }
        Y[o] = (float)(s * inv);
        for (int d = n - 1; d >= 0; d--) {
            if (red[d])
                continue;
            kidx[d]++;
            base += stride[d];
            if (kidx[d] < dim[d])
                break;
            base -= stride[d] * dim[d];
            kidx[d] = 0;
        }
    }
}

/* ------------------------------------------------------------------ cast */

static int is_int_dtype(ferry_dtype dt)
{
    return dt == FERRY_I32 || dt == FERRY_I64 || dt == FERRY_I8 || dt == FERRY_U8 ||
           dt == FERRY_BOOL;
}

static double load_elem(const void *p, ferry_dtype dt, int64_t i)
{
    switch (dt) {
    case FERRY_F32: return ((const float *)p)[i];
    case FERRY_F64: return ((const double *)p)[i];
    case FERRY_I32: return ((const int32_t *)p)[i];
    case FERRY_I64: return (double)((const int64_t *)p)[i];
    case FERRY_I8: return ((const int8_t *)p)[i];
    case FERRY_U8: return ((const uint8_t *)p)[i];
    case FERRY_BOOL: return ((const uint8_t *)p)[i] != 0;
    case FERRY_F16: return ferry_f16_to_f32(((const uint16_t *)p)[i]);
    case FERRY_BF16: return ferry_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return 0.0;
    }
}

/* Float to integer as C truncation, made total: NaN -> 0, out of range
 * saturates. */
static double trunc_sat(double v, double lo, double hi)
{
    if (v != v)
        return 0.0;
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void cpu_cast(const void *src, ferry_dtype src_dt, void *dst, ferry_dtype dst_store, ferry_dtype to,
              int64_t n)
{
    if (src_dt == FERRY_F32 && dst_store == FERRY_F32) {
        const float *s = src;
        float *d = dst;
        if (to == FERRY_F16) {
            for (int64_t i = 0; i < n; i++)
                d[i] = ferry_f16_to_f32(ferry_f32_to_f16(s[i]));
        } else if (to == FERRY_BF16) {
            for (int64_t i = 0; i < n; i++)
                d[i] = ferry_bf16_to_f32(ferry_f32_to_bf16(s[i]));
        } else if (d != s) {
            memcpy(d, s, (size_t)n * sizeof *d);
        }
        return;
    }
    int from_float = !is_int_dtype(src_dt);
    for (int64_t i = 0; i < n; i++) {
        double v = load_elem(src, src_dt, i);
        switch (dst_store) {
        case FERRY_F32: {
            float f = (float)v;
            if (to == FERRY_F16)
                f = ferry_f16_to_f32(ferry_f32_to_f16(f));
            else if (to == FERRY_BF16)
                f = ferry_bf16_to_f32(ferry_f32_to_bf16(f));
            ((float *)dst)[i] = f;
            break;
        }
        case FERRY_I32:
            ((int32_t *)dst)[i] = (int32_t)trunc_sat(v, -2147483648.0, 2147483647.0);
            break;
        case FERRY_I64:
            if (from_float)
                ((int64_t *)dst)[i] =
                    (int64_t)trunc_sat(v, -9223372036854775808.0, 9223372036854774784.0);
            else if (src_dt == FERRY_I64)
                ((int64_t *)dst)[i] = ((const int64_t *)src)[i]; /* exact beyond 2^53 */
            else
                ((int64_t *)dst)[i] = (int64_t)v;
            break;
        case FERRY_I8: ((int8_t *)dst)[i] = (int8_t)trunc_sat(v, -128.0, 127.0); break;
        case FERRY_U8: ((uint8_t *)dst)[i] = (uint8_t)trunc_sat(v, 0.0, 255.0); break;
        case FERRY_BOOL: ((uint8_t *)dst)[i] = v != 0.0; break;
        default: break;
        }
    }
}
