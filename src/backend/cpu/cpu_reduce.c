/*
 * cpu_reduce.c - the reduction kernels of cpu_elem.h (Reduce*, ArgMax,
 * ArgMin). X is viewed as kept and reduced blocks with a contiguous inner
 * dim: reduced inner dims become row reductions in independent lanes (the
 * compiler may not reorder one FP sum, but it vectorizes many), kept
 * inner dims accumulate whole rows into a block of accumulators. f32
 * passes with several outputs split them over the backend's threads.
 */
#include "backend/cpu/cpu_elem.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_parallel.h"

/* Without no-trapping-math GCC keeps the NaN-aware selects of Max, Min
 * and ArgMax as branches (an arm might raise an FP exception, which
 * nothing here observes) and those loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/* Passes reading at least twice this many elements are split over the
 * backend's threads. */
#define RED_GRAIN 32768

/* ------------------------------------------------------------ reductions */

/* X's dims merged into kept and reduced blocks (size-1 dims dropped,
 * neighbours of one kind merged); the last merged dim is the contiguous
 * inner loop, either reduced (rows reduce to one value) or kept (rows of
 * Y accumulate whole). The other dims, with their X strides, are walked
 * by odometers: kd/ks the kept ones in Y's order, rd/rs the reduced. */
typedef struct red_plan {
    int nk, nr, inner_red;
    int64_t L;     /* inner length */
    int64_t out_n; /* elements of Y */
    int64_t count; /* elements reduced into each */
    int64_t rows;  /* inner loops per output (product of rd) */
    int64_t kd[FERRY_MAX_DIMS], ks[FERRY_MAX_DIMS], rd[FERRY_MAX_DIMS], rs[FERRY_MAX_DIMS];
} red_plan;

static void red_plan_init(red_plan *p, const int64_t *xd, int nd, const int *reduce)
{
    int64_t dim[FERRY_MAX_DIMS] = {0}, st[FERRY_MAX_DIMS];
    int red[FERRY_MAX_DIMS], n = 0;
    p->count = 1;
    p->out_n = 1;
    for (int d = 0; d < nd; d++) {
        if (reduce[d])
            p->count *= xd[d];
        else
            p->out_n *= xd[d];
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
    cpu_dense_strides(dim, n, st);
    p->nk = p->nr = 0;
    p->rows = 1;
    if (n == 0) {
        p->inner_red = 0;
        p->L = 1;
        return;
    }
    p->inner_red = red[n - 1];
    p->L = dim[n - 1];
    for (int d = 0; d < n - 1; d++) {
        if (red[d]) {
            p->rd[p->nr] = dim[d];
            p->rs[p->nr++] = st[d];
            p->rows *= dim[d];
        } else {
            p->kd[p->nk] = dim[d];
            p->ks[p->nk++] = st[d];
        }
    }
}

static inline void odo_next(int n, const int64_t *d, const int64_t *s, int64_t *idx, int64_t *off)
{
    for (int i = n - 1; i >= 0; i--) {
        idx[i]++;
        *off += s[i];
        if (idx[i] < d[i])
            return;
        *off -= s[i] * d[i];
        idx[i] = 0;
    }
}

/* f32 reductions: each op is map (applied to every element) then combine,
 * accumulated in double, then a final step. */
enum { MAP_ID, MAP_ABS, MAP_SQ, MAP_EXP };
enum { COMB_ADD, COMB_MUL, COMB_MAX, COMB_MIN };

#define C_ADD(a, v) ((a) + (v))
#define C_MUL(a, v) ((a) * (v))
#define C_MAX(a, v) ((((v) > (a)) | ((v) != (v))) ? (v) : (a))
#define C_MIN(a, v) ((((v) < (a)) | ((v) != (v))) ? (v) : (a))
#define M_ID(v) (v)
#define M_ABS(v) fabs(v)
#define M_SQ(v) ((v) * (v))
#define M_EXP(v) exp((v)-sh)

/* *acc = comb(*acc, map(x[j])) over a contiguous row, in ROW_LANES
 * independent lanes: the lane loop is a plain elementwise loop, which
 * GCC vectorizes where it will not vectorize one ordered FP sum or a
 * NaN-aware max. */
#define ROW_LANES 32
#define ROW_LOOP(MAP, COMB) ROW_LOOP_T(double, MAP, COMB)
#define ROW_LOOP_T(T, MAP, COMB)                                                                   \
    do {                                                                                           \
        T l[ROW_LANES];                                                                            \
        for (int k = 0; k < ROW_LANES; k++)                                                        \
            l[k] = init;                                                                           \
        int64_t j = 0;                                                                             \
        for (; j + ROW_LANES <= L; j += ROW_LANES)                                                 \
            for (int k = 0; k < ROW_LANES; k++) {                                                  \
                T v = MAP((T)x[j + k]);                                                            \
                l[k] = COMB(l[k], v);                                                              \
            }                                                                                      \
        for (; j < L; j++) {                                                                       \
            T v = MAP((T)x[j]);                                                                    \
            l[0] = COMB(l[0], v);                                                                  \
        }                                                                                          \
        double r = *acc;                                                                           \
        for (int k = 0; k < ROW_LANES; k++) {                                                      \
            double v = l[k];                                                                       \
            r = COMB(r, v);                                                                        \
        }                                                                                          \
        *acc = r;                                                                                  \
    } while (0)

static void row_f32(const float *restrict x, int64_t L, int map, int comb, double init, double sh,
                    double *acc)
{
    switch (comb) {
    case COMB_MUL: ROW_LOOP(M_ID, C_MUL); break;
    /* max and min are exact in f32: twice the lanes of a vector */
    case COMB_MAX: ROW_LOOP_T(float, M_ID, C_MAX); break;
    case COMB_MIN: ROW_LOOP_T(float, M_ID, C_MIN); break;
    default:
        switch (map) {
        case MAP_ABS: ROW_LOOP(M_ABS, C_ADD); break;
        case MAP_SQ: ROW_LOOP(M_SQ, C_ADD); break;
        case MAP_EXP: ROW_LOOP(M_EXP, C_ADD); break;
        default: ROW_LOOP(M_ID, C_ADD); break;
        }
    }
}

/* acc[c] = comb(acc[c], map(x[c])) for c < w; MAP_EXP shifts by shv[c]. */
#define VEC_LOOP(MAP, COMB)                                                                        \
    do {                                                                                           \
        for (int64_t c = 0; c < w; c++) {                                                          \
            double sh = shv ? shv[c] : 0.0;                                                        \
            (void)sh;                                                                              \
            double v = MAP((double)x[c]);                                                          \
            acc[c] = COMB(acc[c], v);                                                              \
        }                                                                                          \
    } while (0)

static void vec_f32(double *restrict acc, const float *restrict x, int64_t w, int map, int comb,
                    const float *shv)
{
    switch (comb) {
    case COMB_MUL: VEC_LOOP(M_ID, C_MUL); break;
    case COMB_MAX: VEC_LOOP(M_ID, C_MAX); break;
    case COMB_MIN: VEC_LOOP(M_ID, C_MIN); break;
    default:
        switch (map) {
        case MAP_ABS: VEC_LOOP(M_ABS, C_ADD); break;
        case MAP_SQ: VEC_LOOP(M_SQ, C_ADD); break;
        case MAP_EXP: VEC_LOOP(M_EXP, C_ADD); break;
        default: VEC_LOOP(M_ID, C_ADD); break;
        }
    }
}

enum { FIN_ID, FIN_MEAN, FIN_SQRT, FIN_LOG, FIN_LSE };

static float red_finish(double s, int fin, double inv, float shift)
{
    switch (fin) {
    case FIN_MEAN: return (float)(s * inv);
    case FIN_SQRT: return (float)sqrt(s);
    case FIN_LOG: return (float)log(s);
    case FIN_LSE: return isfinite(shift) ? (float)(shift + log(s)) : shift;
    default: return (float)s;
    }
}

/* Columns accumulated at once when the reduced dims are outside the
 * inner one: 16 KiB of double accumulators stay in L1/L2 while every
 * reduced row streams 8 KiB of X in order. (256 made a [4096, 3072]
 * column sum take 12 strided passes over X.) */
#define RED_BLOCK 2048

/* One pass of a f32 reduction over outputs [o0, o1) (rows of L outputs
 * when the inner dim is kept); for MAP_EXP, Y holds each output's shift
 * (the max) on entry. */
typedef struct red_job {
    const red_plan *p;
    const float *X;
    float *Y;
    int map, comb, fin;
    double init;
    int64_t nout, per; /* outputs (or rows of them), and per chunk */
} red_job;

static void red_range_f32(const red_job *j, int64_t o0, int64_t o1)
{
    const red_plan *p = j->p;
    const float *X = j->X;
    float *Y = j->Y;
    int map = j->map, comb = j->comb, fin = j->fin;
    double init = j->init, inv = 1.0 / (double)p->count;
    int64_t L = p->L, kidx[FERRY_MAX_DIMS] = {0}, koff = 0, q = o0;
    for (int i = p->nk - 1; i >= 0; i--) { /* seek the kept odometer to o0 */
        kidx[i] = q % p->kd[i];
        q /= p->kd[i];
        koff += kidx[i] * p->ks[i];
    }
    for (int64_t o = o0; o < o1; o++) {
        if (p->inner_red) {
            double s = init, sh = map == MAP_EXP ? (double)Y[o] : 0.0;
            int64_t ridx[FERRY_MAX_DIMS] = {0}, roff = 0;
            for (int64_t r = 0; r < p->rows; r++) {
                row_f32(X + koff + roff, L, map, comb, init, sh, &s);
                odo_next(p->nr, p->rd, p->rs, ridx, &roff);
            }
            Y[o] = red_finish(s, fin, inv, fin == FIN_LSE ? Y[o] : 0.0f);
        } else {
            float *y = Y + o * L;
            for (int64_t c0 = 0; c0 < L; c0 += RED_BLOCK) {
                int64_t w = L - c0 < RED_BLOCK ? L - c0 : RED_BLOCK;
                double acc[RED_BLOCK];
                for (int64_t c = 0; c < w; c++)
                    acc[c] = init;
                int64_t ridx[FERRY_MAX_DIMS] = {0}, roff = 0;
                for (int64_t r = 0; r < p->rows; r++) {
                    vec_f32(acc, X + koff + roff + c0, w, map, comb,
                            map == MAP_EXP ? y + c0 : NULL);
                    odo_next(p->nr, p->rd, p->rs, ridx, &roff);
                }
                for (int64_t c = 0; c < w; c++)
                    y[c0 + c] = red_finish(acc[c], fin, inv, fin == FIN_LSE ? y[c0 + c] : 0.0f);
            }
        }
        odo_next(p->nk, p->kd, p->ks, kidx, &koff);
    }
}

static void red_chunk(void *arg, int64_t c)
{
    const red_job *j = arg;
    int64_t o0 = c * j->per, o1 = o0 + j->per < j->nout ? o0 + j->per : j->nout;
    red_range_f32(j, o0, o1);
}

/* Splits the outputs over the backend's threads when the pass reads at
 * least 2 * RED_GRAIN elements and has more than one output (a reduction
 * to one value stays on the caller). */
static void red_pass_f32(const red_plan *p, const float *X, float *Y, int map, int comb,
                         double init, int fin)
{
    red_job j = {p, X, Y, map, comb, fin, init, p->inner_red ? p->out_n : p->out_n / p->L, 1};
    int64_t work = p->out_n * p->count;
    int T = work >= 2 * RED_GRAIN && j.nout > 1 ? cpu_parallel_available() : 1;
    if (T <= 1) {
        red_range_f32(&j, 0, j.nout);
        return;
    }
    int64_t want = (int64_t)T * 4;
    want = want < work / RED_GRAIN ? want : work / RED_GRAIN;
    want = want < j.nout ? want : j.nout;
    j.per = (j.nout + want - 1) / want;
    cpu_parallel_for(red_chunk, &j, (j.nout + j.per - 1) / j.per, T);
}

static void reduce_f32(cpu_reduce_op op, const red_plan *p, const float *X, float *Y)
{
    switch (op) {
    case CPU_RED_SUM: red_pass_f32(p, X, Y, MAP_ID, COMB_ADD, 0.0, FIN_ID); break;
    case CPU_RED_MEAN: red_pass_f32(p, X, Y, MAP_ID, COMB_ADD, 0.0, FIN_MEAN); break;
    case CPU_RED_MAX: red_pass_f32(p, X, Y, MAP_ID, COMB_MAX, -INFINITY, FIN_ID); break;
    case CPU_RED_MIN: red_pass_f32(p, X, Y, MAP_ID, COMB_MIN, INFINITY, FIN_ID); break;
    case CPU_RED_PROD: red_pass_f32(p, X, Y, MAP_ID, COMB_MUL, 1.0, FIN_ID); break;
    case CPU_RED_L1: red_pass_f32(p, X, Y, MAP_ABS, COMB_ADD, 0.0, FIN_ID); break;
    case CPU_RED_L2: red_pass_f32(p, X, Y, MAP_SQ, COMB_ADD, 0.0, FIN_SQRT); break;
    case CPU_RED_SUM_SQUARE: red_pass_f32(p, X, Y, MAP_SQ, COMB_ADD, 0.0, FIN_ID); break;
    case CPU_RED_LOG_SUM: red_pass_f32(p, X, Y, MAP_ID, COMB_ADD, 0.0, FIN_LOG); break;
    case CPU_RED_LOG_SUM_EXP:
        /* max first (into Y), then log(sum(exp(x - max))) + max: no
         * overflow for large x. */
        red_pass_f32(p, X, Y, MAP_ID, COMB_MAX, -INFINITY, FIN_ID);
        red_pass_f32(p, X, Y, MAP_EXP, COMB_ADD, 0.0, FIN_LSE);
        break;
    }
}

/* Integer reductions accumulate in int64 with wrapping arithmetic (an
 * int32 sum does not wrap at 32 bits; it is stored truncated, as a cast
 * would). */
#define I_ADD(a, v) (int64_t)((uint64_t)(a) + (uint64_t)(v))
#define I_MUL(a, v) (int64_t)((uint64_t)(a) * (uint64_t)(v))
#define I_MAX(a, v) ((v) > (a) ? (v) : (a))
#define I_MIN(a, v) ((v) < (a) ? (v) : (a))
#define IM_ID(v) (v)
#define IM_ABS(v) ((v) < 0 ? (int64_t)(0u - (uint64_t)(v)) : (v))
#define IM_SQ(v) I_MUL(v, v)

#define RED_INT(T, MAP, COMB)                                                                      \
    do {                                                                                           \
        const T *X_ = X;                                                                           \
        T *Y_ = Y;                                                                                 \
        int64_t kidx[FERRY_MAX_DIMS] = {0}, koff = 0;                                              \
        int64_t L = p->L, nout = p->inner_red ? p->out_n : p->out_n / L;                           \
        for (int64_t o = 0; o < nout; o++) {                                                       \
            if (p->inner_red) {                                                                    \
                int64_t s = init, ridx[FERRY_MAX_DIMS] = {0}, roff = 0;                            \
                for (int64_t r = 0; r < p->rows; r++) {                                            \
                    const T *x = X_ + koff + roff;                                                 \
                    for (int64_t j = 0; j < L; j++) {                                              \
                        int64_t v = x[j];                                                          \
                        s = COMB(s, MAP(v));                                                       \
                    }                                                                              \
                    odo_next(p->nr, p->rd, p->rs, ridx, &roff);                                    \
                }                                                                                  \
                Y_[o] = (T)(mean ? s / p->count : s);                                              \
            } else {                                                                               \
                for (int64_t c0 = 0; c0 < L; c0 += RED_BLOCK) {                                    \
                    int64_t w = L - c0 < RED_BLOCK ? L - c0 : RED_BLOCK;                           \
                    int64_t acc[RED_BLOCK], ridx[FERRY_MAX_DIMS] = {0}, roff = 0;                  \
                    for (int64_t c = 0; c < w; c++)                                                \
                        acc[c] = init;                                                             \
                    for (int64_t r = 0; r < p->rows; r++) {                                        \
                        const T *restrict x = X_ + koff + roff + c0;                               \
                        for (int64_t c = 0; c < w; c++) {                                          \
                            int64_t v = x[c];                                                      \
                            acc[c] = COMB(acc[c], MAP(v));                                         \
                        }                                                                          \
                        odo_next(p->nr, p->rd, p->rs, ridx, &roff);                                \
                    }                                                                              \
                    for (int64_t c = 0; c < w; c++)                                                \
                        Y_[o * L + c0 + c] = (T)(mean ? acc[c] / p->count : acc[c]);               \
                }                                                                                  \
            }                                                                                      \
            odo_next(p->nk, p->kd, p->ks, kidx, &koff);                                            \
        }                                                                                          \
    } while (0)

#define RED_INT_OPS(T, TMIN, TMAX)                                                                 \
    do {                                                                                           \
        switch (op) {                                                                              \
        case CPU_RED_MAX:                                                                          \
            init = TMIN;                                                                           \
            RED_INT(T, IM_ID, I_MAX);                                                              \
            break;                                                                                 \
        case CPU_RED_MIN:                                                                          \
            init = TMAX;                                                                           \
            RED_INT(T, IM_ID, I_MIN);                                                              \
            break;                                                                                 \
        case CPU_RED_PROD:                                                                         \
            init = 1;                                                                              \
            RED_INT(T, IM_ID, I_MUL);                                                              \
            break;                                                                                 \
        case CPU_RED_L1: RED_INT(T, IM_ABS, I_ADD); break;                                         \
        case CPU_RED_SUM_SQUARE: RED_INT(T, IM_SQ, I_ADD); break;                                  \
        default: RED_INT(T, IM_ID, I_ADD); break;                                                  \
        }                                                                                          \
    } while (0)

/* SUM, MEAN (truncated toward zero), MAX, MIN, PROD, L1, SUM_SQUARE of
 * int64 or int32. */
static void reduce_int(cpu_reduce_op op, ferry_dtype dt, const red_plan *p, const void *X, void *Y)
{
    int64_t init = 0;
    int mean = op == CPU_RED_MEAN;
    if (dt == FERRY_I32)
        RED_INT_OPS(int32_t, INT32_MIN, INT32_MAX);
    else
        RED_INT_OPS(int64_t, INT64_MIN, INT64_MAX);
}

static double red_identity(cpu_reduce_op op)
{
    switch (op) {
    case CPU_RED_MEAN: return NAN;
    case CPU_RED_MAX:
    case CPU_RED_LOG_SUM:
    case CPU_RED_LOG_SUM_EXP: return -INFINITY;
    case CPU_RED_MIN: return INFINITY;
    case CPU_RED_PROD: return 1.0;
    default: return 0.0;
    }
}

void cpu_reduce(cpu_reduce_op op, ferry_dtype dt, const void *X, const int64_t *xd, int nd,
                const int *reduce, void *Y)
{
    red_plan p;
    red_plan_init(&p, xd, nd, reduce);
    if (p.out_n == 0)
        return;
    if (p.count == 0) {
        for (int64_t i = 0; i < p.out_n; i++) {
            if (dt == FERRY_F32)
                ((float *)Y)[i] = (float)red_identity(op);
            else if (dt == FERRY_I32)
                ((int32_t *)Y)[i] = op == CPU_RED_MAX    ? INT32_MIN
                                    : op == CPU_RED_MIN  ? INT32_MAX
                                    : op == CPU_RED_PROD ? 1
                                                         : 0;
            else
                ((int64_t *)Y)[i] = op == CPU_RED_MAX    ? INT64_MIN
                                    : op == CPU_RED_MIN  ? INT64_MAX
                                    : op == CPU_RED_PROD ? 1
                                                         : 0;
        }
        return;
    }
    if (dt == FERRY_F32)
        reduce_f32(op, &p, X, Y);
    else
        reduce_int(op, dt, &p, X, Y);
}

/* ----------------------------------------------------------- arg reduce */

/* Whether v replaces the best b so far. */
#define BETTER_F(v, b)                                                                             \
    ((v) != (v) ? ((b) == (b) || last)                                                             \
                : ((b) == (b) &&                                                                   \
                   (is_max ? (last ? (v) >= (b) : (v) > (b)) : (last ? (v) <= (b) : (v) < (b)))))
#define BETTER_I(v, b) (is_max ? (last ? (v) >= (b) : (v) > (b)) : (last ? (v) <= (b) : (v) < (b)))

/* ArgMax/ArgMin of one contiguous row in two passes: the extreme in
 * ROW_LANES independent lanes (a loop that vectorizes, NaN sticky as in
 * C_MAX), then the first or last position holding it. */
#define ARG_ROW_NAME(T, KIND) arg_row_##KIND##_##T
#define ARG_ROW_FN(T, KIND, COMB)                                                                  \
    static int64_t ARG_ROW_NAME(T, KIND)(const T *restrict x, int64_t A, int last)                 \
    {                                                                                              \
        T l[ROW_LANES];                                                                            \
        for (int k = 0; k < ROW_LANES; k++)                                                        \
            l[k] = x[0];                                                                           \
        int64_t j = 0;                                                                             \
        for (; j + ROW_LANES <= A; j += ROW_LANES)                                                 \
            for (int k = 0; k < ROW_LANES; k++)                                                    \
                l[k] = COMB(l[k], x[j + k]);                                                       \
        T m = l[0];                                                                                \
        for (int k = 1; k < ROW_LANES; k++)                                                        \
            m = COMB(m, l[k]);                                                                     \
        for (; j < A; j++)                                                                         \
            m = COMB(m, x[j]);                                                                     \
        int is_nan = m != m;                                                                       \
        if (last) {                                                                                \
            for (j = A - 1; j > 0; j--)                                                            \
                if (x[j] == m || (is_nan && x[j] != x[j]))                                         \
                    break;                                                                         \
            return j;                                                                              \
        }                                                                                          \
        for (j = 0; j < A - 1; j++)                                                                \
            if (x[j] == m || (is_nan && x[j] != x[j]))                                             \
                break;                                                                             \
        return j;                                                                                  \
    }

ARG_ROW_FN(float, max, C_MAX)
ARG_ROW_FN(float, min, C_MIN)
ARG_ROW_FN(int64_t, max, C_MAX)
ARG_ROW_FN(int64_t, min, C_MIN)
ARG_ROW_FN(int32_t, max, C_MAX)
ARG_ROW_FN(int32_t, min, C_MIN)

#define ARG_T(T, BETTER)                                                                           \
    do {                                                                                           \
        const T *x_ = X;                                                                           \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xo = x_ + o * A * inner;                                                      \
            int64_t *yo = Y + o * inner;                                                           \
            if (inner == 1) {                                                                      \
                yo[0] = is_max ? ARG_ROW_NAME(T, max)(xo, A, last)                                 \
                               : ARG_ROW_NAME(T, min)(xo, A, last);                                \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t c0 = 0; c0 < inner; c0 += RED_BLOCK) {                                    \
                int64_t w = inner - c0 < RED_BLOCK ? inner - c0 : RED_BLOCK;                       \
                T bv[RED_BLOCK];                                                                   \
                for (int64_t c = 0; c < w; c++) {                                                  \
                    bv[c] = xo[c0 + c];                                                            \
                    yo[c0 + c] = 0;                                                                \
                }                                                                                  \
                for (int64_t j = 1; j < A; j++) {                                                  \
                    const T *xr = xo + j * inner + c0;                                             \
                    for (int64_t c = 0; c < w; c++)                                                \
                        if (BETTER(xr[c], bv[c])) {                                                \
                            bv[c] = xr[c];                                                         \
                            yo[c0 + c] = j;                                                        \
                        }                                                                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

void cpu_arg_reduce(int is_max, ferry_dtype dt, const void *X, const int64_t *xd, int nd, int axis,
                    int select_last, int64_t *Y)
{
    int64_t outer = 1, inner = 1, A = xd[axis];
    int last = select_last;
    for (int d = 0; d < axis; d++)
        outer *= xd[d];
    for (int d = axis + 1; d < nd; d++)
        inner *= xd[d];
    assert(A >= 1);
    switch (dt) {
    case FERRY_F32: ARG_T(float, BETTER_F); break;
    case FERRY_I32: ARG_T(int32_t, BETTER_I); break;
    default: ARG_T(int64_t, BETTER_I); break;
    }
}
