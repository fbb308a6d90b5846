/*
 * cpu_iter.c - shape broadcasting and the strided n-d iterator (see
 * cpu_iter.h for the contract).
 */
#include "backend/cpu/cpu_iter.h"

#include <assert.h>
#include <string.h>

#include "backend/cpu/cpu_parallel.h"

int cpu_broadcast_shape(const int64_t *a, int an, const int64_t *b, int bn, int64_t *out, int *on)
{
    int n = an > bn ? an : bn;
    int64_t r[FERRY_MAX_DIMS];
    assert(n <= FERRY_MAX_DIMS);
    for (int d = 0; d < n; d++) {
        int ai = d - (n - an), bi = d - (n - bn);
        int64_t av = ai >= 0 ? a[ai] : 1, bv = bi >= 0 ? b[bi] : 1;
        if (av == bv || bv == 1)
            r[d] = av;
        else if (av == 1)
            r[d] = bv;
        else
            return -1;
    }
    memcpy(out, r, (size_t)n * sizeof *r);
    *on = n;
    return 0;
}

void cpu_dense_strides(const int64_t *d, int n, int64_t *st)
{
    int64_t p = 1;
    for (int i = n - 1; i >= 0; i--) {
        st[i] = p;
        p *= d[i];
    }
}

void cpu_broadcast_strides(const int64_t *d, int n, const int64_t *od, int on, int64_t *st)
{
    int64_t p = 1;
    for (int i = on - 1; i >= 0; i--) {
        int j = i - (on - n);
        int64_t v = j >= 0 ? d[j] : 1;
        assert(v == od[i] || v == 1);
        st[i] = j < 0 || v == 1 ? 0 : p; /* a size-1 output dim is dropped anyway */
        p *= v;
    }
}

void cpu_iter_init(cpu_iter *it, const int64_t *dims, int nd, int nops,
                   const int64_t (*st)[CPU_ITER_MAX_DIMS])
{
    assert(nd <= CPU_ITER_MAX_DIMS && nops <= CPU_ITER_MAX_OPS);
    int m = 0;
    int64_t total = 1;
    it->nops = nops;
    for (int d = 0; d < nd; d++) {
        total *= dims[d];
        if (dims[d] == 1)
            continue;
        /* Merge d into the previous kept dim when every operand steps
         * through the pair as one. */
        int merge = m > 0;
        for (int k = 0; merge && k < nops; k++)
            merge = it->st[k][m - 1] == st[k][d] * dims[d];
        if (merge) {
            it->dim[m - 1] *= dims[d];
            for (int k = 0; k < nops; k++)
                it->st[k][m - 1] = st[k][d];
            continue;
        }
        it->dim[m] = dims[d];
        for (int k = 0; k < nops; k++)
            it->st[k][m] = st[k][d];
        m++;
    }
    if (m == 0) { /* a scalar */
        it->dim[0] = 1;
        for (int k = 0; k < nops; k++)
            it->st[k][0] = 0;
        m = 1;
    }
    it->nd = m;
    it->inner = it->dim[m - 1];
    it->outer = total == 0 ? 0 : 1;
    for (int d = 0; d < m - 1; d++)
        it->outer *= it->dim[d];
    memset(it->idx, 0, sizeof it->idx);
    memset(it->off, 0, sizeof it->off);
}

void cpu_iter_broadcast(cpu_iter *it, const int64_t *od, int on, int nin, const int64_t *const *d,
                        const int *n)
{
    int64_t st[CPU_ITER_MAX_OPS][CPU_ITER_MAX_DIMS];
    assert(nin + 1 <= CPU_ITER_MAX_OPS && on <= FERRY_MAX_DIMS);
    cpu_dense_strides(od, on, st[0]);
    for (int k = 0; k < nin; k++)
        cpu_broadcast_strides(d[k], n[k], od, on, st[k + 1]);
    cpu_iter_init(it, od, on, nin + 1, (const int64_t(*)[CPU_ITER_MAX_DIMS])st);
}

void cpu_iter_seek(cpu_iter *it, int64_t o)
{
    for (int k = 0; k < it->nops; k++)
        it->off[k] = 0;
    for (int d = it->nd - 2; d >= 0; d--) {
        int64_t i = o % it->dim[d];
        o /= it->dim[d];
        it->idx[d] = i;
        for (int k = 0; k < it->nops; k++)
            it->off[k] += i * it->st[k][d];
    }
}

/* A cpu_iter_run job: chunk c is `per` whole inner loops from c * per
 * (split == 1), or piece c % split of inner loop c / split. */
typedef struct iter_job {
    const cpu_iter *it;
    cpu_iter_fn fn;
    void *arg;
    int64_t per, split;
} iter_job;

static void iter_chunk(void *arg, int64_t c)
{
    const iter_job *j = arg;
    cpu_iter it = *j->it;
    if (j->split == 1) {
        int64_t o0 = c * j->per, o1 = o0 + j->per < it.outer ? o0 + j->per : it.outer;
        cpu_iter_seek(&it, o0);
        j->fn(j->arg, &it, o1 - o0);
        return;
    }
    int64_t part = c % j->split, L = it.inner;
    int64_t i0 = part * L / j->split, i1 = (part + 1) * L / j->split;
    cpu_iter_seek(&it, c / j->split);
    for (int k = 0; k < it.nops; k++)
        it.off[k] += i0 * it.st[k][it.nd - 1];
    it.inner = i1 - i0;
    j->fn(j->arg, &it, 1);
}

void cpu_iter_run(const cpu_iter *it, cpu_iter_fn fn, void *arg, int64_t grain)
{
    int64_t total = it->outer * it->inner;
    int T = grain > 0 && total >= 2 * grain ? cpu_parallel_available() : 1;
    if (T <= 1) {
        cpu_iter c = *it;
        fn(arg, &c, it->outer);
        return;
    }
    /* A few chunks a thread, so that a thread slowed by another process
     * hands its share to the others. */
    int64_t want = (int64_t)T * 4 < total / grain ? (int64_t)T * 4 : total / grain;
    iter_job j = {.it = it, .fn = fn, .arg = arg, .per = 1, .split = 1};
    int64_t n;
    if (it->outer >= want) {
        j.per = (it->outer + want - 1) / want;
        n = (it->outer + j.per - 1) / j.per;
    } else {
        j.split = (want + it->outer - 1) / it->outer;
        n = it->outer * j.split;
    }
    cpu_parallel_for(iter_chunk, &j, n, T);
}
