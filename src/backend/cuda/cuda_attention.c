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
    const graph *g = c->g;
    size_t esz = ferry_dtype_size(c->cdt);
    int64_t qd[FERRY_MAX_DIMS], kd[FERRY_MAX_DIMS], vd[FERRY_MAX_DIMS];
    graph_value_shape(&g->values[nd->in[0]], c->n, qd);
    graph_value_shape(&g->values[nd->in[1]], c->n, kd);
    graph_value_shape(&g->values[nd->in[2]], c->n, vd);
    kern_attention a;
    memset(&a, 0, sizeof a);
    a.q = column(c, 0, esz);
    a.k = column(c, 1, esz);
    a.v = column(c, 2, esz);
    a.ldq = qd[2];
    a.ldk = kd[2];
    a.ldv = vd[2];
    a.y = c->out[0];
    a.B = (int)qd[0];
    a.heads = (int)nd->heads;
    a.Tq = (int)qd[1];
    a.Tk = (int)kd[1];
    a.d = (int)nd->head_dim;
    a.scale = nd->alpha;
    if (nd->n_in > 3 && nd->in[3] >= 0) {
        int64_t md[FERRY_MAX_DIMS], sd[4] = {a.B, a.heads, a.Tq, a.Tk}, ms[4];
        int mn = graph_value_shape(&g->values[nd->in[3]], c->n, md);
        graph_mask_strides(sd, 4, md, mn, ms);
        a.mask = c->in[3];
        memcpy(a.mstride, ms, sizeof a.mstride);
    }
    return CUDA_LAUNCH(c, kern_attention_run(&a, c->cdt, c->stream));
}

const cuda_op_impl cuda_attention_row = {supports_attention, prepare_attention, run_attention,
                                         NULL};
