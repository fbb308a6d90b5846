/*
 * shape_data.c - shape rules of the shape, data-movement, comparison and
 * selection operators. Where the inputs are shape math known at load (see
 * graph.h, is_sym), the rule also computes the output's value: that is how
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape resolves to numbers and
 * multiples of N before anything runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/ops.h"
#include "util/error.h"

#define SHAPE_STR(name, v)                                                                         \
    char name[192];                                                                                \
    fmt_shape(name, sizeof name, (v)->ndim, (v)->dims)

/* Largest shape-math tensor evaluated at load. */
#define SYM_MAX 64

static int known_i64(const graph_value *v)
{
    return (v->is_const || v->is_sym) && v->data && v->dtype == FERRY_I64 && v->ndim <= 1 &&
           (v->ndim == 0 || (v->dims[0] >= 0 && v->dims[0] <= SYM_MAX));
}

static int64_t kv(const graph_value *v, int64_t i)
{
    return v->is_sym && v->symk ? v->symk[i] : 0;
}

static int64_t count_of(const graph_value *v)
{
    return v->ndim ? v->dims[0] : 1;
}

/* Min, Max: n inputs of one dtype, broadcast together. */
ferry_status infer_variadic(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    graph_value acc = *a;
    for (int k = 1; k < n->n_in; k++) {
        const graph_value *b = &g->values[n->in[k]];
        if (b->dtype != a->dtype)
            return node_failf(n, FERRY_EDTYPE, "input '%s' is %s but '%s' is %s", a->name,
                              ferry_dtype_name(a->dtype), b->name, ferry_dtype_name(b->dtype));
        int r;
        int64_t od[FERRY_MAX_DIMS];
        ferry_status st = broadcast_dims(n, &acc, b, &r, od);
        if (st)
            return st;
        acc.ndim = r;
        memcpy(acc.dims, od, sizeof od);
    }
    set_out(g, n->out[0], a->dtype, acc.ndim, acc.dims);
    return FERRY_OK;
}

ferry_status infer_not(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    if (a->dtype != FERRY_BOOL)
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; bool is required", a->name,
                          ferry_dtype_name(a->dtype));
    set_out(g, n->out[0], FERRY_BOOL, a->ndim, a->dims);
    return FERRY_OK;
}

ferry_status infer_where(graph *g, graph_node *n)
{
    const graph_value *c = &g->values[n->in[0]], *x = &g->values[n->in[1]],
                      *y = &g->values[n->in[2]];
    if (c->dtype != FERRY_BOOL)
        return node_failf(n, FERRY_EDTYPE, "condition '%s' is %s; bool is required", c->name,
                          ferry_dtype_name(c->dtype));
    if (x->dtype != y->dtype)
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s but '%s' is %s", x->name,
                          ferry_dtype_name(x->dtype), y->name, ferry_dtype_name(y->dtype));
    graph_value t = *c;
    int r;
    int64_t od[FERRY_MAX_DIMS];
    ferry_status st = broadcast_dims(n, &t, x, &r, od);
    if (st)
        return st;
    t.ndim = r;
    memcpy(t.dims, od, sizeof od);
    if ((st = broadcast_dims(n, &t, y, &r, od)))
        return st;
    set_out(g, n->out[0], x->dtype, r, od);
    /* Shape math: Where(Equal(shape, -1), 1, shape) of an Expand export. */
    if ((c->is_const || c->is_sym) && c->data && known_i64(x) && known_i64(y) && r <= 1 &&
        (r == 0 || (od[0] >= 0 && od[0] <= SYM_MAX)) && c->ndim <= 1) {
        int64_t cnt = r ? od[0] : 1, v[SYM_MAX], k[SYM_MAX];
        int64_t nc = count_of(c), nx = count_of(x), ny = count_of(y);
        const uint8_t *cd = c->data;
        for (int64_t i = 0; i < cnt; i++) {
            int64_t ic = nc == 1 ? 0 : i, ix = nx == 1 ? 0 : i, iy = ny == 1 ? 0 : i;
            const graph_value *s = cd[ic] ? x : y;
            int64_t is = cd[ic] ? ix : iy;
            v[i] = ((const int64_t *)s->data)[is];
            k[i] = kv(s, is);
        }
        return set_sym(g, n, cnt, v, k, r, od);
    }
    return FERRY_OK;
}

ferry_status infer_arg(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    if (x->dims[ax] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "reduces over the batch dimension");
    n->axis = (int)ax;
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i == ax) {
            if (n->keepdims)
                od[on++] = 1;
        } else {
            od[on++] = x->dims[i];
        }
    }
    set_out(g, n->out[0], FERRY_I64, on, od);
    return FERRY_OK;
}

/* TopK: K (input 1) must be known at load, within the axis, which is not
 * the batch's; values keep X's dtype, indices are int64. */
ferry_status infer_topk(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    if (!is_float_dtype(x->dtype) && x->dtype != FERRY_I64 && x->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a number type is required", x->name,
                          ferry_dtype_name(x->dtype));
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    if (x->dims[ax] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "selects along the batch dimension");
    if (n->out[0] < 0 || n->out[1] < 0)
        return node_fail(n, FERRY_EPARSE, "both outputs (Values, Indices) must be named");
    const int64_t *kv;
    int64_t cnt;
    ferry_status st = const_ints(g, n, 1, "K", &kv, &cnt);
    if (st)
        return st;
    if (cnt != 1)
        return node_failf(n, FERRY_ESHAPE, "K has %lld values; one is expected", (long long)cnt);
    if (kv[0] < 0 || kv[0] > x->dims[ax])
        return node_failf(n, FERRY_ESHAPE, "K %lld is outside [0, %lld] (axis %lld of %s)",
                          (long long)kv[0], (long long)x->dims[ax], (long long)ax, x->name);
    n->axis = (int)ax;
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        od[i] = i == ax ? kv[0] : x->dims[i];
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    set_out(g, n->out[1], FERRY_I64, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_cumsum(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *a = &g->values[n->in[1]];
    if (!known_const(a) || graph_value_numel(a, 1) != 1 ||
        (a->dtype != FERRY_I64 && a->dtype != FERRY_I32))
        return node_fail(n, FERRY_EUNSUPPORTED, "the axis input must be a constant integer scalar");
    int64_t axis = a->dtype == FERRY_I64 ? *(const int64_t *)a->data : *(const int32_t *)a->data,
            ax;
    if (norm_axis(axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %lld is out of range for rank %d", (long long)axis,
                          x->ndim);
    if (x->dims[ax] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "sums over the batch dimension");
    n->axis = (int)ax;
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* Shape: the dims as an int64 vector, known at load (numbers and N). */
ferry_status infer_shape_op(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    int64_t s = n->starts[0], e = n->ends[0];
    if (s < 0)
        s += r;
    if (e < 0)
        e += r;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < 0 ? 0 : e > r ? r : e;
    int64_t cnt = e > s ? e - s : 0, v[FERRY_MAX_DIMS], k[FERRY_MAX_DIMS];
    for (int64_t i = 0; i < cnt; i++) {
        int64_t d = x->dims[s + i];
        v[i] = d < 0 ? 0 : d;
        k[i] = d < 0 ? -d : 0;
    }
    return set_sym(g, n, cnt, v, k, 1, &cnt);
}

/* Axes of Squeeze/Unsqueeze: the attribute (before opset 13) or input 1. */
static ferry_status axes_input(graph *g, graph_node *n)
{
    if (n->n_in < 2 || n->in[1] < 0)
        return FERRY_OK;
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
    n->mode = 1;
    g->values[n->in[1]].n_consumers--;
    n->in[1] = -1;
    n->n_in = 1;
    return FERRY_OK;
}

static ferry_status keep_sym(graph *g, graph_node *n, const graph_value *x, int on,
                             const int64_t *od)
{
    if (sym_i64(x))
        return set_sym(g, n, graph_value_numel(x, 1), x->data, x->symk, on, od);
    return FERRY_OK;
}

ferry_status infer_squeeze(graph *g, graph_node *n)
{
    ferry_status st = axes_input(g, n);
    if (st)
        return st;
    const graph_value *x = &g->values[n->in[0]];
    int drop[FERRY_MAX_DIMS] = {0};
    if (!n->mode || n->n_axes == 0) {
        for (int i = 0; i < x->ndim; i++)
            drop[i] = x->dims[i] == 1;
    }
    for (int i = 0; n->mode && i < n->n_axes; i++) {
        int64_t a;
        if (norm_axis(n->axes[i], x->ndim, 0, &a))
            return node_failf(n, FERRY_ESHAPE, "axis %lld is out of range for rank %d",
                              (long long)n->axes[i], x->ndim);
        if (x->dims[a] != 1) {
            SHAPE_STR(sx, x);
            return node_failf(n, FERRY_ESHAPE, "axis %lld of %s is not 1", (long long)a, sx);
        }
        drop[a] = 1;
        n->axes[i] = a;
    }
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!drop[i])
            od[on++] = x->dims[i];
    set_out(g, n->out[0], x->dtype, on, od);
    return keep_sym(g, n, x, on, od);
}

ferry_status infer_unsqueeze(graph *g, graph_node *n)
{
    ferry_status st = axes_input(g, n);
    if (st)
        return st;
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim + n->n_axes;
    if (r > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "output rank %d; at most %d", r, FERRY_MAX_DIMS);
    int ins[FERRY_MAX_DIMS] = {0};
    for (int i = 0; i < n->n_axes; i++) {
        int64_t a;
        if (norm_axis(n->axes[i], r, 0, &a))
            return node_failf(n, FERRY_ESHAPE, "axis %lld is out of range for rank %d",
                              (long long)n->axes[i], r);
        if (ins[a])
            return node_fail(n, FERRY_EPARSE, "an axis is listed twice");
        ins[a] = 1;
        n->axes[i] = a;
    }
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0, j = 0; i < r; i++)
        od[i] = ins[i] ? 1 : x->dims[j++];
    set_out(g, n->out[0], x->dtype, r, od);
    return keep_sym(g, n, x, r, od);
}

ferry_status infer_concat(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    int64_t ax;
    if (norm_axis(n->axis, a->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, a->ndim);
    n->axis = (int)ax;
    int64_t od[FERRY_MAX_DIMS];
    memcpy(od, a->dims, sizeof od);
    od[ax] = 0;
    int all_known = 1;
    for (int k = 0; k < n->n_in; k++) {
        const graph_value *b = &g->values[n->in[k]];
        if (b->dtype != a->dtype)
            return node_failf(n, FERRY_EDTYPE, "input '%s' is %s but '%s' is %s", a->name,
                              ferry_dtype_name(a->dtype), b->name, ferry_dtype_name(b->dtype));
        int bad = b->ndim != a->ndim;
        for (int i = 0; !bad && i < a->ndim; i++)
            bad = i != ax && b->dims[i] != a->dims[i];
        if (bad) {
            SHAPE_STR(sa, a);
            SHAPE_STR(sb, b);
            return node_failf(n, FERRY_ESHAPE, "input '%s' %s does not match '%s' %s off axis %d",
                              b->name, sb, a->name, sa, (int)ax);
        }
        int64_t d = b->dims[ax];
        if ((d < 0) != (od[ax] < 0) && k > 0 && od[ax] != 0)
            return node_fail(n, FERRY_EUNSUPPORTED,
                             "concatenates batch-sized and fixed-size parts along one axis");
        od[ax] += d; /* kN + jN = (k+j)N: both negative */
        all_known &= known_i64(b);
    }
    set_out(g, n->out[0], a->dtype, a->ndim, od);
    if (all_known && a->ndim == 1 && a->dtype == FERRY_I64 && od[0] <= SYM_MAX) {
        int64_t v[SYM_MAX], k[SYM_MAX], at = 0;
        for (int i = 0; i < n->n_in; i++) {
            const graph_value *b = &g->values[n->in[i]];
            for (int64_t j = 0; j < b->dims[0]; j++, at++) {
                v[at] = ((const int64_t *)b->data)[j];
                k[at] = kv(b, j);
            }
        }
        return set_sym(g, n, at, v, k, 1, od);
    }
    return FERRY_OK;
}

ferry_status infer_split(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t ax;
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    n->axis = (int)ax;
    int64_t len = x->dims[ax];
    if (len < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "splits along the batch dimension");
    if (n->n_in > 1 && n->in[1] >= 0) {
        const int64_t *vals;
        int64_t cnt;
        ferry_status st = const_ints(g, n, 1, "split", &vals, &cnt);
        if (st)
            return st;
        if (cnt != n->n_out)
            return node_failf(n, FERRY_ESHAPE, "split has %lld sizes for %d outputs",
                              (long long)cnt, n->n_out);
        free(n->splits);
        n->splits = malloc(sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
        if (!n->splits)
            return ferry_fail(FERRY_ENOMEM, "out of memory");
        memcpy(n->splits, vals, sizeof(int64_t) * (size_t)cnt);
        n->n_axes = (int)cnt;
        n->mode2 = 1;
        g->values[n->in[1]].n_consumers--;
        n->in[1] = -1;
        n->n_in = 1;
    }
    if (!n->mode2) {
        /* equal parts; the last may be smaller (opset 18 num_outputs) */
        int parts = n->n_out;
        int64_t each = (len + parts - 1) / parts;
        free(n->splits);
        n->splits = malloc(sizeof(int64_t) * (size_t)parts);
        if (!n->splits)
            return ferry_fail(FERRY_ENOMEM, "out of memory");
        for (int i = 0; i < parts; i++) {
            int64_t left = len - each * i;
            n->splits[i] = left < each ? (left > 0 ? left : 0) : each;
        }
        if (n->mode == 0 && len % parts)
            return node_failf(n, FERRY_ESHAPE, "cannot split %lld into %d equal parts",
                              (long long)len, parts);
        n->n_axes = parts;
        n->mode2 = 1;
    }
    if (n->n_axes != n->n_out)
        return node_failf(n, FERRY_ESHAPE, "%d split sizes for %d outputs", n->n_axes, n->n_out);
    int64_t sum = 0;
    for (int i = 0; i < n->n_out; i++) {
        if (n->splits[i] < 0)
            return node_fail(n, FERRY_ESHAPE, "a split size is negative");
        sum += n->splits[i];
    }
    if (sum != len)
        return node_failf(n, FERRY_ESHAPE, "split sizes add up to %lld, axis %d has %lld",
                          (long long)sum, (int)ax, (long long)len);
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] < 0)
            continue;
        int64_t od[FERRY_MAX_DIMS];
        memcpy(od, x->dims, sizeof od);
        od[ax] = n->splits[i];
        set_out(g, n->out[i], x->dtype, x->ndim, od);
    }
    return FERRY_OK;
}

/* Slice: starts/ends/axes/steps inputs (opset 10+), resolved per input dim
 * into n->starts[] and n->steps[] and the output dims. */
ferry_status infer_slice(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    if (n->n_in < 3)
        return node_fail(n, FERRY_EPARSE, "needs the starts and ends inputs");
    const int64_t *st_v, *en_v, *ax_v = NULL, *sp_v = NULL, *st_k, *en_k;
    int64_t ns, ne, na = 0, nsp = 0;
    ferry_status st;
    if ((st = known_ints(g, n, 1, "starts", &st_v, &st_k, &ns)) ||
        (st = known_ints(g, n, 2, "ends", &en_v, &en_k, &ne)))
        return st;
    if (n->n_in > 3 && n->in[3] >= 0 && (st = const_ints(g, n, 3, "axes", &ax_v, &na)))
        return st;
    if (n->n_in > 4 && n->in[4] >= 0 && (st = const_ints(g, n, 4, "steps", &sp_v, &nsp)))
        return st;
    if (ne != ns || (ax_v && na != ns) || (sp_v && nsp != ns))
        return node_fail(n, FERRY_ESHAPE, "starts, ends, axes and steps differ in length");
    int64_t od[FERRY_MAX_DIMS];
    int seen[FERRY_MAX_DIMS] = {0};
    for (int i = 0; i < r; i++) {
        n->starts[i] = 0;
        n->steps[i] = 1;
        od[i] = x->dims[i];
    }
    for (int64_t i = 0; i < ns; i++) {
        int64_t a = ax_v ? ax_v[i] : i;
        if (norm_axis(a, r, 0, &a))
            return node_failf(n, FERRY_ESHAPE, "axis %lld is out of range for rank %d",
                              (long long)(ax_v ? ax_v[i] : i), r);
        if (seen[a]++)
            return node_fail(n, FERRY_EPARSE, "an axis is listed twice");
        int64_t step = sp_v ? sp_v[i] : 1;
        if (step == 0)
            return node_fail(n, FERRY_ESHAPE, "a step is 0");
        int64_t d = x->dims[a];
        int64_t s = st_v[i], e = en_v[i];
        int s_sym = st_k && st_k[i], e_sym = en_k && en_k[i];
        if (d < 0) {
            /* along the batch: only the whole of it */
            int whole = !s_sym && s == 0 && step == 1 &&
                        ((e_sym && en_k[i] == -d && e == 0) || (!e_sym && e >= INT32_MAX));
            if (!whole)
                return node_fail(n, FERRY_EUNSUPPORTED, "slices part of the batch dimension");
            continue;
        }
        if (s_sym || e_sym)
            return node_fail(n, FERRY_EUNSUPPORTED, "slice bounds depend on the batch size");
        /* ONNX clamping */
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        if (step > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            od[a] = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? -1 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            od[a] = s > e ? (s - e - 1) / -(step == INT64_MIN ? step + 1 : step) + 1 : 0;
        }
        n->starts[a] = s;
        n->steps[a] = step;
    }
    set_out(g, n->out[0], x->dtype, r, od);
    /* shape math: a slice of a known vector */
    if (known_i64(x) && r == 1 && od[0] >= 0) {
        int64_t v[SYM_MAX], k[SYM_MAX];
        for (int64_t i = 0; i < od[0]; i++) {
            int64_t j = n->starts[0] + i * n->steps[0];
            v[i] = ((const int64_t *)x->data)[j];
            k[i] = kv(x, j);
        }
        return set_sym(g, n, od[0], v, k, 1, od);
    }
    return FERRY_OK;
}

ferry_status infer_transpose(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    if (n->n_axes < 0) {
        for (int i = 0; i < r; i++)
            n->perm[i] = r - 1 - i;
        n->n_axes = r;
    }
    if (n->n_axes != r)
        return node_failf(n, FERRY_ESHAPE, "perm has %d entries for rank %d", n->n_axes, r);
    int seen[FERRY_MAX_DIMS] = {0};
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        int64_t p = n->perm[i];
        if (p < 0)
            p += r;
        if (p < 0 || p >= r || seen[p]++)
            return node_fail(n, FERRY_ESHAPE, "perm is not a permutation of the dims");
        n->perm[i] = p;
        od[i] = x->dims[p];
    }
    set_out(g, n->out[0], x->dtype, r, od);
    return FERRY_OK;
}

ferry_status infer_gather(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *idx = &g->values[n->in[1]];
    int64_t ax;
    if (idx->dtype != FERRY_I64 && idx->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "indices '%s' are %s; int64 or int32 is required",
                          idx->name, ferry_dtype_name(idx->dtype));
    if (norm_axis(n->axis, x->ndim, 0, &ax))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for rank %d", n->axis, x->ndim);
    n->axis = (int)ax;
    n->mode = 0;
    if (x->dims[ax] < 0) {
        /* per sample only: indices i*k + j into sample i's k rows */
        int ok = ax == 0 && idx->bpos > 0 && x->dims[0] == -idx->bpos && idx->ndim >= 1 &&
                 idx->dims[0] < 0 && idx->bpos <= INT32_MAX;
        for (int i = 1; ok && i < x->ndim; i++)
            ok = x->dims[i] >= 0;
        for (int i = 1; ok && i < idx->ndim; i++)
            ok = idx->dims[i] >= 0;
        if (!ok)
            return node_fail(n, FERRY_EUNSUPPORTED,
                             "gathers along the batch dimension (supported only as x[arange(N), "
                             "j] exports it: indices arange(N) * k + j into [k*N, ...])");
        n->mode = (int)idx->bpos;
    }
    int r = x->ndim - 1 + idx->ndim;
    if (r > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "output rank %d; at most %d", r, FERRY_MAX_DIMS);
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < ax; i++)
        od[on++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++)
        od[on++] = idx->dims[i];
    for (int i = (int)ax + 1; i < x->ndim; i++)
        od[on++] = x->dims[i];
    set_out(g, n->out[0], x->dtype, on, od);
    /* shape math: picking dims out of a Shape */
    if (known_i64(x) && x->ndim == 1 && known_const(idx) && idx->ndim <= 1 &&
        count_of(idx) <= SYM_MAX && count_of(idx) >= 0) {
        int64_t cnt = count_of(idx), v[SYM_MAX], k[SYM_MAX], len = x->dims[0];
        for (int64_t i = 0; i < cnt; i++) {
            int64_t j = idx->dtype == FERRY_I64 ? ((const int64_t *)idx->data)[i]
                                                : ((const int32_t *)idx->data)[i];
            if (j < 0)
                j += len;
            if (j < 0 || j >= len)
                return node_failf(n, FERRY_ESHAPE, "index %lld is out of range for %lld",
                                  (long long)j, (long long)len);
            v[i] = ((const int64_t *)x->data)[j];
            k[i] = kv(x, j);
        }
        return set_sym(g, n, cnt, v, k, on, od);
    }
    return FERRY_OK;
}

ferry_status infer_gather_elements(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *idx = &g->values[n->in[1]];
    int64_t ax;
    if (idx->dtype != FERRY_I64 && idx->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "indices '%s' are %s; int64 or int32 is required",
                          idx->name, ferry_dtype_name(idx->dtype));
    if (idx->ndim != x->ndim || norm_axis(n->axis, x->ndim, 0, &ax))
        return node_fail(n, FERRY_ESHAPE, "indices must have the data's rank, axis within it");
    n->axis = (int)ax;
    /* Off the axis an output element reads the data at its own coordinates:
     * the indices must fit inside the data there, at every batch size (a
     * dim of 1 fits any batch), or the read would leave it. */
    for (int i = 0; i < x->ndim; i++) {
        int bx = x->dims[i] < 0, bi = idx->dims[i] < 0;
        if (i == ax || (bx && bi && x->dims[i] == idx->dims[i]) || (bx && idx->dims[i] == 1))
            continue;
        if (bx || bi)
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "indices '%s' and data '%s' hold the batch in different dims",
                              idx->name, x->name);
        if (idx->dims[i] > x->dims[i])
            return node_failf(n, FERRY_ESHAPE, "indices '%s' are larger than data '%s' in dim %d",
                              idx->name, x->name, i);
    }
    set_out(g, n->out[0], x->dtype, idx->ndim, idx->dims);
    return FERRY_OK;
}

/* GatherND's and ScatterND's indices when they address data's batch axis
 * (component 0 into data [N, ...]): only with the batch as the indices'
 * first dim and nowhere else in them, each sample's tuples its own. */
static ferry_status nd_batch_addressed(const graph_node *n, const graph_value *idx)
{
    for (int i = 1; i < idx->ndim; i++)
        if (idx->dims[i] < 0)
            return node_fail(n, FERRY_EUNSUPPORTED,
                             "indices hold the batch in a dimension other than their first");
    if (idx->dims[0] >= 0)
        return node_fail(n, FERRY_EUNSUPPORTED,
                         "indices address data's batch axis but are the same for every sample");
    return FERRY_OK;
}

/* GatherND: index tuples of k components into data's dims b .. b+k-1 (b =
 * batch_dims, whose leading dims data and indices share); the output is
 * indices' dims but the last, then data's dims past b+k. The batch: in the
 * shared leading dims each sample reads its own; addressed by component 0
 * (b = 0, data [N, ...]) only as a per-sample index, the sample's position
 * first in each tuple (HF transformers 5's attention masks build
 * mask[arange(N)[:, ..., None], kv] that way: indices [N, 1, 1, T, 2]),
 * which shape.c's batch_position tracks and the kernels check. */
ferry_status infer_gather_nd(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *idx = &g->values[n->in[1]];
    if (idx->dtype != FERRY_I64 && idx->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "indices '%s' are %s; int64 or int32 is required",
                          idx->name, ferry_dtype_name(idx->dtype));
    int r = x->ndim, q = idx->ndim, b = n->mode;
    if (q < 1 || r < 1 || b >= q || b >= r)
        return node_failf(n, FERRY_ESHAPE,
                          "batch_dims %d needs data '%s' and indices '%s' of higher rank", b,
                          x->name, idx->name);
    int64_t k = idx->dims[q - 1];
    if (k < 1 || k > r - b)
        return node_failf(n, FERRY_ESHAPE,
                          "indices '%s' must be [..., k] with k from 1 to %d (data's rank less "
                          "batch_dims)",
                          idx->name, r - b);
    for (int i = 0; i < b; i++)
        if (x->dims[i] != idx->dims[i])
            return node_failf(n, FERRY_ESHAPE,
                              "data '%s' and indices '%s' differ in batch dim %d (batch_dims %d)",
                              x->name, idx->name, i, b);
    int idx_batch = 0;
    for (int i = b; i < q - 1; i++)
        idx_batch |= idx->dims[i] < 0;
    n->mode2 = 0;
    for (int i = b; i < r; i++) {
        if (x->dims[i] >= 0)
            continue;
        if (i >= b + k && !idx_batch && b == 0)
            continue; /* the batch rides along in the slices */
        if (i != 0 || b != 0)
            return node_fail(n, FERRY_EUNSUPPORTED,
                             "indices address a batch dimension that is not data's first");
        ferry_status st = nd_batch_addressed(n, idx);
        if (st)
            return st;
        n->mode2 = 1;
    }
    int64_t od[FERRY_MAX_DIMS];
    int on = 0;
    if (q - 1 + r - b - (int)k > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "an output of rank above %d", FERRY_MAX_DIMS);
    for (int i = 0; i < q - 1; i++)
        od[on++] = idx->dims[i];
    for (int i = b + (int)k; i < r; i++)
        od[on++] = x->dims[i];
    int nb = 0;
    for (int i = 0; i < on; i++)
        nb += od[i] < 0;
    if (nb > 1)
        return node_fail(n, FERRY_EUNSUPPORTED,
                         "the output would hold the batch in two dimensions");
    set_out(g, n->out[0], x->dtype, on, od);
    return FERRY_OK;
}

/* ScatterND's and ScatterElements' types: integer indices, updates of the
 * data's type, no reduction over bool. */
static ferry_status scatter_types(const graph_node *n, const graph_value *x, const graph_value *idx,
                                  const graph_value *u)
{
    if (idx->dtype != FERRY_I64 && idx->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "indices '%s' are %s; int64 or int32 is required",
                          idx->name, ferry_dtype_name(idx->dtype));
    if (u->dtype != x->dtype)
        return node_failf(n, FERRY_EDTYPE, "updates '%s' are %s but data '%s' is %s", u->name,
                          ferry_dtype_name(u->dtype), x->name, ferry_dtype_name(x->dtype));
    if (n->mode != SCATTER_NONE && x->dtype == FERRY_BOOL)
        return node_fail(n, FERRY_EUNSUPPORTED, "a reduction over bool data");
    return FERRY_OK;
}

/* ScatterND: data [r dims], indices [..., k], updates [indices' leading
 * dims, data's dims from k]; the output is data with the addressed slices
 * written (or combined, reduction). A write must stay within its sample:
 * indices that address data's batch axis (x[:, a:b] = y exports index
 * tuples (n, j) from a Range over N) must have the batch as their own
 * first dim, so that each sample's tuples can be checked at run time to
 * stay in its rows (mode2); any other batch-dependent indices would write
 * one sample's values into every sample and are refused. */
ferry_status infer_scatter_nd(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *idx = &g->values[n->in[1]],
                      *u = &g->values[n->in[2]];
    ferry_status st = scatter_types(n, x, idx, u);
    if (st)
        return st;
    int q = idx->ndim;
    int64_t k = q ? idx->dims[q - 1] : -1;
    if (q < 1 || k < 1 || k > x->ndim)
        return node_failf(n, FERRY_ESHAPE,
                          "indices '%s' must be [..., k] with k from 1 to data's rank %d",
                          idx->name, x->ndim);
    int64_t want[FERRY_MAX_DIMS];
    int wn = 0;
    for (int i = 0; i < q - 1; i++)
        want[wn++] = idx->dims[i];
    for (int i = (int)k; i < x->ndim; i++) {
        if (wn == FERRY_MAX_DIMS)
            return node_failf(n, FERRY_EUNSUPPORTED, "updates of rank above %d", FERRY_MAX_DIMS);
        want[wn++] = x->dims[i];
    }
    int same = u->ndim == wn;
    for (int i = 0; same && i < wn; i++)
        same = u->dims[i] == want[i];
    if (!same) {
        SHAPE_STR(us, u);
        char ws[192];
        fmt_shape(ws, sizeof ws, wn, want);
        return node_failf(n, FERRY_ESHAPE, "updates '%s' have shape %s, expected %s", u->name, us,
                          ws);
    }
    int idx_batch = 0, x_batch_addressed = 0;
    for (int i = 0; i < q; i++)
        idx_batch |= idx->dims[i] < 0;
    for (int i = 0; i < k; i++)
        if (x->dims[i] < 0) {
            if (i > 0)
                return node_fail(n, FERRY_EUNSUPPORTED,
                                 "indices address a batch dimension that is not data's first");
            x_batch_addressed = 1;
        }
    n->mode2 = 0;
    if (x_batch_addressed) {
        if ((st = nd_batch_addressed(n, idx)))
            return st;
        n->mode2 = 1;
    } else if (idx_batch) {
        return node_fail(n, FERRY_EUNSUPPORTED,
                         "indices vary with the batch size but address no batch axis (each "
                         "sample's writes would reach every sample)");
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* ScatterElements (torch's scatter, scatter_add): indices and updates of
 * one shape, data's rank, no larger than data; data at each index position
 * with its axis coordinate replaced by the index gets the update. Each
 * sample must write its own elements only: indices hold the batch where
 * data does, and the axis is not the batch. */
ferry_status infer_scatter_elements(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *idx = &g->values[n->in[1]],
                      *u = &g->values[n->in[2]];
    int64_t ax;
    ferry_status st = scatter_types(n, x, idx, u);
    if (st)
        return st;
    if (idx->ndim != x->ndim || norm_axis(n->axis, x->ndim, 0, &ax))
        return node_fail(n, FERRY_ESHAPE, "indices must have the data's rank, axis within it");
    n->axis = (int)ax;
    int same = u->ndim == idx->ndim;
    for (int i = 0; same && i < idx->ndim; i++)
        same = u->dims[i] == idx->dims[i];
    if (!same) {
        SHAPE_STR(us, u);
        SHAPE_STR(is, idx);
        return node_failf(n, FERRY_ESHAPE, "updates '%s' have shape %s; the indices' is %s",
                          u->name, us, is);
    }
    if (x->dims[ax] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "scatters along the batch dimension");
    for (int i = 0; i < x->ndim; i++) {
        int bx = x->dims[i] < 0, bi = idx->dims[i] < 0;
        if (bx != bi || (bx && x->dims[i] != idx->dims[i]))
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "indices '%s' and data '%s' hold the batch in different dims",
                              idx->name, x->name);
        if (!bx && idx->dims[i] > x->dims[i])
            return node_failf(n, FERRY_ESHAPE, "indices '%s' are larger than data '%s' in dim %d",
                              idx->name, x->name, i);
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* Expand: broadcast x to a shape known at load; entries of the shape may be
 * multiples of N (the batch of another input). */
ferry_status infer_expand(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    const int64_t *vals, *ks;
    int64_t cnt;
    ferry_status st = known_ints(g, n, 1, "the shape input", &vals, &ks, &cnt);
    if (st)
        return st;
    if (cnt > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "target rank %lld", (long long)cnt);
    graph_value t;
    memset(&t, 0, sizeof t);
    t.name = g->values[n->in[1]].name;
    t.ndim = (int)cnt;
    for (int64_t i = 0; i < cnt; i++) {
        if (ks && ks[i]) {
            if (ks[i] < 0 || vals[i])
                return node_fail(n, FERRY_EUNSUPPORTED, "the shape is not a whole multiple of N");
            t.dims[i] = -ks[i];
        } else {
            t.dims[i] = vals[i] == -1 ? 1 : vals[i]; /* -1 (opset 8's form of 'keep') */
        }
    }
    int r;
    int64_t od[FERRY_MAX_DIMS];
    if ((st = broadcast_dims(n, x, &t, &r, od)))
        return st;
    set_out(g, n->out[0], x->dtype, r, od);
    return FERRY_OK;
}

/* Tile: repeats known at load. A repeat may be a multiple of N where x's
 * dim is 1 (DETR's queries.unsqueeze(0).repeat(batch_size, 1, 1)): that
 * dim becomes the batch, every sample a copy, as an Expand would make it;
 * the backend reads the repeats it is given at run time. */
ferry_status infer_tile(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    const int64_t *vals, *ks;
    int64_t cnt;
    ferry_status st = known_ints(g, n, 1, "repeats", &vals, &ks, &cnt);
    if (st)
        return st;
    if (cnt != x->ndim)
        return node_failf(n, FERRY_ESHAPE, "%lld repeats for rank %d", (long long)cnt, x->ndim);
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        if (ks && ks[i]) {
            if (ks[i] < 0 || vals[i] || x->dims[i] != 1)
                return node_failf(n, FERRY_EUNSUPPORTED,
                                  "repeats '%s' depend on the batch size other than as k*N "
                                  "copies of a dim of 1",
                                  g->values[n->in[1]].name);
            od[i] = -ks[i];
            continue;
        }
        if (vals[i] < 0)
            return node_fail(n, FERRY_ESHAPE, "a repeat is negative");
        if (x->dims[i] < 0 && vals[i] != 1)
            return node_fail(n, FERRY_EUNSUPPORTED, "repeats along the batch dimension");
        if (vals[i] > (INT64_C(1) << 31))
            return node_fail(n, FERRY_ESHAPE, "a repeat is out of range");
        od[i] = x->dims[i] < 0 ? x->dims[i] : x->dims[i] * vals[i];
    }
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_constant_of_shape(graph *g, graph_node *n)
{
    const int64_t *vals, *ks;
    int64_t cnt;
    ferry_status st = known_ints(g, n, 0, "the shape input", &vals, &ks, &cnt);
    if (st)
        return st;
    if (cnt > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "rank %lld", (long long)cnt);
    int64_t od[FERRY_MAX_DIMS];
    for (int64_t i = 0; i < cnt; i++) {
        if (ks && ks[i]) {
            if (ks[i] < 0 || vals[i])
                return node_fail(n, FERRY_EUNSUPPORTED, "the shape is not a whole multiple of N");
            od[i] = -ks[i];
        } else {
            if (vals[i] < 0)
                return node_fail(n, FERRY_ESHAPE, "a dim is negative");
            od[i] = vals[i];
        }
    }
    ferry_dtype dt = FERRY_F32;
    if (n->n_in > 1 && n->in[1] >= 0)
        dt = g->values[n->in[1]].dtype;
    set_out(g, n->out[0], dt, (int)cnt, od);
    /* a small known int64 fill of a static shape is shape math too */
    if (dt == FERRY_I64 && n->n_in > 1 && cnt == 1 && od[0] >= 0 && od[0] <= SYM_MAX) {
        int64_t v[SYM_MAX], fill = *(const int64_t *)g->values[n->in[1]].data;
        for (int64_t i = 0; i < od[0]; i++)
            v[i] = fill;
        return set_sym(g, n, od[0], v, NULL, 1, od);
    }
    return FERRY_OK;
}

/* Range(start, start + k*N, delta), delta dividing k: torch.arange(N) over
 * the batch size. Its length is (k/delta)*N and element i*(k/delta) + t of
 * it is start + i*k + t*delta: the sample's position times k plus a part
 * of its own (shape.c's batch_position says where that may go). Computed
 * at run time by the Range kernel, which reads start and delta. */
static int batch_range(graph *g, graph_node *n)
{
    const graph_value *s = &g->values[n->in[0]], *l = &g->values[n->in[1]],
                      *d = &g->values[n->in[2]];
    if (s->dtype != FERRY_I64 || !sym_i64(l) || !l->symk || graph_value_numel(l, 1) != 1 ||
        !known_const(s) || !known_const(d) || graph_value_numel(s, 1) != 1 ||
        graph_value_numel(d, 1) != 1)
        return 0;
    int64_t a = *(const int64_t *)s->data, step = *(const int64_t *)d->data;
    int64_t k = l->symk[0];
    if (((const int64_t *)l->data)[0] != a || k <= 0 || step <= 0 || k % step)
        return 0;
    int64_t len = -(k / step);
    set_out(g, n->out[0], FERRY_I64, 1, &len);
    g->values[n->out[0]].bpos = k;
    return 1;
}

ferry_status infer_range(graph *g, graph_node *n)
{
    const graph_value *s = &g->values[n->in[0]];
    for (int k = 0; k < 3; k++) {
        const graph_value *v = &g->values[n->in[k]];
        if (v->dtype != s->dtype)
            return node_fail(n, FERRY_EDTYPE, "start, limit and delta differ in type");
    }
    if (batch_range(g, n))
        return FERRY_OK;
    for (int k = 0; k < 3; k++) {
        const graph_value *v = &g->values[n->in[k]];
        if (!known_const(v) || graph_value_numel(v, 1) != 1)
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "input '%s' must be a scalar known at load (a Range whose length "
                              "depends on the data or the batch is not supported)",
                              v->name);
    }
    double a, b, d;
    const void *pa = s->data, *pb = g->values[n->in[1]].data, *pd = g->values[n->in[2]].data;
    switch (s->dtype) {
    case FERRY_F32: a = *(const float *)pa, b = *(const float *)pb, d = *(const float *)pd; break;
    case FERRY_I64:
        a = (double)*(const int64_t *)pa, b = (double)*(const int64_t *)pb,
        d = (double)*(const int64_t *)pd;
        break;
    case FERRY_I32:
        a = *(const int32_t *)pa, b = *(const int32_t *)pb, d = *(const int32_t *)pd;
        break;
    default:
        return node_failf(n, FERRY_EDTYPE, "type %s is not supported", ferry_dtype_name(s->dtype));
    }
    if (d == 0)
        return node_fail(n, FERRY_ESHAPE, "delta is 0");
    double len = (b - a) / d;
    if (!(len <= (double)(INT64_C(1) << 31)))
        return node_fail(n, FERRY_ESHAPE, "the range is too long");
    int64_t cnt = len > 0 ? (int64_t)len + ((double)(int64_t)len < len) : 0;
    set_out(g, n->out[0], s->dtype, 1, &cnt);
    return FERRY_OK;
}

/* EyeLike: ones on diagonal k of a 2-D shape (torch.eye(T) exports as
 * EyeLike(ConstantOfShape([T, T])), folded at load). A dim that holds the
 * batch is refused: sample i's row would depend on i. */
ferry_status infer_eye_like(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    if (x->ndim != 2)
        return node_failf(n, FERRY_ESHAPE, "input '%s' has rank %d; EyeLike takes a matrix",
                          x->name, x->ndim);
    if (x->dims[0] < 0 || x->dims[1] < 0)
        return node_failf(n, FERRY_EUNSUPPORTED,
                          "input '%s' holds the batch in a dim: each "
                          "sample's row of the identity would depend on where it is in the batch",
                          x->name);
    ferry_dtype dt = n->to == FERRY_DTYPE_UNDEFINED ? x->dtype : n->to;
    if (dt != FERRY_F32 && dt != FERRY_F16 && dt != FERRY_BF16 && dt != FERRY_F64 &&
        dt != FERRY_I64 && dt != FERRY_I32 && dt != FERRY_I8 && dt != FERRY_U8 && dt != FERRY_BOOL)
        return node_failf(n, FERRY_EDTYPE, "output type %s is not supported", ferry_dtype_name(dt));
    set_out(g, n->out[0], dt, 2, x->dims);
    return FERRY_OK;
}

ferry_status infer_trilu(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    if (x->ndim < 2)
        return node_fail(n, FERRY_ESHAPE, "input must have rank >= 2");
    if (x->dims[x->ndim - 1] < 0 || x->dims[x->ndim - 2] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "the matrix dims include the batch");
    n->starts[0] = 0;
    if (n->n_in > 1 && n->in[1] >= 0) {
        const graph_value *k = &g->values[n->in[1]];
        if (!known_const(k) || k->dtype != FERRY_I64 || graph_value_numel(k, 1) != 1)
            return node_fail(n, FERRY_EUNSUPPORTED, "k must be a constant int64 scalar");
        n->starts[0] = *(const int64_t *)k->data;
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

ferry_status infer_depth_to_space(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int64_t b = n->axis;
    if (x->ndim != 4 || x->dims[1] < 0 || x->dims[1] % (b * b))
        return node_fail(n, FERRY_ESHAPE,
                         "input must be [N,C,H,W] with C divisible by blocksize^2");
    int64_t od[4] = {x->dims[0], x->dims[1] / (b * b), x->dims[2] * b, x->dims[3] * b};
    set_out(g, n->out[0], x->dtype, 4, od);
    return FERRY_OK;
}

/* IsNaN, IsInf: a floating tensor in, bool of its shape out. */
ferry_status infer_float_test(graph *g, graph_node *n)
{
    const graph_value *a = &g->values[n->in[0]];
    if (!is_float_dtype(a->dtype))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          a->name, ferry_dtype_name(a->dtype));
    set_out(g, n->out[0], FERRY_BOOL, a->ndim, a->dims);
    return FERRY_OK;
}

/* OneHot: indices [d0..dr-1], depth (a scalar known at load, kept in
 * starts[0]) and values [off, on] -> values' dtype, with a dim of depth
 * inserted at axis (in [-r-1, r], resolved into axis). */
ferry_status infer_one_hot(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *vals = &g->values[n->in[2]];
    if (x->dtype != FERRY_I64 && x->dtype != FERRY_I32 && x->dtype != FERRY_F32)
        return node_failf(n, FERRY_EDTYPE,
                          "indices '%s' are %s; int64, int32 or float is supported", x->name,
                          ferry_dtype_name(x->dtype));
    if (x->ndim + 1 > FERRY_MAX_DIMS)
        return node_failf(n, FERRY_EUNSUPPORTED, "indices of rank %d leave no room for the depth",
                          x->ndim);
    float depth;
    ferry_status st = const_float(g, n, 1, "depth", &depth);
    if (st)
        return st;
    /* An int64 depth is checked as given: 16777217 would round to a float
     * of 2^24 and pass, one short of what the model asked. */
    const graph_value *dv = &g->values[n->in[1]];
    double dd = dv->dtype == FERRY_I64 ? (double)*(const int64_t *)dv->data : (double)depth;
    if (!(dd >= 1.0) || dd > (double)(1 << 24) || dd != floor(dd))
        return node_failf(n, FERRY_EUNSUPPORTED, "depth %.17g must be a whole number in [1, %d]",
                          dd, 1 << 24);
    if (vals->ndim != 1 || vals->dims[0] != 2)
        return node_failf(n, FERRY_ESHAPE, "values '%s' must hold two elements [off, on]",
                          vals->name);
    if (vals->dtype != FERRY_F32 && vals->dtype != FERRY_I64 && vals->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "values '%s' are %s; f32, int64 or int32 is supported",
                          vals->name, ferry_dtype_name(vals->dtype));
    int64_t axis;
    if (norm_axis(n->axis, x->ndim + 1, 0, &axis))
        return node_failf(n, FERRY_ESHAPE, "axis %d is out of range for indices of rank %d",
                          n->axis, x->ndim);
    n->axis = (int)axis;
    n->starts[0] = (int64_t)depth;
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0, j = 0; i <= x->ndim; i++)
        od[i] = i == axis ? (int64_t)depth : x->dims[j++];
    set_out(g, n->out[0], vals->dtype, x->ndim + 1, od);
    return FERRY_OK;
}
