/*
 * cpu_winograd.h - 3x3 stride-1 convolutions as Winograd F(2x2, 3x3):
 * each 4x4 input tile and 3x3 filter are transformed so that one 2x2
 * output tile takes 16 multiplies a channel pair instead of 36, and the
 * multiplies of all tiles become 16 independent GEMMs (BLAS). The
 * transforms are adds on eight channels at once (AVX2). Bias, a residual
 * and ReLU are applied in the output transform.
 *
 * Why not oneDNN: its 2.6 Winograd kernels need AVX-512; on AVX2 a 3x3
 * conv runs direct (jit:avx2) at 82-92 GFLOP/s a Zen 3 core, near the FMA
 * peak of ~98, and so does ONNX Runtime's MLAS: only fewer multiplies can
 * pass them (cpu_winograd.c has the measurements).
 *
 * Activations are in CPU_LAYOUT_BLOCKED with 8-channel blocks (nChw8c);
 * the conv owning a cpu_wino falls back to oneDNN for anything else.
 * Reentrant: any number of threads may run one object at once; each
 * thread's scratch is its own (kept between runs). Private to
 * src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_WINOGRAD_H
#define FERRY_BACKEND_CPU_WINOGRAD_H

#include <stdint.h>

#include "backend/cpu/cpu_dnnl.h"
#include "ferry.h"

typedef struct cpu_wino cpu_wino;

/* Whether a conv of p (validated by cpu_conv_create) can run here: 2-D,
 * group 1, 3x3, stride 1, no dilation, pads at most 1, channels in
 * multiples of 8, activation none or ReLU, residual none or before the
 * activation, an AVX2+FMA CPU whose blocked layout has 8 channels, and
 * FERRY_CPU_WINOGRAD not 0. */
int cpu_wino_fits(const cpu_conv_params *p);

/* Transforms W ([c_out][c_in][3][3], ONNX) and copies B ([c_out] or NULL)
 * for a conv that cpu_wino_fits. */
ferry_status cpu_wino_create(const cpu_conv_params *p, const float *W, const float *B,
                             cpu_wino **out);

/* Whether a run of n images on `threads` threads should take this path:
 * where the images are small and few, the transformed weights (16/9 of
 * the filter's) cost more to stream than the multiplies they save. */
int cpu_wino_wants(const cpu_wino *w, int64_t n, int threads);

/* y = act(conv(x) + b [+ residual]) for n images, x, residual and y in
 * CPU_LAYOUT_BLOCKED, split over up to `threads` threads (cpu_parallel.h).
 * Fails only for lack of memory for the calling thread's scratch. */
ferry_status cpu_wino_run(cpu_wino *w, int64_t n, int threads, const float *x,
                          const float *residual, float *y);

void cpu_wino_destroy(cpu_wino *w);

#endif
