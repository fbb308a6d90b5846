/* lengths.h - an engine of length buckets (lengths.c), called by engine.c. */
#ifndef FERRY_ENGINE_LENGTHS_H
#define FERRY_ENGINE_LENGTHS_H

#include "engine/engine_impl.h"

/* Creates one engine per length bucket of e->model into e->sub. */
ferry_status lengths_create(ferry_engine *e);
void lengths_destroy(ferry_engine *e);
ferry_status lengths_run(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                         ferry_tensor *outputs, int n_out);
ferry_status lengths_submit(ferry_engine *e, const ferry_tensor *inputs, int n_in,
                            ferry_tensor *outputs, int n_out, ferry_done_fn done, void *user);
ferry_status lengths_run_many(ferry_engine *e, int n_batches, const ferry_tensor *inputs, int n_in,
                              ferry_tensor *outputs, int n_out);
ferry_status lengths_warmup(ferry_engine *e);
void lengths_stats(const ferry_engine *e, ferry_engine_stats *out);

#endif
