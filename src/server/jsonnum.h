/*
 * jsonnum.h - JSON numbers in and out, for the server's hot paths: the
 * "data" arrays of infer requests and responses.
 *
 * In: the strict RFC 8259 grammar, read to the correctly rounded double
 * (what strtod gives) without strtod for the numbers clients send: Clinger's
 * exact fast path, then Eisel-Lemire's 128-bit product, then strtod_l in the
 * "C" locale for what neither settles. Integer literals are also kept
 * exactly as int64, so that INT64 data needs no trip through double.
 *
 * Out: the shortest decimal that reads back to the same float (Ryu).
 */
#ifndef FERRY_SERVER_JSONNUM_H
#define FERRY_SERVER_JSONNUM_H

#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct jsonnum {
    double d;     /* the value, correctly rounded (+-inf past DBL_MAX) */
    int64_t i;    /* the value, when is_int */
    bool is_int;  /* an integer literal (no fraction or exponent) within int64 */
    bool integer; /* an integer literal, whether or not it fits int64 */
} jsonnum;

/*
 * Reads the JSON number at *pp (before end). On success advances *pp past
 * it and returns true; on a malformed number ("-", "01", "1.", "1e", "+1",
 * ".5") leaves *pp at the offending byte and returns false. The byte after
 * the number is not examined: "1x" reads as 1 with *pp at 'x'.
 */
bool jsonnum_parse(const char **pp, const char *end, jsonnum *out);

/*
 * The float nearest the decimal of the n bytes at s, given d, the double
 * that jsonnum_parse read from them: (float)d, except where d lies exactly
 * halfway between two floats and the decimal may not (rounding twice, to
 * double and then to float, can then pick the wrong neighbour:
 * "1.0000001788139343261718749" is below such a midpoint), where it asks
 * strtof. Also for d outside the normal floats.
 */
float jsonnum_strtof(const char *s, size_t n); /* strtof in the "C" locale */

/* The float nearest w * 10^q (w > 2^53: at least 16 digits, at most 19),
 * the n bytes at s being its text (without a sign). */
float jsonnum_digits_to_f32(uint64_t w, int q, const char *s, size_t n);

/* Is d exactly halfway between two adjacent normal floats? */
static inline bool jsonnum_f32_midpoint(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return (b & 0x1fffffffu) == 0x10000000u;
}

static inline float jsonnum_to_f32(double d, const char *s, size_t n)
{
    double a = d < 0 ? -d : d;
    if ((!jsonnum_f32_midpoint(d) && a >= FLT_MIN && a <= FLT_MAX) || a == 0.0 || a > DBL_MAX)
        return (float)d;
    return jsonnum_strtof(s, n);
}

/*
 * The fast path for float data: a plain decimal ("-0.6300", "12", "0.1234567")
 * of at most 19 digits and no exponent, at *pp, read to the nearest float.
 * Returns false, leaving *pp, for anything else (or a malformed number): the
 * caller then takes jsonnum_parse and jsonnum_to_f32, which give the same
 * float for what this accepts.
 */
static inline bool jsonnum_parse_f32_simple(const char **pp, const char *end, float *out)
{
    static const float p10f[11] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                   1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    static const double p10d[20] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
    const char *p = *pp;
    bool neg = p < end && *p == '-';
    p += neg;
    const char *s = p;
    uint64_t w = 0;
    while (p < end && (unsigned char)(*p - '0') < 10)
        w = w * 10 + (uint64_t)(*p++ - '0');
    size_t ni = (size_t)(p - s);
    if (ni == 0 || (ni > 1 && *s == '0'))
        return false;
    size_t k = 0;
    if (p < end && *p == '.') {
        const char *f0 = ++p;
        while (p < end && (unsigned char)(*p - '0') < 10)
            w = w * 10 + (uint64_t)(*p++ - '0');
        k = (size_t)(p - f0);
        if (k == 0)
            return false;
    }
    if (ni + k > 19 || (p < end && (*p == 'e' || *p == 'E')))
        return false;
    float v;
    if (w < (1u << 24) && k <= 10) {
        v = (float)w / p10f[k]; /* both exact: one correctly rounded division */
    } else if (w <= (uint64_t)1 << 53) {
        double d = (double)w / p10d[k];             /* Clinger: correctly rounded double */
        if (jsonnum_f32_midpoint(d) || d < FLT_MIN) /* a midpoint, or 0 */
            return false;
        v = (float)d;
    } else { /* 16-19 digits, as Python's repr of a float32 sends */
        v = jsonnum_digits_to_f32(w, -(int)k, s, (size_t)(p - s));
    }
    *out = neg ? -v : v;
    *pp = p;
    return true;
}

/*
 * The shortest decimal digits of a finite nonzero float's magnitude that read
 * back to it (ties to the nearest of the candidates): f == digits * 10^e10,
 * digits < 10^9. Returns the number of digits.
 */
int jsonnum_f32_shortest(float f, uint32_t *digits, int *e10);

/*
 * Writes f as a JSON number into p (which needs 16 bytes of room, plus 16
 * for the fixed-size copies inside: 32 in all) and returns the length: "0"
 * for +-0, "null" for NaN and +-Inf (JSON has no spelling for them), plain
 * notation for exponents -5..8 ("0.00125", "1234.5"), else "1.5e-7".
 */
size_t jsonnum_write_f32(char *p, float f);

#endif
