/* slab.c - lock-free, growable free list of fixed-size objects (slab.h). */
#include "batcher/slab.h"

#include <stdlib.h>
#include <string.h>

typedef struct slab_link {
    _Atomic uint32_t next; /* index + 1 of the next free object; 0 ends the list */
    uint32_t idx;          /* this object's index */
} slab_link;

static uint64_t head_pack(uint64_t old, uint32_t idx1)
{
    return (((old >> 32) + 1) << 32) | idx1;
}

static slab_link *link_at(slab *s, uint32_t idx)
{
    /* chunk c covers indices [F*(2^c - 1), F*(2^(c+1) - 1)) */
    uint64_t q = (uint64_t)idx / s->first_chunk + 1;
    int c = 63 - __builtin_clzll(q);
    uint64_t off = idx - (uint64_t)s->first_chunk * ((1ull << c) - 1);
    unsigned char *chunk = atomic_load_explicit(&s->chunks[c], memory_order_acquire);
    return (slab_link *)(chunk + off * s->obj_size);
}

void slab_init(slab *s, size_t payload, size_t chunk_bytes)
{
    memset(s, 0, sizeof *s);
    s->obj_size = (SLAB_HDR + payload + 63) & ~(size_t)63;
    size_t n = chunk_bytes / s->obj_size;
    s->first_chunk = (uint32_t)(n < 1 ? 1 : n > 4096 ? 4096 : n);
    pthread_mutex_init(&s->grow_mu, NULL);
    atomic_init(&s->head, 0);
}

void slab_destroy(slab *s)
{
    for (int c = 0; c < s->n_chunks; c++)
        free(atomic_load_explicit(&s->chunks[c], memory_order_relaxed));
    pthread_mutex_destroy(&s->grow_mu);
}

/* Links the chain first .. tail (already linked through next) onto the
 * free list with one CAS. */
static void push_linked(slab *s, uint32_t first, slab_link *tail)
{
    uint64_t old = atomic_load_explicit(&s->head, memory_order_relaxed);
    do {
        atomic_store_explicit(&tail->next, (uint32_t)old, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&s->head, &old, head_pack(old, first + 1),
                                                    memory_order_release, memory_order_relaxed));
}

/* Links objects [first, last] (indices, already chained in order) onto the
 * free list with one CAS. */
static void push_chain(slab *s, uint32_t first, uint32_t last)
{
    push_linked(s, first, link_at(s, last));
}

static slab_link *pop(slab *s)
{
    uint64_t old = atomic_load_explicit(&s->head, memory_order_acquire);
    for (;;) {
        uint32_t i1 = (uint32_t)old;
        if (!i1)
            return NULL;
        slab_link *l = link_at(s, i1 - 1);
        /* l may be taken and re-linked by another thread meanwhile: the tag
         * makes the CAS fail then, so a stale next is never installed. */
        uint32_t nx = atomic_load_explicit(&l->next, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&s->head, &old, head_pack(old, nx),
                                                  memory_order_acquire, memory_order_acquire))
            return l;
    }
}

/* Adds one chunk (under grow_mu); returns 0 when out of memory or chunks. */
static int grow_locked(slab *s, slab_link **keep)
{
    int c = s->n_chunks;
    if (c >= SLAB_MAX_CHUNKS)
        return 0;
    uint64_t count = (uint64_t)s->first_chunk << c;
    uint64_t base = (uint64_t)s->first_chunk * ((1ull << c) - 1);
    if (base + count > UINT32_MAX - 1)
        return 0;
    unsigned char *mem = aligned_alloc(64, count * s->obj_size);
    if (!mem)
        return 0;
    for (uint64_t j = 0; j < count; j++) {
        slab_link *l = (slab_link *)(mem + j * s->obj_size);
        l->idx = (uint32_t)(base + j);
        atomic_init(&l->next, j + 1 < count ? (uint32_t)(base + j + 2) : 0);
    }
    atomic_store_explicit(&s->chunks[c], mem, memory_order_release);
    s->n_chunks = c + 1;
    uint32_t first = (uint32_t)base, last = (uint32_t)(base + count - 1);
    if (keep) {
        *keep = (slab_link *)mem;
        first++;
    }
    if (first <= last)
        push_chain(s, first, last);
    return 1;
}

void *slab_get(slab *s)
{
    slab_link *l = pop(s);
    if (!l) {
        pthread_mutex_lock(&s->grow_mu);
        l = pop(s); /* another thread may have grown it meanwhile */
        if (!l && !grow_locked(s, &l))
            l = NULL;
        pthread_mutex_unlock(&s->grow_mu);
        if (!l)
            return NULL;
    }
    return (unsigned char *)l + SLAB_HDR;
}

void slab_put(slab *s, void *payload)
{
    slab_link *l = (slab_link *)((unsigned char *)payload - SLAB_HDR);
    push_linked(s, l->idx, l);
}

void slab_chain_add(slab_chain *c, void *payload)
{
    slab_link *l = (slab_link *)((unsigned char *)payload - SLAB_HDR);
    atomic_store_explicit(&l->next, c->first, memory_order_relaxed);
    if (!c->first)
        c->last = l;
    c->first = l->idx + 1;
}

void slab_put_chain(slab *s, slab_chain *c)
{
    if (c->first)
        push_linked(s, c->first - 1, c->last);
    c->first = 0;
    c->last = NULL;
}

int slab_reserve(slab *s, uint32_t n)
{
    int ok = 1;
    pthread_mutex_lock(&s->grow_mu);
    while (ok && (uint64_t)s->first_chunk * ((1ull << s->n_chunks) - 1) < n)
        ok = grow_locked(s, NULL);
    pthread_mutex_unlock(&s->grow_mu);
    return ok;
}
