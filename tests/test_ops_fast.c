/* The fast kernels (ops_fast.c) against the reference kernels (ops_ref.c) on random inputs,
 * over the shapes the networks use and the awkward ones they might: strided, dilated,
 * asymmetric padding, grouped, depthwise, 1x1, batches. Tolerance 1e-4 relative plus 1e-5
 * absolute: sgemm sums in another order than the reference's double accumulation.
 *
 * bf16 plans and the bf16 activation kernels (act_dnnl.c) are checked against the reference
 * run on bf16-rounded inputs and weights: what is left is float32 accumulation order and, with
 * bf16 outputs, the one rounding of each output to bf16 (at most 2^-9 relative, round to
 * nearest even): tolerance 2^-8 relative plus 1e-4 absolute. Where oneDNN has no bf16 kernels
 * (capped to AVX2 / SSE4.1) bf16 plans must be refused. */
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ops.h"
#include "rng.h"
#include "statedict.h"

#define BF16_RTOL (1.0f / 256)
#define BF16_ATOL 1e-4f

/* x rounded to bf16 and back (in place). */
static void round_bf16(float *x, long count) {
    for (long i = 0; i < count; i++) x[i] = hs_bf16_to_f32(hs_f32_to_bf16(x[i]));
}

static float *random_array(hs_rng *rng, long count) {
    float *a = malloc((size_t)count * sizeof(float));
    for (long i = 0; i < count; i++) a[i] = hs_rng_range(rng, -1.0f, 1.0f);
    return a;
}

typedef struct conv_case {
    const char *name;
    int n, in_c, out_c, h, w, k_h, k_w, stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right, dilation, groups, bias;
} conv_case;

/* A case's convolution shape, output size and element counts. */
typedef struct conv_dims {
    hs_conv2d_shape s;
    int oh, ow;
    long x_count, w_count, y_count;
} conv_dims;

static conv_dims dims_of(const conv_case *c) {
    conv_dims d = {{c->in_c, c->out_c, c->k_h, c->k_w, c->stride_h, c->stride_w, c->pad_top,
                    c->pad_bottom, c->pad_left, c->pad_right, c->dilation, c->dilation,
                    c->groups}, 0, 0, 0, 0, 0};
    d.oh = hs_conv_out_size(c->h, c->k_h, c->stride_h, c->pad_top, c->pad_bottom, c->dilation);
    d.ow = hs_conv_out_size(c->w, c->k_w, c->stride_w, c->pad_left, c->pad_right, c->dilation);
    d.x_count = (long)c->n * c->in_c * c->h * c->w;
    d.w_count = (long)c->out_c * (c->in_c / c->groups) * c->k_h * c->k_w;
    d.y_count = (long)c->n * c->out_c * d.oh * d.ow;
    return d;
}

static void check_conv(hs_rng *rng, const conv_case *c) {
    conv_dims d = dims_of(c);
    hs_conv2d_shape s = d.s;
    int oh = d.oh, ow = d.ow;
    long x_count = d.x_count, w_count = d.w_count, y_count = d.y_count;
    float *x = random_array(rng, x_count), *weight = random_array(rng, w_count);
    float *bias = c->bias ? random_array(rng, c->out_c) : NULL;
    float *ref = malloc((size_t)y_count * sizeof(float));
    float *fast = malloc((size_t)y_count * sizeof(float));
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, bias, &s, ref);
    hs_conv2d_forward(x, c->n, c->h, c->w, weight, bias, &s, fast);
    CHECK_CLOSE(c->name, fast, ref, y_count, 1e-4f, 1e-5f);
    hs_conv2d_forward_im2col(x, c->n, c->h, c->w, weight, bias, &s, fast);
    CHECK_CLOSE(c->name, fast, ref, y_count, 1e-4f, 1e-5f);

    /* Plans in every layout pair hs_net_run uses, with fused ReLU / ReLU6, run twice (the
     * second run reuses the plan). Blocked layouts are converted back to NCHW to compare. */
    static const hs_layout pairs[][2] = {{HS_LAYOUT_NCHW, HS_LAYOUT_NCHW},
                                         {HS_LAYOUT_NCHW, HS_LAYOUT_NCHW16C},
                                         {HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW16C},
                                         {HS_LAYOUT_NCHW, HS_LAYOUT_NCHW8C},
                                         {HS_LAYOUT_NCHW8C, HS_LAYOUT_NCHW8C},
                                         {HS_LAYOUT_NHWC, HS_LAYOUT_NHWC}};
    float *post_ref = malloc((size_t)y_count * sizeof(float));
    float *xb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->in_c, c->h, c->w) * 4);
    float *yb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->out_c, oh, ow) * 4);
    for (int post = HS_POST_NONE; post <= HS_POST_RELU6; post++) {
        if (post == HS_POST_NONE) memcpy(post_ref, ref, (size_t)y_count * sizeof(float));
        if (post == HS_POST_RELU) hs_relu_forward_ref(ref, y_count, post_ref);
        if (post == HS_POST_RELU6) hs_relu6_forward_ref(ref, y_count, post_ref);
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            hs_conv_options opt = {pairs[p][0], pairs[p][1], post, 0, 0};
            hs_conv_plan *plan = hs_conv_plan_create(&s, c->n, c->h, c->w, weight, bias, &opt);
            /* No fast kernel for this pair (hs_net_run then converts, or runs NCHW);
             * check_runtime_layout requires them for the networks' shapes. */
            if (!plan) continue;
            CHECK(hs_conv_plan_matches(plan, &s, c->n, c->h, c->w, &opt));
            CHECK(hs_layout_convert(x, HS_LAYOUT_NCHW, xb, opt.src_layout, c->n, c->in_c,
                                    c->h, c->w) == 0);
            for (int rep = 0; rep < 2; rep++) {
                memset(fast, 0, (size_t)y_count * sizeof(float));
                CHECK(hs_conv_plan_run(plan, xb, yb) == 0);
                CHECK(hs_layout_convert(yb, opt.dst_layout, fast, HS_LAYOUT_NCHW, c->n,
                                        c->out_c, oh, ow) == 0);
                char what[128];
                snprintf(what, sizeof what, "%s plan %zu post %d (%s)", c->name, p, post,
                         hs_conv_plan_impl(plan));
                CHECK_CLOSE(what, fast, post_ref, y_count, 1e-4f, 1e-5f);
            }
            hs_conv_plan_free(plan);
        }
    }
    free(post_ref);
    free(xb);
    free(yb);
    free(x);
    free(weight);
    free(bias);
    free(ref);
    free(fast);
}

static const conv_case conv_cases[] = {
    {"3x3 pad 1 (VGG)", 2, 5, 7, 12, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"3x3 stride 2 SAME (stem)", 2, 3, 8, 15, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 0},
    {"1x1 pointwise", 3, 16, 24, 7, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0},
    {"1x1 stride 2", 1, 6, 4, 9, 9, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1},
    {"depthwise 3x3", 2, 12, 12, 10, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 12, 0},
    {"depthwise 5x5 stride 2 SAME", 2, 8, 8, 14, 14, 5, 5, 2, 2, 1, 2, 1, 2, 1, 8, 1},
    {"grouped 2", 2, 8, 6, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2, 1},
    {"depthwise multiplier 2", 1, 4, 8, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 1},
    {"dilated", 1, 3, 4, 13, 12, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1, 1},
    {"3x1 asymmetric", 2, 4, 5, 9, 7, 3, 1, 2, 1, 0, 2, 1, 0, 1, 1, 1},
    {"3x3 40->24 (padded blocks)", 2, 40, 24, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"depthwise 40ch SAME s2", 2, 40, 40, 11, 11, 3, 3, 2, 2, 0, 1, 0, 1, 1, 40, 1},
    {"1x1 24->144", 2, 24, 144, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
};

/* One convolution as hs_net_run plans it: layouts oneDNN chooses (HS_LAYOUT_ANY) and the
 * fixed blocked one, float32 and bf16 (float32 or bf16 output), with a fused ReLU6 and with a
 * fused residual add (HS_POST_ADD: the destination is filled with the skip input first, and
 * the plan must leave conv + skip there). The input is given to the plan in the layout and
 * type it asks for and the output read back through hs_act_convert_in. */
static void check_conv_plans(hs_rng *rng, const conv_case *c) {
    conv_dims d = dims_of(c);
    hs_conv2d_shape s = d.s;
    int oh = d.oh, ow = d.ow;
    long x_count = d.x_count, w_count = d.w_count, y_count = d.y_count;
    float *x = random_array(rng, x_count), *weight = random_array(rng, w_count);
    float *bias = c->bias ? random_array(rng, c->out_c) : NULL;
    float *skip = random_array(rng, y_count), *skip16 = malloc((size_t)y_count * 4);
    float *xr = malloc((size_t)x_count * 4), *wr = malloc((size_t)w_count * 4);
    float *conv = malloc((size_t)y_count * 4), *conv16 = malloc((size_t)y_count * 4);
    float *ref = malloc((size_t)y_count * 4), *ref16 = malloc((size_t)y_count * 4);
    float *fast = malloc((size_t)y_count * 4);
    float *xb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->in_c, c->h, c->w) * 4);
    float *yb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->out_c, oh, ow) * 4);
    memcpy(xr, x, (size_t)x_count * 4);
    memcpy(wr, weight, (size_t)w_count * 4);
    memcpy(skip16, skip, (size_t)y_count * 4);
    round_bf16(xr, x_count);
    round_bf16(wr, w_count);
    round_bf16(skip16, y_count); /* a bf16 destination holds the skip in bf16 */
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, bias, &s, conv);
    hs_conv2d_forward_ref(xr, c->n, c->h, c->w, wr, bias, &s, conv16);
    int bf16_kernels = hs_dnnl_bf16_support() > 0;
    hs_layout layouts[] = {HS_LAYOUT_ANY, hs_layout_blocked()};
    hs_post_op posts[] = {HS_POST_RELU6, HS_POST_ADD};
    for (int pi = 0; pi < 2; pi++)
        for (int li = 0; li < 2; li++)
            for (int variant = 0; variant < 3; variant++) { /* f32; bf16 f32-out; bf16 bf16-out */
                hs_post_op post = posts[pi];
                hs_conv_options opt = {layouts[li], layouts[li], post, variant > 0, variant == 2};
                hs_conv_plan *plan = hs_conv_plan_create(&s, c->n, c->h, c->w, weight, bias,
                                                         &opt);
                char what[160];
                snprintf(what, sizeof what, "%s %s %s%s%s (%s)", c->name, li ? "fixed" : "any",
                         variant ? "bf16" : "f32", variant == 2 ? " act" : "",
                         post == HS_POST_ADD ? " +add" : " relu6",
                         plan ? hs_conv_plan_impl(plan) : "no plan");
                if (variant > 0 && !bf16_kernels) { /* no bf16 kernel: refused, never a slow one */
                    CHECK_MSG(plan == NULL, "%s: a bf16 plan without bf16 kernels", what);
                    hs_conv_plan_free(plan);
                    continue;
                }
                /* oneDNN's choice always has a kernel; a fixed blocked layout may have none
                 * for awkward shapes (hs_net_run then runs NCHW float32, tested in check_conv) */
                if (li == 0) CHECK_MSG(plan != NULL, "%s: no plan", what);
                if (!plan) continue;
                CHECK_MSG(hs_conv_plan_uses_dnnl(plan), "%s: not oneDNN", what);
                hs_layout src = hs_conv_plan_src_layout(plan), dst = hs_conv_plan_dst_layout(plan);
                CHECK_MSG(src != HS_LAYOUT_ANY && dst != HS_LAYOUT_ANY, "%s: layout unresolved",
                          what);
                CHECK(hs_conv_plan_matches(plan, &s, c->n, c->h, c->w, &opt));
                const float *want_conv = variant ? conv16 : conv;
                float *want = variant ? ref16 : ref;
                if (post == HS_POST_ADD) {
                    const float *sk = variant == 2 ? skip16 : skip;
                    for (long i = 0; i < y_count; i++) want[i] = want_conv[i] + sk[i];
                    CHECK(hs_act_convert_in(NULL, skip, HS_LAYOUT_NCHW, 0, yb, dst, opt.bf16_act,
                                            c->n, c->out_c, oh, ow) == 0);
                } else {
                    hs_relu6_forward_ref(want_conv, y_count, want);
                }
                CHECK(hs_act_convert_in(NULL, x, HS_LAYOUT_NCHW, 0, xb, src, opt.bf16_act, c->n,
                                        c->in_c, c->h, c->w) == 0);
                CHECK(hs_conv_plan_run(plan, xb, yb) == 0);
                CHECK(hs_act_convert_in(NULL, yb, dst, opt.bf16_act, fast, HS_LAYOUT_NCHW, 0,
                                        c->n, c->out_c, oh, ow) == 0);
                if (variant == 0) CHECK_CLOSE(what, fast, want, y_count, 1e-4f, 1e-5f);
                else CHECK_CLOSE(what, fast, want, y_count, BF16_RTOL, BF16_ATOL);
                hs_conv_plan_free(plan);
            }
    free(x), free(weight), free(bias), free(xr), free(wr), free(ref), free(ref16), free(fast);
    free(skip), free(skip16), free(conv), free(conv16), free(xb), free(yb);
}

/* Conversion, max / global average pooling and the residual add on activations in every
 * layout, float32 and bf16, against the reference on the same (rounded) values. */
static void check_act_kernels(hs_rng *rng) {
    static const hs_layout layouts[] = {HS_LAYOUT_NCHW, HS_LAYOUT_NHWC, HS_LAYOUT_NCHW16C,
                                        HS_LAYOUT_NCHW8C};
    int n = 2, c = 20, h = 9, w = 8;
    long count = (long)n * c * h * w;
    size_t big = (size_t)hs_layout_size(HS_LAYOUT_NCHW16C, n, c, h, w) * 4;
    float *x = random_array(rng, count), *e = random_array(rng, count);
    float *ref = malloc((size_t)count * 4), *fast = malloc((size_t)count * 4);
    float *xb = malloc(big), *eb = malloc(big), *yb = malloc(big);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        if (bf16) {
            round_bf16(x, count);
            round_bf16(e, count);
        }
        for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
            hs_layout L = layouts[li];
            char what[96];
            snprintf(what, sizeof what, "%s layout %d", bf16 ? "bf16" : "f32", (int)L);
            /* the round trip is exact on representable values */
            CHECK(hs_act_convert_in(NULL, x, HS_LAYOUT_NCHW, 0, xb, L, bf16, n, c, h, w) == 0);
            CHECK(hs_act_convert_in(NULL, xb, L, bf16, fast, HS_LAYOUT_NCHW, 0, n, c, h, w) == 0);
            CHECK_MSG(memcmp(fast, x, (size_t)count * 4) == 0, "%s: convert", what);
            if (bf16 && hs_dnnl_bf16_support() == 0) {
                /* oneDNN has no bf16 pooling or binary kernels here: refused, not wrong (and
                 * hs_net_run never has bf16 activations at this ISA) */
                CHECK(hs_act_pool(NULL, xb, L, 1, n, c, h, w, 0, 2, 2, 2, 0, yb) != 0);
                CHECK(hs_act_add(NULL, xb, xb, L, 1, n, c, h, w) != 0);
                continue;
            }
            /* max pooling: exact */
            static const int params[][3] = {{2, 2, 0}, {3, 2, 1}};
            for (int i = 0; i < 2; i++) {
                int k = params[i][0], st = params[i][1], pad = params[i][2];
                int oh = hs_conv_out_size(h, k, st, pad, pad, 1);
                int ow = hs_conv_out_size(w, k, st, pad, pad, 1);
                hs_maxpool2d_forward_ref(x, n, c, h, w, k, st, pad, ref);
                CHECK(hs_act_pool(NULL, xb, L, bf16, n, c, h, w, 0, k, k, st, pad, yb) == 0);
                CHECK(hs_act_convert_in(NULL, yb, L, bf16, fast, HS_LAYOUT_NCHW, 0, n, c, oh,
                                        ow) == 0);
                CHECK_MSG(memcmp(fast, ref, (size_t)n * c * oh * ow * 4) == 0, "%s: max pool %d",
                          what, i);
            }
            /* global average pooling (float32 sums against the reference's double) */
            hs_adaptive_avgpool2d_forward_ref(x, n, c, h, w, 1, 1, ref);
            CHECK(hs_act_pool(NULL, xb, L, bf16, n, c, h, w, 1, h, w, 1, 0, yb) == 0);
            CHECK(hs_act_convert_in(NULL, yb, L, bf16, fast, HS_LAYOUT_NCHW, 0, n, c, 1, 1) == 0);
            CHECK_CLOSE(what, fast, ref, (long)n * c, bf16 ? BF16_RTOL : 1e-5f,
                        bf16 ? BF16_ATOL : 1e-6f);
            /* the residual add: one rounding of the float32 sum */
            for (long i = 0; i < count; i++)
                ref[i] = bf16 ? hs_bf16_to_f32(hs_f32_to_bf16(x[i] + e[i])) : x[i] + e[i];
            CHECK(hs_act_convert_in(NULL, e, HS_LAYOUT_NCHW, 0, eb, L, bf16, n, c, h, w) == 0);
            CHECK(hs_act_add(NULL, xb, eb, L, bf16, n, c, h, w) == 0);
            CHECK(hs_act_convert_in(NULL, xb, L, bf16, fast, HS_LAYOUT_NCHW, 0, n, c, h, w) == 0);
            CHECK_MSG(memcmp(fast, ref, (size_t)count * 4) == 0, "%s: add", what);
        }
    }
    free(x), free(e), free(ref), free(fast), free(xb), free(eb), free(yb);
}

static void check_linear(hs_rng *rng, int n, int in, int out, int with_bias) {
    float *x = random_array(rng, (long)n * in), *w = random_array(rng, (long)out * in);
    float *b = with_bias ? random_array(rng, out) : NULL;
    float *ref = malloc((size_t)n * out * sizeof(float)), *fast = malloc((size_t)n * out * sizeof(float));
    hs_linear_forward_ref(x, n, in, w, b, out, ref);
    hs_linear_forward(x, n, in, w, b, out, fast);
    CHECK_CLOSE("linear", fast, ref, (long)n * out, 1e-4f, 1e-5f);

    /* As the inference plan runs a pretrained linear layer in a bf16 run (net_run.c): a 1x1
     * convolution of a 1 x 1 image in NHWC (which the plan runs as oneDNN's inner product),
     * bf16 products, float32 in and out, fused ReLU;
     * against the reference on bf16-rounded inputs and weights. Refused without bf16 kernels. */
    {
        hs_conv2d_shape s = {in, out, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1};
        hs_conv_options opt = {HS_LAYOUT_NHWC, HS_LAYOUT_NHWC, HS_POST_RELU, 1, 0};
        hs_conv_plan *plan = hs_conv_plan_create(&s, n, 1, 1, w, b, &opt);
        if (hs_dnnl_bf16_support() == 0) {
            CHECK_MSG(plan == NULL, "linear %dx%d: a bf16 plan without bf16 kernels", in, out);
        } else {
            CHECK_MSG(plan && hs_conv_plan_uses_dnnl(plan), "linear %d->%d: no bf16 plan", in,
                      out);
            float *xr = malloc((size_t)n * in * 4), *wr = malloc((size_t)out * in * 4);
            memcpy(xr, x, (size_t)n * in * 4);
            memcpy(wr, w, (size_t)out * in * 4);
            round_bf16(xr, (long)n * in);
            round_bf16(wr, (long)out * in);
            hs_linear_forward_ref(xr, n, in, wr, b, out, ref);
            hs_relu_forward_ref(ref, (long)n * out, ref);
            if (plan) {
                CHECK(hs_conv_plan_run(plan, x, fast) == 0);
                char what[96];
                snprintf(what, sizeof what, "linear %d->%d bf16 relu (%s)", in, out,
                         hs_conv_plan_impl(plan));
                CHECK_CLOSE(what, fast, ref, (long)n * out, 1e-4f, 1e-4f);
            }
            free(xr), free(wr);
        }
        hs_conv_plan_free(plan);
        hs_linear_forward_ref(x, n, in, w, b, out, ref); /* the float32 reference again */
    }

    /* Backward: dx overwritten, dW and db accumulated onto what is there. */
    float *dy = random_array(rng, (long)n * out);
    float *dx_ref = malloc((size_t)n * in * sizeof(float)), *dx_fast = malloc((size_t)n * in * sizeof(float));
    float *dw_ref = random_array(rng, (long)out * in), *dw_fast = malloc((size_t)out * in * sizeof(float));
    float *db_ref = random_array(rng, out), *db_fast = malloc((size_t)out * sizeof(float));
    memcpy(dw_fast, dw_ref, (size_t)out * in * sizeof(float));
    memcpy(db_fast, db_ref, (size_t)out * sizeof(float));
    hs_linear_backward_ref(x, n, in, w, out, dy, dx_ref, dw_ref, db_ref);
    hs_linear_backward(x, n, in, w, out, dy, dx_fast, dw_fast, db_fast);
    CHECK_CLOSE("linear backward dx", dx_fast, dx_ref, (long)n * in, 1e-4f, 1e-5f);
    CHECK_CLOSE("linear backward dW", dw_fast, dw_ref, (long)out * in, 1e-4f, 1e-5f);
    CHECK_CLOSE("linear backward db", db_fast, db_ref, out, 1e-4f, 1e-5f);
    free(dy);
    free(dx_ref);
    free(dx_fast);
    free(dw_ref);
    free(dw_fast);
    free(db_ref);
    free(db_fast);
    free(x);
    free(w);
    free(b);
    free(ref);
    free(fast);
}

static void check_activations(hs_rng *rng) {
    long count = 1000;
    float *x = random_array(rng, count), *ref = malloc(count * sizeof(float)),
          *fast = malloc(count * sizeof(float));
    for (long i = 0; i < count; i++) x[i] *= 10.0f; /* reach past 6 for ReLU6 */
    hs_relu_forward_ref(x, count, ref);
    hs_relu_forward(x, count, fast);
    CHECK(memcmp(ref, fast, count * sizeof(float)) == 0);
    hs_relu6_forward_ref(x, count, ref);
    hs_relu6_forward(x, count, fast);
    CHECK(memcmp(ref, fast, count * sizeof(float)) == 0);
    free(x);
    free(ref);
    free(fast);
}

/* Whether the channels past c in every block-padded pixel of a blocked activation are 0. */
static int padding_is_zero(const float *x, hs_layout layout, int n, int c, int h, int w) {
    int block = hs_layout_block(layout), blocks = (c + block - 1) / block;
    for (long p = 0; p < (long)n * blocks * h * w; p++) {
        if ((p / ((long)h * w)) % blocks != blocks - 1) continue; /* only the last block pads */
        for (int v = c - (blocks - 1) * block; v < block; v++)
            if (x[p * block + v] != 0.0f) return 0;
    }
    return 1;
}

/* Threaded pooling (NCHW and both blocked layouts) and the residual add against the
 * reference. */
static void check_pooling(hs_rng *rng) {
    static const hs_layout blocked_layouts[] = {HS_LAYOUT_NCHW16C, HS_LAYOUT_NCHW8C};
    int n = 2, c = 20, h = 9, w = 8; /* 20 channels: nChw8c pads to 24, nChw16c to 32 */
    long x_count = (long)n * c * h * w;
    float *x = random_array(rng, x_count);
    float *xb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, n, c, h, w) * 4); /* >= 8c */
    float *yb = malloc((size_t)hs_layout_size(HS_LAYOUT_NCHW16C, n, c, h, w) * 4);
    float *ref = malloc((size_t)x_count * 4), *fast = malloc((size_t)x_count * 4);
    static const int params[][3] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}};
    for (int i = 0; i < 3; i++) {
        int k = params[i][0], st = params[i][1], pad = params[i][2];
        int oh = hs_conv_out_size(h, k, st, pad, pad, 1), ow = hs_conv_out_size(w, k, st, pad, pad, 1);
        long y_count = (long)n * c * oh * ow;
        hs_maxpool2d_forward_ref(x, n, c, h, w, k, st, pad, ref);
        hs_maxpool2d_forward(x, HS_LAYOUT_NCHW, n, c, h, w, k, st, pad, fast);
        CHECK(memcmp(ref, fast, (size_t)y_count * 4) == 0);
        for (int i_b = 0; i_b < 2; i_b++) {
            hs_layout b = blocked_layouts[i_b];
            CHECK(hs_layout_convert(x, HS_LAYOUT_NCHW, xb, b, n, c, h, w) == 0);
            CHECK(padding_is_zero(xb, b, n, c, h, w));
            hs_maxpool2d_forward(xb, b, n, c, h, w, k, st, pad, yb);
            CHECK(padding_is_zero(yb, b, n, c, oh, ow));
            CHECK(hs_layout_convert(yb, b, fast, HS_LAYOUT_NCHW, n, c, oh, ow) == 0);
            CHECK_MSG(memcmp(ref, fast, (size_t)y_count * 4) == 0, "max pool, block %d",
                      hs_layout_block(b));
        }
    }
    hs_adaptive_avgpool2d_forward_ref(x, n, c, h, w, 3, 5, ref);
    hs_adaptive_avgpool2d_forward(x, n, c, h, w, 3, 5, fast);
    CHECK(memcmp(ref, fast, (size_t)n * c * 15 * 4) == 0);
    for (long i = 0; i < x_count; i++) ref[i] = x[i] + x[i];
    memcpy(fast, x, (size_t)x_count * 4);
    hs_add_inplace(fast, x, x_count);
    CHECK(memcmp(ref, fast, (size_t)x_count * 4) == 0);
    /* ReLU6 and the residual add as hs_net_run runs them on a blocked activation: over the
     * padded size, the padding staying zero. */
    for (long i = 0; i < x_count; i++) x[i] *= 10.0f; /* reach past 6 */
    hs_relu6_forward_ref(x, x_count, ref);
    for (long i = 0; i < x_count; i++) ref[i] += ref[i];
    for (int i_b = 0; i_b < 2; i_b++) {
        hs_layout b = blocked_layouts[i_b];
        int64_t count = hs_layout_size(b, n, c, h, w);
        CHECK(hs_layout_convert(x, HS_LAYOUT_NCHW, xb, b, n, c, h, w) == 0);
        hs_relu6_forward(xb, count, yb);
        hs_add_inplace(yb, yb, count);
        CHECK(padding_is_zero(yb, b, n, c, h, w));
        CHECK(hs_layout_convert(yb, b, fast, HS_LAYOUT_NCHW, n, c, h, w) == 0);
        CHECK_MSG(memcmp(ref, fast, (size_t)x_count * 4) == 0, "relu6 + add, block %d",
                  hs_layout_block(b));
    }
    free(x);
    free(xb);
    free(yb);
    free(ref);
    free(fast);
}

/* The blocked layout follows the ISA oneDNN runs (a cap in ONEDNN_MAX_CPU_ISA included):
 * in it, the convolutions of the networks get jit kernels, not gemm between reorders. */
static void check_runtime_layout(hs_rng *rng) {
    CHECK(hs_layout_block(HS_LAYOUT_NCHW) == 1 && hs_layout_block(HS_LAYOUT_NHWC) == 1);
    CHECK(hs_layout_size(HS_LAYOUT_NCHW8C, 2, 20, 3, 5) == 2 * 24 * 15);
    CHECK(hs_layout_size(HS_LAYOUT_NCHW16C, 2, 20, 3, 5) == 2 * 32 * 15);
    CHECK(hs_layout_size(HS_LAYOUT_NCHW, 2, 20, 3, 5) == 2 * 20 * 15);
    CHECK(hs_layout_blocked_for_isa(dnnl_cpu_isa_avx512_core) == HS_LAYOUT_NCHW16C);
    CHECK(hs_layout_blocked_for_isa(dnnl_cpu_isa_avx512_core_amx) == HS_LAYOUT_NCHW16C);
    CHECK(hs_layout_blocked_for_isa(dnnl_cpu_isa_avx2_vnni) == HS_LAYOUT_NCHW8C);
    CHECK(hs_layout_blocked_for_isa(dnnl_cpu_isa_avx2) == HS_LAYOUT_NCHW8C);
    CHECK(hs_layout_blocked_for_isa(dnnl_cpu_isa_sse41) == HS_LAYOUT_NCHW8C);
    hs_layout blocked = hs_layout_blocked();
    CHECK(blocked == hs_layout_blocked_for_isa((int)dnnl_get_effective_cpu_isa()));
    /* EfficientNet-Lite0 and VGG16 shapes: stem (NCHW in), 3x3, 1x1, depthwise 3x3 and 5x5. */
    static const conv_case nets[] = {
        {"stem 3->32 s2", 2, 3, 32, 17, 17, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 0},
        {"3x3 64->64", 2, 64, 64, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {"1x1 24->144", 2, 24, 144, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},
        {"depthwise 3x3 144 s2", 2, 144, 144, 9, 9, 3, 3, 2, 2, 0, 1, 0, 1, 1, 144, 1},
        {"depthwise 5x5 240", 2, 240, 240, 7, 7, 5, 5, 1, 1, 2, 2, 2, 2, 1, 240, 1},
    };
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        const conv_case *c = &nets[i];
        hs_conv2d_shape s = {c->in_c, c->out_c, c->k_h, c->k_w, c->stride_h, c->stride_w,
                             c->pad_top, c->pad_bottom, c->pad_left, c->pad_right, c->dilation,
                             c->dilation, c->groups};
        float *weight = random_array(rng, (long)c->out_c * (c->in_c / c->groups) * c->k_h * c->k_w);
        hs_conv_options opt = {i == 0 ? HS_LAYOUT_NCHW : blocked, blocked, HS_POST_RELU6, 0, 0};
        hs_conv_plan *plan = hs_conv_plan_create(&s, c->n, c->h, c->w, weight, NULL, &opt);
        CHECK_MSG(plan != NULL, "%s: no plan in block %d", c->name, hs_layout_block(blocked));
        if (plan) {
            const char *impl = hs_conv_plan_impl(plan);
            CHECK_MSG(strncmp(impl, "jit", 3) == 0 || strncmp(impl, "brg", 3) == 0,
                      "%s in block %d runs %s, not a jit kernel", c->name,
                      hs_layout_block(blocked), impl);
        }
        hs_conv_plan_free(plan);
        free(weight);
    }
}

int main(void) {
    hs_rng rng;
    hs_rng_seed(&rng, 2024);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        check_conv(&rng, &conv_cases[i]);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        check_conv_plans(&rng, &conv_cases[i]);
    check_act_kernels(&rng);
    check_linear(&rng, 1, 17, 5, 1); /* one row: the gemv path */
    check_linear(&rng, 1, 300, 7, 0);
    check_linear(&rng, 33, 200, 10, 1);
    check_linear(&rng, 4, 64, 3, 0);
    check_activations(&rng);
    check_pooling(&rng);
    check_runtime_layout(&rng);
    return check_finish("test_ops_fast");
}
