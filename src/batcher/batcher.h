/*
 * batcher.h - the dynamic batcher's private state, shared by its files:
 * queue.c (request nodes and per-priority inboxes), batcher.c (submit,
 * dispatcher, completion), stats.c (counters and histograms), bench.c.
 *
 * Life of a request:
 *   submit (any thread): admission (queued counter vs max_queue), a node
 *     from the node slab, inputs copied into it, node pushed on the inbox
 *     of its priority (one CAS; no lock anywhere on this path).
 *   dispatcher thread: takes whole inboxes (one exchange each) into private
 *     FIFOs, holds an engine slot, copies requests' inputs straight into the
 *     slot's staging at their sample offsets, submits the slot, and goes on
 *     forming the next batch while the engine runs this one.
 *   engine thread (batch_done): scatters the slot's outputs to each
 *     request's tensors, releases the slot, runs the callbacks. Requests
 *     those callbacks submit take over the finished requests' nodes and
 *     references and reach the inbox in groups (batcher.c, struct recycle).
 *     A batch that failed on its data goes back instead, in two halves
 *     that run apart and ahead of the queue (batcher.c, retry_alone).
 */
#ifndef FERRY_BATCHER_BATCHER_H
#define FERRY_BATCHER_BATCHER_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "batcher/slab.h"
#include "engine/engine.h"
#include "ferry.h"

#define BATCHER_MAX_LEVELS 8
#define BATCHER_INLINE_BYTES 4096 /* input bytes kept inside a node */
#define BATCHER_MAX_CLASSES 18    /* extra input buffers: 2^c samples, c < 18 */
#define BATCHER_NEVER INT64_MAX
#define BATCHER_SHARDS 16

/* queued counter: (requests << 40) | samples, so one atomic add admits a
 * request and counts its samples. Requests include queue places that a
 * completing batch reserved for its callbacks' submits (batcher.c,
 * struct recycle); samples count only requests in an inbox or FIFO. */
#define QUEUED_SAMPLE_BITS 40
#define QUEUED_PACK(req, samp) (((uint64_t)(req) << QUEUED_SAMPLE_BITS) | (uint64_t)(samp))
#define QUEUED_REQS(q) ((q) >> QUEUED_SAMPLE_BITS)
#define QUEUED_SAMPLES(q) ((q) & ((1ull << QUEUED_SAMPLE_BITS) - 1))
#define BATCHER_MAX_QUEUE ((1 << 23) - 1)

/* What a model input or output looks like to a caller. */
typedef struct io_desc {
    const char *name;
    ferry_dtype dtype; /* the dtype callers pass (the engine's io dtype for floats) */
    int ndim;
    int64_t shape[FERRY_MAX_DIMS]; /* shape[0] is the batch dimension */
    size_t sample_bytes;
    /* integer ids that index a constant table (a vocabulary): a request
     * with one outside [lo, hi) is refused alone at submit, rather than
     * failing the whole batch it would ride in (has_range 0: unchecked) */
    int has_range;
    int64_t lo, hi;
} io_desc;

/* One request: lives in the node slab from submit to its callback. */
typedef struct bnode {
    struct bnode *next; /* inbox, FIFO or batch list */
    ferry_request_fn cb;
    void *user;
    int64_t t_submit, deadline; /* us; deadline BATCHER_NEVER = none */
    int32_t k, prio;
    /* Nonzero: its batch failed on data (retry_alone) and it rides only with
     * requests of the same group, half of that batch */
    uint32_t group;
    int64_t off; /* first sample in its batch */
    void *extra; /* input buffer from a class slab when k > inline_k */
    int extra_class;
    unsigned char *in; /* k samples of input 0, then of input 1, ... */
    void *outs[];      /* n_out output pointers, then the inline input bytes */
} bnode;

/* A batch in formation or in flight: owns one engine slot. */
typedef struct batch {
    struct ferry_batcher *b;
    engine_slot *slot;
    bnode *head, *tail;
    int64_t n; /* samples */
    int32_t n_req;
    uint32_t group;       /* of its requests (bnode.group); 0: first runs */
    int64_t depart;       /* first request's submit + max_delay */
    int64_t min_deadline; /* earliest deadline inside */
    int64_t t_dispatch;
    int64_t t_submit_sum; /* of its requests, for request_us_sum */
    /* Triton's compute input / infer times: copying its requests' inputs
     * into the slot (while it formed), dispatch to the engine's completion */
    int64_t input_ns, t_dispatch_ns;
} batch;

typedef struct inbox {
    alignas(64) _Atomic(bnode *) head; /* LIFO; the dispatcher takes it whole */
} inbox;

typedef struct fifo {
    bnode *head, *tail;
} fifo;

typedef struct padded_counter {
    alignas(64) _Atomic uint64_t v;
} padded_counter;

typedef struct batcher_counters {
    padded_counter submitted[BATCHER_SHARDS], rejected[BATCHER_SHARDS];
    alignas(64) _Atomic uint64_t succeeded, failed, expired;
    _Atomic uint64_t request_us_sum, compute_us_sum;
    /* per successful request, its batch's times (Triton's compute
     * input/infer/output), nanoseconds */
    _Atomic uint64_t req_input_ns, req_infer_ns, req_output_ns;
    _Atomic uint64_t compute_hist[FERRY_LAT_BUCKETS];
    alignas(64) _Atomic uint64_t batches, samples, queue_us_sum; /* dispatcher writes */
    _Atomic uint64_t queue_hist[FERRY_LAT_BUCKETS];
    _Atomic uint64_t batch_hist[FERRY_BATCH_BUCKETS];
} batcher_counters;

typedef struct lenbuckets lenbuckets;

struct ferry_batcher {
    ferry_engine *e;
    lenbuckets *lb;           /* length buckets (buckets.c): this batcher only routes to theirs */
    ferry_batcher_config cfg; /* with defaults applied */
    int n_in, n_out;
    io_desc *in, *out;
    size_t in_sample_bytes; /* all inputs of one sample */
    int defer_copy;         /* inputs reach staging on the engine's thread (BATCHER_DEFER_BYTES) */
    int inline_k;           /* samples that fit inside a node */
    int slabs_ready;

    slab nodes, batches, bufs[BATCHER_MAX_CLASSES];

    /* hot, written by submitters: each on its own cache line */
    alignas(64) _Atomic uint64_t queued; /* QUEUED_PACK of requests waiting */
    alignas(64) atomic_uint outstanding; /* accepted, not yet completed (+ calls in flight) */
    alignas(64) atomic_int closing;      /* destroy has started */
    alignas(64) atomic_uint wake_seq;    /* futex word the dispatcher sleeps on */
    _Atomic int64_t want;                /* queued samples at which to wake it */
    alignas(64) atomic_int inflight;     /* our batches in the engine */
    int eager_inflight;                  /* below this many, a forming batch leaves at once */
    int64_t acquire_poll_us;             /* while the engine is full, look at arrivals this often */
    inbox inboxes[BATCHER_MAX_LEVELS];
    inbox retry;            /* halves of failed batches: they go ahead of the FIFOs */
    atomic_uint next_group; /* retry groups handed out */

    /* dispatcher thread only */
    alignas(64) fifo fifos[BATCHER_MAX_LEVELS];
    int64_t fifo_reqs, fifo_samples;
    int64_t min_deadline; /* lower bound of FIFO requests' deadlines */
    batch *cur;           /* forming, holds a slot */
    atomic_int stop;
    pthread_t thread;
    int thread_started;

    batcher_counters st;
};

/* queue.c */
void inbox_push(inbox *q, bnode *r);
/* Pushes a list linked newest -> oldest (oldest->next is overwritten). */
void inbox_push_chain(inbox *q, bnode *newest, bnode *oldest);
/* Takes every node pushed so far onto the end of f, oldest first, adding
 * their count, samples and earliest deadline to the three totals. */
void fifo_take_inbox(fifo *f, inbox *q, int64_t *reqs, int64_t *samples, int64_t *min_deadline);
void fifo_append(fifo *f, bnode *r);
bnode *fifo_pop(fifo *f);

/* buckets.c: a batcher of a model with length buckets, one batcher each */
ferry_status buckets_create(ferry_batcher *b, const ferry_batcher_config *c);
void buckets_destroy(ferry_batcher *b);
ferry_status buckets_submit(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                            ferry_tensor *outputs, int n_out, const ferry_request_opts *opts,
                            ferry_request_fn cb, void *user);
void buckets_stats(ferry_batcher *b, ferry_batcher_stats *out);

/* stats.c */
int stats_lat_bucket(int64_t us);
int stats_batch_bucket(int64_t samples);
unsigned stats_shard(void);

#endif
