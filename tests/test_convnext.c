/* ConvNeXt (src/nets/convnext.c) against torchvision, from the narrow, short net of
 * tools/make_convnext_fixtures.py (torchvision's ConvNeXt class, widths 8-12-20-28, depths
 * 1-2-1-1, random weights):
 *
 * - features (after avgpool, classifier.0 and the flatten) and logits from its state dict in
 *   both .pth layouts and as safetensors, in every activation layout the plan runs (the
 *   runtime choice, nChw8c, nChw16c; 12, 20 and 28 channels leave padded channel blocks),
 *   and the plan against the interpreter: 1e-4 relative + 1e-5 absolute;
 * - the same weights under timm's names (timm 1.0.29's ConvNeXt, which the generator asserts
 *   computes the same logits), mapped through each layer's timm_key with layer scale's
 *   `gamma` [C] for `layer_scale` [C, 1, 1]: the same logits;
 * - one training step (PyTorch in float64, stochastic depth off so no draw has to match):
 *   loss and logits 1e-4 relative; every gradient value within 1e-4 relative + 1e-4 x the
 *   RMS of its tensor's gradient on the reference backend, and 1e-3 relative + 1e-3 x RMS on
 *   the fast one (test_engine_fast.c's tolerance: oneDNN accumulates in float32);
 * - the structure: blocks, stochastic depth rates, and the full convnext_tiny's 182 tensors
 *   and 28,589,128 parameters (torchvision's count), with strict loading naming a mismatch. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "convnext_timm.h"
#include "net.h"
#include "net_train.h"
#include "ops.h"
#include "test_util.h"

#define NETS HS_FIXTURES_DIR "/nets"

static const int dims[4] = {8, 12, 20, 28}, depths[4] = {1, 2, 1, 1};
enum { CLASSES = 10, FEATURES = 28 };

static hs_net *narrow(float stochastic_depth) {
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->info = hs_backbone_find("convnext_tiny");
    net->head_begin = -1;
    CHECK_MSG(hs_build_convnext(net, dims, depths, stochastic_depth, CLASSES, &err) == HS_OK,
              "%s", err.message);
    CHECK(hs_net_init_params(net, 0, net->count, 5, &err) == HS_OK);
    return net;
}

static void plan_vs_interpreter(hs_net *net, const float *x, int h, const char *what) {
    hs_error err = {0};
    float fast[2 * CLASSES], ref[2 * CLASSES];
    CHECK(hs_net_run(net, 0, net->count, x, 2, 3, h, h, fast, &err) == HS_OK);
    CHECK(hs_net_run_layers(net, 0, net->count, x, 2, 3, h, h, ref, &err) == HS_OK);
    CHECK_CLOSE(what, fast, ref, 2 * CLASSES, 1e-4f, 1e-5f);
}

static void test_outputs(const char *file) {
    char path[512];
    snprintf(path, sizeof path, NETS "/%s", file);
    hs_net *net = narrow(0.1f);
    hs_error err = {0};
    CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s: %s", path, err.message);
    CHECK(hs_net_feature_dim(net) == FEATURES);
    hs_state_dict expected;
    test_load_fixture(NETS "/convnext_narrow_expected.safetensors", &expected);
    const hs_sd_entry *features = test_entry(&expected, "features");
    CHECK(features->shape[0] == 2 && features->shape[1] == FEATURES);
    float *x = test_deterministic_input(2L * 3 * 64 * 64);
    static const int layouts[] = {0, HS_LAYOUT_NCHW8C, HS_LAYOUT_NCHW16C};
    for (int i = 0; i < 3; i++) {
        char what[160];
        float feat[2 * FEATURES], logits[2 * CLASSES];
        net->blocked_layout = layouts[i];
        int block = layouts[i] ? hs_layout_block((hs_layout)layouts[i]) : 0;
        snprintf(what, sizeof what, "%s, block %d: features", file, block);
        CHECK(hs_net_features(net, x, 2, 64, 64, feat, &err) == HS_OK);
        CHECK_CLOSE(what, feat, features->data, 2 * FEATURES, 1e-4f, 1e-5f);
        snprintf(what, sizeof what, "%s, block %d: logits", file, block);
        CHECK(hs_net_head(net, feat, 2, logits, &err) == HS_OK);
        CHECK_CLOSE(what, logits, test_entry(&expected, "logits")->data, 2 * CLASSES, 1e-4f,
                    1e-5f);
        snprintf(what, sizeof what, "%s, block %d: plan vs interpreter", file, block);
        plan_vs_interpreter(net, x, 64, what);
    }
    free(x);
    hs_sd_free(&expected);
    hs_net_free(net);
}

/* The same weights under timm's names (tests/convnext_timm.h does the mapping). */
static void test_timm_names(void) {
    hs_state_dict timm, mapped, expected;
    test_load_fixture(NETS "/convnext_narrow_timm.safetensors", &timm);
    test_load_fixture(NETS "/convnext_narrow_expected.safetensors", &expected);
    hs_sd_init(&mapped);
    hs_net *net = narrow(0.1f);
    hs_error err = {0};
    test_convnext_from_timm(net, &timm, &mapped);
    CHECK_MSG(hs_net_load_state_dict(net, &mapped, "timm", &err) == HS_OK, "%s", err.message);
    float *x = test_deterministic_input(2L * 3 * 64 * 64);
    float logits[2 * CLASSES];
    CHECK(hs_net_forward(net, x, 2, 64, 64, logits, &err) == HS_OK);
    CHECK_CLOSE("timm names: logits", logits, test_entry(&expected, "logits")->data,
                2 * CLASSES, 1e-4f, 1e-5f);
    free(x);
    hs_sd_free(&timm);
    hs_sd_free(&mapped);
    hs_sd_free(&expected);
    hs_net_free(net);
}

/* Gradient of one tensor: every value within rtol + atol_rms x the RMS of PyTorch's. */
static double check_grad(const char *what, const float *g, const float *want, int64_t numel,
                         float rtol, float atol_rms) {
    double sq = 0, worst = 0;
    for (int64_t j = 0; j < numel; j++) sq += (double)want[j] * want[j];
    float rms = (float)sqrt(sq / (double)numel);
    CHECK_MSG(rms > 0, "%s: PyTorch's gradient is zero", what);
    CHECK_CLOSE(what, g, want, numel, rtol, atol_rms * rms);
    for (int64_t j = 0; j < numel; j++) {
        double e = fabs((double)g[j] - want[j]) / (rms + fabs((double)want[j]));
        if (e > worst) worst = e;
    }
    return worst;
}

static void train_step(hs_backend backend, float rtol, float atol_rms) {
    const char *name = backend == HS_BACKEND_REFERENCE ? "reference" : "fast";
    hs_state_dict expected;
    test_load_fixture(NETS "/convnext_narrow_train_step.safetensors", &expected);
    hs_net *net = narrow(0.0f);
    hs_error err = {0};
    CHECK(hs_net_load_weights(net, NETS "/convnext_narrow.safetensors", &err) == HS_OK);
    hs_context ctx;
    hs_context_init(&ctx);
    ctx.backend = backend;
    net->ctx = &ctx;

    enum { N = 2, H = 32 };
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, N, 3, H, H, 0, &err) == HS_OK);
    float *x = test_deterministic_input((long)N * 3 * H * H);
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    CHECK_MSG(hs_tape_forward(&t, x, N, 1, &rng, &err) == HS_OK, "%s", err.message);
    int labels[N] = {3, 7};
    float loss = hs_softmax_cross_entropy_ref(hs_tape_output(&t), N, CLASSES, labels,
                                              hs_tape_output_grad(&t));
    char what[300];
    snprintf(what, sizeof what, "step (%s): loss", name);
    CHECK_CLOSE(what, &loss, test_entry(&expected, "loss")->data, 1, 1e-4f, 0);
    snprintf(what, sizeof what, "step (%s): logits", name);
    CHECK_CLOSE(what, hs_tape_output(&t), test_entry(&expected, "logits")->data, N * CLASSES,
                1e-4f, 1e-5f);
    hs_net_zero_grad(net);
    CHECK_MSG(hs_tape_backward(&t, &err) == HS_OK, "%s", err.message);

    hs_param_ref *refs = NULL;
    int count = 0, checked = 0;
    double worst = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        char key[200];
        snprintf(key, sizeof key, "grad.%s", refs[i].key);
        const hs_sd_entry *e = test_entry(&expected, key);
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        CHECK_MSG(numel == hs_param_numel(&refs[i]), "%s: %lld values in the fixture", key,
                  (long long)numel);
        if (numel != hs_param_numel(&refs[i])) continue;
        snprintf(what, sizeof what, "step (%s): %s", name, key);
        double w = check_grad(what, *refs[i].grad, e->data, hs_param_numel(&refs[i]), rtol,
                              atol_rms);
        if (w > worst) worst = w;
        checked++;
    }
    CHECK((size_t)checked + 2 == expected.count); /* every gradient PyTorch wrote */
    printf("ConvNeXt step (%s backend): loss %.6f (PyTorch %.6f), %d gradients, worst error "
           "%.2e of rms + |value|\n", name, loss, test_entry(&expected, "loss")->data[0],
           checked, worst);
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

static void test_structure(void) {
    hs_net *net = narrow(0.1f);
    /* stem, 5 blocks, 3 downsamplings, the classifier's Linear */
    CHECK(net->block_count == 1 + 5 + 3 + 1);
    CHECK(net->layers[0].block == 0 && strcmp(net->layers[0].timm_name, "stem.0") == 0);
    CHECK(net->layers[net->feature_end].kind == HS_LAYER_LINEAR);
    CHECK(strcmp(net->layers[net->feature_end - 2].name, "classifier.0") == 0);
    /* torchvision: p * index / (blocks - 1) over the 5 blocks */
    float rates[8];
    int found = 0;
    for (int i = 0; i < net->count; i++)
        if (net->layers[i].kind == HS_LAYER_DROP_CONNECT && found < 8)
            rates[found++] = net->layers[i].dropout_p;
    static const float want[5] = {0.0f, 0.025f, 0.05f, 0.075f, 0.1f};
    CHECK(found == 5);
    CHECK_CLOSE("stochastic depth rates", rates, want, 5, 1e-6f, 0);
    hs_net_free(net);

    /* The full convnext_tiny: torchvision's tensor and parameter counts. */
    hs_error err = {0};
    CHECK(hs_net_create("convnext_tiny", 1, &net, &err) == HS_OK);
    hs_param_ref *refs = NULL;
    int count = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    int64_t params = 0;
    for (int i = 0; i < count; i++) params += hs_param_numel(&refs[i]);
    CHECK_MSG(count == 182 && params == 28589128, "%d tensors, %lld parameters", count,
              (long long)params);
    CHECK(net->param_floats == params); /* no buffers: LayerNorm keeps no statistics */
    CHECK(hs_net_feature_dim(net) == 768);
    free(refs);
    /* The narrow file does not fit: its missing blocks are named first (strict loading). */
    CHECK(hs_net_load_weights(net, NETS "/convnext_narrow_zip.pth", &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "does not fit convnext_tiny") != NULL &&
                  strstr(err.message, "missing features.1.1.block.0.weight") != NULL, "%s",
              err.message);
    hs_net_free(net);
}

int main(void) {
    test_structure();
    test_outputs("convnext_narrow_zip.pth");
    test_outputs("convnext_narrow_legacy.pth");
    test_outputs("convnext_narrow.safetensors");
    test_timm_names();
    train_step(HS_BACKEND_REFERENCE, 1e-4f, 1e-4f);
    train_step(HS_BACKEND_CPU, 1e-3f, 1e-3f);
    return check_finish("test_convnext");
}
