/*
 * cpu_data_microbench.c - the CPU data-movement and elementwise kernels
 * (cpu_data.h, cpu_elem.h) on a transformer-sized activation, in cache
 * (3 MiB) and out of it (48 MiB), reporting the best of many short trials
 * in microseconds and GB/s of bytes read plus written. Not a test: timing
 * only. Compare threads with FERRY_CPU_THREADS=1 against the default. Build
 * by hand from a checkout:
 *   cc -std=c11 -O3 -D_GNU_SOURCE -Iinclude -Isrc bench/cpu_data_microbench.c \
 *      src/backend/cpu/cpu_data.c src/backend/cpu/cpu_elem.c \
 *      src/backend/cpu/cpu_reduce.c src/backend/cpu/cpu_iter.c \
 *      src/backend/cpu/cpu_parallel.c \
 *      -lm -lpthread -o /tmp/db
 *   /tmp/db [seconds per case = 0.3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_data.h"
#include "backend/cpu/cpu_elem.h"
#include "backend/cpu/cpu_parallel.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double budget = 0.3;

/* Best time of repeated runs of the statement over `budget` seconds. */
#define CASE(name, bytes, stmt)                                                                    \
    do {                                                                                           \
        stmt;                                                                                      \
        double best_ = 1e30, end_ = now_s() + budget;                                              \
        while (now_s() < end_) {                                                                   \
            double t0_ = now_s();                                                                  \
            stmt;                                                                                  \
            double dt_ = now_s() - t0_;                                                            \
            best_ = dt_ < best_ ? dt_ : best_;                                                     \
        }                                                                                          \
        printf("%-36s %5s %10.1f us %7.2f GB/s\n", name, tag, best_ * 1e6,                         \
               (double)(bytes) / best_ / 1e9);                                                     \
    } while (0)

/* Activations [N, T, H, d] of n = N*T*H*d floats. */
static void run(const char *tag, int64_t N, int64_t T, int64_t H, int64_t d)
{
    int64_t n = N * T * H * d, rows = N * T, cols = H * d;
    float *x = malloc((size_t)n * 4), *z = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    uint8_t *c = malloc((size_t)n);
    if (!x || !y || !z || !c)
        exit(1);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(i % 17) - 8.0f;
        z[i] = 1.0f + (float)(i % 5);
        c[i] = (uint8_t)(i & 1);
    }
    const int64_t flat[1] = {n}, nthd[4] = {N, T, H, d}, mat[2] = {rows, cols};
    const int64_t row[1] = {cols}, col[2] = {rows, 1};
    const int p_nhtd[4] = {0, 2, 1, 3}, p_nhdt[4] = {0, 2, 3, 1}, p_t[2] = {1, 0};
    const int red_in[2] = {0, 1}, red_out[2] = {1, 0};
    int64_t b4 = n * 4;
    CASE("memcpy", 2 * b4, memcpy(y, x, (size_t)b4));
    CASE("transpose [N,T,H,d]->[N,H,T,d]", 2 * b4, cpu_transpose(x, nthd, 4, p_nhtd, y, 4));
    CASE("transpose [N,T,H,d]->[N,H,d,T]", 2 * b4, cpu_transpose(x, nthd, 4, p_nhdt, y, 4));
    CASE("transpose 2-D", 2 * b4, cpu_transpose(x, mat, 2, p_t, y, 4));
    CASE("add, same shape", 3 * b4,
         cpu_binary_arith(CPU_BIN_ADD, FERRY_F32, 0, x, flat, 1, z, flat, 1, y, flat, 1));
    CASE("add [R,C] + [C]", 2 * b4,
         cpu_binary_arith(CPU_BIN_ADD, FERRY_F32, 0, x, mat, 2, z, row, 1, y, mat, 2));
    CASE("mul [R,C] * [R,1]", 2 * b4,
         cpu_binary_arith(CPU_BIN_MUL, FERRY_F32, 0, x, mat, 2, z, col, 2, y, mat, 2));
    CASE("less -> bool", 2 * b4 + n,
         cpu_compare(CPU_CMP_LT, FERRY_F32, x, flat, 1, z, flat, 1, c, flat, 1));
    CASE("where f32", 3 * b4 + n, cpu_where(c, flat, 1, x, flat, 1, z, flat, 1, y, flat, 1, 4));
    CASE("neg", 2 * b4, cpu_unary_f32(CPU_UN_NEG, x, y, n, 0, 0));
    CASE("exp", 2 * b4, cpu_unary_f32(CPU_UN_EXP, x, y, n, 0, 0));
    CASE("reduce sum over C", b4, cpu_reduce(CPU_RED_SUM, FERRY_F32, x, mat, 2, red_in, y));
    CASE("reduce sum over R", b4, cpu_reduce(CPU_RED_SUM, FERRY_F32, x, mat, 2, red_out, y));
    CASE("reduce max over C", b4, cpu_reduce(CPU_RED_MAX, FERRY_F32, x, mat, 2, red_in, y));
    CASE("argmax over C", b4, cpu_arg_reduce(1, FERRY_F32, x, mat, 2, 1, 0, (int64_t *)y));
    const int64_t img[4] = {1, n / (96 * 128 * 4), 96, 128};
    const int64_t up[4] = {1, img[1], 192, 256};
    const float s2[4] = {1, 1, 2, 2};
    int64_t nup = img[1] * 192 * 256, npad = N * T * (H + 2) * (d + 2);
    float *big = malloc((size_t)(nup > npad ? nup : npad) * 4);
    if (!big)
        exit(1);
    CASE("resize nearest 2x", nup * 4 + b4 / 4,
         cpu_resize(x, img, 4, big, up, s2, CPU_RESIZE_NEAREST, CPU_COORD_ASYMMETRIC,
                    CPU_NEAREST_FLOOR));
    CASE("resize bilinear 2x", nup * 4 + b4 / 4,
         cpu_resize(x, img, 4, big, up, s2, CPU_RESIZE_LINEAR, CPU_COORD_HALF_PIXEL, 0));
    const int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    CASE("pad constant", b4 + npad * 4, cpu_pad(x, nthd, 4, pads, CPU_PAD_CONSTANT, NULL, big, 4));
    free(big);
    free(x);
    free(y);
    free(z);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget = atof(argv[1]);
    printf("threads %d\n", cpu_parallel_threads());
    run("3M", 8, 128, 12, 64);
    run("48M", 8, 512, 12, 256);
    return 0;
}
