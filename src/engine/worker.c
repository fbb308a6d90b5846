/*
 * worker.c - an engine worker: one backend stream, pipeline_depth slots, a
 * thread that issues jobs onto the stream and, for devices with their own
 * memory (CUDA), a completion thread that waits on each job's event in
 * order and runs its callback. The issuing thread never waits on the
 * device, so while batch k computes, batch k+1's copy-in is already queued.
 *
 * On host-visible devices (CPU) the worker thread runs the forward itself:
 * there is nothing to overlap, and a second thread would only add a hop.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_impl.h"
#include "util/error.h"
#include "util/thread.h"

int engine_bucket_for(const ferry_engine *e, int64_t n)
{
    for (int b = 0; b < e->n_buckets; b++)
        if (e->buckets[b] >= n)
            return b;
    return e->n_buckets - 1;
}

static void complete(engine_slot *s, ferry_status st)
{
    engine_note_status(s->e, s->w, st);
    engine_account(s->e, s->n, ferry_now_us() - s->t_start);
    s->done(s->user, s, st);
}

static void job_pointers(engine_slot *s, const void **in, void **out)
{
    ferry_engine *e = s->e;
    for (int i = 0; i < e->n_in; i++)
        in[i] = s->src[i] ? s->src[i] : s->stage_in[i];
    for (int i = 0; i < e->n_out; i++)
        out[i] = s->dst[i] ? s->dst[i] : s->stage_out[i];
}

/* Waits for a core (engine_impl.h, struct engine_gate): FIFO by ticket. */
static void gate_enter(engine_gate *g)
{
    pthread_mutex_lock(&g->mu);
    uint64_t t = g->next++;
    while (t >= g->admitted)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_leave(engine_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->admitted++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

ferry_status worker_run_inline(engine_slot *s)
{
    const void *in[ENGINE_MAX_IO];
    void *out[ENGINE_MAX_IO];
    job_pointers(s, in, out);
    engine_gate *g = s->e->ops->host_visible ? s->e->gate : NULL;
    if (g)
        gate_enter(g);
    ferry_status st = s->e->ops->forward(s->w->stream, s->n, in, out, s->arena);
    if (g)
        gate_leave(g);
    return st;
}

/* Queues copy-in, forward (or its captured graph) and copy-out on the
 * worker's stream, then records the slot's event. Never waits. */
static ferry_status issue(engine_slot *s)
{
    ferry_engine *e = s->e;
    const ferry_backend_ops *ops = e->ops;
    backend_stream *st_ = s->w->stream;
    const void *host_in[ENGINE_MAX_IO];
    void *host_out[ENGINE_MAX_IO];
    ferry_status st;
    job_pointers(s, host_in, host_out);

    if (ops->forward_host) {
        int done = 0;
        if ((st = ops->forward_host(st_, s->n, host_in, host_out, &done)) != FERRY_OK)
            return st;
        if (done)
            return ops->event_record(s->ev, st_);
    }
    for (int i = 0; i < e->n_in; i++)
        if ((st = ops->copy_h2d(st_, s->dev_in[i], host_in[i],
                                (size_t)s->n * e->in_sample_bytes[i])) != FERRY_OK)
            return st;
    if (e->cfg.graphs && ops->capture_begin) {
        int b = engine_bucket_for(e, s->n);
        if (!s->graphs[b]) {
            /* First use of this bucket in this slot: one plain run lets the
             * backend pick its kernels (no lookups may happen in capture). */
            int64_t nb = e->buckets[b];
            const void *din[ENGINE_MAX_IO];
            for (int i = 0; i < e->n_in; i++)
                din[i] = s->dev_in[i];
            if ((st = ops->forward(st_, nb, din, s->dev_out, s->arena)) != FERRY_OK)
                return st;
            if ((st = ops->capture_begin(st_)) != FERRY_OK)
                return st;
            ferry_status fst = ops->forward(st_, nb, din, s->dev_out, s->arena);
            st = ops->capture_end(st_, &s->graphs[b]);
            if (fst != FERRY_OK)
                return fst;
            if (st != FERRY_OK)
                return st;
        }
        if ((st = ops->graph_launch(s->graphs[b], st_)) != FERRY_OK)
            return st;
    } else {
        const void *din[ENGINE_MAX_IO];
        for (int i = 0; i < e->n_in; i++)
            din[i] = s->dev_in[i];
        if ((st = ops->forward(st_, s->n, din, s->dev_out, s->arena)) != FERRY_OK)
            return st;
    }
    for (int i = 0; i < e->n_out; i++)
        if ((st = ops->copy_d2h(st_, host_out[i], s->dev_out[i],
                                (size_t)s->n * e->out_sample_bytes[i])) != FERRY_OK)
            return st;
    return ops->event_record(s->ev, st_);
}

ferry_status worker_issue(engine_slot *s)
{
    pthread_mutex_lock(&s->w->issue_mu);
    ferry_status st = issue(s);
    pthread_mutex_unlock(&s->w->issue_mu);
    return st;
}

/* Appends s to one of the worker's queues (jobs or flight) and wakes the
 * thread that drains it. */
static void push(worker *w, engine_slot **head, engine_slot **tail, pthread_cond_t *cv,
                 engine_slot *s)
{
    s->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (*tail)
        (*tail)->next = s;
    else
        *head = s;
    *tail = s;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(&w->mu);
}

/* Hands an issued job to the completion thread, behind the jobs issued
 * before it on the stream. Called with issue_mu held, so that the flight
 * queue keeps the stream's order. */
static void track(worker *w, engine_slot *s)
{
    push(w, &w->flight_head, &w->flight_tail, &w->cv_flight, s);
}

/* Issues the job and hands it to the completion thread; on an issue error,
 * lets earlier jobs of the stream finish first, so that callbacks keep
 * their order, and completes it with the error. */
static void issue_and_track(worker *w, engine_slot *s)
{
    pthread_mutex_lock(&w->issue_mu);
    ferry_status st = issue(s);
    if (st == FERRY_OK)
        track(w, s);
    pthread_mutex_unlock(&w->issue_mu);
    if (st != FERRY_OK) {
        w->e->ops->stream_sync(w->stream);
        complete(s, st);
    }
}

void worker_submit_inline(engine_slot *s)
{
    issue_and_track(s->w, s);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ferry_engine *e = w->e;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->jobs_head && !w->stop)
            pthread_cond_wait(&w->cv_jobs, &w->mu);
        engine_slot *s = w->jobs_head;
        if (!s) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->jobs_head = s->next;
        if (!w->jobs_head)
            w->jobs_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        s->next = NULL;

        if (s->fill) {
            engine_slot_fill_fn fill = s->fill;
            s->fill = NULL;
            fill(s->fill_user, s);
        }
        if (e->ops->host_visible)
            complete(s, worker_run_inline(s));
        else
            issue_and_track(w, s);
    }
    return NULL;
}

static void *done_main(void *arg)
{
    worker *w = arg;
    ferry_engine *e = w->e;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->flight_head && w->stop < 2)
            pthread_cond_wait(&w->cv_flight, &w->mu);
        engine_slot *s = w->flight_head;
        if (!s) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->flight_head = s->next;
        if (!w->flight_head)
            w->flight_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        s->next = NULL;
        ferry_status st = e->cfg.sync == FERRY_SYNC_DEVICE ? e->ops->device_sync(w->ctx)
                                                           : e->ops->event_sync(s->ev);
        complete(s, st);
    }
    return NULL;
}

ferry_status worker_start(worker *w)
{
    if (ferry_thread_start(&w->thread, NULL, worker_main, w) != 0)
        return ferry_fail(FERRY_ENOMEM, "cannot start engine worker thread %d", w->index);
    w->have_thread = 1;
    if (!w->e->ops->host_visible) {
        if (ferry_thread_start(&w->done_thread, NULL, done_main, w) != 0)
            return ferry_fail(FERRY_ENOMEM, "cannot start engine completion thread %d", w->index);
        w->have_done_thread = 1;
    }
    return FERRY_OK;
}

/* Drains: the issuing thread finishes its queue, then the completion thread
 * finishes everything in flight. */
void worker_stop(worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv_jobs);
    pthread_mutex_unlock(&w->mu);
    if (w->have_thread)
        pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->mu);
    w->stop = 2;
    pthread_cond_broadcast(&w->cv_flight);
    pthread_mutex_unlock(&w->mu);
    if (w->have_done_thread)
        pthread_join(w->done_thread, NULL);
    w->have_thread = w->have_done_thread = 0;
}

void worker_enqueue(worker *w, engine_slot *s)
{
    push(w, &w->jobs_head, &w->jobs_tail, &w->cv_jobs, s);
}
