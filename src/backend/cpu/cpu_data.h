/*
 * cpu_data.h - the CPU backend's data-movement kernels for ONNX operators
 * over dense row-major tensors of any rank up to FERRY_MAX_DIMS.
 *
 * Conventions shared by every kernel here:
 * - dims are concrete, passed as (const int64_t *dims, int ndim); the
 *   caller has checked shapes against the operator's rules (the kernels
 *   only assert them in debug builds) and normalized negative axes;
 * - dtype-agnostic kernels take the element size esz in bytes (1, 2, 4 or
 *   8 take typed loops, any other size works through memcpy);
 * - floating tensors are f32, integers int64 (FERRY_I64) or int32
 *   (FERRY_I32), bool uint8 0/1 (FERRY_BOOL);
 * - outputs never overlap inputs unless a kernel says so;
 * - kernels are reentrant and allocate nothing; copies of 512 KiB or more
 *   (Transpose, Slice, Expand, Tile, Where) and Resizes of 32K outputs or
 *   more are split over the backend's threads when they are free
 *   (cpu_iter_run, cpu_parallel.h); results do not depend on the split.
 * Kernels whose result depends on index data (Gather, GatherElements)
 * return 0, or -1 when an index is out of range (the output is then
 * unspecified): the graph layer cannot check data.
 * Private to src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_DATA_H
#define FERRY_BACKEND_CPU_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_iter.h"
#include "ferry.h"

/* Y = X with dims permuted: Y's dim i is X's dim perm[i]. */
void cpu_transpose(const void *X, const int64_t *xd, int nd, const int *perm, void *Y, size_t esz);

/* Gather along axis: Y = X[:, ..., idx, ...] with Y's dims xd[0, axis) ++
 * index dims ++ xd[axis + 1, nd); idx holds n_idx int64 (idt FERRY_I64) or int32
 * (FERRY_I32) values in [-xd[axis], xd[axis]), negatives counting from the
 * end. */
int cpu_gather(const void *X, const int64_t *xd, int nd, int axis, const void *idx, ferry_dtype idt,
               int64_t n_idx, void *Y, size_t esz);

/* Whether n_idx indices, per_sample of them for each sample in turn, all
 * stay in their own sample's rows: index e of sample i = e / per_sample
 * lies in [i*block, (i+1)*block). A Gather along the batch (graph.h's
 * OP_GATHER mode) checks this before cpu_gather. 0 when they do. */
int cpu_gather_in_blocks(const void *idx, ferry_dtype idt, int64_t n_idx, int64_t per_sample,
                         int64_t block);

/* GatherElements: Y (dims id[nd], X's rank) at position p is X at p with
 * p[axis] replaced by idx[p] (negatives from the end); id[d] <= xd[d]. */
int cpu_gather_elements(const void *X, const int64_t *xd, int nd, int axis, const void *idx,
                        ferry_dtype idt, const int64_t *id, void *Y, size_t esz);

/* GatherND (ONNX): n_tuples index tuples of k components into X's dims bd
 * .. bd+k-1 (bd = batch_dims leading dims shared with the indices: tuple t
 * belongs to batch element t / (n_tuples / prod(xd[:bd]))), each copying
 * the slice of X's dims past bd+k to Y, in tuple order. block > 0: X's
 * first dim holds the batch, block rows a sample, and tuple t belongs to
 * sample t / per_sample, whose rows its component 0 must stay in. Returns
 * 0, -1 for an index out of range, -2 for one outside its sample. */
int cpu_gather_nd(const void *X, const int64_t *xd, int nd, int bd, const void *idx,
                  ferry_dtype idt, int64_t n_tuples, int k, int64_t block, int64_t per_sample,
                  void *Y, size_t esz);

/* ScatterND: Y = X (dims xd[nd], dtype dt as stored: f32, int64, int32,
 * int8, uint8 or bool), then for each of n_tuples index tuples of k
 * components (idx, int64 or int32, negatives from the end) the slice
 * Y[tuple] (dims xd[k, nd)) gets tuple t's slice of U, or is combined with
 * it (reduction, graph.h's SCATTER_*: add, mul, max, min; not for bool).
 * Tuples are applied in order, so a repeated one keeps its last write.
 * block > 0: tuple t must address rows [s*block, (s+1)*block) of dim 0,
 * s = t / per_sample (each sample writes only its own rows). Returns 0, -1
 * for an index out of range, -2 for a tuple outside its sample's rows. */
int cpu_scatter_nd(const void *X, const int64_t *xd, int nd, const void *idx, ferry_dtype idt,
                   int64_t n_tuples, int k, const void *U, ferry_dtype dt, int reduction,
                   int64_t block, int64_t per_sample, void *Y);

/* ScatterElements: Y = X, then for each position p of idx (dims id, X's
 * rank, id[d] <= xd[d]) Y at p with p[axis] replaced by idx[p] (negatives
 * from the end) gets U[p], or is combined with it (reduction as
 * cpu_scatter_nd), in the order of p. Returns 0, or -1 for an index out of
 * range. */
int cpu_scatter_elements(const void *X, const int64_t *xd, int nd, int axis, const void *idx,
                         ferry_dtype idt, const int64_t *id, const void *U, ferry_dtype dt,
                         int reduction, void *Y);

/* Slice: Y[i0, i1, ...] = X[starts[0] + i0*steps[0], ...] for every axis
 * (an axis not sliced has start 0, step 1); starts are clamped in-range
 * indices, steps nonzero (negative walks backwards), yd the output dims. */
void cpu_slice(const void *X, const int64_t *xd, int nd, const int64_t *starts,
               const int64_t *steps, void *Y, const int64_t *yd, size_t esz);

/* Concat of n inputs along axis: input i has Y's dims except lens[i] on
 * the axis; yd are the output dims. */
void cpu_concat(const void *const *X, const int64_t *lens, int n, void *Y, const int64_t *yd,
                int nd, int axis, size_t esz);

/* Split X along axis into n outputs of lens[i] (summing to xd[axis]). */
void cpu_split(const void *X, const int64_t *xd, int nd, int axis, const int64_t *lens, int n,
               void *const *Y, size_t esz);

/* Expand: Y (dims yd[yn]) = X (dims xd[xn]) broadcast. */
void cpu_expand(const void *X, const int64_t *xd, int xn, void *Y, const int64_t *yd, int yn,
                size_t esz);

/* Tile: Y (dims xd[d] * repeats[d]) = X repeated along every axis. */
void cpu_tile(const void *X, const int64_t *xd, int nd, const int64_t *repeats, void *Y,
              size_t esz);

/* Where: Y = C ? A : B, C bool (uint8), with three-way broadcasting onto
 * yd[yn]; A, B and Y share esz. */
void cpu_where(const uint8_t *C, const int64_t *cd, int cn, const void *A, const int64_t *ad,
               int an, const void *B, const int64_t *bd, int bn, void *Y, const int64_t *yd, int yn,
               size_t esz);

typedef enum cpu_pad_mode {
    CPU_PAD_CONSTANT = 0,
    CPU_PAD_REFLECT, /* mirror without repeating the edge: numpy "reflect" */
    CPU_PAD_EDGE,    /* repeat the edge value */
    CPU_PAD_WRAP,    /* periodic (ONNX opset 19) */
} cpu_pad_mode;

/* Pad: pads[2*nd] in ONNX order (all begins, then all ends); a negative
 * pad crops, and the padding modes then act on the cropped tensor. value
 * points to one element (constant mode; NULL means zero). Y's dims are
 * xd[d] + pads[d] + pads[nd + d]. Reflect needs every cropped dim that is
 * padded to be >= 2, edge and wrap >= 1 (as ONNX). Matches numpy.pad for
 * reflect pads up to n - 1 and wrap pads up to n (n the cropped length);
 * longer pads continue the periodic pattern, where numpy 1.24 re-reflects
 * its partly padded array and ONNX Runtime refuses them. */
void cpu_pad(const void *X, const int64_t *xd, int nd, const int64_t *pads, cpu_pad_mode mode,
             const void *value, void *Y, size_t esz);

typedef enum cpu_resize_mode {
    CPU_RESIZE_NEAREST = 0,
    CPU_RESIZE_LINEAR,
} cpu_resize_mode;

typedef enum cpu_resize_coord {
    CPU_COORD_HALF_PIXEL = 0,
    CPU_COORD_PYTORCH_HALF_PIXEL,
    CPU_COORD_ALIGN_CORNERS,
    CPU_COORD_ASYMMETRIC,
    CPU_COORD_HALF_PIXEL_SYMMETRIC,
} cpu_resize_coord;

typedef enum cpu_resize_nearest {
    CPU_NEAREST_ROUND_PREFER_FLOOR = 0,
    CPU_NEAREST_ROUND_PREFER_CEIL,
    CPU_NEAREST_FLOOR,
    CPU_NEAREST_CEIL,
} cpu_resize_nearest;

/* Resize of f32 X (any rank) to dims yd: every axis maps output
 * coordinate i to an input coordinate by coord with scales[d] (as ONNX
 * resolves it: the given scale, or yd[d] / xd[d] when sizes are given),
 * then nearest picks one element (nearest rounding, clamped in range) and
 * linear interpolates between the two neighbours (n-linear over the
 * resized axes; neighbours clamped, which is ONNX's edge padding). Axes
 * with yd == xd and scale 1 are copied. Coordinates are computed in
 * double, with a scale equal to yd[d] / xd[d] rounded to f32 taken as
 * that exact ratio: then nearest's ties fall as in ONNX's float64
 * reference. align_corners divides by yd[d] - 1 (the output length, as
 * ONNX Runtime and PyTorch do). */
void cpu_resize(const float *X, const int64_t *xd, int nd, float *Y, const int64_t *yd,
                const float *scales, cpu_resize_mode mode, cpu_resize_coord coord,
                cpu_resize_nearest nearest);

/* Resize's cubic mode (PyTorch's bicubic): per resized axis, the four
 * neighbours floor(x) - 1 .. floor(x) + 2 of input coordinate x (coord, as
 * cpu_resize), clamped in range (exclude_outside 0), weighted by Keys'
 * cubic convolution with coefficient a (ONNX's cubic_coeff_a, -0.75 from
 * PyTorch); 4^r taps an output element for r resized axes. Computed
 * element by element in double: its use so far is a constant position
 * embedding interpolated at load (YOLOS, DINOv2), folded once. */
void cpu_resize_cubic(const float *X, const int64_t *xd, int nd, float *Y, const int64_t *yd,
                      const float *scales, cpu_resize_coord coord, float a);

/* GridSample of X [N,C,H,W] at grid [N,Ho,Wo,2] (x then y, -1 and 1 the
 * edges: the outer pixels' edges, or with align_corners their centres)
 * into Y [N,C,Ho,Wo], as PyTorch's grid_sample: bilinear (nearest != 0:
 * nearest, ties to even), padding_mode GRID_PAD_* of graph.h (zeros: taps
 * outside read 0; border: the coordinate clamped; reflection: reflected
 * about the edges, then clamped). Coordinates in f32, as PyTorch's
 * float kernel computes them. */
void cpu_grid_sample(const float *X, const int64_t *xd, const float *grid, int64_t ho, int64_t wo,
                     float *Y, int nearest, int padding, int align_corners);

/* EyeLike: Y [rows, cols] of stored dtype dt (f32, int64, int32, int8,
 * uint8, bool) zero but for ones at (i, i + k). */
void cpu_eye(void *Y, int64_t rows, int64_t cols, int64_t k, ferry_dtype dt);

/* ConstantOfShape: n copies of the element at value. */
void cpu_fill(void *Y, int64_t n, const void *value, size_t esz);

/* OneHot: indices X (stored dt FERRY_I64, FERRY_I32 or FERRY_F32,
 * truncated) of outer*inner elements -> Y [outer, depth, inner] of
 * elements esz bytes wide, each values[0] (off) except values[1] (on) at
 * the index (a negative one counts from depth; one outside [-depth,
 * depth) leaves its row off, as onnxruntime does). */
void cpu_one_hot(const void *X, ferry_dtype dt, int64_t outer, int64_t inner, int64_t depth,
                 const void *values, size_t esz, void *Y);

/* Range: Y[i] = start + i * delta for i < n (n computed by the caller as
 * max(ceil((limit - start) / delta), 0)); dt is FERRY_F32 (the value is
 * computed in double, then rounded), FERRY_I64 or FERRY_I32; start and
 * delta point to one element of dt. */
void cpu_range(ferry_dtype dt, const void *start, const void *delta, int64_t n, void *Y);

/* Trilu over the last two dims [R, C] of X (nd >= 2): keeps element (i, j)
 * when j - i >= k (upper) or j - i <= k (lower), zero elsewhere. Y may
 * equal X. */
void cpu_trilu(const void *X, const int64_t *xd, int nd, int upper, int64_t k, void *Y, size_t esz);

/* CumSum along axis for dt FERRY_F32 (summed in f32, in order, as
 * PyTorch), FERRY_I64 or FERRY_I32 (wrapping); exclusive leaves out the
 * element itself, reverse sums from the end. */
void cpu_cumsum(const void *X, ferry_dtype dt, const int64_t *xd, int nd, int axis, int exclusive,
                int reverse, void *Y);

/* DepthToSpace of X [N, C, H, W] with blocksize b: Y [N, C/b^2, H*b, W*b];
 * crd selects mode CRD, else DCR. */
void cpu_depth_to_space(const void *X, const int64_t *xd, int64_t b, int crd, void *Y, size_t esz);

/* SpaceToDepth of X [N, C, H, W] with blocksize b: Y [N, C*b^2, H/b, W/b]. */
void cpu_space_to_depth(const void *X, const int64_t *xd, int64_t b, void *Y, size_t esz);

#endif
