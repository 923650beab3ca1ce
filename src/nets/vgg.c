/* VGG16 exactly as torchvision lays it out and names its parameters: `features` (13 convs
 * with ReLU, 5 max pools; PyTorch's Sequential indices are the names), an adaptive average
 * pool to 7 x 7, and `classifier` (Linear 25088-4096, ReLU, Dropout, Linear 4096-4096, ReLU,
 * Dropout, Linear 4096-1000). The backbone ends after the flatten: 25,088 features.
 *
 * vgg16_bn is the same with a BatchNorm (PyTorch's defaults: eps 1e-5, momentum 0.1) between
 * each convolution and its ReLU, which shifts the `features` indices: conv 0, bn 1, relu 2,
 * conv 3, ..., the last max pool is features.43. */
#include <stdio.h>

#include "error.h"
#include "net.h"

/* torchvision's configuration "D": channel counts, 0 for a max pool. */
static const int vgg16_config[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0,
                                   512, 512, 512, 0, 512, 512, 512, 0};

hs_status hs_build_vgg16(hs_net *net, int width_divisor, int hidden, int classes, hs_error *err) {
    return hs_build_vgg16_ex(net, width_divisor, hidden, classes, 0, err);
}

hs_status hs_build_vgg16_ex(hs_net *net, int width_divisor, int hidden, int classes,
                            int batch_norm, hs_error *err) {
    if (width_divisor < 1 || hidden < 1 || classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid VGG16 size");
    char name[HS_LAYER_NAME_SIZE];
    int index = 0; /* position in torchvision's `features` Sequential */
    int channels = 3;
    for (size_t i = 0; i < sizeof vgg16_config / sizeof vgg16_config[0]; i++) {
        hs_layer *l;
        if (vgg16_config[i] == 0) {
            snprintf(name, sizeof name, "features.%d", index++);
            if (!(l = hs_net_add_layer(net, HS_LAYER_MAXPOOL, name))) goto oom;
            l->pool_kernel = 2;
            l->pool_stride = 2;
            continue;
        }
        int out = vgg16_config[i] / width_divisor;
        if (out < 1) out = 1;
        hs_net_begin_block(net); /* every convolution (with its BatchNorm) is a block */
        snprintf(name, sizeof name, "features.%d", index++);
        if (!hs_net_add_conv(net, name, channels, out, 3, 1, 1, 1, 1, 0)) goto oom;
        if (batch_norm) {
            snprintf(name, sizeof name, "features.%d", index++);
            if (!hs_net_add_batchnorm(net, name, out, 1e-5f, 0.1f)) goto oom;
        }
        snprintf(name, sizeof name, "features.%d", index++);
        if (!hs_net_add_layer(net, HS_LAYER_RELU, name)) goto oom;
        channels = out;
    }
    hs_net_begin_block(net);
    hs_layer *pool = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool");
    if (!pool) goto oom;
    pool->out_h = pool->out_w = 7;
    if (!hs_net_add_layer(net, HS_LAYER_FLATTEN, "flatten")) goto oom;
    net->feature_end = net->count;

    int features = channels * 7 * 7;
    hs_layer *drop;
    hs_net_begin_block(net);
    if (!hs_net_add_linear(net, "classifier.0", features, hidden) ||
        !hs_net_add_layer(net, HS_LAYER_RELU, "classifier.1") ||
        !(drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "classifier.2")))
        goto oom;
    drop->dropout_p = 0.5f;
    hs_net_begin_block(net);
    if (!hs_net_add_linear(net, "classifier.3", hidden, hidden) ||
        !hs_net_add_layer(net, HS_LAYER_RELU, "classifier.4") ||
        !(drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "classifier.5")))
        goto oom;
    drop->dropout_p = 0.5f;
    hs_net_begin_block(net);
    if (!hs_net_add_linear(net, "classifier.6", hidden, classes)) goto oom;
    net->num_classes = classes;
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM, "out of memory building VGG16");
}
