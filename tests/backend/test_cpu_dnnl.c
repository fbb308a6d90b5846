/*
 * test_cpu_dnnl.c - the oneDNN conv-family kernels (cpu_dnnl.h) against
 * naive double-precision loops written here: Conv / ConvTranspose with
 * every post-op, pools, BatchNormalization and its fold, the blocked
 * layout, the per-batch-size cache under two threads, and bad params.
 *
 * Error measure: max |y - ref| over a tensor divided by max |ref|, at most
 * 1e-5 (a conv sums tens of products; per-element relative error near a
 * zero crossing says nothing about the kernel).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/cpu_dnnl.h"

#define TOL 1e-5

/* ------------------------------------------------------------- helpers */

static uint32_t rng = 2463534242u;

static float frand(float lo, float hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

static float *rand_buf(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = frand(lo, hi);
    return p;
}

static double *dbuf(int64_t n)
{
    double *p = calloc((size_t)(n ? n : 1), sizeof *p);
    assert_non_null(p);
    return p;
}

/* max |y - ref| / max |ref| (infinite where ref is all ~0: a kernel
 * writing zeros cannot pass). Asserts nothing: threads call it too. */
static double rel_err(const float *y, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)y[i] - ref[i]);
        if (e > num || isnan(e))
            num = isnan(e) ? INFINITY : e;
        if (fabs(ref[i]) > den)
            den = fabs(ref[i]);
    }
    return den > 1e-3 ? num / den : INFINITY;
}

static void check_close(const float *y, const double *ref, int64_t n, const char *what)
{
    double e = rel_err(y, ref, n);
    if (e > TOL)
        print_error("%s: relative error %.3g\n", what, e);
    assert_true(e <= TOL);
}

static double act_ref(cpu_act a, double v, double al, double be)
{
    switch (a) {
    case CPU_ACT_NONE: return v;
    case CPU_ACT_RELU: return v < 0 ? 0 : v;
    case CPU_ACT_LEAKY_RELU: return v < 0 ? al * v : v;
    case CPU_ACT_CLIP: return v < al ? al : v > be ? be : v;
    case CPU_ACT_SIGMOID: return 1 / (1 + exp(-v));
    case CPU_ACT_HARDSWISH: return v * fmax(0, fmin(1, v / 6 + 0.5));
    case CPU_ACT_HARDSIGMOID: return fmax(0, fmin(1, al * v + be));
    case CPU_ACT_GELU: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case CPU_ACT_GELU_TANH:
        return 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    case CPU_ACT_SILU: return v / (1 + exp(-v));
    }
    return NAN;
}

/* A conv's shape in the 2-D view (1-D: H = 1). */
typedef struct shp {
    int64_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
} shp;

static shp view(const cpu_conv_params *p, const int64_t *out)
{
    shp v;
    if (p->rank == 1) {
        v = (shp){1, p->in[0],
                  1, out[0],
                  1, p->kernel[0],
                  1, p->stride[0] ? p->stride[0] : 1,
                  1, p->dilation[0] ? p->dilation[0] : 1,
                  0, p->pad_begin[0]};
    } else {
        v = (shp){p->in[0],
                  p->in[1],
                  out[0],
                  out[1],
                  p->kernel[0],
                  p->kernel[1],
                  p->stride[0] ? p->stride[0] : 1,
                  p->stride[1] ? p->stride[1] : 1,
                  p->dilation[0] ? p->dilation[0] : 1,
                  p->dilation[1] ? p->dilation[1] : 1,
                  p->pad_begin[0],
                  p->pad_begin[1]};
    }
    return v;
}

/* ONNX Conv / ConvTranspose + bias + residual + activation in double. */
static void conv_ref(const cpu_conv_params *p, const int64_t *out, int64_t n, const float *x,
                     const float *W, const float *B, const float *res, double *y)
{
    shp v = view(p, out);
    int64_t G = p->group, I = p->c_in, O = p->c_out, ig = I / G, og = O / G;
    int64_t ysz = n * O * v.oh * v.ow;
    for (int64_t i = 0; i < ysz; i++)
        y[i] = 0;
    for (int64_t b = 0; b < n; b++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t oo = 0; oo < og; oo++)
                for (int64_t ii = 0; ii < ig; ii++)
                    for (int64_t kh = 0; kh < v.kh; kh++)
                        for (int64_t kw = 0; kw < v.kw; kw++) {
                            int64_t o = g * og + oo, ci = g * ig + ii;
                            double w = p->transposed ? W[((ci * og + oo) * v.kh + kh) * v.kw + kw]
                                                     : W[((o * ig + ii) * v.kh + kh) * v.kw + kw];
                            const float *xp = x + (b * I + ci) * v.ih * v.iw;
                            double *yp = y + (b * O + o) * v.oh * v.ow;
                            if (!p->transposed) {
                                for (int64_t oh = 0; oh < v.oh; oh++)
                                    for (int64_t ow = 0; ow < v.ow; ow++) {
                                        int64_t ih = oh * v.sh - v.ph + kh * v.dh;
                                        int64_t iw = ow * v.sw - v.pw + kw * v.dw;
                                        if (ih >= 0 && ih < v.ih && iw >= 0 && iw < v.iw)
                                            yp[oh * v.ow + ow] += w * xp[ih * v.iw + iw];
                                    }
                            } else {
                                for (int64_t ih = 0; ih < v.ih; ih++)
                                    for (int64_t iw = 0; iw < v.iw; iw++) {
                                        int64_t oh = ih * v.sh - v.ph + kh * v.dh;
                                        int64_t ow = iw * v.sw - v.pw + kw * v.dw;
                                        if (oh >= 0 && oh < v.oh && ow >= 0 && ow < v.ow)
                                            yp[oh * v.ow + ow] += w * xp[ih * v.iw + iw];
                                    }
                            }
                        }
    int64_t sp = v.oh * v.ow;
    for (int64_t i = 0; i < ysz; i++) {
        double t = y[i] + (B ? B[(i / sp) % O] : 0);
        if (p->residual == CPU_RESIDUAL_BEFORE_ACT)
            t += res[i];
        t = act_ref(p->act, t, p->alpha, p->beta);
        if (p->residual == CPU_RESIDUAL_AFTER_ACT)
            t += res[i];
        y[i] = t;
    }
}

static int64_t wsize(const cpu_conv_params *p)
{
    int64_t k = p->kernel[0] * (p->rank == 2 ? p->kernel[1] : 1);
    return p->transposed ? p->c_in * (p->c_out / p->group) * k
                         : p->c_out * (p->c_in / p->group) * k;
}

static int64_t spatial(int rank, const int64_t *d)
{
    return rank == 2 ? d[0] * d[1] : d[0];
}

/* Builds p, runs it at each batch size in ns (one object: its cache) and
 * checks each against conv_ref. */
static void conv_case(const cpu_conv_params *p, const int64_t *ns, int nn, const char *what)
{
    float *W = rand_buf(wsize(p), -0.5f, 0.5f);
    float *B = rand_buf(p->c_out, -0.5f, 0.5f);
    cpu_conv *c = NULL;
    ferry_status st = cpu_conv_create(p, W, B, &c);
    if (st != FERRY_OK)
        print_error("%s: %s\n", what, ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    int64_t out[2];
    cpu_conv_out_dims(c, out);
    for (int t = 0; t < nn; t++) {
        int64_t n = ns[t];
        int64_t xs = n * p->c_in * spatial(p->rank, p->in),
                ys = n * p->c_out * spatial(p->rank, out);
        float *x = rand_buf(xs, -1, 1);
        float *r = p->residual ? rand_buf(ys, -1, 1) : NULL;
        float *y = rand_buf(ys, 100, 200); /* garbage the kernel must overwrite */
        double *ref = dbuf(ys);
        conv_ref(p, out, n, x, W, B, r, ref);
        assert_int_equal(cpu_conv_run(c, n, x, r, y), FERRY_OK);
        check_close(y, ref, ys, what);
        if (r) { /* in place: residual == y */
            memcpy(y, r, (size_t)ys * sizeof *y);
            assert_int_equal(cpu_conv_run(c, n, x, y, y), FERRY_OK);
            check_close(y, ref, ys, what);
        }
        free(x);
        free(r);
        free(y);
        free(ref);
    }
    cpu_conv_destroy(c);
    free(W);
    free(B);
}

static cpu_conv_params conv2d(int64_t ci, int64_t co, int64_t g, int64_t h, int64_t w, int64_t kh,
                              int64_t kw)
{
    cpu_conv_params p = {.rank = 2, .c_in = ci, .c_out = co, .group = g, .max_batch = 32};
    p.in[0] = h;
    p.in[1] = w;
    p.kernel[0] = kh;
    p.kernel[1] = kw;
    return p;
}

static const int64_t NS[] = {1, 3, 32};

/* ---------------------------------------------------------------- conv */

static void test_conv2d_basic(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(3, 5, 1, 7, 5, 3, 3);
    p.pad_begin[0] = 1, p.pad_end[0] = 0, p.pad_begin[1] = 0, p.pad_end[1] = 2; /* asymmetric */
    conv_case(&p, NS, 3, "conv 3x3 asym pads");
    for (int plain = CPU_PLAIN_DIRECT; plain <= CPU_PLAIN_REORDER; plain++) {
        p.plain_impl = (cpu_plain_impl)plain;
        conv_case(&p, NS, 3, plain == CPU_PLAIN_DIRECT ? "conv direct" : "conv reorder");
    }
}

static void test_conv2d_groups_stride_dilation(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(4, 6, 2, 7, 5, 3, 2);
    p.stride[0] = p.stride[1] = 2;
    p.pad_begin[0] = 2, p.pad_end[1] = 1;
    conv_case(&p, NS, 3, "groups 2 stride 2");
    p = conv2d(3, 4, 1, 7, 5, 2, 2);
    p.dilation[0] = p.dilation[1] = 2;
    p.pad_begin[1] = 1;
    conv_case(&p, NS, 3, "dilation 2");
    /* Depthwise (group == C_in), channel multiplier 1 and 2, stride 2. */
    p = conv2d(3, 3, 3, 7, 5, 3, 3);
    p.stride[0] = p.stride[1] = 2;
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    conv_case(&p, NS, 3, "depthwise");
    p.c_out = 6;
    conv_case(&p, NS, 3, "depthwise x2");
    p = conv2d(16, 16, 16, 7, 5, 3, 3); /* a full SIMD block of channels */
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    conv_case(&p, NS, 3, "depthwise 16");
}

static void test_conv1d(void **state)
{
    (void)state;
    cpu_conv_params p = {.rank = 1, .c_in = 3, .c_out = 4, .group = 1, .max_batch = 32};
    p.in[0] = 11;
    p.kernel[0] = 3;
    p.stride[0] = 2;
    p.dilation[0] = 2;
    p.pad_begin[0] = 2;
    p.pad_end[0] = 1;
    conv_case(&p, NS, 3, "conv1d");
    p.group = p.c_out = 3;
    p.stride[0] = 1;
    p.act = CPU_ACT_RELU;
    conv_case(&p, NS, 3, "conv1d depthwise relu");
}

static void test_autopad(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(3, 4, 1, 7, 5, 4, 3);
    p.stride[0] = 2, p.stride[1] = 2;
    /* H: out = ceil(7/2) = 4, total = 3*2 + 4 - 7 = 3; W: out 3, total 2*2+3-5 = 2. */
    assert_int_equal(cpu_conv_resolve_autopad(CPU_AUTOPAD_SAME_UPPER, 0, 2, p.in, p.kernel,
                                              p.stride, p.dilation, NULL, p.pad_begin, p.pad_end),
                     FERRY_OK);
    assert_int_equal(p.pad_begin[0], 1);
    assert_int_equal(p.pad_end[0], 2);
    assert_int_equal(p.pad_begin[1], 1);
    assert_int_equal(p.pad_end[1], 1);
    conv_case(&p, NS, 2, "SAME_UPPER");
    cpu_conv *c;
    int64_t out[2];
    assert_int_equal(cpu_conv_create(&p, (float[48 * 4]){0}, NULL, &c), FERRY_OK);
    cpu_conv_out_dims(c, out);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 3);
    cpu_conv_destroy(c);
    assert_int_equal(cpu_conv_resolve_autopad(CPU_AUTOPAD_SAME_LOWER, 0, 2, p.in, p.kernel,
                                              p.stride, p.dilation, NULL, p.pad_begin, p.pad_end),
                     FERRY_OK);
    assert_int_equal(p.pad_begin[0], 2);
    assert_int_equal(p.pad_end[0], 1);
    conv_case(&p, NS, 2, "SAME_LOWER");
    assert_int_equal(cpu_conv_resolve_autopad(CPU_AUTOPAD_VALID, 0, 2, p.in, p.kernel, p.stride,
                                              p.dilation, NULL, p.pad_begin, p.pad_end),
                     FERRY_OK);
    assert_int_equal(p.pad_begin[0] + p.pad_end[0] + p.pad_begin[1] + p.pad_end[1], 0);
    /* ConvTranspose SAME: out = in * stride. */
    int64_t in[1] = {5}, k[1] = {3}, s[1] = {2}, op[1] = {1}, pb[1], pe[1];
    assert_int_equal(
        cpu_conv_resolve_autopad(CPU_AUTOPAD_SAME_UPPER, 1, 1, in, k, s, NULL, op, pb, pe),
        FERRY_OK);
    assert_int_equal(2 * 4 + 1 + 3 - pb[0] - pe[0], 10);
    assert_int_equal(pb[0], 1);
    assert_int_equal(pe[0], 1);
    assert_int_equal(cpu_conv_resolve_autopad((cpu_autopad)9, 0, 1, in, k, s, NULL, NULL, pb, pe),
                     FERRY_EINVAL);
}

static void test_post_ops(void **state)
{
    (void)state;
    static const struct {
        cpu_act a;
        float al, be;
    } acts[] = {
        {CPU_ACT_NONE, 0, 0},
        {CPU_ACT_RELU, 0, 0},
        {CPU_ACT_LEAKY_RELU, 0.1f, 0},
        {CPU_ACT_CLIP, 0.0f, 0.6f},
        {CPU_ACT_SIGMOID, 0, 0},
        {CPU_ACT_HARDSWISH, 0, 0},
        {CPU_ACT_HARDSIGMOID, 0.2f, 0.5f},
        {CPU_ACT_GELU, 0, 0},
        {CPU_ACT_GELU_TANH, 0, 0},
        {CPU_ACT_SILU, 0, 0},
    };
    static const int64_t ns[] = {1, 3};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        for (int r = CPU_RESIDUAL_NONE; r <= CPU_RESIDUAL_AFTER_ACT; r++) {
            /* 8 output channels, so that the blocked implementation runs. */
            cpu_conv_params p = conv2d(3, 8, 1, 7, 5, 3, 3);
            p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
            p.act = acts[i].a;
            p.alpha = acts[i].al;
            p.beta = acts[i].be;
            p.residual = (cpu_residual)r;
            char what[64];
            snprintf(what, sizeof what, "act %d residual %d", (int)acts[i].a, r);
            conv_case(&p, ns, 2, what);
            p.plain_impl = CPU_PLAIN_DIRECT;
            conv_case(&p, ns, 1, what);
        }
}

static void test_conv_transpose(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(4, 6, 2, 7, 5, 3, 3);
    p.transposed = 1;
    p.stride[0] = p.stride[1] = 2;
    p.pad_begin[0] = p.pad_end[0] = 1;
    p.pad_begin[1] = 0, p.pad_end[1] = 1;
    p.output_padding[0] = p.output_padding[1] = 1;
    conv_case(&p, NS, 3, "convtranspose s2 op1");
    /* output_padding past the end pad (oneDNN sees a negative end pad). */
    p.pad_end[0] = p.pad_end[1] = 0;
    conv_case(&p, NS, 2, "convtranspose op1 pad0");
    p = conv2d(3, 4, 1, 7, 5, 2, 3);
    p.transposed = 1;
    p.dilation[1] = 2;
    p.act = CPU_ACT_SIGMOID;
    conv_case(&p, NS, 2, "convtranspose dilation");
    p = (cpu_conv_params){
        .rank = 1, .transposed = 1, .c_in = 3, .c_out = 2, .group = 1, .max_batch = 4};
    p.in[0] = 9, p.kernel[0] = 4, p.stride[0] = 3, p.output_padding[0] = 2, p.pad_begin[0] = 1;
    conv_case(&p, NS, 2, "convtranspose 1d");
}

/* Blocked in/out through cpu_reorder equals the plain run. */
static void test_conv_blocked_layout(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(3, 12, 1, 7, 5, 3, 3);
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    p.act = CPU_ACT_RELU;
    p.residual = CPU_RESIDUAL_BEFORE_ACT;
    float *W = rand_buf(wsize(&p), -0.5f, 0.5f), *B = rand_buf(12, -0.5f, 0.5f);
    cpu_conv *c;
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    int64_t n = 3, sp = 35;
    cpu_reorder *to_b, *from_b, *x_to_b;
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, 12, sp, 4, &to_b),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, 12, sp, 4, &from_b),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, 3, sp, 4, &x_to_b),
                     FERRY_OK);
    int64_t bs = cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, 12, sp);
    assert_int_equal(bs, n * 16 * sp); /* 12 channels padded to the block (8 or 16) */
    float *x = rand_buf(n * 3 * sp, -1, 1), *r = rand_buf(n * 12 * sp, -1, 1);
    float *xb = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, 3, sp), 0, 0);
    float *rb = rand_buf(bs, 0, 0), *yb = rand_buf(bs, 0, 0), *y = rand_buf(n * 12 * sp, 0, 0);
    double *ref = dbuf(n * 12 * sp);
    conv_ref(&p, (int64_t[]){7, 5}, n, x, W, B, r, ref);
    assert_int_equal(cpu_reorder_run(x_to_b, n, x, xb), FERRY_OK);
    assert_int_equal(cpu_reorder_run(to_b, n, r, rb), FERRY_OK);
    /* blocked -> blocked, then back */
    assert_int_equal(
        cpu_conv_run_layout(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 1, xb, rb, yb), FERRY_OK);
    assert_int_equal(cpu_reorder_run(from_b, n, yb, y), FERRY_OK);
    check_close(y, ref, n * 12 * sp, "blocked->blocked");
    /* plain -> blocked and blocked -> plain, two OpenMP threads */
    assert_int_equal(cpu_conv_run_layout(c, n, CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, 2, x, rb, yb),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_run(from_b, n, yb, y), FERRY_OK);
    check_close(y, ref, n * 12 * sp, "plain->blocked");
    assert_int_equal(cpu_conv_run_layout(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, 2, xb, r, y),
                     FERRY_OK);
    check_close(y, ref, n * 12 * sp, "blocked->plain");
    assert_non_null(cpu_conv_impl(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 1));
    cpu_reorder_destroy(to_b);
    cpu_reorder_destroy(from_b);
    cpu_reorder_destroy(x_to_b);
    cpu_conv_destroy(c);
    free(W), free(B), free(x), free(r), free(xb), free(rb), free(yb), free(y), free(ref);
}

/* Batch 1 on two threads runs as slices of the output channels (whole
 * groups for grouped convs), each its own primitive writing its part of y:
 * slices that do not end on the block (72 = 9 blocks of 8 in 2 slices),
 * grouped and depthwise slices, the residual and bias cut with them, in
 * both layouts, against the reference and against the one-thread run. */
static void conv_slices_case(cpu_conv_params p, const char *what)
{
    int64_t out[2];
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    p.act = CPU_ACT_RELU;
    p.residual = CPU_RESIDUAL_BEFORE_ACT;
    float *W = rand_buf(wsize(&p), -0.5f, 0.5f), *B = rand_buf(p.c_out, -0.5f, 0.5f);
    cpu_conv *c;
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    cpu_conv_out_dims(c, out);
    int64_t isp = spatial(2, p.in), osp = spatial(2, out);
    float *x = rand_buf(p.c_in * isp, -1, 1), *r = rand_buf(p.c_out * osp, -1, 1);
    float *y = rand_buf(p.c_out * osp, 0, 0);
    double *ref = dbuf(p.c_out * osp);
    conv_ref(&p, out, 1, x, W, B, r, ref);
    assert_int_equal(cpu_conv_run_layout(c, 1, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, 2, x, r, y),
                     FERRY_OK);
    check_close(y, ref, p.c_out * osp, what);
    cpu_reorder *xa, *ra, *yb;
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, p.c_in, isp, 1, &xa),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, p.c_out, osp, 1, &ra),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, p.c_out, osp, 1, &yb),
                     FERRY_OK);
    int64_t ob = cpu_layout_numel(CPU_LAYOUT_BLOCKED, 1, p.c_out, osp);
    float *xb = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, 1, p.c_in, isp), 0, 0);
    float *rb = rand_buf(ob, 0, 0), *ybuf = rand_buf(ob, 7, 8), *y1 = rand_buf(ob, 0, 0);
    assert_int_equal(cpu_reorder_run(xa, 1, x, xb), FERRY_OK);
    assert_int_equal(cpu_reorder_run(ra, 1, r, rb), FERRY_OK);
    assert_int_equal(
        cpu_conv_run_layout(c, 1, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 2, xb, rb, ybuf),
        FERRY_OK);
    assert_int_equal(
        cpu_conv_run_layout(c, 1, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 1, xb, rb, y1), FERRY_OK);
    /* every channel, the pad ones included (zeros), as the whole run writes them */
    double *d1 = dbuf(ob);
    for (int64_t i = 0; i < ob; i++)
        d1[i] = y1[i];
    check_close(ybuf, d1, ob, what);
    free(d1);
    assert_int_equal(cpu_reorder_run(yb, 1, ybuf, y), FERRY_OK);
    check_close(y, ref, p.c_out * osp, what);
    cpu_reorder_destroy(xa), cpu_reorder_destroy(ra), cpu_reorder_destroy(yb);
    cpu_conv_destroy(c);
    free(W), free(B), free(x), free(r), free(y), free(ref), free(xb), free(rb), free(ybuf),
        free(y1);
}

static void test_conv_slices(void **state)
{
    (void)state;
    /* Sizes above the slices' work floor (CONV_PART_MIN_FLOPS, 2 MFLOP):
     * 72 channels (9 blocks) in 4 slices, 128 in 8, 6 groups in 6, 136
     * depthwise in 8. */
    conv_slices_case(conv2d(64, 72, 1, 29, 27, 3, 3), "slices 72");
    conv_slices_case(conv2d(40, 128, 1, 25, 23, 3, 3), "slices 128");
    conv_slices_case(conv2d(192, 384, 6, 29, 27, 3, 3), "grouped slices");
    conv_slices_case(conv2d(136, 136, 136, 97, 95, 3, 3), "depthwise slices");
}

/* 3x3 stride-1 convs with channels in whole blocks run as Winograd
 * F(2x2, 3x3) on blocked activations (cpu_winograd.c): odd output sizes
 * (a last tile half outside), pads 0 and 1, bias, residual and ReLU, one
 * image on one and two threads (the phased split under 64 tiles a
 * thread, the chunked one above) and batches of 3 and 32 (several
 * chunks), against the reference and, blocked -> plain, against the
 * oneDNN path on the same object. */
static void conv_winograd_case(cpu_conv_params p, int64_t n, int threads, const char *what)
{
    int64_t out[2];
    float *W = rand_buf(wsize(&p), -0.5f, 0.5f), *B = rand_buf(p.c_out, -0.5f, 0.5f);
    cpu_conv *c;
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    cpu_conv_out_dims(c, out);
    int64_t isp = spatial(2, p.in), osp = spatial(2, out), ys = n * p.c_out * osp;
    float *x = rand_buf(n * p.c_in * isp, -1, 1), *r = rand_buf(ys, -1, 1);
    double *ref = dbuf(ys);
    conv_ref(&p, out, n, x, W, B, p.residual ? r : NULL, ref);
    cpu_reorder *xa, *ra, *yb;
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, p.c_in, isp, n, &xa),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, p.c_out, osp, n, &ra),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, p.c_out, osp, n, &yb),
                     FERRY_OK);
    float *xb = rand_buf(n * p.c_in * isp, 0, 0), *rb = rand_buf(ys, 0, 0);
    float *ybuf = rand_buf(ys, 7, 8), *y = rand_buf(ys, 0, 0);
    assert_int_equal(cpu_reorder_run(xa, n, x, xb), FERRY_OK);
    assert_int_equal(cpu_reorder_run(ra, n, r, rb), FERRY_OK);
    assert_int_equal(
        cpu_conv_run_layout(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, threads, xb, rb, ybuf),
        FERRY_OK);
    assert_int_equal(cpu_reorder_run(yb, n, ybuf, y), FERRY_OK);
    check_close(y, ref, ys, what);
    if (cpu_dnnl_block() == 8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        n * ((out[0] + 1) / 2) * ((out[1] + 1) / 2) >= 32)
        assert_string_equal(cpu_conv_impl(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, threads),
                            "ferry:winograd_f2x2_3x3");
    /* the residual may be y itself, as the planner gives it */
    if (p.residual) {
        memcpy(ybuf, rb, (size_t)ys * sizeof *ybuf);
        assert_int_equal(cpu_conv_run_layout(c, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, threads,
                                             xb, ybuf, ybuf),
                         FERRY_OK);
        assert_int_equal(cpu_reorder_run(yb, n, ybuf, y), FERRY_OK);
        check_close(y, ref, ys, what);
    }
    cpu_reorder_destroy(xa), cpu_reorder_destroy(ra), cpu_reorder_destroy(yb);
    cpu_conv_destroy(c);
    free(W), free(B), free(x), free(r), free(ref), free(xb), free(rb), free(ybuf), free(y);
}

static void test_conv_winograd(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(16, 24, 1, 15, 13, 3, 3);
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    p.act = CPU_ACT_RELU;
    p.residual = CPU_RESIDUAL_BEFORE_ACT;
    conv_winograd_case(p, 1, 1, "winograd 15x13 relu+res");
    conv_winograd_case(p, 1, 2, "winograd 15x13 relu+res, 2 threads");
    conv_winograd_case(p, 3, 1, "winograd 15x13 batch 3");
    conv_winograd_case(p, 32, 2, "winograd 15x13 batch 32, 2 threads");
    p.act = CPU_ACT_NONE;
    p.residual = CPU_RESIDUAL_NONE;
    p.pad_begin[0] = p.pad_end[1] = 0; /* top 0, bottom 1, left 1, right 0 */
    conv_winograd_case(p, 3, 2, "winograd uneven pads");
    cpu_conv_params q = conv2d(64, 40, 1, 33, 34, 3, 3); /* 272 tiles: chunks of 136 */
    conv_winograd_case(q, 2, 2, "winograd 33x34 no pad");
    conv_winograd_case(q, 1, 1, "winograd 33x34 one thread");
}

/* A ResNet-like chain kept blocked between its ends: conv+relu (plain in,
 * blocked out), maxpool (blocked), conv + residual + relu (blocked, the
 * residual is the pool's output), global average pool (blocked in, plain
 * out); against the same chain run plain. */
static void test_blocked_chain(void **state)
{
    (void)state;
    int64_t n = 3;
    cpu_conv_params p1 = conv2d(3, 12, 1, 9, 8, 3, 3);
    p1.pad_begin[0] = p1.pad_begin[1] = p1.pad_end[0] = p1.pad_end[1] = 1;
    p1.act = CPU_ACT_RELU;
    cpu_conv_params p2 = conv2d(12, 12, 1, 5, 4, 3, 3);
    p2.pad_begin[0] = p2.pad_begin[1] = p2.pad_end[0] = p2.pad_end[1] = 1;
    p2.act = CPU_ACT_RELU;
    p2.residual = CPU_RESIDUAL_BEFORE_ACT;
    cpu_pool_params mp = {.kind = CPU_POOL_MAX, .rank = 2, .c = 12, .max_batch = 4};
    mp.in[0] = 9, mp.in[1] = 8, mp.kernel[0] = mp.kernel[1] = 3, mp.stride[0] = mp.stride[1] = 2;
    mp.pad_begin[0] = mp.pad_begin[1] = mp.pad_end[0] = mp.pad_end[1] = 1; /* -> 5x4 */
    cpu_pool_params gp = {.kind = CPU_POOL_GLOBAL_AVG, .rank = 2, .c = 12, .max_batch = 4};
    gp.in[0] = 5, gp.in[1] = 4;
    float *W1 = rand_buf(wsize(&p1), -0.5f, 0.5f), *B1 = rand_buf(12, -0.5f, 0.5f);
    float *W2 = rand_buf(wsize(&p2), -0.5f, 0.5f), *B2 = rand_buf(12, -0.5f, 0.5f);
    cpu_conv *c1, *c2;
    cpu_pool *mpl, *gpl;
    assert_int_equal(cpu_conv_create(&p1, W1, B1, &c1), FERRY_OK);
    assert_int_equal(cpu_conv_create(&p2, W2, B2, &c2), FERRY_OK);
    assert_int_equal(cpu_pool_create(&mp, &mpl), FERRY_OK);
    assert_int_equal(cpu_pool_create(&gp, &gpl), FERRY_OK);
    float *x = rand_buf(n * 3 * 72, -1, 1);
    /* plain */
    float *a1 = rand_buf(n * 12 * 72, 0, 0), *a2 = rand_buf(n * 12 * 20, 0, 0);
    float *a3 = rand_buf(n * 12 * 20, 0, 0), *want = rand_buf(n * 12, 0, 0);
    assert_int_equal(cpu_conv_run(c1, n, x, NULL, a1), FERRY_OK);
    assert_int_equal(cpu_pool_run(mpl, n, a1, a2), FERRY_OK);
    assert_int_equal(cpu_conv_run(c2, n, a2, a2, a3), FERRY_OK);
    assert_int_equal(cpu_pool_run(gpl, n, a3, want), FERRY_OK);
    /* blocked */
    float *b1 = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, 12, 72), 0, 0);
    float *b2 = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, 12, 20), 0, 0);
    float *b3 = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, 12, 20), 0, 0);
    float *got = rand_buf(n * 12, 0, 0);
    const cpu_layout P = CPU_LAYOUT_PLAIN, K = CPU_LAYOUT_BLOCKED;
    assert_int_equal(cpu_conv_run_layout(c1, n, P, K, 1, x, NULL, b1), FERRY_OK);
    assert_int_equal(cpu_pool_run_layout(mpl, n, K, K, 1, b1, b2), FERRY_OK);
    assert_int_equal(cpu_conv_run_layout(c2, n, K, K, 1, b2, b2, b3), FERRY_OK);
    assert_int_equal(cpu_pool_run_layout(gpl, n, K, P, 1, b3, got), FERRY_OK);
    double *ref = dbuf(n * 12);
    for (int64_t i = 0; i < n * 12; i++)
        ref[i] = want[i];
    check_close(got, ref, n * 12, "blocked chain");
    cpu_conv_destroy(c1), cpu_conv_destroy(c2), cpu_pool_destroy(mpl), cpu_pool_destroy(gpl);
    free(W1), free(B1), free(W2), free(B2), free(x), free(a1), free(a2), free(a3), free(want);
    free(b1), free(b2), free(b3), free(got), free(ref);
}

/* --------------------------------------------------------- concurrency */

typedef struct conc_arg {
    cpu_conv *c;
    int64_t n;
    int iters;
    float *x, *r; /* made by the main thread (frand is not thread-safe) */
    double *ref;
    int bad; /* runs that failed or disagreed with the reference */
    int done;
} conc_arg;

static void conc_prepare(conc_arg *a, const cpu_conv_params *p, const float *W, const float *B)
{
    int64_t xs = a->n * 8 * 49, ys = a->n * 16 * 49;
    a->x = rand_buf(xs, -1, 1);
    a->r = rand_buf(ys, -1, 1);
    a->ref = dbuf(ys);
    conv_ref(p, (int64_t[]){7, 7}, a->n, a->x, W, B, a->r, a->ref);
    a->bad = a->done = 0;
}

static void conc_free(conc_arg *a)
{
    free(a->x), free(a->r), free(a->ref);
}

static void *conc_thread(void *arg)
{
    conc_arg *a = arg;
    int64_t ys = a->n * 16 * 49;
    float *y = malloc((size_t)ys * sizeof *y);
    for (int i = 0; y && i < a->iters; i++) {
        memset(y, 0, (size_t)ys * sizeof *y);
        if (cpu_conv_run(a->c, a->n, a->x, a->r, y) != FERRY_OK || rel_err(y, a->ref, ys) > TOL)
            a->bad++;
        a->done++;
    }
    free(y);
    return NULL;
}

/* Two threads run one conv at once, each checking every result. */
static void conc_round(conc_arg *a)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, conc_thread, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].done, a[i].iters);
        assert_int_equal(a[i].bad, 0);
    }
}

static void test_concurrent_runs(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(8, 16, 1, 7, 7, 3, 3);
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    p.act = CPU_ACT_RELU;
    p.residual = CPU_RESIDUAL_BEFORE_ACT;
    float *W = rand_buf(wsize(&p), -0.5f, 0.5f), *B = rand_buf(16, -0.5f, 0.5f);
    cpu_conv *c;
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    /* Different batch sizes, both new to the cache: the two builds and
     * then the runs overlap. */
    conc_arg a[2] = {{.c = c, .n = 5, .iters = 200}, {.c = c, .n = 2, .iters = 200}};
    for (int i = 0; i < 2; i++)
        conc_prepare(&a[i], &p, W, B);
    conc_round(a);
    /* And one batch size on both threads: two slots of one plan. */
    for (int i = 0; i < 2; i++) {
        conc_free(&a[i]);
        a[i].n = 3;
        conc_prepare(&a[i], &p, W, B);
    }
    conc_round(a);
    for (int i = 0; i < 2; i++)
        conc_free(&a[i]);
    cpu_conv_destroy(c);
    free(W), free(B);
}

/* --------------------------------------------------------------- pools */

/* ONNX / PyTorch pooling in double, from the output dims the object says. */
static void pool_ref(const cpu_pool_params *p, const int64_t *out, int64_t n, const float *x,
                     double *y)
{
    int r2 = p->rank == 2;
    int64_t ih = r2 ? p->in[0] : 1, iw = r2 ? p->in[1] : p->in[0];
    int64_t oh = r2 ? out[0] : 1, ow = r2 ? out[1] : out[0];
    int global = p->kind == CPU_POOL_GLOBAL_MAX || p->kind == CPU_POOL_GLOBAL_AVG;
    int64_t kh = global ? ih : r2 ? p->kernel[0] : 1, kw = global ? iw : p->kernel[r2];
    int64_t sh = global ? 1 : r2 ? p->stride[0] : 1, sw = global ? 1 : p->stride[r2];
    int64_t dh = global ? 1 : r2 ? p->dilation[0] : 1, dw = global ? 1 : p->dilation[r2];
    int64_t ph = global ? 0 : r2 ? p->pad_begin[0] : 0, pw = global ? 0 : p->pad_begin[r2];
    int64_t eh = global ? 0 : r2 ? p->pad_end[0] : 0, ew = global ? 0 : p->pad_end[r2];
    sh = sh ? sh : 1, sw = sw ? sw : 1, dh = dh ? dh : 1, dw = dw ? dw : 1;
    int is_max = p->kind == CPU_POOL_MAX || p->kind == CPU_POOL_GLOBAL_MAX;
    for (int64_t q = 0; q < n * p->c; q++)
        for (int64_t a = 0; a < oh; a++)
            for (int64_t b = 0; b < ow; b++) {
                double acc = is_max ? -INFINITY : 0;
                int64_t cnt = 0, cnt_pad = 0;
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        int64_t h = a * sh - ph + i * dh, w = b * sw - pw + j * dw;
                        /* include_pad counts the window clipped to the
                         * explicitly padded input (PyTorch, ORT). */
                        if (h >= -ph && h < ih + eh && w >= -pw && w < iw + ew)
                            cnt_pad++;
                        if (h < 0 || h >= ih || w < 0 || w >= iw)
                            continue;
                        double v = x[(q * ih + h) * iw + w];
                        acc = is_max ? fmax(acc, v) : acc + v;
                        cnt++;
                    }
                if (!is_max)
                    acc /= (p->kind == CPU_POOL_AVG && p->count_include_pad) ? cnt_pad : cnt;
                y[(q * oh + a) * ow + b] = acc;
            }
}

static void pool_case(const cpu_pool_params *p, const int64_t *want_out, const char *what)
{
    cpu_pool *pl;
    ferry_status st = cpu_pool_create(p, &pl);
    if (st != FERRY_OK)
        print_error("%s: %s\n", what, ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    int64_t out[2];
    cpu_pool_out_dims(pl, out);
    for (int i = 0; i < p->rank; i++)
        assert_int_equal(out[i], want_out[i]);
    for (int t = 0; t < 3; t++) {
        int64_t n = NS[t];
        int64_t xs = n * p->c * spatial(p->rank, p->in), ys = n * p->c * spatial(p->rank, out);
        float *x = rand_buf(xs, -1, 1), *y = rand_buf(ys, 100, 200);
        double *ref = dbuf(ys);
        pool_ref(p, out, n, x, ref);
        assert_int_equal(cpu_pool_run(pl, n, x, y), FERRY_OK);
        check_close(y, ref, ys, what);
        /* blocked in and out through reorders */
        cpu_reorder *a, *b;
        int64_t isp = spatial(p->rank, p->in), osp = spatial(p->rank, out);
        assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, p->c, isp, n, &a),
                         FERRY_OK);
        assert_int_equal(cpu_reorder_create(CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, p->c, osp, n, &b),
                         FERRY_OK);
        float *xb = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, p->c, isp), 0, 0);
        float *yb = rand_buf(cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, p->c, osp), 0, 0);
        assert_int_equal(cpu_reorder_run(a, n, x, xb), FERRY_OK);
        assert_int_equal(
            cpu_pool_run_layout(pl, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 1, xb, yb),
            FERRY_OK);
        assert_int_equal(cpu_reorder_run(b, n, yb, y), FERRY_OK);
        check_close(y, ref, ys, what);
        memset(yb, 0, (size_t)cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, p->c, osp) * sizeof *yb);
        assert_int_equal(
            cpu_pool_run_layout(pl, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_BLOCKED, 2, xb, yb),
            FERRY_OK);
        assert_int_equal(cpu_reorder_run(b, n, yb, y), FERRY_OK);
        check_close(y, ref, ys, "two threads");
        memset(y, 0, (size_t)ys * sizeof *y);
        assert_int_equal(cpu_pool_run_layout(pl, n, CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, 1, xb, y),
                         FERRY_OK);
        check_close(y, ref, ys, what);
        cpu_reorder_destroy(a), cpu_reorder_destroy(b);
        free(x), free(y), free(xb), free(yb), free(ref);
    }
    cpu_pool_destroy(pl);
}

static cpu_pool_params pool2d(cpu_pool_kind kind, int64_t k, int64_t s)
{
    cpu_pool_params p = {.kind = kind, .rank = 2, .c = 3, .max_batch = 32};
    p.in[0] = 7, p.in[1] = 5;
    p.kernel[0] = p.kernel[1] = k;
    p.stride[0] = p.stride[1] = s;
    p.dilation[0] = p.dilation[1] = 1;
    return p;
}

static void test_max_pool(void **state)
{
    (void)state;
    cpu_pool_params p = pool2d(CPU_POOL_MAX, 3, 2);
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    pool_case(&p, (int64_t[]){4, 3}, "maxpool 3s2p1"); /* (7+2-3)/2+1, (5+2-3)/2+1 */
    p = pool2d(CPU_POOL_MAX, 2, 2);
    p.ceil_mode = 1;
    pool_case(&p, (int64_t[]){4, 3}, "maxpool ceil"); /* floor would be 3, 2 */
    p.ceil_mode = 0;
    pool_case(&p, (int64_t[]){3, 2}, "maxpool floor");
    p = pool2d(CPU_POOL_MAX, 2, 1);
    p.dilation[0] = p.dilation[1] = 2;
    p.pad_begin[0] = 1;
    pool_case(&p, (int64_t[]){6, 3}, "maxpool dilation 2");
    /* ceil_mode dropping a window that would start in the end pad:
     * in 5, k 2, s 2, pads 1,1: ceil((5+2-2)/2)+1 = 4, but 3*2 >= 5+1. */
    p = pool2d(CPU_POOL_MAX, 2, 2);
    p.in[0] = p.in[1] = 5;
    p.pad_begin[0] = p.pad_begin[1] = p.pad_end[0] = p.pad_end[1] = 1;
    p.ceil_mode = 1;
    pool_case(&p, (int64_t[]){3, 3}, "maxpool ceil drop");
    cpu_pool_params q = {.kind = CPU_POOL_MAX, .rank = 1, .c = 3, .max_batch = 32};
    q.in[0] = 10, q.kernel[0] = 3, q.stride[0] = 2, q.ceil_mode = 1, q.dilation[0] = 1;
    pool_case(&q, (int64_t[]){5}, "maxpool1d ceil");
    /* channel blocks split over threads, the last one part pad; odd sizes,
     * asymmetric pads with ceil_mode (the blocked max pool's clipping). */
    p = pool2d(CPU_POOL_MAX, 3, 2);
    p.c = 37;
    p.in[0] = 13, p.in[1] = 8;
    p.pad_begin[0] = 2, p.pad_end[0] = 0, p.pad_begin[1] = 0, p.pad_end[1] = 1;
    p.ceil_mode = 1;
    pool_case(&p, (int64_t[]){7, 4}, "maxpool 37 channels"); /* ceil(12/2)+1, ceil(6/2)+1 */
}

static void test_avg_pool(void **state)
{
    (void)state;
    for (int inc = 0; inc <= 1; inc++)
        for (int ceil = 0; ceil <= 1; ceil++) {
            cpu_pool_params p = pool2d(CPU_POOL_AVG, 3, 2);
            p.pad_begin[0] = p.pad_begin[1] = 1;
            p.pad_end[0] = 1, p.pad_end[1] = 0;
            p.count_include_pad = inc;
            p.ceil_mode = ceil;
            /* H: (7+2-3)/2+1 = 4 either way; W: (5+1-3)/2 = 1.5: 2 or 3. */
            char what[48];
            snprintf(what, sizeof what, "avgpool include %d ceil %d", inc, ceil);
            pool_case(&p, (int64_t[]){4, ceil ? 3 : 2}, what);
        }
    for (int inc = 0; inc <= 1; inc++) { /* dilations: AveragePool since opset 19 */
        cpu_pool_params p = pool2d(CPU_POOL_AVG, 2, 1);
        p.dilation[0] = p.dilation[1] = 2;
        p.pad_begin[0] = p.pad_end[1] = 1;
        p.count_include_pad = inc;
        pool_case(&p, (int64_t[]){6, 4}, inc ? "avgpool dilation include" : "avgpool dilation");
    }
    cpu_pool_params q = {.kind = CPU_POOL_AVG, .rank = 1, .c = 3, .max_batch = 32};
    q.in[0] = 10, q.kernel[0] = 4, q.stride[0] = 3, q.pad_begin[0] = 2, q.pad_end[0] = 1;
    q.ceil_mode = 1, q.count_include_pad = 1;
    pool_case(&q, (int64_t[]){4}, "avgpool1d ceil include"); /* ceil((10+3-4)/3)+1 */
}

static void test_global_pools(void **state)
{
    (void)state;
    cpu_pool_params p = pool2d(CPU_POOL_GLOBAL_AVG, 0, 0);
    pool_case(&p, (int64_t[]){1, 1}, "global avg");
    p.kind = CPU_POOL_GLOBAL_MAX;
    pool_case(&p, (int64_t[]){1, 1}, "global max");
    cpu_pool_params q = {.kind = CPU_POOL_GLOBAL_AVG, .rank = 1, .c = 3, .max_batch = 32};
    q.in[0] = 13;
    pool_case(&q, (int64_t[]){1}, "global avg 1d");
}

/* ------------------------------------------------------------- 3-D */

/* ONNX Conv / ConvTranspose (3 spatial dims) + bias + activation in
 * double: x [n, I, D, H, W], out the output's spatial dims. */
static void conv3_ref(const cpu_conv_params *p, const int64_t *out, int64_t n, const float *x,
                      const float *W, const float *B, double *y)
{
    const int64_t *in = p->in, *k = p->kernel;
    int64_t G = p->group, I = p->c_in, O = p->c_out, ig = I / G, og = O / G;
    int64_t s[3], d[3], isp = in[0] * in[1] * in[2], osp = out[0] * out[1] * out[2];
    for (int i = 0; i < 3; i++)
        s[i] = p->stride[i] ? p->stride[i] : 1, d[i] = p->dilation[i] ? p->dilation[i] : 1;
    for (int64_t i = 0; i < n * O * osp; i++)
        y[i] = 0;
    /* the conv's taps (ip -> op); a ConvTranspose's are the same pairs reversed */
    const int64_t *xs = p->transposed ? out : in, *ys = p->transposed ? in : out;
    for (int64_t b = 0; b < n; b++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t ii = 0; ii < ig; ii++) {
                int64_t g = o / og, ci = g * ig + ii, oo = o % og;
                for (int64_t t = 0; t < k[0] * k[1] * k[2]; t++) {
                    int64_t kt[3] = {t / (k[1] * k[2]), t / k[2] % k[1], t % k[2]};
                    double w = p->transposed ? W[(ci * og + oo) * k[0] * k[1] * k[2] + t]
                                             : W[(o * ig + ii) * k[0] * k[1] * k[2] + t];
                    for (int64_t q = 0; q < ys[0] * ys[1] * ys[2]; q++) {
                        int64_t yc[3] = {q / (ys[1] * ys[2]), q / ys[2] % ys[1], q % ys[2]}, xc[3];
                        int ok = 1;
                        for (int i = 0; i < 3; i++) {
                            xc[i] = yc[i] * s[i] - p->pad_begin[i] + kt[i] * d[i];
                            ok = ok && xc[i] >= 0 && xc[i] < xs[i];
                        }
                        if (!ok)
                            continue;
                        int64_t xq = (xc[0] * xs[1] + xc[1]) * xs[2] + xc[2];
                        if (!p->transposed)
                            y[(b * O + o) * osp + q] += w * x[(b * I + ci) * isp + xq];
                        else
                            y[(b * O + o) * osp + xq] += w * x[(b * I + ci) * isp + q];
                    }
                }
            }
    for (int64_t i = 0; i < n * O * osp; i++)
        y[i] = act_ref(p->act, y[i] + B[(i / osp) % O], p->alpha, p->beta);
}

/* Builds p and runs it at the first nn of NS against conv3_ref; batch 1
 * also on two threads (channel slices where the conv is large enough). */
static void conv3_case(const cpu_conv_params *p, const int64_t *want_out, int nn, const char *what)
{
    int64_t kk = p->kernel[0] * p->kernel[1] * p->kernel[2];
    float *W = rand_buf((p->transposed ? p->c_in * (p->c_out / p->group)
                                       : p->c_out * (p->c_in / p->group)) *
                            kk,
                        -0.5f, 0.5f);
    float *B = rand_buf(p->c_out, -0.5f, 0.5f);
    cpu_conv *c = NULL;
    ferry_status st = cpu_conv_create(p, W, B, &c);
    if (st != FERRY_OK)
        print_error("%s: %s\n", what, ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    int64_t out[3];
    cpu_conv_out_dims(c, out);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i], want_out[i]);
    for (int t = 0; t < nn; t++) {
        int64_t n = NS[t];
        int64_t xs = n * p->c_in * p->in[0] * p->in[1] * p->in[2],
                ys = n * p->c_out * out[0] * out[1] * out[2];
        float *x = rand_buf(xs, -1, 1), *y = rand_buf(ys, 100, 200);
        double *ref = dbuf(ys);
        conv3_ref(p, out, n, x, W, B, ref);
        assert_int_equal(cpu_conv_run(c, n, x, NULL, y), FERRY_OK);
        check_close(y, ref, ys, what);
        if (n == 1) {
            memset(y, 0, (size_t)ys * sizeof *y);
            assert_int_equal(
                cpu_conv_run_layout(c, 1, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, 2, x, NULL, y),
                FERRY_OK);
            check_close(y, ref, ys, what);
        }
        free(x), free(y), free(ref);
    }
    cpu_conv_destroy(c);
    free(W), free(B);
}

static cpu_conv_params conv3d(int64_t ci, int64_t co, int64_t g, int64_t d, int64_t h, int64_t w,
                              int64_t k)
{
    cpu_conv_params p = {.rank = 3, .c_in = ci, .c_out = co, .group = g, .max_batch = 32};
    p.in[0] = d, p.in[1] = h, p.in[2] = w;
    p.kernel[0] = p.kernel[1] = p.kernel[2] = k;
    return p;
}

/* Conv3d (torchvision's r3d_18, r2plus1d_18) and ConvTranspose3d at odd
 * shapes: strides, dilation and asymmetric pads per axis, groups,
 * depthwise, a (1,3,3) spatial and a (3,1,1) temporal kernel, output
 * padding, a fused relu. */
static void test_conv3d(void **state)
{
    (void)state;
    cpu_conv_params p = conv3d(3, 4, 1, 5, 6, 7, 3);
    p.kernel[1] = 2;
    p.stride[0] = 2, p.stride[2] = 2;
    p.dilation[1] = 2;
    p.pad_begin[0] = 1, p.pad_begin[2] = 2, p.pad_end[1] = 1, p.pad_end[2] = 1;
    /* D (5+1-3)/2+1, H (6+1-3)+1, W (7+3-3)/2+1 */
    conv3_case(&p, (int64_t[]){2, 5, 4}, 3, "conv3d strides dilation pads");
    p = conv3d(4, 6, 2, 3, 5, 5, 3);
    p.kernel[0] = 1;
    p.stride[1] = p.stride[2] = 2;
    p.pad_begin[1] = p.pad_begin[2] = p.pad_end[1] = p.pad_end[2] = 1;
    p.act = CPU_ACT_RELU;
    conv3_case(&p, (int64_t[]){3, 3, 3}, 3, "conv3d (1,3,3) groups 2 relu");
    p = conv3d(3, 3, 3, 4, 3, 2, 3);
    p.kernel[1] = p.kernel[2] = 1;
    p.pad_begin[0] = p.pad_end[0] = 1;
    conv3_case(&p, (int64_t[]){4, 3, 2}, 3, "conv3d (3,1,1) depthwise");
    p = conv3d(2, 3, 1, 3, 4, 5, 3);
    p.transposed = 1;
    p.stride[0] = p.stride[1] = p.stride[2] = 2;
    p.pad_begin[0] = p.pad_begin[1] = p.pad_begin[2] = 1;
    p.pad_end[0] = p.pad_end[1] = p.pad_end[2] = 1;
    p.output_padding[0] = p.output_padding[2] = 1;
    /* 2*(in-1) + op + 3 - 2 */
    conv3_case(&p, (int64_t[]){6, 7, 10}, 3, "convtranspose3d output_padding");
    p = conv3d(4, 2, 2, 2, 3, 3, 2);
    p.transposed = 1;
    p.kernel[0] = 1;
    p.stride[1] = 2;
    conv3_case(&p, (int64_t[]){2, 6, 4}, 3, "convtranspose3d groups");
    /* 32 output channels and 8 MFLOP: two channel slices at batch 1 */
    p = conv3d(8, 32, 1, 4, 12, 12, 3);
    p.pad_begin[0] = p.pad_begin[1] = p.pad_begin[2] = 1;
    p.pad_end[0] = p.pad_end[1] = p.pad_end[2] = 1;
    conv3_case(&p, (int64_t[]){4, 12, 12}, 1, "conv3d slices");
}

/* ONNX MaxPool / AveragePool over 3 spatial dims in double (pads, ceil
 * windows clipped as pool_ref does in 2-D). */
static void pool3_ref(const cpu_pool_params *p, const int64_t *out, int64_t n, const float *x,
                      double *y)
{
    const int64_t *in = p->in;
    int64_t isp = in[0] * in[1] * in[2], osp = out[0] * out[1] * out[2];
    for (int64_t pl = 0; pl < n * p->c; pl++)
        for (int64_t q = 0; q < osp; q++) {
            int64_t oc[3] = {q / (out[1] * out[2]), q / out[2] % out[1], q % out[2]};
            int is_max = p->kind == CPU_POOL_MAX || p->kind == CPU_POOL_GLOBAL_MAX;
            double acc = is_max ? -INFINITY : 0;
            int64_t cnt = 0, cnt_pad = 0;
            int64_t k = p->kernel[0] * p->kernel[1] * p->kernel[2];
            for (int64_t t = 0; t < k; t++) {
                int64_t kt[3] = {t / (p->kernel[1] * p->kernel[2]), t / p->kernel[2] % p->kernel[1],
                                 t % p->kernel[2]};
                int in_x = 1, in_pad = 1;
                int64_t xc[3];
                for (int i = 0; i < 3; i++) {
                    int64_t s = p->stride[i] ? p->stride[i] : 1;
                    int64_t d = p->dilation[i] ? p->dilation[i] : 1;
                    xc[i] = oc[i] * s - p->pad_begin[i] + kt[i] * d;
                    in_x = in_x && xc[i] >= 0 && xc[i] < in[i];
                    in_pad = in_pad && xc[i] >= -p->pad_begin[i] && xc[i] < in[i] + p->pad_end[i];
                }
                cnt_pad += in_pad;
                if (!in_x)
                    continue;
                double v = x[pl * isp + (xc[0] * in[1] + xc[1]) * in[2] + xc[2]];
                acc = is_max ? fmax(acc, v) : acc + v;
                cnt++;
            }
            if (!is_max)
                acc /= p->count_include_pad ? cnt_pad : cnt;
            y[pl * osp + q] = acc;
        }
}

static void pool3_case(const cpu_pool_params *p, const int64_t *want_out, const char *what)
{
    cpu_pool *pl;
    ferry_status st = cpu_pool_create(p, &pl);
    if (st != FERRY_OK)
        print_error("%s: %s\n", what, ferry_last_error());
    assert_int_equal(st, FERRY_OK);
    int64_t out[3];
    cpu_pool_out_dims(pl, out);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i], want_out[i]);
    for (int t = 0; t < 3; t++) {
        int64_t n = NS[t];
        int64_t xs = n * p->c * p->in[0] * p->in[1] * p->in[2],
                ys = n * p->c * out[0] * out[1] * out[2];
        float *x = rand_buf(xs, -1, 1), *y = rand_buf(ys, 100, 200);
        double *ref = dbuf(ys);
        pool3_ref(p, out, n, x, ref);
        assert_int_equal(cpu_pool_run(pl, n, x, y), FERRY_OK);
        check_close(y, ref, ys, what);
        free(x), free(y), free(ref);
    }
    cpu_pool_destroy(pl);
}

/* MaxPool3d / AvgPool3d: ceil_mode (with a window dropped for starting in
 * the end pad), dilation, asymmetric pads, count_include_pad with ceil
 * (the divisor fix table over three dims). */
static void test_pool3d(void **state)
{
    (void)state;
    cpu_pool_params p = {.kind = CPU_POOL_MAX, .rank = 3, .c = 3, .max_batch = 32};
    p.in[0] = 5, p.in[1] = 7, p.in[2] = 6;
    for (int i = 0; i < 3; i++)
        p.kernel[i] = p.stride[i] = 2;
    p.ceil_mode = 1;
    pool3_case(&p, (int64_t[]){3, 4, 3}, "maxpool3d ceil");
    p.kernel[0] = p.kernel[2] = 3, p.kernel[1] = 2;
    p.dilation[1] = 2;
    p.pad_begin[0] = p.pad_begin[2] = 1, p.pad_end[0] = 2, p.pad_end[1] = 1;
    p.ceil_mode = 0;
    /* D (5+3-3)/2+1, H (7+1-3)/2+1, W (6+1-3)/2+1 */
    pool3_case(&p, (int64_t[]){3, 3, 3}, "maxpool3d dilation pads");
    for (int inc = 0; inc <= 1; inc++) {
        cpu_pool_params q = {.kind = CPU_POOL_AVG, .rank = 3, .c = 2, .max_batch = 32};
        q.in[0] = 4, q.in[1] = 5, q.in[2] = 7;
        for (int i = 0; i < 3; i++)
            q.kernel[i] = 3, q.stride[i] = 2;
        q.kernel[0] = 1, q.stride[0] = 1;
        q.pad_begin[1] = q.pad_end[1] = 1, q.pad_begin[2] = 1;
        q.ceil_mode = 1;
        q.count_include_pad = inc;
        /* D 4, H ceil((5+2-3)/2)+1, W ceil((7+1-3)/2)+1 */
        pool3_case(&q, (int64_t[]){4, 3, 4}, inc ? "avgpool3d include ceil" : "avgpool3d ceil");
    }
    cpu_pool_params g = {.kind = CPU_POOL_GLOBAL_AVG, .rank = 3, .c = 3, .max_batch = 32};
    g.in[0] = 2, g.in[1] = 3, g.in[2] = 5;
    g.kernel[0] = 2, g.kernel[1] = 3, g.kernel[2] = 5;
    pool3_case(&g, (int64_t[]){1, 1, 1}, "global avg 3d");
    g.kind = CPU_POOL_GLOBAL_MAX;
    pool3_case(&g, (int64_t[]){1, 1, 1}, "global max 3d");
}

/* ------------------------------------------------------------ batchnorm */

static void bn_case(int64_t n, int64_t c, int64_t sp)
{
    float *x = rand_buf(n * c * sp, -2, 2), *y = rand_buf(n * c * sp, 0, 0);
    float *sc = rand_buf(c, 0.5f, 1.5f), *bi = rand_buf(c, -1, 1), *mu = rand_buf(c, -1, 1);
    float *var = rand_buf(c, 0.1f, 2);
    double *ref = dbuf(n * c * sp);
    for (int64_t i = 0; i < n * c * sp; i++) {
        int64_t ch = (i / sp) % c;
        ref[i] = sc[ch] * (x[i] - mu[ch]) / sqrt((double)var[ch] + 1e-5) + bi[ch];
    }
    cpu_batchnorm(x, y, n, c, sp, sc, bi, mu, var, 1e-5f);
    check_close(y, ref, n * c * sp, "batchnorm");
    /* blocked, through reorders; the pad channels must stay zero */
    cpu_reorder *to_b, *from_b;
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_PLAIN, CPU_LAYOUT_BLOCKED, c, sp, n, &to_b),
                     FERRY_OK);
    assert_int_equal(cpu_reorder_create(CPU_LAYOUT_BLOCKED, CPU_LAYOUT_PLAIN, c, sp, n, &from_b),
                     FERRY_OK);
    int64_t bn = cpu_layout_numel(CPU_LAYOUT_BLOCKED, n, c, sp);
    float *xb = rand_buf(bn, 0, 0);
    assert_int_equal(cpu_reorder_run(to_b, n, x, xb), FERRY_OK);
    cpu_batchnorm_layout(CPU_LAYOUT_BLOCKED, xb, xb, n, c, sp, sc, bi, mu, var, 1e-5f);
    int64_t blk = cpu_dnnl_block(), nb = (c + blk - 1) / blk;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < sp; j++)
            for (int64_t e = c % blk ? c % blk : blk; e < blk; e++)
                assert_true(xb[((i * nb + nb - 1) * sp + j) * blk + e] == 0.0f);
    memset(y, 0, (size_t)(n * c * sp) * sizeof *y);
    assert_int_equal(cpu_reorder_run(from_b, n, xb, y), FERRY_OK);
    check_close(y, ref, n * c * sp, "batchnorm blocked");
    cpu_batchnorm(x, x, n, c, sp, sc, bi, mu, var, 1e-5f); /* in place */
    check_close(x, ref, n * c * sp, "batchnorm in place");
    cpu_reorder_destroy(to_b), cpu_reorder_destroy(from_b);
    free(x), free(y), free(xb), free(sc), free(bi), free(mu), free(var), free(ref);
}

static void test_batchnorm(void **state)
{
    (void)state;
    bn_case(4, 5, 1);     /* [N, C] */
    bn_case(3, 5, 11);    /* [N, C, L] */
    bn_case(2, 3, 7 * 5); /* [N, C, H, W] */
}

static void fold_case(cpu_conv_params p)
{
    int64_t C = p.c_out;
    float *W = rand_buf(wsize(&p), -0.5f, 0.5f), *B = rand_buf(C, -0.5f, 0.5f);
    float *sc = rand_buf(C, 0.5f, 1.5f), *bi = rand_buf(C, -1, 1), *mu = rand_buf(C, -1, 1);
    float *var = rand_buf(C, 0.1f, 2);
    int64_t n = 2;
    cpu_conv *c;
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    int64_t out[2];
    cpu_conv_out_dims(c, out);
    cpu_conv_destroy(c);
    int64_t xs = n * p.c_in * spatial(p.rank, p.in), sp = spatial(p.rank, out), ys = n * C * sp;
    float *x = rand_buf(xs, -1, 1), *y = rand_buf(ys, 0, 0);
    double *ref = dbuf(ys);
    conv_ref(&p, out, n, x, W, B, NULL, ref); /* conv, then BN in double */
    for (int64_t i = 0; i < ys; i++) {
        int64_t ch = (i / sp) % C;
        ref[i] = sc[ch] * (ref[i] - mu[ch]) / sqrt((double)var[ch] + 1e-3) + bi[ch];
    }
    int64_t ks = p.kernel[0] * (p.rank == 2 ? p.kernel[1] : 1);
    cpu_bn_fold_into_conv(p.transposed, p.c_in, C, p.group, ks, W, B, B, sc, bi, mu, var, 1e-3f);
    assert_int_equal(cpu_conv_create(&p, W, B, &c), FERRY_OK);
    assert_int_equal(cpu_conv_run(c, n, x, NULL, y), FERRY_OK);
    check_close(y, ref, ys, p.transposed ? "fold convtranspose" : "fold conv");
    cpu_conv_destroy(c);
    free(W), free(B), free(sc), free(bi), free(mu), free(var), free(x), free(y), free(ref);
}

static void test_bn_fold(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(4, 6, 2, 7, 5, 3, 3);
    p.pad_begin[0] = p.pad_end[1] = 1;
    fold_case(p);
    p.transposed = 1;
    p.stride[0] = 2;
    fold_case(p);
}

/* ----------------------------------------------------------- bad input */

static void expect_fail(const cpu_conv_params *p, ferry_status want, const char *frag)
{
    cpu_conv *c = (cpu_conv *)1;
    float w[256] = {0};
    assert_int_equal(cpu_conv_create(p, w, NULL, &c), want);
    assert_null(c);
    const char *msg = ferry_last_error();
    if (!strstr(msg, frag))
        print_error("message '%s' lacks '%s'\n", msg, frag);
    assert_non_null(strstr(msg, frag));
}

static void test_bad_params(void **state)
{
    (void)state;
    cpu_conv_params p = conv2d(4, 6, 2, 7, 5, 3, 3);
    p.kernel[1] = 0;
    expect_fail(&p, FERRY_EINVAL, "kernel 0");
    p = conv2d(4, 6, 2, 7, 5, 3, 3);
    p.pad_end[0] = 3;
    expect_fail(&p, FERRY_ESHAPE, "pads 0,3 must be in [0, 3)");
    p = conv2d(4, 6, 4, 7, 5, 3, 3);
    expect_fail(&p, FERRY_ESHAPE, "divisible by group 4");
    p = conv2d(3, 6, 1, 2, 5, 3, 3); /* H 2 < kernel 3 without pads */
    expect_fail(&p, FERRY_ESHAPE, "smaller than the dilated kernel");
    p = conv2d(3, 6, 1, 7, 5, 3, 3);
    p.rank = 4;
    expect_fail(&p, FERRY_EINVAL, "spatial rank 4 (1 to 3 supported)");
    p = conv2d(3, 6, 1, 7, 5, 3, 3);
    p.transposed = 1;
    p.stride[0] = 2;
    p.output_padding[0] = 2;
    expect_fail(&p, FERRY_ESHAPE, "output_padding 2");

    cpu_pool_params q = pool2d(CPU_POOL_MAX, 3, 1);
    q.pad_begin[0] = 3;
    cpu_pool *pl = (cpu_pool *)1;
    assert_int_equal(cpu_pool_create(&q, &pl), FERRY_ESHAPE);
    assert_null(pl);
    assert_non_null(strstr(ferry_last_error(), "MaxPool"));
    q = pool2d(CPU_POOL_AVG, 0, 1);
    assert_int_equal(cpu_pool_create(&q, &pl), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "kernel 0"));
    q = pool2d(CPU_POOL_AVG, 3, 1);
    q.rank = 4;
    assert_int_equal(cpu_pool_create(&q, &pl), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "AveragePool: spatial rank 4 (1 to 3 supported)"));

    /* A run with n past max_batch. */
    p = conv2d(3, 4, 1, 7, 5, 3, 3);
    p.max_batch = 2;
    cpu_conv *c;
    float w[108] = {0}, x[3 * 3 * 35] = {0}, y[3 * 4 * 15];
    assert_int_equal(cpu_conv_create(&p, w, NULL, &c), FERRY_OK);
    assert_int_equal(cpu_conv_run(c, 3, x, NULL, y), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "batch size 3 outside [1, 2]"));
    assert_int_equal(cpu_conv_run(c, 2, x, NULL, y), FERRY_OK);
    p.residual = CPU_RESIDUAL_AFTER_ACT;
    cpu_conv *c2;
    assert_int_equal(cpu_conv_create(&p, w, NULL, &c2), FERRY_OK);
    assert_int_equal(cpu_conv_run(c2, 1, x, NULL, y), FERRY_EINVAL);
    cpu_conv_destroy(c);
    cpu_conv_destroy(c2);
    cpu_conv_destroy(NULL);
    cpu_pool_destroy(NULL);
    cpu_reorder_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_basic),
        cmocka_unit_test(test_conv2d_groups_stride_dilation),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_autopad),
        cmocka_unit_test(test_post_ops),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_conv_blocked_layout),
        cmocka_unit_test(test_conv_slices),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_blocked_chain),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_max_pool),
        cmocka_unit_test(test_avg_pool),
        cmocka_unit_test(test_global_pools),
        cmocka_unit_test(test_conv3d),
        cmocka_unit_test(test_pool3d),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_bn_fold),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
