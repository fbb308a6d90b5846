/*
 * test_einsum.c - Einsum (src/graph/einsum.c's shape rule and layout, the
 * CPU kernel) on one-node ONNX models: the equations PyTorch models write,
 * with spaces, "...", implicit outputs, one operand and a constant one,
 * run on the CPU engine at batch 3 against a double reference summed over
 * every label; and the equations Ferry refuses, with exact statuses and
 * message fragments.
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

#include "ferry.h"
#include "graph/onnx_builder.h"

#define N_ FERRY_DIM_BATCH
#define BATCH 3

static uint32_t rng = 2024u;

static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* An operand: rank, dims (N_ for the batch), and the labels the case's
 * reference reads it by (letters of the equation, "..." spelled out). */
typedef struct operand {
    int nd;
    int64_t d[6];
    const char *labels;
    int constant; /* an initializer rather than a graph input */
} operand;

static int64_t concrete(int64_t d)
{
    return d == N_ ? BATCH : d;
}

static int64_t count(const operand *o)
{
    int64_t c = 1;
    for (int i = 0; i < o->nd; i++)
        c *= concrete(o->d[i]);
    return c;
}

/* y[labels of out] = sum over the other labels of a * b (b absent: a). */
static void reference(const operand *a, const operand *b, const char *out, const float *av,
                      const float *bv, double *y, int64_t ny)
{
    int64_t dim[128] = {0}, at[128] = {0};
    char all[16];
    int na = 0;
    const operand *ops[2] = {a, b};
    for (int k = 0; k < (b ? 2 : 1); k++)
        for (int i = 0; i < ops[k]->nd; i++) {
            char l = ops[k]->labels[i];
            if (!dim[(int)l])
                all[na++] = l;
            dim[(int)l] = concrete(ops[k]->d[i]);
        }
    memset(y, 0, sizeof(double) * (size_t)ny);
    for (;;) {
        int64_t ia = 0, ib = 0, iy = 0;
        for (int i = 0; i < a->nd; i++)
            ia = ia * dim[(int)a->labels[i]] + at[(int)a->labels[i]];
        for (int i = 0; b && i < b->nd; i++)
            ib = ib * dim[(int)b->labels[i]] + at[(int)b->labels[i]];
        for (const char *p = out; *p; p++)
            iy = iy * dim[(int)*p] + at[(int)*p];
        y[iy] += (double)av[ia] * (b ? (double)bv[ib] : 1.0);
        int k = na - 1;
        while (k >= 0 && ++at[(int)all[k]] == dim[(int)all[k]])
            at[(int)all[k--]] = 0;
        if (k < 0)
            break;
    }
}

/* Loads Einsum(eq) over a (and b), runs it at batch 3 on the CPU and
 * compares with the reference whose output labels are out. */
static void check(const char *eq, operand a, const operand *b, const char *out)
{
    ob *m = ob_new(17);
    float *av = malloc(sizeof(float) * (size_t)count(&a));
    float *bv = b ? malloc(sizeof(float) * (size_t)count(b)) : NULL;
    assert_non_null(av);
    for (int64_t i = 0; i < count(&a); i++)
        av[i] = frand();
    for (int64_t i = 0; b && i < count(b); i++)
        bv[i] = frand();
    ob_input(m, "a", a.nd, a.d);
    if (b && b->constant)
        ob_init_f32(m, "b", b->nd, b->d, bv);
    else if (b)
        ob_input(m, "b", b->nd, b->d);
    ob_output(m, "y", -1, NULL);
    ob_attr_s(m, ob_node(m, "Einsum", "es", b ? "a,b" : "a", "y"), "equation", eq);
    size_t len;
    uint8_t *buf = ob_pack(m, &len);
    ferry_model *model;
    if (ferry_model_load_buffer(buf, len, NULL, &model))
        fail_msg("%s: %s", eq, ferry_last_error());
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.workers = 1;
    ferry_engine *e;
    if (ferry_engine_create(model, &cfg, &e))
        fail_msg("%s: %s", eq, ferry_last_error());
    ferry_tensor in[2] = {{.dtype = FERRY_F32, .ndim = a.nd, .data = av}};
    for (int i = 0; i < a.nd; i++)
        in[0].shape[i] = concrete(a.d[i]);
    if (b && !b->constant) {
        in[1] = (ferry_tensor){.dtype = FERRY_F32, .ndim = b->nd, .data = bv};
        for (int i = 0; i < b->nd; i++)
            in[1].shape[i] = concrete(b->d[i]);
    }
    ferry_tensor y;
    assert_int_equal(ferry_engine_output_info(e, 0, BATCH, &y), FERRY_OK);
    int64_t ny = ferry_tensor_numel(&y);
    float *yv = malloc(sizeof(float) * (size_t)ny);
    double *want = malloc(sizeof(double) * (size_t)ny);
    assert_true(yv && want);
    y.data = yv;
    if (ferry_engine_run(e, in, b && !b->constant ? 2 : 1, &y, 1))
        fail_msg("%s: %s", eq, ferry_last_error());
    assert_int_equal((int)y.ndim, (int)strlen(out));
    reference(&a, b, out, av, bv, want, ny);
    for (int64_t i = 0; i < ny; i++)
        if (fabs(yv[i] - want[i]) > 1e-5 * (1.0 + fabs(want[i])))
            fail_msg("%s: y[%lld] = %g, expected %g", eq, (long long)i, yv[i], want[i]);
    free(av);
    free(bv);
    free(yv);
    free(want);
    ferry_engine_destroy(e);
    ferry_model_destroy(model);
    ob_free(m);
}

static void test_einsum_equations(void **state)
{
    (void)state;
    /* attention's scores and values, and maxvit's spelling of them */
    operand q = {4, {N_, 2, 3, 4}, "bhid", 0}, k = {4, {N_, 2, 5, 4}, "bhjd", 0};
    check("bhid,bhjd->bhij", q, &k, "bhij");
    operand s = {5, {N_, 2, 2, 3, 5}, "BGHIJ", 0}, v = {5, {N_, 2, 2, 5, 4}, "BGHJD", 0};
    check("B G H I J, B G H J D -> B G H I D", s, &v, "BGHID");
    /* a constant right operand (a bilinear map), and the output transposed */
    operand x = {2, {N_, 6}, "bn", 0}, w = {2, {6, 4}, "nm", 1};
    check("bn,nm->bm", x, &w, "bm");
    operand x3 = {3, {N_, 3, 4}, "nij", 0}, y3 = {3, {N_, 4, 2}, "njk", 0};
    check("nij,njk->nki", x3, &y3, "nki");
    /* two contracted labels, two free ones in A */
    operand p = {5, {N_, 2, 3, 4, 2}, "bacde", 0}, r = {4, {N_, 3, 5, 2}, "bcfe", 0};
    check("bacde,bcfe->bfad", p, &r, "bfad");
    /* no contracted label: an outer product */
    operand u = {2, {N_, 3}, "bi", 0}, t = {2, {N_, 4}, "bj", 0};
    check("bi,bj->bij", u, &t, "bij");
    /* "..." and an implicit output ("...ik": ellipsis first, then i, k) */
    operand e1 = {4, {N_, 2, 3, 4}, "xyij", 0}, e2 = {4, {N_, 2, 4, 5}, "xyjk", 0};
    check("...ij,...jk", e1, &e2, "xyik");
    /* one operand: a transpose, explicit and implicit */
    operand one = {3, {N_, 3, 4}, "bij", 0}, ji = {3, {N_, 3, 4}, "bji", 0};
    check("bij->bji", one, NULL, "bji");
    check("...ji", ji, NULL, "bij");
}

static void expect(const char *eq, int nd_a, const int64_t *da, int nd_b, const int64_t *db,
                   ferry_status want, const char *frag)
{
    ob *m = ob_new(17);
    ob_input(m, "a", nd_a, da);
    if (nd_b)
        ob_input(m, "b", nd_b, db);
    ob_output(m, "y", -1, NULL);
    ob_attr_s(m, ob_node(m, "Einsum", "es", nd_b ? "a,b" : "a", "y"), "equation", eq);
    size_t len;
    uint8_t *buf = ob_pack(m, &len);
    ferry_model *model = NULL;
    ferry_status st = ferry_model_load_buffer(buf, len, NULL, &model);
    char full[256];
    snprintf(full, sizeof full, "node 'es' (Einsum): %s", frag);
    if (st != want || !strstr(ferry_last_error(), full))
        fail_msg("%s: %s (%s), expected %s with '%s'", eq, ferry_status_str(st), ferry_last_error(),
                 ferry_status_str(want), frag);
    ferry_model_destroy(model);
    ob_free(m);
}

static void test_einsum_refused(void **state)
{
    (void)state;
    static const int64_t bij[3] = {N_, 3, 3}, bi[2] = {N_, 3}, bj[2] = {N_, 4};
    static const struct {
        const char *eq;
        int nd_a;
        const int64_t *da;
        int nd_b;
        const int64_t *db;
        ferry_status want;
        const char *frag;
    } cases[] = {
        {"bii->bi", 3, bij, 0, NULL, FERRY_EUNSUPPORTED,
         "label 'i' is repeated in input 'a' (a diagonal)"},
        {"bij,bjk->bk", 3, bij, 3, bij, FERRY_EUNSUPPORTED,
         "sums over label 'i' of one input only"},
        {"bi,bj->ij", 2, bi, 2, bj, FERRY_EUNSUPPORTED, "contracts label 'b', the batch dimension"},
        {"bi,bi->b", 2, bi, 2, bj, FERRY_ESHAPE, "label 'i' is 3 in one input and 4 in 'b'"},
        {"bij,bj->bi", 2, bi, 2, bj, FERRY_ESHAPE,
         "input 'a' has rank 2 but the equation gives it 3 labels"},
        {"bi,bj->bk", 2, bi, 2, bj, FERRY_ESHAPE, "output label 'k' is in no input"},
        {"bi->bi,bj", 2, bi, 0, NULL, FERRY_EPARSE, "equation \"bi->bi,bj\" has ',' at 6"},
        {"bi,bj,bk->b", 2, bi, 2, bj, FERRY_EUNSUPPORTED, "more than two operands"},
        {"bi", 2, bi, 2, bj, FERRY_EPARSE, "the equation has 1 operands for 2 inputs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i].eq, cases[i].nd_a, cases[i].da, cases[i].nd_b, cases[i].db, cases[i].want,
               cases[i].frag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_einsum_equations),
        cmocka_unit_test(test_einsum_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
