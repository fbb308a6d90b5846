/*
 * onnx_summary.c - what a model file declares (inputs, outputs with their
 * symbolic dims, operators with counts and whether Ferry has them), read
 * without building a graph, so that `ferry info` can describe a model that
 * does not load and mark what is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/ops.h"
#include "onnx.pb-c.h"
#include "util/error.h"

ferry_dtype onnx_map_dtype(int32_t t); /* onnx_load.c */

static int default_domain(const char *d)
{
    return !d || !*d || !strcmp(d, "ai.onnx");
}

static void read_io(const Onnx__ValueInfoProto *vi, onnx_summary_io *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", vi && vi->name ? vi->name : "?");
    if (!vi || !vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type)
        return;
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    o->dtype = tt->has_elem_type ? onnx_map_dtype(tt->elem_type) : FERRY_DTYPE_UNDEFINED;
    if (!tt->shape)
        return;
    o->ndim = tt->shape->n_dim > FERRY_MAX_DIMS ? FERRY_MAX_DIMS : (int)tt->shape->n_dim;
    for (int d = 0; d < o->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
        if (dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            o->dims[d] = dm->dim_value;
        } else {
            o->dims[d] = -1;
            const char *name =
                dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                        dm->dim_param
                    ? dm->dim_param
                    : "?";
            size_t cap = sizeof o->sym[d];
            if (strlen(name) < cap) /* else cut, and say so */
                snprintf(o->sym[d], cap, "%s", name);
            else
                snprintf(o->sym[d], cap, "%.*s...", (int)cap - 4, name);
        }
    }
}

ferry_status onnx_summarize_file(const char *path, onnx_summary *s)
{
    char *buf;
    size_t len;
    memset(s, 0, sizeof *s);
    ferry_status st = onnx_read_file(path, &buf, &len);
    if (st)
        return st;
    Onnx__ModelProto *mp = len ? onnx__model_proto__unpack(NULL, len, (const uint8_t *)buf) : NULL;
    free(buf);
    if (!mp || !mp->graph) {
        if (mp)
            onnx__model_proto__free_unpacked(mp, NULL);
        return ferry_fail(FERRY_EPARSE, "model '%s': not an ONNX model", path);
    }
    s->ir_version = mp->ir_version;
    snprintf(s->producer, sizeof s->producer, "%s", mp->producer_name ? mp->producer_name : "?");
    for (size_t i = 0; i < mp->n_opset_import; i++)
        if (mp->opset_import[i] && default_domain(mp->opset_import[i]->domain))
            s->opset = mp->opset_import[i]->version;
    const Onnx__GraphProto *gp = mp->graph;
    for (size_t i = 0; i < gp->n_input && s->n_inputs < ONNX_SUMMARY_MAX; i++) {
        int init = 0; /* old exporters list initializers as inputs too */
        for (size_t k = 0; gp->input[i] && k < gp->n_initializer && !init; k++)
            init = gp->initializer[k] && gp->initializer[k]->name && gp->input[i]->name &&
                   !strcmp(gp->initializer[k]->name, gp->input[i]->name);
        if (!init)
            read_io(gp->input[i], &s->inputs[s->n_inputs++]);
    }
    for (size_t i = 0; i < gp->n_output && s->n_outputs < ONNX_SUMMARY_MAX; i++)
        read_io(gp->output[i], &s->outputs[s->n_outputs++]);
    s->n_nodes = (int)gp->n_node;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (!np)
            continue;
        char name[64];
        const char *op = np->op_type ? np->op_type : "?";
        if (default_domain(np->domain))
            snprintf(name, sizeof name, "%s", op);
        else
            snprintf(name, sizeof name, "%s.%s", np->domain, op);
        int k = 0;
        while (k < s->n_ops && strcmp(s->ops[k].name, name))
            k++;
        if (k == s->n_ops) {
            if (k == ONNX_SUMMARY_MAX * 2)
                continue;
            snprintf(s->ops[k].name, sizeof s->ops[k].name, "%s", name);
            s->ops[k].supported = default_domain(np->domain) &&
                                  (op_find(op) || !strcmp(op, "Constant") || !strcmp(op, "If"));
            s->n_ops++;
        }
        s->ops[k].count++;
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return FERRY_OK;
}
