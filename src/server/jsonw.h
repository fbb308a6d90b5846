/*
 * jsonw.h - a growable byte buffer and the few JSON writers the server needs.
 *
 * Requests are read by kserve_parse.c; writing is done here because
 * responses are mostly long arrays of floats, and cJSON prints each number
 * with "%1.15g" and then re-parses it to check the round trip, which costs
 * more than the inference of a small model. jsonw_f32 writes the shortest
 * decimal that reads back to the same float (jsonnum.c).
 */
#ifndef FERRY_SERVER_JSONW_H
#define FERRY_SERVER_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jsonw {
    char *buf;
    size_t len, cap;
    bool oom; /* an allocation failed; the contents are incomplete */
} jsonw;

/* Makes room for n more bytes; false (and oom set) when out of memory. */
bool jsonw_reserve(jsonw *w, size_t n);
void jsonw_mem(jsonw *w, const void *p, size_t n);
void jsonw_str_raw(jsonw *w, const char *s); /* no quoting or escaping */
void jsonw_char(jsonw *w, char c);
/* A JSON string literal: quotes and escapes s; bytes of s that are not
 * well-formed UTF-8 are written as U+FFFD, so the result is always valid. */
void jsonw_str(jsonw *w, const char *s);
/* The same for the n bytes at s, NULs included (written as \u0000). */
void jsonw_strn(jsonw *w, const char *s, size_t n);
void jsonw_i64(jsonw *w, int64_t v);
void jsonw_u64(jsonw *w, uint64_t v);
/* The shortest decimal that reads back to the same float; null for NaN/Inf
 * (JSON has no spelling for them), "0" for -0. At most 16 characters, but it
 * needs 32 bytes of room. */
void jsonw_f32(jsonw *w, float v);
/* As jsonw_f32 for doubles (17 significant digits). */
void jsonw_f64(jsonw *w, double v);
void jsonw_free(jsonw *w);

#endif
