/*
 * introspect.c - the public description of a loaded model: producer, opset,
 * parameters, the operators that run and the fused plan, so that the CLI
 * and the Python package describe a model through ferry.h alone.
 *
 * It reads the graph (graph/graph.h) but never changes it: every function
 * here takes a const model, may run on any thread, and allocates only the
 * temporary plan of ferry_model_plan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"
#include "graph/ops.h"
#include "util/error.h"

const char *ferry_version(void)
{
    return FERRY_VERSION;
}

const char *ferry_model_producer(const ferry_model *m)
{
    return m && m->g->producer ? m->g->producer : "";
}

int64_t ferry_model_opset(const ferry_model *m)
{
    return m ? m->g->opset : 0;
}

int64_t ferry_model_param_count(const ferry_model *m)
{
    return m ? graph_param_count(m->g) : 0;
}

ferry_status ferry_model_ops(const ferry_model *m, ferry_op_count *ops, int cap, int *n_ops)
{
    if (!m || !n_ops || cap < 0 || (cap > 0 && !ops))
        return ferry_fail(FERRY_EINVAL, "ferry_model_ops: NULL argument or negative cap");
    int count[OP_COUNT] = {0};
    const graph *g = m->g;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op >= 0 && g->nodes[i].op < OP_COUNT)
            count[g->nodes[i].op]++;
    /* name order: a selection over at most OP_COUNT names, no allocation */
    int n = 0;
    const char *last = "";
    for (;;) {
        int best = -1;
        for (int k = 0; k < OP_COUNT; k++)
            if (count[k] && strcmp(op_name((op_kind)k), last) > 0 &&
                (best < 0 || strcmp(op_name((op_kind)k), op_name((op_kind)best)) < 0))
                best = k;
        if (best < 0)
            break;
        if (n < cap) {
            ops[n].op = op_name((op_kind)best);
            ops[n].count = count[best];
        }
        n++;
        last = op_name((op_kind)best);
    }
    *n_ops = n;
    return FERRY_OK;
}

/* "+bias", "+residual", "+relu": what fusion folded into the node. */
static void epilogue(const graph_node *n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    if (n->op == OP_GEMM && n->n_in > 2 && n->in[2] >= 0)
        at += (size_t)snprintf(buf + at, len - at, "+bias");
    if ((n->op == OP_CONV || n->op == OP_CONV_TRANSPOSE) && n->n_in > 3 && n->in[3] >= 0 &&
        at < len)
        at += (size_t)snprintf(buf + at, len - at, "+residual");
    if ((n->op == OP_GEMM || n->op == OP_CONV || n->op == OP_CONV_TRANSPOSE) && n->act && at < len)
        snprintf(buf + at, len - at, "+%s", act_name(n->act));
}

ferry_status ferry_model_plan(const ferry_model *m, ferry_step_info *steps, int cap, int *n_steps)
{
    if (!m || !n_steps || cap < 0 || (cap > 0 && !steps))
        return ferry_fail(FERRY_EINVAL, "ferry_model_plan: NULL argument or negative cap");
    const graph *g = m->g;
    graph_plan plan;
    ferry_status st = graph_plan_make(g, 1, 4, &plan);
    if (st != FERRY_OK)
        return ferry_fail_prefix(st, "planning model '%s'", m->path);
    for (int k = 0; k < plan.n_order && k < cap; k++) {
        const graph_node *n = &g->nodes[plan.order[k]];
        ferry_step_info *s = &steps[k];
        memset(s, 0, sizeof *s);
        s->op = op_name(n->op);
        s->name = n->name;
        epilogue(n, s->epilogue, sizeof s->epilogue);
        s->n_inputs = n->n_in;
        s->n_outputs = n->n_out;
        if (n->n_out > 0 && n->out[0] >= 0) {
            const graph_value *o = &g->values[n->out[0]];
            s->output.name = o->name;
            s->output.dtype = o->dtype;
            s->output.ndim = o->ndim;
            for (int d = 0; d < o->ndim; d++)
                s->output.shape[d] = o->dims[d];
        }
    }
    *n_steps = plan.n_order;
    graph_plan_free(&plan);
    return FERRY_OK;
}
