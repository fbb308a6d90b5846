/*
 * index.cuh - 32-bit index arithmetic for the data-movement and broadcast
 * kernels. An int64 division is a ~70-instruction subroutine on the GPU,
 * and a strided copy divides once per dim per element: BERT-base's four
 * head transposes a layer at batch 256 (25M elements each, 4 dims) spent
 * more time dividing than moving bytes. Where the element count and every
 * offset fit in 31 bits (all but giant tensors), the kernels run on 32-bit
 * indices and divide by a multiply-high and a shift (Granlund and
 * Montgomery's method, as PyTorch's IntDivider); the int64 kernels remain
 * for the rest.
 */
#ifndef FERRY_CUDA_INDEX_CUH
#define FERRY_CUDA_INDEX_CUH

#include <stdint.h>

namespace ferry_cuda
{

/* n / d and n % d for 0 <= n < 2^31 and 1 <= d < 2^31. */
struct divmod32 {
    uint32_t d, m, s;

    __host__ void init(uint32_t div)
    {
        d = div;
        for (s = 0; s < 31 && (1u << s) < div; s++)
            ;
        uint64_t one = 1;
        m = (uint32_t)(((one << 32) * ((one << s) - div)) / div + 1);
    }
    __device__ __forceinline__ uint32_t quot(uint32_t n) const
    {
        return (__umulhi(n, m) + n) >> s;
    }
};

/* Largest element count and offset the 32-bit kernels take: i + the grid's
 * stride stays below 2^32 in their loops. */
constexpr int64_t kIndex32Max = (int64_t)1 << 30;

/* |offset| bound of a strided view: sum of (dim - 1) * |stride|. */
inline int64_t max_offset(int nd, const int64_t *dims, const int64_t *st)
{
    int64_t m = 0;
    for (int k = 0; k < nd; k++)
        m += (dims[k] - 1) * (st[k] < 0 ? -st[k] : st[k]);
    return m;
}

} // namespace ferry_cuda

#endif
