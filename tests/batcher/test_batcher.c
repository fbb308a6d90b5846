/*
 * test_batcher.c - the dynamic batcher on the CPU engine: exactly-once
 * completion under 64 submitting threads (outputs compared with the
 * engine's own unbatched outputs), backpressure, deadlines, bad requests,
 * draining destroy under load, and priority order.
 *
 * The tests use a small MLP (16-32-8 relu) with exactly representable
 * weights (load_exact_mlp), so that the batcher, not the GEMM, is what the
 * threads exercise, and batched outputs can be compared bitwise. The engine
 * is blocked where a test needs a queue to stay put: the test itself takes
 * the engine's only slot (engine_slot_acquire), so the dispatcher can form
 * no batch until the test gives it back.
 *
 * FERRY_STRESS_N: requests per thread in the exactly-once test (default
 * 20000; 2000 under ThreadSanitizer).
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>

#include "engine/engine.h"
#include "ferry.h"
#include "graph/onnx_builder.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define DIN 16
#define HID 32
#define DOUT 8
#define NREF 256 /* distinct samples; requests pick from these */

static ferry_model *model;
static const char *in_name, *out_name;
static float ref_in[NREF][DIN], ref_out[NREF][DOUT]; /* each run alone, batch 1 */

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static ferry_tensor tens(float *d, int64_t n, int64_t w)
{
    ferry_tensor t = {.dtype = FERRY_F32, .ndim = 2, .shape = {n, w}, .data = d};
    return t;
}

static ferry_engine *make_engine(int workers, int depth, int max_batch)
{
    ferry_engine_config c;
    ferry_engine_config_init(&c);
    c.workers = workers;
    c.pipeline_depth = depth;
    c.max_batch = max_batch;
    ferry_engine *e = NULL;
    ferry_status st = ferry_engine_create(model, &c, &e);
    if (st != FERRY_OK)
        fail_msg("engine_create: %s: %s", ferry_status_str(st), ferry_last_error());
    return e;
}

static ferry_batcher *make_batcher(ferry_engine *e, const ferry_batcher_config *c)
{
    ferry_batcher *b = NULL;
    ferry_status st = ferry_batcher_create(e, c, &b);
    if (st != FERRY_OK)
        fail_msg("batcher_create: %s: %s", ferry_status_str(st), ferry_last_error());
    return b;
}

/* Takes the engine's only free slot, so that nothing can run until
 * unblock(). The engine must have one worker of pipeline depth 1. */
static engine_slot *block_engine(ferry_engine *e)
{
    engine_slot *s = NULL;
    assert_int_equal(engine_slot_acquire(e, 0, &s), FERRY_OK);
    engine_slot *s2 = NULL;
    assert_int_equal(engine_slot_acquire(e, 0, &s2), FERRY_ETIMEDOUT);
    return s;
}

/* x[N,16] -> Gemm -> Relu -> Gemm -> y[N,8] with dyadic weights (k/8) and
 * inputs (k/4): every product and partial sum is exact in fp32, so the
 * result of a row does not depend on summation order, and therefore not on
 * the batch it ran in (the CPU GEMM's order does change with batch size).
 * Outputs can then be compared bitwise with the engine's batch-1 run. */
static ferry_status load_exact_mlp(ferry_model **out)
{
    ob *b = ob_new(13);
    int64_t xd[2] = {-1, DIN}, w1[2] = {HID, DIN}, b1[1] = {HID}, w2[2] = {DOUT, HID},
            b2[1] = {DOUT}, yd[2] = {-1, DOUT};
    float W1[HID * DIN], B1[HID], W2[DOUT * HID], B2[DOUT];
    for (int i = 0; i < HID * DIN; i++)
        W1[i] = (float)((i * 7 + i / DIN * 3) % 9 - 4) / 8.0f;
    for (int i = 0; i < HID; i++)
        B1[i] = (float)(i % 5 - 1) / 8.0f;
    for (int i = 0; i < DOUT * HID; i++)
        W2[i] = (float)((i * 5 + i / HID) % 9 - 4) / 8.0f;
    for (int i = 0; i < DOUT; i++)
        B2[i] = (float)(i % 3) / 8.0f;
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "fc1.weight", 2, w1, W1);
    ob_init_f32(b, "fc1.bias", 1, b1, B1);
    ob_init_f32(b, "fc2.weight", 2, w2, W2);
    ob_init_f32(b, "fc2.bias", 1, b2, B2);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc1", "x,fc1.weight,fc1.bias", "h");
    ob_attr_i(b, n, "transB", 1);
    ob_node(b, "Relu", "relu", "h", "a");
    n = ob_node(b, "Gemm", "fc2", "a,fc2.weight,fc2.bias", "y");
    ob_attr_i(b, n, "transB", 1);
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_status st = ferry_model_load_buffer(buf, len, NULL, out);
    ob_free(b);
    return st;
}

static int setup(void **state)
{
    (void)state;
    if (load_exact_mlp(&model) != FERRY_OK) {
        fprintf(stderr, "load the test model: %s\n", ferry_last_error());
        return -1;
    }
    ferry_tensor_info ti;
    ferry_model_input(model, 0, &ti);
    in_name = ti.name;
    ferry_model_output(model, 0, &ti);
    out_name = ti.name;

    uint32_t rng = 1;
    for (int i = 0; i < NREF; i++)
        for (int j = 0; j < DIN; j++) {
            rng = rng * 1664525u + 1013904223u;
            ref_in[i][j] = (float)((int)((rng >> 16) % 17) - 8) / 4.0f;
        }
    ferry_engine *e = make_engine(1, 2, 64);
    int nonzero = 0;
    for (int i = 0; i < NREF; i++) {
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(ref_out[i], 1, DOUT);
        if (ferry_engine_run(e, &x, 1, &y, 1) != FERRY_OK) {
            fprintf(stderr, "engine_run: %s\n", ferry_last_error());
            return -1;
        }
        for (int j = 0; j < DOUT; j++)
            nonzero += ref_out[i][j] != 0;
    }
    ferry_engine_destroy(e);
    if (nonzero < NREF * DOUT / 2) {
        fprintf(stderr, "test model: too many zero outputs (%d)\n", nonzero);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ferry_model_destroy(model);
    return 0;
}

/* ------------------------------------------------ simple completions */

typedef struct done_rec {
    atomic_int calls;
    _Atomic int st;
    atomic_int seq; /* completion order */
} done_rec;

static atomic_int seq_counter;

static void rec_cb(void *user, ferry_status st)
{
    done_rec *r = user;
    atomic_store(&r->st, (int)st);
    atomic_store(&r->seq, atomic_fetch_add(&seq_counter, 1));
    atomic_fetch_add(&r->calls, 1);
}

/* Waits until the n counters `calls`, `stride` bytes apart (a field of
 * an array of records), are all nonzero. */
static void wait_counters(const atomic_int *calls, size_t stride, int n)
{
    for (int spins = 0; spins < 20000; spins++) {
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= atomic_load((const atomic_int *)((const char *)calls + (size_t)i * stride)) > 0;
        if (all)
            return;
        sleep_us(1000);
    }
    fail_msg("callbacks did not run within 20 s");
}

static void wait_calls(done_rec *r, int n)
{
    wait_counters(&r->calls, sizeof *r, n);
}

/* infer and submit give the engine's own outputs, for requests of 1..k. */
static void test_infer_matches_engine(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 2, 32);
    ferry_batcher *b = make_batcher(e, NULL);
    float out[4][DOUT];
    for (int i = 0; i + 4 <= 64; i += 4) {
        int k = 1 + (i / 4) % 4;
        ferry_tensor x = tens(ref_in[i], k, DIN), y = tens(out[0], k, DOUT);
        assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, NULL), FERRY_OK);
        assert_memory_equal(out, ref_out[i], sizeof(float) * DOUT * (size_t)k);
    }
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.submitted, 16);
    assert_int_equal(s.succeeded, 16);
    assert_int_equal(s.queue_depth, 0);
    uint64_t hist = 0;
    for (int i = 0; i < FERRY_BATCH_BUCKETS; i++)
        hist += s.batch_hist[i];
    assert_int_equal(hist, s.batches);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

/* (2) A full queue refuses at once, and that callback never runs. */
static void test_max_queue(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 1, 8);
    engine_slot *plug = block_engine(e);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_queue = 4;
    c.max_batch = 4;
    ferry_batcher *b = make_batcher(e, &c);
    done_rec r[5];
    memset(r, 0, sizeof r);
    float out[5][DOUT];
    for (int i = 0; i < 5; i++) {
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(out[i], 1, DOUT);
        ferry_status st = ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r[i]);
        assert_int_equal(st, i < 4 ? FERRY_OK : FERRY_EBUSY);
    }
    assert_non_null(strstr(ferry_last_error(), "queue full"));
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.queue_depth, 4);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.submitted, 5);
    engine_slot_release(plug);
    wait_calls(r, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&r[i].st), FERRY_OK);
        assert_memory_equal(out[i], ref_out[i], sizeof out[i]);
    }
    ferry_batcher_destroy(b);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&r[i].calls), 1);
    assert_int_equal(atomic_load(&r[4].calls), 0);
    ferry_engine_destroy(e);
}

/* (3) A deadline that passes while the engine is busy completes the request
 * with FERRY_ETIMEDOUT at once, without it ever reaching the device. */
static void test_deadline(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 1, 8);
    engine_slot *plug = block_engine(e);
    ferry_batcher *b = make_batcher(e, NULL);
    done_rec r;
    memset(&r, 0, sizeof r);
    float out[DOUT];
    ferry_tensor x = tens(ref_in[0], 1, DIN), y = tens(out, 1, DOUT);
    ferry_request_opts o = {.priority = 0, .timeout_us = 2000};
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, &o, rec_cb, &r), FERRY_OK);
    wait_calls(&r, 1); /* while the engine is still blocked */
    assert_int_equal(atomic_load(&r.st), FERRY_ETIMEDOUT);
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, &o), FERRY_ETIMEDOUT);
    assert_non_null(strstr(ferry_last_error(), "deadline"));

    /* the default timeout applies when opts say 0 */
    ferry_batcher_destroy(b);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.default_timeout_us = 1000;
    b = make_batcher(e, &c);
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, NULL), FERRY_ETIMEDOUT);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.samples, 0); /* nothing was dispatched */
    engine_slot_release(plug);
    ferry_request_opts none = {.priority = 0, .timeout_us = -1};
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, &none), FERRY_OK);
    assert_memory_equal(out, ref_out[0], sizeof out);
    /* a timeout too large to add to the clock is no deadline, not an
     * overflow that expires at once (nor is a huge max_delay_us) */
    ferry_request_opts huge = {.priority = 0, .timeout_us = INT64_MAX};
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, &huge), FERRY_OK);
    assert_memory_equal(out, ref_out[0], sizeof out);
    ferry_batcher_destroy(b);
    c.default_timeout_us = 0;
    c.max_delay_us = INT64_MAX;
    b = make_batcher(e, &c);
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, &huge), FERRY_OK);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

/* (4) Bad requests: each refused with its own status and a message naming
 * the tensor; the callback never runs. */
static void test_bad_requests(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 2, 16);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 8;
    c.priority_levels = 2;
    ferry_batcher *b = make_batcher(e, &c);
    static float in[16 * DIN], out[16 * DOUT];
    done_rec r;
    memset(&r, 0, sizeof r);
    char name_frag[128];

    ferry_tensor x = tens(in, 9, DIN), y = tens(out, 9, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "exceeds max_batch 8"));

    x = tens(in, 2, DIN + 1);
    y = tens(out, 2, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_ESHAPE);
    snprintf(name_frag, sizeof name_frag, "input '%s' has shape [2,%d], expected [*,%d]", in_name,
             DIN + 1, DIN);
    assert_non_null(strstr(ferry_last_error(), name_frag));

    x = tens(in, 2, DIN);
    y = tens(out, 3, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_ESHAPE);
    snprintf(name_frag, sizeof name_frag, "output '%s' has 3 samples", out_name);
    assert_non_null(strstr(ferry_last_error(), name_frag));

    x = tens(in, 2, DIN);
    x.ndim = 3;
    x.shape[2] = 1;
    y = tens(out, 2, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_ESHAPE);

    x = tens(in, 2, DIN);
    x.dtype = FERRY_F16;
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_EDTYPE);
    snprintf(name_frag, sizeof name_frag, "input '%s' is f16, expected f32", in_name);
    assert_non_null(strstr(ferry_last_error(), name_frag));

    x = tens(in, 0, DIN);
    y = tens(out, 0, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_EINVAL);

    x = tens(in, 1, DIN);
    y = tens(out, 1, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &x, 2, &y, 1, NULL, rec_cb, &r), FERRY_EINVAL);
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, NULL, &r), FERRY_EINVAL);
    ferry_request_opts o = {.priority = 2, .timeout_us = 0};
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, &o, rec_cb, &r), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "priority 2"));
    x.data = NULL;
    assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r), FERRY_EINVAL);

    /* bad configurations */
    ferry_batcher *b2 = NULL;
    c.max_batch = 17;
    assert_int_equal(ferry_batcher_create(e, &c, &b2), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "max_batch 17"));
    c.max_batch = 8;
    c.n_preferred = 1;
    c.preferred_batch_sizes[0] = 9;
    assert_int_equal(ferry_batcher_create(e, &c, &b2), FERRY_EINVAL);
    c.n_preferred = 0;
    c.priority_levels = 9;
    assert_int_equal(ferry_batcher_create(e, &c, &b2), FERRY_EINVAL);
    assert_null(b2);

    ferry_batcher_destroy(b);
    assert_int_equal(atomic_load(&r.calls), 0);
    ferry_batcher_destroy(NULL);
    ferry_engine_destroy(e);
}

/* ids [N, 4] int64 -> Gather of a constant table [10, 3] (row r holds
 * 3r, 3r+1, 3r+2: an embedding) -> y [N, 4, 3]; with `twice`, the Gather
 * takes ids + ids, an index only the model computes. An engine of one
 * worker of depth 1 (block_engine can hold it). */
static ferry_engine *table_engine(int twice, int max_batch, ferry_model **m)
{
    ob *mb = ob_new(13);
    int64_t idd[2] = {-1, 4}, td[2] = {10, 3}, yd[3] = {-1, 4, 3};
    float table[30];
    for (int i = 0; i < 30; i++)
        table[i] = (float)i;
    ob_input(mb, "ids", 2, idd);
    mb->graph.input[0]->type->tensor_type->elem_type = 7; /* int64 */
    ob_output(mb, "y", 3, yd);
    ob_init_f32(mb, "table", 2, td, table);
    if (twice)
        ob_node(mb, "Add", "twice", "ids,ids", "idx");
    ob_node(mb, "Gather", "emb", twice ? "table,idx" : "table,ids", "y");
    size_t len;
    uint8_t *buf = ob_pack(mb, &len);
    assert_int_equal(ferry_model_load_buffer(buf, len, NULL, m), FERRY_OK);
    ob_free(mb);
    ferry_engine_config ec;
    ferry_engine_config_init(&ec);
    ec.workers = 1;
    ec.pipeline_depth = 1;
    ec.max_batch = max_batch;
    ferry_engine *e = NULL;
    assert_int_equal(ferry_engine_create(*m, &ec, &e), FERRY_OK);
    return e;
}

/* A request with an id outside [-10, 10) is refused alone at submit,
 * naming the input, the value and the range; the batch it would have
 * joined runs without it. */
static void test_ids_out_of_range(void **state)
{
    (void)state;
    ferry_model *m = NULL;
    ferry_engine *e = table_engine(0, 8, &m);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    ferry_batcher *b = make_batcher(e, &c);
    int64_t good[8] = {0, 9, -10, -1, 3, 3, 3, 3}, bad[4] = {1, 2, 10, 0};
    float out[8 * 12];
    ferry_tensor x = {.dtype = FERRY_I64, .ndim = 2, .shape = {1, 4}, .data = bad};
    ferry_tensor y = {.dtype = FERRY_F32, .ndim = 3, .shape = {1, 4, 3}, .data = out};
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, NULL), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "input 'ids' holds 10 at element 2; it indexes a "
                                               "table of 10 rows (valid: -10 to 9)"));
    x.data = good;
    x.shape[0] = 2;
    y.shape[0] = 2;
    assert_int_equal(ferry_batcher_infer(b, &x, 1, &y, 1, NULL), FERRY_OK);
    assert_true(out[0] == 0.0f && out[3] == 27.0f && out[6] == 0.0f && out[9] == 27.0f);
    assert_true(out[12] == 9.0f); /* ids[1][0] = 3 -> row 3 */
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
}

/* A batch that fails on one request's data (here an index that only the
 * model computes, 2 * ids, so submit cannot check it) runs again in
 * halves, down to the request at fault: the bad ones get the engine's
 * error, the others their answers. Five requests wait behind a blocked engine and go as one batch:
 * a request of 200 samples (its inputs held outside the node, so they
 * come back from staging), two good ones, two bad. */
typedef struct iso_rec {
    atomic_int calls;
    _Atomic int st;
    char msg[256];
} iso_rec;

static void iso_cb(void *user, ferry_status st)
{
    iso_rec *r = user;
    if (st != FERRY_OK)
        snprintf(r->msg, sizeof r->msg, "%s", ferry_last_error());
    atomic_store(&r->st, (int)st);
    atomic_fetch_add(&r->calls, 1);
}

static void wait_iso(iso_rec *r, int n)
{
    wait_counters(&r->calls, sizeof *r, n);
}

static void test_data_failure_isolated(void **state)
{
    (void)state;
    ferry_model *m = NULL;
    ferry_engine *e = table_engine(1, 256, &m);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 256;
    c.max_delay_us = 100000;
    ferry_batcher *b = make_batcher(e, &c);
    enum { R = 5, BIG = 200 };
    static int64_t ids[R][BIG * 4];
    static float out[R][BIG * 12];
    const int64_t k[R] = {BIG, 1, 2, 1, 1};
    const int bad[R] = {0, 1, 0, 1, 0}; /* 2 * 5 = 10 and 2 * -6 = -12: out of range */
    for (int r = 0; r < R; r++)
        for (int i = 0; i < k[r] * 4; i++)
            ids[r][i] = (i * 3 + r) % 10 - 5; /* 2 * ids in [-10, 8]: valid */
    ids[1][2] = 5;
    ids[3][0] = -6;
    iso_rec rec[R];
    memset(rec, 0, sizeof rec);
    engine_slot *plug = block_engine(e);
    for (int r = 0; r < R; r++) {
        ferry_tensor x = {.dtype = FERRY_I64, .ndim = 2, .shape = {k[r], 4}, .data = ids[r]};
        ferry_tensor y = {.dtype = FERRY_F32, .ndim = 3, .shape = {k[r], 4, 3}, .data = out[r]};
        assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, iso_cb, &rec[r]), FERRY_OK);
    }
    sleep_us(20000); /* all five queued, then one batch */
    engine_slot_release(plug);
    wait_iso(rec, R);
    for (int r = 0; r < R; r++) {
        assert_int_equal(atomic_load(&rec[r].calls), 1);
        if (bad[r]) {
            assert_int_equal(atomic_load(&rec[r].st), FERRY_EINVAL);
            assert_non_null(strstr(rec[r].msg, "out of range"));
            continue;
        }
        assert_int_equal(atomic_load(&rec[r].st), FERRY_OK);
        for (int i = 0; i < k[r] * 4; i++) {
            int64_t row = 2 * ids[r][i] < 0 ? 2 * ids[r][i] + 10 : 2 * ids[r][i];
            for (int j = 0; j < 3; j++)
                assert_true(out[r][i * 3 + j] == (float)(row * 3 + j));
        }
    }
    ferry_batcher_stats bs;
    ferry_batcher_get_stats(b, &bs);
    assert_int_equal(bs.succeeded, 3);
    assert_int_equal(bs.failed, 2);
    uint64_t batches0 = bs.batches, queued0 = 0;
    for (int i = 0; i < FERRY_LAT_BUCKETS; i++)
        queued0 += bs.queue_hist[i];
    assert_int_equal(queued0, R); /* a retried request's wait counts once */

    /* One bad request among 32 of one sample: halves, not 32 runs. */
    enum { M = 32 };
    iso_rec rec2[M];
    memset(rec2, 0, sizeof rec2);
    plug = block_engine(e);
    for (int r = 0; r < M; r++) {
        for (int i = 0; i < 4; i++)
            ids[0][r * 4 + i] = (r + i) % 10 - 5;
        if (r == 19)
            ids[0][r * 4 + 3] = 7; /* 14: out of range */
        ferry_tensor x = {.dtype = FERRY_I64, .ndim = 2, .shape = {1, 4}, .data = ids[0] + r * 4};
        ferry_tensor y = {
            .dtype = FERRY_F32, .ndim = 3, .shape = {1, 4, 3}, .data = out[0] + r * 12};
        assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, iso_cb, &rec2[r]), FERRY_OK);
    }
    sleep_us(20000);
    engine_slot_release(plug);
    wait_iso(rec2, M);
    for (int r = 0; r < M; r++) {
        assert_int_equal(atomic_load(&rec2[r].calls), 1);
        assert_int_equal(atomic_load(&rec2[r].st), r == 19 ? FERRY_EINVAL : FERRY_OK);
    }
    ferry_batcher_get_stats(b, &bs);
    /* 1 + 2 * log2(32) = 11 runs at most, where running each alone took 33 */
    assert_true(bs.batches - batches0 <= 11);
    assert_int_equal(bs.succeeded, 3 + 31);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
}

/* With the engine blocked, queued high-priority requests run first;
 * within a level, arrival order is kept. */
static void test_priorities(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 1, 8);
    engine_slot *plug = block_engine(e);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 2;
    c.priority_levels = 3;
    ferry_batcher *b = make_batcher(e, &c);
    enum { N = 12 };
    done_rec r[N];
    memset(r, 0, sizeof r);
    float out[N][DOUT];
    int prio[N];
    for (int i = 0; i < N; i++) {
        prio[i] = i < 4 ? 0 : i < 8 ? 2 : 1; /* low x4, high x4, middle x4 */
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(out[i], 1, DOUT);
        ferry_request_opts o = {.priority = prio[i], .timeout_us = -1};
        assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, &o, rec_cb, &r[i]), FERRY_OK);
    }
    atomic_store(&seq_counter, 0);
    engine_slot_release(plug);
    wait_calls(r, N);
    /* one slot: batches run one after another, so completion order is
     * dispatch order: high (4..7), middle (8..11), low (0..3) */
    const int expect[N] = {4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3};
    for (int pos = 0; pos < N; pos++) {
        int i = expect[pos];
        assert_int_equal(atomic_load(&r[i].st), FERRY_OK);
        assert_int_equal(atomic_load(&r[i].seq), pos);
        assert_memory_equal(out[i], ref_out[i], sizeof out[i]);
    }
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

/* (6b) All eight levels, a default level for requests without opts, and
 * requests of several samples: with the engine blocked, each batch takes
 * the highest levels' requests first, in arrival order within a level, and
 * a request that does not fit ends its batch (it is never passed over for
 * a lower level's smaller one). */
static void test_priority_levels_and_default(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 1, 8);
    engine_slot *plug = block_engine(e);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 4;
    c.priority_levels = 8;
    c.default_priority = 8;
    ferry_batcher *b = NULL;
    assert_int_equal(ferry_batcher_create(e, &c, &b), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "default_priority 8 is outside 0..7"));
    c.default_priority = 5;
    b = make_batcher(e, &c);
    const ferry_batcher_config *got = ferry_batcher_get_config(b);
    assert_int_equal(got->priority_levels, 8);
    assert_int_equal(got->default_priority, 5);
    assert_int_equal(got->max_batch, 4);

    enum { N = 9 };
    /* level (-1: no opts, the default 5) and samples of each request */
    const int lvl[N] = {0, 7, -1, 3, 7, -1, 0, 6, 3};
    const int k[N] = {1, 2, 3, 1, 2, 1, 4, 1, 2};
    done_rec r[N];
    memset(r, 0, sizeof r);
    static float out[N][4][DOUT];
    int row = 0;
    for (int i = 0; i < N; i++, row += k[i - 1]) {
        ferry_tensor x = tens(ref_in[row], k[i], DIN), y = tens(out[i][0], k[i], DOUT);
        ferry_request_opts o = {.priority = lvl[i], .timeout_us = -1};
        assert_int_equal(
            ferry_batcher_submit(b, &x, 1, &y, 1, lvl[i] < 0 ? NULL : &o, rec_cb, &r[i]), FERRY_OK);
    }
    atomic_store(&seq_counter, 0);
    engine_slot_release(plug);
    wait_calls(r, N);
    /* by level: 7 (#1 k2, #4 k2), 6 (#7), 5 (#2 k3, #5), 3 (#3, #8 k2), 0
     * (#0, #6 k4). Batches of at most 4, filled in that order: {1,4},
     * {7,2}, {5,3,8}, {0}, {6}: one slot, so completion order is batch
     * order, and within a batch the order the requests were taken. */
    const int expect[N] = {1, 4, 7, 2, 5, 3, 8, 0, 6};
    row = 0;
    int first_row[N];
    for (int i = 0; i < N; i++) {
        first_row[i] = row;
        row += k[i];
    }
    for (int pos = 0; pos < N; pos++) {
        int i = expect[pos];
        assert_int_equal(atomic_load(&r[i].st), FERRY_OK);
        assert_int_equal(atomic_load(&r[i].seq), pos);
        assert_memory_equal(out[i][0], ref_out[first_row[i]], sizeof(float) * DOUT * (size_t)k[i]);
    }
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.batches, 5);
    assert_int_equal(s.samples, 17);
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

/* Preferred batch sizes: a batch leaves as soon as it reaches one, long
 * before max_delay. */
static void test_preferred(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(1, 1, 16);
    engine_slot *plug = block_engine(e);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 16;
    c.max_delay_us = 60 * 1000000ll; /* the test would time out if it waited this */
    c.n_preferred = 1;
    c.preferred_batch_sizes[0] = 3;
    ferry_batcher *b = make_batcher(e, &c);
    done_rec r[3];
    memset(r, 0, sizeof r);
    float out[3][DOUT];
    for (int i = 0; i < 3; i++) {
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(out[i], 1, DOUT);
        assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, NULL, rec_cb, &r[i]), FERRY_OK);
    }
    engine_slot_release(plug);
    wait_calls(r, 3);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    assert_int_equal(s.batches, 1);
    assert_int_equal(s.samples, 3);
    assert_int_equal(s.batch_hist[2], 1); /* bucket le 4 */
    ferry_batcher_destroy(b);
    ferry_engine_destroy(e);
}

/* ------------------------------------------- (1) exactly once, 64 threads */

#define STRESS_THREADS 64
#define WINDOW 16 /* requests in flight per thread */
#define MAXK 4

typedef struct sthread sthread;

typedef struct sreq {
    sthread *t;
    int64_t id;
    int k;
    int idx[MAXK];
    float out[MAXK][DOUT];
    struct sreq *next_free;
} sreq;

struct sthread {
    ferry_batcher *b;
    int tid;
    int64_t n;
    uint32_t rng;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sreq reqs[WINDOW];
    sreq *free_list;
    int n_free;
    /* outcome counts */
    int64_t attempts, busy, ok, expired, failed, ok_samples, mismatches;
    int64_t completions; /* callbacks run, under mu */
};

static atomic_uchar *calls; /* per request id */
static atomic_int double_calls;

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void put_free(sthread *t, sreq *r)
{
    pthread_mutex_lock(&t->mu);
    t->completions++;
    r->next_free = t->free_list;
    t->free_list = r;
    t->n_free++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void stress_cb(void *user, ferry_status st)
{
    sreq *r = user;
    sthread *t = r->t;
    if (atomic_fetch_add(&calls[r->id], 1) != 0)
        atomic_fetch_add(&double_calls, 1);
    /* this thread's counters: only one callback per request and the
     * submitting thread reads them after its window drains */
    pthread_mutex_lock(&t->mu);
    if (st == FERRY_OK) {
        t->ok++;
        t->ok_samples += r->k;
        for (int s = 0; s < r->k; s++)
            if (memcmp(r->out[s], ref_out[r->idx[s]], sizeof r->out[s]) != 0)
                t->mismatches++;
    } else if (st == FERRY_ETIMEDOUT) {
        t->expired++;
    } else {
        t->failed++;
    }
    t->completions++;
    r->next_free = t->free_list;
    t->free_list = r;
    t->n_free++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *stress_main(void *arg)
{
    sthread *t = arg;
    float in[MAXK][DIN];
    for (int64_t j = 0; j < t->n; j++) {
        pthread_mutex_lock(&t->mu);
        while (!t->free_list)
            pthread_cond_wait(&t->cv, &t->mu);
        sreq *r = t->free_list;
        t->free_list = r->next_free;
        t->n_free--;
        pthread_mutex_unlock(&t->mu);

        uint32_t x = next_rand(&t->rng);
        r->id = (int64_t)t->tid * t->n + j;
        r->k = 1 + (int)(x % MAXK);
        for (int s = 0; s < r->k; s++) {
            r->idx[s] = (int)(next_rand(&t->rng) % NREF);
            memcpy(in[s], ref_in[r->idx[s]], sizeof in[s]);
        }
        memset(r->out, 0xff, sizeof r->out);
        ferry_request_opts o;
        o.priority = (int)((x >> 8) % 4);
        switch ((x >> 16) % 10) {
        case 0: o.timeout_us = 1; break;   /* expires unless picked in the same microsecond */
        case 1: o.timeout_us = 200; break; /* may expire in queue or in a forming batch */
        case 2: o.timeout_us = -1; break;  /* none */
        default: o.timeout_us = 0; break;  /* the default (long) */
        }
        ferry_tensor xt = tens(in[0], r->k, DIN), yt = tens(r->out[0], r->k, DOUT);
        ferry_status st = ferry_batcher_submit(t->b, &xt, 1, &yt, 1, &o, stress_cb, r);
        t->attempts++;
        if (st == FERRY_EBUSY) {
            t->busy++;
            put_free(t, r);
            /* back off as a real client would: until one of ours completes */
            pthread_mutex_lock(&t->mu);
            int64_t seen = t->completions;
            if (t->n_free < WINDOW) {
                while (t->completions == seen)
                    pthread_cond_wait(&t->cv, &t->mu);
                pthread_mutex_unlock(&t->mu);
            } else {
                pthread_mutex_unlock(&t->mu);
                sleep_us(1000);
            }
        } else if (st != FERRY_OK) {
            fprintf(stderr, "submit: %s: %s\n", ferry_status_str(st), ferry_last_error());
            t->failed += 1000000; /* fails the test */
            put_free(t, r);
        }
    }
    pthread_mutex_lock(&t->mu); /* wait for this thread's last callbacks */
    while (t->n_free < WINDOW)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void test_exactly_once(void **state)
{
    (void)state;
    int64_t n = UNDER_TSAN ? 2000 : 20000;
    const char *env = getenv("FERRY_STRESS_N");
    if (env && atoll(env) > 0)
        n = atoll(env);
    ferry_engine *e = make_engine(2, 2, 32);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 24;
    c.max_delay_us = 100;
    c.n_preferred = 2;
    c.preferred_batch_sizes[0] = 8;
    c.preferred_batch_sizes[1] = 16;
    c.max_queue = 768; /* small enough that some submits meet a full queue */
    c.priority_levels = 4;
    c.default_timeout_us = 60 * 1000000ll;
    ferry_batcher *b = make_batcher(e, &c);

    int64_t total = STRESS_THREADS * n;
    calls = calloc((size_t)total, sizeof *calls);
    assert_non_null(calls);
    atomic_store(&double_calls, 0);
    sthread *th = calloc(STRESS_THREADS, sizeof *th);
    pthread_t pt[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        sthread *t = &th[i];
        t->b = b;
        t->tid = i;
        t->n = n;
        t->rng = 0x9e3779b9u * (uint32_t)(i + 1);
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        for (int w = 0; w < WINDOW; w++) {
            t->reqs[w].t = t;
            t->reqs[w].next_free = t->free_list;
            t->free_list = &t->reqs[w];
        }
        t->n_free = WINDOW;
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_create(&pt[i], NULL, stress_main, &th[i]), 0);
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(pt[i], NULL);

    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    ferry_batcher_destroy(b);

    int64_t attempts = 0, busy = 0, ok = 0, expired = 0, failed = 0, ok_samples = 0, mismatches = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        attempts += th[i].attempts;
        busy += th[i].busy;
        ok += th[i].ok;
        expired += th[i].expired;
        failed += th[i].failed;
        ok_samples += th[i].ok_samples;
        mismatches += th[i].mismatches;
    }
    int64_t ran = 0, never = 0;
    for (int64_t i = 0; i < total; i++) {
        ran += atomic_load(&calls[i]) == 1;
        never += atomic_load(&calls[i]) == 0;
    }
    printf("exactly-once: %d threads x %lld: ok %lld, expired %lld, rejected %lld, batches "
           "%llu (mean %.2f samples); samples differing from batch-1 runs: %lld of %lld\n",
           STRESS_THREADS, (long long)n, (long long)ok, (long long)expired, (long long)busy,
           (unsigned long long)s.batches, s.batches ? (double)s.samples / (double)s.batches : 0.0,
           (long long)mismatches, (long long)ok_samples);

    assert_int_equal(atomic_load(&double_calls), 0);
    assert_int_equal(attempts, total);
    assert_int_equal(failed, 0);
    assert_int_equal(ran, ok + expired); /* every accepted request: one callback */
    assert_int_equal(never, busy);       /* every rejected one: none */
    assert_int_equal(s.submitted, (uint64_t)total);
    assert_int_equal(s.succeeded, (uint64_t)ok);
    assert_int_equal(s.expired, (uint64_t)expired);
    assert_int_equal(s.rejected, (uint64_t)busy);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.submitted, s.succeeded + s.failed + s.expired + s.rejected);
    assert_int_equal(s.samples, (uint64_t)ok_samples); /* expired ones never ran */
    assert_int_equal(s.queue_depth, 0);
    assert_true(expired > 0);
    assert_true(ok > total / 4); /* the rest: rejected by the small queue, or expired */
    assert_int_equal(mismatches, 0);
    uint64_t qh = 0, bh = 0, ch = 0;
    for (int i = 0; i < FERRY_LAT_BUCKETS; i++) {
        qh += s.queue_hist[i];
        ch += s.compute_hist[i];
    }
    for (int i = 0; i < FERRY_BATCH_BUCKETS; i++)
        bh += s.batch_hist[i];
    assert_int_equal(qh, (uint64_t)ok);
    assert_int_equal(bh, s.batches);
    assert_int_equal(ch, s.batches);
    assert_int_equal(s.batch_hist[FERRY_BATCH_BUCKETS - 1], 0);

    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_mutex_destroy(&th[i].mu);
        pthread_cond_destroy(&th[i].cv);
    }
    free(th);
    free(calls);
    ferry_engine_destroy(e);
}

/* ------------------------------------------ (5) destroy under load */

#define DCLIENTS 8
#define DCAP 100000 /* requests per client at most */

typedef struct dreq {
    atomic_int calls;
    _Atomic int st;
    float out[DOUT];
} dreq;

static dreq *dreqs;
static atomic_int clients_stopped, gate_ran;
static atomic_llong accepted_total;

typedef struct dclient {
    ferry_batcher *b;
    int id;
    int64_t accepted, shutdown_seen;
} dclient;

static void dreq_cb(void *user, ferry_status st)
{
    dreq *r = user;
    atomic_store(&r->st, (int)st);
    atomic_fetch_add(&r->calls, 1);
}

/* Holds its engine thread until every client has seen FERRY_ESHUTDOWN, so
 * that destroy cannot return (and free the batcher) while a client may
 * still call submit. */
static void gate_cb(void *user, ferry_status st)
{
    (void)user;
    (void)st;
    while (atomic_load(&clients_stopped) < DCLIENTS)
        sleep_us(200);
    atomic_fetch_add(&gate_ran, 1);
}

static void *dclient_main(void *arg)
{
    dclient *c = arg;
    float in[DIN];
    memcpy(in, ref_in[c->id], sizeof in);
    for (int64_t j = 0; j < DCAP; j++) {
        dreq *r = &dreqs[(int64_t)c->id * DCAP + j];
        ferry_tensor x = tens(in, 1, DIN), y = tens(r->out, 1, DOUT);
        ferry_status st;
        while ((st = ferry_batcher_submit(c->b, &x, 1, &y, 1, NULL, dreq_cb, r)) == FERRY_EBUSY)
            sched_yield();
        if (st == FERRY_ESHUTDOWN) {
            c->shutdown_seen = 1;
            break;
        }
        if (st != FERRY_OK)
            break;
        c->accepted++;
        atomic_fetch_add(&accepted_total, 1);
    }
    atomic_fetch_add(&clients_stopped, 1);
    return NULL;
}

static void test_destroy_under_load(void **state)
{
    (void)state;
    ferry_engine *e = make_engine(2, 2, 16);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_queue = 4096;
    ferry_batcher *b = make_batcher(e, &c);
    dreqs = calloc((size_t)DCLIENTS * DCAP, sizeof *dreqs);
    assert_non_null(dreqs);
    atomic_store(&clients_stopped, 0);
    atomic_store(&gate_ran, 0);
    atomic_store(&accepted_total, 0);
    float gin[DIN] = {0}, gout[DOUT];
    ferry_tensor gx = tens(gin, 1, DIN), gy = tens(gout, 1, DOUT);
    assert_int_equal(ferry_batcher_submit(b, &gx, 1, &gy, 1, NULL, gate_cb, NULL), FERRY_OK);

    dclient cl[DCLIENTS];
    pthread_t pt[DCLIENTS];
    memset(cl, 0, sizeof cl);
    for (int i = 0; i < DCLIENTS; i++) {
        cl[i].b = b;
        cl[i].id = i;
        assert_int_equal(pthread_create(&pt[i], NULL, dclient_main, &cl[i]), 0);
    }
    /* let a backlog build up */
    for (int w = 0; w < 2000 && atomic_load(&accepted_total) < 3000; w++)
        sleep_us(1000);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    ferry_batcher_destroy(b); /* the gate holds this until all clients stopped */
    assert_int_equal(atomic_load(&gate_ran), 1);

    int64_t accepted = 0, ran = 0, ok = 0, shut = 0, twice = 0, seen = 0;
    for (int i = 0; i < DCLIENTS; i++) {
        pthread_join(pt[i], NULL);
        accepted += cl[i].accepted;
        seen += cl[i].shutdown_seen;
    }
    for (int64_t i = 0; i < (int64_t)DCLIENTS * DCAP; i++) {
        int n = atomic_load(&dreqs[i].calls);
        ran += n > 0;
        twice += n > 1;
        if (n) {
            int st = atomic_load(&dreqs[i].st);
            ok += st == FERRY_OK;
            shut += st == FERRY_ESHUTDOWN;
        }
    }
    printf("destroy under load: %lld accepted (queue depth %llu when destroy began), %lld ran "
           "(%lld ok, %lld shut down), %lld clients saw FERRY_ESHUTDOWN\n",
           (long long)accepted, (unsigned long long)s.queue_depth, (long long)ran, (long long)ok,
           (long long)shut, (long long)seen);
    assert_int_equal(twice, 0);
    assert_int_equal(ran, accepted);
    assert_int_equal(ok + shut, ran);
    assert_int_equal(seen, DCLIENTS);
    free(dreqs);
    ferry_engine_destroy(e);
}

/* ------------------------------------------- closed loop from callbacks */

/* Clients whose callbacks check their outputs and submit again at once, as
 * a server answering on the completing thread does: the path on which a
 * completing batch lends its nodes, references and queue places to the
 * requests its callbacks submit. Three priority levels and a max_queue
 * below the clients make those submits switch levels and meet a full
 * queue (a refused client is parked and the test thread retries it); then
 * destroy drains while the callbacks are still submitting: every accepted
 * request completes once, with the engine's own outputs. */
#define RCLIENTS 96

typedef struct rclient {
    ferry_batcher *b;
    int id, k, prio;
    float in[2][DIN], out[2][DOUT];
    atomic_int parked; /* refused with FERRY_EBUSY; the test thread retries */
    atomic_llong accepted, calls;
} rclient;

static atomic_llong r_ok, r_bad, r_busy;

static void rclient_cb(void *user, ferry_status st);

static void rclient_issue(rclient *c)
{
    ferry_tensor x = tens(&c->in[0][0], c->k, DIN), y = tens(&c->out[0][0], c->k, DOUT);
    ferry_request_opts o = {.priority = c->prio};
    ferry_status st = ferry_batcher_submit(c->b, &x, 1, &y, 1, &o, rclient_cb, c);
    if (st == FERRY_OK) {
        atomic_fetch_add(&c->accepted, 1);
    } else if (st == FERRY_EBUSY) {
        atomic_fetch_add(&r_busy, 1);
        atomic_store(&c->parked, 1);
    } else if (st != FERRY_ESHUTDOWN) {
        atomic_fetch_add(&r_bad, 1);
    }
}

static void rclient_cb(void *user, ferry_status st)
{
    rclient *c = user;
    int bad = st != FERRY_OK && st != FERRY_ESHUTDOWN;
    for (int j = 0; st == FERRY_OK && j < c->k; j++)
        bad |= memcmp(c->out[j], ref_out[(c->id + j) % NREF], sizeof c->out[j]) != 0;
    if (bad)
        atomic_fetch_add(&r_bad, 1);
    if (st == FERRY_OK)
        atomic_fetch_add(&r_ok, 1);
    memset(c->out, 0, sizeof c->out);
    atomic_fetch_add(&c->calls, 1);
    if (st == FERRY_OK)
        rclient_issue(c); /* FERRY_ESHUTDOWN once destroy has begun: the loop ends */
}

static void test_resubmit_from_callbacks(void **state)
{
    (void)state;
    int64_t target = UNDER_TSAN ? 20000 : 300000;
    ferry_engine *e = make_engine(2, 2, 32);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_batch = 32;
    c.max_delay_us = 200;
    c.max_queue = 40;
    c.priority_levels = 3;
    ferry_batcher *b = make_batcher(e, &c);
    static rclient cl[RCLIENTS];
    memset(cl, 0, sizeof cl);
    atomic_store(&r_ok, 0);
    atomic_store(&r_bad, 0);
    atomic_store(&r_busy, 0);
    for (int i = 0; i < RCLIENTS; i++) {
        cl[i].b = b;
        cl[i].id = i;
        cl[i].k = i % 4 == 0 ? 2 : 1;
        cl[i].prio = i % 3;
        memcpy(cl[i].in[0], ref_in[i % NREF], sizeof cl[i].in[0]);
        memcpy(cl[i].in[1], ref_in[(i + 1) % NREF], sizeof cl[i].in[1]);
        rclient_issue(&cl[i]);
    }
    for (int spins = 0; atomic_load(&r_ok) < target; spins++) {
        if (spins > 60 * 5000)
            fail_msg("closed loop: %lld of %lld completions in 60 s", (long long)atomic_load(&r_ok),
                     (long long)target);
        for (int i = 0; i < RCLIENTS; i++)
            if (atomic_exchange(&cl[i].parked, 0))
                rclient_issue(&cl[i]);
        sleep_us(200);
    }
    ferry_batcher_stats s;
    ferry_batcher_get_stats(b, &s);
    /* the callbacks are still submitting: destroy refuses them and drains */
    ferry_batcher_destroy(b);
    long long accepted = 0, ran = 0;
    for (int i = 0; i < RCLIENTS; i++) {
        accepted += atomic_load(&cl[i].accepted);
        ran += atomic_load(&cl[i].calls);
        assert_int_equal(atomic_load(&cl[i].calls), atomic_load(&cl[i].accepted));
    }
    printf("closed loop from callbacks: %lld accepted, %lld completed ok, %lld refused as busy; "
           "%llu batches of %.1f samples\n",
           accepted, (long long)atomic_load(&r_ok), (long long)atomic_load(&r_busy),
           (unsigned long long)s.batches, s.batches ? (double)s.samples / (double)s.batches : 0);
    assert_int_equal(ran, accepted);
    assert_int_equal(atomic_load(&r_bad), 0);
    assert_true(s.queue_depth <= (uint64_t)c.max_queue);
    ferry_engine_destroy(e);
}

/* ------------------------------------ groups of submits from callbacks */

/* The tests below drive the path on which a completing batch lends its
 * nodes, references and queue places to the submits of its callbacks. The
 * engine has one slot per worker; a seed batch's first callback takes the
 * slot its batch just gave back (g_plug), so nothing its callbacks submit
 * can leave the queue until the test thread gives it back. */

#define GSEEDS 32

static ferry_engine *g_engine;
static ferry_batcher *g_a, *g_b;
static engine_slot *_Atomic g_plug;
static done_rec g_child[GSEEDS * 4], g_other; /* requests the callbacks submit */
static float g_child_out[GSEEDS * 4][DOUT], g_other_out[DOUT];
static atomic_int g_accepted, g_busy, g_bad, g_seed_calls;

/* One engine slot, g_a over it with cfg, the shared state cleared. */
static void group_start(const ferry_batcher_config *cfg)
{
    g_engine = make_engine(1, 1, 32);
    g_a = make_batcher(g_engine, cfg);
    memset(g_child, 0, sizeof g_child);
    memset(&g_other, 0, sizeof g_other);
    memset(g_child_out, 0, sizeof g_child_out);
    atomic_store(&g_plug, NULL);
    atomic_store(&g_accepted, 0);
    atomic_store(&g_busy, 0);
    atomic_store(&g_bad, 0);
    atomic_store(&g_seed_calls, 0);
}

/* Seeds the queue of a plugged engine with GSEEDS requests whose callbacks
 * are cb, then lets them run as one batch. */
static void run_seeds(ferry_batcher *b, ferry_request_fn cb, done_rec *seeds)
{
    engine_slot *plug = block_engine(g_engine);
    float out[GSEEDS][DOUT];
    for (intptr_t i = 0; i < GSEEDS; i++) {
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(out[i], 1, DOUT);
        ferry_request_opts o = {.timeout_us = -1};
        assert_int_equal(ferry_batcher_submit(b, &x, 1, &y, 1, &o, cb, &seeds[i]), FERRY_OK);
    }
    engine_slot_release(plug);
    wait_calls(seeds, GSEEDS);
}

/* Each seed callback submits three requests to g_a (two priority levels),
 * one to g_b, and a few bad ones. */
static void gseed_cb(void *user, ferry_status st)
{
    done_rec *seed = user;
    int i = atomic_fetch_add(&g_seed_calls, 1);
    assert_int_equal(st, FERRY_OK);
    if (i == 0) {
        /* the slot this batch gave back; the dispatchers are idle */
        engine_slot *s = NULL;
        if (engine_slot_acquire(g_engine, 0, &s) != FERRY_OK)
            atomic_fetch_add(&g_bad, 1000);
        atomic_store(&g_plug, s);
    }
    for (int j = 0; j < 3; j++) {
        done_rec *r = &g_child[i * 3 + j];
        ferry_tensor x = tens(ref_in[i * 3 + j], 1, DIN), y = tens(g_child_out[i * 3 + j], 1, DOUT);
        ferry_request_opts o = {.priority = (i + j) % 2, .timeout_us = -1};
        ferry_status s2 = ferry_batcher_submit(g_a, &x, 1, &y, 1, &o, rec_cb, r);
        if (s2 == FERRY_OK)
            atomic_fetch_add(&g_accepted, 1);
        else if (s2 == FERRY_EBUSY)
            atomic_fetch_add(&g_busy, 1);
        else
            atomic_fetch_add(&g_bad, 1);
    }
    if (i == 7) {
        /* refused before they take anything: their callbacks never run */
        float big[40][DIN] = {{0}}, bigo[40][DOUT];
        ferry_tensor x = tens(big[0], 40, DIN), y = tens(bigo[0], 40, DOUT);
        if (ferry_batcher_submit(g_a, &x, 1, &y, 1, NULL, rec_cb, &g_child[GSEEDS * 3]) !=
            FERRY_EINVAL)
            atomic_fetch_add(&g_bad, 1);
        ferry_tensor xw = {.dtype = FERRY_F32, .ndim = 2, .shape = {1, DIN + 1}, .data = big};
        y = tens(bigo[0], 1, DOUT);
        if (ferry_batcher_submit(g_a, &xw, 1, &y, 1, NULL, rec_cb, &g_child[GSEEDS * 3]) !=
            FERRY_ESHAPE)
            atomic_fetch_add(&g_bad, 1);
        ferry_request_opts o = {.priority = 5};
        x = tens(big[0], 1, DIN);
        if (ferry_batcher_submit(g_a, &x, 1, &y, 1, &o, rec_cb, &g_child[GSEEDS * 3]) !=
            FERRY_EINVAL)
            atomic_fetch_add(&g_bad, 1);
    }
    if (i == 9) {
        ferry_tensor x = tens(ref_in[9], 1, DIN), y = tens(g_other_out, 1, DOUT);
        if (ferry_batcher_submit(g_b, &x, 1, &y, 1, NULL, rec_cb, &g_other) != FERRY_OK)
            atomic_fetch_add(&g_bad, 1);
    }
    rec_cb(seed, st);
}

/* max_queue bounds what callbacks submit, queue places reserved for groups
 * included: with the engine plugged nothing leaves the queue, so exactly
 * max_queue of the 96 submits are accepted; bad submits inside a callback
 * take nothing; a submit to another batcher from a callback runs there. */
static void test_group_queue_bound(void **state)
{
    (void)state;
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_queue = 50;
    c.priority_levels = 2;
    group_start(&c);
    g_b = make_batcher(g_engine, NULL);
    done_rec seeds[GSEEDS];
    memset(seeds, 0, sizeof seeds);
    run_seeds(g_a, gseed_cb, seeds);

    assert_int_equal(atomic_load(&g_bad), 0);
    assert_int_equal(atomic_load(&g_accepted), c.max_queue);
    assert_int_equal(atomic_load(&g_busy), GSEEDS * 3 - c.max_queue);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(g_a, &s);
    assert_int_equal(s.queue_depth, (uint64_t)c.max_queue);
    float out[DOUT];
    ferry_tensor x = tens(ref_in[0], 1, DIN), y = tens(out, 1, DOUT);
    assert_int_equal(ferry_batcher_submit(g_a, &x, 1, &y, 1, NULL, rec_cb, &g_other), FERRY_EBUSY);
    engine_slot_release(atomic_load(&g_plug));

    /* one engine thread ran the callbacks in order: the first max_queue
     * submits were accepted */
    wait_calls(g_child, c.max_queue);
    wait_calls(&g_other, 1);
    ferry_batcher_destroy(g_a);
    ferry_batcher_destroy(g_b);
    for (int i = 0; i < GSEEDS * 3 + 1; i++) {
        assert_int_equal(atomic_load(&g_child[i].calls), i < c.max_queue);
        if (i < c.max_queue) {
            assert_int_equal(atomic_load(&g_child[i].st), FERRY_OK);
            assert_memory_equal(g_child_out[i], ref_out[i], sizeof g_child_out[i]);
        }
    }
    assert_int_equal(atomic_load(&g_other.calls), 1);
    assert_int_equal(atomic_load(&g_other.st), FERRY_OK);
    assert_memory_equal(g_other_out, ref_out[9], sizeof g_other_out);
    ferry_engine_destroy(g_engine);
}

/* A request submitted from a callback whose deadline passes while its
 * group is still unpublished completes with FERRY_ETIMEDOUT and never
 * reaches the device; one without a deadline in the same group runs. */
static void gdeadline_cb(void *user, ferry_status st)
{
    int i = atomic_fetch_add(&g_seed_calls, 1);
    if (i == 0) {
        engine_slot *s = NULL;
        if (engine_slot_acquire(g_engine, 0, &s) != FERRY_OK)
            atomic_fetch_add(&g_bad, 1000);
        atomic_store(&g_plug, s);
        for (int j = 0; j < 2; j++) {
            ferry_tensor x = tens(ref_in[j], 1, DIN), y = tens(g_child_out[j], 1, DOUT);
            ferry_request_opts o = {.priority = 1 - j, .timeout_us = j == 0 ? 1 : -1};
            if (ferry_batcher_submit(g_a, &x, 1, &y, 1, &o, rec_cb, &g_child[j]) != FERRY_OK)
                atomic_fetch_add(&g_bad, 1);
        }
        int64_t t0 = ferry_now_us();
        while (ferry_now_us() - t0 < 100) /* past its deadline before it is published */
            ;
    }
    rec_cb(user, st);
}

static void test_group_deadline(void **state)
{
    (void)state;
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.priority_levels = 2;
    group_start(&c);
    done_rec seeds[GSEEDS];
    memset(seeds, 0, sizeof seeds);
    run_seeds(g_a, gdeadline_cb, seeds);
    assert_int_equal(atomic_load(&g_bad), 0);
    wait_calls(&g_child[0], 1); /* while the engine is still plugged */
    assert_int_equal(atomic_load(&g_child[0].st), FERRY_ETIMEDOUT);
    assert_int_equal(atomic_load(&g_child[1].calls), 0);
    engine_slot_release(atomic_load(&g_plug));
    wait_calls(&g_child[1], 1);
    assert_int_equal(atomic_load(&g_child[1].st), FERRY_OK);
    assert_memory_equal(g_child_out[1], ref_out[1], sizeof g_child_out[1]);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(g_a, &s);
    assert_int_equal(s.samples, GSEEDS + 1); /* the expired one never ran */
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.submitted, GSEEDS + 2);
    assert_int_equal(s.succeeded, GSEEDS + 1);
    ferry_batcher_destroy(g_a);
    assert_int_equal(atomic_load(&g_child[0].calls), 1);
    assert_int_equal(atomic_load(&g_child[1].calls), 1);
    ferry_engine_destroy(g_engine);
}

/* A group waits for at most PUBLISH_CHUNK (32) callbacks of its batch, and
 * the queue places reserved with it are given back then: a request that
 * the first of 64 callbacks submits runs on the other engine worker while
 * the batch's later callbacks are still running. (The waiting callback
 * blocks, which callbacks must not do, to observe this; the engine's other
 * worker runs the request.) */
#define PSEEDS 64

static void gpublish_cb(void *user, ferry_status st)
{
    int i = atomic_fetch_add(&g_seed_calls, 1);
    if (i == 0) {
        /* this worker's own slot, just given back (the last freed is taken
         * first), so that the request goes to the other worker */
        engine_slot *s = NULL;
        if (engine_slot_acquire(g_engine, 0, &s) != FERRY_OK)
            atomic_fetch_add(&g_bad, 1000);
        atomic_store(&g_plug, s);
        ferry_tensor x = tens(ref_in[0], 1, DIN), y = tens(g_child_out[0], 1, DOUT);
        if (ferry_batcher_submit(g_a, &x, 1, &y, 1, NULL, rec_cb, &g_child[0]) != FERRY_OK)
            atomic_fetch_add(&g_bad, 1);
    }
    if (i == 40) {
        for (int spins = 0; spins < 20000 && !atomic_load(&g_child[0].calls); spins++)
            sleep_us(1000);
        if (!atomic_load(&g_child[0].calls))
            atomic_fetch_add(&g_bad, 1); /* still in the group after 40 callbacks */
        ferry_batcher_stats s;
        ferry_batcher_get_stats(g_a, &s);
        if (s.queue_depth != 0)
            atomic_fetch_add(&g_bad, 100); /* places still reserved */
    }
    rec_cb(user, st);
}

static void test_group_publish_bound(void **state)
{
    (void)state;
    g_engine = make_engine(2, 1, PSEEDS);
    g_a = make_batcher(g_engine, NULL);
    memset(g_child, 0, sizeof g_child);
    atomic_store(&g_plug, NULL);
    atomic_store(&g_bad, 0);
    atomic_store(&g_seed_calls, 0);
    engine_slot *p1 = NULL, *p2 = NULL;
    assert_int_equal(engine_slot_acquire(g_engine, 0, &p1), FERRY_OK);
    assert_int_equal(engine_slot_acquire(g_engine, 0, &p2), FERRY_OK);
    done_rec seeds[PSEEDS];
    memset(seeds, 0, sizeof seeds);
    float out[PSEEDS][DOUT];
    for (int i = 0; i < PSEEDS; i++) {
        ferry_tensor x = tens(ref_in[i], 1, DIN), y = tens(out[i], 1, DOUT);
        assert_int_equal(ferry_batcher_submit(g_a, &x, 1, &y, 1, NULL, gpublish_cb, &seeds[i]),
                         FERRY_OK);
    }
    engine_slot_release(p1); /* the 64 leave as one batch */
    engine_slot_release(p2);
    wait_calls(seeds, PSEEDS);
    engine_slot_release(atomic_load(&g_plug));
    wait_calls(&g_child[0], 1);
    ferry_batcher_stats s;
    ferry_batcher_get_stats(g_a, &s);
    ferry_batcher_destroy(g_a);
    assert_int_equal(s.batches, 2);
    assert_int_equal(atomic_load(&g_bad), 0);
    assert_int_equal(atomic_load(&g_child[0].calls), 1);
    assert_int_equal(atomic_load(&g_child[0].st), FERRY_OK);
    assert_memory_equal(g_child_out[0], ref_out[0], sizeof g_child_out[0]);
    ferry_engine_destroy(g_engine);
}

/* A closed loop over two batchers on one engine: each callback submits its
 * client's next request to either batcher (from A's completions, a submit
 * to B goes the ordinary way), with random sizes (70 samples: a buffer
 * outside the node), priorities and deadlines (some expire in a group or in
 * the queue). At a quiet point the counters must add up; then A and B are
 * destroyed while their callbacks are still submitting. Every accepted
 * request completes once, with the engine's own outputs. */
#define MCLIENTS 48
#define MBIGK 70

typedef struct mclient {
    int id;
    uint32_t rng;
    int bt, k, base; /* the request in flight */
    float in[MBIGK][DIN], out[MBIGK][DOUT];
    atomic_int inflight, parked, ended;
    atomic_llong accepted, calls;
} mclient;

static mclient m_cl[MCLIENTS];
static ferry_batcher *m_bt[2];
static atomic_int m_stop, m_a_dead, m_a_users;
static atomic_llong m_ok_total, m_bad;
static atomic_llong m_cnt[2][5]; /* submitted, rejected, ok, expired, failed */

static void mclient_cb(void *user, ferry_status st);

/* Submits c's next request; 0 when it will not run (refused or ended). */
static int mclient_issue(mclient *c)
{
    uint32_t x = next_rand(&c->rng);
    int bt = (x % 10) < 7 && !atomic_load(&m_a_dead) ? 0 : 1;
    c->k = (x >> 4) % 16 == 0 ? MBIGK : 1 + (int)((x >> 8) % 3);
    c->base = (int)((x >> 12) % NREF);
    for (int j = 0; j < c->k; j++)
        memcpy(c->in[j], ref_in[(c->base + j) % NREF], sizeof c->in[j]);
    ferry_request_opts o = {.priority = (int)((x >> 20) % 2)};
    switch ((x >> 24) % 8) {
    case 0: o.timeout_us = 1; break;
    case 1: o.timeout_us = 100; break;
    case 2: o.timeout_us = -1; break;
    default: o.timeout_us = 0; break;
    }
    ferry_tensor xt = tens(c->in[0], c->k, DIN), yt = tens(c->out[0], c->k, DOUT);
    c->bt = bt;
    atomic_store(&c->inflight, 1);
    ferry_status st;
    if (bt == 0) {
        /* A may be destroyed while B's callbacks run: they and the test
         * thread reach A only while it is alive */
        atomic_fetch_add(&m_a_users, 1);
        st = atomic_load(&m_a_dead)
                 ? FERRY_ESHUTDOWN
                 : ferry_batcher_submit(m_bt[0], &xt, 1, &yt, 1, &o, mclient_cb, c);
        atomic_fetch_sub(&m_a_users, 1);
    } else {
        st = ferry_batcher_submit(m_bt[1], &xt, 1, &yt, 1, &o, mclient_cb, c);
    }
    if (st == FERRY_OK) {
        atomic_fetch_add(&c->accepted, 1);
        atomic_fetch_add(&m_cnt[bt][0], 1);
        return 1;
    }
    atomic_store(&c->inflight, 0);
    if (st == FERRY_EBUSY) {
        atomic_fetch_add(&m_cnt[bt][0], 1);
        atomic_fetch_add(&m_cnt[bt][1], 1);
        atomic_store(&c->parked, 1);
    } else if (st == FERRY_ESHUTDOWN) {
        atomic_store(&c->ended, 1);
    } else {
        atomic_fetch_add(&m_bad, 1);
    }
    return 0;
}

static void mclient_cb(void *user, ferry_status st)
{
    mclient *c = user;
    if (!atomic_exchange(&c->inflight, 0))
        atomic_fetch_add(&m_bad, 1); /* a second callback */
    int bad = st != FERRY_OK && st != FERRY_ETIMEDOUT;
    for (int j = 0; st == FERRY_OK && j < c->k; j++)
        bad |= memcmp(c->out[j], ref_out[(c->base + j) % NREF], sizeof c->out[j]) != 0;
    if (bad)
        atomic_fetch_add(&m_bad, 1);
    atomic_fetch_add(&m_cnt[c->bt][st == FERRY_OK ? 2 : st == FERRY_ETIMEDOUT ? 3 : 4], 1);
    if (st == FERRY_OK)
        atomic_fetch_add(&m_ok_total, 1);
    atomic_fetch_add(&c->calls, 1);
    if (!atomic_load(&m_stop))
        mclient_issue(c);
}

static void mixed_run_until(int64_t target)
{
    for (int spins = 0; atomic_load(&m_ok_total) < target; spins++) {
        if (spins > 60 * 5000)
            fail_msg("mixed loop: %lld of %lld completions in 60 s",
                     (long long)atomic_load(&m_ok_total), (long long)target);
        for (int i = 0; i < MCLIENTS; i++)
            if (atomic_exchange(&m_cl[i].parked, 0))
                mclient_issue(&m_cl[i]);
        sleep_us(200);
    }
}

static void mixed_check_stats(int bt)
{
    ferry_batcher_stats s;
    for (int spins = 0; spins < 20000; spins++) { /* the last batch_done may still be ending */
        ferry_batcher_get_stats(m_bt[bt], &s);
        if (s.queue_depth == 0)
            break;
        sleep_us(1000);
    }
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.submitted, (uint64_t)atomic_load(&m_cnt[bt][0]));
    assert_int_equal(s.rejected, (uint64_t)atomic_load(&m_cnt[bt][1]));
    assert_int_equal(s.succeeded, (uint64_t)atomic_load(&m_cnt[bt][2]));
    assert_int_equal(s.expired, (uint64_t)atomic_load(&m_cnt[bt][3]));
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.submitted, s.succeeded + s.failed + s.expired + s.rejected);
}

static void test_group_mixed_destroy(void **state)
{
    (void)state;
    int64_t target = UNDER_TSAN ? 5000 : 60000;
    ferry_engine *e = make_engine(2, 2, 96);
    ferry_batcher_config c;
    ferry_batcher_config_init(&c);
    c.max_delay_us = 200;
    c.max_queue = 40;
    c.priority_levels = 2;
    m_bt[0] = make_batcher(e, &c);
    c.max_batch = 80;
    c.max_queue = 64;
    c.n_preferred = 1;
    c.preferred_batch_sizes[0] = 8;
    m_bt[1] = make_batcher(e, &c);
    memset(m_cl, 0, sizeof m_cl);
    memset(m_cnt, 0, sizeof m_cnt);
    atomic_store(&m_stop, 0);
    atomic_store(&m_a_dead, 0);
    atomic_store(&m_a_users, 0);
    atomic_store(&m_ok_total, 0);
    atomic_store(&m_bad, 0);
    for (int i = 0; i < MCLIENTS; i++) {
        m_cl[i].id = i;
        m_cl[i].rng = 0x2545f491u * (uint32_t)(i + 1);
        mclient_issue(&m_cl[i]);
    }
    mixed_run_until(target);

    /* a quiet point: the loop stops, the counters add up */
    atomic_store(&m_stop, 1);
    for (int i = 0; i < MCLIENTS; i++) {
        for (int spins = 0; spins < 20000 && atomic_load(&m_cl[i].inflight); spins++)
            sleep_us(1000);
        assert_int_equal(atomic_load(&m_cl[i].inflight), 0);
        atomic_store(&m_cl[i].parked, 0);
    }
    mixed_check_stats(0);
    mixed_check_stats(1);

    /* again, then destroy A, then B, while the callbacks submit */
    atomic_store(&m_stop, 0);
    for (int i = 0; i < MCLIENTS; i++)
        mclient_issue(&m_cl[i]);
    mixed_run_until(2 * target);
    atomic_store(&m_a_dead, 1);
    while (atomic_load(&m_a_users))
        sched_yield();
    ferry_batcher_destroy(m_bt[0]);
    mixed_run_until(atomic_load(&m_ok_total) + target / 4); /* B alone */
    ferry_batcher_destroy(m_bt[1]);

    long long accepted = 0, ran = 0;
    for (int i = 0; i < MCLIENTS; i++) {
        assert_int_equal(atomic_load(&m_cl[i].calls), atomic_load(&m_cl[i].accepted));
        assert_int_equal(atomic_load(&m_cl[i].inflight), 0);
        accepted += atomic_load(&m_cl[i].accepted);
        ran += atomic_load(&m_cl[i].calls);
    }
    printf("mixed closed loop over two batchers: %lld accepted, %lld ok; A: %lld expired, %lld "
           "refused; B: %lld expired, %lld refused\n",
           accepted, (long long)atomic_load(&m_ok_total), (long long)atomic_load(&m_cnt[0][3]),
           (long long)atomic_load(&m_cnt[0][1]), (long long)atomic_load(&m_cnt[1][3]),
           (long long)atomic_load(&m_cnt[1][1]));
    assert_int_equal(ran, accepted);
    assert_int_equal(atomic_load(&m_bad), 0);
    ferry_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer_matches_engine),
        cmocka_unit_test(test_max_queue),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_ids_out_of_range),
        cmocka_unit_test(test_data_failure_isolated),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_priority_levels_and_default),
        cmocka_unit_test(test_preferred),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_destroy_under_load),
        cmocka_unit_test(test_resubmit_from_callbacks),
        cmocka_unit_test(test_group_queue_bound),
        cmocka_unit_test(test_group_deadline),
        cmocka_unit_test(test_group_publish_bound),
        cmocka_unit_test(test_group_mixed_destroy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
