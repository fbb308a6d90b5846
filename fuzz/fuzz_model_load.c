/*
 * fuzz_model_load.c - libFuzzer harness: ONNX model bytes through the
 * public ferry_model_load_buffer (protobuf-c decoding, every operator's
 * attributes and arity, initializers, shape inference and the graph
 * passes that loading runs), then the model's public queries. No base
 * directory: external data is refused before any file is opened, so a
 * fuzzed location cannot make the harness read the disk.
 *
 * Any crash, leak, sanitizer report or hang is a finding; a status other
 * than FERRY_OK must come with a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ferry_model *m = NULL;
    ferry_status st = ferry_model_load_buffer(data, size, NULL, &m);
    if (st != FERRY_OK) {
        const char *msg = ferry_last_error();
        if (m || !msg || !*msg) {
            fprintf(stderr, "fuzz_model_load: status %s without a message or with a model\n",
                    ferry_status_str(st));
            abort();
        }
        return 0;
    }
    for (int i = 0; i < ferry_model_num_inputs(m); i++) {
        ferry_tensor_info t;
        if (ferry_model_input(m, i, &t) != FERRY_OK || !t.name)
            abort();
    }
    for (int i = 0; i < ferry_model_num_outputs(m); i++) {
        ferry_tensor_info t;
        if (ferry_model_output(m, i, &t) != FERRY_OK || !t.name)
            abort();
    }
    ferry_model_destroy(m);
    return 0;
}
