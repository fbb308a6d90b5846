/* test_onnx_fuzz.c - the loader never crashes on damaged models: every
 * truncation and thousands of seeded byte flips either load or fail with a
 * status and a message. Meant to run under ASan+UBSan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph/graph.h"
#include "onnx_builder.h"
#include "util/error.h"

/* A model touching most of the loader: initializers (raw and typed), a
 * Constant node, attributes of several types, Reshape, LayerNorm. */
static ob *fuzz_model(void)
{
    ob *b = ob_new(20);
    int64_t xd[2] = {-1, 8}, w1[2] = {12, 8}, b1[1] = {12}, w2[2] = {12, 4}, yd[2] = {-1, 4};
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "w1", 2, w1, NULL);
    Onnx__TensorProto *bias = ob_init_f32(b, "b1", 1, b1, NULL);
    /* typed float_data instead of raw_data */
    bias->has_raw_data = 0;
    bias->float_data = ob_alloc(b, 12 * sizeof(float));
    bias->n_float_data = 12;
    ob_init_f32(b, "gamma", 1, b1, NULL);
    ob_init_f32(b, "w2", 2, w2, NULL);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc1", "x,w1,b1", "h");
    ob_attr_i(b, n, "transB", 1);
    ob_attr_f(b, n, "alpha", 1.0f);
    n = ob_node(b, "LayerNormalization", "ln", "h,gamma", "l");
    ob_attr_i(b, n, "axis", -1);
    n = ob_node(b, "Gelu", "gelu", "l", "g");
    ob_attr_s(b, n, "approximate", "none");
    n = ob_node(b, "Constant", "shape", NULL, "s");
    int64_t shp[2] = {0, -1};
    ob_attr_ints(b, n, "value_ints", 2, shp);
    ob_node(b, "Reshape", "rs", "g,s", "r");
    ob_node(b, "MatMul", "fc2", "r,w2", "m");
    n = ob_node(b, "Softmax", "sm", "m", "y");
    ob_attr_i(b, n, "axis", 1);
    return b;
}

static void try_load(const uint8_t *buf, size_t len)
{
    ferry_model *m = NULL;
    ferry_clear_error();
    ferry_status st = ferry_model_load_buffer(buf, len, NULL, &m);
    if (st == FERRY_OK) {
        assert_non_null(m);
        ferry_model_destroy(m);
        return;
    }
    assert_null(m);
    if (strlen(ferry_last_error()) == 0)
        fail_msg("status %s without a message", ferry_status_str(st));
}

static void test_base_model_loads(void **state)
{
    (void)state;
    ob *b = fuzz_model();
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m = NULL;
    if (ferry_model_load_buffer(buf, len, NULL, &m) != FERRY_OK)
        fail_msg("%s", ferry_last_error());
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_output(m, 0, &ti), FERRY_OK);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], 4);
    ferry_model_destroy(m);
    ob_free(b);
}

static void test_every_truncation(void **state)
{
    (void)state;
    ob *b = fuzz_model();
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    /* copy each prefix to its own allocation so ASan sees reads past it */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        assert_non_null(p);
        memcpy(p, buf, cut);
        try_load(p, cut);
        free(p);
    }
    ob_free(b);
}

static void test_random_flips(void **state)
{
    (void)state;
    ob *b = fuzz_model();
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    uint8_t *p = malloc(len);
    assert_non_null(p);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int loaded = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(p, buf, len);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int flips = 1 + (int)((seed >> 33) % 4);
        for (int k = 0; k < flips; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((seed >> 20) % len);
            uint8_t v = (uint8_t)(seed >> 56);
            /* half the time a single flipped bit, else a random byte */
            p[at] = (seed >> 13) & 1 ? (uint8_t)(p[at] ^ (1u << ((seed >> 8) & 7))) : v;
        }
        ferry_model *m = NULL;
        ferry_clear_error();
        ferry_status st = ferry_model_load_buffer(p, len, NULL, &m);
        if (st == FERRY_OK) {
            loaded++;
            ferry_model_destroy(m);
        } else {
            assert_null(m);
            if (strlen(ferry_last_error()) == 0)
                fail_msg("iteration %d: status %s without a message", iter, ferry_status_str(st));
        }
    }
    /* flips in weight bytes leave a valid model: both outcomes were seen */
    assert_true(loaded > 0 && loaded < 3000);
    free(p);
    ob_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_model_loads),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_random_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
