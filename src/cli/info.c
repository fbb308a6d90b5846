/* info.c - `ferry info MODEL`: what a model is and what Ferry will run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"

const char *cli_default_model(void)
{
    static char path[4096];
    const char *env = getenv("FERRY_MODEL");
    if (env && *env)
        return env;
    /* The build writes models/mlp-s.onnx next to the ferry binary. */
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n > 0) {
        path[n] = '\0';
        char *slash = strrchr(path, '/');
        if (slash) {
            strcpy(slash + 1, "models/mlp-s.onnx");
            if (access(path, R_OK) == 0)
                return path;
        }
    }
    static const char *cands[] = {"models/mlp-s.onnx", "build/models/mlp-s.onnx"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], R_OK) == 0)
            return cands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry info [MODEL.onnx]\n"
               "\n"
               "Prints the model's inputs and outputs as the file declares them, the\n"
               "operators in the file (marking any Ferry lacks), its parameter count, the\n"
               "plan Ferry runs after constant folding and fusion (e.g. Gemm+bias+relu as\n"
               "one step), and the backends built into this binary with the devices they\n"
               "see. Without MODEL, describes the bundled mlp-s model.\n"
               "\n"
               "example (from the repository root, after `make`):\n"
               "  ./build/ferry info build/models/mlp-s.onnx\n");
}

/* An input or output as the file declares it: symbolic axes by name. */
static void print_io(const ferry_summary *sum, int is_output, int i, const char *what)
{
    ferry_tensor_info ti;
    if ((is_output ? ferry_summary_output : ferry_summary_input)(sum, i, &ti) != FERRY_OK)
        return;
    char s[256];
    size_t at = (size_t)snprintf(s, sizeof s, "[");
    for (int d = 0; d < ti.ndim && at < sizeof s; d++) {
        const char *axis = ferry_summary_axis(sum, is_output, i, d);
        if (ti.shape[d] >= 0)
            at += (size_t)snprintf(s + at, sizeof s - at, "%s%lld", d ? "," : "",
                                   (long long)ti.shape[d]);
        else
            at += (size_t)snprintf(s + at, sizeof s - at, "%s%s", d ? "," : "",
                                   axis && *axis ? axis : "?");
    }
    if (at < sizeof s)
        snprintf(s + at, sizeof s - at, "]");
    printf("  %-6s %-20s %-5s %s\n", what, ti.name, ferry_dtype_name(ti.dtype), s);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry info: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "ferry info: one model at a time\n");
            return 2;
        }
    }
    char backends[2048];
    ferry_backends_describe(backends, sizeof backends);
    if (!path)
        path = cli_default_model();
    if (!path) {
        printf("backends:\n%s\n", backends);
        fprintf(stderr, "ferry info: no MODEL given and the bundled model was not found\n");
        return 2;
    }
    ferry_summary *sum;
    ferry_status st = ferry_summary_load(path, &sum);
    if (st != FERRY_OK)
        return cli_error("info", st);
    printf("model:      %s\n", path);
    printf("producer:   %s, opset %lld\n", ferry_summary_producer(sum),
           (long long)ferry_summary_opset(sum));
    printf("tensors:\n");
    for (int i = 0; i < ferry_summary_num_inputs(sum); i++)
        print_io(sum, 0, i, "input");
    for (int i = 0; i < ferry_summary_num_outputs(sum); i++)
        print_io(sum, 1, i, "output");
    int missing = 0;
    printf("operators in the file (%d nodes):", ferry_summary_num_nodes(sum));
    for (int k = 0; k < ferry_summary_num_ops(sum); k++) {
        const char *name;
        int count, supported;
        if (ferry_summary_op(sum, k, &name, &count, &supported) != FERRY_OK)
            continue;
        printf(" %s x%d%s", name, count, supported ? "" : " (NOT SUPPORTED)");
        missing += !supported;
    }
    printf("\n");
    ferry_summary_destroy(sum);

    ferry_model *m;
    st = ferry_model_load(path, &m);
    if (st != FERRY_OK) {
        printf("status:     cannot run%s\n",
               missing ? ": the operators marked NOT SUPPORTED are missing" : "");
        printf("backends:\n%s\n", backends);
        return cli_error("info", st);
    }
    printf("parameters: %lld\n", (long long)ferry_model_param_count(m));
    int n_steps = 0;
    if ((st = ferry_model_plan(m, NULL, 0, &n_steps)) != FERRY_OK) {
        ferry_model_destroy(m);
        return cli_error("info: planning", st);
    }
    ferry_step_info *steps = calloc((size_t)(n_steps ? n_steps : 1), sizeof *steps);
    if (!steps) {
        ferry_model_destroy(m);
        fprintf(stderr, "ferry info: out of memory\n");
        return 1;
    }
    if ((st = ferry_model_plan(m, steps, n_steps, &n_steps)) != FERRY_OK) {
        free(steps);
        ferry_model_destroy(m);
        return cli_error("info: planning", st);
    }
    printf("plan after constant folding and fusion (%d steps):\n", n_steps);
    for (int k = 0; k < n_steps; k++) {
        char s[128];
        cli_shape_str(s, sizeof s, steps[k].output.ndim, steps[k].output.shape);
        printf("  %2d  %-18s %-20s%s%s -> %s %s\n", k, steps[k].op, steps[k].name,
               steps[k].epilogue[0] ? " " : "", steps[k].epilogue, steps[k].output.name, s);
    }
    free(steps);
    printf("backends:\n%s\n", backends);
    ferry_model_destroy(m);
    return 0;
}
