/* test_pool.c - ferry_pool: exhaustion, timeouts, bad releases, and 16
 * threads hammering acquire/release without losing a tensor. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry.h"

static const int64_t shape[2] = {32, 256};

static void test_acquire_release(void **state)
{
    (void)state;
    ferry_pool *p;
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "cpu", 2, &p), FERRY_OK);
    ferry_tensor a, b, c;
    assert_int_equal(ferry_pool_acquire(p, 0, &a), FERRY_OK);
    assert_int_equal(ferry_pool_try_acquire(p, &b), FERRY_OK);
    assert_ptr_not_equal(a.data, b.data);
    assert_int_equal(a.dtype, FERRY_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[1], 256);
    memset(a.data, 1, 32 * 256 * 4); /* the whole tensor is writable */
    /* exhausted: try fails at once, a timed acquire times out */
    assert_int_equal(ferry_pool_try_acquire(p, &c), FERRY_EBUSY);
    assert_non_null(strstr(ferry_last_error(), "exhausted"));
    assert_int_equal(ferry_pool_acquire(p, 20000, &c), FERRY_ETIMEDOUT);
    assert_non_null(strstr(ferry_last_error(), "all 2 tensors in use"));
    ferry_pool_stats st;
    ferry_pool_get_stats(p, &st);
    assert_int_equal(st.acquisitions, 2);
    assert_int_equal(st.high_water, 2);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.timeouts, 2);
    /* destroy with tensors out is refused */
    assert_int_equal(ferry_pool_destroy(p), FERRY_EBUSY);
    assert_int_equal(ferry_pool_release(p, &a), FERRY_OK);
    /* double release and foreign pointers are rejected */
    assert_int_equal(ferry_pool_release(p, &a), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "double release"));
    ferry_tensor foreign = a;
    float x;
    foreign.data = &x;
    assert_int_equal(ferry_pool_release(p, &foreign), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "not allocated by this pool"));
    assert_int_equal(ferry_pool_release(p, &b), FERRY_OK);
    assert_int_equal(ferry_pool_destroy(p), FERRY_OK);
}

static void test_bad_args(void **state)
{
    (void)state;
    ferry_pool *p;
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "cpu", 0, &p), FERRY_EINVAL);
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "tpu", 1, &p), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "tpu"));
    assert_int_equal(ferry_pool_create(shape, 2, (ferry_dtype)99, "cpu", 1, &p), FERRY_EDTYPE);
    /* "pinned" works without a GPU (plain host memory) */
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F16, "pinned", 1, &p), FERRY_OK);
    assert_int_equal(ferry_pool_destroy(p), FERRY_OK);
}

/* A waiter is woken by a release from another thread. */
static void *releaser(void *arg)
{
    void **a = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ferry_pool_release(a[0], a[1]);
    return NULL;
}

static void test_blocking_wakeup(void **state)
{
    (void)state;
    ferry_pool *p;
    ferry_tensor a, b;
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "cpu", 1, &p), FERRY_OK);
    assert_int_equal(ferry_pool_acquire(p, -1, &a), FERRY_OK);
    void *args[2] = {p, &a};
    pthread_t t;
    pthread_create(&t, NULL, releaser, args);
    assert_int_equal(ferry_pool_acquire(p, 5 * 1000 * 1000, &b), FERRY_OK);
    assert_ptr_equal(a.data, b.data);
    pthread_join(t, NULL);
    assert_int_equal(ferry_pool_release(p, &b), FERRY_OK);
    assert_int_equal(ferry_pool_destroy(p), FERRY_OK);
}

#define HAMMER_THREADS 16
#define HAMMER_ITERS 5000

typedef struct hammer {
    ferry_pool *p;
    int id;
    int errors;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < HAMMER_ITERS; i++) {
        ferry_tensor t;
        ferry_status st = (i & 1) ? ferry_pool_try_acquire(h->p, &t)
                                  : ferry_pool_acquire(h->p, -1, &t);
        if (st == FERRY_EBUSY)
            continue;
        if (st != FERRY_OK) {
            h->errors++;
            continue;
        }
        /* we own it exclusively: stamp it, check nobody else wrote it */
        int *d = t.data;
        d[0] = h->id;
        d[1] = i;
        if (d[0] != h->id || d[1] != i)
            h->errors++;
        if (ferry_pool_release(h->p, &t) != FERRY_OK)
            h->errors++;
    }
    return NULL;
}

static void test_hammer(void **state)
{
    (void)state;
    ferry_pool *p;
    assert_int_equal(ferry_pool_create(shape, 2, FERRY_F32, "cpu", 4, &p), FERRY_OK);
    pthread_t t[HAMMER_THREADS];
    hammer h[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] = (hammer){.p = p, .id = i};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(h[i].errors, 0);
    }
    ferry_pool_stats st;
    ferry_pool_get_stats(p, &st);
    assert_int_equal(st.in_use, 0);
    assert_true(st.high_water <= 4 && st.high_water >= 1);
    /* every tensor is back: all 4 can be taken at once again */
    ferry_tensor all[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_try_acquire(p, &all[i]), FERRY_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_release(p, &all[i]), FERRY_OK);
    assert_int_equal(ferry_pool_destroy(p), FERRY_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_release),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_blocking_wakeup),
        cmocka_unit_test(test_hammer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
