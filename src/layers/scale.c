/* Channel scale, squeeze-and-excitation's multiply: y[n,c,h,w] = x[n,c,h,w] * s[n,c], where
 * x is the input and s (c x 1 x 1 per image) the output of layer `from`, the gate. Backward:
 * dx = dy * s, and the gate's gradient sum_hw(dy * x) is accumulated (+=) into dother, as
 * the add kind does for its edge. */
#include "layer.h"

static hs_status scale_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                             hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status scale_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    if (!a->other) return hs_fail(err, HS_ERR_INTERNAL, "channel scale without its gate");
    int64_t hw = (int64_t)a->in.h * a->in.w, planes = (int64_t)a->n * a->in.c;
#pragma omp parallel for schedule(static) if (planes * hw > 65536)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = a->x + p * hw;
        float *y = a->y + p * hw, s = a->other[p];
        for (int64_t i = 0; i < hw; i++) y[i] = x[i] * s;
    }
    return HS_OK;
}

static hs_status scale_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    int64_t hw = (int64_t)a->in.h * a->in.w, planes = (int64_t)a->n * a->in.c;
    for (int64_t p = 0; p < planes; p++) {
        const float *x = a->x + p * hw, *dy = a->dy + p * hw;
        float s = a->other[p];
        if (a->dx)
            for (int64_t i = 0; i < hw; i++) a->dx[p * hw + i] = dy[i] * s;
        if (a->dother) {
            double sum = 0.0; /* over a whole map: double, as the reference kernels sum */
            for (int64_t i = 0; i < hw; i++) sum += (double)dy[i] * x[i];
            a->dother[p] += (float)sum;
        }
    }
    return HS_OK;
}

static hs_status scale_check_edge(const hs_layer *l, hs_act_shape in, hs_act_shape other,
                                  hs_error *err) {
    if (other.c == in.c && other.h == 1 && other.w == 1) return HS_OK;
    return hs_fail(err, HS_ERR_ARGUMENT,
                   "channel scale %s: the gate is %dx%dx%d, not %dx1x1 for an input of "
                   "%dx%dx%d", l->name, other.c, other.h, other.w, in.c, in.c, in.h, in.w);
}

const hs_layer_ops hs_scale_ops = {"scale", scale_shape, NULL, NULL, NULL, scale_forward,
                                   scale_backward, scale_check_edge};
