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
 *
 * FERRY_CPU_PROFILE=1: each forward times its nodes; freeing the model
 * prints the time per operator (profile.h).
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_parallel.h"
#include "backend/profile.h"
#include "util/cpus.h"
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
    int layout;       /* cpu_layout: BLOCKED inside a chain of convolutions */
} cpu_value;

/* Per-node state from the run table's prepare. */
typedef struct cpu_node {
    const cpu_op_impl *impl;
    void *state;
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
    int *syms; /* shape-math values read at run time: written per forward (graph.h is_sym) */
    int n_syms;
    size_t scratch_off; /* one scratch region, shared by the nodes in turn */
    size_t arena_bytes;
    backend_profile prof; /* FERRY_CPU_PROFILE (profile.h) */
    char name[192];
};

struct backend_stream {
    backend_ctx *c;
};

struct backend_event {
    int unused;
};

/* ---------------------------------------------------------------- helpers */

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

/* ------------------------------------------------------------------ probe */

static ferry_status cpu_probe(int *n_devices, char *desc, size_t desc_len)
{
    char model[128];
    cpu_model_name(model, sizeof model);
    long cores = ferry_usable_cpus();
    if (n_devices)
        *n_devices = 1;
    if (desc && desc_len)
        snprintf(desc, desc_len, "cpu: %s, %ld cores, %s", model, cores, openblas_get_config());
    return FERRY_OK;
}

/* ------------------------------------------------------------- ctx_create */

static int find_index(const int *list, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v)
            return i;
    return -1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_ctx_destroy(backend_ctx *c)
{
    if (!c)
        return;
    backend_profile_finish(&c->prof, c->g, c->name);
    if (c->have_plan)
        graph_plan_free(&c->plan);
    for (int i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    for (int k = 0; c->nodes && k < c->g->n_nodes; k++)
        if (c->nodes[k].impl && c->nodes[k].impl->destroy && c->nodes[k].state)
            c->nodes[k].impl->destroy(c->nodes[k].state);
    free(c->owned);
    free(c->vals);
    free(c->nodes);
    free(c->syms);
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

/* Activations between convolutions stay in oneDNN's blocked layout
 * (nChw8c on AVX2): reordering every tensor to NCHW and back cost
 * mobilenet_v2 a third of its convolution time (bench/results/
 * cpu-conv-2026-12-07). A value is blocked when a Conv or pool writes it,
 * only Convs and pools read it (as input 0 or a fused residual), it is no
 * graph output, and its channels fill whole blocks (so that its size is
 * the plain one and the arena plan holds). A Conv's residual must be in
 * its output's layout: mismatches unblock until none is left.
 * FERRY_CPU_BLOCKED=0 keeps everything plain (for measurements). */
static void choose_layouts(backend_ctx *c)
{
    const graph *g = c->g;
    const char *env = getenv("FERRY_CPU_BLOCKED");
    int block = cpu_dnnl_block();
    if (env && !strcmp(env, "0"))
        return;
    for (int v = 0; v < g->n_values; v++) {
        const graph_value *gv = &g->values[v];
        int p = gv->producer;
        if (p < 0 || g->nodes[p].dead || !cpu_op_blocked_ok(g->nodes[p].op) ||
            g->nodes[p].op == OP_GLOBAL_AVG_POOL || g->nodes[p].op == OP_GLOBAL_MAX_POOL ||
            gv->is_output || gv->ndim != 4 || gv->dims[1] <= 0 || gv->dims[1] % block ||
            gv->alias >= 0 || c->vals[v].sdt != FERRY_F32)
            continue;
        int ok = 1;
        for (int k = 0; k < g->n_nodes && ok; k++) {
            const graph_node *n = &g->nodes[k];
            if (n->dead)
                continue;
            for (int i = 0; i < n->n_in && ok; i++)
                if (n->in[i] == v)
                    ok = cpu_op_blocked_ok(n->op) && (i == 0 || (i == 3 && n->op == OP_CONV));
        }
        c->vals[v].layout = ok ? CPU_LAYOUT_BLOCKED : CPU_LAYOUT_PLAIN;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int k = 0; k < g->n_nodes; k++) {
            const graph_node *n = &g->nodes[k];
            if (n->dead || n->op != OP_CONV || n->n_in < 4 || n->in[3] < 0)
                continue;
            cpu_value *r = &c->vals[n->in[3]], *o = &c->vals[n->out[0]];
            if (r->layout != o->layout) {
                r->layout = o->layout = CPU_LAYOUT_PLAIN;
                changed = 1;
            }
        }
    }
}

/* Names every operator of g the run table lacks, with counts. */
static ferry_status check_supported(const graph *g)
{
    int counts[OP_COUNT] = {0}, first[OP_COUNT], kinds = 0;
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && !cpu_op_get(g->nodes[k].op) && counts[g->nodes[k].op]++ == 0) {
            first[g->nodes[k].op] = k;
            kinds++;
        }
    if (!kinds)
        return FERRY_OK;
    char list[1024];
    size_t at = 0;
    list[0] = '\0';
    for (int op = 0; op < OP_COUNT && at < sizeof list; op++)
        if (counts[op])
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s (%d node%s, first '%s')",
                                   at ? ", " : "", op_name((op_kind)op), counts[op],
                                   counts[op] == 1 ? "" : "s", g->nodes[first[op]].name);
    return ferry_fail(FERRY_EUNSUPPORTED, "%d operator%s not supported by the cpu backend: %s",
                      kinds, kinds == 1 ? " is" : "s are", list);
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
    if (backend_profile_init(&c->prof, "FERRY_CPU_PROFILE", g->n_nodes) < 0) {
        free(c);
        return ferry_fail(FERRY_ENOMEM, "out of memory creating the cpu backend");
    }
    c->vals = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *c->vals);
    c->nodes = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *c->nodes);
    c->owned = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *c->owned);
    if (!c->vals || !c->nodes || !c->owned) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory creating the cpu backend");
        goto fail;
    }

    /* Stored dtypes: floats as f32. */
    for (int v = 0; v < g->n_values; v++)
        c->vals[v].sdt = cpu_sdt(g->values[v].dtype);
    if ((st = check_supported(g)) != FERRY_OK)
        goto fail;

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
    /* Shape math read at run time (a value known at load as numbers and
     * multiples of N, whose producer folding removed): written into its
     * own region at the start of each forward. */
    for (int v = 0; v < g->n_values; v++) {
        const graph_value *gv = &g->values[v];
        if (!gv->is_sym || gv->n_consumers == 0 || !gv->data)
            continue;
        int *ns = realloc(c->syms, sizeof *ns * (size_t)(c->n_syms + 1));
        if (!ns) {
            st = ferry_fail(FERRY_ENOMEM, "out of memory");
            goto fail;
        }
        c->syms = ns;
        c->syms[c->n_syms++] = v;
        c->vals[v].kind = LOC_ARENA;
        c->vals[v].off = extra;
        extra +=
            round64((size_t)graph_value_numel(gv, o->max_batch) * ferry_dtype_size(c->vals[v].sdt));
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
    choose_layouts(c);

    /* The run table's prepare, per live node, with its constants at hand;
     * one scratch region serves every node in turn. */
    size_t scratch = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *nd = &g->nodes[k];
        if (nd->dead)
            continue;
        cpu_prep p;
        memset(&p, 0, sizeof p);
        p.g = g, p.nd = nd, p.max_batch = o->max_batch;
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0 && c->vals[nd->in[i]].kind == LOC_CONST)
                p.cin[i] = c->vals[nd->in[i]].data;
        c->nodes[k].impl = cpu_op_get(nd->op);
        if (c->nodes[k].impl->prepare &&
            (st = c->nodes[k].impl->prepare(&p, &c->nodes[k].state)) != FERRY_OK)
            goto fail;
        if (p.scratch > scratch)
            scratch = p.scratch;
    }
    c->scratch_off = extra;
    extra += round64(scratch);
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
    snprintf(c->name, sizeof c->name, "cpu (%s, %ld cores)", model, (long)ferry_usable_cpus());
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

static ferry_status run_node(const backend_ctx *c, int k, int64_t n, const fwd_io *io, int threads)
{
    const graph_node *nd = &c->g->nodes[k];
    cpu_call call;
    call.g = c->g;
    call.nd = nd;
    call.state = c->nodes[k].state;
    call.n = n;
    call.scratch = io->arena + c->scratch_off;
    call.threads = threads;
    call.lin = nd->n_in > 0 && nd->in[0] >= 0 ? c->vals[nd->in[0]].layout : CPU_LAYOUT_PLAIN;
    call.lout = nd->out[0] >= 0 ? c->vals[nd->out[0]].layout : CPU_LAYOUT_PLAIN;
    for (int i = 0; i < nd->n_in; i++)
        call.in[i] = nd->in[i] >= 0 ? vptr(c, io, nd->in[i]) : NULL;
    for (int i = 0; i < nd->n_out; i++)
        call.out[i] = nd->out[i] >= 0 ? vptr(c, io, nd->out[i]) : NULL;
    if (!backend_profile_on(&c->prof))
        return c->nodes[k].impl->run(&call);
    int64_t t0 = mono_ns();
    ferry_status st = c->nodes[k].impl->run(&call);
    backend_profile_add((backend_profile *)&c->prof, k, mono_ns() - t0);
    return st;
}

/* Shape math at batch n: element i is data[i] + symk[i]*n. */
static void write_syms(const backend_ctx *c, int64_t n, const fwd_io *io)
{
    for (int i = 0; i < c->n_syms; i++) {
        const graph_value *gv = &c->g->values[c->syms[i]];
        int64_t cnt = graph_value_numel(gv, n);
        if (gv->dtype == FERRY_I64) {
            int64_t *dst = vptr(c, io, c->syms[i]);
            const int64_t *d = gv->data;
            for (int64_t j = 0; j < cnt; j++)
                dst[j] = d[j] + (gv->symk ? gv->symk[j] * n : 0);
        } else {
            memcpy(vptr(c, io, c->syms[i]), gv->data, (size_t)cnt * ferry_dtype_size(gv->dtype));
        }
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
    ferry_status st = FERRY_OK;
    cpu_parallel_enter();
    int threads = cpu_parallel_available();
    write_syms(c, n, &io);
    for (int i = 0; i < c->plan.n_order && st == FERRY_OK; i++)
        st = run_node(c, c->plan.order[i], n, &io, threads);
    cpu_parallel_leave();
    if (st != FERRY_OK)
        return st;
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

/* Evaluates node k of g, whose inputs are all constants with static
 * shapes, into outs[] (host memory of each output's dtype and size):
 * constant folding of the operators fold.c does not compute itself runs
 * the very kernels a forward would. */
static ferry_status cpu_eval_node(const graph *g, int k, void *const *outs)
{
    const graph_node *nd = &g->nodes[k];
    const cpu_op_impl *impl = cpu_op_get(nd->op);
    if (!impl)
        return ferry_fail(FERRY_EUNSUPPORTED, "node '%s' (%s): no cpu kernel", nd->name,
                          op_name(nd->op));
    for (int i = 0; i < nd->n_in; i++)
        if (nd->in[i] >= 0 && g->values[nd->in[i]].dtype != cpu_sdt(g->values[nd->in[i]].dtype))
            return ferry_fail(FERRY_EUNSUPPORTED, "node '%s': folds f32 only", nd->name);
    for (int i = 0; i < nd->n_out; i++)
        if (nd->out[i] >= 0 && g->values[nd->out[i]].dtype != cpu_sdt(g->values[nd->out[i]].dtype))
            return ferry_fail(FERRY_EUNSUPPORTED, "node '%s': folds f32 only", nd->name);
    cpu_prep p;
    memset(&p, 0, sizeof p);
    p.g = g, p.nd = nd, p.max_batch = 1;
    for (int i = 0; i < nd->n_in; i++)
        p.cin[i] = nd->in[i] >= 0 ? g->values[nd->in[i]].data : NULL;
    void *state = NULL;
    ferry_status st = impl->prepare ? impl->prepare(&p, &state) : FERRY_OK;
    if (st)
        return st;
    void *scratch = p.scratch ? aligned_malloc(p.scratch) : NULL;
    if (p.scratch && !scratch) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory folding node '%s'", nd->name);
    } else {
        cpu_call call;
        memset(&call, 0, sizeof call);
        call.g = g, call.nd = nd, call.state = state, call.n = 1, call.scratch = scratch;
        call.threads = 1;
        for (int i = 0; i < nd->n_in; i++)
            call.in[i] = p.cin[i];
        for (int i = 0; i < nd->n_out; i++)
            call.out[i] = outs[i];
        st = impl->run(&call);
    }
    free(scratch);
    if (impl->destroy && state)
        impl->destroy(state);
    return st;
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
    .eval_node = cpu_eval_node,
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
