/*
 * einsum.h - Einsum as the graph layer understands it: labels parsed from
 * the equation (ops.c), a shape rule that expands "..." and checks what
 * Ferry runs (einsum.c), and the one layout every backend computes it in:
 *
 *   A [labels]  --transpose-->  A' [batch, free of A, contracted]
 *   B [labels]  --transpose-->  B' [batch, contracted, free of B]
 *   Y' = A' x B' as one batched MatMul [bt, M, K] x [bt, K, N]
 *   Y' [batch, free of A, free of B]  --transpose-->  Y [output labels]
 *
 * which covers the equations PyTorch models write (attention's
 * "bhid,bhjd->bhij", maxvit's "B G H I D, B G H J D -> B G H I J", a
 * bilinear "bn,nm->bm"); one operand is a transpose. A label summed in one
 * operand only, or repeated in one (a diagonal), is refused at load.
 * Private to src/graph and the backends.
 */
#ifndef FERRY_GRAPH_EINSUM_H
#define FERRY_GRAPH_EINSUM_H

#include "graph/graph.h"

/* Labels: 'A'..'Z' are 0..25, 'a'..'z' 26..51 (ASCII order, which an
 * implicit output sorts by), the dims "..." stands for 52.. (aligned from
 * the right, as numpy broadcasts); EINSUM_ELLIPSIS marks "..." until the
 * shape rule knows the ranks. */
#define EINSUM_LETTERS 52
#define EINSUM_LABELS (EINSUM_LETTERS + FERRY_MAX_DIMS)
#define EINSUM_ELLIPSIS (-1)

/* The layout above for node nd (OP_EINSUM after its shape rule): each
 * primed operand's dims as positions in the unprimed one (for
 * cpu_transpose-style "dim i of the result is dim perm[i] of the source"),
 * whether that transpose is the identity, and how many labels of each kind
 * there are. One input: perm_y maps A to Y directly. */
typedef struct einsum_layout {
    int n_batch, n_free_a, n_free_b, n_contract;
    int rank_a, rank_b, rank_y;
    int perm_a[FERRY_MAX_DIMS], perm_b[FERRY_MAX_DIMS], perm_y[FERRY_MAX_DIMS];
    int id_a, id_b, id_y;
} einsum_layout;

void einsum_layout_of(const graph_node *nd, einsum_layout *l);

#endif
