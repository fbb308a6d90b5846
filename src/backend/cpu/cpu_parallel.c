/*
 * cpu_parallel.c - the CPU backend's helper threads (see cpu_parallel.h).
 *
 * A job lives on its caller's stack and is published through pool.cur
 * without a lock: a helper first counts itself in pool.refs, then reads
 * pool.cur; the caller, done, clears pool.cur, then waits for pool.refs to
 * drop to zero before its job may go out of scope. (Both sides use
 * sequentially consistent atomics: a helper that read the job before it
 * was withdrawn is seen in refs by the caller's wait.) Chunks are taken
 * with one atomic add each.
 *
 * Helpers spin for a short while after a job before sleeping on the
 * condition variable: the next Gemm of the same forward() follows within
 * microseconds, and a futex wake-up costs more than a small layer. The
 * mutex serves sleeping only: a caller broadcasts when some helper sleeps,
 * so that 15 spinning helpers of a 16-core machine do not queue on a lock
 * for every layer (that made batch 1 four times slower there than on 2
 * cores).
 *
 * Helpers spin only while forward() has its core to itself: when the
 * calling thread's CPU time over a forward falls below CONTENDED_PCT of
 * the wall time, other processes want the cores, and a spinning helper
 * holds one of them, pushing their work onto the caller's (ViT at batch 1
 * beside builds, load 5-6: 28-33 samples/s on two threads against 34-43
 * on one; with helpers that sleep at once 35-41). Helpers then sleep
 * between jobs until a forward runs at full speed again.
 */
#include "backend/cpu/cpu_parallel.h"
#include "util/cpus.h"
#include "util/thread.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 64

/* Participant p (0: the caller, p >= 1: helper p) owns chunks
 * [p*n/parts, (p+1)*n/parts) and takes them from its own counter first,
 * so that from one call to the next the same thread touches the same
 * slice of a weight matrix and finds it in its core's L2. Then it steals
 * from the others' counters: a late helper loses its share. */
typedef struct cpu_job {
    cpu_chunk_fn fn;
    void *arg;
    int parts;
    atomic_int refs; /* helpers inside the job */
    int64_t end[MAX_PARTS];
    atomic_llong next[MAX_PARTS];
} cpu_job;

static struct {
    pthread_once_t once;
    pthread_mutex_t mu; /* for sleeping helpers only */
    pthread_cond_t cv;
    _Atomic(cpu_job *) cur; /* the job on offer, or NULL */
    atomic_int refs;        /* helpers that may be reading cur's job */
    atomic_int sleepers;    /* helpers asleep (or going to sleep) on cv */
    atomic_uint gen;        /* bumped for every job published */
    atomic_flag owned;      /* one job at a time */
    int n_helpers;
    int threads;
} pool = {
    .once = PTHREAD_ONCE_INIT,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .owned = ATOMIC_FLAG_INIT,
};

static atomic_int inflight; /* forward() calls running now */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_chunks(cpu_job *j, int self)
{
    for (int k = 0; k < j->parts; k++) {
        int p = (self + k) % j->parts;
        int64_t i;
        while ((i = atomic_fetch_add_explicit(&j->next[p], 1, memory_order_relaxed)) < j->end[p])
            j->fn(j->arg, i);
    }
}

/* How long an idle helper polls for the next job before it sleeps. */
#define HELPER_SPIN_NS 200000
/* Below this share of CPU time over wall time a forward was contended (see
 * above); forwards shorter than CONTENDED_MIN_NS are too short to say. */
#define CONTENDED_PCT 80
#define CONTENDED_MIN_NS 100000
static atomic_int contended; /* the last forward judged was */

static void *helper_main(void *idp)
{
    int self = (int)(intptr_t)idp;
    unsigned seen = atomic_load(&pool.gen);
    for (;;) {
        int64_t t0 = now_ns();
        for (int k = 0; !atomic_load_explicit(&contended, memory_order_relaxed) &&
                        atomic_load_explicit(&pool.gen, memory_order_acquire) == seen;
             k++) {
            cpu_relax();
            /* Sleep at once while several forwards run (the engine's
             * workers each on a chunk of a batch): they run their Gemms
             * inline and need the cores this loop would burn (mlp-s at
             * batch 256 on 16 cores: 255k samples/s with spinning helpers,
             * 378k without any). */
            if ((k & 255) == 255 && (now_ns() - t0 > HELPER_SPIN_NS ||
                                     atomic_load_explicit(&inflight, memory_order_relaxed) > 1))
                break;
        }
        if (atomic_load(&pool.gen) == seen) {
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.gen) == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = atomic_load(&pool.gen);
        atomic_fetch_add(&pool.refs, 1);
        cpu_job *j = atomic_load(&pool.cur);
        if (j && self < j->parts)
            run_chunks(j, self);
        atomic_fetch_sub(&pool.refs, 1);
    }
    return NULL;
}

static void pool_init(void)
{
    int t = ferry_usable_cpus();
    const char *env = getenv("FERRY_CPU_THREADS");
    if (env && *env && atoi(env) >= 1)
        t = atoi(env);
    pool.threads = t;
    if (t > MAX_PARTS)
        t = MAX_PARTS;
    for (int i = 0; i < t - 1; i++) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = ferry_thread_start(&th, &at, helper_main, (void *)(intptr_t)(i + 1));
        pthread_attr_destroy(&at);
        if (rc != 0)
            break; /* fewer helpers: the caller does their share */
        pool.n_helpers++;
    }
}

int cpu_parallel_threads(void)
{
    pthread_once(&pool.once, pool_init);
    return pool.n_helpers + 1;
}

int cpu_parallel_available(void)
{
    pthread_once(&pool.once, pool_init);
    if (pool.n_helpers == 0 || atomic_load_explicit(&inflight, memory_order_relaxed) > 1)
        return 1;
    return pool.n_helpers + 1;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every 16th forward of a thread is judged: reading the thread's CPU
 * clock is a system call (1.6 us on this VM), as long as a small model's
 * whole forward. Only forwards alone when they begin and end, the kind
 * that gives helpers jobs: two of the engine's workers side by side on two
 * cores share them with any other process, which says nothing of spinning
 * (ViT at batch 32, judged too: 0.79-1.04x of main per round). fwd_wall,
 * fwd_cpu: when the judged one began; 0 for one not judged. */
#define JUDGE_EVERY 16
static _Thread_local unsigned fwd_count;
static _Thread_local int64_t fwd_wall, fwd_cpu;

void cpu_parallel_enter(void)
{
    int alone = atomic_fetch_add_explicit(&inflight, 1, memory_order_relaxed) == 0;
    fwd_wall = 0;
    if (alone && fwd_count++ % JUDGE_EVERY == 0) {
        fwd_wall = now_ns();
        fwd_cpu = thread_cpu_ns();
    }
}

void cpu_parallel_leave(void)
{
    int alone = atomic_load_explicit(&inflight, memory_order_relaxed) == 1;
    if (fwd_wall && alone) {
        int64_t wall = now_ns() - fwd_wall, cpu = thread_cpu_ns() - fwd_cpu;
        if (wall >= CONTENDED_MIN_NS)
            atomic_store_explicit(&contended, cpu * 100 < wall * CONTENDED_PCT,
                                  memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&inflight, 1, memory_order_relaxed);
}

void cpu_parallel_for(cpu_chunk_fn fn, void *arg, int64_t n_chunks, int max_threads)
{
    pthread_once(&pool.once, pool_init);
    if (n_chunks <= 1 || max_threads <= 1 || pool.n_helpers == 0 ||
        atomic_load_explicit(&inflight, memory_order_relaxed) > 1 ||
        atomic_flag_test_and_set(&pool.owned)) {
        for (int64_t i = 0; i < n_chunks; i++)
            fn(arg, i);
        return;
    }
    cpu_job j = {.fn = fn, .arg = arg};
    int parts = max_threads < pool.n_helpers + 1 ? max_threads : pool.n_helpers + 1;
    j.parts = (int64_t)parts < n_chunks ? parts : (int)n_chunks;
    atomic_init(&j.refs, 0);
    for (int p = 0; p < j.parts; p++) {
        atomic_init(&j.next[p], p * n_chunks / j.parts);
        j.end[p] = (p + 1) * n_chunks / j.parts;
    }
    atomic_store(&pool.cur, &j);
    atomic_fetch_add(&pool.gen, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    run_chunks(&j, 0);
    atomic_store(&pool.cur, NULL);
    /* Every chunk is taken; wait for helpers still finishing theirs (or
     * still looking at the job). */
    for (int k = 0; atomic_load(&pool.refs) > 0; k++) {
        cpu_relax();
        if ((k & 1023) == 1023)
            sched_yield();
    }
    atomic_flag_clear(&pool.owned);
}
