/* log.h - one line of a log on stderr: "2026-12-08T10:11:12.345Z W text". */
#ifndef FERRY_UTIL_LOG_H
#define FERRY_UTIL_LOG_H

#include "ferry.h"
#include "util/error.h"

/* Writes the line when lvl is within threshold (FERRY_LOG_OFF writes
 * nothing), as one write, so that lines from several threads never mix. */
void ferry_log(ferry_log_level threshold, ferry_log_level lvl, const char *fmt, ...)
    FERRY_PRINTF(3, 4);

#endif
