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

/* A model of the real-model operators, with their attributes: Conv
 * (pads, strides, dilations, group), BatchNormalization, MaxPool
 * (ceil_mode), Resize, Pad (reflect), Transpose, Slice, Gather, Split,
 * Concat, shape math into a Reshape, LSTM, Clip, Where. */
static ob *fuzz_model_nn(void)
{
    ob *b = ob_new(17);
    int64_t xd[4] = {-1, 4, 6, 6}, wd[4] = {8, 2, 3, 3}, cd[1] = {8}, yd[2] = {-1, 16};
    ob_input(b, "x", 4, xd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "w", 4, wd, NULL);
    ob_init_f32(b, "cb", 1, cd, NULL);
    for (int i = 0; i < 4; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "bn%d", i);
        float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        ob_init_f32(b, nm, 1, cd, ones);
    }
    Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,w,cb", "c");
    int64_t pads[4] = {1, 1, 1, 1}, one2[2] = {1, 1}, k3[2] = {3, 3};
    ob_attr_ints(b, n, "pads", 4, pads);
    ob_attr_ints(b, n, "strides", 2, one2);
    ob_attr_ints(b, n, "dilations", 2, one2);
    ob_attr_ints(b, n, "kernel_shape", 2, k3);
    ob_attr_i(b, n, "group", 2);
    n = ob_node(b, "BatchNormalization", "bn", "c,bn0,bn1,bn2,bn3", "n");
    ob_attr_f(b, n, "epsilon", 1e-5f);
    n = ob_node(b, "Clip", "clip", "n", "r");
    ob_attr_f(b, n, "min", 0.0f);
    n = ob_node(b, "MaxPool", "pool", "r", "p"); /* [N,8,3,3] */
    int64_t k2[2] = {2, 2}, s2[2] = {2, 2};
    ob_attr_ints(b, n, "kernel_shape", 2, k2);
    ob_attr_ints(b, n, "strides", 2, s2);
    ob_attr_i(b, n, "ceil_mode", 1);
    int64_t pads8[8] = {0, 0, 1, 1, 0, 0, 0, 0};
    ob_init_i64(b, "pads", 8, pads8);
    n = ob_node(b, "Pad", "pad", "p,pads", "q"); /* [N,8,4,4] */
    ob_attr_s(b, n, "mode", "reflect");
    n = ob_node(b, "Transpose", "tr", "q", "t"); /* [N,4,4,8] */
    int64_t perm[4] = {0, 2, 3, 1};
    ob_attr_ints(b, n, "perm", 4, perm);
    int64_t st[1] = {0}, en[1] = {2}, ax[1] = {3};
    ob_init_i64(b, "st", 1, st);
    ob_init_i64(b, "en", 1, en);
    ob_init_i64(b, "ax", 1, ax);
    ob_node(b, "Slice", "slice", "t,st,en,ax", "u"); /* [N,4,4,2] */
    int64_t idx[2] = {0, -1};
    ob_init_i64(b, "idx", 2, idx);
    n = ob_node(b, "Gather", "gather", "u,idx", "v"); /* [N,4,2,2] */
    ob_attr_i(b, n, "axis", 2);
    n = ob_node(b, "Split", "split", "v", "v0,v1"); /* 2 x [N,2,2,2] */
    ob_attr_i(b, n, "axis", 1);
    n = ob_node(b, "Concat", "cat", "v0,v1", "w2"); /* [N,4,2,2] */
    ob_attr_i(b, n, "axis", 3);
    ob_node(b, "Shape", "shape", "w2", "s");
    int64_t i0[1] = {0}, sixteen[1] = {16};
    ob_init_i64(b, "i0", 1, i0);
    ob_init_i64(b, "sixteen", 1, sixteen);
    n = ob_node(b, "Gather", "gs", "s,i0", "nb");
    n = ob_node(b, "Concat", "tgt", "nb,sixteen", "target");
    ob_attr_i(b, n, "axis", 0);
    ob_node(b, "Reshape", "rs", "w2,target", "flat"); /* [N,16] */
    ob_init_f32(b, "zero", 1, cd, NULL);
    ob_node(b, "Greater", "gt", "flat,flat", "mask");
    ob_node(b, "Where", "where", "mask,flat,flat", "y");
    return b;
}

/* The operators added on 2026-12-07's evening, their attributes set: 3-D
 * Conv (groups, pads), MaxPool, ConvTranspose and AveragePool
 * (count_include_pad), Elu and Shrink, TopK, OneHot of its indices with
 * ReduceL1, a plain RNN (Relu, clip), IsInf, and an If on a shape. */
static ob *fuzz_model_ops(void)
{
    ob *b = ob_new(18);
    int64_t xd[5] = {-1, 2, 4, 4, 4}, wd[5] = {4, 1, 3, 3, 3}, twd[5] = {4, 2, 2, 2, 2},
            yd[2] = {-1, 12};
    ob_input(b, "x", 5, xd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "w", 5, wd, NULL);
    ob_init_f32(b, "tw", 5, twd, NULL);
    int64_t k3[3] = {3, 3, 3}, p6[6] = {1, 1, 1, 1, 1, 1}, two3[3] = {2, 2, 2},
            one6[6] = {1, 0, 1, 0, 0, 1};
    Onnx__NodeProto *n = ob_node(b, "Conv", "conv", "x,w", "c"); /* [N,4,4,4,4] */
    ob_attr_ints(b, n, "kernel_shape", 3, k3);
    ob_attr_ints(b, n, "pads", 6, p6);
    ob_attr_i(b, n, "group", 2);
    n = ob_node(b, "MaxPool", "mp", "c", "m"); /* [N,4,2,2,2] */
    ob_attr_ints(b, n, "kernel_shape", 3, two3);
    ob_attr_ints(b, n, "strides", 3, two3);
    ob_attr_i(b, n, "ceil_mode", 1);
    n = ob_node(b, "ConvTranspose", "ct", "m,tw", "t"); /* [N,4,4,4,4] */
    ob_attr_ints(b, n, "kernel_shape", 3, two3);
    ob_attr_ints(b, n, "strides", 3, two3);
    ob_attr_i(b, n, "group", 2);
    n = ob_node(b, "AveragePool", "ap", "t", "a"); /* [N,4,2,2,2] */
    ob_attr_ints(b, n, "kernel_shape", 3, two3);
    ob_attr_ints(b, n, "strides", 3, two3);
    ob_attr_ints(b, n, "pads", 6, one6);
    ob_attr_i(b, n, "count_include_pad", 1);
    n = ob_node(b, "Flatten", "fl", "a", "f"); /* [N,32] */
    ob_attr_i(b, n, "axis", 1);
    n = ob_node(b, "Elu", "elu", "f", "e");
    ob_attr_f(b, n, "alpha", 0.5f);
    n = ob_node(b, "Shrink", "shrink", "e", "sh");
    ob_attr_f(b, n, "lambd", 0.1f);
    ob_attr_f(b, n, "bias", 0.05f);
    int64_t kk = 8, depth = 4, vd = 2, l1ax = 2;
    ob_init_i64(b, "k", 1, &kk);
    n = ob_node(b, "TopK", "topk", "sh,k", "tv,ti"); /* [N,8] twice */
    ob_attr_i(b, n, "axis", 1);
    ob_attr_i(b, n, "largest", 1);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "depth", 7, 0, NULL, &depth, sizeof depth));
    ob_init_f32(b, "ohv", 1, &vd, (const float[]){0.0f, 1.0f});
    n = ob_node(b, "OneHot", "oh", "ti,depth,ohv", "o"); /* [N,8,4] */
    ob_attr_i(b, n, "axis", -1);
    ob_init_i64(b, "l1ax", 1, &l1ax);
    n = ob_node(b, "ReduceL1", "l1", "o,l1ax", "ol"); /* [N,8] */
    ob_attr_i(b, n, "keepdims", 0);
    ob_node(b, "Add", "add", "tv,ol", "s");
    int64_t shp[3] = {-1, 4, 2}, rw[3] = {1, 3, 2}, rr[3] = {1, 3, 3}, rb[2] = {1, 6};
    ob_init_i64(b, "shp", 3, shp);
    ob_node(b, "Reshape", "rs", "s,shp", "sr"); /* [N,4,2] */
    ob_init_f32(b, "rw", 3, rw, NULL);
    ob_init_f32(b, "rr", 3, rr, NULL);
    ob_init_f32(b, "rb", 2, rb, NULL);
    n = ob_node(b, "RNN", "rnn", "sr,rw,rr,rb", "ry"); /* [N,4,1,3] */
    ob_attr_i(b, n, "hidden_size", 3);
    ob_attr_i(b, n, "layout", 1);
    ob_attr_f(b, n, "clip", 5.0f);
    Onnx__AttributeProto *a =
        ob_attr(b, n, "activations", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    a->strings = ob_alloc(b, sizeof *a->strings);
    a->strings[0].data = (uint8_t *)ob_str(b, "Relu");
    a->strings[0].len = 4;
    a->n_strings = 1;
    n = ob_node(b, "Flatten", "fl2", "ry", "r"); /* [N,12] */
    ob_attr_i(b, n, "axis", 1);
    n = ob_node(b, "IsInf", "isinf", "r", "inf");
    ob_attr_i(b, n, "detect_negative", 0);
    ob_init_f32(b, "zero", 1, (const int64_t[]){1}, (const float[]){0.0f});
    ob_node(b, "Where", "where", "inf,zero,r", "rc");
    /* If Shape(x)[1] == 2: Relu, else Neg */
    int64_t one = 1, c2 = 2;
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "one", 7, 0, NULL, &one, sizeof one));
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "c2", 7, 0, NULL, &c2, sizeof c2));
    ob_node(b, "Shape", "shape", "x", "xs");
    ob_node(b, "Gather", "g", "xs,one", "x1");
    ob_node(b, "Equal", "eq", "x1,c2", "cond");
    Onnx__NodeProto *ifn = ob_node(b, "If", "if", "cond", "y");
    for (int br = 0; br < 2; br++) {
        ob_node(b, br ? "Neg" : "Relu", br ? "neg" : "relu", "rc", br ? "e_out" : "t_out");
        Onnx__AttributeProto *ga = ob_attr(b, ifn, br ? "else_branch" : "then_branch",
                                           ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
        Onnx__GraphProto *gp = ob_alloc(b, sizeof *gp);
        onnx__graph_proto__init(gp);
        gp->name = ob_str(b, br ? "else" : "then");
        OB_PUSH(b, gp->node, gp->n_node, b->graph.node[b->graph.n_node - 1]);
        b->graph.n_node--;
        OB_PUSH(b, gp->output, gp->n_output,
                ob_value_info(b, br ? "e_out" : "t_out", 1, -1, NULL));
        ga->g = gp;
    }
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

/* Packs b and loads it whole, which must succeed; its first output's
 * shape into *ti. The caller destroys the model, then frees b. */
static ferry_model *load_whole(ob *b, ferry_tensor_info *ti)
{
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m = NULL;
    if (ferry_model_load_buffer(buf, len, NULL, &m) != FERRY_OK)
        fail_msg("%s", ferry_last_error());
    assert_int_equal(ferry_model_output(m, 0, ti), FERRY_OK);
    return m;
}

static void test_base_model_loads(void **state)
{
    (void)state;
    ob *b = fuzz_model();
    ferry_tensor_info ti;
    ferry_model *m = load_whole(b, &ti);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], 4);
    ferry_model_destroy(m);
    ob_free(b);
}

static ob *(*const models[])(void) = {fuzz_model, fuzz_model_nn, fuzz_model_ops};

/* Runs a loaded model at batch 2 on zeros (inputs of any dtype); any
 * status is fine, with a message when it is not FERRY_OK. */
static void try_run(const ferry_model *m)
{
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.workers = 1;
    cfg.max_batch = 2;
    ferry_engine *e = NULL;
    ferry_clear_error();
    if (ferry_engine_create(m, &cfg, &e) != FERRY_OK) {
        assert_true(strlen(ferry_last_error()) > 0);
        return;
    }
    ferry_tensor in[4], out[4];
    int n_in = ferry_model_num_inputs(m), n_out = ferry_model_num_outputs(m);
    assert_true(n_in <= 4 && n_out <= 4);
    for (int i = 0; i < n_in; i++) {
        ferry_tensor_info ti;
        ferry_model_input(m, i, &ti);
        in[i] = (ferry_tensor){.dtype = ti.dtype, .ndim = ti.ndim};
        for (int d = 0; d < ti.ndim; d++)
            in[i].shape[d] = ti.shape[d] == FERRY_DIM_BATCH ? 2 : ti.shape[d];
        in[i].data = calloc((size_t)ferry_tensor_numel(&in[i]) + 1, 8);
    }
    for (int i = 0; i < n_out; i++) {
        assert_int_equal(ferry_engine_output_info(e, i, 2, &out[i]), FERRY_OK);
        out[i].data = calloc((size_t)ferry_tensor_numel(&out[i]) + 1, 8);
    }
    ferry_clear_error();
    if (ferry_engine_run(e, in, n_in, out, n_out) != FERRY_OK)
        assert_true(strlen(ferry_last_error()) > 0);
    for (int i = 0; i < n_in; i++)
        free(in[i].data);
    for (int i = 0; i < n_out; i++)
        free(out[i].data);
    ferry_engine_destroy(e);
}

static void test_nn_model_loads(void **state)
{
    (void)state;
    ob *b = fuzz_model_nn();
    ferry_tensor_info ti;
    ferry_model *m = load_whole(b, &ti);
    assert_int_equal(ti.shape[1], 16);
    ferry_model_destroy(m);
    ob_free(b);
}

static void test_ops_model_runs(void **state)
{
    (void)state;
    ob *b = fuzz_model_ops();
    ferry_tensor_info ti;
    ferry_model *m = load_whole(b, &ti);
    assert_int_equal(ti.shape[1], 12);
    try_run(m);
    if (strlen(ferry_last_error()))
        fail_msg("the undamaged model does not run: %s", ferry_last_error());
    ferry_model_destroy(m);
    ob_free(b);
}

static void test_every_truncation(void **state)
{
    ob *b = models[*(int *)*state]();
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
    ob *b = models[*(int *)*state]();
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
            /* a damaged model that loads must also run, or fail cleanly:
             * odd attribute values reach the kernels */
            if (*(int *)*state >= 1 && loaded % 4 == 0)
                try_run(m);
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
    static int which[3] = {0, 1, 2};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_model_loads),
        cmocka_unit_test(test_nn_model_loads),
        cmocka_unit_test_prestate(test_every_truncation, &which[0]),
        cmocka_unit_test_prestate(test_every_truncation, &which[1]),
        cmocka_unit_test_prestate(test_random_flips, &which[0]),
        cmocka_unit_test_prestate(test_random_flips, &which[1]),
        cmocka_unit_test(test_ops_model_runs),
        cmocka_unit_test_prestate(test_every_truncation, &which[2]),
        cmocka_unit_test_prestate(test_random_flips, &which[2]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
