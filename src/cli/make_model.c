/* make_model.c - `ferry make-model`: write a seeded MLP as an ONNX file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "ferry.h"
#include "graph/onnx_write.h"

#define MAX_WIDTHS 65

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry make-model mlp --dims W0,W1,...,Wn [options] -o FILE.onnx\n"
            "       ferry make-model mlp-s|mlp-l [options] -o FILE.onnx\n"
            "\n"
            "Writes a multi-layer perceptron as ONNX, with weights drawn like\n"
            "torch.nn.Linear's default init from a seeded generator: the same\n"
            "arguments always give the same bytes. No Python needed.\n"
            "\n"
            "The model reads \"input\" [batch, W0] (float32) and writes \"output\"\n"
            "[batch, Wn] through n Gemm layers with the activation between them\n"
            "(none after the last).\n"
            "\n"
            "presets:\n"
            "  mlp-s                  --dims 256,512,512,256 --act relu\n"
            "  mlp-l                  --dims 1024,4096,4096,1024 --act gelu\n"
            "\n"
            "options:\n"
            "  --dims W0,W1,...       layer widths, input first (2 to %d of them)\n"
            "  --act NAME             %s (default relu)\n"
            "  --seed N               generator seed, any unsigned 64-bit number (default 0)\n"
            "  --opset N              ONNX opset, 13..21 (default 17); GELU is the Gelu op\n"
            "                         from opset 20, else the Erf pattern PyTorch exports\n"
            "  --external-data        store the weights in FILE.onnx.data beside the model\n"
            "  -o, --output FILE      where to write (written atomically)\n"
            "  -h, --help             this text\n"
            "\n"
            "example (from the repository root, after `make`):\n"
            "  ./build/ferry make-model mlp --dims 256,512,512,256 --act relu --seed 0 -o my.onnx\n"
            "  ./build/ferry info my.onnx\n",
            MAX_WIDTHS, onnx_write_mlp_acts());
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ferry make-model: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see `ferry make-model --help`)\n");
    return 2;
}

/* Parses "256,512,256" into dims; returns the count or -1. */
static int parse_dims(const char *s, int *dims)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 1 << 20 || n == MAX_WIDTHS)
            return -1;
        dims[n++] = (int)v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9') /* strtoull would take " -1" as 2^64 - 1 */
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

/* The value of option argv[*i] ("--x v" or "--x=v"), or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t nl = strlen(name);
    if (strncmp(argv[*i], name, nl))
        return NULL;
    if (argv[*i][nl] == '=')
        return argv[*i] + nl + 1;
    if (argv[*i][nl] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        return "";
    return argv[++*i];
}

int cmd_make_model(int argc, char **argv)
{
    int dims[MAX_WIDTHS], n_dims = 0, opset = 17, external = 0;
    const char *act = NULL, *out = NULL, *kind = NULL, *v;
    uint64_t seed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--dims"))) {
            n_dims = parse_dims(v, dims);
            if (n_dims < 2)
                return usage_error("--dims wants 2 or more widths 1..1048576 like "
                                   "256,512,256; got '%s'",
                                   v);
        } else if ((v = opt_value(argc, argv, &i, "--act"))) {
            act = v;
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            if (parse_u64(v, &seed))
                return usage_error("--seed wants an unsigned integer; got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--opset"))) {
            long long o;
            if (cli_parse_int("ferry make-model", "--opset", v, 13, 21, &o))
                return 2;
            opset = (int)o;
        } else if (!strcmp(a, "--external-data")) {
            external = 1;
        } else if ((v = opt_value(argc, argv, &i, "-o")) ||
                   (v = opt_value(argc, argv, &i, "--output"))) {
            if (!*v)
                return usage_error("%s wants a file name", a);
            out = v;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else if (!kind) {
            kind = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }

    if (!kind) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(kind, "mlp-s") || !strcmp(kind, "mlp-l")) {
        int large = kind[4] == 'l';
        if (n_dims)
            return usage_error("'%s' is a preset; give --dims with 'mlp' instead", kind);
        static const int s[] = {256, 512, 512, 256}, l[] = {1024, 4096, 4096, 1024};
        memcpy(dims, large ? l : s, sizeof s);
        n_dims = 4;
        if (!act)
            act = large ? "gelu" : "relu";
    } else if (strcmp(kind, "mlp")) {
        return usage_error("unknown model kind '%s' (mlp, mlp-s, mlp-l)", kind);
    } else if (!n_dims) {
        return usage_error("%s needs --dims, e.g. --dims 256,512,256", kind);
    }
    if (!act)
        act = "relu";
    if (!out)
        return usage_error("%s needs an output file: -o FILE.onnx", kind);

    ferry_status st = onnx_write_mlp(out, dims, n_dims, act, seed, opset, external);
    if (st == FERRY_EINVAL)
        return usage_error("%s", ferry_last_error());
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry make-model: %s (%s)\n", ferry_last_error(), ferry_status_str(st));
        return 1;
    }
    int64_t params = 0;
    for (int i = 0; i + 1 < n_dims; i++)
        params += (int64_t)dims[i] * dims[i + 1] + dims[i + 1];
    printf("wrote %s: mlp", out);
    for (int i = 0; i < n_dims; i++)
        printf("%c%d", i ? '-' : ' ', dims[i]);
    printf(" %s, %lld parameters, opset %d, seed %llu%s\n", act, (long long)params, opset,
           (unsigned long long)seed, external ? ", external data" : "");
    return 0;
}
