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
/* msg for someone running Ferry rather than working on it: each " at
 * FILE:LINE" that names a source file (CUDA errors carry one for
 * developers) is left out. Writes at most n bytes into out, always
 * terminated; out may not be msg. */
void ferry_error_for_users(const char *msg, char *out, size_t n);

#endif
