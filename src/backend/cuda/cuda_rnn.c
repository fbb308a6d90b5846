/*
 * cuda_rnn.c - ONNX LSTM, GRU and RNN on CUDA, rows of the run table
 * (cuda_ops.h). The CPU's plan (cpu_rnn.c), on the GPU:
 *
 *   1. one cuBLASLt matmul projects the input of every step and direction:
 *      X [seq*batch, I] x W^T [I, D*G*H] (W is [D*G*H, I] as ONNX stores it);
 *   2. per step and direction, one matmul of the state with R
 *      (h [batch, H] x R_d^T) and one kernel (kernels_rnn.cu) that adds the
 *      step's projection and the biases, applies the gates, writes the new
 *      state and the step's rows of Y, Y_h and Y_c. A plain RNN is the
 *      same with one gate (G = 1) and tanh or relu.
 *
 * The sequence is walked on the host, so a forward issues 2 * seq * D
 * launches; under CUDA graphs (--graphs) they replay as one. The state is
 * fp32 whatever the compute dtype, with a compute-dtype copy for the matmul.
 * cuDNN's RNN API would fuse the steps further; this keeps the two matmul
 * shapes cuBLASLt already plans for every other node, and the CPU's
 * numerics.
 *
 * Supported: LSTM and GRU with linear_before_reset 1 (what PyTorch's
 * nn.LSTM / nn.GRU export) and RNN (Tanh or Relu, the loader refuses
 * others), forward, reverse and bidirectional, layouts 0 and 1, optional
 * B, initial_h / initial_c, default activations, sequence_lens (rows
 * past their length keep their state and get zeros in Y, reverse rows
 * start at their own end, as the CPU; a length outside [0, seq] is
 * clamped, where the CPU fails the run: a kernel cannot). The batch axis
 * must be the model's batch (a multiple of N). Refused with the reason:
 * peepholes, clip, GRU linear_before_reset 0.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/kernels.h"
#include "util/error.h"

typedef struct rnn_state {
    int kind, D, layout;        /* KERN_RNN_* */
    int64_t H, GH, I, seq, per; /* per: the node's batch rows per engine sample */
    gemm_plan proj, rec;
    float *bias; /* device fp32 [D, GH] */
    float *rbh;  /* device fp32 [D, H], GRU */
    int have_proj, have_rec;
    int projected; /* X is the projection already (graph_node.x_projected) */
} rnn_state;

static ferry_status rnn_unsupported(const graph_node *nd, const char *why)
{
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %s on CUDA", nd->name, op_name(nd->op),
                      why);
}

static int present(const graph_node *nd, int k)
{
    return k < nd->n_in && nd->in[k] >= 0;
}

ferry_status cuda_rnn_supports(const cuda_prep *p)
{
    const graph_node *nd = p->nd;
    const graph *g = p->g;
    const graph_value *x = &g->values[nd->in[0]];
    if (!cuda_is_float(x->dtype))
        return rnn_unsupported(nd, "input X must be a float tensor");
    for (int k = 1; k <= 3; k++)
        if (present(nd, k) && !g->values[nd->in[k]].is_const)
            return rnn_unsupported(nd, "W, R and B must be constants");
    if (present(nd, 4) && g->values[nd->in[4]].dtype != FERRY_I32)
        return rnn_unsupported(nd, "sequence_lens must be int32");
    if (nd->op == OP_RNN && nd->mode != RNN_ACT_TANH && nd->mode != RNN_ACT_RELU)
        return rnn_unsupported(nd, "activations other than Tanh and Relu are not supported");
    if (present(nd, 7))
        return rnn_unsupported(nd, "peepholes (input P) are not supported");
    if (nd->clip > 0.0f)
        return rnn_unsupported(nd, "attribute clip is not supported");
    if (nd->op == OP_GRU && !nd->linear_before_reset)
        return rnn_unsupported(nd, "GRU with linear_before_reset=0 is not supported (PyTorch's "
                                   "nn.GRU exports 1)");
    if (x->ndim != 3)
        return rnn_unsupported(nd, "input X must be 3-D");
    int64_t bdim = x->dims[nd->layout ? 0 : 1], sdim = x->dims[nd->layout ? 1 : 0];
    if (bdim >= 0 || sdim <= 0)
        return rnn_unsupported(nd, "the batch axis of X must be the model's batch and the "
                                   "sequence length fixed");
    return FERRY_OK;
}

/* Bias vectors in fp32 from B [D, 2*GH] (Wb then Rb per direction). */
static ferry_status upload_biases(const cuda_prep *p, rnn_state *r)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    int64_t D = r->D, GH = r->GH, H = r->H;
    const graph_value *bv = present(nd, 3) ? &g->values[nd->in[3]] : NULL;
    float *hb = calloc((size_t)(D * GH), sizeof *hb), *hr = calloc((size_t)(D * H), sizeof *hr);
    ferry_status st = FERRY_OK;
    if (!hb || !hr) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
        goto done;
    }
    for (int64_t d = 0; bv && d < D; d++)
        for (int64_t j = 0; j < GH; j++) {
            float wb = cuda_host_f32(bv->dtype, bv->data, d * 2 * GH + j);
            float rb = cuda_host_f32(bv->dtype, bv->data, d * 2 * GH + GH + j);
            int gru_h = r->kind == KERN_RNN_GRU && j >= 2 * H; /* GRU's h gate keeps Rbh apart */
            hb[d * GH + j] = gru_h ? wb : wb + rb;
            if (gru_h)
                hr[d * H + (j - 2 * H)] = rb;
        }
    st = cuda_dev_malloc(p->c->device, (void **)&r->bias, (size_t)(D * GH) * sizeof(float),
                         "RNN biases");
    if (st == FERRY_OK)
        st = CUDA_CHECK(
            cudaMemcpy(r->bias, hb, (size_t)(D * GH) * sizeof(float), cudaMemcpyHostToDevice));
    if (st == FERRY_OK && r->kind == KERN_RNN_GRU) {
        st = cuda_dev_malloc(p->c->device, (void **)&r->rbh, (size_t)(D * H) * sizeof(float),
                             "GRU recurrent biases");
        if (st == FERRY_OK)
            st = CUDA_CHECK(
                cudaMemcpy(r->rbh, hr, (size_t)(D * H) * sizeof(float), cudaMemcpyHostToDevice));
    }
done:
    free(hb);
    free(hr);
    return st;
}

static size_t align256(size_t b)
{
    return (b + 255) & ~(size_t)255;
}

/* Scratch at batch rows B: the projection, then per direction h and c
 * (fp32), the compute-dtype h and the recurrent gates. */
typedef struct rnn_scratch {
    size_t xp, dir, h, c, hc, g, rcopy, total;
} rnn_scratch;

static rnn_scratch scratch_layout(const rnn_state *r, int64_t B, size_t es)
{
    rnn_scratch s;
    s.xp = 0;
    size_t xp_bytes = r->projected ? 0 : align256((size_t)(r->seq * B * r->D * r->GH) * es);
    s.h = 0;
    s.c = align256((size_t)(B * r->H) * sizeof(float));
    s.hc = s.c + align256((size_t)(B * r->H) * sizeof(float));
    s.g = s.hc + align256((size_t)(B * r->H) * es);
    s.dir = s.g + align256((size_t)(B * r->GH) * es);
    s.xp = xp_bytes; /* where the first direction's block starts */
    /* An aligned copy of the second direction's R where its offset in R,
     * GH * H elements, is not a multiple of 16 bytes (cuBLASLt's inputs
     * must be: an odd H in fp16, H = 6 for a plain RNN). */
    s.rcopy = xp_bytes + (size_t)r->D * s.dir;
    s.total =
        s.rcopy + ((size_t)(r->GH * r->H) * es % 16 ? align256((size_t)(r->GH * r->H) * es) : 0);
    return s;
}

void cuda_rnn_destroy(void *state)
{
    rnn_state *r = state;
    if (!r)
        return;
    if (r->have_proj)
        cuda_gemm_release(&r->proj);
    if (r->have_rec)
        cuda_gemm_release(&r->rec);
    if (r->bias)
        cudaFree(r->bias);
    if (r->rbh)
        cudaFree(r->rbh);
    free(r);
}

ferry_status cuda_rnn_prepare(cuda_prep *p, void **state)
{
    const graph *g = p->g;
    const graph_node *nd = p->nd;
    const graph_value *x = &g->values[nd->in[0]];
    rnn_state *r = calloc(1, sizeof *r);
    if (!r)
        return ferry_fail(FERRY_ENOMEM, "out of memory preparing node '%s'", nd->name);
    r->kind = nd->op == OP_LSTM          ? KERN_RNN_LSTM
              : nd->op == OP_GRU         ? KERN_RNN_GRU
              : nd->mode == RNN_ACT_RELU ? KERN_RNN_RELU
                                         : KERN_RNN_TANH;
    r->D = nd->direction == RNN_BIDIRECTIONAL ? 2 : 1;
    r->layout = nd->layout;
    r->H = nd->hidden;
    r->GH = (r->kind == KERN_RNN_LSTM ? 4 : r->kind == KERN_RNN_GRU ? 3 : 1) * r->H;
    /* a projected X (an embedding's rows times W, fuse_rnn.c) holds D*GH
     * per row; W keeps the input size */
    r->projected = nd->x_projected;
    r->I = r->projected ? g->values[nd->in[1]].dims[2] : x->dims[2];
    r->seq = x->dims[nd->layout ? 1 : 0];
    r->per = -x->dims[nd->layout ? 0 : 1];
    ferry_status st = upload_biases(p, r);
    if (st == FERRY_OK && !r->projected) {
        st = cuda_gemm_prepare_patch(p->c, p->ni, &r->proj, r->seq * r->per, r->I, r->D * r->GH);
        r->have_proj = st == FERRY_OK;
    }
    if (st == FERRY_OK) {
        st = cuda_gemm_prepare_patch(p->c, p->ni, &r->rec, r->per, r->H, r->GH);
        r->have_rec = st == FERRY_OK;
    }
    if (st != FERRY_OK) {
        cuda_rnn_destroy(r);
        return st;
    }
    p->c->n_gemms++;
    p->scratch = scratch_layout(r, r->per * p->max_batch, ferry_dtype_size(p->cdt)).total;
    *state = r;
    return FERRY_OK;
}

static ferry_status rnn_launch(const cuda_call *c, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return FERRY_OK;
    ferry_status st = cuda_status_rt(e, what, __FILE__, __LINE__);
    return ferry_fail_prefix(st, "node '%s' (%s)", c->nd->name, op_name(c->nd->op));
}

ferry_status cuda_rnn_run(const cuda_call *c)
{
    rnn_state *r = c->state;
    const graph_node *nd = c->nd;
    int64_t B = r->per * c->n, D = r->D, H = r->H, GH = r->GH, seq = r->seq;
    size_t es = ferry_dtype_size(c->cdt);
    rnn_scratch sl = scratch_layout(r, B, es);
    char *base = c->scratch, *xp = r->projected ? (char *)c->in[0] : base;
    const char *W = c->in[1], *R = c->in[2];
    const void *h0 = present(nd, 5) ? c->in[5] : NULL, *c0 = present(nd, 6) ? c->in[6] : NULL;
    char *Y = nd->n_out > 0 ? c->out[0] : NULL;
    char *Yh = nd->n_out > 1 ? c->out[1] : NULL;
    char *Yc = r->kind == KERN_RNN_LSTM && nd->n_out > 2 ? c->out[2] : NULL;
    const int32_t *lens = present(nd, 4) ? c->in[4] : NULL;

    ferry_status st =
        r->projected ? FERRY_OK : cuda_gemm_run_ptrs(c->s, &r->proj, c->n, c->in[0], W, xp);
    if (st)
        return st;
    /* Rows past their length read zeros in Y (the steps skip them). */
    if (Y && lens) {
        size_t bytes = (size_t)(seq * D * B * H) * es;
        st = rnn_launch(c, cudaMemsetAsync(Y, 0, bytes, c->stream), "cudaMemsetAsync");
        if (st)
            return st;
    }
    /* Row and time strides (elements) by layout: see kern_rnn. X and the
     * projection are [seq, B] or [B, seq] rows of D*GH; Y [seq, D, B, H]
     * or [B, seq, D, H]. */
    int64_t xg_ld = r->layout ? seq * D * GH : D * GH, xg_ts = r->layout ? D * GH : B * D * GH;
    int64_t y_ld = r->layout ? seq * D * H : H, y_ts = r->layout ? D * H : D * B * H;
    int64_t s_ld = r->layout ? D * H : H;
    for (int64_t d = 0; d < D; d++) {
        char *blk = base + sl.xp + (size_t)d * sl.dir;
        kern_rnn k;
        memset(&k, 0, sizeof k);
        k.kind = r->kind;
        k.reverse = d == 1 || nd->direction == RNN_REVERSE;
        k.seq = seq;
        k.lens = lens;
        k.batch = B;
        k.H = H;
        k.GH = GH;
        k.xg_ld = xg_ld;
        k.xg_ts = xg_ts;
        k.xg = xp + (size_t)(d * GH) * es;
        k.hg = blk + sl.g;
        k.bias = r->bias + d * GH;
        k.rbh = r->rbh ? r->rbh + d * H : NULL;
        k.h = (float *)(blk + sl.h);
        k.c = r->kind == KERN_RNN_LSTM ? (float *)(blk + sl.c) : NULL;
        k.hc = blk + sl.hc;
        k.y_ld = y_ld;
        k.y_ts = y_ts;
        k.y = Y ? Y + (size_t)(r->layout ? d * H : d * B * H) * es : NULL;
        k.s_ld = s_ld;
        /* initial_h / c, Y_h, Y_c of direction d: [D, B, H] or [B, D, H] */
        size_t soff = (size_t)(r->layout ? d * H : d * B * H) * es;
        k.yh = Yh ? Yh + soff : NULL;
        k.yc = Yc ? Yc + soff : NULL;
        st = rnn_launch(c,
                        kern_rnn_init(&k, h0 ? (const char *)h0 + soff : NULL,
                                      c0 ? (const char *)c0 + soff : NULL, c->cdt, c->stream),
                        "kern_rnn_init");
        if (st)
            return st;
        const char *Rd = R + (size_t)(d * GH * H) * es;
        if ((uintptr_t)Rd % 16) {
            st = rnn_launch(c,
                            cudaMemcpyAsync(base + sl.rcopy, Rd, (size_t)(GH * H) * es,
                                            cudaMemcpyDeviceToDevice, c->stream),
                            "cudaMemcpyAsync");
            if (st)
                return st;
            Rd = base + sl.rcopy;
        }
        for (int64_t step = 0; step < seq; step++) {
            st = cuda_gemm_run_ptrs(c->s, &r->rec, c->n, k.hc, Rd, (void *)k.hg);
            if (st)
                return st;
            k.k = step;
            st = rnn_launch(c, kern_rnn_step(&k, c->cdt, c->stream), "kern_rnn_step");
            if (st)
                return st;
        }
    }
    return FERRY_OK;
}
