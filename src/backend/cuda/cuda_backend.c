/*
 * cuda_backend.c - the "cuda" backend table: device probing, contexts
 * (graph checked, constants converted once and uploaded, arena planned),
 * streams with their own cuBLASLt handle and workspace, events, CUDA graph
 * capture, and forward(), which walks the plan issuing kernels and matmuls.
 *
 * Threading: a ctx is shared by the engine's workers; each worker owns a
 * stream. forward() on different streams may run concurrently: everything
 * it writes on the host lives in the stream (value pointers) or behind the
 * ctx mutex (the matmul cache). forward() never synchronizes and never
 * allocates device memory, so it can be captured into a CUDA graph, and one
 * stream's copies overlap another stream's compute.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"
#include "util/half.h"

#define SCRATCH_ALIGN ((size_t)256)

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

/* ------------------------------------------------------------- errors */

ferry_status cuda_status_rt(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return FERRY_OK;
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    return ferry_fail(e == cudaErrorMemoryAllocation ? FERRY_ENOMEM : FERRY_EDEVICE,
                      "%s failed: %s (%s) at %s:%d", call, cudaGetErrorString(e),
                      cudaGetErrorName(e), file, line);
}

ferry_status cuda_status_lt(cublasStatus_t e, const char *call, const char *file, int line)
{
    if (e == CUBLAS_STATUS_SUCCESS)
        return FERRY_OK;
    return ferry_fail(e == CUBLAS_STATUS_ALLOC_FAILED ? FERRY_ENOMEM : FERRY_EDEVICE,
                      "%s failed: %s at %s:%d", call, cublasLtGetStatusString(e), file, line);
}

/* An allocation failure names what was asked and what the device has. */
static ferry_status oom(int dev, const char *what, size_t bytes)
{
    size_t fr = 0, tot = 0;
    (void)cudaMemGetInfo(&fr, &tot);
    (void)cudaGetLastError();
    return ferry_fail(FERRY_ENOMEM,
                      "cuda:%d: out of device memory allocating %zu bytes (%.1f MiB) for %s; "
                      "%zu bytes (%.1f MiB) free of %zu",
                      dev, bytes, bytes / 1048576.0, what, fr, fr / 1048576.0, tot);
}

/* cudaMalloc that names what it was for and the device's free memory when
 * it runs out. */
static ferry_status dev_malloc(int dev, void **p, size_t bytes, const char *what)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation)
        return oom(dev, what, bytes);
    return cuda_status_rt(e, "cudaMalloc", __FILE__, __LINE__);
}

/* ------------------------------------------------------------- probe */

static ferry_status cuda_probe(int *n_devices, char *desc, size_t desc_len)
{
    ferry_status st;
    int n = 0;
    if (n_devices)
        *n_devices = 0;
    if (desc && desc_len)
        desc[0] = '\0';
    st = CUDA_CHECK(cudaGetDeviceCount(&n));
    if (st != FERRY_OK)
        return ferry_fail_prefix(FERRY_EDEVICE, "no usable CUDA device");
    if (n == 0)
        return ferry_fail(FERRY_EDEVICE, "no CUDA device found");
    size_t used = 0;
    for (int i = 0; i < n && desc && desc_len; i++) {
        struct cudaDeviceProp p;
        st = CUDA_CHECK(cudaGetDeviceProperties(&p, i));
        if (st != FERRY_OK)
            return st;
        int w =
            snprintf(desc + used, desc_len - used, "%scuda:%d %s (%.1f GiB, sm_%d%d)",
                     i ? "\n" : "", i, p.name, p.totalGlobalMem / 1073741824.0, p.major, p.minor);
        if (w < 0 || (size_t)w >= desc_len - used)
            break;
        used += (size_t)w;
    }
    if (n_devices)
        *n_devices = n;
    return FERRY_OK;
}

/* ------------------------------------------------------------- constants */

float cuda_host_f32(ferry_dtype dt, const void *data, int64_t i)
{
    switch (dt) {
    case FERRY_F32: return ((const float *)data)[i];
    case FERRY_F64: return (float)((const double *)data)[i];
    case FERRY_F16: return ferry_f16_to_f32(((const uint16_t *)data)[i]);
    case FERRY_BF16: return ferry_bf16_to_f32(((const uint16_t *)data)[i]);
    default: return 0.0f;
    }
}

/* Host fp32 -> compute dtype, into a host buffer of n elements. */
static void to_compute(ferry_dtype cdt, const float *src, void *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (cdt == FERRY_F16)
            ((uint16_t *)dst)[i] = ferry_f32_to_f16(src[i]);
        else if (cdt == FERRY_BF16)
            ((uint16_t *)dst)[i] = ferry_f32_to_bf16(src[i]);
        else
            ((float *)dst)[i] = src[i];
    }
}

ferry_status cuda_upload_f32(backend_ctx *c, void *dst, const float *src, int64_t n)
{
    ferry_status st = FERRY_OK;
    void *tmp = malloc((size_t)(n ? n : 1) * c->celem);
    if (!tmp)
        return ferry_fail(FERRY_ENOMEM, "out of host memory converting %" PRId64 " values", n);
    to_compute(c->cdt, src, tmp, n);
    CUDA_TRY(cudaMemcpy(dst, tmp, (size_t)n * c->celem, cudaMemcpyHostToDevice));
fail:
    free(tmp);
    return st;
}

/* Uploads constant v into dst, in the compute dtype if it is a float. */
static ferry_status upload_const(backend_ctx *c, int v, void *dst)
{
    const graph_value *gv = &c->g->values[v];
    int64_t n = graph_value_numel(gv, 1);
    ferry_status st = FERRY_OK;
    if (!gv->data)
        return ferry_fail(FERRY_EINTERNAL, "constant '%s' has no data", gv->name);
    if (!cuda_is_float(gv->dtype)) {
        CUDA_TRY(cudaMemcpy(dst, gv->data, (size_t)n * ferry_dtype_size(gv->dtype),
                            cudaMemcpyHostToDevice));
        return FERRY_OK;
    }
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f)
        return ferry_fail(FERRY_ENOMEM, "out of host memory converting constant '%s'", gv->name);
    for (int64_t i = 0; i < n; i++)
        f[i] = cuda_host_f32(gv->dtype, gv->data, i);
    st = cuda_upload_f32(c, dst, f, n);
    free(f);
    return st;
fail:
    return st;
}

/* ------------------------------------------------------------- checks */

static int supported_storage(ferry_dtype dt)
{
    return cuda_is_float(dt) || dt == FERRY_I32 || dt == FERRY_I64 || dt == FERRY_BOOL ||
           dt == FERRY_U8;
}

static ferry_status node_fail(const graph_node *nd, const char *fmt, const char *arg)
{
    char why[256];
    snprintf(why, sizeof why, fmt, arg);
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %s on CUDA", nd->name, op_name(nd->op),
                      why);
}

/* Numpy broadcast of a and b to out at batch n, as strides. */
static ferry_status make_bcast(const graph *g, const graph_node *nd, int64_t n, kern_bcast *bc)
{
    const graph_value *vo = &g->values[nd->out[0]];
    const graph_value *vs[2] = {&g->values[nd->in[0]], &g->values[nd->in[1]]};
    memset(bc, 0, sizeof *bc);
    int64_t od[FERRY_MAX_DIMS];
    int no = graph_value_shape(vo, n, od);
    if (no == 0) {
        no = 1;
        od[0] = 1;
    }
    bc->ndim = no;
    bc->n = 1;
    for (int d = 0; d < no; d++) {
        bc->dims[d] = od[d];
        bc->n *= od[d];
    }
    for (int k = 0; k < 2; k++) {
        int64_t id[FERRY_MAX_DIMS], *st = k ? bc->sb : bc->sa;
        int ni = graph_value_shape(vs[k], n, id);
        if (ni > no)
            return ferry_fail(FERRY_ESHAPE,
                              "node '%s' (%s): input '%s' has more dims than the "
                              "output",
                              nd->name, op_name(nd->op), vs[k]->name);
        int64_t stride = 1, ne = 1;
        for (int d = no - 1; d >= 0; d--) {
            int j = d - (no - ni);
            if (j < 0) {
                st[d] = 0;
                continue;
            }
            if (id[j] != od[d] && id[j] != 1)
                return ferry_fail(FERRY_ESHAPE,
                                  "node '%s' (%s): input '%s' does not broadcast "
                                  "to the output",
                                  nd->name, op_name(nd->op), vs[k]->name);
            st[d] = id[j] == 1 ? 0 : stride;
            stride *= id[j];
            ne *= id[j];
        }
        if (k)
            bc->nb = ne;
        else
            bc->na = ne;
    }
    return FERRY_OK;
}

static int norm_axis(int axis, int ndim)
{
    return axis < 0 ? axis + ndim : axis;
}

static ferry_status make_reduce(const backend_ctx *c, const graph_node *nd, int64_t n,
                                kern_reduce *rd)
{
    const graph_value *vx = &c->g->values[nd->in[0]];
    int64_t d[FERRY_MAX_DIMS], stride[FERRY_MAX_DIMS];
    int nd_ = graph_value_shape(vx, n, d);
    int red[FERRY_MAX_DIMS] = {0};
    memset(rd, 0, sizeof *rd);
    int64_t s = 1;
    for (int i = nd_ - 1; i >= 0; i--) {
        stride[i] = s;
        s *= d[i];
    }
    int64_t axes[FERRY_MAX_DIMS];
    int n_axes = nd->n_axes;
    for (int i = 0; i < n_axes; i++)
        axes[i] = nd->axes[i];
    if (n_axes == 0 && nd->n_in > 1 && nd->in[1] >= 0) { /* opset 18: axes as an input */
        const graph_value *va = &c->g->values[nd->in[1]];
        if (!va->is_const || va->dtype != FERRY_I64)
            return node_fail(nd, "%s", "axes must be a constant int64 tensor");
        n_axes = (int)graph_value_numel(va, 1);
        if (n_axes > FERRY_MAX_DIMS)
            return node_fail(nd, "%s", "too many axes");
        for (int i = 0; i < n_axes; i++)
            axes[i] = ((const int64_t *)va->data)[i];
    }
    for (int i = 0; i < n_axes; i++) {
        int a = norm_axis((int)axes[i], nd_);
        if (a < 0 || a >= nd_)
            return ferry_fail(FERRY_ESHAPE, "node '%s' (%s): axis %" PRId64 " out of range",
                              nd->name, op_name(nd->op), axes[i]);
        red[a] = 1;
    }
    rd->n_out = rd->n_red = 1;
    for (int i = 0; i < nd_; i++) {
        if (red[i] || n_axes == 0) {
            rd->rdims[rd->nr] = d[i];
            rd->rstride[rd->nr++] = stride[i];
            rd->n_red *= d[i];
        } else {
            rd->kdims[rd->nk] = d[i];
            rd->kstride[rd->nk++] = stride[i];
            rd->n_out *= d[i];
        }
    }
    if (rd->nk == 0) {
        rd->nk = 1;
        rd->kdims[0] = 1;
        rd->kstride[0] = 0;
    }
    if (rd->nr == 0) {
        rd->nr = 1;
        rd->rdims[0] = 1;
        rd->rstride[0] = 0;
    }
    return FERRY_OK;
}

/* Softmax as [outer, d, inner]: opset >= 13 reduces one axis; earlier
 * opsets flatten to 2-D at the axis and reduce the whole tail. */
static void softmax_dims(const backend_ctx *c, const graph_node *nd, int64_t n, int64_t *outer,
                         int64_t *d, int64_t *inner)
{
    const graph_value *vx = &c->g->values[nd->in[0]];
    int64_t dims[FERRY_MAX_DIMS];
    int nd_ = graph_value_shape(vx, n, dims);
    int axis = norm_axis(nd->axis, nd_);
    *outer = *d = *inner = 1;
    for (int i = 0; i < nd_; i++) {
        if (i < axis)
            *outer *= dims[i];
        else if (i == axis || (c->g->opset > 0 && c->g->opset < 13))
            *d *= dims[i];
        else
            *inner *= dims[i];
    }
}

static ferry_status check_node(backend_ctx *c, int ni)
{
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[ni];
    for (int k = 0; k < nd->n_in; k++) {
        if (nd->in[k] < 0)
            continue;
        ferry_dtype dt = g->values[nd->in[k]].dtype;
        if (!supported_storage(dt))
            return node_fail(nd, "input dtype %s is not supported", ferry_dtype_name(dt));
    }
    for (int k = 0; k < nd->n_out; k++) {
        if (nd->out[k] < 0)
            continue;
        ferry_dtype dt = g->values[nd->out[k]].dtype;
        if (!supported_storage(dt))
            return node_fail(nd, "output dtype %s is not supported", ferry_dtype_name(dt));
    }
    if (nd->n_out < 1 || nd->out[0] < 0 || nd->n_in < 1 || nd->in[0] < 0)
        return node_fail(nd, "%s", "a node needs an input and an output");
    int x = nd->in[0], y = nd->out[0];
    int xf = cuda_is_float(g->values[x].dtype), yf = cuda_is_float(g->values[y].dtype);
    switch (nd->op) {
    case OP_GEMM:
    case OP_MATMUL:
        if (!xf || !yf)
            return node_fail(nd, "%s", "integer matmul is not supported");
        return FERRY_OK; /* shapes: cuda_gemm_prepare */
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: {
        if (nd->n_in < 2 || nd->in[1] < 0)
            return node_fail(nd, "%s", "needs two inputs");
        if (!xf || !yf || !cuda_is_float(g->values[nd->in[1]].dtype))
            return node_fail(nd, "%s", "integer arithmetic is not supported");
        kern_bcast bc;
        return make_bcast(g, nd, c->o.max_batch, &bc);
    }
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT:
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        if (!xf || !yf)
            return node_fail(nd, "%s", "needs float tensors");
        return FERRY_OK;
    case OP_LAYER_NORM: {
        if (!xf || !yf)
            return node_fail(nd, "%s", "needs float tensors");
        if (nd->n_in < 2 || nd->in[1] < 0)
            return node_fail(nd, "%s", "needs a scale input");
        for (int k = 1; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (v >= 0 && (g->values[v].n_consumers > 0 || g->values[v].is_output))
                return node_fail(nd, "%s", "the Mean and InvStdDev outputs are not supported");
        }
        const graph_value *vx = &g->values[x];
        int axis = norm_axis(nd->axis, vx->ndim);
        if (axis < 0 || axis >= vx->ndim)
            return node_fail(nd, "%s", "axis out of range");
        int64_t d = 1;
        for (int i = axis; i < vx->ndim; i++)
            d *= vx->dims[i] == FERRY_DIM_BATCH ? -1 : vx->dims[i];
        if (d < 0)
            return node_fail(nd, "%s", "normalizing over the batch dimension is not supported");
        for (int k = 1; k < 3 && k < nd->n_in; k++)
            if (nd->in[k] >= 0 && graph_value_numel(&g->values[nd->in[k]], 1) != d)
                return node_fail(nd, "%s", "scale and bias must have the normalized shape");
        return FERRY_OK;
    }
    case OP_REDUCE_MEAN: {
        if (!xf || !yf)
            return node_fail(nd, "%s", "needs float tensors");
        kern_reduce rd;
        return make_reduce(c, nd, c->o.max_batch, &rd);
    }
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
        if (graph_value_numel(&g->values[x], 2) != graph_value_numel(&g->values[y], 2))
            return node_fail(nd, "%s", "input and output sizes differ");
        return FERRY_OK;
    case OP_CAST: return FERRY_OK; /* storage dtypes checked above */
    default: return node_fail(nd, "%s", "operator is not supported");
    }
}

/* ------------------------------------------------------------- ctx */

static void cuda_ctx_destroy(backend_ctx *c);

static ferry_status cuda_ctx_create(const graph *g, const backend_opts *o, backend_ctx **out)
{
    ferry_status st = FERRY_OK;
    backend_ctx *c = NULL;
    if (!g || !o || !out)
        return ferry_fail(FERRY_EINVAL, "cuda: ctx_create: NULL argument");
    *out = NULL;
    if (o->max_batch < 1)
        return ferry_fail(FERRY_EINVAL, "cuda: max_batch %" PRId64 " must be >= 1", o->max_batch);
    if (o->io_dtype != FERRY_F32 && o->io_dtype != FERRY_F16 && o->io_dtype != FERRY_BF16)
        return ferry_fail(FERRY_EUNSUPPORTED, "cuda: io dtype %s is not supported (f32, f16, bf16)",
                          ferry_dtype_name(o->io_dtype));
    int ndev = 0;
    st = CUDA_CHECK(cudaGetDeviceCount(&ndev));
    if (st != FERRY_OK)
        return ferry_fail_prefix(FERRY_EDEVICE, "cuda");
    if (o->device < 0 || o->device >= ndev)
        return ferry_fail(FERRY_ENOTFOUND, "cuda:%d does not exist (%d device%s)", o->device, ndev,
                          ndev == 1 ? "" : "s");

    c = calloc(1, sizeof *c);
    if (!c)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a CUDA context");
    c->g = g;
    c->o = *o;
    c->device = o->device;
    CUDA_TRY(cudaSetDevice(c->device));
    struct cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, c->device));
    snprintf(c->name, sizeof c->name, "cuda:%d %.200s", c->device, p.name);
    c->sm_count = p.multiProcessorCount;
    switch (o->precision) {
    case FERRY_PRECISION_FP32: c->cdt = FERRY_F32; break;
    case FERRY_PRECISION_TF32: c->cdt = FERRY_F32; break;
    case FERRY_PRECISION_FP16: c->cdt = FERRY_F16; break;
    case FERRY_PRECISION_BF16: c->cdt = FERRY_BF16; break;
    default:
        st = ferry_fail(FERRY_EUNSUPPORTED, "cuda: unknown precision %d", (int)o->precision);
        goto fail;
    }
    if ((o->precision == FERRY_PRECISION_TF32 || o->precision == FERRY_PRECISION_BF16) &&
        p.major < 8) {
        st = ferry_fail(FERRY_EUNSUPPORTED, "%s (sm_%d%d) has no %s tensor cores", c->name, p.major,
                        p.minor, o->precision == FERRY_PRECISION_TF32 ? "tf32" : "bf16");
        goto fail;
    }
    c->celem = ferry_dtype_size(c->cdt);

    int nv = g->n_values, nn = g->n_nodes;
    c->root = calloc((size_t)nv + 1, sizeof *c->root);
    c->vdt = calloc((size_t)nv + 1, sizeof *c->vdt);
    c->cdev = calloc((size_t)nv + 1, sizeof *c->cdev);
    c->gemm_of_node = calloc((size_t)nn + 1, sizeof *c->gemm_of_node);
    c->gemms = calloc((size_t)nn + 1, sizeof *c->gemms);
    c->in_scratch = calloc((size_t)g->n_inputs + 1, sizeof *c->in_scratch);
    c->out_scratch = calloc((size_t)g->n_outputs + 1, sizeof *c->out_scratch);
    char *used = calloc((size_t)nv + 1, 1);
    if (!c->root || !c->vdt || !c->cdev || !c->gemm_of_node || !c->gemms || !c->in_scratch ||
        !c->out_scratch || !used) {
        free(used);
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating a CUDA context");
        goto fail;
    }
    for (int v = 0; v < nv; v++) {
        int r = v, hops = 0;
        while (g->values[r].alias >= 0 && hops++ <= nv)
            r = g->values[r].alias;
        c->root[v] = r;
        c->vdt[v] = cuda_is_float(g->values[v].dtype) ? c->cdt : g->values[v].dtype;
    }

    /* Every live node supported, before anything is uploaded. */
    for (int i = 0; i < nn; i++) {
        const graph_node *nd = &g->nodes[i];
        c->gemm_of_node[i] = -1;
        if (nd->dead)
            continue;
        st = check_node(c, i);
        if (st != FERRY_OK) {
            free(used);
            goto fail;
        }
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0)
                used[c->root[nd->in[k]]] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        used[c->root[g->outputs[i]]] = 1;

    st = graph_plan_make(g, o->max_batch, c->celem, &c->plan);
    if (st != FERRY_OK) {
        free(used);
        goto fail;
    }
    c->have_plan = 1;

    /* Conversion scratch for float inputs/outputs whose io dtype differs
     * from the compute dtype, after the planned arena. */
    size_t at = align_up(c->plan.arena_bytes, SCRATCH_ALIGN);
    for (int i = 0; i < g->n_inputs; i++) {
        const graph_value *gv = &g->values[g->inputs[i]];
        c->in_scratch[i] = SIZE_MAX;
        if (cuda_is_float(gv->dtype) && o->io_dtype != c->cdt) {
            c->in_scratch[i] = at;
            at = align_up(at + (size_t)graph_value_numel(gv, o->max_batch) * c->celem,
                          SCRATCH_ALIGN);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const graph_value *gv = &g->values[g->outputs[i]];
        c->out_scratch[i] = SIZE_MAX;
        if (cuda_is_float(gv->dtype) && o->io_dtype != c->cdt &&
            c->root[g->outputs[i]] == g->outputs[i] && !gv->is_input && !gv->is_const) {
            c->out_scratch[i] = at;
            at = align_up(at + (size_t)graph_value_numel(gv, o->max_batch) * c->celem,
                          SCRATCH_ALIGN);
        }
    }
    c->arena_total = at;

    /* Constants: one block, each converted once to the compute dtype. */
    size_t cbytes = 0;
    for (int v = 0; v < nv; v++)
        if (used[v] && g->values[v].is_const)
            cbytes = align_up(cbytes + (size_t)graph_value_numel(&g->values[v], 1) *
                                           ferry_dtype_size(c->vdt[v]),
                              SCRATCH_ALIGN);
    if (cbytes) {
        st = dev_malloc(c->device, &c->const_block, cbytes, "the model's constants");
        if (st != FERRY_OK) {
            free(used);
            goto fail;
        }
        size_t off = 0;
        for (int v = 0; v < nv && st == FERRY_OK; v++) {
            if (!used[v] || !g->values[v].is_const)
                continue;
            c->cdev[v] = (char *)c->const_block + off;
            st = upload_const(c, v, c->cdev[v]);
            off = align_up(off + (size_t)graph_value_numel(&g->values[v], 1) *
                                     ferry_dtype_size(c->vdt[v]),
                           SCRATCH_ALIGN);
        }
        if (st != FERRY_OK) {
            free(used);
            goto fail;
        }
    }
    free(used);

    /* cuBLASLt: heuristics handle and preference, then every matmul. */
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        st = ferry_fail(FERRY_ENOMEM, "cuda: pthread_mutex_init failed");
        goto fail;
    }
    c->have_mu = 1;
    CUDA_TRY(cublasLtCreate(&c->lt));
    CUDA_TRY(cublasLtMatmulPreferenceCreate(&c->pref));
    size_t ws = CUDA_LT_WORKSPACE;
    CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(c->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws, sizeof ws));
    /* Arena offsets are only 64-byte aligned and callers' buffers may be
     * sub-allocated: ask only for algorithms that accept 16-byte alignment. */
    uint32_t al = 16;
    CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(
        c->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
    CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(
        c->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
    CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(
        c->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al));
    CUDA_TRY(cublasLtMatmulPreferenceSetAttribute(
        c->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al));
    for (int i = 0; i < nn; i++) {
        const graph_node *nd = &g->nodes[i];
        if (nd->dead || (nd->op != OP_GEMM && nd->op != OP_MATMUL))
            continue;
        st = cuda_gemm_prepare(c, i, &c->gemms[c->n_gemms]);
        if (st != FERRY_OK)
            goto fail;
        c->gemm_of_node[i] = c->n_gemms++;
    }
    st = cuda_mlp_prepare(c);
    if (st != FERRY_OK)
        goto fail;
    *out = c;
    return FERRY_OK;
fail:
    cuda_ctx_destroy(c);
    return st;
}

static void cuda_ctx_destroy(backend_ctx *c)
{
    if (!c)
        return;
    (void)cudaSetDevice(c->device);
    cuda_mlp_release(c);
    for (int i = 0; i < c->n_gemms; i++)
        cuda_gemm_release(&c->gemms[i]);
    if (c->pref)
        cublasLtMatmulPreferenceDestroy(c->pref);
    if (c->lt)
        cublasLtDestroy(c->lt);
    if (c->have_mu)
        pthread_mutex_destroy(&c->mu);
    if (c->const_block)
        cudaFree(c->const_block);
    if (c->have_plan)
        graph_plan_free(&c->plan);
    free(c->root);
    free(c->vdt);
    free(c->cdev);
    free(c->gemm_of_node);
    free(c->gemms);
    free(c->in_scratch);
    free(c->out_scratch);
    free(c);
}

static const char *cuda_ctx_device_name(backend_ctx *c)
{
    return c ? c->name : "cuda";
}

static size_t cuda_arena_bytes(backend_ctx *c)
{
    return c->arena_total;
}

/* ------------------------------------------------------------- memory */

static ferry_status cuda_alloc(backend_ctx *c, size_t bytes, void **out)
{
    ferry_status st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    return dev_malloc(c->device, out, bytes, "a device buffer");
}

static void cuda_free(backend_ctx *c, void *p)
{
    if (!p)
        return;
    (void)cudaSetDevice(c->device);
    (void)cudaFree(p);
}

static ferry_status cuda_host_alloc(backend_ctx *c, size_t bytes, void **out)
{
    ferry_status st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    *out = NULL;
    /* Portable: pinned for every device, whichever worker copies from it. */
    return CUDA_CHECK(cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocPortable));
}

static void cuda_host_free(backend_ctx *c, void *p)
{
    (void)c;
    if (p)
        (void)cudaFreeHost(p);
}

/* ------------------------------------------------------------- streams */

static void cuda_stream_destroy(backend_stream *s);

static ferry_status cuda_stream_create(backend_ctx *c, backend_stream **out)
{
    ferry_status st = FERRY_OK;
    backend_stream *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a stream");
    s->c = c;
    s->vptr = calloc((size_t)c->g->n_values + 1, sizeof *s->vptr);
    if (!s->vptr) {
        free(s);
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a stream");
    }
    CUDA_TRY(cudaSetDevice(c->device));
    /* Non-blocking: no implicit ordering with the legacy default stream, so
     * streams of different workers overlap freely. */
    CUDA_TRY(cudaStreamCreateWithFlags(&s->s, cudaStreamNonBlocking));
    CUDA_TRY(cublasLtCreate(&s->lt));
    if (c->n_gemms) {
        st = dev_malloc(c->device, &s->ws, CUDA_LT_WORKSPACE, "a stream's cuBLASLt workspace");
        if (st != FERRY_OK)
            goto fail;
    }
    *out = s;
    return FERRY_OK;
fail:
    cuda_stream_destroy(s);
    return st;
}

static void cuda_stream_destroy(backend_stream *s)
{
    if (!s)
        return;
    (void)cudaSetDevice(s->c->device);
    if (s->s)
        (void)cudaStreamSynchronize(s->s);
    if (s->ws)
        (void)cudaFree(s->ws);
    if (s->lt)
        cublasLtDestroy(s->lt);
    if (s->s)
        (void)cudaStreamDestroy(s->s);
    free(s->vptr);
    free(s);
}

static ferry_status cuda_copy_h2d(backend_stream *s, void *dst, const void *src, size_t bytes)
{
    return CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->s));
}

static ferry_status cuda_copy_d2h(backend_stream *s, void *dst, const void *src, size_t bytes)
{
    return CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->s));
}

static ferry_status cuda_stream_sync(backend_stream *s)
{
    return CUDA_CHECK(cudaStreamSynchronize(s->s));
}

static ferry_status cuda_device_sync(backend_ctx *c)
{
    ferry_status st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    return CUDA_CHECK(cudaDeviceSynchronize());
}

/* ------------------------------------------------------------- forward */

static ferry_status run_node(backend_stream *s, int ni, int64_t n)
{
    backend_ctx *c = s->c;
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[ni];
    void **vp = s->vptr;
    ferry_status st = FERRY_OK;
    for (int k = 0; k < nd->n_in; k++)
        if (nd->in[k] >= 0 && !vp[nd->in[k]])
            return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): input '%s' has no storage",
                              nd->name, op_name(nd->op), g->values[nd->in[k]].name);
    if (!vp[nd->out[0]])
        return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): output '%s' has no storage", nd->name,
                          op_name(nd->op), g->values[nd->out[0]].name);
    const void *x = vp[nd->in[0]];
    void *y = vp[nd->out[0]];
    int64_t ny = graph_value_numel(&g->values[nd->out[0]], n);
    ferry_dtype cdt = c->cdt;
    switch (nd->op) {
    case OP_GEMM:
    case OP_MATMUL: return cuda_gemm_run(s, &c->gemms[c->gemm_of_node[ni]], n);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: {
        static const kern_binary_op map[] = {[OP_ADD] = KB_ADD,
                                             [OP_SUB] = KB_SUB,
                                             [OP_MUL] = KB_MUL,
                                             [OP_DIV] = KB_DIV,
                                             [OP_POW] = KB_POW};
        kern_bcast bc;
        st = make_bcast(g, nd, n, &bc);
        if (st == FERRY_OK)
            st = CUDA_CHECK(kern_binary(map[nd->op], x, vp[nd->in[1]], y, &bc, cdt, s->s));
        break;
    }
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT: {
        kern_unary_op u = KU_RELU;
        switch (nd->op) {
        case OP_LEAKY_RELU: u = KU_LEAKY_RELU; break;
        case OP_SIGMOID: u = KU_SIGMOID; break;
        case OP_TANH: u = KU_TANH; break;
        case OP_GELU: u = nd->approximate ? KU_GELU_TANH : KU_GELU; break;
        case OP_ERF: u = KU_ERF; break;
        case OP_SQRT: u = KU_SQRT; break;
        default: break;
        }
        st = CUDA_CHECK(kern_unary(u, nd->alpha, x, y, ny, cdt, s->s));
        break;
    }
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX: {
        int64_t outer, d, inner;
        softmax_dims(c, nd, n, &outer, &d, &inner);
        st = CUDA_CHECK(kern_softmax(x, y, outer, d, inner, nd->op == OP_LOG_SOFTMAX, cdt, s->s));
        break;
    }
    case OP_LAYER_NORM: {
        const graph_value *vx = &g->values[nd->in[0]];
        int axis = norm_axis(nd->axis, vx->ndim);
        int64_t d = 1;
        for (int i = axis; i < vx->ndim; i++)
            d *= vx->dims[i];
        const void *bias = nd->n_in > 2 && nd->in[2] >= 0 ? vp[nd->in[2]] : NULL;
        st = CUDA_CHECK(
            kern_layernorm(x, vp[nd->in[1]], bias, y, ny / d, d, nd->epsilon, cdt, s->s));
        break;
    }
    case OP_REDUCE_MEAN: {
        kern_reduce rd;
        st = make_reduce(c, nd, n, &rd);
        if (st == FERRY_OK)
            st = CUDA_CHECK(kern_reduce_mean(x, y, &rd, cdt, s->s));
        break;
    }
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
    case OP_CAST: {
        ferry_dtype sd = c->vdt[nd->in[0]], dd = c->vdt[nd->out[0]];
        if (sd == dd) { /* a view the graph did not alias, or a float->float Cast */
            if (x != y)
                st = CUDA_CHECK(cudaMemcpyAsync(y, x, (size_t)ny * ferry_dtype_size(dd),
                                                cudaMemcpyDeviceToDevice, s->s));
        } else {
            st = CUDA_CHECK(kern_cast(x, sd, y, dd, ny, s->s));
        }
        break;
    }
    default: st = ferry_fail(FERRY_EUNSUPPORTED, "op %s", op_name(nd->op)); break;
    }
    if (st != FERRY_OK)
        return ferry_fail_prefix(st, "node '%s' (%s)", nd->name, op_name(nd->op));
    return FERRY_OK;
}

static ferry_status cuda_forward(backend_stream *s, int64_t n, const void *const *in,
                                 void *const *out, void *arena)
{
    backend_ctx *c = s->c;
    const graph *g = c->g;
    ferry_status st = FERRY_OK;
    void **vp = s->vptr;
    char *ar = arena;
    if (n < 1 || n > c->o.max_batch)
        return ferry_fail(FERRY_EINVAL,
                          "cuda: forward of %" PRId64 " samples; max_batch is %" PRId64, n,
                          c->o.max_batch);
    if (c->arena_total && !arena)
        return ferry_fail(FERRY_EINVAL, "cuda: forward needs an arena of %zu bytes",
                          c->arena_total);
    st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    if (n <= c->mlp_max && !(((uintptr_t)in[0] | (uintptr_t)out[0]) & 15u))
        return cuda_mlp_run(s, n, in[0], out[0]);

    /* Where every value lives for this call: constants, caller I/O (or its
     * conversion scratch), arena regions, then views share their root's. */
    for (int v = 0; v < g->n_values; v++) {
        vp[v] = c->cdev[v];
        if (!vp[v] && c->plan.offset[v] != SIZE_MAX)
            vp[v] = ar + c->plan.offset[v];
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (c->in_scratch[i] == SIZE_MAX) {
            vp[v] = (void *)in[i];
            continue;
        }
        vp[v] = ar + c->in_scratch[i];
        st = CUDA_CHECK(kern_cast(in[i], c->o.io_dtype, vp[v], c->cdt,
                                  graph_value_numel(&g->values[v], n), s->s));
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "converting input '%s'", g->values[v].name);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        const graph_value *gv = &g->values[v];
        if (c->root[v] != v || gv->is_input || gv->is_const)
            continue;
        vp[v] = c->out_scratch[i] == SIZE_MAX ? out[i] : ar + c->out_scratch[i];
    }
    for (int v = 0; v < g->n_values; v++)
        if (c->root[v] != v)
            vp[v] = vp[c->root[v]];

    for (int k = 0; k < c->plan.n_order; k++) {
        st = run_node(s, c->plan.order[k], n);
        if (st != FERRY_OK)
            return st;
    }

    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        const graph_value *gv = &g->values[v];
        int64_t ne = graph_value_numel(gv, n);
        if (cuda_is_float(gv->dtype) && c->o.io_dtype != c->cdt)
            st = CUDA_CHECK(kern_cast(vp[v], c->cdt, out[i], c->o.io_dtype, ne, s->s));
        else if (vp[v] != out[i])
            st = CUDA_CHECK(cudaMemcpyAsync(out[i], vp[v], (size_t)ne * ferry_dtype_size(c->vdt[v]),
                                            cudaMemcpyDeviceToDevice, s->s));
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "writing output '%s'", gv->name);
    }
    return FERRY_OK;
}

/* The device pointer of pinned host memory p, or NULL for pageable memory. */
static void *mapped(const void *p)
{
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return a.type == cudaMemoryTypeHost ? a.devicePointer : NULL;
}

/* Zero-copy forward: the fused MLP kernel reads the caller's pinned input
 * and writes its pinned output over PCIe, so a batch is one launch with no
 * copies. Declines (done = 0) for other models, larger batches, or
 * pageable memory. */
static ferry_status cuda_forward_host(backend_stream *s, int64_t n, const void *const *in,
                                      void *const *out, int *done)
{
    backend_ctx *c = s->c;
    *done = 0;
    if (n < 1 || n > c->mlp_max || !c->mlp_zero_copy ||
        (((uintptr_t)in[0] | (uintptr_t)out[0]) & 15u))
        return FERRY_OK;
    ferry_status st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    void *x = mapped(in[0]), *y = x ? mapped(out[0]) : NULL;
    if (!x || !y)
        return FERRY_OK;
    st = cuda_mlp_run(s, n, x, y);
    *done = st == FERRY_OK;
    return st;
}

/* ------------------------------------------------------------- events */

struct backend_event {
    backend_ctx *c;
    cudaEvent_t e;
};

static ferry_status cuda_event_create(backend_ctx *c, backend_event **out)
{
    ferry_status st = FERRY_OK;
    backend_event *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating an event");
    e->c = c;
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaEventCreateWithFlags(&e->e, cudaEventDisableTiming));
    *out = e;
    return FERRY_OK;
fail:
    free(e);
    return st;
}

static void cuda_event_destroy(backend_event *e)
{
    if (!e)
        return;
    (void)cudaEventDestroy(e->e);
    free(e);
}

static ferry_status cuda_event_record(backend_event *e, backend_stream *s)
{
    return CUDA_CHECK(cudaEventRecord(e->e, s->s));
}

static ferry_status cuda_event_sync(backend_event *e)
{
    return CUDA_CHECK(cudaEventSynchronize(e->e));
}

/* ------------------------------------------------------------- graphs */

struct backend_graph {
    cudaGraphExec_t exec;
};

static ferry_status cuda_capture_begin(backend_stream *s)
{
    ferry_status st = CUDA_CHECK(cudaSetDevice(s->c->device));
    if (st != FERRY_OK)
        return st;
    /* Thread-local: other workers' threads keep issuing unsafe calls (frees,
     * syncs) without invalidating this capture. */
    return CUDA_CHECK(cudaStreamBeginCapture(s->s, cudaStreamCaptureModeThreadLocal));
}

static ferry_status cuda_capture_end(backend_stream *s, backend_graph **out)
{
    ferry_status st = FERRY_OK;
    cudaGraph_t gr = NULL;
    backend_graph *bg = NULL;
    *out = NULL;
    CUDA_TRY(cudaStreamEndCapture(s->s, &gr));
    bg = calloc(1, sizeof *bg);
    if (!bg) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory capturing a graph");
        goto fail;
    }
    CUDA_TRY(cudaGraphInstantiate(&bg->exec, gr, 0));
    (void)cudaGraphDestroy(gr);
    *out = bg;
    return FERRY_OK;
fail:
    if (gr)
        (void)cudaGraphDestroy(gr);
    free(bg);
    return st;
}

static ferry_status cuda_graph_launch(backend_graph *g, backend_stream *s)
{
    return CUDA_CHECK(cudaGraphLaunch(g->exec, s->s));
}

static void cuda_graph_destroy(backend_graph *g)
{
    if (!g)
        return;
    (void)cudaGraphExecDestroy(g->exec);
    free(g);
}

const ferry_backend_ops ferry_backend_cuda = {
    .name = "cuda",
    .host_visible = 0,
    .probe = cuda_probe,
    .ctx_create = cuda_ctx_create,
    .ctx_destroy = cuda_ctx_destroy,
    .ctx_device_name = cuda_ctx_device_name,
    .arena_bytes = cuda_arena_bytes,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .copy_h2d = cuda_copy_h2d,
    .copy_d2h = cuda_copy_d2h,
    .forward = cuda_forward,
    .forward_host = cuda_forward_host,
    .stream_sync = cuda_stream_sync,
    .device_sync = cuda_device_sync,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_sync = cuda_event_sync,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_destroy = cuda_graph_destroy,
};
