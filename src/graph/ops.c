/*
 * ops.c - the operator table (see ops.h): every operator Ferry loads, one
 * row each, with the functions that read its attributes. Shape rules live
 * in shape.c (the MLP-era ops), shape_nn.c (convolutional and recurrent
 * networks) and shape_data.c (shapes, data movement, comparisons); each row
 * names its own.
 *
 * Inputs that ONNX moved from attributes to tensors over the opsets (Slice
 * at 10, Clip and Pad at 11, ReduceSum, Split, Squeeze and Unsqueeze at 13,
 * the other reductions at 18) are read by the shape rule, which sees both
 * forms: a parse function stores the attribute form, the shape rule prefers
 * the input when present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/einsum.h"
#include "graph/ops.h"
#include "util/error.h"

/* ------------------------------------------------------------ attributes */

static ferry_status bad_type(const op_parse_ctx *c, const char *attr, const char *want)
{
    return ferry_fail(FERRY_EPARSE, "node '%s' (%s): attribute '%s' must be %s", c->name, c->op,
                      attr, want);
}

ferry_status op_attr_float(const op_parse_ctx *c, const char *name, float def, float *out)
{
    op_attr a;
    *out = def;
    if (c->find(c->reader, name, &a))
        return FERRY_OK;
    if (a.type != OP_ATTR_FLOAT)
        return bad_type(c, name, "a float");
    *out = a.f;
    return FERRY_OK;
}

ferry_status op_attr_int(const op_parse_ctx *c, const char *name, int64_t def, int64_t lo,
                         int64_t hi, int64_t *out)
{
    op_attr a;
    *out = def;
    if (c->find(c->reader, name, &a))
        return FERRY_OK;
    if (a.type != OP_ATTR_INT)
        return bad_type(c, name, "an int");
    if (a.i < lo || a.i > hi)
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (%s): attribute '%s' is %lld, outside [%lld, %lld]", c->name,
                          c->op, name, (long long)a.i, (long long)lo, (long long)hi);
    *out = a.i;
    return FERRY_OK;
}

ferry_status op_attr_ints(const op_parse_ctx *c, const char *name, int64_t *out, int max, int *n)
{
    op_attr a;
    *n = -1;
    if (c->find(c->reader, name, &a))
        return FERRY_OK;
    if (a.type != OP_ATTR_INTS)
        return bad_type(c, name, "a list of ints");
    if (a.n > (size_t)max)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): attribute '%s' has %zu values; at most %d", c->name,
                          c->op, name, a.n, max);
    for (size_t i = 0; i < a.n; i++)
        out[i] = a.ints[i];
    *n = (int)a.n;
    return FERRY_OK;
}

ferry_status op_attr_enum(const op_parse_ctx *c, const char *name, const char *const *choices,
                          int def, int *out)
{
    op_attr a;
    *out = def;
    if (c->find(c->reader, name, &a))
        return FERRY_OK;
    if (a.type != OP_ATTR_STRING)
        return bad_type(c, name, "a string");
    char list[256];
    size_t at = 0;
    list[0] = '\0';
    for (int i = 0; choices[i]; i++) {
        if (strlen(choices[i]) == a.s_len && !memcmp(choices[i], a.s, a.s_len)) {
            *out = i;
            return FERRY_OK;
        }
        if (at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", i ? ", " : "",
                                   choices[i]);
    }
    int shown = a.s_len > 64 ? 64 : (int)a.s_len;
    return ferry_fail(FERRY_EUNSUPPORTED,
                      "node '%s' (%s): attribute %s = \"%.*s\" is not supported (supported: %s)",
                      c->name, c->op, name, shown, a.s, list);
}

/* ------------------------------------------------------ parse functions */

static ferry_status parse_gemm(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    int64_t v;
    if ((st = op_attr_float(c, "alpha", 1.0f, &n->alpha)) ||
        (st = op_attr_float(c, "beta", 1.0f, &n->beta)))
        return st;
    if ((st = op_attr_int(c, "transA", 0, 0, 1, &v)))
        return st;
    n->trans_a = (int)v;
    if ((st = op_attr_int(c, "transB", 0, 0, 1, &v)))
        return st;
    n->trans_b = (int)v;
    return FERRY_OK;
}

/* Einsum's equation, as einsum.h's labels: "bhid,bhjd->bhij" (spaces
 * allowed, one "..." an operand). Without "->" the output is implicit
 * (mode3 -1), spelled out by the shape rule with the ranks. */
static ferry_status parse_einsum(const op_parse_ctx *c, graph_node *n)
{
    op_attr a;
    if (c->find(c->reader, "equation", &a) || a.type != OP_ATTR_STRING)
        return ferry_fail(FERRY_EPARSE, "node '%s' (Einsum): attribute 'equation' is missing",
                          c->name);
    int64_t *lists[3] = {n->axes, n->perm, n->starts};
    int cnt[3] = {0, 0, 0}, op = 0, out = 0, dots = 0;
    for (size_t i = 0; i < a.s_len; i++) {
        char ch = a.s[i];
        int64_t label;
        if (ch == ' ')
            continue;
        if (ch == ',' && !out) {
            if (++op > 1)
                return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (Einsum): more than two operands",
                                  c->name);
            dots = 0;
            continue;
        }
        if (ch == '-' && !out && i + 1 < a.s_len && a.s[i + 1] == '>') {
            out = 1, dots = 0, i++;
            continue;
        }
        if (ch == '.' && i + 2 < a.s_len && a.s[i + 1] == '.' && a.s[i + 2] == '.' && !dots++)
            label = EINSUM_ELLIPSIS, i += 2;
        else if (ch >= 'A' && ch <= 'Z')
            label = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            label = 26 + ch - 'a';
        else
            return ferry_fail(FERRY_EPARSE, "node '%s' (Einsum): equation \"%.*s\" has '%c' at %zu",
                              c->name, a.s_len > 64 ? 64 : (int)a.s_len, a.s, ch, i);
        int *k = &cnt[out ? 2 : op];
        if (*k == FERRY_MAX_DIMS)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "node '%s' (Einsum): more than %d labels an operand", c->name,
                              FERRY_MAX_DIMS);
        lists[out ? 2 : op][(*k)++] = label;
    }
    if (op + 1 != n->n_in)
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (Einsum): the equation has %d operands for %d inputs", c->name,
                          op + 1, n->n_in);
    n->mode = op + 1;
    n->n_axes = cnt[0];
    n->mode2 = cnt[1];
    n->mode3 = out ? cnt[2] : -1;
    return FERRY_OK;
}

/* MatMul with a 2-D constant B is a Gemm (trans_b 0, alpha = beta = 1). */
static ferry_status parse_matmul(const op_parse_ctx *c, graph_node *n)
{
    const graph_value *b = &c->g->values[n->in[1]];
    if (b->is_const && b->ndim == 2)
        n->op = OP_GEMM;
    return FERRY_OK;
}

static ferry_status parse_alpha(const op_parse_ctx *c, graph_node *n)
{
    float def = n->op == OP_LEAKY_RELU ? 0.01f : 1.0f;
    ferry_status st = op_attr_float(c, "alpha", def, &n->alpha);
    /* Celu divides by alpha (alpha (exp(x / alpha) - 1)): 0 would make
     * every negative input NaN; torch.celu refuses it too. */
    if (st == FERRY_OK && n->op == OP_CELU && !(n->alpha != 0.0f && isfinite(n->alpha)))
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (%s): attribute 'alpha' is %g; it must be finite "
                          "and not 0",
                          c->name, c->op, (double)n->alpha);
    return st;
}

static ferry_status parse_gelu(const op_parse_ctx *c, graph_node *n)
{
    static const char *const modes[] = {"none", "tanh", NULL};
    return op_attr_enum(c, "approximate", modes, 0, &n->approximate);
}

static ferry_status parse_axis(const op_parse_ctx *c, graph_node *n, int64_t def)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "axis", def, -FERRY_MAX_DIMS, FERRY_MAX_DIMS, &v);
    n->axis = (int)v;
    return st;
}

static ferry_status parse_gather_nd(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "batch_dims", 0, 0, FERRY_MAX_DIMS, &v);
    n->mode = (int)v;
    return st;
}

static ferry_status parse_softmax(const op_parse_ctx *c, graph_node *n)
{
    return parse_axis(c, n, c->opset < 13 ? 1 : -1);
}

static ferry_status parse_layer_norm(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st = parse_axis(c, n, -1);
    return st ? st : op_attr_float(c, "epsilon", 1e-5f, &n->epsilon);
}

static ferry_status parse_axis0(const op_parse_ctx *c, graph_node *n)
{
    return parse_axis(c, n, 0);
}

/* Reductions: axes as an attribute (ReduceSum before 13, the others before
 * 18) or as input 1; keepdims; noop_with_empty_axes. */
static ferry_status parse_reduce(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    int64_t v;
    int na;
    if ((st = op_attr_int(c, "keepdims", 1, 0, 1, &v)))
        return st;
    n->keepdims = (int)v;
    if ((st = op_attr_ints(c, "axes", n->axes, FERRY_MAX_DIMS, &na)))
        return st;
    n->n_axes = na < 0 ? 0 : na;
    int input_form = n->op == OP_REDUCE_SUM ? 13 : 18;
    if (n->n_in > 1 && n->in[1] >= 0 && c->opset < input_form)
        return ferry_fail(
            FERRY_EPARSE,
            "node '%s' (%s): takes axes as an input only from opset %d (model has %lld)", c->name,
            c->op, input_form, (long long)c->opset);
    if ((st = op_attr_int(c, "noop_with_empty_axes", 0, 0, 1, &v)))
        return st;
    n->mode = (int)v;
    return FERRY_OK;
}

static ferry_status parse_arg(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    int64_t v;
    if ((st = parse_axis(c, n, 0)) || (st = op_attr_int(c, "keepdims", 1, 0, 1, &v)))
        return st;
    n->keepdims = (int)v;
    if ((st = op_attr_int(c, "select_last_index", 0, 0, 1, &v)))
        return st;
    n->mode = (int)v;
    return FERRY_OK;
}

/* 'sorted' is accepted either way: the CPU kernel always sorts, which
 * ONNX allows when the order is left open. */
static ferry_status parse_topk(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    int64_t v;
    if ((st = parse_axis(c, n, -1)) || (st = op_attr_int(c, "largest", 1, 0, 1, &v)))
        return st;
    n->mode = (int)v;
    return op_attr_int(c, "sorted", 1, 0, 1, &v);
}

static ferry_status parse_cumsum(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    int64_t v;
    if ((st = op_attr_int(c, "exclusive", 0, 0, 1, &v)))
        return st;
    n->mode = (int)v;
    if ((st = op_attr_int(c, "reverse", 0, 0, 1, &v)))
        return st;
    n->mode2 = (int)v;
    return FERRY_OK;
}

static ferry_status parse_flatten(const op_parse_ctx *c, graph_node *n)
{
    return parse_axis(c, n, 1);
}

static ferry_status parse_reshape(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "allowzero", 0, 0, 1, &v);
    n->mode = (int)v;
    return st;
}

static ferry_status parse_dropout(const op_parse_ctx *c, graph_node *n)
{
    /* Inference: Dropout is Identity unless training_mode is true, and
     * then too when the ratio is a constant 0 (torchvision's swin_t calls
     * F.dropout(attn, p=0.0) with training left at its default, True). */
    if (n->n_in == 3 && n->in[2] >= 0) {
        const graph_value *tm = &c->g->values[n->in[2]];
        const graph_value *r = n->in[1] >= 0 ? &c->g->values[n->in[1]] : NULL;
        int no_drop = r && r->is_const && graph_value_numel(r, 1) == 1 &&
                      ((r->dtype == FERRY_F32 && *(const float *)r->data == 0.0f) ||
                       (r->dtype == FERRY_F64 && *(const double *)r->data == 0.0));
        if (!tm->is_const || tm->dtype != FERRY_BOOL || graph_value_numel(tm, 1) != 1 ||
            (*(const uint8_t *)tm->data && !no_drop))
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "node '%s' (Dropout): training_mode must be a constant false (or the "
                              "ratio a constant 0)",
                              c->name);
    }
    n->n_in = 1;
    return FERRY_OK;
}

ferry_dtype onnx_map_dtype(int32_t t); /* onnx_load.c */

static ferry_status parse_cast(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    op_attr a;
    if (c->find(c->reader, "to", &a))
        return ferry_fail(FERRY_EPARSE, "node '%s' (Cast): attribute 'to' is missing", c->name);
    ferry_status st = op_attr_int(c, "to", 0, INT32_MIN, INT32_MAX, &v);
    if (st)
        return st;
    n->to = onnx_map_dtype((int32_t)v);
    if (n->to == FERRY_DTYPE_UNDEFINED)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (Cast): target data type %lld is not supported", c->name,
                          (long long)v);
    return FERRY_OK;
}

/* Conv, ConvTranspose and the pools share the spatial attributes. */
static ferry_status parse_spatial(const op_parse_ctx *c, graph_node *n)
{
    static const char *const pads[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", NULL};
    conv_attrs *a = &n->conv;
    ferry_status st;
    int nk, ns, nd, np, nop, nos;
    int64_t v;
    memset(a, 0, sizeof *a);
    if ((st = op_attr_enum(c, "auto_pad", pads, 0, &a->auto_pad)) ||
        (st = op_attr_ints(c, "kernel_shape", a->kernel, GRAPH_MAX_SPATIAL, &nk)) ||
        (st = op_attr_ints(c, "strides", a->strides, GRAPH_MAX_SPATIAL, &ns)) ||
        (st = op_attr_ints(c, "dilations", a->dilations, GRAPH_MAX_SPATIAL, &nd)) ||
        (st = op_attr_ints(c, "pads", a->pads, 2 * GRAPH_MAX_SPATIAL, &np)) ||
        (st = op_attr_ints(c, "output_padding", a->out_pad, GRAPH_MAX_SPATIAL, &nop)) ||
        (st = op_attr_ints(c, "output_shape", a->out_shape, GRAPH_MAX_SPATIAL, &nos)))
        return st;
    /* nsp is settled by the shape rule from X's rank; record what was given
     * so that it can check the lengths agree. */
    a->nsp = nk;
    n->starts[0] = ns, n->starts[1] = nd, n->starts[2] = np, n->starts[3] = nop;
    n->starts[4] = nos;
    if ((st = op_attr_int(c, "group", 1, 1, INT32_MAX, &v)))
        return st;
    a->group = v;
    if ((st = op_attr_int(c, "ceil_mode", 0, 0, 1, &v)))
        return st;
    a->ceil_mode = (int)v;
    if ((st = op_attr_int(c, "count_include_pad", 0, 0, 1, &v)))
        return st;
    a->count_include_pad = (int)v;
    if ((st = op_attr_int(c, "storage_order", 0, 0, 0, &v)))
        return st;
    if (n->op == OP_MAX_POOL && n->n_out > 1)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (MaxPool): the Indices output is not supported", c->name);
    return FERRY_OK;
}

static ferry_status parse_epsilon(const op_parse_ctx *c, graph_node *n)
{
    return op_attr_float(c, "epsilon", 1e-5f, &n->epsilon);
}

static ferry_status parse_batch_norm(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_float(c, "epsilon", 1e-5f, &n->epsilon);
    if (st || (st = op_attr_int(c, "training_mode", 0, 0, 0, &v)))
        return st;
    return FERRY_OK;
}

static ferry_status parse_resize(const op_parse_ctx *c, graph_node *n)
{
    static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
    static const char *const coords[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                         "asymmetric", "half_pixel_symmetric", NULL};
    static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil", NULL};
    ferry_status st;
    int64_t v;
    if ((st = op_attr_enum(c, "mode", modes, RESIZE_NEAREST, &n->mode)) ||
        (st = op_attr_enum(c, "coordinate_transformation_mode", coords, RESIZE_HALF_PIXEL,
                           &n->mode2)) ||
        (st = op_attr_enum(c, "nearest_mode", nearest, NEAREST_ROUND_PREFER_FLOOR, &n->mode3)))
        return st;
    if ((st = op_attr_float(c, "cubic_coeff_a", -0.75f, &n->alpha)))
        return st;
    if (!isfinite(n->alpha))
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (Resize): cubic_coeff_a %g is not a finite number", c->name,
                          (double)n->alpha);
    if ((st = op_attr_int(c, "antialias", 0, 0, 0, &v)) ||
        (st = op_attr_int(c, "exclude_outside", 0, 0, 0, &v)))
        return st;
    op_attr a;
    if (!c->find(c->reader, "axes", &a))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (Resize): attribute 'axes' is not supported", c->name);
    if (!c->find(c->reader, "keep_aspect_ratio_policy", &a) &&
        !(a.type == OP_ATTR_STRING && a.s_len == 7 && !memcmp(a.s, "stretch", 7)))
        return ferry_fail(
            FERRY_EUNSUPPORTED,
            "node '%s' (Resize): keep_aspect_ratio_policy other than \"stretch\" is not supported",
            c->name);
    return FERRY_OK;
}

/* GridSample: opset 16's mode names (bilinear, nearest, bicubic) and opset
 * 20's (linear, cubic) for the same choices; cubic is not implemented. */
static ferry_status parse_grid_sample(const op_parse_ctx *c, graph_node *n)
{
    static const char *const modes[] = {"bilinear", "nearest", "bicubic", "linear", "cubic", NULL};
    static const char *const pads[] = {"zeros", "border", "reflection", NULL};
    ferry_status st;
    int m;
    int64_t v;
    if ((st = op_attr_enum(c, "mode", modes, 0, &m)) ||
        (st = op_attr_enum(c, "padding_mode", pads, GRID_PAD_ZEROS, &n->mode2)) ||
        (st = op_attr_int(c, "align_corners", 0, 0, 1, &v)))
        return st;
    if (m == 2 || m == 4)
        return ferry_fail(
            FERRY_EUNSUPPORTED,
            "node '%s' (GridSample): mode \"%s\" is not supported (bilinear/linear, nearest are)",
            c->name, modes[m]);
    n->mode = m == 1 ? GRID_NEAREST : GRID_LINEAR;
    n->mode3 = (int)v;
    return FERRY_OK;
}

static ferry_status parse_pad(const op_parse_ctx *c, graph_node *n)
{
    static const char *const modes[] = {"constant", "reflect", "edge", "wrap", NULL};
    ferry_status st = op_attr_enum(c, "mode", modes, PAD_CONSTANT, &n->mode);
    if (st)
        return st;
    int np;
    float value;
    /* Before opset 11 pads and value were attributes. */
    if ((st = op_attr_ints(c, "pads", n->ends, FERRY_MAX_DIMS, &np)) ||
        (st = op_attr_float(c, "value", 0.0f, &value)))
        return st;
    if (np >= 0)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (Pad): the opset-2 form (pads as an attribute) is not "
                          "supported; re-export with opset >= 11",
                          c->name);
    return FERRY_OK;
}

static ferry_status parse_clip(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st;
    /* Before opset 11: min and max attributes. */
    if ((st = op_attr_float(c, "min", -3.402823466e38f, &n->alpha)) ||
        (st = op_attr_float(c, "max", 3.402823466e38f, &n->act_beta)))
        return st;
    return FERRY_OK;
}

static ferry_status parse_hard_sigmoid(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st = op_attr_float(c, "alpha", 0.2f, &n->alpha);
    return st ? st : op_attr_float(c, "beta", 0.5f, &n->act_beta);
}

static ferry_status parse_softplus(const op_parse_ctx *c, graph_node *n)
{
    (void)c, (void)n;
    return FERRY_OK;
}

/* Selu's defaults are ONNX's, the constants of the SELU paper in float. */
static ferry_status parse_selu(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st = op_attr_float(c, "alpha", 1.67326319217681884765625f, &n->alpha);
    return st ? st : op_attr_float(c, "gamma", 1.05070102214813232421875f, &n->act_beta);
}

static ferry_status parse_shrink(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st = op_attr_float(c, "lambd", 0.5f, &n->alpha);
    return st ? st : op_attr_float(c, "bias", 0.0f, &n->act_beta);
}

static ferry_status parse_is_inf(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "detect_negative", 1, 0, 1, &v);
    if (st)
        return st;
    n->mode = (int)v;
    if ((st = op_attr_int(c, "detect_positive", 1, 0, 1, &v)))
        return st;
    n->mode2 = (int)v;
    return FERRY_OK;
}

static ferry_status parse_one_hot(const op_parse_ctx *c, graph_node *n)
{
    return parse_axis(c, n, -1);
}

static ferry_status parse_mod(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "fmod", 0, 0, 1, &v);
    n->mode = (int)v;
    return st;
}

static ferry_status parse_shape(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "start", 0, INT64_MIN, INT64_MAX, &v);
    if (st)
        return st;
    n->starts[0] = v;
    if ((st = op_attr_int(c, "end", INT64_MAX, INT64_MIN, INT64_MAX, &v)))
        return st;
    n->ends[0] = v;
    return FERRY_OK;
}

/* Squeeze/Unsqueeze before opset 13: axes attribute. */
static ferry_status parse_axes(const op_parse_ctx *c, graph_node *n)
{
    int na;
    ferry_status st = op_attr_ints(c, "axes", n->axes, FERRY_MAX_DIMS, &na);
    n->n_axes = na < 0 ? 0 : na;
    n->mode = na >= 0; /* axes given as an attribute */
    return st;
}

static ferry_status parse_split(const op_parse_ctx *c, graph_node *n)
{
    ferry_status st = parse_axis(c, n, 0);
    if (st)
        return st;
    int64_t sp[GRAPH_MAX_IO];
    int ns;
    if ((st = op_attr_ints(c, "split", sp, GRAPH_MAX_IO, &ns)))
        return st;
    int64_t v;
    if ((st = op_attr_int(c, "num_outputs", 0, 0, GRAPH_MAX_IO, &v)))
        return st;
    n->mode = (int)v;
    if (ns >= 0) {
        n->splits = malloc(sizeof(int64_t) * (size_t)(ns ? ns : 1));
        if (!n->splits)
            return ferry_fail(FERRY_ENOMEM, "out of memory");
        memcpy(n->splits, sp, sizeof(int64_t) * (size_t)ns);
        n->n_axes = ns; /* count of splits */
        n->mode2 = 1;   /* splits given as an attribute */
    }
    return FERRY_OK;
}

static ferry_status parse_transpose(const op_parse_ctx *c, graph_node *n)
{
    int np;
    ferry_status st = op_attr_ints(c, "perm", n->perm, FERRY_MAX_DIMS, &np);
    n->n_axes = np; /* -1: reverse the dims */
    return st;
}

static ferry_status parse_slice(const op_parse_ctx *c, graph_node *n)
{
    op_attr a;
    if (!c->find(c->reader, "starts", &a))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (Slice): the opset-1 form (starts as an attribute) is not "
                          "supported; re-export with opset >= 10",
                          c->name);
    return FERRY_OK;
}

/* ScatterND, ScatterElements: reduction is opset 16's (none, add, mul); max
 * and min came with 18. ScatterElements also has an axis. */
static ferry_status parse_scatter(const op_parse_ctx *c, graph_node *n)
{
    static const char *const reductions[] = {"none", "add", "mul", "max", "min", NULL};
    ferry_status st = op_attr_enum(c, "reduction", reductions, SCATTER_NONE, &n->mode);
    if (st || (n->op == OP_SCATTER_ELEMENTS && (st = parse_axis(c, n, 0))))
        return st;
    int since = n->mode >= SCATTER_MAX ? 18 : n->mode ? 16 : 0;
    if (c->opset < since)
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (%s): reduction \"%s\" needs opset %d (model has %lld)",
                          c->name, c->op, reductions[n->mode], since, (long long)c->opset);
    return FERRY_OK;
}

static ferry_status parse_constant_of_shape(const op_parse_ctx *c, graph_node *n)
{
    op_attr a;
    if (c->find(c->reader, "value", &a))
        return FERRY_OK; /* f32 zero: the shape rule handles a missing value */
    if (a.type != OP_ATTR_TENSOR)
        return bad_type(c, "value", "a tensor");
    const graph_value *v = &c->g->values[a.tensor_value];
    if (graph_value_numel(v, 1) != 1)
        return ferry_fail(FERRY_EPARSE, "node '%s' (ConstantOfShape): value must hold one element",
                          c->name);
    n->in[1] = a.tensor_value;
    n->n_in = 2;
    return FERRY_OK;
}

/* EyeLike: dtype (absent: the input's, FERRY_DTYPE_UNDEFINED until the
 * shape rule) and k. */
static ferry_status parse_eye_like(const op_parse_ctx *c, graph_node *n)
{
    int64_t k, dt;
    ferry_status st;
    if ((st = op_attr_int(c, "k", 0, INT32_MIN, INT32_MAX, &k)) ||
        (st = op_attr_int(c, "dtype", -1, INT32_MIN, INT32_MAX, &dt)))
        return st;
    n->starts[0] = k;
    n->to = dt == -1 ? FERRY_DTYPE_UNDEFINED : onnx_map_dtype((int32_t)dt);
    if (dt != -1 && n->to == FERRY_DTYPE_UNDEFINED)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (EyeLike): data type %lld is not supported", c->name,
                          (long long)dt);
    return FERRY_OK;
}

static ferry_status parse_trilu(const op_parse_ctx *c, graph_node *n)
{
    int64_t v;
    ferry_status st = op_attr_int(c, "upper", 1, 0, 1, &v);
    n->mode = (int)v;
    return st;
}

static ferry_status parse_depth_to_space(const op_parse_ctx *c, graph_node *n)
{
    static const char *const modes[] = {"DCR", "CRD", NULL};
    int64_t v;
    ferry_status st = op_attr_int(c, "blocksize", 0, 1, 1 << 16, &v);
    if (st)
        return st;
    op_attr a;
    if (c->find(c->reader, "blocksize", &a))
        return ferry_fail(FERRY_EPARSE, "node '%s' (%s): attribute 'blocksize' is missing", c->name,
                          c->op);
    n->axis = (int)v;
    return op_attr_enum(c, "mode", modes, 0, &n->mode);
}

/* RNN: one activation a direction, Tanh (the default) or Relu (nn.RNN's
 * two), the same in both directions; alpha/beta belong to activations it
 * does not have. */
static ferry_status parse_rnn_activations(const op_parse_ctx *c, graph_node *n)
{
    op_attr a;
    n->mode = RNN_ACT_TANH;
    if (!c->find(c->reader, "activation_alpha", &a) || !c->find(c->reader, "activation_beta", &a))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (RNN): activation_alpha and activation_beta are not supported",
                          c->name);
    if (c->find(c->reader, "activations", &a))
        return FERRY_OK;
    if (a.type != OP_ATTR_STRINGS || a.n < 1 || a.n > 2)
        return bad_type(c, "activations", "a list of one or two strings");
    for (size_t i = 0; i < a.n; i++) {
        const char *s = a.strings[i];
        size_t len = a.string_lens[i];
        int act = len == 4 && !memcmp(s, "Tanh", 4)   ? RNN_ACT_TANH
                  : len == 4 && !memcmp(s, "Relu", 4) ? RNN_ACT_RELU
                                                      : -1;
        if (act < 0 || (i > 0 && act != n->mode))
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "node '%s' (RNN): activations must be Tanh or Relu, the same in "
                              "both directions (got \"%.*s\")",
                              c->name, len > 32 ? 32 : (int)len, s);
        n->mode = act;
    }
    return FERRY_OK;
}

static ferry_status parse_rnn(const op_parse_ctx *c, graph_node *n)
{
    static const char *const dirs[] = {"forward", "reverse", "bidirectional", NULL};
    ferry_status st;
    int64_t v;
    if ((st = op_attr_int(c, "hidden_size", 0, 1, 1 << 20, &v)))
        return st;
    op_attr a;
    if (c->find(c->reader, "hidden_size", &a))
        return ferry_fail(FERRY_EPARSE, "node '%s' (%s): attribute 'hidden_size' is missing",
                          c->name, c->op);
    n->hidden = v;
    if ((st = op_attr_enum(c, "direction", dirs, RNN_FORWARD, &n->direction)))
        return st;
    if ((st = op_attr_int(c, "layout", 0, 0, 1, &v)))
        return st;
    n->layout = (int)v;
    if ((st = op_attr_int(c, "linear_before_reset", 0, 0, 1, &v)))
        return st;
    n->linear_before_reset = (int)v;
    if ((st = op_attr_int(c, "input_forget", 0, 0, 0, &v)))
        return st;
    if ((st = op_attr_float(c, "clip", 0.0f, &n->clip)))
        return st;
    if (n->op == OP_RNN)
        return parse_rnn_activations(c, n);
    if (!c->find(c->reader, "activations", &a))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (%s): attribute 'activations' is not supported (the default "
                          "activations are)",
                          c->name, c->op);
    return FERRY_OK;
}

/* ------------------------------------------------------------- the table */

#define ANY 0, 99 /* every opset this loader accepts */

static const op_def op_table[] = {
    /* onnx name          kind              in     out   opsets  parse            infer flags */
    {"Gemm", OP_GEMM, 2, 3, 1, 1, ANY, parse_gemm, infer_gemm, OPF_FOLD},
    {"MatMul", OP_MATMUL, 2, 2, 1, 1, ANY, parse_matmul, infer_matmul, OPF_FOLD},
    {"Einsum", OP_EINSUM, 1, 2, 1, 1, 12, 99, parse_einsum, infer_einsum, OPF_FOLD},
    {"Add", OP_ADD, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Sub", OP_SUB, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Mul", OP_MUL, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Div", OP_DIV, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Pow", OP_POW, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Relu", OP_RELU, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"LeakyRelu", OP_LEAKY_RELU, 1, 1, 1, 1, ANY, parse_alpha, infer_same, OPF_FOLD},
    {"Sigmoid", OP_SIGMOID, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Tanh", OP_TANH, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Gelu", OP_GELU, 1, 1, 1, 1, ANY, parse_gelu, infer_same, OPF_FOLD},
    {"Erf", OP_ERF, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Sqrt", OP_SQRT, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Softmax", OP_SOFTMAX, 1, 1, 1, 1, ANY, parse_softmax, infer_softmax, OPF_FOLD},
    {"LogSoftmax", OP_LOG_SOFTMAX, 1, 1, 1, 1, ANY, parse_softmax, infer_softmax, OPF_FOLD},
    {"LayerNormalization", OP_LAYER_NORM, 2, 3, 1, 3, ANY, parse_layer_norm, infer_layer_norm,
     OPF_FOLD},
    {"ReduceMean", OP_REDUCE_MEAN, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"Flatten", OP_FLATTEN, 1, 1, 1, 1, ANY, parse_flatten, infer_flatten, OPF_VIEW | OPF_FOLD},
    {"Reshape", OP_RESHAPE, 2, 2, 1, 1, ANY, parse_reshape, infer_reshape, OPF_VIEW | OPF_FOLD},
    {"Identity", OP_IDENTITY, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_VIEW | OPF_FOLD},
    {"Dropout", OP_IDENTITY, 1, 3, 1, 2, ANY, parse_dropout, infer_same, OPF_VIEW | OPF_FOLD},
    {"Cast", OP_CAST, 1, 1, 1, 1, ANY, parse_cast, infer_cast, OPF_FOLD},
    /* convolutional networks */
    {"Conv", OP_CONV, 2, 3, 1, 1, ANY, parse_spatial, infer_conv, 0},
    {"ConvTranspose", OP_CONV_TRANSPOSE, 2, 3, 1, 1, ANY, parse_spatial, infer_conv_transpose, 0},
    {"MaxPool", OP_MAX_POOL, 1, 1, 1, 2, ANY, parse_spatial, infer_pool, 0},
    {"AveragePool", OP_AVG_POOL, 1, 1, 1, 1, ANY, parse_spatial, infer_pool, 0},
    {"GlobalAveragePool", OP_GLOBAL_AVG_POOL, 1, 1, 1, 1, ANY, NULL, infer_global_pool, 0},
    {"GlobalMaxPool", OP_GLOBAL_MAX_POOL, 1, 1, 1, 1, ANY, NULL, infer_global_pool, 0},
    {"BatchNormalization", OP_BATCH_NORM, 5, 5, 1, 3, ANY, parse_batch_norm, infer_batch_norm,
     OPF_FOLD},
    {"InstanceNormalization", OP_INSTANCE_NORM, 3, 3, 1, 1, ANY, parse_epsilon, infer_instance_norm,
     OPF_FOLD},
    {"Resize", OP_RESIZE, 1, 4, 1, 1, ANY, parse_resize, infer_resize, OPF_FOLD},
    {"GridSample", OP_GRID_SAMPLE, 2, 2, 1, 1, 16, 99, parse_grid_sample, infer_grid_sample,
     OPF_FOLD},
    {"Pad", OP_PAD, 1, 4, 1, 1, ANY, parse_pad, infer_pad, OPF_FOLD},
    {"Clip", OP_CLIP, 1, 3, 1, 1, ANY, parse_clip, infer_clip, OPF_FOLD},
    {"HardSigmoid", OP_HARD_SIGMOID, 1, 1, 1, 1, ANY, parse_hard_sigmoid, infer_same, OPF_FOLD},
    {"HardSwish", OP_HARD_SWISH, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"PRelu", OP_PRELU, 2, 2, 1, 1, ANY, NULL, infer_prelu, OPF_FOLD},
    /* elementwise */
    {"Neg", OP_NEG, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Exp", OP_EXP, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Log", OP_LOG, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Abs", OP_ABS, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Reciprocal", OP_RECIPROCAL, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Floor", OP_FLOOR, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Ceil", OP_CEIL, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Sin", OP_SIN, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Cos", OP_COS, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Round", OP_ROUND, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Sign", OP_SIGN, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Softplus", OP_SOFTPLUS, 1, 1, 1, 1, ANY, parse_softplus, infer_same, OPF_FOLD},
    {"Elu", OP_ELU, 1, 1, 1, 1, ANY, parse_alpha, infer_same, OPF_FOLD},
    {"Selu", OP_SELU, 1, 1, 1, 1, ANY, parse_selu, infer_same, OPF_FOLD},
    {"Celu", OP_CELU, 1, 1, 1, 1, 12, 99, parse_alpha, infer_same, OPF_FOLD},
    {"ThresholdedRelu", OP_THRESHOLDED_RELU, 1, 1, 1, 1, 10, 99, parse_alpha, infer_same, OPF_FOLD},
    {"Softsign", OP_SOFTSIGN, 1, 1, 1, 1, ANY, NULL, infer_same, OPF_FOLD},
    {"Mish", OP_MISH, 1, 1, 1, 1, 18, 99, NULL, infer_same, OPF_FOLD},
    {"Shrink", OP_SHRINK, 1, 1, 1, 1, 9, 99, parse_shrink, infer_same, OPF_FOLD},
    {"IsNaN", OP_IS_NAN, 1, 1, 1, 1, 9, 99, NULL, infer_float_test, OPF_FOLD},
    {"IsInf", OP_IS_INF, 1, 1, 1, 1, 10, 99, parse_is_inf, infer_float_test, OPF_FOLD},
    {"OneHot", OP_ONE_HOT, 3, 3, 1, 1, 9, 99, parse_one_hot, infer_one_hot, OPF_FOLD},
    {"Min", OP_MIN, 1, GRAPH_MAX_IO, 1, 1, ANY, NULL, infer_variadic, OPF_FOLD | OPF_VARIADIC},
    {"Max", OP_MAX, 1, GRAPH_MAX_IO, 1, 1, ANY, NULL, infer_variadic, OPF_FOLD | OPF_VARIADIC},
    {"Mod", OP_MOD, 2, 2, 1, 1, ANY, parse_mod, infer_binary, OPF_FOLD},
    {"Equal", OP_EQUAL, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Less", OP_LESS, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"LessOrEqual", OP_LESS_EQUAL, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Greater", OP_GREATER, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"GreaterOrEqual", OP_GREATER_EQUAL, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Not", OP_NOT, 1, 1, 1, 1, ANY, NULL, infer_not, OPF_FOLD},
    {"And", OP_AND, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Or", OP_OR, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Xor", OP_XOR, 2, 2, 1, 1, ANY, NULL, infer_binary, OPF_FOLD},
    {"Where", OP_WHERE, 3, 3, 1, 1, ANY, NULL, infer_where, OPF_FOLD},
    /* reductions */
    {"ReduceSum", OP_REDUCE_SUM, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceMax", OP_REDUCE_MAX, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceMin", OP_REDUCE_MIN, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceProd", OP_REDUCE_PROD, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceL2", OP_REDUCE_L2, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceSumSquare", OP_REDUCE_SUM_SQUARE, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce,
     OPF_FOLD},
    {"ReduceLogSumExp", OP_REDUCE_LOG_SUM_EXP, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce,
     OPF_FOLD},
    {"ReduceL1", OP_REDUCE_L1, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ReduceLogSum", OP_REDUCE_LOG_SUM, 1, 2, 1, 1, ANY, parse_reduce, infer_reduce, OPF_FOLD},
    {"ArgMax", OP_ARGMAX, 1, 1, 1, 1, ANY, parse_arg, infer_arg, OPF_FOLD},
    {"ArgMin", OP_ARGMIN, 1, 1, 1, 1, ANY, parse_arg, infer_arg, OPF_FOLD},
    {"TopK", OP_TOPK, 2, 2, 2, 2, 10, 99, parse_topk, infer_topk, OPF_FOLD},
    {"CumSum", OP_CUMSUM, 2, 2, 1, 1, ANY, parse_cumsum, infer_cumsum, OPF_FOLD},
    /* shapes and data movement */
    {"Shape", OP_SHAPE, 1, 1, 1, 1, ANY, parse_shape, infer_shape_op, 0},
    {"Squeeze", OP_SQUEEZE, 1, 2, 1, 1, ANY, parse_axes, infer_squeeze, OPF_VIEW | OPF_FOLD},
    {"Unsqueeze", OP_UNSQUEEZE, 1, 2, 1, 1, ANY, parse_axes, infer_unsqueeze, OPF_VIEW | OPF_FOLD},
    {"Concat", OP_CONCAT, 1, GRAPH_MAX_IO, 1, 1, ANY, parse_axis0, infer_concat,
     OPF_FOLD | OPF_VARIADIC},
    {"Split", OP_SPLIT, 1, 2, GRAPH_MAX_IO, GRAPH_MAX_IO, ANY, parse_split, infer_split,
     OPF_FOLD | OPF_VARIADIC},
    {"Slice", OP_SLICE, 1, 5, 1, 1, ANY, parse_slice, infer_slice, OPF_FOLD},
    {"Transpose", OP_TRANSPOSE, 1, 1, 1, 1, ANY, parse_transpose, infer_transpose, OPF_FOLD},
    {"Gather", OP_GATHER, 2, 2, 1, 1, ANY, parse_axis0, infer_gather, OPF_FOLD},
    {"GatherElements", OP_GATHER_ELEMENTS, 2, 2, 1, 1, ANY, parse_axis0, infer_gather_elements,
     OPF_FOLD},
    {"GatherND", OP_GATHER_ND, 2, 2, 1, 1, 11, 99, parse_gather_nd, infer_gather_nd, 0},
    {"ScatterND", OP_SCATTER_ND, 3, 3, 1, 1, ANY, parse_scatter, infer_scatter_nd, OPF_FOLD},
    {"ScatterElements", OP_SCATTER_ELEMENTS, 3, 3, 1, 1, 11, 99, parse_scatter,
     infer_scatter_elements, OPF_FOLD},
    {"Expand", OP_EXPAND, 2, 2, 1, 1, ANY, NULL, infer_expand, OPF_FOLD},
    {"Tile", OP_TILE, 2, 2, 1, 1, ANY, NULL, infer_tile, OPF_FOLD},
    {"ConstantOfShape", OP_CONSTANT_OF_SHAPE, 1, 1, 1, 1, ANY, parse_constant_of_shape,
     infer_constant_of_shape, OPF_FOLD},
    {"Range", OP_RANGE, 3, 3, 1, 1, ANY, NULL, infer_range, OPF_FOLD},
    {"EyeLike", OP_EYE_LIKE, 1, 1, 1, 1, ANY, parse_eye_like, infer_eye_like, OPF_FOLD},
    {"Trilu", OP_TRILU, 1, 2, 1, 1, ANY, parse_trilu, infer_trilu, OPF_FOLD},
    {"DepthToSpace", OP_DEPTH_TO_SPACE, 1, 1, 1, 1, ANY, parse_depth_to_space, infer_depth_to_space,
     OPF_FOLD},
    /* recurrent */
    {"LSTM", OP_LSTM, 3, 8, 3, 3, ANY, parse_rnn, infer_rnn, 0},
    {"GRU", OP_GRU, 3, 6, 2, 2, ANY, parse_rnn, infer_rnn, 0},
    {"RNN", OP_RNN, 3, 6, 2, 2, ANY, parse_rnn, infer_rnn, 0},
    /* not an ONNX name: the loader makes one of each output of an If whose
     * branches it inlines; shape inference turns it into an Identity */
    {"If (inlined)", OP_IF, 3, 3, GRAPH_MAX_IO, GRAPH_MAX_IO, ANY, NULL, NULL, OPF_INTERNAL},
    /* recommenders: not an ONNX name (the loader makes it of a Loop) */
    {"EmbeddingBag (a Loop)", OP_EMBEDDING_BAG, 2, 2, 1, 1, ANY, NULL, infer_embedding_bag,
     OPF_INTERNAL},
    /* made by a pass, never loaded: the name is no ONNX op_type */
    {"Attention (fused)", OP_ATTENTION, 3, 4, 1, 1, ANY, NULL, infer_attention, OPF_INTERNAL},
};

#define N_OPS ((int)(sizeof op_table / sizeof op_table[0]))

const op_def *op_find(const char *onnx_name)
{
    for (int i = 0; i < N_OPS; i++)
        if (!(op_table[i].flags & OPF_INTERNAL) && !strcmp(op_table[i].onnx, onnx_name))
            return &op_table[i];
    return NULL;
}

const op_def *op_def_of(op_kind op)
{
    for (int i = 0; i < N_OPS; i++)
        if (op_table[i].op == op)
            return &op_table[i];
    return NULL;
}

const char *op_name(op_kind op)
{
    const op_def *d = op_def_of(op);
    return d ? d->onnx : "?";
}
