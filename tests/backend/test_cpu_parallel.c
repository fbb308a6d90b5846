/*
 * test_cpu_parallel.c - the CPU backend's pool (cpu_parallel.h): every
 * chunk runs exactly once whatever the split, and a helper that stalls
 * mid-chunk (as one preempted by another process does) costs the job that
 * one chunk: the caller takes the rest of the helper's share, and returns
 * only once the stalled chunk is done. Both again after a forward that
 * looked contended (its thread off the CPU most of its time), after which
 * helpers sleep between jobs instead of spinning.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "backend/cpu/cpu_parallel.h"

#define MAX_CHUNKS 4096

typedef struct {
    pthread_t caller;
    atomic_int runs[MAX_CHUNKS];
    atomic_int by_helpers; /* chunks a helper ran */
    atomic_int done;       /* chunks finished */
    int stall_ms;          /* a helper's first chunk sleeps this long */
    atomic_int stalled;
} job;

static void chunk(void *arg, int64_t i)
{
    job *j = arg;
    atomic_fetch_add(&j->runs[i], 1);
    if (!pthread_equal(pthread_self(), j->caller)) {
        atomic_fetch_add(&j->by_helpers, 1);
        if (j->stall_ms > 0 && atomic_exchange(&j->stalled, 1) == 0) {
            struct timespec ts = {0, (long)j->stall_ms * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(&j->done, 1);
}

static job *job_new(int stall_ms)
{
    job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->caller = pthread_self();
    j->stall_ms = stall_ms;
    return j;
}

static void test_every_chunk_once(void **state)
{
    (void)state;
    static const int64_t ns[] = {0, 1, 2, 3, 7, 64, 1000, MAX_CHUNKS};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int t = 1; t <= 4; t++)
            for (int rep = 0; rep < 20; rep++) {
                job *j = job_new(0);
                cpu_parallel_for(chunk, j, ns[a], t);
                assert_int_equal(atomic_load(&j->done), ns[a]);
                for (int64_t i = 0; i < ns[a]; i++)
                    assert_int_equal(atomic_load(&j->runs[i]), 1);
                free(j);
            }
}

/* The helper's first chunk stalls 30 ms: the caller runs every other
 * chunk, and returns with the stalled one finished. */
static void test_stalled_helper(void **state)
{
    (void)state;
    for (int rep = 0; rep < 5; rep++) {
        job *j = job_new(30);
        cpu_parallel_for(chunk, j, 64, cpu_parallel_threads());
        assert_int_equal(atomic_load(&j->done), 64);
        for (int64_t i = 0; i < 64; i++)
            assert_int_equal(atomic_load(&j->runs[i]), 1);
        assert_true(atomic_load(&j->by_helpers) <= 1);
        free(j);
    }
}

/* A forward that sleeps 2 ms is judged contended (the first of a thread
 * is judged); jobs then go to helpers that sleep between them. */
static void test_after_contended_forward(void **state)
{
    cpu_parallel_enter();
    struct timespec ts = {0, 2000000L};
    nanosleep(&ts, NULL);
    cpu_parallel_leave();
    test_every_chunk_once(state);
    test_stalled_helper(state);
}

int main(void)
{
    /* Helpers even on a one-core runner. */
    setenv("FERRY_CPU_THREADS", "2", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_chunk_once),
        cmocka_unit_test(test_stalled_helper),
        cmocka_unit_test(test_after_contended_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
