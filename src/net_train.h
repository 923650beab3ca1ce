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

/* Told during backward that the parameter gradients of layers [layer, last) are final:
 * nothing in the rest of this backward writes them (a data-parallel run starts summing them
 * over the ranks while backward goes on below; dist.h's hs_dist_reducer). */
typedef void (*hs_grads_ready_fn)(void *ctx, int layer);

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
    hs_grads_ready_fn grads_ready; /* NULL: nobody listens */
    void *grads_ready_ctx;
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
/* The same with each sample's id (its index in the data set, n of them): dropout and drop
 * connect draw sample i's mask from (rng's state, the layer, samples[i]) alone
 * (hs_rng_for_sample), so a sample gets its mask whatever batch or rank it is in. rng is only
 * read: the caller gives each step its own key, or ids that differ between steps.
 * hs_tape_forward passes the positions 0..n-1. */
hs_status hs_tape_forward_samples(hs_tape *t, const float *input, int n, int training,
                                  hs_rng *rng, const int *samples, hs_error *err);
static inline const float *hs_tape_output(const hs_tape *t) { return t->acts[t->last - t->first]; }
/* Where the caller writes d(loss)/d(output) before hs_tape_backward. */
static inline float *hs_tape_output_grad(hs_tape *t) { return t->grads[t->last - t->first]; }
/* The gradient of the range's input after backward (input_grad tapes only). */
static inline const float *hs_tape_input_grad(const hs_tape *t) { return t->grads[0]; }

/* Backward over the range after a training forward. After each layer it calls
 * t->grads_ready (when set) with that layer's index. */
hs_status hs_tape_backward(hs_tape *t, hs_error *err);

/* The first layer of [first, last) whose parameters train, or last when none does. */
int hs_net_freeze_boundary(const hs_net *net, int first, int last);

/* Zeroes the gradient arena. */
void hs_net_zero_grad(hs_net *net);

#endif
