/* ReLU6: min(max(x, 0), 6) (PyTorch's hardtanh(0, 6)). */
#include "layer.h"
#include "ops.h"

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status relu6_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_relu6_forward(a->x, (int64_t)a->n * hs_act_numel(a->in), a->y);
    return HS_OK;
}

static hs_status relu6_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (a->dx) hs_relu6_backward_ref(a->x, a->dy, (int64_t)a->n * hs_act_numel(a->in), a->dx);
    return HS_OK;
}

const hs_layer_ops hs_relu6_ops = {"relu6", same_shape, NULL, NULL, NULL, relu6_forward,
                                   relu6_backward, NULL};
