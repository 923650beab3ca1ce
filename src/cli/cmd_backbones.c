/* headstart backbones: what each backbone expects and whether its weights are here. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_backbones(int argc, char **argv) {
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            printf("usage: headstart backbones\n\nLists each backbone with its input size, "
                   "feature size, preprocessing and whether its pretrained weights are "
                   "present.\n");
            return 0;
        }
        return cli_usage_error("backbones", "unexpected argument '%s'", argv[1]);
    }
    printf("%-20s %5s %6s %8s  %-27s %s\n", "backbone", "input", "resize", "features",
           "mean / std", "weights");
    for (int i = 0; i < hs_backbone_count(); i++) {
        const hs_backbone_info *b = hs_backbone_at(i);
        const hs_preprocess *pp = &b->preprocess;
        char path[4096];
        hs_error err = {0};
        int present = hs_find_weights(b, path, sizeof path, &err) == HS_OK;
        char stats[64];
        snprintf(stats, sizeof stats, "%.3f,%.3f,%.3f / %.3f,%.3f,%.3f", pp->mean[0],
                 pp->mean[1], pp->mean[2], pp->std[0], pp->std[1], pp->std[2]);
        printf("%-20s %5d %6d %8d  %-27s %s\n", b->name, pp->input_size, pp->resize_size,
               b->feature_dim, stats, present ? path : "missing");
        if (!present) printf("%-20s   to get them: %s\n", "", b->weights_hint);
    }
    return 0;
}
