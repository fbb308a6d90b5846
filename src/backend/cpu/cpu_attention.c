/*
 * cpu_attention.c - the fused multi-head attention node (graph
 * fuse_attention.c) on the CPU: per (batch entry, head), two BLAS calls and
 * a softmax over rows that are still in cache.
 *
 * The unfused graph copies Q, K, V and the output through four Transposes
 * and writes the scores [B, H, Tq, Tk] to memory and reads them back twice
 * (the softmax, then P V). Here each head is read in place from its
 * projection (the GEMMs take the source's row width as their leading dim),
 * the scores of one head ([Tq, Tk], 64 KB at T 128) are made, scaled by the
 * first GEMM's alpha, masked and exponentiated in one chunk-private slot,
 * P V is written straight into the head's columns of Y [B, Tq, H*d], and
 * only then divided by the row sums: Tq x d divisions instead of Tq x Tk,
 * and two passes over the scores instead of four (mask, max, exp, scale),
 * which were a third of a head's time at T 128 (2.1 ns a score, against
 * ~32 us for each of its GEMMs, on this 2-core Zen 3 VM).
 *
 * Heads are independent and each is small (T x d by d x T), so the work is
 * split by (b, h), one single-threaded BLAS call each, as cpu_matmul does
 * for attention's batched products, rather than each GEMM over the threads
 * with a hand-off per product.
 */
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_parallel.h"

/* Below this many flops the node runs on the calling thread: a hand-off
 * costs a few microseconds (the test models' 4 heads of 16 x 16). */
#define ATTN_PAR_MIN_FLOPS 2.0e5

typedef struct attn_job {
    const cpu_attention_args *a;
    int64_t per; /* (b, h) pairs a chunk */
} attn_job;

static void attend_head(const cpu_attention_args *a, int64_t b, int64_t h, float *S)
{
    float *inv = S + a->Tq * a->Tk;
    int64_t d = a->d, Tq = a->Tq, Tk = a->Tk;
    const float *q = a->q + b * a->q_bs + h * d;
    const float *k = a->k + b * a->k_bs + h * d;
    const float *v = a->v + b * a->v_bs + h * d;
    cpu_gemm_block(0, 1, Tq, Tk, d, a->scale, q, a->q_rs, k, a->k_rs, S, Tk);
    const float *m = a->mask ? a->mask + b * a->mstride[0] + h * a->mstride[1] : NULL;
    cpu_softmax_rows_exp(S, Tq, Tk, m, a->mstride[2], inv);
    float *y = a->y + b * a->y_bs + h * d;
    cpu_gemm_block(0, 0, Tq, d, Tk, 1.0f, S, Tk, v, a->v_rs, y, a->y_rs);
    cpu_scale_rows(y, Tq, d, a->y_rs, inv);
}

static void attn_chunk(void *arg, int64_t c)
{
    const attn_job *j = arg;
    const cpu_attention_args *a = j->a;
    int64_t items = a->B * a->heads, i1 = (c + 1) * j->per < items ? (c + 1) * j->per : items;
    float *S = a->scratch + c * cpu_attention_slot(a->Tq, a->Tk);
    for (int64_t i = c * j->per; i < i1; i++)
        attend_head(a, i / a->heads, i % a->heads, S);
}

void cpu_attention(const cpu_attention_args *a)
{
    int64_t items = a->B * a->heads;
    if (items <= 0 || a->Tq <= 0)
        return;
    if (a->Tk <= 0) { /* nothing to attend to: an empty sum */
        memset(a->y, 0, sizeof(float) * (size_t)(a->B * a->Tq * a->heads * a->d));
        return;
    }
    int T = cpu_parallel_available();
    double flops = 4.0 * (double)items * (double)a->Tq * (double)a->Tk * (double)a->d;
    int64_t chunks = T > 1 && flops >= ATTN_PAR_MIN_FLOPS ? 4 * (int64_t)T : 1;
    chunks = chunks < items ? chunks : items;
    chunks = chunks < a->slots ? chunks : a->slots;
    attn_job j = {a, (items + chunks - 1) / chunks};
    chunks = (items + j.per - 1) / j.per;
    if (chunks <= 1)
        attn_chunk(&j, 0);
    else
        cpu_parallel_for(attn_chunk, &j, chunks, T);
}
