/* Reference backward kernels: the definition of every gradient the fine-tuning engine
 * computes, written as plain loops (see ops_ref.h for the contract: dx overwritten, parameter
 * gradients accumulated, NULL skips).
 *
 * As in ops_ref.c every sum is accumulated in double and rounded to float once, so the result
 * is (to float precision) independent of summation order. To keep that true for input
 * gradients, which are sums over every output an input pixel reaches, dx is computed by
 * gathering: for each input element the loops visit the outputs that read it, instead of
 * scattering each output's gradient into a float buffer. That costs more index arithmetic and
 * no scratch memory, which is the right trade for an oracle. */
#include <math.h>
#include <stddef.h>

#include "ops_ref.h"

/* Along one axis of a window op (window o starts at o * stride - pad_before and has `kernel`
 * taps `dilation` apart, tap t reading input o * stride - pad_before + t * dilation): lists
 * every (output o in [0, out), tap t) pair that reads input index i, in o_list / t_list (at
 * most `kernel` pairs), and returns how many there are. */
static int taps_reading(int i, int out, int kernel, int stride, int pad_before, int dilation,
                        int *o_list, int *t_list) {
    int count = 0;
    for (int t = 0; t < kernel; t++) {
        const int num = i + pad_before - t * dilation; /* = o * stride */
        if (num < 0 || num % stride != 0) continue;
        const int o = num / stride;
        if (o >= out) continue;
        o_list[count] = o;
        t_list[count] = t;
        count++;
    }
    return count;
}

/* Kernel sizes are small (at most a few dozen taps per axis in any backbone); the tap lists
 * live on the stack. Larger kernels take the slow path of visiting every output. */
#define MAX_TAPS 64

void hs_conv2d_backward_ref(const float *x, int n, int h, int w, const float *weight,
                            const hs_conv2d_shape *s, const float *dy, float *dx,
                            float *dweight, float *dbias) {
    const int oh = hs_conv_out_size(h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom,
                                    s->dilation_h);
    const int ow = hs_conv_out_size(w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right,
                                    s->dilation_w);
    const int in_per_group = s->in_channels / s->groups;
    const int out_per_group = s->out_channels / s->groups;
    const int kh = s->kernel_h, kw = s->kernel_w;

    /* dx[b][ic][iy][ix] = sum over the group's output channels and every (oy, ky), (ox, kx)
     * with iy = oy * stride - pad + ky * dilation of dy[b][oc][oy][ox] * w[oc][icg][ky][kx] */
    if (dx) {
        int oy_list[MAX_TAPS], ky_list[MAX_TAPS], ox_list[MAX_TAPS], kx_list[MAX_TAPS];
        const int small = kh <= MAX_TAPS && kw <= MAX_TAPS;
        for (int b = 0; b < n; b++) {
            for (int ic = 0; ic < s->in_channels; ic++) {
                const int g = ic / in_per_group, icg = ic % in_per_group;
                for (int iy = 0; iy < h; iy++) {
                    for (int ix = 0; ix < w; ix++) {
                        double sum = 0.0;
                        if (small) {
                            const int ny = taps_reading(iy, oh, kh, s->stride_h, s->pad_top,
                                                        s->dilation_h, oy_list, ky_list);
                            const int nx = taps_reading(ix, ow, kw, s->stride_w, s->pad_left,
                                                        s->dilation_w, ox_list, kx_list);
                            for (int ocg = 0; ocg < out_per_group; ocg++) {
                                const int oc = g * out_per_group + ocg;
                                for (int a = 0; a < ny; a++) {
                                    for (int c = 0; c < nx; c++) {
                                        const int64_t yi =
                                            (((int64_t)b * s->out_channels + oc) * oh +
                                             oy_list[a]) * ow + ox_list[c];
                                        const int64_t wi =
                                            (((int64_t)oc * in_per_group + icg) * kh +
                                             ky_list[a]) * kw + kx_list[c];
                                        sum += (double)dy[yi] * (double)weight[wi];
                                    }
                                }
                            }
                        } else {
                            for (int ocg = 0; ocg < out_per_group; ocg++) {
                                const int oc = g * out_per_group + ocg;
                                for (int ky = 0; ky < kh; ky++) {
                                    const int num = iy + s->pad_top - ky * s->dilation_h;
                                    if (num < 0 || num % s->stride_h) continue;
                                    const int oy = num / s->stride_h;
                                    if (oy >= oh) continue;
                                    for (int kx = 0; kx < kw; kx++) {
                                        const int numx = ix + s->pad_left - kx * s->dilation_w;
                                        if (numx < 0 || numx % s->stride_w) continue;
                                        const int ox = numx / s->stride_w;
                                        if (ox >= ow) continue;
                                        const int64_t yi =
                                            (((int64_t)b * s->out_channels + oc) * oh + oy) *
                                                ow + ox;
                                        const int64_t wi =
                                            (((int64_t)oc * in_per_group + icg) * kh + ky) *
                                                kw + kx;
                                        sum += (double)dy[yi] * (double)weight[wi];
                                    }
                                }
                            }
                        }
                        dx[(((int64_t)b * s->in_channels + ic) * h + iy) * w + ix] = (float)sum;
                    }
                }
            }
        }
    }

    /* dweight[oc][icg][ky][kx] += sum over b, oy, ox of dy[b][oc][oy][ox] * x[b][ic][iy][ix]
     * (iy, ix the input under that tap; padding contributes nothing) */
    if (dweight) {
        for (int oc = 0; oc < s->out_channels; oc++) {
            const int g = oc / out_per_group;
            for (int icg = 0; icg < in_per_group; icg++) {
                const int ic = g * in_per_group + icg;
                for (int ky = 0; ky < kh; ky++) {
                    for (int kx = 0; kx < kw; kx++) {
                        double sum = 0.0;
                        for (int b = 0; b < n; b++) {
                            for (int oy = 0; oy < oh; oy++) {
                                const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                                if (iy < 0 || iy >= h) continue;
                                for (int ox = 0; ox < ow; ox++) {
                                    const int ix =
                                        ox * s->stride_w - s->pad_left + kx * s->dilation_w;
                                    if (ix < 0 || ix >= w) continue;
                                    const int64_t yi =
                                        (((int64_t)b * s->out_channels + oc) * oh + oy) * ow + ox;
                                    const int64_t xi =
                                        (((int64_t)b * s->in_channels + ic) * h + iy) * w + ix;
                                    sum += (double)dy[yi] * (double)x[xi];
                                }
                            }
                        }
                        dweight[(((int64_t)oc * in_per_group + icg) * kh + ky) * kw + kx] +=
                            (float)sum;
                    }
                }
            }
        }
    }

    /* dbias[oc] += sum over b, oy, ox of dy[b][oc][oy][ox] */
    if (dbias) {
        for (int oc = 0; oc < s->out_channels; oc++) {
            double sum = 0.0;
            for (int b = 0; b < n; b++) {
                const float *plane = dy + ((int64_t)b * s->out_channels + oc) * oh * ow;
                for (int64_t i = 0; i < (int64_t)oh * ow; i++) sum += plane[i];
            }
            dbias[oc] += (float)sum;
        }
    }
}

/* ---- BatchNorm ---------------------------------------------------------------------------- */

void hs_batchnorm_train_forward_ref(const float *x, int n, int c, int hw, const float *gamma,
                                    const float *beta, float eps, float momentum,
                                    float *running_mean, float *running_var,
                                    float *save_mean, float *save_rstd, float *y) {
    const int64_t m = (int64_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        /* two passes: the mean, then the biased variance around it */
        double sum = 0.0;
        for (int b = 0; b < n; b++) {
            const float *plane = x + ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) sum += plane[i];
        }
        const double mean = m > 0 ? sum / (double)m : 0.0;
        double sq = 0.0;
        for (int b = 0; b < n; b++) {
            const float *plane = x + ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) sq += ((double)plane[i] - mean) * ((double)plane[i] - mean);
        }
        const double var = m > 0 ? sq / (double)m : 0.0;
        const double rstd = 1.0 / sqrt(var + (double)eps);
        save_mean[ch] = (float)mean;
        save_rstd[ch] = (float)rstd;
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++)
                y[base + i] = (float)(((double)x[base + i] - mean) * rstd * (double)gamma[ch] +
                                      (double)beta[ch]);
        }
        if (running_mean && running_var) {
            const double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
            running_mean[ch] = (float)((1.0 - (double)momentum) * running_mean[ch] +
                                       (double)momentum * mean);
            running_var[ch] = (float)((1.0 - (double)momentum) * running_var[ch] +
                                      (double)momentum * unbiased);
        }
    }
}

void hs_batchnorm_train_backward_ref(const float *x, const float *dy, int n, int c, int hw,
                                     const float *gamma, const float *save_mean,
                                     const float *save_rstd, float *dx, float *dgamma,
                                     float *dbeta) {
    const int64_t m = (int64_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        const double mean = save_mean[ch], rstd = save_rstd[ch];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) {
                const double xhat = ((double)x[base + i] - mean) * rstd;
                sum_dy += dy[base + i];
                sum_dy_xhat += (double)dy[base + i] * xhat;
            }
        }
        if (dgamma) dgamma[ch] += (float)sum_dy_xhat;
        if (dbeta) dbeta[ch] += (float)sum_dy;
        if (!dx || m == 0) continue;
        /* the batch statistics depend on every x: the mean and xhat terms remove the
         * components of dy that shifting or scaling the whole channel would undo */
        const double scale = (double)gamma[ch] * rstd / (double)m;
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) {
                const double xhat = ((double)x[base + i] - mean) * rstd;
                dx[base + i] =
                    (float)(scale * ((double)m * dy[base + i] - sum_dy - xhat * sum_dy_xhat));
            }
        }
    }
}

void hs_batchnorm_frozen_backward_ref(const float *x, const float *dy, int n, int c, int hw,
                                      const float *gamma, const float *mean,
                                      const float *var, float eps, float *dx, float *dgamma,
                                      float *dbeta) {
    for (int ch = 0; ch < c; ch++) {
        const double inv_std = 1.0 / sqrt((double)var[ch] + (double)eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) {
                sum_dy += dy[base + i];
                sum_dy_xhat += (double)dy[base + i] * ((double)x[base + i] - mean[ch]) * inv_std;
                if (dx) dx[base + i] = (float)((double)dy[base + i] * gamma[ch] * inv_std);
            }
        }
        if (dgamma) dgamma[ch] += (float)sum_dy_xhat;
        if (dbeta) dbeta[ch] += (float)sum_dy;
    }
}

/* ---- activations ------------------------------------------------------------------------- */

void hs_relu6_backward_ref(const float *x, const float *dy, int64_t count, float *dx) {
    /* hardtanh's gradient: strictly inside (0, 6); exactly 0 and exactly 6 pass nothing, as
     * PyTorch's hardtanh_backward */
    if (!dx) return;
    for (int64_t i = 0; i < count; i++) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
}

/* ---- pooling ----------------------------------------------------------------------------- */

/* Index (iy * w + ix) of the pixel max pooling picks for window (oy, ox) of one plane: the
 * first maximum in scan order; a NaN always takes over (the last NaN wins), and a window of
 * -inf picks its first pixel inside the input, as PyTorch's CPU kernel. */
static int64_t max_window_argmax(const float *plane, int h, int w, int kernel, int stride,
                                 int pad, int oy, int ox) {
    const int y0 = oy * stride - pad, x0 = ox * stride - pad;
    const int ys = y0 < 0 ? 0 : y0, xs = x0 < 0 ? 0 : x0;
    int64_t best_index = (int64_t)ys * w + xs;
    float best = -INFINITY;
    for (int iy = ys; iy < y0 + kernel && iy < h; iy++) {
        for (int ix = xs; ix < x0 + kernel && ix < w; ix++) {
            const float v = plane[(int64_t)iy * w + ix];
            if (v > best || isnan(v)) {
                best = v;
                best_index = (int64_t)iy * w + ix;
            }
        }
    }
    return best_index;
}

void hs_maxpool2d_backward_ref(const float *x, int n, int c, int h, int w, int kernel,
                               int stride, int pad, const float *dy, float *dx) {
    if (!dx) return;
    const int oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    const int ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
    int oy_list[MAX_TAPS], ky_list[MAX_TAPS], ox_list[MAX_TAPS], kx_list[MAX_TAPS];
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        const float *xp = x + p * h * w;
        const float *dyp = dy + p * oh * ow;
        float *dxp = dx + p * h * w;
        /* gather: each pixel sums the gradients of the windows that picked it */
        for (int iy = 0; iy < h; iy++) {
            for (int ix = 0; ix < w; ix++) {
                double sum = 0.0;
                if (kernel <= MAX_TAPS) {
                    const int ny = taps_reading(iy, oh, kernel, stride, pad, 1, oy_list, ky_list);
                    const int nx = taps_reading(ix, ow, kernel, stride, pad, 1, ox_list, kx_list);
                    for (int a = 0; a < ny; a++)
                        for (int b = 0; b < nx; b++)
                            if (max_window_argmax(xp, h, w, kernel, stride, pad, oy_list[a],
                                                  ox_list[b]) == (int64_t)iy * w + ix)
                                sum += dyp[(int64_t)oy_list[a] * ow + ox_list[b]];
                } else {
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < ow; ox++)
                            if (max_window_argmax(xp, h, w, kernel, stride, pad, oy, ox) ==
                                (int64_t)iy * w + ix)
                                sum += dyp[(int64_t)oy * ow + ox];
                }
                dxp[(int64_t)iy * w + ix] = (float)sum;
            }
        }
    }
}

void hs_avgpool2d_backward_ref(int n, int c, int h, int w, int kernel, int stride, int pad,
                               const float *dy, float *dx) {
    if (!dx) return;
    const int oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    const int ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
    /* count_include_pad=True as the forward: every window divides by kernel^2 */
    const double divisor = (double)kernel * kernel;
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        const float *dyp = dy + p * oh * ow;
        float *dxp = dx + p * h * w;
        for (int iy = 0; iy < h; iy++) {
            /* windows oy with oy * stride - pad <= iy <= oy * stride - pad + kernel - 1 */
            for (int ix = 0; ix < w; ix++) {
                double sum = 0.0;
                for (int oy = 0; oy < oh; oy++) {
                    const int y0 = oy * stride - pad;
                    if (iy < y0 || iy >= y0 + kernel) continue;
                    for (int ox = 0; ox < ow; ox++) {
                        const int x0 = ox * stride - pad;
                        if (ix < x0 || ix >= x0 + kernel) continue;
                        sum += dyp[(int64_t)oy * ow + ox];
                    }
                }
                dxp[(int64_t)iy * w + ix] = (float)(sum / divisor);
            }
        }
    }
}

void hs_adaptive_avgpool2d_backward_ref(int n, int c, int h, int w, int out_h, int out_w,
                                        const float *dy, float *dx) {
    if (!dx) return;
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        const float *dyp = dy + p * out_h * out_w;
        float *dxp = dx + p * h * w;
        for (int iy = 0; iy < h; iy++) {
            for (int ix = 0; ix < w; ix++) {
                /* every bin [floor(o*in/out), ceil((o+1)*in/out)) that holds this pixel
                 * passes it its gradient divided by the bin's area */
                double sum = 0.0;
                for (int oy = 0; oy < out_h; oy++) {
                    const int y0 = (int)(((int64_t)oy * h) / out_h);
                    const int y1 = (int)((((int64_t)oy + 1) * h + out_h - 1) / out_h);
                    if (iy < y0 || iy >= y1) continue;
                    for (int ox = 0; ox < out_w; ox++) {
                        const int x0 = (int)(((int64_t)ox * w) / out_w);
                        const int x1 = (int)((((int64_t)ox + 1) * w + out_w - 1) / out_w);
                        if (ix < x0 || ix >= x1) continue;
                        sum += (double)dyp[(int64_t)oy * out_w + ox] /
                               ((double)(y1 - y0) * (x1 - x0));
                    }
                }
                dxp[(int64_t)iy * w + ix] = (float)sum;
            }
        }
    }
}

/* ---- drop connect ------------------------------------------------------------------------ */

/* efficientnet_lite_pytorch computes inputs / keep_prob * binary_tensor: the same value as
 * x / (1 - p) for kept samples and 0 for dropped ones. */
void hs_drop_connect_forward_ref(const float *x, const uint8_t *keep, int n,
                                 int64_t per_sample, float p, float *y) {
    const float keep_prob = 1.0f - p;
    for (int b = 0; b < n; b++) {
        const int64_t base = (int64_t)b * per_sample;
        const int kept = keep[b] && keep_prob > 0.0f; /* p = 1: zeros, not 0 * inf */
        for (int64_t i = 0; i < per_sample; i++)
            y[base + i] = kept ? x[base + i] / keep_prob : 0.0f;
    }
}

void hs_drop_connect_backward_ref(const float *dy, const uint8_t *keep, int n,
                                  int64_t per_sample, float p, float *dx) {
    if (!dx) return;
    const float keep_prob = 1.0f - p;
    for (int b = 0; b < n; b++) {
        const int64_t base = (int64_t)b * per_sample;
        const int kept = keep[b] && keep_prob > 0.0f;
        for (int64_t i = 0; i < per_sample; i++)
            dx[base + i] = kept ? dy[base + i] / keep_prob : 0.0f;
    }
}
