/* Helpers shared by the layer kinds. */
#include <math.h>

#include "layer.h"

hs_status hs_layer_check_size(const hs_layer *l, hs_act_shape in, hs_act_shape out,
                              hs_error *err) {
    if (out.c <= 0 || out.h <= 0 || out.w <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "the input (%d x %d) is too small for layer %s of this network", in.h,
                       in.w, l->name[0] ? l->name : "(unnamed)");
    return HS_OK;
}

hs_conv2d_shape hs_conv_for_input(const hs_layer *l, int h, int w) {
    hs_conv2d_shape s = l->conv;
    if (l->same_padding) {
        hs_same_padding(h, s.kernel_h, s.stride_h, s.dilation_h, &s.pad_top, &s.pad_bottom);
        hs_same_padding(w, s.kernel_w, s.stride_w, s.dilation_w, &s.pad_left, &s.pad_right);
    }
    return s;
}

void hs_fill_fan_in_uniform(float *v, int64_t count, int64_t fan_in, hs_rng *rng) {
    float bound = 1.0f / sqrtf((float)fan_in);
    for (int64_t i = 0; i < count; i++) v[i] = hs_rng_range(rng, -bound, bound);
}
