/* jsonw.c - growable buffer and JSON writers for server responses. */
#include "server/jsonw.h"

#include "server/jsonnum.h"
#include "server/utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool jsonw_reserve(jsonw *w, size_t n)
{
    if (w->oom)
        return false;
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    char *nb = realloc(w->buf, cap);
    if (!nb) {
        w->oom = true;
        return false;
    }
    w->buf = nb;
    w->cap = cap;
    return true;
}

void jsonw_mem(jsonw *w, const void *p, size_t n)
{
    if (!jsonw_reserve(w, n))
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void jsonw_str_raw(jsonw *w, const char *s)
{
    jsonw_mem(w, s, strlen(s));
}

void jsonw_char(jsonw *w, char c)
{
    if (!jsonw_reserve(w, 1))
        return;
    w->buf[w->len++] = c;
}

void jsonw_str(jsonw *w, const char *s)
{
    jsonw_strn(w, s, strlen(s));
}

void jsonw_strn(jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jsonw_char(w, '"');
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jsonw_mem(w, e, 2);
            p++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jsonw_mem(w, e, 6);
            p++;
        } else if (c < 0x80) {
            jsonw_char(w, (char)c);
            p++;
        } else {
            /* a string that is not UTF-8 (a client's bytes echoed in an
             * error) must still make valid JSON: U+FFFD per bad byte */
            size_t k = utf8_len(p, (size_t)(end - p));
            if (k) {
                jsonw_mem(w, p, k);
                p += k;
            } else {
                jsonw_mem(w, "\\ufffd", 6);
                p++;
            }
        }
    }
    jsonw_char(w, '"');
}

void jsonw_u64(jsonw *w, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (!jsonw_reserve(w, (size_t)n))
        return;
    while (n)
        w->buf[w->len++] = tmp[--n];
}

void jsonw_i64(jsonw *w, int64_t v)
{
    if (v < 0) {
        jsonw_char(w, '-');
        jsonw_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        jsonw_u64(w, (uint64_t)v);
    }
}

/* Shortest round-trip digits (jsonnum.c); the fixed-size copies there want
 * 32 bytes of room. */
void jsonw_f32(jsonw *w, float f)
{
    if (!jsonw_reserve(w, 32))
        return;
    w->len += jsonnum_write_f32(w->buf + w->len, f);
}

void jsonw_f64(jsonw *w, double v)
{
    if (isnan(v) || isinf(v)) {
        jsonw_str_raw(w, "null");
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    jsonw_mem(w, tmp, (size_t)n);
}

void jsonw_free(jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
    w->oom = false;
}
