/*
 * cpu_dnnl_plan.h - what cpu_conv.c, cpu_pool.c and cpu_dnnl.c share: the
 * process-wide oneDNN engine, the OpenMP thread scope, and the per-object
 * cache of plans (one primitive chain per batch size, thread count and
 * layouts) with their execution slots. Private to src/backend/cpu.
 *
 * A plan is a list of steps (a primitive and its arguments), each argument
 * naming a buffer: the caller's x / y / residual, one of two temporaries,
 * the plan's constant weights and bias, or the scratchpad. A slot holds
 * what one execution needs for itself: a stream, one memory object per
 * argument (their handles are set per run) and the temporaries and
 * scratchpad buffers. Plans are built under the cache's build mutex (one
 * build at a time, runs of built plans go on); the cache mutex covers only
 * the lookup, the insert and the slot free list.
 */
#ifndef FERRY_BACKEND_CPU_DNNL_PLAN_H
#define FERRY_BACKEND_CPU_DNNL_PLAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "backend/cpu/cpu_dnnl.h"

enum {
    PLAN_MAX_STEPS = 4,
    PLAN_MAX_ARGS = 6,
};

typedef enum plan_buf {
    BUF_X = 0, /* the caller's input */
    BUF_Y,     /* the caller's output */
    BUF_R,     /* the caller's residual */
    BUF_T0,    /* temporaries, one per slot */
    BUF_T1,
    BUF_W, /* plan->w */
    BUF_B, /* plan->b */
    BUF_SCRATCH,
} plan_buf;

typedef struct plan_arg {
    int arg; /* DNNL_ARG_* */
    plan_buf buf;
    dnnl_memory_desc_t md;
} plan_arg;

typedef struct plan_step {
    dnnl_primitive_t prim;
    int nargs;
    plan_arg a[PLAN_MAX_ARGS];
} plan_step;

typedef struct plan_slot {
    struct plan_slot *next;
    dnnl_stream_t stream;
    dnnl_memory_t mem[PLAN_MAX_STEPS][PLAN_MAX_ARGS];
    void *t[2];
    void *scratch;
} plan_slot;

typedef struct plan_key {
    int64_t n;
    int threads;
    cpu_layout lin, lout;
    int part, parts; /* a slice of the channels (cpu_conv.c); parts 0: all */
} plan_key;

typedef struct plan {
    struct plan *next;
    plan_key key;
    int nsteps;
    plan_step step[PLAN_MAX_STEPS];
    size_t t_bytes[2];
    size_t scratch_bytes;
    void *w;                /* not owned: the owner's weights in this plan's format */
    const void *b;          /* not owned */
    size_t res_copy_floats; /* > 0: copy residual into y before the steps */
    plan_slot *free;        /* idle slots (cache mutex) */
} plan;

/* Fills a plan's steps for key; called with the build mutex held and the
 * OpenMP team size already key->threads. */
typedef ferry_status (*plan_build_fn)(void *owner, const plan_key *key, plan *p);

typedef struct plan_cache {
    pthread_mutex_t mu;       /* plans list and the slot free lists */
    pthread_mutex_t build_mu; /* one build at a time; the owner's build state */
    plan *plans;
} plan_cache;

/* The CPU engine (created once, thread-safe); NULL with a message set if
 * oneDNN cannot make one. */
dnnl_engine_t cpu_dnnl_engine(void);

/* Turns a failed oneDNN call into FERRY_EINTERNAL (or FERRY_EUNSUPPORTED
 * for dnnl_unimplemented) naming what was being done. */
ferry_status cpu_dnnl_fail(dnnl_status_t st, const char *what);

/* Sets this thread's OpenMP team size for oneDNN; returns the old one for
 * cpu_dnnl_omp_leave. */
int cpu_dnnl_omp_enter(int threads);
void cpu_dnnl_omp_leave(int saved, int threads);

/* A plain (nchw) or blocked (nChw<b>c) 4-D f32 descriptor; 1-D tensors are
 * passed as H = 1. layout < 0 means format any. */
void cpu_dnnl_md(dnnl_memory_desc_t *md, int64_t n, int64_t c, int64_t h, int64_t w, int layout);
/* The same over nsp spatial dims sp[]: 2 as above, 3 for ncdhw (nCdhw<b>c). */
void cpu_dnnl_md_sp(dnnl_memory_desc_t *md, int64_t n, int64_t c, int nsp, const int64_t *sp,
                    int layout);

/* Appends a step running prim; args added by cpu_plan_arg_add. */
plan_step *cpu_plan_step_add(plan *p, dnnl_primitive_t prim);
void cpu_plan_arg_add(plan_step *s, int arg, plan_buf buf, const dnnl_memory_desc_t *md);

/* Creates primitive descriptor pd's primitive and adds it as a step with
 * its scratchpad argument (the pd must have been made with a user-mode
 * scratchpad attr); the pd is destroyed. Returns the step or NULL with a
 * message set (*st). */
plan_step *cpu_plan_step_from_pd(plan *p, dnnl_primitive_desc_t pd, ferry_status *st);

/* A reorder step from md `from` (buffer bf) to `to` (buffer bt). */
ferry_status cpu_plan_add_reorder(plan *p, const dnnl_memory_desc_t *from, plan_buf bf,
                                  const dnnl_memory_desc_t *to, plan_buf bt);

/* A primitive attr with user-mode scratchpad (post_ops may be NULL). */
ferry_status cpu_dnnl_attr(dnnl_primitive_attr_t *attr, const_dnnl_post_ops_t post_ops);

ferry_status cpu_plan_cache_init(plan_cache *c);
void cpu_plan_cache_destroy(plan_cache *c);

/* Finds or builds the plan for key and takes a slot from it. */
ferry_status cpu_plan_acquire(plan_cache *c, const plan_key *key, plan_build_fn build, void *owner,
                              plan **pp, plan_slot **ps);
void cpu_plan_release(plan_cache *c, plan *p, plan_slot *s);

/* Runs p's steps on slot s with the caller's buffers. */
ferry_status cpu_plan_execute(const plan *p, plan_slot *s, const float *x, float *y,
                              const float *r);

/* Checks n against [1, max_batch]; FERRY_EINVAL with a message
 * naming what. */
ferry_status cpu_dnnl_check_batch(const char *what, int64_t n, int64_t max_batch);

#endif
