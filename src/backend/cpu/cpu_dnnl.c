/*
 * cpu_dnnl.c - the oneDNN plumbing under cpu_conv.c and cpu_pool.c (engine,
 * OpenMP scope, the plan cache of cpu_dnnl_plan.h) and cpu_reorder.
 *
 * Scratchpads: every primitive is made with dnnl_scratchpad_mode_user and
 * each execution slot owns its scratchpad buffer. Debian's oneDNN 2.6.3 is
 * built with OpenMP and without DNNL_ENABLE_CONCURRENT_EXEC, so its
 * library-mode scratchpad is shared per primitive and two threads
 * executing one primitive at once would write the same scratch memory;
 * with user mode the primitive itself is read-only during execution and
 * may run on several threads at once.
 *
 * Allocation per run: none of ours once a slot exists (one per concurrent
 * run of a plan; the first run at a new size builds the plan, and a run
 * that finds every slot of its plan busy makes one more). oneDNN 2.6.3's
 * dnnl_primitive_execute still allocates on every call (its argument map,
 * a std::unordered_map, and execution context): counted with an
 * LD_PRELOAD malloc counter, 5 small allocations per pooling or reorder
 * execute, 7 per conv execute (more arguments), so 7 for a conv run kept
 * blocked and 22 for a plain run that reorders x, the residual and y.
 * dnnl_memory_set_data_handle allocates nothing.
 */
#include "backend/cpu/cpu_dnnl_plan.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "util/error.h"

/* ---------------------------------------------------------------- engine */

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_status_t engine_st;

static void engine_init(void)
{
    engine_st = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

dnnl_engine_t cpu_dnnl_engine(void)
{
    pthread_once(&engine_once, engine_init);
    if (engine_st != dnnl_success) {
        cpu_dnnl_fail(engine_st, "creating the CPU engine");
        return NULL;
    }
    return engine;
}

ferry_status cpu_dnnl_fail(dnnl_status_t st, const char *what)
{
    return ferry_fail(st == dnnl_unimplemented ? FERRY_EUNSUPPORTED : FERRY_EINTERNAL,
                      "oneDNN: %s: %s", what, dnnl_status2str(st));
}

int cpu_dnnl_block(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
}

int64_t cpu_layout_numel(cpu_layout layout, int64_t n, int64_t c, int64_t spatial)
{
    if (layout == CPU_LAYOUT_BLOCKED) {
        int64_t b = cpu_dnnl_block();
        c = (c + b - 1) / b * b;
    }
    return n * c * spatial;
}

/* oneDNN's OpenMP parallel regions take the calling thread's team size,
 * and its JIT kernels fix their thread split when the primitive is made:
 * a plan is built and run under the same count. */
int cpu_dnnl_omp_enter(int threads)
{
    int saved = omp_get_max_threads();
    if (saved != threads)
        omp_set_num_threads(threads);
    return saved;
}

void cpu_dnnl_omp_leave(int saved, int threads)
{
    if (saved != threads)
        omp_set_num_threads(saved);
}

void cpu_dnnl_md_sp(dnnl_memory_desc_t *md, int64_t n, int64_t c, int nsp, const int64_t *sp,
                    int layout)
{
    dnnl_dims_t d = {n, c, sp[0], sp[1], nsp == 3 ? sp[2] : 1};
    int b16 = cpu_dnnl_block() == 16;
    dnnl_format_tag_t tag = dnnl_format_tag_any;
    if (layout == CPU_LAYOUT_PLAIN)
        tag = nsp == 3 ? dnnl_ncdhw : dnnl_nchw;
    else if (layout == CPU_LAYOUT_BLOCKED && nsp == 3)
        tag = b16 ? dnnl_nCdhw16c : dnnl_nCdhw8c;
    else if (layout == CPU_LAYOUT_BLOCKED)
        tag = b16 ? dnnl_nChw16c : dnnl_nChw8c;
    /* Cannot fail for these dims and tags. */
    dnnl_memory_desc_init_by_tag(md, 2 + nsp, d, dnnl_f32, tag);
}

void cpu_dnnl_md(dnnl_memory_desc_t *md, int64_t n, int64_t c, int64_t h, int64_t w, int layout)
{
    const int64_t sp[2] = {h, w};
    cpu_dnnl_md_sp(md, n, c, 2, sp, layout);
}

ferry_status cpu_dnnl_check_batch(const char *what, int64_t n, int64_t max_batch)
{
    if (n < 1 || n > max_batch)
        return ferry_fail(FERRY_EINVAL, "%s: batch size %lld outside [1, %lld]", what, (long long)n,
                          (long long)max_batch);
    return FERRY_OK;
}

/* ------------------------------------------------------------------ plans */

plan_step *cpu_plan_step_add(plan *p, dnnl_primitive_t prim)
{
    plan_step *s = &p->step[p->nsteps++];
    s->prim = prim;
    s->nargs = 0;
    return s;
}

void cpu_plan_arg_add(plan_step *s, int arg, plan_buf buf, const dnnl_memory_desc_t *md)
{
    plan_arg *a = &s->a[s->nargs++];
    a->arg = arg;
    a->buf = buf;
    a->md = *md;
}

ferry_status cpu_dnnl_attr(dnnl_primitive_attr_t *attr, const_dnnl_post_ops_t post_ops)
{
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, "creating an attr");
    st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && post_ops)
        st = dnnl_primitive_attr_set_post_ops(*attr, post_ops);
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
        return cpu_dnnl_fail(st, "setting the attr");
    }
    return FERRY_OK;
}

plan_step *cpu_plan_step_from_pd(plan *p, dnnl_primitive_desc_t pd, ferry_status *st)
{
    dnnl_primitive_t prim = NULL;
    dnnl_status_t ds = dnnl_primitive_create(&prim, pd);
    if (ds != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        *st = cpu_dnnl_fail(ds, "creating a primitive");
        return NULL;
    }
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
    plan_step *s = cpu_plan_step_add(p, prim);
    if (bytes) {
        cpu_plan_arg_add(s, DNNL_ARG_SCRATCHPAD, BUF_SCRATCH, sp);
        if (bytes > p->scratch_bytes)
            p->scratch_bytes = bytes;
    }
    dnnl_primitive_desc_destroy(pd);
    *st = FERRY_OK;
    return s;
}

ferry_status cpu_plan_add_reorder(plan *p, const dnnl_memory_desc_t *from, plan_buf bf,
                                  const dnnl_memory_desc_t *to, plan_buf bt)
{
    dnnl_engine_t eng = cpu_dnnl_engine();
    if (!eng)
        return FERRY_EINTERNAL;
    dnnl_primitive_attr_t attr;
    ferry_status fst = cpu_dnnl_attr(&attr, NULL);
    if (fst != FERRY_OK)
        return fst;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return cpu_dnnl_fail(st, "creating a reorder");
    plan_step *s = cpu_plan_step_from_pd(p, pd, &fst);
    if (!s)
        return fst;
    cpu_plan_arg_add(s, DNNL_ARG_FROM, bf, from);
    cpu_plan_arg_add(s, DNNL_ARG_TO, bt, to);
    return FERRY_OK;
}

static void slot_free(const plan *p, plan_slot *s)
{
    if (!s)
        return;
    for (int i = 0; i < p->nsteps; i++)
        for (int j = 0; j < p->step[i].nargs; j++)
            if (s->mem[i][j])
                dnnl_memory_destroy(s->mem[i][j]);
    if (s->stream)
        dnnl_stream_destroy(s->stream);
    free(s->t[0]);
    free(s->t[1]);
    free(s->scratch);
    free(s);
}

static void *alloc64(size_t bytes)
{
    void *q = NULL;
    if (!bytes)
        return NULL;
    if (posix_memalign(&q, 64, (bytes + 63) / 64 * 64) != 0)
        return NULL;
    return q;
}

static ferry_status slot_new(const plan *p, plan_slot **out)
{
    dnnl_engine_t eng = cpu_dnnl_engine();
    if (!eng)
        return FERRY_EINTERNAL;
    plan_slot *s = calloc(1, sizeof *s);
    if (!s)
        return ferry_fail(FERRY_ENOMEM, "oneDNN plan: out of memory for a slot");
    dnnl_status_t st = dnnl_stream_create(&s->stream, eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        s->stream = NULL;
        slot_free(p, s);
        return cpu_dnnl_fail(st, "creating a stream");
    }
    for (int i = 0; i < p->nsteps; i++)
        for (int j = 0; j < p->step[i].nargs; j++) {
            st = dnnl_memory_create(&s->mem[i][j], &p->step[i].a[j].md, eng, DNNL_MEMORY_NONE);
            if (st != dnnl_success) {
                s->mem[i][j] = NULL;
                slot_free(p, s);
                return cpu_dnnl_fail(st, "creating a memory object");
            }
        }
    for (int k = 0; k < 2; k++)
        if (p->t_bytes[k] && !(s->t[k] = alloc64(p->t_bytes[k]))) {
            slot_free(p, s);
            return ferry_fail(FERRY_ENOMEM, "oneDNN plan: out of memory for %zu bytes",
                              p->t_bytes[k]);
        }
    if (p->scratch_bytes && !(s->scratch = alloc64(p->scratch_bytes))) {
        slot_free(p, s);
        return ferry_fail(FERRY_ENOMEM, "oneDNN plan: out of memory for a %zu-byte scratchpad",
                          p->scratch_bytes);
    }
    *out = s;
    return FERRY_OK;
}

static void plan_free(plan *p)
{
    while (p->free) {
        plan_slot *s = p->free;
        p->free = s->next;
        slot_free(p, s);
    }
    for (int i = 0; i < p->nsteps; i++)
        dnnl_primitive_destroy(p->step[i].prim);
    free(p);
}

ferry_status cpu_plan_cache_init(plan_cache *c)
{
    c->plans = NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return ferry_fail(FERRY_EINTERNAL, "pthread_mutex_init failed");
    if (pthread_mutex_init(&c->build_mu, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        return ferry_fail(FERRY_EINTERNAL, "pthread_mutex_init failed");
    }
    return FERRY_OK;
}

void cpu_plan_cache_destroy(plan_cache *c)
{
    while (c->plans) {
        plan *p = c->plans;
        c->plans = p->next;
        plan_free(p);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->build_mu);
}

static plan *plan_find(plan *p, const plan_key *k)
{
    for (; p; p = p->next)
        if (p->key.n == k->n && p->key.threads == k->threads && p->key.lin == k->lin &&
            p->key.lout == k->lout && p->key.part == k->part && p->key.parts == k->parts)
            return p;
    return NULL;
}

/* Takes an idle slot of p (cache mutex held by the caller) or NULL. */
static plan_slot *slot_take(plan *p)
{
    plan_slot *s = p->free;
    if (s)
        p->free = s->next;
    return s;
}

ferry_status cpu_plan_acquire(plan_cache *c, const plan_key *key, plan_build_fn build, void *owner,
                              plan **pp, plan_slot **ps)
{
    pthread_mutex_lock(&c->mu);
    plan *p = plan_find(c->plans, key);
    plan_slot *s = p ? slot_take(p) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!p) {
        /* Builds are serialized (they also share the owner's weights
         * list); another thread may have built this key meanwhile. The
         * plans list only grows until destroy, so a plan found here stays
         * valid after the mutex is dropped. */
        pthread_mutex_lock(&c->build_mu);
        pthread_mutex_lock(&c->mu);
        p = plan_find(c->plans, key);
        pthread_mutex_unlock(&c->mu);
        if (!p) {
            plan *np = calloc(1, sizeof *np);
            if (!np) {
                pthread_mutex_unlock(&c->build_mu);
                return ferry_fail(FERRY_ENOMEM, "oneDNN plan: out of memory");
            }
            np->key = *key;
            int saved = cpu_dnnl_omp_enter(key->threads);
            ferry_status st = build(owner, key, np);
            cpu_dnnl_omp_leave(saved, key->threads);
            if (st != FERRY_OK) {
                plan_free(np);
                pthread_mutex_unlock(&c->build_mu);
                return st;
            }
            pthread_mutex_lock(&c->mu);
            np->next = c->plans;
            c->plans = np;
            pthread_mutex_unlock(&c->mu);
            p = np;
        }
        pthread_mutex_unlock(&c->build_mu);
    }
    if (!s) {
        ferry_status st = slot_new(p, &s);
        if (st != FERRY_OK)
            return st;
    }
    *pp = p;
    *ps = s;
    return FERRY_OK;
}

void cpu_plan_release(plan_cache *c, plan *p, plan_slot *s)
{
    pthread_mutex_lock(&c->mu);
    s->next = p->free;
    p->free = s;
    pthread_mutex_unlock(&c->mu);
}

ferry_status cpu_plan_execute(const plan *p, plan_slot *s, const float *x, float *y, const float *r)
{
    if (p->res_copy_floats && r != y)
        memcpy(y, r, p->res_copy_floats * sizeof(float));
    int saved = cpu_dnnl_omp_enter(p->key.threads);
    ferry_status fst = FERRY_OK;
    for (int i = 0; i < p->nsteps && fst == FERRY_OK; i++) {
        const plan_step *st = &p->step[i];
        dnnl_exec_arg_t args[PLAN_MAX_ARGS];
        for (int j = 0; j < st->nargs; j++) {
            void *h = NULL;
            switch (st->a[j].buf) {
            /* oneDNN takes non-const handles; it only reads sources. */
            case BUF_X: h = (void *)(uintptr_t)x; break;
            case BUF_Y: h = y; break;
            case BUF_R: h = (void *)(uintptr_t)r; break;
            case BUF_T0: h = s->t[0]; break;
            case BUF_T1: h = s->t[1]; break;
            case BUF_W: h = p->w; break;
            case BUF_B: h = (void *)(uintptr_t)p->b; break;
            case BUF_SCRATCH: h = s->scratch; break;
            }
            dnnl_status_t hs = dnnl_memory_set_data_handle_v2(s->mem[i][j], h, s->stream);
            if (hs != dnnl_success && fst == FERRY_OK)
                fst = cpu_dnnl_fail(hs, "setting a memory's data handle");
            args[j].arg = st->a[j].arg;
            args[j].memory = s->mem[i][j];
        }
        if (fst != FERRY_OK)
            break;
        dnnl_status_t ds = dnnl_primitive_execute(st->prim, s->stream, st->nargs, args);
        if (ds != dnnl_success)
            fst = cpu_dnnl_fail(ds, "executing a primitive");
    }
    if (fst == FERRY_OK) {
        dnnl_status_t ds = dnnl_stream_wait(s->stream);
        if (ds != dnnl_success)
            fst = cpu_dnnl_fail(ds, "waiting on a stream");
    }
    cpu_dnnl_omp_leave(saved, p->key.threads);
    return fst;
}

/* ---------------------------------------------------------------- reorder */

struct cpu_reorder {
    cpu_layout from, to;
    int64_t c, spatial, max_batch;
    plan_cache cache;
};

static ferry_status reorder_build(void *owner, const plan_key *key, plan *p)
{
    const cpu_reorder *r = owner;
    dnnl_memory_desc_t a, b;
    cpu_dnnl_md(&a, key->n, r->c, 1, r->spatial, key->lin);
    cpu_dnnl_md(&b, key->n, r->c, 1, r->spatial, key->lout);
    return cpu_plan_add_reorder(p, &a, BUF_X, &b, BUF_Y);
}

ferry_status cpu_reorder_create(cpu_layout from, cpu_layout to, int64_t c, int64_t spatial,
                                int64_t max_batch, cpu_reorder **out)
{
    *out = NULL;
    if (c < 1 || spatial < 1 || max_batch < 1)
        return ferry_fail(FERRY_EINVAL,
                          "reorder: channels %lld, spatial size %lld and max "
                          "batch %lld must be >= 1",
                          (long long)c, (long long)spatial, (long long)max_batch);
    if ((from != CPU_LAYOUT_PLAIN && from != CPU_LAYOUT_BLOCKED) ||
        (to != CPU_LAYOUT_PLAIN && to != CPU_LAYOUT_BLOCKED))
        return ferry_fail(FERRY_EINVAL, "reorder: unknown layout");
    if (!cpu_dnnl_engine())
        return FERRY_EINTERNAL;
    cpu_reorder *r = calloc(1, sizeof *r);
    if (!r)
        return ferry_fail(FERRY_ENOMEM, "reorder: out of memory");
    *r = (cpu_reorder){.from = from, .to = to, .c = c, .spatial = spatial, .max_batch = max_batch};
    ferry_status st = cpu_plan_cache_init(&r->cache);
    if (st != FERRY_OK) {
        free(r);
        return st;
    }
    *out = r;
    return FERRY_OK;
}

ferry_status cpu_reorder_run(cpu_reorder *r, int64_t n, const float *x, float *y)
{
    ferry_status st = cpu_dnnl_check_batch("reorder", n, r->max_batch);
    if (st != FERRY_OK)
        return st;
    if (r->from == r->to) {
        if (x != y)
            memcpy(y, x, (size_t)cpu_layout_numel(r->from, n, r->c, r->spatial) * sizeof *y);
        return FERRY_OK;
    }
    plan_key key = {.n = n, .threads = 1, .lin = r->from, .lout = r->to};
    plan *p;
    plan_slot *s;
    st = cpu_plan_acquire(&r->cache, &key, reorder_build, r, &p, &s);
    if (st != FERRY_OK)
        return st;
    st = cpu_plan_execute(p, s, x, y, NULL);
    cpu_plan_release(&r->cache, p, s);
    return st;
}

void cpu_reorder_destroy(cpu_reorder *r)
{
    if (!r)
        return;
    cpu_plan_cache_destroy(&r->cache);
    free(r);
}
