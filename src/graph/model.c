/* model.c - ferry_model: load an ONNX model, optimize it, describe its I/O. */
#include <stdint.h>
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

void ferry_model_options_init(ferry_model_options *o)
{
    memset(o, 0, sizeof *o);
}

ferry_status ferry_model_load(const char *path, ferry_model **out)
{
    return ferry_model_load_opts(path, NULL, out);
}

/* The default length buckets: powers of two and the midpoints between
 * them, so that a request is padded by less than a third of its length
 * plus one (a uniform spread of lengths pays about 15% padding; powers of
 * two alone would pay about 30%). Loading stops at the first length the
 * model refuses (a position table of 64 rows refuses 96). */
static const int64_t default_lengths[] = {16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};

/* Hash of a constant's bytes (FNV-1a over 8-byte words, then the tail). */
static uint64_t bytes_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

typedef struct const_key {
    uint64_t hash;
    size_t bytes;
    int v;
} const_key;

static int key_cmp(const void *a, const void *b)
{
    const const_key *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

static size_t const_bytes(const graph_value *v)
{
    if (!v->is_const || !v->data || v->is_sym || v->data_shared)
        return 0;
    return (size_t)graph_value_numel(v, 1) * ferry_dtype_size(v->dtype);
}

/* Points every constant of g that has the same bytes as one of base's at
 * base's copy and frees its own: the buckets' graphs then hold one copy of
 * the weights. base must outlive g (model_destroy frees it last). */
static ferry_status share_constants(graph *g, const graph *base)
{
    const_key *keys = malloc(((size_t)base->n_values + 1) * sizeof *keys);
    if (!keys)
        return ferry_fail(FERRY_ENOMEM, "out of memory sharing weights between length buckets");
    int n = 0;
    for (int i = 0; i < base->n_values; i++) {
        size_t nb = const_bytes(&base->values[i]);
        if (nb >= 64)
            keys[n++] = (const_key){bytes_hash(base->values[i].data, nb), nb, i};
    }
    qsort(keys, (size_t)n, sizeof *keys, key_cmp);
    for (int i = 0; i < g->n_values; i++) {
        graph_value *v = &g->values[i];
        size_t nb = const_bytes(v);
        if (nb < 64)
            continue;
        const_key k = {bytes_hash(v->data, nb), nb, -1};
        const const_key *hit = bsearch(&k, keys, (size_t)n, sizeof *keys, key_cmp);
        /* bsearch finds one of equal keys: step back to the first */
        while (hit && hit > keys && !key_cmp(hit - 1, &k))
            hit--;
        for (; hit && hit < keys + n && !key_cmp(hit, &k); hit++) {
            const graph_value *bv = &base->values[hit->v];
            if (bv->dtype == v->dtype && !memcmp(bv->data, v->data, nb)) {
                free(v->data);
                v->data = bv->data;
                v->data_shared = 1;
                break;
            }
        }
    }
    free(keys);
    return FERRY_OK;
}

/* Marks the length dim of each output that declares none by comparing two
 * buckets' shapes: the dim that differs (a model whose export did not name
 * the output's axis). */
static void infer_output_len_dims(ferry_model *m)
{
    if (m->n_len < 2)
        return;
    const graph *a = m->var[0]->g, *b = m->var[m->n_len - 1]->g;
    for (int i = 0; i < b->n_outputs; i++) {
        graph_value *vb = &b->values[b->outputs[i]];
        const graph_value *va = &a->values[a->outputs[i]];
        if (vb->len_dim || va->ndim != vb->ndim)
            continue;
        for (int d = 1; d < vb->ndim; d++)
            if (va->dims[d] == m->len[0] && vb->dims[d] == m->len[m->n_len - 1]) {
                vb->len_dim = d;
                break;
            }
    }
    for (int k = 0; k + 1 < m->n_len; k++) {
        graph *g = m->var[k]->g;
        for (int i = 0; i < g->n_outputs; i++)
            g->values[g->outputs[i]].len_dim = b->values[b->outputs[i]].len_dim;
    }
}

/* A Gather whose indices are constants known at load (a position table
 * read at arange(L), which folding leaves to run time when it is large)
 * must index inside its table: the length a model refuses. */
static ferry_status check_constant_gathers(const graph *g)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const graph_node *n = &g->nodes[k];
        if (n->dead || n->op != OP_GATHER || n->n_in < 2)
            continue;
        const graph_value *t = &g->values[n->in[0]], *ix = &g->values[n->in[1]];
        if (!ix->is_const || !ix->data || ix->is_sym || t->ndim < 1 ||
            (ix->dtype != FERRY_I64 && ix->dtype != FERRY_I32))
            continue;
        int axis = n->axis < 0 ? n->axis + t->ndim : n->axis;
        int64_t rows = axis >= 0 && axis < t->ndim ? t->dims[axis] : 0;
        if (rows <= 0)
            continue;
        int64_t cnt = graph_value_numel(ix, 1);
        for (int64_t i = 0; i < cnt; i++) {
            int64_t j = ix->dtype == FERRY_I64 ? ((const int64_t *)ix->data)[i]
                                               : ((const int32_t *)ix->data)[i];
            if (j < -rows || j >= rows)
                return ferry_fail(FERRY_ESHAPE,
                                  "node '%s' (Gather): index %lld is outside its table of %lld "
                                  "rows",
                                  n->name, (long long)j, (long long)rows);
        }
    }
    return FERRY_OK;
}

/* Loads one graph per length bucket from the file's bytes. */
static ferry_status load_buckets(ferry_model *m, const char *buf, size_t len, const char *dir,
                                 const char *axis, const ferry_model_options *o)
{
    const int64_t *want = o && o->n_length_buckets ? o->length_buckets : default_lengths;
    int n_want = o && o->n_length_buckets ? o->n_length_buckets
                                          : (int)(sizeof default_lengths / sizeof *default_lengths);
    int user = o && o->n_length_buckets;
    for (int k = 0; k < n_want; k++)
        if (want[k] < 1 || (k && want[k] <= want[k - 1]) || want[k] > (1 << 24))
            return ferry_fail(FERRY_EINVAL,
                              "length buckets: %lld at position %d; expected ascending lengths "
                              "in 1..%d",
                              (long long)want[k], k + 1, 1 << 24);
    m->len = calloc((size_t)n_want, sizeof *m->len);
    m->var = calloc((size_t)n_want, sizeof *m->var);
    if (!m->len || !m->var || !(m->len_axis = strdup(axis)))
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    /* the longest first: it is the base whose constants the others share */
    ferry_status st = FERRY_OK;
    int first = n_want;
    for (int k = n_want - 1; k >= 0; k--) {
        graph *g = NULL;
        st = onnx_load_buffer_len(buf, len, dir, axis, want[k], &g);
        if (st == FERRY_OK &&
            ((st = graph_optimize(g)) != FERRY_OK || (st = check_constant_gathers(g)) != FERRY_OK))
            graph_free(g);
        if (st != FERRY_OK) {
            if (!user && k > 0 && m->n_len == 0)
                continue; /* longer than the model takes: try the next shorter */
            ferry_fail_prefix(st, "length bucket %lld ('%s' = %lld)", (long long)want[k], axis,
                              (long long)want[k]);
            break;
        }
        if (m->n_len && (st = share_constants(g, m->var[k + m->n_len]->g)) != FERRY_OK) {
            graph_free(g);
            break;
        }
        ferry_model *v = calloc(1, sizeof *v);
        if (!v || !(v->path = strdup(m->path))) {
            free(v);
            graph_free(g);
            st = ferry_fail(FERRY_ENOMEM, "out of memory");
            break;
        }
        v->g = g;
        m->var[k] = v;
        m->n_len++;
        m->len[k] = want[k];
        first = k;
    }
    /* loaded: var[first .. first+n_len-1] (the model refused longer ones) */
    for (int k = 0; k < m->n_len; k++) {
        m->var[k] = m->var[k + first];
        m->len[k] = m->len[k + first];
    }
    if (st != FERRY_OK)
        return st; /* ferry_model_destroy frees what loaded */
    m->g = m->var[m->n_len - 1]->g;
    infer_output_len_dims(m);
    return FERRY_OK;
}

ferry_status ferry_model_load_opts(const char *path, const ferry_model_options *o,
                                   ferry_model **out)
{
    if (!out)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return ferry_fail(FERRY_EINVAL, "ferry_model_load: path is NULL");
    char *buf = NULL, *dir = NULL, axis[128];
    size_t len = 0;
    ferry_status st = onnx_read_file(path, &buf, &len);
    if (st != FERRY_OK)
        return st;
    if ((st = onnx_find_length_axis(buf, len, o ? o->length_axis : NULL, axis, sizeof axis))) {
        free(buf);
        return ferry_fail_prefix(st, "model '%s'", path);
    }
    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    ferry_model *m = calloc(1, sizeof *m);
    if (!dir || !m || !(m->path = strdup(path))) {
        st = ferry_fail(FERRY_ENOMEM, "model '%s': out of memory", path);
        goto fail;
    }
    if (axis[0]) {
        if ((st = load_buckets(m, buf, len, dir, axis, o)) != FERRY_OK) {
            ferry_fail_prefix(st, "model '%s'", path);
            goto fail;
        }
    } else {
        graph *g = NULL;
        if ((st = onnx_load_buffer(buf, len, dir, &g)) != FERRY_OK) {
            ferry_fail_prefix(st, "model '%s'", path);
            goto fail;
        }
        if ((st = graph_optimize(g)) != FERRY_OK) {
            graph_free(g);
            ferry_fail_prefix(st, "model '%s'", path);
            goto fail;
        }
        m->g = g;
    }
    free(buf);
    free(dir);
    *out = m;
    return FERRY_OK;
fail:
    free(buf);
    free(dir);
    ferry_model_destroy(m);
    return st;
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
    if (m->var) {
        /* the longest bucket last: the others borrow its constants */
        for (int k = 0; k < m->n_len; k++)
            ferry_model_destroy(m->var[k]);
    } else {
        graph_free(m->g);
    }
    free(m->var);
    free(m->len);
    free(m->len_axis);
    free(m->path);
    free(m);
}

int ferry_model_num_lengths(const ferry_model *m)
{
    return m ? m->n_len : 0;
}

int64_t ferry_model_length(const ferry_model *m, int k)
{
    return m && k >= 0 && k < m->n_len ? m->len[k] : 0;
}

const char *ferry_model_length_axis(const ferry_model *m)
{
    return m && m->len_axis ? m->len_axis : "";
}

int ferry_model_length_dim(const ferry_model *m, int is_output, int i)
{
    if (!m || !m->n_len)
        return 0;
    const graph *g = m->g;
    if (i < 0 || i >= (is_output ? g->n_outputs : g->n_inputs))
        return 0;
    return g->values[is_output ? g->outputs[i] : g->inputs[i]].len_dim;
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
