/* Forward kernels of the ConvNeXt layer kinds (gelu.c, layernorm2d.c, layer_scale.c) that
 * work in any activation layout the inference plan uses: NCHW, or oneDNN's blocked nChw8c /
 * nChw16c (n x ceil(c/B) x h x w x B, the last block's padded channels zero). The layer files
 * run them in NCHW; the plan (net_run.c) runs them on blocked activations directly, so the
 * 7x7 depthwise convolution, the LayerNorm and the two pointwise convolutions of a ConvNeXt
 * block need no reorder between them. Outputs keep padded channels zero. NHWC is not
 * supported (the plan never holds it): callers convert first. Threaded. */
#ifndef HS_CHANNEL_KERNELS_H
#define HS_CHANNEL_KERNELS_H

#include <stdint.h>

#include "ops.h"

/* y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), element-wise over count values (any layout:
 * gelu(0) = 0). */
void hs_gelu_forward(const float *x, int64_t count, float *y);

/* LayerNorm over the c channels of each of the hw pixels of n images: biased variance, mean
 * and variance summed in double. save_mean / save_rstd (n x hw each, NULL: not kept) receive
 * the statistics backward needs. */
void hs_layernorm2d_forward(const float *x, hs_layout layout, int n, int c, int hw,
                            const float *weight, const float *bias, float eps, float *y,
                            float *save_mean, float *save_rstd);

/* y = x * scale[channel]. */
void hs_channel_scale_forward(const float *x, hs_layout layout, int n, int c, int hw,
                              const float *scale, float *y);

/* Index of value (image b, channel ch, pixel p) in a layout of block size `block` (1: NCHW)
 * and cb = ceil(c / block) channel blocks. */
static inline int64_t hs_channel_offset(int b, int ch, int64_t p, int block, int cb,
                                        int64_t hw) {
    return (((int64_t)b * cb + ch / block) * hw + p) * block + ch % block;
}

#endif
