/* half.h - fp16/bf16 <-> fp32 conversions on the host (round to nearest even). */
#ifndef FERRY_UTIL_HALF_H
#define FERRY_UTIL_HALF_H

#include <stdint.h>
#include <string.h>

static inline float ferry_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t ferry_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float ferry_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t ferry_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) { /* subnormal or zero in f16 */
        float a;
        memcpy(&a, &absu, 4);
        /* a * 2^24 rounded to nearest even gives the subnormal mantissa */
        float scaled = a * 16777216.0f;
        uint32_t m = (uint32_t)scaled;
        float rem = scaled - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1u)))
            m++;
        return (uint16_t)(sign | m);
    }
    uint32_t r = absu + 0x0fffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* The same, but a finite f beyond the 16-bit format's range gives its
 * largest finite value instead of infinity (what model constants need:
 * Hugging Face masks with torch.finfo(float32).min, -3.4e38, and compute
 * (1 - mask) * min, which is 0 * -inf = NaN in fp16 or bf16 once the
 * constant became -inf; PyTorch itself uses finfo(float16).min there).
 * Infinities and NaN stay what they are. */
static inline uint16_t ferry_f32_to_f16_sat(float f)
{
    uint16_t h = ferry_f32_to_f16(f);
    if ((h & 0x7fffu) == 0x7c00u && f - f == 0.0f) /* rounded to inf from a finite f */
        h = (uint16_t)((h & 0x8000u) | 0x7bffu);
    return h;
}

static inline uint16_t ferry_f32_to_bf16_sat(float f)
{
    uint16_t h = ferry_f32_to_bf16(f);
    if ((h & 0x7fffu) == 0x7f80u && f - f == 0.0f)
        h = (uint16_t)((h & 0x8000u) | 0x7f7fu);
    return h;
}

#endif
