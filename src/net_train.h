/* The interpreter: every layer's own forward and backward (layers/) over a layer range, in
 * NCHW, with a tape of what backward needs (llm.c's ActivationTensors: allocated once for
 * the largest batch).
 *
 * Forward walks first..last-1, backward the same range in reverse (darknet's
 * backward_network) down to the freeze boundary: the first layer of the range that has
 * trainable parameters (not `frozen`). Nothing below it is computed; frozen layers above it
 * pass gradients through without computing their own. Parameter gradients accumulate into
 * the network's gradient arena (zero it with hs_net_zero_grad). A residual edge's gradient
 * forks with +=. */
#ifndef HS_NET_TRAIN_H
#define HS_NET_TRAIN_H

#include <stdint.h>

#include "layers/layer.h"
#include "net.h"
#include "rng.h"

typedef struct hs_tape {
    hs_net *net;
    int first, last, max_batch;
    int input_grad;        /* backward runs down to the range's input and writes its
                            * gradient (no freeze boundary) */
    hs_act_shape *shapes;  /* shapes[k]: activation k, the input of layer first + k */
    float **acts;          /* acts[k]: max_batch x shapes[k] (acts[last - first]: output) */
    float **grads;         /* gradient of acts[k] (allocated where backward can reach) */
    int *pending;          /* grads[k] already holds an edge's gradient: add, not write */
    float **saved;         /* per-layer tape slots (batch statistics) */
    uint8_t **masks;       /* per-layer mask slots (dropout, drop connect) */
    float *scratch;        /* a gradient that must be added to a pending one */
    int n;                 /* batch of the last forward */
    int trained;           /* the last forward was in training mode */
} hs_tape;

/* A tape for layers [first, last) on up to max_batch inputs of c x h x w. */
hs_status hs_tape_init(hs_tape *t, hs_net *net, int first, int last, int max_batch, int c,
                       int h, int w, int input_grad, hs_error *err);
void hs_tape_free(hs_tape *t);

/* Forward over the range: input (n x c x h x w) is copied onto the tape. training: dropout
 * and drop connect draw masks from rng, BatchNorm in HS_BN_TRAIN mode uses batch statistics
 * and updates its running ones. */
hs_status hs_tape_forward(hs_tape *t, const float *input, int n, int training, hs_rng *rng,
                          hs_error *err);
static inline const float *hs_tape_output(const hs_tape *t) { return t->acts[t->last - t->first]; }
/* Where the caller writes d(loss)/d(output) before hs_tape_backward. */
static inline float *hs_tape_output_grad(hs_tape *t) { return t->grads[t->last - t->first]; }
/* The gradient of the range's input after backward (input_grad tapes only). */
static inline const float *hs_tape_input_grad(const hs_tape *t) { return t->grads[0]; }

/* Backward over the range after a training forward. */
hs_status hs_tape_backward(hs_tape *t, hs_error *err);

/* The first layer of [first, last) whose parameters train, or last when none does. */
int hs_net_freeze_boundary(const hs_net *net, int first, int last);

/* Zeroes the gradient arena. */
void hs_net_zero_grad(hs_net *net);

#endif
