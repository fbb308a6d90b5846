/*
 * stats.c - the batcher's counters and histograms (ferry_batcher_stats).
 *
 * Each counter has one writer where it can (the dispatcher for batch and
 * queue figures) or is updated once per batch (completions), so the
 * per-request paths add no shared writes; submit and reject counts, which
 * are per call, are sharded over cache lines by thread.
 */
#include <string.h>

#include "batcher/batcher.h"

const double ferry_lat_bucket_bounds_us[FERRY_LAT_BUCKETS - 1] = {
    50, 100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 1e7,
};

/* The bounds above as integers: the dispatcher buckets every request. */
static const int64_t lat_bounds[FERRY_LAT_BUCKETS - 1] = {
    50,    100,   250,    500,    1000,   2500,    5000,     10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 10000000,
};

/* Prometheus "le" buckets: the first whose bound is >= the value. */
int stats_lat_bucket(int64_t us)
{
    int i = 0;
    while (i < FERRY_LAT_BUCKETS - 1 && us > lat_bounds[i])
        i++;
    return i;
}

/* Bounds 1, 2, 4, ..., 65536, +Inf. */
int stats_batch_bucket(int64_t samples)
{
    int i = 0;
    while (i < FERRY_BATCH_BUCKETS - 1 && samples > (1ll << i))
        i++;
    return i;
}

unsigned stats_shard(void)
{
    static atomic_uint next_shard;
    static _Thread_local unsigned shard = ~0u;
    if (shard == ~0u)
        shard = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % BATCHER_SHARDS;
    return shard;
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void ferry_batcher_get_stats(ferry_batcher *b, ferry_batcher_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!b)
        return;
    if (b->lb) {
        buckets_stats(b, out);
        return;
    }
    const batcher_counters *c = &b->st;
    for (int i = 0; i < BATCHER_SHARDS; i++) {
        out->submitted += LD(c->submitted[i].v);
        out->rejected += LD(c->rejected[i].v);
    }
    out->succeeded = LD(c->succeeded);
    out->failed = LD(c->failed);
    out->expired = LD(c->expired);
    out->batches = LD(c->batches);
    out->samples = LD(c->samples);
    out->queue_depth = QUEUED_REQS(LD(b->queued));
    out->queue_us_sum = LD(c->queue_us_sum);
    out->compute_us_sum = LD(c->compute_us_sum);
    out->request_us_sum = LD(c->request_us_sum);
    out->req_compute_input_us = LD(c->req_input_ns) / 1000;
    out->req_compute_infer_us = LD(c->req_infer_ns) / 1000;
    out->req_compute_output_us = LD(c->req_output_ns) / 1000;
    for (int i = 0; i < FERRY_LAT_BUCKETS; i++) {
        out->queue_hist[i] = LD(c->queue_hist[i]);
        out->compute_hist[i] = LD(c->compute_hist[i]);
    }
    for (int i = 0; i < FERRY_BATCH_BUCKETS; i++)
        out->batch_hist[i] = LD(c->batch_hist[i]);
}
