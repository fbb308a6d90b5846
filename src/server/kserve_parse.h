/*
 * kserve_parse.h - the KServe v2 infer request's JSON, read in one pass
 * without a document tree.
 *
 * kreq_parse checks the whole body's JSON syntax and records the fields an
 * infer request has (id, parameters, inputs, outputs) as views into the
 * body. An input's "data" array is decoded straight into the model input's
 * buffer when its name, datatype and shape came before it (as clients write
 * them) and are valid; otherwise only its position is kept and kreq_fill
 * decodes it later. kserve.c then checks the fields in a fixed order, so
 * that errors read the same whatever the key order.
 */
#ifndef FERRY_SERVER_KSERVE_PARSE_H
#define FERRY_SERVER_KSERVE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

typedef enum kreq_kind {
    KREQ_ABSENT = 0,
    KREQ_NULL,
    KREQ_BOOL,
    KREQ_NUMBER,
    KREQ_STRING,
    KREQ_ARRAY,
    KREQ_OBJECT,
} kreq_kind;

/* A scalar field (or the kind of a non-scalar one). Strings are decoded:
 * s points into the body when the string had no escapes, else into the
 * request's scratch buffer; it is not NUL-terminated and may hold NULs. */
typedef struct kreq_val {
    kreq_kind kind;
    bool b;
    double num;
    const char *s;
    size_t n;
} kreq_val;

typedef enum kreq_shape_err {
    KREQ_SHAPE_OK = 0,
    KREQ_SHAPE_BAD_DIM,  /* an entry is not a non-negative integer <= 1e15 */
    KREQ_SHAPE_TOO_LONG, /* more than FERRY_MAX_DIMS entries */
} kreq_shape_err;

typedef struct kreq_input {
    bool is_object;
    kreq_val name, datatype, binary_data_size;
    kreq_kind shape_kind;
    kreq_shape_err shape_err;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    const char *data; /* first byte of the "data" value; NULL when absent */
    int decoded_into; /* model input whose buffer holds the decoded data; -1 */
} kreq_input;

typedef struct kreq_output {
    bool is_object;
    kreq_val name, binary_data;
} kreq_output;

typedef struct kreq {
    const char *base, *end; /* the JSON part of the body */
    char *scratch;          /* decoded strings with escapes; NULL until one */
    size_t scratch_used;
    kreq_val id, params, timeout, priority, binary_data_output;
    kreq_kind inputs_kind, outputs_kind;
    int n_in, cap_in, n_out, cap_out;
    kreq_input *in;
    kreq_output *out;
    kreq_input in_s[4]; /* the usual few, without an allocation */
    kreq_output out_s[4];
    bool is_object;   /* the document is an object (else only its syntax was read) */
    size_t value_end; /* where the document's value ended */
    /* a syntax error: where, and what was expected */
    size_t err_at;
    const char *err_what;
    kreq_val dup_key; /* the error is this key, interpreted, given twice in an object */
    bool oom;
} kreq;

/* Model-side context of the eager decode: the model, and its inputs'
 * buffers (in_mem[k] == NULL until allocated; kreq_parse may allocate them
 * with malloc, numel * dtype size + 1 bytes, owned by the caller). */
typedef struct kreq_model {
    srv_model *m;
    void **in_mem;
} kreq_model;

/* Parses len bytes at json. false on a syntax error (err_at, err_what; a
 * repeated key the reader interprets is one, named in dup_key) or out of
 * memory (oom). kreq_free releases what it allocated, either way. */
bool kreq_parse(kreq *q, const char *json, size_t len, const kreq_model *km);
void kreq_free(kreq *q);

/* Decodes the "data" value at in->data into out (numel elements of dst,
 * from values of datatype req) with the checks and messages of the
 * protocol. false with a message in err on a bad value or count. */
bool kreq_fill(const kreq *q, const kreq_input *in, ferry_dtype req, ferry_dtype dst, void *out,
               int64_t numel, const int64_t *shape, int ndim, char *err, size_t errlen);

/* Whether a value fits a datatype, and if not why. */
typedef enum kserve_fit {
    KSERVE_FIT_OK = 0,
    KSERVE_FIT_INVALID, /* an integer type: a fraction, NaN or out of range */
    KSERVE_FIT_RANGE,   /* a float type: a finite value that rounds to infinity */
} kserve_fit;

/* Stores v, rounded, as element i of a dt tensor at base, when dt can hold
 * it (NaN and infinities, which only binary data can carry, are kept as
 * they are by the float types); else stores nothing and says why. */
kserve_fit kserve_store(ferry_dtype dt, void *base, int64_t i, double v);

/* The datatype named by s/n (KServe spelling), FERRY_DTYPE_UNDEFINED if none. */
ferry_dtype kreq_dtype(const char *s, size_t n);

#endif
