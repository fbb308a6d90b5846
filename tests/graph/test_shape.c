/*
 * test_shape.c - the shape rules of src/graph/shape*.c on small hand-built
 * models: symbolic batch dims (k*N), shape math resolved at load
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), opset-13/18 inputs
 * that used to be attributes, and the errors a user meets, with exact
 * statuses and message fragments. Values are checked by running the
 * models on the CPU engine.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ferry.h"
#include "graph/model.h"
#include "graph/onnx_builder.h"

#define N_ FERRY_DIM_BATCH

static ferry_model *load(ob *b, ferry_status want, const char *frag)
{
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load_buffer(buf, len, NULL, &m);
    if (st != want)
        fail_msg("status %s, expected %s: %s", ferry_status_str(st), ferry_status_str(want),
                 ferry_last_error());
    if (frag && !strstr(ferry_last_error(), frag))
        fail_msg("message '%s' lacks '%s'", ferry_last_error(), frag);
    return m;
}

/* An int64 scalar initializer (rank 0). */
static void scalar_i64(ob *b, const char *name, int64_t v)
{
    ob_init_i64(b, name, 1, &v)->n_dims = 0;
}

static const graph_value *output(const ferry_model *m, int i)
{
    return &m->g->values[m->g->outputs[i]];
}

/* A CPU engine of one worker for m. */
static ferry_engine *cpu_engine(const ferry_model *m)
{
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.workers = 1;
    ferry_engine *e;
    if (ferry_engine_create(m, &cfg, &e))
        fail_msg("engine: %s", ferry_last_error());
    return e;
}

/* Runs m on the CPU: one f32 input of n samples filled with 0, 1, 2, ...;
 * output 0 into y (numel floats). */
static void run_f32(const ferry_model *m, int64_t n, float *y, int64_t numel)
{
    ferry_engine *e = cpu_engine(m);
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_input(m, 0, &ti), FERRY_OK);
    ferry_tensor in = {.dtype = FERRY_F32, .ndim = ti.ndim};
    int64_t cnt = 1;
    for (int d = 0; d < ti.ndim; d++) {
        in.shape[d] = ti.shape[d] == N_ ? n : ti.shape[d];
        cnt *= in.shape[d];
    }
    float *x = malloc(sizeof(float) * (size_t)cnt);
    for (int64_t i = 0; i < cnt; i++)
        x[i] = (float)i;
    in.data = x;
    ferry_tensor out;
    assert_int_equal(ferry_engine_output_info(e, 0, n, &out), FERRY_OK);
    assert_int_equal(ferry_tensor_numel(&out), numel);
    out.data = y;
    if (ferry_engine_run(e, &in, 1, &out, 1))
        fail_msg("run: %s", ferry_last_error());
    free(x);
    ferry_engine_destroy(e);
}

/* x [N,4,6] -> Reshape to [N*4, 6] through Shape/Gather/Mul/Unsqueeze/
 * Concat, the way an attention export merges the batch with the heads. */
static void test_shape_math_merges_batch(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 4, 6};
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    int64_t zero = 0, four = 4, six = 6, ax0 = 0;
    scalar_i64(b, "i0", zero);
    ob_init_i64(b, "four", 1, &four);
    ob_init_i64(b, "six", 1, &six);
    ob_init_i64(b, "ax0", 1, &ax0);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "g", "s,i0", "nb");      /* N, a scalar */
    ob_node(b, "Unsqueeze", "u", "nb,ax0", "nb1"); /* [N] */
    ob_node(b, "Mul", "mul", "nb1,four", "n4");    /* [4N] */
    ob_node(b, "Concat", "cat", "n4,six", "target");
    ob_attr_i(b, b->graph.node[b->graph.n_node - 1], "axis", 0);
    ob_node(b, "Reshape", "rs", "x,target", "r");
    ob_node(b, "Relu", "relu", "r", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    const graph_value *y = output(m, 0);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->dims[0], -4); /* 4N */
    assert_int_equal(y->dims[1], 6);
    /* the shape math left no node to run: Reshape is a view, Relu runs */
    int live = 0;
    for (int i = 0; i < m->g->n_nodes; i++)
        live += !m->g->nodes[i].dead;
    assert_int_equal(live, 2);
    ferry_model_destroy(m);
    ob_free(b);
}

/* Slice with negative steps, resolved per dim; values checked. */
static void test_slice_negative_step(void **state)
{
    (void)state;
    int64_t xd[2] = {N_, 7};
    ob *b = ob_new(13);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    int64_t st = -2, en = -100, ax = 1, sp = -2;
    ob_init_i64(b, "st", 1, &st);
    ob_init_i64(b, "en", 1, &en);
    ob_init_i64(b, "ax", 1, &ax);
    ob_init_i64(b, "sp", 1, &sp);
    ob_node(b, "Slice", "sl", "x,st,en,ax,sp", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    const graph_value *y = output(m, 0);
    assert_int_equal(y->dims[1], 3); /* x[:, 5], x[:, 3], x[:, 1] */
    float out[6];
    run_f32(m, 2, out, 6);
    const float want[6] = {5, 3, 1, 12, 10, 8};
    for (int i = 0; i < 6; i++)
        assert_true(out[i] == want[i]);
    ferry_model_destroy(m);
    ob_free(b);
}

/* opset 18: ReduceSum/ReduceMax take axes as an input; opset 13: Squeeze. */
static void test_axes_as_inputs(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 2, 3};
    ob *b = ob_new(18);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    int64_t axes[1] = {-1}, sq[1] = {1};
    ob_init_i64(b, "axes", 1, axes);
    ob_init_i64(b, "sq", 1, sq);
    Onnx__NodeProto *r = ob_node(b, "ReduceMax", "rmax", "x,axes", "m");
    ob_attr_i(b, r, "keepdims", 1);
    ob_node(b, "Squeeze", "squeeze", "m,sq", "y");
    /* the Squeeze of a dim that is not 1 is an error */
    load(b, FERRY_ESHAPE, "node 'squeeze' (Squeeze): axis 1 of [N,2,1] is not 1");
    sq[0] = 2;
    ob_free(b);
    b = ob_new(18);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "axes", 1, axes);
    ob_init_i64(b, "sq", 1, sq);
    r = ob_node(b, "ReduceMax", "rmax", "x,axes", "m");
    ob_attr_i(b, r, "keepdims", 1);
    ob_node(b, "Squeeze", "squeeze", "m,sq", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->ndim, 2);
    float out[4];
    run_f32(m, 2, out, 4);
    const float want[4] = {2, 5, 8, 11};
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == want[i]);
    ferry_model_destroy(m);
    ob_free(b);
    /* axes as an input before opset 18 is malformed */
    b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "axes", 1, axes);
    ob_node(b, "ReduceMax", "rmax", "x,axes", "y");
    load(b, FERRY_EPARSE, "takes axes as an input only from opset 18 (model has 17)");
    ob_free(b);
}

/* ReduceL1 (torch.norm(p=1) exports it) with its opset-18 axes input, and
 * ReduceLogSum with the attribute: both were missing from the table. */
static void test_reduce_l1_log_sum(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 2, 3}, axes[1] = {-1}, one = 1;
    const float five = 5.0f;
    ob *b = ob_new(18);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "five", 0, NULL, &five);
    ob_init_i64(b, "axes", 1, axes);
    ob_node(b, "Sub", "sub", "x,five", "c");
    Onnx__NodeProto *r = ob_node(b, "ReduceL1", "l1", "c,axes", "y");
    ob_attr_i(b, r, "keepdims", 0);
    ferry_model *m = load(b, FERRY_OK, NULL);
    float out[4];
    run_f32(m, 2, out, 4); /* rows -5..-3, -2..0, 1..3, 4..6 */
    const float want[4] = {12, 3, 6, 15};
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == want[i]);
    ferry_model_destroy(m);
    ob_free(b);

    b = ob_new(13);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    r = ob_node(b, "ReduceLogSum", "ls", "x", "y");
    ob_attr_ints(b, r, "axes", 1, &one);
    m = load(b, FERRY_OK, NULL);
    float ls[6];
    run_f32(m, 2, ls, 6); /* sums over the 2 rows of each sample */
    const double lwant[6] = {log(3), log(5), log(7), log(15), log(17), log(19)};
    for (int i = 0; i < 6; i++)
        assert_true(fabs(ls[i] - lwant[i]) < 1e-6);
    ferry_model_destroy(m);
    ob_free(b);
}

/* x.std(dim=-1) divides by the element count, ReduceProd of a Gather of
 * Shape(x) in int64: folded at load. */
static void test_reduce_prod_of_shape(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 2, 3}, idx[2] = {1, 2};
    ob *b = ob_new(13);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "idx", 2, idx);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "gather", "s,idx", "g");
    Onnx__NodeProto *r = ob_node(b, "ReduceProd", "prod", "g", "p");
    ob_attr_i(b, r, "keepdims", 0);
    Onnx__NodeProto *c = ob_node(b, "Cast", "cast", "p", "pf");
    ob_attr_i(b, c, "to", 1);
    ob_node(b, "Div", "div", "x,pf", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    float out[12];
    run_f32(m, 2, out, 12);
    for (int i = 0; i < 12; i++)
        assert_true(out[i] == (float)i / 6.0f);
    ferry_model_destroy(m);
    ob_free(b);
}

/* TopK (torch.topk, torch.sort): K is known at load and fits the axis; the
 * batch axis is refused; values keep the dtype, indices are int64. */
static void test_topk_shapes(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 4, 6}, k[1] = {3};
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "v", -1, NULL);
    OB_PUSH(b, b->graph.output, b->graph.n_output, ob_value_info(b, "i", 7, -1, NULL));
    ob_init_i64(b, "k", 1, k);
    Onnx__NodeProto *t = ob_node(b, "TopK", "topk", "x,k", "v,i");
    ob_attr_i(b, t, "axis", 1);
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->dtype, FERRY_F32);
    assert_int_equal(output(m, 1)->dtype, FERRY_I64);
    assert_int_equal(output(m, 1)->dims[1], 3);
    assert_int_equal(output(m, 1)->dims[2], 6);
    ferry_model_destroy(m);
    ob_free(b);

    k[0] = 7;
    b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "v", -1, NULL);
    OB_PUSH(b, b->graph.output, b->graph.n_output, ob_value_info(b, "i", 7, -1, NULL));
    ob_init_i64(b, "k", 1, k);
    ob_node(b, "TopK", "topk", "x,k", "v,i");
    load(b, FERRY_ESHAPE, "node 'topk' (TopK): K 7 is outside [0, 6] (axis 2 of x)");
    ob_free(b);

    k[0] = 1;
    b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "v", -1, NULL);
    OB_PUSH(b, b->graph.output, b->graph.n_output, ob_value_info(b, "i", 7, -1, NULL));
    ob_init_i64(b, "k", 1, k);
    t = ob_node(b, "TopK", "topk", "x,k", "v,i");
    ob_attr_i(b, t, "axis", 0);
    load(b, FERRY_EUNSUPPORTED, "node 'topk' (TopK): selects along the batch dimension");
    ob_free(b);
}

/* GatherElements reads the data at the output's own coordinates off the
 * axis: indices larger than the data there are refused at load, as are
 * indices whose batch dims could outgrow the data's. */
static void gather_elements_case(const int64_t *idd, ferry_status want, const char *msg)
{
    int64_t xd[3] = {N_, 4, 6};
    ob *b = ob_new(13);
    ob_input(b, "x", 3, xd);
    OB_PUSH(b, b->graph.input, b->graph.n_input, ob_value_info(b, "i", 7, 3, idd));
    ob_output(b, "y", -1, NULL);
    Onnx__NodeProto *t = ob_node(b, "GatherElements", "ge", "x,i", "y");
    ob_attr_i(b, t, "axis", 2);
    ferry_model *m = load(b, want, msg);
    if (m)
        ferry_model_destroy(m);
    ob_free(b);
}

static void test_gather_elements_shapes(void **state)
{
    (void)state;
    int64_t fits[3] = {N_, 4, 9}, one[3] = {1, 2, 3}, big[3] = {N_, 5, 2}, batch[3] = {2, 4, 2};
    gather_elements_case(fits, FERRY_OK, NULL); /* longer along the axis: fine */
    gather_elements_case(one, FERRY_OK, NULL);
    gather_elements_case(big, FERRY_ESHAPE,
                         "node 'ge' (GatherElements): indices 'i' are larger than data 'x' in dim 1");
    gather_elements_case(batch, FERRY_EUNSUPPORTED,
                         "node 'ge' (GatherElements): indices 'i' and data 'x' hold the batch in "
                         "different dims");
}

/* What cannot be batched is refused, naming the node and why. */
static void test_batch_errors(void **state)
{
    (void)state;
    int64_t xd[2] = {N_, 5};
    ob *b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    int64_t axes[1] = {0};
    ob_init_i64(b, "axes", 1, axes);
    ob_node(b, "ReduceSum", "rsum", "x,axes", "y");
    load(b, FERRY_EUNSUPPORTED, "node 'rsum' (ReduceSum): reduces over the batch dimension");
    ob_free(b);

    /* a Range whose length depends on the batch */
    b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    int64_t zero = 0, one = 1;
    scalar_i64(b, "zero", zero);
    scalar_i64(b, "one", one);
    scalar_i64(b, "i0", zero);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "g", "s,i0", "nb");
    ob_node(b, "Range", "range", "zero,nb,one", "y");
    load(b, FERRY_EUNSUPPORTED,
         "output 'y' holds each sample's position in the batch (a Range over the batch size)");
    ob_free(b);

    /* several unknown operators: all named at once, with counts */
    b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    ob_node(b, "NonZero", "nz1", "x", "a");
    ob_node(b, "NonZero", "nz2", "a", "c");
    ob_node(b, "Unique", "uq", "c", "y");
    load(b, FERRY_EUNSUPPORTED,
         "2 operators are not supported (opset 17): NonZero (2 nodes, first 'nz1'), Unique (1 "
         "node, first 'uq')");
    ob_free(b);
}

/* nn.Linear on [N,T,D]: MatMul + Add(bias) fuse into a Gemm with a row
 * bias over the leading dims (it was rejected: "does not broadcast"). */
static void test_linear_on_3d(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 3, 4}, wd[2] = {4, 8}, bd[1] = {8};
    float w[32], bias[8];
    for (int i = 0; i < 32; i++)
        w[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < 8; i++)
        bias[i] = (float)i;
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "w", 2, wd, w);
    ob_init_f32(b, "b", 1, bd, bias);
    ob_node(b, "MatMul", "mm", "x,w", "h");
    ob_node(b, "Add", "add", "h,b", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->dims[0], N_);
    assert_int_equal(output(m, 0)->dims[2], 8);
    float out[2 * 3 * 8];
    run_f32(m, 2, out, 48);
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 8; j++) {
            double want = bias[j];
            for (int k = 0; k < 4; k++)
                want += (double)(r * 4 + k) * w[k * 8 + j];
            assert_true(fabs(out[r * 8 + j] - want) < 1e-4);
        }
    ferry_model_destroy(m);
    ob_free(b);
}

/* A known bool larger than the inline shape math (T5's relative position
 * buckets: Greater over [T,T] positions, then Cast to int64) is evaluated
 * at load as bytes; its Cast used to copy it as int64 words, reading 8x
 * past the buffer and giving out-of-table Gather indices. */
static void test_cast_of_known_bool(void **state)
{
    (void)state;
    enum { K = 100 };
    int64_t xd[2] = {N_, K}, pos[K], fifty = 50;
    for (int i = 0; i < K; i++)
        pos[i] = i;
    ob *b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "pos", K, pos);
    scalar_i64(b, "fifty", fifty);
    ob_node(b, "Greater", "gt", "pos,fifty", "big");
    ob_attr_i(b, ob_node(b, "Cast", "to_i64", "big", "big_i"), "to", 7);
    ob_attr_i(b, ob_node(b, "Cast", "to_f32", "big_i", "big_f"), "to", 1);
    ob_node(b, "Add", "add", "x,big_f", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    float out[2 * K];
    run_f32(m, 2, out, 2 * K);
    for (int i = 0; i < 2 * K; i++)
        assert_true(out[i] == (float)i + (i % K > 50 ? 1.0f : 0.0f));
    ferry_model_destroy(m);
    ob_free(b);
}

/* Runs m on the CPU at batch 2, one f32 input of dims xd (0, 1, 2, ...),
 * output dims yd: the run must fail with FERRY_EINVAL naming frag. */
static void expect_run_error(const ferry_model *m, int xn, const int64_t *xd, int yn,
                             const int64_t *yd, const char *frag)
{
    ferry_engine *e = cpu_engine(m);
    float x[64], y[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)i;
    ferry_tensor in = {.dtype = FERRY_F32, .ndim = xn, .data = x};
    ferry_tensor o = {.dtype = FERRY_F32, .ndim = yn, .data = y};
    memcpy(in.shape, xd, sizeof(int64_t) * (size_t)xn);
    memcpy(o.shape, yd, sizeof(int64_t) * (size_t)yn);
    assert_int_equal(ferry_engine_run(e, &in, 1, &o, 1), FERRY_EINVAL);
    if (!strstr(ferry_last_error(), frag))
        fail_msg("message '%s' lacks '%s'", ferry_last_error(), frag);
    ferry_engine_destroy(e);
}

/* Scalars 'zero' and 'one', and pos = arange(N) over input x's batch
 * (s = Shape(x), nb = s[0]), as exporters write torch.arange(x.shape[0]). */
static void arange_batch(ob *b)
{
    scalar_i64(b, "zero", 0);
    scalar_i64(b, "one", 1);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "g0", "s,zero", "nb");
    ob_node(b, "Range", "range", "zero,nb,one", "pos");
}

/* h[arange(N), j] as CLIP's text model exports it: Gather(Flatten(h) [4N,
 * 3], arange(N) * T + j) with T = Shape(h)[1] and j = ArgMax(sin(h[:, :,
 * 0])), one row per sample. step multiplies the Range by another number
 * than T; shift adds a constant to j; relu puts the position through an
 * operator that does not keep it per sample. */
static ob *gather_by_position(int64_t step, int64_t shift, int relu)
{
    int64_t xd[3] = {N_, 4, 3};
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    int64_t sl_st = 0, sl_en = 1, sl_ax = 2, sq = 2;
    arange_batch(b);
    scalar_i64(b, "stepc", step);
    scalar_i64(b, "shiftc", shift);
    ob_init_i64(b, "sl_st", 1, &sl_st);
    ob_init_i64(b, "sl_en", 1, &sl_en);
    ob_init_i64(b, "sl_ax", 1, &sl_ax);
    ob_init_i64(b, "sq", 1, &sq);
    ob_node(b, "Gather", "g1", "s,one", "t");
    if (relu) {
        ob_attr_i(b, ob_node(b, "Cast", "to_f", "pos", "posf"), "to", 1);
        ob_node(b, "Relu", "relu", "posf", "y");
        return b;
    }
    ob_node(b, "Mul", "mul", step ? "pos,stepc" : "pos,t", "rows");
    ob_node(b, "Slice", "first", "x,sl_st,sl_en,sl_ax", "x0");
    ob_node(b, "Squeeze", "sqz", "x0,sq", "x0s");
    ob_node(b, "Sin", "sin", "x0s", "wave");
    Onnx__NodeProto *am = ob_node(b, "ArgMax", "argmax", "wave", "j0");
    ob_attr_i(b, am, "axis", -1);
    ob_attr_i(b, am, "keepdims", 0);
    ob_node(b, "Add", "shift", "j0,shiftc", "j");
    ob_node(b, "Add", "at", "j,rows", "idx");
    ob_attr_i(b, ob_node(b, "Flatten", "flat", "x", "h"), "axis", 2);
    ob_node(b, "Gather", "pick", "h,idx", "y");
    return b;
}

/* A Range over the batch indexing the batch axis stays per sample; the
 * value it gives each sample is checked against a loop, and the ways it
 * would not stay per sample are refused (at load) or fail the run. */
static void test_gather_by_batch_position(void **state)
{
    (void)state;
    ob *b = gather_by_position(0, 0, 0);
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->ndim, 2);
    assert_int_equal(output(m, 0)->dims[0], N_);
    assert_int_equal(output(m, 0)->dims[1], 3);
    enum { B = 5 };
    float out[B * 3];
    run_f32(m, B, out, B * 3);
    for (int i = 0; i < B; i++) {
        int best = 0;
        for (int r = 1; r < 4; r++)
            if (sin((double)(i * 12 + r * 3)) > sin((double)(i * 12 + best * 3)))
                best = r;
        for (int c = 0; c < 3; c++)
            assert_true(out[i * 3 + c] == (float)(i * 12 + best * 3 + c));
    }
    ferry_model_destroy(m);
    ob_free(b);

    b = gather_by_position(3, 0, 0); /* rows of 3 into blocks of 4 */
    load(b, FERRY_EUNSUPPORTED, "node 'pick' (Gather): gathers along the batch dimension");
    ob_free(b);

    b = gather_by_position(0, 0, 1);
    load(b, FERRY_EUNSUPPORTED,
         "node 'to_f' (Cast): input 'pos' holds the sample's position in the batch");
    ob_free(b);

    /* j + 4 lands in the next sample's rows: the CPU run fails */
    b = gather_by_position(0, 4, 0);
    m = load(b, FERRY_OK, NULL);
    const int64_t xd[3] = {2, 4, 3}, yd[2] = {2, 3};
    expect_run_error(m, 3, xd, 2, yd,
                     "node 'pick' (Gather): an index in 'idx' leaves its sample's 4 rows");
    ferry_model_destroy(m);
    ob_free(b);
}

/* An int64 initializer of any rank. */
static void init_i64_nd(ob *b, const char *name, int nd, const int64_t *dims, const int64_t *v)
{
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= dims[i];
    Onnx__TensorProto *t = ob_tensor(b, name, 7, nd, dims, v, (size_t)n * sizeof *v);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, t);
}

/* ScatterND(x [N,6,2], idx [N,2,2] int64, x[:, 4:6]): the caller's index
 * tuples (row, j) write x[:, 4:6] into rows j of x's batch row. */
static ob *scatter_by_input(void)
{
    int64_t xd[3] = {N_, 6, 2}, st = 4, en = 6, ax = 1;
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    OB_PUSH(b, b->graph.input, b->graph.n_input, ob_value_info(b, "idx", 7, 3, xd));
    b->graph.input[1]->type->tensor_type->shape->dim[1]->dim_value = 2;
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "st", 1, &st);
    ob_init_i64(b, "en", 1, &en);
    ob_init_i64(b, "ax", 1, &ax);
    ob_node(b, "Slice", "upd", "x,st,en,ax", "u");
    ob_node(b, "ScatterND", "scatter", "x,idx,u", "y");
    return b;
}

/* Runs m on x (2 samples, 0, 1, 2, ...) and index tuples idx [2,2,2]. */
static ferry_status run_scatter(const ferry_model *m, const int64_t *idx, float *y)
{
    ferry_engine *e = cpu_engine(m);
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    ferry_tensor in[2] = {{.dtype = FERRY_F32, .ndim = 3, .shape = {2, 6, 2}, .data = x},
                          {.dtype = FERRY_I64, .ndim = 3, .shape = {2, 2, 2}, .data = (void *)idx}};
    ferry_tensor o = {.dtype = FERRY_F32, .ndim = 3, .shape = {2, 6, 2}, .data = y};
    ferry_status st = ferry_engine_run(e, in, 2, &o, 1);
    ferry_engine_destroy(e);
    return st;
}

/* x[:, 1:3] = x[:, 4:6] on x [N,6,2] as torch exports it: ScatterND whose
 * index tuples (n + shift, j) are a Range over the batch, unsqueezed and
 * broadcast to [N,2,1], concatenated with the rows j along the last dim
 * (position_last swaps the two). */
static ob *scatter_by_position(int64_t shift, int position_last)
{
    int64_t xd[3] = {N_, 6, 2}, d121[3] = {1, 2, 1};
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    int64_t ax12[2] = {1, 2}, zeros[2] = {0, 0}, cols[2] = {1, 2}, st = 4, en = 6, ax = 1;
    arange_batch(b);
    scalar_i64(b, "shiftc", shift);
    ob_init_i64(b, "ax12", 2, ax12);
    init_i64_nd(b, "zeros", 3, d121, zeros);
    init_i64_nd(b, "cols", 3, d121, cols);
    ob_init_i64(b, "st", 1, &st);
    ob_init_i64(b, "en", 1, &en);
    ob_init_i64(b, "ax", 1, &ax);
    ob_node(b, "Add", "shift", "pos,shiftc", "pos2");
    ob_node(b, "Unsqueeze", "unsq", "pos2,ax12", "pu");
    ob_node(b, "Add", "rows", "pu,zeros", "ri");
    ob_node(b, "Mul", "times0", "pu,zero", "pz");
    ob_node(b, "Add", "cols", "pz,cols", "ci");
    Onnx__NodeProto *t = ob_node(b, "Concat", "tuples", position_last ? "ci,ri" : "ri,ci", "idx");
    ob_attr_i(b, t, "axis", -1);
    ob_node(b, "Slice", "upd", "x,st,en,ax", "u");
    ob_node(b, "ScatterND", "scatter", "x,idx,u", "y");
    return b;
}

/* The torch export of a slice assignment into batch data runs per sample
 * (against a loop); tuples shifted into the next sample's rows fail the
 * run; the position anywhere but first in the tuples is refused at load. */
static void test_scatter_nd_by_position(void **state)
{
    (void)state;
    ob *b = scatter_by_position(0, 0);
    ferry_model *m = load(b, FERRY_OK, NULL);
    enum { NB = 3 };
    float y[NB * 12];
    run_f32(m, NB, y, NB * 12);
    for (int i = 0; i < NB * 12; i++) {
        int row = i / 2 % 6;
        assert_true(y[i] == (float)i + (row == 1 || row == 2 ? 6.0f : 0.0f));
    }
    ferry_model_destroy(m);
    ob_free(b);

    b = scatter_by_position(1, 0);
    m = load(b, FERRY_OK, NULL);
    const int64_t xd[3] = {2, 6, 2};
    expect_run_error(m, 3, xd, 3, xd,
                     "node 'scatter' (ScatterND): an index in 'idx' writes outside its sample's 1 "
                     "rows");
    ferry_model_destroy(m);
    ob_free(b);

    b = scatter_by_position(0, 1);
    load(b, FERRY_EUNSUPPORTED,
         "node 'tuples' (Concat): input 'ri' holds the sample's position in the batch");
    ob_free(b);
}

/* ScatterND whose data, too, is the batch position (found in review: the
 * position check looked at the indices only, and the output carried the
 * unwritten positions unmarked): y[i] = (x[i], i) would depend on where
 * sample i sits in the batch, so the load refuses it. */
static void test_scatter_nd_position_data(void **state)
{
    (void)state;
    int64_t xd[2] = {N_, 1}, ax1 = 1, wide[2] = {1, 2}, flat = -1;
    const float zero = 0.0f;
    ob *b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    arange_batch(b);
    ob_init_i64(b, "ax1", 1, &ax1);
    ob_init_i64(b, "wide", 2, wide);
    ob_init_i64(b, "flat", 1, &flat);
    ob_init_f32(b, "zf", 0, NULL, &zero);
    ob_node(b, "Unsqueeze", "unsq", "pos,ax1", "pu");
    ob_node(b, "Expand", "data", "pu,wide", "d");
    ob_node(b, "Mul", "times0", "x,zf", "xz");
    ob_attr_i(b, ob_node(b, "Cast", "cols", "xz", "z"), "to", 7);
    Onnx__NodeProto *t = ob_node(b, "Concat", "tuples", "pu,z", "idx");
    ob_attr_i(b, t, "axis", -1);
    ob_node(b, "Reshape", "flat", "x,flat", "xf");
    ob_attr_i(b, ob_node(b, "Cast", "upd", "xf", "u"), "to", 7);
    ob_node(b, "ScatterND", "scatter", "d,idx,u", "yi");
    ob_attr_i(b, ob_node(b, "Cast", "to_f", "yi", "y"), "to", 1);
    load(b, FERRY_EUNSUPPORTED,
         "node 'scatter' (ScatterND): input 'd' holds the sample's position in the batch");
    ob_free(b);
}

/* ScatterND: index tuples that address the batch axis run when each
 * sample's tuples write its own rows (checked against a loop), fail the
 * run when one reaches another sample's; batch-dependent writes that
 * cannot be kept per sample, a bad updates shape and a reduction before
 * its opset are refused at load. */
static void test_scatter_nd(void **state)
{
    (void)state;
    ob *b = scatter_by_input();
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->dims[0], N_);
    /* sample 0 writes rows 1, 2; sample 1 rows 3, 0 */
    const int64_t own[8] = {0, 1, 0, 2, 1, 3, 1, 0}, other[8] = {0, 1, 1, 2, 1, 3, 1, 0};
    float y[24];
    assert_int_equal(run_scatter(m, own, y), FERRY_OK);
    for (int i = 0; i < 24; i++) {
        int n = i / 12, row = i / 2 % 6, col = i % 2;
        int from = n == 0 ? (row == 1   ? 4
                             : row == 2 ? 5
                                        : row)
                          : (row == 3   ? 4
                             : row == 0 ? 5
                                        : row);
        assert_true(y[i] == (float)(n * 12 + from * 2 + col));
    }
    assert_int_equal(run_scatter(m, other, y), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "node 'scatter' (ScatterND): an index in 'idx' "
                                               "writes outside its sample's 1 rows"));
    ferry_model_destroy(m);
    ob_free(b);

    /* the same two rows of the batch for every batch size */
    int64_t xd[2] = {N_, 5}, ud[2] = {2, 5}, id[2] = {2, 1}, iv[2] = {0, 1};
    b = ob_new(18);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    init_i64_nd(b, "i", 2, id, iv);
    ob_init_f32(b, "u", 2, ud, NULL);
    Onnx__NodeProto *n = ob_node(b, "ScatterND", "sc", "x,i,u", "y");
    load(b, FERRY_EUNSUPPORTED,
         "node 'sc' (ScatterND): indices address data's batch axis but are the same for every "
         "sample");
    /* updates of the wrong shape */
    b->graph.initializer[1]->dims[1] = 4;
    b->graph.initializer[1]->raw_data.len = 8 * sizeof(float);
    load(b, FERRY_ESHAPE, "node 'sc' (ScatterND): updates 'u' have shape [2,4], expected [2,5]");
    /* max came with opset 18 */
    ob_attr_s(b, n, "reduction", "max");
    b->opset.version = 16;
    load(b, FERRY_EPARSE, "node 'sc' (ScatterND): reduction \"max\" needs opset 18 (model has 16)");
    ob_free(b);
}

/* DETR's queries.unsqueeze(0).repeat(batch_size, 1, 1): Tile of a
 * constant [1,2,3] by repeats (Shape(x)[0], 1, 1) gives every sample a
 * copy, added here to x [N,2,3]; a batch-dependent repeat of a dim that is
 * not 1 is refused. */
static ob *tile_by_batch(int64_t rows)
{
    int64_t xd[3] = {N_, 2, 3}, qd[3] = {rows, 2, 3}, zero = 0, ones[2] = {1, 1};
    float q[12];
    for (int i = 0; i < 12; i++)
        q[i] = (float)(100 * i);
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "q", 3, qd, q);
    ob_init_i64(b, "zero", 1, &zero);
    ob_init_i64(b, "ones", 2, ones);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "g0", "s,zero", "nb");
    ob_attr_i(b, ob_node(b, "Concat", "reps", "nb,ones", "r"), "axis", 0);
    ob_node(b, "Tile", "tile", "q,r", "qt");
    ob_node(b, "Add", "add", "x,qt", "y");
    return b;
}

static void test_tile_by_batch(void **state)
{
    (void)state;
    ob *b = tile_by_batch(1);
    ferry_model *m = load(b, FERRY_OK, NULL);
    enum { NB = 3 };
    float y[NB * 6];
    run_f32(m, NB, y, NB * 6);
    for (int i = 0; i < NB * 6; i++)
        assert_true(y[i] == (float)i + (float)(100 * (i % 6)));
    ferry_model_destroy(m);
    ob_free(b);

    b = tile_by_batch(2);
    load(b, FERRY_EUNSUPPORTED,
         "node 'tile' (Tile): repeats 'r' depend on the batch size other than as k*N copies of a "
         "dim of 1");
    ob_free(b);
}

/* YOLOS's position-embedding interpolation: a bicubic Resize of a
 * constant to sizes Concat(Identity([1,1]), Shape(x)[1:3]). The Identity of
 * a small int64 constant is known at load, so the sizes are, and the
 * Resize folds: x [N,2,4] + the resized [1,2,4] matches torch's bicubic. */
static void test_cubic_resize_folds(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 2, 4}, pd[4] = {1, 1, 2, 3}, ones[2] = {1, 1}, st = 1, en = 3;
    int64_t rs[3] = {1, 2, 4};
    const float pos[6] = {0, 1, 4, 9, 16, 25};
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "pos", 4, pd, pos);
    ob_init_i64(b, "ones", 2, ones);
    ob_init_i64(b, "st", 1, &st);
    ob_init_i64(b, "en", 1, &en);
    ob_init_i64(b, "rs", 3, rs);
    ob_node(b, "Identity", "id", "ones", "ones_id");
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Slice", "hw", "s,st,en", "hw");
    ob_attr_i(b, ob_node(b, "Concat", "sizes", "ones_id,hw", "sz"), "axis", 0);
    Onnx__NodeProto *r = ob_node(b, "Resize", "resize", "pos,,,sz", "p2");
    ob_attr_s(b, r, "mode", "cubic");
    ob_attr_f(b, r, "cubic_coeff_a", -0.75f);
    ob_node(b, "Reshape", "flat", "p2,rs", "p3");
    ob_node(b, "Add", "add", "x,p3", "y");
    ferry_model *m = load(b, FERRY_OK, NULL);
    for (int i = 0; i < m->g->n_nodes; i++)
        assert_true(m->g->nodes[i].dead || m->g->nodes[i].op != OP_RESIZE);
    static const double torch_bicubic[8] = {-0.0717773438, 0.310058594, 2.19091797, 4.21533203,
                                            8.49755859,    12.4887695,  20.012207,  25.6459961};
    enum { NB = 2 };
    float y[NB * 8];
    run_f32(m, NB, y, NB * 8);
    for (int i = 0; i < NB * 8; i++)
        assert_float_equal(y[i], (double)i + torch_bicubic[i % 8], 1e-5);
    ferry_model_destroy(m);
    ob_free(b);
}

/* Resize of an empty input to sizes that are not (a Slice to nothing
 * upstream): found in review by running such models under ASan, where
 * every mode read before the input (the linear and cubic ones a heap
 * overflow, nearest silent garbage). Refused at load. */
static void test_resize_of_empty(void **state)
{
    (void)state;
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    int64_t xd[4] = {N_, 1, 3, 8}, ed[4] = {1, 1, 0, 4}, sizes[4] = {1, 1, 3, 8};
    for (int k = 0; k < 3; k++) {
        ob *b = ob_new(13);
        ob_input(b, "x", 4, xd);
        ob_output(b, "y", -1, NULL);
        ob_init_f32(b, "e", 4, ed, NULL);
        ob_init_i64(b, "sz", 4, sizes);
        ob_attr_s(b, ob_node(b, "Resize", "resize", "e,,,sz", "r"), "mode", modes[k]);
        ob_node(b, "Add", "add", "x,r", "y");
        load(b, FERRY_ESHAPE, "node 'resize' (Resize): input 'e' is empty in dim 2");
        ob_free(b);
    }
}

/* Resize's cubic_coeff_a must be a finite number (NaN gave NaN outputs). */
static void test_resize_cubic_coeff_not_finite(void **state)
{
    (void)state;
    int64_t xd[4] = {N_, 1, 2, 2}, sizes[4] = {1, 1, 4, 4};
    ob *b = ob_new(13);
    ob_input(b, "x", 4, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "sz", 4, sizes);
    Onnx__NodeProto *r = ob_node(b, "Resize", "resize", "x,,,sz", "y");
    ob_attr_s(b, r, "mode", "cubic");
    ob_attr_f(b, r, "cubic_coeff_a", NAN);
    load(b, FERRY_EPARSE, "node 'resize' (Resize): cubic_coeff_a nan is not a finite number");
    ob_free(b);
}

/* GridSample: x [N,2,3,4] sampled at a grid [N,5,6,2] gives [N,2,5,6];
 * bicubic, a grid of another batch and a 5-D input are refused. */
static void test_grid_sample_rules(void **state)
{
    (void)state;
    int64_t xd[4] = {N_, 2, 3, 4}, gd[4] = {N_, 5, 6, 2}, g1[4] = {1, 5, 6, 2};
    int64_t x5[5] = {N_, 2, 3, 4, 5}, g5[5] = {N_, 1, 5, 6, 3};
    for (int k = 0; k < 4; k++) {
        ob *b = ob_new(16);
        ob_input(b, "x", k == 3 ? 5 : 4, k == 3 ? x5 : xd);
        if (k == 2)
            ob_init_f32(b, "grid", 4, g1, NULL);
        else
            ob_input(b, "grid", k == 3 ? 5 : 4, k == 3 ? g5 : gd);
        ob_output(b, "y", -1, NULL);
        Onnx__NodeProto *n = ob_node(b, "GridSample", "gs", "x,grid", "y");
        ob_attr_s(b, n, "mode", k == 1 ? "bicubic" : "bilinear");
        ob_attr_s(b, n, "padding_mode", "border");
        ob_attr_i(b, n, "align_corners", 1);
        if (k == 0) {
            ferry_model *m = load(b, FERRY_OK, NULL);
            const graph_value *y = output(m, 0);
            assert_int_equal(y->ndim, 4);
            assert_true(y->dims[0] == N_ && y->dims[1] == 2 && y->dims[2] == 5 && y->dims[3] == 6);
            ferry_model_destroy(m);
        } else if (k == 1) {
            load(b, FERRY_EUNSUPPORTED,
                 "node 'gs' (GridSample): mode \"bicubic\" is not supported (bilinear/linear, "
                 "nearest are)");
        } else if (k == 2) {
            load(b, FERRY_ESHAPE,
                 "node 'gs' (GridSample): grid 'grid' has shape [1,5,6,2]; expected [N,Ho,Wo,2] "
                 "of the input's type and batch");
        } else {
            load(b, FERRY_EUNSUPPORTED,
                 "node 'gs' (GridSample): input 'x' has rank 5; 4 ([N,C,H,W]) is supported");
        }
        ob_free(b);
    }
}

/* GridSample of an image sliced to nothing (H = 0): refused at load, as
 * torch.grid_sample refuses it, rather than zeros (found in review). */
static void test_grid_sample_of_empty(void **state)
{
    (void)state;
    int64_t xd[4] = {N_, 2, 3, 4}, gd[4] = {N_, 5, 6, 2}, st[1] = {0}, en[1] = {0}, ax[1] = {2};
    ob *b = ob_new(16);
    ob_input(b, "x", 4, xd);
    ob_input(b, "grid", 4, gd);
    ob_output(b, "y", -1, NULL);
    ob_init_i64(b, "st", 1, st);
    ob_init_i64(b, "en", 1, en);
    ob_init_i64(b, "ax", 1, ax);
    ob_node(b, "Slice", "none", "x,st,en,ax", "e");
    ob_node(b, "GridSample", "gs", "e,grid", "y");
    load(b, FERRY_ESHAPE,
         "node 'gs' (GridSample): input 'e' is empty in its height or width; there is nothing "
         "to sample");
    ob_free(b);
}

/* -torch.eye(T) as XLNet writes it: EyeLike(ConstantOfShape([T, T])),
 * T from x's shape, folds at load and adds -1 on the diagonal of each
 * sample of x [N,3,3]; k shifts it; an eye over the batch is refused. */
static void test_eye_like(void **state)
{
    (void)state;
    int64_t xd[3] = {N_, 3, 3}, pick[2] = {1, 2};
    for (int k = 0; k < 3; k++) {
        ob *b = ob_new(17);
        ob_input(b, "x", 3, xd);
        ob_output(b, "y", -1, NULL);
        ob_init_i64(b, "pick", 2, pick);
        if (k == 2)
            pick[0] = 0, ob_init_i64(b, "pick0", 2, pick);
        ob_node(b, "Shape", "shape", "x", "s");
        ob_node(b, "Gather", "tt", k == 2 ? "s,pick0" : "s,pick", "t");
        ob_node(b, "ConstantOfShape", "zeros", "t", "z");
        Onnx__NodeProto *e = ob_node(b, "EyeLike", "eye", "z", "i");
        ob_attr_i(b, e, "k", k);
        ob_node(b, "Sub", "sub", "x,i", "y");
        if (k == 2) {
            load(b, FERRY_EUNSUPPORTED, "node 'eye' (EyeLike): input 'z' holds the batch in a dim");
            ob_free(b);
            continue;
        }
        ferry_model *m = load(b, FERRY_OK, NULL);
        for (int i = 0; i < m->g->n_nodes; i++)
            assert_true(m->g->nodes[i].dead || m->g->nodes[i].op != OP_EYE_LIKE);
        float y[2 * 9];
        run_f32(m, 2, y, 18);
        for (int i = 0; i < 18; i++)
            assert_true(y[i] == (float)i - (i % 9 % 3 == i % 9 / 3 + k ? 1.0f : 0.0f));
        ferry_model_destroy(m);
        ob_free(b);
    }
}

/* torch's x.scatter_add(2, idx.expand(N, -1, -1), x[..., :2]) on x
 * [N,3,4], idx a constant [1,3,2] (one negative, one repeated): runs per
 * sample, against a loop. A scatter along the batch (axis 0), and indices
 * without the batch into batch data, are refused. */
static ob *scatter_elements_model(int axis, int batch_indices)
{
    int64_t xd[3] = {N_, 3, 4}, id[3] = {1, 3, 2}, iv[6] = {3, 0, 1, 1, -1, 2};
    int64_t tail[2] = {3, 2}, zero = 0, one = 1, two = 2, ax = 2;
    ob *b = ob_new(16);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    init_i64_nd(b, "idx", 3, id, iv);
    ob_init_f32(b, "uc", 3, id, NULL);
    ob_init_i64(b, "tail", 2, tail);
    ob_init_i64(b, "zero", 1, &zero);
    ob_init_i64(b, "one", 1, &one);
    ob_init_i64(b, "two", 1, &two);
    ob_init_i64(b, "ax", 1, &ax);
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Slice", "nb", "s,zero,one", "n1");
    ob_attr_i(b, ob_node(b, "Concat", "shp", "n1,tail", "shp"), "axis", 0);
    ob_node(b, "Expand", "ex", "idx,shp", "ie");
    ob_node(b, "Slice", "src", "x,zero,two,ax", "u");
    Onnx__NodeProto *n =
        ob_node(b, "ScatterElements", "sc", batch_indices ? "x,ie,u" : "x,idx,uc", "y");
    ob_attr_i(b, n, "axis", axis);
    ob_attr_s(b, n, "reduction", "add");
    return b;
}

static void test_scatter_elements(void **state)
{
    (void)state;
    ob *b = scatter_elements_model(2, 1);
    ferry_model *m = load(b, FERRY_OK, NULL);
    static const int cols[3][2] = {{3, 0}, {1, 1}, {3, 2}};
    float y[3 * 12];
    run_f32(m, 3, y, 36);
    for (int i = 0; i < 36; i++) {
        int n = i / 12, r = i / 4 % 3, c = i % 4;
        double want = i;
        for (int j = 0; j < 2; j++)
            if (cols[r][j] == c)
                want += n * 12 + r * 4 + j;
        assert_true(y[i] == (float)want);
    }
    ferry_model_destroy(m);
    ob_free(b);

    b = scatter_elements_model(0, 1);
    load(b, FERRY_EUNSUPPORTED, "node 'sc' (ScatterElements): scatters along the batch dimension");
    ob_free(b);
    b = scatter_elements_model(2, 0);
    load(
        b, FERRY_EUNSUPPORTED,
        "node 'sc' (ScatterElements): indices 'idx' and data 'x' hold the batch in different dims");
    ob_free(b);
}

/* Runs m on the CPU at batch n: input 0 of dtype xdt from x, output 0 of
 * dtype ydt into y (numel elements). */
static void run_typed(const ferry_model *m, int64_t n, ferry_dtype xdt, const void *x,
                      ferry_dtype ydt, void *y, int64_t numel)
{
    ferry_engine *e = cpu_engine(m);
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_input(m, 0, &ti), FERRY_OK);
    ferry_tensor in = {.dtype = xdt, .ndim = ti.ndim, .data = (void *)x};
    for (int d = 0; d < ti.ndim; d++)
        in.shape[d] = ti.shape[d] == N_ ? n : ti.shape[d];
    ferry_tensor out;
    assert_int_equal(ferry_engine_output_info(e, 0, n, &out), FERRY_OK);
    assert_int_equal(out.dtype, ydt);
    assert_int_equal(ferry_tensor_numel(&out), numel);
    out.data = y;
    if (ferry_engine_run(e, &in, 1, &out, 1))
        fail_msg("run: %s", ferry_last_error());
    ferry_engine_destroy(e);
}

/* OneHot (F.one_hot): depth known at load, the depth dim inserted at axis
 * (negative counts from the output's rank); a negative index counts from
 * depth, one outside [-depth, depth) leaves its row off. */
static ob *one_hot_model(int64_t axis, int depth_input, int n_values)
{
    int64_t xd[2] = {N_, 5}, vd[1] = {n_values};
    const float vals[3] = {-1.0f, 3.0f, 0.0f};
    ob *b = ob_new(13);
    OB_PUSH(b, b->graph.input, b->graph.n_input, ob_value_info(b, "x", 7, 2, xd));
    if (depth_input)
        OB_PUSH(b, b->graph.input, b->graph.n_input, ob_value_info(b, "depth", 7, 0, NULL));
    else
        scalar_i64(b, "depth", 7);
    ob_init_f32(b, "v", 1, vd, vals);
    ob_output(b, "y", -1, NULL);
    ob_attr_i(b, ob_node(b, "OneHot", "oh", "x,depth,v", "y"), "axis", axis);
    return b;
}

static void test_one_hot(void **state)
{
    (void)state;
    const int64_t idx[10] = {0, 6, -1, 7, -8, 3, -7, 2, 1, 5};
    ob *b = one_hot_model(-1, 0, 2);
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->ndim, 3);
    assert_int_equal(output(m, 0)->dims[1], 5);
    assert_int_equal(output(m, 0)->dims[2], 7);
    float y[70];
    run_typed(m, 2, FERRY_I64, idx, FERRY_F32, y, 70);
    for (int i = 0; i < 10; i++) {
        int64_t k = idx[i] < 0 ? idx[i] + 7 : idx[i];
        for (int d = 0; d < 7; d++)
            if (y[i * 7 + d] != (d == k ? 3.0f : -1.0f))
                fail_msg("index %lld: y[%d] = %g", (long long)idx[i], d, (double)y[i * 7 + d]);
    }
    ferry_model_destroy(m);
    ob_free(b);

    /* axis 1 of the output [N, 7, 5]: sample 0's index j is column j */
    b = one_hot_model(1, 0, 2);
    m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->dims[1], 7);
    assert_int_equal(output(m, 0)->dims[2], 5);
    run_typed(m, 2, FERRY_I64, idx, FERRY_F32, y, 70);
    assert_true(y[0 * 5 + 0] == 3.0f && y[6 * 5 + 1] == 3.0f && y[6 * 5 + 2] == 3.0f);
    for (int d = 0; d < 7; d++)
        assert_true(y[d * 5 + 3] == -1.0f && y[35 + d * 5 + 0] == (d == 3 ? 3.0f : -1.0f));
    ferry_model_destroy(m);
    ob_free(b);

    b = one_hot_model(3, 0, 2);
    load(b, FERRY_ESHAPE, "node 'oh' (OneHot): axis 3 is out of range for indices of rank 2");
    ob_free(b);
    b = one_hot_model(-1, 1, 2);
    load(b, FERRY_EUNSUPPORTED, "node 'oh' (OneHot): depth 'depth' must be a constant scalar");
    ob_free(b);
    b = one_hot_model(-1, 0, 3);
    load(b, FERRY_ESHAPE, "node 'oh' (OneHot): values 'v' must hold two elements [off, on]");
    ob_free(b);
    /* an int64 depth past 2^24, which a float rounds back to 2^24 */
    b = one_hot_model(-1, 0, 2);
    for (size_t i = 0; i < b->graph.n_initializer; i++)
        if (!strcmp(b->graph.initializer[i]->name, "depth")) {
            int64_t big = (INT64_C(1) << 24) + 1;
            memcpy(b->graph.initializer[i]->raw_data.data, &big, sizeof big);
        }
    load(b, FERRY_EUNSUPPORTED,
         "node 'oh' (OneHot): depth 16777217 must be a whole number in [1, 16777216]");
    ob_free(b);
}

/* IsNaN, IsInf (torch.isnan, isinf, isfinite, nan_to_num) of log(x - 1)
 * over x = 0, 1, 2: NaN, -inf, 0; IsInf's detect_* pick the signs. */
static void float_test_case(const char *op, int detect_neg, int detect_pos, const uint8_t *want)
{
    int64_t xd[2] = {N_, 3}, one = 1;
    ob *b = ob_new(13);
    ob_input(b, "x", 2, xd);
    OB_PUSH(b, b->graph.output, b->graph.n_output, ob_value_info(b, "y", 9, -1, NULL));
    float f1 = 1.0f;
    ob_init_f32(b, "one", 0, &one, &f1);
    ob_node(b, "Sub", "sub", "x,one", "xm1");
    ob_node(b, "Log", "log", "xm1", "l");
    Onnx__NodeProto *t = ob_node(b, op, "test", "l", "y");
    if (detect_neg >= 0) {
        ob_attr_i(b, t, "detect_negative", detect_neg);
        ob_attr_i(b, t, "detect_positive", detect_pos);
    }
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->dtype, FERRY_BOOL);
    const float x[6] = {0, 1, 2, 0, 1, 2};
    uint8_t y[6];
    run_typed(m, 2, FERRY_F32, x, FERRY_BOOL, y, 6);
    for (int i = 0; i < 6; i++)
        if (y[i] != want[i % 3])
            fail_msg("%s(%d, %d): y[%d] = %d", op, detect_neg, detect_pos, i, y[i]);
    ferry_model_destroy(m);
    ob_free(b);
}

static void test_is_nan_inf(void **state)
{
    (void)state;
    float_test_case("IsNaN", -1, -1, (const uint8_t[]){1, 0, 0});
    float_test_case("IsInf", -1, -1, (const uint8_t[]){0, 1, 0});
    float_test_case("IsInf", 1, 0, (const uint8_t[]){0, 1, 0});
    float_test_case("IsInf", 0, 1, (const uint8_t[]){0, 0, 0});
    int64_t xd[2] = {N_, 3};
    ob *b = ob_new(13);
    OB_PUSH(b, b->graph.input, b->graph.n_input, ob_value_info(b, "x", 7, 2, xd));
    ob_output(b, "y", -1, NULL);
    ob_node(b, "IsNaN", "isnan", "x", "y");
    load(b, FERRY_EDTYPE, "node 'isnan' (IsNaN): input 'x' is i64; a floating-point type is");
    ob_free(b);
}

/* The activations of nn.ELU, SELU, CELU, Threshold, Softsign, Mish,
 * Hardshrink/Softshrink with their ONNX defaults and given attributes,
 * over x = -4 .. 3.5 in steps of 0.5. */
static void activation_case(const char *op, const char *attr, float a, const char *attr2, float a2,
                            double (*ref)(double))
{
    int64_t xd[2] = {N_, 8};
    ob *b = ob_new(18);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    Onnx__NodeProto *t = ob_node(b, op, "act", "x", "y");
    if (attr)
        ob_attr_f(b, t, attr, a);
    if (attr2)
        ob_attr_f(b, t, attr2, a2);
    ferry_model *m = load(b, FERRY_OK, NULL);
    float x[16], y[16];
    for (int i = 0; i < 16; i++)
        x[i] = -4.0f + 0.5f * (float)i;
    run_typed(m, 2, FERRY_F32, x, FERRY_F32, y, 16);
    for (int i = 0; i < 16; i++) {
        double want = ref(x[i]);
        if (fabs(y[i] - want) > 1e-6 * (1 + fabs(want)))
            fail_msg("%s(%g) = %.9g, want %.9g", op, (double)x[i], (double)y[i], want);
    }
    ferry_model_destroy(m);
    ob_free(b);
}

static double ref_elu(double v)
{
    return v > 0 ? v : 0.7 * expm1(v);
}
static double ref_selu(double v)
{
    return 1.0507009873554804934193349852946 *
           (v > 0 ? v : 1.6732632423543772848170429916717 * expm1(v));
}
static double ref_celu(double v)
{
    return fmax(0, v) + fmin(0, 1.3 * expm1(v / 1.3));
}
static double ref_thresholded(double v)
{
    return v > 1.0 ? v : 0;
}
static double ref_thresholded2(double v)
{
    return v > -0.5 ? v : 0;
}
static double ref_softsign(double v)
{
    return v / (1 + fabs(v));
}
static double ref_mish(double v)
{
    return v * tanh(log1p(exp(v)));
}
static double ref_hardshrink(double v)
{
    return fabs(v) > 0.5 ? v : 0;
}
static double ref_softshrink(double v)
{
    return v < -1.5 ? v + 1.5 : v > 1.5 ? v - 1.5 : 0;
}

static void test_activations(void **state)
{
    (void)state;
    activation_case("Elu", "alpha", 0.7f, NULL, 0, ref_elu);
    activation_case("Selu", NULL, 0, NULL, 0, ref_selu);
    activation_case("Celu", "alpha", 1.3f, NULL, 0, ref_celu);
    activation_case("ThresholdedRelu", NULL, 0, NULL, 0, ref_thresholded);
    activation_case("ThresholdedRelu", "alpha", -0.5f, NULL, 0, ref_thresholded2);
    activation_case("Softsign", NULL, 0, NULL, 0, ref_softsign);
    activation_case("Mish", NULL, 0, NULL, 0, ref_mish);
    activation_case("Shrink", NULL, 0, NULL, 0, ref_hardshrink);
    activation_case("Shrink", "lambd", 1.5f, "bias", 1.5f, ref_softshrink);

    /* Celu divides by alpha: 0 is refused, as torch.celu refuses it */
    int64_t xd[2] = {N_, 5};
    ob *b = ob_new(13);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    Onnx__NodeProto *t = ob_node(b, "Celu", "celu", "x", "y");
    ob_attr_f(b, t, "alpha", 0.0f);
    load(b, FERRY_EPARSE, "node 'celu' (Celu): attribute 'alpha' is 0; it must be finite and not 0");
    ob_free(b);
}

/* RNN (nn.RNN) through the loader: layout 1, bidirectional, Relu named
 * once per direction, against a float64 transcription of the ONNX page;
 * activations it does not have, or two different ones, are refused. */
static ob *rnn_model(const char *const *acts, int n_acts)
{
    enum { T = 4, I = 3, H = 2 };
    int64_t xd[3] = {N_, T, I}, wd[3] = {2, H, I}, rd[3] = {2, H, H}, bd[2] = {2, 2 * H};
    ob *b = ob_new(14);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "W", 3, wd,
                (const float[]){0.5f, -0.3f, 0.2f, 0.1f, 0.4f, -0.6f, -0.2f, 0.3f, 0.1f, 0.7f,
                                -0.1f, 0.2f});
    ob_init_f32(b, "R", 3, rd, (const float[]){0.3f, -0.5f, 0.6f, 0.2f, -0.4f, 0.1f, 0.5f, 0.3f});
    ob_init_f32(b, "B", 2, bd, (const float[]){0.1f, -0.2f, 0.05f, 0.0f, -0.1f, 0.2f, 0.3f, 0.0f});
    Onnx__NodeProto *t = ob_node(b, "RNN", "rnn", "x,W,R,B", "y");
    ob_attr_i(b, t, "hidden_size", H);
    ob_attr_i(b, t, "layout", 1);
    ob_attr_s(b, t, "direction", "bidirectional");
    if (n_acts) {
        Onnx__AttributeProto *a =
            ob_attr(b, t, "activations", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
        a->strings = ob_alloc(b, sizeof *a->strings * (size_t)n_acts);
        for (int i = 0; i < n_acts; i++) {
            a->strings[i].data = (uint8_t *)ob_str(b, acts[i]);
            a->strings[i].len = strlen(acts[i]);
        }
        a->n_strings = (size_t)n_acts;
    }
    return b;
}

static void test_rnn(void **state)
{
    (void)state;
    enum { T = 4, I = 3, H = 2, NB = 3 };
    const char *relu2[2] = {"Relu", "Relu"};
    ob *b = rnn_model(relu2, 2);
    ferry_model *m = load(b, FERRY_OK, NULL);
    const graph_value *y = output(m, 0);
    assert_int_equal(y->ndim, 4);
    assert_true(y->dims[0] == N_ && y->dims[1] == T && y->dims[2] == 2 && y->dims[3] == H);
    float x[NB * T * I], got[NB * T * 2 * H];
    for (int i = 0; i < NB * T * I; i++)
        x[i] = (float)((i * 7) % 11) * 0.2f - 1.0f;
    run_typed(m, NB, FERRY_F32, x, FERRY_F32, got, NB * T * 2 * H);
    /* the initializers as the model holds them */
    const float *W = m->g->values[graph_find_value(m->g, "W")].data,
                *R = m->g->values[graph_find_value(m->g, "R")].data,
                *B = m->g->values[graph_find_value(m->g, "B")].data;
    for (int n = 0; n < NB; n++)
        for (int d = 0; d < 2; d++) {
            double h[H] = {0, 0};
            for (int k = 0; k < T; k++) {
                int t = d ? T - 1 - k : k;
                double hn[H];
                for (int j = 0; j < H; j++) {
                    double a = B[d * 2 * H + j] + B[d * 2 * H + H + j];
                    for (int i = 0; i < I; i++)
                        a += W[(d * H + j) * I + i] * x[(n * T + t) * I + i];
                    for (int i = 0; i < H; i++)
                        a += R[(d * H + j) * H + i] * h[i];
                    hn[j] = a > 0 ? a : 0;
                }
                for (int j = 0; j < H; j++) {
                    h[j] = hn[j];
                    double g = got[((n * T + t) * 2 + d) * H + j];
                    if (fabs(g - h[j]) > 1e-6)
                        fail_msg("y[%d,%d,%d,%d] = %.9g, want %.9g", n, t, d, j, g, h[j]);
                }
            }
        }
    ferry_model_destroy(m);
    ob_free(b);

    const char *mixed[2] = {"Relu", "Tanh"}, *sig[1] = {"Sigmoid"};
    b = rnn_model(mixed, 2);
    load(b, FERRY_EUNSUPPORTED,
         "node 'rnn' (RNN): activations must be Tanh or Relu, the same in both directions (got "
         "\"Tanh\")");
    ob_free(b);
    b = rnn_model(sig, 1);
    load(b, FERRY_EUNSUPPORTED,
         "activations must be Tanh or Relu, the same in both directions "
         "(got \"Sigmoid\")");
    ob_free(b);
}

/* Moves the last n nodes of b's graph into a new graph, the branch attr
 * of If node ifn, whose output is the value named out. */
static void if_branch(ob *b, Onnx__NodeProto *ifn, const char *attr, size_t n, const char *out)
{
    Onnx__AttributeProto *a = ob_attr(b, ifn, attr, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    Onnx__GraphProto *g = ob_alloc(b, sizeof *g);
    onnx__graph_proto__init(g);
    g->name = ob_str(b, attr);
    for (size_t i = b->graph.n_node - n; i < b->graph.n_node; i++)
        OB_PUSH(b, g->node, g->n_node, b->graph.node[i]);
    b->graph.n_node -= n;
    OB_PUSH(b, g->output, g->n_output, ob_value_info(b, out, 1, -1, NULL));
    a->g = g;
}

/* x [N,4,3] -> If (Equal(Shape(x)[1], dim)) then Squeeze(Relu(x), axis 2)
 * else Mul(x, c) with c a Constant of the branch: the condition is known
 * at load, so the If is inlined and only its taken branch is kept (the
 * then branch's Squeeze would not even infer when dim is not 4). */
static ob *if_model(int64_t dim, const char *cond_input)
{
    int64_t xd[3] = {N_, 4, 3}, one = 1, two = 2;
    ob *b = ob_new(17);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    if (cond_input) {
        OB_PUSH(b, b->graph.input, b->graph.n_input,
                ob_value_info(b, cond_input, 9, 0, NULL));
    } else {
        scalar_i64(b, "one", one);
        scalar_i64(b, "dim", dim);
        ob_node(b, "Shape", "shape", "x", "s");
        ob_node(b, "Gather", "g", "s,one", "s1");
        ob_node(b, "Equal", "eq", "s1,dim", "cond");
    }
    ob_init_i64(b, "ax2", 1, &two);
    Onnx__NodeProto *ifn = ob_node(b, "If", "if", cond_input ? cond_input : "cond", "y");
    ob_node(b, "Relu", "relu", "x", "r");
    ob_node(b, "Squeeze", "sq", "r,ax2", "t_out");
    if_branch(b, ifn, "then_branch", 2, "t_out");
    Onnx__NodeProto *k = ob_node(b, "Constant", "k", "", "c");
    k->n_input = 0;
    Onnx__AttributeProto *ka = ob_attr(b, k, "value_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    ka->has_f = 1;
    ka->f = -2.0f;
    ob_node(b, "Mul", "mul", "x,c", "e_out");
    if_branch(b, ifn, "else_branch", 2, "e_out");
    return b;
}

static void test_if_known_condition(void **state)
{
    (void)state;
    /* else taken: y = -2x, [N,4,3]; the then branch's Squeeze of a dim 3 is gone */
    ob *b = if_model(5, NULL);
    ferry_model *m = load(b, FERRY_OK, NULL);
    assert_int_equal(output(m, 0)->ndim, 3);
    float y[24];
    run_f32(m, 2, y, 24);
    for (int i = 0; i < 24; i++)
        assert_true(y[i] == -2.0f * (float)i);
    ferry_model_destroy(m);
    ob_free(b);

    /* then taken: the Squeeze of dim 2 (3 long) fails as it would outside an If */
    b = if_model(4, NULL);
    load(b, FERRY_ESHAPE, "node 'sq' (Squeeze)");
    ob_free(b);

    b = if_model(4, "flag");
    load(b, FERRY_EUNSUPPORTED,
         "node 'if' (If): condition 'flag' is computed from the data at run time; only an If "
         "whose condition is known when the model loads");
    ob_free(b);

    /* an If in a branch */
    b = if_model(5, NULL);
    Onnx__NodeProto *ifn = b->graph.node[b->graph.n_node - 1];
    Onnx__NodeProto *inner = ob_node(b, "If", "inner", "cond", "i_out");
    ob_node(b, "Relu", "r2", "x", "r2_out");
    if_branch(b, inner, "then_branch", 1, "r2_out");
    ob_node(b, "Neg", "n2", "x", "n2_out");
    if_branch(b, inner, "else_branch", 1, "n2_out");
    ifn->attribute[0]->g->node[1] = inner; /* in place of the Squeeze */
    b->graph.n_node--;
    load(b, FERRY_EUNSUPPORTED,
         "node 'if' (If): an If inside its then_branch ('inner') is not supported");
    ob_free(b);
}

/* 5-D Conv, ConvTranspose and pools (torchvision's video models): output
 * dims per axis with strides, asymmetric pads, dilation, output_padding
 * and ceil_mode, run on the CPU; mismatched attribute lengths and a 6-D
 * input are refused. */
static ob *conv3d_model(const int64_t *xd, int xn, const int64_t *kshape, int nk)
{
    int64_t wd[5] = {4, 2, 3, 2, 3}, pads[6] = {1, 0, 2, 0, 1, 1}, strides[3] = {2, 1, 2},
            dil[3] = {1, 2, 1}, pk[3] = {2, 2, 2}, ps[3] = {2, 2, 2}, tk[3] = {1, 2, 2};
    ob *b = ob_new(17);
    ob_input(b, "x", xn, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "W", 5, wd, NULL);
    int64_t twd[5] = {4, 3, 1, 2, 2};
    ob_init_f32(b, "TW", 5, twd, NULL);
    Onnx__NodeProto *c = ob_node(b, "Conv", "conv", "x,W", "c");
    ob_attr_ints(b, c, "kernel_shape", nk, kshape);
    ob_attr_ints(b, c, "pads", 6, pads);
    ob_attr_ints(b, c, "strides", 3, strides);
    ob_attr_ints(b, c, "dilations", 3, dil);
    Onnx__NodeProto *m = ob_node(b, "MaxPool", "pool", "c", "m");
    ob_attr_ints(b, m, "kernel_shape", 3, pk);
    ob_attr_ints(b, m, "strides", 3, ps);
    ob_attr_i(b, m, "ceil_mode", 1);
    Onnx__NodeProto *t = ob_node(b, "ConvTranspose", "up", "m,TW", "y");
    ob_attr_ints(b, t, "strides", 3, tk);
    ob_attr_ints(b, t, "output_padding", 3, (const int64_t[]){0, 1, 0});
    return b;
}

static void test_conv3d_shapes(void **state)
{
    (void)state;
    int64_t xd[5] = {N_, 2, 5, 7, 6}, k[3] = {3, 2, 3};
    ob *b = conv3d_model(xd, 5, k, 3);
    ferry_model *m = load(b, FERRY_OK, NULL);
    /* conv: D (5+1+0-3)/2+1 = 2, H (7+0+1-3)/1+1 = 6, W (6+2+1-3)/2+1 = 4;
     * pool ceil: 1, 3, 2; transpose (1,2,2), stride (1,2,2), output_padding
     * (0,1,0): 1, 2*2+2+1 = 7, 1*2+2 = 4 */
    const graph_value *y = output(m, 0);
    assert_int_equal(y->ndim, 5);
    assert_true(y->dims[1] == 3 && y->dims[2] == 1 && y->dims[3] == 7 && y->dims[4] == 4);
    float out[2 * 3 * 7 * 4];
    run_f32(m, 2, out, 2 * 3 * 7 * 4);
    for (int i = 0; i < 2 * 3 * 7 * 4; i++)
        assert_true(isfinite(out[i]));
    ferry_model_destroy(m);
    ob_free(b);

    b = conv3d_model(xd, 5, k, 2);
    load(b, FERRY_ESHAPE, "node 'conv' (Conv): kernel_shape has 2 dims; the input has 3 spatial");
    ob_free(b);
    int64_t x6[6] = {N_, 2, 5, 7, 6, 2};
    b = conv3d_model(x6, 6, k, 3);
    load(b, FERRY_ESHAPE, "node 'conv' (Conv): input 'x' has shape [N,2,5,7,6,2]; expected [N,C,");
    ob_free(b);
}

/* ConvTranspose whose kernel_shape differs from its weight's dims: the
 * CPU kernel sized the weight from kernel_shape and read past it. */
static void test_conv_transpose_kernel_shape(void **state)
{
    (void)state;
    int64_t xd[5] = {N_, 2, 3, 3, 3}, wd[5] = {2, 1, 1, 1, 1}, k[3] = {3, 3, 3};
    ob *b = ob_new(17);
    ob_input(b, "x", 5, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "TW", 5, wd, NULL);
    Onnx__NodeProto *t = ob_node(b, "ConvTranspose", "up", "x,TW", "y");
    ob_attr_ints(b, t, "kernel_shape", 3, k);
    load(b, FERRY_ESHAPE, "node 'up' (ConvTranspose): kernel_shape differs from the weight's dims");
    ob_free(b);
}

/* RNN whose sequence_lens is not [batch]: the kernel read one length per
 * sample, past a [1] tensor at batch 3. */
static void test_rnn_sequence_lens_shape(void **state)
{
    (void)state;
    enum { T = 4, I = 3, H = 2 };
    int64_t xd[3] = {N_, T, I}, wd[3] = {1, H, I}, rd[3] = {1, H, H}, ld = 1;
    ob *b = ob_new(14);
    ob_input(b, "x", 3, xd);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "W", 3, wd, NULL);
    ob_init_f32(b, "R", 3, rd, NULL);
    int32_t len = T;
    Onnx__TensorProto *lt = ob_tensor(b, "L", 6, 1, &ld, &len, sizeof len);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, lt);
    Onnx__NodeProto *t = ob_node(b, "RNN", "rnn", "x,W,R,,L", "y");
    ob_attr_i(b, t, "hidden_size", H);
    ob_attr_i(b, t, "layout", 1);
    load(b, FERRY_ESHAPE,
         "node 'rnn' (RNN): sequence_lens 'L' has shape [1]; expected [batch] of X [N,4,3]");
    ob_free(b);
}

/* "If (inlined)" names the loader's own node for an If's output, not an
 * ONNX operator: a model using it as an op_type reached load_if with no
 * branches (a NULL attribute dereferenced). */
static void test_if_internal_name_refused(void **state)
{
    (void)state;
    int64_t xd[2] = {N_, 3};
    ob *b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    uint8_t t = 1;
    Onnx__TensorProto *c = ob_tensor(b, "c", 9, 0, NULL, &t, 1);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, c);
    ob_node(b, "If (inlined)", "fake", "c,,x", "y");
    load(b, FERRY_EUNSUPPORTED, "1 operator is not supported (opset 17): If (inlined) (1 node");
    ob_free(b);
    /* nor the rows a pass makes */
    b = ob_new(17);
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", -1, NULL);
    ob_node(b, "Attention (fused)", "fake", "x,x,x", "y");
    load(b, FERRY_EUNSUPPORTED, "1 operator is not supported (opset 17): Attention (fused) (1 node");
    ob_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_math_merges_batch),
        cmocka_unit_test(test_slice_negative_step),
        cmocka_unit_test(test_axes_as_inputs),
        cmocka_unit_test(test_reduce_l1_log_sum),
        cmocka_unit_test(test_reduce_prod_of_shape),
        cmocka_unit_test(test_topk_shapes),
        cmocka_unit_test(test_gather_elements_shapes),
        cmocka_unit_test(test_batch_errors),
        cmocka_unit_test(test_linear_on_3d),
        cmocka_unit_test(test_cast_of_known_bool),
        cmocka_unit_test(test_gather_by_batch_position),
        cmocka_unit_test(test_scatter_nd),
        cmocka_unit_test(test_scatter_nd_by_position),
        cmocka_unit_test(test_scatter_nd_position_data),
        cmocka_unit_test(test_tile_by_batch),
        cmocka_unit_test(test_cubic_resize_folds),
        cmocka_unit_test(test_resize_of_empty),
        cmocka_unit_test(test_resize_cubic_coeff_not_finite),
        cmocka_unit_test(test_grid_sample_rules),
        cmocka_unit_test(test_grid_sample_of_empty),
        cmocka_unit_test(test_eye_like),
        cmocka_unit_test(test_scatter_elements),
        cmocka_unit_test(test_one_hot),
        cmocka_unit_test(test_is_nan_inf),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_rnn),
        cmocka_unit_test(test_if_known_condition),
        cmocka_unit_test(test_conv3d_shapes),
        cmocka_unit_test(test_conv_transpose_kernel_shape),
        cmocka_unit_test(test_rnn_sequence_lens_shape),
        cmocka_unit_test(test_if_internal_name_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
