/* test_engine.c - ferry_engine on the CPU: chunking, run_many, submit, 16
 * calling threads, and every bad-input status. Uses the bundled mlp-s. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h" /* engine_mark_device_bad */
#include "ferry.h"

#define MODEL FERRY_BUILD_DIR "/models/mlp-s.onnx"
#define DIN 256
#define DOUT 256
#define NREF 300

static ferry_model *model;
static float *ref_in, *ref_out; /* NREF samples, each run alone at batch 1 */

static ferry_tensor tens(float *d, int64_t n, int64_t w)
{
    ferry_tensor t = {.dtype = FERRY_F32, .ndim = 2, .shape = {n, w}, .data = d};
    return t;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static ferry_engine *make(int workers, int max_batch, int depth)
{
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.workers = workers;
    c.max_batch = max_batch;
    c.pipeline_depth = depth;
    ferry_engine *e = NULL;
    ferry_status st = ferry_engine_create(model, &c, &e);
    if (st != FERRY_OK)
        fail_msg("engine_create: %s: %s", ferry_status_str(st), ferry_last_error());
    return e;
}

static int setup(void **state)
{
    (void)state;
    if (ferry_model_load(MODEL, &model) != FERRY_OK) {
        fprintf(stderr, "%s\n", ferry_last_error());
        return -1;
    }
    ref_in = malloc(sizeof(float) * NREF * DIN);
    ref_out = malloc(sizeof(float) * NREF * DOUT);
    uint32_t s = 7;
    for (int i = 0; i < NREF * DIN; i++) {
        s = s * 1664525u + 1013904223u;
        ref_in[i] = (float)(s >> 8) / 16777216.0f * 2 - 1;
    }
    ferry_engine *e = make(1, 1, 1);
    for (int i = 0; i < NREF; i++) {
        ferry_tensor in = tens(ref_in + i * DIN, 1, DIN), out = tens(ref_out + i * DOUT, 1, DOUT);
        if (ferry_engine_run(e, &in, 1, &out, 1) != FERRY_OK)
            return -1;
    }
    ferry_engine_destroy(e);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(ref_in);
    free(ref_out);
    ferry_model_destroy(model);
    return 0;
}

static void test_chunked_matches_single(void **state)
{
    (void)state;
    static const int sizes[] = {1, 7, 64, 65, 300};
    ferry_engine *e = make(2, 64, 2);
    assert_int_equal(ferry_engine_warmup(e), FERRY_OK);
    float *out = malloc(sizeof(float) * NREF * DOUT);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        memset(out, 0xff, sizeof(float) * NREF * DOUT); /* NaN poison */
        ferry_tensor in = tens(ref_in, n, DIN), o = tens(out, n, DOUT);
        assert_int_equal(ferry_engine_run(e, &in, 1, &o, 1), FERRY_OK);
        double err = rel_err(out, ref_out, (size_t)n * DOUT);
        assert_true(err < 1e-6);
    }
    ferry_tensor info;
    assert_int_equal(ferry_engine_output_info(e, 0, 5, &info), FERRY_OK);
    assert_int_equal(info.ndim, 2);
    assert_int_equal(info.shape[0], 5);
    assert_int_equal(info.shape[1], DOUT);
    ferry_engine_stats st;
    ferry_engine_get_stats(e, &st);
    assert_int_equal(st.samples, 1 + 7 + 64 + 65 + 300);
    free(out);
    ferry_engine_destroy(e);
}

static void test_run_many(void **state)
{
    (void)state;
    ferry_engine *e = make(2, 32, 4);
    enum { B = 10 };
    float *out = malloc(sizeof(float) * NREF * DOUT);
    memset(out, 0xff, sizeof(float) * NREF * DOUT);
    ferry_tensor in[B], o[B];
    int off = 0;
    for (int b = 0; b < B; b++) {
        int n = 1 + b * 5; /* 1..46: some are split into chunks */
        in[b] = tens(ref_in + off * DIN, n, DIN);
        o[b] = tens(out + off * DOUT, n, DOUT);
        off += n;
    }
    assert_int_equal(ferry_engine_run_many(e, B, in, 1, o, 1), FERRY_OK);
    assert_true(rel_err(out, ref_out, (size_t)off * DOUT) < 1e-6);
    /* one bad batch fails the call before anything runs, naming the batch */
    in[3].shape[1] = 255;
    assert_int_equal(ferry_engine_run_many(e, B, in, 1, o, 1), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "batch 3"));
    free(out);
    ferry_engine_destroy(e);
}

typedef struct done_ctx {
    atomic_int calls;
    atomic_int errors;
} done_ctx;

static void on_done(void *user, ferry_status st)
{
    done_ctx *d = user;
    atomic_fetch_add(&d->calls, 1);
    if (st != FERRY_OK)
        atomic_fetch_add(&d->errors, 1);
}

static void test_submit(void **state)
{
    (void)state;
    ferry_engine *e = make(2, 16, 2);
    float *out = malloc(sizeof(float) * NREF * DOUT);
    memset(out, 0xff, sizeof(float) * NREF * DOUT);
    done_ctx d = {0};
    int n = 0;
    for (int k = 0; n + 16 <= NREF; k++, n += 16) {
        ferry_tensor in = tens(ref_in + n * DIN, 16, DIN), o = tens(out + n * DOUT, 16, DOUT);
        assert_int_equal(ferry_engine_submit(e, &in, 1, &o, 1, on_done, &d), FERRY_OK);
    }
    ferry_engine_destroy(e); /* drains: every callback has run */
    assert_int_equal(atomic_load(&d.calls), n / 16);
    assert_int_equal(atomic_load(&d.errors), 0);
    assert_true(rel_err(out, ref_out, (size_t)n * DOUT) < 1e-6);
    free(out);
}

#define THREADS 16
#define ITERS 200

typedef struct caller {
    ferry_engine *e;
    int id;
    int bad;
} caller;

static void *caller_main(void *arg)
{
    caller *c = arg;
    float out[8 * DOUT];
    uint32_t s = (uint32_t)c->id * 7919u + 1;
    for (int it = 0; it < ITERS; it++) {
        s = s * 1664525u + 1013904223u;
        int n = 1 + (int)((s >> 16) % 8), off = (int)((s >> 8) % (NREF - 8));
        ferry_tensor in = tens(ref_in + off * DIN, n, DIN), o = tens(out, n, DOUT);
        if (ferry_engine_run(c->e, &in, 1, &o, 1) != FERRY_OK ||
            rel_err(out, ref_out + off * DOUT, (size_t)n * DOUT) > 1e-6)
            c->bad++;
    }
    return NULL;
}

static void test_16_threads(void **state)
{
    (void)state;
    ferry_engine *e = make(2, 4, 2); /* n up to 8: inline runs and chunked ones */
    pthread_t t[THREADS];
    caller c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (caller){.e = e, .id = i};
        pthread_create(&t[i], NULL, caller_main, &c[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].bad, 0);
    }
    ferry_engine_stats st;
    ferry_engine_get_stats(e, &st);
    assert_true(st.batches >= THREADS * ITERS);
    ferry_engine_destroy(e);
}

static void test_bad_input(void **state)
{
    (void)state;
    ferry_engine *e = make(1, 8, 1);
    float in_d[2 * DIN] = {0}, out_d[2 * DOUT];
    double dbl[2 * DIN] = {0};
    ferry_tensor in = tens(in_d, 2, DIN), out = tens(out_d, 2, DOUT);

    ferry_tensor bad = in;
    bad.dtype = FERRY_F64;
    bad.data = dbl;
    assert_int_equal(ferry_engine_run(e, &bad, 1, &out, 1), FERRY_EDTYPE);
    assert_non_null(strstr(ferry_last_error(), "input 'input' has dtype f64, expected f32"));

    bad = in;
    bad.shape[1] = 255;
    assert_int_equal(ferry_engine_run(e, &bad, 1, &out, 1), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "has shape [2,255], expected [N,256]"));

    bad = in;
    bad.ndim = 3;
    bad.shape[2] = 1;
    assert_int_equal(ferry_engine_run(e, &bad, 1, &out, 1), FERRY_ESHAPE);

    ferry_tensor bad_out = out;
    bad_out.shape[0] = 3;
    assert_int_equal(ferry_engine_run(e, &in, 1, &bad_out, 1), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "output 'output'"));

    assert_int_equal(ferry_engine_run(e, &in, 2, &out, 1), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "takes 1 inputs"));

    bad = in;
    bad.data = NULL;
    assert_int_equal(ferry_engine_run(e, &bad, 1, &out, 1), FERRY_EINVAL);

    ferry_tensor big_in = tens(in_d, 9, DIN), big_out = tens(out_d, 9, DOUT);
    assert_int_equal(ferry_engine_submit(e, &big_in, 1, &big_out, 1, on_done, NULL),
                     FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "max_batch"));
    ferry_engine_destroy(e);
}

/* One engine over a list of devices: "cpu,cpu" here (two compiled models,
 * the workers alternating between them), and "cuda:0,cuda:0" where a GPU
 * is present - the multi-GPU path exercised on one device. Every chunk of
 * a batch and every batch from 8 threads must match the batch-1 reference,
 * and both devices must have run batches. */
typedef struct multi_arg {
    ferry_engine *e;
    int t;
    int bad;
} multi_arg;

static void *multi_thread(void *p)
{
    multi_arg *a = p;
    float *out = malloc(sizeof(float) * NREF * DOUT);
    for (int it = 0; it < 20; it++) {
        int off = (a->t * 37 + it * 11) % (NREF - 16), n = 1 + (it + a->t) % 16;
        ferry_tensor in = tens(ref_in + off * DIN, n, DIN), o = tens(out, n, DOUT);
        if (ferry_engine_run(a->e, &in, 1, &o, 1) != FERRY_OK ||
            rel_err(out, ref_out + off * DOUT, (size_t)n * DOUT) > 1e-5)
            a->bad++;
    }
    free(out);
    return NULL;
}

static void multi_device_case(const char *devs, int expect_devices)
{
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.device = devs;
    c.workers = 2;
    c.max_batch = 32;
    c.pipeline_depth = 2;
    ferry_engine *e = NULL;
    ferry_status st = ferry_engine_create(model, &c, &e);
    if (st == FERRY_EUNSUPPORTED || st == FERRY_EDEVICE) {
        print_message("note: '%s' skipped: %s\n", devs, ferry_last_error());
        return;
    }
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_engine_num_devices(e), expect_devices);
    assert_non_null(strstr(ferry_engine_device(e), " + "));
    assert_string_not_equal(ferry_engine_device_at(e, 1), "");
    assert_string_equal(ferry_engine_device_at(e, 2), "");
    float *out = malloc(sizeof(float) * NREF * DOUT);
    ferry_tensor in = tens(ref_in, NREF, DIN), o = tens(out, NREF, DOUT);
    assert_int_equal(ferry_engine_run(e, &in, 1, &o, 1), FERRY_OK);
    assert_true(rel_err(out, ref_out, (size_t)NREF * DOUT) < 1e-5);
    free(out);
    pthread_t th[8];
    multi_arg args[8];
    for (int t = 0; t < 8; t++) {
        args[t] = (multi_arg){e, t, 0};
        pthread_create(&th[t], NULL, multi_thread, &args[t]);
    }
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
    }
    /* device 0 out of service (as an error on its stream does): the other
     * carries every batch */
    assert_int_equal(ferry_engine_device_ok(e, 0), 1);
    engine_mark_device_bad(e, 0);
    assert_int_equal(ferry_engine_device_ok(e, 0), 0);
    assert_int_equal(ferry_engine_device_ok(e, 1), 1);
    for (int t = 0; t < 8; t++) {
        args[t] = (multi_arg){e, t, 0};
        pthread_create(&th[t], NULL, multi_thread, &args[t]);
    }
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
    }
    ferry_engine_destroy(e);
}

static void test_device_list(void **state)
{
    (void)state;
    multi_device_case("cpu,cpu", 2);
    multi_device_case("cuda:0,cuda:0", 2);
    ferry_engine_config c;
    ferry_engine *e;
    ferry_engine_config_init(&c);
    c.device = "cpu,cuda";
    ferry_status st = ferry_engine_create(model, &c, &e);
    assert_true(st == FERRY_EINVAL || st == FERRY_EUNSUPPORTED);
    if (st == FERRY_EINVAL)
        assert_non_null(strstr(ferry_last_error(), "of one kind"));
    c.device = "cpu,,";
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_OK); /* empty items skipped */
    assert_int_equal(ferry_engine_num_devices(e), 1);
    ferry_engine_destroy(e);
    c.device = ",";
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "cuda:all"));
}

static void test_bad_config(void **state)
{
    (void)state;
    ferry_engine_config c;
    ferry_engine *e;
    ferry_engine_config_init(&c);
    c.precision = FERRY_PRECISION_FP16;
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "fp32"));

    ferry_engine_config_init(&c);
    c.device = "tpu";
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "device 'tpu'"));

    ferry_engine_config_init(&c);
    c.device = "cuda:x";
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EINVAL);

    ferry_engine_config_init(&c);
    c.workers = -1;
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "workers"));

    ferry_engine_config_init(&c);
    c.graphs = 1;
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "graphs"));

    ferry_engine_config_init(&c);
    c.max_batch = 0;
    assert_int_equal(ferry_engine_create(model, &c, &e), FERRY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_matches_single),
        cmocka_unit_test(test_run_many),
        cmocka_unit_test(test_submit),
        cmocka_unit_test(test_16_threads),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_device_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
