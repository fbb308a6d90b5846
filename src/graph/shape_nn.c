/*
 * shape_nn.c - shape rules of the convolutional and recurrent operators:
 * Conv, ConvTranspose, pools, BatchNormalization, Resize, Pad, Clip,
 * PRelu, LSTM, GRU. Each resolves its attributes for the backends: spatial
 * rank, kernel from W, auto_pad turned into explicit pads, Resize's scales
 * per dim, Pad's begins and ends per dim.
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

static ferry_status need_float(const graph_node *n, const graph_value *x)
{
    if (!is_float_dtype(x->dtype))
        return node_failf(n, FERRY_EDTYPE, "input '%s' is %s; a floating-point type is required",
                          x->name, ferry_dtype_name(x->dtype));
    return FERRY_OK;
}

/* X is [N, C, spatial...] with static C and spatial dims, N anything. */
static ferry_status check_nc(const graph_node *n, const graph_value *x, int min_sp)
{
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    if (x->ndim < 2 + min_sp || x->ndim > 2 + GRAPH_MAX_SPATIAL) {
        SHAPE_STR(sx, x);
        return node_failf(n, FERRY_ESHAPE, "input '%s' has shape %s; expected [N,C,%s]", x->name,
                          sx, min_sp ? "H,W" : "...");
    }
    for (int i = 1; i < x->ndim; i++)
        if (x->dims[i] < 0)
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "input '%s': only dim 0 may depend on the batch", x->name);
    return FERRY_OK;
}

/* Settles strides/dilations/pads defaults and the spatial rank; checks the
 * attribute lengths parse_spatial recorded in starts[0..4]. */
static ferry_status spatial_defaults(graph_node *n, int nsp)
{
    conv_attrs *a = &n->conv;
    const char *names[] = {"strides", "dilations", "pads", "output_padding", "output_shape"};
    int want[] = {nsp, nsp, 2 * nsp, nsp, nsp};
    if (a->nsp >= 0 && a->nsp != nsp)
        return node_failf(n, FERRY_ESHAPE, "kernel_shape has %d dims; the input has %d spatial",
                          a->nsp, nsp);
    for (int i = 0; i < 5; i++)
        if (n->starts[i] >= 0 && n->starts[i] != want[i])
            return node_failf(n, FERRY_ESHAPE, "%s has %lld values; expected %d", names[i],
                              (long long)n->starts[i], want[i]);
    for (int i = 0; i < nsp; i++) {
        /* attribute values a model could hold but no network has: kept
         * far from int64 overflow in the arithmetic below */
        const int64_t big = INT64_C(1) << 24;
        if (a->kernel[i] > big || a->strides[i] > big || a->dilations[i] > big ||
            a->pads[i] > big || a->pads[i + nsp] > big || a->out_pad[i] > big ||
            a->out_shape[i] > big || a->kernel[i] < 0)
            return node_fail(n, FERRY_ESHAPE, "a kernel, stride, dilation or pad is out of range");
        if (n->starts[0] < 0)
            a->strides[i] = 1;
        if (n->starts[1] < 0)
            a->dilations[i] = 1;
        if (n->starts[2] < 0)
            a->pads[i] = a->pads[i + nsp] = 0;
        if (n->starts[3] < 0)
            a->out_pad[i] = 0;
        if (a->strides[i] < 1 || a->dilations[i] < 1 || a->pads[i] < 0 || a->pads[i + nsp] < 0)
            return node_fail(n, FERRY_ESHAPE, "strides and dilations must be >= 1, pads >= 0");
    }
    a->nsp = nsp;
    for (int i = 0; i < 5; i++)
        n->starts[i] = want[i]; /* resolved: a second run sees the lengths it wants */
    return FERRY_OK;
}

/* Output extent of one spatial dim; resolves auto_pad into pads. */
static ferry_status conv_extent(graph_node *n, int i, int64_t in, int64_t *out)
{
    conv_attrs *a = &n->conv;
    int nsp = a->nsp;
    int64_t k = a->kernel[i], s = a->strides[i], d = a->dilations[i];
    int64_t ek = (k - 1) * d + 1;
    if (a->auto_pad == AUTO_PAD_SAME_UPPER || a->auto_pad == AUTO_PAD_SAME_LOWER) {
        int64_t o = (in + s - 1) / s;
        int64_t total = (o - 1) * s + ek - in;
        if (total < 0)
            total = 0;
        int64_t small = total / 2, big = total - small;
        a->pads[i] = a->auto_pad == AUTO_PAD_SAME_UPPER ? small : big;
        a->pads[i + nsp] = a->auto_pad == AUTO_PAD_SAME_UPPER ? big : small;
        a->auto_pad = i == nsp - 1 ? AUTO_PAD_NOTSET : a->auto_pad;
    } else if (a->auto_pad == AUTO_PAD_VALID) {
        a->pads[i] = a->pads[i + nsp] = 0;
        a->auto_pad = i == nsp - 1 ? AUTO_PAD_NOTSET : a->auto_pad;
    }
    int64_t span = in + a->pads[i] + a->pads[i + nsp] - ek;
    if (span < 0)
        return node_failf(n, FERRY_ESHAPE,
                          "the kernel (%lld, dilation %lld) is larger than the padded input (%lld) "
                          "on spatial dim %d",
                          (long long)k, (long long)d,
                          (long long)(in + a->pads[i] + a->pads[i + nsp]), i);
    int64_t o = a->ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    /* ceil_mode: the last window must start inside the input or its left pad */
    if (a->ceil_mode && (o - 1) * s >= in + a->pads[i])
        o--;
    *out = o;
    return FERRY_OK;
}

ferry_status infer_conv(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    ferry_status st = check_nc(n, x, 1);
    if (st)
        return st;
    int nsp = x->ndim - 2;
    conv_attrs *a = &n->conv;
    if (w->ndim != x->ndim) {
        SHAPE_STR(sw, w);
        return node_failf(n, FERRY_ESHAPE, "weight '%s' has shape %s; expected rank %d", w->name,
                          sw, x->ndim);
    }
    if (a->nsp < 0 || a->nsp == 0)
        for (int i = 0; i < nsp; i++)
            a->kernel[i] = w->dims[2 + i];
    if (a->nsp == 0)
        a->nsp = -1;
    if ((st = spatial_defaults(n, nsp)))
        return st;
    int64_t c = x->dims[1], m = w->dims[0], gr = a->group;
    if (gr < 1 || c % gr || m % gr || w->dims[1] != c / gr) {
        SHAPE_STR(sx, x);
        SHAPE_STR(sw, w);
        return node_failf(n, FERRY_ESHAPE, "input %s and weight %s do not agree with group %lld",
                          sx, sw, (long long)gr);
    }
    for (int i = 0; i < nsp; i++)
        if (a->kernel[i] != w->dims[2 + i])
            return node_fail(n, FERRY_ESHAPE, "kernel_shape differs from the weight's dims");
    if (n->n_in > 2 && n->in[2] >= 0) {
        const graph_value *b = &g->values[n->in[2]];
        if (b->ndim != 1 || b->dims[0] != m)
            return node_failf(n, FERRY_ESHAPE, "bias '%s' must be [%lld]", b->name, (long long)m);
    }
    int64_t od[FERRY_MAX_DIMS] = {x->dims[0], m};
    for (int i = 0; i < nsp; i++)
        if ((st = conv_extent(n, i, x->dims[2 + i], &od[2 + i])))
            return st;
    if (n->n_in > 3 && n->in[3] >= 0) { /* a fused residual: the output's shape */
        const graph_value *r = &g->values[n->in[3]];
        for (int i = 0; i < x->ndim; i++)
            if (r->ndim != x->ndim || r->dims[i] != od[i])
                return node_fail(n, FERRY_ESHAPE, "fused residual's shape differs from the output");
    }
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_conv_transpose(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
    ferry_status st = check_nc(n, x, 1);
    if (st)
        return st;
    int nsp = x->ndim - 2;
    conv_attrs *a = &n->conv;
    if (w->ndim != x->ndim)
        return node_failf(n, FERRY_ESHAPE, "weight '%s' must have rank %d", w->name, x->ndim);
    if (a->nsp <= 0) {
        for (int i = 0; i < nsp; i++)
            a->kernel[i] = w->dims[2 + i];
        a->nsp = -1;
    }
    int has_out_shape = n->starts[4] > 0;
    if ((st = spatial_defaults(n, nsp)))
        return st;
    int64_t c = x->dims[1], gr = a->group;
    if (gr < 1 || c % gr || w->dims[0] != c)
        return node_failf(n, FERRY_ESHAPE, "weight '%s' must be [C=%lld, M/group, k...]", w->name,
                          (long long)c);
    /* the CPU kernel sizes the weight from kernel_shape */
    for (int i = 0; i < nsp; i++)
        if (a->kernel[i] != w->dims[2 + i])
            return node_fail(n, FERRY_ESHAPE, "kernel_shape differs from the weight's dims");
    int64_t m = w->dims[1] * gr;
    if (n->n_in > 2 && n->in[2] >= 0) {
        const graph_value *b = &g->values[n->in[2]];
        if (b->ndim != 1 || b->dims[0] != m)
            return node_failf(n, FERRY_ESHAPE, "bias '%s' must be [%lld]", b->name, (long long)m);
    }
    int64_t od[FERRY_MAX_DIMS] = {x->dims[0], m};
    for (int i = 0; i < nsp; i++) {
        int64_t in = x->dims[2 + i], s = a->strides[i], d = a->dilations[i], k = a->kernel[i];
        int64_t ek = (k - 1) * d + 1;
        if (a->out_pad[i] < 0 || (a->out_pad[i] >= s && a->out_pad[i] >= d))
            return node_fail(n, FERRY_ESHAPE,
                             "output_padding must be smaller than the stride or the dilation");
        if (has_out_shape || a->auto_pad == AUTO_PAD_SAME_UPPER ||
            a->auto_pad == AUTO_PAD_SAME_LOWER) {
            int64_t want = has_out_shape ? a->out_shape[i] : in * s;
            int64_t total = s * (in - 1) + a->out_pad[i] + ek - want;
            if (total < 0)
                total = 0;
            int64_t small = total / 2, big = total - small;
            int upper = a->auto_pad != AUTO_PAD_SAME_LOWER;
            a->pads[i] = upper ? small : big;
            a->pads[i + nsp] = upper ? big : small;
        } else if (a->auto_pad == AUTO_PAD_VALID) {
            a->pads[i] = a->pads[i + nsp] = 0;
        }
        od[2 + i] = s * (in - 1) + a->out_pad[i] + ek - a->pads[i] - a->pads[i + nsp];
        if (od[2 + i] < 1)
            return node_fail(n, FERRY_ESHAPE, "the output would be empty");
    }
    a->auto_pad = AUTO_PAD_NOTSET;
    a->out_shape[0] = 0;
    n->starts[4] = -1;
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_pool(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = check_nc(n, x, 1);
    if (st)
        return st;
    int nsp = x->ndim - 2;
    if (n->conv.nsp <= 0)
        return node_fail(n, FERRY_EPARSE, "attribute 'kernel_shape' is missing");
    if ((st = spatial_defaults(n, nsp)))
        return st;
    for (int i = 0; i < nsp; i++)
        if (n->conv.kernel[i] < 1)
            return node_fail(n, FERRY_ESHAPE, "kernel_shape must be >= 1");
    if (n->op == OP_AVG_POOL)
        for (int i = 0; i < nsp; i++)
            if (n->conv.dilations[i] != 1)
                return node_fail(n, FERRY_EUNSUPPORTED, "dilations on AveragePool");
    int64_t od[FERRY_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int i = 0; i < nsp; i++) {
        if ((st = conv_extent(n, i, x->dims[2 + i], &od[2 + i])))
            return st;
        if (n->conv.pads[i] >= n->conv.kernel[i] * n->conv.dilations[i] ||
            n->conv.pads[i + nsp] >= n->conv.kernel[i] * n->conv.dilations[i])
            return node_fail(n, FERRY_ESHAPE, "a pad is not smaller than the kernel");
    }
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_global_pool(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = check_nc(n, x, 0);
    if (st)
        return st;
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        od[i] = i < 2 ? x->dims[i] : 1;
    set_out(g, n->out[0], x->dtype, x->ndim, od);
    return FERRY_OK;
}

ferry_status infer_batch_norm(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    if (x->ndim < 2 || x->dims[1] < 0)
        return node_fail(n, FERRY_ESHAPE, "input must be [N,C,...]");
    static const char *what[] = {"", "scale", "B", "mean", "var"};
    for (int k = 1; k < 5; k++) {
        const graph_value *p = &g->values[n->in[k]];
        if (p->ndim != 1 || p->dims[0] != x->dims[1])
            return node_failf(n, FERRY_ESHAPE, "%s '%s' must be [%lld]", what[k], p->name,
                              (long long)x->dims[1]);
    }
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->values[n->out[k]].n_consumers)
            return node_fail(n, FERRY_EUNSUPPORTED, "training outputs are not supported");
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* InstanceNormalization: each (sample, channel) row normalized over the
 * spatial dims, which must not hold the batch (check_nc): never across
 * samples. GroupNorm with one channel a group exports as this (Wav2Vec2's
 * first feature convolution). */
ferry_status infer_instance_norm(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = check_nc(n, x, 0);
    if (st)
        return st;
    if (x->ndim < 3)
        return node_failf(n, FERRY_ESHAPE, "input '%s' must be [N,C,D1,...]", x->name);
    static const char *what[] = {"", "scale", "B"};
    for (int k = 1; k < 3; k++) {
        const graph_value *p = &g->values[n->in[k]];
        if (p->ndim != 1 || p->dims[0] != x->dims[1] || p->dtype != x->dtype)
            return node_failf(n, FERRY_ESHAPE, "%s '%s' must be [%lld] of the input's type",
                              what[k], p->name, (long long)x->dims[1]);
    }
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* GridSample: X [N,C,H,W] sampled at grid [N,Ho,Wo,2] (x, y in [-1, 1])
 * into [N,C,Ho,Wo]; each sample reads its own image only (the grid's batch
 * is X's). 4-D only: opset 20's volumetric form is refused by its rank. */
ferry_status infer_grid_sample(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *gr = &g->values[n->in[1]];
    ferry_status st = check_nc(n, x, 2);
    if (st)
        return st;
    if (x->ndim != 4)
        return node_failf(n, FERRY_EUNSUPPORTED,
                          "input '%s' has rank %d; 4 ([N,C,H,W]) is supported", x->name, x->ndim);
    if (gr->ndim != 4 || gr->dtype != x->dtype || gr->dims[0] != x->dims[0] || gr->dims[3] != 2 ||
        gr->dims[1] < 0 || gr->dims[2] < 0) {
        SHAPE_STR(sg, gr);
        return node_failf(
            n, FERRY_ESHAPE,
            "grid '%s' has shape %s; expected [N,Ho,Wo,2] of the input's type and batch", gr->name,
            sg);
    }
    if ((x->dims[2] == 0 || x->dims[3] == 0) && gr->dims[1] * gr->dims[2] > 0)
        return node_failf(n, FERRY_ESHAPE,
                          "input '%s' is empty in its height or width; there is nothing to sample",
                          x->name); /* as torch.grid_sample, rather than zeros */
    int64_t od[4] = {x->dims[0], x->dims[1], gr->dims[1], gr->dims[2]};
    set_out(g, n->out[0], x->dtype, 4, od);
    return FERRY_OK;
}

/* Resize (opset 11+: X, roi, scales, sizes; opset 10 Upsample-like: X,
 * scales): scales or sizes known at load, over the spatial dims only. */
ferry_status infer_resize(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    int r = x->ndim;
    int si = g->opset >= 11 ? 2 : 1, zi = 3;
    const graph_value *sc = n->n_in > si && n->in[si] >= 0 ? &g->values[n->in[si]] : NULL;
    const graph_value *sz = n->n_in > zi && n->in[zi] >= 0 ? &g->values[n->in[zi]] : NULL;
    if (sc && graph_value_numel(sc, 1) == 0)
        sc = NULL;
    if (sz && graph_value_numel(sz, 1) == 0)
        sz = NULL;
    if (!sc && !sz && n->n_in == 1 && n->scales[0] > 0) {
        /* resolved by an earlier run: the output keeps its dims */
        const graph_value *o = &g->values[n->out[0]];
        if (o->ndim != r)
            return node_fail(n, FERRY_EINTERNAL, "resolved output rank changed");
        return FERRY_OK;
    }
    if (!!sc == !!sz)
        return node_fail(n, FERRY_EPARSE, "exactly one of scales and sizes must be given");
    int64_t od[FERRY_MAX_DIMS];
    if (sc) {
        if (!known_const(sc) || sc->dtype != FERRY_F32 || graph_value_numel(sc, 1) != r)
            return node_failf(n, FERRY_EUNSUPPORTED, "scales '%s' must be a constant f32 [%d]",
                              sc->name, r);
        const float *s = sc->data;
        for (int i = 0; i < r; i++) {
            if (!(s[i] > 0))
                return node_fail(n, FERRY_ESHAPE, "a scale is not positive");
            if (x->dims[i] < 0) {
                if (s[i] != 1.0f)
                    return node_fail(n, FERRY_EUNSUPPORTED, "resizes the batch dimension");
                od[i] = x->dims[i];
            } else {
                double o = floor((double)x->dims[i] * s[i]);
                if (!(o <= (double)(INT64_C(1) << 31)))
                    return node_failf(n, FERRY_ESHAPE, "scale %g makes dim %d too large", s[i], i);
                od[i] = (int64_t)o;
            }
            n->scales[i] = s[i];
        }
    } else {
        const int64_t *v, *ks;
        int64_t cnt;
        if ((st = known_ints(g, n, zi, "sizes", &v, &ks, &cnt)))
            return st;
        if (cnt != r)
            return node_failf(n, FERRY_ESHAPE, "sizes has %lld entries for rank %d", (long long)cnt,
                              r);
        for (int i = 0; i < r; i++) {
            if (x->dims[i] < 0) {
                if (!ks || ks[i] != -x->dims[i] || v[i])
                    return node_fail(n, FERRY_EUNSUPPORTED, "resizes the batch dimension");
                od[i] = x->dims[i];
                n->scales[i] = 1.0f;
                continue;
            }
            if ((ks && ks[i]) || v[i] < 1)
                return node_fail(n, FERRY_ESHAPE, "a size is not a positive number");
            od[i] = v[i];
            n->scales[i] = (float)((double)v[i] / (double)x->dims[i]);
        }
    }
    for (int i = 0; i < r; i++) {
        if (od[i] == 0)
            return node_fail(n, FERRY_ESHAPE, "the output would be empty");
        /* sizes can make something of nothing; the kernels would read
         * before the input (clamped to index -1) */
        if (x->dims[i] == 0)
            return node_failf(n, FERRY_ESHAPE, "input '%s' is empty in dim %d: nothing to resize",
                              x->name, i);
    }
    if (r >= 2 && (od[1] != x->dims[1] || (od[0] != x->dims[0])))
        return node_fail(n, FERRY_EUNSUPPORTED, "resizes the batch or channel dimension");
    /* the scales/sizes are now in the node */
    for (int k = 1; k < n->n_in; k++)
        if (n->in[k] >= 0) {
            g->values[n->in[k]].n_consumers--;
            n->in[k] = -1;
        }
    n->n_in = 1;
    set_out(g, n->out[0], x->dtype, r, od);
    return FERRY_OK;
}

ferry_status infer_pad(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    ferry_status st;
    if (n->n_in > 1 && n->in[1] >= 0) {
        const int64_t *pv;
        int64_t cnt;
        if ((st = const_ints(g, n, 1, "pads", &pv, &cnt)))
            return st;
        const int64_t *av = NULL;
        int64_t na = r;
        if (n->n_in > 3 && n->in[3] >= 0 && (st = const_ints(g, n, 3, "axes", &av, &na)))
            return st;
        if (cnt != 2 * na)
            return node_failf(n, FERRY_ESHAPE, "pads has %lld values; expected %lld",
                              (long long)cnt, (long long)(2 * na));
        for (int i = 0; i < r; i++)
            n->starts[i] = n->ends[i] = 0;
        for (int64_t i = 0; i < na; i++) {
            int64_t a = av ? av[i] : i;
            if (norm_axis(a, r, 0, &a))
                return node_fail(n, FERRY_ESHAPE, "an axis is out of range");
            n->starts[a] = pv[i];
            n->ends[a] = pv[i + na];
        }
        float value = 0.0f;
        if (n->n_in > 2 && n->in[2] >= 0 && (st = const_float(g, n, 2, "constant_value", &value)))
            return st;
        n->alpha = value;
        for (int k = 1; k < n->n_in; k++)
            if (n->in[k] >= 0) {
                g->values[n->in[k]].n_consumers--;
                n->in[k] = -1;
            }
        n->n_in = 1;
    }
    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        if (x->dims[i] < 0) {
            if (n->starts[i] || n->ends[i])
                return node_fail(n, FERRY_EUNSUPPORTED, "pads the batch dimension");
            od[i] = x->dims[i];
            continue;
        }
        const int64_t big = INT64_C(1) << 40;
        if (n->starts[i] > big || n->starts[i] < -big || n->ends[i] > big || n->ends[i] < -big)
            return node_fail(n, FERRY_ESHAPE, "a pad is out of range");
        od[i] = x->dims[i] + n->starts[i] + n->ends[i];
        if (od[i] < 0)
            return node_fail(n, FERRY_ESHAPE, "negative pads remove more than the dim holds");
        if (n->mode == PAD_REFLECT && (n->starts[i] >= x->dims[i] || n->ends[i] >= x->dims[i]))
            return node_fail(n, FERRY_ESHAPE, "reflect pads must be smaller than the dim");
    }
    set_out(g, n->out[0], x->dtype, r, od);
    return FERRY_OK;
}

ferry_status infer_clip(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]];
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    if (n->n_in > 1 && n->in[1] >= 0 && (st = const_float(g, n, 1, "min", &n->alpha)))
        return st;
    if (n->n_in > 2 && n->in[2] >= 0 && (st = const_float(g, n, 2, "max", &n->act_beta)))
        return st;
    for (int k = 1; k < n->n_in; k++)
        if (n->in[k] >= 0) {
            g->values[n->in[k]].n_consumers--;
            n->in[k] = -1;
        }
    n->n_in = 1;
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

ferry_status infer_prelu(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *s = &g->values[n->in[1]];
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    int r;
    int64_t od[FERRY_MAX_DIMS];
    if ((st = broadcast_dims(n, x, s, &r, od)))
        return st;
    for (int i = 0; i < r; i++)
        if (r != x->ndim || od[i] != x->dims[i])
            return node_fail(n, FERRY_ESHAPE, "slope does not broadcast to the input");
    set_out(g, n->out[0], x->dtype, x->ndim, x->dims);
    return FERRY_OK;
}

/* LSTM / GRU / RNN: X [T,N,I] (layout 0) or [N,T,I] (layout 1); W [D,G*H,I],
 * R [D,G*H,H], B [D,2*G*H] with G = 4 (LSTM), 3 (GRU) or 1 (RNN). */
ferry_status infer_rnn(graph *g, graph_node *n)
{
    const graph_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]],
                      *rr = &g->values[n->in[2]];
    ferry_status st = need_float(n, x);
    if (st)
        return st;
    int64_t h = n->hidden, gates = n->op == OP_LSTM ? 4 : n->op == OP_GRU ? 3 : 1;
    int64_t dirs = n->direction == RNN_BIDIRECTIONAL ? 2 : 1;
    if (x->ndim != 3)
        return node_fail(n, FERRY_ESHAPE, "X must be 3-D");
    int64_t t = n->layout ? x->dims[1] : x->dims[0], b = n->layout ? x->dims[0] : x->dims[1];
    int64_t in = x->dims[2];
    if (t < 0 || in < 0)
        return node_fail(n, FERRY_EUNSUPPORTED, "the sequence or input dim depends on the batch");
    if (n->x_projected) { /* X holds the projection (fuse_rnn.c); W its input size */
        if (in != dirs * gates * h || w->ndim != 3)
            return node_fail(n, FERRY_EINTERNAL, "a projected X must be [.., D*G*H]");
        in = w->dims[2];
    }
    if (w->ndim != 3 || w->dims[0] != dirs || w->dims[1] != gates * h || w->dims[2] != in)
        return node_failf(n, FERRY_ESHAPE, "W '%s' must be [%lld,%lld,%lld]", w->name,
                          (long long)dirs, (long long)(gates * h), (long long)in);
    if (rr->ndim != 3 || rr->dims[0] != dirs || rr->dims[1] != gates * h || rr->dims[2] != h)
        return node_failf(n, FERRY_ESHAPE, "R '%s' must be [%lld,%lld,%lld]", rr->name,
                          (long long)dirs, (long long)(gates * h), (long long)h);
    if (n->n_in > 3 && n->in[3] >= 0) {
        const graph_value *bb = &g->values[n->in[3]];
        if (bb->ndim != 2 || bb->dims[0] != dirs || bb->dims[1] != 2 * gates * h)
            return node_failf(n, FERRY_ESHAPE, "B '%s' must be [%lld,%lld]", bb->name,
                              (long long)dirs, (long long)(2 * gates * h));
    }
    if (n->op == OP_LSTM && n->n_in > 7 && n->in[7] >= 0) {
        const graph_value *p = &g->values[n->in[7]];
        if (p->ndim != 2 || p->dims[0] != dirs || p->dims[1] != 3 * h)
            return node_fail(n, FERRY_ESHAPE, "P must be [D,3H]");
    }
    if (n->n_in > 4 && n->in[4] >= 0) {
        const graph_value *sl = &g->values[n->in[4]];
        if (sl->dtype != FERRY_I32)
            return node_fail(n, FERRY_EDTYPE, "sequence_lens must be int32");
        /* the kernel reads one length per sample */
        if (sl->ndim != 1 || sl->dims[0] != b) {
            SHAPE_STR(ss, sl);
            SHAPE_STR(sx, x);
            return node_failf(n, FERRY_ESHAPE,
                              "sequence_lens '%s' has shape %s; expected [batch] of X %s", sl->name,
                              ss, sx);
        }
    }
    for (int k = 5; k < n->n_in && k < 7; k++) {
        if (n->in[k] < 0)
            continue;
        const graph_value *s = &g->values[n->in[k]];
        int64_t want[3] = {n->layout ? b : dirs, n->layout ? dirs : b, h};
        for (int i = 0; i < 3; i++)
            if (s->ndim != 3 || s->dims[i] != want[i])
                return node_failf(n, FERRY_ESHAPE, "initial state '%s' has the wrong shape",
                                  s->name);
    }
    int64_t yd[4], hd[3];
    if (n->layout) {
        yd[0] = b, yd[1] = t, yd[2] = dirs, yd[3] = h;
        hd[0] = b, hd[1] = dirs, hd[2] = h;
    } else {
        yd[0] = t, yd[1] = dirs, yd[2] = b, yd[3] = h;
        hd[0] = dirs, hd[1] = b, hd[2] = h;
    }
    if (n->out[0] >= 0)
        set_out(g, n->out[0], x->dtype, 4, yd);
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0)
            set_out(g, n->out[k], x->dtype, 3, hd);
    return FERRY_OK;
}

/* EmbeddingBag: W [rows, D] and X [N, L] int ids -> [N, D]. */
ferry_status infer_embedding_bag(graph *g, graph_node *n)
{
    const graph_value *w = &g->values[n->in[0]], *x = &g->values[n->in[1]];
    ferry_status st = need_float(n, w);
    if (st)
        return st;
    if (x->dtype != FERRY_I64 && x->dtype != FERRY_I32)
        return node_failf(n, FERRY_EDTYPE, "indices '%s' are %s; int64 is required", x->name,
                          ferry_dtype_name(x->dtype));
    if (w->ndim != 2 || x->ndim != 2 || w->dims[0] < 0 || x->dims[1] < 0)
        return node_fail(n, FERRY_EUNSUPPORTED,
                         "only a 2-D table and 2-D indices [N, bag] are supported (1-D "
                         "indices with offsets are not batchable per sample)");
    int64_t od[2] = {x->dims[0], w->dims[1]};
    set_out(g, n->out[0], w->dtype, 2, od);
    return FERRY_OK;
}
