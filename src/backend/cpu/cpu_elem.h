/*
 * cpu_elem.h - the CPU backend's elementwise, comparison, logical and
 * reduction kernels for ONNX operators over dense row-major tensors of
 * any rank up to FERRY_MAX_DIMS, with the conventions of cpu_data.h:
 * concrete dims as (dims, ndim) checked by the caller, floating tensors
 * stored as f32, integers as int64 or int32, bool as uint8 0/1; outputs
 * of broadcasting kernels are dense over (yd, yn), the ONNX broadcast of
 * the inputs' dims (cpu_broadcast_shape). Integer arithmetic wraps on
 * overflow (as two's complement hardware does) instead of being undefined.
 * Reentrant, allocation-free; jobs of 32-64K elements or more (broadcasting
 * kernels, f32 unary, f32 reductions with several outputs) are split over
 * the backend's threads when they are free (cpu_parallel.h), which
 * changes no result. Private to src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_ELEM_H
#define FERRY_BACKEND_CPU_ELEM_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_iter.h"
#include "ferry.h"

typedef enum cpu_unary_op {
    CPU_UN_NEG = 0,
    CPU_UN_ABS,
    CPU_UN_SIGN,
    CPU_UN_EXP,
    CPU_UN_LOG,
    CPU_UN_RECIPROCAL,
    CPU_UN_FLOOR,
    CPU_UN_CEIL,
    CPU_UN_ROUND, /* half to even, as ONNX */
    CPU_UN_SIN,
    CPU_UN_COS,
    CPU_UN_HARD_SIGMOID,     /* max(0, min(1, a*x + b)) */
    CPU_UN_HARD_SWISH,       /* x * max(0, min(1, x/6 + 1/2)) */
    CPU_UN_CLIP,             /* min(max(x, a), b); absent bounds are -inf/+inf */
    CPU_UN_SOFTPLUS,         /* log(1 + exp(x)) */
    CPU_UN_MISH,             /* x * tanh(softplus(x)) */
    CPU_UN_ELU,              /* x > 0 ? x : a*(e^x - 1) */
    CPU_UN_SELU,             /* b * (x > 0 ? x : a*(e^x - 1)) */
    CPU_UN_CELU,             /* max(0, x) + min(0, a*(e^(x/a) - 1)) */
    CPU_UN_THRESHOLDED_RELU, /* x > a ? x : 0 */
    CPU_UN_SOFTSIGN,         /* x / (1 + |x|) */
    CPU_UN_SHRINK,           /* x < -a ? x + b : x > a ? x - b : 0 */
} cpu_unary_op;

/* Y = op(X) over n f32 elements, parameters a and b as listed above. Y may
 * equal X. */
void cpu_unary_f32(cpu_unary_op op, const float *X, float *Y, int64_t n, float a, float b);

/* Y = op(X) for Neg, Abs, Sign, Clip (bounds a, b: pass the type's
 * limits for an absent one), and Floor, Ceil, Round (copies) over n
 * integers of dt FERRY_I64 or FERRY_I32 (-INT_MIN wraps to INT_MIN). Y may
 * equal X. */
void cpu_unary_int(cpu_unary_op op, ferry_dtype dt, const void *X, void *Y, int64_t n, int64_t a,
                   int64_t b);

typedef enum cpu_binary_op {
    CPU_BIN_ADD = 0,
    CPU_BIN_SUB,
    CPU_BIN_MUL,
    CPU_BIN_DIV, /* integers: truncates toward zero; x / 0 is 0 */
    /* fmod: the sign of the dividend (C); else of the divisor (Python);
     * integer x mod 0 is 0 */
    CPU_BIN_MOD,
    CPU_BIN_MIN, /* f32: NaN in either input gives NaN */
    CPU_BIN_MAX,
    CPU_BIN_MEAN, /* cpu_variadic only: the sum divided by n (f32) */
} cpu_binary_op;

/* Y = A op B with broadcasting, A, B and Y all of dt: FERRY_F32,
 * FERRY_I64 or FERRY_I32. Y may equal A or B when that input has Y's dims. */
void cpu_binary_arith(cpu_binary_op op, ferry_dtype dt, int fmod, const void *A, const int64_t *ad,
                      int an, const void *B, const int64_t *bd, int bn, void *Y, const int64_t *yd,
                      int yn);

/* Sum, Mean, Min, Max of n >= 1 inputs of dt (op ADD, MEAN, MIN, MAX),
 * all broadcast onto yd[yn]; input i has dims xd[i][xn[i]]. Y may equal
 * an input that has Y's dims only if it is X[0]. */
void cpu_variadic(cpu_binary_op op, ferry_dtype dt, int n, const void *const *X,
                  const int64_t *const *xd, const int *xn, void *Y, const int64_t *yd, int yn);

/* Pow with broadcasting: Y (A's dt) = A ^ B. A is FERRY_F32, FERRY_I64 or
 * FERRY_I32; B any of those. f32 ^ integer is computed in double, then
 * rounded (numpy's promotion); integer ^ integer by repeated squaring
 * (a negative exponent gives the truncated 1 / a^-b); integer ^ f32 in
 * double, truncated toward zero. */
void cpu_pow(const void *A, ferry_dtype adt, const int64_t *ad, int an, const void *B,
             ferry_dtype bdt, const int64_t *bd, int bn, void *Y, const int64_t *yd, int yn);

typedef enum cpu_cmp_op {
    CPU_CMP_EQ = 0,
    CPU_CMP_LT,
    CPU_CMP_LE,
    CPU_CMP_GT,
    CPU_CMP_GE,
} cpu_cmp_op;

/* Y (bool) = A op B with broadcasting; A and B of dt FERRY_F32, FERRY_I64,
 * FERRY_I32 or FERRY_BOOL. NaN compares false (Equal too). */
void cpu_compare(cpu_cmp_op op, ferry_dtype dt, const void *A, const int64_t *ad, int an,
                 const void *B, const int64_t *bd, int bn, uint8_t *Y, const int64_t *yd, int yn);

typedef enum cpu_logic_op {
    CPU_LOGIC_AND = 0,
    CPU_LOGIC_OR,
    CPU_LOGIC_XOR,
} cpu_logic_op;

/* Y = A op B on bools (any nonzero byte is true; Y is 0/1), broadcasting. */
void cpu_logical(cpu_logic_op op, const uint8_t *A, const int64_t *ad, int an, const uint8_t *B,
                 const int64_t *bd, int bn, uint8_t *Y, const int64_t *yd, int yn);

/* Y = !X over n bools. */
void cpu_not(const uint8_t *X, uint8_t *Y, int64_t n);

/* IsNaN and IsInf (detect_neg, detect_pos as ONNX's attributes) of n f32. */
void cpu_isnan(const float *X, uint8_t *Y, int64_t n);
void cpu_isinf(const float *X, uint8_t *Y, int64_t n, int detect_neg, int detect_pos);

typedef enum cpu_reduce_op {
    CPU_RED_SUM = 0,
    CPU_RED_MEAN,
    CPU_RED_MAX, /* f32: NaN propagates */
    CPU_RED_MIN,
    CPU_RED_PROD,
    CPU_RED_L1,
    CPU_RED_L2,
    CPU_RED_SUM_SQUARE,
    CPU_RED_LOG_SUM,
    CPU_RED_LOG_SUM_EXP,
} cpu_reduce_op;

/* Reduces X (dims xd[nd]) over the dims where reduce[d] != 0 into Y,
 * laid out as X's dims with the reduced ones removed (keepdims only
 * changes Y's dims, which the caller owns). dt FERRY_F32 takes every op
 * (sums in double); FERRY_I64 and FERRY_I32 take SUM, MEAN (truncated
 * toward zero), MAX, MIN, PROD, L1 and SUM_SQUARE, accumulated in int64
 * (wrapping) and stored in dt. An empty reduction gives the op's identity
 * (0, 1, -inf or the type's minimum for MAX, +inf or its maximum for MIN,
 * NaN for f32 MEAN, -inf for LOG_SUM and LOG_SUM_EXP); reducing no dim
 * applies the op to each element. */
void cpu_reduce(cpu_reduce_op op, ferry_dtype dt, const void *X, const int64_t *xd, int nd,
                const int *reduce, void *Y);

/* ArgMax (is_max) or ArgMin of X (dt FERRY_F32, FERRY_I64 or FERRY_I32,
 * xd[axis] >= 1) along axis into int64 Y laid out as X's dims without the
 * axis: the first index of the extreme, or the last with select_last.
 * NaN counts as the extreme (numpy). */
void cpu_arg_reduce(int is_max, ferry_dtype dt, const void *X, const int64_t *xd, int nd, int axis,
                    int select_last, int64_t *Y);

/* TopK of X (dt FERRY_F32, FERRY_I64 or FERRY_I32) along axis: the k
 * (<= xd[axis]) largest (or smallest) of each line, best first, ties by
 * the lower index, into V (dt, X's dims with k on the axis) and their
 * indices into I (int64, the same dims). NaN ranks above every number. */
void cpu_topk(ferry_dtype dt, const void *X, const int64_t *xd, int nd, int axis, int64_t k,
              int largest, void *V, int64_t *I);

#endif
