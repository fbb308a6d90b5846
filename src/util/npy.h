/*
 * npy.h - NumPy .npy files (format versions 1.0, 2.0 and 3.0) to and from
 * ferry_tensor: the input and output format of `ferry run` and of the
 * reference data the parity tests compare against.
 *
 * Supported element types, little-endian and C order only: <f4 <f8 <f2 <i4
 * <i8 |u1 |i1 |b1 (FERRY_F32, F64, F16, I32, I64, U8, I8, BOOL).
 */
#ifndef FERRY_UTIL_NPY_H
#define FERRY_UTIL_NPY_H

#include "ferry.h"

/* Reads a whole .npy file into *out; out->data is allocated with malloc and
 * owned by the caller (free it with free() or npy_free). Never keeps path.
 * Errors (the message names the file): FERRY_EIO (cannot open or read),
 * FERRY_EPARSE (bad magic, malformed header, data size that does not match
 * the shape), FERRY_EUNSUPPORTED (fortran_order True, a big-endian or other
 * dtype, more than FERRY_MAX_DIMS dimensions), FERRY_ENOMEM. On failure *out
 * is zeroed and nothing is allocated. Any thread. */
ferry_status npy_read(const char *path, ferry_tensor *out);

/* Writes t as a .npy file (version 1.0: any shape Ferry holds fits its
 * header), replacing path. Errors: FERRY_EINVAL (bad tensor), FERRY_EUNSUPPORTED
 * (a dtype .npy cannot name, such as bf16), FERRY_EIO. Any thread. */
ferry_status npy_write(const char *path, const ferry_tensor *t);

/* Frees the data npy_read allocated and zeroes *t. Accepts NULL. */
void npy_free(ferry_tensor *t);

#endif
