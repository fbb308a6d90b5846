/*
 * futex.h - the two Linux futex calls the batcher sleeps and wakes with.
 * A waiter re-checks its condition after every return: wakes may be
 * spurious, early (EAGAIN) or late (timeout).
 */
#ifndef FERRY_BATCHER_FUTEX_H
#define FERRY_BATCHER_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *addr == expected, at most timeout_us (< 0: no limit). */
static inline void futex_wait_us(atomic_uint *addr, unsigned expected, int64_t timeout_us)
{
    struct timespec ts, *tp = NULL;
    if (timeout_us >= 0) {
        ts.tv_sec = (time_t)(timeout_us / 1000000);
        ts.tv_nsec = (long)(timeout_us % 1000000) * 1000;
        tp = &ts;
    }
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0);
}

/* Wakes up to n waiters of addr. Only the address reaches the kernel, so
 * this is safe even when the word's memory may just have been freed (a
 * private futex key is the address; the page is not touched). */
static inline void futex_wake_n(atomic_uint *addr, int n)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#endif
