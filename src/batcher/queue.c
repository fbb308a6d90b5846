/*
 * queue.c - the request queue: a per-priority inbox that any number of
 * submitters push onto with one compare-and-swap, and that the single
 * dispatcher empties with one exchange, restoring arrival order; then
 * plain FIFOs private to the dispatcher.
 *
 * Why not a mutex-protected queue: at 256 concurrent callers the lock
 * becomes the serialization point and its sleeping waiters cost syscalls.
 * Why not a Vyukov MPSC queue: push-onto-stack plus take-all has no ABA
 * problem (nodes are never popped one at a time by many threads), needs no
 * stub node, and the dispatcher amortizes one exchange over every request
 * that arrived since its last look.
 */
#include "batcher/batcher.h"

void inbox_push(inbox *q, bnode *r)
{
    bnode *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    do {
        r->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&q->head, &old, r, memory_order_release,
                                                    memory_order_relaxed));
}

void inbox_push_chain(inbox *q, bnode *newest, bnode *oldest)
{
    bnode *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    do {
        oldest->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&q->head, &old, newest, memory_order_release,
                                                    memory_order_relaxed));
}

void fifo_take_inbox(fifo *f, inbox *q, int64_t *reqs, int64_t *samples, int64_t *min_deadline)
{
    if (!atomic_load_explicit(&q->head, memory_order_relaxed))
        return;
    bnode *r = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire), *prev = NULL;
    bnode *last = r;
    int64_t n = 0, k = 0, dl = *min_deadline;
    while (r) { /* newest first -> oldest first, one pass */
        bnode *next = r->next;
        r->next = prev;
        prev = r;
        n++;
        k += r->k;
        if (r->deadline < dl)
            dl = r->deadline;
        r = next;
    }
    if (f->tail)
        f->tail->next = prev;
    else
        f->head = prev;
    f->tail = last;
    *reqs += n;
    *samples += k;
    *min_deadline = dl;
}

void fifo_append(fifo *f, bnode *r)
{
    r->next = NULL;
    if (f->tail)
        f->tail->next = r;
    else
        f->head = r;
    f->tail = r;
}

bnode *fifo_pop(fifo *f)
{
    bnode *r = f->head;
    if (r) {
        f->head = r->next;
        if (!f->head)
            f->tail = NULL;
    }
    return r;
}
