/* Sigmoid: 1 / (1 + exp(-x)), the gate of EfficientNet's squeeze-and-excitation.
 * Backward from the output, as PyTorch's sigmoid_backward: dx = dy * (1 - y) * y. */
#include <math.h>

#include "activation.h"
#include "layer.h"

void hs_sigmoid_apply(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) y[i] = 1.0f / (1.0f + hs_expf_vec(-x[i]));
}

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status sigmoid_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_sigmoid_apply(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

static hs_status sigmoid_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    for (int64_t i = 0; i < count; i++) a->dx[i] = a->dy[i] * (1.0f - a->y[i]) * a->y[i];
    return HS_OK;
}

const hs_layer_ops hs_sigmoid_ops = {"sigmoid", same_shape, NULL, NULL, NULL, sigmoid_forward,
                                     sigmoid_backward, NULL};
