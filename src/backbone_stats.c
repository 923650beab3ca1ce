/* Parameter and FLOP counts of a backbone from its layer list (see backbone_stats.h). */
#include "backbone_stats.h"

#include <stdlib.h>
#include <string.h>

#include "backbones.h"
#include "bench_forward.h"
#include "error.h"
#include "net.h"

hs_status hs_backbone_stats_compute(const hs_backbone_info *info, int input_size,
                                    hs_backbone_stats *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    hs_net net;
    memset(&net, 0, sizeof net);
    hs_param_ref *refs = NULL;
    int count = 0, c = 0, h = 0, w = 0;
    /* The layer list alone: parameter shapes and activation shapes need no arena. */
    hs_status st = hs_build_backbone(&net, info, err);
    if (!st) st = hs_net_params(&net, &refs, &count, err);
    for (int i = 0; !st && i < count; i++) {
        if (refs[i].buffer) continue;
        int64_t n = hs_param_numel(&refs[i]);
        out->params += n;
        if (refs[i].layer < net.feature_end) out->backbone_params += n;
    }
    if (!st) st = hs_bench_count_gflop(&net, input_size, &out->gflop, err);
    if (!st) st = hs_net_shape(&net, 0, net.feature_end, 3, input_size, input_size, &c, &h, &w, err);
    if (!st) out->feature_dim = c * h * w;
    free(refs);
    hs_net_release(&net);
    return st;
}
