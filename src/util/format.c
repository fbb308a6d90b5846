/* format.c - human-readable renderings shared by the library and the CLI. */
#include "util/format.h"

#include <stdio.h>

#include "ferry.h"

void ferry_shape_str(char *buf, size_t len, int ndim, const int64_t *dims)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++) {
        if (dims[i] == FERRY_DIM_BATCH)
            o += (size_t)snprintf(buf + o, len - o, "%sN", i ? "," : "");
        else if (dims[i] < 0) /* -k: k times the batch (graph.h) */
            o += (size_t)snprintf(buf + o, len - o, "%s%lldN", i ? "," : "", (long long)-dims[i]);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (o < len)
        snprintf(buf + o, len - o, "]");
}
