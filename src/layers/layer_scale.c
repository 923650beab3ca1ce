/* Layer scale (ConvNeXt, CaiT): y[b, c, p] = x[b, c, p] * gamma[c], gamma learnable.
 * torchvision keeps it as CNBlock's parameter `layer_scale` of shape [C, 1, 1], so the layer
 * is named after its block ("features.1.0") and lists the suffix "layer_scale" with that
 * shape; timm's `gamma` of shape [C] holds the same values (a timm loader maps the suffix and
 * shape). gamma is in l->weight; init fills l->layer_scale_init (ConvNeXt's 1e-6). */
#include "channel_kernels.h"
#include "layer.h"

void hs_channel_scale_forward(const float *x, hs_layout layout, int n, int c, int hw,
                              const float *scale, float *y) {
    const int block = hs_layout_block(layout), cb = (c + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int k = 0; k < cb; k++) {
            float s[16]; /* block <= 16; padded channels scale to zero */
            for (int v = 0; v < block; v++) s[v] = k * block + v < c ? scale[k * block + v] : 0;
            const int64_t at = hs_channel_offset(b, k * block, 0, block, cb, hw);
            for (int64_t p = 0; p < hw; p++)
                for (int v = 0; v < block; v++)
                    y[at + p * block + v] = x[at + p * block + v] * s[v];
        }
    }
}

static hs_status scale_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                             hs_error *err) {
    if (in.c != l->channels)
        return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d channels, got %d", l->name,
                       l->channels, in.c);
    *out = in;
    return HS_OK;
}

static int scale_params(hs_layer *l, hs_param_sink *sink) {
    int64_t shape[3] = {l->channels, 1, 1};
    return sink->add(sink, "layer_scale", &l->weight, &l->dweight, 3, shape, 0);
}

static void scale_init(hs_layer *l, hs_rng *rng) {
    (void)rng; /* torch.ones(dim, 1, 1) * layer_scale */
    for (int i = 0; i < l->channels; i++) l->weight[i] = l->layer_scale_init;
}

static hs_status scale_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_channel_scale_forward(a->x, HS_LAYOUT_NCHW, a->n, l->channels, a->in.h * a->in.w,
                             l->weight, a->y);
    return HS_OK;
}

/* dx = dy * gamma[c]; dgamma[c] += sum over images and pixels of dy * x (in double). */
static hs_status scale_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    const int c = l->channels, n = a->n;
    const int64_t hw = (int64_t)a->in.h * a->in.w;
    if (a->dx) hs_channel_scale_forward(a->dy, HS_LAYOUT_NCHW, n, c, (int)hw, l->weight, a->dx);
    if (a->param_grads && l->dweight) {
        float *dg = l->dweight;
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < c; ch++) {
            double sum = 0.0;
            for (int b = 0; b < n; b++) {
                const float *dy = a->dy + ((int64_t)b * c + ch) * hw;
                const float *x = a->x + ((int64_t)b * c + ch) * hw;
                for (int64_t p = 0; p < hw; p++) sum += (double)dy[p] * x[p];
            }
            dg[ch] += (float)sum;
        }
    }
    return HS_OK;
}

const hs_layer_ops hs_layer_scale_ops = {"layer_scale", scale_shape, scale_params, scale_init,
                                         NULL, scale_forward, scale_backward, NULL};
