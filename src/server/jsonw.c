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

/* 10^k for k in -31..55, each the double nearest to it. */
#define POW10_MIN (-31)
static const double pow10_tbl[] = {
    1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,  1e-6,
    1e-5,  1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,   1e5,   1e6,   1e7,
    1e8,   1e9,   1e10,  1e11,  1e12,  1e13,  1e14,  1e15,  1e16,  1e17,  1e18,  1e19,  1e20,
    1e21,  1e22,  1e23,  1e24,  1e25,  1e26,  1e27,  1e28,  1e29,  1e30,  1e31,  1e32,  1e33,
    1e34,  1e35,  1e36,  1e37,  1e38,  1e39,  1e40,  1e41,  1e42,  1e43,  1e44,  1e45,  1e46,
    1e47,  1e48,  1e49,  1e50,  1e51,  1e52,  1e53,  1e54,  1e55};

/* "00".."99": two digits per division. */
static const char digits2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

/*
 * Nine significant digits identify a float uniquely. The scaled value
 * d * 10^k is computed in double with two roundings (the table entry and the
 * product), about 2e-16 relative, far below the 5e-9 of nine-digit
 * rounding: the digits are the correctly rounded ones except at exact
 * decimal ties, where either neighbour still reads back to the same float.
 */
void jsonw_f32(jsonw *w, float f)
{
    if (!jsonw_reserve(w, 32)) /* room for the fixed-size copies */
        return;
    char *p = w->buf + w->len, *start = p;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t be = (bits >> 23) & 0xff;
    if (be == 0xff) { /* NaN, Inf: JSON has no spelling for them */
        memcpy(p, "null", 4);
        w->len += 4;
        return;
    }
    if ((bits & 0x7fffffffu) == 0) {
        *p = '0';
        w->len += 1;
        return;
    }
    if (bits >> 31)
        *p++ = '-';
    double d = fabs((double)f);
    int e2; /* d in [2^(e2-1), 2^e2) */
    if (be)
        e2 = (int)be - 126;
    else
        frexp(d, &e2);
    /* floor((e2-1) * log10(2)) to within one; corrected below */
    int e10 = ((e2 - 1) * 78913) >> 18;
    uint64_t m = (uint64_t)(d * pow10_tbl[8 - e10 - POW10_MIN] + 0.5);
    while (m >= 1000000000u) {
        e10++;
        m = (uint64_t)(d * pow10_tbl[8 - e10 - POW10_MIN] + 0.5);
    }
    while (m < 100000000u) {
        e10--;
        m = (uint64_t)(d * pow10_tbl[8 - e10 - POW10_MIN] + 0.5);
    }
    /* nine digits, most significant first, then '0' padding: the copies
     * below move a fixed 16 bytes and advance by the real length, which
     * compiles to a few moves instead of a memcpy call per number */
    char dig[32];
    memset(dig, '0', sizeof dig);
    uint32_t v = (uint32_t)m;
    for (int i = 7; i >= 1; i -= 2) {
        uint32_t q = v / 100, r = v - q * 100;
        dig[i] = digits2[2 * r];
        dig[i + 1] = digits2[2 * r + 1];
        v = q;
    }
    dig[0] = (char)('0' + v);
    int nd = 9;
    while (dig[nd - 1] == '0')
        nd--;
    if (e10 >= 0 && e10 < 9) { /* ddd[.ddd] */
        int ip = e10 + 1;
        memcpy(p, dig, 16);
        p += ip;
        if (nd > ip) {
            *p++ = '.';
            memcpy(p, dig + ip, 16);
            p += nd - ip;
        }
    } else if (e10 < 0 && e10 >= -5) { /* 0.000ddd */
        memcpy(p, "0.00000", 8);
        p += 2 + (-e10 - 1);
        memcpy(p, dig, 16);
        p += nd;
    } else { /* d[.ddd]e[-]x */
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, dig + 1, 16);
            p += nd - 1;
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
