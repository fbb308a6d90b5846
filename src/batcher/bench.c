/*
 * bench.c - closed-loop load through the batcher (bench.h): a fixed number
 * of single-sample requests always outstanding, each completion resubmitting
 * from the callback, so the batcher's own threads carry the load and no
 * client thread per request is needed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher/batcher.h"
#include "batcher/bench.h"
#include "batcher/futex.h"
#include "util/error.h"

/* log-linear latency buckets: exact below 64 us, then 64 per power of two */
#define LAT_SUB 64
#define LAT_N (LAT_SUB + 42 * LAT_SUB)
#define BENCH_THREADS 4

typedef struct bench bench;

/* What the callbacks count, one per stats_shard(): the engine threads that
 * run them would otherwise all write the same cache lines per request. */
typedef struct bshard {
    alignas(64) _Atomic uint64_t completed;
    _Atomic uint64_t lat[LAT_N];
} bshard;

typedef struct bclient {
    bench *bn;
    ferry_tensor *out;
    int64_t t0;
} bclient;

struct bench {
    ferry_batcher *b;
    ferry_tensor *in;
    int64_t t_meas, t_end;
    alignas(64) atomic_int active;
    atomic_uint done;
    _Atomic int err; /* first ferry_status a callback saw */
    bclient *cl;
    int conc;
    bshard shards[BATCHER_SHARDS];
};

static int lat_index(int64_t us)
{
    if (us < LAT_SUB)
        return us < 0 ? 0 : (int)us;
    int e = 63 - __builtin_clzll((unsigned long long)us); /* >= 6 */
    int i = LAT_SUB + (e - 6) * LAT_SUB + (int)((us >> (e - 6)) - LAT_SUB);
    return i < LAT_N ? i : LAT_N - 1;
}

static double lat_value(int i)
{
    if (i < LAT_SUB)
        return i;
    int e = (i - LAT_SUB) / LAT_SUB + 6, sub = (i - LAT_SUB) % LAT_SUB;
    /* middle of the bucket */
    return ((double)(LAT_SUB + sub) + 0.5) * (double)(1ll << (e - 6));
}

static void finish(bench *bn)
{
    if (atomic_fetch_sub(&bn->active, 1) == 1) {
        atomic_store(&bn->done, 1);
        futex_wake_n(&bn->done, 1);
    }
}

static void note_err(bench *bn, ferry_status st)
{
    int zero = 0;
    atomic_compare_exchange_strong(&bn->err, &zero, (int)st);
}

static void bench_cb(void *user, ferry_status st);

/* now: the clock as the caller last read it (one read per completion). */
static ferry_status issue(bclient *c, int64_t now)
{
    bench *bn = c->bn;
    c->t0 = now;
    return ferry_batcher_submit(bn->b, bn->in, bn->b->n_in, c->out, bn->b->n_out, NULL, bench_cb,
                                c);
}

static void bench_cb(void *user, ferry_status st)
{
    bclient *c = user;
    bench *bn = c->bn;
    int64_t now = ferry_now_us();
    if (st != FERRY_OK) {
        note_err(bn, st);
        finish(bn);
        return;
    }
    if (now >= bn->t_meas && now <= bn->t_end) {
        bshard *sh = &bn->shards[stats_shard()];
        atomic_fetch_add_explicit(&sh->completed, 1, memory_order_relaxed);
        if (c->t0 >= bn->t_meas)
            atomic_fetch_add_explicit(&sh->lat[lat_index(now - c->t0)], 1, memory_order_relaxed);
    }
    if (now < bn->t_end) {
        st = issue(c, now);
        if (st == FERRY_OK)
            return;
        note_err(bn, st);
    }
    finish(bn);
}

typedef struct starter {
    bench *bn;
    int first, step;
} starter;

static void *start_clients(void *arg)
{
    starter *s = arg;
    for (int i = s->first; i < s->bn->conc; i += s->step) {
        ferry_status st = issue(&s->bn->cl[i], ferry_now_us());
        if (st != FERRY_OK) {
            note_err(s->bn, st);
            finish(s->bn);
        }
    }
    return NULL;
}

static void sleep_until(int64_t t_us)
{
    int64_t d;
    while ((d = t_us - ferry_now_us()) > 0) {
        struct timespec ts = {(time_t)(d / 1000000), (long)(d % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static uint64_t lat_count(const bench *bn, int i)
{
    uint64_t n = 0;
    for (int s = 0; s < BATCHER_SHARDS; s++)
        n += atomic_load_explicit(&bn->shards[s].lat[i], memory_order_relaxed);
    return n;
}

static double percentile(const bench *bn, uint64_t total, double p)
{
    uint64_t want = (uint64_t)(p * (double)total), acc = 0;
    for (int i = 0; i < LAT_N; i++) {
        acc += lat_count(bn, i);
        if (acc > want)
            return lat_value(i);
    }
    return lat_value(LAT_N - 1);
}

ferry_status batcher_bench_closed_loop(ferry_batcher *b, int concurrency, double seconds,
                                       double *req_per_s, double *p50_us, double *p99_us,
                                       double *mean_batch)
{
    if (!b || concurrency < 1 || !(seconds > 0))
        return ferry_fail(FERRY_EINVAL, "batcher bench: needs a batcher, concurrency >= 1 and "
                                        "a positive duration");
    ferry_status st = FERRY_OK;
    bench *bn = aligned_alloc(64, (sizeof *bn + 63) & ~(size_t)63);
    ferry_tensor *in = calloc((size_t)b->n_in + 1, sizeof *in);
    bclient *cl = calloc((size_t)concurrency, sizeof *cl);
    ferry_tensor *outs = calloc((size_t)concurrency * (size_t)(b->n_out + 1), sizeof *outs);
    size_t out_bytes = 0;
    for (int i = 0; i < b->n_out; i++)
        out_bytes += b->out[i].sample_bytes;
    unsigned char *obuf = malloc((size_t)concurrency * out_bytes + 1);
    unsigned char *ibuf = malloc(b->in_sample_bytes + 1);
    if (!bn || !in || !cl || !outs || !obuf || !ibuf) {
        st = ferry_fail(FERRY_ENOMEM, "batcher bench: out of memory for %d clients", concurrency);
        goto out;
    }
    memset(bn, 0, sizeof *bn);
    /* one pseudo-random sample, shared by every client (submit copies it) */
    uint32_t rng = 12345;
    unsigned char *p = ibuf;
    for (int i = 0; i < b->n_in; i++) {
        const io_desc *d = &b->in[i];
        in[i].dtype = d->dtype;
        in[i].ndim = d->ndim;
        memcpy(in[i].shape, d->shape, sizeof in[i].shape);
        in[i].shape[0] = 1;
        in[i].data = p;
        if (d->dtype == FERRY_F32) {
            float *f = (float *)p;
            for (size_t j = 0; j < d->sample_bytes / sizeof(float); j++) {
                rng = rng * 1664525u + 1013904223u;
                f[j] = (float)(rng >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
            }
        } else {
            memset(p, 0, d->sample_bytes);
        }
        p += d->sample_bytes;
    }
    for (int c = 0; c < concurrency; c++) {
        unsigned char *o = obuf + (size_t)c * out_bytes;
        cl[c].bn = bn;
        cl[c].out = outs + (size_t)c * (size_t)(b->n_out + 1);
        for (int i = 0; i < b->n_out; i++) {
            const io_desc *d = &b->out[i];
            ferry_tensor *t = &cl[c].out[i];
            t->dtype = d->dtype;
            t->ndim = d->ndim;
            memcpy(t->shape, d->shape, sizeof t->shape);
            t->shape[0] = 1;
            t->data = o;
            o += d->sample_bytes;
        }
    }
    bn->b = b;
    bn->in = in;
    bn->cl = cl;
    bn->conc = concurrency;
    atomic_init(&bn->active, concurrency);
    atomic_init(&bn->done, 0);
    atomic_init(&bn->err, 0);
    int64_t t_start = ferry_now_us(), span = (int64_t)(seconds * 1e6);
    bn->t_meas = t_start + span / 10;
    bn->t_end = t_start + span;

    int nt = concurrency < BENCH_THREADS ? concurrency : BENCH_THREADS;
    pthread_t th[BENCH_THREADS];
    starter sa[BENCH_THREADS];
    int started = 0;
    for (int t = 0; t < nt; t++) {
        sa[t] = (starter){bn, t, nt};
        if (pthread_create(&th[t], NULL, start_clients, &sa[t]) == 0)
            started++;
        else
            start_clients(&sa[t]);
    }
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);

    ferry_batcher_stats s0, s1;
    sleep_until(bn->t_meas);
    ferry_batcher_get_stats(b, &s0);
    sleep_until(bn->t_end);
    ferry_batcher_get_stats(b, &s1);
    while (!atomic_load(&bn->done))
        futex_wait_us(&bn->done, 0, 10000);

    uint64_t total = 0, completed = 0;
    for (int i = 0; i < LAT_N; i++)
        total += lat_count(bn, i);
    for (int s = 0; s < BATCHER_SHARDS; s++)
        completed += atomic_load_explicit(&bn->shards[s].completed, memory_order_relaxed);
    double window = (double)(bn->t_end - bn->t_meas) / 1e6;
    if (req_per_s)
        *req_per_s = (double)completed / window;
    if (p50_us)
        *p50_us = total ? percentile(bn, total, 0.50) : 0;
    if (p99_us)
        *p99_us = total ? percentile(bn, total, 0.99) : 0;
    if (mean_batch)
        *mean_batch = s1.batches > s0.batches
                          ? (double)(s1.samples - s0.samples) / (double)(s1.batches - s0.batches)
                          : 0;
    int err = atomic_load(&bn->err);
    if (err)
        st = ferry_fail((ferry_status)err, "batcher bench: a request failed with %s%s",
                        ferry_status_str((ferry_status)err),
                        err == FERRY_EBUSY ? " (concurrency above max_queue?)" : "");
out:
    free(ibuf);
    free(obuf);
    free(outs);
    free(cl);
    free(in);
    free(bn);
    return st;
}
