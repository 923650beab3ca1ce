/* The operations of one layer kind, called through one table (registry.c): a new kind is a
 * new file here plus one line in the table.
 *
 * Activations are float32, n images of c x h x w (a vector is c x 1 x 1), NCHW unless the
 * args name a blocked layout (fast passes only, see hs_layout_rule). forward
 * writes y from x; in training it records on the layer's tape slot what backward needs
 * (the input x itself is always kept by the tape). backward, given dy, overwrites dx (skipped
 * when NULL: nothing below needs it) and, when param_grads, ACCUMULATES the parameter
 * gradients into the layer's gradient views (dweight, dbias). */
#ifndef HS_LAYER_H
#define HS_LAYER_H

#include <stdint.h>

#include "error.h"
#include "net.h"
#include "ops.h"
#include "rng.h"

/* Receives the tensors a layer lists (params). */
typedef struct hs_param_sink {
    int (*add)(struct hs_param_sink *sink, const char *suffix, float **data, float **grad,
               int ndim, const int64_t *shape, int buffer);
} hs_param_sink;

typedef struct hs_forward_args {
    const float *x;
    hs_act_shape in;
    float *y;
    hs_act_shape out;
    int n;
    int training;
    float *saved;       /* the layer's tape slot (tape_floats), training only */
    uint8_t *mask;      /* its byte slot (tape_bytes), training only */
    hs_rng *rng;        /* dropout / drop connect masks, training only: the step's key */
    const float *other; /* two-input kinds: output of layer `from` */
    hs_act_shape other_shape;
    /* Per-sample draws (hs_rng_for_sample): each sample's id (its index in the data set;
     * NULL: its position in the batch) and this layer's index in the network. */
    const int *samples;
    int layer;
    hs_layout in_layout;  /* of x and other (NCHW unless a fast pass's rule allows it) */
    hs_layout out_layout; /* of y */
    int bf16;             /* fast passes: convolutions in bfloat16 (hs_tape.bf16) */
} hs_forward_args;

typedef struct hs_backward_args {
    const float *x;
    hs_act_shape in;
    const float *y;
    hs_act_shape out;
    int n;
    const float *dy;
    float *dx;          /* overwritten; NULL: not needed */
    int param_grads;    /* accumulate into the layer's gradient views */
    const float *saved;
    const uint8_t *mask;
    const float *other; /* two-input kinds: output of layer `from` */
    hs_act_shape other_shape;
    float *dother;      /* its gradient, ACCUMULATED (+=); NULL: not needed */
    hs_layout in_layout;  /* of x, dx, other, dother */
    hs_layout out_layout; /* of y, dy */
    int bf16;             /* as hs_forward_args.bf16 */
} hs_backward_args;

typedef struct hs_layer_ops {
    const char *kind_name;
    /* Output shape for an input shape; fails with a message for one that does not fit. */
    hs_status (*shape)(const hs_layer *l, hs_act_shape in, hs_act_shape *out, hs_error *err);
    /* Lists the layer's tensors (trainable first, then buffers, in PyTorch's order); returns
     * 0 when the sink failed. NULL: the layer has none. */
    int (*params)(hs_layer *l, hs_param_sink *sink);
    /* PyTorch's default initialisation of the tensors; NULL: nothing to draw. */
    void (*init)(hs_layer *l, hs_rng *rng);
    /* Floats and bytes of tape the layer needs for n images in training; NULL: none. */
    void (*tape_size)(const hs_layer *l, hs_act_shape in, hs_act_shape out, int n,
                      int64_t *floats, int64_t *bytes);
    hs_status (*forward)(hs_layer *l, const hs_forward_args *a, hs_error *err);
    hs_status (*backward)(hs_layer *l, const hs_backward_args *a, hs_error *err);
    /* Two-input kinds only (NULL otherwise): whether the second input's shape fits the first
     * (in); its presence is what makes the interpreter and the plan pass `from`'s output. */
    hs_status (*check_edge)(const hs_layer *l, hs_act_shape in, hs_act_shape other,
                            hs_error *err);
} hs_layer_ops;

const hs_layer_ops *hs_layer_ops_of(hs_layer_kind kind);

/* The forward and backward the interpreter (net_train.c) runs for a layer. */
typedef struct hs_layer_pass {
    hs_status (*forward)(hs_layer *l, const hs_forward_args *a, hs_error *err);
    hs_status (*backward)(hs_layer *l, const hs_backward_args *a, hs_error *err);
} hs_layer_pass;

/* The one place that picks fast or reference per kind (registry.c): on HS_BACKEND_CPU the
 * oneDNN training plans (fast.c) where the kind has them, otherwise the kind's own ops. */
hs_layer_pass hs_layer_pass_of(hs_layer_kind kind, hs_backend backend);
/* fast.c: per kind, NULL members where the kind's own operation is used. */
extern const hs_layer_pass hs_fast_passes[HS_LAYER_KIND_COUNT];
/* Frees the layer's training plans (fast.c). */
void hs_layer_train_plan_free(hs_layer *l);

/* Which activation layouts a layer's fast pass takes (fast.c; the reference passes are all
 * HS_LAYOUT_RULE_NCHW). The tape (net_train.c) keeps an activation blocked where its
 * producer and every reader allow it. */
typedef enum hs_layout_rule {
    HS_LAYOUT_RULE_NCHW = 0, /* inputs and output NCHW */
    HS_LAYOUT_RULE_SAME,     /* inputs and output in one layout, any */
    HS_LAYOUT_RULE_ANY,      /* input and output each in any layout (convolution) */
    HS_LAYOUT_RULE_EXIT      /* input in any layout, output NCHW (global pooling) */
} hs_layout_rule;
hs_layout_rule hs_fast_layout_rule(const hs_layer *l);

/* A BatchNorm and the ReLU or ReLU6 that alone reads its output, as one pass (fast.c,
 * hs_bn_act_forward): the tape uses them for such pairs in a blocked layout. args are the
 * BatchNorm's, with y, out and out_layout (forward) or dy (backward) the activation's. */
hs_status hs_fast_bn_act_forward(hs_layer *bn, const hs_layer *act, const hs_forward_args *a,
                                 hs_error *err);
hs_status hs_fast_bn_act_backward(hs_layer *bn, const hs_layer *act, const hs_backward_args *a,
                                  hs_error *err);

/* The kinds (one file each). */
extern const hs_layer_ops hs_conv_ops, hs_batchnorm_ops, hs_relu_ops, hs_relu6_ops,
    hs_maxpool_ops, hs_avgpool_ops, hs_adaptive_avgpool_ops, hs_flatten_ops, hs_linear_ops,
    hs_dropout_ops, hs_add_ops, hs_drop_connect_ops;
extern const hs_layer_ops hs_sigmoid_ops, hs_silu_ops, hs_hardswish_ops, hs_hardsigmoid_ops,
    hs_scale_ops;
extern const hs_layer_ops hs_gelu_ops, hs_layernorm2d_ops, hs_layer_scale_ops;

/* Helpers shared by the kinds. */
hs_status hs_layer_check_size(const hs_layer *l, hs_act_shape in, hs_act_shape out,
                              hs_error *err);
/* The conv's shape with TF-SAME padding resolved for an input of h x w. */
hs_conv2d_shape hs_conv_for_input(const hs_layer *l, int h, int w);
/* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for count values: PyTorch's kaiming_uniform_(a=sqrt(5))
 * for weights and its bias default. */
void hs_fill_fan_in_uniform(float *v, int64_t count, int64_t fan_in, hs_rng *rng);

#endif
