/* A network as a list of layers with edges, run in order by one interpreter.
 *
 * VGG16 and EfficientNet-Lite are both built as a list of hs_layer values (see nets/). Each
 * layer kind is one file in layers/ with its operations (shape, parameters, init, forward,
 * backward), reached through one table (layers/layer.h); nothing else branches on the kind
 * except the inference plan's fusions (net_run.c). A layer names its parameters as PyTorch
 * does, so a state dict loads by name and saves back under the same keys. BatchNorm is its
 * own layer after its convolution; folding it into the convolution is something the
 * inference plan does (net_run.c), not the model.
 *
 * The layers form a graph in topological order: each layer reads the output of layer
 * `input` (the one before it unless its builder says otherwise, as a projection shortcut
 * reads its block's input), and a layer that combines two tensors (a residual add, the
 * squeeze-and-excitation scale) reads a second one from layer `from`. Both are earlier
 * layers; -1 is the network's input.
 *
 * Parameters live in one flat arena (trainable tensors, in state-dict order), their
 * gradients in a mirror arena of the same layout, and BatchNorm's running statistics in a
 * buffer arena; each layer's pointers are views into them (llm.c's
 * malloc_and_point_parameters), so moving them to a device is one copy and an all-reduce is
 * one call.
 *
 * The list is split in two at feature_end: layers before it are the backbone (image ->
 * feature vector), layers after it the head (feature vector -> logits). */
#ifndef HS_NET_H
#define HS_NET_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "headstart.h"
#include "ops_ref.h"
#include "statedict.h"

#define HS_LAYER_NAME_SIZE 64

/* One image's activation: c x h x w (a vector is c x 1 x 1). */
typedef struct hs_act_shape {
    int c, h, w;
} hs_act_shape;

static inline int64_t hs_act_numel(hs_act_shape s) { return (int64_t)s.c * s.h * s.w; }

typedef enum hs_layer_kind {
    HS_LAYER_CONV = 0,
    HS_LAYER_RELU,
    HS_LAYER_RELU6,
    HS_LAYER_MAXPOOL,
    HS_LAYER_ADAPTIVE_AVGPOOL,
    HS_LAYER_FLATTEN,
    HS_LAYER_LINEAR,
    HS_LAYER_DROPOUT,      /* identity at inference */
    HS_LAYER_BATCHNORM,
    HS_LAYER_AVGPOOL,
    HS_LAYER_ADD,          /* residual: input + output of layer `from` */
    HS_LAYER_DROP_CONNECT, /* EfficientNet's per-sample drop; identity at inference */
    HS_LAYER_SIGMOID,      /* EfficientNet's squeeze-and-excitation gate */
    HS_LAYER_SILU,         /* x * sigmoid(x) */
    HS_LAYER_HARDSWISH,    /* x * relu6(x + 3) / 6 */
    HS_LAYER_HARDSIGMOID,  /* relu6(x + 3) / 6, MobileNetV3's gate */
    HS_LAYER_SCALE,        /* input * per-channel gate (output of layer `from`, c x 1 x 1) */
    HS_LAYER_GELU,         /* exact (erf) GELU, PyTorch's default */
    HS_LAYER_LAYERNORM2D,  /* LayerNorm over the channels of each pixel (ConvNeXt) */
    HS_LAYER_LAYER_SCALE,  /* per-channel learnable multiply (ConvNeXt's layer scale) */
    HS_LAYER_KIND_COUNT
} hs_layer_kind;

/* What a BatchNorm layer does in a training forward pass. */
typedef enum hs_bn_mode {
    HS_BN_TRAIN = 0, /* batch statistics, running statistics updated (PyTorch's train()) */
    HS_BN_FROZEN     /* running statistics used and left alone (PyTorch's eval()) */
} hs_bn_mode;

typedef struct hs_layer {
    hs_layer_kind kind;
    char name[HS_LAYER_NAME_SIZE]; /* parameter prefix: "features.0", "_blocks.3._bn0" */
    /* The same layer's prefix in timm's state dicts ("blocks.2.1.conv_dw"); "": as name. */
    char timm_name[HS_LAYER_NAME_SIZE];

    /* HS_LAYER_CONV. same_padding: TensorFlow SAME computed from the actual input size
     * (overrides conv.pad_*). */
    hs_conv2d_shape conv;
    int same_padding;
    int has_bias;

    /* HS_LAYER_BATCHNORM */
    int channels;
    float bn_eps, bn_momentum; /* PyTorch's momentum: running = (1-m) running + m batch */
    hs_bn_mode bn_mode;
    int64_t bn_batches_tracked; /* PyTorch's num_batches_tracked (not in the state dict) */
    /* HS_LAYER_LAYERNORM2D and HS_LAYER_LAYER_SCALE also use `channels`; LayerNorm's eps is
     * bn_eps. layer_scale_init: the value LAYER_SCALE's init fills (ConvNeXt: 1e-6). */
    float layer_scale_init;
    /* HS_LAYER_CONV: a 1x1 convolution standing for a per-pixel Linear (ConvNeXt's MLP),
     * its weight listed with the Linear's [out, in] shape so nn.Linear's keys load. */
    int pointwise_linear;

    /* HS_LAYER_MAXPOOL, HS_LAYER_AVGPOOL */
    int pool_kernel, pool_stride, pool_pad;
    /* HS_LAYER_ADAPTIVE_AVGPOOL */
    int out_h, out_w;
    /* HS_LAYER_LINEAR */
    int in_features, out_features;
    /* HS_LAYER_DROPOUT, HS_LAYER_DROP_CONNECT: the drop probability */
    float dropout_p;
    /* Edges (see the top): the layer whose output is the input, and for a layer of two
     * inputs (its kind has check_edge) the layer whose output is the second one. */
    int input;
    int from;

    int frozen; /* no parameter gradients (gradients still flow through) */
    /* The unit --unfreeze N and per-depth learning rates count (a ResNet basic block, an
     * MBConv block, a VGG convolution): builders start one with hs_net_begin_block. */
    int block;

    /* Views into the network's arenas (NULL when the layer has none). weight/bias are
     * conv/linear weight and bias, or BatchNorm's gamma and beta. */
    float *weight, *bias;
    float *dweight, *dbias;
    float *running_mean, *running_var;

    /* Inference plan cache of a convolution (net_run.c): weights with the following
     * BatchNorm folded in (when fused_bn), and the oneDNN plan for the last input shape. */
    float *fused_weight, *fused_bias;
    int fused_bn;
    struct hs_conv_plan *plan;
    /* Training plans of the fast backend (layers/fast.c) for the last shape trained on. */
    struct hs_train_plan *train_plan;
} hs_layer;

/* One tensor of a layer, under the key PyTorch gives it. */
typedef struct hs_param_ref {
    char key[2 * HS_LAYER_NAME_SIZE];
    char timm_key[2 * HS_LAYER_NAME_SIZE]; /* its key in timm's naming (= key when the same) */
    float **data;  /* the layer's view pointer */
    float **grad;  /* its gradient view, NULL for buffers */
    int ndim;
    int64_t shape[4];
    int layer;
    int buffer;    /* 1: not trainable (BatchNorm running statistics) */
} hs_param_ref;

struct hs_net {
    const hs_backbone_info *info;
    hs_layer *layers;
    int count;
    int capacity;
    int feature_end;   /* layers [0, feature_end) are the backbone */
    int head_begin;    /* first layer that replace_head made new, or -1 */
    int num_classes;
    int block_count;   /* blocks begun so far; new layers belong to block_count - 1 */
    int prepared;      /* the plan's fused weights are up to date */
    int bf16;          /* opt-in: convolutions in bfloat16 (float32 accumulation) */
    int blocked_layout; /* 0: hs_layout_blocked(); an hs_layout forces one (tests) */
    hs_context *ctx;   /* run settings; NULL: hs_context_default() */

    /* Arenas (64-byte aligned): trainable parameters, their gradients, buffers. */
    float *params, *grads, *buffers;
    int64_t param_floats, buffer_floats;

    float *run_buffer; /* the inference plan's activation buffers, kept between runs */
    size_t run_buffer_bytes;
};

/* Building (used by nets/). Each returns the new layer or NULL when out of memory. */
hs_layer *hs_net_add_layer(hs_net *net, hs_layer_kind kind, const char *name);
hs_layer *hs_net_add_conv(hs_net *net, const char *name, int in_c, int out_c, int kernel,
                          int stride, int pad, int groups, int has_bias, int same_padding);
hs_layer *hs_net_add_batchnorm(hs_net *net, const char *name, int channels, float eps,
                               float momentum);
hs_layer *hs_net_add_linear(hs_net *net, const char *name, int in_features, int out_features);
/* A residual add of the previous layer's output and layer `from`'s. */
hs_layer *hs_net_add_residual(hs_net *net, int from);
/* Layers added from now on belong to a new block (see hs_layer.block). */
static inline void hs_net_begin_block(hs_net *net) { net->block_count++; }
/* Index of the last layer added (-1: none yet, the network's input). */
static inline int hs_net_last(const hs_net *net) { return net->count - 1; }

/* Lays the arenas out for the current layer shapes (keeping the values of every tensor whose
 * size did not change), then fills layers first..last-1 with PyTorch's default
 * initialisation (kaiming-uniform weights, uniform biases, BatchNorm identity) from the
 * seed. */
hs_status hs_net_init_params(hs_net *net, int first, int last, uint64_t seed, hs_error *err);

/* Lists every tensor (PyTorch key, shape, view) in state-dict order: each layer's trainable
 * tensors then its buffers. The caller frees *refs. */
hs_status hs_net_params(hs_net *net, hs_param_ref **refs, int *count, hs_error *err);
int64_t hs_param_numel(const hs_param_ref *ref);

/* Frees what the inference plan keeps between runs; hs_net_release calls it. */
void hs_net_release_fast(hs_net *net);

/* Frees the training plans (layers/fast.c) the interpreter keeps per layer; hs_net_release
 * calls it. They hold no weights: nothing else needs to call it. */
void hs_net_release_train_plans(hs_net *net);

/* Frees every layer and arena; the struct itself belongs to the caller. */
void hs_net_release(hs_net *net);

/* Copies matching tensors from a state dict into the network (see hs_net_load_weights). */
hs_status hs_net_load_state_dict(hs_net *net, const hs_state_dict *sd, const char *source,
                                 hs_error *err);
/* Builds a state dict holding copies of every parameter and buffer. */
hs_status hs_net_state_dict(const hs_net *net, hs_state_dict *out, hs_error *err);

/* Refreshes the inference plan's folded weights; called before running after weights
 * changed (anyone who writes weights sets net->prepared = 0). */
hs_status hs_net_prepare(hs_net *net, hs_error *err);

/* Output shape of layers [first, last) for an input of c x h x w per image. */
hs_status hs_net_shape(const hs_net *net, int first, int last, int c, int h, int w, int *out_c,
                       int *out_h, int *out_w, hs_error *err);
/* Every activation of the range for an input of `in`: shapes[0] = in, shapes[k] = output of
 * layer first + k - 1 (span + 1 entries). Fails when an edge leaves the range (a layer reads
 * an output before first - 1) or its shapes do not fit. */
hs_status hs_net_range_shapes(const hs_net *net, int first, int last, hs_act_shape in,
                              hs_act_shape *shapes, hs_error *err);
/* Where layer i's input and second input sit among a range's activations (as in
 * hs_net_range_shapes). */
static inline int hs_range_slot(int layer_output, int first) { return layer_output - first + 1; }

/* Inference through the plan (net_run.c, the fast path): runs layers [first, last) on n
 * images of c x h x w; out holds n x (out_c*out_h*out_w). */
hs_status hs_net_run(hs_net *net, int first, int last, const float *input, int n, int c, int h,
                     int w, float *out, hs_error *err);

/* Inference through the interpreter (net_train.c): every layer's own forward in NCHW, no
 * folding or fusion; the reference the plan is tested against. */
hs_status hs_net_run_layers(hs_net *net, int first, int last, const float *input, int n, int c,
                            int h, int w, float *out, hs_error *err);

/* Sets the training-mode behaviour of every BatchNorm layer in [first, last). */
void hs_net_set_bn_mode(hs_net *net, int first, int last, hs_bn_mode mode);
/* Freezes (no parameter gradients) layers [0, boundary), unfreezes the rest. */
void hs_net_freeze_below(hs_net *net, int boundary);

/* nets/: append a backbone's layers (with its ImageNet head) to an empty network. */
/* width_divisor and hidden shrink VGG16 for tests (1 and 4096 give the real one). */
hs_status hs_build_vgg16(hs_net *net, int width_divisor, int hidden, int classes, hs_error *err);
/* batch_norm: vgg16_bn (a BatchNorm after each convolution, torchvision's indices). */
hs_status hs_build_vgg16_ex(hs_net *net, int width_divisor, int hidden, int classes,
                            int batch_norm, hs_error *err);
/* torchvision's ResNet of depth 18, 34 (BasicBlock), 50 or 101 (Bottleneck) with a head of
 * `classes`; width_divisor shrinks every stage's channels for tests (1: the real net). */
hs_status hs_build_resnet(hs_net *net, int depth, int width_divisor, int classes,
                          hs_error *err);
hs_status hs_build_efficientnet_lite(hs_net *net, int variant, hs_error *err);
/* drop_connect_rate: the reference's global rate (0.2 in its checkpoints; block i of B uses
 * rate * i / B). hs_build_efficientnet_lite uses 0.2. */
hs_status hs_build_efficientnet_lite_ex(hs_net *net, int variant, float drop_connect_rate,
                                        hs_error *err);
/* torchvision's ConvNeXt (nets/convnext.c): stage widths dims, blocks per stage depths,
 * stochastic depth rising linearly to stochastic_depth_prob; hs_build_convnext_tiny is
 * convnext_tiny (96..768, 3-3-9-3, 0.1, 1000 classes). */
hs_status hs_build_convnext(hs_net *net, const int dims[4], const int depths[4],
                            float stochastic_depth_prob, int classes, hs_error *err);
hs_status hs_build_convnext_tiny(hs_net *net, hs_error *err);

#endif
