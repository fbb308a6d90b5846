/*
 * batcher.c - the dynamic batcher: submit, the dispatcher thread that forms
 * batches into engine slots, completion on engine threads, and draining
 * shutdown. The data structures and the life of a request are described in
 * batcher.h; queue.c holds the lock-free inboxes.
 *
 * Exactly-once: a request is owned by exactly one place at a time (the
 * submitting call, a completing batch's group not yet published, an inbox,
 * a dispatcher FIFO, a batch), and whoever owns it when it finishes
 * completes it and drops it from `outstanding`.
 * destroy sets `closing`, after which submit refuses; a submit that raced
 * with it holds an `outstanding` reference taken before it looked at
 * `closing` (both seq_cst), or one lent by a completing batch that holds
 * its own until after it has published the group, so destroy's wait for
 * outstanding == 0 covers every request that was accepted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher/batcher.h"
#include "batcher/futex.h"
#include "util/error.h"
#include "util/thread.h"

#define ACQUIRE_POLL_US                                                                            \
    1000 /* look at new arrivals' deadlines this often while the engine is full */
#define DRAIN_POLL_US 1000

/* ------------------------------------------------------------- config */

void ferry_batcher_config_init(ferry_batcher_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch = 0; /* the engine's */
    cfg->max_delay_us = 500;
    cfg->max_queue = 65536;
    cfg->default_timeout_us = 0;
    cfg->priority_levels = 1;
}

static ferry_status check_config(ferry_batcher_config *c, int engine_max)
{
    if (c->max_batch == 0)
        c->max_batch = engine_max;
    if (c->max_batch < 0 || c->max_batch > engine_max)
        return ferry_fail(FERRY_EINVAL,
                          "batcher: max_batch %d is outside 1..%d (the engine's max_batch)",
                          c->max_batch, engine_max);
    if (c->max_delay_us < 0)
        return ferry_fail(FERRY_EINVAL, "batcher: max_delay_us %lld is negative",
                          (long long)c->max_delay_us);
    if (c->n_preferred < 0 || c->n_preferred > FERRY_MAX_PREFERRED)
        return ferry_fail(FERRY_EINVAL, "batcher: n_preferred %d is outside 0..%d", c->n_preferred,
                          FERRY_MAX_PREFERRED);
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred_batch_sizes[i] < 1 || c->preferred_batch_sizes[i] > c->max_batch)
            return ferry_fail(
                FERRY_EINVAL,
                "batcher: preferred_batch_sizes[%d] = %d is outside 1..max_batch (%d)", i,
                c->preferred_batch_sizes[i], c->max_batch);
    if (c->max_queue < 1 || c->max_queue > BATCHER_MAX_QUEUE)
        return ferry_fail(FERRY_EINVAL, "batcher: max_queue %d is outside 1..%d", c->max_queue,
                          BATCHER_MAX_QUEUE);
    if (c->default_timeout_us < 0)
        return ferry_fail(FERRY_EINVAL, "batcher: default_timeout_us %lld is negative",
                          (long long)c->default_timeout_us);
    if (c->priority_levels == 0)
        c->priority_levels = 1;
    if (c->priority_levels < 1 || c->priority_levels > BATCHER_MAX_LEVELS)
        return ferry_fail(FERRY_EINVAL, "batcher: priority_levels %d is outside 1..%d",
                          c->priority_levels, BATCHER_MAX_LEVELS);
    if (c->default_priority < 0 || c->default_priority >= c->priority_levels)
        return ferry_fail(FERRY_EINVAL,
                          "batcher: default_priority %d is outside 0..%d (priority_levels %d)",
                          c->default_priority, c->priority_levels - 1, c->priority_levels);
    return FERRY_OK;
}

/* Samples of at least this many input bytes are copied into a batch's
 * staging on the engine's threads (add_to_batch says why): a 224x224 RGB
 * image is 602,112 bytes in f32, a BERT request of 128 tokens 2 KB.
 * FERRY_BATCHER_DEFER_BYTES overrides it (tests, measurements). */
#define BATCHER_DEFER_BYTES 16384

static size_t defer_bytes(void)
{
    const char *env = getenv("FERRY_BATCHER_DEFER_BYTES");
    char *end;
    unsigned long long v = env ? strtoull(env, &end, 10) : 0;
    return env && *env && !*end ? (size_t)v : BATCHER_DEFER_BYTES;
}

static int is_float(ferry_dtype d)
{
    return d == FERRY_F32 || d == FERRY_F16 || d == FERRY_BF16 || d == FERRY_F64;
}

/* What callers must pass for model input/output i: the engine converts
 * float tensors to and from its io dtype; other dtypes pass as they are. */
static ferry_status describe_io(ferry_batcher *b, const ferry_tensor_info *ti, size_t sample_bytes,
                                const char *what, io_desc *d)
{
    if (ti->ndim < 1 || ti->shape[0] != FERRY_DIM_BATCH)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "batcher: %s '%s' has no leading batch dimension; it cannot be batched",
                          what, ti->name);
    int64_t numel = 1;
    for (int j = 1; j < ti->ndim; j++) {
        if (ti->shape[j] <= 0)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "batcher: %s '%s' has a symbolic dimension %d besides the batch",
                              what, ti->name, j);
        numel *= ti->shape[j];
    }
    ferry_dtype io = ferry_engine_get_config(b->e)->io_dtype;
    if (io == FERRY_DTYPE_UNDEFINED)
        io = FERRY_F32;
    ferry_dtype dt = is_float(ti->dtype) ? io : ti->dtype;
    if ((size_t)numel * ferry_dtype_size(dt) != sample_bytes)
        dt = ti->dtype;
    if ((size_t)numel * ferry_dtype_size(dt) != sample_bytes)
        return ferry_fail(FERRY_EINTERNAL,
                          "batcher: %s '%s': %lld elements per sample but %zu bytes in the engine",
                          what, ti->name, (long long)numel, sample_bytes);
    d->name = ti->name;
    d->dtype = dt;
    d->ndim = ti->ndim;
    memcpy(d->shape, ti->shape, sizeof d->shape);
    d->sample_bytes = sample_bytes;
    return FERRY_OK;
}

/* ------------------------------------------------------ small helpers */

static int64_t target_after(const ferry_batcher *b, int64_t n)
{
    /* the next size worth waiting for: a larger preferred size, or max */
    int64_t t = b->cfg.max_batch;
    for (int i = 0; i < b->cfg.n_preferred; i++)
        if (b->cfg.preferred_batch_sizes[i] > n && b->cfg.preferred_batch_sizes[i] < t)
            t = b->cfg.preferred_batch_sizes[i];
    return t;
}

static int is_preferred(const ferry_batcher *b, int64_t n)
{
    for (int i = 0; i < b->cfg.n_preferred; i++)
        if (b->cfg.preferred_batch_sizes[i] == n)
            return 1;
    return 0;
}

/* While batch_done runs callbacks on a thread, what the requests it
 * completes leave behind for requests those callbacks submit to the same
 * batcher (the closed loop of a server that answers and reads the next
 * request on the same thread): their nodes, warm in this core's cache, and
 * their `outstanding` references. A submit that takes both touches neither
 * the node slab's nor `outstanding`'s shared cache line.
 *
 * Such submits also reach the queue in groups: a group of queue places is
 * reserved in `queued` with one add (so max_queue still bounds what is
 * queued), the requests gather on a private list, and up to PUBLISH_CHUNK
 * of them enter their inbox with one CAS and one add of their samples. A
 * group and its reserved places live for at most PUBLISH_CHUNK callbacks
 * (a window, counted from the reservation): then the group is published
 * and unused places are given back, so that neither a request nor other
 * submitters wait on the rest of a large batch's callbacks; batch_done
 * ends the last window before it returns. */
#define PUBLISH_CHUNK 32

typedef struct recycle {
    ferry_batcher *b;
    bnode *spare;              /* free nodes of b's node slab, via next */
    unsigned refs;             /* references to outstanding that a submit may take over */
    int64_t left;              /* callbacks still to run, the running one included */
    int64_t reserved;          /* queue places counted in queued, not yet taken */
    int64_t window;            /* left when the window opened; 0: none open */
    bnode *pend, *pend_oldest; /* submitted, not yet in an inbox: newest first */
    int pend_prio;
    int64_t pend_reqs, pend_samples;
} recycle;

static _Thread_local recycle *tl_recycle;

static void wake_dispatcher(ferry_batcher *b)
{
    atomic_fetch_add(&b->wake_seq, 1);
    futex_wake_n(&b->wake_seq, 1);
}

/* Drops n requests (or call references) from outstanding. The last touch of
 * b's memory is the decrement itself: destroy may free b right after it. */
static void unref(ferry_batcher *b, unsigned n)
{
    int closing = atomic_load(&b->closing);
    atomic_uint *word = &b->outstanding;
    if (atomic_fetch_sub(word, n) == n && closing)
        futex_wake_n(word, 1);
}

/* Reserves queue places for the submits of rc's callbacks: as many as
 * callbacks are left (at most PUBLISH_CHUNK), else one; 0 if the queue is
 * full. */
static int reserve(ferry_batcher *b, recycle *rc)
{
    int64_t n = rc->left < PUBLISH_CHUNK ? rc->left : PUBLISH_CHUNK;
    if (n < 1)
        n = 1;
    for (;;) {
        uint64_t add = QUEUED_PACK(n, 0);
        uint64_t q = atomic_fetch_add(&b->queued, add) + add;
        if (QUEUED_REQS(q) <= (uint64_t)b->cfg.max_queue) {
            rc->reserved = n;
            if (!rc->window)
                rc->window = rc->left;
            return 1;
        }
        atomic_fetch_sub(&b->queued, add);
        if (n == 1)
            return 0;
        n = 1;
    }
}

/* Decides whether a request just counted in queued (q: queued after the
 * add) should wake the dispatcher: it asked for at least this many samples. */
static int should_wake(ferry_batcher *b, uint64_t q)
{
    return (int64_t)QUEUED_SAMPLES(q) >= atomic_load(&b->want) &&
           atomic_exchange(&b->want, BATCHER_NEVER) != BATCHER_NEVER;
}

/* Puts rc's gathered requests on their inbox (samples counted first: the
 * dispatcher subtracts what it takes). b is alive: batch_done holds a
 * reference until after its last publish. */
static void publish(ferry_batcher *b, recycle *rc)
{
    if (!rc->pend)
        return;
    uint64_t add = QUEUED_PACK(0, rc->pend_samples);
    int wake = should_wake(b, atomic_fetch_add(&b->queued, add) + add);
    inbox_push_chain(&b->inboxes[rc->pend_prio], rc->pend, rc->pend_oldest);
    if (wake)
        wake_dispatcher(b);
    rc->pend = rc->pend_oldest = NULL;
    rc->pend_reqs = rc->pend_samples = 0;
}

/* Publishes the group and gives back the places its window did not use. */
static void end_window(ferry_batcher *b, recycle *rc)
{
    publish(b, rc);
    if (rc->reserved)
        atomic_fetch_sub(&b->queued, QUEUED_PACK(rc->reserved, 0));
    rc->reserved = 0;
    rc->window = 0;
}

static void gather(ferry_batcher *b, recycle *rc, bnode *r)
{
    if (rc->pend && rc->pend_prio != r->prio)
        publish(b, rc); /* one level a group: the inbox keeps arrival order */
    r->next = rc->pend;
    if (!rc->pend)
        rc->pend_oldest = r;
    rc->pend = r;
    rc->pend_prio = r->prio;
    rc->pend_reqs++;
    rc->pend_samples += r->k;
    if (rc->pend_reqs >= PUBLISH_CHUNK)
        publish(b, rc);
}

/* Undoes a refused submit's reference: hands a borrowed one back to its
 * batch, or drops its own. */
static void give_back_ref(ferry_batcher *b, recycle *rc, int borrowed)
{
    if (borrowed)
        rc->refs++;
    else
        unref(b, 1);
}

static void free_node(ferry_batcher *b, bnode *r)
{
    if (r->extra) {
        slab_put(&b->bufs[r->extra_class], r->extra);
        r->extra = NULL;
    }
    slab_put(&b->nodes, r);
}

/* Completes one request that never reached the device (dispatcher thread). */
static void complete_alone(ferry_batcher *b, bnode *r, ferry_status st)
{
    ferry_request_fn cb = r->cb;
    void *user = r->user;
    int64_t us = ferry_now_us() - r->t_submit;
    free_node(b, r);
    atomic_fetch_add_explicit(st == FERRY_ETIMEDOUT ? &b->st.expired : &b->st.failed, 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&b->st.request_us_sum, (uint64_t)us, memory_order_relaxed);
    /* the callback reads the reason with ferry_last_error() (ferry.h) */
    if (st == FERRY_ETIMEDOUT)
        ferry_fail(st, "batcher: the request waited %lld us, past its deadline, and was not run",
                   (long long)us);
    else if (st == FERRY_ESHUTDOWN)
        ferry_fail(st, "batcher: shutting down; the request was not run");
    else
        ferry_fail(st, "batcher: the request was not run (%s)", ferry_status_str(st));
    cb(user, st);
    unref(b, 1);
}

/* ----------------------------------------------------------- submit */

static ferry_status check_tensors(const ferry_batcher *b, const io_desc *d, int n_expected,
                                  const ferry_tensor *t, int n, const char *what, int64_t *k)
{
    if (n != n_expected)
        return ferry_fail(FERRY_EINVAL, "batcher: %d %ss given, the model has %d", n, what,
                          n_expected);
    if (n && !t)
        return ferry_fail(FERRY_EINVAL, "batcher: %ss is NULL", what);
    for (int i = 0; i < n; i++) {
        if (t[i].dtype != d[i].dtype)
            return ferry_fail(FERRY_EDTYPE, "batcher: %s '%s' is %s, expected %s", what, d[i].name,
                              ferry_dtype_name(t[i].dtype), ferry_dtype_name(d[i].dtype));
        int bad = t[i].ndim != d[i].ndim;
        for (int j = 1; !bad && j < d[i].ndim; j++)
            bad = t[i].shape[j] != d[i].shape[j];
        if (bad) {
            char got[160] = "", want[160] = "[*";
            size_t lg = 0, lw = 2;
            for (int j = 0; j < t[i].ndim && j < FERRY_MAX_DIMS && lg < sizeof got - 24; j++)
                lg += (size_t)snprintf(got + lg, sizeof got - lg, "%s%lld", j ? "," : "[",
                                       (long long)t[i].shape[j]);
            snprintf(got + lg, sizeof got - lg, "]");
            for (int j = 1; j < d[i].ndim && lw < sizeof want - 24; j++)
                lw += (size_t)snprintf(want + lw, sizeof want - lw, ",%lld",
                                       (long long)d[i].shape[j]);
            snprintf(want + lw, sizeof want - lw, "]");
            return ferry_fail(FERRY_ESHAPE, "batcher: %s '%s' has shape %s, expected %s", what,
                              d[i].name, t[i].ndim > 0 ? got : "[]", want);
        }
        if (!t[i].data)
            return ferry_fail(FERRY_EINVAL, "batcher: %s '%s' has no data", what, d[i].name);
        if (d[i].has_range) {
            int64_t cnt = ferry_tensor_numel(&t[i]);
            for (int64_t j = 0; j < cnt; j++) {
                int64_t v = t[i].dtype == FERRY_I64 ? ((const int64_t *)t[i].data)[j]
                                                    : ((const int32_t *)t[i].data)[j];
                if (v < d[i].lo || v >= d[i].hi)
                    return ferry_fail(FERRY_EINVAL,
                                      "batcher: %s '%s' holds %lld at element %lld; it indexes a "
                                      "table of %lld rows (valid: %lld to %lld)",
                                      what, d[i].name, (long long)v, (long long)j,
                                      (long long)d[i].hi, (long long)d[i].lo,
                                      (long long)d[i].hi - 1);
            }
        }
        if (*k < 0)
            *k = t[i].shape[0];
        else if (t[i].shape[0] != *k)
            return ferry_fail(FERRY_ESHAPE,
                              "batcher: %s '%s' has %lld samples, but the request has %lld "
                              "(every input and output must agree on the leading dimension)",
                              what, d[i].name, (long long)t[i].shape[0], (long long)*k);
    }
    return FERRY_OK;
}

static int ceil_log2(int64_t n)
{
    int c = 0;
    while ((1ll << c) < n)
        c++;
    return c;
}

ferry_status ferry_batcher_submit(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                                  ferry_tensor *outputs, int n_out, const ferry_request_opts *opts,
                                  ferry_request_fn cb, void *user)
{
    if (!b || !cb)
        return ferry_fail(FERRY_EINVAL, "batcher: submit needs a batcher and a callback");
    if (b->lb)
        return buckets_submit(b, inputs, n_in, outputs, n_out, opts, cb, user);
    int64_t k = -1;
    ferry_status st = check_tensors(b, b->in, b->n_in, inputs, n_in, "input", &k);
    if (st == FERRY_OK)
        st = check_tensors(b, b->out, b->n_out, outputs, n_out, "output", &k);
    if (st != FERRY_OK)
        return st;
    if (k < 1)
        return ferry_fail(FERRY_EINVAL, "batcher: a request needs at least one sample (got %lld)",
                          (long long)k);
    if (k > b->cfg.max_batch)
        return ferry_fail(FERRY_EINVAL,
                          "batcher: a request of %lld samples exceeds max_batch %d; requests are "
                          "never split, so submit at most %d samples at once",
                          (long long)k, b->cfg.max_batch, b->cfg.max_batch);
    /* Levels only order the dispatcher's picks (fill: highest first, arrival
     * order within one); a request's level never changes what it computes. */
    int prio = opts ? opts->priority : b->cfg.default_priority;
    if (prio < 0 || prio >= b->cfg.priority_levels)
        return ferry_fail(FERRY_EINVAL, "batcher: priority %d is outside 0..%d", prio,
                          b->cfg.priority_levels - 1);
    int64_t timeout = opts ? opts->timeout_us : 0;
    if (timeout == 0)
        timeout = b->cfg.default_timeout_us > 0 ? b->cfg.default_timeout_us : -1;

    unsigned shard = stats_shard();
    /* Reference first, then look at closing: destroy does the opposite, so
     * one of the two always sees the other (both seq_cst). A reference
     * taken over from a completing batch was counted long before and is
     * held until batch_done's final unref, after this call returns. */
    recycle *rc = tl_recycle;
    if (rc && rc->b != b)
        rc = NULL;
    int borrowed = rc && rc->refs > 0;
    if (borrowed)
        rc->refs--;
    else
        atomic_fetch_add(&b->outstanding, 1);
    atomic_fetch_add_explicit(&b->st.submitted[shard].v, 1, memory_order_relaxed);
    if (atomic_load(&b->closing)) {
        atomic_fetch_add_explicit(&b->st.rejected[shard].v, 1, memory_order_relaxed);
        give_back_ref(b, rc, borrowed);
        return ferry_fail(FERRY_ESHUTDOWN, "batcher: shutting down; request not accepted");
    }
    uint64_t add = QUEUED_PACK(1, k), q = 0;
    int admitted;
    if (rc) {
        admitted = rc->reserved > 0 || reserve(b, rc);
        if (admitted)
            rc->reserved--;
    } else {
        q = atomic_fetch_add(&b->queued, add) + add;
        admitted = QUEUED_REQS(q) <= (uint64_t)b->cfg.max_queue;
        if (!admitted)
            atomic_fetch_sub(&b->queued, add);
    }
    if (!admitted) {
        atomic_fetch_add_explicit(&b->st.rejected[shard].v, 1, memory_order_relaxed);
        give_back_ref(b, rc, borrowed);
        return ferry_fail(FERRY_EBUSY, "batcher: queue full (%d requests waiting)",
                          b->cfg.max_queue);
    }
    bnode *r;
    if (rc && rc->spare) {
        r = rc->spare;
        rc->spare = r->next;
    } else {
        r = slab_get(&b->nodes);
    }
    void *extra = NULL;
    int cls = 0;
    if (r && k > b->inline_k) {
        cls = ceil_log2(k);
        if (!(extra = slab_get(&b->bufs[cls]))) {
            slab_put(&b->nodes, r);
            r = NULL;
        }
    }
    if (!r) {
        if (rc)
            rc->reserved++;
        else
            atomic_fetch_sub(&b->queued, add);
        atomic_fetch_sub_explicit(&b->st.submitted[shard].v, 1, memory_order_relaxed);
        give_back_ref(b, rc, borrowed);
        return ferry_fail(FERRY_ENOMEM, "batcher: out of memory for a request of %lld samples",
                          (long long)k);
    }
    r->cb = cb;
    r->user = user;
    r->t_submit = ferry_now_us();
    /* a timeout too large to add is no deadline at all */
    r->deadline = timeout < 0 || timeout >= BATCHER_NEVER - r->t_submit ? BATCHER_NEVER
                                                                        : r->t_submit + timeout;
    r->k = (int32_t)k;
    r->prio = prio;
    r->group = 0;
    r->extra = extra;
    r->extra_class = cls;
    r->in = extra ? extra : (unsigned char *)(r->outs + b->n_out);
    for (int i = 0; i < n_out; i++)
        r->outs[i] = outputs[i].data;
    unsigned char *p = r->in;
    for (int i = 0; i < n_in; i++) {
        size_t bytes = (size_t)k * b->in[i].sample_bytes;
        memcpy(p, inputs[i].data, bytes);
        p += bytes;
    }
    if (rc) {
        gather(b, rc, r);
        return FERRY_OK;
    }
    /* Decide on a wake-up before publishing; after the push the request may
     * complete at once and, with destroy racing, b be freed, so a waker
     * holds one more reference across push and wake. */
    int wake = should_wake(b, q);
    if (wake)
        atomic_fetch_add(&b->outstanding, 1);
    inbox_push(&b->inboxes[prio], r);
    if (wake) {
        wake_dispatcher(b);
        unref(b, 1);
    }
    return FERRY_OK;
}

typedef struct infer_wait {
    atomic_uint done;
    ferry_status st;
} infer_wait;

static void infer_done(void *user, ferry_status st)
{
    infer_wait *w = user;
    w->st = st;
    atomic_store_explicit(&w->done, 1, memory_order_release);
    futex_wake_n(&w->done, 1);
}

ferry_status ferry_batcher_infer(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                                 ferry_tensor *outputs, int n_out, const ferry_request_opts *opts)
{
    infer_wait w;
    atomic_init(&w.done, 0);
    w.st = FERRY_EINTERNAL;
    ferry_status st = ferry_batcher_submit(b, inputs, n_in, outputs, n_out, opts, infer_done, &w);
    if (st != FERRY_OK)
        return st;
    while (!atomic_load_explicit(&w.done, memory_order_acquire))
        futex_wait_us(&w.done, 0, -1);
    if (w.st == FERRY_ETIMEDOUT)
        return ferry_fail(FERRY_ETIMEDOUT, "batcher: request deadline expired before it ran");
    if (w.st == FERRY_ESHUTDOWN)
        return ferry_fail(FERRY_ESHUTDOWN, "batcher: shut down before the request ran");
    if (w.st != FERRY_OK)
        return ferry_fail(w.st, "batcher: the engine failed the batch (%s)",
                          ferry_status_str(w.st));
    return FERRY_OK;
}

/* ------------------------------------------------------- completion */

/* A batch that failed on what one request holds (an id that a Gather
 * inside the model finds out of range, a shape the model computes from
 * its data): with several requests in it, they go back ahead of the queue
 * in two halves, each a group that rides only with itself (fill), and a
 * half that fails again splits again, so that the request at fault gets
 * the engine's error alone and the others their answers, in about 2 log2
 * n runs for one bad request among n rather than n. Other failures
 * (memory, the device) fail the batch. Ids checked at submit
 * (io_desc.has_range) never get this far; this is for what only the
 * model can find. Returns 0 when it could not (no memory to hold an input
 * again): then the batch fails as it would have. */
static int retry_alone(ferry_batcher *b, batch *c, engine_slot *s, ferry_status st)
{
    if ((st != FERRY_EINVAL && st != FERRY_ESHAPE) || c->n_req < 2)
        return 0;
    /* Inputs copied into staging from a buffer of their own gave that
     * buffer back (add_to_batch): take one again, for every such request
     * or none, and copy the inputs back from staging (which the engine
     * reads and never writes). Inline inputs and deferred copies are still
     * in the node. */
    if (!b->defer_copy) {
        bnode *r;
        for (r = c->head; r; r = r->next)
            if (r->k > b->inline_k) {
                r->extra_class = ceil_log2(r->k);
                if (!(r->extra = slab_get(&b->bufs[r->extra_class])))
                    break;
            }
        if (r) {
            for (bnode *q = c->head; q != r; q = q->next)
                if (q->extra) {
                    slab_put(&b->bufs[q->extra_class], q->extra);
                    q->extra = NULL;
                }
            return 0;
        }
        for (r = c->head; r; r = r->next) {
            if (r->extra)
                r->in = r->extra;
            unsigned char *p = r->in;
            for (int i = 0; i < b->n_in; i++) {
                size_t sb = b->in[i].sample_bytes, bytes = (size_t)r->k * sb;
                memcpy(p, (const unsigned char *)engine_slot_input(s, i) + (size_t)r->off * sb,
                       bytes);
                p += bytes;
            }
        }
    }
    engine_slot_release(s);
    /* the failed run's time, as batch_done counts a batch's */
    int64_t cus = ferry_now_us() - c->t_dispatch;
    atomic_fetch_add_explicit(&b->st.compute_us_sum, (uint64_t)cus, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->st.compute_hist[stats_lat_bucket(cus)], 1, memory_order_relaxed);
    /* b must outlive this call: the requests may complete (and destroy
     * free b) as soon as they are queued */
    atomic_fetch_add(&b->outstanding, 1);
    /* queued first (the dispatcher subtracts what it takes); they were
     * admitted once, so max_queue does not refuse them now */
    atomic_fetch_add(&b->queued, QUEUED_PACK(c->n_req, c->n));
    uint32_t g[2];
    for (int h = 0; h < 2; h++)
        do
            g[h] = atomic_fetch_add(&b->next_group, 1) + 1;
        while (g[h] == 0);
    int half = (c->n_req + 1) / 2, i = 0;
    for (bnode *r = c->head, *next; r; r = next, i++) {
        next = r->next;
        r->group = g[i >= half];
        inbox_push(&b->retry, r); /* oldest first: collect restores the order */
    }
    slab_put(&b->batches, c);
    atomic_fetch_sub(&b->inflight, 1);
    atomic_store(&b->want, BATCHER_NEVER);
    wake_dispatcher(b);
    unref(b, 1);
    return 1;
}

static void batch_done(void *user, engine_slot *s, ferry_status st)
{
    batch *c = user;
    ferry_batcher *b = c->b;
    if (st != FERRY_OK && retry_alone(b, c, s, st))
        return;
    int64_t now = ferry_now_us(), out_ns = ferry_now_ns();
    if (st == FERRY_OK) {
        for (int i = 0; i < b->n_out; i++) {
            const unsigned char *o = engine_slot_output(s, i);
            size_t sb = b->out[i].sample_bytes;
            for (bnode *r = c->head; r; r = r->next)
                memcpy(r->outs[i], o + (size_t)r->off * sb, (size_t)r->k * sb);
        }
        /* each request counts its whole batch's times, as Triton's do */
        uint64_t n_req = (uint64_t)c->n_req;
        atomic_fetch_add_explicit(&b->st.req_input_ns, n_req * (uint64_t)c->input_ns,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&b->st.req_infer_ns,
                                  n_req * (uint64_t)(out_ns - c->t_dispatch_ns),
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&b->st.req_output_ns, n_req * (uint64_t)(ferry_now_ns() - out_ns),
                                  memory_order_relaxed);
    }
    engine_slot_release(s);
    int64_t cus = now - c->t_dispatch;
    atomic_fetch_add_explicit(&b->st.compute_us_sum, (uint64_t)cus, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->st.compute_hist[stats_lat_bucket(cus)], 1, memory_order_relaxed);

    bnode *r = c->head;
    unsigned n = (unsigned)c->n_req;
    /* sum over requests of (now - t_submit); launch summed the t_submits */
    uint64_t req_us = (uint64_t)((int64_t)n * now - c->t_submit_sum);
    slab_put(&b->batches, c);
    /* counted before the callbacks, so that a caller woken by one sees them */
    atomic_fetch_add_explicit(st == FERRY_OK ? &b->st.succeeded : &b->st.failed, n,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&b->st.request_us_sum, req_us, memory_order_relaxed);
    /* One reference stays with this call to the end: b must outlive it. */
    recycle rc = {.b = b, .refs = n - 1, .left = n}, *outer = tl_recycle;
    tl_recycle = &rc;
    for (; r; rc.left--) {
        bnode *next = r->next;
        ferry_request_fn cb = r->cb;
        void *u = r->user;
        if (r->extra) {
            slab_put(&b->bufs[r->extra_class], r->extra);
            r->extra = NULL;
        }
        r->next = rc.spare; /* before cb: a resubmit from cb reuses this node */
        rc.spare = r;
        cb(u, st);
        if (rc.window && rc.window - rc.left + 1 >= PUBLISH_CHUNK)
            end_window(b, &rc);
        r = next;
    }
    tl_recycle = outer;
    end_window(b, &rc);
    slab_chain left = {0, NULL};
    for (bnode *q = rc.spare; q; q = q->next)
        slab_chain_add(&left, q);
    slab_put_chain(&b->nodes, &left);
    /* This worker is free again only now: counting it free before the
     * callbacks would launch the first one or two requests they resubmit
     * as a batch of their own, and batches would shrink to a trickle. */
    if (atomic_fetch_sub(&b->inflight, 1) == b->eager_inflight &&
        atomic_load(&b->want) != BATCHER_NEVER &&
        atomic_exchange(&b->want, BATCHER_NEVER) != BATCHER_NEVER)
        wake_dispatcher(b);
    unref(b, rc.refs + 1);
}

/* -------------------------------------------------------- dispatcher */

static void take_queued(ferry_batcher *b, bnode *r, fifo *f)
{
    (void)fifo_pop(f);
    b->fifo_reqs--;
    b->fifo_samples -= r->k;
}

/* Moves every inbox into the FIFOs: retried halves (retry_alone) ahead of
 * everything at their level, in their order, then the new arrivals. */
static void collect(ferry_batcher *b)
{
    if (atomic_load_explicit(&b->retry.head, memory_order_relaxed)) {
        fifo got = {NULL, NULL}, front[BATCHER_MAX_LEVELS];
        memset(front, 0, sizeof front);
        fifo_take_inbox(&got, &b->retry, &b->fifo_reqs, &b->fifo_samples, &b->min_deadline);
        for (bnode *r = got.head, *next; r; r = next) {
            next = r->next;
            fifo_append(&front[r->prio], r);
        }
        for (int l = 0; l < b->cfg.priority_levels; l++) {
            fifo *f = &b->fifos[l];
            if (!front[l].head)
                continue;
            front[l].tail->next = f->head;
            if (!f->tail)
                f->tail = front[l].tail;
            f->head = front[l].head;
        }
    }
    for (int l = 0; l < b->cfg.priority_levels; l++)
        fifo_take_inbox(&b->fifos[l], &b->inboxes[l], &b->fifo_reqs, &b->fifo_samples,
                        &b->min_deadline);
}

/* Completes every FIFO request whose deadline has passed. */
static void sweep_expired(ferry_batcher *b, int64_t now)
{
    int64_t min = BATCHER_NEVER, reqs = 0, samples = 0;
    for (int l = 0; l < b->cfg.priority_levels; l++) {
        fifo *f = &b->fifos[l];
        fifo keep = {NULL, NULL};
        bnode *r = f->head;
        while (r) {
            bnode *next = r->next;
            if (r->deadline <= now) {
                reqs++;
                samples += r->k;
                b->fifo_reqs--;
                b->fifo_samples -= r->k;
                complete_alone(b, r, FERRY_ETIMEDOUT);
            } else {
                fifo_append(&keep, r);
                if (r->deadline < min)
                    min = r->deadline;
            }
            r = next;
        }
        *f = keep;
    }
    b->min_deadline = min;
    if (reqs)
        atomic_fetch_sub(&b->queued, QUEUED_PACK(reqs, samples));
}

static void fail_queued(ferry_batcher *b, ferry_status st)
{
    int64_t reqs = b->fifo_reqs, samples = b->fifo_samples;
    for (int l = 0; l < b->cfg.priority_levels; l++) {
        bnode *r;
        while ((r = fifo_pop(&b->fifos[l])))
            complete_alone(b, r, st);
    }
    b->fifo_reqs = b->fifo_samples = 0;
    b->min_deadline = BATCHER_NEVER;
    atomic_fetch_sub(&b->queued, QUEUED_PACK(reqs, samples));
}

/* Copies request r's inputs into the slot's staging at sample r->off. */
static void copy_in(ferry_batcher *b, engine_slot *slot, const bnode *r)
{
    const unsigned char *p = r->in;
    for (int i = 0; i < b->n_in; i++) {
        size_t sb = b->in[i].sample_bytes, bytes = (size_t)r->k * sb;
        memcpy((unsigned char *)engine_slot_input(slot, i) + (size_t)r->off * sb, p, bytes);
        p += bytes;
    }
}

/* engine_slot_fill_fn of a batch whose copies were deferred: every
 * request's inputs into staging, on the engine worker's thread. */
static void copy_batch_in(void *user, engine_slot *s)
{
    batch *c = user;
    int64_t t0 = ferry_now_ns();
    for (bnode *r = c->head; r; r = r->next)
        copy_in(c->b, s, r);
    c->input_ns += ferry_now_ns() - t0;
}

/* Adds r to the batch: its inputs go straight into the slot's staging,
 * now, or, with large inputs (b->defer_copy), on the engine's worker
 * thread when the batch is issued (copy_batch_in): one dispatcher thread
 * copying every image of every batch caps the batcher near one core's
 * memcpy bandwidth (~10k requests/s of 600 KB images), while the workers
 * copy different batches side by side. */
static void add_to_batch(ferry_batcher *b, batch *c, bnode *r)
{
    r->off = c->n;
    if (!b->defer_copy) { /* else r->in (and r->extra) stay until batch_done */
        copy_in(b, c->slot, r);
        if (r->extra) {
            slab_put(&b->bufs[r->extra_class], r->extra);
            r->extra = NULL;
        }
    }
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    if (!c->n_req)
        c->depart = b->cfg.max_delay_us >= BATCHER_NEVER - r->t_submit
                        ? BATCHER_NEVER
                        : r->t_submit + b->cfg.max_delay_us;
    if (r->deadline < c->min_deadline)
        c->min_deadline = r->deadline;
    c->n += r->k;
    c->n_req++;
}

/* Takes FIFO requests into the forming batch, highest priority first, in
 * arrival order within a level. Returns 1 when the batch should go now:
 * full, a preferred size reached with too little queued to reach the next,
 * or a level's oldest request does not fit (waiting would only delay it). */
static int fill(ferry_batcher *b, int64_t now)
{
    batch *c = b->cur;
    int go = 0;
    int64_t reqs = 0, samples = 0, n0 = c->n, t0 = ferry_now_ns();
    for (int l = b->cfg.priority_levels - 1; l >= 0 && !go; l--) {
        fifo *f = &b->fifos[l];
        bnode *r;
        while ((r = f->head)) {
            if (r->deadline <= now) {
                take_queued(b, r, f);
                reqs++;
                samples += r->k;
                complete_alone(b, r, FERRY_ETIMEDOUT);
                continue;
            }
            /* a retried half rides only with itself (retry_alone) */
            if (c->n + r->k > b->cfg.max_batch || (c->n_req && r->group != c->group)) {
                go = 1;
                break;
            }
            take_queued(b, r, f);
            reqs++;
            samples += r->k;
            if (!c->n_req)
                c->group = r->group;
            add_to_batch(b, c, r);
            if (c->n == b->cfg.max_batch ||
                (is_preferred(b, c->n) && c->n + b->fifo_samples < target_after(b, c->n))) {
                go = 1;
                break;
            }
        }
    }
    if (c->group && c->n_req)
        go = 1; /* a retried half was queued whole: nothing more will join it */
    if (reqs)
        atomic_fetch_sub(&b->queued, QUEUED_PACK(reqs, samples));
    if (c->n != n0) /* the copies into staging (and, rarely, expiries among them) */
        c->input_ns += ferry_now_ns() - t0;
    return go;
}

/* Removes requests that expired while their batch formed, closing the gaps
 * in staging so that they never reach the device. Rare: only a deadline
 * shorter than max_delay_us gets here. */
static void drop_expired_in_batch(ferry_batcher *b, batch *c, int64_t now)
{
    bnode *r = c->head, *keep_head = NULL, *keep_tail = NULL;
    int64_t w = 0;
    c->min_deadline = BATCHER_NEVER;
    c->n_req = 0;
    while (r) {
        bnode *next = r->next;
        if (r->deadline <= now) {
            complete_alone(b, r, FERRY_ETIMEDOUT);
        } else {
            if (r->off != w && !b->defer_copy) /* deferred: nothing is in staging yet */
                for (int i = 0; i < b->n_in; i++) {
                    size_t sb = b->in[i].sample_bytes;
                    unsigned char *base = engine_slot_input(c->slot, i);
                    memmove(base + (size_t)w * sb, base + (size_t)r->off * sb, (size_t)r->k * sb);
                }
            r->off = w;
            w += r->k;
            r->next = NULL;
            if (keep_tail)
                keep_tail->next = r;
            else
                keep_head = r;
            keep_tail = r;
            c->n_req++;
            if (r->deadline < c->min_deadline)
                c->min_deadline = r->deadline;
        }
        r = next;
    }
    c->head = keep_head;
    c->tail = keep_tail;
    c->n = w;
}

static void launch(ferry_batcher *b)
{
    batch *c = b->cur;
    int64_t now = ferry_now_us();
    if (c->min_deadline <= now)
        drop_expired_in_batch(b, c, now);
    if (!c->n_req)
        return; /* keep the slot for the next batch */
    b->cur = NULL;
    c->t_dispatch = now;
    c->t_dispatch_ns = ferry_now_ns();
    uint64_t qsum = 0, qh[FERRY_LAT_BUCKETS] = {0};
    int64_t tsum = 0;
    for (bnode *r = c->head; r; r = r->next) {
        int64_t us = now - r->t_submit;
        tsum += r->t_submit;
        if (r->group) /* a retried request's wait was counted when it first ran */
            continue;
        qsum += (uint64_t)us;
        qh[stats_lat_bucket(us)]++;
    }
    c->t_submit_sum = tsum;
    batcher_counters *s = &b->st;
    atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->samples, (uint64_t)c->n, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->batch_hist[stats_batch_bucket(c->n)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->queue_us_sum, qsum, memory_order_relaxed);
    for (int i = 0; i < FERRY_LAT_BUCKETS; i++)
        if (qh[i])
            atomic_fetch_add_explicit(&s->queue_hist[i], qh[i], memory_order_relaxed);
    atomic_fetch_add(&b->inflight, 1);
    if (b->defer_copy)
        engine_slot_set_fill(c->slot, copy_batch_in, c);
    ferry_status st = engine_slot_submit(c->slot, c->n, batch_done, c);
    if (st != FERRY_OK)
        batch_done(c, c->slot, st); /* the engine did not take it: done is ours to run */
}

static void release_cur(ferry_batcher *b)
{
    if (b->cur) {
        engine_slot_release(b->cur->slot);
        slab_put(&b->batches, b->cur);
        b->cur = NULL;
    }
}

/* Whether a forming batch should leave before its departure time: with
 * fewer of our batches in flight than the engine has workers, a worker
 * would sit idle while we wait, so waiting only adds latency; once every
 * worker has one, requests gather for the next until max_delay_us. Not
 * with preferred sizes: the user asked for those sizes. */
static int leave_early(ferry_batcher *b)
{
    return b->cfg.n_preferred == 0 && atomic_load(&b->inflight) < b->eager_inflight;
}

/* Sleeps until at least `need` samples are queued, until `until_us`
 * (BATCHER_NEVER: no limit), until our last batch in flight completes (when
 * forming), or until destroy wakes it. */
static void dispatcher_sleep(ferry_batcher *b, int64_t need, int64_t until_us, int forming)
{
    unsigned seq = atomic_load(&b->wake_seq);
    atomic_store(&b->want, need);
    int64_t timeout = -1;
    if (until_us != BATCHER_NEVER) {
        timeout = until_us - ferry_now_us();
        if (timeout <= 0)
            goto out;
    }
    if ((int64_t)QUEUED_SAMPLES(atomic_load(&b->queued)) >= need ||
        (forming && (atomic_load(&b->closing) || leave_early(b))) || atomic_load(&b->stop))
        goto out;
    futex_wait_us(&b->wake_seq, seq, timeout);
out:
    atomic_store(&b->want, BATCHER_NEVER);
}

/* Queued samples worth waking for while a batch forms: what it lacks, but
 * at most a quarter batch. Copying each quarter into staging while the
 * rest arrives leaves a quarter to copy once the last request is in, not
 * the whole batch: in a closed loop that copy is on every request's path. */
static int64_t fill_want(const ferry_batcher *b, const batch *c)
{
    int64_t need = target_after(b, c->n) - c->n, chunk = b->cfg.max_batch / 4;
    if (chunk < 1)
        chunk = 1;
    return need < chunk ? need : chunk;
}

static int new_batch(ferry_batcher *b, engine_slot *s)
{
    batch *c = slab_get(&b->batches);
    if (!c)
        return 0;
    memset(c, 0, sizeof *c);
    c->b = b;
    c->slot = s;
    c->min_deadline = BATCHER_NEVER;
    b->cur = c;
    return 1;
}

static void *dispatcher_main(void *arg)
{
    ferry_batcher *b = arg;
    for (;;) {
        collect(b);
        int64_t now = ferry_now_us();
        if (b->fifo_reqs && now >= b->min_deadline)
            sweep_expired(b, now);
        int closing = atomic_load(&b->closing);
        if (!b->fifo_reqs) {
            batch *c = b->cur;
            if (c && c->n_req) {
                if (closing || now >= c->depart || leave_early(b))
                    launch(b);
                else
                    dispatcher_sleep(b, fill_want(b, c), c->depart, 1);
                continue;
            }
            release_cur(b); /* hold no slot while idle */
            if (atomic_load(&b->stop))
                break;
            /* Idle, also while destroy drains: sleep until a request
             * arrives or destroy says stop (polling while draining, as a
             * net under the wake-ups, rather than spinning). */
            dispatcher_sleep(b, 1, closing ? now + DRAIN_POLL_US : BATCHER_NEVER, 0);
            continue;
        }
        if (!b->cur) {
            int64_t wait = b->min_deadline - now;
            if (wait > b->acquire_poll_us)
                wait = b->acquire_poll_us;
            engine_slot *s;
            ferry_status st = engine_slot_acquire(b->e, wait < 0 ? 0 : wait, &s);
            if (st == FERRY_ETIMEDOUT)
                continue;
            if (st != FERRY_OK) {
                fail_queued(b, st == FERRY_ESHUTDOWN ? FERRY_ESHUTDOWN : st);
                continue;
            }
            if (!new_batch(b, s)) {
                engine_slot_release(s);
                fail_queued(b, FERRY_ENOMEM);
            }
            continue; /* collect what came while it waited: priorities see everything */
        }
        int go = fill(b, now);
        if (go || closing || (b->cur->n_req && now >= b->cur->depart))
            launch(b);
    }
    return NULL;
}

/* ----------------------------------------------------- create/destroy */

static void free_batcher(ferry_batcher *b)
{
    buckets_destroy(b);
    if (b->slabs_ready) {
        slab_destroy(&b->nodes);
        slab_destroy(&b->batches);
        for (int c = 0; c < BATCHER_MAX_CLASSES; c++)
            slab_destroy(&b->bufs[c]);
    }
    free(b->in);
    free(b->out);
    free(b);
}

ferry_status ferry_batcher_create(ferry_engine *e, const ferry_batcher_config *cfg,
                                  ferry_batcher **out)
{
    if (!e || !out)
        return ferry_fail(FERRY_EINVAL, "batcher: create needs an engine and an out pointer");
    *out = NULL;
    ferry_batcher_config c;
    if (cfg)
        c = *cfg;
    else
        ferry_batcher_config_init(&c);
    ferry_status st = check_config(&c, engine_max_batch(e));
    if (st != FERRY_OK)
        return st;

    ferry_batcher *b = aligned_alloc(64, (sizeof *b + 63) & ~(size_t)63);
    if (!b)
        return ferry_fail(FERRY_ENOMEM, "batcher: out of memory");
    memset(b, 0, sizeof *b);
    b->e = e;
    b->cfg = c;
    if (engine_num_lengths(e) > 0) {
        if ((st = buckets_create(b, &c)) != FERRY_OK)
            goto fail;
        *out = b;
        return FERRY_OK;
    }
    const ferry_model *m = engine_model(e);
    b->n_in = ferry_model_num_inputs(m);
    b->n_out = ferry_model_num_outputs(m);
    b->in = calloc((size_t)b->n_in + 1, sizeof *b->in);
    b->out = calloc((size_t)b->n_out + 1, sizeof *b->out);
    if (!b->in || !b->out) {
        st = ferry_fail(FERRY_ENOMEM, "batcher: out of memory");
        goto fail;
    }
    for (int i = 0; i < b->n_in; i++) {
        ferry_tensor_info ti;
        if ((st = ferry_model_input(m, i, &ti)) != FERRY_OK ||
            (st = describe_io(b, &ti, engine_input_sample_bytes(e, i), "input", &b->in[i])))
            goto fail;
        b->in[i].has_range = engine_input_index_range(e, i, &b->in[i].lo, &b->in[i].hi);
        b->in_sample_bytes += b->in[i].sample_bytes;
    }
    b->defer_copy = b->in_sample_bytes >= defer_bytes();
    for (int i = 0; i < b->n_out; i++) {
        ferry_tensor_info ti;
        if ((st = ferry_model_output(m, i, &ti)) != FERRY_OK ||
            (st = describe_io(b, &ti, engine_output_sample_bytes(e, i), "output", &b->out[i])))
            goto fail;
    }
    size_t isb = b->in_sample_bytes ? b->in_sample_bytes : 1;
    b->inline_k = (int)(BATCHER_INLINE_BYTES / isb);
    if (b->inline_k < 1)
        b->inline_k = 1;
    if (b->inline_k > c.max_batch)
        b->inline_k = c.max_batch;
    size_t node_bytes = sizeof(bnode) + (size_t)b->n_out * sizeof(void *) +
                        (size_t)b->inline_k * b->in_sample_bytes;
    slab_init(&b->nodes, node_bytes, 1 << 20);
    slab_init(&b->batches, sizeof(batch), 1 << 14);
    /* a class slab allocates nothing until a request of its size comes */
    for (int cl = 0; cl < BATCHER_MAX_CLASSES; cl++)
        slab_init(&b->bufs[cl], ((size_t)1 << cl) * b->in_sample_bytes, 1 << 20);
    b->slabs_ready = 1;
    /* warm-up: enough nodes for a few batches without growing */
    if (!slab_reserve(&b->nodes,
                      (uint32_t)(c.max_batch * 4 < c.max_queue ? c.max_batch * 4 : c.max_queue))) {
        st = ferry_fail(FERRY_ENOMEM, "batcher: out of memory for request nodes");
        goto fail;
    }
    atomic_init(&b->queued, 0);
    atomic_init(&b->outstanding, 0);
    atomic_init(&b->closing, 0);
    atomic_init(&b->wake_seq, 0);
    atomic_init(&b->want, BATCHER_NEVER);
    atomic_init(&b->stop, 0);
    atomic_init(&b->inflight, 0);
    /* one batch per worker keeps every worker (CPU thread, CUDA stream) busy */
    b->acquire_poll_us = ACQUIRE_POLL_US;
    b->eager_inflight = ferry_engine_get_config(e)->workers;
    if (b->eager_inflight < 1)
        b->eager_inflight = 1;
    for (int l = 0; l < BATCHER_MAX_LEVELS; l++)
        atomic_init(&b->inboxes[l].head, NULL);
    b->min_deadline = BATCHER_NEVER;
    int rc = ferry_thread_start(&b->thread, NULL, dispatcher_main, b);
    if (rc) {
        st = ferry_fail(FERRY_ENOMEM, "batcher: cannot start the dispatcher thread: %s",
                        strerror(rc));
        goto fail;
    }
    pthread_setname_np(b->thread, "ferry-batcher");
    *out = b;
    return FERRY_OK;
fail:
    free_batcher(b);
    return st;
}

const ferry_batcher_config *ferry_batcher_get_config(const ferry_batcher *b)
{
    return &b->cfg;
}

void ferry_batcher_destroy(ferry_batcher *b)
{
    if (!b)
        return;
    if (b->lb) {
        free_batcher(b); /* each bucket's batcher drains its requests */
        return;
    }
    atomic_store(&b->closing, 1);
    wake_dispatcher(b); /* it dispatches at once from now on */
    unsigned v;
    while ((v = atomic_load(&b->outstanding)) != 0)
        futex_wait_us(&b->outstanding, v, DRAIN_POLL_US);
    atomic_store(&b->stop, 1);
    wake_dispatcher(b);
    pthread_join(b->thread, NULL);
    free_batcher(b);
}
