/*
 * cpu_conv_bench.c - the conv layouts of cpu_dnnl.h timed on resnet18's and
 * mobilenet_v2's conv shapes at 224x224: per shape and batch size,
 *   (a) plain NCHW src/dst given to oneDNN as is (CPU_PLAIN_DIRECT),
 *   (b) oneDNN's preferred layout with reorders at the boundary
 *       (CPU_PLAIN_REORDER),
 *   (c) blocked in and out, no reorders (a chain kept blocked),
 * bias fused, no activation (bench/cpu_conv_bench.py times PyTorch's
 * F.conv2d on the same list). Best of several trials: the machine is
 * shared. Timing only, not a test. Build by hand against a build dir:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/cpu_conv_bench.c \
 *      build/libferry.a $(pkg-config --libs libprotobuf-c openblas \
 *      libmicrohttpd libcjson) -ldnnl -fopenmp -lm -lpthread -o /tmp/cb
 *   /tmp/cb [batches=1,32] [threads=1] [filter]
 * threads 0 compares 1 and 2 OpenMP threads (wall time, trials
 * interleaved) for (c) and (b).
 * Prints one line a shape: name, n, best wall and thread-CPU ms for a/b/c
 * (CPU time leaves out preemption: the figure to compare on a loaded
 * machine, one thread only), the implementations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_dnnl.h"

typedef struct shape {
    const char *name;
    int cin, cout, group, hw, k, stride, pad, count; /* count: uses in the network */
} shape;

/* resnet18 (torchvision) and mobilenet_v2's distinct convs at 224x224. */
/* clang-format off */
static const shape SHAPES[] = {
    {"r18.conv1", 3, 64, 1, 224, 7, 2, 3, 1},
    {"r18.l1.3x3", 64, 64, 1, 56, 3, 1, 1, 4},
    {"r18.l2.3x3s2", 64, 128, 1, 56, 3, 2, 1, 1},
    {"r18.l2.3x3", 128, 128, 1, 28, 3, 1, 1, 3},
    {"r18.l2.ds1x1", 64, 128, 1, 56, 1, 2, 0, 1},
    {"r18.l3.3x3s2", 128, 256, 1, 28, 3, 2, 1, 1},
    {"r18.l3.3x3", 256, 256, 1, 14, 3, 1, 1, 3},
    {"r18.l3.ds1x1", 128, 256, 1, 28, 1, 2, 0, 1},
    {"r18.l4.3x3s2", 256, 512, 1, 14, 3, 2, 1, 1},
    {"r18.l4.3x3", 512, 512, 1, 7, 3, 1, 1, 3},
    {"r18.l4.ds1x1", 256, 512, 1, 14, 1, 2, 0, 1},
    {"mv2.conv1", 3, 32, 1, 224, 3, 2, 1, 1},
    {"mv2.dw32", 32, 32, 32, 112, 3, 1, 1, 1},
    {"mv2.pw32-16", 32, 16, 1, 112, 1, 1, 0, 1},
    {"mv2.pw16-96", 16, 96, 1, 112, 1, 1, 0, 1},
    {"mv2.dw96s2", 96, 96, 96, 112, 3, 2, 1, 1},
    {"mv2.pw96-24", 96, 24, 1, 56, 1, 1, 0, 1},
    {"mv2.pw24-144", 24, 144, 1, 56, 1, 1, 0, 2},
    {"mv2.dw144", 144, 144, 144, 56, 3, 1, 1, 1},
    {"mv2.pw144-24", 144, 24, 1, 56, 1, 1, 0, 1},
    {"mv2.dw144s2", 144, 144, 144, 56, 3, 2, 1, 1},
    {"mv2.pw144-32", 144, 32, 1, 28, 1, 1, 0, 1},
    {"mv2.pw32-192", 32, 192, 1, 28, 1, 1, 0, 3},
    {"mv2.dw192", 192, 192, 192, 28, 3, 1, 1, 2},
    {"mv2.pw192-32", 192, 32, 1, 28, 1, 1, 0, 2},
    {"mv2.dw192s2", 192, 192, 192, 28, 3, 2, 1, 1},
    {"mv2.pw192-64", 192, 64, 1, 14, 1, 1, 0, 1},
    {"mv2.pw64-384", 64, 384, 1, 14, 1, 1, 0, 4},
    {"mv2.dw384", 384, 384, 384, 14, 3, 1, 1, 4},
    {"mv2.pw384-64", 384, 64, 1, 14, 1, 1, 0, 3},
    {"mv2.pw384-96", 384, 96, 1, 14, 1, 1, 0, 1},
    {"mv2.pw96-576", 96, 576, 1, 14, 1, 1, 0, 3},
    {"mv2.dw576", 576, 576, 576, 14, 3, 1, 1, 2},
    {"mv2.pw576-96", 576, 96, 1, 14, 1, 1, 0, 2},
    {"mv2.dw576s2", 576, 576, 576, 14, 3, 2, 1, 1},
    {"mv2.pw576-160", 576, 160, 1, 7, 1, 1, 0, 1},
    {"mv2.pw160-960", 160, 960, 1, 7, 1, 1, 0, 3},
    {"mv2.dw960", 960, 960, 960, 7, 3, 1, 1, 3},
    {"mv2.pw960-160", 960, 160, 1, 7, 1, 1, 0, 2},
    {"mv2.pw960-320", 960, 320, 1, 7, 1, 1, 0, 1},
    {"mv2.pw320-1280", 320, 1280, 1, 7, 1, 1, 0, 1},
};
/* clang-format on */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *buf(size_t n)
{
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof *p) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

typedef struct variant {
    cpu_conv *c;
    cpu_layout l;
    int threads;
    double wall, cpu; /* best, ms */
} variant;

static void run1(variant *v, int64_t n, const float *x, float *y)
{
    if (cpu_conv_run_layout(v->c, n, v->l, v->l, v->threads, x, NULL, y) != FERRY_OK) {
        fprintf(stderr, "run: %s\n", ferry_last_error());
        exit(1);
    }
}

/* The variants' best times, trials interleaved (a b c a b c ...) so that
 * each sees the same load: at least 5 rounds and 1 s after a warm-up, at
 * most 40 rounds. Wall time, and the calling thread's CPU time, which
 * leaves out the time another process held the core (one thread only). */
static void time_variants(variant *v, int nv, int64_t n, const float *x, float *y)
{
    for (int k = 0; k < nv; k++) {
        run1(&v[k], n, x, y);
        v[k].wall = v[k].cpu = 1e30;
    }
    double t_end = clock_s(CLOCK_MONOTONIC) + 1.0;
    for (int r = 0; r < 40 && (r < 5 || clock_s(CLOCK_MONOTONIC) < t_end); r++)
        for (int k = 0; k < nv; k++) {
            double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            run1(&v[k], n, x, y);
            double dc = (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e3;
            double dw = (clock_s(CLOCK_MONOTONIC) - w0) * 1e3;
            if (dw < v[k].wall)
                v[k].wall = dw;
            if (dc < v[k].cpu)
                v[k].cpu = dc;
        }
}

static cpu_conv *make(const shape *s, int64_t maxb, cpu_plain_impl impl, const float *w,
                      const float *b)
{
    cpu_conv_params p = {.rank = 2,
                         .c_in = s->cin,
                         .c_out = s->cout,
                         .group = s->group,
                         .max_batch = maxb,
                         .plain_impl = impl};
    p.in[0] = p.in[1] = s->hw;
    p.kernel[0] = p.kernel[1] = s->k;
    p.stride[0] = p.stride[1] = s->stride;
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = s->pad;
    cpu_conv *c;
    if (cpu_conv_create(&p, w, b, &c) != FERRY_OK) {
        fprintf(stderr, "%s: %s\n", s->name, ferry_last_error());
        exit(1);
    }
    return c;
}

int main(int argc, char **argv)
{
    const char *batches = argc > 1 ? argv[1] : "1,32";
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    const char *filter = argc > 3 ? argv[3] : "";
    printf("# shape n threads | wall ms: a_plain b_reorder c_blocked | thread-cpu ms: a b c | "
           "gflops_c(cpu) impl_a impl_b impl_c count\n");
    for (const char *bp = batches; *bp;) {
        int64_t n = strtoll(bp, (char **)&bp, 10);
        if (*bp == ',')
            bp++;
        double tot[2][6] = {{0}}; /* r18, mv2 x wall a b c, cpu a b c */
        for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
            const shape *s = &SHAPES[i];
            if (!strstr(s->name, filter))
                continue;
            int64_t oh = (s->hw + 2 * s->pad - s->k) / s->stride + 1;
            size_t wn = (size_t)s->cout * (s->cin / s->group) * s->k * s->k;
            float *w = buf(wn), *b = buf((size_t)s->cout);
            size_t xn = (size_t)cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, s->cin, s->hw * s->hw);
            size_t yn = (size_t)cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, s->cout, oh * oh);
            float *x = buf(xn), *y = buf(yn);
            memset(x, 0, xn * sizeof *x); /* a blocked input's pad channels are zero */
            cpu_conv *ca = make(s, n, CPU_PLAIN_DIRECT, w, b);
            cpu_conv *cb = make(s, n, CPU_PLAIN_REORDER, w, b);
            if (threads == 0) { /* 1 vs 2 threads, interleaved */
                variant u[4] = {{cb, CPU_LAYOUT_BLOCKED, 1, 0, 0},
                                {cb, CPU_LAYOUT_BLOCKED, 2, 0, 0},
                                {cb, CPU_LAYOUT_PLAIN, 1, 0, 0},
                                {cb, CPU_LAYOUT_PLAIN, 2, 0, 0}};
                time_variants(u, 4, n, x, y);
                printf("%-16s %3lld | wall ms: c@1 %9.3f c@2 %9.3f b@1 %9.3f b@2 %9.3f | %d\n",
                       s->name, (long long)n, u[0].wall, u[1].wall, u[2].wall, u[3].wall, s->count);
                double *t = tot[strncmp(s->name, "r18", 3) != 0];
                for (int k = 0; k < 4; k++)
                    t[k] += u[k].wall * s->count;
                cpu_conv_destroy(ca);
                cpu_conv_destroy(cb);
                free(w), free(b), free(x), free(y);
                continue;
            }
            variant v[3] = {{ca, CPU_LAYOUT_PLAIN, threads, 0, 0},
                            {cb, CPU_LAYOUT_PLAIN, threads, 0, 0},
                            {cb, CPU_LAYOUT_BLOCKED, threads, 0, 0}};
            time_variants(v, 3, n, x, y);
            double flops = 2.0 * (double)n * s->cout * oh * oh * (s->cin / s->group) * s->k * s->k;
            printf("%-16s %3lld %d | %9.3f %9.3f %9.3f | %9.3f %9.3f %9.3f | %6.1f %-13s %-13s "
                   "%-13s %d\n",
                   s->name, (long long)n, threads, v[0].wall, v[1].wall, v[2].wall, v[0].cpu,
                   v[1].cpu, v[2].cpu, flops / (v[2].cpu * 1e6),
                   cpu_conv_impl(ca, n, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, threads),
                   cpu_conv_impl(cb, n, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, threads),
                   cpu_conv_impl(cb, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, threads), s->count);
            fflush(stdout);
            double *t = tot[strncmp(s->name, "r18", 3) != 0];
            for (int k = 0; k < 3; k++)
                t[k] += v[k].wall * s->count, t[3 + k] += v[k].cpu * s->count;
            cpu_conv_destroy(ca);
            cpu_conv_destroy(cb);
            free(w), free(b), free(x), free(y);
        }
        for (int k = 0; k < 2 && threads == 0; k++)
            printf("# %s n=%lld all convs (wall ms, count-weighted): c@1 %.2f c@2 %.2f b@1 %.2f "
                   "b@2 %.2f\n",
                   k ? "mobilenet_v2" : "resnet18", (long long)n, tot[k][0], tot[k][1], tot[k][2],
                   tot[k][3]);
        for (int k = 0; k < 2 && threads != 0; k++)
            printf("# %s n=%lld threads=%d all convs (ms, count-weighted): wall a %.2f b %.2f c "
                   "%.2f | thread-cpu a %.2f b %.2f c %.2f\n",
                   k ? "mobilenet_v2" : "resnet18", (long long)n, threads, tot[k][0], tot[k][1],
                   tot[k][2], tot[k][3], tot[k][4], tot[k][5]);
    }
    return 0;
}
