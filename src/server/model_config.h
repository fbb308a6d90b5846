/*
 * model_config.h - the part of Triton's model configuration (config.pbtxt,
 * ModelConfig in Triton's model_config.proto) that maps to Ferry's knobs,
 * read from the text of the file; and the version policy that picks which
 * version directories of a repository model are served.
 */
#ifndef FERRY_SERVER_MODEL_CONFIG_H
#define FERRY_SERVER_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

typedef enum { VP_LATEST = 0, VP_ALL, VP_SPECIFIC } vp_kind;

/* At most this many versions in a `specific` policy. */
#define MC_MAX_VERSIONS 64

typedef struct model_config {
    /* each knob with whether the file set it; unset knobs keep the
     * server's defaults (the command line's) */
    bool has_max_batch;
    int max_batch;
    bool has_delay;
    int64_t max_delay_us;
    int n_preferred; /* > 0: preferred_batch_size set */
    int preferred[FERRY_MAX_PREFERRED];
    bool has_priority_levels;
    int priority_levels;
    int default_priority_level; /* Triton's: 1 the highest; 0: the lowest, levels */
    bool has_timeout;
    int64_t default_timeout_us;
    bool has_max_queue;
    int max_queue;
    bool has_workers;
    int workers;              /* instance_group counts, summed */
    char model_filename[256]; /* default_model_filename; default "model.onnx" */
    vp_kind policy;
    int latest_n; /* VP_LATEST: how many of the highest versions (default 1) */
    int n_versions;
    int64_t versions[MC_MAX_VERSIONS]; /* VP_SPECIFIC */
} model_config;

/* Called once per field Ferry reads but does not apply, with the field's
 * path ("dynamic_batching.preserve_ordering") and why. */
typedef void (*mc_warn_fn)(void *user, const char *field, const char *why);

/* Reads config.pbtxt's text for model `name` into *out (defaults first:
 * no file is the empty text). Every field that is not applied is reported
 * once through warn. Returns false with "line L: ..." in err for a syntax
 * error, a value of the wrong type or range, or a name, platform or backend
 * that is not this model or not ONNX. */
bool model_config_read(const char *text, size_t len, const char *name, model_config *out,
                       mc_warn_fn warn, void *user, char *err, size_t errlen);

/* Applies what the file set over the server's defaults. */
void model_config_apply(const model_config *mc, ferry_engine_config *ec, ferry_batcher_config *bc);

/* Whether version v (of the model's version directories, all of them in
 * `all`, n_all of them) is served under the policy. */
bool model_config_wants(const model_config *mc, int64_t v, const int64_t *all, int n_all);

#endif
