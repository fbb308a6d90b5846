/*
 * cpu_iter.h - ONNX shape broadcasting and the strided n-d iterator that
 * the CPU backend's data-movement and elementwise kernels (cpu_data.h,
 * cpu_elem.h) share, so that there is one broadcasting implementation.
 *
 * An iterator walks a dense output of some dims together with up to
 * CPU_ITER_MAX_OPS operands, each described by an element stride per
 * output dim (0 on a broadcast dim, negative for a reversed Slice). Dims
 * of size 1 are dropped and neighbours that every operand steps through
 * as one (stride[d] == stride[d+1] * dim[d+1]) are merged, so that equal
 * shapes become one flat loop, a row vector over a matrix two loops, and
 * the kernel's inner loop (the last merged dim) is as long as it can be.
 * Kernels specialize that inner loop on its strides (0 or 1 for
 * broadcasting) and step the outer dims with cpu_iter_next.
 * Private to src/backend/cpu; reentrant (no state outside the struct).
 */
#ifndef FERRY_BACKEND_CPU_ITER_H
#define FERRY_BACKEND_CPU_ITER_H

#include <stdint.h>

#include "ferry.h"

/* Operands an iterator carries: Where's output, condition and two values. */
#define CPU_ITER_MAX_OPS 4
/* Dims an iterator carries: Tile views its output as [repeat, dim] pairs. */
#define CPU_ITER_MAX_DIMS (2 * FERRY_MAX_DIMS)

typedef struct cpu_iter {
    int nd;        /* merged dims, >= 1; dim[nd-1] is the inner loop */
    int nops;      /* operands */
    int64_t inner; /* dim[nd-1] */
    int64_t outer; /* product of the other dims: calls of the inner loop; 0 if empty */
    int64_t dim[CPU_ITER_MAX_DIMS];
    int64_t st[CPU_ITER_MAX_OPS][CPU_ITER_MAX_DIMS]; /* element strides */
    /* position of the next inner loop: index of each outer dim and the
     * element offset of each operand */
    int64_t idx[CPU_ITER_MAX_DIMS];
    int64_t off[CPU_ITER_MAX_OPS];
} cpu_iter;

/* ONNX (numpy) multidirectional broadcast of shapes a[an] and b[bn] into
 * out (room for FERRY_MAX_DIMS), *on = max(an, bn). Returns 0, or -1 if
 * some dim pair differs with neither being 1. out may alias a or b. */
int cpu_broadcast_shape(const int64_t *a, int an, const int64_t *b, int bn, int64_t *out, int *on);

/* Element strides st[on] of a dense tensor of dims d[n] read as if
 * broadcast to out dims od[on] (right-aligned, n <= on): 0 on dims that
 * are missing or 1 where the output is not 1. */
void cpu_broadcast_strides(const int64_t *d, int n, const int64_t *od, int on, int64_t *st);

/* Dense row-major element strides of dims d[n]. */
void cpu_dense_strides(const int64_t *d, int n, int64_t *st);

/* Sets up *it over dims[nd] (nd <= CPU_ITER_MAX_DIMS, every dim >= 0)
 * with operand k stepping st[k][d] elements along dim d, merging and
 * dropping dims as above, positioned at the start (offsets 0: the caller
 * adds each operand's base). */
void cpu_iter_init(cpu_iter *it, const int64_t *dims, int nd, int nops,
                   const int64_t (*st)[CPU_ITER_MAX_DIMS]);

/* The common case: a dense output of dims od[on] (operand 0) and nin
 * inputs of dims d[k][n[k]] broadcast onto it (operands 1..nin). */
void cpu_iter_broadcast(cpu_iter *it, const int64_t *od, int on, int nin, const int64_t *const *d,
                        const int *n);

/* The inner stride of operand k. */
static inline int64_t cpu_iter_inner_stride(const cpu_iter *it, int k)
{
    return it->st[k][it->nd - 1];
}

/* Advances to the next inner loop (odometer over dims 0..nd-2). */
static inline void cpu_iter_next(cpu_iter *it)
{
    for (int d = it->nd - 2; d >= 0; d--) {
        it->idx[d]++;
        for (int k = 0; k < it->nops; k++)
            it->off[k] += it->st[k][d];
        if (it->idx[d] < it->dim[d])
            return;
        for (int k = 0; k < it->nops; k++)
            it->off[k] -= it->st[k][d] * it->dim[d];
        it->idx[d] = 0;
    }
}

/* Positions *it at inner loop number o (0 <= o <= outer): for splitting a
 * job into chunks. */
void cpu_iter_seek(cpu_iter *it, int64_t o);

/* A kernel's body for cpu_iter_run: count inner loops of it->inner
 * elements from *it's position, stepping with cpu_iter_next. */
typedef void (*cpu_iter_fn)(void *arg, cpu_iter *it, int64_t count);

/* Runs fn over every inner loop of *it (left unchanged). Jobs of at least
 * 2 * grain elements are cut into chunks of at least grain elements (whole
 * inner loops, or pieces of them when there are few) and run on the
 * backend's threads (cpu_parallel_for); smaller ones, or any while the
 * threads are busy, run in one call on the caller. */
void cpu_iter_run(const cpu_iter *it, cpu_iter_fn fn, void *arg, int64_t grain);

#endif
