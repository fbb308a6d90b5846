/*
 * test_make_model.c - onnx_write_mlp writes MLPs that ONNX itself accepts
 * (onnx.checker, when /usr/bin/python3 has onnx), that ferry_model_load
 * loads with the declared I/O and parameter count, and that the passes
 * fuse into one Gemm per layer with the activation in its epilogue, for
 * every activation spelling (Relu, the Erf and tanh GELU patterns, the
 * opset-20 Gelu op). The same seed gives the same bytes; bad arguments
 * give FERRY_EINVAL naming the argument, and the CLI exits 2 on them.
 */
/* cmocka.h needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "graph/model.h"
#include "graph/onnx_write.h"
#include "util/error.h"

static char dir[] = "/tmp/ferry-test-make-model-XXXXXX";

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static ferry_model *load(const char *path)
{
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load(path, &m);
    if (st != FERRY_OK)
        fail_msg("ferry_model_load('%s'): %s: %s", path, ferry_status_str(st), ferry_last_error());
    return m;
}

/* Live nodes are exactly n_layers Gemms, in order fc1..fcN, the hidden
 * ones with act and the last with none, each with its bias as C. */
static void check_fused(const graph *g, int n_layers, act_kind act)
{
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        assert_int_equal(n->op, OP_GEMM);
        k++;
        char name[32];
        snprintf(name, sizeof name, "fc%d", k);
        assert_string_equal(n->name, name);
        assert_int_equal(n->act, k < n_layers ? act : ACT_NONE);
        assert_int_equal(n->n_in, 3);
        snprintf(name, sizeof name, "fc%d.bias", k);
        assert_string_equal(g->values[n->in[2]].name, name);
        assert_int_equal(n->trans_b, 1);
    }
    assert_int_equal(k, n_layers);
}

static void check_io(const ferry_model *m, int64_t in_w, int64_t out_w)
{
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_num_inputs(m), 1);
    assert_int_equal(ferry_model_num_outputs(m), 1);
    assert_int_equal(ferry_model_input(m, 0, &ti), FERRY_OK);
    assert_string_equal(ti.name, "input");
    assert_int_equal(ti.dtype, FERRY_F32);
    assert_int_equal(ti.ndim, 2);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], in_w);
    assert_int_equal(ferry_model_output(m, 0, &ti), FERRY_OK);
    assert_string_equal(ti.name, "output");
    assert_int_equal(ti.ndim, 2);
    assert_int_equal(ti.shape[0], FERRY_DIM_BATCH);
    assert_int_equal(ti.shape[1], out_w);
}

/* 1 if onnx.checker accepts the file, 0 if it rejects it, -1 when there
 * is no Python with onnx to ask. */
static int onnx_checker(const char *path)
{
    if (access("/usr/bin/python3", X_OK) ||
        system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0)
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import onnx, sys; "
             "onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' '%s'",
             path);
    int rc = system(cmd);
    return WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

static void test_relu_mlp(void **state)
{
    (void)state;
    const int dims[] = {16, 32, 24, 8};
    const char *p = path_of("relu.onnx");
    assert_int_equal(onnx_write_mlp(p, dims, 4, "relu", 7, 17, 0), FERRY_OK);
    ferry_model *m = load(p);
    check_io(m, 16, 8);
    assert_int_equal(graph_param_count(m->g), 16 * 32 + 32 + 32 * 24 + 24 + 24 * 8 + 8);
    check_fused(m->g, 3, ACT_RELU);
    assert_string_equal(m->g->producer, "ferry");
    assert_int_equal(m->g->opset, 17);

    /* torch.nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in)), std bound/sqrt(3). */
    const graph_value *w = &m->g->values[graph_find_value(m->g, "fc2.weight")];
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->dims[0], 24);
    assert_int_equal(w->dims[1], 32);
    double bound = 1.0 / sqrt(32.0), s2 = 0;
    for (int i = 0; i < 24 * 32; i++) {
        float x = ((const float *)w->data)[i];
        assert_true(fabs(x) <= bound);
        s2 += (double)x * x;
    }
    double sd = sqrt(s2 / (24 * 32));
    assert_true(fabs(sd - bound / sqrt(3.0)) < 0.1 * bound);
    ferry_model_destroy(m);

    int ok = onnx_checker(p);
    if (ok < 0)
        skip();
    assert_int_equal(ok, 1);
}

static void gelu_mlp(const char *file, const char *act, int opset, act_kind want)
{
    const int dims[] = {8, 16, 16, 4};
    const char *p = path_of(file);
    assert_int_equal(onnx_write_mlp(p, dims, 4, act, 1, opset, 0), FERRY_OK);
    ferry_model *m = load(p);
    check_io(m, 8, 4);
    check_fused(m->g, 3, want);
    /* The pattern's scalars are gone with it: only the layers' parameters. */
    assert_int_equal(graph_param_count(m->g), 8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4);
    ferry_model_destroy(m);
}

/* GELU as PyTorch exports it below opset 20: the Erf and tanh patterns. */
static void test_gelu_patterns_fuse(void **state)
{
    (void)state;
    gelu_mlp("gelu.onnx", "gelu", 17, ACT_GELU);
    gelu_mlp("gelu_tanh.onnx", "gelu_tanh", 17, ACT_GELU_TANH);
    int ok = onnx_checker(path_of("gelu_tanh.onnx"));
    if (ok < 0)
        skip();
    assert_int_equal(ok, 1);
    assert_int_equal(onnx_checker(path_of("gelu.onnx")), 1);
}

/* From opset 20 GELU is one Gelu node; it fuses the same way. */
static void test_gelu_op_opset20(void **state)
{
    (void)state;
    gelu_mlp("gelu20.onnx", "gelu", 20, ACT_GELU);
    gelu_mlp("gelu20t.onnx", "gelu_tanh", 20, ACT_GELU_TANH);
}

static void test_other_acts(void **state)
{
    (void)state;
    const int dims[] = {4, 6, 3};
    const char *acts[] = {"tanh", "sigmoid", "none"};
    act_kind want[] = {ACT_TANH, ACT_SIGMOID, ACT_NONE};
    for (int i = 0; i < 3; i++) {
        const char *p = path_of("act.onnx");
        assert_int_equal(onnx_write_mlp(p, dims, 3, acts[i], 0, 0, 0), FERRY_OK);
        ferry_model *m = load(p);
        check_fused(m->g, 2, want[i]);
        ferry_model_destroy(m);
    }
}

/* Same seed, same bytes; another seed, other weights. */
static void test_deterministic(void **state)
{
    (void)state;
    const int dims[] = {32, 64, 16};
    const char *a = path_of("a.onnx"), *b = path_of("b.onnx"), *c = path_of("c.onnx");
    assert_int_equal(onnx_write_mlp(a, dims, 3, "relu", 42, 17, 0), FERRY_OK);
    assert_int_equal(onnx_write_mlp(b, dims, 3, "relu", 42, 17, 0), FERRY_OK);
    assert_int_equal(onnx_write_mlp(c, dims, 3, "relu", 43, 17, 0), FERRY_OK);
    size_t la, lb, lc;
    void *ba = slurp(a, &la), *bb = slurp(b, &lb), *bc = slurp(c, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_int_equal(la, lc);
    assert_memory_not_equal(ba, bc, la);
    free(ba);
    free(bb);
    free(bc);
}

/* Weights in FILE.onnx.data load back to the same parameters. */
static void test_external_data(void **state)
{
    (void)state;
    const int dims[] = {16, 32, 8};
    const char *in = path_of("in.onnx"), *ex = path_of("ex.onnx");
    assert_int_equal(onnx_write_mlp(in, dims, 3, "relu", 5, 17, 0), FERRY_OK);
    assert_int_equal(onnx_write_mlp(ex, dims, 3, "relu", 5, 17, 1), FERRY_OK);
    struct stat sb;
    assert_int_equal(stat(path_of("ex.onnx.data"), &sb), 0);
    ferry_model *mi = load(in), *me = load(ex);
    assert_int_equal(graph_param_count(me->g), graph_param_count(mi->g));
    const char *names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    for (int i = 0; i < 4; i++) {
        const graph_value *a = &mi->g->values[graph_find_value(mi->g, names[i])];
        const graph_value *b = &me->g->values[graph_find_value(me->g, names[i])];
        assert_memory_equal(a->data, b->data, (size_t)graph_value_numel(a, 1) * 4);
    }
    check_fused(me->g, 2, ACT_RELU);
    ferry_model_destroy(mi);
    ferry_model_destroy(me);
    int ok = onnx_checker(ex);
    if (ok < 0)
        skip();
    assert_int_equal(ok, 1);
}

static void expect_einval(ferry_status st, const char *fragment)
{
    assert_int_equal(st, FERRY_EINVAL);
    if (!strstr(ferry_last_error(), fragment))
        fail_msg("message '%s' lacks '%s'", ferry_last_error(), fragment);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const int dims[] = {4, 8, 2}, zero[] = {4, 0, 2};
    const char *p = path_of("bad.onnx");
    expect_einval(onnx_write_mlp(p, dims, 1, "relu", 0, 17, 0), "widths");
    expect_einval(onnx_write_mlp(p, zero, 3, "relu", 0, 17, 0), "width 0");
    expect_einval(onnx_write_mlp(p, dims, 3, "swish", 0, 17, 0), "'swish'");
    expect_einval(onnx_write_mlp(p, dims, 3, "relu", 0, 12, 0), "opset 12");
    expect_einval(onnx_write_mlp(NULL, dims, 3, "relu", 0, 17, 0), "path");
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(onnx_write_mlp("/nonexistent-dir/x.onnx", dims, 3, "relu", 0, 17, 0),
                     FERRY_EIO);
    assert_non_null(strstr(ferry_last_error(), "/nonexistent-dir/x.onnx"));
}

static int run_cli(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' make-model %s >/dev/null 2>&1", FERRY_CLI, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void **state)
{
    (void)state;
    char args[768];
    if (access(FERRY_CLI, X_OK))
        fail_msg("the ferry binary '%s' was not built", FERRY_CLI);
    assert_int_equal(run_cli("--help"), 0);
    assert_int_equal(run_cli(""), 2);
    assert_int_equal(run_cli("mlp -o x.onnx"), 2);            /* no --dims */
    assert_int_equal(run_cli("mlp --dims 4 -o x.onnx"), 2);   /* one width */
    assert_int_equal(run_cli("mlp --dims 4,x -o x.onnx"), 2); /* not a number */
    assert_int_equal(run_cli("mlp --dims 4,4 --act swish -o x.onnx"), 2);
    assert_int_equal(run_cli("mlp --dims 4,4 --opset 99 -o x.onnx"), 2);
    assert_int_equal(run_cli("mlp --dims 4,4 --seed -1 -o x.onnx"), 2);
    assert_int_equal(run_cli("mlp --dims 4,4 --frobnicate -o x.onnx"), 2);
    assert_int_equal(run_cli("cnn --dims 4,4 -o x.onnx"), 2);
    assert_int_equal(run_cli("mlp --dims 4,4"), 2); /* no -o */

    /* The exact command the build runs, and the same model from the API. */
    snprintf(args, sizeof args, "mlp --dims 256,512,512,256 --act relu --seed 0 -o '%s'",
             path_of("cli.onnx"));
    assert_int_equal(run_cli(args), 0);
    const int dims[] = {256, 512, 512, 256};
    assert_int_equal(onnx_write_mlp(path_of("api.onnx"), dims, 4, "relu", 0, 17, 0), FERRY_OK);
    size_t la, lb;
    void *a = slurp(path_of("cli.onnx"), &la), *b = slurp(path_of("api.onnx"), &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    ferry_model *m = load(path_of("cli.onnx"));
    check_io(m, 256, 256);
    assert_int_equal(graph_param_count(m->g), 256 * 512 + 512 + 512 * 512 + 512 + 512 * 256 + 256);
    check_fused(m->g, 3, ACT_RELU);
    ferry_model_destroy(m);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_mlp),        cmocka_unit_test(test_gelu_patterns_fuse),
        cmocka_unit_test(test_gelu_op_opset20), cmocka_unit_test(test_other_acts),
        cmocka_unit_test(test_deterministic),   cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_bad_arguments),   cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
