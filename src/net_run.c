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

/* ---- the forward pass --------------------------------------------------------------------
 * Convolutions run as oneDNN plans (one per layer, kept in the layer, remade when the input
 * shape or options change, freed when weights change). Between convolutions activations stay
 * in oneDNN's blocked NCHW16C layout, which its fastest kernels read and write, so no
 * per-layer reorders are needed; ReLU, ReLU6, max pooling and residual adds work on that
 * layout directly (zero-padded channels stay zero). Every other layer, and the output, is
 * NCHW: the activation is converted when one needs it. If oneDNN cannot make a blocked plan
 * the pass continues in NCHW (im2col + sgemm fallback). */

void hs_net_release_fast(hs_net *net) {
    for (int i = 0; i < net->count; i++) {
        hs_conv_plan_free(net->layers[i].plan);
        net->layers[i].plan = NULL;
    }
    free(net->run_buffer);
    net->run_buffer = NULL;
    net->run_buffer_bytes = 0;
}

/* The layer's plan for these options, made or remade as needed; NULL when impossible. */
static hs_conv_plan *layer_plan(hs_layer *l, const hs_conv2d_shape *s, int n, int h, int w,
                                const hs_conv_options *opt) {
    if (l->plan && hs_conv_plan_matches(l->plan, s, n, h, w, opt)) return l->plan;
    hs_conv_plan_free(l->plan);
    l->plan = hs_conv_plan_create(s, n, h, w, l->fused_weight, l->fused_bias, opt);
    return l->plan;
}

typedef struct run_state {
    float *buf[2], *saved;
    int current;            /* buf[current] is the next output */
    const float *x;         /* current activation */
    hs_layout layout;       /* its layout */
    int n;
} run_state;

/* Moves the current activation into `layout` (through the free buffer). */
static hs_status convert(run_state *r, act_shape s, hs_layout layout, hs_error *err) {
    if (r->layout == layout) return HS_OK;
    float *y = r->buf[r->current];
    if (hs_layout_convert(r->x, r->layout, y, layout, r->n, s.c, s.h, s.w))
        return hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to convert an activation");
    r->x = y;
    r->current ^= 1;
    r->layout = layout;
    return HS_OK;
}

static int fusable_activation(const hs_layer *l, const hs_layer *next) {
    if (l->residual_add || !next || next->residual_save || next->residual_add)
        return HS_POST_NONE;
    if (next->kind == HS_LAYER_RELU) return HS_POST_RELU;
    if (next->kind == HS_LAYER_RELU6) return HS_POST_RELU6;
    return HS_POST_NONE;
}

/* Runs one convolution from r->x into y; *skip_next when it fused the following activation. */
static hs_status run_conv(hs_net *net, hs_layer *l, const hs_layer *next, run_state *r,
                          act_shape in, int *skip_next, hs_error *err) {
    hs_conv2d_shape s = conv_for_input(l, in.h, in.w);
    hs_conv_options opt = {r->layout, HS_LAYOUT_NCHW16C, fusable_activation(l, next), net->bf16};
    hs_conv_plan *plan = NULL;
    /* oneDNN reads NCHW directly only for few input channels (a network's first layer). */
    if (r->layout == HS_LAYOUT_NCHW && s.in_channels <= 4)
        plan = layer_plan(l, &s, r->n, in.h, in.w, &opt);
    if (!plan) {
        hs_status st = convert(r, in, HS_LAYOUT_NCHW16C, err);
        if (st) return st;
        opt.src_layout = HS_LAYOUT_NCHW16C;
        plan = layer_plan(l, &s, r->n, in.h, in.w, &opt);
    }
    if (!plan) { /* oneDNN cannot: NCHW, im2col fallback */
        hs_status st = convert(r, in, HS_LAYOUT_NCHW, err);
        if (st) return st;
        opt.src_layout = opt.dst_layout = HS_LAYOUT_NCHW;
        opt.bf16 = 0;
        plan = layer_plan(l, &s, r->n, in.h, in.w, &opt);
    }
    float *y = r->buf[r->current];
    if (plan) {
        if (hs_conv_plan_run(plan, r->x, y))
            return hs_fail(err, HS_ERR_INTERNAL, "%s: oneDNN convolution failed", l->name);
    } else { /* out of memory for a plan: the direct path still works */
        hs_conv2d_forward_im2col(r->x, r->n, in.h, in.w, l->fused_weight, l->fused_bias, &s,
                                 y);
        opt.post = HS_POST_NONE;
        opt.dst_layout = HS_LAYOUT_NCHW;
    }
    r->layout = opt.dst_layout;
    *skip_next = opt.post != HS_POST_NONE;
    return HS_OK;
}

/* Runs any other layer from r->x into buf[current]. */
static hs_status run_other(const hs_layer *l, run_state *r, act_shape in, act_shape out,
                           hs_error *err) {
    int n = r->n;
    hs_status st = HS_OK;
    int blocked_ok = l->kind == HS_LAYER_RELU || l->kind == HS_LAYER_RELU6 ||
                     l->kind == HS_LAYER_MAXPOOL;
    if (!blocked_ok && (st = convert(r, in, HS_LAYOUT_NCHW, err))) return st;
    const float *x = r->x;
    float *y = r->buf[r->current];
    int64_t count = hs_layout_size(r->layout, n, out.c, out.h, out.w);
    switch (l->kind) {
    case HS_LAYER_RELU: hs_relu_forward(x, count, y); break;
    case HS_LAYER_RELU6: hs_relu6_forward(x, count, y); break;
    case HS_LAYER_MAXPOOL:
        hs_maxpool2d_forward(x, r->layout, n, in.c, in.h, in.w, l->pool_kernel, l->pool_stride,
                             l->pool_pad, y);
        break;
    case HS_LAYER_ADAPTIVE_AVGPOOL:
        hs_adaptive_avgpool2d_forward(x, n, in.c, in.h, in.w, out.h, out.w, y);
        break;
    case HS_LAYER_LINEAR:
        hs_linear_forward(x, n, l->in_features, l->weight, l->bias, l->out_features, y);
        break;
    case HS_LAYER_FLATTEN: case HS_LAYER_DROPOUT: /* inference: a copy */
        memcpy(y, x, (size_t)count * sizeof(float));
        break;
    case HS_LAYER_CONV: break; /* run_conv */
    }
    return HS_OK;
}

hs_status hs_net_run(hs_net *net, int first, int last, const float *input, int n, int c, int h,
                     int w, float *out, hs_error *err) {
    if (first < 0 || last > net->count || first > last || n <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid layer range or batch size");
    int was_prepared = net->prepared;
    hs_status st = hs_net_prepare(net, err);
    if (st) return st;
    if (!was_prepared) hs_net_release_fast(net); /* plans hold copies of old weights */

    /* Two ping-pong buffers sized for the largest activation (in either layout), plus one
     * for a residual. */
    act_shape s = {c, h, w};
    size_t largest = (size_t)hs_layout_size(HS_LAYOUT_NCHW16C, 1, c, h, w);
    for (int i = first; i < last; i++) {
        act_shape next;
        if ((st = layer_shape(&net->layers[i], s, &next, err))) return st;
        size_t size = (size_t)hs_layout_size(HS_LAYOUT_NCHW16C, 1, next.c, next.h, next.w);
        if (size > largest) largest = size;
        s = next;
    }
    size_t bytes = largest * (size_t)n * sizeof(float);
    if (bytes / sizeof(float) / (size_t)n != largest)
        return hs_fail(err, HS_ERR_NOMEM, "batch of %d is too large", n);
    bytes = (bytes + 63) / 64 * 64;
    if (net->run_buffer_bytes < 3 * bytes) { /* kept: no allocation or page faults per batch */
        free(net->run_buffer);
        net->run_buffer_bytes = 0;
        net->run_buffer = aligned_alloc(64, 3 * bytes);
        if (!net->run_buffer)
            return hs_fail(err, HS_ERR_NOMEM,
                           "out of memory for a batch of %d images (%.0f MB of activations); "
                           "lower --batch-size", n, 3.0 * (double)bytes / 1e6);
        net->run_buffer_bytes = 3 * bytes;
    }
    float *base = net->run_buffer;
    size_t stride = bytes / sizeof(float);
    run_state r = {{base, base + stride}, base + 2 * stride, 0, input, HS_LAYOUT_NCHW, n};

    s = (act_shape){c, h, w};
    act_shape saved_shape = s;
    hs_layout saved_layout = HS_LAYOUT_NCHW;
    for (int i = first; i < last && !st; i++) {
        hs_layer *l = &net->layers[i];
        const hs_layer *next_layer = i + 1 < last ? &net->layers[i + 1] : NULL;
        act_shape next;
        layer_shape(l, s, &next, NULL);
        if (l->residual_save) {
            memcpy(r.saved, r.x,
                   (size_t)hs_layout_size(r.layout, n, s.c, s.h, s.w) * sizeof(float));
            saved_shape = s;
            saved_layout = r.layout;
        }
        int skip_next = 0;
        if (l->kind == HS_LAYER_CONV)
            st = run_conv(net, l, next_layer, &r, s, &skip_next, err);
        else
            st = run_other(l, &r, s, next, err);
        if (st) break;
        r.x = r.buf[r.current];
        r.current ^= 1;
        s = next;
        if (l->residual_add) {
            if (saved_shape.c != next.c || saved_shape.h != next.h || saved_shape.w != next.w) {
                st = hs_fail(err, HS_ERR_INTERNAL, "%s: residual shapes differ", l->name);
                break;
            }
            if ((st = convert(&r, s, saved_layout, err))) break;
            hs_add_inplace((float *)r.x, r.saved, hs_layout_size(r.layout, n, s.c, s.h, s.w));
        }
        if (skip_next) i++; /* the activation ran inside the convolution */
    }
    if (!st) {
        if (r.layout == HS_LAYOUT_NCHW)
            memcpy(out, r.x, (size_t)n * s.c * s.h * s.w * sizeof(float));
        else if (hs_layout_convert(r.x, r.layout, out, HS_LAYOUT_NCHW, n, s.c, s.h, s.w))
            st = hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to convert the output");
    }
    return st;
}
