/* The public network API of include/headstart.h over the internal layer list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbones.h"
#include "error.h"
#include "net.h"
#include "pth.h"
#include "safetensors.h"

hs_status hs_net_create(const char *backbone, uint64_t seed, hs_net **out, hs_error *err) {
    *out = NULL;
    const hs_backbone_info *info = hs_backbone_find(backbone);
    if (!info) return hs_fail(err, HS_ERR_ARGUMENT, "unknown backbone '%s'", backbone);
    hs_net *net = calloc(1, sizeof *net);
    if (!net) return hs_fail(err, HS_ERR_NOMEM, "out of memory creating %s", backbone);
    hs_status st = hs_build_backbone(net, info, err);
    if (!st) st = hs_net_init_params(net, 0, net->count, seed, err);
    if (st) {
        hs_net_free(net);
        return st;
    }
    *out = net;
    return HS_OK;
}

void hs_net_free(hs_net *net) {
    if (!net) return;
    hs_net_release(net);
    free(net);
}

const hs_backbone_info *hs_net_backbone(const hs_net *net) { return net->info; }
int hs_net_num_classes(const hs_net *net) { return net->num_classes; }

int hs_net_feature_dim(const hs_net *net) {
    int c = 0, h = 0, w = 0;
    const hs_preprocess *pp = &net->info->preprocess;
    if (hs_net_shape(net, 0, net->feature_end, 3, pp->input_size, pp->input_size, &c, &h, &w,
                     NULL))
        return 0;
    return c * h * w;
}

/* Reads a weights file of any supported format, chosen by its first bytes. */
hs_status hs_load_weights_file(const char *path, hs_state_dict *sd, hs_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "cannot open %s", path);
    unsigned char magic[9] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got >= 2 && magic[0] == 'P' && magic[1] == 'K') return hs_pth_load(path, sd, err);
    if (got >= 1 && magic[0] == 0x80) return hs_pth_load(path, sd, err); /* a pickle */
    if (got == 9 && magic[8] == '{') return hs_safetensors_load(path, sd, err);
    return hs_fail(err, HS_ERR_FORMAT,
                   "%s is neither a PyTorch .pth file nor a safetensors file", path);
}

hs_status hs_net_load_weights(hs_net *net, const char *path, hs_error *err) {
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_status st = hs_load_weights_file(path, &sd, err);
    if (!st) st = hs_net_load_state_dict(net, &sd, path, err);
    hs_sd_free(&sd);
    return st;
}

hs_status hs_net_save_weights(const hs_net *net, const char *path, hs_error *err) {
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_status st = hs_net_state_dict(net, &sd, err);
    char classes[16];
    snprintf(classes, sizeof classes, "%d", net->num_classes);
    hs_kv meta[] = {{"format", "headstart"}, {"backbone", net->info->name},
                    {"num_classes", classes}};
    if (!st) st = hs_safetensors_save(path, &sd, meta, sizeof meta / sizeof meta[0], err);
    hs_sd_free(&sd);
    return st;
}

/* The index of the last linear layer: the layer every head kind replaces. */
static int last_linear(const hs_net *net) {
    for (int i = net->count - 1; i >= net->feature_end; i--)
        if (net->layers[i].kind == HS_LAYER_LINEAR) return i;
    return -1;
}

hs_status hs_net_replace_head(hs_net *net, int num_classes, hs_head_kind kind, uint64_t seed,
                              hs_error *err) {
    if (num_classes < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "a head needs at least one class, got %d",
                       num_classes);
    if (num_classes > HS_MAX_CLASSES)
        return hs_fail(err, HS_ERR_ARGUMENT, "%d classes is over the limit of %d a head may have",
                       num_classes, HS_MAX_CLASSES);
    int last = last_linear(net);
    if (last < 0) return hs_fail(err, HS_ERR_INTERNAL, "%s has no head", net->info->name);
    /* The classifier block is everything after the features, its dropout included
     * (EfficientNet-Lite: _dropout and _fc; VGG16: classifier.0 to .6). */
    int first = kind == HS_HEAD_CLASSIFIER ? net->feature_end : last;
    net->layers[last].out_features = num_classes;
    net->num_classes = num_classes;
    net->head_begin = first;
    return hs_net_init_params(net, first, last + 1, seed, err);
}

static hs_status check_input(const hs_net *net, int n, int height, int width, hs_error *err) {
    if (n <= 0 || height <= 0 || width <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid input of %d images of %d x %d", n, height,
                       width);
    (void)net;
    return HS_OK;
}

hs_status hs_net_features(hs_net *net, const float *input, int n, int height, int width,
                          float *features, hs_error *err) {
    hs_status st = check_input(net, n, height, width, err);
    if (st) return st;
    return hs_net_run(net, 0, net->feature_end, input, n, 3, height, width, features, err);
}

hs_status hs_net_head(hs_net *net, const float *features, int n, float *logits, hs_error *err) {
    int dim = hs_net_feature_dim(net);
    if (n <= 0) return hs_fail(err, HS_ERR_ARGUMENT, "invalid batch of %d", n);
    return hs_net_run(net, net->feature_end, net->count, features, n, dim, 1, 1, logits, err);
}

hs_status hs_net_forward(hs_net *net, const float *input, int n, int height, int width,
                         float *logits, hs_error *err) {
    hs_status st = check_input(net, n, height, width, err);
    if (st) return st;
    return hs_net_run(net, 0, net->count, input, n, 3, height, width, logits, err);
}

hs_status hs_convert_pth_to_safetensors(const char *in_path, const char *out_path,
                                        hs_error *err) {
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_status st = hs_load_weights_file(in_path, &sd, err);
    hs_kv meta[] = {{"format", "pt"}, {"converted_by", "headstart " HEADSTART_VERSION}};
    if (!st) st = hs_safetensors_save(out_path, &sd, meta, 2, err);
    hs_sd_free(&sd);
    return st;
}
