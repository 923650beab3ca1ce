/* Flatten: c x h x w becomes a vector of c*h*w (NCHW order, as torch.flatten(x, 1)). */
#include <string.h>

#include "layer.h"

static hs_status flatten_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                               hs_error *err) {
    out->c = in.c * in.h * in.w;
    out->h = out->w = 1;
    return hs_layer_check_size(l, in, *out, err);
}

static hs_status flatten_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    memcpy(a->y, a->x, (size_t)a->n * hs_act_numel(a->in) * sizeof(float));
    return HS_OK;
}

static hs_status flatten_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (a->dx) memcpy(a->dx, a->dy, (size_t)a->n * hs_act_numel(a->in) * sizeof(float));
    return HS_OK;
}

const hs_layer_ops hs_flatten_ops = {"flatten", flatten_shape, NULL, NULL, NULL,
                                     flatten_forward, flatten_backward, NULL};
