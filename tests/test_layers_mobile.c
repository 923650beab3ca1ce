/* The layer kinds of MobileNetV3 and EfficientNet (layers/sigmoid.c, silu.c, hardswish.c,
 * hardsigmoid.c, scale.c), each through its ops table, two independent ways:
 *
 * 1. Against PyTorch (tests/fixtures/grads_mobile.safetensors, tools/make_mobile_grad_
 *    fixtures.py: float64 results from float32 inputs, rounded once): outputs and gradients
 *    within 1e-5 relative + 1e-7 absolute (the brief asks 1e-4; expf's rounding is ~1e-7).
 *    The activations' inputs hold the kinks -3, 0, 3 and their float neighbours exactly,
 *    so PyTorch's gradient definitions there (hard swish -0.5 at -3 and 1 at 3, as its
 *    vectorised kernel computes; hard sigmoid 0 at both) are what is checked.
 *
 * 2. Against central finite differences of the layer's own forward, L = sum(dy * f(x)) in
 *    double: the channel scale is linear in each input (step 0.25, no truncation error:
 *    1e-4 relative + 2e-5 absolute); the activations at step 2^-9, tolerance 1e-4 relative
 *    + 5e-5 absolute (truncation ~1e-6, the forward's float rounding over 2h ~2e-5), hard
 *    swish and hard sigmoid only at inputs at least 2 steps from a kink.
 *
 * Contracts: dx is overwritten (prefilled with NaN), the gate's gradient is accumulated onto
 * what dother holds, a NULL dx or dother is skipped, and the scale's edge check rejects a
 * gate that is not c x 1 x 1. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "layers/layer.h"
#include "test_util.h"

#define PT_RTOL 1e-5f
#define PT_ATOL 1e-7f
#define FD_RTOL 1e-4
#define FD_ATOL 5e-5
#define FD_ATOL_LINEAR 2e-5
#define FD_STEP (1.0f / 512.0f)
#define FD_STEP_LINEAR 0.25f

static hs_state_dict fixture;
static const hs_act_shape shape = {5, 3, 4};
enum { N = 2, COUNT = 2 * 5 * 3 * 4, PLANES = 2 * 5 };

static const float *tensor(const char *kind, const char *name, int64_t count) {
    char key[64];
    snprintf(key, sizeof key, "%s.%s", kind, name);
    const hs_sd_entry *e = test_entry(&fixture, key);
    int64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) numel *= e->shape[i];
    if (numel != count) {
        fprintf(stderr, "fixture %s has %lld values, not %lld\n", key, (long long)numel,
                (long long)count);
        exit(1);
    }
    return e->data;
}

static void nan_fill(float *v, int64_t count) {
    for (int64_t i = 0; i < count; i++) v[i] = NAN;
}

static hs_layer layer_of(hs_layer_kind kind) {
    hs_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    snprintf(l.name, sizeof l.name, "test");
    return l;
}

/* y = f(x) through the kind's forward (inference mode). */
static void forward(hs_layer *l, const float *x, const float *gate, float *y) {
    hs_error err = {0};
    hs_forward_args a = {x, shape, y, shape, N, 0, NULL, NULL, NULL, gate, {5, 1, 1},
                         NULL, 0, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(hs_layer_ops_of(l->kind)->forward(l, &a, &err) == HS_OK, "%s", err.message);
}

static void backward(hs_layer *l, const float *x, const float *y, const float *gate,
                     const float *dy, float *dx, float *dgate) {
    hs_error err = {0};
    hs_backward_args a = {x, shape, y, shape, N, dy, dx, 1, NULL, NULL, gate, {5, 1, 1}, dgate,
                          HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK_MSG(hs_layer_ops_of(l->kind)->backward(l, &a, &err) == HS_OK, "%s", err.message);
}

/* sum(dy * f(x)) in double, f the kind's forward. */
static double loss_of(hs_layer *l, const float *x, const float *gate, const float *dy) {
    float y[COUNT];
    forward(l, x, gate, y);
    double sum = 0;
    for (int i = 0; i < COUNT; i++) sum += (double)dy[i] * y[i];
    return sum;
}

static double fd_worst = 0; /* worst |error| / allowed over every finite-difference check */

/* Central differences of loss_of in each of count values (x or gate, which loss reads). */
static void check_fd(const char *what, hs_layer *l, float *x, float *gate, const float *dy,
                     float *values, int count, const float *grad, float step, double atol,
                     int skip_kinks) {
    int bad = 0, checked = 0;
    for (int i = 0; i < count; i++) {
        float orig = values[i];
        /* A kink within two steps: PyTorch's one-sided definition is checked instead. */
        if (skip_kinks && (fabsf(orig + 3.0f) < 2 * step || fabsf(orig - 3.0f) < 2 * step))
            continue;
        values[i] = orig + step;
        double up = (double)values[i] - orig, l_up = loss_of(l, x, gate, dy);
        values[i] = orig - step;
        double down = orig - (double)values[i], l_down = loss_of(l, x, gate, dy);
        values[i] = orig;
        double fd = (l_up - l_down) / (up + down), diff = fabs(fd - grad[i]);
        double allowed = atol + FD_RTOL * fabs(fd);
        if (diff / allowed > fd_worst) fd_worst = diff / allowed;
        if (!(diff <= allowed)) {
            if (bad++ < 3)
                fprintf(stderr, "%s: value %d (%g): gradient %.8g, finite difference %.8g\n",
                        what, i, orig, grad[i], fd);
        }
        checked++;
    }
    CHECK_MSG(bad == 0, "%s: %d of %d gradients differ from finite differences", what, bad,
              checked);
    CHECK(checked > count / 2);
}

static void test_activation(const char *kind_name, hs_layer_kind kind, int kinks) {
    hs_layer l = layer_of(kind);
    CHECK(strcmp(hs_layer_ops_of(kind)->kind_name, kind_name) == 0);
    CHECK(hs_layer_ops_of(kind)->check_edge == NULL && hs_layer_ops_of(kind)->params == NULL);
    float x[COUNT], y[COUNT], dx[COUNT];
    memcpy(x, tensor(kind_name, "x", COUNT), sizeof x);
    const float *dy = tensor(kind_name, "dy", COUNT);
    char what[96];

    nan_fill(y, COUNT);
    forward(&l, x, NULL, y);
    snprintf(what, sizeof what, "%s: forward vs PyTorch", kind_name);
    CHECK_CLOSE(what, y, tensor(kind_name, "y", COUNT), COUNT, PT_RTOL, PT_ATOL);
    nan_fill(dx, COUNT);
    backward(&l, x, y, NULL, dy, dx, NULL);
    snprintf(what, sizeof what, "%s: backward vs PyTorch", kind_name);
    CHECK_CLOSE(what, dx, tensor(kind_name, "dx", COUNT), COUNT, PT_RTOL, PT_ATOL);
    backward(&l, x, y, NULL, dy, NULL, NULL); /* no dx wanted: nothing written, no crash */

    snprintf(what, sizeof what, "%s: backward vs finite differences", kind_name);
    check_fd(what, &l, x, NULL, dy, x, COUNT, dx, FD_STEP, FD_ATOL, kinks);
    CHECK(memcmp(x, tensor(kind_name, "x", COUNT), sizeof x) == 0); /* restored */
}

static void test_scale(void) {
    hs_layer l = layer_of(HS_LAYER_SCALE);
    const hs_layer_ops *ops = hs_layer_ops_of(HS_LAYER_SCALE);
    float x[COUNT], gate[PLANES], y[COUNT], dx[COUNT], dgate[PLANES];
    memcpy(x, tensor("scale", "x", COUNT), sizeof x);
    memcpy(gate, tensor("scale", "s", PLANES), sizeof gate);
    const float *dy = tensor("scale", "dy", COUNT);
    hs_error err = {0};

    nan_fill(y, COUNT);
    forward(&l, x, gate, y);
    CHECK_CLOSE("scale: forward vs PyTorch", y, tensor("scale", "y", COUNT), COUNT, PT_RTOL,
                PT_ATOL);
    nan_fill(dx, COUNT);
    for (int i = 0; i < PLANES; i++) dgate[i] = 1.0f; /* accumulated onto */
    backward(&l, x, y, gate, dy, dx, dgate);
    CHECK_CLOSE("scale: dx vs PyTorch", dx, tensor("scale", "dx", COUNT), COUNT, PT_RTOL,
                PT_ATOL);
    float want[PLANES];
    const float *ds = tensor("scale", "ds", PLANES);
    for (int i = 0; i < PLANES; i++) want[i] = ds[i] + 1.0f;
    CHECK_CLOSE("scale: gate gradient accumulated vs PyTorch", dgate, want, PLANES, PT_RTOL,
                1e-6f);

    /* Each output alone, and the gradient of the gate alone from zero. */
    float only[PLANES] = {0};
    backward(&l, x, y, gate, dy, NULL, only);
    CHECK_CLOSE("scale: gate gradient without dx", only, ds, PLANES, PT_RTOL, PT_ATOL);
    nan_fill(dx, COUNT);
    backward(&l, x, y, gate, dy, dx, NULL);
    CHECK_CLOSE("scale: dx without the gate's", dx, tensor("scale", "dx", COUNT), COUNT,
                PT_RTOL, PT_ATOL);

    check_fd("scale: dx vs finite differences", &l, x, gate, dy, x, COUNT, dx, FD_STEP_LINEAR,
             FD_ATOL_LINEAR, 0);
    check_fd("scale: gate gradient vs finite differences", &l, x, gate, dy, gate, PLANES, only,
             FD_STEP_LINEAR, FD_ATOL_LINEAR, 0);

    CHECK(ops->check_edge(&l, shape, (hs_act_shape){5, 1, 1}, &err) == HS_OK);
    CHECK(ops->check_edge(&l, shape, (hs_act_shape){4, 1, 1}, &err) == HS_ERR_ARGUMENT);
    CHECK_MSG(strstr(err.message, "4x1x1") != NULL, "%s", err.message);
    CHECK(ops->check_edge(&l, shape, (hs_act_shape){5, 3, 4}, &err) == HS_ERR_ARGUMENT);
    hs_forward_args a = {x, shape, y, shape, N, 0, NULL, NULL, NULL, NULL, {0, 0, 0},
                         NULL, 0, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    CHECK(ops->forward(&l, &a, &err) == HS_ERR_INTERNAL); /* no gate: refused, not read */
}

int main(void) {
    test_load_fixture(HS_FIXTURES_DIR "/grads_mobile.safetensors", &fixture);
    test_activation("sigmoid", HS_LAYER_SIGMOID, 0);
    test_activation("silu", HS_LAYER_SILU, 0);
    test_activation("hardswish", HS_LAYER_HARDSWISH, 1);
    test_activation("hardsigmoid", HS_LAYER_HARDSIGMOID, 1);
    test_scale();
    printf("finite differences: worst error %.3f of the allowed\n", fd_worst);
    hs_sd_free(&fixture);
    return check_finish("test_layers_mobile");
}
