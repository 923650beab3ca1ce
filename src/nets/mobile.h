/* torchvision's MobileNetV2, MobileNetV3 and EfficientNet-B0..B3 (nets/mobilenet.c,
 * nets/efficientnet.c), with the configurations their constructors take, so tests can build
 * narrow versions that torchvision builds the same way (width multiplier, a custom block
 * list, fewer classes). Every layer carries torchvision's name, and timm's where timm has
 * the same tensor (see each builder). */
#ifndef HS_NETS_MOBILE_H
#define HS_NETS_MOBILE_H

#include "net.h"

/* torchvision's _make_divisible(v, 8): nearest multiple of 8, at least 8, never 10 % below. */
int hs_make_divisible(double v);

/* MobileNetV2 (torchvision.models.MobileNetV2): rows of {t, c, n, s} as its
 * inverted_residual_setting; NULL: the paper's seven. */
typedef struct hs_mbv2_config {
    double width_mult;
    const int (*setting)[4];
    int stages;
    int classes;
    float dropout;
} hs_mbv2_config;
hs_status hs_build_mobilenet_v2_ex(hs_net *net, const hs_mbv2_config *cfg, hs_error *err);

/* MobileNetV3: one row per block as torchvision's InvertedResidualConfig before the width
 * multiplier (dilation 1). */
typedef struct hs_mbv3_block {
    int in, kernel, expanded, out, se, hardswish, stride;
} hs_mbv3_block;
typedef struct hs_mbv3_config {
    const hs_mbv3_block *blocks;
    int count;
    double width_mult;
    int last_channel; /* the classifier's hidden width, already adjusted (1280 / 1024) */
    int classes;
    float dropout;
    /* timm's grouping of the blocks into stages (blocks.S.B); 0-terminated, NULL: none. */
    const int *timm_stages;
} hs_mbv3_config;
/* small: 0 large, 1 small (the full-size networks). */
void hs_mbv3_default(int small, hs_mbv3_config *cfg);
hs_status hs_build_mobilenet_v3_ex(hs_net *net, const hs_mbv3_config *cfg, hs_error *err);

/* EfficientNet-B (torchvision's MBConvConfig rows {expand, kernel, stride, in, out,
 * layers} before the multipliers; NULL: the B0 table). */
typedef struct hs_effnet_config {
    double width_mult, depth_mult;
    const int (*setting)[6];
    int stages;
    float dropout;
    float stochastic_depth; /* the global rate: block i of B drops with rate * i / B */
    int classes;
} hs_effnet_config;
/* variant 0..3: B0..B3 as torchvision makes them. */
hs_status hs_effnet_default(int variant, hs_effnet_config *cfg, hs_error *err);
hs_status hs_build_efficientnet_b_ex(hs_net *net, const hs_effnet_config *cfg, hs_error *err);

/* Squeeze-and-excitation on the last layer's output (torchvision's SqueezeExcitation at
 * prefix: fc1, fc2; timm's <timm_prefix>.conv_reduce, .conv_expand): global average pooling,
 * 1x1 conv with bias, act, 1x1 conv with bias, gate, then the channel scale of the input by
 * the gate. Returns 0 when out of memory. */
int hs_add_squeeze_excitation(hs_net *net, const char *prefix, const char *timm_prefix,
                              int channels, int squeeze, hs_layer_kind act, hs_layer_kind gate);

/* The full-size networks, by torchvision's name ("mobilenet_v2", "mobilenet_v3_small",
 * "mobilenet_v3_large", "efficientnet_b0".."efficientnet_b3"). */
hs_status hs_build_mobile(hs_net *net, const char *name, hs_error *err);

#endif
