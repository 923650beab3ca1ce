/* What 'headstart backbones' says of each net, computed from its layer list: parameter count
 * and FLOPs per image. Only the layers are built, never the weights, so listing every
 * backbone costs microseconds, not VGG16's 528 MB. */
#ifndef HS_BACKBONE_STATS_H
#define HS_BACKBONE_STATS_H

#include <stdint.h>

#include "headstart.h"

typedef struct hs_backbone_stats {
    int64_t params;          /* trainable parameters of the whole ImageNet net, head included
                              * (PyTorch's sum(p.numel() for p in model.parameters())) */
    int64_t backbone_params; /* of layers [0, feature_end): what extracts the features */
    double gflop;            /* 2 x multiply-adds of the backbone for one image of
                              * input_size x input_size (hs_bench_count_gflop) */
    int feature_dim;         /* the backbone's output at input_size */
} hs_backbone_stats;

hs_status hs_backbone_stats_compute(const hs_backbone_info *info, int input_size,
                                    hs_backbone_stats *out, hs_error *err);

#endif
