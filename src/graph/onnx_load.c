/*
 * onnx_load.c - ONNX ModelProto bytes -> graph IR.
 *
 * protobuf-c does the decoding; this file trusts nothing in the decoded
 * message: every name must refer to something, every length must match the
 * dims it claims, and every size is computed with overflow checks before
 * anything is allocated from it.
 *
 * Loading order: initializers, graph inputs, the outputs of every node (so
 * that a forward reference is reported by shape inference as "used before it
 * is produced" rather than as an unknown name), the nodes themselves, graph
 * outputs; then shape inference, and a check that each graph output's
 * declared static shape matches the inferred one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/graph.h"
#include "graph/ops.h"
#include "onnx.pb-c.h"
#include "util/error.h"

/* Oldest and newest default-domain opsets whose semantics of the operators
 * below we implement. */
#define OPSET_MIN 7
#define OPSET_MAX 21

typedef struct name_map {
    int *slot;  /* value index + 1; 0 = empty */
    size_t cap; /* power of two */
} name_map;

/* An output the IR cannot represent (Dropout's mask, LayerNorm's mean):
 * loaded as an unwritten value; an error only if something reads it. */
typedef struct dropped_out {
    int value;
    int node; /* index into the ModelProto's nodes */
} dropped_out;

typedef struct loader {
    graph *g;
    const Onnx__GraphProto *gp;
    const char *base_dir;
    size_t len;       /* bytes of the serialized model */
    size_t raw_bytes; /* raw_data bytes taken so far */
    int64_t opset;
    const Onnx__ModelProto *mp;
    name_map names;
    dropped_out *dropped;
    int n_dropped;
    const char *len_axis; /* the length axis' dim_param, or NULL (see onnx_load_buffer_len) */
    int64_t len_value;    /* what it is fixed to */
} loader;

/* ------------------------------------------------------------ names */

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static ferry_status names_init(name_map *m, size_t expected)
{
    size_t cap = 64;
    while (cap < expected * 2 + 1) {
        if (cap > SIZE_MAX / 4)
            return ferry_fail(FERRY_ENOMEM, "too many tensors (%zu)", expected);
        cap *= 2;
    }
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot)
        return ferry_fail(FERRY_ENOMEM, "out of memory indexing %zu tensor names", expected);
    m->cap = cap;
    return FERRY_OK;
}

static int names_find(const loader *ld, const char *name)
{
    size_t mask = ld->names.cap - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int s = ld->names.slot[i];
        if (!s)
            return -1;
        if (strcmp(ld->g->values[s - 1].name, name) == 0)
            return s - 1;
    }
}

/* Adds a value and indexes its name; -1 with the error set. The table was
 * sized for every name the model can define, so it never fills. */
static int add_named(loader *ld, const char *name, ferry_dtype dt, int ndim, const int64_t *dims)
{
    int v = graph_add_value(ld->g, name, dt, ndim, dims);
    if (v < 0)
        return -1;
    size_t mask = ld->names.cap - 1;
    size_t i = name_hash(name) & mask;
    while (ld->names.slot[i])
        i = (i + 1) & mask;
    ld->names.slot[i] = v + 1;
    return v;
}

/* ----------------------------------------------------------- dtypes */

ferry_dtype onnx_map_dtype(int32_t t)
{
    switch (t) {
    case FERRY_F32:
    case FERRY_U8:
    case FERRY_I8:
    case FERRY_I32:
    case FERRY_I64:
    case FERRY_BOOL:
    case FERRY_F16:
    case FERRY_F64:
    case FERRY_BF16: return (ferry_dtype)t;
    default: return FERRY_DTYPE_UNDEFINED;
    }
}

/* ------------------------------------------------------ tensor data */

/* numel of dims with int64 overflow checks; -1 when invalid. */
static int64_t checked_numel(const int64_t *dims, size_t n)
{
    int64_t e = 1;
    for (size_t i = 0; i < n; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] > 0 && e > INT64_MAX / dims[i])
            return -1;
        e *= dims[i];
    }
    return e;
}

static int path_escapes(const char *p)
{
    if (!*p || p[0] == '/' || p[0] == '\\')
        return 1;
    const char *s = p;
    while (*s) {
        size_t n = strcspn(s, "/\\");
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return 1;
        s += n;
        if (*s)
            s++;
    }
    return 0;
}

static int parse_size_field(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* What a file that is not a regular file is, for a message. */
static const char *file_kind(mode_t m)
{
    return S_ISLNK(m)    ? "a symbolic link"
           : S_ISDIR(m)  ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
                         : "not a regular file";
}

/*
 * Opens location (relative, no "..": path_escapes said so) below base_dir
 * for reading, one component at a time with O_NOFOLLOW, so that no symbolic
 * link is followed: a link may lead out of the model's folder whatever the
 * location's text says, and resolving it first would leave a window to swap
 * the link. O_NONBLOCK, so that opening a FIFO does not wait for a writer;
 * then only a regular file is accepted. Returns the descriptor, or -1 with
 * the failure in *err (an errno) and, when the reason is the file's kind,
 * *kind (a symbolic link, a FIFO, ...).
 */
static int open_beneath(const char *base_dir, const char *location, int *err, const char **kind)
{
    *kind = NULL;
    *err = 0;
    char *rest = strdup(location);
    if (!rest) {
        *err = ENOMEM;
        return -1;
    }
    int dir = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd = -1;
    if (dir < 0)
        *err = errno;
    char *name = rest;
    while (dir >= 0) {
        size_t n = strcspn(name, "/");
        int last = name[n] == '\0';
        name[n] = '\0';
        if (last) {
            fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        } else if (n == 0 || !strcmp(name, ".")) {
            name += n + 1; /* "a//b", "./b" */
            continue;
        } else {
            fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        struct stat sb;
        if (fd < 0) {
            *err = errno;
            /* ELOOP (or ENOTDIR for a folder): name the link as such */
            if (fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
                *kind = file_kind(sb.st_mode);
        } else if (last && fstat(fd, &sb) != 0) {
            *err = errno;
            close(fd);
            fd = -1;
        } else if (last && !S_ISREG(sb.st_mode)) {
            *err = EINVAL;
            *kind = file_kind(sb.st_mode);
            close(fd);
            fd = -1;
        }
        close(dir);
        dir = -1;
        if (!last && fd >= 0) {
            dir = fd; /* down one folder */
            fd = -1;
            name += n + 1;
        }
    }
    free(rest);
    return fd;
}

static ferry_status read_external(const loader *ld, const Onnx__TensorProto *t, const char *what,
                                  void *dst, size_t bytes)
{
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (!e || !e->key)
            continue;
        if (!strcmp(e->key, "location")) {
            location = e->value;
        } else if (!strcmp(e->key, "offset")) {
            if (parse_size_field(e->value, &offset))
                return ferry_fail(FERRY_EPARSE, "%s: external data offset '%s' is not a size", what,
                                  str_or_empty(e->value));
        } else if (!strcmp(e->key, "length")) {
            if (parse_size_field(e->value, &length))
                return ferry_fail(FERRY_EPARSE, "%s: external data length '%s' is not a size", what,
                                  str_or_empty(e->value));
        }
    }
    if (!location || !*location)
        return ferry_fail(FERRY_EPARSE, "%s: external data has no location", what);
    if (path_escapes(location))
        return ferry_fail(FERRY_EPARSE,
                          "%s: external data location '%s' is absolute or leaves the model's "
                          "directory",
                          what, location);
    if (!ld->base_dir)
        return ferry_fail(FERRY_EINVAL,
                          "%s: external data '%s' needs a base directory (model loaded from "
                          "memory without one)",
                          what, location);
    if (length >= 0 && (uint64_t)length != bytes)
        return ferry_fail(FERRY_EPARSE, "%s: external data length %lld, expected %zu bytes", what,
                          (long long)length, bytes);
    size_t plen = strlen(ld->base_dir) + strlen(location) + 2;
    char *path = malloc(plen);
    if (!path)
        return ferry_fail(FERRY_ENOMEM, "%s: out of memory", what);
    snprintf(path, plen, "%s/%s", ld->base_dir, location);
    ferry_status st = FERRY_OK;
    int err;
    const char *kind;
    int fd = open_beneath(ld->base_dir, location, &err, &kind);
    if (fd < 0) {
        if (kind && !strcmp(kind, "a symbolic link"))
            st = ferry_fail(FERRY_EIO,
                            "%s: external data '%s' is or passes through a symbolic link: "
                            "refused, as it may lead outside the model's folder (copy the file "
                            "there)",
                            what, path);
        else if (kind)
            st = ferry_fail(FERRY_EIO, "%s: external data '%s' is %s, not a regular file", what,
                            path, kind);
        else
            st = ferry_fail(FERRY_EIO, "%s: cannot open external data '%s': %s", what, path,
                            strerror(err));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        st = ferry_fail(FERRY_EIO, "%s: cannot stat external data '%s': %s", what, path,
                        strerror(errno));
        goto out;
    }
    if ((uint64_t)offset > (uint64_t)sb.st_size ||
        bytes > (uint64_t)sb.st_size - (uint64_t)offset) {
        st = ferry_fail(FERRY_EPARSE,
                        "%s: external data '%s' has %lld bytes; %zu needed at offset %lld", what,
                        path, (long long)sb.st_size, bytes, (long long)offset);
        goto out;
    }
    for (size_t done = 0; done < bytes;) {
        ssize_t k = pread(fd, (char *)dst + done, bytes - done, (off_t)offset + (off_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            st = ferry_fail(FERRY_EIO, "%s: reading external data '%s': %s", what, path,
                            k < 0 ? strerror(errno) : "short read");
            goto out;
        }
        done += (size_t)k;
    }
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return st;
}

/* Copies typed-field data (float_data, int32_data, ...) into dst. */
/* Elements a tensor carries in the typed field its dtype uses. */
static size_t typed_count(const Onnx__TensorProto *t, ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F32: return t->n_float_data;
    case FERRY_F64: return t->n_double_data;
    case FERRY_I64: return t->n_int64_data;
    default: return t->n_int32_data;
    }
}

static ferry_status read_typed(const Onnx__TensorProto *t, ferry_dtype dt, const char *what,
                               void *dst, int64_t numel)
{
    size_t n = (size_t)numel;
    size_t have = typed_count(t, dt);
    if (have != n)
        return ferry_fail(FERRY_EPARSE, "%s: has %zu %s elements of data, its dims say %lld", what,
                          have, ferry_dtype_name(dt), (long long)numel);
    if (!n)
        return FERRY_OK;
    switch (dt) {
    case FERRY_F32: memcpy(dst, t->float_data, n * 4); break;
    case FERRY_F64: memcpy(dst, t->double_data, n * 8); break;
    case FERRY_I64: memcpy(dst, t->int64_data, n * 8); break;
    case FERRY_I32: memcpy(dst, t->int32_data, n * 4); break;
    case FERRY_F16:
    case FERRY_BF16:
        /* the 16 bits of each element sit in the low half of an int32 */
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = (uint16_t)(uint32_t)t->int32_data[i];
        break;
    case FERRY_BOOL:
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = t->int32_data[i] != 0;
        break;
    case FERRY_U8:
    case FERRY_I8:
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = (uint8_t)t->int32_data[i];
        break;
    default:
        return ferry_fail(FERRY_EINTERNAL, "%s: no typed reader for %s", what,
                          ferry_dtype_name(dt));
    }
    return FERRY_OK;
}

/* Makes a constant value named name from a TensorProto. what names the
 * tensor in messages ("initializer 'w'"). */
static ferry_status tensor_to_value(loader *ld, const Onnx__TensorProto *t, const char *name,
                                    const char *what, int *out)
{
    if (!t)
        return ferry_fail(FERRY_EPARSE, "%s: no tensor", what);
    ferry_dtype dt = onnx_map_dtype(t->data_type);
    if (dt == FERRY_DTYPE_UNDEFINED)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s: data type %d is not supported", what,
                          (int)t->data_type);
    if (t->n_dims > FERRY_MAX_DIMS)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s: rank %zu; at most %d is supported", what,
                          t->n_dims, FERRY_MAX_DIMS);
    if (t->segment)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s: segmented tensors are not supported", what);
    int64_t numel = checked_numel(t->dims, t->n_dims);
    size_t esz = ferry_dtype_size(dt);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / esz)
        return ferry_fail(FERRY_EPARSE, "%s: invalid or too large dims", what);
    size_t bytes = (size_t)numel * esz;
    int external =
        t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    int raw = !external && t->has_raw_data;
    /* Check what the data can hold before allocating what the dims claim. */
    if (raw) {
        if (t->raw_data.len != bytes)
            return ferry_fail(FERRY_EPARSE, "%s: raw_data has %zu bytes, its dims say %zu", what,
                              t->raw_data.len, bytes);
        if (bytes > ld->len - ld->raw_bytes)
            return ferry_fail(FERRY_EPARSE, "%s: initializers claim more bytes than the file has",
                              what);
        ld->raw_bytes += bytes;
    } else if (!external && typed_count(t, dt) != (size_t)numel) {
        /* before allocating: dims claiming terabytes over 3 values (fuzz) */
        return ferry_fail(FERRY_EPARSE, "%s: has %zu %s elements of data, its dims say %lld", what,
                          typed_count(t, dt), ferry_dtype_name(dt), (long long)numel);
    }
    void *data = malloc(bytes ? bytes : 1);
    if (!data)
        return ferry_fail(FERRY_ENOMEM, "%s: out of memory for %zu bytes", what, bytes);
    ferry_status st;
    if (external)
        st = read_external(ld, t, what, data, bytes);
    else if (raw) {
        if (bytes)
            memcpy(data, t->raw_data.data, bytes);
        st = FERRY_OK;
    } else
        st = read_typed(t, dt, what, data, numel);
    if (st != FERRY_OK) {
        free(data);
        return st;
    }
    int v = add_named(ld, name, dt, (int)t->n_dims, t->dims);
    if (v < 0) {
        free(data);
        return ferry_fail_prefix(FERRY_ENOMEM, "%s", what);
    }
    ld->g->values[v].is_const = 1;
    ld->g->values[v].data = data;
    *out = v;
    return FERRY_OK;
}

/* ------------------------------------------------------- attributes */

typedef struct node_ctx {
    const Onnx__NodeProto *np;
    const char *name;
    const char *op;
} node_ctx;

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *np, const char *name)
{
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i] && np->attribute[i]->name && !strcmp(np->attribute[i]->name, name))
            return np->attribute[i];
    return NULL;
}

static ferry_status attr_bad_type(const node_ctx *c, const char *attr, const char *want)
{
    return ferry_fail(FERRY_EPARSE, "node '%s' (%s): attribute '%s' must be %s", c->name, c->op,
                      attr, want);
}

/* The op table's view of a node's attributes (ops.h). */
typedef struct attr_reader {
    loader *ld;
    const node_ctx *c;
    ferry_status st; /* a tensor attribute that failed to load */
} attr_reader;

static int read_attr(void *impl, const char *name, op_attr *out)
{
    attr_reader *r = impl;
    const Onnx__AttributeProto *a = find_attr(r->c->np, name);
    memset(out, 0, sizeof *out);
    if (!a)
        return -1;
    int t = a->has_type ? (int)a->type : -1;
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT || (t < 0 && a->has_f)) {
        out->type = OP_ATTR_FLOAT, out->f = a->f;
    } else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT || (t < 0 && a->has_i)) {
        out->type = OP_ATTR_INT, out->i = a->i;
    } else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING || (t < 0 && a->has_s)) {
        out->type = OP_ATTR_STRING, out->s = (const char *)a->s.data, out->s_len = a->s.len;
    } else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS || (t < 0 && a->n_ints)) {
        out->type = OP_ATTR_INTS, out->ints = a->ints, out->n = a->n_ints;
    } else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS || (t < 0 && a->n_floats)) {
        out->type = OP_ATTR_FLOATS, out->floats = a->floats, out->n = a->n_floats;
    } else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS || (t < 0 && a->n_strings)) {
        out->type = OP_ATTR_STRINGS, out->n = a->n_strings;
        for (size_t i = 0; i < a->n_strings && i < OP_ATTR_MAX_STRINGS; i++)
            out->strings[i] = (const char *)a->strings[i].data,
            out->string_lens[i] = a->strings[i].len;
    } else if ((t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || t < 0) && a->t) {
        char nm[600], what[600];
        snprintf(nm, sizeof nm, "%s.%s", r->c->name, name);
        snprintf(what, sizeof what, "node '%s' (%s): attribute '%s'", r->c->name, r->c->op, name);
        int v = -1;
        if ((r->st = tensor_to_value(r->ld, a->t, nm, what, &v)) != FERRY_OK) {
            out->type = OP_ATTR_OTHER;
            return 0;
        }
        out->type = OP_ATTR_TENSOR, out->tensor_value = v;
    } else {
        out->type = OP_ATTR_OTHER;
    }
    return 0;
}

static int is_default_domain(const char *d)
{
    return !d || !*d || !strcmp(d, "ai.onnx");
}

static int64_t domain_opset(const Onnx__ModelProto *mp, const char *domain)
{
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o)
            continue;
        if (is_default_domain(domain) ? is_default_domain(o->domain)
                                      : (o->domain && !strcmp(o->domain, domain)))
            return o->has_version ? o->version : 0;
    }
    return 0;
}

/* The table row of a node, or NULL when the operator is unknown (the
 * caller collects every unknown one before failing). */
static const op_def *find_op(const Onnx__NodeProto *np)
{
    if (!is_default_domain(np->domain))
        return NULL;
    return op_find(str_or_empty(np->op_type));
}

/* Node name for messages: the ONNX name, or "<op>_<index>" like graph.c. */
static void node_label(const Onnx__NodeProto *np, size_t idx, char *buf, size_t len)
{
    if (np->name && *np->name)
        snprintf(buf, len, "%s", np->name);
    else
        snprintf(buf, len, "%s_%zu", np->op_type ? np->op_type : "node", idx);
}

/* Constant node -> const value. */
static ferry_status load_constant(loader *ld, const node_ctx *c)
{
    const Onnx__NodeProto *np = c->np;
    if (np->n_output != 1 || !np->output[0] || !*np->output[0] || np->n_input != 0)
        return ferry_fail(FERRY_EPARSE, "node '%s' (Constant): needs no inputs and one output",
                          c->name);
    const char *out = np->output[0];
    if (names_find(ld, out) >= 0)
        return ferry_fail(FERRY_EPARSE, "node '%s' (Constant): output '%s' is already defined",
                          c->name, out);
    char what[512];
    snprintf(what, sizeof what, "node '%s' (Constant)", c->name);
    if (np->n_attribute != 1 || !np->attribute[0] || !np->attribute[0]->name)
        return ferry_fail(FERRY_EPARSE, "%s: needs exactly one value attribute", what);
    const Onnx__AttributeProto *a = np->attribute[0];
    int v = -1;
    int64_t n1;
    if (!strcmp(a->name, "value")) {
        if (!a->t)
            return attr_bad_type(c, "value", "a tensor");
        return tensor_to_value(ld, a->t, out, what, &v);
    }
    ferry_dtype dt;
    size_t n;
    const void *src;
    int ndim;
    if (!strcmp(a->name, "value_float")) {
        if (!a->has_f)
            return attr_bad_type(c, a->name, "a float");
        dt = FERRY_F32, n = 1, src = &a->f, ndim = 0;
    } else if (!strcmp(a->name, "value_floats")) {
        dt = FERRY_F32, n = a->n_floats, src = a->floats, ndim = 1;
    } else if (!strcmp(a->name, "value_int")) {
        if (!a->has_i)
            return attr_bad_type(c, a->name, "an int");
        dt = FERRY_I64, n = 1, src = &a->i, ndim = 0;
    } else if (!strcmp(a->name, "value_ints")) {
        dt = FERRY_I64, n = a->n_ints, src = a->ints, ndim = 1;
    } else {
        return ferry_fail(FERRY_EUNSUPPORTED, "%s: attribute '%s' is not supported", what, a->name);
    }
    n1 = (int64_t)n;
    size_t bytes = n * ferry_dtype_size(dt);
    void *data = malloc(bytes ? bytes : 1);
    if (!data)
        return ferry_fail(FERRY_ENOMEM, "%s: out of memory", what);
    if (bytes)
        memcpy(data, src, bytes);
    v = add_named(ld, out, dt, ndim, &n1);
    if (v < 0) {
        free(data);
        return FERRY_ENOMEM;
    }
    ld->g->values[v].is_const = 1;
    ld->g->values[v].data = data;
    return FERRY_OK;
}

/* Creates the output values of a (non-Constant) node. */
static ferry_status declare_outputs(loader *ld, const node_ctx *c, const op_def *sp, size_t idx)
{
    const Onnx__NodeProto *np = c->np;
    if (np->n_output < 1 || (int)np->n_output > sp->max_out || !np->output[0] || !*np->output[0])
        return ferry_fail(FERRY_EPARSE, "node '%s' (%s): has %zu outputs; expected 1 to %d",
                          c->name, c->op, np->n_output, sp->max_out);
    for (size_t k = 0; k < np->n_output; k++) {
        const char *o = np->output[k];
        if (!o || !*o)
            continue; /* an optional output left out */
        if (names_find(ld, o) >= 0)
            return ferry_fail(FERRY_EPARSE, "node '%s' (%s): output '%s' is already defined",
                              c->name, c->op, o);
        int v = add_named(ld, o, FERRY_DTYPE_UNDEFINED, 0, NULL);
        if (v < 0)
            return FERRY_ENOMEM;
        if ((int)k >= sp->n_out) {
            dropped_out *d = realloc(ld->dropped, (size_t)(ld->n_dropped + 1) * sizeof *d);
            if (!d)
                return ferry_fail(FERRY_ENOMEM, "out of memory");
            ld->dropped = d;
            d[ld->n_dropped].value = v;
            d[ld->n_dropped].node = (int)idx;
            ld->n_dropped++;
        }
    }
    return FERRY_OK;
}

/* Resolves a node's ONNX input k to a value index (-1 if left out). */
static ferry_status resolve_input(const loader *ld, const node_ctx *c, const op_def *sp, size_t k,
                                  int *out)
{
    const Onnx__NodeProto *np = c->np;
    const char *nm = k < np->n_input ? np->input[k] : NULL;
    *out = -1;
    if (!nm || !*nm) {
        /* a variadic op's inputs (Concat, Min, Max) are all required: the
         * shape rules read every one */
        if ((int)k < sp->min_in || sp->max_in == GRAPH_MAX_IO)
            return ferry_fail(FERRY_EPARSE, "node '%s' (%s): required input %zu is missing",
                              c->name, c->op, k);
        return FERRY_OK;
    }
    int v = names_find(ld, nm);
    if (v < 0)
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (%s): input '%s' refers to no tensor (not a graph input, "
                          "initializer or node output)",
                          c->name, c->op, nm);
    *out = v;
    return FERRY_OK;
}

static ferry_status load_node(loader *ld, const node_ctx *c, const op_def *sp)
{
    const Onnx__NodeProto *np = c->np;
    graph *g = ld->g;
    ferry_status st;
    if ((int)np->n_input < sp->min_in || (int)np->n_input > sp->max_in)
        return ferry_fail(FERRY_EPARSE, "node '%s' (%s): has %zu inputs; expected %d to %d",
                          c->name, c->op, np->n_input, sp->min_in, sp->max_in);
    /* The parse function works on a scratch node (it may change the op,
     * drop inputs or add a constant one); the graph counts consumers only
     * of what remains. */
    graph_node tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.op = sp->op;
    tmp.alpha = 1.0f, tmp.beta = 1.0f, tmp.epsilon = 1e-5f, tmp.axis = -1, tmp.keepdims = 1;
    for (int k = 0; k < GRAPH_MAX_IO; k++)
        tmp.in[k] = tmp.out[k] = -1;
    for (size_t k = 0; k < np->n_input; k++)
        if ((st = resolve_input(ld, c, sp, k, &tmp.in[k])) != FERRY_OK)
            return st;
    tmp.n_in = (int)np->n_input;
    while (tmp.n_in > sp->min_in && tmp.in[tmp.n_in - 1] < 0)
        tmp.n_in--; /* trailing optional inputs left out */
    for (int k = 0; k < sp->n_out && k < (int)np->n_output; k++) {
        const char *o = np->output[k];
        tmp.out[k] = o && *o ? names_find(ld, o) : -1;
        if (tmp.out[k] >= 0 && g->values[tmp.out[k]].producer >= 0)
            return ferry_fail(FERRY_EPARSE, "node '%s' (%s): output '%s' is written twice", c->name,
                              c->op, o);
        tmp.n_out = k + 1;
    }
    if (sp->parse) {
        attr_reader r = {ld, c, FERRY_OK};
        op_parse_ctx pc = {g, c->name, c->op, ld->opset, &r, read_attr};
        st = sp->parse(&pc, &tmp);
        if (st == FERRY_OK)
            st = r.st;
        if (st != FERRY_OK) {
            free(tmp.splits);
            return st;
        }
    }
    int ni = graph_add_node(g, tmp.op, c->name, tmp.n_in, tmp.in, tmp.n_out, tmp.out);
    if (ni < 0) {
        free(tmp.splits);
        return FERRY_ENOMEM;
    }
    graph_node *gn = &g->nodes[ni];
    tmp.name = gn->name; /* every other field as the parser left it */
    *gn = tmp;
    return FERRY_OK;
}

/* ------------------------------------------------------------ graph I/O */

static int is_len_axis(const loader *ld, const Onnx__TensorShapeProto__Dimension *dm)
{
    return ld->len_axis && dm &&
           dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
           dm->dim_param && !strcmp(dm->dim_param, ld->len_axis);
}

/* The dim (>= 1) of a declared input or output named ld->len_axis; 0: none. */
static int declared_len_dim(const loader *ld, const Onnx__ValueInfoProto *vi)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!ld->len_axis || !tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !tp->tensor_type || !tp->tensor_type->shape)
        return 0;
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    for (size_t d = 1; d < sh->n_dim && d < FERRY_MAX_DIMS; d++)
        if (is_len_axis(ld, sh->dim[d]))
            return (int)d;
    return 0;
}

/* Reads a value's declared tensor type. For inputs, dim 0 may be symbolic
 * (the batch), and a dim named ld->len_axis is read as ld->len_value; for
 * outputs, symbolic dims are returned as 0 ("unknown"). */
static ferry_status read_value_info(const loader *ld, const Onnx__ValueInfoProto *vi, int is_input,
                                    ferry_dtype *dt, int *ndim, int64_t *dims, int *has_shape)
{
    const char *kind = is_input ? "input" : "output";
    const char *name = str_or_empty(vi->name);
    *has_shape = 0;
    *ndim = 0;
    *dt = FERRY_DTYPE_UNDEFINED;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) {
        if (is_input)
            return ferry_fail(FERRY_EPARSE, "input '%s' has no type", name);
        return FERRY_OK;
    }
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s '%s' is not a tensor", kind, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type) {
        *dt = onnx_map_dtype(tt->elem_type);
        if (*dt == FERRY_DTYPE_UNDEFINED)
            return ferry_fail(FERRY_EUNSUPPORTED, "%s '%s' has unsupported data type %d", kind,
                              name, (int)tt->elem_type);
    } else if (is_input) {
        return ferry_fail(FERRY_EPARSE, "input '%s' has no element type", name);
    }
    if (!tt->shape) {
        if (is_input)
            return ferry_fail(FERRY_EUNSUPPORTED, "input '%s' has no shape", name);
        return FERRY_OK;
    }
    if (tt->shape->n_dim > FERRY_MAX_DIMS)
        return ferry_fail(FERRY_EUNSUPPORTED, "%s '%s' has rank %zu; at most %d is supported", kind,
                          name, tt->shape->n_dim, FERRY_MAX_DIMS);
    *ndim = (int)tt->shape->n_dim;
    *has_shape = 1;
    for (int d = 0; d < *ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
        int known = dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                    dm->dim_value > 0;
        if (!is_input) {
            dims[d] = known ? dm->dim_value : 0;
            continue;
        }
        if (d == 0 && !known) {
            dims[d] = FERRY_DIM_BATCH;
        } else if (!known && is_len_axis(ld, dm)) {
            dims[d] = ld->len_value;
        } else if (!known) {
            const char *why =
                dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    ? dm->dim_param
                    : "unknown";
            return ferry_fail(FERRY_EUNSUPPORTED,
                              "input '%s' dimension %d is symbolic ('%s'); only dimension 0 "
                              "(the batch) and one named length axis may be",
                              name, d, str_or_empty(why));
        } else {
            dims[d] = dm->dim_value;
        }
    }
    /* Per-sample size must leave room for the batch in an int64 numel. */
    if (is_input) {
        int64_t ps = 1;
        for (int d = 0; d < *ndim; d++) {
            if (dims[d] == FERRY_DIM_BATCH)
                continue;
            if (dims[d] > (INT64_C(1) << 40) / ps)
                return ferry_fail(FERRY_EUNSUPPORTED, "input '%s' is too large", name);
            ps *= dims[d];
        }
    }
    return FERRY_OK;
}

static ferry_status load_inputs(loader *ld)
{
    const Onnx__GraphProto *gp = ld->gp;
    graph *g = ld->g;
    g->inputs = calloc(gp->n_input + 1, sizeof *g->inputs);
    if (!g->inputs)
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi || !vi->name || !*vi->name)
            return ferry_fail(FERRY_EPARSE, "graph input %zu has no name", i);
        int v = names_find(ld, vi->name);
        if (v >= 0 && g->values[v].is_const)
            continue; /* an initializer listed as input (IR < 4 style) */
        if (v >= 0)
            return ferry_fail(FERRY_EPARSE, "input '%s' is declared twice", vi->name);
        ferry_dtype dt;
        int ndim, has_shape;
        int64_t dims[FERRY_MAX_DIMS];
        ferry_status st = read_value_info(ld, vi, 1, &dt, &ndim, dims, &has_shape);
        if (st)
            return st;
        v = add_named(ld, vi->name, dt, ndim, dims);
        if (v < 0)
            return FERRY_ENOMEM;
        g->values[v].is_input = 1;
        g->values[v].len_dim = declared_len_dim(ld, vi);
        g->inputs[g->n_inputs++] = v;
    }
    return FERRY_OK;
}

static ferry_status load_outputs(loader *ld)
{
    const Onnx__GraphProto *gp = ld->gp;
    graph *g = ld->g;
    if (gp->n_output == 0)
        return ferry_fail(FERRY_EPARSE, "the graph has no outputs");
    g->outputs = calloc(gp->n_output, sizeof *g->outputs);
    if (!g->outputs)
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        if (!vi || !vi->name || !*vi->name)
            return ferry_fail(FERRY_EPARSE, "graph output %zu has no name", i);
        int v = names_find(ld, vi->name);
        if (v < 0)
            return ferry_fail(FERRY_EPARSE,
                              "output '%s' refers to no tensor (not a graph input, initializer "
                              "or node output)",
                              vi->name);
        if (g->values[v].is_output)
            return ferry_fail(FERRY_EPARSE, "output '%s' is listed twice", vi->name);
        g->values[v].is_output = 1;
        g->values[v].len_dim = declared_len_dim(ld, vi);
        g->outputs[g->n_outputs++] = v;
    }
    return FERRY_OK;
}

static void fmt_dims(char *buf, size_t len, int ndim, const int64_t *dims, int unknown_zero)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++) {
        if (dims[i] == FERRY_DIM_BATCH)
            at += (size_t)snprintf(buf + at, len - at, "%sN", i ? "," : "");
        else if (unknown_zero && dims[i] == 0)
            at += (size_t)snprintf(buf + at, len - at, "%s?", i ? "," : "");
        else
            at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

/* After inference: each output's declared static dims and type must match. */
static ferry_status check_declared_outputs(const loader *ld)
{
    const Onnx__GraphProto *gp = ld->gp;
    const graph *g = ld->g;
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        ferry_dtype dt;
        int ndim, has_shape;
        int64_t dims[FERRY_MAX_DIMS];
        ferry_status st = read_value_info(ld, vi, 0, &dt, &ndim, dims, &has_shape);
        if (st)
            return st;
        const graph_value *v = &g->values[g->outputs[i]];
        if (dt != FERRY_DTYPE_UNDEFINED && v->dtype != dt)
            return ferry_fail(FERRY_EDTYPE, "output '%s' is declared %s but computed as %s",
                              v->name, ferry_dtype_name(dt), ferry_dtype_name(v->dtype));
        if (!has_shape)
            continue;
        int bad = ndim != v->ndim;
        for (int d = 0; !bad && d < ndim; d++)
            if (dims[d] > 0 && v->dims[d] >= 0 && v->dims[d] != dims[d])
                bad = 1;
        if (bad) {
            char a[160], b[160];
            fmt_dims(a, sizeof a, ndim, dims, 1);
            fmt_dims(b, sizeof b, v->ndim, v->dims, 0);
            return ferry_fail(FERRY_ESHAPE,
                              "output '%s' is declared with shape %s but computed as %s", v->name,
                              a, b);
        }
    }
    return FERRY_OK;
}

/* ---------------------------------------------------------------- load */

/* ---------------------------------------------- nn.EmbeddingBag's Loop */

/* PyTorch exports nn.EmbeddingBag over a 2-D index tensor [N, L] as a Loop
 * over the bags whose body slices the flattened indices between two
 * offsets, gathers those rows of the table and reduces them:
 *
 *     Gather(starts, i), Gather(ends, i), Unsqueeze x2,
 *     Slice(Reshape(X, [-1]), start, end), Gather(W, slice),
 *     ReduceSum | ReduceMean | ReduceMax (axis 0), Cast(cond)
 *
 * Bag i is then row i of X, so the Loop is one EmbeddingBag of W and X;
 * the offsets arithmetic outside the Loop is left without a reader and
 * removed. Anything else in a Loop is not supported. Returns 1 and sets
 * the names when np is that Loop. */
static int embedding_bag_loop(const Onnx__GraphProto *gp, const Onnx__NodeProto *np, const char **w,
                              const char **x, int *mode)
{
    if (!is_default_domain(np->domain) || strcmp(str_or_empty(np->op_type), "Loop") ||
        np->n_output != 1 || np->n_attribute != 1 || !np->attribute[0] || !np->attribute[0]->g)
        return 0;
    const Onnx__GraphProto *b = np->attribute[0]->g;
    if (b->n_input < 2 || b->n_output != 2 || !b->input[0] || !b->output[1])
        return 0;
    const char *iter = str_or_empty(b->input[0]->name);
    const char *flat = NULL, *table = NULL, *red_out = NULL, *slice_out = NULL;
    int n_gather_iter = 0, red = -1;
    for (size_t k = 0; k < b->n_node; k++) {
        const Onnx__NodeProto *n = b->node[k];
        const char *op = n ? str_or_empty(n->op_type) : "";
        if (!n || !is_default_domain(n->domain))
            return 0;
        if (!strcmp(op, "Constant") || !strcmp(op, "Unsqueeze") || !strcmp(op, "Cast"))
            continue;
        if (!strcmp(op, "Gather") && n->n_input == 2 && !strcmp(str_or_empty(n->input[1]), iter)) {
            n_gather_iter++;
        } else if (!strcmp(op, "Slice") && n->n_input >= 3 && n->n_output == 1) {
            flat = n->input[0];
            slice_out = n->output[0];
        } else if (!strcmp(op, "Gather") && n->n_input == 2 && slice_out &&
                   !strcmp(str_or_empty(n->input[1]), slice_out)) {
            table = n->input[0];
            red_out = n->output[0];
        } else if ((!strcmp(op, "ReduceSum") || !strcmp(op, "ReduceMean") ||
                    !strcmp(op, "ReduceMax")) &&
                   red_out && n->n_input >= 1 && !strcmp(str_or_empty(n->input[0]), red_out) &&
                   n->n_output == 1 &&
                   !strcmp(str_or_empty(n->output[0]), str_or_empty(b->output[1]->name))) {
            red = op[6] == 'S' ? 0 : op[6] == 'M' && op[7] == 'e' ? 1 : 2;
        } else {
            return 0;
        }
    }
    if (n_gather_iter != 2 || !flat || !table || red < 0)
        return 0;
    /* flat must be Reshape(X, [-1]) of a value X outside the Loop */
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *n = gp->node[k];
        if (n && n->n_output == 1 && !strcmp(str_or_empty(n->output[0]), flat) &&
            !strcmp(str_or_empty(n->op_type), "Reshape") && n->n_input == 2) {
            *w = table;
            *x = n->input[0];
            *mode = red;
            return 1;
        }
    }
    return 0;
}

static ferry_status load_embedding_bag(loader *ld, const node_ctx *c, const char *w, const char *x,
                                       int mode)
{
    int in[2] = {names_find(ld, w), names_find(ld, x)};
    int out = names_find(ld, c->np->output[0]);
    if (in[0] < 0 || in[1] < 0 || out < 0)
        return ferry_fail(FERRY_EPARSE, "node '%s' (Loop): an EmbeddingBag input is not defined",
                          c->name);
    int ni = graph_add_node(ld->g, OP_EMBEDDING_BAG, c->name, 2, in, 1, &out);
    if (ni < 0)
        return FERRY_ENOMEM;
    ld->g->nodes[ni].mode = mode;
    return FERRY_OK;
}

/* ------------------------------------------------------------------ If */

/* An If whose condition is known when the model loads (torch's
 * LocalResponseNorm tests a dim of a shape) is inlined: both branches'
 * nodes go into the graph where the If was, each guarded by the condition
 * (graph_node.guard), and one OP_IF node per output selects the taken
 * branch's value. Shape inference (shape.c) keeps the taken branch,
 * removes the other and turns each OP_IF into an Identity; a condition
 * computed from the data fails there, naming the If. Branches may read
 * outer values and hold Constants and initializers (ONNX names are unique
 * across a model and its subgraphs); an If inside a branch is not
 * supported. */
static int is_if(const Onnx__NodeProto *np)
{
    return is_default_domain(np->domain) && !strcmp(str_or_empty(np->op_type), "If");
}

static const char *const if_branches[2] = {"then_branch", "else_branch"};

/* Pass 1 for an If: the branches' initializers, Constants and node
 * outputs, then the If's outputs. */
static ferry_status declare_if(loader *ld, const node_ctx *c, size_t idx)
{
    const Onnx__NodeProto *np = c->np;
    ferry_status st;
    if (np->n_input != 1 || !np->input[0] || !*np->input[0])
        return ferry_fail(FERRY_EPARSE, "node '%s' (If): needs one input, the condition", c->name);
    for (int b = 0; b < 2; b++) {
        const Onnx__AttributeProto *a = find_attr(np, if_branches[b]);
        const Onnx__GraphProto *bg = a ? a->g : NULL;
        if (!bg)
            return ferry_fail(FERRY_EPARSE, "node '%s' (If): attribute '%s' is missing", c->name,
                              if_branches[b]);
        if (bg->n_input || bg->n_output != np->n_output || bg->n_sparse_initializer)
            return ferry_fail(FERRY_EPARSE,
                              "node '%s' (If): %s has %zu inputs and %zu outputs; expected none "
                              "and %zu",
                              c->name, if_branches[b], bg->n_input, bg->n_output, np->n_output);
        for (size_t i = 0; i < bg->n_initializer; i++) {
            const Onnx__TensorProto *t = bg->initializer[i];
            if (!t || !t->name || !*t->name || names_find(ld, t->name) >= 0)
                return ferry_fail(FERRY_EPARSE,
                                  "node '%s' (If): %s's initializer %zu has no name or a name "
                                  "already defined",
                                  c->name, if_branches[b], i);
            char what[320];
            snprintf(what, sizeof what, "initializer '%s'", t->name);
            int v;
            if ((st = tensor_to_value(ld, t, t->name, what, &v)))
                return st;
        }
        for (size_t k = 0; k < bg->n_node; k++) {
            const Onnx__NodeProto *bn = bg->node[k];
            if (!bn)
                return ferry_fail(FERRY_EPARSE, "node '%s' (If): %s's node %zu is empty", c->name,
                                  if_branches[b], k);
            char label[256];
            node_label(bn, k, label, sizeof label);
            node_ctx bc = {bn, label, str_or_empty(bn->op_type)};
            const op_def *sp = find_op(bn);
            if (is_default_domain(bn->domain) && !strcmp(bc.op, "Constant"))
                st = load_constant(ld, &bc);
            else if (is_if(bn))
                st = ferry_fail(FERRY_EUNSUPPORTED,
                                "node '%s' (If): an If inside its %s ('%s') is not supported",
                                c->name, if_branches[b], label);
            else if (!sp)
                st = ferry_fail(FERRY_EUNSUPPORTED,
                                "node '%s' (If): operator %s%s%s in its %s ('%s') is not "
                                "supported",
                                c->name, is_default_domain(bn->domain) ? "" : bn->domain,
                                is_default_domain(bn->domain) ? "" : ".", bc.op, if_branches[b],
                                label);
            else
                st = declare_outputs(ld, &bc, sp, idx);
            if (st)
                return st;
        }
    }
    return declare_outputs(ld, c, op_def_of(OP_IF), idx);
}

/* Pass 2 for an If: each branch's nodes, guarded by the condition, then
 * one OP_IF (condition, then's value, else's value) per output. */
static ferry_status load_if(loader *ld, const node_ctx *c)
{
    const Onnx__NodeProto *np = c->np;
    graph *g = ld->g;
    ferry_status st;
    int cond = names_find(ld, np->input[0]);
    if (cond < 0)
        return ferry_fail(FERRY_EPARSE,
                          "node '%s' (If): condition '%s' refers to no tensor (not a graph "
                          "input, initializer or node output)",
                          c->name, np->input[0]);
    const Onnx__GraphProto *bg[2];
    for (int b = 0; b < 2; b++) {
        bg[b] = find_attr(np, if_branches[b])->g;
        for (size_t k = 0; k < bg[b]->n_node; k++) {
            const Onnx__NodeProto *bn = bg[b]->node[k];
            const op_def *sp = find_op(bn);
            if (!sp)
                continue; /* a Constant, loaded in pass 1 */
            char label[256];
            node_label(bn, k, label, sizeof label);
            node_ctx bc = {bn, label, sp->onnx};
            if ((st = load_node(ld, &bc, sp)))
                return st;
            g->nodes[g->n_nodes - 1].guard = b == 0 ? cond + 1 : -(cond + 1);
        }
    }
    for (size_t k = 0; k < np->n_output; k++) {
        if (!np->output[k] || !*np->output[k])
            continue;
        int in[3] = {cond, -1, -1}, out = names_find(ld, np->output[k]);
        for (int b = 0; b < 2; b++) {
            const char *nm = bg[b]->output[k] ? str_or_empty(bg[b]->output[k]->name) : "";
            if ((in[1 + b] = names_find(ld, nm)) < 0)
                return ferry_fail(FERRY_EPARSE,
                                  "node '%s' (If): %s's output '%s' refers to no tensor", c->name,
                                  if_branches[b], nm);
        }
        if (graph_add_node(g, OP_IF, c->name, 3, in, 1, &out) < 0)
            return FERRY_ENOMEM;
    }
    return FERRY_OK;
}

/* Fails naming every operator the table lacks, with its node count:
 * "3 operators are not supported: Loop (1 node), NonZero (2 nodes), ...". */
static ferry_status check_operators(const loader *ld)
{
    const Onnx__GraphProto *gp = ld->gp;
    enum { MAX_KINDS = 32 };
    const char *kinds[MAX_KINDS];
    const char *doms[MAX_KINDS];
    size_t first[MAX_KINDS];
    int counts[MAX_KINDS], n_kinds = 0, more = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        const char *op = str_or_empty(np->op_type), *w, *x;
        int mode;
        if (find_op(np) || (is_default_domain(np->domain) && !strcmp(op, "Constant")) ||
            is_if(np) || embedding_bag_loop(gp, np, &w, &x, &mode))
            continue;
        const char *dom = is_default_domain(np->domain) ? "" : np->domain;
        int k = 0;
        while (k < n_kinds && (strcmp(kinds[k], op) || strcmp(doms[k], dom)))
            k++;
        if (k == n_kinds) {
            if (n_kinds == MAX_KINDS) {
                more++;
                continue;
            }
            kinds[k] = op, doms[k] = dom, counts[k] = 0, first[k] = i, n_kinds++;
        }
        counts[k]++;
    }
    if (!n_kinds)
        return FERRY_OK;
    char list[2048];
    size_t at = 0;
    list[0] = '\0';
    for (int k = 0; k < n_kinds && at < sizeof list; k++) {
        char label[256];
        node_label(gp->node[first[k]], first[k], label, sizeof label);
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s%s%s (%d node%s, first '%s')",
                               k ? ", " : "", doms[k], *doms[k] ? "." : "", kinds[k], counts[k],
                               counts[k] == 1 ? "" : "s", label);
    }
    int total = n_kinds + more;
    return ferry_fail(FERRY_EUNSUPPORTED, "%d operator%s %s not supported (opset %lld): %s%s",
                      total, total == 1 ? "" : "s", total == 1 ? "is" : "are", (long long)ld->opset,
                      list, more ? ", ..." : "");
}

static ferry_status load_graph(loader *ld)
{
    const Onnx__GraphProto *gp = ld->gp;
    graph *g = ld->g;
    ferry_status st;
    size_t expected = gp->n_initializer + gp->n_input;
    for (size_t i = 0; i < gp->n_node; i++) {
        if (!gp->node[i])
            return ferry_fail(FERRY_EPARSE, "node %zu is empty", i);
        expected += gp->node[i]->n_output;
    }
    if ((st = names_init(&ld->names, expected)))
        return st;

    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *t = gp->initializer[i];
        if (!t || !t->name || !*t->name)
            return ferry_fail(FERRY_EPARSE, "initializer %zu has no name", i);
        if (names_find(ld, t->name) >= 0)
            return ferry_fail(FERRY_EPARSE, "initializer '%s' is defined twice", t->name);
        char what[320];
        snprintf(what, sizeof what, "initializer '%s'", t->name);
        int v;
        if ((st = tensor_to_value(ld, t, t->name, what, &v)))
            return st;
    }
    if (gp->n_sparse_initializer)
        return ferry_fail(FERRY_EUNSUPPORTED, "sparse initializers are not supported");
    if ((st = load_inputs(ld)))
        return st;

    /* Pass 0: every operator the table lacks, named at once with counts. */
    if ((st = check_operators(ld)))
        return st;
    /* Pass 1: Constant nodes and every node's outputs. */
    const op_def **specs = calloc(gp->n_node + 1, sizeof *specs);
    if (!specs)
        return ferry_fail(FERRY_ENOMEM, "out of memory");
    char label[256];
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        node_label(np, i, label, sizeof label);
        node_ctx c = {np, label, str_or_empty(np->op_type)};
        if (is_default_domain(np->domain) && !strcmp(c.op, "Constant")) {
            if ((st = load_constant(ld, &c)))
                goto out;
            continue;
        }
        const char *w, *x;
        int mode;
        if (is_if(np)) {
            specs[i] = op_def_of(OP_IF);
            if ((st = declare_if(ld, &c, i)))
                goto out;
            continue;
        }
        specs[i] = find_op(np);
        if (!specs[i] && embedding_bag_loop(gp, np, &w, &x, &mode))
            specs[i] = op_def_of(OP_EMBEDDING_BAG);
        if ((st = declare_outputs(ld, &c, specs[i], i)))
            goto out;
    }
    /* Pass 2: the nodes. */
    for (size_t i = 0; i < gp->n_node; i++) {
        if (!specs[i])
            continue;
        const Onnx__NodeProto *np = gp->node[i];
        node_label(np, i, label, sizeof label);
        node_ctx c = {np, label, specs[i]->onnx};
        const char *w, *x;
        int mode;
        if (specs[i]->op == OP_IF) {
            if ((st = load_if(ld, &c)))
                goto out;
            continue;
        }
        if (specs[i]->op == OP_EMBEDDING_BAG) {
            embedding_bag_loop(gp, np, &w, &x, &mode);
            if ((st = load_embedding_bag(ld, &c, w, x, mode)))
                goto out;
            continue;
        }
        if ((st = load_node(ld, &c, specs[i])))
            goto out;
    }
    if ((st = load_outputs(ld)))
        goto out;
    for (int i = 0; i < ld->n_dropped; i++) {
        const graph_value *v = &g->values[ld->dropped[i].value];
        if (v->n_consumers > 0 || v->is_output) {
            const Onnx__NodeProto *np = gp->node[ld->dropped[i].node];
            node_label(np, (size_t)ld->dropped[i].node, label, sizeof label);
            st = ferry_fail(FERRY_EUNSUPPORTED,
                            "node '%s' (%s): output '%s' is used; only the "
                            "first output is supported",
                            label, str_or_empty(np->op_type), v->name);
            goto out;
        }
    }
    graph_remove_unread(g);
    if ((st = graph_infer_shapes(g)))
        goto out;
    st = check_declared_outputs(ld);
out:
    free(specs);
    return st;
}

ferry_status onnx_load_buffer(const void *buf, size_t len, const char *base_dir, graph **out)
{
    return onnx_load_buffer_len(buf, len, base_dir, NULL, 0, out);
}

ferry_status onnx_load_buffer_len(const void *buf, size_t len, const char *base_dir,
                                  const char *len_axis, int64_t len_value, graph **out)
{
    ferry_status st;
    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.len_axis = len_axis;
    ld.len_value = len_value;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "onnx_load_buffer: out is NULL");
    *out = NULL;
    if (!buf || len == 0)
        return ferry_fail(FERRY_EPARSE, "not an ONNX model: the data is empty");
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp)
        return ferry_fail(FERRY_EPARSE,
                          "not an ONNX model: protobuf decoding failed (truncated "
                          "or corrupt, %zu bytes)",
                          len);
    if (!mp->has_ir_version || !mp->graph) {
        st = ferry_fail(FERRY_EPARSE, "not an ONNX model: %s is missing",
                        !mp->has_ir_version ? "ir_version" : "the graph");
        goto fail;
    }
    ld.mp = mp;
    ld.gp = mp->graph;
    ld.base_dir = base_dir;
    ld.len = len;
    ld.opset = domain_opset(mp, "");
    if (ld.opset <= 0) {
        st = ferry_fail(FERRY_EPARSE, "the model imports no opset of the default domain");
        goto fail;
    }
    if (ld.opset < OPSET_MIN || ld.opset > OPSET_MAX) {
        st = ferry_fail(FERRY_EUNSUPPORTED, "opset %lld is not supported (%d to %d are)",
                        (long long)ld.opset, OPSET_MIN, OPSET_MAX);
        goto fail;
    }
    if (!(ld.g = graph_new())) {
        st = FERRY_ENOMEM;
        goto fail;
    }
    ld.g->opset = ld.opset;
    if (mp->producer_name && !(ld.g->producer = strdup(mp->producer_name))) {
        st = ferry_fail(FERRY_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = load_graph(&ld)))
        goto fail;
    free(ld.names.slot);
    free(ld.dropped);
    onnx__model_proto__free_unpacked(mp, NULL);
    *out = ld.g;
    return FERRY_OK;
fail:
    free(ld.names.slot);
    free(ld.dropped);
    graph_free(ld.g);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

ferry_status onnx_read_file(const char *path, char **buf_out, size_t *len_out)
{
    ferry_status st = FERRY_OK;
    char *buf = NULL;
    *buf_out = NULL;
    /* O_NONBLOCK: a FIFO or device would block open() before the check
     * below can refuse it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return ferry_fail(FERRY_EIO, "model '%s': cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb)) {
        st = ferry_fail(FERRY_EIO, "model '%s': cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = ferry_fail(FERRY_EIO, "model '%s': not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size >= SIZE_MAX) {
        st = ferry_fail(FERRY_ENOMEM, "model '%s': too large", path);
        goto out;
    }
    size_t len = (size_t)sb.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        st = ferry_fail(FERRY_ENOMEM, "model '%s': out of memory for %zu bytes", path, len);
        goto out;
    }
    if (len && fread(buf, 1, len, f) != len) {
        st = ferry_fail(FERRY_EIO, "model '%s': read failed: %s", path,
                        ferror(f) ? strerror(errno) : "short read");
        goto out;
    }
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
out:
    fclose(f);
    free(buf);
    return st;
}

ferry_status onnx_load_file(const char *path, graph **out)
{
    ferry_status st;
    char *buf = NULL, *dir = NULL;
    size_t len = 0;
    if (!out)
        return ferry_fail(FERRY_EINVAL, "onnx_load_file: out is NULL");
    *out = NULL;
    if (!path)
        return ferry_fail(FERRY_EINVAL, "onnx_load_file: path is NULL");
    if ((st = onnx_read_file(path, &buf, &len)) != FERRY_OK)
        return st;
    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) {
        st = ferry_fail(FERRY_ENOMEM, "model '%s': out of memory", path);
        goto out;
    }
    st = onnx_load_buffer(buf, len, dir, out);
    if (st)
        ferry_fail_prefix(st, "model '%s'", path);
out:
    free(buf);
    free(dir);
    return st;
}

/* The name of the inputs' length axis: their one symbolic dimension besides
 * dim 0 (the batch), or `want` when given (which some input must declare).
 * name[0] = '\0' when the inputs have none (a model with only a batch). */
ferry_status onnx_find_length_axis(const void *buf, size_t len, const char *want, char *name,
                                   size_t cap)
{
    ferry_status st = FERRY_OK;
    name[0] = '\0';
    Onnx__ModelProto *mp = len ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    if (!mp || !mp->graph) {
        /* the full load reports what is wrong with the file */
        if (mp)
            onnx__model_proto__free_unpacked(mp, NULL);
        return FERRY_OK;
    }
    const Onnx__GraphProto *gp = mp->graph;
    char seen[256] = "";
    size_t at = 0;
    int found_want = 0, n_names = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const Onnx__TypeProto *tp = vi ? vi->type : NULL;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
            !tp->tensor_type->shape)
            continue;
        const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
        for (size_t d = 1; d < sh->n_dim; d++) {
            const Onnx__TensorShapeProto__Dimension *dm = sh->dim[d];
            if (!dm || dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ||
                !dm->dim_param || !*dm->dim_param)
                continue;
            if (want && !strcmp(want, dm->dim_param))
                found_want = 1;
            if (!name[0]) {
                snprintf(name, cap, "%s", dm->dim_param);
                n_names = 1;
            } else if (strcmp(name, dm->dim_param) && !strstr(seen, dm->dim_param)) {
                n_names++;
            }
            if (!strstr(seen, dm->dim_param) && at < sizeof seen)
                at += (size_t)snprintf(seen + at, sizeof seen - at, "%s'%s'", at ? ", " : "",
                                       dm->dim_param);
        }
    }
    if (want) {
        if (!found_want)
            st = ferry_fail(FERRY_ENOTFOUND,
                            "length axis '%s': no input declares a dimension of that name "
                            "(the inputs' symbolic axes besides the batch: %s)",
                            want, seen[0] ? seen : "none");
        else
            snprintf(name, cap, "%s", want);
    } else if (n_names > 1) {
        st = ferry_fail(FERRY_EUNSUPPORTED,
                        "the inputs have several symbolic axes besides the batch (%s); Ferry "
                        "varies one, the length axis: name it (--length-axis NAME)",
                        seen);
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}
