/* SiLU (swish): x * sigmoid(x), EfficientNet's activation. Backward from the input, as
 * PyTorch's silu_backward: dx = dy * s * (1 + x * (1 - s)) with s = sigmoid(x). */
#include <math.h>

#include "activation.h"
#include "layer.h"

void hs_silu_apply(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) y[i] = x[i] / (1.0f + hs_expf_vec(-x[i]));
}

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status silu_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_silu_apply(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

static hs_status silu_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    for (int64_t i = 0; i < count; i++) {
        float x = a->x[i], s = 1.0f / (1.0f + hs_expf_vec(-x));
        a->dx[i] = a->dy[i] * s * (1.0f + x * (1.0f - s));
    }
    return HS_OK;
}

const hs_layer_ops hs_silu_ops = {"silu", same_shape, NULL, NULL, NULL, silu_forward,
                                  silu_backward, NULL};
