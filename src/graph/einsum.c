/*
 * einsum.c - Einsum's shape rule and its layout (see einsum.h). The node
 * holds its labels (ops.c's parse_einsum): A's in axes[0, n_axes), B's in
 * perm[0, mode2), the output's in starts[0, mode3) (mode3 -1: implicit),
 * mode = the number of inputs. The rule rewrites them with "..." expanded
 * and the implicit output spelled out, so running it again changes nothing.
 */
#include <string.h>

#include "graph/einsum.h"
#include "graph/ops.h"
#include "util/error.h"

static char label_char(int64_t l)
{
    return l < 26 ? (char)('A' + l) : l < EINSUM_LETTERS ? (char)('a' + l - 26) : '.';
}

/* Replaces the marker in list (cnt labels) by the e dims it stands for, the
 * last of the ell ellipsis dims; 0, or -1 when the result is too long. */
static int expand(int64_t *list, int *cnt, int e, int ell)
{
    int at = -1;
    for (int i = 0; i < *cnt; i++)
        if (list[i] == EINSUM_ELLIPSIS)
            at = i;
    if (at < 0)
        return 0;
    if (*cnt - 1 + e > FERRY_MAX_DIMS)
        return -1;
    int64_t tail[FERRY_MAX_DIMS];
    int nt = *cnt - at - 1;
    memcpy(tail, list + at + 1, sizeof(int64_t) * (size_t)nt);
    for (int j = 0; j < e; j++)
        list[at + j] = EINSUM_LETTERS + ell - e + j;
    memcpy(list + at + e, tail, sizeof(int64_t) * (size_t)nt);
    *cnt += e - 1;
    return 0;
}

static int has_label(const int64_t *list, int cnt, int64_t l)
{
    for (int i = 0; i < cnt; i++)
        if (list[i] == l)
            return 1;
    return 0;
}

ferry_status infer_einsum(graph *g, graph_node *n)
{
    int nin = n->mode;
    int64_t *lab[2] = {n->axes, n->perm};
    int cnt[2] = {n->n_axes, n->mode2};
    const graph_value *x[2] = {&g->values[n->in[0]], nin > 1 ? &g->values[n->in[1]] : NULL};
    int e[2] = {0, 0}, ell = 0;
    for (int k = 0; k < nin; k++) {
        int marker = has_label(lab[k], cnt[k], EINSUM_ELLIPSIS);
        if (!is_float_dtype(x[k]->dtype) || x[k]->dtype != x[0]->dtype)
            return node_failf(n, FERRY_EDTYPE,
                              "input '%s' is %s; floating inputs of one type are required",
                              x[k]->name, ferry_dtype_name(x[k]->dtype));
        e[k] = x[k]->ndim - (cnt[k] - marker);
        if (marker ? e[k] < 0 : e[k] != 0)
            return node_failf(n, FERRY_ESHAPE,
                              "input '%s' has rank %d but the equation gives it %d labels",
                              x[k]->name, x[k]->ndim, cnt[k] - marker);
        ell = e[k] > ell ? e[k] : ell;
    }
    int out_marker = n->mode3 >= 0 && has_label(n->starts, n->mode3, EINSUM_ELLIPSIS);
    if (ell > 0 && n->mode3 >= 0 && !out_marker)
        return node_fail(n, FERRY_EUNSUPPORTED, "sums over the dims of \"...\"");
    for (int k = 0; k < nin; k++)
        if (expand(lab[k], &cnt[k], e[k], ell))
            return node_failf(n, FERRY_EUNSUPPORTED, "more than %d labels", FERRY_MAX_DIMS);
    n->n_axes = cnt[0];
    n->mode2 = nin > 1 ? cnt[1] : 0;

    /* each label's dim and how often it occurs */
    int64_t dim[EINSUM_LABELS];
    int uses[EINSUM_LABELS] = {0};
    for (int k = 0; k < nin; k++)
        for (int i = 0; i < cnt[k]; i++) {
            int64_t l = lab[k][i];
            if (has_label(lab[k], i, l))
                return node_failf(n, FERRY_EUNSUPPORTED,
                                  "label '%c' is repeated in input '%s' (a diagonal)",
                                  label_char(l), x[k]->name);
            if (uses[l] && dim[l] != x[k]->dims[i]) {
                char a[24], b[24];
                return node_failf(n, FERRY_ESHAPE, "label '%c' is %s in one input and %s in '%s'",
                                  label_char(l), dim_str(dim[l], a, sizeof a),
                                  dim_str(x[k]->dims[i], b, sizeof b), x[k]->name);
            }
            dim[l] = x[k]->dims[i];
            uses[l]++;
        }
    if (n->mode3 < 0) {
        /* implicit output: the ellipsis dims, then the labels used once, in
         * alphabetical (ASCII) order */
        int no = 0;
        for (int j = 0; j < ell; j++)
            n->starts[no++] = EINSUM_LETTERS + j;
        for (int l = 0; l < EINSUM_LETTERS; l++)
            if (uses[l] == 1) {
                if (no == FERRY_MAX_DIMS)
                    return node_failf(n, FERRY_EUNSUPPORTED, "more than %d labels", FERRY_MAX_DIMS);
                n->starts[no++] = l;
            }
        n->mode3 = no;
    } else if (expand(n->starts, &n->mode3, ell, ell)) {
        return node_failf(n, FERRY_EUNSUPPORTED, "more than %d labels", FERRY_MAX_DIMS);
    }

    int64_t od[FERRY_MAX_DIMS];
    for (int i = 0; i < n->mode3; i++) {
        int64_t l = n->starts[i];
        if (!uses[l] || has_label(n->starts, i, l))
            return node_failf(n, FERRY_ESHAPE, "output label '%c' is %s", label_char(l),
                              uses[l] ? "repeated" : "in no input");
        od[i] = dim[l];
    }
    for (int l = 0; l < EINSUM_LABELS; l++) {
        if (!uses[l] || has_label(n->starts, n->mode3, l))
            continue;
        if (uses[l] < 2)
            return node_failf(n, FERRY_EUNSUPPORTED,
                              "sums over label '%c' of one input only (supported: labels in both "
                              "inputs, or in the output)",
                              label_char(l));
        if (dim[l] < 0)
            return node_failf(n, FERRY_EUNSUPPORTED, "contracts label '%c', the batch dimension",
                              label_char(l));
    }
    set_out(g, n->out[0], x[0]->dtype, n->mode3, od);
    return FERRY_OK;
}

/* Appends to dst the labels of src (in src's order) that pass keep. */
static int pick(int64_t *dst, int nd, const int64_t *src, int ns, const int64_t *a, int na,
                const int64_t *b, int nb, int in_a, int in_b)
{
    for (int i = 0; i < ns; i++)
        if (has_label(a, na, src[i]) == in_a && has_label(b, nb, src[i]) == in_b)
            dst[nd++] = src[i];
    return nd;
}

/* perm[i] = the position of want[i] in have. */
static int perm_of(const int64_t *want, int n, const int64_t *have, int *perm)
{
    int id = 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            if (have[j] == want[i])
                perm[i] = j;
        id &= perm[i] == i;
    }
    return id;
}

void einsum_layout_of(const graph_node *nd, einsum_layout *l)
{
    const int64_t *a = nd->axes, *b = nd->perm, *y = nd->starts;
    int na = nd->n_axes, nb = nd->mode > 1 ? nd->mode2 : 0, ny = nd->mode3;
    memset(l, 0, sizeof *l);
    l->rank_a = na, l->rank_b = nb, l->rank_y = ny;
    if (nd->mode < 2) {
        l->id_y = perm_of(y, ny, a, l->perm_y);
        l->id_a = l->id_b = 1;
        return;
    }
    int64_t ap[FERRY_MAX_DIMS], bp[FERRY_MAX_DIMS], yp[FERRY_MAX_DIMS], k[FERRY_MAX_DIMS];
    /* batch: in A, B and Y (Y's order); free: in one input and Y (Y's
     * order); contracted: in A and B, not Y (A's order) */
    int nbat = pick(ap, 0, y, ny, a, na, b, nb, 1, 1);
    int nfa = pick(ap, nbat, y, ny, a, na, b, nb, 1, 0) - nbat;
    int nk = 0;
    for (int i = 0; i < na; i++)
        if (has_label(b, nb, a[i]) && !has_label(y, ny, a[i]))
            k[nk++] = a[i];
    memcpy(ap + nbat + nfa, k, sizeof(int64_t) * (size_t)nk);
    memcpy(bp, ap, sizeof(int64_t) * (size_t)nbat);
    memcpy(bp + nbat, k, sizeof(int64_t) * (size_t)nk);
    int nfb = pick(bp, nbat + nk, y, ny, a, na, b, nb, 0, 1) - nbat - nk;
    memcpy(yp, ap, sizeof(int64_t) * (size_t)(nbat + nfa));
    memcpy(yp + nbat + nfa, bp + nbat + nk, sizeof(int64_t) * (size_t)nfb);
    l->n_batch = nbat, l->n_free_a = nfa, l->n_free_b = nfb, l->n_contract = nk;
    l->id_a = perm_of(ap, na, a, l->perm_a);
    l->id_b = perm_of(bp, nb, b, l->perm_b);
    l->id_y = perm_of(y, ny, yp, l->perm_y);
}
