/* common.c - option parsing and error printing shared by the subcommands. */
#include "cli/common.h"
#include "util/format.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_precision(const char *s, ferry_precision *out)
{
    static const struct {
        const char *name;
        ferry_precision p;
    } t[] = {{"fp32", FERRY_PRECISION_FP32},
             {"tf32", FERRY_PRECISION_TF32},
             {"fp16", FERRY_PRECISION_FP16},
             {"bf16", FERRY_PRECISION_BF16}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].name)) {
            *out = t[i].p;
            return 0;
        }
    fprintf(stderr, "ferry: precision '%s': expected fp32, tf32, fp16 or bf16\n", s);
    return -1;
}

const char *cli_precision_name(ferry_precision p)
{
    switch (p) {
    case FERRY_PRECISION_FP32: return "fp32";
    case FERRY_PRECISION_TF32: return "tf32";
    case FERRY_PRECISION_FP16: return "fp16";
    case FERRY_PRECISION_BF16: return "bf16";
    }
    return "?";
}

int cli_parse_int_list(const char *s, int64_t *out, int max)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v <= 0 || n >= max || (*end && *end != ','))
            return -1;
        out[n++] = v;
        if (!*end)
            return n;
        p = end + 1; /* past the comma: "1," and "1,,2" fail on the next number */
    }
}

int cli_parse_int(const char *cmd, const char *opt, const char *val, long long lo, long long hi,
                  long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = val ? strtoll(val, &end, 10) : 0;
    if (!val || errno || end == val || *end || v < lo || v > hi) {
        if (hi == LLONG_MAX)
            fprintf(stderr, "%s: %s wants an integer >= %lld, got '%s'\n", cmd, opt, lo,
                    val ? val : "");
        else
            fprintf(stderr, "%s: %s wants an integer in %lld..%lld, got '%s'\n", cmd, opt, lo, hi,
                    val ? val : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *val, double lo, double hi,
                     double *out)
{
    char *end = NULL;
    errno = 0;
    double v = val ? strtod(val, &end) : 0;
    /* written so that NaN fails too */
    if (!val || errno || end == val || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s wants a number in %g..%g, got '%s'\n", cmd, opt, lo, hi,
                val ? val : "");
        return -1;
    }
    *out = v;
    return 0;
}

void cli_shape_str(char *buf, size_t len, int ndim, const int64_t *dims)
{
    ferry_shape_str(buf, len, ndim, dims);
}

int cli_error(const char *what, ferry_status st)
{
    fprintf(stderr, "ferry: %s: %s: %s\n", what, ferry_status_str(st), ferry_last_error());
    return 1;
}
