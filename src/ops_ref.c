/* Reference kernels: the definition of every operation, written as plain loops.
 *
 * Speed is not a goal here; these are the oracle faster kernels are tested against, so each
 * function should read like the formula in ops_ref.h.
 *
 * Accumulation: every sum (convolution, linear, pooling, softmax, loss) is accumulated in
 * double and rounded to float once at the end. PyTorch accumulates in float in an order that
 * depends on the backend, so no float order is "the" right one; a double sum is (to float
 * precision) the exact answer whatever the order, which makes this oracle independent of
 * summation order and leaves a faster float kernel compared against it seeing only its own
 * rounding error.
 *
 * Index arithmetic is done in int64_t wherever a product of sizes can pass 2^31 (a batch of
 * 224x224 feature maps with hundreds of channels does). */
#include "ops_ref.h"

#include <math.h>
#include <stddef.h>

/* floor(a / b) for b > 0, also for negative a (C's / truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && (a < 0)) q--;
    return q;
}

int hs_conv_out_size(int in, int kernel, int stride, int pad_before, int pad_after,
                     int dilation) {
    /* PyTorch: floor((in + pads - dilation*(k-1) - 1) / stride) + 1. When the (dilated)
     * window does not fit in the padded input at all, there is no output: return 0. */
    int64_t span = (int64_t)in + pad_before + pad_after - (int64_t)dilation * (kernel - 1) - 1;
    if (span < 0) return 0;
    return (int)(floor_div(span, stride) + 1);
}

void hs_same_padding(int in, int kernel, int stride, int dilation, int *pad_before,
                     int *pad_after) {
    int64_t out = ((int64_t)in + stride - 1) / stride; /* ceil(in / stride) */
    int64_t total = (out - 1) * stride + (int64_t)(kernel - 1) * dilation + 1 - in;
    if (total < 0) total = 0;
    *pad_before = (int)(total / 2);
    *pad_after = (int)(total - total / 2); /* the odd pixel goes after (bottom / right) */
}

void hs_conv2d_forward_ref(const float *x, int n, int h, int w, const float *weight,
                           const float *bias, const hs_conv2d_shape *s, float *y) {
    const int oh = hs_conv_out_size(h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom,
                                    s->dilation_h);
    const int ow = hs_conv_out_size(w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right,
                                    s->dilation_w);
    const int in_per_group = s->in_channels / s->groups;
    const int out_per_group = s->out_channels / s->groups;

    for (int b = 0; b < n; b++) {
        for (int oc = 0; oc < s->out_channels; oc++) {
            const int g = oc / out_per_group; /* the group this output channel belongs to */
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    double sum = bias ? bias[oc] : 0.0;
                    for (int icg = 0; icg < in_per_group; icg++) {
                        const int ic = g * in_per_group + icg;
                        for (int ky = 0; ky < s->kernel_h; ky++) {
                            /* input row under kernel row ky; outside [0, h) is zero padding */
                            const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                            if (iy < 0 || iy >= h) continue;
                            for (int kx = 0; kx < s->kernel_w; kx++) {
                                const int ix =
                                    ox * s->stride_w - s->pad_left + kx * s->dilation_w;
                                if (ix < 0 || ix >= w) continue;
                                const int64_t xi =
                                    (((int64_t)b * s->in_channels + ic) * h + iy) * w + ix;
                                const int64_t wi =
                                    (((int64_t)oc * in_per_group + icg) * s->kernel_h + ky) *
                                        s->kernel_w + kx;
                                sum += (double)x[xi] * (double)weight[wi];
                            }
                        }
                    }
                    y[(((int64_t)b * s->out_channels + oc) * oh + oy) * ow + ox] = (float)sum;
                }
            }
        }
    }
}

void hs_fold_batchnorm(float *weight, float *bias, int out_channels, int per_out,
                       const float *gamma, const float *beta, const float *mean,
                       const float *var, float eps) {
    for (int oc = 0; oc < out_channels; oc++) {
        /* scale = gamma / sqrt(var + eps), in double so the folded values round only once */
        const double scale = (double)gamma[oc] / sqrt((double)var[oc] + (double)eps);
        for (int i = 0; i < per_out; i++) {
            const int64_t wi = (int64_t)oc * per_out + i;
            weight[wi] = (float)((double)weight[wi] * scale);
        }
        bias[oc] = (float)(((double)bias[oc] - (double)mean[oc]) * scale + (double)beta[oc]);
    }
}

void hs_batchnorm_forward_ref(const float *x, int n, int c, int hw, const float *gamma,
                              const float *beta, const float *mean, const float *var,
                              float eps, float *y) {
    for (int b = 0; b < n; b++) {
        for (int ch = 0; ch < c; ch++) {
            const double inv_std = 1.0 / sqrt((double)var[ch] + (double)eps);
            for (int i = 0; i < hw; i++) {
                const int64_t idx = ((int64_t)b * c + ch) * hw + i;
                y[idx] = (float)(((double)x[idx] - mean[ch]) * inv_std * gamma[ch] + beta[ch]);
            }
        }
    }
}

void hs_relu_forward_ref(const float *x, int64_t count, float *y) {
    for (int64_t i = 0; i < count; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void hs_relu6_forward_ref(const float *x, int64_t count, float *y) {
    for (int64_t i = 0; i < count; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void hs_relu_backward_ref(const float *x, const float *dy, int64_t count, float *dx) {
    /* the gradient at exactly 0 is taken as 0, as PyTorch does */
    for (int64_t i = 0; i < count; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void hs_maxpool2d_forward_ref(const float *x, int n, int c, int h, int w, int kernel,
                              int stride, int pad, float *y) {
    const int oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    const int ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
    for (int64_t plane = 0; plane < (int64_t)n * c; plane++) {
        const float *xp = x + plane * h * w;
        float *yp = y + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                /* padding counts as -infinity: it never wins */
                float best = -INFINITY;
                for (int ky = 0; ky < kernel; ky++) {
                    const int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (int kx = 0; kx < kernel; kx++) {
                        const int ix = ox * stride - pad + kx;
                        if (ix < 0 || ix >= w) continue;
                        const float v = xp[(int64_t)iy * w + ix];
                        if (v > best || isnan(v)) best = v; /* NaN propagates, as in PyTorch */
                    }
                }
                yp[(int64_t)oy * ow + ox] = best;
            }
        }
    }
}

void hs_avgpool2d_forward_ref(const float *x, int n, int c, int h, int w, int kernel,
                              int stride, int pad, float *y) {
    const int oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    const int ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
    /* count_include_pad=True: padded zeros count, so every window divides by kernel^2 (with
     * floor-mode output sizes no window reaches past the padding). */
    const double divisor = (double)kernel * kernel;
    for (int64_t plane = 0; plane < (int64_t)n * c; plane++) {
        const float *xp = x + plane * h * w;
        float *yp = y + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                double sum = 0.0;
                for (int ky = 0; ky < kernel; ky++) {
                    const int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (int kx = 0; kx < kernel; kx++) {
                        const int ix = ox * stride - pad + kx;
                        if (ix < 0 || ix >= w) continue;
                        sum += xp[(int64_t)iy * w + ix];
                    }
                }
                yp[(int64_t)oy * ow + ox] = (float)(sum / divisor);
            }
        }
    }
}

void hs_adaptive_avgpool2d_forward_ref(const float *x, int n, int c, int h, int w, int out_h,
                                       int out_w, float *y) {
    for (int64_t plane = 0; plane < (int64_t)n * c; plane++) {
        const float *xp = x + plane * h * w;
        float *yp = y + plane * out_h * out_w;
        for (int oy = 0; oy < out_h; oy++) {
            /* rows [floor(oy*h/out_h), ceil((oy+1)*h/out_h)) */
            const int y0 = (int)(((int64_t)oy * h) / out_h);
            const int y1 = (int)((((int64_t)oy + 1) * h + out_h - 1) / out_h);
            for (int ox = 0; ox < out_w; ox++) {
                const int x0 = (int)(((int64_t)ox * w) / out_w);
                const int x1 = (int)((((int64_t)ox + 1) * w + out_w - 1) / out_w);
                double sum = 0.0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) sum += xp[(int64_t)iy * w + ix];
                yp[(int64_t)oy * out_w + ox] = (float)(sum / ((double)(y1 - y0) * (x1 - x0)));
            }
        }
    }
}

void hs_linear_forward_ref(const float *x, int n, int in, const float *weight,
                           const float *bias, int out, float *y) {
    for (int b = 0; b < n; b++) {
        for (int o = 0; o < out; o++) {
            double sum = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++)
                sum += (double)x[(int64_t)b * in + i] * (double)weight[(int64_t)o * in + i];
            y[(int64_t)b * out + o] = (float)sum;
        }
    }
}

void hs_linear_backward_ref(const float *x, int n, int in, const float *weight, int out,
                            const float *dy, float *dx, float *dweight, float *dbias) {
    /* dx[b][i] = sum_o dy[b][o] * W[o][i]  (overwritten, not accumulated) */
    if (dx) {
        for (int b = 0; b < n; b++) {
            for (int i = 0; i < in; i++) {
                double sum = 0.0;
                for (int o = 0; o < out; o++)
                    sum += (double)dy[(int64_t)b * out + o] * (double)weight[(int64_t)o * in + i];
                dx[(int64_t)b * in + i] = (float)sum;
            }
        }
    }
    /* dW[o][i] += sum_b dy[b][o] * x[b][i] */
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
            double sum = 0.0;
            for (int b = 0; b < n; b++)
                sum += (double)dy[(int64_t)b * out + o] * (double)x[(int64_t)b * in + i];
            dweight[(int64_t)o * in + i] += (float)sum;
        }
    }
    /* db[o] += sum_b dy[b][o] */
    if (dbias) {
        for (int o = 0; o < out; o++) {
            double sum = 0.0;
            for (int b = 0; b < n; b++) sum += dy[(int64_t)b * out + o];
            dbias[o] += (float)sum;
        }
    }
}

void hs_dropout_forward_ref(const float *x, const uint8_t *mask, int64_t count, float p,
                            float *y) {
    /* p = 1 drops everything (PyTorch returns zeros rather than 0 * inf = NaN). */
    const float keep = 1.0f - p;
    for (int64_t i = 0; i < count; i++) y[i] = (mask[i] && keep > 0.0f) ? x[i] / keep : 0.0f;
}

void hs_dropout_backward_ref(const float *dy, const uint8_t *mask, int64_t count, float p,
                             float *dx) {
    const float keep = 1.0f - p;
    for (int64_t i = 0; i < count; i++) dx[i] = (mask[i] && keep > 0.0f) ? dy[i] / keep : 0.0f;
}

void hs_softmax_forward_ref(const float *x, int n, int classes, float *y) {
    for (int b = 0; b < n; b++) {
        const float *row = x + (int64_t)b * classes;
        float *out = y + (int64_t)b * classes;
        /* subtract the row maximum so exp never overflows */
        float max = row[0];
        for (int k = 1; k < classes; k++)
            if (row[k] > max) max = row[k];
        double sum = 0.0;
        for (int k = 0; k < classes; k++) sum += exp((double)row[k] - max);
        for (int k = 0; k < classes; k++) out[k] = (float)(exp((double)row[k] - max) / sum);
    }
}

float hs_softmax_cross_entropy_ref(const float *logits, int n, int classes, const int *labels,
                                   float *dlogits) {
    /* loss_b = log(sum_k exp(z_k)) - z_label = max + log(sum_k exp(z_k - max)) - z_label;
     * labels must lie in [0, classes). */
    double total = 0.0;
    for (int b = 0; b < n; b++) {
        const float *row = logits + (int64_t)b * classes;
        float max = row[0];
        for (int k = 1; k < classes; k++)
            if (row[k] > max) max = row[k];
        double sum = 0.0;
        for (int k = 0; k < classes; k++) sum += exp((double)row[k] - max);
        const double log_sum_exp = (double)max + log(sum);
        total += log_sum_exp - (double)row[labels[b]];
        if (dlogits) {
            /* d(mean loss)/dz_k = (softmax_k - [k == label]) / n */
            float *grad = dlogits + (int64_t)b * classes;
            for (int k = 0; k < classes; k++) {
                const double softmax = exp((double)row[k] - log_sum_exp);
                grad[k] = (float)((softmax - (k == labels[b] ? 1.0 : 0.0)) / n);
            }
        }
    }
    return (float)(total / n);
}
