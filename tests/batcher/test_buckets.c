/*
 * test_buckets.c - requests of different lengths batched together
 * (src/batcher/buckets.c, src/engine/lengths.c, src/graph/model.c's length
 * buckets), on gen.py's bert-var: a 2-layer BERT-style encoder whose
 * input_ids, attention_mask and last_hidden_state have a dynamic
 * 'sequence' axis, up to 64 tokens (its position table).
 *
 * The main test: requests of random lengths 1..64 (1 or 2 samples each)
 * from 8 threads through a batcher with buckets 8,16,32,64; each output
 * must equal the same request run alone, unpadded, at its own length
 * (an engine with one bucket per length), within 1e-5 of the largest
 * magnitude of that output. Then the errors: a request longer than every
 * bucket, an empty one, a mask of the wrong dtype, lengths that disagree,
 * a model without a mask (refused unless padding is forced, then exact).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "ferry.h"
#include "graph/onnx_builder.h"

#define D 64       /* bert-var's width */
#define MAXLEN 64  /* its position table */
#define THREADS 8
#define PER_THREAD 40

static char path[512];
static ferry_model *ref_model; /* one bucket per length 1..64 */
static ferry_engine *ref_engine;

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s/bert-var.onnx", FERRY_TEST_MODELS);
    int64_t all[MAXLEN];
    for (int i = 0; i < MAXLEN; i++)
        all[i] = i + 1;
    ferry_model_options o;
    ferry_model_options_init(&o);
    o.length_buckets = all;
    o.n_length_buckets = MAXLEN;
    if (ferry_model_load_opts(path, &o, &ref_model) != FERRY_OK) {
        fprintf(stderr, "%s\n", ferry_last_error());
        return -1;
    }
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.workers = 1;
    c.max_batch = 2;
    c.pipeline_depth = 1;
    if (ferry_engine_create(ref_model, &c, &ref_engine) != FERRY_OK) {
        fprintf(stderr, "%s\n", ferry_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ferry_engine_destroy(ref_engine);
    ferry_model_destroy(ref_model);
    return 0;
}

static ferry_model *load_buckets(const int64_t *lens, int n)
{
    ferry_model_options o;
    ferry_model_options_init(&o);
    o.length_buckets = lens;
    o.n_length_buckets = n;
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load_opts(path, &o, &m);
    if (st != FERRY_OK)
        fprintf(stderr, "%s\n", ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    return m;
}

/* The model's own description of its length axis; the default buckets stop
 * at the position table's 64 rows. */
static void test_model_lengths(void **state)
{
    (void)state;
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load(path, &m), FERRY_OK);
    assert_string_equal(ferry_model_length_axis(m), "sequence");
    assert_int_equal(ferry_model_num_lengths(m), 5);
    const int64_t want[5] = {16, 24, 32, 48, 64};
    for (int k = 0; k < 5; k++)
        assert_int_equal(ferry_model_length(m, k), want[k]);
    assert_int_equal(ferry_model_length_dim(m, 0, 0), 1); /* input_ids */
    assert_int_equal(ferry_model_length_dim(m, 0, 1), 1); /* attention_mask */
    assert_int_equal(ferry_model_length_dim(m, 1, 0), 1); /* last_hidden_state */
    assert_int_equal(ferry_model_length_dim(m, 1, 1), 0); /* pooler_output */
    ferry_tensor_info ti;
    assert_int_equal(ferry_model_input(m, 0, &ti), FERRY_OK);
    assert_int_equal(ti.shape[1], 64);
    ferry_model_destroy(m);

    ferry_model_options o;
    ferry_model_options_init(&o);
    o.length_axis = "tokens";
    assert_int_equal(ferry_model_load_opts(path, &o, &m), FERRY_ENOTFOUND);
    assert_non_null(strstr(ferry_last_error(), "'sequence'"));
    const int64_t bad[2] = {32, 16};
    ferry_model_options_init(&o);
    o.length_buckets = bad;
    o.n_length_buckets = 2;
    assert_int_equal(ferry_model_load_opts(path, &o, &m), FERRY_EINVAL);
    /* a bucket the model cannot take, named by the user, is an error */
    const int64_t big[2] = {16, 128};
    o.length_buckets = big;
    assert_int_equal(ferry_model_load_opts(path, &o, &m), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "length bucket 128"));
}

/* One request: k samples of length l, random ids, the mask all ones. */
typedef struct req {
    int64_t k, l;
    int64_t ids[2 * MAXLEN], mask[2 * MAXLEN];
    float hid[2 * MAXLEN * D], pool[2 * D];
} req;

static void make_req(req *r, unsigned *seed, int64_t k, int64_t l)
{
    r->k = k;
    r->l = l;
    for (int64_t i = 0; i < k * l; i++) {
        r->ids[i] = rand_r(seed) % 1000;
        r->mask[i] = 1;
    }
}

static void tensors(req *r, ferry_tensor *in, ferry_tensor *out)
{
    in[0] = (ferry_tensor){FERRY_I64, 2, {r->k, r->l}, r->ids};
    in[1] = (ferry_tensor){FERRY_I64, 2, {r->k, r->l}, r->mask};
    out[0] = (ferry_tensor){FERRY_F32, 3, {r->k, r->l, D}, r->hid};
    out[1] = (ferry_tensor){FERRY_F32, 2, {r->k, D}, r->pool};
}

/* max |a - b| <= 1e-5 * max |b| */
static void assert_close(const float *a, const float *b, int64_t n)
{
    double err = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        double m = b[i] < 0 ? -b[i] : b[i];
        err = e > err ? e : err;
        mag = m > mag ? m : mag;
    }
    if (err > 1e-5 * mag)
        fail_msg("max error %g against max magnitude %g", err, mag);
}

typedef struct job {
    ferry_batcher *b;
    unsigned seed;
    int bad;
} job;

static void *client(void *arg)
{
    job *j = arg;
    req *r = malloc(sizeof *r), *alone = malloc(sizeof *alone);
    for (int n = 0; n < PER_THREAD && !j->bad; n++) {
        int64_t k = 1 + (rand_r(&j->seed) % 4 == 0);
        int64_t l = 1 + rand_r(&j->seed) % MAXLEN;
        make_req(r, &j->seed, k, l);
        ferry_tensor in[2], out[2];
        tensors(r, in, out);
        if (ferry_batcher_infer(j->b, in, 2, out, 2, NULL) != FERRY_OK) {
            fprintf(stderr, "infer: %s\n", ferry_last_error());
            j->bad = 1;
            break;
        }
        *alone = *r;
        tensors(alone, in, out);
        if (ferry_engine_run(ref_engine, in, 2, out, 2) != FERRY_OK) {
            fprintf(stderr, "alone: %s\n", ferry_last_error());
            j->bad = 1;
            break;
        }
        double err = 0, mag = 0;
        for (int64_t i = 0; i < k * l * D; i++) {
            double e = r->hid[i] - alone->hid[i];
            err = e < 0 ? (-e > err ? -e : err) : (e > err ? e : err);
            double m = alone->hid[i] < 0 ? -alone->hid[i] : alone->hid[i];
            mag = m > mag ? m : mag;
        }
        for (int64_t i = 0; i < k * D; i++) {
            double e = r->pool[i] - alone->pool[i];
            err = e < 0 ? (-e > err ? -e : err) : (e > err ? e : err);
        }
        if (err > 1e-5 * mag) {
            fprintf(stderr, "length %lld x %lld: error %g, magnitude %g\n", (long long)l,
                    (long long)k, err, mag);
            j->bad = 1;
        }
    }
    free(r);
    free(alone);
    return NULL;
}

/* Random lengths from many threads: every output is the request's own. */
static void test_random_lengths_match_alone(void **state)
{
    (void)state;
    const int64_t lens[4] = {8, 16, 32, 64};
    ferry_model *m = load_buckets(lens, 4);
    ferry_engine *e = NULL;
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.workers = 2;
    c.max_batch = 16;
    assert_int_equal(ferry_engine_create(m, &c, &e), FERRY_OK);
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    bc.max_delay_us = 2000;
    ferry_batcher *b = NULL;
    assert_int_equal(ferry_batcher_create(e, &bc, &b), FERRY_OK);
    pthread_t t[THREADS];
    job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){b, 1234u + (unsigned)i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, client, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.succeeded, THREADS * PER_THREAD);
    assert_int_equal(s.failed, 0);
    ferry_padding_stats p;
    assert_int_equal(ferry_batcher_get_padding(b, &p), 4);
    assert_int_equal(p.requests, THREADS * PER_THREAD);
    uint64_t h = 0;
    for (int i = 0; i < FERRY_PAD_BUCKETS; i++)
        h += p.hist[i];
    assert_int_equal(h, p.requests);
    assert_true(p.padding > 0 && p.tokens > p.padding / 2);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
}

/* A batch at a bucket's own length runs on the engine directly; another
 * length is refused, naming the buckets. */
static void test_engine_lengths(void **state)
{
    (void)state;
    req *r = malloc(sizeof *r), *alone = malloc(sizeof *alone);
    unsigned seed = 7;
    make_req(r, &seed, 2, 16);
    *alone = *r;
    ferry_tensor in[2], out[2];
    const int64_t lens[2] = {16, 32};
    ferry_model *m = load_buckets(lens, 2);
    ferry_engine *e = NULL;
    assert_int_equal(ferry_engine_create(m, NULL, &e), FERRY_OK);
    ferry_tensor o;
    assert_int_equal(ferry_engine_output_info_len(e, 0, 2, 16, &o), FERRY_OK);
    assert_int_equal(o.shape[1], 16);
    tensors(r, in, out);
    assert_int_equal(ferry_engine_run(e, in, 2, out, 2), FERRY_OK);
    tensors(alone, in, out);
    assert_int_equal(ferry_engine_run(ref_engine, in, 2, out, 2), FERRY_OK);
    assert_close(r->hid, alone->hid, 2 * 16 * D);
    assert_close(r->pool, alone->pool, 2 * D);
    make_req(r, &seed, 1, 20);
    tensors(r, in, out);
    assert_int_equal(ferry_engine_run(e, in, 2, out, 2), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "lengths 16,32"));
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
    free(r);
    free(alone);
}

static ferry_batcher *bucket_batcher(ferry_model **m, ferry_engine **e)
{
    const int64_t lens[2] = {16, 32};
    *m = load_buckets(lens, 2);
    assert_int_equal(ferry_engine_create(*m, NULL, e), FERRY_OK);
    ferry_batcher *b = NULL;
    assert_int_equal(ferry_batcher_create(*e, NULL, &b), FERRY_OK);
    return b;
}

/* Too long, empty, a mask of the wrong dtype, lengths that disagree. */
static void test_bad_requests(void **state)
{
    (void)state;
    ferry_model *m;
    ferry_engine *e;
    ferry_batcher *b = bucket_batcher(&m, &e);
    req *r = calloc(1, sizeof *r);
    unsigned seed = 9;
    ferry_tensor in[2], out[2];

    make_req(r, &seed, 1, 33);
    tensors(r, in, out);
    assert_int_equal(ferry_batcher_infer(b, in, 2, out, 2, NULL), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "length 33, longer than the longest length "
                                               "bucket (32"));

    make_req(r, &seed, 1, 0);
    tensors(r, in, out);
    assert_int_equal(ferry_batcher_infer(b, in, 2, out, 2, NULL), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "length 0"));

    float fmask[20];
    make_req(r, &seed, 1, 20);
    tensors(r, in, out);
    in[1].dtype = FERRY_F32;
    in[1].data = fmask;
    assert_int_equal(ferry_batcher_infer(b, in, 2, out, 2, NULL), FERRY_EDTYPE);
    assert_non_null(strstr(ferry_last_error(), "input 'attention_mask' is f32, expected i64"));

    tensors(r, in, out);
    in[1].shape[1] = 19;
    assert_int_equal(ferry_batcher_infer(b, in, 2, out, 2, NULL), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "has length 19, but the request has 20"));

    tensors(r, in, out);
    out[1].shape[1] = 20; /* the pooled output has no length axis */
    assert_int_equal(ferry_batcher_infer(b, in, 2, out, 2, NULL), FERRY_ESHAPE);
    assert_non_null(strstr(ferry_last_error(), "output 'pooler_output'"));

    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.submitted, 0); /* none reached a bucket */
    free(r);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
}

/* x [N, seq, 4] -> Relu -> y [N, seq, 4]: a model with a length axis and no mask. */
static void write_relu_model(char *file, size_t cap)
{
    ob *b = ob_new(13);
    int64_t xd[3] = {-1, -1, 4};
    Onnx__ValueInfoProto *x = ob_input(b, "x", 3, xd), *y = ob_output(b, "y", 3, xd);
    x->type->tensor_type->shape->dim[1]->dim_param = ob_str(b, "seq");
    y->type->tensor_type->shape->dim[1]->dim_param = ob_str(b, "seq");
    ob_node(b, "Relu", "relu", "x", "y");
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    snprintf(file, cap, "/tmp/ferry-test-buckets-%d.onnx", (int)getpid());
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    ob_free(b);
}

static void test_no_mask(void **state)
{
    (void)state;
    char file[128];
    write_relu_model(file, sizeof file);
    const int64_t lens[2] = {4, 8};
    ferry_model_options o;
    ferry_model_options_init(&o);
    o.length_buckets = lens;
    o.n_length_buckets = 2;
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load_opts(file, &o, &m), FERRY_OK);
    unlink(file);
    ferry_engine *e = NULL;
    assert_int_equal(ferry_engine_create(m, NULL, &e), FERRY_OK);
    ferry_batcher *b = NULL;
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    assert_int_equal(ferry_batcher_create(e, &c, &b), FERRY_EUNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "padding its requests to a length bucket would "
                                               "change their results"));
    c.mask_input = "attention_mask";
    assert_int_equal(ferry_batcher_create(e, &c, &b), FERRY_ENOTFOUND);
    c.mask_input = NULL;
    c.pad = 1;
    assert_int_equal(ferry_batcher_create(e, &c, &b), FERRY_OK);
    float x[2 * 5 * 4], y[2 * 5 * 4];
    for (int i = 0; i < 40; i++)
        x[i] = (float)(i - 20);
    ferry_tensor in = {FERRY_F32, 3, {2, 5, 4}, x}, out = {FERRY_F32, 3, {2, 5, 4}, y};
    assert_int_equal(ferry_batcher_infer(b, &in, 1, &out, 1, NULL), FERRY_OK);
    for (int i = 0; i < 40; i++)
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0));
    ferry_padding_stats p;
    assert_int_equal(ferry_batcher_get_padding(b, &p), 2);
    assert_int_equal(p.tokens, 10);
    assert_int_equal(p.padding, 6);
    assert_int_equal(p.hist[4], 1); /* 3/8 padding: in (0.3, 0.4] */
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_lengths),
        cmocka_unit_test(test_engine_lengths),
        cmocka_unit_test(test_random_lengths_match_alone),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_no_mask),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
