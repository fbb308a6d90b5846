/*
 * engine.c - ferry_engine: a model compiled for one device, with workers,
 * pipelined batch slots, precision and graph capture.
 *
 * Every batch runs in a slot. A slot belongs to one worker (one stream) and
 * owns host staging, device I/O buffers, a scratch arena and an event, all
 * allocated at creation: the hot path allocates nothing. Callers take a
 * free slot (waiting while all pipeline_depth x workers slots are in
 * flight), point it at their memory or fill its staging, and hand it to the
 * worker. ferry_engine_run is submit + wait; on host-visible devices a run
 * that fits one slot executes on the caller's own thread, skipping the hop
 * to a worker thread (batch-1 latency is dominated by such hops).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_impl.h"
#include "engine/lengths.h"
#include "util/cpus.h"
#include "util/error.h"
#include "util/format.h"
#include "util/timeutil.h"

void ferry_engine_config_init(ferry_engine_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->device = "cpu";
    cfg->workers = 0;
    cfg->max_batch = 256;
    cfg->pipeline_depth = 2;
    cfg->precision = FERRY_PRECISION_FP32;
    cfg->graphs = 0;
    cfg->sync = FERRY_SYNC_EVENT;
    cfg->io_dtype = FERRY_F32;
}

static const char *precision_name(ferry_precision p)
{
    switch (p) {
    case FERRY_PRECISION_FP32: return "fp32";
    case FERRY_PRECISION_TF32: return "tf32";
    case FERRY_PRECISION_FP16: return "fp16";
    case FERRY_PRECISION_BF16: return "bf16";
    }
    return "?";
}

static int is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

/* "cpu", "cuda", "cuda:N" -> backend and device index. */
static ferry_status parse_device(const char *dev, const ferry_backend_ops **ops, int *index)
{
    const char *colon = strchr(dev, ':');
    size_t nlen = colon ? (size_t)(colon - dev) : strlen(dev);
    char name[32];
    if (nlen == 0 || nlen >= sizeof name)
        return ferry_fail(FERRY_EINVAL, "device '%s': expected cpu, cuda or cuda:N", dev);
    memcpy(name, dev, nlen);
    name[nlen] = '\0';
    *index = 0;
    if (colon) {
        char *end;
        errno = 0;
        long v = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || v < 0 || v > 1024)
            return ferry_fail(FERRY_EINVAL, "device '%s': bad device index '%s'", dev, colon + 1);
        *index = (int)v;
    }
    if (strcmp(name, "cpu") != 0 && strcmp(name, "cuda") != 0)
        return ferry_fail(FERRY_EINVAL, "device '%s': expected cpu, cuda or cuda:N", dev);
    *ops = backend_find(name);
    if (!*ops)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "device '%s': this build has no %s backend (nvcc was not found when "
                          "Ferry was built)",
                          dev, name);
    if (!strcmp(name, "cpu") && *index != 0)
        return ferry_fail(FERRY_ENOTFOUND, "device '%s': there is one cpu device, cpu:0", dev);
    return FERRY_OK;
}

/* "cpu", "cuda:N", a comma-separated list of one kind ("cuda:0,cuda:2",
 * "cuda:0,cuda:0") or "cuda:all" -> the backend and the device indices. */
static ferry_status parse_devices(const char *devs, const ferry_backend_ops **ops, int *index,
                                  int *n)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", devs);
    *n = 0;
    if (!strcmp(buf, "cuda:all")) {
        ferry_status st = parse_device("cuda", ops, &index[0]);
        int count = 0;
        char desc[256];
        if (st == FERRY_OK && (st = (*ops)->probe(&count, desc, sizeof desc)) != FERRY_OK)
            return ferry_fail_prefix(st, "device 'cuda:all'");
        if (st != FERRY_OK)
            return st;
        if (count < 1)
            return ferry_fail(FERRY_EDEVICE, "device 'cuda:all': no CUDA device found");
        *n = count < ENGINE_MAX_DEVICES ? count : ENGINE_MAX_DEVICES;
        for (int k = 0; k < *n; k++)
            index[k] = k;
        return FERRY_OK;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const ferry_backend_ops *o = NULL;
        if (*n == ENGINE_MAX_DEVICES)
            return ferry_fail(FERRY_EINVAL, "device '%s': more than %d devices", devs,
                              ENGINE_MAX_DEVICES);
        ferry_status st = parse_device(tok, &o, &index[*n]);
        if (st != FERRY_OK)
            return st;
        if (*n > 0 && o != *ops)
            return ferry_fail(FERRY_EINVAL,
                              "device '%s': a list names devices of one kind (all cuda or all "
                              "cpu)",
                              devs);
        *ops = o;
        (*n)++;
    }
    if (*n == 0)
        return ferry_fail(FERRY_EINVAL,
                          "device '%s': expected cpu, cuda, cuda:N, a list of "
                          "them or cuda:all",
                          devs);
    return FERRY_OK;
}

static void free_slot_buffers(ferry_engine *e, engine_slot *s)
{
    const ferry_backend_ops *ops = e->ops;
    backend_ctx *ctx = s->w ? s->w->ctx : e->ctx;
    for (int b = 0; b < ENGINE_MAX_BUCKETS; b++)
        if (s->graphs[b])
            ops->graph_destroy(s->graphs[b]);
    for (int i = 0; i < ENGINE_MAX_IO; i++) {
        if (!ops->host_visible) {
            if (s->stage_in[i])
                ops->host_free(ctx, s->stage_in[i]);
            if (s->stage_out[i])
                ops->host_free(ctx, s->stage_out[i]);
        }
        if (s->dev_in[i])
            ops->free(ctx, s->dev_in[i]);
        if (s->dev_out[i])
            ops->free(ctx, s->dev_out[i]);
    }
    if (s->arena)
        ops->free(ctx, s->arena);
    if (s->ev)
        ops->event_destroy(s->ev);
}

/* A device buffer and its host staging for max_batch samples; on
 * host-visible devices they are one buffer. */
static ferry_status alloc_io(ferry_engine *e, backend_ctx *ctx, size_t bytes, void **dev,
                             void **stage)
{
    const ferry_backend_ops *ops = e->ops;
    ferry_status st;
    if ((st = ops->alloc(ctx, bytes, dev)) != FERRY_OK)
        return st;
    if (ops->host_visible)
        *stage = *dev;
    else if ((st = ops->host_alloc(ctx, bytes, stage)) != FERRY_OK)
        return st;
    memset(*stage, 0, bytes); /* touch the pages now, not on the hot path */
    return FERRY_OK;
}

static ferry_status alloc_slot(ferry_engine *e, worker *w, engine_slot *s, int index)
{
    const ferry_backend_ops *ops = e->ops;
    ferry_status st;
    size_t mb = (size_t)e->cfg.max_batch;
    s->e = e;
    s->w = w;
    s->index = index;
    for (int i = 0; i < e->n_in; i++)
        if ((st = alloc_io(e, w->ctx, mb * e->in_sample_bytes[i], &s->dev_in[i], &s->stage_in[i])))
            return st;
    for (int i = 0; i < e->n_out; i++)
        if ((st = alloc_io(e, w->ctx, mb * e->out_sample_bytes[i], &s->dev_out[i],
                           &s->stage_out[i])))
            return st;
    size_t ab = ops->arena_bytes(w->ctx);
    if ((st = ops->alloc(w->ctx, ab ? ab : 64, &s->arena)) != FERRY_OK)
        return st;
    return ops->event_create(w->ctx, &s->ev);
}

static ferry_status describe_io(ferry_engine *e)
{
    const graph *g = e->g;
    e->n_in = g->n_inputs;
    e->n_out = g->n_outputs;
    if (e->n_in > ENGINE_MAX_IO || e->n_out > ENGINE_MAX_IO)
        return ferry_fail(FERRY_EUNSUPPORTED, "model has %d inputs and %d outputs; at most %d each",
                          e->n_in, e->n_out, ENGINE_MAX_IO);
    for (int k = 0; k < e->n_in + e->n_out; k++) {
        int is_in = k < e->n_in;
        int i = is_in ? k : k - e->n_in;
        const graph_value *v = &g->values[is_in ? g->inputs[i] : g->outputs[i]];
        char shape[160];
        ferry_shape_str(shape, sizeof shape, v->ndim, v->dims);
        if (v->ndim >= 1 && v->dims[0] > 0 && is_in)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "input '%s' has a fixed batch of %lld: the model was exported "
                              "without a dynamic batch axis. Re-export it with "
                              "torch.onnx.export(..., input_names=['%s'], "
                              "dynamic_axes={'%s': {0: 'batch'}, <each output>: {0: 'batch'}})",
                              v->name, (long long)v->dims[0], v->name, v->name);
        if (v->ndim < 1 || v->dims[0] != FERRY_DIM_BATCH)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "%s '%s' has shape %s: Ferry batches along dim 0, which must be "
                              "the batch N (declare it in the export's dynamic_axes)",
                              is_in ? "input" : "output", v->name, shape);
        for (int d = 1; d < v->ndim; d++)
            if (v->dims[d] < 0)
                return ferry_fail(FERRY_EUNSUPPORTED, "%s '%s' has a second batch dimension",
                                  is_in ? "input" : "output", v->name);
        ferry_dtype dt = is_float(v->dtype) ? e->cfg.io_dtype : v->dtype;
        size_t bytes = (size_t)graph_value_numel(v, 1) * ferry_dtype_size(dt);
        if (is_in) {
            e->in_dtype[i] = dt;
            e->in_sample_bytes[i] = bytes;
        } else {
            e->out_dtype[i] = dt;
            e->out_sample_bytes[i] = bytes;
        }
    }
    return FERRY_OK;
}

ferry_status ferry_engine_create(const ferry_model *m, const ferry_engine_config *cfg_in,
                                 ferry_engine **out)
{
    ferry_status st;
    ferry_engine_config cfg;
    if (!m || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_create: model and out must not be NULL");
    *out = NULL;
    if (cfg_in)
        cfg = *cfg_in;
    else
        ferry_engine_config_init(&cfg);
    if (!cfg.device)
        cfg.device = "cpu";
    if (cfg.workers == 0) {
        long cores = ferry_usable_cpus();
        cfg.workers = strncmp(cfg.device, "cuda", 4) ? (int)(cores > 0 ? cores : 1) : 2;
    }
    if (cfg.workers < 1 || cfg.workers > 256)
        return ferry_fail(FERRY_EINVAL, "workers = %d: expected 1..256", cfg.workers);
    if (cfg.max_batch < 1 || cfg.max_batch > (1 << 22))
        return ferry_fail(FERRY_EINVAL, "max_batch = %d: expected 1..%d", cfg.max_batch, 1 << 22);
    if (cfg.pipeline_depth < 1 || cfg.pipeline_depth > 64)
        return ferry_fail(FERRY_EINVAL, "pipeline_depth = %d: expected 1..64", cfg.pipeline_depth);
    if (cfg.precision < FERRY_PRECISION_FP32 || cfg.precision > FERRY_PRECISION_BF16)
        return ferry_fail(FERRY_EINVAL, "precision %d is not one of fp32, tf32, fp16, bf16",
                          (int)cfg.precision);
    if (cfg.sync != FERRY_SYNC_EVENT && cfg.sync != FERRY_SYNC_DEVICE)
        return ferry_fail(FERRY_EINVAL, "sync mode %d is not event or device", (int)cfg.sync);
    if (cfg.io_dtype != FERRY_F32 && cfg.io_dtype != FERRY_F16 && cfg.io_dtype != FERRY_BF16)
        return ferry_fail(FERRY_EUNSUPPORTED, "io dtype %s: expected f32, f16 or bf16",
                          ferry_dtype_name(cfg.io_dtype));

    ferry_engine *e = calloc(1, sizeof *e);
    if (!e)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating an engine");
    e->model = m;
    e->g = m->g;
    e->cfg = cfg;
    /* The caller's device string may be a temporary: keep a copy. */
    if (strlen(cfg.device) >= sizeof e->device_arg) {
        free(e);
        return ferry_fail(FERRY_EINVAL, "device '%.32s...': longer than %zu characters", cfg.device,
                          sizeof e->device_arg - 1);
    }
    memcpy(e->device_arg, cfg.device, strlen(cfg.device) + 1);
    e->cfg.device = e->device_arg;
    pthread_mutex_init(&e->free_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->free_cv, &ca);
    pthread_condattr_destroy(&ca);

    if ((st = parse_devices(cfg.device, &e->ops, e->dev_index, &e->n_dev)) != FERRY_OK)
        goto fail;
    e->device_index = e->dev_index[0];
    if ((st = describe_io(e)) != FERRY_OK)
        goto fail;
    if (cfg.graphs && !e->ops->capture_begin) {
        st = ferry_fail(FERRY_EUNSUPPORTED, "device '%s' cannot capture graphs (graphs = 1)",
                        cfg.device);
        goto fail;
    }
    if (m->n_len > 0) {
        if ((st = lengths_create(e)) != FERRY_OK)
            goto fail;
        *out = e;
        return FERRY_OK;
    }

    for (int d = 0; d < e->n_dev; d++) {
        backend_opts bo = {.device = e->dev_index[d],
                           .precision = cfg.precision,
                           .io_dtype = cfg.io_dtype,
                           .max_batch = cfg.max_batch};
        if ((st = e->ops->ctx_create(e->g, &bo, &e->ctxs[d])) != FERRY_OK) {
            ferry_fail_prefix(st, "engine on '%s' (%s)", cfg.device, precision_name(cfg.precision));
            goto fail;
        }
        const char *dn = e->ops->ctx_device_name(e->ctxs[d]);
        size_t at = strlen(e->device_name);
        if (d == 0)
            snprintf(e->device_name, sizeof e->device_name, "%s", dn);
        else if (at + 4 < sizeof e->device_name)
            snprintf(e->device_name + at, sizeof e->device_name - at, " + %s", dn);
    }
    e->ctx = e->ctxs[0];

    {
        double per = graph_flops(e->g, 2) - graph_flops(e->g, 1);
        int64_t mc = per > 0 ? (int64_t)(32e6 / per) + 1 : 32;
        e->min_chunk_cpu = mc < 1 ? 1 : mc > 32 ? 32 : mc;
    }
    /* The batch sizes graphs are captured for; a batch runs padded to the
     * smallest that holds it. Powers of two up to 64, then steps of about
     * a quarter (multiples of 32): padding stays under a third and averages
     * ~12%, where powers of two all the way wasted up to half (a batcher's
     * batch of 71 ran as 128). */
    for (int64_t b = 1; b < cfg.max_batch && e->n_buckets < ENGINE_MAX_BUCKETS - 1;
         b = b < 64 ? b * 2 : (b + b / 4 + 31) / 32 * 32)
        e->buckets[e->n_buckets++] = b;
    e->buckets[e->n_buckets++] = cfg.max_batch;

    e->n_workers = cfg.workers * e->n_dev; /* cfg.workers per device */
    e->total_slots = e->n_workers * cfg.pipeline_depth;
    e->workers = calloc((size_t)e->n_workers, sizeof *e->workers);
    e->free_slots = calloc((size_t)e->total_slots, sizeof *e->free_slots);
    if (!e->workers || !e->free_slots) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating %d workers", e->n_workers);
        goto fail;
    }
    for (int wi = 0; wi < e->n_workers; wi++) {
        worker *w = &e->workers[wi];
        w->e = e;
        w->index = wi;
        w->dev = wi % e->n_dev;
        w->ctx = e->ctxs[w->dev];
        pthread_mutex_init(&w->mu, NULL);
        pthread_mutex_init(&w->issue_mu, NULL);
        pthread_cond_init(&w->cv_jobs, NULL);
        pthread_cond_init(&w->cv_flight, NULL);
        w->n_slots = cfg.pipeline_depth;
        w->slots = calloc((size_t)w->n_slots, sizeof *w->slots);
        if (!w->slots) {
            st = ferry_fail(FERRY_ENOMEM, "out of memory creating worker %d", wi);
            goto fail;
        }
        if ((st = e->ops->stream_create(w->ctx, &w->stream)) != FERRY_OK)
            goto fail;
        for (int si = 0; si < w->n_slots; si++) {
            if ((st = alloc_slot(e, w, &w->slots[si], si)) != FERRY_OK) {
                ferry_fail_prefix(st, "allocating worker %d slot %d (max_batch %d)", wi, si,
                                  cfg.max_batch);
                goto fail;
            }
        }
    }
    /* Interleave workers in the free stack so that consecutive batches go
     * to different workers (streams) first. */
    for (int si = cfg.pipeline_depth - 1; si >= 0; si--)
        for (int wi = e->n_workers - 1; wi >= 0; wi--)
            e->free_slots[e->n_free++] = &e->workers[wi].slots[si];
    for (int wi = 0; wi < e->n_workers; wi++)
        if ((st = worker_start(&e->workers[wi])) != FERRY_OK)
            goto fail;
    *out = e;
    return FERRY_OK;
fail:
    ferry_engine_destroy(e);
    return st;
}

void ferry_engine_destroy(ferry_engine *e)
{
    if (!e)
        return;
    lengths_destroy(e);
    pthread_mutex_lock(&e->free_mu);
    e->shutting_down = 1;
    pthread_cond_broadcast(&e->free_cv);
    pthread_mutex_unlock(&e->free_mu);
    for (int wi = 0; e->workers && wi < e->n_workers; wi++)
        worker_stop(&e->workers[wi]);
    for (int wi = 0; e->workers && wi < e->n_workers; wi++) {
        worker *w = &e->workers[wi];
        for (int si = 0; w->slots && si < w->n_slots; si++)
            free_slot_buffers(e, &w->slots[si]);
        if (w->stream)
            e->ops->stream_destroy(w->stream);
        free(w->slots);
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->issue_mu);
        pthread_cond_destroy(&w->cv_jobs);
        pthread_cond_destroy(&w->cv_flight);
    }
    for (int d = 0; d < e->n_dev; d++)
        if (e->ctxs[d])
            e->ops->ctx_destroy(e->ctxs[d]);
    free(e->workers);
    free(e->free_slots);
    pthread_mutex_destroy(&e->free_mu);
    pthread_cond_destroy(&e->free_cv);
    free(e);
}

/* ------------------------------------------------------------ slots */

static ferry_status slot_acquire_local(ferry_engine *e, int64_t timeout_us, engine_slot **out);

/* Whether some device is out of service, and whether all are. */
static void devices_bad(const ferry_engine *e, int *any, int *all)
{
    *any = 0;
    *all = e->n_dev > 0;
    for (int d = 0; d < e->n_dev; d++) {
        int b = atomic_load_explicit(&e->dev_bad[d], memory_order_relaxed);
        *any |= b;
        *all &= b;
    }
}

static engine_slot *take_free_locked(ferry_engine *e)
{
    if (e->n_free == 0)
        return NULL;
    int any = 0, all = 0;
    if (e->n_dev > 1)
        devices_bad(e, &any, &all);
    if (any && !all) {
        /* the newest free slot of a device still in service; none: wait
         * for one (its busy slots free up) */
        int k = e->n_free - 1;
        while (k >= 0 && atomic_load(&e->dev_bad[e->free_slots[k]->w->dev]))
            k--;
        if (k < 0)
            return NULL;
        engine_slot *t = e->free_slots[k];
        e->free_slots[k] = e->free_slots[e->n_free - 1];
        e->free_slots[e->n_free - 1] = t;
    }
    engine_slot *s = e->free_slots[--e->n_free];
    s->in_use = 1;
    return s;
}

/* A slot token of the length buckets' gate (engine_impl.h): a release
 * hands its token to the engine that has waited longest. */
#define GATE_RESUME_US 50000
static int gate_take_slot(ferry_engine *e, int64_t timeout_us)
{
    engine_gate *g = e->gate;
    struct timespec dl;
    if (timeout_us > 0)
        ferry_deadline_after(timeout_us, &dl);
    pthread_mutex_lock(&g->mu);
    int64_t now = ferry_now_us();
    /* a wait resumed soon after a timed-out one keeps its place */
    if (!e->gate_since || now - e->gate_last > GATE_RESUME_US)
        e->gate_since = now;
    int got = 0;
    if (g->slots_free > 0 && !g->head) {
        g->slots_free--;
        got = 1;
    } else if (timeout_us != 0) {
        gate_waiter w = {NULL, 0, e->gate_since, PTHREAD_COND_INITIALIZER};
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cv, &ca);
        pthread_condattr_destroy(&ca);
        gate_waiter **pp = &g->head, *prev = NULL;
        while (*pp && (*pp)->since <= w.since) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        w.next = *pp;
        *pp = &w;
        if (g->tail == prev)
            g->tail = &w;
        while (!w.granted) {
            if (timeout_us < 0)
                pthread_cond_wait(&w.cv, &g->mu);
            else if (pthread_cond_timedwait(&w.cv, &g->mu, &dl) == ETIMEDOUT)
                break;
        }
        got = w.granted;
        if (!got) { /* timed out: leave the queue */
            pp = &g->head;
            prev = NULL;
            while (*pp != &w) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            *pp = w.next;
            if (g->tail == &w)
                g->tail = prev;
        }
        pthread_cond_destroy(&w.cv);
    }
    if (got)
        e->gate_since = 0;
    else
        e->gate_last = ferry_now_us();
    pthread_mutex_unlock(&g->mu);
    return got;
}

static void gate_give_slot(engine_gate *g)
{
    pthread_mutex_lock(&g->mu);
    gate_waiter *w = g->head;
    if (w) {
        g->head = w->next;
        if (!g->head)
            g->tail = NULL;
        w->granted = 1;
        pthread_cond_signal(&w->cv);
    } else {
        g->slots_free++;
    }
    pthread_mutex_unlock(&g->mu);
}

ferry_status engine_slot_acquire(ferry_engine *e, int64_t timeout_us, engine_slot **out)
{
    if (e->n_sub)
        return ferry_fail(FERRY_EINTERNAL, "engine of length buckets: take a slot of a bucket's");
    int gated = 0;
    if (e->gate) {
        if (!gate_take_slot(e, timeout_us))
            return ferry_fail(FERRY_ETIMEDOUT, "no engine slot freed up within %lld us",
                              (long long)timeout_us);
        gated = 1;
    }
    ferry_status st = slot_acquire_local(e, timeout_us, out);
    if (st != FERRY_OK && gated)
        gate_give_slot(e->gate);
    else if (st == FERRY_OK)
        (*out)->gated = gated;
    return st;
}

static ferry_status slot_acquire_local(ferry_engine *e, int64_t timeout_us, engine_slot **out)
{
    struct timespec dl;
    if (timeout_us >= 0)
        ferry_deadline_after(timeout_us, &dl);
    pthread_mutex_lock(&e->free_mu);
    engine_slot *s = NULL;
    while (!(s = take_free_locked(e))) {
        if (e->shutting_down) {
            pthread_mutex_unlock(&e->free_mu);
            return ferry_fail(FERRY_ESHUTDOWN, "engine is shutting down");
        }
        if (timeout_us < 0) {
            pthread_cond_wait(&e->free_cv, &e->free_mu);
        } else if (timeout_us == 0 ||
                   pthread_cond_timedwait(&e->free_cv, &e->free_mu, &dl) == ETIMEDOUT) {
            if ((s = take_free_locked(e)))
                break;
            pthread_mutex_unlock(&e->free_mu);
            return ferry_fail(FERRY_ETIMEDOUT, "no engine slot freed up within %lld us",
                              (long long)timeout_us);
        }
    }
    pthread_mutex_unlock(&e->free_mu);
    s->n = 0;
    memset(s->src, 0, sizeof s->src);
    memset(s->dst, 0, sizeof s->dst);
    *out = s;
    return FERRY_OK;
}

void engine_slot_release(engine_slot *s)
{
    ferry_engine *e = s->e;
    int gated = s->gated;
    s->gated = 0;
    s->fill = NULL;
    pthread_mutex_lock(&e->free_mu);
    s->in_use = 0;
    e->free_slots[e->n_free++] = s;
    pthread_cond_signal(&e->free_cv);
    pthread_mutex_unlock(&e->free_mu);
    if (gated)
        gate_give_slot(e->gate);
}

void engine_slot_set_fill(engine_slot *s, engine_slot_fill_fn fill, void *user)
{
    s->fill = fill;
    s->fill_user = user;
}

void *engine_slot_input(engine_slot *s, int i)
{
    return s->stage_in[i];
}

const void *engine_slot_output(const engine_slot *s, int i)
{
    return s->stage_out[i];
}

ferry_status engine_slot_submit(engine_slot *s, int64_t n, engine_slot_done_fn done, void *user)
{
    if (n < 1 || n > s->e->cfg.max_batch)
        return ferry_fail(FERRY_EINVAL, "batch of %lld samples: expected 1..%d", (long long)n,
                          s->e->cfg.max_batch);
    s->n = n;
    s->done = done;
    s->user = user;
    s->t_start = ferry_now_us();
    /* On a GPU, queueing the copies and the forward takes microseconds and
     * never waits for the device: the caller (the batcher's dispatcher)
     * does it, saving a thread wake-up per batch, unless a fill must run
     * first (engine_slot_set_fill: the worker's thread does it). On the
     * CPU the worker thread runs the forward itself. */
    if (s->e->ops->host_visible || s->fill)
        worker_enqueue(s->w, s);
    else
        worker_submit_inline(s);
    return FERRY_OK;
}

size_t engine_input_sample_bytes(const ferry_engine *e, int i)
{
    return e->in_sample_bytes[i];
}
int engine_input_index_range(const ferry_engine *e, int i, int64_t *lo, int64_t *hi)
{
    return graph_index_range(e->g, e->g->inputs[i], lo, hi);
}
size_t engine_output_sample_bytes(const ferry_engine *e, int i)
{
    return e->out_sample_bytes[i];
}
int engine_max_batch(const ferry_engine *e)
{
    return e->cfg.max_batch;
}
const ferry_model *engine_model(const ferry_engine *e)
{
    return e->model;
}

/* ------------------------------------------------------------ validation */

/* Checks a caller tensor against model value v; sets *n from dim 0. */
static ferry_status check_tensor(const ferry_tensor *t, const graph_value *v, ferry_dtype want,
                                 const char *what, int64_t *n)
{
    char want_s[128], got_s[128];
    if (!t->data)
        return ferry_fail(FERRY_EINVAL, "%s '%s' has no data pointer", what, v->name);
    if (t->dtype != want)
        return ferry_fail(FERRY_EDTYPE, "%s '%s' has dtype %s, expected %s", what, v->name,
                          ferry_dtype_name(t->dtype), ferry_dtype_name(want));
    int ok = t->ndim == v->ndim && t->shape[0] >= 0;
    for (int d = 1; ok && d < v->ndim; d++)
        ok = t->shape[d] == v->dims[d];
    if (ok && *n >= 0 && t->shape[0] != *n)
        ok = 0;
    if (!ok) {
        ferry_shape_str(want_s, sizeof want_s, v->ndim, v->dims);
        if (t->ndim < 0 || t->ndim > FERRY_MAX_DIMS)
            snprintf(got_s, sizeof got_s, "rank %d", t->ndim);
        else
            ferry_shape_str(got_s, sizeof got_s, t->ndim, t->shape);
        if (*n >= 0 && t->ndim == v->ndim)
            return ferry_fail(FERRY_ESHAPE, "%s '%s' has shape %s, expected %s with N = %lld", what,
                              v->name, got_s, want_s, (long long)*n);
        return ferry_fail(FERRY_ESHAPE, "%s '%s' has shape %s, expected %s", what, v->name, got_s,
                          want_s);
    }
    *n = t->shape[0];
    return FERRY_OK;
}

static ferry_status validate_io(const ferry_engine *e, const ferry_tensor *inputs, int n_in,
                                const ferry_tensor *outputs, int n_out, int64_t *n)
{
    ferry_status st;
    if (n_in != e->n_in || n_out != e->n_out)
        return ferry_fail(FERRY_EINVAL, "model takes %d inputs and %d outputs; got %d and %d",
                          e->n_in, e->n_out, n_in, n_out);
    if ((n_in && !inputs) || (n_out && !outputs))
        return ferry_fail(FERRY_EINVAL, "inputs/outputs must not be NULL");
    *n = -1;
    for (int i = 0; i < n_in; i++)
        if ((st = check_tensor(&inputs[i], &e->g->values[e->g->inputs[i]], e->in_dtype[i], "input",
                               n)) != FERRY_OK)
            return st;
    for (int i = 0; i < n_out; i++)
        if ((st = check_tensor(&outputs[i], &e->g->values[e->g->outputs[i]], e->out_dtype[i],
                               "output", n)) != FERRY_OK)
            return st;
    return FERRY_OK;
}

ferry_status ferry_engine_output_info(const ferry_engine *e, int i, int64_t n, ferry_tensor *out)
{
    if (!e || !out || i < 0 || i >= e->n_out || n < 0)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_output_info: bad arguments (output %d)", i);
    const graph_value *v = &e->g->values[e->g->outputs[i]];
    memset(out, 0, sizeof *out);
    out->dtype = e->out_dtype[i];
    out->ndim = graph_value_shape(v, n, out->shape);
    return FERRY_OK;
}

ferry_status ferry_engine_output_info_len(const ferry_engine *e, int i, int64_t n, int64_t length,
                                          ferry_tensor *out)
{
    ferry_status st = ferry_engine_output_info(e, i, n, out);
    int d = st == FERRY_OK ? ferry_model_length_dim(e->model, 1, i) : 0;
    if (d > 0 && length > 0)
        out->shape[d] = length;
    return st;
}

/* ------------------------------------------------------------ running */

typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int remaining;
    ferry_status first_err;
    char err_msg[512];
} latch;

static void latch_init(latch *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->remaining = 0;
    l->first_err = FERRY_OK;
    l->err_msg[0] = '\0';
}

static void latch_done(void *user, engine_slot *s, ferry_status st)
{
    latch *l = user;
    engine_slot_release(s);
    pthread_mutex_lock(&l->mu);
    if (st != FERRY_OK && l->first_err == FERRY_OK) {
        l->first_err = st;
        snprintf(l->err_msg, sizeof l->err_msg, "%s", ferry_last_error());
    }
    if (--l->remaining == 0)
        pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static ferry_status latch_wait(latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->remaining > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    if (l->first_err != FERRY_OK)
        return ferry_fail(l->first_err, "%s", l->err_msg);
    return FERRY_OK;
}

/* Chunk size for a batch of n: at most max_batch, and small enough that
 * every worker gets a share of a large batch. Chunks below min_chunk rows
 * cost more in hand-offs than they gain in parallelism: on the CPU that is
 * about 32 MFLOP of work (32 rows of mlp-s; one image of a ResNet). */
static int64_t chunk_size(const ferry_engine *e, int64_t n)
{
    int64_t min_chunk = e->ops->host_visible ? e->min_chunk_cpu : 2048;
    int64_t share = (n + e->n_workers - 1) / e->n_workers;
    int64_t c = share > min_chunk ? share : min_chunk;
    return c < e->cfg.max_batch ? c : e->cfg.max_batch;
}

/* Queues one validated batch of n samples as chunks spread over workers. */
static ferry_status submit_chunks(ferry_engine *e, const ferry_tensor *inputs,
                                  ferry_tensor *outputs, int64_t n, latch *l)
{
    int64_t mb = chunk_size(e, n);
    for (int64_t off = 0; off < n; off += mb) {
        engine_slot *s = NULL;
        ferry_status st = engine_slot_acquire(e, -1, &s);
        if (st != FERRY_OK)
            return st;
        int64_t k = n - off < mb ? n - off : mb;
        for (int i = 0; i < e->n_in; i++)
            s->src[i] = (const char *)inputs[i].data + (size_t)off * e->in_sample_bytes[i];
        for (int i = 0; i < e->n_out; i++)
            s->dst[i] = (char *)outputs[i].data + (size_t)off * e->out_sample_bytes[i];
        pthread_mutex_lock(&l->mu);
        l->remaining++;
        pthread_mutex_unlock(&l->mu);
        s->n = k;
        s->done = latch_done;
        s->user = l;
        s->t_start = ferry_now_us();
        worker_enqueue(s->w, s);
    }
    return FERRY_OK;
}

ferry_status ferry_engine_run(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                              ferry_tensor *outputs, int n_out)
{
    int64_t n;
    ferry_status st;
    if (!e)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_run: engine is NULL");
    if (e->n_sub)
        return lengths_run(e, inputs, n_in, outputs, n_out);
    if ((st = validate_io(e, inputs, n_in, outputs, n_out, &n)) != FERRY_OK)
        return st;
    if (n == 0)
        return FERRY_OK;

    if (n <= chunk_size(e, n)) {
        /* One chunk: run it from this thread. On the CPU the forward runs
         * right here (when a slot is free at once; else a worker takes it);
         * on a GPU this thread queues the work and waits on its event.
         * Handing it to the worker and completion threads would add two
         * thread wake-ups to every call, most of a small batch's latency. */
        engine_slot *s = NULL;
        if (e->ops->host_visible) {
            pthread_mutex_lock(&e->free_mu);
            s = e->shutting_down ? NULL : take_free_locked(e);
            pthread_mutex_unlock(&e->free_mu);
        } else if ((st = engine_slot_acquire(e, -1, &s)) != FERRY_OK) {
            return st;
        }
        if (s) {
            for (int i = 0; i < n_in; i++)
                s->src[i] = inputs[i].data;
            for (int i = 0; i < n_out; i++)
                s->dst[i] = outputs[i].data;
            s->n = n;
            int64_t t0 = ferry_now_us();
            if (e->ops->host_visible) {
                st = worker_run_inline(s);
            } else if ((st = worker_issue(s)) == FERRY_OK) {
                st = e->cfg.sync == FERRY_SYNC_DEVICE ? e->ops->device_sync(s->w->ctx)
                                                      : e->ops->event_sync(s->ev);
            } else {
                e->ops->stream_sync(s->w->stream); /* let what was queued finish first */
            }
            engine_note_status(e, s->w, st);
            engine_account(e, n, ferry_now_us() - t0);
            engine_slot_release(s);
            return st;
        }
    }
    latch l;
    latch_init(&l);
    st = submit_chunks(e, inputs, outputs, n, &l);
    ferry_status wst = latch_wait(&l);
    return st != FERRY_OK ? st : wst;
}

ferry_status ferry_engine_run_many(ferry_engine *e, int n_batches, const ferry_tensor *inputs,
                                   int n_in, ferry_tensor *outputs, int n_out)
{
    if (!e || n_batches < 0)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_run_many: bad arguments");
    if (e->n_sub)
        return lengths_run_many(e, n_batches, inputs, n_in, outputs, n_out);
    ferry_status st, first = FERRY_OK;
    char msg[512] = "";
    /* Validate everything first: a bad batch fails before any runs. */
    for (int b = 0; b < n_batches; b++) {
        int64_t n;
        if ((st = validate_io(e, inputs + (size_t)b * n_in, n_in, outputs + (size_t)b * n_out,
                              n_out, &n)) != FERRY_OK)
            return ferry_fail_prefix(st, "batch %d", b);
    }
    latch l;
    latch_init(&l);
    for (int b = 0; b < n_batches; b++) {
        int64_t n = inputs[(size_t)b * n_in].shape[0];
        st = submit_chunks(e, inputs + (size_t)b * n_in, outputs + (size_t)b * n_out, n, &l);
        if (st != FERRY_OK && first == FERRY_OK) {
            first = st;
            snprintf(msg, sizeof msg, "%s", ferry_last_error());
        }
    }
    st = latch_wait(&l);
    if (first != FERRY_OK)
        return ferry_fail(first, "%s", msg);
    return st;
}

static void submit_trampoline(void *user, engine_slot *s, ferry_status st)
{
    (void)user;
    ferry_done_fn fn = s->user_done;
    void *arg = s->user_arg;
    engine_slot_release(s);
    if (fn)
        fn(arg, st);
}

ferry_status ferry_engine_submit(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                                 ferry_tensor *outputs, int n_out, ferry_done_fn done, void *user)
{
    int64_t n;
    ferry_status st;
    if (!e)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_submit: engine is NULL");
    if (e->n_sub)
        return lengths_submit(e, inputs, n_in, outputs, n_out, done, user);
    if ((st = validate_io(e, inputs, n_in, outputs, n_out, &n)) != FERRY_OK)
        return st;
    if (n < 1 || n > e->cfg.max_batch)
        return ferry_fail(FERRY_EINVAL,
                          "ferry_engine_submit: batch of %lld samples; expected 1..max_batch (%d)",
                          (long long)n, e->cfg.max_batch);
    engine_slot *s = NULL;
    if ((st = engine_slot_acquire(e, -1, &s)) != FERRY_OK)
        return st;
    for (int i = 0; i < n_in; i++)
        s->src[i] = inputs[i].data;
    for (int i = 0; i < n_out; i++)
        s->dst[i] = outputs[i].data;
    s->user_done = done;
    s->user_arg = user;
    s->n = n;
    s->done = submit_trampoline;
    s->user = NULL;
    s->t_start = ferry_now_us();
    /* The worker's thread issues it: one caller keeping several workers
     * busy (the pipelined sweep) gets their issuing in parallel. */
    worker_enqueue(s->w, s);
    return FERRY_OK;
}

/* Runs every slot once at each size that matters, so that kernel choices,
 * BLAS buffers and captured graphs exist before the first real call. */
ferry_status ferry_engine_warmup(ferry_engine *e)
{
    if (!e)
        return ferry_fail(FERRY_EINVAL, "ferry_engine_warmup: engine is NULL");
    if (e->n_sub)
        return lengths_warmup(e);
    int64_t sizes[ENGINE_MAX_BUCKETS];
    int n_sizes = 0;
    if (e->cfg.graphs || !e->ops->host_visible) {
        for (int b = 0; b < e->n_buckets; b++)
            sizes[n_sizes++] = e->buckets[b];
    } else {
        sizes[n_sizes++] = 1;
        if (e->cfg.max_batch > 1)
            sizes[n_sizes++] = e->cfg.max_batch;
    }
    engine_slot **all = calloc((size_t)e->total_slots, sizeof *all);
    if (!all)
        return ferry_fail(FERRY_ENOMEM, "out of memory in warm-up");
    ferry_status st = FERRY_OK;
    for (int k = 0; k < n_sizes && st == FERRY_OK; k++) {
        latch l;
        latch_init(&l);
        int got = 0;
        for (; got < e->total_slots; got++)
            if ((st = engine_slot_acquire(e, -1, &all[got])) != FERRY_OK)
                break;
        pthread_mutex_lock(&l.mu);
        l.remaining = got;
        pthread_mutex_unlock(&l.mu);
        for (int i = 0; i < got; i++) {
            engine_slot *s = all[i];
            s->n = sizes[k];
            s->done = latch_done;
            s->user = &l;
            s->t_start = ferry_now_us();
            worker_enqueue(s->w, s);
        }
        ferry_status wst = latch_wait(&l);
        if (st == FERRY_OK)
            st = wst;
    }
    free(all);
    if (st == FERRY_OK) {
        atomic_store(&e->st_batches, 0);
        atomic_store(&e->st_samples, 0);
        atomic_store(&e->st_compute_us, 0);
    }
    return st;
}

const char *ferry_engine_device(const ferry_engine *e)
{
    return e ? e->device_name : "";
}

int ferry_engine_device_ok(const ferry_engine *e, int k)
{
    if (e && e->n_sub)
        return ferry_engine_device_ok(e->sub[0], k);
    if (!e || k < 0 || k >= e->n_dev)
        return 0;
    return !atomic_load(&((ferry_engine *)e)->dev_bad[k]);
}

void engine_mark_device_bad(ferry_engine *e, int k)
{
    for (int b = 0; e && b < (e->n_sub ? e->n_sub : 1); b++) {
        ferry_engine *t = e->n_sub ? e->sub[b] : e;
        if (k >= 0 && k < t->n_dev)
            atomic_store(&t->dev_bad[k], 1);
    }
    if (e) { /* waiters for a slot may now take one of another device, or fail */
        pthread_mutex_lock(&e->free_mu);
        pthread_cond_broadcast(&e->free_cv);
        pthread_mutex_unlock(&e->free_mu);
    }
}

int ferry_engine_num_devices(const ferry_engine *e)
{
    if (e && e->n_sub)
        return ferry_engine_num_devices(e->sub[0]);
    return e ? e->n_dev : 0;
}

const char *ferry_engine_device_at(const ferry_engine *e, int k)
{
    if (e && e->n_sub)
        return ferry_engine_device_at(e->sub[0], k);
    if (!e || k < 0 || k >= e->n_dev || !e->ctxs[k])
        return "";
    return e->ops->ctx_device_name(e->ctxs[k]);
}

const ferry_engine_config *ferry_engine_get_config(const ferry_engine *e)
{
    return e ? &e->cfg : NULL;
}

void ferry_engine_get_stats(const ferry_engine *e, ferry_engine_stats *out)
{
    if (e->n_sub) {
        lengths_stats(e, out);
        return;
    }
    ferry_engine *me = (ferry_engine *)e;
    out->batches = atomic_load(&me->st_batches);
    out->samples = atomic_load(&me->st_samples);
    out->compute_us = atomic_load(&me->st_compute_us);
}
