/*
 * profile.c - see profile.h.
 */
#include "backend/profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int backend_profile_init(backend_profile *p, const char *env, int n_nodes)
{
    const char *v = getenv(env);
    p->ns = p->runs = NULL;
    if (!v || !*v || !strcmp(v, "0"))
        return 0;
    size_t n = (size_t)(n_nodes > 0 ? n_nodes : 1);
    p->ns = calloc(n, sizeof *p->ns);
    p->runs = calloc(n, sizeof *p->runs);
    if (!p->ns || !p->runs) {
        free((void *)p->ns);
        free((void *)p->runs);
        p->ns = p->runs = NULL;
        return -1;
    }
    return 0;
}

typedef struct prof_row {
    const char *op;
    int act; /* fused epilogue, so that Gemm and Gemm+gelu show apart */
    int64_t ns, runs, nodes;
} prof_row;

static int prof_cmp(const void *a, const void *b)
{
    int64_t x = ((const prof_row *)a)->ns, y = ((const prof_row *)b)->ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

void backend_profile_finish(backend_profile *p, const graph *g, const char *device)
{
    if (!p->ns)
        return;
    prof_row *rows = calloc((size_t)g->n_nodes + 1, sizeof *rows);
    int nr = 0;
    int64_t total = 0;
    for (int k = 0; rows && k < g->n_nodes; k++) {
        int64_t ns = atomic_load(&p->ns[k]), runs = atomic_load(&p->runs[k]);
        if (runs == 0)
            continue;
        const char *op = op_name(g->nodes[k].op);
        int act = (int)g->nodes[k].act, r = 0;
        while (r < nr && !(rows[r].op == op && rows[r].act == act))
            r++;
        if (r == nr)
            rows[nr++] = (prof_row){op, act, 0, 0, 0};
        rows[r].ns += ns;
        rows[r].runs += runs;
        rows[r].nodes++;
        total += ns;
    }
    if (rows && nr > 0) {
        qsort(rows, (size_t)nr, sizeof *rows, prof_cmp);
        fprintf(stderr, "ferry profile: %s\n  %-22s %6s %10s %8s %7s\n", device, "operator",
                "nodes", "ms", "us/run", "share");
        for (int r = 0; r < nr; r++) {
            char label[64];
            snprintf(label, sizeof label, "%s%s%s", rows[r].op, rows[r].act ? "+" : "",
                     rows[r].act ? act_name((act_kind)rows[r].act) : "");
            fprintf(stderr, "  %-22s %6lld %10.1f %8.1f %6.1f%%\n", label, (long long)rows[r].nodes,
                    (double)rows[r].ns / 1e6, (double)rows[r].ns / 1e3 / (double)rows[r].runs,
                    total ? 100.0 * (double)rows[r].ns / (double)total : 0.0);
        }
    }
    free(rows);
    free((void *)p->ns);
    free((void *)p->runs);
    p->ns = p->runs = NULL;
}
