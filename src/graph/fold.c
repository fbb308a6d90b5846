/*
 * fold.c - constant folding: every live node whose inputs are all constants
 * is evaluated on the host once, at load time, and its output becomes a
 * constant. Exporters leave such nodes behind (weights stored in f16 and
 * Cast to f32, shape arithmetic, `1/sqrt(d)` scalars); folding them keeps
 * the backends from running work whose answer never changes.
 *
 * Semantics stay exact: float ops on f32/f16/bf16 data are computed in f32
 * (what a backend would do), on f64 data in f64, on integers in int64.
 * Nodes that write a graph output are never folded (the output keeps a
 * producer), and constants that become unreachable are left in place.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"
#include "util/half.h"

static int f_is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

static int f_is_int(ferry_dtype dt)
{
    return dt == FERRY_I32 || dt == FERRY_I64 || dt == FERRY_I8 || dt == FERRY_U8 ||
           dt == FERRY_BOOL;
}

/* Element i of a constant, as a double (exact for every supported dtype but
 * int64 beyond 2^53, which the integer path reads through get_i instead). */
static double get_f(const graph_value *v, int64_t i)
{
    const void *d = v->data;
    switch (v->dtype) {
    case FERRY_F32: return ((const float *)d)[i];
    case FERRY_F64: return ((const double *)d)[i];
    case FERRY_F16: return ferry_f16_to_f32(((const uint16_t *)d)[i]);
    case FERRY_BF16: return ferry_bf16_to_f32(((const uint16_t *)d)[i]);
    case FERRY_I32: return ((const int32_t *)d)[i];
    case FERRY_I64: return (double)((const int64_t *)d)[i];
    case FERRY_I8: return ((const int8_t *)d)[i];
    case FERRY_U8: return ((const uint8_t *)d)[i];
    case FERRY_BOOL: return ((const uint8_t *)d)[i] ? 1.0 : 0.0;
    default: return 0.0;
    }
}

static int64_t get_i(const graph_value *v, int64_t i)
{
    const void *d = v->data;
    switch (v->dtype) {
    case FERRY_I32: return ((const int32_t *)d)[i];
    case FERRY_I64: return ((const int64_t *)d)[i];
    case FERRY_I8: return ((const int8_t *)d)[i];
    case FERRY_U8: return ((const uint8_t *)d)[i];
    case FERRY_BOOL: return ((const uint8_t *)d)[i] ? 1 : 0;
    default: {
        double x = get_f(v, i);
        if (x != x)
            return 0;
        if (x >= 9.2233720368547758e18)
            return INT64_MAX;
        if (x <= -9.2233720368547758e18)
            return INT64_MIN;
        return (int64_t)x; /* ONNX Cast truncates toward zero */
    }
    }
}

static int64_t clamp_i(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* Stores x (a float result) as element i of dtype dt. */
static void put_f(ferry_dtype dt, void *d, int64_t i, double x)
{
    switch (dt) {
    case FERRY_F32: ((float *)d)[i] = (float)x; break;
    case FERRY_F64: ((double *)d)[i] = x; break;
    case FERRY_F16: ((uint16_t *)d)[i] = ferry_f32_to_f16((float)x); break;
    case FERRY_BF16: ((uint16_t *)d)[i] = ferry_f32_to_bf16((float)x); break;
    case FERRY_BOOL: ((uint8_t *)d)[i] = x != 0.0; break;
    default: {
        int64_t n;
        if (x != x)
            n = 0;
        else if (x >= 9.2233720368547758e18)
            n = INT64_MAX;
        else if (x <= -9.2233720368547758e18)
            n = INT64_MIN;
        else
            n = (int64_t)x;
        if (dt == FERRY_I64)
            ((int64_t *)d)[i] = n;
        else if (dt == FERRY_I32)
            ((int32_t *)d)[i] = (int32_t)clamp_i(n, INT32_MIN, INT32_MAX);
        else if (dt == FERRY_I8)
            ((int8_t *)d)[i] = (int8_t)clamp_i(n, INT8_MIN, INT8_MAX);
        else if (dt == FERRY_U8)
            ((uint8_t *)d)[i] = (uint8_t)clamp_i(n, 0, UINT8_MAX);
        break;
    }
    }
}

static void put_i(ferry_dtype dt, void *d, int64_t i, int64_t x)
{
    switch (dt) {
    case FERRY_I64: ((int64_t *)d)[i] = x; break;
    case FERRY_I32: ((int32_t *)d)[i] = (int32_t)clamp_i(x, INT32_MIN, INT32_MAX); break;
    case FERRY_I8: ((int8_t *)d)[i] = (int8_t)clamp_i(x, INT8_MIN, INT8_MAX); break;
    case FERRY_U8: ((uint8_t *)d)[i] = (uint8_t)clamp_i(x, 0, UINT8_MAX); break;
    case FERRY_BOOL: ((uint8_t *)d)[i] = x != 0; break;
    default: put_f(dt, d, i, (double)x); break;
    }
}

static int64_t numel_of(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= dims[i];
    return n;
}

/* The folded result of one node: dtype, shape and freshly allocated data. */
typedef struct folded {
    ferry_dtype dtype;
    int ndim;
    int64_t dims[FERRY_MAX_DIMS];
    void *data;
} folded;

static ferry_status alloc_result(const graph_node *n, folded *r)
{
    size_t es = ferry_dtype_size(r->dtype);
    int64_t cnt = numel_of(r->ndim, r->dims);
    if (es == 0)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): cannot fold dtype %s", n->name,
                          op_name(n->op), ferry_dtype_name(r->dtype));
    if (cnt < 0 || (uint64_t)cnt > SIZE_MAX / es)
        return ferry_fail(FERRY_ESHAPE, "node '%s' (%s): folded constant too large", n->name,
                          op_name(n->op));
    r->data = malloc(cnt ? (size_t)cnt * es : 1);
    if (!r->data)
        return ferry_fail(FERRY_ENOMEM, "node '%s' (%s): out of memory folding %lld elements",
                          n->name, op_name(n->op), (long long)cnt);
    return FERRY_OK;
}

/* Result shape of a view of constant x: what shape inference gave its
 * output. Returns 0 when that is not a static shape (not folded). */
static int view_shape(const graph *g, const graph_node *n, const graph_value *x, folded *r)
{
    const graph_value *out = &g->values[n->out[0]];
    if (out->ndim < 0 || numel_of(out->ndim, out->dims) != numel_of(x->ndim, x->dims))
        return 0;
    for (int i = 0; i < out->ndim; i++)
        if (out->dims[i] < 0)
            return 0;
    r->ndim = out->ndim;
    memcpy(r->dims, out->dims, sizeof r->dims);
    return 1;
}

static int broadcast_shape(const graph_value *a, const graph_value *b, folded *r)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return 0;
        r->dims[i] = da == 1 ? db : da;
    }
    r->ndim = nd;
    return 1;
}

/* Offset into v of output element coords (broadcast: size-1 dims repeat). */
static int64_t bcast_offset(const graph_value *v, int out_ndim, const int64_t *coord)
{
    int64_t off = 0;
    int lead = out_ndim - v->ndim;
    for (int i = 0; i < v->ndim; i++)
        off = off * v->dims[i] + (v->dims[i] == 1 ? 0 : coord[lead + i]);
    return off;
}

static double unary_f64(op_kind op, double x, double alpha)
{
    switch (op) {
    case OP_SQRT: return sqrt(x);
    case OP_ERF: return erf(x);
    case OP_RELU: return x > 0 ? x : 0.0;
    case OP_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case OP_TANH: return tanh(x);
    default: return x;
    }
}

static float unary_f32(op_kind op, float x, float alpha)
{
    switch (op) {
    case OP_SQRT: return sqrtf(x);
    case OP_ERF: return erff(x);
    case OP_RELU: return x > 0 ? x : 0.0f;
    case OP_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case OP_TANH: return tanhf(x);
    default: return x;
    }
}

static double binary_f64(op_kind op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return pow(a, b);
    default: return 0.0;
    }
}

static float binary_f32(op_kind op, float a, float b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return powf(a, b);
    default: return 0.0f;
    }
}

/* Integer arithmetic wraps like the hardware would; the caller rules out
 * division by zero. */
static int64_t binary_i64(op_kind op, int64_t a, int64_t b)
{
    switch (op) {
    case OP_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
    case OP_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_DIV: return (a == INT64_MIN && b == -1) ? INT64_MIN : a / b;
    default: return 0;
    }
}

static int is_unary(op_kind op)
{
    return op == OP_SQRT || op == OP_ERF || op == OP_RELU || op == OP_LEAKY_RELU ||
           op == OP_SIGMOID || op == OP_TANH;
}

static int is_binary(op_kind op)
{
    return op == OP_ADD || op == OP_SUB || op == OP_MUL || op == OP_DIV || op == OP_POW;
}

/* Evaluates node n of constant inputs into *r. *did is 0 when the node is
 * not one this pass folds (then r holds nothing). */
static ferry_status eval_node(const graph *g, const graph_node *n, folded *r, int *did)
{
    ferry_status st;
    *did = 0;
    memset(r, 0, sizeof *r);
    const graph_value *x = &g->values[n->in[0]];
    int64_t cnt = numel_of(x->ndim, x->dims);

    if (n->op == OP_IDENTITY || n->op == OP_RESHAPE || n->op == OP_FLATTEN || n->op == OP_SQUEEZE ||
        n->op == OP_UNSQUEEZE) {
        /* the output's shape is the shape rule's (run here too, for graphs
         * folded before shapes were inferred) */
        const op_def *d = op_def_of(n->op);
        if (d && d->infer && d->infer((graph *)g, (graph_node *)n) != FERRY_OK) {
            ferry_clear_error();
            return FERRY_OK;
        }
        if (!view_shape(g, n, x, r))
            return FERRY_OK;
        r->dtype = x->dtype;
        if ((st = alloc_result(n, r)) != FERRY_OK)
            return st;
        memcpy(r->data, x->data, (size_t)cnt * ferry_dtype_size(x->dtype));
        *did = 1;
        return FERRY_OK;
    }
    if (n->op == OP_CAST) {
        if (!ferry_dtype_size(n->to) || !ferry_dtype_size(x->dtype))
            return FERRY_OK;
        r->dtype = n->to;
        r->ndim = x->ndim;
        memcpy(r->dims, x->dims, sizeof r->dims);
        if ((st = alloc_result(n, r)) != FERRY_OK)
            return st;
        /* Float sources go through get_f so that Cast(0.5 -> bool) is true;
         * integer sources through get_i so that large int64 stay exact. */
        int via_float = f_is_float(x->dtype) && (f_is_float(n->to) || n->to == FERRY_BOOL);
        for (int64_t i = 0; i < cnt; i++) {
            if (via_float)
                put_f(n->to, r->data, i, get_f(x, i));
            else
                put_i(n->to, r->data, i, get_i(x, i));
        }
        *did = 1;
        return FERRY_OK;
    }
    if (is_unary(n->op)) {
        int relu_int = f_is_int(x->dtype) && n->op == OP_RELU;
        if (!f_is_float(x->dtype) && !relu_int)
            return FERRY_OK;
        r->dtype = x->dtype;
        r->ndim = x->ndim;
        memcpy(r->dims, x->dims, sizeof r->dims);
        if ((st = alloc_result(n, r)) != FERRY_OK)
            return st;
        for (int64_t i = 0; i < cnt; i++) {
            if (relu_int) {
                int64_t v = get_i(x, i);
                put_i(r->dtype, r->data, i, v > 0 ? v : 0);
            } else if (x->dtype == FERRY_F64) {
                put_f(r->dtype, r->data, i, unary_f64(n->op, get_f(x, i), n->alpha));
            } else {
                put_f(r->dtype, r->data, i, unary_f32(n->op, (float)get_f(x, i), n->alpha));
            }
        }
        *did = 1;
        return FERRY_OK;
    }
    if (is_binary(n->op)) {
        if (n->n_in < 2 || n->in[1] < 0)
            return FERRY_OK;
        const graph_value *y = &g->values[n->in[1]];
        int ints = f_is_int(x->dtype);
        if (ints && (n->op == OP_POW || !f_is_int(y->dtype)))
            return FERRY_OK; /* integer Pow and mixed types are left to the backend */
        if (!ints && !f_is_float(x->dtype))
            return FERRY_OK;
        if (!broadcast_shape(x, y, r))
            return FERRY_OK;
        int64_t ycnt = numel_of(y->ndim, y->dims);
        if (ints && n->op == OP_DIV)
            for (int64_t i = 0; i < ycnt; i++)
                if (get_i(y, i) == 0)
                    return FERRY_OK; /* leave the runtime error where it belongs */
        r->dtype = x->dtype;
        if ((st = alloc_result(n, r)) != FERRY_OK)
            return st;
        int64_t total = numel_of(r->ndim, r->dims), coord[FERRY_MAX_DIMS] = {0};
        for (int64_t i = 0; i < total; i++) {
            int64_t ia = bcast_offset(x, r->ndim, coord), ib = bcast_offset(y, r->ndim, coord);
            if (ints)
                put_i(r->dtype, r->data, i, binary_i64(n->op, get_i(x, ia), get_i(y, ib)));
            else if (x->dtype == FERRY_F64)
                put_f(r->dtype, r->data, i, binary_f64(n->op, get_f(x, ia), get_f(y, ib)));
            else
                put_f(r->dtype, r->data, i,
                      binary_f32(n->op, (float)get_f(x, ia), (float)get_f(y, ib)));
            for (int d = r->ndim - 1; d >= 0; d--) {
                if (++coord[d] < r->dims[d])
                    break;
                coord[d] = 0;
            }
        }
        *did = 1;
        return FERRY_OK;
    }
    return FERRY_OK;
}

static int foldable(const graph *g, const graph_node *n)
{
    if (n->dead || n->n_out < 1 || n->out[0] < 0 || n->n_in < 1 || n->in[0] < 0)
        return 0;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->values[n->out[k]].is_output)
            return 0; /* a graph output keeps its producer */
    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i] < 0)
            continue;
        const graph_value *v = &g->values[n->in[i]];
        if (!v->is_const || !v->data)
            return 0;
        for (int d = 0; d < v->ndim; d++)
            if (v->dims[d] < 0)
                return 0;
    }
    return 1;
}

/* Larger constants are left to run: folding is for shape math, casts of
 * weights, position ids, and it must not multiply a model's memory. */
#define FOLD_MAX_BYTES (64u << 20)

int graph_eval_node(graph *g, int ni, size_t max_bytes, void **outs)
{
    graph_node *n = &g->nodes[ni];
    const ferry_backend_ops *cpu = backend_find("cpu");
    const op_def *d = op_def_of(n->op);
    int ok = 0;
    for (int k = 0; k < n->n_out; k++)
        outs[k] = NULL;
    if (!cpu || !cpu->eval_node || !d || !(d->flags & OPF_FOLD))
        return 0;
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        const graph_value *o = &g->values[n->out[k]];
        int64_t cnt = numel_of(o->ndim, o->dims);
        size_t es = ferry_dtype_size(o->dtype);
        for (int i = 0; i < o->ndim; i++)
            if (o->dims[i] < 0)
                goto out;
        if (!es || cnt < 0 || (uint64_t)cnt * es > max_bytes)
            goto out;
        if (!(outs[k] = malloc(cnt ? (size_t)cnt * es : 1)))
            goto out;
    }
    /* not evaluable here (a dtype the kernels do not take): it runs */
    ok = cpu->eval_node(g, ni, outs) == FERRY_OK;
    if (!ok)
        ferry_clear_error();
out:
    for (int k = 0; !ok && k < n->n_out; k++) {
        free(outs[k]);
        outs[k] = NULL;
    }
    return ok;
}

/* Folds node ni through the CPU backend's kernels (ops that eval_node above
 * does not compute): all its outputs become constants. */
static void eval_generic(graph *g, int ni, int *did)
{
    graph_node *n = &g->nodes[ni];
    void *outs[GRAPH_MAX_IO];
    *did = graph_eval_node(g, ni, FOLD_MAX_BYTES, outs);
    for (int k = 0; *did && k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        graph_value *o = &g->values[n->out[k]];
        free(o->data);
        free(o->symk);
        o->symk = NULL;
        o->is_sym = 0;
        o->data = outs[k];
        o->is_const = 1;
        o->producer = -1;
        o->alias = -1;
    }
}

/* Shape math known at load (graph.h, is_sym) needs no producer: a value
 * with no N in it becomes a constant; one with N is written by the
 * backend at the start of each forward. */
static void settle_sym(graph *g, graph_node *n, int *did)
{
    *did = 0;
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        const graph_value *o = &g->values[n->out[k]];
        if (!o->is_sym || o->is_output)
            return;
    }
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        graph_value *o = &g->values[n->out[k]];
        int any_n = 0;
        for (int64_t i = 0; o->symk && i < numel_of(o->ndim, o->dims); i++)
            any_n |= o->symk[i] != 0;
        if (!any_n) {
            free(o->symk);
            o->symk = NULL;
            o->is_sym = 0;
            o->is_const = 1;
        }
        o->producer = -1;
        o->alias = -1;
    }
    *did = 1;
}

ferry_status graph_fold_constants(graph *g)
{
    /* Nodes are in topological order, so one sweep folds whole chains. */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        graph_node *n = &g->nodes[ni];
        int did;
        if (!n->dead && n->n_out >= 1) {
            settle_sym(g, n, &did);
            if (did) {
                for (int i = 0; i < n->n_in; i++)
                    if (n->in[i] >= 0)
                        g->values[n->in[i]].n_consumers--;
                n->dead = 1;
                continue;
            }
        }
        if (!foldable(g, n))
            continue;
        folded r;
        ferry_status st = eval_node(g, n, &r, &did);
        if (st != FERRY_OK)
            return st;
        if (!did) {
            eval_generic(g, ni, &did);
            if (did) {
                for (int i = 0; i < n->n_in; i++)
                    if (n->in[i] >= 0)
                        g->values[n->in[i]].n_consumers--;
                n->dead = 1;
            }
            continue;
        }
        graph_value *out = &g->values[n->out[0]];
        free(out->data);
        out->data = r.data;
        out->dtype = r.dtype;
        out->ndim = r.ndim;
        memset(out->dims, 0, sizeof out->dims);
        memcpy(out->dims, r.dims, (size_t)r.ndim * sizeof *r.dims);
        out->is_const = 1;
        out->producer = -1;
        out->alias = -1;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] >= 0)
                g->values[n->in[i]].n_consumers--;
        n->dead = 1;
    }
    return FERRY_OK;
}
