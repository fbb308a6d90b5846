/*
 * buckets.c - the batcher of a model with length buckets (graph/model.h,
 * engine/lengths.c): requests of different lengths batched together.
 *
 * Policy. A request of length l goes to the smallest bucket L >= l; its
 * inputs are padded from l to L (zeros: the attention mask is 0 on the
 * padding, so the model ignores it) and it joins that bucket's queue. Each
 * bucket is an ordinary dynamic batcher (batcher.c) over the bucket's
 * engine, with this batcher's max_delay_us, queue limit and priorities: a
 * bucket's batch departs when full or when its oldest request has waited
 * max_delay_us (at once while the cores have nothing to do), so no request
 * waits longer for its batch to form than it would in a batcher of one
 * length. Batches of all buckets then share the cores in the order they
 * departed (engine_impl.h, the gate), so a long bucket's batch is never
 * overtaken indefinitely by short ones. Per-token outputs (those with the
 * length axis) are cut back from L to l; pooled outputs are the request's
 * own. A request already of a bucket's length is passed through as it is.
 *
 * Not done: moving short requests up into a longer bucket to fill its
 * batch. With the default buckets (a ratio of 1.5 or less between
 * neighbours) a batch formed at its own bucket pads less than it would
 * gain, and the buckets stay independent queues.
 *
 * Lengths: 1 to the longest bucket. A length of 0 is refused (FERRY_ESHAPE):
 * a sequence with no token has no first position for a pooled output to
 * read, and its per-token outputs would be empty. Longer than the longest
 * bucket: FERRY_ESHAPE, naming the longest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "batcher/batcher.h"
#include "graph/model.h"
#include "util/error.h"
#include "util/format.h"

#define BUCKET_POLL_US 20000

const double ferry_pad_bucket_bounds[FERRY_PAD_BUCKETS - 1] = {0,   0.1, 0.2, 0.3, 0.4,
                                                               0.5, 0.6, 0.7, 0.8, 0.9};

/* An input or output as callers pass it, at the longest bucket. */
typedef struct lb_io {
    const char *name;
    ferry_dtype dtype;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    int len_dim;  /* 0: no length axis */
    size_t outer; /* samples' leading elements before the length dim, per sample */
    size_t inner; /* bytes of one position (the dims after the length dim) */
} lb_io;

struct lenbuckets {
    int n_len;
    int64_t *len;
    ferry_batcher **inner;
    int n_in, n_out;
    lb_io *in, *out;
    int mask; /* input index of the attention mask, -1: none (padding forced) */
    _Atomic uint64_t requests, tokens, padding, percent_sum, hist[FERRY_PAD_BUCKETS];
};

/* A request padded into a bucket, from submit to its callback: the
 * callback, the caller's per-token outputs and, after this header, the
 * padded inputs and the bucket-length outputs. */
typedef struct lb_req {
    lenbuckets *lb;
    ferry_request_fn cb;
    void *user;
    int64_t k, l, L;
    void *dst[GRAPH_MAX_IO]; /* caller's output i, for per-token outputs */
    void *tmp[GRAPH_MAX_IO]; /* its bucket-length copy */
} lb_req;

static int name_is_mask(const char *n)
{
    return !strcasecmp(n, "attention_mask") || !strcasecmp(n, "mask");
}

static ferry_status describe(const ferry_tensor_info *ti, int len_dim, lb_io *d)
{
    d->name = ti->name;
    d->dtype = ti->dtype;
    d->ndim = ti->ndim;
    memcpy(d->shape, ti->shape, sizeof d->shape);
    d->len_dim = len_dim;
    d->outer = 1;
    size_t inner = ferry_dtype_size(ti->dtype);
    for (int j = 1; j < ti->ndim; j++) {
        if (len_dim && j < len_dim)
            d->outer *= (size_t)ti->shape[j];
        else if (j > len_dim)
            inner *= (size_t)ti->shape[j];
    }
    d->inner = inner;
    return FERRY_OK;
}

static void lb_free(lenbuckets *lb)
{
    if (!lb)
        return;
    for (int k = 0; lb->inner && k < lb->n_len; k++)
        ferry_batcher_destroy(lb->inner[k]);
    free(lb->inner);
    free(lb->len);
    free(lb->in);
    free(lb->out);
    free(lb);
}

/* The caller's dtype of a model tensor: the engine's io dtype for floats. */
static ferry_dtype io_dtype(const ferry_engine *e, ferry_dtype dt)
{
    int f = dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
    ferry_dtype io = ferry_engine_get_config(e)->io_dtype;
    return f && io != FERRY_DTYPE_UNDEFINED ? io : dt;
}

static ferry_status find_mask(lenbuckets *lb, const ferry_batcher_config *c, const char *path)
{
    lb->mask = -1;
    for (int i = 0; i < lb->n_in; i++)
        if (c->mask_input ? !strcmp(lb->in[i].name, c->mask_input) : name_is_mask(lb->in[i].name))
            lb->mask = i;
    if (c->mask_input && lb->mask < 0)
        return ferry_fail(FERRY_ENOTFOUND, "batcher: mask input '%s': model '%s' has no such input",
                          c->mask_input, path);
    if (lb->mask >= 0 && !lb->in[lb->mask].len_dim)
        return ferry_fail(FERRY_EINVAL,
                          "batcher: mask input '%s' has no length axis: it cannot mark padding",
                          lb->in[lb->mask].name);
    if (lb->mask < 0 && !c->pad)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "batcher: model '%s' has no attention-mask input (none is named "
                          "attention_mask or mask; name it with --mask-input): padding its "
                          "requests to a length bucket would change their results. Pass --pad "
                          "(ferry_batcher_config.pad) to pad anyway, or load it with one length "
                          "bucket per length it receives",
                          path);
    return FERRY_OK;
}

ferry_status buckets_create(ferry_batcher *b, const ferry_batcher_config *c)
{
    ferry_engine *e = b->e;
    const ferry_model *m = engine_model(e);
    ferry_status st;
    lenbuckets *lb = calloc(1, sizeof *lb);
    if (!lb)
        return ferry_fail(FERRY_ENOMEM, "batcher: out of memory");
    b->lb = lb;
    lb->n_len = engine_num_lengths(e);
    lb->n_in = ferry_model_num_inputs(m);
    lb->n_out = ferry_model_num_outputs(m);
    lb->len = calloc((size_t)lb->n_len, sizeof *lb->len);
    lb->inner = calloc((size_t)lb->n_len, sizeof *lb->inner);
    lb->in = calloc((size_t)lb->n_in + 1, sizeof *lb->in);
    lb->out = calloc((size_t)lb->n_out + 1, sizeof *lb->out);
    if (!lb->len || !lb->inner || !lb->in || !lb->out)
        return ferry_fail(FERRY_ENOMEM, "batcher: out of memory");
    if (lb->n_in > GRAPH_MAX_IO || lb->n_out > GRAPH_MAX_IO)
        return ferry_fail(FERRY_EUNSUPPORTED, "batcher: at most %d inputs and outputs",
                          GRAPH_MAX_IO);
    for (int i = 0; i < lb->n_in + lb->n_out; i++) {
        int is_out = i >= lb->n_in, k = is_out ? i - lb->n_in : i;
        ferry_tensor_info ti;
        if ((st = (is_out ? ferry_model_output : ferry_model_input)(m, k, &ti)) != FERRY_OK)
            return st;
        ti.dtype = io_dtype(e, ti.dtype);
        describe(&ti, ferry_model_length_dim(m, is_out, k), is_out ? &lb->out[k] : &lb->in[k]);
    }
    if ((st = find_mask(lb, c, m->path)) != FERRY_OK)
        return st;
    for (int k = 0; k < lb->n_len; k++) {
        ferry_engine *sub = engine_length_engine(e, k);
        ferry_batcher_config ck = *c;
        int mb = engine_max_batch(sub);
        if (ck.max_batch > mb)
            ck.max_batch = mb;
        int np = 0; /* preferred sizes the bucket can hold */
        for (int j = 0; j < c->n_preferred; j++)
            if (c->preferred_batch_sizes[j] <= ck.max_batch)
                ck.preferred_batch_sizes[np++] = c->preferred_batch_sizes[j];
        ck.n_preferred = np;
        lb->len[k] = ferry_model_length(m, k);
        if ((st = ferry_batcher_create(sub, &ck, &lb->inner[k])) != FERRY_OK)
            return ferry_fail_prefix(st, "length bucket %lld", (long long)lb->len[k]);
        /* The buckets' dispatchers wait for a slot together (engine_impl.h,
         * the gate), each woken when handed one: polling for arrivals'
         * deadlines every millisecond, dozens of them would busy the cores
         * they wait for. A deadline is still met to within this. */
        lb->inner[k]->acquire_poll_us = BUCKET_POLL_US;
    }
    return FERRY_OK;
}

void buckets_destroy(ferry_batcher *b)
{
    lb_free(b->lb);
    b->lb = NULL;
}

/* Checks the caller's tensors against the model's, the length axis free:
 * sets *k (samples) and *l (length, -1 if no tensor has the axis). */
static ferry_status check(const lb_io *d, int n_expected, const ferry_tensor *t, int n,
                          const char *what, int64_t *k, int64_t *l)
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
            bad = j != d[i].len_dim && t[i].shape[j] != d[i].shape[j];
        if (bad) {
            char got[160], want[160];
            int64_t w[FERRY_MAX_DIMS];
            memcpy(w, d[i].shape, sizeof w);
            w[0] = FERRY_DIM_BATCH;
            ferry_shape_str(want, sizeof want, d[i].ndim, w);
            if (t[i].ndim < 1 || t[i].ndim > FERRY_MAX_DIMS)
                snprintf(got, sizeof got, "rank %d", t[i].ndim);
            else
                ferry_shape_str(got, sizeof got, t[i].ndim, t[i].shape);
            if (d[i].len_dim)
                return ferry_fail(FERRY_ESHAPE,
                                  "batcher: %s '%s' has shape %s, expected %s with dimension %d "
                                  "(the length) at most %lld",
                                  what, d[i].name, got, want, d[i].len_dim,
                                  (long long)d[i].shape[d[i].len_dim]);
            return ferry_fail(FERRY_ESHAPE, "batcher: %s '%s' has shape %s, expected %s", what,
                              d[i].name, got, want);
        }
        if (!t[i].data)
            return ferry_fail(FERRY_EINVAL, "batcher: %s '%s' has no data", what, d[i].name);
        if (*k < 0)
            *k = t[i].shape[0];
        else if (t[i].shape[0] != *k)
            return ferry_fail(FERRY_ESHAPE,
                              "batcher: %s '%s' has %lld samples, but the request has %lld "
                              "(every input and output must agree on the leading dimension)",
                              what, d[i].name, (long long)t[i].shape[0], (long long)*k);
        if (!d[i].len_dim)
            continue;
        int64_t li = t[i].shape[d[i].len_dim];
        if (*l < 0)
            *l = li;
        else if (li != *l)
            return ferry_fail(FERRY_ESHAPE,
                              "batcher: %s '%s' has length %lld, but the request has %lld "
                              "(every tensor with the length axis must agree on it)",
                              what, d[i].name, (long long)li, (long long)*l);
    }
    return FERRY_OK;
}

/* Copies k samples of rows of length l into rows of length L (src -> dst,
 * padding zeroed), or back (L -> l) when `back`. */
static void repack(const lb_io *d, int64_t k, int64_t l, int64_t L, const void *src, void *dst,
                   int back)
{
    size_t rows = (size_t)k * d->outer, row = (size_t)l * d->inner, full = (size_t)L * d->inner;
    const char *s = src;
    char *o = dst;
    for (size_t r = 0; r < rows; r++) {
        if (back) {
            memcpy(o + r * row, s + r * full, row);
        } else {
            memcpy(o + r * full, s + r * row, row);
            memset(o + r * full + row, 0, full - row);
        }
    }
}

static void count(lenbuckets *lb, int64_t k, int64_t l, int64_t L)
{
    double ratio = (double)(L - l) / (double)L;
    int h = 0;
    while (h < FERRY_PAD_BUCKETS - 1 && ratio > ferry_pad_bucket_bounds[h])
        h++;
    atomic_fetch_add_explicit(&lb->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lb->tokens, (uint64_t)(k * l), memory_order_relaxed);
    atomic_fetch_add_explicit(&lb->padding, (uint64_t)(k * (L - l)), memory_order_relaxed);
    atomic_fetch_add_explicit(&lb->hist[h], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lb->percent_sum, (uint64_t)(100.0 * ratio + 0.5),
                              memory_order_relaxed);
}

static void padded_done(void *user, ferry_status st)
{
    lb_req *q = user;
    lenbuckets *lb = q->lb;
    if (st == FERRY_OK)
        for (int i = 0; i < lb->n_out; i++)
            if (q->tmp[i])
                repack(&lb->out[i], q->k, q->l, q->L, q->tmp[i], q->dst[i], 1);
    ferry_request_fn cb = q->cb;
    void *u = q->user;
    free(q);
    cb(u, st);
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

ferry_status buckets_submit(ferry_batcher *b, const ferry_tensor *inputs, int n_in,
                            ferry_tensor *outputs, int n_out, const ferry_request_opts *opts,
                            ferry_request_fn cb, void *user)
{
    lenbuckets *lb = b->lb;
    int64_t k = -1, l = -1;
    if (!cb)
        return ferry_fail(FERRY_EINVAL, "batcher: submit needs a callback");
    ferry_status st = check(lb->in, lb->n_in, inputs, n_in, "input", &k, &l);
    if (st == FERRY_OK)
        st = check(lb->out, lb->n_out, outputs, n_out, "output", &k, &l);
    if (st != FERRY_OK)
        return st;
    if (k < 1)
        return ferry_fail(FERRY_EINVAL, "batcher: a request needs at least one sample (got %lld)",
                          (long long)k);
    const char *lname = "";
    for (int i = 0; i < lb->n_in && !*lname; i++)
        if (lb->in[i].len_dim)
            lname = lb->in[i].name;
    int64_t longest = lb->len[lb->n_len - 1];
    if (l == 0)
        return ferry_fail(FERRY_ESHAPE,
                          "batcher: input '%s' has length 0: a sequence needs at least one token",
                          lname);
    if (l > longest)
        return ferry_fail(FERRY_ESHAPE,
                          "batcher: input '%s' has length %lld, longer than the longest length "
                          "bucket (%lld; see --length-buckets)",
                          lname, (long long)l, (long long)longest);
    int j = 0;
    while (lb->len[j] < l)
        j++;
    int64_t L = lb->len[j];
    if (L == l) { /* a bucket's own length: nothing to pad */
        st = ferry_batcher_submit(lb->inner[j], inputs, n_in, outputs, n_out, opts, cb, user);
        if (st == FERRY_OK)
            count(lb, k, l, L);
        return st;
    }
    /* one block: the header, then padded inputs and outputs, 64-byte aligned */
    size_t bytes = round64(sizeof(lb_req));
    for (int i = 0; i < lb->n_in + lb->n_out; i++) {
        const lb_io *d = i < lb->n_in ? &lb->in[i] : &lb->out[i - lb->n_in];
        if (d->len_dim)
            bytes += round64((size_t)k * d->outer * (size_t)L * d->inner);
    }
    lb_req *q = aligned_alloc(64, bytes);
    if (!q)
        return ferry_fail(FERRY_ENOMEM, "batcher: out of memory padding a request of %lld x %lld",
                          (long long)k, (long long)l);
    memset(q, 0, sizeof *q);
    q->lb = lb;
    q->cb = cb;
    q->user = user;
    q->k = k;
    q->l = l;
    q->L = L;
    ferry_tensor in[GRAPH_MAX_IO], out[GRAPH_MAX_IO];
    char *p = (char *)q + round64(sizeof(lb_req));
    for (int i = 0; i < lb->n_in; i++) {
        in[i] = inputs[i];
        const lb_io *d = &lb->in[i];
        if (!d->len_dim)
            continue;
        repack(d, k, l, L, inputs[i].data, p, 0);
        in[i].data = p;
        in[i].shape[d->len_dim] = L;
        p += round64((size_t)k * d->outer * (size_t)L * d->inner);
    }
    for (int i = 0; i < lb->n_out; i++) {
        out[i] = outputs[i];
        const lb_io *d = &lb->out[i];
        if (!d->len_dim)
            continue; /* pooled: written straight into the caller's tensor */
        q->dst[i] = outputs[i].data;
        q->tmp[i] = p;
        out[i].data = p;
        out[i].shape[d->len_dim] = L;
        p += round64((size_t)k * d->outer * (size_t)L * d->inner);
    }
    /* the inputs are copied before submit returns; q lives until padded_done */
    st = ferry_batcher_submit(lb->inner[j], in, n_in, out, n_out, opts, padded_done, q);
    if (st != FERRY_OK) {
        free(q);
        return st;
    }
    count(lb, k, l, L);
    return FERRY_OK;
}

/* The buckets' statistics, added up. Every field of ferry_batcher_stats is
 * a uint64_t count or sum, so they add as an array (queue_depth too). */
void buckets_stats(ferry_batcher *b, ferry_batcher_stats *out)
{
    _Static_assert(sizeof(ferry_batcher_stats) % sizeof(uint64_t) == 0,
                   "ferry_batcher_stats is made of uint64_t");
    memset(out, 0, sizeof *out);
    uint64_t *o = (uint64_t *)out;
    for (int k = 0; k < b->lb->n_len; k++) {
        ferry_batcher_stats s;
        ferry_batcher_get_stats(b->lb->inner[k], &s);
        const uint64_t *a = (const uint64_t *)&s;
        for (size_t i = 0; i < sizeof s / sizeof *a; i++)
            o[i] += a[i];
    }
}

int ferry_batcher_get_padding(ferry_batcher *b, ferry_padding_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!b || !b->lb)
        return 0;
    lenbuckets *lb = b->lb;
    out->requests = atomic_load_explicit(&lb->requests, memory_order_relaxed);
    out->tokens = atomic_load_explicit(&lb->tokens, memory_order_relaxed);
    out->padding = atomic_load_explicit(&lb->padding, memory_order_relaxed);
    out->percent_sum = atomic_load_explicit(&lb->percent_sum, memory_order_relaxed);
    for (int i = 0; i < FERRY_PAD_BUCKETS; i++)
        out->hist[i] = atomic_load_explicit(&lb->hist[i], memory_order_relaxed);
    return lb->n_len;
}
