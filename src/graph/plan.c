/*
 * plan.c - execution order and one shared arena for a graph's intermediates.
 *
 * The order is a stable topological sort of the live nodes (array order
 * wherever it is already valid), with pure views left out: a view's output
 * shares its root's bytes, so a backend has nothing to run for it.
 *
 * Arena: each intermediate (not const, not a graph input or output, not an
 * alias) lives from the step that writes it to the last step that reads it
 * or reads any view aliasing it. A value also read by a graph output view
 * lives to the end. Values are placed greedily at the lowest 64-byte aligned
 * offset that does not collide with any value whose lifetime overlaps; the
 * intervals are inclusive, so a node's inputs and outputs never share bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "util/error.h"

#define PLAN_ALIGN ((size_t)64)

typedef struct plan_region {
    int value;
    int start, end; /* inclusive step range */
    size_t offset, size;
} plan_region;

static int is_view_node(const graph *g, const graph_node *n)
{
    if (n->n_out <= 0)
        return 0;
    for (int i = 0; i < n->n_out; i++) {
        int v = n->out[i];
        if (v < 0 || v >= g->n_values || g->values[v].alias < 0)
            return 0;
    }
    return 1;
}

/* Follows alias links to the value that owns the storage; -1 on a cycle or
 * an out-of-range link. */
static int alias_root(const graph *g, int v)
{
    for (int hops = 0; hops <= g->n_values; hops++) {
        if (v < 0 || v >= g->n_values)
            return -1;
        if (g->values[v].alias < 0)
            return v;
        v = g->values[v].alias;
    }
    return -1;
}

static int in_arena(const graph_value *v)
{
    return !v->is_const && !v->is_sym && !v->is_input && !v->is_output && v->alias < 0;
}

/* Stable Kahn sort of live nodes into topo[]; returns the count or -1 with
 * the error set (a cycle, or a live node reading a value nothing live
 * writes). */
static int topo_sort(const graph *g, int *topo)
{
    int n = g->n_nodes, count = 0;
    int *pending = calloc((size_t)n + 1, sizeof *pending);
    char *done = calloc((size_t)n + 1, 1);
    if (!pending || !done) {
        ferry_fail(FERRY_ENOMEM, "out of memory planning %d nodes", n);
        count = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const graph_node *nd = &g->nodes[i];
        if (nd->dead)
            continue;
        for (int k = 0; k < nd->n_in && k < GRAPH_MAX_IO; k++) {
            int v = nd->in[k];
            if (v < 0)
                continue;
            if (v >= g->n_values) {
                ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): input %d refers to value %d of %d",
                           nd->name, op_name(nd->op), k, v, g->n_values);
                count = -1;
                goto out;
            }
            const graph_value *gv = &g->values[v];
            if (gv->is_const || gv->is_input || gv->is_sym)
                continue; /* shape math known at load: the backend writes it */
            int p = gv->producer;
            if (p < 0 || p >= n || g->nodes[p].dead) {
                ferry_fail(FERRY_EINTERNAL,
                           "node '%s' (%s): input '%s' is neither a constant, a graph input "
                           "nor written by a live node",
                           nd->name, op_name(nd->op), gv->name);
                count = -1;
                goto out;
            }
            pending[i]++;
        }
    }
    /* Repeated sweeps keep array order where it is valid; graphs are small
     * and almost always already sorted, so this is one or two passes. */
    int progress = 1;
    while (progress) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            const graph_node *nd = &g->nodes[i];
            if (nd->dead || done[i] || pending[i] > 0)
                continue;
            done[i] = 1;
            topo[count++] = i;
            progress = 1;
            for (int j = 0; j < n; j++) {
                const graph_node *c = &g->nodes[j];
                if (c->dead || done[j])
                    continue;
                for (int k = 0; k < c->n_in && k < GRAPH_MAX_IO; k++) {
                    int v = c->in[k];
                    if (v >= 0 && !g->values[v].is_const && !g->values[v].is_input &&
                        !g->values[v].is_sym && g->values[v].producer == i)
                        pending[j]--;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!g->nodes[i].dead && !done[i]) {
            ferry_fail(FERRY_EINTERNAL, "node '%s' (%s) is part of a cycle", g->nodes[i].name,
                       op_name(g->nodes[i].op));
            count = -1;
            goto out;
        }
    }
out:
    free(pending);
    free(done);
    return count;
}

static int region_cmp_offset(const void *a, const void *b)
{
    const plan_region *x = *(const plan_region *const *)a, *y = *(const plan_region *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

ferry_status graph_plan_make(const graph *g, int64_t max_batch, size_t elem_bytes, graph_plan *out)
{
    ferry_status st = FERRY_OK;
    int *topo = NULL, *end = NULL;
    plan_region *regs = NULL;
    plan_region **live = NULL;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "graph_plan_make: out is NULL");
    memset(out, 0, sizeof *out);
    if (!g || max_batch < 1 || elem_bytes == 0)
        return ferry_fail(FERRY_EINVAL,
                          "graph_plan_make: bad arguments (graph %p, max_batch %lld, "
                          "elem_bytes %zu)",
                          (const void *)g, (long long)max_batch, elem_bytes);

    int nn = g->n_nodes, nv = g->n_values;
    topo = malloc(((size_t)nn + 1) * sizeof *topo);
    end = malloc(((size_t)nv + 1) * sizeof *end);
    out->offset = malloc(((size_t)nv + 1) * sizeof *out->offset);
    out->order = malloc(((size_t)nn + 1) * sizeof *out->order);
    regs = calloc((size_t)nv + 1, sizeof *regs);
    live = calloc((size_t)nv + 1, sizeof *live);
    if (!topo || !end || !out->offset || !out->order || !regs || !live) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory planning %d nodes and %d values", nn, nv);
        goto fail;
    }
    int nt = topo_sort(g, topo);
    if (nt < 0) {
        st = FERRY_EINTERNAL;
        if (strstr(ferry_last_error(), "out of memory"))
            st = FERRY_ENOMEM;
        goto fail;
    }

    /* Execution order: everything but views; only executed nodes touch the
     * arena, so lifetimes are measured in these steps. */
    for (int t = 0; t < nt; t++) {
        const graph_node *nd = &g->nodes[topo[t]];
        if (is_view_node(g, nd))
            continue;
        out->order[out->n_order++] = topo[t];
    }
    int last_step = out->n_order; /* one past the last: "to the end" */

    /* End of each root's lifetime. */
    for (int v = 0; v < nv; v++) {
        out->offset[v] = SIZE_MAX;
        end[v] = -1;
    }
    for (int s = 0; s < out->n_order; s++) {
        const graph_node *nd = &g->nodes[out->order[s]];
        for (int k = 0; k < nd->n_in && k < GRAPH_MAX_IO; k++) {
            if (nd->in[k] < 0)
                continue;
            int r = alias_root(g, nd->in[k]);
            if (r < 0) {
                st = ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): input '%s' has an alias cycle",
                                nd->name, op_name(nd->op), g->values[nd->in[k]].name);
                goto fail;
            }
            if (end[r] < s)
                end[r] = s;
        }
    }
    for (int v = 0; v < nv; v++) {
        if (!g->values[v].is_output)
            continue;
        int r = alias_root(g, v);
        if (r >= 0)
            end[r] = last_step;
    }

    /* Regions in order of their first step (the producer's step), then
     * greedy first-fit against the regions still live. */
    int nr = 0;
    for (int s = 0; s < out->n_order; s++) {
        const graph_node *nd = &g->nodes[out->order[s]];
        for (int k = 0; k < nd->n_out && k < GRAPH_MAX_IO; k++) {
            int v = nd->out[k];
            if (v < 0 || v >= nv || !in_arena(&g->values[v]))
                continue;
            const graph_value *gv = &g->values[v];
            size_t esz = elem_bytes;
            size_t dsz = ferry_dtype_size(gv->dtype);
            /* Non-float intermediates (an unfolded Cast to i64) keep their own width. */
            if (gv->dtype != FERRY_F32 && gv->dtype != FERRY_F16 && gv->dtype != FERRY_BF16 &&
                dsz > esz)
                esz = dsz;
            int64_t numel = 1;
            for (int d = 0; d < gv->ndim; d++) {
                int64_t dim = graph_dim(gv->dims[d], max_batch);
                if (dim < 0 || (dim > 0 && numel > INT64_MAX / dim)) {
                    st = ferry_fail(FERRY_ESHAPE, "tensor '%s' has an invalid or too large shape",
                                    gv->name);
                    goto fail;
                }
                numel *= dim;
            }
            if ((uint64_t)numel > (SIZE_MAX - PLAN_ALIGN) / esz) {
                st = ferry_fail(FERRY_ESHAPE,
                                "tensor '%s' is too large (%lld elements of %zu bytes)", gv->name,
                                (long long)numel, esz);
                goto fail;
            }
            plan_region *rg = &regs[nr++];
            rg->value = v;
            rg->start = s;
            rg->end = end[v] < s ? s : end[v];
            rg->size = ((size_t)numel * esz + PLAN_ALIGN - 1) & ~(PLAN_ALIGN - 1);
            /* Regions placed so far whose lifetime overlaps, by offset. */
            int nl = 0;
            for (int j = 0; j < nr - 1; j++)
                if (regs[j].end >= rg->start && regs[j].start <= rg->end)
                    live[nl++] = &regs[j];
            qsort(live, (size_t)nl, sizeof *live, region_cmp_offset);
            size_t at = 0;
            for (int j = 0; j < nl; j++) {
                if (live[j]->offset >= at + rg->size)
                    break;
                if (live[j]->offset + live[j]->size > at)
                    at = live[j]->offset + live[j]->size;
            }
            rg->offset = at;
            out->offset[v] = at;
            if (at + rg->size < at) {
                st = ferry_fail(FERRY_ESHAPE, "arena for the graph overflows size_t");
                goto fail;
            }
            if (at + rg->size > out->arena_bytes)
                out->arena_bytes = at + rg->size;
        }
    }
    out->max_batch = max_batch;
    out->elem_bytes = elem_bytes;
    free(topo);
    free(end);
    free(regs);
    free(live);
    return FERRY_OK;
fail:
    free(topo);
    free(end);
    free(regs);
    free(live);
    graph_plan_free(out);
    return st;
}

void graph_plan_free(graph_plan *p)
{
    if (!p)
        return;
    free(p->order);
    free(p->offset);
    memset(p, 0, sizeof *p);
}
