/*
 * npy.c - .npy reader and writer.
 *
 * The format (numpy/lib/format.py): the magic "\x93NUMPY", a major and a
 * minor version byte, the header length (2 bytes little-endian in 1.0, 4 in
 * 2.0 and 3.0), then the header: a Python dict literal with exactly the keys
 * 'descr', 'fortran_order' and 'shape', padded with spaces and ended by a
 * newline, then the raw array data. The reader treats every byte of the file
 * as hostile: the header is parsed with a small grammar for exactly the
 * literals numpy writes, every count is checked for overflow and the data
 * size must match the shape exactly.
 */
#include "util/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

/* A header longer than this is not something numpy writes for any array
 * Ferry can hold (numpy itself refuses headers over 10000 bytes by default). */
#define NPY_MAX_HEADER (1u << 20)
/* Largest data size accepted: keeps every size computation far from overflow. */
#define NPY_MAX_BYTES ((int64_t)1 << 56)

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    const char code[3]; /* kind and size, as after the byte-order character */
    ferry_dtype dtype;
} npy_types[] = {
    {"f4", FERRY_F32}, {"f8", FERRY_F64}, {"f2", FERRY_F16}, {"i4", FERRY_I32},
    {"i8", FERRY_I64}, {"u1", FERRY_U8},  {"i1", FERRY_I8},  {"b1", FERRY_BOOL},
};

/* ------------------------------------------------------------ header parse */

typedef struct hdr_cursor {
    const char *path;
    const char *start, *p, *end;
} hdr_cursor;

static ferry_status hdr_error(const hdr_cursor *c, const char *what)
{
    return ferry_fail(FERRY_EPARSE, "'%s': malformed .npy header: %s at header offset %ld", c->path,
                      what, (long)(c->p - c->start));
}

static void hdr_skip_ws(hdr_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hdr_accept(hdr_cursor *c, char ch)
{
    hdr_skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes ('...' or "..."); *s and *n point into the
 * header. */
static ferry_status hdr_string(hdr_cursor *c, const char **s, size_t *n)
{
    hdr_skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return hdr_error(c, "expected a quoted string");
    char q = *c->p++;
    const char *b = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n' || *c->p == '\0')
            return hdr_error(c, "unsupported character in string");
        c->p++;
    }
    if (c->p >= c->end)
        return hdr_error(c, "unterminated string");
    *s = b;
    *n = (size_t)(c->p - b);
    c->p++;
    return FERRY_OK;
}

/* A non-negative decimal integer (Python 2 files may add an 'L'). */
static ferry_status hdr_dim(hdr_cursor *c, int64_t *v)
{
    hdr_skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return hdr_error(c, "expected a non-negative integer dimension");
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (x > (NPY_MAX_BYTES - 9) / 10)
            return hdr_error(c, "dimension too large");
        x = x * 10 + (*c->p - '0');
        c->p++;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
        c->p++;
    *v = x;
    return FERRY_OK;
}

/* What the header says. Syntax is checked first, meaning afterwards, so
 * that a malformed header is FERRY_EPARSE even when it also names something
 * unsupported. */
typedef struct npy_header {
    const char *descr; /* points into the header text */
    size_t descr_len;
    int structured; /* descr is a list: a record dtype */
    int fortran;
    int ndim; /* may exceed FERRY_MAX_DIMS; only the first dims are kept */
    int64_t shape[FERRY_MAX_DIMS];
    ferry_dtype dtype; /* set by resolve_dtype */
} npy_header;

/* Skips a structured dtype's list literal, e.g. [('a', '<f4'), ('b', '<i4', (2,))]. */
static ferry_status hdr_skip_list(hdr_cursor *c)
{
    int depth = 0;
    do {
        if (c->p >= c->end)
            return hdr_error(c, "unterminated list");
        char ch = *c->p;
        if (ch == '\'' || ch == '"') {
            const char *s;
            size_t n;
            ferry_status st = hdr_string(c, &s, &n);
            if (st)
                return st;
            continue;
        }
        if (ch == '[' || ch == '(')
            depth++;
        else if (ch == ']' || ch == ')')
            depth--;
        if (depth < 0)
            return hdr_error(c, "unbalanced list");
        c->p++;
    } while (depth > 0);
    return FERRY_OK;
}

static ferry_status hdr_descr(hdr_cursor *c, npy_header *h)
{
    hdr_skip_ws(c);
    if (c->p < c->end && *c->p == '[') {
        h->structured = 1;
        return hdr_skip_list(c);
    }
    return hdr_string(c, &h->descr, &h->descr_len);
}

static ferry_status resolve_dtype(const char *path, npy_header *h)
{
    if (h->structured)
        return ferry_fail(FERRY_EUNSUPPORTED, "'%s': structured .npy dtypes are not supported",
                          path);
    const char *s = h->descr;
    size_t n = h->descr_len;
    char order = '=';
    if (n > 0 && strchr("<>|=", s[0])) {
        order = s[0];
        s++;
        n--;
    }
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        if (n != 2 || memcmp(s, npy_types[i].code, 2) != 0)
            continue;
        int one_byte = npy_types[i].code[1] == '1';
        if (!one_byte && order != '<' && order != '=')
            break;
        h->dtype = npy_types[i].dtype;
        return FERRY_OK;
    }
    return ferry_fail(FERRY_EUNSUPPORTED,
                      "'%s': .npy dtype '%.*s' is not supported (little-endian f4 f8 f2 i4 i8 "
                      "u1 i1 b1 are)",
                      path, (int)(h->descr_len > 16 ? 16 : h->descr_len), h->descr);
}

static ferry_status hdr_bool(hdr_cursor *c, int *v)
{
    hdr_skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && !memcmp(c->p, "True", 4)) {
        c->p += 4;
        *v = 1;
    } else if (left >= 5 && !memcmp(c->p, "False", 5)) {
        c->p += 5;
        *v = 0;
    } else {
        return hdr_error(c, "expected True or False");
    }
    return FERRY_OK;
}

static ferry_status hdr_shape(hdr_cursor *c, npy_header *h)
{
    if (!hdr_accept(c, '('))
        return hdr_error(c, "expected '(' opening the shape");
    h->ndim = 0;
    if (hdr_accept(c, ')'))
        return FERRY_OK;
    for (;;) {
        int64_t d = 0;
        ferry_status st = hdr_dim(c, &d);
        if (st)
            return st;
        if (h->ndim < FERRY_MAX_DIMS)
            h->shape[h->ndim] = d;
        if (h->ndim < 64)
            h->ndim++;
        if (hdr_accept(c, ')')) {
            /* Python: (3) is the integer 3, a 1-tuple is written (3,) */
            if (h->ndim == 1)
                return hdr_error(c, "a one-dimensional shape needs a trailing comma");
            return FERRY_OK;
        }
        if (!hdr_accept(c, ','))
            return hdr_error(c, "expected ',' or ')' in the shape");
        if (hdr_accept(c, ')'))
            return FERRY_OK;
    }
}

static ferry_status parse_header(const char *path, const char *text, size_t len, npy_header *h)
{
    hdr_cursor c = {path, text, text, text + len};
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    ferry_status st;

    if (memchr(text, '\0', len))
        return ferry_fail(FERRY_EPARSE, "'%s': malformed .npy header: contains a NUL byte", path);
    if (!hdr_accept(&c, '{'))
        return hdr_error(&c, "expected '{'");
    while (!hdr_accept(&c, '}')) {
        const char *key;
        size_t n;
        if ((st = hdr_string(&c, &key, &n)))
            return st;
        if (!hdr_accept(&c, ':'))
            return hdr_error(&c, "expected ':' after a key");
        if (n == 5 && !memcmp(key, "descr", 5) && !seen_descr) {
            seen_descr = 1;
            st = hdr_descr(&c, h);
        } else if (n == 13 && !memcmp(key, "fortran_order", 13) && !seen_order) {
            seen_order = 1;
            st = hdr_bool(&c, &h->fortran);
        } else if (n == 5 && !memcmp(key, "shape", 5) && !seen_shape) {
            seen_shape = 1;
            st = hdr_shape(&c, h);
        } else {
            c.p = key;
            return hdr_error(&c, "unknown or repeated key");
        }
        if (st)
            return st;
        if (!hdr_accept(&c, ',')) {
            if (!hdr_accept(&c, '}'))
                return hdr_error(&c, "expected ',' or '}'");
            break;
        }
    }
    hdr_skip_ws(&c);
    if (c.p != c.end)
        return hdr_error(&c, "unexpected text after the dict");
    if (!seen_descr || !seen_order || !seen_shape)
        return ferry_fail(FERRY_EPARSE, "'%s': malformed .npy header: missing key '%s'", path,
                          !seen_descr   ? "descr"
                          : !seen_order ? "fortran_order"
                                        : "shape");
    if ((st = resolve_dtype(path, h)))
        return st;
    if (h->fortran)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "'%s': fortran_order .npy arrays are not supported (save in C order)",
                          path);
    if (h->ndim > FERRY_MAX_DIMS)
        return ferry_fail(FERRY_EUNSUPPORTED, "'%s': .npy array has %s%d dimensions, more than %d",
                          path, h->ndim == 64 ? "at least " : "", h->ndim, FERRY_MAX_DIMS);
    return FERRY_OK;
}

/* ------------------------------------------------------------------- read */

static ferry_status read_exact(FILE *f, const char *path, void *buf, size_t n, const char *what)
{
    size_t got = n ? fread(buf, 1, n, f) : 0;
    if (got == n)
        return FERRY_OK;
    if (ferror(f))
        return ferry_fail(FERRY_EIO, "'%s': read error: %s", path, strerror(errno));
    return ferry_fail(FERRY_EPARSE, "'%s': truncated .npy file: %s is %zu bytes short", path, what,
                      n - got);
}

ferry_status npy_read(const char *path, ferry_tensor *out)
{
    ferry_status st;
    FILE *f = NULL;
    char *hdr = NULL;
    void *data = NULL;
    unsigned char pre[12];
    npy_header h;

    if (!out)
        return ferry_fail(FERRY_EINVAL, "npy_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return ferry_fail(FERRY_EINVAL, "npy_read: path is NULL");
    memset(&h, 0, sizeof h);

    f = fopen(path, "rb");
    if (!f)
        return ferry_fail(FERRY_EIO, "'%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    int64_t fsize = -1; /* known only for regular files */
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
        fsize = (int64_t)sb.st_size;

    if ((st = read_exact(f, path, pre, 8, "the preamble")))
        goto fail;
    if (memcmp(pre, npy_magic, 6) != 0) {
        st = ferry_fail(FERRY_EPARSE, "'%s': not a .npy file (bad magic)", path);
        goto fail;
    }
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0) {
        st =
            ferry_fail(FERRY_EPARSE, "'%s': unknown .npy format version %u.%u", path, major, minor);
        goto fail;
    }
    size_t lenbytes = major == 1 ? 2 : 4, hlen = 0;
    if ((st = read_exact(f, path, pre + 8, lenbytes, "the header length")))
        goto fail;
    for (size_t i = 0; i < lenbytes; i++)
        hlen |= (size_t)pre[8 + i] << (8 * i);
    int64_t data_off = 8 + (int64_t)lenbytes + (int64_t)hlen;
    if (hlen > NPY_MAX_HEADER) {
        st = ferry_fail(FERRY_EPARSE, "'%s': .npy header length %zu is implausible", path, hlen);
        goto fail;
    }
    if (fsize >= 0 && data_off > fsize) {
        st = ferry_fail(FERRY_EPARSE,
                        "'%s': truncated .npy file: header of %zu bytes, file of %lld bytes", path,
                        hlen, (long long)fsize);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = ferry_fail(FERRY_ENOMEM, "'%s': out of memory for the .npy header", path);
        goto fail;
    }
    if ((st = read_exact(f, path, hdr, hlen, "the header")))
        goto fail;
    hdr[hlen] = '\0';
    if ((st = parse_header(path, hdr, hlen, &h)))
        goto fail;

    int64_t numel = 1, elsize = (int64_t)ferry_dtype_size(h.dtype);
    for (int i = 0; i < h.ndim; i++) {
        if (h.shape[i] != 0 && numel > NPY_MAX_BYTES / elsize / h.shape[i]) {
            st = ferry_fail(FERRY_EPARSE, "'%s': .npy shape is too large", path);
            goto fail;
        }
        numel *= h.shape[i];
    }
    int64_t nbytes = numel * elsize;
    if (fsize >= 0 && fsize - data_off != nbytes) {
        st = ferry_fail(FERRY_EPARSE,
                        "'%s': .npy data is %lld bytes but the shape and dtype need %lld", path,
                        (long long)(fsize - data_off), (long long)nbytes);
        goto fail;
    }
    if ((uint64_t)nbytes > (uint64_t)SIZE_MAX - 1) {
        st = ferry_fail(FERRY_ENOMEM, "'%s': .npy data of %lld bytes does not fit in memory", path,
                        (long long)nbytes);
        goto fail;
    }
    data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!data) {
        st = ferry_fail(FERRY_ENOMEM, "'%s': cannot allocate %lld bytes for the .npy data", path,
                        (long long)nbytes);
        goto fail;
    }
    if ((st = read_exact(f, path, data, (size_t)nbytes, "the data")))
        goto fail;
    if (fsize < 0 && fgetc(f) != EOF) {
        st = ferry_fail(FERRY_EPARSE, "'%s': .npy file has bytes after the data", path);
        goto fail;
    }
    fclose(f);
    free(hdr);
    out->dtype = h.dtype;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
    out->data = data;
    return FERRY_OK;

fail:
    free(data);
    free(hdr);
    if (f)
        fclose(f);
    memset(out, 0, sizeof *out);
    return st;
}

void npy_free(ferry_tensor *t)
{
    if (!t)
        return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ write */

static const char *npy_descr(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F32: return "<f4";
    case FERRY_F64: return "<f8";
    case FERRY_F16: return "<f2";
    case FERRY_I32: return "<i4";
    case FERRY_I64: return "<i8";
    case FERRY_U8: return "|u1";
    case FERRY_I8: return "|i1";
    case FERRY_BOOL: return "|b1";
    default: return NULL;
    }
}

ferry_status npy_write(const char *path, const ferry_tensor *t)
{
    if (!path || !t)
        return ferry_fail(FERRY_EINVAL, "npy_write: %s is NULL", path ? "tensor" : "path");
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return ferry_fail(FERRY_EUNSUPPORTED, "'%s': .npy cannot hold dtype %s", path,
                          ferry_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > FERRY_MAX_DIMS)
        return ferry_fail(FERRY_EINVAL, "'%s': tensor has %d dimensions", path, t->ndim);

    /* 8 dims of at most 20 digits each fit easily in 512 bytes */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    int64_t numel = 1, elsize = (int64_t)ferry_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            return ferry_fail(FERRY_EINVAL, "'%s': tensor dimension %d is %lld", path, i,
                              (long long)t->shape[i]);
        if (t->shape[i] != 0 && numel > NPY_MAX_BYTES / elsize / t->shape[i])
            return ferry_fail(FERRY_EINVAL, "'%s': tensor is too large", path);
        numel *= t->shape[i];
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->shape[i]);
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    size_t nbytes = (size_t)(numel * elsize);
    if (nbytes && !t->data)
        return ferry_fail(FERRY_EINVAL, "'%s': tensor data is NULL", path);

    /* pad with spaces so that the data starts on a 64-byte boundary */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) & ~(size_t)63;
    size_t hlen = padded - 10;
    memset(hdr + n, ' ', hlen - 1 - (size_t)n);
    hdr[hlen - 1] = '\n';

    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);

    FILE *f = fopen(path, "wb");
    if (!f)
        return ferry_fail(FERRY_EIO, "'%s': cannot create: %s", path, strerror(errno));
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(hdr, 1, hlen, f) == hlen &&
             (nbytes == 0 || fwrite(t->data, 1, nbytes, f) == nbytes);
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        remove(path);
        return ferry_fail(FERRY_EIO, "'%s': write failed: %s", path, strerror(err));
    }
    return FERRY_OK;
}
