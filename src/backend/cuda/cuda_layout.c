/*
 * cuda_layout.c - which activations a 16-bit model keeps channels-last
 * (NHWC) on the device.
 *
 * cuDNN's tensor-core convolutions read and write NHWC; given NCHW they
 * transpose around the kernel. So in fp16 and bf16 the 4-D activations
 * between operators that can work in either layout stay NHWC, the way the
 * CPU backend keeps oneDNN's blocked layouts along a chain: convolutions
 * (cuda_conv.c; a Conv whose input arrives NCHW transposes it itself),
 * pooling, BatchNormalization, elementwise and broadcasting arithmetic
 * (PRelu too: its slope, one a channel, broadcasts as Mul's operands),
 * Concat and same-shape views. Every other operator, and every graph input
 * and output, sees NCHW as the graph describes. A value whose spatial size
 * is 1 ([N, C, 1, 1]: a squeeze-excitation's scale) is the same bytes in
 * both layouts and never marked.
 *
 * The rule, to a fixed point: a 4-D float activation starts NHWC; an
 * operator that cannot work channels-last makes its operands NCHW; one
 * that can needs its operands in one layout (a Conv: its output and
 * residual), so one NCHW operand makes the others NCHW. FERRY_CUDA_LAYOUT=
 * nchw in the environment turns it off (for A/B measurements).
 */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "util/error.h"

enum { UNAWARE = 0, UNIFORM, CONV };

static int how(const graph *g, const graph_node *nd)
{
    switch (nd->op) {
    case OP_CONV: return cuda_conv_nhwc_capable(g, nd) ? CONV : UNAWARE;
    case OP_MAX_POOL:
    case OP_AVG_POOL:
    case OP_GLOBAL_AVG_POOL:
    case OP_GLOBAL_MAX_POOL:
    case OP_BATCH_NORM:
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT:
    case OP_NEG:
    case OP_EXP:
    case OP_ABS:
    case OP_PRELU:
    case OP_CLIP:
    case OP_HARD_SIGMOID:
    case OP_HARD_SWISH:
    case OP_ELU:
    case OP_SELU:
    case OP_CELU:
    case OP_THRESHOLDED_RELU:
    case OP_SOFTSIGN:
    case OP_MISH:
    case OP_SHRINK:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_CONCAT:
    case OP_IDENTITY: return UNIFORM;
    default: return UNAWARE;
    }
}

/* Same bytes in both layouts: spatial size 1. */
static int neutral(const graph_value *v)
{
    return v->ndim == 4 && v->dims[2] * v->dims[3] == 1;
}

int cuda_value_nhwc(const backend_ctx *c, int v)
{
    return c->nhwc && v >= 0 && c->nhwc[c->root[v]];
}

ferry_status cuda_layout_plan(backend_ctx *c)
{
    const graph *g = c->g;
    int nv = g->n_values;
    c->nhwc = calloc((size_t)nv + 1, 1);
    if (!c->nhwc)
        return ferry_fail(FERRY_ENOMEM, "out of memory planning layouts");
    const char *env = getenv("FERRY_CUDA_LAYOUT");
    if ((c->cdt != FERRY_F16 && c->cdt != FERRY_BF16) || (env && !strcmp(env, "nchw")))
        return FERRY_OK;
    unsigned char *m = c->nhwc;
    for (int v = 0; v < nv; v++) {
        const graph_value *gv = &g->values[v];
        m[v] = c->root[v] == v && gv->ndim == 4 && cuda_is_float(gv->dtype) && !gv->is_const &&
               !gv->is_input && !gv->is_output && !neutral(gv) && gv->dims[1] > 0 &&
               gv->dims[2] > 0 && gv->dims[3] > 0;
    }
    /* A root seen through a view of another shape, or as a graph output
     * through a view, stays NCHW. */
    for (int v = 0; v < nv; v++) {
        int r = c->root[v];
        const graph_value *a = &g->values[v], *b = &g->values[r];
        if (r != v && (a->is_output || a->ndim != b->ndim ||
                       memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->ndim)))
            m[r] = 0;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int k = 0; k < g->n_nodes; k++) {
            const graph_node *nd = &g->nodes[k];
            if (nd->dead)
                continue;
            int h = how(g, nd), any_nchw = 0;
            int ops[2 * GRAPH_MAX_IO], n = 0;
            for (int i = 0; i < nd->n_in + nd->n_out; i++) {
                int v = i < nd->n_in ? nd->in[i] : nd->out[i - nd->n_in];
                if (v < 0)
                    continue;
                const graph_value *gv = &g->values[v];
                if (h == CONV && i < nd->n_in && i != 3)
                    continue; /* the input is converted; weights and bias are constants */
                if (gv->is_const) {
                    /* broadcast as [.., C, H, W]: its bytes read channels-last
                     * only when C or H*W is 1 */
                    int r = gv->ndim;
                    int64_t cc = r >= 3 ? gv->dims[r - 3] : 1;
                    int64_t sp = (r >= 1 ? gv->dims[r - 1] : 1) * (r >= 2 ? gv->dims[r - 2] : 1);
                    any_nchw |= h == UNIFORM && r <= 4 && cc > 1 && sp > 1;
                    any_nchw |= r > 4;
                    continue;
                }
                if (neutral(gv))
                    continue;
                if (gv->ndim != 4)
                    any_nchw = 1;
                else
                    any_nchw |= !m[c->root[v]];
                ops[n++] = c->root[v];
            }
            if (h != UNAWARE && !any_nchw)
                continue;
            for (int i = 0; i < n; i++)
                if (m[ops[i]]) {
                    m[ops[i]] = 0;
                    changed = 1;
                }
        }
    }
    return FERRY_OK;
}

void cuda_phys_dims(int nhwc, int *nd, int64_t *d)
{
    if (!nhwc)
        return;
    int64_t t[4] = {1, 1, 1, 1};
    for (int i = 0; i < *nd; i++)
        t[4 - *nd + i] = d[i];
    d[0] = t[0], d[1] = t[2], d[2] = t[3], d[3] = t[1];
    *nd = 4;
}
