/* Fast kernels. Convolutions become matrix products: im2col lays every receptive field out
 * as a column, then one sgemm per image and group computes all output channels at once.
 * Depthwise convolutions have too little work per channel for that, so they run as direct
 * loops threaded over channels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"

/* Columns for one image and one group: rows are (channel, ky, kx), columns output pixels. */
static void im2col(const float *x, int channels, int h, int w, const hs_conv2d_shape *s,
                   int oh, int ow, float *cols) {
    int kh = s->kernel_h, kw = s->kernel_w;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; c++) {
        for (int ky = 0; ky < kh; ky++) {
            for (int kx = 0; kx < kw; kx++) {
                float *row = cols + (((size_t)c * kh + ky) * kw + kx) * (size_t)oh * ow;
                const float *plane = x + (size_t)c * h * w;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                    float *dst = row + (size_t)oy * ow;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, (size_t)ow * sizeof(float));
                        continue;
                    }
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
                        dst[ox] = (ix >= 0 && ix < w) ? plane[(size_t)iy * w + ix] : 0.0f;
                    }
                }
            }
        }
    }
}

static void depthwise_forward(const float *x, int n, int h, int w, const float *weight,
                              const float *bias, const hs_conv2d_shape *s, int oh, int ow,
                              float *y) {
    int channels = s->in_channels, kh = s->kernel_h, kw = s->kernel_w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int c = 0; c < channels; c++) {
            const float *plane = x + ((size_t)b * channels + c) * h * w;
            const float *k = weight + (size_t)c * kh * kw;
            float *out = y + ((size_t)b * channels + c) * oh * ow;
            float b0 = bias ? bias[c] : 0.0f;
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    float sum = b0;
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                        if (iy < 0 || iy >= h) continue;
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
                            if (ix < 0 || ix >= w) continue;
                            sum += plane[(size_t)iy * w + ix] * k[ky * kw + kx];
                        }
                    }
                    out[(size_t)oy * ow + ox] = sum;
                }
            }
        }
    }
}

static int is_pointwise(const hs_conv2d_shape *s) {
    return s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_top == 0 && s->pad_bottom == 0 && s->pad_left == 0 && s->pad_right == 0;
}

void hs_conv2d_forward_im2col(const float *x, int n, int h, int w, const float *weight,
                              const float *bias, const hs_conv2d_shape *s, float *y) {
    int oh = hs_conv_out_size(h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom,
                              s->dilation_h);
    int ow = hs_conv_out_size(w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right,
                              s->dilation_w);
    int groups = s->groups;
    if (groups == s->in_channels && groups == s->out_channels && groups > 1) {
        depthwise_forward(x, n, h, w, weight, bias, s, oh, ow, y);
        return;
    }
    int in_g = s->in_channels / groups, out_g = s->out_channels / groups;
    int k = in_g * s->kernel_h * s->kernel_w;
    size_t pixels = (size_t)oh * ow;
    float *cols = is_pointwise(s) ? NULL : malloc((size_t)k * pixels * sizeof(float));
    if (!is_pointwise(s) && !cols) { /* out of memory for columns: the slow, frugal path */
        hs_conv2d_forward_ref(x, n, h, w, weight, bias, s, y);
        return;
    }
    for (int b = 0; b < n; b++) {
        for (int g = 0; g < groups; g++) {
            const float *xg = x + ((size_t)b * s->in_channels + (size_t)g * in_g) * h * w;
            float *yg = y + ((size_t)b * s->out_channels + (size_t)g * out_g) * pixels;
            const float *wg = weight + (size_t)g * out_g * k;
            const float *b_mat = xg; /* a 1x1 stride-1 conv reads its input as the columns */
            if (cols) {
                im2col(xg, in_g, h, w, s, oh, ow, cols);
                b_mat = cols;
            }
            /* y[out_g x pixels] = W[out_g x k] * cols[k x pixels] */
            hs_sgemm('N', 'N', out_g, (int)pixels, k, 1.0f, wg, k, b_mat, (int)pixels, 0.0f,
                     yg, (int)pixels);
            if (bias) {
                for (int o = 0; o < out_g; o++) {
                    float bo = bias[g * out_g + o];
                    float *row = yg + (size_t)o * pixels;
                    for (size_t p = 0; p < pixels; p++) row[p] += bo;
                }
            }
        }
    }
    free(cols);
}

void hs_conv2d_forward(const float *x, int n, int h, int w, const float *weight,
                       const float *bias, const hs_conv2d_shape *s, float *y) {
    hs_conv_plan *plan = hs_conv_plan_create(s, n, h, w, weight, bias, NULL);
    if (plan && hs_conv_plan_run(plan, x, y) == 0) {
        hs_conv_plan_free(plan);
        return;
    }
    hs_conv_plan_free(plan);
    hs_conv2d_forward_im2col(x, n, h, w, weight, bias, s, y);
}

void hs_linear_forward(const float *x, int n, int in, const float *weight, const float *bias,
                       int out, float *y) {
    for (int b = 0; b < n; b++)
        for (int o = 0; o < out; o++) y[(size_t)b * out + o] = bias ? bias[o] : 0.0f;
    /* One image: y += W x. A gemv streams W (memory bound: VGG16's first classifier layer is
     * 411 MB); OpenBLAS's ran about 1.7x faster than its gemm with one row. */
    if (n == 1) {
        hs_sgemv(out, in, 1.0f, weight, in, x, 1.0f, y);
        return;
    }
    /* y[n x out] += x[n x in] * W^T */
    hs_sgemm('N', 'T', n, out, in, 1.0f, x, in, weight, in, 1.0f, y, out);
}

void hs_relu_forward(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void hs_relu6_forward(const float *x, int64_t count, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void hs_linear_backward(const float *x, int n, int in, const float *weight, int out,
                        const float *dy, float *dx, float *dweight, float *dbias) {
    /* dx[n x in] = dy[n x out] * W[out x in] */
    if (dx)
        hs_sgemm('N', 'N', n, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in);
    /* dW[out x in] += dy^T[out x n] * x[n x in] (skipped when NULL, as the reference) */
    if (dweight)
        hs_sgemm('T', 'N', out, in, n, 1.0f, dy, out, x, in, 1.0f, dweight, in);
    if (dbias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < out; o++) dbias[o] += dy[(size_t)b * out + o];
}

/* ---- layout-aware pooling and elementwise helpers for hs_net_run ------------------------- */

/* Max pooling on NCHW (vec 1) or a blocked layout (vec 8 or 16): all are planes of h x w
 * pixels of `vec` consecutive channels. Padding never wins (PyTorch pads with -inf). */
void hs_maxpool2d_forward(const float *x, hs_layout layout, int n, int c, int h, int w,
                          int kernel, int stride, int pad, float *y) {
    int vec = hs_layout_block(layout); /* at most 16: m[] below */
    if (layout == HS_LAYOUT_NHWC) { /* not used by hs_net_run; the reference is NCHW */
        return;
    }
    int64_t planes = (int64_t)n * ((c + vec - 1) / vec);
    int oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    int ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        for (int oy = 0; oy < oh; oy++) {
            const float *in = x + p * h * w * vec;
            float *out = y + (p * oh + oy) * ow * vec;
            for (int ox = 0; ox < ow; ox++) {
                float m[16];
                for (int v = 0; v < vec; v++) m[v] = -INFINITY;
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ox * stride - pad + kx;
                        if (ix < 0 || ix >= w) continue;
                        const float *px = in + ((int64_t)iy * w + ix) * vec;
                        for (int v = 0; v < vec; v++) m[v] = px[v] > m[v] ? px[v] : m[v];
                    }
                }
                for (int v = 0; v < vec; v++) out[(int64_t)ox * vec + v] = m[v];
            }
        }
    }
}

void hs_adaptive_avgpool2d_forward(const float *x, int n, int c, int h, int w, int out_h,
                                   int out_w, float *y) {
    int64_t planes = (int64_t)n * c;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++)
        hs_adaptive_avgpool2d_forward_ref(x + p * h * w, 1, 1, h, w, out_h, out_w,
                                          y + p * out_h * out_w);
}

void hs_add_inplace(float *y, const float *x, int64_t count) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; i++) y[i] += x[i];
}
