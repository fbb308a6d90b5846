/*
 * engine.h - the engine's internal interface for the layer above (the
 * batcher): batch slots whose host staging buffers a caller fills directly,
 * so that request data is copied once, straight into the batch that runs.
 *
 * A slot belongs to one worker; it holds host staging for every input and
 * output (io dtype, max_batch samples, pinned on CUDA), device buffers and
 * an arena. Life of a slot:
 *   engine_slot_acquire -> fill engine_slot_input() -> engine_slot_submit(n)
 *   -> done(user, slot, st) runs on an engine thread; read
 *   engine_slot_output() there -> engine_slot_release (in done or later).
 */
#ifndef FERRY_ENGINE_ENGINE_H
#define FERRY_ENGINE_ENGINE_H

#include <stdint.h>

#include "ferry.h"
#include "util/timeutil.h" /* ferry_now_us, for the layers above */

typedef struct engine_slot engine_slot;

typedef void (*engine_slot_done_fn)(void *user, engine_slot *s, ferry_status st);

/* Takes a free slot, waiting up to timeout_us (< 0: forever).
 * FERRY_ETIMEDOUT if none frees up; FERRY_ESHUTDOWN while destroying. */
ferry_status engine_slot_acquire(ferry_engine *e, int64_t timeout_us, engine_slot **out);

/* Host staging of input i: room for max_batch samples in io dtype. */
void *engine_slot_input(engine_slot *s, int i);
/* Host staging of output i: valid once done has run with FERRY_OK. */
const void *engine_slot_output(const engine_slot *s, int i);

/* Runs the slot's first n samples asynchronously; done runs exactly once. */
ferry_status engine_slot_submit(engine_slot *s, int64_t n, engine_slot_done_fn done, void *user);

/* Set before engine_slot_submit: fill(user, s) then writes the slot's
 * inputs on the worker's own thread, just before the batch is issued, so
 * that the copies of different batches run on different threads instead
 * of the submitter's one (large inputs: images). It runs exactly once if
 * submit returns FERRY_OK, before done. */
typedef void (*engine_slot_fill_fn)(void *user, engine_slot *s);
void engine_slot_set_fill(engine_slot *s, engine_slot_fill_fn fill, void *user);

/* Returns a slot to its worker. */
void engine_slot_release(engine_slot *s);

/* Bytes of one sample of input / output i in io dtype. */
size_t engine_input_sample_bytes(const ferry_engine *e, int i);
/* Input i's valid indices when it indexes a constant table (graph.h's
 * graph_index_range): 1 and [*lo, *hi), else 0. */
int engine_input_index_range(const ferry_engine *e, int i, int64_t *lo, int64_t *hi);
size_t engine_output_sample_bytes(const ferry_engine *e, int i);
int engine_max_batch(const ferry_engine *e);
const ferry_model *engine_model(const ferry_engine *e);
/* Length buckets: how many (0: the model has no length axis) and the
 * engine running bucket k (of the model's length k). */
int engine_num_lengths(const ferry_engine *e);
/* Takes device k of a multi-device engine out of service, as a failed
 * batch on it does (engine_impl.h dev_bad): for tests of the others
 * carrying on. */
void engine_mark_device_bad(ferry_engine *e, int k);
ferry_engine *engine_length_engine(const ferry_engine *e, int k);

#endif
