/* timm's preprocessing, from the config.json that model hubs put beside the weights.
 *
 * A timm checkpoint on a model hub is a folder of model.safetensors (or pytorch_model.bin)
 * and config.json, whose "pretrained_cfg" says how its images were prepared:
 *
 *   {"architecture": "resnet50", "pretrained_cfg": {"input_size": [3, 224, 224],
 *    "crop_pct": 0.95, "interpolation": "bicubic", "mean": [...], "std": [...]}}
 *
 * (an older layout has those keys at the top level; both are read). Weights of one net
 * differ in these between tags (resnet50.a1_in1k resizes to 224/0.95, .tv_in1k to 256), so
 * they come with the file, not with the net.
 *
 * Precedence, per field: --img-size beats config.json beats the known weights file's
 * preprocessing (weight_versions.h: ResNet-50 V2 resizes to 232) beats the backbone's
 * built-in (backbones.c). config.json is read only beside a file named as hubs name them
 * (model.safetensors, pytorch_model.bin), so a stray config.json in a folder of torchvision
 * files changes nothing.
 *
 * Interpolations other than bilinear and bicubic (PIL-exact both), non-square inputs and
 * crop modes other than the centre are refused (HS_ERR_FORMAT), not silently changed. */
#ifndef HS_PRETRAINED_CFG_H
#define HS_PRETRAINED_CFG_H

#include <stddef.h>

#include "headstart.h"

/* config.json files larger than this are not a pretrained_cfg. */
#define HS_PRETRAINED_CFG_MAX_BYTES (1u << 20)

typedef struct hs_pretrained_cfg {
    int input_size;         /* 0: not given */
    double crop_pct;        /* 0: not given; else in (0.05, 1] */
    char interpolation[16]; /* "" when not given */
    int has_mean, has_std;
    float mean[3], std[3];
} hs_pretrained_cfg;

/* Parses a config.json held in memory; name is used in messages. */
hs_status hs_pretrained_cfg_parse(const char *text, size_t len, const char *name,
                                  hs_pretrained_cfg *out, hs_error *err);

/* The config.json beside weights_path, when weights_path is a hub file name and the config
 * is there: *found = 1 and config_path (config_size bytes) names it. */
hs_status hs_pretrained_cfg_find(const char *weights_path, char *config_path,
                                 size_t config_size, int *found, hs_error *err);

/* The preprocessing to run info with: the built-in, then the known file weights_path is
 * (by its name, else by weights_sha256: hex, NULL when not computed), then config.json
 * beside weights_path (NULL or "none": no file), then img_size (0: none). With img_size
 * the resize keeps the crop ratio it had. note (may be NULL) receives where the fields came
 * from ("" when all is built-in). */
hs_status hs_preprocess_resolve(const hs_backbone_info *info, const char *weights_path,
                                const char *weights_sha256, int img_size, hs_preprocess *out,
                                char *note, size_t note_size, hs_error *err);

#endif
