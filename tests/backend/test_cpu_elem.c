/*
 * test_cpu_elem.c - the CPU elementwise, comparison, logical and reduction
 * kernels (cpu_elem.h): hand-written cases for the rules that are easy to
 * get wrong (integer division and modulo signs, NaN in Min/Max, ArgMax
 * ties, empty reductions), and random shapes with every kind of
 * broadcasting against naive per-element references in double.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/cpu_elem.h"

#define MAXD FERRY_MAX_DIMS

/* ------------------------------------------------------------- helpers */

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int64_t irand(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1));
}

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() % 1000001) / 1000000.0f;
}

static int64_t numel(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= d[i];
    return p;
}

static void unravel(int64_t i, const int64_t *d, int n, int64_t *idx)
{
    for (int k = n - 1; k >= 0; k--) {
        idx[k] = d[k] ? i % d[k] : 0;
        i = d[k] ? i / d[k] : 0;
    }
}

static int64_t ravel(const int64_t *idx, const int64_t *d, int n)
{
    int64_t o = 0;
    for (int k = 0; k < n; k++)
        o = o * d[k] + idx[k];
    return o;
}

static int64_t bcast_index(const int64_t *oi, int on, const int64_t *d, int n)
{
    int64_t o = 0;
    for (int k = 0; k < n; k++)
        o = o * d[k] + (d[k] == 1 ? 0 : oi[on - n + k]);
    return o;
}

static void rand_dims(int64_t *d, int n, int64_t hi)
{
    for (int i = 0; i < n; i++)
        d[i] = rnd() % 4 == 0 ? 1 : irand(1, hi);
}

/* A pair of shapes that broadcast to od[on], cycling through the kinds:
 * equal, scalar vs tensor, [N] vs [.., N], [3,1] vs [1,4] style, rank
 * mismatch with ones, tensor vs scalar. */
static void rand_pair(int kind, int64_t *od, int *on, int64_t *a, int *an, int64_t *b, int *bn)
{
    *on = (int)irand(1, 5);
    rand_dims(od, *on, 6);
    if (kind == 6) /* an empty output */
        od[irand(0, *on - 1)] = 0;
    *an = *bn = *on;
    memcpy(a, od, sizeof(int64_t) * MAXD);
    memcpy(b, od, sizeof(int64_t) * MAXD);
    switch (kind % 7) {
    case 1:
        *an = (int)irand(0, 1);
        a[0] = 1;
        break;
    case 2:
        *an = 1;
        a[0] = od[*on - 1];
        break;
    case 3:
        for (int k = 0; k < *on; k++) {
            if (k % 2)
                a[k] = 1;
            else
                b[k] = 1;
        }
        break;
    case 4: {
        *bn = (int)irand(0, *on);
        for (int k = 0; k < *bn; k++)
            b[k] = rnd() % 2 ? 1 : od[*on - *bn + k];
        break;
    }
    case 5: *bn = 0; break;
    default: break;
    }
}

static void *alloc(int64_t n, size_t e)
{
    void *p = calloc((size_t)(n ? n : 1), e);
    assert_non_null(p);
    return p;
}

/* -------------------------------------------------------------- unary */

static double ref_unary(cpu_unary_op op, double v, double a, double b)
{
    switch (op) {
    case CPU_UN_NEG: return -v;
    case CPU_UN_ABS: return fabs(v);
    case CPU_UN_SIGN: return v > 0 ? 1 : v < 0 ? -1 : 0;
    case CPU_UN_EXP: return exp(v);
    case CPU_UN_LOG: return log(v);
    case CPU_UN_RECIPROCAL: return 1 / v;
    case CPU_UN_FLOOR: return floor(v);
    case CPU_UN_CEIL: return ceil(v);
    case CPU_UN_ROUND: return nearbyint(v);
    case CPU_UN_SIN: return sin(v);
    case CPU_UN_COS: return cos(v);
    case CPU_UN_HARD_SIGMOID: return fmax(0, fmin(1, a * v + b));
    case CPU_UN_HARD_SWISH: return v * fmax(0, fmin(1, v / 6 + 0.5));
    case CPU_UN_CLIP: return fmin(fmax(v, a), b);
    case CPU_UN_SOFTPLUS: return log1p(exp(v));
    case CPU_UN_MISH: return v * tanh(log1p(exp(v)));
    case CPU_UN_ELU: return v > 0 ? v : a * expm1(v);
    case CPU_UN_SELU: return b * (v > 0 ? v : a * expm1(v));
    case CPU_UN_CELU: return fmax(0, v) + fmin(0, a * expm1(v / a));
    case CPU_UN_THRESHOLDED_RELU: return v > a ? v : 0;
    case CPU_UN_SOFTSIGN: return v / (1 + fabs(v));
    case CPU_UN_SHRINK: return v < -a ? v + b : v > a ? v - b : 0;
    }
    return NAN;
}

static void test_unary_f32(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N], y[N];
    for (int op = CPU_UN_NEG; op <= CPU_UN_SHRINK; op++) {
        float lo = op == CPU_UN_LOG ? 0.001f : -30.0f, hi = op == CPU_UN_EXP ? 80.0f : 30.0f;
        for (int i = 0; i < N; i++)
            x[i] = frand(lo, hi);
        x[0] = op == CPU_UN_LOG ? 1.0f : 0.0f;
        x[1] = op == CPU_UN_LOG ? 2.0f : -2.5f; /* Round: half to even */
        x[2] = op == CPU_UN_LOG ? 3.0f : 3.5f;
        float a = op == CPU_UN_CLIP ? -1.5f : 0.2f, b = op == CPU_UN_CLIP ? 2.0f : 0.5f;
        cpu_unary_f32((cpu_unary_op)op, x, y, N, a, b);
        for (int i = 0; i < N; i++) {
            double want = ref_unary((cpu_unary_op)op, x[i], a, b);
            double tol = 2e-6 * (1 + fabs(want));
            if (!(y[i] == want || fabs(y[i] - want) <= tol))
                fail_msg("unary op %d: f(%.9g) = %.9g, want %.9g", op, x[i], y[i], want);
        }
    }
    /* hand values */
    const float r[4] = {-2.5f, -0.5f, 0.5f, 2.5f};
    cpu_unary_f32(CPU_UN_ROUND, r, y, 4, 0, 0);
    assert_memory_equal(y, ((const float[]){-2.0f, -0.0f, 0.0f, 2.0f}), 16);
    const float c[3] = {NAN, -5, 5};
    cpu_unary_f32(CPU_UN_CLIP, c, y, 3, -1, 1);
    assert_true(isnan(y[0]));
    assert_true(y[1] == -1 && y[2] == 1);
    cpu_unary_f32(CPU_UN_CLIP, c, y, 3, -INFINITY, 0);
    assert_true(y[1] == -5 && y[2] == 0);
    const float s[2] = {100.0f, -100.0f}; /* no overflow in softplus */
    cpu_unary_f32(CPU_UN_SOFTPLUS, s, y, 2, 0, 0);
    assert_float_equal(y[0], 100.0f, 1e-5);
    assert_true(y[1] > 0 && y[1] < 1e-40f);
    /* the activations at their boundaries: ThresholdedRelu and Shrink
     * are strict at alpha and lambd, ELU is continuous at 0 */
    const float t[5] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f};
    cpu_unary_f32(CPU_UN_THRESHOLDED_RELU, t, y, 5, 0.5f, 0);
    assert_memory_equal(y, ((const float[]){0, 0, 0, 0, 1.0f}), 20);
    cpu_unary_f32(CPU_UN_SHRINK, t, y, 5, 0.5f, 0.25f);
    assert_memory_equal(y, ((const float[]){-0.75f, 0, 0, 0, 0.75f}), 20);
    cpu_unary_f32(CPU_UN_ELU, t, y, 5, 1.0f, 0);
    assert_true(y[2] == 0.0f && y[4] == 1.0f);
    assert_float_equal(y[0], expm1(-1.0), 1e-7);
    const float big[2] = {-1000.0f, 1000.0f}; /* no overflow in CELU's e^(x/a) */
    cpu_unary_f32(CPU_UN_CELU, big, y, 2, 0.5f, 0);
    assert_true(y[0] == -0.5f && y[1] == 1000.0f);
    /* in place */
    float z[3] = {1, -2, 3};
    cpu_unary_f32(CPU_UN_NEG, z, z, 3, 0, 0);
    assert_true(z[0] == -1 && z[1] == 2 && z[2] == -3);
}

static void test_unary_int(void **state)
{
    (void)state;
    const int64_t x[5] = {INT64_MIN, -7, 0, 7, INT64_MAX};
    int64_t y[5];
    cpu_unary_int(CPU_UN_NEG, FERRY_I64, x, y, 5, 0, 0);
    assert_memory_equal(y, ((const int64_t[]){INT64_MIN, 7, 0, -7, -INT64_MAX}), 40);
    cpu_unary_int(CPU_UN_ABS, FERRY_I64, x, y, 5, 0, 0);
    assert_memory_equal(y, ((const int64_t[]){INT64_MIN, 7, 0, 7, INT64_MAX}), 40);
    cpu_unary_int(CPU_UN_SIGN, FERRY_I64, x, y, 5, 0, 0);
    assert_memory_equal(y, ((const int64_t[]){-1, -1, 0, 1, 1}), 40);
    cpu_unary_int(CPU_UN_CLIP, FERRY_I64, x, y, 5, -3, 5);
    assert_memory_equal(y, ((const int64_t[]){-3, -3, 0, 5, 5}), 40);
    cpu_unary_int(CPU_UN_FLOOR, FERRY_I64, x, y, 5, 0, 0);
    assert_memory_equal(y, x, 40);
    const int32_t x32[3] = {INT32_MIN, -4, 9};
    int32_t y32[3];
    cpu_unary_int(CPU_UN_ABS, FERRY_I32, x32, y32, 3, 0, 0);
    assert_memory_equal(y32, ((const int32_t[]){INT32_MIN, 4, 9}), 12);
    cpu_unary_int(CPU_UN_NEG, FERRY_I32, x32, y32, 3, 0, 0);
    assert_memory_equal(y32, ((const int32_t[]){INT32_MIN, 4, -9}), 12);
}

/* ------------------------------------------------------------- binary */

static void test_int_div_mod(void **state)
{
    (void)state;
    const int64_t a[8] = {7, -7, 7, -7, 5, INT64_MIN, INT64_MIN, 6};
    const int64_t b[8] = {2, 2, -2, -2, 0, -1, 1, 3};
    const int64_t d[] = {8};
    int64_t y[8];
    cpu_binary_arith(CPU_BIN_DIV, FERRY_I64, 0, a, d, 1, b, d, 1, y, d, 1);
    assert_memory_equal(y, ((const int64_t[]){3, -3, -3, 3, 0, INT64_MIN, INT64_MIN, 2}), 64);
    cpu_binary_arith(CPU_BIN_MOD, FERRY_I64, 0, a, d, 1, b, d, 1, y, d, 1);
    assert_memory_equal(y, ((const int64_t[]){1, 1, -1, -1, 0, 0, 0, 0}), 64);
    cpu_binary_arith(CPU_BIN_MOD, FERRY_I64, 1, a, d, 1, b, d, 1, y, d, 1);
    assert_memory_equal(y, ((const int64_t[]){1, -1, 1, -1, 0, 0, 0, 0}), 64);
    const int32_t a32[4] = {7, -7, 7, INT32_MIN}, b32[4] = {-2, 2, 0, -1};
    const int64_t d4[] = {4};
    int32_t y32[4];
    cpu_binary_arith(CPU_BIN_DIV, FERRY_I32, 0, a32, d4, 1, b32, d4, 1, y32, d4, 1);
    assert_memory_equal(y32, ((const int32_t[]){-3, -3, 0, INT32_MIN}), 16);
    cpu_binary_arith(CPU_BIN_MOD, FERRY_I32, 0, a32, d4, 1, b32, d4, 1, y32, d4, 1);
    assert_memory_equal(y32, ((const int32_t[]){-1, 1, 0, 0}), 16);
    /* wrapping add */
    const int64_t m[1] = {INT64_MAX}, one[1] = {1};
    cpu_binary_arith(CPU_BIN_ADD, FERRY_I64, 0, m, d, 0, one, d, 0, y, d, 0);
    assert_true(y[0] == INT64_MIN);
    /* f32 Mod: fmod and Python's */
    const float fa[2] = {-7.5f, 7.5f}, fb[1] = {2.0f};
    const int64_t d2[] = {2}, d1[] = {1};
    float fy[2];
    cpu_binary_arith(CPU_BIN_MOD, FERRY_F32, 1, fa, d2, 1, fb, d1, 1, fy, d2, 1);
    assert_true(fy[0] == -1.5f && fy[1] == 1.5f);
    cpu_binary_arith(CPU_BIN_MOD, FERRY_F32, 0, fa, d2, 1, fb, d1, 1, fy, d2, 1);
    assert_true(fy[0] == 0.5f && fy[1] == 1.5f);
    /* f32 Min/Max propagate NaN from either side */
    const float na[3] = {NAN, 1, 2}, nb[3] = {1, NAN, 3};
    const int64_t d3[] = {3};
    float ny[3];
    cpu_binary_arith(CPU_BIN_MAX, FERRY_F32, 0, na, d3, 1, nb, d3, 1, ny, d3, 1);
    assert_true(isnan(ny[0]) && isnan(ny[1]) && ny[2] == 3);
    cpu_binary_arith(CPU_BIN_MIN, FERRY_F32, 0, na, d3, 1, nb, d3, 1, ny, d3, 1);
    assert_true(isnan(ny[0]) && isnan(ny[1]) && ny[2] == 2);
}

static int64_t ref_i(cpu_binary_op op, int64_t x, int64_t z, int fmod_)
{
    switch (op) {
    case CPU_BIN_ADD: return x + z;
    case CPU_BIN_SUB: return x - z;
    case CPU_BIN_MUL: return x * z;
    case CPU_BIN_DIV: return z == 0 ? 0 : x / z;
    case CPU_BIN_MOD: {
        if (z == 0)
            return 0;
        int64_t r = x % z;
        if (!fmod_ && r != 0 && (r < 0) != (z < 0))
            r += z;
        return r;
    }
    case CPU_BIN_MIN: return x < z ? x : z;
    default: return x > z ? x : z;
    }
}

static double ref_f(cpu_binary_op op, double x, double z)
{
    switch (op) {
    case CPU_BIN_ADD: return x + z;
    case CPU_BIN_SUB: return x - z;
    case CPU_BIN_MUL: return x * z;
    case CPU_BIN_DIV: return x / z;
    case CPU_BIN_MOD: return fmod(x, z);
    case CPU_BIN_MIN: return fmin(x, z);
    default: return fmax(x, z);
    }
}

static void test_binary_random(void **state)
{
    (void)state;
    for (int t = 0; t < 1500; t++) {
        int64_t od[MAXD], ad[MAXD], bd[MAXD], oi[MAXD];
        int on, an, bn;
        rand_pair(t % 7, od, &on, ad, &an, bd, &bn);
        cpu_binary_op op = (cpu_binary_op)(t / 7 % 7);
        ferry_dtype dt = t % 3 == 0 ? FERRY_F32 : t % 3 == 1 ? FERRY_I64 : FERRY_I32;
        int fm = dt == FERRY_F32 ? 1 : (int)(t / 49 % 2);
        int64_t na = numel(ad, an), nb = numel(bd, bn), no = numel(od, on);
        int64_t *ia = alloc(na, 8), *ib = alloc(nb, 8);
        for (int64_t i = 0; i < na; i++)
            ia[i] = irand(-20, 20);
        for (int64_t i = 0; i < nb; i++)
            ib[i] = irand(-20, 20);
        void *A = alloc(na, 8), *B = alloc(nb, 8), *Y = alloc(no, 8);
        for (int64_t i = 0; i < na; i++) {
            if (dt == FERRY_F32)
                ((float *)A)[i] = (float)ia[i] / 4.0f;
            else if (dt == FERRY_I32)
                ((int32_t *)A)[i] = (int32_t)ia[i];
            else
                ((int64_t *)A)[i] = ia[i];
        }
        for (int64_t i = 0; i < nb; i++) {
            if (dt == FERRY_F32)
                ((float *)B)[i] = (float)ib[i] / 4.0f;
            else if (dt == FERRY_I32)
                ((int32_t *)B)[i] = (int32_t)ib[i];
            else
                ((int64_t *)B)[i] = ib[i];
        }
        cpu_binary_arith(op, dt, fm, A, ad, an, B, bd, bn, Y, od, on);
        for (int64_t i = 0; i < no; i++) {
            unravel(i, od, on, oi);
            int64_t x = ia[bcast_index(oi, on, ad, an)], z = ib[bcast_index(oi, on, bd, bn)];
            if (dt == FERRY_F32) {
                double w = ref_f(op, (double)x / 4, (double)z / 4), g = ((float *)Y)[i];
                if (!(isnan(w) ? isnan(g) : g == w || fabs(g - w) <= 1e-6 * (1 + fabs(w))))
                    fail_msg("f32 op %d (%g, %g): %g, want %g", (int)op, x / 4.0, z / 4.0, g, w);
            } else {
                int64_t w = ref_i(op, x, z, fm);
                int64_t g = dt == FERRY_I32 ? ((int32_t *)Y)[i] : ((int64_t *)Y)[i];
                if (g != w)
                    fail_msg("int op %d fmod %d (%lld, %lld): %lld, want %lld", (int)op, fm,
                             (long long)x, (long long)z, (long long)g, (long long)w);
            }
        }
        free(ia);
        free(ib);
        free(A);
        free(B);
        free(Y);
    }
}

static void test_variadic(void **state)
{
    (void)state;
    const float a[3] = {1, 5, -2}, b[2] = {4, 0}, c[1] = {3};
    const int64_t ad[] = {1, 3}, bd[] = {2, 1}, cd[] = {1}, yd[] = {2, 3};
    const void *X[3] = {a, b, c};
    const int64_t *xd[3] = {ad, bd, cd};
    const int xn[3] = {2, 2, 1};
    float y[6];
    cpu_variadic(CPU_BIN_MAX, FERRY_F32, 3, X, xd, xn, y, yd, 2);
    assert_memory_equal(y, ((const float[]){4, 5, 4, 3, 5, 3}), 24);
    cpu_variadic(CPU_BIN_MIN, FERRY_F32, 3, X, xd, xn, y, yd, 2);
    assert_memory_equal(y, ((const float[]){1, 3, -2, 0, 0, -2}), 24);
    cpu_variadic(CPU_BIN_ADD, FERRY_F32, 3, X, xd, xn, y, yd, 2);
    assert_memory_equal(y, ((const float[]){8, 12, 5, 4, 8, 1}), 24);
    cpu_variadic(CPU_BIN_MEAN, FERRY_F32, 3, X, xd, xn, y, yd, 2);
    assert_float_equal(y[0], 8.0 / 3, 1e-6);
    assert_float_equal(y[5], 1.0 / 3, 1e-6);
    cpu_variadic(CPU_BIN_MAX, FERRY_F32, 1, X, xd, xn, y, yd, 2); /* one input: broadcast */
    assert_memory_equal(y, ((const float[]){1, 5, -2, 1, 5, -2}), 24);
    const int64_t ia[2] = {3, -9}, ib[1] = {-1};
    const void *I[2] = {ia, ib};
    const int64_t i1[] = {2}, i0[] = {1};
    const int64_t *id[2] = {i1, i0};
    const int in[2] = {1, 1};
    int64_t iy[2];
    cpu_variadic(CPU_BIN_MIN, FERRY_I64, 2, I, id, in, iy, i1, 1);
    assert_true(iy[0] == -1 && iy[1] == -9);
}

static void test_pow(void **state)
{
    (void)state;
    const float a[4] = {2, -2, 0.5f, 9}, e[4] = {3, 2, -1, 0.5f};
    const int64_t d[] = {4}, d1[] = {1};
    float y[4];
    cpu_pow(a, FERRY_F32, d, 1, e, FERRY_F32, d, 1, y, d, 1);
    assert_memory_equal(y, ((const float[]){8, 4, 2, 3}), 16);
    const float two[1] = {2};
    cpu_pow(a, FERRY_F32, d, 1, two, FERRY_F32, d1, 1, y, d, 1);
    assert_memory_equal(y, ((const float[]){4, 4, 0.25f, 81}), 16);
    const int64_t ie[4] = {-2, 3, 10, 0};
    cpu_pow(a, FERRY_F32, d, 1, ie, FERRY_I64, d, 1, y, d, 1);
    assert_memory_equal(y, ((const float[]){0.25f, -8, 1.0f / 1024, 1}), 16);
    const int32_t je[1] = {3};
    cpu_pow(a, FERRY_F32, d, 1, je, FERRY_I32, d1, 1, y, d, 1);
    assert_memory_equal(y, ((const float[]){8, -8, 0.125f, 729}), 16);
    const int64_t ib[4] = {3, -1, 2, 7}, ix[4] = {4, -3, -1, 0};
    int64_t iy[4];
    cpu_pow(ib, FERRY_I64, d, 1, ix, FERRY_I64, d, 1, iy, d, 1);
    assert_memory_equal(iy, ((const int64_t[]){81, -1, 0, 1}), 32);
    const int32_t jb[4] = {2, 10, -3, 4};
    const float fe[1] = {0.5f};
    int32_t jy[4];
    cpu_pow(jb, FERRY_I32, d, 1, fe, FERRY_F32, d1, 1, jy, d, 1);
    assert_memory_equal(jy, ((const int32_t[]){1, 3, 0, 2}), 16); /* sqrt(-3) is NaN: 0 */
    /* broadcast [3,1] ^ [1,2] */
    const float b3[3] = {1, 2, 3}, e2[2] = {2, 3};
    const int64_t bd[] = {3, 1}, ed[] = {1, 2}, yd[] = {3, 2};
    float y6[6];
    cpu_pow(b3, FERRY_F32, bd, 2, e2, FERRY_F32, ed, 2, y6, yd, 2);
    assert_memory_equal(y6, ((const float[]){1, 1, 4, 8, 9, 27}), 24);
}

/* ----------------------------------------------------- compare, logical */

static void test_compare(void **state)
{
    (void)state;
    const float a[4] = {1, 2, NAN, 4}, b[1] = {2};
    const int64_t d[] = {4}, d1[] = {1};
    uint8_t y[4];
    cpu_compare(CPU_CMP_EQ, FERRY_F32, a, d, 1, b, d1, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 1, 0, 0}), 4);
    cpu_compare(CPU_CMP_LE, FERRY_F32, a, d, 1, b, d1, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){1, 1, 0, 0}), 4);
    cpu_compare(CPU_CMP_GT, FERRY_F32, b, d1, 1, a, d, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){1, 0, 0, 0}), 4);
    const uint8_t ba[4] = {0, 1, 0, 1}, bb[4] = {0, 0, 1, 1};
    cpu_compare(CPU_CMP_EQ, FERRY_BOOL, ba, d, 1, bb, d, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){1, 0, 0, 1}), 4);
    cpu_logical(CPU_LOGIC_AND, ba, d, 1, bb, d, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 0, 0, 1}), 4);
    cpu_logical(CPU_LOGIC_OR, ba, d, 1, bb, d, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 1, 1, 1}), 4);
    cpu_logical(CPU_LOGIC_XOR, ba, d, 1, bb, d, 1, y, d, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 1, 1, 0}), 4);
    cpu_not(ba, y, 4);
    assert_memory_equal(y, ((const uint8_t[]){1, 0, 1, 0}), 4);
    const float s[4] = {NAN, INFINITY, -INFINITY, 1};
    cpu_isnan(s, y, 4);
    assert_memory_equal(y, ((const uint8_t[]){1, 0, 0, 0}), 4);
    cpu_isinf(s, y, 4, 1, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 1, 1, 0}), 4);
    cpu_isinf(s, y, 4, 0, 1);
    assert_memory_equal(y, ((const uint8_t[]){0, 1, 0, 0}), 4);

    /* random, small integers so that ties are common */
    for (int t = 0; t < 1000; t++) {
        int64_t od[MAXD], ad[MAXD], bd[MAXD], oi[MAXD];
        int on, an, bn;
        rand_pair(t % 7, od, &on, ad, &an, bd, &bn);
        cpu_cmp_op op = (cpu_cmp_op)(t / 7 % 5);
        ferry_dtype dt = (ferry_dtype[]){FERRY_F32, FERRY_I64, FERRY_I32, FERRY_BOOL}[t % 4];
        int64_t na = numel(ad, an), nb = numel(bd, bn), no = numel(od, on);
        int64_t *ia = alloc(na, 8), *ib = alloc(nb, 8);
        void *A = alloc(na, 8), *B = alloc(nb, 8);
        uint8_t *Y = alloc(no, 1);
        int64_t hi = dt == FERRY_BOOL ? 1 : 3;
        for (int k = 0; k < 2; k++) {
            int64_t n = k ? nb : na, *iv = k ? ib : ia;
            void *p = k ? B : A;
            for (int64_t i = 0; i < n; i++) {
                iv[i] = irand(dt == FERRY_BOOL ? 0 : -3, hi);
                if (dt == FERRY_F32)
                    ((float *)p)[i] = (float)iv[i];
                else if (dt == FERRY_I64)
                    ((int64_t *)p)[i] = iv[i];
                else if (dt == FERRY_I32)
                    ((int32_t *)p)[i] = (int32_t)iv[i];
                else
                    ((uint8_t *)p)[i] = (uint8_t)iv[i];
            }
        }
        cpu_compare(op, dt, A, ad, an, B, bd, bn, Y, od, on);
        for (int64_t i = 0; i < no; i++) {
            unravel(i, od, on, oi);
            int64_t x = ia[bcast_index(oi, on, ad, an)], z = ib[bcast_index(oi, on, bd, bn)];
            int w = op == CPU_CMP_EQ   ? x == z
                    : op == CPU_CMP_LT ? x < z
                    : op == CPU_CMP_LE ? x <= z
                    : op == CPU_CMP_GT ? x > z
                                       : x >= z;
            assert_int_equal(Y[i], w);
        }
        if (dt == FERRY_BOOL) {
            cpu_logical((cpu_logic_op)(t % 3), A, ad, an, B, bd, bn, Y, od, on);
            for (int64_t i = 0; i < no; i++) {
                unravel(i, od, on, oi);
                int64_t x = ia[bcast_index(oi, on, ad, an)], z = ib[bcast_index(oi, on, bd, bn)];
                int w = t % 3 == 0 ? (x && z) : t % 3 == 1 ? (x || z) : (x != z);
                assert_int_equal(Y[i], w);
            }
        }
        free(ia);
        free(ib);
        free(A);
        free(B);
        free(Y);
    }
}

/* ------------------------------------------------------------ reductions */

static void test_reduce_hand(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int64_t xd[] = {2, 3};
    float y[6];
    cpu_reduce(CPU_RED_SUM, FERRY_F32, x, xd, 2, (const int[]){1, 0}, y);
    assert_memory_equal(y, ((const float[]){5, 7, 9}), 12);
    cpu_reduce(CPU_RED_MAX, FERRY_F32, x, xd, 2, (const int[]){0, 1}, y);
    assert_memory_equal(y, ((const float[]){3, 6}), 8);
    cpu_reduce(CPU_RED_PROD, FERRY_F32, x, xd, 2, (const int[]){1, 1}, y);
    assert_true(y[0] == 720);
    cpu_reduce(CPU_RED_L2, FERRY_F32, x, xd, 2, (const int[]){0, 1}, y);
    assert_float_equal(y[0], sqrt(14.0), 1e-6);
    cpu_reduce(CPU_RED_MEAN, FERRY_F32, x, xd, 2, (const int[]){0, 0}, y); /* no axis */
    assert_true(y[0] == 1 && y[2] == 3);
    cpu_reduce(CPU_RED_SUM_SQUARE, FERRY_F32, x, xd, 2, (const int[]){0, 0}, y);
    assert_true(y[1] == 4 && y[2] == 9);
    /* LogSumExp does not overflow */
    const float big[2] = {1000, 1000};
    const int64_t bd[] = {2};
    cpu_reduce(CPU_RED_LOG_SUM_EXP, FERRY_F32, big, bd, 1, (const int[]){1}, y);
    assert_float_equal(y[0], 1000 + log(2.0), 1e-3);
    const float ninf[2] = {-INFINITY, -INFINITY};
    cpu_reduce(CPU_RED_LOG_SUM_EXP, FERRY_F32, ninf, bd, 1, (const int[]){1}, y);
    assert_true(y[0] == -INFINITY);
    /* NaN propagates through Max and Min, in rows and in columns */
    const float n[6] = {1, NAN, 3, 4, 5, 6};
    cpu_reduce(CPU_RED_MAX, FERRY_F32, n, xd, 2, (const int[]){0, 1}, y);
    assert_true(isnan(y[0]) && y[1] == 6);
    cpu_reduce(CPU_RED_MIN, FERRY_F32, n, xd, 2, (const int[]){1, 0}, y);
    assert_true(y[0] == 1 && isnan(y[1]) && y[2] == 3);
    /* empty reductions give the identity */
    const int64_t ed[] = {2, 0};
    const int red1[] = {0, 1};
    cpu_reduce(CPU_RED_SUM, FERRY_F32, x, ed, 2, red1, y);
    assert_true(y[0] == 0 && y[1] == 0);
    cpu_reduce(CPU_RED_PROD, FERRY_F32, x, ed, 2, red1, y);
    assert_true(y[0] == 1);
    cpu_reduce(CPU_RED_MAX, FERRY_F32, x, ed, 2, red1, y);
    assert_true(y[0] == -INFINITY);
    cpu_reduce(CPU_RED_MEAN, FERRY_F32, x, ed, 2, red1, y);
    assert_true(isnan(y[0]));
    int64_t iy[3];
    cpu_reduce(CPU_RED_MIN, FERRY_I64, x, ed, 2, red1, iy);
    assert_true(iy[0] == INT64_MAX);
    const int64_t ix[6] = {5, -2, 7, INT64_MAX, 1, 0};
    cpu_reduce(CPU_RED_SUM, FERRY_I64, ix, xd, 2, (const int[]){1, 0}, iy); /* wraps */
    assert_true(iy[0] == (int64_t)((uint64_t)5 + (uint64_t)INT64_MAX));
    cpu_reduce(CPU_RED_MIN, FERRY_I64, ix, xd, 2, (const int[]){0, 1}, iy);
    assert_true(iy[0] == -2 && iy[1] == 0);
}

static double ref_reduce(cpu_reduce_op op, const double *v, int64_t n)
{
    double s = 0, m = -INFINITY, mn = INFINITY, p = 1, ss = 0, l1 = 0;
    for (int64_t i = 0; i < n; i++) {
        s += v[i];
        m = fmax(m, v[i]);
        mn = fmin(mn, v[i]);
        p *= v[i];
        ss += v[i] * v[i];
        l1 += fabs(v[i]);
    }
    switch (op) {
    case CPU_RED_SUM: return s;
    case CPU_RED_MEAN: return s / (double)n;
    case CPU_RED_MAX: return m;
    case CPU_RED_MIN: return mn;
    case CPU_RED_PROD: return p;
    case CPU_RED_L1: return l1;
    case CPU_RED_L2: return sqrt(ss);
    case CPU_RED_SUM_SQUARE: return ss;
    case CPU_RED_LOG_SUM: return log(s);
    case CPU_RED_LOG_SUM_EXP: {
        double e = 0;
        for (int64_t i = 0; i < n; i++)
            e += exp(v[i] - m);
        return m + log(e);
    }
    }
    return NAN;
}

static void test_reduce_random(void **state)
{
    (void)state;
    double *vals = malloc(8192 * sizeof *vals);
    assert_non_null(vals);
    for (int t = 0; t < 1200; t++) {
        int nd = (int)irand(1, 5);
        int64_t xd[MAXD], yd[MAXD], xi[MAXD], yi[MAXD];
        int red[MAXD], yn = 0;
        rand_dims(xd, nd, 7);
        if (t % 3 == 0) /* a long inner row, some past the 2048-wide column blocks */
            xd[nd - 1] = t % 2 ? irand(2040, 2100) : irand(250, 600);
        for (int k = 0; k < nd - 1 && numel(xd, nd) > 8000; k++)
            xd[k] = 1;
        for (int k = 0; k < nd; k++) {
            red[k] = t % 11 == 0 ? 1 : (int)(rnd() % 2);
            if (!red[k])
                yd[yn++] = xd[k];
        }
        cpu_reduce_op op = (cpu_reduce_op)(t % 10);
        int is_int =
            t % 4 == 3 && op != CPU_RED_L2 && op != CPU_RED_LOG_SUM && op != CPU_RED_LOG_SUM_EXP;
        int i32 = t / 4 % 2; /* int32 data, accumulated in int64 */
        int64_t n = numel(xd, nd), no = numel(yd, yn);
        float *x = alloc(n, 4), *y = alloc(no, 4);
        int64_t *ix = alloc(n, 8), *iy = alloc(no, 8);
        int32_t *jx = alloc(n, 4), *jy = alloc(no, 4);
        for (int64_t i = 0; i < n; i++) {
            jx[i] = (int32_t)(ix[i] = irand(op == CPU_RED_PROD ? -2 : -50,
                                            op == CPU_RED_PROD ? 2 : 50));
            x[i] = op == CPU_RED_PROD          ? frand(0.5f, 1.5f)
                   : op == CPU_RED_LOG_SUM     ? frand(0.01f, 5.0f)
                   : op == CPU_RED_LOG_SUM_EXP ? frand(-50.0f, 90.0f)
                                               : frand(-5.0f, 5.0f);
        }
        if (is_int && i32) {
            cpu_reduce(op, FERRY_I32, jx, xd, nd, red, jy);
            for (int64_t o = 0; o < no; o++)
                iy[o] = jy[o];
        } else if (is_int) {
            cpu_reduce(op, FERRY_I64, ix, xd, nd, red, iy);
        } else
            cpu_reduce(op, FERRY_F32, x, xd, nd, red, y);
        /* Group X's elements by the output they reduce into (a counting
         * sort), in X's order. */
        int64_t *start = alloc(no + 1, 8), *oidx = alloc(n, 8), *pos = alloc(no, 8);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, xd, nd, xi);
            for (int k = 0, j = 0; k < nd; k++)
                if (!red[k])
                    yi[j++] = xi[k];
            oidx[i] = ravel(yi, yd, yn);
            start[oidx[i] + 1]++;
        }
        for (int64_t o = 0; o < no; o++)
            pos[o] = start[o + 1] += start[o];
        for (int64_t o = 0; o < no; o++)
            pos[o] = start[o];
        int64_t *order = alloc(n, 8);
        for (int64_t i = 0; i < n; i++)
            order[pos[oidx[i]]++] = i;
        for (int64_t o = 0; o < no; o++) {
            int64_t m = 0, isum = 0, imax = INT64_MIN, imin = INT64_MAX, iprod = 1, il1 = 0,
                    isq = 0;
            for (int64_t q = start[o]; q < start[o + 1]; q++) {
                int64_t i = order[q];
                vals[m++] = x[i];
                isum = (int64_t)((uint64_t)isum + (uint64_t)ix[i]);
                imax = ix[i] > imax ? ix[i] : imax;
                imin = ix[i] < imin ? ix[i] : imin;
                iprod = (int64_t)((uint64_t)iprod * (uint64_t)ix[i]); /* wraps */
                il1 += ix[i] < 0 ? -ix[i] : ix[i];
                isq += ix[i] * ix[i];
            }
            if (is_int) {
                int64_t w = op == CPU_RED_SUM          ? isum
                            : op == CPU_RED_MEAN       ? (m ? isum / m : 0) /* truncated */
                            : op == CPU_RED_MAX        ? imax
                            : op == CPU_RED_MIN        ? imin
                            : op == CPU_RED_L1         ? il1
                            : op == CPU_RED_SUM_SQUARE ? isq
                                                       : iprod;
                if (i32)
                    w = (int32_t)w;
                if (iy[o] != w)
                    fail_msg("int reduce op %d: [%lld] %lld, want %lld", (int)op, (long long)o,
                             (long long)iy[o], (long long)w);
            } else {
                double w = ref_reduce(op, vals, m);
                if (!(fabs(y[o] - w) <= 2e-6 * (1 + fabs(w))))
                    fail_msg("reduce op %d: [%lld] %.9g, want %.9g", (int)op, (long long)o, y[o],
                             w);
            }
        }
        free(start);
        free(oidx);
        free(pos);
        free(order);
        free(x);
        free(y);
        free(ix);
        free(iy);
        free(jx);
        free(jy);
    }
    free(vals);
}

static void test_arg_reduce(void **state)
{
    (void)state;
    /* ties: first by default, last with select_last_index */
    const float x[6] = {1, 3, 3, 2, 0, 3};
    const int64_t d[] = {6}, d23[] = {2, 3};
    int64_t y[3];
    cpu_arg_reduce(1, FERRY_F32, x, d, 1, 0, 0, y);
    assert_int_equal(y[0], 1);
    cpu_arg_reduce(1, FERRY_F32, x, d, 1, 0, 1, y);
    assert_int_equal(y[0], 5);
    cpu_arg_reduce(0, FERRY_F32, x, d, 1, 0, 1, y);
    assert_int_equal(y[0], 4);
    /* over rows ([2,3] axis 0) */
    cpu_arg_reduce(1, FERRY_F32, x, d23, 2, 0, 0, y);
    assert_memory_equal(y, ((const int64_t[]){1, 0, 0}), 24);
    cpu_arg_reduce(1, FERRY_F32, x, d23, 2, 0, 1, y);
    assert_memory_equal(y, ((const int64_t[]){1, 0, 1}), 24);
    /* NaN wins (numpy) */
    const float nn[4] = {1, NAN, 5, NAN};
    const int64_t d4[] = {4};
    cpu_arg_reduce(1, FERRY_F32, nn, d4, 1, 0, 0, y);
    assert_int_equal(y[0], 1);
    cpu_arg_reduce(0, FERRY_F32, nn, d4, 1, 0, 1, y);
    assert_int_equal(y[0], 3);
    const int64_t ix[4] = {-5, 7, 7, -5};
    cpu_arg_reduce(0, FERRY_I64, ix, d4, 1, 0, 1, y);
    assert_int_equal(y[0], 3);
    cpu_arg_reduce(1, FERRY_I64, ix, d4, 1, 0, 0, y);
    assert_int_equal(y[0], 1);

    for (int t = 0; t < 400; t++) {
        int nd = (int)irand(1, 4), axis = (int)irand(0, nd - 1);
        int64_t xd[MAXD], xi[MAXD];
        rand_dims(xd, nd, 6);
        if (t % 5 == 0) /* past the 2048-wide column blocks */
            xd[nd - 1] = irand(2040, 2100);
        for (int k = 0; k < nd - 1 && numel(xd, nd) > 20000; k++)
            xd[k] = 1;
        int is_max = t & 1, last = t >> 1 & 1;
        ferry_dtype dt = t % 3 == 0 ? FERRY_F32 : t % 3 == 1 ? FERRY_I64 : FERRY_I32;
        int64_t n = numel(xd, nd), no = n / xd[axis];
        int64_t *iv = alloc(n, 8), *yv = alloc(no, 8);
        void *X = alloc(n, 8);
        for (int64_t i = 0; i < n; i++) {
            iv[i] = irand(-3, 3);
            if (dt == FERRY_F32)
                ((float *)X)[i] = (float)iv[i];
            else if (dt == FERRY_I64)
                ((int64_t *)X)[i] = iv[i];
            else
                ((int32_t *)X)[i] = (int32_t)iv[i];
        }
        cpu_arg_reduce(is_max, dt, X, xd, nd, axis, last, yv);
        int64_t od[MAXD];
        int on = 0;
        for (int k = 0; k < nd; k++)
            if (k != axis)
                od[on++] = xd[k];
        for (int64_t o = 0; o < no; o++) {
            int64_t oi[MAXD];
            unravel(o, od, on, oi);
            for (int k = 0, j = 0; k < nd; k++)
                xi[k] = k == axis ? 0 : oi[j++];
            int64_t best = 0, bv = iv[ravel(xi, xd, nd)];
            for (int64_t a = 1; a < xd[axis]; a++) {
                xi[axis] = a;
                int64_t v = iv[ravel(xi, xd, nd)];
                if (is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv))) {
                    bv = v;
                    best = a;
                }
            }
            assert_int_equal(yv[o], best);
        }
        free(iv);
        free(yv);
        free(X);
    }
}

/* Jobs large enough to be split over the backend's threads: whole inner
 * loops per chunk, and (few, long inner loops) pieces of them. */
static void test_parallel_large(void **state)
{
    (void)state;
    const int64_t shapes[3][2][2] = {
        {{600, 1001}, {1, 1001}}, /* many rows: chunks of rows */
        {{2, 300001}, {2, 1}},    /* two long rows: chunks split rows */
        {{1, 1 << 20}, {1, 1}},   /* one flat loop against a scalar */
    };
    for (int s = 0; s < 3; s++) {
        const int64_t *yd = shapes[s][0], *bd = shapes[s][1];
        int64_t n = yd[0] * yd[1], nb = bd[0] * bd[1];
        float *a = alloc(n, 4), *b = alloc(nb, 4), *y = alloc(n, 4);
        uint8_t *c = alloc(n, 1);
        for (int64_t i = 0; i < n; i++)
            a[i] = frand(-4, 4);
        for (int64_t i = 0; i < nb; i++)
            b[i] = frand(-4, 4);
        cpu_binary_arith(CPU_BIN_SUB, FERRY_F32, 0, a, yd, 2, b, bd, 2, y, yd, 2);
        cpu_compare(CPU_CMP_GT, FERRY_F32, a, yd, 2, b, bd, 2, c, yd, 2);
        for (int64_t i = 0; i < n; i++) {
            int64_t r = i / yd[1], col = i % yd[1];
            float bv = b[(bd[0] == 1 ? 0 : r) * bd[1] + (bd[1] == 1 ? 0 : col)];
            if (y[i] != a[i] - bv || c[i] != (a[i] > bv))
                fail_msg("shape %d: [%lld] %g - %g = %g, > %d", s, (long long)i, a[i], bv, y[i],
                         c[i]);
        }
        cpu_unary_f32(CPU_UN_EXP, a, y, n, 0, 0);
        for (int64_t i = 0; i < n; i++)
            assert_true(y[i] == expf(a[i]));
        free(a);
        free(b);
        free(y);
        free(c);
    }
    /* reductions split by outputs: rows ([600, 1001] over the last dim,
     * LogSumExp's two passes) and rows of columns ([64, 1000, 16] over
     * the middle) */
    const int64_t rd[2] = {600, 1001}, md[3] = {64, 1000, 16};
    float *x = alloc(64 * 1000 * 16, 4), *y = alloc(1024, 4);
    for (int64_t i = 0; i < 64 * 1000 * 16; i++)
        x[i] = frand(-3, 3);
    cpu_reduce(CPU_RED_LOG_SUM_EXP, FERRY_F32, x, rd, 2, (const int[]){0, 1}, y);
    for (int64_t r = 0; r < 600; r++) {
        double m = -INFINITY, e = 0;
        for (int64_t k = 0; k < 1001; k++)
            m = fmax(m, x[r * 1001 + k]);
        for (int64_t k = 0; k < 1001; k++)
            e += exp(x[r * 1001 + k] - m);
        assert_float_equal(y[r], m + log(e), 1e-5);
    }
    cpu_reduce(CPU_RED_SUM, FERRY_F32, x, md, 3, (const int[]){0, 1, 0}, y);
    for (int64_t o = 0; o < 64; o++)
        for (int64_t c = 0; c < 16; c++) {
            double sum = 0;
            for (int64_t k = 0; k < 1000; k++)
                sum += x[(o * 1000 + k) * 16 + c];
            assert_float_equal(y[o * 16 + c], sum, 1e-3);
        }
    free(x);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_f32),      cmocka_unit_test(test_unary_int),
        cmocka_unit_test(test_int_div_mod),    cmocka_unit_test(test_binary_random),
        cmocka_unit_test(test_variadic),       cmocka_unit_test(test_pow),
        cmocka_unit_test(test_compare),        cmocka_unit_test(test_reduce_hand),
        cmocka_unit_test(test_reduce_random),  cmocka_unit_test(test_arg_reduce),
        cmocka_unit_test(test_parallel_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
