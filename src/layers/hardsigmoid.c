/* Hard sigmoid: relu6(x + 3) / 6, the gate of MobileNetV3's squeeze-and-excitation. The
 * gradient is PyTorch's (hardsigmoid_backward): 1/6 strictly inside (-3, 3), 0 elsewhere,
 * the kinks included. */
#include "activation.h"
#include "layer.h"

void hs_hardsigmoid_apply(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) {
        float r = x[i] + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        y[i] = r / 6.0f;
    }
}

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status hardsigmoid_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_hardsigmoid_apply(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

static hs_status hardsigmoid_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    for (int64_t i = 0; i < count; i++) {
        float x = a->x[i];
        a->dx[i] = x > -3.0f && x < 3.0f ? a->dy[i] / 6.0f : 0.0f;
    }
    return HS_OK;
}

const hs_layer_ops hs_hardsigmoid_ops = {"hardsigmoid", same_shape, NULL, NULL, NULL,
                                         hardsigmoid_forward, hardsigmoid_backward, NULL};
