/*
 * fuzz_model_config.c - libFuzzer harness: config.pbtxt bytes through the
 * protobuf text format reader (pbtxt.c) and their meaning for Ferry
 * (model_config.c: every applied field's checks, the ignored-field
 * reports, the version policy), as the model repository reads a file it
 * finds (repo.c). The bytes are copied to a buffer of exactly their
 * length, so that ASan sees any read past them.
 *
 * Any crash, leak, sanitizer report or hang is a finding; a refusal must
 * come with a message that names a line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_ignored(void *user, const char *field, const char *why)
{
    if (!field || !*field || !why || !*why)
        abort();
    (*(int *)user)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    model_config mc;
    char err[400];
    int n_ignored = 0;
    if (!model_config_read(text, size, "m", &mc, on_ignored, &n_ignored, err, sizeof err)) {
        if (!*err) {
            fprintf(stderr, "fuzz_model_config: refused without a message\n");
            abort();
        }
    } else {
        ferry_engine_config ec;
        ferry_batcher_config bc;
        ferry_engine_config_init(&ec);
        ferry_batcher_config_init(&bc);
        model_config_apply(&mc, &ec, &bc);
        const int64_t all[] = {1, 2, 3, 7};
        int n = 0;
        for (int i = 0; i < 4; i++)
            n += model_config_wants(&mc, all[i], all, 4);
        if (mc.policy == VP_ALL && n != 4)
            abort();
    }
    free(text);
    return 0;
}
