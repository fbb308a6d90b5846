/*
 * ferry.h - the whole public API of Ferry: high-throughput inference of ONNX
 * models on CPUs and NVIDIA GPUs, with an engine, a tensor pool, a dynamic
 * batcher and a KServe v2 HTTP server.
 *
 * Conventions
 * - Every fallible call returns ferry_status (FERRY_OK == 0) and writes its
 *   results through out-parameters. On failure, ferry_last_error() gives a
 *   thread-local message naming the thing at fault (file, node, tensor).
 * - Handles are opaque. Destructors accept NULL.
 * - Tensors cross the API as views (ferry_tensor): the caller owns the
 *   memory. Ferry never keeps a caller's pointer past the call, or, for
 *   asynchronous calls, past the completion callback.
 * - Shapes use FERRY_DIM_BATCH (-1) for the symbolic batch dimension in model
 *   metadata, and -k for a dimension of k*N (a reshape that merged the batch
 *   into a dim); tensors passed to run calls carry concrete shapes.
 * - Asynchronous failures: a completion callback (ferry_done_fn,
 *   ferry_request_fn) that receives a status other than FERRY_OK because a
 *   batch failed in the engine may call ferry_last_error() on its own
 *   thread for the reason; the message is valid until the callback
 *   returns. (A batcher's FERRY_ETIMEDOUT and FERRY_ESHUTDOWN are their
 *   own reason.)
 * - Linking: pkg-config --cflags --libs ferry (or --static for libferry.a),
 *   or CMake's find_package(ferry) and target ferry::ferry. Only names that
 *   start with ferry_ (and FERRY_ macros) are exported.
 */
#ifndef FERRY_H
#define FERRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function and object carries FERRY_API: the library is built
 * with hidden visibility, so that only these names are exported. */
#if defined(__GNUC__)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#define FERRY_VERSION "0.1.0"
#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0
#define FERRY_MAX_DIMS 8
#define FERRY_DIM_BATCH (-1)

typedef enum ferry_status {
    FERRY_OK = 0,
    FERRY_EINVAL,       /* a bad argument: NULL, out of range, inconsistent */
    FERRY_ENOMEM,       /* host or device allocation failed */
    FERRY_EIO,          /* a file could not be opened, read or written */
    FERRY_EPARSE,       /* a malformed model or input file */
    FERRY_EUNSUPPORTED, /* an operator, dtype, precision or device not supported */
    FERRY_ESHAPE,       /* shapes disagree (in the model or in the caller's tensors) */
    FERRY_EDTYPE,       /* a tensor of the wrong element type */
    FERRY_ETIMEDOUT,    /* a wait or a request deadline expired */
    FERRY_EBUSY,        /* a queue or pool is full / empty and the call would block */
    FERRY_ESHUTDOWN,    /* the object is shutting down; the request was not run */
    FERRY_EDEVICE,      /* a device runtime call (CUDA, cuBLASLt) failed */
    FERRY_ENOTFOUND,    /* a named thing (model, tensor, device) does not exist */
    FERRY_EINTERNAL,    /* a bug in Ferry */
} ferry_status;

/* Element types. The values are ONNX's TensorProto.DataType numbers. */
typedef enum ferry_dtype {
    FERRY_DTYPE_UNDEFINED = 0,
    FERRY_F32 = 1,
    FERRY_U8 = 2,
    FERRY_I8 = 3,
    FERRY_I32 = 6,
    FERRY_I64 = 7,
    FERRY_BOOL = 9,
    FERRY_F16 = 10,
    FERRY_F64 = 11,
    FERRY_BF16 = 16,
} ferry_dtype;

/* A view of caller-owned memory: dense, row-major. */
typedef struct ferry_tensor {
    ferry_dtype dtype;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    void *data;
} ferry_tensor;

/* Metadata of a model input or output; shape[i] == FERRY_DIM_BATCH marks the
 * batch dimension. The name is owned by the model. */
typedef struct ferry_tensor_info {
    const char *name;
    ferry_dtype dtype;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
} ferry_tensor_info;

/* The library's version ("0.1.0"): that of the libferry actually loaded,
 * which may differ from the FERRY_VERSION this program was compiled with. */
FERRY_API const char *ferry_version(void);

/* Names a status ("FERRY_ESHAPE"). Never NULL. */
FERRY_API const char *ferry_status_str(ferry_status st);

/* The message of the last failed call on this thread ("" if none). Valid
 * until the next Ferry call on the same thread. */
FERRY_API const char *ferry_last_error(void);

/* Name ("f32", "f16", ...) and size in bytes of a dtype; 0 for unknown. */
FERRY_API const char *ferry_dtype_name(ferry_dtype dt);
FERRY_API size_t ferry_dtype_size(ferry_dtype dt);

/* Number of elements of a tensor view (product of its shape). */
FERRY_API int64_t ferry_tensor_numel(const ferry_tensor *t);

/* ------------------------------------------------------------------ model */

typedef struct ferry_model ferry_model;

/* Loads an ONNX file, with external-data files resolved next to it, runs
 * shape inference and the graph passes (constant folding, fusion).
 * Errors: FERRY_EIO (unreadable), FERRY_EPARSE (not ONNX, truncated),
 * FERRY_EUNSUPPORTED (operator; the message names node and op),
 * FERRY_ESHAPE (shapes in the model disagree). Any thread. */
FERRY_API ferry_status ferry_model_load(const char *path, ferry_model **out);

/* As ferry_model_load, from memory. base_dir resolves external data (may be
 * NULL: external data is then an error). The buffer is not kept. */
FERRY_API ferry_status ferry_model_load_buffer(const void *buf, size_t len, const char *base_dir,
                                               ferry_model **out);

FERRY_API void ferry_model_destroy(ferry_model *m);

/* Length buckets: a model whose inputs have a second symbolic axis besides
 * the batch (a sequence length: the export's dynamic_axes name it, e.g.
 * {1: 'sequence'}) is loaded once per bucket length L with that axis fixed
 * to L, and runs batches of those lengths; a batcher pads each request to
 * the smallest bucket that holds it (ferry_batcher_config.mask_input).
 * ferry_model_load loads such a model with the default buckets
 * (16, 24, 32, 48, 64, 96, 128, 192, ... 512, stopping at the first length
 * the model refuses, e.g. one longer than its position table). */
typedef struct ferry_model_options {
    const char *length_axis;       /* dim_param of the length axis; NULL: the inputs' one symbolic
                                      axis besides the batch, if any */
    const int64_t *length_buckets; /* ascending lengths; NULL: the defaults above */
    int n_length_buckets;
} ferry_model_options;
FERRY_API void ferry_model_options_init(ferry_model_options *o);
/* As ferry_model_load, with options (NULL: the defaults). FERRY_ENOTFOUND
 * when no input declares the named length_axis; FERRY_EINVAL for buckets
 * that are not ascending positive lengths. */
FERRY_API ferry_status ferry_model_load_opts(const char *path, const ferry_model_options *o,
                                             ferry_model **out);
/* The model's length buckets: their count (0: no length axis) and the
 * length of bucket k, ascending. ferry_model_input/_output give shapes at
 * the longest; ferry_model_length_dim gives the dim of input or output i
 * that is the length axis (0: none, a pooled output). Its name: "" if none. */
FERRY_API int ferry_model_num_lengths(const ferry_model *m);
FERRY_API int64_t ferry_model_length(const ferry_model *m, int k);
FERRY_API int ferry_model_length_dim(const ferry_model *m, int is_output, int i);
FERRY_API const char *ferry_model_length_axis(const ferry_model *m);

FERRY_API int ferry_model_num_inputs(const ferry_model *m);
FERRY_API int ferry_model_num_outputs(const ferry_model *m);
/* Fills *out for input/output i. FERRY_EINVAL if i is out of range. */
FERRY_API ferry_status ferry_model_input(const ferry_model *m, int i, ferry_tensor_info *out);
FERRY_API ferry_status ferry_model_output(const ferry_model *m, int i, ferry_tensor_info *out);

/* Introspection (src/engine/introspect.c): what `ferry info` prints. Shapes
 * are those of ferry_model_input: FERRY_DIM_BATCH is the batch N, -k is k*N.
 * Strings are owned by the model and live as long as it. Any thread. */

/* Producer ("pytorch"), ONNX opset, and the count of parameters (elements
 * of every constant after folding). */
FERRY_API const char *ferry_model_producer(const ferry_model *m);
FERRY_API int64_t ferry_model_opset(const ferry_model *m);
FERRY_API int64_t ferry_model_param_count(const ferry_model *m);

/* The operators of the loaded graph after constant folding and fusion,
 * with how many nodes run each: writes up to cap entries in name order,
 * and the number of distinct operators to *n_ops (call with cap 0 to
 * size the array). */
typedef struct ferry_op_count {
    const char *op; /* ONNX name: "Gemm", "Conv", "Relu" */
    int count;
} ferry_op_count;
FERRY_API ferry_status ferry_model_ops(const ferry_model *m, ferry_op_count *ops, int cap,
                                       int *n_ops);

/* The plan Ferry runs: one step per node in execution order (views such as
 * Reshape run no step). epilogue lists what fusion folded into the step
 * ("+bias+relu", "+residual+relu", "" for none). output is the step's first
 * output, its shape with FERRY_DIM_BATCH / -k symbols. Writes up to cap
 * steps; *n_steps gets the total (cap 0 to size the array). FERRY_ENOMEM
 * if the plan cannot be made. */
typedef struct ferry_step_info {
    const char *op;   /* "Gemm" */
    const char *name; /* the node's name in the file, or "<op>_<index>" */
    char epilogue[64];
    int n_inputs, n_outputs;
    ferry_tensor_info output;
} ferry_step_info;
FERRY_API ferry_status ferry_model_plan(const ferry_model *m, ferry_step_info *steps, int cap,
                                        int *n_steps);

/* The values an integer input can take without an error: [*lo, *hi) when
 * it indexes a table (token ids into an embedding, through a Gather),
 * else *lo = *hi = 0 (unknown). For random or checked inputs. */
FERRY_API ferry_status ferry_model_input_range(const ferry_model *m, int i, int64_t *lo,
                                               int64_t *hi);

/* What a model file declares, read without loading it (no shape inference,
 * no passes): the names of its symbolic axes ("batch") and its operators,
 * each marked supported or not, so that a model Ferry cannot run can still
 * be described. Strings are owned by the summary. Any thread. */
typedef struct ferry_summary ferry_summary;

/* FERRY_EIO (unreadable) or FERRY_EPARSE (not ONNX). */
FERRY_API ferry_status ferry_summary_load(const char *path, ferry_summary **out);
FERRY_API void ferry_summary_destroy(ferry_summary *s);
FERRY_API const char *ferry_summary_producer(const ferry_summary *s);
FERRY_API int64_t ferry_summary_opset(const ferry_summary *s);
FERRY_API int ferry_summary_num_nodes(const ferry_summary *s);
FERRY_API int ferry_summary_num_inputs(const ferry_summary *s);
FERRY_API int ferry_summary_num_outputs(const ferry_summary *s);
/* Input/output i as declared: a symbolic dimension is FERRY_DIM_BATCH,
 * its name given by ferry_summary_axis. FERRY_EINVAL if i is out of range. */
FERRY_API ferry_status ferry_summary_input(const ferry_summary *s, int i, ferry_tensor_info *out);
FERRY_API ferry_status ferry_summary_output(const ferry_summary *s, int i, ferry_tensor_info *out);
/* The name of dimension d of input (is_output 0) or output i where it is
 * symbolic ("batch"; "" if unnamed or fixed); NULL when out of range. */
FERRY_API const char *ferry_summary_axis(const ferry_summary *s, int is_output, int i, int d);
/* Distinct operators in the file ("Conv", or "domain.Op" outside the
 * default domain), with their node counts and whether Ferry has them. */
FERRY_API int ferry_summary_num_ops(const ferry_summary *s);
FERRY_API ferry_status ferry_summary_op(const ferry_summary *s, int k, const char **name,
                                        int *count, int *supported);

/* ----------------------------------------------------------------- engine */

typedef struct ferry_engine ferry_engine;

typedef enum ferry_precision {
    FERRY_PRECISION_FP32 = 0,
    FERRY_PRECISION_TF32,
    FERRY_PRECISION_FP16,
    FERRY_PRECISION_BF16,
} ferry_precision;

typedef enum ferry_sync {
    FERRY_SYNC_EVENT = 0, /* wait on each batch's own completion event */
    FERRY_SYNC_DEVICE,    /* wait on the whole device after each batch (slow baseline) */
} ferry_sync;

typedef struct ferry_engine_config {
    const char *device;        /* "cpu" (default), "cuda", "cuda:N"; several GPUs:
                                  "cuda:all" or a list "cuda:0,cuda:2" (one device
                                  listed twice is two replicas on it) - one compiled
                                  model per device, workers per device, each batch to
                                  the device that frees a slot first */
    int workers;               /* threads (CPU) or streams (CUDA); 0 (default): one per core
                                  on the CPU, 2 streams on CUDA */
    int max_batch;             /* largest batch one worker runs at once; default 256 */
    int pipeline_depth;        /* batches in flight per worker; default 2 */
    ferry_precision precision; /* default fp32 */
    int graphs;                /* capture the forward per batch size (CUDA); default 0 */
    ferry_sync sync;           /* default FERRY_SYNC_EVENT */
    ferry_dtype io_dtype;      /* dtype of the caller's float tensors; default FERRY_F32 */
} ferry_engine_config;

/* Fills *cfg with the defaults above. */
FERRY_API void ferry_engine_config_init(ferry_engine_config *cfg);

/* Compiles the model for the device: plans memory, converts weights once,
 * allocates every worker's buffers (nothing is allocated per run after
 * warm-up). cfg (NULL: the defaults) is copied, its device string too.
 * The engine keeps a reference to the model: destroy the model
 * after the engine. FERRY_EUNSUPPORTED for a precision or device the build
 * or the hardware cannot do; FERRY_ENOMEM names the bytes asked and free. */
FERRY_API ferry_status ferry_engine_create(const ferry_model *m, const ferry_engine_config *cfg,
                                           ferry_engine **out);

/* Waits for every submitted batch, then frees. Accepts NULL. */
FERRY_API void ferry_engine_destroy(ferry_engine *e);

/* Runs every worker once at a few batch sizes (and captures graphs when
 * cfg.graphs), so that later runs pay no first-call costs. */
FERRY_API ferry_status ferry_engine_warmup(ferry_engine *e);

/* The concrete shape of output i for a batch of n samples (with length
 * buckets: at the longest length). */
FERRY_API ferry_status ferry_engine_output_info(const ferry_engine *e, int i, int64_t n,
                                                ferry_tensor *out);
/* As ferry_engine_output_info, for a batch whose length axis is `length`
 * (ferry_model_length_dim); the same for a model without one. */
FERRY_API ferry_status ferry_engine_output_info_len(const ferry_engine *e, int i, int64_t n,
                                                    int64_t length, ferry_tensor *out);

/* Runs one batch of any size and blocks until done. A batch is split into
 * chunks of at most max_batch samples, and a large batch into one chunk per
 * worker, so that all workers (cores, or streams whose copies overlap each
 * other's compute) share it. inputs[n_in], outputs[n_out] in model
 * order; output tensors must carry the shape ferry_engine_output_info gives
 * and point to caller memory. Thread-safe: any number of callers. */
FERRY_API ferry_status ferry_engine_run(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                                        ferry_tensor *outputs, int n_out);

/* Runs n_batches batches, pipelined across workers; blocks until all are
 * done. Batch b's tensors are inputs[b*n_in .. b*n_in+n_in-1] and
 * outputs[b*n_out ..]. Returns the first error; every batch still runs. */
FERRY_API ferry_status ferry_engine_run_many(ferry_engine *e, int n_batches,
                                             const ferry_tensor *inputs, int n_in,
                                             ferry_tensor *outputs, int n_out);

/* Completion callback of an asynchronous call; runs on an engine thread.
 * When st != FERRY_OK, ferry_last_error() called inside the callback gives
 * the reason (the engine thread's message for that batch). */
typedef void (*ferry_done_fn)(void *user, ferry_status st);

/* Queues one batch of at most max_batch samples and returns at once (blocks
 * only while every worker has pipeline_depth batches in flight). done runs
 * exactly once, after the outputs are written. The tensors' memory must
 * stay valid until then; the tensor structs themselves are copied. */
FERRY_API ferry_status ferry_engine_submit(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                                           ferry_tensor *outputs, int n_out, ferry_done_fn done,
                                           void *user);

/* Device description ("cpu", "cuda:0 NVIDIA H100 80GB HBM3"; several
 * devices joined by " + ") of an engine. */
FERRY_API const char *ferry_engine_device(const ferry_engine *e);
/* How many devices the engine runs on (1 unless its device was a list or
 * "cuda:all"), and the description of device k. */
FERRY_API int ferry_engine_num_devices(const ferry_engine *e);
FERRY_API const char *ferry_engine_device_at(const ferry_engine *e, int k);
/* 1 while device k serves; 0 once a batch on it failed with FERRY_EDEVICE
 * (an error on its stream) while other devices remain: its slots are then
 * not used again, only the batches it held failed, and the others carry
 * on. The server's model ready endpoint answers ready while any is. */
FERRY_API int ferry_engine_device_ok(const ferry_engine *e, int k);
FERRY_API const ferry_engine_config *ferry_engine_get_config(const ferry_engine *e);

typedef struct ferry_engine_stats {
    uint64_t batches;    /* batches run */
    uint64_t samples;    /* samples run */
    uint64_t compute_us; /* summed wall time from dispatch to completion */
} ferry_engine_stats;
FERRY_API void ferry_engine_get_stats(const ferry_engine *e, ferry_engine_stats *out);

/* Backends compiled into this build ("cpu", "cuda") and devices visible:
 * writes a human-readable, newline-separated list into buf. */
FERRY_API void ferry_backends_describe(char *buf, size_t len);

/* ------------------------------------------------------------------- pool */

typedef struct ferry_pool ferry_pool;

/* pool_size pre-allocated tensors of one shape and dtype. device: "cpu"
 * (aligned host memory), "pinned" (page-locked host memory for GPU staging;
 * falls back to aligned host memory when CUDA is absent), "cuda[:N]"
 * (device memory). Thread-safe. */
FERRY_API ferry_status ferry_pool_create(const int64_t *shape, int ndim, ferry_dtype dtype,
                                         const char *device, int pool_size, ferry_pool **out);
/* Frees every tensor and the pool; accepts NULL (FERRY_OK). Unlike the
 * other destructors it can refuse: while tensors are still acquired it
 * returns FERRY_EBUSY and frees nothing, since their holders may still be
 * writing to that memory (freeing would turn a missing release into a
 * use-after-free); release them and call it again. */
FERRY_API ferry_status ferry_pool_destroy(ferry_pool *p);

/* Takes a free tensor into *out, waiting up to timeout_us (< 0: forever).
 * FERRY_ETIMEDOUT when none frees up in time. */
FERRY_API ferry_status ferry_pool_acquire(ferry_pool *p, int64_t timeout_us, ferry_tensor *out);
/* As acquire, never waits: FERRY_EBUSY when none is free. */
FERRY_API ferry_status ferry_pool_try_acquire(ferry_pool *p, ferry_tensor *out);
/* Gives a tensor back. FERRY_EINVAL for a pointer not from this pool or
 * one already released. */
FERRY_API ferry_status ferry_pool_release(ferry_pool *p, const ferry_tensor *t);

typedef struct ferry_pool_stats {
    uint64_t acquisitions; /* successful acquires */
    uint64_t waits;        /* acquires that had to wait */
    uint64_t timeouts;     /* acquires that timed out or found none (try) */
    int in_use;            /* out now */
    int high_water;        /* most out at once */
    int size;              /* pool_size */
} ferry_pool_stats;
FERRY_API void ferry_pool_get_stats(ferry_pool *p, ferry_pool_stats *out);

/* ---------------------------------------------------------------- batcher */

typedef struct ferry_batcher ferry_batcher;

#define FERRY_MAX_PREFERRED 8

typedef struct ferry_batcher_config {
    int max_batch;        /* samples per batch; default: the engine's max_batch */
    int64_t max_delay_us; /* longest the first request of a batch waits; default 500.
                             While fewer batches are running than the engine has
                             workers, a forming batch leaves at once: an idle
                             device gains nothing from waiting (not with
                             preferred_batch_sizes set, which wait for their size) */
    int preferred_batch_sizes[FERRY_MAX_PREFERRED]; /* dispatch when reached */
    int n_preferred;                                /* default 0 */
    int max_queue; /* queued requests beyond which submit is FERRY_EBUSY; default 65536 */
    int64_t default_timeout_us; /* per-request deadline when none given; 0 = none */
    int priority_levels;        /* 1..8; higher priority value served first; default 1 */
    int default_priority;       /* level of a request submitted without opts: 0..levels-1;
                                   default 0, the lowest */
    /* Models with length buckets (ferry_model_num_lengths > 0): each request
     * is padded to the smallest bucket that holds it and batched with that
     * bucket's requests (src/batcher/buckets.c). */
    const char *mask_input; /* the attention mask, 0 on padding; NULL: the input named
                               attention_mask or mask */
    int pad;                /* 1: pad a model that has no mask input (its results change) */
} ferry_batcher_config;

FERRY_API void ferry_batcher_config_init(ferry_batcher_config *cfg);

/* Starts a batcher over an engine (which must outlive it). */
FERRY_API ferry_status ferry_batcher_create(ferry_engine *e, const ferry_batcher_config *cfg,
                                            ferry_batcher **out);

/* Drains: every accepted request completes (result, or FERRY_ESHUTDOWN if
 * it could not run) before this returns. Accepts NULL. */
FERRY_API void ferry_batcher_destroy(ferry_batcher *b);
/* The batcher's configuration, with its defaults applied (max_batch is the
 * engine's when it was 0). Valid while b lives; any thread. */
FERRY_API const ferry_batcher_config *ferry_batcher_get_config(const ferry_batcher *b);

typedef struct ferry_request_opts {
    int priority;       /* 0 .. priority_levels-1; higher first */
    int64_t timeout_us; /* deadline from submission; 0 = the default; < 0 = none */
} ferry_request_opts;

/* Called exactly once per accepted request, on a batcher or engine thread,
 * after outputs are written (on FERRY_OK). On an engine failure,
 * ferry_last_error() inside the callback gives the engine's reason. A
 * request is failed only by what it holds: integer ids outside the table
 * they index are refused at submit, and a batch that fails on its data
 * (FERRY_EINVAL, FERRY_ESHAPE: an index the model computes) runs each of
 * its requests again alone, so the others still get their answers. It must be quick and must not
 * block, call ferry_batcher_infer or destroy the batcher: it runs on the
 * path that completes other requests. */
typedef void (*ferry_request_fn)(void *user, ferry_status st);

/* Queues a request of k >= 1 samples (the tensors' leading dimension), never
 * split across batches. Inputs are copied before this returns; outputs must
 * stay valid until cb runs. FERRY_EBUSY at once when the queue is full,
 * FERRY_EINVAL/ESHAPE/EDTYPE for bad tensors or k > max_batch; then cb is
 * never called. opts may be NULL. */
FERRY_API ferry_status ferry_batcher_submit(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                                            ferry_tensor *outputs, int n_out,
                                            const ferry_request_opts *opts, ferry_request_fn cb,
                                            void *user);

/* Blocking form of submit: returns the request's final status. */
FERRY_API ferry_status ferry_batcher_infer(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                                           ferry_tensor *outputs, int n_out,
                                           const ferry_request_opts *opts);

/* Histogram buckets: upper bounds, the last is +Inf. */
#define FERRY_LAT_BUCKETS                                                                          \
    16 /* microseconds: 50,100,250,500,1e3,2.5e3,5e3,1e4,2.5e4,5e4,1e5,2.5e5,5e5,1e6,1e7,+Inf */
#define FERRY_BATCH_BUCKETS 18 /* samples: 1,2,4,...,65536,+Inf */
extern const double ferry_lat_bucket_bounds_us[FERRY_LAT_BUCKETS - 1];

typedef struct ferry_batcher_stats {
    uint64_t submitted; /* accepted + rejected */
    uint64_t succeeded, failed, rejected, expired;
    uint64_t batches, samples;
    uint64_t queue_depth; /* requests waiting now */
    uint64_t queue_us_sum, compute_us_sum, request_us_sum;
    /* Summed over successful requests, each adding its batch's time (as
     * Triton counts them): copying the batch's inputs into the engine's
     * staging, dispatch to the engine's completion, copying the outputs out */
    uint64_t req_compute_input_us, req_compute_infer_us, req_compute_output_us;
    uint64_t queue_hist[FERRY_LAT_BUCKETS];   /* per request: submit -> dispatch */
    uint64_t compute_hist[FERRY_LAT_BUCKETS]; /* per batch: dispatch -> completion */
    uint64_t batch_hist[FERRY_BATCH_BUCKETS]; /* per batch: samples */
} ferry_batcher_stats;
FERRY_API void ferry_batcher_get_stats(ferry_batcher *b, ferry_batcher_stats *out);

/* Padding into length buckets, per request: the share of its bucket's
 * positions that are padding, (bucket - length) / bucket, in buckets with
 * upper bounds 0 (an exact fit), 0.1, ..., 0.9, +Inf ("le", as Prometheus). */
#define FERRY_PAD_BUCKETS 11
FERRY_API extern const double ferry_pad_bucket_bounds[FERRY_PAD_BUCKETS - 1];
typedef struct ferry_padding_stats {
    uint64_t requests;    /* accepted into a length bucket */
    uint64_t tokens;      /* their positions: samples x length */
    uint64_t padding;     /* positions of padding added to them */
    uint64_t percent_sum; /* over requests: 100 x their padding share, rounded */
    uint64_t hist[FERRY_PAD_BUCKETS];
} ferry_padding_stats;
/* Fills *out; returns the batcher's number of length buckets (0: it does
 * not pad, and *out is zero). Any thread. */
FERRY_API int ferry_batcher_get_padding(ferry_batcher *b, ferry_padding_stats *out);

/* ----------------------------------------------------------------- server */

/* Threading: the server's own functions (create, add_model, start, port,
 * stop, destroy) are for one controlling thread, not to be called
 * concurrently on one server: add every model, then start; stop (or
 * destroy, which stops) may come from any thread once start has returned,
 * but only once. While it runs, the server calls the batchers from its HTTP
 * threads; the engine, model and batcher given to it are its own, and the
 * caller must not use or destroy them. Several servers may run at once. */
typedef struct ferry_server ferry_server;

/* What the server writes to stderr, each level including those before it. */
typedef enum ferry_log_level {
    FERRY_LOG_OFF = 0, /* nothing (the default for the API: a library is quiet) */
    FERRY_LOG_ERROR,   /* requests the engine failed (500) */
    FERRY_LOG_WARN,    /* every other failed infer request: model, status, reason */
    FERRY_LOG_INFO,    /* the access log, when access_log is set */
    FERRY_LOG_VERBOSE, /* every request (the access log), messages with source locations */
} ferry_log_level;

typedef struct ferry_server_config {
    const char *host; /* default "127.0.0.1" */
    int port;         /* default 8000; 0 picks a free port */
    size_t max_body;  /* bytes; default 64 MiB; larger bodies get 413 */
    int threads;      /* HTTP threads; default: number of cores */
    /* seconds a connection may go without sending a byte before it is
     * closed (a request waiting for its batch is not idle); 0: the default,
     * 30; -1: never. A client trickling a byte at a time resets it. */
    int connection_timeout;
    /* 0 (default): an input whose datatype is not the model's is refused
     * (400), as Triton does; 1: any numeric datatype is accepted and
     * converted to the model's, range-checked element by element. */
    int convert_datatypes;
    ferry_log_level log_level; /* default FERRY_LOG_OFF */
    int access_log;            /* 1: a line a request at FERRY_LOG_INFO */
} ferry_server_config;

FERRY_API void ferry_server_config_init(ferry_server_config *cfg);
FERRY_API ferry_status ferry_server_create(const ferry_server_config *cfg, ferry_server **out);
/* Serves a model under name (version may be NULL: "1"). The server takes
 * ownership of batcher, engine and model and destroys them in that order. */
FERRY_API ferry_status ferry_server_add_model(ferry_server *s, const char *name,
                                              const char *version, ferry_model *m, ferry_engine *e,
                                              ferry_batcher *b);
/* ---- model repository (Triton's layout and repository extension) */

typedef enum ferry_model_control {
    FERRY_MODEL_CONTROL_NONE = 0, /* load every model at start; no load/unload requests */
    FERRY_MODEL_CONTROL_EXPLICIT, /* load what cfg.load names, then on request */
    FERRY_MODEL_CONTROL_POLL,     /* load every model; rescan and reload what changed */
} ferry_model_control;

typedef struct ferry_repository_config {
    const char *path; /* DIR: DIR/NAME/[config.pbtxt], DIR/NAME/VERSION/model.onnx */
    ferry_model_control control;
    int poll_secs;           /* POLL: seconds between scans; default 15 */
    const char *const *load; /* EXPLICIT: names loaded at start */
    int n_load;
    ferry_engine_config engine;   /* every model's defaults, which its config.pbtxt */
    ferry_batcher_config batcher; /* overrides (max_batch_size, dynamic_batching, ...) */
    const ferry_model_options *model_options; /* how files load (copied); NULL: defaults */
    /* What happens to the repository's models: loads, unloads, failures,
     * config.pbtxt fields not applied. level: 0 error, 1 warning, 2 info.
     * From the caller's thread during set_repository, then from the
     * repository's thread. NULL: written to stderr. */
    void (*log)(void *user, int level, const char *msg);
    void *log_user;
} ferry_repository_config;

FERRY_API void ferry_repository_config_init(ferry_repository_config *cfg);
/* Serves the models of a model repository beside those added (before
 * start; once): loads the models the control mode asks for now, each
 * version's engine and batcher built from cfg as its config.pbtxt says.
 * A model that fails to load is reported through cfg.log and the others
 * are served. Enables POST /v2/repository/index and, in EXPLICIT mode,
 * .../models/NAME/load and /unload. Fails only for a bad cfg or a path
 * that is not a readable directory. */
FERRY_API ferry_status ferry_server_set_repository(ferry_server *s,
                                                   const ferry_repository_config *cfg);
FERRY_API ferry_status ferry_server_start(ferry_server *s);
/* The port the server listens on (after start). */
FERRY_API int ferry_server_port(const ferry_server *s);
/* Stops accepting, finishes every accepted request, stops. */
FERRY_API ferry_status ferry_server_stop(ferry_server *s);
FERRY_API void ferry_server_destroy(ferry_server *s);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_H */
