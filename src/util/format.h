/* format.h - human-readable renderings shared by the library and the CLI. */
#ifndef FERRY_UTIL_FORMAT_H
#define FERRY_UTIL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "[N,256]": dims as a list, FERRY_DIM_BATCH shown as N and -k (k times the
 * batch) as kN. Truncates to len. */
void ferry_shape_str(char *buf, size_t len, int ndim, const int64_t *dims);

#endif
