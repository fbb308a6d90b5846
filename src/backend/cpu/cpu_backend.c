/*
 * cpu_backend.c - the CPU backend: device memory is host memory, a stream
 * is the calling thread, forward() runs the planned nodes inline.
 *
 * Storage: every floating tensor is held as f32 (f16/bf16/f64 constants are
 * converted once at ctx_create; a Cast to f16/bf16 rounds to that precision
 * and stores f32), integer tensors in their own dtype.
 *
 * Threads: forward() is reentrant. After ctx_create the ctx is read-only;
 * each call resolves pointers from its own in/out/arena, so any number of
 * engine workers may run it at once, each with its own arena.
 *
 * Threads: the backend splits each large Gemm itself (cpu_parallel.c: the
 * caller plus one helper a core, taking chunks from a shared counter) and
 * keeps OpenBLAS at one thread. OpenBLAS's own pool splits statically and
 * spins at a barrier, so one thread slowed by another process stalls the
 * whole call, and concurrent callers of the pthread build serialize on it.
 * While more than one forward() runs (engine workers sharing a batch),
 * each stays on its own thread. FERRY_CPU_THREADS=N caps the threads used.
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_parallel.h"
#include "util/error.h"
#include "util/half.h"

enum { LOC_NONE = 0, LOC_IN, LOC_OUT, LOC_CONST, LOC_ARENA };

/* Where a value's bytes are during forward(); aliases share their root's. */
typedef struct cpu_value {
    int kind;         /* LOC_* */
    int idx;          /* graph input/output index */
    size_t off;       /* arena byte offset */
    const void *data; /* constant, in sdt */
    ferry_dtype sdt;  /* stored dtype: f32 for every float tensor */
} cpu_value;

/* Per-node facts computed once at ctx_create. */
typedef struct cpu_node {
    cpu_bias_kind bias;         /* OP_GEMM */
    int axis;                   /* Softmax/LogSoftmax/LayerNorm: normalized */
    int flat;                   /* Softmax before opset 13: [prod(<axis), prod(>=axis)] */
    int reduce[FERRY_MAX_DIMS]; /* OP_REDUCE_MEAN */
} cpu_node;

struct backend_ctx {
    const graph *g;
    backend_opts o;
    graph_plan plan;
    int have_plan;
    cpu_value *vals;
    cpu_node *nodes;
    void **owned; /* converted constants */
    int n_owned;
    size_t arena_bytes;
    char name[192];
};

struct backend_stream {
    backend_ctx *c;
};

struct backend_event {
    int unused;
};

/* ---------------------------------------------------------------- helpers */

static int is_float_dtype(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

static int is_known_dtype(ferry_dtype dt)
{
    return is_float_dtype(dt) || dt == FERRY_I32 || dt == FERRY_I64 || dt == FERRY_I8 ||
           dt == FERRY_U8 || dt == FERRY_BOOL;
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static void *aligned_malloc(size_t bytes)
{
    return aligned_alloc(64, round64(bytes ? bytes : 1));
}

static void cpu_model_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, len, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static const char *value_name(const graph *g, int v)
{
    return v >= 0 ? g->values[v].name : "?";
}

/* ------------------------------------------------------------------ probe */

static ferry_status cpu_probe(int *n_devices, char *desc, size_t desc_len)
{
    char model[128];
    cpu_model_name(model, sizeof model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_devices)
        *n_devices = 1;
    if (desc && desc_len)
        snprintf(desc, desc_len, "cpu: %s, %ld cores, %s", model, cores, openblas_get_config());
    return FERRY_OK;
}

/* ------------------------------------------------------------- ctx_create */

static ferry_status check_numel(const graph *g, const graph_node *nd, int a, int y, int64_t n)
{
    int64_t na = graph_value_numel(&g->values[a], n), ny = graph_value_numel(&g->values[y], n);
    if (na != ny)
        return ferry_fail(FERRY_ESHAPE,
                          "node '%s' (%s): output '%s' has %lld elements, input '%s' has %lld",
                          nd->name, op_name(nd->op), value_name(g, y), (long long)ny,
                          value_name(g, a), (long long)na);
    return FERRY_OK;
}

/* Binary ops: every input dim must be 1 or the output's (ONNX broadcasting). */
static ferry_status check_bcast(const graph *g, const graph_node *nd, int64_t n)
{
    int64_t yd[FERRY_MAX_DIMS], xd[FERRY_MAX_DIMS];
    int yn = graph_value_shape(&g->values[nd->out[0]], n, yd);
    for (int k = 0; k < 2; k++) {
        int xn = graph_value_shape(&g->values[nd->in[k]], n, xd);
        int bad = xn > yn;
        for (int d = 0; !bad && d < xn; d++) {
            int64_t x = xd[d], y = yd[d + yn - xn];
            bad = x != 1 && x != y;
        }
        if (bad)
            return ferry_fail(
                FERRY_ESHAPE, "node '%s' (%s): input '%s' does not broadcast to output '%s'",
                nd->name, op_name(nd->op), value_name(g, nd->in[k]), value_name(g, nd->out[0]));
    }
    return FERRY_OK;
}

static ferry_status prepare_gemm(const graph *g, const graph_node *nd, cpu_node *cn, int64_t n)
{
    const graph_value *a = &g->values[nd->in[0]], *b = &g->values[nd->in[1]];
    int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS];
    int an = graph_value_shape(a, n, ad);
    graph_value_shape(b, n, bd);
    if (b->ndim != 2 || an < 1 || (nd->trans_a && an != 2))
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "node '%s' (Gemm): A '%s' has rank %d and B '%s' rank %d; the cpu "
                          "backend needs a 2-D B and, with transA, a 2-D A",
                          nd->name, a->name, a->ndim, b->name, b->ndim);
    int64_t M = 1, K;
    if (nd->trans_a) {
        M = ad[1];
        K = ad[0];
    } else {
        for (int d = 0; d < an - 1; d++)
            M *= ad[d];
        K = ad[an - 1];
    }
    int64_t kb = nd->trans_b ? bd[1] : bd[0], N = nd->trans_b ? bd[0] : bd[1];
    if (K != kb)
        return ferry_fail(FERRY_ESHAPE, "node '%s' (Gemm): A '%s' has K=%lld, B '%s' has K=%lld",
                          nd->name, a->name, (long long)K, b->name, (long long)kb);
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (Gemm): dims beyond 2^31 at batch %lld",
                          nd->name, (long long)n);
    int64_t ny = graph_value_numel(&g->values[nd->out[0]], n);
    if (ny != M * N)
        return ferry_fail(FERRY_ESHAPE,
                          "node '%s' (Gemm): output '%s' has %lld elements, "
                          "expected %lld x %lld",
                          nd->name, value_name(g, nd->out[0]), (long long)ny, (long long)M,
                          (long long)N);
    cn->bias = CPU_BIAS_NONE;
    if (nd->n_in >= 3 && nd->in[2] >= 0) {
        const graph_value *c = &g->values[nd->in[2]];
        int64_t cd[FERRY_MAX_DIMS];
        int cnd = graph_value_shape(c, n, cd);
        int64_t cnum = graph_value_numel(c, n), ones = 1;
        for (int d = 0; d < cnd - 1; d++)
            ones *= cd[d];
        if (cnum == 1)
            cn->bias = CPU_BIAS_SCALAR;
        else if (cnd >= 1 && ones == 1 && cd[cnd - 1] == N)
            cn->bias = CPU_BIAS_ROW;
        else if (cnd == 2 && cd[1] == 1 && cd[0] == M)
            cn->bias = CPU_BIAS_COL;
        else if (cnum == M * N)
            cn->bias = CPU_BIAS_FULL;
        else
            return ferry_fail(FERRY_ESHAPE,
                              "node '%s' (Gemm): C '%s' does not broadcast to [%lld,%lld]",
                              nd->name, c->name, (long long)M, (long long)N);
    }
    if (nd->act < ACT_NONE || nd->act > ACT_TANH)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (Gemm): fused activation %d unknown",
                          nd->name, (int)nd->act);
    return FERRY_OK;
}

/* Checks one live node and fills its cpu_node, at batch n. */
static ferry_status prepare_node(backend_ctx *c, int k, int64_t n)
{
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[k];
    cpu_node *cn = &c->nodes[k];
    if (nd->op < 0 || nd->op >= OP_COUNT)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (op %d): not supported by the cpu backend",
                          nd->name, (int)nd->op);
    int need_in = nd->op == OP_GEMM || nd->op == OP_MATMUL ||
                          (nd->op >= OP_ADD && nd->op <= OP_POW) || nd->op == OP_LAYER_NORM
                      ? 2
                      : 1;
    if (nd->n_in < need_in || nd->n_out < 1 || nd->out[0] < 0)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): %d inputs, %d outputs", nd->name,
                          op_name(nd->op), nd->n_in, nd->n_out);
    for (int i = 0; i < need_in; i++)
        if (nd->in[i] < 0)
            return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): input %d is missing", nd->name,
                              op_name(nd->op), i);
    int is_view = nd->op == OP_IDENTITY || nd->op == OP_RESHAPE || nd->op == OP_FLATTEN;
    if (nd->op != OP_CAST && !is_view) {
        /* Compute ops read and write f32. */
        for (int i = 0; i < nd->n_in; i++) {
            int v = nd->in[i];
            if (v >= 0 && c->vals[v].sdt != FERRY_F32)
                return ferry_fail(FERRY_EUNSUPPORTED,
                                  "node '%s' (%s): input '%s' is %s; the cpu backend computes "
                                  "floating tensors only",
                                  nd->name, op_name(nd->op), value_name(g, v),
                                  ferry_dtype_name(g->values[v].dtype));
        }
        for (int i = 0; i < nd->n_out; i++) {
            int v = nd->out[i];
            if (v >= 0 && c->vals[v].sdt != FERRY_F32)
                return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): output '%s' is %s", nd->name,
                                  op_name(nd->op), value_name(g, v),
                                  ferry_dtype_name(g->values[v].dtype));
        }
    }
    const graph_value *x = &g->values[nd->in[0]];
    int r = x->ndim;
    switch (nd->op) {
    case OP_GEMM: return prepare_gemm(g, nd, cn, n);
    case OP_MATMUL: {
        const graph_value *b = &g->values[nd->in[1]];
        int64_t ad[FERRY_MAX_DIMS], bd[FERRY_MAX_DIMS];
        graph_value_shape(x, n, ad);
        graph_value_shape(b, n, bd);
        if (x->ndim < 1 || b->ndim < 1)
            return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (MatMul): scalar operand", nd->name);
        int64_t ka = ad[x->ndim - 1], kb = b->ndim >= 2 ? bd[b->ndim - 2] : bd[0];
        if (ka != kb)
            return ferry_fail(FERRY_ESHAPE, "node '%s' (MatMul): '%s' has K=%lld, '%s' K=%lld",
                              nd->name, x->name, (long long)ka, b->name, (long long)kb);
        /* Output numel = broadcast batch * M * N. */
        int na = x->ndim > 2 ? x->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0;
        int m = na > nb ? na : nb;
        int64_t want = (x->ndim >= 2 ? ad[x->ndim - 2] : 1) * (b->ndim >= 2 ? bd[b->ndim - 1] : 1);
        for (int d = 0; d < m; d++) {
            int ai = d - (m - na), bi = d - (m - nb);
            int64_t av = ai >= 0 ? ad[ai] : 1, bv = bi >= 0 ? bd[bi] : 1;
            if (av != bv && av != 1 && bv != 1)
                return ferry_fail(FERRY_ESHAPE,
                                  "node '%s' (MatMul): batch dims %lld and %lld "
                                  "do not broadcast",
                                  nd->name, (long long)av, (long long)bv);
            want *= av > bv ? av : bv;
        }
        if (graph_value_numel(&g->values[nd->out[0]], n) != want)
            return ferry_fail(FERRY_ESHAPE, "node '%s' (MatMul): output '%s' has the wrong size",
                              nd->name, value_name(g, nd->out[0]));
        return FERRY_OK;
    }
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: return check_bcast(g, nd, n);
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
    case OP_LAYER_NORM: {
        int axis = nd->axis < 0 ? nd->axis + r : nd->axis;
        if (axis < 0 || axis >= r)
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "node '%s' (%s): axis %d out of range for rank %d", nd->name,
                              op_name(nd->op), nd->axis, r);
        cn->axis = axis;
        cn->flat = nd->op != OP_LAYER_NORM && g->opset > 0 && g->opset < 13;
        if (nd->op == OP_LAYER_NORM) {
            int64_t xd[FERRY_MAX_DIMS], cols = 1;
            graph_value_shape(x, n, xd);
            for (int d = axis; d < r; d++)
                cols *= xd[d];
            for (int i = 1; i < 3 && i < nd->n_in; i++)
                if (nd->in[i] >= 0 && graph_value_numel(&g->values[nd->in[i]], n) != cols)
                    return ferry_fail(FERRY_EUNSUPPORTED,
                                      "node '%s' (LayerNormalization): '%s' has %lld elements, "
                                      "expected %lld (broadcast scale/bias not supported)",
                                      nd->name, value_name(g, nd->in[i]),
                                      (long long)graph_value_numel(&g->values[nd->in[i]], n),
                                      (long long)cols);
        }
        return check_numel(g, nd, nd->in[0], nd->out[0], n);
    }
    case OP_REDUCE_MEAN: {
        int64_t xd[FERRY_MAX_DIMS], kept = 1;
        graph_value_shape(x, n, xd);
        memset(cn->reduce, 0, sizeof cn->reduce);
        for (int i = 0; i < nd->n_axes; i++) {
            int64_t a = nd->axes[i] < 0 ? nd->axes[i] + r : nd->axes[i];
            if (a < 0 || a >= r)
                return ferry_fail(FERRY_EUNSUPPORTED,
                                  "node '%s' (ReduceMean): axis %lld out of range for rank %d",
                                  nd->name, (long long)nd->axes[i], r);
            cn->reduce[a] = 1;
        }
        for (int d = 0; d < r; d++) {
            if (nd->n_axes == 0)
                cn->reduce[d] = 1;
            if (!cn->reduce[d])
                kept *= xd[d];
        }
        if (graph_value_numel(&g->values[nd->out[0]], n) != kept)
            return ferry_fail(FERRY_ESHAPE,
                              "node '%s' (ReduceMean): output '%s' has the wrong size", nd->name,
                              value_name(g, nd->out[0]));
        return FERRY_OK;
    }
    case OP_CAST:
        if (!is_known_dtype(nd->to) || !is_known_dtype(x->dtype))
            return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (Cast): from %s to %s not supported",
                              nd->name, ferry_dtype_name(x->dtype), ferry_dtype_name(nd->to));
        return check_numel(g, nd, nd->in[0], nd->out[0], n);
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT:
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY: return check_numel(g, nd, nd->in[0], nd->out[0], n);
    case OP_COUNT: break;
    }
    return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): not supported by the cpu backend",
                      nd->name, op_name(nd->op));
}

static int find_index(const int *list, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v)
            return i;
    return -1;
}

static void cpu_ctx_destroy(backend_ctx *c)
{
    if (!c)
        return;
    if (c->have_plan)
        graph_plan_free(&c->plan);
    for (int i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->vals);
    free(c->nodes);
    free(c);
}

/* Converts constant v to f32 once; the ctx owns the copy. */
static ferry_status convert_const(backend_ctx *c, int v)
{
    const graph_value *gv = &c->g->values[v];
    int64_t n = graph_value_numel(gv, 1);
    float *f = aligned_malloc((size_t)n * sizeof *f);
    if (!f)
        return ferry_fail(FERRY_ENOMEM, "out of memory converting constant '%s' to f32", gv->name);
    cpu_cast(gv->data, gv->dtype, f, FERRY_F32, FERRY_F32, n);
    c->owned[c->n_owned++] = f;
    c->vals[v].data = f;
    return FERRY_OK;
}

static ferry_status cpu_ctx_create(const graph *g, const backend_opts *o, backend_ctx **out)
{
    ferry_status st;
    backend_ctx *c = NULL;
    if (!g || !o || !out)
        return ferry_fail(FERRY_EINVAL, "cpu ctx_create: NULL argument");
    *out = NULL;
    if (o->precision != FERRY_PRECISION_FP32) {
        static const char *names[] = {"fp32", "tf32", "fp16", "bf16"};
        const char *pn = (unsigned)o->precision < 4 ? names[o->precision] : "unknown";
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "the cpu backend supports precision fp32 only; %s was asked "
                          "(tf32/fp16/bf16 need a CUDA device)",
                          pn);
    }
    if (o->io_dtype != FERRY_F32)
        return ferry_fail(FERRY_EUNSUPPORTED,
                          "the cpu backend supports io dtype f32 only; %s was asked",
                          ferry_dtype_name(o->io_dtype));
    if (o->max_batch < 1)
        return ferry_fail(FERRY_EINVAL, "cpu ctx_create: max_batch %lld < 1",
                          (long long)o->max_batch);

    /* Process-wide, like OpenBLAS's pool itself: see "Threads" above. */
    openblas_set_num_threads(1);

    c = calloc(1, sizeof *c);
    if (!c)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating the cpu backend");
    c->g = g;
    c->o = *o;
    c->vals = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *c->vals);
    c->nodes = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *c->nodes);
    c->owned = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *c->owned);
    if (!c->vals || !c->nodes || !c->owned) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating the cpu backend");
        goto fail;
    }

    /* Stored dtypes: floats as f32; an integer constant that is Pow's
     * exponent becomes f32 too. */
    for (int v = 0; v < g->n_values; v++) {
        ferry_dtype dt = g->values[v].dtype;
        c->vals[v].sdt = is_float_dtype(dt) ? FERRY_F32 : dt;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *nd = &g->nodes[k];
        if (!nd->dead && nd->op == OP_POW && nd->n_in >= 2 && nd->in[1] >= 0 &&
            g->values[nd->in[1]].is_const)
            c->vals[nd->in[1]].sdt = FERRY_F32;
    }

    /* Check every live node at the largest and the smallest batch. */
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead)
            continue;
        if ((st = prepare_node(c, k, 1)) != FERRY_OK ||
            (st = prepare_node(c, k, o->max_batch)) != FERRY_OK)
            goto fail;
    }

    if ((st = graph_plan_make(g, o->max_batch, sizeof(float), &c->plan)) != FERRY_OK)
        goto fail;
    c->have_plan = 1;

    /* Locations. A value whose stored element is wider than what the plan
     * sized it for gets its own region after the plan's arena. */
    size_t extra = round64(c->plan.arena_bytes);
    for (int v = 0; v < g->n_values; v++) {
        int root = v, steps = 0;
        while (g->values[root].alias >= 0 && steps++ <= g->n_values)
            root = g->values[root].alias;
        if (steps > g->n_values) {
            st = ferry_fail(FERRY_EINTERNAL, "tensor '%s': alias cycle", g->values[v].name);
            goto fail;
        }
        const graph_value *rv = &g->values[root];
        cpu_value *cv = &c->vals[v];
        int in_idx = rv->is_input ? find_index(g->inputs, g->n_inputs, root) : -1;
        int out_idx = rv->is_output ? find_index(g->outputs, g->n_outputs, root) : -1;
        if (in_idx >= 0) {
            cv->kind = LOC_IN;
            cv->idx = in_idx;
        } else if (rv->is_const) {
            cv->kind = LOC_CONST;
            if (root != v) {
                cv->data = NULL; /* filled below from the root */
            } else if (!rv->data) {
                cv->kind = LOC_NONE;
            } else if (cv->sdt != rv->dtype) {
                if ((st = convert_const(c, v)) != FERRY_OK)
                    goto fail;
            } else {
                cv->data = rv->data;
            }
        } else if (out_idx >= 0) {
            cv->kind = LOC_OUT;
            cv->idx = out_idx;
        } else if (root < g->n_values && c->plan.offset && c->plan.offset[root] != SIZE_MAX) {
            /* plan.c sizes f32/f16/bf16 at elem_bytes, others at their own
             * width if wider. */
            size_t es = ferry_dtype_size(c->vals[root].sdt), ds = ferry_dtype_size(rv->dtype);
            size_t planned = c->plan.elem_bytes;
            if (rv->dtype != FERRY_F32 && rv->dtype != FERRY_F16 && rv->dtype != FERRY_BF16 &&
                ds > planned)
                planned = ds;
            cv->kind = LOC_ARENA;
            if (root == v && es > planned) {
                cv->off = extra;
                extra += round64((size_t)graph_value_numel(rv, o->max_batch) * es);
            } else {
                cv->off = root == v ? c->plan.offset[root] : c->vals[root].off;
            }
        }
    }
    /* Aliases of constants and of relocated values follow their root. */
    for (int v = 0; v < g->n_values; v++) {
        int root = v;
        while (g->values[root].alias >= 0)
            root = g->values[root].alias;
        if (root != v && c->vals[v].kind == c->vals[root].kind) {
            c->vals[v].data = c->vals[root].data;
            c->vals[v].off = c->vals[root].off;
        }
    }
    c->arena_bytes = extra;

    /* Every value a planned node touches must have a home. */
    for (int i = 0; i < c->plan.n_order; i++) {
        const graph_node *nd = &g->nodes[c->plan.order[i]];
        for (int j = 0; j < nd->n_in + nd->n_out; j++) {
            int v = j < nd->n_in ? nd->in[j] : nd->out[j - nd->n_in];
            if (v >= 0 && (c->vals[v].kind == LOC_NONE ||
                           (c->vals[v].kind == LOC_CONST && !c->vals[v].data))) {
                st = ferry_fail(FERRY_EINTERNAL,
                                "node '%s' (%s): tensor '%s' has no storage in the plan", nd->name,
                                op_name(nd->op), g->values[v].name);
                goto fail;
            }
        }
    }

    char model[128];
    cpu_model_name(model, sizeof model);
    snprintf(c->name, sizeof c->name, "cpu (%s, %ld cores)", model, sysconf(_SC_NPROCESSORS_ONLN));
    *out = c;
    return FERRY_OK;
fail:
    cpu_ctx_destroy(c);
    return st;
}

static const char *cpu_ctx_device_name(backend_ctx *c)
{
    return c ? c->name : "cpu";
}

static size_t cpu_arena_bytes(backend_ctx *c)
{
    return c->arena_bytes;
}

/* ----------------------------------------------------------------- memory */

static ferry_status cpu_alloc(backend_ctx *c, size_t bytes, void **out)
{
    (void)c;
    *out = aligned_malloc(bytes);
    if (!*out)
        return ferry_fail(FERRY_ENOMEM, "out of memory allocating %zu bytes of host memory", bytes);
    return FERRY_OK;
}

static void cpu_free(backend_ctx *c, void *p)
{
    (void)c;
    free(p);
}

/* ---------------------------------------------------- streams and events */

static ferry_status cpu_stream_create(backend_ctx *c, backend_stream **out)
{
    backend_stream *s = calloc(1, sizeof *s);
    if (!s)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a cpu stream");
    s->c = c;
    *out = s;
    return FERRY_OK;
}

static void cpu_stream_destroy(backend_stream *s)
{
    free(s);
}

static ferry_status cpu_copy(backend_stream *s, void *dst, const void *src, size_t bytes)
{
    (void)s;
    if (dst != src && bytes)
        memcpy(dst, src, bytes);
    return FERRY_OK;
}

static ferry_status cpu_sync(backend_stream *s)
{
    (void)s;
    return FERRY_OK;
}

static ferry_status cpu_device_sync(backend_ctx *c)
{
    (void)c;
    return FERRY_OK;
}

static ferry_status cpu_event_create(backend_ctx *c, backend_event **out)
{
    (void)c;
    backend_event *e = calloc(1, sizeof *e);
    if (!e)
        return ferry_fail(FERRY_ENOMEM, "out of memory creating a cpu event");
    *out = e;
    return FERRY_OK;
}

static void cpu_event_destroy(backend_event *e)
{
    free(e);
}

static ferry_status cpu_event_record(backend_event *e, backend_stream *s)
{
    (void)e;
    (void)s;
    return FERRY_OK;
}

static ferry_status cpu_event_sync(backend_event *e)
{
    (void)e;
    return FERRY_OK;
}

/* ---------------------------------------------------------------- forward */

typedef struct fwd_io {
    const void *const *in;
    void *const *out;
    char *arena;
} fwd_io;

static void *vptr(const backend_ctx *c, const fwd_io *io, int v)
{
    const cpu_value *cv = &c->vals[v];
    switch (cv->kind) {
    case LOC_IN: return (void *)io->in[cv->idx];
    case LOC_OUT: return io->out[cv->idx];
    case LOC_CONST: return (void *)cv->data;
    case LOC_ARENA: return io->arena + cv->off;
    }
    return NULL;
}

static size_t vbytes(const backend_ctx *c, int v, int64_t n)
{
    return (size_t)graph_value_numel(&c->g->values[v], n) * ferry_dtype_size(c->vals[v].sdt);
}

static void run_node(const backend_ctx *c, int k, int64_t n, const fwd_io *io)
{
    const graph *g = c->g;
    const graph_node *nd = &g->nodes[k];
    const cpu_node *cn = &c->nodes[k];
    const graph_value *xv = &g->values[nd->in[0]];
    const float *x = vptr(c, io, nd->in[0]);
    float *y = vptr(c, io, nd->out[0]);
    int64_t xd[FERRY_MAX_DIMS];
    int xn = graph_value_shape(xv, n, xd);
    int64_t numel = graph_value_numel(xv, n);

    switch (nd->op) {
    case OP_GEMM: {
        int64_t bd[FERRY_MAX_DIMS];
        graph_value_shape(&g->values[nd->in[1]], n, bd);
        int64_t M = 1, K, N = nd->trans_b ? bd[0] : bd[1];
        if (nd->trans_a) {
            M = xd[1];
            K = xd[0];
        } else {
            for (int d = 0; d < xn - 1; d++)
                M *= xd[d];
            K = xd[xn - 1];
        }
        const float *C = cn->bias != CPU_BIAS_NONE ? vptr(c, io, nd->in[2]) : NULL;
        cpu_gemm(nd->trans_a, nd->trans_b, M, N, K, nd->alpha, x, vptr(c, io, nd->in[1]), nd->beta,
                 C, cn->bias, nd->act, nd->act_alpha, y);
        break;
    }
    case OP_MATMUL: {
        int64_t bd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
        int bn = graph_value_shape(&g->values[nd->in[1]], n, bd);
        int yn = graph_value_shape(&g->values[nd->out[0]], n, yd);
        cpu_matmul(x, xd, xn, vptr(c, io, nd->in[1]), bd, bn, y, yd, yn);
        break;
    }
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW: {
        int64_t bd[FERRY_MAX_DIMS], yd[FERRY_MAX_DIMS];
        int bn = graph_value_shape(&g->values[nd->in[1]], n, bd);
        int yn = graph_value_shape(&g->values[nd->out[0]], n, yd);
        cpu_binary(nd->op, x, xd, xn, vptr(c, io, nd->in[1]), bd, bn, y, yd, yn);
        break;
    }
    case OP_RELU:
    case OP_LEAKY_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_GELU:
    case OP_ERF:
    case OP_SQRT: cpu_unary(nd->op, x, y, numel, nd->alpha, nd->approximate); break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX: {
        int64_t outer = 1, L = 1, inner = 1;
        for (int d = 0; d < xn; d++) {
            if (d < cn->axis)
                outer *= xd[d];
            else if (d == cn->axis || cn->flat)
                L *= xd[d];
            else
                inner *= xd[d];
        }
        cpu_softmax(x, y, outer, L, inner, nd->op == OP_LOG_SOFTMAX);
        break;
    }
    case OP_LAYER_NORM: {
        int64_t rows = 1, cols = 1;
        for (int d = 0; d < xn; d++) {
            if (d < cn->axis)
                rows *= xd[d];
            else
                cols *= xd[d];
        }
        const float *bias = nd->n_in >= 3 && nd->in[2] >= 0 ? vptr(c, io, nd->in[2]) : NULL;
        float *mean = nd->n_out >= 2 && nd->out[1] >= 0 ? vptr(c, io, nd->out[1]) : NULL;
        float *rstd = nd->n_out >= 3 && nd->out[2] >= 0 ? vptr(c, io, nd->out[2]) : NULL;
        cpu_layer_norm(x, vptr(c, io, nd->in[1]), bias, y, mean, rstd, rows, cols, nd->epsilon);
        break;
    }
    case OP_REDUCE_MEAN: cpu_reduce_mean(x, xd, xn, cn->reduce, y); break;
    case OP_CAST:
        cpu_cast(x, c->vals[nd->in[0]].sdt, y, c->vals[nd->out[0]].sdt, nd->to, numel);
        break;
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
        if ((const void *)y != (const void *)x)
            memcpy(y, x, vbytes(c, nd->in[0], n));
        break;
    case OP_COUNT: break;
    }
}

static ferry_status cpu_forward(backend_stream *s, int64_t n, const void *const *in,
                                void *const *out, void *arena)
{
    const backend_ctx *c = s->c;
    if (n < 1 || n > c->o.max_batch)
        return ferry_fail(FERRY_EINVAL, "cpu forward: batch %lld outside 1..%lld", (long long)n,
                          (long long)c->o.max_batch);
    fwd_io io = {in, out, arena};
    cpu_parallel_enter();
    for (int i = 0; i < c->plan.n_order; i++)
        run_node(c, c->plan.order[i], n, &io);
    cpu_parallel_leave();
    /* Outputs that live elsewhere: a graph input or constant passed
     * through, a repeated output, an alias of an arena value. */
    const graph *g = c->g;
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        const void *p = vptr(c, &io, v);
        if (p && p != out[i])
            memcpy(out[i], p, vbytes(c, v, n));
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------------ table */

const ferry_backend_ops ferry_backend_cpu = {
    .name = "cpu",
    .host_visible = 1,
    .probe = cpu_probe,
    .ctx_create = cpu_ctx_create,
    .ctx_destroy = cpu_ctx_destroy,
    .ctx_device_name = cpu_ctx_device_name,
    .arena_bytes = cpu_arena_bytes,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .host_alloc = cpu_alloc,
    .host_free = cpu_free,
    .stream_create = cpu_stream_create,
    .stream_destroy = cpu_stream_destroy,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .forward = cpu_forward,
    .stream_sync = cpu_sync,
    .device_sync = cpu_device_sync,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .event_sync = cpu_event_sync,
    .capture_begin = NULL,
    .capture_end = NULL,
    .graph_launch = NULL,
    .graph_destroy = NULL,
};
