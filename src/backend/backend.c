/*
 * backend.c - the one place backends are registered. A backend that was not
 * built (no CUDA toolkit at build time) is absent from the list, not stubbed.
 */
#include "backend/backend.h"

#include <stdio.h>
#include <string.h>

static const ferry_backend_ops *const backends[] = {
    &ferry_backend_cpu,
#ifdef FERRY_HAVE_CUDA
    &ferry_backend_cuda,
#endif
    NULL,
};

const ferry_backend_ops *backend_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; backends[i]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

const ferry_backend_ops *const *backend_list(void)
{
    return backends;
}

/* Appends to buf at *used, never past len, always NUL-terminated. */
static void append(char *buf, size_t len, size_t *used, const char *s)
{
    if (*used + 1 >= len)
        return;
    int w = snprintf(buf + *used, len - *used, "%s", s);
    if (w < 0)
        return;
    *used += (size_t)w < len - *used ? (size_t)w : len - *used - 1;
}

void ferry_backends_describe(char *buf, size_t len)
{
    if (!buf || !len)
        return;
    buf[0] = '\0';
    size_t used = 0;
    char line[1024], desc[2048];
    for (int i = 0; backends[i]; i++) {
        int n = 0;
        desc[0] = '\0';
        ferry_status st =
            backends[i]->probe ? backends[i]->probe(&n, desc, sizeof desc) : FERRY_EDEVICE;
        if (st != FERRY_OK) {
            snprintf(line, sizeof line, "%s: built; no device usable (%s)\n", backends[i]->name,
                     ferry_status_str(st));
            append(buf, len, &used, line);
            continue;
        }
        snprintf(line, sizeof line, "%s: built; %d device%s\n", backends[i]->name, n,
                 n == 1 ? "" : "s");
        append(buf, len, &used, line);
        /* One indented line per device. */
        for (char *p = desc; *p;) {
            size_t l = strcspn(p, "\n");
            snprintf(line, sizeof line, "  %.*s\n", (int)l, p);
            append(buf, len, &used, line);
            p += l;
            if (*p == '\n')
                p++;
        }
    }
#ifndef FERRY_HAVE_CUDA
    append(buf, len, &used, "cuda: not built (no CUDA toolkit found at build time)\n");
#endif
}
