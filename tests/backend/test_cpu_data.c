/*
 * test_cpu_data.c - the CPU data-movement kernels (cpu_data.h) and the
 * broadcasting iterator (cpu_iter.h): small cases with values written
 * here, Resize against values computed by PyTorch 1.13's interpolate
 * (float64), and random shapes against naive per-element references.
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

#include "backend/cpu/cpu_data.h"
#include "backend/cpu/cpu_iter.h"
#include "graph/graph.h"

#define MAXD FERRY_MAX_DIMS

/* ------------------------------------------------------------- helpers */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int64_t irand(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1));
}

static float frand(void)
{
    return (float)(rnd() % 20001) / 1000.0f - 10.0f;
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

/* Random dims in [1, hi], about one in four set to 1. */
static void rand_dims(int64_t *d, int n, int64_t hi)
{
    for (int i = 0; i < n; i++)
        d[i] = rnd() % 4 == 0 ? 1 : irand(1, hi);
}

/* n random bytes of data (every element size). */
static void *rand_bytes(int64_t n)
{
    uint8_t *p = malloc((size_t)(n ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
    return p;
}

static void *zalloc(int64_t n)
{
    void *p = calloc((size_t)(n ? n : 1), 1);
    assert_non_null(p);
    return p;
}

static const size_t esizes[] = {1, 2, 4, 8, 3, 12};

/* ------------------------------------------------------------ broadcast */

static void test_broadcast_shape(void **state)
{
    (void)state;
    int64_t out[MAXD];
    int on;
    const int64_t a1[] = {3, 1}, b1[] = {1, 4};
    assert_int_equal(cpu_broadcast_shape(a1, 2, b1, 2, out, &on), 0);
    assert_int_equal(on, 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 4);
    const int64_t a2[] = {2, 3, 4}, b2[] = {4};
    assert_int_equal(cpu_broadcast_shape(b2, 1, a2, 3, out, &on), 0);
    assert_int_equal(on, 3);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[2], 4);
    const int64_t a3[] = {5};
    assert_int_equal(cpu_broadcast_shape(a3, 1, NULL, 0, out, &on), 0);
    assert_int_equal(on, 1);
    assert_int_equal(out[0], 5);
    const int64_t a4[] = {3}, b4[] = {4};
    assert_int_equal(cpu_broadcast_shape(a4, 1, b4, 1, out, &on), -1);
    const int64_t a5[] = {0, 1}, b5[] = {1, 5};
    assert_int_equal(cpu_broadcast_shape(a5, 2, b5, 2, out, &on), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 5);
    const int64_t a6[] = {2, 1, 3}, b6[] = {2, 2};
    assert_int_equal(cpu_broadcast_shape(a6, 3, b6, 2, out, &on), -1);
}

/* The iterator merges what it can: equal shapes are one loop, a row
 * vector over a matrix two, and it visits every element once. */
static void test_iter_merge(void **state)
{
    (void)state;
    cpu_iter it;
    const int64_t yd[] = {3, 1, 5, 7};
    const int64_t *d[1] = {yd};
    int n[1] = {4};
    cpu_iter_broadcast(&it, yd, 4, 1, d, n);
    assert_int_equal(it.nd, 1);
    assert_int_equal(it.inner, 105);
    assert_int_equal(it.outer, 1);
    const int64_t row[] = {7};
    d[0] = row;
    n[0] = 1;
    cpu_iter_broadcast(&it, yd, 4, 1, d, n);
    assert_int_equal(it.nd, 2);
    assert_int_equal(it.inner, 7);
    assert_int_equal(it.outer, 15);
    assert_int_equal(cpu_iter_inner_stride(&it, 1), 1);
    /* [3,1] vs [1,4] onto [3,4]: operand offsets visit the grid. */
    const int64_t col[] = {3, 1}, out[] = {3, 4};
    d[0] = col;
    n[0] = 2;
    cpu_iter_broadcast(&it, out, 2, 1, d, n);
    assert_int_equal(it.outer, 3);
    assert_int_equal(cpu_iter_inner_stride(&it, 1), 0);
    for (int64_t o = 0; o < 3; o++) {
        assert_int_equal(it.off[0], o * 4);
        assert_int_equal(it.off[1], o);
        cpu_iter_next(&it);
    }
    cpu_iter_seek(&it, 2);
    assert_int_equal(it.off[0], 8);
    assert_int_equal(it.off[1], 2);
    /* empty */
    const int64_t e[] = {3, 0, 2};
    d[0] = e;
    n[0] = 3;
    cpu_iter_broadcast(&it, e, 3, 1, d, n);
    assert_int_equal(it.outer, 0);
}

/* ------------------------------------------------------------ transpose */

static void transpose_ref(const uint8_t *x, const int64_t *xd, int nd, const int *perm, uint8_t *y,
                          size_t esz)
{
    int64_t yd[MAXD], yi[MAXD], xi[MAXD];
    for (int i = 0; i < nd; i++)
        yd[i] = xd[perm[i]];
    for (int64_t i = 0, n = numel(yd, nd); i < n; i++) {
        unravel(i, yd, nd, yi);
        for (int k = 0; k < nd; k++)
            xi[perm[k]] = yi[k];
        memcpy(y + i * (int64_t)esz, x + ravel(xi, xd, nd) * (int64_t)esz, esz);
    }
}

static void transpose_case(const int64_t *xd, int nd, const int *perm, size_t esz)
{
    int64_t n = numel(xd, nd), bytes = n * (int64_t)esz;
    uint8_t *x = rand_bytes(bytes), *y = zalloc(bytes), *r = zalloc(bytes);
    cpu_transpose(x, xd, nd, perm, y, esz);
    transpose_ref(x, xd, nd, perm, r, esz);
    assert_memory_equal(y, r, (size_t)(bytes ? bytes : 1) * (bytes != 0));
    free(x);
    free(y);
    free(r);
}

static void test_transpose(void **state)
{
    (void)state;
    const int32_t x[6] = {1, 2, 3, 4, 5, 6};
    int32_t y[6];
    const int64_t xd[] = {2, 3};
    const int perm[] = {1, 0};
    cpu_transpose(x, xd, 2, perm, y, 4);
    const int32_t want[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(y, want, sizeof want);

    /* [N,T,H,d] -> [N,H,T,d] (contiguous chunks), a large 2-D swap
     * (tiles), an odd shape and a full reversal. */
    const int64_t a[] = {2, 5, 3, 4}, b[] = {37, 53}, c[] = {3, 1, 5, 7}, e[] = {0, 3};
    const int pa[] = {0, 2, 1, 3}, pb[] = {1, 0}, pc[] = {3, 2, 1, 0}, pd[] = {2, 0, 3, 1};
    for (size_t k = 0; k < sizeof esizes / sizeof *esizes; k++) {
        transpose_case(a, 4, pa, esizes[k]);
        transpose_case(b, 2, pb, esizes[k]);
        transpose_case(c, 4, pc, esizes[k]);
        transpose_case(c, 4, pd, esizes[k]);
        transpose_case(e, 2, pb, esizes[k]);
    }
    for (int t = 0; t < 300; t++) {
        int nd = (int)irand(1, 6);
        int64_t d[MAXD];
        int p[MAXD];
        rand_dims(d, nd, 6);
        for (int i = 0; i < nd; i++)
            p[i] = i;
        for (int i = nd - 1; i > 0; i--) {
            int j = (int)irand(0, i), tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
        transpose_case(d, nd, p, esizes[t % 6]);
    }
}

/* --------------------------------------------------------------- gather */

static void test_gather(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int64_t xd[] = {3, 2};
    const int64_t i0[] = {-1, 0, 1};
    float y[6];
    assert_int_equal(cpu_gather(x, xd, 2, 0, i0, FERRY_I64, 3, y, 4), 0);
    const float w0[6] = {5, 6, 1, 2, 3, 4};
    assert_memory_equal(y, w0, sizeof w0);
    const int32_t i1[] = {1, -2, -1};
    const float w1[9] = {2, 1, 2, 4, 3, 4, 6, 5, 6};
    float y9[9];
    assert_int_equal(cpu_gather(x, xd, 2, 1, i1, FERRY_I32, 3, y9, 4), 0);
    assert_memory_equal(y9, w1, sizeof w1);
    const int64_t bad[] = {0, 3};
    assert_int_equal(cpu_gather(x, xd, 2, 0, bad, FERRY_I64, 2, y, 4), -1);
    const int64_t bad2[] = {-4};
    assert_int_equal(cpu_gather(x, xd, 2, 0, bad2, FERRY_I64, 1, y, 4), -1);

    for (int t = 0; t < 200; t++) {
        int nd = (int)irand(1, 4), axis = (int)irand(0, nd - 1);
        int64_t d[MAXD];
        rand_dims(d, nd, 5);
        size_t esz = esizes[t % 6];
        int64_t A = d[axis], m = irand(0, 7), outer = numel(d, axis),
                inner = numel(d + axis + 1, nd - axis - 1);
        int64_t idx[8];
        int32_t idx32[8];
        for (int64_t k = 0; k < m; k++)
            idx32[k] = (int32_t)(idx[k] = irand(-A, A - 1));
        int64_t bytes = outer * m * inner * (int64_t)esz;
        uint8_t *x2 = rand_bytes(numel(d, nd) * (int64_t)esz), *y2 = zalloc(bytes),
                *r = zalloc(bytes);
        assert_int_equal(cpu_gather(x2, d, nd, axis, (t & 1) ? (void *)idx32 : (void *)idx,
                                    (t & 1) ? FERRY_I32 : FERRY_I64, m, y2, esz),
                         0);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < m; k++)
                for (int64_t c = 0; c < inner; c++) {
                    int64_t j = idx[k] < 0 ? idx[k] + A : idx[k];
                    memcpy(r + ((o * m + k) * inner + c) * (int64_t)esz,
                           x2 + ((o * A + j) * inner + c) * (int64_t)esz, esz);
                }
        if (bytes)
            assert_memory_equal(y2, r, (size_t)bytes);
        free(x2);
        free(y2);
        free(r);
    }
}

static void test_gather_elements(void **state)
{
    (void)state;
    /* ONNX's example: data [[1,2],[3,4]], axis 1, indices [[0,0],[1,0]]. */
    const int64_t x[4] = {1, 2, 3, 4}, xd[] = {2, 2}, idx[4] = {0, 0, 1, 0};
    int64_t y[4];
    assert_int_equal(cpu_gather_elements(x, xd, 2, 1, idx, FERRY_I64, xd, y, 8), 0);
    const int64_t w[4] = {1, 1, 4, 3};
    assert_memory_equal(y, w, sizeof w);
    /* axis 0, negative indices, indices smaller than data: [[-1, 0, 1]]
     * over [[1,2,3],[4,5,6],[7,8,9]]. */
    const int64_t x3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, x3d[] = {3, 3}, i3d[] = {1, 3};
    const int32_t i3[3] = {-1, 0, 1};
    assert_int_equal(cpu_gather_elements(x3, x3d, 2, 0, i3, FERRY_I32, i3d, y, 8), 0);
    const int64_t w3[3] = {7, 2, 6};
    assert_memory_equal(y, w3, sizeof w3);
    const int64_t bad[4] = {0, 2, 0, 0};
    assert_int_equal(cpu_gather_elements(x, xd, 2, 1, bad, FERRY_I64, xd, y, 8), -1);

    for (int t = 0; t < 200; t++) {
        int nd = (int)irand(1, 4), axis = (int)irand(0, nd - 1);
        int64_t d[MAXD], id[MAXD], xi[MAXD];
        rand_dims(d, nd, 5);
        for (int i = 0; i < nd; i++)
            id[i] = i == axis ? irand(1, 6) : irand(1, d[i]);
        int64_t n = numel(id, nd);
        int64_t *ix = malloc((size_t)n * sizeof *ix);
        float *xv = malloc((size_t)numel(d, nd) * sizeof *xv), *yv = malloc((size_t)n * 4);
        assert_true(ix && xv && yv);
        for (int64_t i = 0; i < numel(d, nd); i++)
            xv[i] = frand();
        for (int64_t i = 0; i < n; i++)
            ix[i] = irand(-d[axis], d[axis] - 1);
        assert_int_equal(cpu_gather_elements(xv, d, nd, axis, ix, FERRY_I64, id, yv, 4), 0);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, id, nd, xi);
            xi[axis] = ix[i] < 0 ? ix[i] + d[axis] : ix[i];
            assert_true(yv[i] == xv[ravel(xi, d, nd)]);
        }
        free(ix);
        free(xv);
        free(yv);
    }
}

/* ---------------------------------------------------------------- slice */

static void test_scatter_nd(void **state)
{
    (void)state;
    /* ONNX's example 1: data [1..8], indices [[4],[3],[1],[7]], updates
     * [9,10,11,12]. */
    const float x1[8] = {1, 2, 3, 4, 5, 6, 7, 8}, u1[4] = {9, 10, 11, 12};
    const int64_t d1[1] = {8}, i1[4] = {4, 3, 1, 7};
    float y1[8];
    assert_int_equal(
        cpu_scatter_nd(x1, d1, 1, i1, FERRY_I64, 4, 1, u1, FERRY_F32, SCATTER_NONE, 0, 0, y1), 0);
    const float w1[8] = {1, 11, 3, 10, 9, 6, 7, 12};
    assert_memory_equal(y1, w1, sizeof w1);
    /* reductions over one element written twice, in order; int32 indices
     * with a negative one (-4 is 4) */
    const int32_t i2[3] = {4, -4, 0};
    const float u2[3] = {3, -2, 0.5f};
    const float want[4][2] = {{6, 1.5f}, {-30, 0.5f}, {5, 1}, {-2, 0.5f}}; /* y[4], y[0] */
    for (int r = SCATTER_ADD; r <= SCATTER_MIN; r++) {
        assert_int_equal(cpu_scatter_nd(x1, d1, 1, i2, FERRY_I32, 3, 1, u2, FERRY_F32, r, 0, 0, y1),
                         0);
        assert_true(y1[4] == want[r - 1][0] && y1[0] == want[r - 1][1]);
        assert_true(y1[1] == 2 && y1[7] == 8);
    }
    /* int64 data: the sum wraps instead of overflowing */
    const int64_t xi[2] = {INT64_MAX, 7}, ui[1] = {1}, di[1] = {2}, ii[1] = {0};
    int64_t yi[2];
    assert_int_equal(
        cpu_scatter_nd(xi, di, 1, ii, FERRY_I64, 1, 1, ui, FERRY_I64, SCATTER_ADD, 0, 0, yi), 0);
    assert_true(yi[0] == INT64_MIN && yi[1] == 7);
    /* out of range; a tuple outside its sample's rows (block 2: tuple 1
     * belongs to sample 1, rows 2..3) */
    const int64_t bad[2] = {8, 0};
    assert_int_equal(
        cpu_scatter_nd(x1, d1, 1, bad, FERRY_I64, 1, 1, u1, FERRY_F32, SCATTER_NONE, 0, 0, y1), -1);
    const int64_t own[2] = {1, 3}, other[2] = {1, 1};
    assert_int_equal(
        cpu_scatter_nd(x1, d1, 1, own, FERRY_I64, 2, 1, u1, FERRY_F32, SCATTER_NONE, 2, 1, y1), 0);
    assert_int_equal(
        cpu_scatter_nd(x1, d1, 1, other, FERRY_I64, 2, 1, u1, FERRY_F32, SCATTER_NONE, 2, 1, y1),
        -2);

    /* random: k index components into data of rank nd, slices of the rest,
     * against a reference that writes element by element */
    for (int t = 0; t < 200; t++) {
        int nd = (int)irand(1, 4), k = (int)irand(1, nd), esz = t % 2 ? 4 : 8;
        int64_t d[MAXD], xi_[MAXD], n_t = irand(0, 6), slice = 1;
        rand_dims(d, nd, 5);
        for (int i = k; i < nd; i++)
            slice *= d[i];
        int64_t n = numel(d, nd), *ix = malloc((size_t)(n_t * k + 1) * sizeof *ix);
        uint8_t *xv = rand_bytes(n * esz), *uv = rand_bytes(n_t * slice * esz);
        uint8_t *yv = malloc((size_t)(n * esz)), *wv = malloc((size_t)(n * esz));
        assert_true(ix && yv && wv);
        for (int64_t i = 0; i < n_t * k; i++)
            ix[i] = irand(-d[i % k], d[i % k] - 1);
        memcpy(wv, xv, (size_t)(n * esz));
        for (int64_t tu = 0; tu < n_t; tu++)
            for (int64_t e = 0; e < slice; e++) {
                unravel(e, d + k, nd - k, xi_ + k);
                for (int j = 0; j < k; j++)
                    xi_[j] = ix[tu * k + j] < 0 ? ix[tu * k + j] + d[j] : ix[tu * k + j];
                memcpy(wv + ravel(xi_, d, nd) * esz, uv + (tu * slice + e) * esz, (size_t)esz);
            }
        assert_int_equal(cpu_scatter_nd(xv, d, nd, ix, FERRY_I64, n_t, k, uv,
                                        esz == 4 ? FERRY_F32 : FERRY_I64, SCATTER_NONE, 0, 0, yv),
                         0);
        assert_memory_equal(yv, wv, (size_t)(n * esz));
        free(ix);
        free(xv);
        free(uv);
        free(yv);
        free(wv);
    }
}

/* GatherND: the ONNX spec's examples (batch_dims 0 and 1, whole rows and
 * single elements), negative indices, an index out of range, and the
 * per-sample rule (component 0 must stay in its sample's rows). */
static void test_gather_nd(void **state)
{
    (void)state;
    /* example 1: data [[0,1],[2,3]], indices [[0,0],[1,1]] -> [0,3] */
    int32_t d1[4] = {0, 1, 2, 3}, y[8];
    int64_t xd[2] = {2, 2}, i1[4] = {0, 0, 1, 1};
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, i1, FERRY_I64, 2, 2, 0, 0, y, 4), 0);
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 3);
    /* example 2: indices [[1],[0]] -> rows [[2,3],[0,1]] */
    int64_t i2[2] = {1, 0};
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, i2, FERRY_I64, 2, 1, 0, 0, y, 4), 0);
    int32_t e2[4] = {2, 3, 0, 1};
    assert_memory_equal(y, e2, sizeof e2);
    /* example 5 (batch_dims 1): data [2,2,2] = 0..7, indices [[1],[0]] ->
     * [[2,3],[4,5]] */
    int32_t d3[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t xd3[3] = {2, 2, 2};
    assert_int_equal(cpu_gather_nd(d3, xd3, 3, 1, i2, FERRY_I64, 2, 1, 0, 0, y, 4), 0);
    int32_t e5[4] = {2, 3, 4, 5};
    assert_memory_equal(y, e5, sizeof e5);
    /* negative indices wrap; int32 indices */
    int32_t i4[4] = {-1, -2, 0, -1};
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, i4, FERRY_I32, 2, 2, 0, 0, y, 4), 0);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 1);
    int64_t bad[2] = {2, 0};
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, bad, FERRY_I64, 1, 2, 0, 0, y, 4), -1);
    /* the batch: data [2 samples x 1 row, 2], tuples (s, j) per sample */
    int64_t own[4] = {0, 1, 1, 0}, other[4] = {1, 1, 1, 0};
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, own, FERRY_I64, 2, 2, 1, 1, y, 4), 0);
    assert_int_equal(y[0], 1);
    assert_int_equal(y[1], 2);
    assert_int_equal(cpu_gather_nd(d1, xd, 2, 0, other, FERRY_I64, 2, 2, 1, 1, y, 4), -2);
}

static void test_scatter_elements(void **state)
{
    (void)state;
    /* ONNX's examples: axis 0 over a 3x3 of zeros; axis 1 over a row, with
     * a negative index; a repeated index with reduction add */
    const float z[9] = {0}, u1[6] = {1.0f, 1.1f, 1.2f, 2.0f, 2.1f, 2.2f};
    const int64_t d33[2] = {3, 3}, d23[2] = {2, 3}, i1[6] = {1, 0, 2, 0, 2, 1};
    float y[9];
    assert_int_equal(
        cpu_scatter_elements(z, d33, 2, 0, i1, FERRY_I64, d23, u1, FERRY_F32, SCATTER_NONE, y), 0);
    const float w1[9] = {2.0f, 1.1f, 0, 1.0f, 0, 2.2f, 0, 2.1f, 1.2f};
    assert_memory_equal(y, w1, sizeof w1);
    const float row[5] = {1, 2, 3, 4, 5}, u2[2] = {1.1f, 2.1f};
    const int64_t d15[2] = {1, 5}, d12[2] = {1, 2};
    const int32_t i2[2] = {1, -2}, i3[2] = {1, 1};
    assert_int_equal(
        cpu_scatter_elements(row, d15, 2, 1, i2, FERRY_I32, d12, u2, FERRY_F32, SCATTER_NONE, y),
        0);
    const float w2[5] = {1.0f, 1.1f, 3.0f, 2.1f, 5.0f};
    assert_memory_equal(y, w2, sizeof w2);
    assert_int_equal(
        cpu_scatter_elements(row, d15, 2, 1, i3, FERRY_I32, d12, u2, FERRY_F32, SCATTER_ADD, y), 0);
    assert_float_equal(y[1], 2.0f + 1.1f + 2.1f, 1e-6);
    assert_true(y[0] == 1 && y[2] == 3 && y[4] == 5);
    const int32_t bad[2] = {1, 5};
    assert_int_equal(
        cpu_scatter_elements(row, d15, 2, 1, bad, FERRY_I32, d12, u2, FERRY_F32, SCATTER_NONE, y),
        -1);
}

static void test_slice(void **state)
{
    (void)state;
    const int64_t x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, xd[] = {10};
    int64_t y[10];
    const int64_t st0[] = {8}, sp0[] = {-3}, yd0[] = {3};
    cpu_slice(x, xd, 1, st0, sp0, y, yd0, 8);
    assert_int_equal(y[0], 8);
    assert_int_equal(y[1], 5);
    assert_int_equal(y[2], 2);
    const int64_t st1[] = {9}, sp1[] = {-1}, yd1[] = {10};
    cpu_slice(x, xd, 1, st1, sp1, y, yd1, 8);
    for (int i = 0; i < 10; i++)
        assert_int_equal(y[i], 9 - i);
    /* [3,4] rows 2..0 step -2, columns 1..3 step 2. */
    const int32_t m[12] = {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23};
    const int64_t md[] = {3, 4}, st2[] = {2, 1}, sp2[] = {-2, 2}, yd2[] = {2, 2};
    int32_t y2[4];
    cpu_slice(m, md, 2, st2, sp2, y2, yd2, 4);
    const int32_t w2[4] = {21, 23, 1, 3};
    assert_memory_equal(y2, w2, sizeof w2);
    /* one element of a dim taken with a step near INT64_MIN (a fuzzed
     * Slice of a Shape): the step times the stride overflowed */
    const int64_t st3[] = {1, 2}, sp3[] = {-INT64_MAX, 1}, yd3[] = {1, 2};
    cpu_slice(m, md, 2, st3, sp3, y2, yd3, 4);
    assert_true(y2[0] == 12 && y2[1] == 13);

    for (int t = 0; t < 300; t++) {
        int nd = (int)irand(1, 5);
        int64_t d[MAXD], st[MAXD], sp[MAXD], yd[MAXD], yi[MAXD], xi[MAXD];
        rand_dims(d, nd, 7);
        for (int i = 0; i < nd; i++) {
            st[i] = irand(0, d[i] - 1);
            do
                sp[i] = irand(-3, 3);
            while (sp[i] == 0);
            int64_t room = sp[i] > 0 ? (d[i] - st[i] + sp[i] - 1) / sp[i] : st[i] / -sp[i] + 1;
            yd[i] = irand(rnd() % 8 == 0 ? 0 : 1, room);
        }
        size_t esz = esizes[t % 6];
        int64_t n = numel(yd, nd);
        uint8_t *xv = rand_bytes(numel(d, nd) * (int64_t)esz), *yv = zalloc(n * (int64_t)esz);
        cpu_slice(xv, d, nd, st, sp, yv, yd, esz);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, yd, nd, yi);
            for (int k = 0; k < nd; k++)
                xi[k] = st[k] + yi[k] * sp[k];
            assert_memory_equal(yv + i * (int64_t)esz, xv + ravel(xi, d, nd) * (int64_t)esz, esz);
        }
        free(xv);
        free(yv);
    }
}

/* ------------------------------------------------------- concat, split */

static void test_concat_split(void **state)
{
    (void)state;
    const int32_t a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    const void *in[2] = {a, b};
    const int64_t lens[2] = {2, 1}, yd[] = {2, 3};
    int32_t y[6];
    cpu_concat(in, lens, 2, y, yd, 2, 1, 4);
    const int32_t w[6] = {1, 2, 5, 3, 4, 6};
    assert_memory_equal(y, w, sizeof w);
    int32_t a2[4], b2[2];
    void *out[2] = {a2, b2};
    cpu_split(y, yd, 2, 1, lens, 2, out, 4);
    assert_memory_equal(a2, a, sizeof a);
    assert_memory_equal(b2, b, sizeof b);

    for (int t = 0; t < 100; t++) {
        int nd = (int)irand(1, 5), axis = (int)irand(0, nd - 1), n = (int)irand(1, 4);
        int64_t d[MAXD], l[4], total = 0;
        rand_dims(d, nd, 5);
        size_t esz = esizes[t % 6];
        void *xs[4], *ys[4];
        for (int i = 0; i < n; i++) {
            l[i] = irand(0, 4);
            total += l[i];
        }
        int64_t od[MAXD];
        memcpy(od, d, sizeof od);
        od[axis] = total;
        uint8_t *cat = zalloc(numel(od, nd) * (int64_t)esz);
        for (int i = 0; i < n; i++) {
            d[axis] = l[i];
            xs[i] = rand_bytes(numel(d, nd) * (int64_t)esz);
            ys[i] = zalloc(numel(d, nd) * (int64_t)esz);
        }
        cpu_concat((const void *const *)xs, l, n, cat, od, nd, axis, esz);
        /* every element of the output comes from the input its axis
         * coordinate falls in */
        int64_t yi[MAXD];
        for (int64_t i = 0; i < numel(od, nd); i++) {
            unravel(i, od, nd, yi);
            int k = 0;
            int64_t c = yi[axis];
            while (c >= l[k])
                c -= l[k++];
            d[axis] = l[k];
            yi[axis] = c;
            assert_memory_equal(cat + i * (int64_t)esz,
                                (uint8_t *)xs[k] + ravel(yi, d, nd) * (int64_t)esz, esz);
        }
        cpu_split(cat, od, nd, axis, l, n, ys, esz);
        for (int i = 0; i < n; i++) {
            d[axis] = l[i];
            if (numel(d, nd))
                assert_memory_equal(xs[i], ys[i], (size_t)numel(d, nd) * esz);
            free(xs[i]);
            free(ys[i]);
        }
        free(cat);
    }
}

/* ---------------------------------------------------- expand, tile, where */

/* Index into a tensor of dims d[n] broadcast to out dims od[on]. */
static int64_t bcast_index(const int64_t *oi, int on, const int64_t *d, int n)
{
    int64_t o = 0;
    for (int k = 0; k < n; k++) {
        int64_t v = oi[on - n + k];
        o = o * d[k] + (d[k] == 1 ? 0 : v);
    }
    return o;
}

/* A random shape that broadcasts to od[on]: a suffix of it with some dims
 * set to 1. */
static int rand_bcast_dims(const int64_t *od, int on, int64_t *d)
{
    int n = (int)irand(0, on);
    for (int k = 0; k < n; k++)
        d[k] = rnd() % 3 == 0 ? 1 : od[on - n + k];
    return n;
}

static void test_expand_tile(void **state)
{
    (void)state;
    const int32_t x[3] = {1, 2, 3};
    const int64_t xd[] = {3, 1}, yd[] = {2, 3, 2};
    int32_t y[12];
    cpu_expand(x, xd, 2, y, yd, 3, 4);
    const int32_t w[12] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
    assert_memory_equal(y, w, sizeof w);
    const int64_t td[] = {1, 3}, rep[] = {2, 2};
    cpu_tile(x, td, 2, rep, y, 4);
    const int32_t wt[12] = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
    assert_memory_equal(y, wt, sizeof wt);

    for (int t = 0; t < 200; t++) {
        int on = (int)irand(0, 5);
        int64_t od[MAXD], d[MAXD], oi[MAXD], r[MAXD];
        rand_dims(od, on, 5);
        int n = rand_bcast_dims(od, on, d);
        size_t esz = esizes[t % 6];
        int64_t no = numel(od, on);
        uint8_t *xv = rand_bytes(numel(d, n) * (int64_t)esz), *yv = zalloc(no * (int64_t)esz);
        cpu_expand(xv, d, n, yv, od, on, esz);
        for (int64_t i = 0; i < no; i++) {
            unravel(i, od, on, oi);
            assert_memory_equal(yv + i * (int64_t)esz,
                                xv + bcast_index(oi, on, d, n) * (int64_t)esz, esz);
        }
        free(yv);
        /* Tile X (dims od) by random repeats. */
        free(xv);
        xv = rand_bytes(no * (int64_t)esz);
        int64_t ty[MAXD];
        for (int k = 0; k < on; k++) {
            r[k] = irand(0, 3);
            ty[k] = od[k] * r[k];
        }
        int64_t nt = numel(ty, on);
        yv = zalloc(nt * (int64_t)esz);
        cpu_tile(xv, od, on, r, yv, esz);
        for (int64_t i = 0; i < nt; i++) {
            unravel(i, ty, on, oi);
            for (int k = 0; k < on; k++)
                oi[k] %= od[k];
            assert_memory_equal(yv + i * (int64_t)esz, xv + ravel(oi, od, on) * (int64_t)esz, esz);
        }
        free(xv);
        free(yv);
    }
}

static void test_where(void **state)
{
    (void)state;
    /* cond [3,1], A [1,4], B scalar -> [3,4] */
    const uint8_t c[3] = {1, 0, 1};
    const float a[4] = {1, 2, 3, 4}, b[1] = {-1};
    const int64_t cd[] = {3, 1}, ad[] = {1, 4}, yd[] = {3, 4};
    float y[12];
    cpu_where(c, cd, 2, a, ad, 2, b, NULL, 0, y, yd, 2, 4);
    const float w[12] = {1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4};
    assert_memory_equal(y, w, sizeof w);

    for (int t = 0; t < 300; t++) {
        int on = (int)irand(0, 5);
        int64_t od[MAXD], dc[MAXD], da[MAXD], db[MAXD], oi[MAXD];
        rand_dims(od, on, 5);
        int nc = rand_bcast_dims(od, on, dc), na = rand_bcast_dims(od, on, da),
            nb = rand_bcast_dims(od, on, db);
        size_t esz = esizes[t % 6];
        int64_t no = numel(od, on);
        uint8_t *cv = rand_bytes(numel(dc, nc));
        for (int64_t i = 0; i < numel(dc, nc); i++)
            cv[i] &= 1;
        uint8_t *av = rand_bytes(numel(da, na) * (int64_t)esz),
                *bv = rand_bytes(numel(db, nb) * (int64_t)esz), *yv = zalloc(no * (int64_t)esz);
        cpu_where(cv, dc, nc, av, da, na, bv, db, nb, yv, od, on, esz);
        for (int64_t i = 0; i < no; i++) {
            unravel(i, od, on, oi);
            const uint8_t *want = cv[bcast_index(oi, on, dc, nc)]
                                      ? av + bcast_index(oi, on, da, na) * (int64_t)esz
                                      : bv + bcast_index(oi, on, db, nb) * (int64_t)esz;
            assert_memory_equal(yv + i * (int64_t)esz, want, esz);
        }
        free(cv);
        free(av);
        free(bv);
        free(yv);
    }
}

/* ------------------------------------------------------------------ pad */

static void pad1(const int32_t *x, int64_t n, int64_t b, int64_t e, cpu_pad_mode mode, int32_t v,
                 const int32_t *want, int64_t wn)
{
    int32_t y[32];
    const int64_t xd[] = {n}, pads[] = {b, e};
    assert_int_equal(n + b + e, wn);
    cpu_pad(x, xd, 1, pads, mode, &v, y, 4);
    assert_memory_equal(y, want, (size_t)wn * 4);
}

/* numpy's pad after cropping, one axis: t in padded coordinates. */
static int64_t pad_ref_map(int64_t t, int64_t n, cpu_pad_mode mode)
{
    if (t >= 0 && t < n)
        return t;
    if (mode == CPU_PAD_CONSTANT)
        return -1;
    if (mode == CPU_PAD_EDGE)
        return t < 0 ? 0 : n - 1;
    if (mode == CPU_PAD_WRAP) {
        while (t < 0)
            t += n;
        return t % n;
    }
    if (n == 1)
        return 0;
    while (t < 0 || t >= n) /* bounce off the ends */
        t = t < 0 ? -t : 2 * (n - 1) - t;
    return t;
}

static void test_pad(void **state)
{
    (void)state;
    const int32_t x[5] = {1, 2, 3, 4, 5};
    pad1(x, 3, 2, 2, CPU_PAD_REFLECT, 0, (const int32_t[]){3, 2, 1, 2, 3, 2, 1}, 7);
    pad1(x, 3, 2, 2, CPU_PAD_EDGE, 0, (const int32_t[]){1, 1, 1, 2, 3, 3, 3}, 7);
    pad1(x, 3, 2, 2, CPU_PAD_CONSTANT, 9, (const int32_t[]){9, 9, 1, 2, 3, 9, 9}, 7);
    pad1(x, 3, 2, 1, CPU_PAD_WRAP, 0, (const int32_t[]){2, 3, 1, 2, 3, 1}, 6);
    /* negative pads crop first, then the mode acts on what is left */
    pad1(x, 5, -1, 2, CPU_PAD_REFLECT, 0, (const int32_t[]){2, 3, 4, 5, 4, 3}, 6);
    pad1(x, 5, 2, -2, CPU_PAD_EDGE, 0, (const int32_t[]){1, 1, 1, 2, 3}, 5);
    pad1(x, 5, -2, -1, CPU_PAD_CONSTANT, 0, (const int32_t[]){3, 4}, 2);
    /* reflect further than the tensor is long bounces */
    pad1(x, 3, 5, 0, CPU_PAD_REFLECT, 0, (const int32_t[]){2, 1, 2, 3, 2, 1, 2, 3}, 8);
    /* 2-D: [[1,2],[3,4]] edge-padded by one on each side */
    const int32_t m[4] = {1, 2, 3, 4};
    const int64_t md[] = {2, 2}, mp[] = {1, 1, 1, 1};
    int32_t y[16];
    cpu_pad(m, md, 2, mp, CPU_PAD_EDGE, NULL, y, 4);
    const int32_t w[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    assert_memory_equal(y, w, sizeof w);

    for (int t = 0; t < 400; t++) {
        int nd = (int)irand(1, 4);
        cpu_pad_mode mode = (cpu_pad_mode)(t % 4);
        int64_t d[MAXD], pads[2 * MAXD], yd[MAXD], yi[MAXD], xi[MAXD], lo[MAXD], n[MAXD];
        rand_dims(d, nd, 6);
        for (int k = 0; k < nd; k++) {
            int64_t need = mode == CPU_PAD_REFLECT ? 2 : mode == CPU_PAD_CONSTANT ? 0 : 1;
            /* crop at most what leaves `need` elements, pad up to 4 */
            int64_t spare = d[k] - need;
            int64_t pb = irand(spare >= 0 ? -(spare / 2) : 0, 4);
            int64_t pe = irand(spare >= 0 ? -(spare / 2) : 0, 4);
            if (d[k] < need)
                pb = pe = 0;
            pads[k] = pb;
            pads[nd + k] = pe;
            yd[k] = d[k] + pb + pe;
            lo[k] = pb < 0 ? -pb : 0;
            n[k] = d[k] - lo[k] - (pe < 0 ? -pe : 0);
        }
        int64_t ny = numel(yd, nd);
        int32_t *xv = rand_bytes(numel(d, nd) * 4), *yv = zalloc(ny * 4), val = -7;
        cpu_pad(xv, d, nd, pads, mode, &val, yv, 4);
        for (int64_t i = 0; i < ny; i++) {
            unravel(i, yd, nd, yi);
            int constant = 0;
            for (int k = 0; k < nd; k++) {
                int64_t s = pad_ref_map(yi[k] - (pads[k] > 0 ? pads[k] : 0), n[k], mode);
                if (s < 0)
                    constant = 1;
                xi[k] = lo[k] + (s < 0 ? 0 : s);
            }
            assert_int_equal(yv[i], constant ? val : xv[ravel(xi, d, nd)]);
        }
        free(xv);
        free(yv);
    }
}

/* --------------------------------------------------------------- resize */

/* ONNX's definitions, written out per element in double. */
static double ref_coord(cpu_resize_coord c, int64_t i, int64_t in, int64_t out, double s)
{
    if (c == CPU_COORD_ALIGN_CORNERS)
        return out == 1 ? 0.0 : (double)i * (double)(in - 1) / (double)(out - 1);
    if (c == CPU_COORD_ASYMMETRIC)
        return (double)i / s;
    if (c == CPU_COORD_PYTORCH_HALF_PIXEL && out == 1)
        return 0.0;
    if (c == CPU_COORD_HALF_PIXEL_SYMMETRIC) {
        double adj = (double)out / (s * (double)in), center = (double)in / 2.0;
        return center * (1.0 - adj) + ((double)i + 0.5) / s - 0.5;
    }
    return ((double)i + 0.5) / s - 0.5;
}

static int64_t ref_clamp(int64_t v, int64_t n)
{
    return v < 0 ? 0 : v >= n ? n - 1 : v;
}

static void resize_ref(const float *x, const int64_t *xd, int nd, double *y, const int64_t *yd,
                       const float *sc, cpu_resize_mode mode, cpu_resize_coord c,
                       cpu_resize_nearest nm)
{
    /* ONNX's reference computes in float64 from the sizes (their exact
     * ratio) or from the f32 scales given; the contract takes a scale that
     * is the rounded ratio as the ratio. */
    double scale[MAXD];
    for (int k = 0; k < nd; k++) {
        double r = (double)yd[k] / (double)xd[k];
        scale[k] = (float)r == sc[k] ? r : (double)sc[k];
    }
    int64_t yi[MAXD], xi[MAXD], i0[MAXD], i1[MAXD];
    double w[MAXD];
    for (int64_t i = 0, n = numel(yd, nd); i < n; i++) {
        unravel(i, yd, nd, yi);
        for (int k = 0; k < nd; k++) {
            double v = ref_coord(c, yi[k], xd[k], yd[k], scale[k]);
            if (mode == CPU_RESIZE_NEAREST) {
                double f = floor(v), r;
                if (nm == CPU_NEAREST_FLOOR)
                    r = f;
                else if (nm == CPU_NEAREST_CEIL)
                    r = ceil(v);
                else if (v - f == 0.5)
                    r = nm == CPU_NEAREST_ROUND_PREFER_CEIL ? f + 1 : f;
                else
                    r = round(v);
                i0[k] = i1[k] = ref_clamp((int64_t)r, xd[k]);
                w[k] = 0;
            } else {
                double f = floor(v);
                i0[k] = ref_clamp((int64_t)f, xd[k]);
                i1[k] = ref_clamp((int64_t)f + 1, xd[k]);
                w[k] = v - f;
            }
        }
        double s = 0;
        for (int corner = 0; corner < (1 << nd); corner++) {
            double wt = 1;
            for (int k = 0; k < nd; k++) {
                int hi = corner >> k & 1;
                xi[k] = hi ? i1[k] : i0[k];
                wt *= hi ? w[k] : 1 - w[k];
            }
            if (wt != 0)
                s += wt * x[ravel(xi, xd, nd)];
        }
        y[i] = s;
    }
}

static void resize_check(const float *x, const int64_t *xd, int nd, const int64_t *yd,
                         const float *sc, cpu_resize_mode mode, cpu_resize_coord c,
                         cpu_resize_nearest nm, const double *want)
{
    int64_t n = numel(yd, nd);
    float *y = malloc((size_t)n * sizeof *y);
    double *r = malloc((size_t)n * sizeof *r);
    assert_true(y && r);
    cpu_resize(x, xd, nd, y, yd, sc, mode, c, nm);
    resize_ref(x, xd, nd, r, yd, sc, mode, c, nm);
    for (int64_t i = 0; i < n; i++) {
        double tol = 1e-5 * (1.0 + fabs(r[i]));
        if (fabs(y[i] - r[i]) > tol)
            fail_msg("resize mode %d coord %d nearest %d: [%lld] = %.9g, reference %.9g", (int)mode,
                     (int)c, (int)nm, (long long)i, y[i], r[i]);
        if (want && fabs(y[i] - want[i]) > tol)
            fail_msg("resize mode %d coord %d nearest %d: [%lld] = %.9g, torch %.9g", (int)mode,
                     (int)c, (int)nm, (long long)i, y[i], want[i]);
    }
    free(y);
    free(r);
}

static float tx(int i)
{
    return (float)((i * i * 7 + 3 * i) % 11) - 3.5f + 0.25f * (float)i;
}

static void test_resize_torch(void **state)
{
    (void)state;
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = tx(i);
    const int64_t xd[] = {1, 1, 3, 4}, up[] = {1, 1, 5, 7}, dn[] = {1, 1, 2, 3};
    const float su[] = {1, 1, 5.0f / 3, 7.0f / 4}, sd[] = {1, 1, 2.0f / 3, 3.0f / 4};
    /* torch.nn.functional.interpolate(x, size, ...) in float64 */
    static const double lin_ac_up[35] = {
        -3.5,  1.625, 6.75,  2.375, -2,   0.625, 3.25,  -1.5,  1.125, 3.75,  2.375, 1,
        1.125, 1.25,  0.5,   0.625, 0.75, 2.375, 4,     1.625, -0.75, 4.5,   2.125, -0.25,
        1.625, 3.5,   1.375, -0.75, 8.5,  3.625, -1.25, 0.875, 3,     1.125, -0.75};
    static const double lin_pt_up[35] = {
        -3.5, 0.160714286, 6.01785714,    2.375, -1.625,      1.375,       3.25,
        -1.9, 0.332142857, 3.90357143,    2.375, 0.489285714, 1.20357143,  1.65,
        0.5,  0.589285714, 0.732142857,   2.375, 3.66071429,  0.946428571, -0.75,
        5.3,  3.24642857,  -0.0392857143, 1.475, 3.10357143,  0.732142857, -0.75,
        8.5,  5.01785714,  -0.553571429,  0.875, 2.73214286,  0.589285714, -0.75};
    static const double near_up[35] = {-3.5,  -3.5, 6.75,  6.75,  -2,    -2,   3.25, -3.5, -3.5,
                                       6.75,  6.75, -2,    -2,    3.25,  0.5,  0.5,  0.75, 0.75,
                                       4,     4,    -0.75, 0.5,   0.5,   0.75, 0.75, 4,    4,
                                       -0.75, 8.5,  8.5,   -1.25, -1.25, 3,    3,    -0.75};
    static const double exact_up[35] = {-3.5,  -3.5,  6.75,  -2,    -2,   3.25,  3.25,  -3.5, -3.5,
                                        6.75,  -2,    -2,    3.25,  3.25, 0.5,   0.5,   0.75, 4,
                                        4,     -0.75, -0.75, 8.5,   8.5,  -1.25, 3,     3,    -0.75,
                                        -0.75, 8.5,   8.5,   -1.25, 3,    3,     -0.75, -0.75};
    static const double lin_ac_dn[6] = {-3.5, 2.375, 3.25, 8.5, 0.875, -0.75};
    static const double lin_pt_dn[6] = {-1.20833333, 2.375, 1.79166667,
                                        5.29166667,  1.25,  -0.0833333333};
    static const double near_dn[6] = {-3.5, 6.75, -2, 0.5, 0.75, 4};
    static const double exact_dn[6] = {-3.5, -2, 3.25, 8.5, 3, -0.75};
    const cpu_resize_mode L = CPU_RESIZE_LINEAR, N = CPU_RESIZE_NEAREST;
    const cpu_resize_nearest F = CPU_NEAREST_FLOOR, PC = CPU_NEAREST_ROUND_PREFER_CEIL;
    resize_check(x, xd, 4, up, su, L, CPU_COORD_ALIGN_CORNERS, F, lin_ac_up);
    resize_check(x, xd, 4, up, su, L, CPU_COORD_PYTORCH_HALF_PIXEL, F, lin_pt_up);
    resize_check(x, xd, 4, up, su, L, CPU_COORD_HALF_PIXEL, F, lin_pt_up);
    resize_check(x, xd, 4, up, su, N, CPU_COORD_ASYMMETRIC, F, near_up);
    resize_check(x, xd, 4, up, su, N, CPU_COORD_HALF_PIXEL, PC, exact_up);
    resize_check(x, xd, 4, dn, sd, L, CPU_COORD_ALIGN_CORNERS, F, lin_ac_dn);
    resize_check(x, xd, 4, dn, sd, L, CPU_COORD_PYTORCH_HALF_PIXEL, F, lin_pt_dn);
    resize_check(x, xd, 4, dn, sd, N, CPU_COORD_ASYMMETRIC, F, near_dn);
    resize_check(x, xd, 4, dn, sd, N, CPU_COORD_HALF_PIXEL, PC, exact_dn);

    /* 3-D linear [1,1,4] -> 7 and (scale 0.5) -> 2; 5-D trilinear
     * [1,1,2,3,4] -> [3,5,6] (entries and sum). */
    const int64_t x3[] = {1, 1, 4}, y3[] = {1, 1, 7}, y3d[] = {1, 1, 2};
    const float s3[] = {1, 1, 7.0f / 4}, s3d[] = {1, 1, 0.5f};
    static const double w3[7] = {-3.5, 0.160714285714, 6.01785714286, 2.375, -1.625, 1.375, 3.25};
    static const double w3d[2] = {1.625, 0.625};
    resize_check(x, x3, 3, y3, s3, L, CPU_COORD_PYTORCH_HALF_PIXEL, F, w3);
    resize_check(x, x3, 3, y3d, s3d, L, CPU_COORD_PYTORCH_HALF_PIXEL, F, w3d);
    const int64_t x5[] = {1, 1, 2, 3, 4}, y5[] = {1, 1, 3, 5, 6};
    const float s5[] = {1, 1, 1.5f, 5.0f / 3, 1.5f};
    float y[90];
    cpu_resize(x, x5, 5, y, y5, s5, L, CPU_COORD_HALF_PIXEL, F);
    double sum = 0;
    for (int i = 0; i < 90; i++)
        sum += y[i];
    assert_float_equal(y[0], -3.5, 1e-5);
    assert_float_equal(y[17], -0.75, 1e-5);
    assert_float_equal(y[45], 3.125, 1e-5);
    assert_float_equal(y[89], 12.25, 1e-5);
    assert_float_equal(sum, 311.4, 1e-3);
    resize_check(x, x5, 5, y5, s5, L, CPU_COORD_HALF_PIXEL, F, NULL);
}

/* cpu_resize_cubic against torch's bicubic (a = -0.75) in float64:
 * upsampling, downsampling, align_corners, and two channels (an axis
 * not resized) with one resized axis shrinking and one growing. */
static void cubic_check(const int64_t *xd, const int64_t *yd, const float *sc, cpu_resize_coord c,
                        const double *want, int64_t n)
{
    float x[24], y[36];
    for (int i = 0; i < 24; i++)
        x[i] = tx(i);
    cpu_resize_cubic(x, xd, 4, y, yd, sc, c, -0.75f);
    for (int64_t i = 0; i < n; i++)
        if (fabs(y[i] - want[i]) > 1e-5 * (1.0 + fabs(want[i])))
            fail_msg("cubic coord %d: [%lld] = %.9g, torch %.9g", (int)c, (long long)i, y[i],
                     want[i]);
}

static void test_resize_cubic(void **state)
{
    (void)state;
    static const double up[35] = {
        -4.99621665, 0.544685313, 7.14200164,   2.84375,  -2.67808036, 0.909031888, 4.25013429,
        -3.22744479, 0.148070882, 4.35277496,   3.026,    0.28183145,  0.999515124, 1.82678298,
        0.475195882, 0.385317966, 0.585573069,  2.84375,  3.87834821,  1.06839923,  -1.22127824,
        6.33783655,  3.14786206,  -0.747250182, 1.294625, 3.76034785,  0.907970299, -1.51999362,
        10.3306084,  5.35136826,  -1.02996848,  0.0695,   2.89568276,  0.762346028, -1.11253699};
    static const double dn[6] = {-1.57331905, 2.93273926,  1.81516294,
                                 5.62634729,  0.885986328, -0.192283348};
    static const double ac[35] = {
        -3.5,  2.4453125,  6.75,    2.84375,    -2,      -0.1953125,  3.25,
        -2.25, 1.11035156, 3.9375,  3.08105469, 1.09375, 0.905273438, 1.25,
        0.5,   0.3203125,  0.75,    2.84375,    4,       1.9296875,   -0.75,
        4.875, 1.57421875, -0.8125, 1.578125,   4.0625,  1.92578125,  -1.125,
        8.5,   3.2265625,  -1.25,   0.3125,     3,       1.5234375,   -0.75};
    static const double ch[36] = {
        -4.38975694, 2.4453125, 6.29282407,  -1.02199074, -0.1953125, 3.70572917,
        0.478298611, 0.3203125, 1.32060185,  3.95023148,  1.9296875,  -1.16232639,
        9.34635417,  3.2265625, -1.4212963,  2.5462963,   1.5234375,  -1.07552083,
        10.2595486,  4.6328125, 0.791666667, 5.33333333,  5.1171875,  3.01128472,
        3.21788194,  5.5703125, 6.18981481,  1.93518519,  6.1796875,  12.0529514,
        1.13107639,  3.9765625, 5.40277778,  1.72222222,  6.7734375,  13.1397569};
    const int64_t x1[] = {1, 1, 3, 4}, y_up[] = {1, 1, 5, 7}, y_dn[] = {1, 1, 2, 3};
    const int64_t x2[] = {1, 2, 3, 4}, y_ch[] = {1, 2, 3, 6};
    const float s_up[] = {1, 1, 5.0f / 3, 7.0f / 4}, s_dn[] = {1, 1, 2.0f / 3, 3.0f / 4};
    const float s_ch[] = {1, 1, 1, 1.5f};
    cubic_check(x1, y_up, s_up, CPU_COORD_HALF_PIXEL, up, 35);
    cubic_check(x1, y_dn, s_dn, CPU_COORD_HALF_PIXEL, dn, 6);
    cubic_check(x1, y_up, s_up, CPU_COORD_ALIGN_CORNERS, ac, 35);
    cubic_check(x2, y_ch, s_ch, CPU_COORD_HALF_PIXEL, ch, 36);
}

/* cpu_eye: ones at (i, i + k) for k above, on and below the diagonal, in
 * a float and an integer type. */
static void test_eye(void **state)
{
    (void)state;
    float f[12];
    int64_t l[12];
    for (int64_t k = -3; k <= 4; k++) {
        cpu_eye(f, 3, 4, k, FERRY_F32);
        cpu_eye(l, 3, 4, k, FERRY_I64);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) {
                assert_true(f[i * 4 + j] == (j == i + k ? 1.0f : 0.0f));
                assert_int_equal(l[i * 4 + j], j == i + k);
            }
    }
}

/* cpu_grid_sample against torch.nn.functional.grid_sample in float64 on
 * x [1,2,3,4] (tx) at six points: the corners, inside, and outside the
 * image on either side, every mode, padding and align_corners. */
static void test_grid_sample(void **state)
{
    (void)state;
    static const double want[2][3][2][12] = {
        {{{-0.875, -0.1875, -1.40125, 0.53, -0.1575, 2.375, 2.375, 3.0625, 5.43875, 0.23, 2.5725,
           4.375},
          {-3.5, -0.75, 0.0575, 2.59, -0.421875, 2.375, 9.5, 12.25, 4.6875, 1.89, 10.333125,
           4.375}},
         {{-3.5, -0.75, -1.475, 5.3, -0.75, 2.375, 9.5, 12.25, 5.725, 2.3, 12.25, 4.375},
          {-3.5, -0.75, 0.0575, 3.7, -0.46875, 2.375, 9.5, 12.25, 4.6875, 2.7, 11.48125, 4.375}},
         {{-3.5, -0.75, -1.475, 5.3, -0.75, 2.375, 9.5, 12.25, 5.725, 2.3, 12.25, 4.375},
          {-3.5, -0.75, 0.0575, 2.575, -0.46125, 2.375, 9.5, 12.25, 4.6875, 3.795, 11.38875,
           4.375}}},
        {{{-3.5, 0, -2, 0, 0, 4, 9.5, 0, 6, 0, 0, 2},
          {-3.5, -0.75, -2, 0.5, -0.75, 4, 9.5, 12.25, 6, 3.5, 12.25, 2}},
         {{-3.5, -0.75, -2, 8.5, -0.75, 4, 9.5, 12.25, 6, 1.5, 12.25, 2},
          {-3.5, -0.75, -2, 0.5, -0.75, 4, 9.5, 12.25, 6, 3.5, 12.25, 2}},
         {{-3.5, -0.75, -2, 8.5, -0.75, 4, 9.5, 12.25, 6, 1.5, 12.25, 2},
          {-3.5, -0.75, -2, 0.5, -0.75, 4, 9.5, 12.25, 6, 3.5, 12.25, 2}}}};
    const float grid[12] = {-1, -1, 1, 1, 0.3f, -0.7f, -1.2f, 0.4f, 0.95f, 1.1f, 0, 0};
    const int64_t xd[4] = {1, 2, 3, 4};
    float x[24], y[12];
    for (int i = 0; i < 24; i++)
        x[i] = tx(i);
    for (int m = 0; m < 2; m++)
        for (int p = 0; p < 3; p++)
            for (int a = 0; a < 2; a++) {
                cpu_grid_sample(x, xd, grid, 2, 3, y, m, p, a);
                for (int i = 0; i < 12; i++)
                    if (fabs(y[i] - want[m][p][a][i]) > 1e-5 * (1.0 + fabs(want[m][p][a][i])))
                        fail_msg("grid_sample nearest %d padding %d align %d: [%d] = %.9g, torch "
                                 "%.9g",
                                 m, p, a, i, y[i], want[m][p][a][i]);
            }
}

/* A grid of NaN, infinities or 1e30 (found by running a GridSample model
 * on such a grid under UBSan: the float -> int64 conversions overflowed,
 * then iy * W + ix) reads as PyTorch 1.13's clamps make it, channel 0 of
 * x [1,2,3,4] = 0..23 against torch.nn.functional.grid_sample in float64;
 * under zeros padding a non-finite point is outside (PyTorch: NaN for
 * bilinear). Reflection of +-1e30 depends on float rounding: it only has
 * to land in the image. */
static void test_grid_sample_nonfinite(void **state)
{
    (void)state;
    const float inf = INFINITY, nan = NAN;
    const float grid[12] = {nan,   0.2f, inf,    0.1f,  -inf, -0.3f,
                            1e30f, 0.5f, -1e30f, 1e30f, 0.5f, nan};
    static const double want[2][3][2][6] = {
        {{{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}},
         {{5.2, 7.6, 2.2, 10, 8, 2.5}, {4.8, 7.4, 2.8, 9, 8, 2.25}},
         {{5.2, 4.6, 2.2, -1, -1, 2.5}, {4.8, 4.4, 2.8, -1, -1, 2.25}}},
        {{{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}},
         {{4, 7, 4, 11, 8, 2}, {4, 7, 4, 11, 8, 2}},
         {{4, 4, 4, -1, -1, 2}, {4, 4, 4, -1, -1, 2}}}};
    const int64_t xd[4] = {1, 2, 3, 4};
    float x[24], y[12];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    for (int m = 0; m < 2; m++)
        for (int p = 0; p < 3; p++)
            for (int a = 0; a < 2; a++) {
                cpu_grid_sample(x, xd, grid, 2, 3, y, m, p, a);
                for (int i = 0; i < 6; i++) {
                    double w = want[m][p][a][i];
                    int ok =
                        w < 0 ? y[i] >= 0.0f && y[i] <= 11.0f : fabs(y[i] - w) <= 1e-5 * (1 + w);
                    if (!ok)
                        fail_msg(
                            "grid_sample nearest %d padding %d align %d: [%d] = %.9g, want %.9g", m,
                            p, a, i, y[i], w);
                }
            }
}

/* Values from ONNX 1.13's own reference (interpolate_nd in
 * onnx/backend/test/case/node/resize.py, float64, sizes given), chosen
 * where an f32 scale would break a nearest tie the other way: 3 -> 4 at
 * asymmetric maps 2 to 1.5 exactly only with the scale in double. */
static void test_resize_onnx_reference(void **state)
{
    (void)state;
    float x[20];
    for (int i = 0; i < 20; i++)
        x[i] = tx(i);
    const cpu_resize_mode N = CPU_RESIZE_NEAREST, L = CPU_RESIZE_LINEAR;
    const int64_t a[] = {1, 1, 3, 4}, ay[] = {1, 1, 4, 3};
    const float as[] = {1, 1, 4.0f / 3, 3.0f / 4};
    static const double aw[12] = {-3.5, 6.75,  3.25,  0.5, 0.75,  -0.75,
                                  8.5,  -1.25, -0.75, 8.5, -1.25, -0.75};
    resize_check(x, a, 4, ay, as, N, CPU_COORD_ASYMMETRIC, CPU_NEAREST_ROUND_PREFER_CEIL, aw);
    const int64_t b[] = {1, 1, 5, 3}, by[] = {1, 1, 3, 9};
    const float bs[] = {1, 1, 3.0f / 5, 3};
    static const double bw[27] = {-3.5,  -3.5,  -3.5,  -3.5,  6.75,  6.75,  6.75,  -2,    -2,
                                  4,     4,     4,     4,     -0.75, -0.75, -0.75, 8.5,   8.5,
                                  -1.25, -1.25, -1.25, -1.25, 3,     3,     3,     -0.75, -0.75};
    resize_check(x, b, 4, by, bs, N, CPU_COORD_HALF_PIXEL, CPU_NEAREST_FLOOR, bw);
    const int64_t c[] = {1, 1, 4, 5}, cy[] = {1, 1, 1, 2}, dy[] = {1, 1, 3, 2}, ey[] = {1, 1, 7, 8};
    const float cs[] = {1, 1, 1.0f / 4, 2.0f / 5}, ds[] = {1, 1, 3.0f / 4, 2.0f / 5},
                es[] = {1, 1, 7.0f / 4, 8.0f / 5};
    static const double cw[2] = {-3.5, 3.25};
    resize_check(x, c, 4, cy, cs, N, CPU_COORD_ASYMMETRIC, CPU_NEAREST_ROUND_PREFER_CEIL, cw);
    static const double dw_ac[6] = {-3.5, 0.5, 1.875, 2.375, 3.25, 11.25};
    static const double dw_as[6] = {-3.5, 0.625, 1.5, 4.29166667, 3.16666667, 4.625};
    resize_check(x, c, 4, dy, ds, L, CPU_COORD_ALIGN_CORNERS, 0, dw_ac);
    resize_check(x, c, 4, dy, ds, L, CPU_COORD_ASYMMETRIC, 0, dw_as);
    static const double ew[56] = {
        -3.5,        0.984375,   6.203125,    0.734375,   -0.359375,   2.921875,   1.703125, 0.5,
        -1.98214286, 1.40848214, 5.31026786,  0.734375,   0.533482143, 4.70758929, 2.171875, -0.125,
        0.446428571, 2.08705357, 3.88169643,  0.734375,   1.96205357,  7.56473214, 2.921875, -1.125,
        1.875,       1.765625,   1.796875,    3.515625,   4.453125,    4.609375,   3.359375, 2.375,
        3.01785714,  1.50223214, 0.162946429, 6.25669643, 6.65848214,  1.36830357, 3.953125, 6.375,
        3.16071429,  2.64508929, 2.34151786,  5.93526786, 5.80133929,  1.93973214, 5.953125, 9.375,
        3.25,        3.359375,   3.703125,    5.734375,   5.265625,    2.296875,   7.203125, 11.25};
    resize_check(x, c, 4, ey, es, L, CPU_COORD_HALF_PIXEL, 0, ew);
}

/* Asymmetric linear by hand, and nearest's tie rules: half_pixel at scale
 * 0.5 puts output i at input 2i + 0.5, a tie. */
static void test_resize_rules(void **state)
{
    (void)state;
    const float x[4] = {0, 10, 20, 30};
    const int64_t xd[] = {4}, up[] = {8}, dn[] = {2};
    const float s2[] = {2.0f}, sh[] = {0.5f};
    float y[8];
    cpu_resize(x, xd, 1, y, up, s2, CPU_RESIZE_LINEAR, CPU_COORD_ASYMMETRIC, 0);
    const float wl[8] = {0, 5, 10, 15, 20, 25, 30, 30};
    assert_memory_equal(y, wl, sizeof wl);
    cpu_resize(x, xd, 1, y, dn, sh, CPU_RESIZE_NEAREST, CPU_COORD_HALF_PIXEL,
               CPU_NEAREST_ROUND_PREFER_FLOOR);
    assert_float_equal(y[0], 0, 0);
    assert_float_equal(y[1], 20, 0);
    cpu_resize(x, xd, 1, y, dn, sh, CPU_RESIZE_NEAREST, CPU_COORD_HALF_PIXEL,
               CPU_NEAREST_ROUND_PREFER_CEIL);
    assert_float_equal(y[0], 10, 0);
    assert_float_equal(y[1], 30, 0);
    cpu_resize(x, xd, 1, y, dn, sh, CPU_RESIZE_NEAREST, CPU_COORD_HALF_PIXEL, CPU_NEAREST_CEIL);
    assert_float_equal(y[0], 10, 0);
    assert_float_equal(y[1], 30, 0);
    cpu_resize(x, xd, 1, y, dn, sh, CPU_RESIZE_NEAREST, CPU_COORD_ALIGN_CORNERS, CPU_NEAREST_FLOOR);
    assert_float_equal(y[0], 0, 0);
    assert_float_equal(y[1], 30, 0);
    /* half_pixel at scale 2 reads x[-0.25] at the left edge: clamped */
    cpu_resize(x, xd, 1, y, up, s2, CPU_RESIZE_LINEAR, CPU_COORD_HALF_PIXEL, 0);
    assert_float_equal(y[0], 0, 0);
    assert_float_equal(y[1], 2.5, 1e-6);
    assert_float_equal(y[7], 30, 0);
}

static void test_resize_random(void **state)
{
    (void)state;
    for (int t = 0; t < 400; t++) {
        int nd = (int)irand(1, 5);
        int64_t xd[MAXD], yd[MAXD];
        float sc[MAXD];
        rand_dims(xd, nd, 9);
        for (int k = 0; k < nd; k++) {
            if (rnd() % 3 == 0 || (nd >= 3 && k < nd - 3)) {
                yd[k] = xd[k];
                sc[k] = 1.0f;
            } else if (rnd() % 2) {
                sc[k] = (float)irand(1, 12) / 4; /* scales given */
                yd[k] = (int64_t)floor((double)xd[k] * sc[k]);
                if (yd[k] == 0)
                    yd[k] = 1;
            } else {
                yd[k] = irand(1, 13);                           /* sizes given */
                sc[k] = (float)((double)yd[k] / (double)xd[k]); /* as the graph resolves sizes */
            }
        }
        int64_t n = numel(xd, nd);
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        for (int64_t i = 0; i < n; i++)
            x[i] = frand();
        resize_check(x, xd, nd, yd, sc, (cpu_resize_mode)(t % 2), (cpu_resize_coord)(t / 2 % 5),
                     (cpu_resize_nearest)(t / 10 % 4), NULL);
        free(x);
    }
    /* a long row (more than one column block) */
    const int64_t xd[] = {2, 300}, yd[] = {3, 700};
    const float sc[] = {1.5f, 7.0f / 3};
    float *x = malloc(600 * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < 600; i++)
        x[i] = frand();
    resize_check(x, xd, 2, yd, sc, CPU_RESIZE_LINEAR, CPU_COORD_HALF_PIXEL, 0, NULL);
    resize_check(x, xd, 2, yd, sc, CPU_RESIZE_NEAREST, CPU_COORD_ASYMMETRIC, 0, NULL);
    free(x);
}

/* ------------------------------------------------- fill, range, trilu */

static void test_fill_range(void **state)
{
    (void)state;
    int64_t y[5];
    const int64_t v = -42;
    cpu_fill(y, 5, &v, 8);
    for (int i = 0; i < 5; i++)
        assert_int_equal(y[i], -42);
    const float fs = 1.0f, fd = -0.5f;
    float f[5];
    cpu_range(FERRY_F32, &fs, &fd, 5, f);
    const float wf[5] = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f};
    assert_memory_equal(f, wf, sizeof wf);
    const int64_t is = -3, id = 4;
    cpu_range(FERRY_I64, &is, &id, 4, y);
    assert_int_equal(y[0], -3);
    assert_int_equal(y[3], 9);
    const int32_t js = 10, jd = -3;
    int32_t j[4];
    cpu_range(FERRY_I32, &js, &jd, 4, j);
    assert_int_equal(j[0], 10);
    assert_int_equal(j[3], 1);
    /* f32 steps accumulate no error: element i is start + i * delta */
    const float s1 = 0.0f, d1 = 0.1f;
    float big[1000];
    cpu_range(FERRY_F32, &s1, &d1, 1000, big);
    assert_true(big[999] == (float)(999.0 * (double)0.1f));
}

static void test_trilu(void **state)
{
    (void)state;
    int32_t x[12], y[12];
    for (int i = 0; i < 12; i++)
        x[i] = i + 1;
    const int64_t xd[] = {3, 4};
    cpu_trilu(x, xd, 2, 1, 0, y, 4);
    const int32_t u0[12] = {1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12};
    assert_memory_equal(y, u0, sizeof u0);
    cpu_trilu(x, xd, 2, 1, 2, y, 4);
    const int32_t u2[12] = {0, 0, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0};
    assert_memory_equal(y, u2, sizeof u2);
    cpu_trilu(x, xd, 2, 1, -1, y, 4);
    const int32_t um[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12};
    assert_memory_equal(y, um, sizeof um);
    cpu_trilu(x, xd, 2, 0, 0, y, 4);
    const int32_t l0[12] = {1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0};
    assert_memory_equal(y, l0, sizeof l0);
    cpu_trilu(x, xd, 2, 0, -2, y, 4);
    const int32_t lm[12] = {0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0};
    assert_memory_equal(y, lm, sizeof lm);
    cpu_trilu(x, xd, 2, 0, 5, y, 4);
    assert_memory_equal(y, x, sizeof x);
    /* in place, batched, against the definition */
    for (int t = 0; t < 50; t++) {
        int64_t d[4] = {irand(1, 3), irand(1, 2), irand(1, 6), irand(1, 6)};
        int64_t n = numel(d, 4), k = irand(-7, 7), i4[4];
        int upper = t & 1;
        float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
        assert_true(a && b);
        for (int64_t i = 0; i < n; i++)
            a[i] = b[i] = frand();
        cpu_trilu(b, d, 4, upper, k, b, 4);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, d, 4, i4);
            int keep = upper ? i4[3] - i4[2] >= k : i4[3] - i4[2] <= k;
            assert_true(b[i] == (keep ? a[i] : 0.0f));
        }
        free(a);
        free(b);
    }
}

/* --------------------------------------------------------------- cumsum */

static void test_cumsum(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, 4};
    const int64_t xd[] = {4};
    float y[4];
    cpu_cumsum(x, FERRY_F32, xd, 1, 0, 0, 0, y);
    assert_memory_equal(y, ((const float[]){1, 3, 6, 10}), 16);
    cpu_cumsum(x, FERRY_F32, xd, 1, 0, 1, 0, y);
    assert_memory_equal(y, ((const float[]){0, 1, 3, 6}), 16);
    cpu_cumsum(x, FERRY_F32, xd, 1, 0, 0, 1, y);
    assert_memory_equal(y, ((const float[]){10, 9, 7, 4}), 16);
    cpu_cumsum(x, FERRY_F32, xd, 1, 0, 1, 1, y);
    assert_memory_equal(y, ((const float[]){9, 7, 4, 0}), 16);
    /* int64 [2,3] along axis 0 and 1 */
    const int64_t m[6] = {1, 2, 3, 4, 5, 6}, md[] = {2, 3};
    int64_t r[6];
    cpu_cumsum(m, FERRY_I64, md, 2, 0, 0, 0, r);
    assert_memory_equal(r, ((const int64_t[]){1, 2, 3, 5, 7, 9}), 48);
    cpu_cumsum(m, FERRY_I64, md, 2, 1, 0, 1, r);
    assert_memory_equal(r, ((const int64_t[]){6, 5, 3, 15, 11, 6}), 48);

    for (int t = 0; t < 200; t++) {
        int nd = (int)irand(1, 4), axis = (int)irand(0, nd - 1);
        int excl = t & 1, rev = t >> 1 & 1;
        int64_t d[MAXD], xi[MAXD];
        rand_dims(d, nd, 6);
        int64_t n = numel(d, nd);
        int64_t *a = malloc((size_t)n * 8), *b = malloc((size_t)n * 8);
        int32_t *a32 = malloc((size_t)n * 4), *b32 = malloc((size_t)n * 4);
        assert_true(a && b && a32 && b32);
        for (int64_t i = 0; i < n; i++)
            a32[i] = (int32_t)(a[i] = irand(-1000, 1000));
        cpu_cumsum(a, FERRY_I64, d, nd, axis, excl, rev, b);
        cpu_cumsum(a32, FERRY_I32, d, nd, axis, excl, rev, b32);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, d, nd, xi);
            int64_t s = 0, p = xi[axis];
            for (int64_t j = 0; j < d[axis]; j++) {
                xi[axis] = j;
                int in = rev ? (excl ? j > p : j >= p) : (excl ? j < p : j <= p);
                if (in)
                    s += a[ravel(xi, d, nd)];
            }
            assert_int_equal(b[i], s);
            assert_int_equal(b32[i], s);
        }
        free(a);
        free(b);
        free(a32);
        free(b32);
    }
}

/* ------------------------------------------------- depth/space to space */

static void test_depth_space(void **state)
{
    (void)state;
    for (int t = 0; t < 20; t++) {
        int64_t b = irand(1, 3), N = irand(1, 2), C = irand(1, 3), H = irand(1, 4), W = irand(1, 4);
        const int64_t xd[] = {N, C * b * b, H, W}, yd[] = {N, C, H * b, W * b};
        int64_t n = numel(xd, 4), xi[4], yi[4];
        int32_t *x = rand_bytes(n * 4), *y = zalloc(n * 4), *z = zalloc(n * 4);
        int crd = t & 1;
        cpu_depth_to_space(x, xd, b, crd, y, 4);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, yd, 4, yi);
            int64_t bi = yi[2] % b, bj = yi[3] % b;
            xi[0] = yi[0];
            xi[1] = crd ? yi[1] * b * b + bi * b + bj : (bi * b + bj) * C + yi[1];
            xi[2] = yi[2] / b;
            xi[3] = yi[3] / b;
            assert_int_equal(y[i], x[ravel(xi, xd, 4)]);
        }
        if (!crd) { /* SpaceToDepth undoes DCR */
            cpu_space_to_depth(y, yd, b, z, 4);
            assert_memory_equal(z, x, (size_t)n * 4);
        }
        free(x);
        free(y);
        free(z);
    }
}

/* Copies large enough to be split over the backend's threads. */
static void test_parallel_large(void **state)
{
    (void)state;
    /* [N,T,H,d] -> [N,H,T,d]: rows of d, 4 MiB */
    const int64_t td[] = {64, 128, 8, 16};
    const int perm[] = {0, 2, 1, 3};
    transpose_case(td, 4, perm, 4);
    /* tiled: [N,T,H,d] -> [N,H,d,T] (blocks per (N,H)), and one 2-D
     * transpose (split by rows) */
    const int64_t kd[] = {8, 128, 12, 64}, md[] = {1024, 700};
    const int pk[] = {0, 2, 3, 1}, pm[] = {1, 0};
    transpose_case(kd, 4, pk, 4);
    transpose_case(md, 2, pm, 2);
    /* Resize split by output rows, and by batch items when there is one
     * row (only the last axis resized) */
    const int64_t rx[] = {2, 3, 64, 96}, ry[] = {2, 3, 128, 192}, lx[] = {512, 1, 100},
                  ly[] = {512, 1, 300};
    const float rs[] = {1, 1, 2, 2}, ls[] = {1, 1, 3};
    float *img = malloc(512 * 100 * sizeof *img); /* the larger input */
    assert_non_null(img);
    for (int i = 0; i < 512 * 100; i++)
        img[i] = frand();
    resize_check(img, rx, 4, ry, rs, CPU_RESIZE_LINEAR, CPU_COORD_HALF_PIXEL, 0, NULL);
    resize_check(img, rx, 4, ry, rs, CPU_RESIZE_NEAREST, CPU_COORD_ASYMMETRIC, 0, NULL);
    resize_check(img, lx, 3, ly, ls, CPU_RESIZE_LINEAR, CPU_COORD_ALIGN_CORNERS, 0, NULL);
    free(img);
    /* Expand [1, 300001] to [3, 300001] (few long rows) and [700, 1] to
     * [700, 999] */
    const int64_t e1[] = {1, 300001}, o1[] = {3, 300001}, e2[] = {700, 1}, o2[] = {700, 999};
    const int64_t *ed[2] = {e1, e2}, *od[2] = {o1, o2};
    for (int k = 0; k < 2; k++) {
        int64_t ni = numel(ed[k], 2), no = numel(od[k], 2), oi[2];
        int32_t *x = rand_bytes(ni * 4), *y = zalloc(no * 4), *w = zalloc(no * 4);
        uint8_t *c = rand_bytes(ni);
        for (int64_t i = 0; i < ni; i++)
            c[i] &= 1;
        cpu_expand(x, ed[k], 2, y, od[k], 2, 4);
        cpu_where(c, ed[k], 2, x, ed[k], 2, y, od[k], 2, w, od[k], 2, 4);
        for (int64_t i = 0; i < no; i++) {
            unravel(i, od[k], 2, oi);
            int64_t j = bcast_index(oi, 2, ed[k], 2);
            assert_int_equal(y[i], x[j]);
            assert_int_equal(w[i], c[j] ? x[j] : y[i]);
        }
        free(x);
        free(y);
        free(w);
        free(c);
    }
}

/* OneHot: off everywhere, on at each index along the depth axis placed
 * between outer and inner; negative indices count from depth, others
 * outside [-depth, depth) (and NaN, for float indices) leave the row off. */
static void test_one_hot(void **state)
{
    (void)state;
    /* indices [2, 3] (outer 2, inner 3), depth 4 on axis 1: y [2, 4, 3], int64 values */
    const int64_t idx[6] = {0, 3, -1, 4, -4, -5}, vals[2] = {-7, 9};
    int64_t y[24];
    cpu_one_hot(idx, FERRY_I64, 2, 3, 4, vals, sizeof(int64_t), y);
    const int64_t hot[6] = {0, 3, 3, -1, 0, -1}; /* the depth each index lands on */
    for (int o = 0; o < 2; o++)
        for (int d = 0; d < 4; d++)
            for (int i = 0; i < 3; i++)
                assert_true(y[(o * 4 + d) * 3 + i] == (hot[o * 3 + i] == d ? 9 : -7));
    /* int32 and float indices (truncated; NaN and 1e30 are off), f32 values, last axis */
    const int32_t i32[3] = {2, -2, 5};
    const float f32[4] = {1.7f, -0.5f, NAN, 1e30f}, fv[2] = {0.5f, 2.0f};
    float fy[16];
    cpu_one_hot(i32, FERRY_I32, 3, 1, 3, fv, sizeof(float), fy);
    assert_memory_equal(fy, ((const float[]){0.5f, 0.5f, 2.0f, 0.5f, 2.0f, 0.5f, 0.5f, 0.5f, 0.5f}),
                        9 * sizeof(float));
    cpu_one_hot(f32, FERRY_F32, 4, 1, 4, fv, sizeof(float), fy);
    for (int r = 0; r < 4; r++)
        for (int d = 0; d < 4; d++)
            assert_true(fy[r * 4 + d] == ((r == 0 && d == 1) || (r == 1 && d == 0) ? 2.0f : 0.5f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_shape),
        cmocka_unit_test(test_iter_merge),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_gather_elements),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_concat_split),
        cmocka_unit_test(test_expand_tile),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_resize_torch),
        cmocka_unit_test(test_resize_cubic),
        cmocka_unit_test(test_grid_sample),
        cmocka_unit_test(test_grid_sample_nonfinite),
        cmocka_unit_test(test_eye),
        cmocka_unit_test(test_resize_onnx_reference),
        cmocka_unit_test(test_resize_rules),
        cmocka_unit_test(test_resize_random),
        cmocka_unit_test(test_fill_range),
        cmocka_unit_test(test_trilu),
        cmocka_unit_test(test_cumsum),
        cmocka_unit_test(test_depth_space),
        cmocka_unit_test(test_parallel_large),
        cmocka_unit_test(test_scatter_nd),
        cmocka_unit_test(test_gather_nd),
        cmocka_unit_test(test_scatter_elements),
        cmocka_unit_test(test_one_hot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
