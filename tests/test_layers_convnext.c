/* The ConvNeXt layer kinds through their layer operations (the functions the interpreter
 * and the tape call): gelu, layernorm2d, layer_scale and conv.c's pointwise_linear flag.
 *
 * 1. Against PyTorch (tests/fixtures/grads_convnext.safetensors, tools/
 *    make_convnext_grad_fixtures.py: torchvision's own modules in float64 on float32 values,
 *    rounded once): outputs and every gradient within 1e-4 relative + 1e-6 absolute.
 * 2. Against central finite differences of the layer's own forward, L = sum(dy * y) in
 *    double (as tests/test_ops_grad.c): where the output is linear in the perturbed value
 *    (layer scale, the pointwise convolution, LayerNorm's weight and bias) step 0.25 and
 *    1e-4 relative + 2e-5 absolute; GELU's and LayerNorm's dx are smooth but not linear:
 *    step 2^-7, 1e-3 relative + 1e-4 absolute (truncation O(h^2) ~ 1e-5, the rest is the
 *    forward's float rounding over 2h).
 * 3. The contract of layer.h: dx overwritten (prefilled with NaN), parameter gradients
 *    accumulated onto what is there, dx skipped when NULL.
 * 4. The layout kernels net_run.c calls on blocked activations (nChw8c, nChw16c) give the
 *    NCHW result bit for bit after a reorder, padded channels written as zeros.
 * 5. The parameter listing: torchvision's keys and shapes (layer_scale [C, 1, 1], a Linear's
 *    [out, in] weight for a pointwise convolution). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "layers/channel_kernels.h"
#include "layers/layer.h"
#include "net.h"
#include "net_train.h"
#include "test_util.h"

#define FIXTURE HS_FIXTURES_DIR "/grads_convnext.safetensors"
#define TORCH_RTOL 1e-4f
#define TORCH_ATOL 1e-6f
#define FD_STEP_LINEAR 0.25f
#define FD_RTOL 1e-4
#define FD_ATOL 2e-5
#define FD_STEP_SMOOTH (1.0f / 128.0f)
#define FD_RTOL_SMOOTH 1e-3
#define FD_ATOL_SMOOTH 1e-4

static hs_state_dict fx;

static const float *get(const char *c, const char *name, int64_t *count) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c, name);
    const hs_sd_entry *e = test_entry(&fx, key);
    if (count) {
        *count = 1;
        for (int i = 0; i < e->ndim; i++) *count *= e->shape[i];
    }
    return e->data;
}

static float *copy_of(const float *v, int64_t count) {
    float *p = test_alloc_floats(count);
    memcpy(p, v, (size_t)count * sizeof(float));
    return p;
}

static float *nan_floats(int64_t count) {
    float *p = test_alloc_floats(count);
    for (int64_t i = 0; i < count; i++) p[i] = NAN;
    return p;
}

/* ---- one layer in a network of its own (its parameters in the arenas, as in training) ---- */

typedef struct one_layer {
    hs_net net;
    hs_layer *l;
    int n;
    hs_act_shape in, out;
    float *x, *dy, *y, *saved;
    int64_t x_count, y_count;
} one_layer;

/* Adds the layer (configured by the caller through *l before one_layer_ready). */
static hs_layer *one_layer_begin(one_layer *o, hs_layer_kind kind, const char *name) {
    memset(o, 0, sizeof *o);
    o->net.head_begin = -1;
    o->l = hs_net_add_layer(&o->net, kind, name);
    CHECK(o->l != NULL);
    return o->l;
}

static void one_layer_ready(one_layer *o, int n, int c, int h, int w, const float *x,
                            const float *dy) {
    hs_error err = {0};
    CHECK_MSG(hs_net_init_params(&o->net, 0, 1, 3, &err) == HS_OK, "%s", err.message);
    o->l = &o->net.layers[0];
    o->n = n;
    o->in = (hs_act_shape){c, h, w};
    const hs_layer_ops *ops = hs_layer_ops_of(o->l->kind);
    CHECK_MSG(ops->shape(o->l, o->in, &o->out, &err) == HS_OK, "%s", err.message);
    o->x_count = (int64_t)n * hs_act_numel(o->in);
    o->y_count = (int64_t)n * hs_act_numel(o->out);
    o->x = copy_of(x, o->x_count);
    o->dy = copy_of(dy, o->y_count);
    o->y = test_alloc_floats(o->y_count);
    int64_t floats = 0, bytes = 0;
    if (ops->tape_size) ops->tape_size(o->l, o->in, o->out, n, &floats, &bytes);
    CHECK(bytes == 0);
    o->saved = test_alloc_floats(floats);
}

static void one_layer_free(one_layer *o) {
    free(o->x), free(o->dy), free(o->y), free(o->saved);
    hs_net_release(&o->net);
}

static void forward(one_layer *o, int training) {
    hs_error err = {0};
    hs_forward_args a = {o->x, o->in, o->y, o->out, o->n, training, o->saved, NULL, NULL,
                         NULL, {0, 0, 0}, NULL, 0, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(hs_layer_ops_of(o->l->kind)->forward(o->l, &a, &err) == HS_OK, "%s",
              err.message);
}

/* Backward of the last training forward into dx (may be NULL). */
static void backward(one_layer *o, float *dx, int param_grads) {
    hs_error err = {0};
    hs_backward_args a = {o->x, o->in, o->y, o->out, o->n, o->dy, dx, param_grads, o->saved,
                          NULL, NULL, {0, 0, 0}, NULL, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(hs_layer_ops_of(o->l->kind)->backward(o->l, &a, &err) == HS_OK, "%s",
              err.message);
}

static double loss_of(one_layer *o) {
    forward(o, 0);
    double sum = 0.0;
    for (int64_t i = 0; i < o->y_count; i++) sum += (double)o->dy[i] * o->y[i];
    return sum;
}

static double fd_worst = 0.0; /* error / allowed, over every finite-difference check */

/* Central differences of loss_of in each element of values (an input or parameter of o). */
static void check_fd(const char *what, one_layer *o, float *values, int64_t count,
                     const float *grad, float step, double rtol, double atol) {
    int64_t bad = 0, worst = -1;
    double worst_fd = 0, worst_ratio = 0;
    for (int64_t i = 0; i < count; i++) {
        const float orig = values[i];
        values[i] = orig + step;
        const double up = (double)values[i] - orig, l_up = loss_of(o);
        values[i] = orig - step;
        const double down = orig - (double)values[i], l_down = loss_of(o);
        values[i] = orig;
        const double fd = (l_up - l_down) / (up + down);
        const double ratio = fabs(fd - grad[i]) / (atol + rtol * fabs(fd));
        if (ratio > fd_worst) fd_worst = ratio;
        if (!(ratio <= 1.0)) {
            bad++;
            if (ratio > worst_ratio) worst_ratio = ratio, worst = i, worst_fd = fd;
        }
    }
    CHECK_MSG(bad == 0, "%s: %lld of %lld gradients differ from finite differences; worst at "
              "%lld: %.8g vs fd %.8g", what, (long long)bad, (long long)count, (long long)worst,
              worst >= 0 ? grad[worst] : 0.0, worst_fd);
}

/* The contract of backward (layer.h): parameter gradients accumulate onto what is there, dx
 * is overwritten whatever it held and left alone when NULL. dx and the parameter gradients
 * of one backward from zero are given. */
static void check_contract(const char *c, one_layer *o, const float *dx, int64_t weights,
                           const float *dweight, int64_t biases, const float *dbias) {
    char what[128];
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    float *start_w = test_random_floats(&rng, weights, -1, 1);
    float *start_b = test_random_floats(&rng, biases, -1, 1);
    float *want_w = test_alloc_floats(weights), *want_b = test_alloc_floats(biases);
    for (int64_t i = 0; i < weights; i++) want_w[i] = start_w[i] + dweight[i];
    for (int64_t i = 0; i < biases; i++) want_b[i] = start_b[i] + dbias[i];
    if (weights) memcpy(o->l->dweight, start_w, (size_t)weights * sizeof(float));
    if (biases) memcpy(o->l->dbias, start_b, (size_t)biases * sizeof(float));
    backward(o, NULL, 1); /* dx not wanted: only the parameter gradients move */
    snprintf(what, sizeof what, "%s: dweight accumulates", c);
    if (weights) CHECK_CLOSE(what, o->l->dweight, want_w, weights, 1e-6f, 1e-7f);
    snprintf(what, sizeof what, "%s: dbias accumulates", c);
    if (biases) CHECK_CLOSE(what, o->l->dbias, want_b, biases, 1e-6f, 1e-7f);
    /* dx alone: no parameter gradient touched, the same dx as with them. */
    if (weights) memcpy(want_w, o->l->dweight, (size_t)weights * sizeof(float));
    float *dx2 = nan_floats(o->x_count);
    backward(o, dx2, 0);
    snprintf(what, sizeof what, "%s: dx alone", c);
    CHECK_CLOSE(what, dx2, dx, o->x_count, 0.0f, 0.0f);
    snprintf(what, sizeof what, "%s: no parameter gradient without param_grads", c);
    if (weights) CHECK_CLOSE(what, o->l->dweight, want_w, weights, 0.0f, 0.0f);
    free(start_w), free(start_b), free(want_w), free(want_b), free(dx2);
}

/* Forward and backward against PyTorch; the gradients it returns in dx / the layer's views. */
static float *against_torch(const char *c, one_layer *o) {
    char what[128];
    forward(o, 1);
    snprintf(what, sizeof what, "%s: y vs PyTorch", c);
    CHECK_CLOSE(what, o->y, get(c, "y", NULL), o->y_count, TORCH_RTOL, TORCH_ATOL);
    float *dx = nan_floats(o->x_count);
    hs_net_zero_grad(&o->net);
    backward(o, dx, 1);
    snprintf(what, sizeof what, "%s: dx vs PyTorch", c);
    CHECK_CLOSE(what, dx, get(c, "dx", NULL), o->x_count, TORCH_RTOL, TORCH_ATOL);
    return dx;
}

/* ---- the cases ----------------------------------------------------------------------------- */

static void test_gelu(void) {
    const float *p = get("gelu", "params", NULL);
    one_layer o;
    one_layer_begin(&o, HS_LAYER_GELU, "gelu");
    one_layer_ready(&o, (int)p[0], (int)p[1], (int)p[2], (int)p[3], get("gelu", "x", NULL),
                    get("gelu", "dy", NULL));
    float *dx = against_torch("gelu", &o);
    check_fd("gelu fd dx", &o, o.x, o.x_count, dx, FD_STEP_SMOOTH, FD_RTOL_SMOOTH,
             FD_ATOL_SMOOTH);
    check_contract("gelu", &o, dx, 0, NULL, 0, NULL);
    free(dx);
    one_layer_free(&o);
}

static void test_layernorm(const char *c) {
    const float *p = get(c, "params", NULL);
    int channels = (int)p[1];
    one_layer o;
    hs_layer *l = one_layer_begin(&o, HS_LAYER_LAYERNORM2D, "norm");
    l->channels = channels;
    l->bn_eps = get(c, "eps", NULL)[0];
    one_layer_ready(&o, (int)p[0], channels, (int)p[2], (int)p[3], get(c, "x", NULL),
                    get(c, "dy", NULL));
    memcpy(o.l->weight, get(c, "weight", NULL), (size_t)channels * sizeof(float));
    memcpy(o.l->bias, get(c, "bias", NULL), (size_t)channels * sizeof(float));
    float *dx = against_torch(c, &o);
    char what[128];
    snprintf(what, sizeof what, "%s: dweight vs PyTorch", c);
    CHECK_CLOSE(what, o.l->dweight, get(c, "dweight", NULL), channels, TORCH_RTOL, TORCH_ATOL);
    snprintf(what, sizeof what, "%s: dbias vs PyTorch", c);
    CHECK_CLOSE(what, o.l->dbias, get(c, "dbias", NULL), channels, TORCH_RTOL, TORCH_ATOL);
    float *dw = copy_of(o.l->dweight, channels), *db = copy_of(o.l->dbias, channels);
    snprintf(what, sizeof what, "%s fd dx", c);
    check_fd(what, &o, o.x, o.x_count, dx, FD_STEP_SMOOTH, FD_RTOL_SMOOTH, FD_ATOL_SMOOTH);
    snprintf(what, sizeof what, "%s fd dweight", c);
    check_fd(what, &o, o.l->weight, channels, dw, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    snprintf(what, sizeof what, "%s fd dbias", c);
    check_fd(what, &o, o.l->bias, channels, db, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    forward(&o, 1); /* the tape as backward expects it, after the finite differences */
    check_contract(c, &o, dx, channels, dw, channels, db);
    free(dx), free(dw), free(db);
    one_layer_free(&o);
}

static void test_layer_scale(void) {
    const float *p = get("layer_scale", "params", NULL);
    int channels = (int)p[1];
    one_layer o;
    hs_layer *l = one_layer_begin(&o, HS_LAYER_LAYER_SCALE, "features.1.0");
    l->channels = channels;
    l->layer_scale_init = 1e-6f;
    one_layer_ready(&o, (int)p[0], channels, (int)p[2], (int)p[3],
                    get("layer_scale", "x", NULL), get("layer_scale", "dy", NULL));
    for (int i = 0; i < channels; i++) CHECK(o.l->weight[i] == 1e-6f); /* its init */
    memcpy(o.l->weight, get("layer_scale", "gamma", NULL), (size_t)channels * sizeof(float));
    float *dx = against_torch("layer_scale", &o);
    CHECK_CLOSE("layer_scale: dgamma vs PyTorch", o.l->dweight,
                get("layer_scale", "dgamma", NULL), channels, TORCH_RTOL, TORCH_ATOL);
    float *dg = copy_of(o.l->dweight, channels);
    check_fd("layer_scale fd dx", &o, o.x, o.x_count, dx, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    check_fd("layer_scale fd dgamma", &o, o.l->weight, channels, dg, FD_STEP_LINEAR, FD_RTOL,
             FD_ATOL);
    check_contract("layer_scale", &o, dx, channels, dg, 0, NULL);
    free(dx), free(dg);
    one_layer_free(&o);
}

/* conv.c with pointwise_linear against nn.Linear applied at each pixel, both backends'
 * passes (the reference ops and, through hs_layer_pass_of, the oneDNN training plan). */
static void test_pointwise_linear(void) {
    const char *c = "pointwise_linear";
    const float *p = get(c, "params", NULL);
    int n = (int)p[0], in = (int)p[1], out = (int)p[2], h = (int)p[3], w = (int)p[4];
    one_layer o;
    memset(&o, 0, sizeof o);
    o.net.head_begin = -1;
    hs_layer *l = hs_net_add_conv(&o.net, "block.3", in, out, 1, 1, 0, 1, 1, 0);
    l->pointwise_linear = 1;
    one_layer_ready(&o, n, in, h, w, get(c, "x", NULL), get(c, "dy", NULL));
    int64_t wn = (int64_t)in * out;
    memcpy(o.l->weight, get(c, "w", NULL), (size_t)wn * sizeof(float));
    memcpy(o.l->bias, get(c, "b", NULL), (size_t)out * sizeof(float));
    float *dx = against_torch(c, &o);
    CHECK_CLOSE("pointwise_linear: dw vs PyTorch", o.l->dweight, get(c, "dw", NULL), wn,
                TORCH_RTOL, TORCH_ATOL);
    CHECK_CLOSE("pointwise_linear: db vs PyTorch", o.l->dbias, get(c, "db", NULL), out,
                TORCH_RTOL, TORCH_ATOL);
    float *dw = copy_of(o.l->dweight, wn), *db = copy_of(o.l->dbias, out);
    check_fd("pointwise_linear fd dx", &o, o.x, o.x_count, dx, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    check_fd("pointwise_linear fd dw", &o, o.l->weight, wn, dw, FD_STEP_LINEAR, FD_RTOL,
             FD_ATOL);
    check_contract(c, &o, dx, wn, dw, out, db);

    /* The fast backend's passes (oneDNN training plans) take the same layer. */
    hs_layer_pass fast = hs_layer_pass_of(HS_LAYER_CONV, HS_BACKEND_CPU);
    hs_error err = {0};
    hs_forward_args fa = {o.x, o.in, o.y, o.out, n, 1, o.saved, NULL, NULL, NULL, {0, 0, 0},
                          NULL, 0, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(fast.forward(o.l, &fa, &err) == HS_OK, "%s", err.message);
    CHECK_CLOSE("pointwise_linear: fast forward vs PyTorch", o.y, get(c, "y", NULL), o.y_count,
                TORCH_RTOL, TORCH_ATOL);
    float *fdx = nan_floats(o.x_count);
    hs_net_zero_grad(&o.net);
    hs_backward_args ba = {o.x, o.in, o.y, o.out, n, o.dy, fdx, 1, o.saved, NULL, NULL,
                           {0, 0, 0}, NULL, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(fast.backward(o.l, &ba, &err) == HS_OK, "%s", err.message);
    CHECK_CLOSE("pointwise_linear: fast dx vs PyTorch", fdx, get(c, "dx", NULL), o.x_count,
                TORCH_RTOL, TORCH_ATOL);
    CHECK_CLOSE("pointwise_linear: fast dw vs PyTorch", o.l->dweight, get(c, "dw", NULL), wn,
                TORCH_RTOL, TORCH_ATOL);
    hs_net_release_train_plans(&o.net);
    free(dx), free(dw), free(db), free(fdx);
    one_layer_free(&o);
}

/* ---- the listing: torchvision's keys and shapes -------------------------------------------- */

static void test_param_listing(void) {
    hs_net net = {0};
    hs_error err = {0};
    net.head_begin = -1;
    hs_layer *conv = hs_net_add_conv(&net, "features.1.0.block.3", 8, 32, 1, 1, 0, 1, 1, 0);
    conv->pointwise_linear = 1;
    hs_layer *norm = hs_net_add_layer(&net, HS_LAYER_LAYERNORM2D, "features.1.0.block.2");
    norm->channels = 32;
    hs_layer *scale = hs_net_add_layer(&net, HS_LAYER_LAYER_SCALE, "features.1.0");
    scale->channels = 32;
    snprintf(scale->timm_name, sizeof scale->timm_name, "stages.0.blocks.0");
    CHECK(hs_net_init_params(&net, 0, net.count, 1, &err) == HS_OK);
    hs_param_ref *refs = NULL;
    int count = 0;
    CHECK(hs_net_params(&net, &refs, &count, &err) == HS_OK);
    CHECK(count == 5);
    if (count == 5) {
        CHECK(strcmp(refs[0].key, "features.1.0.block.3.weight") == 0);
        CHECK(refs[0].ndim == 2 && refs[0].shape[0] == 32 && refs[0].shape[1] == 8);
        CHECK(strcmp(refs[2].key, "features.1.0.block.2.weight") == 0 && refs[2].ndim == 1);
        CHECK(strcmp(refs[4].key, "features.1.0.layer_scale") == 0);
        CHECK(refs[4].ndim == 3 && refs[4].shape[0] == 32 && refs[4].shape[1] == 1 &&
              refs[4].shape[2] == 1);
        /* timm's key keeps the suffix: "gamma" and its [C] shape are the timm loader's map. */
        CHECK(strcmp(refs[4].timm_key, "stages.0.blocks.0.layer_scale") == 0);
        CHECK(net.param_floats == 32 * 8 + 32 + 32 + 32 + 32);
    }
    free(refs);

    /* The flag on a convolution that is not 1x1 is refused, and its weight stays 4-D (the
     * listed size is the size the kernels read). */
    hs_layer *bad = hs_net_add_conv(&net, "bad", 32, 4, 3, 1, 1, 1, 0, 0);
    bad->pointwise_linear = 1;
    CHECK(hs_net_params(&net, &refs, &count, &err) == HS_OK);
    CHECK(count == 6 && refs[5].ndim == 4);
    free(refs);
    hs_act_shape out;
    CHECK(hs_conv_ops.shape(bad, (hs_act_shape){32, 5, 5}, &out, &err) == HS_ERR_INTERNAL);
    CHECK_MSG(strstr(err.message, "bad: a Linear-shaped convolution") != NULL, "%s",
              err.message);
    hs_net_release(&net);
}

/* ---- the layout kernels on blocked activations --------------------------------------------- */

static void check_blocked(const char *what, hs_layout layout, const float *x, int n, int c,
                          int hw, const float *nchw_y,
                          void (*run)(const float *x, hs_layout layout, float *y, void *ctx),
                          void *ctx) {
    int64_t size = hs_layout_size(layout, n, c, hw, 1), count = (int64_t)n * c * hw;
    float *xb = test_alloc_floats(size), *yb = nan_floats(size), *back = nan_floats(count);
    CHECK(hs_layout_convert(x, HS_LAYOUT_NCHW, xb, layout, n, c, hw, 1) == 0);
    run(xb, layout, yb, ctx);
    CHECK(hs_layout_convert(yb, layout, back, HS_LAYOUT_NCHW, n, c, hw, 1) == 0);
    char key[128];
    snprintf(key, sizeof key, "%s in block %d == NCHW", what, hs_layout_block(layout));
    CHECK_CLOSE(key, back, nchw_y, count, 0.0f, 0.0f);
    int block = hs_layout_block(layout), cb = (c + block - 1) / block, padded = 0;
    for (int b = 0; b < n; b++)
        for (int ch = c; ch < cb * block; ch++)
            for (int p = 0; p < hw; p++)
                padded += yb[hs_channel_offset(b, ch, p, block, cb, hw)] != 0.0f;
    CHECK_MSG(padded == 0, "%s: %d padded values are not zero", key, padded);
    free(xb), free(yb), free(back);
}

typedef struct kernel_ctx {
    int n, c, hw;
    const float *weight, *bias;
    float eps;
} kernel_ctx;

static void run_ln(const float *x, hs_layout layout, float *y, void *p) {
    kernel_ctx *k = p;
    hs_layernorm2d_forward(x, layout, k->n, k->c, k->hw, k->weight, k->bias, k->eps, y, NULL,
                           NULL);
}
static void run_scale(const float *x, hs_layout layout, float *y, void *p) {
    kernel_ctx *k = p;
    hs_channel_scale_forward(x, layout, k->n, k->c, k->hw, k->weight, y);
}
static void run_gelu(const float *x, hs_layout layout, float *y, void *p) {
    kernel_ctx *k = p;
    hs_gelu_forward(x, hs_layout_size(layout, k->n, k->c, k->hw, 1), y);
}

static void test_layout_kernels(void) {
    /* 7 and 20 channels: a partly padded last block in both block sizes; 72 pixels: the
     * LayerNorm's two tiles. */
    static const int channels[] = {7, 20};
    static const hs_layout layouts[] = {HS_LAYOUT_NCHW8C, HS_LAYOUT_NCHW16C};
    hs_rng rng;
    hs_rng_seed(&rng, 21);
    for (int ci = 0; ci < 2; ci++) {
        int n = 2, c = channels[ci], hw = 72;
        int64_t count = (int64_t)n * c * hw;
        float *x = test_random_floats(&rng, count, -2, 3);
        float *weight = test_random_floats(&rng, c, 0.5f, 1.5f);
        float *bias = test_random_floats(&rng, c, -0.2f, 0.2f);
        kernel_ctx k = {n, c, hw, weight, bias, 1e-6f};
        float *ln = test_alloc_floats(count), *sc = test_alloc_floats(count);
        float *ge = test_alloc_floats(count);
        run_ln(x, HS_LAYOUT_NCHW, ln, &k);
        run_scale(x, HS_LAYOUT_NCHW, sc, &k);
        run_gelu(x, HS_LAYOUT_NCHW, ge, &k);
        for (int li = 0; li < 2; li++) {
            check_blocked("layernorm2d", layouts[li], x, n, c, hw, ln, run_ln, &k);
            check_blocked("layer scale", layouts[li], x, n, c, hw, sc, run_scale, &k);
            check_blocked("gelu", layouts[li], x, n, c, hw, ge, run_gelu, &k);
        }
        free(x), free(weight), free(bias), free(ln), free(sc), free(ge);
    }
}

int main(void) {
    test_load_fixture(FIXTURE, &fx);
    test_gelu();
    test_layernorm("layernorm2d");
    test_layernorm("layernorm_permuted");
    test_layernorm("layernorm2d_eps");
    test_layer_scale();
    test_pointwise_linear();
    test_param_listing();
    test_layout_kernels();
    printf("finite differences: worst error %.3f of the allowed\n", fd_worst);
    hs_sd_free(&fx);
    return check_finish("test_layers_convnext");
}
