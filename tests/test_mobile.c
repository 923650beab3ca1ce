/* torchvision's MobileNetV2, MobileNetV3 and EfficientNet (nets/mobilenet.c,
 * nets/efficientnet.c) against PyTorch, from tools/make_mobile_fixtures.py:
 *
 * - Narrow versions (torchvision's own classes with a width multiplier and a short block list,
 *   random weights, randomised BatchNorm statistics), loaded from both .pth layouts and
 *   safetensors: features and logits within 1e-4 relative + 1e-5 absolute, on the runtime
 *   layout and with both blocked layouts forced (every new kind runs on nChw8c and nChw16c).
 * - The inference plan against the interpreter (hs_net_run vs hs_net_run_layers) on the
 *   narrow MobileNetV3 (ReLU, hard swish, hard sigmoid, channel scale) and EfficientNet (SiLU,
 *   sigmoid, channel scale, drop connect), both blocked layouts: 1e-4 relative + 1e-5
 *   absolute.
 * - The full-size nets' tensors: every torchvision key, its shape and its timm key in state-
 *   dict order (<net>_keys.txt, from torchvision 0.14 and timm 1.0.29), the feature size of
 *   the backbone table and the blocks --unfreeze counts.
 * - One training step of each narrow net (train mode, batch-statistics BatchNorm, dropout and
 *   stochastic depth off) against PyTorch's float64 step: on the reference backend the loss,
 *   the logits and the running statistics within 1e-4 relative, every gradient value within
 *   1e-4 relative + 1e-4 x scale (scale: the RMS of its tensor's gradient or, if larger, of
 *   its layer's weight gradient: a BatchNorm bias before a training-mode BatchNorm has an
 *   exact gradient of zero, see test_engine.c); on the fast backend (oneDNN convolution and
 *   BatchNorm passes) test_engine_fast's tolerances: "exact", 1e-3 relative + 1e-3 x scale,
 *   for its backward alone (from the reference forward's tape) and for the whole step of
 *   MobileNetV3 and EfficientNet; direction and norm for MobileNetV2's whole step (see
 *   main). */
#include <string.h>

#include "check.h"
#include "net.h"
#include "net_train.h"
#include "nets/mobile.h"
#include "ops.h"
#include "test_util.h"

#define MOBILE HS_FIXTURES_DIR "/mobile"
#define CLASSES 10

/* tools/make_mobile_fixtures.py's narrow configurations. */
static const int v2_setting[3][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 2, 2}};
static const hs_mbv3_block v3_blocks[] = {
    {16, 3, 16, 16, 1, 0, 2}, {16, 3, 64, 24, 0, 0, 2}, {24, 3, 72, 24, 0, 1, 1},
    {24, 5, 96, 40, 1, 1, 2}, {40, 5, 120, 40, 1, 1, 1},
};
static const int eff_setting[3][6] = {{1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2},
                                      {6, 5, 2, 24, 40, 1}};

typedef enum { NARROW_V2, NARROW_V3, NARROW_EFF } narrow_kind;
static const char *const stems[] = {"mobilenet_v2_narrow", "mobilenet_v3_narrow",
                                    "efficientnet_narrow"};
static const char *const families[] = {"mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"};

static hs_net *narrow_net(narrow_kind kind) {
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->info = hs_backbone_find(families[kind]);
    net->head_begin = -1;
    hs_status st;
    if (kind == NARROW_V2) {
        hs_mbv2_config cfg = {0.25, v2_setting, 3, CLASSES, 0.2f};
        st = hs_build_mobilenet_v2_ex(net, &cfg, &err);
    } else if (kind == NARROW_V3) {
        hs_mbv3_config cfg = {v3_blocks, 5, 0.5, 64, CLASSES, 0.2f, NULL};
        st = hs_build_mobilenet_v3_ex(net, &cfg, &err);
    } else {
        hs_effnet_config cfg = {0.25, 1.5, eff_setting, 3, 0.2f, 0.2f, CLASSES};
        st = hs_build_efficientnet_b_ex(net, &cfg, &err);
    }
    CHECK_MSG(st == HS_OK, "%s", err.message);
    CHECK(hs_net_init_params(net, 0, net->count, 5, &err) == HS_OK);
    return net;
}

static void test_narrow_outputs(narrow_kind kind) {
    static const char *const files[] = {"_zip.pth", "_legacy.pth", ".safetensors"};
    char path[512], what[160];
    snprintf(path, sizeof path, MOBILE "/%s_expected.safetensors", stems[kind]);
    hs_state_dict expected;
    test_load_fixture(path, &expected);
    const hs_sd_entry *features = test_entry(&expected, "features");
    const hs_sd_entry *logits = test_entry(&expected, "logits");
    int dim = (int)features->shape[1];
    float *x = test_deterministic_input(2L * 3 * 64 * 64);
    float *feat = test_alloc_floats(2L * dim), out[2 * CLASSES];
    for (int f = 0; f < 3; f++) {
        hs_net *net = narrow_net(kind);
        hs_error err = {0};
        snprintf(path, sizeof path, MOBILE "/%s%s", stems[kind], files[f]);
        CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s: %s", path, err.message);
        int c, h, w;
        CHECK(hs_net_shape(net, 0, net->feature_end, 3, 64, 64, &c, &h, &w, &err) == HS_OK);
        CHECK(c * h * w == dim);
        /* The runtime layout for every file; both block sizes forced for one. */
        static const int layouts[] = {0, HS_LAYOUT_NCHW8C, HS_LAYOUT_NCHW16C};
        for (int i = 0; i < (f == 0 ? 3 : 1); i++) {
            net->blocked_layout = layouts[i];
            snprintf(what, sizeof what, "%s%s, block %d: features", stems[kind], files[f],
                     layouts[i] ? hs_layout_block((hs_layout)layouts[i]) : 0);
            CHECK_MSG(hs_net_features(net, x, 2, 64, 64, feat, &err) == HS_OK, "%s",
                      err.message);
            CHECK_CLOSE(what, feat, features->data, 2L * dim, 1e-4f, 1e-5f);
            CHECK(hs_net_head(net, feat, 2, out, &err) == HS_OK);
            snprintf(what, sizeof what, "%s%s, block %d: logits", stems[kind], files[f],
                     layouts[i] ? hs_layout_block((hs_layout)layouts[i]) : 0);
            CHECK_CLOSE(what, out, logits->data, 2 * CLASSES, 1e-4f, 1e-5f);
        }
        hs_net_free(net);
    }
    free(x);
    free(feat);
    hs_sd_free(&expected);
}

/* The plan (folded BatchNorm, fused activations, blocked layout, kept edges) against every
 * layer's own forward in NCHW. */
static void test_plan_vs_interpreter(narrow_kind kind) {
    hs_net *net = narrow_net(kind);
    hs_error err = {0};
    char path[512], what[160];
    snprintf(path, sizeof path, MOBILE "/%s_zip.pth", stems[kind]);
    CHECK(hs_net_load_weights(net, path, &err) == HS_OK);
    int n = 3, size = 48;
    float *x = test_deterministic_input((long)n * 3 * size * size);
    float plan[3 * CLASSES], interp[3 * CLASSES];
    CHECK(hs_net_run_layers(net, 0, net->count, x, n, 3, size, size, interp, &err) == HS_OK);
    for (int b = 0; b < 2; b++) {
        net->blocked_layout = b ? HS_LAYOUT_NCHW16C : HS_LAYOUT_NCHW8C;
        CHECK_MSG(hs_net_run(net, 0, net->count, x, n, 3, size, size, plan, &err) == HS_OK, "%s",
                  err.message);
        snprintf(what, sizeof what, "%s: plan (block %d) vs interpreter", stems[kind],
                 b ? 16 : 8);
        CHECK_CLOSE(what, plan, interp, n * CLASSES, 1e-4f, 1e-5f);
    }
    free(x);
    hs_net_free(net);
}

/* Every tensor of the full-size net, in order, against torchvision's and timm's lists. */
static void test_keys(const char *name) {
    char path[512];
    snprintf(path, sizeof path, MOBILE "/%s_keys.txt", name);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    hs_net *net = NULL;
    hs_error err = {0};
    CHECK_MSG(hs_net_create(name, 1, &net, &err) == HS_OK, "%s: %s", name, err.message);
    hs_param_ref *refs = NULL;
    int count = 0, line = 0, bad = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    char key[200], timm[200], dims[100];
    while (fscanf(f, "%199s %199s %99s", key, timm, dims) == 3) {
        if (line >= count) {
            line++;
            continue;
        }
        const hs_param_ref *r = &refs[line++];
        char shape[100] = "";
        for (int d = 0; d < r->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), d ? ",%lld" : "%lld",
                     (long long)r->shape[d]);
        if (strcmp(r->key, key) || strcmp(r->timm_key, timm) || strcmp(shape, dims)) {
            if (bad++ < 3)
                fprintf(stderr, "%s tensor %d: %s (timm %s) [%s], want %s (timm %s) [%s]\n",
                        name, line - 1, r->key, r->timm_key, shape, key, timm, dims);
        }
    }
    fclose(f);
    CHECK_MSG(bad == 0 && line == count, "%s: %d of %d tensors differ, %d listed", name, bad,
              count, line);
    const hs_backbone_info *info = hs_net_backbone(net);
    CHECK_MSG(hs_net_feature_dim(net) == info->feature_dim, "%s: %d features, table says %d",
              name, hs_net_feature_dim(net), info->feature_dim);
    printf("%s: %d tensors as torchvision and timm name them, %d features, %d blocks\n", name,
           count, hs_net_feature_dim(net), net->block_count);
    free(refs);
    hs_net_free(net);
}

/* ---- one training step against PyTorch --------------------------------------------------- */

/* How a step's gradients are compared: every value within rtol + rtol x scale, or (exact 0)
 * each weight tensor's direction (cosine >= 0.995) and norm (within 5 %), as
 * test_engine_fast checks Lite0. */
typedef struct step_check {
    hs_backend forward, backward;
    float rtol;
    int exact;
} step_check;

static const char *backend_name(hs_backend b) {
    return b == HS_BACKEND_REFERENCE ? "reference" : "fast";
}

static void check_step(narrow_kind kind, step_check sc) {
    char path[512], key[240], what[64];
    snprintf(what, sizeof what, "%s forward, %s backward", backend_name(sc.forward),
             backend_name(sc.backward));
    snprintf(path, sizeof path, MOBILE "/%s_train_step.safetensors", stems[kind]);
    hs_state_dict expected;
    test_load_fixture(path, &expected);
    hs_net *net = narrow_net(kind);
    hs_error err = {0};
    snprintf(path, sizeof path, MOBILE "/%s_zip.pth", stems[kind]);
    CHECK(hs_net_load_weights(net, path, &err) == HS_OK);
    for (int i = 0; i < net->count; i++)
        if (net->layers[i].kind == HS_LAYER_DROPOUT || net->layers[i].kind == HS_LAYER_DROP_CONNECT)
            net->layers[i].dropout_p = 0.0f;
    hs_context ctx;
    hs_context_init(&ctx);
    ctx.backend = sc.forward;
    net->ctx = &ctx;

    enum { N = 4, S = 64 };
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, N, 3, S, S, 0, &err) == HS_OK);
    float *x = test_deterministic_input((long)N * 3 * S * S);
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    hs_status st = hs_tape_forward(&t, x, N, 1, &rng, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    int labels[N] = {1, 7, 3, 9};
    float loss = hs_softmax_cross_entropy_ref(hs_tape_output(&t), N, CLASSES, labels,
                                              hs_tape_output_grad(&t));
    snprintf(key, sizeof key, "%s step (%s): loss", stems[kind], what);
    CHECK_CLOSE(key, &loss, test_entry(&expected, "loss")->data, 1, sc.rtol, 0);
    snprintf(key, sizeof key, "%s step (%s): logits", stems[kind], what);
    CHECK_CLOSE(key, hs_tape_output(&t), test_entry(&expected, "logits")->data, N * CLASSES,
                sc.rtol, 1e-5f);
    ctx.backend = sc.backward; /* read by every pass; the tape stays as the forward wrote it */
    hs_net_zero_grad(net);
    st = hs_tape_backward(&t, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);

    hs_param_ref *refs = NULL;
    int count = 0, checked = 0;
    double worst = 0, worst_cos = 1, worst_norm = 0;
    float layer_rms = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        int64_t numel = hs_param_numel(&refs[i]);
        char label[512];
        if (refs[i].buffer) {
            snprintf(key, sizeof key, "after.%s", refs[i].key);
            snprintf(label, sizeof label, "%s step (%s): %s", stems[kind], what, key);
            CHECK_CLOSE(label, *refs[i].data, test_entry(&expected, key)->data, numel, sc.rtol,
                        1e-5f);
            checked++;
            continue;
        }
        snprintf(key, sizeof key, "grad.%s", refs[i].key);
        snprintf(label, sizeof label, "%s step (%s): %s", stems[kind], what, key);
        const float *want = test_entry(&expected, key)->data, *g = *refs[i].grad;
        double sq = 0, gsq = 0, dot = 0;
        for (int64_t j = 0; j < numel; j++) {
            sq += (double)want[j] * want[j];
            gsq += (double)g[j] * g[j];
            dot += (double)g[j] * want[j];
        }
        float rms = (float)sqrt(sq / (double)numel);
        if (strcmp(strrchr(refs[i].key, '.'), ".weight") == 0) layer_rms = rms;
        float scale = rms > layer_rms ? rms : layer_rms;
        CHECK(scale > 0);
        if (sc.exact) {
            CHECK_CLOSE(label, g, want, numel, sc.rtol, sc.rtol * scale);
        } else if (rms == layer_rms) { /* weights, and biases of their layer's size */
            double cosine = dot / (sqrt(sq * gsq) + 1e-30);
            double norm_err = fabs(sqrt(gsq) - sqrt(sq)) / sqrt(sq);
            CHECK_MSG(cosine >= 0.995 && norm_err <= 0.05, "%s: cosine %.5f, norm error %.2e",
                      label, cosine, norm_err);
            if (cosine < worst_cos) worst_cos = cosine;
            if (norm_err > worst_norm) worst_norm = norm_err;
        }
        for (int64_t j = 0; j < numel; j++) {
            double e = fabs((double)g[j] - want[j]) / (scale + fabs((double)want[j]));
            if (e > worst) worst = e;
        }
        checked++;
    }
    CHECK((int)expected.count == 2 + checked); /* every tensor of the fixture was compared */
    printf("%s step (%s): loss %.6f (PyTorch %.6f), %d tensors, worst gradient error %.2e "
           "of scale + |value|", stems[kind], what, loss,
           test_entry(&expected, "loss")->data[0], checked, worst);
    if (!sc.exact) printf(", worst cosine %.6f, worst norm error %.2e", worst_cos, worst_norm);
    printf("\n");
    free(refs);
    free(x);
    hs_tape_free(&t);
    hs_net_release_train_plans(net);
    hs_net_release_fast(net);
    net->ctx = NULL;
    hs_context_release(&ctx);
    hs_net_free(net);
    hs_sd_free(&expected);
}

int main(void) {
    for (int k = NARROW_V2; k <= NARROW_EFF; k++) test_narrow_outputs((narrow_kind)k);
    test_plan_vs_interpreter(NARROW_V3);
    test_plan_vs_interpreter(NARROW_EFF);
    static const char *const full[] = {"mobilenet_v2",    "mobilenet_v3_small",
                                       "mobilenet_v3_large", "efficientnet_b0",
                                       "efficientnet_b1", "efficientnet_b2",
                                       "efficientnet_b3"};
    for (int i = 0; i < 7; i++) test_keys(full[i]);
    const hs_backend ref = HS_BACKEND_REFERENCE, fast = HS_BACKEND_CPU;
    for (int k = NARROW_V2; k <= NARROW_EFF; k++) {
        check_step((narrow_kind)k, (step_check){ref, ref, 1e-4f, 1});
        /* The fast backward on its own: from the reference forward's tape. */
        check_step((narrow_kind)k, (step_check){ref, fast, 1e-3f, 1});
        /* The whole fast step. MobileNetV2's forward flips one ReLU6 mask (a pre-activation
         * within 1e-5 of 0 in its 1280-channel head) and training-mode BatchNorm spreads the
         * flip over deep gradients (seen: 18 % of scale), as Lite0's in test_engine_fast. */
        check_step((narrow_kind)k, (step_check){fast, fast, 1e-3f, k != NARROW_V2});
    }
    return check_finish("test_mobile");
}
