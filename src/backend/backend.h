/*
 * backend.h - the backend vtable. The engine calls a device only through a
 * ferry_backend_ops table; it never includes a backend's headers. A backend
 * not built (no CUDA toolkit) is absent from backend_find(), not stubbed.
 *
 * Model of execution (CUDA-like; the CPU backend runs everything inline and
 * its "streams" are the calling thread):
 *   ctx      one per engine: the device, the compiled graph, weights
 *            converted once to the compute precision, the memory plan.
 *   stream   one per engine worker: work on it runs in order.
 *   event    marks a point on a stream; the host may wait on it.
 * A batch is: copy_h2d(in) -> forward -> copy_d2h(out) on one stream.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "graph/graph.h"

typedef struct backend_ctx backend_ctx;
typedef struct backend_stream backend_stream;
typedef struct backend_event backend_event;
typedef struct backend_graph backend_graph;

typedef struct backend_opts {
    int device; /* device index */
    ferry_precision precision;
    ferry_dtype io_dtype; /* dtype of float inputs/outputs in device I/O buffers */
    int64_t max_batch;    /* largest batch forward() will be given */
} backend_opts;

typedef struct ferry_backend_ops {
    const char *name; /* "cpu", "cuda" */
    int host_visible; /* 1: device memory is host memory; the engine skips staging copies */

    /* Number of devices and a one-line description of each ("cuda:0 NVIDIA H100 ..."),
     * newline-separated, into desc. FERRY_EDEVICE if the runtime is absent. */
    ferry_status (*probe)(int *n_devices, char *desc, size_t desc_len);

    /* Compiles g for the device: checks every op is supported (FERRY_EUNSUPPORTED
     * naming node and op, or the precision), converts/uploads constants, plans
     * the arena for max_batch. g must outlive the ctx. */
    ferry_status (*ctx_create)(const graph *g, const backend_opts *o, backend_ctx **out);
    void (*ctx_destroy)(backend_ctx *c);
    const char *(*ctx_device_name)(backend_ctx *c);
    /* Bytes of scratch arena one forward() at max_batch needs. */
    size_t (*arena_bytes)(backend_ctx *c);

    /* Device memory (plain cudaMalloc on CUDA, aligned malloc on CPU). */
    ferry_status (*alloc)(backend_ctx *c, size_t bytes, void **out);
    void (*free)(backend_ctx *c, void *p);
    /* Host memory for staging: pinned on CUDA. */
    ferry_status (*host_alloc)(backend_ctx *c, size_t bytes, void **out);
    void (*host_free)(backend_ctx *c, void *p);

    ferry_status (*stream_create)(backend_ctx *c, backend_stream **out);
    void (*stream_destroy)(backend_stream *s);

    /* Asynchronous on the stream. */
    ferry_status (*copy_h2d)(backend_stream *s, void *dst, const void *src, size_t bytes);
    ferry_status (*copy_d2h)(backend_stream *s, void *dst, const void *src, size_t bytes);

    /* Runs the whole planned graph for a batch of n (1 <= n <= max_batch).
     * in[i]/out[i]: device buffers of graph input/output i, in io_dtype for
     * float tensors (the backend converts to and from its compute precision).
     * arena: arena_bytes() of device scratch owned by the caller's slot. */
    ferry_status (*forward)(backend_stream *s, int64_t n, const void *const *in, void *const *out,
                            void *arena);
    /* Optional (NULL when absent): evaluates node k of g, whose inputs are
     * all constants with static shapes, into host buffers outs[] of each
     * output's dtype and size. Constant folding calls the CPU backend's. */
    ferry_status (*eval_node)(const graph *g, int k, void *const *outs);
    /* Optional: the same from host memory in to host memory out with no
     * copies, where the backend can (on CUDA: a fused MLP at a small batch,
     * pinned buffers). Sets *done = 0 and does nothing where it cannot. */
    ferry_status (*forward_host)(backend_stream *s, int64_t n, const void *const *in,
                                 void *const *out, int *done);

    /* Waits for everything queued on the stream / on the whole device. */
    ferry_status (*stream_sync)(backend_stream *s);
    ferry_status (*device_sync)(backend_ctx *c);

    ferry_status (*event_create)(backend_ctx *c, backend_event **out);
    void (*event_destroy)(backend_event *e);
    ferry_status (*event_record)(backend_event *e, backend_stream *s);
    ferry_status (*event_sync)(backend_event *e);

    /* Optional (NULL when unsupported): capture the work queued on s between
     * begin and end into a replayable graph. */
    ferry_status (*capture_begin)(backend_stream *s);
    ferry_status (*capture_end)(backend_stream *s, backend_graph **out);
    ferry_status (*graph_launch)(backend_graph *g, backend_stream *s);
    void (*graph_destroy)(backend_graph *g);
} ferry_backend_ops;

/* Backends built into this binary, by name ("cpu", "cuda"); NULL if absent. */
const ferry_backend_ops *backend_find(const char *name);
/* NULL-terminated list of built backends. */
const ferry_backend_ops *const *backend_list(void);

/* Each backend's table; defined only when built. */
extern const ferry_backend_ops ferry_backend_cpu;
#ifdef FERRY_HAVE_CUDA
extern const ferry_backend_ops ferry_backend_cuda;
#endif

#endif /* FERRY_BACKEND_H */
