/* The fast backward kernels (src/ops_grad_dnnl.c, oneDNN) against the reference backward
 * kernels (src/ops_ref_grad.c), on the configurations of tests/fixtures/grads.safetensors and
 * larger ones shaped like the backbones' layers.
 *
 * Tolerance |fast - ref| <= 1e-4 * |ref| + 1e-5 (oneDNN sums in float, in its own order; the
 * reference sums in double). Upstream gradients are scaled by 1/sqrt(number of terms in the
 * weight gradient's sums), so every gradient compared is O(1) whatever the layer size, as in
 * a trained network, and the absolute part of the tolerance keeps its meaning. ReLU, ReLU6
 * and max pooling's forward move values without arithmetic: they must match exactly. Max
 * pooling's backward must route every gradient to the same pixel (ties included): checked
 * bit for bit with upstream gradients whose sums are exact in float; with arbitrary ones a
 * pixel picked by several windows sums in float here and in double in the reference, as
 * average pooling does: 1e-6 relative + 1e-7 absolute.
 *
 * Each plan is run twice (the second run reuses it), onto parameter-gradient accumulators
 * that start from random values, and once more with NULL outputs. The kernels each plan chose
 * are printed, so a run under ONEDNN_MAX_CPU_ISA=... shows what it exercised.
 *
 * Blocked layouts (the training tape's nChw16c and nChw8c, both checked whatever this CPU
 * uses): the same plans made for them, fed the same values reordered, give the same results
 * within the same tolerance once reordered back, and leave the padding channels of every
 * activation they write zero. Without oneDNN a blocked plan is refused (NULL). */
#include <string.h>

#include "check.h"
#include "ops_grad.h"
#include "rng.h"
#include "test_util.h"

#define RTOL 1e-4f
#define ATOL 1e-5f

static hs_rng rng;

static float *copy_floats(const float *src, int64_t count) {
    float *p = test_alloc_floats(count);
    memcpy(p, src, (size_t)count * sizeof(float));
    return p;
}

static void fill_nan(float *p, int64_t count) {
    for (int64_t i = 0; i < count; i++) p[i] = NAN;
}

static const char *layout_name(hs_layout layout) {
    return layout == HS_LAYOUT_NCHW16C ? "nChw16c" : layout == HS_LAYOUT_NCHW8C ? "nChw8c" : "nchw";
}

/* An NCHW array reordered into a layout (a new allocation). */
static float *to_layout(const float *nchw, hs_layout layout, int n, int c, int h, int w) {
    float *p = test_alloc_floats(hs_layout_size(layout, n, c, h, w));
    CHECK(hs_layout_convert(nchw, HS_LAYOUT_NCHW, p, layout, n, c, h, w) == 0);
    return p;
}

/* Compares `got` (in a layout) with the NCHW `want` and checks its padding channels are 0. */
static void check_in_layout(const char *what, const float *got, hs_layout layout, int n, int c,
                            int h, int w, const float *want, float rtol, float atol) {
    const int64_t count = (int64_t)n * c * h * w, hw = (int64_t)h * w;
    float *plain = test_alloc_floats(count);
    CHECK(hs_layout_convert(got, layout, plain, HS_LAYOUT_NCHW, n, c, h, w) == 0);
    CHECK_CLOSE(what, plain, want, count, rtol, atol);
    const int block = hs_layout_block(layout), padded = (c + block - 1) / block * block;
    int64_t nonzero = 0;
    for (int b = 0; b < n; b++)
        for (int ch = c; ch < padded; ch++)
            for (int64_t i = 0; i < hw; i++)
                nonzero += got[hs_layout_index(block, c, (int)hw, b, ch, i)] != 0.0f;
    CHECK_MSG(nonzero == 0, "%s: %lld padding values not zero", what, (long long)nonzero);
    free(plain);
}

/* ---- convolution --------------------------------------------------------------------------- */

typedef struct conv_case {
    const char *name;
    int n, in_c, out_c, h, w, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups;
} conv_case;

static const conv_case conv_cases[] = {
    /* the 11 configurations of the fixtures (tools/make_grad_fixtures.py) */
    {"conv_k3_p1", 2, 3, 4, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv_k3_s2", 2, 3, 4, 9, 8, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1},
    {"conv_k5_s2_same", 2, 3, 4, 12, 11, 5, 5, 2, 2, 1, 2, 2, 2, 1, 1, 1},
    {"conv_k1", 2, 6, 5, 5, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {"conv_dw_k3", 2, 4, 4, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4},
    {"conv_dw_k5_s2_same", 2, 4, 4, 10, 9, 5, 5, 2, 2, 1, 2, 2, 2, 1, 1, 4},
    {"conv_dw_mult2", 2, 3, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3},
    {"conv_groups2", 2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
    {"conv_dil2", 2, 3, 4, 10, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},
    {"conv_k3x1", 2, 3, 4, 7, 6, 3, 1, 2, 1, 1, 1, 0, 0, 1, 1, 1},
    {"conv_asym", 2, 2, 3, 6, 7, 2, 3, 1, 2, 0, 1, 2, 0, 1, 2, 1},
    /* larger, shaped like backbone layers */
    {"8x32x28x28 3x3", 8, 32, 32, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"8x32x28x28 depthwise 3x3 s2 SAME", 8, 32, 32, 28, 28, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 32},
    {"4x24x14x14 1x1 24->144", 4, 24, 144, 14, 14, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
    {"4x40x14x14 depthwise 5x5 SAME", 4, 40, 40, 14, 14, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 40},
    {"2x3x32x32 stem 3x3 s2 SAME", 2, 3, 32, 32, 32, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 1},
    {"6x3x32x32 stem 3x3 s2 SAME", 6, 3, 32, 32, 32, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 1},
    {"2x16x12x12 groups 4", 2, 16, 32, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4},
    {"2x8x13x13 dilated 2 stride 2", 2, 8, 8, 13, 13, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1},
    /* depthwise kernels oneDNN has no jit weight gradient for (the plan's direct loops) */
    {"2x12x15x14 dw 5x5 s2 dil 2 asym", 2, 12, 12, 15, 14, 5, 5, 2, 2, 3, 4, 4, 3, 2, 2, 12},
    {"2x8x11x11 dw 7x7 SAME", 2, 8, 8, 11, 11, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, 8},
    {"2x16x9x10 dw 3x5 s(1,2)", 2, 16, 16, 9, 10, 3, 5, 1, 2, 1, 1, 2, 2, 1, 1, 16},
};

/* A case's convolution shape, output size and element counts. */
typedef struct conv_dims {
    hs_conv2d_shape s;
    int oh, ow;
    int64_t x_count, w_count, y_count;
} conv_dims;

static conv_dims dims_of(const conv_case *c) {
    conv_dims d = {{c->in_c, c->out_c, c->kh, c->kw, c->sh, c->sw, c->pt, c->pb, c->pl, c->pr,
                    c->dh, c->dw, c->groups}, 0, 0, 0, 0, 0};
    d.oh = hs_conv_out_size(c->h, c->kh, c->sh, c->pt, c->pb, c->dh);
    d.ow = hs_conv_out_size(c->w, c->kw, c->sw, c->pl, c->pr, c->dw);
    d.x_count = (int64_t)c->n * c->in_c * c->h * c->w;
    d.w_count = (int64_t)c->out_c * (c->in_c / c->groups) * c->kh * c->kw;
    d.y_count = (int64_t)c->n * c->out_c * d.oh * d.ow;
    return d;
}

static void check_conv(const conv_case *c) {
    const conv_dims d = dims_of(c);
    const hs_conv2d_shape s = d.s;
    const int oh = d.oh, ow = d.ow;
    const int64_t x_count = d.x_count, w_count = d.w_count, y_count = d.y_count;
    const float dy_scale = 1.0f / sqrtf((float)c->n * oh * ow);
    float *x = test_random_floats(&rng, x_count, -1, 1), *weight = test_random_floats(&rng, w_count, -1, 1);
    float *dy = test_random_floats(&rng, y_count, -dy_scale, dy_scale);
    float *dw0 = test_random_floats(&rng, w_count, -1, 1), *db0 = test_random_floats(&rng, c->out_c, -1, 1);

    float *dx_ref = test_alloc_floats(x_count), *dw_ref = copy_floats(dw0, w_count);
    float *db_ref = copy_floats(db0, c->out_c);
    hs_conv2d_backward_ref(x, c->n, c->h, c->w, weight, &s, dy, dx_ref, dw_ref, db_ref);

    hs_conv_grad_plan *plan =
        hs_conv_grad_plan_create(&s, c->n, c->h, c->w, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW);
    CHECK(plan != NULL);
    if (!plan) return;
    CHECK(hs_conv_grad_plan_matches(plan, &s, c->n, c->h, c->w, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW));
    CHECK(!hs_conv_grad_plan_matches(plan, &s, c->n, c->h, c->w, HS_LAYOUT_NCHW,
                                     HS_LAYOUT_NCHW16C));
    printf("  conv %-34s %s%s\n", c->name, hs_conv_grad_plan_impl(plan),
           hs_conv_grad_plan_uses_dnnl(plan) ? "" : " (fallback)");
    float *dx = test_alloc_floats(x_count), *dw = copy_floats(dw0, w_count);
    float *db = copy_floats(db0, c->out_c);
    char what[128];
    /* forward with the current weights, with and without bias; a changed weight is seen */
    float *y_ref = test_alloc_floats(y_count), *y = test_alloc_floats(y_count);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, with_bias ? db0 : NULL, &s, y_ref);
        fill_nan(y, y_count);
        CHECK(hs_conv_grad_plan_forward(plan, x, weight, with_bias ? db0 : NULL, y) == 0);
        snprintf(what, sizeof what, "%s forward%s", c->name, with_bias ? " with bias" : "");
        CHECK_CLOSE(what, y, y_ref, y_count, RTOL, ATOL);
    }
    weight[0] += 0.5f;
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, NULL, &s, y_ref);
    CHECK(hs_conv_grad_plan_forward(plan, x, weight, NULL, y) == 0);
    snprintf(what, sizeof what, "%s forward after a weight update", c->name);
    CHECK_CLOSE(what, y, y_ref, y_count, RTOL, ATOL);
    weight[0] -= 0.5f;
    free(y_ref);
    free(y);
    for (int rep = 0; rep < 2; rep++) {
        fill_nan(dx, x_count);
        memcpy(dw, dw0, (size_t)w_count * sizeof(float));
        memcpy(db, db0, (size_t)c->out_c * sizeof(float));
        CHECK(hs_conv_grad_plan_run(plan, x, weight, dy, dx, dw, db) == 0);
        snprintf(what, sizeof what, "%s dx (run %d)", c->name, rep);
        CHECK_CLOSE(what, dx, dx_ref, x_count, RTOL, ATOL);
        snprintf(what, sizeof what, "%s dweight (run %d)", c->name, rep);
        CHECK_CLOSE(what, dw, dw_ref, w_count, RTOL, ATOL);
        snprintf(what, sizeof what, "%s dbias (run %d)", c->name, rep);
        CHECK_CLOSE(what, db, db_ref, c->out_c, RTOL, ATOL);
    }
    /* NULL skips: dx alone, then the weight gradient alone, then the bias alone */
    fill_nan(dx, x_count);
    CHECK(hs_conv_grad_plan_run(plan, x, weight, dy, dx, NULL, NULL) == 0);
    snprintf(what, sizeof what, "%s dx alone", c->name);
    CHECK_CLOSE(what, dx, dx_ref, x_count, RTOL, ATOL);
    memcpy(dw, dw0, (size_t)w_count * sizeof(float));
    CHECK(hs_conv_grad_plan_run(plan, x, weight, dy, NULL, dw, NULL) == 0);
    snprintf(what, sizeof what, "%s dweight alone", c->name);
    CHECK_CLOSE(what, dw, dw_ref, w_count, RTOL, ATOL);
    memcpy(db, db0, (size_t)c->out_c * sizeof(float));
    CHECK(hs_conv_grad_plan_run(plan, x, weight, dy, NULL, NULL, db) == 0);
    snprintf(what, sizeof what, "%s dbias alone", c->name);
    CHECK_CLOSE(what, db, db_ref, c->out_c, RTOL, ATOL);
    hs_conv_grad_plan_free(plan);

    free(x);
    free(weight);
    free(dy);
    free(dw0);
    free(db0);
    free(dx_ref);
    free(dw_ref);
    free(db_ref);
    free(dx);
    free(dw);
    free(db);
}

/* The same convolution with x / dx in `src` and y / dy in `dst` (blocked layouts). */
static void check_conv_layout(const conv_case *c, hs_layout src, hs_layout dst) {
    const conv_dims d = dims_of(c);
    const hs_conv2d_shape s = d.s;
    const int oh = d.oh, ow = d.ow;
    const int64_t x_count = d.x_count, w_count = d.w_count, y_count = d.y_count;
    hs_conv_grad_plan *plan = hs_conv_grad_plan_create(&s, c->n, c->h, c->w, src, dst);
    char what[160];
    snprintf(what, sizeof what, "%s %s -> %s", c->name, layout_name(src), layout_name(dst));
    if (hs_grad_plans_layout() == HS_LAYOUT_NCHW) { /* oneDNN off: refused */
        CHECK_MSG(plan == NULL, "%s: a blocked plan without oneDNN", what);
        hs_conv_grad_plan_free(plan);
        return;
    }
    CHECK_MSG(plan != NULL, "%s: no plan", what);
    if (!plan) return;
    CHECK(hs_conv_grad_plan_matches(plan, &s, c->n, c->h, c->w, src, dst));
    printf("  conv %-50s %s\n", what, hs_conv_grad_plan_impl(plan));
    const float dy_scale = 1.0f / sqrtf((float)c->n * oh * ow);
    float *x = test_random_floats(&rng, x_count, -1, 1), *weight = test_random_floats(&rng, w_count, -1, 1);
    float *bias = test_random_floats(&rng, c->out_c, -1, 1);
    float *dy = test_random_floats(&rng, y_count, -dy_scale, dy_scale);
    float *dw0 = test_random_floats(&rng, w_count, -1, 1), *db0 = test_random_floats(&rng, c->out_c, -1, 1);
    float *y_ref = test_alloc_floats(y_count), *dx_ref = test_alloc_floats(x_count);
    float *dw_ref = copy_floats(dw0, w_count), *db_ref = copy_floats(db0, c->out_c);
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, bias, &s, y_ref);
    hs_conv2d_backward_ref(x, c->n, c->h, c->w, weight, &s, dy, dx_ref, dw_ref, db_ref);

    float *xl = to_layout(x, src, c->n, c->in_c, c->h, c->w);
    float *dyl = to_layout(dy, dst, c->n, c->out_c, oh, ow);
    float *yl = test_alloc_floats(hs_layout_size(dst, c->n, c->out_c, oh, ow));
    float *dxl = test_alloc_floats(hs_layout_size(src, c->n, c->in_c, c->h, c->w));
    float *dw = test_alloc_floats(w_count), *db = test_alloc_floats(c->out_c);
    char label[200];
    for (int rep = 0; rep < 2; rep++) {
        memcpy(dw, dw0, (size_t)w_count * sizeof(float));
        memcpy(db, db0, (size_t)c->out_c * sizeof(float));
        fill_nan(yl, hs_layout_size(dst, c->n, c->out_c, oh, ow));
        fill_nan(dxl, hs_layout_size(src, c->n, c->in_c, c->h, c->w));
        CHECK(hs_conv_grad_plan_forward(plan, xl, weight, bias, yl) == 0);
        CHECK(hs_conv_grad_plan_run(plan, xl, weight, dyl, dxl, dw, db) == 0);
        snprintf(label, sizeof label, "%s forward (run %d)", what, rep);
        check_in_layout(label, yl, dst, c->n, c->out_c, oh, ow, y_ref, RTOL, ATOL);
        snprintf(label, sizeof label, "%s dx (run %d)", what, rep);
        check_in_layout(label, dxl, src, c->n, c->in_c, c->h, c->w, dx_ref, RTOL, ATOL);
        snprintf(label, sizeof label, "%s dweight (run %d)", what, rep);
        CHECK_CLOSE(label, dw, dw_ref, w_count, RTOL, ATOL);
        snprintf(label, sizeof label, "%s dbias (run %d)", what, rep);
        CHECK_CLOSE(label, db, db_ref, c->out_c, RTOL, ATOL);
    }
    hs_conv_grad_plan_free(plan);
    float *arrays[] = {x, weight, bias, dy, dw0, db0, y_ref, dx_ref, dw_ref, db_ref, xl, dyl,
                       yl, dxl, dw, db};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* ---- convolution in bfloat16 (hs_conv_grad_plan_create_prec) ------------------------------
 * Bound, element by element: |fast - ref| <= BF16_BOUND * S + 1e-6, where S is the sum of the
 * absolute values of the terms that value sums (the same convolution on |x|, |weight|, |dy|:
 * sum |x||w| for y, sum |dy||w| for dx, sum |x||dy| for dweight, sum |dy| for dbias). bf16
 * keeps 8 significant bits: converting a factor moves it by at most 2^-9 relative when
 * rounded to nearest, 2^-8 when truncated; a product of two converted factors by at most
 * (1 + 2^-8)^2 - 1 < 7.85e-3, and the float32 sums of these small dot products add ~1e-6.
 * Round-to-nearest alone would give 3.92e-3, but oneDNN 2.6's bf16 backward-data kernels
 * were seen at 5.1e-3 S (1x1 and strided cases), so the bound allows either rounding:
 * 8e-3 S, whatever the terms' signs (cancellation makes the error large relative to the
 * value, not to S). dbias is summed from the converted dy: one factor, 4e-3 S. A plan that ran
 * bf16 must also show bf16 rounding (y's error above 1e-5 relative in norm, where float32
 * gives ~1e-7; seen ~2e-3): the check that it did. */
#define BF16_BOUND 8e-3

/* its own random stream: the float32 checks keep the values they always drew */
static hs_rng bf16_rng;

static void check_bf16_bound(const char *what, const float *got, const float *want,
                             const float *abs_sum, int64_t count, double rel) {
    int64_t bad = 0, worst = 0;
    double worst_ratio = 0;
    for (int64_t i = 0; i < count; i++) {
        double diff = fabs((double)got[i] - want[i]), allowed = rel * abs_sum[i] + 1e-6;
        if (!(diff <= allowed)) bad++;
        if (!(diff / allowed <= worst_ratio)) {
            worst_ratio = diff / allowed;
            worst = i;
        }
    }
    CHECK_MSG(bad == 0, "%s: %lld of %lld values beyond the bf16 bound; worst at %lld: %.8g vs "
              "%.8g (sum of |terms| %.4g)", what, (long long)bad, (long long)count,
              (long long)worst, got[worst], want[worst], abs_sum[worst]);
}

/* ||a - b|| / ||b|| */
static double norm_rel(const float *a, const float *b, int64_t count) {
    double d = 0, n = 0;
    for (int64_t i = 0; i < count; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        n += (double)b[i] * b[i];
    }
    return sqrt(d / (n + 1e-300));
}

static float *abs_copy(const float *p, int64_t count) {
    float *q = test_alloc_floats(count);
    for (int64_t i = 0; i < count; i++) q[i] = fabsf(p[i]);
    return q;
}

/* A bf16 plan in src / dst layouts against the float32 reference (bound above). Where oneDNN
 * has no bf16 convolutions (below AVX-512) the plan must be float32 and give exactly what the
 * float32 plan gives; depthwise plans are float32 (ops_grad.h) and checked the same way. */
static void check_conv_bf16(const conv_case *c, hs_layout src, hs_layout dst) {
    const conv_dims d = dims_of(c);
    const hs_conv2d_shape s = d.s;
    const int oh = d.oh, ow = d.ow;
    const int64_t x_count = d.x_count, w_count = d.w_count, y_count = d.y_count;
    char what[160], label[200];
    snprintf(what, sizeof what, "bf16 %s %s -> %s", c->name, layout_name(src), layout_name(dst));
    hs_conv_grad_plan *plan = hs_conv_grad_plan_create_prec(&s, c->n, c->h, c->w, src, dst, 1);
    hs_conv_grad_plan *f32 = hs_conv_grad_plan_create(&s, c->n, c->h, c->w, src, dst);
    if (hs_grad_plans_layout() == HS_LAYOUT_NCHW && (src != HS_LAYOUT_NCHW || dst != HS_LAYOUT_NCHW)) {
        CHECK_MSG(plan == NULL, "%s: a blocked plan without oneDNN", what);
        hs_conv_grad_plan_free(plan);
        hs_conv_grad_plan_free(f32);
        return;
    }
    CHECK_MSG(plan != NULL && f32 != NULL, "%s: no plan", what);
    if (!plan || !f32) {
        hs_conv_grad_plan_free(plan);
        hs_conv_grad_plan_free(f32);
        return;
    }
    const int want_bf16 = hs_conv_grad_plan_uses_dnnl(f32) && hs_dnnl_bf16_support() > 0 &&
                          !(c->groups == c->in_c && c->groups == c->out_c && c->groups > 1);
    CHECK_MSG(hs_conv_grad_plan_bf16(plan) == want_bf16, "%s: bf16 %d, expected %d", what,
              hs_conv_grad_plan_bf16(plan), want_bf16);
    printf("  conv %-54s %s%s\n", what, hs_conv_grad_plan_impl(plan),
           hs_conv_grad_plan_bf16(plan) ? "" : " (float32)");
    const float dy_scale = 1.0f / sqrtf((float)c->n * oh * ow);
    float *x = test_random_floats(&bf16_rng, x_count, -1, 1), *weight = test_random_floats(&bf16_rng, w_count, -1, 1);
    float *bias = test_random_floats(&bf16_rng, c->out_c, -1, 1);
    float *dy = test_random_floats(&bf16_rng, y_count, -dy_scale, dy_scale);
    float *y_ref = test_alloc_floats(y_count), *dx_ref = test_alloc_floats(x_count);
    float *dw_ref = test_alloc_floats(w_count), *db_ref = test_alloc_floats(c->out_c);
    memset(dw_ref, 0, (size_t)w_count * sizeof(float));
    memset(db_ref, 0, (size_t)c->out_c * sizeof(float));
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, bias, &s, y_ref);
    hs_conv2d_backward_ref(x, c->n, c->h, c->w, weight, &s, dy, dx_ref, dw_ref, db_ref);
    /* the sums of |terms| */
    float *ax = abs_copy(x, x_count), *aw = abs_copy(weight, w_count), *ady = abs_copy(dy, y_count);
    float *ab = abs_copy(bias, c->out_c);
    float *y_abs = test_alloc_floats(y_count), *dx_abs = test_alloc_floats(x_count);
    float *dw_abs = test_alloc_floats(w_count), *db_abs = test_alloc_floats(c->out_c);
    memset(dw_abs, 0, (size_t)w_count * sizeof(float));
    memset(db_abs, 0, (size_t)c->out_c * sizeof(float));
    hs_conv2d_forward_ref(ax, c->n, c->h, c->w, aw, ab, &s, y_abs);
    hs_conv2d_backward_ref(ax, c->n, c->h, c->w, aw, &s, ady, dx_abs, dw_abs, db_abs);

    float *xl = to_layout(x, src, c->n, c->in_c, c->h, c->w);
    float *dyl = to_layout(dy, dst, c->n, c->out_c, oh, ow);
    const int64_t yl_count = hs_layout_size(dst, c->n, c->out_c, oh, ow);
    const int64_t xl_count = hs_layout_size(src, c->n, c->in_c, c->h, c->w);
    float *yl = test_alloc_floats(yl_count), *dxl = test_alloc_floats(xl_count);
    float *y = test_alloc_floats(y_count), *dx = test_alloc_floats(x_count);
    float *dw = test_alloc_floats(w_count), *db = test_alloc_floats(c->out_c);
    for (int rep = 0; rep < 2; rep++) { /* the second run reuses the plan */
        memset(dw, 0, (size_t)w_count * sizeof(float));
        memset(db, 0, (size_t)c->out_c * sizeof(float));
        fill_nan(yl, yl_count);
        fill_nan(dxl, xl_count);
        CHECK(hs_conv_grad_plan_forward(plan, xl, weight, bias, yl) == 0);
        CHECK(hs_conv_grad_plan_run(plan, xl, weight, dyl, dxl, dw, db) == 0);
        CHECK(hs_layout_convert(yl, dst, y, HS_LAYOUT_NCHW, c->n, c->out_c, oh, ow) == 0);
        CHECK(hs_layout_convert(dxl, src, dx, HS_LAYOUT_NCHW, c->n, c->in_c, c->h, c->w) == 0);
        snprintf(label, sizeof label, "%s forward (run %d)", what, rep);
        check_bf16_bound(label, y, y_ref, y_abs, y_count, BF16_BOUND);
        snprintf(label, sizeof label, "%s dx (run %d)", what, rep);
        check_bf16_bound(label, dx, dx_ref, dx_abs, x_count, BF16_BOUND);
        snprintf(label, sizeof label, "%s dweight (run %d)", what, rep);
        check_bf16_bound(label, dw, dw_ref, dw_abs, w_count, BF16_BOUND);
        snprintf(label, sizeof label, "%s dbias (run %d)", what, rep);
        check_bf16_bound(label, db, db_ref, db_abs, c->out_c, 4e-3);
        /* padding channels stay zero (the bound above is met: any tolerance passes here) */
        snprintf(label, sizeof label, "%s y padding", what);
        check_in_layout(label, yl, dst, c->n, c->out_c, oh, ow, y_ref, 1.0f, 1e30f);
        snprintf(label, sizeof label, "%s dx padding", what);
        check_in_layout(label, dxl, src, c->n, c->in_c, c->h, c->w, dx_ref, 1.0f, 1e30f);
    }
    const double y_err = norm_rel(y, y_ref, y_count);
    printf("    forward error %.2e, dx %.2e, dweight %.2e (norm-relative)\n", y_err,
           norm_rel(dx, dx_ref, x_count), norm_rel(dw, dw_ref, w_count));
    if (hs_conv_grad_plan_bf16(plan)) {
        CHECK_MSG(y_err > 1e-5, "%s: forward error %.2e: float32 arithmetic, not bf16", what,
                  y_err);
    } else { /* a float32 plan: exactly the float32 plan's results */
        float *y2 = test_alloc_floats(yl_count), *dx2 = test_alloc_floats(xl_count);
        float *dw2 = test_alloc_floats(w_count), *db2 = test_alloc_floats(c->out_c);
        memset(dw2, 0, (size_t)w_count * sizeof(float));
        memset(db2, 0, (size_t)c->out_c * sizeof(float));
        CHECK(hs_conv_grad_plan_forward(f32, xl, weight, bias, y2) == 0);
        CHECK(hs_conv_grad_plan_run(f32, xl, weight, dyl, dx2, dw2, db2) == 0);
        CHECK_MSG(!memcmp(y2, yl, (size_t)yl_count * sizeof(float)) &&
                      !memcmp(dx2, dxl, (size_t)xl_count * sizeof(float)) &&
                      !memcmp(dw2, dw, (size_t)w_count * sizeof(float)) &&
                      !memcmp(db2, db, (size_t)c->out_c * sizeof(float)),
                  "%s: a float32 fallback that differs from the float32 plan", what);
        free(y2);
        free(dx2);
        free(dw2);
        free(db2);
    }
    hs_conv_grad_plan_free(plan);
    hs_conv_grad_plan_free(f32);
    float *arrays[] = {x, weight, bias, dy, y_ref, dx_ref, dw_ref, db_ref, ax, aw, ady, ab,
                       y_abs, dx_abs, dw_abs, db_abs, xl, dyl, yl, dxl, y, dx, dw, db};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* ---- BatchNorm -------------------------------------------------------------------------------- */

static void check_batchnorm(int n, int c, int hw, float eps, float momentum) {
    const int64_t count = (int64_t)n * c * hw;
    const float dy_scale = 1.0f / sqrtf((float)n * hw);
    float *x = test_random_floats(&rng, count, -2, 3), *gamma = test_random_floats(&rng, c, 0.5f, 1.5f);
    float *beta = test_random_floats(&rng, c, -0.5f, 0.5f);
    float *dy = test_random_floats(&rng, count, -dy_scale, dy_scale);
    float *rm0 = test_random_floats(&rng, c, -0.5f, 0.5f), *rv0 = test_random_floats(&rng, c, 0.2f, 2.0f);
    float *dg0 = test_random_floats(&rng, c, -1, 1), *db0 = test_random_floats(&rng, c, -1, 1);

    float *y_ref = test_alloc_floats(count), *mean_ref = test_alloc_floats(c), *rstd_ref = test_alloc_floats(c);
    float *rm_ref = copy_floats(rm0, c), *rv_ref = copy_floats(rv0, c);
    float *dx_ref = test_alloc_floats(count), *dg_ref = copy_floats(dg0, c), *db_ref = copy_floats(db0, c);
    hs_batchnorm_train_forward_ref(x, n, c, hw, gamma, beta, eps, momentum, rm_ref, rv_ref,
                                   mean_ref, rstd_ref, y_ref);
    hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, mean_ref, rstd_ref, dx_ref, dg_ref,
                                    db_ref);

    hs_bn_grad_plan *plan = hs_bn_grad_plan_create(n, c, hw, eps, HS_LAYOUT_NCHW);
    CHECK(plan != NULL);
    if (!plan) return;
    CHECK(hs_bn_grad_plan_matches(plan, n, c, hw, eps, HS_LAYOUT_NCHW));
    char what[128];
    snprintf(what, sizeof what, "bn %dx%dx%d", n, c, hw);
    printf("  %-39s %s%s\n", what, hs_bn_grad_plan_impl(plan),
           hs_bn_grad_plan_uses_dnnl(plan) ? "" : " (fallback)");
    float *y = test_alloc_floats(count), *mean = test_alloc_floats(c), *rstd = test_alloc_floats(c);
    float *rm = test_alloc_floats(c), *rv = test_alloc_floats(c);
    float *dx = test_alloc_floats(count), *dg = test_alloc_floats(c), *db = test_alloc_floats(c);
    for (int rep = 0; rep < 2; rep++) {
        fill_nan(y, count);
        fill_nan(dx, count);
        memcpy(rm, rm0, (size_t)c * sizeof(float));
        memcpy(rv, rv0, (size_t)c * sizeof(float));
        memcpy(dg, dg0, (size_t)c * sizeof(float));
        memcpy(db, db0, (size_t)c * sizeof(float));
        CHECK(hs_bn_grad_plan_forward(plan, x, gamma, beta, momentum, rm, rv, mean, rstd, y) == 0);
        CHECK(hs_bn_grad_plan_backward(plan, x, dy, gamma, mean, rstd, dx, dg, db) == 0);
        snprintf(what, sizeof what, "bn %dx%dx%d y", n, c, hw);
        CHECK_CLOSE(what, y, y_ref, count, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d save_mean", n, c, hw);
        CHECK_CLOSE(what, mean, mean_ref, c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d save_rstd", n, c, hw);
        CHECK_CLOSE(what, rstd, rstd_ref, c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d running_mean", n, c, hw);
        CHECK_CLOSE(what, rm, rm_ref, c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d running_var", n, c, hw);
        CHECK_CLOSE(what, rv, rv_ref, c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d dx", n, c, hw);
        CHECK_CLOSE(what, dx, dx_ref, count, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d dgamma", n, c, hw);
        CHECK_CLOSE(what, dg, dg_ref, c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn %dx%dx%d dbeta", n, c, hw);
        CHECK_CLOSE(what, db, db_ref, c, RTOL, ATOL);
    }
    /* NULL skips: no running statistics; parameter gradients without dx; dx alone */
    memcpy(rm, rm0, (size_t)c * sizeof(float));
    CHECK(hs_bn_grad_plan_forward(plan, x, gamma, beta, momentum, NULL, NULL, mean, rstd, y) == 0);
    snprintf(what, sizeof what, "bn %dx%dx%d y without running stats", n, c, hw);
    CHECK_CLOSE(what, y, y_ref, count, RTOL, ATOL);
    memcpy(dg, dg0, (size_t)c * sizeof(float));
    memcpy(db, db0, (size_t)c * sizeof(float));
    CHECK(hs_bn_grad_plan_backward(plan, x, dy, gamma, mean, rstd, NULL, dg, db) == 0);
    snprintf(what, sizeof what, "bn %dx%dx%d dgamma without dx", n, c, hw);
    CHECK_CLOSE(what, dg, dg_ref, c, RTOL, ATOL);
    fill_nan(dx, count);
    CHECK(hs_bn_grad_plan_backward(plan, x, dy, gamma, mean, rstd, dx, NULL, NULL) == 0);
    snprintf(what, sizeof what, "bn %dx%dx%d dx alone", n, c, hw);
    CHECK_CLOSE(what, dx, dx_ref, count, RTOL, ATOL);
    hs_bn_grad_plan_free(plan);

    /* frozen statistics: the threaded kernel against its reference */
    float *var = test_random_floats(&rng, c, 0.2f, 2.0f);
    memcpy(dg_ref, dg0, (size_t)c * sizeof(float));
    memcpy(db_ref, db0, (size_t)c * sizeof(float));
    memcpy(dg, dg0, (size_t)c * sizeof(float));
    memcpy(db, db0, (size_t)c * sizeof(float));
    hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, rm0, var, eps, dx_ref, dg_ref, db_ref);
    fill_nan(dx, count);
    hs_batchnorm_frozen_backward(x, dy, HS_LAYOUT_NCHW, n, c, hw, gamma, rm0, var, eps, dx,
                                 dg, db);
    snprintf(what, sizeof what, "bn frozen %dx%dx%d dx", n, c, hw);
    CHECK_CLOSE(what, dx, dx_ref, count, RTOL, ATOL);
    snprintf(what, sizeof what, "bn frozen %dx%dx%d dgamma", n, c, hw);
    CHECK_CLOSE(what, dg, dg_ref, c, RTOL, ATOL);
    snprintf(what, sizeof what, "bn frozen %dx%dx%d dbeta", n, c, hw);
    CHECK_CLOSE(what, db, db_ref, c, RTOL, ATOL);
    memcpy(db, db0, (size_t)c * sizeof(float));
    hs_batchnorm_frozen_backward(x, dy, HS_LAYOUT_NCHW, n, c, hw, gamma, rm0, var, eps, NULL,
                                 NULL, db);
    snprintf(what, sizeof what, "bn frozen %dx%dx%d dbeta alone", n, c, hw);
    CHECK_CLOSE(what, db, db_ref, c, RTOL, ATOL);

    /* the blocked layouts: batch statistics (oneDNN), frozen forward and backward (loops) */
    hs_layout layouts[] = {HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW8C};
    for (int li = 0; li < 2; li++) {
        hs_layout lay = layouts[li];
        const char *ln = layout_name(lay);
        hs_bn_grad_plan *bp = hs_bn_grad_plan_create(n, c, hw, eps, lay);
        if (hs_grad_plans_layout() == HS_LAYOUT_NCHW) {
            CHECK_MSG(bp == NULL, "bn %s: a blocked plan without oneDNN", ln);
            hs_bn_grad_plan_free(bp);
        } else {
            CHECK(bp != NULL);
            if (!bp) continue;
            snprintf(what, sizeof what, "bn %dx%dx%d %s", n, c, hw, ln);
            printf("  %-39s %s\n", what, hs_bn_grad_plan_impl(bp));
            float *xl = to_layout(x, lay, n, c, 1, hw), *dyl = to_layout(dy, lay, n, c, 1, hw);
            int64_t lcount = hs_layout_size(lay, n, c, 1, hw);
            float *yl = test_alloc_floats(lcount), *dxl = test_alloc_floats(lcount);
            memcpy(rm, rm0, (size_t)c * sizeof(float));
            memcpy(rv, rv0, (size_t)c * sizeof(float));
            memcpy(dg, dg0, (size_t)c * sizeof(float));
            memcpy(db, db0, (size_t)c * sizeof(float));
            hs_batchnorm_train_forward_ref(x, n, c, hw, gamma, beta, eps, momentum, rm_ref, rv_ref,
                                           mean_ref, rstd_ref, y_ref);
            memcpy(rm_ref, rm0, (size_t)c * sizeof(float));
            memcpy(rv_ref, rv0, (size_t)c * sizeof(float));
            hs_batchnorm_train_forward_ref(x, n, c, hw, gamma, beta, eps, momentum, rm_ref, rv_ref,
                                           mean_ref, rstd_ref, y_ref);
            memcpy(dg_ref, dg0, (size_t)c * sizeof(float));
            memcpy(db_ref, db0, (size_t)c * sizeof(float));
            hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, mean_ref, rstd_ref, dx_ref,
                                            dg_ref, db_ref);
            fill_nan(yl, lcount);
            fill_nan(dxl, lcount);
            CHECK(hs_bn_grad_plan_forward(bp, xl, gamma, beta, momentum, rm, rv, mean, rstd, yl) == 0);
            CHECK(hs_bn_grad_plan_backward(bp, xl, dyl, gamma, mean, rstd, dxl, dg, db) == 0);
            char label[320];
            snprintf(label, sizeof label, "%s y", what);
            check_in_layout(label, yl, lay, n, c, 1, hw, y_ref, RTOL, ATOL);
            snprintf(label, sizeof label, "%s running_var", what);
            CHECK_CLOSE(label, rv, rv_ref, c, RTOL, ATOL);
            snprintf(label, sizeof label, "%s dx", what);
            check_in_layout(label, dxl, lay, n, c, 1, hw, dx_ref, RTOL, ATOL);
            snprintf(label, sizeof label, "%s dgamma", what);
            CHECK_CLOSE(label, dg, dg_ref, c, RTOL, ATOL);
            snprintf(label, sizeof label, "%s dbeta", what);
            CHECK_CLOSE(label, db, db_ref, c, RTOL, ATOL);
            hs_bn_grad_plan_free(bp);
            /* frozen statistics */
            hs_batchnorm_forward_ref(x, n, c, hw, gamma, beta, rm0, var, eps, y_ref);
            fill_nan(yl, lcount);
            hs_batchnorm_frozen_forward(xl, lay, n, c, hw, gamma, beta, rm0, var, eps, yl);
            snprintf(label, sizeof label, "%s frozen y", what);
            check_in_layout(label, yl, lay, n, c, 1, hw, y_ref, RTOL, ATOL);
            memcpy(dg_ref, dg0, (size_t)c * sizeof(float));
            memcpy(db_ref, db0, (size_t)c * sizeof(float));
            memcpy(dg, dg0, (size_t)c * sizeof(float));
            memcpy(db, db0, (size_t)c * sizeof(float));
            hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, rm0, var, eps, dx_ref, dg_ref,
                                             db_ref);
            fill_nan(dxl, lcount);
            hs_batchnorm_frozen_backward(xl, dyl, lay, n, c, hw, gamma, rm0, var, eps, dxl, dg, db);
            snprintf(label, sizeof label, "%s frozen dx", what);
            check_in_layout(label, dxl, lay, n, c, 1, hw, dx_ref, RTOL, ATOL);
            snprintf(label, sizeof label, "%s frozen dgamma", what);
            CHECK_CLOSE(label, dg, dg_ref, c, RTOL, ATOL);
            snprintf(label, sizeof label, "%s frozen dbeta", what);
            CHECK_CLOSE(label, db, db_ref, c, RTOL, ATOL);
            /* fused with the ReLU6 / ReLU / a clip at 1 that reads it: batch statistics and
             * frozen, against BatchNorm's reference then the activation's mask */
            const float uppers[] = {6.0f, INFINITY, 1.0f};
            float *z = test_alloc_floats(count), *g = test_alloc_floats(count);
            float *act_ref = test_alloc_floats(count);
            for (int ui = 0; ui < 3; ui++) {
                const float upper = uppers[ui];
                for (int stats = 1; stats >= 0; stats--) {
                    memcpy(rm_ref, rm0, (size_t)c * sizeof(float));
                    memcpy(rv_ref, rv0, (size_t)c * sizeof(float));
                    memcpy(dg_ref, dg0, (size_t)c * sizeof(float));
                    memcpy(db_ref, db0, (size_t)c * sizeof(float));
                    if (stats)
                        hs_batchnorm_train_forward_ref(x, n, c, hw, gamma, beta, eps, momentum,
                                                       rm_ref, rv_ref, mean_ref, rstd_ref, z);
                    else
                        hs_batchnorm_forward_ref(x, n, c, hw, gamma, beta, rm0, rv0, eps, z);
                    for (int64_t i = 0; i < count; i++) {
                        act_ref[i] = z[i] > 0 ? (z[i] < upper ? z[i] : upper) : 0.0f;
                        g[i] = z[i] > 0 && z[i] < upper ? dy[i] : 0.0f;
                    }
                    if (stats)
                        hs_batchnorm_train_backward_ref(x, g, n, c, hw, gamma, mean_ref, rstd_ref,
                                                        dx_ref, dg_ref, db_ref);
                    else
                        hs_batchnorm_frozen_backward_ref(x, g, n, c, hw, gamma, rm0, rv0, eps,
                                                         dx_ref, dg_ref, db_ref);
                    memcpy(rm, rm0, (size_t)c * sizeof(float));
                    memcpy(rv, rv0, (size_t)c * sizeof(float));
                    memcpy(dg, dg0, (size_t)c * sizeof(float));
                    memcpy(db, db0, (size_t)c * sizeof(float));
                    fill_nan(yl, lcount);
                    fill_nan(dxl, lcount);
                    hs_bn_act_forward(xl, lay, n, c, hw, gamma, beta, eps, momentum, stats, rm, rv,
                                      mean, rstd, upper, yl);
                    hs_bn_act_backward(xl, dyl, lay, n, c, hw, gamma, beta, mean, rstd, stats,
                                       upper, dxl, dg, db);
                    snprintf(label, sizeof label, "%s + clip at %g%s y", what, upper,
                             stats ? "" : " frozen");
                    check_in_layout(label, yl, lay, n, c, 1, hw, act_ref, RTOL, ATOL);
                    if (stats) {
                        snprintf(label, sizeof label, "%s + clip at %g save_mean", what, upper);
                        CHECK_CLOSE(label, mean, mean_ref, c, RTOL, ATOL);
                        snprintf(label, sizeof label, "%s + clip at %g save_rstd", what, upper);
                        CHECK_CLOSE(label, rstd, rstd_ref, c, RTOL, ATOL);
                        snprintf(label, sizeof label, "%s + clip at %g running_var", what, upper);
                        CHECK_CLOSE(label, rv, rv_ref, c, RTOL, ATOL);
                        snprintf(label, sizeof label, "%s + clip at %g running_mean", what, upper);
                        CHECK_CLOSE(label, rm, rm_ref, c, RTOL, ATOL);
                    } else {
                        CHECK(memcmp(rm, rm0, (size_t)c * sizeof(float)) == 0 &&
                              memcmp(rv, rv0, (size_t)c * sizeof(float)) == 0);
                    }
                    snprintf(label, sizeof label, "%s + clip at %g%s dx", what, upper,
                             stats ? "" : " frozen");
                    check_in_layout(label, dxl, lay, n, c, 1, hw, dx_ref, RTOL, ATOL);
                    snprintf(label, sizeof label, "%s + clip at %g%s dgamma", what, upper,
                             stats ? "" : " frozen");
                    CHECK_CLOSE(label, dg, dg_ref, c, RTOL, ATOL);
                    snprintf(label, sizeof label, "%s + clip at %g%s dbeta", what, upper,
                             stats ? "" : " frozen");
                    CHECK_CLOSE(label, db, db_ref, c, RTOL, ATOL);
                }
            }
            free(z), free(g), free(act_ref);
            free(xl), free(dyl), free(yl), free(dxl);
        }
    }

    float *arrays[] = {x, gamma, beta, dy, rm0, rv0, dg0, db0, y_ref, mean_ref, rstd_ref, rm_ref,
                       rv_ref, dx_ref, dg_ref, db_ref, y, mean, rstd, rm, rv, dx, dg, db, var};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* ---- pooling ------------------------------------------------------------------------------------ */

static void check_pool(hs_pool_kind kind, int n, int c, int h, int w, int k, int stride, int pad,
                       int ties) {
    const int oh = hs_conv_out_size(h, k, stride, pad, pad, 1);
    const int ow = hs_conv_out_size(w, k, stride, pad, pad, 1);
    const int64_t x_count = (int64_t)n * c * h * w, y_count = (int64_t)n * c * oh * ow;
    float *x = test_random_floats(&rng, x_count, -1, 1), *dy = test_random_floats(&rng, y_count, -1, 1);
    if (ties) /* three values only: most windows hold equal maxima */
        for (int64_t i = 0; i < x_count; i++) x[i] = (float)hs_rng_below(&rng, 3);
    float *y_ref = test_alloc_floats(y_count), *dx_ref = test_alloc_floats(x_count);
    if (kind == HS_POOL_MAX) {
        hs_maxpool2d_forward_ref(x, n, c, h, w, k, stride, pad, y_ref);
        hs_maxpool2d_backward_ref(x, n, c, h, w, k, stride, pad, dy, dx_ref);
    } else {
        hs_avgpool2d_forward_ref(x, n, c, h, w, k, stride, pad, y_ref);
        hs_avgpool2d_backward_ref(n, c, h, w, k, stride, pad, dy, dx_ref);
    }
    hs_pool_grad_plan *plan =
        hs_pool_grad_plan_create(kind, n, c, h, w, k, stride, pad, HS_LAYOUT_NCHW);
    CHECK(plan != NULL);
    if (!plan) return;
    char what[128];
    snprintf(what, sizeof what, "%s %dx%dx%dx%d k%d s%d p%d%s", kind == HS_POOL_MAX ? "max" : "avg",
             n, c, h, w, k, stride, pad, ties ? " ties" : "");
    printf("  %-39s %s%s\n", what, hs_pool_grad_plan_impl(plan),
           hs_pool_grad_plan_uses_dnnl(plan) ? "" : " (fallback)");
    float *y = test_alloc_floats(y_count), *dx = test_alloc_floats(x_count);
    char label[160];
    for (int rep = 0; rep < 2; rep++) {
        fill_nan(y, y_count);
        fill_nan(dx, x_count);
        CHECK(hs_pool_grad_plan_forward(plan, x, y) == 0);
        CHECK(hs_pool_grad_plan_backward(plan, x, dy, dx) == 0);
        snprintf(label, sizeof label, "%s forward", what);
        if (kind == HS_POOL_MAX) CHECK(memcmp(y, y_ref, (size_t)y_count * sizeof(float)) == 0);
        else CHECK_CLOSE(label, y, y_ref, y_count, 1e-6f, 1e-7f);
        /* a pixel several windows pick sums their gradients: in float here, in double in
         * the reference, so with arbitrary dy the two differ by a rounding */
        snprintf(label, sizeof label, "%s dx", what);
        CHECK_CLOSE(label, dx, dx_ref, x_count, 1e-6f, 1e-7f);
    }
    if (kind == HS_POOL_MAX) {
        /* routing exactly: with dy small multiples of 1/4 every sum is exact in float too,
         * so the gradients must land on the same pixels bit for bit, ties included */
        for (int64_t i = 0; i < y_count; i++) dy[i] = (float)((int)hs_rng_below(&rng, 33) - 16) * 0.25f;
        hs_maxpool2d_backward_ref(x, n, c, h, w, k, stride, pad, dy, dx_ref);
        CHECK(hs_pool_grad_plan_backward(plan, x, dy, dx) == 0);
        snprintf(label, sizeof label, "%s dx routing", what);
        CHECK_MSG(memcmp(dx, dx_ref, (size_t)x_count * sizeof(float)) == 0, "%s", label);
    }
    hs_pool_grad_plan_free(plan);
    /* the blocked layouts (the routing check is NCHW's: the same primitive does both) */
    hs_layout layouts[] = {HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW8C};
    for (int li = 0; li < 2; li++) {
        hs_layout lay = layouts[li];
        hs_pool_grad_plan *bp = hs_pool_grad_plan_create(kind, n, c, h, w, k, stride, pad, lay);
        if (hs_grad_plans_layout() == HS_LAYOUT_NCHW) {
            CHECK_MSG(bp == NULL, "%s %s: a blocked plan without oneDNN", what, layout_name(lay));
            hs_pool_grad_plan_free(bp);
            continue;
        }
        CHECK(bp != NULL);
        if (!bp) continue;
        if (kind == HS_POOL_MAX) hs_maxpool2d_backward_ref(x, n, c, h, w, k, stride, pad, dy, dx_ref);
        float *xl = to_layout(x, lay, n, c, h, w), *dyl = to_layout(dy, lay, n, c, oh, ow);
        float *yl = test_alloc_floats(hs_layout_size(lay, n, c, oh, ow));
        float *dxl = test_alloc_floats(hs_layout_size(lay, n, c, h, w));
        CHECK(hs_pool_grad_plan_forward(bp, xl, yl) == 0);
        CHECK(hs_pool_grad_plan_backward(bp, xl, dyl, dxl) == 0);
        snprintf(label, sizeof label, "%s %s forward", what, layout_name(lay));
        check_in_layout(label, yl, lay, n, c, oh, ow, y_ref, 1e-6f, 1e-7f);
        snprintf(label, sizeof label, "%s %s dx", what, layout_name(lay));
        check_in_layout(label, dxl, lay, n, c, h, w, dx_ref, 1e-6f, 1e-7f);
        hs_pool_grad_plan_free(bp);
        free(xl), free(dyl), free(yl), free(dxl);
    }
    free(x);
    free(dy);
    free(y_ref);
    free(dx_ref);
    free(y);
    free(dx);
}

/* Global average pooling out of the blocked layouts (the tape's exit) against the reference
 * adaptive pooling to 1 x 1. */
static void check_global_pool(int n, int c, int h, int w) {
    const int64_t x_count = (int64_t)n * c * h * w, y_count = (int64_t)n * c;
    float *x = test_random_floats(&rng, x_count, -1, 1), *dy = test_random_floats(&rng, y_count, -1, 1);
    float *y_ref = test_alloc_floats(y_count), *dx_ref = test_alloc_floats(x_count);
    hs_adaptive_avgpool2d_forward_ref(x, n, c, h, w, 1, 1, y_ref);
    hs_adaptive_avgpool2d_backward_ref(n, c, h, w, 1, 1, dy, dx_ref);
    hs_layout layouts[] = {HS_LAYOUT_NCHW, HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW8C};
    for (int li = 0; li < 3; li++) {
        hs_layout lay = layouts[li];
        float *xl = to_layout(x, lay, n, c, h, w), *y = test_alloc_floats(y_count);
        float *dxl = test_alloc_floats(hs_layout_size(lay, n, c, h, w));
        fill_nan(y, y_count);
        fill_nan(dxl, hs_layout_size(lay, n, c, h, w));
        hs_global_avgpool_forward(xl, lay, n, c, h * w, y);
        hs_global_avgpool_backward(dy, lay, n, c, h * w, dxl);
        char label[96];
        snprintf(label, sizeof label, "global pool %dx%dx%dx%d %s y", n, c, h, w, layout_name(lay));
        CHECK_CLOSE(label, y, y_ref, y_count, 1e-6f, 1e-7f);
        snprintf(label, sizeof label, "global pool %dx%dx%dx%d %s dx", n, c, h, w, layout_name(lay));
        check_in_layout(label, dxl, lay, n, c, h, w, dx_ref, 1e-6f, 1e-7f);
        free(xl), free(y), free(dxl);
    }
    free(x), free(dy), free(y_ref), free(dx_ref);
}

static void check_adaptive(int n, int c, int h, int w, int oh, int ow) {
    const int64_t x_count = (int64_t)n * c * h * w, y_count = (int64_t)n * c * oh * ow;
    float *dy = test_random_floats(&rng, y_count, -1, 1);
    float *ref = test_alloc_floats(x_count), *fast = test_alloc_floats(x_count);
    hs_adaptive_avgpool2d_backward_ref(n, c, h, w, oh, ow, dy, ref);
    fill_nan(fast, x_count);
    hs_adaptive_avgpool2d_backward(n, c, h, w, oh, ow, dy, fast);
    CHECK(memcmp(ref, fast, (size_t)x_count * sizeof(float)) == 0);
    free(dy);
    free(ref);
    free(fast);
}

/* ---- ReLU and ReLU6 ------------------------------------------------------------------------------ */

static void check_activation(hs_act_kind kind, int64_t count) {
    float *x = test_random_floats(&rng, count, -2, 8), *dy = test_random_floats(&rng, count, -1, 1);
    /* exact kinks: 0, -0 and 6 (hardtanh passes nothing there) */
    for (int64_t i = 0; i < count; i += 5) x[i] = (i / 5) % 3 == 0 ? 0.0f : (i / 5) % 3 == 1 ? 6.0f : -0.0f;
    float *ref = test_alloc_floats(count), *fast = test_alloc_floats(count);
    if (kind == HS_ACT_RELU) hs_relu_backward_ref(x, dy, count, ref);
    else hs_relu6_backward_ref(x, dy, count, ref);
    hs_act_grad_plan *plan = hs_act_grad_plan_create(kind, count);
    CHECK(plan != NULL);
    if (!plan) return;
    char what[96];
    snprintf(what, sizeof what, "%s x %lld", kind == HS_ACT_RELU ? "relu" : "relu6",
             (long long)count);
    printf("  %-39s %s%s\n", what, hs_act_grad_plan_impl(plan),
           hs_act_grad_plan_uses_dnnl(plan) ? "" : " (fallback)");
    for (int rep = 0; rep < 2; rep++) {
        fill_nan(fast, count);
        CHECK(hs_act_grad_plan_run(plan, x, dy, fast) == 0);
        CHECK_CLOSE(what, fast, ref, count, 0.0f, 0.0f); /* -0 and 0 compare equal */
    }
    /* in place: dx over dy */
    float *inplace = copy_floats(dy, count);
    CHECK(hs_act_grad_plan_run(plan, x, inplace, inplace) == 0);
    CHECK_CLOSE("in place", inplace, ref, count, 0.0f, 0.0f);
    hs_act_grad_plan_free(plan);
    free(x);
    free(dy);
    free(ref);
    free(fast);
    free(inplace);
}

static const conv_case *find_conv_case(const char *name) {
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        if (!strcmp(conv_cases[i].name, name)) return &conv_cases[i];
    CHECK_MSG(0, "no conv case %s", name);
    return &conv_cases[0];
}

static void run_all(void) {
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        check_conv(&conv_cases[i]);
    /* the tape's layouts: blocked in and out, and its entry (NCHW image in) and exits */
    hs_layout blocked[] = {HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW8C};
    for (int li = 0; li < 2; li++) {
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
            check_conv_layout(&conv_cases[i], blocked[li], blocked[li]);
        check_conv_layout(find_conv_case("2x3x32x32 stem 3x3 s2 SAME"), HS_LAYOUT_NCHW,
                          blocked[li]);
        check_conv_layout(find_conv_case("6x3x32x32 stem 3x3 s2 SAME"), HS_LAYOUT_NCHW,
                          blocked[li]);
        check_conv_layout(find_conv_case("4x24x14x14 1x1 24->144"), blocked[li], HS_LAYOUT_NCHW);
        check_conv_layout(find_conv_case("4x24x14x14 1x1 24->144"), HS_LAYOUT_NCHW, blocked[li]);
        /* a depthwise kernel without a jit weight gradient, between layouts (MobileNet's SE
         * blocks make such boundaries) */
        check_conv_layout(find_conv_case("4x40x14x14 depthwise 5x5 SAME"), blocked[li],
                          HS_LAYOUT_NCHW);
        check_conv_layout(find_conv_case("4x40x14x14 depthwise 5x5 SAME"), HS_LAYOUT_NCHW,
                          blocked[li]);
        /* bf16 plans: every case in the tape's layouts, and its entry and exit */
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
            check_conv_bf16(&conv_cases[i], blocked[li], blocked[li]);
        check_conv_bf16(find_conv_case("2x3x32x32 stem 3x3 s2 SAME"), HS_LAYOUT_NCHW,
                        blocked[li]);
        check_conv_bf16(find_conv_case("4x24x14x14 1x1 24->144"), blocked[li], HS_LAYOUT_NCHW);
    }
    check_conv_bf16(find_conv_case("8x32x28x28 3x3"), HS_LAYOUT_NCHW, HS_LAYOUT_NCHW);
    check_global_pool(2, 3, 5, 6);
    check_global_pool(4, 40, 7, 7);
    check_global_pool(2, 32, 4, 4);
    check_batchnorm(3, 4, 25, 1e-5f, 0.1f);
    check_batchnorm(2, 5, 24, 1e-3f, 0.01f);
    check_batchnorm(8, 32, 28 * 28, 1e-3f, 0.01f);
    check_batchnorm(2, 24, 7 * 7, 1e-5f, 0.1f);
    check_pool(HS_POOL_MAX, 2, 3, 8, 8, 2, 2, 0, 1);
    check_pool(HS_POOL_MAX, 2, 3, 9, 9, 3, 2, 1, 1);
    check_pool(HS_POOL_MAX, 2, 2, 7, 6, 3, 1, 1, 0);
    check_pool(HS_POOL_MAX, 8, 32, 28, 28, 3, 2, 1, 0);
    check_pool(HS_POOL_MAX, 8, 32, 28, 28, 3, 2, 1, 1);
    check_pool(HS_POOL_AVG, 2, 3, 8, 8, 2, 2, 0, 0);
    check_pool(HS_POOL_AVG, 2, 3, 7, 6, 3, 1, 1, 0);
    check_pool(HS_POOL_AVG, 2, 3, 9, 8, 3, 2, 1, 0);
    check_pool(HS_POOL_AVG, 8, 32, 28, 28, 2, 2, 0, 0);
    check_adaptive(2, 3, 14, 14, 7, 7);
    check_adaptive(2, 3, 9, 13, 7, 7);
    check_adaptive(2, 3, 2, 3, 7, 7);
    check_adaptive(2, 3, 10, 7, 4, 3);
    check_adaptive(2, 3, 5, 6, 1, 1);
    check_adaptive(8, 32, 7, 7, 1, 1);
    check_activation(HS_ACT_RELU, 1000);
    check_activation(HS_ACT_RELU6, 1000);
    check_activation(HS_ACT_RELU6, (int64_t)8 * 32 * 28 * 28);
}

int main(void) {
    hs_rng_seed(&rng, 77);
    hs_rng_seed(&bf16_rng, 78);
    printf("kernels chosen (conv: forward / backward data / backward weights; others: "
           "forward / backward):\n");
    run_all();
    /* the fallbacks a plan takes when oneDNN cannot make a primitive, on the same cases */
    printf("without oneDNN (every plan's fallback):\n");
    hs_grad_plans_use_dnnl(0);
    run_all();
    hs_grad_plans_use_dnnl(1);
    return check_finish("test_ops_grad_fast");
}
