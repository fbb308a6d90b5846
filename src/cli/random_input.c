/*
 * random_input.c - random data for a model input, for `ferry run --random`
 * and `ferry bench`: floats uniform in [-1, 1), and integers that the model
 * can take: an id that indexes an embedding (a Gather) is drawn from that
 * table's rows, an attention mask is all ones, anything else is 0 or 1.
 */
#include <string.h>

#include "cli/common.h"

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cli_random_fill(const ferry_model *m, int i, ferry_tensor *t, uint64_t seed)
{
    int64_t numel = ferry_tensor_numel(t);
    uint64_t s = seed * 1000003u + (uint64_t)i;
    if (t->dtype == FERRY_F32) {
        float *d = t->data;
        for (int64_t k = 0; k < numel; k++)
            d[k] = (float)((mix(&s) >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0);
        return;
    }
    if (t->dtype == FERRY_F16 || t->dtype == FERRY_BF16) {
        uint16_t *h = t->data; /* small values, exact in both */
        for (int64_t k = 0; k < numel; k++)
            h[k] = (uint16_t)(t->dtype == FERRY_F16 ? 0x3000u | ((mix(&s) >> 16) & 0x3ffu)
                                                    : 0x3e00u | ((mix(&s) >> 16) & 0x7fu));
        return;
    }
    int64_t lo = 0, rows = 0;
    ferry_tensor_info ti;
    ferry_model_input_range(m, i, &lo, &rows);
    ferry_model_input(m, i, &ti);
    int mask = !rows && ti.name && strstr(ti.name, "mask") != NULL;
    for (int64_t k = 0; k < numel; k++) {
        int64_t x = mask ? 1 : (int64_t)(mix(&s) % (uint64_t)(rows ? rows : 2));
        switch (t->dtype) {
        case FERRY_I64: ((int64_t *)t->data)[k] = x; break;
        case FERRY_I32: ((int32_t *)t->data)[k] = (int32_t)x; break;
        case FERRY_BOOL:
        case FERRY_U8: ((uint8_t *)t->data)[k] = (uint8_t)(mask ? 1 : x & 1); break;
        case FERRY_I8: ((int8_t *)t->data)[k] = (int8_t)(x & 1); break;
        default: memset(t->data, 0, (size_t)numel * ferry_dtype_size(t->dtype)); return;
        }
    }
}
