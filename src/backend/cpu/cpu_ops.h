/*
 * cpu_ops.h - the CPU backend's run table: for each op_kind it supports, a
 * prepare function (checks the node, builds what it reuses: a oneDNN
 * primitive, repacked RNN weights), a run function and a destroy. An op
 * without a row is not supported, and ctx_create names it. Private to
 * src/backend/cpu.
 *
 * Storage: floating tensors are f32 (f16/bf16/f64 constants are converted
 * once), integer tensors keep their dtype, bool is one byte.
 */
#ifndef FERRY_BACKEND_CPU_OPS_H
#define FERRY_BACKEND_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* What prepare sees. cin[k] is input k's data when it is a constant (in its
 * stored dtype), else NULL. */
typedef struct cpu_prep {
    const graph *g;
    const graph_node *nd;
    int64_t max_batch;
    const void *cin[GRAPH_MAX_IO];
    size_t scratch; /* out: bytes of scratch one run needs at max_batch */
} cpu_prep;

/* One run of a node on a batch of n. */
typedef struct cpu_call {
    const graph *g;
    const graph_node *nd;
    void *state;
    int64_t n;
    const void *in[GRAPH_MAX_IO]; /* NULL for an absent input */
    void *out[GRAPH_MAX_IO];      /* NULL for an absent output */
    void *scratch;                /* cpu_prep.scratch bytes, 64-byte aligned */
    int threads;                  /* threads a kernel may use (1 when workers share cores) */
    int lin, lout;                /* cpu_layout of input 0 and output 0 (Conv, pools) */
} cpu_call;

/* Whether op may read (input 0, or a Conv's residual) and write a value in
 * oneDNN's blocked layout (cpu_dnnl.h): Conv, ConvTranspose and the
 * pools; a chain of them keeps its activations blocked, reordered only
 * where it starts and ends (cpu_backend.c decides). */
int cpu_op_blocked_ok(op_kind op);

typedef struct cpu_op_impl {
    ferry_status (*prepare)(cpu_prep *p, void **state); /* NULL: nothing to check or build */
    ferry_status (*run)(const cpu_call *c);
    void (*destroy)(void *state); /* NULL: state is NULL */
} cpu_op_impl;

/* The row for op, or NULL when the CPU backend does not run it. */
const cpu_op_impl *cpu_op_get(op_kind op);

/* Stored dtype of a graph dtype. */
static inline ferry_dtype cpu_sdt(ferry_dtype dt)
{
    return (dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64) ? FERRY_F32 : dt;
}

#endif
