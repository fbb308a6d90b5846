/*
 * views.c - Identity, Reshape, Flatten, Squeeze and Unsqueeze move no data: their output is the
 * input's bytes under another shape. This pass points such outputs at the
 * storage of their input's root (following chains of views), so that the
 * planner gives them no memory and the backends launch nothing for them.
 *
 * Two cases stay real copies, with the node left live: a view that writes
 * a graph output (the caller's buffer is the destination) and a view that
 * reads a graph input (the caller's buffer must not become an
 * intermediate's storage). Views of constants were folded before this pass.
 */
#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"

static int is_view(op_kind op)
{
    const op_def *d = op_def_of(op);
    return d && (d->flags & OPF_VIEW);
}

ferry_status graph_resolve_views(graph *g)
{
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const graph_node *n = &g->nodes[ni];
        if (n->dead || !is_view(n->op) || n->n_in < 1 || n->n_out < 1)
            continue;
        int in = n->in[0], out = n->out[0];
        if (in < 0 || out < 0)
            continue;
        graph_value *iv = &g->values[in], *ov = &g->values[out];
        if (iv->is_const || iv->is_sym || iv->is_input || ov->is_output)
            continue;
        if (iv->dtype != ov->dtype && ov->dtype != FERRY_DTYPE_UNDEFINED)
            return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): view changes dtype %s -> %s",
                              n->name, op_name(n->op), ferry_dtype_name(iv->dtype),
                              ferry_dtype_name(ov->dtype));
        /* Chains are resolved in node order, so the input's alias already
         * names its root; the loop guards against a malformed cycle. */
        int root = in, hops = 0;
        while (g->values[root].alias >= 0 && hops++ < g->n_values)
            root = g->values[root].alias;
        if (root == out || hops > g->n_values)
            return ferry_fail(FERRY_EINTERNAL, "node '%s' (%s): views form a cycle", n->name,
                              op_name(n->op));
        ov->alias = root;
    }
    return FERRY_OK;
}
