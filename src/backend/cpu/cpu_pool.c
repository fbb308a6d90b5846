/*
 * cpu_pool.c - MaxPool, AveragePool, GlobalMaxPool and GlobalAveragePool
 * through oneDNN pooling_v2 primitives (cpu_dnnl.h).
 *
 * ONNX's ceil_mode becomes a larger end pad for oneDNN. That is exact for
 * MaxPool (pads are -inf) and for AveragePool without count_include_pad
 * (pads are not counted), but with count_include_pad ONNX Runtime and
 * PyTorch divide by the window clipped to the explicitly padded input,
 * and oneDNN's avg_include_padding always divides by the whole kernel.
 * That case runs avg_exclude_padding and scales each output position by
 * (taps in the input) / (taps in the padded input), a table made at create.
 *
 * One exception to oneDNN: MaxPool without dilation from blocked to blocked
 * layout (every CNN's stem pool) runs pool_max_blocked below. oneDNN
 * 2.6.3's jit:avx2 max pool took 890 us for resnet18's 64x112x112 k3 s2
 * on one Zen 3 core where this loop takes 300 us (a standalone program,
 * same input, best of 5);
 * at batch 1 it also splits the channel blocks over the backend's threads
 * (oneDNN's pools ran on one thread there: OpenMP's team start cost more
 * than mobilenet_v2's 7x7 global pool).
 */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_dnnl_plan.h"
#include "backend/cpu/cpu_parallel.h"
#include "util/error.h"

struct cpu_pool {
    cpu_pool_params p;
    /* The view of vn spatial dims: 2 for 1-D and 2-D ([0] is H, 1 for
     * 1-D; [1] is W), 3 for 3-D (D, H, W); oneDNN's dilation (ONNX's - 1). */
    int vn;
    int64_t in[3], out[3];
    dnnl_dims_t k, s, d, pad_l, pad_r; /* dnnl_dims_t: what oneDNN reads */
    dnnl_alg_kind_t alg;
    float *fix; /* [output positions] divisor fix, or NULL */
    plan_cache cache;
};

static const char *pool_name(cpu_pool_kind k)
{
    switch (k) {
    case CPU_POOL_MAX: return "MaxPool";
    case CPU_POOL_AVG: return "AveragePool";
    case CPU_POOL_GLOBAL_MAX: return "GlobalMaxPool";
    case CPU_POOL_GLOBAL_AVG: return "GlobalAveragePool";
    }
    return "pool";
}

/* Taps of a window starting at `start` (dilation d, k taps) inside [lo, hi). */
static int64_t taps_in(int64_t start, int64_t k, int64_t d, int64_t lo, int64_t hi)
{
    int64_t n = 0;
    for (int64_t t = 0; t < k; t++) {
        int64_t v = start + t * d;
        n += v >= lo && v < hi;
    }
    return n;
}

/* Output positions of a plane (the product of the view's out dims). */
static int64_t pool_positions(const cpu_pool *pl)
{
    int64_t e = 1;
    for (int i = 0; i < pl->vn; i++)
        e *= pl->out[i];
    return e;
}

/* The count_include_pad divisor fix: per output position, the window's
 * taps in the input over its taps in the explicitly padded input (pe,
 * ONNX's end pads in the view). */
static void pool_fix_table(cpu_pool *pl, const int64_t *pe)
{
    int64_t np = pool_positions(pl);
    for (int64_t q = 0; q < np; q++) {
        int64_t valid = 1, padded = 1, rest = q;
        for (int i = pl->vn - 1; i >= 0; i--) {
            int64_t o = rest % pl->out[i], start = o * pl->s[i] - pl->pad_l[i];
            rest /= pl->out[i];
            valid *= taps_in(start, pl->k[i], pl->d[i] + 1, 0, pl->in[i]);
            padded *= taps_in(start, pl->k[i], pl->d[i] + 1, -pl->pad_l[i], pl->in[i] + pe[i]);
        }
        pl->fix[q] = padded ? (float)valid / (float)padded : 0.0f;
    }
}

static ferry_status pool_shape(cpu_pool *pl, const cpu_pool_params *p)
{
    const char *op = pool_name(p->kind);
    if ((unsigned)p->kind > CPU_POOL_GLOBAL_AVG)
        return ferry_fail(FERRY_EINVAL, "pool: unknown kind %d", (int)p->kind);
    if (p->rank < 1 || p->rank > 3)
        return ferry_fail(FERRY_EINVAL, "%s: spatial rank %d (1 to 3 supported)", op, p->rank);
    if (p->c < 1 || p->max_batch < 1)
        return ferry_fail(FERRY_EINVAL, "%s: channels %lld and max_batch %lld must be >= 1", op,
                          (long long)p->c, (long long)p->max_batch);
    int global = p->kind == CPU_POOL_GLOBAL_MAX || p->kind == CPU_POOL_GLOBAL_AVG;
    int off = p->rank == 1 ? 1 : 0;
    pl->vn = p->rank == 3 ? 3 : 2;
    for (int i = 0; i < 3; i++) {
        pl->in[i] = pl->k[i] = pl->s[i] = pl->out[i] = 1;
        pl->d[i] = pl->pad_l[i] = pl->pad_r[i] = 0;
    }
    int need_fix = 0;
    for (int i = 0; i < p->rank; i++) {
        int j = i + off;
        int64_t in = p->in[i];
        if (in < 1)
            return ferry_fail(FERRY_EINVAL, "%s: spatial dim %d: input %lld must be >= 1", op, i,
                              (long long)in);
        pl->in[j] = in;
        if (global) {
            pl->k[j] = in;
            continue;
        }
        int64_t k = p->kernel[i], s = p->stride[i] ? p->stride[i] : 1;
        int64_t d = p->dilation[i] ? p->dilation[i] : 1;
        int64_t pb = p->pad_begin[i], pe = p->pad_end[i];
        if (k < 1 || s < 1 || d < 1)
            return ferry_fail(FERRY_EINVAL,
                              "%s: spatial dim %d: kernel %lld, stride %lld and dilation %lld "
                              "must be >= 1",
                              op, i, (long long)k, (long long)s, (long long)d);
        int64_t keff = (k - 1) * d + 1;
        if (pb < 0 || pe < 0 || pb >= keff || pe >= keff)
            return ferry_fail(FERRY_ESHAPE,
                              "%s: spatial dim %d: pads %lld,%lld must be in [0, %lld) (the "
                              "dilated kernel's extent)",
                              op, i, (long long)pb, (long long)pe, (long long)keff);
        int64_t span = in + pb + pe - keff;
        if (span < 0)
            return ferry_fail(FERRY_ESHAPE,
                              "%s: spatial dim %d: input %lld with pads %lld,%lld is smaller "
                              "than the dilated kernel %lld",
                              op, i, (long long)in, (long long)pb, (long long)pe, (long long)keff);
        int64_t out = span / s + 1;
        if (p->ceil_mode) {
            out = (span + s - 1) / s + 1;
            if ((out - 1) * s >= in + pb) /* the last window would start in the end pad */
                out--;
        }
        /* oneDNN's end pad: the least that its floor formula turns into
         * out (never more than pe without ceil_mode, and below keff with
         * it since the last window starts inside in + pb). */
        int64_t pr = (out - 1) * s + keff - in - pb;
        if (pr < 0)
            pr = 0;
        pl->k[j] = k;
        pl->s[j] = s;
        pl->d[j] = d - 1;
        pl->pad_l[j] = pb;
        pl->pad_r[j] = pr;
        pl->out[j] = out;
        if (pr > pe)
            need_fix = 1;
    }
    switch (p->kind) {
    case CPU_POOL_MAX:
    case CPU_POOL_GLOBAL_MAX: pl->alg = dnnl_pooling_max; break;
    case CPU_POOL_GLOBAL_AVG: pl->alg = dnnl_pooling_avg_exclude_padding; break;
    case CPU_POOL_AVG:
        pl->alg = p->count_include_pad ? dnnl_pooling_avg_include_padding
                                       : dnnl_pooling_avg_exclude_padding;
        if (p->count_include_pad && need_fix) {
            pl->alg = dnnl_pooling_avg_exclude_padding;
            pl->fix = malloc((size_t)pool_positions(pl) * sizeof *pl->fix);
            if (!pl->fix)
                return ferry_fail(FERRY_ENOMEM, "%s: out of memory", op);
            int64_t pe[3] = {0, 0, 0};
            for (int i = 0; i < p->rank; i++)
                pe[i + off] = p->pad_end[i];
            pool_fix_table(pl, pe);
        }
        break;
    }
    return FERRY_OK;
}

void cpu_pool_out_dims(const cpu_pool *pl, int64_t *out)
{
    int off = pl->p.rank == 1 ? 1 : 0;
    for (int i = 0; i < pl->p.rank; i++)
        out[i] = pl->out[i + off];
}

static ferry_status pool_build(void *owner, const plan_key *key, plan *p)
{
    cpu_pool *pl = owner;
    dnnl_engine_t eng = cpu_dnnl_engine();
    if (!eng)
        return FERRY_EINTERNAL;
    int64_t n = key->n, c = pl->p.c;
    dnnl_memory_desc_t src, dst, udst;
    cpu_dnnl_md_sp(&src, n, c, pl->vn, pl->in, key->lin);
    cpu_dnnl_md_sp(&dst, n, c, pl->vn, pl->out, key->lin);
    cpu_dnnl_md_sp(&udst, n, c, pl->vn, pl->out, key->lout);
    dnnl_pooling_v2_desc_t pd_desc;
    dnnl_status_t st =
        dnnl_pooling_v2_forward_desc_init(&pd_desc, dnnl_forward_inference, pl->alg, &src, &dst,
                                          pl->s, pl->k, pl->d, pl->pad_l, pl->pad_r);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, "describing a pooling");
    dnnl_primitive_attr_t attr;
    ferry_status fst = cpu_dnnl_attr(&attr, NULL);
    if (fst != FERRY_OK)
        return fst;
    dnnl_primitive_desc_t pd;
    st = dnnl_primitive_desc_create(&pd, &pd_desc, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, "creating a pooling primitive descriptor");
    int re = key->lin != key->lout;
    if (re)
        p->t_bytes[0] = dnnl_memory_desc_get_size(&dst);
    plan_step *s = cpu_plan_step_from_pd(p, pd, &fst);
    if (!s)
        return fst;
    cpu_plan_arg_add(s, DNNL_ARG_SRC, BUF_X, &src);
    cpu_plan_arg_add(s, DNNL_ARG_DST, re ? BUF_T0 : BUF_Y, &dst);
    if (re)
        fst = cpu_plan_add_reorder(p, &dst, BUF_T0, &udst, BUF_Y);
    return fst;
}

ferry_status cpu_pool_create(const cpu_pool_params *p, cpu_pool **out)
{
    *out = NULL;
    if (!p)
        return ferry_fail(FERRY_EINVAL, "pool: NULL params");
    cpu_pool *pl = calloc(1, sizeof *pl);
    if (!pl)
        return ferry_fail(FERRY_ENOMEM, "pool: out of memory");
    pl->p = *p;
    ferry_status st = pool_shape(pl, p);
    if (st == FERRY_OK && !cpu_dnnl_engine())
        st = FERRY_EINTERNAL;
    if (st == FERRY_OK)
        st = cpu_plan_cache_init(&pl->cache);
    if (st != FERRY_OK) {
        free(pl->fix);
        free(pl);
        return st;
    }
    /* Build the batch-1 plan now, so that oneDNN's refusal shows here. */
    plan_key key = {.n = 1, .threads = 1, .lin = CPU_LAYOUT_PLAIN, .lout = CPU_LAYOUT_PLAIN};
    plan *pp;
    plan_slot *s;
    st = cpu_plan_acquire(&pl->cache, &key, pool_build, pl, &pp, &s);
    if (st != FERRY_OK) {
        cpu_pool_destroy(pl);
        return ferry_fail_prefix(st, "%s", pool_name(p->kind));
    }
    cpu_plan_release(&pl->cache, pp, s);
    *out = pl;
    return FERRY_OK;
}

enum { POOL_MAX_BLOCK = 16 };

typedef struct pool_job {
    const cpu_pool *pl;
    const float *x;
    float *y;
    int64_t planes, per; /* channel blocks in all; per chunk */
} pool_job;

/* Max over each window of channel blocks [i*per, (i+1)*per) (of every
 * sample: planes run over n * C/b) in nC[h]w<b>c, the window clipped to
 * the input: the pads are -inf for MaxPool, and without dilation every
 * window holds at least one input tap (pool_shape keeps pads below the
 * kernel and the last ceil_mode window starting inside the input). */
static void pool_max_blocked(void *arg, int64_t i)
{
    const pool_job *j = arg;
    const cpu_pool *pl = j->pl;
    int64_t b = cpu_dnnl_block();
    int64_t H = pl->in[0], W = pl->in[1], OH = pl->out[0], OW = pl->out[1];
    int64_t q1 = (i + 1) * j->per < j->planes ? (i + 1) * j->per : j->planes;
    for (int64_t q = i * j->per; q < q1; q++) {
        const float *xq = j->x + q * H * W * b;
        float *yq = j->y + q * OH * OW * b;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * pl->s[0] - pl->pad_l[0], h1 = h0 + pl->k[0];
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > H ? H : h1;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * pl->s[1] - pl->pad_l[1], w1 = w0 + pl->k[1];
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > W ? W : w1;
                float m[POOL_MAX_BLOCK];
                const float *first = xq + (h0 * W + w0) * b;
                for (int64_t e = 0; e < b; e++)
                    m[e] = first[e];
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        const float *v = xq + (h * W + w) * b;
                        for (int64_t e = 0; e < b; e++)
                            m[e] = v[e] > m[e] ? v[e] : m[e];
                    }
                memcpy(yq + (oh * OW + ow) * b, m, (size_t)b * sizeof *m);
            }
        }
    }
}

static int pool_hand_written(const cpu_pool *pl, cpu_layout lin, cpu_layout lout)
{
    return pl->p.kind == CPU_POOL_MAX && lin == CPU_LAYOUT_BLOCKED && lout == CPU_LAYOUT_BLOCKED &&
           pl->vn == 2 && pl->d[0] == 0 && pl->d[1] == 0 && cpu_dnnl_block() <= POOL_MAX_BLOCK;
}

/* y *= fix[position] for every sample and channel (block) of layout. */
static void pool_fix(const cpu_pool *pl, int64_t n, cpu_layout layout, float *y)
{
    int64_t sp = pool_positions(pl);
    int64_t b = layout == CPU_LAYOUT_BLOCKED ? cpu_dnnl_block() : 1;
    int64_t planes = cpu_layout_numel(layout, n, pl->p.c, sp) / (sp * b);
    for (int64_t q = 0; q < planes; q++) {
        float *yq = y + q * sp * b;
        for (int64_t i = 0; i < sp; i++)
            for (int64_t e = 0; e < b; e++)
                yq[i * b + e] *= pl->fix[i];
    }
}

ferry_status cpu_pool_run_layout(cpu_pool *pl, int64_t n, cpu_layout lin, cpu_layout lout,
                                 int threads, const float *x, float *y)
{
    ferry_status st = cpu_dnnl_check_batch(pool_name(pl->p.kind), n, pl->p.max_batch);
    if (st != FERRY_OK)
        return st;
    if (!x || !y)
        return ferry_fail(FERRY_EINVAL, "%s: NULL input or output", pool_name(pl->p.kind));
    if ((lin != CPU_LAYOUT_PLAIN && lin != CPU_LAYOUT_BLOCKED) ||
        (lout != CPU_LAYOUT_PLAIN && lout != CPU_LAYOUT_BLOCKED))
        return ferry_fail(FERRY_EINVAL, "%s: unknown layout", pool_name(pl->p.kind));
    if (pool_hand_written(pl, lin, lout)) {
        int64_t b = cpu_dnnl_block();
        pool_job j = {pl, x, y, n * ((pl->p.c + b - 1) / b), 1};
        /* The backend's threads when free (a lone sample; cpu_parallel_for
         * runs inline inside a chunk of a batch already split over them). */
        int T = cpu_parallel_available();
        int64_t chunks = j.planes < 4 * T ? j.planes : 4 * T;
        j.per = (j.planes + chunks - 1) / chunks;
        chunks = (j.planes + j.per - 1) / j.per;
        if (T > 1 && chunks > 1)
            cpu_parallel_for(pool_max_blocked, &j, chunks, T);
        else
            for (int64_t i = 0; i < chunks; i++)
                pool_max_blocked(&j, i);
        return FERRY_OK;
    }
    plan_key key = {.n = n, .threads = threads < 1 ? 1 : threads, .lin = lin, .lout = lout};
    plan *p;
    plan_slot *s;
    st = cpu_plan_acquire(&pl->cache, &key, pool_build, pl, &p, &s);
    if (st != FERRY_OK)
        return st;
    st = cpu_plan_execute(p, s, x, y, NULL);
    cpu_plan_release(&pl->cache, p, s);
    if (st == FERRY_OK && pl->fix)
        pool_fix(pl, n, lout, y);
    return st;
}

ferry_status cpu_pool_run(cpu_pool *pl, int64_t n, const float *x, float *y)
{
    return cpu_pool_run_layout(pl, n, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, 1, x, y);
}

void cpu_pool_destroy(cpu_pool *pl)
{
    if (!pl)
        return;
    cpu_plan_cache_destroy(&pl->cache);
    free(pl->fix);
    free(pl);
}
