/* timeutil.h - the monotonic clock, for deadlines and timings. */
#ifndef FERRY_UTIL_TIMEUTIL_H
#define FERRY_UTIL_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

/* Monotonic clock in microseconds. */
int64_t ferry_now_us(void);
/* The same in nanoseconds, for durations too short to count in microseconds. */
int64_t ferry_now_ns(void);
/* The CLOCK_MONOTONIC time us microseconds from now, for pthread_cond_timedwait
 * on a condition variable set to that clock. */
void ferry_deadline_after(int64_t us, struct timespec *ts);

#endif
