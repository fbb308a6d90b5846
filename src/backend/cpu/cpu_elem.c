/*
 * cpu_elem.c - elementwise, comparison and logical kernels (contracts in
 * cpu_elem.h; the reductions are in cpu_reduce.c). Broadcasting kernels
 * run a cpu_iter over the output; the inner loop of each is specialized
 * on its input strides (both 1, one 0, both 0) so that each variant has
 * unit or zero strides and vectorizes.
 */
#include "backend/cpu/cpu_elem.h"

#include "backend/cpu/cpu_data.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* Without no-trapping-math GCC keeps the selects of the clamps and
 * Min/Max as branches (an arm might raise an FP exception, which
 * nothing here observes) and those loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/* Elementwise jobs of at least twice this many elements are split over
 * the backend's threads (cpu_iter_run). */
#define ELEM_GRAIN 32768

static size_t dtype_size(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_I64: return 8;
    case FERRY_F32:
    case FERRY_I32: return 4;
    default: return 1;
    }
}

/* ----------------------------------------------------------------- unary */

#define UN_LOOP(EXPR)                                                                              \
    do {                                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float v = X[i];                                                                        \
            Y[i] = (EXPR);                                                                         \
        }                                                                                          \
    } while (0)

static inline float clampf(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

static inline float softplusf(float v)
{
    /* log(1 + e^v) without overflow: v + log(1 + e^-v) for v > 0. */
    return v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v));
}

static void unary_f32_loop(cpu_unary_op op, const float *X, float *Y, int64_t n, float a, float b)
{
    switch (op) {
    case CPU_UN_NEG: UN_LOOP(-v); break;
    case CPU_UN_ABS: UN_LOOP(fabsf(v)); break;
    case CPU_UN_SIGN: UN_LOOP(v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v); break;
    case CPU_UN_EXP: UN_LOOP(expf(v)); break;
    case CPU_UN_LOG: UN_LOOP(logf(v)); break;
    case CPU_UN_RECIPROCAL: UN_LOOP(1.0f / v); break;
    case CPU_UN_FLOOR: UN_LOOP(floorf(v)); break;
    case CPU_UN_CEIL: UN_LOOP(ceilf(v)); break;
    case CPU_UN_ROUND: UN_LOOP(nearbyintf(v)); break;
    case CPU_UN_SIN: UN_LOOP(sinf(v)); break;
    case CPU_UN_COS: UN_LOOP(cosf(v)); break;
    case CPU_UN_HARD_SIGMOID: UN_LOOP(clampf(a * v + b, 0.0f, 1.0f)); break;
    case CPU_UN_HARD_SWISH: UN_LOOP(v * clampf(v * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f)); break;
    case CPU_UN_CLIP: UN_LOOP(clampf(v, a, b)); break;
    case CPU_UN_SOFTPLUS: UN_LOOP(softplusf(v)); break;
    case CPU_UN_MISH: UN_LOOP(v * tanhf(softplusf(v))); break;
    case CPU_UN_ELU: UN_LOOP(v > 0.0f ? v : a * expm1f(v)); break;
    case CPU_UN_SELU: UN_LOOP(b * (v > 0.0f ? v : a * expm1f(v))); break;
    case CPU_UN_CELU: UN_LOOP(v > 0.0f ? v : a * expm1f(v / a)); break;
    case CPU_UN_THRESHOLDED_RELU: UN_LOOP(v > a ? v : 0.0f); break;
    case CPU_UN_SOFTSIGN: UN_LOOP(v / (1.0f + fabsf(v))); break;
    case CPU_UN_SHRINK: UN_LOOP(v < -a ? v + b : v > a ? v - b : 0.0f); break;
    }
}

typedef struct unary_job {
    cpu_unary_op op;
    const float *X;
    float *Y;
    float a, b;
} unary_job;

static void unary_body(void *arg, cpu_iter *it, int64_t count)
{
    const unary_job *j = arg;
    (void)count; /* a flat iterator: one inner loop */
    unary_f32_loop(j->op, j->X + it->off[1], j->Y + it->off[0], it->inner, j->a, j->b);
}

void cpu_unary_f32(cpu_unary_op op, const float *X, float *Y, int64_t n, float a, float b)
{
    const int64_t st[2][CPU_ITER_MAX_DIMS] = {{1}, {1}};
    cpu_iter it;
    cpu_iter_init(&it, &n, 1, 2, st);
    unary_job j = {op, X, Y, a, b};
    cpu_iter_run(&it, unary_body, &j, ELEM_GRAIN / 2);
}

#define UN_INT(T, U)                                                                               \
    do {                                                                                           \
        const T *x = X;                                                                            \
        T *y = Y;                                                                                  \
        T lo = (T)a, hi = (T)b;                                                                    \
        switch (op) {                                                                              \
        case CPU_UN_NEG:                                                                           \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = (T)(0u - (U)x[i]);                                                          \
            break;                                                                                 \
        case CPU_UN_ABS:                                                                           \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = x[i] < 0 ? (T)(0u - (U)x[i]) : x[i];                                        \
            break;                                                                                 \
        case CPU_UN_SIGN:                                                                          \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = (T)((x[i] > 0) - (x[i] < 0));                                               \
            break;                                                                                 \
        case CPU_UN_CLIP:                                                                          \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];                                     \
            break;                                                                                 \
        case CPU_UN_FLOOR:                                                                         \
        case CPU_UN_CEIL:                                                                          \
        case CPU_UN_ROUND:                                                                         \
            if (y != x)                                                                            \
                memcpy(y, x, (size_t)n * sizeof *y);                                               \
            break;                                                                                 \
        default: assert(!"cpu_unary_int: op"); break;                                              \
        }                                                                                          \
    } while (0)

void cpu_unary_int(cpu_unary_op op, ferry_dtype dt, const void *X, void *Y, int64_t n, int64_t a,
                   int64_t b)
{
    if (dt == FERRY_I32)
        UN_INT(int32_t, uint32_t);
    else
        UN_INT(int64_t, uint64_t);
}

/* ------------------------------------------------ broadcasting binaries */

/* One inner loop of n outputs: x from a (stride sa), z from b (stride sb),
 * sa and sb each 0 or 1. */
#define BIN4(TY, T, EXPR)                                                                          \
    do {                                                                                           \
        TY *y = (TY *)yv;                                                                          \
        const T *a = (const T *)av, *b = (const T *)bv;                                            \
        if (sa && sb) {                                                                            \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = a[i], z = b[i];                                                              \
                (void)z;                                                                           \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (sa) {                                                                           \
            T z = b[0];                                                                            \
            (void)z;                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = a[i];                                                                        \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (sb) {                                                                           \
            T x = a[0];                                                                            \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T z = b[i];                                                                        \
                (void)z;                                                                           \
                y[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else {                                                                                   \
            T x = a[0], z = b[0];                                                                  \
            (void)z;                                                                               \
            TY r = (EXPR);                                                                         \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = r;                                                                          \
        }                                                                                          \
    } while (0)

typedef void (*bin_inner_fn)(int op, int flag, void *yv, const void *av, int sa, const void *bv,
                             int sb, int64_t n);

typedef struct bin_job {
    bin_inner_fn fn;
    int op, flag;
    const void *A, *B;
    void *Y;
    int64_t ea, eb, ey;
} bin_job;

static void bin_body(void *arg, cpu_iter *it, int64_t count)
{
    const bin_job *j = arg;
    int sa = cpu_iter_inner_stride(it, 1) != 0, sb = cpu_iter_inner_stride(it, 2) != 0;
    for (int64_t o = 0; o < count; o++) {
        j->fn(j->op, j->flag, (char *)j->Y + it->off[0] * j->ey,
              (const char *)j->A + it->off[1] * j->ea, sa, (const char *)j->B + it->off[2] * j->eb,
              sb, it->inner);
        cpu_iter_next(it);
    }
}

/* Runs fn over Y = A op B broadcast onto yd: ey, ea, eb element sizes. */
static void bin_drive(bin_inner_fn fn, int op, int flag, const void *A, size_t ea,
                      const int64_t *ad, int an, const void *B, size_t eb, const int64_t *bd,
                      int bn, void *Y, size_t ey, const int64_t *yd, int yn)
{
    const int64_t *d[2] = {ad, bd};
    int nn[2] = {an, bn};
    cpu_iter it;
    cpu_iter_broadcast(&it, yd, yn, 2, d, nn);
    bin_job j = {fn, op, flag, A, B, Y, (int64_t)ea, (int64_t)eb, (int64_t)ey};
    cpu_iter_run(&it, bin_body, &j, ELEM_GRAIN);
}

static inline float fmin_nan(float x, float z)
{
    return x < z || x != x ? x : z;
}
static inline float fmax_nan(float x, float z)
{
    return x > z || x != x ? x : z;
}
static inline float fmod_py(float x, float z)
{
    float r = fmodf(x, z);
    return r != 0.0f && (r < 0.0f) != (z < 0.0f) ? r + z : r;
}

static void arith_f32(int op, int fmod_, void *yv, const void *av, int sa, const void *bv, int sb,
                      int64_t n)
{
    switch ((cpu_binary_op)op) {
    case CPU_BIN_ADD: BIN4(float, float, x + z); break;
    case CPU_BIN_SUB: BIN4(float, float, x - z); break;
    case CPU_BIN_MUL: BIN4(float, float, x *z); break;
    case CPU_BIN_DIV: BIN4(float, float, x / z); break;
    case CPU_BIN_MOD:
        if (fmod_)
            BIN4(float, float, fmodf(x, z));
        else
            BIN4(float, float, fmod_py(x, z));
        break;
    case CPU_BIN_MIN: BIN4(float, float, fmin_nan(x, z)); break;
    case CPU_BIN_MAX: BIN4(float, float, fmax_nan(x, z)); break;
    default: break;
    }
}

/* Integer division and remainder made total: x / 0 and x % 0 are 0, and
 * x / -1 wraps instead of trapping on INT64_MIN. */
static inline int64_t div_i64(int64_t x, int64_t z)
{
    return z == 0 ? 0 : z == -1 ? (int64_t)(0u - (uint64_t)x) : x / z;
}
static inline int64_t mod_i64(int64_t x, int64_t z, int fmod_)
{
    if (z == 0 || z == -1)
        return 0;
    int64_t r = x % z;
    return !fmod_ && r != 0 && (r < 0) != (z < 0) ? r + z : r;
}

#define ARITH_INT(NAME, T, U)                                                                      \
    static void NAME(int op, int fmod_, void *yv, const void *av, int sa, const void *bv, int sb,  \
                     int64_t n)                                                                    \
    {                                                                                              \
        switch ((cpu_binary_op)op) {                                                               \
        case CPU_BIN_ADD: BIN4(T, T, (T)((U)x + (U)z)); break;                                     \
        case CPU_BIN_SUB: BIN4(T, T, (T)((U)x - (U)z)); break;                                     \
        case CPU_BIN_MUL: BIN4(T, T, (T)((U)x * (U)z)); break;                                     \
        case CPU_BIN_DIV: BIN4(T, T, (T)div_i64(x, z)); break;                                     \
        case CPU_BIN_MOD: BIN4(T, T, (T)mod_i64(x, z, fmod_)); break;                              \
        case CPU_BIN_MIN: BIN4(T, T, x < z ? x : z); break;                                        \
        case CPU_BIN_MAX: BIN4(T, T, x > z ? x : z); break;                                        \
        default: break;                                                                            \
        }                                                                                          \
    }

ARITH_INT(arith_i64, int64_t, uint64_t)
ARITH_INT(arith_i32, int32_t, uint32_t)

static bin_inner_fn arith_fn(ferry_dtype dt)
{
    return dt == FERRY_F32 ? arith_f32 : dt == FERRY_I32 ? arith_i32 : arith_i64;
}

void cpu_binary_arith(cpu_binary_op op, ferry_dtype dt, int fmod, const void *A, const int64_t *ad,
                      int an, const void *B, const int64_t *bd, int bn, void *Y, const int64_t *yd,
                      int yn)
{
    size_t e = dtype_size(dt);
    bin_drive(arith_fn(dt), (int)op, fmod, A, e, ad, an, B, e, bd, bn, Y, e, yd, yn);
}

void cpu_variadic(cpu_binary_op op, ferry_dtype dt, int n, const void *const *X,
                  const int64_t *const *xd, const int *xn, void *Y, const int64_t *yd, int yn)
{
    size_t e = dtype_size(dt);
    cpu_binary_op bop = op == CPU_BIN_MEAN ? CPU_BIN_ADD : op;
    int64_t total = 1;
    for (int d = 0; d < yn; d++)
        total *= yd[d];
    if (n == 1) {
        /* A broadcast copy: Y = X0 + 0 would turn -0 into +0. */
        cpu_expand(X[0], xd[0], xn[0], Y, yd, yn, e);
    } else {
        cpu_binary_arith(bop, dt, 0, X[0], xd[0], xn[0], X[1], xd[1], xn[1], Y, yd, yn);
        for (int i = 2; i < n; i++)
            cpu_binary_arith(bop, dt, 0, Y, yd, yn, X[i], xd[i], xn[i], Y, yd, yn);
    }
    if (op == CPU_BIN_MEAN && dt == FERRY_F32) {
        float *y = Y, inv = 1.0f / (float)n;
        for (int64_t i = 0; i < total; i++)
            y[i] *= inv;
    }
}

/* ------------------------------------------------------------------ pow */

static inline double load_num(const void *p, ferry_dtype dt, int64_t i)
{
    switch (dt) {
    case FERRY_F32: return ((const float *)p)[i];
    case FERRY_I32: return ((const int32_t *)p)[i];
    default: return (double)((const int64_t *)p)[i];
    }
}

static inline int64_t load_int(const void *p, ferry_dtype dt, int64_t i)
{
    return dt == FERRY_I32 ? ((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

/* x^e in wrapping integer arithmetic; e < 0 gives trunc(1 / x^-e). */
static int64_t ipow(int64_t x, int64_t e)
{
    if (e < 0)
        return x == 1 ? 1 : x == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)x;
    while (e) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

/* Float to integer toward zero, NaN 0, saturating. */
static int64_t trunc_sat(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    v = trunc(v);
    return (int64_t)(v < lo ? lo : v > hi ? hi : v);
}

static void pow_inner(int adt_, int bdt_, void *yv, const void *av, int sa, const void *bv, int sb,
                      int64_t n)
{
    ferry_dtype adt = (ferry_dtype)adt_, bdt = (ferry_dtype)bdt_;
    if (adt == FERRY_F32 && bdt == FERRY_F32) {
        if (!sb && ((const float *)bv)[0] == 2.0f)
            BIN4(float, float, x *x);
        else if (!sb && ((const float *)bv)[0] == 1.0f)
            BIN4(float, float, x);
        else
            BIN4(float, float, powf(x, z));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = i * sa, ib = i * sb;
        if (adt == FERRY_F32) {
            ((float *)yv)[i] = (float)pow(((const float *)av)[ia], load_num(bv, bdt, ib));
            continue;
        }
        int64_t r;
        if (bdt == FERRY_F32)
            r = trunc_sat(pow((double)load_int(av, adt, ia), ((const float *)bv)[ib]),
                          -9223372036854775808.0, 9223372036854774784.0);
        else
            r = ipow(load_int(av, adt, ia), load_int(bv, bdt, ib));
        if (adt == FERRY_I32)
            ((int32_t *)yv)[i] = (int32_t)r;
        else
            ((int64_t *)yv)[i] = r;
    }
}

void cpu_pow(const void *A, ferry_dtype adt, const int64_t *ad, int an, const void *B,
             ferry_dtype bdt, const int64_t *bd, int bn, void *Y, const int64_t *yd, int yn)
{
    bin_drive(pow_inner, (int)adt, (int)bdt, A, dtype_size(adt), ad, an, B, dtype_size(bdt), bd, bn,
              Y, dtype_size(adt), yd, yn);
}

/* ----------------------------------------------------- compare, logical */

#define CMP_FN(NAME, T)                                                                            \
    static void NAME(int op, int flag, void *yv, const void *av, int sa, const void *bv, int sb,   \
                     int64_t n)                                                                    \
    {                                                                                              \
        switch ((cpu_cmp_op)op) {                                                                  \
        case CPU_CMP_EQ: BIN4(uint8_t, T, x == z); break;                                          \
        case CPU_CMP_LT: BIN4(uint8_t, T, x < z); break;                                           \
        case CPU_CMP_LE: BIN4(uint8_t, T, x <= z); break;                                          \
        case CPU_CMP_GT: BIN4(uint8_t, T, x > z); break;                                           \
        case CPU_CMP_GE: BIN4(uint8_t, T, x >= z); break;                                          \
        }                                                                                          \
    }

CMP_FN(cmp_f32, float)
CMP_FN(cmp_i64, int64_t)
CMP_FN(cmp_i32, int32_t)
CMP_FN(cmp_u8, uint8_t)

void cpu_compare(cpu_cmp_op op, ferry_dtype dt, const void *A, const int64_t *ad, int an,
                 const void *B, const int64_t *bd, int bn, uint8_t *Y, const int64_t *yd, int yn)
{
    bin_inner_fn fn = dt == FERRY_F32   ? cmp_f32
                      : dt == FERRY_I64 ? cmp_i64
                      : dt == FERRY_I32 ? cmp_i32
                                        : cmp_u8;
    size_t e = dtype_size(dt);
    bin_drive(fn, (int)op, 0, A, e, ad, an, B, e, bd, bn, Y, 1, yd, yn);
}

static void logic_inner(int op, int flag, void *yv, const void *av, int sa, const void *bv, int sb,
                        int64_t n)
{
    switch ((cpu_logic_op)op) {
    case CPU_LOGIC_AND: BIN4(uint8_t, uint8_t, (x != 0) & (z != 0)); break;
    case CPU_LOGIC_OR: BIN4(uint8_t, uint8_t, (x != 0) | (z != 0)); break;
    case CPU_LOGIC_XOR: BIN4(uint8_t, uint8_t, (x != 0) ^ (z != 0)); break;
    }
}

void cpu_logical(cpu_logic_op op, const uint8_t *A, const int64_t *ad, int an, const uint8_t *B,
                 const int64_t *bd, int bn, uint8_t *Y, const int64_t *yd, int yn)
{
    bin_drive(logic_inner, (int)op, 0, A, 1, ad, an, B, 1, bd, bn, Y, 1, yd, yn);
}

void cpu_not(const uint8_t *X, uint8_t *Y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        Y[i] = X[i] == 0;
}

void cpu_isnan(const float *X, uint8_t *Y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        Y[i] = X[i] != X[i];
}

void cpu_isinf(const float *X, uint8_t *Y, int64_t n, int detect_neg, int detect_pos)
{
    for (int64_t i = 0; i < n; i++)
        Y[i] = (detect_pos && X[i] == INFINITY) || (detect_neg && X[i] == -INFINITY);
}
