/*
 * cuda_attention.c - the CUDA run-table row (cuda_ops.h) of the fused
 * multi-head attention node (graph fuse_attention.c); its kernels, and why
 * they are shaped so, are in kernels_attention.cu.
 */
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

static ferry_status supports_attention(const cuda_prep *p)
{
    if (p->nd->head_dim < 1 || p->nd->head_dim > KERN_ATTN_MAX_D)
        return cuda_unsupported(p->nd, "head_dim %lld (at most %d)", (long long)p->nd->head_dim,
                                KERN_ATTN_MAX_D);
    return cuda_supports_float(p);
}

/* Raises the kernels' shared memory limit once, outside any capture. */
static ferry_status prepare_attention(cuda_prep *p, void **state)
{
    *state = NULL;
    cudaError_t e = kern_attention_prepare((int)p->nd->head_dim, p->cdt);
    if (e != cudaSuccess)
        return ferry_fail_prefix(cuda_status_rt(e, "kern_attention_prepare", __FILE__, __LINE__),
                                 "node '%s' (%s)", p->nd->name, op_name(p->nd->op));
    return FERRY_OK;
}

static const void *column(const cuda_call *c, int k, size_t esz)
{
    return (const char *)c->in[k] + c->nd->starts[k] * (int64_t)esz;
}

static ferry_status run_attention(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    size_t esz = ferry_dtype_size(c->cdt);
    graph_attention ga;
    graph_attention_of(c->g, nd, c->n, &ga);
    kern_attention a = {
        .q = column(c, 0, esz),
        .k = column(c, 1, esz),
        .v = column(c, 2, esz),
        .q_bs = ga.bs[0],
        .k_bs = ga.bs[1],
        .v_bs = ga.bs[2],
        .y_bs = ga.bs[3],
        .q_rs = ga.rs[0],
        .k_rs = ga.rs[1],
        .v_rs = ga.rs[2],
        .y_rs = ga.rs[3],
        .mask = nd->n_in > 3 && nd->in[3] >= 0 ? c->in[3] : NULL,
        .mstride = {ga.mstride[0], ga.mstride[1], ga.mstride[2]},
        .y = c->out[0],
        .B = (int)ga.B,
        .heads = (int)ga.heads,
        .Tq = (int)ga.Tq,
        .Tk = (int)ga.Tk,
        .d = (int)ga.d,
        .scale = nd->alpha,
    };
    return CUDA_LAUNCH(c, kern_attention_run(&a, c->cdt, c->stream));
}

const cuda_op_impl cuda_attention_row = {supports_attention, prepare_attention, run_attention,
                                         NULL};
