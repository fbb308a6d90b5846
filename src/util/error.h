/*
 * error.h - the thread-local last-error message behind ferry_last_error().
 */
#ifndef FERRY_UTIL_ERROR_H
#define FERRY_UTIL_ERROR_H

#include "ferry.h"

#if defined(__GNUC__)
#define FERRY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FERRY_PRINTF(a, b)
#endif

/* Sets this thread's message and returns st, so that callers can write
 * `return ferry_fail(FERRY_ESHAPE, "input '%s' ...", name);`. */
ferry_status ferry_fail(ferry_status st, const char *fmt, ...) FERRY_PRINTF(2, 3);
/* Prefixes the current message with context ("loading 'm.onnx': ..."). */
ferry_status ferry_fail_prefix(ferry_status st, const char *fmt, ...) FERRY_PRINTF(2, 3);
void ferry_clear_error(void);

#endif
