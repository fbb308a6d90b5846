/*
 * pbtxt.h - a reader of the protobuf text format (the language of Triton's
 * config.pbtxt), without a schema: the text becomes a tree of named fields,
 * each a scalar (its text as written, strings unescaped) or a message.
 * model_config.c gives the tree its meaning.
 *
 * The input is untrusted: any bytes give either a tree or an error naming
 * the line and what was expected; nesting, fields and string sizes are
 * bounded, so no input can exhaust the stack or memory.
 */
#ifndef FERRY_SERVER_PBTXT_H
#define FERRY_SERVER_PBTXT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum pbtxt_kind {
    PBTXT_IDENT,   /* an identifier: an enum value, true, false, inf */
    PBTXT_NUMBER,  /* a number as written: -12, 0x1f, 1.5e3, -inf */
    PBTXT_STRING,  /* a quoted string, unescaped (it may hold NULs: see len) */
    PBTXT_MESSAGE, /* { ... } or < ... > */
} pbtxt_kind;

typedef struct pbtxt_field pbtxt_field;

/* A message: its fields in the order written. A list ("f: [1, 2]" or
 * "f [{..}, {..}]") is the field repeated, once per element. */
typedef struct pbtxt_msg {
    pbtxt_field *fields;
    int n, cap;
} pbtxt_msg;

struct pbtxt_field {
    char *name;
    int line; /* 1-based, where the value starts */
    pbtxt_kind kind;
    char *text;    /* scalars: NUL-terminated */
    size_t len;    /* scalars: bytes in text */
    pbtxt_msg msg; /* PBTXT_MESSAGE */
};

/* Reads text[0..len) into *out. On a syntax error returns false, frees what
 * it built, and writes "line L: ..." to err. */
bool pbtxt_parse(const char *text, size_t len, pbtxt_msg *out, char *err, size_t errlen);
void pbtxt_free(pbtxt_msg *m);

#endif
