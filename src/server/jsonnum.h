/*
 * jsonnum.h - JSON numbers in and out, for the server's hot paths: the
 * "data" arrays of infer requests and responses.
 *
 * In: the strict RFC 8259 grammar, read to the correctly rounded double
 * (what strtod gives) without strtod for the numbers clients send: Clinger's
 * exact fast path, then Eisel-Lemire's 128-bit product, then strtod_l in the
 * "C" locale for what neither settles. Integer literals are also kept
 * exactly as int64, so that INT64 data needs no trip through double.
 *
 * Out: the shortest decimal that reads back to the same float (Ryu).
 */
#ifndef FERRY_SERVER_JSONNUM_H
#define FERRY_SERVER_JSONNUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jsonnum {
    double d;     /* the value, correctly rounded (+-inf past DBL_MAX) */
    int64_t i;    /* the value, when is_int */
    bool is_int;  /* an integer literal (no fraction or exponent) within int64 */
    bool integer; /* an integer literal, whether or not it fits int64 */
} jsonnum;

/*
 * Reads the JSON number at *pp (before end). On success advances *pp past
 * it and returns true; on a malformed number ("-", "01", "1.", "1e", "+1",
 * ".5") leaves *pp at the offending byte and returns false. The byte after
 * the number is not examined: "1x" reads as 1 with *pp at 'x'.
 */
bool jsonnum_parse(const char **pp, const char *end, jsonnum *out);

/*
 * The shortest decimal digits of a finite nonzero float's magnitude that read
 * back to it (ties to the nearest of the candidates): f == digits * 10^e10,
 * digits < 10^9. Returns the number of digits.
 */
int jsonnum_f32_shortest(float f, uint32_t *digits, int *e10);

/*
 * Writes f as a JSON number into p (which needs 16 bytes of room, plus 16
 * for the fixed-size copies inside: 32 in all) and returns the length: "0"
 * for +-0, "null" for NaN and +-Inf (JSON has no spelling for them), plain
 * notation for exponents -5..8 ("0.00125", "1234.5"), else "1.5e-7".
 */
size_t jsonnum_write_f32(char *p, float f);

#endif
