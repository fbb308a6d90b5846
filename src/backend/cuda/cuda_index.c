/*
 * cuda_index.c - rows of the CUDA run table (cuda_ops.h) for the operators
 * that follow or produce indices: EmbeddingBag (a DLRM's sparse features,
 * graph.h's OP_EMBEDDING_BAG) and ArgMax / ArgMin. Kernels in
 * kernels_index.cu.
 */
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

static ferry_status index_launch(const cuda_call *c, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return FERRY_OK;
    ferry_status st = cuda_status_rt(e, what, __FILE__, __LINE__);
    return ferry_fail_prefix(st, "node '%s' (%s)", c->nd->name, op_name(c->nd->op));
}

ferry_status cuda_embedding_bag_supports(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const graph_value *w = &p->g->values[nd->in[0]], *x = &p->g->values[nd->in[1]];
    if (!cuda_is_float(w->dtype) || w->ndim != 2)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (EmbeddingBag): the table must be a 2-D float tensor on CUDA",
                          nd->name);
    if ((x->dtype != FERRY_I64 && x->dtype != FERRY_I32) || x->ndim != 2)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (EmbeddingBag): the ids must be a 2-D int32/int64 tensor on "
                          "CUDA",
                          nd->name);
    return FERRY_OK;
}

ferry_status cuda_embedding_bag_run(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t wd[FERRY_MAX_DIMS], xd[FERRY_MAX_DIMS];
    graph_value_shape(&c->g->values[nd->in[0]], c->n, wd);
    graph_value_shape(&c->g->values[nd->in[1]], c->n, xd);
    return index_launch(c,
                        kern_embedding_bag(c->in[0], c->in[1], c->g->values[nd->in[1]].dtype,
                                           c->out[0], xd[0], xd[1], wd[0], wd[1], nd->mode, c->cdt,
                                           c->stream),
                        "kern_embedding_bag");
}

ferry_status cuda_arg_supports(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const graph_value *x = &p->g->values[nd->in[0]];
    if (!cuda_is_float(x->dtype))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): input '%s' is %s; it runs on float tensors on CUDA",
                          nd->name, op_name(nd->op), x->name, ferry_dtype_name(x->dtype));
    return FERRY_OK;
}

ferry_status cuda_arg_run(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    int64_t xd[FERRY_MAX_DIMS];
    int r = graph_value_shape(&c->g->values[nd->in[0]], c->n, xd);
    int axis = (int)(nd->axis < 0 ? nd->axis + r : nd->axis);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= xd[d];
    for (int d = axis + 1; d < r; d++)
        inner *= xd[d];
    return index_launch(c,
                        kern_arg_reduce(c->in[0], c->out[0], outer, xd[axis], inner,
                                        nd->op == OP_ARGMAX, nd->mode, c->cdt, c->stream),
                        "kern_arg_reduce");
}
