/*
 * attention_ref.h - multi-head attention in double, the reference of the
 * fused attention node's tests (test_cpu_ops.c, test_cuda_backend.c):
 * row i of head h of batch entry b of y = sum_t softmax_t(scale * q_bhi . k_bht + mask) v_bht,
 * q_bhi = q[b*bs[0] + i*rs[0] + off[0] + h*d + (0..d)], k and v alike
 * (their own strides and offsets), y's row at b*bs[3] + i*rs[3].
 */
#ifndef FERRY_TESTS_BACKEND_ATTENTION_REF_H
#define FERRY_TESTS_BACKEND_ATTENTION_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct attn_ref {
    int64_t B, H, Tq, Tk, d;
    int64_t bs[4], rs[4]; /* Q, K, V, Y: strides of a batch entry, of a position */
    int64_t off[3];       /* Q, K, V: column of head 0 */
    double scale;
    const float *mask;  /* NULL: none */
    int64_t mstride[3]; /* the mask row of (b, h, i): b*ms[0] + h*ms[1] + i*ms[2] */
} attn_ref;

/* y: as many doubles as its strides reach (B * Tq * H * d when dense). */
static inline void attention_ref(const attn_ref *r, const float *q, const float *k,
                                 const float *v, double *y)
{
    double *s = malloc(sizeof(double) * (size_t)r->Tk);
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t h = 0; h < r->H; h++)
            for (int64_t i = 0; i < r->Tq; i++) {
                const float *qi = q + b * r->bs[0] + i * r->rs[0] + r->off[0] + h * r->d;
                const float *m = r->mask ? r->mask + b * r->mstride[0] + h * r->mstride[1] +
                                               i * r->mstride[2]
                                         : NULL;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t t = 0; t < r->Tk; t++) {
                    const float *kt = k + b * r->bs[1] + t * r->rs[1] + r->off[1] + h * r->d;
                    double dot = 0.0;
                    for (int64_t j = 0; j < r->d; j++)
                        dot += (double)qi[j] * kt[j];
                    s[t] = r->scale * dot + (m ? m[t] : 0.0);
                    mx = s[t] > mx ? s[t] : mx;
                }
                for (int64_t t = 0; t < r->Tk; t++)
                    sum += (s[t] = exp(s[t] - mx));
                double *yi = y + b * r->bs[3] + i * r->rs[3] + h * r->d;
                const float *vb = v + b * r->bs[2] + r->off[2] + h * r->d;
                for (int64_t j = 0; j < r->d; j++) {
                    double acc = 0.0;
                    for (int64_t t = 0; t < r->Tk; t++)
                        acc += s[t] * vb[t * r->rs[2] + j];
                    yi[j] = acc / sum;
                }
            }
    free(s);
}

#endif
