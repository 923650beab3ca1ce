/* timm's state dicts and preprocessing: a file in timm's naming loads by timm_key (with
 * shapes that differ only by trailing 1-sized dimensions), load errors name the net, the
 * naming, the first keys with the shapes expected and found and the backbone the file does
 * fit; config.json's pretrained_cfg and its precedence; weights in the Hugging Face hub
 * cache's layout. */
#include <string.h>

#include "backbones.h"
#include "check.h"
#include "net.h"
#include "pretrained_cfg.h"
#include "test_util.h"
#include "weight_versions.h"

#define TMP HS_TEST_TMP_DIR "/timm"

/* A small net whose layers have timm names unlike their torchvision ones, with a depthwise
 * 1x1 convolution: its weight is [C, 1, 1, 1] here and stored as [C] (as timm stores
 * ConvNeXt's layer scale) in the timm file below. */
static hs_net *mini_net(uint64_t seed) {
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->info = hs_backbone_find("efficientnet_lite0"); /* names the net in messages */
    net->head_begin = -1;
    hs_layer *l;
    hs_net_begin_block(net);
    l = hs_net_add_conv(net, "features.0.0", 3, 4, 3, 1, 1, 1, 0, 0);
    snprintf(l->timm_name, sizeof l->timm_name, "stem.conv");
    l = hs_net_add_batchnorm(net, "features.0.1", 4, 1e-5f, 0.1f);
    snprintf(l->timm_name, sizeof l->timm_name, "stem.bn");
    hs_net_add_layer(net, HS_LAYER_RELU, "features.0.2");
    hs_net_begin_block(net);
    l = hs_net_add_conv(net, "features.1.dw", 4, 4, 1, 1, 0, 4, 1, 0);
    snprintf(l->timm_name, sizeof l->timm_name, "blocks.0.dw");
    l = hs_net_add_layer(net, HS_LAYER_ADAPTIVE_AVGPOOL, "avgpool");
    l->out_h = l->out_w = 1;
    hs_net_add_layer(net, HS_LAYER_FLATTEN, "flatten");
    net->feature_end = net->count;
    hs_net_begin_block(net);
    l = hs_net_add_linear(net, "classifier", 4, 3);
    snprintf(l->timm_name, sizeof l->timm_name, "head.fc");
    net->num_classes = 3;
    CHECK_MSG(hs_net_init_params(net, 0, net->count, seed, &err) == HS_OK, "%s", err.message);
    /* Non-trivial BatchNorm statistics, so that buffers are checked too. */
    for (int i = 0; i < net->count; i++)
        if (net->layers[i].kind == HS_LAYER_BATCHNORM)
            for (int c = 0; c < 4; c++) {
                net->layers[i].running_mean[c] = 0.1f * (float)(c + seed);
                net->layers[i].running_var[c] = 1.0f + 0.5f * (float)c + (float)seed;
            }
    return net;
}

/* The net's tensors under timm's keys; drop (or NULL) is left out, and the depthwise weight
 * gets dw_shape (dw_ndim dims). */
static void timm_state_dict(hs_net *net, hs_state_dict *sd, const char *drop, int dw_ndim,
                            const int64_t *dw_shape) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_error err = {0};
    hs_sd_init(sd);
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        if (drop && strcmp(refs[i].timm_key, drop) == 0) continue;
        int dw = strcmp(refs[i].timm_key, "blocks.0.dw.weight") == 0;
        float *copy = test_alloc_floats(hs_param_numel(&refs[i]));
        memcpy(copy, *refs[i].data, (size_t)hs_param_numel(&refs[i]) * sizeof(float));
        CHECK(hs_sd_add(sd, refs[i].timm_key, dw ? dw_ndim : refs[i].ndim,
                        dw ? dw_shape : refs[i].shape, HS_DTYPE_F32, copy, &err) == HS_OK);
    }
    free(refs);
}

static int same_values(const hs_net *a, const hs_net *b) {
    return a->param_floats == b->param_floats && a->buffer_floats == b->buffer_floats &&
           memcmp(a->params, b->params, (size_t)a->param_floats * sizeof(float)) == 0 &&
           memcmp(a->buffers, b->buffers, (size_t)a->buffer_floats * sizeof(float)) == 0;
}

static void test_timm_names(void) {
    hs_net *src = mini_net(1), *dst = mini_net(2);
    hs_error err = {0};
    CHECK(!same_values(src, dst));
    hs_state_dict sd;
    const int64_t dw[1] = {4};
    timm_state_dict(src, &sd, NULL, 1, dw);
    CHECK(hs_sd_find(&sd, "features.0.0.weight") == NULL && hs_sd_find(&sd, "stem.conv.weight"));
    hs_status st = hs_net_load_state_dict(dst, &sd, "timm.safetensors", &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    CHECK(same_values(src, dst));
    float x[3 * 8 * 8], a[3], b[3];
    for (int i = 0; i < 3 * 8 * 8; i++) x[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    CHECK(hs_net_forward(src, x, 1, 8, 8, a, &err) == HS_OK);
    CHECK(hs_net_forward(dst, x, 1, 8, 8, b, &err) == HS_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    hs_sd_free(&sd);

    /* torchvision's naming still loads (hs_net_state_dict writes it). */
    hs_net_free(dst);
    dst = mini_net(3);
    hs_sd_init(&sd);
    CHECK(hs_net_state_dict(src, &sd, &err) == HS_OK);
    CHECK_MSG(hs_net_load_state_dict(dst, &sd, "tv.pth", &err) == HS_OK, "%s", err.message);
    CHECK(same_values(src, dst));
    hs_sd_free(&sd);

    /* A timm file without a tensor: named in timm's naming, with the shape expected. */
    hs_net_free(dst);
    dst = mini_net(3);
    timm_state_dict(src, &sd, "head.fc.bias", 1, dw);
    st = hs_net_load_state_dict(dst, &sd, "timm.safetensors", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "timm.safetensors does not fit efficientnet_lite0 (timm "
                                  "names): missing head.fc.bias [3]"), "%s", err.message);
    hs_sd_free(&sd);

    /* Trailing 1-sized dimensions are the only difference allowed. */
    const int64_t wrong[2] = {4, 2};
    timm_state_dict(src, &sd, NULL, 2, wrong);
    st = hs_net_load_state_dict(dst, &sd, "timm.safetensors", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "shapes differ: blocks.0.dw.weight is [4, 2] in the file, "
                                  "[4, 1, 1, 1] here"), "%s", err.message);
    CHECK(!same_values(src, dst)); /* a failed load changes nothing */
    hs_sd_free(&sd);
    hs_net_free(src);
    hs_net_free(dst);
}

/* timm's MobileNetV3 keeps the classifier's first Linear as conv_head, a 1x1 conv:
 * [1280, 960, 1, 1] (large) and [1024, 576, 1, 1] (small) where torchvision's classifier.0 is
 * [1280, 960]. A timm-style state dict with those shapes loads every value and gives the
 * same logits. */
static void test_mobilenet_v3_conv_head(void) {
    static const struct {
        const char *net;
        int64_t out, in;
    } cases[] = {{"mobilenet_v3_large", 1280, 960}, {"mobilenet_v3_small", 1024, 576}};
    for (int k = 0; k < 2; k++) {
        hs_net *src = NULL, *dst = NULL;
        hs_error err = {0};
        CHECK(hs_net_create(cases[k].net, 1, &src, &err) == HS_OK);
        CHECK(hs_net_create(cases[k].net, 2, &dst, &err) == HS_OK);
        if (!src || !dst) return;
        hs_param_ref *refs = NULL;
        int count = 0, reshaped = 0;
        hs_state_dict sd;
        hs_sd_init(&sd);
        CHECK(hs_net_params(src, &refs, &count, &err) == HS_OK);
        for (int i = 0; i < count; i++) {
            int64_t shape[4] = {cases[k].out, cases[k].in, 1, 1};
            int head = strcmp(refs[i].timm_key, "conv_head.weight") == 0;
            if (head) {
                CHECK(refs[i].ndim == 2 && refs[i].shape[0] == cases[k].out &&
                      refs[i].shape[1] == cases[k].in);
                reshaped++;
            }
            float *copy = test_alloc_floats(hs_param_numel(&refs[i]));
            memcpy(copy, *refs[i].data, (size_t)hs_param_numel(&refs[i]) * sizeof(float));
            CHECK(hs_sd_add(&sd, refs[i].timm_key, head ? 4 : refs[i].ndim,
                            head ? shape : refs[i].shape, HS_DTYPE_F32, copy, &err) == HS_OK);
        }
        free(refs);
        CHECK_MSG(reshaped == 1 && hs_sd_find(&sd, "classifier.0.weight") == NULL, "%s",
                  cases[k].net);
        CHECK_MSG(hs_net_load_state_dict(dst, &sd, "model.safetensors", &err) == HS_OK, "%s: %s",
                  cases[k].net, err.message);
        CHECK_MSG(same_values(src, dst), "%s: values differ after the load", cases[k].net);
        const int size = 32;
        float *x = test_alloc_floats(3 * size * size), a[1000], b[1000];
        for (int i = 0; i < 3 * size * size; i++) x[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
        CHECK(hs_net_forward(src, x, 1, size, size, a, &err) == HS_OK);
        CHECK(hs_net_forward(dst, x, 1, size, size, b, &err) == HS_OK);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: logits differ", cases[k].net);
        free(x);
        hs_sd_free(&sd);
        hs_net_free(src);
        hs_net_free(dst);
    }
}

/* A file of another known backbone says which; a file of none says what is missing. */
static void test_mismatch_messages(void) {
    hs_error err = {0};
    hs_net *lite0 = NULL, *lite1 = NULL;
    test_make_dir(TMP);
    CHECK(hs_net_create("efficientnet_lite0", 1, &lite0, &err) == HS_OK);
    CHECK(hs_net_create("efficientnet_lite1", 1, &lite1, &err) == HS_OK);
    CHECK(hs_net_save_weights(lite0, TMP "/lite0.safetensors", &err) == HS_OK);
    CHECK(hs_net_save_weights(lite1, TMP "/lite1.safetensors", &err) == HS_OK);

    /* VGG16's layer list alone: a load that fails checks everything before it writes a
     * value, so no 528 MB of weights are needed to see the message. */
    hs_net vgg;
    memset(&vgg, 0, sizeof vgg);
    CHECK(hs_build_backbone(&vgg, hs_backbone_find("vgg16"), &err) == HS_OK);
    hs_status st = hs_net_load_weights(&vgg, TMP "/lite0.safetensors", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "lite0.safetensors does not fit vgg16 (torchvision names), "
                                  "it holds the weights of efficientnet_lite0 (--backbone "
                                  "efficientnet_lite0): missing features.0.weight [64, 3, 3, 3]"),
              "%s", err.message);
    hs_net_release(&vgg);

    /* Lite1 for Lite0, the shape of a ResNet-50 file given for ResNet-18. */
    st = hs_net_load_weights(lite0, TMP "/lite1.safetensors", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "does not fit efficientnet_lite0") &&
                  strstr(err.message, "holds the weights of efficientnet_lite1"), "%s",
              err.message);

    /* A file of no known backbone (VGG16 at 1/32 width): the keys, no guess. */
    st = hs_net_load_weights(lite0, HS_FIXTURES_DIR "/nets/vgg16_tiny_zip.pth", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "does not fit efficientnet_lite0 (torchvision names): "
                                  "missing _conv_stem.weight [32, 3, 3, 3]") &&
                  !strstr(err.message, "holds the weights"), "%s", err.message);

    /* A tensor the net does not have, with its shape. */
    hs_state_dict sd;
    hs_sd_init(&sd);
    CHECK(hs_net_state_dict(lite0, &sd, &err) == HS_OK);
    const int64_t shape[2] = {2, 5};
    CHECK(hs_sd_add(&sd, "extra.weight", 2, shape, HS_DTYPE_F32, test_alloc_floats(10), &err) ==
          HS_OK);
    st = hs_net_load_state_dict(lite0, &sd, "extra.pth", &err);
    CHECK(st == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "unexpected keys extra.weight [2, 5]"), "%s", err.message);
    hs_sd_free(&sd);
    hs_net_free(lite0);
    hs_net_free(lite1);
}

static void write_text(const char *path, const char *text) {
    CHECK_MSG(test_write_text(path, text) == 0, "cannot write %s", path);
}

static void test_pretrained_cfg(void) {
    hs_pretrained_cfg cfg;
    hs_error err = {0};
    const char *nested = "{\"architecture\": \"resnet50\", \"pretrained_cfg\": {\"input_size\": "
                         "[3, 224, 224], \"crop_pct\": 0.95, \"interpolation\": \"bicubic\", "
                         "\"crop_mode\": \"center\", \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, "
                         "0.5, 1], \"label_names\": [\"a\", \"b\"]}}";
    CHECK(hs_pretrained_cfg_parse(nested, strlen(nested), "c", &cfg, &err) == HS_OK);
    CHECK(cfg.input_size == 224 && fabs(cfg.crop_pct - 0.95) < 1e-12 && cfg.has_mean &&
          cfg.has_std && cfg.std[0] == 0.25f && cfg.std[2] == 1.0f &&
          strcmp(cfg.interpolation, "bicubic") == 0);
    const char *flat = "{\"input_size\": [3, 256, 256], \"mean\": [0.1, 0.2, 0.3]}";
    CHECK(hs_pretrained_cfg_parse(flat, strlen(flat), "c", &cfg, &err) == HS_OK);
    CHECK(cfg.input_size == 256 && cfg.crop_pct == 0 && cfg.has_mean && !cfg.has_std);

    const struct {
        const char *text, *message;
    } bad[] = {
        {"{\"input_size\": [3, 224, 192]}", "not square"},
        {"{\"input_size\": [1, 224, 224]}", "[3, H, W]"},
        {"{\"input_size\": [3, 224]}", "[3, H, W]"},
        {"{\"crop_pct\": 0}", "crop_pct"},
        {"{\"crop_pct\": \"0.9\"}", "crop_pct"},
        {"{\"std\": [0.2, 0, 0.2]}", "std must be positive"},
        {"{\"mean\": [0.2, 0.2]}", "mean must be a list of 3"},
        {"{\"crop_mode\": \"squash\"}", "crop_mode 'squash'"},
        {"{\"pretrained_cfg\": 3}", "not an object"},
        {"[1, 2]", "not a JSON object"},
        {"{\"input_size\": [3, 224, 22", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hs_status st = hs_pretrained_cfg_parse(bad[i].text, strlen(bad[i].text), "c", &cfg, &err);
        CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, bad[i].message), "%s: %s",
                  bad[i].text, err.message);
    }
    /* More values than a config can need are refused before cJSON builds them. */
    size_t n = 300000;
    char *many = malloc(n * 2 + 16), *p = many;
    p += sprintf(p, "{\"x\": [1");
    for (size_t i = 1; i < n; i++, p += 2) memcpy(p, ",1", 2);
    strcpy(p, "]}");
    CHECK(hs_pretrained_cfg_parse(many, strlen(many), "c", &cfg, &err) == HS_ERR_FORMAT &&
          strstr(err.message, "more JSON values"));
    free(many);
}

/* Precedence: --img-size beats config.json beats the built-in; config.json counts only
 * beside a hub file name. */
static void test_resolve(void) {
    const hs_backbone_info *lite0 = hs_backbone_find("efficientnet_lite0");
    hs_preprocess pp;
    hs_error err = {0};
    char note[1024];
    test_make_dir(TMP "/hub");
    write_text(TMP "/hub/config.json",
               "{\"pretrained_cfg\": {\"input_size\": [3, 240, 240], \"crop_pct\": 0.95, "
               "\"interpolation\": \"bicubic\", \"mean\": [0.5, 0.4, 0.3], \"std\": [0.2, 0.25, "
               "0.3]}}");
    write_text(TMP "/hub/model.safetensors", "not read here");
    write_text(TMP "/hub/efficientnet-lite0-57934424.pth", "not read here");

    CHECK(hs_preprocess_resolve(lite0, NULL, NULL, 0, &pp, note, sizeof note, &err) == HS_OK);
    CHECK(memcmp(&pp, &lite0->preprocess, sizeof pp) == 0 && note[0] == '\0');

    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/model.safetensors", NULL, 0, &pp, note, sizeof note,
                                &err) == HS_OK);
    /* timm's scale_size: floor(240 / 0.95) = 252 */
    CHECK_MSG(pp.input_size == 240 && pp.resize_size == 252, "%d %d", pp.input_size,
              pp.resize_size);
    CHECK(pp.mean[0] == 0.5f && pp.mean[2] == 0.3f && pp.std[1] == 0.25f);
    CHECK(pp.interpolation == HS_INTERP_BICUBIC && lite0->preprocess.interpolation ==
                                                       HS_INTERP_BILINEAR);
    CHECK_MSG(strstr(note, "hub/config.json") && strstr(note, "bicubic"), "%s", note);

    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/model.safetensors", NULL, 96, &pp, note, sizeof note,
                                &err) == HS_OK);
    CHECK_MSG(pp.input_size == 96 && pp.resize_size == 101 && pp.mean[0] == 0.5f, "%d %d",
              pp.input_size, pp.resize_size); /* 96 * 252 / 240 = 100.8 */

    /* The same folder, a torchvision file name: config.json is not this file's. */
    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/efficientnet-lite0-57934424.pth", NULL, 0, &pp, note,
                                sizeof note, &err) == HS_OK);
    CHECK(memcmp(&pp, &lite0->preprocess, sizeof pp) == 0);

    /* input_size alone keeps the built-in crop ratio (224 / 256): floor(288 / 0.875) = 329. */
    write_text(TMP "/hub/config.json", "{\"input_size\": [3, 288, 288]}");
    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/model.safetensors", NULL, 0, &pp, note, sizeof note,
                                &err) == HS_OK);
    CHECK_MSG(pp.input_size == 288 && pp.resize_size == 329 &&
                  pp.mean[0] == lite0->preprocess.mean[0], "%d %d", pp.input_size,
              pp.resize_size);
    write_text(TMP "/hub/config.json", "{\"input_size\": [3, 288, 200]}");
    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/model.safetensors", NULL, 0, &pp, note, sizeof note,
                                &err) == HS_ERR_FORMAT);
    CHECK(hs_preprocess_resolve(lite0, NULL, NULL, 8, &pp, note, sizeof note, &err) ==
          HS_ERR_ARGUMENT);
    /* an interpolation headstart cannot do exactly is refused, not swapped for another */
    write_text(TMP "/hub/config.json", "{\"interpolation\": \"lanczos\"}");
    CHECK(hs_preprocess_resolve(lite0, TMP "/hub/model.safetensors", NULL, 0, &pp, note,
                                sizeof note, &err) == HS_ERR_FORMAT &&
          strstr(err.message, "lanczos"));
}

/* The file used decides the preprocessing: ResNet-50's V2 file resizes to 232 (by its name,
 * or by its SHA-256 when renamed), EfficientNet-B0's torchvision 0.14 file is bicubic, and
 * every backbone's default row is its built-in preprocessing. */
static void test_weight_versions(void) {
    const hs_backbone_info *r50 = hs_backbone_find("resnet50");
    hs_preprocess pp;
    hs_error err = {0};
    char note[1024];
    CHECK(hs_preprocess_resolve(r50, "/x/resnet50-11ad3fa6.pth", NULL, 0, &pp, note,
                                sizeof note, &err) == HS_OK);
    CHECK_MSG(pp.resize_size == 232 && pp.input_size == 224 &&
                  pp.interpolation == HS_INTERP_BILINEAR && strstr(note, "IMAGENET1K_V2"),
              "%d %s", pp.resize_size, note);
    CHECK(hs_preprocess_resolve(r50, "/x/resnet50-0676ba61.pth", NULL, 0, &pp, note,
                                sizeof note, &err) == HS_OK);
    CHECK(pp.resize_size == 256 && note[0] == '\0');
    CHECK(hs_preprocess_resolve(r50, "/x/mine.pth", "11ad3fa6" "0123456789abcdef", 0, &pp, note,
                                sizeof note, &err) == HS_OK);
    CHECK(pp.resize_size == 232);
    CHECK(hs_preprocess_resolve(r50, "/x/mine.pth", "deadbeef", 0, &pp, note, sizeof note,
                                &err) == HS_OK);
    CHECK(pp.resize_size == 256);
    /* another net's prefix does not count */
    CHECK(hs_weights_version_of(hs_backbone_find("resnet18"), "/x/resnet50-11ad3fa6.pth",
                                NULL) == NULL);
    const hs_backbone_info *b0 = hs_backbone_find("efficientnet_b0");
    CHECK(hs_preprocess_resolve(b0, "efficientnet_b0_rwightman-3dd342df.pth", NULL, 0, &pp,
                                note, sizeof note, &err) == HS_OK);
    CHECK(pp.interpolation == HS_INTERP_BICUBIC && pp.resize_size == 256);
    const hs_backbone_info *b1 = hs_backbone_find("efficientnet_b1");
    CHECK(hs_preprocess_resolve(b1, "efficientnet_b1-c27df63c.pth", NULL, 0, &pp, note,
                                sizeof note, &err) == HS_OK);
    CHECK(pp.interpolation == HS_INTERP_BILINEAR && pp.resize_size == 255 &&
          pp.input_size == 240);
    for (int i = 0; i < hs_backbone_count(); i++) {
        const hs_backbone_info *info = hs_backbone_at(i);
        const hs_weights_version *v = hs_weights_version_of(info, info->weights_file, NULL);
        CHECK_MSG(v && strcmp(v->sha256, info->weights_sha256) == 0 &&
                      memcmp(&v->preprocess, &info->preprocess, sizeof pp) == 0,
                  "%s: its default file's row differs from its preprocessing", info->name);
    }
    for (int i = 0; i < hs_weights_version_count(); i++) {
        const hs_weights_version *v = hs_weights_version_at(i);
        CHECK_MSG(hs_backbone_find(v->backbone) && strstr(v->file, v->sha256), "%s", v->file);
    }
}

/* hs_find_weights in the hub cache: models--timm--<name>[.tag]/snapshots/<rev>/, the first
 * tag (byte order) that has model.safetensors; vgg16_bn's folder is not vgg16's. */
static void test_hub_cache(void) {
    const hs_backbone_info *vgg = hs_backbone_find("vgg16");
    char path[4096];
    hs_error err = {0};
    setenv("HOME", TMP "/home", 1);
    unsetenv("HEADSTART_WEIGHTS");
    unsetenv("TORCH_HOME");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HF_HOME");
    unsetenv("HF_HUB_CACHE");
    if (hs_find_weights(vgg, path, sizeof path, &err) == HS_OK) {
        printf("SKIP (part of test_timm): vgg16 weights present at %s, so the hub cache is "
               "not reached\n", path);
        return;
    }
    CHECK(strstr(err.message, "vgg16-397923af.pth") != NULL);
    const char *hub = TMP "/home/.cache/huggingface/hub";
    CHECK(system("mkdir -p " TMP "/home/.cache/huggingface/hub/models--timm--vgg16_bn.tv_in1k/"
                 "snapshots/r0 " TMP "/home/.cache/huggingface/hub/models--timm--vgg16.a_in1k/"
                 "snapshots/r1 " TMP "/home/.cache/huggingface/hub/models--timm--vgg16.b_in1k/"
                 "snapshots/r2") == 0);
    char file[4096];
    snprintf(file, sizeof file, "%s/models--timm--vgg16_bn.tv_in1k/snapshots/r0/model.safetensors",
             hub);
    write_text(file, "x");
    CHECK(hs_find_weights(vgg, path, sizeof path, &err) == HS_ERR_NOT_FOUND);
    snprintf(file, sizeof file, "%s/models--timm--vgg16.b_in1k/snapshots/r2/model.safetensors",
             hub);
    write_text(file, "x");
    CHECK_MSG(hs_find_weights(vgg, path, sizeof path, &err) == HS_OK && strcmp(path, file) == 0,
              "%s", path);
    /* HF_HUB_CACHE comes first. */
    CHECK(system("mkdir -p " TMP "/other/models--timm--vgg16/snapshots/r9") == 0);
    write_text(TMP "/other/models--timm--vgg16/snapshots/r9/model.safetensors", "x");
    setenv("HF_HUB_CACHE", TMP "/other", 1);
    CHECK_MSG(hs_find_weights(vgg, path, sizeof path, &err) == HS_OK &&
                  strcmp(path, TMP "/other/models--timm--vgg16/snapshots/r9/model.safetensors") ==
                      0, "%s", path);
    unsetenv("HF_HUB_CACHE");
}

int main(void) {
    CHECK(system("rm -rf '" TMP "'") == 0);
    test_make_dir(TMP);
    test_timm_names();
    test_mismatch_messages();
    test_pretrained_cfg();
    test_resolve();
    test_mobilenet_v3_conv_head();
    test_weight_versions();
    test_hub_cache();
    return check_finish("test_timm");
}
