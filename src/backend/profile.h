/*
 * profile.h - the per-operator time table both backends print when their
 * profile variable is set (FERRY_CPU_PROFILE, FERRY_CUDA_PROFILE): each
 * forward adds every node's time, and freeing the model prints the time
 * per operator (a fused node shows its epilogue, Gemm+gelu), most
 * expensive first. Where a model's time goes, without a profiler.
 */
#ifndef FERRY_BACKEND_PROFILE_H
#define FERRY_BACKEND_PROFILE_H

#include <stdatomic.h>
#include <stdint.h>

#include "graph/graph.h"

typedef struct backend_profile {
    _Atomic int64_t *ns, *runs; /* per graph node; NULL when profiling is off */
} backend_profile;

/* Allocates the counters when environment variable env is set to anything
 * but "" or "0"; returns 0, or -1 when it is set and memory runs out. */
int backend_profile_init(backend_profile *p, const char *env, int n_nodes);
static inline int backend_profile_on(const backend_profile *p)
{
    return p->ns != NULL;
}
static inline void backend_profile_add(backend_profile *p, int node, int64_t ns)
{
    atomic_fetch_add_explicit(&p->ns[node], ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->runs[node], 1, memory_order_relaxed);
}
/* Prints the table for g to stderr (when on) and frees the counters. */
void backend_profile_finish(backend_profile *p, const graph *g, const char *device);

#endif
