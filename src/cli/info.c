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
               "Prints the model's inputs and outputs (N is the batch dimension), the\n"
               "operators it uses, its parameter count, the plan Ferry runs after constant\n"
               "folding and fusion (e.g. Gemm+bias+relu as one step), and the backends\n"
               "built into this binary with the devices they see.\n"
               "Without MODEL, describes the bundled mlp-s model.\n");
}

static void print_io(const graph *g, const int *list, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        const graph_value *v = &g->values[list[i]];
        char s[128];
        cli_shape_str(s, sizeof s, v->ndim, v->dims);
        printf("  %-6s %-20s %-5s %s\n", what, v->name, ferry_dtype_name(v->dtype), s);
    }
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
    ferry_model *m;
    ferry_status st = ferry_model_load(path, &m);
    if (st != FERRY_OK)
        return cli_error("info", st);
    const graph *g = m->g;
    printf("model:      %s\n", path);
    printf("producer:   %s, opset %lld\n", g->producer ? g->producer : "?", (long long)g->opset);
    printf("parameters: %lld\n", (long long)graph_param_count(g));
    printf("tensors:\n");
    print_io(g, g->inputs, g->n_inputs, "input");
    print_io(g, g->outputs, g->n_outputs, "output");

    int counts[OP_COUNT] = {0};
    for (int i = 0; i < g->n_nodes; i++)
        counts[g->nodes[i].op]++;
    printf("operators (after loading, before fusion):");
    for (int op = 0; op < OP_COUNT; op++)
        if (counts[op])
            printf(" %s x%d", op_name((op_kind)op), counts[op]);
    printf("\n");

    graph_plan plan;
    st = graph_plan_make(g, 1, 4, &plan);
    if (st != FERRY_OK) {
        ferry_model_destroy(m);
        return cli_error("info: planning", st);
    }
    printf("plan (%d steps, arena %zu bytes per sample in fp32):\n", plan.n_order,
           plan.arena_bytes);
    for (int k = 0; k < plan.n_order; k++) {
        const graph_node *n = &g->nodes[plan.order[k]];
        const graph_value *o = &g->values[n->out[0]];
        char s[128];
        cli_shape_str(s, sizeof s, o->ndim, o->dims);
        printf("  %2d  %-18s %-20s", k, op_name(n->op), n->name);
        if (n->op == OP_GEMM) {
            int has_bias = n->n_in > 2 && n->in[2] >= 0;
            printf(" %s%s%s", has_bias ? "+bias" : "", n->act ? "+" : "",
                   n->act ? act_name(n->act) : "");
        }
        printf(" -> %s %s\n", o->name, s);
    }
    graph_plan_free(&plan);
    printf("backends:\n%s\n", backends);
    ferry_model_destroy(m);
    return 0;
}
