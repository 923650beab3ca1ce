/* A network as a flat list of layers, run in order.
 *
 * This is the whole runtime model: VGG16 and EfficientNet-Lite are both built as a list of
 * hs_layer values (see nets/). A layer names its parameters as PyTorch does, so a state dict
 * loads by name and saves back under the same keys. The list is split in two at feature_end:
 * layers before it are the backbone (image -> feature vector), layers after it the head
 * (feature vector -> logits). Residual connections (EfficientNet's MBConv blocks) never nest,
 * so one saved tensor is enough: a layer with residual_save keeps its input, a layer with
 * residual_add adds it to its output. */
#ifndef HS_NET_H
#define HS_NET_H

#include <stdint.h>

#include "headstart.h"
#include "ops_ref.h"
#include "statedict.h"

#define HS_LAYER_NAME_SIZE 64

typedef enum hs_layer_kind {
    HS_LAYER_CONV = 0,          /* conv2d, optionally followed by inference BatchNorm */
    HS_LAYER_RELU,
    HS_LAYER_RELU6,
    HS_LAYER_MAXPOOL,
    HS_LAYER_ADAPTIVE_AVGPOOL,
    HS_LAYER_FLATTEN,
    HS_LAYER_LINEAR,
    HS_LAYER_DROPOUT            /* identity at inference */
} hs_layer_kind;

typedef struct hs_layer {
    hs_layer_kind kind;
    char name[HS_LAYER_NAME_SIZE];    /* parameter prefix: "features.0", "_blocks.3._expand_conv" */
    char bn_name[HS_LAYER_NAME_SIZE]; /* BatchNorm after a conv ("_blocks.3._bn0"), or "" */

    /* HS_LAYER_CONV. same_padding: TensorFlow SAME computed from the actual input size
     * (overrides conv.pad_*). */
    hs_conv2d_shape conv;
    int same_padding;
    int has_bias;
    float bn_eps;

    /* HS_LAYER_MAXPOOL */
    int pool_kernel, pool_stride, pool_pad;
    /* HS_LAYER_ADAPTIVE_AVGPOOL */
    int out_h, out_w;
    /* HS_LAYER_LINEAR */
    int in_features, out_features;
    /* HS_LAYER_DROPOUT */
    float dropout_p;

    int residual_save; /* keep this layer's input */
    int residual_add;  /* add the kept input to this layer's output */

    /* Parameters as PyTorch stores them (owned; NULL when the layer has none). */
    float *weight, *bias;
    float *bn_weight, *bn_bias, *bn_mean, *bn_var;
    /* Conv with BatchNorm folded in, recomputed by hs_net_prepare after weights change. */
    float *fused_weight, *fused_bias;
    /* HS_LAYER_CONV: the oneDNN plan hs_net_run made for the last input shape (ops.h), or
     * NULL. Freed by hs_net_release_fast. */
    struct hs_conv_plan *plan;
} hs_layer;

struct hs_net {
    const hs_backbone_info *info;
    hs_layer *layers;
    int count;
    int capacity;
    int feature_end;   /* layers [0, feature_end) are the backbone */
    int head_begin;    /* first layer that replace_head made new, or -1 */
    int num_classes;
    int prepared;      /* fused weights are up to date */
    int bf16;          /* opt-in: convolutions in bfloat16 (float32 accumulation) */
    float *run_buffer; /* hs_net_run's activation buffers, kept between runs */
    size_t run_buffer_bytes;
};

/* Building (used by nets/). Each returns the new layer or NULL when out of memory. */
hs_layer *hs_net_add_layer(hs_net *net, hs_layer_kind kind, const char *name);
hs_layer *hs_net_add_conv(hs_net *net, const char *name, const char *bn_name, int in_c,
                          int out_c, int kernel, int stride, int pad, int groups, int has_bias,
                          int same_padding, float bn_eps);
hs_layer *hs_net_add_linear(hs_net *net, const char *name, int in_features, int out_features);

/* Allocates every layer's parameters and fills them with PyTorch's default initialisation
 * (kaiming-uniform weights, uniform biases, BatchNorm identity), from the given seed.
 * first..last is the layer range to (re)initialise. */
hs_status hs_net_init_params(hs_net *net, int first, int last, uint64_t seed, hs_error *err);

/* One parameter tensor of a layer, under the key PyTorch gives it. */
typedef struct hs_param_ref {
    char key[2 * HS_LAYER_NAME_SIZE];
    float **data;
    int ndim;
    int64_t shape[4];
    int layer;
} hs_param_ref;

/* Lists every parameter (PyTorch key, shape, pointer) in state-dict order. The caller frees
 * *refs. */
hs_status hs_net_params(hs_net *net, hs_param_ref **refs, int *count, hs_error *err);
int64_t hs_param_numel(const hs_param_ref *ref);

/* Frees what hs_net_run keeps between runs (convolution plans); hs_net_release calls it. */
void hs_net_release_fast(hs_net *net);

/* Frees every layer and parameter; the struct itself belongs to the caller. */
void hs_net_release(hs_net *net);

/* Copies matching tensors from a state dict into the network (see hs_net_load_weights). */
hs_status hs_net_load_state_dict(hs_net *net, const hs_state_dict *sd, const char *source,
                                 hs_error *err);
/* Builds a state dict holding copies of every parameter. */
hs_status hs_net_state_dict(const hs_net *net, hs_state_dict *out, hs_error *err);

/* Folds BatchNorm into the convolutions; called before running after weights changed. */
hs_status hs_net_prepare(hs_net *net, hs_error *err);

/* Output shape of layers [first, last) for an input of c x h x w per image. */
hs_status hs_net_shape(const hs_net *net, int first, int last, int c, int h, int w, int *out_c,
                       int *out_h, int *out_w, hs_error *err);

/* Runs layers [first, last) on n images of c x h x w; out holds n x (out_c*out_h*out_w). */
hs_status hs_net_run(hs_net *net, int first, int last, const float *input, int n, int c, int h,
                     int w, float *out, hs_error *err);

/* nets/: append a backbone's layers (with its ImageNet head) to an empty network. */
/* width_divisor and hidden shrink VGG16 for tests (1 and 4096 give the real one). */
hs_status hs_build_vgg16(hs_net *net, int width_divisor, int hidden, int classes, hs_error *err);
hs_status hs_build_efficientnet_lite(hs_net *net, int variant, hs_error *err);

#endif
