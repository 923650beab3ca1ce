/* MaxPool2d, k x k window, symmetric padding. */
#include "layer.h"
#include "ops.h"

static hs_status maxpool_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                               hs_error *err) {
    *out = in;
    out->h = hs_conv_out_size(in.h, l->pool_kernel, l->pool_stride, l->pool_pad, l->pool_pad, 1);
    out->w = hs_conv_out_size(in.w, l->pool_kernel, l->pool_stride, l->pool_pad, l->pool_pad, 1);
    return hs_layer_check_size(l, in, *out, err);
}

static hs_status maxpool_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_maxpool2d_forward(a->x, HS_LAYOUT_NCHW, a->n, a->in.c, a->in.h, a->in.w,
                         l->pool_kernel, l->pool_stride, l->pool_pad, a->y);
    return HS_OK;
}

static hs_status maxpool_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (a->dx)
        hs_maxpool2d_backward_ref(a->x, a->n, a->in.c, a->in.h, a->in.w, l->pool_kernel,
                                  l->pool_stride, l->pool_pad, a->dy, a->dx);
    return HS_OK;
}

const hs_layer_ops hs_maxpool_ops = {"maxpool2d", maxpool_shape, NULL, NULL, NULL,
                                     maxpool_forward, maxpool_backward, NULL};
