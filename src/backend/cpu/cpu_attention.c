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
 * and three passes over the scores (mask, max, exp) instead of four, which
 * were a third of a head's time at T 128 (2.1 ns a score, against ~32 us
 * for each of its GEMMs, on this 2-core Zen 3 VM).
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

/* Rows of a query block never fewer than this: below it each GEMM is
 * mostly its fixed cost and re-packs K and V for little work. */
#define ATTN_MIN_BLOCK_ROWS 32

typedef struct attn_job {
    const cpu_attention_args *a;
    int64_t blocks; /* query-row blocks a head is split into */
    int64_t rows;   /* query rows a block (the last may have fewer) */
    int64_t per;    /* (b, h, block) items a chunk */
} attn_job;

/* Query rows [i0, i1) of head h of batch entry b. */
static void attend_rows(const cpu_attention_args *a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                        float *S)
{
    float *inv = S + a->Tq * a->Tk;
    int64_t d = a->d, n = i1 - i0, Tk = a->Tk;
    const float *q = a->q + b * a->q_bs + i0 * a->q_rs + h * d;
    const float *k = a->k + b * a->k_bs + h * d;
    const float *v = a->v + b * a->v_bs + h * d;
    cpu_gemm_block(0, 1, n, Tk, d, a->scale, q, a->q_rs, k, a->k_rs, S, Tk);
    const float *m =
        a->mask ? a->mask + b * a->mstride[0] + h * a->mstride[1] + i0 * a->mstride[2] : NULL;
    cpu_softmax_rows_exp(S, n, Tk, m, a->mstride[2], inv);
    float *y = a->y + b * a->y_bs + i0 * a->y_rs + h * d;
    cpu_gemm_block(0, 0, n, d, Tk, 1.0f, S, Tk, v, a->v_rs, y, a->y_rs);
    cpu_scale_rows(y, n, d, a->y_rs, inv);
}

static void attn_chunk(void *arg, int64_t c)
{
    const attn_job *j = arg;
    const cpu_attention_args *a = j->a;
    int64_t items = a->B * a->heads * j->blocks;
    int64_t i1 = (c + 1) * j->per < items ? (c + 1) * j->per : items;
    float *S = a->scratch + c * cpu_attention_slot(a->Tq, a->Tk);
    for (int64_t i = c * j->per; i < i1; i++) {
        int64_t bh = i / j->blocks, r0 = i % j->blocks * j->rows;
        int64_t r1 = r0 + j->rows < a->Tq ? r0 + j->rows : a->Tq;
        attend_rows(a, bh / a->heads, bh % a->heads, r0, r1, S);
    }
}

static int64_t most_query_blocks(int64_t Tq)
{
    return Tq / ATTN_MIN_BLOCK_ROWS > 1 ? Tq / ATTN_MIN_BLOCK_ROWS : 1;
}

int64_t cpu_attention_slots(int64_t pairs, int64_t Tq, int threads)
{
    int64_t most = 4 * (int64_t)(threads > 1 ? threads : 1), items = pairs * most_query_blocks(Tq);
    return most < items ? most : items > 0 ? items : 1;
}

/* Query-row blocks a head is split into on T threads: none while the
 * (b, h) pairs give every thread at least two and all the same number;
 * else the fewest that do, from ATTN_MIN_BLOCK_ROWS rows up. ViT's 3
 * heads at batch 1 on 2 threads went 2 + 1, one thread idle for a third
 * of the node; as 6 blocks of 99 rows they go 3 + 3. */
static int64_t query_blocks(int64_t pairs, int64_t Tq, int T)
{
    int64_t most = most_query_blocks(Tq), blocks = 1;
    while (blocks < most && (pairs * blocks < 2 * T || pairs * blocks % T))
        blocks++;
    return blocks;
}

void cpu_attention(const cpu_attention_args *a)
{
    int64_t pairs = a->B * a->heads;
    if (pairs <= 0 || a->Tq <= 0)
        return;
    if (a->Tk <= 0) { /* nothing to attend to: an empty sum */
        memset(a->y, 0, sizeof(float) * (size_t)(a->B * a->Tq * a->heads * a->d));
        return;
    }
    int T = cpu_parallel_available();
    double flops = 4.0 * (double)pairs * (double)a->Tq * (double)a->Tk * (double)a->d;
    int par = T > 1 && flops >= ATTN_PAR_MIN_FLOPS;
    attn_job j = {a, par ? query_blocks(pairs, a->Tq, T) : 1, a->Tq, 0};
    j.rows = (a->Tq + j.blocks - 1) / j.blocks;
    j.blocks = (a->Tq + j.rows - 1) / j.rows;
    int64_t items = pairs * j.blocks, chunks = par ? 4 * (int64_t)T : 1;
    chunks = chunks < items ? chunks : items;
    chunks = chunks < a->slots ? chunks : a->slots;
    j.per = (items + chunks - 1) / chunks;
    chunks = (items + j.per - 1) / j.per;
    if (chunks <= 1)
        attn_chunk(&j, 0);
    else
        cpu_parallel_for(attn_chunk, &j, chunks, T);
}
