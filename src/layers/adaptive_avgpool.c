/* AdaptiveAvgPool2d to out_h x out_w. */
#include "layer.h"
#include "ops.h"

static hs_status adaptive_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                                hs_error *err) {
    *out = in;
    out->h = l->out_h;
    out->w = l->out_w;
    return hs_layer_check_size(l, in, *out, err);
}

static hs_status adaptive_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_adaptive_avgpool2d_forward(a->x, a->n, a->in.c, a->in.h, a->in.w, l->out_h, l->out_w,
                                  a->y);
    return HS_OK;
}

static hs_status adaptive_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (a->dx)
        hs_adaptive_avgpool2d_backward_ref(a->n, a->in.c, a->in.h, a->in.w, l->out_h, l->out_w,
                                           a->dy, a->dx);
    return HS_OK;
}

const hs_layer_ops hs_adaptive_avgpool_ops = {"adaptive_avgpool2d", adaptive_shape, NULL,
                                              NULL, NULL, adaptive_forward, adaptive_backward, NULL};
