/* The fast kernels (ops_fast.c) against the reference kernels (ops_ref.c) on random inputs,
 * over the shapes the networks use and the awkward ones they might: strided, dilated,
 * asymmetric padding, grouped, depthwise, 1x1, batches. Tolerance 1e-4 relative plus 1e-5
 * absolute: sgemm sums in another order than the reference's double accumulation. */
#include <string.h>

#include "check.h"
#include "ops.h"
#include "rng.h"

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

static void check_conv(hs_rng *rng, const conv_case *c) {
    hs_conv2d_shape s = {c->in_c, c->out_c, c->k_h, c->k_w, c->stride_h, c->stride_w,
                         c->pad_top, c->pad_bottom, c->pad_left, c->pad_right, c->dilation,
                         c->dilation, c->groups};
    int oh = hs_conv_out_size(c->h, c->k_h, c->stride_h, c->pad_top, c->pad_bottom, c->dilation);
    int ow = hs_conv_out_size(c->w, c->k_w, c->stride_w, c->pad_left, c->pad_right, c->dilation);
    long x_count = (long)c->n * c->in_c * c->h * c->w;
    long w_count = (long)c->out_c * (c->in_c / c->groups) * c->k_h * c->k_w;
    long y_count = (long)c->n * c->out_c * oh * ow;
    float *x = random_array(rng, x_count), *weight = random_array(rng, w_count);
    float *bias = c->bias ? random_array(rng, c->out_c) : NULL;
    float *ref = malloc((size_t)y_count * sizeof(float));
    float *fast = malloc((size_t)y_count * sizeof(float));
    hs_conv2d_forward_ref(x, c->n, c->h, c->w, weight, bias, &s, ref);
    hs_conv2d_forward(x, c->n, c->h, c->w, weight, bias, &s, fast);
    CHECK_CLOSE(c->name, fast, ref, y_count, 1e-4f, 1e-5f);
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
};

static void check_linear(hs_rng *rng, int n, int in, int out, int with_bias) {
    float *x = random_array(rng, (long)n * in), *w = random_array(rng, (long)out * in);
    float *b = with_bias ? random_array(rng, out) : NULL;
    float *ref = malloc((size_t)n * out * sizeof(float)), *fast = malloc((size_t)n * out * sizeof(float));
    hs_linear_forward_ref(x, n, in, w, b, out, ref);
    hs_linear_forward(x, n, in, w, b, out, fast);
    CHECK_CLOSE("linear", fast, ref, (long)n * out, 1e-4f, 1e-5f);

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

int main(void) {
    hs_rng rng;
    hs_rng_seed(&rng, 2024);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        check_conv(&rng, &conv_cases[i]);
    check_linear(&rng, 1, 17, 5, 1);
    check_linear(&rng, 33, 200, 10, 1);
    check_linear(&rng, 4, 64, 3, 0);
    check_activations(&rng);
    return check_finish("test_ops_fast");
}
