/*
 * cuda_device.c - the "cuda" backend table and everything in it that is
 * about the device rather than a model: errors, probing, device and pinned
 * memory, streams (each with its own cuBLASLt handle and workspace, and a
 * cuDNN handle when the model has convolutions),
 * events and CUDA graph capture. The compiled model's slots (ctx_create,
 * forward) are cuda_model.c's.
 *
 * Threading: a ctx is shared by the engine's workers; each worker owns a
 * stream. Nothing here touches a ctx after creation except to read it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "util/error.h"

/* ------------------------------------------------------------- errors */

ferry_status cuda_status_rt(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return FERRY_OK;
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    /* Not a fault of ours or the model's but of the machine: said plainly,
     * without the runtime's wording ("CUDA driver version is insufficient
     * for CUDA runtime version" when there is no driver at all) or a file */
    if (e == cudaErrorInsufficientDriver)
        return ferry_fail(FERRY_EDEVICE,
                          "no NVIDIA driver found (or one older than this build's "
                          "CUDA %d.%d): --device cuda needs one; use --device cpu",
                          CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    if (e == cudaErrorNoDevice)
        return ferry_fail(FERRY_EDEVICE,
                          "no NVIDIA GPU found: --device cuda needs one; use --device cpu");
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
ferry_status cuda_dev_malloc(int dev, void **p, size_t bytes, const char *what)
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

/* ------------------------------------------------------------- memory */

static ferry_status cuda_alloc(backend_ctx *c, size_t bytes, void **out)
{
    ferry_status st = CUDA_CHECK(cudaSetDevice(c->device));
    if (st != FERRY_OK)
        return st;
    return cuda_dev_malloc(c->device, out, bytes, "a device buffer");
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
        st = cuda_dev_malloc(c->device, &s->ws, CUDA_LT_WORKSPACE, "a stream's cuBLASLt workspace");
        if (st != FERRY_OK)
            goto fail;
    }
    if (c->n_dnn && (st = cuda_dnn_stream_init(s)) != FERRY_OK)
        goto fail;
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
    cuda_dnn_stream_release(s);
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
