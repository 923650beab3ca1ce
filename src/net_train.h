/* The interpreter: every layer's own forward and backward (layers/) over a layer range, with
 * a tape of what backward needs (llm.c's ActivationTensors: allocated once for the largest
 * batch).
 *
 * Layouts. On the reference backend every activation is NCHW. On the fast one the tape keeps
 * an activation in the blocked layout of this CPU's kernels (hs_grad_plans_layout) wherever
 * its producer and all its readers take it (hs_fast_layout_rule): for the CNNs, from the
 * first convolution's output to the global pooling. The range's input and output (and their
 * gradients) are always NCHW.
 *
 * Fused pairs. On the fast backend a BatchNorm whose output only a ReLU / ReLU6 reads, in a
 * blocked layout, runs with it as one pass (hs_fast_bn_act_forward): the pair's middle
 * activation is never written (acts[k + 1] is then acts[k + 2]) and its gradient never
 * exists; the activation layer itself is skipped in both directions.
 *
 * Gradient buffers. An activation's gradient lives from the backward of its last reader to
 * the backward of its producer; gradients whose lives do not overlap share one buffer (for a
 * chain of layers, two buffers serve them all), so the tape holds the activations backward
 * needs and only a few gradients.
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
    int bf16;              /* mixed precision (fast backend): convolutions in bfloat16 with
                            * float32 master weights, float32 activations between layers,
                            * BatchNorm, loss and optimiser (hs_conv_grad_plan_create_prec);
                            * hs_tape_init sets it from the net's bf16 (the CLI's
                            * --precision), a caller may change it before the first forward */
    hs_act_shape *shapes;  /* shapes[k]: activation k, the input of layer first + k */
    hs_layout *layouts;    /* layouts[k]: of acts[k] and grads[k] */
    float **acts;          /* acts[k]: max_batch x shapes[k] (acts[last - first]: output) */
    float **grads;         /* gradient of acts[k] where backward can reach it, else NULL;
                            * a view into one of grad_bufs (shared, see above) */
    float **grad_bufs;     /* the gradient buffers, grad_buf_count of them */
    int grad_buf_count;
    int *pending;          /* grads[k] already holds an edge's gradient: add, not write */
    unsigned char *fused;  /* fused[k]: layer first + k is a BatchNorm run with layer k + 1 */
    float **saved;         /* per-layer tape slots (batch statistics) */
    uint8_t **masks;       /* per-layer mask slots (dropout, drop connect) */
    float *scratch;        /* a gradient that must be added to a pending one */
    int n;                 /* batch of the last forward */
    int trained;           /* the last forward was in training mode */
    hs_grads_ready_fn grads_ready; /* NULL: nobody listens */
    void *grads_ready_ctx;
    double *seconds;       /* optional (the caller's, 2 x span): wall seconds of each layer's
                            * forward [k] and backward [span + k] are ADDED here (benchmarks) */
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

/* Floats activation k takes on the tape for n images (its layout's padding included). */
int64_t hs_tape_act_floats(const hs_tape *t, int k, int n);

/* Backward over the range after a training forward. After each layer it calls
 * t->grads_ready (when set) with that layer's index. */
hs_status hs_tape_backward(hs_tape *t, hs_error *err);

/* The first layer of [first, last) whose parameters train, or last when none does. */
int hs_net_freeze_boundary(const hs_net *net, int first, int last);

/* Zeroes the gradient arena. */
void hs_net_zero_grad(hs_net *net);

#endif
