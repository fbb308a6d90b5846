/*
 * cpu_gemm_microbench.c - one caller running an ONNX model through a CPU
 * engine at a few batch sizes, reporting the best of many short trials:
 * on a shared machine the best trial is the one least disturbed by other
 * processes, which is what an A/B of two builds needs. Not a test: timing
 * only. Build by hand against a build dir's libferry.a:
 *   cc -O2 -Iinclude bench/cpu_gemm_microbench.c build-cpu/libferry.a \
 *      $(pkg-config --libs libprotobuf-c openblas libmicrohttpd libcjson) \
 *      -lm -lpthread -o /tmp/mb
 *   /tmp/mb MODEL.onnx [batches=1,32,256,4096] [seconds=1] [workers=0]
 * workers 0 is the engine's default (one per core), as `ferry bench` uses.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, ferry_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, ferry_status_str(st), ferry_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.onnx [batches] [seconds] [workers]\n", argv[0]);
        return 2;
    }
    int64_t batches[16];
    int nb = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", argc > 2 ? argv[2] : "1,32,256,4096");
    for (char *t = strtok(list, ","); t && nb < 16; t = strtok(NULL, ","))
        batches[nb++] = atoll(t);
    double secs = argc > 3 ? atof(argv[3]) : 1.0;
    int workers = argc > 4 ? atoi(argv[4]) : 0;
    int64_t maxb = 1;
    for (int i = 0; i < nb; i++)
        maxb = batches[i] > maxb ? batches[i] : maxb;

    ferry_model *m;
    ferry_engine *e;
    ferry_status st;
    if ((st = ferry_model_load(argv[1], &m)) != FERRY_OK)
        return fail(argv[1], st);
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = "cpu";
    cfg.workers = workers;
    cfg.max_batch = (int)maxb;
    if ((st = ferry_engine_create(m, &cfg, &e)) != FERRY_OK)
        return fail("engine", st);
    ferry_tensor_info ii, oi;
    ferry_model_input(m, 0, &ii);
    ferry_model_output(m, 0, &oi);
    int64_t in_per = 1, out_per = 1;
    for (int d = 1; d < ii.ndim; d++)
        in_per *= ii.shape[d];
    for (int d = 1; d < oi.ndim; d++)
        out_per *= oi.shape[d];
    float *in = malloc((size_t)(maxb * in_per) * sizeof *in);
    float *out = malloc((size_t)(maxb * out_per) * sizeof *out);
    uint32_t s = 12345u;
    for (int64_t k = 0; k < maxb * in_per; k++) {
        s = s * 1664525u + 1013904223u;
        in[k] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    for (int bi = 0; bi < nb; bi++) {
        int64_t n = batches[bi];
        ferry_tensor x = {.dtype = FERRY_F32, .ndim = 2, .shape = {n, in_per}, .data = in};
        ferry_tensor y = {.dtype = FERRY_F32, .ndim = 2, .shape = {n, out_per}, .data = out};
        for (int w = 0; w < 3; w++)
            if ((st = ferry_engine_run(e, &x, 1, &y, 1)) != FERRY_OK)
                return fail("run", st);
        double best = 1e30, t0 = now_s();
        do {
            long iters = 0;
            double a = now_s(), t;
            do {
                ferry_engine_run(e, &x, 1, &y, 1);
                iters++;
                t = now_s();
            } while (t - a < 0.02);
            if ((t - a) / (double)iters < best)
                best = (t - a) / (double)iters;
        } while (now_s() - t0 < secs);
        printf("batch %5lld: %12.1f us/run %12.0f samples/s\n", (long long)n, best * 1e6,
               (double)n / best);
        fflush(stdout);
    }
    free(in);
    free(out);
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
    return 0;
}
