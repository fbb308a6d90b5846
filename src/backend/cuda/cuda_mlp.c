/*
 * cuda_mlp.c - recognises a model that is a plain chain of dense layers
 * (Gemm + bias + activation, one input, one output) and prepares the fused
 * whole-MLP kernel of kernels_mlp.cu for it, for fp16 and bf16 at small
 * batch sizes. Anything else (another op, a width that is not a multiple of
 * 128, weights too large for shared memory, fp32/tf32) keeps the cuBLASLt
 * path: not being fusable is never an error, nor is failing to set the
 * fused kernel up.
 *
 * FERRY_CUDA_MLP_MAX_BATCH (default CUDA_MLP_DEFAULT_MAX_BATCH) is the
 * largest batch the fused kernel takes; 0 turns it off. FERRY_CUDA_ZERO_COPY=0
 * keeps the copies to and from device buffers around it. Both exist for
 * measurements and for tests that compare the paths.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

static int act_of(act_kind a)
{
    switch (a) {
    case ACT_NONE: return KERN_MLP_NO_ACT;
    case ACT_RELU: return KU_RELU;
    case ACT_GELU: return KU_GELU;
    case ACT_GELU_TANH: return KU_GELU_TANH;
    case ACT_LEAKY_RELU: return KU_LEAKY_RELU;
    case ACT_SIGMOID: return KU_SIGMOID;
    case ACT_TANH: return KU_TANH;
    default: break; /* Conv-only epilogues never reach a Gemm (fuse_conv.c) */
    }
    return KERN_MLP_NO_ACT;
}

static int64_t env_max_batch(void)
{
    const char *s = getenv("FERRY_CUDA_MLP_MAX_BATCH");
    if (!s || !*s)
        return CUDA_MLP_DEFAULT_MAX_BATCH;
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end || v < 0 ? CUDA_MLP_DEFAULT_MAX_BATCH : (int64_t)v;
}

/* Weights of node nd as [N][K] in the compute dtype on the device: the
 * uploaded constant when the node has transB=1, else a transposed copy. */
static ferry_status weights_nk(backend_ctx *c, const graph_node *nd, int64_t k, int64_t n,
                               const void **out)
{
    const graph_value *wv = &c->g->values[nd->in[1]];
    if (nd->trans_b) {
        *out = c->cdev[c->root[nd->in[1]]];
        return FERRY_OK;
    }
    float *t = malloc((size_t)(k * n) * sizeof *t);
    if (!t)
        return ferry_fail(FERRY_ENOMEM, "out of host memory transposing '%s'", wv->name);
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++)
            t[j * k + i] = cuda_host_f32(wv->dtype, wv->data, i * n + j);
    void *d = NULL;
    ferry_status st = CUDA_CHECK(cudaMalloc(&d, (size_t)(k * n) * c->celem));
    if (st == FERRY_OK)
        st = cuda_upload_f32(c, d, t, k * n);
    free(t);
    if (st != FERRY_OK) {
        if (d)
            cudaFree(d);
        return st;
    }
    c->mlp_owned[c->n_mlp_owned++] = d;
    *out = d;
    return FERRY_OK;
}

ferry_status cuda_mlp_prepare(backend_ctx *c)
{
    const graph *g = c->g;
    kern_mlp *m = &c->mlp;
    c->mlp_max = 0;
    int64_t want = env_max_batch();
    if (want == 0 || (c->cdt != FERRY_F16 && c->cdt != FERRY_BF16) || g->n_inputs != 1 ||
        g->n_outputs != 1 || c->plan.n_order < 1 || c->plan.n_order > KERN_MLP_MAX_LAYERS)
        return FERRY_OK;
    int attr = 0;
    if (cudaDeviceGetAttribute(&attr, cudaDevAttrClusterLaunch, c->device) != cudaSuccess ||
        !attr) {
        (void)cudaGetLastError();
        return FERRY_OK;
    }
    const graph_value *x = &g->values[g->inputs[0]];
    if (!cuda_is_float(x->dtype) || x->ndim != 2 || x->dims[0] != FERRY_DIM_BATCH)
        return FERRY_OK;

    memset(m, 0, sizeof *m);
    int prev = g->inputs[0];
    m->dims[0] = (int)x->dims[1];
    for (int l = 0; l < c->plan.n_order; l++) {
        int ni = c->plan.order[l];
        const graph_node *nd = &g->nodes[ni];
        const gemm_plan *gp = nd->op == OP_GEMM ? c->nodes[ni].state : NULL;
        if (!gp || nd->in[0] != prev)
            return FERRY_OK;
        const graph_value *wv = &g->values[nd->in[1]], *yv = &g->values[nd->out[0]];
        if (gp->c_matrix || gp->alpha != 1.0f || !wv->is_const || wv->ndim != 2 || yv->ndim != 2 ||
            yv->dims[0] != FERRY_DIM_BATCH)
            return FERRY_OK;
        int64_t k = nd->trans_b ? wv->dims[1] : wv->dims[0];
        int64_t n = nd->trans_b ? wv->dims[0] : wv->dims[1];
        if (k != m->dims[l] || yv->dims[1] != n || n > (1 << 20))
            return FERRY_OK;
        m->dims[l + 1] = (int)n;
        m->bias[l] = gp->bias;
        m->act[l] = act_of(nd->act);
        m->act_alpha[l] = nd->act_alpha;
        m->n_layers = l + 1;
        prev = nd->out[0];
    }
    if (prev != g->outputs[0])
        return FERRY_OK;
    size_t smem = kern_mlp_smem(m);
    int optin = 0;
    if (!smem ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device) !=
            cudaSuccess ||
        smem > (size_t)optin) {
        (void)cudaGetLastError();
        return FERRY_OK;
    }
    /* From here a failure only means no fused kernel: cuBLASLt still runs
     * the model. */
    for (int l = 0; l < m->n_layers; l++) {
        const graph_node *nd = &g->nodes[c->plan.order[l]];
        if (weights_nk(c, nd, m->dims[l], m->dims[l + 1], &m->w[l]) != FERRY_OK) {
            cuda_mlp_release(c);
            return FERRY_OK;
        }
    }
    if (kern_mlp_prepare(m, c->cdt) != cudaSuccess) {
        (void)cudaGetLastError();
        cuda_mlp_release(c);
        return FERRY_OK;
    }
    c->mlp_max = want < c->o.max_batch ? want : c->o.max_batch;
    const char *zc = getenv("FERRY_CUDA_ZERO_COPY");
    c->mlp_zero_copy = !(zc && !strcmp(zc, "0"));
    return FERRY_OK;
}

void cuda_mlp_release(backend_ctx *c)
{
    for (int i = 0; i < c->n_mlp_owned; i++)
        cudaFree(c->mlp_owned[i]);
    c->n_mlp_owned = 0;
    c->mlp_max = 0;
}

ferry_status cuda_mlp_run(backend_stream *s, int64_t n, const void *x, void *y)
{
    backend_ctx *c = s->c;
    ferry_status st =
        CUDA_CHECK(kern_mlp_run(&c->mlp, c->cdt, x, c->o.io_dtype, y, c->o.io_dtype, n, s->s));
    if (st != FERRY_OK)
        return ferry_fail_prefix(st, "fused MLP forward of %" PRId64 " samples", n);
    return FERRY_OK;
}
