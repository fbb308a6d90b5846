/*
 * cuda_einsum.c - the Einsum row of the CUDA run table (cuda_ops.h), in
 * the layout every backend computes it in (src/graph/einsum.h): each
 * operand transposed into scratch unless its transpose is the identity
 * (one strided copy each), one batched cuBLASLt matmul [bt, M, K] x [bt,
 * K, N] through a gemm plan (cuda_gemm.c), and the product transposed
 * into the output unless that transpose too is the identity. With one
 * input the Einsum is a transpose.
 */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "graph/einsum.h"
#include "util/error.h"

/* Bytes of scratch for one primed tensor, rounded so that the next one
 * stays as aligned as the scratch itself (256 bytes, cuda_model.c). */
static size_t part_bytes(int64_t elems, size_t esz)
{
    return ((size_t)elems * esz + 255) & ~(size_t)255;
}

static ferry_status supports_einsum(const cuda_prep *p)
{
    if (p->nd->mode < 1 || p->nd->mode > 2)
        return cuda_unsupported(p->nd, "%d inputs are not supported", p->nd->mode);
    return cuda_supports_float(p);
}

static ferry_status prepare_einsum(cuda_prep *p, void **state)
{
    const graph_node *nd = p->nd;
    if (nd->mode < 2)
        return FERRY_OK; /* a transpose: no plan, no scratch */
    einsum_layout l;
    einsum_layout_of(nd, &l);
    size_t esz = ferry_dtype_size(p->cdt);
    p->scratch = 0;
    if (!l.id_a)
        p->scratch += part_bytes(graph_value_numel(&p->g->values[nd->in[0]], p->max_batch), esz);
    if (!l.id_b)
        p->scratch += part_bytes(graph_value_numel(&p->g->values[nd->in[1]], p->max_batch), esz);
    if (!l.id_y)
        p->scratch += part_bytes(graph_value_numel(&p->g->values[nd->out[0]], p->max_batch), esz);
    return cuda_gemm_node_prepare(p, state);
}

/* dst (dense) = src (dense, n dims d) transposed: dim i of dst is dim
 * perm[i] of src. */
static ferry_status permute(const cuda_call *c, const void *src, int n, const int64_t *d,
                            const int *perm, void *dst)
{
    int64_t st[FERRY_MAX_DIMS], dd[FERRY_MAX_DIMS], sx[FERRY_MAX_DIMS], acc = 1;
    for (int i = n - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= d[i];
    }
    for (int i = 0; i < n; i++) {
        dd[i] = d[perm[i]];
        sx[i] = st[perm[i]];
    }
    return cuda_copy_dense(c, src, dst, n, dd, sx, ferry_dtype_size(c->cdt));
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t e = 1;
    for (int i = from; i < to; i++)
        e *= d[i];
    return e;
}

static ferry_status run_einsum(const cuda_call *c)
{
    const graph_node *nd = c->nd;
    einsum_layout l;
    einsum_layout_of(nd, &l);
    int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
    int na = graph_value_shape(&c->g->values[nd->in[0]], c->n, ad);
    int ny = graph_value_shape(&c->g->values[nd->out[0]], c->n, yd);
    if (nd->mode < 2)
        return permute(c, c->in[0], na, ad, l.perm_y, c->out[0]);
    if (prod(yd, 0, ny) == 0)
        return FERRY_OK;
    int nb = graph_value_shape(&c->g->values[nd->in[1]], c->n, bd);
    size_t esz = ferry_dtype_size(c->cdt);
    char *scratch = c->scratch;
    const void *ap = c->in[0], *bp = c->in[1];
    ferry_status st;
    if (!l.id_a) {
        if ((st = permute(c, c->in[0], na, ad, l.perm_a, scratch)))
            return st;
        ap = scratch;
        scratch += part_bytes(prod(ad, 0, na), esz);
    }
    if (!l.id_b) {
        if ((st = permute(c, c->in[1], nb, bd, l.perm_b, scratch)))
            return st;
        bp = scratch;
        scratch += part_bytes(prod(bd, 0, nb), esz);
    }
    /* Y' [batch, free of A, free of B]: dims as in A' and B' */
    int64_t pd[FERRY_MAX_DIMS];
    int fa = l.n_batch + l.n_free_a, kb = l.n_batch + l.n_contract;
    for (int i = 0; i < fa; i++)
        pd[i] = ad[l.perm_a[i]];
    for (int i = 0; i < l.n_free_b; i++)
        pd[fa + i] = bd[l.perm_b[kb + i]];
    void *yp = l.id_y ? c->out[0] : scratch;
    int64_t k = 1;
    for (int i = fa; i < na; i++)
        k *= ad[l.perm_a[i]];
    if (k == 0) /* an empty sum: cuBLASLt takes no empty K */
        st = CUDA_LAUNCH(c, kern_fill(yp, prod(yd, 0, ny), 0, esz, c->stream));
    else
        st = cuda_gemm_run_ptrs(c->s, c->state, c->n, ap, bp, yp);
    if (st || l.id_y)
        return st;
    return permute(c, yp, ny, pd, l.perm_y, c->out[0]);
}

static void destroy_einsum(void *state)
{
    if (!state)
        return;
    cuda_gemm_release(state);
    free(state);
}

const cuda_op_impl cuda_einsum_row = {supports_einsum, prepare_einsum, run_einsum, destroy_einsum};
