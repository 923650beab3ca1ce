/* timm's pretrained_cfg from config.json (see pretrained_cfg.h). */
#include "pretrained_cfg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileutil.h"
#include "json_bound.h"
#include "weight_versions.h"

/* A hub config.json may also carry the label names (21,843 for ImageNet-21k) and their
 * descriptions: room for those, and no more, before cJSON spends ~80 bytes a value. */
#define MAX_JSON_VALUES 100000u

/* Reads a JSON array of exactly n numbers into out. */
static int read_numbers(const cJSON *array, int n, double *out) {
    if (!cJSON_IsArray(array) || cJSON_GetArraySize(array) != n) return 0;
    int i = 0;
    for (const cJSON *v = array->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
        out[i] = v->valuedouble;
    }
    return 1;
}

static hs_status parse_cfg(const cJSON *cfg, const char *name, hs_pretrained_cfg *out,
                           hs_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "input_size");
    double d[3];
    if (v) {
        if (!read_numbers(v, 3, d) || d[0] != 3 || d[1] < 16 || d[1] > 2048 ||
            d[1] != floor(d[1]))
            return hs_fail(err, HS_ERR_FORMAT,
                           "%s: input_size must be [3, H, W] with H = W in 16..2048", name);
        if (d[1] != d[2])
            return hs_fail(err, HS_ERR_FORMAT,
                           "%s: input_size [3, %g, %g] is not square; headstart prepares "
                           "square images only", name, d[1], d[2]);
        out->input_size = (int)d[1];
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "crop_pct")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.05 && v->valuedouble <= 1.0))
            return hs_fail(err, HS_ERR_FORMAT, "%s: crop_pct must be a number in (0.05, 1]",
                           name);
        out->crop_pct = v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "crop_mode")) && cJSON_IsString(v) &&
        strcmp(v->valuestring, "center") != 0)
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: crop_mode '%.32s' is not supported (headstart crops the centre)",
                       name, v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "interpolation")) && cJSON_IsString(v)) {
        hs_interpolation interp;
        if (!hs_interpolation_parse(v->valuestring, &interp))
            return hs_fail(err, HS_ERR_FORMAT, "%s: interpolation '%.32s' is not supported "
                           "(headstart resizes bilinear or bicubic, as PIL)", name,
                           v->valuestring);
        snprintf(out->interpolation, sizeof out->interpolation, "%s", v->valuestring);
    }
    const char *stats[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        if (!(v = cJSON_GetObjectItemCaseSensitive(cfg, stats[k]))) continue;
        if (!read_numbers(v, 3, d))
            return hs_fail(err, HS_ERR_FORMAT, "%s: %s must be a list of 3 numbers", name,
                           stats[k]);
        float *dst = k == 0 ? out->mean : out->std;
        for (int c = 0; c < 3; c++) {
            if (k == 1 && !(d[c] > 1e-6))
                return hs_fail(err, HS_ERR_FORMAT, "%s: std must be positive", name);
            if (k == 0 && fabs(d[c]) > 1e3)
                return hs_fail(err, HS_ERR_FORMAT, "%s: mean is out of range", name);
            dst[c] = (float)d[c];
        }
        if (k == 0) out->has_mean = 1;
        else out->has_std = 1;
    }
    return HS_OK;
}

hs_status hs_pretrained_cfg_parse(const char *text, size_t len, const char *name,
                                  hs_pretrained_cfg *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (hs_json_value_bound(text, len) > MAX_JSON_VALUES)
        return hs_fail(err, HS_ERR_FORMAT, "%s holds more JSON values than a model config can",
                       name);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hs_fail(err, HS_ERR_FORMAT, "%s is not a JSON object", name);
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "pretrained_cfg");
    hs_status st;
    if (cfg && !cJSON_IsObject(cfg))
        st = hs_fail(err, HS_ERR_FORMAT, "%s: pretrained_cfg is not an object", name);
    else
        st = parse_cfg(cfg ? cfg : root, name, out, err);
    cJSON_Delete(root);
    return st;
}

static const char *const hub_weight_names[] = {"model.safetensors", "pytorch_model.bin"};

hs_status hs_pretrained_cfg_find(const char *weights_path, char *config_path,
                                 size_t config_size, int *found, hs_error *err) {
    *found = 0;
    if (!weights_path || strcmp(weights_path, "none") == 0) return HS_OK;
    const char *slash = strrchr(weights_path, '/');
    const char *base = slash ? slash + 1 : weights_path;
    int hub = 0;
    for (size_t i = 0; i < sizeof hub_weight_names / sizeof hub_weight_names[0]; i++)
        hub |= strcmp(base, hub_weight_names[i]) == 0;
    if (!hub) return HS_OK;
    int folder = slash ? (int)(slash - weights_path) : 0;
    int n = slash ? snprintf(config_path, config_size, "%.*s/config.json", folder, weights_path)
                  : snprintf(config_path, config_size, "config.json");
    if (n < 0 || (size_t)n >= config_size)
        return hs_fail(err, HS_ERR_ARGUMENT, "path too long: %s", weights_path);
    *found = hs_path_exists(config_path) && !hs_is_dir(config_path);
    return HS_OK;
}

hs_status hs_preprocess_resolve(const hs_backbone_info *info, const char *weights_path,
                                const char *weights_sha256, int img_size, hs_preprocess *out,
                                char *note, size_t note_size, hs_error *err) {
    *out = info->preprocess;
    size_t used = 0;
    if (note && note_size) note[0] = '\0';
#define NOTE(...)                                                                          \
    do {                                                                                   \
        if (note && used < note_size) {                                                    \
            int k_ = snprintf(note + used, note_size - used, __VA_ARGS__);                 \
            if (k_ > 0) used += (size_t)k_;                                                \
        }                                                                                  \
    } while (0)
    const hs_weights_version *version = hs_weights_version_of(info, weights_path,
                                                              weights_sha256);
    if (version && memcmp(&version->preprocess, out, sizeof *out) != 0) {
        *out = version->preprocess;
        NOTE("%s %s (%s): resize %d %s, crop %d", info->name, version->tag, version->file,
             out->resize_size, hs_interpolation_name(out->interpolation), out->input_size);
    }
    char path[4096];
    int found = 0;
    hs_status st = hs_pretrained_cfg_find(weights_path, path, sizeof path, &found, err);
    if (st) return st;
    if (found) {
        char *text = NULL;
        size_t size = 0;
        hs_pretrained_cfg cfg;
        if ((st = hs_read_file(path, HS_PRETRAINED_CFG_MAX_BYTES, &text, &size, err))) return st;
        st = hs_pretrained_cfg_parse(text, size, path, &cfg, err);
        free(text);
        if (st) return st;
        /* The crop ratio is the built-in's unless the file gives one. */
        double ratio = cfg.crop_pct > 0 ? cfg.crop_pct
                                        : (double)out->input_size / out->resize_size;
        if (cfg.input_size) out->input_size = cfg.input_size;
        if (cfg.input_size || cfg.crop_pct > 0)
            out->resize_size = (int)floor(out->input_size / ratio); /* timm's scale_size */
        if (cfg.has_mean) memcpy(out->mean, cfg.mean, sizeof out->mean);
        if (cfg.has_std) memcpy(out->std, cfg.std, sizeof out->std);
        if (cfg.interpolation[0]) hs_interpolation_parse(cfg.interpolation, &out->interpolation);
        NOTE("%spreprocessing from %s: %d px, resize %d %s, mean %.3f,%.3f,%.3f, std "
             "%.3f,%.3f,%.3f", used ? "; " : "", path, out->input_size, out->resize_size,
             hs_interpolation_name(out->interpolation), out->mean[0], out->mean[1],
             out->mean[2], out->std[0], out->std[1], out->std[2]);
    }
    if (img_size) {
        if (img_size < 32 || img_size > 1024)
            return hs_fail(err, HS_ERR_ARGUMENT, "--img-size must be 32..1024, not %d", img_size);
        double ratio = (double)out->input_size / out->resize_size;
        out->input_size = img_size;
        out->resize_size = (int)floor(img_size / ratio + 0.5);
        if (out->resize_size < img_size) out->resize_size = img_size;
    }
#undef NOTE
    return HS_OK;
}
