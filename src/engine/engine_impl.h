/*
 * engine_impl.h - the engine's private structures, shared by engine.c
 * (creation, run/submit API), worker.c (worker and completion threads) and
 * pool.c (staging buffers).
 */
#ifndef FERRY_ENGINE_IMPL_H
#define FERRY_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "graph/model.h"

#define ENGINE_MAX_IO GRAPH_MAX_IO
#define ENGINE_MAX_BUCKETS 24
#define ENGINE_MAX_DEVICES 16

typedef struct worker worker;

/* Length buckets (graph/model.h): an engine over a model with a length
 * axis holds one engine per bucket, each a complete engine of its own
 * (workers, slots, arenas sized for its length), sharing one gate:
 * - slots: the buckets' engines together lend at most workers x
 *   pipeline_depth slots at once, as one engine would, handed to the
 *   engine that has waited longest (counted across a caller's timed-out
 *   tries, so a batcher that polls keeps its place: the buckets' requests
 *   are served about oldest first, as in one queue). A bucket's batcher (batcher/buckets.c) thus
 * holds its requests while the device is busy with other buckets' batches and sends them as one
 * batch when a slot frees up, instead of sending a trickle of small batches per bucket.
 * - cores (CPU): at most `workers` forwards run at once, in arrival order,
 *   so that seven buckets' worker threads do not time-slice two cores. */
typedef struct gate_waiter {
    struct gate_waiter *next;
    int granted;
    int64_t since;     /* when its engine began waiting: the queue's order */
    pthread_cond_t cv; /* its own: a release wakes only the waiter it serves */
} gate_waiter;

typedef struct engine_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next;            /* forward tickets handed out */
    uint64_t admitted;        /* forward tickets below this may run */
    int slots_free;           /* slot tokens */
    gate_waiter *head, *tail; /* waiting for a slot token, by since */
} engine_gate;

struct engine_slot {
    ferry_engine *e;
    worker *w;
    int index;                     /* within the worker */
    void *stage_in[ENGINE_MAX_IO]; /* host staging (pinned on CUDA) */
    void *stage_out[ENGINE_MAX_IO];
    void *dev_in[ENGINE_MAX_IO]; /* device I/O buffers (== staging when host-visible) */
    void *dev_out[ENGINE_MAX_IO];
    void *arena;
    backend_event *ev;
    backend_graph *graphs[ENGINE_MAX_BUCKETS]; /* captured forward per bucket */

    /* the job in this slot */
    int64_t n;
    const void *src[ENGINE_MAX_IO]; /* caller input memory, or NULL: staging */
    void *dst[ENGINE_MAX_IO];       /* caller output memory, or NULL: staging */
    engine_slot_done_fn done;
    void *user;
    engine_slot_fill_fn fill; /* engine_slot_set_fill's, or NULL */
    void *fill_user;
    ferry_done_fn user_done; /* for ferry_engine_submit: done is a trampoline */
    void *user_arg;
    int64_t t_start;
    int in_use;        /* acquired and not yet released */
    int gated;         /* holds a slot token of e->gate */
    engine_slot *next; /* free list / job queues */
};

struct worker {
    ferry_engine *e;
    int index;
    int dev;          /* index into e->ctxs: the device this worker runs on */
    backend_ctx *ctx; /* e->ctxs[dev] */
    backend_stream *stream;
    engine_slot *slots;
    int n_slots;

    pthread_mutex_t issue_mu; /* one thread at a time queues work on stream */
    pthread_mutex_t mu;       /* guards the two queues and stop */
    pthread_cond_t cv_jobs, cv_flight;
    engine_slot *jobs_head, *jobs_tail;     /* submitted, not yet issued */
    engine_slot *flight_head, *flight_tail; /* issued, not yet complete (async devices) */
    int stop;
    pthread_t thread, done_thread;
    int have_thread, have_done_thread;
};

struct ferry_engine {
    const ferry_model *model;
    const graph *g;
    ferry_engine_config cfg; /* the caller's, but cfg.device points to device_arg */
    char device_arg[64];     /* a copy of the caller's cfg.device */
    const ferry_backend_ops *ops;
    backend_ctx *ctx; /* ctxs[0] */
    char device_name[256];
    int device_index; /* dev_index[0] */
    /* Several devices ("cuda:all", "cuda:0,cuda:1"): one compiled model
     * (weights, plans) per device; the workers alternate between them
     * (worker w on device w % n_dev) and every slot of every worker is in
     * the one free stack, so a batch goes to whichever device frees a slot
     * first. One device listed twice gets two contexts, as two GPUs would. */
    backend_ctx *ctxs[ENGINE_MAX_DEVICES];
    int dev_index[ENGINE_MAX_DEVICES];
    int n_dev;
    /* A device whose batch failed with FERRY_EDEVICE (an error on its
     * stream) while others remain: its slots are no longer handed out, so
     * only the batches it held fail and the others keep serving. */
    _Atomic int dev_bad[ENGINE_MAX_DEVICES];

    int n_in, n_out;
    size_t in_sample_bytes[ENGINE_MAX_IO]; /* per sample, io dtype */
    size_t out_sample_bytes[ENGINE_MAX_IO];
    ferry_dtype in_dtype[ENGINE_MAX_IO]; /* dtype the caller passes */
    ferry_dtype out_dtype[ENGINE_MAX_IO];

    int64_t buckets[ENGINE_MAX_BUCKETS]; /* batch sizes graphs are captured for */
    int n_buckets;
    int64_t min_chunk_cpu; /* smallest chunk worth handing to another worker (chunk_size) */

    worker *workers;
    int n_workers;

    pthread_mutex_t free_mu; /* guards every worker's free slots */
    pthread_cond_t free_cv;
    engine_slot **free_slots; /* stack of free slots */
    int n_free;
    int total_slots;
    int shutting_down;

    atomic_uint_least64_t st_batches, st_samples, st_compute_us;

    /* length buckets: sub[k] runs the model's bucket k; this engine then
     * has no workers of its own and dispatches by the inputs' length */
    ferry_engine **sub;
    int n_sub;
    engine_gate *gate;             /* the cores, shared by the buckets' workers (NULL: none) */
    int64_t gate_since, gate_last; /* under gate->mu: waiting since; last wait's end */
    int owns_gate;
};

/* A slot's batch ended with st: an FERRY_EDEVICE on one of several
 * devices takes that device out of service (engine_impl.h dev_bad). */
static inline void engine_note_status(ferry_engine *e, const worker *w, ferry_status st)
{
    if (st == FERRY_EDEVICE && e->n_dev > 1 && w)
        atomic_store(&e->dev_bad[w->dev], 1);
}

/* Counts one finished batch of n samples that took dt_us in the stats. */
static inline void engine_account(ferry_engine *e, int64_t n, int64_t dt_us)
{
    atomic_fetch_add_explicit(&e->st_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->st_samples, (uint64_t)n, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->st_compute_us, (uint64_t)(dt_us > 0 ? dt_us : 0),
                              memory_order_relaxed);
}

/* worker.c */
ferry_status worker_start(worker *w);
void worker_stop(worker *w);
void worker_enqueue(worker *w, engine_slot *s);
/* Runs one job synchronously on the calling thread (host-visible devices). */
ferry_status worker_run_inline(engine_slot *s);
/* Queues one job's copies and forward on its worker's stream from the
 * calling thread and records its event; the caller then waits on it. */
ferry_status worker_issue(engine_slot *s);
/* Async devices: issues the job on the calling thread and hands it to its
 * worker's completion thread (no hop through the worker's issuing thread). */
void worker_submit_inline(engine_slot *s);
/* Index of the smallest bucket holding n. */
int engine_bucket_for(const ferry_engine *e, int64_t n);

#endif
