/*
 * kserve_parse.c - a one-pass reader of the KServe v2 infer request JSON
 * (see kserve_parse.h). The hot part is an input's "data" array: numbers
 * go from the text to the model's buffer with no node or allocation per
 * element. Syntax follows RFC 8259 strictly (numbers, whitespace, strings
 * of UTF-8 without raw control characters), nesting at most 1000 deep as
 * cJSON allowed.
 */
#include "server/kserve_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/jsonnum.h"
#include "server/utf8.h"
#include "util/half.h"

#define MAX_DEPTH 1000

/* A cursor over the JSON text; the first syntax error stops it. */
typedef struct cur {
    const char *p, *end;
    kreq *q;
    bool bad;
} cur;

static bool syntax(cur *c, const char *at, const char *what)
{
    if (!c->bad) {
        c->bad = true;
        c->q->err_at = (size_t)(at - c->q->base);
        c->q->err_what = what;
    }
    c->p = c->end; /* nothing reads on after an error */
    return false;
}

/* RFC 8259 whitespace: cJSON took any byte up to 0x20, which let a
 * request through that a stricter parser in front of us would refuse. */
static inline bool is_ws(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

static inline void ws(cur *c)
{
    while (c->p < c->end && is_ws(*c->p))
        c->p++;
}

static inline bool peek_is(cur *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool literal(cur *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n))
        return syntax(c, c->p, "a JSON value");
    c->p += n;
    return true;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/*
 * The string at c->p (its opening quote). With out, its decoded bytes are
 * stored there (in the body when it has no escapes, else in the scratch
 * buffer); without, it is only checked. Escapes as cJSON reads them,
 * surrogate pairs included; the text must be UTF-8 without raw control
 * characters (RFC 8259), so that what we read is what any strict parser
 * before us read.
 */
static bool string(cur *c, const char **out, size_t *out_n)
{
    const char *s = ++c->p, *p = s;
    bool esc = false;
    while (p < c->end && *p != '"') {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\\') {
            esc = true;
            p += 2;
        } else if (ch < 0x20) {
            return syntax(c, p, "no raw control character in a string (escape it as \\u00XX)");
        } else if (ch < 0x80) {
            p++;
        } else {
            size_t n = utf8_len((const unsigned char *)p, (size_t)(c->end - p));
            if (!n)
                return syntax(c, p, "UTF-8 text in a string");
            p += n;
        }
    }
    if (p >= c->end)
        return syntax(c, c->end, "the string's closing '\"'");
    c->p = p + 1;
    if (!esc) {
        if (out) {
            *out = s;
            *out_n = (size_t)(p - s);
        }
        return true;
    }
    kreq *q = c->q;
    char *d = NULL;
    if (out) {
        if (!q->scratch) {
            /* decoded strings never outgrow their text: one buffer holds all */
            q->scratch = malloc((size_t)(q->end - q->base) + 1);
            if (!q->scratch) {
                q->oom = true;
                return syntax(c, s, "memory");
            }
        }
        d = q->scratch + q->scratch_used;
        *out = d;
    }
    char *d0 = d;
    for (const char *r = s; r < p; r++) {
        if (*r != '\\') {
            if (d)
                *d++ = *r;
            continue;
        }
        r++;
        char e = *r, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            if (p - r < 5)
                return syntax(c, r - 1, "a \\u escape of four hex digits");
            int u = hex4(r + 1);
            if (u < 0)
                return syntax(c, r - 1, "a \\u escape of four hex digits");
            r += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return syntax(c, r - 5, "no lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo = p - r >= 7 && r[1] == '\\' && r[2] == 'u' ? hex4(r + 3) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return syntax(c, r - 5, "a low surrogate after a high one");
                r += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
            }
            if (d) {
                if (cp < 0x80) {
                    *d++ = (char)cp;
                } else if (cp < 0x800) {
                    *d++ = (char)(0xc0 | cp >> 6);
                    *d++ = (char)(0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                    *d++ = (char)(0xe0 | cp >> 12);
                    *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                    *d++ = (char)(0x80 | (cp & 0x3f));
                } else {
                    *d++ = (char)(0xf0 | cp >> 18);
                    *d++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                    *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                    *d++ = (char)(0x80 | (cp & 0x3f));
                }
            }
            continue;
        }
        default: return syntax(c, r - 1, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
        }
        if (d)
            *d++ = ch;
    }
    if (d) {
        *out_n = (size_t)(d - d0);
        q->scratch_used += *out_n;
    }
    return true;
}

static bool skip_value(cur *c, int depth);

/*
 * Steps to the next item of an array or object whose closing bracket is
 * `close`: call with c->p on the opening bracket and *first true, then
 * again after each item. true with c->p on the item; false at the end (c->p
 * past the bracket) or on a syntax error (c->bad).
 */
static bool next_item(cur *c, bool *first, char close, const char *sep_or_close)
{
    if (*first) {
        *first = false;
        c->p++;
    } else {
        ws(c);
        if (!peek_is(c, close)) {
            if (!peek_is(c, ','))
                return syntax(c, c->p, sep_or_close);
            c->p++;
            ws(c);
            return true;
        }
    }
    ws(c);
    if (peek_is(c, close)) {
        c->p++;
        return false;
    }
    return true;
}

/*
 * Iterates an object's members, as next_item: true with the key (when key
 * is not NULL) and c->p on its value.
 */
static bool next_key(cur *c, bool *first, const char **key, size_t *key_n)
{
    if (!next_item(c, first, '}', "',' or '}'"))
        return false;
    if (!peek_is(c, '"'))
        return syntax(c, c->p, "a string key");
    if (!string(c, key, key_n))
        return false;
    ws(c);
    if (!peek_is(c, ':'))
        return syntax(c, c->p, "':'");
    c->p++;
    ws(c);
    return true;
}

/* Array elements, likewise: true with c->p on the next element. */
static bool next_elem(cur *c, bool *first)
{
    return next_item(c, first, ']', "',' or ']'");
}

/* Checks the array or object whose opening bracket c->p is on. */
static bool skip_container(cur *c, int depth)
{
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    bool first = true;
    if (*c->p == '{') {
        while (next_key(c, &first, NULL, NULL))
            if (!skip_value(c, depth + 1))
                return false;
    } else {
        while (next_elem(c, &first))
            if (!skip_value(c, depth + 1))
                return false;
    }
    return !c->bad;
}

/* Checks the value at c->p (whitespace already skipped). */
static bool skip_value(cur *c, int depth)
{
    if (c->p >= c->end)
        return syntax(c, c->p, "a JSON value");
    switch (*c->p) {
    case '"': return string(c, NULL, NULL);
    case '{':
    case '[': return skip_container(c, depth);
    case 't': return literal(c, "true", 4);
    case 'f': return literal(c, "false", 5);
    case 'n': return literal(c, "null", 4);
    default: {
        jsonnum v;
        const char *s = c->p;
        if (!jsonnum_parse(&c->p, c->end, &v))
            return syntax(c, c->p, c->p == s ? "a JSON value" : "a valid number");
        return true;
    }
    }
}

/* A value kept as a kreq_val: scalars with their value, containers by kind. */
static bool value(cur *c, kreq_val *v, int depth)
{
    if (c->p >= c->end)
        return syntax(c, c->p, "a JSON value");
    switch (*c->p) {
    case '"': v->kind = KREQ_STRING; return string(c, &v->s, &v->n);
    case '{': v->kind = KREQ_OBJECT; return skip_container(c, depth);
    case '[': v->kind = KREQ_ARRAY; return skip_container(c, depth);
    case 't':
        v->kind = KREQ_BOOL;
        v->b = true;
        return literal(c, "true", 4);
    case 'f':
        v->kind = KREQ_BOOL;
        v->b = false;
        return literal(c, "false", 5);
    case 'n': v->kind = KREQ_NULL; return literal(c, "null", 4);
    default: {
        jsonnum n;
        const char *s = c->p;
        if (!jsonnum_parse(&c->p, c->end, &n))
            return syntax(c, c->p, c->p == s ? "a JSON value" : "a valid number");
        v->kind = KREQ_NUMBER;
        v->num = n.d;
        return true;
    }
    }
}

static inline bool key_is(const char *k, size_t n, const char *want)
{
    size_t wn = strlen(want);
    return n == wn && !memcmp(k, want, n);
}

#define DUPLICATE (-2)

/*
 * Which of the keys an object's reader interprets (keys, at most 32) k is:
 * its index, or -1 for another key (skipped, even when repeated). A key
 * interpreted and seen before in the same object (bits in *seen) gives
 * DUPLICATE, with the reading stopped: RFC 8259 leaves the meaning of
 * repeated names open and parsers differ (first wins, last wins), so a proxy
 * may have checked another value than the one we would use.
 */
static int member(cur *c, const char *k, size_t kn, const char *const *keys, int n_keys,
                  uint32_t *seen)
{
    for (int i = 0; i < n_keys; i++) {
        if (!key_is(k, kn, keys[i]))
            continue;
        if (*seen & (1u << i)) {
            if (!c->bad)
                c->q->dup_key = (kreq_val){.kind = KREQ_STRING, .s = k, .n = kn};
            syntax(c, c->p, "no duplicate key"); /* k may be in scratch */
            return DUPLICATE;
        }
        *seen |= 1u << i;
        return i;
    }
    return -1;
}

/* An object whose interesting members (want) are kept in *v; other kinds
 * than an object are recorded in *kind. */
static bool param_object(cur *c, kreq_kind *kind, int depth, const char *const *want, kreq_val **v,
                         int n_want)
{
    if (!peek_is(c, '{')) {
        kreq_val any = {0};
        bool ok = value(c, &any, depth);
        *kind = any.kind;
        return ok;
    }
    *kind = KREQ_OBJECT;
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    bool first = true;
    const char *k;
    size_t kn;
    uint32_t seen = 0;
    while (next_key(c, &first, &k, &kn)) {
        int i = member(c, k, kn, want, n_want, &seen);
        if (i == DUPLICATE)
            return false;
        if (!(i >= 0 ? value(c, v[i], depth + 1) : skip_value(c, depth + 1)))
            return false;
    }
    return !c->bad;
}

/* ----------------------------------------------------------- elements */

/* The range of an integer datatype; false for the others. */
static bool int_range(ferry_dtype dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case FERRY_I32: *lo = INT32_MIN, *hi = INT32_MAX; return true;
    case FERRY_I64: *lo = INT64_MIN, *hi = INT64_MAX; return true;
    case FERRY_I8: *lo = -128, *hi = 127; return true;
    case FERRY_U8: *lo = 0, *hi = 255; return true;
    case FERRY_BOOL: *lo = 0, *hi = 1; return true;
    default: return false;
    }
}

static bool is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

/* Rounds *v to what a tensor of datatype dt can hold. INVALID for a
 * fraction, NaN or out-of-range value of an integer type; RANGE where a
 * float type would hold infinity: from a JSON number that is one too large
 * for the type (or for a double), never what the client meant. */
static kserve_fit quantize(ferry_dtype dt, double *v)
{
    double x = *v;
    int64_t lo, hi;
    if (int_range(dt, &lo, &hi)) {
        if (dt == FERRY_BOOL)
            return x == 0 || x == 1 ? KSERVE_FIT_OK : KSERVE_FIT_INVALID;
        /* hi + 1 is a power of two, so exact as a double where hi is not */
        bool ok = x == floor(x) && x >= (double)lo && x < (double)(hi / 2 + 1) * 2.0;
        return ok ? KSERVE_FIT_OK : KSERVE_FIT_INVALID;
    }
    switch (dt) {
    case FERRY_F32: x = (double)(float)x; break;
    case FERRY_F16: x = (double)ferry_f16_to_f32(ferry_f32_to_f16((float)x)); break;
    case FERRY_BF16: x = (double)ferry_bf16_to_f32(ferry_f32_to_bf16((float)x)); break;
    case FERRY_F64: break;
    default: return KSERVE_FIT_INVALID;
    }
    if (isinf(x))
        return KSERVE_FIT_RANGE; /* *v stays what the client wrote, for the message */
    *v = x;
    return KSERVE_FIT_OK;
}

/* Stores v, rounded, as element i of a dt tensor at base; no check. */
static void store(ferry_dtype dt, void *base, int64_t i, double v)
{
    switch (dt) {
    case FERRY_F32: ((float *)base)[i] = (float)v; break;
    case FERRY_F64: ((double *)base)[i] = v; break;
    case FERRY_F16: ((uint16_t *)base)[i] = ferry_f32_to_f16((float)v); break;
    case FERRY_BF16: ((uint16_t *)base)[i] = ferry_f32_to_bf16((float)v); break;
    case FERRY_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case FERRY_I64: ((int64_t *)base)[i] = (int64_t)v; break;
    case FERRY_I8: ((int8_t *)base)[i] = (int8_t)v; break;
    case FERRY_U8: ((uint8_t *)base)[i] = (uint8_t)v; break;
    case FERRY_BOOL: ((uint8_t *)base)[i] = v != 0; break;
    default: break;
    }
}

kserve_fit kserve_store(ferry_dtype dt, void *base, int64_t i, double v)
{
    kserve_fit fit = KSERVE_FIT_OK;
    /* binary data may carry NaN and infinities: a float type keeps them */
    bool keep = !isfinite(v) && is_float(dt);
    if (!keep && (fit = quantize(dt, &v)) != KSERVE_FIT_OK)
        return fit;
    store(dt, base, i, v);
    return fit;
}

/* An integer literal for an integer datatype req, without a trip through
 * double (INT64 beyond 2^53 stays exact); *bad is the datatype, req or the
 * model's dst, that cannot hold it. */
static kserve_fit store_int(ferry_dtype req, ferry_dtype dst, void *base, int64_t i, int64_t v,
                            ferry_dtype *bad)
{
    int64_t lo = 0, hi = 0;
    *bad = req;
    if (!int_range(req, &lo, &hi) || v < lo || v > hi)
        return KSERVE_FIT_INVALID;
    *bad = dst;
    if (!int_range(dst, &lo, &hi))
        return kserve_store(dst, base, i, (double)v);
    if (v < lo || v > hi)
        return KSERVE_FIT_INVALID;
    switch (dst) {
    case FERRY_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case FERRY_I64: ((int64_t *)base)[i] = v; break;
    case FERRY_I8: ((int8_t *)base)[i] = (int8_t)v; break;
    case FERRY_U8: ((uint8_t *)base)[i] = (uint8_t)v; break;
    default: ((uint8_t *)base)[i] = v != 0; break; /* BOOL */
    }
    return KSERVE_FIT_OK;
}

/* Reading "data" into a model-dtype buffer. */
typedef struct fill {
    ferry_dtype req, dst;
    bool fast;      /* FP32 into FP32: the common case, no conversion */
    bool int_exact; /* req is an integer type: integer literals stay exact */
    void *out;
    int64_t n, numel;
    const char *name;
    int name_n;
    char *err;
    size_t errlen;
    bool failed; /* a semantic error is in err: only the syntax is checked on */
} fill;

#define FAIL(f, ...)                                                                               \
    do {                                                                                           \
        snprintf((f)->err, (f)->errlen, __VA_ARGS__);                                              \
        (f)->failed = true;                                                                        \
    } while (0)

/* The message for element x (its text s/n, when it was a number) that
 * datatype dt cannot hold. */
static void fail_fit(fill *f, kserve_fit why, ferry_dtype dt, double x, const char *s, size_t n)
{
    char num[48];
    if (isfinite(x) || !s)
        snprintf(num, sizeof num, "%g", x);
    else /* "inf" would not say what the client wrote: 1e400 */
        snprintf(num, sizeof num, "%.*s", (int)(n > 40 ? 40 : n), s);
    FAIL(f, "input '%.*s': element %lld (%s) is %s %s", f->name_n, f->name, (long long)f->n, num,
         why == KSERVE_FIT_RANGE ? "out of range for" : "not a valid", kserve_dtype_name(dt));
}

/* One element, at c->p; a container there is "not a number". */
static bool fill_value(cur *c, fill *f, int depth)
{
    if (f->failed)
        return skip_value(c, depth);
    char ch = c->p < c->end ? *c->p : 0;
    double x;
    const char *s = NULL;
    size_t n = 0;
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        jsonnum v;
        s = c->p;
        if (!jsonnum_parse(&c->p, c->end, &v))
            return syntax(c, c->p, "a valid number");
        n = (size_t)(c->p - s);
        if (f->n >= f->numel) {
            FAIL(f, "input '%.*s': 'data' has more than the %lld elements of its shape", f->name_n,
                 f->name, (long long)f->numel);
            return true;
        }
        if (f->fast) {
            /* what fill_f32_flat left: exponents, long or out-of-range numbers */
            float y = jsonnum_to_f32(v.d, s, n);
            if (isinf(y))
                fail_fit(f, KSERVE_FIT_RANGE, FERRY_F32, v.d, s, n);
            else
                ((float *)f->out)[f->n++] = y;
            return true;
        }
        if (f->int_exact && v.is_int) {
            ferry_dtype bad;
            kserve_fit fit = store_int(f->req, f->dst, f->out, f->n, v.i, &bad);
            if (fit)
                fail_fit(f, fit, bad, v.d, s, n);
            else
                f->n++;
            return true;
        }
        x = v.d;
        if (f->req == FERRY_F32) {
            /* the float nearest the decimal, not the double's nearest float
             * (an overflow stays in x for quantize to report) */
            float y = jsonnum_to_f32(v.d, s, n);
            if (!isinf(y))
                x = y;
        }
    } else if ((ch == 't' || ch == 'f') && f->req == FERRY_BOOL) {
        if (!(ch == 't' ? literal(c, "true", 4) : literal(c, "false", 5)))
            return false;
        x = ch == 't';
        if (f->n >= f->numel) {
            FAIL(f, "input '%.*s': 'data' has more than the %lld elements of its shape", f->name_n,
                 f->name, (long long)f->numel);
            return true;
        }
    } else {
        if (!skip_value(c, depth))
            return false;
        FAIL(f, "input '%.*s': element %lld of 'data' is not a number", f->name_n, f->name,
             (long long)f->n);
        return true;
    }
    /* first what the client's datatype means, then whether the model's holds it */
    kserve_fit fit = quantize(f->req, &x);
    if (fit) {
        fail_fit(f, fit, f->req, x, s, n);
        return true;
    }
    if ((fit = kserve_store(f->dst, f->out, f->n, x)) != KSERVE_FIT_OK) {
        fail_fit(f, fit, f->dst, x, s, n);
        return true;
    }
    f->n++;
    return true;
}

/* Nested "data": the array at depth d must have shape[d] entries. */
static bool fill_nested(cur *c, fill *f, const int64_t *shape, int ndim, int d, int depth)
{
    if (d == ndim)
        return fill_value(c, f, depth);
    if (f->failed)
        return skip_value(c, depth);
    if (!peek_is(c, '[')) {
        if (!skip_value(c, depth))
            return false;
        FAIL(f, "input '%.*s': 'data' nests %d levels, shape has %d", f->name_n, f->name, d, ndim);
        return true;
    }
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    int64_t n = 0;
    bool first = true;
    while (next_elem(c, &first)) {
        bool ok = n < shape[d] && !f->failed ? fill_nested(c, f, shape, ndim, d + 1, depth + 1)
                                             : skip_value(c, depth + 1);
        if (!ok)
            return false;
        n++;
    }
    if (c->bad)
        return false;
    if (n != shape[d] && !f->failed)
        FAIL(f, "input '%.*s': 'data' has %lld entries at depth %d, shape says %lld", f->name_n,
             f->name, (long long)n, d, (long long)shape[d]);
    return true;
}

/*
 * The common case of FP32 data into an FP32 buffer: a flat array of exactly
 * numel numbers, in one tight loop: plain decimals by
 * jsonnum_parse_f32_simple, the rest (exponents, 17 digits) in place by
 * jsonnum_parse. c->p is at the '['. Returns false, having changed nothing
 * but the buffer's contents, on anything else (a non-number, a number past
 * FP32's range, a count that does not match), for the general loop to read
 * from the start and report what is wrong.
 */
static bool fill_f32_flat(cur *c, fill *f)
{
    const char *p = c->p + 1, *end = c->end;
    float *out = (float *)f->out + f->n;
    int64_t n = 0, numel = f->numel - f->n;
    while (p < end && is_ws(*p))
        p++;
    if (p < end && *p == ']')
        return false;
    for (;;) {
        if (n == numel)
            return false;
        if (!jsonnum_parse_f32_simple(&p, end, out + n)) {
            const char *s = p;
            jsonnum v;
            if (!jsonnum_parse(&p, end, &v))
                return false;
            float y = jsonnum_to_f32(v.d, s, (size_t)(p - s));
            if (isinf(y))
                return false;
            out[n] = y;
        }
        n++;
        while (p < end && is_ws(*p))
            p++;
        if (p == end)
            return false;
        if (*p == ']')
            break;
        if (*p != ',')
            return false;
        p++;
        while (p < end && is_ws(*p))
            p++;
    }
    if (n != numel)
        return false;
    c->p = p + 1;
    f->n += n;
    return true;
}

/* The "data" value at c->p; false on a syntax error only (f->failed tells
 * a semantic one). */
static bool fill_data(cur *c, fill *f, const int64_t *shape, int ndim, int depth)
{
    if (!peek_is(c, '[')) {
        if (!skip_value(c, depth))
            return false;
        FAIL(f, "input '%.*s': 'data' must be an array", f->name_n, f->name);
        return true;
    }
    const char *open = c->p++;
    ws(c);
    bool nested = ndim > 1 && peek_is(c, '[');
    c->p = open;
    if (nested)
        return fill_nested(c, f, shape, ndim, 0, depth);
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    if (f->fast && !f->failed && fill_f32_flat(c, f))
        return true;
    bool first = true;
    while (next_elem(c, &first))
        if (!fill_value(c, f, depth + 1))
            return false;
    if (c->bad)
        return false;
    if (!f->failed && f->n != f->numel)
        FAIL(f, "input '%.*s': 'data' has %lld elements, shape needs %lld", f->name_n, f->name,
             (long long)f->n, (long long)f->numel);
    return true;
}

static void fill_init(fill *f, const char *name, size_t name_n, ferry_dtype req, ferry_dtype dst,
                      void *out, int64_t numel, char *err, size_t errlen)
{
    *f = (fill){req,
                dst,
                req == FERRY_F32 && dst == FERRY_F32,
                req == FERRY_I32 || req == FERRY_I64 || req == FERRY_I8 || req == FERRY_U8 ||
                    req == FERRY_BOOL,
                out,
                0,
                numel,
                name,
                name_n > 100 ? 100 : (int)name_n,
                err,
                errlen,
                false};
}

bool kreq_fill(const kreq *q, const kreq_input *in, ferry_dtype req, ferry_dtype dst, void *out,
               int64_t numel, const int64_t *shape, int ndim, char *err, size_t errlen)
{
    cur c = {in->data, q->end, (kreq *)q, false};
    fill f;
    fill_init(&f, in->name.s, in->name.n, req, dst, out, numel, err, errlen);
    /* the text was checked by kreq_parse: no syntax error can stop this */
    if (!fill_data(&c, &f, shape, ndim, 3) && !f.failed)
        snprintf(err, errlen, "input '%.*s': malformed 'data'", f.name_n, f.name);
    return !c.bad && !f.failed;
}

ferry_dtype kreq_dtype(const char *s, size_t n)
{
    static const ferry_dtype all[] = {FERRY_F32, FERRY_F16, FERRY_BF16, FERRY_F64, FERRY_I32,
                                      FERRY_I64, FERRY_I8,  FERRY_U8,   FERRY_BOOL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (key_is(s, n, kserve_dtype_name(all[i])))
            return all[i];
    return FERRY_DTYPE_UNDEFINED;
}

/* ------------------------------------------------------------ request */

/* The data of input in, now, when everything it needs came before it and
 * is valid (else kserve.c decodes it later, or reports what is wrong). */
static bool data_now(cur *c, kreq_input *in, const kreq_model *km, int depth)
{
    srv_model *m = km->m;
    if (in->name.kind != KREQ_STRING || in->datatype.kind != KREQ_STRING ||
        in->shape_kind != KREQ_ARRAY || in->shape_err != KREQ_SHAPE_OK)
        return skip_value(c, depth);
    int k = -1;
    for (int i = 0; i < m->n_in && k < 0; i++)
        if (key_is(in->name.s, in->name.n, m->in[i].name))
            k = i;
    ferry_dtype req = kreq_dtype(in->datatype.s, in->datatype.n);
    const ferry_tensor_info *mi = k >= 0 ? &m->in[k] : NULL;
    bool ok = mi && !km->in_mem[k] && req != FERRY_DTYPE_UNDEFINED && in->ndim == mi->ndim &&
              in->shape[0] >= 1 && in->shape[0] <= m->max_batch;
    for (int d = 1; ok && d < in->ndim; d++)
        ok = in->shape[d] == mi->shape[d];
    if (!ok)
        return skip_value(c, depth);
    int64_t numel = in->shape[0] * m->in_sample_numel[k];
    km->in_mem[k] = malloc((size_t)numel * ferry_dtype_size(mi->dtype) + 1);
    if (!km->in_mem[k])
        return skip_value(c, depth); /* kserve.c reports it */
    char err[8];
    fill f;
    fill_init(&f, in->name.s, in->name.n, req, mi->dtype, km->in_mem[k], numel, err, sizeof err);
    if (!fill_data(c, &f, in->shape, in->ndim, depth))
        return false;
    if (!f.failed)
        in->decoded_into = k; /* else kserve.c decodes again for the message */
    return true;
}

static bool shape(cur *c, kreq_input *in, int depth)
{
    if (!peek_is(c, '[')) {
        kreq_val any = {0};
        bool ok = value(c, &any, depth);
        in->shape_kind = any.kind;
        return ok;
    }
    in->shape_kind = KREQ_ARRAY;
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    bool first = true;
    while (next_elem(c, &first)) {
        kreq_val v = {0};
        if (!value(c, &v, depth + 1))
            return false;
        if (in->shape_err)
            continue;
        if (v.kind != KREQ_NUMBER || v.num < 0 || v.num != floor(v.num) || v.num > 1e15)
            in->shape_err = KREQ_SHAPE_BAD_DIM;
        else if (in->ndim == FERRY_MAX_DIMS)
            in->shape_err = KREQ_SHAPE_TOO_LONG;
        else
            in->shape[in->ndim++] = (int64_t)v.num;
    }
    return !c->bad;
}

static bool input(cur *c, kreq_input *in, const kreq_model *km, int depth)
{
    in->decoded_into = -1;
    if (!peek_is(c, '{'))
        return skip_value(c, depth);
    in->is_object = true;
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    static const char *const keys[] = {"name", "datatype", "shape", "parameters", "data"};
    bool first = true;
    const char *k;
    size_t kn;
    uint32_t seen = 0;
    while (next_key(c, &first, &k, &kn)) {
        bool ok;
        switch (member(c, k, kn, keys, 5, &seen)) {
        case DUPLICATE: return false;
        case 0: ok = value(c, &in->name, depth + 1); break;
        case 1: ok = value(c, &in->datatype, depth + 1); break;
        case 2: ok = shape(c, in, depth + 1); break;
        case 3: {
            static const char *const want[] = {"binary_data_size"};
            kreq_val *v[] = {&in->binary_data_size};
            kreq_kind kind;
            ok = param_object(c, &kind, depth + 1, want, v, 1);
            break;
        }
        case 4:
            in->data = c->p;
            ok = data_now(c, in, km, depth + 1);
            break;
        default: ok = skip_value(c, depth + 1); break;
        }
        if (!ok)
            return false;
    }
    return !c->bad;
}

static bool output(cur *c, kreq_output *o, int depth)
{
    if (!peek_is(c, '{'))
        return skip_value(c, depth);
    o->is_object = true;
    if (depth >= MAX_DEPTH)
        return syntax(c, c->p, "nesting at most 1000 deep");
    static const char *const keys[] = {"name", "parameters"};
    bool first = true;
    const char *k;
    size_t kn;
    uint32_t seen = 0;
    while (next_key(c, &first, &k, &kn)) {
        bool ok;
        switch (member(c, k, kn, keys, 2, &seen)) {
        case DUPLICATE: return false;
        case 0: ok = value(c, &o->name, depth + 1); break;
        case 1: {
            static const char *const want[] = {"binary_data"};
            kreq_val *v[] = {&o->binary_data};
            kreq_kind kind;
            ok = param_object(c, &kind, depth + 1, want, v, 1);
            break;
        }
        default: ok = skip_value(c, depth + 1); break;
        }
        if (!ok)
            return false;
    }
    return !c->bad;
}

/* Appends a zeroed element to *arr, which starts as the struct's own
 * stack array of *cap elements and moves to the heap past it. */
static void *grow(kreq *q, void **arr, int *n, int *cap, const void *stack, size_t size)
{
    if (*n == *cap) {
        void *na = *arr == stack ? malloc((size_t)*cap * 2 * size)
                                 : realloc(*arr, (size_t)*cap * 2 * size);
        if (!na) {
            q->oom = true;
            return NULL;
        }
        if (*arr == stack)
            memcpy(na, stack, (size_t)*n * size);
        *arr = na;
        *cap *= 2;
    }
    void *e = (char *)*arr + (size_t)(*n)++ * size;
    memset(e, 0, size);
    return e;
}

static bool list(cur *c, kreq *q, bool inputs, const kreq_model *km)
{
    kreq_kind *kind = inputs ? &q->inputs_kind : &q->outputs_kind;
    if (!peek_is(c, '[')) {
        kreq_val any = {0};
        bool ok = value(c, &any, 1);
        *kind = any.kind;
        return ok;
    }
    *kind = KREQ_ARRAY;
    bool first = true;
    while (next_elem(c, &first)) {
        bool ok;
        if (inputs) {
            kreq_input *in = grow(q, (void **)&q->in, &q->n_in, &q->cap_in, q->in_s, sizeof *in);
            ok = in ? input(c, in, km, 2) : syntax(c, c->p, "memory");
        } else {
            kreq_output *o = grow(q, (void **)&q->out, &q->n_out, &q->cap_out, q->out_s, sizeof *o);
            ok = o ? output(c, o, 2) : syntax(c, c->p, "memory");
        }
        if (!ok)
            return false;
    }
    return !c->bad;
}

bool kreq_parse(kreq *q, const char *json, size_t len, const kreq_model *km)
{
    memset(q, 0, sizeof *q);
    q->base = json;
    q->end = json + len;
    q->in = q->in_s;
    q->out = q->out_s;
    q->cap_in = q->cap_out = 4;
    cur c = {json, json + len, q, false};
    if (len >= 3 && !memcmp(json, "\xef\xbb\xbf", 3)) /* a UTF-8 BOM, as cJSON skips it */
        c.p += 3;
    ws(&c);
    if (!peek_is(&c, '{')) {
        kreq_val any = {0};
        if (!value(&c, &any, 0))
            return false;
        q->value_end = (size_t)(c.p - json);
        return true; /* valid JSON, not an object */
    }
    q->is_object = true;
    static const char *const keys[] = {"id", "parameters", "inputs", "outputs"};
    bool first = true;
    const char *k;
    size_t kn;
    uint32_t seen = 0;
    while (next_key(&c, &first, &k, &kn)) {
        bool ok;
        switch (member(&c, k, kn, keys, 4, &seen)) {
        case DUPLICATE: return false;
        case 0: ok = value(&c, &q->id, 1); break;
        case 1: {
            static const char *const want[] = {"timeout", "priority", "binary_data_output"};
            kreq_val *v[] = {&q->timeout, &q->priority, &q->binary_data_output};
            ok = param_object(&c, &q->params.kind, 1, want, v, 3);
            break;
        }
        case 2: ok = list(&c, q, true, km); break;
        case 3: ok = list(&c, q, false, km); break;
        default: ok = skip_value(&c, 1); break;
        }
        if (!ok)
            return false;
    }
    if (c.bad)
        return false;
    q->value_end = (size_t)(c.p - json);
    return true;
}

void kreq_free(kreq *q)
{
    free(q->scratch);
    if (q->in != q->in_s)
        free(q->in);
    if (q->out != q->out_s)
        free(q->out);
    q->scratch = NULL;
    q->in = q->in_s;
    q->out = q->out_s;
}
