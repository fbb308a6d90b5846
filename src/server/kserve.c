/*
 * kserve.c - the KServe v2 / Open Inference Protocol documents: server and
 * model metadata, and the infer request and response, with Triton's binary
 * tensor data extension (binary_data_size on inputs, binary_data on
 * requested outputs, binary_data_output on the request, the JSON part's
 * length in Inference-Header-Content-Length).
 *
 * Request tensors may come in any numeric datatype this file knows; they are
 * converted to the model input's dtype (after rounding to the datatype the
 * client named, so FP16 data means what FP16 means). Responses carry the
 * model output's dtype.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/error.h"
#include "util/half.h"

const char *kserve_dtype_name(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F32: return "FP32";
    case FERRY_F16: return "FP16";
    case FERRY_BF16: return "BF16";
    case FERRY_F64: return "FP64";
    case FERRY_I32: return "INT32";
    case FERRY_I64: return "INT64";
    case FERRY_I8: return "INT8";
    case FERRY_U8: return "UINT8";
    case FERRY_BOOL: return "BOOL";
    default: return "UNDEFINED";
    }
}

static ferry_dtype dtype_parse(const char *s)
{
    static const ferry_dtype all[] = {FERRY_F32, FERRY_F16, FERRY_BF16, FERRY_F64, FERRY_I32,
                                      FERRY_I64, FERRY_I8,  FERRY_U8,   FERRY_BOOL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, kserve_dtype_name(all[i])))
            return all[i];
    return FERRY_DTYPE_UNDEFINED;
}

/* ------------------------------------------------------------- metadata */

void kserve_server_metadata(ferry_server *s, jsonw *w)
{
    (void)s;
    jsonw_str_raw(w, "{\"name\":\"ferry\",\"version\":\"" FERRY_VERSION "\","
                     "\"extensions\":[\"binary_tensor_data\"]}");
}

static void tensor_meta(jsonw *w, const ferry_tensor_info *t)
{
    jsonw_str_raw(w, "{\"name\":");
    jsonw_str(w, t->name);
    jsonw_str_raw(w, ",\"datatype\":\"");
    jsonw_str_raw(w, kserve_dtype_name(t->dtype));
    jsonw_str_raw(w, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
        if (d)
            jsonw_char(w, ',');
        jsonw_i64(w, d == 0 ? -1 : t->shape[d]);
    }
    jsonw_str_raw(w, "]}");
}

void kserve_model_metadata(ferry_server *s, srv_model *m, jsonw *w)
{
    jsonw_str_raw(w, "{\"name\":");
    jsonw_str(w, m->name);
    jsonw_str_raw(w, ",\"versions\":[");
    bool first = true;
    for (int i = 0; i < s->n_models; i++) {
        if (strcmp(s->models[i]->name, m->name))
            continue;
        if (!first)
            jsonw_char(w, ',');
        first = false;
        jsonw_str(w, s->models[i]->version);
    }
    jsonw_str_raw(w, "],\"platform\":\"onnx\",\"inputs\":[");
    for (int i = 0; i < m->n_in; i++) {
        if (i)
            jsonw_char(w, ',');
        tensor_meta(w, &m->in[i]);
    }
    jsonw_str_raw(w, "],\"outputs\":[");
    for (int i = 0; i < m->n_out; i++) {
        if (i)
            jsonw_char(w, ',');
        tensor_meta(w, &m->out[i]);
    }
    jsonw_str_raw(w, "]}");
}

/* ------------------------------------------------------ element access */

/* Rounds v to what a tensor of datatype dt can hold; false when it cannot
 * (a fraction or out-of-range value for an integer type). */
static bool quantize(ferry_dtype dt, double *v)
{
    double x = *v;
    switch (dt) {
    case FERRY_F32: *v = (double)(float)x; return true;
    case FERRY_F16: *v = (double)ferry_f16_to_f32(ferry_f32_to_f16((float)x)); return true;
    case FERRY_BF16: *v = (double)ferry_bf16_to_f32(ferry_f32_to_bf16((float)x)); return true;
    case FERRY_F64: return true;
    case FERRY_I32: return x == floor(x) && x >= -2147483648.0 && x <= 2147483647.0;
    case FERRY_I64:
        return x == floor(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0;
    case FERRY_I8: return x == floor(x) && x >= -128 && x <= 127;
    case FERRY_U8: return x == floor(x) && x >= 0 && x <= 255;
    case FERRY_BOOL: return x == 0 || x == 1;
    default: return false;
    }
}

static void store(ferry_dtype dt, void *base, int64_t i, double v)
{
    switch (dt) {
    case FERRY_F32: ((float *)base)[i] = (float)v; break;
    case FERRY_F64: ((double *)base)[i] = v; break;
    case FERRY_F16: ((uint16_t *)base)[i] = ferry_f32_to_f16((float)v); break;
    case FERRY_BF16: ((uint16_t *)base)[i] = ferry_f32_to_bf16((float)v); break;
    case FERRY_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case FERRY_I64: ((int64_t *)base)[i] = (int64_t)v; break;
    case FERRY_I8: ((int8_t *)base)[i] = (int8_t)v; break;
    case FERRY_U8: ((uint8_t *)base)[i] = (uint8_t)v; break;
    case FERRY_BOOL: ((uint8_t *)base)[i] = v != 0; break;
    default: break;
    }
}

/* Element i of little-endian binary data of datatype dt (unaligned). */
static double load(ferry_dtype dt, const unsigned char *p, int64_t i)
{
    size_t sz = ferry_dtype_size(dt);
    p += (size_t)i * sz;
    switch (dt) {
    case FERRY_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case FERRY_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case FERRY_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ferry_f16_to_f32(h);
    }
    case FERRY_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ferry_bf16_to_f32(h);
    }
    case FERRY_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case FERRY_I64: {
        int64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    case FERRY_I8: return (int8_t)*p;
    case FERRY_U8: return *p;
    case FERRY_BOOL: return *p != 0;
    default: return 0;
    }
}

/* Reading "data" into a model-dtype buffer. */
typedef struct fill {
    ferry_dtype req, dst;
    void *out;
    int64_t n, numel;
    const char *name;
    char *err;
    size_t errlen;
} fill;

static bool fill_value(fill *f, const cJSON *v)
{
    double x;
    if (cJSON_IsNumber(v))
        x = v->valuedouble;
    else if (cJSON_IsBool(v) && f->req == FERRY_BOOL)
        x = cJSON_IsTrue(v) ? 1 : 0;
    else {
        snprintf(f->err, f->errlen, "input '%s': element %lld of 'data' is not a number", f->name,
                 (long long)f->n);
        return false;
    }
    if (f->n >= f->numel) {
        snprintf(f->err, f->errlen,
                 "input '%s': 'data' has more than the %lld elements of its shape", f->name,
                 (long long)f->numel);
        return false;
    }
    if (!quantize(f->req, &x)) {
        snprintf(f->err, f->errlen, "input '%s': element %lld (%g) is not a valid %s", f->name,
                 (long long)f->n, x, kserve_dtype_name(f->req));
        return false;
    }
    store(f->dst, f->out, f->n++, x);
    return true;
}

/* Nested "data": the array at depth d must have shape[d] entries. */
static bool fill_nested(fill *f, const cJSON *a, const int64_t *shape, int ndim, int d)
{
    if (d == ndim)
        return fill_value(f, a);
    if (!cJSON_IsArray(a)) {
        snprintf(f->err, f->errlen, "input '%s': 'data' nests %d levels, shape has %d", f->name, d,
                 ndim);
        return false;
    }
    int64_t n = 0;
    for (const cJSON *c = a->child; c; c = c->next, n++)
        if (n < shape[d] && !fill_nested(f, c, shape, ndim, d + 1))
            return false;
    if (n != shape[d]) {
        snprintf(f->err, f->errlen,
                 "input '%s': 'data' has %lld entries at depth %d, shape says %lld", f->name,
                 (long long)n, d, (long long)shape[d]);
        return false;
    }
    return true;
}

static bool fill_data(fill *f, const cJSON *data, const int64_t *shape, int ndim)
{
    if (!cJSON_IsArray(data)) {
        snprintf(f->err, f->errlen, "input '%s': 'data' must be an array", f->name);
        return false;
    }
    if (ndim > 1 && data->child && cJSON_IsArray(data->child))
        return fill_nested(f, data, shape, ndim, 0);
    for (const cJSON *c = data->child; c; c = c->next)
        if (!fill_value(f, c))
            return false;
    if (f->n != f->numel) {
        snprintf(f->err, f->errlen, "input '%s': 'data' has %lld elements, shape needs %lld",
                 f->name, (long long)f->n, (long long)f->numel);
        return false;
    }
    return true;
}

/* ------------------------------------------------------- parse arena */

/*
 * cJSON allocates a node per JSON value, so an infer request of a few
 * hundred numbers costs a few hundred malloc/free pairs, more than parsing
 * them. While a handler parses a request, cJSON's allocations come from its
 * thread's arena instead (a bump pointer, reset per request); outside that
 * window, and when the arena is full, they fall through to malloc. free()
 * of an arena pointer is a no-op, so cJSON users elsewhere in the process,
 * whose pointers never lie in an arena, are unaffected.
 */
#define ARENA_BYTES ((size_t)512 << 10)

typedef struct parse_arena {
    char *buf;
    size_t used;
    bool active;
    unsigned long fallbacks; /* allocations that went to malloc while active */
} parse_arena;

static _Thread_local parse_arena tl_arena;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void *arena_malloc(size_t n)
{
    parse_arena *a = &tl_arena;
    if (a->active) {
        n = (n + 15) & ~(size_t)15;
        if (a->buf && n <= ARENA_BYTES - a->used) {
            void *p = a->buf + a->used;
            a->used += n;
            return p;
        }
        a->fallbacks++;
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    parse_arena *a = &tl_arena;
    if (a->buf && (char *)p >= a->buf && (char *)p < a->buf + ARENA_BYTES)
        return;
    free(p);
}

static void arena_thread_exit(void *buf)
{
    free(buf);
}

static void arena_init_once(void)
{
    pthread_key_create(&arena_key, arena_thread_exit);
    cJSON_Hooks hooks = {arena_malloc, arena_free};
    cJSON_InitHooks(&hooks);
}

void kserve_init(void)
{
    pthread_once(&arena_once, arena_init_once);
}

/* Parses with this thread's arena; *in_arena says whether every node came
 * from it (then the tree needs no cJSON_Delete: the next parse reuses it). */
static cJSON *arena_parse(const char *json, size_t len, const char **end, bool *in_arena)
{
    parse_arena *a = &tl_arena;
    if (!a->buf) {
        a->buf = malloc(ARENA_BYTES);
        if (a->buf)
            pthread_setspecific(arena_key, a->buf);
    }
    a->used = 0;
    a->fallbacks = 0;
    a->active = true;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, end, 0);
    a->active = false;
    *in_arena = a->fallbacks == 0;
    return root;
}

/* -------------------------------------------------------------- infer */

#define BAD(...)                                                                                   \
    do {                                                                                           \
        r->err_status = MHD_HTTP_BAD_REQUEST;                                                      \
        snprintf(r->err_msg, sizeof r->err_msg, __VA_ARGS__);                                      \
        goto out;                                                                                  \
    } while (0)

static void on_done(void *user, ferry_status st)
{
    srv_request *r = user;
    r->status = st;
    /* the last touch of r: once resumed, its thread may free it */
    MHD_resume_connection(r->conn);
}

static const cJSON *param(const cJSON *params, const char *key)
{
    return cJSON_IsObject(params) ? cJSON_GetObjectItemCaseSensitive(params, key) : NULL;
}

bool kserve_submit(srv_request *r)
{
    srv_model *m = r->model;
    bool suspended = false;
    cJSON *root = NULL;
    bool in_arena = false;
    /* per-input scratch: on the stack for the usual few inputs */
    enum { STACK_INPUTS = 8 };
    void *in_mem_s[STACK_INPUTS] = {0};
    ferry_tensor ins_s[STACK_INPUTS];
    bool given_s[STACK_INPUTS] = {0};
    bool small = m->n_in <= STACK_INPUTS;
    void **in_mem = small ? in_mem_s : calloc((size_t)m->n_in, sizeof *in_mem);
    ferry_tensor *ins = small ? ins_s : calloc((size_t)m->n_in, sizeof *ins);
    bool *given = small ? given_s : calloc((size_t)m->n_in, sizeof *given);
    if (!in_mem || !ins || !given) {
        r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        snprintf(r->err_msg, sizeof r->err_msg, "server out of memory");
        goto out;
    }

    size_t json_len = r->len;
    if (r->header_len >= 0) {
        if ((size_t)r->header_len > r->len)
            BAD("Inference-Header-Content-Length %lld exceeds the body's %zu bytes", r->header_len,
                r->len);
        json_len = (size_t)r->header_len;
    }
    if (json_len == 0)
        BAD("empty request body: expected an inference request JSON object");
    const char *end = NULL;
    root = arena_parse(r->body, json_len, &end, &in_arena);
    if (!root) {
        size_t at = end && end >= r->body ? (size_t)(end - r->body) : 0;
        BAD("malformed JSON in the request at byte %zu", at);
    }
    if (!cJSON_IsObject(root))
        BAD("the request must be a JSON object");
    while (end && end < r->body + json_len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < r->body + json_len)
        BAD("unexpected bytes after the JSON object at byte %zu%s", (size_t)(end - r->body),
            r->header_len < 0 ? " (binary data needs an Inference-Header-Content-Length header)"
                              : "");
    const unsigned char *bin = (const unsigned char *)r->body + json_len;
    size_t bin_len = r->len - json_len, bin_used = 0;

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        if (!cJSON_IsString(id))
            BAD("'id' must be a string");
        r->id = strdup(id->valuestring);
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (params && !cJSON_IsObject(params))
        BAD("'parameters' must be an object");
    ferry_request_opts opts = {0, 0};
    const cJSON *p = param(params, "timeout");
    if (p) {
        if (!cJSON_IsNumber(p) || p->valuedouble < 0)
            BAD("parameter 'timeout' must be a number of microseconds >= 0");
        opts.timeout_us = (int64_t)p->valuedouble;
    }
    p = param(params, "priority");
    if (p) {
        if (!cJSON_IsNumber(p) || p->valuedouble < 0)
            BAD("parameter 'priority' must be a number >= 0");
        opts.priority = (int)p->valuedouble;
    }
    bool bin_out_all = false;
    p = param(params, "binary_data_output");
    if (p) {
        if (!cJSON_IsBool(p))
            BAD("parameter 'binary_data_output' must be true or false");
        bin_out_all = cJSON_IsTrue(p);
    }

    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(inputs))
        BAD("the request needs an 'inputs' array");
    int64_t batch = -1;
    for (const cJSON *in = inputs->child; in; in = in->next) {
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(in, "name");
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(in, "datatype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(in, "shape");
        if (!cJSON_IsString(jn))
            BAD("every input needs a string 'name'");
        const char *name = jn->valuestring;
        int k = -1;
        for (int i = 0; i < m->n_in; i++)
            if (!strcmp(m->in[i].name, name))
                k = i;
        if (k < 0)
            BAD("unknown input '%.100s': model '%.100s' has input '%.100s'%s", name, m->name,
                m->in[0].name, m->n_in > 1 ? " and others" : "");
        if (given[k])
            BAD("input '%.100s' is given twice", name);
        given[k] = true;
        const ferry_tensor_info *mi = &m->in[k];
        if (!cJSON_IsString(jd))
            BAD("input '%.100s' needs a string 'datatype'", name);
        ferry_dtype req = dtype_parse(jd->valuestring);
        if (req == FERRY_DTYPE_UNDEFINED)
            BAD("input '%.100s': unknown datatype '%.40s' (FP32, FP16, BF16, FP64, INT32, "
                "INT64, INT8, UINT8, BOOL)",
                name, jd->valuestring);
        if (!cJSON_IsArray(js))
            BAD("input '%.100s' needs a 'shape' array", name);
        ferry_tensor *t = &ins[k];
        t->ndim = 0;
        for (const cJSON *c = js->child; c; c = c->next) {
            if (!cJSON_IsNumber(c) || c->valuedouble < 0 ||
                c->valuedouble != floor(c->valuedouble) || c->valuedouble > 1e15)
                BAD("input '%.100s': 'shape' must hold non-negative integers", name);
            if (t->ndim == FERRY_MAX_DIMS)
                BAD("input '%.100s': 'shape' has more than %d dimensions", name, FERRY_MAX_DIMS);
            t->shape[t->ndim++] = (int64_t)c->valuedouble;
        }
        bool shape_ok = t->ndim == mi->ndim && t->ndim >= 1;
        for (int d = 1; shape_ok && d < t->ndim; d++)
            shape_ok = t->shape[d] == mi->shape[d];
        if (!shape_ok) {
            char want[160];
            size_t o = 0;
            o += (size_t)snprintf(want + o, sizeof want - o, "[-1");
            for (int d = 1; d < mi->ndim && o < sizeof want; d++)
                o += (size_t)snprintf(want + o, sizeof want - o, ",%lld", (long long)mi->shape[d]);
            if (o < sizeof want)
                snprintf(want + o, sizeof want - o, "]");
            BAD("input '%.100s': shape does not match the model's %s", name, want);
        }
        if (t->shape[0] < 1)
            BAD("input '%.100s': the batch dimension must be >= 1", name);
        if (batch >= 0 && t->shape[0] != batch)
            BAD("input '%.100s': batch %lld differs from the other inputs' %lld", name,
                (long long)t->shape[0], (long long)batch);
        batch = t->shape[0];
        /* Bounds every allocation below: a shape is the client's word only. */
        if (batch > m->max_batch)
            BAD("input '%.100s': batch %lld is larger than the model's max batch %lld", name,
                (long long)batch, (long long)m->max_batch);
        int64_t numel = batch * m->in_sample_numel[k];
        t->dtype = mi->dtype;
        in_mem[k] = malloc((size_t)numel * ferry_dtype_size(mi->dtype) + 1);
        if (!in_mem[k]) {
            r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            snprintf(r->err_msg, sizeof r->err_msg, "server out of memory");
            goto out;
        }
        t->data = in_mem[k];

        const cJSON *ip = cJSON_GetObjectItemCaseSensitive(in, "parameters");
        const cJSON *bsz = param(ip, "binary_data_size");
        if (bsz) {
            size_t want = (size_t)numel * ferry_dtype_size(req);
            if (!cJSON_IsNumber(bsz) || bsz->valuedouble != (double)want)
                BAD("input '%.100s': binary_data_size must be %zu (%lld %s elements)", name, want,
                    (long long)numel, kserve_dtype_name(req));
            if (bin_len - bin_used < want)
                BAD("input '%.100s': binary data ends after %zu of its %zu bytes", name,
                    bin_len - bin_used, want);
            const unsigned char *src = bin + bin_used;
            bin_used += want;
            if (req == mi->dtype) {
                memcpy(in_mem[k], src, want);
            } else {
                for (int64_t i = 0; i < numel; i++) {
                    double x = load(req, src, i);
                    store(mi->dtype, in_mem[k], i, x);
                }
            }
        } else {
            const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
            if (!data)
                BAD("input '%.100s' has neither 'data' nor a binary_data_size parameter", name);
            fill f = {req, mi->dtype, in_mem[k], 0, numel, name, r->err_msg, sizeof r->err_msg};
            if (!fill_data(&f, data, t->shape, t->ndim)) {
                r->err_status = MHD_HTTP_BAD_REQUEST;
                goto out;
            }
        }
    }
    for (int i = 0; i < m->n_in; i++)
        if (!given[i])
            BAD("missing input '%.100s'", m->in[i].name);
    if (bin_used != bin_len)
        BAD("the body has %zu bytes after the JSON header, the inputs' binary_data_size "
            "account for %zu",
            bin_len, bin_used);

    /* outputs asked for, in order; all of them when none is named */
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs && !cJSON_IsArray(outs))
        BAD("'outputs' must be an array");
    int n_sel = outs ? cJSON_GetArraySize(outs) : m->n_out;
    if (outs && n_sel == 0)
        n_sel = m->n_out, outs = NULL;

    /* One block for the request's outputs: the tensor views, the selection,
     * then every output of the model (all are computed; the selected are
     * sent), 64-byte aligned. */
    size_t head = (size_t)m->n_out * sizeof(ferry_tensor) + (size_t)n_sel * sizeof(srv_out_sel);
    head = (head + 63) & ~(size_t)63;
    size_t total = head;
    for (int i = 0; i < m->n_out; i++)
        total +=
            ((size_t)(batch * m->out_sample_numel[i]) * ferry_dtype_size(m->out[i].dtype) + 63) &
            ~(size_t)63;
    r->out_mem = aligned_alloc(64, total);
    if (!r->out_mem) {
        r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        snprintf(r->err_msg, sizeof r->err_msg, "server out of memory");
        goto out;
    }
    r->outputs = r->out_mem;
    r->sel = (srv_out_sel *)(r->outputs + m->n_out);
    r->n_sel = n_sel;
    if (!outs) {
        for (int i = 0; i < n_sel; i++)
            r->sel[i] = (srv_out_sel){i, bin_out_all};
    } else {
        int i = 0;
        for (const cJSON *o = outs->child; o; o = o->next, i++) {
            const cJSON *on = cJSON_GetObjectItemCaseSensitive(o, "name");
            if (!cJSON_IsString(on))
                BAD("every requested output needs a string 'name'");
            int k = -1;
            for (int j = 0; j < m->n_out; j++)
                if (!strcmp(m->out[j].name, on->valuestring))
                    k = j;
            if (k < 0)
                BAD("unknown output '%.100s': model '%.100s' has output '%.100s'%s",
                    on->valuestring, m->name, m->out[0].name, m->n_out > 1 ? " and others" : "");
            bool b = bin_out_all;
            const cJSON *bd =
                param(cJSON_GetObjectItemCaseSensitive(o, "parameters"), "binary_data");
            if (bd) {
                if (!cJSON_IsBool(bd))
                    BAD("output '%.100s': parameter 'binary_data' must be true or false",
                        on->valuestring);
                b = cJSON_IsTrue(bd);
            }
            r->sel[i] = (srv_out_sel){k, b};
        }
    }

    char *o = (char *)r->out_mem + head;
    for (int i = 0; i < m->n_out; i++) {
        ferry_tensor *t = &r->outputs[i];
        t->dtype = m->out[i].dtype;
        t->ndim = m->out[i].ndim;
        memcpy(t->shape, m->out[i].shape, sizeof t->shape);
        t->shape[0] = batch;
        t->data = o;
        o += ((size_t)(batch * m->out_sample_numel[i]) * ferry_dtype_size(t->dtype) + 63) &
             ~(size_t)63;
    }
    r->batch = batch;

    /* Suspend before submitting: the callback may run (and resume) before
     * this thread returns to MHD, and resuming must follow suspending. */
    MHD_suspend_connection(r->conn);
    suspended = true;
    r->submitted = true;
    ferry_status st =
        ferry_batcher_submit(m->batcher, ins, m->n_in, r->outputs, m->n_out, &opts, on_done, r);
    if (st != FERRY_OK) {
        /* cb will not run: answer from the resumed call with this error */
        r->submitted = false;
        if (st == FERRY_EBUSY)
            r->err_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        else if (st == FERRY_ESHUTDOWN)
            r->err_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        else if (st == FERRY_EINVAL || st == FERRY_ESHAPE || st == FERRY_EDTYPE)
            r->err_status = MHD_HTTP_BAD_REQUEST;
        else
            r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        if (st == FERRY_EBUSY)
            snprintf(r->err_msg, sizeof r->err_msg,
                     "model '%.100s' queue is full (--max-queue); retry later", m->name);
        else
            snprintf(r->err_msg, sizeof r->err_msg, "%s", ferry_last_error());
        srv_request_release_infer(r);
        MHD_resume_connection(r->conn);
    }
out:
    if (!in_arena)
        cJSON_Delete(root);
    if (in_mem)
        for (int i = 0; i < m->n_in; i++)
            free(in_mem[i]);
    if (!small) {
        free(in_mem);
        free(ins);
        free(given);
    }
    return suspended;
}

static void write_data(jsonw *w, const ferry_tensor *t, int64_t n)
{
    jsonw_char(w, '[');
    /* 16 characters is the longest number jsonw writes, plus a comma, and
     * jsonw_f32 wants 32 bytes of room */
    if (!jsonw_reserve(w, (size_t)n * 17 + 32))
        return;
    for (int64_t i = 0; i < n; i++) {
        if (i)
            w->buf[w->len++] = ',';
        switch (t->dtype) {
        case FERRY_F32: jsonw_f32(w, ((const float *)t->data)[i]); break;
        case FERRY_F16: jsonw_f32(w, ferry_f16_to_f32(((const uint16_t *)t->data)[i])); break;
        case FERRY_BF16: jsonw_f32(w, ferry_bf16_to_f32(((const uint16_t *)t->data)[i])); break;
        case FERRY_F64: jsonw_f64(w, ((const double *)t->data)[i]); break;
        case FERRY_I32: jsonw_i64(w, ((const int32_t *)t->data)[i]); break;
        case FERRY_I64: jsonw_i64(w, ((const int64_t *)t->data)[i]); break;
        case FERRY_I8: jsonw_i64(w, ((const int8_t *)t->data)[i]); break;
        case FERRY_U8: jsonw_i64(w, ((const uint8_t *)t->data)[i]); break;
        case FERRY_BOOL: jsonw_str_raw(w, ((const uint8_t *)t->data)[i] ? "true" : "false"); break;
        default: jsonw_str_raw(w, "null"); break;
        }
    }
    jsonw_char(w, ']');
}

void kserve_infer_response(srv_request *r, jsonw *w, unsigned *status, size_t *json_len,
                           bool *binary)
{
    srv_model *m = r->model;
    *binary = false;
    if (r->status != FERRY_OK) {
        const char *msg;
        switch (r->status) {
        case FERRY_ETIMEDOUT:
            *status = MHD_HTTP_GATEWAY_TIMEOUT;
            msg = "request timed out before it could run (timeout parameter or --timeout-us)";
            break;
        case FERRY_EBUSY:
            *status = MHD_HTTP_SERVICE_UNAVAILABLE;
            msg = "model queue is full; retry later";
            break;
        case FERRY_ESHUTDOWN:
            *status = MHD_HTTP_SERVICE_UNAVAILABLE;
            msg = "server is shutting down; the request did not run";
            break;
        default:
            *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            msg = NULL;
            break;
        }
        jsonw_str_raw(w, "{\"error\":");
        if (msg) {
            jsonw_str(w, msg);
        } else {
            char tmp[128];
            snprintf(tmp, sizeof tmp, "inference failed: %s", ferry_status_str(r->status));
            jsonw_str(w, tmp);
        }
        jsonw_char(w, '}');
        *json_len = w->len;
        return;
    }
    *status = MHD_HTTP_OK;
    size_t need = 256 + strlen(m->name) + (r->id ? 2 * strlen(r->id) : 0);
    for (int s = 0; s < r->n_sel; s++) {
        const ferry_tensor *t = &r->outputs[r->sel[s].index];
        size_t n = (size_t)ferry_tensor_numel(t);
        need += 128 + (r->sel[s].binary ? n * ferry_dtype_size(t->dtype) : n * 17 + 32);
    }
    jsonw_reserve(w, need);
    jsonw_str_raw(w, "{\"model_name\":");
    jsonw_str(w, m->name);
    jsonw_str_raw(w, ",\"model_version\":");
    jsonw_str(w, m->version);
    if (r->id) {
        jsonw_str_raw(w, ",\"id\":");
        jsonw_str(w, r->id);
    }
    jsonw_str_raw(w, ",\"outputs\":[");
    for (int s = 0; s < r->n_sel; s++) {
        const ferry_tensor *t = &r->outputs[r->sel[s].index];
        int64_t n = ferry_tensor_numel(t);
        if (s)
            jsonw_char(w, ',');
        jsonw_str_raw(w, "{\"name\":");
        jsonw_str(w, m->out[r->sel[s].index].name);
        jsonw_str_raw(w, ",\"datatype\":\"");
        jsonw_str_raw(w, kserve_dtype_name(t->dtype));
        jsonw_str_raw(w, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                jsonw_char(w, ',');
            jsonw_i64(w, t->shape[d]);
        }
        jsonw_char(w, ']');
        if (r->sel[s].binary) {
            *binary = true;
            jsonw_str_raw(w, ",\"parameters\":{\"binary_data_size\":");
            jsonw_u64(w, (uint64_t)n * ferry_dtype_size(t->dtype));
            jsonw_char(w, '}');
        } else {
            jsonw_str_raw(w, ",\"data\":");
            write_data(w, t, n);
        }
        jsonw_char(w, '}');
    }
    jsonw_str_raw(w, "]}");
    *json_len = w->len;
    for (int s = 0; s < r->n_sel; s++) {
        if (!r->sel[s].binary)
            continue;
        const ferry_tensor *t = &r->outputs[r->sel[s].index];
        jsonw_mem(w, t->data, (size_t)ferry_tensor_numel(t) * ferry_dtype_size(t->dtype));
    }
}
