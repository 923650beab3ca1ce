/* ResNet-18/34/50/101 exactly as torchvision lays them out and names their parameters:
 * a stem (conv1 7x7 stride 2, bn1, relu, maxpool 3x3 stride 2), four stages layer1..layer4 of
 * BasicBlocks (18, 34) or Bottlenecks (50, 101), adaptive average pooling to 1 x 1, flatten
 * and fc. BatchNorm everywhere has PyTorch's defaults (eps 1e-5, momentum 0.1); no
 * convolution has a bias.
 *
 * A block's main path is conv/bn/relu layers in torchvision's order; when the block changes
 * the size (stride 2, or other channels) its shortcut is a projection, downsample.0 (a 1x1
 * convolution with the block's stride) and downsample.1 (BatchNorm), which reads the block's
 * input (l->input), not the layer before it. The residual add then reads the main path and,
 * through `from`, the projection's BatchNorm or the block's input itself; the block's last
 * ReLU follows the add. The Bottleneck strides on its 3x3 conv2, not on conv1 (torchvision's
 * "ResNet V1.5"), which is what its weights expect.
 *
 * The layers come in the order torchvision registers its modules (main path, then
 * downsample), so the parameter listing is the state dict's order. The backbone ends after
 * the flatten: 512 features (BasicBlock) or 2048 (Bottleneck); the head is fc. */
#include <stdio.h>

#include "error.h"
#include "net.h"

/* PyTorch's BatchNorm2d defaults, which torchvision's ResNet keeps. */
static const float bn_eps = 1e-5f, bn_momentum = 0.1f;

typedef struct resnet_config {
    int depth;
    int bottleneck;   /* 0: BasicBlock (expansion 1), 1: Bottleneck (expansion 4) */
    int blocks[4];    /* blocks per stage */
} resnet_config;

static const resnet_config resnet_configs[] = {
    {18, 0, {2, 2, 2, 2}},
    {34, 0, {3, 4, 6, 3}},
    {50, 1, {3, 4, 6, 3}},
    {101, 1, {3, 4, 23, 3}},
};

/* planes / divisor, never below one channel (a tiny test net's width). */
static int narrow(int planes, int divisor) {
    int c = planes / divisor;
    return c < 1 ? 1 : c;
}

/* "<prefix>.<what>" into out (prefix "" gives "<what>"). */
static const char *layer_name(char *out, size_t size, const char *prefix, const char *what) {
    snprintf(out, size, "%s%s%s", prefix, prefix[0] ? "." : "", what);
    return out;
}

/* conv (no bias) + BatchNorm [+ ReLU], names <prefix>.convK, <prefix>.bnK, <prefix>.relu. */
static int add_conv_bn(hs_net *net, const char *prefix, int k, int in, int out, int kernel,
                       int stride, int relu) {
    char conv[HS_LAYER_NAME_SIZE], bn[HS_LAYER_NAME_SIZE], what[16];
    snprintf(what, sizeof what, "conv%d", k);
    layer_name(conv, sizeof conv, prefix, what);
    snprintf(what, sizeof what, "bn%d", k);
    layer_name(bn, sizeof bn, prefix, what);
    if (!hs_net_add_conv(net, conv, in, out, kernel, stride, kernel / 2, 1, 0, 0) ||
        !hs_net_add_batchnorm(net, bn, out, bn_eps, bn_momentum))
        return 0;
    if (!relu) return 1;
    char name[HS_LAYER_NAME_SIZE];
    return hs_net_add_layer(net, HS_LAYER_RELU, layer_name(name, sizeof name, prefix, "relu")) !=
           NULL;
}

/* One BasicBlock or Bottleneck named `prefix` ("layer2.0") from in to planes * expansion
 * channels. Returns 0 when out of memory. */
static int add_block(hs_net *net, const char *prefix, int bottleneck, int in, int planes,
                     int stride) {
    int out = bottleneck ? planes * 4 : planes;
    hs_net_begin_block(net);
    int block_input = hs_net_last(net); /* the layer whose output enters the block */
    if (bottleneck) {
        if (!add_conv_bn(net, prefix, 1, in, planes, 1, 1, 1) ||
            !add_conv_bn(net, prefix, 2, planes, planes, 3, stride, 1) ||
            !add_conv_bn(net, prefix, 3, planes, out, 1, 1, 0))
            return 0;
    } else {
        if (!add_conv_bn(net, prefix, 1, in, planes, 3, stride, 1) ||
            !add_conv_bn(net, prefix, 2, planes, planes, 3, 1, 0))
            return 0;
    }
    int main_path = hs_net_last(net);
    int shortcut = block_input;
    if (stride != 1 || in != out) { /* torchvision's condition for a downsample */
        char name[HS_LAYER_NAME_SIZE];
        hs_layer *proj = hs_net_add_conv(net, layer_name(name, sizeof name, prefix,
                                                         "downsample.0"),
                                         in, out, 1, stride, 0, 1, 0, 0);
        if (!proj) return 0;
        proj->input = block_input;
        if (!hs_net_add_batchnorm(net, layer_name(name, sizeof name, prefix, "downsample.1"),
                                  out, bn_eps, bn_momentum))
            return 0;
        shortcut = hs_net_last(net);
    }
    hs_layer *join = hs_net_add_residual(net, shortcut);
    if (!join) return 0;
    join->input = main_path;
    char name[HS_LAYER_NAME_SIZE];
    return hs_net_add_layer(net, HS_LAYER_RELU, layer_name(name, sizeof name, prefix, "relu")) !=
           NULL;
}

hs_status hs_build_resnet(hs_net *net, int depth, int width_divisor, int classes,
                          hs_error *err) {
    const resnet_config *cfg = NULL;
    for (size_t i = 0; i < sizeof resnet_configs / sizeof resnet_configs[0]; i++)
        if (resnet_configs[i].depth == depth) cfg = &resnet_configs[i];
    if (!cfg) return hs_fail(err, HS_ERR_ARGUMENT, "ResNet-%d is not supported", depth);
    if (width_divisor < 1 || classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid ResNet-%d size", depth);

    int channels = narrow(64, width_divisor);
    hs_net_begin_block(net);
    hs_layer *pool;
    if (!add_conv_bn(net, "", 1, 3, channels, 7, 2, 1) ||
        !(pool = hs_net_add_layer(net, HS_LAYER_MAXPOOL, "maxpool")))
        goto oom;
    pool->pool_kernel = 3;
    pool->pool_stride = 2;
    pool->pool_pad = 1;

    static const int stage_planes[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; s++) {
        int planes = narrow(stage_planes[s], width_divisor);
        for (int b = 0; b < cfg->blocks[s]; b++) {
            char prefix[32]; /* "layer3.22" */
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            int stride = (b == 0 && s > 0) ? 2 : 1;
            if (!add_block(net, prefix, cfg->bottleneck, channels, planes, stride)) goto oom;
            channels = cfg->bottleneck ? planes * 4 : planes;
        }
    }
    if (!(pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool"))) goto oom;
    pool->out_h = pool->out_w = 1;
    if (!hs_net_add_layer(net, HS_LAYER_FLATTEN, "flatten")) goto oom;
    net->feature_end = net->count;

    hs_net_begin_block(net);
    if (!hs_net_add_linear(net, "fc", channels, classes)) goto oom;
    net->num_classes = classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building ResNet-%d", depth);
}
