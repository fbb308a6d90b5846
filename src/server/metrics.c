/*
 * metrics.c - GET /metrics: Prometheus text exposition (format 0.0.4).
 *
 * Two families. Triton's nv_* names, spelt as Triton spells them (counters
 * without _total, microseconds as _us) so that dashboards and alerts made
 * for Triton read them unchanged, with Triton's meanings: one series per
 * served model and version; request counts and durations per request;
 * nv_inference_request_failure split by Triton's reason label; and, when
 * NVML finds GPUs, Triton's per-GPU gauges (gpu_metrics.c). Ferry's own
 * ferry_* names follow Prometheus' conventions instead (promtool check
 * metrics passes them): counters end in _total, durations are histograms
 * in seconds, the batch size histogram counts samples.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

typedef enum {
    M_SUCCESS,
    M_FAILURE,
    M_COUNT,
    M_EXEC,
    M_REQ_US,
    M_QUEUE_US,
    M_INPUT_US,
    M_COMPUTE_US,
    M_OUTPUT_US,
    M_PENDING,
    M_REJECTED,
    M_EXPIRED,
    M_N
} metric_id;

static const struct {
    const char *name, *type, *help;
} metric_def[M_N] = {
    {"nv_inference_request_success", "counter", "Infer requests answered 200"},
    {"nv_inference_request_failure", "counter",
     "Infer requests answered with an error, by reason: REJECTED (queue full, deadline passed, "
     "shutting down), CANCELED, BACKEND (the engine failed), OTHER (a bad request)"},
    {"nv_inference_count", "counter", "Samples inferred (a request of k samples counts k)"},
    {"nv_inference_exec_count", "counter", "Batches the model ran"},
    {"nv_inference_request_duration_us", "counter",
     "Cumulative request time from batcher submission to completion, microseconds"},
    {"nv_inference_queue_duration_us", "counter",
     "Cumulative time requests waited in the batcher queue, microseconds"},
    {"nv_inference_compute_input_duration_us", "counter",
     "Cumulative time successful requests' batches spent copying inputs into the engine's "
     "staging (each request counts its batch's), microseconds"},
    {"nv_inference_compute_infer_duration_us", "counter",
     "Cumulative time successful requests' batches spent in the engine (each request counts its "
     "batch's), microseconds"},
    {"nv_inference_compute_output_duration_us", "counter",
     "Cumulative time successful requests' batches spent copying outputs out (each request "
     "counts its batch's), microseconds"},
    {"nv_inference_pending_request_count", "gauge", "Requests waiting in the batcher queue now"},
    {"ferry_inference_requests_rejected_total", "counter",
     "Requests refused because the queue was full or the batcher was stopping"},
    {"ferry_inference_requests_expired_total", "counter",
     "Requests whose deadline passed before they ran"},
};

static void labels(jsonw *w, const srv_model *m)
{
    /* names and versions never hold quotes or backslashes worth escaping
     * differently from JSON, whose escapes Prometheus also reads */
    jsonw_str_raw(w, "{model=");
    jsonw_str(w, m->name);
    jsonw_str_raw(w, ",version=");
    jsonw_str(w, m->version);
}

static uint64_t metric_value(metric_id id, const srv_model *m, const ferry_batcher_stats *st)
{
    switch (id) {
    case M_SUCCESS: return atomic_load_explicit(&m->n_outcome[SRV_SUCCESS], memory_order_relaxed);
    case M_COUNT: return st->samples;
    case M_EXEC: return st->batches;
    case M_REQ_US: return st->request_us_sum;
    case M_QUEUE_US: return st->queue_us_sum;
    case M_INPUT_US: return st->req_compute_input_us;
    case M_COMPUTE_US: return st->req_compute_infer_us;
    case M_OUTPUT_US: return st->req_compute_output_us;
    case M_PENDING: return st->queue_depth;
    case M_REJECTED: return st->rejected;
    case M_EXPIRED: return st->expired;
    case M_FAILURE: /* by reason: written apart */
    case M_N: break;
    }
    return 0;
}

static void header(jsonw *w, const char *name, const char *type, const char *help)
{
    jsonw_str_raw(w, "# HELP ");
    jsonw_str_raw(w, name);
    jsonw_char(w, ' ');
    jsonw_str_raw(w, help);
    jsonw_str_raw(w, "\n# TYPE ");
    jsonw_str_raw(w, name);
    jsonw_char(w, ' ');
    jsonw_str_raw(w, type);
    jsonw_char(w, '\n');
}

/* A number of seconds from microseconds, exactly as many digits as needed. */
static void seconds(jsonw *w, double us)
{
    char num[32];
    snprintf(num, sizeof num, "%.9g", us / 1e6);
    jsonw_str_raw(w, num);
}

/* A histogram from per-bucket counts (not cumulative) and upper bounds
 * (the last bucket is +Inf); bounds and sum in microseconds are written
 * as seconds when in_seconds. */
static void histogram(jsonw *w, const char *name, const srv_model *m, const uint64_t *counts, int n,
                      const double *bounds, uint64_t sum, bool in_seconds)
{
    uint64_t cum = 0;
    char le[32];
    for (int b = 0; b < n; b++) {
        cum += counts[b];
        if (b == n - 1)
            snprintf(le, sizeof le, "+Inf");
        else
            snprintf(le, sizeof le, "%.9g", in_seconds ? bounds[b] / 1e6 : bounds[b]);
        jsonw_str_raw(w, name);
        jsonw_str_raw(w, "_bucket");
        labels(w, m);
        jsonw_str_raw(w, ",le=\"");
        jsonw_str_raw(w, le);
        jsonw_str_raw(w, "\"} ");
        jsonw_u64(w, cum);
        jsonw_char(w, '\n');
    }
    jsonw_str_raw(w, name);
    jsonw_str_raw(w, "_sum");
    labels(w, m);
    jsonw_str_raw(w, "} ");
    if (in_seconds)
        seconds(w, (double)sum);
    else
        jsonw_u64(w, sum);
    jsonw_char(w, '\n');
    jsonw_str_raw(w, name);
    jsonw_str_raw(w, "_count");
    labels(w, m);
    jsonw_str_raw(w, "} ");
    jsonw_u64(w, cum);
    jsonw_char(w, '\n');
}

/* Models with length buckets (src/batcher/buckets.c): how much of what
 * they ran was padding, per request and in positions. */
static void padding_metrics(ferry_server *s, jsonw *w)
{
    double bounds[FERRY_PAD_BUCKETS - 1];
    for (int b = 0; b < FERRY_PAD_BUCKETS - 1; b++)
        bounds[b] = 100 * ferry_pad_bucket_bounds[b];
    ferry_padding_stats *p = calloc((size_t)s->n_models + 1, sizeof *p);
    char *has = calloc((size_t)s->n_models + 1, 1);
    if (!p || !has) {
        free(p);
        free(has);
        w->oom = true;
        return;
    }
    int any = 0;
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i]->batcher && ferry_batcher_get_padding(s->models[i]->batcher, &p[i]))
            any = has[i] = 1;
    if (any) {
        header(w, "ferry_request_padding_percent", "histogram",
               "Per request: percent of its length bucket that is padding");
        for (int i = 0; i < s->n_models; i++)
            if (has[i])
                histogram(w, "ferry_request_padding_percent", s->models[i], p[i].hist,
                          FERRY_PAD_BUCKETS, bounds, p[i].percent_sum, false);
        header(w, "ferry_padding_positions_total", "counter",
               "Positions of padding added to requests (samples x positions)");
        for (int i = 0; i < s->n_models; i++) {
            if (!has[i])
                continue;
            jsonw_str_raw(w, "ferry_padding_positions_total");
            labels(w, s->models[i]);
            jsonw_str_raw(w, "} ");
            jsonw_u64(w, p[i].padding);
            jsonw_char(w, '\n');
        }
    }
    free(p);
    free(has);
}

void metrics_write(ferry_server *s, jsonw *w)
{
    ferry_batcher_stats *st = calloc((size_t)s->n_models + 1, sizeof *st);
    if (!st) {
        w->oom = true;
        return;
    }
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i]->batcher)
            ferry_batcher_get_stats(s->models[i]->batcher, &st[i]);
    for (int id = 0; id < M_N; id++) {
        header(w, metric_def[id].name, metric_def[id].type, metric_def[id].help);
        for (int i = 0; i < s->n_models; i++) {
            const srv_model *m = s->models[i];
            for (int how = SRV_REJECTED; id == M_FAILURE && how < SRV_OUTCOMES; how++) {
                jsonw_str_raw(w, metric_def[id].name);
                labels(w, m);
                jsonw_str_raw(w, ",reason=\"");
                jsonw_str_raw(w, srv_outcome_name((srv_outcome)how));
                jsonw_str_raw(w, "\"} ");
                jsonw_u64(w, atomic_load_explicit(&m->n_outcome[how], memory_order_relaxed));
                jsonw_char(w, '\n');
            }
            if (id == M_FAILURE)
                continue;
            jsonw_str_raw(w, metric_def[id].name);
            labels(w, m);
            jsonw_str_raw(w, "} ");
            jsonw_u64(w, metric_value((metric_id)id, m, &st[i]));
            jsonw_char(w, '\n');
        }
    }

    double batch_bounds[FERRY_BATCH_BUCKETS - 1];
    for (int b = 0; b < FERRY_BATCH_BUCKETS - 1; b++)
        batch_bounds[b] = (double)(1u << b);
    header(w, "ferry_batch_size", "histogram", "Samples per batch the model ran");
    for (int i = 0; i < s->n_models; i++)
        histogram(w, "ferry_batch_size", s->models[i], st[i].batch_hist, FERRY_BATCH_BUCKETS,
                  batch_bounds, st[i].samples, false);
    header(w, "ferry_queue_duration_seconds", "histogram",
           "Per request: submission to dispatch, seconds");
    for (int i = 0; i < s->n_models; i++)
        histogram(w, "ferry_queue_duration_seconds", s->models[i], st[i].queue_hist,
                  FERRY_LAT_BUCKETS, ferry_lat_bucket_bounds_us, st[i].queue_us_sum, true);
    header(w, "ferry_compute_duration_seconds", "histogram",
           "Per batch: dispatch to completion, seconds");
    for (int i = 0; i < s->n_models; i++)
        histogram(w, "ferry_compute_duration_seconds", s->models[i], st[i].compute_hist,
                  FERRY_LAT_BUCKETS, ferry_lat_bucket_bounds_us, st[i].compute_us_sum, true);
    gpu_metrics_write(w);
    padding_metrics(s, w);
    free(st);
}
