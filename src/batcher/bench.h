/* bench.h - a closed-loop load generator over a batcher, for `ferry bench --batcher`. */
#ifndef FERRY_BATCHER_BENCH_H
#define FERRY_BATCHER_BENCH_H

#include "ferry.h"

/* Keeps `concurrency` single-sample requests outstanding for `seconds`
 * (each completion resubmits at once) and reports requests/s, the p50 and
 * p99 request latency in microseconds and the mean batch size. */
ferry_status batcher_bench_closed_loop(ferry_batcher *b, int concurrency, double seconds,
                                       double *req_per_s, double *p50_us, double *p99_us,
                                       double *mean_batch);

#endif
