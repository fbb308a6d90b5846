/*
 * cpu_topk.c - TopK (torch.topk, and torch.sort, which exports as a TopK of
 * the whole axis): the k best elements of each line along an axis, best
 * first, with their indices.
 *
 * Each line keeps a heap of its k best in the index output itself (no
 * scratch memory, so nothing is allocated per run): the root is the worst
 * kept, replaced when a better element comes; popping the heap then leaves
 * the line sorted best first. O(A log k) a line, so a sort of a long axis
 * (A = k) costs what a heap sort does.
 */
#include "backend/cpu/cpu_elem.h"

/* Whether element a of line x (stride inner) ranks before element b: the
 * larger (smaller when !largest) value, the lower index on a tie (ONNX),
 * and NaN above every number as torch orders it (first when largest, last
 * when not). */
#define RANKS_FN(T)                                                                                \
    static int ranks_##T(const T *x, int64_t inner, int64_t a, int64_t b, int largest)             \
    {                                                                                              \
        T va = x[a * inner], vb = x[b * inner];                                                    \
        int na = va != va, nb = vb != vb;                                                          \
        if (na || nb)                                                                              \
            return na != nb ? na == largest : a < b;                                               \
        if (va != vb)                                                                              \
            return largest ? va > vb : va < vb;                                                    \
        return a < b;                                                                              \
    }

#define TOPK_FN(T)                                                                                 \
    RANKS_FN(T)                                                                                    \
    /* Moves heap entry i down: h holds indices into x (stride inner),                             \
     * the root the one ranked last. */                                                            \
    static void sift_##T(const T *x, int64_t inner, int64_t *h, int64_t hs, int64_t n, int64_t i,  \
                         int largest)                                                              \
    {                                                                                              \
        for (;;) {                                                                                 \
            int64_t l = 2 * i + 1, r = l + 1, w = i;                                               \
            if (l < n && ranks_##T(x, inner, h[w * hs], h[l * hs], largest))                       \
                w = l;                                                                             \
            if (r < n && ranks_##T(x, inner, h[w * hs], h[r * hs], largest))                       \
                w = r;                                                                             \
            if (w == i)                                                                            \
                return;                                                                            \
            int64_t t = h[i * hs];                                                                 \
            h[i * hs] = h[w * hs];                                                                 \
            h[w * hs] = t;                                                                         \
            i = w;                                                                                 \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static void topk_##T(const T *X, const int64_t *xd, int nd, int axis, int64_t k, int largest,  \
                         T *V, int64_t *I)                                                         \
    {                                                                                              \
        int64_t outer = 1, inner = 1, A = xd[axis];                                                \
        for (int d = 0; d < axis; d++)                                                             \
            outer *= xd[d];                                                                        \
        for (int d = axis + 1; d < nd; d++)                                                        \
            inner *= xd[d];                                                                        \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t c = 0; c < inner; c++) {                                                  \
                const T *x = X + o * A * inner + c;                                                \
                int64_t *h = I + o * k * inner + c;                                                \
                T *v = V + o * k * inner + c;                                                      \
                for (int64_t j = 0; j < k; j++)                                                    \
                    h[j * inner] = j;                                                              \
                for (int64_t j = k / 2; j-- > 0;)                                                  \
                    sift_##T(x, inner, h, inner, k, j, largest);                                   \
                for (int64_t j = k; j < A; j++)                                                    \
                    if (k && ranks_##T(x, inner, j, h[0], largest)) {                              \
                        h[0] = j;                                                                  \
                        sift_##T(x, inner, h, inner, k, 0, largest);                               \
                    }                                                                              \
                for (int64_t n = k; n > 1; n--) { /* pop: the worst goes to the end */             \
                    int64_t t = h[0];                                                              \
                    h[0] = h[(n - 1) * inner];                                                     \
                    h[(n - 1) * inner] = t;                                                        \
                    sift_##T(x, inner, h, inner, n - 1, 0, largest);                               \
                }                                                                                  \
                for (int64_t j = 0; j < k; j++)                                                    \
                    v[j * inner] = x[h[j * inner] * inner];                                        \
            }                                                                                      \
    }

TOPK_FN(float)
TOPK_FN(int64_t)
TOPK_FN(int32_t)

void cpu_topk(ferry_dtype dt, const void *X, const int64_t *xd, int nd, int axis, int64_t k,
              int largest, void *V, int64_t *I)
{
    switch (dt) {
    case FERRY_F32: topk_float(X, xd, nd, axis, k, largest, V, I); break;
    case FERRY_I32: topk_int32_t(X, xd, nd, axis, k, largest, V, I); break;
    default: topk_int64_t(X, xd, nd, axis, k, largest, V, I); break;
    }
}
