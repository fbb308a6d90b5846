/*
 * lengths.c - an engine over a model with length buckets (graph/model.h):
 * one complete engine per bucket, created, run and destroyed together.
 *
 * Design. A second dynamic axis (the sequence length T) is not a second
 * symbol in the graph layer: each bucket's graph is resolved with T fixed
 * to its length L, and compiled by the engine as any other model. Plans
 * (and CUDA graphs) are thus cached per (length bucket, batch bucket) with
 * no change to the graph layer's one-symbol shapes, its passes or either
 * backend. What it costs: the constants that differ between buckets (the
 * weights are shared, model.c), one set of workers, slots and arenas per
 * bucket (staging sized for its own length), and on CUDA one copy of the
 * weights per bucket on the device. Who pads requests of other lengths into
 * a bucket: the batcher (src/batcher/buckets.c), which knows the mask.
 *
 * Direct runs (ferry_engine_run/_submit) take batches whose length is one
 * of the buckets' exactly, and go to that bucket's engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lengths.h"
#include "util/error.h"

/* The most tokens (samples x length) one batch of a bucket holds: a
 * bucket of length L runs at most max(1, min(max_batch, this / L))
 * samples, so that the long buckets' staging stays bounded (16384 tokens
 * of a 768-wide encoder output are 48 MiB a slot). */
#define ENGINE_BUCKET_TOKENS 16384

ferry_status lengths_create(ferry_engine *e)
{
    const ferry_model *m = e->model;
    ferry_status st;
    e->sub = calloc((size_t)m->n_len, sizeof *e->sub);
    if (!e->sub)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating %d length buckets", m->n_len);
    e->gate = calloc(1, sizeof *e->gate);
    if (!e->gate)
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    pthread_mutex_init(&e->gate->mu, NULL);
    pthread_cond_init(&e->gate->cv, NULL);
    e->gate->admitted = (uint64_t)e->cfg.workers; /* forwards: host-visible devices only */
    e->gate->slots_free = e->cfg.workers * e->cfg.pipeline_depth;
    e->owns_gate = 1;
    for (int k = 0; k < m->n_len; k++) {
        ferry_engine_config c = e->cfg;
        int64_t mb = ENGINE_BUCKET_TOKENS / m->len[k];
        if (mb < c.max_batch)
            c.max_batch = mb < 1 ? 1 : (int)mb;
        if ((st = ferry_engine_create(m->var[k], &c, &e->sub[k])) != FERRY_OK)
            return ferry_fail_prefix(st, "length bucket %lld", (long long)m->len[k]);
        /* before any job: the workers read it under their queue's lock */
        e->sub[k]->gate = e->gate;
        e->n_sub++;
    }
    snprintf(e->device_name, sizeof e->device_name, "%s", e->sub[0]->device_name);
    return FERRY_OK;
}

void lengths_destroy(ferry_engine *e)
{
    /* An engine without buckets of its own (a plain one, or a bucket's,
     * whose gate its parent owns) is left alone: its workers still run and
     * read e->gate until ferry_engine_destroy stops them. */
    if (e->n_sub == 0 && !e->owns_gate)
        return;
    for (int k = 0; k < e->n_sub; k++)
        ferry_engine_destroy(e->sub[k]);
    free(e->sub);
    e->sub = NULL;
    e->n_sub = 0;
    if (e->owns_gate) {
        pthread_mutex_destroy(&e->gate->mu);
        pthread_cond_destroy(&e->gate->cv);
        free(e->gate);
    }
    e->gate = NULL;
}

/* The bucket whose length is the batch's: read from the first input that
 * has the length axis. */
static ferry_status pick(const ferry_engine *e, const ferry_tensor *inputs, int n_in,
                         ferry_engine **out)
{
    const ferry_model *m = e->model;
    if (!inputs || n_in != e->n_in)
        return ferry_fail(FERRY_EINVAL, "model takes %d inputs; got %d", e->n_in, n_in);
    for (int i = 0; i < n_in; i++) {
        int d = ferry_model_length_dim(m, 0, i);
        if (d <= 0)
            continue;
        if (inputs[i].ndim <= d)
            break; /* the bucket's own check names the shape */
        int64_t l = inputs[i].shape[d];
        char lens[256];
        size_t at = 0;
        for (int k = 0; k < m->n_len; k++) {
            if (m->len[k] == l) {
                *out = e->sub[k];
                return FERRY_OK;
            }
            if (at < sizeof lens)
                at += (size_t)snprintf(lens + at, sizeof lens - at, "%s%lld", k ? "," : "",
                                       (long long)m->len[k]);
        }
        return ferry_fail(FERRY_ESHAPE,
                          "input '%s' has length %lld (dimension %d, '%s'); this engine runs the "
                          "lengths %s (the model's length buckets): pad to one of them (with the "
                          "attention mask 0 on the padding), or submit through a batcher, which "
                          "pads",
                          e->g->values[e->g->inputs[i]].name, (long long)l, d, m->len_axis, lens);
    }
    *out = e->sub[e->n_sub - 1]; /* its own check reports the bad shape */
    return FERRY_OK;
}

ferry_status lengths_run(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                         ferry_tensor *outputs, int n_out)
{
    ferry_engine *s;
    ferry_status st = pick(e, inputs, n_in, &s);
    return st != FERRY_OK ? st : ferry_engine_run(s, inputs, n_in, outputs, n_out);
}

ferry_status lengths_submit(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                            ferry_tensor *outputs, int n_out, ferry_done_fn done, void *user)
{
    ferry_engine *s;
    ferry_status st = pick(e, inputs, n_in, &s);
    return st != FERRY_OK ? st : ferry_engine_submit(s, inputs, n_in, outputs, n_out, done, user);
}

/* Each batch on its bucket's engine, one after another (batches of one
 * length pipeline inside ferry_engine_run's chunks). */
ferry_status lengths_run_many(ferry_engine *e, int n_batches, const ferry_tensor *inputs, int n_in,
                              ferry_tensor *outputs, int n_out)
{
    for (int b = 0; b < n_batches; b++) {
        ferry_engine *s;
        ferry_status st = pick(e, inputs + (size_t)b * n_in, n_in, &s);
        if (st == FERRY_OK)
            st = ferry_engine_run(s, inputs + (size_t)b * n_in, n_in, outputs + (size_t)b * n_out,
                                  n_out);
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "batch %d", b);
    }
    return FERRY_OK;
}

ferry_status lengths_warmup(ferry_engine *e)
{
    for (int k = 0; k < e->n_sub; k++) {
        ferry_status st = ferry_engine_warmup(e->sub[k]);
        if (st != FERRY_OK)
            return ferry_fail_prefix(st, "length bucket %lld", (long long)e->model->len[k]);
    }
    return FERRY_OK;
}

void lengths_stats(const ferry_engine *e, ferry_engine_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < e->n_sub; k++) {
        ferry_engine_stats s;
        ferry_engine_get_stats(e->sub[k], &s);
        out->batches += s.batches;
        out->samples += s.samples;
        out->compute_us += s.compute_us;
    }
}

int engine_num_lengths(const ferry_engine *e)
{
    return e ? e->n_sub : 0;
}

ferry_engine *engine_length_engine(const ferry_engine *e, int k)
{
    return e && k >= 0 && k < e->n_sub ? e->sub[k] : NULL;
}
