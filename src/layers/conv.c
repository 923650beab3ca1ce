/* Conv2d: any kernel, stride, dilation and groups (depthwise included); symmetric padding
 * or TensorFlow SAME resolved from the input size. Keys: weight, bias (when has_bias).
 * pointwise_linear: a 1x1 convolution standing for an nn.Linear applied at every pixel
 * (ConvNeXt's MLP); its weight, the same values in the same order, is listed with the
 * Linear's shape [out, in] so the Linear's keys load, and it runs as a convolution. */
#include "layer.h"
#include "ops.h"

/* The geometry under which [out, in] and [out, in, 1, 1] are the same tensor. */
static int is_pointwise(const hs_conv2d_shape *s, int same_padding) {
    return s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_top == 0 && s->pad_bottom == 0 && s->pad_left == 0 && s->pad_right == 0 &&
           s->groups == 1 && !same_padding;
}

static hs_status conv_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    if (l->pointwise_linear && !is_pointwise(&l->conv, l->same_padding))
        return hs_fail(err, HS_ERR_INTERNAL, "%s: a Linear-shaped convolution must be 1x1, "
                       "stride 1, unpadded, ungrouped", l->name);
    if (in.c != l->conv.in_channels)
        return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d input channels, got %d", l->name,
                       l->conv.in_channels, in.c);
    hs_conv2d_shape s = hs_conv_for_input(l, in.h, in.w);
    out->c = s.out_channels;
    out->h = hs_conv_out_size(in.h, s.kernel_h, s.stride_h, s.pad_top, s.pad_bottom,
                              s.dilation_h);
    out->w = hs_conv_out_size(in.w, s.kernel_w, s.stride_w, s.pad_left, s.pad_right,
                              s.dilation_w);
    return hs_layer_check_size(l, in, *out, err);
}

static int conv_params(hs_layer *l, hs_param_sink *sink) {
    const hs_conv2d_shape *s = &l->conv;
    int64_t w[4] = {s->out_channels, s->in_channels / s->groups, s->kernel_h, s->kernel_w};
    int64_t b[1] = {s->out_channels};
    /* Only for the geometry where both shapes hold the same values (shape() refuses the
     * flag otherwise), so the listed size is always the size the kernels read. */
    int linear = l->pointwise_linear && is_pointwise(s, l->same_padding);
    return sink->add(sink, "weight", &l->weight, &l->dweight, linear ? 2 : 4, w, 0) &&
           (!l->has_bias || sink->add(sink, "bias", &l->bias, &l->dbias, 1, b, 0));
}

static void conv_init(hs_layer *l, hs_rng *rng) {
    const hs_conv2d_shape *s = &l->conv;
    int64_t fan_in = (int64_t)(s->in_channels / s->groups) * s->kernel_h * s->kernel_w;
    hs_fill_fan_in_uniform(l->weight, fan_in * s->out_channels, fan_in, rng);
    if (l->bias) hs_fill_fan_in_uniform(l->bias, s->out_channels, fan_in, rng);
}

/* The reference kernels (double accumulation), run on HS_BACKEND_REFERENCE; the default
 * backend trains through oneDNN plans instead (fast.c, chosen in registry.c). In training,
 * BatchNorm with batch statistics over tiny maps amplifies float32 rounding: a 2 x 64 x 64
 * Lite0 step's deep gradients are ~1 % off PyTorch's with float32 kernels, 1e-6 with these.
 * The inference plan (net_run.c) has its own fast convolutions. */
static hs_status conv_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    hs_conv2d_forward_ref(a->x, a->n, a->in.h, a->in.w, l->weight, l->bias, &s, a->y);
    return HS_OK;
}

static hs_status conv_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    int grads = a->param_grads && l->dweight;
    hs_conv2d_backward_ref(a->x, a->n, a->in.h, a->in.w, l->weight, &s, a->dy, a->dx,
                           grads ? l->dweight : NULL, grads ? l->dbias : NULL);
    return HS_OK;
}

const hs_layer_ops hs_conv_ops = {"conv2d", conv_shape, conv_params, conv_init, NULL,
                                  conv_forward, conv_backward, NULL};
