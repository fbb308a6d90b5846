/*
 * varlen_bench.c - requests of different lengths to one sequence model
 * (issue 17): closed-loop clients through a ferry_batcher, three ways:
 *   a  length buckets (the model's default buckets, or --buckets)
 *   b  batching only identical lengths (one bucket per length lo..hi)
 *   c  padding every request to hi (one bucket)
 * Each client sends one sample of a length drawn uniformly from lo..hi (ids
 * random, mask all ones), waits for its answer, and sends the next from the
 * completion callback. The modes are measured interleaved (a b c a b c ...)
 * so that a machine shared with other work loads each alike; each figure
 * is the median over --repeat windows, with the range.
 *
 * Build against a build dir (only the public API is used):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/varlen_bench.c -o /tmp/varlen_bench \
 *      -LBUILD/lib -lferry -Wl,-rpath,BUILD/lib -lpthread -lm
 * Run:
 *   /tmp/varlen_bench MODEL.onnx [--device cpu|cuda] [--clients 64,256] [--duration 3]
 *       [--repeat 3] [--lengths 8,128] [--modes a,b,c] [--buckets 16,24,...]
 *       [--workers N] [--max-batch N] [--max-delay-us N]
 * Timing only, not a test.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"

#define MAXC 1024
#define HBINS 1200 /* latency bins: 1 us * 1.02^k */

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

typedef struct client client;
typedef struct run {
    ferry_batcher *b;
    int lo, hi, d, hidden_out, pooled_out;
    atomic_int stop;
    atomic_int live; /* clients with a request out */
    atomic_llong done_in_window;
    atomic_llong hist[HBINS];
    int64_t t0, t1; /* window */
} run;

struct client {
    run *r;
    uint64_t rng;
    int64_t t_sent;
    int64_t *ids, *mask;
    float *hid, *pool;
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void on_done(void *user, ferry_status st);

static void send_one(client *c)
{
    run *r = c->r;
    int l = r->lo + (int)(xorshift(&c->rng) % (uint64_t)(r->hi - r->lo + 1));
    for (int i = 0; i < l; i++) {
        c->ids[i] = (int64_t)(xorshift(&c->rng) % 1000);
        c->mask[i] = 1;
    }
    ferry_tensor in[2] = {{FERRY_I64, 2, {1, l}, c->ids}, {FERRY_I64, 2, {1, l}, c->mask}};
    ferry_tensor out[2] = {{FERRY_F32, 3, {1, l, r->d}, c->hid},
                           {FERRY_F32, 2, {1, r->d}, c->pool}};
    c->t_sent = now_us();
    ferry_status st = ferry_batcher_submit(r->b, in, 2, out, 2, NULL, on_done, c);
    if (st != FERRY_OK) {
        fprintf(stderr, "submit: %s: %s\n", ferry_status_str(st), ferry_last_error());
        atomic_fetch_sub(&r->live, 1);
    }
}

static void on_done(void *user, ferry_status st)
{
    client *c = user;
    run *r = c->r;
    int64_t t = now_us();
    if (st != FERRY_OK)
        fprintf(stderr, "request: %s\n", ferry_status_str(st));
    if (t >= r->t0 && t < r->t1) {
        int64_t us = t - c->t_sent;
        int k = us <= 1 ? 0 : (int)(log((double)us) / log(1.02));
        atomic_fetch_add_explicit(&r->hist[k < HBINS ? k : HBINS - 1], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->done_in_window, 1, memory_order_relaxed);
    }
    if (atomic_load(&r->stop))
        atomic_fetch_sub(&r->live, 1);
    else
        send_one(c);
}

static double pct(run *r, double p)
{
    long long total = 0, acc = 0;
    for (int k = 0; k < HBINS; k++)
        total += r->hist[k];
    for (int k = 0; k < HBINS; k++) {
        acc += r->hist[k];
        if (acc >= p * (double)total)
            return pow(1.02, k + 1) / 1000.0; /* ms, the bin's upper edge */
    }
    return 0;
}

typedef struct mode {
    char name;
    ferry_model *m;
    ferry_engine *e;
    ferry_batcher *b;
    int n_len;
} mode;

static int parse_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    while (*s && n < max) {
        v[n++] = strtoll(s, (char **)&s, 10);
        if (*s == ',')
            s++;
    }
    return n;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.onnx [options] (see the file's comment)\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *device = "cpu", *modes_s = "a,b,c";
    int64_t clients[8] = {64, 256}, lens[2] = {8, 128}, buckets[64];
    int n_clients = 2, n_buckets = 0, repeat = 3, workers = 1, max_batch = 32;
    double duration = 3;
    int64_t max_delay = 500;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--clients"))
            n_clients = parse_list(v, clients, 8);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--repeat"))
            repeat = atoi(v);
        else if (!strcmp(a, "--lengths"))
            parse_list(v, lens, 2);
        else if (!strcmp(a, "--modes"))
            modes_s = v;
        else if (!strcmp(a, "--buckets"))
            n_buckets = parse_list(v, buckets, 64);
        else if (!strcmp(a, "--workers"))
            workers = atoi(v);
        else if (!strcmp(a, "--max-batch"))
            max_batch = atoi(v);
        else if (!strcmp(a, "--max-delay-us"))
            max_delay = atoll(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    int lo = (int)lens[0], hi = (int)lens[1];
    mode modes[3];
    int n_modes = 0;
    for (const char *p = modes_s; *p; p++) {
        if (*p != 'a' && *p != 'b' && *p != 'c')
            continue;
        mode *md = &modes[n_modes++];
        memset(md, 0, sizeof *md);
        md->name = *p;
        ferry_model_options o;
        ferry_model_options_init(&o);
        int64_t all[1024];
        int n = 0;
        if (*p == 'a') {
            for (int k = 0; k < n_buckets; k++)
                all[n++] = buckets[k];
            if (!n) { /* the defaults, up to hi */
                static const int64_t def[] = {16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
                for (int k = 0; k < 11 && def[k] < hi; k++)
                    all[n++] = def[k];
                all[n++] = hi;
            }
        } else if (*p == 'b') {
            for (int l = lo; l <= hi; l++)
                all[n++] = l;
        } else {
            all[n++] = hi;
        }
        o.length_buckets = all;
        o.n_length_buckets = n;
        md->n_len = n;
        ferry_engine_config ec;
        ferry_engine_config_init(&ec);
        ec.device = device;
        ec.workers = workers;
        ec.max_batch = max_batch;
        ferry_batcher_config bc;
        ferry_batcher_config_init(&bc);
        bc.max_delay_us = max_delay;
        bc.max_queue = 1 << 20;
        int64_t t = now_us();
        if (ferry_model_load_opts(path, &o, &md->m) || ferry_engine_create(md->m, &ec, &md->e) ||
            ferry_engine_warmup(md->e) || ferry_batcher_create(md->e, &bc, &md->b)) {
            fprintf(stderr, "mode %c: %s\n", *p, ferry_last_error());
            return 1;
        }
        fprintf(stderr, "mode %c: %d length buckets, ready in %.1f s\n", *p, n,
                (double)(now_us() - t) / 1e6);
    }
    ferry_tensor_info oi;
    ferry_model_output(modes[0].m, 1, &oi);
    int d = (int)oi.shape[1];
    client *cs = calloc(MAXC, sizeof *cs);
    for (int i = 0; i < MAXC; i++) {
        cs[i].ids = calloc((size_t)hi, 8);
        cs[i].mask = calloc((size_t)hi, 8);
        cs[i].hid = calloc((size_t)hi * (size_t)d, 4);
        cs[i].pool = calloc((size_t)d, 4);
        cs[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    }
    double rps[3][8][64], p99[3][8][64], p50[3][8][64];
    for (int rep = 0; rep < repeat && rep < 64; rep++)
        for (int ci = 0; ci < n_clients; ci++)
            for (int mi = 0; mi < n_modes; mi++) {
                run *r = calloc(1, sizeof *r);
                r->b = modes[mi].b;
                r->lo = lo;
                r->hi = hi;
                r->d = d;
                int nc = (int)clients[ci] < MAXC ? (int)clients[ci] : MAXC;
                int64_t t = now_us();
                r->t0 = t + 500000; /* half a second to fill the pipeline */
                r->t1 = r->t0 + (int64_t)(duration * 1e6);
                atomic_store(&r->live, nc);
                for (int i = 0; i < nc; i++) {
                    cs[i].r = r;
                    send_one(&cs[i]);
                }
                while (now_us() < r->t1)
                    usleep(20000);
                atomic_store(&r->stop, 1);
                while (atomic_load(&r->live) > 0)
                    usleep(1000);
                rps[mi][ci][rep] = (double)r->done_in_window / duration;
                p99[mi][ci][rep] = pct(r, 0.99);
                p50[mi][ci][rep] = pct(r, 0.50);
                printf("rep %d mode %c clients %3d: %8.1f req/s  p50 %7.1f ms  p99 %7.1f ms\n", rep,
                       modes[mi].name, nc, rps[mi][ci][rep], p50[mi][ci][rep], p99[mi][ci][rep]);
                fflush(stdout);
                free(r);
            }
    printf("\nsummary (median [min-max] over %d windows of %.1f s; lengths %d..%d):\n", repeat,
           duration, lo, hi);
    for (int ci = 0; ci < n_clients; ci++)
        for (int mi = 0; mi < n_modes; mi++) {
            double a[64], b[64];
            memcpy(a, rps[mi][ci], sizeof(double) * (size_t)repeat);
            memcpy(b, p99[mi][ci], sizeof(double) * (size_t)repeat);
            qsort(a, (size_t)repeat, sizeof *a, cmpd);
            qsort(b, (size_t)repeat, sizeof *b, cmpd);
            printf("  clients %3lld  %c (%3d buckets): %8.1f req/s [%.1f-%.1f]  p99 %7.1f ms "
                   "[%.1f-%.1f]\n",
                   (long long)clients[ci], modes[mi].name, modes[mi].n_len, a[repeat / 2], a[0],
                   a[repeat - 1], b[repeat / 2], b[0], b[repeat - 1]);
        }
    for (int mi = 0; mi < n_modes; mi++) {
        ferry_padding_stats ps;
        ferry_batcher_get_padding(modes[mi].b, &ps);
        ferry_batcher_stats bs;
        ferry_batcher_get_stats(modes[mi].b, &bs);
        printf("  %c: padding %.1f%% of positions run, %.1f samples a batch\n", modes[mi].name,
               100.0 * (double)ps.padding / (double)(ps.padding + ps.tokens + 1),
               (double)bs.samples / (double)(bs.batches ? bs.batches : 1));
        ferry_batcher_destroy(modes[mi].b);
        ferry_engine_destroy(modes[mi].e);
        ferry_model_destroy(modes[mi].m);
    }
    for (int i = 0; i < MAXC; i++) {
        free(cs[i].ids);
        free(cs[i].mask);
        free(cs[i].hid);
        free(cs[i].pool);
    }
    free(cs);
    return 0;
}
