/*
 * cpu_rnn.h - ONNX LSTM, GRU and RNN (opsets 7-22) on f32 tensors: a compiled
 * layer (weights repacked once at create) run over caller-owned inputs,
 * outputs and workspace. Semantics follow the ONNX operator pages,
 * including layout 0/1, forward/reverse/bidirectional, sequence_lens
 * (steps past a batch entry's length are 0 in Y, Y_h/Y_c keep its last
 * valid step, reverse starts at that entry's own last step), initial
 * states, LSTM peepholes and input_forget, GRU linear_before_reset and
 * clip. Only the default activations (RNN: Tanh or Relu) are accepted.
 *
 * Concurrency: create/destroy on one thread; cpu_rnn_run is reentrant and
 * may be called on any number of threads at once with the same cpu_rnn
 * (it reads the layer and writes only the caller's outputs and workspace).
 * Private to src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_RNN_H
#define FERRY_BACKEND_CPU_RNN_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

typedef enum cpu_rnn_kind {
    CPU_RNN_LSTM = 0,
    CPU_RNN_GRU,
    CPU_RNN_PLAIN, /* ONNX RNN: one gate, Tanh or Relu */
} cpu_rnn_kind;

typedef enum cpu_rnn_direction {
    CPU_RNN_FORWARD = 0, /* "forward", the ONNX default */
    CPU_RNN_REVERSE,     /* "reverse" */
    CPU_RNN_BIDIRECTIONAL,
} cpu_rnn_direction;

/* The node's attributes. Zero-initialize, then set kind, hidden and input;
 * every other field's zero is the ONNX default. */
typedef struct cpu_rnn_params {
    cpu_rnn_kind kind;
    int64_t hidden; /* H: hidden_size (R's last dim) */
    int64_t input;  /* I: X's last dim (W's last dim) */
    cpu_rnn_direction direction;
    int layout;              /* 0: X [seq,batch,I]; 1: X [batch,seq,I] */
    int linear_before_reset; /* GRU only; 0 or 1 */
    int input_forget;        /* LSTM only; 1: f = 1 - i */
    int has_clip;            /* 1: clip gate pre-activations to [-clip, clip] */
    float clip;              /* > 0 when has_clip */
    int relu;                /* RNN only: 1 for Relu, 0 for Tanh (the default) */
    /* LSTM and GRU: X holds X W^T + Wb + Rb already ([.., D*G*H]; the
     * graph's fuse_rnn.c), so the run skips the projection; B absent, or a
     * GRU with linear_before_reset's holding only Rbh */
    int x_projected;
    /* The activations attribute as given (NULL or 0: the defaults). Must
     * name the defaults, per direction: Sigmoid,Tanh,Tanh (LSTM),
     * Sigmoid,Tanh (GRU) or relu's choice (RNN), compared ignoring case. The alpha/beta lists
     * are unused by these and not taken. */
    int n_activations;
    const char *const *activations;
    const char *name; /* the node's name, for messages; may be NULL */
} cpu_rnn_params;

typedef struct cpu_rnn cpu_rnn;

/* Checks the attributes and the weight tensors (f32: W [D,G*H,I],
 * R [D,G*H,H], optional B [D,2*G*H] and, for LSTM, optional P [D,3H];
 * D = 1 or 2 directions, G = 4 for LSTM, 3 for GRU, 1 for RNN) and builds a layer
 * holding its own repacked copy: *out is owned by the caller (free with
 * cpu_rnn_destroy); nothing of W, R, B, P is kept. Errors, naming the node
 * and tensor: FERRY_EINVAL (hidden or input < 1, bad clip or layout),
 * FERRY_ESHAPE, FERRY_EDTYPE, FERRY_EUNSUPPORTED (activations), FERRY_ENOMEM. */
ferry_status cpu_rnn_create(const cpu_rnn_params *p, const ferry_tensor *W, const ferry_tensor *R,
                            const ferry_tensor *B, const ferry_tensor *P, cpu_rnn **out);

/* Frees the layer. Accepts NULL. */
void cpu_rnn_destroy(cpu_rnn *rnn);

/* The workspace cpu_rnn_run needs for up to max_batch entries and seq_len
 * steps, in bytes: a multiple of 64, 0 if either is < 1 or their product
 * passes INT32_MAX (cpu_rnn_run refuses those). Any thread. */
size_t cpu_rnn_workspace_bytes(const cpu_rnn *rnn, int64_t max_batch, int64_t seq_len);

/* Runs the layer over x (dense f32, [seq_len,batch,I] for layout 0,
 * [batch,seq_len,I] for layout 1). sequence_lens (int32 [batch], each in
 * [0, seq_len]), initial_h, initial_c ([D,batch,H]; layout 1
 * [batch,D,H]) may be NULL (all steps, zeros); initial_c is ignored for
 * GRU. Writes the outputs that are not NULL: Y [seq_len,D,batch,H]
 * (layout 1 [batch,seq_len,D,H]), Y_h and, for LSTM, Y_c [D,batch,H]
 * (layout 1 [batch,D,H]); outputs must not overlap inputs. workspace
 * (cpu_rnn_workspace_bytes(rnn, >= batch, >= seq_len) bytes; 64-byte
 * aligned keeps its buffers on their own cache lines) is scratch. Any
 * thread, several at once. FERRY_EINVAL (with a message) for sizes < 1 or
 * too large, a NULL x or workspace, or a length out of range. */
ferry_status cpu_rnn_run(const cpu_rnn *rnn, int64_t seq_len, int64_t batch, const float *x,
                         const int32_t *sequence_lens, const float *initial_h,
                         const float *initial_c, float *Y, float *Y_h, float *Y_c, void *workspace);

#endif
