/*
 * introspect.c - the public description of a loaded model: producer, opset,
 * parameters, the operators that run and the fused plan, so that the CLI
 * and the Python package describe a model through ferry.h alone.
 *
 * It reads the graph (graph/graph.h) but never changes it: every function
 * here takes a const model, may run on any thread, and allocates only the
 * temporary plan of ferry_model_plan. ferry_summary wraps the loader's
 * onnx_summarize_file, for models that do not load.
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

/* "+bias", "+residual", "+relu", "+scale+mask", " (input projected at load)":
 * what fusion folded into the node. */
static void epilogue(const graph_node *n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    if (n->op == OP_GEMM && n->n_in > 2 && n->in[2] >= 0)
        at += (size_t)snprintf(buf + at, len - at, "+bias");
    if ((n->op == OP_CONV || n->op == OP_CONV_TRANSPOSE || n->op == OP_GEMM) && n->n_in > 3 &&
        n->in[3] >= 0 && at < len)
        at += (size_t)snprintf(buf + at, len - at, "+residual");
    if (n->op == OP_SOFTMAX && n->mode == 1) {
        if (n->alpha != 1.0f && at < len)
            at += (size_t)snprintf(buf + at, len - at, "+scale");
        if (n->n_in > 1 && n->in[1] >= 0 && at < len)
            at += (size_t)snprintf(buf + at, len - at, "+mask");
    }
    if ((n->op == OP_LSTM || n->op == OP_GRU) && n->x_projected && at < len) /* fuse_rnn.c */
        at += (size_t)snprintf(buf + at, len - at, " (input projected at load)");
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

/* ------------------------------------------------------------ summary */

struct ferry_summary {
    onnx_summary s;
};

ferry_status ferry_summary_load(const char *path, ferry_summary **out)
{
    if (!path || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_summary_load: NULL argument");
    *out = NULL;
    ferry_summary *s = malloc(sizeof *s);
    if (!s)
        return ferry_fail(FERRY_ENOMEM, "out of memory summarizing '%s'", path);
    ferry_status st = onnx_summarize_file(path, &s->s);
    if (st != FERRY_OK) {
        free(s);
        return st;
    }
    *out = s;
    return FERRY_OK;
}

void ferry_summary_destroy(ferry_summary *s)
{
    free(s);
}

const char *ferry_summary_producer(const ferry_summary *s)
{
    return s ? s->s.producer : "";
}

int64_t ferry_summary_opset(const ferry_summary *s)
{
    return s ? s->s.opset : 0;
}

int ferry_summary_num_nodes(const ferry_summary *s)
{
    return s ? s->s.n_nodes : 0;
}

int ferry_summary_num_inputs(const ferry_summary *s)
{
    return s ? s->s.n_inputs : 0;
}

int ferry_summary_num_outputs(const ferry_summary *s)
{
    return s ? s->s.n_outputs : 0;
}

static const onnx_summary_io *summary_io(const ferry_summary *s, int is_output, int i)
{
    if (!s || i < 0 || i >= (is_output ? s->s.n_outputs : s->s.n_inputs))
        return NULL;
    return is_output ? &s->s.outputs[i] : &s->s.inputs[i];
}

static ferry_status summary_info(const ferry_summary *s, int is_output, int i,
                                 ferry_tensor_info *out)
{
    const onnx_summary_io *io = summary_io(s, is_output, i);
    if (!io || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_summary_%s: %d out of range or NULL argument",
                          is_output ? "output" : "input", i);
    memset(out, 0, sizeof *out);
    out->name = io->name;
    out->dtype = io->dtype;
    out->ndim = io->ndim;
    for (int d = 0; d < io->ndim && d < FERRY_MAX_DIMS; d++)
        out->shape[d] = io->dims[d] >= 0 ? io->dims[d] : FERRY_DIM_BATCH;
    return FERRY_OK;
}

ferry_status ferry_summary_input(const ferry_summary *s, int i, ferry_tensor_info *out)
{
    return summary_info(s, 0, i, out);
}

ferry_status ferry_summary_output(const ferry_summary *s, int i, ferry_tensor_info *out)
{
    return summary_info(s, 1, i, out);
}

const char *ferry_summary_axis(const ferry_summary *s, int is_output, int i, int d)
{
    const onnx_summary_io *io = summary_io(s, is_output, i);
    if (!io || d < 0 || d >= io->ndim || d >= FERRY_MAX_DIMS)
        return NULL;
    return io->dims[d] >= 0 ? "" : io->sym[d];
}

int ferry_summary_num_ops(const ferry_summary *s)
{
    return s ? s->s.n_ops : 0;
}

ferry_status ferry_summary_op(const ferry_summary *s, int k, const char **name, int *count,
                              int *supported)
{
    if (!s || k < 0 || k >= s->s.n_ops)
        return ferry_fail(FERRY_EINVAL, "ferry_summary_op: operator %d out of range", k);
    if (name)
        *name = s->s.ops[k].name;
    if (count)
        *count = s->s.ops[k].count;
    if (supported)
        *supported = s->s.ops[k].supported;
    return FERRY_OK;
}

/* The rows of the first table that value v (or a cast or view of it)
 * indexes; 0 when none. */
static int64_t gather_rows(const graph *g, int v, int depth)
{
    if (depth > 8)
        return 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] != v)
                continue;
            if ((n->op == OP_GATHER && i == 1) || (n->op == OP_EMBEDDING_BAG && i == 1)) {
                const graph_value *t = &g->values[n->in[0]];
                int axis = n->op == OP_GATHER ? n->axis : 0;
                int64_t rows = t->dims[axis < 0 ? axis + t->ndim : axis];
                if (rows > 0)
                    return rows;
            }
            if (n->op == OP_CAST || n->op == OP_RESHAPE || n->op == OP_UNSQUEEZE ||
                n->op == OP_SQUEEZE || n->op == OP_FLATTEN || n->op == OP_IDENTITY) {
                int64_t r = gather_rows(g, n->out[0], depth + 1);
                if (r)
                    return r;
            }
        }
    }
    return 0;
}

ferry_status ferry_model_input_range(const ferry_model *m, int i, int64_t *lo, int64_t *hi)
{
    if (!m || !lo || !hi)
        return ferry_fail(FERRY_EINVAL, "ferry_model_input_range: NULL argument");
    if (i < 0 || i >= m->g->n_inputs)
        return ferry_fail(FERRY_EINVAL, "input %d: the model has %d", i, m->g->n_inputs);
    *lo = 0;
    *hi = gather_rows(m->g, m->g->inputs[i], 0);
    return FERRY_OK;
}
