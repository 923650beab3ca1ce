/* ConvNeXt as torchvision builds and names it (torchvision.models.convnext, convnext_tiny):
 *
 *   features.0      stem: Conv2d 4x4 stride 4 (bias) + LayerNorm2d (eps 1e-6)
 *   features.1,3,5,7 stages of CNBlocks, each
 *                     block.0 depthwise Conv2d 7x7 pad 3 (bias), block.2 LayerNorm over the
 *                     channels (eps 1e-6), block.3 Linear C -> 4C, block.4 GELU, block.5
 *                     Linear 4C -> C, then layer_scale, stochastic depth and the residual add
 *   features.2,4,6  downsampling: LayerNorm2d + Conv2d 2x2 stride 2 (bias)
 *   avgpool, classifier.0 LayerNorm2d, classifier.1 Flatten, classifier.2 Linear
 *
 * The two Linears act on each pixel (CNBlock permutes to NHWC around them): here they are 1x1
 * convolutions listed with the Linear's [out, in] weight (conv.c's pointwise_linear), so the
 * state dict's keys and shapes load and the plan runs them through oneDNN; the LayerNorm
 * between the permutes is the same per-pixel normalisation as LayerNorm2d. Stochastic depth
 * ("row" mode: one draw per sample, kept ones scaled by 1 / (1 - p)) is the drop_connect
 * layer, its rate rising linearly over the blocks from 0 to stochastic_depth_prob
 * (torchvision: p * index / (blocks - 1)). Each stem, block and downsampling is one unit of
 * hs_net_begin_block, the classifier's Linear another.
 *
 * The backbone (feature seam) ends after the pooling, classifier.0's norm and the flatten:
 * 768 features for convnext_tiny, the vector torchvision's classifier.2 reads.
 *
 * Every layer also carries timm's name (timm.models.convnext, convnext_tiny in timm 1.0.29):
 * stem.0 / stem.1, stages.S.downsample.0 / .1, stages.S.blocks.B.conv_dw / .norm / .mlp.fc1 /
 * .mlp.fc2, head.norm, head.fc. timm's layer scale is `stages.S.blocks.B.gamma` of shape [C]
 * where torchvision has `features.N.B.layer_scale` of [C, 1, 1]: the layer_scale layer's
 * timm_name is its block's prefix, the suffix and shape are for a timm loader to map. */
#include <stdio.h>

#include "error.h"
#include "net.h"

static const float ln_eps = 1e-6f;

/* torchvision's layer_scale=1e-6 (timm's ls_init_value): the blocks start near identity. */
static const float layer_scale_init = 1e-6f;

static hs_layer *named(hs_layer *l, const char *timm_name) {
    if (l && timm_name) snprintf(l->timm_name, sizeof l->timm_name, "%s", timm_name);
    return l;
}

static hs_layer *add_layernorm(hs_net *net, const char *name, const char *timm_name,
                               int channels) {
    hs_layer *l = named(hs_net_add_layer(net, HS_LAYER_LAYERNORM2D, name), timm_name);
    if (l) {
        l->channels = channels;
        l->bn_eps = ln_eps;
    }
    return l;
}

/* A Linear applied per pixel: a 1x1 convolution listed with the Linear's weight shape. */
static hs_layer *add_pointwise_linear(hs_net *net, const char *name, const char *timm_name,
                                      int in, int out) {
    hs_layer *l = named(hs_net_add_conv(net, name, in, out, 1, 1, 0, 1, 1, 0), timm_name);
    if (l) l->pointwise_linear = 1;
    return l;
}

/* CNBlock features.<feature>.<index>, timm stages.<stage>.blocks.<index>. */
static int add_block(hs_net *net, int feature, int stage, int index, int dim, float drop) {
    char name[HS_LAYER_NAME_SIZE], timm[HS_LAYER_NAME_SIZE], prefix[32], timm_prefix[32];
    snprintf(prefix, sizeof prefix, "features.%d.%d", feature, index);
    snprintf(timm_prefix, sizeof timm_prefix, "stages.%d.blocks.%d", stage, index);
    hs_net_begin_block(net);
    int block_input = hs_net_last(net);
#define NAMES(torch_suffix, timm_suffix)                                                    \
    (snprintf(name, sizeof name, "%s.%s", prefix, torch_suffix),                           \
     snprintf(timm, sizeof timm, "%s.%s", timm_prefix, timm_suffix))
    NAMES("block.0", "conv_dw");
    if (!named(hs_net_add_conv(net, name, dim, dim, 7, 1, 3, dim, 1, 0), timm)) return 0;
    NAMES("block.2", "norm");
    if (!add_layernorm(net, name, timm, dim)) return 0;
    NAMES("block.3", "mlp.fc1");
    if (!add_pointwise_linear(net, name, timm, dim, 4 * dim)) return 0;
    NAMES("block.4", "mlp.act");
    if (!named(hs_net_add_layer(net, HS_LAYER_GELU, name), timm)) return 0;
    NAMES("block.5", "mlp.fc2");
    if (!add_pointwise_linear(net, name, timm, 4 * dim, dim)) return 0;
#undef NAMES
    hs_layer *scale = named(hs_net_add_layer(net, HS_LAYER_LAYER_SCALE, prefix), timm_prefix);
    if (!scale) return 0;
    scale->channels = dim;
    scale->layer_scale_init = layer_scale_init;
    hs_layer *depth = hs_net_add_layer(net, HS_LAYER_DROP_CONNECT, ""); /* stochastic depth */
    if (!depth) return 0;
    depth->dropout_p = drop;
    return hs_net_add_residual(net, block_input) != NULL;
}

hs_status hs_build_convnext(hs_net *net, const int dims[4], const int depths[4],
                            float stochastic_depth_prob, int classes, hs_error *err) {
    int total = 0;
    for (int s = 0; s < 4; s++) {
        if (dims[s] < 1 || depths[s] < 1 || dims[s] > (1 << 20) || depths[s] > 1000)
            return hs_fail(err, HS_ERR_ARGUMENT, "ConvNeXt stage %d: width %d, depth %d", s,
                           dims[s], depths[s]);
        total += depths[s];
    }
    if (classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "ConvNeXt with %d classes", classes);
    hs_net_begin_block(net);
    if (!named(hs_net_add_conv(net, "features.0.0", 3, dims[0], 4, 4, 0, 1, 1, 0), "stem.0") ||
        !add_layernorm(net, "features.0.1", "stem.1", dims[0]))
        goto oom;
    int index = 0;
    char name[HS_LAYER_NAME_SIZE], timm[HS_LAYER_NAME_SIZE];
    for (int s = 0; s < 4; s++) {
        if (s > 0) { /* features.2, 4, 6 */
            hs_net_begin_block(net);
            snprintf(name, sizeof name, "features.%d.0", 2 * s);
            snprintf(timm, sizeof timm, "stages.%d.downsample.0", s);
            if (!add_layernorm(net, name, timm, dims[s - 1])) goto oom;
            snprintf(name, sizeof name, "features.%d.1", 2 * s);
            snprintf(timm, sizeof timm, "stages.%d.downsample.1", s);
            if (!named(hs_net_add_conv(net, name, dims[s - 1], dims[s], 2, 2, 0, 1, 1, 0),
                       timm))
                goto oom;
        }
        for (int b = 0; b < depths[s]; b++, index++) {
            /* torchvision: sd_prob = p * stage_block_id / (total_stage_blocks - 1) */
            float drop = total > 1 ? stochastic_depth_prob * (float)index / (float)(total - 1)
                                   : 0.0f;
            if (!add_block(net, 2 * s + 1, s, b, dims[s], drop)) goto oom;
        }
    }
    hs_layer *pool = named(hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool"),
                           "head.global_pool");
    if (!pool) goto oom;
    pool->out_h = pool->out_w = 1;
    if (!add_layernorm(net, "classifier.0", "head.norm", dims[3]) ||
        !named(hs_net_add_layer(net, HS_LAYER_FLATTEN, "classifier.1"), "head.flatten"))
        goto oom;
    net->feature_end = net->count;
    hs_net_begin_block(net);
    if (!named(hs_net_add_linear(net, "classifier.2", dims[3], classes), "head.fc")) goto oom;
    net->num_classes = classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building ConvNeXt");
}

hs_status hs_build_convnext_tiny(hs_net *net, hs_error *err) {
    static const int dims[4] = {96, 192, 384, 768}, depths[4] = {3, 3, 9, 3};
    return hs_build_convnext(net, dims, depths, 0.1f, 1000, err);
}
