/*
 * cuda_dnn_graph.h - a convolution with its epilogue as one cuDNN graph
 * (backend API) execution plan: cuda_dnn_graph.c says why and how.
 */
#ifndef FERRY_CUDA_DNN_GRAPH_H
#define FERRY_CUDA_DNN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include <cudnn.h>

#include "ferry.h"

/* A 2-D convolution (1-D ones as H = 1) at one batch size, and which of
 * the epilogue's steps run in the plan: + bias, + residual z, ReLU (relu;
 * clip: ReLU6 and other Clips, y = min(max(x, lo), hi)). */
typedef struct dnn_conv_shape {
    cudnnDataType_t dt; /* of x, w, y, bias and z */
    int nhwc;           /* x, y, z channels-last, w as [Co, kh, kw, Ci/g] */
    int64_t n, ci, co, group;
    int64_t in[2], out[2], k[2];
    int64_t pad[2], str[2], dil[2]; /* symmetric pads */
    int bias, res, relu, clip;
    float lo, hi; /* clip's bounds */
} dnn_conv_shape;

typedef struct dnn_plan dnn_plan;

/* Builds the plan (host only; may take milliseconds when cuDNN compiles a
 * fused kernel). FERRY_EUNSUPPORTED, with no message set, when no engine
 * takes the graph within ws_limit bytes of workspace. */
ferry_status cuda_dnn_plan_make(cudnnHandle_t h, const dnn_conv_shape *s, size_t ws_limit,
                                dnn_plan **out);
size_t cuda_dnn_plan_workspace(const dnn_plan *p);
/* Queues the plan on h's stream; bias and res are read when the plan has
 * those steps. ws: cuda_dnn_plan_workspace(p) bytes of device memory. */
ferry_status cuda_dnn_plan_run(cudnnHandle_t h, const dnn_plan *p, const void *x, const void *w,
                               void *y, const void *bias, const void *res, void *ws);
void cuda_dnn_plan_free(dnn_plan *p);

#endif
