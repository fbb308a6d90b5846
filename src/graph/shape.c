/*
 * shape.c - dtype and shape of every node output, with the batch symbolic.
 *
 * FERRY_DIM_BATCH stands for the batch size N, which is unknown here and may
 * be anything >= 1. A shape rule is accepted only when it holds for every N:
 * so a batch dim broadcasts against itself or 1 (never a static k > 1), a
 * reshape may move N only as a whole dim, and nothing may reduce or
 * normalize across samples. Each value carries at most one batch dim.
 *
 * Runs after loading and again after the passes: it recomputes every live
 * node's outputs from its inputs and writes normalized attributes (axes made
 * non-negative) back, so that a second run changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "util/error.h"

#define B FERRY_DIM_BATCH

static void fmt_shape(char *buf, size_t len, int ndim, const int64_t *dims)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++) {
        if (dims[i] == B)
            at += (size_t)snprintf(buf + at, len - at, "%sN", i ? "," : "");
        else
            at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

static const char *dim_str(int64_t d, char *buf, size_t len)
{
    if (d == B)
        snprintf(buf, len, "N");
    else
        snprintf(buf, len, "%lld", (long long)d);
    return buf;
}

#define SHAPE_STR(name, v)                                                                         \
    char name[192];                                                                                \
    fmt_shape(name, sizeof name, (v)->ndim, (v)->dims)

static ferry_status node_fail(const graph_node *n, ferry_status st, const char *msg)
{
    return ferry_fail(st, "node '%s' (%s): %s", n->name, op_name(n->op), msg);
}

static int count_batch(int ndim, const int64_t *dims)
{
    int c = 0;
    for (int i = 0; i < ndim; i++)
        c += dims[i] == B;
    return c;
}

/* Product of the static dims in [lo, hi); *has_b set when N is among them.
 * -1 on overflow. */
static int64_t static_prod(const int64_t *dims, int lo, int hi, int *has_b)
{
    int64_t p = 1;
    *has_b = 0;
    for (int i = lo; i < hi; i++) {
        if (dims[i] == B) {
            *has_b = 1;
            continue;
        }
        if (dims[i] < 0 || (dims[i] > 0 && p > INT64_MAX / dims[i]))
            return -1;
        p *= dims[i];
    }
    return p;
}

/* Output of a value: sets dtype and dims. */
static void set_out(graph *g, int v, ferry_dtype dt, int ndim, const int64_t *dims)
{
    graph_value *o = &g->values[v];
    o->dtype = dt;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        o->dims[i] = dims[i];
    for (int i = ndim; i < FERRY_MAX_DIMS; i++)
        o->dims[i] = 0;
}

/* Multidirectional (numpy) broadcast of a and b into out. */
static ferry_status broadcast(const graph_node *n, const graph_value *a, const graph_value *b,
                              int *ndim, int64_t *out)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else {
            SHAPE_STR(sa, a);
            SHAPE_STR(sb, b);
            return ferry_fail(
                FERRY_ESHAPE, "node '%s' (%s): inputs '%s' %s and '%s' %s do not broadcast%s",
                n->name, op_name(n->op), a->name, sa, b->name, sb,
                (da == B || db == B) ? " (the batch N broadcasts only with N or 1)" : "");
        }
    }
    if (count_batch(r, out) > 1) {
        SHAPE_STR(sa, a);
        SHAPE_STR(sb, b);
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): broadcasting %s with %s gives more than one batch "
                          "dimension",
                          n->name, op_name(n->op), sa, sb);
    }
    *ndim = r;
    return FERRY_OK;
}

static int norm_axis(int64_t axis, int r, int inclusive_end, int64_t *out)
{
    int64_t hi = inclusive_end ? r : r - 1;
    if (axis < 0)
        axis += r;
    if (axis < 0 || axis > hi)
        return -1;
    *out = axis;
    return 0;
}

static ferry_status infer_gemm(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    char msg[512];
    /* From MatMul with a constant B, A may carry leading dims: [.., M, K]. */
    if (a->ndim < 2 || (a->ndim > 2 && n->trans_a) || b->ndim != 2) {
        SHAPE_STR(sa, a);
        SHAPE_STR(sb, b);
        snprintf(msg, sizeof msg, "inputs A %s and B %s must be 2-D", sa, sb);
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    if (b->dims[0] == B || b->dims[1] == B)
        return node_fail(n, FERRY_EUNSUPPORTED, "input B depends on the batch size");
    int64_t m = n->trans_a ? a->dims[1] : a->dims[a->ndim - 2];
    int64_t ka = n->trans_a ? a->dims[0] : a->dims[a->ndim - 1];
    int64_t kb = n->trans_b ? b->dims[1] : b->dims[0];
    int64_t nn = n->trans_b ? b->dims[0] : b->dims[1];
    if (ka != kb) {
        SHAPE_STR(sa, a);
        SHAPE_STR(sb, b);
        char k[24];
        dim_str(ka, k, sizeof k);
        snprintf(msg, sizeof msg, "input B has shape %s, expected %s%s%s (input A is %s%s)", sb,
                 n->trans_b ? "[*," : "[", k, n->trans_b ? "]" : ",*]", sa,
                 n->trans_a ? ", transposed" : "");
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    int64_t od[FERRY_MAX_DIMS];
    int r = a->ndim;
    for (int i = 0; i < r - 2; i++)
        od[i] = a->dims[i];
    od[r - 2] = m;
    od[r - 1] = nn;
    if (count_batch(r, od) > 1)
        return node_fail(n, FERRY_EUNSUPPORTED, "output would have two batch dimensions");
    if (n->n_in > 2 && n->in[2] >= 0) {
        const graph_value *c = &g->values[n->in[2]];
        /* C broadcasts one way, to [M, N]. */
        int ok = c->ndim <= 2;
        for (int i = 0; ok && i < c->ndim; i++) {
            int64_t dc = c->dims[i], dt = i - c->ndim == -2 ? m : nn;
            if (dc != 1 && dc != dt)
                ok = 0;
        }
        if (!ok || r != 2) {
            SHAPE_STR(sc, c);
            char dm[24];
            snprintf(msg, sizeof msg, "input C has shape %s, which does not broadcast to [%s,%lld]",
                     sc, dim_str(m, dm, sizeof dm), (long long)nn);
            return node_fail(n, FERRY_ESHAPE, msg);
        }
    }
    set_out(g, n->out[0], a->dtype, r, od);
    return FERRY_OK;
}

static ferry_status infer_matmul(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    char msg[512];
    if (a->ndim < 1 || b->ndim < 1)
        return node_fail(n, FERRY_ESHAPE, "inputs must have rank >= 1");
    /* Promote 1-D operands as numpy does, then drop the added dim. */
    graph_value pa = *a, pb = *b;
    if (pa.ndim == 1) {
        pa.dims[1] = pa.dims[0];
        pa.dims[0] = 1;
        pa.ndim = 2;
    }
    if (pb.ndim == 1) {
        pb.dims[1] = 1;
        pb.ndim = 2;
    }
    int64_t ka = pa.dims[pa.ndim - 1], kb = pb.dims[pb.ndim - 2];
    if (ka != kb) {
        SHAPE_STR(sa, a);
        SHAPE_STR(sb, b);
        char k[24];
        snprintf(msg, sizeof msg, "input B has shape %s, expected [..,%s,*] (input A is %s)", sb,
                 dim_str(ka, k, sizeof k), sa);
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    /* Batch dims broadcast like elementwise ops. */
    graph_value ba = pa, bb = pb;
    ba.ndim = pa.ndim - 2;
    bb.ndim = pb.ndim - 2;
    int64_t od[FERRY_MAX_DIMS + 2];
    int r;
    ferry_status st = broadcast(n, &ba, &bb, &r, od);
    if (st)
        return st;
    if (r + 2 > FERRY_MAX_DIMS)
        return node_fail(n, FERRY_EUNSUPPORTED, "output rank too large");
    /* [.., M, N], without the dims numpy added for 1-D operands */
    if (a->ndim > 1)
        od[r++] = pa.dims[pa.ndim - 2];
    if (b->ndim > 1)
        od[r++] = pb.dims[pb.ndim - 1];
    if (count_batch(r, od) > 1)
        return node_fail(n, FERRY_EUNSUPPORTED, "output would have two batch dimensions");
    set_out(g, n->out[0], a->dtype, r, od);
    return FERRY_OK;
}

static ferry_status infer_reshape(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    graph_value *o = &g->values[n->out[0]];
    char msg[512];
    int hb;
    int64_t xs = static_prod(x->dims, 0, x->ndim, &hb);
    if (xs < 0)
        return node_fail(n, FERRY_ESHAPE, "input shape overflows");
    int64_t t[FERRY_MAX_DIMS];
    int tn;
    if (n->n_in < 2 || n->in[1] < 0) {
        /* The shape input is gone (a pass dropped it): keep the resolved dims. */
        tn = o->ndim;
        for (int i = 0; i < tn; i++)
            t[i] = o->dims[i];
        int ob;
        int64_t os = static_prod(t, 0, tn, &ob);
        if (os != xs || ob != hb)
            return node_fail(n, FERRY_ESHAPE, "resolved output shape no longer matches the input");
        o->dtype = x->dtype;
        return FERRY_OK;
    }
    const graph_value *sv = &g->values[n->in[1]];
    if (!sv->is_const || sv->dtype != FERRY_I64 || sv->ndim > 1 || !sv->data)
        return node_fail(n, FERRY_EUNSUPPORTED, "the shape input must be a constant 1-D int64");
    int64_t cnt = graph_value_numel(sv, 1);
    if (cnt > FERRY_MAX_DIMS)
        return node_fail(n, FERRY_EUNSUPPORTED, "target rank too large");
    tn = (int)cnt;
    const int64_t *raw = sv->data;
    int infer = -1;
    for (int i = 0; i < tn; i++) {
        if (raw[i] == 0) {
            if (i >= x->ndim) {
                snprintf(msg, sizeof msg, "shape entry %d is 0 (copy) but the input has rank %d", i,
                         x->ndim);
                return node_fail(n, FERRY_ESHAPE, msg);
            }
            t[i] = x->dims[i];
        } else if (raw[i] == -1) {
            if (infer >= 0)
                return node_fail(n, FERRY_ESHAPE, "the shape has more than one -1");
            infer = i;
            t[i] = 1;
        } else if (raw[i] < -1) {
            snprintf(msg, sizeof msg, "shape entry %d is %lld", i, (long long)raw[i]);
            return node_fail(n, FERRY_ESHAPE, msg);
        } else {
            t[i] = raw[i];
        }
    }
    int tb;
    int64_t ts = static_prod(t, 0, tn, &tb);
    SHAPE_STR(sx, x);
    char st_[192];
    {
        size_t at = (size_t)snprintf(st_, sizeof st_, "[");
        for (int i = 0; i < tn && at < sizeof st_; i++)
            at += (size_t)snprintf(st_ + at, sizeof st_ - at, "%s%lld", i ? "," : "",
                                   (long long)raw[i]);
        if (at < sizeof st_)
            snprintf(st_ + at, sizeof st_ - at, "]");
    }
    if (ts < 0)
        return node_fail(n, FERRY_ESHAPE, "target shape overflows");
    if (hb && !tb) {
        /* N must land on the -1 as a whole dim. */
        if (infer < 0 || ts != xs) {
            snprintf(msg, sizeof msg,
                     "reshaping %s to %s does not keep the batch N as one dimension", sx, st_);
            return node_fail(n, FERRY_EUNSUPPORTED, msg);
        }
        t[infer] = B;
    } else {
        /* both or neither have N: per-sample element counts must agree */
        if (infer >= 0) {
            if (ts == 0 || xs % ts) {
                snprintf(msg, sizeof msg, "cannot reshape %s to %s", sx, st_);
                return node_fail(n, FERRY_ESHAPE, msg);
            }
            t[infer] = xs / ts;
        } else if (ts != xs) {
            snprintf(msg, sizeof msg, "cannot reshape %s (%lld elements%s) to %s", sx,
                     (long long)xs, hb ? " per sample" : "", st_);
            return node_fail(n, FERRY_ESHAPE, msg);
        }
    }
    set_out(g, n->out[0], x->dtype, tn, t);
    return FERRY_OK;
}

static ferry_status infer_flatten(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    char msg[512];
    if (norm_axis(n->axis, x->ndim, 1, &ax)) {
        snprintf(msg, sizeof msg, "axis %d is out of range for rank %d", n->axis, x->ndim);
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    n->axis = (int)ax;
    int64_t od[2];
    for (int part = 0; part < 2; part++) {
        int hb;
        int64_t p = part == 0 ? static_prod(x->dims, 0, (int)ax, &hb)
                              : static_prod(x->dims, (int)ax, x->ndim, &hb);
        if (p < 0)
            return node_fail(n, FERRY_ESHAPE, "shape overflows");
        if (hb && p != 1) {
            SHAPE_STR(sx, x);
            snprintf(msg, sizeof msg,
                     "flattening %s at axis %d merges the batch N with other dimensions", sx,
                     (int)ax);
            return node_fail(n, FERRY_EUNSUPPORTED, msg);
        }
        od[part] = hb ? B : p;
    }
    set_out(g, n->out[0], x->dtype, 2, od);
    return FERRY_OK;
}

static ferry_status infer_reduce_mean(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    char msg[256];
    int r = x->ndim;
    int mark[FERRY_MAX_DIMS] = {0};
    if (n->n_axes == 0) {
        for (int i = 0; i < r; i++)
            mark[i] = 1;
    }
    for (int i = 0; i < n->n_axes; i++) {
        int64_t a;
        if (norm_axis(n->axes[i], r, 0, &a)) {
            snprintf(msg, sizeof msg, "axis %lld is out of range for rank %d",
                     (long long)n->axes[i], r);
            return node_fail(n, FERRY_ESHAPE, msg);
        }
        if (mark[a])
            return node_fail(n, FERRY_EPARSE, "an axis is listed twice");
        mark[a] = 1;
    }
    n->n_axes = 0;
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < r; i++) {
        if (mark[i]) {
            if (x->dims[i] == B)
                return node_fail(n, FERRY_EUNSUPPORTED, "reduces over the batch dimension");
            n->axes[n->n_axes++] = i;
            if (n->keepdims)
                od[on++] = 1;
        } else {
            od[on++] = x->dims[i];
        }
    }
    set_out(g, n->out[0], x->dtype, on, od);
    return FERRY_OK;
}

static ferry_status infer_layer_norm(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    char msg[512];
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 0, &ax)) {
        snprintf(msg, sizeof msg, "axis %d is out of range for rank %d", n->axis, x->ndim);
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    n->axis = (int)ax;
    for (int i = (int)ax; i < x->ndim; i++)
        if (x->dims[i] == B)
            return node_fail(n, FERRY_EUNSUPPORTED, "normalizes over the batch dimension");
    /* scale and bias: the normalized shape, leading 1s allowed */
    for (int k = 1; k < n->n_in; k++) {
        if (n->in[k] < 0)
            continue;
        const graph_value *p = &g->values[n->in[k]];
        int ok = 1, nd = x->ndim - (int)ax;
        for (int i = 0; i < p->ndim && ok; i++) {
            int j = i - (p->ndim - nd);
            int64_t want = j >= 0 ? x->dims[ax + j] : 1;
            if (p->dims[i] != want)
                ok = 0;
        }
        if (!ok) {
            SHAPE_STR(sp, p);
            SHAPE_STR(sx, x);
            snprintf(msg, sizeof msg,
                     "input %s '%s' has shape %s; expected the normalized "
                     "dims of %s from axis %d",
                     k == 1 ? "scale" : "bias", p->name, sp, sx, (int)ax);
            return node_fail(n, FERRY_ESHAPE, msg);
        }
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

static ferry_status infer_softmax(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    char msg[256];
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 0, &ax)) {
        snprintf(msg, sizeof msg, "axis %d is out of range for rank %d", n->axis, x->ndim);
        return node_fail(n, FERRY_ESHAPE, msg);
    }
    if (x->dims[ax] == B)
        return node_fail(n, FERRY_EUNSUPPORTED, "normalizes over the batch dimension");
    /* Before opset 13, softmax flattened to 2-D at axis: the same only when
     * axis is the last dim. */
    if (g->opset > 0 && g->opset < 13 && ax != x->ndim - 1) {
        snprintf(msg, sizeof msg,
                 "axis %d with opset %lld (flatten semantics) is supported only on the last "
                 "dimension",
                 (int)ax, (long long)g->opset);
        return node_fail(n, FERRY_EUNSUPPORTED, msg);
    }
    n->axis = (int)ax;
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

static int is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

/* Inputs each op needs (min) and accepts (max); outputs exactly one. */
static void arity(op_kind op, int *lo, int *hi)
{
    switch (op) {
    case OP_GEMM: *lo = 2, *hi = 3; break;
    case OP_LAYER_NORM: *lo = 2, *hi = 3; break;
    case OP_MATMUL:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: *lo = 2, *hi = 2; break;
    case OP_RESHAPE: *lo = 1, *hi = 2; break;
    default: *lo = 1, *hi = 1; break;
    }
}

static ferry_status infer_node(graph *g, graph_node *n)
{
    int lo, hi;
    arity(n->op, &lo, &hi);
    if (n->n_in < lo || n->n_in > hi || n->n_out < 1)
        return node_fail(n, FERRY_EPARSE, "wrong number of inputs or outputs");
    for (int k = 0; k < lo; k++)
        if (n->in[k] < 0)
            return node_fail(n, FERRY_EPARSE, "a required input is missing");
    const graph_value *a = &g->values[n->in[0]];
    char msg[512];
    if (n->op != OP_CAST && n->op != OP_IDENTITY && n->op != OP_RESHAPE && n->op != OP_FLATTEN &&
        !is_float(a->dtype)) {
        snprintf(msg, sizeof msg, "input '%s' is %s; a floating-point type is required", a->name,
                 ferry_dtype_name(a->dtype));
        return node_fail(n, FERRY_EDTYPE, msg);
    }
    switch (n->op) {
    case OP_GEMM:
    case OP_MATMUL:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_LAYER_NORM:
        for (int k = 1; k < n->n_in; k++) {
            if (n->in[k] < 0)
                continue;
            const graph_value *b = &g->values[n->in[k]];
            if (b->dtype != a->dtype) {
                snprintf(msg, sizeof msg, "input '%s' is %s but '%s' is %s", a->name,
                         ferry_dtype_name(a->dtype), b->name, ferry_dtype_name(b->dtype));
                return node_fail(n, FERRY_EDTYPE, msg);
            }
        }
        break;
    default: break;
    }
    switch (n->op) {
    case OP_GEMM: return infer_gemm(g, n);
    case OP_MATMUL: return infer_matmul(g, n);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: {
        int64_t od[FERRY_MAX_DIMS];
        int r;
        ferry_status st = broadcast(n, a, &g->values[n->in[1]], &r, od);
        if (st)
            return st;
        set_out(g, n->out[0], a->dtype, r, od);
        return FERRY_OK;
    }
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT:
    case OP_IDENTITY: set_out(g, n->out[0], a->dtype, a->ndim, a->dims); return FERRY_OK;
    case OP_CAST: set_out(g, n->out[0], n->to, a->ndim, a->dims); return FERRY_OK;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX: return infer_softmax(g, n);
    case OP_LAYER_NORM: return infer_layer_norm(g, n);
    case OP_REDUCE_MEAN: return infer_reduce_mean(g, n);
    case OP_FLATTEN: return infer_flatten(g, n);
    case OP_RESHAPE: return infer_reshape(g, n);
    case OP_COUNT: break;
    }
    return node_fail(n, FERRY_EINTERNAL, "no shape rule");
}

ferry_status graph_infer_shapes(graph *g)
{
    if (!g)
        return ferry_fail(FERRY_EINVAL, "graph_infer_shapes: graph is NULL");
    ferry_status st = FERRY_OK;
    char *ready = calloc((size_t)g->n_values + 1, 1);
    if (!ready)
        return ferry_fail(FERRY_ENOMEM, "out of memory inferring shapes");
    for (int v = 0; v < g->n_values; v++)
        ready[v] = g->values[v].is_const || g->values[v].is_input;
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        if (n->n_in < 0 || n->n_in > GRAPH_MAX_IO || n->n_out < 0 || n->n_out > GRAPH_MAX_IO) {
            st = node_fail(n, FERRY_EINTERNAL, "bad input or output count");
            goto out;
        }
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < -1 || v >= g->n_values) {
                st = node_fail(n, FERRY_EINTERNAL, "input index out of range");
                goto out;
            }
            if (v >= 0 && !ready[v]) {
                st = ferry_fail(FERRY_EPARSE,
                                "node '%s' (%s): input '%s' is used before it is produced (the "
                                "nodes are not in topological order, or form a cycle)",
                                n->name, op_name(n->op), g->values[v].name);
                goto out;
            }
        }
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0 || v >= g->n_values) {
                st = node_fail(n, FERRY_EINTERNAL, "output index out of range");
                goto out;
            }
            if (g->values[v].is_input || g->values[v].is_const) {
                char msg[320];
                snprintf(msg, sizeof msg, "writes '%s', which is a graph input or a constant",
                         g->values[v].name);
                st = node_fail(n, FERRY_EPARSE, msg);
                goto out;
            }
        }
        if ((st = infer_node(g, n)) != FERRY_OK)
            goto out;
        for (int k = 0; k < n->n_out; k++)
            ready[n->out[k]] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->n_values || !ready[v]) {
            st = ferry_fail(FERRY_EPARSE, "output '%s' is never computed",
                            v >= 0 && v < g->n_values ? g->values[v].name : "?");
            goto out;
        }
    }
out:
    free(ready);
    return st;
}
