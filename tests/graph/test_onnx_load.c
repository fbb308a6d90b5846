/* test_onnx_load.c - ONNX loading, shape inference and their error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph/graph.h"
#include "graph/model.h"
#include "onnx_builder.h"

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ferry-test-onnx-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

#define ASSERT_MSG(frag)                                                                           \
    do {                                                                                           \
        if (!strstr(ferry_last_error(), (frag)))                                                   \
            fail_msg("message '%s' lacks '%s'", ferry_last_error(), (frag));                       \
    } while (0)

/* Loads b from memory, expecting status st and (when st != OK) frag. */
static void expect_load(ob *b, ferry_status st, const char *frag)
{
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m = NULL;
    ferry_status got = ferry_model_load_buffer(buf, len, tmpdir, &m);
    if (got != st)
        fail_msg("status %s, expected %s: %s", ferry_status_str(got), ferry_status_str(st),
                 ferry_last_error());
    if (st == FERRY_OK) {
        assert_non_null(m);
    } else {
        assert_null(m);
        assert_true(strlen(ferry_last_error()) > 0);
        if (frag)
            ASSERT_MSG(frag);
    }
    ferry_model_destroy(m);
}

static graph *load_graph_ok(ob *b)
{
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    graph *g = NULL;
    ferry_status st = onnx_load_buffer(buf, len, tmpdir, &g);
    if (st != FERRY_OK)
        fail_msg("%s: %s", ferry_status_str(st), ferry_last_error());
    return g;
}

static void test_mlp_loads(void **state)
{
    (void)state;
    ob *b = ob_mlp(16, 32, 4);
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load_buffer(buf, len, NULL, &m), FERRY_OK);
    assert_int_equal(ferry_model_num_inputs(m), 1);
    assert_int_equal(ferry_model_num_outputs(m), 1);
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_input(m, 0, &ti), FERRY_OK);
    assert_string_equal(ti.name, "x");
    assert_int_equal(ti.dtype, FERRY_F32);
    assert_int_equal(ti.ndim, 2);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], 16);
    assert_int_equal(ferry_model_output(m, 0, &ti), FERRY_OK);
    assert_string_equal(ti.name, "y");
    assert_int_equal(ti.ndim, 2);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], 4);
    assert_int_equal(ferry_model_output(m, 1, &ti), FERRY_EINVAL);
    ASSERT_MSG("output 1 out of range");
    assert_int_equal(ferry_model_input(m, -1, &ti), FERRY_EINVAL);
    /* the IR: hidden layer shape, attributes and weights */
    graph *g = m->g;
    int h = graph_find_value(g, "h");
    assert_true(h >= 0);
    assert_int_equal(g->values[h].dims[0], FERRY_DIM_BATCH);
    assert_int_equal(g->values[h].dims[1], 32);
    int w = graph_find_value(g, "fc1.weight");
    assert_true(g->values[w].is_const);
    assert_float_equal(((float *)g->values[w].data)[1], -0.05f, 1e-7);
    assert_int_equal(g->opset, 13);
    assert_string_equal(g->producer, "ferry-tests");
    assert_int_equal(graph_param_count(g), 32 * 16 + 32 + 4 * 32 + 4);
    ferry_model_destroy(m);
    ferry_model_destroy(NULL);
    ob_free(b);
}

static void test_shape_inference_idempotent(void **state)
{
    (void)state;
    /* x[N,2,8] -> Reshape[0,-1] -> MatMul(const [16,8]) -> Softmax(-1)
     *   -> Flatten(1) -> ReduceMean(axes=[1], keepdims=0) */
    ob *b = ob_new(17);
    int64_t xd[3] = {-1, 2, 8}, wd[2] = {16, 8}, shp[2] = {0, -1}, one = 1, yd[1] = {-1};
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", 1, yd);
    ob_init_i64(b, "shape", 2, shp);
    ob_init_f32(b, "w", 2, wd, NULL);
    ob_node(b, "Reshape", "rs", "x,shape", "r");
    ob_node(b, "MatMul", "mm", "r,w", "m");
    Onnx__NodeProto *sm = ob_node(b, "Softmax", "sm", "m", "s");
    ob_attr_i(b, sm, "axis", -1);
    ob_node(b, "Flatten", "fl", "s", "f");
    Onnx__NodeProto *rm = ob_node(b, "ReduceMean", "rm", "f", "y");
    ob_attr_ints(b, rm, "axes", 1, &one);
    ob_attr_i(b, rm, "keepdims", 0);
    (void)wd;
    graph *g = load_graph_ok(b);
    /* r: [N,16]; MatMul with a 2-D constant becomes Gemm */
    int r = graph_find_value(g, "r");
    assert_int_equal(g->values[r].ndim, 2);
    assert_int_equal(g->values[r].dims[0], FERRY_DIM_BATCH);
    assert_int_equal(g->values[r].dims[1], 16);
    assert_int_equal(g->nodes[1].op, OP_GEMM);
    assert_int_equal(g->nodes[1].trans_b, 0);
    assert_int_equal(g->nodes[2].axis, 1); /* normalized */
    int y = graph_find_value(g, "y");
    assert_int_equal(g->values[y].ndim, 1);
    assert_int_equal(g->values[y].dims[0], FERRY_DIM_BATCH);
    /* MatMul [N,16] x [16,8] -> [N,8] */
    int mv = graph_find_value(g, "m");
    assert_int_equal(g->values[mv].dims[1], 8);
    graph_value before[16];
    assert_true(g->n_values <= 16);
    memcpy(before, g->values, sizeof(graph_value) * (size_t)g->n_values);
    graph_node nb[8];
    memcpy(nb, g->nodes, sizeof(graph_node) * (size_t)g->n_nodes);
    assert_int_equal(graph_infer_shapes(g), FERRY_OK);
    for (int i = 0; i < g->n_values; i++) {
        assert_int_equal(before[i].ndim, g->values[i].ndim);
        assert_int_equal(before[i].dtype, g->values[i].dtype);
        assert_memory_equal(before[i].dims, g->values[i].dims, sizeof before[i].dims);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        assert_int_equal(nb[i].axis, g->nodes[i].axis);
        assert_int_equal(nb[i].n_axes, g->nodes[i].n_axes);
    }
    graph_free(g);
    ob_free(b);
}

static void test_unsupported_op(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 4, 4);
    b->graph.node[1]->op_type = "FooBar";
    b->graph.node[1]->name = "weird";
    expect_load(b, FERRY_EUNSUPPORTED,
                "1 operator is not supported (opset 13): FooBar (1 node, first 'weird')");
    b->graph.node[1]->op_type = "Relu";
    b->graph.node[1]->domain = "com.microsoft";
    expect_load(b, FERRY_EUNSUPPORTED, "com.microsoft.Relu (1 node, first 'weird')");
    ob_free(b);
}

static void test_empty_truncated_garbage_missing(void **state)
{
    (void)state;
    char path[512];
    ferry_model *m = NULL;
    snprintf(path, sizeof path, "%s/empty.onnx", tmpdir);
    write_file(path, "", 0);
    assert_int_equal(ferry_model_load(path, &m), FERRY_EPARSE);
    ASSERT_MSG(path);
    ASSERT_MSG("empty");
    assert_null(m);

    ob *b = ob_mlp(16, 32, 4);
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    snprintf(path, sizeof path, "%s/trunc.onnx", tmpdir);
    write_file(path, buf, len - 7);
    assert_int_equal(ferry_model_load(path, &m), FERRY_EPARSE);
    ASSERT_MSG("model '");
    ASSERT_MSG("trunc.onnx");
    ob_free(b);

    uint8_t junk[1000];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rand();
    snprintf(path, sizeof path, "%s/junk.onnx", tmpdir);
    write_file(path, junk, sizeof junk);
    assert_int_equal(ferry_model_load(path, &m), FERRY_EPARSE);
    ASSERT_MSG("junk.onnx");
    /* a text file */
    snprintf(path, sizeof path, "%s/text.onnx", tmpdir);
    write_file(path, "hello, world\n", 13);
    assert_int_equal(ferry_model_load(path, &m), FERRY_EPARSE);

    snprintf(path, sizeof path, "%s/does-not-exist.onnx", tmpdir);
    assert_int_equal(ferry_model_load(path, &m), FERRY_EIO);
    ASSERT_MSG("does-not-exist.onnx");
    ASSERT_MSG("No such file");
    assert_int_equal(ferry_model_load(tmpdir, &m), FERRY_EIO); /* a directory */
    assert_null(m);
}

static void test_gemm_shape_mismatch(void **state)
{
    (void)state;
    ob *b = ob_mlp(16, 32, 4);
    int64_t bad[2] = {4, 31};
    Onnx__TensorProto *w2 = b->graph.initializer[2];
    Onnx__TensorProto *nw = ob_tensor(b, "fc2.weight", 1, 2, bad, NULL, 0);
    float *d = ob_alloc(b, 4 * 31 * sizeof *d);
    nw->has_raw_data = 1;
    nw->raw_data.data = (uint8_t *)d;
    nw->raw_data.len = 4 * 31 * sizeof *d;
    b->graph.initializer[2] = nw;
    expect_load(b, FERRY_ESHAPE, "node 'fc2' (Gemm): input B has shape [4,31], expected [*,32]");
    /* without transB */
    b->graph.node[2]->n_attribute = 0;
    expect_load(b, FERRY_ESHAPE, "node 'fc2' (Gemm): input B has shape [4,31], expected [32,*]");
    b->graph.initializer[2] = w2;
    /* bias of the wrong length */
    int64_t bd = 5;
    b->graph.initializer[3] = ob_tensor(b, "fc2.bias", 1, 1, &bd, d, 5 * sizeof *d);
    b->graph.node[2]->n_attribute = 1;
    expect_load(b, FERRY_ESHAPE, "input C has shape [5], which does not broadcast to [N,4]");
    ob_free(b);
}

static void test_bad_references(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 4, 4);
    b->graph.node[1]->input[0] = "nope";
    expect_load(b, FERRY_EPARSE, "node 'relu' (Relu): input 'nope' refers to no tensor");
    b->graph.node[1]->input[0] = "h";
    b->graph.output[0]->name = "zz";
    expect_load(b, FERRY_EPARSE, "output 'zz' refers to no tensor");
    b->graph.output[0]->name = "y";
    /* forward reference: relu reads the output of fc2, which comes later */
    b->graph.node[1]->input[0] = "y";
    expect_load(b, FERRY_EPARSE, "input 'y' is used before it is produced");
    b->graph.node[1]->input[0] = "h";
    /* two producers of one name */
    b->graph.node[1]->output[0] = "h";
    expect_load(b, FERRY_EPARSE, "output 'h' is already defined");
    b->graph.node[1]->output[0] = "a";
    /* a missing required input */
    b->graph.node[2]->n_input = 1;
    expect_load(b, FERRY_EPARSE, "node 'fc2' (Gemm): has 1 inputs");
    b->graph.node[2]->n_input = 3;
    expect_load(b, FERRY_OK, NULL);
    ob_free(b);

    /* an empty name among a variadic op's inputs (found by fuzz_model_load:
     * Concat's and Min/Max's shape rules read values[-1]) */
    static const char *const variadic[] = {"Concat", "Max", "Min"};
    for (int k = 0; k < 3; k++) {
        int64_t xd[2] = {FERRY_DIM_BATCH, 3};
        b = ob_new(13);
        ob_input(b, "x", 2, xd);
        ob_output(b, "y", -1, NULL);
        Onnx__NodeProto *n = ob_node(b, variadic[k], "v", "x,,x", "y");
        if (k == 0)
            ob_attr_i(b, n, "axis", 1);
        char want[64];
        snprintf(want, sizeof want, "node 'v' (%s): required input 1 is missing", variadic[k]);
        expect_load(b, FERRY_EPARSE, want);
        ob_free(b);
    }

    /* Slice's starts left out by an empty name (found by fuzz_model_load:
     * the loader takes Slice's inputs past the first as optional, for
     * opset 1's attribute form, and known_ints read values[-1]) */
    int64_t xd[2] = {FERRY_DIM_BATCH, 3}, ends = 2;
    b = ob_new(13);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "ends", 1, &ends);
    ob_node(b, "Slice", "sl", "x,,ends", "y");
    expect_load(b, FERRY_EPARSE, "node 'sl' (Slice): starts (input 1) is missing");
    ob_free(b);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 4, 4);
    Onnx__TensorProto *w = b->graph.initializer[0];
    w->raw_data.len -= 4;
    expect_load(b, FERRY_EPARSE,
                "initializer 'fc1.weight': raw_data has 60 bytes, its dims say 64");
    w->raw_data.len += 4;
    int64_t huge[3] = {INT64_MAX / 2, 4, 4};
    int64_t *saved = w->dims;
    w->dims = huge;
    w->n_dims = 3;
    expect_load(b, FERRY_EPARSE, "initializer 'fc1.weight': invalid or too large dims");
    w->dims = saved;
    w->n_dims = 2;
    w->data_type = 8; /* string */
    expect_load(b, FERRY_EUNSUPPORTED, "initializer 'fc1.weight': data type 8");
    w->data_type = 1;
    /* typed float_data with the wrong count */
    w->has_raw_data = 0;
    float fd[3] = {1, 2, 3};
    w->float_data = fd;
    w->n_float_data = 3;
    expect_load(b, FERRY_EPARSE, "has 3 f32 elements of data, its dims say 16");
    ob_free(b);
}

static void test_typed_and_half_data(void **state)
{
    (void)state;
    ob *b = ob_mlp(2, 2, 2);
    Onnx__TensorProto *w = b->graph.initializer[0];
    w->has_raw_data = 0;
    float fd[4] = {1, 2, 3, 4};
    w->float_data = fd;
    w->n_float_data = 4;
    /* an extra f16 initializer in int32_data (unused, still loaded) */
    int64_t d2 = 2;
    Onnx__TensorProto *h = ob_tensor(b, "half", 10, 1, &d2, NULL, 0);
    int32_t bits[2] = {0x3c00, 0xc000}; /* 1.0, -2.0 */
    h->int32_data = bits;
    h->n_int32_data = 2;
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, h);
    graph *g = load_graph_ok(b);
    int wv = graph_find_value(g, "fc1.weight");
    assert_memory_equal(g->values[wv].data, fd, sizeof fd);
    int hv = graph_find_value(g, "half");
    assert_int_equal(g->values[hv].dtype, FERRY_F16);
    assert_int_equal(((uint16_t *)g->values[hv].data)[0], 0x3c00);
    assert_int_equal(((uint16_t *)g->values[hv].data)[1], 0xc000);
    graph_free(g);
    ob_free(b);
}

static void test_inputs_and_outputs(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 4, 4);
    /* a symbolic non-batch dim */
    Onnx__TensorShapeProto__Dimension *d1 = b->graph.input[0]->type->tensor_type->shape->dim[1];
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d1->dim_param = "features";
    expect_load(b, FERRY_EUNSUPPORTED, "input 'x' dimension 1 is symbolic ('features')");
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1->dim_value = 4;
    /* a declared output shape that disagrees */
    b->graph.output[0]->type->tensor_type->shape->dim[1]->dim_value = 5;
    expect_load(b, FERRY_ESHAPE, "output 'y' is declared with shape [?,5] but computed as [N,4]");
    b->graph.output[0]->type->tensor_type->shape->dim[1]->dim_value = 4;
    /* dim 0 given as 0 is the batch too; a static dim 0 stays static */
    Onnx__TensorShapeProto__Dimension *d0 = b->graph.input[0]->type->tensor_type->shape->dim[0];
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d0->dim_value = 0;
    graph *g = load_graph_ok(b);
    assert_int_equal(g->values[g->inputs[0]].dims[0], FERRY_DIM_BATCH);
    graph_free(g);
    d0->dim_value = 3;
    g = load_graph_ok(b);
    assert_int_equal(g->values[g->outputs[0]].dims[0], 3);
    graph_free(g);
    /* an initializer also listed as an input is not a model input */
    OB_PUSH(b, b->graph.input, b->graph.n_input,
            ob_value_info(b, "fc1.bias", 1, 1, (int64_t[]){4}));
    g = load_graph_ok(b);
    assert_int_equal(g->n_inputs, 1);
    graph_free(g);
    /* no opset for the default domain, and an unsupported one */
    b->opset.domain = "com.example";
    expect_load(b, FERRY_EPARSE, "imports no opset of the default domain");
    b->opset.domain = "";
    b->opset.version = 99;
    expect_load(b, FERRY_EUNSUPPORTED, "opset 99");
    ob_free(b);
}

/* A summary (ferry info on any file) keeps a long axis name whole, as
 * torch writes them for axes it cannot name ("LayerNormalizationlast_
 * hidden_state_dim_1" was cut to 31 characters), and marks one it must cut. */
static void test_summary_axis_names(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 4, 4);
    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    Onnx__TensorShapeProto__Dimension *d = b->graph.output[0]->type->tensor_type->shape->dim[1];
    d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d->dim_param = "LayerNormalizationlast_hidden_state_dim_1";
    Onnx__TensorShapeProto__Dimension *d0 = b->graph.input[0]->type->tensor_type->shape->dim[1];
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0->dim_param = longer;
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/axes.onnx", tmpdir);
    write_file(path, buf, len);
    onnx_summary *s = malloc(sizeof *s);
    assert_non_null(s);
    assert_int_equal(onnx_summarize_file(path, s), FERRY_OK);
    assert_string_equal(s->outputs[0].sym[1], "LayerNormalizationlast_hidden_state_dim_1");
    size_t n = strlen(s->inputs[0].sym[1]);
    assert_int_equal(n, sizeof s->inputs[0].sym[1] - 1);
    assert_string_equal(s->inputs[0].sym[1] + n - 3, "...");
    free(s);
    ob_free(b);
}

static void test_ops_and_attributes(void **state)
{
    (void)state;
    /* x[N,8] -> LayerNorm -> Gelu(tanh) -> Dropout -> LeakyRelu -> Mul(Constant)
     *   -> Cast(f16) -> Cast(f32) -> LogSoftmax  */
    ob *b = ob_new(20);
    int64_t xd[2] = {-1, 8}, sd[1] = {8};
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", 2, xd);
    ob_init_f32(b, "gamma", 1, sd, NULL);
    ob_init_f32(b, "beta", 1, sd, NULL);
    Onnx__NodeProto *n = ob_node(b, "LayerNormalization", "ln", "x,gamma,beta", "l");
    ob_attr_f(b, n, "epsilon", 1e-3f);
    n = ob_node(b, "Gelu", "gelu", "l", "g");
    ob_attr_s(b, n, "approximate", "tanh");
    ob_node(b, "Dropout", "drop", "g", "d,");
    n = ob_node(b, "LeakyRelu", "lrelu", "d", "lr");
    n = ob_node(b, "Constant", "two", NULL, "c2");
    ob_attr_f(b, n, "value_float", 2.0f);
    ob_node(b, "Mul", "mul", "lr,c2", "m");
    n = ob_node(b, "Cast", "tohalf", "m", "h");
    ob_attr_i(b, n, "to", 10);
    n = ob_node(b, "Cast", "tofloat", "h", "f");
    ob_attr_i(b, n, "to", 1);
    ob_node(b, "LogSoftmax", "lsm", "f", "y");
    graph *g = load_graph_ok(b);
    assert_int_equal(g->n_nodes, 8);
    assert_int_equal(g->nodes[0].op, OP_LAYER_NORM);
    assert_float_equal(g->nodes[0].epsilon, 1e-3f, 0);
    assert_int_equal(g->nodes[0].axis, 1);
    assert_int_equal(g->nodes[1].approximate, 1);
    assert_int_equal(g->nodes[2].op, OP_IDENTITY);
    assert_int_equal(g->nodes[3].op, OP_LEAKY_RELU);
    assert_float_equal(g->nodes[3].alpha, 0.01f, 0);
    int c2 = graph_find_value(g, "c2");
    assert_true(g->values[c2].is_const);
    assert_int_equal(g->values[c2].ndim, 0);
    assert_int_equal(g->values[graph_find_value(g, "h")].dtype, FERRY_F16);
    assert_int_equal(g->values[g->outputs[0]].dtype, FERRY_F32);
    assert_int_equal(g->nodes[7].axis, 1);
    graph_free(g);
    /* Dropout's mask used by the graph */
    b->graph.node[2]->output[1] = "mask";
    OB_PUSH(b, b->graph.output, b->graph.n_output, ob_value_info(b, "mask", 9, -1, NULL));
    expect_load(b, FERRY_EUNSUPPORTED, "node 'drop' (Dropout): output 'mask' is used");
    b->graph.n_output = 1;
    /* a bad attribute value */
    ob_attr_s(b, b->graph.node[1], "approximate", "fast");
    b->graph.node[1]->attribute[0] = b->graph.node[1]->attribute[1];
    expect_load(b, FERRY_EUNSUPPORTED,
                "node 'gelu' (Gelu): attribute approximate = \"fast\" is not supported");
    ob_free(b);
}

/* Dropout with training_mode true is Identity when its ratio is a
 * constant 0 (torchvision's swin_t: F.dropout(attn, p=0.0) keeps
 * training=True), and refused with any other ratio. */
static void test_dropout_training_mode(void **state)
{
    (void)state;
    ob *b = ob_new(17);
    int64_t xd[2] = {-1, 8};
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", 2, xd);
    float zero = 0.0f;
    uint8_t yes = 1;
    Onnx__TensorProto *ratio = ob_tensor(b, "ratio", 1, 0, NULL, &zero, sizeof zero);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, ratio);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "train", 9, 0, NULL, &yes, 1));
    ob_node(b, "Dropout", "drop", "x,ratio,train", "y");
    graph *g = load_graph_ok(b);
    assert_int_equal(g->nodes[0].op, OP_IDENTITY);
    graph_free(g);
    float half = 0.5f;
    memcpy(ratio->raw_data.data, &half, sizeof half);
    expect_load(b, FERRY_EUNSUPPORTED,
                "node 'drop' (Dropout): training_mode must be a constant false (or the ratio a "
                "constant 0)");
    ob_free(b);
}

static void test_reshape_and_softmax_rules(void **state)
{
    (void)state;
    int64_t xd[2] = {-1, 12};
    struct {
        int64_t shape[3];
        int n;
        ferry_status st;
        const char *frag;
        int64_t want[3];
    } cases[] = {
        {{-1, 3, 4}, 3, FERRY_OK, NULL, {FERRY_DIM_BATCH, 3, 4}},
        {{0, 2, -1}, 3, FERRY_OK, NULL, {FERRY_DIM_BATCH, 2, 6}},
        {{0, 5, -1}, 3, FERRY_ESHAPE, "cannot reshape [N,12] to [0,5,-1]", {0}},
        {{-1, 6}, 2, FERRY_OK, NULL, {-2, 6}}, /* [2N,6]: the batch merged into a dim */
        {{3, 4}, 2, FERRY_EUNSUPPORTED, "the batch N must stay a factor of one dimension", {0}},
        {{-1, -1}, 2, FERRY_ESHAPE, "more than one -1", {0}},
        {{0, 0, 0}, 3, FERRY_ESHAPE, "shape entry 2 is 0 (copy) but the input has rank 2", {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ob *b = ob_new(14);
        ob_input(b, "x", 2, xd);
        ob_output(b, "y", -1, NULL);
        ob_init_i64(b, "s", cases[i].n, cases[i].shape);
        ob_node(b, "Reshape", "rs", "x,s", "y");
        if (cases[i].st == FERRY_OK) {
            graph *g = load_graph_ok(b);
            const graph_value *y = &g->values[g->outputs[0]];
            assert_int_equal(y->ndim, cases[i].n);
            assert_memory_equal(y->dims, cases[i].want, sizeof(int64_t) * (size_t)cases[i].n);
            graph_free(g);
        } else {
            expect_load(b, cases[i].st, cases[i].frag);
        }
        ob_free(b);
    }
    /* opset 11 Softmax defaults to axis 1: fine on [N,12], not on [N,3,4] */
    int64_t x3[3] = {-1, 3, 4};
    ob *b = ob_new(11);
    ob_input(b, "x", 3, x3);
    ob_output(b, "y", -1, NULL);
    ob_node(b, "Softmax", "sm", "x", "y");
    expect_load(b, FERRY_EUNSUPPORTED, "node 'sm' (Softmax): axis 1 with opset 11");
    b->graph.input[0] = ob_value_info(b, "x", 1, 2, xd);
    expect_load(b, FERRY_OK, NULL);
    /* softmax across the batch */
    ob_attr_i(b, b->graph.node[0], "axis", 0);
    expect_load(b, FERRY_EUNSUPPORTED, "normalizes over the batch dimension");
    ob_free(b);
    /* broadcasting: N against a static 3 */
    b = ob_new(13);
    int64_t cd[2] = {3, 12};
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "c", 2, cd, NULL);
    ob_node(b, "Add", "add", "x,c", "y");
    expect_load(b, FERRY_ESHAPE,
                "node 'add' (Add): inputs 'x' [N,12] and 'c' [3,12] do not broadcast");
    ob_free(b);
}

static void test_external_data(void **state)
{
    (void)state;
    ob *b = ob_mlp(4, 8, 2);
    /* fc1.weight (8x4 floats) moves to w.bin at offset 16 */
    float w[32];
    for (int i = 0; i < 32; i++)
        w[i] = (float)i * 0.5f;
    uint8_t file[16 + sizeof w];
    memset(file, 0xee, 16);
    memcpy(file + 16, w, sizeof w);
    char path[512], mpath[512];
    snprintf(path, sizeof path, "%s/w.bin", tmpdir);
    write_file(path, file, sizeof file);
    Onnx__TensorProto *t = b->graph.initializer[0];
    t->has_raw_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    Onnx__StringStringEntryProto *kv[3];
    const char *keys[3] = {"location", "offset", "length"};
    const char *vals[3] = {"w.bin", "16", "128"};
    for (int i = 0; i < 3; i++) {
        kv[i] = ob_alloc(b, sizeof *kv[i]);
        onnx__string_string_entry_proto__init(kv[i]);
        kv[i]->key = (char *)keys[i];
        kv[i]->value = (char *)vals[i];
    }
    t->external_data = kv;
    t->n_external_data = 3;
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    snprintf(mpath, sizeof mpath, "%s/ext.onnx", tmpdir);
    write_file(mpath, buf, len);
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load(mpath, &m);
    if (st != FERRY_OK)
        fail_msg("%s", ferry_last_error());
    int wv = graph_find_value(m->g, "fc1.weight");
    assert_memory_equal(m->g->values[wv].data, w, sizeof w);
    ferry_model_destroy(m);
    /* from memory: without a base directory it is an error */
    assert_int_equal(ferry_model_load_buffer(buf, len, NULL, &m), FERRY_EINVAL);
    ASSERT_MSG("initializer 'fc1.weight': external data 'w.bin' needs a base directory");
    /* too short: offset pushes past the end */
    kv[1]->value = "32";
    expect_load(b, FERRY_EPARSE, "has 144 bytes; 128 needed at offset 32");
    kv[1]->value = "16";
    kv[2]->value = "12";
    expect_load(b, FERRY_EPARSE, "external data length 12, expected 128 bytes");
    kv[2]->value = "128";
    kv[0]->value = "missing.bin";
    expect_load(b, FERRY_EIO, "cannot open external data");
    ASSERT_MSG("missing.bin");
    ASSERT_MSG("No such file");
    kv[0]->value = "../w.bin";
    expect_load(b, FERRY_EPARSE, "'../w.bin' is absolute or leaves the model's directory");
    kv[0]->value = "sub/../../w.bin";
    expect_load(b, FERRY_EPARSE, "leaves the model's directory");
    kv[0]->value = path; /* absolute */
    expect_load(b, FERRY_EPARSE, "is absolute");
    kv[0]->value = "w.bin";
    expect_load(b, FERRY_OK, NULL);
    ob_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_loads),
        cmocka_unit_test(test_shape_inference_idempotent),
        cmocka_unit_test(test_unsupported_op),
        cmocka_unit_test(test_empty_truncated_garbage_missing),
        cmocka_unit_test(test_gemm_shape_mismatch),
        cmocka_unit_test(test_bad_references),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_typed_and_half_data),
        cmocka_unit_test(test_inputs_and_outputs),
        cmocka_unit_test(test_summary_axis_names),
        cmocka_unit_test(test_ops_and_attributes),
        cmocka_unit_test(test_dropout_training_mode),
        cmocka_unit_test(test_reshape_and_softmax_rules),
        cmocka_unit_test(test_external_data),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
