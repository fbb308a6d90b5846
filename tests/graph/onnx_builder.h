/*
 * onnx_builder.h - builds small ONNX models in memory for tests, by filling
 * protobuf-c structs and packing them. Every allocation is recorded in the
 * builder and freed by ob_free. Test code only: allocation failure aborts
 * through cmocka's assertions.
 */
#ifndef FERRY_TESTS_ONNX_BUILDER_H
#define FERRY_TESTS_ONNX_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

typedef struct ob {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    void **allocs;
    size_t n_allocs;
} ob;

static inline void *ob_alloc(ob *b, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    void **a = realloc(b->allocs, (b->n_allocs + 1) * sizeof *a);
    if (!p || !a)
        abort();
    b->allocs = a;
    b->allocs[b->n_allocs++] = p;
    return p;
}

static inline char *ob_str(ob *b, const char *s)
{
    char *d = ob_alloc(b, strlen(s) + 1);
    memcpy(d, s, strlen(s) + 1);
    return d;
}

/* Appends item to a protobuf-c repeated pointer field. */
#define OB_PUSH(b, arr, n, item)                                                  \
    do {                                                                          \
        void *ob_new_ = ob_alloc((b), ((n) + 1) * sizeof *(arr));                \
        if ((n))                                                                  \
            memcpy(ob_new_, (arr), (n) * sizeof *(arr));                          \
        (arr) = ob_new_;                                                          \
        (arr)[(n)++] = (item);                                                    \
    } while (0)

static inline ob *ob_new(int64_t opset)
{
    ob *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    onnx__operator_set_id_proto__init(&b->opset);
    b->model.has_ir_version = 1;
    b->model.ir_version = 8;
    b->model.producer_name = ob_str(b, "ferry-tests");
    b->opset.domain = ob_str(b, "");
    b->opset.has_version = 1;
    b->opset.version = opset;
    b->opsets[0] = &b->opset;
    b->model.n_opset_import = 1;
    b->model.opset_import = b->opsets;
    b->graph.name = ob_str(b, "g");
    b->model.graph = &b->graph;
    return b;
}

/* A value info; dims[i] < 0 becomes dim_param "N". ndim < 0: no shape. */
static inline Onnx__ValueInfoProto *ob_value_info(ob *b, const char *name, int elem, int ndim,
                                           const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = ob_alloc(b, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = ob_str(b, name);
    Onnx__TypeProto *tp = ob_alloc(b, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = ob_alloc(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *sh = ob_alloc(b, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        for (int i = 0; i < ndim; i++) {
            Onnx__TensorShapeProto__Dimension *d = ob_alloc(b, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] < 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = ob_str(b, "N");
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            }
            OB_PUSH(b, sh->dim, sh->n_dim, d);
        }
        tt->shape = sh;
    }
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

static inline Onnx__ValueInfoProto *ob_input(ob *b, const char *name, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = ob_value_info(b, name, 1, ndim, dims);
    OB_PUSH(b, b->graph.input, b->graph.n_input, vi);
    return vi;
}

static inline Onnx__ValueInfoProto *ob_output(ob *b, const char *name, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = ob_value_info(b, name, 1, ndim, dims);
    OB_PUSH(b, b->graph.output, b->graph.n_output, vi);
    return vi;
}

/* A tensor with raw_data copied from data (bytes = numel * elem size). */
static inline Onnx__TensorProto *ob_tensor(ob *b, const char *name, int elem, int ndim,
                                    const int64_t *dims, const void *data, size_t bytes)
{
    Onnx__TensorProto *t = ob_alloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = ob_str(b, name);
    t->has_data_type = 1;
    t->data_type = elem;
    t->dims = ob_alloc(b, sizeof(int64_t) * (size_t)(ndim > 0 ? ndim : 1));
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    t->n_dims = (size_t)ndim;
    if (data) {
        t->has_raw_data = 1;
        t->raw_data.len = bytes;
        t->raw_data.data = ob_alloc(b, bytes);
        memcpy(t->raw_data.data, data, bytes);
    }
    return t;
}

/* An f32 initializer filled with a deterministic pattern (data NULL) or data. */
static inline Onnx__TensorProto *ob_init_f32(ob *b, const char *name, int ndim, const int64_t *dims,
                                      const float *data)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    float *tmp = ob_alloc(b, n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        tmp[i] = data ? data[i] : (float)((int)(i % 13) - 6) * 0.01f;
    Onnx__TensorProto *t = ob_tensor(b, name, 1, ndim, dims, tmp, n * sizeof *tmp);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, t);
    return t;
}

static inline Onnx__TensorProto *ob_init_i64(ob *b, const char *name, int n, const int64_t *vals)
{
    int64_t d = n;
    Onnx__TensorProto *t = ob_tensor(b, name, 7, 1, &d, vals, (size_t)n * 8);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer, t);
    return t;
}

/* Splits a comma-separated list into a repeated string field ("a,,b" keeps
 * the empty name: an optional input left out). */
static inline void ob_names(ob *b, const char *list, char ***arr, size_t *n)
{
    *arr = NULL;
    *n = 0;
    if (!list)
        return;
    const char *s = list;
    for (;;) {
        size_t k = strcspn(s, ",");
        char *nm = ob_alloc(b, k + 1);
        memcpy(nm, s, k);
        OB_PUSH(b, *arr, *n, nm);
        if (!s[k])
            break;
        s += k + 1;
    }
}

static inline Onnx__NodeProto *ob_node(ob *b, const char *op, const char *name, const char *inputs,
                                const char *outputs)
{
    Onnx__NodeProto *n = ob_alloc(b, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = ob_str(b, op);
    if (name)
        n->name = ob_str(b, name);
    ob_names(b, inputs, &n->input, &n->n_input);
    ob_names(b, outputs, &n->output, &n->n_output);
    OB_PUSH(b, b->graph.node, b->graph.n_node, n);
    return n;
}

static inline Onnx__AttributeProto *ob_attr(ob *b, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = ob_alloc(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = ob_str(b, name);
    a->has_type = 1;
    a->type = type;
    OB_PUSH(b, n->attribute, n->n_attribute, a);
    return a;
}

static inline void ob_attr_f(ob *b, Onnx__NodeProto *n, const char *name, float f)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = f;
}

static inline void ob_attr_i(ob *b, Onnx__NodeProto *n, const char *name, int64_t i)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = i;
}

static inline void ob_attr_s(ob *b, Onnx__NodeProto *n, const char *name, const char *s)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(s);
    a->s.data = (uint8_t *)ob_str(b, s);
}

static inline void ob_attr_ints(ob *b, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->ints = ob_alloc(b, sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
    a->n_ints = (size_t)cnt;
}

/* Serializes the model; the buffer is owned by the builder. */
static inline uint8_t *ob_pack(ob *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = ob_alloc(b, *len);
    onnx__model_proto__pack(&b->model, buf);
    return buf;
}

static inline void ob_free(ob *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_allocs; i++)
        free(b->allocs[i]);
    free(b->allocs);
    free(b);
}

/* x[N,in] -> Gemm(W1,b1) -> Relu -> Gemm(W2,b2) -> y[N,out] */
static inline ob *ob_mlp(int64_t in, int64_t hid, int64_t out)
{
    ob *b = ob_new(13);
    int64_t xd[2] = {-1, in}, w1[2] = {hid, in}, b1[1] = {hid}, w2[2] = {out, hid}, b2[1] = {out};
    int64_t yd[2] = {-1, out};
    ob_input(b, "x", 2, xd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "fc1.weight", 2, w1, NULL);
    ob_init_f32(b, "fc1.bias", 1, b1, NULL);
    ob_init_f32(b, "fc2.weight", 2, w2, NULL);
    ob_init_f32(b, "fc2.bias", 1, b2, NULL);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc1", "x,fc1.weight,fc1.bias", "h");
    ob_attr_i(b, n, "transB", 1);
    ob_node(b, "Relu", "relu", "h", "a");
    n = ob_node(b, "Gemm", "fc2", "a,fc2.weight,fc2.bias", "y");
    ob_attr_i(b, n, "transB", 1);
    return b;
}

#endif
