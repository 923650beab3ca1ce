/* The small net of every layer kind that test_engine and test_engine_fast train:
 *  0 conv 3->C k3 pad 1 bias    1 BN (train)    2 ReLU
 *  3 depthwise conv k3 s2 SAME  4 BN (frozen)   5 ReLU6
 *  6 dilated conv k3 d2 pad 2   7 drop connect  8 add (edge from 5)
 *  9 maxpool k3 s2 p1         10 projection conv k1 s2 reading layer 8 (not the layer before)
 * 11 BN (train)               12 add of 9 and 11
 * 13 avgpool k2 s1            14 adaptive avgpool 2x1   15 flatten
 * 16 linear 2C->hidden        17 ReLU         18 dropout 0.3          19 linear hidden->classes
 * Parameters drawn from seed 11; the callers then set BatchNorm's values. */
#ifndef HS_TEST_MIXED_NET_H
#define HS_TEST_MIXED_NET_H

#include <stdlib.h>

#include "check.h"
#include "net.h"

static inline hs_net *test_mixed_net(int channels, int hidden, int classes,
                                     float drop_connect_p) {
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->head_begin = -1;
    CHECK(hs_net_add_conv(net, "conv0", 3, channels, 3, 1, 1, 1, 1, 0) != NULL);
    CHECK(hs_net_add_batchnorm(net, "bn1", channels, 1e-3f, 0.1f) != NULL);
    CHECK(hs_net_add_layer(net, HS_LAYER_RELU, "") != NULL);
    CHECK(hs_net_add_conv(net, "dw3", channels, channels, 3, 2, 0, channels, 0, 1) != NULL);
    hs_layer *bn = hs_net_add_batchnorm(net, "bn4", channels, 1e-3f, 0.1f);
    bn->bn_mode = HS_BN_FROZEN;
    CHECK(hs_net_add_layer(net, HS_LAYER_RELU6, "") != NULL);
    hs_layer *dil = hs_net_add_conv(net, "dil6", channels, channels, 3, 1, 2, 1, 1, 0);
    dil->conv.dilation_h = dil->conv.dilation_w = 2;
    hs_layer *dc = hs_net_add_layer(net, HS_LAYER_DROP_CONNECT, "");
    dc->dropout_p = drop_connect_p;
    CHECK(hs_net_add_residual(net, 5) != NULL);
    hs_layer *mp = hs_net_add_layer(net, HS_LAYER_MAXPOOL, "mp");
    mp->pool_kernel = 3, mp->pool_stride = 2, mp->pool_pad = 1;
    hs_layer *proj = hs_net_add_conv(net, "proj10", channels, channels, 1, 2, 0, 1, 0, 0);
    proj->input = 8;
    CHECK(hs_net_add_batchnorm(net, "bn11", channels, 1e-3f, 0.1f) != NULL);
    hs_layer *join = hs_net_add_residual(net, 11);
    join->input = 9;
    hs_layer *ap = hs_net_add_layer(net, HS_LAYER_AVGPOOL, "ap");
    ap->pool_kernel = 2, ap->pool_stride = 1, ap->pool_pad = 0;
    hs_layer *aap = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "aap");
    aap->out_h = 2, aap->out_w = 1;
    CHECK(hs_net_add_layer(net, HS_LAYER_FLATTEN, "") != NULL);
    net->feature_end = net->count;
    CHECK(hs_net_add_linear(net, "fc16", 2 * channels, hidden) != NULL);
    CHECK(hs_net_add_layer(net, HS_LAYER_RELU, "") != NULL);
    hs_layer *drop = hs_net_add_layer(net, HS_LAYER_DROPOUT, "");
    drop->dropout_p = 0.3f;
    CHECK(hs_net_add_linear(net, "fc19", hidden, classes) != NULL);
    net->num_classes = classes;
    CHECK(hs_net_init_params(net, 0, net->count, 11, &err) == HS_OK);
    return net;
}

#endif
