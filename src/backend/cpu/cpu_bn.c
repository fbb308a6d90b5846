/*
 * cpu_bn.c - inference BatchNormalization as a per-channel a*x + b loop
 * (cpu_dnnl.h), and the math that folds it into a preceding conv. A loop
 * rather than oneDNN's batch_normalization: it is one multiply-add per
 * element over contiguous memory, and any rank >= 2 is the same [N, C, S]
 * view; in a conv network the graph folds it away anyway.
 */
#include <math.h>

#include "backend/cpu/cpu_dnnl.h"

void cpu_batchnorm_layout(cpu_layout layout, const float *X, float *Y, int64_t n, int64_t c,
                          int64_t spatial, const float *scale, const float *bias, const float *mean,
                          const float *var, float eps)
{
    /* Plain is the blocked loop with a block of one channel. */
    int64_t bs = layout == CPU_LAYOUT_BLOCKED ? cpu_dnnl_block() : 1;
    int64_t nb = (c + bs - 1) / bs;
    float a[16], b[16];
    for (int64_t cb = 0; cb < nb; cb++) {
        for (int64_t e = 0; e < bs; e++) {
            int64_t ch = cb * bs + e;
            a[e] = b[e] = 0.0f; /* pad channels: 0 * 0 + 0 */
            if (ch < c) {
                double s = (double)scale[ch] / sqrt((double)var[ch] + (double)eps);
                a[e] = (float)s;
                b[e] = (float)((double)bias[ch] - (double)mean[ch] * s);
            }
        }
        for (int64_t i = 0; i < n; i++) {
            const float *x = X + (i * nb + cb) * spatial * bs;
            float *y = Y + (i * nb + cb) * spatial * bs;
            if (bs == 1)
                for (int64_t j = 0; j < spatial; j++)
                    y[j] = a[0] * x[j] + b[0];
            else
                for (int64_t j = 0; j < spatial; j++)
                    for (int64_t e = 0; e < bs; e++)
                        y[j * bs + e] = a[e] * x[j * bs + e] + b[e];
        }
    }
}

void cpu_batchnorm(const float *X, float *Y, int64_t n, int64_t c, int64_t spatial,
                   const float *scale, const float *bias, const float *mean, const float *var,
                   float eps)
{
    cpu_batchnorm_layout(CPU_LAYOUT_PLAIN, X, Y, n, c, spatial, scale, bias, mean, var, eps);
}

void cpu_bn_fold_into_conv(int transposed, int64_t c_in, int64_t c_out, int64_t group,
                           int64_t ksize, float *W, const float *B, float *B_out,
                           const float *scale, const float *bias, const float *mean,
                           const float *var, float eps)
{
    int64_t og = c_out / group, ig = c_in / group;
    for (int64_t o = 0; o < c_out; o++) {
        double s = (double)scale[o] / sqrt((double)var[o] + (double)eps);
        double b0 = B ? (double)B[o] : 0.0;
        B_out[o] = (float)((b0 - (double)mean[o]) * s + (double)bias[o]);
        if (!transposed) {
            /* Conv: W [c_out][c_in/group][k]: output channel o is a row. */
            float *w = W + o * ig * ksize;
            for (int64_t j = 0; j < ig * ksize; j++)
                w[j] = (float)((double)w[j] * s);
        } else {
            /* ConvTranspose: W [c_in][c_out/group][k]; o = g*og + oo is
             * column oo of the rows of group g. */
            int64_t g = o / og, oo = o % og;
            for (int64_t i = g * ig; i < (g + 1) * ig; i++) {
                float *w = W + (i * og + oo) * ksize;
                for (int64_t j = 0; j < ksize; j++)
                    w[j] = (float)((double)w[j] * s);
            }
        }
    }
}
