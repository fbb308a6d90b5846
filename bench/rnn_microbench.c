/*
 * rnn_microbench.c - cpu_rnn (src/backend/cpu/cpu_rnn.c) on an LSTM/GRU
 * classifier's layer, best of many trials (on a shared machine the best
 * trial is the least disturbed one). bench/rnn_torch.py times PyTorch's
 * nn.LSTM / nn.GRU on the same shapes. Not a test: timing only. Build by
 * hand against a build dir's libferry.a:
 *   cc -O2 -Iinclude -Isrc bench/rnn_microbench.c build/libferry.a \
 *      $(pkg-config --libs libprotobuf-c openblas libmicrohttpd libcjson) \
 *      -ldnnl -fopenmp -lm -lpthread -o /tmp/rnnb
 *   FERRY_CPU_THREADS=1 /tmp/rnnb [lstm|gru] [I=128] [H=256] [seq=64] [seconds=1]
 * Prints one line per (batch 1, 32) x (forward, bidirectional).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_rnn.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *rand_buf(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        exit(1);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * ((float)rand() / (float)RAND_MAX * 2.0f - 1.0f);
    return p;
}

int main(int argc, char **argv)
{
    int gru = argc > 1 && strcmp(argv[1], "gru") == 0;
    int64_t I = argc > 2 ? atoll(argv[2]) : 128, H = argc > 3 ? atoll(argv[3]) : 256;
    int64_t seq = argc > 4 ? atoll(argv[4]) : 64;
    double secs = argc > 5 ? atof(argv[5]) : 1.0;
    int64_t G = gru ? 3 : 4;
    int batches[2] = {1, 32};
    for (int dir = 0; dir < 2; dir++) {
        int64_t D = dir ? 2 : 1;
        cpu_rnn_params p = {.kind = gru ? CPU_RNN_GRU : CPU_RNN_LSTM,
                            .hidden = H,
                            .input = I,
                            .direction = dir ? CPU_RNN_BIDIRECTIONAL : CPU_RNN_FORWARD,
                            .linear_before_reset = gru};
        ferry_tensor W = {FERRY_F32, 3, {D, G * H, I}, rand_buf((size_t)(D * G * H * I), 0.06f)};
        ferry_tensor R = {FERRY_F32, 3, {D, G * H, H}, rand_buf((size_t)(D * G * H * H), 0.06f)};
        ferry_tensor B = {FERRY_F32, 2, {D, 2 * G * H}, rand_buf((size_t)(D * 2 * G * H), 0.06f)};
        cpu_rnn *r = NULL;
        if (cpu_rnn_create(&p, &W, &R, &B, NULL, &r) != FERRY_OK) {
            fprintf(stderr, "create: %s\n", ferry_last_error());
            return 1;
        }
        for (int bi = 0; bi < 2; bi++) {
            int64_t batch = batches[bi];
            float *x = rand_buf((size_t)(seq * batch * I), 1.0f);
            float *Y = malloc((size_t)(seq * D * batch * H) * sizeof *Y);
            float *Yh = malloc((size_t)(D * batch * H) * sizeof *Yh);
            float *Yc = malloc((size_t)(D * batch * H) * sizeof *Yc);
            void *ws = aligned_alloc(64, cpu_rnn_workspace_bytes(r, batch, seq));
            if (!Y || !Yh || !Yc || !ws)
                return 1;
            double best = 1e9, t_end = now_s() + secs;
            int n = 0;
            while (n < 5 || now_s() < t_end) {
                double t0 = now_s();
                cpu_rnn_run(r, seq, batch, x, NULL, NULL, NULL, Y, Yh, Yc, ws);
                double dt = now_s() - t0;
                best = dt < best ? dt : best;
                n++;
            }
            printf("%s %s batch %3lld: best %8.3f ms of %d runs\n", gru ? "gru" : "lstm",
                   dir ? "bidirectional" : "forward      ", (long long)batch, best * 1e3, n);
            free(x);
            free(Y);
            free(Yh);
            free(Yc);
            free(ws);
        }
        cpu_rnn_destroy(r);
        free(W.data);
        free(R.data);
        free(B.data);
    }
    return 0;
}
