/*
 * cpu_conv.c - Conv and ConvTranspose through oneDNN convolution and
 * deconvolution primitives, bias, residual sum and activation fused as
 * post-ops (cpu_dnnl.h).
 *
 * Weights are reordered once per format a plan asks for (in practice one:
 * the implementation oneDNN picks for a shape does not change its weights
 * format with the batch size), and kept with the ONNX copy from which a
 * later plan can make another.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_dnnl_plan.h"
#include "backend/cpu/cpu_parallel.h"
#include "backend/cpu/cpu_winograd.h"
#include "util/error.h"

/* Channel slices of a batch-1 run: at most CONV_MAX_PARTS, none with
 * fewer than CONV_PART_MIN output channels or CONV_PART_MIN_FLOPS of work
 * (about 25 us on one core, still several times what a primitive's
 * execute and the pool's hand-off cost; see conv_parts). 2 MFLOP and 16
 * channels rather than 8 and 32 since the convs below them run on one
 * thread instead of OpenMP's two: mobilenet_v2 at batch 1 went from
 * 123-133 to 159-181 samples/s (3 interleaved pairs, 2026-12-07). */
enum { CONV_MAX_PARTS = 8, CONV_PART_MIN = 16 };
#define CONV_PART_MIN_FLOPS 2e6
enum { CONV_MAX_WFMT = 4 + CONV_MAX_PARTS };

typedef struct conv_wfmt {
    dnnl_memory_desc_t md;
    int64_t off; /* the slice's first weight in w_user */
    void *data;
} conv_wfmt;

struct cpu_conv {
    cpu_conv_params p;
    /* The view of vn spatial dims: 2 for 1-D and 2-D ([0] is H, 1 for 1-D;
     * [1] is W), 3 for 3-D (D, H, W). oneDNN's dilation is ONNX's minus
     * one; pad_r has output_padding taken off (ConvTranspose). */
    int vn;
    int64_t in[3], out[3];
    dnnl_dims_t k, s, d, pad_l, pad_r; /* dnnl_dims_t: what oneDNN reads */
    cpu_plain_impl plain;
    dnnl_memory_desc_t w_user_md;
    float *w_user; /* the ONNX weights, as given */
    float *bias;   /* NULL without B */
    conv_wfmt wf[CONV_MAX_WFMT];
    int nwf; /* build mutex */
    dnnl_post_ops_t po;
    plan_cache cache;
    cpu_wino *wino; /* 3x3 stride 1 on blocked activations: Winograd, else NULL */
};

static int64_t dflt1(int64_t v)
{
    return v == 0 ? 1 : v;
}

/* The product of the view's dims of v (in, out, k): pixels of a plane. */
static int64_t vprod(const cpu_conv *c, const int64_t *v)
{
    int64_t e = 1;
    for (int i = 0; i < c->vn; i++)
        e *= v[i];
    return e;
}

ferry_status cpu_conv_resolve_autopad(cpu_autopad mode, int transposed, int rank, const int64_t *in,
                                      const int64_t *kernel, const int64_t *stride,
                                      const int64_t *dilation, const int64_t *output_padding,
                                      int64_t *pad_begin, int64_t *pad_end)
{
    if (mode == CPU_AUTOPAD_NOTSET)
        return FERRY_OK;
    if (mode != CPU_AUTOPAD_VALID && mode != CPU_AUTOPAD_SAME_UPPER &&
        mode != CPU_AUTOPAD_SAME_LOWER)
        return ferry_fail(FERRY_EINVAL, "conv: unknown auto_pad mode %d", (int)mode);
    if (rank < 1 || rank > 3)
        return ferry_fail(FERRY_EINVAL, "conv: spatial rank %d (1 to 3 supported)", rank);
    for (int i = 0; i < rank; i++) {
        int64_t s = dflt1(stride ? stride[i] : 1), d = dflt1(dilation ? dilation[i] : 1);
        int64_t keff = (kernel[i] - 1) * d + 1, total = 0;
        if (mode == CPU_AUTOPAD_VALID) {
            pad_begin[i] = pad_end[i] = 0;
            continue;
        }
        if (!transposed) {
            int64_t out = (in[i] + s - 1) / s;
            total = (out - 1) * s + keff - in[i];
        } else {
            int64_t op = output_padding ? output_padding[i] : 0;
            total = s * (in[i] - 1) + op + keff - in[i] * s;
        }
        if (total < 0)
            total = 0;
        /* ONNX: SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the
         * beginning (for ConvTranspose too, since opset 11's fix). */
        int64_t small = total / 2, large = total - small;
        pad_begin[i] = mode == CPU_AUTOPAD_SAME_UPPER ? small : large;
        pad_end[i] = mode == CPU_AUTOPAD_SAME_UPPER ? large : small;
    }
    return FERRY_OK;
}

void cpu_conv_out_dims(const cpu_conv *c, int64_t *out)
{
    int off = c->p.rank == 1 ? 1 : 0;
    for (int i = 0; i < c->p.rank; i++)
        out[i] = c->out[i + off];
}

/* Validates p and fills c's view. */
static ferry_status conv_shape(cpu_conv *c, const cpu_conv_params *p)
{
    const char *op = p->transposed ? "ConvTranspose" : "Conv";
    if (p->rank < 1 || p->rank > 3)
        return ferry_fail(FERRY_EINVAL, "%s: spatial rank %d (1 to 3 supported)", op, p->rank);
    if (p->c_in < 1 || p->c_out < 1 || p->group < 1 || p->max_batch < 1)
        return ferry_fail(FERRY_EINVAL,
                          "%s: c_in %lld, c_out %lld, group %lld and max_batch %lld must be >= 1",
                          op, (long long)p->c_in, (long long)p->c_out, (long long)p->group,
                          (long long)p->max_batch);
    if (p->c_in % p->group || p->c_out % p->group)
        return ferry_fail(FERRY_ESHAPE,
                          "%s: c_in %lld and c_out %lld must be divisible by group %lld", op,
                          (long long)p->c_in, (long long)p->c_out, (long long)p->group);
    if ((unsigned)p->act > CPU_ACT_SILU || (unsigned)p->residual > CPU_RESIDUAL_AFTER_ACT)
        return ferry_fail(FERRY_EINVAL, "%s: unknown activation %d or residual mode %d", op,
                          (int)p->act, (int)p->residual);
    int off = p->rank == 1 ? 1 : 0;
    c->vn = p->rank == 3 ? 3 : 2;
    for (int i = 0; i < 3; i++) {
        c->in[i] = c->out[i] = c->k[i] = c->s[i] = 1;
        c->d[i] = c->pad_l[i] = c->pad_r[i] = 0;
    }
    for (int i = 0; i < p->rank; i++) {
        int j = i + off;
        int64_t k = p->kernel[i], s = dflt1(p->stride[i]), d = dflt1(p->dilation[i]);
        int64_t pb = p->pad_begin[i], pe = p->pad_end[i];
        int64_t opad = p->transposed ? p->output_padding[i] : 0;
        if (p->in[i] < 1 || k < 1 || s < 1 || d < 1)
            return ferry_fail(FERRY_EINVAL,
                              "%s: spatial dim %d: input %lld, kernel %lld, stride %lld and "
                              "dilation %lld must be >= 1",
                              op, i, (long long)p->in[i], (long long)k, (long long)s, (long long)d);
        int64_t keff = (k - 1) * d + 1;
        if (pb < 0 || pe < 0 || pb >= keff || pe >= keff)
            return ferry_fail(FERRY_ESHAPE,
                              "%s: spatial dim %d: pads %lld,%lld must be in [0, %lld) (the "
                              "dilated kernel's extent)",
                              op, i, (long long)pb, (long long)pe, (long long)keff);
        if (opad < 0 || (opad && opad >= s && opad >= d))
            return ferry_fail(FERRY_ESHAPE,
                              "%s: spatial dim %d: output_padding %lld must be in [0, "
                              "max(stride, dilation))",
                              op, i, (long long)opad);
        int64_t out = p->transposed ? s * (p->in[i] - 1) + opad + keff - pb - pe
                                    : (p->in[i] + pb + pe - keff) / s + 1;
        if ((!p->transposed && p->in[i] + pb + pe < keff) || out < 1)
            return ferry_fail(FERRY_ESHAPE,
                              "%s: spatial dim %d: input %lld with pads %lld,%lld is smaller "
                              "than the dilated kernel %lld",
                              op, i, (long long)p->in[i], (long long)pb, (long long)pe,
                              (long long)keff);
        c->in[j] = p->in[i];
        c->k[j] = k;
        c->s[j] = s;
        c->d[j] = d - 1;
        c->pad_l[j] = pb;
        c->pad_r[j] = pe - opad;
        c->out[j] = out;
    }
    return FERRY_OK;
}

/* The post-op chain: bias is the primitive's own; then sum (the residual
 * already in dst) and eltwise in the order asked. */
static ferry_status conv_post_ops(cpu_conv *c)
{
    dnnl_status_t st = dnnl_post_ops_create(&c->po);
    if (st != dnnl_success) {
        c->po = NULL;
        return cpu_dnnl_fail(st, "creating post-ops");
    }
    const cpu_conv_params *p = &c->p;
    if (p->residual == CPU_RESIDUAL_BEFORE_ACT && st == dnnl_success)
        st = dnnl_post_ops_append_sum(c->po, 1.0f);
    switch (p->act) {
    case CPU_ACT_NONE: break;
    case CPU_ACT_RELU:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_relu, 0, 0);
        break;
    case CPU_ACT_LEAKY_RELU:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_relu, p->alpha, 0);
        break;
    case CPU_ACT_CLIP:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_clip, p->alpha, p->beta);
        break;
    case CPU_ACT_SIGMOID:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_logistic, 0, 0);
        break;
    case CPU_ACT_HARDSWISH:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_hardswish, 0, 0);
        break;
    case CPU_ACT_HARDSIGMOID:
        /* oneDNN 2.6 has no hardsigmoid: alpha*x+beta, then clip to [0,1]. */
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_linear, p->alpha, p->beta);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_clip, 0.0f, 1.0f);
        break;
    case CPU_ACT_GELU:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_gelu_erf, 0, 0);
        break;
    case CPU_ACT_GELU_TANH:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_gelu_tanh, 0, 0);
        break;
    case CPU_ACT_SILU:
        st = dnnl_post_ops_append_eltwise(c->po, 1.0f, dnnl_eltwise_swish, 1.0f, 0);
        break;
    }
    if (p->residual == CPU_RESIDUAL_AFTER_ACT && st == dnnl_success)
        st = dnnl_post_ops_append_sum(c->po, 1.0f);
    return st == dnnl_success ? FERRY_OK : cpu_dnnl_fail(st, "appending post-ops");
}

/* Runs a one-off reorder of the ONNX weights (umd, from w_user + off: a
 * slice's) into md (at create/build). */
static ferry_status conv_weights(cpu_conv *c, const dnnl_memory_desc_t *umd, int64_t off,
                                 const dnnl_memory_desc_t *md, void **out)
{
    for (int i = 0; i < c->nwf; i++)
        if (c->wf[i].off == off && dnnl_memory_desc_equal(&c->wf[i].md, md)) {
            *out = c->wf[i].data;
            return FERRY_OK;
        }
    if (c->nwf == CONV_MAX_WFMT)
        return ferry_fail(FERRY_EINTERNAL, "conv: more than %d weights formats", CONV_MAX_WFMT);
    dnnl_engine_t eng = cpu_dnnl_engine();
    size_t bytes = dnnl_memory_desc_get_size(md);
    void *data = NULL;
    if (posix_memalign(&data, 64, (bytes + 63) / 64 * 64) != 0)
        return ferry_fail(FERRY_ENOMEM, "conv: out of memory for %zu bytes of weights", bytes);
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t st = dnnl_memory_create(&from, umd, eng, c->w_user + off);
    if (st == dnnl_success)
        st = dnnl_memory_create(&to, md, eng, data);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, umd, eng, md, eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&prim, pd);
    if (st == dnnl_success)
        st = dnnl_stream_create(&stream, eng, dnnl_stream_default_flags);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        st = dnnl_primitive_execute(prim, stream, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(stream);
    if (stream)
        dnnl_stream_destroy(stream);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (to)
        dnnl_memory_destroy(to);
    if (from)
        dnnl_memory_destroy(from);
    if (st != dnnl_success) {
        free(data);
        return cpu_dnnl_fail(st, "reordering conv weights");
    }
    c->wf[c->nwf].md = *md;
    c->wf[c->nwf].off = off;
    c->wf[c->nwf].data = data;
    c->nwf++;
    *out = data;
    return FERRY_OK;
}

/* CPU_PLAIN_AUTO: how a plain run goes, from bench/cpu_conv_bench.c on
 * resnet18's and mobilenet_v2's convs (one thread, Zen 3 AVX2, oneDNN
 * 2.6.3, thread-CPU ms). On nchw oneDNN has only gemm:jit (im2col + sgemm),
 * 1.3-1.6x slower than jit:avx2 plus reorders on 3x3 convs and 5-8x on
 * depthwise ones. A 1x1 stride-1 conv on nchw is a plain GEMM per image,
 * and there the reorders cost more than they gain while the image is
 * large: batch 32, 56x56 pw144-24 13.7 direct vs 22.2 reordered, 28x28
 * pw192-32 6.6 vs 11.1, 14x14 pw384-64 4.8 vs 7.9; at 7x7 it turns
 * (pw320-1280 31.4 vs 22.9), and at batch 1 14x14 is even. */
static cpu_plain_impl conv_plain_auto(const cpu_conv *c)
{
    int pointwise = !c->p.transposed && c->p.group == 1;
    for (int i = 0; i < c->vn; i++)
        pointwise =
            pointwise && c->k[i] == 1 && c->s[i] == 1 && c->pad_l[i] == 0 && c->pad_r[i] == 0;
    return pointwise && vprod(c, c->in) >= 14 * 14 ? CPU_PLAIN_DIRECT : CPU_PLAIN_REORDER;
}

/* The conv primitive's md for an activation the caller gives in layout l:
 * nchw itself under CPU_PLAIN_DIRECT, else format any, reordered from or
 * to l where oneDNN picks another. A BLOCKED caller's layout is not
 * forced on the primitive: with 3 input channels (a network's first conv)
 * oneDNN 2.6 has only ref:any for a blocked source, 3000x slower than
 * jit:avx2 on nchw (11.1 s against 3.4 ms for resnet18's conv1). */
static int conv_md_layout(const cpu_conv *c, cpu_layout l)
{
    if (l == CPU_LAYOUT_PLAIN && c->plain == CPU_PLAIN_DIRECT)
        return (int)l;
    return -1;
}

/* A batch-1 run on several threads runs as slices of the output channels,
 * one oneDNN primitive (one thread) each, shared by the backend's pool.
 * oneDNN's own OpenMP split was slower than one thread whenever another
 * process held a core: every layer ends on a barrier that waits for the
 * descheduled thread's static share. Measured with a standalone oneDNN
 * 2.6.3 program beside another build (Zen 3, 2 cores, nChw8c, best of 5):
 * resnet18's 3x3 convs at batch 1 took 6.2-8.9 ms on two OpenMP threads,
 * 5.2-7.4 ms on one, 2.6-4.1 ms as two slices on two threads; whole
 * resnet18 at batch 1, quiet: BENCHMARKS.md. A slice is a range of units: output channels (group 1,
 * every slice reads all of x) or whole groups (each reads its groups' inputs). At batch 1 a channel
 * range is one contiguous run of x, y and the residual in both layouts as long as it starts on a
 * block boundary. */
typedef struct conv_slice {
    int64_t u0, u1;            /* units [u0, u1) */
    int64_t unit_in, unit_out; /* channels a unit reads and writes */
} conv_slice;

/* Units a slice boundary steps by: it must start channel blocks of x and
 * y. */
static int64_t conv_slice_step(int64_t unit_in, int64_t unit_out)
{
    int64_t b = cpu_dnnl_block(), step = 1;
    while ((step * unit_out) % b || (step * unit_in) % b)
        step++;
    return step;
}

static void conv_slice_of(const cpu_conv *c, int part, int parts, conv_slice *sl)
{
    int64_t G = c->p.group;
    sl->unit_in = G == 1 ? 0 : c->p.c_in / G;
    sl->unit_out = G == 1 ? 1 : c->p.c_out / G;
    int64_t units = G == 1 ? c->p.c_out : G;
    if (parts <= 1) {
        sl->u0 = 0;
        sl->u1 = units;
        return;
    }
    int64_t step = conv_slice_step(sl->unit_in, sl->unit_out), q = units / step;
    sl->u0 = part * q / parts * step;
    sl->u1 = part == parts - 1 ? units : (part + 1) * q / parts * step;
}

/* How many slices a batch-1 run on `threads` threads takes: 1 (run whole,
 * on the calling thread) for ConvTranspose and where slices would fall under
 * CONV_PART_MIN output channels or CONV_PART_MIN_FLOPS (mobilenet_v2's
 * small convs), else up to four a thread, so that a thread slowed by
 * another process hands its slices to the other. */
static int conv_parts(const cpu_conv *c, int threads)
{
    if (threads <= 1 || c->p.transposed)
        return 1;
    conv_slice sl;
    conv_slice_of(c, 0, 1, &sl);
    int64_t step = conv_slice_step(sl.unit_in, sl.unit_out);
    double flops = 2.0 * (double)c->p.c_out * (double)(c->p.c_in / c->p.group) *
                   (double)vprod(c, c->k) * (double)vprod(c, c->out);
    int64_t by_work = (int64_t)(flops / CONV_PART_MIN_FLOPS);
    int64_t parts = c->p.c_out / CONV_PART_MIN, want = 4 * (int64_t)threads;
    parts = parts < by_work ? parts : by_work;
    parts = parts < want ? parts : want;
    parts = parts < CONV_MAX_PARTS ? parts : CONV_MAX_PARTS;
    parts = parts < sl.u1 / step ? parts : sl.u1 / step;
    return parts < 2 ? 1 : (int)parts;
}

static ferry_status conv_build(void *owner, const plan_key *key, plan *p)
{
    cpu_conv *c = owner;
    dnnl_engine_t eng = cpu_dnnl_engine();
    if (!eng)
        return FERRY_EINTERNAL;
    int64_t n = key->n;
    conv_slice sl;
    conv_slice_of(c, key->part, key->parts, &sl);
    int64_t nu = sl.u1 - sl.u0;
    int64_t G = c->p.group == 1 ? 1 : nu;
    int64_t I = c->p.group == 1 ? c->p.c_in : nu * sl.unit_in, O = nu * sl.unit_out;
    dnnl_memory_desc_t src, dst, wany, bmd, usrc, udst;
    cpu_dnnl_md_sp(&src, n, I, c->vn, c->in, conv_md_layout(c, key->lin));
    cpu_dnnl_md_sp(&dst, n, O, c->vn, c->out, conv_md_layout(c, key->lout));
    cpu_dnnl_md_sp(&usrc, n, I, c->vn, c->in, key->lin);
    cpu_dnnl_md_sp(&udst, n, O, c->vn, c->out, key->lout);
    /* [G,] O/G, I/G, k...: the group dim only when there are groups */
    int g1 = c->p.group == 1, wnd = (g1 ? 2 : 3) + c->vn;
    dnnl_dims_t wd = {G, O / G, I / G, c->k[0], c->k[1], c->k[2]};
    dnnl_memory_desc_init_by_tag(&wany, wnd, wd + g1, dnnl_f32, dnnl_format_tag_any);
    dnnl_dims_t bd = {O};
    dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x);

    dnnl_status_t st;
    union {
        dnnl_convolution_desc_t conv;
        dnnl_deconvolution_desc_t deconv;
    } od;
    if (!c->p.transposed)
        st = dnnl_dilated_convolution_forward_desc_init(
            &od.conv, dnnl_forward_inference, dnnl_convolution_direct, &src, &wany,
            c->bias ? &bmd : NULL, &dst, c->s, c->d, c->pad_l, c->pad_r);
    else
        st = dnnl_dilated_deconvolution_forward_desc_init(
            &od.deconv, dnnl_forward_inference, dnnl_deconvolution_direct, &src, &wany,
            c->bias ? &bmd : NULL, &dst, c->s, c->d, c->pad_l, c->pad_r);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, c->p.transposed ? "describing a deconvolution"
                                                 : "describing a convolution");
    dnnl_primitive_attr_t attr;
    ferry_status fst = cpu_dnnl_attr(&attr, c->po);
    if (fst != FERRY_OK)
        return fst;
    dnnl_primitive_desc_t pd;
    st = dnnl_primitive_desc_create(&pd, &od, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, "creating a conv primitive descriptor");
    const dnnl_memory_desc_t *psrc = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *pdst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *pw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    src = *psrc;
    dst = *pdst;
    /* The slice's ONNX weights: the first dim (O or G) cut to the slice,
     * the same strides. */
    dnnl_memory_desc_t umd = c->w_user_md;
    int64_t woff = 0;
    if (key->parts > 1) {
        dnnl_dims_t ud, us;
        memcpy(ud, umd.dims, sizeof ud);
        memcpy(us, umd.format_desc.blocking.strides, sizeof us);
        ud[0] = nu;
        woff = sl.u0 * us[0];
        st = dnnl_memory_desc_init_by_strides(&umd, umd.ndims, ud, dnnl_f32, us);
        if (st != dnnl_success) {
            dnnl_primitive_desc_destroy(pd);
            return cpu_dnnl_fail(st, "describing a slice of conv weights");
        }
    }
    fst = conv_weights(c, &umd, woff, pw, &p->w);
    if (fst != FERRY_OK) {
        dnnl_primitive_desc_destroy(pd);
        return fst;
    }
    dnnl_memory_desc_t wmd = *pw;
    p->b = c->bias ? c->bias + sl.u0 * sl.unit_out : NULL;

    /* Steps: [x -> T0], [residual -> T1], conv, [T1 -> y]. */
    int src_re = !dnnl_memory_desc_equal(&src, &usrc);
    int dst_re = !dnnl_memory_desc_equal(&dst, &udst);
    if (src_re) {
        p->t_bytes[0] = dnnl_memory_desc_get_size(&src);
        fst = cpu_plan_add_reorder(p, &usrc, BUF_X, &src, BUF_T0);
    }
    /* The sum post-op adds what dst holds: the residual goes there first,
     * reordered into T1 or copied into y (nothing when it is y). */
    if (dst_re)
        p->t_bytes[1] = dnnl_memory_desc_get_size(&dst);
    if (fst == FERRY_OK && c->p.residual && dst_re)
        fst = cpu_plan_add_reorder(p, &udst, BUF_R, &dst, BUF_T1);
    else if (c->p.residual)
        p->res_copy_floats = dnnl_memory_desc_get_size(&dst) / sizeof(float);
    if (fst != FERRY_OK) {
        dnnl_primitive_desc_destroy(pd);
        return fst;
    }
    plan_step *s = cpu_plan_step_from_pd(p, pd, &fst);
    if (!s)
        return fst;
    cpu_plan_arg_add(s, DNNL_ARG_SRC, src_re ? BUF_T0 : BUF_X, &src);
    cpu_plan_arg_add(s, DNNL_ARG_WEIGHTS, BUF_W, &wmd);
    if (c->bias)
        cpu_plan_arg_add(s, DNNL_ARG_BIAS, BUF_B, &bmd);
    cpu_plan_arg_add(s, DNNL_ARG_DST, dst_re ? BUF_T1 : BUF_Y, &dst);
    if (dst_re)
        fst = cpu_plan_add_reorder(p, &dst, BUF_T1, &udst, BUF_Y);
    return fst;
}

ferry_status cpu_conv_create(const cpu_conv_params *p, const float *W, const float *B,
                             cpu_conv **out)
{
    *out = NULL;
    if (!p || !W)
        return ferry_fail(FERRY_EINVAL, "conv: NULL params or weights");
    cpu_conv *c = calloc(1, sizeof *c);
    if (!c)
        return ferry_fail(FERRY_ENOMEM, "conv: out of memory");
    c->p = *p;
    ferry_status st = conv_shape(c, p);
    if (st != FERRY_OK) {
        free(c);
        return st;
    }
    if (!cpu_dnnl_engine()) {
        free(c);
        return FERRY_EINTERNAL;
    }
    st = cpu_plan_cache_init(&c->cache);
    if (st != FERRY_OK) {
        free(c);
        return st;
    }
    c->plain = p->plain_impl == CPU_PLAIN_AUTO ? conv_plain_auto(c) : p->plain_impl;
    int64_t G = p->group, I = p->c_in, O = p->c_out, ks = vprod(c, c->k);
    int64_t wn = O * (I / G) * ks;
    c->w_user = malloc((size_t)wn * sizeof *c->w_user);
    if (B)
        c->bias = malloc((size_t)O * sizeof *c->bias);
    if (!c->w_user || (B && !c->bias)) {
        cpu_conv_destroy(c);
        return ferry_fail(FERRY_ENOMEM, "conv: out of memory for %lld weights", (long long)wn);
    }
    memcpy(c->w_user, W, (size_t)wn * sizeof *W);
    if (B)
        memcpy(c->bias, B, (size_t)O * sizeof *B);
    /* ONNX's weights as oneDNN dims [G,] O/G, I/G, k... with explicit
     * strides: Conv stores [O][I/G][k] (goi[d]hw), ConvTranspose [I][O/G][k]
     * (g, then i, then o); the kernel itself is dense. */
    int64_t og = O / G, ig = I / G;
    dnnl_dims_t wd = {G, og, ig}, ws = {0};
    if (!p->transposed)
        ws[0] = og * ig * ks, ws[1] = ig * ks, ws[2] = ks;
    else
        ws[0] = ig * og * ks, ws[1] = ks, ws[2] = og * ks;
    int64_t kst = 1;
    for (int i = c->vn - 1; i >= 0; i--) {
        wd[3 + i] = c->k[i];
        ws[3 + i] = kst;
        kst *= c->k[i];
    }
    int wnd = 3 + c->vn;
    if (G == 1) { /* drop the group dim */
        wnd--;
        memmove(wd, wd + 1, (size_t)wnd * sizeof wd[0]);
        memmove(ws, ws + 1, (size_t)wnd * sizeof ws[0]);
    }
    dnnl_status_t ds = dnnl_memory_desc_init_by_strides(&c->w_user_md, wnd, wd, dnnl_f32, ws);
    if (ds != dnnl_success) {
        cpu_conv_destroy(c);
        return cpu_dnnl_fail(ds, "describing conv weights");
    }
    st = conv_post_ops(c);
    if (st != FERRY_OK) {
        cpu_conv_destroy(c);
        return st;
    }
    if (cpu_wino_fits(p)) {
        st = cpu_wino_create(p, W, B, &c->wino);
        if (st != FERRY_OK) {
            cpu_conv_destroy(c);
            return st;
        }
    }
    /* Build the batch-1 plan now: it reorders the weights and reports an
     * unsupported shape here rather than on the first run. */
    plan_key key = {.n = 1, .threads = 1, .lin = CPU_LAYOUT_PLAIN, .lout = CPU_LAYOUT_PLAIN};
    plan *pl;
    plan_slot *s;
    st = cpu_plan_acquire(&c->cache, &key, conv_build, c, &pl, &s);
    if (st != FERRY_OK) {
        cpu_conv_destroy(c);
        return ferry_fail_prefix(st, "%s", p->transposed ? "ConvTranspose" : "Conv");
    }
    cpu_plan_release(&c->cache, pl, s);
    *out = c;
    return FERRY_OK;
}

typedef struct conv_job {
    cpu_conv *c;
    cpu_layout lin, lout;
    int parts;
    const float *x, *res;
    float *y;
    ferry_status st;
} conv_job;

/* One slice of a batch-1 run, on one thread. */
static void conv_part_run(void *arg, int64_t part)
{
    conv_job *j = arg;
    cpu_conv *c = j->c;
    conv_slice sl;
    conv_slice_of(c, (int)part, j->parts, &sl);
    size_t in_off = (size_t)(sl.u0 * sl.unit_in * vprod(c, c->in));
    size_t out_off = (size_t)(sl.u0 * sl.unit_out * vprod(c, c->out));
    plan_key key = {
        .n = 1, .threads = 1, .lin = j->lin, .lout = j->lout, .part = (int)part, .parts = j->parts};
    plan *p;
    plan_slot *s;
    ferry_status st = cpu_plan_acquire(&c->cache, &key, conv_build, c, &p, &s);
    if (st == FERRY_OK) {
        st =
            cpu_plan_execute(p, s, j->x + in_off, j->y + out_off, j->res ? j->res + out_off : NULL);
        cpu_plan_release(&c->cache, p, s);
    }
    if (st != FERRY_OK)
        j->st = st; /* any failure will do: they all name this conv */
}

ferry_status cpu_conv_run_layout(cpu_conv *c, int64_t n, cpu_layout lin, cpu_layout lout,
                                 int threads, const float *x, const float *residual, float *y)
{
    ferry_status st =
        cpu_dnnl_check_batch(c->p.transposed ? "ConvTranspose" : "Conv", n, c->p.max_batch);
    if (st != FERRY_OK)
        return st;
    if (!x || !y || (c->p.residual && !residual))
        return ferry_fail(FERRY_EINVAL, "conv: NULL input, output or residual");
    if ((lin != CPU_LAYOUT_PLAIN && lin != CPU_LAYOUT_BLOCKED) ||
        (lout != CPU_LAYOUT_PLAIN && lout != CPU_LAYOUT_BLOCKED))
        return ferry_fail(FERRY_EINVAL, "conv: unknown layout");
    if (c->wino && lin == CPU_LAYOUT_BLOCKED && lout == CPU_LAYOUT_BLOCKED &&
        cpu_wino_wants(c->wino, n, threads))
        return cpu_wino_run(c->wino, n, threads < 1 ? 1 : threads, x, residual, y);
    int parts = n == 1 ? conv_parts(c, threads) : 1;
    if (parts > 1) {
        conv_job j = {c, lin, lout, parts, x, residual, y, FERRY_OK};
        cpu_parallel_for(conv_part_run, &j, parts, threads);
        return j.st;
    }
    /* Never an OpenMP team: after each parallel region libgomp's workers
     * spin (GOMP_SPINCOUNT, 300k pauses, milliseconds on Zen 3) on the
     * core the pool's helper needs. With resnet18's three 1x1
     * downsampling convs on two OpenMP threads at batch 1, the spinning
     * worker took 25% of the machine's CPU (perf) and the forward ran at
     * 25-30 samples/s; on one thread, 44-50 (interleaved, 2026-12-07). */
    threads = 1;
    plan_key key = {.n = n, .threads = threads, .lin = lin, .lout = lout};
    plan *p;
    plan_slot *s;
    st = cpu_plan_acquire(&c->cache, &key, conv_build, c, &p, &s);
    if (st != FERRY_OK)
        return st;
    st = cpu_plan_execute(p, s, x, y, residual);
    cpu_plan_release(&c->cache, p, s);
    return st;
}

ferry_status cpu_conv_run(cpu_conv *c, int64_t n, const float *x, const float *residual, float *y)
{
    return cpu_conv_run_layout(c, n, CPU_LAYOUT_PLAIN, CPU_LAYOUT_PLAIN, 1, x, residual, y);
}

const char *cpu_conv_impl(cpu_conv *c, int64_t n, cpu_layout lin, cpu_layout lout, int threads)
{
    if (c->wino && lin == CPU_LAYOUT_BLOCKED && lout == CPU_LAYOUT_BLOCKED &&
        cpu_wino_wants(c->wino, n, threads))
        return "ferry:winograd_f2x2_3x3";
    plan_key key = {.n = n, .threads = 1, .lin = lin, .lout = lout};
    plan *p;
    plan_slot *s;
    if (cpu_plan_acquire(&c->cache, &key, conv_build, c, &p, &s) != FERRY_OK)
        return "?";
    cpu_plan_release(&c->cache, p, s);
    const char *name = "?";
    for (int i = 0; i < p->nsteps; i++) {
        const_dnnl_primitive_desc_t pd;
        if (dnnl_primitive_get_primitive_desc(p->step[i].prim, &pd) != dnnl_success)
            continue;
        dnnl_primitive_kind_t kind;
        if (dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) == dnnl_success &&
            kind != dnnl_reorder)
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    }
    return name;
}

void cpu_conv_destroy(cpu_conv *c)
{
    if (!c)
        return;
    cpu_plan_cache_destroy(&c->cache);
    cpu_wino_destroy(c->wino);
    for (int i = 0; i < c->nwf; i++)
        free(c->wf[i].data);
    if (c->po)
        dnnl_post_ops_destroy(c->po);
    free(c->w_user);
    free(c->bias);
    free(c);
}
