/*
 * json_microbench.c - the server's JSON cost for one single-sample mlp-s
 * request on one thread, without HTTP or a model: reading the KServe v2
 * infer request (256 FP32 numbers, as bench/wrk/infer.lua sends them, and
 * as Python's json.dumps of float32 data sends them: 17 digits) into the
 * input buffer, and writing the 256-float response. Reports the best of
 * many short trials (the least disturbed on a shared machine), in
 * operations per second and ns per number. Not a test: timing only.
 *
 * It calls kserve_submit, whose request names an output the model lacks:
 * everything is parsed and decoded, then it stops before submitting (no
 * HTTP connection to suspend). Build by hand against a build dir, the same
 * source for an A/B of two trees:
 *   cc -O2 -Iinclude -Isrc -D_GNU_SOURCE bench/json_microbench.c build-rel/libferry.a \
 *      build-rel/libonnx_proto.a -ldnnl -fopenmp \
 *      $(pkg-config --libs libprotobuf-c openblas libmicrohttpd libcjson) -lm -lpthread \
 *      -o /tmp/jmb && /tmp/jmb [seconds=2]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server.h"

/* Older trees set up their parser (cJSON allocation hooks) here. */
void kserve_init(void) __attribute__((weak));

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best ops/s of `fn` over trials of ~20 ms within `seconds`. */
static double best_rate(void (*fn)(void *), void *arg, double seconds)
{
    double best = 0, t_end = now_s() + seconds;
    while (now_s() < t_end) {
        int n = 0;
        double t0 = now_s(), t1;
        do {
            fn(arg);
            n++;
        } while ((t1 = now_s()) - t0 < 0.02);
        if (n / (t1 - t0) > best)
            best = n / (t1 - t0);
    }
    return best;
}

typedef struct parse_case {
    srv_request r;
    char *body;
    size_t len;
} parse_case;

static void run_parse(void *arg)
{
    parse_case *pc = arg;
    srv_request *r = &pc->r;
    r->body = pc->body;
    r->len = pc->len;
    r->header_len = -1;
    r->err_status = 0;
    if (kserve_submit(r) || !strstr(r->err_msg, "unknown output")) {
        fprintf(stderr, "json_microbench: unexpected parse result: %s\n", r->err_msg);
        exit(1);
    }
    srv_request_release_infer(r);
}

static void run_write(void *arg)
{
    srv_request *r = arg;
    jsonw w = {0};
    unsigned status;
    size_t json_len;
    bool binary;
    kserve_infer_response(r, &w, &status, &json_len, &binary);
    if (status != 200 || w.oom) {
        fprintf(stderr, "json_microbench: response failed\n");
        exit(1);
    }
    jsonw_free(&w);
}

static char *make_body(const char *fmt4, bool python, size_t *len)
{
    static char buf[16384];
    size_t o =
        (size_t)snprintf(buf, sizeof buf,
                         "{\"id\":\"wrk\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                         "\"shape\":[1,256],\"data\":[");
    for (int i = 1; i <= 256; i++) {
        double v = ((i * 37) % 200) / 100.0 - 1;
        if (python) /* float32 data through Python floats: 17 significant digits */
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%.17g", (double)(float)(v * 1.37));
        else
            o += (size_t)snprintf(buf + o, sizeof buf - o, fmt4, v);
        buf[o++] = i < 256 ? ',' : ']';
    }
    o += (size_t)snprintf(buf + o, sizeof buf - o, "}],\"outputs\":[{\"name\":\"nope\"}]}");
    *len = o;
    return buf;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (kserve_init)
        kserve_init();
    ferry_tensor_info in = {"input", FERRY_F32, 2, {-1, 256}};
    ferry_tensor_info out = {"output", FERRY_F32, 2, {-1, 256}};
    int64_t numel = 256;
    srv_model m = {0};
    m.name = "mlp-s";
    m.version = "1";
    m.n_in = m.n_out = 1;
    m.in = &in;
    m.out = &out;
    m.in_sample_numel = &numel;
    m.out_sample_numel = &numel;
    m.max_batch = 64;

    parse_case pc = {0};
    pc.r.model = &m;
    size_t len;
    char *b4 = make_body("%.4f", false, &len);
    pc.body = malloc(len);
    memcpy(pc.body, b4, len);
    pc.len = len;
    double p4 = best_rate(run_parse, &pc, seconds);
    char *b17 = make_body(NULL, true, &len);
    parse_case pc17 = pc;
    pc17.body = malloc(len);
    memcpy(pc17.body, b17, len);
    pc17.len = len;
    double p17 = best_rate(run_parse, &pc17, seconds);

    /* the response: the output of a request, values like mlp-s's */
    float data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (float)(sin(i * 0.7) * 3.1 + (i % 7) * 0.013);
    ferry_tensor t = {FERRY_F32, 2, {1, 256}, data};
    srv_out_sel sel = {0, false};
    srv_request r = {0};
    r.model = &m;
    r.status = FERRY_OK;
    r.outputs = &t;
    r.sel = &sel;
    r.n_sel = 1;
    r.id = "wrk";
    r.id_n = 3;
    double wr = best_rate(run_write, &r, seconds);
    jsonw w = {0};
    unsigned st;
    size_t jl;
    bool bin;
    kserve_infer_response(&r, &w, &st, &jl, &bin);

    printf("parse request, 256 x %%.4f       %9.0f /s  %6.1f ns/number\n", p4, 1e9 / p4 / 256);
    printf("parse request, 256 x 17 digits   %9.0f /s  %6.1f ns/number\n", p17, 1e9 / p17 / 256);
    printf("write response, 256 floats       %9.0f /s  %6.1f ns/number  (%zu bytes)\n", wr,
           1e9 / wr / 256, jl);
    jsonw_free(&w);
    free(pc.body);
    free(pc17.body);
    return 0;
}
