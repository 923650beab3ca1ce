/* Hard swish: x * relu6(x + 3) / 6, MobileNetV3's activation. The gradient is PyTorch's
 * (its vectorised CPU hardswish_backward, which every tensor but a few tail elements takes),
 * including at the kinks: 0 below -3, x / 3 + 0.5 on [-3, 3) (so -0.5 at x = -3), 1 from 3
 * on. (PyTorch 1.13's scalar tail loop and its decomposition give 1.5 at exactly x = 3.) */
#include "activation.h"
#include "layer.h"

void hs_hardswish_apply(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) {
        float r = x[i] + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        y[i] = x[i] * r / 6.0f;
    }
}

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status hardswish_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_hardswish_apply(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

static hs_status hardswish_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    for (int64_t i = 0; i < count; i++) {
        float x = a->x[i], g = a->dy[i];
        a->dx[i] = x < -3.0f ? 0.0f : x < 3.0f ? g * (x / 3.0f + 0.5f) : g;
    }
    return HS_OK;
}

const hs_layer_ops hs_hardswish_ops = {"hardswish", same_shape, NULL, NULL, NULL,
                                       hardswish_forward, hardswish_backward, NULL};
