/*
 * onnx_write.c - builds seeded MLPs as ONNX ModelProtos with protobuf-c and
 * writes them atomically. This is how the build makes its reference model
 * (no Python needed), and how tests make models of any shape.
 *
 * Every message lives in one bump arena freed at the end, so building is a
 * straight line of allocations with a single failure exit.
 */
#include "graph/onnx_write.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "util/error.h"

#define MLP_MAX_LAYERS 64
#define MLP_MAX_WIDTH (1 << 20)
#define EXT_ALIGN 4096 /* external tensors start on page boundaries (mmap) */

/* ---------------------------------------------------------- the arena */

typedef struct block {
    struct block *next;
    max_align_t data[];
} block;

typedef struct arena {
    block *head;
    int failed;
} arena;

static void *arena_alloc(arena *a, size_t size)
{
    block *b = calloc(1, sizeof *b + (size ? size : 1));
    if (!b) {
        a->failed = 1;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

static void arena_free(arena *a)
{
    while (a->head) {
        block *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

static char *arena_printf(arena *a, const char *fmt, ...) FERRY_PRINTF(2, 3);
static char *arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->failed = 1;
        return NULL;
    }
    char *s = arena_alloc(a, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---------------------------------------------------------- the PRNG */

/* splitmix64: tiny, seedable with any value (0 included), good enough to
 * make weights that look like a trained layer's scale. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* U(-bound, bound) as float, from the top 24 bits (exact in float). */
static float uniform(uint64_t *s, double bound)
{
    double u = (double)(splitmix64(s) >> 40) * (1.0 / 16777216.0);
    return (float)((2.0 * u - 1.0) * bound);
}

/* -------------------------------------------------------- message kit */

typedef struct mlp_builder {
    arena a;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int external;
    const char *ext_location; /* file name of the external data, relative */
    uint8_t *ext;             /* the external data being laid out */
    size_t ext_len, ext_cap;
} mlp_builder;

static Onnx__AttributeProto *attr_int(mlp_builder *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = arena_alloc(&b->a, sizeof *at);
    if (!at)
        return NULL;
    onnx__attribute_proto__init(at);
    at->name = (char *)name;
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = v;
    return at;
}

static Onnx__AttributeProto *attr_str(mlp_builder *b, const char *name, const char *v)
{
    Onnx__AttributeProto *at = arena_alloc(&b->a, sizeof *at);
    if (!at)
        return NULL;
    onnx__attribute_proto__init(at);
    at->name = (char *)name;
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    at->has_s = 1;
    at->s.data = (uint8_t *)v;
    at->s.len = strlen(v);
    return at;
}

/* Appends a node op(in...) -> out with up to one attribute. */
static int add_node(mlp_builder *b, const char *op, const char *name, const char *in0,
                    const char *in1, const char *in2, const char *out, Onnx__AttributeProto *at)
{
    if (b->a.failed)
        return -1;
    if (b->n_nodes == b->cap_nodes) {
        size_t cap = b->cap_nodes ? b->cap_nodes * 2 : 32;
        Onnx__NodeProto **nn = arena_alloc(&b->a, cap * sizeof *nn);
        if (!nn)
            return -1;
        if (b->n_nodes)
            memcpy(nn, b->nodes, b->n_nodes * sizeof *nn);
        b->nodes = nn;
        b->cap_nodes = cap;
    }
    Onnx__NodeProto *n = arena_alloc(&b->a, sizeof *n);
    char **ins = arena_alloc(&b->a, 3 * sizeof *ins);
    char **outs = arena_alloc(&b->a, sizeof *outs);
    Onnx__AttributeProto **ats = arena_alloc(&b->a, sizeof *ats);
    if (!n || !ins || !outs || !ats)
        return -1;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    ins[0] = (char *)in0;
    ins[1] = (char *)in1;
    ins[2] = (char *)in2;
    n->input = ins;
    n->n_input = in2 ? 3 : in1 ? 2 : 1;
    outs[0] = (char *)out;
    n->output = outs;
    n->n_output = 1;
    if (at) {
        ats[0] = at;
        n->attribute = ats;
        n->n_attribute = 1;
    }
    b->nodes[b->n_nodes++] = n;
    return 0;
}

static void put_le32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

/* Reserves room for len bytes in the external data, page aligned. */
static uint8_t *ext_reserve(mlp_builder *b, size_t len, size_t *offset)
{
    size_t off = (b->ext_len + EXT_ALIGN - 1) / EXT_ALIGN * EXT_ALIGN;
    if (off + len > b->ext_cap) {
        size_t cap = b->ext_cap ? b->ext_cap : 1 << 16;
        while (cap < off + len)
            cap *= 2;
        uint8_t *p = realloc(b->ext, cap);
        if (!p) {
            b->a.failed = 1;
            return NULL;
        }
        memset(p + b->ext_cap, 0, cap - b->ext_cap);
        b->ext = p;
        b->ext_cap = cap;
    }
    b->ext_len = off + len;
    *offset = off;
    return b->ext + off;
}

static Onnx__StringStringEntryProto *kv(mlp_builder *b, const char *k, char *v)
{
    Onnx__StringStringEntryProto *e = arena_alloc(&b->a, sizeof *e);
    if (!e || !v)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)k;
    e->value = v;
    return e;
}

/* Adds an f32 initializer; data (n elements) is filled by the caller
 * through the returned pointer (little-endian bytes). external: store it
 * in the side file when the builder writes one. */
static uint8_t *add_init(mlp_builder *b, const char *name, int ndim, const int64_t *dims,
                         int external)
{
    if (b->a.failed)
        return NULL;
    if (b->n_inits == b->cap_inits) {
        size_t cap = b->cap_inits ? b->cap_inits * 2 : 32;
        Onnx__TensorProto **nt = arena_alloc(&b->a, cap * sizeof *nt);
        if (!nt)
            return NULL;
        if (b->n_inits)
            memcpy(nt, b->inits, b->n_inits * sizeof *nt);
        b->inits = nt;
        b->cap_inits = cap;
    }
    Onnx__TensorProto *t = arena_alloc(&b->a, sizeof *t);
    int64_t *d = arena_alloc(&b->a, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        d[i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->name = (char *)name;
    t->dims = d;
    t->n_dims = (size_t)ndim;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    uint8_t *bytes;
    if (external && b->external) {
        size_t off;
        bytes = ext_reserve(b, n * 4, &off);
        Onnx__StringStringEntryProto **e = arena_alloc(&b->a, 3 * sizeof *e);
        if (!bytes || !e)
            return NULL;
        e[0] = kv(b, "location", (char *)b->ext_location);
        e[1] = kv(b, "offset", arena_printf(&b->a, "%zu", off));
        e[2] = kv(b, "length", arena_printf(&b->a, "%zu", n * 4));
        if (!e[0] || !e[1] || !e[2])
            return NULL;
        t->external_data = e;
        t->n_external_data = 3;
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    } else {
        bytes = arena_alloc(&b->a, n * 4);
        if (!bytes)
            return NULL;
        t->has_raw_data = 1;
        t->raw_data.data = bytes;
        t->raw_data.len = n * 4;
    }
    b->inits[b->n_inits++] = t;
    return bytes;
}

static int add_scalar(mlp_builder *b, const char *name, float v)
{
    uint8_t *p = add_init(b, name, 0, NULL, 0);
    if (!p)
        return -1;
    put_le32(p, v);
    return 0;
}

/* [batch, width] f32 value info. */
static Onnx__ValueInfoProto *value_info(mlp_builder *b, const char *name, int64_t width)
{
    Onnx__ValueInfoProto *vi = arena_alloc(&b->a, sizeof *vi);
    Onnx__TypeProto *tp = arena_alloc(&b->a, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = arena_alloc(&b->a, sizeof *tt);
    Onnx__TensorShapeProto *sh = arena_alloc(&b->a, sizeof *sh);
    Onnx__TensorShapeProto__Dimension *d0 = arena_alloc(&b->a, sizeof *d0);
    Onnx__TensorShapeProto__Dimension *d1 = arena_alloc(&b->a, sizeof *d1);
    Onnx__TensorShapeProto__Dimension **dd = arena_alloc(&b->a, 2 * sizeof *dd);
    if (!vi || !tp || !tt || !sh || !d0 || !d1 || !dd)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    onnx__tensor_shape_proto__dimension__init(d0);
    onnx__tensor_shape_proto__dimension__init(d1);
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0->dim_param = "batch";
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1->dim_value = width;
    dd[0] = d0;
    dd[1] = d1;
    sh->dim = dd;
    sh->n_dim = 2;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

/* ------------------------------------------------------- activations */

typedef enum mlp_act { MA_NONE, MA_RELU, MA_GELU, MA_GELU_TANH, MA_TANH, MA_SIGMOID } mlp_act;

static const struct {
    const char *name;
    mlp_act act;
} acts[] = {
    {"relu", MA_RELU}, {"gelu", MA_GELU},       {"gelu_tanh", MA_GELU_TANH},
    {"tanh", MA_TANH}, {"sigmoid", MA_SIGMOID}, {"none", MA_NONE},
};

const char *onnx_write_mlp_acts(void)
{
    return "relu, gelu, gelu_tanh, tanh, sigmoid, none";
}

/* The constants the GELU decompositions read, shared by every layer. */
static int add_gelu_consts(mlp_builder *b, mlp_act act)
{
    if (add_scalar(b, "gelu.one", 1.0f) || add_scalar(b, "gelu.half", 0.5f))
        return -1;
    if (act == MA_GELU)
        return add_scalar(b, "gelu.sqrt2", 1.4142135623730951f);
    if (add_scalar(b, "gelu.kappa", 0.044715f) || add_scalar(b, "gelu.beta", 0.7978845608028654f))
        return -1;
    return 0;
}

/* Appends activation nodes reading x, writing out; layer names them. */
static int add_act(mlp_builder *b, mlp_act act, int opset, int layer, const char *x,
                   const char *out)
{
    arena *a = &b->a;
#define NM(suffix) arena_printf(a, "act%d%s", layer, suffix)
    switch (act) {
    case MA_NONE: return -1; /* the caller chains the Gemms directly */
    case MA_RELU: return add_node(b, "Relu", NM(""), x, NULL, NULL, out, NULL);
    case MA_TANH: return add_node(b, "Tanh", NM(""), x, NULL, NULL, out, NULL);
    case MA_SIGMOID: return add_node(b, "Sigmoid", NM(""), x, NULL, NULL, out, NULL);
    case MA_GELU:
        if (opset >= 20)
            return add_node(b, "Gelu", NM(""), x, NULL, NULL, out, NULL);
        /* y = (x * (1 + erf(x / sqrt2))) * 0.5, as torch.onnx exports it */
        if (add_node(b, "Div", NM(".div"), x, "gelu.sqrt2", NULL, NM(".div.out"), NULL) ||
            add_node(b, "Erf", NM(".erf"), NM(".div.out"), NULL, NULL, NM(".erf.out"), NULL) ||
            add_node(b, "Add", NM(".add"), NM(".erf.out"), "gelu.one", NULL, NM(".add.out"),
                     NULL) ||
            add_node(b, "Mul", NM(".mul"), x, NM(".add.out"), NULL, NM(".mul.out"), NULL))
            return -1;
        return add_node(b, "Mul", NM(".half"), NM(".mul.out"), "gelu.half", NULL, out, NULL);
    case MA_GELU_TANH:
        if (opset >= 20)
            return add_node(b, "Gelu", NM(""), x, NULL, NULL, out,
                            attr_str(b, "approximate", "tanh"));
        /* y = 0.5 * (x * (1 + tanh(beta * (x + kappa * (x * (x * x)))))) */
        if (add_node(b, "Mul", NM(".sq"), x, x, NULL, NM(".sq.out"), NULL) ||
            add_node(b, "Mul", NM(".cube"), x, NM(".sq.out"), NULL, NM(".cube.out"), NULL) ||
            add_node(b, "Mul", NM(".kappa"), "gelu.kappa", NM(".cube.out"), NULL, NM(".kappa.out"),
                     NULL) ||
            add_node(b, "Add", NM(".inner"), x, NM(".kappa.out"), NULL, NM(".inner.out"), NULL) ||
            add_node(b, "Mul", NM(".beta"), "gelu.beta", NM(".inner.out"), NULL, NM(".beta.out"),
                     NULL) ||
            add_node(b, "Tanh", NM(".tanh"), NM(".beta.out"), NULL, NULL, NM(".tanh.out"), NULL) ||
            add_node(b, "Add", NM(".add"), "gelu.one", NM(".tanh.out"), NULL, NM(".add.out"),
                     NULL) ||
            add_node(b, "Mul", NM(".mul"), x, NM(".add.out"), NULL, NM(".mul.out"), NULL))
            return -1;
        return add_node(b, "Mul", NM(".half"), "gelu.half", NM(".mul.out"), NULL, out, NULL);
    }
#undef NM
    return -1;
}

/* ------------------------------------------------------------ writing */

/* Writes len bytes to path through a temporary file in the same folder and
 * a rename, so readers never see a half-written model. */
static ferry_status write_atomic(const char *path, const void *buf, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return ferry_fail(FERRY_ENOMEM, "out of memory writing '%s'", path);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ferry_status st = ferry_fail(FERRY_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        ferry_status st = ferry_fail(FERRY_EIO, "cannot open '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    const char *what = NULL;
    if (len && fwrite(buf, 1, len, f) != len)
        what = "write";
    else if (fflush(f))
        what = "flush";
    else if (fchmod(fd, 0644))
        what = "chmod";
    else if (fsync(fd))
        what = "fsync";
    int err = errno;
    if (fclose(f) && !what) {
        what = "close";
        err = errno;
    }
    if (!what && rename(tmp, path)) {
        what = "rename";
        err = errno;
    }
    ferry_status st = FERRY_OK;
    if (what) {
        st = ferry_fail(FERRY_EIO, "writing '%s' (%s): %s", path, what, strerror(err));
        unlink(tmp);
    }
    free(tmp);
    return st;
}

static ferry_status check_args(const char *path, const int *dims, int n_dims, const char *act,
                               int opset, mlp_act *ma)
{
    if (!path || !*path)
        return ferry_fail(FERRY_EINVAL, "mlp: no output path");
    if (!dims || n_dims < 2 || n_dims > MLP_MAX_LAYERS + 1)
        return ferry_fail(FERRY_EINVAL,
                          "mlp: need 2 to %d widths (input, hidden..., output); got %d",
                          MLP_MAX_LAYERS + 1, n_dims);
    for (int i = 0; i < n_dims; i++)
        if (dims[i] < 1 || dims[i] > MLP_MAX_WIDTH)
            return ferry_fail(FERRY_EINVAL, "mlp: width %d (#%d) is out of range 1..%d", dims[i],
                              i + 1, MLP_MAX_WIDTH);
    for (int i = 0; i + 1 < n_dims; i++)
        if ((int64_t)dims[i] * dims[i + 1] > ((int64_t)1 << 31))
            return ferry_fail(FERRY_EINVAL, "mlp: layer %d (%dx%d) has over 2^31 weights", i + 1,
                              dims[i], dims[i + 1]);
    if (opset < 13 || opset > 21)
        return ferry_fail(FERRY_EINVAL, "mlp: opset %d is not supported (13..21)", opset);
    for (size_t i = 0; act && i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(act, acts[i].name)) {
            *ma = acts[i].act;
            return FERRY_OK;
        }
    return ferry_fail(FERRY_EINVAL, "mlp: unknown activation '%s' (one of: %s)",
                      act ? act : "(null)", onnx_write_mlp_acts());
}

/* IR version of the ONNX release that introduced the opset. */
static int64_t ir_for_opset(int opset)
{
    return opset >= 21 ? 10 : opset >= 19 ? 9 : 8;
}

ferry_status onnx_write_mlp(const char *path, const int *dims, int n_dims, const char *act,
                            uint64_t seed, int opset, int external_data)
{
    if (opset == 0)
        opset = 17;
    mlp_act ma = MA_NONE;
    ferry_status st = check_args(path, dims, n_dims, act, opset, &ma);
    if (st != FERRY_OK)
        return st;

    mlp_builder b;
    memset(&b, 0, sizeof b);
    uint8_t *packed = NULL;
    char *ext_path = NULL;
    uint64_t rng = seed;
    b.external = external_data;
    if (external_data) {
        const char *slash = strrchr(path, '/');
        b.ext_location = arena_printf(&b.a, "%s.data", slash ? slash + 1 : path);
        ext_path = arena_printf(&b.a, "%s.data", path);
    }

    int layers = n_dims - 1;
    int gelu = ma == MA_GELU || ma == MA_GELU_TANH;
    if (gelu && opset < 20 && layers > 1 && add_gelu_consts(&b, ma))
        goto oom;
    const char *x = "input";
    for (int l = 1; l <= layers; l++) {
        int64_t in = dims[l - 1], out = dims[l];
        int64_t wd[2] = {out, in};
        const char *wn = arena_printf(&b.a, "fc%d.weight", l);
        const char *bn = arena_printf(&b.a, "fc%d.bias", l);
        uint8_t *w = add_init(&b, wn, 2, wd, 1);
        if (!w)
            goto oom;
        /* torch.nn.Linear's default init: kaiming_uniform(a=sqrt(5)) for the
         * weight and the bias both reduce to U(-1/sqrt(in), 1/sqrt(in)). */
        double bound = 1.0 / sqrt((double)in);
        for (int64_t i = 0; i < in * out; i++)
            put_le32(w + 4 * i, uniform(&rng, bound));
        uint8_t *bb = add_init(&b, bn, 1, &out, 1);
        if (!bb)
            goto oom;
        for (int64_t i = 0; i < out; i++)
            put_le32(bb + 4 * i, uniform(&rng, bound));

        const char *y = l == layers ? "output" : arena_printf(&b.a, "fc%d.out", l);
        if (add_node(&b, "Gemm", arena_printf(&b.a, "fc%d", l), x, wn, bn, y,
                     attr_int(&b, "transB", 1)))
            goto oom;
        if (l < layers && ma == MA_NONE) {
            x = y; /* a linear stack: Gemm feeds Gemm */
        } else if (l < layers) {
            const char *h = arena_printf(&b.a, "act%d.out", l);
            if (add_act(&b, ma, opset, l, y, h))
                goto oom;
            x = h;
        }
    }

    Onnx__ValueInfoProto *vin = value_info(&b, "input", dims[0]);
    Onnx__ValueInfoProto *vout = value_info(&b, "output", dims[n_dims - 1]);
    Onnx__GraphProto *gp = arena_alloc(&b.a, sizeof *gp);
    Onnx__ModelProto *mp = arena_alloc(&b.a, sizeof *mp);
    Onnx__OperatorSetIdProto *os = arena_alloc(&b.a, sizeof *os);
    Onnx__OperatorSetIdProto **osl = arena_alloc(&b.a, sizeof *osl);
    Onnx__ValueInfoProto **vins = arena_alloc(&b.a, sizeof *vins);
    Onnx__ValueInfoProto **vouts = arena_alloc(&b.a, sizeof *vouts);
    if (b.a.failed || !vin || !vout || !gp || !mp || !os || !osl || !vins || !vouts)
        goto oom;
    onnx__graph_proto__init(gp);
    gp->name = "mlp";
    gp->node = b.nodes;
    gp->n_node = b.n_nodes;
    gp->initializer = b.inits;
    gp->n_initializer = b.n_inits;
    vins[0] = vin;
    vouts[0] = vout;
    gp->input = vins;
    gp->n_input = 1;
    gp->output = vouts;
    gp->n_output = 1;

    onnx__operator_set_id_proto__init(os);
    os->domain = "";
    os->has_version = 1;
    os->version = opset;
    osl[0] = os;

    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = ir_for_opset(opset);
    mp->opset_import = osl;
    mp->n_opset_import = 1;
    mp->producer_name = "ferry";
    mp->producer_version = FERRY_VERSION;
    mp->graph = gp;

    size_t len = onnx__model_proto__get_packed_size(mp);
    packed = malloc(len ? len : 1);
    if (!packed)
        goto oom;
    if (onnx__model_proto__pack(mp, packed) != len) {
        st = ferry_fail(FERRY_EINTERNAL, "writing '%s': protobuf packing size mismatch", path);
        goto out;
    }
    /* The data first: a model on disk always finds its weights. */
    if (external_data && (st = write_atomic(ext_path, b.ext, b.ext_len)) != FERRY_OK)
        goto out;
    st = write_atomic(path, packed, len);
    goto out;

oom:
    st = ferry_fail(FERRY_ENOMEM, "out of memory building the MLP for '%s'", path);
out:
    free(packed);
    free(b.ext);
    arena_free(&b.a);
    return st;
}
