/*
 * kserve.c - the KServe v2 / Open Inference Protocol documents: server and
 * model metadata, and the infer request and response, with Triton's binary
 * tensor data extension (binary_data_size on inputs, binary_data on
 * requested outputs, binary_data_output on the request, the JSON part's
 * length in Inference-Header-Content-Length).
 *
 * A request tensor's datatype must be the model input's, as in Triton,
 * which refuses others with the message kserve_submit copies. With
 * convert_datatypes set (ferry serve --convert-datatypes), any numeric
 * datatype this file knows is converted to the model input's dtype (after
 * rounding to the datatype the client named, so FP16 data means what FP16
 * means). Responses carry the model output's dtype.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/kserve_parse.h"
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

/* ------------------------------------------------------------- metadata */

/* The protocol extensions the server honours, by Triton's names: the one
 * place where they are listed (the server metadata's "extensions").
 *   binary_tensor_data: binary_data_size, binary_data, binary_data_output
 *     and Inference-Header-Content-Length (kserve.c).
 *   schedule_policy: the request parameters "priority" (1 highest, 0 the
 *     default level; --priority-levels) and "timeout" (microseconds). */
static const char *const kserve_extensions[] = {
    "binary_tensor_data",
    "schedule_policy",
};

void kserve_server_metadata(ferry_server *s, jsonw *w)
{
    jsonw_str_raw(w, "{\"name\":\"ferry\",\"version\":\"" FERRY_VERSION "\",\"extensions\":[");
    for (size_t i = 0; i < sizeof kserve_extensions / sizeof *kserve_extensions; i++) {
        if (i)
            jsonw_char(w, ',');
        jsonw_str(w, kserve_extensions[i]);
    }
    if (s->repo) /* the repository extension (repo.c) */
        jsonw_str_raw(w, ",\"model_repository\"");
    jsonw_str_raw(w, "]}");
}

/* Bytes of output i for a request of batch samples; with length buckets,
 * per-token outputs at the request's length (length < 0: none given). */
static size_t out_bytes(const srv_model *m, int i, int64_t batch, int64_t length)
{
    int64_t n = batch * m->out_sample_numel[i];
    int d = ferry_model_length_dim(m->model, 1, i);
    if (d && length >= 0)
        n = n / m->out[i].shape[d] * length;
    return (size_t)n * ferry_dtype_size(m->out[i].dtype);
}

static void tensor_meta(jsonw *w, const ferry_tensor_info *t, int len_dim)
{
    jsonw_str_raw(w, "{\"name\":");
    jsonw_str(w, t->name);
    jsonw_str_raw(w, ",\"datatype\":\"");
    jsonw_str_raw(w, kserve_dtype_name(t->dtype));
    jsonw_str_raw(w, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
        if (d)
            jsonw_char(w, ',');
        jsonw_i64(w, d == 0 || d == len_dim ? -1 : t->shape[d]);
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
    /* the protocol's <project>_<format> name for an ONNX model */
    jsonw_str_raw(w, "],\"platform\":\"onnx_onnxv1\",\"inputs\":[");
    for (int i = 0; i < m->n_in; i++) {
        if (i)
            jsonw_char(w, ',');
        tensor_meta(w, &m->in[i], ferry_model_length_dim(m->model, 0, i));
    }
    jsonw_str_raw(w, "],\"outputs\":[");
    for (int i = 0; i < m->n_out; i++) {
        if (i)
            jsonw_char(w, ',');
        tensor_meta(w, &m->out[i], ferry_model_length_dim(m->model, 1, i));
    }
    jsonw_str_raw(w, "]");
    /* A model on several devices: each one and whether it still serves (a
     * device error takes one out, engine.c). Not a field of the protocol's
     * metadata; clients ignore it. */
    int nd = ferry_engine_num_devices(m->engine);
    if (nd > 1) {
        jsonw_str_raw(w, ",\"parameters\":{\"devices\":[");
        for (int k = 0; k < nd; k++) {
            jsonw_str_raw(w, k ? ",{\"name\":" : "{\"name\":");
            jsonw_str(w, ferry_engine_device_at(m->engine, k));
            jsonw_str_raw(w, ferry_engine_device_ok(m->engine, k) ? ",\"ready\":true}"
                                                                  : ",\"ready\":false}");
        }
        jsonw_str_raw(w, "]}");
    }
    jsonw_char(w, '}');
}

/* ------------------------------------------------------ element access */

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

/* -------------------------------------------------------------- infer */

#define BAD(...)                                                                                   \
    do {                                                                                           \
        r->err_status = MHD_HTTP_BAD_REQUEST;                                                      \
        snprintf(r->err_msg, sizeof r->err_msg, __VA_ARGS__);                                      \
        goto out;                                                                                  \
    } while (0)
#define OOM()                                                                                      \
    do {                                                                                           \
        r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;                                            \
        snprintf(r->err_msg, sizeof r->err_msg, "server out of memory");                           \
        goto out;                                                                                  \
    } while (0)

static void on_done(void *user, ferry_status st)
{
    srv_request *r = user;
    r->status = st;
    /* the engine's reason, for the answer and the log: with source
     * locations only for a verbose log; for every failure but the
     * rejections, whose answers say what happened (an index out of range
     * in a request's ids fails with FERRY_EINVAL and must say which) */
    if (st != FERRY_OK && srv_outcome_of(st) != SRV_REJECTED) {
        if (r->srv->cfg.log_level >= FERRY_LOG_VERBOSE)
            snprintf(r->err_msg, sizeof r->err_msg, "%s", ferry_last_error());
        else
            ferry_error_for_users(ferry_last_error(), r->err_msg, sizeof r->err_msg);
    }
    /* counted here, where the outcome is known: once resumed, MHD may find
     * the client gone and close the connection without calling us again */
    srv_request_count(r, srv_outcome_of(st));
    srv_request_resume(r); /* the last touch of r */
}

/* A name from the request, for a message: at most 100 bytes (jsonw_str
 * makes whatever bytes they are valid JSON). */
#define NAME(v) (int)((v).n > 100 ? 100 : (v).n), (v).s

static bool name_is(const kreq_val *v, const char *name)
{
    return v->kind == KREQ_STRING && strlen(name) == v->n && !memcmp(v->s, name, v->n);
}

/* A request parameter that must be a whole number in 0..max: *out, or
 * false with a 400 that names it and the value given. A cast would be
 * undefined past the type's range and would silently truncate 0.5 to 0. */
static bool param_int(srv_request *r, const kreq_val *v, const char *name, const char *unit,
                      int64_t max, int64_t *out)
{
    bool number = v->kind == KREQ_NUMBER;
    if (number && v->num >= 0 && v->num <= (double)max && v->num == floor(v->num)) {
        *out = (int64_t)v->num;
        return true;
    }
    char want[96], got[48] = "";
    snprintf(want, sizeof want, "an integer%s%s in 0..%lld", *unit ? " of " : "", unit,
             (long long)max);
    if (number && v->num == floor(v->num) && fabs(v->num) < 9e15)
        snprintf(got, sizeof got, " is %.0f: it", v->num); /* every digit, as written */
    else if (number)
        snprintf(got, sizeof got, " is %.15g: it", v->num);
    r->err_status = MHD_HTTP_BAD_REQUEST;
    snprintf(r->err_msg, sizeof r->err_msg, "parameter '%s'%s must be %s", name, got, want);
    return false;
}

bool kserve_submit(srv_request *r)
{
    srv_model *m = r->model;
    bool suspended = false;
    kreq q;
    bool parsed = false;
    /* per-input scratch: on the stack for the usual few inputs */
    enum { STACK_INPUTS = 8 };
    void *in_mem_s[STACK_INPUTS] = {0};
    ferry_tensor ins_s[STACK_INPUTS];
    bool given_s[STACK_INPUTS] = {0};
    bool small = m->n_in <= STACK_INPUTS;
    void **in_mem = small ? in_mem_s : calloc((size_t)m->n_in, sizeof *in_mem);
    ferry_tensor *ins = small ? ins_s : calloc((size_t)m->n_in, sizeof *ins);
    bool *given = small ? given_s : calloc((size_t)m->n_in, sizeof *given);
    if (!in_mem || !ins || !given)
        OOM();

    size_t json_len = r->len;
    if (r->header_len >= 0) {
        if ((size_t)r->header_len > r->len)
            BAD("Inference-Header-Content-Length %lld exceeds the body's %zu bytes", r->header_len,
                r->len);
        json_len = (size_t)r->header_len;
    }
    if (json_len == 0)
        BAD("empty request body: expected an inference request JSON object");
    kreq_model km = {m, in_mem};
    parsed = true;
    if (!kreq_parse(&q, r->body, json_len, &km)) {
        if (q.oom)
            OOM();
        if (q.dup_key.kind)
            BAD("duplicate key '%.*s'", NAME(q.dup_key));
        BAD("malformed JSON in the request at byte %zu: expected %s", q.err_at, q.err_what);
    }
    if (!q.is_object)
        BAD("the request must be a JSON object");
    const char *end = r->body + q.value_end;
    while (end < r->body + json_len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end < r->body + json_len)
        BAD("unexpected bytes after the JSON object at byte %zu%s", (size_t)(end - r->body),
            r->header_len < 0 ? " (binary data needs an Inference-Header-Content-Length header)"
                              : "");
    const unsigned char *bin = (const unsigned char *)r->body + json_len;
    size_t bin_len = r->len - json_len, bin_used = 0;

    if (q.id.kind) {
        if (q.id.kind != KREQ_STRING)
            BAD("'id' must be a string");
        /* with its NULs, if any: the client gets back what it sent */
        r->id = malloc(q.id.n + 1);
        if (!r->id)
            OOM();
        memcpy(r->id, q.id.s, q.id.n);
        r->id_n = q.id.n;
    }
    if (q.params.kind && q.params.kind != KREQ_OBJECT)
        BAD("'parameters' must be an object");
    ferry_request_opts opts = {0, 0};
    int64_t v;
    /* the bound of --timeout-us */
    if (q.timeout.kind && !param_int(r, &q.timeout, "timeout", "microseconds", 1ll << 50, &v))
        goto out;
    opts.timeout_us = q.timeout.kind ? v : 0;
    /* Triton's schedule_policy priority: 1 is the model's highest level, N
     * its lowest, 0 (or none) its default level. The batcher counts the
     * other way (its level N-1 goes first). Triton quietly treats a value
     * past N as the default; a client that asks for a level that does not
     * exist is told instead. */
    int levels = m->prio_levels;
    if (q.priority.kind && !param_int(r, &q.priority, "priority", "", INT_MAX, &v))
        goto out;
    if (q.priority.kind && v > levels)
        BAD("parameter 'priority' is %lld: model '%.100s' has %d priority level%s (1 is the "
            "highest, 0 the default, %d)%s",
            (long long)v, m->name, levels, levels == 1 ? "" : "s", levels - m->prio_default,
            levels == 1 ? "; ferry serve --priority-levels N enables more" : "");
    opts.priority = q.priority.kind && v > 0 ? levels - (int)v : m->prio_default;
    bool bin_out_all = false;
    if (q.binary_data_output.kind) {
        if (q.binary_data_output.kind != KREQ_BOOL)
            BAD("parameter 'binary_data_output' must be true or false");
        bin_out_all = q.binary_data_output.b;
    }

    if (q.inputs_kind != KREQ_ARRAY)
        BAD("the request needs an 'inputs' array");
    int64_t batch = -1, length = -1;
    for (int j = 0; j < q.n_in; j++) {
        const kreq_input *in = &q.in[j];
        if (in->name.kind != KREQ_STRING)
            BAD("every input needs a string 'name'");
        int k = -1;
        for (int i = 0; i < m->n_in; i++)
            if (name_is(&in->name, m->in[i].name))
                k = i;
        if (k < 0)
            BAD("unknown input '%.*s': model '%.100s' has input '%.100s'%s", NAME(in->name),
                m->name, m->in[0].name, m->n_in > 1 ? " and others" : "");
        if (given[k])
            BAD("input '%.*s' is given twice", NAME(in->name));
        given[k] = true;
        const ferry_tensor_info *mi = &m->in[k];
        if (in->datatype.kind != KREQ_STRING)
            BAD("input '%.*s' needs a string 'datatype'", NAME(in->name));
        ferry_dtype req = kreq_dtype(in->datatype.s, in->datatype.n);
        if (req == FERRY_DTYPE_UNDEFINED)
            BAD("input '%.*s': unknown datatype '%.*s' (FP32, FP16, BF16, FP64, INT32, "
                "INT64, INT8, UINT8, BOOL)",
                NAME(in->name), (int)(in->datatype.n > 40 ? 40 : in->datatype.n), in->datatype.s);
        if (req != mi->dtype && !r->srv->cfg.convert_datatypes) /* Triton's words */
            BAD("inference input '%.*s' data-type is '%s', but model '%.100s' expects '%s'",
                NAME(in->name), kserve_dtype_name(req), m->name, kserve_dtype_name(mi->dtype));
        if (in->shape_kind != KREQ_ARRAY)
            BAD("input '%.*s' needs a 'shape' array", NAME(in->name));
        if (in->shape_err == KREQ_SHAPE_BAD_DIM)
            BAD("input '%.*s': 'shape' must hold non-negative integers", NAME(in->name));
        if (in->shape_err == KREQ_SHAPE_TOO_LONG)
            BAD("input '%.*s': 'shape' has more than %d dimensions", NAME(in->name),
                FERRY_MAX_DIMS);
        ferry_tensor *t = &ins[k];
        t->ndim = in->ndim;
        memcpy(t->shape, in->shape, sizeof t->shape);
        /* a model with length buckets takes any length up to its longest */
        int len_dim = ferry_model_length_dim(m->model, 0, k);
        bool shape_ok = t->ndim == mi->ndim && t->ndim >= 1;
        for (int d = 1; shape_ok && d < t->ndim; d++)
            shape_ok = t->shape[d] == mi->shape[d] || d == len_dim;
        if (shape_ok && len_dim && t->shape[len_dim] > mi->shape[len_dim])
            BAD("input '%.*s' has length %lld, longer than the longest length bucket (%lld; "
                "see --length-buckets)",
                NAME(in->name), (long long)t->shape[len_dim], (long long)mi->shape[len_dim]);
        if (!shape_ok) {
            char want[160];
            size_t o = 0;
            o += (size_t)snprintf(want + o, sizeof want - o, "[-1");
            for (int d = 1; d < mi->ndim && o < sizeof want; d++)
                o += (size_t)snprintf(want + o, sizeof want - o, ",%lld",
                                      (long long)(d == len_dim ? -1 : mi->shape[d]));
            if (o < sizeof want)
                snprintf(want + o, sizeof want - o, "]");
            BAD("input '%.*s': shape does not match the model's %s", NAME(in->name), want);
        }
        if (t->shape[0] < 1)
            BAD("input '%.*s': the batch dimension must be >= 1", NAME(in->name));
        if (batch >= 0 && t->shape[0] != batch)
            BAD("input '%.*s': batch %lld differs from the other inputs' %lld", NAME(in->name),
                (long long)t->shape[0], (long long)batch);
        batch = t->shape[0];
        /* Bounds every allocation below: a shape is the client's word only. */
        if (batch > m->max_batch)
            BAD("input '%.*s': batch %lld is larger than the model's max batch %lld",
                NAME(in->name), (long long)batch, (long long)m->max_batch);
        int64_t numel = batch * m->in_sample_numel[k];
        if (len_dim) { /* per sample: the longest bucket's, cut to this length */
            numel = numel / mi->shape[len_dim] * t->shape[len_dim];
            if (length < 0)
                length = t->shape[len_dim];
        }
        t->dtype = mi->dtype;
        if (in->decoded_into != k) {
            /* not decoded while parsing (or for another input of this name) */
            free(in_mem[k]);
            in_mem[k] = malloc((size_t)numel * ferry_dtype_size(mi->dtype) + 1);
            if (!in_mem[k])
                OOM();
        }
        t->data = in_mem[k];

        const kreq_val *bsz = &in->binary_data_size;
        if (bsz->kind && in->data)
            BAD("input '%.*s' has both 'data' and a binary_data_size parameter: send one",
                NAME(in->name));
        if (bsz->kind) {
            size_t want = (size_t)numel * ferry_dtype_size(req);
            if (bsz->kind != KREQ_NUMBER || bsz->num != (double)want)
                BAD("input '%.*s': binary_data_size must be %zu (%lld %s elements)", NAME(in->name),
                    want, (long long)numel, kserve_dtype_name(req));
            if (bin_len - bin_used < want)
                BAD("input '%.*s': binary data ends after %zu of its %zu bytes", NAME(in->name),
                    bin_len - bin_used, want);
            const unsigned char *src = bin + bin_used;
            bin_used += want;
            if (req == mi->dtype) {
                memcpy(in_mem[k], src, want);
            } else {
                for (int64_t i = 0; i < numel; i++) {
                    double x = load(req, src, i);
                    kserve_fit fit = kserve_store(mi->dtype, in_mem[k], i, x);
                    if (fit)
                        BAD("input '%.*s': element %lld (%g) is %s %s", NAME(in->name),
                            (long long)i, x,
                            fit == KSERVE_FIT_RANGE ? "out of range for" : "not a valid",
                            kserve_dtype_name(mi->dtype));
                }
            }
        } else if (in->decoded_into != k) {
            if (!in->data)
                BAD("input '%.*s' has neither 'data' nor a binary_data_size parameter",
                    NAME(in->name));
            if (!kreq_fill(&q, in, req, mi->dtype, in_mem[k], numel, t->shape, t->ndim, r->err_msg,
                           sizeof r->err_msg)) {
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
    if (q.outputs_kind && q.outputs_kind != KREQ_ARRAY)
        BAD("'outputs' must be an array");
    bool outs = q.outputs_kind && q.n_out > 0;
    int n_sel = outs ? q.n_out : m->n_out;

    /* One block for the request's outputs: the tensor views, the selection,
     * then every output of the model (all are computed; the selected are
     * sent), 64-byte aligned. */
    size_t head = (size_t)m->n_out * sizeof(ferry_tensor) + (size_t)n_sel * sizeof(srv_out_sel);
    head = (head + 63) & ~(size_t)63;
    size_t total = head;
    for (int i = 0; i < m->n_out; i++)
        total += (out_bytes(m, i, batch, length) + 63) & ~(size_t)63;
    r->out_mem = aligned_alloc(64, total);
    if (!r->out_mem)
        OOM();
    r->outputs = r->out_mem;
    r->sel = (srv_out_sel *)(r->outputs + m->n_out);
    r->n_sel = n_sel;
    if (!outs) {
        for (int i = 0; i < n_sel; i++)
            r->sel[i] = (srv_out_sel){i, bin_out_all};
    } else {
        for (int i = 0; i < q.n_out; i++) {
            const kreq_output *o = &q.out[i];
            if (o->name.kind != KREQ_STRING)
                BAD("every requested output needs a string 'name'");
            int k = -1;
            for (int j = 0; j < m->n_out; j++)
                if (name_is(&o->name, m->out[j].name))
                    k = j;
            if (k < 0)
                BAD("unknown output '%.*s': model '%.100s' has output '%.100s'%s", NAME(o->name),
                    m->name, m->out[0].name, m->n_out > 1 ? " and others" : "");
            bool b = bin_out_all;
            if (o->binary_data.kind) {
                if (o->binary_data.kind != KREQ_BOOL)
                    BAD("output '%.*s': parameter 'binary_data' must be true or false",
                        NAME(o->name));
                b = o->binary_data.b;
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
        int len_dim = ferry_model_length_dim(m->model, 1, i);
        if (len_dim && length >= 0)
            t->shape[len_dim] = length;
        t->data = o;
        o += (out_bytes(m, i, batch, length) + 63) & ~(size_t)63;
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
        srv_request_count(r, srv_outcome_of(st));
        srv_request_resume(r);
    }
out:
    if (parsed)
        kreq_free(&q);
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
        if (msg) {
            snprintf(r->err_msg, sizeof r->err_msg, "%s", msg);
        } else { /* the engine's reason, from on_done */
            char why[sizeof r->err_msg];
            snprintf(why, sizeof why, "%s", r->err_msg);
            snprintf(r->err_msg, sizeof r->err_msg, "inference failed (%s)%s%.400s",
                     ferry_status_str(r->status), why[0] ? ": " : "", why);
        }
        jsonw_str_raw(w, "{\"error\":");
        jsonw_str(w, r->err_msg);
        jsonw_char(w, '}');
        *json_len = w->len;
        return;
    }
    *status = MHD_HTTP_OK;
    size_t need = 256 + strlen(m->name) + 2 * r->id_n;
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
        jsonw_strn(w, r->id, r->id_n);
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
