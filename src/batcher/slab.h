/*
 * slab.h - a lock-free free list of fixed-size objects that grows on
 * demand and never shrinks (memory returns to the system at slab_destroy).
 *
 * Any thread may get and put. Objects live in chunks of doubling size
 * found by index, so a free list entry is a 32-bit index with a 32-bit ABA
 * tag beside it in one 64-bit word: pop is a single compare-and-swap, and
 * nothing is allocated once the high-water mark has been reached.
 */
#ifndef FERRY_BATCHER_SLAB_H
#define FERRY_BATCHER_SLAB_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SLAB_MAX_CHUNKS 32
#define SLAB_HDR 64 /* bytes before each object's payload: free-list link */

typedef struct slab {
    alignas(64) _Atomic uint64_t head; /* (tag << 32) | (index + 1); 0 in the low half = empty */
    alignas(64) size_t obj_size;       /* SLAB_HDR + payload, rounded up to 64 */
    uint32_t first_chunk;              /* objects in chunk 0; chunk c holds first_chunk << c */
    pthread_mutex_t grow_mu;
    _Atomic(unsigned char *) chunks[SLAB_MAX_CHUNKS];
    int n_chunks; /* under grow_mu */
} slab;

/* payload: bytes per object, 64-byte aligned. chunk_bytes: rough size of
 * the first chunk. Does not allocate. */
void slab_init(slab *s, size_t payload, size_t chunk_bytes);
/* Frees every chunk; every object must have been put back or be unused. */
void slab_destroy(slab *s);
/* A free object's payload, growing the slab if none is free; NULL when
 * memory runs out. */
void *slab_get(slab *s);
/* Returns an object got from s. */
void slab_put(slab *s, void *payload);

/* Objects gathered by one thread to return to a slab together, with one
 * compare-and-swap (slab_put_chain) instead of one each. Zero-initialize. */
typedef struct slab_chain {
    uint32_t first; /* index + 1 of the newest object added; 0: empty */
    void *last;     /* the oldest object's link: the chain's tail */
} slab_chain;
void slab_chain_add(slab_chain *c, void *payload);
void slab_put_chain(slab *s, slab_chain *c);
/* Grows the slab to hold at least n objects in all (warm-up). */
int slab_reserve(slab *s, uint32_t n);

#endif
