/* Running a network: shape inference and the forward pass over a layer range. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "net.h"
#include "ops.h"

typedef struct act_shape {
    int c, h, w;
} act_shape;

/* The padding a conv uses for an input of h x w. */
static hs_conv2d_shape conv_for_input(const hs_layer *l, int h, int w) {
    hs_conv2d_shape s = l->conv;
    if (l->same_padding) {
        hs_same_padding(h, s.kernel_h, s.stride_h, s.dilation_h, &s.pad_top, &s.pad_bottom);
        hs_same_padding(w, s.kernel_w, s.stride_w, s.dilation_w, &s.pad_left, &s.pad_right);
    }
    return s;
}

static hs_status layer_shape(const hs_layer *l, act_shape in, act_shape *out, hs_error *err) {
    *out = in;
    switch (l->kind) {
    case HS_LAYER_CONV: {
        if (in.c != l->conv.in_channels)
            return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d input channels, got %d", l->name,
                           l->conv.in_channels, in.c);
        hs_conv2d_shape s = conv_for_input(l, in.h, in.w);
        out->c = s.out_channels;
        out->h = hs_conv_out_size(in.h, s.kernel_h, s.stride_h, s.pad_top, s.pad_bottom,
                                  s.dilation_h);
        out->w = hs_conv_out_size(in.w, s.kernel_w, s.stride_w, s.pad_left, s.pad_right,
                                  s.dilation_w);
        break;
    }
    case HS_LAYER_MAXPOOL:
        out->h = hs_conv_out_size(in.h, l->pool_kernel, l->pool_stride, l->pool_pad,
                                  l->pool_pad, 1);
        out->w = hs_conv_out_size(in.w, l->pool_kernel, l->pool_stride, l->pool_pad,
                                  l->pool_pad, 1);
        break;
    case HS_LAYER_ADAPTIVE_AVGPOOL:
        out->h = l->out_h;
        out->w = l->out_w;
        break;
    case HS_LAYER_FLATTEN:
        out->c = in.c * in.h * in.w;
        out->h = out->w = 1;
        break;
    case HS_LAYER_LINEAR:
        if (in.c * in.h * in.w != l->in_features)
            return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d inputs, got %d", l->name,
                           l->in_features, in.c * in.h * in.w);
        out->c = l->out_features;
        out->h = out->w = 1;
        break;
    case HS_LAYER_RELU: case HS_LAYER_RELU6: case HS_LAYER_DROPOUT:
        break;
    }
    if (out->c <= 0 || out->h <= 0 || out->w <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "the input (%d x %d) is too small for layer %s of this network", in.h,
                       in.w, l->name[0] ? l->name : "(unnamed)");
    return HS_OK;
}

hs_status hs_net_shape(const hs_net *net, int first, int last, int c, int h, int w, int *out_c,
                       int *out_h, int *out_w, hs_error *err) {
    act_shape s = {c, h, w};
    for (int i = first; i < last; i++) {
        hs_status st = layer_shape(&net->layers[i], s, &s, err);
        if (st) return st;
    }
    *out_c = s.c;
    *out_h = s.h;
    *out_w = s.w;
    return HS_OK;
}

static void run_layer(const hs_layer *l, const float *x, int n, act_shape in, act_shape out,
                      float *y) {
    int64_t count = (int64_t)n * out.c * out.h * out.w;
    switch (l->kind) {
    case HS_LAYER_CONV: {
        hs_conv2d_shape s = conv_for_input(l, in.h, in.w);
        hs_conv2d_forward(x, n, in.h, in.w, l->fused_weight, l->fused_bias, &s, y);
        break;
    }
    case HS_LAYER_RELU: hs_relu_forward(x, count, y); break;
    case HS_LAYER_RELU6: hs_relu6_forward(x, count, y); break;
    case HS_LAYER_MAXPOOL:
        hs_maxpool2d_forward_ref(x, n, in.c, in.h, in.w, l->pool_kernel, l->pool_stride,
                                 l->pool_pad, y);
        break;
    case HS_LAYER_ADAPTIVE_AVGPOOL:
        hs_adaptive_avgpool2d_forward_ref(x, n, in.c, in.h, in.w, out.h, out.w, y);
        break;
    case HS_LAYER_LINEAR:
        hs_linear_forward(x, n, l->in_features, l->weight, l->bias, l->out_features, y);
        break;
    case HS_LAYER_FLATTEN: case HS_LAYER_DROPOUT: /* inference: a copy */
        memcpy(y, x, (size_t)count * sizeof(float));
        break;
    }
}

hs_status hs_net_run(hs_net *net, int first, int last, const float *input, int n, int c, int h,
                     int w, float *out, hs_error *err) {
    if (first < 0 || last > net->count || first > last || n <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid layer range or batch size");
    hs_status st = hs_net_prepare(net, err);
    if (st) return st;

    /* Two ping-pong buffers sized for the largest activation, plus one for a residual. */
    act_shape s = {c, h, w};
    size_t largest = (size_t)c * h * w;
    for (int i = first; i < last; i++) {
        act_shape next;
        if ((st = layer_shape(&net->layers[i], s, &next, err))) return st;
        size_t size = (size_t)next.c * next.h * next.w;
        if (size > largest) largest = size;
        s = next;
    }
    size_t bytes = largest * (size_t)n * sizeof(float);
    if (bytes / sizeof(float) / (size_t)n != largest)
        return hs_fail(err, HS_ERR_NOMEM, "batch of %d is too large", n);
    float *buf[2] = {malloc(bytes), malloc(bytes)};
    float *saved = malloc(bytes);
    if (!buf[0] || !buf[1] || !saved) {
        free(buf[0]);
        free(buf[1]);
        free(saved);
        return hs_fail(err, HS_ERR_NOMEM,
                       "out of memory for a batch of %d images (%.0f MB of activations); "
                       "lower --batch-size", n, 3.0 * (double)bytes / 1e6);
    }

    const float *x = input;
    int current = 0;
    s = (act_shape){c, h, w};
    act_shape saved_shape = s;
    for (int i = first; i < last; i++) {
        const hs_layer *l = &net->layers[i];
        act_shape next;
        layer_shape(l, s, &next, NULL);
        if (l->residual_save) {
            memcpy(saved, x, (size_t)n * s.c * s.h * s.w * sizeof(float));
            saved_shape = s;
        }
        float *y = buf[current];
        run_layer(l, x, n, s, next, y);
        if (l->residual_add) {
            size_t count = (size_t)n * next.c * next.h * next.w;
            if (saved_shape.c != next.c || saved_shape.h != next.h || saved_shape.w != next.w) {
                st = hs_fail(err, HS_ERR_INTERNAL, "%s: residual shapes differ", l->name);
                break;
            }
            for (size_t k = 0; k < count; k++) y[k] += saved[k];
        }
        x = y;
        current ^= 1;
        s = next;
    }
    if (!st) memcpy(out, x, (size_t)n * s.c * s.h * s.w * sizeof(float));
    free(buf[0]);
    free(buf[1]);
    free(saved);
    return st;
}
