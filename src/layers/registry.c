/* The one table of layer kinds. */
#include "layer.h"

static const hs_layer_ops *const table[HS_LAYER_KIND_COUNT] = {
    [HS_LAYER_CONV] = &hs_conv_ops,
    [HS_LAYER_RELU] = &hs_relu_ops,
    [HS_LAYER_RELU6] = &hs_relu6_ops,
    [HS_LAYER_MAXPOOL] = &hs_maxpool_ops,
    [HS_LAYER_ADAPTIVE_AVGPOOL] = &hs_adaptive_avgpool_ops,
    [HS_LAYER_FLATTEN] = &hs_flatten_ops,
    [HS_LAYER_LINEAR] = &hs_linear_ops,
    [HS_LAYER_DROPOUT] = &hs_dropout_ops,
    [HS_LAYER_BATCHNORM] = &hs_batchnorm_ops,
    [HS_LAYER_AVGPOOL] = &hs_avgpool_ops,
    [HS_LAYER_ADD] = &hs_add_ops,
    [HS_LAYER_DROP_CONNECT] = &hs_drop_connect_ops,
    [HS_LAYER_SIGMOID] = &hs_sigmoid_ops,
    [HS_LAYER_SILU] = &hs_silu_ops,
    [HS_LAYER_HARDSWISH] = &hs_hardswish_ops,
    [HS_LAYER_HARDSIGMOID] = &hs_hardsigmoid_ops,
    [HS_LAYER_SCALE] = &hs_scale_ops,
    [HS_LAYER_GELU] = &hs_gelu_ops,
    [HS_LAYER_LAYERNORM2D] = &hs_layernorm2d_ops,
    [HS_LAYER_LAYER_SCALE] = &hs_layer_scale_ops,
};

const hs_layer_ops *hs_layer_ops_of(hs_layer_kind kind) {
    return (int)kind >= 0 && kind < HS_LAYER_KIND_COUNT ? table[kind] : NULL;
}

hs_layer_pass hs_layer_pass_of(hs_layer_kind kind, hs_backend backend) {
    const hs_layer_ops *ops = hs_layer_ops_of(kind);
    hs_layer_pass pass = {ops->forward, ops->backward};
    if (backend == HS_BACKEND_CPU) {
        const hs_layer_pass *fast = &hs_fast_passes[kind];
        if (fast->forward) pass.forward = fast->forward;
        if (fast->backward) pass.backward = fast->backward;
    }
    return pass;
}
