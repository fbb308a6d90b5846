/*
 * pool.c - ferry_pool: a bounded set of pre-allocated tensors of one shape,
 * handed out and taken back under one mutex. The critical section only
 * pops or pushes an index, so contention stays low even with many threads;
 * waiting uses a condition variable on the monotonic clock.
 *
 * Memory: "cpu" is 64-byte aligned host memory; "pinned" is page-locked host
 * memory from the CUDA backend (DMA-able, so copies to the GPU run at full
 * PCIe speed and asynchronously), or aligned host memory when this build or
 * machine has no CUDA; "cuda[:N]" is device memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "util/error.h"
#include "util/timeutil.h"

struct ferry_pool {
    ferry_tensor proto; /* dtype and shape; data NULL */
    size_t bytes;
    int size;
    void **bufs;
    unsigned char *out; /* per buffer: handed out now */
    int *free_idx;      /* stack of free buffer indices */
    int n_free;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ferry_pool_stats st;
    /* where the memory came from */
    const ferry_backend_ops *ops;
    backend_ctx *ctx;
    graph *empty; /* the empty graph a memory-only backend context is made from */
    int kind;     /* 0 host, 1 pinned, 2 device */
};

static ferry_status open_backend(ferry_pool *p, const char *name, int index)
{
    p->ops = backend_find(name);
    if (!p->ops)
        return ferry_fail(FERRY_EUNSUPPORTED, "pool device '%s': this build has no %s backend",
                          name, name);
    p->empty = graph_new();
    if (!p->empty)
        return FERRY_ENOMEM;
    backend_opts o = {
        .device = index, .precision = FERRY_PRECISION_FP32, .io_dtype = FERRY_F32, .max_batch = 1};
    return p->ops->ctx_create(p->empty, &o, &p->ctx);
}

static void free_buf(ferry_pool *p, void *b)
{
    if (!b)
        return;
    if (p->kind == 1 && p->ctx)
        p->ops->host_free(p->ctx, b);
    else if (p->kind == 2 && p->ctx)
        p->ops->free(p->ctx, b);
    else
        free(b);
}

static void pool_free(ferry_pool *p)
{
    for (int i = 0; p->bufs && i < p->size; i++)
        free_buf(p, p->bufs[i]);
    if (p->ctx)
        p->ops->ctx_destroy(p->ctx);
    graph_free(p->empty);
    free(p->bufs);
    free(p->out);
    free(p->free_idx);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

ferry_status ferry_pool_create(const int64_t *shape, int ndim, ferry_dtype dtype,
                               const char *device, int pool_size, ferry_pool **out)
{
    ferry_status st = FERRY_OK;
    if (!out || (!shape && ndim > 0))
        return ferry_fail(FERRY_EINVAL, "ferry_pool_create: shape and out must not be NULL");
    *out = NULL;
    if (ndim < 0 || ndim > FERRY_MAX_DIMS)
        return ferry_fail(FERRY_EINVAL, "pool tensor rank %d: expected 0..%d", ndim,
                          FERRY_MAX_DIMS);
    if (pool_size < 1 || pool_size > 1 << 20)
        return ferry_fail(FERRY_EINVAL, "pool_size %d: expected 1..%d", pool_size, 1 << 20);
    size_t esz = ferry_dtype_size(dtype);
    if (!esz)
        return ferry_fail(FERRY_EDTYPE, "pool dtype %d is not a known dtype", (int)dtype);
    size_t bytes = esz;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && bytes > SIZE_MAX / 2 / (size_t)shape[i]))
            return ferry_fail(FERRY_EINVAL, "pool shape dim %d = %lld is negative or too large", i,
                              (long long)shape[i]);
        bytes *= (size_t)shape[i];
    }
    if (!device)
        device = "cpu";

    ferry_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->proto.dtype = dtype;
    p->proto.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        p->proto.shape[i] = shape[i];
    p->bytes = bytes;
    p->size = pool_size;
    p->st.size = pool_size;

    if (!strcmp(device, "cpu")) {
        p->kind = 0;
    } else if (!strcmp(device, "pinned")) {
        p->kind = 1;
        int n = 0;
        char desc[256];
        const ferry_backend_ops *cu = backend_find("cuda");
        if (!cu || cu->probe(&n, desc, sizeof desc) != FERRY_OK || n < 1 ||
            open_backend(p, "cuda", 0) != FERRY_OK) {
            p->kind = 0; /* no GPU: plain host memory serves the same purpose */
            if (p->ctx)
                p->ops->ctx_destroy(p->ctx);
            p->ctx = NULL;
            ferry_clear_error();
        }
    } else if (!strncmp(device, "cuda", 4) && (device[4] == '\0' || device[4] == ':')) {
        p->kind = 2;
        int index = device[4] == ':' ? atoi(device + 5) : 0;
        if ((st = open_backend(p, "cuda", index)) != FERRY_OK) {
            ferry_fail_prefix(st, "pool device '%s'", device);
            goto fail;
        }
    } else {
        st = ferry_fail(FERRY_EINVAL, "pool device '%s': expected cpu, pinned, cuda or cuda:N",
                        device);
        goto fail;
    }

    p->bufs = calloc((size_t)pool_size, sizeof *p->bufs);
    p->out = calloc((size_t)pool_size, 1);
    p->free_idx = calloc((size_t)pool_size, sizeof *p->free_idx);
    if (!p->bufs || !p->out || !p->free_idx) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating a pool of %d", pool_size);
        goto fail;
    }
    size_t alloc_bytes = bytes ? (bytes + 63) / 64 * 64 : 64;
    for (int i = 0; i < pool_size; i++) {
        if (p->kind == 0) {
            p->bufs[i] = aligned_alloc(64, alloc_bytes);
            if (!p->bufs[i]) {
                st = ferry_fail(FERRY_ENOMEM, "out of memory: pool tensor %d of %zu bytes", i,
                                bytes);
                goto fail;
            }
            memset(p->bufs[i], 0, alloc_bytes);
        } else if (p->kind == 1) {
            if ((st = p->ops->host_alloc(p->ctx, alloc_bytes, &p->bufs[i])) != FERRY_OK)
                goto fail;
        } else if ((st = p->ops->alloc(p->ctx, alloc_bytes, &p->bufs[i])) != FERRY_OK) {
            goto fail;
        }
    }
    for (int i = 0; i < pool_size; i++)
        p->free_idx[p->n_free++] = pool_size - 1 - i;
    *out = p;
    return FERRY_OK;
fail:
    pool_free(p);
    return st;
}

ferry_status ferry_pool_destroy(ferry_pool *p)
{
    if (!p)
        return FERRY_OK;
    pthread_mutex_lock(&p->mu);
    int in_use = p->st.in_use;
    pthread_mutex_unlock(&p->mu);
    if (in_use)
        return ferry_fail(FERRY_EBUSY, "pool has %d tensors still acquired", in_use);
    pool_free(p);
    return FERRY_OK;
}

static void hand_out(ferry_pool *p, ferry_tensor *out)
{
    int i = p->free_idx[--p->n_free];
    p->out[i] = 1;
    p->st.acquisitions++;
    if (++p->st.in_use > p->st.high_water)
        p->st.high_water = p->st.in_use;
    *out = p->proto;
    out->data = p->bufs[i];
}

ferry_status ferry_pool_acquire(ferry_pool *p, int64_t timeout_us, ferry_tensor *out)
{
    if (!p || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_pool_acquire: pool and out must not be NULL");
    struct timespec dl;
    if (timeout_us > 0)
        ferry_deadline_after(timeout_us, &dl);
    pthread_mutex_lock(&p->mu);
    if (p->n_free == 0 && timeout_us != 0)
        p->st.waits++;
    while (p->n_free == 0) {
        int rc = 0;
        if (timeout_us < 0)
            pthread_cond_wait(&p->cv, &p->mu);
        else if (timeout_us == 0 ||
                 (rc = pthread_cond_timedwait(&p->cv, &p->mu, &dl)) == ETIMEDOUT) {
            if (p->n_free)
                break;
            p->st.timeouts++;
            pthread_mutex_unlock(&p->mu);
            return ferry_fail(FERRY_ETIMEDOUT, "pool exhausted: all %d tensors in use for %lld us",
                              p->size, (long long)timeout_us);
        }
    }
    hand_out(p, out);
    pthread_mutex_unlock(&p->mu);
    return FERRY_OK;
}

ferry_status ferry_pool_try_acquire(ferry_pool *p, ferry_tensor *out)
{
    if (!p || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_pool_try_acquire: pool and out must not be NULL");
    pthread_mutex_lock(&p->mu);
    if (p->n_free == 0) {
        p->st.timeouts++;
        pthread_mutex_unlock(&p->mu);
        return ferry_fail(FERRY_EBUSY, "pool exhausted: all %d tensors in use", p->size);
    }
    hand_out(p, out);
    pthread_mutex_unlock(&p->mu);
    return FERRY_OK;
}

ferry_status ferry_pool_release(ferry_pool *p, const ferry_tensor *t)
{
    if (!p || !t)
        return ferry_fail(FERRY_EINVAL, "ferry_pool_release: pool and tensor must not be NULL");
    int i;
    for (i = 0; i < p->size; i++)
        if (p->bufs[i] == t->data)
            break;
    if (i == p->size)
        return ferry_fail(FERRY_EINVAL, "ferry_pool_release: %p was not allocated by this pool",
                          t->data);
    pthread_mutex_lock(&p->mu);
    if (!p->out[i]) {
        pthread_mutex_unlock(&p->mu);
        return ferry_fail(FERRY_EINVAL,
                          "ferry_pool_release: tensor %d (%p) is not acquired "
                          "(double release?)",
                          i, t->data);
    }
    p->out[i] = 0;
    p->free_idx[p->n_free++] = i;
    p->st.in_use--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return FERRY_OK;
}

void ferry_pool_get_stats(ferry_pool *p, ferry_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}
