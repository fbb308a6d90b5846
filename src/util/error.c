/* error.c - status names and the thread-local last-error message. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *ferry_last_error(void)
{
    return last_error;
}

void ferry_clear_error(void)
{
    last_error[0] = '\0';
}

ferry_status ferry_fail(ferry_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

ferry_status ferry_fail_prefix(ferry_status st, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t lp = strlen(prefix);
    if (lp > sizeof last_error - 3)
        lp = sizeof last_error - 3;
    memcpy(last_error, prefix, lp);
    memcpy(last_error + lp, ": ", 2);
    size_t room = sizeof last_error - lp - 3, lo = strlen(old);
    if (lo > room)
        lo = room;
    memcpy(last_error + lp + 2, old, lo);
    last_error[lp + 2 + lo] = '\0';
    return st;
}

/* Length of a " at PATH.c:LINE" (or .cu/.h) at p, or 0. */
static size_t source_ref_len(const char *p)
{
    if (strncmp(p, " at ", 4))
        return 0;
    const char *q = p + 4, *colon = NULL;
    for (; *q && !strchr(" ),;", *q); q++)
        if (*q == ':')
            colon = q;
    if (!colon || colon[1] < '0' || colon[1] > '9' || !memchr(p + 4, '/', (size_t)(colon - p - 4)))
        return 0;
    static const char *const ext[] = {".c", ".cu", ".h"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t l = strlen(ext[i]);
        if ((size_t)(colon - (p + 4)) > l && !strncmp(colon - l, ext[i], l)) {
            const char *e = colon + 1;
            while (*e >= '0' && *e <= '9')
                e++;
            return e == q ? (size_t)(q - p) : 0;
        }
    }
    return 0;
}

void ferry_error_for_users(const char *msg, char *out, size_t n)
{
    size_t o = 0;
    if (!n)
        return;
    for (const char *p = msg; *p && o + 1 < n;) {
        size_t skip = source_ref_len(p);
        if (skip)
            p += skip;
        else
            out[o++] = *p++;
    }
    out[o] = '\0';
}

const char *ferry_status_str(ferry_status st)
{
    switch (st) {
    case FERRY_OK: return "FERRY_OK";
    case FERRY_EINVAL: return "FERRY_EINVAL";
    case FERRY_ENOMEM: return "FERRY_ENOMEM";
    case FERRY_EIO: return "FERRY_EIO";
    case FERRY_EPARSE: return "FERRY_EPARSE";
    case FERRY_EUNSUPPORTED: return "FERRY_EUNSUPPORTED";
    case FERRY_ESHAPE: return "FERRY_ESHAPE";
    case FERRY_EDTYPE: return "FERRY_EDTYPE";
    case FERRY_ETIMEDOUT: return "FERRY_ETIMEDOUT";
    case FERRY_EBUSY: return "FERRY_EBUSY";
    case FERRY_ESHUTDOWN: return "FERRY_ESHUTDOWN";
    case FERRY_EDEVICE: return "FERRY_EDEVICE";
    case FERRY_ENOTFOUND: return "FERRY_ENOTFOUND";
    case FERRY_EINTERNAL: return "FERRY_EINTERNAL";
    }
    return "FERRY_E?";
}

const char *ferry_dtype_name(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F32: return "f32";
    case FERRY_U8: return "u8";
    case FERRY_I8: return "i8";
    case FERRY_I32: return "i32";
    case FERRY_I64: return "i64";
    case FERRY_BOOL: return "bool";
    case FERRY_F16: return "f16";
    case FERRY_F64: return "f64";
    case FERRY_BF16: return "bf16";
    default: return "undefined";
    }
}

size_t ferry_dtype_size(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_U8:
    case FERRY_I8:
    case FERRY_BOOL: return 1;
    case FERRY_F16:
    case FERRY_BF16: return 2;
    case FERRY_F32:
    case FERRY_I32: return 4;
    case FERRY_F64:
    case FERRY_I64: return 8;
    default: return 0;
    }
}

int64_t ferry_tensor_numel(const ferry_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}
