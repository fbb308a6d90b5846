/* model.c - ferry_model: load an ONNX model, optimize it, describe its I/O. */
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"
#include "util/error.h"

static ferry_status model_wrap(graph *g, const char *path, ferry_model **out)
{
    ferry_model *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    m->path = strdup(path);
    if (!m->path)
        goto fail;
    m->g = g;
    *out = m;
    return FERRY_OK;
fail:
    free(m);
    graph_free(g);
    return ferry_fail(FERRY_ENOMEM, "model '%s': out of memory", path);
}

static ferry_status model_finish(graph *g, const char *label, ferry_model **out)
{
    ferry_status st = graph_optimize(g);
    if (st != FERRY_OK) {
        graph_free(g);
        return ferry_fail_prefix(st, "model '%s'", label);
    }
    return model_wrap(g, label, out);
}

ferry_status ferry_model_load(const char *path, ferry_model **out)
{
    graph *g = NULL;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load: path is NULL");
    /* onnx_load_file's messages already start with "model 'path': ". */
    ferry_status st = onnx_load_file(path, &g);
    if (st != FERRY_OK)
        return st;
    return model_finish(g, path, out);
}

ferry_status ferry_model_load_buffer(const void *buf, size_t len, const char *base_dir,
                                     ferry_model **out)
{
    graph *g = NULL;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load_buffer: out is NULL");
    *out = NULL;
    if (!buf && len)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load_buffer: buf is NULL");
    ferry_status st = onnx_load_buffer(buf, len, base_dir, &g);
    if (st != FERRY_OK)
        return ferry_fail_prefix(st, "model '<buffer>'");
    return model_finish(g, "<buffer>", out);
}

void ferry_model_destroy(ferry_model *m)
{
    if (!m)
        return;
    graph_free(m->g);
    free(m->path);
    free(m);
}

int ferry_model_num_inputs(const ferry_model *m)
{
    return m ? m->g->n_inputs : 0;
}

int ferry_model_num_outputs(const ferry_model *m)
{
    return m ? m->g->n_outputs : 0;
}

static ferry_status model_info(const ferry_model *m, const int *list, int n, int i,
                               const char *what, ferry_tensor_info *out)
{
    if (!m || !out)
        return ferry_fail(FERRY_EINVAL, "ferry_model_%s: NULL argument", what);
    if (i < 0 || i >= n)
        return ferry_fail(FERRY_EINVAL, "model '%s': %s %d out of range (it has %d)", m->path, what,
                          i, n);
    const graph_value *v = &m->g->values[list[i]];
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->dtype = v->dtype;
    out->ndim = v->ndim;
    for (int d = 0; d < v->ndim; d++)
        out->shape[d] = v->dims[d];
    return FERRY_OK;
}

ferry_status ferry_model_input(const ferry_model *m, int i, ferry_tensor_info *out)
{
    return model_info(m, m ? m->g->inputs : NULL, m ? m->g->n_inputs : 0, i, "input", out);
}

ferry_status ferry_model_output(const ferry_model *m, int i, ferry_tensor_info *out)
{
    return model_info(m, m ? m->g->outputs : NULL, m ? m->g->n_outputs : 0, i, "output", out);
}
