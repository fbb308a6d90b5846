/*
 * model_config.c - config.pbtxt's meaning for Ferry (see model_config.h).
 *
 * Applied:  max_batch_size; dynamic_batching's max_queue_delay_microseconds,
 *           preferred_batch_size, priority_levels, default_priority_level,
 *           default_queue_policy's
 *           default_timeout_microseconds and max_queue_size;
 *           instance_group's count (summed: the engine's workers);
 *           version_policy; default_model_filename.
 * Checked:  name (the directory's), platform and backend (ONNX ones).
 * Reported: everything else, once per field, as not applied.
 */
#include "server/model_config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pbtxt.h"

typedef struct mc_ctx {
    const char *name;
    model_config *mc;
    mc_warn_fn warn;
    void *user;
    char *err;
    size_t errlen;
    /* fields already reported, so that each is reported once */
    char seen[32][80];
    int n_seen;
} mc_ctx;

static bool bad(mc_ctx *c, const pbtxt_field *f, const char *fmt, ...)
{
    int n = snprintf(c->err, c->errlen, "line %d: ", f->line);
    if (n < 0 || (size_t)n >= c->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static void ignored(mc_ctx *c, const char *prefix, const char *field, const char *why)
{
    char path[80];
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", field);
    for (int i = 0; i < c->n_seen; i++)
        if (!strcmp(c->seen[i], path))
            return;
    if (c->n_seen < (int)(sizeof c->seen / sizeof c->seen[0]))
        snprintf(c->seen[c->n_seen++], sizeof c->seen[0], "%s", path);
    if (c->warn)
        c->warn(c->user, path, why);
}

/* The value as a user wrote it, for messages: bounded, printable. */
static const char *shown(const pbtxt_field *f, char *buf, size_t n)
{
    if (f->kind == PBTXT_MESSAGE)
        return "a message";
    size_t k = 0;
    for (size_t i = 0; i < f->len && k + 2 < n && i < 40; i++) {
        unsigned char ch = (unsigned char)f->text[i];
        buf[k++] = ch >= 32 && ch < 127 ? (char)ch : '?';
    }
    buf[k] = '\0';
    return buf;
}

static bool get_int(mc_ctx *c, const pbtxt_field *f, const char *path, long long lo, long long hi,
                    long long *out)
{
    char b[48];
    if (f->kind == PBTXT_NUMBER) {
        char *end;
        errno = 0;
        long long v = strtoll(f->text, &end, 0);
        if (!errno && end != f->text && !*end && v >= lo && v <= hi) {
            *out = v;
            return true;
        }
    }
    return bad(c, f, "%s: expected an integer in %lld..%lld, got '%s'", path, lo, hi,
               shown(f, b, sizeof b));
}

static bool get_bool(mc_ctx *c, const pbtxt_field *f, const char *path, bool *out)
{
    static const char *const yes[] = {"true", "True", "t", "1"}, *const no[] = {"false", "False",
                                                                                "f", "0"};
    for (int i = 0; i < 4; i++) {
        if (f->kind != PBTXT_STRING && f->kind != PBTXT_MESSAGE && !strcmp(f->text, yes[i])) {
            *out = true;
            return true;
        }
        if (f->kind != PBTXT_STRING && f->kind != PBTXT_MESSAGE && !strcmp(f->text, no[i])) {
            *out = false;
            return true;
        }
    }
    char b[48];
    return bad(c, f, "%s: expected true or false, got '%s'", path, shown(f, b, sizeof b));
}

/* A string field: no NULs, fits out. */
static bool get_str(mc_ctx *c, const pbtxt_field *f, const char *path, char *out, size_t n)
{
    if (f->kind != PBTXT_STRING)
        return bad(c, f, "%s: expected a quoted string", path);
    if (strlen(f->text) != f->len || f->len >= n)
        return bad(c, f, "%s: the string holds a NUL or is longer than %zu bytes", path, n - 1);
    memcpy(out, f->text, f->len + 1);
    return true;
}

static bool want_msg(mc_ctx *c, const pbtxt_field *f, const char *path)
{
    if (f->kind != PBTXT_MESSAGE)
        return bad(c, f, "%s: expected a message ('{ ... }')", path);
    return true;
}

/* A non-repeated field given twice is an error, as protobuf's parser has
 * it: which one was meant? (Only for fields read here: one not read may be
 * a repeated one.) */
static bool once(mc_ctx *c, const pbtxt_msg *m, int i, const char *path)
{
    for (int k = 0; k < i; k++)
        if (!strcmp(m->fields[k].name, m->fields[i].name))
            return bad(c, &m->fields[i], "%s is given more than once", path);
    return true;
}

static const char *const queue_fields[] = {"timeout_action", "default_timeout_microseconds",
                                           "max_queue_size", "allow_timeout_override", NULL};
static const char *const batching_fields[] = {"max_queue_delay_microseconds", "priority_levels",
                                              "default_priority_level", "default_queue_policy",
                                              NULL};
static const char *const top_fields[] = {"name",
                                         "platform",
                                         "backend",
                                         "max_batch_size",
                                         "version_policy",
                                         "default_model_filename",
                                         "dynamic_batching",
                                         NULL};

static bool is_one_of(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return true;
    return false;
}

static bool read_queue_policy(mc_ctx *c, const pbtxt_msg *m)
{
    static const char *pre = "dynamic_batching.default_queue_policy";
    for (int i = 0; i < m->n; i++) {
        const pbtxt_field *f = &m->fields[i];
        char path[96];
        snprintf(path, sizeof path, "%s.%s", pre, f->name);
        long long v;
        if (is_one_of(f->name, queue_fields) && !once(c, m, i, path))
            return false;
        if (!strcmp(f->name, "timeout_action")) {
            if (f->kind == PBTXT_MESSAGE || f->kind == PBTXT_STRING ||
                (strcmp(f->text, "REJECT") && strcmp(f->text, "DELAY") && strcmp(f->text, "0") &&
                 strcmp(f->text, "1")))
                return bad(c, f, "%s: expected REJECT or DELAY", path);
            if (!strcmp(f->text, "DELAY") || !strcmp(f->text, "1"))
                ignored(c, pre, f->name,
                        "DELAY is not applied: a request past its timeout is answered 504");
        } else if (!strcmp(f->name, "default_timeout_microseconds")) {
            if (!get_int(c, f, path, 0, 1ll << 50, &v))
                return false;
            c->mc->has_timeout = true;
            c->mc->default_timeout_us = v;
        } else if (!strcmp(f->name, "max_queue_size")) {
            if (!get_int(c, f, path, 0, 1 << 30, &v))
                return false;
            if (v > 0) { /* 0: Triton's unlimited, Ferry's default bound */
                c->mc->has_max_queue = true;
                c->mc->max_queue = (int)v;
            }
        } else if (!strcmp(f->name, "allow_timeout_override")) {
            bool b = true;
            if (!get_bool(c, f, path, &b))
                return false;
            if (!b)
                ignored(c, pre, f->name,
                        "false is not applied: a request's own timeout parameter is honoured");
        } else {
            ignored(c, pre, f->name, "not applied");
        }
    }
    return true;
}

static bool read_dynamic_batching(mc_ctx *c, const pbtxt_msg *m)
{
    static const char *pre = "dynamic_batching";
    for (int i = 0; i < m->n; i++) {
        const pbtxt_field *f = &m->fields[i];
        char path[96];
        snprintf(path, sizeof path, "%s.%s", pre, f->name);
        long long v;
        if (!strcmp(f->name, "preferred_batch_size")) {
            if (!get_int(c, f, path, 1, 1 << 20, &v))
                return false;
            if (c->mc->n_preferred == FERRY_MAX_PREFERRED)
                return bad(c, f, "%s: more than %d sizes", path, FERRY_MAX_PREFERRED);
            c->mc->preferred[c->mc->n_preferred++] = (int)v;
            continue;
        }
        if (is_one_of(f->name, batching_fields) && !once(c, m, i, path))
            return false;
        if (!strcmp(f->name, "max_queue_delay_microseconds")) {
            if (!get_int(c, f, path, 0, 60000000, &v))
                return false;
            c->mc->has_delay = true;
            c->mc->max_delay_us = v;
        } else if (!strcmp(f->name, "priority_levels")) {
            if (!get_int(c, f, path, 0, 1 << 20, &v))
                return false;
            /* 0: Triton's "no priorities", the batcher's one level */
            c->mc->has_priority_levels = true;
            c->mc->priority_levels = v ? (int)v : 1;
        } else if (!strcmp(f->name, "default_priority_level")) {
            if (!get_int(c, f, path, 0, 1 << 20, &v))
                return false;
            c->mc->default_priority_level = (int)v;
        } else if (!strcmp(f->name, "default_queue_policy")) {
            if (!want_msg(c, f, path) || !read_queue_policy(c, &f->msg))
                return false;
        } else {
            ignored(c, pre, f->name, "not applied");
        }
    }
    return true;
}

static bool read_instance_group(mc_ctx *c, const pbtxt_field *g)
{
    const pbtxt_msg *m = &g->msg;
    long long count = 1; /* Triton's default */
    for (int i = 0; i < m->n; i++) {
        const pbtxt_field *f = &m->fields[i];
        if (!strcmp(f->name, "count")) {
            if (!once(c, m, i, "instance_group.count") ||
                !get_int(c, f, "instance_group.count", 1, 1024, &count))
                return false;
        } else if (!strcmp(f->name, "kind") || !strcmp(f->name, "gpus")) {
            ignored(c, "instance_group", f->name, "not applied: the device is --device");
        } else {
            ignored(c, "instance_group", f->name, "not applied");
        }
    }
    if (c->mc->workers + count > 1024)
        return bad(c, g, "instance_group: more than 1024 instances in all");
    c->mc->has_workers = true;
    c->mc->workers += (int)count;
    return true;
}

static bool read_version_policy(mc_ctx *c, const pbtxt_field *vp)
{
    const pbtxt_msg *m = &vp->msg;
    if (m->n != 1)
        return bad(c, vp, "version_policy: expected one of latest, all or specific");
    const pbtxt_field *f = &m->fields[0];
    if (!want_msg(c, f, "version_policy"))
        return false;
    model_config *mc = c->mc;
    if (!strcmp(f->name, "all")) {
        mc->policy = VP_ALL;
        for (int i = 0; i < f->msg.n; i++)
            ignored(c, "version_policy.all", f->msg.fields[i].name, "not applied");
        return true;
    }
    long long v;
    if (!strcmp(f->name, "latest")) {
        mc->policy = VP_LATEST;
        for (int i = 0; i < f->msg.n; i++) {
            const pbtxt_field *g = &f->msg.fields[i];
            if (strcmp(g->name, "num_versions")) {
                ignored(c, "version_policy.latest", g->name, "not applied");
                continue;
            }
            if (!once(c, &f->msg, i, "version_policy.latest.num_versions") ||
                !get_int(c, g, "version_policy.latest.num_versions", 1, 1 << 20, &v))
                return false;
            mc->latest_n = (int)v;
        }
        return true;
    }
    if (!strcmp(f->name, "specific")) {
        mc->policy = VP_SPECIFIC;
        for (int i = 0; i < f->msg.n; i++) {
            const pbtxt_field *g = &f->msg.fields[i];
            if (strcmp(g->name, "versions")) {
                ignored(c, "version_policy.specific", g->name, "not applied");
                continue;
            }
            if (!get_int(c, g, "version_policy.specific.versions", 0, INT64_MAX, &v))
                return false;
            if (mc->n_versions == MC_MAX_VERSIONS)
                return bad(c, g, "version_policy.specific: more than %d versions", MC_MAX_VERSIONS);
            mc->versions[mc->n_versions++] = v;
        }
        if (mc->n_versions == 0)
            return bad(c, f, "version_policy.specific: no versions listed");
        return true;
    }
    return bad(c, f, "version_policy: unknown policy '%.40s' (expected latest, all or specific)",
               f->name);
}

static bool read_top(mc_ctx *c, const pbtxt_msg *m)
{
    model_config *mc = c->mc;
    for (int i = 0; i < m->n; i++) {
        const pbtxt_field *f = &m->fields[i];
        char s[256];
        long long v;
        if (!strcmp(f->name, "instance_group")) {
            if (!want_msg(c, f, "instance_group") || !read_instance_group(c, f))
                return false;
            continue;
        }
        if (!strcmp(f->name, "input") || !strcmp(f->name, "output")) {
            ignored(c, "", f->name, "not applied: Ferry reads them from the ONNX model");
            continue;
        }
        if (is_one_of(f->name, top_fields) && !once(c, m, i, f->name))
            return false;
        if (!strcmp(f->name, "name")) {
            if (!get_str(c, f, "name", s, sizeof s))
                return false;
            if (strcmp(s, c->name))
                return bad(c, f, "name '%s' is not the model's directory name '%s'", s, c->name);
        } else if (!strcmp(f->name, "platform")) {
            if (!get_str(c, f, "platform", s, sizeof s))
                return false;
            if (strcmp(s, "onnxruntime_onnx") && strcmp(s, "onnx_onnxv1"))
                return bad(c, f,
                           "platform '%s' is not served by Ferry, which runs ONNX models "
                           "(platform \"onnxruntime_onnx\")",
                           s);
        } else if (!strcmp(f->name, "backend")) {
            if (!get_str(c, f, "backend", s, sizeof s))
                return false;
            if (strcmp(s, "onnxruntime") && strcmp(s, "onnx"))
                return bad(c, f,
                           "backend '%s' is not served by Ferry, which runs ONNX models "
                           "(backend \"onnxruntime\")",
                           s);
        } else if (!strcmp(f->name, "max_batch_size")) {
            if (!get_int(c, f, "max_batch_size", 0, 1 << 20, &v))
                return false;
            if (v == 0)
                ignored(c, "", f->name,
                        "0 (no batch dimension) is not applied: Ferry batches along the first "
                        "dimension, up to --max-batch");
            else {
                mc->has_max_batch = true;
                mc->max_batch = (int)v;
            }
        } else if (!strcmp(f->name, "default_model_filename")) {
            if (!get_str(c, f, f->name, s, sizeof mc->model_filename))
                return false;
            if (!*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
                return bad(c, f, "default_model_filename '%s' is not a file name", s);
            memcpy(mc->model_filename, s, strlen(s) + 1);
        } else if (!strcmp(f->name, "version_policy")) {
            if (!want_msg(c, f, "version_policy") || !read_version_policy(c, f))
                return false;
        } else if (!strcmp(f->name, "dynamic_batching")) {
            if (!want_msg(c, f, "dynamic_batching") || !read_dynamic_batching(c, &f->msg))
                return false;
        } else {
            ignored(c, "", f->name, "not applied");
        }
    }
    return true;
}

bool model_config_read(const char *text, size_t len, const char *name, model_config *out,
                       mc_warn_fn warn, void *user, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->policy = VP_LATEST;
    out->latest_n = 1;
    snprintf(out->model_filename, sizeof out->model_filename, "model.onnx");
    if (errlen)
        err[0] = '\0';
    pbtxt_msg m;
    if (!pbtxt_parse(text, len, &m, err, errlen))
        return false;
    mc_ctx c = {.name = name, .mc = out, .warn = warn, .user = user, .err = err, .errlen = errlen};
    bool ok = read_top(&c, &m);
    pbtxt_free(&m);
    if (ok && out->default_priority_level &&
        out->default_priority_level > (out->has_priority_levels ? out->priority_levels : 1)) {
        snprintf(err, errlen,
                 "dynamic_batching.default_priority_level %d is outside 1..%d "
                 "(dynamic_batching.priority_levels)",
                 out->default_priority_level, out->has_priority_levels ? out->priority_levels : 1);
        return false;
    }
    if (ok && out->has_max_batch)
        for (int i = 0; i < out->n_preferred; i++)
            if (out->preferred[i] > out->max_batch) {
                snprintf(err, errlen,
                         "dynamic_batching.preferred_batch_size %d is larger than max_batch_size "
                         "%d",
                         out->preferred[i], out->max_batch);
                return false;
            }
    return ok;
}

void model_config_apply(const model_config *mc, ferry_engine_config *ec, ferry_batcher_config *bc)
{
    if (mc->has_max_batch) {
        ec->max_batch = mc->max_batch;
        bc->max_batch = mc->max_batch;
    }
    if (mc->has_delay)
        bc->max_delay_us = mc->max_delay_us;
    if (mc->n_preferred) {
        memcpy(bc->preferred_batch_sizes, mc->preferred, sizeof mc->preferred);
        bc->n_preferred = mc->n_preferred;
    }
    if (mc->has_priority_levels) {
        /* the batcher's levels count up from the lowest, 0; Triton's down
         * from the highest, 1; requests without a level get the default
         * level, the lowest unless default_priority_level says otherwise */
        bc->priority_levels = mc->priority_levels;
        int def = mc->default_priority_level ? mc->default_priority_level : mc->priority_levels;
        bc->default_priority = mc->priority_levels - def;
    }
    if (mc->has_timeout)
        bc->default_timeout_us = mc->default_timeout_us;
    if (mc->has_max_queue)
        bc->max_queue = mc->max_queue;
    if (mc->has_workers)
        ec->workers = mc->workers;
}

bool model_config_wants(const model_config *mc, int64_t v, const int64_t *all, int n_all)
{
    switch (mc->policy) {
    case VP_ALL: return true;
    case VP_SPECIFIC:
        for (int i = 0; i < mc->n_versions; i++)
            if (mc->versions[i] == v)
                return true;
        return false;
    case VP_LATEST: {
        int higher = 0;
        for (int i = 0; i < n_all; i++)
            higher += all[i] > v;
        return higher < mc->latest_n;
    }
    }
    return false;
}
