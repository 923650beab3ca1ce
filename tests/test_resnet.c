/* torchvision's ResNet-18/34/50/101 and VGG16-BN against PyTorch: the layouts (parameter
 * counts torchvision publishes, blocks), tiny versions of each (every width / 32, random
 * weights and BatchNorm statistics) from state dicts PyTorch saved in both .pth layouts and
 * as safetensors, a state dict timm saved, load errors, and one training step of the tiny
 * ResNets (BasicBlock and Bottleneck, projection shortcuts, BatchNorm in training mode) on
 * both backends. Fixtures: tools/make_resnet_fixtures.py.
 *
 * Tolerances. Features and logits: 1e-4 relative + 1e-5 absolute (the plan folds BatchNorm
 * into the convolutions, PyTorch does not). Training step: loss 1e-4 relative; logits 1e-4
 * relative + 1e-5 absolute; running statistics after the step 1e-4 relative + 1e-5
 * absolute; every value of every parameter gradient within 1e-4 relative + 1e-4 x scale on
 * the reference backend, where scale is the RMS of PyTorch's gradient of the tensor or, if
 * larger, of its layer's weight (an entry can be near zero where its neighbours are not).
 * The fast backend (oneDNN) is held to test_engine_fast's "exact": 1e-3 relative + 1e-3 x
 * scale. PyTorch computed the step in float64 from the same float32 weights. */
#include <string.h>

#include "check.h"
#include "finetune.h"
#include "net.h"
#include "net_train.h"
#include "ops.h"
#include "test_util.h"

#define NETS HS_FIXTURES_DIR "/nets"
#define TINY_DIVISOR 32
#define TINY_CLASSES 10

/* A tiny net as tools/make_resnet_fixtures.py makes it: depth 18, 50 or 0 for VGG16-BN.
 * `backbone` only names it (the message of a failed load). */
static hs_net *tiny_net(int depth, const char *backbone) {
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->info = hs_backbone_find(backbone);
    CHECK(net->info != NULL);
    net->head_begin = -1;
    hs_status st = depth ? hs_build_resnet(net, depth, TINY_DIVISOR, TINY_CLASSES, &err)
                         : hs_build_vgg16_ex(net, TINY_DIVISOR, 32, TINY_CLASSES, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    CHECK(hs_net_init_params(net, 0, net->count, 5, &err) == HS_OK);
    return net;
}

/* ---- the full-size layouts ------------------------------------------------------------ */

/* Parameter counts from torchvision's weight metadata ("num_params"), feature sizes, and the
 * blocks --unfreeze counts: the stem, each residual block (VGG: each convolution, and the
 * classifier's two lower linear layers when only the last one is the head). */
static void test_layouts(void) {
    static const struct {
        const char *name;
        int64_t params;
        int features, blocks;
        const char *top_block;  /* the first layer of --unfreeze 1 */
        const char *auto_block; /* of --unfreeze auto: the first block at 1/16 resolution */
    } nets[] = {
        {"resnet18", 11689512, 512, 9, "layer4.1.conv1", "layer3.0.conv1"},
        {"resnet34", 21797672, 512, 17, "layer4.2.conv1", "layer3.0.conv1"},
        {"resnet50", 25557032, 2048, 17, "layer4.2.conv1", "layer3.0.conv1"},
        {"resnet101", 44549160, 2048, 34, "layer4.2.conv1", "layer3.0.conv1"},
        {"vgg16_bn", 138365992, 25088, 15, "classifier.3", "features.34"},
    };
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        hs_error err = {0};
        hs_net *net = NULL;
        CHECK_MSG(hs_net_create(nets[i].name, 1, &net, &err) == HS_OK, "%s", err.message);
        if (!net) continue;
        hs_param_ref *refs = NULL;
        int count = 0;
        int64_t params = 0;
        CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
        for (int k = 0; k < count; k++)
            if (!refs[k].buffer) params += hs_param_numel(&refs[k]);
        free(refs);
        CHECK_MSG(params == nets[i].params, "%s: %lld parameters, torchvision has %lld",
                  nets[i].name, (long long)params, (long long)nets[i].params);
        CHECK_MSG(hs_net_feature_dim(net) == nets[i].features &&
                      hs_backbone_find(nets[i].name)->feature_dim == nets[i].features,
                  "%s: %d features", nets[i].name, hs_net_feature_dim(net));
        CHECK(hs_net_num_classes(net) == 1000);

        CHECK(hs_net_replace_head(net, 3, HS_HEAD_LAST_LAYER, 2, &err) == HS_OK);
        int starts[64], boundary = -1;
        int blocks = hs_backbone_blocks(net, starts, 64);
        CHECK(hs_unfreeze_boundary(net, "1", &boundary, &err) == HS_OK);
        CHECK_MSG(blocks == nets[i].blocks && boundary >= 0 &&
                      strcmp(net->layers[boundary].name, nets[i].top_block) == 0,
                  "%s: %d blocks, --unfreeze 1 from %s", nets[i].name, blocks,
                  boundary >= 0 ? net->layers[boundary].name : "?");
        boundary = -1;
        CHECK(hs_unfreeze_boundary(net, "auto", &boundary, &err) == HS_OK);
        CHECK_MSG(boundary >= 0 && strcmp(net->layers[boundary].name, nets[i].auto_block) == 0,
                  "%s: --unfreeze auto from %s", nets[i].name,
                  boundary >= 0 ? net->layers[boundary].name : "?");
        printf("%s: %lld parameters, %d features, %d blocks\n", nets[i].name,
               (long long)params, hs_net_feature_dim(net), blocks);
        hs_net_free(net);
    }
}

/* ---- tiny nets against PyTorch ----------------------------------------------------------- */

/* Features and logits of `net` for both fixture inputs; interpreter: the layers' own
 * forwards (hs_net_run_layers) instead of the inference plan. */
static void compare_outputs(hs_net *net, const char *what, const char *expected_path,
                            int interpreter) {
    hs_state_dict expected;
    test_load_fixture(expected_path, &expected);
    static const struct {
        const char *prefix;
        int h, w;
    } inputs[] = {{"", 64, 64}, {"odd.", 45, 53}};
    for (int i = 0; i < 2; i++) {
        char key[64], label[256];
        snprintf(key, sizeof key, "%sfeatures", inputs[i].prefix);
        const hs_sd_entry *feats = test_entry(&expected, key);
        snprintf(key, sizeof key, "%slogits", inputs[i].prefix);
        const hs_sd_entry *logits = test_entry(&expected, key);
        int dim = (int)feats->shape[1];
        CHECK(feats->shape[0] == 2 && logits->shape[1] == TINY_CLASSES);
        float *x = test_deterministic_input(2L * 3 * inputs[i].h * inputs[i].w);
        float *f = test_alloc_floats(2L * dim), out[2 * TINY_CLASSES];
        hs_error err = {0};
        hs_status st;
        if (interpreter) {
            st = hs_net_run_layers(net, 0, net->feature_end, x, 2, 3, inputs[i].h,
                                   inputs[i].w, f, &err);
            if (!st)
                st = hs_net_run_layers(net, net->feature_end, net->count, f, 2, dim, 1, 1, out,
                                       &err);
        } else {
            CHECK(hs_net_feature_dim(net) == dim);
            st = hs_net_features(net, x, 2, inputs[i].h, inputs[i].w, f, &err);
            if (!st) st = hs_net_head(net, f, 2, out, &err);
        }
        CHECK_MSG(st == HS_OK, "%s: %s", what, err.message);
        snprintf(label, sizeof label, "%s, %dx%d: features", what, inputs[i].h, inputs[i].w);
        CHECK_CLOSE(label, f, feats->data, 2L * dim, 1e-4f, 1e-5f);
        snprintf(label, sizeof label, "%s, %dx%d: logits", what, inputs[i].h, inputs[i].w);
        CHECK_CLOSE(label, out, logits->data, 2 * TINY_CLASSES, 1e-4f, 1e-5f);
        free(x);
        free(f);
    }
    hs_sd_free(&expected);
}

static void test_tiny(int depth, const char *backbone, const char *stem) {
    static const char *const files[] = {"_zip.pth", "_legacy.pth", ".safetensors"};
    char path[512], expected[512], what[128];
    snprintf(expected, sizeof expected, NETS "/resnet_%s_expected.safetensors", stem);
    for (int i = 0; i < 3; i++) {
        hs_net *net = tiny_net(depth, backbone);
        hs_error err = {0};
        snprintf(path, sizeof path, NETS "/resnet_%s%s", stem, files[i]);
        hs_status st = hs_net_load_weights(net, path, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", path, err.message);
        snprintf(what, sizeof what, "tiny %s from %s", backbone, files[i] + 1);
        compare_outputs(net, what, expected, 0);
        if (i == 0) {
            /* The layers' own forwards, and the plan in both blocked layouts. */
            snprintf(what, sizeof what, "tiny %s, interpreter", backbone);
            compare_outputs(net, what, expected, 1);
            static const int layouts[] = {HS_LAYOUT_NCHW8C, HS_LAYOUT_NCHW16C};
            for (int k = 0; k < 2; k++) {
                net->blocked_layout = layouts[k];
                snprintf(what, sizeof what, "tiny %s, block %d", backbone,
                         hs_layout_block((hs_layout)layouts[k]));
                compare_outputs(net, what, expected, 0);
            }
        }
        hs_net_free(net);
    }
}

/* timm names a ResNet's tensors as torchvision does: timm's own module, saved as timm and
 * model hubs ship it (model.safetensors), loads into the same net. */
static void test_timm_file(void) {
    hs_net *net = tiny_net(18, "resnet18");
    hs_error err = {0};
    hs_status st = hs_net_load_weights(net, NETS "/resnet_timm18.safetensors", &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    compare_outputs(net, "tiny resnet18 from timm", NETS "/resnet_timm18_expected.safetensors",
                    0);
    hs_net_free(net);
}

/* ---- load errors -------------------------------------------------------------------------- */

static void test_load_errors(void) {
    /* A ResNet-50 file for resnet18: the first tensor whose shape differs, both shapes, and
     * the net it was meant for (the file's name does not contain "resnet18"). */
    hs_net *net = tiny_net(18, "resnet18");
    hs_error err = {0};
    CHECK(hs_net_load_weights(net, NETS "/resnet_tiny50_zip.pth", &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "layer1.0.conv1.weight is [2, 2, 1, 1] in the file, "
                                  "[2, 2, 3, 3] here") != NULL, "%s", err.message);
    CHECK_MSG(strstr(err.message, "resnet18") != NULL, "the message does not name the net: %s",
              err.message);
    hs_net_free(net);

    /* The other way: resnet50 lacks the Bottleneck's third convolution. */
    net = tiny_net(50, "resnet50");
    CHECK(hs_net_load_weights(net, NETS "/resnet_tiny18_zip.pth", &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "missing layer1.0.conv3.weight") != NULL, "%s", err.message);
    CHECK_MSG(strstr(err.message, "resnet50") != NULL, "the message does not name the net: %s",
              err.message);
    hs_net_free(net);

    /* Full size, in memory: ResNet-50's state dict for ResNet-18. */
    hs_net *r50 = NULL, *r18 = NULL;
    CHECK(hs_net_create("resnet50", 1, &r50, &err) == HS_OK);
    CHECK(hs_net_create("resnet18", 1, &r18, &err) == HS_OK);
    hs_state_dict sd;
    hs_sd_init(&sd);
    CHECK(hs_net_state_dict(r50, &sd, &err) == HS_OK);
    CHECK(hs_net_load_state_dict(r18, &sd, "resnet50-0676ba61.pth", &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "layer1.0.conv1.weight is [64, 64, 1, 1] in the file, "
                                  "[64, 64, 3, 3] here") != NULL, "%s", err.message);
    hs_sd_free(&sd);
    hs_net_free(r50);
    hs_net_free(r18);
}

/* ---- one training step against PyTorch --------------------------------------------------- */

/* Compares every parameter gradient and running statistic with PyTorch's; returns the worst
 * gradient error in units of (scale + |value|). */
static double compare_step(hs_net *net, const hs_state_dict *expected, const char *what,
                           float grad_rtol) {
    hs_param_ref *refs = NULL;
    int count = 0, grads = 0;
    hs_error err = {0};
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    double worst = 0;
    float layer_rms = 0;
    for (int i = 0; i < count; i++) {
        char key[200], label[512];
        int64_t numel = hs_param_numel(&refs[i]);
        snprintf(key, sizeof key, "%s.%s", refs[i].buffer ? "after" : "grad", refs[i].key);
        const hs_sd_entry *e = test_entry(expected, key);
        int64_t fixture_numel = 1;
        for (int d = 0; d < e->ndim; d++) fixture_numel *= e->shape[d];
        CHECK(fixture_numel == numel);
        snprintf(label, sizeof label, "%s: %s", what, key);
        if (refs[i].buffer) {
            CHECK_CLOSE(label, *refs[i].data, e->data, numel, 1e-4f, 1e-5f);
            continue;
        }
        double sq = 0;
        for (int64_t j = 0; j < numel; j++) sq += (double)e->data[j] * e->data[j];
        float rms = (float)sqrt(sq / (double)numel);
        if (strcmp(strrchr(refs[i].key, '.'), ".weight") == 0) layer_rms = rms;
        float scale = rms > layer_rms ? rms : layer_rms;
        CHECK(scale > 0);
        const float *g = *refs[i].grad;
        CHECK_CLOSE(label, g, e->data, numel, grad_rtol, grad_rtol * scale);
        for (int64_t j = 0; j < numel; j++) {
            double d = fabs((double)g[j] - e->data[j]) / (scale + fabs((double)e->data[j]));
            if (d > worst) worst = d;
        }
        grads++;
    }
    /* every tensor of the fixture was compared: loss, logits, one per parameter/statistic */
    CHECK_MSG((int)expected->count == 2 + count, "%s: %d tensors here, %zu in the fixture",
              what, count, expected->count);
    CHECK(grads > 0);
    free(refs);
    return worst;
}

static void test_train_step(int depth, const char *backbone, const char *stem,
                            hs_backend backend) {
    enum { N = 4, H = 64, W = 64 };
    char path[512], what[128];
    snprintf(what, sizeof what, "tiny %s step, %s backend", backbone,
             backend == HS_BACKEND_REFERENCE ? "reference" : "fast");
    hs_state_dict expected;
    snprintf(path, sizeof path, NETS "/resnet_%s_step.safetensors", stem);
    test_load_fixture(path, &expected);
    hs_net *net = tiny_net(depth, backbone);
    hs_error err = {0};
    snprintf(path, sizeof path, NETS "/resnet_%s_zip.pth", stem);
    CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s", err.message);
    hs_net_set_bn_mode(net, 0, net->count, HS_BN_TRAIN);

    hs_context ctx;
    hs_context_init(&ctx);
    ctx.backend = backend;
    net->ctx = &ctx;
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, N, 3, H, W, 0, &err) == HS_OK);
    float *x = test_deterministic_input((long)N * 3 * H * W);
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = (3 * i + 1) % TINY_CLASSES;
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    hs_status st = hs_tape_forward(&t, x, N, 1, &rng, &err);
    CHECK_MSG(st == HS_OK, "%s: %s", what, err.message);
    float loss = hs_softmax_cross_entropy_ref(hs_tape_output(&t), N, TINY_CLASSES, labels,
                                              hs_tape_output_grad(&t));
    char label[200];
    snprintf(label, sizeof label, "%s: loss", what);
    CHECK_CLOSE(label, &loss, test_entry(&expected, "loss")->data, 1, 1e-4f, 0);
    snprintf(label, sizeof label, "%s: logits", what);
    CHECK_CLOSE(label, hs_tape_output(&t), test_entry(&expected, "logits")->data,
                N * TINY_CLASSES, 1e-4f, 1e-5f);
    hs_net_zero_grad(net);
    st = hs_tape_backward(&t, &err);
    CHECK_MSG(st == HS_OK, "%s: %s", what, err.message);
    double worst = compare_step(net, &expected, what,
                                backend == HS_BACKEND_REFERENCE ? 1e-4f : 1e-3f);
    printf("%s: loss %.6f (PyTorch %.6f), worst gradient error %.2e of scale + |value|\n", what,
           loss, test_entry(&expected, "loss")->data[0], worst);
    free(x);
    hs_tape_free(&t);
    hs_net_free(net); /* its plans before their context */
    hs_context_release(&ctx);
    hs_sd_free(&expected);
}

int main(void) {
    test_layouts();
    test_tiny(18, "resnet18", "tiny18");
    test_tiny(50, "resnet50", "tiny50");
    test_tiny(0, "vgg16_bn", "vgg16bn");
    test_timm_file();
    test_load_errors();
    for (int b = 0; b < 2; b++) {
        hs_backend backend = b ? HS_BACKEND_CPU : HS_BACKEND_REFERENCE;
        test_train_step(18, "resnet18", "tiny18", backend);
        test_train_step(50, "resnet50", "tiny50", backend);
    }
    return check_finish("test_resnet");
}
