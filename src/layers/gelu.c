/* GELU, the exact form (PyTorch's nn.GELU() default, approximate='none'):
 * y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x). ConvNeXt's MLP
 * activation. No parameters; backward reads the input the tape keeps. */
#include <math.h>

#include "channel_kernels.h"
#include "layer.h"

#define SQRT1_2 0.70710678118654752440 /* M_SQRT1_2, which strict C11 lacks */

void hs_gelu_forward(const float *x, int64_t count, float *y) {
    /* PyTorch's CPU kernel computes x * 0.5 * (1 + erf(x * SQRT1_2)) in float. */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++)
        y[i] = x[i] * 0.5f * (1.0f + erff(x[i] * (float)SQRT1_2));
}

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status gelu_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_gelu_forward(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

/* The derivative in double: near x = -0.75 it crosses zero, where float32 cancellation of
 * Phi(x) and -x phi(x) would lose the relative precision the gradient tests ask for. */
static hs_status gelu_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    const double inv_sqrt_2pi = 0.3989422804014327;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) {
        double x = a->x[i];
        double cdf = 0.5 * (1.0 + erf(x * SQRT1_2));
        double pdf = inv_sqrt_2pi * exp(-0.5 * x * x);
        a->dx[i] = (float)((double)a->dy[i] * (cdf + x * pdf));
    }
    return HS_OK;
}

const hs_layer_ops hs_gelu_ops = {"gelu", same_shape, NULL, NULL, NULL, gelu_forward,
                                  gelu_backward, NULL};
