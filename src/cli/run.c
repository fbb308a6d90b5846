/* run.c - `ferry run MODEL -i in.npy -o out.npy`: one batch through a model. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "util/npy.h"
#include "util/timeutil.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry run MODEL.onnx (-i IN.npy ... | --random N) [-o OUT.npy ...] [options]\n"
            "\n"
            "Runs MODEL on a batch and writes its outputs as NumPy .npy files.\n"
            "  -i, --input FILE     a .npy input, one per model input, in model order\n"
            "                       (dtype must match the model: float32 for most models)\n"
            "  --random N           N random samples instead of -i: floats uniform in [-1, 1),\n"
            "                       ids within the embedding they index, masks of ones\n"
            "  --seed S             seed for --random (default 0)\n"
            "  -o, --output FILE    where to write each output (default: print a summary)\n"
            "  --device DEV         cpu (default), cuda, cuda:N\n"
            "  --precision P        fp32 (default), tf32, fp16, bf16 (CUDA)\n"
            "  --max-batch N        largest chunk one worker runs (default 256)\n"
            "  --workers N          worker threads (CPU) or streams (CUDA); default: one per\n"
            "                       core this process may use on the CPU, 2 streams on CUDA\n"
            "\n"
            "example (from the repository root, after `make`):\n"
            "  ./build/ferry run build/models/mlp-s.onnx --random 8 -o out.npy\n");
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *inputs[CLI_MAX_IO], *outputs[CLI_MAX_IO];
    int n_inputs = 0, n_outputs = 0, rc = 1;
    int64_t random_n = 0, seed = 0;
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "ferry run: %s needs a value\n", a);                                   \
            return 2;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "-i") || !strcmp(a, "--input")) {
            NEEDV();
            if (n_inputs == CLI_MAX_IO) {
                fprintf(stderr, "ferry run: at most %d inputs\n", CLI_MAX_IO);
                return 2;
            }
            inputs[n_inputs++] = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEEDV();
            if (n_outputs == CLI_MAX_IO) {
                fprintf(stderr, "ferry run: at most %d outputs\n", CLI_MAX_IO);
                return 2;
            }
            outputs[n_outputs++] = v;
        } else if (!strcmp(a, "--random")) {
            NEEDV();
            long long x;
            if (cli_parse_int("ferry run", a, v, 1, 1 << 24, &x))
                return 2;
            random_n = x;
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            long long x;
            if (cli_parse_int("ferry run", a, v, 0, LLONG_MAX, &x))
                return 2;
            seed = x;
        } else if (!strcmp(a, "--device")) {
            NEEDV();
            cfg.device = v;
        } else if (!strcmp(a, "--precision")) {
            NEEDV();
            if (cli_parse_precision(v, &cfg.precision))
                return 2;
        } else if (!strcmp(a, "--max-batch")) {
            NEEDV();
            long long x;
            if (cli_parse_int("ferry run", a, v, 1, 1 << 22, &x))
                return 2;
            cfg.max_batch = (int)x;
        } else if (!strcmp(a, "--workers")) {
            NEEDV();
            long long x;
            if (cli_parse_int("ferry run", a, v, 1, 256, &x))
                return 2;
            cfg.workers = (int)x;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "ferry run: unexpected argument '%s'\n", a);
            return 2;
        }
#undef NEEDV
    }
    if (!model_path) {
        fprintf(stderr, "ferry run: no MODEL given\n");
        usage(stderr);
        return 2;
    }
    if (!n_inputs == !random_n) {
        fprintf(stderr, "ferry run: give either -i IN.npy or --random N\n");
        return 2;
    }

    ferry_model *m = NULL;
    ferry_engine *e = NULL;
    ferry_tensor in[CLI_MAX_IO], out[CLI_MAX_IO];
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    int n_in = 0, n_out = 0;
    ferry_status st = ferry_model_load(model_path, &m);
    if (st != FERRY_OK)
        return cli_error("run", st);
    n_in = ferry_model_num_inputs(m);
    n_out = ferry_model_num_outputs(m);
    if (n_inputs && n_inputs != n_in) {
        fprintf(stderr, "ferry run: model '%s' takes %d inputs; %d given with -i\n", model_path,
                n_in, n_inputs);
        rc = 2;
        goto done;
    }
    if (n_outputs > n_out) {
        fprintf(stderr, "ferry run: model '%s' has %d outputs; %d -o given\n", model_path, n_out,
                n_outputs);
        rc = 2;
        goto done;
    }
    if ((st = ferry_engine_create(m, &cfg, &e)) != FERRY_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    int64_t n = random_n;
    for (int i = 0; i < n_in; i++) {
        if (n_inputs) {
            if ((st = npy_read(inputs[i], &in[i])) != FERRY_OK) {
                rc = cli_error("run", st);
                goto done;
            }
            n = in[i].ndim > 0 ? in[i].shape[0] : 0;
        } else {
            ferry_tensor_info ti;
            ferry_model_input(m, i, &ti);
            in[i].dtype = ti.dtype;
            in[i].ndim = ti.ndim;
            int64_t numel = 1;
            int overflow = 0;
            for (int d = 0; d < ti.ndim; d++) {
                in[i].shape[d] = ti.shape[d] == FERRY_DIM_BATCH ? random_n : ti.shape[d];
                overflow |= __builtin_mul_overflow(numel, in[i].shape[d], &numel);
            }
            if (overflow || (uint64_t)numel > SIZE_MAX / 2 / sizeof(float)) {
                fprintf(stderr, "ferry run: --random %lld: input '%s' would not fit in memory\n",
                        (long long)random_n, ti.name);
                rc = 2;
                goto done;
            }
            size_t esz = ferry_dtype_size(ti.dtype);
            void *d = malloc((size_t)(numel ? numel : 1) * (esz ? esz : 1));
            if (!d) {
                fprintf(stderr, "ferry run: out of memory\n");
                goto done;
            }
            in[i].data = d;
            cli_random_fill(m, i, &in[i], (uint64_t)seed);
        }
    }
    int64_t length = 0; /* of the length axis, when the model has one */
    for (int i = 0; i < n_in && !length; i++) {
        int d = ferry_model_length_dim(m, 0, i);
        if (d > 0 && in[i].ndim > d)
            length = in[i].shape[d];
    }
    for (int i = 0; i < n_out; i++) {
        ferry_engine_output_info_len(e, i, n, length, &out[i]);
        int64_t numel = ferry_tensor_numel(&out[i]);
        out[i].data = malloc((size_t)(numel ? numel : 1) * ferry_dtype_size(out[i].dtype));
        if (!out[i].data) {
            fprintf(stderr, "ferry run: out of memory\n");
            goto done;
        }
    }
    int64_t t0 = ferry_now_us();
    if ((st = ferry_engine_run(e, in, n_in, out, n_out)) != FERRY_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    int64_t t1 = ferry_now_us();
    for (int i = 0; i < n_outputs; i++)
        if ((st = npy_write(outputs[i], &out[i])) != FERRY_OK) {
            rc = cli_error("run", st);
            goto done;
        }
    for (int i = 0; i < n_out; i++) {
        ferry_tensor_info ti;
        ferry_model_output(m, i, &ti);
        char s[128];
        cli_shape_str(s, sizeof s, out[i].ndim, out[i].shape);
        fprintf(stderr, "output '%s' %s %s", ti.name, ferry_dtype_name(out[i].dtype), s);
        if (out[i].dtype == FERRY_F32) {
            const float *f = out[i].data;
            int64_t k = ferry_tensor_numel(&out[i]);
            fprintf(stderr, ":");
            for (int64_t j = 0; j < k && j < 4; j++)
                fprintf(stderr, " %.6g", f[j]);
            if (k > 4)
                fprintf(stderr, " ...");
        }
        fprintf(stderr, "%s%s\n", i < n_outputs ? " -> " : "", i < n_outputs ? outputs[i] : "");
    }
    fprintf(stderr, "%lld samples on %s in %.3f ms\n", (long long)n, ferry_engine_device(e),
            (t1 - t0) / 1000.0);
    rc = 0;
done:
    for (int i = 0; i < CLI_MAX_IO; i++) {
        free(in[i].data);
        free(out[i].data);
    }
    ferry_engine_destroy(e);
    ferry_model_destroy(m);
    return rc;
}
