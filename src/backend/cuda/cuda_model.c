/*
 * cuda_model.c - a model compiled for one CUDA device (the backend's ctx):
 * every live node checked against the run table (cuda_ops.c) before
 * anything is uploaded, the storage of every value (the planned arena,
 * caller I/O or its conversion scratch, constants converted once to the
 * compute dtype in one device block, shape math), each node's prepare,
 * and forward(), which walks the plan issuing each node's run.
 *
 * Threading: forward() on different streams may run concurrently:
 * everything it writes on the host lives in the stream (value pointers) or
 * behind the ctx mutex (the matmul cache). forward() never synchronizes and
 * never allocates device memory, so it can be captured into a CUDA graph,
 * and one stream's copies overlap another stream's compute.
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

/* Host fp32 -> compute dtype, into a host buffer of n elements; a finite
 * value beyond a 16-bit format's range saturates (half.h). */
static void to_compute(ferry_dtype cdt, const float *src, void *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (cdt == FERRY_F16)
            ((uint16_t *)dst)[i] = ferry_f32_to_f16_sat(src[i]);
        else if (cdt == FERRY_BF16)
            ((uint16_t *)dst)[i] = ferry_f32_to_bf16_sat(src[i]);
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

/* Why node nd cannot run here, as a message in this thread's error (or
 * FERRY_OK): no run-table row, an unsupported storage dtype, or the row's
 * supports check. */
static ferry_status node_supported(backend_ctx *c, int ni)
{
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[ni];
    const cuda_op_impl *impl = cuda_op_get(nd->op);
    if (!impl)
        return ferry_fail(FERRY_EUNSUPPORTED, "no CUDA kernel");
    for (int k = 0; k < nd->n_in + nd->n_out; k++) {
        int v = k < nd->n_in ? nd->in[k] : nd->out[k - nd->n_in];
        if (v >= 0 && !supported_storage(g->values[v].dtype))
            return ferry_fail(
                FERRY_EUNSUPPORTED, "node '%s' (%s): tensor '%s' is %s, not supported on CUDA",
                nd->name, op_name(nd->op), g->values[v].name, ferry_dtype_name(g->values[v].dtype));
    }
    if (nd->n_out < 1 || nd->out[0] < 0 || nd->n_in < 1 || nd->in[0] < 0)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): a node needs an input and an output on CUDA", nd->name,
                          op_name(nd->op));
    if (!impl->supports)
        return FERRY_OK;
    cuda_prep p = {.c = c, .g = g, .nd = nd, .ni = ni, .max_batch = c->o.max_batch, .cdt = c->cdt};
    return impl->supports(&p);
}

/* Checks every live node and names, at once, every operator this backend
 * lacks with its count and first node, then the first node a supported
 * operator refuses (with the reason its supports check gave). */
static ferry_status check_supported(backend_ctx *c)
{
    const graph *g = c->g;
    int counts[OP_COUNT] = {0}, first[OP_COUNT], kinds = 0, refused = -1;
    char why[512] = "";
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *nd = &g->nodes[k];
        if (nd->dead)
            continue;
        if (!cuda_op_get(nd->op)) {
            if (counts[nd->op]++ == 0) {
                first[nd->op] = k;
                kinds++;
            }
            continue;
        }
        if (refused < 0 && node_supported(c, k) != FERRY_OK) {
            refused = k;
            snprintf(why, sizeof why, "%s", ferry_last_error());
        }
    }
    if (!kinds && refused < 0)
        return FERRY_OK;
    char list[1024];
    size_t at = 0;
    list[0] = '\0';
    for (int op = 0; op < OP_COUNT && at < sizeof list; op++)
        if (counts[op])
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s (%d node%s, first '%s')",
                                   at ? ", " : "", op_name((op_kind)op), counts[op],
                                   counts[op] == 1 ? "" : "s", g->nodes[first[op]].name);
    if (!kinds)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s", why);
    return ferry_fail(FERRY_EUNSUPPORTED, "%d operator%s not supported by the cuda backend: %s%s%s",
                      kinds, kinds == 1 ? " is" : "s are", list, refused >= 0 ? "; also " : "",
                      refused >= 0 ? why : "");
}

/* ------------------------------------------------------------- ctx */

/* A value known at load (a constant, or shape math) whose data the device
 * needs. */
static int known(const graph_value *gv)
{
    return (gv->is_const || gv->is_sym) && gv->data;
}

/* Device bytes of constant v (a known value), and for shape math that
 * depends on N twice that: the constant parts then the multiples of N. */
static size_t const_bytes(const backend_ctx *c, int v)
{
    const graph_value *gv = &c->g->values[v];
    size_t b = (size_t)graph_value_numel(gv, 1) * ferry_dtype_size(c->vdt[v]);
    return gv->is_sym && gv->symk ? 2 * b : b;
}

ferry_status cuda_ctx_create(const graph *g, const backend_opts *o, backend_ctx **out)
{
    ferry_status st = FERRY_OK;
    backend_ctx *c = NULL;
    char *used = NULL;
    if (!g || !o || !out)
        return ferry_fail(FERRY_EINVAL, "cuda: ctx_create: NULL argument");
    *out = NULL;
    if (o->max_batch < 1)
        return ferry_fail(FERRY_EINVAL, "cuda: max_batch %" PRId64 " must be >= 1", o->max_batch);
    if (o->io_dtype != FERRY_F32 && o->io_dtype != FERRY_F16 && o->io_dtype != FERRY_BF16)
        return ferry_fail(FERRY_EUNSUPPORTED, "cuda: io dtype %s is not supported (f32, f16, bf16)",
                          ferry_dtype_name(o->io_dtype));
    c = calloc(1, sizeof *c);
    if (!c)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a CUDA context");
    c->g = g;
    c->o = *o;
    if (backend_profile_init(&c->prof, "FERRY_CUDA_PROFILE", g->n_nodes) < 0) {
        free(c);
        return ferry_fail(FERRY_ENOMEM, "out of memory creating the cuda backend");
    }
    c->device = o->device;
    switch (o->precision) {
    case FERRY_PRECISION_FP32: c->cdt = FERRY_F32; break;
    case FERRY_PRECISION_TF32: c->cdt = FERRY_F32; break;
    case FERRY_PRECISION_FP16: c->cdt = FERRY_F16; break;
    case FERRY_PRECISION_BF16: c->cdt = FERRY_BF16; break;
    default:
        st = ferry_fail(FERRY_EUNSUPPORTED, "cuda: unknown precision %d", (int)o->precision);
        goto fail;
    }
    c->celem = ferry_dtype_size(c->cdt);

    int nv = g->n_values, nn = g->n_nodes;
    c->root = calloc((size_t)nv + 1, sizeof *c->root);
    c->vdt = calloc((size_t)nv + 1, sizeof *c->vdt);
    c->cdev = calloc((size_t)nv + 1, sizeof *c->cdev);
    c->nodes = calloc((size_t)nn + 1, sizeof *c->nodes);
    c->syms = calloc((size_t)nv + 1, sizeof *c->syms);
    c->in_scratch = calloc((size_t)g->n_inputs + 1, sizeof *c->in_scratch);
    c->out_scratch = calloc((size_t)g->n_outputs + 1, sizeof *c->out_scratch);
    used = calloc((size_t)nv + 1, 1);
    if (!c->root || !c->vdt || !c->cdev || !c->nodes || !c->syms || !c->in_scratch ||
        !c->out_scratch || !used) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating a CUDA context");
        goto fail;
    }
    for (int v = 0; v < nv; v++) {
        int r = v, hops = 0;
        while (g->values[r].alias >= 0 && hops++ <= nv)
            r = g->values[r].alias;
        c->root[v] = r;
        c->vdt[v] = cuda_sdt(g->values[v].dtype, c->cdt);
    }

    /* Every live node supported, before anything is uploaded. */
    if ((st = check_supported(c)) != FERRY_OK)
        goto fail;
    /* The device only now: a model this backend cannot run says so on a
     * machine without one too. */
    int ndev = 0;
    st = CUDA_CHECK(cudaGetDeviceCount(&ndev));
    if (st != FERRY_OK) {
        st = ferry_fail_prefix(FERRY_EDEVICE, "cuda");
        goto fail;
    }
    if (o->device < 0 || o->device >= ndev) {
        st = ferry_fail(FERRY_ENOTFOUND, "cuda:%d does not exist (%d device%s)", o->device, ndev,
                        ndev == 1 ? "" : "s");
        goto fail;
    }
    CUDA_TRY(cudaSetDevice(c->device));
    c->on_device = 1;
    struct cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, c->device));
    snprintf(c->name, sizeof c->name, "cuda:%d %.200s", c->device, p.name);
    c->sm_count = p.multiProcessorCount;
    if ((o->precision == FERRY_PRECISION_TF32 || o->precision == FERRY_PRECISION_BF16) &&
        p.major < 8) {
        st = ferry_fail(FERRY_EUNSUPPORTED, "%s (sm_%d%d) has no %s tensor cores", c->name, p.major,
                        p.minor, o->precision == FERRY_PRECISION_TF32 ? "tf32" : "bf16");
        goto fail;
    }

    for (int i = 0; i < nn; i++) {
        const graph_node *nd = &g->nodes[i];
        if (nd->dead)
            continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0)
                used[c->root[nd->in[k]]] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        used[c->root[g->outputs[i]]] = 1;

    st = graph_plan_make(g, o->max_batch, c->celem, &c->plan);
    if (st != FERRY_OK)
        goto fail;
    c->have_plan = 1;

    /* After the planned arena: conversion scratch for float inputs/outputs
     * whose io dtype differs from the compute dtype, then shape math that
     * depends on N. */
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
    for (int v = 0; v < nv; v++) {
        const graph_value *gv = &g->values[v];
        if (!used[v] || !known(gv) || !gv->is_sym || !gv->symk)
            continue;
        for (int d = 0; d < gv->ndim; d++)
            if (gv->dims[d] < 0) {
                st = ferry_fail(FERRY_EUNSUPPORTED,
                                "tensor '%s': shape math whose length depends on the batch size "
                                "is not supported on CUDA",
                                gv->name);
                goto fail;
            }
        if (gv->dtype != FERRY_I64) {
            st = ferry_fail(FERRY_EUNSUPPORTED,
                            "tensor '%s': %s shape math is not supported on CUDA", gv->name,
                            ferry_dtype_name(gv->dtype));
            goto fail;
        }
        cuda_sym *sy = &c->syms[c->n_syms++];
        sy->v = v;
        sy->count = graph_value_numel(gv, 1);
        sy->off = at;
        at = align_up(at + (size_t)sy->count * sizeof(int64_t), SCRATCH_ALIGN);
    }

    /* Known values: one block, floats converted once to the compute dtype;
     * shape math that depends on N holds its constant parts and multiples. */
    size_t cbytes = 0;
    for (int v = 0; v < nv; v++)
        if (used[v] && known(&g->values[v]))
            cbytes = align_up(cbytes + const_bytes(c, v), SCRATCH_ALIGN);
    if (cbytes) {
        st = cuda_dev_malloc(c->device, &c->const_block, cbytes, "the model's constants");
        if (st != FERRY_OK)
            goto fail;
        size_t off = 0;
        int si = 0;
        for (int v = 0; v < nv && st == FERRY_OK; v++) {
            const graph_value *gv = &g->values[v];
            if (!used[v] || !known(gv))
                continue;
            char *dst = (char *)c->const_block + off;
            st = upload_const(c, v, dst);
            if (st == FERRY_OK && gv->is_sym && gv->symk) {
                size_t half = const_bytes(c, v) / 2;
                CUDA_TRY(cudaMemcpy(dst + half, gv->symk, half, cudaMemcpyHostToDevice));
                while (c->syms[si].v != v)
                    si++;
                c->syms[si].base = (const int64_t *)dst;
                c->syms[si].k = (const int64_t *)(dst + half);
            } else {
                c->cdev[v] = dst;
            }
            off = align_up(off + const_bytes(c, v), SCRATCH_ALIGN);
        }
        if (st != FERRY_OK)
            goto fail;
    }

    /* cuBLASLt: heuristics handle and preference, for the matmuls'
     * prepare. */
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

    if ((st = cuda_layout_plan(c)) != FERRY_OK)
        goto fail;
    /* The run table's prepare, per live node. */
    size_t scratch = 0;
    for (int i = 0; i < nn; i++) {
        const graph_node *nd = &g->nodes[i];
        if (nd->dead)
            continue;
        c->nodes[i].impl = cuda_op_get(nd->op);
        cuda_prep pp = {
            .c = c, .g = g, .nd = nd, .ni = i, .max_batch = o->max_batch, .cdt = c->cdt};
        if (c->nodes[i].impl->prepare &&
            (st = c->nodes[i].impl->prepare(&pp, &c->nodes[i].state)) != FERRY_OK)
            goto fail;
        if (pp.scratch > scratch)
            scratch = pp.scratch;
    }
    /* One scratch region, last in the arena, serves every node in turn. */
    c->scratch_off = at;
    c->arena_total = align_up(at + scratch, SCRATCH_ALIGN);
    st = cuda_mlp_prepare(c);
    if (st != FERRY_OK)
        goto fail;
    free(used);
    *out = c;
    return FERRY_OK;
fail:
    free(used);
    cuda_ctx_destroy(c);
    return st;
}

void cuda_ctx_destroy(backend_ctx *c)
{
    if (!c)
        return;
    if (c->on_device)
        (void)cudaSetDevice(c->device);
    backend_profile_finish(&c->prof, c->g, c->name);
    cuda_mlp_release(c);
    for (int i = 0; c->nodes && i < c->g->n_nodes; i++) {
        cuda_node *cn = &c->nodes[i];
        if (cn->impl && cn->state) {
            if (cn->impl->destroy)
                cn->impl->destroy(cn->state);
            else
                free(cn->state);
        }
    }
    cuda_dnn_ctx_release(c);
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
    free(c->nhwc);
    free(c->vdt);
    free(c->cdev);
    free(c->nodes);
    free(c->syms);
    free(c->in_scratch);
    free(c->out_scratch);
    free(c);
}

const char *cuda_ctx_device_name(backend_ctx *c)
{
    return c ? c->name : "cuda";
}

size_t cuda_arena_bytes(backend_ctx *c)
{
    return c->arena_total;
}

/* ------------------------------------------------------------- forward */

static ferry_status run_node(backend_stream *s, int ni, int64_t n)
{
    backend_ctx *c = s->c;
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[ni];
    void **vp = s->vptr;
    cuda_call call;
    call.s = s;
    call.c = c;
    call.g = g;
    call.nd = nd;
    call.state = c->nodes[ni].state;
    call.n = n;
    call.stream = s->s;
    call.cdt = c->cdt;
    call.scratch = s->arena ? s->arena + c->scratch_off : NULL;
    for (int k = 0; k < nd->n_in; k++) {
        call.in[k] = nd->in[k] >= 0 ? vp[nd->in[k]] : NULL;
        if (nd->in[k] >= 0 && !call.in[k])
            return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): input '%s' has no storage",
                              nd->name, op_name(nd->op), g->values[nd->in[k]].name);
    }
    for (int k = 0; k < nd->n_out; k++)
        call.out[k] = nd->out[k] >= 0 ? vp[nd->out[k]] : NULL;
    if (!call.out[0] && nd->op != OP_SPLIT)
        return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): output '%s' has no storage", nd->name,
                          op_name(nd->op), g->values[nd->out[0]].name);
    ferry_status st = c->nodes[ni].impl->run(&call);
    if (st != FERRY_OK && !strstr(ferry_last_error(), nd->name))
        return ferry_fail_prefix(st, "node '%s' (%s)", nd->name, op_name(nd->op));
    return st;
}

/* FERRY_CUDA_PROFILE (profile.h): the nodes with an event after each and
 * a wait at the end, so each node's GPU time is known; not while a CUDA
 * graph is being captured (then the nodes just run). A profiled forward is
 * synchronous: for finding where time goes, not for throughput. */
static ferry_status run_profiled(backend_stream *s, int64_t n)
{
    backend_ctx *c = s->c;
    int m = c->plan.n_order;
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    (void)cudaStreamIsCapturing(s->s, &cap);
    cudaEvent_t *ev = cap == cudaStreamCaptureStatusNone ? calloc((size_t)m + 1, sizeof *ev) : NULL;
    int made = 0;
    ferry_status st = FERRY_OK;
    for (; ev && made <= m; made++)
        if (cudaEventCreate(&ev[made]) != cudaSuccess)
            break;
    int timed = ev && made == m + 1;
    if (timed)
        (void)cudaEventRecord(ev[0], s->s);
    for (int k = 0; k < m && st == FERRY_OK; k++) {
        st = run_node(s, c->plan.order[k], n);
        if (timed)
            (void)cudaEventRecord(ev[k + 1], s->s);
    }
    if (timed && st == FERRY_OK && cudaEventSynchronize(ev[m]) == cudaSuccess) {
        for (int k = 0; k < m; k++) {
            float ms = 0.0f;
            if (cudaEventElapsedTime(&ms, ev[k], ev[k + 1]) == cudaSuccess)
                backend_profile_add(&c->prof, c->plan.order[k], (int64_t)(ms * 1e6));
        }
    }
    for (int k = 0; k < made; k++)
        (void)cudaEventDestroy(ev[k]);
    free(ev);
    return st;
}

ferry_status cuda_forward(backend_stream *s, int64_t n, const void *const *in, void *const *out,
                          void *arena)
{
    backend_ctx *c = s->c;
    const graph *g = c->g;
    ferry_status st = FERRY_OK;
    void **vp = s->vptr;
    char *ar = arena;
    s->arena = ar;
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
    /* Shape math at batch n, by a kernel taking n (a captured graph then
     * replays the writes of its own batch size). */
    for (int i = 0; i < c->n_syms; i++) {
        const cuda_sym *sy = &c->syms[i];
        vp[sy->v] = ar + sy->off;
        st = CUDA_CHECK(kern_sym_i64(sy->base, sy->k, vp[sy->v], sy->count, n, s->s));
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "writing shape math '%s'", g->values[sy->v].name);
    }
    for (int v = 0; v < g->n_values; v++)
        if (c->root[v] != v)
            vp[v] = vp[c->root[v]];

    st = backend_profile_on(&c->prof) ? run_profiled(s, n) : FERRY_OK;
    for (int k = 0; k < c->plan.n_order && !backend_profile_on(&c->prof); k++) {
        st = run_node(s, c->plan.order[k], n);
        if (st != FERRY_OK)
            return st;
    }
    if (st != FERRY_OK)
        return st;

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
ferry_status cuda_forward_host(backend_stream *s, int64_t n, const void *const *in,
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
