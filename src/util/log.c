/* log.c - one line of a log on stderr, with its UTC time and level letter. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void ferry_log(ferry_log_level threshold, ferry_log_level lvl, const char *fmt, ...)
{
    if (lvl == FERRY_LOG_OFF || lvl > threshold)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %c ", ts.tv_nsec / 1000000,
                          "-EWIV"[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = w < 0 ? n : n + (size_t)w < sizeof line - 1 ? n + (size_t)w : sizeof line - 2;
    line[n++] = '\n';
    /* one write(2): stdio's buffer could split a long line between threads */
    if (write(2, line, n) < 0) {
        /* nowhere left to say so */
    }
}
