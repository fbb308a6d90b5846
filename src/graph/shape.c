/*
 * shape.c - dtype and shape of every node output, with the batch symbolic;
 * the driver, the helpers every shape rule shares, and the rules of the
 * MLP-era operators (shape_nn.c and shape_data.c hold the others).
 *
 * A negative dim -k stands for k*N, N the batch size (graph.h). A rule is
 * accepted only when it holds for every N >= 1: a symbolic dim broadcasts
 * against itself or 1 (never a static k > 1), and nothing may reduce or
 * normalize across samples (a batch of 32 must give what 32 batches of one
 * give, or the dynamic batcher would change answers).
 *
 * Integer shape math (Shape -> Gather -> Concat -> Reshape) is evaluated
 * as the rules run, so that a Reshape sees its target as numbers and
 * multiples of N (graph.h's is_sym): the rules of the ops that take part
 * (shape_data.c, and infer_binary/infer_cast here) compute their output's
 * value whenever their inputs are known.
 *
 * Runs after loading and again after the passes: it recomputes every live
 * node's outputs from its inputs and writes normalized attributes (axes made
 * non-negative) back, so that a second run changes nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"
#include "util/format.h"

/* ------------------------------------------------------------ helpers */

void fmt_shape(char *buf, size_t len, int ndim, const int64_t *dims)
{
    ferry_shape_str(buf, len, ndim, dims);
}

const char *dim_str(int64_t d, char *buf, size_t len)
{
    fmt_shape(buf, len, 1, &d);
    size_t l = strlen(buf);
    memmove(buf, buf + 1, l); /* drop the brackets */
    if (l >= 2)
        buf[l - 2] = '\0';
    return buf;
}

#define SHAPE_STR(name, v)                                                                         \
    char name[192];                                                                                \
    fmt_shape(name, sizeof name, (v)->ndim, (v)->dims)

ferry_status node_fail(const graph_node *n, ferry_status st, const char *msg)
{
    return ferry_fail(st, "node '%s' (%s): %s", n->name, op_name(n->op), msg);
}

ferry_status node_failf(const graph_node *n, ferry_status st, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return node_fail(n, st, msg);
}

int is_float_dtype(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

int is_int_dtype(ferry_dtype dt)
{
    return dt == FERRY_I64 || dt == FERRY_I32 || dt == FERRY_I8 || dt == FERRY_U8;
}

/* numel as c * N^p; -1 on overflow. */
static int64_t sym_numel(int ndim, const int64_t *dims, int *p)
{
    int64_t c = 1;
    *p = 0;
    for (int i = 0; i < ndim; i++) {
        int64_t d = dims[i];
        if (d < 0) {
            (*p)++;
            d = -d;
        }
        if (d > 0 && c > INT64_MAX / d)
            return -1;
        c *= d;
    }
    return c;
}

/* Output of a value: sets dtype and dims. */
void set_out(graph *g, int v, ferry_dtype dt, int ndim, const int64_t *dims)
{
    graph_value *o = &g->values[v];
    o->dtype = dt;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        o->dims[i] = dims[i];
    for (int i = ndim; i < FERRY_MAX_DIMS; i++)
        o->dims[i] = 0;
    o->bpos = 0;
    o->bpos_tuple = 0;
}

ferry_status broadcast_dims(const graph_node *n, const graph_value *a, const graph_value *b,
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
                (da < 0 || db < 0) ? " (the batch N broadcasts only with N or 1)" : "");
        }
    }
    *ndim = r;
    return FERRY_OK;
}

int norm_axis(int64_t axis, int r, int inclusive_end, int64_t *out)
{
    int64_t hi = inclusive_end ? r : r - 1;
    if (axis < 0)
        axis += r + (inclusive_end ? 0 : 0);
    if (axis < 0 || axis > hi)
        return -1;
    *out = axis;
    return 0;
}

ferry_status known_ints(const graph *g, const graph_node *n, int k, const char *what,
                        const int64_t **vals, const int64_t **ks, int64_t *count)
{
    /* an input left out by an empty name where this rule needs it (Slice's
     * starts and ends are optional to the loader: opset 1 had attributes) */
    if (k >= n->n_in || n->in[k] < 0)
        return node_failf(n, FERRY_EPARSE, "%s (input %d) is missing", what, k);
    const graph_value *v = &g->values[n->in[k]];
    if (v->dtype != FERRY_I64 || v->ndim > 1)
        return node_failf(n, FERRY_EPARSE, "%s '%s' must be a 1-D int64 tensor", what, v->name);
    if (!(v->is_const || v->is_sym) || !v->data)
        return node_failf(n, FERRY_EUNSUPPORTED,
                          "%s '%s' is computed from the data at run time; only values known "
                          "when the model loads (constants, or computed from shapes) are "
                          "supported",
                          what, v->name);
    *vals = v->data;
    *ks = v->is_sym ? v->symk : NULL;
    *count = v->ndim ? v->dims[0] : 1;
    if (*count < 0)
        return node_failf(n, FERRY_EUNSUPPORTED, "%s '%s' has a length that depends on the batch",
                          what, v->name);
    return FERRY_OK;
}

ferry_status const_ints(const graph *g, const graph_node *n, int k, const char *what,
                        const int64_t **vals, int64_t *count)
{
    const int64_t *ks = NULL;
    ferry_status st = known_ints(g, n, k, what, vals, &ks, count);
    if (st)
        return st;
    for (int64_t i = 0; ks && i < *count; i++)
        if (ks[i])
            return node_failf(n, FERRY_EUNSUPPORTED, "%s '%s' depends on the batch size", what,
                              g->values[n->in[k]].name);
    return FERRY_OK;
}

int known_const(const graph_value *v)
{
    if (!v->data || !(v->is_const || v->is_sym))
        return 0;
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] < 0)
            return 0;
    if (v->is_sym && v->symk)
        for (int64_t i = 0; i < graph_value_numel(v, 1); i++)
            if (v->symk[i])
                return 0;
    return 1;
}

ferry_status const_float(const graph *g, const graph_node *n, int k, const char *what, float *out)
{
    const graph_value *v = &g->values[n->in[k]];
    if (!known_const(v) || graph_value_numel(v, 1) != 1)
        return node_failf(n, FERRY_EUNSUPPORTED, "%s '%s' must be a constant scalar", what,
                          v->name);
    switch (v->dtype) {
    case FERRY_F32: *out = *(const float *)v->data; return FERRY_OK;
    case FERRY_F64: *out = (float)*(const double *)v->data; return FERRY_OK;
    case FERRY_I64: *out = (float)*(const int64_t *)v->data; return FERRY_OK;
    case FERRY_I32: *out = (float)*(const int32_t *)v->data; return FERRY_OK;
    default:
        return node_failf(n, FERRY_EUNSUPPORTED, "%s '%s' is %s; f32 or an integer is supported",
                          what, v->name, ferry_dtype_name(v->dtype));
    }
}

int sym_i64(const graph_value *v)
{
    return v->is_sym && v->dtype == FERRY_I64 && v->data;
}

ferry_status set_sym(graph *g, const graph_node *n, int64_t count, const int64_t *vals,
                     const int64_t *ks, int ndim, const int64_t *dims)
{
    graph_value *o = &g->values[n->out[0]];
    size_t bytes = sizeof(int64_t) * (size_t)(count ? count : 1);
    int64_t *d = malloc(bytes), *k = malloc(bytes);
    if (!d || !k) {
        free(d);
        free(k);
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < count; i++) {
        d[i] = vals[i];
        k[i] = ks ? ks[i] : 0;
    }
    free(o->data);
    free(o->symk);
    o->data = d;
    o->symk = k;
    o->is_sym = 1;
    set_out(g, n->out[0], FERRY_I64, ndim, dims);
    return FERRY_OK;
}

/* ------------------------------------------------- the MLP-era ops' rules */

ferry_status infer_gemm(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    /* From MatMul with a constant B, A may carry leading dims: [.., M, K]. */
    if (a->ndim < 2 || (a->ndim > 2 && n->trans_a) || b->ndim != 2) {
        SHAPE_STR(sa, a);
        SHAPE_STR(sb, b);
        return node_failf(n, FERRY_ESHAPE, "inputs A %s and B %s must be 2-D", sa, sb);
    }
    if (b->dims[0] < 0 || b->dims[1] < 0)
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
        return node_failf(n, FERRY_ESHAPE,
                          "input B has shape %s, expected %s%s%s (input A is %s%s)", sb,
                          n->trans_b ? "[*," : "[", k, n->trans_b ? "]" : ",*]", sa,
                          n->trans_a ? ", transposed" : "");
    }
    int64_t od[FERRY_MAX_DIMS];
    int r = a->ndim;
    for (int i = 0; i < r - 2; i++)
        od[i] = a->dims[i];
    od[r - 2] = m;
    od[r - 1] = nn;
    if (n->n_in > 2 && n->in[2] >= 0) {
        const graph_value *c = &g->values[n->in[2]];
        /* C broadcasts one way, to [M, N]; on a rank > 2 A (a MatMul + Add
         * of nn.Linear on [N,T,D]) only as a row, the same for every row. */
        int ok = c->ndim <= 2;
        for (int i = 0; ok && i < c->ndim; i++) {
            int64_t dc = c->dims[i], dt = i - c->ndim == -2 ? m : nn;
            if (dc != 1 && dc != dt)
                ok = 0;
            if (r > 2 && i - c->ndim == -2 && dc != 1)
                ok = 0;
        }
        if (!ok) {
            SHAPE_STR(sc, c);
            char dm[24];
            return node_failf(n, FERRY_ESHAPE,
                              "input C has shape %s, which does not broadcast to [%s,%lld]", sc,
                              dim_str(m, dm, sizeof dm), (long long)nn);
        }
    }
    set_out(g, n->out[0], a->dtype, r, od);
    return FERRY_OK;
}

ferry_status infer_matmul(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
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
        return node_failf(n, FERRY_ESHAPE,
                          "input B has shape %s, expected [..,%s,*] (input A is %s)", sb,
                          dim_str(ka, k, sizeof k), sa);
    }
    /* Batch dims broadcast like elementwise ops. */
    graph_value ba = pa, bb = pb;
    ba.ndim = pa.ndim - 2;
    bb.ndim = pb.ndim - 2;
    int64_t od[FERRY_MAX_DIMS + 2];
    int r;
    ferry_status st = broadcast_dims(n, &ba, &bb, &r, od);
    if (st)
        return st;
    if (r + 2 > FERRY_MAX_DIMS)
        return node_fail(n, FERRY_EUNSUPPORTED, "output rank too large");
    /* [.., M, N], without the dims numpy added for 1-D operands */
    if (a->ndim > 1)
        od[r++] = pa.dims[pa.ndim - 2];
    if (b->ndim > 1)
        od[r++] = pb.dims[pb.ndim - 1];
    set_out(g, n->out[0], a->dtype, r, od);
    return FERRY_OK;
}

static int is_compare(op_kind op)
{
    return op == OP_EQUAL || op == OP_LESS || op == OP_LESS_EQUAL || op == OP_GREATER ||
           op == OP_GREATER_EQUAL;
}

static int is_logical(op_kind op)
{
    return op == OP_AND || op == OP_OR || op == OP_XOR;
}

/* Shape math on known int64 operands: a + k*N op b + j*N, where the result
 * is again of that form (or the comparison holds for every N). -1 when it
 * is not. */
static int sym_binary(op_kind op, int64_t a, int64_t ka, int64_t b, int64_t kb, int64_t *r,
                      int64_t *kr)
{
    *kr = 0;
    /* values from a file: overflow is "not decidable" (runs), never UB */
    int64_t t1, t2;
    switch (op) {
    case OP_ADD:
        return __builtin_add_overflow(a, b, r) || __builtin_add_overflow(ka, kb, kr) ? -1 : 0;
    case OP_SUB:
        return __builtin_sub_overflow(a, b, r) || __builtin_sub_overflow(ka, kb, kr) ? -1 : 0;
    case OP_MUL:
        if (ka && kb)
            return -1;
        if (__builtin_mul_overflow(a, b, r) || __builtin_mul_overflow(ka, b, &t1) ||
            __builtin_mul_overflow(kb, a, &t2) || __builtin_add_overflow(t1, t2, kr))
            return -1;
        return 0;
    case OP_DIV:
        if (kb || b == 0 || b == -1)
            return -1;
        if (ka % b || a % b)
            return -1;
        *r = a / b, *kr = ka / b;
        return 0;
    case OP_EQUAL:
        if (ka == kb) {
            *r = a == b;
            return 0;
        }
        /* a + ka*N == b + kb*N for some N >= 1 only if (b-a)/(ka-kb) is one */
        if (__builtin_sub_overflow(b, a, &t1) || __builtin_sub_overflow(ka, kb, &t2) || t2 == -1 ||
            (t1 % t2 == 0 && t1 / t2 >= 1))
            return -1;
        *r = 0;
        return 0;
    case OP_LESS:
    case OP_GREATER:
    case OP_LESS_EQUAL:
    case OP_GREATER_EQUAL: {
        /* d(N) = (a-b) + (ka-kb)*N, decided when its sign is the same for all N >= 1 */
        int64_t c, k;
        if (__builtin_sub_overflow(a, b, &c) || __builtin_sub_overflow(ka, kb, &k) ||
            __builtin_add_overflow(c, k, &t1))
            return -1;
        int neg, zero, pos;
        if (k == 0)
            neg = c<0, zero = c == 0, pos = c> 0;
        else if (k > 0 && c + k > 0)
            neg = 0, zero = 0, pos = 1;
        else if (k < 0 && c + k < 0)
            neg = 1, zero = 0, pos = 0;
        else
            return -1;
        *r = op == OP_LESS         ? neg
             : op == OP_GREATER    ? pos
             : op == OP_LESS_EQUAL ? neg || zero
                                   : pos || zero;
        return 0;
    }
    default: return -1;
    }
}

/* Elementwise shape math when both inputs are known int64 values. */
static ferry_status sym_eval_binary(graph *g, graph_node *n, const int64_t *od, int r)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    if (!(a->is_const || a->is_sym) || !(b->is_const || b->is_sym) || a->dtype != FERRY_I64 ||
        b->dtype != FERRY_I64 || !a->data || !b->data)
        return FERRY_OK;
    int64_t na = graph_value_numel(a, 1), nb = graph_value_numel(b, 1);
    for (int i = 0; i < r; i++)
        if (od[i] < 0)
            return FERRY_OK;
    int64_t cnt = 1;
    for (int i = 0; i < r; i++)
        cnt *= od[i];
    if (cnt > 64 || a->ndim > 1 || b->ndim > 1 || (na != cnt && na != 1) || (nb != cnt && nb != 1))
        return FERRY_OK; /* shape math is small and flat; anything else runs */
    int64_t v[64], k[64];
    const int64_t *ad = a->data, *bd = b->data;
    for (int64_t i = 0; i < cnt; i++) {
        int64_t ia = na == 1 ? 0 : i, ib = nb == 1 ? 0 : i;
        int64_t ka = a->symk ? a->symk[ia] : 0, kb = b->symk ? b->symk[ib] : 0;
        if (sym_binary(n->op, ad[ia], ka, bd[ib], kb, &v[i], &k[i]))
            return FERRY_OK; /* not decidable at load: computed at run time */
    }
    ferry_dtype dt = g->values[n->out[0]].dtype;
    ferry_status st = set_sym(g, n, cnt, v, k, r, od);
    g->values[n->out[0]].dtype = dt;
    if (dt == FERRY_BOOL) {
        /* comparisons: a known bool tensor, stored as bytes */
        graph_value *o = &g->values[n->out[0]];
        uint8_t *bb = malloc((size_t)cnt + 1);
        if (!bb)
            return ferry_fail(FERRY_ENOMEM, "out of memory");
        for (int64_t i = 0; i < cnt; i++)
            bb[i] = (uint8_t)v[i];
        free(o->data);
        free(o->symk);
        o->data = bb; /* known at load, with no N in it: symk NULL */
        o->symk = NULL;
    }
    return st;
}

ferry_status infer_binary(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    ferry_dtype adt = a->dtype, bdt = b->dtype;
    if (n->op == OP_POW) {
        if (!is_float_dtype(adt))
            return node_failf(n, FERRY_EDTYPE,
                              "input '%s' is %s; a floating-point type is required", a->name,
                              ferry_dtype_name(adt));
    } else if (is_logical(n->op)) {
        if (adt != FERRY_BOOL || bdt != FERRY_BOOL)
            return node_failf(n, FERRY_EDTYPE, "inputs '%s' (%s) and '%s' (%s) must be bool",
                              a->name, ferry_dtype_name(adt), b->name, ferry_dtype_name(bdt));
    } else if (adt != bdt) {
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s but '%s' is %s", a->name,
                          ferry_dtype_name(adt), b->name, ferry_dtype_name(bdt));
    } else if (adt == FERRY_BOOL && n->op != OP_EQUAL) {
        return node_failf(n, FERRY_EDTYPE, "input '%s' is bool", a->name);
    }
    int64_t od[FERRY_MAX_DIMS];
    int r;
    ferry_status st = broadcast_dims(n, a, b, &r, od);
    if (st)
        return st;
    ferry_dtype out = is_compare(n->op) || is_logical(n->op) ? FERRY_BOOL : adt;
    set_out(g, n->out[0], out, r, od);
    return sym_eval_binary(g, n, od, r);
}

ferry_status infer_same(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    int view = n->op == OP_IDENTITY;
    int signed_ok = n->op == OP_NEG || n->op == OP_ABS || n->op == OP_SIGN;
    if (!view && !is_float_dtype(a->dtype) && !(signed_ok && is_int_dtype(a->dtype)))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          a->name, ferry_dtype_name(a->dtype));
    set_out(g, n->out[0], a->dtype, a->ndim, a->dims);
    /* shape math passes through Identity, and so does a small int64
     * constant (YOLOS's interpolation sizes are Concat(Identity(constant),
     * computed dims)) */
    int small_i64 = a->is_const && a->data && a->dtype == FERRY_I64 && a->ndim <= 1 &&
                    graph_value_numel(a, 1) <= 64;
    if (view && (sym_i64(a) || small_i64))
        return set_sym(g, n, graph_value_numel(a, 1), a->data, a->symk, a->ndim, a->dims);
    /* and so does any other small known value, as eval_known (which skips
     * Identity) would make it: torch exports clamp(x, param_lo, param_hi)
     * as Clip(x, Identity(lo), hi), whose bounds are read at load */
    int64_t elems = graph_value_numel(a, 1);
    if (view && known_const(a) && elems <= 64) {
        graph_value *o = &g->values[n->out[0]];
        size_t bytes = (size_t)elems * ferry_dtype_size(a->dtype);
        void *d = malloc(bytes ? bytes : 1);
        if (!d)
            return node_fail(n, FERRY_ENOMEM, "out of memory");
        memcpy(d, a->data, bytes);
        free(o->data);
        free(o->symk);
        o->data = d, o->symk = NULL, o->is_sym = 1;
        return FERRY_OK;
    }
    if (n->op == OP_NEG && sym_i64(a) && a->ndim <= 1 && a->dims[0] >= 0) {
        int64_t cnt = graph_value_numel(a, 1), v[64], k[64];
        if (cnt > 64)
            return FERRY_OK;
        for (int64_t i = 0; i < cnt; i++)
            v[i] = -((const int64_t *)a->data)[i], k[i] = a->symk ? -a->symk[i] : 0;
        return set_sym(g, n, cnt, v, k, a->ndim, a->dims);
    }
    return FERRY_OK;
}

ferry_status infer_cast(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    set_out(g, n->out[0], n->to, a->ndim, a->dims);
    /* int64 -> int64 of shape math stays known; a known bool or float is
     * converted by eval_known, which runs the Cast itself */
    if (sym_i64(a) && n->to == FERRY_I64)
        return set_sym(g, n, graph_value_numel(a, 1), a->data, a->symk, a->ndim, a->dims);
    return FERRY_OK;
}

/* Reductions (ReduceMean/Sum/Max/...): axes from the attribute or input 1,
 * normalized into n->axes; never over the batch. */
ferry_status infer_reduce(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    /* int64 where the result stays an integer: x.std()'s export takes the
     * element count as ReduceProd of a Gather of its Shape. */
    int int_ok = n->op == OP_REDUCE_SUM || n->op == OP_REDUCE_MAX || n->op == OP_REDUCE_MIN ||
                 n->op == OP_REDUCE_PROD || n->op == OP_REDUCE_L1 || n->op == OP_REDUCE_SUM_SQUARE;
    if (!is_float_dtype(x->dtype) && !(x->dtype == FERRY_I64 && int_ok))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          x->name, ferry_dtype_name(x->dtype));
    if (n->n_in > 1 && n->in[1] >= 0) {
        const int64_t *vals;
        int64_t cnt;
        ferry_status st = const_ints(g, n, 1, "axes", &vals, &cnt);
        if (st)
            return st;
        if (cnt > FERRY_MAX_DIMS)
            return node_failf(n, FERRY_EUNSUPPORTED, "%lld axes", (long long)cnt);
        for (int64_t i = 0; i < cnt; i++)
            n->axes[i] = vals[i];
        n->n_axes = (int)cnt;
        n->n_in = 1; /* resolved: the axes now live in the node */
        g->values[n->in[1]].n_consumers--;
        n->in[1] = -1;
    }
    int mark[FERRY_MAX_DIMS] = {0};
    if (n->n_axes == 0) {
        if (n->mode) { /* noop_with_empty_axes */
            set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
            n->op = OP_IDENTITY;
            return FERRY_OK;
        }
        for (int i = 0; i < r; i++)
            mark[i] = 1;
    }
    for (int i = 0; i < n->n_axes; i++) {
        int64_t a;
        if (norm_axis(n->axes[i], r, 0, &a))
            return node_failf(n, FERRY_ESHAPE, "axis %lld is out of range for rank %d",
                              (long long)n->axes[i], r);
        if (mark[a])
            return node_fail(n, FERRY_EPARSE, "an axis is listed twice");
        mark[a] = 1;
    }
    n->n_axes = 0;
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < r; i++) {
        if (mark[i]) {
            if (x->dims[i] < 0)
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

ferry_status infer_layer_norm(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    if (!is_float_dtype(x->dtype))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          x->name, ferry_dtype_name(x->dtype));
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    n->axis = (int)ax;
    for (int i = (int)ax; i < x->ndim; i++)
        if (x->dims[i] < 0)
            return node_fail(n, FERRY_EUNSUPPORTED, "normalizes over the batch dimension");
    /* scale and bias: the normalized shape, leading 1s allowed */
    for (int k = 1; k < n->n_in; k++) {
        if (n->in[k] < 0)
            continue;
        const graph_value *p = &g->values[n->in[k]];
        if (p->dtype != x->dtype)
            return node_failf(n, FERRY_EDTYPE, "input '%s' is %s but '%s' is %s", x->name,
                              ferry_dtype_name(x->dtype), p->name, ferry_dtype_name(p->dtype));
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
            return node_failf(n, FERRY_ESHAPE,
                              "input %s '%s' has shape %s; expected the normalized dims of %s "
                              "from axis %d",
                              k == 1 ? "scale" : "bias", p->name, sp, sx, (int)ax);
        }
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

ferry_status infer_softmax(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    if (!is_float_dtype(x->dtype))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          x->name, ferry_dtype_name(x->dtype));
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    if (x->dims[ax] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "normalizes over the batch dimension");
    /* Before opset 13, softmax flattened to 2-D at axis: the same only when
     * axis is the last dim. */
    if (g->opset > 0 && g->opset < 13 && ax != x->ndim - 1)
        return node_failf(n, FERRY_EUNSUPPORTED,
                          "axis %d with opset %lld (flatten semantics) is supported only on the "
                          "last dimension",
                          (int)ax, (long long)g->opset);
    n->axis = (int)ax;
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

ferry_status infer_flatten(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 1, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    n->axis = (int)ax;
    int64_t od[2];
    for (int part = 0; part < 2; part++) {
        int p;
        int64_t c = part == 0 ? sym_numel((int)ax, x->dims, &p)
                              : sym_numel(x->ndim - (int)ax, x->dims + ax, &p);
        if (c < 0)
            return node_fail(n, FERRY_ESHAPE, "shape overflows");
        if (p > 1) {
            SHAPE_STR(sx, x);
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "flattening %s at axis %d multiplies batch dimensions together", sx,
                              (int)ax);
        }
        od[part] = p ? -c : c;
    }
    set_out(g, n->out[0], x->dtype, 2, od);
    if (sym_i64(x))
        return set_sym(g, n, graph_value_numel(x, 1), x->data, x->symk, 2, od);
    return FERRY_OK;
}

/* Reshape: the target is known at load (constant, or shape math giving
 * numbers and multiples of N). Entries: k*N (a symbolic dim), 0 (copy the
 * input's dim, unless allowzero), -1 (inferred), or a number. */
ferry_status infer_reshape(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    graph_value *o = &g->values[n->out[0]];
    int px;
    int64_t cx = sym_numel(x->ndim, x->dims, &px);
    if (cx < 0)
        return node_fail(n, FERRY_ESHAPE, "input shape overflows");
    int64_t t[FERRY_MAX_DIMS];
    int tn;
    if (n->n_in < 2 || n->in[1] < 0) {
        /* The shape input is gone (a pass dropped it): keep the resolved dims. */
        int po;
        int64_t co = sym_numel(o->ndim, o->dims, &po);
        if (co != cx || po != px)
            return node_fail(n, FERRY_ESHAPE, "resolved output shape no longer matches the input");
        o->dtype = x->dtype;
        return FERRY_OK;
    }
    const int64_t *raw, *ks;
    int64_t cnt;
    ferry_status st = known_ints(g, n, 1, "the shape input", &raw, &ks, &cnt);
    if (st)
        return st;
    if (cnt > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "target rank %lld; at most %d", (long long)cnt,
                          FERRY_MAX_DIMS);
    tn = (int)cnt;
    char st_[192];
    {
        size_t at = (size_t)snprintf(st_, sizeof st_, "[");
        for (int i = 0; i < tn && at < sizeof st_; i++) {
            if (ks && ks[i])
                at += (size_t)snprintf(st_ + at, sizeof st_ - at, "%s%lldN%+lld", i ? "," : "",
                                       (long long)ks[i], (long long)raw[i]);
            else
                at += (size_t)snprintf(st_ + at, sizeof st_ - at, "%s%lld", i ? "," : "",
                                       (long long)raw[i]);
        }
        if (at < sizeof st_)
            snprintf(st_ + at, sizeof st_ - at, "]");
    }
    int infer = -1;
    for (int i = 0; i < tn; i++) {
        int64_t k = ks ? ks[i] : 0;
        if (k) {
            if (k < 0 || raw[i] != 0)
                return node_failf(n, FERRY_EUNSUPPORTED,
                                  "target %s: entry %d is not a whole multiple of the batch N", st_,
                                  i);
            t[i] = -k;
        } else if (raw[i] == 0 && !n->mode) {
            if (i >= x->ndim)
                return node_failf(n, FERRY_ESHAPE,
                                  "shape entry %d is 0 (copy) but the input has rank %d", i,
                                  x->ndim);
            t[i] = x->dims[i];
        } else if (raw[i] == -1) {
            if (infer >= 0)
                return node_fail(n, FERRY_ESHAPE, "the shape has more than one -1");
            infer = i;
            t[i] = 1;
        } else if (raw[i] < 0) {
            return node_failf(n, FERRY_ESHAPE, "shape entry %d is %lld", i, (long long)raw[i]);
        } else {
            t[i] = raw[i];
        }
    }
    if (n->mode && cx == 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "allowzero with an empty tensor is not supported");
    int pt;
    int64_t ct = sym_numel(tn, t, &pt);
    SHAPE_STR(sx, x);
    if (ct < 0)
        return node_fail(n, FERRY_ESHAPE, "target shape overflows");
    if (infer >= 0) {
        if (ct == 0 || cx % ct || px - pt < 0 || px - pt > 1)
            return node_failf(n, px - pt > 1 ? FERRY_EUNSUPPORTED : FERRY_ESHAPE,
                              "cannot reshape %s to %s", sx, st_);
        t[infer] = px - pt ? -(cx / ct) : cx / ct;
    } else if (ct != cx || pt != px) {
        return node_failf(n, pt != px ? FERRY_EUNSUPPORTED : FERRY_ESHAPE,
                          "cannot reshape %s (%lld elements%s) to %s%s", sx, (long long)cx,
                          px ? " per sample" : "", st_,
                          pt != px ? ": the batch N must stay a factor of one dimension" : "");
    }
    set_out(g, n->out[0], x->dtype, tn, t);
    if (sym_i64(x))
        return set_sym(g, n, graph_value_numel(x, 1), x->data, x->symk, tn, t);
    return FERRY_OK;
}

/* ------------------------------------------------ the batch position */

/* A Range over the batch size (torch.arange(N)) is the one value whose
 * samples differ by where they sit in the batch: element e of sample i is
 * i*bpos plus a part of its own (graph.h). Run as it is, a batch of 32
 * would not give what 32 batches of one give, so such a value is followed
 * through the integer math that keeps it of that form (Cast, Add/Sub, Mul
 * by a constant) and is accepted in one place only: as the indices of a
 * Gather along a batch axis [k*N, ...] whose k equals bpos. There index
 * i*k + j reads row j of sample i's own block of k rows, which is
 * x[i, j] whatever i is: the pooled output of CLIP's text model,
 * last_hidden_state[arange(N), ids.argmax(-1)], exports as
 * Gather(Flatten(h), arange(N)*T + argmax). The Gather is marked (mode =
 * k) and its kernels check that every j lies in [0, k); an index that
 * would reach another sample's rows fails the run (CPU) or reads zeros
 * (CUDA, as its out-of-range indices do). The same holds for the first
 * component of ScatterND's index tuples: x[:, a:b] = y exports tuples
 * (i, j) built as Concat(Unsqueeze(Expand(Reshape(arange(N)))), j) along
 * their last dim, so the position also passes through views and
 * broadcasts that keep the batch the first dim, and a Concat that puts it
 * first in each tuple (bpos_tuple: the other components are the sample's
 * own); the ScatterND's kernels check each sample's tuples stay in its
 * rows. Anything else that reads the position (an output, a float, a
 * reshape that moves the batch) is refused at load. Shape reads only the
 * dims, which are per-sample. */
/* Are n's outputs read only by Shape nodes (and no graph output)? Then the
 * values a position flowed into never matter, only their dims, which are
 * per-sample: the dynamo exporter computes the broadcast shape of index
 * tensors as Shape(Max(a, b)). */
static int only_shape_reads(const graph *g, const graph_node *n)
{
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v < 0)
            continue;
        if (g->values[v].is_output)
            return 0;
        for (int i = 0; i < g->n_nodes; i++) {
            const graph_node *m = &g->nodes[i];
            if (m->dead || m->op == OP_SHAPE)
                continue;
            for (int j = 0; j < m->n_in; j++)
                if (m->in[j] == v)
                    return 0;
        }
    }
    return 1;
}

static ferry_status batch_position(graph *g, graph_node *n)
{
    int pos = -1;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && g->values[n->in[k]].bpos)
            pos = k;
    if (pos < 0)
        return FERRY_OK;
    const graph_value *p = &g->values[n->in[pos]];
    graph_value *o = &g->values[n->out[0]];
    const graph_value *x0 = &g->values[n->in[0]];
    /* the batch stays the first dim, unmerged: elements move within their
     * sample only */
    int keeps_batch = p->ndim >= 1 && o->ndim >= 1 && p->dims[0] < 0 && o->dims[0] == p->dims[0];
    if (p->bpos_tuple && n->op != OP_SHAPE && n->op != OP_SCATTER_ND && n->op != OP_GATHER_ND)
        goto refuse;
    /* Only Add, Sub and Mul combine two positions; elsewhere a second one
     * (ScatterND's or Gather's data) would pass the positions through
     * unmarked, into an output that then depends on where its sample is
     * in the batch. */
    for (int k = 0; k < pos && n->op != OP_ADD && n->op != OP_SUB && n->op != OP_MUL; k++)
        if (n->in[k] >= 0 && g->values[n->in[k]].bpos) {
            p = &g->values[n->in[k]];
            goto refuse;
        }
    switch (n->op) {
    case OP_SHAPE: return FERRY_OK;
    case OP_GATHER:
        if (pos == 1 && n->mode)
            return FERRY_OK; /* infer_gather checked the block */
        break;
    case OP_RESHAPE:
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
    case OP_IDENTITY:
    case OP_EXPAND:
        if (pos != 0 || !keeps_batch)
            break;
        o->bpos = p->bpos;
        return FERRY_OK;
    case OP_CONCAT: {
        /* (position, per-sample parts...) along the last dim: index tuples */
        int ok = pos == 0 && keeps_batch && n->axis == o->ndim - 1 && p->dims[p->ndim - 1] == 1;
        for (int k = 1; ok && k < n->n_in; k++)
            ok = !g->values[n->in[k]].bpos;
        if (!ok)
            break;
        o->bpos = p->bpos;
        o->bpos_tuple = 1;
        return FERRY_OK;
    }
    case OP_SCATTER_ND:
        /* infer_scatter_nd set mode2 (the tuples' first dim is the batch);
         * component 0 must be i*k + j into data [k*N, ...], and the kernels
         * check that j stays in [0, k) */
        if (pos == 1 && n->mode2 && x0->dims[0] == -p->bpos &&
            (p->bpos_tuple || p->dims[p->ndim - 1] == 1))
            return FERRY_OK;
        break;
    case OP_GATHER_ND:
        /* infer_gather_nd set mode2 the same way (reads, not writes) */
        if (pos == 1 && n->mode2 && x0->dims[0] == -p->bpos &&
            (p->bpos_tuple || p->dims[p->ndim - 1] == 1))
            return FERRY_OK;
        break;
    case OP_CAST:
        if (n->to != FERRY_I64 && n->to != FERRY_I32)
            break;
        o->bpos = p->bpos;
        return FERRY_OK;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL: {
        const graph_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
        /* a position broadcast along a sample's own dims stays per sample
         * ([N,1] + [2] -> [N,2]); along the batch it would move */
        int same = 1;
        for (int k = 0; k < 2; k++) {
            const graph_value *v = k ? b : a;
            if (v->bpos && (v->ndim != o->ndim || v->dims[0] >= 0 || v->dims[0] != o->dims[0]))
                same = 0;
        }
        if (!same)
            break;
        int64_t r;
        if (n->op == OP_MUL) {
            const graph_value *c = pos ? a : b;
            if (c->bpos || !known_const(c) || graph_value_numel(c, 1) != 1 ||
                c->dtype != FERRY_I64 ||
                __builtin_mul_overflow(p->bpos, *(const int64_t *)c->data, &r))
                break;
        } else if (n->op == OP_ADD ? __builtin_add_overflow(a->bpos, b->bpos, &r)
                                   : __builtin_sub_overflow(a->bpos, b->bpos, &r)) {
            break;
        }
        o->bpos = r;
        return FERRY_OK;
    }
    default: break;
    }
    if (only_shape_reads(g, n))
        return FERRY_OK;
refuse:
    return node_failf(n, FERRY_EUNSUPPORTED,
                      "input '%s' holds the sample's position in the batch (a Range over the "
                      "batch size); it is supported only as a row offset into the sample's own "
                      "rows: x.flatten(0, 1)[arange(N) * T + j], as x[arange(N), j] exports, "
                      "or as the first index of a ScatterND into them, as x[:, a:b] = y does",
                      p->name);
}

/* ------------------------------------------------------------- driver */

/* Every output's elements per sample fit comfortably in int64 (the shapes
 * a file can claim would otherwise overflow the size arithmetic later). */
static ferry_status check_sizes(graph *g, const graph_node *n)
{
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        const graph_value *o = &g->values[n->out[k]];
        int64_t e = 1;
        for (int d = 0; d < o->ndim; d++) {
            int64_t x = o->dims[d] < 0 ? -o->dims[d] : o->dims[d];
            if (o->dims[d] == INT64_MIN || __builtin_mul_overflow(e, x, &e) ||
                e > (INT64_C(1) << 40))
                return node_failf(n, FERRY_ESHAPE, "output '%s' would be too large", o->name);
        }
    }
    return FERRY_OK;
}

/* Largest output evaluated while shapes are inferred. */
#define EVAL_KNOWN_MAX_BYTES (512u << 10)

/* A foldable node whose inputs are all known constants is evaluated now,
 * with the CPU backend's kernels, so that the rules after it see numbers:
 * exporters compute Pad's pads, Resize's sizes and Slice's ends through
 * Reshape/Transpose/Cast chains of constants. Its outputs become known
 * values (is_sym with no N); fold.c turns them into constants. */
static void eval_known(graph *g, int ni)
{
    graph_node *n = &g->nodes[ni];
    if (n->op == OP_IDENTITY)
        return;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !known_const(&g->values[n->in[k]]))
            return;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && (g->values[n->out[k]].is_sym || g->values[n->out[k]].is_output))
            return; /* the rule computed it (or a graph output keeps its node) */
    void *outs[GRAPH_MAX_IO];
    if (!graph_eval_node(g, ni, EVAL_KNOWN_MAX_BYTES, outs))
        return;
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        graph_value *o = &g->values[n->out[k]];
        free(o->data);
        free(o->symk);
        o->data = outs[k];
        o->symk = NULL;
        o->is_sym = 1;
    }
}

static ferry_status infer_node(graph *g, graph_node *n)
{
    const op_def *d = op_def_of(n->op);
    if (!d || !d->infer)
        return node_fail(n, FERRY_EINTERNAL, "no shape rule");
    int min_in = d->min_in;
    if (n->op == OP_RESHAPE || n->op == OP_REDUCE_MEAN || n->op == OP_REDUCE_SUM)
        min_in = 1; /* their second input is resolved into the node */
    if (n->n_in < min_in || n->n_out < 1)
        return node_fail(n, FERRY_EPARSE, "wrong number of inputs or outputs");
    for (int k = 0; k < min_in; k++)
        if (n->in[k] < 0)
            return node_fail(n, FERRY_EPARSE, "a required input is missing");
    if (n->out[0] < 0 && n->op != OP_LSTM && n->op != OP_GRU && n->op != OP_RNN &&
        n->op != OP_SPLIT)
        return node_fail(n, FERRY_EPARSE, "its first output is missing");
    ferry_status st = d->infer(g, n);
    return st ? st : batch_position(g, n);
}

/* The condition of an If (onnx_load.c) at value c: *taken 1 for the then
 * branch. It must be known at load; the message names the If. */
static ferry_status if_condition(const graph *g, int c, const char *ready, int *taken)
{
    const graph_value *v = &g->values[c];
    const char *name = "?";
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == OP_IF && g->nodes[i].in[0] == c) {
            name = g->nodes[i].name;
            break;
        }
    if (!ready[c] || !known_const(v) || v->dtype != FERRY_BOOL || graph_value_numel(v, 1) != 1)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (If): condition '%s' is %s; only an If whose condition is "
                          "known when the model loads (a constant, or computed from shapes) is "
                          "supported",
                          name, v->name,
                          v->dtype != FERRY_BOOL || (known_const(v) && graph_value_numel(v, 1) != 1)
                              ? "not one bool"
                              : "computed from the data at run time");
    *taken = *(const uint8_t *)v->data != 0;
    return FERRY_OK;
}

/* Node ni of an If's branch: kept on the taken branch (its guard
 * cleared, as if it had been outside), removed on the other. *kept 0
 * when removed. */
static ferry_status resolve_guard(graph *g, int ni, const char *ready, int *kept)
{
    graph_node *n = &g->nodes[ni];
    int taken;
    ferry_status st = if_condition(g, (n->guard > 0 ? n->guard : -n->guard) - 1, ready, &taken);
    if (st)
        return st;
    *kept = taken == (n->guard > 0);
    if (*kept)
        n->guard = 0;
    else
        graph_kill_node(g, ni);
    return FERRY_OK;
}

/* An If's output (OP_IF) becomes an Identity of the taken branch's value. */
static ferry_status resolve_if(graph *g, graph_node *n, const char *ready)
{
    int taken;
    ferry_status st = if_condition(g, n->in[0], ready, &taken);
    if (st)
        return st;
    g->values[n->in[0]].n_consumers--;
    g->values[n->in[taken ? 2 : 1]].n_consumers--;
    n->in[0] = n->in[taken ? 1 : 2];
    n->in[1] = n->in[2] = -1;
    n->n_in = 1;
    n->op = OP_IDENTITY;
    return FERRY_OK;
}

ferry_status graph_infer_shapes(graph *g)
{
    if (!g)
        return ferry_fail(FERRY_EINVAL, "graph_infer_shapes: graph is NULL");
    ferry_status st = FERRY_OK;
    char *ready = calloc((size_t)g->n_values + 1, 1);
    if (!ready)
        return ferry_fail(FERRY_ENOMEM, "out of memory inferring shapes");
    for (int v = 0; v < g->n_values; v++) {
        graph_value *gv = &g->values[v];
        ready[v] = gv->is_const || gv->is_input || gv->is_sym;
        /* shape math is recomputed from scratch by its live producers */
        if (gv->is_sym && gv->producer >= 0 && !g->nodes[gv->producer].dead) {
            free(gv->symk);
            free(gv->data);
            gv->symk = NULL, gv->data = NULL, gv->is_sym = 0;
            ready[v] = 0;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        if (n->guard) {
            int kept;
            if ((st = resolve_guard(g, i, ready, &kept)) != FERRY_OK)
                goto out;
            if (!kept)
                continue;
        }
        if (n->op == OP_IF && (st = resolve_if(g, n, ready)) != FERRY_OK)
            goto out;
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
            if (v < -1 || v >= g->n_values) {
                st = node_fail(n, FERRY_EINTERNAL, "output index out of range");
                goto out;
            }
            if (v >= 0 && (g->values[v].is_input || g->values[v].is_const)) {
                st =
                    node_failf(n, FERRY_EPARSE, "writes '%s', which is a graph input or a constant",
                               g->values[v].name);
                goto out;
            }
        }
        if ((st = infer_node(g, n)) != FERRY_OK)
            goto out;
        if ((st = check_sizes(g, n)) != FERRY_OK)
            goto out;
        eval_known(g, i);
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0)
                ready[n->out[k]] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->n_values || !ready[v]) {
            st = ferry_fail(FERRY_EPARSE, "output '%s' is never computed",
                            v >= 0 && v < g->n_values ? g->values[v].name : "?");
            goto out;
        }
        if (g->values[v].bpos) {
            st = ferry_fail(FERRY_EUNSUPPORTED,
                            "output '%s' holds each sample's position in the batch (a Range "
                            "over the batch size): the dynamic batcher would change it",
                            g->values[v].name);
            goto out;
        }
    }
out:
    free(ready);
    return st;
}
