/* EfficientNet-Lite0/1/2 as the lukemelas-style checkpoints build and name them
 * (efficientnet_lite_pytorch): a 3x3 stride-2 stem of 32 channels, MBConv blocks (1x1
 * expansion, depthwise k x k, 1x1 projection, each followed by a BatchNorm layer (eps 1e-3,
 * momentum 0.01); ReLU6 after the first two; drop connect and a residual add when the block
 * keeps its size), a 1x1 head conv to 1280, global
 * average pooling, dropout and `_fc`. Lite differs from EfficientNet-B: ReLU6 instead of
 * swish, no squeeze-excite, stem and head not scaled. All convolutions use TensorFlow SAME
 * padding (asymmetric on stride 2). The backbone ends after the pooling: 1280 features. */
#include <math.h>
#include <stdio.h>

#include "error.h"
#include "net.h"

typedef struct block_group {
    int repeats, kernel, stride, expand, in, out;
} block_group;

/* efficientnet_lite_builder.py: r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320 */
static const block_group lite_groups[] = {
    {1, 3, 1, 1, 32, 16},  {2, 3, 2, 6, 16, 24},   {2, 5, 2, 6, 24, 40},
    {3, 3, 2, 6, 40, 80},  {3, 5, 1, 6, 80, 112},  {4, 5, 2, 6, 112, 192},
    {1, 3, 1, 6, 192, 320},
};

typedef struct lite_scale {
    double width, depth;
} lite_scale;

static const lite_scale lite_scales[] = {{1.0, 1.0}, {1.0, 1.1}, {1.1, 1.2}};

/* round_filters of the reference: scale, round to a multiple of 8, never below 90 %. */
static int round_filters(int filters, double width) {
    double scaled = filters * width;
    int rounded = (int)(scaled + 4.0) / 8 * 8;
    if (rounded < 8) rounded = 8;
    if (rounded < 0.9 * scaled) rounded += 8;
    return rounded;
}

static int round_repeats(int repeats, double depth) { return (int)ceil(depth * repeats); }

/* The reference's BatchNorm: eps 1e-3, TF momentum 0.99 = PyTorch momentum 0.01. */
static const float bn_eps = 1e-3f, bn_momentum = 0.01f;

/* conv (no bias, TF SAME padding) + BatchNorm [+ ReLU6]. */
static int add_conv_bn(hs_net *net, const char *conv, const char *bn, int in, int out,
                       int kernel, int stride, int groups, int relu6) {
    return hs_net_add_conv(net, conv, in, out, kernel, stride, 0, groups, 0, 1) &&
           hs_net_add_batchnorm(net, bn, out, bn_eps, bn_momentum) &&
           (!relu6 || hs_net_add_layer(net, HS_LAYER_RELU6, ""));
}

static hs_status add_block(hs_net *net, int index, int in, int out, int kernel, int stride,
                           int expand, float drop_connect) {
    char conv[HS_LAYER_NAME_SIZE], bn[HS_LAYER_NAME_SIZE];
    int hidden = in * expand;
    hs_net_begin_block(net);
    int block_input = net->count - 1; /* the layer whose output enters the block */
    if (expand != 1) {
        snprintf(conv, sizeof conv, "_blocks.%d._expand_conv", index);
        snprintf(bn, sizeof bn, "_blocks.%d._bn0", index);
        if (!add_conv_bn(net, conv, bn, in, hidden, 1, 1, 1, 1)) return HS_ERR_NOMEM;
    }
    snprintf(conv, sizeof conv, "_blocks.%d._depthwise_conv", index);
    snprintf(bn, sizeof bn, "_blocks.%d._bn1", index);
    if (!add_conv_bn(net, conv, bn, hidden, hidden, kernel, stride, hidden, 1))
        return HS_ERR_NOMEM;
    snprintf(conv, sizeof conv, "_blocks.%d._project_conv", index);
    snprintf(bn, sizeof bn, "_blocks.%d._bn2", index);
    if (!add_conv_bn(net, conv, bn, hidden, out, 1, 1, 1, 0)) return HS_ERR_NOMEM;
    if (stride == 1 && in == out) { /* the block keeps its size: add its input back */
        hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROP_CONNECT, "");
        if (!drop) return HS_ERR_NOMEM;
        drop->dropout_p = drop_connect;
        if (!hs_net_add_residual(net, block_input)) return HS_ERR_NOMEM;
    }
    return HS_OK;
}

hs_status hs_build_efficientnet_lite(hs_net *net, int variant, hs_error *err) {
    return hs_build_efficientnet_lite_ex(net, variant, 0.2f, err);
}

hs_status hs_build_efficientnet_lite_ex(hs_net *net, int variant, float drop_connect_rate,
                                        hs_error *err) {
    if (variant < 0 || variant > 2)
        return hs_fail(err, HS_ERR_ARGUMENT, "EfficientNet-Lite%d is not supported", variant);
    lite_scale scale = lite_scales[variant];
    hs_net_begin_block(net);
    if (!add_conv_bn(net, "_conv_stem", "_bn0", 3, 32, 3, 2, 1, 1)) goto oom;
    int groups = (int)(sizeof lite_groups / sizeof lite_groups[0]);
    int blocks = 0;
    for (int g = 0; g < groups; g++)
        blocks += (g == 0 || g == groups - 1)
                      ? lite_groups[g].repeats
                      : round_repeats(lite_groups[g].repeats, scale.depth);
    int index = 0, channels = 32;
    for (int g = 0; g < groups; g++) {
        const block_group *bg = &lite_groups[g];
        int out = round_filters(bg->out, scale.width);
        /* The first and last groups keep their repeats: "fix_head_stem". */
        int repeats = (g == 0 || g == groups - 1) ? bg->repeats
                                                  : round_repeats(bg->repeats, scale.depth);
        for (int r = 0; r < repeats; r++) {
            int stride = r == 0 ? bg->stride : 1;
            /* The reference scales the rate by the block's index: rate * idx / blocks. */
            float drop = drop_connect_rate * (float)index / (float)blocks;
            if (add_block(net, index++, channels, out, bg->kernel, stride, bg->expand, drop))
                goto oom;
            channels = out;
        }
    }
    hs_layer *pool;
    hs_net_begin_block(net);
    if (!add_conv_bn(net, "_conv_head", "_bn1", channels, 1280, 1, 1, 1, 1) ||
        !(pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "_avg_pooling")))
        goto oom;
    pool->out_h = pool->out_w = 1;
    if (!hs_net_add_layer(net, HS_LAYER_FLATTEN, "")) goto oom;
    net->feature_end = net->count;
    hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "_dropout");
    if (!drop) goto oom;
    drop->dropout_p = variant == 2 ? 0.3f : 0.2f;
    hs_net_begin_block(net);
    if (!hs_net_add_linear(net, "_fc", 1280, 1000)) goto oom;
    net->num_classes = 1000;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building EfficientNet-Lite%d", variant);
}
