/* torchvision's MobileNetV2 and MobileNetV3 (mobilenetv2.py, mobilenetv3.py in torchvision
 * 0.14), layer for layer and name for name.
 *
 * MobileNetV2: a 3x3 stride-2 stem, inverted residuals (1x1 expansion unless t = 1, 3x3
 * depthwise, 1x1 linear projection; ReLU6 after the first two; a residual add when the block
 * keeps its size), a 1x1 conv to 1280, global pooling, Dropout(0.2) and one Linear. BatchNorm
 * is PyTorch's default (eps 1e-5, momentum 0.1).
 *
 * MobileNetV3: the same skeleton with hard swish or ReLU per block, 3x3 or 5x5 depthwise,
 * squeeze-and-excitation (avgpool, 1x1 conv, ReLU, 1x1 conv, hard sigmoid, channel scale)
 * after the depthwise conv in some blocks, BatchNorm eps 1e-3 momentum 0.01, a 1x1 conv to
 * 6x the last block's channels, and the classifier Linear-Hardswish-Dropout-Linear.
 *
 * The feature seam of both is torchvision's features | classifier boundary, after the
 * global pooling: 1280 features for V2, 960 (large) and 576 (small) for V3, whose
 * classifier (Linear to 1280 / 1024, hard swish, dropout, Linear) is the head; a
 * HS_HEAD_CLASSIFIER replacement swaps all of it, HS_HEAD_LAST_LAYER only the last Linear.
 *
 * timm names (timm 1.0.29 mobilenetv2_100, mobilenetv3_large_100, mobilenetv3_small_100):
 * conv_stem / bn1, blocks.S.B.{conv_dw, bn1, [se.conv_reduce, se.conv_expand], conv_pw,
 * bn2} for blocks without expansion, blocks.S.B.{conv_pw, bn1, conv_dw, bn2, [se...],
 * conv_pwl, bn3} for the others; V2's last conv is conv_head / bn2, V3's is blocks.S.0.conv
 * / .bn1 (timm's ConvBnAct stage) and its first classifier Linear is timm's conv_head (a
 * 1x1 conv with bias: the same numbers as a [1280, 960, 1, 1] tensor), the last Linear
 * timm's classifier. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "mobile.h"

int hs_make_divisible(double v) {
    int rounded = (int)(v + 4.0) / 8 * 8;
    if (rounded < 8) rounded = 8;
    if (rounded < 0.9 * v) rounded += 8;
    return rounded;
}

/* Names for one layer: torchvision's and timm's (timm NULL: the same as torchvision). */
static hs_layer *named(hs_layer *l, const char *timm) {
    if (l && timm) snprintf(l->timm_name, sizeof l->timm_name, "%s", timm);
    return l;
}

/* conv (no bias, padding (k - 1) / 2) + BatchNorm [+ activation], torchvision's
 * Conv2dNormActivation: names prefix.0 and prefix.1. act < 0: none. */
static int conv_bn_act(hs_net *net, const char *prefix, const char *timm_conv,
                       const char *timm_bn, int in, int out, int kernel, int stride,
                       int groups, int act, float eps, float momentum) {
    char conv[HS_LAYER_NAME_SIZE], bn[HS_LAYER_NAME_SIZE];
    snprintf(conv, sizeof conv, "%s.0", prefix);
    snprintf(bn, sizeof bn, "%s.1", prefix);
    return named(hs_net_add_conv(net, conv, in, out, kernel, stride, (kernel - 1) / 2, groups,
                                 0, 0), timm_conv) &&
           named(hs_net_add_batchnorm(net, bn, out, eps, momentum), timm_bn) &&
           (act < 0 || hs_net_add_layer(net, (hs_layer_kind)act, ""));
}

/* ---- MobileNetV2 ----------------------------------------------------------------------- */

static const int mbv2_setting[7][4] = {
    {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
};

static const float v2_eps = 1e-5f, v2_momentum = 0.1f;

/* One inverted residual, features.<index>.conv.*; timm blocks.<stage>.<pos>. */
static int mbv2_block(hs_net *net, int index, int stage, int pos, int in, int out, int stride,
                      int t) {
    char p[HS_LAYER_NAME_SIZE], tc[HS_LAYER_NAME_SIZE], tb[HS_LAYER_NAME_SIZE];
    char conv[HS_LAYER_NAME_SIZE], bn[HS_LAYER_NAME_SIZE];
    int hidden = in * t, k = 0;
    hs_net_begin_block(net);
    int block_input = hs_net_last(net);
    if (t != 1) {
        snprintf(p, sizeof p, "features.%d.conv.%d", index, k++);
        snprintf(tc, sizeof tc, "blocks.%d.%d.conv_pw", stage, pos);
        snprintf(tb, sizeof tb, "blocks.%d.%d.bn1", stage, pos);
        if (!conv_bn_act(net, p, tc, tb, in, hidden, 1, 1, 1, HS_LAYER_RELU6, v2_eps,
                         v2_momentum))
            return 0;
    }
    snprintf(p, sizeof p, "features.%d.conv.%d", index, k++);
    snprintf(tc, sizeof tc, "blocks.%d.%d.conv_dw", stage, pos);
    snprintf(tb, sizeof tb, "blocks.%d.%d.bn%d", stage, pos, t != 1 ? 2 : 1);
    if (!conv_bn_act(net, p, tc, tb, hidden, hidden, 3, stride, hidden, HS_LAYER_RELU6, v2_eps,
                     v2_momentum))
        return 0;
    snprintf(conv, sizeof conv, "features.%d.conv.%d", index, k++);
    snprintf(bn, sizeof bn, "features.%d.conv.%d", index, k);
    snprintf(tc, sizeof tc, "blocks.%d.%d.conv_pw%s", stage, pos, t != 1 ? "l" : "");
    snprintf(tb, sizeof tb, "blocks.%d.%d.bn%d", stage, pos, t != 1 ? 3 : 2);
    if (!named(hs_net_add_conv(net, conv, hidden, out, 1, 1, 0, 1, 0, 0), tc) ||
        !named(hs_net_add_batchnorm(net, bn, out, v2_eps, v2_momentum), tb))
        return 0;
    return stride != 1 || in != out || hs_net_add_residual(net, block_input);
}

/* The pooled features and the classifier Dropout + Linear (classifier.0, .1). */
static int pool_and_flatten(hs_net *net) {
    hs_layer *pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool");
    if (!pool) return 0;
    pool->out_h = pool->out_w = 1;
    if (!hs_net_add_layer(net, HS_LAYER_FLATTEN, "")) return 0;
    net->feature_end = net->count;
    return 1;
}

hs_status hs_build_mobilenet_v2_ex(hs_net *net, const hs_mbv2_config *cfg, hs_error *err) {
    const int (*setting)[4] = cfg->setting ? cfg->setting : mbv2_setting;
    int stages = cfg->setting ? cfg->stages : 7;
    if (stages < 1 || cfg->width_mult <= 0 || cfg->classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid MobileNetV2 configuration");
    int channels = hs_make_divisible(32 * cfg->width_mult);
    int last = hs_make_divisible(1280 * (cfg->width_mult > 1.0 ? cfg->width_mult : 1.0));
    hs_net_begin_block(net);
    if (!conv_bn_act(net, "features.0", "conv_stem", "bn1", 3, channels, 3, 2, 1,
                     HS_LAYER_RELU6, v2_eps, v2_momentum))
        goto oom;
    int index = 1;
    for (int s = 0; s < stages; s++) {
        int out = hs_make_divisible(setting[s][1] * cfg->width_mult);
        for (int r = 0; r < setting[s][2]; r++) {
            if (!mbv2_block(net, index++, s, r, channels, out, r == 0 ? setting[s][3] : 1,
                            setting[s][0]))
                goto oom;
            channels = out;
        }
    }
    char p[HS_LAYER_NAME_SIZE];
    snprintf(p, sizeof p, "features.%d", index);
    hs_net_begin_block(net);
    if (!conv_bn_act(net, p, "conv_head", "bn2", channels, last, 1, 1, 1, HS_LAYER_RELU6,
                     v2_eps, v2_momentum) ||
        !pool_and_flatten(net))
        goto oom;
    hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "classifier.0");
    if (!drop) goto oom;
    drop->dropout_p = cfg->dropout;
    hs_net_begin_block(net);
    if (!named(hs_net_add_linear(net, "classifier.1", last, cfg->classes), "classifier"))
        goto oom;
    net->num_classes = cfg->classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building MobileNetV2");
}

/* ---- MobileNetV3 ----------------------------------------------------------------------- */

/* _mobilenet_v3_conf: input, kernel, expanded, out, SE, hard swish, stride. */
static const hs_mbv3_block mbv3_large[] = {
    {16, 3, 16, 16, 0, 0, 1},    {16, 3, 64, 24, 0, 0, 2},    {24, 3, 72, 24, 0, 0, 1},
    {24, 5, 72, 40, 1, 0, 2},    {40, 5, 120, 40, 1, 0, 1},   {40, 5, 120, 40, 1, 0, 1},
    {40, 3, 240, 80, 0, 1, 2},   {80, 3, 200, 80, 0, 1, 1},   {80, 3, 184, 80, 0, 1, 1},
    {80, 3, 184, 80, 0, 1, 1},   {80, 3, 480, 112, 1, 1, 1},  {112, 3, 672, 112, 1, 1, 1},
    {112, 5, 672, 160, 1, 1, 2}, {160, 5, 960, 160, 1, 1, 1}, {160, 5, 960, 160, 1, 1, 1},
};
static const hs_mbv3_block mbv3_small[] = {
    {16, 3, 16, 16, 1, 0, 2},  {16, 3, 72, 24, 0, 0, 2},   {24, 3, 88, 24, 0, 0, 1},
    {24, 5, 96, 40, 1, 1, 2},  {40, 5, 240, 40, 1, 1, 1},  {40, 5, 240, 40, 1, 1, 1},
    {40, 5, 120, 48, 1, 1, 1}, {48, 5, 144, 48, 1, 1, 1},  {48, 5, 288, 96, 1, 1, 2},
    {96, 5, 576, 96, 1, 1, 1}, {96, 5, 576, 96, 1, 1, 1},
};
/* timm's stages (mobilenetv3.py _gen_mobilenet_v3 arch_def), the last-conv stage aside. */
static const int timm_large_stages[] = {1, 2, 3, 4, 2, 3, 0};
static const int timm_small_stages[] = {1, 2, 3, 2, 3, 0};

void hs_mbv3_default(int small, hs_mbv3_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->blocks = small ? mbv3_small : mbv3_large;
    cfg->count = small ? (int)(sizeof mbv3_small / sizeof mbv3_small[0])
                       : (int)(sizeof mbv3_large / sizeof mbv3_large[0]);
    cfg->width_mult = 1.0;
    cfg->last_channel = small ? 1024 : 1280;
    cfg->classes = 1000;
    cfg->dropout = 0.2f;
    cfg->timm_stages = small ? timm_small_stages : timm_large_stages;
}

static const float v3_eps = 1e-3f, v3_momentum = 0.01f;

int hs_add_squeeze_excitation(hs_net *net, const char *prefix, const char *timm_prefix,
                              int channels, int squeeze, hs_layer_kind act,
                              hs_layer_kind gate) {
    char name[HS_LAYER_NAME_SIZE], timm[HS_LAYER_NAME_SIZE];
    int input = hs_net_last(net);
    hs_layer *pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "");
    if (!pool) return 0;
    pool->out_h = pool->out_w = 1;
    snprintf(name, sizeof name, "%s.fc1", prefix);
    snprintf(timm, sizeof timm, "%s.conv_reduce", timm_prefix);
    if (!named(hs_net_add_conv(net, name, channels, squeeze, 1, 1, 0, 1, 1, 0), timm) ||
        !hs_net_add_layer(net, act, ""))
        return 0;
    snprintf(name, sizeof name, "%s.fc2", prefix);
    snprintf(timm, sizeof timm, "%s.conv_expand", timm_prefix);
    if (!named(hs_net_add_conv(net, name, squeeze, channels, 1, 1, 0, 1, 1, 0), timm) ||
        !hs_net_add_layer(net, gate, ""))
        return 0;
    hs_layer *scale = hs_net_add_layer(net, HS_LAYER_SCALE, "");
    if (!scale) return 0;
    scale->input = input;
    scale->from = hs_net_last(net) - 1;
    return 1;
}

static int mbv3_block(hs_net *net, int index, const char *timm, const hs_mbv3_block *b,
                      double width) {
    int in = hs_make_divisible(b->in * width), hidden = hs_make_divisible(b->expanded * width);
    int out = hs_make_divisible(b->out * width), k = 0, expand = hidden != in;
    int act = b->hardswish ? HS_LAYER_HARDSWISH : HS_LAYER_RELU;
    /* timm's names fit a layer's 64 characters; the room is for the compiler's bound. */
    char p[HS_LAYER_NAME_SIZE], tc[HS_LAYER_NAME_SIZE + 16], tb[HS_LAYER_NAME_SIZE + 16];
    hs_net_begin_block(net);
    int block_input = hs_net_last(net);
    if (expand) {
        snprintf(p, sizeof p, "features.%d.block.%d", index, k++);
        snprintf(tc, sizeof tc, "%s.conv_pw", timm);
        snprintf(tb, sizeof tb, "%s.bn1", timm);
        if (!conv_bn_act(net, p, tc, tb, in, hidden, 1, 1, 1, act, v3_eps, v3_momentum))
            return 0;
    }
    snprintf(p, sizeof p, "features.%d.block.%d", index, k++);
    snprintf(tc, sizeof tc, "%s.conv_dw", timm);
    snprintf(tb, sizeof tb, "%s.bn%d", timm, expand ? 2 : 1);
    if (!conv_bn_act(net, p, tc, tb, hidden, hidden, b->kernel, b->stride, hidden, act, v3_eps,
                     v3_momentum))
        return 0;
    if (b->se) {
        snprintf(p, sizeof p, "features.%d.block.%d", index, k++);
        snprintf(tc, sizeof tc, "%s.se", timm);
        if (!hs_add_squeeze_excitation(net, p, tc, hidden, hs_make_divisible(hidden / 4),
                                       HS_LAYER_RELU, HS_LAYER_HARDSIGMOID))
            return 0;
    }
    snprintf(p, sizeof p, "features.%d.block.%d", index, k++);
    snprintf(tc, sizeof tc, "%s.conv_pw%s", timm, expand ? "l" : "");
    snprintf(tb, sizeof tb, "%s.bn%d", timm, expand ? 3 : 2);
    if (!conv_bn_act(net, p, tc, tb, hidden, out, 1, 1, 1, -1, v3_eps, v3_momentum))
        return 0;
    return b->stride != 1 || in != out || hs_net_add_residual(net, block_input);
}

hs_status hs_build_mobilenet_v3_ex(hs_net *net, const hs_mbv3_config *cfg, hs_error *err) {
    if (cfg->count < 1 || cfg->width_mult <= 0 || cfg->classes < 1 || cfg->last_channel < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid MobileNetV3 configuration");
    int stem = hs_make_divisible(cfg->blocks[0].in * cfg->width_mult);
    hs_net_begin_block(net);
    if (!conv_bn_act(net, "features.0", "conv_stem", "bn1", 3, stem, 3, 2, 1,
                     HS_LAYER_HARDSWISH, v3_eps, v3_momentum))
        goto oom;
    int stage = 0, pos = 0;
    for (int i = 0; i < cfg->count; i++) {
        char timm[HS_LAYER_NAME_SIZE];
        /* Without timm's stages every block is its own stage: names timm never uses. */
        if (cfg->timm_stages && cfg->timm_stages[stage] && pos == cfg->timm_stages[stage])
            stage++, pos = 0;
        else if (!cfg->timm_stages && i > 0)
            stage++;
        snprintf(timm, sizeof timm, "blocks.%d.%d", stage, pos++);
        if (!mbv3_block(net, i + 1, timm, &cfg->blocks[i], cfg->width_mult)) goto oom;
    }
    int channels = hs_make_divisible(cfg->blocks[cfg->count - 1].out * cfg->width_mult);
    int lastconv = 6 * channels;
    char p[HS_LAYER_NAME_SIZE], tc[HS_LAYER_NAME_SIZE], tb[HS_LAYER_NAME_SIZE];
    snprintf(p, sizeof p, "features.%d", cfg->count + 1);
    snprintf(tc, sizeof tc, "blocks.%d.0.conv", stage + 1);
    snprintf(tb, sizeof tb, "blocks.%d.0.bn1", stage + 1);
    hs_net_begin_block(net);
    if (!conv_bn_act(net, p, tc, tb, channels, lastconv, 1, 1, 1, HS_LAYER_HARDSWISH, v3_eps,
                     v3_momentum) ||
        !pool_and_flatten(net))
        goto oom;
    hs_net_begin_block(net);
    if (!named(hs_net_add_linear(net, "classifier.0", lastconv, cfg->last_channel),
               "conv_head") ||
        !hs_net_add_layer(net, HS_LAYER_HARDSWISH, ""))
        goto oom;
    hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "classifier.2");
    if (!drop) goto oom;
    drop->dropout_p = cfg->dropout;
    if (!named(hs_net_add_linear(net, "classifier.3", cfg->last_channel, cfg->classes),
               "classifier"))
        goto oom;
    net->num_classes = cfg->classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building MobileNetV3");
}
