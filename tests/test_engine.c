/* The engine: one layer table, the inference plan against the interpreter, training-mode
 * forward + backward against central finite differences, the freeze boundary, BatchNorm's
 * running statistics, the parameter arenas, and one whole EfficientNet-Lite0 training step
 * against efficientnet_lite_pytorch (tools/make_train_step_fixtures.py).
 *
 * Tolerances:
 * - plan vs interpreter: 1e-4 relative + 1e-5 absolute (BatchNorm folded vs applied, oneDNN
 *   vs im2col + sgemm), as tests/test_nets.c for the plan vs PyTorch.
 * - finite differences: central differences of a float32 forward, loss accumulated in
 *   double, at two steps (2e-3 and 1e-3). An entry whose two estimates disagree by more
 *   than the tolerance sits near a kink (ReLU, ReLU6, max pooling ties) and is not judged;
 *   at most 1 in 5 may be. Judged entries: |fd - analytic| <= 2e-3 + 1e-2 |analytic|.
 * - Lite0 step against PyTorch (float64): loss and logits 1e-3 relative; per parameter
 *   tensor its gradient's L2 norm and sum within 1e-3 relative + 1e-3 x scale x sqrt(numel),
 *   32 sampled entries within 1e-3 relative + 1e-3 x scale, where scale is the RMS of the
 *   tensor's gradient or, if larger, of its layer's weight gradient (for biases whose exact
 *   gradient is zero). Seen: worst relative norm error about 1e-5 (printed). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "net.h"
#include "net_train.h"
#include "mixed_net.h"
#include "test_util.h"

#define NETS HS_FIXTURES_DIR "/nets"

/* ---- a small net with every layer kind (tests/mixed_net.h), 4 channels --------------- */
enum { MIX_C = 3, MIX_H = 9, MIX_W = 9, MIX_N = 2 };

static hs_net *mixed_net(void) {
    hs_net *net = test_mixed_net(4, 5, 3, 0.5f);
    /* Non-trivial BatchNorm: the frozen one scales up so that some values pass 6 (ReLU6's
     * upper kink is exercised). */
    for (int c = 0; c < 4; c++) {
        hs_layer *b1 = &net->layers[1], *b4 = &net->layers[4];
        b1->weight[c] = 0.8f + 0.15f * c;
        b1->bias[c] = 0.1f * c - 0.1f;
        b4->weight[c] = 3.0f + c;
        b4->bias[c] = 1.0f + 0.5f * c;
        b4->running_mean[c] = 0.05f * c;
        b4->running_var[c] = 0.5f + 0.3f * c;
    }
    return net;
}

static double weighted_output(const float *y, int64_t count) {
    double sum = 0;
    for (int64_t i = 0; i < count; i++) sum += sin(0.7 * (double)i + 0.3) * y[i];
    return sum;
}

static double loss_at(hs_tape *t, const float *x, uint64_t seed) {
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    hs_error err = {0};
    CHECK(hs_tape_forward(t, x, MIX_N, 1, &rng, &err) == HS_OK);
    return weighted_output(hs_tape_output(t), (int64_t)MIX_N * hs_act_numel(t->shapes[t->last - t->first]));
}

static void forward_backward(hs_tape *t, const float *x, uint64_t seed) {
    loss_at(t, x, seed);
    float *dy = hs_tape_output_grad(t);
    int64_t count = (int64_t)MIX_N * hs_act_numel(t->shapes[t->last - t->first]);
    for (int64_t i = 0; i < count; i++) dy[i] = (float)sin(0.7 * (double)i + 0.3);
    hs_net_zero_grad(t->net);
    hs_error err = {0};
    CHECK(hs_tape_backward(t, &err) == HS_OK);
}

typedef struct fd_tally {
    int judged, kinks, bad;
} fd_tally;

/* Checks d(loss)/d(v[j]) against central differences at two steps. */
static void fd_check(hs_tape *t, const float *x, uint64_t seed, float *v, int64_t j,
                     double analytic, const char *what, fd_tally *tally) {
    double est[2], steps[2] = {2e-3, 1e-3};
    float keep = v[j];
    for (int s = 0; s < 2; s++) {
        v[j] = keep + (float)steps[s];
        double up = loss_at(t, x, seed);
        v[j] = keep - (float)steps[s];
        double down = loss_at(t, x, seed);
        v[j] = keep;
        /* The step actually taken in float32. */
        est[s] = (up - down) / ((double)(keep + (float)steps[s]) - (double)(keep - (float)steps[s]));
    }
    double tol = 2e-3 + 1e-2 * fabs(analytic);
    if (fabs(est[0] - est[1]) > tol) {
        tally->kinks++;
        return;
    }
    tally->judged++;
    if (fabs(est[1] - analytic) > tol) {
        tally->bad++;
        fprintf(stderr, "%s[%lld]: analytic %.6g, finite differences %.6g\n", what,
                (long long)j, analytic, est[1]);
    }
}

static void test_gradients(void) {
    hs_net *net = mixed_net();
    hs_error err = {0};
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, MIX_N, MIX_C, MIX_H, MIX_W, 1, &err) == HS_OK);
    int64_t in_count = (int64_t)MIX_N * MIX_C * MIX_H * MIX_W;
    float *x = test_deterministic_input(in_count);
    const uint64_t seed = 5;
    forward_backward(&t, x, seed);

    /* The masks are real: drop connect dropped a sample or dropout a value. */
    int dropped = 0;
    for (int b = 0; b < MIX_N; b++) dropped += !t.masks[7][b];
    for (int k = 0; k < MIX_N * 5; k++) dropped += !t.masks[18][k];
    CHECK(dropped > 0);

    hs_param_ref *refs = NULL;
    int count = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    /* Copies of the analytic gradients: loss_at's forwards leave the arena alone, but keep
     * the check independent of that. */
    float *grads = malloc((size_t)net->param_floats * sizeof(float));
    memcpy(grads, net->grads, (size_t)net->param_floats * sizeof(float));
    fd_tally tally = {0, 0, 0};
    for (int i = 0; i < count; i++) {
        if (refs[i].buffer) continue;
        int64_t numel = hs_param_numel(&refs[i]);
        float *v = *refs[i].data;
        const float *g = grads + (*refs[i].grad - net->grads);
        for (int s = 0; s < 6 && s < numel; s++) {
            int64_t j = (s * 7 + 3) % numel; /* distinct: 7 is prime to the sizes here */
            fd_check(&t, x, seed, v, j, g[j], refs[i].key, &tally);
        }
    }
    float *dx = malloc((size_t)in_count * sizeof(float));
    memcpy(dx, hs_tape_input_grad(&t), (size_t)in_count * sizeof(float));
    for (int s = 0; s < 12; s++) {
        int64_t j = (s * 37 + 5) % in_count;
        fd_check(&t, x, seed, x, j, dx[j], "input", &tally);
    }
    printf("finite differences: %d judged, %d near a kink, %d wrong\n", tally.judged,
           tally.kinks, tally.bad);
    CHECK(tally.bad == 0);
    CHECK(tally.judged >= 40);
    CHECK(tally.kinks * 5 <= tally.judged + tally.kinks);
    free(dx);
    free(grads);
    free(refs);
    free(x);
    hs_tape_free(&t);
    hs_net_release(net);
    free(net);
}

/* Which parameters receive gradients at each freeze boundary; those that do match the
 * unfrozen run (frozen layers above the boundary still pass gradients through). */
static void test_freeze_boundary(void) {
    hs_net *net = mixed_net();
    hs_error err = {0};
    float *x = test_deterministic_input((int64_t)MIX_N * MIX_C * MIX_H * MIX_W);
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, MIX_N, MIX_C, MIX_H, MIX_W, 0, &err) == HS_OK);
    forward_backward(&t, x, 3);
    float *full = malloc((size_t)net->param_floats * sizeof(float));
    memcpy(full, net->grads, (size_t)net->param_floats * sizeof(float));
    hs_tape_free(&t);

    hs_param_ref *refs = NULL;
    int count = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    int boundaries[] = {3, 6, 10, 16, 19};
    for (int b = 0; b < (int)(sizeof boundaries / sizeof boundaries[0]); b++) {
        hs_net_freeze_below(net, boundaries[b]);
        CHECK(hs_net_freeze_boundary(net, 0, net->count) == boundaries[b]);
        CHECK(hs_tape_init(&t, net, 0, net->count, MIX_N, MIX_C, MIX_H, MIX_W, 0, &err) ==
              HS_OK);
        CHECK(t.grads[boundaries[b]] == NULL); /* nothing below the boundary is computed */
        forward_backward(&t, x, 3);
        for (int i = 0; i < count; i++) {
            if (refs[i].buffer) continue;
            int64_t off = *refs[i].grad - net->grads, numel = hs_param_numel(&refs[i]);
            double norm = 0;
            for (int64_t j = 0; j < numel; j++) norm += fabs(net->grads[off + j]);
            if (refs[i].layer < boundaries[b])
                CHECK_MSG(norm == 0, "%s has a gradient below boundary %d", refs[i].key,
                          boundaries[b]);
            else
                CHECK_CLOSE(refs[i].key, net->grads + off, full + off, numel, 1e-5f, 1e-7f);
        }
        hs_tape_free(&t);
    }
    /* A frozen layer above the boundary: no gradient of its own, the others unchanged. */
    hs_net_freeze_below(net, 0);
    net->layers[16].frozen = 1;
    CHECK(hs_tape_init(&t, net, 0, net->count, MIX_N, MIX_C, MIX_H, MIX_W, 0, &err) == HS_OK);
    forward_backward(&t, x, 3);
    for (int i = 0; i < count; i++) {
        if (refs[i].buffer) continue;
        int64_t off = *refs[i].grad - net->grads, numel = hs_param_numel(&refs[i]);
        if (refs[i].layer == 16) {
            double norm = 0;
            for (int64_t j = 0; j < numel; j++) norm += fabs(net->grads[off + j]);
            CHECK(norm == 0);
        } else {
            CHECK_CLOSE(refs[i].key, net->grads + off, full + off, numel, 1e-5f, 1e-7f);
        }
    }
    hs_tape_free(&t);
    free(refs);
    free(full);
    free(x);
    hs_net_release(net);
    free(net);
}

/* Training mode updates a training BatchNorm's running statistics as PyTorch does
 * (momentum 0.1 here, unbiased variance) and leaves a frozen one's alone; inference leaves
 * both alone. */
static void test_bn_running_stats(void) {
    hs_net *net = mixed_net();
    hs_error err = {0};
    float *x = test_deterministic_input((int64_t)MIX_N * MIX_C * MIX_H * MIX_W);
    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, MIX_N, MIX_C, MIX_H, MIX_W, 0, &err) == HS_OK);
    hs_layer *b1 = &net->layers[1], *b4 = &net->layers[4];
    float m1[4], v1[4], m4[4], v4[4];
    memcpy(m1, b1->running_mean, sizeof m1);
    memcpy(v1, b1->running_var, sizeof v1);
    memcpy(m4, b4->running_mean, sizeof m4);
    memcpy(v4, b4->running_var, sizeof v4);

    CHECK(hs_tape_forward(&t, x, MIX_N, 0, NULL, &err) == HS_OK); /* inference */
    CHECK(memcmp(m1, b1->running_mean, sizeof m1) == 0 && memcmp(v1, b1->running_var, sizeof v1) == 0);

    hs_rng rng;
    hs_rng_seed(&rng, 1);
    CHECK(hs_tape_forward(&t, x, MIX_N, 1, &rng, &err) == HS_OK);
    CHECK(memcmp(m4, b4->running_mean, sizeof m4) == 0 && memcmp(v4, b4->running_var, sizeof v4) == 0);
    CHECK(b1->bn_batches_tracked == 1);
    /* The conv output the BatchNorm saw is on the tape (activation 1, in the tape's layout
     * for it: read back as NCHW). */
    int hw = MIX_H * MIX_W, m = MIX_N * hw;
    float *act1 = malloc((size_t)MIX_N * 4 * hw * sizeof(float));
    CHECK(hs_layout_convert(t.acts[1], t.layouts[1], act1, HS_LAYOUT_NCHW, MIX_N, 4, MIX_H,
                            MIX_W) == 0);
    for (int c = 0; c < 4; c++) {
        double sum = 0, sq = 0;
        for (int b = 0; b < MIX_N; b++)
            for (int i = 0; i < hw; i++) sum += act1[((size_t)b * 4 + c) * hw + i];
        double mean = sum / m;
        for (int b = 0; b < MIX_N; b++)
            for (int i = 0; i < hw; i++) {
                double d = act1[((size_t)b * 4 + c) * hw + i] - mean;
                sq += d * d;
            }
        float want_mean = (float)(0.9 * m1[c] + 0.1 * mean);
        float want_var = (float)(0.9 * v1[c] + 0.1 * sq / (m - 1));
        CHECK_CLOSE("running_mean", &b1->running_mean[c], &want_mean, 1, 1e-5f, 1e-6f);
        CHECK_CLOSE("running_var", &b1->running_var[c], &want_var, 1, 1e-5f, 1e-6f);
    }
    free(act1);
    hs_tape_free(&t);
    free(x);
    hs_net_release(net);
    free(net);
}

/* The arenas' named views cover each tensor exactly once, in state-dict order; gradients
 * mirror the parameters. */
static void check_arena_views(hs_net *net, const char *what) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_error err = {0};
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    int64_t p = 0, b = 0;
    int ok = 1;
    for (int i = 0; i < count; i++) {
        int64_t n = hs_param_numel(&refs[i]);
        if (refs[i].buffer) {
            ok &= *refs[i].data == net->buffers + b && refs[i].grad == NULL;
            b += n;
        } else {
            ok &= *refs[i].data == net->params + p && *refs[i].grad == net->grads + p;
            p += n;
        }
    }
    CHECK_MSG(ok && p == net->param_floats && b == net->buffer_floats, "%s", what);
    hs_state_dict sd;
    hs_sd_init(&sd);
    CHECK(hs_net_state_dict(net, &sd, &err) == HS_OK);
    CHECK((int)sd.count == count);
    for (int i = 0; i < count && i < (int)sd.count; i++)
        CHECK_MSG(strcmp(sd.entries[i].name, refs[i].key) == 0, "%s", refs[i].key);
    hs_sd_free(&sd);
    free(refs);
}

static void test_arenas(void) {
    hs_net *net = mixed_net();
    check_arena_views(net, "mixed net");
    hs_net_release(net);
    free(net);
    hs_error err = {0};
    CHECK(hs_net_create("efficientnet_lite0", 1, &net, &err) == HS_OK);
    check_arena_views(net, "Lite0");
    /* Replacing the head re-lays the arenas and keeps the backbone's values. */
    float first = net->layers[0].weight[5], bn_var = net->layers[1].running_var[0];
    CHECK(hs_net_replace_head(net, 7, HS_HEAD_LAST_LAYER, 3, &err) == HS_OK);
    check_arena_views(net, "Lite0 with a new head");
    CHECK(net->layers[0].weight[5] == first && net->layers[1].running_var[0] == bn_var);
    hs_net_free(net);
}

/* Random BatchNorm statistics, so that folding is not the identity. */
static void randomise_bn(hs_net *net, uint64_t seed) {
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int i = 0; i < net->count; i++) {
        hs_layer *l = &net->layers[i];
        if (l->kind != HS_LAYER_BATCHNORM) continue;
        for (int c = 0; c < l->channels; c++) {
            l->weight[c] = hs_rng_range(&rng, 0.5f, 1.5f);
            l->bias[c] = hs_rng_range(&rng, -0.2f, 0.2f);
            l->running_mean[c] = hs_rng_range(&rng, -0.1f, 0.1f);
            l->running_var[c] = hs_rng_range(&rng, 0.5f, 2.0f);
        }
    }
    net->prepared = 0;
}

static void plan_vs_interpreter(hs_net *net, int c, int h, int w, const char *what) {
    hs_error err = {0};
    int oc, oh, ow;
    CHECK(hs_net_shape(net, 0, net->count, c, h, w, &oc, &oh, &ow, &err) == HS_OK);
    int64_t out_count = 2LL * oc * oh * ow;
    float *x = test_deterministic_input(2L * c * h * w);
    float *fast = malloc((size_t)out_count * sizeof(float));
    float *ref = malloc((size_t)out_count * sizeof(float));
    CHECK(hs_net_run(net, 0, net->count, x, 2, c, h, w, fast, &err) == HS_OK);
    CHECK(hs_net_run_layers(net, 0, net->count, x, 2, c, h, w, ref, &err) == HS_OK);
    CHECK_CLOSE(what, fast, ref, out_count, 1e-4f, 1e-5f);
    /* A range that starts inside: the backbone then the head. */
    int fc, fh, fw;
    CHECK(hs_net_shape(net, 0, net->feature_end, c, h, w, &fc, &fh, &fw, &err) == HS_OK);
    float *feat = malloc((size_t)2 * fc * fh * fw * sizeof(float));
    CHECK(hs_net_run(net, 0, net->feature_end, x, 2, c, h, w, feat, &err) == HS_OK);
    CHECK(hs_net_run(net, net->feature_end, net->count, feat, 2, fc, fh, fw, fast, &err) ==
          HS_OK);
    CHECK_CLOSE(what, fast, ref, out_count, 1e-4f, 1e-5f);
    free(feat);
    free(x);
    free(fast);
    free(ref);
}

static void test_plan(void) {
    /* With the caller's context: the plan makes its oneDNN engine and stream there. */
    hs_context ctx;
    hs_context_init(&ctx);
    hs_net *net = mixed_net();
    net->ctx = &ctx;
    plan_vs_interpreter(net, MIX_C, MIX_H, MIX_W, "mixed net: plan vs interpreter");
    CHECK(ctx.dnnl_state == 1 && ctx.dnnl_engine != NULL);
    hs_net_release(net); /* its plans before their context */
    free(net);
    hs_context_release(&ctx);
    hs_error err = {0};
    CHECK(hs_net_create("efficientnet_lite0", 2, &net, &err) == HS_OK);
    randomise_bn(net, 9);
    plan_vs_interpreter(net, 3, 64, 64, "Lite0: plan vs interpreter");
    hs_net_free(net);
    net = calloc(1, sizeof *net);
    net->info = hs_backbone_find("vgg16");
    net->head_begin = -1;
    CHECK(hs_build_vgg16(net, 32, 32, 10, &err) == HS_OK);
    CHECK(hs_net_init_params(net, 0, net->count, 7, &err) == HS_OK);
    plan_vs_interpreter(net, 3, 64, 64, "tiny VGG16: plan vs interpreter");
    hs_net_free(net);
}

/* ---- one Lite0 training step against PyTorch ---------------------------------------------- */

/* tools/make_train_step_fixtures.py uniform_hash: u in [-1, 1), exact integer arithmetic. */
static double uniform_hash(int64_t tensor, int64_t i) {
    uint64_t h = ((uint64_t)i * 2654435761u + (uint64_t)(tensor * 40503 + 12345)) & 0xFFFFFFFFu;
    h ^= h >> 15;
    h = (h * 2246822519u) & 0xFFFFFFFFu;
    h ^= h >> 13;
    return (double)h / 2147483648.0 - 1.0;
}

/* tools/make_train_step_fixtures.py weight_value. */
static void lite_step_weights(hs_net *net) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_error err = {0};
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int k = 0; k < count; k++) {
        const char *name = strrchr(refs[k].key, '.') + 1;
        int64_t numel = hs_param_numel(&refs[k]);
        float *v = *refs[k].data;
        for (int64_t i = 0; i < numel; i++) {
            double s = uniform_hash(k, i);
            if (strcmp(name, "running_mean") == 0) s = 0.1 * s;
            else if (strcmp(name, "running_var") == 0) s = 1.0 + 0.25 * (s + 1.0);
            else if (refs[k].ndim == 1 && strcmp(name, "weight") == 0) s = 1.0 + 0.2 * s;
            else if (strcmp(name, "bias") == 0) s = 0.1 * s;
            else s = s * (1.7 / sqrt((double)(numel / refs[k].shape[0])));
            v[i] = (float)s;
        }
    }
    free(refs);
    net->prepared = 0;
}

static void test_lite0_train_step(void) {
    hs_state_dict expected;
    test_load_fixture(NETS "/lite0_train_step.safetensors", &expected);
    hs_net *net = calloc(1, sizeof *net);
    hs_error err = {0};
    net->info = hs_backbone_find("efficientnet_lite0");
    net->head_begin = -1;
    CHECK(hs_build_efficientnet_lite_ex(net, 0, 0.0f, &err) == HS_OK);
    CHECK(hs_net_init_params(net, 0, net->count, 1, &err) == HS_OK);
    for (int i = 0; i < net->count; i++)
        if (net->layers[i].kind == HS_LAYER_DROPOUT) net->layers[i].dropout_p = 0.0f;
    lite_step_weights(net);
    /* The reference kernels (double accumulation): at 2 x 64 x 64 the deepest BatchNorms
     * normalise 8 values a channel, where float32 kernels drift ~1 % from PyTorch in deep
     * gradients; the fast path is compared with this one in tests/test_engine_fast.c. */
    hs_context ctx;
    hs_context_init(&ctx);
    ctx.backend = HS_BACKEND_REFERENCE;
    net->ctx = &ctx;

    hs_tape t;
    CHECK(hs_tape_init(&t, net, 0, net->count, 2, 3, 64, 64, 0, &err) == HS_OK);
    float *x = test_deterministic_input(2L * 3 * 64 * 64);
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    hs_status st = hs_tape_forward(&t, x, 2, 1, &rng, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    int labels[2] = {3, 7};
    float loss = hs_softmax_cross_entropy_ref(hs_tape_output(&t), 2, 1000, labels,
                                              hs_tape_output_grad(&t));
    CHECK_CLOSE("Lite0 step: loss", &loss, test_entry(&expected, "loss")->data, 1, 1e-3f, 0);
    CHECK_CLOSE("Lite0 step: logits", hs_tape_output(&t), test_entry(&expected, "logits")->data,
                2000, 1e-3f, 1e-3f);
    hs_net_zero_grad(net);
    st = hs_tape_backward(&t, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);

    hs_param_ref *refs = NULL;
    int count = 0, checked = 0;
    double worst_norm = 0;
    float layer_rms = 0;
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        char key[200];
        if (refs[i].buffer) {
            snprintf(key, sizeof key, "after.%s", refs[i].key);
            double sum = 0;
            for (int64_t j = 0; j < hs_param_numel(&refs[i]); j++) sum += (*refs[i].data)[j];
            float got = (float)sum;
            CHECK_CLOSE(key, &got, test_entry(&expected, key)->data, 1, 1e-3f, 1e-4f);
            continue;
        }
        snprintf(key, sizeof key, "grad.%s", refs[i].key);
        const float *want = test_entry(&expected, key)->data;
        const float *g = *refs[i].grad;
        int64_t numel = hs_param_numel(&refs[i]);
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < numel; j++) sum += g[j], sq += (double)g[j] * g[j];
        float norm = (float)sqrt(sq), total = (float)sum;
        float rms = want[1] / (float)sqrt((double)numel);
        /* A bias's scale is its layer's weight gradient's: a BatchNorm bias followed by a
         * convolution and a BatchNorm in training mode has an exact gradient of zero (the
         * next normalisation removes any shift), which float32 only approximates. */
        if (strcmp(strrchr(refs[i].key, '.'), ".weight") == 0) layer_rms = rms;
        float scale = rms > layer_rms ? rms : layer_rms;
        CHECK_CLOSE(key, &norm, &want[1], 1, 1e-3f, 1e-3f * scale * (float)sqrt((double)numel));
        CHECK_CLOSE(key, &total, &want[0], 1, 1e-3f, 1e-3f * scale * (float)sqrt((double)numel));
        float samples[32];
        for (int s = 0; s < 32; s++) samples[s] = g[(s * 7919LL + 13) % numel];
        CHECK_CLOSE(key, samples, want + 2, 32, 1e-3f, 1e-3f * scale);
        double rel = fabs(norm - want[1]) / want[1];
        if (rel > worst_norm && layer_rms == rms) worst_norm = rel;
        checked++;
    }
    printf("Lite0 step: loss %.6f (PyTorch %.6f), %d gradients, worst norm error %.2e\n", loss,
           test_entry(&expected, "loss")->data[0], checked, worst_norm);
    CHECK((int)expected.count == 2 + count); /* every tensor was compared */
    free(refs);
    free(x);
    hs_tape_free(&t);
    hs_net_free(net);
    hs_context_release(&ctx);
    hs_sd_free(&expected);
}

int main(void) {
    test_arenas();
    test_plan();
    test_bn_running_stats();
    test_freeze_boundary();
    test_gradients();
    test_lite0_train_step();
    return check_finish("test_engine");
}
