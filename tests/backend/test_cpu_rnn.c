/*
 * test_cpu_rnn.c - src/backend/cpu/cpu_rnn.c against float64 references:
 * PyTorch's nn.LSTM / nn.GRU / nn.RNN where it can express the case, a numpy
 * transcription of the ONNX operator pages elsewhere (peepholes,
 * input_forget, clip, GRU linear_before_reset=0, reverse with ragged
 * lengths, zero lengths). The group setup writes the cases with
 * tests/backend/rnn_ref.py into $FERRY_RNN_REF (default
 * <build>/rnn-ref); see that script for the list. Also: unrequested
 * outputs, two threads on one layer, and bad parameters.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/cpu_parallel.h"
#include "backend/cpu/cpu_rnn.h"
#include "util/npy.h"

/* Norm-wise: max |got - want| / max |want| over each output. f32 state
 * carried through the steps stays ~1e-7 away; 1e-5 leaves room for long
 * sums (I, H up to 129) without hiding a wrong formula, which is off by
 * 1e-2 or more. */
#define TOL 1e-5

static char ref_dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("FERRY_RNN_REF");
    snprintf(ref_dir, sizeof ref_dir, "%s", env && *env ? env : FERRY_BUILD_DIR "/rnn-ref");
    char cmd[2560];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/backend/rnn_ref.py --out '%s'",
             FERRY_SOURCE_DIR, ref_dir);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_cpu_rnn: '%s' failed (%d)\n", cmd, rc);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ a case */

typedef struct rnn_case {
    char name[128];
    cpu_rnn_params p;
    int64_t seq, batch;
    ferry_tensor X, W, R, B, P, lens, h0, c0, Y, Y_h, Y_c;
    int has[11];
} rnn_case;

static const char *const files[11] = {"X",  "W",  "R", "B",   "P",  "lens",
                                      "h0", "c0", "Y", "Y_h", "Y_c"};

static ferry_tensor *slot(rnn_case *c, int i)
{
    ferry_tensor *t[11] = {&c->X,  &c->W,  &c->R, &c->B,   &c->P,  &c->lens,
                           &c->h0, &c->c0, &c->Y, &c->Y_h, &c->Y_c};
    return t[i];
}

static void load_case(rnn_case *c, const char *name)
{
    char path[1400], key[64];
    double v;
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s/params.txt", ref_dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63[^=]=%lf", key, &v) != 2)
            continue;
        if (!strcmp(key, "kind"))
            c->p.kind = (cpu_rnn_kind)v;
        else if (!strcmp(key, "relu"))
            c->p.relu = (int)v;
        else if (!strcmp(key, "hidden"))
            c->p.hidden = (int64_t)v;
        else if (!strcmp(key, "input"))
            c->p.input = (int64_t)v;
        else if (!strcmp(key, "seq"))
            c->seq = (int64_t)v;
        else if (!strcmp(key, "batch"))
            c->batch = (int64_t)v;
        else if (!strcmp(key, "direction"))
            c->p.direction = (cpu_rnn_direction)v;
        else if (!strcmp(key, "layout"))
            c->p.layout = (int)v;
        else if (!strcmp(key, "lbr"))
            c->p.linear_before_reset = (int)v;
        else if (!strcmp(key, "input_forget"))
            c->p.input_forget = (int)v;
        else if (!strcmp(key, "has_clip"))
            c->p.has_clip = (int)v;
        else if (!strcmp(key, "clip"))
            c->p.clip = (float)v;
    }
    fclose(f);
    c->p.name = c->name;
    for (int i = 0; i < 11; i++) {
        snprintf(path, sizeof path, "%s/%s/%s.npy", ref_dir, name, files[i]);
        FILE *e = fopen(path, "rb");
        if (!e)
            continue;
        fclose(e);
        ferry_status st = npy_read(path, slot(c, i));
        if (st != FERRY_OK)
            fail_msg("%s: %s", path, ferry_last_error());
        c->has[i] = 1;
    }
    assert_true(c->has[0] && c->has[1] && c->has[2] && c->has[8] && c->has[9]);
    assert_int_equal(c->X.dtype, FERRY_F32);
    assert_int_equal(c->Y.dtype, FERRY_F64);
}

static void free_case(rnn_case *c)
{
    for (int i = 0; i < 11; i++)
        npy_free(slot(c, i));
}

static int64_t numel(const ferry_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static double rel_err(const float *got, const ferry_tensor *want)
{
    const double *w = want->data;
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < numel(want); i++) {
        double d = fabs((double)got[i] - w[i]);
        num = d > num || isnan(d) ? (isnan(d) ? INFINITY : d) : num; /* a NaN fails */
        den = fabs(w[i]) > den ? fabs(w[i]) : den;
    }
    return den > 0.0 ? num / den : num;
}

/* A workspace full of NaNs, so that a read before a write shows. */
static void *workspace(const cpu_rnn *r, int64_t batch, int64_t seq)
{
    size_t n = cpu_rnn_workspace_bytes(r, batch, seq);
    assert_true(n > 0 && n % 64 == 0);
    void *ws = aligned_alloc(64, n);
    assert_non_null(ws);
    memset(ws, 0xff, n);
    return ws;
}

static float *out_buf(const ferry_tensor *like)
{
    float *p = malloc((size_t)numel(like) * sizeof *p);
    assert_non_null(p);
    memset(p, 0xff, (size_t)numel(like) * sizeof *p); /* NaN: every element must be written */
    return p;
}

static const void *opt(const rnn_case *c, int i)
{
    return c->has[i] ? slot((rnn_case *)c, i)->data : NULL;
}

/* Runs one case: all outputs against the reference (also with the backend's
 * threads taken), then again with only Y_h, and with only Y, which must
 * give the same bits. */
static void run_case(const char *name)
{
    rnn_case c;
    load_case(&c, name);
    int lstm = c.p.kind == CPU_RNN_LSTM;
    cpu_rnn *r = NULL;
    ferry_status st =
        cpu_rnn_create(&c.p, &c.W, &c.R, c.has[3] ? &c.B : NULL, c.has[4] ? &c.P : NULL, &r);
    if (st != FERRY_OK)
        fail_msg("%s: create: %s", name, ferry_last_error());
    /* Sized for more than the run needs: the layout must not depend on it. */
    void *ws = workspace(r, c.batch + 2, c.seq + 1);
    float *Y = out_buf(&c.Y), *Yh = out_buf(&c.Y_h), *Yc = lstm ? out_buf(&c.Y_c) : NULL;
    const float *x = c.X.data, *h0 = opt(&c, 6), *c0 = opt(&c, 7);
    const int32_t *lens = opt(&c, 5);
    st = cpu_rnn_run(r, c.seq, c.batch, x, lens, h0, c0, Y, Yh, Yc, ws);
    if (st != FERRY_OK)
        fail_msg("%s: run: %s", name, ferry_last_error());
    double e_y = rel_err(Y, &c.Y), e_h = rel_err(Yh, &c.Y_h), e_c = lstm ? rel_err(Yc, &c.Y_c) : 0;
    printf("  %-34s Y %.1e  Y_h %.1e  Y_c %.1e\n", name, e_y, e_h, e_c);
    if (!(e_y <= TOL && e_h <= TOL && e_c <= TOL))
        fail_msg("%s: relative error Y %g, Y_h %g, Y_c %g > %g", name, e_y, e_h, e_c, TOL);

    /* Again as the engine's workers run it, each forward alone on its
     * thread (another forward in flight): the same result without the
     * backend's helper threads. */
    cpu_parallel_enter();
    cpu_parallel_enter();
    float *Ya = out_buf(&c.Y), *Yha = out_buf(&c.Y_h), *Yca = lstm ? out_buf(&c.Y_c) : NULL;
    memset(ws, 0xff, cpu_rnn_workspace_bytes(r, c.batch + 2, c.seq + 1));
    st = cpu_rnn_run(r, c.seq, c.batch, x, lens, h0, c0, Ya, Yha, Yca, ws);
    cpu_parallel_leave();
    cpu_parallel_leave();
    if (st != FERRY_OK)
        fail_msg("%s: run alone: %s", name, ferry_last_error());
    e_y = rel_err(Ya, &c.Y), e_h = rel_err(Yha, &c.Y_h), e_c = lstm ? rel_err(Yca, &c.Y_c) : 0;
    if (!(e_y <= TOL && e_h <= TOL && e_c <= TOL))
        fail_msg("%s: alone: relative error Y %g, Y_h %g, Y_c %g > %g", name, e_y, e_h, e_c, TOL);
    free(Ya);
    free(Yha);
    free(Yca);

    float *Y2 = out_buf(&c.Y), *Yh2 = out_buf(&c.Y_h);
    memset(ws, 0xff, cpu_rnn_workspace_bytes(r, c.batch + 2, c.seq + 1));
    assert_int_equal(cpu_rnn_run(r, c.seq, c.batch, x, lens, h0, c0, NULL, Yh2, NULL, ws),
                     FERRY_OK);
    assert_memory_equal(Yh, Yh2, (size_t)numel(&c.Y_h) * sizeof *Yh);
    assert_int_equal(cpu_rnn_run(r, c.seq, c.batch, x, lens, h0, c0, Y2, NULL, NULL, ws), FERRY_OK);
    assert_memory_equal(Y, Y2, (size_t)numel(&c.Y) * sizeof *Y);

    free(Y);
    free(Yh);
    free(Yc);
    free(Y2);
    free(Yh2);
    free(ws);
    cpu_rnn_destroy(r);
    free_case(&c);
}

/* Every case whose name starts with prefix; at least min of them. */
static void run_cases(const char *prefix, int min)
{
    char path[1100], name[128];
    snprintf(path, sizeof path, "%s/cases.txt", ref_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    while (fscanf(f, "%127s", name) == 1) {
        if (strncmp(name, prefix, strlen(prefix)) != 0)
            continue;
        run_case(name);
        n++;
    }
    fclose(f);
    assert_true(n >= min);
}

static void test_lstm_torch(void **state)
{
    (void)state;
    run_cases("lstm_torch_", 12);
}

static void test_gru_torch(void **state)
{
    (void)state;
    run_cases("gru_torch_", 11);
}

static void test_lstm_onnx(void **state)
{
    (void)state;
    run_cases("lstm_onnx_", 8);
}

static void test_gru_onnx(void **state)
{
    (void)state;
    run_cases("gru_onnx_", 7);
}

static void test_rnn_tanh(void **state)
{
    (void)state;
    run_cases("rnn_tanh_", 6);
}

static void test_rnn_relu(void **state)
{
    (void)state;
    run_cases("rnn_relu_", 6);
}

/* --------------------------------------------- two threads, one layer */

typedef struct thread_arg {
    const cpu_rnn *r;
    const rnn_case *c;
    const float *x;
    float *Y;
    int iters;
    ferry_status st;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    const rnn_case *c = a->c;
    void *ws = aligned_alloc(64, cpu_rnn_workspace_bytes(a->r, c->batch, c->seq));
    if (!ws) {
        a->st = FERRY_ENOMEM;
        return NULL;
    }
    for (int i = 0; i < a->iters && a->st == FERRY_OK; i++)
        a->st = cpu_rnn_run(a->r, c->seq, c->batch, a->x, opt(c, 5), opt(c, 6), opt(c, 7),
                            a->Y + (size_t)i % 2 * (size_t)numel(&c->Y), NULL, NULL, ws);
    free(ws);
    return NULL;
}

/* Two threads run one layer on different inputs at once; each result must
 * have the bits of the same run done alone. */
static void test_two_threads(void **state)
{
    (void)state;
    rnn_case c;
    load_case(&c, "lstm_torch_bi_l0_b32_large");
    cpu_rnn *r = NULL;
    assert_int_equal(cpu_rnn_create(&c.p, &c.W, &c.R, &c.B, NULL, &r), FERRY_OK);
    int64_t nx = numel(&c.X), ny = numel(&c.Y);
    float *x2 = malloc((size_t)nx * sizeof *x2);
    assert_non_null(x2);
    for (int64_t i = 0; i < nx; i++)
        x2[i] = -0.5f * ((const float *)c.X.data)[i];
    const float *xs[2] = {c.X.data, x2};
    float *alone[2], *both[2];
    pthread_t th[2];
    thread_arg a[2];
    for (int k = 0; k < 2; k++) {
        alone[k] = malloc((size_t)ny * 2 * sizeof(float));
        both[k] = malloc((size_t)ny * 2 * sizeof(float));
        assert_true(alone[k] && both[k]);
        a[k] = (thread_arg){r, &c, xs[k], alone[k], 1, FERRY_OK};
        thread_main(&a[k]);
        assert_int_equal(a[k].st, FERRY_OK);
    }
    for (int k = 0; k < 2; k++) {
        a[k] = (thread_arg){r, &c, xs[k], both[k], 20, FERRY_OK};
        assert_int_equal(pthread_create(&th[k], NULL, thread_main, &a[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(a[k].st, FERRY_OK);
        assert_memory_equal(alone[k], both[k], (size_t)ny * sizeof(float));
        assert_memory_equal(alone[k], both[k] + ny, (size_t)ny * sizeof(float));
    }
    assert_true(memcmp(alone[0], alone[1], (size_t)ny * sizeof(float)) != 0);
    for (int k = 0; k < 2; k++) {
        free(alone[k]);
        free(both[k]);
    }
    free(x2);
    cpu_rnn_destroy(r);
    free_case(&c);
}

/* ------------------------------------------------------ bad parameters */

static float wbuf[4 * 2 * 16 * 16];

static ferry_tensor tens(int nd, int64_t d0, int64_t d1, int64_t d2)
{
    ferry_tensor t = {.dtype = FERRY_F32, .ndim = nd, .data = wbuf};
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    return t;
}

static void expect_fail(const cpu_rnn_params *p, const ferry_tensor *W, const ferry_tensor *R,
                        const ferry_tensor *B, const ferry_tensor *P, ferry_status want,
                        const char *fragment)
{
    cpu_rnn *r = (cpu_rnn *)wbuf; /* must be set to NULL on failure */
    ferry_status st = cpu_rnn_create(p, W, R, B, P, &r);
    if (st != want || !strstr(ferry_last_error(), fragment))
        fail_msg("expected %s with '%s', got %s: '%s'", ferry_status_str(want), fragment,
                 ferry_status_str(st), ferry_last_error());
    assert_null(r);
}

static void test_bad_params(void **state)
{
    (void)state;
    cpu_rnn_params p = {.kind = CPU_RNN_LSTM, .hidden = 4, .input = 7, .name = "lstm1"};
    ferry_tensor W = tens(3, 1, 16, 7), R = tens(3, 1, 16, 4), B = tens(2, 1, 32, 0);
    ferry_tensor P = tens(2, 1, 12, 0);

    cpu_rnn *r = NULL;
    assert_int_equal(cpu_rnn_create(&p, &W, &R, &B, &P, &r), FERRY_OK);

    /* run-time arguments */
    void *ws = workspace(r, 2, 3);
    float x[2 * 3 * 7] = {0}, Y[3 * 2 * 4];
    int32_t lens[2] = {3, 4};
    assert_int_equal(cpu_rnn_run(r, 3, 2, x, lens, NULL, NULL, Y, NULL, NULL, ws), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "sequence_lens[1] is 4"));
    lens[1] = -1;
    assert_int_equal(cpu_rnn_run(r, 3, 2, x, lens, NULL, NULL, Y, NULL, NULL, ws), FERRY_EINVAL);
    assert_int_equal(cpu_rnn_run(r, 0, 2, x, NULL, NULL, NULL, Y, NULL, NULL, ws), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "LSTM 'lstm1': seq_length 0"));
    assert_int_equal(cpu_rnn_run(r, 3, 2, x, NULL, NULL, NULL, Y, NULL, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(cpu_rnn_workspace_bytes(r, 0, 3), 0);
    assert_int_equal(cpu_rnn_workspace_bytes(r, 2, INT32_MAX), 0);
    assert_int_equal(cpu_rnn_run(r, INT32_MAX, 2, x, NULL, NULL, NULL, Y, NULL, NULL, ws),
                     FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "is too large"));
    assert_int_equal(cpu_rnn_run(r, 3, 2, x, NULL, NULL, NULL, Y, NULL, NULL, (char *)ws + 2),
                     FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "not float-aligned"));
    free(ws);
    cpu_rnn_destroy(r);
    cpu_rnn_destroy(NULL);

    cpu_rnn_params q = p;
    q.hidden = 0;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "LSTM 'lstm1': attribute hidden_size is 0");
    q = p;
    q.input = 0;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "input size");

    ferry_tensor W2 = tens(3, 1, 20, 7);
    expect_fail(&p, &W2, &R, &B, &P, FERRY_ESHAPE,
                "LSTM 'lstm1': input W has shape [1,20,7], expected [1,16,7]");
    W2 = tens(2, 16, 7, 0);
    expect_fail(&p, &W2, &R, &B, &P, FERRY_ESHAPE, "input W has shape [16,7]");
    ferry_tensor R2 = tens(3, 1, 16, 5);
    expect_fail(&p, &W, &R2, &B, &P, FERRY_ESHAPE, "input R has shape [1,16,5], expected [1,16,4]");
    ferry_tensor B2 = tens(2, 1, 16, 0);
    expect_fail(&p, &W, &R, &B2, &P, FERRY_ESHAPE, "input B has shape [1,16], expected [1,32]");
    ferry_tensor P2 = tens(2, 1, 8, 0);
    expect_fail(&p, &W, &R, &B, &P2, FERRY_ESHAPE, "input P has shape [1,8], expected [1,12]");
    W2 = W;
    W2.dtype = FERRY_F64;
    expect_fail(&p, &W2, &R, &B, &P, FERRY_EDTYPE, "input W has dtype f64");
    /* bidirectional wants D = 2 */
    q = p;
    q.direction = CPU_RNN_BIDIRECTIONAL;
    expect_fail(&q, &W, &R, &B, &P, FERRY_ESHAPE, "expected [2,16,7]");

    q = p;
    q.has_clip = 1;
    q.clip = -1.0f;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "attribute clip is -1");
    q = p;
    q.layout = 2;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "attribute layout is 2");
    q = p;
    q.linear_before_reset = 1;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "linear_before_reset is GRU's");

    const char *relu[3] = {"Sigmoid", "Relu", "Tanh"};
    q = p;
    q.n_activations = 3;
    q.activations = relu;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EUNSUPPORTED,
                "attribute activations[1] is 'Relu'; only the default 'Tanh'");
    const char *dflt[3] = {"sigmoid", "tanh", "TANH"};
    q.activations = dflt;
    assert_int_equal(cpu_rnn_create(&q, &W, &R, &B, &P, &r), FERRY_OK);
    cpu_rnn_destroy(r);
    q.n_activations = 2;
    expect_fail(&q, &W, &R, &B, &P, FERRY_EINVAL, "activations has 2 names, expected 3");

    /* RNN: G = 1, its activation named by relu; no peepholes */
    cpu_rnn_params pr = {.kind = CPU_RNN_PLAIN, .hidden = 4, .input = 7, .relu = 1, .name = "r1"};
    ferry_tensor RW = tens(3, 1, 4, 7), RR = tens(3, 1, 4, 4);
    expect_fail(&pr, &W, &RR, NULL, NULL, FERRY_ESHAPE,
                "RNN 'r1': input W has shape [1,16,7], expected [1,4,7]");
    expect_fail(&pr, &RW, &RR, NULL, &P, FERRY_EINVAL, "input P (peepholes) is LSTM's");
    const char *tanh1[1] = {"Tanh"};
    pr.n_activations = 1;
    pr.activations = tanh1;
    expect_fail(&pr, &RW, &RR, NULL, NULL, FERRY_EUNSUPPORTED,
                "attribute activations[0] is 'Tanh'; only the default 'Relu'");
    pr.relu = 0;
    assert_int_equal(cpu_rnn_create(&pr, &RW, &RR, NULL, NULL, &r), FERRY_OK);
    cpu_rnn_destroy(r);

    /* GRU: G = 3, no peepholes */
    cpu_rnn_params g = {.kind = CPU_RNN_GRU, .hidden = 4, .input = 7, .name = "gru1"};
    ferry_tensor GW = tens(3, 1, 12, 7), GR = tens(3, 1, 12, 4);
    expect_fail(&g, &W, &GR, NULL, NULL, FERRY_ESHAPE,
                "GRU 'gru1': input W has shape [1,16,7], expected [1,12,7]");
    expect_fail(&g, &GW, &GR, NULL, &P, FERRY_EINVAL, "input P (peepholes) is LSTM's");
    q = (cpu_rnn_params){.kind = CPU_RNN_GRU, .hidden = 4, .input = 7, .input_forget = 1};
    expect_fail(&q, &GW, &GR, NULL, NULL, FERRY_EINVAL, "GRU: attribute input_forget is LSTM's");
    assert_int_equal(cpu_rnn_create(&g, &GW, &GR, NULL, NULL, &r), FERRY_OK);
    cpu_rnn_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm_torch),  cmocka_unit_test(test_gru_torch),
        cmocka_unit_test(test_lstm_onnx),   cmocka_unit_test(test_gru_onnx),
        cmocka_unit_test(test_rnn_tanh),    cmocka_unit_test(test_rnn_relu),
        cmocka_unit_test(test_two_threads), cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
