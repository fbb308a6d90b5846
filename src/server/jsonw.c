/* jsonw.c - growable buffer and JSON writers for server responses. */
#include "server/jsonw.h"

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

void jsonw_str_raw(jsonw *w, const char *s) { jsonw_mem(w, s, strlen(s)); }

void jsonw_char(jsonw *w, char c)
{
    if (!jsonw_reserve(w, 1))
        return;
    w->buf[w->len++] = c;
}

void jsonw_str(jsonw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    jsonw_char(w, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jsonw_mem(w, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jsonw_mem(w, e, 6);
        } else {
            jsonw_char(w, (char)c);
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

/* 10^k for k in 0..22: every one is exact in a double. */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* d * 10^k with at most three roundings (|k| <= 60 here). */
static double scale10(double d, int k)
{
    if (k >= 0) {
        for (; k > 22; k -= 22)
            d *= 1e22;
        return d * pow10_exact[k];
    }
    for (k = -k; k > 22; k -= 22)
        d /= 1e22;
    return d / pow10_exact[k];
}

/*
 * Nine significant digits identify a float uniquely; the scaled value is
 * computed in double, whose error (about 1e-16 relative) is far below the
 * 5e-9 of nine-digit rounding, so the digits are the correctly rounded ones
 * except at exact decimal ties, where either neighbour still reads back to
 * the same float.
 */
void jsonw_f32(jsonw *w, float f)
{
    if (!jsonw_reserve(w, 24))
        return;
    char *p = w->buf + w->len, *start = p;
    if (isnan(f) || isinf(f)) {
        memcpy(p, "null", 4);
        w->len += 4;
        return;
    }
    double d = (double)f;
    if (d == 0.0) {
        *p = '0';
        w->len += 1;
        return;
    }
    if (d < 0) {
        *p++ = '-';
        d = -d;
    }
    int e2;
    frexp(d, &e2); /* d in [2^(e2-1), 2^e2) */
    int e10 = (int)floor((e2 - 1) * 0.30102999566398120);
    uint64_t m = (uint64_t)(scale10(d, 8 - e10) + 0.5);
    if (m >= 1000000000u) { /* estimate one low, or rounded up to 10^9 */
        e10++;
        m = (uint64_t)(scale10(d, 8 - e10) + 0.5);
        if (m >= 1000000000u)
            m = 100000000u;
    }
    int nd = 9;
    while (m % 10 == 0) {
        m /= 10;
        nd--;
    }
    char dig[9];
    for (int i = nd - 1; i >= 0; i--) {
        dig[i] = (char)('0' + m % 10);
        m /= 10;
    }
    if (e10 >= 0 && e10 < 9) {
        int ip = e10 + 1;
        for (int i = 0; i < ip; i++)
            *p++ = i < nd ? dig[i] : '0';
        if (nd > ip) {
            *p++ = '.';
            for (int i = ip; i < nd; i++)
                *p++ = dig[i];
        }
    } else if (e10 < 0 && e10 >= -5) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -e10 - 1; i++)
            *p++ = '0';
        for (int i = 0; i < nd; i++)
            *p++ = dig[i];
    } else {
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            for (int i = 1; i < nd; i++)
                *p++ = dig[i];
        }
        *p++ = 'e';
        int ex = e10;
        if (ex < 0) {
            *p++ = '-';
            ex = -ex;
        }
        if (ex >= 10)
            *p++ = (char)('0' + ex / 10);
        *p++ = (char)('0' + ex % 10);
    }
    w->len += (size_t)(p - start);
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
