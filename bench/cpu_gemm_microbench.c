/*
 * cpu_gemm_microbench.c - mlp-s (256-512-512-256, ReLU) forward on the CPU
 * backend at a few batch sizes, on a hand-built graph. Not a test: timing
 * only. Build by hand against a build dir's libferry.a:
 *   cc -O2 -Iinclude -Isrc bench/cpu_gemm_microbench.c build-cpu/libferry.a \
 *      -lopenblas -lm -lpthread -o /tmp/mb && /tmp/mb
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/backend.h"
#include "graph/graph.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int add_const(graph *g, const char *name, int nd, const int64_t *d)
{
    int v = graph_add_value(g, name, FERRY_F32, nd, d);
    int64_t n = graph_value_numel(&g->values[v], 1);
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((i * 7919 % 2001) - 1000) * 1e-4f;
    g->values[v].is_const = 1;
    g->values[v].data = p;
    return v;
}

int main(int argc, char **argv)
{
    const int64_t dims[4] = {256, 512, 512, 256};
    int64_t maxb = 4096;
    graph *g = graph_new();
    int64_t xd[2] = {FERRY_DIM_BATCH, dims[0]};
    int prev = graph_add_value(g, "x", FERRY_F32, 2, xd);
    g->values[prev].is_input = 1;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = prev;
    g->n_inputs = 1;
    for (int l = 0; l < 3; l++) {
        char name[32];
        int64_t wd[2] = {dims[l + 1], dims[l]}, bd[1] = {dims[l + 1]};
        int64_t hd[2] = {FERRY_DIM_BATCH, dims[l + 1]};
        snprintf(name, sizeof name, "w%d", l);
        int w = add_const(g, name, 2, wd);
        snprintf(name, sizeof name, "b%d", l);
        int b = add_const(g, name, 1, bd);
        snprintf(name, sizeof name, "h%d", l);
        int h = graph_add_value(g, name, FERRY_F32, 2, hd);
        int in[3] = {prev, w, b};
        int k = graph_add_node(g, OP_GEMM, NULL, 3, in, 1, &h);
        g->nodes[k].trans_b = 1; /* PyTorch Linear layout: W [out, in] */
        g->nodes[k].act = l < 2 ? ACT_RELU : ACT_NONE;
        prev = h;
    }
    g->values[prev].is_output = 1;
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = prev;
    g->n_outputs = 1;

    const ferry_backend_ops *be = &ferry_backend_cpu;
    backend_opts o = {.precision = FERRY_PRECISION_FP32, .io_dtype = FERRY_F32, .max_batch = maxb};
    backend_ctx *c;
    backend_stream *s;
    if (be->ctx_create(g, &o, &c) != FERRY_OK || be->stream_create(c, &s) != FERRY_OK) {
        fprintf(stderr, "%s\n", ferry_last_error());
        return 1;
    }
    void *arena, *in, *out;
    be->alloc(c, be->arena_bytes(c), &arena);
    be->alloc(c, (size_t)maxb * 256 * 4, &in);
    be->alloc(c, (size_t)maxb * 256 * 4, &out);
    for (int64_t i = 0; i < maxb * 256; i++)
        ((float *)in)[i] = (float)(i % 13) * 0.1f;
    int64_t batches[] = {1, 32, 256, 4096};
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    for (int bi = 0; bi < 4; bi++) {
        int64_t n = batches[bi];
        const void *ins[1] = {in};
        void *outs[1] = {out};
        for (int w = 0; w < 3; w++)
            be->forward(s, n, ins, outs, arena);
        /* The machine is shared: report the best of many short trials. */
        double us = 1e30, t0 = now_s();
        while (now_s() - t0 < secs) {
            long iters = 0;
            double a = now_s(), t;
            do {
                be->forward(s, n, ins, outs, arena);
                iters++;
                t = now_s();
            } while (t - a < 0.02);
            if ((t - a) / (double)iters * 1e6 < us)
                us = (t - a) / (double)iters * 1e6;
        }
        printf("batch %5lld: %10.2f us/forward  %12.0f samples/s\n", (long long)n, us,
               (double)n * 1e6 / us);
    }
    be->free(c, arena);
    be->free(c, in);
    be->free(c, out);
    be->stream_destroy(s);
    be->ctx_destroy(c);
    graph_free(g);
    return 0;
}
