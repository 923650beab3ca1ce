/* LayerNorm over the channels of each pixel of an NCHW activation: for image b and pixel p,
 * y[c] = (x[c] - mean) / sqrt(var + eps) * weight[c] + bias[c], mean and biased variance over
 * the C channels. torchvision's LayerNorm2d (ConvNeXt's stem, downsampling and head norms) and
 * the nn.LayerNorm that CNBlock applies between two permutes are this same operation. Keys:
 * weight, bias (C each); eps in bn_eps (ConvNeXt: 1e-6). No batch statistics: training and
 * inference compute the same thing; the tape keeps each pixel's mean and 1/std. */
#include <math.h>
#include <string.h>

#include "channel_kernels.h"
#include "layer.h"

/* Pixels normalised together: their sums stay in registers / L1 while the channels are
 * walked, so NCHW (channel stride hw) and blocked layouts are both read sequentially. */
#define TILE 64

void hs_layernorm2d_forward(const float *x, hs_layout layout, int n, int c, int hw,
                            const float *weight, const float *bias, float eps, float *y,
                            float *save_mean, float *save_rstd) {
    const int block = hs_layout_block(layout), cb = (c + block - 1) / block;
    const int tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int t = 0; t < tiles; t++) {
            const int p0 = t * TILE, m = hw - p0 < TILE ? hw - p0 : TILE;
            double mean[TILE], var[TILE];
            float rstd[TILE];
            for (int j = 0; j < m; j++) mean[j] = var[j] = 0.0;
            for (int ch = 0; ch < c; ch++) {
                const float *row = x + hs_channel_offset(b, ch, p0, block, cb, hw);
                for (int j = 0; j < m; j++) mean[j] += row[(int64_t)j * block];
            }
            for (int j = 0; j < m; j++) mean[j] /= c;
            /* Two passes: the variance of values far from zero keeps its precision. */
            for (int ch = 0; ch < c; ch++) {
                const float *row = x + hs_channel_offset(b, ch, p0, block, cb, hw);
                for (int j = 0; j < m; j++) {
                    double d = row[(int64_t)j * block] - mean[j];
                    var[j] += d * d;
                }
            }
            for (int j = 0; j < m; j++) rstd[j] = (float)(1.0 / sqrt(var[j] / c + eps));
            for (int ch = 0; ch < c; ch++) {
                const int64_t at = hs_channel_offset(b, ch, p0, block, cb, hw);
                const float w = weight[ch], bi = bias[ch];
                for (int j = 0; j < m; j++) {
                    const int64_t k = at + (int64_t)j * block;
                    y[k] = (x[k] - (float)mean[j]) * rstd[j] * w + bi;
                }
            }
            for (int ch = c; ch < cb * block; ch++) { /* a blocked layout's padding */
                const int64_t at = hs_channel_offset(b, ch, p0, block, cb, hw);
                for (int j = 0; j < m; j++) y[at + (int64_t)j * block] = 0.0f;
            }
            if (save_mean)
                for (int j = 0; j < m; j++) {
                    save_mean[(int64_t)b * hw + p0 + j] = (float)mean[j];
                    save_rstd[(int64_t)b * hw + p0 + j] = rstd[j];
                }
        }
    }
}

static hs_status ln_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                          hs_error *err) {
    if (in.c != l->channels)
        return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d channels, got %d", l->name,
                       l->channels, in.c);
    *out = in;
    return HS_OK;
}

static int ln_params(hs_layer *l, hs_param_sink *sink) {
    int64_t c[1] = {l->channels};
    return sink->add(sink, "weight", &l->weight, &l->dweight, 1, c, 0) &&
           sink->add(sink, "bias", &l->bias, &l->dbias, 1, c, 0);
}

static void ln_init(hs_layer *l, hs_rng *rng) {
    (void)rng; /* nn.LayerNorm's reset_parameters: ones and zeros */
    for (int i = 0; i < l->channels; i++) {
        l->weight[i] = 1.0f;
        l->bias[i] = 0.0f;
    }
}

/* Each pixel's mean, then its 1/std: 2 x n x hw floats. */
static void ln_tape(const hs_layer *l, hs_act_shape in, hs_act_shape out, int n,
                    int64_t *floats, int64_t *bytes) {
    *floats = 2 * (int64_t)n * in.h * in.w;
    *bytes = 0;
}

static hs_status ln_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int64_t pixels = (int64_t)a->n * a->in.h * a->in.w;
    float *mean = a->training ? a->saved : NULL;
    hs_layernorm2d_forward(a->x, HS_LAYOUT_NCHW, a->n, l->channels, a->in.h * a->in.w,
                           l->weight, l->bias, l->bn_eps, a->y, mean,
                           mean ? mean + pixels : NULL);
    return HS_OK;
}

/* With xhat = (x - mean) * rstd and g = dy * weight, per pixel over the channels:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *   dweight[c] += sum over pixels of dy * xhat,  dbias[c] += sum of dy. */
static hs_status ln_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    const int c = l->channels, hw = a->in.h * a->in.w, n = a->n;
    const int64_t pixels = (int64_t)n * hw;
    const float *mean = a->saved, *rstd = a->saved + pixels;
    const float *x = a->x, *dy = a->dy, *w = l->weight;
    if (a->dx) {
        const int tiles = (hw + TILE - 1) / TILE;
        float *dx = a->dx;
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < n; b++) {
            for (int t = 0; t < tiles; t++) {
                const int p0 = t * TILE, m = hw - p0 < TILE ? hw - p0 : TILE;
                const float *mu = mean + (int64_t)b * hw + p0, *rs = rstd + (int64_t)b * hw + p0;
                double sum_g[TILE], sum_gx[TILE];
                for (int j = 0; j < m; j++) sum_g[j] = sum_gx[j] = 0.0;
                for (int ch = 0; ch < c; ch++) {
                    const int64_t at = hs_channel_offset(b, ch, p0, 1, c, hw);
                    for (int j = 0; j < m; j++) {
                        double g = (double)dy[at + j] * w[ch];
                        sum_g[j] += g;
                        sum_gx[j] += g * ((double)x[at + j] - mu[j]) * rs[j];
                    }
                }
                for (int j = 0; j < m; j++) sum_g[j] /= c, sum_gx[j] /= c;
                for (int ch = 0; ch < c; ch++) {
                    const int64_t at = hs_channel_offset(b, ch, p0, 1, c, hw);
                    for (int j = 0; j < m; j++) {
                        double xhat = ((double)x[at + j] - mu[j]) * rs[j];
                        double g = (double)dy[at + j] * w[ch];
                        dx[at + j] = (float)(rs[j] * (g - sum_g[j] - xhat * sum_gx[j]));
                    }
                }
            }
        }
    }
    if (a->param_grads && l->dweight) {
        float *dw = l->dweight, *db = l->dbias;
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < c; ch++) {
            double sw = 0.0, sb = 0.0;
            for (int b = 0; b < n; b++) {
                const int64_t at = hs_channel_offset(b, ch, 0, 1, c, hw);
                const float *mu = mean + (int64_t)b * hw, *rs = rstd + (int64_t)b * hw;
                for (int p = 0; p < hw; p++) {
                    sw += (double)dy[at + p] * (((double)x[at + p] - mu[p]) * rs[p]);
                    sb += dy[at + p];
                }
            }
            dw[ch] += (float)sw;
            db[ch] += (float)sb;
        }
    }
    return HS_OK;
}

const hs_layer_ops hs_layernorm2d_ops = {"layernorm2d", ln_shape, ln_params, ln_init, ln_tape,
                                         ln_forward, ln_backward, NULL};
