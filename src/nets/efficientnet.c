/* torchvision's EfficientNet-B0..B3 (efficientnet.py in torchvision 0.14), layer for layer
 * and name for name: a 3x3 stride-2 stem, stages of MBConv blocks (features.S.B.block: 1x1
 * expansion unless the ratio is 1, k x k depthwise, squeeze-and-excitation with SiLU and a
 * sigmoid gate squeezing to a quarter of the block's input channels, 1x1 projection; SiLU
 * after the first two; stochastic depth and a residual add when the block keeps its size),
 * a 1x1 conv to 4x the last stage's channels, global pooling, Dropout and one Linear.
 * Channels scale by the width multiplier (rounded to multiples of 8), each stage's depth by
 * the depth multiplier (rounded up). Padding is symmetric (k - 1) / 2, unlike Lite's
 * TensorFlow SAME. BatchNorm is PyTorch's default for B0..B4 (eps 1e-5, momentum 0.1: only
 * B5..B7 and V2 pass eps 1e-3). Stochastic depth ("row" mode: one draw per sample, survivors
 * scaled by 1 / (1 - p)) is the drop_connect kind, with torchvision's rate 0.2 * i / blocks
 * for block i.
 *
 * The feature seam is after the global pooling (1280, 1280, 1408, 1536 features for
 * B0..B3); the head is classifier.0 (dropout) and classifier.1.
 *
 * timm names (timm 1.0.29 efficientnet_b0 .. b3): conv_stem / bn1, blocks.S.B.{conv_dw, bn1,
 * se.conv_reduce, se.conv_expand, conv_pw, bn2} for the first stage's blocks (no expansion),
 * blocks.S.B.{conv_pw, bn1, conv_dw, bn2, se..., conv_pwl, bn3} for the others, conv_head /
 * bn2, classifier. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "mobile.h"

/* _efficientnet_conf: expand ratio, kernel, stride, input, output channels, layers. */
static const int b_setting[7][6] = {
    {1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},   {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};

typedef struct b_scale {
    double width, depth;
    float dropout;
} b_scale;

static const b_scale b_scales[] = {
    {1.0, 1.0, 0.2f}, {1.0, 1.1, 0.2f}, {1.1, 1.2, 0.3f}, {1.2, 1.4, 0.3f}};

hs_status hs_effnet_default(int variant, hs_effnet_config *cfg, hs_error *err) {
    if (variant < 0 || variant > 3)
        return hs_fail(err, HS_ERR_ARGUMENT, "EfficientNet-B%d is not supported", variant);
    *cfg = (hs_effnet_config){b_scales[variant].width, b_scales[variant].depth, NULL, 0,
                              b_scales[variant].dropout, 0.2f, 1000};
    return HS_OK;
}

static const float b_eps = 1e-5f, b_momentum = 0.1f;

static hs_layer *named(hs_layer *l, const char *timm) {
    if (l && timm) snprintf(l->timm_name, sizeof l->timm_name, "%s", timm);
    return l;
}

/* Conv2dNormActivation at prefix (prefix.0 conv without bias, prefix.1 BatchNorm) [+ SiLU]. */
static int conv_bn(hs_net *net, const char *prefix, const char *timm_conv, const char *timm_bn,
                   int in, int out, int kernel, int stride, int groups, int silu) {
    char conv[HS_LAYER_NAME_SIZE], bn[HS_LAYER_NAME_SIZE];
    snprintf(conv, sizeof conv, "%s.0", prefix);
    snprintf(bn, sizeof bn, "%s.1", prefix);
    return named(hs_net_add_conv(net, conv, in, out, kernel, stride, (kernel - 1) / 2, groups,
                                 0, 0), timm_conv) &&
           named(hs_net_add_batchnorm(net, bn, out, b_eps, b_momentum), timm_bn) &&
           (!silu || hs_net_add_layer(net, HS_LAYER_SILU, ""));
}

/* MBConv features.<stage>.<pos>.block (timm blocks.<stage - 1>.<pos>). */
static int mbconv(hs_net *net, int stage, int pos, int in, int out, int kernel, int stride,
                  int expand_ratio, float drop) {
    char p[HS_LAYER_NAME_SIZE], t[HS_LAYER_NAME_SIZE], tc[HS_LAYER_NAME_SIZE + 16],
        tb[HS_LAYER_NAME_SIZE + 16];
    int hidden = hs_make_divisible((double)in * expand_ratio), k = 0, expand = hidden != in;
    snprintf(t, sizeof t, "blocks.%d.%d", stage - 1, pos);
    hs_net_begin_block(net);
    int block_input = hs_net_last(net);
    if (expand) {
        snprintf(p, sizeof p, "features.%d.%d.block.%d", stage, pos, k++);
        snprintf(tc, sizeof tc, "%s.conv_pw", t);
        snprintf(tb, sizeof tb, "%s.bn1", t);
        if (!conv_bn(net, p, tc, tb, in, hidden, 1, 1, 1, 1)) return 0;
    }
    snprintf(p, sizeof p, "features.%d.%d.block.%d", stage, pos, k++);
    snprintf(tc, sizeof tc, "%s.conv_dw", t);
    snprintf(tb, sizeof tb, "%s.bn%d", t, expand ? 2 : 1);
    if (!conv_bn(net, p, tc, tb, hidden, hidden, kernel, stride, hidden, 1)) return 0;
    snprintf(p, sizeof p, "features.%d.%d.block.%d", stage, pos, k++);
    snprintf(tc, sizeof tc, "%s.se", t);
    if (!hs_add_squeeze_excitation(net, p, tc, hidden, in / 4 > 1 ? in / 4 : 1, HS_LAYER_SILU,
                                   HS_LAYER_SIGMOID))
        return 0;
    snprintf(p, sizeof p, "features.%d.%d.block.%d", stage, pos, k++);
    snprintf(tc, sizeof tc, "%s.conv_pw%s", t, expand ? "l" : "");
    snprintf(tb, sizeof tb, "%s.bn%d", t, expand ? 3 : 2);
    if (!conv_bn(net, p, tc, tb, hidden, out, 1, 1, 1, 0)) return 0;
    if (stride != 1 || in != out) return 1;
    hs_layer *sd = hs_net_add_layer(net, HS_LAYER_DROP_CONNECT, "");
    if (!sd) return 0;
    sd->dropout_p = drop;
    return hs_net_add_residual(net, block_input) != NULL;
}

hs_status hs_build_efficientnet_b_ex(hs_net *net, const hs_effnet_config *cfg, hs_error *err) {
    const int (*setting)[6] = cfg->setting ? cfg->setting : b_setting;
    int stages = cfg->setting ? cfg->stages : 7;
    if (stages < 1 || cfg->width_mult <= 0 || cfg->depth_mult <= 0 || cfg->classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid EfficientNet configuration");
    int total = 0;
    for (int s = 0; s < stages; s++) total += (int)ceil(setting[s][5] * cfg->depth_mult);
    int channels = hs_make_divisible(setting[0][3] * cfg->width_mult);
    hs_net_begin_block(net);
    if (!conv_bn(net, "features.0", "conv_stem", "bn1", 3, channels, 3, 2, 1, 1)) goto oom;
    int id = 0;
    for (int s = 0; s < stages; s++) {
        int out = hs_make_divisible(setting[s][4] * cfg->width_mult);
        int layers = (int)ceil(setting[s][5] * cfg->depth_mult);
        for (int r = 0; r < layers; r++) {
            float drop = cfg->stochastic_depth * (float)id++ / (float)total;
            if (!mbconv(net, s + 1, r, channels, out, setting[s][1], r == 0 ? setting[s][2] : 1,
                        setting[s][0], drop))
                goto oom;
            channels = out;
        }
    }
    int head = 4 * channels;
    char p[HS_LAYER_NAME_SIZE];
    snprintf(p, sizeof p, "features.%d", stages + 1);
    hs_net_begin_block(net);
    if (!conv_bn(net, p, "conv_head", "bn2", channels, head, 1, 1, 1, 1)) goto oom;
    hs_layer *pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool");
    if (!pool) goto oom;
    pool->out_h = pool->out_w = 1;
    if (!hs_net_add_layer(net, HS_LAYER_FLATTEN, "")) goto oom;
    net->feature_end = net->count;
    hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "classifier.0");
    if (!drop) goto oom;
    drop->dropout_p = cfg->dropout;
    hs_net_begin_block(net);
    if (!named(hs_net_add_linear(net, "classifier.1", head, cfg->classes), "classifier"))
        goto oom;
    net->num_classes = cfg->classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building EfficientNet");
}

hs_status hs_build_mobile(hs_net *net, const char *name, hs_error *err) {
    if (strcmp(name, "mobilenet_v2") == 0) {
        hs_mbv2_config cfg = {1.0, NULL, 0, 1000, 0.2f};
        return hs_build_mobilenet_v2_ex(net, &cfg, err);
    }
    if (strcmp(name, "mobilenet_v3_large") == 0 || strcmp(name, "mobilenet_v3_small") == 0) {
        hs_mbv3_config cfg;
        hs_mbv3_default(strcmp(name, "mobilenet_v3_small") == 0, &cfg);
        return hs_build_mobilenet_v3_ex(net, &cfg, err);
    }
    if (strncmp(name, "efficientnet_b", 14) == 0 && name[14] >= '0' && name[14] <= '3' &&
        name[15] == '\0') {
        hs_effnet_config cfg;
        hs_status st = hs_effnet_default(name[14] - '0', &cfg, err);
        return st ? st : hs_build_efficientnet_b_ex(net, &cfg, err);
    }
    return hs_fail(err, HS_ERR_ARGUMENT, "no mobile network called %s", name);
}
