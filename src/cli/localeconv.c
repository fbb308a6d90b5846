/*
 * localeconv.c - a contention-free localeconv() for the ferry executable.
 *
 * cJSON calls localeconv() for every number it parses, to learn the decimal
 * point. glibc's localeconv() fills one process-wide static struct on every
 * call, so HTTP threads parsing JSON at once keep stealing its cache lines
 * from each other: on a 16-core machine `ferry serve` JSON throughput stayed
 * flat at ~25k req/s from 16 to 256 connections (BENCHMARKS.md) while the
 * binary protocol scaled to 277k.
 *
 * The ferry executable never calls setlocale(), so it runs in the "C" locale
 * for its whole life and the answer never changes. This definition, in the
 * executable only (never in libferry), takes precedence over glibc's for
 * every caller in the process: it asks glibc once and returns a thread-local
 * copy, which threads read without writing shared memory.
 */
#include <dlfcn.h>
#include <locale.h>
#include <pthread.h>

static struct lconv c_lconv;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_lconv(void)
{
    struct lconv *(*real)(void) = (struct lconv * (*)(void)) dlsym(RTLD_NEXT, "localeconv");
    if (real)
        c_lconv = *real();
    else
        c_lconv.decimal_point = (char *)".";
}

struct lconv *localeconv(void)
{
    static _Thread_local struct lconv mine;
    static _Thread_local int ready;
    if (!ready) {
        pthread_once(&once, init_lconv);
        mine = c_lconv;
        ready = 1;
    }
    return &mine;
}
