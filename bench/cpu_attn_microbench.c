/*
 * cpu_attn_microbench.c - the CPU kernels under BERT's and ViT's time
 * (bench/models.py `bert`, `vit_tiny`): the erf GELU (cpu_unary), the fused
 * attention (cpu_attention) at both models' shapes, and the FFN's first
 * Gemm with its GELU epilogue (cpu_gemm) at the rows one engine worker
 * gets at batch 32 (16 samples). Each case reports the best of many short
 * trials, the one least disturbed by other processes on a shared machine:
 * run two builds alternately and compare the best. Not a test: timing
 * only. FERRY_CPU_THREADS=1 for one thread. Build against a build dir:
 *   cc -O2 -fopenmp -D_GNU_SOURCE -DFERRY_HAVE_DNNL=1 -Iinclude -Isrc \
 *      bench/cpu_attn_microbench.c BUILD/libferry_internal.a \
 *      $(pkg-config --libs openblas) -ldnnl -lm -lpthread -o /tmp/am
 *   /tmp/am [seconds per trial = 0.2]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"

static double trial_s = 0.2;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*case_fn)(void *arg);

/* Best of 7 trials of trial_s seconds: microseconds a call. */
static double best_us(case_fn fn, void *arg)
{
    double best = 1e30;
    for (int t = 0; t < 7; t++) {
        int calls = 0;
        double t0 = now_s(), t1;
        do {
            fn(arg);
            calls++;
            t1 = now_s();
        } while (t1 - t0 < trial_s);
        double us = (t1 - t0) / calls * 1e6;
        best = us < best ? us : best;
    }
    return best;
}

static float *filled(int64_t n, float scale)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; p && i < n; i++)
        p[i] = (float)((i * 7) % 13 - 6) * scale;
    return p;
}

typedef struct gelu_case {
    const float *x;
    float *y;
    int64_t n;
} gelu_case;

static void run_gelu(void *arg)
{
    gelu_case *g = arg;
    cpu_unary(OP_GELU, g->x, g->y, g->n, 0.0f, 0);
}

static void run_attention(void *arg)
{
    cpu_attention(arg);
}

/* One attention node over a projection [B, T, 3D] (time-major: [T, B, 3D],
 * as ViT's nn.MultiheadAttention), masked as BERT's padding when mask. */
static void attention(const char *name, int64_t B, int64_t H, int64_t T, int64_t d, int time_major,
                      int mask)
{
    /* T * (T + 1) floats a slot: cpu_attention_slot's size, spelled out so
     * that this file builds against older trees too (T * T there) */
    int64_t D = H * d, W = 3 * D, slots = 16;
    float *x = filled(B * T * W, 0.1f), *y = malloc(sizeof(float) * (size_t)(B * T * D));
    float *m = filled(B * T, 0.0f),
          *scratch = malloc(sizeof(float) * (size_t)(slots * T * (T + 1)));
    for (int64_t i = 0; i < B * T; i++)
        m[i] = i % T < T * 3 / 4 ? 0.0f : -1e4f;
    int64_t bs = time_major ? W : T * W, rs = time_major ? B * W : W;
    cpu_attention_args a = {
        .q = x,
        .k = x + D,
        .v = x + 2 * D,
        .q_bs = bs,
        .k_bs = bs,
        .v_bs = bs,
        .q_rs = rs,
        .k_rs = rs,
        .v_rs = rs,
        .mask = mask ? m : NULL,
        .mstride = {T, 0, 0},
        .y = y,
        .y_bs = time_major ? D : T * D,
        .y_rs = time_major ? B * D : D,
        .B = B,
        .heads = H,
        .Tq = T,
        .Tk = T,
        .d = d,
        .scale = 0.125f,
        .scratch = scratch,
        .slots = slots,
    };
    double us = best_us(run_attention, &a);
    printf("attention %-5s B %2lld H %lld T %lld d %lld: %9.1f us  %5.1f GFLOP/s\n", name,
           (long long)B, (long long)H, (long long)T, (long long)d, us,
           4.0 * (double)(B * H * T * T * d) / us * 1e-3);
    free(x);
    free(y);
    free(m);
    free(scratch);
}

typedef struct gemm_case {
    int64_t M, N, K;
    const float *A, *B, *bias;
    float *Y;
} gemm_case;

static void run_gemm(void *arg)
{
    gemm_case *g = arg;
    cpu_gemm(0, 0, g->M, g->N, g->K, 1.0f, g->A, g->B, 1.0f, g->bias, CPU_BIAS_ROW, ACT_GELU, 0.0f,
             g->Y);
}

static void ffn_in(const char *name, int64_t M, int64_t N, int64_t K)
{
    gemm_case g = {M,
                   N,
                   K,
                   filled(M * K, 0.01f),
                   filled(K * N, 0.01f),
                   filled(N, 0.1f),
                   malloc(sizeof(float) * (size_t)(M * N))};
    double us = best_us(run_gemm, &g);
    printf("gemm+gelu %-5s M %4lld N %4lld K %4lld: %9.1f us  %5.1f GFLOP/s\n", name, (long long)M,
           (long long)N, (long long)K, us, 2.0 * (double)(M * N * K) / us * 1e-3);
    free((void *)g.A);
    free((void *)g.B);
    free((void *)g.bias);
    free(g.Y);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        trial_s = atof(argv[1]);
    gelu_case g = {filled(131072, 0.05f), malloc(sizeof(float) * 131072), 131072};
    printf("gelu (erf) 131072 floats: %.2f ns a float\n", best_us(run_gelu, &g) * 1e3 / 131072);
    free((void *)g.x);
    free(g.y);
    attention("bert", 1, 4, 128, 64, 0, 1);
    attention("vit", 1, 3, 197, 64, 1, 0);
    attention("bert", 16, 4, 128, 64, 0, 1);
    attention("vit", 16, 3, 197, 64, 1, 0);
    ffn_in("bert", 16 * 128, 1024, 256);
    ffn_in("vit", 16 * 197, 768, 192);
    return 0;
}
