/*
 * cpu_data.c - data-movement kernels (contracts in cpu_data.h). Most are a
 * cpu_iter over the output with one strided copy per inner loop; the
 * copy is memcpy when both sides are contiguous and a typed loop on the
 * element size otherwise, so that moving int64 or f32 elements is one
 * load and one store, not a call.
 */
#include "backend/cpu/cpu_data.h"

#include "backend/cpu/cpu_parallel.h"
#include "graph/graph.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* y[i*sy] = x[i*sx] for i < n, T-typed. */
#define COPY_T(T)                                                                                  \
    do {                                                                                           \
        T *y_ = (T *)y;                                                                            \
        const T *x_ = (const T *)x;                                                                \
        if (sy == 1 && sx == 0) {                                                                  \
            T v_ = x_[0];                                                                          \
            for (int64_t i = 0; i < n; i++)                                                        \
                y_[i] = v_;                                                                        \
        } else if (sy == 1 && sx == -1) {                                                          \
            for (int64_t i = 0; i < n; i++)                                                        \
                y_[i] = x_[-i];                                                                    \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++)                                                        \
                y_[i * sy] = x_[i * sx];                                                           \
        }                                                                                          \
    } while (0)

/* Copies n elements of esz bytes from x (element stride sx) to y (sy). */
static void copy_strided(void *y, int64_t sy, const void *x, int64_t sx, int64_t n, size_t esz)
{
    if (n <= 0)
        return;
    if (sy == 1 && sx == 1) {
        memcpy(y, x, (size_t)n * esz);
        return;
    }
    switch (esz) {
    case 1: COPY_T(uint8_t); break;
    case 2: COPY_T(uint16_t); break;
    case 4: COPY_T(uint32_t); break;
    case 8: COPY_T(uint64_t); break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)y + i * sy * (int64_t)esz, (const char *)x + i * sx * (int64_t)esz, esz);
    }
}

/* n copies of the element at v. */
static void fill_elems(void *y, int64_t n, const void *v, size_t esz)
{
    if (n <= 0)
        return;
    copy_strided(y, 1, v, 0, n, esz);
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= d[i];
    return p;
}

/* Copies of at least this many bytes are split over the backend's
 * threads. */
#define COPY_GRAIN_BYTES (256 * 1024)

typedef struct copy_job {
    void *Y;
    const void *X;
    size_t esz;
} copy_job;

static void copy_body(void *arg, cpu_iter *it, int64_t count)
{
    const copy_job *j = arg;
    int64_t sy = cpu_iter_inner_stride(it, 0), sx = cpu_iter_inner_stride(it, 1);
    int64_t e = (int64_t)j->esz;
    for (int64_t o = 0; o < count; o++) {
        copy_strided((char *)j->Y + it->off[0] * e, sy, (const char *)j->X + it->off[1] * e, sx,
                     it->inner, j->esz);
        cpu_iter_next(it);
    }
}

/* Runs a two-operand iterator (op 0 the output, op 1 the input) as strided
 * copies. */
static void iter_copy(const cpu_iter *it, void *Y, const void *X, size_t esz)
{
    copy_job j = {Y, X, esz};
    cpu_iter_run(it, copy_body, &j, COPY_GRAIN_BYTES / (int64_t)esz);
}

/* ------------------------------------------------------------ transpose */

/* y[a*ty + b] = x[a + b*sx] for a < P, b < L, in T x T tiles so that both
 * sides touch a few cache lines per tile. */
#define TILE 16
#define TRANSPOSE_T(T)                                                                             \
    do {                                                                                           \
        T *y_ = (T *)y;                                                                            \
        const T *x_ = (const T *)x;                                                                \
        for (int64_t a0 = 0; a0 < P; a0 += TILE) {                                                 \
            int64_t a1 = a0 + TILE < P ? a0 + TILE : P;                                            \
            for (int64_t b0 = 0; b0 < L; b0 += TILE) {                                             \
                int64_t b1 = b0 + TILE < L ? b0 + TILE : L;                                        \
                for (int64_t a = a0; a < a1; a++)                                                  \
                    for (int64_t b = b0; b < b1; b++)                                              \
                        y_[a * ty + b] = x_[a + b * sx];                                           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void transpose_2d(void *y, int64_t ty, const void *x, int64_t sx, int64_t P, int64_t L,
                         size_t esz)
{
    switch (esz) {
    case 1: TRANSPOSE_T(uint8_t); break;
    case 2: TRANSPOSE_T(uint16_t); break;
    case 4: TRANSPOSE_T(uint32_t); break;
    case 8: TRANSPOSE_T(uint64_t); break;
    default:
        for (int64_t a = 0; a < P; a++)
            copy_strided((char *)y + a * ty * (int64_t)esz, 1, (const char *)x + a * (int64_t)esz,
                         sx, L, esz);
    }
}

typedef struct transpose_job {
    void *Y;
    const void *X;
    int64_t sx, L; /* X's stride along Y's inner dim, and that dim's length */
    size_t esz;
} transpose_job;

/* count blocks of it->inner rows: 2-D transposes of [rows, L]. */
static void transpose_body(void *arg, cpu_iter *it, int64_t count)
{
    const transpose_job *j = arg;
    int64_t ty = cpu_iter_inner_stride(it, 0), e = (int64_t)j->esz;
    for (int64_t o = 0; o < count; o++) {
        transpose_2d((char *)j->Y + it->off[0] * e, ty, (const char *)j->X + it->off[1] * e, j->sx,
                     it->inner, j->L, j->esz);
        cpu_iter_next(it);
    }
}

void cpu_transpose(const void *X, const int64_t *xd, int nd, const int *perm, void *Y, size_t esz)
{
    int64_t yd[FERRY_MAX_DIMS], xs[FERRY_MAX_DIMS], st[2][CPU_ITER_MAX_DIMS];
    cpu_dense_strides(xd, nd, xs);
    for (int i = 0; i < nd; i++) {
        yd[i] = xd[perm[i]];
        st[1][i] = xs[perm[i]];
    }
    cpu_dense_strides(yd, nd, st[0]);
    cpu_iter it;
    cpu_iter_init(&it, yd, nd, 2, (const int64_t(*)[CPU_ITER_MAX_DIMS])st);
    if (it.outer == 0)
        return;
    int64_t sx = cpu_iter_inner_stride(&it, 1);
    /* The dim that walks X contiguously; when it is not the inner one, the
     * pair (that dim, inner dim) is a 2-D transpose done in tiles. */
    int p = -1;
    for (int d = 0; d < it.nd - 1 && sx != 1; d++)
        if (it.st[1][d] == 1)
            p = d;
    if (p < 0) {
        /* Whole contiguous rows ([N,T,H,d] -> [N,H,T,d] copies d at a time). */
        iter_copy(&it, Y, X, esz);
        return;
    }
    /* A second iterator over the other outer dims with dim p innermost:
     * each of its inner loops (or a piece of one, when cpu_iter_run splits
     * few) is a block of rows of dim p, transposed against the inner dim. */
    int64_t dims[CPU_ITER_MAX_DIMS], bst[2][CPU_ITER_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < it.nd - 1; d++) {
        if (d == p)
            continue;
        dims[m] = it.dim[d];
        bst[0][m] = it.st[0][d];
        bst[1][m] = it.st[1][d];
        m++;
    }
    dims[m] = it.dim[p];
    bst[0][m] = it.st[0][p];
    bst[1][m] = 1;
    m++;
    cpu_iter bt;
    cpu_iter_init(&bt, dims, m, 2, (const int64_t(*)[CPU_ITER_MAX_DIMS])bst);
    transpose_job j = {Y, X, sx, it.inner, esz};
    int64_t grain = COPY_GRAIN_BYTES / ((int64_t)esz * it.inner);
    cpu_iter_run(&bt, transpose_body, &j, grain > 0 ? grain : 1);
}

/* --------------------------------------------------------------- gather */

static int64_t load_index(const void *idx, ferry_dtype idt, int64_t i)
{
    return idt == FERRY_I32 ? ((const int32_t *)idx)[i] : ((const int64_t *)idx)[i];
}

int cpu_gather(const void *X, const int64_t *xd, int nd, int axis, const void *idx, ferry_dtype idt,
               int64_t n_idx, void *Y, size_t esz)
{
    int64_t outer = prod(xd, 0, axis), A = xd[axis], inner = prod(xd, axis + 1, nd);
    for (int64_t k = 0; k < n_idx; k++) {
        int64_t j = load_index(idx, idt, k);
        if (j < -A || j >= A)
            return -1;
    }
    size_t chunk = (size_t)inner * esz;
    for (int64_t o = 0; o < outer; o++) {
        const char *x = (const char *)X + (size_t)(o * A) * chunk;
        char *y = (char *)Y + (size_t)(o * n_idx) * chunk;
        if (inner == 1 && esz == 8) {
            for (int64_t k = 0; k < n_idx; k++) {
                int64_t j = load_index(idx, idt, k);
                ((uint64_t *)y)[k] = ((const uint64_t *)x)[j < 0 ? j + A : j];
            }
        } else if (inner == 1 && esz == 4) {
            for (int64_t k = 0; k < n_idx; k++) {
                int64_t j = load_index(idx, idt, k);
                ((uint32_t *)y)[k] = ((const uint32_t *)x)[j < 0 ? j + A : j];
            }
        } else {
            for (int64_t k = 0; k < n_idx; k++) {
                int64_t j = load_index(idx, idt, k);
                memcpy(y + (size_t)k * chunk, x + (size_t)(j < 0 ? j + A : j) * chunk, chunk);
            }
        }
    }
    return 0;
}

int cpu_gather_in_blocks(const void *idx, ferry_dtype idt, int64_t n_idx, int64_t per_sample,
                         int64_t block)
{
    if (per_sample <= 0 || block <= 0)
        return n_idx > 0 ? -1 : 0;
    for (int64_t e = 0; e < n_idx; e++) {
        int64_t lo = e / per_sample * block, j = load_index(idx, idt, e);
        if (j < lo || j >= lo + block)
            return -1;
    }
    return 0;
}

int cpu_gather_elements(const void *X, const int64_t *xd, int nd, int axis, const void *idx,
                        ferry_dtype idt, const int64_t *id, void *Y, size_t esz)
{
    int64_t st[2][CPU_ITER_MAX_DIMS], xs[FERRY_MAX_DIMS];
    cpu_dense_strides(xd, nd, xs);
    cpu_dense_strides(id, nd, st[0]);
    for (int d = 0; d < nd; d++)
        st[1][d] = d == axis ? 0 : xs[d];
    cpu_iter it;
    cpu_iter_init(&it, id, nd, 2, (const int64_t(*)[CPU_ITER_MAX_DIMS])st);
    int64_t A = xd[axis], sa = xs[axis], e = (int64_t)esz;
    int64_t s0 = cpu_iter_inner_stride(&it, 0), s1 = cpu_iter_inner_stride(&it, 1);
    for (int64_t o = 0; o < it.outer; o++) {
        for (int64_t i = 0; i < it.inner; i++) {
            int64_t p = it.off[0] + i * s0, j = load_index(idx, idt, p);
            if (j < -A || j >= A)
                return -1;
            j = j < 0 ? j + A : j;
            memcpy((char *)Y + p * e, (const char *)X + (it.off[1] + i * s1 + j * sa) * e, esz);
        }
        cpu_iter_next(&it);
    }
    return 0;
}

/* ------------------------------------------------------------- gathernd */

int cpu_gather_nd(const void *X, const int64_t *xd, int nd, int bd, const void *idx,
                  ferry_dtype idt, int64_t n_tuples, int k, int64_t block, int64_t per_sample,
                  void *Y, size_t esz)
{
    int64_t xs[FERRY_MAX_DIMS], slice = prod(xd, bd + k, nd), B = prod(xd, 0, bd);
    int64_t per_b = B > 0 ? n_tuples / B : 0, bstride = prod(xd, bd, nd);
    cpu_dense_strides(xd, nd, xs);
    if (block > 0 && per_sample <= 0 && n_tuples > 0)
        return -2; /* tuples that belong to no sample */
    for (int64_t t = 0; t < n_tuples; t++) {
        int64_t off = per_b > 0 ? (t / per_b) * bstride : 0;
        for (int j = 0; j < k; j++) {
            int64_t dim = xd[bd + j], v = load_index(idx, idt, t * k + j);
            if (v < -dim || v >= dim)
                return -1;
            v = v < 0 ? v + dim : v;
            if (j == 0 && block > 0) {
                int64_t s = t / per_sample;
                if (v < s * block || v >= (s + 1) * block)
                    return -2;
            }
            off += v * xs[bd + j];
        }
        memcpy((char *)Y + (size_t)(t * slice) * esz, (const char *)X + (size_t)off * esz,
               (size_t)slice * esz);
    }
    return 0;
}

/* ------------------------------------------------------------ scatternd */

/* y[i] (op)= u[i] over count elements, in the element type T; integer sums
 * and products wrap (computed in the unsigned type UT), as a backend's
 * would, rather than overflow. */
#define SCATTER_COMBINE(T, UT)                                                                     \
    do {                                                                                           \
        T *y = (T *)Y;                                                                             \
        const T *u = (const T *)U;                                                                 \
        for (int64_t i = 0; i < count; i++)                                                        \
            switch (reduction) {                                                                   \
            case SCATTER_ADD: y[i] = (T)((UT)y[i] + (UT)u[i]); break;                              \
            case SCATTER_MUL: y[i] = (T)((UT)y[i] * (UT)u[i]); break;                              \
            case SCATTER_MAX: y[i] = u[i] > y[i] ? u[i] : y[i]; break;                             \
            default: y[i] = u[i] < y[i] ? u[i] : y[i]; break;                                      \
            }                                                                                      \
    } while (0)

/* Writes (reduction SCATTER_NONE) or combines count elements of U into Y. */
static void scatter_put(void *Y, const void *U, int64_t count, ferry_dtype dt, int reduction)
{
    if (reduction == SCATTER_NONE) {
        memcpy(Y, U, (size_t)count * ferry_dtype_size(dt));
        return;
    }
    switch (dt) {
    case FERRY_F32: SCATTER_COMBINE(float, float); break;
    case FERRY_I64: SCATTER_COMBINE(int64_t, uint64_t); break;
    case FERRY_I32: SCATTER_COMBINE(int32_t, uint32_t); break;
    case FERRY_I8: SCATTER_COMBINE(int8_t, uint8_t); break;
    default: SCATTER_COMBINE(uint8_t, unsigned); break; /* uint8 (bool is refused at load) */
    }
}

int cpu_scatter_nd(const void *X, const int64_t *xd, int nd, const void *idx, ferry_dtype idt,
                   int64_t n_tuples, int k, const void *U, ferry_dtype dt, int reduction,
                   int64_t block, int64_t per_sample, void *Y)
{
    size_t esz = ferry_dtype_size(dt);
    int64_t xs[FERRY_MAX_DIMS], slice = prod(xd, k, nd);
    cpu_dense_strides(xd, nd, xs);
    if (Y != X)
        memcpy(Y, X, (size_t)prod(xd, 0, nd) * esz);
    if (block > 0 && per_sample <= 0 && n_tuples > 0)
        return -2; /* tuples that belong to no sample */
    for (int64_t t = 0; t < n_tuples; t++) {
        int64_t off = 0;
        for (int j = 0; j < k; j++) {
            int64_t v = load_index(idx, idt, t * k + j);
            if (v < -xd[j] || v >= xd[j])
                return -1;
            v = v < 0 ? v + xd[j] : v;
            if (j == 0 && block > 0) {
                int64_t s = t / per_sample;
                if (v < s * block || v >= (s + 1) * block)
                    return -2;
            }
            off += v * xs[j];
        }
        scatter_put((char *)Y + (size_t)off * esz, (const char *)U + (size_t)(t * slice) * esz,
                    slice, dt, reduction);
    }
    return 0;
}

int cpu_scatter_elements(const void *X, const int64_t *xd, int nd, int axis, const void *idx,
                         ferry_dtype idt, const int64_t *id, const void *U, ferry_dtype dt,
                         int reduction, void *Y)
{
    size_t esz = ferry_dtype_size(dt);
    int64_t xs[FERRY_MAX_DIMS], at[FERRY_MAX_DIMS] = {0}, n = prod(id, 0, nd), A = xd[axis];
    cpu_dense_strides(xd, nd, xs);
    if (Y != X)
        memcpy(Y, X, (size_t)prod(xd, 0, nd) * esz);
    for (int64_t p = 0; p < n; p++) {
        int64_t j = load_index(idx, idt, p), off = 0;
        if (j < -A || j >= A)
            return -1;
        for (int d = 0; d < nd; d++)
            off += (d == axis ? (j < 0 ? j + A : j) : at[d]) * xs[d];
        scatter_put((char *)Y + (size_t)off * esz, (const char *)U + (size_t)p * esz, 1, dt,
                    reduction);
        for (int d = nd - 1; d >= 0 && ++at[d] == id[d]; d--)
            at[d] = 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- slice */

void cpu_slice(const void *X, const int64_t *xd, int nd, const int64_t *starts,
               const int64_t *steps, void *Y, const int64_t *yd, size_t esz)
{
    int64_t xs[FERRY_MAX_DIMS], st[2][CPU_ITER_MAX_DIMS], base = 0;
    cpu_dense_strides(xd, nd, xs);
    cpu_dense_strides(yd, nd, st[0]);
    for (int d = 0; d < nd; d++) {
        assert(yd[d] == 0 || (starts[d] >= 0 && starts[d] < xd[d]));
        base += yd[d] ? starts[d] * xs[d] : 0;
        /* a dim of one element never steps, whatever step the model gave
         * (one near INT64_MIN overflowed here); over more, the step stays
         * within the dim, so the product within the tensor */
        st[1][d] = yd[d] > 1 ? xs[d] * steps[d] : 0;
    }
    cpu_iter it;
    cpu_iter_init(&it, yd, nd, 2, (const int64_t(*)[CPU_ITER_MAX_DIMS])st);
    iter_copy(&it, Y, (const char *)X + base * (int64_t)esz, esz);
}

/* ------------------------------------------------------- concat, split */

void cpu_concat(const void *const *X, const int64_t *lens, int n, void *Y, const int64_t *yd,
                int nd, int axis, size_t esz)
{
    int64_t outer = prod(yd, 0, axis), inner = prod(yd, axis + 1, nd);
    char *y = Y;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < n; i++) {
            size_t chunk = (size_t)(lens[i] * inner) * esz;
            memcpy(y, (const char *)X[i] + (size_t)o * chunk, chunk);
            y += chunk;
        }
    }
}

void cpu_split(const void *X, const int64_t *xd, int nd, int axis, const int64_t *lens, int n,
               void *const *Y, size_t esz)
{
    int64_t outer = prod(xd, 0, axis), inner = prod(xd, axis + 1, nd);
    const char *x = X;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < n; i++) {
            size_t chunk = (size_t)(lens[i] * inner) * esz;
            memcpy((char *)Y[i] + (size_t)o * chunk, x, chunk);
            x += chunk;
        }
    }
}

/* ---------------------------------------------------------- expand, tile */

void cpu_expand(const void *X, const int64_t *xd, int xn, void *Y, const int64_t *yd, int yn,
                size_t esz)
{
    cpu_iter it;
    cpu_iter_broadcast(&it, yd, yn, 1, &xd, &xn);
    iter_copy(&it, Y, X, esz);
}

void cpu_tile(const void *X, const int64_t *xd, int nd, const int64_t *repeats, void *Y, size_t esz)
{
    /* Y viewed as [r0, x0, r1, x1, ...]: X's strides on the x dims, 0 on
     * the repeats. */
    int64_t yd[FERRY_MAX_DIMS] = {0}, ys[FERRY_MAX_DIMS], xs[FERRY_MAX_DIMS];
    int64_t dims[CPU_ITER_MAX_DIMS], st[2][CPU_ITER_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        yd[d] = xd[d] * repeats[d];
    cpu_dense_strides(yd, nd, ys);
    cpu_dense_strides(xd, nd, xs);
    for (int d = 0; d < nd; d++) {
        dims[2 * d] = repeats[d];
        dims[2 * d + 1] = xd[d];
        st[0][2 * d] = xd[d] * ys[d];
        st[0][2 * d + 1] = ys[d];
        st[1][2 * d] = 0;
        st[1][2 * d + 1] = xs[d];
    }
    cpu_iter it;
    cpu_iter_init(&it, dims, 2 * nd, 2, (const int64_t(*)[CPU_ITER_MAX_DIMS])st);
    iter_copy(&it, Y, X, esz);
}

/* ---------------------------------------------------------------- where */

/* Both values are loaded before the select: a conditional load keeps the
 * loop from vectorizing. */
#define WHERE_LOOP(T, SC, SA, SB)                                                                  \
    for (int64_t i = 0; i < n; i++) {                                                              \
        T p_ = a[i * (SA)], q_ = b[i * (SB)];                                                      \
        y[i] = c[i * (SC)] ? p_ : q_;                                                              \
    }

/* One inner loop of Where with inner strides sc, sa, sb in {0, 1}: eight
 * loops with constant strides, which the compiler vectorizes. */
#define WHERE_T(T)                                                                                 \
    do {                                                                                           \
        T *y = (T *)yv;                                                                            \
        const T *a = (const T *)av, *b = (const T *)bv;                                            \
        switch (sc << 2 | sa << 1 | sb) {                                                          \
        case 0: WHERE_LOOP(T, 0, 0, 0); break;                                                     \
        case 1: WHERE_LOOP(T, 0, 0, 1); break;                                                     \
        case 2: WHERE_LOOP(T, 0, 1, 0); break;                                                     \
        case 3: WHERE_LOOP(T, 0, 1, 1); break;                                                     \
        case 4: WHERE_LOOP(T, 1, 0, 0); break;                                                     \
        case 5: WHERE_LOOP(T, 1, 0, 1); break;                                                     \
        case 6: WHERE_LOOP(T, 1, 1, 0); break;                                                     \
        default: WHERE_LOOP(T, 1, 1, 1); break;                                                    \
        }                                                                                          \
    } while (0)

static void where_inner(void *yv, const uint8_t *c, int sc, const void *av, int sa, const void *bv,
                        int sb, int64_t n, size_t esz)
{
    switch (esz) {
    case 1: WHERE_T(uint8_t); break;
    case 2: WHERE_T(uint16_t); break;
    case 4: WHERE_T(uint32_t); break;
    case 8: WHERE_T(uint64_t); break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)yv + i * (int64_t)esz,
                   c[i * sc] ? (const char *)av + i * sa * (int64_t)esz
                             : (const char *)bv + i * sb * (int64_t)esz,
                   esz);
    }
}

typedef struct where_job {
    const uint8_t *C;
    const void *A, *B;
    void *Y;
    size_t esz;
} where_job;

static void where_body(void *arg, cpu_iter *it, int64_t count)
{
    const where_job *j = arg;
    int sc = cpu_iter_inner_stride(it, 1) != 0, sa = cpu_iter_inner_stride(it, 2) != 0,
        sb = cpu_iter_inner_stride(it, 3) != 0;
    int64_t e = (int64_t)j->esz;
    for (int64_t o = 0; o < count; o++) {
        where_inner((char *)j->Y + it->off[0] * e, j->C + it->off[1], sc,
                    (const char *)j->A + it->off[2] * e, sa, (const char *)j->B + it->off[3] * e,
                    sb, it->inner, j->esz);
        cpu_iter_next(it);
    }
}

void cpu_where(const uint8_t *C, const int64_t *cd, int cn, const void *A, const int64_t *ad,
               int an, const void *B, const int64_t *bd, int bn, void *Y, const int64_t *yd, int yn,
               size_t esz)
{
    const int64_t *d[3] = {cd, ad, bd};
    int n[3] = {cn, an, bn};
    cpu_iter it;
    cpu_iter_broadcast(&it, yd, yn, 3, d, n);
    where_job j = {C, A, B, Y, esz};
    cpu_iter_run(&it, where_body, &j, COPY_GRAIN_BYTES / (int64_t)esz);
}

/* ------------------------------------------------------------------ pad */

/* Index into an axis of n elements (the cropped input) for padded
 * coordinate t (0 is the first kept element), or -1 for constant. */
static int64_t pad_map(int64_t t, int64_t n, cpu_pad_mode mode)
{
    if (t >= 0 && t < n)
        return t;
    switch (mode) {
    case CPU_PAD_EDGE: return t < 0 ? 0 : n - 1;
    case CPU_PAD_REFLECT: {
        if (n == 1)
            return 0;
        int64_t period = 2 * (n - 1);
        t = t < 0 ? -t : t;
        t %= period;
        return t < n ? t : period - t;
    }
    case CPU_PAD_WRAP: return ((t % n) + n) % n;
    default: return -1;
    }
}

void cpu_pad(const void *X, const int64_t *xd, int nd, const int64_t *pads, cpu_pad_mode mode,
             const void *value, void *Y, size_t esz)
{
    static const uint64_t zero[4]; /* value NULL: esz up to 32 bytes of zero */
    int64_t lo[FERRY_MAX_DIMS], n[FERRY_MAX_DIMS], b[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    int64_t xs[FERRY_MAX_DIMS], e = (int64_t)esz;
    if (!value) {
        assert(esz <= sizeof zero);
        value = zero;
    }
    int64_t total = 1;
    for (int d = 0; d < nd; d++) {
        int64_t pb = pads[d], pe = pads[nd + d];
        lo[d] = pb < 0 ? -pb : 0;
        n[d] = xd[d] - lo[d] - (pe < 0 ? -pe : 0);
        b[d] = pb > 0 ? pb : 0;
        yd[d] = xd[d] + pb + pe;
        total *= yd[d];
    }
    if (total == 0)
        return;
    if (nd == 0) {
        memcpy(Y, X, esz);
        return;
    }
    cpu_dense_strides(xd, nd, xs);
    int64_t L = yd[nd - 1], nl = n[nd - 1], bl = b[nd - 1], lol = lo[nd - 1];
    int64_t rows = total / L, idx[FERRY_MAX_DIMS] = {0};
    char *y = Y;
    for (int64_t r = 0; r < rows; r++, y += L * e) {
        /* The source row, or none when a dim maps to the constant. */
        int64_t off = 0;
        int constant = 0;
        for (int d = 0; d < nd - 1; d++) {
            int64_t s = pad_map(idx[d] - b[d], n[d], mode);
            if (s < 0)
                constant = 1;
            else
                off += (lo[d] + s) * xs[d];
        }
        if (constant) {
            fill_elems(y, L, value, esz);
        } else {
            const char *x = (const char *)X + (off + lol) * e;
            int64_t m0 = bl < L ? bl : L; /* [0, m0): before the kept part */
            int64_t m1 = bl + nl < L ? bl + nl : L;
            if (mode == CPU_PAD_CONSTANT) {
                fill_elems(y, m0, value, esz);
                fill_elems(y + m1 * e, L - m1, value, esz);
            } else {
                for (int64_t j = 0; j < m0; j++)
                    memcpy(y + j * e, x + pad_map(j - bl, nl, mode) * e, esz);
                for (int64_t j = m1; j < L; j++)
                    memcpy(y + j * e, x + pad_map(j - bl, nl, mode) * e, esz);
            }
            if (m1 > m0)
                memcpy(y + m0 * e, x + (m0 - bl) * e, (size_t)(m1 - m0) * esz);
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < yd[d])
                break;
            idx[d] = 0;
        }
    }
}

/* --------------------------------------------------------------- resize */

/* Input coordinate of output coordinate i along an axis, as ONNX's
 * coordinate_transformation_mode defines it; in double, as ONNX's
 * reference computes it, so that ties in nearest fall the same way. */
static double resize_coord(cpu_resize_coord c, int64_t i, int64_t in, int64_t out, double scale)
{
    switch (c) {
    case CPU_COORD_PYTORCH_HALF_PIXEL: return out > 1 ? ((double)i + 0.5) / scale - 0.5 : 0.0;
    case CPU_COORD_ALIGN_CORNERS:
        return out == 1 ? 0.0 : (double)i * (double)(in - 1) / (double)(out - 1);
    case CPU_COORD_ASYMMETRIC: return (double)i / scale;
    case CPU_COORD_HALF_PIXEL_SYMMETRIC: {
        double adj = (double)out / (scale * (double)in);
        double off = (double)in / 2.0 * (1.0 - adj);
        return off + ((double)i + 0.5) / scale - 0.5;
    }
    default: return ((double)i + 0.5) / scale - 0.5;
    }
}

static int64_t clamp_index(double v, int64_t n)
{
    return v < 0.0 ? 0 : v > (double)(n - 1) ? n - 1 : (int64_t)v;
}

static int64_t resize_nearest_index(double x, cpu_resize_nearest m, int64_t n)
{
    double f = floor(x), r;
    switch (m) {
    case CPU_NEAREST_FLOOR: r = f; break;
    case CPU_NEAREST_CEIL: r = ceil(x); break;
    case CPU_NEAREST_ROUND_PREFER_CEIL: r = x - f == 0.5 ? f + 1.0 : floor(x + 0.5); break;
    default: r = x - f == 0.5 ? f : floor(x + 0.5); break;
    }
    return clamp_index(r, n);
}

/* One axis's neighbours of output coordinate i: i0, i1 and the weight w of
 * i1 (nearest: i0 only, w 0). */
typedef struct resize_ax {
    int64_t in, out;
    double scale;
    int identity;
} resize_ax;

static void resize_point(const resize_ax *a, int64_t i, cpu_resize_mode mode, cpu_resize_coord c,
                         cpu_resize_nearest nm, int64_t *i0, int64_t *i1, float *w)
{
    if (a->identity) {
        *i0 = *i1 = i;
        *w = 0.0f;
        return;
    }
    double x = resize_coord(c, i, a->in, a->out, a->scale);
    if (mode == CPU_RESIZE_NEAREST) {
        *i0 = *i1 = resize_nearest_index(x, nm, a->in);
        *w = 0.0f;
        return;
    }
    double f = floor(x);
    *i0 = clamp_index(f, a->in);
    *i1 = clamp_index(f + 1.0, a->in);
    *w = *i0 == *i1 ? 0.0f : (float)(x - f);
}

/* An f32 scale that is the output/input ratio rounded (how sizes resolve
 * to scales, and how most scales are given) is taken as the exact ratio,
 * so that nearest's ties fall as in ONNX's float64 reference: 3 -> 4 as
 * 1.3333334f maps output 2 to 1.4999999, the ratio to 1.5. */
static double resize_scale(float s, int64_t in, int64_t out)
{
    double r = (double)out / (double)in;
    return (float)r == s ? r : (double)s;
}

/* Keys' cubic convolution weights of the neighbours at offsets -1, 0, 1, 2
 * from floor(x), t = x - floor(x). */
static void cubic_weights(double t, double a, double w[4])
{
    double s = t + 1.0, u = 1.0 - t, v = 2.0 - t;
    w[0] = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a;
    w[1] = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    w[2] = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0;
    w[3] = ((a * v - 5.0 * a) * v + 8.0 * a) * v - 4.0 * a;
}

void cpu_resize_cubic(const float *X, const int64_t *xd, int nd, float *Y, const int64_t *yd,
                      const float *scales, cpu_resize_coord coord, float a)
{
    int64_t xs[FERRY_MAX_DIMS], n = prod(yd, 0, nd), at[FERRY_MAX_DIMS] = {0};
    int ax[FERRY_MAX_DIMS], r = 0;
    cpu_dense_strides(xd, nd, xs);
    for (int d = 0; d < nd; d++)
        if (yd[d] != xd[d] || scales[d] != 1.0f)
            ax[r++] = d;
    for (int64_t o = 0; o < n; o++) {
        /* the unresized axes' offset, and each resized axis's four taps */
        int64_t base = 0, idx[FERRY_MAX_DIMS][4];
        double w[FERRY_MAX_DIMS][4];
        for (int d = 0, k = 0; d < nd; d++) {
            if (k < r && ax[k] == d) {
                double x =
                    resize_coord(coord, at[d], xd[d], yd[d], resize_scale(scales[d], xd[d], yd[d]));
                double f = floor(x);
                cubic_weights(x - f, a, w[k]);
                for (int j = 0; j < 4; j++)
                    idx[k][j] = clamp_index(f - 1.0 + j, xd[d]) * xs[d];
                k++;
            } else {
                base += at[d] * xs[d];
            }
        }
        double acc = 0.0;
        for (int64_t tap = 0; tap < (INT64_C(1) << (2 * r)); tap++) {
            int64_t off = base;
            double wt = 1.0;
            for (int k = 0; k < r; k++) {
                int j = (int)(tap >> (2 * k)) & 3;
                off += idx[k][j];
                wt *= w[k][j];
            }
            acc += wt * X[off];
        }
        Y[o] = (float)acc;
        for (int d = nd - 1; d >= 0 && ++at[d] == yd[d]; d--)
            at[d] = 0;
    }
}

/* ------------------------------------------------------------ gridsample */

/* v reflected into [lo2/2, hi2/2] (twice the bounds, as PyTorch keeps them
 * integral): the pattern that mirrors at each edge. */
static float grid_reflect(float v, float lo2, float hi2)
{
    if (lo2 == hi2)
        return 0.0f;
    float lo = lo2 / 2.0f, span = (hi2 - lo2) / 2.0f;
    v = fabsf(v - lo);
    float extra = fmodf(v, span);
    /* the flips' parity in float: far from the image their count is past
     * any int */
    return fmodf(floorf(v / span), 2.0f) == 0.0f ? extra + lo : span - extra + lo;
}

/* Grid value g of an axis of n pixels as a pixel coordinate, padded, and
 * within [-2, n + 1], so that the caller's conversions to int64 stay
 * defined: a coordinate further out reads zeros (padding zeros) as it
 * would there. A grid of NaN or infinities (a model's bug, or a division
 * by zero upstream) reads as PyTorch's clamps make it: NaN is pixel 0 when
 * padded, +-inf the edge it points to (border) or pixel 0 (reflection),
 * and both are outside under zeros padding. */
static float grid_coord(float g, int64_t n, int padding, int align)
{
    float v = align ? (g + 1.0f) / 2.0f * (float)(n - 1) : ((g + 1.0f) * (float)n - 1.0f) / 2.0f;
    if (!isfinite(v))
        return padding == GRID_PAD_ZEROS                ? -2.0f
               : padding == GRID_PAD_BORDER && v > 0.0f ? (float)(n - 1)
                                                        : 0.0f;
    if (padding == GRID_PAD_REFLECTION)
        v = align ? grid_reflect(v, 0.0f, 2.0f * (float)(n - 1))
                  : grid_reflect(v, -1.0f, 2.0f * (float)n - 1.0f);
    if (padding != GRID_PAD_ZEROS)
        v = v < 0.0f ? 0.0f : v > (float)(n - 1) ? (float)(n - 1) : v;
    return v < -2.0f ? -2.0f : v > (float)n + 1.0f ? (float)n + 1.0f : v;
}

void cpu_grid_sample(const float *X, const int64_t *xd, const float *grid, int64_t ho, int64_t wo,
                     float *Y, int nearest, int padding, int align_corners)
{
    int64_t N = xd[0], C = xd[1], H = xd[2], W = xd[3], plane = H * W, out = ho * wo;
    for (int64_t b = 0; b < N; b++)
        for (int64_t p = 0; p < out; p++) {
            const float *gp = grid + (b * out + p) * 2;
            float x = grid_coord(gp[0], W, padding, align_corners);
            float y = grid_coord(gp[1], H, padding, align_corners);
            const float *xb = X + b * C * plane;
            float *yb = Y + b * C * out + p;
            if (nearest) {
                int64_t ix = (int64_t)nearbyintf(x), iy = (int64_t)nearbyintf(y);
                int in = ix >= 0 && ix < W && iy >= 0 && iy < H;
                for (int64_t c = 0; c < C; c++)
                    yb[c * out] = in ? xb[c * plane + iy * W + ix] : 0.0f;
                continue;
            }
            float fx = floorf(x), fy = floorf(y), tx = x - fx, ty = y - fy;
            int64_t x0 = (int64_t)fx, y0 = (int64_t)fy;
            /* the four taps and their weights; a tap outside reads 0 */
            int64_t off[4];
            float w[4] = {(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty};
            for (int t = 0; t < 4; t++) {
                int64_t ix = x0 + (t & 1), iy = y0 + (t >> 1);
                off[t] = iy * W + ix;
                if (ix < 0 || ix >= W || iy < 0 || iy >= H)
                    w[t] = 0.0f, off[t] = 0;
            }
            for (int64_t c = 0; c < C; c++) {
                const float *xc = xb + c * plane;
                yb[c * out] =
                    xc[off[0]] * w[0] + xc[off[1]] * w[1] + xc[off[2]] * w[2] + xc[off[3]] * w[3];
            }
        }
}

#define RESIZE_BLOCK 256
#define RESIZE_MAX_CORNERS (1 << (FERRY_MAX_DIMS - 1))

/* A resize as rows of the output: row r of batch item bi is
 * Y[bi, (outer resized coordinates of r), :]. */
typedef struct resize_job {
    const float *X;
    float *Y;
    resize_ax ax[FERRY_MAX_DIMS];
    int64_t xs[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    int s, last; /* first resized axis, last axis */
    int64_t batch, rows, W, xbatch, ybatch;
    cpu_resize_mode mode;
    cpu_resize_coord coord;
    cpu_resize_nearest nearest;
    int64_t per, by_rows; /* chunk c: rows (by_rows) or batch items [c*per, (c+1)*per) */
} resize_job;

/* Output rows [r0, r1) of batch items [b0, b1). */
static void resize_part(const resize_job *jb, int64_t r0, int64_t r1, int64_t b0, int64_t b1)
{
    const resize_ax *ax = jb->ax;
    const int64_t *xs = jb->xs;
    int s = jb->s, last = jb->last;
    int64_t W = jb->W;
    cpu_resize_mode mode = jb->mode;
    int64_t c0i[RESIZE_BLOCK], c1i[RESIZE_BLOCK];
    float cw[RESIZE_BLOCK];
    int64_t coff[RESIZE_MAX_CORNERS];
    float cwt[RESIZE_MAX_CORNERS];
    for (int64_t j0 = 0; j0 < W; j0 += RESIZE_BLOCK) {
        int64_t nb = W - j0 < RESIZE_BLOCK ? W - j0 : RESIZE_BLOCK;
        for (int64_t j = 0; j < nb; j++)
            resize_point(&ax[last], j0 + j, mode, jb->coord, jb->nearest, &c0i[j], &c1i[j], &cw[j]);
        int64_t idx[FERRY_MAX_DIMS] = {0}, q = r0;
        for (int d = last - 1; d >= s; d--) { /* the coordinates of row r0 */
            idx[d] = q % jb->yd[d];
            q /= jb->yd[d];
        }
        for (int64_t r = r0; r < r1; r++) {
            /* The input rows that output row r reads (corners of the outer
             * resized axes) and their weights. */
            int nc = 1;
            coff[0] = 0;
            cwt[0] = 1.0f;
            for (int d = s; d < last; d++) {
                int64_t i0, i1;
                float w;
                resize_point(&ax[d], idx[d], mode, jb->coord, jb->nearest, &i0, &i1, &w);
                if (w == 0.0f) {
                    for (int k = 0; k < nc; k++)
                        coff[k] += i0 * xs[d];
                    continue;
                }
                for (int k = 0; k < nc; k++) {
                    coff[nc + k] = coff[k] + i1 * xs[d];
                    cwt[nc + k] = cwt[k] * w;
                    coff[k] += i0 * xs[d];
                    cwt[k] *= 1.0f - w;
                }
                nc *= 2;
            }
            for (int64_t bi = b0; bi < b1; bi++) {
                const float *xb = jb->X + bi * jb->xbatch;
                float *restrict y = jb->Y + bi * jb->ybatch + r * W + j0;
                if (mode == CPU_RESIZE_NEAREST) {
                    const float *x = xb + coff[0];
                    for (int64_t j = 0; j < nb; j++)
                        y[j] = x[c0i[j]];
                    continue;
                }
                if (nc == 2) { /* bilinear: both rows in one pass over y */
                    const float *xa = xb + coff[0], *xc = xb + coff[1];
                    float wa = cwt[0], wc = cwt[1];
                    for (int64_t j = 0; j < nb; j++) {
                        float a = (1.0f - cw[j]) * xa[c0i[j]] + cw[j] * xa[c1i[j]];
                        float c = (1.0f - cw[j]) * xc[c0i[j]] + cw[j] * xc[c1i[j]];
                        y[j] = wa * a + wc * c;
                    }
                    continue;
                }
                for (int k = 0; k < nc; k++) {
                    const float *x = xb + coff[k];
                    float wk = cwt[k];
                    if (k == 0)
                        for (int64_t j = 0; j < nb; j++)
                            y[j] = wk * ((1.0f - cw[j]) * x[c0i[j]] + cw[j] * x[c1i[j]]);
                    else
                        for (int64_t j = 0; j < nb; j++)
                            y[j] += wk * ((1.0f - cw[j]) * x[c0i[j]] + cw[j] * x[c1i[j]]);
                }
            }
            for (int d = last - 1; d >= s; d--) {
                if (++idx[d] < jb->yd[d])
                    break;
                idx[d] = 0;
            }
        }
    }
}

static void resize_chunk(void *arg, int64_t c)
{
    const resize_job *j = arg;
    int64_t n = j->by_rows ? j->rows : j->batch, a = c * j->per;
    int64_t b = a + j->per < n ? a + j->per : n;
    if (j->by_rows)
        resize_part(j, a, b, 0, j->batch);
    else
        resize_part(j, 0, j->rows, a, b);
}

/* Outputs of at least twice this many elements are split over the
 * backend's threads (by rows, or by batch items when rows are few). */
#define RESIZE_GRAIN 16384

void cpu_resize(const float *X, const int64_t *xd, int nd, float *Y, const int64_t *yd,
                const float *scales, cpu_resize_mode mode, cpu_resize_coord coord,
                cpu_resize_nearest nearest)
{
    resize_job j = {.X = X, .Y = Y, .mode = mode, .coord = coord, .nearest = nearest};
    j.s = nd; /* first resized axis */
    for (int d = nd - 1; d >= 0; d--) {
        j.ax[d].in = xd[d];
        j.ax[d].out = yd[d];
        j.ax[d].scale = resize_scale(scales[d], xd[d], yd[d]);
        j.ax[d].identity = xd[d] == yd[d] && scales[d] == 1.0f;
        j.yd[d] = yd[d];
        if (!j.ax[d].identity)
            j.s = d;
    }
    int64_t total = prod(yd, 0, nd);
    if (total == 0)
        return;
    if (j.s == nd) {
        memcpy(Y, X, (size_t)total * sizeof *Y);
        return;
    }
    j.last = nd - 1;
    cpu_dense_strides(xd, nd, j.xs);
    j.batch = prod(xd, 0, j.s);
    j.W = yd[j.last];
    j.rows = prod(yd, j.s, j.last); /* output rows of one batch item */
    j.xbatch = prod(xd, j.s, nd);
    j.ybatch = j.rows * j.W;
    int T = total >= 2 * RESIZE_GRAIN ? cpu_parallel_available() : 1;
    int64_t want = (int64_t)T * 4 < total / RESIZE_GRAIN ? (int64_t)T * 4 : total / RESIZE_GRAIN;
    j.by_rows = j.rows >= want || j.rows >= j.batch;
    int64_t n = j.by_rows ? j.rows : j.batch;
    if (T <= 1 || n < 2) {
        resize_part(&j, 0, j.rows, 0, j.batch);
        return;
    }
    want = want < n ? want : n;
    j.per = (n + want - 1) / want;
    cpu_parallel_for(resize_chunk, &j, (n + j.per - 1) / j.per, T);
}

/* ------------------------------------------------- fill, range, trilu */

void cpu_fill(void *Y, int64_t n, const void *value, size_t esz)
{
    fill_elems(Y, n, value, esz);
}

void cpu_one_hot(const void *X, ferry_dtype dt, int64_t outer, int64_t inner, int64_t depth,
                 const void *values, size_t esz, void *Y)
{
    const char *off = values, *on = off + esz;
    char *y = Y;
    cpu_fill(Y, outer * depth * inner, off, esz);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t e = o * inner + i;
            int64_t k;
            if (dt == FERRY_F32) {
                float f = ((const float *)X)[e];
                /* NaN and huge values (whose conversion is undefined) are off */
                k = f > (float)-depth - 1.0f && f < (float)depth ? (int64_t)f : depth;
            } else {
                k = dt == FERRY_I64 ? ((const int64_t *)X)[e] : ((const int32_t *)X)[e];
            }
            if (k < 0)
                k += depth;
            if (k >= 0 && k < depth)
                memcpy(y + (size_t)((o * depth + k) * inner + i) * esz, on, esz);
        }
}

void cpu_eye(void *Y, int64_t rows, int64_t cols, int64_t k, ferry_dtype dt)
{
    size_t esz = ferry_dtype_size(dt);
    const float f1 = 1.0f;
    const int64_t i64 = 1;
    const int32_t i32 = 1;
    const uint8_t u8 = 1;
    const void *one = dt == FERRY_F32   ? (const void *)&f1
                      : dt == FERRY_I64 ? (const void *)&i64
                      : dt == FERRY_I32 ? (const void *)&i32
                                        : (const void *)&u8;
    memset(Y, 0, (size_t)(rows * cols) * esz);
    for (int64_t i = 0; i < rows; i++)
        if (i + k >= 0 && i + k < cols)
            memcpy((char *)Y + (size_t)(i * cols + i + k) * esz, one, esz);
}

void cpu_range(ferry_dtype dt, const void *start, const void *delta, int64_t n, void *Y)
{
    switch (dt) {
    case FERRY_F32: {
        double s = *(const float *)start, dl = *(const float *)delta;
        float *y = Y;
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)(s + (double)i * dl);
        break;
    }
    case FERRY_I32: {
        uint32_t s = (uint32_t) * (const int32_t *)start, dl = (uint32_t) * (const int32_t *)delta;
        int32_t *y = Y;
        for (int64_t i = 0; i < n; i++)
            y[i] = (int32_t)(s + (uint32_t)i * dl);
        break;
    }
    default: {
        uint64_t s = (uint64_t) * (const int64_t *)start, dl = (uint64_t) * (const int64_t *)delta;
        int64_t *y = Y;
        for (int64_t i = 0; i < n; i++)
            y[i] = (int64_t)(s + (uint64_t)i * dl);
        break;
    }
    }
}

void cpu_trilu(const void *X, const int64_t *xd, int nd, int upper, int64_t k, void *Y, size_t esz)
{
    assert(nd >= 2);
    int64_t R = xd[nd - 2], C = xd[nd - 1], mats = prod(xd, 0, nd - 2);
    size_t row = (size_t)C * esz;
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < R; i++) {
            const char *x = (const char *)X + (size_t)(m * R + i) * row;
            char *y = (char *)Y + (size_t)(m * R + i) * row;
            /* Kept columns [a, b). */
            int64_t a, b;
            if (upper) {
                a = i + k < 0 ? 0 : i + k > C ? C : i + k;
                b = C;
            } else {
                a = 0;
                b = i + k + 1 < 0 ? 0 : i + k + 1 > C ? C : i + k + 1;
            }
            memset(y, 0, (size_t)a * esz);
            if (y != x && b > a)
                memcpy(y + (size_t)a * esz, x + (size_t)a * esz, (size_t)(b - a) * esz);
            memset(y + (size_t)b * esz, 0, (size_t)(C - b) * esz);
        }
    }
}

/* --------------------------------------------------------------- cumsum */

/* Running sums of X viewed as [outer, L, inner] along L in type T with
 * arithmetic in U (unsigned for integers, so that overflow wraps). */
#define CUMSUM_T(T, U)                                                                             \
    do {                                                                                           \
        const T *x_ = X;                                                                           \
        T *y_ = Y;                                                                                 \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xo = x_ + o * L * inner;                                                      \
            T *yo = y_ + o * L * inner;                                                            \
            for (int64_t t = 0; t < L; t++) {                                                      \
                int64_t j = reverse ? L - 1 - t : t, pj = reverse ? j + 1 : j - 1;                 \
                T *restrict y = yo + j * inner;                                                    \
                const T *restrict x = xo + j * inner;                                              \
                if (t == 0) {                                                                      \
                    for (int64_t c = 0; c < inner; c++)                                            \
                        y[c] = exclusive ? (T)0 : x[c];                                            \
                } else {                                                                           \
                    const T *restrict yp = yo + pj * inner;                                        \
                    const T *restrict xs = exclusive ? xo + pj * inner : x;                        \
                    for (int64_t c = 0; c < inner; c++)                                            \
                        y[c] = (T)((U)yp[c] + (U)xs[c]);                                           \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

void cpu_cumsum(const void *X, ferry_dtype dt, const int64_t *xd, int nd, int axis, int exclusive,
                int reverse, void *Y)
{
    int64_t outer = prod(xd, 0, axis), L = xd[axis], inner = prod(xd, axis + 1, nd);
    switch (dt) {
    case FERRY_F32: CUMSUM_T(float, float); break;
    case FERRY_I32: CUMSUM_T(int32_t, uint32_t); break;
    default: CUMSUM_T(int64_t, uint64_t); break;
    }
}

/* -------------------------------------------- depth_to_space and back */

void cpu_depth_to_space(const void *X, const int64_t *xd, int64_t b, int crd, void *Y, size_t esz)
{
    int64_t N = xd[0], C = xd[1] / (b * b), H = xd[2], W = xd[3];
    if (crd) {
        const int64_t v[6] = {N, C, b, b, H, W};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        cpu_transpose(X, v, 6, perm, Y, esz);
    } else {
        const int64_t v[6] = {N, b, b, C, H, W};
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        cpu_transpose(X, v, 6, perm, Y, esz);
    }
}

void cpu_space_to_depth(const void *X, const int64_t *xd, int64_t b, void *Y, size_t esz)
{
    const int64_t v[6] = {xd[0], xd[1], xd[2] / b, b, xd[3] / b, b};
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    cpu_transpose(X, v, 6, perm, Y, esz);
}
