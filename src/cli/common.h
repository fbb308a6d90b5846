/* common.h - small helpers shared by the CLI's subcommands. */
#ifndef FERRY_CLI_COMMON_H
#define FERRY_CLI_COMMON_H

#include <stdint.h>

#include "ferry.h"

/* Inputs or outputs a command handles. */
#define CLI_MAX_IO 64

/* Parses "fp32|tf32|fp16|bf16"; returns 0 on success. */
int cli_parse_precision(const char *s, ferry_precision *out);
const char *cli_precision_name(ferry_precision p);
/* Parses a comma-separated list of positive integers into out (max n). Returns count or -1. */
int cli_parse_int_list(const char *s, int64_t *out, int max);
/* The strict parsers every numeric option goes through: the whole of val
 * must be a number (no "8x", no "", no "abc") within lo..hi (hi LLONG_MAX:
 * no upper bound). On failure they print "<cmd>: <opt> wants an integer in
 * lo..hi, got '<val>'" and return -1; else 0 with *out set. */
int cli_parse_int(const char *cmd, const char *opt, const char *val, long long lo, long long hi,
                  long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *val, double lo, double hi,
                     double *out);
/* Formats a shape with N for the batch dim: "[N,256]". */
void cli_shape_str(char *buf, size_t len, int ndim, const int64_t *dims);
/* Prints "ferry: <what>: <status>: <message>" to stderr; returns exit code 1. */
int cli_error(const char *what, ferry_status st);

/* Fills input i's tensor t (shape, dtype and memory set) with seeded random
 * data the model can take: floats in [-1, 1), ids within the embedding
 * table they index, masks of ones (random_input.c). */
void cli_random_fill(const ferry_model *m, int i, ferry_tensor *t, uint64_t seed);

#endif
