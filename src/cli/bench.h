/*
 * bench.h - what `ferry bench`'s measuring (bench.c) hands to its report
 * (bench_report.c): the options, each point with its repeated runs, and the
 * output files opened before measuring.
 */
#ifndef FERRY_CLI_BENCH_H
#define FERRY_CLI_BENCH_H

#include <stdbool.h>
#include <stdio.h>

#include "ferry.h"

#define BENCH_MAX_SIZES 32
#define BENCH_MAX_REPEAT 20
#define BENCH_STACK_ROWS 5

typedef struct bench_opts {
    const char *model;
    const char *device;
    ferry_precision precision;
    int64_t sizes[BENCH_MAX_SIZES];
    int n_sizes;
    int64_t threads[BENCH_MAX_SIZES]; /* threading: caller counts */
    int n_threads;
    int baseline_threads; /* the stack's first row: callers of batch 1 */
    int compare_threading, stack, latency, batcher, quiet;
    double duration;  /* seconds per run */
    int repeat;       /* runs per point */
    double stability; /* percent: runs further apart flag their point */
    const char *json, *plot;
    int64_t conc[BENCH_MAX_SIZES];
    int n_conc;
    int user_chose_sections;
    int workers, max_batch, graphs; /* the sweep engine */
    int inflight;                   /* sweep: batches in flight (1: synchronous calls) */
    ferry_dtype io_dtype;
} bench_opts;

/* One point measured o->repeat times. Throughput is reported as the median
 * run with its spread, perf_analyzer's stability measure: (max - min) / min
 * in percent; a point whose spread passes --stability-percentage is
 * flagged, in the table and the JSON. */
typedef struct bench_measure {
    double run[BENCH_MAX_REPEAT];
    int n;
    double median, min, max, spread_pct;
    bool unstable;
} bench_measure;

/* Sets median, min, max, spread_pct and unstable from run[0..n). */
void bench_measure_finish(bench_measure *m, double stability_pct);
/* The median of v[0..n) (sorts v); 0 when n is 0. */
double bench_median(double *v, int n);
/* Sorts v[0..n) ascending. */
void bench_sort(double *v, size_t n);

typedef struct bench_point {
    int64_t batch; /* the sweep's batch size, or threading's callers */
    bench_measure sps;
    double p50, p90, p99; /* us per call: each the median over the runs */
} bench_point;

typedef struct bench_stack_row {
    const char *step;
    char config[64];
    bench_measure sps;
    char skipped[256];
} bench_stack_row;

typedef struct bench_batcher_row {
    int64_t conc;
    bench_measure rps;
    double p50, p99, mean_batch; /* medians over the runs */
} bench_batcher_row;

typedef struct bench_results {
    const char *device; /* the engine's description of it */
    bench_point sweep[BENCH_MAX_SIZES], thr[BENCH_MAX_SIZES];
    int n_thr;
    bench_stack_row stack[BENCH_STACK_ROWS];
    bench_batcher_row batcher[BENCH_MAX_SIZES];
} bench_results;

/* The --json and --plot files, opened before anything is measured so that
 * a path that cannot be written fails at once, not after the run. An
 * existing file is left as it is until the results are written. */
typedef struct bench_outputs {
    FILE *json, *plot;
    bool json_created, plot_created; /* made by us: removed if the run fails */
} bench_outputs;

/* Opens o->json and o->plot; prints the reason and returns -1 on failure
 * (nothing is left open or created then). */
int bench_outputs_open(const bench_opts *o, bench_outputs *out);
/* Writes the JSON and the plot and closes both; prints the reason and
 * returns -1 if either could not be written whole (bench_outputs_abort then
 * removes a file this run created). */
int bench_outputs_write(const bench_opts *o, const bench_results *r, bench_outputs *out);
/* Closes the files without writing; removes those this run created. */
void bench_outputs_abort(const bench_opts *o, bench_outputs *out);

/* The tables, on stdout. */
void bench_print(const bench_opts *o, const bench_results *r);

#endif
