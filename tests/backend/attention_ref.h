/*
 * attention_ref.h - multi-head attention in double, the reference of the
 * fused attention node's tests (test_cpu_ops.c, test_cuda_backend.c):
 * y[b, i, h*d + j] = sum_t softmax_t(scale * q_bhi . k_bht + mask) v[b, t, h*d + j],
 * each source row-major [B, T, ld] with the heads' columns from its offset.
 */
#ifndef FERRY_TESTS_BACKEND_ATTENTION_REF_H
#define FERRY_TESTS_BACKEND_ATTENTION_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct attn_ref {
    int64_t B, H, Tq, Tk, d;
    int64_t ld[3], off[3]; /* Q, K, V: row width, column of head 0 */
    double scale;
    const float *mask;  /* NULL: none */
    int64_t mstride[3]; /* the mask row of (b, h, i): b*ms[0] + h*ms[1] + i*ms[2] */
} attn_ref;

/* y: B * Tq * H * d doubles. */
static inline void attention_ref(const attn_ref *r, const float *q, const float *k,
                                 const float *v, double *y)
{
    double *s = malloc(sizeof(double) * (size_t)r->Tk);
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t h = 0; h < r->H; h++)
            for (int64_t i = 0; i < r->Tq; i++) {
                const float *qi = q + (b * r->Tq + i) * r->ld[0] + r->off[0] + h * r->d;
                const float *m = r->mask ? r->mask + b * r->mstride[0] + h * r->mstride[1] +
                                               i * r->mstride[2]
                                         : NULL;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t t = 0; t < r->Tk; t++) {
                    const float *kt = k + (b * r->Tk + t) * r->ld[1] + r->off[1] + h * r->d;
                    double dot = 0.0;
                    for (int64_t j = 0; j < r->d; j++)
                        dot += (double)qi[j] * kt[j];
                    s[t] = r->scale * dot + (m ? m[t] : 0.0);
                    mx = s[t] > mx ? s[t] : mx;
                }
                for (int64_t t = 0; t < r->Tk; t++)
                    sum += (s[t] = exp(s[t] - mx));
                double *yi = y + (b * r->Tq + i) * r->H * r->d + h * r->d;
                for (int64_t j = 0; j < r->d; j++) {
                    double acc = 0.0;
                    for (int64_t t = 0; t < r->Tk; t++)
                        acc += s[t] * v[(b * r->Tk + t) * r->ld[2] + r->off[2] + h * r->d + j];
                    yi[j] = acc / sum;
                }
            }
    free(s);
}

#endif
