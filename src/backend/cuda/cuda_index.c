/*
 * cuda_index.c - rows of the CUDA run table (cuda_ops.h) for the operators
 * that follow or produce indices: EmbeddingBag (a DLRM's sparse features,
 * graph.h's OP_EMBEDDING_BAG) and ArgMax / ArgMin, kernels in
 * kernels_index.cu; TopK (torch.topk, torch.sort), kernels in
 * kernels_topk.cu; GatherElements and ScatterElements (torch.gather,
 * scatter, scatter_add), kernels in kernels_data.cu beside Gather's.
 *
 * An index out of range cannot fail the node here as it does on the CPU:
 * finding it would take a copy back to the host and a wait on every run,
 * which a captured forward cannot hold. It gathers zero and scatters
 * nothing (as Gather and ScatterND on CUDA).
 */
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

_Static_assert(SCATTER_ADD == 1 && SCATTER_MUL == 2 && SCATTER_MAX == 3 && SCATTER_MIN == 4,
               "kern_scatter_elements numbers the reductions as graph.h");

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
    if (!cuda_is_float(x->dtype) && x->dtype != FERRY_I32 && x->dtype != FERRY_I64)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): input '%s' is %s; it runs on float, int32 and int64 "
                          "tensors on CUDA",
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
                                        nd->op == OP_ARGMAX, nd->mode,
                                        cuda_sdt(c->g->values[nd->in[0]].dtype, c->cdt), c->stream),
                        "kern_arg_reduce");
}

/* TopK along its axis (resolved by the shape rule); K is the outputs' dim
 * there, known at load, so the K input is never read on the device. */
ferry_status cuda_topk_supports(const cuda_prep *p)
{
    const graph_value *x = &p->g->values[p->nd->in[0]];
    if (!cuda_is_float(x->dtype) && x->dtype != FERRY_I32 && x->dtype != FERRY_I64)
        return cuda_unsupported(p->nd, "input '%s' is %s; it must be a float or int32/int64 tensor",
                                x->name, ferry_dtype_name(x->dtype));
    return FERRY_OK;
}

ferry_status cuda_topk_run(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    const graph_value *x = &c->g->values[nd->in[0]];
    int64_t xd[FERRY_MAX_DIMS], vd[FERRY_MAX_DIMS];
    int r = graph_value_shape(x, c->n, xd);
    graph_value_shape(&c->g->values[nd->out[0]], c->n, vd);
    int axis = nd->axis < 0 ? nd->axis + r : nd->axis;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= xd[d];
    for (int d = axis + 1; d < r; d++)
        inner *= xd[d];
    return CUDA_LAUNCH(c, kern_topk(c->in[0], c->out[0], c->out[1], outer, xd[axis], inner,
                                    vd[axis], nd->mode, cuda_sdt(x->dtype, c->cdt), c->stream));
}

/* GatherElements, ScatterElements: indices of data's rank (the shape rule
 * checked it and resolved the axis); a reduction combines in data's dtype
 * through atomics, which exist for the float dtypes and int32/int64. */
ferry_status cuda_elements_supports(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const graph_value *x = &p->g->values[nd->in[0]], *idx = &p->g->values[nd->in[1]];
    if (idx->dtype != FERRY_I64 && idx->dtype != FERRY_I32)
        return cuda_unsupported(nd, "indices must be int32 or int64");
    if (idx->ndim != x->ndim || idx->ndim > KERN_MAX_DIMS)
        return cuda_unsupported(nd, "indices must have the data's rank, at most %d", KERN_MAX_DIMS);
    /* Off the axis an index element reads (writes) data at its own
     * coordinates: the indices must fit inside data there, for every
     * batch size. */
    int axis = nd->axis < 0 ? nd->axis + x->ndim : nd->axis;
    for (int d = 0; d < x->ndim; d++) {
        int64_t a = idx->dims[d], b = x->dims[d];
        if (d != axis && ((a < 0 || b < 0) ? a != b : a > b))
            return cuda_unsupported(nd, "indices '%s' do not fit in data '%s' in dim %d", idx->name,
                                    x->name, d);
    }
    ferry_dtype dt = cuda_sdt(x->dtype, p->cdt);
    if (nd->op == OP_SCATTER_ELEMENTS && nd->mode != SCATTER_NONE && !cuda_is_float(dt) &&
        dt != FERRY_I32 && dt != FERRY_I64)
        return cuda_unsupported(nd, "a reduction over %s data is not supported",
                                ferry_dtype_name(x->dtype));
    return FERRY_OK;
}

/* The index map of node nd at batch n: the indices' dims, data's strides. */
static void elements_of(const cuda_call *c, kern_elements *d, int64_t *x_total)
{
    const graph_node *nd = c->nd;
    int64_t xd[FERRY_MAX_DIMS];
    int r = graph_value_shape(&c->g->values[nd->in[0]], c->n, xd);
    memset(d, 0, sizeof *d);
    d->ndim = graph_value_shape(&c->g->values[nd->in[1]], c->n, d->dims);
    d->axis = (int)(nd->axis < 0 ? nd->axis + r : nd->axis);
    d->axis_len = xd[d->axis];
    d->n = 1;
    for (int i = 0; i < d->ndim; i++)
        d->n *= d->dims[i];
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        d->xs[i] = acc;
        acc *= xd[i];
    }
    *x_total = acc;
}

ferry_status cuda_gather_elements_run(const cuda_call *c)
{
    kern_elements d;
    int64_t x_total;
    elements_of(c, &d, &x_total);
    int v = c->nd->in[0];
    return CUDA_LAUNCH(
        c,
        kern_gather_elements(c->in[0], c->in[1], c->g->values[c->nd->in[1]].dtype, c->out[0], &d,
                             ferry_dtype_size(cuda_sdt(c->g->values[v].dtype, c->cdt)), c->stream));
}

ferry_status cuda_scatter_elements_run(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    kern_elements d;
    int64_t x_total;
    elements_of(c, &d, &x_total);
    return CUDA_LAUNCH(c, kern_scatter_elements(c->in[0], c->in[1], c->g->values[nd->in[1]].dtype,
                                                c->in[2], c->out[0], &d, x_total, nd->mode,
                                                cuda_sdt(c->g->values[nd->in[0]].dtype, c->cdt),
                                                c->stream));
}
