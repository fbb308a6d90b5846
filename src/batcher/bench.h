/*
 * bench.h - closed-loop load for the dynamic batcher, for `ferry bench
 * --batcher` (timing lives in bench tools, never in tests).
 */
#ifndef FERRY_BATCHER_BENCH_H
#define FERRY_BATCHER_BENCH_H

#include "ferry.h"

/* Keeps `concurrency` single-sample requests outstanding for `seconds`:
 * a few client threads issue the first ones, and every completion callback
 * resubmits at once. The first 10% of the time is warm-up and not counted.
 * Writes completed requests per second, p50/p99 submit-to-callback latency
 * (us, ~1.5% resolution) and mean samples per batch over the measured
 * window. Inputs are a fixed pseudo-random sample. FERRY_EBUSY if the
 * queue refused a request (concurrency > max_queue), or the first error a
 * callback saw. Blocks; do not call from a batcher callback. */
ferry_status batcher_bench_closed_loop(ferry_batcher *b, int concurrency, double seconds,
                                       double *req_per_s, double *p50_us, double *p99_us,
                                       double *mean_batch);

#endif
