/*
 * cpu_vexp.h - exp(x) without a call, so that loops over it vectorize:
 * Cephes' expf (2^n * e^r, |r| <= ln2/2, degree-7 polynomial), ~1e-7
 * relative; inputs are clamped to the range where the result is a normal
 * float. Shared by the activations and softmax (cpu_kernels.c) and the RNN
 * gates (cpu_rnn.c).
 *
 * Include it after `#pragma GCC optimize("no-trapping-math")`, as both do:
 * without it GCC keeps the clamps as branches and the loops scalar, and a
 * function defined before the pragma does not take it.
 */
#ifndef FERRY_BACKEND_CPU_VEXP_H
#define FERRY_BACKEND_CPU_VEXP_H

#include <stdint.h>

static inline __attribute__((always_inline)) float vexpf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* Round to nearest through the 1.5 * 2^23 trick: no call to rintf. */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    /* Cephes' degree-5 polynomial by Estrin's scheme rather than Horner's:
     * three short chains instead of one of eleven dependent steps, which
     * the core could not overlap across iterations (exp over 64k floats:
     * 0.77 -> 0.67 ns each on this Zen 3 VM; the same results to 1 ulp). */
    float r2 = r * r;
    float a = 1.9875691500e-4f * r + 1.3981999507e-3f;
    float b = 8.3334519073e-3f * r + 4.1665795894e-2f;
    float c = 1.6666665459e-1f * r + 5.0000001201e-1f;
    float p = (a * r2 + b) * r2 + c;
    p = p * r2 + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } s = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * s.f;
}

#endif
