/* info.c - `ferry info MODEL`: what a model is and what Ferry will run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "graph/model.h"

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
               "operators in the file (marking any Ferry lacks), its parameter count, the plan Ferry runs after constant\n"
               "folding and fusion (e.g. Gemm+bias+relu as one step), and the backends\n"
               "built into this binary with the devices they see.\n"
               "Without MODEL, describes the bundled mlp-s model.\n");
}

static void print_io(const onnx_summary_io *io, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        char s[256];
        size_t at = (size_t)snprintf(s, sizeof s, "[");
        for (int d = 0; d < io[i].ndim && at < sizeof s; d++) {
            if (io[i].dims[d] >= 0)
                at += (size_t)snprintf(s + at, sizeof s - at, "%s%lld", d ? "," : "",
                                       (long long)io[i].dims[d]);
            else
                at += (size_t)snprintf(s + at, sizeof s - at, "%s%s", d ? "," : "", io[i].sym[d]);
        }
        if (at < sizeof s)
            snprintf(s + at, sizeof s - at, "]");
        printf("  %-6s %-20s %-5s %s\n", what, io[i].name, ferry_dtype_name(io[i].dtype), s);
    }
}

/* The epilogue a fused step carries: "+bias+relu", "+residual+relu". */
static void print_epilogue(const graph_node *n)
{
    if (n->op == OP_GEMM && n->n_in > 2 && n->in[2] >= 0)
        printf(" +bias");
    if ((n->op == OP_CONV || n->op == OP_CONV_TRANSPOSE) && n->n_in > 3 && n->in[3] >= 0)
        printf(" +residual");
    if ((n->op == OP_GEMM || n->op == OP_CONV || n->op == OP_CONV_TRANSPOSE) && n->act)
        printf(" +%s", act_name(n->act));
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
    onnx_summary *sum = malloc(sizeof *sum);
    if (!sum) {
        fprintf(stderr, "ferry info: out of memory\n");
        return 1;
    }
    ferry_status st = onnx_summarize_file(path, sum);
    if (st != FERRY_OK) {
        free(sum);
        return cli_error("info", st);
    }
    printf("model:      %s\n", path);
    printf("producer:   %s, opset %lld\n", sum->producer, (long long)sum->opset);
    printf("tensors:\n");
    print_io(sum->inputs, sum->n_inputs, "input");
    print_io(sum->outputs, sum->n_outputs, "output");
    int missing = 0;
    printf("operators in the file (%d nodes):", sum->n_nodes);
    for (int k = 0; k < sum->n_ops; k++) {
        printf(" %s x%d%s", sum->ops[k].name, sum->ops[k].count,
               sum->ops[k].supported ? "" : " (NOT SUPPORTED)");
        missing += !sum->ops[k].supported;
    }
    printf("\n");
    free(sum);

    ferry_model *m;
    st = ferry_model_load(path, &m);
    if (st != FERRY_OK) {
        printf("status:     cannot run%s\n",
               missing ? ": the operators marked NOT SUPPORTED are missing" : "");
        printf("backends:\n%s\n", backends);
        return cli_error("info", st);
    }
    const graph *g = m->g;
    printf("parameters: %lld\n", (long long)graph_param_count(g));

    graph_plan plan;
    st = graph_plan_make(g, 1, 4, &plan);
    if (st != FERRY_OK) {
        ferry_model_destroy(m);
        return cli_error("info: planning", st);
    }
    printf("plan after constant folding and fusion (%d steps, arena %zu bytes per sample in "
           "fp32):\n",
           plan.n_order,
           plan.arena_bytes);
    for (int k = 0; k < plan.n_order; k++) {
        const graph_node *n = &g->nodes[plan.order[k]];
        const graph_value *o = &g->values[n->out[0]];
        char s[128];
        cli_shape_str(s, sizeof s, o->ndim, o->dims);
        printf("  %2d  %-18s %-20s", k, op_name(n->op), n->name);
        print_epilogue(n);
        printf(" -> %s %s\n", o->name, s);
    }
    graph_plan_free(&plan);
    printf("backends:\n%s\n", backends);
    ferry_model_destroy(m);
    return 0;
}
