/* onnx_write.h - writing ONNX models (the seeded MLPs behind `ferry make-model`). */
#ifndef FERRY_GRAPH_ONNX_WRITE_H
#define FERRY_GRAPH_ONNX_WRITE_H

#include <stdint.h>

#include "ferry.h"

/* Writes an MLP as an ONNX model: input "input" [batch, dims[0]] f32, then
 * n_dims-1 Gemm layers (transB=1, weights [out,in] and bias [out] drawn
 * from U(-1/sqrt(in), 1/sqrt(in)) like torch.nn.Linear, from a PRNG seeded
 * by seed) with activation act ("relu", "gelu", "gelu_tanh", "tanh",
 * "sigmoid", "none") between layers and none after the last, and output
 * "output" [batch, dims[n_dims-1]]. GELU is the Gelu op when opset >= 20,
 * otherwise the Erf (or tanh) decomposition PyTorch exports. opset is 13..21
 * (0 means 17). external_data puts the weights in "<path>.data" next to the
 * model. Same arguments, same bytes. The files are written atomically
 * (temporary file, then rename). FERRY_EINVAL names a bad argument;
 * FERRY_EIO names the file and the system error. */
ferry_status onnx_write_mlp(const char *path, const int *dims, int n_dims, const char *act,
                            uint64_t seed, int opset, int external_data);

/* Accepted activation names, for help texts: "relu, gelu, ...". */
const char *onnx_write_mlp_acts(void);

#endif
